//! The lifecycle of the game channels, every quarter of an hour: keep each channel's expiration at its
//! series' last session, remind the channel once it has expired (unless snoozed or
//! already ending), and delete what `end adventure` scheduled: the text and voice
//! channel, both roles and every key of the series. Organisers hear about deletions in
//! the alerts channel.
//!
//! # A channel an admin closed to Tavern
//! A server admin may take away what Tavern needs in a game channel (Discord then
//! answers 403 Missing Access, or Missing Permissions). That is the admin's choice,
//! not a failure of the run, so it is not counted in [`LifecycleReport::failed`] (the
//! job does not fail every quarter hour for it):
//! - **A reminder** Discord refuses is a line in [`LifecycleReport::skipped`] with
//!   what to give back (View Channel and Send Messages), at every run while it is
//!   due; it is not recorded as sent, so the hosts get it at the first run after the
//!   channel is given back. The organisers are alerted once, with a WARN in the log,
//!   through the same record as the Discord sync's (Tavern's own key
//!   `schema::CLOSED_CHANNELS`): a channel the sync already told them about is not
//!   told again, and a reminder that goes through again clears it.
//! - **A deletion** Discord refuses for the text or the voice channel is held, not
//!   half done: nothing more of the game is deleted (its roles stay, nothing becomes
//!   an orphan, every key of the series stays, the deletion stays scheduled), the
//!   run's report has a skipped line, and the organisers are alerted once (Tavern's
//!   own key `schema::UNDELETABLE_CHANNELS`) that an admin must delete the channel or
//!   give Tavern View Channel and Manage Channels there again. Every run tries the
//!   deletion again (one request, still no failure), so whichever the admin does,
//!   the next run finishes it (a channel deleted by hand answers 404, which counts
//!   as done) and forgets the series. Tavern does not forget the channel before:
//!   an admin may give it back, and a new session scheduled meanwhile cancels the
//!   deletion as always (and clears the record, so a later refusal is told again).
//!   Recording it as an orphan instead would forget the series while the channel
//!   stays, and fail the sync's orphan deletion at every run.
//! - **A role** (the game's guest or host role) Discord refuses to delete (403
//!   Missing Permissions: an admin moved it above Tavern's own role, or took Manage
//!   Roles from Tavern) holds the end of the game the same way, after what could be
//!   deleted is gone (the channels go at the time promised, the other role too): every
//!   key of the series stays, the deletion stays scheduled, nothing becomes an orphan,
//!   the run's report has a skipped line, and the organisers are alerted once
//!   (Tavern's own key `schema::UNDELETABLE_ROLES`) that an admin must delete the role
//!   or drag Tavern's role above it. The next run tries every deletion again (what is
//!   gone answers 404, which counts as done, as does a role deleted by hand) and
//!   finishes once the role is gone.
//! - **A new session while the end is held**: a later session cancels the deletion as
//!   always, but part of the game may be gone by then (the channels went before the
//!   role that held the rest). The run that cancels a deletion already due first asks
//!   Discord what is left: what Discord no longer has (or what waits among the
//!   orphans) is forgotten ([`Repo::forget_gone_objects`]; the text channel takes its
//!   lifecycle keys and both roles' relations with it), an old role still there is
//!   deleted if Discord lets Tavern (else it is named to the organisers as no longer
//!   the game's), the organisers are told, and the next sync gives the game a new
//!   channel, roles or voice channel as for a new game
//!   ([`LifecycleReport::resumed`]). Without this the sync would skip the series at
//!   every run because its channel is gone.
//!
//! The rules are [`crate::domain`]'s ([`ChannelLifecycle`], [`expiration_time`]); this
//! module reads what they need, acts on Discord and stores the outcome through
//! [`Repo`]. [`run_lifecycle`] is one run with "now" passed in, so tests drive it with
//! the `ManualClock`; [`lifecycle_job`] wraps it in the kit's [`Job`] every
//! [`LIFECYCLE_EVERY`], whose Redis lock keeps two replicas from running it in the
//! same period.

