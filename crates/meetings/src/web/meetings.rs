//! The global controller's meeting routes: create a meeting, read it (with a join grant
//! for the meeting controller that serves it), a guest's token, settings, the end.
//!
//! A meeting is named in a path by its id (a UUID) or its code, typed as people do
//! (`abc-defg-hjk`, `ABCDEFGHJK`); a path that is neither names no meeting (404). A
//! join grant ([`crate::grant`]) is handed out only for a meeting that has not ended,
//! to a caller holding `meetings:join` whose account is active (its `display_name` is
//! the participant's name), or to a guest, for a meeting without `require_auth`.
//! Reading a meeting costs one query for the meeting and the caller's display name
//! together, then the grant's own steps.
//!
//! Rate limits: creation per user ([`crate::auth::AuthConfig::meetings_created`]);
//! guest tokens per client address ([`crate::auth::AuthConfig::guest_tokens`]; a
//! request that did not come through Tavern's server has no address and is not
//! limited). Meetings are not cached (`cache:meeting:*` is never written), so a change
//! needs no invalidation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base::Secret;
use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use store::Attempt;
use utoipa::ToSchema;

use super::{ApiError, BEARER, Body, ErrorBody, WebState};
use crate::MeetingsError;
use crate::auth::{AuthError, Authenticated, ClientInfo, Scope, discord_display_name, identifier};
use crate::domain::{DisplayName, MeetingCode, MeetingKey, MeetingStatus, RateLimitPart, UserId};
use crate::grant::{self, EarlyToken, GrantError, JoinGrant, Joiner};
use crate::repo::{Meeting, MeetingSettings, NewMeeting};

/// `POST`: create a meeting.
pub const MEETINGS_PATH: &str = "/api/v1/meetings";
/// `GET`: a meeting by id or code, with a join grant.
pub const MEETING_PATH: &str = "/api/v1/meetings/{meeting}";
/// `POST`: a guest's join grant for the meeting with this id or code.
pub const GUEST_TOKEN_PATH: &str = "/api/v1/meetings/{meeting}/guest-token";
/// `POST`: a signed-in Tavern user's join grant for the meeting with this code (the
/// browser client's, on the web session: cookie and `X-CSRF-Token`).
pub const SESSION_GRANT_PATH: &str = "/meet/{code}/grant";
/// `PATCH`: change a meeting's name and settings.
pub const SETTINGS_PATH: &str = "/api/v1/meetings/{id}/settings";
/// `POST`: end a meeting.
pub const END_PATH: &str = "/api/v1/meetings/{id}/end";

/// The largest `max_participants` a meeting may have.
pub const MAX_PARTICIPANTS: i64 = 1000;

/// How long a caller refused for want of a meeting controller should wait (seconds).
const NO_CONTROLLER_RETRY_AFTER: u64 = 5;

// ---------------------------------------------------------------------------------------
// Bodies

/// `POST /api/v1/meetings`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMeetingRequest {
    /// 1 to 255 characters, shown as typed: no control characters, text direction
    /// overrides or invisible formatting characters (a zero width joiner only inside an
    /// emoji).
    #[schema(example = "Friday night: the Sunless Citadel")]
    pub display_name: String,
    /// 1 to 1000; 100 when not given.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000, example = 8)]
    pub max_participants: Option<i64>,
    /// `true` when not given.
    #[serde(default)]
    pub enable_e2e_encryption: Option<bool>,
    /// Whether only signed-in users may join (no guest tokens); `false` when not given.
    #[serde(default)]
    pub require_auth: Option<bool>,
    /// `false` when not given.
    #[serde(default)]
    pub allow_recording: Option<bool>,
    /// `false` when not given.
    #[serde(default)]
    pub waiting_room_enabled: Option<bool>,
    /// When the meeting is meant to start (RFC 3339).
    #[serde(default)]
    #[schema(format = DateTime, example = "2026-12-05T19:30:00Z")]
    pub scheduled_start_time: Option<String>,
}

