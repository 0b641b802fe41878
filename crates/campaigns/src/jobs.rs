//! The campaigns' scheduled work, on the kit's [`Job`]s: the Meetup sync
//! ([`meetup_sync`]). The job runner's Redis lock (`tavern:lock:job:{name}`) keeps two
//! replicas from running a job in the same period.

use std::sync::Arc;

use base::Clock;
use chrono::{DateTime, Utc};
use feature::Job;
use meetup::MeetupClient;

use crate::config::CampaignsConfig;
use crate::repo::Repo;
use crate::sync::{SyncError, sync_once};

/// The Meetup sync job's name (and so its lock, `tavern:lock:job:campaigns-meetup-sync`).
pub const SYNC_JOB: &str = "campaigns-meetup-sync";

/// The Meetup sync ([`sync_once`]) every [`CampaignsConfig::sync_every`], and once
/// right after start-up: players should not wait a whole period for the first round.
/// "Now" (the start of the sync's window) is the clock's.
pub fn meetup_sync(repo: Repo, config: CampaignsConfig, clock: Arc<dyn Clock>) -> Job {
    let every = config.sync_every;
    let config = Arc::new(config);
    Job::every(SYNC_JOB, every, move || {
        let (repo, config, clock) = (repo.clone(), Arc::clone(&config), Arc::clone(&clock));
        async move { run_sync(&repo, &config, clock.now()).await }
    })
    .at_startup()
}

/// One run of the job. A client is built per run: it is cheap next to a 15-minute
/// period, and building it here keeps [`crate::feature`] infallible. No organiser token
/// is not a failure of the job (it waits for an organiser; [`sync_once`] logged it
/// once); failed groups are, after the other groups were synced.
async fn run_sync(
    repo: &Repo,
    config: &CampaignsConfig,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let client = MeetupClient::new(config.endpoints.clone()).map_err(SyncError::Client)?;
    match sync_once(repo, &client, config, now).await {
        Ok(report) if report.failed_groups.is_empty() => Ok(()),
        Ok(report) => Err(SyncError::GroupsFailed(report.failed_groups)),
        Err(SyncError::NoOrganizerToken) => Ok(()),
        Err(e) => Err(e),
    }
}
