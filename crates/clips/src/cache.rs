//! Answers of Discord kept briefly in Redis as JSON (Tavern's own keys, declared in
//! [`crate::schema::library`]), so a page view or a scan does not ask Discord the same
//! question again within a minute. Redis failing is never an error here: it is logged
//! and the caller asks Discord.

use serde::Serialize;
use serde::de::DeserializeOwned;
use store::{Redis, redis};

/// The answer kept at `key`; `None` (logged when it is not a plain miss) when absent,
/// unreadable or Redis is down: the caller asks Discord.
pub(crate) async fn get<T: DeserializeOwned>(
    redis: &Redis,
    key: &str,
    what: &'static str,
) -> Option<T> {
    let read: Result<Option<String>, _> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut redis.conn())
        .await;
    match read {
        Ok(Some(json)) => match serde_json::from_str(&json) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(%error, what, "a cached answer does not parse; asking Discord");
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, what, "the cache is unavailable; asking Discord");
            None
        }
    }
}

/// Keeps `value` at `key` for `ttl_secs` (a failure is logged: the next request asks
/// Discord again).
pub(crate) async fn set<T: Serialize>(
    redis: &Redis,
    key: &str,
    value: &T,
    ttl_secs: u64,
    what: &'static str,
) {
    let Ok(json) = serde_json::to_string(value) else {
        return;
    };
    let stored: Result<(), _> = redis::cmd("SET")
        .arg(key)
        .arg(json)
        .arg("EX")
        .arg(ttl_secs)
        .query_async(&mut redis.conn())
        .await;
    if let Err(error) = stored {
        tracing::warn!(%error, what, "could not cache an answer of Discord");
    }
}

/// Drops the answer at `key`, so the next use asks Discord. A failure is logged: the
/// answer then lives out its time.
pub(crate) async fn forget(redis: &Redis, key: &str, what: &'static str) {
    let dropped: Result<i64, _> = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut redis.conn())
        .await;
    if let Err(error) = dropped {
        tracing::warn!(%error, what, "could not drop a cached answer of Discord; it expires by itself");
    }
}
