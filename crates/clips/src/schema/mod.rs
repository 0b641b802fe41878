//! The one place that knows the seed's tables (`clip-archive-tables.md`): the migration
//! that creates them, every SQL statement the repositories run over them, the rows those
//! statements return, and the names of their constraints. The keys inside the settings
//! documents are the domain's vocabulary ([`crate::domain::settings_keys`]): this module
//! builds on [`crate::domain`], never the reverse.
//!
//! | table | holds |
//! |---|---|
//! | `users` | Discord users who logged in or own a guild |
//! | `bot_guilds` | guilds the bot is in, with their owner |
//! | `guild_settings` | per-guild settings (JSONB) |
//! | `bot_channels` | channels, whether they are read, ingestion progress, overrides |
//! | `bot_channel_scan_runs` | one row per scan of a channel's history (`scan_status` enum) |
//! | `install_intents` | OAuth `state` of a bot installation in progress |
//! | `clips` | Tavern's addition: one row per video attachment found ([`index`]) |
//! | `scan_run_parts` | Tavern's addition: the parts of a deep scan read concurrently ([`index`]) |
//!
//! The migration runs with `search_path` set to the feature's schema (see
//! [`store::FeatureMigrations`]), so it is written unqualified, as in the seed. The
//! statements below run on the shared pool, whose `search_path` is the server default, so
//! they name every table as `clips.<table>`. Nothing outside this module writes a table or
//! column name, or a line of SQL.

use chrono::{DateTime, NaiveDateTime, Utc};
use store::FeatureMigrations;

/// The columns of `bot_channel_scan_runs` as a [`ScanRunRow`] reads them, for `SELECT`
/// and `RETURNING` (`id` and `status` as text).
macro_rules! run_columns {
    () => {
        "id::text AS id, channel_id, after_message_id, before_message_id, \
         status::text AS status, messages_scanned, messages_matched, error_message, \
         started_at, finished_at, created_at"
    };
}

pub mod index;
pub mod library;

/// The PostgreSQL schema of this feature.
pub const SCHEMA: &str = "clips";

/// Every table of the seed, in creation order.
pub const TABLES: [&str; 6] = [
    "users",
    "bot_guilds",
    "guild_settings",
    "bot_channels",
    "bot_channel_scan_runs",
    "install_intents",
];

/// The migrations of the clip archive, applied by [`store::Postgres::migrate`].
pub const MIGRATIONS: FeatureMigrations = FeatureMigrations {
    schema: SCHEMA,
    steps: &[
        (1, "clip archive tables", V1_TABLES),
        (2, "clip index", index::V2_CLIP_INDEX),
        (3, "scan parts", index::V3_SCAN_PARTS),
    ],
};

/// Version 1: the seed's tables, exactly as written there.
///
/// - `pgcrypto` goes into `public`, not into `clips`: an extension exists once per
///   database, in one schema, so the first feature to create it decides where it lives.
///   Naming `public` (on every feature's `search_path` after its own schema) means a
///   second feature asking for it finds it and can use it; `IF NOT EXISTS` makes that
///   second request a no-op. Nothing here calls a pgcrypto function: the default of
///   `bot_channel_scan_runs.id` resolves to the core `pg_catalog.gen_random_uuid()`
///   (PostgreSQL 13 and later), so the clips tables work wherever pgcrypto ended up.
/// - `trg_bot_channels_updated_at` runs `bot_channels_set_updated_at()` (the seed names the
///   trigger, not its function) before every `UPDATE` of a row, whatever the statement
///   set `updated_at` to.
const V1_TABLES: &str = r#"
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

CREATE TABLE users (
    id              serial PRIMARY KEY,
    discord_user_id text UNIQUE NOT NULL,
    username        text,
    global_name     text,
    avatar          text,
    last_login_at   timestamptz
);

CREATE TABLE bot_guilds (
    guild_id      text PRIMARY KEY,
    name          text NOT NULL,
    icon          text,
    owner_user_id text REFERENCES users (discord_user_id) ON DELETE SET NULL,
    joined_at     timestamptz DEFAULT now(),
    last_seen_at  timestamptz DEFAULT now()
);

