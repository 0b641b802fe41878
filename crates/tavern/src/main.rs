//! `tavern`: the command-line entry point.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tavern::config::{Config, LogFormat};

mod campaigns_cmd;
mod clips_cmd;
mod meetings_cmd;
mod roll_cmd;
mod tokens_cmd;

/// Tavern: a self-hosted home for tabletop-gaming communities on Discord.
#[derive(Debug, Parser)]
#[command(name = "tavern", version, about, long_about = None)]
struct Cli {
    /// Configuration file (default: ./tavern.toml if it exists). TAVERN_* variables override it.
    #[arg(long, global = true, env = "TAVERN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Tavern: the bot, the web server and the scheduled jobs. Without a Discord token
    /// it runs in sandbox mode with an in-process fake Discord and a web console.
    Serve {
        /// Let sandbox mode listen on an address other than loopback (a public demo):
        /// anyone who reaches it acts as the demo users.
        #[arg(long)]
        sandbox_public: bool,
    },
    /// Apply every feature's PostgreSQL migrations and exit.
    Migrate,
    /// Check the stored data for inconsistencies; exit code 1 if any are found, 2 if the
    /// check could not run.
    Check,
    /// Roll dice: `tavern roll 4d6kh3`, `--json`, `--seed N`; `tavern roll -` reads one
    /// expression per line from stdin and prints one JSON line each.
    Roll(roll_cmd::RollArgs),
    /// The odds of a dice expression: mean, range, percentiles, chance of success.
    Odds(roll_cmd::OddsArgs),
    /// One round of the rolls sync: restore from object storage where it is newer than
    /// Redis, then snapshot Redis to it. `tavern serve` does this hourly and at shutdown.
    Sync {
        /// Run one round and exit (the only mode; the schedule lives in `tavern serve`).
        #[arg(long)]
        once: bool,
    },
    /// API tokens for programs calling the REST API: create, revoke, list.
    #[command(subcommand)]
    Tokens(tokens_cmd::TokensCommand),
    /// The campaigns: `tavern campaigns sync --once` runs one whole sync (Meetup →
    /// Redis → Discord, REST only) and prints what it created, changed and deleted.
    #[command(subcommand)]
    Campaigns(campaigns_cmd::CampaignsCommand),
    /// The clip archive: `tavern clips scan CHANNEL_ID [--deep] [--json]` scans one
    /// channel's history for videos to the end, over REST (no gateway).
    #[command(subcommand)]
    Clips(clips_cmd::ClipsCommand),
    /// Meetings from the command line: `tavern meetings create NAME`, `tavern meetings
    /// join CODE --as NAME` (prints the participants it sees).
    #[command(subcommand)]
    Meetings(meetings_cmd::MeetingsCommand),
    /// Run a meeting controller as its own process (with `meeting_controller =
    /// "separate"`, `tavern serve` runs none), until Ctrl-C or SIGTERM.
    MeetingController,
    /// Run a media handler as its own process (it registers its endpoint and certificate
    /// hash, and every meeting controller grants it), until Ctrl-C or SIGTERM.
    MediaHandler,
    /// Benchmarks (figures printed, nothing asserted).
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Slash commands through discord-sim at a fixed rate: latency and CPU per interaction.
    Interactions {
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 30)]
        seconds: u32,
    },
    /// Drinking games played at once through discord-sim against TAVERN_REDIS_URL.
    Drinking {
        #[arg(long, default_value_t = 500)]
        games: usize,
        /// REST requests per second the bot allows itself (Discord's default is 50).
        #[arg(long, default_value_t = 50)]
        global_rate_limit: u16,
        /// Longest pause of a player before a press, in ms (0: all tables press at once).
        #[arg(long, default_value_t = 2000)]
        think_ms: u64,
    },
    /// One campaigns sync of 200 series, 1,000 events and 10,000 RSVPs against the fake
    /// Meetup and discord-sim, then a second one right after, against TAVERN_REDIS_URL
    /// (a scratch Redis: it refuses one holding campaigns data).
    Campaigns {
        #[arg(long, default_value_t = 200)]
        series: usize,
        #[arg(long, default_value_t = 5)]
        events_per_series: usize,
        #[arg(long, default_value_t = 10)]
        rsvps_per_event: usize,
        /// Distinct Meetup members, each linked to a Discord member.
        #[arg(long, default_value_t = 2000)]
        members: usize,
    },
    /// The clip archive against discord-sim, TAVERN_DATABASE_URL (a scratch database) and
    /// TAVERN_REDIS_URL (the library's sessions): a deep scan of 200,000 messages with
    /// Discord's limits off (messages ingested per second), one at Discord's limits
    /// (request rate, 429s), and the library's pages at 100,000 clips (p95 server time).
    Clips {
        #[arg(long, default_value_t = 200_000)]
        messages: usize,
        /// Percent of the messages with a video.
        #[arg(long, default_value_t = 5)]
        video_percent: u32,
        /// Messages of the scan at Discord's limits.
        #[arg(long, default_value_t = 2_000)]
        limited_messages: usize,
        /// Requests per window of the message route's bucket at Discord's limits.
        #[arg(long, default_value_t = 5)]
        bucket_limit: u32,
        /// The bucket's window, in seconds.
        #[arg(long, default_value_t = 5)]
        bucket_window_secs: u64,
        /// Clips in the library.
        #[arg(long, default_value_t = 100_000)]
        library_clips: usize,
        /// Parts (a)'s deep scan is split into, read concurrently (1: not split).
        #[arg(long, default_value_t = 1)]
        parts: usize,
        /// Timed calls per library query.
        #[arg(long, default_value_t = 200)]
        queries: usize,
    },
    /// 1,000 participants joining 100 meetings over the API and WebTransport, against
    /// TAVERN_REDIS_URL and TAVERN_DATABASE_URL (scratch stores): create and get p95,
    /// token validation p99, join (grant to JoinResponse) p99.
    Meetings {
        #[arg(long, default_value_t = 100)]
        meetings: usize,
        #[arg(long, default_value_t = 1000)]
        participants: usize,
        /// Creations, and joins, in flight at once (the participants arrive in waves of
        /// this size).
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Participants arriving per second instead (at random, as a Poisson process),
        /// each join starting when its participant arrives whatever else is in flight.
        #[arg(long, value_parser = positive_rate)]
        rate: Option<f64>,
        /// Timed token validations.
        #[arg(long, default_value_t = 10_000)]
        validations: usize,
        /// Worker threads of the clients' runtime (the clients stand for other
        /// machines; the server keeps this process's main runtime).
        #[arg(long, default_value_t = 2)]
        client_threads: usize,
        /// Run a media handler too, whose grants each JoinResponse carries (as `tavern
        /// serve` does).
        #[arg(long)]
        media: bool,
        /// Once everybody has joined, keep every session open this many seconds (a
        /// heartbeat each 10 s) and print what holding them costs the server's CPU.
        #[arg(long, default_value_t = 0)]
        hold: u64,
        /// Every participant joins under an account of its own, so that each one's GET
        /// is its token's first use (the blacklist asked in Redis), instead of under the
        /// hosts' accounts (one per 25 meetings).
        #[arg(long)]
        own_accounts: bool,
    },
    /// One publisher at 2.5 Mbit/s forwarded by the media handler to N subscribers over
    /// loopback (against TAVERN_REDIS_URL and TAVERN_DATABASE_URL): frames and bytes out
    /// per second per core, p99 added latency.
    Media {
        /// Subscriber counts, one run each.
        #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 500])]
        subscribers: Vec<usize>,
        /// Seconds measured per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The publisher's bitrate, bits per second.
        #[arg(long, default_value_t = 2_500_000)]
        bitrate: u64,
        /// Worker threads of the publisher's and the subscribers' runtime.
        #[arg(long, default_value_t = 2)]
        client_threads: usize,
    },
    /// /ping latency idle and with the worst /odds and /roll in flight, side by side
    /// (against TAVERN_REDIS_URL).
    DiceLoad {
        /// How many of the worst /odds, and as many of the worst /roll, sent at once.
        #[arg(long, default_value_t = 50)]
        heavy: usize,
        /// /pings measured in each phase.
        #[arg(long, default_value_t = 300)]
        pings: usize,
        /// Time between two /pings, in ms (each /ping makes a REST call, and the bot
        /// keeps to Discord's 50 requests/s, so below 20 ms /ping measures that limit).
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
        /// The odds expression of the load.
        #[arg(long, default_value = tavern::bench::WORST_ODDS)]
        odds: String,
        /// The roll expression of the load.
        #[arg(long, default_value = tavern::bench::WORST_ROLL)]
        roll: String,
    },
}

