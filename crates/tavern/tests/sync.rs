//! The rolls sync as an operator runs it (`tavern sync --once`, `tavern serve`):
//! configured by `TAVERN_ROLLS_SYNC_URL` and the cloud's own environment variables,
//! against real Redis, PostgreSQL and S3 (moto).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{spawn_serve, stop_with_sigterm, wait_ready};
use store::harness::{TestPostgres, TestRedis, TestS3, free_port};
use store::redis::AsyncCommands;

/// One member in `user_set`, stamped at a fixed time.
async fn seed_user_set(redis: &TestRedis) {
    let mut conn = redis.connect().await.conn();
    let _: () = conn.sadd("user_set", "1234").await.expect("sadd");
    let _: () = conn
        .set("user_set:updated_time", "1790000000123")
        .await
        .expect("set");
}

/// What an operator sets for an S3-compatible service at `endpoint`.
fn s3_env(endpoint: String) -> [(&'static str, String); 6] {
    [
        ("TAVERN_ROLLS_SYNC_URL", "s3://community/tavern".to_owned()),
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_REGION", "eu-central-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "operator".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "operator-secret".to_owned()),
    ]
}

fn sync_once(redis: &TestRedis, envs: &[(&str, String)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .args(["sync", "--once"])
        .env("TAVERN_REDIS_URL", redis.url())
        .env("TAVERN_LOG", "error")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run tavern sync --once")
}

#[tokio::test]
async fn sync_once_writes_snapshots_to_the_configured_s3_bucket() {
    let redis = TestRedis::start().await;
    let s3 = TestS3::start();
    s3.create_bucket("community");
    seed_user_set(&redis).await;
    let envs = s3_env(s3.endpoint());
    let out = sync_once(&redis, &envs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("s3://community/tavern") && stdout.contains("1 written"),
        "{stdout}"
    );
    let object = s3
        .get("community", "tavern/rolls/user_set.json")
        .expect("snapshot in the bucket");
    let snapshot: serde_json::Value = serde_json::from_str(&object).expect("JSON");
    assert_eq!(snapshot["key"], "user_set");
    assert_eq!(snapshot["updated_time"], 1_790_000_000_123_i64);
    assert_eq!(snapshot["value"]["data"][0], "1234");
}

#[tokio::test]
async fn an_unusable_sync_url_is_refused_before_anything_runs() {
    let redis = TestRedis::start().await;
    let out = sync_once(
        &redis,
        &[("TAVERN_ROLLS_SYNC_URL", "gs://bucket/tavern".to_owned())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("TAVERN_ROLLS_SYNC_URL") && stderr.contains("is not supported"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serving_waits_for_an_unreachable_sync_store_and_starts_once_it_answers() {
    let redis = TestRedis::start().await;
    let postgres = TestPostgres::start().await;
    seed_user_set(&redis).await;
    let (http_port, s3_port) = (free_port(), free_port());
    let envs = s3_env(format!("http://127.0.0.1:{s3_port}"));
    let mut child = spawn_serve(&redis, &postgres, http_port, &envs);
    discord::install_crypto_provider();
    let http = reqwest::Client::new();
    let readyz = format!("http://127.0.0.1:{http_port}/readyz");

    // Not ready while the restore cannot reach S3, and /readyz says why.
    let detail = testkit::eventually_within(
        Duration::from_secs(30),
        "the failing restore shows on /readyz",
        || async {
            let response = http.get(&readyz).send().await.ok()?;
            assert_eq!(response.status(), 503, "ready without its restore");
            let body: serde_json::Value = response.json().await.expect("json");
            let features = body["components"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == "features"))
                .cloned()
                .expect("features component");
            let detail = features["detail"].as_str().unwrap_or_default().to_owned();
            detail.contains("start-up work of rolls").then_some(detail)
        },
    )
    .await;
    assert!(!detail.contains("operator-secret"), "{detail}");
    assert!(child.try_wait().expect("poll").is_none(), "still running");

    // S3 comes up with the bucket: the retried restore succeeds and Tavern serves.
    let s3 = TestS3::start_on(s3_port);
    s3.create_bucket("community");
    wait_ready(&http, &readyz, Duration::from_secs(60)).await;
    assert!(
        s3.get("community", "tavern/rolls/user_set.json").is_none(),
        "nothing written before shutdown"
    );
    stop_with_sigterm(&mut child).await;
    // The snapshot job runs at shutdown: what Redis held is in the bucket.
    let object = s3
        .get("community", "tavern/rolls/user_set.json")
        .expect("snapshot written at shutdown");
    assert!(object.contains("1234"), "{object}");
}
