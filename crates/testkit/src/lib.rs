//! The one test world every feature's tests stand on. Test code only: it panics (with
//! a sentence) instead of returning errors, and no production crate depends on it.
//!
//! - [`World`]: a real `redis-server` (and, on request, PostgreSQL) for this test
//!   alone, a discord-sim with its demo guild, a [`ManualClock`], and the
//!   [`feature::Context`] built from them, exactly as the binary builds it.
//! - [`TestBot::spawn`]: the real bot (twilight) connected to the world's discord-sim,
//!   routing the given features; it returns once the gateway is ready and every
//!   command of those features is registered.
//! - [`eventually`]: waits for a condition with a deadline, for what happens
//!   asynchronously (a message edit, a Redis write by a job). Never sleep to wait.
//! - [`catalog`]: reads a PostgreSQL schema's tables, columns, constraints, indexes and
//!   triggers back from the catalog, for the tests that hold a schema to its seed.
//! - [`logged`]: what is logged while a piece of a test runs, for the tests that keep
//!   secrets out of the logs.
//! - [`wt::StandIn`]: a bare WebTransport server, for the tests of a client facing a
//!   controller that misbehaves while a session is set up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod catalog;
mod logs;
pub mod wt;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use base::ManualClock;
use discord::BotConfig;
use discord_sim::{Demo, Sim, SimConfig};
use feature::{Context, Feature};
pub use logs::{Logs, logged};
use store::harness::{TestPostgres, TestRedis};
use store::{Postgres, Redis};
use tokio_util::sync::CancellationToken;

/// How long [`eventually`] and [`TestBot::spawn`] wait before they fail the test.
pub const WAIT: Duration = Duration::from_secs(10);

/// The values of every `name="..."` attribute of a page's `html`, in order.
pub fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let marker = format!("{name}=\"");
    html.split(marker.as_str())
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect()
}

/// The instant every [`World`]'s clock starts at: 2025-06-15 16:53:20 UTC.
pub fn epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_750_006_400, 0).expect("a valid time")
}

/// Waits until `probe` returns `Some`, and returns what it returned. Polls quickly at
/// first, then every 50 ms; fails the test with `what` after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(WAIT, what, probe).await
}

/// [`eventually`] with another deadline.
pub async fn eventually_within<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: did not happen within {limit:?}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Real servers and a fake Discord for one test; everything stops when it is dropped.
pub struct World {
    pub sim: Sim,
    pub demo: Demo,
    pub redis: Redis,
    /// A lazy pool pointing nowhere unless the world was made [`World::with_postgres`].
    pub postgres: Postgres,
    pub clock: Arc<ManualClock>,
    pub ctx: Context,
    bot_config: BotConfig,
    redis_server: TestRedis,
    postgres_server: Option<TestPostgres>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("redis", &self.redis)
            .field("sim", &self.sim.addr())
            .finish_non_exhaustive()
    }
}

impl World {
    /// Redis, discord-sim with its demo guild, and the clock at [`epoch`].
    pub async fn new() -> World {
        World::build(None).await
    }

    /// [`World::new`] plus a fresh PostgreSQL server (nothing migrated yet).
    pub async fn with_postgres() -> World {
        let server = TestPostgres::start().await;
        World::build(Some(server)).await
    }

    async fn build(postgres_server: Option<TestPostgres>) -> World {
        discord::install_crypto_provider();
        let redis_server = TestRedis::start().await;
        let redis = redis_server.connect().await;
        let postgres = match &postgres_server {
            Some(server) => server.connect().await,
            None => Postgres::lazy("postgres://nobody@127.0.0.1:9/none")
                .expect("a lazy pool for tests without PostgreSQL"),
        };
        let sim = Sim::start(SimConfig::default()).expect("discord-sim starts");
        let demo = sim.seed_demo();
        let bot_config =
            BotConfig::stand_in(sim.token(), &sim.addr().to_string(), &sim.gateway_url());
        let discord = discord::Discord::new(&bot_config.rest);
        let clock = Arc::new(ManualClock::new(epoch()));
        let public_url = url::Url::parse("http://127.0.0.1:8080/").expect("a valid URL for tests");
        let sessions = web::session::Sessions::new(
            redis.clone(),
            web::session::SessionConfig::for_public_url(&public_url),
        );
        // The web login's OAuth2 application at discord-sim, calling back to the public
        // URL's login callback (a flow with another callback uses `with_redirect_uri`,
        // after `sim.register_redirect_uri`).
        let callback = web::login::callback_url(&public_url).expect("the login callback URL");
        sim.register_redirect_uri(callback.as_str());
        let discord_login = discord::oauth::OAuthApp::new(
            sim.application_id().to_string(),
            discord::oauth::ClientSecret::from(sim.client_secret()),
            callback,
            discord::oauth::OAuthEndpoints::at(&sim.http_url()).expect("discord-sim's OAuth2 URLs"),
        );
        let ctx = Context {
            redis: redis.clone(),
            postgres: postgres.clone(),
            discord,
            sessions,
            clock: clock.clone(),
            public_url,
            discord_login: Some(discord_login),
            catalogue: feature::Catalogue::default(),
        };
        World {
            sim,
            demo,
            redis,
            postgres,
            clock,
            ctx,
            bot_config,
            redis_server,
            postgres_server,
        }
    }

