//! The gateway protocol, driven by a raw WebSocket client: HELLO, IDENTIFY, READY,
//! heartbeats, RESUME with replay, sharding, intents, close codes, dropped
//! connections and refused reconnects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ALL_INTENTS, RawGateway};
use discord_sim::{ChannelKind, SimConfig, intents};
use serde_json::json;

#[tokio::test]
async fn hello_identify_ready_guild_create_and_heartbeat() {
    let sim = common::start_with(SimConfig {
        heartbeat_interval: Duration::from_millis(1234),
        ..SimConfig::default()
    });
    let demo = sim.seed_demo();
    let mut gateway = RawGateway::connect(&sim).await;

    let hello = gateway.next_frame().await;
    assert_eq!(hello["op"], 10);
    assert_eq!(hello["d"]["heartbeat_interval"], 1234);

    gateway
        .send(
            json!({"op": 2, "d": {"token": format!("Bot {}", sim.token()), "intents": ALL_INTENTS,
            "properties": {"os": "linux", "browser": "t", "device": "t"}}}),
        )
        .await;
    let ready = gateway.next_frame().await;
    assert_eq!(ready["op"], 0);
    assert_eq!(ready["t"], "READY");
    assert_eq!(ready["s"], 1);
    let d = &ready["d"];
    assert_eq!(d["v"], 10);
    assert_eq!(d["resume_gateway_url"], sim.gateway_url());
    assert_eq!(d["shard"], json!([0, 1]));
    assert_eq!(d["application"]["id"], sim.application_id().to_string());
    assert_eq!(d["user"]["id"], sim.bot_user_id().to_string());
    assert_eq!(d["user"]["bot"], true);
    assert_eq!(
        d["guilds"],
        json!([{"id": demo.guild, "unavailable": true}])
    );
    assert!(d["session_id"].as_str().is_some_and(|s| !s.is_empty()));

    let guild = gateway.next_frame().await;
    assert_eq!(guild["t"], "GUILD_CREATE");
    assert_eq!(guild["s"], 2);
    assert_eq!(guild["d"]["name"], "Tavern Demo");
    assert_eq!(guild["d"]["channels"].as_array().map(Vec::len), Some(6));
    // The bot and the four demo users.
    assert_eq!(guild["d"]["members"].as_array().map(Vec::len), Some(5));

    gateway.send(json!({"op": 1, "d": 2})).await;
    assert_eq!(gateway.next_frame().await["op"], 11);
    assert_eq!(sim.gateway_session_count(), 1);
}

#[tokio::test]
async fn resume_replays_what_was_missed_then_resumed() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let mut gateway = RawGateway::connect(&sim).await;
    let ready = gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;
    let session = ready["d"]["session_id"].as_str().unwrap().to_owned();
    let last = gateway.dispatch("GUILD_CREATE").await["s"]
        .as_u64()
        .unwrap();

    // The sim drops the socket; events keep being numbered in the session.
    assert_eq!(sim.drop_gateway_connections(), 1);
    assert!(gateway.next().await.is_none(), "no close frame, just gone");
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        sent.push(
            sim.post_user_message(demo.general, demo.alice, text, Vec::new())
                .unwrap(),
        );
    }

    let mut again = RawGateway::connect(&sim).await;
    assert_eq!(again.next_frame().await["op"], 10);
    again
        .send(json!({"op": 6, "d": {"token": sim.token(), "session_id": session, "seq": last}}))
        .await;
    for (i, id) in sent.iter().enumerate() {
        let frame = again.next_frame().await;
        assert_eq!(frame["t"], "MESSAGE_CREATE");
        assert_eq!(frame["s"], last + 1 + i as u64);
        assert_eq!(frame["d"]["id"], id.to_string());
    }
    let resumed = again.next_frame().await;
    assert_eq!(resumed["t"], "RESUMED");
    assert_eq!(resumed["s"], last + 4);

    // Live dispatches continue on the resumed connection.
    sim.post_user_message(demo.general, demo.bob, "live", Vec::new())
        .unwrap();
    let live = again.dispatch("MESSAGE_CREATE").await;
    assert_eq!(live["s"], last + 5);
    assert_eq!(live["d"]["content"], "live");
    assert_eq!(live["d"]["guild_id"], demo.guild.to_string());
    assert!(live["d"]["member"].is_object());
}