/// `PATCH /api/v1/meetings/{id}/settings`: the fields to change; those left out stay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettingsRequest {
    /// 1 to 255 characters, shown as typed: no control characters, text direction
    /// overrides or invisible formatting characters (a zero width joiner only inside an
    /// emoji).
    #[serde(default)]
    pub display_name: Option<String>,
    /// 1 to 1000.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_participants: Option<i64>,
    #[serde(default)]
    pub enable_e2e_encryption: Option<bool>,
    #[serde(default)]
    pub require_auth: Option<bool>,
    #[serde(default)]
    pub allow_recording: Option<bool>,
    #[serde(default)]
    pub waiting_room_enabled: Option<bool>,
}

/// `POST /api/v1/meetings/{meeting}/guest-token`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestTokenRequest {
    /// The name the other participants see: 1 to 255 characters, shown as typed: no
    /// control characters, text direction overrides or invisible formatting characters
    /// (a zero width joiner only inside an emoji).
    #[schema(example = "Mira (guest)")]
    pub display_name: String,
}

/// Where a meeting is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeetingStatusJson {
    /// Created, nobody has joined yet.
    Scheduled,
    /// Somebody joined.
    Active,
    /// Ended: nobody joins any more.
    Ended,
}

impl From<MeetingStatus> for MeetingStatusJson {
    fn from(status: MeetingStatus) -> MeetingStatusJson {
        match status {
            MeetingStatus::Scheduled => MeetingStatusJson::Scheduled,
            MeetingStatus::Active => MeetingStatusJson::Active,
            MeetingStatus::Ended => MeetingStatusJson::Ended,
        }
    }
}

/// A meeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeetingJson {
    #[schema(format = Uuid)]
    pub meeting_id: String,
    /// The short code people share: `ABC-DEFG-HJK` (case and hyphens do not matter
    /// when it is typed).
    #[schema(example = "7QK-M4TZ-X9C")]
    pub meeting_code: String,
    pub display_name: String,
    pub status: MeetingStatusJson,
    /// Who created it (`null`: the system).
    #[schema(format = Uuid)]
    pub created_by_user_id: Option<String>,
    pub max_participants: i32,
    pub enable_e2e_encryption: bool,
    pub require_auth: bool,
    pub allow_recording: bool,
    pub waiting_room_enabled: bool,
    pub scheduled_start_time: Option<DateTime<Utc>>,
    /// When the first participant joined.
    pub actual_start_time: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&Meeting> for MeetingJson {
    fn from(m: &Meeting) -> MeetingJson {
        MeetingJson {
            meeting_id: m.meeting_id.to_string(),
            meeting_code: m.meeting_code.as_str().to_owned(),
            display_name: m.display_name.clone(),
            status: m.status.into(),
            created_by_user_id: m.created_by_user_id.map(|u| u.to_string()),
            max_participants: m.settings.max_participants,
            enable_e2e_encryption: m.settings.enable_e2e_encryption,
            require_auth: m.settings.require_auth,
            allow_recording: m.settings.allow_recording,
            waiting_room_enabled: m.settings.waiting_room_enabled,
            scheduled_start_time: m.scheduled_start_time,
            actual_start_time: m.actual_start_time,
            ended_at: m.ended_at,
            created_at: m.created_at,
        }
    }
}

/// What a client needs to join a meeting: open a WebTransport session at
/// `webtransport_url?wt_token={wt_token}` (pinning `certificate_hash` when given) and
/// send `token` in its `JoinRequest`. Both tokens are secrets, valid `expires_in`
/// seconds; `wt_token` opens one session only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JoinGrantJson {
    /// The meeting token (an EdDSA JWT naming the meeting and the participant).
    #[schema(value_type = String)]
    pub token: Secret,
    pub expires_in: u64,
    /// The one-time connection token (64 hex characters).
    #[schema(value_type = String)]
    pub wt_token: Secret,
    #[schema(
        example = "https://mc-1.example.org:4433/meetings/0b8f6f7e-1c0e-4e55-9f59-6f6f1c3f7a10"
    )]
    pub webtransport_url: String,
    /// SHA-256 of the controller's certificate (lowercase hex), for
    /// `serverCertificateHashes`; `null` when it serves one browsers trust.
    pub certificate_hash: Option<String>,
    /// Who the client will be in the meeting.
    #[schema(format = Uuid)]
    pub participant_id: String,
}

