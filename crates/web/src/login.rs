//! "Log in with Discord": the routes, on top of [`crate::session`] and
//! [`discord::oauth`].
//!
//! The flow:
//! 1. `GET /login/discord?next=/clips` makes a pre-login session if the browser has
//!    none, stores a random OAuth2 `state` in Redis (`tavern:oauth_state:{state}`,
//!    10 minutes) bound to that session and to `next`, and redirects (303) to
//!    Discord's authorize URL (scopes `identify guilds`).
//! 2. Discord sends the browser to `GET /login/discord/callback?code=..&state=..`.
//!    The state is consumed first (`GETDEL`: single use, whatever happens next), then
//!    checked against the browser's session: a state we did not issue, one that
//!    expired or was used, or one issued to another browser (someone trying to log a
//!    victim into the attacker's account) is refused with 400 and a sentence.
//!    `error=access_denied` (the user pressed Cancel) is 403 with a sentence and a
//!    link to try again. Otherwise the code is exchanged (Discord refusing it, e.g.
//!    on a reload of the callback, is 400; Discord unreachable is 502), `@me` fetched,
//!    and a new logged-in session replaces the pre-login one; then 303 to `next`.
//! 3. `GET /api/me` answers the user as JSON, with the session's CSRF token for the
//!    page's later POSTs; 401 when not logged in.
//! 4. `POST /logout` (CSRF token required, like every POST) deletes the session and
//!    the cookie, then 303 to `/`.
//!
//! `next` only ever names a path on this site (`/` followed by anything but `/` or
//! `\`, no control characters); anything else, `https://evil.example` or
//! `//evil.example` included, becomes `/`, so the login is never an open redirect.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use discord::oauth::{AuthorizationCode, OAuthApp, OAuthError, Scope};
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::redis;
use url::Url;

use base::Secret;

use crate::page;
use crate::session::{
    CurrentUser, Session, SessionError, SessionUser, Sessions, parse_hex, random_hex,
};

/// Redis key prefix of pending OAuth2 states: `tavern:oauth_state:{state}`.
pub const STATE_KEY_PREFIX: &str = "tavern:oauth_state:";
/// How long a login may take between leaving for Discord and coming back.
pub const STATE_TTL_SECS: u64 = 10 * 60;
/// Where Discord sends the browser back, relative to the public URL.
pub const CALLBACK_PATH: &str = "/login/discord/callback";
/// What the login asks Discord for: who the user is and which guilds they are in.
pub const LOGIN_SCOPES: &[Scope] = &[Scope::Identify, Scope::Guilds];

/// The redirect URI to register with Discord (and give [`OAuthApp::new`]) for a site at
/// `public_url`: `{public_url}/login/discord/callback`.
pub fn callback_url(public_url: &Url) -> Result<Url, url::ParseError> {
    public_url.join(CALLBACK_PATH)
}

#[derive(Clone)]
struct Login {
    sessions: Sessions,
    app: OAuthApp,
}

/// The login routes (`/login/discord`, `/login/discord/callback`, `/logout`,
/// `/api/me`), already wrapped with [`Sessions::protect`], for the binary to merge.
pub fn routes(sessions: Sessions, app: OAuthApp) -> Router {
    let router = Router::new()
        .route("/login/discord", get(start))
        .route(CALLBACK_PATH, get(callback))
        .route("/logout", post(logout))
        .route("/api/me", get(me))
        .with_state(Login {
            sessions: sessions.clone(),
            app,
        });
    sessions.protect(router)
}

