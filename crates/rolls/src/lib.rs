//! Rolls: dice, odds, initiative, characters and usage statistics for Discord, with the
//! seed's REST backend and sync service (`shared/seeds/feyre-overview.md`).
//!
//! # Rooms
//! - [`domain`]: the ids (Discord's typed snowflakes: `UserId`, `ChannelId`,
//!   `MessageId`), the documents ([`domain::UserDoc`], [`domain::Tracker`]) and the pure
//!   rules (characters, the tracker, help text). No I/O. [`domain::combat`] holds the
//!   combat tracker's rules (hit points, effects and their durations, concentration,
//!   hidden combatants, groups, turn order), [`domain::import`] the reading of Feyre's
//!   characters.
//! - [`schema`]: the seed's Redis keys (`user_set`, `user_{id}`, `c_{command}`,
//!   `c_:updated_time`, `init_{channel_id}`, `{key}:updated_time`); the only module
//!   that spells them. It depends on `domain`, never the reverse.
//! - [`repo`]: repositories over `schema`, one file per aggregate (user documents,
//!   trackers, usage counters, whole key sets for the sync); every failure a
//!   [`store::StorageError`].
//! - [`ops`]: the seed's controller / operation / model split; every command, button
//!   and REST request goes through [`ops::Controller::run`], whose compare-and-set
//!   commits retry through [`store::optimistic()`].
//! - [`pool`]: the [`DicePool`], where every roll and odds computation runs, off the
//!   async workers.
//! - The table tools: [`alias`] (aliases with `{}` placeholders, saved rolls),
//!   [`history`] (roll ids: every roll seeded, recorded for 30 days, replayable),
//!   [`gm`] (a channel's GM; GM and blind rolls), [`chart`] (the odds bar chart as a
//!   PNG); their Discord handlers are in [`tools`], their REST routes in [`web`].
//! - [`commands`]: Discord handlers. [`web`]: the REST API. [`jobs`]: the sync service
//!   ([`SyncService`]), writing to the [`SyncTarget`] of [`sync_target`] (a folder, S3
//!   or Azure Blob).
//! - [`RollsError`]: domain refusals and dice errors next to the wrapped
//!   [`store::StorageError`]; [`RollsError::into_handler_error`] and
//!   [`RollsError::into_http`] are the one way each out, the storage part in
//!   [`feature::reply`]'s words.
//! - [`feature()`]: the whole feature as one [`feature::Feature`].
//!
//! # Choices where the seed is vague
//! - **`init_{channel_id}`** ("Not sure what this will look like yet"): a JSON
//!   [`domain::Tracker`] — entries (name, user, initiative) sorted by initiative, the
//!   current turn index, the round, and the tracker message's id; each entry may also
//!   carry the combat fields of [`domain::combat::Combatant`] (`init_expr`, `hp`,
//!   `max_hp`, `temp_hp`, `ac`, `con_save`, `hidden`, `group`, `note`, `effects`), and
//!   the tracker `reroll`, each written only when set, so older trackers read and
//!   write byte for byte as before.
//! - **`user_{id}`** ("characters, saved rolls, etc."): a JSON [`domain::UserDoc`] with
//!   `characters` keyed by name (`{"initiative_modifier": n}`, plus `"initiative":
//!   "1d20+3"` when the character rolls an expression), `active_character` and
//!   `saved_rolls` (edited with `/saved`), plus `aliases` (an addition, written only
//!   when there are some: [`alias`]); unknown fields are preserved. At most 9
//!   characters (the original's limit). Character names match case-insensitively.
//! - **Counters** are named after the top-level command (`c_roll`, `c_odds`, `c_init`,
//!   `c_character`, `c_stats`, `c_help`); buttons count as their command and REST
//!   requests count like the command they mirror. Only requests that succeed are
//!   counted, because the count is committed in the same atomic step as the
//!   operation's own writes; a Next turned down because the turn moved on (REST's
//!   409, a Next button's second press) changed nothing and is not counted either
//!   ([`ops::Operation::counts`]).
//! - **`user_set` members** are decimal strings (what the original stored); the ids in
//!   the JSON documents are decimal strings too (numbers are read as well).
//! - **Who is added to `user_set`**: only an authenticated caller
//!   ([`domain::Authenticated`], today the actor of a Discord interaction, whom Discord
//!   vouches for). The seed adds every REST `?user=`; here that id is only claimed
//!   ([`domain::Caller::Claimed`]): the request is counted, nobody is added, so an
//!   anonymous client cannot grow the set. The repository's bookkeeping takes the
//!   proof, not an id ([`repo::bookkeeping`]).
//! - **`/stats` and `/api/rolls/stats`** read the counters of the feature's own
//!   commands by name (one `MGET`), never by scanning the keyspace: the cost does not
//!   grow with the data. Counters of other commands (there are none) are not shown.
//! - **Timestamps** are Unix milliseconds (`store::updated_time`), by the context's
//!   clock. Every counter write sets `c_:updated_time` only, as the seed says.
//! - **Sync** ([`jobs`] has the whole story): one object per key set and version
//!   (`rolls/versions/{key}/{updated_time}.json`; all counters together as `c_`), the
//!   latest mirrored at `rolls/{key}.json`, and one dated manifest per snapshot
//!   (`rolls/snapshots/…`), the last [`RollsConfig::sync_keep`] kept (default
//!   [`DEFAULT_SYNC_KEEP`], two days of hourly ones). A snapshot writes only the sets
//!   whose timestamp or size changed. `user_set` and the counters only ever grow, so a
//!   snapshot that would shrink one by more than half (or empty it) is written beside
//!   the previous one, which stays current, with a warning; a set Redis lost is carried
//!   over. The hourly job (`rolls-sync`, also at shutdown; the seed's "once per hour",
//!   not the original code's 2 h) first compares Redis with the last snapshot and,
//!   when Redis holds less (it lost data), restores before it snapshots. A restore
//!   never removes a key, a member or a count: `user_set` gets the members it lacks (chunked
//!   into a scratch key, joined in one step, so a set of any size works), counters are
//!   raised to the snapshot's (added to, when Redis counted again from zero), a
//!   document is written when Redis has none or an older one (ties keep Redis). The
//!   restore (`rolls-restore`) is start-up work that serving waits for; an object in
//!   the store that cannot be used (it does not decode, holds another key, is gone) is
//!   skipped with a warning naming it and the rest restored, so one bad object never
//!   keeps Tavern from starting. The store is a local folder by default, or S3 / Azure
//!   Blob Storage by URL (without a query string); credentials only ever come from the
//!   environment (`AWS_*`, `AZURE_*`) or [`StoreOptions`].
//! - **Dice work** (parse, roll, render, odds) runs in the [`DicePool`]: on tokio's
//!   blocking threads, at most half the cores' worth of rolls and as many odds at
//!   once (two lanes, so a queue of slow odds never holds a quick roll), never on the
//!   async workers that answer everything else. Each expression has a work budget
//!   (the dice crate's `GRAMMAR.md`, "The work budget of one expression": 20,000 dice
//!   a roll; 40 million exact steps and 10 million simulated dice for odds), and what
//!   is over it is refused with the budget named, before the work where the literal
//!   dice already show it.
//! - **Long answers**: a Discord reply is cut to Discord's 2,000 characters (at a line
//!   break when there is one) with a note that says so and where the whole answer is
//!   ([`commands::CUT_NOTE`], [`commands::CUT_ROLL_NOTE`]); a REST answer is at most
//!   [`web::MAX_ANSWER_BYTES`] (a roll over it leaves out its result tree and says so).
//! - **Tracker size**: at most [`domain::MAX_TRACKER_ENTRIES`] (20) entries per
//!   channel, so the tracker message always fits one Discord message; the next join
//!   is refused in words (re-rolling an entry that is there still works).
//! - **`/init join` without a roll** rolls the active character's initiative
//!   expression, or `1d20` plus its modifier; a `character` that is not one of the
//!   user's is refused naming the ones they have (REST: 404; a GM adds a monster with
//!   `/init add`). `roll` takes a fixed number (`15`), a modifier to the d20 (`+3`,
//!   `-1`), `adv`/`dis` with an optional modifier (`adv+2`), or a dice expression.
//! - **`/stats`** lists used commands; `/stats all` also lists unused ones. The numbers
//!   are those before the request itself is counted.
//! - **Turn order before the fight starts**: until someone presses Next, the highest
//!   initiative is first up (late joiners can take the top, and the top leaving ends
//!   no turn); after that the current turn stays with its combatant when someone joins
//!   or someone else leaves, and a combatant leaving on their own turn ends it like
//!   Next (the last in the order leaving starts the next round). The tracker stores
//!   that the fight began (`started`), so `prev` or a move back to the top of round 1
//!   does not undo it; a tracker stored without the flag infers it (past round 1 or
//!   past the top), as before.
//! - **The tracker message**: commands edit the stored message in place (posting a new
//!   one if it was deleted); `/init get` reposts it at the bottom of the channel; the
//!   buttons answer with an in-place update. REST changes edit it best effort. Every
//!   `/init` subcommand edits the same message; a tracker too long for one message
//!   drops notes and durations, then hit points, before it is cut
//!   ([`domain::combat::render`]).
//! - **The combat tracker** (`/init add|hp|damage|heal|effect|note|opt|prev|move|skip|reroll|view`):
//!   its rules and bounds are in [`domain::combat`]; `/init effect` takes
//!   `action:add|remove|drop` (Discord has no nested subcommands here). A turn change
//!   (`next`, `prev`, `skip`, the Next button) mentions whoever is up with
//!   `allowed_mentions` naming only them; the button posts that mention beside the
//!   tracker. Hidden combatants are `???` everywhere the channel (or REST) sees the
//!   tracker; answers about them are private to the caller.
//! - **`/character import`** reads Feyre's user document (JSON) or the text of a
//!   character list ([`domain::import`]).
//!
//! # Limits
//! - The sync scan (`SCAN`) and the multi-key reads (`MGET` of counters, the atomic
//!   read of a key with its timestamp) assume a single Redis server; on a Redis
//!   Cluster they would need per-node scans and hash tags, which the seed's key names
//!   do not allow.
//! - A set held back as shrunk stays held back while it stays small: the app never
//!   removes users or lowers counters, so only an operator does that on purpose, and
//!   then also removes the old versions from the store. Versions left behind by a
//!   snapshot that died before writing its manifest are not swept.

