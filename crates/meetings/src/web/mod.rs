//! The meetings REST API: authentication, and the global controller's meeting routes
//! (`meetings`: create, read with a join grant, a guest's token, settings, the end),
//! described by the OpenAPI document `openapi` generates from the handlers' types.
//!
//! | route | who | answer |
//! |---|---|---|
//! | `POST /api/v1/auth/register` `{email, password, display_name}` | anyone | 201 `{user_id, access_token, token_type, expires_in}`; 400 bad email / weak password (with the reason); 409 taken |
//! | `POST /api/v1/auth/user/token` `{email, password}` | anyone | 200 `{access_token, token_type, expires_in}`; 401 wrong credentials (never which part); 429 + `Retry-After` |
//! | `POST /api/v1/auth/logout` | a user's access token | 204; the token is blacklisted until it expires |
//! | `GET /.well-known/jwks.json` | anyone | `{keys: [{kty, crv, alg, use, kid, x}]}` |
//! | `POST /api/v1/api-keys` `{name, scopes, expires_at?}` | a user's access token | 201 `{key_id, key, key_prefix, scopes, expires_at}`, the key shown this once |
//! | `DELETE /api/v1/api-keys/{id}` | a user's access token | 204; 404 for a key that is not the user's or already revoked |
//! | `GET /api/v1/auth/discord` | anyone | 303 to Discord's authorize page (404 when Tavern has no Discord login) |
//! | `GET /api/v1/auth/discord/callback?code&state` | Discord's redirect | 200 `{user_id, access_token, token_type, expires_in, created}`; 400 for an unknown or used state; 401 when the person declined |
//! | `POST /api/v1/meetings` `{display_name, max_participants?, enable_e2e_encryption?, require_auth?, allow_recording?, waiting_room_enabled?, scheduled_start_time?}` | `meetings:create` | 201 the meeting; 400 naming the bad `field`; 429 + `Retry-After` (per user) |
//! | `GET /api/v1/meetings/{meeting id or code}` | `meetings:read` | 200 the meeting, with `join_grant` `{token, expires_in, wt_token, webtransport_url, certificate_hash, participant_id}` for `meetings:join` while it has not ended; 404 `meeting_not_found`; 503 `no_controller` |
//! | `POST /api/v1/meetings/{meeting}/guest-token` `{display_name}` | anyone with the code (or id) | 200 a guest's grant with the meeting; 410 `meeting_ended` (also when it required signing in); 403 `auth_required`; 429 (per address) |
//! | `PATCH /api/v1/meetings/{id or code}/settings` `{display_name?, max_participants?, ...}` | `meetings:manage`, the creator | 200 the meeting (its controller applies the new settings: with `require_auth` on, guests inside are closed within a sweep; `waiting_room_enabled` holds the joins that come next); 403 `not_creator`; 409 `meeting_ended`; 409 `meeting_in_progress` when `enable_e2e_encryption` changes while anyone is in the meeting |
//! | `POST /api/v1/meetings/{id or code}/end` | `meetings:manage`, the creator | 200 the ended meeting (again: the same) |
//! | `POST`/`GET /api/v1/meetings/{id}/recordings`, `POST .../recordings/{recording_id}/stop`, `GET /api/v1/recordings/{recording_id}/download`, `GET`/`POST /meet/{code}/recording`, `POST /meet/{code}/recording/stop`, `GET /meet/{code}/recording/now` | see [`recordings`] | recordings: start, stop, list, the signed download, the page's control, whether the meeting is being recorded (anyone) |
//! | `GET /api/v1/openapi.json` | anyone | the OpenAPI document of every route here |
//! | `POST /meet/{code}/grant` (no body) | a signed-in Tavern web session, with `X-CSRF-Token` | 200 the guest route's grant JSON, named by the session's Discord user's meetings account (made and linked the first time), also for `require_auth` meetings; 401 no session; 403 no or a wrong CSRF token; 404; 410 `meeting_ended` |
//! | `GET /meet[?code]`, `POST /meet`, `POST /meet/{code}/end` | anyone; the `POST`s a signed-in web session with its CSRF field (ending: the creator) | the meetings page ([`lobby`]): join by code, start a meeting, the visitor's meetings, ending one |
//! | `GET /meet/{code}?name&autojoin` | anyone | the browser client's page ([`page`]); a 404 page for a bad code or one naming no meeting; a 410 page for an ended meeting (its host's recordings, no join form) |
//! | `GET /assets/meetings/meet.js` | anyone | the client's script (its styles are the site stylesheet's `.meet-page` rules) |
//!
//! Every refusal is `{"error": "...", "code": "..."}` ([`ApiError`]). The API carries
//! its own credentials (the JWTs and API keys of [`crate::auth`](mod@crate::auth), not Tavern's web
//! sessions): registering and logging in are [`Access::Credentials`] (the body is the
//! credentials), the routes for a signed-in caller [`Access::Bearer`] (the kit's guard
//! lets them through and the [`Authenticated`] extractor checks the JWT or API key;
//! later routes do the same and check their scope with [`Authenticated::require`]), and
//! what anyone may read [`Access::Public`]. The guest token is [`Access::Credentials`]
//! too: the meeting's code in its path is the credential. The one exception is the
//! browser client's grant for a signed-in visitor (`POST /meet/{code}/grant`), which is
//! on Tavern's web session ([`Access::User`]: the kit's guard checks the session and
//! its CSRF token).

