//! Server-side sessions in Redis, the cookie that names them, and CSRF protection.
//!
//! Choices, and why:
//! - **Server-side, not signed cookies.** The cookie holds only a random 256-bit id
//!   (64 hex characters); everything else (the user, the CSRF token, the user's Discord
//!   tokens) lives in Redis under `tavern:session:{id}` as JSON. Logout and expiry are
//!   then real (the key is gone, a copied cookie is worthless) and no signing key has
//!   to be managed or rotated.
//! - **Fixed lifetime.** A logged-in session lives [`SessionConfig::ttl`] (7 days) from
//!   login and is never extended, so a stolen cookie cannot be kept alive forever and
//!   no request pays a write to slide the expiry. Sessions made before login (only to
//!   bind the OAuth2 `state` to the browser) live [`SessionConfig::anonymous_ttl`]
//!   (10 minutes, the `state`'s own lifetime).
//! - **New id at login.** Logging in replaces the pre-login session with a new id, so
//!   an id planted in a victim's browser before login (session fixation) never becomes
//!   a logged-in session.
//! - **Cookie** `tavern_session`: `HttpOnly` (scripts cannot read it), `SameSite=Lax`
//!   (sent on top-level navigations, which the redirect back from Discord is, but not
//!   on cross-site POSTs), `Path=/`, `Max-Age` = the session's TTL, and `Secure` when
//!   the public URL is https.
//! - **CSRF.** Each session has its own random token ([`Session::csrf_token`],
//!   returned by `GET /api/me`). Every POST, PUT, PATCH and DELETE through
//!   [`Sessions::protect`] must carry it in the `X-CSRF-Token` header or, for HTML
//!   forms, an `application/x-www-form-urlencoded` field `csrf_token`; it is compared in
//!   constant time. Such a request must also not come from another origin: an
//!   `Origin` header other than the public URL's origin (or one of its
//!   [`SessionConfig::aliases`]), or `Sec-Fetch-Site: cross-site`, is refused even
//!   with a token. Failures are 403: a JSON sentence, or for a browser's form post (a
//!   form body with `Accept: text/html`) a page saying what to do.
//! - **Who may see a page.** [`CurrentUser`] rejects a visitor who is not logged in
//!   with 401 JSON when the request is for the API (path under `/api/`, an `Accept`
//!   that asks for JSON and not HTML, or any method but GET), and otherwise with a 303
//!   redirect to `/login/discord?next=<the page>`, so a person lands back where they
//!   were.
//! - **The user's Discord tokens** are kept in the session record (Redis only, never in
//!   the cookie, never in `Debug`), so a feature can call Discord as the user
//!   ([`Session::discord_access_token`], e.g. for their guild list). Discord's access
//!   tokens live 7 days, as long as the session, so no refresh is needed within one.
//!
//! - **Ids and tokens are [`base::Secret`]s** (session ids, CSRF tokens, the Discord
//!   tokens): their `Debug` is redacted; the cookie and the Redis record hold the bare
//!   values, exactly as before.
//!
//! [`Sessions::protect`] wraps a router with the middleware that loads the session
//! once per request (one Redis `GET`; none for a browser without our cookie) and
//! enforces CSRF; the extractors [`Session`], `Option<Session>`, [`CurrentUser`] and
//! [`crate::page::Page`] read what it loaded. Using them on a route that is not
//! protected is a programming error, answered 500. When the session store is down, the
//! answer is 503 with `Retry-After`, in the kit's words for an outage ([`UNAVAILABLE`]),
//! chosen as the site's other refusals are: the problem page for a browser (a page it
//! opens, a form it sends), JSON `{"error", "code"}` under `/api/` and for scripts; an
//! HTML answer made for a session is marked `Cache-Control: private, no-cache`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base::Secret;
use discord::model::UserId;
use discord::oauth::{AccessToken, TokenGrant};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::Redis;
use store::redis;
use url::Url;

use crate::page::LoadedFor;

