//! The campaigns' scheduled work, on the kit's [`Job`]s: the sync ([`meetup_sync`]),
//! both of its steps in one job: Meetup → Redis ([`sync_once`]), then, with
//! [`crate::config::DiscordSettings`], Redis → Discord ([`crate::discord_sync::sync_discord`]). The job
//! runner's Redis lock (`tavern:lock:job:{name}`) keeps two replicas from running it
//! in the same period, and every whole sync, however started, takes the sync guard
//! ([`crate::schema::SYNC_RUNNING`]), so one sync runs at a time across replicas.
//!
//! The guard expires ([`CampaignsConfig::sync_guard_ttl`], 10 minutes by default) so a
//! run whose process dies does not block the syncs for ever; a live run renews it every
//! third of that (compare-and-`PEXPIRE` on its own holder value), however long it
//! takes. Should a renewal find the guard gone or held by another run (Redis lost it,
//! or the process stalled past the expiry), the run logs it at error level and its
//! Discord step stops before its next series ([`crate::discord_sync::StopSignal`]),
//! saying so in its report; the Meetup step's writes are transactions and carry on.
//!
//! [`sync_all`] is one whole sync, for the job ([`Syncer`]), the admin `/sync` command
//! and `tavern campaigns sync --once`.

use std::sync::Arc;

use base::Clock;
use chrono::{DateTime, Utc};
use discord::Discord;
use feature::Job;
use meetup::MeetupClient;

use crate::config::CampaignsConfig;
use crate::discord_sync::{DiscordReport, DiscordSyncError, StopSignal, sync_discord_until};
use crate::repo::Repo;
use crate::sync::{SyncError, SyncReport, sync_once};
use crate::web::organiser::{RefusalAlerts, alert_refusal};
use url::Url;

/// The sync job's name (and so its lock, `tavern:lock:job:campaigns-meetup-sync`).
pub const SYNC_JOB: &str = "campaigns-meetup-sync";

/// Longest a whole sync holds the guard without renewing it (it expires then, should
/// its process die); the default of [`CampaignsConfig::sync_guard_ttl`].
pub const SYNC_GUARD_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Why a whole sync failed.
#[derive(Debug, thiserror::Error)]
pub enum FullSyncError {
    /// Another sync is running (here or on another replica); nothing was done.
    #[error("another campaigns sync is running right now")]
    Busy,
    #[error("the sync guard: {0}")]
    Guard(crate::repo::RepoError),
    #[error("Meetup → Redis: {0}")]
    Meetup(SyncError),
    #[error("Redis → Discord: {0}")]
    Discord(DiscordSyncError),
    #[error("Redis → Discord: {}", .0.join("; "))]
    DiscordFailures(Vec<String>),
}

impl From<SyncError> for FullSyncError {
    fn from(e: SyncError) -> FullSyncError {
        FullSyncError::Meetup(e)
    }
}

impl From<DiscordSyncError> for FullSyncError {
    fn from(e: DiscordSyncError) -> FullSyncError {
        FullSyncError::Discord(e)
    }
}

/// What one whole sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullReport {
    pub meetup: SyncReport,
    /// `None` without Discord settings.
    pub discord: Option<DiscordReport>,
}

