//! `tavern bench clips`: the clip archive's scan engine and library against discord-sim
//! (on a runtime of its own, so its CPU is told from Tavern's) and the PostgreSQL at
//! `TAVERN_DATABASE_URL`. Three measurements, each printed with its ratio to the goal:
//!
//! - (a) a deep scan of a channel of 200,000 messages (5% with a video), Discord's
//!   limits off: messages ingested into PostgreSQL per second (goal at least 50,000);
//! - (b) a deep scan with Discord's limits on (the message route's bucket of 5
//!   requests per 5 s and the global 50 requests/s): the run's request rate against
//!   the limit, and the 429s (goal: none after the first response of the bucket). A
//!   shorter channel than (a)'s: at one request a second, 200,000 messages would take
//!   more than half an hour;
//! - (c) the library at 100,000 clips: the first page, a filtered search and a page
//!   deep in the grid, p50 and p95 of the server time (goal p95 under 20 ms): the
//!   library route of the clips feature's router, served on a local port in this
//!   process to a signed-in member (its session and guild list in Redis, its OAuth2
//!   grant from discord-sim), timed by a layer around the router, so the session, the
//!   access check, the clips, the channel and author lists, the URL refresh and the
//!   rendering all count. The repository call alone (`Repo::library_page`) is timed
//!   too and shown beside it.
//!
//! Every guild, channel and clip the bench writes has ids minted by its own
//! discord-sim; they are deleted at the end (the guilds, and with them everything
//! else). Still, point `TAVERN_DATABASE_URL` at a scratch database: the load is real.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clips::Repo;
use clips::domain::{ChannelId, GuildId, ScanStatus};
use clips::repo::library::{LibraryCursor, LibraryFilter, SearchText};
use clips::scan::{ScanMode, Scanner};
use discord_sim::{AttachmentSpec, ChannelKind, SeedMessage, Sim, SimConfig, Snowflake};
use tokio_util::sync::CancellationToken;

use super::{FAKES_THREAD, fakes_cpu, percentile, process_cpu};

/// The size of `tavern bench clips`.
#[derive(Debug, Clone, Copy)]
pub struct ClipsLoad {
    /// Messages in (a)'s channel.
    pub messages: usize,
    /// Percent of them with a video.
    pub video_percent: u32,
    /// Messages in (b)'s channel (at Discord's limits).
    pub limited_messages: usize,
    /// (b)'s bucket: requests per window on the message route.
    pub bucket_limit: u32,
    pub bucket_window: Duration,
    /// (b)'s global limit, requests per second.
    pub global_limit: u32,
    /// Clips in (c)'s library.
    pub library_clips: usize,
    /// Timed calls per library query in (c).
    pub queries: usize,
    /// Parts (a)'s deep scan is split into, read concurrently (1: not split).
    pub parts: usize,
}

impl Default for ClipsLoad {
    fn default() -> ClipsLoad {
        ClipsLoad {
            messages: 200_000,
            video_percent: 5,
            limited_messages: 2_000,
            bucket_limit: 5,
            bucket_window: Duration::from_secs(5),
            global_limit: 50,
            library_clips: 100_000,
            queries: 200,
            parts: 1,
        }
    }
}

/// The ingestion goal of (a), messages per second.
const INGEST_GOAL: f64 = 50_000.0;
/// The library's goal of (c): p95 of a page.
const LIBRARY_GOAL: Duration = Duration::from_millis(20);
/// Clips on a library page, as the web library shows them.
const LIBRARY_PAGE: u32 = 24;
/// Posters of the bench's messages.
const AUTHORS: usize = 40;
/// Words the bench's file names and messages are made of (the searches look for one).
const WORDS: [&str; 16] = [
    "dragon", "goblin", "critical", "ambush", "tavern", "lich", "heist", "finale", "dice", "rogue",
    "bard", "paladin", "dungeon", "siege", "portal", "wyvern",
];

