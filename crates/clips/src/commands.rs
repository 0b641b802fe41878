//! The clip archive's slash command, `/clips`, for the members who may manage the
//! server (Manage Server or Administrator, as Discord computed it for the interaction:
//! [`Invocation::can_manage_guild`]). Everybody else gets a private refusal that says
//! who may. Every answer is private ([`CommandSpec::private`]): what a server indexes
//! and how is the admins' business, not the channel's.
//!
//! - `/clips enable [channel]`, `/clips disable [channel]`: whether Tavern reads the
//!   channel (`bot_channels.is_reading`). Disabling also cancels the channel's
//!   unfinished scan; its clips stay in the library (the web danger zone purges them).
//!   The web's reading toggle and scan buttons follow the same rule, in the same place
//!   ([`Scanner::set_reading`], [`Scanner::request_if_reading`]).
//! - `/clips scan [deep] [channel]`: queues a catch-up scan (a deep one with `deep`, or
//!   while the channel's history has not been read to its start since its last purge)
//!   through [`Scanner::request`], or says which run is already queued or running.
//! - `/clips cancel [channel]`: cancels the channel's unfinished run.
//! - `/clips status [channel]`: whether the channel is read, its clips, and its latest
//!   run's progress.
//! - `/clips settings [formats] [nsfw] [include] [exclude] [scope] [channel]`: shows
//!   the settings (the server's, the channel's overrides, and what applies in the
//!   channel) when no setting is given; otherwise checks and stores them, for the
//!   server (`scope: guild`, the default) or the channel alone (`scope: channel`, the
//!   default when a `channel` is named).
//!
//! The channel is the one the command runs in unless `channel` names another of the
//! same server. A channel Tavern has not seen yet is registered from Discord first
//! ([`Scanner::ensure_channel`]).

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use discord::{
    ChannelId, CommandSpec, GuildId, Handler, HandlerError, Invocation, OptionSpec, OptionValue,
    Options, Reply, Response,
};
use feature::Feature;
use serde_json::{Map, Value};

use crate::ScanStatus;
use crate::domain::{
    ClipMatcher, DEFAULT_VIDEO_FORMATS, ReadPermission, ScanDirection, Settings, SettingsError,
    check_new_video_format, permission_names, settings_keys,
};
use crate::repo::{Repo, RepoError, ScanRun, StoredChannel};
use crate::scan::{Requested, ScanError, ScanMode, Scanner};

/// The command's name.
pub const CLIPS: &str = "clips";

/// The most formats one `/clips settings formats:` may list.
const MAX_FORMATS: usize = 32;
/// The longest include / exclude pattern accepted from a command.
const MAX_PATTERN_LEN: usize = 200;

/// Why a command did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The user may not, or asked for something that cannot be; shown as is.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Scan(#[from] ScanError),
}

impl CommandError {
    fn refused(message: impl Into<String>) -> CommandError {
        CommandError::Refused(message.into())
    }

    /// This error as the handler's (private) answer.
    pub fn into_handler_error(self) -> HandlerError {
        match self {
            CommandError::Refused(message) => HandlerError::user(message),
            CommandError::Repo(error) | CommandError::Scan(ScanError::Repo(error)) => {
                repo_handler_error(error)
            }
            CommandError::Scan(ScanError::UnknownChannel(channel)) => HandlerError::user(format!(
                "Discord does not know channel {channel}, or I cannot see it."
            )),
            CommandError::Scan(ScanError::NotInGuild(channel)) => {
                HandlerError::user(format!("<#{channel}> is not a channel of a server."))
            }
            CommandError::Scan(ScanError::Busy) => HandlerError::user(
                "Another worker is scanning that channel right now; try again when it is done.",
            ),
            CommandError::Scan(ScanError::NotReading(channel)) => HandlerError::user(format!(
                "<#{channel}> is not indexed: `/clips enable` it first."
            )),
            CommandError::Scan(ScanError::Unreadable { channel, missing }) => {
                HandlerError::user(cannot_read_answer(channel, &missing))
            }
            CommandError::Scan(error @ ScanError::NoMessages { .. }) => {
                HandlerError::user(format!("{error}."))
            }
            CommandError::Scan(error) => HandlerError::internal(error),
        }
    }
}

