//! The recordings routes ([`crate::recording`]): start, stop and list a meeting's
//! recordings (its creator, with the API's bearer credentials), download one with a
//! signed link, and the browser client's Record / Stop control (on Tavern's web
//! session, CSRF-checked by the kit).
//!
//! | route | who | answer |
//! |---|---|---|
//! | `POST /api/v1/meetings/{id}/recordings` | `meetings:manage`, the creator | 201 the recording (`recording`); 403 `not_creator`; 404; 409 `recording_not_allowed`, `e2e_encrypted`, `recording_running`, `meeting_ended`, `no_media` (nobody is in the call yet); 503 `recordings_not_configured`, `no_media_handler` (people are in the call but no media handler can take the meeting; try again shortly), `media_unreachable` |
//! | `POST /api/v1/meetings/{id}/recordings/{recording_id}/stop` | `meetings:manage`, the creator | 200 the recording (`processing`, or as it is when it had stopped) |
//! | `GET /api/v1/meetings/{id}/recordings` | `meetings:read`, the creator | 200 `{recordings: [...]}`, oldest first, a ready one with `download_url` |
//! | `GET /api/v1/recordings/{recording_id}/download?expires&signature` | the signed link | 200 the WebM (`video/webm`), streamed; 403 a bad or expired signature; 404; 409 `recording_not_ready` |
//! | `GET /meet/{code}/recording` | a signed-in Tavern web session | 200 `{host, offered, reason, recording}` for the page |
//! | `POST /meet/{code}/recording`, `POST /meet/{code}/recording/stop` | a signed-in Tavern web session, with `X-CSRF-Token`; the meeting's creator | as the API's start and stop |
//!
//! A meeting is named in a path by its id or its code. Refusals are `{"error", "code"}`.

use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use web::access::{Access, Caller, Routes};

use super::{ApiError, ErrorBody};
use crate::Repo;
use crate::auth::{Auth, Authenticated, DISCORD, Scope};
use crate::domain::{MeetingCode, MeetingId, RecordingId, RecordingStatus, UserId};
use crate::recording::{self, DOWNLOAD_PATH, Recorder, RecordingError, refusal_message};
use crate::repo::{Meeting, Recording, RecordingRefusal};

/// `POST`: start; `GET`: list.
pub const RECORDINGS_PATH: &str = "/api/v1/meetings/{id}/recordings";
/// `POST`: stop.
pub const STOP_PATH: &str = "/api/v1/meetings/{id}/recordings/{recording_id}/stop";
/// The page's control: `GET` its state, `POST` start.
pub const PAGE_RECORDING_PATH: &str = "/meet/{code}/recording";
/// The page's control: `POST` stop.
pub const PAGE_STOP_PATH: &str = "/meet/{code}/recording/stop";
/// Every visitor's page: `GET` whether the meeting is being recorded now.
pub const PAGE_RECORDING_NOW_PATH: &str = "/meet/{code}/recording/now";

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct RecordingsState {
    pub auth: Auth,
    pub repo: Repo,
    pub recorder: Recorder,
}

impl FromRef<RecordingsState> for Auth {
    fn from_ref(state: &RecordingsState) -> Auth {
        state.auth.clone()
    }
}

/// The recordings routes over `recorder`.
pub fn routes(ctx: &feature::Context, auth: Auth, recorder: Recorder) -> Routes {
    Routes::new(&ctx.sessions)
        .post(
            RECORDINGS_PATH,
            Access::bearer("meetings:manage"),
            start_recording,
        )
        .get(
            RECORDINGS_PATH,
            Access::bearer("meetings:read"),
            list_recordings,
        )
        .post(STOP_PATH, Access::bearer("meetings:manage"), stop_recording)
        .get(DOWNLOAD_PATH, Access::Public, download_recording)
        .get(PAGE_RECORDING_PATH, Access::User, page_state)
        .post(PAGE_RECORDING_PATH, Access::User, page_start)
        .post(PAGE_STOP_PATH, Access::User, page_stop)
        .get(PAGE_RECORDING_NOW_PATH, Access::Public, page_now)
        .with_state(RecordingsState {
            auth,
            repo: recorder.repo().clone(),
            recorder,
        })
}

