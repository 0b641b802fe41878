//! The clip archive's rules, pure: ids, the text kept from Discord ([`StoredText`]: no
//! NUL), settings and what makes a message a clip, scan runs
//! (their status machine and how a scan pages through a channel's history), the
//! install intents of the OAuth flow, and which channels a member may see on the web
//! ([`Viewer`], [`visible_channels`]: Discord's permission overwrites). No I/O; time and randomness come from the caller.
//!
//! Nothing here knows a table: [`crate::schema`] builds on these types, never the
//! reverse.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde_json::{Map, Value};

pub use discord::model::{ChannelId, GuildId, Id, MessageId, UserId};

// ---------------------------------------------------------------------------------------
// Ids

pub use discord::model::parse_id as parse_snowflake;

/// `users.id`: Tavern's own number for a user (the seed's `serial`, a 32-bit integer),
/// distinct from the Discord id so the two can never be mixed up. A plain newtype:
/// [`base::key_id!`] has no form for `i32`, and this id never becomes part of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InternalUserId(i32);

impl InternalUserId {
    pub fn new(id: i32) -> InternalUserId {
        InternalUserId(id)
    }
    pub fn get(self) -> i32 {
        self.0
    }
}

base::key_id! {
    /// `bot_channel_scan_runs.id`: a UUID, written hyphenated.
    pub struct ScanRunId(Uuid) { what: "scan run id" }
}

/// Keys of the settings documents (`guild_settings.settings`, `bot_channels.settings`).
///
/// The first four are the seed's example; the two patterns are Tavern's (the behaviour
/// asks for optional include/exclude regexes and the seed names no key for them). They
/// are the vocabulary of [`Settings`], so they live with its rules.
pub mod settings_keys {
    pub const PREFIX: &str = "prefix";
    pub const AUTO_SCAN: &str = "auto_scan";
    pub const SCAN_NSFW: &str = "scan_nsfw";
    pub const VIDEO_FORMATS: &str = "video_formats";
    pub const INCLUDE_PATTERN: &str = "include_pattern";
    pub const EXCLUDE_PATTERN: &str = "exclude_pattern";
}

// ---------------------------------------------------------------------------------------
// Text

/// Text from Discord as the clip archive keeps it: without NUL, the one character
/// PostgreSQL's `text` and `jsonb` cannot hold. Discord may hand over a message (its
/// content, a file name, its author's name) holding one; stored as given, it would fail
/// the statement that writes the whole page, and with it the channel's scan for good.
/// So the NULs are dropped here, once, where Discord's message becomes what the archive
/// stores; everything else about the text is kept as it is. Guild, channel and user
/// names go through it too, where the repository writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StoredText(String);