    /// The Redis server, to stop or restart it mid-test.
    pub fn redis_server(&mut self) -> &mut TestRedis {
        &mut self.redis_server
    }

    /// The PostgreSQL server, when the world has one.
    pub fn postgres_server(&mut self) -> Option<&mut TestPostgres> {
        self.postgres_server.as_mut()
    }

    /// Migrates every feature's schema, as `tavern migrate` does.
    pub async fn migrate(&self, features: &[Feature]) {
        for migrations in features.iter().filter_map(|f| f.migrations) {
            self.postgres
                .migrate(&migrations)
                .await
                .unwrap_or_else(|e| panic!("migrating schema {}: {e}", migrations.schema));
        }
    }

    /// The settings that point a bot at this world's discord-sim.
    pub fn bot_config(&self) -> BotConfig {
        self.bot_config.clone()
    }

    /// A port of its own for a site under test, and this world's context with its
    /// public URL and sessions at that address (the sessions check the origin of
    /// state-changing requests against the public URL).
    pub async fn listen(&self) -> Listening {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the site");
        let addr = listener.local_addr().expect("the site's address");
        let public_url =
            url::Url::parse(&format!("http://{addr}/")).expect("a valid URL for the site");
        let ctx = Context {
            sessions: web::session::Sessions::new(
                self.redis.clone(),
                web::session::SessionConfig::for_public_url(&public_url),
            ),
            public_url,
            ..self.ctx.clone()
        };
        Listening {
            listener,
            base: format!("http://{addr}"),
            ctx,
        }
    }
}

/// Signs `user` in as the web login does, at the world's discord-sim: its OAuth2
/// grants a real token (so a feature can read the user's guilds with it), and `ctx`'s
/// sessions hold it as `profile`. The session's cookie is
/// `ctx.sessions.config().cookie_name()` = `session.id().expose()`.
pub async fn discord_session(
    ctx: &Context,
    user: discord_sim::Snowflake,
    profile: web::session::SessionUser,
) -> web::session::Session {
    let app = ctx.discord_login.clone().expect("the world has a login");
    let scopes = [
        discord::oauth::Scope::Identify,
        discord::oauth::Scope::Guilds,
    ];
    let mut authorize = app.authorize_url("login", &scopes, None);
    authorize
        .query_pairs_mut()
        .append_pair("sim_user_id", &user.to_string());
    let back = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
        .get(authorize)
        .send()
        .await
        .expect("discord-sim's authorize page answers");
    let back = back
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url::Url::parse(v).ok())
        .expect("discord-sim sends the browser back");
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let grant = app
        .exchange_code(&code.into())
        .await
        .expect("the code is exchanged");
    ctx.sessions
        .log_in(None, profile, &grant)
        .await
        .expect("a session")
}

/// What [`World::listen`] gives: serve the site on `listener`.
#[derive(Debug)]
pub struct Listening {
    pub listener: tokio::net::TcpListener,
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base: String,
    /// The world's context, its public URL (`{base}/`) and sessions moved to the site.
    pub ctx: Context,
}

/// The real bot on a [`World`]'s discord-sim, routing some features.
#[derive(Debug)]
pub struct TestBot {
    pub discord: discord::Discord,
    pub status: discord::GatewayStatus,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestBot {
    /// Routes `features` (built from `world.ctx`), records their commands in the
    /// context's catalogue (as the binary does) and connects; returns once the
    /// gateway is ready and every command of `features` is registered.
    pub async fn spawn(world: &World, mut features: Vec<Feature>) -> TestBot {
        let wanted: Vec<String> = features
            .iter()
            .flat_map(|f| f.commands.iter().map(|(spec, _)| spec.name.clone()))
            .collect();
        // As the binary does: `/help` lists every command of these features.
        world.ctx.catalogue.fill(&features);
        let discord = world.ctx.discord.clone();
        let bot = feature::bot(world.bot_config(), discord.clone(), &mut features)
            .expect("features route without clashes");
        let status = bot.status();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = bot.run(token).await {
                panic!("test bot stopped: {error}");
            }
        });
        eventually("the test bot's gateway is ready", || {
            let ready = status.is_ready();
            async move { ready.then_some(()) }
        })
        .await;
        eventually("every command is registered", || {
            let registered = world.sim.registered_commands();
            let all = wanted
                .iter()
                .all(|name| registered.iter().any(|c| &c.name == name));
            async move { all.then_some(()) }
        })
        .await;
        TestBot {
            discord,
            status,
            shutdown,
            task,
        }
    }

    /// Closes the shards and waits for in-flight interactions.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("the test bot task");
    }
}