impl FullReport {
    /// What the run did, in a sentence or two for an admin (`/sync`'s answer): what
    /// changed on Discord and in the tracked sessions; that nothing needed changing
    /// only when nothing needs a look either, and otherwise that it changed nothing;
    /// then what needs a look and where (Tavern's log, the alerts, `tavern check`).
    pub fn summary(&self) -> String {
        let m = &self.meetup;
        let tally = self.discord.as_ref().map(|d| d.tally).unwrap_or_default();
        let mut done: Vec<String> = Vec::new();
        if tally.channels_set_up > 0 {
            done.push(format!(
                "set up {} with {} roles",
                count(
                    tally.channels_set_up,
                    "new game channel",
                    "new game channels"
                ),
                if tally.channels_set_up == 1 {
                    "its"
                } else {
                    "their"
                }
            ));
        }
        if tally.voice_channels_made > 0 {
            done.push(format!(
                "made {}",
                count(tally.voice_channels_made, "voice channel", "voice channels")
            ));
        }
        if tally.roles_given > 0 {
            done.push(format!(
                "gave {} to players and hosts",
                count(tally.roles_given, "role", "roles")
            ));
        }
        if tally.roles_taken > 0 {
            let unlinked = tally.roles_taken_unlinked.min(tally.roles_taken);
            let no_rsvp = tally.roles_taken - unlinked;
            let why = match (no_rsvp, unlinked) {
                (_, 0) => "no RSVP to a session still to come".to_owned(),
                (0, _) => "Meetup account unlinked".to_owned(),
                (no_rsvp, unlinked) => format!(
                    "{no_rsvp} with no RSVP to a session still to come, {unlinked} whose \
                     Meetup account was unlinked"
                ),
            };
            done.push(format!(
                "took {} back ({why})",
                count(tally.roles_taken, "player role", "player roles")
            ));
        }
        if tally.welcomes > 0 {
            done.push(format!(
                "welcomed newcomers in {}",
                count(tally.welcomes, "channel", "channels")
            ));
        }
        if tally.channels_updated > 0 {
            done.push(format!(
                "corrected the topic, category or permissions of {}",
                count(tally.channels_updated, "channel", "channels")
            ));
        }
        if tally.leftovers_deleted > 0 {
            done.push(format!(
                "deleted {} an earlier run could not",
                count(
                    tally.leftovers_deleted,
                    "leftover channel or role",
                    "leftover channels or roles"
                )
            ));
        }
        if tally.free_spots_updated {
            done.push("refreshed the free-spots message".to_owned());
        }
        if m.deleted > 0 {
            let mut removed = format!(
                "removed {} Meetup no longer lists",
                count(m.deleted, "session", "sessions")
            );
            if m.series_removed > 0 {
                removed.push_str(&format!(
                    ", ending {} with no session left",
                    count(m.series_removed, "game", "games")
                ));
            }
            done.push(removed);
        }
        let mut look: Vec<String> = Vec::new();
        if !m.failed_groups.is_empty() {
            let groups: Vec<String> = m
                .failed_groups
                .iter()
                .map(|f| format!("`{}`", f.group))
                .collect();
            look.push(format!(
                "Meetup did not answer for {}, so {} games were left as they were",
                join(&groups),
                if groups.len() == 1 { "its" } else { "their" }
            ));
        }
        if m.skipped > 0 {
            look.push(format!(
                "{} skipped (Tavern's log says why)",
                count(m.skipped, "Meetup event was", "Meetup events were")
            ));
        }
        if m.held > 0 {
            look.push(format!(
                "{} Meetup no longer lists {} kept until the next sync confirms {} gone",
                count(m.held, "session", "sessions"),
                if m.held == 1 { "is" } else { "are" },
                if m.held == 1 { "it is" } else { "they are" }
            ));
        }
        if let Some(d) = &self.discord {
            if !d.skipped.is_empty() {
                look.push(format!(
                    "{} left alone (the alerts channel and `tavern check` say why)",
                    count(
                        d.skipped.len(),
                        "game or shortcode was",
                        "games or shortcodes were"
                    )
                ));
            }
            if let Some(first) = d.failed.first() {
                let mut first = first.clone();
                if first.chars().count() > 300 {
                    first = first.chars().take(300).collect::<String>() + "…";
                }
                look.push(format!(
                    "{} on Discord failed and the next sync tries again (Tavern's log has each; the first: {first})",
                    count(d.failed.len(), "change", "changes")
                ));
            }
        }
        // "Nothing needed changing" only when nothing needs a look either: a change
        // that failed, a group Meetup did not answer for or a session held back means
        // something may still need changing.
        let mut text = if !done.is_empty() {
            format!("The sync is done: it {}.", join(&done))
        } else if look.is_empty() {
            let checked = match &self.discord {
                Some(d) => count(
                    d.series,
                    "game with a coming session",
                    "games with a coming session",
                ),
                None => count(m.stored, "session", "sessions"),
            };
            format!("The sync is done: nothing needed changing ({checked} checked).")
        } else {
            "The sync is done but changed nothing.".to_owned()
        };
        if !look.is_empty() {
            text.push_str(&format!(" To look at: {}.", look.join("; ")));
        }
        text
    }
}