CREATE TABLE guild_settings (
    guild_id   text PRIMARY KEY,
    settings   jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE bot_channels (
    channel_id       text PRIMARY KEY,
    guild_id         text NOT NULL REFERENCES bot_guilds (guild_id) ON DELETE CASCADE,
    name             text,
    type             text,
    is_nsfw          boolean DEFAULT false,
    is_reading       boolean NOT NULL DEFAULT false,
    last_message_id  text,
    last_scanned_at  timestamptz,
    last_activity_at timestamptz,
    message_count    bigint NOT NULL DEFAULT 0,
    settings         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_bot_channels_guild ON bot_channels (guild_id);
CREATE INDEX idx_bot_channels_isreading ON bot_channels (is_reading) WHERE is_reading = true;
CREATE INDEX idx_bot_channels_last_message_id ON bot_channels (last_message_id);
CREATE INDEX idx_bot_channels_work ON bot_channels (guild_id, is_reading, last_scanned_at);

CREATE FUNCTION bot_channels_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_bot_channels_updated_at
    BEFORE UPDATE ON bot_channels
    FOR EACH ROW EXECUTE FUNCTION bot_channels_set_updated_at();

CREATE TYPE scan_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'canceled');

CREATE TABLE bot_channel_scan_runs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id        text NOT NULL REFERENCES bot_channels (channel_id) ON DELETE CASCADE,
    after_message_id  text,
    before_message_id text,
    status            scan_status NOT NULL DEFAULT 'queued',
    messages_scanned  bigint NOT NULL DEFAULT 0,
    messages_matched  bigint NOT NULL DEFAULT 0,
    error_message     text,
    started_at        timestamptz,
    finished_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_bot_scan_runs_channel ON bot_channel_scan_runs (channel_id, created_at DESC);

CREATE TABLE install_intents (
    state      text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (discord_user_id) ON DELETE CASCADE,
    guild_id   text NOT NULL,
    created_at timestamp DEFAULT current_timestamp,
    expires_at timestamp NOT NULL
);
"#;

/// A `users` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserRow {
    pub id: i32,
    pub discord_user_id: String,
    pub username: Option<String>,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A `bot_guilds` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GuildRow {
    pub guild_id: String,
    pub name: String,
    pub icon: Option<String>,
    pub owner_user_id: Option<String>,
    pub joined_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// A `bot_channels` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChannelRow {
    pub channel_id: String,
    pub guild_id: String,
    pub name: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: Option<String>,
    pub is_nsfw: Option<bool>,
    pub is_reading: bool,
    pub last_message_id: Option<String>,
    pub last_scanned_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub message_count: i64,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A `bot_channel_scan_runs` row. The statements read `id` and `status` as text
/// (`id::text`, `status::text`), so sqlx needs neither a uuid nor an enum mapping.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScanRunRow {
    pub id: String,
    pub channel_id: String,
    pub after_message_id: Option<String>,
    pub before_message_id: Option<String>,
    pub status: String,
    pub messages_scanned: i64,
    pub messages_matched: i64,
    pub error_message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An `install_intents` row. The two times are `timestamp` without time zone: Tavern
/// writes and compares them as UTC wall-clock times.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InstallIntentRow {
    pub state: String,
    pub user_id: String,
    pub guild_id: String,
    pub created_at: Option<NaiveDateTime>,
    pub expires_at: NaiveDateTime,
}

// ---------------------------------------------------------------------------------------
// Statements. Parameters are documented per statement; ids are Discord snowflakes as text.

/// `$1` discord_user_id, `$2` username, `$3` global_name, `$4` avatar. Profile fields
/// are refreshed; `last_login_at` is left alone.
pub(crate) const UPSERT_USER: &str = "\
INSERT INTO clips.users (discord_user_id, username, global_name, avatar)
VALUES ($1, $2, $3, $4)
ON CONFLICT (discord_user_id) DO UPDATE
SET username = EXCLUDED.username, global_name = EXCLUDED.global_name, avatar = EXCLUDED.avatar
RETURNING id, discord_user_id, username, global_name, avatar, last_login_at";

/// `$1` discord_user_id, `$2` login time.
pub(crate) const RECORD_LOGIN: &str =
    "UPDATE clips.users SET last_login_at = $2 WHERE discord_user_id = $1";

/// `$1` discord_user_id. Creates a bare row for a user known only by id (a guild owner).
pub(crate) const ENSURE_USER: &str = "\
INSERT INTO clips.users (discord_user_id) VALUES ($1)
ON CONFLICT (discord_user_id) DO NOTHING";

pub(crate) const SELECT_USER: &str = "\
SELECT id, discord_user_id, username, global_name, avatar, last_login_at
FROM clips.users WHERE discord_user_id = $1";

pub(crate) const DELETE_USER: &str = "DELETE FROM clips.users WHERE discord_user_id = $1";

/// `$1` guild_id, `$2` name, `$3` icon, `$4` owner_user_id (may be null). `joined_at`
/// keeps its first value; `last_seen_at` moves to now.
pub(crate) const UPSERT_GUILD: &str = "\
INSERT INTO clips.bot_guilds (guild_id, name, icon, owner_user_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (guild_id) DO UPDATE
SET name = EXCLUDED.name, icon = EXCLUDED.icon, owner_user_id = EXCLUDED.owner_user_id,
    last_seen_at = now()";

/// `$1` guild_id, `$2` name, `$3` owner_user_id. Inserts the guild owned by `$3`, or sets
/// the owner of a known guild only while it has none. Returns the owner after the claim.
pub(crate) const CLAIM_GUILD: &str = "\
INSERT INTO clips.bot_guilds (guild_id, name, owner_user_id)
VALUES ($1, $2, $3)
ON CONFLICT (guild_id) DO UPDATE
SET owner_user_id = COALESCE(clips.bot_guilds.owner_user_id, EXCLUDED.owner_user_id),
    last_seen_at = now()
RETURNING owner_user_id";

pub(crate) const SELECT_GUILD: &str = "\
SELECT guild_id, name, icon, owner_user_id, joined_at, last_seen_at
FROM clips.bot_guilds WHERE guild_id = $1";

pub(crate) const DELETE_GUILD: &str = "DELETE FROM clips.bot_guilds WHERE guild_id = $1";

pub(crate) const SELECT_GUILD_SETTINGS: &str =
    "SELECT settings FROM clips.guild_settings WHERE guild_id = $1";

/// `$1` guild_id, `$2` the patch (a JSON object). Top-level keys of the patch replace the
/// stored ones (`||`); a key whose patch value is `null` is removed. Returns the result.
pub(crate) const PATCH_GUILD_SETTINGS: &str = "\
INSERT INTO clips.guild_settings AS g (guild_id, settings)
VALUES ($1, $2::jsonb - ARRAY(SELECT key FROM jsonb_each($2::jsonb) WHERE value = 'null'::jsonb))
ON CONFLICT (guild_id) DO UPDATE
SET settings = (g.settings || $2::jsonb)
        - ARRAY(SELECT key FROM jsonb_each($2::jsonb) WHERE value = 'null'::jsonb),
    updated_at = now()
RETURNING settings";

/// `$1` channel_id, `$2` the patch; same rules as [`PATCH_GUILD_SETTINGS`].
pub(crate) const PATCH_CHANNEL_SETTINGS: &str = "\
UPDATE clips.bot_channels
SET settings = (settings || $2::jsonb)
        - ARRAY(SELECT key FROM jsonb_each($2::jsonb) WHERE value = 'null'::jsonb)
WHERE channel_id = $1
RETURNING settings";

/// `$1` channel_id: the guild's settings (`{}` without a row) and the channel's.
pub(crate) const SELECT_SETTINGS_PAIR: &str = "\
SELECT COALESCE(g.settings, '{}'::jsonb) AS guild, c.settings AS channel
FROM clips.bot_channels c
LEFT JOIN clips.guild_settings g ON g.guild_id = c.guild_id
WHERE c.channel_id = $1";

/// `$1` channel_id, `$2` guild_id, `$3` name, `$4` type, `$5` is_nsfw. What Discord says
/// about the channel is refreshed; reading state, progress and settings are Tavern's.
pub(crate) const UPSERT_CHANNEL: &str = "\
INSERT INTO clips.bot_channels (channel_id, guild_id, name, type, is_nsfw)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (channel_id) DO UPDATE
SET guild_id = EXCLUDED.guild_id, name = EXCLUDED.name, type = EXCLUDED.type,
    is_nsfw = EXCLUDED.is_nsfw";

/// `$1` channel_id, `$2` is_reading.
pub(crate) const SET_READING: &str =
    "UPDATE clips.bot_channels SET is_reading = $2 WHERE channel_id = $1";

pub(crate) const SELECT_CHANNEL: &str = "\
SELECT channel_id, guild_id, name, type, is_nsfw, is_reading, last_message_id,
       last_scanned_at, last_activity_at, message_count, settings, created_at, updated_at
FROM clips.bot_channels WHERE channel_id = $1";

/// `$1` guild_id. Served by `idx_bot_channels_work`.
pub(crate) const SELECT_READING_CHANNELS: &str = "\
SELECT channel_id, guild_id, name, type, is_nsfw, is_reading, last_message_id,
       last_scanned_at, last_activity_at, message_count, settings, created_at, updated_at
FROM clips.bot_channels WHERE guild_id = $1 AND is_reading = true
ORDER BY last_scanned_at NULLS FIRST, channel_id";

/// `$1` guild_id: every channel of the guild (the repository lists them by name, case
/// aside, which no collation of the database promises).
pub(crate) const SELECT_GUILD_CHANNELS: &str = "\
SELECT channel_id, guild_id, name, type, is_nsfw, is_reading, last_message_id,
       last_scanned_at, last_activity_at, message_count, settings, created_at, updated_at
FROM clips.bot_channels WHERE guild_id = $1";

/// `$1` channel_id. Its scan runs (and clips) go with it.
pub(crate) const DELETE_CHANNEL: &str = "DELETE FROM clips.bot_channels WHERE channel_id = $1";

/// `$1` guild_id, `$2` the ids of the channels the guild has now (text[]), `$3` the
/// `type` of threads: the other channels were deleted while nobody was listening.
/// Threads are kept whatever the list says: the list Discord sends with a guild holds
/// no thread, so a thread missing from it says nothing about the thread.
pub(crate) const DELETE_STALE_CHANNELS: &str = "\
DELETE FROM clips.bot_channels
WHERE guild_id = $1 AND channel_id <> ALL ($2::text[]) AND type IS DISTINCT FROM $3";

/// `$1` channel_id: what reading a message of the channel needs: whether it is read,
/// its NSFW flag, its guild's settings (`{}` without a row) and its own overrides.
pub(crate) const SELECT_READING_CONTEXT: &str = "\
SELECT c.is_reading, c.is_nsfw, COALESCE(g.settings, '{}'::jsonb) AS guild,
       c.settings AS channel
FROM clips.bot_channels c
LEFT JOIN clips.guild_settings g ON g.guild_id = c.guild_id
WHERE c.channel_id = $1";

/// `$1` channel_id, `$2` after_message_id, `$3` before_message_id.
pub(crate) const INSERT_RUN: &str = concat!(
    "INSERT INTO clips.bot_channel_scan_runs (channel_id, after_message_id, before_message_id)
VALUES ($1, $2, $3)
RETURNING ",
    run_columns!()
);

pub(crate) const SELECT_RUN: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM clips.bot_channel_scan_runs WHERE id = $1::uuid"
);

