//! `tavern serve`: wires the stores, the features, Discord (or the sandbox) and the web
//! server together, and takes them down gracefully.
//!
//! Start-up order matters for operators: the HTTP listener comes first so `/healthz` and
//! `/readyz` answer while the stores are still being reached; Redis and PostgreSQL are
//! retried with backoff (one clear error line, then quieter retries) rather than
//! crashing, because a database that starts a few seconds after Tavern is normal.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use discord::{BotConfig, DiscordConfig, GatewayStatus};
use feature::{Context, Feature, JobRunner, ServiceRunner, ServiceState};
use metrics_exporter_prometheus::PrometheusHandle;
use store::{Postgres, Redis};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use web::{AppState, Component, Readiness};

use crate::config::Config;

/// The Prometheus recorder, installed once per process.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// What `/readyz` looks at.
#[derive(Default)]
struct Health {
    redis: OnceLock<Redis>,
    postgres: OnceLock<Postgres>,
    gateway: OnceLock<GatewayStatus>,
    services: OnceLock<ServiceRunner>,
    /// The last connection error per store (and of the features' start-up work) while
    /// still connecting.
    connecting: Mutex<Vec<(&'static str, String)>>,
    serving: std::sync::atomic::AtomicBool,
}

impl Health {
    fn set_connecting(&self, name: &'static str, error: Option<String>) {
        if let Ok(mut list) = self.connecting.lock() {
            list.retain(|(n, _)| *n != name);
            if let Some(error) = error {
                list.push((name, error));
            }
        }
    }

    fn connecting_error(&self, name: &'static str) -> Option<String> {
        self.connecting.lock().ok().and_then(|list| {
            list.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, e)| e.clone())
        })
    }
}

/// Looks every [`crate::instance::KEEP_MARKED_EVERY`] that Redis still holds the mark
/// of `mode`, writing it again where it was lost, until `shutdown`.
async fn keep_redis_marked(redis: Redis, mode: crate::instance::Mode, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(crate::instance::KEEP_MARKED_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let kept = crate::instance::keep_redis_marked(&redis, mode).await;
        if kept.is_ok() {
            feature::reply::store_reachable(feature::reply::Store::Redis);
        }
        match kept {
            Ok(true) => tracing::info!(
                key = crate::instance::MODE_KEY,
                "Redis had lost its data and Tavern's mark; the mark is written again"
            ),
            Ok(false) => {}
            // An outage is reported by /readyz; the next tick tries again.
            Err(error) => tracing::debug!(%error, "could not look at Redis's mark"),
        }
    }
}

/// How often [`tell_stores_back`] looks at the stores.
const STORES_LOOKED_AT_EVERY: Duration = Duration::from_secs(15);

/// Pings both stores now and then until `shutdown`, telling the features' answers
/// when one answers (`feature::reply::store_reachable`): an outage they told ends
/// with one INFO, and the next is told again, even where nothing polls `/readyz`.
async fn tell_stores_back(redis: Redis, postgres: Postgres, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(STORES_LOOKED_AT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if matches!(
            tokio::time::timeout(PROBE_TIMEOUT, redis.ping()).await,
            Ok(Ok(()))
        ) {
            feature::reply::store_reachable(feature::reply::Store::Redis);
        }
        if matches!(
            tokio::time::timeout(PROBE_TIMEOUT, postgres.ping()).await,
            Ok(Ok(()))
        ) {
            feature::reply::store_reachable(feature::reply::Store::Postgres);
        }
    }
}

struct HealthProbe(Arc<Health>);

const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

impl Readiness for HealthProbe {
    fn check(&self) -> discord::BoxFuture<'static, Vec<Component>> {
        let health = Arc::clone(&self.0);
        Box::pin(async move {
            let redis = match health.redis.get() {
                Some(redis) => match tokio::time::timeout(PROBE_TIMEOUT, redis.ping()).await {
                    Ok(Ok(())) => {
                        feature::reply::store_reachable(feature::reply::Store::Redis);
                        Component {
                            name: "redis",
                            ready: true,
                            detail: None,
                        }
                    }
                    Ok(Err(e)) => Component {
                        name: "redis",
                        ready: false,
                        detail: Some(e.to_string()),
                    },
                    Err(_) => Component {
                        name: "redis",
                        ready: false,
                        detail: Some("ping timed out".into()),
                    },
                },
                None => Component {
                    name: "redis",
                    ready: false,
                    detail: Some(
                        health
                            .connecting_error("redis")
                            .unwrap_or_else(|| "connecting".into()),
                    ),
                },
            };
            let postgres = match health.postgres.get() {
                Some(pg) => match tokio::time::timeout(PROBE_TIMEOUT, pg.ping()).await {
                    Ok(Ok(())) => {
                        feature::reply::store_reachable(feature::reply::Store::Postgres);
                        Component {
                            name: "postgres",
                            ready: true,
                            detail: None,
                        }
                    }
                    Ok(Err(e)) => Component {
                        name: "postgres",
                        ready: false,
                        detail: Some(e.to_string()),
                    },
                    Err(_) => Component {
                        name: "postgres",
                        ready: false,
                        detail: Some("ping timed out".into()),
                    },
                },
                None => Component {
                    name: "postgres",
                    ready: false,
                    detail: Some(
                        health
                            .connecting_error("postgres")
                            .unwrap_or_else(|| "connecting".into()),
                    ),
                },
            };
            // Ready only while every shard this process runs has a live session; the
            // detail names the shards that do not (or why they have not started).
            let gateway_ready = health.gateway.get().map(|g| g.is_ready()).unwrap_or(false);
            let discord = Component {
                name: "discord",
                ready: gateway_ready,
                detail: (!gateway_ready).then(|| {
                    health
                        .gateway
                        .get()
                        .and_then(|g| g.detail())
                        .unwrap_or_else(|| "gateway not connected".to_owned())
                }),
            };
            let serving = health.serving.load(std::sync::atomic::Ordering::Relaxed);
            let features = Component {
                name: "features",
                ready: serving,
                detail: (!serving).then(|| {
                    health
                        .connecting_error("features")
                        .unwrap_or_else(|| "starting".to_owned())
                }),
            };
            let mut components = vec![redis, postgres, discord, features];
            if let Some(services) = health.services.get() {
                components.extend(services.states().into_iter().map(|(name, state)| {
                    let detail = match state {
                        ServiceState::Running => None,
                        ServiceState::Starting => Some("starting".to_owned()),
                        ServiceState::Restarting { error } => Some(format!("restarting: {error}")),
                        ServiceState::Stopped => Some("stopped".to_owned()),
                    };
                    Component {
                        name,
                        ready: detail.is_none(),
                        detail,
                    }
                }));
            }
            components
        })
    }
}