/// The answer for a channel Tavern may not read: what to grant, and where.
fn cannot_read_answer(channel: ChannelId, missing: &[ReadPermission]) -> String {
    let names = permission_names(missing);
    format!(
        "I cannot read <#{channel}>'s history, so it is not indexed: Discord gives me no \
         {names} there. Grant Tavern {names} in the channel's permissions (Edit Channel → \
         Permissions, for Tavern's role or Tavern itself), then `/clips enable` it again."
    )
}

fn repo_handler_error(error: RepoError) -> HandlerError {
    match error {
        RepoError::Storage(storage) => feature::reply::handler_error(&storage),
        RepoError::Settings(settings) => {
            HandlerError::user(format!("Those settings cannot be used: {settings}."))
        }
        RepoError::UnknownChannel(channel) => {
            HandlerError::user(format!("I do not know channel <#{channel}>."))
        }
        other => HandlerError::internal(other),
    }
}

type CommandResult = Result<Response, CommandError>;

/// What the handlers work with. Cheap to clone.
#[derive(Clone)]
pub struct Commands {
    repo: Repo,
    scanner: Scanner,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands").finish_non_exhaustive()
    }
}

/// `/clips` with its subcommands.
pub fn spec() -> CommandSpec {
    let channel = || OptionSpec::channel("channel", "The channel (default: this one)");
    CommandSpec::new(
        CLIPS,
        "The clip archive: which channels Tavern indexes, scans, settings (Manage Server)",
    )
    .option(
        OptionSpec::subcommand("enable", "Index the videos posted in a channel").option(channel()),
    )
    .option(
        OptionSpec::subcommand("disable", "Stop indexing a channel (its clips stay)")
            .option(channel()),
    )
    .option(
        OptionSpec::subcommand("scan", "Scan a channel's history for videos")
            .option(OptionSpec::boolean(
                "deep",
                "Read the whole history again (default: what is new, once the history was read)",
            ))
            .option(channel()),
    )
    .option(
        OptionSpec::subcommand("cancel", "Cancel a channel's queued or running scan")
            .option(channel()),
    )
    .option(
        OptionSpec::subcommand("status", "A channel's clips and its latest scan").option(channel()),
    )
    .option(
        OptionSpec::subcommand(
            "settings",
            "Show or change what counts as a clip (no option: show)",
        )
        .option(OptionSpec::string(
            "formats",
            "Video extensions or types, comma-separated (mp4, webm, video/*); `default` resets",
        ))
        .option(OptionSpec::boolean(
            "nsfw",
            "Index age-restricted channels too",
        ))
        .option(OptionSpec::string(
            "include",
            "Only file names matching this regular expression (`none` clears it)",
        ))
        .option(OptionSpec::string(
            "exclude",
            "Skip file names matching this regular expression (`none` clears it)",
        ))
        .option(
            OptionSpec::string(
                "scope",
                "The whole server, or the channel alone (default: the server; the channel when one is named)",
            )
            .choice("server", "guild")
            .choice("channel", "channel"),
        )
        .option(channel()),
    )
    .private()
    // An archive is a server's.
    .guild_only()
}

/// Adds `/clips` to `feature`, over the context's PostgreSQL, Discord and clock.
pub fn add(feature: Feature, ctx: &feature::Context) -> Feature {
    let repo = Repo::new(&ctx.postgres);
    let scanner = Scanner::new(repo.clone(), ctx.discord.clone(), ctx.clock.clone())
        .with_sight_cache(ctx.redis.clone());
    let commands = Commands { repo, scanner };
    feature.command(spec(), handler(&commands, run))
}

