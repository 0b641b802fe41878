//! The registry of meeting controllers and media handlers: their rows, the controllers'
//! `controller:{controller_id}:capacity` hashes, their load, and the assignment of a
//! meeting to one of them.

use store::{Condition, StorageError, Writes};

use super::{MeetingsError, Repo, corrupt, ttl_secs};
use crate::domain::{
    self, ControllerId, ControllerLoad, HandlerId, HandlerLoad, HealthStatus, MeetingId, Region,
};
use crate::schema::{
    self, ControllerLoadRow, HandlerLoadRow, controller_capacity_fields, meeting_fields,
};

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

/// What a controller's capacity hash holds.
struct CapacityReport {
    max_meetings: i32,
    current_meetings: i32,
    max_participants: i32,
    current_participants: i32,
    health: HealthStatus,
}

impl TryFrom<ControllerLoadRow> for ControllerLoad {
    type Error = StorageError;

    fn try_from(row: ControllerLoadRow) -> Result<ControllerLoad, StorageError> {
        Ok(ControllerLoad {
            controller_id: ControllerId::parse(&row.controller_id).map_err(corrupt)?,
            region: Region::parse(&row.region).map_err(corrupt)?,
            health: HealthStatus::parse(&row.health_status).map_err(corrupt)?,
            max_meetings: row.max_meetings,
            current_meetings: row.current_meetings,
            max_participants: row.max_participants,
            current_participants: row.current_participants,
        })
    }
}

impl TryFrom<HandlerLoadRow> for HandlerLoad {
    type Error = StorageError;

    fn try_from(row: HandlerLoadRow) -> Result<HandlerLoad, StorageError> {
        Ok(HandlerLoad {
            handler_id: HandlerId::parse(&row.handler_id).map_err(corrupt)?,
            region: Region::parse(&row.region).map_err(corrupt)?,
            health: HealthStatus::parse(&row.health_status).map_err(corrupt)?,
            max_streams: row.max_streams,
            current_streams: row.current_streams,
            max_bitrate_mbps: row.max_bitrate_mbps,
            current_bitrate_mbps: row.current_bitrate_mbps,
        })
    }
}

impl Repo {
    /// Registers (or re-registers) a meeting controller: its row, healthy and just seen,
    /// and its `controller:{controller_id}:capacity` hash, fresh, with the 5-minute TTL.
    pub async fn register_controller(
        &self,
        reg: &ControllerRegistration,
    ) -> Result<(), MeetingsError> {
        let (current_meetings, current_participants): (i32, i32) =
            sqlx::query_as(schema::UPSERT_CONTROLLER)
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
            current_meetings,
            max_participants: reg.max_participants,
            current_participants,
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
        let (max_meetings, max_participants): (i32, i32) =
            sqlx::query_as(schema::HEARTBEAT_CONTROLLER)
                .bind(beat.controller_id.as_str())
                .bind(beat.current_meetings)
                .bind(beat.current_participants)
                .bind(beat.health.as_str())
                .fetch_optional(self.pg.pool())
                .await?
                .ok_or_else(|| {
                    StorageError::not_found(format!("meeting controller {}", beat.controller_id))
                })?;
        let load = CapacityReport {
            max_meetings,
            current_meetings: beat.current_meetings,
            max_participants,
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
        let mut writes = Writes::new();
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
            .arg(self.now_secs());
        writes.expire(&key, ttl_secs(schema::CONTROLLER_CAPACITY_TTL));
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// The controllers of `region` that reported within the capacity TTL, with their load
    /// (healthy or not: [`domain::choose_controller`] filters).
    pub async fn controller_loads(
        &self,
        region: &Region,
    ) -> Result<Vec<ControllerLoad>, MeetingsError> {
        let rows: Vec<ControllerLoadRow> = sqlx::query_as(schema::SELECT_CONTROLLER_LOADS)
            .bind(region.as_str())
            .bind(schema::CONTROLLER_CAPACITY_TTL.as_secs_f64())
            .fetch_all(self.pg.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(ControllerLoad::try_from)
            .collect::<Result<_, _>>()?)
    }

    /// Assigns a meeting controller of `region` to the meeting by weighted choice of free
    /// capacity; `None` (and nothing written) when no controller there can take it.
    pub async fn assign_controller<R: rand::Rng + Send>(
        &self,
        meeting: MeetingId,
        region: &Region,
        rng: &mut R,
    ) -> Result<Option<ControllerId>, MeetingsError> {
        let loads = self.controller_loads(region).await?;
        let Some(chosen) = domain::choose_controller(&loads, region, rng) else {
            tracing::warn!(%meeting, %region, "no meeting controller with free capacity");
            return Ok(None);
        };
        let done = sqlx::query(schema::ASSIGN_CONTROLLER)
            .bind(meeting.as_uuid())
            .bind(chosen.controller_id.as_str())
            .bind(region.as_str())
            .execute(self.pg.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::not_found(format!("meeting {meeting}")).into());
        }
        Ok(Some(chosen.controller_id.clone()))
    }

    /// The media handlers of `region` that reported within the capacity TTL, with their
    /// load (healthy or not: [`domain::choose_media_handler`] filters).
    pub async fn handler_loads(&self, region: &Region) -> Result<Vec<HandlerLoad>, MeetingsError> {
        let rows: Vec<HandlerLoadRow> = sqlx::query_as(schema::SELECT_HANDLER_LOADS)
            .bind(region.as_str())
            .bind(schema::CONTROLLER_CAPACITY_TTL.as_secs_f64())
            .fetch_all(self.pg.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(HandlerLoad::try_from)
            .collect::<Result<_, _>>()?)
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
        let key = schema::meeting_key(meeting);
        let mut writes = Writes::new();
        writes.hset(
            &key,
            meeting_fields::MEDIA_HANDLER_ID,
            chosen.handler_id.as_str(),
        );
        let written = self
            .redis
            .apply_when(&[Condition::exists(&key)], &writes)
            .await?;
        Ok(written.applied().then(|| chosen.handler_id.clone()))
    }

    /// Registers (or re-registers) a media handler, healthy and just seen.
    pub async fn register_handler(&self, reg: &HandlerRegistration) -> Result<(), MeetingsError> {
        sqlx::query(schema::UPSERT_HANDLER)
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
        let done = sqlx::query(schema::HEARTBEAT_HANDLER)
            .bind(beat.handler_id.as_str())
            .bind(beat.current_streams)
            .bind(beat.current_bitrate_mbps)
            .bind(beat.health.as_str())
            .execute(self.pg.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(
                StorageError::not_found(format!("media handler {}", beat.handler_id)).into(),
            );
        }
        Ok(())
    }
}
