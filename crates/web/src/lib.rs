//! HTTP composition: health and readiness, Prometheus metrics, the sandbox console and
//! every feature's routes, on one axum server.
//!
//! `/healthz` answers as soon as the process listens (liveness); `/readyz` answers 200
//! only once the stores are reachable and the bot is connected, so a load balancer or
//! an operator can tell "up" from "able to serve".
//!
//! People log in with Discord: [`session`] keeps server-side sessions in Redis and
//! guards state-changing requests against CSRF; [`login`] serves the OAuth2 login
//! routes on top of it (see each module for the flow and the choices).
//!
//! Who may call what: [`access`] declares each route with its [`access::Access`]
//! (public, signed-in user, API token scope, or either) and records the manifest the
//! binary collects ([`assemble`] adds the routes it serves itself, the sandbox
//! console's among them, so the manifest is the whole site); [`tokens`] issues and checks the API tokens; [`client`] tells the
//! client's address (through trusted proxies only) and whether it is local.
//!
//! The server ([`serve_with`]) has limits, so no client can hold it: a connection's
//! first request, and every request's headers, must arrive within
//! [`ServerConfig::header_read_timeout`], a connection that begins no request for the
//! same time is shut down gracefully (HTTP/1 keep-alive and HTTP/2 alike: an HTTP/2
//! client answers pings forever, so pings do not count), a request is answered within
//! [`ServerConfig::request_timeout`] (408 otherwise), a body is at most
//! [`ServerConfig::max_body_bytes`] (413), and at most
//! [`ServerConfig::max_connections`] connections are served at once (the next one is
//! answered a fixed 503, its request unread, and closed at once, so open sockets stay
//! bounded). `/readyz` tells which component is not ready, and `/metrics` answers at
//! all, only to a local client (see [`client`]) or on the metrics listener
//! ([`metrics_router`]); anyone else gets the bare status.
//!
//! Pages: [`page`] is the one way to serve one (the [`page::Page`] extractor, one
//! layout, one stylesheet, assets compiled in); [`markdown`] shows Discord's message
//! text as a Discord client would; [`sandbox`] is the console of sandbox mode, built
//! on both.
//!
//! Refusals: what axum itself refuses (a form without a field, a body that is not the
//! JSON asked for, a query value of the wrong kind, a method a path does not take) is
//! answered in the site's format, the status and the 405's `Allow` kept: JSON
//! `{"error", "code"}` for the API and scripts, the problem page for a browser.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

pub use health::{LoggedReadiness, Outage};
pub use rejection::BodyLimit;

pub mod access;
pub mod client;
mod health;
pub mod login;
pub mod markdown;
pub mod page;
mod rejection;
pub mod sandbox;
pub mod session;
pub mod tokens;