/// The session cookie's name on a site served over plain http.
pub const COOKIE: &str = "tavern_session";
/// The session cookie's name on a site served over https. Browsers accept a
/// `__Host-` cookie only with `Secure`, `Path=/` and no `Domain`, so neither a
/// plain-http page nor a sibling subdomain can plant or overwrite it.
pub const SECURE_COOKIE: &str = "__Host-tavern_session";
/// Redis key prefix of sessions: `tavern:session:{id}`.
pub const KEY_PREFIX: &str = "tavern:session:";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field carrying the CSRF token in HTML forms.
pub const CSRF_FIELD: &str = "csrf_token";
/// The sandbox console's CSRF cookie on a plain-http site (see [`ConsoleToken`]).
pub const CONSOLE_COOKIE: &str = "tavern_console";
/// The sandbox console's CSRF cookie on an https site (`__Host-`, as the session's).
pub const SECURE_CONSOLE_COOKIE: &str = "__Host-tavern_console";
/// How long the console's CSRF cookie lives: a day, renewed each time the page is drawn.
const CONSOLE_COOKIE_MAX_AGE: u64 = 24 * 3600;
/// The biggest form body read to look for the CSRF field. Our forms are small; a
/// bigger body without the header is refused rather than buffered.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Why the session store failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] store::StoreError),
    #[error("session store: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("session record cannot be written as JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// How sessions behave; see the module docs for the why.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Lifetime of a logged-in session, from login (fixed, not sliding).
    pub ttl: Duration,
    /// Lifetime of a pre-login session.
    pub anonymous_ttl: Duration,
    /// Add `Secure` to the cookie (the site is served over https).
    pub secure_cookie: bool,
    /// The site's origin (`https://tavern.example`); state-changing requests from any
    /// other `Origin` are refused.
    pub origin: String,
    /// Other origins of this very site, accepted like `origin` (a site on a loopback
    /// address reached as `127.0.0.1`, `localhost` or `[::1]`): see
    /// [`SessionConfig::with_loopback_aliases`].
    pub aliases: Vec<String>,
}

impl SessionConfig {
    /// The cookie's name: [`SECURE_COOKIE`] on https, [`COOKIE`] on http.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookie {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }

    /// The sandbox console's CSRF cookie: [`SECURE_CONSOLE_COOKIE`] on https,
    /// [`CONSOLE_COOKIE`] on http.
    pub fn console_cookie_name(&self) -> &'static str {
        if self.secure_cookie {
            SECURE_CONSOLE_COOKIE
        } else {
            CONSOLE_COOKIE
        }
    }

    /// Defaults for a site at `public_url`: 7-day sessions, 10-minute pre-login
    /// sessions, `Secure` cookies when it is https.
    pub fn for_public_url(public_url: &Url) -> SessionConfig {
        SessionConfig {
            ttl: Duration::from_secs(7 * 24 * 3600),
            anonymous_ttl: Duration::from_secs(10 * 60),
            secure_cookie: public_url.scheme() == "https",
            origin: public_url.origin().ascii_serialization(),
            aliases: Vec::new(),
        }
    }

    /// When the origin's host is `127.0.0.1`, `localhost` or `[::1]`, the other two on
    /// the same scheme and port are accepted as this site too: a server on a loopback
    /// address is the same server whichever of those names the browser used. Any other
    /// origin is left alone.
    pub fn with_loopback_aliases(mut self) -> SessionConfig {
        const LOOPBACK: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];
        let Ok(url) = Url::parse(&self.origin) else {
            return self;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return self;
        };
        if !LOOPBACK.contains(&host) {
            return self;
        }
        for name in LOOPBACK.iter().filter(|name| **name != host) {
            if let Ok(alias) = Url::parse(&format!("{}://{name}:{port}", url.scheme())) {
                self.aliases.push(alias.origin().ascii_serialization());
            }
        }
        self
    }

    /// Whether `origin` (an `Origin` header's value) is this site's.
    fn is_own_origin(&self, origin: &str) -> bool {
        origin == self.origin || self.aliases.iter().any(|alias| alias == origin)
    }
}

/// A session id: 64 lowercase hex characters (256 random bits). It is a credential, so
/// it lives in a [`Secret`] and its `Debug` is redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId(Secret);

impl SessionId {
    fn random() -> SessionId {
        SessionId(random_hex())
    }

