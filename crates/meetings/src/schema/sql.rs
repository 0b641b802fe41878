//! Every SQL statement of the feature, one constant each (named for what it does), and
//! the shapes of the rows they return. Tables are named through [`table!`], so the
//! statements stay `&'static str` and schema-qualified (pooled connections do not have
//! `meet` on their search path). Each statement documents its parameters and what it
//! returns; the repositories bind and read them, and never spell a column.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{qualified_audit_partition, table};
use crate::domain::Month;

// ---------------------------------------------------------------------------------------
// meetings

/// The columns of `meetings`, in the order of the seed, for `SELECT` and `RETURNING`;
/// read as a [`MeetingRow`].
macro_rules! meeting_columns {
    () => {
        "meeting_id, created_by_user_id, display_name, meeting_code, max_participants, \
         enable_e2e_encryption, require_auth, allow_recording, waiting_room_enabled, status, \
         scheduled_start_time, actual_start_time, ended_at, assigned_controller_id, \
         assigned_region, created_at, updated_at, metadata"
    };
}

/// A row of `meetings`, as [`SELECT_MEETING`] and its kin return it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MeetingRow {
    pub meeting_id: Uuid,
    pub created_by_user_id: Option<Uuid>,
    pub display_name: String,
    pub meeting_code: String,
    pub max_participants: i32,
    pub enable_e2e_encryption: bool,
    pub require_auth: bool,
    pub allow_recording: bool,
    pub waiting_room_enabled: bool,
    pub status: String,
    pub scheduled_start_time: Option<DateTime<Utc>>,
    pub actual_start_time: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub assigned_controller_id: Option<String>,
    pub assigned_region: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: Option<serde_json::Value>,
}

/// `$1` created_by_user_id .. `$9` scheduled_start_time (the columns below, in order),
/// `$10` this statement's `synchronous_commit` (`on`: the commit waits for the disk;
/// `off`: it does not), and its audit row's `$11` event_type, `$12` actor_type, `$13`
/// target_type, `$14` action, `$15` result (its actor the creator, its target the new
/// meeting, its metadata the code); `$16` assigned_controller_id and `$17`
/// assigned_region (both NULL: not assigned yet). The meeting and its audit row in one
/// statement: one round trip, one commit, both or neither. A [`MeetingRow`], or no row
/// when `meeting_code` is taken (nothing written).
pub(crate) const INSERT_MEETING: &str = concat!(
    "WITH commit_mode AS (SELECT set_config('synchronous_commit', $10, true) AS mode), \
     m AS (INSERT INTO ",
    table!(meetings),
    " (created_by_user_id, display_name, meeting_code, max_participants, \
      enable_e2e_encryption, require_auth, allow_recording, waiting_room_enabled, \
      scheduled_start_time, assigned_controller_id, assigned_region) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $16, $17) \
     ON CONFLICT (meeting_code) DO NOTHING RETURNING ",
    meeting_columns!(),
    "), a AS (INSERT INTO ",
    table!(audit_logs),
    " (event_type, actor_user_id, actor_type, target_type, target_id, action, result, \
       metadata) \
     SELECT $11, m.created_by_user_id, $12, $13, m.meeting_id::text, $14, $15, \
       jsonb_build_object('meeting_code', m.meeting_code) FROM m) \
     SELECT m.* FROM m CROSS JOIN commit_mode"
);

/// `$1` meeting_id. A [`MeetingRow`].
pub(crate) const SELECT_MEETING: &str = concat!(
    "SELECT ",
    meeting_columns!(),
    " FROM ",
    table!(meetings),
    " WHERE meeting_id = $1"
);

/// `$1` meeting_code (canonical form). A [`MeetingRow`].
pub(crate) const SELECT_MEETING_BY_CODE: &str = concat!(
    "SELECT ",
    meeting_columns!(),
    " FROM ",
    table!(meetings),
    " WHERE meeting_code = $1"
);

/// `$1` meeting ids (`uuid[]`). `(meeting_id, status, assigned_controller_id,
/// require_auth)` of those that exist.
pub(crate) const SELECT_MEETING_STATUSES: &str = concat!(
    "SELECT meeting_id, status, assigned_controller_id, require_auth FROM ",
    table!(meetings),
    " WHERE meeting_id = ANY($1)"
);

/// A meeting and the display name of one user, in one round trip ([`SELECT_MEETING_WITH_USER_NAME`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MeetingWithUserNameRow {
    #[sqlx(flatten)]
    pub meeting: MeetingRow,
    /// The user's `display_name`; NULL when no user was asked for, or that account does
    /// not exist or is not active.
    pub user_display_name: Option<String>,
}

/// The scalar subquery of the statements below: `$2`'s display name, for an active account.
macro_rules! user_name_column {
    () => {
        concat!(
            ", (SELECT u.display_name FROM ",
            table!(users),
            " u WHERE u.user_id = $2 AND u.is_active) AS user_display_name FROM ",
            table!(meetings)
        )
    };
}