// ---------------------------------------------------------------------------------------
// Bodies

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatusJson {
    /// Frames are being recorded.
    Recording,
    /// Stopped; the file is being written.
    Processing,
    /// The file is stored: `download_url` fetches it.
    Ready,
    /// No file: `error_message` says why.
    Failed,
}

impl From<RecordingStatus> for RecordingStatusJson {
    fn from(status: RecordingStatus) -> RecordingStatusJson {
        match status {
            RecordingStatus::Recording => RecordingStatusJson::Recording,
            RecordingStatus::Processing => RecordingStatusJson::Processing,
            RecordingStatus::Ready => RecordingStatusJson::Ready,
            RecordingStatus::Failed => RecordingStatusJson::Failed,
        }
    }
}

/// A recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordingJson {
    #[schema(format = Uuid)]
    pub recording_id: String,
    #[schema(format = Uuid)]
    pub meeting_id: String,
    pub status: RecordingStatusJson,
    #[schema(format = Uuid)]
    pub started_by_user_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds, once ready.
    pub duration_seconds: Option<i32>,
    /// Bytes of the WebM file, once ready.
    pub file_size_bytes: Option<i64>,
    /// `VP8`, `VP9` (comma-separated when both), once ready.
    pub video_codec: Option<String>,
    /// `Opus`, once ready.
    pub audio_codec: Option<String>,
    /// `WIDTHxHEIGHT` of the first video track.
    #[schema(example = "1280x720")]
    pub resolution: Option<String>,
    /// Why it failed; on a ready one, why it stopped early (its meeting no longer
    /// allowed recording, the server's disk was full) or that the server making it
    /// stopped and finished it when it started again.
    pub error_message: Option<String>,
    /// A ready recording's signed download link (valid one hour by default).
    pub download_url: Option<String>,
    /// While recording: the frames recorded so far (from the server making it; `null`
    /// from another one).
    pub frames_recorded: Option<u64>,
    pub created_at: DateTime<Utc>,
}

impl RecordingJson {
    fn new(recording: &Recording, recorder: &Recorder) -> RecordingJson {
        RecordingJson {
            recording_id: recording.recording_id.to_string(),
            meeting_id: recording.meeting_id.to_string(),
            status: recording.status.into(),
            started_by_user_id: recording.started_by_user_id.map(|u| u.to_string()),
            started_at: recording.started_at,
            ended_at: recording.ended_at,
            duration_seconds: recording.duration_seconds,
            file_size_bytes: recording.file_size_bytes,
            video_codec: recording.video_codec.clone(),
            audio_codec: recording.audio_codec.clone(),
            resolution: recording.resolution.clone(),
            error_message: recording.error_message.clone(),
            download_url: (recording.status == RecordingStatus::Ready)
                .then(|| recorder.download_url(recording.recording_id)),
            frames_recorded: (recording.status == RecordingStatus::Recording)
                .then(|| recorder.frames_recorded(recording.recording_id))
                .flatten(),
            created_at: recording.created_at,
        }
    }
}

/// `GET /api/v1/meetings/{id}/recordings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordingList {
    pub recordings: Vec<RecordingJson>,
}

/// The query of a download link.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Unix seconds after which the link is refused.
    pub expires: Option<i64>,
    /// base64url HMAC-SHA256 of the recording id and `expires`.
    pub signature: Option<String>,
}

/// What every visitor's page is told (`GET /meet/{code}/recording/now`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingNow {
    /// Whether a recording of the meeting is running.
    pub recording: bool,
}

/// What the page's Record / Stop control shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagePanel {
    /// Whether the visitor is the meeting's host (its creator).
    pub host: bool,
    /// Whether the meeting may be recorded.
    pub offered: bool,
    /// Why not, when it may not.
    pub reason: Option<String>,
    /// The recording running now, if any.
    pub recording: Option<RecordingJson>,
    /// For the host: the meeting's recordings, newest first (at most
    /// [`PAGE_RECORDINGS`]), the ready ones with their download links.
    pub recordings: Vec<RecordingJson>,
}

/// How many of a meeting's recordings its page lists.
pub const PAGE_RECORDINGS: usize = 10;

// ---------------------------------------------------------------------------------------
// Errors

fn recording_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "recording_not_found",
        "this meeting has no recording with this id",
    )
}

