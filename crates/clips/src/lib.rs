//! The clip archive: finds the videos a community posts in the Discord channels its admins
//! enable, and keeps what it needs to find them again in PostgreSQL, in the tables of the
//! seed `clip-archive-tables.md`, exactly as written there, in the schema `clips`.
//!
//! Admins enable channels (`/clips enable`, or the web page's toggles); a scan reads a
//! channel's history over Discord's REST API and indexes every video attachment in
//! Tavern's clip index (table `clips`, an addition next to the seed's tables); the
//! gateway keeps the index and the guild and channel rows current in real time; the web
//! library shows the clips. The binary calls [`feature()`] with a [`ClipsConfig`] and
//! gets the command, the pages, the gateway handler, the scan worker, the purge job and
//! the migrations; `tavern clips scan` drives a [`scan::Scanner`] on its own.
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
//!   Also the clip index (`repo::clips`: a page's clips and progress in one
//!   statement, live messages, edits, deletes) and the library (`repo::library`: keyset
//!   pages with filters and search, purges, refreshed CDN URLs).
//! - [`scan`]: the [`scan::Scanner`] (request, run, cancel, report scans; the channel's
//!   cross-process lock). [`services`]: the scan worker. [`events`]: the gateway
//!   handler. [`commands`]: `/clips`. [`web`]: the install flow, the guild pages and the
//!   library.
//! - [`jobs`]: `purge_install_intents`, every [`ClipsConfig::purge_every`] (30 minutes
//!   by default), by the context's clock, once across replicas (the job runner's lock).
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
//! - **Settings keys and defaults**: `video_formats` (default `["mp4", "webm", "mov",
//!   "mkv", "m4v"]`; entries are extensions or full MIME types), `scan_nsfw` (default `false`), and
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
//!   walks backward from the upper bound or the newest message (deep scan). A quick
//!   scan is a catch-up only once a scan has read the channel's history down to its
//!   start since its last purge (a purge deletes the channel's runs with its clips);
//!   until then it is a deep scan, since a message seen live moves `last_message_id`
//!   too. Progress and the channel's
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
//!
//! # Choices of the working feature
//! - **The clip index is Tavern's table `clips`** ([`schema::index`]), one row per video
//!   attachment, keyed by Discord's attachment id: every write is `ON CONFLICT DO
//!   NOTHING` or an update of that row, so no scan, rescan or gateway event indexes one
//!   twice. `scan_run_parts` (also an addition) holds the windows of a deep scan split
//!   into parts. The seed's tables are untouched.
//! - **What is a clip**: a `video/*` MIME type that is allowed (by its MIME type or its
//!   extension), or no MIME type (or `application/octet-stream`) with an allowed
//!   extension; any other MIME type is never a clip whatever the file is called
//!   (`image/png` named `x.mp4` is not), and the extension is the part after the last
//!   dot (`video.mp4.txt` is a `txt`). NSFW channels only with `scan_nsfw`.
//! - **One statement per history page**: its clips, the run's counters and window, and
//!   the channel's `message_count`, `last_message_id` (moving forward only, compared as
//!   numbers), `last_scanned_at` and `last_activity_at`, written only while the run is
//!   `running`: a kill between pages loses nothing and counts nothing twice.
//!   `last_scanned_at` is the database's time of the run's last page (as `started_at`
//!   and `finished_at` are the database's), so it lies between the two; a catch-up
//!   with nothing new still writes its one page and moves it.
//! - **`message_count` is the seed's "total messages processed"**: every message a scan
//!   page or a live event processed. A second deep scan counts the channel's messages
//!   again; `messages_matched` counts messages with at least one clip.
//! - **One scan per channel across processes**: a PostgreSQL session advisory lock on a
//!   connection detached from the pool, held for the whole run; a killed process's lock
//!   dies with its connection. A `running` run whose channel's lock is free was
//!   abandoned: requesting a scan of that channel continues it from its row, and the
//!   worker picks it up. Two racing requests queue one run (a transaction-level advisory
//!   lock), so no index was added to the seed's tables.
//! - **Failures**: Discord refusing the channel (401, 403, 404) fails the run at once
//!   with the reason in `error_message`; other errors get three attempts with a pause
//!   that doubles from 0.5 s; a database error leaves the run `running`, to be continued.
//!   Shutdown (and Ctrl-C in `tavern clips scan`) stops after the page in hand and
//!   leaves the run `running`, resumable; cancel makes it `canceled`.
//! - **Speed**: the next page is requested while the current one is written. A deep
//!   scan may be split by snowflake time into parts read concurrently
//!   ([`ClipsConfig::scan_parts`]); it is off by default, since on two cores one part
//!   was as fast, and Discord's 50 requests a second cap a real scan far below either.
//! - **Real time**: a guild becoming available replaces its stored channel list with
//!   Discord's (threads, which that list never holds, are kept) and queues a catch-up of each reading channel with an index position
//!   (messages missed while the bot was away); only channels that hold messages are
//!   stored.
//! - **`/clips`** is one command with subcommands (with our `cancel`), for Manage
//!   Server or Administrator as Discord computed them for the interaction; every answer
//!   is private. `scan` refuses a channel that is not enabled; `disable` also cancels
//!   its unfinished run and keeps its clips. The web's reading toggle and scan buttons
//!   follow the same rule, kept in one place (`Scanner::set_reading`,
//!   `Scanner::request_if_reading`).
//! - **Web**: membership and management rights come from the user's Discord guild list
//!   (owner, Administrator or Manage Server manage), kept 60 s in Redis under
//!   `tavern:clips:user_guilds:{user}` (an addition; a Redis failure asks Discord
//!   again). The install asks for View Channel, Send Messages and Read Message History;
//!   the callback does not exchange the code: reading the guild as the bot proves Tavern
//!   is in it. A purge needs the name typed (checked on the server), is refused while a
//!   scan is unfinished (decided in the purge's own statement, under the channels'
//!   scan-request locks), and resets the channel's scan position. The library shows 24
//!   clips a page with a `{microseconds}-{attachment id}` cursor (never `OFFSET`), whole
//!   UTC days for dates, search as a case-insensitive substring (trigram index), the
//!   poster as the video's first frame (`preload="metadata"`), and refreshes CDN URLs
//!   that expire within 5 minutes before rendering. Progress is polled once a second
//!   while a run is unfinished.
//! - **Who sees which channel on the web**: a member who does not manage the guild sees
//!   a channel's name, clips, message texts, authors and scan state only when Discord
//!   would show them its history: View Channel and Read Message History, computed by
//!   [`domain::Viewer`] from their guild-level permissions (the guild list's
//!   `permissions`), their roles (asked as the bot) and the channel's overwrites in
//!   Discord's order (`@everyone`, the roles' denies then allows, the member's own);
//!   the owner and Administrator see everything. Elsewhere the channel does not exist
//!   for them: absent from the library, its channel and author filters and the guild
//!   page, and a 404 for `channel=`, the scan status and the managers' forms, as an
//!   unknown channel. The set is kept 60 s in Redis under
//!   `tavern:clips:visible_channels:{guild}:{user}` (an addition), so a changed role
//!   or overwrite shows within a minute; Discord failing to answer shows no channel
//!   and says so. Managers see every channel: they may read any of them anyway.
//! - **A channel Tavern itself may not read** (no View Channel or Read Message
//!   History for its roles there: [`domain::Viewer`] applied to the bot) is refused by
//!   `/clips enable` and the web's "Read this channel", naming what to grant, rather
//!   than enabled to wait. Discord answers the history of a bot without Read Message
//!   History with an empty list and sends no live messages without View Channel, so an
//!   enabled channel would look indexed and stay empty: a refusal is the one answer an
//!   organiser cannot take for success, and enabling again after granting is one
//!   command. A channel that loses the permission while read keeps being read, and its
//!   next scan fails at once with the reason ([`domain::cannot_read_reason`], shown by
//!   `/clips status` and the guild page) instead of recording an empty complete scan;
//!   a scan after the grant reads what the failed one could not (a failed run moves no
//!   index position). The
//!   managers' guild page marks every channel Tavern cannot read. Discord failing to
//!   answer the check refuses nothing: the history request decides then. For the
//!   guild page the check's five requests are made once a minute per guild at most:
//!   the answer is kept in `tavern:clips:bot_sight:{guild}` (an addition, like the
//!   visible channels); a manager's action (`/clips enable`, `/clips scan`, the page's
//!   buttons) and the gateway's channel and guild events drop it. A scan run and an
//!   enable always ask Discord: a kept "may read" from before an admin took Read
//!   Message History away (no gateway event tells of a role's change) would let a deep
//!   scan take Discord's empty answer for the whole history (`scan`'s docs).
//! - **Threads on the web** are shown to a member only when they see the parent
//!   channel and hold Manage Threads there, and to managers. The `discord` crate
//!   cannot tell a public thread from a private one nor list a thread's members, so
//!   Tavern does not guess: those two see every thread of the channel on Discord,
//!   private ones included, and anyone else might not. A member who may see a public
//!   thread but lacks Manage Threads does not find its clips on the web.

