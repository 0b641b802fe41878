//! Meetings: created under a fresh code, read by id or code (alone, or with the display
//! name of the user about to join, in one round trip), their name and settings changed
//! by compare-and-set, and ended (the seed's Data Flow Example 2) in PostgreSQL and
//! Redis, each change with its audit row in the same transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use store::{Condition, StorageError, Writes};

use super::{AuditEntry, MeetingsError, Repo, corrupt};
use crate::domain::{
    ActorType, AuditResult, ControllerId, DisplayName, Liveness, MeetingCode, MeetingId,
    MeetingKey, MeetingStatus, ParticipantId, Region, UserId,
};
use crate::schema::{self, MeetingRow, MeetingWithUserNameRow, meeting_fields};

/// The audit rows of the meeting lifecycle and of joins and leaves, written inside the
/// transaction of the change they record (so a change never lands without its row, nor
/// a row without its change).
pub(super) mod audit {
    /// `event_type`s (the seed's examples spell them `meeting_created`,
    /// `participant_joined`).
    pub const MEETING_CREATED: &str = "meeting_created";
    pub const MEETING_ENDED: &str = "meeting_ended";
    pub const MEETING_SETTINGS_CHANGED: &str = "meeting_settings_changed";
    pub const PARTICIPANT_JOINED: &str = "participant_joined";
    pub const PARTICIPANT_LEFT: &str = "participant_left";
    /// `action`s.
    pub const CREATE: &str = "create";
    pub const END: &str = "end";
    pub const UPDATE: &str = "update";
    pub const JOIN: &str = "join";
    pub const LEAVE: &str = "leave";
    /// `target_type` of all five.
    pub const TARGET_MEETING: &str = "meeting";

    /// Appends an entry inside the caller's transaction (`append(&mut *tx, &entry)`).
    pub(in crate::repo) use crate::repo::audit::append;
}

/// The audit row of a meeting's creation or end.
fn lifecycle_entry(
    event_type: &str,
    action: &str,
    meeting: MeetingId,
    actor: Option<UserId>,
    metadata: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        event_type: event_type.to_owned(),
        actor_user_id: actor,
        actor_type: if actor.is_some() {
            ActorType::User
        } else {
            ActorType::System
        },
        target_type: Some(audit::TARGET_MEETING.to_owned()),
        target_id: Some(meeting.to_string()),
        action: action.to_owned(),
        result: AuditResult::Success,
        error_message: None,
        ip_address: None,
        user_agent: None,
        metadata: Some(metadata),
    }
}

/// PostgreSQL's `synchronous_commit` for creating `new`. A meeting to start now commits
/// without waiting for the disk (`off`): its creator joins it within seconds, so in the
/// rare case a PostgreSQL or machine crash loses the last fraction of a second of
/// commits (never half of one: the row and its audit row go together), the loss shows at
/// once as "no such meeting", and making another costs a click. A meeting scheduled for
/// later waits for the disk (`on`): its code may be shared for days before anyone finds
/// out it is gone.
fn synchronous_commit(new: &NewMeeting) -> &'static str {
    if new.scheduled_start_time.is_some() {
        "on"
    } else {
        "off"
    }
}

/// A meeting with the user's display name, from a [`MeetingWithUserNameRow`].
fn with_user_name(
    row: MeetingWithUserNameRow,
) -> Result<(Meeting, Option<DisplayName>), MeetingsError> {
    let meeting = Meeting::try_from(row.meeting)?;
    let name = row
        .user_display_name
        .as_deref()
        .map(DisplayName::stored)
        .transpose()
        .map_err(corrupt)?;
    Ok((meeting, name))
}

/// The fields a settings change alters, each `{"from": old, "to": new}` (for the audit
/// row).
fn settings_changes(
    current: &Meeting,
    display_name: &DisplayName,
    new: &MeetingSettings,
) -> serde_json::Map<String, serde_json::Value> {
    let mut changes = serde_json::Map::new();
    let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            changes.insert(
                field.to_owned(),
                serde_json::json!({ "from": from, "to": to }),
            );
        }
    };
    let old = &current.settings;
    note(
        "display_name",
        current.display_name.as_str().into(),
        display_name.as_str().into(),
    );
    note(
        "max_participants",
        old.max_participants.into(),
        new.max_participants.into(),
    );
    note(
        "enable_e2e_encryption",
        old.enable_e2e_encryption.into(),
        new.enable_e2e_encryption.into(),
    );
    note(
        "require_auth",
        old.require_auth.into(),
        new.require_auth.into(),
    );
    note(
        "allow_recording",
        old.allow_recording.into(),
        new.allow_recording.into(),
    );
    note(
        "waiting_room_enabled",
        old.waiting_room_enabled.into(),
        new.waiting_room_enabled.into(),
    );
    changes
}

