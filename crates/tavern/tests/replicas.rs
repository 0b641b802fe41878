//! Several processes, one community: two `tavern serve` processes split the gateway's
//! shards of one bot (on one discord-sim) and share one Redis through Sentinel; the
//! Redis master dies in the middle and both keep answering without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{stop_with_sigterm, wait_ready};
use discord_sim::{ChannelKind, Sim, SimConfig, Snowflake};
use serde_json::{Value, json};
use store::harness::{TestPostgres, TestSentinel, free_port};
use store::redis::AsyncCommands;

const SHARDS: u32 = 2;
/// Time for a promotion: a second of "down", an election, the replica's promotion.
const PROMOTION: Duration = Duration::from_secs(30);
/// Time for one command's answer (a deferral edits the original later).
const ANSWER: Duration = Duration::from_secs(15);

/// A guild of the sim on `shard` (of [`SHARDS`]), with a text channel and a member.
struct Table {
    shard: u32,
    channel: Snowflake,
    player: Snowflake,
}

fn table_on_shard(sim: &Sim, shard: u32) -> Table {
    // Guild ids carry their creation time, so which shard a new guild lands on varies:
    // make guilds until one lands on `shard`.
    let guild = (0..1000)
        .map(|i| sim.create_guild(&format!("Table {shard}.{i}")))
        .find(|g| g.shard(SHARDS) == shard)
        .expect("a guild on the shard");
    let channel = sim
        .create_channel(guild, "dice", ChannelKind::Text)
        .expect("channel");
    let player = sim.create_user(&format!("player-{shard}"));
    sim.add_member(guild, player).expect("member");
    Table {
        shard,
        channel,
        player,
    }
}

/// Runs `/name options` as the table's player and returns the final answer's text.
async fn run(sim: &Sim, table: &Table, name: &str, options: Value) -> String {
    let interaction = sim
        .run_command(table.player, table.channel, name, options)
        .expect("dispatch");
    let reply = interaction
        .final_response(ANSWER)
        .await
        .unwrap_or_else(|e| panic!("/{name} on shard {} got no answer: {e:?}", table.shard));
    reply.content.unwrap_or_default()
}

fn add_character(name: &str, modifier: i64) -> Value {
    json!([{"name": "add", "options": [
        {"name": "name", "value": name},
        {"name": "initiative-modifier", "value": modifier}
    ]}])
}

/// `/ping`, `/character add` and `/character list` on `table`; returns the list's text.
async fn play(sim: &Sim, table: &Table, character: &str) -> String {
    let pong = run(sim, table, "ping", json!([])).await;
    assert!(pong.contains("Pong"), "shard {}: {pong}", table.shard);
    let added = run(sim, table, "character", add_character(character, 2)).await;
    assert!(added.contains(character), "shard {}: {added}", table.shard);
    run(sim, table, "character", json!([{"name": "list"}])).await
}

#[tokio::test]
async fn two_processes_split_the_shards_and_keep_answering_through_a_sentinel_failover() {
    discord::install_crypto_provider();
    let mut redis = TestSentinel::start().await;
    let postgres = TestPostgres::start().await;
    let sim = Sim::start(SimConfig {
        shard_count: SHARDS,
        ..SimConfig::default()
    })
    .expect("discord-sim");
    let tables = [table_on_shard(&sim, 0), table_on_shard(&sim, 1)];
    let data = tempfile::tempdir().expect("shared data dir");

    // One process per shard, both on the Sentinel URL.
    let ports = [free_port(), free_port()];
    let mut processes: Vec<_> = (0..SHARDS as usize)
        .map(|shard| {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
                .arg("serve")
                .env("TAVERN_REDIS_URL", redis.url())
                .env("TAVERN_DATABASE_URL", postgres.url())
                .env("TAVERN_HTTP_ADDR", format!("127.0.0.1:{}", ports[shard]))
                .env("TAVERN_DISCORD_TOKEN", sim.token())
                .env("TAVERN_DISCORD_API", sim.addr().to_string())
                .env("TAVERN_DISCORD_GATEWAY", sim.gateway_url())
                .env("TAVERN_SHARDS", format!("{shard}-{shard}"))
                .env("TAVERN_SHARD_TOTAL", SHARDS.to_string())
                .env("TAVERN_DATA_DIR", data.path())
                .env("TAVERN_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn tavern serve")
        })
        .collect();
    let http = reqwest::Client::new();
    for port in ports {
        wait_ready(
            &http,
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(60),
        )
        .await;
    }
    assert_eq!(
        sim.gateway_session_count(),
        SHARDS as usize,
        "one gateway session per process, each on its own shard"
    );

    // Before the failover: both shards answer, and the characters land in Redis.
    for (table, name) in tables.iter().zip(["Vex", "Pike"]) {
        let list = play(&sim, table, name).await;
        assert!(list.contains(name), "shard {}: {list}", table.shard);
    }
    // The test's own handle (through Sentinel too) waits until the replica has every
    // write so far: a marker written after them, acknowledged by one replica.
    let observer = redis.connect().await;
    let _: () = observer.conn().set("test:marker", 1).await.expect("marker");
    let acked: i64 = store::redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut observer.conn())
        .await
        .expect("WAIT");
    assert_eq!(acked, 1, "the replica has the writes");

    // The master dies; Sentinel promotes the replica.
    let old = redis.kill_master().await;
    let new = redis.wait_for_new_master(old, PROMOTION).await;

    // After: both processes answer again, without a restart, and what was written
    // before the failover is still there.
    for (table, (before, after)) in tables.iter().zip([("Vex", "Vax"), ("Pike", "Grog")]) {
        let list = play(&sim, table, after).await;
        assert!(
            list.contains(before) && list.contains(after),
            "shard {}: {list}",
            table.shard
        );
    }
    // And it is on the new master.
    let client = store::redis::Client::open(format!("redis://127.0.0.1:{new}/")).unwrap();
    let mut direct = client.get_multiplexed_async_connection().await.unwrap();
    for (table, names) in tables.iter().zip([["Vex", "Vax"], ["Pike", "Grog"]]) {
        let key = rolls::schema::user_key(discord::model::UserId::new(u64::from(table.player)));
        let stored: String = direct.get(&key).await.expect("the player's document");
        for name in names {
            assert!(stored.contains(name), "{key}: {stored}");
        }
    }

    for process in &mut processes {
        stop_with_sigterm(process).await;
    }
}
