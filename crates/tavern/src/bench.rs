//! `tavern bench interactions`: slash commands through discord-sim at a fixed rate, the
//! production bot answering, latency measured from the sim's dispatch to the callback it
//! receives. Prints figures; asserts nothing (speed is measured, not asserted).

pub mod clips;
pub mod media;
pub mod meetings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use discord::BotConfig;
use discord::{CommandSpec, Invocation, Reply, Response};
use feature::Feature;
use tokio_util::sync::CancellationToken;

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s on every mainstream configuration.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The name of the threads the benchmarks' fakes run on (a runtime of their own), so
/// their CPU time can be told from Tavern's.
const FAKES_THREAD: &str = "bench-fakes";

/// CPU time (user + system) of this process's threads named [`FAKES_THREAD`], from
/// `/proc/self/task/*/stat`.
fn fakes_cpu() -> Option<Duration> {
    threads_cpu(FAKES_THREAD)
}

/// CPU time (user + system) of this process's threads named `name`, from
/// `/proc/self/task/*/stat` (threads that ended are not counted).
fn threads_cpu(name: &str) -> Option<Duration> {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let stat = match std::fs::read_to_string(task.path().join("stat")) {
            Ok(stat) => stat,
            // The thread ended meanwhile.
            Err(_) => continue,
        };
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        if stat.get(open + 1..close) != Some(name) {
            continue;
        }
        let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        ticks += utime + stime;
    }
    Some(Duration::from_millis(ticks * 10))
}

/// The machine's CPU time counters from `/proc/stat`: (all, stolen), in clock ticks.
/// "Stolen" is time a virtual machine's CPUs were ready to run but the hypervisor ran
/// someone else; a run with much of it measures the neighbours as much as Tavern.
fn machine_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: inside user].
    let all = fields.iter().take(8).sum();
    Some((all, *fields.get(7)?))
}

/// The share of the machine's CPU time stolen by the hypervisor between two readings.
fn stolen_share(before: Option<(u64, u64)>) -> Option<f64> {
    let (all0, steal0) = before?;
    let (all1, steal1) = machine_cpu()?;
    let all = all1.checked_sub(all0)?;
    (all > 0).then(|| steal1.saturating_sub(steal0) as f64 * 100.0 / all as f64)
}

