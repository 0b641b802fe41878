//! Redis with a master, a replica and Sentinels watching them, for failover tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{START_TIMEOUT, TestRedis, free_port, wait_for_port};
use crate::Redis;

/// The name the Sentinels monitor the master under.
pub const MASTER_NAME: &str = "tavern";

/// How long a Sentinel waits without an answer before it calls the master down. Short, so
/// a test's failover takes a few seconds.
const DOWN_AFTER_MS: u32 = 1000;

/// One `redis-server --sentinel` process with its own config file (Sentinel rewrites it).
#[derive(Debug)]
struct SentinelProcess {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl SentinelProcess {
    fn try_start(port: u16, master_port: u16, quorum: usize) -> Option<SentinelProcess> {
        let dir = tempfile::tempdir().expect("temp dir for sentinel");
        let config = dir.path().join("sentinel.conf");
        write_config(&config, dir.path(), port, master_port, quorum);
        let binary = std::env::var("TAVERN_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut child = Command::new(&binary)
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{binary} --sentinel` ({e}); install Debian's redis-server package"
                )
            });
        if wait_for_port(port, &mut child, "redis sentinel", None) {
            Some(SentinelProcess {
                child,
                port,
                _dir: dir,
            })
        } else {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

fn write_config(path: &Path, dir: &Path, port: u16, master_port: u16, quorum: usize) {
    let text = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         protected-mode no\n\
         dir {dir}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} 10000\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display(),
    );
    std::fs::write(path, text).expect("write sentinel.conf");
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis master, one replica of it and three Sentinels (quorum two) watching them, all
/// of this test's own. [`TestSentinel::url`] is the `redis+sentinel://` URL Tavern takes.
///
/// [`TestSentinel::start`] returns once every Sentinel knows the replica and the other
/// Sentinels, so a failover can happen as soon as the master goes away.
#[derive(Debug)]
pub struct TestSentinel {
    /// The servers, master first; a killed one stays (dead) in its place.
    servers: Vec<TestRedis>,
    sentinels: Vec<SentinelProcess>,
}

/// A reply of `SENTINEL ...` as field/value pairs.
type Fields = std::collections::HashMap<String, String>;

async fn sentinel_query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()?;
    let mut cmd = redis::cmd("SENTINEL");
    for arg in args {
        cmd.arg(*arg);
    }
    tokio::time::timeout(Duration::from_secs(2), cmd.query_async(&mut conn))
        .await
        .ok()?
        .ok()
}

/// Polls `probe` until it returns `Some` or `limit` passes (then panics naming `what`).
async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestSentinel {
    /// Starts the master, its replica (in sync) and three Sentinels.
    pub async fn start() -> TestSentinel {
        let master = TestRedis::start().await;
        let master_port = master.port().to_string();
        let replica = TestRedis::start_with(&["--replicaof", "127.0.0.1", &master_port]).await;
        let replica_port = replica.port();
        wait_until(
            START_TIMEOUT,
            "the replica is in sync with the master",
            || async move {
                let client =
                    redis::Client::open(format!("redis://127.0.0.1:{replica_port}/")).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                info.contains("master_link_status:up").then_some(())
            },
        )
        .await;

        let count = 3;
        let mut sentinels = Vec::new();
        while sentinels.len() < count {
            let mut started = None;
            for _ in 0..5 {
                started = SentinelProcess::try_start(free_port(), master.port(), 2);
                if started.is_some() {
                    break;
                }
            }
            sentinels.push(started.expect("start redis sentinel on a free port after 5 attempts"));
        }
        let this = TestSentinel {
            servers: vec![master, replica],
            sentinels,
        };
        for sentinel in &this.sentinels {
            let port = sentinel.port;
            wait_until(
                START_TIMEOUT,
                "every Sentinel knows the replica and the other Sentinels",
                || async move {
                    let master: Fields = sentinel_query(port, &["MASTER", MASTER_NAME]).await?;
                    let replicas: usize = master.get("num-slaves")?.parse().ok()?;
                    let others: usize = master.get("num-other-sentinels")?.parse().ok()?;
                    (replicas >= 1 && others == count - 1).then_some(())
                },
            )
            .await;
        }
        this
    }

    /// `redis+sentinel://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/tavern`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// Connects a [`Redis`] handle through the Sentinels.
    pub async fn connect(&self) -> Redis {
        Redis::connect(&self.url())
            .await
            .expect("connect through sentinel")
    }

    /// The port the Sentinels name as master now (the first Sentinel that answers).
    pub async fn master_port(&self) -> Option<u16> {
        for sentinel in &self.sentinels {
            let addr: Option<(String, u16)> =
                sentinel_query(sentinel.port, &["GET-MASTER-ADDR-BY-NAME", MASTER_NAME]).await;
            if let Some((_, port)) = addr {
                return Some(port);
            }
        }
        None
    }

    /// Asks the Sentinels for a planned failover (`SENTINEL FAILOVER`): the master stays
    /// up and becomes a replica of the promoted one. Returns the old master's port.
    pub async fn planned_failover(&self) -> u16 {
        let old = self
            .master_port()
            .await
            .expect("the Sentinels name a master");
        let port = self.sentinels[0].port;
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a sentinel");
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await
            .expect("SENTINEL FAILOVER");
        old
    }

    /// The ports of the Redis servers (master and replica, dead or alive).
    pub fn server_ports(&self) -> Vec<u16> {
        self.servers.iter().map(TestRedis::port).collect()
    }

    /// The server process on `port`.
    pub fn server(&mut self, port: u16) -> &mut TestRedis {
        self.servers
            .iter_mut()
            .find(|s| s.port() == port)
            .unwrap_or_else(|| panic!("no server of this test on port {port}"))
    }

    /// Kills the current master process (as a crash would) and returns its port.
    pub async fn kill_master(&mut self) -> u16 {
        let port = self
            .master_port()
            .await
            .expect("the Sentinels name a master");
        self.server(port).kill();
        port
    }

    /// Waits (up to `limit`) until every Sentinel names a master other than `old_port`
    /// and that server says it is a master; returns its port.
    pub async fn wait_for_new_master(&self, old_port: u16, limit: Duration) -> u16 {
        let ports: Vec<u16> = self.sentinels.iter().map(|s| s.port).collect();
        wait_until(limit, "Sentinel promotes the replica", || {
            let ports = ports.clone();
            async move {
                let mut named = None;
                for port in ports {
                    let (_, master): (String, u16) =
                        sentinel_query(port, &["GET-MASTER-ADDR-BY-NAME", MASTER_NAME]).await?;
                    if master == old_port || named.is_some_and(|n| n != master) {
                        return None;
                    }
                    named = Some(master);
                }
                let new = named?;
                let client = redis::Client::open(format!("redis://127.0.0.1:{new}/")).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                let role: Vec<redis::Value> =
                    redis::cmd("ROLE").query_async(&mut conn).await.ok()?;
                matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master")
                    .then_some(new)
            }
        })
        .await
    }
}