    /// Accepts exactly what Tavern makes (64 lowercase hex); anything else in a cookie is
    /// ignored without a Redis round trip.
    pub fn parse(raw: &str) -> Option<SessionId> {
        parse_hex(raw).map(SessionId)
    }

    /// The id, for the cookie and the Redis key that carry it. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_str()
    }

    fn key(&self) -> String {
        format!("{KEY_PREFIX}{}", self.expose())
    }
}

/// 256 random bits from the OS-seeded CSPRNG, as 64 lowercase hex characters: the
/// shape of session ids, CSRF tokens and login states.
pub(crate) fn random_hex() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// `raw` if it has the shape [`random_hex`] makes (64 lowercase hex characters).
pub(crate) fn parse_hex(raw: &str) -> Option<Secret> {
    (raw.len() == 64 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| Secret::from(raw))
}

/// The sandbox console's CSRF token, for visitors who need not be signed in.
///
/// The console acts as the fake Discord's demo users, so it is open to anyone; its
/// state-changing requests are still no cross-site writes. The console page sets a
/// random token in a cookie ([`SessionConfig::console_cookie_name`]: `HttpOnly`,
/// `SameSite=Strict`, `__Host-` on https) and writes the same token into the page
/// (`data-csrf`); the console's script sends it back as `X-CSRF-Token`. A request
/// passes when the header equals the cookie (compared in constant time) and it does
/// not come from another origin: another site can neither read the page's token nor
/// set our cookie. Nothing is stored, so the console works before Redis answers.
#[derive(Debug, Clone)]
pub struct ConsoleToken(Secret);

impl ConsoleToken {
    /// The token the request's cookie carries, or a new one.
    pub fn of(headers: &HeaderMap, config: &SessionConfig) -> ConsoleToken {
        match console_cookie(headers, config) {
            Some(token) => ConsoleToken(token),
            None => ConsoleToken(random_hex()),
        }
    }

    /// The token, for the page. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_str()
    }

    /// `Set-Cookie` carrying the token.
    pub fn cookie(&self, config: &SessionConfig) -> HeaderValue {
        let secure = if config.secure_cookie { "; Secure" } else { "" };
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={CONSOLE_COOKIE_MAX_AGE}{secure}",
            config.console_cookie_name(),
            self.expose()
        );
        // Only hex, digits and fixed ASCII: always a valid header value.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

fn console_cookie(headers: &HeaderMap, config: &SessionConfig) -> Option<Secret> {
    cookie_values(headers, config.console_cookie_name()).find_map(parse_hex)
}

/// The values of every cookie called `name` that the request carries, trimmed, in the
/// order sent (a browser may send two of one name: the caller takes the first it can
/// read).
pub fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(cookie, _)| *cookie == name)
        .map(|(_, value)| value.trim())
}

/// The console's CSRF check of a state-changing request (see [`ConsoleToken`]): same
/// origin, and `X-CSRF-Token` equal to the console cookie. Otherwise why not, for
/// the 403.
pub(crate) fn check_console_csrf(
    headers: &HeaderMap,
    config: &SessionConfig,
) -> Result<(), &'static str> {
    if cross_origin(headers, config) {
        return Err("cross-origin request refused");
    }
    let Some(cookie) = console_cookie(headers, config) else {
        return Err(
            "no console cookie: open the sandbox console page first, then send its CSRF token",
        );
    };
    match headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) if cookie.matches(token) => Ok(()),
        Some(_) => Err("CSRF token does not match the console cookie"),
        None => Err("CSRF token missing: send the console page's token in the X-CSRF-Token header"),
    }
}

/// The logged-in Discord user, as kept in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: UserId,
    pub username: String,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
}

impl From<discord::oauth::OAuthUser> for SessionUser {
    fn from(user: discord::oauth::OAuthUser) -> SessionUser {
        SessionUser {
            id: user.id,
            username: user.username,
            global_name: user.global_name,
            avatar: user.avatar,
        }
    }
}

/// The user's Discord tokens, kept so features can call Discord as the user (their
/// guild list, for instance). Server-side only; the tokens are [`Secret`]s.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DiscordTokens {
    access_token: Secret,
    refresh_token: Option<Secret>,
    /// Unix seconds.
    expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    csrf: Secret,
    user: Option<SessionUser>,
    discord: Option<DiscordTokens>,
    /// Unix seconds.
    created_at: i64,
}

