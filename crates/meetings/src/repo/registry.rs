//! The registry of meeting controllers and media handlers: their rows, the controllers'
//! `controller:{controller_id}:capacity` hashes, their load, and the assignment of a
//! meeting to one of them.
//!
//! Who may get a new meeting is a pure rule ([`domain::choose_controller`],
//! [`domain::Liveness`]); this file gathers what it needs. A controller's load is read
//! from its row and, fresher, from its capacity hash: the hash is what its heartbeats
//! refresh and what an assignment counts up (`current_meetings + 1`) until the next
//! report says the truth, so several assignments between two heartbeats do not all see
//! the same free capacity. Heartbeat times are the repository's clock, so "stopped
//! heartbeating" means the same thing to every replica that shares it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use store::{Attempt, Condition, StorageError, Writes};

use super::{Meeting, MeetingsError, Repo, corrupt, ttl_secs};
use crate::domain::{
    self, ControllerId, ControllerLoad, HandlerId, HandlerLoad, HealthStatus, Liveness, MeetingId,
    Region,
};
use crate::schema::{
    self, ControllerLoadRow, ControllerRow, HandlerLoadRow, controller_capacity_fields,
    meeting_fields,
};

/// How long a read of a region's live controllers serves join grants before the next
/// one reads again.
const REGISTRY_REUSE: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// The live meeting controllers of each region as this repository last read them (by
/// the repository's clock), so the join grants of a busy global controller read the
/// registry at most once a second and region, not on every grant: a meeting's current
/// controller is confirmed, and a new meeting's chosen, from that read, each
/// assignment counted in it as in the capacity hash. A heartbeat or a registration
/// through this repository drops every read at once; another replica's reads learn
/// of a change within [`REGISTRY_REUSE`], well inside the heartbeat limit that decides
/// liveness anyway. Two replicas may both give a nearly full controller its last slot
/// within that second; that controller then refuses the extra join as full
/// (`controller_full`) and the client asks for a new grant.
#[derive(Debug, Default)]
pub(super) struct RecentControllers {
    regions: std::sync::Mutex<HashMap<Region, RegionRead>>,
}

#[derive(Debug)]
struct RegionRead {
    read_at: DateTime<Utc>,
    liveness: Liveness,
    live: Vec<(ControllerLoad, RegisteredController)>,
}

impl RecentControllers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Region, RegionRead>> {
        self.regions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The read of `region` made under `liveness` within [`REGISTRY_REUSE`] of `now`.
    fn fresh(
        &self,
        region: &Region,
        liveness: &Liveness,
        now: DateTime<Utc>,
    ) -> Option<Vec<(ControllerLoad, RegisteredController)>> {
        let regions = self.lock();
        let read = regions.get(region)?;
        let fresh = &read.liveness == liveness
            && now >= read.read_at
            && now - read.read_at < REGISTRY_REUSE;
        fresh.then(|| read.live.clone())
    }

    /// Keeps a read of `region`; not an empty one: a region without a live controller is
    /// read again at once, so the first heartbeat of one coming back is seen at once.
    fn remember(
        &self,
        region: &Region,
        liveness: &Liveness,
        now: DateTime<Utc>,
        live: &[(ControllerLoad, RegisteredController)],
    ) {
        if live.is_empty() {
            self.lock().remove(region);
            return;
        }
        self.lock().insert(
            region.clone(),
            RegionRead {
                read_at: now,
                liveness: *liveness,
                live: live.to_vec(),
            },
        );
    }

    /// One more meeting on `controller`, as its capacity hash counts it.
    fn counted(&self, region: &Region, controller: &ControllerId) {
        if let Some(read) = self.lock().get_mut(region)
            && let Some((load, _)) = read
                .live
                .iter_mut()
                .find(|(load, _)| &load.controller_id == controller)
        {
            load.current_meetings = load.current_meetings.saturating_add(1);
        }
    }

    fn forget(&self) {
        self.lock().clear();
    }
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
    /// SHA-256 (hex) of the DER certificate it serves WebTransport with, handed out in
    /// join grants so a browser can pin a self-signed certificate
    /// (`serverCertificateHashes`). Kept in the row's `metadata` as `certificate_hash`.
    pub certificate_hash: Option<String>,
}

