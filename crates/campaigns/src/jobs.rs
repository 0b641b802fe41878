//! The campaigns' scheduled work, on the kit's [`Job`]s: the sync ([`meetup_sync`]),
//! both of its steps in one job: Meetup → Redis ([`sync_once`]), then, with
//! [`crate::config::DiscordSettings`], Redis → Discord ([`sync_discord`]). The job
//! runner's Redis lock (`tavern:lock:job:{name}`) keeps two replicas from running it
//! in the same period, so one sync runs at a time across replicas.
//!
//! [`sync_all`] is one whole sync, for the job, the admin `/sync` command and `tavern
//! campaigns sync --once`.

use std::sync::Arc;

use base::Clock;
use chrono::{DateTime, Utc};
use discord::Discord;
use feature::Job;
use meetup::MeetupClient;

use crate::config::CampaignsConfig;
use crate::discord_sync::{DiscordReport, DiscordSyncError, sync_discord};
use crate::repo::Repo;
use crate::sync::{SyncError, SyncReport, sync_once};

/// The sync job's name (and so its lock, `tavern:lock:job:campaigns-meetup-sync`).
pub const SYNC_JOB: &str = "campaigns-meetup-sync";

/// Why a whole sync failed.
#[derive(Debug, thiserror::Error)]
pub enum FullSyncError {
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

/// One whole sync: Meetup → Redis, then (with Discord settings) Redis → Discord. The
/// Discord step runs only after a Meetup step that ran (it needs what Meetup said
/// about `[channel]` shortcodes; a run without it could make a channel a shortcode
/// meant to reuse). Groups Meetup failed to answer fail the sync after both steps.
pub async fn sync_all(
    repo: &Repo,
    client: &MeetupClient,
    discord: &Discord,
    config: &CampaignsConfig,
    now: DateTime<Utc>,
) -> Result<FullReport, FullSyncError> {
    let meetup = sync_once(repo, client, config, now).await?;
    let discord = match &config.discord {
        Some(settings) => Some(sync_discord(repo, discord, settings, &meetup.extras, now).await?),
        None => None,
    };
    Ok(FullReport { meetup, discord })
}

/// The sync ([`sync_all`]) every [`CampaignsConfig::sync_every`], and once right after
/// start-up: players should not wait a whole period for the first round. "Now" (the
/// start of the sync's window) is the clock's.
pub fn sync_job(
    repo: Repo,
    config: CampaignsConfig,
    clock: Arc<dyn Clock>,
    discord: Discord,
) -> Job {
    let every = config.sync_every;
    let config = Arc::new(config);
    Job::every(SYNC_JOB, every, move || {
        let (repo, config, clock, discord) = (
            repo.clone(),
            Arc::clone(&config),
            Arc::clone(&clock),
            discord.clone(),
        );
        async move { run_sync(&repo, Some(&discord), &config, clock.now()).await }
    })
    .at_startup()
}

/// The Meetup → Redis step alone as the same job (same name and lock), for callers
/// without a Discord handle. [`sync_job`] is the whole sync.
pub fn meetup_sync(repo: Repo, config: CampaignsConfig, clock: Arc<dyn Clock>) -> Job {
    let every = config.sync_every;
    let config = Arc::new(config);
    Job::every(SYNC_JOB, every, move || {
        let (repo, config, clock) = (repo.clone(), Arc::clone(&config), Arc::clone(&clock));
        async move { run_sync(&repo, None, &config, clock.now()).await }
    })
    .at_startup()
}

/// One run of the job. A client is built per run: it is cheap next to a 15-minute
/// period, and building it here keeps [`crate::feature`] infallible. No organiser token
/// is not a failure of the job (it waits for an organiser; [`sync_once`] logged it
/// once); failed groups are, after the other groups were synced, and so are Discord
/// objects that could not be made or changed (the next run tries again).
async fn run_sync(
    repo: &Repo,
    discord: Option<&Discord>,
    config: &CampaignsConfig,
    now: DateTime<Utc>,
) -> Result<(), FullSyncError> {
    let client = MeetupClient::new(config.endpoints.clone())
        .map_err(|e| FullSyncError::Meetup(SyncError::Client(e)))?;
    let outcome = match discord {
        Some(discord) => sync_all(repo, &client, discord, config, now).await,
        None => sync_once(repo, &client, config, now)
            .await
            .map(|meetup| FullReport {
                meetup,
                discord: None,
            })
            .map_err(FullSyncError::from),
    };
    match outcome {
        Ok(report) => {
            if !report.meetup.failed_groups.is_empty() {
                return Err(SyncError::GroupsFailed(report.meetup.failed_groups).into());
            }
            match report.discord {
                Some(d) if !d.failed.is_empty() => Err(FullSyncError::DiscordFailures(d.failed)),
                _ => Ok(()),
            }
        }
        Err(FullSyncError::Meetup(SyncError::NoOrganizerToken)) => Ok(()),
        Err(e) => Err(e),
    }
}
