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
//! Pages: [`page`] is the one way to serve one (the [`page::Page`] extractor, one
//! layout, one stylesheet, assets compiled in); [`markdown`] shows Discord's message
//! text as a Discord client would; [`sandbox`] is the console of sandbox mode, built
//! on both.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

pub mod login;
pub mod markdown;
pub mod page;
pub mod sandbox;
pub mod session;

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

async fn readyz(State(state): State<AppState>) -> Response {
    let components = state.readiness.check().await;
    let ready = components.iter().all(|c| c.ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(ReadyBody { ready, components })).into_response()
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

/// `/metrics` alone, for a separate metrics listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Routes that exist only once Tavern has started (the features' routes): the server
/// listens before the stores are reachable, so until [`LateRoutes::set`] is called those
/// paths answer 503 with a JSON error instead of 404.
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
    /// Installs the routes; a second call is ignored.
    pub fn set(&self, routes: Router) {
        let _ = self.0.set(routes);
    }

    async fn serve(self, request: axum::extract::Request) -> Response {
        use tower::ServiceExt as _;
        match self.0.get() {
            Some(routes) => match routes.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"error": "Tavern is starting; try again shortly"})),
            )
                .into_response(),
        }
    }
}

/// The whole site: health, readiness, metrics, the site's assets (`/assets/...`), plus
/// `extra` (the sandbox console, the home page), with every other path handed to
/// `late` (the features' routes). `site` (the navigation every page shows) is
/// installed over all of it, so a [`page::Page`] anywhere finds it.
pub fn router(state: AppState, site: page::Site, extra: Vec<Router>, late: LateRoutes) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(page::assets(&[
            &page::STYLESHEET,
            &page::SCRIPT,
            &page::ICON,
        ]));
    for routes in extra {
        app = app.merge(routes);
    }
    app.fallback(move |request: axum::extract::Request| late.clone().serve(request))
        .layer(axum::Extension(site))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "http server listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