/// The `metadata` field of `meeting_controllers` holding the certificate hash.
const CERTIFICATE_HASH: &str = "certificate_hash";

/// The certificate hash in a controller row's `metadata`.
fn certificate_hash(metadata: Option<&serde_json::Value>) -> Option<String> {
    metadata
        .and_then(|m| m.get(CERTIFICATE_HASH))
        .and_then(|h| h.as_str())
        .map(str::to_owned)
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
    /// SHA-256 (hex) of the DER certificate it serves WebTransport with, handed out in
    /// media grants (and pinned by the other handlers relaying to it). Kept in the row's
    /// `metadata` as `certificate_hash`, like a controller's.
    pub certificate_hash: Option<String>,
}

/// A registered media handler: where it is reached and its last state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredHandler {
    pub handler_id: HandlerId,
    pub region: Region,
    pub endpoint: String,
    pub health: HealthStatus,
    pub last_heartbeat_at: DateTime<Utc>,
    /// See [`HandlerRegistration::certificate_hash`].
    pub certificate_hash: Option<String>,
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

/// A registered meeting controller: where clients reach it (the join grant's
/// `webtransport_url` comes from `endpoint`) and its last state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredController {
    pub controller_id: ControllerId,
    pub region: Region,
    pub endpoint: String,
    pub health: HealthStatus,
    pub last_heartbeat_at: DateTime<Utc>,
    /// See [`ControllerRegistration::certificate_hash`].
    pub certificate_hash: Option<String>,
}