use std::sync::Arc;
use std::time::Duration;

use base::Clock;
use chrono::{DateTime, Utc};
use discord::model::{ChannelEdit, Overwrite, OverwriteTarget};
use discord::{ChannelId, Discord, Reply, RestError, RoleId};
use feature::Job;

use crate::config::DiscordSettings;
use crate::domain::{ChannelLifecycle, EventSeriesId, SeriesType, expiration_time};
use crate::repo::{GoneObjects, Orphan, Repo, RepoError};

/// The job's name (and so its lock, `tavern:lock:job:campaigns-lifecycle`).
pub const LIFECYCLE_JOB: &str = "campaigns-lifecycle";

/// How often the job runs: every quarter of an hour, so a deletion `/end-adventure`
/// scheduled happens within 15 minutes of the time it promised. Reminders are no
/// more frequent for it: each is due only [`crate::domain::reminder_interval`] after the
/// stored last one.
pub const LIFECYCLE_EVERY: Duration = Duration::from_secs(15 * 60);

/// Why a run failed. A run goes on past a failing channel (logged, counted); only a
/// failure to read the list of channels stops it.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("reading the game channels: {0}")]
    Repo(#[from] RepoError),
    #[error("{failed} of {channels} game channels failed; see the log")]
    Channels { failed: usize, channels: usize },
}

/// What one run did, for the log and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    pub channels: usize,
    /// Channels whose expiration moved (a new last session).
    pub expirations_set: usize,
    pub reminded: Vec<ChannelId>,
    /// Series whose channels and keys were deleted.
    pub deleted: Vec<EventSeriesId>,
    /// Series whose end had begun when a later session came: what was deleted of them
    /// was forgotten, for the sync to make again.
    pub resumed: Vec<EventSeriesId>,
    /// Discord objects that could not be deleted and went to the `orphaned_*` sets.
    pub orphaned: Vec<Orphan>,
    /// What Tavern could not do because an admin closed a channel to it: one line per
    /// channel, with what to give back. Not failures: see the module's docs.
    pub skipped: Vec<String>,
    pub failed: usize,
}

/// The job: [`run_lifecycle`] with the clock's "now", right after start-up and then
/// every [`LIFECYCLE_EVERY`].
pub fn lifecycle_job(
    repo: Repo,
    discord: Discord,
    settings: DiscordSettings,
    clock: Arc<dyn Clock>,
) -> Job {
    let settings = Arc::new(settings);
    Job::every(LIFECYCLE_JOB, LIFECYCLE_EVERY, move || {
        let (repo, discord, settings, clock) = (
            repo.clone(),
            discord.clone(),
            Arc::clone(&settings),
            Arc::clone(&clock),
        );
        async move {
            let report = run_lifecycle(&repo, &discord, &settings, clock.now()).await?;
            if report.failed > 0 {
                return Err(LifecycleError::Channels {
                    failed: report.failed,
                    channels: report.channels,
                });
            }
            Ok(())
        }
    })
    .at_startup()
}

/// One run over every game channel at `now`.
pub async fn run_lifecycle(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    now: DateTime<Utc>,
) -> Result<LifecycleReport, LifecycleError> {
    let channels = repo.game_channels().await?;
    let mut report = LifecycleReport {
        channels: channels.len(),
        ..LifecycleReport::default()
    };
    for channel in channels {
        if let Err(error) = one_channel(repo, discord, settings, channel, now, &mut report).await {
            report.failed += 1;
            tracing::error!(%channel, %error, "lifecycle of a game channel failed");
        }
    }
    tracing::info!(
        channels = report.channels,
        expirations_set = report.expirations_set,
        reminded = report.reminded.len(),
        deleted = report.deleted.len(),
        orphaned = report.orphaned.len(),
        skipped = report.skipped.len(),
        failed = report.failed,
        "channel lifecycle run done"
    );
    Ok(report)
}