/// One dependency's state, as `/readyz` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Component {
    pub name: &'static str,
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Answers "is Tavern ready?" by asking each dependency.
pub trait Readiness: Send + Sync + 'static {
    fn check(&self) -> discord::BoxFuture<'static, Vec<Component>>;
}

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    pub readiness: Arc<dyn Readiness>,
    pub metrics: Option<PrometheusHandle>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct ReadyBody {
    ready: bool,
    components: Vec<Component>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether the request comes from this machine, with no proxy in between.
fn is_local(client: Option<&axum::Extension<client::ClientAddr>>) -> bool {
    client.is_some_and(|c| c.local)
}

/// `/readyz` on the public listener: the components only for a local client; anyone
/// else learns ready or not (200 or 503) and nothing about the parts.
async fn readyz(
    State(state): State<AppState>,
    client: Option<axum::Extension<client::ClientAddr>>,
) -> Response {
    if is_local(client.as_ref()) {
        return readyz_details(State(state)).await;
    }
    let ready = state.readiness.check().await.iter().all(|c| c.ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(serde_json::json!({ "ready": ready }))).into_response()
}

/// `/readyz` with every component and why it is not ready.
async fn readyz_details(State(state): State<AppState>) -> Response {
    let components = state.readiness.check().await;
    let ready = components.iter().all(|c| c.ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(ReadyBody { ready, components })).into_response()
}

/// `/metrics` on the public listener: only for a local client.
async fn public_metrics(
    State(state): State<AppState>,
    client: Option<axum::Extension<client::ClientAddr>>,
) -> Response {
    if is_local(client.as_ref()) {
        metrics(State(state)).await
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// The separate metrics listener (`metrics_addr`): `/metrics`, and `/readyz` and
/// `/healthz` with every detail, for whoever can reach it (operators firewall it).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz_details))
        .route("/healthz", get(healthz))
        .with_state(state)
        .layer(axum::middleware::from_fn(rejection::limit_body))
}

/// Routes that exist only once Tavern has started (the features' routes): the server
/// listens before the stores are reachable, so until [`LateRoutes::set`] is called those
/// paths answer 503 instead of 404: the problem page for a browser, JSON for the API and
/// scripts (marked an [`Outage`]'s: not a failed request each).
#[derive(Clone, Default)]
pub struct LateRoutes(Arc<std::sync::OnceLock<Router>>);

impl std::fmt::Debug for LateRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateRoutes")
            .field("set", &self.0.get().is_some())
            .finish()
    }
}

impl LateRoutes {
    /// Installs the routes, with `not_found` for every path none of them serves; a
    /// second call is ignored.
    pub fn set(&self, routes: Router) {
        let _ = self.0.set(routes.fallback(not_found));
    }

    async fn serve(self, request: axum::extract::Request) -> Response {
        use tower::ServiceExt as _;
        match self.0.get() {
            Some(routes) => match routes.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => {
                let page = rejection::asks_for_page(
                    request.method(),
                    session::original_path(&request),
                    request.headers(),
                );
                let mut answer = starting(page);
                // Waiting for the stores is told once, by whoever connects them.
                Outage::mark(&mut answer);
                answer
            }
        }
    }
}

/// What a feature's path answers before the features exist: 503, the problem page for
/// a browser, JSON `{"error", "code"}` for the API and scripts.
fn starting(page: bool) -> Response {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    if page {
        page::Problem::new(
            status,
            "Tavern is starting",
            "Tavern is starting and cannot show this page yet (it may be waiting for its \
             storage); please try again in a minute.",
        )
        .link("Go to the home page", "/")
        .into_response()
    } else {
        (
            status,
            axum::Json(serde_json::json!({
                "error": "Tavern is starting; try again shortly",
                "code": rejection::code(status),
            })),
        )
            .into_response()
    }
}

/// What a path nobody serves is answered: 404, as JSON (`{"error", "code":
/// "not_found"}`, as the APIs answer) under `/api/`, else a page that says so and
/// links the home page.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": format!("no API route answers {method} {}", uri.path()),
                "code": "not_found",
            })),
        )
            .into_response();
    }
    page::Problem::not_found("There is no page at this address.")
        .link("Go to the home page", "/")
        .into_response()
}

/// The whole site: health, readiness, metrics, the site's assets (`/assets/...`), plus
/// `extra` (the sandbox console, the home page), with every other path handed to
/// `late` (the features' routes). `site` (the navigation every page shows) is
/// installed over all of it, so a [`page::Page`] anywhere finds it.
///
/// `extra` is declared ([`access::Routes`]): the manifest returned beside the router
/// holds every route served here (the fixed ones above as public `GET`s), and the
/// binary adds it to the features' manifest, so the route walk sees the whole site.
pub fn assemble(
    state: AppState,
    site: page::Site,
    extra: Vec<access::Routes>,
    late: LateRoutes,
) -> (Router, access::Manifest) {
    let mut manifest = access::Manifest::default();
    let fixed = FIXED_PATHS
        .iter()
        .map(|path| (*path).to_owned())
        .chain(SITE_ASSETS.iter().map(|asset| asset.route()));
    manifest.routes.extend(fixed.map(|path| access::RouteSpec {
        method: axum::http::Method::GET,
        path,
        access: access::Access::Public,
    }));
    // Every declared part checks the site's one session store: a problem page answered
    // outside any route (an address nobody serves) finds its visitor there.
    let sessions = extra.first().map(|routes| routes.sessions().clone());
    let mut app = fixed_routes(state);
    for routes in extra {
        let (routes, declared) = routes.into_router_and_manifest();
        app = app.merge(routes);
        manifest.absorb(declared);
    }
    (finish(app, site, sessions, late), manifest)
}