/// Only a path on this site, or `/`.
pub fn safe_next(raw: Option<&str>) -> String {
    match raw {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && !next.contains('\\')
                && next.len() <= 2048
                && !next.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// An OAuth2 `state`: 64 lowercase hex characters (256 random bits), a bearer secret
/// for the ten minutes a login may take, so it lives in a [`Secret`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoginState(Secret);

impl LoginState {
    fn random() -> LoginState {
        LoginState(random_hex())
    }

    /// Only what [`LoginState::random`] makes; anything else was never issued.
    fn parse(raw: &str) -> Option<LoginState> {
        parse_hex(raw).map(LoginState)
    }

    fn key(&self) -> String {
        format!("{STATE_KEY_PREFIX}{}", self.0.expose_str())
    }
}

/// What the callback needs to know about the login it finishes.
#[derive(Debug, Serialize, Deserialize)]
struct PendingLogin {
    /// Id of the session that started the login.
    session: Secret,
    next: String,
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    next: Option<String>,
}

/// A page that says what went wrong, with a link to start the login again when
/// `retry` names where the person was going.
fn page(status: StatusCode, title: &str, sentence: &str, retry: Option<&str>) -> Response {
    let retry = retry.map(|next| {
        let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        format!("/login/discord?next={next}")
    });
    let problem = page::Problem::new(status, title, sentence);
    match retry {
        Some(to) => problem.link("Log in again", to).into_response(),
        None => problem.into_response(),
    }
}

fn unavailable(error: &SessionError) -> Response {
    tracing::error!(%error, "login: session store failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Login unavailable",
        "Tavern could not reach its session store. Try again in a moment.",
        None,
    )
}

fn redirect(location: &str, cookie: Option<HeaderValue>) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        return redirect("/", cookie);
    };
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn start(
    State(login): State<Login>,
    session: Option<Session>,
    Query(query): Query<StartQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    let (session, cookie) = match session {
        Some(session) => (session, None),
        None => match login.sessions.create_anonymous().await {
            Ok(session) => {
                let cookie = login.sessions.cookie(&session);
                (session, Some(cookie))
            }
            Err(error) => return unavailable(&error),
        },
    };
    let state = LoginState::random();
    let pending = PendingLogin {
        session: Secret::from(session.id().expose()),
        next,
    };
    let stored: Result<(), SessionError> = async {
        let json = serde_json::to_string(&pending)?;
        redis::cmd("SET")
            .arg(state.key())
            .arg(json)
            .arg("EX")
            .arg(STATE_TTL_SECS)
            .query_async::<()>(&mut login.sessions.redis().conn())
            .await?;
        Ok(())
    }
    .await;
    if let Err(error) = stored {
        return unavailable(&error);
    }
    let url = login
        .app
        .authorize_url(state.0.expose_str(), LOGIN_SCOPES, None);
    redirect(url.as_str(), cookie)
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(login): State<Login>,
    session: Option<Session>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    const EXPIRED: &str = "This login link has expired or was already used. Please start \
                           the login again.";
    let Some(state) = query.state.filter(|s| !s.is_empty()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            "The answer from Discord carries no state, so Tavern cannot tell which login it \
             finishes. Please start the login again.",
            Some("/"),
        );
    };
    // A state of another shape was never issued: no Redis round trip for it.
    let Some(state) = LoginState::parse(&state) else {
        return page(StatusCode::BAD_REQUEST, "Login failed", EXPIRED, Some("/"));
    };
    // Consumed before anything else: a state is good for one attempt only.
    let taken: Result<Option<String>, redis::RedisError> = redis::cmd("GETDEL")
        .arg(state.key())
        .query_async(&mut login.sessions.redis().conn())
        .await;
    let pending = match taken {
        Ok(Some(raw)) => serde_json::from_str::<PendingLogin>(&raw).ok(),
        Ok(None) => None,
        Err(error) => return unavailable(&error.into()),
    };
    let Some(pending) = pending else {
        return page(StatusCode::BAD_REQUEST, "Login failed", EXPIRED, Some("/"));
    };
    let Some(session) = session.filter(|s| pending.session.matches(s.id().expose())) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            "This login was started in another browser or session, so Tavern refused it. \
             Please start the login again here.",
            Some(&pending.next),
        );
    };
    if let Some(error) = query.error {
        return if error == "access_denied" {
            page(
                StatusCode::FORBIDDEN,
                "Login cancelled",
                "You cancelled the login on Discord, so you are not logged in.",
                Some(&pending.next),
            )
        } else {
            tracing::warn!(%error, "discord refused the authorization request");
            page(
                StatusCode::BAD_GATEWAY,
                "Login failed",
                &format!("Discord refused the login request ({error})."),
                Some(&pending.next),
            )
        };
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            "The answer from Discord carries no code. Please start the login again.",
            Some(&pending.next),
        );
    };
    let grant = match login
        .app
        .exchange_code(&AuthorizationCode::from(code))
        .await
    {
        Ok(grant) => grant,
        Err(error) => return discord_failed(&error, &pending.next),
    };
    let user = match login.app.current_user(&grant.access_token).await {
        Ok(user) => user,
        Err(error) => return discord_failed(&error, &pending.next),
    };
    let user = SessionUser::from(user);
    tracing::info!(user = %user.id, "logged in with Discord");
    match login.sessions.log_in(Some(&session), user, &grant).await {
        Ok(new) => redirect(&pending.next, Some(login.sessions.cookie(&new))),
        Err(error) => unavailable(&error),
    }
}

fn discord_failed(error: &OAuthError, next: &str) -> Response {
    match error {
        OAuthError::InvalidGrant { .. } => page(
            StatusCode::BAD_REQUEST,
            "Login failed",
            "Discord refused the login code: it has expired or was already used. Please \
             start the login again.",
            Some(next),
        ),
        other => {
            tracing::error!(error = %other, "login: discord call failed");
            page(
                StatusCode::BAD_GATEWAY,
                "Login failed",
                "Tavern could not complete the login with Discord. Please try again in a \
                 moment.",
                Some(next),
            )
        }
    }
}

async fn logout(State(login): State<Login>, session: Option<Session>) -> Response {
    if let Some(session) = session
        && let Err(error) = login.sessions.destroy(&session).await
    {
        return unavailable(&error);
    }
    redirect("/", Some(login.sessions.clear_cookie()))
}

async fn me(current: CurrentUser) -> Json<serde_json::Value> {
    let CurrentUser { user, session } = current;
    Json(json!({
        "id": user.id.to_string(),
        "username": user.username,
        "global_name": user.global_name,
        "avatar": user.avatar,
        "csrf_token": session.csrf_token(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_ever_a_local_path() {
        assert_eq!(safe_next(Some("/clips?guild=1#x")), "/clips?guild=1#x");
        assert_eq!(safe_next(Some("/")), "/");
        for evil in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/a\\b",
            "evil.example",
            "/a\nSet-Cookie: x",
            "/a b",
            "",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn callback_is_under_the_public_url() {
        let url = callback_url(&Url::parse("https://tavern.example").unwrap()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://tavern.example/login/discord/callback"
        );
    }
}
