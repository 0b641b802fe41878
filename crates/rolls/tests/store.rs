//! The seed's keys with real Redis: exact names, types and timestamps written by the
//! controller and the operations.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::me;
use redis::AsyncCommands;
use rolls::domain::{ChannelId, UserId};
use rolls::ops::{CharacterOp, Controller, InitOp, RollOp, StatsOp};
use testkit::World;

/// The world (kept alive by the caller), its Redis and a controller over it.
async fn setup() -> (World, store::Redis, Controller) {
    let world = World::new().await;
    let redis = world.redis.clone();
    let controller = common::controller(&world);
    (world, redis, controller)
}

use store::harness::key_type;

#[tokio::test]
async fn a_roll_adds_the_user_and_counts_with_timestamps() {
    let (_world, redis, controller) = setup().await;
    let user = UserId::new(107624977066381312);
    let model = controller
        .run(
            me(user),
            &RollOp {
                expression: "2d6+1".into(),
            },
        )
        .await
        .expect("roll");
    assert!((3..=13).contains(&model.total.as_int().expect("int")));
    controller
        .run(
            me(user),
            &RollOp {
                expression: "1d4".into(),
            },
        )
        .await
        .expect("roll");

    let mut conn = redis.conn();
    let members: Vec<String> = conn.smembers("user_set").await.expect("smembers");
    assert_eq!(members, vec!["107624977066381312".to_owned()]);
    assert_eq!(key_type(&redis, "user_set").await, "set");
    let count: i64 = conn.get("c_roll").await.expect("get");
    assert_eq!(count, 2);
    let ts: String = conn.get("user_set:updated_time").await.expect("ts");
    assert!(store::updated_time::decode(&ts).is_some());
    let cts: String = conn.get("c_:updated_time").await.expect("ts");
    assert!(store::updated_time::decode(&cts).is_some());
    let per_counter: Option<String> = conn.get("c_roll:updated_time").await.expect("get");
    assert_eq!(per_counter, None, "the seed uses c_:updated_time only");
}

#[tokio::test]
async fn a_bad_expression_writes_nothing() {
    let (_world, redis, controller) = setup().await;
    let err = controller
        .run(
            me(UserId::new(1)),
            &RollOp {
                expression: "1d20 + x".into(),
            },
        )
        .await
        .expect_err("bad");
    assert!(err.is_user());
    assert!(
        err.user_message().contains("1d20 + x\n       ^"),
        "{}",
        err.user_message()
    );
    let mut conn = redis.conn();
    let exists: bool = conn.exists("user_set").await.expect("exists");
    assert!(!exists);
}

#[tokio::test]
async fn characters_live_in_the_user_document() {
    let (_world, redis, controller) = setup().await;
    let user = UserId::new(7);
    controller
        .run(
            me(user),
            &CharacterOp::Add {
                user,
                name: "Aragorn".into(),
                initiative_modifier: 2,
                initiative: None,
            },
        )
        .await
        .expect("add");
    let mut conn = redis.conn();
    let raw: String = conn.get("user_7").await.expect("get");
    let json: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(json["characters"]["Aragorn"]["initiative_modifier"], 2);
    assert_eq!(json["active_character"], "Aragorn");
    assert_eq!(key_type(&redis, "user_7").await, "string");
    let ts: String = conn.get("user_7:updated_time").await.expect("ts");
    assert!(store::updated_time::decode(&ts).is_some());
    let count: i64 = conn.get("c_character").await.expect("count");
    assert_eq!(count, 1);

    for i in 1..9 {
        controller
            .run(
                me(user),
                &CharacterOp::Add {
                    user,
                    name: format!("c{i}"),
                    initiative_modifier: 0,
                    initiative: None,
                },
            )
            .await
            .expect("add");
    }
    let err = controller
        .run(
            me(user),
            &CharacterOp::Add {
                user,
                name: "tenth".into(),
                initiative_modifier: 0,
                initiative: None,
            },
        )
        .await
        .expect_err("full");
    assert!(err.user_message().contains("9 characters"));
}

#[tokio::test]
async fn the_tracker_lives_in_init_channel() {
    let (_world, redis, controller) = setup().await;
    let (a, b) = (UserId::new(1), UserId::new(2));
    let channel = ChannelId::new(555);
    controller
        .run(
            me(a),
            &InitOp::Join {
                channel,
                user: a,
                character: None,
                roll: Some("12".into()),
                display_name: "alice".into(),
                once: false,
            },
        )
        .await
        .expect("join");
    let model = controller
        .run(
            me(b),
            &InitOp::Join {
                channel,
                user: b,
                character: None,
                roll: Some("1d1+18".into()),
                display_name: "Goblin".into(),
                once: false,
            },
        )
        .await
        .expect("join");
    assert_eq!(model.tracker.entries[0].name, "Goblin");
    assert_eq!(model.tracker.entries[0].initiative, 19);

    let mut conn = redis.conn();
    let raw: String = conn.get("init_555").await.expect("get");
    let json: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(json["entries"][1]["name"], "alice");
    assert_eq!(json["entries"][1]["user"], "1");
    assert_eq!(json["turn"], 0);
    assert_eq!(json["round"], 1);
    let ts: Option<String> = conn.get("init_555:updated_time").await.expect("ts");
    assert!(ts.is_some());
    let count: i64 = conn.get("c_init").await.expect("count");
    assert_eq!(count, 2);

    controller
        .run(
            me(a),
            &InitOp::Next {
                channel,
                expected: None,
            },
        )
        .await
        .expect("next");
    let model = controller
        .run(
            me(a),
            &InitOp::Next {
                channel,
                expected: None,
            },
        )
        .await
        .expect("next");
    assert_eq!((model.tracker.turn, model.tracker.round), (0, 2));
}

#[tokio::test]
async fn concurrent_joins_are_not_lost() {
    let (_world, _redis, controller) = setup().await;
    let channel = ChannelId::new(9);
    let mut tasks = Vec::new();
    for i in 1..=8u64 {
        let c = controller.clone();
        tasks.push(tokio::spawn(async move {
            c.run(
                me(UserId::new(i)),
                &InitOp::Join {
                    channel,
                    user: UserId::new(i),
                    character: None,
                    roll: Some(i.to_string()),
                    display_name: format!("p{i}"),
                    once: false,
                },
            )
            .await
            .expect("join");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let model = controller
        .run(me(UserId::new(1)), &InitOp::Get { channel })
        .await
        .expect("get");
    assert_eq!(model.tracker.entries.len(), 8);
    let stats = controller
        .run(me(UserId::new(1)), &StatsOp { all: false })
        .await
        .expect("stats");
    assert_eq!(stats.counters["init"], 9);
    assert_eq!(stats.users, 8);
}