mod cache;
pub mod commands;
pub mod domain;
pub mod events;
pub mod jobs;
pub mod repo;
pub mod scan;
pub mod schema;
pub mod services;
pub mod web;

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
    /// The scan worker: how many channels it scans at once, how often it looks for
    /// runs queued by other processes.
    pub worker: services::WorkerConfig,
    /// Parts a deep scan is split into after its first page, read concurrently (1: not
    /// split; see [`scan::Scanner::with_parts`]).
    pub scan_parts: usize,
}

impl Default for ClipsConfig {
    fn default() -> ClipsConfig {
        ClipsConfig {
            purge_every: jobs::PURGE_EVERY,
            intent_grace: domain::PURGE_GRACE,
            worker: services::WorkerConfig::default(),
            scan_parts: 1,
        }
    }
}

/// The clip archive as a [`feature::Feature`]: its migrations and the purge job, over
/// the context's PostgreSQL and clock.
pub fn feature(ctx: &feature::Context, config: ClipsConfig) -> feature::Feature {
    let repo = Repo::new(&ctx.postgres);
    let scanner = scan::Scanner::new(repo.clone(), ctx.discord.clone(), ctx.clock.clone())
        .with_parts(config.scan_parts)
        .with_sight_cache(ctx.redis.clone());
    commands::add(feature::Feature::new("clips"), ctx)
        .bot_permissions(web::install::BOT_PERMISSIONS)
        .web(web::routes_for(ctx))
        .nav(
            "Clips",
            web::CLIPS_PATH,
            "Every video posted in the server's channels, to search, filter and play here.",
        )
        .migrations(MIGRATIONS)
        .events(events::handler(
            repo.clone(),
            ctx.discord.clone(),
            scanner.clone(),
        ))
        .service(services::scan_worker(scanner, config.worker))
        .job(jobs::purge_install_intents_job(
            repo,
            ctx.clock.clone(),
            &config,
        ))
}
