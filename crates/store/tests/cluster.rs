//! A Redis Cluster URL works: three real cluster nodes, slots assigned by redis-cli.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use store::harness::TestRedis;
use store::redis::AsyncCommands;
use store::{Redis, Writes};

/// Three real cluster nodes with every slot assigned, and the comma-separated URL of them.
async fn start_cluster() -> (Vec<TestRedis>, String) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(
            TestRedis::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .await,
        );
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let created = std::process::Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );

    // Wait until every node agrees the cluster is up.
    for addr in &addrs {
        let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
        testkit::eventually_within(
            Duration::from_secs(20),
            "every cluster node reports cluster_state:ok",
            || {
                let port = port.clone();
                async move {
                    let info = std::process::Command::new("redis-cli")
                        .args(["-h", "127.0.0.1", "-p", &port, "cluster", "info"])
                        .output()
                        .expect("cluster info");
                    String::from_utf8_lossy(&info.stdout)
                        .contains("cluster_state:ok")
                        .then_some(())
                }
            },
        )
        .await;
    }

    let url = addrs
        .iter()
        .map(|a| format!("redis://{a}"))
        .collect::<Vec<_>>()
        .join(",");
    (nodes, url)
}

#[tokio::test]
async fn a_comma_separated_url_connects_to_a_cluster_and_writes_atomically_within_a_slot() {
    let (_nodes, url) = start_cluster().await;
    let redis = Redis::connect(&url).await.expect("connect to the cluster");
    redis.ping().await.expect("ping");

    // Keys on many slots, one command each.
    let mut conn = redis.conn();
    for i in 0..50 {
        let _: () = conn.set(format!("key-{i}"), i).await.expect("set");
    }
    for i in 0..50 {
        let v: i64 = conn.get(format!("key-{i}")).await.expect("get");
        assert_eq!(v, i);
    }
    // A multi-key atomic write within one hash slot.
    let mut writes = Writes::new();
    writes.set("{game:1}:doc", "v1").sadd("{game:1}:index", "a");
    assert!(
        redis
            .apply_if("{game:1}:doc", None, &writes)
            .await
            .expect("apply_if")
    );
    let members: Vec<String> = conn.smembers("{game:1}:index").await.expect("smembers");
    assert_eq!(members, vec!["a".to_owned()]);
}

/// One increment of `key` as a WATCH transaction; on its first attempt it waits at
/// `barrier` after reading, so two of them have both read the same value before either
/// commits.
async fn increment_after_meeting(
    redis: Redis,
    key: &'static str,
    barrier: std::sync::Arc<tokio::sync::Barrier>,
) -> Result<(), store::StoreError> {
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    redis
        .watch(&[key.to_owned()], |mut conn| {
            let barrier = barrier.clone();
            let attempts = attempts.clone();
            async move {
                let current: Option<i64> = conn.get(key).await?;
                if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    barrier.wait().await;
                }
                let mut writes = Writes::new();
                writes.set(key, current.unwrap_or(0) + 1);
                Ok((writes, ()))
            }
        })
        .await
}

#[tokio::test]
async fn two_concurrent_watch_transactions_on_a_cluster_never_lose_an_update() {
    let (_nodes, url) = start_cluster().await;
    let redis = Redis::connect(&url).await.expect("connect to the cluster");

    // Both read 0 before either commits: the second commit must notice the first.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let first = tokio::spawn(increment_after_meeting(
        redis.clone(),
        "{count}:n",
        barrier.clone(),
    ));
    let second = tokio::spawn(increment_after_meeting(redis.clone(), "{count}:n", barrier));
    first.await.expect("join").expect("first transaction");
    second.await.expect("join").expect("second transaction");
    let n: i64 = redis.conn().get("{count}:n").await.expect("get");
    assert_eq!(n, 2, "an update was lost");

    // And many at once, without a barrier.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let redis = redis.clone();
            tokio::spawn(async move {
                redis
                    .watch(&["{count}:m".to_owned()], |mut conn| async move {
                        let current: Option<i64> = conn.get("{count}:m").await?;
                        let mut writes = Writes::new();
                        writes.set("{count}:m", current.unwrap_or(0) + 1);
                        Ok((writes, ()))
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("transaction");
    }
    let m: i64 = redis.conn().get("{count}:m").await.expect("get");
    assert_eq!(m, 20);
}

#[tokio::test]
async fn a_watch_on_a_cluster_does_not_disturb_other_commands_on_the_shared_connection() {
    let (_nodes, url) = start_cluster().await;
    let redis = Redis::connect(&url).await.expect("connect to the cluster");
    let other_client = Redis::connect(&url).await.expect("a second client");

    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    redis
        .watch(&["{room}:watched".to_owned()], |mut conn| {
            let redis = redis.clone();
            let other_client = other_client.clone();
            let attempts = attempts.clone();
            async move {
                let current: Option<i64> = conn.get("{room}:watched").await?;
                if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    // Somebody else changes the watched key while the transaction is open ...
                    let _: () = other_client.conn().incr("{room}:watched", 100).await?;
                    // ... and meanwhile the rest of the process writes through the shared
                    // connection, to the same node: that write must happen whatever the
                    // open transaction watches.
                    let mut unrelated = Writes::new();
                    unrelated.set("{room}:unrelated", "written");
                    redis.apply(&unrelated).await?;
                    let seen: Option<String> = redis.conn().get("{room}:unrelated").await?;
                    assert_eq!(
                        seen.as_deref(),
                        Some("written"),
                        "a write on the shared connection was swallowed by the open WATCH"
                    );
                }
                let mut writes = Writes::new();
                writes.set("{room}:watched", current.unwrap_or(0) + 1);
                Ok((writes, ()))
            }
        })
        .await
        .expect("the transaction commits on its second attempt");

    let watched: i64 = redis.conn().get("{room}:watched").await.expect("get");
    assert_eq!(
        watched, 101,
        "the transaction saw the outside change and retried"
    );
    assert_eq!(
        attempts.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the outside change aborted the first attempt"
    );
}

#[tokio::test]
async fn a_subscription_on_a_cluster_gets_what_is_published_through_any_node() {
    let (nodes, url) = start_cluster().await;
    let redis = Redis::connect(&url).await.expect("connect to the cluster");
    let mut subscription = redis.subscribe("news").await.expect("subscribe");
    // Published on each node in turn: the cluster bus carries it to the subscriber's.
    for (i, node) in nodes.iter().enumerate() {
        let mut conn = store::redis::Client::open(node.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: i64 = store::redis::cmd("PUBLISH")
            .arg("news")
            .arg(format!("from node {i}"))
            .query_async(&mut conn)
            .await
            .expect("publish");
        let got = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("the message in time")
            .expect("the subscription goes on");
        assert_eq!(String::from_utf8(got).unwrap(), format!("from node {i}"));
    }
}