/// How many codes [`Repo::create_meeting`] tries before giving up. With 30^10 codes a
/// second attempt is already rare; five failures in a row mean something else is wrong.
pub const CODE_ATTEMPTS: usize = 5;

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
/// What a meeting controller's sweep reads of a meeting it hosts
/// ([`Repo::meeting_statuses`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedStatus {
    pub status: MeetingStatus,
    /// The controller the registry assigned the meeting to: another than the host's
    /// once the registry has moved it (the host's heartbeats stopped for a while).
    pub controller: Option<ControllerId>,
    /// Whether only signed-in users may be in it (`require_auth`, as it is now).
    pub require_auth: bool,
}

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

impl TryFrom<MeetingRow> for Meeting {
    type Error = StorageError;

    fn try_from(row: MeetingRow) -> Result<Meeting, StorageError> {
        Ok(Meeting {
            meeting_id: MeetingId::from_uuid(row.meeting_id),
            created_by_user_id: row.created_by_user_id.map(UserId::from_uuid),
            display_name: row.display_name,
            meeting_code: MeetingCode::parse(&row.meeting_code).map_err(corrupt)?,
            settings: MeetingSettings {
                max_participants: row.max_participants,
                enable_e2e_encryption: row.enable_e2e_encryption,
                require_auth: row.require_auth,
                allow_recording: row.allow_recording,
                waiting_room_enabled: row.waiting_room_enabled,
            },
            status: MeetingStatus::parse(&row.status).map_err(corrupt)?,
            scheduled_start_time: row.scheduled_start_time,
            actual_start_time: row.actual_start_time,
            ended_at: row.ended_at,
            assigned_controller_id: row
                .assigned_controller_id
                .as_deref()
                .map(ControllerId::parse)
                .transpose()
                .map_err(corrupt)?,
            assigned_region: row
                .assigned_region
                .as_deref()
                .map(Region::parse)
                .transpose()
                .map_err(corrupt)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            metadata: row.metadata,
        })
    }
}

/// How many codes [`KnownCodes`] holds before it forgets them all.
const KNOWN_CODES: usize = 10_000;

/// Which meeting each code names, for the meetings this process has created or read by
/// code: what lets a join grant's connection token be written while the meeting named
/// by its code is still being read ([`crate::grant::EarlyToken`]). A meeting's code never changes; a code
/// retention freed and a new meeting drew again is caught by the read, which names
/// the other meeting. Forgotten wholesale when full (a guess missed costs only the
/// overlap).
#[derive(Debug, Default)]
pub(super) struct KnownCodes(std::sync::Mutex<HashMap<MeetingCode, MeetingId>>);

impl KnownCodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MeetingCode, MeetingId>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, meeting: &Meeting) {
        self.remember_code(&meeting.meeting_code, meeting.meeting_id);
    }

    fn remember_code(&self, code: &MeetingCode, meeting: MeetingId) {
        let mut codes = self.lock();
        // Known already (every grant by code after the first): nothing to copy.
        if codes.get(code) == Some(&meeting) {
            return;
        }
        if codes.len() >= KNOWN_CODES && !codes.contains_key(code) {
            codes.clear();
        }
        codes.insert(code.clone(), meeting);
    }

    fn get(&self, code: &MeetingCode) -> Option<MeetingId> {
        self.lock().get(code).copied()
    }
}

impl Repo {
    /// The meeting `key` names as far as this process knows without a read: its id, or
    /// the meeting it last created or read under that code. A guess: only a read says
    /// which meeting a code names now.
    pub fn known_meeting_id(&self, key: &MeetingKey) -> Option<MeetingId> {
        match key {
            MeetingKey::Id(id) => Some(*id),
            MeetingKey::Code(code) => self.known_codes.get(code),
        }
    }

    /// Creates a meeting under a fresh random code.
    pub async fn create_meeting(&self, new: &NewMeeting) -> Result<Meeting, MeetingsError> {
        self.create_meeting_with_codes(new, || MeetingCode::generate(&mut rand::rng()))
            .await
    }

