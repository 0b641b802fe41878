//! `tavern bench meetings`: the meetings control plane under a crowd. The meetings
//! feature's routes on Tavern's HTTP server and a meeting controller, in this process (the
//! rest of Tavern, which would share its two cores, is not started), on the Redis at
//! `TAVERN_REDIS_URL` and the PostgreSQL at `TAVERN_DATABASE_URL` (point both at scratch
//! stores: the load is real), and clients speaking HTTP and WebTransport to it from a
//! runtime of their own in the same process (`client_threads` workers: the clients
//! stand for other machines, so no server task waits in a worker's queue behind a
//! client's; they still share the machine's cores):
//!
//! 1. hosts register and create the meetings (`POST /api/v1/meetings`, `concurrency`
//!    at a time, as the joins below):
//!    create p50 / p95 of meetings to start now (their commit does not wait for the
//!    disk: `meetings::repo` says why), then of 12 meetings scheduled for tomorrow
//!    (their commit waits for it), printed apart; before anything is timed, an untimed
//!    warm-up creates 16 meetings at once and 32 participants join them at once and
//!    leave (`warm_up`), as a server that has been serving has;
//! 2. token validation, before the crowd arrives, on the server's runtime (p50 / p99):
//!    `Auth::verify_token` of
//!    access tokens each used for the first time (the signature, the expiry and the
//!    blacklist look-up in Redis), then of one token again and again, and
//!    `Auth::meeting_ticket` of a meeting token (what the meeting controller checks of
//!    a `JoinRequest`'s token before the join; its blacklist entry is a condition of
//!    the join's own Redis step). An access token's "not revoked" is reused for up to a
//!    second while the revocations channel is heard, and its signature is checked at
//!    its first use only, so a client's requests after its first skip both;
//! 3. the participants join, spread evenly over the meetings, `concurrency` at a time,
//!    or with `rate` each when it arrives (a Poisson process of `rate` a second,
//!    whatever else is in flight; how late the timer started each is printed apart):
//!    each `GET /api/v1/meetings/{code}` (the meeting and its join grant: get p50 / p95;
//!    under one of the hosts' accounts, whose token's "not revoked" the server reuses,
//!    or with `own_accounts` under an account of its own, its token's first use),
//!    then the WebTransport session to the assigned controller, `JoinRequest` and its
//!    `JoinResponse` (join p50 / p95 / p99, from the GET's start to the response, and
//!    apart the session's and the answer's share); each participant's QUIC endpoint is
//!    made before its join is timed (`Endpoints`); every session stays open, with a
//!    heartbeat every 10 s (`stay`), until all have joined;
//! 4. with `hold`, every session stays open that long (heartbeats only, nobody
//!    arriving), and the CPU time used meanwhile is printed a second: the server's
//!    (this process but the clients' threads), Redis's (`INFO cpu`) and the clients';
//! 5. everybody leaves, and the meetings end (the seed's Example 2).
//!
//! Each figure is printed next to Dark Tower's own target and the goal (ten times better);
//! the ratio is the figure over the goal (below 1 meets it). Nothing is asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use meetings::controller::client::{Client, ClientError, Connector, Opened, open_session};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::percentile;
use crate::config::Config;

/// The size of `tavern bench meetings`.
#[derive(Debug, Clone, Copy)]
pub struct MeetingsLoad {
    pub meetings: usize,
    pub participants: usize,
    /// Creations in flight at once, and joins too unless `rate` is given.
    pub concurrency: usize,
    /// Participants arriving per second, each when its time comes whatever is still in
    /// flight (arrivals of a Poisson process: gaps drawn from an exponential
    /// distribution), instead of `concurrency` at a time.
    pub rate: Option<f64>,
    /// Timed token validations (of each kind).
    pub validations: usize,
    /// Worker threads of the clients' runtime.
    pub client_threads: usize,
    /// A media handler in the process too, whose grants the controller hands out with
    /// each `JoinResponse`, as `tavern serve` runs them.
    pub media: bool,
    /// How long every session is kept open once all have joined, with what that costs
    /// the server measured (nothing when zero).
    pub hold: Duration,
    /// Every participant joins under an account of its own (made straight in the
    /// database, with a token of its own), so that each GET is its token's first use
    /// and asks Redis's blacklist; else under the hosts' accounts.
    pub own_accounts: bool,
}

/// When each participant arrives, from the first: a Poisson process of `rate` a
/// second (an exponential gap before each), as independent people clicking "join" do.
fn poisson_arrivals(count: usize, rate: f64, rng: &mut impl rand::Rng) -> Vec<Duration> {
    let mut at = 0.0_f64;
    (0..count)
        .map(|_| {
            // 1 - u is in (0, 1], so its logarithm is finite.
            let u: f64 = rng.random();
            at += -(1.0 - u).ln() / rate;
            Duration::from_secs_f64(at)
        })
        .collect()
}