fn refused(refusal: RecordingRefusal) -> ApiError {
    let code = match refusal {
        RecordingRefusal::UnknownMeeting => return ApiError::meeting_not_found(),
        RecordingRefusal::Ended => "meeting_ended",
        RecordingRefusal::NotAllowed => "recording_not_allowed",
        RecordingRefusal::EndToEndEncrypted => "e2e_encrypted",
        RecordingRefusal::AlreadyRunning => "recording_running",
    };
    ApiError::new(StatusCode::CONFLICT, code, refusal_message(refusal))
}

/// Refused: a route for the signed-in users of the web pages, called without a session.
fn session_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "session_required",
        "this route is for signed-in users of Tavern's web pages",
    )
}

impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> ApiError {
        let message = e.to_string();
        match e {
            RecordingError::Refused(refusal) => refused(refusal),
            RecordingError::NotConfigured => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "recordings_not_configured",
                message,
            ),
            // The meeting's state, not a fault of the server's: nobody to record yet.
            RecordingError::NoMedia => ApiError::new(StatusCode::CONFLICT, "no_media", message),
            // People are in the call but no media handler took the meeting: the server's
            // capacity, logged here and nowhere else.
            RecordingError::NoMediaHandler {
                meeting,
                participants,
            } => {
                tracing::warn!(%meeting, participants,
                    "a recording could not start: the meeting has participants but no media handler could take it");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_media_handler", message)
            }
            RecordingError::HandlerUnknown(_) | RecordingError::Connect(_) => {
                tracing::warn!(error = %message, "a recording could not reach the media handler");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "media_unreachable",
                    message,
                )
            }
            RecordingError::Store(_) | RecordingError::Io(_) => {
                tracing::error!(error = %message, "the recordings store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "recording_storage",
                    "the recordings store failed; see the server's log",
                )
            }
            RecordingError::Meetings(e) => e.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

impl RecordingsState {
    /// The meeting named by `key` (its id or code).
    async fn meeting(&self, key: &str) -> Result<Meeting, ApiError> {
        let found = if let Ok(id) = MeetingId::parse(key) {
            self.repo.meeting(id).await
        } else {
            let code = MeetingCode::parse(key).map_err(|_| ApiError::meeting_not_found())?;
            self.repo.meeting_by_code(&code).await
        };
        found.map_err(|e| ApiError::lookup(e, ApiError::meeting_not_found))
    }

    /// `meeting`'s recording `id` (404 for another meeting's).
    async fn recording_of(&self, meeting: &Meeting, id: &str) -> Result<Recording, ApiError> {
        let id = RecordingId::parse(id).map_err(|_| recording_not_found())?;
        let recording = self
            .repo
            .recording(id)
            .await
            .map_err(|e| ApiError::lookup(e, recording_not_found))?;
        if recording.meeting_id != meeting.meeting_id {
            return Err(recording_not_found());
        }
        Ok(recording)
    }

    fn json(&self, recording: &Recording) -> RecordingJson {
        RecordingJson::new(recording, &self.recorder)
    }

    /// The meetings account of a signed-in visitor (never made here: one that never
    /// asked for a grant has none, and hosts nothing).
    async fn visitor(&self, caller: &Caller) -> Result<Option<UserId>, ApiError> {
        let Some(user) = caller.user() else {
            return Err(session_required());
        };
        Ok(self
            .repo
            .linked_account(DISCORD, &user.id.to_string())
            .await?)
    }

    /// The meeting with `code`, which the visitor must host.
    async fn hosted(&self, caller: &Caller, code: &str) -> Result<(Meeting, UserId), ApiError> {
        let Some(user) = caller.user() else {
            return Err(session_required());
        };
        super::hosted_by(&self.repo, user, code).await
    }

    /// The meeting a page's code names (404 for a malformed or unknown one).
    async fn by_code(&self, code: &str) -> Result<Meeting, ApiError> {
        let code = MeetingCode::parse(code).map_err(|_| ApiError::meeting_not_found())?;
        self.repo
            .meeting_by_code(&code)
            .await
            .map_err(|e| ApiError::lookup(e, ApiError::meeting_not_found))
    }