/// `$1` meeting_id, `$2` user_id (or NULL). A [`MeetingWithUserNameRow`].
pub(crate) const SELECT_MEETING_WITH_USER_NAME: &str = concat!(
    "SELECT ",
    meeting_columns!(),
    user_name_column!(),
    " WHERE meeting_id = $1"
);

/// `$1` meeting_code (canonical form), `$2` user_id (or NULL). A
/// [`MeetingWithUserNameRow`].
pub(crate) const SELECT_MEETING_BY_CODE_WITH_USER_NAME: &str = concat!(
    "SELECT ",
    meeting_columns!(),
    user_name_column!(),
    " WHERE meeting_code = $1"
);

/// `$1` provider, `$2` provider_user_id, `$3` how many. [`MeetingRow`]s of the meetings
/// not ended that the account linked to that provider's user created, newest first (the
/// meetings page's "your meetings"; `idx_meetings_created_by` finds them).
pub(crate) const SELECT_OPEN_MEETINGS_OF_PROVIDER_USER: &str = concat!(
    "SELECT ",
    meeting_columns!(),
    " FROM ",
    table!(meetings),
    " WHERE created_by_user_id = (SELECT user_id FROM ",
    table!(oauth_providers),
    " WHERE provider = $1 AND provider_user_id = $2) AND status <> 'ended' \
     ORDER BY created_at DESC LIMIT $3"
);

/// `$1` provider, `$2` provider_user_id, `$3` limit: the ended meetings the linked
/// account created that have a `ready` recording, the last ended first.
pub(crate) const SELECT_ENDED_RECORDED_MEETINGS_OF_PROVIDER_USER: &str = concat!(
    "SELECT ",
    meeting_columns!(),
    " FROM ",
    table!(meetings),
    " WHERE created_by_user_id = (SELECT user_id FROM ",
    table!(oauth_providers),
    " WHERE provider = $1 AND provider_user_id = $2) AND status = 'ended' \
     AND EXISTS (SELECT 1 FROM ",
    table!(recordings),
    " r WHERE r.meeting_id = meetings.meeting_id AND r.status = 'ready') \
     ORDER BY ended_at DESC NULLS LAST LIMIT $3"
);

/// `$1` meeting_id, `$2` display_name, `$3` max_participants, `$4`
/// enable_e2e_encryption, `$5` require_auth, `$6` allow_recording, `$7`
/// waiting_room_enabled, `$8` the `updated_at` the new values were computed from. A
/// compare-and-set: a [`MeetingRow`] with the new settings, or no row when the meeting
/// has ended or changed since (or does not exist).
pub(crate) const UPDATE_MEETING_SETTINGS: &str = concat!(
    "UPDATE ",
    table!(meetings),
    " SET display_name = $2, max_participants = $3, enable_e2e_encryption = $4, \
       require_auth = $5, allow_recording = $6, waiting_room_enabled = $7 \
     WHERE meeting_id = $1 AND status <> 'ended' AND updated_at = $8 \
       AND (enable_e2e_encryption = $4 OR NOT EXISTS (SELECT 1 FROM ",
    table!(meeting_participants),
    " WHERE meeting_id = $1 AND left_at IS NULL)) RETURNING ",
    meeting_columns!()
);

/// `$1` meeting_id. Whether anybody is in the meeting (a participant's row not left).
pub(crate) const ANYONE_IN_MEETING: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM ",
    table!(meeting_participants),
    " WHERE meeting_id = $1 AND left_at IS NULL)"
);

/// `$1` meeting_id. Ends a meeting that has not ended; returns its `ended_at`, or no row
/// when it had already ended (or does not exist).
pub(crate) const END_MEETING: &str = concat!(
    "UPDATE ",
    table!(meetings),
    " SET status = 'ended', ended_at = NOW() \
     WHERE meeting_id = $1 AND status <> 'ended' RETURNING ended_at"
);

/// `$1` meeting_id. Every participant still in gets `left_at`, `meeting_ended` and its
/// duration; returns how many there were.
pub(crate) const CLOSE_SESSIONS: &str = concat!(
    "UPDATE ",
    table!(meeting_participants),
    " SET left_at = NOW(), leave_reason = 'meeting_ended', \
       total_duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM NOW() - joined_at))::integer \
     WHERE meeting_id = $1 AND left_at IS NULL"
);

/// `$1` meeting_id, `$2` assigned_controller_id, `$3` assigned_region. Affects no row for
/// an unknown meeting.
pub(crate) const ASSIGN_CONTROLLER: &str = concat!(
    "UPDATE ",
    table!(meetings),
    " SET assigned_controller_id = $2, assigned_region = $3 WHERE meeting_id = $1"
);