/// How long before its arrival a participant's QUIC endpoint is made.
const ENDPOINT_LEAD: Duration = Duration::from_millis(20);

/// Joins in flight: now, and the most at once.
#[derive(Default)]
struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.now.fetch_add(1, Relaxed) + 1;
        self.most.fetch_max(now, Relaxed);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Meetings one host creates (the API allows 30 a minute per user).
const MEETINGS_PER_HOST: usize = 25;
/// Meetings created for a later start (their commit waits for the disk), timed apart.
const SCHEDULED: usize = 12;
/// Meetings created in the warm-up, all at once: as many as the server's database pool
/// holds connections, so every one of them is open and has run the creation.
const WARM_UP: usize = 16;
/// Participants joining (all at once, two to a meeting) and leaving the warm-up
/// meetings.
const WARM_UP_JOINS: usize = 2 * WARM_UP;

/// The meetings service under test: the feature's routes on Tavern's HTTP server and
/// a meeting controller, both in this process, over the configured stores.
struct Server {
    base: String,
    auth: meetings::auth::Auth,
    repo: meetings::Repo,
    redis: store::Redis,
    shutdown: tokio_util::sync::CancellationToken,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
}

/// Starts [`Server`]: migrates the meetings schema, runs the feature's start-up work
/// (the signing key), serves its routes on a free port and a meeting controller on
/// another, registered in region `local` (with `media`, a media handler on a third,
/// whose grants the controller hands out).
async fn start(config: &Config, media: bool) -> anyhow::Result<Server> {
    discord::install_crypto_provider();
    let redis = store::Redis::connect(config.redis_url.expose())
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis_url))?;
    let pg = store::Postgres::connect(config.database_url.expose())
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", config.database_url))?;
    pg.migrate(&meetings::MIGRATIONS)
        .await
        .context("migrating the meetings schema")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the HTTP listener")?;
    let addr = listener.local_addr().context("the HTTP address")?;
    let public_url = url::Url::parse(&format!("http://{addr}")).context("the bench's URL")?;
    let ctx = crate::app::context(
        redis.clone(),
        pg,
        discord::Discord::without_token(),
        public_url,
    );
    let settings = meetings::MeetingsConfig {
        secret_key: Some(
            meetings::auth::MeetingsSecretKey::generate().context("a meetings secret key")?,
        ),
        ..meetings::MeetingsConfig::default()
    };
    let mut feature = meetings::feature(&ctx, settings.clone());
    for work in &feature.startup {
        work.run().await.context("the meetings start-up work")?;
    }
    let router = feature.routes.take().context("the meetings routes")?;
    let auth = meetings::auth(&ctx, &settings);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let granted = if media {
        let directory = meetings::controller::MediaDirectory::default();
        let handler = meetings::media::MediaHandler::bind(
            meetings::Repo::from_context(&ctx),
            meetings::media::HandlerConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                directory: Some(directory.clone()),
                ..meetings::media::HandlerConfig::new(meetings::domain::HandlerId::generate())
            },
        )
        .await
        .context("starting the media handler")?;
        let stop = shutdown.clone();
        tasks.spawn(async move { handler.run(stop).await.context("the media handler") });
        Some(meetings::controller::MediaHandlers {
            directory,
            liveness: meetings::domain::Liveness::default(),
        })
    } else {
        None
    };
    let controller =
        meetings::controller::MeetingController::bind(
            meetings::Repo::from_context(&ctx),
            auth.clone(),
            meetings::controller::ControllerConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                media: granted,
                ..meetings::controller::ControllerConfig::new(
                    meetings::domain::ControllerId::generate(),
                )
            },
        )
        .await
        .context("starting the meeting controller")?;
    {
        let stop = shutdown.clone();
        tasks.spawn(async move {
            web::serve_with(listener, router, web::ServerConfig::default(), async move {
                stop.cancelled().await;
            })
            .await
            .context("the HTTP server")
        });
    }
    {
        let stop = shutdown.clone();
        tasks.spawn(async move { controller.run(stop).await.context("the meeting controller") });
    }
    Ok(Server {
        base: format!("http://{addr}"),
        auth,
        repo: meetings::Repo::from_context(&ctx),
        redis,
        shutdown,
        tasks,
    })
}