impl From<JoinGrant> for JoinGrantJson {
    fn from(g: JoinGrant) -> JoinGrantJson {
        JoinGrantJson {
            token: g.token,
            expires_in: g.expires_in,
            wt_token: Secret::from(g.wt_token.expose()),
            webtransport_url: g.webtransport_url,
            certificate_hash: g.certificate_hash,
            participant_id: g.participant_id.to_string(),
        }
    }
}

/// `GET /api/v1/meetings/{meeting}`: the meeting, and a join grant for a caller with
/// `meetings:join` while the meeting has not ended (absent otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeetingWithGrant {
    #[serde(flatten)]
    pub meeting: MeetingJson,
    /// Absent when the caller may not join or the meeting has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub join_grant: Option<JoinGrantJson>,
}

/// `POST /api/v1/meetings/{meeting}/guest-token`: a guest's join grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GuestToken {
    #[schema(format = Uuid)]
    pub participant_id: String,
    // A `Secret`: written bare on the wire, redacted in `Debug`.
    /// The meeting token for the `JoinRequest` (a bearer secret).
    #[schema(value_type = String)]
    pub token: Secret,
    /// `Bearer`.
    pub token_type: String,
    pub expires_in: u64,
    /// The one-time connection token (a bearer secret, like `token`).
    #[schema(value_type = String)]
    pub wt_token: Secret,
    pub webtransport_url: String,
    pub certificate_hash: Option<String>,
    /// The name the participant joins under, as the others see it: the guest's, or a
    /// signed-in user's account name.
    pub display_name: String,
    pub meeting: MeetingJson,
}

// ---------------------------------------------------------------------------------------
// Validation

/// A display name, or 400 naming `field`.
pub(super) fn display_name(field: &'static str, value: &str) -> Result<DisplayName, ApiError> {
    DisplayName::parse(value).map_err(|e| {
        ApiError::bad_field(field, "bad_display_name", format!("{field}: {}", e.reason))
    })
}

/// A participant limit within 1..=[`MAX_PARTICIPANTS`], or 400.
fn max_participants(value: i64) -> Result<i32, ApiError> {
    match i32::try_from(value) {
        Ok(n) if (1..=MAX_PARTICIPANTS).contains(&value) => Ok(n),
        _ => Err(ApiError::bad_field(
            "max_participants",
            "bad_max_participants",
            format!("max_participants: must be from 1 to {MAX_PARTICIPANTS}, not {value}"),
        )),
    }
}

impl CreateMeetingRequest {
    /// The meeting to create for `creator`, or 400 naming the first bad field.
    fn into_new(self, creator: UserId) -> Result<NewMeeting, ApiError> {
        let defaults = MeetingSettings::default();
        let scheduled_start_time = self
            .scheduled_start_time
            .as_deref()
            .map(|text| {
                DateTime::parse_from_rfc3339(text.trim())
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        ApiError::bad_field(
                            "scheduled_start_time",
                            "bad_scheduled_start_time",
                            format!(
                                "scheduled_start_time: not an RFC 3339 time such as \
                                 2026-12-05T19:30:00Z ({e})"
                            ),
                        )
                    })
            })
            .transpose()?;
        Ok(NewMeeting {
            display_name: display_name("display_name", &self.display_name)?,
            created_by: Some(creator),
            settings: MeetingSettings {
                max_participants: self
                    .max_participants
                    .map(max_participants)
                    .transpose()?
                    .unwrap_or(defaults.max_participants),
                enable_e2e_encryption: self
                    .enable_e2e_encryption
                    .unwrap_or(defaults.enable_e2e_encryption),
                require_auth: self.require_auth.unwrap_or(defaults.require_auth),
                allow_recording: self.allow_recording.unwrap_or(defaults.allow_recording),
                waiting_room_enabled: self
                    .waiting_room_enabled
                    .unwrap_or(defaults.waiting_room_enabled),
            },
            scheduled_start_time,
        })
    }
}

/// A checked settings change.
#[derive(Debug, Clone, Default)]
struct SettingsChange {
    display_name: Option<DisplayName>,
    max_participants: Option<i32>,
    enable_e2e_encryption: Option<bool>,
    require_auth: Option<bool>,
    allow_recording: Option<bool>,
    waiting_room_enabled: Option<bool>,
}