/// `n` and the noun, singular for one.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "a", "a and b", "a, b and c".
fn join(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// One whole sync: Meetup → Redis, then (with Discord settings) Redis → Discord. The
/// Discord step runs only after a Meetup step that ran (it needs what Meetup said
/// about `[channel]` shortcodes; a run without it could make a channel a shortcode
/// meant to reuse). Groups Meetup failed to answer fail the sync after both steps.
///
/// One sync runs at a time across replicas, however it was started: this takes the
/// sync guard ([`Repo::start_sync`]) and answers [`FullSyncError::Busy`] when another
/// run holds it; it renews the guard while it runs (see the module docs).
pub async fn sync_all(
    repo: &Repo,
    client: &MeetupClient,
    discord: &Discord,
    config: &CampaignsConfig,
    now: DateTime<Utc>,
) -> Result<FullReport, FullSyncError> {
    sync_all_until(repo, client, discord, config, now, &StopSignal::default()).await
}

/// [`sync_all`] with the signal its Discord step stops on: set by the guard's renewal
/// when the guard is lost, or by the caller.
pub async fn sync_all_until(
    repo: &Repo,
    client: &MeetupClient,
    discord: &Discord,
    config: &CampaignsConfig,
    now: DateTime<Utc>,
    stop: &StopSignal,
) -> Result<FullReport, FullSyncError> {
    with_guard(
        repo,
        config.sync_guard_ttl,
        stop,
        sync_guarded(repo, client, discord, config, now, stop),
    )
    .await
}

/// Runs `sync` holding the sync guard for `ttl`, renewed every third of it while
/// `sync` runs; [`FullSyncError::Busy`] without running it when another run holds the
/// guard. A renewal that finds the guard lost sets `stop`.
async fn with_guard<T>(
    repo: &Repo,
    ttl: std::time::Duration,
    stop: &StopSignal,
    sync: impl std::future::Future<Output = Result<T, FullSyncError>>,
) -> Result<T, FullSyncError> {
    let holder = format!(
        "{}:{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    if !repo
        .start_sync(&holder, ttl)
        .await
        .map_err(FullSyncError::Guard)?
    {
        return Err(FullSyncError::Busy);
    }
    let mut sync = std::pin::pin!(sync);
    let outcome = tokio::select! {
        outcome = &mut sync => outcome,
        () = keep_guard(repo, &holder, ttl, stop) => sync.await,
    };
    if let Err(error) = repo.end_sync(&holder).await {
        tracing::warn!(%error, "could not give the sync guard back; it expires by itself");
    }
    outcome
}

/// Renews the guard every third of `ttl` while the run goes on; returns (having set
/// `stop` and logged it) only once a renewal finds the guard lost. A renewal Redis does
/// not answer is tried again at the next tick.
async fn keep_guard(repo: &Repo, holder: &str, ttl: std::time::Duration, stop: &StopSignal) {
    let every = (ttl / 3).max(std::time::Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        match repo.renew_sync(holder, ttl).await {
            Ok(true) => tracing::debug!("campaigns sync guard renewed"),
            Ok(false) => {
                tracing::error!(
                    "the campaigns sync lost its sync guard (it expired or another sync took it); its Discord step stops"
                );
                stop.stop();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "could not renew the campaigns sync guard; trying again");
            }
        }
    }
}

async fn sync_guarded(
    repo: &Repo,
    client: &MeetupClient,
    discord: &Discord,
    config: &CampaignsConfig,
    now: DateTime<Utc>,
    stop: &StopSignal,
) -> Result<FullReport, FullSyncError> {
    let meetup = match sync_once(repo, client, config, now).await {
        Ok(meetup) => meetup,
        Err(error) => {
            if let (true, Some(settings)) = (error.needs_authorisation(), &config.discord) {
                let alerts = RefusalAlerts {
                    discord: discord.clone(),
                    settings: settings.clone(),
                    organiser_page: config
                        .organiser_page
                        .as_ref()
                        .map_or_else(|| crate::web::ORGANISER_PATH.to_owned(), Url::to_string),
                };
                alert_refusal(repo, &alerts).await;
            }
            return Err(error.into());
        }
    };
    let discord = match &config.discord {
        Some(settings) => {
            Some(sync_discord_until(repo, discord, settings, &meetup.extras, now, stop).await?)
        }
        None => None,
    };
    Ok(FullReport { meetup, discord })
}

/// Runs the whole sync on demand or on a schedule: what the job, the admin `/sync`
/// and the tests share. Cheap to clone.
#[derive(Clone)]
pub struct Syncer {
    repo: Repo,
    config: Arc<CampaignsConfig>,
    clock: Arc<dyn Clock>,
    /// `None`: the Meetup → Redis step alone.
    discord: Option<Discord>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("groups", &self.config.groups)
            .field("discord", &self.discord.is_some())
            .finish_non_exhaustive()
    }
}

impl Syncer {
    pub fn new(
        repo: Repo,
        config: CampaignsConfig,
        clock: Arc<dyn Clock>,
        discord: Option<Discord>,
    ) -> Syncer {
        Syncer {
            repo,
            config: Arc::new(config),
            clock,
            discord,
        }
    }

    /// One whole sync now ("now" is the clock's), under the sync guard. Without an
    /// organiser token it is `Err(FullSyncError::Meetup(SyncError::NoOrganizerToken))`
    /// (the job ignores that, `/sync` explains it).
    pub async fn run(&self) -> Result<(), FullSyncError> {
        failures(self.run_report().await?)
    }

