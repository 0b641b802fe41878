//! What the sim offers tests of a bot's hardening: who a message pings, the nonce
//! Discord enforces, Cloudflare's HTML 429, refusals, a timeout after the change was
//! made, and gateway close codes on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{RawGateway, Rest, start};
use discord_sim::{Fault, Pings, RouteMatch, intents};
use serde_json::json;

#[tokio::test]
async fn pings_follow_allowed_mentions_as_discord_reads_them() {
    let sim = start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let path = format!("/channels/{}/messages", demo.general);
    let content = format!("<@{}> <@{}> @everyone", demo.alice, demo.bob);
    let post = |allowed: Option<serde_json::Value>| {
        let mut body = json!({"content": content});
        if let Some(allowed) = allowed {
            body["allowed_mentions"] = allowed;
        }
        rest.post(&path, body)
    };

    let (status, absent) = post(None).await;
    assert_eq!(status, 200);
    let m = sim
        .message(
            demo.general,
            absent["id"].as_str().unwrap().parse::<u64>().unwrap(),
        )
        .unwrap();
    assert_eq!(
        m.pings,
        Pings {
            users: vec![demo.alice, demo.bob],
            roles: vec![],
            everyone: true
        },
        "without allowed_mentions every mention pings"
    );
    assert_eq!(m.allowed_mentions, None);

    let (_, quiet) = post(Some(json!({"parse": []}))).await;
    let m = sim
        .message(
            demo.general,
            quiet["id"].as_str().unwrap().parse::<u64>().unwrap(),
        )
        .unwrap();
    assert_eq!(m.pings, Pings::default());
    assert_eq!(m.mentions, vec![demo.alice, demo.bob], "still mentioned");

    let (_, one) = post(Some(json!({"parse": [], "users": [demo.alice]}))).await;
    let m = sim
        .message(
            demo.general,
            one["id"].as_str().unwrap().parse::<u64>().unwrap(),
        )
        .unwrap();
    assert_eq!(m.pings.users, vec![demo.alice]);
    assert!(!m.pings.everyone);

    let (_, users) = post(Some(json!({"parse": ["users"]}))).await;
    let m = sim
        .message(
            demo.general,
            users["id"].as_str().unwrap().parse::<u64>().unwrap(),
        )
        .unwrap();
    assert_eq!(m.pings.users, vec![demo.alice, demo.bob]);
    assert!(!m.pings.everyone);

    let (status, error) = post(Some(json!({"parse": ["users"], "users": [demo.alice]}))).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["errors"]["allowed_mentions"]["_errors"][0]["code"],
        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"
    );
    let (status, _) = post(Some(json!({"parse": ["channels"]}))).await;
    assert_eq!(status, 400);

    // An edit with new content is read again with the edit's allowed_mentions.
    let id = quiet["id"].as_str().unwrap();
    let (status, _) = rest
        .patch(
            &format!("{path}/{id}"),
            json!({"content": "@everyone again", "allowed_mentions": {"parse": ["everyone"]}}),
        )
        .await;
    assert_eq!(status, 200);
    let m = sim
        .message(demo.general, id.parse::<u64>().unwrap())
        .unwrap();
    assert!(m.pings.everyone);
}

#[tokio::test]
async fn an_enforced_nonce_returns_the_first_message_instead_of_a_second() {
    let sim = start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let path = format!("/channels/{}/messages", demo.general);
    let body = json!({"content": "once", "nonce": "abc123", "enforce_nonce": true});
    let (_, first) = rest.post(&path, body.clone()).await;
    let (status, again) = rest.post(&path, body).await;
    assert_eq!(status, 200);
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["nonce"], "abc123");
    let (_, unenforced) = rest
        .post(&path, json!({"content": "once", "nonce": "abc123"}))
        .await;
    assert_ne!(
        unenforced["id"], first["id"],
        "without enforce_nonce, a second one"
    );
    let count = sim
        .messages(demo.general)
        .iter()
        .filter(|m| m.content == "once")
        .count();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn faults_imitate_cloudflare_refusals_and_a_late_answer() {
    let sim = start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let path = format!("/channels/{}/messages", demo.general);

    sim.inject_fault(RouteMatch::new("POST", &path), Fault::HtmlRateLimited, 1);
    let response = rest
        .request(reqwest::Method::POST, &path)
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("x-ratelimit-bucket").is_none());
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = response.text().await.unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_err(),
        "{body}"
    );

    for (status, code) in [(401, 0), (403, 50001), (404, 0)] {
        sim.inject_fault(RouteMatch::new("POST", &path), Fault::Status(status), 1);
        let (got, error) = rest.post(&path, json!({"content": "x"})).await;
        assert_eq!(got, status);
        assert_eq!(error["code"], code);
    }

    sim.inject_fault(
        RouteMatch::new("POST", &path),
        Fault::TimeoutAfterCommit(Duration::from_secs(2)),
        1,
    );
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let timed_out = impatient
        .post(format!("{}{path}", sim.api_url()))
        .header("Authorization", format!("Bot {}", sim.token()))
        .json(&json!({"content": "made anyway"}))
        .send()
        .await
        .expect_err("no answer in time");
    assert!(timed_out.is_timeout());
    assert!(
        sim.messages(demo.general)
            .iter()
            .any(|m| m.content == "made anyway"),
        "the message was created all the same"
    );
}

#[tokio::test]
async fn gateway_connections_close_with_a_chosen_code_per_shard() {
    let sim = start();
    let _demo = sim.seed_demo();
    let mut zero = RawGateway::connect(&sim).await;
    zero.identify(&sim, intents::GUILDS, [0, 2]).await;
    let mut one = RawGateway::connect(&sim).await;
    one.identify(&sim, intents::GUILDS, [1, 2]).await;

    assert_eq!(sim.close_gateway_connections(Some(1), 4014), 1);
    loop {
        let frame = one.next_frame().await;
        if frame.get("close").is_some() {
            assert_eq!(frame["close"], 4014);
            break;
        }
    }
    assert_eq!(sim.gateway_connection_count(), 1, "shard 0 is untouched");
    assert_eq!(sim.close_gateway_connections(None, 4000), 1);
    loop {
        let frame = zero.next_frame().await;
        if frame.get("close").is_some() {
            assert_eq!(frame["close"], 4000);
            break;
        }
    }
}
