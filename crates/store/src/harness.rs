//! Real servers for tests: every test gets its own `redis-server` and its own PostgreSQL
//! server on free loopback ports, in a temporary directory removed on drop. A failover
//! test gets a master, a replica and three Sentinels ([`TestSentinel`]).
//!
//! Why a server per test rather than a shared one: tests stay isolated whatever they do
//! (FLUSHALL, killing the server to test outages, DDL), and nextest runs every test in its
//! own process anyway. PostgreSQL start-up is kept cheap by running `initdb` once into a
//! cached template (guarded against concurrent builders) and copying it per test.
//!
//! PostgreSQL refuses to run as root; when the tests run as root the servers run as the
//! `postgres` user (the directories are handed to it first).
//!
//! Everything here panics with a clear message on failure: it is test-only code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Postgres, Redis};

mod object_stores;
mod sentinel;
pub use object_stores::{AZURITE_ACCOUNT, AZURITE_KEY, TestAzurite, TestS3};
pub use sentinel::{MASTER_NAME as SENTINEL_MASTER_NAME, TestSentinel};

pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1 (free when this returns; a server started on it right
/// away almost always gets it, and the starters here retry when it does not).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// Waits until `child` listens on `port`: the port answers and, when given, `own`
/// exists, a file only `child` makes once it has bound the port (its Unix socket, which
/// PostgreSQL and Redis open after their TCP one). Two tests may be handed the same
/// free port; the server of the one that bound it first answers the other's connection
/// too, and without `own` would pass for the other's, which is exiting.
pub(crate) fn wait_for_port(port: u16, child: &mut Child, what: &str, own: Option<&Path>) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if own.is_none_or(Path::exists)
            && TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        {
            return true;
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("{what} on port {port} exited early: {status}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}");
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A `redis-server` process of this test's own. Killed on drop.
#[derive(Debug)]
pub struct TestRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    /// The extra arguments it was started with (a restart uses them again).
    extra: Vec<String>,
}

impl TestRedis {
    /// Starts `redis-server` (from `PATH`, or `TAVERN_REDIS_SERVER`) on a free port.
    pub async fn start() -> TestRedis {
        Self::start_with(&[]).await
    }

    /// Starts with extra `redis-server` arguments (e.g. `--cluster-enabled yes`).
    pub async fn start_with(extra: &[&str]) -> TestRedis {
        for _ in 0..5 {
            if let Some(redis) = Self::try_start_on(free_port(), extra) {
                return redis;
            }
        }
        panic!("could not start redis-server on a free port after 5 attempts");
    }

    /// Starts on a given port; used to bring a server up where the app already expects it.
    pub async fn start_on(port: u16) -> TestRedis {
        Self::try_start_on(port, &[])
            .unwrap_or_else(|| panic!("redis-server could not listen on {port}"))
    }

    fn spawn_server(port: u16, dir: &Path, extra: &[String]) -> Child {
        let binary = std::env::var("TAVERN_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--unixsocket")
            .arg(Self::socket(dir))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{binary}` ({e}); install Debian's redis-server package")
            })
    }

    /// The Unix socket the server in `dir` opens once it has bound its port.
    fn socket(dir: &Path) -> PathBuf {
        dir.join("redis.sock")
    }

    fn try_start_on(port: u16, extra: &[&str]) -> Option<TestRedis> {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let mut child = Self::spawn_server(port, dir.path(), &extra);
        let own = Self::socket(dir.path());
        if wait_for_port(port, &mut child, "redis-server", Some(&own)) {
            Some(TestRedis {
                child,
                port,
                _dir: dir,
                extra,
            })
        } else {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub async fn connect(&self) -> Redis {
        Redis::connect(&self.url())
            .await
            .expect("connect to test redis")
    }

    /// Kills the server now (to test outages); dropping afterwards is fine.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Turns persistence on while the server runs: what it holds is written to its
    /// append-only file, and from then on every write is appended and fsynced before it
    /// is acknowledged, so [`TestRedis::restart_with_data`] finds it again. Returns once
    /// the file holds everything written so far.
    pub async fn persist(&self) {
        let redis = self.connect().await;
        let mut conn = redis.conn();
        for (name, value) in [("appendfsync", "always"), ("appendonly", "yes")] {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query_async::<()>(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("CONFIG SET {name} {value}: {e}"));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query_async(&mut conn)
                .await
                .expect("INFO persistence");
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            if field("aof_enabled") == "1"
                && field("aof_rewrite_in_progress") == "0"
                && field("aof_rewrite_scheduled") == "0"
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not write its append-only file in time: {info}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (as a crash would) and starts it again on the same port, in the
    /// same directory, with persistence on: after [`TestRedis::persist`] it loads what
    /// was acknowledged before the kill. Returns once it listens (it may still answer
    /// `LOADING` for a moment).
    pub async fn restart_with_data(&mut self) {
        self.kill();
        let mut extra = self.extra.clone();
        extra.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
        let own = Self::socket(self._dir.path());
        let _ = std::fs::remove_file(&own);
        let mut child = Self::spawn_server(self.port, self._dir.path(), &extra);
        assert!(
            wait_for_port(self.port, &mut child, "redis-server", Some(&own)),
            "redis-server could not listen on {} again",
            self.port
        );
        self.child = child;
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server of this test's own, with an empty database `tavern` owned by the
/// superuser `tavern` (password `tavern`). Stopped and deleted on drop.
#[derive(Debug)]
pub struct TestPostgres {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

fn pg_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("TAVERN_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("postgres").exists());
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL under /usr/lib/postgresql/*/bin; install Debian's postgresql package or set TAVERN_PG_BINDIR")
}

fn postgres_ids() -> (u32, u32) {
    let out = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("a `postgres` user exists (Debian's postgresql package creates it)")
    };
    (out("-u"), out("-g"))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {path:?}");
}

fn as_server_user(cmd: &mut Command) -> &mut Command {
    if running_as_root() {
        let (uid, gid) = postgres_ids();
        cmd.gid(gid).uid(uid);
    }
    cmd
}

/// Runs `initdb` once per machine into a cached template directory.
fn template_dir() -> PathBuf {
    let base = std::env::temp_dir().join("tavern-test-pg");
    let template = base.join("template-v1");
    let ready = template.join("READY");
    if ready.exists() {
        return template;
    }
    std::fs::create_dir_all(&base).expect("create pg cache dir");
    if running_as_root() {
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(&base, Some(uid), Some(gid)).expect("chown pg cache dir");
    }
    let lock = base.join("building");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if ready.exists() {
            return template;
        }
        match std::fs::create_dir(&lock) {
            Ok(()) => break,
            Err(_) => {
                // Another test process is building it; a lock older than two minutes
                // belongs to a builder that died.
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(120))
                    .unwrap_or(false);
                if stale {
                    let _ = std::fs::remove_dir_all(&lock);
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for the PostgreSQL template"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&template);
    let building = base.join(format!("template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).expect("create template dir");
    let pwfile = building.join("pw");
    std::fs::write(&pwfile, "tavern\n").expect("write pw file");
    if running_as_root() {
        let (uid, gid) = postgres_ids();
        chown_tree(&building, uid, gid);
    }
    let output = as_server_user(&mut Command::new(pg_bindir().join("initdb")))
        .arg("-D")
        .arg(building.join("data"))
        .args([
            "-U",
            "tavern",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .expect("run initdb");
    assert!(
        output.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(building.join("READY"), "").expect("mark template ready");
    std::fs::rename(&building, &template).expect("publish template");
    let _ = std::fs::remove_dir_all(&lock);
    template
}

impl TestPostgres {
    /// Starts a fresh PostgreSQL server and creates the database `tavern`.
    pub async fn start() -> TestPostgres {
        let template = tokio::task::spawn_blocking(template_dir)
            .await
            .expect("template builder");
        for _ in 0..5 {
            let port = free_port();
            if let Some(pg) = Self::try_start(&template, port) {
                let admin = format!("postgres://tavern:tavern@127.0.0.1:{port}/postgres");
                let pool = Postgres::connect(&admin)
                    .await
                    .expect("connect to test postgres");
                sqlx::raw_sql("CREATE DATABASE tavern")
                    .execute(pool.pool())
                    .await
                    .expect("create database");
                pool.pool().close().await;
                return pg;
            }
        }
        panic!("could not start PostgreSQL on a free port after 5 attempts");
    }

    fn try_start(template: &Path, port: u16) -> Option<TestPostgres> {
        let dir = tempfile::tempdir().expect("temp dir for postgres");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template.join("data"))
            .arg(dir.path().join("data"))
            .status()
            .expect("copy template");
        assert!(status.success(), "copy PostgreSQL template");
        if running_as_root() {
            let (uid, gid) = postgres_ids();
            chown_tree(dir.path(), uid, gid);
        }
        let mut child = Self::spawn_server(dir.path(), port);
        let own = Self::socket(dir.path(), port);
        if wait_for_port(port, &mut child, "postgres", Some(&own)) {
            Some(TestPostgres { child, port, dir })
        } else {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }

    /// The Unix socket the server in `dir` opens once it has bound `port` (`-k dir`).
    fn socket(dir: &Path, port: u16) -> PathBuf {
        dir.join(format!(".s.PGSQL.{port}"))
    }

    /// `postgres` over the data in `dir`, listening on `port`.
    fn spawn_server(dir: &Path, port: u16) -> std::process::Child {
        as_server_user(&mut Command::new(pg_bindir().join("postgres")))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(dir)
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=50", "-c", "shared_buffers=16MB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run postgres")
    }

    /// Starts the server again after [`TestPostgres::kill`], over the same data and on
    /// the same port (it recovers as after a crash): the end of an outage.
    pub fn restart(&mut self) {
        self.kill();
        let own = Self::socket(self.dir.path(), self.port);
        let _ = std::fs::remove_file(&own);
        let mut child = Self::spawn_server(self.dir.path(), self.port);
        assert!(
            wait_for_port(self.port, &mut child, "postgres", Some(&own)),
            "PostgreSQL could not listen on {} again",
            self.port
        );
        self.child = child;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the test's database.
    pub fn url(&self) -> String {
        format!("postgres://tavern:tavern@127.0.0.1:{}/tavern", self.port)
    }

    pub async fn connect(&self) -> Postgres {
        Postgres::connect(&self.url())
            .await
            .expect("connect to test postgres")
    }

    /// Stops the server at once (SIGQUIT: immediate shutdown).
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-QUIT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The data directory (for diagnostics).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `TYPE key`: what a test asserts a seed's key is (`string`, `hash`, `set`, `zset`, or
/// `none` when it does not exist).
pub async fn key_type(redis: &Redis, key: &str) -> String {
    redis::cmd("TYPE")
        .arg(key)
        .query_async(&mut redis.conn())
        .await
        .expect("TYPE")
}

/// `TTL key` in seconds: -1 without an expiry, -2 when the key does not exist.
pub async fn ttl(redis: &Redis, key: &str) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut redis.conn())
        .await
        .expect("TTL")
}