/// One browser's session: anonymous (before login) or logged in.
#[derive(Debug, Clone)]
pub struct Session {
    id: SessionId,
    record: Record,
}

impl Session {
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The token state-changing requests must carry (see the module docs).
    pub fn csrf_token(&self) -> &str {
        self.record.csrf.expose_str()
    }

    /// True when `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.record.csrf.matches(presented)
    }

    /// The logged-in user, `None` before login.
    pub fn user(&self) -> Option<&SessionUser> {
        self.record.user.as_ref()
    }

    /// The user's Discord access token while it is valid, to call Discord as them.
    pub fn discord_access_token(&self) -> Option<AccessToken> {
        self.record
            .discord
            .as_ref()
            .filter(|t| t.expires_at > chrono::Utc::now().timestamp())
            .map(|t| t.access_token.clone())
    }
}

/// The session store. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    redis: Redis,
    config: Arc<SessionConfig>,
    /// Whether the store is failing: an outage is logged when it begins and ends, not
    /// at every request it fails.
    outage: Arc<base::FailureStreak>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    pub fn new(redis: Redis, config: SessionConfig) -> Sessions {
        Sessions {
            redis,
            config: Arc::new(config),
            outage: Arc::default(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The Redis the sessions live in (Tavern's own keys: logins, API tokens).
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The session `id` names, if it exists and has not expired. A record that cannot
    /// be read (damaged, or written by a version that stored another shape) is a
    /// session that is over: it is deleted and logged, and the visitor signs in again,
    /// rather than being refused every page until the record expires.
    pub async fn load(&self, id: &SessionId) -> Result<Option<Session>, SessionError> {
        let raw: Option<String> = self
            .redis
            .query_retrying(redis::cmd("GET").arg(id.key()))
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        match serde_json::from_str(&raw) {
            Ok(record) => Ok(Some(Session {
                id: id.clone(),
                record,
            })),
            Err(error) => {
                tracing::warn!(%error, "a session record could not be read; the session is ended and its visitor signs in again");
                self.redis
                    .query_retrying::<()>(redis::cmd("DEL").arg(id.key()))
                    .await?;
                Ok(None)
            }
        }
    }

    /// A new session for a visitor who is not logged in (to bind an OAuth2 `state`).
    pub async fn create_anonymous(&self) -> Result<Session, SessionError> {
        let session = Session {
            id: SessionId::random(),
            record: Record {
                csrf: random_hex(),
                user: None,
                discord: None,
                created_at: chrono::Utc::now().timestamp(),
            },
        };
        self.save(&session, self.config.anonymous_ttl).await?;
        Ok(session)
    }

    /// Logs `user` in: a new session (new id, new CSRF token) replaces `previous`.
    /// Two single-key commands rather than one transaction, so it works on a Redis
    /// Cluster; if the delete fails the old pre-login session just expires.
    pub async fn log_in(
        &self,
        previous: Option<&Session>,
        user: SessionUser,
        grant: &TokenGrant,
    ) -> Result<Session, SessionError> {
        let now = chrono::Utc::now().timestamp();
        let expires_in = i64::try_from(grant.expires_in.as_secs()).unwrap_or(i64::MAX);
        let session = Session {
            id: SessionId::random(),
            record: Record {
                csrf: random_hex(),
                user: Some(user),
                discord: Some(DiscordTokens {
                    access_token: grant.access_token.clone(),
                    refresh_token: grant.refresh_token.clone(),
                    expires_at: now.saturating_add(expires_in),
                }),
                created_at: now,
            },
        };
        self.save(&session, self.config.ttl).await?;
        if let Some(previous) = previous {
            self.destroy(previous).await?;
        }
        Ok(session)
    }

    /// Ends every logged-in session whose user `ended` picks (their cookies are then
    /// worthless, as after a logout); anonymous sessions and unreadable ones are left to
    /// expire. Answers how many ended. For sandbox mode, whose fake Discord's users are
    /// new at every start: a session of an earlier start's user would go on as a user
    /// that no longer exists.
    pub async fn end_sessions_of(
        redis: &Redis,
        ended: impl Fn(&SessionUser) -> bool,
    ) -> Result<usize, SessionError> {
        let mut conn = redis.conn();
        let mut cursor: u64 = 0;
        let mut count = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{KEY_PREFIX}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            for key in keys {
                let raw: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                let user = raw
                    .and_then(|raw| serde_json::from_str::<Record>(&raw).ok())
                    .and_then(|record| record.user);
                if user.as_ref().is_some_and(&ended) {
                    redis::cmd("DEL")
                        .arg(&key)
                        .query_async::<()>(&mut conn)
                        .await?;
                    count += 1;
                }
            }
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
    }

    /// Ends a session (logout): its key is deleted, so its cookie is worthless.
    pub async fn destroy(&self, session: &Session) -> Result<(), SessionError> {
        self.redis
            .query_retrying::<()>(redis::cmd("DEL").arg(session.id.key()))
            .await?;
        Ok(())
    }

    async fn save(&self, session: &Session, ttl: Duration) -> Result<(), SessionError> {
        let json = serde_json::to_string(&session.record)?;
        self.redis
            .query_retrying::<()>(
                redis::cmd("SET")
                    .arg(session.id.key())
                    .arg(json)
                    .arg("EX")
                    .arg(ttl.as_secs().max(1)),
            )
            .await?;
        Ok(())
    }

    /// `Set-Cookie` naming `session`, for the TTL it was stored with.
    pub fn cookie(&self, session: &Session) -> HeaderValue {
        let ttl = if session.user().is_some() {
            self.config.ttl
        } else {
            self.config.anonymous_ttl
        };
        self.cookie_value(session.id.expose(), ttl.as_secs())
    }

    /// `Set-Cookie` that makes the browser forget the session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        self.cookie_value("", 0)
    }

    fn cookie_value(&self, value: &str, max_age: u64) -> HeaderValue {
        cookie_header(&self.config, value, max_age)
    }

    /// Wraps `router` with the session middleware: loads the request's session and
    /// enforces CSRF on POST/PUT/PATCH/DELETE (see the module docs). Every router whose
    /// handlers use [`Session`] or [`CurrentUser`] must go through this.
    pub fn protect<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            session_middleware,
        ))
    }
}

