//! Meetings ("Dark Tower"): video meetings for a community's sessions. The seed
//! `dark-tower-database-schema.md` implemented as written (PostgreSQL tables, Redis
//! structures with their TTLs, the two data flows, the migration steps, the retention
//! table), the pure rules, the repositories and the scheduled jobs, and Dark Tower's
//! control plane on them: the meetings API ([`auth`](mod@auth), [`web`]: registration,
//! log in with a password or Discord, EdDSA JWTs published as JWKS, API keys, rate
//! limits; the global controller's meeting routes with their join grants, and the
//! OpenAPI document generated from the handlers' types) and the meeting controller
//! ([`controller`]: WebTransport sessions speaking length-prefixed protobuf, in
//! `tavern serve` or as its own process). Media forwarding, the browser client and
//! end-to-end encryption build on it.
//!
//! # Rooms
//! - [`domain`]: ids (made with `base::key_id!`, every one that becomes part of a Redis
//!   key: the rate-limit parts, the token hash, the cached entity's id, the Discord
//!   login's `state`; the connection token a [`base::Secret`]), the seed's enumerated
//!   values, meeting codes, the weighted choice
//!   of a meeting controller or media handler, the retention rules, TTL arithmetic. Pure:
//!   no I/O, no clock.
//! - [`schema`]: the seed's tables (the migrations in `migrations/`, included as
//!   [`MIGRATIONS`], PostgreSQL schema `meet`), every SQL statement with the rows it
//!   returns, and its Redis keys, hash fields and TTLs. No other module spells a table,
//!   writes SQL or formats a key. It depends on `domain`, never the reverse.
//! - [`repo`]: [`Repo`], repositories over both stores, one file per aggregate
//!   (meetings, participants, streams, the controller and handler registry, tokens,
//!   rate limits, cache, audit), including the seed's Data Flow Example 1
//!   ([`Repo::join`]) and Example 2 ([`Repo::end_meeting`]).
//! - [`auth`](mod@auth): passwords, JWT signing and verification (access tokens and the
//!   meeting tokens of join grants), the signing keys and their rotation, API keys, rate
//!   limits, sealing secrets at rest. [`grant`]: a join grant (the assigned controller, a
//!   one-time connection token, a meeting token naming the participant). [`web`]: the
//!   REST routes (authentication, meetings, `/api/v1/openapi.json`), with the
//!   [`auth::Authenticated`] extractor.
//! - [`recording`]: the recorder of meetings with `allow_recording` (a media session
//!   like a participant's, the encoded streams muxed into WebM, written through
//!   `object_store`), its rows' status, and the signed download links; its routes in
//!   [`web::recordings`].
//! - [`controller`]: the meeting controller (sessions, signalling in
//!   [`controller::proto`], registration and heartbeats, presence, broadcasts) and its
//!   [`controller::client::Client`].
//! - [`jobs`]: the retention batch, the `audit_logs` partitions made ahead and the
//!   removal of absent participants, wired by [`feature()`] as start-up work and three
//!   jobs.
//! - Errors: [`MeetingsError`], the feature's refusals next to [`store::StorageError`],
//!   worded for people in one place ([`MeetingsError::user_message`]).
//!
//! # PostgreSQL
//! Three migration steps as the seed's strategy names them: `1 initial_schema` (every
//! `CREATE TABLE`), `2 add_indexes` (every `CREATE INDEX`, the seed's names),
//! `3 add_triggers` (a `BEFORE UPDATE` trigger keeping `updated_at` current on each of the
//! seven tables that have it, and the partition function below). Columns, types,
//! defaults, constraints and `ON DELETE` rules are the seed's, checked against the live
//! catalog by `tests/catalog.rs`. Queries from the pool name tables schema-qualified
//! (`meet.meetings`) through `schema::table!`: pooled connections do not have `meet` on
//! their search path.
//!
//! # Redis
//!
//! | key | type | TTL |
//! |---|---|---|
//! | `meeting:{meeting_id}` | hash: `meeting_id`, `display_name`, `status`, `participant_count`, `started_at`, `controller_id`, `media_handler_id` | none while running; 24 h once ended |
//! | `participant:{participant_id}` | hash: `participant_id`, `meeting_id`, `user_id`, `display_name`, `joined_at`, `connection_state`, `last_heartbeat`, `streams` | 5 min, refreshed on heartbeat |
//! | `meeting:{meeting_id}:participants` | set of participant ids | as the meeting |
//! | `stream:{stream_id}` | hash: `stream_id`, `participant_id`, `meeting_id`, `stream_type`, `codec`, `max_bitrate`, `subscribers`, `created_at` | none while live; 1 h after the stream ends |
//! | `participant:{participant_id}:subscriptions` | set of stream ids | 1 h, refreshed on heartbeat and subscribe; gone when the participant departs |
//! | `ratelimit:{endpoint}:{identifier}:{window}` | string counter | 60 s |
//! | `presence:{participant_id}` | string: last heartbeat (Unix s) | 30 s |
//! | `controller:{controller_id}:capacity` | hash: `max_meetings`, `current_meetings`, `max_participants`, `current_participants`, `health`, `last_update` | 5 min, refreshed on heartbeat |
//! | `token:blacklist:{token_hash}` | string: the reason | until the token expires |
//! | `wt:token:{token}` | hash: `participant_id`, `meeting_id`, `created_at`, `connection_type` | 5 min, used once |
//! | `cache:{entity_type}:{entity_id}` | string: JSON of the row | 5 min (meeting, controller), 15 min (recording), 60 min (user) |
//!
//! Every multi-key change is one atomic step: a `store::Writes` batch through
//! `MULTI`/`EXEC` (end, token issue and redeem, capacity, rate limit), or through
//! `Redis::apply_when` under conditions where the change depends on what is there
//! (join: the set has room; leave: the participant is still a member; heartbeat and
//! media handler assignment: the hash exists; subscriptions: the stream exists and the
//! membership changes). The feature writes no Lua: the one script behind `apply_when`
//! lives in `store::lua`. The session's `streams` JSON array (publish, stream end) is
//! read and edited in Rust and written back only if unchanged, retried by
//! `store::optimistic`. The seed's key names carry no hash tag, so on a Redis Cluster a
//! join's keys may live on different shards: like the drinking game, these multi-key
//! steps need a single Redis server (or a one-shard cluster).
//!
//! # Choices where the seed is silent or contradicts itself
//! - **`audit_logs` partitioning.** The seed creates `audit_logs` as a plain table, then
//!   `audit_logs_y2025m01 PARTITION OF audit_logs`, which PostgreSQL only allows on a
//!   partitioned table. Kept intent: `audit_logs` is `PARTITION BY RANGE (created_at)`,
//!   monthly, and its primary key is `(id, created_at)` (a partitioned table's key must
//!   contain the partition key; `id` stays a `BIGSERIAL`, unique in practice). Month
//!   bounds are UTC midnights, written with an explicit `+00` (the seed's bare
//!   `'2025-01-01'` would depend on the migrating session's time zone). Besides the
//!   seed's `audit_logs_y2025m01` there is a DEFAULT partition, `audit_logs_default`, so
//!   an insert never fails for want of a partition. The seed's "add more partitions as
//!   needed" is the function `audit_logs_ensure_partition(date)` (step 3): it creates the
//!   month's partition, moving that month's rows out of the default partition first, under
//!   an advisory lock so replicas may race. The feature calls it for this month and the
//!   next at start-up and daily ([`PARTITIONS_JOB`]); migrations themselves create no
//!   date-dependent partition, so migrating is the same in any month.
//! - **Retention.** Meetings: deleted by batch ([`RETENTION_JOB`], hourly) 90 days after
//!   `ended_at`; their participants go by the seed's cascade. Meetings never ended are
//!   never due. Recordings: deleted one year (configurable) after `created_at`. The seed
//!   cascades recordings with their meeting, which would cut a recording's year to the
//!   meeting's 90 days; to keep both periods, a meeting is kept while it still has a
//!   recording, and goes at the first run after its last recording did. A recording's
//!   stored file is deleted with it (the file first: one whose delete fails keeps its
//!   row for the next run; one in a store this server does not reach is logged). Audit
//!   logs: a month's partition is dropped once its whole month is a year old (so no row
//!   goes early: the seed's January 2025 partition is dropped from February 2026 on),
//!   and rows older than a year in the default partition are deleted.
//! - **Join** (Example 1): the meeting must exist and not have ended. One conditional
//!   step (atomic, like `MULTI`/`EXEC`, but able to refuse) checks that the meeting
//!   token presented is not on the blacklist (the controller's joins; a logout cannot
//!   fall between that check and the join), that the meeting is not full (`SCARD` of
//!   the set below `max_participants`: the seed's setting, enforced here), writes the participant hash (TTL 5 min) and its presence (the join counts as
//!   the first heartbeat), `SADD`s the set, and on the meeting hash sets `meeting_id`,
//!   `display_name`, `status` `active`, `started_at` (first join only), `controller_id`
//!   (when assigned) and `HINCRBY participant_count 1`, and reads the set back for the
//!   `JoinResponse`'s list (whose hashes are one more round trip). Then, as the seed
//!   has it, PostgreSQL is written "async": the controller answers the join while one
//!   statement inserts the `meeting_participants` row (committed without waiting for
//!   the disk flush: `synchronous_commit` off for that statement), marks a `scheduled`
//!   meeting `active` with `actual_start_time` and appends the audit row. If that write
//!   fails, the Redis step is undone (a leave) and the controller closes the session
//!   with an `internal` error, so no session outlives its row's failure; the
//!   participant's leave waits for the write, so it always finds the row.
//!   [`Repo::join_as`] (no controller) waits for the row before it returns. The
//!   controller starts reading the meeting when it admits the session (the connection
//!   token names it) and verifies the JoinRequest's token meanwhile; a JoinRequest more
//!   than 250 ms after that read reads the meeting again, so a meeting ended in the
//!   meantime is not joined on an old read.
//! - **Create**: the row and its audit row are one statement. A meeting to start now
//!   commits without waiting for the disk flush, a meeting scheduled for later waits for
//!   it: a crash of PostgreSQL or the machine may lose the last fraction of a second of
//!   commits, which for a meeting its creator is about to join shows at once ("no such
//!   meeting") and costs a click, while a scheduled meeting's code may travel for days
//!   before anyone would notice.
//! - **A meeting to start now gets its controller at creation** (`POST
//!   /api/v1/meetings`, in the creating statement, by the same weighted choice a first
//!   grant makes), so its first join grant has nothing left to decide; a meeting
//!   scheduled for later, or created while no controller can take one, is assigned by
//!   its first grant, with the registry of that moment.
//! - **The meeting controller's sweep** (every 2 s: meetings ended elsewhere, participants
//!   removed by the presence job) reads every hosted meeting at once: one PostgreSQL
//!   query and two Redis pipelines, however many meetings it hosts.
//! - **The registry read behind join grants** is reused for up to a second per region
//!   and replica: a busy global controller reads it about once a second, not on every
//!   grant. A registration or heartbeat through the same replica drops it at once;
//!   another replica sees a controller's change within that second (well inside the
//!   30 s heartbeat limit that decides liveness anyway), and a region with no live
//!   controller is never kept.
//!   A guest's participant hash has no `user_id` field. `streams` starts as `[]`.
//! - **Leave** counts down only a participant still in the set (one conditional step),
//!   so repeated leaves never drive the count below the truth; the row gets `left_at`,
//!   the reason and `total_duration_seconds`. The caller ends the meeting when 0 remain, as the meeting
//!   controller does.
//! - **End** (Example 2): `status = 'ended'`, `ended_at = NOW()`, and every participant
//!   still in gets `left_at` with `meeting_ended`, in one transaction; then one
//!   `MULTI`/`EXEC` sets `status` `ended` and the 24 h TTL on the meeting hash and the
//!   participants set. Ending twice keeps the first `ended_at` and re-applies the Redis
//!   step (repairing a crash between the two stores).
//! - **After the end** (Example 2, step 2, the "async worker"): every minute
//!   ([`STATISTICS_JOB`]) each ended meeting not done yet gets its
//!   `meeting_participants` aggregated into `metadata.statistics` (sessions, signed-in
//!   users, guest sessions, participant-seconds, the longest stay, sessions per leave
//!   reason). The seed names no analytics table, so the meeting's own `metadata` holds
//!   them; the "cleanup of old data" is the retention job's.
//! - **Absent participants**: every 30 s ([`PRESENCE_JOB`], the presence TTL) each
//!   participant whose `presence:{participant_id}` expired leaves with
//!   `connection_lost` ([`Repo::reap_absent`]); if that empties the meeting, it ends, as
//!   on the last voluntary leave, unless its assigned controller is gone (no heartbeat
//!   for 15 s: it crashed, and its participants join again through another).
//!   Otherwise a crashed browser would hold its seat against `max_participants` and
//!   keep the meeting open. The same job ends the
//!   `active` meetings nobody has been in for 10 minutes ([`jobs::VACATED_GRACE`]):
//!   those whose controller stopped or moved them and whose participants did not join
//!   again ([`Repo::end_vacated_meetings`]). The last participant's Leave ends the
//!   meeting at once. A lost connection of the last one in (a reload, a closed tab, the
//!   network) leaves at once with `connection_lost`, but the meeting stays for the
//!   presence timeout (30 s) so they can join again; it ends then if nobody has.
//! - **Heartbeat** refreshes the session (5 min), its subscriptions set and presence
//!   (30 s) only while the session exists: a late heartbeat never resurrects half a hash.
//! - **Registration**: a controller or media handler that registers again (after a
//!   restart) starts healthy with zero current load; its heartbeats then report the truth.
//! - **Streams**: `stream_type` is `video_camera` (the seed's), `video_screen` or
//!   `audio_microphone`. Publishing writes the stream hash and appends its id to the
//!   session's `streams` JSON array (only while the session exists); ending it sets the
//!   1 h TTL and removes the id. `subscribers` counts distinct subscribers.
//! - **Controller assignment**: among live controllers of the region (see "Registry
//!   liveness") that are `healthy`, weighted by free meeting slots, gated on free
//!   participant room. Media handlers likewise, weighted by free stream slots,
//!   gated on free bitrate; the seed keeps a meeting's handler only in Redis
//!   (`media_handler_id`), written once the meeting hash exists (after the first join).
//! - **Join grants** ([`grant`]): `GET /api/v1/meetings/{id or code}` by a caller with
//!   `meetings:join` (or the guest route, for meetings without `require_auth`) names the
//!   participant before it connects: a fresh participant id, a one-time `wt:token`
//!   (`connection_type` `signaling`, 5 min) and a meeting token (an EdDSA JWT, 5 min,
//!   scope `meetings:join`, with `mid`, `pid`, `name`; `sub` the user or `guest`; never
//!   accepted as an access token). The controller's address is
//!   `{endpoint}/meetings/{meeting_id}`, opened with `?wt_token=`; its certificate hash is
//!   kept in the seed's `meeting_controllers.metadata` JSON (`certificate_hash`), not in a
//!   new column. The controller joins the participant only when the meeting token names
//!   the redeemed token's meeting and participant.
//! - **Meeting settings the controller enforces**: `require_auth` at every join (a guest
//!   whose grant predates it is refused `auth_required`, and guests inside are closed,
//!   leaving `kicked`, within a sweep); `waiting_room_enabled` holds everybody but the
//!   creator in a waiting room until the creator lets them in (nothing of a visitor is
//!   stored before; [`controller::proto`], "The waiting room").
//! - **Meeting codes**: `ABC-DEFG-HJK`, ten symbols from `2-9` and the capital letters
//!   without `I L O U` (30^10 codes), twelve characters (fits `VARCHAR(20)`); parsing
//!   ignores case, spaces and hyphens. A taken code is detected with
//!   `ON CONFLICT (meeting_code) DO NOTHING` and redrawn, at most 5 times.
//! - **Tokens**: WebTransport tokens are 32 random bytes in hex, bearer secrets (never
//!   in logs or `Debug`), redeemed by `HGETALL` + `DEL` in one `MULTI`/`EXEC` (exactly
//!   one redeemer wins); `connection_type` is `media` (the seed's: a participant's media
//!   session, only while it is in the meeting), `signaling`, `relay` (between media
//!   handlers) or `recorder` (a media session of the server's own clients, issued only
//!   by server-side code and taken only by the media handler's `/media/`). A token
//!   blacklisted after its expiry is not stored; the blacklist holds JWT hashes, never
//!   tokens.
//! - **Rate limits** use fixed windows: `{window}` is the Unix second the minute starts
//!   (the seed's example, `1705411200`, is one); `INCR` and `EXPIRE 60` go in one
//!   `MULTI`/`EXEC`.
//! - **Subscriptions** (`participant:{id}:subscriptions`): the seed gives no TTL. The set
//!   is deleted when its participant departs; its 1 h TTL (refreshed on heartbeat and
//!   subscribe) outlives the 5 min session so that the presence job can still count an
//!   expired session's subscriptions down.
//! - **Departures are honest** (leave, a drop by the presence job, the end of the
//!   meeting): one guarded atomic step leaves the participants set and counts
//!   `participant_count` down (only for a member), deletes the session, presence and
//!   subscriptions keys, gives each of the participant's streams the 1 h TTL and counts
//!   `subscribers` down on every stream it watched; the guard (its `streams`, its
//!   subscriptions and their streams unchanged) retries through `store::optimistic`, so a
//!   racing subscribe or publish is never lost. On end every participant still in departs
//!   so, then the meeting hash gets `ended` and its 24 h TTL (the emptied set is gone).
//!   Streams whose publisher's session expired unseen get their TTL from the presence
//!   job ([`Repo::expire_orphan_streams`]). Subscribing needs a live session.
//! - **Registry liveness**: a controller or media handler is alive while its capacity
//!   hash exists and its `last_heartbeat_at` is within [`domain::Liveness`] (30 s by
//!   default; heartbeat times come from the clock, not the database's `NOW()`). Only
//!   `healthy` ones get new meetings (`draining`, a value the free-text column allows
//!   beyond the seed's three, keeps its meetings and gets no new ones; `unhealthy` loses
//!   them). Each assignment counts one more meeting in the capacity hash until the next
//!   heartbeat reports the truth; `Repo::controller_for` keeps a meeting's live
//!   controller or moves it by compare-and-set, so racing replicas agree.
//! - **Audit rows**, each in the transaction of the change it records: `meeting_created`,
//!   `meeting_settings_changed` (old and new values), `participant_joined` (client
//!   address and agent; `guest`), `participant_left` (the first leave only; its reason),
//!   `meeting_ended` (the creator as actor when they ended it); `user_registered`, logins (success
//!   and failure, the email in `metadata` on failure), API key creation and revocation,
//!   signing key rotation.
//! - **Authentication** ([`auth`](mod@auth)): argon2id password hashes (an unknown email is checked
//!   against a decoy hash, so it takes as long as a wrong password); EdDSA JWTs (Ed25519
//!   through `ring`, already in the tree, with a small JWS encoder of our own accepting
//!   only `alg` `EdDSA` and a known `kid`), 1 h, carrying every meetings scope
//!   (`meetings:create|read|join|manage`, space-separated). Signing keys live in one
//!   Redis hash, `tavern:meetings:signing_keys` (an addition: field = `kid`, value = the
//!   public key and the PKCS#8 private key sealed with AES-256-GCM under
//!   `meetings_secret_key`), so a reader sees every key or none and the seed's tables stay
//!   as written; losing it means everybody logs in again. The newest key signs, a new one
//!   is made every 24 h ([`KEY_ROTATION_JOB`], checked every 10 min and at start-up), and
//!   an old one stays published until its successor's tokens could have replaced all of
//!   its own (+60 s for replicas' caches). A process reads the keys again once its copy
//!   is a minute old (one request reads, the others use the copy meanwhile), and for a
//!   token naming a `kid` it does not know at most once every 2 s
//!   ([`auth::UNKNOWN_KEY_READ_EVERY`]: such a token waits for the next read, and every
//!   other one arriving meanwhile for the same read), so tokens with made-up `kid`s cost
//!   one read per 2 s however many come, and a key another replica just made is still
//!   found. Logout blacklists the token's SHA-256 until it
//!   expires and publishes the hash on `tavern:meetings:revoked`; a process reuses the
//!   blacklist's "not revoked" for a token for up to a second
//!   ([`auth::REVOCATION_CACHE_FOR`]) only while it hears that channel, and forgets it
//!   when the hash is published, so a logout takes effect at once on every replica
//!   (within a second should a publication be lost). A process checks an access
//!   token's signature once: the same token again is answered from what it said (by its
//!   SHA-256, at most 10,000 tokens), its expiry and its key still checked, so a key
//!   withdrawn from the store refuses its tokens once the keys are read again. API keys
//!   are `tmk_` + 43 base64url characters, kept as SHA-256 with their first 12
//!   characters as the prefix;
//!   `last_used_at` moves at most once a minute; only a user's JWT creates or revokes
//!   them. Failed logins are limited per email and per client address (10 a minute each,
//!   by SHA-256 of the identifier, checked before any password work), registrations per
//!   client address (10 a minute), meeting creation per user (30 a minute). Log in with
//!   Discord asks for `identify` only: a new account gets the address
//!   `discord-{id}@users.discord.invalid` (registration refuses `.invalid` addresses) and
//!   its OAuth tokens sealed like the signing keys; finding or creating the account and
//!   linking `oauth_providers` is one transaction. Without `meetings_secret_key` a process
//!   uses a random key of its own, with a warning; sandbox mode makes one once in
//!   `{data_dir}/meetings-secret-key`.
//! - **Cache** TTLs by entity type within the seed's 5-60 minutes, see
//!   [`schema::CacheEntity`].
//! - **Transport.** The handler forwards a subscriber's media on a stream per (publisher,
//!   track, layer) that a video key frame renews, not a stream per frame (`media::proto`
//!   says how; a browser and the Rust clients read every stream at once). Every
//!   WebTransport endpoint binds a UDP socket asking for 4 MiB of buffer each way (the
//!   kernel caps it at `net.core.rmem_max` / `wmem_max`), and a session keeps at most
//!   1 MiB sent and unacknowledged; a media client reads at most 1 MiB ahead of its
//!   application. With QUIC's defaults (10 MB unacknowledged, no limit across a
//!   client's streams) a subscriber behind would have buffered seconds of media before
//!   the handler saw it fall behind.