/// A JSON request; the body of a 2xx answer, else an error with the status and body.
async fn call(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await.context("calling the API")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// A field of a JSON answer as text.
fn text(body: &Value, field: &str) -> anyhow::Result<String> {
    body.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no `{field}` in {body}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One figure: its value, Dark Tower's target, the goal and the ratio to the goal.
fn report(what: &str, value: Duration, target_ms: f64, goal_ms: f64) {
    let value = ms(value);
    println!(
        "  {what:<28} {value:>9.3} ms   Dark Tower target {target_ms:>5} ms, goal {goal_ms:>5} ms: {:.2}x the goal ({})",
        value / goal_ms,
        if value <= goal_ms { "met" } else { "not met" }
    );
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

pub async fn run(config: &Config, load: MeetingsLoad) -> anyhow::Result<()> {
    let mut server = start(config, load.media).await?;
    // The clients stand for other machines: they run on a runtime of their own, so a
    // server task never waits in a worker's queue behind a client's (the two still
    // share the machine's cores).
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(load.client_threads.max(1))
        .thread_name(CLIENTS_THREAD)
        .enable_all()
        .build()
        .context("starting the clients' runtime")?;
    let target = Target {
        base: server.base.clone(),
        auth: server.auth.clone(),
        repo: server.repo.clone(),
        redis: server.redis.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let result = match clients.spawn(measure(target, load)).await {
        Ok(result) => result,
        Err(e) => Err(anyhow::Error::new(e).context("the clients' runtime")),
    };
    clients.shutdown_background();
    server.shutdown.cancel();
    while let Some(done) = server.tasks.join_next().await {
        done.context("a server task")??;
    }
    result
}

/// The bench's side, on the clients' runtime: what it needs of the server.
struct Target {
    base: String,
    auth: meetings::auth::Auth,
    /// The server's stores, for the participants' own accounts (`own_accounts`).
    repo: meetings::Repo,
    /// The Redis the server uses, for its CPU time.
    redis: store::Redis,
    /// The server's runtime, for the work timed as the server's own.
    runtime: tokio::runtime::Handle,
}

async fn measure(server: Target, load: MeetingsLoad) -> anyhow::Result<()> {
    let base = server.base.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(load.concurrency.max(WARM_UP))
        .build()
        .context("the HTTP client")?;
    wait_ready(&http, &base).await?;
    let arriving = match load.rate {
        Some(rate) => format!("arriving at random, {rate} a second on average"),
        None => format!("{} joins in flight", load.concurrency),
    };
    let handler = if load.media {
        " granting a media handler's sessions"
    } else {
        ""
    };
    let accounts = if load.own_accounts {
        "each under an account of its own"
    } else {
        "under the hosts' accounts"
    };
    println!(
        "meetings: {} participants joining {} meetings ({arriving}; {accounts}), the meetings API on {base} and a meeting controller{handler}, in this process",
        load.participants, load.meetings
    );

    // Hosts: one per 25 meetings, and one for the warm-up and the scheduled meetings.
    let hosts = load.meetings.div_ceil(MEETINGS_PER_HOST).max(1);
    let run_tag = format!("{:08x}", rand::random::<u32>());
    let mut tokens = Vec::with_capacity(hosts + 1);
    let mut users = Vec::with_capacity(hosts + 1);
    for i in 0..=hosts {
        let body = call(
            http.post(format!("{base}/api/v1/auth/register"))
                .json(&json!({
                    "email": format!("bench-host-{i}-{run_tag}@example.org"),
                    "password": format!("correct horse battery staple {run_tag}"),
                    "display_name": format!("Host {i}"),
                })),
        )
        .await
        .context("registering a host")?;
        tokens.push(text(&body, "access_token")?);
        users.push(text(&body, "user_id")?);
    }
    let scheduler = tokens.pop().context("the scheduling host")?;
    users.truncate(hosts);
    let endpoints = Endpoints::default();
    warm_up(&http, &endpoints, &base, &scheduler).await?;

    // 1. Create: meetings to start now (the ones joined below), then meetings scheduled
    // for tomorrow (their commit waits for the disk).
    let now = (0..load.meetings)
        .map(|i| {
            (
                tokens[i / MEETINGS_PER_HOST].clone(),
                json!({ "display_name": format!("Bench table {i}") }),
            )
        })
        .collect();
    let (codes, creates) = create_all(&http, &base, now, load.concurrency).await?;
    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339();
    let later = (0..SCHEDULED)
        .map(|i| {
            (
                scheduler.clone(),
                json!({
                    "display_name": format!("Bench campaign {i}"),
                    "scheduled_start_time": tomorrow,
                }),
            )
        })
        .collect();
    let (_, scheduled) = create_all(&http, &base, later, load.concurrency).await?;
    // Whose token each participant joins with: its own account's, or a host's.
    let joining = if load.own_accounts {
        participant_accounts(&server, &run_tag, load.participants).await?
    } else {
        (0..load.participants)
            .map(|p| tokens[p % tokens.len()].clone())
            .collect()
    };
    let joining = Arc::new(joining);
    let codes = Arc::new(codes);

    // 2. Validation, in a quiet process, on the server's runtime (it is the server's
    // work, called as its handlers call it).
    wait_for_controller(&http, &base, &tokens[0], &codes[0]).await?;
    let meeting_token = meeting_token(&http, &base, &tokens[0], &codes[0]).await?;
    let user = meetings::domain::UserId::parse(&users[0]).context("a host's user id")?;
    let (first, access, meeting) = server
        .runtime
        .spawn(validate(
            server.auth.clone(),
            user,
            tokens[0].clone(),
            meeting_token,
            load.validations,
        ))
        .await
        .context("the server's runtime")??;

    // 3. Join: `concurrency` at a time, or each participant at its arrival time.
    let gate = Arc::new(Semaphore::new(load.concurrency));
    let arrivals = load
        .rate
        .map(|rate| Arc::new(poisson_arrivals(load.participants, rate, &mut rand::rng())));
    let in_flight = Arc::new(InFlight::default());
    let mut tasks = tokio::task::JoinSet::new();
    // Cancelled when everybody has joined: the participants then stop their heartbeats
    // and leave.
    let leave = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    for p in 0..load.participants {
        let (http, endpoints, base, joining, codes, gate, arrivals, in_flight, leave) = (
            http.clone(),
            endpoints.clone(),
            base.clone(),
            joining.clone(),
            codes.clone(),
            gate.clone(),
            arrivals.clone(),
            in_flight.clone(),
            leave.clone(),
        );
        tasks.spawn(async move {
            let code = &codes[p % codes.len()];
            let token = &joining[p];
            // An arriving participant's QUIC endpoint is made just before its arrival
            // time (see `Endpoints`). Its join is timed from when its task wakes: the
            // timer's tick is a millisecond, which is the bench's own delay. How late
            // that was is kept apart, so a process too busy to start joins on time
            // shows.
            let (permit, ready, late) = match arrivals.as_deref().and_then(|a| a.get(p)) {
                Some(offset) => {
                    let at = started + *offset;
                    tokio::time::sleep_until((at - ENDPOINT_LEAD).into()).await;
                    let ready = endpoints.ready().context("a client QUIC endpoint")?;
                    tokio::time::sleep_until(at.into()).await;
                    (None, ready, at.elapsed())
                }
                None => {
                    let permit = gate.acquire_owned().await?;
                    (
                        Some(permit),
                        endpoints.ready().context("a client QUIC endpoint")?,
                        Duration::ZERO,
                    )
                }
            };
            in_flight.enter();
            let joined = join(&http, &endpoints, ready, &base, token, code, Instant::now()).await;
            in_flight.leave();
            drop(permit);
            joined.map(|(times, client)| (times, tokio::spawn(stay(client, leave.clone())), late))
        });
    }
    let mut gets = Vec::with_capacity(load.participants);
    let mut joins = Vec::with_capacity(load.participants);
    let mut sessions = Vec::with_capacity(load.participants);
    let mut answers = Vec::with_capacity(load.participants);
    let mut clients = Vec::with_capacity(load.participants);
    let mut lateness = Vec::with_capacity(load.participants);
    let mut retries = 0usize;
    let mut third_tries = 0usize;
    let mut without_media = 0usize;
    let mut failures = 0usize;
    let mut first_failure = None;
    while let Some(done) = tasks.join_next().await {
        match done.context("a join task")? {
            Ok((times, client, late)) => {
                lateness.push(late);
                retries += usize::from(times.connections > 1);
                third_tries += usize::from(times.connections > 2);
                without_media += usize::from(!times.media);
                gets.push(times.got);
                sessions.push(times.session.saturating_sub(times.got));
                answers.push(times.joined.saturating_sub(times.session));
                joins.push(times.joined);
                clients.push(client);
            }
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert(format!("{e:#}"));
            }
        }
    }
    let all_in = started.elapsed();
    let (gets, joins) = (sorted(gets), sorted(joins));
    let (sessions, answers) = (sorted(sessions), sorted(answers));
    let lateness = sorted(lateness);

    // Held: every session open, a heartbeat each 10 s, nobody arriving.
    let held = if load.hold.is_zero() {
        None
    } else {
        Some(hold(&server.redis, load.hold).await)
    };

    // 5. Leave.
    let leaving = clients.len();
    let left_at = Instant::now();
    leave.cancel();
    let mut tasks = tokio::task::JoinSet::new();
    for present in clients {
        tasks.spawn(async move {
            match present.await {
                Ok(Ok(client)) => client.leave().await.map(drop).map_err(anyhow::Error::from),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("staying in the meeting")),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        });
    }
    let mut leave_failures = 0usize;
    let mut first_leave_failure = None;
    while let Some(done) = tasks.join_next().await {
        let failure = match done {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => e.to_string(),
        };
        leave_failures += 1;
        first_leave_failure.get_or_insert(failure);
    }
    let left = left_at.elapsed();

    println!(
        "results ({} of {} joined; {} sessions open at once; all in after {:.2} s, {:.0} joins a second; at most {} joins in flight at once):",
        joins.len(),
        load.participants,
        joins.len(),
        all_in.as_secs_f64(),
        joins.len() as f64 / all_in.as_secs_f64().max(f64::EPSILON),
        in_flight.most.load(std::sync::atomic::Ordering::Relaxed)
    );
    if load.rate.is_some() {
        println!(
            "  arrivals started late by     p50 {:.3} ms, p99 {:.3} ms, at most {:.3} ms (the timer's tick, and a busy process)",
            ms(percentile(&lateness, 50.0)),
            ms(percentile(&lateness, 99.0)),
            ms(lateness.last().copied().unwrap_or_default())
        );
    }
    if retries > 0 {
        println!(
            "  {retries} joins connected on a later try, {third_tries} of them on the third (the first connection was closed while it was set up, or not open within {} s: README, \"Known problems\")",
            meetings::controller::client::FIRST_TRY_WAIT.as_secs()
        );
    }
    if let Some(failure) = first_failure {
        println!("  {failures} joins failed, the first: {failure}");
    }
    if load.media {
        println!(
            "  {} of {} JoinResponses carried a media grant",
            joins.len() - without_media,
            joins.len()
        );
    }
    println!(
        "  create meeting               p50 {:.3} ms, p95 {:.3} ms ({} meetings)",
        ms(percentile(&creates, 50.0)),
        ms(percentile(&creates, 95.0)),
        creates.len()
    );
    report("create meeting p95", percentile(&creates, 95.0), 40.0, 4.0);
    println!(
        "  create, scheduled for later  p50 {:.3} ms, p95 {:.3} ms ({} meetings; their commit waits for the disk)",
        ms(percentile(&scheduled, 50.0)),
        ms(percentile(&scheduled, 95.0)),
        scheduled.len()
    );
    println!(
        "  get meeting (with grant)     p50 {:.3} ms, p95 {:.3} ms",
        ms(percentile(&gets, 50.0)),
        ms(percentile(&gets, 95.0))
    );
    report("get meeting p95", percentile(&gets, 95.0), 15.0, 1.5);
    println!(
        "  access token, first use      p50 {:.3} ms, p99 {:.3} ms ({} tokens, each validated once: the signature checked, the blacklist asked in Redis)",
        ms(percentile(&first, 50.0)),
        ms(percentile(&first, 99.0)),
        first.len()
    );
    report(
        "first-use validation p99",
        percentile(&first, 99.0),
        2.0,
        0.2,
    );
    println!(
        "  access token, again          p50 {:.3} ms, p99 {:.3} ms ({} in a row: both answers reused)",
        ms(percentile(&access, 50.0)),
        ms(percentile(&access, 99.0)),
        access.len()
    );
    report("token validation p99", percentile(&access, 99.0), 2.0, 0.2);
    println!(
        "  meeting token validation     p50 {:.3} ms, p99 {:.3} ms",
        ms(percentile(&meeting, 50.0)),
        ms(percentile(&meeting, 99.0))
    );
    println!(
        "  join (grant to JoinResponse) p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, slowest {:.3} ms",
        ms(percentile(&joins, 50.0)),
        ms(percentile(&joins, 95.0)),
        ms(percentile(&joins, 99.0)),
        ms(joins.last().copied().unwrap_or_default())
    );
    report("join p99", percentile(&joins, 99.0), 50.0, 5.0);
    println!(
        "    of which the WebTransport session p50 {:.3} ms, p99 {:.3} ms; JoinRequest to JoinResponse p50 {:.3} ms, p99 {:.3} ms",
        ms(percentile(&sessions, 50.0)),
        ms(percentile(&sessions, 99.0)),
        ms(percentile(&answers, 50.0)),
        ms(percentile(&answers, 99.0))
    );
    if let Some(held) = held {
        held.print(joins.len(), load.hold);
    }
    println!(
        "  {leaving} left in {:.2} s ({leave_failures} failed); the meetings ended",
        left.as_secs_f64()
    );
    if let Some(failure) = first_leave_failure {
        println!("  the first leave that failed: {failure}");
    }
    Ok(())
}

/// The name of the clients' runtime's threads, so their CPU time can be told from the
/// server's.
const CLIENTS_THREAD: &str = "bench-clients";

/// What holding every session open cost, CPU time per second of the hold (`None`: not
/// measurable here).
struct Held {
    /// This process but the clients: the HTTP server, the meeting controller (and the
    /// media handler, with `--media`).
    server: Option<Duration>,
    /// The clients, for scale.
    clients: Option<Duration>,
    /// Redis (its own `INFO cpu`).
    redis: Option<Duration>,
}

/// CPU time (user + system) Redis reports it has used, from `INFO cpu`.
async fn redis_cpu(redis: &store::Redis) -> Option<Duration> {
    let info: String = store::redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut redis.conn())
        .await
        .ok()?;
    let seconds = |field: &str| -> Option<f64> {
        info.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    let used = seconds("used_cpu_sys")? + seconds("used_cpu_user")?;
    Duration::try_from_secs_f64(used).ok()
}

/// Waits `span` with every session open and measures the CPU time used meanwhile.
async fn hold(redis: &store::Redis, span: Duration) -> Held {
    let before = (
        super::process_cpu(),
        super::threads_cpu(CLIENTS_THREAD),
        redis_cpu(redis).await,
    );
    tokio::time::sleep(span).await;
    let after = (
        super::process_cpu(),
        super::threads_cpu(CLIENTS_THREAD),
        redis_cpu(redis).await,
    );
    let per_second = |used: Option<Duration>| used.map(|u| u.div_f64(span.as_secs_f64()));
    let spent = |b: Option<Duration>, a: Option<Duration>| a?.checked_sub(b?);
    let clients = spent(before.1, after.1);
    let process = spent(before.0, after.0);
    Held {
        server: per_second(process.zip(clients).and_then(|(p, c)| p.checked_sub(c))),
        clients: per_second(clients),
        redis: per_second(spent(before.2, after.2)),
    }
}

impl Held {
    fn print(&self, sessions: usize, span: Duration) {
        let shown = |d: Option<Duration>| match d {
            Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
            None => "not measurable".to_owned(),
        };
        println!(
            "  {sessions} sessions held open {} s (a heartbeat each 10 s): CPU a second: the server {} ({}), Redis {}; the clients {}",
            span.as_secs(),
            shown(self.server),
            match self.server {
                Some(d) => format!("{:.2}% of a core", d.as_secs_f64() * 100.0),
                None => "-".to_owned(),
            },
            shown(self.redis),
            shown(self.clients)
        );
    }
}

/// Token validation (the server's own work): access tokens each used for the first
/// time (the signature checked, the blacklist asked in Redis), then one access token
/// again and again (both answers reused, as for a client's every request) and a
/// meeting token as often. The three sets of times, sorted.
async fn validate(
    auth: meetings::auth::Auth,
    user: meetings::domain::UserId,
    access_token: String,
    meeting_token: String,
    validations: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Vec<Duration>)> {
    let mut fresh_tokens = Vec::with_capacity(validations);
    for _ in 0..validations {
        let issued = auth
            .issue(user, &meetings::auth::Scopes::all())
            .await
            .context("issuing an access token")?;
        fresh_tokens.push(issued.token);
    }
    let mut first = Vec::with_capacity(validations);
    for token in &fresh_tokens {
        let start = Instant::now();
        auth.verify_token(token.expose_str())
            .await
            .context("validating a new access token")?;
        first.push(start.elapsed());
    }
    let mut access = Vec::with_capacity(validations);
    let mut meeting = Vec::with_capacity(validations);
    for _ in 0..validations {
        let start = Instant::now();
        auth.verify_token(&access_token)
            .await
            .context("validating an access token")?;
        access.push(start.elapsed());
        let start = Instant::now();
        auth.meeting_ticket(&meeting_token)
            .await
            .context("validating a meeting token")?;
        meeting.push(start.elapsed());
    }
    Ok((sorted(first), sorted(access), sorted(meeting)))
}

/// Creates a meeting for each `(access token, body)`, `concurrency` at a time: the
/// codes, in order, and the times each took, sorted.
async fn create_all(
    http: &reqwest::Client,
    base: &str,
    requests: Vec<(String, Value)>,
    concurrency: usize,
) -> anyhow::Result<(Vec<String>, Vec<Duration>)> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let count = requests.len();
    for (i, (token, body)) in requests.into_iter().enumerate() {
        let (http, base, gate) = (http.clone(), base.to_owned(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let start = Instant::now();
            let body = call(
                http.post(format!("{base}/api/v1/meetings"))
                    .bearer_auth(&token)
                    .json(&body),
            )
            .await?;
            let took = start.elapsed();
            anyhow::Ok((i, text(&body, "meeting_code")?, took))
        });
    }
    let mut codes = vec![String::new(); count];
    let mut took = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        let (i, code, time) = done.context("a create task")??;
        codes[i] = code;
        took.push(time);
    }
    Ok((codes, sorted(took)))
}

/// Each participant's own QUIC endpoint, made before its join is timed (a browser's
/// QUIC stack exists before its user clicks "join"; quinn zeroes about 3 MB of receive
/// buffers per endpoint, which timed would be the client's cost counted as the
/// server's), pinned to the certificate hash the grants carried so far.
#[derive(Clone, Default)]
struct Endpoints(Arc<std::sync::Mutex<Option<String>>>);

impl Endpoints {
    /// An endpoint pinned to the hash last granted, and that hash.
    fn ready(&self) -> Result<(Option<String>, Connector), ClientError> {
        let hash = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let connector = Connector::new(hash.as_deref())?;
        Ok((hash, connector))
    }

    /// `ready` when it pins `granted`, else (timed: the grant named another
    /// certificate) a new endpoint pinned to `granted`, which later ones pin too.
    fn pinned_to(
        &self,
        ready: (Option<String>, Connector),
        granted: Option<&str>,
    ) -> Result<Connector, ClientError> {
        if ready.0.as_deref() == granted {
            return Ok(ready.1);
        }
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = granted.map(str::to_owned);
        Connector::new(granted)
    }
}

/// How often a joined participant sends a heartbeat (the controller drops one silent
/// for 30 s).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// A joined participant, present until `leave` is cancelled: a heartbeat every
/// [`HEARTBEAT`], and whatever the controller sends read meanwhile. The client back, to
/// leave.
async fn stay(
    mut client: Client,
    leave: tokio_util::sync::CancellationToken,
) -> Result<Client, meetings::controller::client::ClientError> {
    use meetings::controller::proto::{Heartbeat, client_message::Payload};
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    loop {
        tokio::select! {
            () = leave.cancelled() => return Ok(client),
            _ = beat.tick() => client.send(Payload::Heartbeat(Heartbeat {})).await?,
            // `next` is cancel-safe.
            message = client.next() => {
                if message?.is_none() {
                    return Err(meetings::controller::client::ClientError::Closed);
                }
            }
        }
    }
}

/// When a join's steps ended, each from the GET's start.
struct JoinTimes {
    /// The first GET's answer (the meeting and the grant).
    got: Duration,
    /// The WebTransport session open.
    session: Duration,
    /// The `JoinResponse`.
    joined: Duration,
    /// How many connections it took (more than one: the first was given up).
    connections: u32,
    /// Whether the `JoinResponse` carried a media grant.
    media: bool,
}

/// `count` participants' own accounts, made straight in the database (untimed: the
/// API's registration hashes each password and allows 10 a minute from one address),
/// 50 at a time, each with an access token of its own, never used yet.
async fn participant_accounts(
    server: &Target,
    run_tag: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let gate = Arc::new(Semaphore::new(50));
    let mut making = tokio::task::JoinSet::new();
    for i in 0..count {
        let (repo, auth, gate) = (server.repo.clone(), server.auth.clone(), gate.clone());
        let email =
            meetings::auth::Email::parse(&format!("bench-participant-{i}-{run_tag}@example.org"))
                .context("a participant's email")?;
        let name = meetings::domain::DisplayName::parse(&format!("Participant {i}"))
            .context("a participant's name")?;
        making.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            // Nobody logs in to these accounts: the hash matches no password.
            let user = repo
                .create_user(&email, &name, "bench account: no password")
                .await
                .context("making a participant's account")?
                .context("a participant's email was taken")?;
            let token = auth
                .issue(user, &meetings::auth::Scopes::all())
                .await
                .context("a participant's token")?;
            anyhow::Ok((i, token.token.expose_str().to_owned()))
        });
    }
    let mut tokens = vec![String::new(); count];
    while let Some(made) = making.join_next().await {
        let (i, token) = made.context("making a participant's account")??;
        tokens[i] = token;
    }
    Ok(tokens)
}

