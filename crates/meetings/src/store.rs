//! Repositories over [`crate::schema`]: meetings in PostgreSQL, sessions, presence, tokens
//! and counters in Redis, and the seed's two data flows (a join, a meeting's end) across
//! both.
//!
//! Every multi-key Redis change is one atomic step (`MULTI`/`EXEC`, or one Lua script when
//! the change depends on what is there). A step that spans Redis and PostgreSQL cannot be
//! atomic; the order is chosen so a failure leaves nothing a reader would trust wrongly
//! (see [`Repo::join`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use store::{Postgres, Redis, StoreError};
use uuid::Uuid;

use crate::domain::{
    self, ActorType, AuditResult, ConnectionType, ControllerId, ControllerLoad, DisplayName,
    HandlerId, HandlerLoad, HealthStatus, LeaveReason, MeetingCode, MeetingId, MeetingStatus,
    ParseError, ParticipantId, Region, StreamId, StreamType, UserId,
};
use crate::schema::{
    self, CONNECTION_STATE_CONNECTED, CacheEntity, RateLimitPart, TokenHash, WtToken,
    controller_capacity_fields, meeting_fields, participant_fields, stream_fields, table,
    wt_token_fields,
};

/// How many codes [`Repo::create_meeting`] tries before giving up. With 30^10 codes a
/// second attempt is already rare; five failures in a row mean something else is wrong.
pub const CODE_ATTEMPTS: usize = 5;

/// What can go wrong in this feature's storage.
#[derive(Debug, thiserror::Error)]
pub enum MeetingsError {
    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },
    #[error("meeting {0} has ended")]
    MeetingEnded(MeetingId),
    #[error("meeting {meeting} is full ({max_participants} participants)")]
    MeetingFull {
        meeting: MeetingId,
        max_participants: i32,
    },
    #[error("no free meeting code after {0} attempts")]
    CodesExhausted(usize),
    /// A stored value is not what the schema allows (written by something else).
    #[error("stored data is invalid: {0}")]
    Invalid(#[from] ParseError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MeetingsError {
    fn from(e: sqlx::Error) -> MeetingsError {
        MeetingsError::Store(StoreError::Postgres(e))
    }
}

impl From<redis::RedisError> for MeetingsError {
    fn from(e: redis::RedisError) -> MeetingsError {
        MeetingsError::Store(StoreError::Redis(e))
    }
}

fn not_found(what: &'static str, id: impl ToString) -> MeetingsError {
    MeetingsError::NotFound {
        what,
        id: id.to_string(),
    }
}

/// The settings columns of `meetings`, with the seed's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeetingSettings {
    pub max_participants: i32,
    pub enable_e2e_encryption: bool,
    pub require_auth: bool,
    pub allow_recording: bool,
    pub waiting_room_enabled: bool,
}

impl Default for MeetingSettings {
    fn default() -> MeetingSettings {
        MeetingSettings {
            max_participants: 100,
            enable_e2e_encryption: true,
            require_auth: false,
            allow_recording: false,
            waiting_room_enabled: false,
        }
    }
}

/// What a new meeting is made of.
#[derive(Debug, Clone)]
pub struct NewMeeting {
    pub display_name: DisplayName,
    pub created_by: Option<UserId>,
    pub settings: MeetingSettings,
    pub scheduled_start_time: Option<DateTime<Utc>>,
}

/// A row of `meetings`.
#[derive(Debug, Clone, PartialEq)]
pub struct Meeting {
    pub meeting_id: MeetingId,
    pub created_by_user_id: Option<UserId>,
    pub display_name: String,
    pub meeting_code: MeetingCode,
    pub settings: MeetingSettings,
    pub status: MeetingStatus,
    pub scheduled_start_time: Option<DateTime<Utc>>,
    pub actual_start_time: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub assigned_controller_id: Option<ControllerId>,
    pub assigned_region: Option<Region>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: Option<serde_json::Value>,
}

/// The columns of `meetings`, in the order of the seed, for `SELECT` and `RETURNING`.
macro_rules! meeting_columns {
    () => {
        "meeting_id, created_by_user_id, display_name, meeting_code, max_participants, \
         enable_e2e_encryption, require_auth, allow_recording, waiting_room_enabled, status, \
         scheduled_start_time, actual_start_time, ended_at, assigned_controller_id, \
         assigned_region, created_at, updated_at, metadata"
    };
}

fn meeting_from_row(row: &PgRow) -> Result<Meeting, MeetingsError> {
    let controller: Option<String> = row.try_get("assigned_controller_id")?;
    let region: Option<String> = row.try_get("assigned_region")?;
    Ok(Meeting {
        meeting_id: MeetingId::from_uuid(row.try_get("meeting_id")?),
        created_by_user_id: row
            .try_get::<Option<Uuid>, _>("created_by_user_id")?
            .map(UserId::from_uuid),
        display_name: row.try_get("display_name")?,
        meeting_code: MeetingCode::parse(row.try_get("meeting_code")?)?,
        settings: MeetingSettings {
            max_participants: row.try_get("max_participants")?,
            enable_e2e_encryption: row.try_get("enable_e2e_encryption")?,
            require_auth: row.try_get("require_auth")?,
            allow_recording: row.try_get("allow_recording")?,
            waiting_room_enabled: row.try_get("waiting_room_enabled")?,
        },
        status: MeetingStatus::parse(row.try_get("status")?)?,
        scheduled_start_time: row.try_get("scheduled_start_time")?,
        actual_start_time: row.try_get("actual_start_time")?,
        ended_at: row.try_get("ended_at")?,
        assigned_controller_id: controller.as_deref().map(ControllerId::parse).transpose()?,
        assigned_region: region.as_deref().map(Region::parse).transpose()?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        metadata: row.try_get("metadata")?,
    })
}

/// A meeting controller announcing itself (`meeting_controllers`).
#[derive(Debug, Clone)]
pub struct ControllerRegistration {
    pub controller_id: ControllerId,
    pub region: Region,
    pub endpoint: String,
    pub max_meetings: i32,
    pub max_participants: i32,
    pub version: Option<String>,
}

/// A meeting controller's periodic report.
#[derive(Debug, Clone)]
pub struct ControllerHeartbeat {
    pub controller_id: ControllerId,
    pub current_meetings: i32,
    pub current_participants: i32,
    pub health: HealthStatus,
}

