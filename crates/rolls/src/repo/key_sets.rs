//! Whole key sets, as the sync service moves them between Redis and object storage:
//! `user_set`, each `user_{id}`, each `init_{channel_id}`, and all counters together
//! (they share `c_:updated_time`, so they are one set), each with its timestamp.
//!
//! Reading comes in two passes so a snapshot reads only what changed: [`Repo::heads`]
//! gives every set's timestamp and size without its value, [`Repo::read_key_sets`]
//! reads the values of the sets asked for, many per round trip.
//!
//! Restoring never loses what Redis holds and works for a set of any size:
//! - `user_set` only ever grows, so a restore *adds* the snapshot's members Redis
//!   lacks (a union). They are first written, in chunks, to a scratch key beside it
//!   ([`schema::restore_scratch_key`], expiring after an hour), and joined into
//!   `user_set` in one atomic step once the scratch set is whole: a reader sees the
//!   old set or the whole union, never a half, and no single command carries more
//!   than [`CHUNK`] members (a Lua script, where commands are unpacked from
//!   arguments, fails past about 8,000).
//! - Counters only ever grow: one that Redis holds with an older timestamp than the
//!   snapshot's is set to the snapshot's value (Redis is an older state); one that
//!   Redis holds with a newer timestamp but a *lower* value counted again from zero
//!   after Redis lost its data, so the snapshot's count is added to it (`INCRBY`).
//! - A document (`user_{id}`, `init_{channel}`) is written when Redis has none or an
//!   older one; a newer one in Redis wins (the seed's rule).
//!
//! Each restore step is a compare-and-set on the set's timestamp key, so a write
//! racing the restore wins, and the timestamp ends at the newer of the two sides.

use std::collections::BTreeMap;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use store::{Attempt, StorageError, Writes, optimistic, updated_time};

use super::Repo;
use crate::schema::{self, COUNTERS_SET, COUNTERS_UPDATED_TIME, KeyKind, USER_SET};

/// Most members or keys in one Redis command or round trip of the sync.
pub const CHUNK: usize = 1000;

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

/// What kind of key set a key names, for the rules that differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// `user_set`: only ever grows.
    UserSet,
    /// All `c_{command}` counters together: only ever grow.
    Counters,
    /// `user_{id}` or `init_{channel}`: a JSON document that may grow or shrink.
    Document,
}

impl SetKind {
    /// The kind of the key set named `key`, if it is one of ours.
    pub fn of(key: &str) -> Option<SetKind> {
        if key == COUNTERS_SET {
            return Some(SetKind::Counters);
        }
        match schema::classify(key)? {
            KeyKind::UserSet => Some(SetKind::UserSet),
            KeyKind::User(_) | KeyKind::Init(_) => Some(SetKind::Document),
            KeyKind::Counter(_) => None,
        }
    }

    /// Whether the application only ever adds to it, so that holding less than a
    /// snapshot means data was lost.
    pub fn grows_only(self) -> bool {
        matches!(self, SetKind::UserSet | SetKind::Counters)
    }
}

/// A key set's timestamp and size, without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub key: String,
    pub kind: SetKind,
    /// Unix millis (0 if Redis has no timestamp).
    pub updated_time: i64,
    /// Members of `user_set`, the sum of the counters, the bytes of a document.
    pub size: u64,
}

impl Snapshot {
    /// The timestamp key that decides whether this set is newer than Redis's, or
    /// `None` if the snapshot is not one of ours (an unknown key, or a value of the
    /// wrong kind for its key).
    pub fn updated_time_key(&self) -> Option<String> {
        match (&self.value, SetKind::of(&self.key)) {
            (Value::Counters(_), Some(SetKind::Counters)) => Some(COUNTERS_UPDATED_TIME.to_owned()),
            (Value::Set(_), Some(SetKind::UserSet))
            | (Value::String(_), Some(SetKind::Document)) => {
                Some(schema::updated_time_key(&self.key))
            }
            _ => None,
        }
    }