/// A handler that runs `run` with the commands' state.
fn handler<F, Fut>(commands: &Commands, run: F) -> Arc<dyn Handler>
where
    F: Fn(Commands, Invocation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CommandResult> + Send + 'static,
{
    feature::reply::handler(commands, run, CommandError::into_handler_error)
}

fn private(text: impl Into<String>) -> CommandResult {
    Ok(Response::Message(Reply::private(text)))
}

async fn run(c: Commands, inv: Invocation) -> CommandResult {
    let options = inv.options();
    let sub = options.sub().unwrap_or_default().to_owned();
    let Some(guild) = inv.guild_id else {
        return Err(CommandError::refused("`/clips` works only in a server."));
    };
    if !inv.can_manage_guild() {
        tracing::info!(user = %inv.actor.id, %guild, sub, "clips command refused: no Manage Server");
        return Err(CommandError::refused(
            "`/clips` is for members who may manage this server (the Manage Server permission).",
        ));
    }
    let target = options_channel(&options).unwrap_or(inv.channel_id);
    let channel = c.channel_in(guild, target).await?;
    match sub.as_str() {
        "enable" => enable(&c, &inv, &channel).await,
        "disable" => disable(&c, &inv, &channel).await,
        "scan" => scan(&c, &inv, &options, &channel).await,
        "cancel" => cancel(&c, &inv, &channel).await,
        "status" => status(&c, &channel).await,
        "settings" => settings(&c, &inv, &options, &channel).await,
        other => Err(CommandError::refused(format!(
            "`/clips {other}` is not a clips command: try enable, disable, scan, cancel, status or settings."
        ))),
    }
}

/// The `channel` option, if given.
fn options_channel(options: &Options) -> Option<ChannelId> {
    match options.values.get("channel") {
        Some(OptionValue::Channel(id)) => Some(*id),
        _ => None,
    }
}

impl Commands {
    /// Whether a scan has read the channel's history to its start since its last purge.
    async fn history_read(&self, channel: ChannelId) -> Result<bool, CommandError> {
        Ok(self
            .repo
            .scan_start(channel)
            .await?
            .is_some_and(|start| start.history_read))
    }

    /// The stored channel `channel`, registered from Discord when new; refused unless
    /// it belongs to `guild` and holds messages.
    async fn channel_in(
        &self,
        guild: GuildId,
        channel: ChannelId,
    ) -> Result<StoredChannel, CommandError> {
        let stored = match self.scanner.ensure_channel(channel).await {
            Ok(stored) => stored,
            // Discord's 403 Missing Access: Tavern may not even see the channel.
            Err(ScanError::Discord(error)) if error.is_missing_permission() => {
                let missing = match self.scanner.bot_lacks(guild, channel).await {
                    Ok(missing) if !missing.is_empty() => missing,
                    _ => ReadPermission::ALL.to_vec(),
                };
                return Err(ScanError::Unreadable { channel, missing }.into());
            }
            Err(error) => return Err(error.into()),
        };
        if stored.info.guild != guild {
            return Err(CommandError::refused(format!(
                "<#{channel}> is not a channel of this server."
            )));
        }
        if let Some(kind) = stored.info.kind.as_deref()
            && matches!(kind, "category" | "forum" | "media")
        {
            return Err(CommandError::refused(format!(
                "<#{channel}> is a {kind} channel: it holds no messages of its own to index."
            )));
        }
        Ok(stored)
    }
}

/// `/clips enable`.
async fn enable(c: &Commands, inv: &Invocation, channel: &StoredChannel) -> CommandResult {
    let id = channel.info.id;
    let next = if c.history_read(id).await? {
        "`/clips scan` reads what was posted since its last scan."
    } else {
        "`/clips scan` reads its whole history."
    };
    if channel.is_reading {
        return private(format!(
            "<#{id}> is already indexed: new videos posted there are added as they come. \
             {next}"
        ));
    }
    c.scanner.set_reading(id, true).await?;
    tracing::info!(channel = %id, by = %inv.actor.id, "clips: channel enabled");
    let mut text =
        format!("<#{id}> is now indexed: new videos posted there are added as they come. {next}");
    let settings = c.repo.effective_settings(id).await?;
    if let Ok(matcher) = ClipMatcher::from_settings(&settings)
        && !matcher.scans_channel(channel.info.is_nsfw)
    {
        text.push_str(
            "\nNote: it is age-restricted, and NSFW channels are not indexed \
             (`/clips settings nsfw:True` allows them).",
        );
    }
    private(text)
}

/// `/clips disable`: stops reading and cancels the unfinished scan, if any.
async fn disable(c: &Commands, inv: &Invocation, channel: &StoredChannel) -> CommandResult {
    let id = channel.info.id;
    if !channel.is_reading {
        return private(format!("<#{id}> is not indexed; nothing changed."));
    }
    let canceled = c.scanner.set_reading(id, false).await?;
    tracing::info!(channel = %id, by = %inv.actor.id, canceled = canceled.is_some(), "clips: channel disabled");
    let mut text = format!(
        "<#{id}> is no longer indexed. Its clips stay in the library (the web library's \
         danger zone removes them)."
    );
    if let Some(run) = canceled {
        text.push_str(&format!(
            "\nIts scan was canceled after {} messages.",
            run.messages_scanned
        ));
    }
    private(text)
}

/// `/clips scan [deep]`.
async fn scan(
    c: &Commands,
    inv: &Invocation,
    options: &Options,
    channel: &StoredChannel,
) -> CommandResult {
    let id = channel.info.id;
    let deep = options.bool("deep").unwrap_or(false);
    let mode = if deep {
        ScanMode::Deep
    } else {
        ScanMode::Quick
    };
    let text = match c.scanner.request_if_reading(id, mode).await? {
        Requested::Queued(run) => {
            tracing::info!(channel = %id, run = %run.id, deep, by = %inv.actor.id, "clips: scan queued");
            let why = if !deep && run.window.direction() == ScanDirection::Backward {
                " Its history has not been read to its start yet, so this scan reads all of it."
            } else {
                ""
            };
            format!(
                "Queued a {} scan of <#{id}> (run `{}`).{why} `/clips status` shows its progress.",
                kind_of(&run),
                run.id
            )
        }
        Requested::Existing(run) => format!(
            "A {} scan of <#{id}> is already {} (run `{}`, {} messages read so far); \
             `/clips status` shows its progress, `/clips cancel` stops it.",
            kind_of(&run),
            run.status,
            run.id,
            run.messages_scanned
        ),
    };
    private(text)
}

/// `/clips cancel`.
async fn cancel(c: &Commands, inv: &Invocation, channel: &StoredChannel) -> CommandResult {
    let id = channel.info.id;
    match c.scanner.cancel(id).await? {
        Some(run) => {
            tracing::info!(channel = %id, run = %run.id, by = %inv.actor.id, "clips: scan canceled");
            private(format!(
                "Canceled the scan of <#{id}> (run `{}`) after {} messages, {} with clips. \
                 What it indexed stays; `/clips scan` starts again.",
                run.id, run.messages_scanned, run.messages_matched
            ))
        }
        None => private(format!("No scan of <#{id}> is queued or running.")),
    }
}

/// `/clips status`.
async fn status(c: &Commands, channel: &StoredChannel) -> CommandResult {
    let id = channel.info.id;
    let clips = c.repo.clips_in_channel(id).await?;
    let latest = c.scanner.latest(id).await?;
    let reading = if channel.is_reading {
        "indexed"
    } else {
        "not indexed"
    };
    let mut text = format!("<#{id}> is {reading}: {clips} clips in the library.");
    if let Some(at) = channel.last_scanned_at {
        text.push_str(&format!(" Last scanned {}.", when(at)));
    }
    match latest {
        None if channel.is_reading => {
            text.push_str("\nNo scan yet: `/clips scan` reads its whole history.")
        }
        None => text.push_str("\nNo scan yet."),
        Some(run) => {
            text.push('\n');
            text.push_str(&describe_run(&run));
            if channel.is_reading && run.status.is_final() && !c.history_read(id).await? {
                text.push_str(
                    "\nIts history has not been read to its start yet: the next \
                     `/clips scan` reads all of it.",
                );
            }
        }
    }
    if !channel.is_reading {
        text.push_str(
            "\n`/clips enable` it first: then new videos posted there are added as they \
             come, and `/clips scan` reads its history.",
        );
    }
    private(text)
}

/// "deep" or "catch-up", from the run's window.
fn kind_of(run: &ScanRun) -> &'static str {
    match run.window.direction() {
        ScanDirection::Backward => "deep",
        ScanDirection::Forward => "catch-up",
    }
}