    /// The meeting's recordings, after failing those a stopped server left
    /// ([`Recorder::fail_stale`]; only written when one is unfinished).
    async fn recordings(&self, meeting: &Meeting) -> Result<Vec<Recording>, ApiError> {
        let all = self.repo.meeting_recordings(meeting.meeting_id).await?;
        if !all.iter().any(|r| {
            matches!(
                r.status,
                RecordingStatus::Recording | RecordingStatus::Processing
            )
        }) {
            return Ok(all);
        }
        self.recorder.fail_stale(meeting.meeting_id).await?;
        Ok(self.repo.meeting_recordings(meeting.meeting_id).await?)
    }

    /// The meeting's recording running now (one a stopped server left is not).
    async fn running(&self, meeting: &Meeting) -> Result<Option<Recording>, ApiError> {
        Ok(self
            .recordings(meeting)
            .await?
            .into_iter()
            .rfind(|r| r.status == RecordingStatus::Recording))
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

/// Start recording a meeting.
///
/// By its creator, for a meeting with `allow_recording` that is not end-to-end
/// encrypted, has not ended, is not being recorded, and where someone has been granted
/// media. The recorder joins the meeting's media handler like a participant.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{id}/recordings",
    tag = "recordings",
    params(("id" = String, Path, description = "The meeting's id (UUID) or code")),
    security(("bearer" = ["meetings:manage"])),
    responses(
        (status = 201, description = "Recording", body = RecordingJson),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "Lacks `meetings:manage`, or `not_creator`", body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no meeting has this id or code", body = ErrorBody),
        (status = 409, description = "`recording_not_allowed`, `e2e_encrypted`, `recording_running`, `meeting_ended`, or `no_media`: nobody is in the call yet", body = ErrorBody),
        (status = 503, description = "`recordings_not_configured`; `no_media_handler`: people are in the call but no media handler can take the meeting right now (try again shortly); or `media_unreachable`", body = ErrorBody),
    )
)]
pub(super) async fn start_recording(
    State(state): State<RecordingsState>,
    who: Authenticated,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    who.require(Scope::MeetingsManage)?;
    let meeting = state.meeting(&key).await?;
    ApiError::require_creator(&meeting, &who)?;
    let recording = state.recorder.start(&meeting, Some(who.user_id)).await?;
    Ok((StatusCode::CREATED, Json(state.json(&recording))).into_response())
}

/// Stop a recording.
///
/// By the meeting's creator: the recording goes to `processing`, then `ready` (or
/// `failed`). Stopping a stopped one answers it as it is.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{id}/recordings/{recording_id}/stop",
    tag = "recordings",
    params(
        ("id" = String, Path, description = "The meeting's id (UUID) or code"),
        ("recording_id" = String, Path, description = "The recording's id"),
    ),
    security(("bearer" = ["meetings:manage"])),
    responses(
        (status = 200, description = "The recording", body = RecordingJson),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "Lacks `meetings:manage`, or `not_creator`", body = ErrorBody),
        (status = 404, description = "`meeting_not_found` or `recording_not_found`", body = ErrorBody),
    )
)]
pub(super) async fn stop_recording(
    State(state): State<RecordingsState>,
    who: Authenticated,
    Path((key, recording)): Path<(String, String)>,
) -> Result<Json<RecordingJson>, ApiError> {
    who.require(Scope::MeetingsManage)?;
    let meeting = state.meeting(&key).await?;
    ApiError::require_creator(&meeting, &who)?;
    state.recorder.fail_stale(meeting.meeting_id).await?;
    let recording = state.recording_of(&meeting, &recording).await?;
    let recording = state.recorder.stop(recording.recording_id).await?;
    Ok(Json(state.json(&recording)))
}

/// A meeting's recordings.
///
/// For its creator, oldest first; each ready one carries a signed `download_url`.
#[utoipa::path(
    get,
    path = "/api/v1/meetings/{id}/recordings",
    tag = "recordings",
    params(("id" = String, Path, description = "The meeting's id (UUID) or code")),
    security(("bearer" = ["meetings:read"])),
    responses(
        (status = 200, description = "The recordings", body = RecordingList),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "Lacks `meetings:read`, or `not_creator`", body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no meeting has this id or code", body = ErrorBody),
    )
)]
pub(super) async fn list_recordings(
    State(state): State<RecordingsState>,
    who: Authenticated,
    Path(key): Path<String>,
) -> Result<Json<RecordingList>, ApiError> {
    who.require(Scope::MeetingsRead)?;
    let meeting = state.meeting(&key).await?;
    ApiError::require_creator(&meeting, &who)?;
    state.recorder.fail_stale(meeting.meeting_id).await?;
    let recordings = state.repo.meeting_recordings(meeting.meeting_id).await?;
    Ok(Json(RecordingList {
        recordings: recordings.iter().map(|r| state.json(r)).collect(),
    }))
}