impl Repo {
    /// Registers (or re-registers) a meeting controller: its row, healthy and just seen
    /// (the repository's clock), and its `controller:{controller_id}:capacity` hash,
    /// fresh, with the 5-minute TTL.
    pub async fn register_controller(
        &self,
        reg: &ControllerRegistration,
    ) -> Result<(), MeetingsError> {
        self.recent_controllers.forget();
        let (current_meetings, current_participants): (i32, i32) =
            sqlx::query_as(schema::UPSERT_CONTROLLER)
                .bind(reg.controller_id.as_str())
                .bind(reg.region.as_str())
                .bind(&reg.endpoint)
                .bind(reg.max_meetings)
                .bind(reg.max_participants)
                .bind(reg.version.as_deref())
                .bind(self.clock.now())
                .bind(match &reg.certificate_hash {
                    Some(hash) => serde_json::json!({ CERTIFICATE_HASH: hash }),
                    None => serde_json::json!({}),
                })
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

    /// Records a controller's heartbeat in its row (`last_heartbeat_at` from the
    /// repository's clock) and rewrites its capacity hash with a fresh TTL, recreating it
    /// when it had expired: a controller whose heartbeats stopped is back with its next
    /// one. `NotFound` for a controller that never registered.
    pub async fn heartbeat_controller(
        &self,
        beat: &ControllerHeartbeat,
    ) -> Result<(), MeetingsError> {
        self.recent_controllers.forget();
        let (max_meetings, max_participants): (i32, i32) =
            sqlx::query_as(schema::HEARTBEAT_CONTROLLER)
                .bind(beat.controller_id.as_str())
                .bind(beat.current_meetings)
                .bind(beat.current_participants)
                .bind(beat.health.as_str())
                .bind(self.clock.now())
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

    /// A registered controller (for its endpoint); `NotFound` for one never registered.
    pub async fn controller(
        &self,
        id: &ControllerId,
    ) -> Result<RegisteredController, MeetingsError> {
        let row: ControllerRow = sqlx::query_as(schema::SELECT_CONTROLLER)
            .bind(id.as_str())
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| StorageError::not_found(format!("meeting controller {id}")))?;
        Ok(RegisteredController {
            controller_id: ControllerId::parse(&row.controller_id).map_err(corrupt)?,
            region: Region::parse(&row.region).map_err(corrupt)?,
            endpoint: row.endpoint,
            health: HealthStatus::parse(&row.health_status).map_err(corrupt)?,
            last_heartbeat_at: row.last_heartbeat_at,
            certificate_hash: certificate_hash(row.metadata.as_ref()),
        })
    }

    /// The controllers of `region` that heartbeat within `liveness` of now, with their
    /// load: the row's, overridden by the capacity hash when it exists (fresher: it
    /// counts assignments since the last report). Healthy or not, with or without a
    /// capacity hash: [`domain::choose_controller`] decides.
    pub async fn controller_loads(
        &self,
        region: &Region,
        liveness: &Liveness,
    ) -> Result<Vec<ControllerLoad>, MeetingsError> {
        Ok(self
            .live_controllers(region, liveness)
            .await?
            .into_iter()
            .map(|(load, _)| load)
            .collect())
    }

    /// [`Repo::controller_loads`], each with its registration (endpoint, certificate
    /// hash) from the same read.
    async fn live_controllers(
        &self,
        region: &Region,
        liveness: &Liveness,
    ) -> Result<Vec<(ControllerLoad, RegisteredController)>, MeetingsError> {
        let rows: Vec<ControllerLoadRow> = sqlx::query_as(schema::SELECT_CONTROLLER_LOADS)
            .bind(region.as_str())
            .bind(liveness.oldest_alive(self.clock.now()))
            .fetch_all(self.pg.pool())
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut pipe = redis::pipe();
        for row in &rows {
            let id = ControllerId::parse(&row.controller_id).map_err(corrupt)?;
            pipe.hgetall(schema::controller_capacity_key(&id));
            ids.push(id);
        }
        let mut conn = self.redis.conn();
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        rows.into_iter()
            .zip(ids)
            .zip(hashes)
            .map(|((row, id), capacity)| {
                let registered = RegisteredController {
                    controller_id: id.clone(),
                    region: Region::parse(&row.region).map_err(corrupt)?,
                    endpoint: row.endpoint.clone(),
                    health: HealthStatus::parse(&row.health_status).map_err(corrupt)?,
                    last_heartbeat_at: row.last_heartbeat_at,
                    certificate_hash: certificate_hash(row.metadata.as_ref()),
                };
                Ok((controller_load(row, id, &capacity)?, registered))
            })
            .collect::<Result<_, StorageError>>()
            .map_err(MeetingsError::from)
    }

    /// Assigns a meeting controller of `region` to the meeting by weighted choice of free
    /// capacity among the alive, healthy ones ([`domain::choose_controller`]): the
    /// meeting's row gets `assigned_controller_id` and `assigned_region`, then the
    /// controller's capacity hash counts the meeting (only while the hash exists; its
    /// next heartbeat reports the truth). `None` (and nothing written) when no controller
    /// there can take it.
    pub async fn assign_controller<R: rand::Rng + Send>(
        &self,
        meeting: MeetingId,
        region: &Region,
        liveness: &Liveness,
        rng: &mut R,
    ) -> Result<Option<ControllerId>, MeetingsError> {
        let loads = self.controller_loads(region, liveness).await?;
        let now = self.clock.now();
        let Some(chosen) = domain::choose_controller(&loads, region, now, liveness, rng) else {
            tracing::warn!(%meeting, %region, candidates = loads.len(), "no meeting controller with free capacity");
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
        self.count_assignment(&chosen.controller_id).await?;
        tracing::info!(%meeting, %region, controller = %chosen.controller_id, "meeting controller assigned");
        Ok(Some(chosen.controller_id.clone()))
    }

    /// The meeting controller that serves `meeting`: the one it is assigned to while that
    /// one [keeps its meetings](ControllerLoad::keeps_meetings) (alive, not
    /// `unhealthy`), else a new one of the meeting's region (`region` when it has none
    /// yet) by weighted choice, as [`Repo::assign_controller`] does. The new assignment is
    /// written only if nobody assigned the meeting meanwhile (another replica answering
    /// the same meeting at once); otherwise that one is read and judged again, so every
    /// caller gets the same controller. `None` when no controller can take it; `NotFound`
    /// for an unknown meeting. The global controller's join grant stands on this.
    pub async fn controller_for<R: rand::Rng + Send>(
        &self,
        meeting: MeetingId,
        region: &Region,
        liveness: &Liveness,
        rng: &mut R,
    ) -> Result<Option<RegisteredController>, MeetingsError> {
        let current = self.meeting(meeting).await?;
        self.controller_for_meeting(&current, region, liveness, rng)
            .await
    }

    /// Hands on the meetings assigned to `controller` (which is stopping) and not
    /// ended: none is assigned to it any more, so the next grant of each chooses a live
    /// controller at once, rather than once its heartbeats have stopped for
    /// [`Liveness`]. How many.
    pub async fn release_meetings(&self, controller: &ControllerId) -> Result<u64, MeetingsError> {
        let done = sqlx::query(schema::RELEASE_CONTROLLER_MEETINGS)
            .bind(controller.as_str())
            .execute(self.pg.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// [`Repo::controller_for`] of a meeting just read (its assignment as read is the
    /// first attempt's; a lost race reads it again). Two round trips when the meeting
    /// keeps its controller: the region's live controllers with their registrations
    /// (PostgreSQL) and their capacity hashes (Redis).
    pub async fn controller_for_meeting<R: rand::Rng + Send>(
        &self,
        meeting: &Meeting,
        region: &Region,
        liveness: &Liveness,
        rng: &mut R,
    ) -> Result<Option<RegisteredController>, MeetingsError> {
        let id = meeting.meeting_id;
        let what = format!("the controller of meeting {id}");
        let mut first = Some(meeting.clone());
        store::optimistic(&what, |_| {
            // Each attempt draws from its own generator, seeded from the caller's.
            let mut rng = StdRng::seed_from_u64(rng.random());
            let known = first.take();
            async move {
                let current = match known {
                    Some(meeting) => meeting,
                    None => self.meeting(id).await?,
                };
                let region = current.assigned_region.clone().unwrap_or(region.clone());
                let now = self.clock.now();
                // A meeting assigned to nobody was handed on by a controller that is
                // stopping: read afresh, so that a read of the last second does not give
                // it back to that one.
                let live = match current.assigned_controller_id {
                    Some(_) => self.live_controllers_reused(&region, liveness, now).await?,
                    None => {
                        let live = self.live_controllers(&region, liveness).await?;
                        self.recent_controllers.remember(&region, liveness, now, &live);
                        live
                    }
                };
                if let Some(assigned) = &current.assigned_controller_id
                    && let Some((_, registered)) = live
                        .iter()
                        .find(|(c, _)| &c.controller_id == assigned && c.keeps_meetings(now, liveness))
                {
                    return Ok::<_, MeetingsError>(Attempt::Done(Some(registered.clone())));
                }
                let loads: Vec<ControllerLoad> = live.iter().map(|(c, _)| c.clone()).collect();
                let Some(chosen) =
                    domain::choose_controller(&loads, &region, now, liveness, &mut rng)
                else {
                    tracing::warn!(meeting = %id, %region, "no meeting controller with free capacity");
                    return Ok(Attempt::Done(None));
                };
                let done = sqlx::query(schema::REASSIGN_CONTROLLER)
                    .bind(id.as_uuid())
                    .bind(chosen.controller_id.as_str())
                    .bind(region.as_str())
                    .bind(
                        current
                            .assigned_controller_id
                            .as_ref()
                            .map(ControllerId::as_str),
                    )
                    .execute(self.pg.pool())
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(Attempt::Retry);
                }
                self.counted_assignment(&region, &chosen.controller_id)
                    .await?;
                tracing::info!(meeting = %id, %region, controller = %chosen.controller_id,
                    previous = current.assigned_controller_id.as_ref().map(tracing::field::display), "meeting controller assigned");
                let registered = live
                    .into_iter()
                    .find(|(c, _)| c.controller_id == chosen.controller_id)
                    .map(|(_, r)| r);
                Ok(Attempt::Done(registered))
            }
        })
        .await
    }

    /// The live controllers of `region`: the read of the last second, else a new one.
    async fn live_controllers_reused(
        &self,
        region: &Region,
        liveness: &Liveness,
        now: DateTime<Utc>,
    ) -> Result<Vec<(ControllerLoad, RegisteredController)>, MeetingsError> {
        if let Some(live) = self.recent_controllers.fresh(region, liveness, now) {
            return Ok(live);
        }
        let live = self.live_controllers(region, liveness).await?;
        self.recent_controllers
            .remember(region, liveness, now, &live);
        Ok(live)
    }

    /// A controller of `region` for a new meeting, by the weighted choice of
    /// [`domain::choose_controller`] over the reused registry read; `None` when none can
    /// take one. Nothing is written.
    pub(super) async fn choose_controller<R: rand::Rng + Send>(
        &self,
        region: &Region,
        liveness: &Liveness,
        rng: &mut R,
    ) -> Result<Option<ControllerId>, MeetingsError> {
        let now = self.clock.now();
        let live = self.live_controllers_reused(region, liveness, now).await?;
        let loads: Vec<ControllerLoad> = live.into_iter().map(|(c, _)| c).collect();
        Ok(
            domain::choose_controller(&loads, region, now, liveness, rng)
                .map(|c| c.controller_id.clone()),
        )
    }

    /// Counts an assignment to `controller` in its capacity hash and in the reused
    /// registry read.
    pub(super) async fn counted_assignment(
        &self,
        region: &Region,
        controller: &ControllerId,
    ) -> Result<(), MeetingsError> {
        self.count_assignment(controller).await?;
        self.recent_controllers.counted(region, controller);
        Ok(())
    }

    /// Counts one more meeting in the controller's capacity hash, only while the hash
    /// exists (its next heartbeat reports the truth).
    async fn count_assignment(&self, controller: &ControllerId) -> Result<(), MeetingsError> {
        let capacity = schema::controller_capacity_key(controller);
        let mut counted = Writes::new();
        counted.hincrby(&capacity, controller_capacity_fields::CURRENT_MEETINGS, 1);
        self.redis
            .apply_when(&[Condition::exists(&capacity)], &counted)
            .await?;
        Ok(())
    }

    /// The media handlers of `region` that heartbeat within `liveness` of now, with their
    /// load (healthy or not: [`domain::choose_media_handler`] filters).
    pub async fn handler_loads(
        &self,
        region: &Region,
        liveness: &Liveness,
    ) -> Result<Vec<HandlerLoad>, MeetingsError> {
        let rows: Vec<HandlerLoadRow> = sqlx::query_as(schema::SELECT_HANDLER_LOADS)
            .bind(region.as_str())
            .bind(liveness.oldest_alive(self.clock.now()))
            .fetch_all(self.pg.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(handler_load)
            .collect::<Result<_, _>>()?)
    }

    /// Assigns a media handler of `region` to a running meeting: weighted choice of free
    /// stream slots among the alive, healthy ones, written to `media_handler_id` of
    /// `meeting:{meeting_id}` (the seed keeps this assignment in Redis only). Only while
    /// that hash exists, i.e. once the meeting has been joined: a hash written for a
    /// meeting nobody joins would never expire. `None` (nothing written) when no handler
    /// can take it or the meeting is not running.
    pub async fn assign_media_handler<R: rand::Rng + Send>(
        &self,
        meeting: MeetingId,
        region: &Region,
        liveness: &Liveness,
        rng: &mut R,
    ) -> Result<Option<HandlerId>, MeetingsError> {
        let loads = self.handler_loads(region, liveness).await?;
        let now = self.clock.now();
        let Some(chosen) = domain::choose_media_handler(&loads, region, now, liveness, rng) else {
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
            .bind(self.clock.now())
            .bind(match &reg.certificate_hash {
                Some(hash) => serde_json::json!({ CERTIFICATE_HASH: hash }),
                None => serde_json::json!({}),
            })
            .execute(self.pg.pool())
            .await?;
        tracing::info!(handler = %reg.handler_id, region = %reg.region, "media handler registered");
        Ok(())
    }

    /// A registered media handler (its endpoint and certificate hash); `NotFound` for one
    /// never registered.
    pub async fn media_handler(&self, id: &HandlerId) -> Result<RegisteredHandler, MeetingsError> {
        let row: schema::HandlerRow = sqlx::query_as(schema::SELECT_HANDLER)
            .bind(id.as_str())
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| StorageError::not_found(format!("media handler {id}")))?;
        Ok(RegisteredHandler {
            handler_id: HandlerId::parse(&row.handler_id).map_err(corrupt)?,
            region: Region::parse(&row.region).map_err(corrupt)?,
            endpoint: row.endpoint,
            health: HealthStatus::parse(&row.health_status).map_err(corrupt)?,
            last_heartbeat_at: row.last_heartbeat_at,
            certificate_hash: certificate_hash(row.metadata.as_ref()),
        })
    }

    /// [`Repo::media_handler`], when it heartbeat within `liveness` of now (the
    /// repository's clock); `None` for one that stopped (or never registered).
    pub async fn live_media_handler(
        &self,
        id: &HandlerId,
        liveness: &Liveness,
    ) -> Result<Option<RegisteredHandler>, MeetingsError> {
        match self.media_handler(id).await {
            Ok(h) if liveness.is_alive(h.last_heartbeat_at, self.clock.now()) => Ok(Some(h)),
            Ok(_) | Err(MeetingsError::Storage(StorageError::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Handler `handler` serves participants of `meeting`: it is (again) in the
    /// meeting's `tavern:meetings:meeting:{meeting_id}:media_handlers` set, whose TTL
    /// starts over. Returns every handler in the set, itself included.
    pub async fn serve_meeting_media(
        &self,
        meeting: MeetingId,
        handler: &HandlerId,
    ) -> Result<Vec<HandlerId>, MeetingsError> {
        let key = schema::meeting_media_handlers_key(meeting);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .sadd(&key, handler.as_str())
            .ignore()
            .expire(
                &key,
                i64::try_from(ttl_secs(schema::MEETING_MEDIA_HANDLERS_TTL)).unwrap_or(i64::MAX),
            )
            .ignore()
            .smembers(&key);
        let mut conn = self.redis.conn();
        let (members,): (Vec<String>,) = pipe.query_async(&mut conn).await?;
        members
            .iter()
            .map(|m| HandlerId::parse(m).map_err(|e| MeetingsError::from(corrupt(e))))
            .collect()
    }

    /// Handler `handler` no longer serves participants of `meeting`.
    pub async fn leave_meeting_media(
        &self,
        meeting: MeetingId,
        handler: &HandlerId,
    ) -> Result<(), MeetingsError> {
        let mut writes = Writes::new();
        writes.srem(
            &schema::meeting_media_handlers_key(meeting),
            handler.as_str(),
        );
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// Records a media handler's load report (`last_heartbeat_at` from the repository's
    /// clock). `NotFound` for one that never registered.
    pub async fn heartbeat_handler(&self, beat: &HandlerHeartbeat) -> Result<(), MeetingsError> {
        let done = sqlx::query(schema::HEARTBEAT_HANDLER)
            .bind(beat.handler_id.as_str())
            .bind(beat.current_streams)
            .bind(beat.current_bitrate_mbps)
            .bind(beat.health.as_str())
            .bind(self.clock.now())
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

/// A controller's load from its row and its capacity hash (empty when the hash has
/// expired: then the row's figures stand and it is not `capacity_reported`).
fn controller_load(
    row: ControllerLoadRow,
    controller_id: ControllerId,
    capacity: &HashMap<String, String>,
) -> Result<ControllerLoad, StorageError> {
    use controller_capacity_fields as f;
    let key = || schema::controller_capacity_key(&controller_id);
    let number = |field: &'static str, fallback: i32| -> Result<i32, StorageError> {
        match capacity.get(field) {
            Some(v) => v
                .parse()
                .map_err(|_| StorageError::corrupt(key(), format!("`{field}` is not a number"))),
            None => Ok(fallback),
        }
    };
    let health = match capacity.get(f::HEALTH) {
        Some(h) => HealthStatus::parse(h).map_err(corrupt)?,
        None => HealthStatus::parse(&row.health_status).map_err(corrupt)?,
    };
    Ok(ControllerLoad {
        region: Region::parse(&row.region).map_err(corrupt)?,
        health,
        max_meetings: number(f::MAX_MEETINGS, row.max_meetings)?,
        current_meetings: number(f::CURRENT_MEETINGS, row.current_meetings)?,
        max_participants: number(f::MAX_PARTICIPANTS, row.max_participants)?,
        current_participants: number(f::CURRENT_PARTICIPANTS, row.current_participants)?,
        last_heartbeat_at: row.last_heartbeat_at,
        capacity_reported: !capacity.is_empty(),
        controller_id,
    })
}

fn handler_load(row: HandlerLoadRow) -> Result<HandlerLoad, StorageError> {
    Ok(HandlerLoad {
        handler_id: HandlerId::parse(&row.handler_id).map_err(corrupt)?,
        region: Region::parse(&row.region).map_err(corrupt)?,
        health: HealthStatus::parse(&row.health_status).map_err(corrupt)?,
        max_streams: row.max_streams,
        current_streams: row.current_streams,
        max_bitrate_mbps: row.max_bitrate_mbps,
        current_bitrate_mbps: row.current_bitrate_mbps,
        last_heartbeat_at: row.last_heartbeat_at,
    })
}