mod error;
mod extract;
pub mod lobby;
pub mod meetings;
pub mod openapi;
pub mod page;
pub mod recordings;

use axum::Json;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use web::access::{Access, Routes};

pub use self::error::{ApiError, ErrorBody};
pub use self::extract::Body;
use self::lobby::LOBBY_PATH;
use self::meetings::{
    END_PATH, GUEST_TOKEN_PATH, MEETING_PATH, MEETINGS_PATH, SESSION_GRANT_PATH, SETTINGS_PATH,
};
use self::openapi::OPENAPI_PATH;
use self::page::{MEET_PATH, MEET_SCRIPT};
use crate::Repo;
use crate::auth::{ApiKeyId, Auth, Authenticated, ClientInfo, Jwks};
use crate::domain::{Liveness, Region};

pub const REGISTER_PATH: &str = "/api/v1/auth/register";
pub const TOKEN_PATH: &str = "/api/v1/auth/user/token";
pub const LOGOUT_PATH: &str = "/api/v1/auth/logout";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const API_KEYS_PATH: &str = "/api/v1/api-keys";
pub const DISCORD_LOGIN_PATH: &str = "/api/v1/auth/discord";
pub const DISCORD_CALLBACK_PATH: &str = "/api/v1/auth/discord/callback";

/// What the handlers share: the service, Tavern's Discord application calling back to
/// [`DISCORD_CALLBACK_PATH`] (when logging in with Discord is configured), and where
/// meetings are assigned.
#[derive(Debug, Clone)]
pub struct WebState {
    pub auth: Auth,
    pub discord: Option<discord::oauth::OAuthApp>,
    pub repo: Repo,
    /// The region new meetings get a controller in.
    pub region: Region,
    /// When a registered controller counts as alive.
    pub liveness: Liveness,
}

impl FromRef<WebState> for Auth {
    fn from_ref(state: &WebState) -> Auth {
        state.auth.clone()
    }
}

/// The meeting with `code`, which the signed-in `user` must have created, and their
/// meetings account. Only reads: a visitor with no account created nothing and gets
/// none. Unknown codes are `meeting_not_found`; anyone but the creator `not_creator`.
pub(crate) async fn hosted_by(
    repo: &Repo,
    user: &web::session::SessionUser,
    code: &str,
) -> Result<(crate::repo::Meeting, crate::domain::UserId), ApiError> {
    let code =
        crate::domain::MeetingCode::parse(code).map_err(|_| ApiError::meeting_not_found())?;
    let meeting = repo
        .meeting_by_code(&code)
        .await
        .map_err(|e| ApiError::lookup(e, ApiError::meeting_not_found))?;
    match repo
        .linked_account(crate::auth::DISCORD, &user.id.to_string())
        .await?
    {
        Some(account) if meeting.created_by_user_id == Some(account) => Ok((meeting, account)),
        _ => Err(ApiError::not_creator()),
    }
}

/// Where Discord sends people back to after they approve.
pub fn discord_callback_url(public_url: &url::Url) -> Result<url::Url, url::ParseError> {
    public_url.join(DISCORD_CALLBACK_PATH)
}