/// Connects with [`feature::backoff::retry`] until it works or shutdown. The first failure is
/// one clear ERROR line; later ones are DEBUG so the log stays readable during a long
/// outage.
async fn connect_with_backoff<T, F, Fut>(
    name: &'static str,
    shown_url: String,
    health: &Health,
    shutdown: &CancellationToken,
    connect: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, store::StoreError>>,
{
    let (value, attempts) = feature::backoff::retry(shutdown, connect, |attempt, error: &store::StoreError| {
        health.set_connecting(name, Some(error.to_string()));
        // A PostgreSQL error may be a server still starting; other lasting ones (a
        // database number the server does not have, a refused password) are not the
        // server being away.
        let lasting = !error.is_transient() && !matches!(error, store::StoreError::Postgres(_));
        if attempt > 1 {
            tracing::debug!(store = name, attempt, %error, "still not connected");
        } else if lasting {
            tracing::error!(store = name, url = %shown_url, %error, "{name} answered, but refused what the configuration asks: this will not go away by retrying, fix the configuration; /readyz reports not ready; retrying with backoff (up to every 30 s)");
        } else {
            tracing::error!(store = name, url = %shown_url, %error, "{name} is unreachable; /readyz reports not ready; retrying with backoff (up to every 30 s)");
        }
    })
    .await?;
    health.set_connecting(name, None);
    if attempts > 1 {
        tracing::info!(store = name, url = %shown_url, attempts, "connected after retrying");
    } else {
        tracing::info!(store = name, url = %shown_url, "connected");
    }
    Some(value)
}

/// Runs a feature's start-up work (the rolls restore, say) the way the stores are
/// connected: the first failure is logged as an error and shown on `/readyz` under
/// `features`, then it is retried with [`feature::backoff::retry`]. Serving waits for
/// it. `false` when shut down first.
async fn start_up_with_backoff(
    name: &'static str,
    startup: &feature::Startup,
    health: &Health,
    shutdown: &CancellationToken,
) -> bool {
    let work = startup.name();
    tracing::info!(feature = name, work, "running start-up work");
    let done = feature::backoff::retry(shutdown, || startup.run(), |attempt, error: &feature::TaskError| {
        health.set_connecting("features", Some(format!("start-up work of {name} ({work}): {error}")));
        if attempt == 1 {
            tracing::error!(feature = name, %error, "start-up work failed; /readyz reports not ready; retrying with backoff (up to every 30 s)");
        } else {
            tracing::debug!(feature = name, attempt, %error, "start-up work still failing");
        }
    })
    .await;
    let Some(((), attempts)) = done else {
        return false;
    };
    health.set_connecting("features", None);
    if attempts > 1 {
        tracing::info!(
            feature = name,
            attempts,
            "start-up work done after retrying"
        );
    }
    true
}

/// A running Tavern.
#[derive(Debug)]
pub struct Running {
    pub http_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    /// The in-process fake Discord of sandbox mode.
    pub sim: Option<discord_sim::Sim>,
    pub demo: Option<discord_sim::Demo>,
    /// The in-process fake Meetup of sandbox mode, with its demo group.
    pub meetup: Option<Arc<crate::sandbox::SandboxMeetup>>,
    shutdown: CancellationToken,
    main: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Every route the site serves and who may call it, once the features are routed.
    manifest: Arc<OnceLock<web::access::Manifest>>,
}

impl Running {
    /// Asks everything to stop (same as SIGTERM).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The manifest of every route the site serves (the fixed ones, the home page and
    /// the sandbox console, the features' and the login's), once they are routed;
    /// `None` before.
    pub fn manifest(&self) -> Option<&web::access::Manifest> {
        self.manifest.get()
    }

    /// Waits until Tavern has stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        let main = self.main.await.context("main task panicked")?;
        self.shutdown.cancel();
        self.http
            .await
            .context("http task panicked")?
            .context("http server")?;
        main
    }
}