/// One run's progress in a sentence or two.
fn describe_run(run: &ScanRun) -> String {
    let counts = format!(
        "{} messages read, {} with clips",
        run.messages_scanned, run.messages_matched
    );
    let kind = kind_of(run);
    match run.status {
        ScanStatus::Queued => format!(
            "Latest scan: {kind}, queued {} (run `{}`).",
            when(run.created_at),
            run.id
        ),
        ScanStatus::Running => format!(
            "Latest scan: {kind}, running since {}: {counts} so far (run `{}`).",
            when(run.started_at.unwrap_or(run.created_at)),
            run.id
        ),
        ScanStatus::Succeeded => format!(
            "Latest scan: {kind}, finished {}: {counts}.",
            when(run.finished_at.unwrap_or(run.created_at))
        ),
        ScanStatus::Canceled => format!(
            "Latest scan: {kind}, canceled {}: {counts}.",
            when(run.finished_at.unwrap_or(run.created_at))
        ),
        ScanStatus::Failed => format!(
            "Latest scan: {kind}, failed {} after {counts}: {}",
            when(run.finished_at.unwrap_or(run.created_at)),
            run.error_message.as_deref().unwrap_or("no reason recorded")
        ),
    }
}

/// `<t:…:R>`: a time every reader sees relative to their own now.
fn when(t: DateTime<Utc>) -> String {
    format!("<t:{}:R>", t.timestamp())
}