fn cookie_header(config: &SessionConfig, value: &str, max_age: u64) -> HeaderValue {
    let secure = if config.secure_cookie { "; Secure" } else { "" };
    let name = config.cookie_name();
    let cookie =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    // Only hex, digits and fixed ASCII: always a valid header value.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What the middleware found, for the extractors.
#[derive(Clone)]
pub(crate) struct Loaded(pub(crate) Option<Session>);

fn cookie_session_id(headers: &HeaderMap, cookie: &str) -> Option<SessionId> {
    cookie_values(headers, cookie).find_map(SessionId::parse)
}

pub(crate) fn is_state_changing(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// A 403 for `reason`, as the access guard answers its own: JSON `{"error", "code"}`.
pub(crate) fn forbidden(reason: &str) -> Response {
    crate::access::Denied::forbidden(reason).into_response()
}

/// Refuses state-changing requests from another site (when the browser says so).
fn cross_origin(headers: &HeaderMap, config: &SessionConfig) -> bool {
    let other_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| !config.is_own_origin(o));
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s == "cross-site");
    other_origin || cross_site
}

async fn session_middleware(
    State(sessions): State<Sessions>,
    request: Request,
    next: Next,
) -> Response {
    let session = match sessions
        .session_of(
            request.method(),
            crate::session::original_path(&request),
            request.headers(),
        )
        .await
    {
        Ok(session) => session,
        Err(response) => return response,
    };
    let request = if is_state_changing(request.method()) {
        match sessions.check_csrf(session.as_ref(), request).await {
            Ok(request) => request,
            Err(mut response) => {
                response.extensions_mut().insert(LoadedFor(session));
                return response;
            }
        }
    } else {
        request
    };
    let mut request = request;
    request.extensions_mut().insert(Loaded(session.clone()));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(LoadedFor(session));
    mark_private(&mut response);
    response
}

impl Sessions {
    /// The session id the request's cookie carries, if any (not checked against the
    /// store).
    pub(crate) fn cookie_of(&self, headers: &HeaderMap) -> Option<SessionId> {
        cookie_session_id(headers, self.config.cookie_name())
    }