/// `$1` channel_id, `$2` limit. Newest first, served by `idx_bot_scan_runs_channel`.
pub(crate) const SELECT_RUNS_OF_CHANNEL: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM clips.bot_channel_scan_runs WHERE channel_id = $1
ORDER BY created_at DESC LIMIT $2"
);

/// `$1` id, `$2` expected status, `$3` new status, `$4` error_message (kept when null).
/// The `WHERE status = $2` guard makes the change a compare-and-set: of two workers
/// starting the same queued run, exactly one gets a row back. Entering `running` stamps
/// `started_at`; entering a final status stamps `finished_at`.
pub(crate) const TRANSITION_RUN: &str = concat!(
    "UPDATE clips.bot_channel_scan_runs
SET status = $3::clips.scan_status,
    started_at = CASE WHEN $3 = 'running' THEN now() ELSE started_at END,
    finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'canceled') THEN now()
                       ELSE finished_at END,
    error_message = COALESCE($4, error_message)
WHERE id = $1::uuid AND status = $2::clips.scan_status
RETURNING ",
    run_columns!()
);

/// `$1` state, `$2` user_id, `$3` guild_id, `$4` created_at, `$5` expires_at (UTC).
pub(crate) const INSERT_INTENT: &str = "\
INSERT INTO clips.install_intents (state, user_id, guild_id, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)";