    /// The size [`Head::size`] gives the same set.
    pub fn size(&self) -> u64 {
        match &self.value {
            Value::Set(members) => as_u64(members.len()),
            Value::String(text) => as_u64(text.len()),
            Value::Counters(counters) => counters_total(counters.values().copied()),
        }
    }
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn counters_total(values: impl Iterator<Item = i64>) -> u64 {
    values
        .map(|v| u64::try_from(v).unwrap_or(0))
        .fold(0, u64::saturating_add)
}

fn millis(raw: Option<&str>) -> Option<i64> {
    raw.and_then(updated_time::decode)
        .map(|t| t.timestamp_millis())
}

impl Repo {
    /// Every seed key, sorted (SCAN, never `KEYS`).
    async fn seed_keys(&self) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        for pattern in schema::seed_key_patterns() {
            keys.extend(self.scan(&pattern).await?);
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Every seed key set's timestamp and size.
    pub async fn heads(&self) -> Result<Vec<Head>, StorageError> {
        let mut conn = self.redis().conn();
        let mut documents = Vec::new();
        let mut counters = Vec::new();
        let mut user_set = false;
        for key in self.seed_keys().await? {
            match schema::classify(&key) {
                Some(KeyKind::UserSet) => user_set = true,
                Some(KeyKind::User(_)) | Some(KeyKind::Init(_)) => documents.push(key),
                Some(KeyKind::Counter(_)) => counters.push(key),
                None => {}
            }
        }
        let mut heads = Vec::with_capacity(documents.len() + 2);
        if user_set {
            let (size, ts): (u64, Option<String>) = redis::pipe()
                .atomic()
                .scard(USER_SET)
                .get(schema::updated_time_key(USER_SET))
                .query_async(&mut conn)
                .await?;
            if size > 0 {
                heads.push(Head {
                    key: USER_SET.to_owned(),
                    kind: SetKind::UserSet,
                    updated_time: millis(ts.as_deref()).unwrap_or(0),
                    size,
                });
            }
        }
        if !counters.is_empty() {
            let (values, ts): (Vec<Option<i64>>, Option<String>) = redis::pipe()
                .atomic()
                .mget(&counters)
                .get(COUNTERS_UPDATED_TIME)
                .query_async(&mut conn)
                .await?;
            heads.push(Head {
                key: COUNTERS_SET.to_owned(),
                kind: SetKind::Counters,
                updated_time: millis(ts.as_deref()).unwrap_or(0),
                size: counters_total(values.into_iter().flatten()),
            });
        }
        for chunk in documents.chunks(CHUNK) {
            let ts_keys: Vec<String> = chunk.iter().map(|k| schema::updated_time_key(k)).collect();
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.strlen(key);
            }
            let lengths: Vec<u64> = pipe.query_async(&mut conn).await?;
            let stamps: Vec<Option<String>> = conn.mget(&ts_keys).await?;
            for ((key, size), ts) in chunk.iter().zip(lengths).zip(stamps) {
                if size > 0 {
                    heads.push(Head {
                        key: key.clone(),
                        kind: SetKind::Document,
                        updated_time: millis(ts.as_deref()).unwrap_or(0),
                        size,
                    });
                }
            }
        }
        Ok(heads)
    }

