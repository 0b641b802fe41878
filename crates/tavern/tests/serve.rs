//! `tavern serve` end to end: the real bot against discord-sim, real Redis and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{config, spawn_app, spawn_serve, stop_with_sigterm, wait_ready, wait_store_failed};
use serde_json::json;
use store::harness::{TestPostgres, TestRedis, free_port};

#[tokio::test]
async fn ping_is_answered_through_the_interaction_callback() {
    let app = spawn_app().await;
    let demo = app.demo().clone();

    let ping = app
        .sim()
        .run_command(demo.alice, demo.general, "ping", json!([]))
        .expect("dispatch /ping");
    let reply = ping
        .response(Duration::from_secs(3))
        .await
        .expect("callback");

    assert_eq!(reply.callback_type, 4, "answered directly, not deferred");
    let content = reply.content.expect("content");
    assert!(content.contains("Pong"), "{content}");
    assert!(
        content.contains("Gateway:") && content.contains("REST:"),
        "{content}"
    );
    assert_eq!(app.sim().interaction_count_answered(ping.id()), 1);
    let posted = app.sim().messages(demo.general);
    assert!(
        posted.iter().any(|m| m.content == content),
        "the reply is a message in the channel"
    );
}

#[tokio::test]
async fn health_ready_and_metrics_endpoints_report() {
    let app = spawn_app().await;
    let demo = app.demo().clone();
    let health = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["ready"], json!(true));

    let ping = app
        .sim()
        .run_command(demo.bob, demo.general, "ping", json!([]))
        .expect("dispatch");
    ping.response(Duration::from_secs(3))
        .await
        .expect("callback");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("tavern_interactions_total{kind=\"command\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tavern_interaction_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tavern_discord_rest_requests_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unreachable_stores_make_readyz_wait_then_become_ready_when_they_appear() {
    discord::install_crypto_provider();
    let redis_port = free_port();
    let pg_port_holder = TestPostgres::start().await;
    // PostgreSQL is reachable but Redis is not at start.
    let config = config(&[
        (
            "TAVERN_REDIS_URL",
            format!("redis://127.0.0.1:{redis_port}/"),
        ),
        ("TAVERN_DATABASE_URL", pg_port_holder.url()),
    ]);
    let running = tavern::start(config)
        .await
        .expect("starts even without redis");
    let http = reqwest::Client::new();
    let readyz = format!("http://{}/readyz", running.http_addr);

    wait_store_failed(&http, &readyz, "redis").await;
    let response = http
        .get(&readyz)
        .send()
        .await
        .expect("readyz answers while not ready");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    let redis = body["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == "redis")
        .cloned()
        .expect("redis");
    assert_eq!(redis["ready"], json!(false));
    assert!(
        redis["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "says why: {redis}"
    );

    let _redis = TestRedis::start_on(redis_port).await;
    wait_ready(&http, &readyz, Duration::from_secs(20)).await;
    running.shutdown();
    running.wait().await.expect("clean stop");
}

/// A PostgreSQL outage that an answer told (one WARN) ends with one INFO once the
/// store answers again, though nothing asks `/readyz`: Tavern looks at its stores every
/// 15 s.
#[tokio::test]
async fn the_end_of_a_postgres_outage_an_answer_told_is_logged_though_nothing_asks_readyz() {
    let logs = testkit::Logs::default();
    let _capture = logs.capture();
    let mut app = spawn_app().await;
    let demo = app.demo().clone();
    let clips = app
        .sim()
        .channel_by_name(demo.guild, "clips")
        .expect("the demo guild has #clips")
        .id;
    app.postgres.kill();

    let status = json!([{"name": "status", "options": []}]);
    let answer = app
        .sim()
        .run_command(demo.demo_player, clips, "clips", status)
        .expect("dispatch /clips status")
        .final_response(Duration::from_secs(15))
        .await
        .expect("answered");
    let content = answer.content.unwrap_or_default();
    assert!(content.contains("can't reach its storage"), "{content}");
    const TOLD: &str = "answers are refused until it can be reached again";
    const ENDED: &str = "storage can be reached again";
    testkit::eventually("the outage is told", || async {
        (logs.warnings(TOLD).len() == 1).then_some(())
    })
    .await;
    assert_eq!(logs.count(ENDED), 0, "{}", logs.text());

    app.postgres.restart();
    testkit::eventually_within(
        Duration::from_secs(60),
        "the outage's end is told",
        || async { logs.text().contains(ENDED).then_some(()) },
    )
    .await;
    let ended: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains(ENDED))
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0].contains(" INFO ") && ended[0].contains("Postgres"),
        "{ended:?}"
    );
    assert_eq!(logs.warnings(TOLD).len(), 1, "{}", logs.text());
}