/// `$1` meeting_id, `$2` assigned_controller_id, `$3` assigned_region, `$4` the
/// controller it had when read (NULL: none). A compare-and-set: affects no row when
/// somebody else assigned the meeting meanwhile (or it does not exist).
/// `active` meetings nobody is in (no open participant row) whose last participant
/// left more than `$1` seconds ago, in the database's time (as `left_at` is written):
/// left by controllers that stopped or moved them, and never joined again.
pub(crate) const SELECT_VACATED_MEETINGS: &str = concat!(
    "SELECT m.meeting_id FROM ",
    table!(meetings),
    " m WHERE m.status = 'active' \
     AND NOT EXISTS (SELECT 1 FROM ",
    table!(meeting_participants),
    " p WHERE p.meeting_id = m.meeting_id AND p.left_at IS NULL) \
     AND (SELECT max(p.left_at) FROM ",
    table!(meeting_participants),
    " p WHERE p.meeting_id = m.meeting_id) < NOW() - make_interval(secs => $1)"
);

/// A stopping controller's meetings, handed on: their next grant chooses a live
/// controller ([`REASSIGN_CONTROLLER`] from no assignment).
pub(crate) const RELEASE_CONTROLLER_MEETINGS: &str = concat!(
    "UPDATE ",
    table!(meetings),
    " SET assigned_controller_id = NULL \
     WHERE assigned_controller_id = $1 AND status <> 'ended'"
);

pub(crate) const REASSIGN_CONTROLLER: &str = concat!(
    "UPDATE ",
    table!(meetings),
    " SET assigned_controller_id = $2, assigned_region = $3 \
     WHERE meeting_id = $1 AND assigned_controller_id IS NOT DISTINCT FROM $4"
);

// ---------------------------------------------------------------------------------------
// meeting_participants

/// A participant's join, in one statement whose commit does not wait for the WAL to
/// reach the disk (the seed writes the participant row "async"; a crash may lose the
/// last fraction of a second of join rows, never half of one): the
/// `meeting_participants` row (`$1` meeting_id, `$2` participant_id, `$3` user_id, `$4`
/// display_name, `$5` ip_address, `$6` user_agent, `$7` client_version), a `scheduled`
/// meeting made `active` with its `actual_start_time`, and its audit row (`$8`
/// event_type, `$9` actor_type, `$10` target_type, `$11` action, `$12` result, `$13`
/// metadata; its actor the user, its target the meeting). One round trip; all or
/// nothing. Nothing is written into a meeting that has ended: the count it returns (of
/// rows inserted) is 0 then.
pub(crate) const JOIN_PARTICIPANT: &str = concat!(
    "WITH commit_mode AS (SELECT set_config('synchronous_commit', 'off', true) AS mode), \
     p AS (INSERT INTO ",
    table!(meeting_participants),
    " (meeting_id, participant_id, user_id, display_name, ip_address, user_agent, \
       client_version) \
     SELECT $1::uuid, $2::uuid, $3::uuid, $4::text, $5::inet, $6::text, $7::text \
     WHERE EXISTS (SELECT 1 FROM ",
    table!(meetings),
    " WHERE meeting_id = $1 AND status <> 'ended') RETURNING meeting_id), \
     m AS (UPDATE ",
    table!(meetings),
    " SET status = 'active', actual_start_time = COALESCE(actual_start_time, NOW()) \
     WHERE meeting_id = $1 AND status = 'scheduled' RETURNING meeting_id), \
     a AS (INSERT INTO ",
    table!(audit_logs),
    " (event_type, actor_user_id, actor_type, target_type, target_id, action, result, \
       ip_address, user_agent, metadata) \
     SELECT $8, $3, $9, $10, p.meeting_id::text, $11, $12, $5::inet, $6, $13 FROM p) \
     SELECT count(*) FROM p CROSS JOIN commit_mode"
);

/// `$1` meeting_id, `$2` participant_id, `$3` leave_reason. Only a session still open;
/// returns its `user_id` (NULL for a guest), or no row when it had already left.
pub(crate) const LEAVE_PARTICIPANT: &str = concat!(
    "UPDATE ",
    table!(meeting_participants),
    " SET left_at = NOW(), leave_reason = $3, \
       total_duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM NOW() - joined_at))::integer \
     WHERE meeting_id = $1 AND participant_id = $2 AND left_at IS NULL RETURNING user_id"
);

// ---------------------------------------------------------------------------------------
// meeting_controllers and media_handlers

/// `$1` controller_id, `$2` region, `$3` endpoint, `$4` max_meetings, `$5`
/// max_participants, `$6` version, `$7` last_heartbeat_at (the repository's clock), `$8`
/// metadata (JSON: the certificate hash its clients pin). A controller registering again
/// starts healthy with zero load. Returns `(current_meetings, current_participants)`.
pub(crate) const UPSERT_CONTROLLER: &str = concat!(
    "INSERT INTO ",
    table!(meeting_controllers),
    " (controller_id, region, endpoint, max_meetings, max_participants, version, \
       last_heartbeat_at, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (controller_id) DO UPDATE SET region = EXCLUDED.region, \
       endpoint = EXCLUDED.endpoint, max_meetings = EXCLUDED.max_meetings, \
       max_participants = EXCLUDED.max_participants, version = EXCLUDED.version, \
       metadata = EXCLUDED.metadata, \
       current_meetings = 0, current_participants = 0, \
       health_status = 'healthy', last_heartbeat_at = EXCLUDED.last_heartbeat_at \
     RETURNING current_meetings, current_participants"
);