    /// The key sets named `keys` (as [`Head::key`] names them), each read atomically
    /// with its timestamp; sets that are gone are left out.
    pub async fn read_key_sets(&self, keys: &[String]) -> Result<Vec<Snapshot>, StorageError> {
        let mut conn = self.redis().conn();
        let mut out = Vec::with_capacity(keys.len());
        let mut documents = Vec::new();
        for key in keys {
            match SetKind::of(key) {
                Some(SetKind::UserSet) => {
                    let (mut members, ts): (Vec<String>, Option<String>) = redis::pipe()
                        .atomic()
                        .smembers(USER_SET)
                        .get(schema::updated_time_key(USER_SET))
                        .query_async(&mut conn)
                        .await?;
                    members.sort();
                    out.push(Snapshot {
                        key: USER_SET.to_owned(),
                        updated_time: millis(ts.as_deref()).unwrap_or(0),
                        value: Value::Set(members),
                    });
                }
                Some(SetKind::Counters) => {
                    if let Some(snapshot) = self.read_counters().await? {
                        out.push(snapshot);
                    }
                }
                Some(SetKind::Document) => documents.push(key),
                None => {}
            }
        }
        for chunk in documents.chunks(CHUNK / 2) {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for key in chunk {
                pipe.get(*key).get(schema::updated_time_key(key));
            }
            let values: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
            for (key, pair) in chunk.iter().zip(values.chunks(2)) {
                if let [Some(value), ts] = pair {
                    out.push(Snapshot {
                        key: (*key).clone(),
                        updated_time: millis(ts.as_deref()).unwrap_or(0),
                        value: Value::String(value.clone()),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn read_counters(&self) -> Result<Option<Snapshot>, StorageError> {
        let keys: Vec<String> = self
            .scan(&schema::counters_pattern())
            .await?
            .into_iter()
            .filter(|k| matches!(schema::classify(k), Some(KeyKind::Counter(_))))
            .collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let mut conn = self.redis().conn();
        let (values, ts): (Vec<Option<i64>>, Option<String>) = redis::pipe()
            .atomic()
            .mget(&keys)
            .get(COUNTERS_UPDATED_TIME)
            .query_async(&mut conn)
            .await?;
        let counters = keys
            .iter()
            .zip(values)
            .filter_map(|(key, v)| match (schema::classify(key), v) {
                (Some(KeyKind::Counter(command)), Some(v)) => Some((command, v)),
                _ => None,
            })
            .collect();
        Ok(Some(Snapshot {
            key: COUNTERS_SET.to_owned(),
            updated_time: millis(ts.as_deref()).unwrap_or(0),
            value: Value::Counters(counters),
        }))
    }

    /// Every seed key set in Redis, each read atomically with its timestamp.
    pub async fn key_sets(&self) -> Result<Vec<Snapshot>, StorageError> {
        let keys: Vec<String> = self.heads().await?.into_iter().map(|h| h.key).collect();
        self.read_key_sets(&keys).await
    }

    /// Restores `snap` into Redis by the rules of the module docs. `false`: Redis
    /// already held all of it and was kept as it is.
    pub async fn restore_key_set(&self, snap: &Snapshot) -> Result<bool, StorageError> {
        let ts_key = snap.updated_time_key().ok_or_else(|| {
            StorageError::corrupt(&snap.key, "the snapshot is not one of a rolls key set")
        })?;
        match &snap.value {
            Value::Set(members) => self.restore_user_set(snap, members, &ts_key).await,
            Value::Counters(counters) => self.restore_counters(snap, counters, &ts_key).await,
            Value::String(value) => self.restore_document(snap, value, &ts_key).await,
        }
    }

    /// The current timestamp of `ts_key`: its raw bytes (the guard) and millis.
    async fn timestamp(
        &self,
        ts_key: &str,
    ) -> Result<(Option<Vec<u8>>, Option<i64>), StorageError> {
        let mut conn = self.redis().conn();
        let raw: Option<Vec<u8>> = conn.get(ts_key).await?;
        let ms = millis(raw.as_deref().and_then(|b| std::str::from_utf8(b).ok()));
        Ok((raw, ms))
    }

    async fn restore_document(
        &self,
        snap: &Snapshot,
        value: &str,
        ts_key: &str,
    ) -> Result<bool, StorageError> {
        optimistic(&snap.key, |_| async move {
            let (raw, current) = self.timestamp(ts_key).await?;
            let mut conn = self.redis().conn();
            let exists: bool = conn.exists(&snap.key).await?;
            if exists && current.is_some_and(|ms| ms >= snap.updated_time) {
                return Ok(Attempt::Done(false));
            }
            let mut writes = Writes::new();
            writes.set(&snap.key, value);
            self.stamped(ts_key, raw.as_deref(), current, snap, writes)
                .await
        })
        .await
    }

    async fn restore_counters(
        &self,
        snap: &Snapshot,
        counters: &BTreeMap<String, i64>,
        ts_key: &str,
    ) -> Result<bool, StorageError> {
        let entries: Vec<(String, i64)> = counters
            .iter()
            .map(|(command, value)| (schema::counter_key(command), *value))
            .collect();
        optimistic(COUNTERS_SET, |_| {
            let entries = &entries;
            async move {
                let (raw, current) = self.timestamp(ts_key).await?;
                // Redis older than the snapshot: an older state, replaced. Newer but
                // lower: it counted again from zero, so the snapshot's count is added.
                let redis_is_older = current.is_none_or(|ms| ms < snap.updated_time);
                let mut writes = Writes::new();
                let mut conn = self.redis().conn();
                for chunk in entries.chunks(CHUNK) {
                    let names: Vec<&str> = chunk.iter().map(|(key, _)| key.as_str()).collect();
                    let held: Vec<Option<i64>> = redis::cmd("MGET")
                        .arg(&names)
                        .query_async(&mut conn)
                        .await?;
                    for ((key, wanted), held) in chunk.iter().zip(held) {
                        if held.unwrap_or(0) >= *wanted {
                            continue;
                        }
                        if redis_is_older {
                            writes.set(key, *wanted);
                        } else {
                            writes.command("INCRBY").arg(key).arg(*wanted);
                        }
                    }
                }
                if writes.is_empty() {
                    return Ok(Attempt::Done(false));
                }
                self.stamped(ts_key, raw.as_deref(), current, snap, writes)
                    .await
            }
        })
        .await
    }

    async fn restore_user_set(
        &self,
        snap: &Snapshot,
        members: &[String],
        ts_key: &str,
    ) -> Result<bool, StorageError> {
        let mut conn = self.redis().conn();
        let mut missing = Vec::new();
        for chunk in members.chunks(CHUNK) {
            let held: Vec<bool> = redis::cmd("SMISMEMBER")
                .arg(USER_SET)
                .arg(chunk)
                .query_async(&mut conn)
                .await?;
            missing.extend(
                chunk
                    .iter()
                    .zip(held)
                    .filter(|(_, held)| !held)
                    .map(|(m, _)| m.as_str()),
            );
        }
        if missing.is_empty() {
            return Ok(false);
        }
        let scratch = schema::restore_scratch_key(USER_SET, rand_nonce());
        for chunk in missing.chunks(CHUNK) {
            let mut writes = Writes::new();
            writes.sadd(&scratch, chunk);
            writes.expire(&scratch, SCRATCH_TTL_SECONDS);
            self.redis().apply(&writes).await?;
        }
        let scratch = scratch.as_str();
        optimistic(USER_SET, |_| async move {
            let (raw, current) = self.timestamp(ts_key).await?;
            let mut writes = Writes::new();
            writes
                .command("SUNIONSTORE")
                .arg(USER_SET)
                .arg(USER_SET)
                .arg(scratch);
            writes.del(scratch);
            self.stamped(ts_key, raw.as_deref(), current, snap, writes)
                .await
        })
        .await
    }
}

/// How long a restore's scratch set lives if the restore dies half way.
const SCRATCH_TTL_SECONDS: u64 = 60 * 60;

/// The later of Redis's timestamp and the snapshot's, as stored.
impl Repo {
    /// Writes a restore step with the key set's timestamp moved up to the snapshot's,
    /// if the timestamp is still `raw` (what the step read); else the step is retried.
    async fn stamped(
        &self,
        ts_key: &str,
        raw: Option<&[u8]>,
        current: Option<i64>,
        snap: &Snapshot,
        mut writes: Writes,
    ) -> Result<Attempt<bool>, StorageError> {
        writes.set(ts_key, newer(current, snap.updated_time));
        Ok(if self.redis().apply_if(ts_key, raw, &writes).await? {
            Attempt::Done(true)
        } else {
            Attempt::Retry
        })
    }
}

fn newer(current: Option<i64>, snapshot: i64) -> String {
    current.map_or(snapshot, |ms| ms.max(snapshot)).to_string()
}

/// A number that makes one restore's scratch key its own.
fn rand_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