/// Started with Redis up and PostgreSQL unreachable, `/readyz` reports each store's own
/// state: Redis ready as soon as it is connected, PostgreSQL not, with why.
#[tokio::test]
async fn readyz_reports_a_connected_store_as_ready_while_the_other_is_unreachable() {
    discord::install_crypto_provider();
    let redis = TestRedis::start().await;
    let config = config(&[
        ("TAVERN_REDIS_URL", redis.url()),
        (
            "TAVERN_DATABASE_URL",
            format!("postgres://tavern@127.0.0.1:{}/tavern", free_port()),
        ),
    ]);
    let running = tavern::start(config).await.expect("starts");
    let http = reqwest::Client::new();
    let readyz = format!("http://{}/readyz", running.http_addr);
    wait_store_failed(&http, &readyz, "postgres").await;

    let components = testkit::eventually("redis is ready on /readyz", || {
        let (http, readyz) = (&http, &readyz);
        async move {
            let body: serde_json::Value = http.get(readyz).send().await.ok()?.json().await.ok()?;
            let components = body["components"].as_array()?.clone();
            components
                .iter()
                .any(|c| c["name"] == "redis" && c["ready"] == json!(true))
                .then_some(components)
        }
    })
    .await;
    let postgres = components
        .iter()
        .find(|c| c["name"] == "postgres")
        .expect("postgres");
    assert_eq!(postgres["ready"], json!(false), "{postgres}");
    let detail = postgres["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty() && detail != "connecting", "{postgres}");

    running.shutdown();
    running.wait().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_before_the_stores_appear_is_clean() {
    discord::install_crypto_provider();
    let config = config(&[
        (
            "TAVERN_REDIS_URL",
            format!("redis://127.0.0.1:{}/", free_port()),
        ),
        (
            "TAVERN_DATABASE_URL",
            format!("postgres://tavern@127.0.0.1:{}/tavern", free_port()),
        ),
    ]);
    let running = tavern::start(config).await.expect("starts");
    let readyz = format!("http://{}/readyz", running.http_addr);
    wait_store_failed(&reqwest::Client::new(), &readyz, "postgres").await;
    running.shutdown();
    tokio::time::timeout(Duration::from_secs(10), running.wait())
        .await
        .expect("stops promptly")
        .expect("clean stop");
}

#[test]
fn a_bad_config_value_exits_2_with_one_line_naming_the_key() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("serve")
        .env("TAVERN_HTTP_ADDR", "not-an-address")
        .env("TAVERN_DISCORD_TOKEN", "secret-token-value")
        .output()
        .expect("run tavern");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TAVERN_HTTP_ADDR"), "{stderr}");
    assert!(!stderr.contains("secret-token-value"), "{stderr}");
}

#[test]
fn version_prints_the_crate_version() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("--version")
        .output()
        .expect("run tavern");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("tavern {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let redis = TestRedis::start().await;
    let postgres = TestPostgres::start().await;
    let port = free_port();
    let mut child = spawn_serve(&redis, &postgres, port, &[]);
    discord::install_crypto_provider();
    let http = reqwest::Client::new();
    wait_ready(
        &http,
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(30),
    )
    .await;
    stop_with_sigterm(&mut child).await;
}

#[tokio::test]
async fn feature_routes_are_served_and_roll_works_end_to_end() {
    let app = spawn_app().await;
    let demo = app.demo().clone();
    let url = app.url(&format!(
        "/api/rolls/roll?user={}&expression=2d6%2B3",
        demo.alice.get()
    ));
    let anonymous = app.http.get(&url).send().await.expect("rest roll");
    assert_eq!(anonymous.status().as_u16(), 401);
    let redis = store::Redis::connect(&app.redis.url())
        .await
        .expect("redis");
    let token = web::tokens::ApiTokens::new(redis)
        .create(
            &web::tokens::TokenName::parse("e2e").expect("name"),
            web::tokens::Scope::parse_list("rolls:read").expect("scopes"),
            feature::Clock::now(&feature::SystemClock),
        )
        .await
        .expect("token");
    let rolled: serde_json::Value = app
        .http
        .get(&url)
        .bearer_auth(token.token.expose_str())
        .send()
        .await
        .expect("rest roll")
        .json()
        .await
        .expect("json");
    let total = rolled["total"]
        .as_i64()
        .unwrap_or_else(|| panic!("a total in {rolled}"));
    assert!((5..=15).contains(&total), "{rolled}");

    let roll = app
        .sim()
        .run_command(
            demo.bob,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "1d20+5"}]),
        )
        .expect("dispatch");
    let reply = roll
        .response(Duration::from_secs(5))
        .await
        .expect("callback");
    assert!(reply.content.unwrap_or_default().contains("1d20"));
}

