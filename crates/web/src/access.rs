//! Who may call a route, said once where the route is declared.
//!
//! Every route of a feature is declared with its method, its path and its [`Access`]:
//!
//! ```ignore
//! use web::access::{Access, Caller, JsonBody, Routes};
//!
//! let routes = Routes::new(&ctx.sessions)
//!     .get("/api/rolls/characters", Access::user_or_token("rolls:read"), list)
//!     .post("/api/rolls/characters", Access::user_or_token("rolls:write"), add)
//!     .get("/clips", Access::Public, library_page)
//!     .with_state(state);
//! Feature::new("rolls").web(routes)
//!
//! async fn add(caller: Caller, Query(q): Query<UserQuery>, JsonBody(body): JsonBody<Add>)
//!     -> Result<Json<..>, Denied> {
//!     let user = caller.acts_for(q.user.as_deref())?; // 403 for someone else's data
//!     ..
//! }
//! ```
//!
//! [`Routes`] builds the axum router and, beside it, the [`RouteSpec`] manifest (method,
//! path, access) the binary collects from every feature, so a test can walk every
//! route and knock on each door. Each route gets a guard in front of its handler:
//!
//! - **A bearer token** (`Authorization: Bearer tavern_...`, see [`crate::tokens`]) is
//!   accepted on [`Access::Token`] and [`Access::UserOrToken`] routes whose scope it
//!   holds. No CSRF check: a browser never sends our tokens on its own, so there is no
//!   confused deputy. An unknown or revoked token is 401; a token without the scope, or
//!   on a route for signed-in users only, is 403.
//! - **A session** (the cookie of [`crate::session`]) is accepted on [`Access::User`]
//!   and [`Access::UserOrToken`] routes once its user has logged in; state-changing
//!   requests (POST, PUT, PATCH, DELETE) then pass the session's CSRF check (same
//!   origin, the session's token in `X-CSRF-Token` or the form), exactly as
//!   [`crate::session::Sessions::protect`] does.
//! - **Nobody**: 401 JSON (`{"error": .., "code": "unauthorized", "login":
//!   "/login/discord"}`) for the API; a page (`GET` of an HTML page outside `/api/`) on
//!   an [`Access::User`] route sends the browser to the login instead, and a browser's
//!   form post (signed out in another tab) gets the page saying it is signed out and
//!   nothing was sent.
//! - [`Access::Public`] routes run for anyone; the session is still loaded, so a page
//!   shows who is signed in. [`Access::Bearer`] and [`Access::Credentials`] routes
//!   also pass the guard: they check the feature's own bearer credentials, or the
//!   credentials in the request, themselves (the route walk holds them to it).
//!
//! The handler learns who called with the [`Caller`] extractor. [`Caller::acts_for`]
//! is the one rule for "on whose behalf": a session acts only for its own user, a
//! token for any user the request names with `?user=`. [`JsonBody`] reads a JSON body
//! and refuses anything else with 415, so a body is never silently taken as empty.
//!
//! Every error here is JSON `{"error": "<sentence>", "code": "<kind>"}` ([`Denied`]),
//! the shape of the site's other refusals.

use std::fmt;
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::{Json, Router};
use discord::model::UserId;
use serde::de::DeserializeOwned;
use serde_json::json;

pub use crate::BodyLimit;
use crate::page::{Asset, LoadedFor};
use crate::session::{
    AuthRejection, CurrentUser, Loaded, SessionUser, Sessions, check_console_csrf, forbidden,
    is_state_changing, mark_private, not_logged_in,
};
use crate::tokens::{ApiTokens, TokenError, TokenInfo};

pub use crate::tokens::Scope;

/// Who may call a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone. Only for routes that change nothing: a state-changing public route is
    /// what the route walk in Tavern's tests refuses.
    Public,
    /// The signed-in user of a session (CSRF-checked when the request changes state).
    User,
    /// A program with an API token holding the scope.
    Token(Scope),
    /// Either of the two: a signed-in user, or a token holding the scope.
    UserOrToken(Scope),
    /// A caller presenting the feature's own bearer credentials (`Authorization:
    /// Bearer ...`: the meetings' JWTs and API keys), holding the scope when one is
    /// named; the route's extractor checks them, refusing with 401 / 403. No cookie is
    /// involved, so no CSRF check either; Tavern's own API tokens are not accepted.
    Bearer(Option<Scope>),
    /// Anyone presenting credentials in the request itself (signing up, logging in
    /// with a password): the body is what authenticates. Such a route changes nothing
    /// for a request without valid credentials (the route walk knocks with an empty
    /// body) and is rate-limited.
    Credentials,
    /// Anyone at the sandbox console (sandbox mode: it acts as the fake Discord's demo
    /// users, so no login is needed). A state-changing request must come from the
    /// same origin and carry the console page's CSRF token, which matches the
    /// console's cookie ([`crate::session::ConsoleToken`]); API tokens play no part.
    Sandbox,
}

