//! Shared test plumbing: a whole Tavern on port 0 with its own Redis and PostgreSQL.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use store::harness::{TestPostgres, TestRedis};
use tavern::Config;

pub struct TestApp {
    pub running: tavern::Running,
    pub redis: TestRedis,
    pub postgres: TestPostgres,
    pub http: reqwest::Client,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.http_addr, path)
    }

    /// Logs the sandbox's demo player in on the web as a newcomer does:
    /// `/login/discord`, the fake Discord's authorize page (which signs the demo player
    /// in), the callback. The session cookie (`name=value`).
    pub async fn log_in(&self, http: &reqwest::Client) -> String {
        let cookie = |response: &reqwest::Response| {
            let raw = response.headers()[reqwest::header::SET_COOKIE]
                .to_str()
                .unwrap();
            raw.split(';').next().unwrap().to_owned()
        };
        let location = |response: &reqwest::Response| {
            response.headers()[reqwest::header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let start = http.get(self.url("/login/discord")).send().await.unwrap();
        assert!(start.status().is_redirection(), "{}", start.status());
        let pre_login = cookie(&start);
        let approved = http.get(location(&start)).send().await.unwrap();
        assert!(approved.status().is_redirection(), "{}", approved.status());
        let done = http
            .get(location(&approved))
            .header(reqwest::header::COOKIE, &pre_login)
            .send()
            .await
            .unwrap();
        assert!(done.status().is_redirection(), "{}", done.status());
        cookie(&done)
    }

    pub fn sim(&self) -> &discord_sim::Sim {
        self.running.sim.as_ref().expect("sandbox mode has a sim")
    }

    pub fn demo(&self) -> &discord_sim::Demo {
        self.running
            .demo
            .as_ref()
            .expect("sandbox mode has a demo guild")
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self) {
        wait_ready(&self.http, &self.url("/readyz"), Duration::from_secs(20)).await;
    }
}

/// A client that shows redirects instead of following them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

pub async fn wait_ready(http: &reqwest::Client, url: &str, limit: Duration) {
    testkit::eventually_within(limit, &format!("{url} ready"), || async move {
        match http.get(url).send().await {
            Ok(r) if r.status().is_success() => Some(()),
            _ => None,
        }
    })
    .await;
}

/// Waits until `/readyz` reports the store `name` not ready with a reason other than
/// "connecting": a connection attempt has failed.
pub async fn wait_store_failed(http: &reqwest::Client, readyz: &str, name: &str) {
    testkit::eventually(
        &format!("{name} shows a failed attempt on /readyz"),
        || async move {
            let body: serde_json::Value = http.get(readyz).send().await.ok()?.json().await.ok()?;
            let component = body["components"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == name)?
                .clone();
            let detail = component["detail"].as_str().unwrap_or_default();
            (component["ready"] == serde_json::json!(false)
                && !detail.is_empty()
                && detail != "connecting")
                .then_some(())
        },
    )
    .await;
}

/// A fresh directory under cargo's scratch space, for one Tavern's data (local rolls
/// snapshots, ...), so tests never write into the source tree or share files.
pub fn scratch_dir() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tavern-data-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.to_string_lossy().into_owned()
}

pub fn config(pairs: &[(&str, String)]) -> Config {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("TAVERN_HTTP_ADDR".into(), "127.0.0.1:0".into());
    env.insert("TAVERN_DATA_DIR".into(), scratch_dir());
    for (k, v) in pairs {
        env.insert((*k).to_owned(), v.clone());
    }
    Config::from_sources(None, None, &env).expect("test config")
}

/// Tavern in sandbox mode against fresh servers, ready to serve.
pub async fn spawn_app() -> TestApp {
    discord::install_crypto_provider();
    let redis = TestRedis::start().await;
    let postgres = TestPostgres::start().await;
    let config = config(&[
        ("TAVERN_REDIS_URL", redis.url()),
        ("TAVERN_DATABASE_URL", postgres.url()),
    ]);
    let running = tavern::start(config).await.expect("tavern starts");
    let app = TestApp {
        running,
        redis,
        postgres,
        http: reqwest::Client::new(),
    };
    app.wait_ready().await;
    app
}

/// `tavern serve` as its own process on `127.0.0.1:{port}` against these stores, with
/// extra environment; killed if the test drops it.
pub fn spawn_serve(
    redis: &TestRedis,
    postgres: &TestPostgres,
    port: u16,
    envs: &[(&str, String)],
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("serve")
        .env("TAVERN_REDIS_URL", redis.url())
        .env("TAVERN_DATABASE_URL", postgres.url())
        .env("TAVERN_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("TAVERN_LOG", "error")
        .env("TAVERN_DATA_DIR", scratch_dir())
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tavern serve")
}

/// Sends SIGTERM and asserts the process exits successfully within 30 s.
pub async fn stop_with_sigterm(child: &mut tokio::process::Child) {
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
}

/// Once the meeting with `code` has `count` participant rows (a join's row is written
/// as its answer goes out): each one's id and leave reason, in join order.
pub async fn participant_rows(
    pool: &sqlx::PgPool,
    code: &str,
    count: usize,
) -> Vec<(String, Option<String>)> {
    testkit::eventually(&format!("{count} participant rows"), || async move {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT p.participant_id::text, p.leave_reason FROM meet.meeting_participants p \
             JOIN meet.meetings m USING (meeting_id) \
             WHERE replace(m.meeting_code, '-', '') = replace($1, '-', '') \
             ORDER BY p.joined_at",
        )
        .bind(code)
        .fetch_all(pool)
        .await
        .unwrap();
        (rows.len() == count).then_some(rows)
    })
    .await
}

/// What the presence job does once `participant`'s heartbeats stop: its presence key
/// expires (deleted here) and [`meetings::Repo::reap_absent`] removes it from `meeting`;
/// again until it is removed (a heartbeat in between renews its presence).
pub async fn removed_for_silence(
    repo: &meetings::Repo,
    meeting: meetings::domain::MeetingId,
    participant: meetings::domain::ParticipantId,
) {
    testkit::eventually("the presence job removes the participant", || {
        let repo = repo.clone();
        async move {
            let mut gone = store::Writes::new();
            gone.del(&meetings::schema::presence_key(participant));
            repo.redis().apply(&gone).await.unwrap();
            let reaped = repo.reap_absent(meeting).await.unwrap();
            reaped.left.contains(&participant).then_some(())
        }
    })
    .await;
}
