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
//! `/login/discord` is rate-limited per client address ([`LoginRateLimit`], 10 a
//! minute by default; the address as [`crate::client`] tells it): each start writes a
//! state to Redis, so an unbounded stream of them would fill it. The count lives in
//! Redis (`tavern:ratelimit:login:{address}`, a fixed window that expires by itself),
//! so every replica counts the same; past the limit the answer is 429 with
//! `Retry-After` (the seconds left in the window).
//!
//! The callback's `code`, `state` and `error` never reach a log: the request span
//! leaves the query of `/login/...` out (see [`crate::loggable_uri`]), and an
//! `error` Discord reports is logged (and shown) only when it is one of OAuth2's own
//! codes, never as the text the request carried.
//!
//! `/api/me` is `Cache-Control: no-store`: it carries the CSRF token.
//!
//! `next` only ever names a path on this site (`/` followed by anything but `/` or
//! `\`, no control characters); anything else, `https://evil.example` or
//! `//evil.example` included, becomes `/`, so the login is never an open redirect.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use discord::oauth::{AuthorizationCode, OAuthApp, OAuthError, Scope};
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::redis;
use url::Url;

use base::Secret;

use crate::access::{Access, Routes};
use crate::client::ClientAddr;
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

/// Redis key prefix of the login rate limit: `tavern:ratelimit:login:{address}`.
pub const RATE_KEY_PREFIX: &str = "tavern:ratelimit:login:";

/// How many logins one client address may start per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRateLimit {
    pub max: u32,
    pub window: Duration,
}

impl Default for LoginRateLimit {
    /// 10 a minute: plenty for a person (a few retries), nothing for a flood.
    fn default() -> LoginRateLimit {
        LoginRateLimit {
            max: 10,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
struct Login {
    sessions: Sessions,
    app: OAuthApp,
    limit: LoginRateLimit,
}

/// The login routes (`/login/discord`, `/login/discord/callback`, `/logout`,
/// `/api/me`), declared with their access, for the binary to merge.
pub fn routes(sessions: Sessions, app: OAuthApp, limit: LoginRateLimit) -> Routes {
    Routes::new(&sessions)
        .get("/login/discord", Access::Public, start)
        .get(CALLBACK_PATH, Access::Public, callback)
        .post("/logout", Access::User, logout)
        .get("/api/me", Access::User, me)
        .with_state(Login {
            sessions,
            app,
            limit,
        })
}

/// Counts a login start from `client`; `Some(seconds)` to wait when over the limit.
async fn over_limit(
    login: &Login,
    client: Option<&ClientAddr>,
) -> Result<Option<u64>, redis::RedisError> {
    let who = client.map_or_else(|| "unknown".to_owned(), |c| c.ip.to_string());
    let key = format!("{RATE_KEY_PREFIX}{who}");
    let window = login.limit.window.as_secs().max(1);
    let mut count_one = redis::pipe();
    count_one
        .atomic()
        .cmd("SET")
        .arg(&key)
        .arg(0)
        .arg("EX")
        .arg(window)
        .arg("NX")
        .ignore()
        .cmd("INCR")
        .arg(&key)
        .cmd("TTL")
        .arg(&key);
    // Once more on a connection found dropped: at worst a login attempt is counted twice.
    let counted: Result<(u64, i64), redis::RedisError> = login
        .sessions
        .redis()
        .retrying(|mut conn| {
            let count_one = &count_one;
            async move { count_one.query_async(&mut conn).await }
        })
        .await;
    let (count, ttl) = counted?;
    if count > u64::from(login.limit.max) {
        Ok(Some(u64::try_from(ttl).unwrap_or(window).max(1)))
    } else {
        Ok(None)
    }
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

/// The login's answer while the session store fails: a page in the kit's words for an
/// outage, with `Retry-After`, marked as an [`crate::Outage`]'s when it is one.
fn unavailable(login: &Login, error: &SessionError) -> Response {
    let outage = login.sessions.store_failed(error, "logging in");
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Login unavailable",
        crate::session::UNAVAILABLE,
        None,
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(crate::session::UNAVAILABLE_RETRY_AFTER_SECS),
    );
    if outage {
        crate::Outage::mark(&mut response);
    }
    response
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

/// Where a login started at `host` (the request's `Host`) must start instead: the
/// same path on the site's origin when both name this machine by different names
/// (`localhost` and `127.0.0.1`). Discord sends the visitor back to the origin, where
/// the cookie of a login started under the other name is not, and the login would be
/// refused as started in another browser. Only loopback names are compared: behind a
/// proxy the `Host` a server sees may differ from its origin for good.
fn login_elsewhere(origin: &str, host: Option<&str>, query: Option<&str>) -> Option<String> {
    let origin = Url::parse(origin).ok()?;
    let asked = Url::parse(&format!("{}://{}", origin.scheme(), host?)).ok()?;
    let loopback = |url: &Url| match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let same = asked.host() == origin.host()
        && asked.port_or_known_default() == origin.port_or_known_default();
    if same || !loopback(&origin) || !loopback(&asked) {
        return None;
    }
    let mut there = origin.join("/login/discord").ok()?;
    there.set_query(query);
    Some(there.into())
}

async fn start(
    State(login): State<Login>,
    client: Option<Extension<ClientAddr>>,
    session: Option<Session>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    Query(query): Query<StartQuery>,
) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(there) = login_elsewhere(&login.sessions.config().origin, host, uri.query()) {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, there)]).into_response();
    }
    match over_limit(&login, client.as_deref()).await {
        Ok(None) => {}
        Ok(Some(wait)) => {
            let mut response = page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many logins",
                "Too many logins were started from your address. Wait a minute, then try \
                 again.",
                None,
            );
            if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Err(error) => return unavailable(&login, &error.into()),
    }
    let next = safe_next(query.next.as_deref());
    let (session, cookie) = match session {
        Some(session) => (session, None),
        None => match login.sessions.create_anonymous().await {
            Ok(session) => {
                let cookie = login.sessions.cookie(&session);
                (session, Some(cookie))
            }
            Err(error) => return unavailable(&login, &error),
        },
    };
    let state = LoginState::random();
    let pending = PendingLogin {
        session: Secret::from(session.id().expose()),
        next,
    };
    let stored: Result<(), SessionError> = async {
        let json = serde_json::to_string(&pending)?;
        login
            .sessions
            .redis()
            .query_retrying::<()>(
                redis::cmd("SET")
                    .arg(state.key())
                    .arg(json)
                    .arg("EX")
                    .arg(STATE_TTL_SECS),
            )
            .await?;
        Ok(())
    }
    .await;
    if let Err(error) = stored {
        return unavailable(&login, &error);
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
        Err(error) => return unavailable(&login, &error.into()),
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
            // Only OAuth2's own codes are repeated; any other text came from whoever
            // sent the browser here and goes nowhere.
            let code = oauth_error_code(&error);
            tracing::warn!(error = code, "discord refused the authorization request");
            page(
                StatusCode::BAD_GATEWAY,
                "Login failed",
                &format!("Discord refused the login request ({code})."),
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
        Err(error) => unavailable(&login, &error),
    }
}

/// `error` if it is one of the codes OAuth2 defines for the authorization endpoint
/// (RFC 6749, 4.1.2.1), otherwise `"other"`.
fn oauth_error_code(error: &str) -> &'static str {
    const CODES: &[&str] = &[
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    ];
    CODES
        .iter()
        .find(|code| **code == error)
        .copied()
        .unwrap_or("other")
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
        return unavailable(&login, &error);
    }
    redirect("/", Some(login.sessions.clear_cookie()))
}

