//! `tavern check` over the drinking game's data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use drinking::{Press, custom_id};
use redis::AsyncCommands;

#[tokio::test]
async fn clean_data_has_no_findings_and_each_inconsistency_is_named() {
    let env = env().await;
    // A completed game and a running one.
    let done = env.started_game(1, &[]).await;
    env.press(1, &custom_id(Press::Begin, &done))
        .await
        .expect("begin");
    env.press(1, &custom_id(Press::Roll, &done))
        .await
        .expect("roll");
    let running = env.started_game(2, &[3]).await;
    let check = env.game.check();
    assert_eq!(check.name(), "drinking");
    let findings = check.run().await.expect("check");
    assert!(findings.is_empty(), "{findings:?}");

    let mut conn = env.redis.conn();
    let _: () = conn.sadd("active_games", "ghost1").await.expect("sadd");
    let _: () = conn.set("channel:55", "ghost2").await.expect("set");
    let _: () = conn.set("channel:56", done.as_str()).await.expect("set");
    let _: () = conn.sadd("player_games:7", "ghost3").await.expect("sadd");
    let _: () = conn
        .hincr("player_drinks:2", "received", 5)
        .await
        .expect("hincr");

    let mut findings: Vec<(String, String)> = check
        .run()
        .await
        .expect("check")
        .into_iter()
        .map(|f| (f.subject, f.problem))
        .collect();
    findings.sort();
    let subjects: Vec<&str> = findings.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        subjects,
        vec![
            "active_games",
            "channel:55",
            "channel:56",
            "player_drinks:2",
            "player_games:7"
        ],
        "{findings:#?}"
    );
    assert!(findings[0].1.contains("ghost1") && findings[0].1.contains("does not exist"));
    assert!(findings[2].1.contains("completed"));
    assert!(
        findings[3].1.contains("received=5") && findings[3].1.contains("received=0"),
        "{}",
        findings[3].1
    );
    // The running game is untouched by all this.
    assert!(!env.load(&running).await.is_completed());
}