impl StoredText {
    /// `text` without its NULs.
    pub fn new(text: impl Into<String>) -> StoredText {
        let mut text = text.into();
        if text.contains('\0') {
            text.retain(|c| c != '\0');
        }
        StoredText(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<&str> for StoredText {
    fn from(text: &str) -> StoredText {
        StoredText::new(text)
    }
}

impl From<String> for StoredText {
    fn from(text: String) -> StoredText {
        StoredText::new(text)
    }
}

impl From<StoredText> for String {
    fn from(text: StoredText) -> String {
        text.0
    }
}

impl AsRef<str> for StoredText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for StoredText {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StoredText {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for StoredText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Settings

/// Why settings could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("settings must be a JSON object, not {found}")]
    NotAnObject { found: &'static str },
    #[error("setting `{setting}` must be {expected}, not {found}")]
    WrongType {
        setting: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("setting `video_formats` has an unusable entry `{entry}`: {reason}")]
    BadFormat { entry: String, reason: &'static str },
    #[error(
        "`{entry}` is not a video format: give video extensions ({}) or video MIME types \
         (`video/x-flv`, or `{ANY_VIDEO_MIME}` for every video type)",
        KNOWN_VIDEO_EXTENSIONS.join(", ")
    )]
    NotVideo { entry: String },
    #[error("setting `{setting}` is not a valid regular expression: {reason}")]
    BadPattern {
        setting: &'static str,
        reason: String,
    },
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A settings document: `guild_settings.settings` or `bot_channels.settings`. Always a
/// JSON object (parse, don't validate: a row holding anything else is refused once, here).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings(Map<String, Value>);

impl Settings {
    pub fn empty() -> Settings {
        Settings::default()
    }

    pub fn from_json(value: Value) -> Result<Settings, SettingsError> {
        match value {
            Value::Object(map) => Ok(Settings(map)),
            other => Err(SettingsError::NotAnObject {
                found: json_kind(&other),
            }),
        }
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// The value of `key`; a JSON `null` reads as absent (so the default applies).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// `auto_scan` (default `false`): whether the scheduler to come queues catch-up scans
    /// of the channel by itself.
    pub fn auto_scan(&self) -> Result<bool, SettingsError> {
        match self.get(settings_keys::AUTO_SCAN) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(SettingsError::WrongType {
                setting: settings_keys::AUTO_SCAN,
                expected: "a boolean",
                found: json_kind(other),
            }),
        }
    }

    /// These settings with `overrides` applied as a JSON merge patch (RFC 7396): an
    /// override replaces the value under its key, objects merge key by key recursively,
    /// arrays are replaced whole (a channel's `video_formats` is its list, not an
    /// addition to the guild's), and an override of `null` removes the key, so the
    /// built-in default applies in that channel.
    pub fn merged_with(&self, overrides: &Settings) -> Settings {
        let mut target = self.0.clone();
        merge_object(&mut target, &overrides.0);
        Settings(target)
    }
}

fn merge_object(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(slot) = slot {
                    merge_object(slot, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The allow-list used when `video_formats` is absent: the containers Discord plays
/// inline (MP4, WebM), QuickTime (what phones record), Matroska (what OBS records) and
/// iTunes' M4V.
pub const DEFAULT_VIDEO_FORMATS: [&str; 5] = ["mp4", "webm", "mov", "mkv", "m4v"];

/// The extensions a manager may name in `/clips settings formats:`: the defaults, those
/// with a MIME type of their own, and other common video containers. Anything else
/// (`gif`, `exe`) is not a video and would match nothing, so it is refused when typed.
pub const KNOWN_VIDEO_EXTENSIONS: [&str; 12] = [
    "mp4", "webm", "mov", "mkv", "m4v", "avi", "wmv", "flv", "mpg", "mpeg", "3gp", "ogv",
];

/// The `video_formats` entry that means every video MIME type.
pub const ANY_VIDEO_MIME: &str = "video/*";

/// Checks one `video_formats` entry as a manager types it: a known video extension
/// ([`KNOWN_VIDEO_EXTENSIONS`]) or a video MIME type (`video/x-flv`, [`ANY_VIDEO_MIME`]).
/// Stored settings are read more leniently ([`ClipMatcher::from_settings`]), so a list
/// saved before this check keeps working.
pub fn check_new_video_format(entry: &str) -> Result<(), SettingsError> {
    let format = VideoFormat::parse(entry)?;
    let is_video = match &format.extension {
        Some(ext) => KNOWN_VIDEO_EXTENSIONS.contains(&ext.as_str()),
        None => format.mimes.iter().all(|m| {
            m.strip_prefix("video/")
                .is_some_and(|sub| !sub.is_empty() && (sub == "*" || !sub.contains('*')))
        }),
    };
    if is_video {
        Ok(())
    } else {
        Err(SettingsError::NotVideo {
            entry: entry.trim().to_owned(),
        })
    }
}

/// MIME types of the formats whose MIME subtype is not their extension.
const MIME_ALIASES: [(&str, &str); 5] = [
    ("mov", "video/quicktime"),
    ("mkv", "video/x-matroska"),
    ("avi", "video/x-msvideo"),
    ("m4v", "video/x-m4v"),
    ("wmv", "video/x-ms-wmv"),
];

/// The MIME type that says nothing about a file: an attachment carrying it is judged by
/// its extension alone, like one without a type.
const GENERIC_MIME: &str = "application/octet-stream";

/// The most a pattern may compile to; settings are typed by admins, but one bad pattern
/// must not cost the worker unbounded memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// One allowed format: an extension (`mp4`) and the MIME types that mean it
/// (`video/mp4`), or a MIME type alone when the entry was written as one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VideoFormat {
    extension: Option<String>,
    mimes: Vec<String>,
}

impl VideoFormat {
    fn parse(entry: &str) -> Result<VideoFormat, SettingsError> {
        let bad = |reason| SettingsError::BadFormat {
            entry: entry.to_owned(),
            reason,
        };
        let normalized = entry.trim().trim_start_matches('.').to_ascii_lowercase();
        if normalized.is_empty() {
            return Err(bad("it is empty"));
        }
        if normalized.contains(char::is_whitespace) {
            return Err(bad("it contains a space"));
        }
        if normalized.contains('/') {
            return Ok(VideoFormat {
                extension: None,
                mimes: vec![normalized],
            });
        }
        if normalized.contains('.') {
            return Err(bad("an extension has no dot inside"));
        }
        let mut mimes = vec![format!("video/{normalized}")];
        mimes.extend(
            MIME_ALIASES
                .iter()
                .filter(|(ext, _)| *ext == normalized)
                .map(|(_, mime)| (*mime).to_owned()),
        );
        Ok(VideoFormat {
            extension: Some(normalized),
            mimes,
        })
    }
}

/// An attachment of a message, as far as matching cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment<'a> {
    pub filename: &'a str,
    /// Discord's `content_type`, e.g. `video/mp4`; absent for some uploads.
    pub content_type: Option<&'a str>,
}

/// Decides which messages are clips, built once from a channel's effective settings
/// (guild settings merged with the channel's overrides, see [`Settings::merged_with`]).
///
/// An attachment is a clip when its type says video and its format is allowed:
/// - its MIME type (Discord's `content_type`, case-insensitive, parameters ignored) is
///   `video/*` and either that MIME type or the file's extension is on the allow-list;
/// - or it has no MIME type (or the generic `application/octet-stream`) and its
///   extension is on the allow-list.
///
/// Any other MIME type (images, audio, text, documents) is never a clip, whatever the
/// file is called: `image/png` named `x.mp4` is not one. The extension is the part after
/// the file name's last dot, so `video.mp4.txt` is a `txt`.
///
/// Settings read, and their defaults when absent or `null`:
/// - `video_formats` (array of strings, default [`DEFAULT_VIDEO_FORMATS`]): an entry is an
///   extension (`mp4`, `.MP4`; matched case-insensitively against the file name's last
///   extension, and as the MIME type `video/mp4`, plus the usual MIME type where it
///   differs, e.g. `mov` = `video/quicktime`) or a full MIME type (`video/x-flv`;
///   `video/*` is every video type, judged by the attachment's MIME type). An empty
///   array allows nothing.
/// - `include_pattern` (string, default none): when set, the attachment's file name must
///   match this regular expression.
/// - `exclude_pattern` (string, default none): when set, an attachment whose file name
///   matches it is skipped (e.g. `^SPOILER_`).
/// - `scan_nsfw` (boolean, default `false`): whether NSFW channels are scanned at all.
///
/// An empty pattern string counts as absent.
#[derive(Debug, Clone)]
pub struct ClipMatcher {
    formats: Vec<VideoFormat>,
    include: Option<regex::Regex>,
    exclude: Option<regex::Regex>,
    scan_nsfw: bool,
}

impl ClipMatcher {
    pub fn from_settings(settings: &Settings) -> Result<ClipMatcher, SettingsError> {
        let formats = match settings.get(settings_keys::VIDEO_FORMATS) {
            None => DEFAULT_VIDEO_FORMATS
                .iter()
                .map(|f| VideoFormat::parse(f))
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(entries)) => entries
                .iter()
                .map(|entry| match entry {
                    Value::String(s) => VideoFormat::parse(s),
                    other => Err(SettingsError::WrongType {
                        setting: settings_keys::VIDEO_FORMATS,
                        expected: "an array of strings",
                        found: json_kind(other),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(SettingsError::WrongType {
                    setting: settings_keys::VIDEO_FORMATS,
                    expected: "an array of strings",
                    found: json_kind(other),
                });
            }
        };
        let scan_nsfw = match settings.get(settings_keys::SCAN_NSFW) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(SettingsError::WrongType {
                    setting: settings_keys::SCAN_NSFW,
                    expected: "a boolean",
                    found: json_kind(other),
                });
            }
        };
        Ok(ClipMatcher {
            formats,
            include: pattern(settings, settings_keys::INCLUDE_PATTERN)?,
            exclude: pattern(settings, settings_keys::EXCLUDE_PATTERN)?,
            scan_nsfw,
        })
    }

    /// Whether a channel is scanned at all.
    pub fn scans_channel(&self, is_nsfw: bool) -> bool {
        !is_nsfw || self.scan_nsfw
    }

    /// Whether one attachment is a clip.
    pub fn matches(&self, attachment: &Attachment<'_>) -> bool {
        let name = attachment.filename;
        if self.include.as_ref().is_some_and(|re| !re.is_match(name)) {
            return false;
        }
        if self.exclude.as_ref().is_some_and(|re| re.is_match(name)) {
            return false;
        }
        let extension = name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .filter(|ext| !ext.is_empty());
        let mime = attachment
            .content_type
            .map(|m| {
                m.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|m| !m.is_empty() && m != GENERIC_MIME);
        if mime.as_ref().is_some_and(|m| !m.starts_with("video/")) {
            return false;
        }
        self.formats.iter().any(|format| {
            (format.extension.is_some() && format.extension == extension)
                || mime
                    .as_ref()
                    .is_some_and(|m| format.mimes.iter().any(|f| f == m || f == ANY_VIDEO_MIME))
        })
    }

    /// Whether a message counts as matched: its channel is scanned and at least one of
    /// its attachments is a clip.
    pub fn message_matches<'a>(
        &self,
        channel_is_nsfw: bool,
        attachments: impl IntoIterator<Item = &'a Attachment<'a>>,
    ) -> bool {
        self.scans_channel(channel_is_nsfw) && attachments.into_iter().any(|a| self.matches(a))
    }
}

/// What is wrong with a pattern, on one line: the regex crate's own words ("unclosed
/// character class") and the character where it noticed (its message draws the pattern
/// over several lines, with a caret under that character).
fn pattern_error(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let what = lines
                .iter()
                .rev()
                .find_map(|line| line.trim().strip_prefix("error: "))
                .unwrap_or("it cannot be read");
            // The first caret line under the pattern, indented as the pattern is.
            let column = lines.windows(2).find_map(|pair| {
                let (pattern, caret) = (pair[0], pair[1]);
                let at = caret.find('^')?;
                let indent = pattern.len() - pattern.trim_start().len();
                (caret.trim().chars().all(|c| c == '^') && at >= indent)
                    .then(|| caret.get(indent..at).map_or(0, |gap| gap.chars().count()) + 1)
            });
            match column {
                Some(column) => format!("{what} (at character {column})"),
                None => what.to_owned(),
            }
        }
        regex::Error::CompiledTooBig(_) => "it is too large to use".to_owned(),
        other => other.to_string(),
    }
}

fn pattern(
    settings: &Settings,
    setting: &'static str,
) -> Result<Option<regex::Regex>, SettingsError> {
    match settings.get(setting) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => regex::RegexBuilder::new(s)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map(Some)
            .map_err(|e| SettingsError::BadPattern {
                setting,
                reason: pattern_error(&e),
            }),
        Some(other) => Err(SettingsError::WrongType {
            setting,
            expected: "a string",
            found: json_kind(other),
        }),
    }
}

/// Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds: snowflakes count from it.
pub const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// The key names are listed by for people: case aside (a database with the C
/// collation puts every capital first, `Table` before `campaigns`), then exactly, so
/// names differing only in case keep one order.
pub fn name_order(name: &str) -> (String, String) {
    (name.to_lowercase(), name.to_owned())
}

/// The time a snowflake was made (its top 42 bits): a message's posting time.
pub fn snowflake_time<T>(id: Id<T>) -> DateTime<Utc> {
    let ms = i64::try_from(id.get() >> 22).unwrap_or(0) + DISCORD_EPOCH_MS;
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// When a Discord CDN attachment URL stops working: its `ex` query parameter, the
/// expiry as hexadecimal Unix seconds. `None` for a URL without one (it does not
/// expire, or is not Discord's).
pub fn cdn_url_expiry(url: &str) -> Option<DateTime<Utc>> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    let hex = query.split('&').find_map(|pair| pair.strip_prefix("ex="))?;
    let secs = i64::from_str_radix(hex, 16).ok()?;
    DateTime::from_timestamp(secs, 0)
}

// ---------------------------------------------------------------------------------------
// Scan runs

/// `scan_status`, in the enum's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

/// A status change the rules do not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a scan run cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: ScanStatus,
    pub to: ScanStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a scan status")]
pub struct UnknownStatus(pub String);

impl ScanStatus {
    /// Every status, in the order of the SQL enum's labels.
    pub const ALL: [ScanStatus; 5] = [
        ScanStatus::Queued,
        ScanStatus::Running,
        ScanStatus::Succeeded,
        ScanStatus::Failed,
        ScanStatus::Canceled,
    ];

    /// The SQL enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Queued => "queued",
            ScanStatus::Running => "running",
            ScanStatus::Succeeded => "succeeded",
            ScanStatus::Failed => "failed",
            ScanStatus::Canceled => "canceled",
        }
    }

    /// A run in a final status never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ScanStatus::Succeeded | ScanStatus::Failed | ScanStatus::Canceled
        )
    }

    /// queued -> running | canceled; running -> succeeded | failed | canceled. A queued
    /// run cannot fail or succeed: it has done nothing yet.
    pub fn can_become(self, next: ScanStatus) -> bool {
        use ScanStatus::*;
        matches!(
            (self, next),
            (Queued, Running)
                | (Queued, Canceled)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, Canceled)
        )
    }

    pub fn transition(self, next: ScanStatus) -> Result<ScanStatus, IllegalTransition> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(IllegalTransition {
                from: self,
                to: next,
            })
        }
    }
}