    /// The session the request's cookie names (`None` without one, or for an unknown
    /// or expired id). When the store is down, the answer to send instead: the
    /// problem page for a browser, JSON for the API and scripts (see
    /// [`unavailable`]).
    pub(crate) async fn session_of(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<Session>, Response> {
        let Some(id) = cookie_session_id(headers, self.config.cookie_name()) else {
            return Ok(None);
        };
        match self.load(&id).await {
            Ok(session) => {
                self.store_worked();
                Ok(session)
            }
            Err(error) => {
                let outage = self.store_failed(&error, "loading a session");
                let mut answer =
                    unavailable(crate::rejection::asks_for_page(method, path, headers));
                if outage {
                    crate::Outage::mark(&mut answer);
                }
                // Shown with the navigation but nobody signed in: the store is not
                // asked again for this page.
                answer.extensions_mut().insert(LoadedFor(None));
                Err(answer)
            }
        }
    }

    /// Logs that the session store failed while `doing` something: the first failure
    /// of an outage at WARN, naming its cause, the next ones at debug until the store
    /// works again ([`Sessions::store_worked`]). A record that cannot be written as
    /// JSON is no outage: an ERROR each time. True for an outage, whose answer is then
    /// marked [`crate::Outage`].
    pub(crate) fn store_failed(&self, error: &SessionError, doing: &str) -> bool {
        if let SessionError::Corrupt(_) = error {
            tracing::error!(%error, doing, "a session record cannot be written");
            return false;
        }
        self.store_unreachable(error, doing);
        true
    }

    /// Logs that the store of sessions (and of logins and API tokens) could not be
    /// reached while `doing` something: the first failure of an outage at WARN, the
    /// next ones at debug (see [`Sessions::store_failed`]).
    pub(crate) fn store_unreachable(&self, error: &dyn fmt::Display, doing: &str) {
        if self.outage.failed() {
            tracing::warn!(
                %error,
                doing,
                "the session store cannot be reached: requests that need a session are \
                 answered 503 until it is back (their failures are logged at debug)"
            );
        } else {
            tracing::debug!(%error, doing, "the session store is still unreachable");
        }
    }

    /// Records that the session store answered; logs once that it is back after an
    /// outage.
    pub(crate) fn store_worked(&self) {
        if self.outage.succeeded() {
            tracing::info!("the session store can be reached again");
        }
    }

    /// The CSRF check of a state-changing request made with `session`: same origin,
    /// and the session's token in the header or the form. Hands the request back
    /// (its form body re-attached when it was read) or the 403 to answer.
    pub(crate) async fn check_csrf(
        &self,
        session: Option<&Session>,
        request: Request,
    ) -> Result<Request, Response> {
        // A browser's form post is refused with a page it can show, the API with JSON.
        let form_page = browser_form(request.headers());
        let refuse = |reason: &str, title: &str, sentence: &str, link: (&str, &str)| {
            if form_page {
                crate::page::Problem::new(StatusCode::FORBIDDEN, title, sentence)
                    .link(link.0, link.1)
                    .into_response()
            } else {
                forbidden(reason)
            }
        };
        if cross_origin(request.headers(), &self.config) {
            return Err(refuse(
                "cross-origin request refused",
                "Sent from another site",
                "This form was sent from another site, so Tavern did not act on it.",
                ("Back to the start", "/"),
            ));
        }
        let Some(session) = session else {
            if form_page {
                return Err(signed_out_page());
            }
            return Err(forbidden("no session: log in and send the CSRF token"));
        };
        let stale = |reason: &str| {
            refuse(
                reason,
                "This page is out of date",
                "The form comes from a page opened before you last signed in (perhaps in \
                 another tab), so it was not sent. Go back, reload the page and send it again.",
                ("Back to the start", "/"),
            )
        };
        let mut request = request;
        let header_token = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let token = match header_token {
            Some(token) => Some(token),
            None if is_form(request.headers()) => {
                let (parts, body) = request.into_parts();
                let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
                    return Err(stale("CSRF token missing (form too large to inspect)"));
                };
                let field = url::form_urlencoded::parse(&bytes)
                    .find(|(k, _)| k == CSRF_FIELD)
                    .map(|(_, v)| v.into_owned());
                request = Request::from_parts(parts, Body::from(bytes));
                field
            }
            None => None,
        };
        match token {
            Some(token) if session.csrf_matches(&token) => Ok(request),
            Some(_) => Err(stale("CSRF token does not match this session")),
            None => Err(stale("CSRF token missing: send the X-CSRF-Token header")),
        }
    }
}