/// `$1` controller_id, `$2` current_meetings, `$3` current_participants, `$4`
/// health_status, `$5` last_heartbeat_at (the repository's clock). Returns
/// `(max_meetings, max_participants)`, or no row for a controller that never registered.
pub(crate) const HEARTBEAT_CONTROLLER: &str = concat!(
    "UPDATE ",
    table!(meeting_controllers),
    " SET current_meetings = $2, current_participants = $3, health_status = $4, \
       last_heartbeat_at = $5 \
     WHERE controller_id = $1 RETURNING max_meetings, max_participants"
);

/// One controller's load, as [`SELECT_CONTROLLER_LOADS`] returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ControllerLoadRow {
    pub controller_id: String,
    pub region: String,
    pub health_status: String,
    pub max_meetings: i32,
    pub current_meetings: i32,
    pub max_participants: i32,
    pub current_participants: i32,
    pub last_heartbeat_at: DateTime<Utc>,
    pub endpoint: String,
    pub metadata: Option<serde_json::Value>,
}

/// `$1` region, `$2` the oldest heartbeat that counts. The controllers of the region that
/// reported since, as [`ControllerLoadRow`]s ordered by id.
pub(crate) const SELECT_CONTROLLER_LOADS: &str = concat!(
    "SELECT controller_id, region, health_status, max_meetings, current_meetings, \
       max_participants, current_participants, last_heartbeat_at, endpoint, metadata FROM ",
    table!(meeting_controllers),
    " WHERE region = $1 AND last_heartbeat_at >= $2 ORDER BY controller_id"
);

/// A registered meeting controller, as [`SELECT_CONTROLLER`] returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ControllerRow {
    pub controller_id: String,
    pub region: String,
    pub endpoint: String,
    pub health_status: String,
    pub last_heartbeat_at: DateTime<Utc>,
    pub metadata: Option<serde_json::Value>,
}

/// `$1` controller_id. A [`ControllerRow`], or no row for one never registered.
pub(crate) const SELECT_CONTROLLER: &str = concat!(
    "SELECT controller_id, region, endpoint, health_status, last_heartbeat_at, metadata FROM ",
    table!(meeting_controllers),
    " WHERE controller_id = $1"
);

/// `$1` handler_id, `$2` region, `$3` endpoint, `$4` max_streams, `$5` max_bitrate_mbps,
/// `$6` supports_transcoding, `$7` supports_mixing, `$8` supported_codecs, `$9`
/// last_heartbeat_at (the repository's clock), `$10` metadata (its certificate hash). A
/// handler registering again starts healthy with zero load.
pub(crate) const UPSERT_HANDLER: &str = concat!(
    "INSERT INTO ",
    table!(media_handlers),
    " (handler_id, region, endpoint, max_streams, max_bitrate_mbps, \
       supports_transcoding, supports_mixing, supported_codecs, last_heartbeat_at, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (handler_id) DO UPDATE SET region = EXCLUDED.region, \
       endpoint = EXCLUDED.endpoint, max_streams = EXCLUDED.max_streams, \
       max_bitrate_mbps = EXCLUDED.max_bitrate_mbps, \
       supports_transcoding = EXCLUDED.supports_transcoding, \
       supports_mixing = EXCLUDED.supports_mixing, \
       supported_codecs = EXCLUDED.supported_codecs, metadata = EXCLUDED.metadata, \
       current_streams = 0, current_bitrate_mbps = 0, \
       health_status = 'healthy', last_heartbeat_at = EXCLUDED.last_heartbeat_at"
);

/// `$1` handler_id, `$2` current_streams, `$3` current_bitrate_mbps, `$4` health_status,
/// `$5` last_heartbeat_at (the repository's clock). Affects no row for a handler that
/// never registered.
pub(crate) const HEARTBEAT_HANDLER: &str = concat!(
    "UPDATE ",
    table!(media_handlers),
    " SET current_streams = $2, current_bitrate_mbps = $3, health_status = $4, \
       last_heartbeat_at = $5 WHERE handler_id = $1"
);

/// A registered media handler, as [`SELECT_HANDLER`] returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct HandlerRow {
    pub handler_id: String,
    pub region: String,
    pub endpoint: String,
    pub health_status: String,
    pub last_heartbeat_at: DateTime<Utc>,
    pub metadata: Option<serde_json::Value>,
}

/// `$1` handler_id. A [`HandlerRow`], or no row for one never registered.
pub(crate) const SELECT_HANDLER: &str = concat!(
    "SELECT handler_id, region, endpoint, health_status, last_heartbeat_at, metadata FROM ",
    table!(media_handlers),
    " WHERE handler_id = $1"
);

