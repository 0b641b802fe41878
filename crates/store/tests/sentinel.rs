//! Redis through Sentinel: a master, a replica and three Sentinels, all real processes.
//! The master dies (or is demoted), Sentinel promotes the replica, and the same `Redis`
//! handle keeps working without being rebuilt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use store::harness::TestSentinel;
use store::redis::AsyncCommands;
use store::{Redis, Writes};

/// A promotion takes a second of "down" plus an election; leave room for a slow machine.
const PROMOTION: Duration = Duration::from_secs(30);

/// One `WATCH` increment of `key`.
async fn watched_increment(redis: &Redis, key: &str) -> i64 {
    let owned = key.to_owned();
    redis
        .watch(std::slice::from_ref(&owned), |mut conn| {
            let key = owned.clone();
            async move {
                let current: Option<i64> = conn.get(&key).await?;
                let next = current.unwrap_or(0) + 1;
                let mut writes = Writes::new();
                writes.set(&key, next);
                Ok((writes, next))
            }
        })
        .await
        .expect("watch transaction")
}

/// What the server on `port` holds at `key`, asked directly (not through Sentinel).
async fn direct_get(port: u16, key: &str) -> Option<String> {
    let client = store::redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    conn.get(key).await.unwrap()
}

/// Waits until the replica has every write so far (`WAIT 1`), so a failover loses nothing.
async fn replicated(redis: &Redis) {
    let acked: i64 = store::redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut redis.conn())
        .await
        .expect("WAIT");
    assert_eq!(acked, 1, "the replica acknowledged the writes");
}

#[tokio::test]
async fn writes_go_on_through_the_same_handle_after_the_master_dies() {
    let mut servers = TestSentinel::start().await;
    let redis = Redis::connect(&servers.url())
        .await
        .expect("connect through sentinel");

    // Before: plain commands, a MULTI/EXEC batch, a compare-and-set and a WATCH.
    let mut conn = redis.conn();
    let _: () = conn.set("before", "kept").await.expect("set");
    let mut writes = Writes::new();
    writes.sadd("members", "a").hincrby("counts", "n", 1);
    redis.apply(&writes).await.expect("apply");
    assert_eq!(watched_increment(&redis, "watched").await, 1);
    replicated(&redis).await;

    let old = servers.kill_master().await;
    let new = servers.wait_for_new_master(old, PROMOTION).await;
    assert_ne!(old, new);

    // After: the same handle (and the same cloned connection) reads what the replica
    // had and writes to the new master.
    let before: Option<String> = conn.get("before").await.expect("get after failover");
    assert_eq!(before.as_deref(), Some("kept"), "the replica had it");
    let _: () = conn
        .set("after", "written")
        .await
        .expect("set after failover");
    let mut writes = Writes::new();
    writes.sadd("members", "b").hincrby("counts", "n", 1);
    redis.apply(&writes).await.expect("apply after failover");
    let mut guarded = Writes::new();
    guarded.set("doc", "v1");
    assert!(
        redis
            .apply_if("doc", None, &guarded)
            .await
            .expect("apply_if after failover")
    );
    // The WATCH path's pooled connection went to the dead master; a fresh one is used.
    assert_eq!(watched_increment(&redis, "watched").await, 2);

    assert_eq!(direct_get(new, "after").await.as_deref(), Some("written"));
    assert_eq!(direct_get(new, "doc").await.as_deref(), Some("v1"));
    assert_eq!(direct_get(new, "watched").await.as_deref(), Some("2"));
    let members: Vec<String> = conn.smembers("members").await.expect("smembers");
    assert_eq!(members.len(), 2, "{members:?}");
    let n: i64 = conn.hget("counts", "n").await.expect("hget");
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_master_demoted_by_a_planned_failover_is_left_for_the_new_one() {
    let servers = TestSentinel::start().await;
    let redis = servers.connect().await;
    let mut conn = redis.conn();
    let _: () = conn.set("before", "kept").await.expect("set");
    assert_eq!(watched_increment(&redis, "watched").await, 1);
    replicated(&redis).await;
    // The old master stays up and becomes a replica of the promoted one.
    let old = servers.planned_failover().await;
    let new = servers.wait_for_new_master(old, PROMOTION).await;
    // The old master still runs and, until Sentinel reconfigures it, still takes writes:
    // the handle lets go of it on Sentinel's `+switch-master` announcement.
    let store::RedisConn::Sentinel(handle) = redis.conn() else {
        panic!("a sentinel url gives a sentinel connection");
    };
    let old_addr = format!("127.0.0.1:{old}");
    testkit::eventually("the handle lets go of the old master", || {
        let handle = handle.clone();
        let old_addr = old_addr.clone();
        async move { (handle.master_addr().as_ref() != Some(&old_addr)).then_some(()) }
    })
    .await;

    let _: () = conn
        .set("after", "written")
        .await
        .expect("set after failover");
    assert_eq!(watched_increment(&redis, "watched").await, 2);
    assert_eq!(direct_get(new, "after").await.as_deref(), Some("written"));
    assert_eq!(direct_get(new, "before").await.as_deref(), Some("kept"));
}

#[tokio::test]
async fn a_lazy_handle_finds_the_master_on_first_use() {
    let servers = TestSentinel::start().await;
    let redis = Redis::lazy(&servers.url()).expect("lazy");
    redis.ping().await.expect("ping through sentinel");
    let _: () = redis.conn().set("k", "v").await.expect("set");
    let port = servers.master_port().await.expect("master");
    assert_eq!(direct_get(port, "k").await.as_deref(), Some("v"));
}

#[tokio::test]
async fn no_sentinel_answering_is_a_transient_error_within_the_failover_wait() {
    let url = format!(
        "redis+sentinel://127.0.0.1:{},127.0.0.1:{}/tavern",
        store::harness::free_port(),
        store::harness::free_port()
    );
    let err = Redis::connect(&url).await.expect_err("nobody listens");
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn a_malformed_sentinel_url_is_refused_before_connecting() {
    let err = Redis::connect("redis+sentinel://127.0.0.1:26379")
        .await
        .expect_err("no master name");
    assert!(err.to_string().contains("no master name"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_subscription_through_sentinel_gets_what_is_published_on_the_master() {
    let servers = TestSentinel::start().await;
    let redis = Redis::connect(&servers.url())
        .await
        .expect("connect through sentinel");
    let mut subscription = redis.subscribe("news").await.expect("subscribe");
    let mut conn = redis.conn();
    let receivers: i64 = store::redis::cmd("PUBLISH")
        .arg("news")
        .arg("hello")
        .query_async(&mut conn)
        .await
        .expect("publish");
    assert_eq!(receivers, 1, "the subscription is on the master");
    let got = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the message in time")
        .expect("the subscription goes on");
    assert_eq!(got, b"hello");
}