pub mod auth;
pub mod controller;
pub mod domain;
mod error;
pub mod grant;
pub mod jobs;
pub mod media;
pub mod recording;
pub mod repo;
pub mod schema;
mod server;
pub mod web;
mod wt;

use std::time::Duration;

use feature::{Feature, Job, Startup};

use crate::auth::{Auth, AuthConfig, MeetingsSecretKey};
use crate::controller::ControllerConfig;
use crate::domain::{Liveness, Region};

pub use crate::domain::Retention;
pub use crate::error::MeetingsError;
pub use crate::repo::Repo;
pub use crate::schema::MIGRATIONS;
pub use crate::wt::certificate_digest;

/// Settings of the meetings feature.
#[derive(Debug, Clone)]
pub struct MeetingsConfig {
    /// The seed's retention table (recordings' period is the configurable one).
    pub retention: Retention,
    /// How often the retention batch runs.
    pub retention_every: Duration,
    /// How often the `audit_logs` partitions ahead are ensured.
    pub partitions_every: Duration,
    /// How often ended meetings get their statistics aggregated.
    pub statistics_every: Duration,
    /// Token lifetime, key rotation, rate limits.
    pub auth: AuthConfig,
    /// `meetings_secret_key`: seals the signing keys and OAuth tokens at rest. `None`
    /// (tests, tools that serve nothing): a random key for this process only, so
    /// tokens and keys do not survive a restart (a warning says so).
    pub secret_key: Option<MeetingsSecretKey>,
    /// The region this process assigns meetings in (and its controller registers in).
    pub region: Region,
    /// When a registered controller counts as alive.
    pub liveness: Liveness,
    /// The meeting controller this process runs as a service; `None`: none (another
    /// process runs it, `tavern meeting-controller`).
    pub controller: Option<ControllerConfig>,
    /// The media handler this process runs as a service; `None`: none. With a
    /// controller in the same process, the controller hands out grants to it.
    pub media: Option<media::HandlerConfig>,
    /// Recordings: where they are stored (none: not offered), how long download links
    /// last ([`recording`]).
    pub recordings: recording::RecordingsConfig,
}

