//! A feature's services in the running binary: they start only after every feature's
//! start-up work is done, and each one shows on `/readyz` as a component of its own
//! (not ready, with the reason, while it is being restarted; ready once it runs).
//!
//! The meetings feature is the one under test: its start-up work (the audit log's
//! partitions) and its in-process meeting controller (a service that binds a UDP port).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;
use sqlx::Connection;
use store::harness::{TestPostgres, TestRedis};

/// The meeting controller's service name on `/readyz`.
const CONTROLLER: &str = "meeting-controller";

/// The components of one `/readyz` answer, by name.
async fn components(
    http: &reqwest::Client,
    readyz: &str,
) -> Option<std::collections::BTreeMap<String, Value>> {
    let body: Value = http.get(readyz).send().await.ok()?.json().await.ok()?;
    Some(
        body["components"]
            .as_array()?
            .iter()
            .filter_map(|c| Some((c["name"].as_str()?.to_owned(), c.clone())))
            .collect(),
    )
}

#[tokio::test]
async fn a_service_starts_after_the_start_up_work_and_shows_on_readyz_while_restarting_and_when_running()
 {
    discord::install_crypto_provider();
    let redis = TestRedis::start().await;
    let postgres = TestPostgres::start().await;

    // The start-up work of meetings takes this advisory lock first (two replicas
    // ensuring one month's partition take turns on it): holding it holds the work.
    let mut holder = sqlx::PgConnection::connect(&postgres.url())
        .await
        .expect("a connection of our own");
    sqlx::query("SELECT pg_advisory_lock(hashtext('audit_logs_ensure_partition'))")
        .execute(&mut holder)
        .await
        .expect("take the start-up work's lock");

    // The controller's UDP port is taken, so the service fails when it starts.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    let controller_addr = taken.local_addr().expect("its address");

    let config = common::config(&[
        ("TAVERN_REDIS_URL", redis.url()),
        ("TAVERN_DATABASE_URL", postgres.url()),
        (
            "TAVERN_MEETING_CONTROLLER_ADDR",
            controller_addr.to_string(),
        ),
    ]);
    let running = tavern::start(config).await.expect("tavern starts");
    let readyz = format!("http://{}/readyz", running.http_addr);
    let http = reqwest::Client::new();

    // The start-up work is running and waits for the lock ...
    let watcher = postgres.connect().await;
    testkit::eventually("the start-up work waits for its lock", || {
        let pool = watcher.pool().clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE '%audit_logs_ensure_partition%'",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (waiting > 0).then_some(())
        }
    })
    .await;
    // ... so no service has started: none is on /readyz, and the features are not ready.
    let during = components(&http, &readyz).await.expect("/readyz answers");
    assert_eq!(
        during["features"]["ready"],
        Value::Bool(false),
        "{during:?}"
    );
    assert!(
        !during.contains_key(CONTROLLER),
        "a service started before the start-up work was done: {during:?}"
    );
    assert!(
        !during.contains_key("clips-scan-worker"),
        "a service started before the start-up work was done: {during:?}"
    );

    // The start-up work finishes; the controller starts, fails on the taken port and is
    // restarted: /readyz says so, with the reason.
    sqlx::query("SELECT pg_advisory_unlock(hashtext('audit_logs_ensure_partition'))")
        .execute(&mut holder)
        .await
        .expect("release the lock");
    let restarting = testkit::eventually("the controller is restarting on /readyz", || {
        let http = &http;
        let readyz = &readyz;
        async move {
            let component = components(http, readyz).await?.remove(CONTROLLER)?;
            let detail = component["detail"].as_str()?.to_owned();
            detail.starts_with("restarting: ").then_some(component)
        }
    })
    .await;
    assert_eq!(restarting["ready"], Value::Bool(false), "{restarting}");
    let body: Value = http
        .get(&readyz)
        .send()
        .await
        .expect("/readyz")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        body["ready"],
        Value::Bool(false),
        "a restarting service makes the whole process not ready: {body}"
    );

    // The port comes free: the next restart binds it and the service is ready.
    drop(taken);
    let running_now = testkit::eventually("the controller is ready on /readyz", || {
        let http = &http;
        let readyz = &readyz;
        async move {
            let component = components(http, readyz).await?.remove(CONTROLLER)?;
            (component["ready"] == Value::Bool(true)).then_some(component)
        }
    })
    .await;
    assert!(running_now["detail"].is_null(), "{running_now}");
    common::wait_ready(&http, &readyz, std::time::Duration::from_secs(20)).await;

    running.shutdown();
    running.wait().await.expect("tavern stops cleanly");
}