/// One media handler's load, as [`SELECT_HANDLER_LOADS`] returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct HandlerLoadRow {
    pub handler_id: String,
    pub region: String,
    pub health_status: String,
    pub max_streams: i32,
    pub current_streams: i32,
    pub max_bitrate_mbps: i32,
    pub current_bitrate_mbps: i32,
    pub last_heartbeat_at: DateTime<Utc>,
}

/// `$1` region, `$2` the oldest heartbeat that counts. The handlers of the region that
/// reported since, as [`HandlerLoadRow`]s ordered by id.
pub(crate) const SELECT_HANDLER_LOADS: &str = concat!(
    "SELECT handler_id, region, health_status, max_streams, current_streams, \
       max_bitrate_mbps, current_bitrate_mbps, last_heartbeat_at FROM ",
    table!(media_handlers),
    " WHERE region = $1 AND last_heartbeat_at >= $2 ORDER BY handler_id"
);

// ---------------------------------------------------------------------------------------
// audit_logs

/// `$1` event_type, `$2` actor_user_id, `$3` actor_type, `$4` target_type, `$5`
/// target_id, `$6` action, `$7` result, `$8` error_message, `$9` ip_address (text), `$10`
/// user_agent, `$11` metadata (NULL: the column's default, `{}`). Returns `id`.
pub(crate) const INSERT_AUDIT: &str = concat!(
    "INSERT INTO ",
    table!(audit_logs),
    " (event_type, actor_user_id, actor_type, target_type, target_id, action, result, \
       error_message, ip_address, user_agent, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10, COALESCE($11, '{}'::jsonb)) \
     RETURNING id"
);

/// The names of `audit_logs`' partitions (the month ones and the default one).
pub(crate) const SELECT_AUDIT_PARTITIONS: &str = concat!(
    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = '",
    table!(audit_logs),
    "'::regclass"
);

/// `$1` the cut-off instant. Deletes the default partition's rows written before it.
pub(crate) const DELETE_DEFAULT_AUDIT_ROWS: &str = concat!(
    "DELETE FROM ",
    table!(audit_logs_default),
    " WHERE created_at < $1"
);

/// `$1` a date in the month. Makes that month's partition (moving its rows out of the
/// default partition) unless it exists; returns the partition's name.
pub(crate) const ENSURE_AUDIT_PARTITION: &str =
    concat!("SELECT ", table!(audit_logs_ensure_partition), "($1)");

/// `DROP TABLE` of `month`'s partition. Built from a [`Month`], never from catalog text,
/// so the name is a plain identifier by construction.
pub(crate) fn drop_audit_partition(month: Month) -> String {
    format!("DROP TABLE {}", qualified_audit_partition(month))
}

// ---------------------------------------------------------------------------------------
// retention

/// `$1` the cut-off (`ended_at` at or before it), `$2` the batch size. Deletes up to a
/// batch of meetings ended by then that have no recording left; their
/// `meeting_participants` rows go by cascade.
pub(crate) const DELETE_EXPIRED_MEETINGS: &str = concat!(
    "DELETE FROM ",
    table!(meetings),
    " WHERE meeting_id IN (SELECT m.meeting_id FROM ",
    table!(meetings),
    " m WHERE m.status = 'ended' AND m.ended_at <= $1 AND NOT EXISTS \
       (SELECT 1 FROM ",
    table!(recordings),
    " r WHERE r.meeting_id = m.meeting_id) LIMIT $2)"
);

/// `$1` the batch size. The seed's Data Flow Example 2, step 2: up to a batch of ended
/// meetings without statistics get their `meeting_participants` aggregated into
/// `metadata.statistics` (the seed has no analytics table): sessions, distinct
/// signed-in users, guests, participant-seconds and the longest stay (a session with no
/// `left_at` counted to the meeting's end), and the sessions per leave reason. Rows a
/// concurrent run holds are skipped.
pub(crate) const AGGREGATE_ENDED_MEETINGS: &str = concat!(
    "WITH pending AS (SELECT meeting_id, ended_at FROM ",
    table!(meetings),
    " WHERE status = 'ended' AND metadata -> 'statistics' IS NULL \
       ORDER BY ended_at LIMIT $1 FOR UPDATE SKIP LOCKED), \
     stays AS (SELECT m.meeting_id, p.user_id, p.leave_reason, \
       GREATEST(0, EXTRACT(EPOCH FROM COALESCE(p.left_at, m.ended_at, NOW()) - p.joined_at)) \
         AS seconds \
       FROM pending m JOIN ",
    table!(meeting_participants),
    " p ON p.meeting_id = m.meeting_id), \
     reasons AS (SELECT meeting_id, jsonb_object_agg(reason, sessions) AS by_reason FROM \
       (SELECT meeting_id, COALESCE(leave_reason, 'unknown') AS reason, count(*) AS sessions \
        FROM stays GROUP BY 1, 2) r GROUP BY meeting_id), \
     totals AS (SELECT m.meeting_id, jsonb_build_object( \
       'sessions', count(s.meeting_id), \
       'signed_in_users', count(DISTINCT s.user_id), \
       'guest_sessions', count(s.meeting_id) FILTER (WHERE s.user_id IS NULL), \
       'participant_seconds', COALESCE(round(sum(s.seconds)), 0)::bigint, \
       'longest_stay_seconds', COALESCE(round(max(s.seconds)), 0)::bigint, \
       'leave_reasons', COALESCE(max(r.by_reason::text)::jsonb, '{}'::jsonb)) AS statistics \
       FROM pending m LEFT JOIN stays s ON s.meeting_id = m.meeting_id \
       LEFT JOIN reasons r ON r.meeting_id = m.meeting_id GROUP BY m.meeting_id) \
     UPDATE ",
    table!(meetings),
    " t SET metadata = COALESCE(t.metadata, '{}'::jsonb) \
       || jsonb_build_object('statistics', totals.statistics) \
     FROM totals WHERE t.meeting_id = totals.meeting_id"
);