impl UpdateSettingsRequest {
    fn check(self) -> Result<SettingsChange, ApiError> {
        Ok(SettingsChange {
            display_name: self
                .display_name
                .as_deref()
                .map(|name| display_name("display_name", name))
                .transpose()?,
            max_participants: self.max_participants.map(max_participants).transpose()?,
            enable_e2e_encryption: self.enable_e2e_encryption,
            require_auth: self.require_auth,
            allow_recording: self.allow_recording,
            waiting_room_enabled: self.waiting_room_enabled,
        })
    }
}

impl SettingsChange {
    /// The name and settings of `meeting` with this change applied.
    fn applied_to(&self, meeting: &Meeting) -> Result<(DisplayName, MeetingSettings), ApiError> {
        let s = meeting.settings;
        let name = match &self.display_name {
            Some(name) => name.clone(),
            None => DisplayName::stored(&meeting.display_name).map_err(|e| {
                ApiError::from(MeetingsError::Storage(store::StorageError::corrupt(
                    format!("the name of meeting {}", meeting.meeting_id),
                    e,
                )))
            })?,
        };
        Ok((
            name,
            MeetingSettings {
                max_participants: self.max_participants.unwrap_or(s.max_participants),
                enable_e2e_encryption: self
                    .enable_e2e_encryption
                    .unwrap_or(s.enable_e2e_encryption),
                require_auth: self.require_auth.unwrap_or(s.require_auth),
                allow_recording: self.allow_recording.unwrap_or(s.allow_recording),
                waiting_room_enabled: self.waiting_room_enabled.unwrap_or(s.waiting_room_enabled),
            },
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Looking meetings up

/// The meeting a path names (by id, else by code); neither names no meeting (404).
fn meeting_key(s: &str) -> Result<MeetingKey, ApiError> {
    MeetingKey::parse(s).map_err(|_| ApiError::meeting_not_found())
}

/// A storage error of a meeting lookup: "not found" is the meeting's.
fn lookup_error(e: MeetingsError) -> ApiError {
    ApiError::lookup(e, ApiError::meeting_not_found)
}

fn meeting_ended(status: StatusCode) -> ApiError {
    ApiError::new(status, "meeting_ended", "this meeting has ended")
}

fn grant_error(e: GrantError) -> ApiError {
    match e {
        GrantError::Ended => meeting_ended(StatusCode::GONE),
        GrantError::NoController => ApiError {
            retry_after: Some(NO_CONTROLLER_RETRY_AFTER),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_controller",
                GrantError::NoController.to_string(),
            )
        },
        GrantError::Auth(e) => e.into(),
        GrantError::Meetings(e) => e.into(),
    }
}

fn rate_limit_key(
    result: Result<RateLimitPart, impl std::fmt::Display>,
) -> Result<RateLimitPart, ApiError> {
    result.map_err(|error| {
        tracing::error!(%error, "could not make a rate-limit key");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "rate limiting is not working right now",
        )
    })
}

/// A JSON answer carrying secrets: never cached.
fn no_store(status: StatusCode, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl WebState {
    async fn meeting(&self, key: &MeetingKey) -> Result<Meeting, ApiError> {
        self.repo.meeting_by_key(key).await.map_err(lookup_error)
    }

    /// `read`, the read of the meeting `key` names, and, when a join grant may follow
    /// (`granting`) and the meeting's id is known beforehand ([`Repo::known_meeting_id`]),
    /// the grant's connection token, written meanwhile ([`EarlyToken`]).
    ///
    /// [`Repo::known_meeting_id`]: crate::Repo::known_meeting_id
    async fn read_for_grant<T>(
        &self,
        key: &MeetingKey,
        granting: bool,
        read: impl Future<Output = Result<T, MeetingsError>>,
    ) -> (Result<T, MeetingsError>, Option<EarlyToken>) {
        match self.repo.known_meeting_id(key).filter(|_| granting) {
            Some(id) => {
                let (read, early) = tokio::join!(read, EarlyToken::issue(&self.repo, id));
                (read, Some(early))
            }
            None => (read.await, None),
        }
    }

    /// The meetings account linked to the session's Discord user, made and linked the
    /// first time (as the API's Discord login does, with the same stand-in email).
    /// The web session holds no provider token for the meetings, so the link stores
    /// none.
    pub(super) async fn session_account(
        &self,
        user: &web::session::SessionUser,
    ) -> Result<UserId, ApiError> {
        let id = user.id.to_string();
        let display_name =
            discord_display_name(&id, &[web::page::display_name(user), &user.username])
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_account", e.reason))?;
        let (account, created) = self.repo.discord_web_account(&id, display_name).await?;
        if created {
            tracing::info!(user = %account, "meetings account made for a signed-in Discord user");
        }
        Ok(account)
    }

    /// Creates `new` for `user`, within the user's creation rate limit (429 beyond it),
    /// with its controller assigned now when it starts now: the API's and the meetings
    /// page's way to make a meeting.
    pub(super) async fn create(&self, user: UserId, new: &NewMeeting) -> Result<Meeting, ApiError> {
        let auth = &self.auth;
        let per_user = rate_limit_key(RateLimitPart::parse(&format!("user:{user}")))?;
        if let Err(retry) = auth
            .limiter()
            .hit(&auth.config().meetings_created(), &per_user, auth.now())
            .await?
        {
            tracing::info!(%user, retry_after = retry.seconds(), "meeting creation refused: rate limit");
            return Err(AuthError::RateLimited(retry).into());
        }
        let mut rng = StdRng::from_rng(&mut rand::rng());
        Ok(self
            .repo
            .create_meeting_assigned(new, &self.region, &self.liveness, &mut rng)
            .await?)
    }

    async fn grant(
        &self,
        meeting: &Meeting,
        joiner: &Joiner,
        early: Option<EarlyToken>,
    ) -> Result<JoinGrant, GrantError> {
        let mut rng = StdRng::from_rng(&mut rand::rng());
        grant::grant(
            &self.repo,
            &self.auth,
            meeting,
            joiner,
            &self.region,
            &self.liveness,
            &mut rng,
            early,
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

/// Create a meeting.
///
/// The caller is its creator. Limited per user (30 a minute by default).
#[utoipa::path(
    post,
    path = "/api/v1/meetings",
    tag = "meetings",
    request_body = CreateMeetingRequest,
    security(("bearer" = ["meetings:create"])),
    responses(
        (status = 201, description = "Created", body = MeetingJson,
            headers(("Location" = String, description = "The meeting's URL"))),
        (status = 400, description = "A bad field (`field` names it)", body = ErrorBody),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "The credential lacks `meetings:create`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as JSON (`Content-Type: application/json`)", body = ErrorBody),
        (status = 429, description = "Too many meetings created this minute",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds"))),
    )
)]
pub(super) async fn create_meeting(
    State(state): State<WebState>,
    who: Authenticated,
    Body(body): Body<CreateMeetingRequest>,
) -> Result<Response, ApiError> {
    who.require(Scope::MeetingsCreate)?;
    let new = body.into_new(who.user_id)?;
    let meeting = state.create(who.user_id, &new).await?;
    let mut response = (StatusCode::CREATED, Json(MeetingJson::from(&meeting))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{MEETINGS_PATH}/{}", meeting.meeting_id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Read a meeting, with a join grant.
///
/// By id or code. A caller whose credential also holds `meetings:join` gets a join
/// grant for the meeting controller that serves it (assigned now if it has none),
/// while the meeting has not ended.
#[utoipa::path(
    get,
    path = "/api/v1/meetings/{meeting}",
    tag = "meetings",
    params(("meeting" = String, Path, description = "The meeting's id (UUID) or code")),
    security(("bearer" = ["meetings:read"])),
    responses(
        (status = 200, description = "The meeting (and a join grant)", body = MeetingWithGrant),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "The credential lacks `meetings:read`", body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no meeting has this id or code", body = ErrorBody),
        (status = 503, description = "`no_controller`: no meeting controller can take it now",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds"))),
    )
)]
pub(super) async fn get_meeting(
    State(state): State<WebState>,
    who: Authenticated,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    who.require(Scope::MeetingsRead)?;
    let key = meeting_key(&key)?;
    let joiner = who
        .scopes
        .contains(Scope::MeetingsJoin)
        .then_some(who.user_id);
    let read = state.repo.meeting_by_key_with_user_name(&key, joiner);
    let (read, early) = state.read_for_grant(&key, joiner.is_some(), read).await;
    let (meeting, name) = read.map_err(lookup_error)?;
    let join_grant = match (joiner, name) {
        (Some(user), Some(display_name)) if meeting.status.is_joinable() => {
            let joiner = Joiner {
                user_id: Some(user),
                display_name,
            };
            match state.grant(&meeting, &joiner, early).await {
                Ok(grant) => Some(grant.into()),
                Err(GrantError::Ended) => None,
                Err(e) => return Err(grant_error(e)),
            }
        }
        _ => None,
    };
    Ok(no_store(
        StatusCode::OK,
        MeetingWithGrant {
            meeting: MeetingJson::from(&meeting),
            join_grant,
        },
    ))
}

/// A guest's join grant.
///
/// Anyone holding the meeting's code (or id) may join a meeting without `require_auth`
/// under a name of their choosing. Limited per client address (30 a minute by default).
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{meeting}/guest-token",
    tag = "meetings",
    params(("meeting" = String, Path, description = "The meeting's id (UUID) or code")),
    request_body = GuestTokenRequest,
    responses(
        (status = 200, description = "The guest's join grant", body = GuestToken),
        (status = 400, description = "A bad display name", body = ErrorBody),
        (status = 403, description = "`auth_required`: the meeting admits signed-in users only",
            body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no meeting has this id or code", body = ErrorBody),
        (status = 410, description = "`meeting_ended`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as JSON (`Content-Type: application/json`)", body = ErrorBody),
        (status = 429, description = "Too many guest tokens from this address",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 503, description = "`no_controller`", body = ErrorBody),
    )
)]
pub(super) async fn guest_token(
    State(state): State<WebState>,
    client: ClientInfo,
    Path(key): Path<String>,
    Body(body): Body<GuestTokenRequest>,
) -> Result<Response, ApiError> {
    let auth = &state.auth;
    if let Some(ip) = client.ip {
        let per_address = rate_limit_key(identifier("ip", &ip.to_string()))?;
        if let Err(retry) = auth
            .limiter()
            .hit(&auth.config().guest_tokens(), &per_address, auth.now())
            .await?
        {
            tracing::info!(
                retry_after = retry.seconds(),
                "guest token refused: rate limit"
            );
            return Err(AuthError::RateLimited(retry).into());
        }
    }
    let key = meeting_key(&key)?;
    let name = display_name("display_name", &body.display_name)?;
    let (read, early) = state
        .read_for_grant(&key, true, state.repo.meeting_by_key(&key))
        .await;
    let meeting = read.map_err(lookup_error)?;
    // An ended meeting is ended for everyone: a guest learns that before being told
    // the meeting wanted a signed-in user.
    if !meeting.status.is_joinable() {
        return Err(meeting_ended(StatusCode::GONE));
    }
    if meeting.settings.require_auth {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth_required",
            "this meeting admits signed-in users only",
        ));
    }
    let joiner = Joiner {
        user_id: None,
        display_name: name,
    };
    let grant = state
        .grant(&meeting, &joiner, early)
        .await
        .map_err(grant_error)?;
    Ok(no_store(
        StatusCode::OK,
        GuestToken::new(grant, &meeting, &joiner),
    ))
}

impl GuestToken {
    /// The answer carrying `grant` to `meeting`.
    fn new(grant: JoinGrant, meeting: &Meeting, joiner: &Joiner) -> GuestToken {
        GuestToken {
            participant_id: grant.participant_id.to_string(),
            token: grant.token,
            token_type: BEARER.to_owned(),
            expires_in: grant.expires_in,
            wt_token: Secret::from(grant.wt_token.expose()),
            webtransport_url: grant.webtransport_url,
            certificate_hash: grant.certificate_hash,
            display_name: joiner.display_name.as_str().to_owned(),
            meeting: MeetingJson::from(meeting),
        }
    }
}

/// `POST /meet/{code}/grant`: the join grant of the signed-in Tavern user (a web
/// session, declared [`web::access::Access::User`], so the kit's guard has already
/// refused a request without a signed-in session (401) or without the session's CSRF
/// token (403)). The meetings account of the session's Discord user is found, or made
/// and linked as the API's Discord login does (provider `discord`, the Discord user id);
/// the participant is named by that account. Also for meetings with `require_auth`.
/// The answer is the guest route's JSON ([`GuestToken`]); no body is read.
pub(super) async fn session_grant(
    State(state): State<WebState>,
    caller: web::access::Caller,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let Some(user) = caller.user() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_required",
            "this route is for signed-in users of Tavern's web pages",
        ));
    };
    let code = MeetingCode::parse(&code).map_err(|_| ApiError::meeting_not_found())?;
    let account = state.session_account(user).await?;
    let key = MeetingKey::Code(code);
    let read = state
        .repo
        .meeting_by_key_with_user_name(&key, Some(account));
    let (read, early) = state.read_for_grant(&key, true, read).await;
    let (meeting, name) = read.map_err(lookup_error)?;
    let Some(display_name) = name else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account_inactive",
            "your meetings account is deactivated",
        ));
    };
    if !meeting.status.is_joinable() {
        return Err(meeting_ended(StatusCode::GONE));
    }
    let joiner = Joiner {
        user_id: Some(account),
        display_name,
    };
    let grant = state
        .grant(&meeting, &joiner, early)
        .await
        .map_err(grant_error)?;
    tracing::info!(meeting = %meeting.meeting_id, user = %account, "join grant for a signed-in user");
    Ok(no_store(
        StatusCode::OK,
        GuestToken::new(grant, &meeting, &joiner),
    ))
}