    /// `member` as Meetup knows them ([`crate::sync::find_member`]): for `/link`, which
    /// links only a member id Meetup has.
    pub async fn find_member(
        &self,
        member: crate::MeetupUserId,
    ) -> Result<Option<meetup::Member>, SyncError> {
        let client = MeetupClient::new(self.config.endpoints.clone()).map_err(SyncError::Client)?;
        crate::sync::find_member(&self.repo, &client, &self.config, member, self.clock.now()).await
    }

    /// The configured Meetup groups.
    pub fn groups(&self) -> &[meetup::GroupUrlname] {
        &self.config.groups
    }

    /// [`Syncer::run`] that hands back what the run did ([`FullReport::summary`]),
    /// failed groups and failed Discord changes included, for `/sync` to tell.
    pub async fn run_report(&self) -> Result<FullReport, FullSyncError> {
        run_sync(
            &self.repo,
            self.discord.as_ref(),
            &self.config,
            self.clock.now(),
        )
        .await
    }

    /// The sync every [`CampaignsConfig::sync_every`], and once right after start-up:
    /// players should not wait a whole period for the first round. A period that finds
    /// another sync running (an admin's `/sync`) leaves it be.
    pub fn job(self) -> Job {
        let every = self.config.sync_every;
        Job::every(SYNC_JOB, every, move || {
            let syncer = self.clone();
            async move {
                match syncer.run().await {
                    Err(FullSyncError::Busy) => {
                        tracing::info!(
                            "another campaigns sync is running; this period leaves it be"
                        );
                        Ok(())
                    }
                    // Not a failure of the job: it waits for an organiser ([`sync_once`]
                    // logged it).
                    Err(FullSyncError::Meetup(SyncError::NoOrganizerToken)) => Ok(()),
                    other => other,
                }
            }
        })
        .at_startup()
    }
}

/// The sync ([`sync_all`]) as a job: see [`Syncer::job`].
pub fn sync_job(
    repo: Repo,
    config: CampaignsConfig,
    clock: Arc<dyn Clock>,
    discord: Discord,
) -> Job {
    Syncer::new(repo, config, clock, Some(discord)).job()
}

/// The Meetup → Redis step alone as the same job (same name and lock), for callers
/// without a Discord handle. [`sync_job`] is the whole sync.
pub fn meetup_sync(repo: Repo, config: CampaignsConfig, clock: Arc<dyn Clock>) -> Job {
    Syncer::new(repo, config, clock, None).job()
}

/// Failed groups fail a whole sync, after the other groups were synced, and so do
/// Discord objects that could not be made or changed (the next run tries again).
fn failures(report: FullReport) -> Result<(), FullSyncError> {
    if !report.meetup.failed_groups.is_empty() {
        return Err(SyncError::GroupsFailed(report.meetup.failed_groups).into());
    }
    match report.discord {
        Some(d) if !d.failed.is_empty() => Err(FullSyncError::DiscordFailures(d.failed)),
        _ => Ok(()),
    }
}