/// [`assemble`] with `extra` as bare routers, for a test composing a site of its own
/// (no manifest: nothing says who may call those routes; a problem page answered
/// outside a route that loads the session shows the navigation but no user).
pub fn router(state: AppState, site: page::Site, extra: Vec<Router>, late: LateRoutes) -> Router {
    let app = extra
        .into_iter()
        .fold(fixed_routes(state), |app, routes| app.merge(routes));
    finish(app, site, None, late)
}

/// The paths [`fixed_routes`] answers (`GET`, anyone).
const FIXED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// The assets every page uses.
static SITE_ASSETS: [&page::Asset; 3] = [&page::STYLESHEET, &page::SCRIPT, &page::ICON];

fn fixed_routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(public_metrics))
        .with_state(state)
        .merge(page::assets(&SITE_ASSETS))
}

fn finish(
    app: Router,
    site: page::Site,
    sessions: Option<session::Sessions>,
    late: LateRoutes,
) -> Router {
    let app = app.fallback(move |request: axum::extract::Request| late.clone().serve(request));
    // The site's routes as one service under the layers below: a route answers whole
    // (axum adds a 405's `Allow` where a route is called from its router), so the
    // refusals' translation sees the methods a path takes.
    Router::new()
        .fallback_service(app)
        // The body limit inside the refusals' translation, so that a body too large is
        // refused in the site's words too.
        .layer(axum::middleware::from_fn(rejection::limit_body))
        // axum's own refusals (unreadable forms, JSON and queries; a method a path does
        // not take) answered as the site answers, here where every route passes.
        .layer(axum::middleware::from_fn(rejection::site_errors))
        // Every problem page, wherever it was answered, with the navigation and the user.
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                page::dress_problems(sessions.clone(), request, next)
            },
        ))
        .layer(axum::Extension(site))
        .layer(
            tower_http::trace::TraceLayer::new(health::Failures)
                .make_span_with(request_span)
                // A 5xx answer is logged as a warning inside its request's span (so it
                // names the route): the handler that failed has said why. `/readyz`'s
                // 503 while a store is down is none ([`LoggedReadiness`] says so once),
                // nor is an [`Outage`]'s (told once when it begins).
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
}

/// The span of one request, at `info` so that whatever is logged while it is served
/// names its method and route. Its URI is shown without what may be a secret: the
/// query of the login routes (OAuth `code`, `state` and `error`) is left out entirely,
/// elsewhere the value of any credential-looking parameter is `***`, and so is a
/// secret path segment ([`SECRET_SEGMENT_AFTER`]).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %loggable_uri(request.uri()),
        version = ?request.version(),
    )
}

/// Query parameters whose values never reach a log.
const SECRET_PARAMS: &[&str] = &[
    "code",
    "state",
    "error",
    "error_description",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "key",
    "sig",
    "signature",
    "csrf_token",
];

/// Paths whose next segment is a bearer secret (the campaigns' Meetup linking id), shown
/// as `***`.
const SECRET_SEGMENT_AFTER: &[&str] = &["/link-meetup/"];

/// `uri` as it may be logged (see `request_span`).
pub fn loggable_uri(uri: &axum::http::Uri) -> String {
    let path = shown_path(uri.path());
    let Some(query) = uri.query() else {
        return path;
    };
    if path.starts_with("/login/") {
        return format!("{path}?<redacted>");
    }
    let shown: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s)) => {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", shown.join("&"))
}

