//! `user_set` and the `c_{command}` counters: who used the feature and how often.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use store::{StorageError, Writes, updated_time};

use super::Repo;
use crate::domain::Authenticated;
use crate::schema::{self, COUNTERS_UPDATED_TIME, USER_SET};

impl Repo {
    /// The `c_{command}` counters of `commands` (absent ones left out), read by name
    /// in one `MGET`: no keyspace scan, so the cost does not grow with the data.
    pub async fn counters(&self, commands: &[&str]) -> Result<BTreeMap<String, i64>, StorageError> {
        let mut out = BTreeMap::new();
        if commands.is_empty() {
            return Ok(out);
        }
        let keys: Vec<String> = commands.iter().map(|c| schema::counter_key(c)).collect();
        let mut conn = self.redis().conn();
        let values: Vec<Option<i64>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        for (command, value) in commands.iter().zip(values) {
            if let Some(v) = value {
                out.insert((*command).to_owned(), v);
            }
        }
        Ok(out)
    }

    /// `SCARD user_set`.
    pub async fn user_count(&self) -> Result<u64, StorageError> {
        let mut conn = self.redis().conn();
        Ok(conn.scard(USER_SET).await?)
    }
}

/// The controller's bookkeeping: `INCR c_{command}` with `c_:updated_time`, and for
/// an [`Authenticated`] user only, `SADD user_set` with its timestamp. A user id that
/// a request merely claims cannot reach `user_set`: this is the only writer of it
/// besides the sync's restore, and it takes the proof, not an id.
pub fn bookkeeping(
    writes: &mut Writes,
    user: Option<Authenticated>,
    command: &str,
    at: DateTime<Utc>,
) {
    if let Some(user) = user {
        writes.sadd(USER_SET, schema::user_set_member(user.user()));
        updated_time::touch(writes, USER_SET, at);
    }
    writes.incr(&schema::counter_key(command));
    writes.set(COUNTERS_UPDATED_TIME, updated_time::encode(at));
}