/// Change a meeting's name and settings.
///
/// By its creator, while it has not ended. Fields left out stay as they are.
#[utoipa::path(
    patch,
    path = "/api/v1/meetings/{id}/settings",
    tag = "meetings",
    params(("id" = String, Path, description = "The meeting's id (UUID) or code")),
    request_body = UpdateSettingsRequest,
    security(("bearer" = ["meetings:manage"])),
    responses(
        (status = 200, description = "The changed meeting", body = MeetingJson),
        (status = 400, description = "A bad field (`field` names it)", body = ErrorBody),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "Lacks `meetings:manage`, or `not_creator`", body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no meeting has this id or code", body = ErrorBody),
        (status = 409, description = "`meeting_ended`; or `meeting_in_progress`: `enable_e2e_encryption` changes only while nobody is in the meeting (the other settings stay as they were)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as JSON (`Content-Type: application/json`)", body = ErrorBody),
    )
)]
pub(super) async fn update_settings(
    State(state): State<WebState>,
    who: Authenticated,
    Path(key): Path<String>,
    Body(body): Body<UpdateSettingsRequest>,
) -> Result<Json<MeetingJson>, ApiError> {
    who.require(Scope::MeetingsManage)?;
    let key = meeting_key(&key)?;
    let change = body.check()?;
    let first = state.meeting(&key).await?;
    let id = first.meeting_id;
    let what = format!("the settings of meeting {id}");
    let mut known = Some(first);
    let (state, who, change) = (&state, &who, &change);
    let meeting = store::optimistic(&what, |_| {
        let known = known.take();
        async move {
            let meeting = match known {
                Some(meeting) => meeting,
                None => state.meeting(&MeetingKey::Id(id)).await?,
            };
            ApiError::require_creator(&meeting, who)?;
            if !meeting.status.is_joinable() {
                return Err(meeting_ended(StatusCode::CONFLICT));
            }
            let (name, settings) = change.applied_to(&meeting)?;
            if name.as_str() == meeting.display_name && settings == meeting.settings {
                return Ok(Attempt::Done(meeting));
            }
            // The participants' end-to-end encryption is fixed when they join: changed
            // under them, the call would break without a word.
            if settings.enable_e2e_encryption != meeting.settings.enable_e2e_encryption
                && !state
                    .repo
                    .participants(meeting.meeting_id)
                    .await?
                    .is_empty()
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "meeting_in_progress",
                    "end-to-end encryption can only be changed while nobody is in the meeting",
                ));
            }
            // `None`: the meeting changed since it was read; read it again.
            Ok(
                match state
                    .repo
                    .update_meeting_settings(&meeting, who.user_id, &name, &settings)
                    .await?
                {
                    Some(updated) => Attempt::Done(updated),
                    None => Attempt::Retry,
                },
            )
        }
    })
    .await?;
    Ok(Json(MeetingJson::from(&meeting)))
}

