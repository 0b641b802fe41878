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
//!   deep in the grid, p50 and p95 of the repository call (the statement and its
//!   round trip, what a page's handler waits for; goal p95 under 20 ms).
//!
//! Every guild, channel and clip the bench writes has ids minted by its own
//! discord-sim; they are deleted at the end (the guilds, and with them everything
//! else). Still, point `TAVERN_DATABASE_URL` at a scratch database: the load is real.

use std::sync::Arc;
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

/// `tavern bench clips`: see the module's documentation.
pub async fn run(database_url: &str, load: ClipsLoad) -> anyhow::Result<()> {
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
    let result = measure(&repo, &fakes, &clock, load, &mut guilds).await;
    for guild in guilds {
        if let Err(error) = repo.delete_guild(guild).await {
            eprintln!("tavern: could not delete the bench's guild {guild}: {error}");
        }
    }
    fakes.shutdown_background();
    result
}

async fn measure(
    repo: &Repo,
    fakes: &tokio::runtime::Runtime,
    clock: &Arc<dyn feature::Clock>,
    load: ClipsLoad,
    guilds: &mut Vec<GuildId>,
) -> anyhow::Result<()> {
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
    filtered.channel = Some(channel_id(halves[0])?);
    filtered.author = Some(discord::UserId::new_checked(authors[3].get()).context("an author")?);
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
    let queries: [(&str, &LibraryFilter, Option<LibraryCursor>); 3] = [
        ("first page      ", &everything, None),
        ("filtered search ", &filtered, None),
        ("100th page      ", &everything, deep),
    ];
    let mut worst = Duration::ZERO;
    for (name, filter, cursor) in queries {
        let took = timed(load.queries, move || async move {
            Ok(repo
                .library_page(filter, cursor, LIBRARY_PAGE)
                .await?
                .clips
                .len())
        })
        .await?;
        let p95 = percentile(&took, 95.0);
        worst = worst.max(p95);
        println!(
            "                    {name} p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            ms(percentile(&took, 50.0)),
            ms(p95),
            ms(took.last().copied().unwrap_or_default())
        );
    }
    println!(
        "                    goal p95 < {} ms: {} (worst p95 {:.2} ms, {:.2}x the goal)",
        LIBRARY_GOAL.as_millis(),
        verdict(worst < LIBRARY_GOAL),
        ms(worst),
        worst.as_secs_f64() / LIBRARY_GOAL.as_secs_f64()
    );
    Ok(())
}