/// `$1` the cut-off (`created_at` at or before it), `$2` the batch size, `$3` the last
/// `recording_id` of the previous batch (the nil UUID at first). The next batch of
/// recordings past retention, by id: `(recording_id, storage_bucket, storage_path)`.
pub(crate) const SELECT_EXPIRED_RECORDINGS: &str = concat!(
    "SELECT recording_id, storage_bucket, storage_path FROM ",
    table!(recordings),
    " WHERE created_at <= $1 AND recording_id > $3 ORDER BY recording_id LIMIT $2"
);

/// `$1` recording ids (`uuid[]`). Deletes those recordings.
pub(crate) const DELETE_RECORDINGS: &str = concat!(
    "DELETE FROM ",
    table!(recordings),
    " WHERE recording_id = ANY($1)"
);

// ---------------------------------------------------------------------------------------
// users and api_keys (auth)

/// `$1` email (lowercase), `$2` display_name, `$3` password_hash. Returns `user_id`, or
/// no row when the email is taken (no error, no aborted transaction).
pub(crate) const INSERT_USER: &str = concat!(
    "INSERT INTO ",
    table!(users),
    " (email, display_name, password_hash) VALUES ($1, $2, $3) \
     ON CONFLICT (email) DO NOTHING RETURNING user_id"
);

/// A user as a login reads it ([`SELECT_USER_LOGIN`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct UserLoginRow {
    pub user_id: Uuid,
    pub password_hash: Option<String>,
    pub is_active: bool,
}

/// `$1` email (lowercase). A [`UserLoginRow`].
pub(crate) const SELECT_USER_LOGIN: &str = concat!(
    "SELECT user_id, password_hash, is_active FROM ",
    table!(users),
    " WHERE email = $1"
);

/// `$1` user_id, `$2` the login's time. Sets `last_login_at`.
pub(crate) const RECORD_LOGIN: &str = concat!(
    "UPDATE ",
    table!(users),
    " SET last_login_at = $2 WHERE user_id = $1"
);

/// `$1` provider, `$2` provider_user_id. Returns the linked `user_id`.
pub(crate) const SELECT_OAUTH_USER: &str = concat!(
    "SELECT user_id FROM ",
    table!(oauth_providers),
    " WHERE provider = $1 AND provider_user_id = $2"
);

/// `$1` email, `$2` display_name. An account without a password (it logs in through a
/// provider); returns `user_id`, or no row when the email is taken.
pub(crate) const INSERT_OAUTH_USER: &str = concat!(
    "INSERT INTO ",
    table!(users),
    " (email, display_name) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING RETURNING user_id"
);

/// `$1` user_id, `$2` provider, `$3` provider_user_id, `$4` access_token_encrypted,
/// `$5` refresh_token_encrypted, `$6` token_expires_at. Links the account, or renews the
/// tokens of an existing link (whose `user_id` stays); returns the linked `user_id`.
pub(crate) const UPSERT_OAUTH_PROVIDER: &str = concat!(
    "INSERT INTO ",
    table!(oauth_providers),
    " (user_id, provider, provider_user_id, access_token_encrypted, \
       refresh_token_encrypted, token_expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (provider, provider_user_id) DO UPDATE SET \
       access_token_encrypted = EXCLUDED.access_token_encrypted, \
       refresh_token_encrypted = EXCLUDED.refresh_token_encrypted, \
       token_expires_at = EXCLUDED.token_expires_at \
     RETURNING user_id"
);

/// `$1` user_id, `$2` key_hash, `$3` key_prefix, `$4` name, `$5` scopes, `$6`
/// expires_at. Returns `key_id`.
pub(crate) const INSERT_API_KEY: &str = concat!(
    "INSERT INTO ",
    table!(api_keys),
    " (user_id, key_hash, key_prefix, name, scopes, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING key_id"
);

/// An API key as a request presenting it reads it ([`SELECT_API_KEY_BY_HASH`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    pub key_id: Uuid,
    pub user_id: Uuid,
    pub scopes: Vec<String>,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub user_active: bool,
}