impl FromStr for ScanStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<ScanStatus, UnknownStatus> {
        ScanStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Messages per history request: Discord's maximum for "get channel messages".
pub const PAGE_SIZE: usize = 100;

/// Which way a scan walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanDirection {
    /// Deep scan: from the newest message (or `before`) back to the channel's start.
    Backward,
    /// Catch-up: from `after` (the channel's `last_message_id`) towards the present.
    Forward,
}

/// The part of a channel's history a run still has to read: the messages strictly
/// between `after` and `before` (the run's `after_message_id` and `before_message_id`,
/// both exclusive as the seed says; absent = unbounded).
///
/// A run's row always holds its remaining window: each page moves one bound, so a run
/// interrupted anywhere resumes from its row. The direction is not stored (the seed has
/// no column for it); it follows from the window: a run with a lower bound walks forward
/// from it, a run without one walks backward from the upper bound (or the newest
/// message). Either way the same messages get read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanWindow {
    after: Option<MessageId>,
    before: Option<MessageId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a scan window needs `after` ({after}) below `before` ({before})")]
pub struct EmptyWindow {
    pub after: MessageId,
    pub before: MessageId,
}

/// Where the next page of history starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAnchor {
    /// The newest messages of the channel.
    Latest,
    /// Messages older than this one (`before=`).
    Before(MessageId),
    /// Messages newer than this one (`after=`).
    After(MessageId),
}

/// One history request: where it starts and how many messages it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub anchor: PageAnchor,
    pub limit: usize,
}

impl ScanWindow {
    /// A deep scan of everything older than `before` (everything, when `None`).
    pub fn deep(before: Option<MessageId>) -> ScanWindow {
        ScanWindow {
            after: None,
            before,
        }
    }

    /// A catch-up scan of everything newer than the channel's `last_message_id`; a
    /// channel never scanned has none, and then catching up means a deep scan.
    pub fn catch_up(last_message_id: Option<MessageId>) -> ScanWindow {
        ScanWindow {
            after: last_message_id,
            before: None,
        }
    }

    /// A window from stored bounds.
    pub fn between(
        after: Option<MessageId>,
        before: Option<MessageId>,
    ) -> Result<ScanWindow, EmptyWindow> {
        match (after, before) {
            (Some(after), Some(before)) if after >= before => Err(EmptyWindow { after, before }),
            _ => Ok(ScanWindow { after, before }),
        }
    }

    pub fn after(&self) -> Option<MessageId> {
        self.after
    }

    pub fn before(&self) -> Option<MessageId> {
        self.before
    }

    pub fn direction(&self) -> ScanDirection {
        if self.after.is_some() {
            ScanDirection::Forward
        } else {
            ScanDirection::Backward
        }
    }

    /// The next request to make.
    pub fn request(&self) -> PageRequest {
        let anchor = match (self.direction(), self.after, self.before) {
            (ScanDirection::Forward, Some(after), _) => PageAnchor::After(after),
            (_, _, Some(before)) => PageAnchor::Before(before),
            _ => PageAnchor::Latest,
        };
        PageRequest {
            anchor,
            limit: PAGE_SIZE,
        }
    }

    /// Whether a message lies inside the window (a forward page can run past `before`).
    pub fn contains(&self, id: MessageId) -> bool {
        self.after.is_none_or(|a| id > a) && self.before.is_none_or(|b| id < b)
    }

    /// The window left after reading `page` (the ids of the messages the request
    /// returned, in any order), or `None` when the scan is complete: the page was short
    /// (the history has no more), or it reached the far bound.
    pub fn after_page(&self, page: &[MessageId]) -> Option<ScanWindow> {
        if page.len() < PAGE_SIZE {
            return None;
        }
        match self.direction() {
            ScanDirection::Forward => {
                let newest = page.iter().copied().max()?;
                if self.before.is_some_and(|b| newest >= b) {
                    return None;
                }
                Some(ScanWindow {
                    after: Some(newest),
                    before: self.before,
                })
            }
            ScanDirection::Backward => {
                let oldest = page.iter().copied().min()?;
                if self.after.is_some_and(|a| oldest <= a) {
                    return None;
                }
                Some(ScanWindow {
                    after: self.after,
                    before: Some(oldest),
                })
            }
        }
    }
}

/// Which scan is asked for. The window it reads follows from the channel's state when
/// the run is queued ([`ScanMode::window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    /// What is new since the index stopped, once the channel's history has been read to
    /// its start; until then (never scanned, no such scan finished, or purged since),
    /// the whole history.
    Quick,
    /// The whole history, backward from the newest message.
    Deep,
    /// Forward from where the index stopped (the channel's `last_message_id`), whether
    /// or not the history was read: the messages a guild's outage hid from the gateway.
    /// The whole history when the index has no position.
    CatchUp,
}

/// What choosing a scan's window needs to know about its channel, read when the run is
/// queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanStart {
    /// The channel's `last_message_id`: the newest message the index has seen (a scan
    /// page or a live message).
    pub last_message_id: Option<MessageId>,
    /// Whether a scan that read the channel's history down to its start succeeded
    /// since the channel's index was last purged. Only such a scan makes
    /// `last_message_id` a place to continue from: a live message moves it too.
    pub history_read: bool,
}

impl ScanMode {
    /// The window a run of this mode reads, from the channel's state.
    pub fn window(self, start: &ScanStart) -> ScanWindow {
        match self {
            ScanMode::Deep => ScanWindow::deep(None),
            ScanMode::Quick if start.history_read => ScanWindow::catch_up(start.last_message_id),
            ScanMode::Quick => ScanWindow::deep(None),
            ScanMode::CatchUp => ScanWindow::catch_up(start.last_message_id),
        }
    }
}

