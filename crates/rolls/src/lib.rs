//! Rolls: dice, odds, initiative, characters and usage statistics for Discord, with the
//! seed's REST backend and sync service (`shared/seeds/feyre-overview.md`).
//!
//! # Rooms
//! - [`domain`]: the ids (Discord's typed snowflakes: `UserId`, `ChannelId`,
//!   `MessageId`), the documents ([`domain::UserDoc`], [`domain::Tracker`]) and the pure
//!   rules (characters, the tracker, help text). No I/O.
//! - [`schema`]: the seed's Redis keys (`user_set`, `user_{id}`, `c_{command}`,
//!   `c_:updated_time`, `init_{channel_id}`, `{key}:updated_time`); the only module
//!   that spells them. It depends on `domain`, never the reverse.
//! - [`repo`]: repositories over `schema`, one file per aggregate (user documents,
//!   trackers, usage counters, whole key sets for the sync); every failure a
//!   [`store::StorageError`].
//! - [`ops`]: the seed's controller / operation / model split; every command, button
//!   and REST request goes through [`ops::Controller::run`], whose compare-and-set
//!   commits retry through [`store::optimistic()`].
//! - [`commands`]: Discord handlers. [`web`]: the REST API. [`jobs`]: the sync service,
//!   writing to the [`SyncTarget`] of [`sync_target`] (a folder, S3 or Azure Blob).
//! - [`RollsError`]: domain refusals and dice errors next to the wrapped
//!   [`store::StorageError`]; [`RollsError::into_handler_error`] and
//!   [`RollsError::into_http`] are the one way each out, the storage part in
//!   [`feature::reply`]'s words.
//! - [`feature()`]: the whole feature as one [`feature::Feature`].
//!
//! # Choices where the seed is vague
//! - **`init_{channel_id}`** ("Not sure what this will look like yet"): a JSON
//!   [`domain::Tracker`] — entries (name, user, initiative) sorted by initiative, the
//!   current turn index, the round, and the tracker message's id.
//! - **`user_{id}`** ("characters, saved rolls, etc."): a JSON [`domain::UserDoc`] with
//!   `characters` keyed by name (`{"initiative_modifier": n}`), `active_character` and
//!   `saved_rolls`; unknown fields are preserved. At most 9 characters (the original's
//!   limit). Character names match case-insensitively.
//! - **Counters** are named after the top-level command (`c_roll`, `c_odds`, `c_init`,
//!   `c_character`, `c_stats`, `c_help`); buttons count as their command and REST
//!   requests count like the command they mirror. Only requests that succeed are
//!   counted, because the count is committed in the same atomic step as the
//!   operation's own writes.
//! - **`user_set` members** are decimal strings (what the original stored); the ids in
//!   the JSON documents are decimal strings too (numbers are read as well).
//! - **Timestamps** are Unix milliseconds (`store::updated_time`), by the context's
//!   clock. Every counter write sets `c_:updated_time` only, as the seed says.
//! - **Sync**: one object per key set (`rolls/{key}.json`; all counters together in
//!   `rolls/c_.json`); restore never deletes keys; ties keep Redis. The snapshot job
//!   (`rolls-sync`) runs hourly (the seed's "once per hour", not the original code's
//!   2 h) and at shutdown; the restore (`rolls-restore`) is start-up work that serving
//!   waits for. The
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
pub mod repo;
pub mod schema;
pub mod sync_target;
pub mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use feature::{Feature, Job, Startup};

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

/// The feature: commands, the `rolls` component prefix, `/api/rolls/` routes, the hourly
/// `rolls-sync` job (also at shutdown) and the `rolls-restore` start-up work that
/// serving waits for.
pub fn feature(ctx: &feature::Context, config: RollsConfig) -> Feature {
    let handlers = commands::Ctx {
        controller: ops::Controller::new(repo::Repo::new(ctx.redis.clone()), ctx.clock.clone()),
        discord: ctx.discord.clone(),
    };
    let config = Arc::new(config);

    let (redis, sync_config) = (ctx.redis.clone(), Arc::clone(&config));
    let sync = Job::every("rolls-sync", config.sync_every, move || {
        let (redis, config) = (redis.clone(), Arc::clone(&sync_config));
        async move { jobs::snapshot_job(&redis, &config).await }
    })
    .on_shutdown();

    let (redis, restore_config) = (ctx.redis.clone(), config);
    let restore = Startup::new("rolls-restore", move || {
        let (redis, config) = (redis.clone(), Arc::clone(&restore_config));
        async move { jobs::restore_startup(&redis, &config).await }
    });

    commands::commands(&handlers)
        .into_iter()
        .fold(Feature::new("rolls"), |feature, (spec, handler)| {
            feature.command(spec, handler)
        })
        .components(commands::PREFIX, commands::components(&handlers))
        .routes(web::router(handlers))
        .job(sync)
        .startup(restore)
}