/// `path` with the secret segment of a [`SECRET_SEGMENT_AFTER`] route replaced.
fn shown_path(path: &str) -> String {
    for prefix in SECRET_SEGMENT_AFTER {
        if let Some(rest) = path.strip_prefix(prefix) {
            let after = rest.find('/').map_or("", |end| &rest[end..]);
            return format!("{prefix}***{after}");
        }
    }
    path.to_owned()
}

/// The HTTP server's limits, and whom it believes about client addresses.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a client may take to send a request's headers, and a new connection
    /// its first request; also how long a connection that begins no request stays
    /// open (HTTP/1 or HTTP/2; what it serves finishes first).
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a request may take until its response starts: 408 after that.
    /// Default 30 s (streamed bodies, like server-sent events, run on after it).
    pub request_timeout: Duration,
    /// The largest request body: 413 beyond. Default 1 MiB (Tavern takes small JSON
    /// documents and forms).
    pub max_body_bytes: usize,
    /// Connections served at once; the next is answered a fixed 503 without being
    /// read, and closed at once. Default 1024.
    pub max_connections: usize,
    /// Proxies whose `X-Forwarded-For` names the client (see [`client`]).
    pub trusted_proxies: client::TrustedProxies,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            max_connections: 1024,
            trusted_proxies: client::TrustedProxies::default(),
        }
    }
}

/// How many requests a connection has begun, and whether any has: what tells an idle
/// connection from a busy one.
#[derive(Debug, Default)]
struct Requests {
    begun: std::sync::atomic::AtomicU64,
    first: tokio::sync::Notify,
}

impl Requests {
    fn arrived(&self) {
        self.begun
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.first.notify_one();
    }

    fn begun(&self) -> u64 {
        self.begun.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Serves one connection until it ends, within the server's limits.
///
/// Telling HTTP/1 from HTTP/2 waits for the connection's first bytes with no deadline
/// of its own, and an HTTP/2 preface alone is no request: a connection whose first
/// request has not arrived within `idle` is closed, so silent sockets cannot hold
/// every slot. After that, a connection that begins no request for `idle` is shut
/// down gracefully (what it serves finishes; HTTP/2 gets a GOAWAY): an HTTP/2 client
/// answers pings forever, so pings alone would keep an idle one open. The same
/// graceful shutdown ends every connection when the server stops (`stopped`): one that
/// has sent nothing yet ends at once, so a stop never waits out a spare connection.
async fn drive<C: std::future::Future>(
    mut connection: std::pin::Pin<&mut C>,
    graceful_shutdown: impl Fn(std::pin::Pin<&mut C>),
    requests: &Requests,
    idle: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) {
    let mut closing = false;
    let started = tokio::time::timeout(idle, async {
        tokio::select! {
            _ = connection.as_mut() => false,
            () = requests.first.notified() => true,
            // Stopping: a connection that has sent nothing yet ends at once (and one
            // whose first request just began finishes it, below).
            _ = stopped.changed() => true,
        }
    })
    .await;
    match started {
        Ok(true) => {}
        Ok(false) => return,
        Err(_) => {
            tracing::debug!(%peer, "closed a connection that sent no request in time");
            return;
        }
    }
    if *stopped.borrow() {
        graceful_shutdown(connection.as_mut());
        closing = true;
    }
    let mut seen = requests.begun();
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = stopped.changed(), if !closing => {
                graceful_shutdown(connection.as_mut());
                closing = true;
            }
            () = tokio::time::sleep(idle), if !closing => {
                let now = requests.begun();
                if now == seen {
                    tracing::debug!(%peer, "closing a connection that began no request in time");
                    graceful_shutdown(connection.as_mut());
                    closing = true;
                }
                seen = now;
            }
        }
    }
}

