//! The seed's Sync Service: mirrors every seed key to object storage and restores it,
//! without ever losing data on either side.
//!
//! # Layout
//!
//! One object per key set and version: `user_set`, each `user_{id}`, each
//! `init_{channel}`, and `c_` for all counters together (they share
//! `c_:updated_time`, so they are one set). Each object holds the key, its
//! `:updated_time` (Unix millis) and the value ([`Snapshot`]):
//!
//! ```json
//! {"key": "user_set", "updated_time": 1790000000123, "value": {"type": "set", "data": ["1", "2"]}}
//! ```
//!
//! | object                                   | what                                              |
//! |------------------------------------------|---------------------------------------------------|
//! | `rolls/versions/{key}/{updated_time}.json` | every version of a key set ever snapshotted, never overwritten |
//! | `rolls/{key}.json`                       | the latest accepted version of the set, the plain mirror |
//! | `rolls/snapshots/{taken_at}.json`        | one per snapshot, dated (`2025-06-15T16-53-20.000Z`): every key set with the version it had then ([`Manifest`]) |
//!
//! A snapshot (a dated version) is its manifest: the state at that hour is every
//! `versions/{key}/{updated_time}` it lists. The last [`RollsConfig::sync_keep`]
//! snapshots are kept; an older one is deleted with the versions no kept snapshot
//! lists.
//!
//! # Snapshot (`rolls-sync`, hourly and at shutdown)
//!
//! - **Only what changed.** The set's timestamp and size are read first
//!   ([`Repo::heads`]); a set whose timestamp and size are those of the last
//!   snapshot is listed again without being read or written.
//! - **No shrinking backup.** `user_set` and the counters only ever grow. When one
//!   would shrink by more than half, or go from populated to empty, the new version
//!   is written beside the previous one (in `versions/`) but not taken: the mirror
//!   and the manifest keep the previous version, the manifest lists the new one under
//!   `held_back`, and a warning is logged. A key set the last snapshot has and Redis
//!   no longer has is carried over the same way (Tavern never deletes one), with a
//!   warning.
//! - **Restore first.** The hourly job compares Redis with the last snapshot before
//!   writing: when Redis holds less (a set is missing, or `user_set` or the counters
//!   are smaller), Redis lost its data, and the job restores from the snapshot first
//!   (see below), then snapshots the result, instead of overwriting the backup.
//! - **An unreadable manifest is passed over.** "The last snapshot" is the newest
//!   manifest that decodes; newer ones that do not are skipped with a warning and
//!   listed in [`SyncReport::skipped`], the new snapshot is taken over the readable
//!   one, and retention deletes them in their turn (a manifest that does not decode
//!   lists nothing to delete with it).
//!
//! # Restore (`rolls-restore`, start-up work that serving waits for)
//!
//! From the last snapshot (or, for a store written before snapshots had manifests,
//! every `rolls/{key}.json`), by the rules of [`crate::repo::key_sets`]: `user_set`
//! gets the members it lacks, counters are brought up to the snapshot's, a document
//! is written when Redis has none or an older one (the seed: "UNLESS the data stored
//! in Redis is more up-to-date"). Documents Redis holds as new are not even fetched.
//! An object that cannot be used (it does not decode, holds another key, is gone) is
//! skipped with a warning naming it, and listed in the report: its key set stays as
//! Redis has it, every other one is restored, and Tavern starts. A newest manifest that
//! does not decode gives way to the newest one that does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base::Clock;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use store::Redis;

use crate::RollsConfig;
use crate::RollsError;
use crate::repo::Repo;
use crate::repo::key_sets::{Head, SetKind};
pub use crate::repo::{Snapshot, Value};
use crate::sync_target::SyncTarget;

/// Folder of every object inside the store.
const FOLDER: &str = "rolls";
/// Folder of the manifests.
const SNAPSHOTS: &str = "rolls/snapshots";
/// Object-store requests in flight at once.
const PARALLEL: usize = 16;

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Key sets written to the object store (new versions taken).
    pub written: usize,
    /// Key sets listed again as they were in the last snapshot, not written.
    pub unchanged: usize,
    /// New versions written beside the previous one and not taken: they would
    /// have shrunk a set that only grows.
    pub held_back: usize,
    /// Key sets the last snapshot has and Redis no longer has, carried over.
    pub carried: usize,
    /// Key sets restored into Redis.
    pub restored: usize,
    /// Key sets left alone by a restore because Redis was as new or newer.
    pub kept: usize,
    /// The hourly job found Redis holding less than the last snapshot and restored
    /// before snapshotting.
    pub restored_first: bool,
    /// Snapshots deleted past the retention count.
    pub deleted: usize,
    /// Objects a restore could not use (they do not decode, hold another key or are
    /// missing), `object: why` each, also logged at WARN: their key sets were left as
    /// Redis has them and the others restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// What restoring some key sets did.