/// End a meeting.
///
/// By its creator; ending an ended meeting answers it as it is. Its meeting controller
/// sees the end and tells the participants.
#[utoipa::path(
    post,
    path = "/api/v1/meetings/{id}/end",
    tag = "meetings",
    params(("id" = String, Path, description = "The meeting's id (UUID) or code")),
    security(("bearer" = ["meetings:manage"])),
    responses(
        (status = 200, description = "The ended meeting", body = MeetingJson),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "Lacks `meetings:manage`, or `not_creator`", body = ErrorBody),
        (status = 404, description = "`meeting_not_found`: no meeting has this id or code", body = ErrorBody),
    )
)]
pub(super) async fn end_meeting(
    State(state): State<WebState>,
    who: Authenticated,
    Path(key): Path<String>,
) -> Result<Json<MeetingJson>, ApiError> {
    who.require(Scope::MeetingsManage)?;
    let key = meeting_key(&key)?;
    let mut meeting = state.meeting(&key).await?;
    ApiError::require_creator(&meeting, &who)?;
    let ended_at = state
        .repo
        .end_meeting_by(meeting.meeting_id, who.user_id)
        .await?;
    meeting.status = MeetingStatus::Ended;
    meeting.ended_at = Some(ended_at);
    Ok(Json(MeetingJson::from(&meeting)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_path_names_a_meeting_by_id_or_by_code_as_typed() {
        let id = MeetingId::random();
        assert_eq!(meeting_key(&id.to_string()).unwrap(), MeetingKey::Id(id));
        let code = MeetingCode::parse("ABC-DEFG-HJK").unwrap();
        for typed in ["abc-defg-hjk", "ABCDEFGHJK", "abcdefghjk"] {
            assert_eq!(meeting_key(typed).unwrap(), MeetingKey::Code(code.clone()));
        }
        let refused = meeting_key("no-such-thing").unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::NOT_FOUND, "meeting_not_found")
        );
    }

    use crate::domain::{MeetingId, ParticipantId};

    #[test]
    fn a_guest_token_writes_its_tokens_bare_and_hides_them_from_debug() {
        let (token, wt_token) = ("eyJ.meeting.token", "ab".repeat(32));
        let json = serde_json::json!({
            "participant_id": ParticipantId::random().to_string(),
            "token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "wt_token": wt_token,
            "webtransport_url": "https://127.0.0.1:4433/meetings/x",
            "certificate_hash": null,
            "display_name": "Ada",
            "meeting": {
                "meeting_id": MeetingId::random().to_string(),
                "meeting_code": "ABC-DEFG-HJK",
                "display_name": "Standup",
                "status": "active",
                "created_by_user_id": null,
                "max_participants": 10,
                "enable_e2e_encryption": false,
                "require_auth": false,
                "allow_recording": false,
                "waiting_room_enabled": false,
                "scheduled_start_time": null,
                "actual_start_time": null,
                "ended_at": null,
                "created_at": "2026-01-01T00:00:00Z",
            },
        });
        let guest: GuestToken = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(guest.token.expose_str(), token);
        assert_eq!(serde_json::to_value(&guest).unwrap(), json);
        let shown = format!("{guest:?}");
        assert!(!shown.contains(token), "{shown}");
        assert!(!shown.contains(&wt_token), "{shown}");
        assert!(
            shown.contains("token: Secret([redacted])")
                && shown.contains("wt_token: Secret([redacted])"),
            "{shown}"
        );
    }

    #[test]
    fn participant_limits_are_one_to_a_thousand() {
        assert_eq!(max_participants(1).unwrap(), 1);
        assert_eq!(max_participants(1000).unwrap(), 1000);
        for bad in [0, -1, 1001, i64::MAX] {
            let e = max_participants(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("max_participants"), "{bad}");
        }
    }
}
