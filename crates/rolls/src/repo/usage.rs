//! `user_set` and the `c_{command}` counters: who used the feature and how often.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use store::{StorageError, Writes, updated_time};

use super::Repo;
use crate::domain::UserId;
use crate::schema::{self, COUNTERS_UPDATED_TIME, KeyKind, USER_SET};

impl Repo {
    /// Every `c_{command}` counter, by command.
    pub async fn counters(&self) -> Result<BTreeMap<String, i64>, StorageError> {
        let keys: Vec<String> = self
            .scan(&schema::counters_pattern())
            .await?
            .into_iter()
            .filter(|k| matches!(schema::classify(k), Some(KeyKind::Counter(_))))
            .collect();
        let mut out = BTreeMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut conn = self.redis().conn();
        let values: Vec<Option<i64>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        for (key, value) in keys.iter().zip(values) {
            if let (Some(KeyKind::Counter(command)), Some(v)) = (schema::classify(key), value) {
                out.insert(command, v);
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

/// The controller's bookkeeping: `SADD user_set`, `INCR c_{command}` and both
/// timestamps.
pub fn bookkeeping(writes: &mut Writes, user: UserId, command: &str, at: DateTime<Utc>) {
    writes.sadd(USER_SET, schema::user_set_member(user));
    updated_time::touch(writes, USER_SET, at);
    writes.incr(&schema::counter_key(command));
    writes.set(COUNTERS_UPDATED_TIME, updated_time::encode(at));
}