#[derive(Debug, Default)]
struct Restored {
    restored: usize,
    kept: usize,
    skipped: Vec<String>,
}

impl Restored {
    /// Notes `object` as unusable (see [`SyncReport::skipped`]) and logs it.
    fn skip(&mut self, object: &str, error: &RollsError) {
        tracing::warn!(
            %object,
            %error,
            "a rolls snapshot object cannot be restored; its key set is left as Redis has it and the others are restored"
        );
        self.skipped.push(format!("{object}: {error}"));
    }
}

/// Whether restoring one key set failed because of its object (it does not decode,
/// holds another key, is gone, or is not a rolls key set): trying again cannot help,
/// so the key set is skipped and the others restored. Anything else (the store or
/// Redis unreachable) fails the restore, which is tried again.
fn unusable(error: &RollsError) -> bool {
    matches!(
        error,
        RollsError::BadSnapshot { .. }
            | RollsError::ObjectStore(object_store::Error::NotFound { .. })
            | RollsError::Storage(store::StorageError::Corrupt { .. })
    )
}

/// One snapshot: every key set with the version it had. `rolls/snapshots/{name}.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// When it was taken, Unix millis; also its name.
    pub taken_at: i64,
    /// The version of each key set: `rolls/versions/{key}/{updated_time}.json`.
    pub sets: BTreeMap<String, Version>,
    /// New versions written beside the listed ones but not taken (they would have
    /// shrunk a set that only grows), for an operator to look at.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held_back: BTreeMap<String, Version>,
}

/// One version of a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub updated_time: i64,
    /// Members of `user_set`, the sum of the counters, the bytes of a document.
    pub size: u64,
}

/// Opens the configured object store: `sync_target` if set, else a local folder
/// `{data_dir}/rolls-sync`.
pub fn open_store(config: &RollsConfig) -> Result<Arc<dyn ObjectStore>, RollsError> {
    match &config.sync_target {
        Some(target) => target.open(&config.store_options),
        None => SyncTarget::local(config.data_dir.join("rolls-sync")).open(&config.store_options),
    }
}

/// `rolls/{key}.json`: the latest accepted version.
pub fn mirror_path(key: &str) -> ObjectPath {
    ObjectPath::from(format!("{FOLDER}/{key}.json"))
}

/// `rolls/versions/{key}/{updated_time}.json`.
pub fn version_path(key: &str, updated_time: i64) -> ObjectPath {
    ObjectPath::from(format!("{FOLDER}/versions/{key}/{updated_time}.json"))
}

/// `rolls/snapshots/{2025-06-15T16-53-20.000Z}.json`: dated, and sorted by name
/// as by time.
pub fn manifest_path(taken_at: i64) -> ObjectPath {
    let stamp = chrono::DateTime::from_timestamp_millis(taken_at)
        .map(|t| t.format("%Y-%m-%dT%H-%M-%S%.3fZ").to_string())
        .unwrap_or_else(|| format!("{taken_at}"));
    ObjectPath::from(format!("{SNAPSHOTS}/{stamp}.json"))
}