/// Where `/clips settings` stores what it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Guild,
    Channel,
}

/// The patch a `/clips settings` with options asks for, checked: each given option
/// becomes one key (`null` to go back to the default). `None` when no setting is given.
fn settings_patch(options: &Options) -> Result<Option<Settings>, CommandError> {
    let mut patch = Map::new();
    if let Some(raw) = options.str("formats") {
        patch.insert(settings_keys::VIDEO_FORMATS.to_owned(), formats(raw)?);
    }
    if let Some(nsfw) = options.bool("nsfw") {
        patch.insert(settings_keys::SCAN_NSFW.to_owned(), Value::Bool(nsfw));
    }
    for (option, key) in [
        ("include", settings_keys::INCLUDE_PATTERN),
        ("exclude", settings_keys::EXCLUDE_PATTERN),
    ] {
        if let Some(raw) = options.str(option) {
            patch.insert(key.to_owned(), pattern(option, raw)?);
        }
    }
    if patch.is_empty() {
        return Ok(None);
    }
    let patch = Settings::from_json(Value::Object(patch)).map_err(RepoError::from)?;
    // Every entry and pattern must make a matcher on its own, so a mistake is named
    // now rather than when a scan reads it.
    ClipMatcher::from_settings(&patch).map_err(|e| {
        let said = match &e {
            // Named by the option it was given in, not the stored setting's key.
            SettingsError::BadPattern { setting, reason } => {
                let option = if *setting == settings_keys::INCLUDE_PATTERN {
                    "include"
                } else {
                    "exclude"
                };
                format!("`{option}` is not a valid regular expression: {reason}")
            }
            other => other.to_string(),
        };
        CommandError::refused(format!("Nothing was saved: {said}."))
    })?;
    Ok(Some(patch))
}

/// `formats:` as the `video_formats` array; `default` removes the key, so the default
/// formats apply (`none` is taken as `default`: an empty list, which indexes nothing, is
/// not offered). Each entry must be a video extension or MIME type.
fn formats(raw: &str) -> Result<Value, CommandError> {
    let trimmed = raw.trim();
    if ["default", "none"]
        .iter()
        .any(|word| trimmed.eq_ignore_ascii_case(word))
    {
        return Ok(Value::Null);
    }
    let entries: Vec<String> = trimmed
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    // Tabs and line breaks separate entries like spaces; any other control character
    // is in an entry.
    if entries.iter().any(|e| e.chars().any(char::is_control)) {
        return Err(control_character("formats"));
    }
    if entries.is_empty() {
        return Err(CommandError::refused(
            "Nothing was saved: `formats` lists no format. Give video extensions or MIME \
             types (`mp4, webm, video/x-flv`, `video/*` for every video type), or `default` \
             for the default formats.",
        ));
    }
    for entry in &entries {
        check_new_video_format(entry)
            .map_err(|e| CommandError::refused(format!("Nothing was saved: {e}.")))?;
    }
    if entries.len() > MAX_FORMATS {
        return Err(CommandError::refused(format!(
            "Nothing was saved: `formats` lists {} formats; at most {MAX_FORMATS}.",
            entries.len()
        )));
    }
    Ok(Value::Array(
        entries.into_iter().map(Value::String).collect(),
    ))
}