    /// Creates a meeting, taking codes from `next_code` until one is free (at most
    /// [`CODE_ATTEMPTS`]). A taken code is detected by `ON CONFLICT DO NOTHING`, not by an
    /// error, so a collision costs one statement and nothing written. The row and its
    /// `meeting_created` audit row (actor: the creator, or the system) are one statement,
    /// committed together; whether the commit waits for the disk is
    /// `synchronous_commit`'s choice.
    pub async fn create_meeting_with_codes(
        &self,
        new: &NewMeeting,
        next_code: impl FnMut() -> MeetingCode,
    ) -> Result<Meeting, MeetingsError> {
        self.insert_meeting(new, None, next_code).await
    }

    /// Creates a meeting as [`Repo::create_meeting`] does and, when it is to start now,
    /// assigns it a meeting controller of `region` in the same statement (chosen as
    /// [`Repo::controller_for_meeting`] chooses for an unassigned meeting, from the same
    /// registry read), so its first join grant has nothing left to decide. A meeting
    /// scheduled for later, or created while no controller can take one, is created
    /// unassigned: its first grant chooses, with the registry of that moment.
    pub async fn create_meeting_assigned<R: rand::Rng + Send>(
        &self,
        new: &NewMeeting,
        region: &Region,
        liveness: &Liveness,
        rng: &mut R,
    ) -> Result<Meeting, MeetingsError> {
        let chosen = if new.scheduled_start_time.is_none() {
            self.choose_controller(region, liveness, rng).await?
        } else {
            None
        };
        let assigned = chosen.map(|c| (c, region.clone()));
        let meeting = self
            .insert_meeting(new, assigned.as_ref(), || {
                MeetingCode::generate(&mut rand::rng())
            })
            .await?;
        if let Some((controller, region)) = &assigned {
            self.counted_assignment(region, controller).await?;
            tracing::info!(meeting = %meeting.meeting_id, %region, %controller,
                "meeting controller assigned at creation");
        }
        Ok(meeting)
    }

    async fn insert_meeting(
        &self,
        new: &NewMeeting,
        assigned: Option<&(ControllerId, Region)>,
        mut next_code: impl FnMut() -> MeetingCode,
    ) -> Result<Meeting, MeetingsError> {
        let actor_type = if new.created_by.is_some() {
            ActorType::User
        } else {
            ActorType::System
        };
        for attempt in 1..=CODE_ATTEMPTS {
            let code = next_code();
            let s = &new.settings;
            let row: Option<MeetingRow> = sqlx::query_as(schema::INSERT_MEETING)
                .bind(new.created_by.map(|u| u.as_uuid()))
                .bind(new.display_name.as_str())
                .bind(code.as_str())
                .bind(s.max_participants)
                .bind(s.enable_e2e_encryption)
                .bind(s.require_auth)
                .bind(s.allow_recording)
                .bind(s.waiting_room_enabled)
                .bind(new.scheduled_start_time)
                .bind(synchronous_commit(new))
                .bind(audit::MEETING_CREATED)
                .bind(actor_type.as_str())
                .bind(audit::TARGET_MEETING)
                .bind(audit::CREATE)
                .bind(AuditResult::Success.as_str())
                .bind(assigned.map(|(c, _)| c.as_str()))
                .bind(assigned.map(|(_, r)| r.as_str()))
                .fetch_optional(self.pg.pool())
                .await?;
            match row {
                Some(row) => {
                    let meeting = Meeting::try_from(row)?;
                    tracing::info!(meeting = %meeting.meeting_id, code = %meeting.meeting_code, "meeting created");
                    self.known_codes.remember(&meeting);
                    return Ok(meeting);
                }
                None => {
                    tracing::warn!(attempt, "meeting code already taken; drawing another");
                }
            }
        }
        Err(MeetingsError::CodesExhausted(CODE_ATTEMPTS))
    }