/// `$1` key_hash. An [`ApiKeyRow`] (with its owner's `is_active`).
pub(crate) const SELECT_API_KEY_BY_HASH: &str = concat!(
    "SELECT k.key_id, k.user_id, k.scopes, k.is_active, k.expires_at, \
       u.is_active AS user_active FROM ",
    table!(api_keys),
    " k JOIN ",
    table!(users),
    " u ON u.user_id = k.user_id WHERE k.key_hash = $1"
);

/// `$1` key_id, `$2` now, `$3` seconds. Sets `last_used_at` unless it was set less than
/// that many seconds ago (a busy key is not written on every request).
pub(crate) const TOUCH_API_KEY: &str = concat!(
    "UPDATE ",
    table!(api_keys),
    " SET last_used_at = $2 WHERE key_id = $1 \
     AND (last_used_at IS NULL OR last_used_at < $2 - make_interval(secs => $3))"
);

/// `$1` key_id, `$2` user_id (its owner). Revokes an active key; returns `key_id`, or
/// no row for a key that is unknown, someone else's or already revoked.
pub(crate) const REVOKE_API_KEY: &str = concat!(
    "UPDATE ",
    table!(api_keys),
    " SET is_active = false WHERE key_id = $1 AND user_id = $2 AND is_active \
     RETURNING key_id"
);

// ---------------------------------------------------------------------------------------
// recordings

/// The columns of `recordings`, in the order of the seed, for `SELECT` and `RETURNING`;
/// read as a [`RecordingRow`].
macro_rules! recording_columns {
    () => {
        "recording_id, meeting_id, started_by_user_id, started_at, ended_at, \
         duration_seconds, file_size_bytes, storage_path, storage_bucket, video_codec, \
         audio_codec, resolution, status, error_message, is_public, created_at, updated_at"
    };
}