fn bad(path: &ObjectPath, reason: impl std::fmt::Display) -> RollsError {
    RollsError::BadSnapshot {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// Whether `now` (the size in Redis) is less than half of `before`, or nothing where
/// there was something.
fn shrinks(before: u64, now: u64) -> bool {
    now.saturating_mul(2) < before || (now == 0 && before > 0)
}

/// The sync of one Redis with one object store.
#[derive(Clone)]
pub struct SyncService {
    repo: Repo,
    objects: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    keep: usize,
}

impl std::fmt::Debug for SyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncService")
            .field("objects", &self.objects.to_string())
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl SyncService {
    /// Snapshots of `redis` in `objects`, dated by `clock`, the last `keep` (at
    /// least one) kept.
    pub fn new(
        redis: &Redis,
        objects: Arc<dyn ObjectStore>,
        clock: Arc<dyn Clock>,
        keep: usize,
    ) -> SyncService {
        SyncService {
            repo: Repo::new(redis.clone()),
            objects,
            clock,
            keep: keep.max(1),
        }
    }

    /// The configured store ([`open_store`]) and retention.
    pub fn open(
        redis: &Redis,
        config: &RollsConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<SyncService, RollsError> {
        Ok(SyncService::new(
            redis,
            open_store(config)?,
            clock,
            config.sync_keep,
        ))
    }

    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The paths of every manifest, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<ObjectPath>, RollsError> {
        let listing = self
            .objects
            .list_with_delimiter(Some(&ObjectPath::from(SNAPSHOTS)))
            .await?;
        let mut paths: Vec<ObjectPath> = listing
            .objects
            .into_iter()
            .map(|meta| meta.location)
            .filter(|p| p.as_ref().ends_with(".json"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        path: &ObjectPath,
    ) -> Result<T, RollsError> {
        let bytes = self.objects.get(path).await?.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| bad(path, e))
    }

    async fn write<T: Serialize>(&self, path: &ObjectPath, value: &T) -> Result<(), RollsError> {
        let bytes = serde_json::to_vec(value).map_err(|e| bad(path, e))?;
        self.objects.put(path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The manifest at `path` (one of [`SyncService::snapshots`]).
    pub async fn manifest(&self, path: &ObjectPath) -> Result<Manifest, RollsError> {
        self.read(path).await
    }

    /// The last snapshot's manifest, if there is one.
    pub async fn last_manifest(&self) -> Result<Option<Manifest>, RollsError> {
        match self.snapshots().await?.last() {
            None => Ok(None),
            Some(path) => Ok(Some(self.read(path).await?)),
        }
    }

    /// One object of a key set: the listed version, else the mirror when it is that
    /// version.
    async fn fetch(&self, key: &str, version: Version) -> Result<Snapshot, RollsError> {
        let path = version_path(key, version.updated_time);
        let snap: Snapshot = match self.read(&path).await {
            Err(RollsError::ObjectStore(object_store::Error::NotFound { .. })) => {
                self.read(&mirror_path(key)).await?
            }
            other => other?,
        };
        if snap.key != key {
            return Err(bad(&path, format!("holds `{}`, not `{key}`", snap.key)));
        }
        Ok(snap)
    }

    /// Restores `snaps` (each with the object it came from) into Redis, some at once.
    /// A snapshot Redis refuses as corrupt is skipped ([`unusable`]).
    async fn restore_all(
        &self,
        snaps: Vec<(String, Snapshot)>,
        mut done: Restored,
    ) -> Result<Restored, RollsError> {
        let results: Vec<(String, Result<bool, RollsError>)> = futures_util::stream::iter(snaps)
            .map(|(object, snap)| async move {
                let restored = self
                    .repo
                    .restore_key_set(&snap)
                    .await
                    .map_err(RollsError::from);
                if matches!(restored, Ok(true)) {
                    tracing::debug!(key = %snap.key, "restored from snapshot");
                }
                (object, restored)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for (object, result) in results {
            match result {
                Ok(true) => done.restored += 1,
                Ok(false) => done.kept += 1,
                Err(error) if unusable(&error) => done.skip(&object, &error),
                Err(error) => return Err(error),
            }
        }
        Ok(done)
    }

    /// Fetches and restores the key sets `keys` of `manifest`; an object that cannot
    /// be used is skipped ([`unusable`]).
    async fn restore_from(
        &self,
        manifest: &Manifest,
        keys: &[&String],
    ) -> Result<Restored, RollsError> {
        let wanted: Vec<(String, Version)> = keys
            .iter()
            .filter_map(|key| manifest.sets.get(*key).map(|v| ((*key).clone(), *v)))
            .collect();
        let fetched: Vec<(String, Result<Snapshot, RollsError>)> =
            futures_util::stream::iter(wanted)
                .map(|(key, version)| async move {
                    let object = version_path(&key, version.updated_time).to_string();
                    (object, self.fetch(&key, version).await)
                })
                .buffer_unordered(PARALLEL)
                .collect()
                .await;
        let mut done = Restored::default();
        let mut snaps = Vec::with_capacity(fetched.len());
        for (object, result) in fetched {
            match result {
                Ok(snap) => snaps.push((object, snap)),
                Err(error) if unusable(&error) => done.skip(&object, &error),
                Err(error) => return Err(error),
            }
        }
        self.restore_all(snaps, done).await
    }

    /// The newest manifest that can be read, with the newer ones that could not
    /// (skipped with a warning, [`unusable`]).
    async fn newest_readable_manifest(&self) -> Result<(Option<Manifest>, Restored), RollsError> {
        let mut done = Restored::default();
        for path in self.snapshots().await?.iter().rev() {
            match self.read::<Manifest>(path).await {
                Ok(manifest) => return Ok((Some(manifest), done)),
                Err(error) if unusable(&error) => done.skip(path.as_ref(), &error),
                Err(error) => return Err(error),
            }
        }
        Ok((None, done))
    }

    /// Restores from the last snapshot every key set Redis holds less of or older;
    /// the rest is kept without being fetched. Without a manifest, every
    /// `rolls/{key}.json` is restored (a store from before manifests).
    ///
    /// An object that cannot be used (a manifest or key set that does not decode,
    /// holds another key or is gone) is skipped with a warning naming it and listed in
    /// [`SyncReport::skipped`]; the rest is restored (an unreadable newest manifest:
    /// from the newest one that reads). Only a store or Redis that does not answer
    /// fails the restore.
    pub async fn restore(&self) -> Result<SyncReport, RollsError> {
        let mut report = SyncReport::default();
        let (manifest, unread) = self.newest_readable_manifest().await?;
        report.skipped = unread.skipped;
        match manifest {
            Some(manifest) => {
                let heads: BTreeMap<String, Head> = self
                    .repo
                    .heads()
                    .await?
                    .into_iter()
                    .map(|h| (h.key.clone(), h))
                    .collect();
                let (wanted, fresh): (Vec<&String>, Vec<&String>) =
                    manifest.sets.keys().partition(|key| {
                        let newer_in_redis = match (heads.get(*key), manifest.sets.get(*key)) {
                            (Some(head), Some(version)) => {
                                head.kind == SetKind::Document
                                    && head.updated_time >= version.updated_time
                            }
                            _ => false,
                        };
                        !newer_in_redis
                    });
                let done = self.restore_from(&manifest, &wanted).await?;
                report.restored = done.restored;
                report.kept = done.kept + fresh.len();
                report.skipped.extend(done.skipped);
            }
            None => {
                let listing = self
                    .objects
                    .list_with_delimiter(Some(&ObjectPath::from(FOLDER)))
                    .await?;
                let read: Vec<(String, Result<Snapshot, RollsError>)> =
                    futures_util::stream::iter(listing.objects)
                        .map(|meta| async move {
                            let snap = self.read::<Snapshot>(&meta.location).await;
                            (meta.location.to_string(), snap)
                        })
                        .buffer_unordered(PARALLEL)
                        .collect()
                        .await;
                let mut done = Restored::default();
                let mut snaps = Vec::with_capacity(read.len());
                for (object, result) in read {
                    match result {
                        Ok(snap) => snaps.push((object, snap)),
                        Err(error) if unusable(&error) => done.skip(&object, &error),
                        Err(error) => return Err(error),
                    }
                }
                let done = self.restore_all(snaps, done).await?;
                report.restored = done.restored;
                report.kept = done.kept;
                report.skipped.extend(done.skipped);
            }
        }
        tracing::info!(
            restored = report.restored,
            kept = report.kept,
            skipped = report.skipped.len(),
            "rolls restore finished"
        );
        Ok(report)
    }

    /// The hourly job: restores first when Redis holds less than the last snapshot
    /// (it lost data), then snapshots.
    ///
    /// Like the restore, it starts from the newest manifest that reads: newer ones that
    /// do not decode are skipped with a warning and listed in [`SyncReport::skipped`],
    /// and the new snapshot is taken over the readable one.
    pub async fn hourly(&self) -> Result<SyncReport, RollsError> {
        let (last, unread) = self.newest_readable_manifest().await?;
        let mut heads = self.repo.heads().await?;
        let mut restored = Restored::default();
        let mut restored_first = false;
        if let Some(manifest) = &last {
            let lost = losses(manifest, &heads);
            if !lost.is_empty() {
                tracing::warn!(
                    key_sets = lost.len(),
                    first = %lost.first().map(|k| k.as_str()).unwrap_or_default(),
                    "Redis holds less than the last rolls snapshot (it lost data): restoring before snapshotting"
                );
                restored = self.restore_from(manifest, &lost).await?;
                restored_first = true;
                heads = self.repo.heads().await?;
            }
        }
        let mut report = self.snapshot_over(last, heads).await?;
        report.restored = restored.restored;
        report.kept = restored.kept;
        report.skipped = unread.skipped;
        report.skipped.extend(restored.skipped);
        report.restored_first = restored_first;
        Ok(report)
    }

    /// A snapshot of Redis as it is (no restore first; see [`SyncService::hourly`]),
    /// over the newest manifest that reads (the unreadable newer ones are listed in
    /// [`SyncReport::skipped`]).
    pub async fn snapshot(&self) -> Result<SyncReport, RollsError> {
        let (last, unread) = self.newest_readable_manifest().await?;
        let heads = self.repo.heads().await?;
        let mut report = self.snapshot_over(last, heads).await?;
        report.skipped = unread.skipped;
        Ok(report)
    }

    async fn snapshot_over(
        &self,
        last: Option<Manifest>,
        heads: Vec<Head>,
    ) -> Result<SyncReport, RollsError> {
        let mut report = SyncReport::default();
        let last = last.unwrap_or_default();
        let now = self.clock.now().timestamp_millis();
        let mut next = Manifest {
            taken_at: now.max(last.taken_at.saturating_add(1)),
            ..Manifest::default()
        };
        let mut changed = Vec::new();
        for head in &heads {
            let version = Version {
                updated_time: head.updated_time,
                size: head.size,
            };
            if last.sets.get(&head.key) == Some(&version) {
                next.sets.insert(head.key.clone(), version);
                report.unchanged += 1;
            } else {
                changed.push(head.key.clone());
            }
        }
        let snaps = self.repo.read_key_sets(&changed).await?;
        let taken: Vec<(Snapshot, bool)> = futures_util::stream::iter(snaps)
            .map(|snap| {
                let before = last.sets.get(&snap.key).copied();
                async move {
                    let size = snap.size();
                    let grows_only = SetKind::of(&snap.key).is_some_and(SetKind::grows_only);
                    let held = grows_only && before.is_some_and(|b| shrinks(b.size, size));
                    self.write(&version_path(&snap.key, snap.updated_time), &snap)
                        .await?;
                    if !held {
                        self.write(&mirror_path(&snap.key), &snap).await?;
                    }
                    Ok::<_, RollsError>((snap, held))
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
        for (snap, held) in taken {
            let version = Version {
                updated_time: snap.updated_time,
                size: snap.size(),
            };
            match (held, last.sets.get(&snap.key)) {
                (true, Some(before)) => {
                    tracing::warn!(
                        key = %snap.key,
                        before = before.size,
                        now = version.size,
                        kept = %version_path(&snap.key, before.updated_time),
                        beside = %version_path(&snap.key, version.updated_time),
                        "a rolls key set would shrink by more than half: the previous snapshot is kept and the new one written beside it"
                    );
                    next.sets.insert(snap.key.clone(), *before);
                    next.held_back.insert(snap.key, version);
                    report.held_back += 1;
                }
                _ => {
                    next.sets.insert(snap.key, version);
                    report.written += 1;
                }
            }
        }
        let missing: Vec<(&String, &Version)> = last
            .sets
            .iter()
            .filter(|(key, _)| !next.sets.contains_key(*key))
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                key_sets = missing.len(),
                first = %missing.first().map(|(k, _)| k.as_str()).unwrap_or_default(),
                "rolls key sets of the last snapshot are missing from Redis: their last version is kept"
            );
        }
        for (key, version) in missing {
            next.sets.insert(key.clone(), *version);
            report.carried += 1;
        }
        self.write(&manifest_path(next.taken_at), &next).await?;
        report.deleted = self.retain().await?;
        tracing::info!(
            written = report.written,
            unchanged = report.unchanged,
            held_back = report.held_back,
            carried = report.carried,
            deleted = report.deleted,
            "rolls snapshot written"
        );
        Ok(report)
    }

    /// Deletes the snapshots past the retention count, with every version that only
    /// they list. Returns how many snapshots went.
    async fn retain(&self) -> Result<usize, RollsError> {
        let paths = self.snapshots().await?;
        if paths.len() <= self.keep {
            return Ok(0);
        }
        let (doomed, kept) = paths.split_at(paths.len() - self.keep);
        // The oldest kept manifest that reads (one that does not decode lists nothing
        // anybody can restore from; the one just written always reads).
        let mut oldest = None;
        for path in kept {
            match self.read::<Manifest>(path).await {
                Ok(manifest) => {
                    oldest = Some(manifest);
                    break;
                }
                Err(error) if unusable(&error) => {
                    tracing::warn!(object = %path, %error, "a kept rolls manifest does not decode; retention goes by the next one");
                }
                Err(error) => return Err(error),
            }
        }
        let Some(oldest) = oldest else {
            return Ok(0);
        };
        // Versions of a set only move forward, and every snapshot after the oldest
        // kept one lists versions at least as new: what the oldest kept one does not
        // list, no kept one does.
        let listed: BTreeSet<(String, i64)> = oldest
            .sets
            .iter()
            .chain(&oldest.held_back)
            .map(|(k, v)| (k.clone(), v.updated_time))
            .collect();
        for path in doomed {
            let manifest: Manifest = match self.read(path).await {
                Ok(manifest) => manifest,
                Err(error) if unusable(&error) => {
                    // Nothing can be restored from it; the versions only it listed
                    // stay in the store.
                    tracing::warn!(object = %path, %error, "deleting an old rolls manifest that does not decode");
                    Manifest::default()
                }
                Err(error) => return Err(error),
            };
            let superseded = manifest.sets.iter().filter(|(key, version)| {
                oldest
                    .sets
                    .get(*key)
                    .is_some_and(|kept| kept.updated_time > version.updated_time)
            });
            let stale: Vec<ObjectPath> = superseded
                .chain(&manifest.held_back)
                .filter(|(key, version)| !listed.contains(&((*key).clone(), version.updated_time)))
                .map(|(key, version)| version_path(key, version.updated_time))
                .collect();
            futures_util::stream::iter(stale)
                .map(|stale| async move {
                    match self.objects.delete(&stale).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(error) => Err(RollsError::from(error)),
                    }
                })
                .buffer_unordered(PARALLEL)
                .try_collect::<Vec<()>>()
                .await?;
            match self.objects.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(doomed.len())
    }
}

/// The key sets of `manifest` that Redis (`heads`) holds less of: missing, or, for a
/// set that only grows, smaller.
fn losses<'m>(manifest: &'m Manifest, heads: &[Head]) -> Vec<&'m String> {
    let heads: BTreeMap<&str, &Head> = heads.iter().map(|h| (h.key.as_str(), h)).collect();
    manifest
        .sets
        .iter()
        .filter(|(key, version)| match heads.get(key.as_str()) {
            None => true,
            Some(head) => head.kind.grows_only() && head.size < version.size,
        })
        .map(|(key, _)| key)
        .collect()
}

/// The `rolls-sync` job: restore first if Redis lost data, then a snapshot.
pub async fn snapshot_job(
    redis: &Redis,
    config: &RollsConfig,
    clock: Arc<dyn Clock>,
) -> Result<(), RollsError> {
    SyncService::open(redis, config, clock)?
        .hourly()
        .await
        .map(|_| ())
}

/// The `rolls-restore` start-up work: every key set the store has newer.
pub async fn restore_startup(
    redis: &Redis,
    config: &RollsConfig,
    clock: Arc<dyn Clock>,
) -> Result<(), RollsError> {
    SyncService::open(redis, config, clock)?
        .restore()
        .await
        .map(|_| ())
}

/// One round, for `tavern sync --once`: restore what the store has newer, then
/// snapshot.
pub async fn sync_once(redis: &Redis, config: &RollsConfig) -> Result<SyncReport, RollsError> {
    let sync = SyncService::open(redis, config, Arc::new(base::SystemClock))?;
    let restored = sync.restore().await?;
    let mut report = sync.snapshot().await?;
    report.restored = restored.restored;
    report.kept = restored.kept;
    report.skipped = restored.skipped;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_dated_and_sort_by_time() {
        let a = manifest_path(1_750_006_400_000);
        assert_eq!(a.as_ref(), "rolls/snapshots/2025-06-15T16-53-20.000Z.json");
        let b = manifest_path(1_750_006_400_001);
        assert!(a < b);
        assert_eq!(
            version_path("user_set", 17).as_ref(),
            "rolls/versions/user_set/17.json"
        );
        assert_eq!(mirror_path("c_").as_ref(), "rolls/c_.json");
    }

    #[test]
    fn shrinking_is_more_than_half_or_to_nothing() {
        assert!(!shrinks(10, 5));
        assert!(shrinks(10, 4));
        assert!(shrinks(1, 0));
        assert!(!shrinks(0, 0));
        assert!(!shrinks(3, 30));
    }
}
