//! Repositories over the seed's keys: reads return typed documents together with the
//! raw bytes they came from (the compare-and-set guard), and writers add a key and
//! its `:updated_time` to a [`Writes`] so callers commit them in one atomic step.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use store::{Redis, Writes, updated_time};

use crate::RollsError;
use crate::schema::{
    self, COUNTER_PREFIX, COUNTERS_UPDATED_TIME, ChannelId, KeyKind, Tracker, USER_SET, UserDoc,
    UserId,
};

/// A document read from Redis with the exact bytes that were stored (`None`: absent),
/// for [`Redis::apply_if`].
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub raw: Option<Vec<u8>>,
}

/// Reads and write-builders for the feature's keys.
#[derive(Debug, Clone)]
pub struct Repo {
    redis: Redis,
}

impl Repo {
    pub fn new(redis: Redis) -> Repo {
        Repo { redis }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    async fn get_json<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<Versioned<T>, RollsError> {
        let mut conn = self.redis.conn();
        let raw: Option<Vec<u8>> = conn.get(key).await?;
        let value = match &raw {
            None => T::default(),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|source| RollsError::Corrupt {
                key: key.to_owned(),
                source,
            })?,
        };
        Ok(Versioned { value, raw })
    }

    /// `user_{id}` (an empty document if the user has none yet).
    pub async fn user(&self, user: UserId) -> Result<Versioned<UserDoc>, RollsError> {
        self.get_json(&schema::user_key(user)).await
    }

    /// `init_{channel}` (an empty tracker if the channel has none yet).
    pub async fn tracker(&self, channel: ChannelId) -> Result<Versioned<Tracker>, RollsError> {
        self.get_json(&schema::init_key(channel)).await
    }

    /// Every `c_{command}` counter, by command.
    pub async fn counters(&self) -> Result<BTreeMap<String, i64>, RollsError> {
        let keys: Vec<String> = self
            .scan(&format!("{COUNTER_PREFIX}*"))
            .await?
            .into_iter()
            .filter(|k| matches!(schema::classify(k), Some(KeyKind::Counter(_))))
            .collect();
        let mut out = BTreeMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut conn = self.redis.conn();
        let values: Vec<Option<i64>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        for (key, value) in keys.iter().zip(values) {
            if let (Some(KeyKind::Counter(command)), Some(v)) = (schema::classify(key), value) {
                out.insert(command, v);
            }
        }
        Ok(out)
    }

    /// `SCARD user_set`.
    pub async fn user_count(&self) -> Result<u64, RollsError> {
        let mut conn = self.redis.conn();
        Ok(conn.scard(USER_SET).await?)
    }

    /// Every key matching `pattern` (SCAN, so Redis is never blocked by `KEYS`).
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, RollsError> {
        Ok(self.redis.scan(pattern).await?)
    }
}

/// The controller's bookkeeping: `SADD user_set`, `INCR c_{command}` and both
/// timestamps.
pub fn bookkeeping(writes: &mut Writes, user: UserId, command: &str, at: DateTime<Utc>) {
    writes.sadd(USER_SET, user.0.to_string());
    updated_time::touch(writes, USER_SET, at);
    writes.incr(&schema::counter_key(command));
    writes.set(COUNTERS_UPDATED_TIME, updated_time::encode(at));
}

/// `SET user_{id}` and its timestamp.
pub fn put_user(
    writes: &mut Writes,
    user: UserId,
    doc: &UserDoc,
    at: DateTime<Utc>,
) -> Result<(), RollsError> {
    let json = serde_json::to_string(doc).map_err(|source| RollsError::Corrupt {
        key: schema::user_key(user),
        source,
    })?;
    updated_time::set_with_time(writes, &schema::user_key(user), json, at);
    Ok(())
}

/// `SET init_{channel}` and its timestamp.
pub fn put_tracker(
    writes: &mut Writes,
    channel: ChannelId,
    tracker: &Tracker,
    at: DateTime<Utc>,
) -> Result<(), RollsError> {
    let json = serde_json::to_string(tracker).map_err(|source| RollsError::Corrupt {
        key: schema::init_key(channel),
        source,
    })?;
    updated_time::set_with_time(writes, &schema::init_key(channel), json, at);
    Ok(())
}