/// The features Tavern runs, built from one [`Context`]. One line per feature; `serve`,
/// `migrate` and `check` all read this list.
pub fn features(ctx: &Context, config: &Config, gateway: &GatewayStatus) -> Vec<Feature> {
    features_with(ctx, config, gateway, meetings_config(config))
}

/// [`features`], the meetings feature built with `meetings`.
fn features_with(
    ctx: &Context,
    config: &Config,
    gateway: &GatewayStatus,
    meetings: meetings::MeetingsConfig,
) -> Vec<Feature> {
    let features = vec![
        crate::core::feature(ctx, gateway.clone()),
        rolls::feature(ctx, rolls_config(config)),
        drinking::feature(ctx, drinking_config(config)),
        campaigns::feature(ctx, config.meetup.clone()),
        clips::feature(ctx, clips::ClipsConfig::default()),
        meetings::feature(ctx, meetings),
    ];
    // `/help` lists every command of every feature.
    ctx.catalogue.fill(&features);
    features
}

/// The drinking game's settings from the configuration (`drinking_*`).
pub fn drinking_config(config: &Config) -> drinking::DrinkingConfig {
    let settings = &config.drinking;
    drinking::DrinkingConfig {
        player_limit: settings.max_players,
        completed_ttl: settings.game_lifetime,
        force_start_after: settings.force_start_after,
        die: settings.die,
        ..drinking::DrinkingConfig::default()
    }
}

/// The file in the data dir holding the sandbox's meetings secret key.
const SANDBOX_MEETINGS_KEY: &str = "meetings-secret-key";

/// The meetings feature's settings: the configured secret key, or in sandbox mode the
/// one `serve` made once in `{data_dir}/meetings-secret-key` (so the sandbox's meeting
/// tokens survive a restart). A key file that cannot be read is logged, and the
/// feature then uses a key of this process only. For the commands that use the key
/// (`serve`, `tavern meetings ...`, `tavern meeting-controller`); the one-shot commands
/// that only read the feature list (`migrate`, `check`, `tokens`) seal nothing, and
/// neither read nor ask for it ([`command_features`]).
pub fn meetings_config(config: &Config) -> meetings::MeetingsConfig {
    meetings_settings(config, meetings_key(config))
}

/// The meetings key `serve` and the meetings commands use (see [`meetings_config`]).
fn meetings_key(config: &Config) -> Option<meetings::auth::MeetingsSecretKey> {
    match &config.meetings_secret_key {
        Some(key) => Some(key.clone()),
        None if config.sandbox() => {
            let path = config.data_dir.join(SANDBOX_MEETINGS_KEY);
            match read_meetings_key(&path) {
                Ok(key) => key,
                Err(error) => {
                    tracing::warn!(path = %path.display(), error = format!("{error:#}"), "no sandbox meetings secret key");
                    None
                }
            }
        }
        None => None,
    }
}

/// The meetings feature's settings, with `secret_key`.
fn meetings_settings(
    config: &Config,
    secret_key: Option<meetings::auth::MeetingsSecretKey>,
) -> meetings::MeetingsConfig {
    meetings::MeetingsConfig {
        secret_key,
        region: config.meetings.region.clone(),
        controller: match config.meetings.controller {
            crate::config::ControllerMode::InProcess => Some(controller_config(config)),
            crate::config::ControllerMode::Separate => None,
        },
        media: match config.meetings.controller {
            crate::config::ControllerMode::InProcess => Some(media_config(config)),
            crate::config::ControllerMode::Separate => None,
        },
        recordings: meetings::recording::RecordingsConfig {
            storage: Some(
                config
                    .meetings
                    .recordings_url
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("recordings").display().to_string()),
            ),
            work_dir: Some(config.data_dir.join("recordings-work")),
            ..meetings::recording::RecordingsConfig::default()
        },
        auth: config.meetings.auth,
        ..meetings::MeetingsConfig::default()
    }
}

/// The in-process media handler's settings: the `media_handler_*` ones, as for
/// `tavern media-handler` (see [`media_handler_config`]), except that without
/// `media_handler_addr` it listens on any free UDP port of the meeting controller's
/// address.
pub fn media_config(config: &Config) -> meetings::media::HandlerConfig {
    let mut handler = media_handler_config(config);
    if config.meetings.media_handler.addr.is_none() {
        handler.listen = std::net::SocketAddr::new(config.meetings.controller_addr.ip(), 0);
    }
    handler
}

/// `tavern media-handler`'s settings: `media_handler_addr` (default any free port of
/// 127.0.0.1), reached at `media_handler_host` (default: as the meeting controller),
/// `media_handler_id` (default: a new id per start), `media_handler_cert`/`_key`
/// (default: self-signed). Registered with its certificate hash, so every meeting
/// controller hands it out.
pub fn media_handler_config(config: &Config) -> meetings::media::HandlerConfig {
    let settings = &config.meetings.media_handler;
    meetings::media::HandlerConfig {
        listen: settings
            .addr
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        public_host: settings
            .host
            .clone()
            .unwrap_or_else(|| meetings_host(config)),
        region: config.meetings.region.clone(),
        certificate: settings.certificate.clone(),
        ..meetings::media::HandlerConfig::new(
            settings
                .id
                .clone()
                .unwrap_or_else(meetings::domain::HandlerId::generate),
        )
    }
}