/// `$1` state, `$2` the user finishing the flow, `$3` now (UTC). Deletes and returns the
/// intent only when it belongs to `$2` and has not expired: one statement, so a state is
/// consumed at most once however many callbacks race.
pub(crate) const CONSUME_INTENT: &str = "\
DELETE FROM clips.install_intents
WHERE state = $1 AND user_id = $2 AND expires_at > $3
RETURNING state, user_id, guild_id, created_at, expires_at";

/// `$1` state: read after a failed consume, to say why it failed.
pub(crate) const SELECT_INTENT: &str = "\
SELECT state, user_id, guild_id, created_at, expires_at
FROM clips.install_intents WHERE state = $1";

/// `$1` the cutoff (UTC): intents that expired before it are deleted.
pub(crate) const PURGE_INTENTS: &str = "DELETE FROM clips.install_intents WHERE expires_at < $1";

/// The foreign-key constraint of `install_intents.user_id` (PostgreSQL's default name),
/// to tell "unknown user" from other failures of an insert.
pub(crate) const INTENT_USER_FK: &str = "install_intents_user_id_fkey";
/// The foreign-key constraint of `bot_guilds.owner_user_id`.
pub(crate) const GUILD_OWNER_FK: &str = "bot_guilds_owner_user_id_fkey";
/// The foreign-key constraint of `bot_channels.guild_id`.
pub(crate) const CHANNEL_GUILD_FK: &str = "bot_channels_guild_id_fkey";
/// The foreign-key constraint of `bot_channel_scan_runs.channel_id`.
pub(crate) const RUN_CHANNEL_FK: &str = "bot_channel_scan_runs_channel_id_fkey";
