//! Rolls: dice, odds, initiative, characters and usage statistics for Discord, with the
//! seed's REST backend and sync service (`shared/seeds/feyre-overview.md`).
//!
//! # Rooms
//! - [`schema`]: the seed's Redis keys (`user_set`, `user_{id}`, `c_{command}`,
//!   `c_:updated_time`, `init_{channel_id}`, `{key}:updated_time`) and their JSON shapes.
//! - [`domain`]: pure rules (characters, the tracker, help text).
//! - [`store`]: repositories over `schema`.
//! - [`ops`]: the seed's controller / operation / model split; every command, button
//!   and REST request goes through [`ops::Controller::run`].
//! - [`commands`]: Discord handlers. [`web`]: the REST API. [`jobs`]: the sync service,
//!   writing to the [`SyncTarget`] of [`sync_target`] (a folder, S3 or Azure Blob).
//!
//! # Choices where the seed is vague
//! - **`init_{channel_id}`** ("Not sure what this will look like yet"): a JSON
//!   [`schema::Tracker`] — entries (name, user, initiative) sorted by initiative, the
//!   current turn index, the round, and the tracker message's id.
//! - **`user_{id}`** ("characters, saved rolls, etc."): a JSON [`schema::UserDoc`] with
//!   `characters` keyed by name (`{"initiative_modifier": n}`), `active_character` and
//!   `saved_rolls`; unknown fields are preserved. At most 9 characters (the original's
//!   limit). Character names match case-insensitively.
//! - **Counters** are named after the top-level command (`c_roll`, `c_odds`, `c_init`,
//!   `c_character`, `c_stats`, `c_help`); buttons count as their command and REST
//!   requests count like the command they mirror. Only requests that succeed are
//!   counted, because the count is committed in the same atomic step as the
//!   operation's own writes.
//! - **`user_set` members** are decimal strings (what the original stored).
//! - **Timestamps** are Unix milliseconds (`store::updated_time`). Every counter write
//!   sets `c_:updated_time` only, as the seed says.
//! - **Sync**: one object per key set (`rolls/{key}.json`; all counters together in
//!   `rolls/c_.json`); restore never deletes keys; ties keep Redis. The job runs hourly
//!   (the seed's "once per hour", not the original code's 2 h) and at shutdown. The
//!   store is a local folder by default, or S3 / Azure Blob Storage by URL; credentials
//!   only ever come from the environment (`AWS_*`, `AZURE_*`) or [`StoreOptions`].
//! - **`/init join` without a roll** rolls `1d20` plus the active character's modifier;
//!   a `character` that is not one of the user's joins under that name with no modifier
//!   (a GM adding a monster). `roll` takes a number or a dice expression.
//! - **`/stats`** lists used commands; `/stats all` also lists unused ones. The numbers
//!   are those before the request itself is counted.
//! - **Turn order before the fight starts**: until someone presses Next, the highest
//!   initiative is first up (late joiners can take the top); after that the current
//!   turn stays with its combatant when someone joins or leaves.
//! - **The tracker message**: commands edit the stored message in place (posting a new
//!   one if it was deleted); `/init get` reposts it at the bottom of the channel; the
//!   buttons answer with an in-place update. REST changes edit it best effort.
//!
//! # Limits
//! - The sync scan (`SCAN`) and the multi-key reads (`MGET` of counters, the atomic
//!   read of a key with its timestamp) assume a single Redis server; on a Redis
//!   Cluster they would need per-node scans and hash tags, which the seed's key names
//!   do not allow.

pub mod commands;
pub mod domain;
mod error;
pub mod jobs;
pub mod ops;
pub mod schema;
pub mod store;
pub mod sync_target;
pub mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::RollsError;
pub use jobs::{SyncReport, sync_once};
pub use sync_target::{BadSyncTarget, StoreOptions, SyncTarget};

/// How the feature is configured.
#[derive(Clone)]
pub struct RollsConfig {
    /// Tavern's data directory; the default sync target is `{data_dir}/rolls-sync`.
    pub data_dir: PathBuf,
    /// Where snapshots go instead of `{data_dir}/rolls-sync`: a folder, an S3 bucket or
    /// an Azure container (see [`SyncTarget`]).
    pub sync_target: Option<SyncTarget>,
    /// Object-store settings over the environment's (endpoint, credentials, …).
    pub store_options: StoreOptions,
    /// Snapshot period (the seed: hourly).
    pub sync_every: Duration,
}

impl RollsConfig {
    /// Local snapshots under `data_dir`, hourly.
    pub fn new(data_dir: impl Into<PathBuf>) -> RollsConfig {
        RollsConfig {
            data_dir: data_dir.into(),
            sync_target: None,
            store_options: StoreOptions::default(),
            sync_every: Duration::from_secs(60 * 60),
        }
    }
}

impl std::fmt::Debug for RollsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollsConfig")
            .field("data_dir", &self.data_dir)
            .field("sync_target", &self.sync_target)
            .field("store_options", &self.store_options)
            .field("sync_every", &self.sync_every)
            .finish()
    }
}

type SyncFuture = discord::BoxFuture<'static, Result<(), feature::JobError>>;

/// The feature: commands, the `rolls` component prefix, `/api/rolls/` routes, the hourly
/// `rolls-sync` job (also at shutdown) and the start-up restore that serving waits for.
pub fn feature(
    redis: ::store::Redis,
    discord: discord::Discord,
    config: RollsConfig,
) -> feature::Feature {
    let ctx = commands::Ctx {
        controller: ops::Controller::new(store::Repo::new(redis.clone())),
        discord,
    };
    let mut feature = feature::Feature::new("rolls");
    feature.commands = commands::commands(&ctx);
    feature.components = Some((commands::PREFIX, commands::components(&ctx)));
    feature.routes = Some(web::router(ctx));

    let config = Arc::new(config);
    let (r, c) = (redis.clone(), Arc::clone(&config));
    feature.jobs.push(feature::Job {
        name: "rolls-sync",
        every: config.sync_every,
        on_shutdown: true,
        run: Arc::new(move || -> SyncFuture {
            let (redis, config) = (r.clone(), Arc::clone(&c));
            Box::pin(async move {
                let objects = jobs::open_store(&config).map_err(feature::JobError::new)?;
                jobs::snapshot(&redis, objects.as_ref())
                    .await
                    .map(|_| ())
                    .map_err(feature::JobError::new)
            })
        }),
    });
    feature.startup = Some(Arc::new(move || -> SyncFuture {
        let (redis, config) = (redis.clone(), Arc::clone(&config));
        Box::pin(async move {
            let objects = jobs::open_store(&config).map_err(feature::JobError::new)?;
            jobs::restore(&redis, objects.as_ref())
                .await
                .map(|_| ())
                .map_err(feature::JobError::new)
        })
    }));
    feature
}