impl Access {
    /// [`Access::Token`] for a scope written in the code (`"rolls:write"`). A scope that
    /// is not `area:action` is never held by any token, so the route refuses every
    /// token; the route walk test reports it.
    pub fn token(scope: &'static str) -> Access {
        Access::Token(declared(scope))
    }

    /// [`Access::UserOrToken`] for a scope written in the code.
    pub fn user_or_token(scope: &'static str) -> Access {
        Access::UserOrToken(declared(scope))
    }

    /// [`Access::Bearer`] with a scope written in the code.
    pub fn bearer(scope: &'static str) -> Access {
        Access::Bearer(Some(declared(scope)))
    }

    /// The scope an API token (`tavern tokens create`) needs here, if API tokens are
    /// accepted. A feature's own bearer credentials' scope ([`Access::Bearer`]) is
    /// not one: no API token is taken there ([`Access::bearer_scope`]).
    pub fn scope(&self) -> Option<&Scope> {
        match self {
            Access::Token(scope) | Access::UserOrToken(scope) => Some(scope),
            Access::Public
            | Access::User
            | Access::Bearer(_)
            | Access::Credentials
            | Access::Sandbox => None,
        }
    }

    /// The scope the feature's own bearer credentials need here ([`Access::Bearer`]).
    pub fn bearer_scope(&self) -> Option<&Scope> {
        match self {
            Access::Bearer(scope) => scope.as_ref(),
            _ => None,
        }
    }

    /// Whether the guard checks Tavern's API tokens and sessions here; otherwise the
    /// route itself decides who may call it ([`Access::Public`], [`Access::Bearer`],
    /// [`Access::Credentials`]).
    fn guarded_by_kit(&self) -> bool {
        matches!(
            self,
            Access::User | Access::Token(_) | Access::UserOrToken(_)
        )
    }

    /// Signed-in users are accepted.
    pub fn accepts_users(&self) -> bool {
        matches!(self, Access::User | Access::UserOrToken(_))
    }
}

fn declared(scope: &'static str) -> Scope {
    Scope::parse(scope).unwrap_or_else(|_| Scope::unchecked(scope))
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::User => f.write_str("signed-in user"),
            Access::Token(scope) => write!(f, "token with {scope}"),
            Access::UserOrToken(scope) => write!(f, "signed-in user or token with {scope}"),
            Access::Bearer(Some(scope)) => write!(f, "bearer credentials with {scope}"),
            Access::Bearer(None) => f.write_str("bearer credentials"),
            Access::Credentials => f.write_str("credentials in the request"),
            Access::Sandbox => f.write_str("sandbox console, with its CSRF token"),
        }
    }
}

/// One declared route: what the manifest holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// The path as declared, with `{param}` placeholders.
    pub path: String,
    pub access: Access,
}

impl RouteSpec {
    /// POST, PUT, PATCH or DELETE.
    pub fn changes_state(&self) -> bool {
        is_state_changing(&self.method)
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.access)
    }
}

/// Every route the site serves, as its parts declared them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub routes: Vec<RouteSpec>,
    /// Parts (features) that added routes without declaring who may call them
    /// (`Feature::routes` with a bare router). Nothing should be here.
    pub undeclared: Vec<String>,
}

impl Manifest {
    pub fn extend(&mut self, routes: impl IntoIterator<Item = RouteSpec>) {
        self.routes.extend(routes);
    }

    /// Adds everything `other` holds, its undeclared parts included.
    pub fn absorb(&mut self, other: Manifest) {
        self.routes.extend(other.routes);
        self.undeclared.extend(other.undeclared);
    }

    /// Every scope some route asks API tokens for, sorted, once each: the scopes a
    /// token can use.
    pub fn scopes(&self) -> Vec<Scope> {
        self.collect_scopes(Access::scope)
    }

