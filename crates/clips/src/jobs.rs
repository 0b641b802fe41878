//! Scheduled work of the clip archive.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use feature::{Clock, Job};

use crate::ClipsConfig;
use crate::repo::{Repo, RepoError};

/// The job's name (also its lock: `tavern:lock:job:purge_install_intents`).
pub const PURGE_INSTALL_INTENTS: &str = "purge_install_intents";
/// How often expired install intents are purged, by default.
pub const PURGE_EVERY: Duration = Duration::from_secs(30 * 60);

/// Deletes the install intents that expired more than `grace` before `now`; returns
/// how many. What the job runs, callable on its own.
pub async fn purge_install_intents(
    repo: &Repo,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Result<u64, RepoError> {
    let purged = repo.purge_install_intents(now, grace).await?;
    tracing::info!(purged, "expired install intents purged");
    Ok(purged)
}

/// `purge_install_intents`, every [`ClipsConfig::purge_every`], at the time `clock`
/// says. The job runner's Redis lock makes it run on one replica per period.
pub fn purge_install_intents_job(repo: Repo, clock: Arc<dyn Clock>, config: &ClipsConfig) -> Job {
    let grace = config.intent_grace;
    Job::every(PURGE_INSTALL_INTENTS, config.purge_every, move || {
        let repo = repo.clone();
        let now = clock.now();
        async move { purge_install_intents(&repo, now, grace).await.map(|_| ()) }
    })
}
