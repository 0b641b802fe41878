//! One sync at a time (Tavern's own key [`schema::SYNC_RUNNING`]): the scheduled job,
//! an admin's `/sync` and `tavern campaigns sync --once` all take it first, on any
//! replica. It expires by itself should its holder die mid-run; a live run renews it
//! ([`Repo::renew_sync`]) well before it expires.

use std::time::Duration;

use store::Writes;

use super::{Repo, RepoError};
use crate::schema;

impl Repo {
    /// Takes the sync guard for `holder` (a value unique to this run) for at most
    /// `ttl`; `false` when another run holds it.
    pub async fn start_sync(&self, holder: &str, ttl: Duration) -> Result<bool, RepoError> {
        let taken: Option<String> = redis::cmd("SET")
            .arg(schema::SYNC_RUNNING)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(taken.is_some())
    }

    /// Extends the guard to `ttl` from now if `holder` still holds it (compare and
    /// `PEXPIRE` in one step); `false` when it expired or another run holds it.
    pub async fn renew_sync(&self, holder: &str, ttl: Duration) -> Result<bool, RepoError> {
        let mut writes = Writes::new();
        writes
            .command("PEXPIRE")
            .arg(schema::SYNC_RUNNING)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        Ok(self
            .redis
            .apply_if(schema::SYNC_RUNNING, Some(holder.as_bytes()), &writes)
            .await?)
    }

    /// Gives the guard back if `holder` still holds it (one that expired and was taken
    /// by another run is left alone).
    pub async fn end_sync(&self, holder: &str) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.del(schema::SYNC_RUNNING);
        self.redis
            .apply_if(schema::SYNC_RUNNING, Some(holder.as_bytes()), &writes)
            .await?;
        Ok(())
    }
}