/// Splits the history strictly between `floor` and `before` (a deep scan's remaining
/// window down to the channel's start: the channel's own id, older than any of its
/// messages) into at most `parts` windows of equal snowflake span (equal time), each
/// read forward, together covering every id in between exactly once. Fewer parts when
/// the span is too small to share.
pub fn split_history(floor: MessageId, before: MessageId, parts: usize) -> Vec<ScanWindow> {
    let (lo, hi) = (u128::from(floor.get()), u128::from(before.get()));
    if hi <= lo + 1 {
        return Vec::new();
    }
    let parts = u128::try_from(parts.max(1))
        .unwrap_or(1)
        .min((hi - lo - 1) / 2)
        .max(1);
    // Part i reads the ids in [start_i, start_{i+1}): its window is
    // (start_i - 1, start_{i+1}), both exclusive.
    let start = |i: u128| lo + 1 + (hi - lo - 1) * i / parts;
    (0..parts)
        .filter_map(|i| {
            let after = u64::try_from(start(i) - 1).ok()?;
            let before = u64::try_from(start(i + 1)).ok()?;
            ScanWindow::between(Some(MessageId::new(after)), Some(MessageId::new(before))).ok()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Install intents

/// How long an install intent is valid.
pub const INTENT_TTL: TimeDelta = TimeDelta::minutes(10);
/// How long after expiry an intent is kept before the purge job deletes it, so a
/// callback arriving at the edge sees "expired" rather than "unknown". The default of
/// `ClipsConfig::intent_grace`.
pub const PURGE_GRACE: TimeDelta = TimeDelta::minutes(5);
/// Random bytes in a state token: 256 bits, far beyond guessing.
pub const STATE_BYTES: usize = 32;
/// The shortest text taken for a state token: ours are 43 characters, and anything much
/// shorter cannot be one of them.
pub const STATE_MIN_LEN: usize = 16;

base::key_id! {
    /// The OAuth `state` of an install: random, URL-safe (base64url without padding, 43
    /// characters), so it goes into the authorize URL as it is. A bearer credential:
    /// `Debug` is redacted and only [`IntentState::expose`] gives the text.
    ///
    /// Read presented tokens with [`IntentState::parse_token`], which also refuses
    /// anything shorter than [`STATE_MIN_LEN`].
    pub secret struct IntentState(String) {
        what: "install state", chars: base::id::URL_SAFE, max: 128,
    }
}

/// A text that cannot be one of our state tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an install state token")]
pub struct BadState;

impl IntentState {
    /// A fresh token from the thread's CSPRNG (seeded from the operating system).
    pub fn generate() -> IntentState {
        let mut bytes = [0u8; STATE_BYTES];
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
        IntentState::from_entropy(bytes)
    }

    /// The token of given random bytes (for tests; production uses [`Self::generate`]).
    pub fn from_entropy(bytes: [u8; STATE_BYTES]) -> IntentState {
        IntentState(base::Secret::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    /// A token as it comes back in a callback (or out of a row). Anything that cannot be
    /// one of ours is refused before touching the database: the id rules (URL-safe, at
    /// most 128 characters) and at least [`STATE_MIN_LEN`] characters.
    pub fn parse_token(raw: &str) -> Result<IntentState, BadState> {
        if raw.len() < STATE_MIN_LEN {
            return Err(BadState);
        }
        IntentState::parse(raw).map_err(|_| BadState)
    }
}

/// An install in progress: `user` asked to add the bot to `guild`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallIntent {
    pub state: IntentState,
    pub user: UserId,
    pub guild: GuildId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a callback's state was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    #[error("unknown install state")]
    Unknown,
    #[error("the install request has expired")]
    Expired,
    #[error("the install was started by another user")]
    Forbidden,
}

impl ConsumeError {
    /// `Forbidden` is the 403 of the flow; the others are a rejected (bad) request.
    pub fn is_forbidden(self) -> bool {
        self == ConsumeError::Forbidden
    }
}

impl InstallIntent {
    /// A new intent, valid for [`INTENT_TTL`] from `now`. Times are cut to microseconds,
    /// PostgreSQL's precision, so what is stored reads back equal.
    pub fn new(state: IntentState, user: UserId, guild: GuildId, now: DateTime<Utc>) -> Self {
        let created_at = now.trunc_subsecs(6);
        InstallIntent {
            state,
            user,
            guild,
            created_at,
            expires_at: created_at + INTENT_TTL,
        }
    }

    /// Expired from `expires_at` on.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// Whether `user` may finish this install at `now`. An expired intent is refused as
    /// expired whoever asks, so the answer says nothing about whose it was.
    pub fn check(&self, user: UserId, now: DateTime<Utc>) -> Result<(), ConsumeError> {
        if self.is_expired(now) {
            Err(ConsumeError::Expired)
        } else if self.user != user {
            Err(ConsumeError::Forbidden)
        } else {
            Ok(())
        }
    }
}

/// The verdict on a callback: `found` is the intent stored under its state, if any.
pub fn consume_verdict(
    found: Option<&InstallIntent>,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), ConsumeError> {
    found.ok_or(ConsumeError::Unknown)?.check(user, now)
}

/// Intents that expired before this instant are purged: `grace` before `now` (the
/// start of time for a grace too long to subtract).
pub fn purge_cutoff(now: DateTime<Utc>, grace: TimeDelta) -> DateTime<Utc> {
    now.checked_sub_signed(grace)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

// ---------------------------------------------------------------------------------------
// Who sees which channel

/// The Discord permission bits the web's channel rule reads (Manage Threads: who
/// holds it in a channel sees its private threads too).
pub mod permission_bits {
    pub use discord::model::permissions::{
        ADMINISTRATOR, ALL, MANAGE_THREADS, READ_MESSAGE_HISTORY, VIEW_CHANNEL,
    };
}

pub use discord::model::{Overwrite, OverwriteTarget, RoleId};

/// A member of a guild as the channel rule sees them: their guild-level permissions
/// (what Discord's OAuth guild list says of them: `@everyone` and their roles
/// combined, before any channel's overwrites), whether they own the guild, and their
/// roles (without `@everyone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub guild: GuildId,
    pub user: UserId,
    pub owner: bool,
    pub base: u64,
    pub roles: Vec<RoleId>,
}

impl Viewer {
    /// The viewer's permissions in a channel with these overwrites, as Discord
    /// computes them ([`discord::model::permissions::Member::in_channel`]).
    pub fn permissions_in(&self, overwrites: &[Overwrite]) -> u64 {
        discord::model::permissions::Member {
            guild: self.guild,
            user: self.user,
            owner: self.owner,
            base: self.base,
            roles: &self.roles,
        }
        .in_channel(overwrites)
    }

    /// Whether the viewer reads a channel's history there: View Channel and Read
    /// Message History, as Discord's client needs to show past messages.
    pub fn reads(&self, overwrites: &[Overwrite]) -> bool {
        let needed = permission_bits::VIEW_CHANNEL | permission_bits::READ_MESSAGE_HISTORY;
        self.permissions_in(overwrites) & needed == needed
    }

    /// Whether the viewer sees every thread of a channel, private ones included: they
    /// read the channel and hold Manage Threads there.
    pub fn reads_every_thread(&self, overwrites: &[Overwrite]) -> bool {
        self.reads(overwrites)
            && self.permissions_in(overwrites) & permission_bits::MANAGE_THREADS != 0
    }
}

/// A channel of the guild as Discord lists it now (threads are never in that list).
#[derive(Debug, Clone, Copy)]
pub struct ListedChannel<'a> {
    pub id: ChannelId,
    pub overwrites: &'a [Overwrite],
}

/// A channel Tavern stored, as the rule needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKind {
    /// A channel of the guild's list.
    Channel,
    /// A thread, with its parent when it is known.
    Thread { parent: Option<ChannelId> },
}

/// The listed channels in which the viewer sees every thread (see
/// [`Viewer::reads_every_thread`]): only when there is one is a thread's parent worth
/// asking Discord for.
pub fn thread_parents_read(
    viewer: &Viewer,
    listed: &[ListedChannel<'_>],
) -> std::collections::BTreeSet<ChannelId> {
    listed
        .iter()
        .filter(|c| viewer.reads_every_thread(c.overwrites))
        .map(|c| c.id)
        .collect()
}

/// Which of the stored channels the viewer may see on the web, as Discord would show
/// them: a channel of the guild's list when [`Viewer::reads`] it; a thread only when
/// its parent is known and the viewer reads every thread of it (Tavern cannot tell a
/// private thread from a public one, nor who was added to one, so it shows a thread
/// only to those who see it either way); anything Discord does not list is hidden.
pub fn visible_channels(
    viewer: &Viewer,
    listed: &[ListedChannel<'_>],
    stored: &[(ChannelId, StoredKind)],
) -> std::collections::BTreeSet<ChannelId> {
    let readable: std::collections::BTreeSet<ChannelId> = listed
        .iter()
        .filter(|c| viewer.reads(c.overwrites))
        .map(|c| c.id)
        .collect();
    let threads_readable = thread_parents_read(viewer, listed);
    stored
        .iter()
        .filter(|(id, kind)| match kind {
            StoredKind::Channel => readable.contains(id),
            StoredKind::Thread { parent } => {
                parent.is_some_and(|parent| threads_readable.contains(&parent))
            }
        })
        .map(|(id, _)| *id)
        .collect()
}

/// A permission Tavern needs in a channel to read its history, as Discord names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadPermission {
    /// Without it Discord answers 403 Missing Access to anything in the channel.
    ViewChannel,
    /// Without it Discord answers a history request with an empty list, not an error:
    /// a scan would find nothing and could not tell.
    ReadMessageHistory,
}

impl ReadPermission {
    /// Every permission reading a channel's history takes, in the order Discord lists them.
    pub const ALL: [ReadPermission; 2] = [
        ReadPermission::ViewChannel,
        ReadPermission::ReadMessageHistory,
    ];

    pub fn bit(self) -> u64 {
        match self {
            ReadPermission::ViewChannel => permission_bits::VIEW_CHANNEL,
            ReadPermission::ReadMessageHistory => permission_bits::READ_MESSAGE_HISTORY,
        }
    }

    /// Its name in Discord's settings.
    pub fn name(self) -> &'static str {
        match self {
            ReadPermission::ViewChannel => "View Channel",
            ReadPermission::ReadMessageHistory => "Read Message History",
        }
    }
}

/// Which of [`ReadPermission::ALL`] `permissions` (someone's bits in a channel) lack;
/// empty when they read its history.
pub fn missing_to_read(permissions: u64) -> Vec<ReadPermission> {
    ReadPermission::ALL
        .into_iter()
        .filter(|p| permissions & p.bit() == 0)
        .collect()
}

/// `missing`'s names as a sentence lists them: "View Channel and Read Message History".
pub fn permission_names(missing: &[ReadPermission]) -> String {
    let names: Vec<&str> = missing.iter().map(|p| p.name()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Why a scan of a channel Tavern cannot read stops before reading anything: its run's
/// `error_message`, shown by `/clips status` and the guild page. `missing` is not empty.
pub fn cannot_read_reason(missing: &[ReadPermission]) -> String {
    format!(
        "Tavern cannot read this channel's history: grant Tavern {} in the channel's \
         permissions (for Tavern's role or Tavern itself), then scan again.",
        permission_names(missing)
    )
}

#[cfg(test)]
mod sight_tests {
    use super::permission_bits::*;
    use super::*;

    const GUILD: u64 = 100;
    const MODS: u64 = 7;
    const PLAYERS: u64 = 8;
    const READ: u64 = VIEW_CHANNEL | READ_MESSAGE_HISTORY;

    fn viewer(base: u64, roles: &[u64]) -> Viewer {
        Viewer {
            guild: GuildId::new(GUILD),
            user: UserId::new(42),
            owner: false,
            base,
            roles: roles.iter().map(|r| RoleId::new(*r)).collect(),
        }
    }

    fn role(id: u64, allow: u64, deny: u64) -> Overwrite {
        Overwrite {
            target: OverwriteTarget::Role(RoleId::new(id)),
            allow,
            deny,
        }
    }

    fn member(id: u64, allow: u64, deny: u64) -> Overwrite {
        Overwrite {
            target: OverwriteTarget::Member(UserId::new(id)),
            allow,
            deny,
        }
    }

    #[test]
    fn what_reading_a_history_lacks_is_named_as_discord_names_it() {
        assert!(missing_to_read(READ).is_empty());
        assert_eq!(
            missing_to_read(VIEW_CHANNEL),
            vec![ReadPermission::ReadMessageHistory]
        );
        assert_eq!(missing_to_read(0), ReadPermission::ALL.to_vec());
        assert_eq!(
            permission_names(&ReadPermission::ALL),
            "View Channel and Read Message History"
        );
        let reason = cannot_read_reason(&[ReadPermission::ReadMessageHistory]);
        assert!(
            reason.contains("grant Tavern Read Message History"),
            "{reason}"
        );
    }

    #[test]
    fn without_overwrites_the_guild_permissions_decide() {
        assert!(viewer(READ, &[]).reads(&[]));
        assert!(
            !viewer(VIEW_CHANNEL, &[]).reads(&[]),
            "no history, no clips"
        );
        assert!(!viewer(0, &[]).reads(&[]));
    }

    #[test]
    fn a_denied_everyone_hides_the_channel_unless_a_role_or_the_member_is_allowed() {
        let mods_only = [role(GUILD, 0, VIEW_CHANNEL), role(MODS, VIEW_CHANNEL, 0)];
        assert!(!viewer(READ, &[]).reads(&mods_only));
        assert!(!viewer(READ, &[PLAYERS]).reads(&mods_only));
        assert!(viewer(READ, &[MODS]).reads(&mods_only));
        let with_member = [mods_only[0].clone(), member(42, VIEW_CHANNEL, 0)];
        assert!(viewer(READ, &[]).reads(&with_member));
        let someone_else = [mods_only[0].clone(), member(43, VIEW_CHANNEL, 0)];
        assert!(!viewer(READ, &[]).reads(&someone_else));
    }

    #[test]
    fn roles_combine_denies_then_allows_and_the_member_overwrite_is_last() {
        // One role denies, another allows: the allow wins (denies are applied first).
        let split = [role(PLAYERS, 0, VIEW_CHANNEL), role(MODS, VIEW_CHANNEL, 0)];
        assert!(viewer(READ, &[PLAYERS, MODS]).reads(&split));
        assert!(!viewer(READ, &[PLAYERS]).reads(&split));
        // The member's own deny beats every role's allow.
        let member_denied = [role(MODS, VIEW_CHANNEL, 0), member(42, 0, VIEW_CHANNEL)];
        assert!(!viewer(READ, &[MODS]).reads(&member_denied));
        // A role's allow beats @everyone's deny; @everyone's allow does not beat a role's deny.
        let everyone_allows = [role(GUILD, VIEW_CHANNEL, 0), role(PLAYERS, 0, VIEW_CHANNEL)];
        assert!(!viewer(READ, &[PLAYERS]).reads(&everyone_allows));
        // A deny of history alone hides the clips too.
        assert!(!viewer(READ, &[]).reads(&[role(GUILD, 0, READ_MESSAGE_HISTORY)]));
        // An overwrite for a role the member lacks changes nothing.
        assert!(viewer(READ, &[]).reads(&[role(MODS, 0, VIEW_CHANNEL)]));
    }

    #[test]
    fn the_owner_and_administrators_see_everything() {
        let hidden = [role(GUILD, 0, READ), member(42, 0, READ)];
        let owner = Viewer {
            owner: true,
            ..viewer(0, &[])
        };
        assert!(owner.reads(&hidden) && owner.reads_every_thread(&hidden));
        let admin = viewer(ADMINISTRATOR, &[]);
        assert!(admin.reads(&hidden) && admin.reads_every_thread(&hidden));
    }

    #[test]
    fn threads_show_only_to_those_who_see_every_thread_of_their_parent() {
        let (open, hidden, thread, orphan, gone) = (
            ChannelId::new(1),
            ChannelId::new(2),
            ChannelId::new(3),
            ChannelId::new(4),
            ChannelId::new(5),
        );
        let deny_everyone = [role(GUILD, 0, VIEW_CHANNEL)];
        let listed = [
            ListedChannel {
                id: open,
                overwrites: &[],
            },
            ListedChannel {
                id: hidden,
                overwrites: &deny_everyone,
            },
        ];
        let stored = [
            (open, StoredKind::Channel),
            (hidden, StoredKind::Channel),
            (thread, StoredKind::Thread { parent: Some(open) }),
            (orphan, StoredKind::Thread { parent: None }),
            (gone, StoredKind::Channel),
        ];
        let plain = viewer(READ, &[]);
        assert_eq!(
            visible_channels(&plain, &listed, &stored),
            [open].into(),
            "a plain member: not the hidden channel, not the thread, not what Discord no longer lists"
        );
        assert!(thread_parents_read(&plain, &listed).is_empty());
        let thread_manager = viewer(READ | MANAGE_THREADS, &[]);
        assert_eq!(
            visible_channels(&thread_manager, &listed, &stored),
            [open, thread].into()
        );
        let admin = viewer(ADMINISTRATOR, &[]);
        assert_eq!(
            visible_channels(&admin, &listed, &stored),
            [open, hidden, thread].into(),
            "a thread of unknown parent and a channel Discord does not list stay hidden"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    fn settings(v: Value) -> Settings {
        Settings::from_json(v).expect("object")
    }

    fn mid(n: u64) -> MessageId {
        MessageId::new(n)
    }

    fn clip(name: &str, mime: Option<&'static str>) -> (String, Option<&'static str>) {
        (name.to_owned(), mime)
    }

    fn matches(m: &ClipMatcher, (name, mime): (String, Option<&str>)) -> bool {
        m.matches(&Attachment {
            filename: &name,
            content_type: mime,
        })
    }

    // ---- ids

    #[test]
    fn snowflakes_parse_from_text_and_zero_or_junk_is_refused() {
        let id: UserId = parse_snowflake("user id", "80351110224678912").unwrap();
        assert_eq!(id.get(), 80351110224678912);
        for bad in ["0", "", "-1", "12a", "99999999999999999999"] {
            let err = parse_snowflake::<discord::model::UserMarker>("user id", bad).unwrap_err();
            assert_eq!(err.what, "user id");
            assert_eq!(err.value, bad);
        }
    }

    #[test]
    fn scan_run_ids_round_trip_through_text() {
        let raw = "6f1c2a7e-3b4d-4c5e-8f90-a1b2c3d4e5f6";
        let id: ScanRunId = raw.parse().unwrap();
        assert_eq!(id.to_string(), raw);
        assert!(ScanRunId::parse("not-a-uuid").is_err());
    }

    // ---- settings

    #[test]
    fn settings_must_be_an_object() {
        assert_eq!(
            Settings::from_json(json!([1])),
            Err(SettingsError::NotAnObject { found: "an array" })
        );
        assert_eq!(Settings::from_json(json!({})), Ok(Settings::empty()));
    }

    #[test]
    fn channel_overrides_merge_into_guild_settings_as_a_merge_patch() {
        let guild = settings(json!({
            "prefix": "!",
            "scan_nsfw": false,
            "video_formats": ["mp4", "webm"],
            "limits": {"max_mb": 50, "min_s": 1},
            "include_pattern": "clip"
        }));
        let channel = settings(json!({
            "scan_nsfw": true,
            "video_formats": ["mkv"],
            "limits": {"max_mb": 500, "note": null},
            "include_pattern": null,
            "new_key": 1
        }));

        let merged = guild.merged_with(&channel);

        assert_eq!(
            merged.to_json(),
            json!({
                "prefix": "!",
                "scan_nsfw": true,
                "video_formats": ["mkv"],
                "limits": {"max_mb": 500, "min_s": 1},
                "new_key": 1
            })
        );
    }

    #[test]
    fn an_object_override_replaces_a_scalar_and_empty_overrides_change_nothing() {
        let guild = settings(json!({"a": 1, "b": {"c": 2}}));
        assert_eq!(guild.merged_with(&Settings::empty()), guild);
        let merged = guild.merged_with(&settings(json!({"a": {"x": null, "y": 3}})));
        assert_eq!(merged.to_json(), json!({"a": {"y": 3}, "b": {"c": 2}}));
    }

    #[test]
    fn auto_scan_defaults_to_off_and_must_be_a_boolean() {
        assert_eq!(Settings::empty().auto_scan(), Ok(false));
        assert_eq!(settings(json!({"auto_scan": true})).auto_scan(), Ok(true));
        let err = settings(json!({"auto_scan": 1})).auto_scan().unwrap_err();
        assert!(err.to_string().contains("auto_scan"), "{err}");
    }

    #[test]
    fn a_null_setting_reads_as_absent() {
        let s = settings(json!({"scan_nsfw": null}));
        assert_eq!(s.get("scan_nsfw"), None);
    }

    // ---- matcher

    #[test]
    fn defaults_allow_mp4_webm_mov_mkv_and_m4v_and_skip_nsfw_channels() {
        let m = ClipMatcher::from_settings(&Settings::empty()).unwrap();
        assert!(matches(&m, clip("a.mp4", None)));
        assert!(matches(&m, clip("a.WEBM", None)));
        assert!(matches(&m, clip("IMG_0001.MOV", None)));
        assert!(matches(&m, clip("noext", Some("video/quicktime"))));
        assert!(matches(&m, clip("a.mkv", Some("video/x-matroska"))));
        assert!(matches(&m, clip("a.M4V", None)));
        assert!(!matches(&m, clip("a.avi", None)));
        assert!(!matches(&m, clip("a.png", Some("image/png"))));
        assert!(m.scans_channel(false));
        assert!(!m.scans_channel(true));
    }

    #[test]
    fn images_audio_and_documents_are_never_clips_whatever_their_name() {
        let m = ClipMatcher::from_settings(&Settings::empty()).unwrap();
        for (name, mime) in [
            ("x.mp4", Some("image/png")),
            ("shot.png", Some("image/png")),
            ("shot.gif", None),
            ("song.webm", Some("audio/webm")),
            ("voice.m4a", Some("audio/mp4")),
            ("notes.pdf", Some("application/pdf")),
            ("video.mp4.txt", Some("text/plain; charset=utf-8")),
            ("video.mp4.txt", None),
            ("video.mp4.", None),
            ("mp4", Some("application/octet-stream")),
        ] {
            assert!(!matches(&m, clip(name, mime)), "{name} ({mime:?})");
        }
    }

    #[test]
    fn a_video_mime_type_or_an_allowed_extension_makes_a_clip() {
        let m = ClipMatcher::from_settings(&Settings::empty()).unwrap();
        // The type says video and the extension is allowed.
        assert!(matches(&m, clip("clip.mp4", Some("video/quicktime"))));
        // The type is an allowed video type, whatever the name.
        assert!(matches(&m, clip("download", Some("Video/MP4"))));
        // No type, or a type that says nothing: the extension decides.
        assert!(matches(&m, clip("clip.MkV", None)));
        assert!(matches(
            &m,
            clip("clip.webm", Some("application/octet-stream"))
        ));
        assert!(matches(&m, clip("clip.webm", Some(""))));
        // A video type of a format not allowed, with a name not allowed.
        assert!(!matches(&m, clip("clip.flv", Some("video/x-flv"))));
        let narrow =
            ClipMatcher::from_settings(&settings(json!({"video_formats": ["webm"]}))).unwrap();
        assert!(!matches(&narrow, clip("a.mp4", Some("video/mp4"))));
        assert!(matches(&narrow, clip("a.webm", Some("video/webm"))));
        let wide = ClipMatcher::from_settings(&settings(json!({
            "video_formats": ["mp4", "avi", "video/x-flv"]
        })))
        .unwrap();
        assert!(matches(&wide, clip("a.avi", None)));
        assert!(matches(&wide, clip("a.bin", Some("video/x-msvideo"))));
        assert!(matches(&wide, clip("stream", Some("video/x-flv"))));
    }

    #[test]
    fn video_star_matches_every_video_type_and_nothing_else() {
        let any =
            ClipMatcher::from_settings(&settings(json!({"video_formats": ["video/*"]}))).unwrap();
        assert!(matches(&any, clip("a.mp4", Some("video/mp4"))));
        assert!(matches(&any, clip("stream", Some("video/x-flv"))));
        assert!(!matches(&any, clip("a.png", Some("image/png"))));
        assert!(!matches(&any, clip("a.mp4", Some("image/png"))));
    }

    #[test]
    fn a_typed_format_must_be_a_video_extension_or_type() {
        for ok in ["mp4", ".MOV", "avi", "video/x-flv", "video/*", "VIDEO/*"] {
            assert_eq!(check_new_video_format(ok), Ok(()), "{ok}");
        }
        for bad in ["exe", "gif", "image/gif", "video/", "*/*", "video/x*"] {
            let err = check_new_video_format(bad).unwrap_err();
            assert_eq!(
                err,
                SettingsError::NotVideo {
                    entry: bad.to_owned()
                },
                "{bad}"
            );
            let text = err.to_string();
            assert!(
                text.contains("mp4, webm") && text.contains("video/*"),
                "{text}"
            );
        }
        assert!(matches!(
            check_new_video_format("my.video"),
            Err(SettingsError::BadFormat { .. })
        ));
    }

    #[test]
    fn cdn_urls_expire_at_their_ex_parameter() {
        let url = "https://cdn.discordapp.com/attachments/1/2/a.mp4?ex=6841f3c0&is=68409f40&hm=ab";
        assert_eq!(
            cdn_url_expiry(url),
            DateTime::from_timestamp(0x6841_f3c0, 0)
        );
        assert_eq!(cdn_url_expiry("https://cdn.discordapp.com/a.mp4"), None);
        assert_eq!(cdn_url_expiry("https://x/a.mp4?ex=zz"), None);
        assert_eq!(
            cdn_url_expiry("https://x/a.mp4?hm=1&ex=10#f"),
            DateTime::from_timestamp(16, 0)
        );
    }

    #[test]
    fn formats_match_by_mime_type_or_case_insensitive_extension() {
        let m = ClipMatcher::from_settings(&settings(json!({
            "video_formats": ["MP4", ".mkv", "video/x-flv"]
        })))
        .unwrap();
        assert!(matches(&m, clip("clip.mp4", None)));
        assert!(matches(&m, clip("clip.Mp4", None)));
        assert!(matches(&m, clip("clip", Some("video/mp4"))));
        assert!(matches(
            &m,
            clip("clip.bin", Some("VIDEO/MP4; codecs=avc1"))
        ));
        assert!(matches(&m, clip("clip.MKV", None)));
        assert!(matches(&m, clip("x", Some("video/x-matroska"))));
        assert!(matches(&m, clip("x", Some("video/x-flv"))));
        assert!(
            !matches(&m, clip("x.flv", None)),
            "a MIME entry is no extension"
        );
        assert!(!matches(&m, clip("clip.webm", Some("video/webm"))));
        assert!(!matches(&m, clip("mp4", None)), "no extension at all");
        assert!(!matches(&m, clip("clip.mp4.txt", Some("text/plain"))));
    }

    #[test]
    fn an_empty_allow_list_allows_nothing() {
        let m = ClipMatcher::from_settings(&settings(json!({"video_formats": []}))).unwrap();
        assert!(!matches(&m, clip("a.mp4", Some("video/mp4"))));
    }

    #[test]
    fn include_and_exclude_patterns_filter_file_names() {
        let m = ClipMatcher::from_settings(&settings(json!({
            "include_pattern": "(?i)highlight",
            "exclude_pattern": "^SPOILER_"
        })))
        .unwrap();
        assert!(matches(&m, clip("Highlight-boss.mp4", None)));
        assert!(!matches(&m, clip("random.mp4", None)));
        assert!(!matches(&m, clip("SPOILER_highlight.mp4", None)));
        let empty = ClipMatcher::from_settings(&settings(json!({"include_pattern": ""}))).unwrap();
        assert!(matches(&empty, clip("random.mp4", None)));
    }

    #[test]
    fn nsfw_channels_are_scanned_only_with_scan_nsfw() {
        let m = ClipMatcher::from_settings(&settings(json!({"scan_nsfw": true}))).unwrap();
        assert!(m.scans_channel(true));
        let a = Attachment {
            filename: "a.mp4",
            content_type: None,
        };
        assert!(m.message_matches(true, [&a]));
        let strict = ClipMatcher::from_settings(&Settings::empty()).unwrap();
        assert!(!strict.message_matches(true, [&a]));
        assert!(strict.message_matches(false, [&a]));
        assert!(!strict.message_matches(false, []));
    }

    #[test]
    fn bad_settings_are_errors_naming_the_setting() {
        let err = ClipMatcher::from_settings(&settings(json!({"include_pattern": "(unclosed"})))
            .unwrap_err();
        assert!(
            matches!(
                err,
                SettingsError::BadPattern {
                    setting: "include_pattern",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("include_pattern"));
        assert_eq!(
            err.to_string(),
            "setting `include_pattern` is not a valid regular expression: unclosed group (at character 1)"
        );
        let err =
            ClipMatcher::from_settings(&settings(json!({"include_pattern": "ab["}))).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("expression: unclosed character class (at character 3)"),
            "{err}"
        );
        let err = ClipMatcher::from_settings(&settings(json!({"exclude_pattern": 3}))).unwrap_err();
        assert_eq!(
            err,
            SettingsError::WrongType {
                setting: "exclude_pattern",
                expected: "a string",
                found: "a number"
            }
        );
        let err =
            ClipMatcher::from_settings(&settings(json!({"video_formats": "mp4"}))).unwrap_err();
        assert!(err.to_string().contains("video_formats"), "{err}");
        let err = ClipMatcher::from_settings(&settings(json!({"video_formats": ["mp4", 4]})))
            .unwrap_err();
        assert!(matches!(
            err,
            SettingsError::WrongType {
                setting: "video_formats",
                ..
            }
        ));
        let err =
            ClipMatcher::from_settings(&settings(json!({"video_formats": [" "]}))).unwrap_err();
        assert!(matches!(err, SettingsError::BadFormat { .. }), "{err:?}");
        let err = ClipMatcher::from_settings(&settings(json!({"scan_nsfw": "yes"}))).unwrap_err();
        assert!(matches!(
            err,
            SettingsError::WrongType {
                setting: "scan_nsfw",
                ..
            }
        ));
    }

    #[test]
    fn a_channel_override_is_what_the_matcher_sees() {
        let guild = settings(json!({"video_formats": ["mp4"], "scan_nsfw": false}));
        let channel = settings(json!({"video_formats": ["webm"], "scan_nsfw": true}));
        let m = ClipMatcher::from_settings(&guild.merged_with(&channel)).unwrap();
        assert!(!matches(&m, clip("a.mp4", None)));
        assert!(matches(&m, clip("a.webm", None)));
        assert!(m.scans_channel(true));
    }

    // ---- scan status

    #[test]
    fn status_labels_round_trip_in_the_enum_order() {
        let labels: Vec<&str> = ScanStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            labels,
            ["queued", "running", "succeeded", "failed", "canceled"]
        );
        for s in ScanStatus::ALL {
            assert_eq!(s.as_str().parse::<ScanStatus>(), Ok(s));
        }
        assert!("done".parse::<ScanStatus>().is_err());
    }

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        use ScanStatus::*;
        let allowed = [
            (Queued, Running),
            (Queued, Canceled),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Canceled),
        ];
        for from in ScanStatus::ALL {
            for to in ScanStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
                match from.transition(to) {
                    Ok(next) => assert_eq!(next, to),
                    Err(e) => assert_eq!(e, IllegalTransition { from, to }),
                }
            }
        }
        assert!(Succeeded.is_final() && Failed.is_final() && Canceled.is_final());
        assert!(!Queued.is_final() && !Running.is_final());
        assert_eq!(
            Queued.transition(Succeeded).unwrap_err().to_string(),
            "a scan run cannot go from queued to succeeded"
        );
    }

    // ---- paging

    fn full_page(from: u64) -> Vec<MessageId> {
        (from..from + PAGE_SIZE as u64).map(mid).collect()
    }

    #[test]
    fn a_deep_scan_walks_backward_from_the_newest_message() {
        let w = ScanWindow::deep(None);
        assert_eq!(w.direction(), ScanDirection::Backward);
        assert_eq!(
            w.request(),
            PageRequest {
                anchor: PageAnchor::Latest,
                limit: 100
            }
        );

        let mut page = full_page(1000);
        page.reverse(); // Discord lists newest first; order must not matter.
        let next = w.after_page(&page).expect("a full page means more history");

        assert_eq!(next.before(), Some(mid(1000)));
        assert_eq!(next.after(), None);
        assert_eq!(next.request().anchor, PageAnchor::Before(mid(1000)));
        assert_eq!(
            next.after_page(&full_page(900)[..40]),
            None,
            "a short page ends it"
        );
        assert_eq!(next.after_page(&[]), None);
    }

    #[test]
    fn a_catch_up_walks_forward_from_last_message_id() {
        let w = ScanWindow::catch_up(Some(mid(500)));
        assert_eq!(w.direction(), ScanDirection::Forward);
        assert_eq!(w.request().anchor, PageAnchor::After(mid(500)));

        let next = w.after_page(&full_page(501)).expect("more");

        assert_eq!(next.after(), Some(mid(600)));
        assert_eq!(next.request().anchor, PageAnchor::After(mid(600)));
        assert_eq!(next.after_page(&full_page(601)[..99]), None);
    }

    #[test]
    fn catching_up_a_channel_never_scanned_is_a_deep_scan() {
        assert_eq!(ScanWindow::catch_up(None), ScanWindow::deep(None));
    }

    #[test]
    fn a_quick_scan_continues_only_from_a_history_read_to_its_start() {
        let seen_live = ScanStart {
            last_message_id: Some(mid(900)),
            history_read: false,
        };
        let read = ScanStart {
            history_read: true,
            ..seen_live
        };
        // A live message alone moved last_message_id: the history is still unread.
        assert_eq!(ScanMode::Quick.window(&seen_live), ScanWindow::deep(None));
        assert_eq!(
            ScanMode::Quick.window(&read),
            ScanWindow::catch_up(Some(mid(900)))
        );
        // After an outage: forward from the index's position either way.
        for start in [seen_live, read] {
            assert_eq!(
                ScanMode::CatchUp.window(&start),
                ScanWindow::catch_up(Some(mid(900)))
            );
            assert_eq!(ScanMode::Deep.window(&start), ScanWindow::deep(None));
        }
        let nothing = ScanStart {
            last_message_id: None,
            history_read: false,
        };
        assert_eq!(ScanMode::CatchUp.window(&nothing), ScanWindow::deep(None));
    }

    #[test]
    fn a_bounded_window_stops_at_its_far_bound_and_filters_the_overshoot() {
        let w = ScanWindow::between(Some(mid(100)), Some(mid(250))).unwrap();
        assert_eq!(w.direction(), ScanDirection::Forward);
        let first = w.after_page(&full_page(101)).expect("not at 250 yet");
        assert_eq!(first.after(), Some(mid(200)));
        assert_eq!(first.before(), Some(mid(250)));
        let page = full_page(201); // 201..=300 runs past 250
        assert_eq!(first.after_page(&page), None);
        let inside: Vec<u64> = page
            .iter()
            .filter(|id| first.contains(**id))
            .map(|id| id.get())
            .collect();
        assert_eq!(inside, (201..250).collect::<Vec<_>>());
        assert!(
            !w.contains(mid(100)) && !w.contains(mid(250)),
            "bounds are exclusive"
        );
    }

    #[test]
    fn a_window_resumes_from_its_stored_bounds() {
        // A deep scan interrupted after two pages resumes with `before` where it stopped.
        let w = ScanWindow::deep(None);
        let after_two = w
            .after_page(&full_page(900))
            .and_then(|w| w.after_page(&full_page(800)))
            .unwrap();
        let resumed = ScanWindow::between(after_two.after(), after_two.before()).unwrap();
        assert_eq!(resumed, after_two);
        assert_eq!(resumed.request().anchor, PageAnchor::Before(mid(800)));
    }

    #[test]
    fn a_history_splits_into_windows_that_cover_every_id_once() {
        let parts = split_history(mid(100), mid(200), 4);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].after(), Some(mid(100)));
        assert_eq!(parts[3].before(), Some(mid(200)));
        for id in 101..200 {
            let holders = parts.iter().filter(|w| w.contains(mid(id))).count();
            assert_eq!(holders, 1, "id {id}");
        }
        assert!(
            !parts
                .iter()
                .any(|w| w.contains(mid(100)) || w.contains(mid(200)))
        );
        assert!(
            parts
                .iter()
                .all(|w| w.direction() == ScanDirection::Forward)
        );
        assert_eq!(
            split_history(mid(100), mid(104), 8).len(),
            1,
            "too small to share"
        );
        assert!(
            split_history(mid(100), mid(101), 4).is_empty(),
            "nothing in between"
        );
        let huge = split_history(mid(1), mid(u64::MAX), 3);
        assert_eq!(huge.len(), 3);
    }

    #[test]
    fn an_empty_window_is_refused() {
        assert_eq!(
            ScanWindow::between(Some(mid(5)), Some(mid(5))),
            Err(EmptyWindow {
                after: mid(5),
                before: mid(5)
            })
        );
        assert!(ScanWindow::between(Some(mid(4)), Some(mid(5))).is_ok());
    }

    // ---- install intents

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn state_tokens_are_url_safe_random_and_long() {
        let a = IntentState::generate();
        let b = IntentState::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43, "32 bytes in unpadded base64url");
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(IntentState::parse_token(a.expose()), Ok(a.clone()));
        assert_eq!(format!("{a:?}"), "IntentState([redacted])");
        let fixed = IntentState::from_entropy([0xfb; STATE_BYTES]);
        assert!(fixed.expose().starts_with("-_v7"));
    }

    #[test]
    fn foreign_states_are_refused_before_any_lookup() {
        for bad in [
            "",
            "short",
            "has space in it!!",
            "a/b+c=ddddddddddddddd",
            &"x".repeat(129),
        ] {
            assert_eq!(IntentState::parse_token(bad), Err(BadState), "{bad}");
        }
    }

    #[test]
    fn an_intent_lives_ten_minutes_and_only_its_user_may_consume_it() {
        let alice = UserId::new(1);
        let bob = UserId::new(2);
        let intent = InstallIntent::new(
            IntentState::from_entropy([1; STATE_BYTES]),
            alice,
            GuildId::new(9),
            at(0),
        );
        assert_eq!(intent.expires_at, at(600));

        assert_eq!(consume_verdict(Some(&intent), alice, at(599)), Ok(()));
        assert_eq!(
            consume_verdict(Some(&intent), bob, at(10)),
            Err(ConsumeError::Forbidden)
        );
        assert_eq!(
            consume_verdict(Some(&intent), alice, at(600)),
            Err(ConsumeError::Expired)
        );
        assert_eq!(
            consume_verdict(Some(&intent), bob, at(601)),
            Err(ConsumeError::Expired),
            "an expired intent reveals nothing about its owner"
        );
        assert_eq!(
            consume_verdict(None, alice, at(0)),
            Err(ConsumeError::Unknown)
        );
        assert!(ConsumeError::Forbidden.is_forbidden());
        assert!(!ConsumeError::Expired.is_forbidden() && !ConsumeError::Unknown.is_forbidden());
    }

    #[test]
    fn intent_times_are_cut_to_microseconds() {
        let now = DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap();
        let intent = InstallIntent::new(
            IntentState::from_entropy([2; STATE_BYTES]),
            UserId::new(1),
            GuildId::new(2),
            now,
        );
        assert_eq!(intent.created_at.timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn the_purge_keeps_intents_for_five_minutes_after_expiry() {
        assert_eq!(purge_cutoff(at(900), PURGE_GRACE), at(600));
    }
}
