//! What the tests of this crate share: a discord-sim with its demo guild, a REST
//! configuration pointing at it, the real bot on it, and captured logs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use discord::{Bot, BotConfig, DiscordConfig, GatewayStatus, Id, Router};
use discord_sim::{Demo, RequestRecord, Sim, SimConfig, Snowflake};
use testkit::eventually;
use tokio_util::sync::CancellationToken;

/// A discord-sim with `config` and its demo guild.
pub fn sim_with(config: SimConfig) -> (Sim, Demo) {
    discord::install_crypto_provider();
    let sim = Sim::start(config).unwrap();
    let demo = sim.seed_demo();
    (sim, demo)
}

pub fn sim() -> (Sim, Demo) {
    sim_with(SimConfig::default())
}

/// REST settings for `sim`, with quick retries.
pub fn config(sim: &Sim) -> DiscordConfig {
    let mut config = DiscordConfig::new(sim.token(), Some(sim.addr().to_string()));
    config.base_backoff = Duration::from_millis(20);
    config
}

/// The bot settings for `sim` with these REST settings.
pub fn bot_config(sim: &Sim, rest: DiscordConfig) -> BotConfig {
    BotConfig {
        rest,
        ..BotConfig::stand_in(sim.token(), &sim.addr().to_string(), &sim.gateway_url())
    }
}

pub fn id<M>(s: Snowflake) -> Id<M> {
    Id::new(s.get())
}

/// The requests the sim served with this method whose path ends with `suffix`.
pub fn requests(sim: &Sim, method: &str, suffix: &str) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .collect()
}

/// A running bot; stopped (and drained) by [`Running::stop`].
pub struct Running {
    pub status: GatewayStatus,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), discord::BotError>>,
}

impl Running {
    pub async fn stop(self) -> Result<(), discord::BotError> {
        self.shutdown.cancel();
        self.task.await.expect("the bot task")
    }
}

/// Runs a bot with `router` and waits until every shard is ready.
pub async fn start_bot(config: BotConfig, router: Router) -> Running {
    let running = spawn_bot(config, router);
    let status = running.status.clone();
    eventually("every shard is ready", || {
        let ready = status.is_ready();
        async move { ready.then_some(()) }
    })
    .await;
    running
}

/// Runs a bot with `router` without waiting for anything.
pub fn spawn_bot(config: BotConfig, router: Router) -> Running {
    let bot = Bot::new(config, router, Vec::new());
    let status = bot.status();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(bot.run(shutdown.clone()));
    Running {
        status,
        shutdown,
        task,
    }
}

/// Waits until the sim knows the commands named.
pub async fn registered(sim: &Sim, names: &[&str]) {
    eventually("the commands are registered", || {
        let known = sim.registered_commands();
        let all = names.iter().all(|n| known.iter().any(|c| c.name == *n));
        async move { all.then_some(()) }
    })
    .await;
}

#[allow(unused_imports)]
pub use testkit::Logs;

/// What a report of `error` with its chain says: the message, then each source's,
/// joined with `: `, as anyhow's `{:#}` (the log's form) prints it.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(&format!(": {cause}"));
        next = cause.source();
    }
    text
}

/// No part of `report` (split at `: `) is said twice.
pub fn says_each_part_once(report: &str) {
    let parts: Vec<&str> = report.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..]
                .iter()
                .any(|later| later.contains(part) || part.contains(later)),
            "`{part}` is said again in: {report}"
        );
    }
}
