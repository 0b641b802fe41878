//! The seed's Sync Service: mirrors every seed key to object storage and restores it.
//!
//! One object per key set, `rolls/{key}.json`: `user_set`, each `user_{id}`, each
//! `init_{channel}`, and `rolls/c_.json` for all counters together (they share
//! `c_:updated_time`, so they are one set). Each object holds the key, its
//! `:updated_time` (Unix millis) and the value ([`Snapshot`]):
//!
//! ```json
//! {"key": "user_set", "updated_time": 1790000000123, "value": {"type": "set", "data": ["1", "2"]}}
//! ```
//!
//! *Snapshot* (hourly and at shutdown, the `rolls-sync` job) writes every set.
//! *Restore* (at start-up, before serving: `rolls-restore`) rewrites a set in Redis
//! only when Redis's `:updated_time` is older than the object's or absent: if the bot
//! kept writing while the snapshot was stale, Redis wins. The restore of one set is a
//! compare-and-set on its timestamp key, so a write racing the restore also wins. Keys
//! are never deleted by a restore. The Redis side is [`crate::repo::key_sets`].

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};
use serde::Serialize;
use store::Redis;

use crate::RollsConfig;
use crate::RollsError;
use crate::repo::Repo;
pub use crate::repo::{Snapshot, Value};
use crate::sync_target::SyncTarget;

/// Folder of the snapshot objects inside the store.
const FOLDER: &str = "rolls";

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

/// Reads every seed key set from Redis.
pub async fn read_all(redis: &Redis) -> Result<Vec<Snapshot>, RollsError> {
    Ok(Repo::new(redis.clone()).key_sets().await?)
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
    let repo = Repo::new(redis.clone());
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
        let ts_key = snap
            .updated_time_key()
            .ok_or_else(|| RollsError::BadSnapshot {
                path: path.clone(),
                reason: "not a rolls key set".to_owned(),
            })?;
        if repo.restore_key_set(&snap, &ts_key).await? {
            tracing::debug!(key = %snap.key, "restored from snapshot");
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

/// The `rolls-sync` job: a snapshot of every key set into the configured store.
pub async fn snapshot_job(redis: &Redis, config: &RollsConfig) -> Result<(), RollsError> {
    let objects = open_store(config)?;
    snapshot(redis, objects.as_ref()).await.map(|_| ())
}

/// The `rolls-restore` start-up work: every key set the configured store has newer.
pub async fn restore_startup(redis: &Redis, config: &RollsConfig) -> Result<(), RollsError> {
    let objects = open_store(config)?;
    restore(redis, objects.as_ref()).await.map(|_| ())
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
