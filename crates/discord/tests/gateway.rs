//! The gateway runner against discord-sim: readiness per shard, fatal close codes,
//! `/gateway/bot` at start-up, and processes that split the shards between them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{bot_config, config, requests, sim, sim_with, spawn_bot, start_bot};
use discord::{
    BotError, CommandSpec, Discord, Invocation, Reply, Response, Router, ShardHealth, ShardRange,
};
use discord_sim::{ChannelKind, Fault, RouteMatch, SimConfig, Snowflake};
use serde_json::json;
use testkit::eventually;

fn router(sim: &discord_sim::Sim, answer: &'static str) -> Router {
    let mut router = Router::new(Discord::new(&config(sim)));
    router
        .command(
            CommandSpec::new("where", "Which process answers"),
            Arc::new(move |inv: Invocation| async move {
                let guild = inv.guild_id.map(|g| g.get()).unwrap_or_default();
                Ok(Response::Message(Reply::text(format!(
                    "{answer} in {guild}"
                ))))
            }),
        )
        .unwrap();
    router
}

#[tokio::test]
async fn readiness_is_false_as_soon_as_one_shard_is_down() {
    let (sim, _demo) = sim();
    let mut config = bot_config(&sim, config(&sim));
    config.shards = Some(ShardRange::all(2).unwrap());
    let bot = start_bot(config, router(&sim, "bot")).await;
    assert_eq!(
        bot.status.shards(),
        vec![(0, ShardHealth::Ready), (1, ShardHealth::Ready)]
    );

    sim.set_gateway_accepting(false);
    assert_eq!(sim.close_gateway_connections(Some(1), 4000), 1);
    eventually("readiness notices that shard 1 is down", || {
        let ready = bot.status.is_ready();
        async move { (!ready).then_some(()) }
    })
    .await;
    let detail = bot.status.detail().expect("says why");
    assert!(detail.contains("shard 1 of 2"), "{detail}");
    assert!(detail.contains("4000"), "{detail}");
    assert_eq!(bot.status.shards()[0], (0, ShardHealth::Ready));

    sim.set_gateway_accepting(true);
    eventually("shard 1 is back", || {
        let ready = bot.status.is_ready();
        async move { ready.then_some(()) }
    })
    .await;
    assert_eq!(bot.status.detail(), None);
    bot.stop().await.unwrap();
}

#[tokio::test]
async fn a_stopping_bot_closes_its_shard_once_without_connecting_again() {
    let (sim, _demo) = sim();
    let bot = start_bot(bot_config(&sim, config(&sim)), router(&sim, "bot")).await;
    assert_eq!(sim.gateway_connections_opened(), 1);
    // The close is answered with a close frame (as Discord does): the shard is done,
    // rather than finding its connection dropped and connecting again until the
    // close's grace runs out.
    bot.stop().await.unwrap();
    assert_eq!(sim.gateway_connections_opened(), 1);
}

#[tokio::test]
async fn readiness_waits_until_the_slash_commands_are_registered_and_a_failure_is_retried() {
    let (sim, _demo) = sim();
    // Refused twice: the bot is connected but cannot be used until the commands exist.
    sim.inject_fault(
        RouteMatch::new("PUT", "/applications/"),
        Fault::Status(400),
        2,
    );
    let bot = spawn_bot(bot_config(&sim, config(&sim)), router(&sim, "bot"));
    let status = bot.status.clone();
    eventually(
        "the shard is connected and readiness says the commands failed",
        || {
            let detail = status.detail().unwrap_or_default();
            let connected = status
                .shards()
                .iter()
                .all(|(_, h)| *h == ShardHealth::Ready);
            let ready = status.is_ready();
            async move {
                (connected && !ready && detail.contains("registering slash commands failed"))
                    .then_some(())
            }
        },
    )
    .await;
    eventually("ready once a retry registers them", || {
        let ready = status.is_ready();
        async move { ready.then_some(()) }
    })
    .await;
    assert!(
        sim.registered_commands().iter().any(|c| c.name == "where"),
        "ready means the commands are known"
    );
    let puts: Vec<u16> = requests(&sim, "PUT", "/commands")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(puts, vec![400, 400, 200]);
    assert_eq!(status.detail(), None);
    bot.stop().await.unwrap();
}

#[tokio::test]
async fn a_fatal_close_code_stops_the_bot_with_the_cause_and_what_to_do() {
    for (code, cause, fix) in [
        (4004, "authentication failed", "TAVERN_DISCORD_TOKEN"),
        (4014, "disallowed intents", "Privileged Gateway Intents"),
        (4011, "sharding required", "TAVERN_SHARD_TOTAL"),
    ] {
        let (sim, _demo) = sim();
        let mut config = bot_config(&sim, config(&sim));
        config.shards = Some(ShardRange::all(2).unwrap());
        let bot = start_bot(config, router(&sim, "bot")).await;
        assert_eq!(sim.close_gateway_connections(Some(1), code), 1);
        eventually("the bot stops", || {
            let done = bot.task.is_finished();
            async move { done.then_some(()) }
        })
        .await;
        assert!(!bot.status.is_ready());
        let error = bot
            .task
            .await
            .unwrap()
            .expect_err("a fatal close is an error");
        assert!(
            matches!(error, BotError::Fatal { shard: 1, code: c, .. } if c == code),
            "{error:?}"
        );
        let line = error.to_string();
        assert!(line.contains(&code.to_string()), "{line}");
        assert!(line.contains(cause), "{line}");
        assert!(line.contains(fix), "{line}");
        assert_eq!(
            sim.gateway_connection_count(),
            0,
            "the other shard was closed too"
        );
    }
}