    /// Every scope some route asks a feature's own bearer credentials for (the
    /// meetings' JWTs and API keys), sorted, once each: no API token is taken there.
    pub fn bearer_scopes(&self) -> Vec<Scope> {
        self.collect_scopes(Access::bearer_scope)
    }

    fn collect_scopes(&self, of: impl Fn(&Access) -> Option<&Scope>) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = self
            .routes
            .iter()
            .filter_map(|r| of(&r.access).cloned())
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }
}

/// What the guard checks against.
#[derive(Clone)]
struct Guard {
    sessions: Sessions,
    tokens: ApiTokens,
    access: Arc<Access>,
}

/// Routes with their access, being declared. See the module docs.
pub struct Routes<S = ()> {
    router: Router<S>,
    manifest: Vec<RouteSpec>,
    /// Parts merged in as bare routers ([`Routes::undeclared`]).
    undeclared: Vec<String>,
    sessions: Sessions,
    tokens: ApiTokens,
}

impl<S> fmt::Debug for Routes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("manifest", &self.manifest)
            .field("undeclared", &self.undeclared)
            .finish_non_exhaustive()
    }
}

impl<S> Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// No routes yet; sessions and tokens are checked against `sessions`' Redis.
    pub fn new(sessions: &Sessions) -> Routes<S> {
        Routes {
            router: Router::new(),
            manifest: Vec::new(),
            undeclared: Vec::new(),
            sessions: sessions.clone(),
            tokens: ApiTokens::new(sessions.redis().clone()),
        }
    }

    /// `handler` answers `method` on `path` for the callers `access` lets in. The
    /// same path may be declared again with another method (and another access).
    pub fn route<H, T>(mut self, method: Method, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let guard = Guard {
            sessions: self.sessions.clone(),
            tokens: self.tokens.clone(),
            access: Arc::new(access.clone()),
        };
        let endpoint = axum::routing::on(filter, handler)
            .route_layer(axum::middleware::from_fn_with_state(guard, guard_request));
        self.router = self.router.route(path, endpoint);
        self.manifest.push(RouteSpec {
            method,
            path: path.to_owned(),
            access,
        });
        self
    }

    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &str, access: Access, handler: H) -> Self {
        self.route(Method::GET, path, access, handler)
    }

    pub fn post<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        access: Access,
        handler: H,
    ) -> Self {
        self.route(Method::POST, path, access, handler)
    }

    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &str, access: Access, handler: H) -> Self {
        self.route(Method::PUT, path, access, handler)
    }

    pub fn patch<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        access: Access,
        handler: H,
    ) -> Self {
        self.route(Method::PATCH, path, access, handler)
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(
        self,
        path: &str,
        access: Access,
        handler: H,
    ) -> Self {
        self.route(Method::DELETE, path, access, handler)
    }

    /// Both sets of routes (their paths must not collide, as with axum's `merge`).
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.manifest.extend(other.manifest);
        self.undeclared.extend(other.undeclared);
        self
    }

    /// `list` under `/assets/` ([`crate::page::assets`]), declared as public `GET`s.
    /// No guard: an asset needs no session.
    pub fn assets(mut self, list: &[&'static Asset]) -> Self {
        self.router = crate::page::with_assets(self.router, list);
        self.manifest.extend(list.iter().map(|asset| RouteSpec {
            method: Method::GET,
            path: asset.route(),
            access: Access::Public,
        }));
        self
    }

    /// `router`'s routes as they are, without saying who may call them: the manifest
    /// names `part` among its [`Manifest::undeclared`], which the route walk refuses.
    /// Only for composing a site in a test.
    pub fn undeclared(mut self, part: &str, router: Router<S>) -> Self {
        self.router = self.router.merge(router);
        self.undeclared.push(part.to_owned());
        self
    }

    /// Hands the handlers their state, as `Router::with_state`.
    pub fn with_state<S2>(self, state: S) -> Routes<S2> {
        Routes {
            router: self.router.with_state(state),
            manifest: self.manifest,
            undeclared: self.undeclared,
            sessions: self.sessions,
            tokens: self.tokens,
        }
    }

    /// The sessions these routes are checked against.
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// What has been declared so far.
    pub fn manifest(&self) -> &[RouteSpec] {
        &self.manifest
    }

    /// The router and its manifest (see [`Routes::into_router_and_manifest`] to keep
    /// the undeclared parts too).
    pub fn into_parts(self) -> (Router<S>, Vec<RouteSpec>) {
        (self.router, self.manifest)
    }

    /// The router and the whole manifest, undeclared parts included.
    pub fn into_router_and_manifest(self) -> (Router<S>, Manifest) {
        (
            self.router,
            Manifest {
                routes: self.manifest,
                undeclared: self.undeclared,
            },
        )
    }
}