/// Prints the stolen share, with a warning when it is high enough to distort latency.
fn print_stolen(share: Option<f64>) {
    if let Some(share) = share {
        let note = if share >= 5.0 {
            " (high: the host is busy; latency figures are inflated, run again later)"
        } else {
            ""
        };
        println!("  CPU stolen by host {share:.1}%{note}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn bench_feature() -> Feature {
    Feature::new("bench").command(
        CommandSpec::new("bench", "Answers at once"),
        Arc::new(|inv: Invocation| async move {
            Ok(Response::Message(Reply::text(format!(
                "ok {}",
                inv.actor.name
            ))))
        }),
    )
}

/// The production bot on the bench's discord-sim.
struct BenchBot {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), discord::BotError>>,
}

impl BenchBot {
    /// Routes `features` and connects; returns once the gateway is ready and the
    /// commands are registered (or fails after 10 s).
    async fn start(
        sim: &discord_sim::Sim,
        config: BotConfig,
        discord: discord::Discord,
        mut features: Vec<Feature>,
    ) -> anyhow::Result<BenchBot> {
        let bot = feature::bot(config, discord, &mut features).context("routing")?;
        BenchBot::run(sim, bot).await
    }

    /// Connects a bot already routed.
    async fn run(sim: &discord_sim::Sim, bot: discord::Bot) -> anyhow::Result<BenchBot> {
        let status = bot.status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bot.run(shutdown.clone()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !status.is_ready() || sim.registered_commands().is_empty() {
            if Instant::now() > deadline {
                anyhow::bail!("the bot did not connect to discord-sim within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(BenchBot { shutdown, task })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("bot task")?.context("bot")?;
        Ok(())
    }
}

/// A [`feature::Context`] for a benchmark: this Redis, discord-sim, no PostgreSQL.
fn bench_context(
    redis: store::Redis,
    discord: discord::Discord,
) -> anyhow::Result<feature::Context> {
    let postgres = store::Postgres::lazy("postgres://bench@127.0.0.1:9/unused")?;
    let public_url = url::Url::parse("http://127.0.0.1:8080/")?;
    Ok(crate::app::context(redis, postgres, discord, public_url))
}

/// Runs the interaction benchmark and prints its figures.
pub async fn interactions(rate: u32, seconds: u32) -> anyhow::Result<()> {
    discord::install_crypto_provider();
    let sim = discord_sim::Sim::start(discord_sim::SimConfig::default())
        .context("starting discord-sim")?;
    let demo = sim.seed_demo();
    let config = BotConfig::stand_in(sim.token(), &sim.addr().to_string(), &sim.gateway_url());
    let discord = discord::Discord::new(&config.rest);
    let bot = BenchBot::start(&sim, config, discord, vec![bench_feature()]).await?;
    let users = [demo.alice, demo.bob, demo.carol, demo.demo_player];

    // Warm up connections and caches.
    for _ in 0..200 {
        let i = sim.run_command(demo.alice, demo.general, "bench", serde_json::json!([]))?;
        i.response(Duration::from_secs(5)).await?;
    }

    let total = (rate as u64 * seconds as u64) as usize;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let machine_before = machine_cpu();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut waiters = tokio::task::JoinSet::new();
    for n in 0..total {
        ticker.tick().await;
        let user = users[n % users.len()];
        let interaction = sim.run_command(user, demo.general, "bench", serde_json::json!([]))?;
        waiters.spawn(async move {
            interaction
                .response(Duration::from_secs(10))
                .await
                .map(|reply| reply.callback_at.duration_since(interaction.dispatched_at))
        });
    }
    let dispatch_time = started.elapsed();
    let mut latencies = Vec::with_capacity(total);
    let mut failures = 0usize;
    while let Some(result) = waiters.join_next().await {
        match result {
            Ok(Ok(latency)) => latencies.push(latency),
            _ => failures += 1,
        }
    }
    let wall = started.elapsed();
    let cpu_after = process_cpu();
    let stolen = stolen_share(machine_before);
    bot.stop().await?;

    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "interactions through discord-sim (bot and sim in this process, release build recommended)"
    );
    println!("  target rate        {rate}/s for {seconds} s = {total} interactions");
    println!(
        "  achieved dispatch  {:.0}/s",
        total as f64 / dispatch_time.as_secs_f64()
    );
    println!(
        "  answered           {} ({} failed or timed out)",
        latencies.len(),
        failures
    );
    println!(
        "  latency dispatch->callback  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu = after.saturating_sub(before);
        println!(
            "  CPU                {:.2} s over {:.2} s wall = {:.1} us per interaction (bot + sim together)",
            cpu.as_secs_f64(),
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / total.max(1) as f64
        );
    }
    print_stolen(stolen);
    let goal = Duration::from_millis(5);
    println!(
        "  goal p99 <= 5 ms   {}",
        if percentile(&latencies, 99.0) <= goal {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// A player's "thinking time" before each press: spread deterministically over
/// `0..max` by game and step, so games interleave as real tables do instead of every
/// table pressing in the same millisecond.
#[derive(Clone, Copy)]
struct Think {
    game: u64,
    max_ms: u64,
}

impl Think {
    async fn pause(self, step: u64) {
        if self.max_ms == 0 {
            return;
        }
        let spread = (self.game.wrapping_mul(7919) ^ step.wrapping_mul(104_729))
            .wrapping_mul(2_654_435_761)
            % self.max_ms;
        tokio::time::sleep(Duration::from_millis(spread)).await;
    }
}

/// One game of the drinking benchmark: start, two joins, begin, three rolls, one pay.
/// Returns the dispatch->callback latency of each button press.
async fn drinking_game(
    sim: discord_sim::Sim,
    channel: discord_sim::Snowflake,
    players: [discord_sim::Snowflake; 3],
    think: Think,
) -> anyhow::Result<Vec<Duration>> {
    let wait = Duration::from_secs(20);
    think.pause(0).await;
    let start = sim
        .run_command(
            players[0],
            channel,
            "ronnied",
            serde_json::json!([{"name": "start", "type": 1, "options": []}]),
        )?
        .response(wait)
        .await?;
    let message = start
        .message_id
        .context("the start reply is the game message")?;
    let id_of = |label: &str, components: &[discord_sim::ComponentSummary]| {
        components
            .iter()
            .find(|c| c.label.as_deref() == Some(label))
            .and_then(|c| c.custom_id.clone())
    };
    let join = id_of("Join", &start.components).context("Join button")?;
    let begin = id_of("Begin", &start.components).context("Begin button")?;
    let mut latencies = Vec::with_capacity(7);
    let mut step = 0u64;
    let mut press = async |user, custom_id: &str| -> anyhow::Result<()> {
        step += 1;
        think.pause(step).await;
        let i = sim.click_button(user, channel, message, custom_id)?;
        let reply = i.response(wait).await?;
        latencies.push(reply.callback_at.duration_since(i.dispatched_at));
        Ok(())
    };
    press(players[1], &join).await?;
    press(players[2], &join).await?;
    press(players[0], &begin).await?;
    // The public message is edited in the background; Roll appears once it is.
    let deadline = Instant::now() + wait;
    let roll = loop {
        let summaries = sim
            .message(channel, message)
            .map(|m| discord_sim::ComponentSummary::flatten(&m.components))
            .unwrap_or_default();
        if let Some(id) = id_of("Roll", &summaries) {
            break id;
        }
        anyhow::ensure!(Instant::now() < deadline, "Roll never offered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for player in players {
        press(player, &roll).await?;
    }
    let deadline = Instant::now() + wait;
    let pay = loop {
        let summaries = sim
            .message(channel, message)
            .map(|m| discord_sim::ComponentSummary::flatten(&m.components))
            .unwrap_or_default();
        if let Some(id) = id_of("Pay", &summaries) {
            break id;
        }
        anyhow::ensure!(Instant::now() < deadline, "Pay never offered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    press(players[0], &pay).await?;
    Ok(latencies)
}

/// Runs `games` drinking games at once through discord-sim against the Redis at
/// `redis_url`, three players each, and prints presses per second and latency.
///
/// Every press edits the public game message in the background; at Discord's default
/// global limit of 50 requests/s, 500 games' edits would queue for over a minute, so
/// `global_rate_limit` sets the limit the bot assumes (a large bot's raised limit).
/// `think_ms` is the most a player waits before a press (0: every table presses at once).
pub async fn drinking(
    redis_url: &str,
    games: usize,
    global_rate_limit: u16,
    think_ms: u64,
) -> anyhow::Result<()> {
    discord::install_crypto_provider();
    let redis = store::Redis::connect(redis_url)
        .await
        .with_context(|| format!("connecting to {}", store::redact_url(redis_url)))?;
    let sim = discord_sim::Sim::start(discord_sim::SimConfig::default())
        .context("starting discord-sim")?;
    let guild = sim.create_guild("Bench");
    let dice = Arc::new(drinking::testing::ScriptedDice::new(None));
    let mut tables = Vec::with_capacity(games);
    for g in 0..games {
        let channel =
            sim.create_channel(guild, &format!("table-{g}"), discord_sim::ChannelKind::Text)?;
        let mut players = [discord_sim::Snowflake::new(0); 3];
        for (p, slot) in players.iter_mut().enumerate() {
            let user = sim.create_user(&format!("p{g}-{p}"));
            sim.add_member(guild, user)?;
            // Distinct rolls without 1s and 6s: one lowest roller, no roll-off, no assignment.
            dice.script(
                discord::UserId::new_checked(user.get()).context("player id")?,
                &[2 + p as u8],
            );
            *slot = user;
        }
        tables.push((channel, players));
    }
    let mut config = BotConfig::stand_in(sim.token(), &sim.addr().to_string(), &sim.gateway_url());
    config.rest.global_rate_limit = global_rate_limit;
    let discord = discord::Discord::new(&config.rest);
    let ctx = bench_context(redis, discord.clone())?;
    let game = drinking::Drinking::new(
        &ctx,
        drinking::DrinkingConfig {
            dice,
            ..drinking::DrinkingConfig::default()
        },
    );
    let bot = BenchBot::start(&sim, config, discord, vec![game.feature()]).await?;

    let trips_before = game.round_trips();
    let machine_before = machine_cpu();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for (g, (channel, players)) in tables.into_iter().enumerate() {
        let think = Think {
            game: g as u64,
            max_ms: think_ms,
        };
        runs.spawn(drinking_game(sim.clone(), channel, players, think));
    }
    let mut latencies = Vec::new();
    let mut failed = 0usize;
    while let Some(result) = runs.join_next().await {
        match result {
            Ok(Ok(mut l)) => latencies.append(&mut l),
            Ok(Err(error)) => {
                failed += 1;
                tracing::warn!(%error, "a benchmark game failed");
            }
            Err(_) => failed += 1,
        }
    }
    let wall = started.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    let trips = game.round_trips() - trips_before;
    let stolen = stolen_share(machine_before);
    bot.stop().await?;

    latencies.sort();
    let presses = latencies.len();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "drinking game through discord-sim with real Redis ({games} games at once, 3 players, 7 presses each, think time up to {think_ms} ms, global REST limit {global_rate_limit}/s)"
    );
    println!(
        "  games completed    {} ({} failed)",
        games - failed,
        failed
    );
    println!(
        "  presses            {presses} in {:.2} s = {:.0} presses/s",
        wall.as_secs_f64(),
        presses as f64 / wall.as_secs_f64()
    );
    println!(
        "  press latency dispatch->callback  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "  redis round trips  {trips} ({:.2} per interaction incl. /ronnied start)",
        trips as f64 / (presses + games).max(1) as f64
    );
    if let Some(cpu) = cpu {
        println!(
            "  CPU                {:.2} s = {:.0} us per press (bot + sim + bench driver)",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / presses.max(1) as f64
        );
    }
    print_stolen(stolen);
    println!(
        "  goal p99 <= 5 ms   {}",
        if percentile(&latencies, 99.0) <= Duration::from_millis(5) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// The worst `/odds` found: keep-highest on a large pool spends the exact engine's
/// whole budget (40 million steps) before giving up, then the simulation's whole
/// budget (2,000 rolls of 5,000 dice, each sorted).
pub const WORST_ODDS: &str = "5000d6kh2500";
/// The worst `/roll` found: the most dice one roll may roll (20,000), each pool
/// sorted to keep half, and both renderings of 20,000 dice.
pub const WORST_ROLL: &str = "2 10000d6kh5000";

/// What `tavern bench dice-load` does.
#[derive(Debug, Clone)]
pub struct DiceLoad {
    /// How many of the worst `/odds` and, as many again, of the worst `/roll`.
    pub heavy: usize,
    /// `/ping`s per phase.
    pub pings: usize,
    /// Between two `/ping`s.
    pub interval: Duration,
    pub odds: String,
    pub roll: String,
}

/// `/ping` latencies, dispatch to callback, sent every `interval`.
async fn ping_series(
    sim: &discord_sim::Sim,
    user: discord_sim::Snowflake,
    channel: discord_sim::Snowflake,
    count: usize,
    interval: Duration,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..count {
        ticker.tick().await;
        let interaction = sim.run_command(user, channel, "ping", serde_json::json!([]))?;
        waiters.spawn(async move {
            interaction
                .response(Duration::from_secs(30))
                .await
                .map(|reply| reply.callback_at.duration_since(interaction.dispatched_at))
        });
    }
    let mut latencies = Vec::with_capacity(count);
    let mut failed = 0;
    while let Some(result) = waiters.join_next().await {
        match result {
            Ok(Ok(latency)) => latencies.push(latency),
            _ => failed += 1,
        }
    }
    latencies.sort();
    Ok((latencies, failed))
}

/// `/ping` latency on an idle bot, then with `heavy` of the worst `/odds` and as many
/// of the worst `/roll` sent at once, side by side. The rolls feature runs as in
/// production (its dice pool sized for this machine) against the Redis at
/// `redis_url`.
pub async fn dice_load(redis_url: &str, load: DiceLoad) -> anyhow::Result<()> {
    discord::install_crypto_provider();
    let redis = store::Redis::connect(redis_url)
        .await
        .with_context(|| format!("connecting to {}", store::redact_url(redis_url)))?;
    let sim = discord_sim::Sim::start(discord_sim::SimConfig::default())
        .context("starting discord-sim")?;
    let demo = sim.seed_demo();
    let config = BotConfig::stand_in(sim.token(), &sim.addr().to_string(), &sim.gateway_url());
    let discord = discord::Discord::new(&config.rest);
    let ctx = bench_context(redis, discord.clone())?;
    let gateway = discord::GatewayStatus::default();
    let rolls_config = rolls::RollsConfig::new(std::env::temp_dir().join("tavern-bench-dice"));
    let (roll_lane, odds_lane) = rolls_config.dice.sizes();
    let mut features = vec![
        crate::core::feature(&ctx, gateway.clone()),
        rolls::feature(&ctx, rolls_config),
    ];
    let bot = feature::bot(config, discord, &mut features)
        .context("routing")?
        .with_status(gateway);
    let bot = BenchBot::run(&sim, bot).await?;

    // Warm up connections.
    ping_series(&sim, demo.bob, demo.general, 20, load.interval).await?;
    let (idle, idle_failed) =
        ping_series(&sim, demo.bob, demo.general, load.pings, load.interval).await?;

    let machine_before = machine_cpu();
    let started = Instant::now();
    let mut heavy = Vec::with_capacity(load.heavy * 2);
    for _ in 0..load.heavy {
        for (command, expression) in [("odds", &load.odds), ("roll", &load.roll)] {
            heavy.push(sim.run_command(
                demo.alice,
                demo.dice,
                command,
                serde_json::json!([{"name": "expression", "value": expression}]),
            )?);
        }
    }
    let (loaded, loaded_failed) =
        ping_series(&sim, demo.bob, demo.general, load.pings, load.interval).await?;
    let window = started.elapsed();
    let mut answered = [0usize; 2];
    for (i, h) in heavy.iter().enumerate() {
        if h.final_response(Duration::ZERO).await.is_ok() {
            answered[i % 2] += 1;
        }
    }
    let stolen = stolen_share(machine_before);
    bot.stop().await?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "/ping through discord-sim, idle and with heavy dice in flight (bot and sim in this process, release build recommended)"
    );
    println!(
        "  heavy load         {n} x /odds {odds}  +  {n} x /roll {roll}, sent at once",
        n = load.heavy,
        odds = load.odds,
        roll = load.roll
    );
    println!(
        "  dice pool          {roll_lane} roll(s) and {odds_lane} odds at a time, on {} core(s)",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    println!(
        "  pings              {} per phase, one every {:.0} ms",
        load.pings,
        ms(load.interval)
    );
    println!("                     p50 ms     p99 ms     max ms   failed");
    for (label, latencies, failed) in [
        ("idle", &idle, idle_failed),
        ("under load", &loaded, loaded_failed),
    ] {
        println!(
            "  {label:<17} {:>7.3}    {:>7.3}    {:>7.3}   {failed}",
            ms(percentile(latencies, 50.0)),
            ms(percentile(latencies, 99.0)),
            ms(latencies.last().copied().unwrap_or_default()),
        );
    }
    println!(
        "  heavy answered     {} of {} /odds and {} of {} /roll within the {:.1} s of pings under load",
        answered[0],
        load.heavy,
        answered[1],
        load.heavy,
        window.as_secs_f64()
    );
    print_stolen(stolen);
    println!(
        "  goal p99 <= 50 ms under load   {}",
        if percentile(&loaded, 99.0) <= Duration::from_millis(50) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// The size of `tavern bench campaigns`.
#[derive(Debug, Clone, Copy)]
pub struct CampaignsLoad {
    pub series: usize,
    pub events_per_series: usize,
    pub rsvps_per_event: usize,
    /// Distinct Meetup members (each linked to a Discord member of the guild).
    pub members: usize,
}

/// `redis-cli INFO stats`' `total_commands_processed`.
async fn redis_commands(redis: &store::Redis) -> anyhow::Result<u64> {
    let info: String = store::redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut redis.conn())
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO stats has no total_commands_processed")
}

/// What one measured sync did.
struct SyncFigures {
    meetup: Duration,
    discord: Duration,
    cpu: Option<Duration>,
    /// CPU of Tavern's own threads (the process less the fakes' runtime).
    own_cpu: Option<Duration>,
    requests: usize,
    writes: usize,
    redis_commands: u64,
    /// Round trips to Redis of both steps (a pipeline or transaction counts once).
    redis_round_trips: u64,
    view_round_trips: usize,
    series: usize,
    failed: usize,
}

async fn measured_sync(
    repo: &campaigns::Repo,
    client: &meetup::MeetupClient,
    discord: &discord::Discord,
    config: &campaigns::CampaignsConfig,
    sim: &discord_sim::Sim,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<SyncFigures> {
    let settings = config.discord.as_ref().context("discord settings")?;
    sim.clear_requests();
    let commands_before = redis_commands(repo.redis()).await?;
    let round_trips_before = store::redis_round_trips();
    let cpu_before = process_cpu();
    let fakes_before = fakes_cpu();
    let started = Instant::now();
    let meetup = campaigns::sync_once(repo, client, config, now)
        .await
        .context("Meetup → Redis")?;
    let meetup_took = started.elapsed();
    let started = Instant::now();
    let report = campaigns::sync_discord(repo, discord, settings, &meetup.extras, now)
        .await
        .context("Redis → Discord")?;
    let discord_took = started.elapsed();
    let redis_round_trips = store::redis_round_trips().saturating_sub(round_trips_before);
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    let fakes = fakes_cpu()
        .zip(fakes_before)
        .map(|(a, b)| a.saturating_sub(b));
    // Everything but the fakes' threads: Tavern's runtime (a fakes' thread that ended
    // meanwhile would count here, so this errs on Tavern's side).
    let own_cpu = cpu.zip(fakes).map(|(all, fakes)| all.saturating_sub(fakes));
    // Less the INFO call itself.
    let redis_commands = redis_commands(repo.redis())
        .await?
        .saturating_sub(commands_before + 1);
    let requests = sim.requests();
    Ok(SyncFigures {
        meetup: meetup_took,
        discord: discord_took,
        cpu,
        own_cpu,
        writes: requests.iter().filter(|r| r.method != "GET").count(),
        requests: requests.len(),
        redis_commands,
        redis_round_trips,
        view_round_trips: report.redis_round_trips,
        series: report.series,
        failed: report.failed.len(),
    })
}

/// `tavern bench campaigns`: one campaigns sync of `load` against the fake Meetup and
/// discord-sim (no added latency, Discord's limits off) and real Redis at `redis_url`,
/// then a second sync right after. Prints wall time, Redis commands and Discord
/// requests per series; the second sync must make no Discord write.
pub async fn campaigns(redis_url: &str, load: CampaignsLoad) -> anyhow::Result<()> {
    use campaigns::config::DiscordSettings;
    use meetup::fake::{FakeMeetup, NewEvent};
    discord::install_crypto_provider();
    let redis = store::Redis::connect(redis_url)
        .await
        .with_context(|| format!("connecting to {}", store::redact_url(redis_url)))?;
    let repo = campaigns::Repo::new(redis);
    if !repo.tracked_series().await?.is_empty() {
        anyhow::bail!(
            "{} already holds campaigns data; the benchmark writes its own, so point TAVERN_REDIS_URL at a scratch Redis",
            store::redact_url(redis_url)
        );
    }
    // The fakes run on a runtime of their own (threads named `FAKES_THREAD`), so the
    // CPU they use answering Tavern can be told from Tavern's own.
    let fakes_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(FAKES_THREAD)
        .enable_all()
        .build()
        .context("starting the fakes' runtime")?;
    let sim = {
        let _on_fakes = fakes_runtime.enter();
        discord_sim::Sim::start(discord_sim::SimConfig {
            rate_limit_per_window: u32::MAX,
            guild_role_limit: usize::MAX,
            request_log_capacity: 1_000_000,
            ..discord_sim::SimConfig::default()
        })
        .context("starting discord-sim")?
    };
    let guild = sim.create_guild("Bench");
    let fake = fakes_runtime
        .spawn(FakeMeetup::start())
        .await
        .context("starting the fake Meetup")?
        .context("starting the fake Meetup")?;
    let group = meetup::GroupUrlname::parse("bench-group")?;
    fake.add_group(&group, "Bench")?;
    let organiser = fake.add_member("Organiser");
    let client_id = meetup::ClientId::new("tavern");
    let secret = meetup::ClientSecret::from("bench-secret");
    fake.add_oauth_client(
        &client_id,
        &secret,
        &url::Url::parse("http://127.0.0.1/organiser/callback")?,
    );
    let tokens = fake.issue_tokens(&organiser)?;
    let now = chrono::Utc::now();
    repo.set_organizer_tokens(
        &campaigns::repo::Tokens {
            access: tokens.access_token,
            refresh: tokens.refresh_token,
        },
        now + chrono::TimeDelta::days(2),
    )
    .await?;

    // Members: Meetup i is Discord member i, linked.
    let mut members = Vec::with_capacity(load.members);
    for i in 0..load.members {
        let member = fake.add_member(&format!("player {i}"));
        let user = sim.create_user(&format!("player-{i}"));
        sim.add_member(guild, user)?;
        repo.link(
            campaigns::MeetupUserId::parse(member.as_str())?,
            discord::UserId::new_checked(user.get()).context("user id")?,
            None,
        )
        .await?;
        members.push(member);
    }
    // Series: a `[new campaign]` event and `[campaign <first>]` sessions a week apart,
    // every fifth online; `rsvps_per_event` members answer yes to each event.
    let mut event_number = 0usize;
    for s in 0..load.series {
        let mut first: Option<meetup::EventId> = None;
        for e in 0..load.events_per_series {
            let starts = (now
                + chrono::TimeDelta::hours(1 + (s % 24) as i64)
                + chrono::TimeDelta::days(7 * e as i64))
            .fixed_offset();
            let mut event = NewEvent::new(&group, &format!("Campaign {s}"), starts);
            event.description = match &first {
                None if s % 5 == 0 => "[new campaign] [online]".to_owned(),
                None => "[new campaign]".to_owned(),
                Some(first) => format!("[campaign {first}]"),
            };
            event.max_tickets = Some(load.rsvps_per_event as u32 + 2);
            if let Some(host) = members.get(s % load.members.max(1)) {
                event.hosts = vec![host.clone()];
            }
            let id = fake.add_event(event)?;
            for r in 0..load.rsvps_per_event {
                let member = &members[(event_number * load.rsvps_per_event + r) % members.len()];
                fake.add_rsvp(&id, member, meetup::RsvpStatus::Yes, 0)?;
            }
            event_number += 1;
            first.get_or_insert(id);
        }
    }
    let mut settings =
        DiscordSettings::new(discord::GuildId::new_checked(guild.get()).context("guild")?);
    let categories_needed = (load.series * 2).div_ceil(campaigns::discord_sync::CATEGORY_LIMIT);
    for c in 0..categories_needed {
        let category = sim.create_channel(
            guild,
            &format!("Campaigns {c}"),
            discord_sim::ChannelKind::Category,
        )?;
        settings
            .categories
            .push(discord::ChannelId::new_checked(category.get()).context("category")?);
    }
    let spots = sim.create_channel(guild, "free-spots", discord_sim::ChannelKind::Text)?;
    settings.free_spots_channel = discord::ChannelId::new_checked(spots.get());
    let mut config =
        campaigns::CampaignsConfig::new(client_id, secret, fake.endpoints(), vec![group]);
    config.discord = Some(settings);
    let client = meetup::MeetupClient::new(fake.endpoints())?;
    let mut rest = discord::DiscordConfig::new(sim.token(), Some(sim.addr().to_string()));
    rest.global_rate_limit = u16::MAX;
    let discord = discord::Discord::new(&rest);

    let first = measured_sync(&repo, &client, &discord, &config, &sim, now).await?;
    let second = measured_sync(&repo, &client, &discord, &config, &sim, now).await?;

    let events = load.series * load.events_per_series;
    println!(
        "campaigns sync against the fake Meetup and discord-sim (no added latency, Discord's limits off) and Redis at {}",
        store::redact_url(redis_url)
    );
    println!(
        "  load              {} series, {events} events, {} RSVPs, {} linked members",
        load.series,
        events * load.rsvps_per_event,
        load.members
    );
    for (name, f) in [("first sync ", &first), ("second sync", &second)] {
        let per = |n: f64| n / f.series.max(1) as f64;
        println!(
            "  {name}       wall {:.3} s (Meetup → Redis {:.3} s, Redis → Discord {:.3} s); {} series, {} failed",
            (f.meetup + f.discord).as_secs_f64(),
            f.meetup.as_secs_f64(),
            f.discord.as_secs_f64(),
            f.series,
            f.failed
        );
        println!(
            "                    Discord requests {} ({:.2}/series), writes {} ({:.2}/series); Redis round trips {} ({:.1}/series) carrying {} commands ({:.1}/series), the Discord step's read {} round trips",
            f.requests,
            per(f.requests as f64),
            f.writes,
            per(f.writes as f64),
            f.redis_round_trips,
            per(f.redis_round_trips as f64),
            f.redis_commands,
            per(f.redis_commands as f64),
            f.view_round_trips
        );
        if let (Some(cpu), Some(own)) = (f.cpu, f.own_cpu) {
            println!(
                "                    CPU {:.3} s in all, Tavern's own {:.3} s (the rest is discord-sim and the fake Meetup answering it)",
                cpu.as_secs_f64(),
                own.as_secs_f64()
            );
        }
    }
    println!(
        "  zero Discord writes on the second sync: {}",
        if second.writes == 0 { "yes" } else { "NO" }
    );
    // The first sync is the one with the work (every channel, role and member); the
    // goal is judged on it, by Tavern's own CPU (or its wall time when unmeasured).
    let own = first.own_cpu.unwrap_or(first.meetup + first.discord);
    println!(
        "  goal: Tavern's own work <= 1 s: {} (first sync, {:.3} s of CPU)",
        if own <= Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        },
        own.as_secs_f64()
    );
    fakes_runtime.shutdown_background();
    Ok(())
}