/// A discord-sim on the fakes' runtime.
fn start_sim(fakes: &tokio::runtime::Runtime, config: SimConfig) -> anyhow::Result<Sim> {
    let _on_fakes = fakes.enter();
    Sim::start(config).context("starting discord-sim")
}

/// `messages` messages by `authors` in `channel`, oldest first; `video_every`-th
/// ones (1 = all) carry a video of a plausible size, without bytes.
fn seed(
    sim: &Sim,
    channel: Snowflake,
    authors: &[Snowflake],
    messages: usize,
    video_every: usize,
) -> anyhow::Result<()> {
    let history = (0..messages).map(|i| {
        let author = authors[i % authors.len()];
        let word = WORDS[i % WORDS.len()];
        let other = WORDS[(i / WORDS.len()) % WORDS.len()];
        let message = SeedMessage::new(author, format!("{word} and {other}, take {i}"));
        if i % video_every.max(1) == 0 {
            let mut video = AttachmentSpec::sized(
                format!("{other}-{word}-{i}.mp4"),
                "video/mp4",
                2_000_000 + (i as u64 % 7) * 1_000_000,
            );
            video.width = Some(1280);
            video.height = Some(720);
            message.attachment(video)
        } else {
            message
        }
    });
    sim.seed_history(channel, history)
        .map_err(|e| anyhow::anyhow!("seeding the bench channel: {e}"))?;
    Ok(())
}

fn discord_for(sim: &Sim, global_rate_limit: u16) -> discord::Discord {
    let mut rest = discord::DiscordConfig::new(sim.token(), Some(sim.addr().to_string()));
    rest.global_rate_limit = global_rate_limit;
    discord::Discord::new(&rest)
}

fn channel_id(s: Snowflake) -> anyhow::Result<ChannelId> {
    ChannelId::new_checked(s.get()).context("a channel id")
}

fn guild_id(s: Snowflake) -> anyhow::Result<GuildId> {
    GuildId::new_checked(s.get()).context("a guild id")
}

/// What one timed deep scan did.
struct ScanFigures {
    scanned: i64,
    matched: i64,
    clips: i64,
    wall: Duration,
    cpu: Option<Duration>,
    fakes_cpu: Option<Duration>,
}