/// The home page leads to every feature's page, the meetings' among them, and each
/// of them answers: a page, or for a signed-in member's page the way to log in.
#[tokio::test]
async fn the_home_page_leads_to_every_feature_s_page_and_each_answers() {
    let app = spawn_app().await;
    app.wait_ready().await;
    let home = app.http.get(app.url("/")).send().await.expect("home");
    assert_eq!(home.status(), 200);
    let home = home.text().await.unwrap();
    let cards = &home[home.find("class=\"cards\"").expect("the cards")..];
    let cards = &cards[..cards.find("</ul>").unwrap()];
    let links: Vec<&str> = cards
        .split("href=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(
        links,
        ["/campaigns", "/clips", "/meet", "/sandbox"],
        "{home}"
    );
    assert!(home.contains("video meetings"), "{home}");
    // Each card says in a sentence what is behind it.
    let abouts: Vec<&str> = cards
        .split("<span class=\"about\">")
        .skip(1)
        .map(|rest| &rest[..rest.find("</span>").unwrap()])
        .collect();
    assert_eq!(abouts.len(), 4, "{cards}");
    assert!(abouts[0].contains("games on Meetup"), "{abouts:?}");
    assert!(abouts[1].contains("video posted"), "{abouts:?}");
    assert!(abouts[2].contains("Video meetings"), "{abouts:?}");
    assert!(abouts[3].contains("Discord server"), "{abouts:?}");
    let http = common::no_redirects();
    for link in links {
        let page = http.get(app.url(link)).send().await.expect("a page");
        let status = page.status().as_u16();
        let to = page
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            status == 200 || (status == 303 && to.starts_with("/login/discord")),
            "{link}: {status} {to}"
        );
    }
}

#[tokio::test]
async fn a_path_nobody_serves_is_a_page_that_says_so_or_json_under_the_api() {
    let app = spawn_app().await;
    app.wait_ready().await;
    let page = app
        .http
        .get(app.url("/no/such/page"))
        .send()
        .await
        .expect("a page");
    assert_eq!(page.status(), 404);
    let kind = page.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/html"), "{kind}");
    let body = page.text().await.unwrap();
    assert!(body.contains("There is no page at this address."), "{body}");
    assert!(body.contains("href=\"/\""), "a way home: {body}");

    let api = app
        .http
        .post(app.url("/api/v1/no-such-thing"))
        .send()
        .await
        .expect("an API call");
    assert_eq!(api.status(), 404);
    let error: serde_json::Value = api.json().await.unwrap();
    assert_eq!(error["code"], "not_found");
    assert_eq!(
        error["error"],
        "no API route answers POST /api/v1/no-such-thing"
    );

    // A route that is served keeps its own answers, and a wrong method is still 405.
    let wrong = app
        .http
        .delete(app.url("/api/v1/meetings"))
        .send()
        .await
        .expect("a wrong method");
    assert_eq!(wrong.status(), 405);
}