pub mod alias;
pub mod chart;
pub mod commands;
pub mod domain;
mod error;
pub mod gm;
pub mod history;
pub mod jobs;
pub mod membership;
pub mod ops;
pub mod pool;
pub mod repo;
pub mod schema;
pub mod sync_target;
pub mod tools;
pub mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use feature::{Feature, Job, Startup};

pub use error::RollsError;
pub use jobs::{SyncReport, SyncService, sync_once};
pub use pool::DicePool;
pub use sync_target::{BadSyncTarget, StoreOptions, SyncTarget};

/// What dice and initiative need of the bot in a guild: see the channel (or thread) and
/// post the tracker and the rolls shown to a GM (the rest are interaction answers).
pub const BOT_PERMISSIONS: u64 = discord::model::permissions::VIEW_CHANNEL
    | discord::model::permissions::SEND_MESSAGES
    | discord::model::permissions::SEND_MESSAGES_IN_THREADS;

/// How many snapshots the sync keeps by default: two days of hourly ones.
pub const DEFAULT_SYNC_KEEP: usize = 48;

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
    /// How many dated snapshots to keep (at least one).
    pub sync_keep: usize,
    /// Where dice work runs.
    pub dice: DicePool,
}

impl RollsConfig {
    /// Local snapshots under `data_dir`, hourly, the last [`DEFAULT_SYNC_KEEP`] kept;
    /// dice work on a pool sized for this machine.
    pub fn new(data_dir: impl Into<PathBuf>) -> RollsConfig {
        RollsConfig {
            data_dir: data_dir.into(),
            sync_target: None,
            store_options: StoreOptions::default(),
            sync_every: Duration::from_secs(60 * 60),
            sync_keep: DEFAULT_SYNC_KEEP,
            dice: DicePool::for_this_machine(),
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
            .field("sync_keep", &self.sync_keep)
            .field("dice", &self.dice.sizes())
            .finish()
    }
}

/// The feature: commands, the `rolls` component prefix, `/api/rolls/` routes, the hourly
/// `rolls-sync` job (also at shutdown) and the `rolls-restore` start-up work that
/// serving waits for.
pub fn feature(ctx: &feature::Context, config: RollsConfig) -> Feature {
    let handlers = commands::Ctx {
        controller: ops::Controller::new(
            repo::Repo::new(ctx.redis.clone()),
            config.dice.clone(),
            ctx.clock.clone(),
        ),
        discord: ctx.discord.clone(),
        membership: membership::Membership::new(ctx.discord.clone(), ctx.clock.clone()),
        catalogue: ctx.catalogue.clone(),
    };
    let config = Arc::new(config);

    let (redis, clock, sync_config) = (ctx.redis.clone(), ctx.clock.clone(), Arc::clone(&config));
    let sync = Job::every("rolls-sync", config.sync_every, move || {
        let (redis, clock, config) = (redis.clone(), clock.clone(), Arc::clone(&sync_config));
        async move { jobs::snapshot_job(&redis, &config, clock).await }
    })
    .on_shutdown();

    let (redis, clock, restore_config) = (ctx.redis.clone(), ctx.clock.clone(), config);
    let restore = Startup::new("rolls-restore", move || {
        let (redis, clock, config) = (redis.clone(), clock.clone(), Arc::clone(&restore_config));
        async move { jobs::restore_startup(&redis, &config, clock).await }
    });

    commands::commands(&handlers)
        .into_iter()
        .fold(
            Feature::new("rolls").bot_permissions(BOT_PERMISSIONS),
            |feature, (spec, handler)| feature.command(spec, handler),
        )
        .components(commands::PREFIX, commands::components(&handlers))
        .web(web::routes(ctx, handlers))
        .job(sync)
        .startup(restore)
}
