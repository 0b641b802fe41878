//! Whole key sets, as the sync service moves them between Redis and object storage:
//! `user_set`, each `user_{id}`, each `init_{channel_id}`, and all counters together
//! (they share `c_:updated_time`, so they are one set), each with its timestamp.

use std::collections::BTreeMap;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use store::{StorageError, Writes, updated_time};

use super::Repo;
use crate::schema::{self, COUNTERS_SET, COUNTERS_UPDATED_TIME, KeyKind};

/// One key set with its timestamp; also the JSON of its snapshot object:
///
/// ```json
/// {"key": "user_set", "updated_time": 1790000000123, "value": {"type": "set", "data": ["1", "2"]}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub key: String,
    /// Unix millis from the key's `:updated_time` (0 if Redis had none).
    pub updated_time: i64,
    pub value: Value,
}

/// The value of a key set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Value {
    Set(Vec<String>),
    String(String),
    /// `c_{command}` values by command.
    Counters(BTreeMap<String, i64>),
}

impl Snapshot {
    /// The timestamp key that decides whether this set is newer than Redis's, or
    /// `None` if the snapshot is not one of ours (an unknown key, or a value of the
    /// wrong kind for its key).
    pub fn updated_time_key(&self) -> Option<String> {
        match (&self.value, schema::classify(&self.key)) {
            (Value::Counters(_), None) if self.key == COUNTERS_SET => {
                Some(COUNTERS_UPDATED_TIME.to_owned())
            }
            (Value::Set(_), Some(KeyKind::UserSet))
            | (Value::String(_), Some(KeyKind::User(_)))
            | (Value::String(_), Some(KeyKind::Init(_))) => {
                Some(schema::updated_time_key(&self.key))
            }
            _ => None,
        }
    }
}

fn millis(raw: Option<String>) -> Option<i64> {
    raw.as_deref()
        .and_then(updated_time::decode)
        .map(|t| t.timestamp_millis())
}

impl Repo {
    /// Every seed key set in Redis, each read atomically with its timestamp.
    pub async fn key_sets(&self) -> Result<Vec<Snapshot>, StorageError> {
        let mut conn = self.redis().conn();
        let mut out = Vec::new();
        let mut counter_keys = Vec::new();
        let mut keys = Vec::new();
        for pattern in schema::seed_key_patterns() {
            keys.extend(self.scan(&pattern).await?);
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            match schema::classify(&key) {
                Some(KeyKind::UserSet) => {
                    let (members, ts): (Vec<String>, Option<String>) = redis::pipe()
                        .atomic()
                        .smembers(&key)
                        .get(schema::updated_time_key(&key))
                        .query_async(&mut conn)
                        .await?;
                    let mut members = members;
                    members.sort();
                    out.push(Snapshot {
                        key,
                        updated_time: millis(ts).unwrap_or(0),
                        value: Value::Set(members),
                    });
                }
                Some(KeyKind::User(_)) | Some(KeyKind::Init(_)) => {
                    let (value, ts): (Option<String>, Option<String>) = redis::pipe()
                        .atomic()
                        .get(&key)
                        .get(schema::updated_time_key(&key))
                        .query_async(&mut conn)
                        .await?;
                    if let Some(value) = value {
                        out.push(Snapshot {
                            key,
                            updated_time: millis(ts).unwrap_or(0),
                            value: Value::String(value),
                        });
                    }
                }
                Some(KeyKind::Counter(command)) => counter_keys.push((key, command)),
                None => {}
            }
        }
        if !counter_keys.is_empty() {
            let names: Vec<&String> = counter_keys.iter().map(|(k, _)| k).collect();
            let (values, ts): (Vec<Option<i64>>, Option<String>) = redis::pipe()
                .atomic()
                .cmd("MGET")
                .arg(&names)
                .get(COUNTERS_UPDATED_TIME)
                .query_async(&mut conn)
                .await?;
            let counters = counter_keys
                .into_iter()
                .zip(values)
                .filter_map(|((_, command), v)| v.map(|v| (command, v)))
                .collect();
            out.push(Snapshot {
                key: COUNTERS_SET.to_owned(),
                updated_time: millis(ts).unwrap_or(0),
                value: Value::Counters(counters),
            });
        }
        Ok(out)
    }

    /// Writes `snap` (whose timestamp key is `ts_key`, see
    /// [`Snapshot::updated_time_key`]) unless Redis's timestamp is as new or newer.
    /// A compare-and-set on the timestamp key, so a write racing the restore wins.
    /// `false`: Redis was kept.
    pub async fn restore_key_set(
        &self,
        snap: &Snapshot,
        ts_key: &str,
    ) -> Result<bool, StorageError> {
        let mut conn = self.redis().conn();
        let current: Option<Vec<u8>> = conn.get(ts_key).await?;
        let current_ms = current
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(updated_time::decode)
            .map(|t| t.timestamp_millis());
        if current_ms.is_some_and(|ms| ms >= snap.updated_time) {
            return Ok(false);
        }
        let mut writes = Writes::new();
        match &snap.value {
            Value::Set(members) => {
                writes.del(&snap.key);
                if !members.is_empty() {
                    writes.sadd(&snap.key, members);
                }
            }
            Value::String(value) => {
                writes.set(&snap.key, value);
            }
            Value::Counters(counters) => {
                for (command, value) in counters {
                    writes.set(&schema::counter_key(command), *value);
                }
            }
        }
        writes.set(ts_key, snap.updated_time.to_string());
        Ok(self
            .redis()
            .apply_if(ts_key, current.as_deref(), &writes)
            .await?)
    }
}