/// `include:` / `exclude:`; `none` (or an empty text) removes the key.
fn pattern(option: &str, raw: &str) -> Result<Value, CommandError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    if trimmed.chars().count() > MAX_PATTERN_LEN {
        return Err(CommandError::refused(format!(
            "Nothing was saved: `{option}` is longer than {MAX_PATTERN_LEN} characters."
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(control_character(option));
    }
    Ok(Value::String(trimmed.to_owned()))
}

/// The refusal of a setting with a control character (a NUL, which PostgreSQL cannot
/// store, a line break or a tab): no file name is matched by one.
fn control_character(option: &str) -> CommandError {
    CommandError::refused(format!(
        "Nothing was saved: `{option}` has a character it cannot contain (a control \
         character, such as NUL)."
    ))
}

/// `/clips settings`.
async fn settings(
    c: &Commands,
    inv: &Invocation,
    options: &Options,
    channel: &StoredChannel,
) -> CommandResult {
    let id = channel.info.id;
    let guild = channel.info.guild;
    let scope = match options.str("scope") {
        Some("channel") => Scope::Channel,
        Some("guild") => Scope::Guild,
        Some(other) => {
            return Err(CommandError::refused(format!(
                "`scope` is `guild` or `channel`, not `{other}`."
            )));
        }
        None if options_channel(options).is_some() => Scope::Channel,
        None => Scope::Guild,
    };
    let Some(patch) = settings_patch(options)? else {
        return show_settings(c, channel).await;
    };
    // The result must work where it applies: merged with what is stored, in this
    // channel (an override can only be checked against its guild's settings).
    let guild_settings = c.repo.guild_settings(guild).await?;
    let after = match scope {
        Scope::Guild => guild_settings
            .merged_with(&patch)
            .merged_with(&channel.settings),
        Scope::Channel => guild_settings.merged_with(&channel.settings.merged_with(&patch)),
    };
    ClipMatcher::from_settings(&after)
        .map_err(|e| CommandError::refused(format!("Nothing was saved: {e}.")))?;
    let whose = match scope {
        Scope::Guild => {
            c.repo.update_guild_settings(guild, &patch).await?;
            "the server's".to_owned()
        }
        Scope::Channel => {
            c.repo.update_channel_settings(id, &patch).await?;
            format!("<#{id}>'s own")
        }
    };
    tracing::info!(%guild, channel = %id, ?scope, by = %inv.actor.id, "clips: settings changed");
    let effective = c.repo.effective_settings(id).await?;
    private(format!(
        "Saved {whose} clip settings. In <#{id}> now: {}\n\
         They apply to new messages and the next scans; a deep scan applies them to \
         the history (clips already indexed stay).",
        summary(&effective)
    ))
}

/// Shows the server's settings, the channel's overrides and what applies there.
async fn show_settings(c: &Commands, channel: &StoredChannel) -> CommandResult {
    let id = channel.info.id;
    let guild = c.repo.guild_settings(channel.info.guild).await?;
    let effective = c.repo.effective_settings(id).await?;
    let own = overrides(&channel.settings);
    private(format!(
        "Server: {}\n<#{id}>'s own overrides: {own}\nIn <#{id}>: {}",
        summary(&guild),
        summary(&effective)
    ))
}

/// The settings that decide what a clip is, in words; defaults where absent.
fn summary(settings: &Settings) -> String {
    let formats = formats_words(settings.get(settings_keys::VIDEO_FORMATS));
    let nsfw = nsfw_words(settings.get(settings_keys::SCAN_NSFW));
    let include = pattern_words(settings.get(settings_keys::INCLUDE_PATTERN));
    let exclude = pattern_words(settings.get(settings_keys::EXCLUDE_PATTERN));
    format!("formats {formats}; NSFW channels {nsfw}; include {include}; exclude {exclude}.")
}

/// Only the settings given (a channel's overrides), in words; "none" if none is.
fn overrides(settings: &Settings) -> String {
    let parts: Vec<String> = [
        settings
            .get(settings_keys::VIDEO_FORMATS)
            .map(|v| format!("formats {}", formats_words(Some(v)))),
        settings
            .get(settings_keys::SCAN_NSFW)
            .map(|v| format!("NSFW channels {}", nsfw_words(Some(v)))),
        settings
            .get(settings_keys::INCLUDE_PATTERN)
            .map(|v| format!("include {}", pattern_words(Some(v)))),
        settings
            .get(settings_keys::EXCLUDE_PATTERN)
            .map(|v| format!("exclude {}", pattern_words(Some(v)))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        format!("{}.", parts.join("; "))
    }
}

/// `video_formats` in words; the defaults when absent.
fn formats_words(value: Option<&Value>) -> String {
    match value {
        Some(Value::Array(entries)) if entries.is_empty() => "none".to_owned(),
        Some(Value::Array(entries)) => entries
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => format!("(unusable: {other})"),
        None => format!("{} (default)", DEFAULT_VIDEO_FORMATS.join(", ")),
    }
}

/// `scan_nsfw` in words; "no" when absent.
fn nsfw_words(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::Bool(true)) => "yes",
        Some(Value::Bool(false)) | None => "no",
        Some(_) => "(unusable)",
    }
}

/// An include or exclude pattern in words; "none" when absent or empty.
fn pattern_words(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) if !s.is_empty() => format!("`{}`", s.replace('`', "'")),
        Some(Value::String(_)) | None => "none".to_owned(),
        Some(other) => format!("(unusable: {other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn options(values: &[(&str, OptionValue)]) -> Options {
        Options {
            subcommand: vec!["settings".into()],
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            bots: Default::default(),
        }
    }

    #[test]
    fn no_setting_given_is_no_patch() {
        assert!(settings_patch(&options(&[])).unwrap().is_none());
    }

    #[test]
    fn formats_split_on_commas_and_spaces_and_default_or_none_removes_the_key() {
        let patch = settings_patch(&options(&[(
            "formats",
            OptionValue::String("mp4, .WEBM  video/x-flv".into()),
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(
            patch.to_json(),
            serde_json::json!({"video_formats": ["mp4", ".WEBM", "video/x-flv"]})
        );
        for word in ["Default", " none ", "NONE"] {
            let patch = settings_patch(&options(&[("formats", OptionValue::String(word.into()))]))
                .unwrap()
                .unwrap();
            assert_eq!(
                patch.to_json(),
                serde_json::json!({"video_formats": null}),
                "{word:?} removes the key, as `default` does"
            );
        }
    }

    #[test]
    fn bad_input_is_refused_naming_what_was_wrong() {
        let refused = |values: &[(&str, OptionValue)]| match settings_patch(&options(values)) {
            Err(CommandError::Refused(text)) => text,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(refused(&[("formats", OptionValue::String(" , ".into()))]).contains("formats"));
        assert!(
            refused(&[("formats", OptionValue::String("mp4 my.video".into()))])
                .contains("my.video")
        );
        let text = refused(&[("include", OptionValue::String("[".into()))]);
        assert_eq!(
            text,
            "Nothing was saved: `include` is not a valid regular expression: unclosed \
             character class (at character 1)."
        );
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(refused(&[("exclude", OptionValue::String(long))]).contains("exclude"));
        // PostgreSQL cannot store a NUL: refused here, named, never sent to it.
        for (option, value) in [
            ("include", "clip\0"),
            ("exclude", "a\u{7}b"),
            ("formats", "mp4, we\0bm"),
        ] {
            let text = refused(&[(option, OptionValue::String(value.into()))]);
            assert!(text.contains(&format!("`{option}`")), "{text}");
            assert!(text.contains("cannot contain"), "{text}");
        }
    }

    #[test]
    fn none_clears_a_pattern() {
        let patch = settings_patch(&options(&[
            ("include", OptionValue::String("none".into())),
            ("exclude", OptionValue::String("^SPOILER_".into())),
            ("nsfw", OptionValue::Boolean(true)),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            patch.to_json(),
            serde_json::json!({"include_pattern": null, "exclude_pattern": "^SPOILER_", "scan_nsfw": true})
        );
    }

    #[test]
    fn the_summary_names_defaults() {
        let text = summary(&Settings::empty());
        assert!(text.contains("(default)"), "{text}");
        assert!(text.contains("NSFW channels no"), "{text}");
    }
}