#[tokio::test]
async fn resume_from_an_older_seq_replays_events_already_seen() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let mut gateway = RawGateway::connect(&sim).await;
    let ready = gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;
    let session = ready["d"]["session_id"].as_str().unwrap().to_owned();
    gateway.dispatch("GUILD_CREATE").await;
    sim.post_user_message(demo.general, demo.alice, "seen", Vec::new())
        .unwrap();
    let seen = gateway.dispatch("MESSAGE_CREATE").await;
    gateway.abandon();

    let mut again = RawGateway::connect(&sim).await;
    again.next_frame().await;
    let from = seen["s"].as_u64().unwrap() - 1;
    again
        .send(json!({"op": 6, "d": {"token": sim.token(), "session_id": session, "seq": from}}))
        .await;
    assert_eq!(again.next_frame().await, seen);
    assert_eq!(again.next_frame().await["t"], "RESUMED");
}

#[tokio::test]
async fn unknown_session_gets_invalid_session_and_bad_input_gets_close_codes() {
    let sim = common::start();

    let mut gateway = RawGateway::connect(&sim).await;
    gateway.next_frame().await;
    gateway
        .send(json!({"op": 6, "d": {"token": sim.token(), "session_id": "gone", "seq": 3}}))
        .await;
    let invalid = gateway.next_frame().await;
    assert_eq!(invalid["op"], 9);
    assert_eq!(invalid["d"], false);

    let cases = [
        (
            json!({"op": 2, "d": {"token": "wrong", "intents": 1, "properties": {}}}),
            4004,
        ),
        (
            json!({"op": 2, "d": {"token": sim.token(), "intents": 1, "shard": [2, 2], "properties": {}}}),
            4010,
        ),
        (
            json!({"op": 2, "d": {"token": sim.token(), "properties": {}}}),
            4013,
        ),
        (json!({"op": 3, "d": {"status": "online"}}), 4003),
        (json!({"op": 42, "d": null}), 4001),
    ];
    for (payload, code) in cases {
        let mut gateway = RawGateway::connect(&sim).await;
        gateway.next_frame().await;
        gateway.send(payload.clone()).await;
        assert_eq!(
            gateway.next_frame().await,
            json!({"close": code}),
            "for {payload}"
        );
    }

    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, 1, [0, 1]).await;
    gateway
        .send(json!({"op": 2, "d": {"token": sim.token(), "intents": 1, "properties": {}}}))
        .await;
    assert_eq!(gateway.next_frame().await, json!({"close": 4005}));
}

#[tokio::test]
async fn a_client_that_closes_is_answered_with_a_close_frame() {
    // As Discord does: the close handshake completes, so a stopping shard knows its
    // connection is done instead of finding it dropped (and connecting again).
    let sim = common::start();
    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, 1, [0, 1]).await;
    gateway.close(1000).await;
    let mut answer = None;
    while let Some(frame) = gateway.next().await {
        if frame.get("close").is_some() {
            answer = Some(frame);
            break;
        }
    }
    assert_eq!(answer, Some(json!({"close": 1000})));
}