/// The answer to a connection past [`ServerConfig::max_connections`]: written as is,
/// without reading the request.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 32\r\n\
\r\n\
too many connections; try again\n";

/// Connections turned away that may linger at once (see [`turn_away`]).
const TURNED_AWAY_AT_ONCE: usize = 64;

/// How long a turned-away connection may linger, reading what its client still sends.
const TURNED_AWAY_LINGER: Duration = Duration::from_secs(1);

/// Answers a connection past the cap with [`BUSY`] and closes it (sends FIN) at once.
///
/// Closing a socket whose request is still unread makes the kernel answer with a
/// reset, which can make the client lose the 503 it was sent; so up to
/// [`TURNED_AWAY_AT_ONCE`] such sockets stay open for at most [`TURNED_AWAY_LINGER`]
/// after the FIN, their input read and thrown away. Past that, the 503 is written
/// only if the socket takes it at once, and the socket is closed at once: open
/// sockets stay bounded by `max_connections` plus [`TURNED_AWAY_AT_ONCE`].
fn turn_away(stream: tokio::net::TcpStream, lingering: &Arc<tokio::sync::Semaphore>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let Ok(permit) = Arc::clone(lingering).try_acquire_owned() else {
        // Written straight to the socket (not through the runtime, which may not have
        // seen it writable yet): a fresh socket's send buffer takes these few bytes.
        if let Ok(mut socket) = stream.into_std() {
            let _ = std::io::Write::write(&mut socket, BUSY);
        }
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(TURNED_AWAY_LINGER, async {
            stream.write_all(BUSY).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
        drop(permit);
    });
}

/// Serves `app` on `listener` with the default [`ServerConfig`] until `shutdown`
/// resolves, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServerConfig::default(), shutdown).await
}

/// Serves `app` on `listener` within `config`'s limits until `shutdown` resolves,
/// then lets open requests finish. Every request carries its [`client::ClientAddr`].
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;

    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "http server listening"),
        Err(error) => tracing::info!(%error, "http server listening (its address unknown)"),
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    // An HTTP/2 client that stops answering pings is dropped; one that answers them
    // but begins no request is shut down by `drive`, as an idle HTTP/1 one is.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(config.header_read_timeout))
        .keep_alive_timeout(config.header_read_timeout);
    let builder = Arc::new(builder);
    // The body limit itself is the site's (its routes answer a body too large in the
    // site's format): each request carries it.
    let limit = rejection::BodyLimit(config.max_body_bytes);
    let app = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .service(app);
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let turned_away = Arc::new(tokio::sync::Semaphore::new(TURNED_AWAY_AT_ONCE));
    let trusted = Arc::new(config.trusted_proxies);
    // Tells every connection to finish what it serves and close (see `drive`).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment, go on.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Each response goes out as soon as it is written: with Nagle's algorithm on, a
        // response written in two parts waits for the client's delayed ACK of the first
        // (up to 40 ms on Linux) before its second part leaves.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not turn off Nagle's algorithm on a connection");
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            // Full: a fixed 503 and the connection closed at once, its request unread.
            turn_away(stream, &turned_away);
            continue;
        };
        let io = TokioIo::new(stream);
        let trusted = Arc::clone(&trusted);
        let requests = Arc::new(Requests::default());
        let counted = Arc::clone(&requests);
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                counted.arrived();
                let client = client::ClientAddr::resolve(peer, request.headers(), &trusted);
                request.extensions_mut().insert(client);
                request.extensions_mut().insert(limit);
                request
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let idle = config.header_read_timeout;
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let connection = std::pin::pin!(connection);
            let shut = |c: std::pin::Pin<&mut _>| {
                hyper_util::server::conn::auto::UpgradeableConnection::graceful_shutdown(c)
            };
            drive(connection, shut, &requests, idle, stopped, peer).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every connection finishes what it serves, then gives its slot back.
    let _ = stop.send(true);
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}
