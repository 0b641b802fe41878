//! A Redis Cluster URL works: three real cluster nodes, slots assigned by redis-cli.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use store::harness::TestRedis;
use store::redis::AsyncCommands;
use store::{Redis, Writes};

#[tokio::test]
async fn a_comma_separated_url_connects_to_a_cluster_and_writes_atomically_within_a_slot() {
    let nodes = [
        TestRedis::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .await,
        TestRedis::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .await,
        TestRedis::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .await,
    ];
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