/// One whole sync, for the job and `/sync`. A client is built per run: it is cheap
/// next to a 15-minute period, and building it here keeps [`crate::feature`]
/// infallible. No organiser token is [`SyncError::NoOrganizerToken`]: `/sync` says
/// so, the job treats it as waiting for an organiser, not as a failure.
async fn run_sync(
    repo: &Repo,
    discord: Option<&Discord>,
    config: &CampaignsConfig,
    now: DateTime<Utc>,
) -> Result<FullReport, FullSyncError> {
    let client = MeetupClient::new(config.endpoints.clone())
        .map_err(|e| FullSyncError::Meetup(SyncError::Client(e)))?;
    match discord {
        Some(discord) => sync_all(repo, &client, discord, config, now).await,
        None => {
            with_guard(repo, config.sync_guard_ttl, &StopSignal::default(), async {
                sync_once(repo, &client, config, now)
                    .await
                    .map(|meetup| FullReport {
                        meetup,
                        discord: None,
                    })
                    .map_err(FullSyncError::from)
            })
            .await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::discord_sync::DiscordTally;
    use crate::sync::GroupFailure;

    fn report(tally: DiscordTally) -> FullReport {
        FullReport {
            meetup: SyncReport {
                stored: 4,
                ..SyncReport::default()
            },
            discord: Some(DiscordReport {
                series: 3,
                tally,
                ..DiscordReport::default()
            }),
        }
    }

    #[test]
    fn a_run_that_changed_nothing_says_so() {
        assert_eq!(
            report(DiscordTally::default()).summary(),
            "The sync is done: nothing needed changing (3 games with a coming session checked)."
        );
        let meetup_only = FullReport {
            discord: None,
            ..report(DiscordTally::default())
        };
        assert_eq!(
            meetup_only.summary(),
            "The sync is done: nothing needed changing (4 sessions checked)."
        );
    }

    #[test]
    fn a_run_says_what_it_changed() {
        let mut r = report(DiscordTally {
            channels_set_up: 2,
            voice_channels_made: 1,
            roles_given: 5,
            roles_taken: 1,
            welcomes: 2,
            leftovers_deleted: 1,
            ..DiscordTally::default()
        });
        r.meetup.deleted = 2;
        r.meetup.series_removed = 1;
        assert_eq!(
            r.summary(),
            "The sync is done: it set up 2 new game channels with their roles, made 1 voice \
             channel, gave 5 roles to players and hosts, took 1 player role back (no RSVP to \
             a session still to come), welcomed newcomers in 2 channels, deleted 1 leftover channel or role an \
             earlier run could not and removed 2 sessions Meetup no longer lists, ending 1 \
             game with no session left."
        );
    }

    #[test]
    fn player_roles_taken_back_say_why_each_was_taken() {
        let taken = |roles_taken, roles_taken_unlinked| {
            report(DiscordTally {
                roles_taken,
                roles_taken_unlinked,
                ..DiscordTally::default()
            })
            .summary()
        };
        assert!(
            taken(1, 1).contains("took 1 player role back (Meetup account unlinked)"),
            "{}",
            taken(1, 1)
        );
        assert!(
            taken(2, 0).contains("took 2 player roles back (no RSVP to a session still to come)"),
            "{}",
            taken(2, 0)
        );
        assert!(
            taken(3, 1).contains(
                "took 3 player roles back (2 with no RSVP to a session still to come, 1 whose \
                 Meetup account was unlinked)"
            ),
            "{}",
            taken(3, 1)
        );
    }

    #[test]
    fn a_run_whose_only_changes_failed_says_it_changed_nothing() {
        let mut r = report(DiscordTally::default());
        r.discord.as_mut().unwrap().failed = vec![
            "series s2: giving role 5 to user 6: Missing Permissions".into(),
            "free-spots message: Missing Access".into(),
        ];
        assert_eq!(
            r.summary(),
            "The sync is done but changed nothing. To look at: 2 changes on Discord failed and \
             the next sync tries again (Tavern's log has each; the first: series s2: giving \
             role 5 to user 6: Missing Permissions)."
        );
    }

    #[test]
    fn a_run_with_a_group_meetup_did_not_answer_for_does_not_say_nothing_needed_changing() {
        let mut r = report(DiscordTally::default());
        r.meetup.failed_groups = vec![GroupFailure {
            group: meetup::GroupUrlname::parse("dragons").unwrap(),
            error: "Meetup answered 502".into(),
        }];
        assert_eq!(
            r.summary(),
            "The sync is done but changed nothing. To look at: Meetup did not answer for \
             `dragons`, so its games were left as they were."
        );
        let meetup_only = FullReport { discord: None, ..r };
        assert_eq!(
            meetup_only.summary(),
            "The sync is done but changed nothing. To look at: Meetup did not answer for \
             `dragons`, so its games were left as they were."
        );
    }

    #[test]
    fn a_run_says_what_needs_a_look_and_where() {
        let mut r = report(DiscordTally {
            roles_given: 1,
            ..DiscordTally::default()
        });
        r.meetup.failed_groups = vec![GroupFailure {
            group: meetup::GroupUrlname::parse("dragons").unwrap(),
            error: "Meetup answered 502".into(),
        }];
        r.meetup.skipped = 1;
        r.meetup.held = 2;
        let d = r.discord.as_mut().unwrap();
        d.skipped = vec!["series s1: its channel was deleted by hand".into()];
        d.failed = vec![
            "series s2: giving role 5 to user 6: Missing Permissions".into(),
            "free-spots message: Missing Access".into(),
        ];
        assert_eq!(
            r.summary(),
            "The sync is done: it gave 1 role to players and hosts. To look at: Meetup did not \
             answer for `dragons`, so its games were left as they were; 1 Meetup event was \
             skipped (Tavern's log says why); 2 sessions Meetup no longer lists are kept until \
             the next sync confirms they are gone; 1 game or shortcode was left alone (the \
             alerts channel and `tavern check` say why); 2 changes on Discord failed and the next sync tries \
             again (Tavern's log has each; the first: series s2: giving role 5 to user 6: \
             Missing Permissions)."
        );
    }
}