/// Registers `channel`, queues a deep scan and runs it to its end, timed.
async fn timed_deep_scan(scanner: &Scanner, channel: ChannelId) -> anyhow::Result<ScanFigures> {
    scanner.ensure_channel(channel).await?;
    let run = scanner.request(channel, ScanMode::Deep).await?.into_run();
    let cpu_before = process_cpu();
    let fakes_before = fakes_cpu();
    let started = Instant::now();
    let done = scanner
        .run(run.id, &|_| {}, CancellationToken::new())
        .await
        .context("the deep scan")?;
    let wall = started.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    let fakes_cpu = fakes_cpu()
        .zip(fakes_before)
        .map(|(a, b)| a.saturating_sub(b));
    if done.status != ScanStatus::Succeeded {
        anyhow::bail!(
            "the scan ended {}: {}",
            done.status,
            done.error_message.unwrap_or_default()
        );
    }
    Ok(ScanFigures {
        scanned: done.messages_scanned,
        matched: done.messages_matched,
        clips: scanner.repo().clips_in_channel(channel).await?,
        wall,
        cpu,
        fakes_cpu,
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `calls` timed calls of `query`: the sorted durations.
async fn timed<F, Fut>(calls: usize, mut query: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    // Warm up: the first call plans the statement and reads the pages into cache.
    for _ in 0..3 {
        query().await?;
    }
    let mut took = Vec::with_capacity(calls);
    for _ in 0..calls.max(1) {
        let started = Instant::now();
        let rows = query().await?;
        took.push(started.elapsed());
        anyhow::ensure!(rows > 0, "a library query found nothing");
    }
    took.sort();
    Ok(took)
}

/// The library's server: the clips feature's router on a local port, timed by a layer
/// around it, and a member of the bench's library guild signed in to it.
struct LibraryServer {
    base: String,
    http: reqwest::Client,
    cookie: String,
    /// How long each request took inside the server, in the order they came.
    took: Arc<Mutex<Vec<Duration>>>,
    served: tokio::task::JoinHandle<()>,
}

/// Records the time the router took for each request.
async fn time_request(
    axum::extract::State(took): axum::extract::State<Arc<Mutex<Vec<Duration>>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    if let Ok(mut took) = took.lock() {
        took.push(elapsed);
    }
    response
}

impl LibraryServer {
    /// Serves the clips feature's routes, as `tavern serve` merges them (with the site's
    /// layout; the server's body limit, timeout and request span left out), over `pg`,
    /// Redis and `sim` as Discord (the bot and the login's OAuth2 application), and
    /// signs a new member of `guild` in the way the web login does.
    async fn start(
        pg: &store::Postgres,
        redis_url: &str,
        sim: &Sim,
        guild: Snowflake,
    ) -> anyhow::Result<LibraryServer> {
        let redis = store::Redis::connect(redis_url)
            .await
            .with_context(|| format!("connecting to Redis at {}", store::redact_url(redis_url)))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the library's listener")?;
        let addr = listener.local_addr().context("the library's address")?;
        let public_url = url::Url::parse(&format!("http://{addr}/")).context("the bench's URL")?;
        let callback = web::login::callback_url(&public_url).context("the login callback")?;
        sim.register_redirect_uri(callback.as_str());
        let login = discord::oauth::OAuthApp::new(
            sim.application_id().to_string(),
            discord::oauth::ClientSecret::from(sim.client_secret()),
            callback,
            discord::oauth::OAuthEndpoints::at(&sim.http_url())
                .context("discord-sim's OAuth2 URLs")?,
        );
        let mut ctx =
            crate::app::context(redis, pg.clone(), discord_for(sim, u16::MAX), public_url);
        ctx.discord_login = Some(login.clone());
        let took = Arc::new(Mutex::new(Vec::new()));
        let router = clips::feature(&ctx, clips::ClipsConfig::default())
            .routes
            .take()
            .context("the clips feature serves pages")?
            // What `tavern serve` puts around every route: the site's layout.
            .layer(axum::Extension(web::page::Site::default().with_login(true)))
            .layer(axum::middleware::from_fn_with_state(
                took.clone(),
                time_request,
            ));
        let served = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("tavern: the bench's library server stopped: {error}");
            }
        });

        // A member of the guild, logged in through discord-sim's OAuth2 as the web
        // login does: a real grant, so the page reads the member's guilds with it.
        let viewer = sim.create_user("library-viewer");
        sim.add_member(guild, viewer)
            .context("adding the library's viewer to the guild")?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("an HTTP client")?;
        let mut authorize = login.authorize_url(
            "bench",
            &[
                discord::oauth::Scope::Identify,
                discord::oauth::Scope::Guilds,
            ],
            None,
        );
        authorize
            .query_pairs_mut()
            .append_pair("sim_user_id", &viewer.to_string());
        let back = http
            .get(authorize)
            .send()
            .await
            .context("discord-sim's authorize page")?;
        let code = back
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url::Url::parse(v).ok())
            .and_then(|back| {
                back.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .context("discord-sim sends the viewer back with a code")?;
        let grant = login
            .exchange_code(&code.into())
            .await
            .context("exchanging the viewer's code")?;
        let profile = web::session::SessionUser {
            id: discord::UserId::new_checked(viewer.get()).context("the viewer's id")?,
            username: "library-viewer".to_owned(),
            global_name: None,
            avatar: None,
        };
        let session = ctx
            .sessions
            .log_in(None, profile, &grant)
            .await
            .context("signing the viewer in")?;
        Ok(LibraryServer {
            base: format!("http://{addr}"),
            http,
            cookie: format!(
                "{}={}",
                ctx.sessions.config().cookie_name(),
                session.id().expose()
            ),
            took,
            served,
        })
    }

    /// GETs the library page at `path_and_query` as the viewer: the number of clip
    /// tiles it shows (an error unless it answers 200).
    async fn tiles(&self, path_and_query: &str) -> anyhow::Result<usize> {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .header(reqwest::header::ACCEPT, "text/html")
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .await
            .with_context(|| format!("GET {path_and_query}"))?;
        let status = response.status();
        let body = response.text().await.context("the library page's body")?;
        anyhow::ensure!(
            status == reqwest::StatusCode::OK,
            "GET {path_and_query} answered {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        Ok(body.matches("data-attachment-id=").count())
    }

    /// The server times of the last `calls` requests, sorted.
    fn last_times(&self, calls: usize) -> Vec<Duration> {
        let mut last: Vec<Duration> = self
            .took
            .lock()
            .map(|took| took.iter().rev().take(calls).copied().collect())
            .unwrap_or_default();
        last.sort();
        last
    }
}

/// `tavern bench clips`: see the module's documentation.
pub async fn run(database_url: &str, redis_url: &str, load: ClipsLoad) -> anyhow::Result<()> {
    discord::install_crypto_provider();
    let pg = store::Postgres::connect(database_url)
        .await
        .with_context(|| format!("connecting to {}", store::redact_url(database_url)))?;
    pg.migrate(&clips::MIGRATIONS)
        .await
        .context("migrating the clips schema")?;
    let repo = Repo::new(&pg);
    let fakes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(FAKES_THREAD)
        .enable_all()
        .build()
        .context("starting the fakes' runtime")?;
    let clock: Arc<dyn feature::Clock> = Arc::new(feature::SystemClock);
    let mut guilds = Vec::new();
    let stores = Stores {
        pg: &pg,
        repo: &repo,
        redis_url,
    };
    let result = measure(&stores, &fakes, &clock, load, &mut guilds).await;
    for guild in guilds {
        if let Err(error) = repo.delete_guild(guild).await {
            eprintln!("tavern: could not delete the bench's guild {guild}: {error}");
        }
    }
    fakes.shutdown_background();
    result
}

/// Where the bench writes and reads.
struct Stores<'a> {
    pg: &'a store::Postgres,
    repo: &'a Repo,
    redis_url: &'a str,
}

async fn measure(
    stores: &Stores<'_>,
    fakes: &tokio::runtime::Runtime,
    clock: &Arc<dyn feature::Clock>,
    load: ClipsLoad,
    guilds: &mut Vec<GuildId>,
) -> anyhow::Result<()> {
    let repo = stores.repo;
    println!("clips: deep scans served by discord-sim (its own runtime), indexed into PostgreSQL");

    // (a) Discord's limits off: what Tavern and PostgreSQL ingest.
    let sim = start_sim(
        fakes,
        SimConfig {
            rate_limit_per_window: u32::MAX,
            global_rate_limit: None,
            ..SimConfig::default()
        },
    )?;
    let guild = sim.create_guild("Bench clips");
    guilds.push(guild_id(guild)?);
    let authors: Vec<Snowflake> = (0..AUTHORS)
        .map(|i| sim.create_user(&format!("poster-{i}")))
        .collect();
    let channel = sim.create_channel(guild, "highlights", ChannelKind::Text)?;
    let video_every = (100 / load.video_percent.clamp(1, 100)) as usize;
    let seeding = Instant::now();
    seed(&sim, channel, &authors, load.messages, video_every)?;
    let seeded_in = seeding.elapsed();
    let scanner = Scanner::new(repo.clone(), discord_for(&sim, u16::MAX), clock.clone())
        .with_parts(load.parts);
    let a = timed_deep_scan(&scanner, channel_id(channel)?).await?;
    let rate = a.scanned as f64 / a.wall.as_secs_f64().max(1e-9);
    println!(
        "  (a) limits off    {} messages ({} with a video; seeded in {:.1} s), {} part(s): scanned {}, matched {}, clips {} in {:.2} s",
        load.messages,
        load.messages.div_ceil(video_every),
        seeded_in.as_secs_f64(),
        load.parts.max(1),
        a.scanned,
        a.matched,
        a.clips,
        a.wall.as_secs_f64()
    );
    if let (Some(cpu), Some(fakes_cpu)) = (a.cpu, a.fakes_cpu) {
        println!(
            "                    CPU {:.2} s in all: Tavern's own {:.2} s, discord-sim's {:.2} s (PostgreSQL's is its own process)",
            cpu.as_secs_f64(),
            cpu.saturating_sub(fakes_cpu).as_secs_f64(),
            fakes_cpu.as_secs_f64()
        );
    }
    println!(
        "                    ingested {rate:.0} messages/s; goal >= {INGEST_GOAL:.0}/s: {} ({:.2}x)",
        verdict(rate >= INGEST_GOAL),
        rate / INGEST_GOAL
    );

    // (b) Discord's limits on.
    let limited = start_sim(
        fakes,
        SimConfig {
            rate_limit_per_window: load.bucket_limit.max(1),
            rate_limit_window: load.bucket_window,
            global_rate_limit: Some(load.global_limit.max(1)),
            ..SimConfig::default()
        },
    )?;
    let guild = limited.create_guild("Bench clips (limited)");
    guilds.push(guild_id(guild)?);
    let poster = limited.create_user("poster");
    let channel = limited.create_channel(guild, "highlights", ChannelKind::Text)?;
    seed(
        &limited,
        channel,
        &[poster],
        load.limited_messages,
        video_every,
    )?;
    let global = u16::try_from(load.global_limit).unwrap_or(u16::MAX);
    let scanner = Scanner::new(repo.clone(), discord_for(&limited, global), clock.clone());
    limited.clear_requests();
    let limited_before = limited.rate_limited_count();
    let b = timed_deep_scan(&scanner, channel_id(channel)?).await?;
    let history_path = format!("/channels/{channel}/messages");
    let requests: Vec<_> = limited
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&history_path))
        .collect();
    let first_answer = requests.iter().find(|r| r.status == 200).map(|r| r.at);
    let too_many = limited.rate_limited_count() - limited_before;
    let late_429s = requests
        .iter()
        .filter(|r| r.status == 429 && first_answer.is_some_and(|first| r.at > first))
        .count();
    let window = load.bucket_window.as_secs_f64().max(1e-9);
    let limit = (f64::from(load.bucket_limit) / window).min(f64::from(load.global_limit));
    let request_rate = requests.len() as f64 / b.wall.as_secs_f64().max(1e-9);
    println!(
        "  (b) limits on     {} messages (a shorter channel: at the limit a request carries 100 messages, so (a)'s would take {:.0} min), bucket {} per {:.0} s, global {}/s",
        load.limited_messages,
        load.messages as f64 / 100.0 / limit.max(1e-9) / 60.0,
        load.bucket_limit,
        window,
        load.global_limit
    );
    // A fixed window lets its whole allowance go at once, so the fastest a run of
    // `requests` can go is one burst per window: the last burst starts
    // `ceil(requests / limit) - 1` windows after the first.
    let bursts = requests
        .len()
        .div_ceil(load.bucket_limit.max(1) as usize)
        .max(1);
    let fastest = (bursts - 1) as f64 * window;
    let wall = b.wall.as_secs_f64().max(1e-9);
    println!(
        "                    scanned {} in {wall:.1} s with {} history requests ({request_rate:.2}/s, limit {limit:.2}/s); the fastest the limit allows is {fastest:.1} s: {:.2}x of the limit",
        b.scanned,
        requests.len(),
        if fastest > 0.0 { fastest / wall } else { 1.0 }
    );
    println!(
        "                    429s: {too_many} in all, {late_429s} after the bucket's first response; goal none after it: {}",
        verdict(late_429s == 0)
    );

    // (c) The library at `library_clips` clips: two channels, every message a clip.
    let guild = sim.create_guild("Bench library");
    let library = guild_id(guild)?;
    guilds.push(library);
    let halves = [
        sim.create_channel(guild, "sessions", ChannelKind::Text)?,
        sim.create_channel(guild, "highlights", ChannelKind::Text)?,
    ];
    let per_channel = load.library_clips.div_ceil(halves.len());
    let scanner = Scanner::new(repo.clone(), discord_for(&sim, u16::MAX), clock.clone());
    let mut indexed = 0;
    let started = Instant::now();
    for channel in halves {
        seed(&sim, channel, &authors, per_channel, 1)?;
        indexed += timed_deep_scan(&scanner, channel_id(channel)?).await?.clips;
    }
    println!(
        "  (c) library       {indexed} clips in 2 channels by {AUTHORS} authors (seeded and scanned in {:.1} s); {} timed calls each, {LIBRARY_PAGE} clips a page",
        started.elapsed().as_secs_f64(),
        load.queries
    );
    let everything = LibraryFilter::guild(library);
    let mut filtered = LibraryFilter::guild(library);
    let (sessions_channel, searched_author) = (halves[0], authors[3]);
    filtered.channel = Some(channel_id(sessions_channel)?);
    filtered.author =
        Some(discord::UserId::new_checked(searched_author.get()).context("an author")?);
    filtered.search = Some(SearchText::parse("dragon")?);
    // The cursor of the 100th page, walked to once.
    let mut deep: Option<LibraryCursor> = None;
    for _ in 0..99 {
        let page = repo.library_page(&everything, deep, LIBRARY_PAGE).await?;
        deep = page.next;
        if deep.is_none() {
            break;
        }
    }
    let server = LibraryServer::start(stores.pg, stores.redis_url, &sim, guild).await?;
    let path = clips::web::library_path(library);
    let filtered_path =
        format!("{path}?channel={sessions_channel}&author={searched_author}&q=dragon");
    let deep_path = match deep {
        Some(cursor) => {
            let mut url = url::Url::parse("http://bench/").context("a URL")?;
            url.set_path(&path);
            url.query_pairs_mut()
                .append_pair("before", &cursor.to_string());
            format!("{}?{}", url.path(), url.query().unwrap_or_default())
        }
        None => path.clone(),
    };
    let queries: [(&str, &LibraryFilter, Option<LibraryCursor>, &str); 3] = [
        ("first page      ", &everything, None, &path),
        ("filtered search ", &filtered, None, &filtered_path),
        ("100th page      ", &everything, deep, &deep_path),
    ];
    let mut worst = Duration::ZERO;
    for (name, filter, cursor, page) in queries {
        let calls = load.queries.max(1);
        let server_times = {
            let server = &server;
            timed(calls, move || async move { server.tiles(page).await }).await?;
            server.last_times(calls)
        };
        let statement = timed(calls, move || async move {
            Ok(repo
                .library_page(filter, cursor, LIBRARY_PAGE)
                .await?
                .clips
                .len())
        })
        .await?;
        let p95 = percentile(&server_times, 95.0);
        worst = worst.max(p95);
        println!(
            "                    {name} server p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms; its repository call p95 {:.2} ms",
            ms(percentile(&server_times, 50.0)),
            ms(p95),
            ms(server_times.last().copied().unwrap_or_default()),
            ms(percentile(&statement, 95.0))
        );
    }
    server.served.abort();
    println!(
        "                    goal p95 < {} ms (server time): {} (worst p95 {:.2} ms, {:.2}x the goal)",
        LIBRARY_GOAL.as_millis(),
        verdict(worst < LIBRARY_GOAL),
        ms(worst),
        worst.as_secs_f64() / LIBRARY_GOAL.as_secs_f64()
    );
    Ok(())
}