/// The signed-in user and the session's CSRF token; never stored by a cache.
async fn me(current: CurrentUser) -> Response {
    let CurrentUser { user, session } = current;
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "id": user.id.to_string(),
            "username": user.username,
            "global_name": user.global_name,
            "avatar": user.avatar,
            "csrf_token": session.csrf_token(),
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_login_started_under_another_name_of_this_machine_starts_at_the_origin() {
        let origin = "http://127.0.0.1:8080";
        assert_eq!(
            login_elsewhere(origin, Some("localhost:8080"), Some("next=%2Fmeet")).as_deref(),
            Some("http://127.0.0.1:8080/login/discord?next=%2Fmeet")
        );
        assert_eq!(
            login_elsewhere(origin, Some("[::1]:8080"), None).as_deref(),
            Some("http://127.0.0.1:8080/login/discord")
        );
        // The origin itself, a name that is not this machine's, or a proxy's origin: as
        // it is.
        assert_eq!(login_elsewhere(origin, Some("127.0.0.1:8080"), None), None);
        assert_eq!(login_elsewhere(origin, Some("tavern.example"), None), None);
        assert_eq!(
            login_elsewhere("https://tavern.example", Some("127.0.0.1:8080"), None),
            None
        );
        assert_eq!(login_elsewhere(origin, None, None), None);
        assert_eq!(login_elsewhere(origin, Some("bad host/x"), None), None);
    }

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
    fn only_oauth_error_codes_are_repeated() {
        assert_eq!(oauth_error_code("invalid_scope"), "invalid_scope");
        assert_eq!(oauth_error_code("<script>\nforged log line"), "other");
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