/// `--rate`: a finite number of arrivals a second above zero.
fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        Ok(_) => Err(format!("`{s}` is not a rate above zero")),
        Err(e) => Err(format!("`{s}` is not a number: {e}")),
    }
}

/// The log filter: `TAVERN_LOG`, or [`tavern::config::DEFAULT_LOG_FILTER`] when it is
/// unset. A `TAVERN_LOG` that does not parse is an error naming the directive, not a
/// silent fall-back to the default.
fn log_filter() -> Result<tracing_subscriber::EnvFilter, String> {
    let Some(value) = std::env::var_os("TAVERN_LOG") else {
        return Ok(tracing_subscriber::EnvFilter::new(
            tavern::config::DEFAULT_LOG_FILTER,
        ));
    };
    let Some(text) = value.to_str() else {
        return Err("TAVERN_LOG: the value is not valid UTF-8".to_owned());
    };
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map_err(|error| {
            let bad = text
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .find(|d| d.parse::<tracing_subscriber::filter::Directive>().is_err())
                .unwrap_or(text);
            format!(
                "TAVERN_LOG: `{bad}` is not a log directive ({error}); write a level or \
                 target=level, separated by commas, e.g. `info,campaigns=debug`"
            )
        })
}

/// `tavern serve` logs to standard output; every other command's standard output is
/// its result (`migrate`'s summary, `sync`'s figures, `clips scan`'s last line, a
/// roll), so its logs go to standard error (`to_stderr`) and are not read as results
/// or said twice.
fn init_tracing(filter: tracing_subscriber::EnvFilter, format: LogFormat, to_stderr: bool) {
    // wtransport logs each session request's path at debug level, and a meeting
    // controller's paths carry one-time connection tokens: never below info.
    let filter = match "wtransport=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // Colours only for a person at a terminal: a log file, a pipe or the journal gets
    // plain text (and `NO_COLOR` turns them off anyway).
    let colours = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_target(false);
    match (format, to_stderr) {
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stderr).init(),
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stderr).init(),
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("tavern: configuration error: {e}");
        ExitCode::from(2)
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve(config: Config) -> anyhow::Result<()> {
    discord::install_crypto_provider();
    let running = tavern::start(config).await?;
    if running.sim.is_some() {
        let url = format!("http://{}/sandbox", running.http_addr);
        tracing::info!(%url, "sandbox console ready");
        println!("Tavern sandbox console: {url}");
    }
    let token = running.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing in-flight work");
        token.cancel();
    });
    running.wait().await
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let pg = store::Postgres::connect(config.database_url.expose())
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", config.database_url))?;
    // Migrating needs no Redis: the features get a handle that never connects.
    let redis = store::Redis::lazy(config.redis_url.expose())
        .with_context(|| format!("the Redis URL {}", config.redis_url))?;
    let features = tavern::app::command_features(&config, redis, pg.clone())?;
    let mut schemas = 0;
    for m in features.iter().filter_map(|f| f.migrations) {
        let applied = pg.migrate(&m).await?;
        let steps = m.steps.len();
        if applied == 0 {
            println!("schema {}: up to date ({steps} steps)", m.schema);
        } else {
            println!(
                "migrated schema {}: {applied} of its {steps} steps applied",
                m.schema
            );
        }
        schemas += 1;
    }
    if schemas == 0 {
        println!("no PostgreSQL migrations to apply");
    }
    Ok(())
}