/// A refusal, as JSON `{"error": "<sentence>", "code": "<kind>"}` with its status (the
/// kind is the status's reason in snake case, as the site's other refusals say it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: StatusCode,
    pub message: String,
}

impl Denied {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Denied {
        Denied {
            status,
            message: message.into(),
        }
    }

    /// 401: nobody we know.
    pub fn unauthorized(message: impl Into<String>) -> Denied {
        Denied::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: known, but not allowed this.
    pub fn forbidden(message: impl Into<String>) -> Denied {
        Denied::new(StatusCode::FORBIDDEN, message)
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Denied {
        Denied::new(StatusCode::BAD_REQUEST, message)
    }

    /// A request body that could not be read (`rejection`): 413 naming the server's
    /// `limit` for one over it, else the rejection's status saying why.
    pub fn unreadable_body(rejection: &BytesRejection, limit: BodyLimit) -> Denied {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Denied::new(status, limit.exceeded())
        } else {
            Denied::new(
                status,
                format!("could not read the body: {}", rejection.body_text()),
            )
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for Denied {}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let code = crate::rejection::code(self.status);
        let mut response = if self.status == StatusCode::UNAUTHORIZED {
            (
                self.status,
                Json(json!({
                    "error": self.message,
                    "code": code,
                    "login": "/login/discord",
                })),
            )
                .into_response()
        } else {
            (
                self.status,
                Json(json!({ "error": self.message, "code": code })),
            )
                .into_response()
        };
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tavern\""),
            );
        }
        response
    }
}

/// What an `Authorization` header says.
enum Bearer<'a> {
    Absent,
    Token(&'a str),
    Malformed,
}

fn bearer(parts: &axum::http::HeaderMap) -> Bearer<'_> {
    let Some(value) = parts.get(header::AUTHORIZATION) else {
        return Bearer::Absent;
    };
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Bearer::Token(token.trim())
        }
        _ => Bearer::Malformed,
    }
}

/// Marks a request that went through a guard (so [`Caller`] can tell "anonymous on a
/// public route" from "a route declared without `Routes`").
#[derive(Clone)]
struct Guarded(Option<Caller>);

async fn guard_request(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let access = guard.access.as_ref();
    match bearer(request.headers()) {
        Bearer::Token(presented) if access.guarded_by_kit() => {
            let Some(scope) = access.scope() else {
                return Denied::forbidden(
                    "this route is for signed-in users only; API tokens are not accepted here",
                )
                .into_response();
            };
            let verified = guard.tokens.verify(presented).await;
            // Only an answer Redis gave says it works: a token of another shape is
            // refused without asking it.
            if verified.is_ok() && crate::tokens::well_formed(presented) {
                guard.sessions.store_worked();
            }
            let token = match verified {
                Ok(Some(token)) => token,
                Ok(None) => {
                    return Denied::unauthorized("unknown or revoked API token").into_response();
                }
                Err(error) => {
                    let mut response = Denied::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "API tokens cannot be checked right now; try again shortly",
                    )
                    .into_response();
                    if let TokenError::Corrupt { .. } = error {
                        tracing::error!(%error, "could not check an API token");
                    } else {
                        guard
                            .sessions
                            .store_unreachable(&error, "checking an API token");
                        crate::Outage::mark(&mut response);
                    }
                    return response;
                }
            };
            if !token.allows(scope) {
                return Denied::forbidden(format!(
                    "the API token `{}` lacks the scope {scope}",
                    token.name
                ))
                .into_response();
            }
            let mut request = request;
            request.extensions_mut().insert(Loaded(None));
            request
                .extensions_mut()
                .insert(Guarded(Some(Caller::Token(token))));
            return next.run(request).await;
        }
        Bearer::Malformed if access.guarded_by_kit() => {
            return Denied::unauthorized("the Authorization header must be `Bearer <API token>`")
                .into_response();
        }
        _ => {}
    }

    let session = match guard
        .sessions
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
    let user = session
        .as_ref()
        .and_then(|s| s.user().cloned().map(|user| (user, s.clone())));
    let caller = user.map(|(user, session)| Caller::User(Box::new(CurrentUser { user, session })));
    let mut request = request;
    match access {
        Access::Public | Access::Bearer(_) | Access::Credentials => {}
        Access::Sandbox => {
            if is_state_changing(request.method())
                && let Err(reason) = check_console_csrf(request.headers(), guard.sessions.config())
            {
                return forbidden(reason);
            }
        }
        Access::Token(scope) => {
            return Denied::unauthorized(format!(
                "this route needs an API token with the scope {scope}: send `Authorization: Bearer <token>`"
            ))
            .into_response();
        }
        Access::User | Access::UserOrToken(_) => {
            if caller.is_none() {
                let (parts, _) = request.into_parts();
                return match not_logged_in(&parts) {
                    AuthRejection::Unauthorized => {
                        Denied::unauthorized("not logged in").into_response()
                    }
                    other => other.into_response(),
                };
            }
            if is_state_changing(request.method()) {
                request = match guard.sessions.check_csrf(session.as_ref(), request).await {
                    Ok(request) => request,
                    Err(mut response) => {
                        response.extensions_mut().insert(LoadedFor(session));
                        return response;
                    }
                };
            }
        }
    }
    request.extensions_mut().insert(Loaded(session.clone()));
    request.extensions_mut().insert(Guarded(caller));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(LoadedFor(session));
    mark_private(&mut response);
    response
}

