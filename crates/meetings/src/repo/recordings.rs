//! Recordings: the `recordings` rows of a meeting's recordings and their status
//! (`recording` -> `processing` -> `ready` | `failed`), and the two reads the recorder
//! needs elsewhere (the meeting's media handler, a signed-in visitor's account).
//!
//! A start is one transaction that locks the meeting's row, checks the meeting still
//! allows a recording (not ended, `allow_recording`, not end-to-end encrypted, none
//! running) and inserts the row, so two starts of one meeting never both succeed.
//! Status changes are compare-and-set on the status they leave.

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use store::StorageError;

use super::{Repo, corrupt};
use crate::MeetingsError;
use crate::domain::{HandlerId, MeetingId, MeetingStatus, RecordingId, RecordingStatus, UserId};
use crate::schema::{self, RecordingRow, meeting_fields};

/// A row of `recordings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub recording_id: RecordingId,
    pub meeting_id: MeetingId,
    pub started_by_user_id: Option<UserId>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i32>,
    pub file_size_bytes: Option<i64>,
    /// The object's path in the recordings store.
    pub storage_path: String,
    /// Which store holds it (`local`, or the bucket / container of an object store).
    pub storage_bucket: String,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// `WIDTHxHEIGHT` of the first video track's first key frame.
    pub resolution: Option<String>,
    pub status: RecordingStatus,
    pub error_message: Option<String>,
    pub is_public: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<RecordingRow> for Recording {
    type Error = StorageError;

    fn try_from(row: RecordingRow) -> Result<Recording, StorageError> {
        Ok(Recording {
            recording_id: RecordingId::from_uuid(row.recording_id),
            meeting_id: MeetingId::from_uuid(row.meeting_id),
            started_by_user_id: row.started_by_user_id.map(UserId::from_uuid),
            started_at: row.started_at,
            ended_at: row.ended_at,
            duration_seconds: row.duration_seconds,
            file_size_bytes: row.file_size_bytes,
            storage_path: row.storage_path,
            storage_bucket: row.storage_bucket,
            video_codec: row.video_codec,
            audio_codec: row.audio_codec,
            resolution: row.resolution,
            status: RecordingStatus::parse(&row.status).map_err(corrupt)?,
            error_message: row.error_message,
            is_public: row.is_public,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A recording about to start.
#[derive(Debug, Clone)]
pub struct NewRecording {
    pub recording_id: RecordingId,
    pub meeting_id: MeetingId,
    pub started_by: Option<UserId>,
    pub started_at: DateTime<Utc>,
    pub storage_path: String,
    pub storage_bucket: String,
}

/// Why a meeting cannot be recorded now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingRefusal {
    /// No such meeting.
    UnknownMeeting,
    /// The meeting has ended.
    Ended,
    /// Its `allow_recording` is off.
    NotAllowed,
    /// It is end-to-end encrypted: the server never sees its media.
    EndToEndEncrypted,
    /// One of its recordings is `recording` already.
    AlreadyRunning,
}

/// What a finished recording measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRecording {
    pub duration_seconds: i32,
    pub file_size_bytes: i64,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub resolution: Option<String>,
    /// What the ready row's `error_message` says: why it stopped early, or that a
    /// stopped server left it.
    pub note: Option<String>,
}

fn recording(row: RecordingRow) -> Result<Recording, MeetingsError> {
    Ok(Recording::try_from(row)?)
}

impl Repo {
    /// Inserts `new` as `recording`, unless the meeting refuses (see
    /// [`RecordingRefusal`]); one transaction under the meeting's row lock.
    pub async fn start_recording(
        &self,
        new: &NewRecording,
    ) -> Result<Result<Recording, RecordingRefusal>, MeetingsError> {
        let mut tx = self.pg.pool().begin().await?;
        let gate: Option<schema::RecordingGateRow> =
            sqlx::query_as(schema::LOCK_MEETING_FOR_RECORDING)
                .bind(new.meeting_id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        let refusal = match gate {
            None => Some(RecordingRefusal::UnknownMeeting),
            Some(gate) if gate.status == MeetingStatus::Ended.as_str() => {
                Some(RecordingRefusal::Ended)
            }
            Some(gate) if gate.enable_e2e_encryption => Some(RecordingRefusal::EndToEndEncrypted),
            Some(gate) if !gate.allow_recording => Some(RecordingRefusal::NotAllowed),
            Some(gate) if gate.running => Some(RecordingRefusal::AlreadyRunning),
            Some(_) => None,
        };
        if let Some(refusal) = refusal {
            tx.rollback().await?;
            return Ok(Err(refusal));
        }
        let row: RecordingRow = sqlx::query_as(schema::INSERT_RECORDING)
            .bind(new.recording_id.as_uuid())
            .bind(new.meeting_id.as_uuid())
            .bind(new.started_by.map(|u| u.as_uuid()))
            .bind(new.started_at)
            .bind(&new.storage_path)
            .bind(&new.storage_bucket)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(recording(row)?))
    }

    /// A recording; `NotFound` for an unknown one.
    pub async fn recording(&self, id: RecordingId) -> Result<Recording, MeetingsError> {
        let row: RecordingRow = sqlx::query_as(schema::SELECT_RECORDING)
            .bind(id.as_uuid())
            .fetch_optional(self.pg.pool())
            .await?
            .ok_or_else(|| StorageError::not_found(format!("recording {id}")))?;
        recording(row)
    }

    /// A meeting's recordings, oldest first.
    pub async fn meeting_recordings(
        &self,
        meeting: MeetingId,
    ) -> Result<Vec<Recording>, MeetingsError> {
        let rows: Vec<RecordingRow> = sqlx::query_as(schema::SELECT_MEETING_RECORDINGS)
            .bind(meeting.as_uuid())
            .fetch_all(self.pg.pool())
            .await?;
        rows.into_iter().map(recording).collect()
    }

    /// `recording` -> `processing`, ended at `at`; `None` when it was not `recording`.
    pub async fn stop_recording(
        &self,
        id: RecordingId,
        at: DateTime<Utc>,
    ) -> Result<Option<Recording>, MeetingsError> {
        let row: Option<RecordingRow> = sqlx::query_as(schema::STOP_RECORDING)
            .bind(id.as_uuid())
            .bind(at)
            .fetch_optional(self.pg.pool())
            .await?;
        row.map(recording).transpose()
    }

    /// `processing` -> `ready` with what was measured; `None` when it was not
    /// `processing`.
    pub async fn finish_recording(
        &self,
        id: RecordingId,
        done: &FinishedRecording,
    ) -> Result<Option<Recording>, MeetingsError> {
        let row: Option<RecordingRow> = sqlx::query_as(schema::FINISH_RECORDING)
            .bind(id.as_uuid())
            .bind(done.duration_seconds)
            .bind(done.file_size_bytes)
            .bind(&done.video_codec)
            .bind(&done.audio_codec)
            .bind(&done.resolution)
            .bind(&done.note)
            .fetch_optional(self.pg.pool())
            .await?;
        row.map(recording).transpose()
    }

    /// `recording` or `processing` -> `failed` with `message` (ended at `at` unless it
    /// already had an end); `None` when it had already finished.
    pub async fn fail_recording(
        &self,
        id: RecordingId,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Recording>, MeetingsError> {
        let row: Option<RecordingRow> = sqlx::query_as(schema::FAIL_RECORDING)
            .bind(id.as_uuid())
            .bind(message)
            .bind(at)
            .fetch_optional(self.pg.pool())
            .await?;
        row.map(recording).transpose()
    }

    /// Takes up a recording a stopped server left (see
    /// [`crate::recording::Recorder::recover`]): `recording`, `processing`, or `failed`
    /// with `stale_message`, -> `processing`, its `error_message` cleared and its end
    /// the last sign of life unless it had one; `None` when it had finished otherwise.
    pub async fn resume_recording(
        &self,
        id: RecordingId,
        stale_message: &str,
    ) -> Result<Option<Recording>, MeetingsError> {
        let row: Option<RecordingRow> = sqlx::query_as(schema::RESUME_RECORDING)
            .bind(id.as_uuid())
            .bind(stale_message)
            .fetch_optional(self.pg.pool())
            .await?;
        row.map(recording).transpose()
    }

    /// The recording replica's sign of life (see [`Repo::fail_stale_recordings`]);
    /// `false` once the recording has finished.
    pub async fn touch_recording(&self, id: RecordingId) -> Result<bool, MeetingsError> {
        let touched: Option<uuid::Uuid> = sqlx::query_scalar(schema::TOUCH_RECORDING)
            .bind(id.as_uuid())
            .fetch_optional(self.pg.pool())
            .await?;
        Ok(touched.is_some())
    }

    /// Fails `meeting`'s recordings still `recording` or `processing` whose replica
    /// gave no sign of life for `stale_after` (it stopped before finishing them), with
    /// `message`; returns them.
    pub async fn fail_stale_recordings(
        &self,
        meeting: MeetingId,
        stale_after: std::time::Duration,
        message: &str,
    ) -> Result<Vec<RecordingId>, MeetingsError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(schema::FAIL_STALE_RECORDINGS)
            .bind(meeting.as_uuid())
            .bind(stale_after.as_secs_f64())
            .bind(message)
            .fetch_all(self.pg.pool())
            .await?;
        Ok(ids.into_iter().map(RecordingId::from_uuid).collect())
    }

    /// The media handler assigned to a running meeting (`media_handler_id` of
    /// `meeting:{meeting_id}`); `None` before anybody was granted media.
    pub async fn meeting_media_handler(
        &self,
        meeting: MeetingId,
    ) -> Result<Option<HandlerId>, MeetingsError> {
        let mut conn = self.redis.conn();
        let id: Option<String> = conn
            .hget(
                schema::meeting_key(meeting),
                meeting_fields::MEDIA_HANDLER_ID,
            )
            .await?;
        id.filter(|id| !id.is_empty())
            .map(|id| HandlerId::parse(&id).map_err(|e| MeetingsError::from(corrupt(e))))
            .transpose()
    }

    /// The meetings account linked to `provider_user_id` at `provider`, if any (never
    /// made here).
    pub async fn linked_account(
        &self,
        provider: &str,
        provider_user_id: &str,
    ) -> Result<Option<UserId>, MeetingsError> {
        let id: Option<uuid::Uuid> = sqlx::query_scalar(schema::SELECT_OAUTH_USER)
            .bind(provider)
            .bind(provider_user_id)
            .fetch_optional(self.pg.pool())
            .await?;
        Ok(id.map(UserId::from_uuid))
    }
}