/// Why one channel failed.
#[derive(Debug, thiserror::Error)]
enum ChannelError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("Discord: {0}")]
    Discord(#[from] RestError),
}

async fn one_channel(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    channel: ChannelId,
    now: DateTime<Utc>,
    report: &mut LifecycleReport,
) -> Result<(), ChannelError> {
    let Some(series) = repo.channel_series(channel).await? else {
        // Listed without its series relation: `tavern check` reports it; nothing to do.
        return Ok(());
    };
    let wanted = wanted_expiration(repo, channel, &series, now).await?;
    let Some(before) = repo.channel_lifecycle(channel).await? else {
        return Ok(());
    };
    // A later session came after the end of the game began: what was deleted of it
    // is made again by the sync, as for a new game (see the module's docs).
    if let Some(expiration) = wanted
        && before.deletion.is_some_and(|d| d <= now)
        && before.expiration.is_none_or(|e| expiration > e)
        && resume(repo, discord, settings, &series, channel, report).await?
    {
        return Ok(());
    }
    let mut lifecycle = before;
    if let Some(expiration) = wanted
        && repo.set_expiration(channel, expiration).await?
    {
        report.expirations_set += 1;
        let Some(now_stored) = repo.channel_lifecycle(channel).await? else {
            return Ok(());
        };
        lifecycle = now_stored;
    }
    if let Some(deletion) = lifecycle.deletion {
        if deletion <= now {
            delete_series(repo, discord, settings, &series, channel, report).await?;
        }
        return Ok(());
    }
    if lifecycle.reminder_due(now) {
        let (_, host_role) = repo.channel_roles(channel).await?;
        match discord
            .send(channel, &reminder(&lifecycle, host_role))
            .await
        {
            Ok(_) => {}
            Err(error) if error.is_missing_permission() => {
                let why = closed_to_reminders(channel, &error);
                report.skipped.push(format!(
                    "series {series}: reminder in channel {channel} skipped: {why}"
                ));
                match repo.note_closed_channel(channel).await {
                    Ok(true) => {
                        tracing::warn!(%channel, %series, %error, "game channel closed to Tavern: reminder skipped");
                        alert_organisers(
                            discord,
                            settings,
                            &format!(
                                "Tavern cannot remind the hosts of <#{channel}> (series `{series}`) \
                                 that no session is coming up: {why}."
                            ),
                        )
                        .await;
                    }
                    Ok(false) => {
                        tracing::debug!(%channel, %series, "game channel still closed to Tavern: reminder skipped");
                    }
                    Err(e) => {
                        tracing::warn!(%channel, %series, %error, error_recording = %e, "game channel closed to Tavern: reminder skipped (could not record that the organisers were told)");
                    }
                }
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
        if let Err(error) = repo.forget_closed_channel(channel).await {
            tracing::warn!(%channel, %error, "could not forget that a game channel was closed to Tavern");
        }
        repo.record_reminder(channel, now).await?;
        report.reminded.push(channel);
        tracing::info!(%channel, %series, "expiration reminder sent");
    }
    Ok(())
}

/// Keeps the stored expiration at the series' last session; returns whether it moved.
/// A series without events keeps the expiration it has (setting "now" every day would
/// move it every day, and a moved expiration clears a scheduled deletion); one that
/// never had any gets "now". Also called by `/end-adventure`, which decides on the
/// expiration and should not wait for the next run to see a new or moved session.
pub(crate) async fn refresh_expiration(
    repo: &Repo,
    channel: ChannelId,
    series: &EventSeriesId,
    now: DateTime<Utc>,
) -> Result<bool, RepoError> {
    match wanted_expiration(repo, channel, series, now).await? {
        Some(expiration) => repo.set_expiration(channel, expiration).await,
        None => Ok(false),
    }
}

/// The expiration [`refresh_expiration`] stores (`None`: the stored one stays).
async fn wanted_expiration(
    repo: &Repo,
    channel: ChannelId,
    series: &EventSeriesId,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, RepoError> {
    let mut last: Option<DateTime<Utc>> = None;
    for event in repo.series_events(series).await? {
        if let Some(event) = repo.event(&event).await? {
            last = Some(last.map_or(event.time, |t| t.max(event.time)));
        }
    }
    if last.is_none() {
        let stored = repo.channel_lifecycle(channel).await?;
        if stored.and_then(|l| l.expiration).is_some() {
            return Ok(None);
        }
    }
    Ok(Some(expiration_time(last, now)))
}

/// A game whose end had begun (its deletion due, so tried, and held: some of it may be
/// deleted) got a later session. What Discord no longer has (or what waits among the
/// orphans to be deleted) is forgotten, so the next sync makes it again as for a new
/// game; a role left on Discord is no longer the game's, and the organisers are told.
/// Returns whether the text channel went (the game then has no channel until the
/// sync makes one, and nothing more is done for this one). Nothing gone: `false`,
/// and the caller cancels the deletion as always.
async fn resume(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    series: &EventSeriesId,
    channel: ChannelId,
    report: &mut LifecycleReport,
) -> Result<bool, ChannelError> {
    let (guest, host) = repo.channel_roles(channel).await?;
    let voice = repo.series_voice_channel(series).await?;
    let channels: Vec<ChannelId> = discord
        .guild_channels(settings.guild)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let roles: Vec<RoleId> = discord
        .guild_roles(settings.guild)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let orphans = repo.orphans().await?;
    let channel_gone = |c: ChannelId| {
        !channels.contains(&c)
            || orphans.contains(&Orphan::Channel(c))
            || orphans.contains(&Orphan::VoiceChannel(c))
    };
    let role_gone = |r: RoleId| !roles.contains(&r) || orphans.contains(&Orphan::Role(r));
    let gone = GoneObjects {
        text: channel_gone(channel),
        roles: [guest, host].into_iter().flatten().any(role_gone),
        voice: voice.is_some_and(channel_gone),
    };
    if gone == GoneObjects::default() {
        return Ok(false);
    }
    let forgotten = repo.forget_gone_objects(series, channel, gone).await?;
    // An old role still on Discord is no longer the game's: it goes now if it can.
    let mut left = Vec::new();
    for role in forgotten.into_iter().filter(|r| !role_gone(*r)) {
        match discord.delete_role(settings.guild, role).await {
            Ok(()) | Err(RestError::Status { status: 404, .. }) => {}
            Err(error) => {
                tracing::warn!(%series, %role, %error, "could not delete the old role of a game that goes on");
                left.push(role);
            }
        }
    }
    let left: Vec<String> = left.iter().map(ToString::to_string).collect();
    tracing::info!(
        %series,
        %channel,
        text_gone = gone.text,
        roles_gone = gone.roles,
        voice_gone = gone.voice,
        roles_left = %left.join(", "),
        "a new session came after the end of the game began; what was deleted is made again"
    );
    report.resumed.push(series.clone());
    let mut what = Vec::new();
    if gone.text {
        what.push("a new channel");
    }
    if gone.text || gone.roles {
        what.push("new roles");
    }
    if gone.voice {
        what.push("a new voice channel");
    }
    let place = if gone.text {
        format!("channel {channel}")
    } else {
        format!("<#{channel}>")
    };
    let mut alert = format!(
        "A new session of the game in {place} (series `{series}`) was scheduled after \
         Tavern had begun deleting it, so the game goes on: the next sync (within 15 \
         minutes) gives it {} and the players their roles again, as for a new game.",
        what.join(" and ")
    );
    if !left.is_empty() {
        let mentions: Vec<String> = left.iter().map(|r| format!("<@&{r}>")).collect();
        alert.push_str(&format!(
            " Its old role {} is no longer the game's, and Discord refused to delete it: \
             an admin may delete it by hand.",
            mentions.join(" and ")
        ));
    }
    alert_organisers(discord, settings, &alert).await;
    Ok(gone.text)
}

/// `text` addressed to the game's players: it starts with a mention of the guest role,
/// the one mention allowed, so players get a notification and nobody else does (as
/// [`reminder`] pings the host role). Without a guest role it is `text` alone.
pub fn players_notified(text: String, guest: Option<RoleId>) -> Reply {
    match guest {
        Some(role) => Reply::text(format!("<@&{role}> {text}")).ping_role(role),
        None => Reply::text(text),
    }
}

/// The reminder posted in an expired channel; it pings the channel's hosts (whom it
/// addresses) and nobody else.
pub fn reminder(lifecycle: &ChannelLifecycle, host_role: Option<RoleId>) -> Reply {
    let hosts = host_role.map_or_else(|| "Hosts".to_owned(), |r| format!("<@&{r}>"));
    let since = lifecycle
        .expiration
        .map(|t| format!(" (the last session was <t:{}:R>)", t.timestamp()))
        .unwrap_or_default();
    let content = match lifecycle.series_type {
        SeriesType::Adventure => format!(
            "{hosts}: this adventure has no session coming up{since}. If it is over, end it \
             with `/end-adventure` (the channel is deleted 8 hours later); if it goes on, \
             schedule the next session with `/schedule-session`."
        ),
        SeriesType::Campaign => format!(
            "{hosts}: this campaign has no session coming up{since}. Schedule the next one \
             with `/schedule-session`, or ask an organiser to `/snooze` these reminders \
             during a break."
        ),
    };
    let reply = Reply::text(content);
    match host_role {
        Some(role) => reply.ping_role(role),
        None => reply,
    }
}

/// Deletes a series whose deletion time has come: its text channel (unless it is a
/// managed channel the series took over, which is kept), voice channel and both
/// roles on Discord (what cannot be deleted is recorded as an orphan, to retry), then
/// every key of the series in one step; the organisers are told.
async fn delete_series(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    series: &EventSeriesId,
    channel: ChannelId,
    report: &mut LifecycleReport,
) -> Result<(), ChannelError> {
    let (guest, host) = repo.channel_roles(channel).await?;
    let voice = repo.series_voice_channel(series).await?;
    // Its name, for the organisers: once deleted, a `<#id>` mention shows nothing.
    let name = match discord.channel_name(channel).await {
        Ok(Some(name)) => format!("#{name}"),
        _ => format!("channel {channel}"),
    };
    // A managed channel a series took over (`[channel]`) is the organisers': it is
    // given back, not deleted (the game's roles and the bot's overwrite leave it).
    let kept = repo.is_managed_channel(channel).await?;
    // The channels go first: one an admin closed to Tavern holds the rest.
    let mut targets = Vec::new();
    if !kept {
        targets.push(Orphan::Channel(channel));
    }
    targets.extend(voice.map(Orphan::VoiceChannel));
    targets.extend(guest.map(Orphan::Role));
    targets.extend(host.map(Orphan::Role));
    let mut orphaned = Vec::new();
    let mut refused_roles = Vec::new();
    for target in targets {
        let result = match target {
            Orphan::Channel(c) | Orphan::VoiceChannel(c) => discord.delete_channel(c).await,
            Orphan::Role(r) => discord.delete_role(settings.guild, r).await,
        };
        match result {
            Ok(()) => {}
            Err(error) if error.is_missing_permission() => match target {
                Orphan::Channel(closed) | Orphan::VoiceChannel(closed) => {
                    hold_deletion(
                        repo, discord, settings, series, channel, closed, &error, report,
                    )
                    .await;
                    // Whatever went to the orphans before stays there for the sync.
                    report.orphaned.extend(orphaned);
                    return Ok(());
                }
                // The other role is still deleted; the series is held below.
                Orphan::Role(role) => refused_roles.push((role, error)),
            },
            // Already gone (deleted by hand): nothing left to retry.
            Err(RestError::Status { status: 404, .. }) => {}
            Err(error) => {
                tracing::warn!(?target, %error, "could not delete; recorded as an orphan");
                repo.add_orphan(target).await?;
                orphaned.push(target);
            }
        }
    }
    if !refused_roles.is_empty() {
        for (role, error) in &refused_roles {
            hold_role_deletion(
                repo, discord, settings, series, channel, *role, error, report,
            )
            .await;
        }
        // Whatever went to the orphans stays there for the sync.
        report.orphaned.extend(orphaned);
        return Ok(());
    }
    if kept {
        give_back(discord, settings, channel, [guest, host]).await;
    }
    let removed = repo.remove_series(series).await?;
    tracing::info!(%series, %channel, %removed, kept, "game channel deleted");
    let mut alert = if kept {
        format!(
            "The game in {name} (series `{series}`) ended; {name} is a managed channel, so \
             it was kept and only the game's roles (and voice channel) were deleted"
        )
    } else {
        format!("The game channel {name} (series `{series}`) was deleted")
    };
    if orphaned.is_empty() {
        alert.push('.');
    } else {
        alert.push_str(&format!(
            "; {} Discord object(s) could not be deleted and will be retried.",
            orphaned.len()
        ));
    }
    alert_organisers(discord, settings, &alert).await;
    report.orphaned.extend(orphaned);
    report.deleted.push(series.clone());
    Ok(())
}

/// Holds the deletion of a series because Discord refused to delete `closed` (its text
/// or voice channel), which an admin closed to Tavern: a skipped line at every run,
/// and the organisers told once what an admin must do; see the module's docs.
#[allow(clippy::too_many_arguments)]
async fn hold_deletion(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    series: &EventSeriesId,
    channel: ChannelId,
    closed: ChannelId,
    error: &RestError,
    report: &mut LifecycleReport,
) {
    let said = refusal(error);
    let why = format!(
        "a server admin closed channel {closed} to Tavern (Discord answered 403 {said}), so \
         Tavern cannot delete it; an admin must delete it, or give Tavern's role View \
         Channel and Manage Channels there again, and the next run finishes ending the \
         game"
    );
    report.skipped.push(format!(
        "series {series}: deletion of channel {closed} held: {why}"
    ));
    match repo.note_undeletable_channel(closed).await {
        Ok(true) => {
            tracing::warn!(%series, %channel, %closed, %error, "game channel closed to Tavern: deletion held");
            alert_organisers(
                discord,
                settings,
                &format!(
                    "The game in <#{channel}> (series `{series}`) ended, but Tavern cannot \
                     delete <#{closed}>: a server admin closed it to Tavern (Discord answered \
                     403 {said}). An admin must delete it by hand, or give Tavern's role View \
                     Channel and Manage Channels there again; the next run (within 15 \
                     minutes) then deletes what is left of the game (its channels and roles). \
                     Until then Tavern keeps the game as it is."
                ),
            )
            .await;
        }
        Ok(false) => {
            tracing::debug!(%series, %closed, "game channel still closed to Tavern: deletion held");
        }
        Err(e) => {
            tracing::warn!(%series, %closed, %error, error_recording = %e, "game channel closed to Tavern: deletion held (could not record that the organisers were told)");
        }
    }
}

/// Holds the end of a series because Discord refused to delete `role` (its guest or
/// host role): an admin moved it above Tavern's own role, or took Manage Roles from
/// Tavern. What could be deleted is gone (a game's channels go at the time promised);
/// every key of the series stays, so the next run tries the deletion again, finds
/// what is gone already (404, done) and finishes. A skipped line at every run, and the
/// organisers told once what an admin must do; see the module's docs.
#[allow(clippy::too_many_arguments)]
async fn hold_role_deletion(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    series: &EventSeriesId,
    channel: ChannelId,
    role: RoleId,
    error: &RestError,
    report: &mut LifecycleReport,
) {
    let said = refusal(error);
    let what = "an admin must delete the role by hand, or drag Tavern's role above it in \
                Server Settings → Roles (and leave Tavern Manage Roles)";
    report.skipped.push(format!(
        "series {series}: deletion of role {role} held: Discord refused it (403 {said}): it \
         is above Tavern's own role, or Tavern may not manage roles; {what}, and the next \
         run finishes ending the game"
    ));
    match repo.note_undeletable_role(role).await {
        Ok(true) => {
            tracing::warn!(%series, %channel, %role, %error, "game role above Tavern's: deletion held");
            alert_organisers(
                discord,
                settings,
                &format!(
                    "The game in <#{channel}> (series `{series}`) ended, but Tavern cannot \
                     delete its role <@&{role}> (Discord answered 403 {said}): the role is \
                     above Tavern's own role in the server's list, or Tavern may not manage \
                     roles. To finish, {what}; the next run (within 15 minutes) then ends \
                     the game. Until then Tavern keeps the game's record."
                ),
            )
            .await;
        }
        Ok(false) => {
            tracing::debug!(%series, %role, "game role still above Tavern's: deletion held");
        }
        Err(e) => {
            tracing::warn!(%series, %role, %error, error_recording = %e, "game role above Tavern's: deletion held (could not record that the organisers were told)");
        }
    }
}

/// What Discord said when it refused Tavern a channel an admin closed to it.
fn refusal(error: &RestError) -> &'static str {
    match error.code() {
        Some(50013) => "Missing Permissions",
        _ => "Missing Access",
    }
}

/// What the organisers and the report read about a reminder Discord refused.
fn closed_to_reminders(channel: ChannelId, error: &RestError) -> String {
    let said = refusal(error);
    format!(
        "a server admin closed channel {channel} to Tavern (Discord answered 403 {said}); \
         give Tavern's role View Channel and Send Messages there again (and Manage \
         Channels, so Tavern can delete it when the game ends), and the next run reminds \
         the hosts"
    )
}

/// Gives a managed channel a series took over back to the organisers: removes the
/// bot's own overwrite and any left of the game's roles (the sync changed nothing
/// else of it). A failure is logged: the channel works as it is, only tidier without.
async fn give_back(
    discord: &Discord,
    settings: &DiscordSettings,
    channel: ChannelId,
    roles: [Option<RoleId>; 2],
) {
    let result = async {
        let bot = discord.current_user_id().await?;
        let channels = discord.guild_channels(settings.guild).await?;
        let Some(current) = channels.into_iter().find(|c| c.id == channel) else {
            return Ok(());
        };
        let ours = |o: &Overwrite| match o.target {
            OverwriteTarget::Member(u) => u == bot,
            OverwriteTarget::Role(r) => roles.contains(&Some(r)),
        };
        if !current.overwrites.iter().any(ours) {
            return Ok(());
        }
        let rest: Vec<Overwrite> = current
            .overwrites
            .iter()
            .filter(|o| !ours(o))
            .cloned()
            .collect();
        let edit = ChannelEdit {
            overwrites: Some(rest),
            ..ChannelEdit::default()
        };
        discord.edit_channel(channel, &edit).await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%channel, %error, "could not remove the bot's overwrite from a managed channel it gives back");
    }
}

/// Posts `text` in the organisers' alerts channel, if one is configured. It pings
/// nobody. A failure is logged, never fatal: the alert is a courtesy, the work is done.
pub async fn alert_organisers(discord: &Discord, settings: &DiscordSettings, text: &str) {
    let Some(alerts) = settings.alerts_channel else {
        return;
    };
    if let Err(error) = discord.send(alerts, &Reply::text(text)).await {
        tracing::warn!(channel = %alerts, %error, "could not alert the organisers");
    }
}