#[tokio::test]
async fn a_wrong_token_is_a_fatal_error_not_a_silent_stop() {
    let (sim, _demo) = sim();
    let mut rest = config(&sim);
    rest.token = "not-the-token".to_owned();
    let mut config = bot_config(&sim, rest);
    config.rest.token = "not-the-token".to_owned();
    let bot = spawn_bot(config, router(&sim, "bot"));
    let error = tokio::time::timeout(Duration::from_secs(10), bot.task)
        .await
        .expect("stops")
        .unwrap()
        .expect_err("refused");
    assert!(
        matches!(error, BotError::Fatal { code: 4004, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_failing_gateway_bot_is_retried_with_backoff_and_shown_meanwhile() {
    let (sim, _demo) = sim_with(SimConfig {
        shard_count: 2,
        ..SimConfig::default()
    });
    sim.inject_fault(
        RouteMatch::new("GET", "/gateway/bot"),
        Fault::Status(502),
        3,
    );
    let mut config = bot_config(&sim, config(&sim));
    config.shards = None;
    let bot = spawn_bot(config, router(&sim, "bot"));
    let status = bot.status.clone();
    eventually("readiness shows why it waits", || {
        let detail = status.detail().unwrap_or_default();
        async move { detail.contains("GET /gateway/bot").then_some(detail) }
    })
    .await;
    eventually("the shards Discord recommended are ready", || {
        let ready = status.is_ready();
        async move { ready.then_some(()) }
    })
    .await;
    assert_eq!(status.shards().len(), 2);
    let asked: Vec<u16> = requests(&sim, "GET", "/gateway/bot")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(asked, vec![502, 502, 502, 200]);
    let at: Vec<_> = requests(&sim, "GET", "/gateway/bot")
        .iter()
        .map(|r| r.at)
        .collect();
    assert!(
        at[3].duration_since(at[2]) > at[1].duration_since(at[0]),
        "the backoff grows"
    );
    bot.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_token_at_gateway_bot_is_fatal() {
    let (sim, _demo) = sim();
    sim.inject_fault(
        RouteMatch::new("GET", "/gateway/bot"),
        Fault::Status(401),
        1,
    );
    let mut config = bot_config(&sim, config(&sim));
    config.shards = None;
    let bot = spawn_bot(config, router(&sim, "bot"));
    let error = tokio::time::timeout(Duration::from_secs(10), bot.task)
        .await
        .expect("stops")
        .unwrap()
        .expect_err("refused");
    assert!(
        error.to_string().contains("TAVERN_DISCORD_TOKEN"),
        "{error}"
    );
    assert_eq!(
        requests(&sim, "GET", "/gateway/bot").len(),
        1,
        "not retried"
    );
}

/// A guild (with a channel and a member) that falls on `shard` of `total`.
fn guild_on_shard(
    sim: &discord_sim::Sim,
    shard: u32,
    total: u32,
    member: Snowflake,
) -> (Snowflake, Snowflake) {
    let guild = loop {
        let guild = sim.create_guild("Split");
        if guild.shard(total) == shard {
            break guild;
        }
    };
    let channel = sim
        .create_channel(guild, "table", ChannelKind::Text)
        .unwrap();
    sim.add_member(guild, member).unwrap();
    (guild, channel)
}

#[tokio::test]
async fn two_processes_with_split_shards_each_get_only_their_guilds() {
    let (sim, demo) = sim();
    let (guild_0, channel_0) = guild_on_shard(&sim, 0, 2, demo.alice);
    let (guild_1, channel_1) = guild_on_shard(&sim, 1, 2, demo.alice);

    let mut first = bot_config(&sim, config(&sim));
    first.shards = Some(ShardRange::new(0, 0, 2).unwrap());
    let mut second = bot_config(&sim, config(&sim));
    second.shards = Some(ShardRange::new(1, 1, 2).unwrap());
    let a = start_bot(first, router(&sim, "A")).await;
    let b = start_bot(second, router(&sim, "B")).await;
    assert_eq!(a.status.shards(), vec![(0, ShardHealth::Ready)]);
    assert_eq!(b.status.shards(), vec![(1, ShardHealth::Ready)]);
    common::registered(&sim, &["where"]).await;

    for (channel, guild, process) in [(channel_0, guild_0, "A"), (channel_1, guild_1, "B")] {
        for _ in 0..3 {
            let reply = sim
                .run_command(demo.alice, channel, "where", json!([]))
                .unwrap()
                .response(Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(
                reply.content.as_deref(),
                Some(format!("{process} in {guild}").as_str())
            );
        }
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    assert_eq!(
        requests(&sim, "PUT", "/commands").len(),
        1,
        "only the process running shard 0 registers the commands"
    );
}
