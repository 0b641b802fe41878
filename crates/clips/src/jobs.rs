//! Scheduled work of the clip archive.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use feature::{BoxFuture, Job, JobError};

use crate::store::Repo;

/// The job's name (also its lock: `tavern:lock:job:purge_install_intents`).
pub const PURGE_INSTALL_INTENTS: &str = "purge_install_intents";
/// How often expired install intents are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(30 * 60);

/// Deletes the install intents that expired more than the grace period ago; returns how
/// many. What the job runs, callable on its own.
pub async fn purge_install_intents(repo: &Repo) -> Result<u64, crate::RepoError> {
    let purged = repo.purge_install_intents(Utc::now()).await?;
    tracing::info!(purged, "expired install intents purged");
    Ok(purged)
}

/// `purge_install_intents`, every 30 minutes. The job runner's Redis lock makes it run on
/// one replica per period.
pub fn purge_install_intents_job(repo: Repo) -> Job {
    Job {
        name: PURGE_INSTALL_INTENTS,
        every: PURGE_EVERY,
        on_shutdown: false,
        run: Arc::new(move || -> BoxFuture<'static, Result<(), JobError>> {
            let repo = repo.clone();
            Box::pin(async move {
                purge_install_intents(&repo)
                    .await
                    .map(|_| ())
                    .map_err(JobError::new)
            })
        }),
    }
}
