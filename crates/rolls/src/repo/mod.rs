//! Repositories over the seed's keys ([`crate::schema`]): reads return typed documents
//! together with the raw bytes they came from (the compare-and-set guard), and writers
//! add a key and its `:updated_time` to a [`store::Writes`] so callers commit them in
//! one atomic step. Every failure is a [`StorageError`].
//!
//! One file per aggregate: [`user`] (`user_{id}`), [`tracker`] (`init_{channel_id}`),
//! [`usage`] (`user_set` and the counters, the controller's bookkeeping) and
//! [`key_sets`] (whole key sets, for the sync service).

pub mod additions;
pub mod key_sets;
pub mod tracker;
pub mod usage;
pub mod user;

use redis::AsyncCommands;
use store::{Redis, StorageError};

pub use key_sets::{Snapshot, Value};
pub use tracker::put_tracker;
pub use usage::bookkeeping;
pub use user::put_user;

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

    /// A JSON document (the type's default if the key is absent); a document that does
    /// not parse is [`StorageError::Corrupt`] and is never overwritten silently.
    async fn get_json<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<Versioned<T>, StorageError> {
        let mut conn = self.redis.conn();
        let raw: Option<Vec<u8>> = conn.get(key).await?;
        let value = match &raw {
            None => T::default(),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|source| {
                StorageError::corrupt(key, format!("not valid JSON: {source}"))
            })?,
        };
        Ok(Versioned { value, raw })
    }

    /// Every key matching `pattern` (SCAN, so Redis is never blocked by `KEYS`).
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.redis.scan(pattern).await?)
    }
}

/// `value` as the JSON stored under `key`.
fn to_json<T: serde::Serialize>(key: &str, value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|source| {
        StorageError::corrupt(key, format!("cannot be written as JSON: {source}"))
    })
}