    /// The status and assigned controller of each of `ids` that exists, in one round
    /// trip whatever their number (a meeting controller's sweep of the meetings it
    /// hosts).
    pub async fn meeting_statuses(
        &self,
        ids: &[MeetingId],
    ) -> Result<HashMap<MeetingId, HostedStatus>, MeetingsError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let uuids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows: Vec<(uuid::Uuid, String, Option<String>, bool)> =
            sqlx::query_as(schema::SELECT_MEETING_STATUSES)
                .bind(uuids)
                .fetch_all(self.pg.pool())
                .await?;
        rows.into_iter()
            .map(|(id, status, controller, require_auth)| {
                Ok((
                    MeetingId::from_uuid(id),
                    HostedStatus {
                        status: MeetingStatus::parse(&status).map_err(corrupt)?,
                        controller: controller
                            .as_deref()
                            .map(ControllerId::parse)
                            .transpose()
                            .map_err(corrupt)?,
                        require_auth,
                    },
                ))
            })
            .collect()
    }

    /// The meeting `id`; `NotFound` when there is none.
    pub async fn meeting(&self, id: MeetingId) -> Result<Meeting, MeetingsError> {
        let row: MeetingRow = sqlx::query_as(schema::SELECT_MEETING)
            .bind(id.as_uuid())
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| StorageError::not_found(format!("meeting {id}")))?;
        Ok(Meeting::try_from(row)?)
    }

    /// The meeting with `code`; `NotFound` when there is none.
    pub async fn meeting_by_code(&self, code: &MeetingCode) -> Result<Meeting, MeetingsError> {
        let row: MeetingRow = sqlx::query_as(schema::SELECT_MEETING_BY_CODE)
            .bind(code.as_str())
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| StorageError::not_found(format!("meeting code {code}")))?;
        let meeting = Meeting::try_from(row)?;
        self.known_codes.remember(&meeting);
        Ok(meeting)
    }

    /// The meetings not ended that the account linked to `provider`'s user
    /// `provider_user_id` created, newest first, at most `limit` (none when no account is
    /// linked to that user: nothing is made). One query.
    pub async fn open_meetings_of_provider_user(
        &self,
        provider: &str,
        provider_user_id: &str,
        limit: u16,
    ) -> Result<Vec<Meeting>, MeetingsError> {
        self.meetings_of_provider_user(
            schema::SELECT_OPEN_MEETINGS_OF_PROVIDER_USER,
            provider,
            provider_user_id,
            limit,
        )
        .await
    }

    /// The ended meetings created by the account linked to `provider_user_id` at
    /// `provider` that have a ready recording, the last ended first, at most `limit`.
    pub async fn ended_recorded_meetings_of_provider_user(
        &self,
        provider: &str,
        provider_user_id: &str,
        limit: u16,
    ) -> Result<Vec<Meeting>, MeetingsError> {
        self.meetings_of_provider_user(
            schema::SELECT_ENDED_RECORDED_MEETINGS_OF_PROVIDER_USER,
            provider,
            provider_user_id,
            limit,
        )
        .await
    }

    /// The meetings `sql` selects for the account linked to `provider_user_id` at
    /// `provider`, at most `limit` (`$1` provider, `$2` its user id, `$3` the limit).
    async fn meetings_of_provider_user(
        &self,
        sql: &'static str,
        provider: &str,
        provider_user_id: &str,
        limit: u16,
    ) -> Result<Vec<Meeting>, MeetingsError> {
        let rows: Vec<MeetingRow> = sqlx::query_as(sql)
            .bind(provider)
            .bind(provider_user_id)
            .bind(i64::from(limit))
            .fetch_all(self.pg.pool())
            .await?;
        rows.into_iter()
            .map(|row| Ok(Meeting::try_from(row)?))
            .collect()
    }

    /// The meeting `key` names; `NotFound` when there is none.
    pub async fn meeting_by_key(&self, key: &MeetingKey) -> Result<Meeting, MeetingsError> {
        match key {
            MeetingKey::Id(id) => self.meeting(*id).await,
            MeetingKey::Code(code) => self.meeting_by_code(code).await,
        }
    }

    /// The meeting `id` and, in the same round trip, the display name of `user` (when
    /// given, and an active account: `None` otherwise). `NotFound` when there is no
    /// such meeting. What a join grant needs to know, read once.
    pub async fn meeting_with_user_name(
        &self,
        id: MeetingId,
        user: Option<UserId>,
    ) -> Result<(Meeting, Option<DisplayName>), MeetingsError> {
        let row: MeetingWithUserNameRow = sqlx::query_as(schema::SELECT_MEETING_WITH_USER_NAME)
            .bind(id.as_uuid())
            .bind(user.map(|u| u.as_uuid()))
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| StorageError::not_found(format!("meeting {id}")))?;
        with_user_name(row)
    }

    /// [`Repo::meeting_with_user_name`] for the meeting `key` names.
    pub async fn meeting_by_key_with_user_name(
        &self,
        key: &MeetingKey,
        user: Option<UserId>,
    ) -> Result<(Meeting, Option<DisplayName>), MeetingsError> {
        match key {
            MeetingKey::Id(id) => self.meeting_with_user_name(*id, user).await,
            MeetingKey::Code(code) => self.meeting_by_code_with_user_name(code, user).await,
        }
    }

    /// [`Repo::meeting_with_user_name`] for the meeting with `code`.
    pub async fn meeting_by_code_with_user_name(
        &self,
        code: &MeetingCode,
        user: Option<UserId>,
    ) -> Result<(Meeting, Option<DisplayName>), MeetingsError> {
        let row: MeetingWithUserNameRow =
            sqlx::query_as(schema::SELECT_MEETING_BY_CODE_WITH_USER_NAME)
                .bind(code.as_str())
                .bind(user.map(|u| u.as_uuid()))
                .fetch_optional(self.pg.pool())
                .await?
                .ok_or_else(|| StorageError::not_found(format!("meeting code {code}")))?;
        let read = with_user_name(row)?;
        self.known_codes.remember(&read.0);
        Ok(read)
    }

    /// Changes the name and settings of `current` (as read) to `display_name` and
    /// `settings`, by `actor`: one `UPDATE` guarded by the `updated_at` read (a
    /// compare-and-set) with its `meeting_settings_changed` audit row (the changed
    /// fields, old and new) in the same transaction. `None`, and nothing written, when
    /// the meeting has ended or changed since it was read: read it again and decide
    /// anew. A change of `enable_e2e_encryption` is refused with
    /// [`MeetingsError::MeetingInProgress`], nothing written, while anybody's participant
    /// row has not left (checked by the same `UPDATE`, so no join recorded before it
    /// slips through). A new name also goes to `meeting:{meeting_id}` while that hash exists (a
    /// running meeting).
    pub async fn update_meeting_settings(
        &self,
        current: &Meeting,
        actor: UserId,
        display_name: &DisplayName,
        settings: &MeetingSettings,
    ) -> Result<Option<Meeting>, MeetingsError> {
        let changes = settings_changes(current, display_name, settings);
        let mut tx = self.pg.pool().begin().await?;
        let row: Option<MeetingRow> = sqlx::query_as(schema::UPDATE_MEETING_SETTINGS)
            .bind(current.meeting_id.as_uuid())
            .bind(display_name.as_str())
            .bind(settings.max_participants)
            .bind(settings.enable_e2e_encryption)
            .bind(settings.require_auth)
            .bind(settings.allow_recording)
            .bind(settings.waiting_room_enabled)
            .bind(current.updated_at)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            let in_progress = settings.enable_e2e_encryption
                != current.settings.enable_e2e_encryption
                && sqlx::query_scalar::<_, bool>(schema::ANYONE_IN_MEETING)
                    .bind(current.meeting_id.as_uuid())
                    .fetch_one(&mut *tx)
                    .await?;
            tx.rollback().await?;
            if in_progress {
                return Err(MeetingsError::MeetingInProgress(current.meeting_id));
            }
            return Ok(None);
        };
        let updated = Meeting::try_from(row)?;
        let entry = lifecycle_entry(
            audit::MEETING_SETTINGS_CHANGED,
            audit::UPDATE,
            updated.meeting_id,
            Some(actor),
            serde_json::json!({ "changes": changes }),
        );
        audit::append(&mut *tx, &entry).await?;
        tx.commit().await?;
        if current.display_name != updated.display_name {
            let key = schema::meeting_key(updated.meeting_id);
            let mut writes = Writes::new();
            writes.hset(&key, meeting_fields::DISPLAY_NAME, &updated.display_name);
            self.redis
                .apply_when(&[Condition::exists(&key)], &writes)
                .await?;
        }
        tracing::info!(meeting = %updated.meeting_id, user = %actor, "meeting settings changed");
        Ok(Some(updated))
    }

    /// [`Repo::end_meeting`] by a user (its audit row names them as the actor, not the
    /// system).
    pub async fn end_meeting_by(
        &self,
        meeting: MeetingId,
        actor: UserId,
    ) -> Result<DateTime<Utc>, MeetingsError> {
        self.end_meeting_as(meeting, Some(actor)).await
    }

    /// Data Flow Example 2, a meeting ends. In one transaction: `status = 'ended'`,
    /// `ended_at = NOW()` in `meetings`, every participant still in it gets `left_at` and
    /// `meeting_ended`, and a `meeting_ended` audit row (actor: the system). Then, in
    /// Redis, each participant still in `meeting:{id}:participants` departs as on a leave
    /// (its session goes, its streams get their 1-hour TTL, the streams it watched count
    /// it down), one atomic step each; and last, in one `MULTI`/`EXEC`,
    /// `status` `ended` on `meeting:{id}` and the 24-hour TTL on it and on the set (which,
    /// emptied, is gone unless a join raced the end; the presence job then removes that
    /// one). Ending an ended meeting changes nothing in PostgreSQL and repeats the Redis
    /// steps, each safe to repeat (so a crash between them is repaired by calling it
    /// again). Returns `ended_at`.
    pub async fn end_meeting(&self, meeting: MeetingId) -> Result<DateTime<Utc>, MeetingsError> {
        self.end_meeting_as(meeting, None).await
    }

    /// [`Repo::end_meeting`], the audit row naming `actor` (`None`: the system).
    async fn end_meeting_as(
        &self,
        meeting: MeetingId,
        actor: Option<UserId>,
    ) -> Result<DateTime<Utc>, MeetingsError> {
        let mut tx = self.pg.pool().begin().await?;
        let ended: Option<DateTime<Utc>> = sqlx::query_scalar(schema::END_MEETING)
            .bind(meeting.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        let ended_at = match ended {
            Some(at) => {
                let closed = sqlx::query(schema::CLOSE_SESSIONS)
                    .bind(meeting.as_uuid())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let entry = lifecycle_entry(
                    audit::MEETING_ENDED,
                    audit::END,
                    meeting,
                    actor,
                    serde_json::json!({ "participants_still_in": closed }),
                );
                audit::append(&mut *tx, &entry).await?;
                tx.commit().await?;
                at
            }
            None => {
                tx.rollback().await?;
                let existing = self.meeting(meeting).await?;
                existing.ended_at.ok_or_else(|| {
                    StorageError::not_found(format!("the end of meeting {meeting}"))
                })?
            }
        };
        let set_key = schema::meeting_participants_key(meeting);
        let members: Vec<String> = {
            let mut conn = self.redis.conn();
            redis::cmd("SMEMBERS")
                .arg(&set_key)
                .query_async(&mut conn)
                .await?
        };
        for member in &members {
            match ParticipantId::parse(member) {
                Ok(participant) => {
                    self.depart(meeting, participant).await?;
                }
                Err(error) => {
                    tracing::warn!(%meeting, member, %error, "participant set holds a member that is not a participant id");
                }
            }
        }
        let meeting_key = schema::meeting_key(meeting);
        let mut writes = Writes::new();
        writes
            .hset(
                &meeting_key,
                meeting_fields::STATUS,
                MeetingStatus::Ended.as_str(),
            )
            .expire(&meeting_key, schema::MEETING_TTL_AFTER_END.as_secs())
            .expire(&set_key, schema::MEETING_TTL_AFTER_END.as_secs());
        self.redis.apply(&writes).await?;
        tracing::info!(%meeting, departed = members.len(), "meeting ended");
        Ok(ended_at)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn known_codes_are_forgotten_all_at_once_when_full_and_a_code_seen_again_forgets_nothing() {
        let known = KnownCodes::default();
        let meeting = || MeetingId::from_uuid(uuid::Uuid::new_v4());
        let mut rng = rand::rng();
        let mut first = None;
        while known.lock().len() < KNOWN_CODES {
            let code = MeetingCode::generate(&mut rng);
            let id = meeting();
            known.remember_code(&code, id);
            first.get_or_insert((code, id));
        }
        let (first, first_id) = first.unwrap();
        assert_eq!(known.get(&first), Some(first_id));

        // A code already known, now naming another meeting: replaced, nothing forgotten.
        let moved = meeting();
        known.remember_code(&first, moved);
        assert_eq!(known.lock().len(), KNOWN_CODES);
        assert_eq!(known.get(&first), Some(moved));

        // One code more: all the others are forgotten.
        let mut new = MeetingCode::generate(&mut rng);
        while known.get(&new).is_some() {
            new = MeetingCode::generate(&mut rng);
        }
        let new_id = meeting();
        known.remember_code(&new, new_id);
        assert_eq!(known.lock().len(), 1);
        assert_eq!(known.get(&new), Some(new_id));
        assert_eq!(known.get(&first), None);
    }

    #[test]
    fn only_a_meeting_scheduled_for_later_waits_for_the_disk() {
        let mut new = NewMeeting {
            display_name: DisplayName::parse("One-shot").unwrap(),
            created_by: None,
            settings: MeetingSettings::default(),
            scheduled_start_time: None,
        };
        assert_eq!(synchronous_commit(&new), "off");
        new.scheduled_start_time = Some(DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(synchronous_commit(&new), "on");
    }
}