/// A media handler announcing itself (`media_handlers`).
#[derive(Debug, Clone)]
pub struct HandlerRegistration {
    pub handler_id: HandlerId,
    pub region: Region,
    pub endpoint: String,
    pub max_streams: i32,
    pub max_bitrate_mbps: i32,
    pub supports_transcoding: bool,
    pub supports_mixing: bool,
    pub supported_codecs: Vec<String>,
}

/// A media handler's periodic report of its load.
#[derive(Debug, Clone)]
pub struct HandlerHeartbeat {
    pub handler_id: HandlerId,
    pub current_streams: i32,
    pub current_bitrate_mbps: i32,
    pub health: HealthStatus,
}

/// Someone joining a meeting (the seed's Data Flow Example 1, step 2).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub meeting_id: MeetingId,
    /// `None` for guests.
    pub user_id: Option<UserId>,
    pub display_name: DisplayName,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub client_version: Option<String>,
}

/// The outcome of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub participant_id: ParticipantId,
    /// `participant_count` of `meeting:{meeting_id}` after this join.
    pub participant_count: i64,
}

/// A `participant:{participant_id}` hash, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSession {
    pub participant_id: ParticipantId,
    pub meeting_id: MeetingId,
    pub user_id: Option<UserId>,
    pub display_name: String,
    pub joined_at: i64,
    pub connection_state: String,
    pub last_heartbeat: i64,
    pub streams: String,
}

/// What a redeemed `wt:token:{token}` grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionGrant {
    pub participant_id: ParticipantId,
    pub meeting_id: MeetingId,
    pub created_at: i64,
    pub connection_type: ConnectionType,
}

/// A stream being published (`stream:{stream_id}`).
#[derive(Debug, Clone)]
pub struct NewStream {
    pub stream_id: StreamId,
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub stream_type: StreamType,
    /// e.g. `VP9`, `Opus`.
    pub codec: String,
    /// Bits per second.
    pub max_bitrate: u64,
}

/// One `audit_logs` row to append.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// e.g. `user_login`, `meeting_created`, `participant_joined`.
    pub event_type: String,
    pub actor_user_id: Option<UserId>,
    pub actor_type: ActorType,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub action: String,
    pub result: AuditResult,
    pub error_message: Option<String>,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// `None`: the column's default, `{}`.
    pub metadata: Option<serde_json::Value>,
}

/// What [`Repo::reap_absent`] did to one meeting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The participants removed for want of a heartbeat.
    pub left: Vec<ParticipantId>,
    /// Whether that left the meeting empty, so it ended.
    pub ended: bool,
}

/// The seed's tables and keys, over the shared stores. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Repo {
    redis: Redis,
    pg: Postgres,
}

/// Join (Data Flow Example 1), one atomic step: unless the meeting is full, the session
/// hash with its TTL, presence, `SADD` to the set, the meeting's state fields,
/// `started_at` if unset, and `HINCRBY participant_count 1`, whose result it returns
/// (-1: full, nothing written).
/// KEYS: participant hash, presence, participants set, meeting hash.
/// ARGV: participant id, max participants, session TTL, presence TTL, now, the
/// `started_at` field, the count field, n, n session field/value pairs, m, m meeting
/// field/value pairs.
static JOIN_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[2]) then return -1 end
local n = tonumber(ARGV[8])
redis.call('HSET', KEYS[1], unpack(ARGV, 9, 8 + 2 * n))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
local at = 9 + 2 * n
local m = tonumber(ARGV[at])
redis.call('HSET', KEYS[4], unpack(ARGV, at + 1, at + 2 * m))
redis.call('HSETNX', KEYS[4], ARGV[6], ARGV[5])
return redis.call('HINCRBY', KEYS[4], ARGV[7], 1)
",
    )
});

/// `HSET` one field only if the hash exists. KEYS: the hash. ARGV: field, value.
static SET_IF_EXISTS_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
",
    )
});

/// Leave: only a participant still in the set is removed and counted down, so a repeated
/// or late leave never drives `participant_count` below the truth. Returns the count left.
/// KEYS: participants set, meeting hash, participant hash, presence, subscriptions.
/// ARGV: participant id, the count field.
static LEAVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
return redis.call('SCARD', KEYS[1])
",
    )
});

/// Heartbeat: refresh a session only while it exists (a heartbeat after expiry must not
/// resurrect half a hash). KEYS: participant hash, presence, subscriptions. ARGV: the
/// heartbeat field, now (Unix seconds), session TTL, presence TTL.
static HEARTBEAT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
return 1
",
    )
});

/// Publish: the stream hash, and its id appended to the publisher's `streams` JSON array,
/// only while the publisher's session exists. KEYS: stream hash, participant hash.
/// ARGV: the stream id, the `streams` field, then field/value pairs of the stream hash.
static PUBLISH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local streams = cjson.decode(redis.call('HGET', KEYS[2], ARGV[2]) or '[]')
table.insert(streams, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], cjson.encode(streams))
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return 1
",
    )
});

/// Unpublish: the stream hash gets its after-end TTL and leaves the publisher's `streams`
/// array. KEYS: stream hash, participant hash. ARGV: stream id, `streams` field, TTL.
static UNPUBLISH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local raw = redis.call('HGET', KEYS[2], ARGV[2])
if raw then
  local kept = {}
  for _, id in ipairs(cjson.decode(raw)) do
    if id ~= ARGV[1] then table.insert(kept, id) end
  end
  local encoded = '[]'
  if #kept > 0 then encoded = cjson.encode(kept) end
  redis.call('HSET', KEYS[2], ARGV[2], encoded)
end
return 1
",
    )
});

/// Subscribe (`ARGV[3]` = 1) or unsubscribe (-1): the subscriptions set changes and the
/// stream's `subscribers` count follows only when membership really changed, and only for
/// a stream that exists. KEYS: subscriptions set, stream hash. ARGV: stream id, the
/// `subscribers` field, +1/-1, the set's TTL.
static SUBSCRIBE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local changed
if ARGV[3] == '1' then
  changed = redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
else
  changed = redis.call('SREM', KEYS[1], ARGV[1])
end
if changed == 1 then redis.call('HINCRBY', KEYS[2], ARGV[2], tonumber(ARGV[3])) end
return tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
",
    )
});