/// The host name clients reach the meeting controller and the media handler by:
/// `meeting_controller_host`, else the host of `public_url`, else the listening address.
fn meetings_host(config: &Config) -> String {
    let settings = &config.meetings;
    settings.controller_host.clone().unwrap_or_else(|| {
        match config.public_url.as_ref().and_then(|u| u.host_str()) {
            Some(host) => host.to_owned(),
            None if settings.controller_addr.ip().is_unspecified() => "127.0.0.1".to_owned(),
            None => settings.controller_addr.ip().to_string(),
        }
    })
}

/// The meeting controller's settings: `tavern serve`'s own (`meeting_controller =
/// "in-process"`) or `tavern meeting-controller`'s. Without `meeting_controller_id` each
/// start registers under a new id (`mc-` and random letters), so processes on one host
/// never take each other's place in the registry; the ids of stopped ones simply stop
/// heartbeating and get no meetings.
pub fn controller_config(config: &Config) -> meetings::controller::ControllerConfig {
    let settings = &config.meetings;
    let controller_id = settings
        .controller_id
        .clone()
        .unwrap_or_else(meetings::domain::ControllerId::generate);
    let public_host = meetings_host(config);
    meetings::controller::ControllerConfig {
        listen: settings.controller_addr,
        public_host,
        region: settings.region.clone(),
        certificate: settings.controller_certificate.clone(),
        // Media grants for the handlers of the registry (an in-process handler's own
        // address is added by the meetings feature).
        media: Some(meetings::controller::MediaHandlers {
            directory: meetings::controller::MediaDirectory::default(),
            liveness: meetings::domain::Liveness::default(),
        }),
        ..meetings::controller::ControllerConfig::new(controller_id)
    }
}

/// The meetings key kept at `path`, if there is one.
fn read_meetings_key(
    path: &std::path::Path,
) -> anyhow::Result<Option<meetings::auth::MeetingsSecretKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => meetings::auth::MeetingsSecretKey::parse_base64(&text)
            .context("the key file")
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context("reading the key file"),
    }
}

/// Sandbox mode without a configured key: makes `{data_dir}/meetings-secret-key` once,
/// before anything reads it. `serve` calls it before the features are built, and so do
/// `tavern meetings ...` and `tavern meeting-controller`, so that whichever starts first
/// makes the key the others use.
pub fn ensure_sandbox_meetings_key(config: &Config) {
    if !config.sandbox() || config.meetings_secret_key.is_some() {
        return;
    }
    let path = config.data_dir.join(SANDBOX_MEETINGS_KEY);
    if let Err(error) = sandbox_meetings_key(&path) {
        tracing::warn!(path = %path.display(), error = format!("{error:#}"), "could not make the sandbox's meetings secret key");
    }
}

/// Reads the sandbox's meetings key from `path`, or makes it there (readable by the
/// owner only) the first time.
fn sandbox_meetings_key(
    path: &std::path::Path,
) -> anyhow::Result<meetings::auth::MeetingsSecretKey> {
    use meetings::auth::MeetingsSecretKey;
    use std::io::Write as _;
    if let Some(key) = read_meetings_key(path)? {
        return Ok(key);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).context("making the data dir")?;
    }
    let key = MeetingsSecretKey::generate().context("a random key")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).context("reading the key file")?;
            return MeetingsSecretKey::parse_base64(&text).context("the key file");
        }
        Err(e) => return Err(e).context("creating the key file"),
    };
    writeln!(file, "{}", key.to_base64()).context("writing the key file")?;
    tracing::info!(path = %path.display(), "made the sandbox's meetings secret key");
    Ok(key)
}

/// The rolls feature's settings, from Tavern's configuration.
pub fn rolls_config(config: &Config) -> rolls::RollsConfig {
    let mut rolls = rolls::RollsConfig::new(&config.data_dir);
    rolls.sync_target = config.rolls_sync_url.clone();
    rolls.sync_keep = config.rolls_sync_keep;
    rolls
}

/// The public URL: the configured one, or `http://{http_addr}`.
pub fn public_url(config: &Config, http_addr: SocketAddr) -> anyhow::Result<url::Url> {
    match &config.public_url {
        Some(url) => Ok(url.clone()),
        None => url::Url::parse(&format!("http://{http_addr}"))
            .with_context(|| format!("http://{http_addr} as the public URL")),
    }
}

/// The [`Context`] every feature is built from.
pub fn context(
    redis: Redis,
    postgres: Postgres,
    discord: discord::Discord,
    public_url: url::Url,
) -> Context {
    let sessions = web::session::Sessions::new(
        redis.clone(),
        web::session::SessionConfig::for_public_url(&public_url),
    );
    Context {
        redis,
        postgres,
        discord,
        sessions,
        clock: Arc::new(feature::SystemClock),
        public_url,
        discord_login: None,
        catalogue: feature::Catalogue::default(),
    }
}

