//! Tavern against discord-sim as an operator and an attacker would try it: what its
//! messages ping, what `/readyz` says while a shard is down or `/gateway/bot` fails,
//! and how `tavern serve` ends when the gateway refuses the bot for good.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{config, wait_ready};
use discord_sim::{Fault, Pings, RouteMatch, Sim, SimConfig};
use serde_json::{Value, json};
use store::harness::{TestPostgres, TestRedis, free_port};
use testkit::{TestBot, WAIT, World, eventually};

/// The world with the bot serving the rolls feature (its sync folder in `_dir`).
async fn rolls_world() -> (World, TestBot, tempfile::TempDir) {
    let world = World::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let feature = rolls::feature(&world.ctx, rolls::RollsConfig::new(dir.path()));
    let bot = TestBot::spawn(&world, vec![feature]).await;
    (world, bot, dir)
}

#[tokio::test]
async fn a_roll_with_everyone_in_it_pings_nobody() {
    let (world, bot, _dir) = rolls_world().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let reply = sim
        .run_command(
            demo.alice,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "1d20 @everyone"}]),
        )
        .expect("run")
        .final_response(WAIT)
        .await
        .expect("answered");
    let content = reply.content.clone().unwrap_or_default();
    assert!(
        content.contains("@everyone"),
        "the comment is echoed: {content}"
    );
    assert_eq!(reply.pings, Pings::default(), "{reply:?}");
    assert_eq!(reply.allowed_mentions, Some(json!({"parse": []})));
    let message = sim
        .message(demo.dice, reply.message_id.expect("a message"))
        .expect("stored");
    assert!(message.mention_everyone && message.pings.is_empty());
    bot.stop().await;
}

#[tokio::test]
async fn the_initiative_turn_pings_exactly_whose_turn_it_is() {
    let (world, bot, _dir) = rolls_world().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let run = |user, options: Value| async move {
        sim.run_command(user, demo.dice, "init", options)
            .expect("run")
            .final_response(WAIT)
            .await
            .expect("answered")
    };
    run(
        demo.alice,
        json!([{"name": "join", "options": [{"name": "roll", "value": "15"}]}]),
    )
    .await;
    run(
        demo.bob,
        json!([{"name": "join", "options": [{"name": "roll", "value": "10"}]}]),
    )
    .await;
    let next = run(demo.carol, json!([{"name": "next"}])).await;
    let content = next.content.clone().unwrap_or_default();
    assert!(content.contains(&format!("<@{}>", demo.bob)), "{content}");
    assert_eq!(
        next.pings,
        Pings {
            users: vec![demo.bob],
            roles: Vec::new(),
            everyone: false
        },
        "{next:?}"
    );
    assert_eq!(
        next.allowed_mentions,
        Some(json!({"parse": [], "users": [demo.bob.to_string()]}))
    );

    let tracker = sim
        .messages(demo.dice)
        .into_iter()
        .find(|m| m.content.contains("Initiative"))
        .expect("the tracker message");
    assert!(
        tracker.mentions.contains(&demo.alice) && tracker.mentions.contains(&demo.bob),
        "{tracker:?}"
    );
    assert!(
        tracker.pings.is_empty(),
        "the tracker pings nobody: {tracker:?}"
    );
    bot.stop().await;
}

/// Tavern with a bot token against `sim` (not sandbox mode), with its own stores.
struct Served {
    running: tavern::Running,
    http: reqwest::Client,
    redis: TestRedis,
    _postgres: TestPostgres,
}

impl Served {
    async fn start(sim: &Sim, extra: &[(&str, String)]) -> Served {
        discord::install_crypto_provider();
        let redis = TestRedis::start().await;
        let postgres = TestPostgres::start().await;
        let mut pairs = vec![
            ("TAVERN_REDIS_URL", redis.url()),
            ("TAVERN_DATABASE_URL", postgres.url()),
            ("TAVERN_DISCORD_TOKEN", sim.token().to_owned()),
            ("TAVERN_DISCORD_API", sim.addr().to_string()),
            ("TAVERN_DISCORD_GATEWAY", sim.gateway_url()),
        ];
        pairs.extend(extra.iter().cloned());
        let running = tavern::start(config(&pairs)).await.expect("starts");
        Served {
            running,
            http: reqwest::Client::new(),
            redis,
            _postgres: postgres,
        }
    }

    fn readyz(&self) -> String {
        format!("http://{}/readyz", self.running.http_addr)
    }

    /// `/readyz`'s status and its `discord` component.
    async fn discord(&self) -> Option<(u16, Value)> {
        let response = self.http.get(self.readyz()).send().await.ok()?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.ok()?;
        let component = body["components"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "discord")?
            .clone();
        Some((status, component))
    }
}

