//! The clip archive: finds the videos a community posts in the Discord channels its admins
//! enable, and keeps what it needs to find them again in PostgreSQL, in the tables of the
//! seed `clip-archive-tables.md`, exactly as written there, in the schema `clips`.
//!
//! This crate is the feature's foundation: the tables, the rules and the repositories,
//! plus the job that purges stale install intents. The Discord commands, the gateway
//! handlers, the scan worker and the web dashboard are built on it later. The binary
//! calls [`feature()`] with a [`ClipsConfig`] and gets the migrations and the job.
//!
//! # Rooms
//! - [`domain`]: ids and pure rules. Discord's ids (`discord::model`) for guilds,
//!   channels, users and messages (stored as text, read back with
//!   [`domain::parse_snowflake`]); [`domain::ScanRunId`] (a UUID) and the redacted
//!   [`IntentState`] from `base::key_id!`; [`domain::InternalUserId`], the `serial` of
//!   a user row. [`Settings`], their keys and their merge; [`ClipMatcher`] (is this
//!   attachment a clip?); [`ScanStatus`] and its transitions; [`ScanWindow`] (how a scan
//!   pages through history); install intents ([`InstallIntent`], the consume verdict and
//!   the purge cutoff). No I/O.
//! - [`schema`]: the migration ([`MIGRATIONS`]), every SQL statement over the tables,
//!   the rows they return and the constraint names. No other module names a table or a
//!   column, or writes SQL. It builds on `domain`, never the reverse.
//! - [`repo`]: [`Repo`], the repositories over `schema`, one file per aggregate: users,
//!   guilds, settings, channels, scan runs, install intents. Each race-prone change is
//!   one guarded statement. Failures are [`RepoError`]: the storage vocabulary
//!   ([`store::StorageError`]) next to the domain's refusals.
//! - [`jobs`]: `purge_install_intents`, every [`ClipsConfig::purge_every`] (30 minutes
//!   by default), by the context's clock.
//!
//! # Choices where the seed leaves room
//! - **pgcrypto** is created `IF NOT EXISTS ... WITH SCHEMA public`. An extension lives
//!   once per database, in one schema; left to the `search_path` it would land in
//!   `clips`, out of sight of other features. In `public` every feature sees it, and a
//!   second feature asking for it is a no-op. Nothing in clips calls pgcrypto: the
//!   default `gen_random_uuid()` resolves to the core function (PostgreSQL 13+, which
//!   Tavern therefore needs), so clips works wherever the extension ended up. pgcrypto is
//!   a trusted extension: a role with `CREATE` on the database and on `public` (on
//!   PostgreSQL 15, the database owner) may create it without being superuser. Debian
//!   ships it in the server package's contrib.
//! - **`install_intents.created_at`/`expires_at` are `timestamp` without time zone**, as
//!   the seed says. Such a value is a wall-clock reading with no zone, so Tavern always
//!   writes both times itself, in UTC, and compares them only with a UTC "now" it
//!   passes in (never the server's `now()`, which depends on the session's `TimeZone`).
//!   The seed's `DEFAULT current_timestamp` stays in the table but Tavern never relies
//!   on it.
//! - **Settings merge**: a channel's `settings` are applied over its guild's as a JSON
//!   merge patch (RFC 7396): keys replace, nested objects merge, arrays are replaced
//!   whole, and `null` removes a key (the default applies again). The stored partial
//!   update uses the seed's JSONB `||` (top-level keys replace), with a `null` in the
//!   patch deleting that key, which is the same patch semantics one level deep.
//! - **Settings keys and defaults**: `video_formats` (default `["mp4", "webm", "mov"]`;
//!   entries are extensions or full MIME types), `scan_nsfw` (default `false`), and
//!   Tavern's `include_pattern` / `exclude_pattern` (regular expressions on the
//!   attachment's file name; default none; the seed names no key for the behaviour's
//!   include/exclude regexes), `auto_scan` (default `false`, read by
//!   [`Settings::auto_scan`] for the scheduler to come). The seed's `prefix` is stored
//!   and merged like any key but read by nothing: Tavern's commands are slash commands.
//!   A setting of the wrong type or a bad pattern is an error naming the setting, never
//!   a silent default; an absent or `null` setting takes its default.
//! - **Scan windows**: a run's `after_message_id` / `before_message_id` always hold the
//!   part of history still to read (both exclusive). Each page moves one bound, so an
//!   interrupted run resumes from its row. The seed has no direction column: a run with
//!   a lower bound walks forward from it (catch-up from `last_message_id`), one without
//!   walks backward from the upper bound or the newest message (deep scan). A catch-up of
//!   a channel never scanned is a deep scan. Progress and the channel's
//!   `last_message_id` / `message_count` / `last_scanned_at` move in one statement, and
//!   only while the run is `running`, so a canceled run's worker sees its next progress
//!   refused and stops.
//! - **Status transitions**: queued -> running | canceled; running -> succeeded |
//!   failed | canceled. `started_at` is stamped on running, `finished_at` on the final
//!   states.
//! - **Install intents**: the state is 32 random bytes as unpadded base64url (43
//!   characters). Consuming deletes the row only for its own user before expiry (one
//!   `DELETE ... RETURNING`); an unknown or expired state is rejected, another user's
//!   is forbidden (403) and stays in place for its owner. Expiry is 10 minutes; the
//!   purge job deletes intents [`ClipsConfig::intent_grace`] (5 minutes by default)
//!   after they expired.
//! - **No owner ⇒ bare user row**: `bot_guilds.owner_user_id` references
//!   `users(discord_user_id)`, so recording a guild whose owner never logged in creates
//!   that user's row with only the id.
//! - **`guild_settings` has no foreign key** (the seed gives it none): a guild's settings
//!   outlive the guild row and come back when the bot is re-added.
//! - **`bot_channels.is_nsfw` may be null** (the seed gives it a default but no
//!   `NOT NULL`); a null reads as `false`, its default.
//! - **`updated_at`** of `bot_channels` is the trigger's; `guild_settings.updated_at`
//!   has no trigger in the seed, so its update statement sets it.
//!
//! # Left to the clips issue
//! The index of the clips themselves (message, attachment URL, size, type, author,
//! time) is not among the seed's tables; its table is decided with the ingestion work,
//! not invented here.