/// The Discord REST handle of a one-shot command (`check`, `migrate`, `sync --once`):
/// the configured bot when there is a token, otherwise one that refuses every call.
pub fn command_discord(config: &Config) -> discord::Discord {
    match &config.discord_token {
        Some(token) => discord::Discord::new(&DiscordConfig::new(
            token.expose(),
            config.discord_api.clone(),
        )),
        None => discord::Discord::without_token(),
    }
}

/// The features as a one-shot command sees them (`migrate`, `check`, `tokens`), built
/// from the given stores. Such a command seals and signs nothing, so the meetings
/// feature gets a key of this process only: whether a meetings secret key is
/// configured is said by the commands that use it, not by these.
pub fn command_features(
    config: &Config,
    redis: Redis,
    postgres: Postgres,
) -> anyhow::Result<Vec<Feature>> {
    // The features' Discord handle has an HTTP client, which needs TLS set up.
    discord::install_crypto_provider();
    let public_url = public_url(config, config.http_addr)?;
    let ctx = context(redis, postgres, command_discord(config), public_url);
    let unused_key = meetings::auth::MeetingsSecretKey::random(&mut rand::rng());
    let meetings = meetings_settings(config, Some(unused_key));
    Ok(features_with(
        &ctx,
        config,
        &GatewayStatus::default(),
        meetings,
    ))
}

/// Starts Tavern: binds its listeners at once and brings up the rest in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    config.check_serve()?;
    config.check_files()?;
    let shutdown = CancellationToken::new();
    let server = web::ServerConfig {
        trusted_proxies: config.trusted_proxies.clone(),
        ..web::ServerConfig::default()
    };
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on TAVERN_HTTP_ADDR {}", config.http_addr))?;
    let http_addr = http_listener.local_addr()?;
    let metrics = metrics_handle();

    let health = Arc::new(Health::default());
    let state = AppState {
        readiness: Arc::new(web::LoggedReadiness::new(HealthProbe(Arc::clone(&health)))),
        metrics: metrics.clone(),
    };

    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_addr {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on TAVERN_METRICS_ADDR {addr}"))?;
        metrics_addr = Some(listener.local_addr()?);
        let app = web::metrics_router(state.clone());
        let stop = shutdown.clone();
        let server = server.clone();
        tokio::spawn(async move {
            web::serve_with(listener, app, server, async move { stop.cancelled().await }).await
        });
    }

    let (sim, demo, bot_config) = if let Some(token) = &config.discord_token {
        let mut rest = DiscordConfig::new(token.expose(), config.discord_api.clone());
        rest.max_retries = 4;
        let bot = BotConfig {
            rest,
            gateway: config.discord_gateway.clone(),
            shards: config.shards,
            drain_timeout: Duration::from_secs(10),
            // Filled once the features are built (`run`).
            invite_permissions: None,
        };
        (None, None, bot)
    } else {
        let sim = discord_sim::Sim::start(discord_sim::SimConfig::default())
            .context("starting the sandbox's fake Discord")?;
        let demo = sim.seed_demo();
        crate::sandbox::seed_clips(&sim, &demo)?;
        let bot = BotConfig::stand_in(sim.token(), &sim.addr().to_string(), &sim.gateway_url());
        tracing::info!(api = %sim.addr(), "sandbox mode: no TAVERN_DISCORD_TOKEN, so Tavern talks to an in-process fake Discord");
        (Some(sim), Some(demo), bot)
    };

    // Sandbox mode: the demo meeting the console links to (found or made once the
    // stores are up).
    let demo_meeting = match (&sim, &demo) {
        (Some(sim), Some(demo)) => {
            let player = sim
                .user(demo.demo_player)
                .map(|u| u.global_name.unwrap_or(u.name))
                .unwrap_or_default();
            Some(Arc::new(
                crate::sandbox::DemoMeeting::new(&config.data_dir)
                    .hosted_by(demo.demo_player, &player),
            ))
        }
        _ => None,
    };
    let public_url = public_url(&config, http_addr)?;
    // Sandbox mode: links to messages open in the console (Discord does not know the
    // fake's guild).
    let mut bot_config = bot_config;
    if sim.is_some() {
        bot_config.rest.app = Some(
            public_url
                .join("sandbox/")
                .context("the sandbox console's URL")?,
        );
    }
    // Sandbox mode: the campaigns sync a fake Meetup too (unless Meetup is configured).
    let mut config = config;
    let sandbox_meetup = match (&sim, &demo) {
        (Some(sim), Some(demo)) if config.meetup.is_none() => {
            let (meetup, campaigns) = crate::sandbox::start_meetup(sim, demo, &public_url).await?;
            config.meetup = Some(campaigns);
            Some(Arc::new(meetup))
        }
        _ => None,
    };
    let login = login_setup(&config, public_url.clone(), sim.as_ref(), demo.as_ref())?;

    // The web sessions exist before Redis answers (the console and the home page are
    // served at once); a visitor without a cookie never touches Redis.
    let session_redis = Redis::lazy(config.redis_url.expose())
        .with_context(|| format!("the Redis URL {}", config.redis_url))?;
    let mut session_config = web::session::SessionConfig::for_public_url(&public_url);
    if sim.is_some() && config.public_url.is_none() {
        // The sandbox on a loopback address: the browser may call it `localhost` or
        // `[::1]` as well as `127.0.0.1`.
        session_config = session_config.with_loopback_aliases();
    }
    let sessions = web::session::Sessions::new(session_redis, session_config);
    let site = web::page::Site::default().with_login(login.is_some());
    let mut extra = vec![web::page::home_routes(&sessions)];
    if let (Some(sim), Some(demo)) = (&sim, &demo) {
        extra.push(web::sandbox::console(
            sim.clone(),
            demo.clone(),
            &sessions,
            demo_meeting.as_ref().map(crate::sandbox::DemoMeeting::link),
        ));
    }
    let late = web::LateRoutes::default();
    let (app, site_manifest) = web::assemble(state, site.clone(), extra, late.clone());
    let stop = shutdown.clone();
    let http = tokio::spawn(async move {
        web::serve_with(
            http_listener,
            app,
            server,
            async move { stop.cancelled().await },
        )
        .await
    });

    let web = Web {
        public_url,
        sessions,
        site,
        sandbox: sim.is_some(),
        sandbox_meetup: sandbox_meetup.clone(),
        sandbox_demo: demo.clone(),
        sandbox_meeting: demo_meeting,
        manifest: site_manifest,
    };
    let manifest = Arc::new(OnceLock::new());
    let main = tokio::spawn(run(
        config,
        bot_config,
        web,
        login,
        health,
        (late, Arc::clone(&manifest)),
        shutdown.clone(),
    ));
    Ok(Running {
        http_addr,
        metrics_addr,
        sim,
        demo,
        meetup: sandbox_meetup,
        shutdown,
        main,
        http,
        manifest,
    })
}