/// A row of `recordings` (without `access_token`, which nothing reads).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RecordingRow {
    pub recording_id: Uuid,
    pub meeting_id: Uuid,
    pub started_by_user_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i32>,
    pub file_size_bytes: Option<i64>,
    pub storage_path: String,
    pub storage_bucket: String,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub resolution: Option<String>,
    pub status: String,
    pub error_message: Option<String>,
    pub is_public: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a recording's start checks under the meeting's row lock ([`LOCK_MEETING_FOR_RECORDING`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RecordingGateRow {
    pub status: String,
    pub allow_recording: bool,
    pub enable_e2e_encryption: bool,
    /// Whether a recording of the meeting is `recording` now.
    pub running: bool,
}

/// `$1` meeting_id. Locks the meeting's row for the transaction (so two starts of one
/// meeting's recording take turns) and returns a [`RecordingGateRow`], or no row for an
/// unknown meeting.
pub(crate) const LOCK_MEETING_FOR_RECORDING: &str = concat!(
    "SELECT m.status, m.allow_recording, m.enable_e2e_encryption, EXISTS (SELECT 1 FROM ",
    table!(recordings),
    " r WHERE r.meeting_id = m.meeting_id AND r.status = 'recording') AS running FROM ",
    table!(meetings),
    " m WHERE m.meeting_id = $1 FOR UPDATE"
);

/// `$1` recording_id. The recording replica's sign of life while it records or
/// processes: `updated_at` moves (the trigger sets it); no row once it has finished.
pub(crate) const TOUCH_RECORDING: &str = concat!(
    "UPDATE ",
    table!(recordings),
    " SET updated_at = NOW() WHERE recording_id = $1 \
       AND status IN ('recording', 'processing') RETURNING recording_id"
);

/// `$1` meeting_id, `$2` seconds, `$3` error_message. Fails the meeting's recordings
/// still `recording` or `processing` whose replica gave no sign of life for that long
/// (it stopped before finishing them); returns their `recording_id`s.
pub(crate) const FAIL_STALE_RECORDINGS: &str = concat!(
    "UPDATE ",
    table!(recordings),
    " SET status = 'failed', error_message = $3, ended_at = COALESCE(ended_at, NOW()) \
     WHERE meeting_id = $1 AND status IN ('recording', 'processing') \
       AND updated_at < NOW() - make_interval(secs => $2) RETURNING recording_id"
);

/// `$1` recording_id, `$2` meeting_id, `$3` started_by_user_id, `$4` started_at, `$5`
/// storage_path, `$6` storage_bucket. A [`RecordingRow`] with status `recording`.
pub(crate) const INSERT_RECORDING: &str = concat!(
    "INSERT INTO ",
    table!(recordings),
    " (recording_id, meeting_id, started_by_user_id, started_at, storage_path, \
       storage_bucket, status) VALUES ($1, $2, $3, $4, $5, $6, 'recording') RETURNING ",
    recording_columns!()
);

/// `$1` recording_id. A [`RecordingRow`].
pub(crate) const SELECT_RECORDING: &str = concat!(
    "SELECT ",
    recording_columns!(),
    " FROM ",
    table!(recordings),
    " WHERE recording_id = $1"
);

/// `$1` meeting_id. Its [`RecordingRow`]s, oldest first.
pub(crate) const SELECT_MEETING_RECORDINGS: &str = concat!(
    "SELECT ",
    recording_columns!(),
    " FROM ",
    table!(recordings),
    " WHERE meeting_id = $1 ORDER BY started_at, recording_id"
);

/// `$1` recording_id, `$2` ended_at. `recording` -> `processing`; the [`RecordingRow`],
/// or no row when it was not `recording`.
pub(crate) const STOP_RECORDING: &str = concat!(
    "UPDATE ",
    table!(recordings),
    " SET status = 'processing', ended_at = $2 WHERE recording_id = $1 \
       AND status = 'recording' RETURNING ",
    recording_columns!()
);

/// `$1` recording_id, `$2` duration_seconds, `$3` file_size_bytes, `$4` video_codec, `$5`
/// audio_codec, `$6` resolution, `$7` error_message (why it stopped early, or null).
/// `processing` -> `ready`; the [`RecordingRow`], or no row when it was not `processing`.
pub(crate) const FINISH_RECORDING: &str = concat!(
    "UPDATE ",
    table!(recordings),
    " SET status = 'ready', duration_seconds = $2, file_size_bytes = $3, \
       video_codec = $4, audio_codec = $5, resolution = $6, error_message = $7 \
     WHERE recording_id = $1 AND status = 'processing' RETURNING ",
    recording_columns!()
);

/// `$1` recording_id, `$2` the `error_message` of a recording failed as stale.
/// `recording`, `processing` or `failed` with that message -> `processing`, the message
/// cleared, ended at its last sign of life unless it had an end; the [`RecordingRow`],
/// or no row when it had finished otherwise.
pub(crate) const RESUME_RECORDING: &str = concat!(
    "UPDATE ",
    table!(recordings),
    " SET status = 'processing', error_message = NULL, \
       ended_at = COALESCE(ended_at, updated_at) \
     WHERE recording_id = $1 AND (status IN ('recording', 'processing') \
       OR (status = 'failed' AND error_message = $2)) RETURNING ",
    recording_columns!()
);

/// `$1` recording_id, `$2` error_message, `$3` ended_at (kept when already set).
/// `recording` or `processing` -> `failed`; the [`RecordingRow`], or no row when it had
/// already finished.
pub(crate) const FAIL_RECORDING: &str = concat!(
    "UPDATE ",
    table!(recordings),
    " SET status = 'failed', error_message = $2, ended_at = COALESCE(ended_at, $3) \
     WHERE recording_id = $1 AND status IN ('recording', 'processing') RETURNING ",
    recording_columns!()
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn statements_name_tables_schema_qualified() {
        for sql in [
            INSERT_MEETING,
            SELECT_MEETING,
            SELECT_MEETING_BY_CODE,
            SELECT_OPEN_MEETINGS_OF_PROVIDER_USER,
            SELECT_ENDED_RECORDED_MEETINGS_OF_PROVIDER_USER,
            SELECT_MEETING_STATUSES,
            END_MEETING,
            CLOSE_SESSIONS,
            ASSIGN_CONTROLLER,
            REASSIGN_CONTROLLER,
            JOIN_PARTICIPANT,
            LEAVE_PARTICIPANT,
            UPSERT_CONTROLLER,
            HEARTBEAT_CONTROLLER,
            SELECT_CONTROLLER_LOADS,
            SELECT_CONTROLLER,
            UPSERT_HANDLER,
            HEARTBEAT_HANDLER,
            SELECT_HANDLER,
            SELECT_HANDLER_LOADS,
            INSERT_AUDIT,
            SELECT_AUDIT_PARTITIONS,
            DELETE_DEFAULT_AUDIT_ROWS,
            ENSURE_AUDIT_PARTITION,
            DELETE_EXPIRED_MEETINGS,
            AGGREGATE_ENDED_MEETINGS,
            SELECT_EXPIRED_RECORDINGS,
            DELETE_RECORDINGS,
            INSERT_USER,
            SELECT_OAUTH_USER,
            INSERT_OAUTH_USER,
            UPSERT_OAUTH_PROVIDER,
            SELECT_USER_LOGIN,
            RECORD_LOGIN,
            INSERT_API_KEY,
            SELECT_API_KEY_BY_HASH,
            TOUCH_API_KEY,
            REVOKE_API_KEY,
            LOCK_MEETING_FOR_RECORDING,
            INSERT_RECORDING,
            SELECT_RECORDING,
            SELECT_MEETING_RECORDINGS,
            STOP_RECORDING,
            FINISH_RECORDING,
            RESUME_RECORDING,
            FAIL_RECORDING,
            TOUCH_RECORDING,
            FAIL_STALE_RECORDINGS,
        ] {
            assert!(sql.contains("meet."), "{sql}");
        }
        assert_eq!(
            drop_audit_partition(Month::new(2025, 1).unwrap()),
            "DROP TABLE meet.audit_logs_y2025m01"
        );
    }
}