/// The meetings API's routes, over `auth`, assigning meetings as `config` says.
pub fn routes(ctx: &feature::Context, auth: Auth, config: &crate::MeetingsConfig) -> Routes {
    let discord = ctx.discord_login.as_ref().and_then(|app| {
        discord_callback_url(&ctx.public_url)
            .ok()
            .map(|callback| app.with_redirect_uri(callback))
    });
    Routes::new(&ctx.sessions)
        .post(REGISTER_PATH, Access::Credentials, register)
        .post(TOKEN_PATH, Access::Credentials, token)
        .post(LOGOUT_PATH, Access::Bearer(None), logout)
        .get(JWKS_PATH, Access::Public, jwks)
        .post(API_KEYS_PATH, Access::Bearer(None), create_api_key)
        .delete(
            "/api/v1/api-keys/{id}",
            Access::Bearer(None),
            revoke_api_key,
        )
        .get(DISCORD_LOGIN_PATH, Access::Public, discord_login)
        .get(DISCORD_CALLBACK_PATH, Access::Public, discord_callback)
        .post(
            MEETINGS_PATH,
            Access::bearer("meetings:create"),
            meetings::create_meeting,
        )
        .get(
            MEETING_PATH,
            Access::bearer("meetings:read"),
            meetings::get_meeting,
        )
        .post(GUEST_TOKEN_PATH, Access::Credentials, meetings::guest_token)
        .post(SESSION_GRANT_PATH, Access::User, meetings::session_grant)
        .patch(
            SETTINGS_PATH,
            Access::bearer("meetings:manage"),
            meetings::update_settings,
        )
        .post(
            END_PATH,
            Access::bearer("meetings:manage"),
            meetings::end_meeting,
        )
        .get(OPENAPI_PATH, Access::Public, openapi::serve)
        .get(LOBBY_PATH, Access::Public, lobby::page)
        .post(LOBBY_PATH, Access::User, lobby::start)
        .post(lobby::END_FROM_LOBBY_PATH, Access::User, lobby::end)
        .get(MEET_PATH, Access::Public, page::meet)
        .assets(&[&MEET_SCRIPT])
        .with_state(WebState {
            auth,
            discord,
            repo: Repo::from_context(ctx),
            region: config.region.clone(),
            liveness: config.liveness,
        })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub password: Secret,
    /// 1 to 255 characters, shown as typed: no control characters, text direction
    /// overrides or invisible formatting characters (a zero width joiner only inside an
    /// emoji).
    pub display_name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub user_id: String,
    #[schema(value_type = String)]
    pub access_token: Secret,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub password: Secret,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    #[schema(value_type = String)]
    pub access_token: Secret,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiKeyRequest {
    /// 1 to 255 characters, shown as typed: no control characters, text direction
    /// overrides or invisible formatting characters (a zero width joiner only inside an
    /// emoji).
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateApiKeyResponse {
    pub key_id: String,
    pub key: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The `token_type` of every token the API hands out.
const BEARER: &str = "Bearer";

/// Register an account.
///
/// Answers its first access token (all the meetings scopes, 1 h).
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = RegisterResponse),
        (status = 400, description = "A bad email, a weak password or a bad display name, or a missing field (`field` names it)", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as JSON (`Content-Type: application/json`)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many accounts registered from this address (10 a minute by default)",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds"))),
    )
)]
async fn register(
    State(auth): State<Auth>,
    client: ClientInfo,
    Body(body): Body<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (user, token) = auth
        .register(
            &body.email,
            body.password.expose_str(),
            &body.display_name,
            &client,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user_id: user.to_string(),
            access_token: token.token,
            token_type: BEARER.to_owned(),
            expires_in: token.expires_in,
        }),
    ))
}

/// Log in with an email and a password.
#[utoipa::path(
    post,
    path = "/api/v1/auth/user/token",
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "An access token", body = TokenResponse),
        (status = 400, description = "`bad_request`: a missing field or a body that is not JSON (`field` names it)", body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (never which part)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as JSON (`Content-Type: application/json`)", body = ErrorBody),
        (status = 429, description = "Too many failed logins", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
    )
)]
async fn token(
    State(auth): State<Auth>,
    client: ClientInfo,
    Body(body): Body<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let token = auth
        .login(&body.email, body.password.expose_str(), &client)
        .await?;
    Ok(Json(TokenResponse {
        access_token: token.token,
        token_type: BEARER.to_owned(),
        expires_in: token.expires_in,
    }))
}