/// The web side that exists before the stores: where Tavern is reached, the sessions
/// and the site's navigation (filled once the features are built).
struct Web {
    public_url: url::Url,
    sessions: web::session::Sessions,
    site: web::page::Site,
    sandbox: bool,
    sandbox_meetup: Option<Arc<crate::sandbox::SandboxMeetup>>,
    sandbox_demo: Option<discord_sim::Demo>,
    sandbox_meeting: Option<Arc<crate::sandbox::DemoMeeting>>,
    /// The routes served before the features (health, assets, home, sandbox console).
    manifest: web::access::Manifest,
}

/// What the web login needs once Redis is up.
struct LoginSetup {
    client_id: String,
    client_secret: discord::oauth::ClientSecret,
    endpoints: discord::oauth::OAuthEndpoints,
}

/// The Discord login: in sandbox mode against the fake Discord (its own OAuth2 client,
/// the callback registered, the demo player signed in), otherwise with the configured
/// client; `None` when there is none.
fn login_setup(
    config: &Config,
    public_url: url::Url,
    sim: Option<&discord_sim::Sim>,
    demo: Option<&discord_sim::Demo>,
) -> anyhow::Result<Option<LoginSetup>> {
    let callback = web::login::callback_url(&public_url).context("the login callback URL")?;
    let setup = match (sim, demo, &config.discord_login) {
        (Some(sim), Some(demo), _) => {
            sim.register_redirect_uri(callback.as_str());
            // Adding the bot to a guild from the clips pages comes back to its own
            // callback, which the fake Discord must know too.
            let install = clips::web::install_callback_url(&public_url)
                .context("the clips install callback URL")?;
            sim.register_redirect_uri(install.as_str());
            // So does logging in to the meetings API with Discord.
            let meetings_login = meetings::web::discord_callback_url(&public_url)
                .context("the meetings login callback URL")?;
            sim.register_redirect_uri(meetings_login.as_str());
            sim.sign_in(Some(demo.demo_player));
            LoginSetup {
                client_id: sim.application_id().to_string(),
                client_secret: discord::oauth::ClientSecret::from(sim.client_secret()),
                endpoints: discord::oauth::OAuthEndpoints::at(&sim.http_url())
                    .context("the fake Discord's OAuth2 URLs")?,
            }
        }
        (_, _, Some(login)) => LoginSetup {
            client_id: login.client_id.clone(),
            client_secret: login.client_secret.clone(),
            endpoints: discord::oauth::OAuthEndpoints::at(login.base_url.as_str())
                .context("TAVERN_DISCORD_OAUTH_URL")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(setup))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    config: Config,
    bot_config: BotConfig,
    web: Web,
    login: Option<LoginSetup>,
    health: Arc<Health>,
    (late, manifest_slot): (web::LateRoutes, Arc<OnceLock<web::access::Manifest>>),
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Each store is handed to `/readyz` as soon as it is connected, so that while the
    // other is still unreachable it reports its own state, not "connecting".
    let redis_url = config.redis_url.clone();
    let redis = async {
        let redis =
            connect_with_backoff("redis", redis_url.to_string(), &health, &shutdown, || {
                let url = redis_url.expose().to_owned();
                async move { Redis::connect(&url).await }
            })
            .await?;
        let _ = health.redis.set(redis.clone());
        Some(redis)
    };
    let pg_url = config.database_url.clone();
    let postgres = async {
        let postgres =
            connect_with_backoff("postgres", pg_url.to_string(), &health, &shutdown, || {
                let url = pg_url.expose().to_owned();
                async move { Postgres::connect(&url).await }
            })
            .await?;
        let _ = health.postgres.set(postgres.clone());
        Some(postgres)
    };
    let (redis, postgres) = tokio::join!(redis, postgres);
    let (Some(redis), Some(postgres)) = (redis, postgres) else {
        tracing::info!("shut down before the stores were reachable");
        return Ok(());
    };
    tokio::spawn(tell_stores_back(
        redis.clone(),
        postgres.clone(),
        shutdown.clone(),
    ));

    // Every process of the bot takes its turn in Discord's global request limit
    // through this Redis, so N processes together stay within it.
    let mut rest = bot_config.rest.clone();
    rest.global_limiter = Some(Arc::new(feature::discord_limit::RedisGlobalLimiter::new(
        redis.clone(),
        rest.global_rate_limit,
    )));
    let discord = discord::Discord::new(&rest);
    let gateway = GatewayStatus::default();
    let _ = health.gateway.set(gateway.clone());
    let login_app = match login {
        Some(login) => {
            let callback =
                web::login::callback_url(&web.public_url).context("the login callback URL")?;
            tracing::info!(%callback, "logging in with Discord on the web is on");
            Some(discord::oauth::OAuthApp::new(
                login.client_id,
                login.client_secret,
                callback,
                login.endpoints,
            ))
        }
        None => None,
    };
    let ctx = Context {
        redis: redis.clone(),
        postgres: postgres.clone(),
        discord: discord.clone(),
        sessions: web.sessions.clone(),
        clock: Arc::new(feature::SystemClock),
        public_url: web.public_url.clone(),
        discord_login: login_app.clone(),
        catalogue: feature::Catalogue::default(),
    };
    ensure_sandbox_meetings_key(&config);
    let mut features = features(&ctx, &config, &gateway);
    web.site.set_nav(
        features
            .iter()
            .flat_map(|f| f.nav.iter().cloned())
            .chain(web.sandbox.then_some(web::sandbox::NAV)),
    );

    for migrations in features.iter().filter_map(|f| f.migrations) {
        postgres
            .migrate(&migrations)
            .await
            .with_context(|| format!("migrating PostgreSQL schema {}", migrations.schema))?;
    }
    let mode = if web.sandbox {
        crate::instance::Mode::Sandbox
    } else {
        crate::instance::Mode::Discord
    };
    // Marked before the sandbox writes anything of its own, so that what it finds is
    // someone else's.
    let foreign = crate::instance::mark(&redis, &postgres, mode).await;
    let community: Vec<_> = foreign
        .iter()
        .filter(|f| matches!(f, crate::instance::Foreign::Discord(_)))
        .cloned()
        .collect();
    if mode == crate::instance::Mode::Sandbox && !community.is_empty() {
        return Err(crate::instance::RefusedStores::new(
            &community,
            &config.redis_url.to_string(),
            &config.database_url.to_string(),
        )
        .into());
    }
    // Connected to Discord, a sandbox's stores are taken over, demo data and all.
    let (taken_over, foreign): (Vec<_>, Vec<_>) = foreign
        .into_iter()
        .partition(|f| matches!(f, crate::instance::Foreign::Sandbox(_)));
    if !taken_over.is_empty() {
        let found: Vec<String> = taken_over.iter().map(ToString::to_string).collect();
        tracing::warn!(
            "connected to Discord on stores a sandbox used: {}. They are marked as this Tavern's now, and the sandbox's data stays in them (its demo server's records, demo users and the demo Meetup's tokens). To start clean, stop Tavern, point TAVERN_REDIS_URL and TAVERN_DATABASE_URL at empty stores (or empty these: FLUSHDB; drop the database) and start again",
            found.join("; ")
        );
    }
    // Data without a mark may be anyone's: the sandbox runs, but writes none of its
    // demo data there.
    let foreign_redis = foreign.iter().any(|f| f.store() == "Redis");
    let foreign_postgres = foreign.iter().any(|f| f.store() == "PostgreSQL");
    if !foreign.is_empty() {
        let found: Vec<String> = foreign.iter().map(ToString::to_string).collect();
        tracing::warn!(
            "sandbox mode on data it did not write: {}. The data has no mark (the key {} in Redis, the table tavern.instance in PostgreSQL) saying it is the sandbox's: it is someone else's, or older than the marks. Its demo data (the demo Meetup's tokens and links, the demo meeting) is not written there: point TAVERN_REDIS_URL and TAVERN_DATABASE_URL at stores of their own, or, if the data is a sandbox's you no longer need, empty those stores (FLUSHDB; drop the database) and start again",
            found.join("; "),
            crate::instance::MODE_KEY
        );
    }
    if !foreign_redis {
        // Redis is this Tavern's own: if it loses its data while Tavern runs (a restart
        // without persistence), the mark is written again with what Tavern writes next.
        tokio::spawn(keep_redis_marked(redis.clone(), mode, shutdown.clone()));
    }
    if let (Some(meetup), Some(demo), false) =
        (&web.sandbox_meetup, &web.sandbox_demo, foreign_redis)
    {
        crate::sandbox::forget_an_earlier_fake_discord(&redis, meetup, demo).await?;
        crate::sandbox::authorise_organiser(&redis, meetup, demo).await?;
    }
    for feature in &features {
        for startup in &feature.startup {
            if !start_up_with_backoff(feature.name, startup, &health, &shutdown).await {
                tracing::info!("shut down before the start-up work finished");
                return Ok(());
            }
        }
    }
    if let (Some(meeting), false) = (&web.sandbox_meeting, foreign_postgres) {
        meeting.connect(meetings::Repo::from_context(&ctx));
        // Made now, so the console's first drawing links it at once.
        // A failure is logged by the look-up itself, once per outage.
        let _ = meeting.code().await;
    }
    let jobs: Vec<_> = features
        .iter_mut()
        .flat_map(|f| std::mem::take(&mut f.jobs))
        .collect();
    let services: Vec<_> = features
        .iter_mut()
        .flat_map(|f| std::mem::take(&mut f.services))
        .collect();
    let mut manifest = feature::manifest(&features);
    manifest.absorb(web.manifest.clone());
    let mut routes = axum::Router::new();
    for feature in &mut features {
        if let Some(r) = feature.routes.take() {
            routes = routes.merge(r);
        }
    }
    if let Some(app) = login_app {
        let (login, declared) = web::login::routes(
            ctx.sessions.clone(),
            app,
            web::login::LoginRateLimit::default(),
        )
        .into_parts();
        routes = routes.merge(login);
        manifest.extend(declared);
    }
    for undeclared in &manifest.undeclared {
        tracing::warn!(
            feature = %undeclared,
            "a feature serves routes that do not say who may call them"
        );
    }
    late.set(routes);
    let _ = manifest_slot.set(manifest);
    let mut bot_config = bot_config;
    if bot_config.gateway.is_none() {
        // On Discord itself the log names the link that adds the bot to a server with
        // every feature's permissions.
        bot_config.invite_permissions = Some(ctx.catalogue.bot_permissions());
    }
    let bot = feature::bot(bot_config, discord, &mut features)
        .context("routing feature commands")?
        .with_status(gateway);

    let instance = format!("{}:{}", hostname(), std::process::id());
    let jobs_task =
        tokio::spawn(JobRunner::new(redis.clone(), instance).run(jobs, shutdown.clone()));
    let service_runner = ServiceRunner::new();
    let _ = health.services.set(service_runner.clone());
    let services_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { service_runner.run(services, shutdown).await }
    });
    health
        .serving
        .store(true, std::sync::atomic::Ordering::Relaxed);

    let result = bot.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = tokio::join!(jobs_task, services_task);
    result.context("discord")?;
    tracing::info!("tavern stopped");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "tavern".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_sandbox_meetings_key_is_made_once_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("meetings-secret-key");
        assert!(
            read_meetings_key(&path).unwrap().is_none(),
            "read, never made"
        );
        assert!(!path.exists());
        let made = sandbox_meetings_key(&path).unwrap();
        assert_eq!(
            read_meetings_key(&path).unwrap().unwrap().to_base64(),
            made.to_base64()
        );
        let again = sandbox_meetings_key(&path).unwrap();
        assert_eq!(made.to_base64(), again.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage").unwrap();
        let err = sandbox_meetings_key(&path).unwrap_err();
        assert!(format!("{err:#}").contains("32 bytes in base64"), "{err:#}");
    }

    #[test]
    fn the_in_process_media_handler_follows_the_media_handler_settings() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let config = Config::from_sources(
            None,
            None,
            &env(&[
                ("TAVERN_MEETING_CONTROLLER_ADDR", "10.0.0.5:4433"),
                ("TAVERN_MEDIA_HANDLER_ADDR", "10.0.0.5:4434"),
                ("TAVERN_MEDIA_HANDLER_HOST", "media.example"),
                ("TAVERN_MEDIA_HANDLER_ID", "mh-here-1"),
                ("TAVERN_MEDIA_HANDLER_CERT", "/etc/tavern/mh.pem"),
                ("TAVERN_MEDIA_HANDLER_KEY", "/etc/tavern/mh.key"),
            ]),
        )
        .unwrap();
        let handler = media_config(&config);
        assert_eq!(handler.listen, "10.0.0.5:4434".parse().unwrap());
        assert_eq!(handler.public_host, "media.example");
        assert_eq!(handler.handler_id.to_string(), "mh-here-1");
        assert_eq!(
            handler.certificate,
            Some(("/etc/tavern/mh.pem".into(), "/etc/tavern/mh.key".into()))
        );

        // Without them: a free port of the controller's address, its host, a new id.
        let config = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_MEETING_CONTROLLER_ADDR", "10.0.0.5:4433")]),
        )
        .unwrap();
        let handler = media_config(&config);
        assert_eq!(handler.listen, "10.0.0.5:0".parse().unwrap());
        assert_eq!(handler.public_host, "10.0.0.5");
        assert!(handler.handler_id.to_string().starts_with("mh-"));
        assert_eq!(handler.certificate, None);
    }
}