/// Who called: the signed-in user of the session, or a program with an API token.
#[derive(Debug, Clone)]
pub enum Caller {
    User(Box<CurrentUser>),
    Token(TokenInfo),
}

impl Caller {
    /// The signed-in user, for a session request.
    pub fn user(&self) -> Option<&SessionUser> {
        match self {
            Caller::User(current) => Some(&current.user),
            Caller::Token(_) => None,
        }
    }

    /// The token, for a token request.
    pub fn token(&self) -> Option<&TokenInfo> {
        match self {
            Caller::User(_) => None,
            Caller::Token(token) => Some(token),
        }
    }

    /// The user this request acts for, given the user it names (`?user=`, raw text):
    /// a session acts for its own user only (naming anyone else is 403); a token acts
    /// for the user it names, and must name one (400 otherwise).
    pub fn acts_for(&self, named: Option<&str>) -> Result<UserId, Denied> {
        let named = match named.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => Some(discord::model::parse_id("user", raw).map_err(|_| {
                Denied::bad_request(format!("`user` must be a Discord user id, not `{raw}`"))
            })?),
        };
        match (self, named) {
            (Caller::User(current), None) => Ok(current.user.id),
            (Caller::User(current), Some(named)) if named == current.user.id => Ok(named),
            (Caller::User(_), Some(_)) => Err(Denied::forbidden(
                "you may act only for yourself: drop `user` or name your own id",
            )),
            (Caller::Token(_), Some(named)) => Ok(named),
            (Caller::Token(_), None) => Err(Denied::bad_request(
                "`user` is required with an API token: add ?user=<discord user id>",
            )),
        }
    }
}

fn guarded(parts: &Parts) -> Result<&Guarded, Denied> {
    parts.extensions.get::<Guarded>().ok_or_else(|| {
        tracing::error!("a Caller extractor ran on a route not declared with web::access::Routes");
        Denied::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "access is not set up for this route",
        )
    })
}

/// The caller; on a public route without a signed-in user, 401.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        guarded(parts)?
            .0
            .clone()
            .ok_or_else(|| Denied::unauthorized("not logged in"))
    }
}

/// The caller if there is one (public routes).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = Denied;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(guarded(parts)?.0.clone())
    }
}

/// A JSON request body. Anything but a JSON content type is 415; malformed JSON, or
/// JSON of the wrong shape, is 400; a body over the server's limit is 413: each as a
/// JSON sentence. An empty body is never taken as `{}`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Denied;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = BodyLimit::of(&request);
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Denied::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON, with `Content-Type: application/json`",
            )),
            Err(JsonRejection::BytesRejection(e)) => Err(Denied::unreadable_body(&e, limit)),
            // Malformed JSON and JSON of the wrong shape alike: the request is wrong.
            Err(e) => Err(Denied::bad_request(format!(
                "bad JSON body: {}",
                e.body_text()
            ))),
        }
    }
}