/// The path the client asked for, before any nesting stripped a prefix.
pub(crate) fn original_path(request: &Request) -> &str {
    request
        .extensions()
        .get::<OriginalUri>()
        .map_or(request.uri().path(), |original| original.0.path())
}

/// What a visitor is told while the session store cannot be reached, in the kit's words
/// for an outage (the ones Discord users get too).
pub const UNAVAILABLE: &str =
    "Tavern can't reach its storage right now; please try again in a minute.";

/// How long a client is asked to wait (`Retry-After`, seconds) while the session store
/// cannot be reached: the minute [`UNAVAILABLE`] speaks of.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 60;

/// The 503 answered while the session store cannot be reached: the site's problem page
/// for a browser (`page`), else JSON `{"error", "code": "service_unavailable"}`; both
/// with `Retry-After`.
pub(crate) fn unavailable(page: bool) -> Response {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let mut answer = if page {
        crate::page::Problem::new(status, "Tavern can't reach its storage", UNAVAILABLE)
            .into_response()
    } else {
        (
            status,
            axum::Json(json!({"error": UNAVAILABLE, "code": crate::rejection::code(status)})),
        )
            .into_response()
    };
    answer.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
    );
    answer
}

/// A page rendered for a session (its user, its CSRF token) is for this browser only.
pub(crate) fn mark_private(response: &mut Response) {
    let headers = response.headers_mut();
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
}

/// Whether the client takes HTML (a browser navigating, or submitting a form).
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Whether the request is a browser submitting a form, whose answer it shows as a
/// page: a form body, sent by a browser navigating (it takes HTML, or says it
/// navigates). A script's `fetch` of a form body sends neither.
pub(crate) fn browser_form(headers: &HeaderMap) -> bool {
    let navigating = headers
        .get("sec-fetch-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("navigate"));
    let form = is_form(headers)
        || headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
    form && (accepts_html(headers) || navigating)
}

/// The page a browser's form gets when no one is signed in (the sign-in ended, perhaps
/// in another tab): nothing was done, log in and send it again.
fn signed_out_page() -> Response {
    crate::page::Problem::new(
        StatusCode::FORBIDDEN,
        "You are signed out",
        "Your sign-in has ended, so the form was not sent. Log in, then send it again.",
    )
    .link("Log in", "/login/discord")
    .into_response()
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// Why a [`Session`] or [`CurrentUser`] extractor refused the request.
#[derive(Debug)]
pub enum AuthRejection {
    /// Not logged in, on an API route: 401 JSON.
    Unauthorized,
    /// Not logged in, on a page: 303 to the login with `next` = this page.
    LoginFirst { next: String },
    /// Not logged in, a browser's form post: 403 with the page saying so (the form was
    /// not sent; log in and send it again).
    SignedOut,
    /// The route was not wrapped with [`Sessions::protect`] (a bug): 500.
    MissingLayer,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Unauthorized => {
                crate::access::Denied::unauthorized("not logged in").into_response()
            }
            AuthRejection::LoginFirst { next } => {
                let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
                let target = format!("/login/discord?next={next}");
                match HeaderValue::from_str(&target) {
                    Ok(value) => {
                        (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response()
                    }
                    Err(_) => AuthRejection::Unauthorized.into_response(),
                }
            }
            AuthRejection::SignedOut => signed_out_page(),
            AuthRejection::MissingLayer => {
                tracing::error!("a session extractor ran on a route without Sessions::protect");
                crate::access::Denied::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "sessions are not set up for this route",
                )
                .into_response()
            }
        }
    }
}

