//! The seed's Sync Service: mirrors every seed key to object storage and restores it.
//!
//! One object per key set, `rolls/{key}.json`: `user_set`, each `user_{id}`, each
//! `init_{channel}`, and `rolls/c_.json` for all counters together (they share
//! `c_:updated_time`, so they are one set). Each object holds the key, its
//! `:updated_time` (Unix millis) and the value:
//!
//! ```json
//! {"key": "user_set", "updated_time": 1790000000123, "value": {"type": "set", "data": ["1", "2"]}}
//! ```
//!
//! *Snapshot* (hourly and at shutdown) writes every set. *Restore* (at start-up, before
//! serving) rewrites a set in Redis only when Redis's `:updated_time` is older than
//! the object's or absent: if the bot kept writing while the snapshot was stale, Redis
//! wins. The restore of one set is a compare-and-set on its timestamp key, so a write
//! racing the restore also wins. Keys are never deleted by a restore.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use store::{Redis, Writes, updated_time};

use crate::RollsConfig;
use crate::RollsError;
use crate::schema::{
    self, COUNTER_PREFIX, COUNTERS_UPDATED_TIME, INIT_PREFIX, KeyKind, USER_PREFIX,
};
use crate::store::Repo;
use crate::sync_target::SyncTarget;

/// Folder of the snapshot objects inside the store.
const FOLDER: &str = "rolls";
/// Object name of the counter set (the timestamp key's prefix).
const COUNTERS_OBJECT: &str = "c_";

/// One key set as stored.
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

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Key sets written to the object store.
    pub written: usize,
    /// Key sets restored into Redis.
    pub restored: usize,
    /// Key sets left alone because Redis was as new or newer.
    pub kept: usize,
}

/// Opens the configured object store: `sync_target` if set, else a local folder
/// `{data_dir}/rolls-sync`.
pub fn open_store(config: &RollsConfig) -> Result<Arc<dyn ObjectStore>, RollsError> {
    match &config.sync_target {
        Some(target) => target.open(&config.store_options),
        None => SyncTarget::local(config.data_dir.join("rolls-sync")).open(&config.store_options),
    }
}

fn object_path(key: &str) -> ObjectPath {
    ObjectPath::from(format!("{FOLDER}/{key}.json"))
}

fn millis(raw: Option<String>) -> Option<i64> {
    raw.as_deref()
        .and_then(updated_time::decode)
        .map(|t| t.timestamp_millis())
}

/// Reads every seed key set from Redis.
pub async fn read_all(redis: &Redis) -> Result<Vec<Snapshot>, RollsError> {
    let repo = Repo::new(redis.clone());
    let mut conn = redis.conn();
    let mut out = Vec::new();
    let mut counter_keys = Vec::new();
    let mut keys = Vec::new();
    for pattern in [USER_PREFIX, COUNTER_PREFIX, INIT_PREFIX] {
        keys.extend(repo.scan(&format!("{pattern}*")).await?);
    }
    keys.sort();
    keys.dedup();
    for key in keys {
        match schema::classify(&key) {
            Some(KeyKind::UserSet) => {
                let (members, ts): (Vec<String>, Option<String>) = redis::pipe()
                    .atomic()
                    .smembers(&key)
                    .get(updated_time::key_for(&key))
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
                    .get(updated_time::key_for(&key))
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
            key: COUNTERS_OBJECT.to_owned(),
            updated_time: millis(ts).unwrap_or(0),
            value: Value::Counters(counters),
        });
    }
    Ok(out)
}

/// Writes every seed key set to the object store.
pub async fn snapshot(redis: &Redis, objects: &dyn ObjectStore) -> Result<SyncReport, RollsError> {
    let mut report = SyncReport::default();
    for snap in read_all(redis).await? {
        let bytes = serde_json::to_vec(&snap).map_err(|e| RollsError::BadSnapshot {
            path: snap.key.clone(),
            reason: e.to_string(),
        })?;
        objects
            .put_opts(
                &object_path(&snap.key),
                PutPayload::from(bytes),
                PutOptions::default(),
            )
            .await?;
        report.written += 1;
    }
    tracing::info!(written = report.written, "rolls snapshot written");
    Ok(report)
}

/// Restores every key set from the object store unless Redis is as new or newer.
pub async fn restore(redis: &Redis, objects: &dyn ObjectStore) -> Result<SyncReport, RollsError> {
    let mut report = SyncReport::default();
    let listing = objects
        .list_with_delimiter(Some(&ObjectPath::from(FOLDER)))
        .await?;
    for meta in listing.objects {
        let path = meta.location.to_string();
        let bytes = objects
            .get_opts(&meta.location, GetOptions::default())
            .await?
            .bytes()
            .await?;
        let snap: Snapshot =
            serde_json::from_slice(&bytes).map_err(|e| RollsError::BadSnapshot {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if restore_one(redis, &snap, &path).await? {
            report.restored += 1;
        } else {
            report.kept += 1;
        }
    }
    tracing::info!(
        restored = report.restored,
        kept = report.kept,
        "rolls restore finished"
    );
    Ok(report)
}

/// Restores one key set; `false` if Redis was as new or newer (or won a race).
async fn restore_one(redis: &Redis, snap: &Snapshot, path: &str) -> Result<bool, RollsError> {
    let bad = |reason: &str| RollsError::BadSnapshot {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let ts_key = match (&snap.value, schema::classify(&snap.key)) {
        (Value::Counters(_), None) if snap.key == COUNTERS_OBJECT => {
            COUNTERS_UPDATED_TIME.to_owned()
        }
        (Value::Set(_), Some(KeyKind::UserSet))
        | (Value::String(_), Some(KeyKind::User(_)))
        | (Value::String(_), Some(KeyKind::Init(_))) => updated_time::key_for(&snap.key),
        _ => return Err(bad("not a rolls key set")),
    };
    let mut conn = redis.conn();
    let current: Option<Vec<u8>> = conn.get(&ts_key).await?;
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
    writes.set(&ts_key, snap.updated_time.to_string());
    let applied = redis.apply_if(&ts_key, current.as_deref(), &writes).await?;
    if applied {
        tracing::debug!(key = %snap.key, "restored from snapshot");
    }
    Ok(applied)
}

/// One round, for `tavern sync --once`: restore what is newer in the store, then
/// snapshot everything.
pub async fn sync_once(redis: &Redis, config: &RollsConfig) -> Result<SyncReport, RollsError> {
    let objects = open_store(config)?;
    let restored = restore(redis, objects.as_ref()).await?;
    let written = snapshot(redis, objects.as_ref()).await?;
    Ok(SyncReport {
        written: written.written,
        restored: restored.restored,
        kept: restored.kept,
    })
}