impl Repo {
    pub fn new(redis: Redis, pg: Postgres) -> Repo {
        Repo { redis, pg }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub fn postgres(&self) -> &Postgres {
        &self.pg
    }

    // -- meetings ------------------------------------------------------------------------

    /// Creates a meeting under a fresh random code.
    pub async fn create_meeting(&self, new: &NewMeeting) -> Result<Meeting, MeetingsError> {
        self.create_meeting_with_codes(new, || MeetingCode::generate(&mut rand::rng()))
            .await
    }

    /// Creates a meeting, taking codes from `next_code` until one is free (at most
    /// [`CODE_ATTEMPTS`]). A taken code is detected by `ON CONFLICT DO NOTHING`, not by an
    /// error, so a collision costs one statement and no aborted transaction.
    pub async fn create_meeting_with_codes(
        &self,
        new: &NewMeeting,
        mut next_code: impl FnMut() -> MeetingCode,
    ) -> Result<Meeting, MeetingsError> {
        const SQL: &str = concat!(
            "INSERT INTO ",
            table!(meetings),
            " (created_by_user_id, display_name, meeting_code, max_participants, \
              enable_e2e_encryption, require_auth, allow_recording, waiting_room_enabled, \
              scheduled_start_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (meeting_code) DO NOTHING RETURNING ",
            meeting_columns!()
        );
        for attempt in 1..=CODE_ATTEMPTS {
            let code = next_code();
            let s = &new.settings;
            let row = sqlx::query(SQL)
                .bind(new.created_by.map(|u| u.as_uuid()))
                .bind(new.display_name.as_str())
                .bind(code.as_str())
                .bind(s.max_participants)
                .bind(s.enable_e2e_encryption)
                .bind(s.require_auth)
                .bind(s.allow_recording)
                .bind(s.waiting_room_enabled)
                .bind(new.scheduled_start_time)
                .fetch_optional(self.pg.pool())
                .await?;
            match row {
                Some(row) => {
                    let meeting = meeting_from_row(&row)?;
                    tracing::info!(meeting = %meeting.meeting_id, code = %meeting.meeting_code, "meeting created");
                    return Ok(meeting);
                }
                None => tracing::warn!(attempt, "meeting code already taken; drawing another"),
            }
        }
        Err(MeetingsError::CodesExhausted(CODE_ATTEMPTS))
    }

    pub async fn meeting(&self, id: MeetingId) -> Result<Meeting, MeetingsError> {
        const SQL: &str = concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM ",
            table!(meetings),
            " WHERE meeting_id = $1"
        );
        let row = sqlx::query(SQL)
            .bind(id.as_uuid())
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| not_found("meeting", id))?;
        meeting_from_row(&row)
    }

    pub async fn meeting_by_code(&self, code: &MeetingCode) -> Result<Meeting, MeetingsError> {
        const SQL: &str = concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM ",
            table!(meetings),
            " WHERE meeting_code = $1"
        );
        let row = sqlx::query(SQL)
            .bind(code.as_str())
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| not_found("meeting code", code))?;
        meeting_from_row(&row)
    }

    // -- meeting controllers and media handlers -------------------------------------------

    /// Registers (or re-registers) a meeting controller: its row, healthy and just seen,
    /// and its `controller:{controller_id}:capacity` hash, fresh, with the 5-minute TTL.
    pub async fn register_controller(
        &self,
        reg: &ControllerRegistration,
    ) -> Result<(), MeetingsError> {
        const SQL: &str = concat!(
            "INSERT INTO ",
            table!(meeting_controllers),
            " (controller_id, region, endpoint, max_meetings, max_participants, version) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (controller_id) DO UPDATE SET region = EXCLUDED.region, \
               endpoint = EXCLUDED.endpoint, max_meetings = EXCLUDED.max_meetings, \
               max_participants = EXCLUDED.max_participants, version = EXCLUDED.version, \
               current_meetings = 0, current_participants = 0, \
               health_status = 'healthy', last_heartbeat_at = NOW() \
             RETURNING current_meetings, current_participants"
        );
        let row = sqlx::query(SQL)
            .bind(reg.controller_id.as_str())
            .bind(reg.region.as_str())
            .bind(&reg.endpoint)
            .bind(reg.max_meetings)
            .bind(reg.max_participants)
            .bind(reg.version.as_deref())
            .fetch_one(self.pg.pool())
            .await?;
        let load = CapacityReport {
            max_meetings: reg.max_meetings,
            current_meetings: row.try_get("current_meetings")?,
            max_participants: reg.max_participants,
            current_participants: row.try_get("current_participants")?,
            health: HealthStatus::Healthy,
        };
        self.write_capacity(&reg.controller_id, &load).await?;
        tracing::info!(controller = %reg.controller_id, region = %reg.region, "meeting controller registered");
        Ok(())
    }

    /// Records a controller's heartbeat in its row and refreshes its capacity hash (and
    /// the hash's TTL). `NotFound` for a controller that never registered.
    pub async fn heartbeat_controller(
        &self,
        beat: &ControllerHeartbeat,
    ) -> Result<(), MeetingsError> {
        const SQL: &str = concat!(
            "UPDATE ",
            table!(meeting_controllers),
            " SET current_meetings = $2, current_participants = $3, health_status = $4, \
               last_heartbeat_at = NOW() \
             WHERE controller_id = $1 RETURNING max_meetings, max_participants"
        );
        let row = sqlx::query(SQL)
            .bind(beat.controller_id.as_str())
            .bind(beat.current_meetings)
            .bind(beat.current_participants)
            .bind(beat.health.as_str())
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| not_found("meeting controller", &beat.controller_id))?;
        let load = CapacityReport {
            max_meetings: row.try_get("max_meetings")?,
            current_meetings: beat.current_meetings,
            max_participants: row.try_get("max_participants")?,
            current_participants: beat.current_participants,
            health: beat.health,
        };
        self.write_capacity(&beat.controller_id, &load).await
    }

    async fn write_capacity(
        &self,
        id: &ControllerId,
        load: &CapacityReport,
    ) -> Result<(), MeetingsError> {
        use controller_capacity_fields as f;
        let key = schema::controller_capacity_key(id);
        let mut writes = store::Writes::new();
        writes
            .command("HSET")
            .arg(&key)
            .arg(f::MAX_MEETINGS)
            .arg(load.max_meetings)
            .arg(f::CURRENT_MEETINGS)
            .arg(load.current_meetings)
            .arg(f::MAX_PARTICIPANTS)
            .arg(load.max_participants)
            .arg(f::CURRENT_PARTICIPANTS)
            .arg(load.current_participants)
            .arg(f::HEALTH)
            .arg(load.health.as_str())
            .arg(f::LAST_UPDATE)
            .arg(Utc::now().timestamp());
        writes.expire(&key, schema::CONTROLLER_CAPACITY_TTL.as_secs());
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// The controllers of `region` that reported within the capacity TTL, with their load
    /// (healthy or not: [`domain::choose_controller`] filters).
    pub async fn controller_loads(
        &self,
        region: &Region,
    ) -> Result<Vec<ControllerLoad>, MeetingsError> {
        const SQL: &str = concat!(
            "SELECT controller_id, region, health_status, max_meetings, current_meetings, \
               max_participants, current_participants FROM ",
            table!(meeting_controllers),
            " WHERE region = $1 AND last_heartbeat_at >= NOW() - make_interval(secs => $2) \
             ORDER BY controller_id"
        );
        let rows = sqlx::query(SQL)
            .bind(region.as_str())
            .bind(schema::CONTROLLER_CAPACITY_TTL.as_secs_f64())
            .fetch_all(self.pg.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ControllerLoad {
                    controller_id: ControllerId::parse(row.try_get("controller_id")?)?,
                    region: Region::parse(row.try_get("region")?)?,
                    health: HealthStatus::parse(row.try_get("health_status")?)?,
                    max_meetings: row.try_get("max_meetings")?,
                    current_meetings: row.try_get("current_meetings")?,
                    max_participants: row.try_get("max_participants")?,
                    current_participants: row.try_get("current_participants")?,
                })
            })
            .collect()
    }

    /// Assigns a meeting controller of `region` to the meeting by weighted choice of free
    /// capacity; `None` (and nothing written) when no controller there can take it.
    pub async fn assign_controller<R: rand::Rng + Send>(
        &self,
        meeting: MeetingId,
        region: &Region,
        rng: &mut R,
    ) -> Result<Option<ControllerId>, MeetingsError> {
        const SQL: &str = concat!(
            "UPDATE ",
            table!(meetings),
            " SET assigned_controller_id = $2, assigned_region = $3 WHERE meeting_id = $1"
        );
        let loads = self.controller_loads(region).await?;
        let Some(chosen) = domain::choose_controller(&loads, region, rng) else {
            tracing::warn!(%meeting, %region, "no meeting controller with free capacity");
            return Ok(None);
        };
        let done = sqlx::query(SQL)
            .bind(meeting.as_uuid())
            .bind(chosen.controller_id.as_str())
            .bind(region.as_str())
            .execute(self.pg.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("meeting", meeting));
        }
        Ok(Some(chosen.controller_id.clone()))
    }

    /// The media handlers of `region` that reported within the capacity TTL, with their
    /// load (healthy or not: [`domain::choose_media_handler`] filters).
    pub async fn handler_loads(&self, region: &Region) -> Result<Vec<HandlerLoad>, MeetingsError> {
        const SQL: &str = concat!(
            "SELECT handler_id, region, health_status, max_streams, current_streams, \
               max_bitrate_mbps, current_bitrate_mbps FROM ",
            table!(media_handlers),
            " WHERE region = $1 AND last_heartbeat_at >= NOW() - make_interval(secs => $2) \
             ORDER BY handler_id"
        );
        let rows = sqlx::query(SQL)
            .bind(region.as_str())
            .bind(schema::CONTROLLER_CAPACITY_TTL.as_secs_f64())
            .fetch_all(self.pg.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(HandlerLoad {
                    handler_id: HandlerId::parse(row.try_get("handler_id")?)?,
                    region: Region::parse(row.try_get("region")?)?,
                    health: HealthStatus::parse(row.try_get("health_status")?)?,
                    max_streams: row.try_get("max_streams")?,
                    current_streams: row.try_get("current_streams")?,
                    max_bitrate_mbps: row.try_get("max_bitrate_mbps")?,
                    current_bitrate_mbps: row.try_get("current_bitrate_mbps")?,
                })
            })
            .collect()
    }

    /// Assigns a media handler of `region` to a running meeting: weighted choice of free
    /// stream slots, written to `media_handler_id` of `meeting:{meeting_id}` (the seed
    /// keeps this assignment in Redis only). Only while that hash exists, i.e. once the
    /// meeting has been joined: a hash written for a meeting nobody joins would never
    /// expire. `None` (nothing written) when no handler can take it or the meeting is
    /// not running.
    pub async fn assign_media_handler<R: rand::Rng + Send>(
        &self,
        meeting: MeetingId,
        region: &Region,
        rng: &mut R,
    ) -> Result<Option<HandlerId>, MeetingsError> {
        let loads = self.handler_loads(region).await?;
        let Some(chosen) = domain::choose_media_handler(&loads, region, rng) else {
            tracing::warn!(%meeting, %region, "no media handler with free capacity");
            return Ok(None);
        };
        let mut conn = self.redis.conn();
        let written: i64 = SET_IF_EXISTS_SCRIPT
            .key(schema::meeting_key(meeting))
            .arg(meeting_fields::MEDIA_HANDLER_ID)
            .arg(chosen.handler_id.as_str())
            .invoke_async(&mut conn)
            .await?;
        Ok((written == 1).then(|| chosen.handler_id.clone()))
    }

    /// Registers (or re-registers) a media handler, healthy and just seen.
    pub async fn register_handler(&self, reg: &HandlerRegistration) -> Result<(), MeetingsError> {
        const SQL: &str = concat!(
            "INSERT INTO ",
            table!(media_handlers),
            " (handler_id, region, endpoint, max_streams, max_bitrate_mbps, \
               supports_transcoding, supports_mixing, supported_codecs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (handler_id) DO UPDATE SET region = EXCLUDED.region, \
               endpoint = EXCLUDED.endpoint, max_streams = EXCLUDED.max_streams, \
               max_bitrate_mbps = EXCLUDED.max_bitrate_mbps, \
               supports_transcoding = EXCLUDED.supports_transcoding, \
               supports_mixing = EXCLUDED.supports_mixing, \
               supported_codecs = EXCLUDED.supported_codecs, \
               current_streams = 0, current_bitrate_mbps = 0, \
               health_status = 'healthy', last_heartbeat_at = NOW()"
        );
        sqlx::query(SQL)
            .bind(reg.handler_id.as_str())
            .bind(reg.region.as_str())
            .bind(&reg.endpoint)
            .bind(reg.max_streams)
            .bind(reg.max_bitrate_mbps)
            .bind(reg.supports_transcoding)
            .bind(reg.supports_mixing)
            .bind(&reg.supported_codecs)
            .execute(self.pg.pool())
            .await?;
        tracing::info!(handler = %reg.handler_id, region = %reg.region, "media handler registered");
        Ok(())
    }

    /// Records a media handler's load report. `NotFound` for one that never registered.
    pub async fn heartbeat_handler(&self, beat: &HandlerHeartbeat) -> Result<(), MeetingsError> {
        const SQL: &str = concat!(
            "UPDATE ",
            table!(media_handlers),
            " SET current_streams = $2, current_bitrate_mbps = $3, health_status = $4, \
               last_heartbeat_at = NOW() WHERE handler_id = $1"
        );
        let done = sqlx::query(SQL)
            .bind(beat.handler_id.as_str())
            .bind(beat.current_streams)
            .bind(beat.current_bitrate_mbps)
            .bind(beat.health.as_str())
            .execute(self.pg.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("media handler", &beat.handler_id));
        }
        Ok(())
    }

    // -- the seed's data flows ------------------------------------------------------------

    /// Data Flow Example 1, a join: in one atomic script, the `participant:{id}` hash
    /// (TTL 5 min), its presence (30 s), `SADD meeting:{id}:participants`, and on
    /// `meeting:{id}` the state fields plus `HINCRBY participant_count 1` (refused with
    /// [`MeetingsError::MeetingFull`] at `max_participants`); then the
    /// `meeting_participants` row (and the meeting becomes `active` on its first join),
    /// in one PostgreSQL transaction.
    ///
    /// The seed writes PostgreSQL after Redis ("async"). If that write fails, the Redis
    /// step is undone (the participant leaves again), so no session lives without its row.
    pub async fn join(&self, req: &JoinRequest) -> Result<Joined, MeetingsError> {
        let meeting = self.meeting(req.meeting_id).await?;
        if !meeting.status.is_joinable() {
            return Err(MeetingsError::MeetingEnded(meeting.meeting_id));
        }
        let participant = ParticipantId::random();
        let now = Utc::now().timestamp();

        let mut session: Vec<(&str, String)> = {
            use participant_fields as f;
            vec![
                (f::PARTICIPANT_ID, participant.to_string()),
                (f::MEETING_ID, meeting.meeting_id.to_string()),
                (f::DISPLAY_NAME, req.display_name.to_string()),
                (f::JOINED_AT, now.to_string()),
                (f::CONNECTION_STATE, CONNECTION_STATE_CONNECTED.to_owned()),
                (f::LAST_HEARTBEAT, now.to_string()),
                (f::STREAMS, "[]".to_owned()),
            ]
        };
        if let Some(user) = req.user_id {
            session.push((participant_fields::USER_ID, user.to_string()));
        }
        let mut state: Vec<(&str, String)> = {
            use meeting_fields as f;
            vec![
                (f::MEETING_ID, meeting.meeting_id.to_string()),
                (f::DISPLAY_NAME, meeting.display_name.clone()),
                (f::STATUS, MeetingStatus::Active.as_str().to_owned()),
            ]
        };
        if let Some(controller) = &meeting.assigned_controller_id {
            state.push((meeting_fields::CONTROLLER_ID, controller.to_string()));
        }
        let mut invocation = JOIN_SCRIPT.prepare_invoke();
        invocation
            .key(schema::participant_key(participant))
            .key(schema::presence_key(participant))
            .key(schema::meeting_participants_key(meeting.meeting_id))
            .key(schema::meeting_key(meeting.meeting_id))
            .arg(participant.to_string())
            .arg(meeting.settings.max_participants)
            .arg(ttl_secs(schema::PARTICIPANT_TTL))
            .arg(ttl_secs(schema::PRESENCE_TTL))
            .arg(now)
            .arg(meeting_fields::STARTED_AT)
            .arg(meeting_fields::PARTICIPANT_COUNT)
            .arg(session.len());
        for (field, value) in &session {
            invocation.arg(*field).arg(value);
        }
        invocation.arg(state.len());
        for (field, value) in &state {
            invocation.arg(*field).arg(value);
        }
        let mut conn = self.redis.conn();
        let participant_count: i64 = invocation.invoke_async(&mut conn).await?;
        if participant_count < 0 {
            return Err(MeetingsError::MeetingFull {
                meeting: meeting.meeting_id,
                max_participants: meeting.settings.max_participants,
            });
        }

        if let Err(error) = self.record_join(req, participant).await {
            tracing::warn!(meeting = %meeting.meeting_id, %participant, %error,
                "participant row not written; undoing the Redis session");
            if let Err(undo) = self.leave_redis(meeting.meeting_id, participant).await {
                tracing::error!(meeting = %meeting.meeting_id, %participant, error = %undo,
                    "could not undo the Redis session; it expires with its TTL");
            }
            return Err(error);
        }
        tracing::debug!(meeting = %meeting.meeting_id, %participant, participant_count, "joined");
        Ok(Joined {
            participant_id: participant,
            participant_count,
        })
    }

    async fn record_join(
        &self,
        req: &JoinRequest,
        participant: ParticipantId,
    ) -> Result<(), MeetingsError> {
        const INSERT: &str = concat!(
            "INSERT INTO ",
            table!(meeting_participants),
            " (meeting_id, participant_id, user_id, display_name, ip_address, user_agent, \
               client_version) VALUES ($1, $2, $3, $4, $5::inet, $6, $7)"
        );
        const ACTIVATE: &str = concat!(
            "UPDATE ",
            table!(meetings),
            " SET status = 'active', actual_start_time = COALESCE(actual_start_time, NOW()) \
             WHERE meeting_id = $1 AND status = 'scheduled'"
        );
        let mut tx = self.pg.pool().begin().await?;
        sqlx::query(INSERT)
            .bind(req.meeting_id.as_uuid())
            .bind(participant.as_uuid())
            .bind(req.user_id.map(|u| u.as_uuid()))
            .bind(req.display_name.as_str())
            .bind(req.ip_address.map(|ip| ip.to_string()))
            .bind(req.user_agent.as_deref())
            .bind(req.client_version.as_deref())
            .execute(&mut *tx)
            .await?;
        sqlx::query(ACTIVATE)
            .bind(req.meeting_id.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sessions of a meeting's participants (Example 1, step 3: the `JoinResponse`),
    /// ordered by join time. Members whose session hash has expired are left out.
    pub async fn participants(
        &self,
        meeting: MeetingId,
    ) -> Result<Vec<ParticipantSession>, MeetingsError> {
        let mut conn = self.redis.conn();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(schema::meeting_participants_key(meeting))
            .query_async(&mut conn)
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for member in &members {
            let id = ParticipantId::parse(member)?;
            pipe.hgetall(schema::participant_key(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        let mut sessions = hashes
            .into_iter()
            .filter(|h| !h.is_empty())
            .map(|h| session_from_hash(&h))
            .collect::<Result<Vec<_>, _>>()?;
        sessions.sort_by_key(|s| (s.joined_at, s.participant_id));
        Ok(sessions)
    }

    /// A participant's heartbeat: refreshes the session hash (5 min) and its
    /// subscriptions, and sets `presence:{id}` (30 s). `false` when the session has
    /// already expired (the client must join again); nothing is written then.
    pub async fn heartbeat(&self, participant: ParticipantId) -> Result<bool, MeetingsError> {
        let mut conn = self.redis.conn();
        let alive: i64 = HEARTBEAT_SCRIPT
            .key(schema::participant_key(participant))
            .key(schema::presence_key(participant))
            .key(schema::participant_subscriptions_key(participant))
            .arg(participant_fields::LAST_HEARTBEAT)
            .arg(Utc::now().timestamp())
            .arg(ttl_secs(schema::PARTICIPANT_TTL))
            .arg(ttl_secs(schema::PRESENCE_TTL))
            .invoke_async(&mut conn)
            .await?;
        Ok(alive == 1)
    }

    /// Whether the participant sent a heartbeat within the presence TTL.
    pub async fn is_present(&self, participant: ParticipantId) -> Result<bool, MeetingsError> {
        let mut conn = self.redis.conn();
        let n: i64 = redis::cmd("EXISTS")
            .arg(schema::presence_key(participant))
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Participants of `meeting` whose presence expired (no heartbeat for
    /// [`schema::PRESENCE_TTL`]: the browser closed or the network dropped without a
    /// leave) leave with `connection_lost`; when that leaves nobody, the meeting ends, as
    /// it does on the last voluntary leave. Without this a crashed client would hold its
    /// seat (the set counts toward `max_participants`) and keep the meeting open forever.
    pub async fn reap_absent(&self, meeting: MeetingId) -> Result<Reaped, MeetingsError> {
        let mut conn = self.redis.conn();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(schema::meeting_participants_key(meeting))
            .query_async(&mut conn)
            .await?;
        let mut participants = Vec::with_capacity(members.len());
        for member in &members {
            match ParticipantId::parse(member) {
                Ok(p) => participants.push(p),
                Err(error) => {
                    tracing::warn!(%meeting, member, %error, "participant set holds a member that is not a participant id");
                }
            }
        }
        let mut reaped = Reaped::default();
        if participants.is_empty() {
            return Ok(reaped);
        }
        let mut pipe = redis::pipe();
        for p in &participants {
            pipe.cmd("EXISTS").arg(schema::presence_key(*p));
        }
        let present: Vec<i64> = pipe.query_async(&mut conn).await?;
        let mut remaining = None;
        for (participant, present) in participants.into_iter().zip(present) {
            if present == 0 {
                remaining = Some(
                    self.leave(meeting, participant, LeaveReason::ConnectionLost)
                        .await?,
                );
                reaped.left.push(participant);
            }
        }
        if remaining == Some(0) {
            self.end_meeting(meeting).await?;
            reaped.ended = true;
        }
        if !reaped.left.is_empty() {
            tracing::info!(%meeting, left = reaped.left.len(), ended = reaped.ended, "participants without a heartbeat removed");
        }
        Ok(reaped)
    }

    /// A participant leaves: removed from the set and counted down (once), its session,
    /// presence and subscriptions deleted, in one script; then its row gets `left_at`,
    /// the reason and the duration. Returns how many participants remain: at 0 the caller
    /// ends the meeting ([`Repo::end_meeting`]), as the meeting controller does.
    pub async fn leave(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
        reason: LeaveReason,
    ) -> Result<i64, MeetingsError> {
        const SQL: &str = concat!(
            "UPDATE ",
            table!(meeting_participants),
            " SET left_at = NOW(), leave_reason = $3, \
               total_duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM NOW() - joined_at))::integer \
             WHERE meeting_id = $1 AND participant_id = $2 AND left_at IS NULL"
        );
        let remaining = self.leave_redis(meeting, participant).await?;
        sqlx::query(SQL)
            .bind(meeting.as_uuid())
            .bind(participant.as_uuid())
            .bind(reason.as_str())
            .execute(self.pg.pool())
            .await?;
        Ok(remaining)
    }

    async fn leave_redis(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
    ) -> Result<i64, MeetingsError> {
        let mut conn = self.redis.conn();
        let remaining: i64 = LEAVE_SCRIPT
            .key(schema::meeting_participants_key(meeting))
            .key(schema::meeting_key(meeting))
            .key(schema::participant_key(participant))
            .key(schema::presence_key(participant))
            .key(schema::participant_subscriptions_key(participant))
            .arg(participant.to_string())
            .arg(meeting_fields::PARTICIPANT_COUNT)
            .invoke_async(&mut conn)
            .await?;
        Ok(remaining)
    }

    /// Data Flow Example 2, a meeting ends: `status = 'ended'`, `ended_at = NOW()` in
    /// `meetings` (and every participant still in it gets `left_at` and `meeting_ended`),
    /// then, in one `MULTI`/`EXEC`, `status` `ended` on `meeting:{id}` and the 24-hour TTL
    /// on it and on `meeting:{id}:participants`. Ending an ended meeting changes nothing in
    /// PostgreSQL and re-applies the Redis step (so a crash between the two is repaired by
    /// calling it again). Returns `ended_at`.
    pub async fn end_meeting(&self, meeting: MeetingId) -> Result<DateTime<Utc>, MeetingsError> {
        const END: &str = concat!(
            "UPDATE ",
            table!(meetings),
            " SET status = 'ended', ended_at = NOW() \
             WHERE meeting_id = $1 AND status <> 'ended' RETURNING ended_at"
        );
        const CLOSE_SESSIONS: &str = concat!(
            "UPDATE ",
            table!(meeting_participants),
            " SET left_at = NOW(), leave_reason = 'meeting_ended', \
               total_duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM NOW() - joined_at))::integer \
             WHERE meeting_id = $1 AND left_at IS NULL"
        );
        let mut tx = self.pg.pool().begin().await?;
        let ended: Option<DateTime<Utc>> = sqlx::query_scalar(END)
            .bind(meeting.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        let ended_at = match ended {
            Some(at) => {
                sqlx::query(CLOSE_SESSIONS)
                    .bind(meeting.as_uuid())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                at
            }
            None => {
                tx.rollback().await?;
                let existing = self.meeting(meeting).await?;
                existing
                    .ended_at
                    .ok_or_else(|| not_found("ended meeting", meeting))?
            }
        };
        let meeting_key = schema::meeting_key(meeting);
        let mut writes = store::Writes::new();
        writes
            .hset(
                &meeting_key,
                meeting_fields::STATUS,
                MeetingStatus::Ended.as_str(),
            )
            .expire(&meeting_key, schema::MEETING_TTL_AFTER_END.as_secs())
            .expire(
                &schema::meeting_participants_key(meeting),
                schema::MEETING_TTL_AFTER_END.as_secs(),
            );
        self.redis.apply(&writes).await?;
        tracing::info!(%meeting, "meeting ended");
        Ok(ended_at)
    }

    // -- media streams and subscriptions --------------------------------------------------

    /// A participant publishes a stream: `stream:{stream_id}` (no TTL while live) and the
    /// id appended to the session's `streams`, in one script. `false` (nothing written)
    /// when the publisher's session has expired.
    pub async fn publish_stream(&self, stream: &NewStream) -> Result<bool, MeetingsError> {
        use stream_fields as f;
        let mut conn = self.redis.conn();
        let published: i64 = PUBLISH_SCRIPT
            .key(schema::stream_key(stream.stream_id))
            .key(schema::participant_key(stream.participant_id))
            .arg(stream.stream_id.to_string())
            .arg(participant_fields::STREAMS)
            .arg(f::STREAM_ID)
            .arg(stream.stream_id.to_string())
            .arg(f::PARTICIPANT_ID)
            .arg(stream.participant_id.to_string())
            .arg(f::MEETING_ID)
            .arg(stream.meeting_id.to_string())
            .arg(f::STREAM_TYPE)
            .arg(stream.stream_type.as_str())
            .arg(f::CODEC)
            .arg(&stream.codec)
            .arg(f::MAX_BITRATE)
            .arg(stream.max_bitrate)
            .arg(f::SUBSCRIBERS)
            .arg(0)
            .arg(f::CREATED_AT)
            .arg(Utc::now().timestamp())
            .invoke_async(&mut conn)
            .await?;
        Ok(published == 1)
    }

    /// A stream ends: its hash is kept one more hour (the seed's TTL after end) and it
    /// leaves the publisher's `streams`. `false` for an unknown stream.
    pub async fn end_stream(
        &self,
        stream: StreamId,
        publisher: ParticipantId,
    ) -> Result<bool, MeetingsError> {
        let mut conn = self.redis.conn();
        let ended: i64 = UNPUBLISH_SCRIPT
            .key(schema::stream_key(stream))
            .key(schema::participant_key(publisher))
            .arg(stream.to_string())
            .arg(participant_fields::STREAMS)
            .arg(ttl_secs(schema::STREAM_TTL_AFTER_END))
            .invoke_async(&mut conn)
            .await?;
        Ok(ended == 1)
    }

    /// Subscribes a participant to a stream; returns the stream's subscriber count, or
    /// `None` for an unknown stream. Subscribing twice counts once.
    pub async fn subscribe(
        &self,
        participant: ParticipantId,
        stream: StreamId,
    ) -> Result<Option<i64>, MeetingsError> {
        self.change_subscription(participant, stream, 1).await
    }

    /// Undoes [`Repo::subscribe`]; unsubscribing twice counts once.
    pub async fn unsubscribe(
        &self,
        participant: ParticipantId,
        stream: StreamId,
    ) -> Result<Option<i64>, MeetingsError> {
        self.change_subscription(participant, stream, -1).await
    }

    async fn change_subscription(
        &self,
        participant: ParticipantId,
        stream: StreamId,
        delta: i64,
    ) -> Result<Option<i64>, MeetingsError> {
        let mut conn = self.redis.conn();
        let count: i64 = SUBSCRIBE_SCRIPT
            .key(schema::participant_subscriptions_key(participant))
            .key(schema::stream_key(stream))
            .arg(stream.to_string())
            .arg(stream_fields::SUBSCRIBERS)
            .arg(delta)
            .arg(ttl_secs(schema::SUBSCRIPTIONS_TTL))
            .invoke_async(&mut conn)
            .await?;
        Ok((count >= 0).then_some(count))
    }

    // -- cache and audit --------------------------------------------------------------------

    /// Caches `value` (JSON of a row) under `cache:{entity_type}:{entity_id}` with the
    /// entity type's TTL.
    pub async fn cache_put(
        &self,
        entity: CacheEntity,
        id: &str,
        value: &serde_json::Value,
    ) -> Result<(), MeetingsError> {
        let mut writes = store::Writes::new();
        writes.set_ex(
            &schema::cache_key(entity, id),
            value.to_string(),
            entity.ttl().as_secs(),
        );
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// The cached JSON, or `None` when absent or expired (or not JSON: a stale format is
    /// a miss, not an error).
    pub async fn cache_get(
        &self,
        entity: CacheEntity,
        id: &str,
    ) -> Result<Option<serde_json::Value>, MeetingsError> {
        let mut conn = self.redis.conn();
        let raw: Option<String> = redis::cmd("GET")
            .arg(schema::cache_key(entity, id))
            .query_async(&mut conn)
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Drops a cached entity (after the row changed).
    pub async fn cache_invalidate(
        &self,
        entity: CacheEntity,
        id: &str,
    ) -> Result<(), MeetingsError> {
        let mut writes = store::Writes::new();
        writes.del(&schema::cache_key(entity, id));
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// Appends one row to `audit_logs` (it lands in its month's partition, or the default
    /// one); returns its `id`.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<i64, MeetingsError> {
        const SQL: &str = concat!(
            "INSERT INTO ",
            table!(audit_logs),
            " (event_type, actor_user_id, actor_type, target_type, target_id, action, result, \
               error_message, ip_address, user_agent, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10, COALESCE($11, '{}'::jsonb)) \
             RETURNING id"
        );
        let id: i64 = sqlx::query_scalar(SQL)
            .bind(&entry.event_type)
            .bind(entry.actor_user_id.map(|u| u.as_uuid()))
            .bind(entry.actor_type.as_str())
            .bind(entry.target_type.as_deref())
            .bind(entry.target_id.as_deref())
            .bind(&entry.action)
            .bind(entry.result.as_str())
            .bind(entry.error_message.as_deref())
            .bind(entry.ip_address.map(|ip| ip.to_string()))
            .bind(entry.user_agent.as_deref())
            .bind(entry.metadata.as_ref())
            .fetch_one(self.pg.pool())
            .await?;
        Ok(id)
    }

    // -- tokens and counters --------------------------------------------------------------

    /// Issues a one-time WebTransport connection token (`wt:token:{token}`, 5 minutes).
    pub async fn issue_connection_token(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
        connection_type: ConnectionType,
    ) -> Result<WtToken, MeetingsError> {
        use wt_token_fields as f;
        let token = WtToken::generate(&mut rand::rng());
        let key = schema::wt_token_key(&token);
        let mut writes = store::Writes::new();
        writes
            .command("HSET")
            .arg(&key)
            .arg(f::PARTICIPANT_ID)
            .arg(participant.to_string())
            .arg(f::MEETING_ID)
            .arg(meeting.to_string())
            .arg(f::CREATED_AT)
            .arg(Utc::now().timestamp())
            .arg(f::CONNECTION_TYPE)
            .arg(connection_type.as_str());
        writes.expire(&key, schema::WT_TOKEN_TTL.as_secs());
        self.redis.apply(&writes).await?;
        Ok(token)
    }

    /// Redeems a connection token: read and deleted in one `MULTI`/`EXEC`, so of two
    /// connections presenting the same token exactly one gets the grant. `None` for an
    /// unknown, expired or already used token.
    pub async fn redeem_connection_token(
        &self,
        token: &WtToken,
    ) -> Result<Option<ConnectionGrant>, MeetingsError> {
        use wt_token_fields as f;
        let key = schema::wt_token_key(token);
        let mut pipe = redis::pipe();
        pipe.atomic().hgetall(&key).del(&key).ignore();
        let mut conn = self.redis.conn();
        let (fields,): (HashMap<String, String>,) = pipe.query_async(&mut conn).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &'static str| -> Result<&str, MeetingsError> {
            fields.get(name).map(String::as_str).ok_or_else(|| {
                MeetingsError::Invalid(ParseError {
                    what: "connection token",
                    value: name.to_owned(),
                    reason: "field missing",
                })
            })
        };
        Ok(Some(ConnectionGrant {
            participant_id: ParticipantId::parse(field(f::PARTICIPANT_ID)?)?,
            meeting_id: MeetingId::parse(field(f::MEETING_ID)?)?,
            created_at: parse_seconds("created_at", field(f::CREATED_AT)?)?,
            connection_type: ConnectionType::parse(field(f::CONNECTION_TYPE)?)?,
        }))
    }

    /// Blacklists a JWT by its hash until `expires_at` (the key's TTL), with a reason.
    /// `false` (nothing stored) when the token has already expired: it is dead anyway.
    pub async fn blacklist_token(
        &self,
        hash: &TokenHash,
        reason: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, MeetingsError> {
        let Some(ttl) = domain::seconds_until(expires_at, Utc::now()) else {
            return Ok(false);
        };
        let mut writes = store::Writes::new();
        writes.set_ex(&schema::token_blacklist_key(hash), reason, ttl);
        self.redis.apply(&writes).await?;
        Ok(true)
    }

    /// The reason a token was blacklisted, or `None` if it is not.
    pub async fn blacklisted(&self, hash: &TokenHash) -> Result<Option<String>, MeetingsError> {
        let mut conn = self.redis.conn();
        Ok(redis::cmd("GET")
            .arg(schema::token_blacklist_key(hash))
            .query_async(&mut conn)
            .await?)
    }

    /// Counts one request in the current per-minute window and returns the window's count
    /// (`INCR` and `EXPIRE 60` in one `MULTI`/`EXEC`, so no counter is left without TTL).
    /// The caller compares it with its limit.
    pub async fn count_request(
        &self,
        endpoint: &RateLimitPart,
        identifier: &RateLimitPart,
        now: DateTime<Utc>,
    ) -> Result<u64, MeetingsError> {
        let window = domain::rate_limit_window(now, schema::RATE_LIMIT_TTL.as_secs());
        let key = schema::rate_limit_key(endpoint, identifier, window);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .incr(&key, 1)
            .expire(&key, ttl_secs(schema::RATE_LIMIT_TTL))
            .ignore();
        let mut conn = self.redis.conn();
        let (count,): (u64,) = pipe.query_async(&mut conn).await?;
        Ok(count)
    }
}

struct CapacityReport {
    max_meetings: i32,
    current_meetings: i32,
    max_participants: i32,
    current_participants: i32,
    health: HealthStatus,
}

/// A TTL as the `i64` seconds redis-rs takes for `EXPIRE`.
fn ttl_secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn parse_seconds(what: &'static str, s: &str) -> Result<i64, ParseError> {
    s.parse().map_err(|_| ParseError {
        what,
        value: s.chars().take(64).collect(),
        reason: "expected Unix seconds",
    })
}

fn session_from_hash(h: &HashMap<String, String>) -> Result<ParticipantSession, MeetingsError> {
    use participant_fields as f;
    let get = |name: &'static str| -> Result<&str, ParseError> {
        h.get(name).map(String::as_str).ok_or(ParseError {
            what: "participant session",
            value: name.to_owned(),
            reason: "field missing",
        })
    };
    Ok(ParticipantSession {
        participant_id: ParticipantId::parse(get(f::PARTICIPANT_ID)?)?,
        meeting_id: MeetingId::parse(get(f::MEETING_ID)?)?,
        user_id: h.get(f::USER_ID).map(|s| UserId::parse(s)).transpose()?,
        display_name: get(f::DISPLAY_NAME)?.to_owned(),
        joined_at: parse_seconds("joined_at", get(f::JOINED_AT)?)?,
        connection_state: get(f::CONNECTION_STATE)?.to_owned(),
        last_heartbeat: parse_seconds("last_heartbeat", get(f::LAST_HEARTBEAT)?)?,
        streams: get(f::STREAMS)?.to_owned(),
    })
}