/// What a join uses of the GET's `join_grant` (bearer secrets: no `Debug`).
struct Granted {
    webtransport_url: String,
    wt_token: String,
    certificate_hash: Option<String>,
    token: String,
}

/// One participant joins meeting `code`: the GET with its grant, the WebTransport
/// session, `JoinRequest` and its `JoinResponse`. When each ended, and the joined client.
async fn join(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    ready: (Option<String>, Connector),
    base: &str,
    token: &str,
    code: &str,
    start: Instant,
) -> anyhow::Result<(JoinTimes, Client)> {
    let mut ready = Some(ready);
    let got = std::sync::OnceLock::new();
    let got = &got;
    // Opened as every client of ours opens its session (`open_session`: a connection
    // lost while it was set up, or not open within `FIRST_TRY_WAIT`, is made again with
    // a new grant and a new endpoint, three in all); the join's time includes every try.
    let opened = open_session(
        move || async move {
            let body = call(
                http.get(format!("{base}/api/v1/meetings/{code}"))
                    .bearer_auth(token),
            )
            .await?;
            got.get_or_init(|| start.elapsed());
            let grant = body
                .get("join_grant")
                .with_context(|| format!("no join grant in {body}"))?;
            anyhow::Ok(Granted {
                webtransport_url: text(grant, "webtransport_url")?,
                wt_token: text(grant, "wt_token")?,
                certificate_hash: grant
                    .get("certificate_hash")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                token: text(grant, "token")?,
            })
        },
        |grant: &Granted| {
            let connector = match ready.take() {
                Some(ready) => Ok(ready),
                None => endpoints.ready(),
            }
            .and_then(|ready| endpoints.pinned_to(ready, grant.certificate_hash.as_deref()));
            let (url, wt_token) = (grant.webtransport_url.clone(), grant.wt_token.clone());
            async move { connector?.connect(&url, &wt_token).await }
        },
    )
    .await?;
    let Opened {
        grant,
        mut client,
        connections,
    } = opened
        .map_err(|not| not.error)
        .context("opening the WebTransport session")?;
    let session = start.elapsed();
    let response = client.join(&grant.token).await.context("joining")?;
    let times = JoinTimes {
        got: got.get().copied().unwrap_or_default(),
        session,
        joined: start.elapsed(),
        connections,
        media: response.media.is_some(),
    };
    Ok((times, client))
}