pub mod domain;
pub mod jobs;
pub mod repo;
pub mod schema;

use std::time::Duration;

use chrono::TimeDelta;

pub use domain::{
    Attachment, ClipMatcher, ConsumeError, InstallIntent, IntentState, ScanDirection, ScanStatus,
    ScanWindow, Settings, SettingsError,
};
pub use repo::{Repo, RepoError};
pub use schema::MIGRATIONS;

/// Settings of the clip archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipsConfig {
    /// How often expired install intents are purged.
    pub purge_every: Duration,
    /// How long after expiry an install intent is kept before the purge deletes it, so
    /// a callback arriving at the edge hears "expired" rather than "unknown".
    pub intent_grace: TimeDelta,
}

impl Default for ClipsConfig {
    fn default() -> ClipsConfig {
        ClipsConfig {
            purge_every: jobs::PURGE_EVERY,
            intent_grace: domain::PURGE_GRACE,
        }
    }
}

/// The clip archive as a [`feature::Feature`]: its migrations and the purge job, over
/// the context's PostgreSQL and clock.
pub fn feature(ctx: &feature::Context, config: ClipsConfig) -> feature::Feature {
    let repo = Repo::new(&ctx.postgres);
    feature::Feature::new("clips")
        .migrations(MIGRATIONS)
        .job(jobs::purge_install_intents_job(
            repo,
            ctx.clock.clone(),
            &config,
        ))
}