impl Default for MeetingsConfig {
    fn default() -> MeetingsConfig {
        MeetingsConfig {
            retention: Retention::default(),
            retention_every: Duration::from_secs(60 * 60),
            partitions_every: Duration::from_secs(24 * 60 * 60),
            statistics_every: Duration::from_secs(60),
            auth: AuthConfig::default(),
            secret_key: None,
            region: Region::local(),
            liveness: Liveness::default(),
            controller: None,
            media: None,
            recordings: recording::RecordingsConfig::default(),
        }
    }
}

/// Name of the retention job (its lock is `tavern:lock:job:meetings-retention`).
pub const RETENTION_JOB: &str = "meetings-retention";
/// Name of the job (and of the start-up work) that creates `audit_logs` partitions ahead.
pub const PARTITIONS_JOB: &str = "meetings-audit-partitions";
/// Name of the job that removes participants whose heartbeat stopped (every 30 s, the
/// presence TTL).
pub const PRESENCE_JOB: &str = "meetings-presence";
/// Name of the job that aggregates the statistics of ended meetings (the seed's Data
/// Flow Example 2, step 2) into their `metadata.statistics`.
pub const STATISTICS_JOB: &str = "meetings-statistics";
/// Name of the job (and of the start-up work) that makes a new JWT signing key when one
/// is due and removes the keys no longer published.
pub const KEY_ROTATION_JOB: &str = "meetings-key-rotation";