pub(crate) fn not_logged_in(parts: &Parts) -> AuthRejection {
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    let wants_json = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    if parts.method != Method::GET && browser_form(&parts.headers) {
        AuthRejection::SignedOut
    } else if uri.path().starts_with("/api/") || wants_json || parts.method != Method::GET {
        AuthRejection::Unauthorized
    } else {
        let next = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        AuthRejection::LoginFirst { next }
    }
}

pub(crate) fn loaded(parts: &Parts) -> Result<Option<Session>, AuthRejection> {
    parts
        .extensions
        .get::<Loaded>()
        .map(|l| l.0.clone())
        .ok_or(AuthRejection::MissingLayer)
}

/// The request's session, logged in or not; rejected (see [`AuthRejection`]) when the
/// browser has none. Use `Option<Session>` to accept visitors without one.
impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        loaded(parts)?.ok_or_else(|| not_logged_in(parts))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        loaded(parts)
    }
}

/// The logged-in user (and their session). Rejects visitors who are not logged in: 401
/// JSON for the API, a redirect to the login for pages.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: SessionUser,
    pub session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = loaded(parts)?;
        match session {
            Some(session) => match session.user().cloned() {
                Some(user) => Ok(CurrentUser { user, session }),
                None => Err(not_logged_in(parts)),
            },
            None => Err(not_logged_in(parts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_parse_only_our_shape() {
        let id = SessionId::random();
        assert_eq!(SessionId::parse(id.expose()), Some(id.clone()));
        assert_eq!(SessionId::parse(&id.expose().to_uppercase()), None);
        assert_eq!(SessionId::parse("abc"), None);
        assert_eq!(SessionId::parse(&format!("{}x", &id.expose()[1..])), None);
        assert_ne!(SessionId::random(), id);
        assert!(!format!("{id:?}").contains(id.expose()));
    }

    #[test]
    fn cookie_header_parsing_finds_ours() {
        let id = SessionId::random();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; {COOKIE}={}; b=2", id.expose())).unwrap(),
        );
        assert_eq!(cookie_session_id(&headers, COOKIE), Some(id.clone()));
        assert_eq!(cookie_session_id(&headers, SECURE_COOKIE), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("tavern_session=nope"),
        );
        assert_eq!(cookie_session_id(&headers, COOKIE), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SECURE_COOKIE}={}", id.expose())).unwrap(),
        );
        assert_eq!(cookie_session_id(&headers, SECURE_COOKIE), Some(id));
    }

    #[test]
    fn https_sites_get_secure_cookies() {
        let https = SessionConfig::for_public_url(&Url::parse("https://t.example/x").unwrap());
        assert_eq!(https.origin, "https://t.example");
        let cookie = cookie_header(&https, "ab", 60);
        assert_eq!(
            cookie,
            "__Host-tavern_session=ab; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        let http = SessionConfig::for_public_url(&Url::parse("http://127.0.0.1:8080").unwrap());
        assert_eq!(http.origin, "http://127.0.0.1:8080");
        let plain = cookie_header(&http, "ab", 60);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("tavern_session=ab;"), "{plain}");
        assert!(!plain.contains("Secure"), "{plain}");
    }

    #[test]
    fn tokens_compare_exactly() {
        let constant_time_eq = |a: &str, b: &str| Secret::from(a).matches(b);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn cross_origin_detection() {
        let site = SessionConfig::for_public_url(&Url::parse("https://t.example").unwrap());
        let mut headers = HeaderMap::new();
        assert!(!cross_origin(&headers, &site));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://t.example"),
        );
        assert!(!cross_origin(&headers, &site));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_origin(&headers, &site));
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_origin(&headers, &site));
    }

    #[test]
    fn loopback_aliases_are_the_other_loopback_names_on_the_same_port() {
        let aliases = |url: &str| {
            SessionConfig::for_public_url(&Url::parse(url).unwrap())
                .with_loopback_aliases()
                .aliases
        };
        assert_eq!(
            aliases("http://127.0.0.1:8080"),
            ["http://localhost:8080", "http://[::1]:8080"]
        );
        assert_eq!(
            aliases("http://[::1]:80/"),
            ["http://127.0.0.1", "http://localhost"]
        );
        assert!(aliases("https://t.example").is_empty());
        assert!(aliases("http://10.0.0.1:8080").is_empty());
    }
}
