//! Discord's rate limits on demand: exact per-bucket headers (route and major
//! parameter), 429s for clients that ignore them, the bot token's global limit, and
//! the count of 429s a bench reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Rest, register_commands, start_with};
use discord_sim::{Fault, RouteMatch, SeedMessage, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_client_that_follows_the_headers_never_meets_a_429() {
    let sim = start_with(SimConfig {
        rate_limit_per_window: 3,
        rate_limit_window: Duration::from_millis(250),
        ..SimConfig::default()
    });
    let demo = sim.seed_demo();
    sim.seed_history(
        demo.general,
        (0..40).map(|i| SeedMessage::new(demo.alice, format!("m{i}"))),
    )
    .unwrap();
    let rest = Rest::new(&sim);
    let path = format!("/channels/{}/messages?limit=5", demo.general);
    let mut remaining_seen = Vec::new();
    for _ in 0..10 {
        let response = rest.request(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit"), "3");
        let remaining: u32 = header(&response, "x-ratelimit-remaining").parse().unwrap();
        let reset_after: f64 = header(&response, "x-ratelimit-reset-after")
            .parse()
            .unwrap();
        let reset: f64 = header(&response, "x-ratelimit-reset").parse().unwrap();
        assert!(reset_after > 0.0 && reset_after <= 0.25, "{reset_after}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(reset > now - 1.0 && reset <= now + 1.0, "{reset} vs {now}");
        remaining_seen.push(remaining);
        if remaining == 0 {
            // What a well-behaved client does: wait as long as the bucket says.
            tokio::time::sleep(Duration::from_secs_f64(reset_after)).await;
        }
    }
    assert_eq!(remaining_seen[..3], [2, 1, 0]);
    assert_eq!(sim.rate_limited_count(), 0);
}

#[tokio::test]
async fn buckets_are_per_channel_and_going_past_them_answers_429() {
    let sim = start_with(SimConfig {
        rate_limit_per_window: 2,
        rate_limit_window: Duration::from_secs(60),
        ..SimConfig::default()
    });
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let general = format!("/channels/{}/messages", demo.general);
    for expected in ["1", "0"] {
        let response = rest.request(Method::GET, &general).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-remaining"), expected);
    }
    let refused = rest.request(Method::GET, &general).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-scope"), "user");
    assert!(refused.headers().get("x-ratelimit-global").is_none());
    let bucket = header(&refused, "x-ratelimit-bucket");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["global"], false);
    assert!(body["retry_after"].as_f64().unwrap() > 0.0);
    assert_eq!(sim.rate_limited_count(), 1);

    // The major parameter is the channel: another channel has its own bucket with
    // the same route hash.
    let dice = rest
        .request(Method::GET, &format!("/channels/{}/messages", demo.dice))
        .send()
        .await
        .unwrap();
    assert_eq!(dice.status(), 200);
    assert_eq!(header(&dice, "x-ratelimit-bucket"), bucket);
    assert_eq!(header(&dice, "x-ratelimit-remaining"), "1");

    // Injected 429s are not counted.
    sim.inject_fault(
        RouteMatch::new("GET", "/channels/"),
        Fault::RateLimited {
            retry_after_secs: 1.0,
            global: false,
        },
        1,
    );
    let (status, _) = rest.get(&format!("/channels/{}", demo.campaigns)).await;
    assert_eq!(status, 429);
    assert_eq!(sim.rate_limited_count(), 1);
}

#[tokio::test]
async fn the_global_limit_spares_interaction_callbacks() {
    let sim = start_with(SimConfig {
        global_rate_limit: Some(3),
        ..SimConfig::default()
    });
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    // Two bot requests here and one below fill the second.
    register_commands(&rest, &sim, demo.guild).await;
    let (status, _) = rest.get("/users/@me").await;
    assert_eq!(status, 200);
    let refused = rest
        .request(Method::GET, "/users/@me")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-global"), "true");
    assert_eq!(header(&refused, "x-ratelimit-scope"), "global");
    assert!(refused.headers().get("retry-after").is_some());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["global"], true);
    assert_eq!(sim.rate_limited_count(), 1);

    let roll = common::alice_rolls(&sim, &demo);
    let (status, body) = rest
        .post(
            &format!("/interactions/{}/{}/callback", roll.id(), roll.token()),
            json!({"type": 4, "data": {"content": "17"}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(sim.rate_limited_count(), 1);
}