/// The authentication service of a feature built from `ctx` with `config` (the routes
/// of later parts share it).
pub fn auth(ctx: &feature::Context, config: &MeetingsConfig) -> Auth {
    let secret = config.secret_key.clone().unwrap_or_else(|| {
        tracing::warn!(
            "no meetings secret key is configured: using a random one, so meeting tokens \
             and signing keys will not survive a restart"
        );
        MeetingsSecretKey::random(&mut rand::rng())
    });
    Auth::new(
        Repo::from_context(ctx),
        ctx.clock.clone(),
        secret,
        config.auth,
    )
}

/// The meetings feature: its migrations, the start-up work that makes sure this month's
/// and next month's `audit_logs` partitions exist, and three jobs: the partitions ahead
/// ([`PARTITIONS_JOB`]), the removal of absent participants ([`PRESENCE_JOB`]) and the
/// retention batch ([`RETENTION_JOB`]). "Now" is the context's clock.
pub fn feature(ctx: &feature::Context, config: MeetingsConfig) -> Feature {
    let rules = config.retention;
    let repo = Repo::from_context(ctx);
    let auth = auth(ctx, &config);
    let rotate_keys = {
        let auth = auth.clone();
        move || {
            let auth = auth.clone();
            async move { auth.rotate_keys().await.map(drop) }
        }
    };

    let ensure_partitions = {
        let (pg, clock) = (ctx.postgres.clone(), ctx.clock.clone());
        move || {
            let (pg, clock) = (pg.clone(), clock.clone());
            async move {
                jobs::ensure_audit_partitions(&pg, &rules, clock.now())
                    .await
                    .map(drop)
            }
        }
    };
    let reap_absent = move || {
        let repo = repo.clone();
        async move {
            jobs::reap_absent_participants(&repo).await?;
            jobs::end_vacated_meetings(&repo).await.map(drop)
        }
    };
    let statistics = {
        let pg = ctx.postgres.clone();
        move || {
            let pg = pg.clone();
            async move { jobs::aggregate_ended_meetings(&pg).await.map(drop) }
        }
    };

    let directory = controller::MediaDirectory::default();
    let recorder = recording::Recorder::new(
        Repo::from_context(ctx),
        ctx.clock.clone(),
        &config
            .secret_key
            .clone()
            .unwrap_or_else(|| MeetingsSecretKey::random(&mut rand::rng())),
        directory.clone(),
        config.recordings.clone(),
    );
    let retention = {
        let (pg, clock, files) = (ctx.postgres.clone(), ctx.clock.clone(), recorder.files());
        move || {
            let (pg, clock, files) = (pg.clone(), clock.clone(), files.clone());
            async move {
                jobs::run_retention(&pg, &rules, clock.now(), Some(&files))
                    .await
                    .map(drop)
            }
        }
    };
    let web = web::routes(ctx, auth.clone(), &config).merge(web::recordings::routes(
        ctx,
        auth.clone(),
        recorder.clone(),
    ));
    let mut feature = Feature::new("meetings")
        .migrations(MIGRATIONS)
        .startup(Startup::new(PARTITIONS_JOB, ensure_partitions.clone()))
        .job(Job::every(
            PARTITIONS_JOB,
            config.partitions_every,
            ensure_partitions,
        ))
        .job(Job::every(PRESENCE_JOB, schema::PRESENCE_TTL, reap_absent))
        .job(Job::every(RETENTION_JOB, config.retention_every, retention))
        .job(Job::every(
            STATISTICS_JOB,
            config.statistics_every,
            statistics,
        ))
        .startup(Startup::new(KEY_ROTATION_JOB, rotate_keys.clone()))
        .job(Job::every(
            KEY_ROTATION_JOB,
            config.auth.key_rotation_check,
            rotate_keys,
        ))
        .web(web)
        .nav(
            "Meetings",
            web::lobby::LOBBY_PATH,
            "Video meetings in the browser: join one with its code, or start one.",
        )
        .service(recording::service(recorder));
    // An in-process media handler announces its address (its self-signed certificate's
    // hash is known only once it binds) to the in-process controller's directory (the
    // recorder's too).
    let mut controller = config.controller;
    let mut media = config.media;
    if let (Some(controller), Some(media)) = (controller.as_mut(), media.as_mut()) {
        media.directory = Some(directory.clone());
        controller.media = Some(controller::MediaHandlers {
            directory,
            liveness: config.liveness,
        });
    } else if let Some(media) = media.as_mut().filter(|m| m.directory.is_none()) {
        media.directory = Some(directory);
    }
    if let Some(controller) = controller {
        feature = feature.service(controller::service(
            Repo::from_context(ctx),
            auth,
            controller,
        ));
    }
    if let Some(media) = media {
        feature = feature.service(media::service(Repo::from_context(ctx), media));
    }
    feature
}