#[tokio::test]
async fn events_go_to_the_shard_of_their_guild() {
    let sim = common::start_with(SimConfig {
        shard_count: 2,
        ..SimConfig::default()
    });
    // Guild ids minted in different milliseconds land on different shards sooner
    // or later; make sure both shards own at least one guild.
    let mut guilds = Vec::new();
    while !(guilds
        .iter()
        .any(|g: &discord_sim::Snowflake| g.shard(2) == 0)
        && guilds
            .iter()
            .any(|g: &discord_sim::Snowflake| g.shard(2) == 1))
    {
        guilds.push(sim.create_guild("g"));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut shard0 = RawGateway::connect(&sim).await;
    let mut shard1 = RawGateway::connect(&sim).await;
    let ready0 = shard0.identify(&sim, ALL_INTENTS, [0, 2]).await;
    let ready1 = shard1.identify(&sim, ALL_INTENTS, [1, 2]).await;
    let ids = |ready: &serde_json::Value| -> Vec<String> {
        ready["d"]["guilds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for g in &guilds {
        let on = if g.shard(2) == 0 {
            ids(&ready0)
        } else {
            ids(&ready1)
        };
        let off = if g.shard(2) == 0 {
            ids(&ready1)
        } else {
            ids(&ready0)
        };
        assert!(on.contains(&g.to_string()) && !off.contains(&g.to_string()));
    }

    let target = *guilds.iter().find(|g| g.shard(2) == 1).unwrap();
    let channel = sim
        .create_channel(target, "only-shard-1", ChannelKind::Text)
        .unwrap();
    let created = shard1.dispatch("CHANNEL_CREATE").await;
    assert_eq!(created["d"]["id"], channel.to_string());
    while let Some(frame) = shard0.try_next(Duration::from_millis(200)).await {
        assert_ne!(
            frame["t"], "CHANNEL_CREATE",
            "shard 0 must not see shard 1's guild"
        );
    }

    // DMs belong to shard 0.
    let user = sim.create_user("dm-user");
    let dm = sim.dm_channel(user).unwrap();
    sim.post_user_message(dm, user, "hi", Vec::new()).unwrap();
    let message = shard0.dispatch("MESSAGE_CREATE").await;
    assert_eq!(message["d"]["channel_id"], dm.to_string());
    assert!(shard1.try_next(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn intents_filter_dispatches_but_interactions_always_arrive() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = common::Rest::new(&sim);
    common::register_commands(&rest, &sim, demo.guild).await;

    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, intents::GUILDS, [0, 1]).await;
    gateway.dispatch("GUILD_CREATE").await;
    sim.post_user_message(demo.general, demo.alice, "not for you", Vec::new())
        .unwrap();
    let interaction = sim
        .run_command(
            demo.alice,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "d6"}]),
        )
        .unwrap();
    let next = gateway.next_frame().await;
    assert_eq!(
        next["t"], "INTERACTION_CREATE",
        "MESSAGE_CREATE needs GUILD_MESSAGES"
    );
    assert_eq!(next["d"]["id"], interaction.id().to_string());
    assert_eq!(next["d"]["token"], interaction.token());
}

#[tokio::test]
async fn refused_reconnects_hold_a_drop_open() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let mut gateway = RawGateway::connect(&sim).await;
    let ready = gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;
    let session = ready["d"]["session_id"].as_str().unwrap().to_owned();
    let last = gateway.dispatch("GUILD_CREATE").await["s"]
        .as_u64()
        .unwrap();

    sim.set_gateway_accepting(false);
    sim.drop_gateway_connections();
    assert!(gateway.next().await.is_none());
    let url = format!("{}/?v=10&encoding=json", sim.gateway_url());
    let refused = tokio_tungstenite::connect_async(url).await;
    assert!(refused.is_err(), "upgrade must fail while not accepting");
    let message = sim
        .post_user_message(demo.general, demo.carol, "during the outage", Vec::new())
        .unwrap();

    sim.set_gateway_accepting(true);
    let mut again = RawGateway::connect(&sim).await;
    again.next_frame().await;
    again
        .send(json!({"op": 6, "d": {"token": sim.token(), "session_id": session, "seq": last}}))
        .await;
    let replayed = again.next_frame().await;
    assert_eq!(replayed["d"]["id"], message.to_string());
    assert_eq!(again.next_frame().await["t"], "RESUMED");
}

#[tokio::test]
async fn request_guild_members_answers_with_a_chunk() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;
    gateway
        .send(json!({"op": 8, "d": {"guild_id": demo.guild, "user_ids": [demo.alice, 1], "nonce": "x"}}))
        .await;
    let chunk = gateway.dispatch("GUILD_MEMBERS_CHUNK").await;
    assert_eq!(chunk["d"]["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(chunk["d"]["not_found"], json!(["1"]));
    assert_eq!(chunk["d"]["nonce"], "x");
}

#[tokio::test]
async fn non_websocket_requests_off_the_api_get_404() {
    let sim = common::start();
    let response = common::get(format!("{}/?v=10&encoding=json", sim.http_url()))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, json!({"message": "404: Not Found", "code": 0}));
}