#[tokio::test]
async fn readyz_is_503_as_soon_as_one_shard_is_down() {
    let sim = Sim::start(SimConfig::default()).expect("sim");
    let demo = sim.seed_demo();
    let served = Served::start(&sim, &[("TAVERN_SHARDS", "2".to_owned())]).await;
    wait_ready(&served.http, &served.readyz(), Duration::from_secs(30)).await;

    // `/ping` calls the REST API, which takes its turn in the limit shared in Redis.
    let redis = served.redis.connect().await;
    let pong = sim
        .run_command(demo.alice, demo.general, "ping", json!([]))
        .expect("run")
        .response(WAIT)
        .await
        .expect("answered");
    assert!(pong.content.unwrap_or_default().contains("Pong"));
    let windows = redis
        .scan(&feature::discord_limit::window_key(0).replace(":0", ":*"))
        .await
        .expect("scan");
    assert!(!windows.is_empty(), "the shared limit counted the request");

    sim.set_gateway_accepting(false);
    assert_eq!(sim.close_gateway_connections(Some(1), 4000), 1);
    let (status, discord) = eventually("/readyz reports the shard down", || async {
        served.discord().await.filter(|(status, _)| *status == 503)
    })
    .await;
    assert_eq!(status, 503);
    assert_eq!(discord["ready"], json!(false));
    let detail = discord["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("shard 1 of 2"), "{discord}");

    sim.set_gateway_accepting(true);
    wait_ready(&served.http, &served.readyz(), Duration::from_secs(30)).await;
    served.running.shutdown();
    served.running.wait().await.expect("clean stop");
}

#[tokio::test]
async fn a_failing_gateway_bot_is_retried_and_shown_on_readyz_meanwhile() {
    let sim = Sim::start(SimConfig {
        shard_count: 2,
        ..SimConfig::default()
    })
    .expect("sim");
    sim.seed_demo();
    sim.inject_fault(
        RouteMatch::new("GET", "/gateway/bot"),
        Fault::Status(502),
        4,
    );
    let served = Served::start(&sim, &[]).await;
    let (_, discord) = eventually("/readyz says why the shards wait", || async {
        served.discord().await.filter(|(_, d)| {
            d["detail"]
                .as_str()
                .is_some_and(|d| d.contains("GET /gateway/bot"))
        })
    })
    .await;
    assert_eq!(discord["ready"], json!(false));
    wait_ready(&served.http, &served.readyz(), Duration::from_secs(30)).await;
    assert_eq!(sim.gateway_session_count(), 2, "Discord's recommendation");
    served.running.shutdown();
    served.running.wait().await.expect("clean stop");
}

/// `tavern serve` as its own process against `sim` and these stores; stdout and
/// stderr are kept for the test.
fn serve(
    sim: &Sim,
    token: &str,
    redis: &TestRedis,
    postgres: &TestPostgres,
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("serve")
        .env("TAVERN_REDIS_URL", redis.url())
        .env("TAVERN_DATABASE_URL", postgres.url())
        .env("TAVERN_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("TAVERN_DISCORD_TOKEN", token)
        .env("TAVERN_DISCORD_API", sim.addr().to_string())
        .env("TAVERN_DISCORD_GATEWAY", sim.gateway_url())
        .env("TAVERN_SHARDS", "1")
        .env("TAVERN_LOG", "warn")
        .env("TAVERN_DATA_DIR", common::scratch_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tavern serve")
}

#[tokio::test]
async fn a_fatal_close_code_ends_tavern_serve_with_exit_code_1_and_one_clear_line() {
    let sim = Sim::start(SimConfig::default()).expect("sim");
    sim.seed_demo();
    let redis = TestRedis::start().await;
    let postgres = TestPostgres::start().await;

    // A token the gateway refuses: 4004 at IDENTIFY.
    let wrong = serve(&sim, "not-the-bot-token", &redis, &postgres);
    let output = tokio::time::timeout(Duration::from_secs(60), wrong.wait_with_output())
        .await
        .expect("exits by itself")
        .expect("output");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("4004")).collect();
    assert_eq!(lines.len(), 1, "one line names it:\n{stderr}");
    assert!(lines[0].contains("authentication failed"), "{}", lines[0]);
    assert!(lines[0].contains("TAVERN_DISCORD_TOKEN"), "{}", lines[0]);
    assert!(
        !stderr.contains("not-the-bot-token"),
        "the token stays secret"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().filter(|l| l.contains("4004")).count() <= 1,
        "{stdout}"
    );

    // Intents the application may not use: 4014, whenever it comes.
    let child = serve(&sim, sim.token(), &redis, &postgres);
    eventually("the bot is connected", || {
        let connected = sim.gateway_session_count() >= 1 && sim.gateway_connection_count() >= 1;
        async move { connected.then_some(()) }
    })
    .await;
    sim.close_gateway_connections(None, 4014);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("exits by itself")
        .expect("output");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("4014")).collect();
    assert_eq!(lines.len(), 1, "one line names it:\n{stderr}");
    assert!(lines[0].contains("disallowed intents"), "{}", lines[0]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().filter(|l| l.contains("4014")).count() <= 1,
        "{stdout}"
    );
}