/// Warm-up, untimed: the scheduling host creates [`WARM_UP`] meetings all at once (so
/// every connection of the server's database pool is open and has run the creation),
/// then [`WARM_UP_JOINS`] participants join them all at once and leave. A server
/// that has been serving has done all this: a new PostgreSQL backend's first queries
/// read its catalogs (10-20 ms here for the first creation), and the clients' HTTP
/// connections are open too.
async fn warm_up(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    base: &str,
    token: &str,
) -> anyhow::Result<()> {
    let requests = (0..WARM_UP)
        .map(|i| {
            (
                token.to_owned(),
                json!({ "display_name": format!("Warm-up {i}") }),
            )
        })
        .collect();
    let (codes, _) = create_all(http, base, requests, WARM_UP).await?;
    // Everyone joins at once, then leaves: each pooled connection runs a join's
    // statements too.
    let mut joining = tokio::task::JoinSet::new();
    for code in codes.iter().cycle().take(WARM_UP_JOINS) {
        let (http, endpoints, base, token, code) = (
            http.clone(),
            endpoints.clone(),
            base.to_owned(),
            token.to_owned(),
            code.clone(),
        );
        joining.spawn(async move {
            let ready = endpoints.ready().context("a client QUIC endpoint")?;
            join(
                &http,
                &endpoints,
                ready,
                &base,
                &token,
                &code,
                Instant::now(),
            )
            .await
        });
    }
    let mut clients = Vec::with_capacity(WARM_UP_JOINS);
    while let Some(joined) = joining.join_next().await {
        let (_, client) = joined.context("a warm-up join")??;
        clients.push(client);
    }
    for client in clients {
        client
            .leave()
            .await
            .context("leaving the warm-up meeting")?;
    }
    // The last one out ends a meeting (the seed's Example 2) after the leave is
    // answered: let those endings finish before the timing starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    for code in &codes {
        loop {
            let meeting = call(
                http.get(format!("{base}/api/v1/meetings/{code}"))
                    .bearer_auth(token),
            )
            .await?;
            if meeting.get("status").and_then(Value::as_str) == Some("ended") {
                break;
            }
            if Instant::now() > deadline {
                bail!("the warm-up meeting {code} did not end within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// Waits until the server answers (its JWKS).
async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the meetings API did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a meeting controller is registered (the first grant succeeds), and
/// leaves no participant behind: the grant is simply not used.
async fn wait_for_controller(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    code: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = http
            .get(format!("{base}/api/v1/meetings/{code}"))
            .bearer_auth(token)
            .send()
            .await
            .context("asking for a grant")?;
        if response.status().is_success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no meeting controller registered within 30 s ({})",
                response.status()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A meeting token from a fresh grant (its participant never connects).
async fn meeting_token(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    code: &str,
) -> anyhow::Result<String> {
    let body = call(
        http.get(format!("{base}/api/v1/meetings/{code}"))
            .bearer_auth(token),
    )
    .await?;
    let grant = body.get("join_grant").context("no join grant")?;
    text(grant, "token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn arrivals_come_in_order_at_the_asked_rate_with_exponential_gaps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let rate = 100.0;
        let arrivals = poisson_arrivals(20_000, rate, &mut rng);
        assert_eq!(arrivals.len(), 20_000);
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]), "out of order");
        let gaps: Vec<f64> = std::iter::once(arrivals[0].as_secs_f64())
            .chain(arrivals.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()))
            .collect();
        // An exponential distribution of mean 1/rate: the mean, and about e^-1 of the
        // gaps longer than the mean (evenly spaced arrivals would have none longer).
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean * rate - 1.0).abs() < 0.03, "mean gap {mean}");
        let longer = gaps.iter().filter(|&&g| g > 1.0 / rate).count() as f64 / gaps.len() as f64;
        assert!(
            (longer - (-1.0f64).exp()).abs() < 0.02,
            "{longer} longer than the mean"
        );
    }

    #[test]
    fn the_most_joins_in_flight_is_kept_as_they_come_and_go() {
        let in_flight = InFlight::default();
        in_flight.enter();
        in_flight.enter();
        in_flight.leave();
        in_flight.enter();
        in_flight.enter();
        in_flight.leave();
        let load =
            |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(load(&in_flight.most), 3);
        assert_eq!(load(&in_flight.now), 2);
    }
}
