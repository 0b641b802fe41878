//! The meetings REST API, part 1: authentication.
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
//!
//! Every refusal is `{"error": "...", "code": "..."}` ([`ApiError`]). The API carries
//! its own credentials (the JWTs and API keys of [`crate::auth`](mod@crate::auth), not Tavern's web
//! sessions): registering and logging in are [`Access::Credentials`] (the body is the
//! credentials), the routes for a signed-in caller [`Access::Bearer`] (the kit's guard
//! lets them through and the [`Authenticated`] extractor checks the JWT or API key;
//! later routes do the same and check their scope with [`Authenticated::require`]), and
//! what anyone may read [`Access::Public`].

mod error;
mod extract;

use axum::Json;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use web::access::{Access, Routes};

pub use self::error::ApiError;
pub use self::extract::Body;
use crate::auth::{ApiKeyId, Auth, Authenticated, ClientInfo, Jwks};

pub const REGISTER_PATH: &str = "/api/v1/auth/register";
pub const TOKEN_PATH: &str = "/api/v1/auth/user/token";
pub const LOGOUT_PATH: &str = "/api/v1/auth/logout";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const API_KEYS_PATH: &str = "/api/v1/api-keys";
pub const DISCORD_LOGIN_PATH: &str = "/api/v1/auth/discord";
pub const DISCORD_CALLBACK_PATH: &str = "/api/v1/auth/discord/callback";

/// What the handlers share: the service, and Tavern's Discord application calling back
/// to [`DISCORD_CALLBACK_PATH`] (when logging in with Discord is configured).
#[derive(Debug, Clone)]
pub struct WebState {
    pub auth: Auth,
    pub discord: Option<discord::oauth::OAuthApp>,
}

impl FromRef<WebState> for Auth {
    fn from_ref(state: &WebState) -> Auth {
        state.auth.clone()
    }
}

/// Where Discord sends people back to after they approve.
pub fn discord_callback_url(public_url: &url::Url) -> Result<url::Url, url::ParseError> {
    public_url.join(DISCORD_CALLBACK_PATH)
}

/// The authentication routes, over `auth`.
pub fn routes(ctx: &feature::Context, auth: Auth) -> Routes {
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
        .with_state(WebState { auth, discord })
}

#[derive(Debug, Deserialize)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub user_id: String,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Debug, Deserialize)]
pub struct CreateApiKeyRequest {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreateApiKeyResponse {
    pub key_id: String,
    pub key: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

const BEARER: &str = "Bearer";

async fn register(
    State(auth): State<Auth>,
    client: ClientInfo,
    Body(body): Body<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (user, token) = auth
        .register(&body.email, &body.password, &body.display_name, &client)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user_id: user.to_string(),
            access_token: token.token.expose_str().to_owned(),
            token_type: BEARER.to_owned(),
            expires_in: token.expires_in,
        }),
    ))
}

async fn token(
    State(auth): State<Auth>,
    client: ClientInfo,
    Body(body): Body<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let token = auth.login(&body.email, &body.password, &client).await?;
    Ok(Json(TokenResponse {
        access_token: token.token.expose_str().to_owned(),
        token_type: BEARER.to_owned(),
        expires_in: token.expires_in,
    }))
}

async fn logout(
    State(auth): State<Auth>,
    client: ClientInfo,
    who: Authenticated,
) -> Result<StatusCode, ApiError> {
    auth.logout(&who, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn jwks(State(auth): State<Auth>) -> Result<Json<Jwks>, ApiError> {
    Ok(Json(auth.jwks().await?))
}

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

async fn discord_login(State(state): State<WebState>) -> Result<impl IntoResponse, ApiError> {
    let app = state
        .discord
        .as_ref()
        .ok_or(crate::auth::AuthError::ProviderNotConfigured)?;
    let url = state.auth.begin_discord_login(app).await?;
    Ok(axum::response::Redirect::to(url.as_str()))
}

#[derive(Debug, Deserialize)]
pub struct DiscordCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DiscordLoginResponse {
    pub user_id: String,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    /// Whether this login made the account.
    pub created: bool,
}

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
        access_token: token.token.expose_str().to_owned(),
        token_type: BEARER.to_owned(),
        expires_in: token.expires_in,
        created,
    }))
}