/// Log out: the access token is refused from now on.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "`user_token_required`: an API key", body = ErrorBody),
    )
)]
async fn logout(
    State(auth): State<Auth>,
    client: ClientInfo,
    who: Authenticated,
) -> Result<StatusCode, ApiError> {
    auth.logout(&who, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The published token signing keys (JWKS).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses((status = 200, description = "The keys", body = openapi::JsonWebKeySet))
)]
async fn jwks(State(auth): State<Auth>) -> Result<Json<Jwks>, ApiError> {
    Ok(Json(auth.jwks().await?))
}

/// Create an API key.
///
/// With a user's access token only. The key is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    tag = "auth",
    request_body = CreateApiKeyRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreateApiKeyResponse),
        (status = 400, description = "A bad name, scope or expiry", body = ErrorBody),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "`user_token_required`: an API key", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the body is not sent as JSON (`Content-Type: application/json`)", body = ErrorBody),
    )
)]
async fn create_api_key(
    State(auth): State<Auth>,
    client: ClientInfo,
    who: Authenticated,
    Body(body): Body<CreateApiKeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let created = auth
        .create_api_key(&who, &body.name, &body.scopes, body.expires_at, &client)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreateApiKeyResponse {
            key_id: created.key_id.to_string(),
            key: created.key.expose().to_owned(),
            key_prefix: created.key_prefix,
            scopes: created.scopes.to_vec(),
            expires_at: created.expires_at,
        }),
    ))
}

/// Revoke one of the user's API keys.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{id}",
    tag = "auth",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "`bad_key_id`", body = ErrorBody),
        (status = 401, description = "No or a bad credential", body = ErrorBody),
        (status = 403, description = "`user_token_required`: an API key", body = ErrorBody),
        (status = 404, description = "Not the user's key, or already revoked", body = ErrorBody),
    )
)]
async fn revoke_api_key(
    State(auth): State<Auth>,
    client: ClientInfo,
    who: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = ApiKeyId::parse(&id)
        .map_err(|_| ApiError::bad_request("bad_key_id", format!("`{id}` is not an API key id")))?;
    auth.revoke_api_key(&who, key, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log in with Discord: to Discord's authorize page.
#[utoipa::path(
    get,
    path = "/api/v1/auth/discord",
    tag = "auth",
    responses(
        (status = 303, description = "To Discord", headers(("Location" = String))),
        (status = 404, description = "`not_configured`", body = ErrorBody),
        (status = 429, description = "Too many logins started from this address",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds"))),
    )
)]
async fn discord_login(
    State(state): State<WebState>,
    client: ClientInfo,
) -> Result<impl IntoResponse, ApiError> {
    let app = state
        .discord
        .as_ref()
        .ok_or(crate::auth::AuthError::ProviderNotConfigured)?;
    let url = state.auth.begin_discord_login(app, &client).await?;
    Ok(axum::response::Redirect::to(url.as_str()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiscordCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DiscordLoginResponse {
    pub user_id: String,
    #[schema(value_type = String)]
    pub access_token: Secret,
    pub token_type: String,
    pub expires_in: u64,
    /// Whether this login made the account.
    pub created: bool,
}

/// Where Discord sends people back to.
#[utoipa::path(
    get,
    path = "/api/v1/auth/discord/callback",
    tag = "auth",
    params(DiscordCallback),
    responses(
        (status = 200, description = "Logged in (the account made if new)", body = DiscordLoginResponse),
        (status = 400, description = "`bad_state`, or no code", body = ErrorBody),
        (status = 401, description = "`login_denied`", body = ErrorBody),
        (status = 404, description = "`not_configured`", body = ErrorBody),
        (status = 502, description = "`provider_error`", body = ErrorBody),
    )
)]
async fn discord_callback(
    State(state): State<WebState>,
    client: ClientInfo,
    Query(query): Query<DiscordCallback>,
) -> Result<Json<DiscordLoginResponse>, ApiError> {
    let app = state
        .discord
        .as_ref()
        .ok_or(crate::auth::AuthError::ProviderNotConfigured)?;
    if query.error.is_some() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_denied",
            "the login was declined at Discord",
        ));
    }
    let (Some(code), Some(login_state)) = (query.code, query.state) else {
        return Err(ApiError::bad_request(
            "bad_request",
            "Discord's answer has no `code` and `state`",
        ));
    };
    let (user, token, created) = state
        .auth
        .finish_discord_login(app, &code, &login_state, &client)
        .await?;
    Ok(Json(DiscordLoginResponse {
        user_id: user.to_string(),
        access_token: token.token,
        token_type: BEARER.to_owned(),
        expires_in: token.expires_in,
        created,
    }))
}
