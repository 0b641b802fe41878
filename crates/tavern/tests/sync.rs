//! `tavern sync --once` as an operator runs it: configured by `TAVERN_ROLLS_SYNC_URL` and
//! the cloud's own environment variables, against real Redis and a real S3 (moto).

use store::harness::{TestRedis, TestS3};
use store::redis::AsyncCommands;

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
    let mut conn = redis.connect().await.conn();
    let _: () = conn.sadd("user_set", "1234").await.expect("sadd");
    let _: () = conn
        .set("user_set:updated_time", "1790000000123")
        .await
        .expect("set");

    let envs = [
        ("TAVERN_ROLLS_SYNC_URL", "s3://community/tavern".to_owned()),
        ("AWS_ENDPOINT", s3.endpoint()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_REGION", "eu-central-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "operator".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "operator-secret".to_owned()),
    ];
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