/// `tavern check`: exit 0 when the data is consistent, 1 when it found inconsistencies,
/// 2 when it could not look (a store unreachable, a check that failed).
async fn check(config: Config) -> anyhow::Result<ExitCode> {
    match find_inconsistencies(&config).await {
        Ok(0) => {
            println!("no inconsistencies found");
            Ok(ExitCode::SUCCESS)
        }
        Ok(problems) => {
            println!("{problems} inconsistencies found");
            Ok(ExitCode::from(1))
        }
        Err(error) => {
            eprintln!("tavern: the check could not run: {error:#}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Runs every feature's checks, printing what they find; how many they found.
async fn find_inconsistencies(config: &Config) -> anyhow::Result<usize> {
    let redis = store::Redis::connect(config.redis_url.expose())
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis_url))?;
    let pg = store::Postgres::connect(config.database_url.expose())
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", config.database_url))?;
    let features = tavern::app::command_features(config, redis, pg)?;
    let mut problems = 0usize;
    for check in features.iter().flat_map(|f| &f.checks) {
        let findings = check
            .run()
            .await
            .with_context(|| format!("check {}", check.name()))?;
        for finding in &findings {
            println!("{}: {}: {}", check.name(), finding.subject, finding.problem);
        }
        problems += findings.len();
    }
    Ok(problems)
}

async fn sync(config: Config, once: bool) -> anyhow::Result<ExitCode> {
    if !once {
        eprintln!(
            "tavern: sync runs inside `tavern serve`; use `tavern sync --once` for one round"
        );
        return Ok(ExitCode::from(2));
    }
    let redis = store::Redis::connect(config.redis_url.expose())
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis_url))?;
    let rolls = tavern::app::rolls_config(&config);
    let target = rolls
        .sync_target
        .clone()
        .unwrap_or_else(|| rolls::SyncTarget::local(rolls.data_dir.join("rolls-sync")));
    let report = rolls::sync_once(&redis, &rolls)
        .await
        .with_context(|| format!("rolls sync with {target}"))?;
    println!(
        "rolls sync with {target}: {} restored, {} kept (Redis as new or newer), {} written, {} unchanged",
        report.restored, report.kept, report.written, report.unchanged
    );
    if report.held_back > 0 || report.carried > 0 {
        println!(
            "  {} key set(s) would have shrunk and were written beside the previous snapshot; {} missing from Redis kept from it",
            report.held_back, report.carried
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Dice need no configuration, stores or runtime.
    match &cli.command {
        Command::Roll(args) => return finish(roll_cmd::run_roll(args)),
        Command::Odds(args) => return finish(roll_cmd::run_odds(args)),
        _ => {}
    }
    let mut config = match load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Command::Serve { sandbox_public } = &cli.command {
        config.sandbox_public = *sandbox_public;
        if let Err(e) = config.check_serve().and_then(|()| config.check_files()) {
            eprintln!("tavern: configuration error: {e}");
            return ExitCode::from(2);
        }
    }
    let filter = match log_filter() {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("tavern: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(
        filter,
        config.log_format,
        !matches!(cli.command, Command::Serve { .. }),
    );
    let unread = store::unread_postgres_parameters(config.database_url.expose());
    if !unread.is_empty() {
        tracing::warn!(
            parameters = %unread.join(", "),
            "database_url: these connection parameters are not read by Tavern's PostgreSQL driver and are left out (their values are not logged)"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tavern: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { .. } => serve(config).await.map(|()| ExitCode::SUCCESS),
            Command::Tokens(command) => tokens_cmd::run(&config, command).await,
            Command::Campaigns(command) => campaigns_cmd::run(&config, command).await,
            Command::Clips(command) => clips_cmd::run(&config, command).await,
            Command::Meetings(command) => meetings_cmd::run(&config, command).await,
            Command::MeetingController => {
                let shutdown = tokio_util::sync::CancellationToken::new();
                let token = shutdown.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    tracing::info!("shutdown requested: closing the meeting controller");
                    token.cancel();
                });
                meetings_cmd::controller(&config, shutdown).await
            }
            Command::MediaHandler => {
                let shutdown = tokio_util::sync::CancellationToken::new();
                let token = shutdown.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    tracing::info!("shutdown requested: closing the media handler");
                    token.cancel();
                });
                meetings_cmd::media_handler(&config, shutdown).await
            }
            Command::Bench(Bench::Media {
                subscribers,
                seconds,
                bitrate,
                client_threads,
            }) => tavern::bench::media::run(
                config.redis_url.expose(),
                config.database_url.expose(),
                tavern::bench::media::MediaLoad {
                    subscribers,
                    seconds: seconds.max(1),
                    bitrate: bitrate.max(8_000),
                    client_threads: client_threads.max(1),
                },
            )
            .await
            .map(|()| ExitCode::SUCCESS),
            Command::Bench(Bench::Meetings {
                meetings,
                participants,
                concurrency,
                rate,
                validations,
                client_threads,
                media,
                hold,
                own_accounts,
            }) => tavern::bench::meetings::run(
                &config,
                tavern::bench::meetings::MeetingsLoad {
                    meetings: meetings.max(1),
                    participants,
                    concurrency: concurrency.max(1),
                    rate,
                    validations,
                    client_threads,
                    media,
                    hold: std::time::Duration::from_secs(hold),
                    own_accounts,
                },
            )
            .await
            .map(|()| ExitCode::SUCCESS),
            Command::Migrate => migrate(config).await.map(|()| ExitCode::SUCCESS),
            Command::Check => check(config).await,
            Command::Roll(_) | Command::Odds(_) => Ok(ExitCode::SUCCESS),
            Command::Sync { once } => sync(config, once).await,
            Command::Bench(Bench::Interactions { rate, seconds }) => {
                tavern::bench::interactions(rate, seconds)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
            Command::Bench(Bench::Drinking {
                games,
                global_rate_limit,
                think_ms,
            }) => tavern::bench::drinking(
                config.redis_url.expose(),
                games,
                global_rate_limit,
                think_ms,
            )
            .await
            .map(|()| ExitCode::SUCCESS),
            Command::Bench(Bench::Campaigns {
                series,
                events_per_series,
                rsvps_per_event,
                members,
            }) => tavern::bench::campaigns(
                config.redis_url.expose(),
                tavern::bench::CampaignsLoad {
                    series,
                    events_per_series,
                    rsvps_per_event,
                    members: members.max(1),
                },
            )
            .await
            .map(|()| ExitCode::SUCCESS),
            Command::Bench(Bench::Clips {
                messages,
                video_percent,
                limited_messages,
                bucket_limit,
                bucket_window_secs,
                library_clips,
                parts,
                queries,
            }) => tavern::bench::clips::run(
                config.database_url.expose(),
                config.redis_url.expose(),
                tavern::bench::clips::ClipsLoad {
                    messages,
                    video_percent,
                    limited_messages,
                    bucket_limit,
                    bucket_window: std::time::Duration::from_secs(bucket_window_secs.max(1)),
                    library_clips,
                    parts,
                    queries,
                    ..tavern::bench::clips::ClipsLoad::default()
                },
            )
            .await
            .map(|()| ExitCode::SUCCESS),
            Command::Bench(Bench::DiceLoad {
                heavy,
                pings,
                interval_ms,
                odds,
                roll,
            }) => tavern::bench::dice_load(
                config.redis_url.expose(),
                tavern::bench::DiceLoad {
                    heavy,
                    pings,
                    interval: std::time::Duration::from_millis(interval_ms.max(1)),
                    odds,
                    roll,
                },
            )
            .await
            .map(|()| ExitCode::SUCCESS),
        }
    });
    finish(result)
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("tavern: {error:#}");
            if error
                .chain()
                .any(|e| e.is::<tavern::instance::RefusedStores>())
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