/// Download a recording.
///
/// With the signed link of a listing: the WebM file, streamed. The link is the
/// credential; a bad or expired signature is refused.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{recording_id}/download",
    tag = "recordings",
    params(
        ("recording_id" = String, Path, description = "The recording's id"),
        DownloadQuery,
    ),
    responses(
        (status = 200, description = "The WebM file", content_type = "video/webm"),
        (status = 403, description = "`bad_signature`: a bad or expired link", body = ErrorBody),
        (status = 404, description = "`recording_not_found`", body = ErrorBody),
        (status = 409, description = "`recording_not_ready`", body = ErrorBody),
    )
)]
pub(super) async fn download_recording(
    State(state): State<RecordingsState>,
    Path(recording): Path<String>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_signature",
            "this download link is not valid or has expired; list the recordings for a new one",
        )
    };
    let id = RecordingId::parse(&recording).map_err(|_| bad())?;
    let (Some(expires), Some(signature)) = (query.expires, query.signature.as_deref()) else {
        return Err(bad());
    };
    if !state.recorder.verify_link(id, expires, signature) {
        return Err(bad());
    }
    let recording = state
        .repo
        .recording(id)
        .await
        .map_err(|e| ApiError::lookup(e, recording_not_found))?;
    if recording.status != RecordingStatus::Ready {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "recording_not_ready",
            "this recording has no file (yet)",
        ));
    }
    let object = state.recorder.open(&recording).await?;
    let size = object.meta.size;
    let mut response = HttpBody::from_stream(object.into_stream()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/webm"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"recording-{}.webm\"",
        recording.recording_id
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// `GET /meet/{code}/recording`: what the page's control shows.
pub(super) async fn page_state(
    State(state): State<RecordingsState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<PagePanel>, ApiError> {
    let meeting = state.by_code(&code).await?;
    let account = state.visitor(&caller).await?;
    let host = account.is_some() && meeting.created_by_user_id == account;
    let reason = recording::refusal(&meeting).map(|r| refusal_message(r).to_owned());
    let (recording, recordings) = if host {
        let mut all = state.recordings(&meeting).await?;
        let running = all
            .iter()
            .rfind(|r| r.status == RecordingStatus::Recording)
            .map(|r| state.json(r));
        all.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        all.truncate(PAGE_RECORDINGS);
        (running, all.iter().map(|r| state.json(r)).collect())
    } else {
        (None, Vec::new())
    };
    Ok(Json(PagePanel {
        host,
        offered: reason.is_none(),
        reason,
        recording,
        recordings,
    }))
}

/// `GET /meet/{code}/recording/now`, for anyone with the meeting's code (who may join
/// it): whether it is being recorded, so every participant's page says so, guests'
/// too, and a visitor learns it before joining.
pub(super) async fn page_now(
    State(state): State<RecordingsState>,
    Path(code): Path<String>,
) -> Result<Json<RecordingNow>, ApiError> {
    let meeting = state.by_code(&code).await?;
    let recording = state.running(&meeting).await?.is_some();
    Ok(Json(RecordingNow { recording }))
}

/// `POST /meet/{code}/recording`: the host starts a recording from the page.
pub(super) async fn page_start(
    State(state): State<RecordingsState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let (meeting, account) = state.hosted(&caller, &code).await?;
    let recording = state.recorder.start(&meeting, Some(account)).await?;
    Ok((StatusCode::CREATED, Json(state.json(&recording))).into_response())
}

/// `POST /meet/{code}/recording/stop`: the host stops the running recording.
pub(super) async fn page_stop(
    State(state): State<RecordingsState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<RecordingJson>, ApiError> {
    let (meeting, _) = state.hosted(&caller, &code).await?;
    let Some(running) = state.running(&meeting).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_recording",
            "this meeting is not being recorded",
        ));
    };
    let recording = state.recorder.stop(running.recording_id).await?;
    Ok(Json(state.json(&recording)))
}
