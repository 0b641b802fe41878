//! Sandbox mode is never an accident: an empty token is a configuration error, a
//! public address needs `--sandbox-public`, and the sandbox refuses to start on stores
//! holding a real community's data and writes no demo data into unmarked ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use store::harness::{TestPostgres, TestRedis};
use tavern::instance::{self, Foreign, Mode};
use tokio::io::{AsyncBufReadExt, BufReader};

fn tavern() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"));
    command
        .env_remove("TAVERN_DISCORD_TOKEN")
        .env("TAVERN_REDIS_URL", "redis://127.0.0.1:9/")
        .env("TAVERN_DATABASE_URL", "postgres://nobody@127.0.0.1:9/none")
        .env("TAVERN_LOG", "error");
    command
}

/// Runs `command` to its end, which must come within a deadline (a Tavern that
/// started serving instead never ends by itself).
async fn finished(command: std::process::Command) -> std::process::Output {
    let child = tokio::process::Command::from(command)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("tavern refused to start rather than serving")
        .unwrap()
}

#[tokio::test]
async fn an_empty_discord_token_exits_2_with_one_line() {
    let mut command = tavern();
    command
        .arg("serve")
        .env("TAVERN_DISCORD_TOKEN", "")
        .env("TAVERN_HTTP_ADDR", "127.0.0.1:0");
    let out = finished(command).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("TAVERN_DISCORD_TOKEN") && stderr.contains("empty"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sandbox_mode_refuses_a_public_address_without_the_flag() {
    let mut command = tavern();
    command.arg("serve").env("TAVERN_HTTP_ADDR", "0.0.0.0:0");
    let out = finished(command).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--sandbox-public"), "{stderr}");
}

#[tokio::test]
async fn sandbox_public_on_every_address_needs_the_public_url() {
    let mut command = tavern();
    command
        .args(["serve", "--sandbox-public"])
        .env_remove("TAVERN_PUBLIC_URL")
        .env("TAVERN_HTTP_ADDR", "0.0.0.0:0");
    let out = finished(command).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("set TAVERN_PUBLIC_URL"), "{stderr}");
}

#[tokio::test]
async fn with_sandbox_public_it_serves_on_a_public_address() {
    let mut child = tokio::process::Command::from(tavern())
        .args(["serve", "--sandbox-public"])
        .env("TAVERN_HTTP_ADDR", "0.0.0.0:0")
        .env("TAVERN_PUBLIC_URL", "http://tavern.test:8080")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // It prints the console's URL once it listens.
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the console URL is printed")
        .unwrap()
        .expect("a line");
    let url = line.rsplit(' ').next().unwrap();
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    discord::install_crypto_provider();
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_sandbox_tells_stores_of_a_real_community_from_its_own() {
    // Stores a Tavern connected to Discord used.
    let (redis_server, pg_server) = (TestRedis::start().await, TestPostgres::start().await);
    let (redis, pg) = (redis_server.connect().await, pg_server.connect().await);
    pg.migrate(&instance::MIGRATIONS).await.unwrap();
    assert!(instance::mark(&redis, &pg, Mode::Discord).await.is_empty());
    assert_eq!(
        instance::mark(&redis, &pg, Mode::Sandbox).await,
        [Foreign::Discord("Redis"), Foreign::Discord("PostgreSQL")]
    );

    // Fresh stores become the sandbox's own, and stay quiet on the next start.
    let (redis_server, pg_server) = (TestRedis::start().await, TestPostgres::start().await);
    let (redis, pg) = (redis_server.connect().await, pg_server.connect().await);
    pg.migrate(&instance::MIGRATIONS).await.unwrap();
    assert!(instance::mark(&redis, &pg, Mode::Sandbox).await.is_empty());
    store::redis::cmd("SET")
        .arg("drinking:game:1")
        .arg("{}")
        .query_async::<()>(&mut redis.conn())
        .await
        .unwrap();
    assert!(instance::mark(&redis, &pg, Mode::Sandbox).await.is_empty());

    // A Tavern connected to Discord takes the sandbox's stores over, saying so once:
    // on its next start they are its own.
    assert_eq!(
        instance::mark(&redis, &pg, Mode::Discord).await,
        [Foreign::Sandbox("Redis"), Foreign::Sandbox("PostgreSQL")]
    );
    assert!(instance::mark(&redis, &pg, Mode::Discord).await.is_empty());
    assert_eq!(
        instance::mark(&redis, &pg, Mode::Sandbox).await,
        [Foreign::Discord("Redis"), Foreign::Discord("PostgreSQL")]
    );

    // Data without a mark (older than the marks, or someone else's) is not the sandbox's.
    let (redis_server, pg_server) = (TestRedis::start().await, TestPostgres::start().await);
    let (redis, pg) = (redis_server.connect().await, pg_server.connect().await);
    pg.migrate(&instance::MIGRATIONS).await.unwrap();
    store::redis::cmd("SET")
        .arg("meetup_user:1:discord_user")
        .arg("2")
        .query_async::<()>(&mut redis.conn())
        .await
        .unwrap();
    store::sqlx::raw_sql(
        "CREATE SCHEMA old; CREATE TABLE old.t (x int); INSERT INTO old.t VALUES (1);",
    )
    .execute(pg.pool())
    .await
    .unwrap();
    assert_eq!(
        instance::mark(&redis, &pg, Mode::Sandbox).await,
        [Foreign::Unmarked("Redis"), Foreign::Unmarked("PostgreSQL")]
    );
}

#[tokio::test]
async fn the_sandbox_refuses_to_start_on_a_communitys_stores_and_writes_nothing() {
    let (redis_server, pg_server) = (TestRedis::start().await, TestPostgres::start().await);
    let (redis, pg) = (redis_server.connect().await, pg_server.connect().await);
    pg.migrate(&instance::MIGRATIONS).await.unwrap();
    instance::mark(&redis, &pg, Mode::Discord).await;

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"));
    command
        .arg("serve")
        .env_remove("TAVERN_DISCORD_TOKEN")
        .env("TAVERN_REDIS_URL", redis_server.url())
        .env("TAVERN_DATABASE_URL", pg_server.url())
        .env("TAVERN_HTTP_ADDR", "127.0.0.1:0")
        .env("TAVERN_LOG", "error")
        .env("TAVERN_DATA_DIR", env!("CARGO_TARGET_TMPDIR"));
    let out = finished(command).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Redis holds data of a Tavern connected to Discord")
            && stderr.contains("PostgreSQL holds data of a Tavern connected to Discord")
            && stderr.contains("TAVERN_REDIS_URL")
            && stderr.contains("TAVERN_DATABASE_URL"),
        "{stderr}"
    );
    // The real organiser's Meetup tokens are not replaced by the demo Meetup's.
    let repo = campaigns::Repo::new(redis.clone());
    assert!(repo.organizer_tokens().await.unwrap().is_none());
    let mark: Option<String> = store::redis::cmd("GET")
        .arg(instance::MODE_KEY)
        .query_async(&mut redis.conn())
        .await
        .unwrap();
    assert_eq!(mark.as_deref(), Some("discord"));
}

#[tokio::test]
async fn on_unmarked_data_the_sandbox_runs_but_writes_no_demo_data() {
    let (redis_server, pg_server) = (TestRedis::start().await, TestPostgres::start().await);
    let redis = redis_server.connect().await;
    // Someone's data, without a mark.
    store::redis::cmd("SET")
        .arg("drinking:game:1")
        .arg("{}")
        .query_async::<()>(&mut redis.conn())
        .await
        .unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("serve")
        .env_remove("TAVERN_DISCORD_TOKEN")
        .env("TAVERN_REDIS_URL", redis_server.url())
        .env("TAVERN_DATABASE_URL", pg_server.url())
        .env("TAVERN_HTTP_ADDR", "127.0.0.1:0")
        .env("TAVERN_LOG", "warn")
        .env("TAVERN_DATA_DIR", common::scratch_dir())
        .stderr(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (console, warning) = tokio::time::timeout(Duration::from_secs(60), async {
        let (mut console, mut warning) = (None, None);
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("Tavern sandbox console: ") {
                console = Some(line.rsplit(' ').next().unwrap().to_owned());
            } else if line.contains("sandbox mode on data it did not write") {
                warning = Some(line);
            }
            if let (Some(c), Some(w)) = (&console, &warning) {
                return (c.clone(), w.clone());
            }
        }
        panic!("tavern ended without the console line and the warning")
    })
    .await
    .expect("the console line and the warning");
    assert!(
        warning.contains("Redis holds data sandbox mode did not write"),
        "{warning}"
    );
    discord::install_crypto_provider();
    let readyz = console.replace("/sandbox", "/readyz");
    common::wait_ready(&reqwest::Client::new(), &readyz, Duration::from_secs(60)).await;
    // Ready: the start-up is over, and it stored no demo Meetup tokens there.
    let repo = campaigns::Repo::new(redis.clone());
    assert!(repo.organizer_tokens().await.unwrap().is_none());
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sandbox_start_on_empty_stores_makes_them_its_own() {
    // Nothing is in the stores before: what the sandbox writes at start-up (the demo
    // Meetup's tokens and link) is its own, so it marks both stores and says nothing.
    let app = common::spawn_app().await;
    app.wait_ready().await;
    let redis = app.redis.connect().await;
    let mark: Option<String> = store::redis::cmd("GET")
        .arg(instance::MODE_KEY)
        .query_async(&mut redis.conn())
        .await
        .unwrap();
    assert_eq!(mark.as_deref(), Some("sandbox"));
    let pg = app.postgres.connect().await;
    let mode: String = store::sqlx::query_scalar("SELECT mode FROM tavern.instance")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(mode, "sandbox");
    // And the next look finds them the sandbox's.
    assert!(instance::mark(&redis, &pg, Mode::Sandbox).await.is_empty());
    app.running.shutdown();
    app.running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_sandbox_whose_redis_lost_its_data_marks_it_again() {
    // Redis restarted without persistence under a running sandbox: its next start must
    // still find its own data, not someone else's.
    let app = common::spawn_app().await;
    app.wait_ready().await;
    let redis = app.redis.connect().await;
    store::redis::cmd("FLUSHALL")
        .query_async::<()>(&mut redis.conn())
        .await
        .unwrap();
    testkit::eventually_within(
        instance::KEEP_MARKED_EVERY * 4,
        "the running sandbox marks Redis again",
        || {
            let redis = redis.clone();
            async move {
                let mark: Option<String> = store::redis::cmd("GET")
                    .arg(instance::MODE_KEY)
                    .query_async(&mut redis.conn())
                    .await
                    .unwrap();
                (mark.as_deref() == Some("sandbox")).then_some(())
            }
        },
    )
    .await;
    // What the sandbox writes next is then its own to the next start.
    store::redis::cmd("SET")
        .arg("drinking:game:1")
        .arg("{}")
        .query_async::<()>(&mut redis.conn())
        .await
        .unwrap();
    let pg = app.postgres.connect().await;
    assert!(instance::mark(&redis, &pg, Mode::Sandbox).await.is_empty());
    app.running.shutdown();
    app.running.wait().await.unwrap();
}

/// The sandbox on 127.0.0.1 is the same site whether the browser calls it `127.0.0.1`,
/// `localhost` or `[::1]`: the console's actions are taken from any of them.
#[tokio::test]
async fn the_sandbox_console_takes_actions_from_localhost_too() {
    let app = common::spawn_app().await;
    let page = app.http.get(app.url("/sandbox")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|v| v.starts_with(web::session::CONSOLE_COOKIE))
        .expect("the console's cookie");
    let token = testkit::attribute_values(&page.text().await.unwrap(), "data-csrf")
        .into_iter()
        .next()
        .expect("the page's token");
    let port = app.running.http_addr.port();
    for (origin, status) in [
        (format!("http://localhost:{port}"), 400),
        (format!("http://[::1]:{port}"), 400),
        (format!("http://127.0.0.1:{port}"), 400),
        (format!("http://evil.example:{port}"), 403),
    ] {
        let response = app
            .http
            .post(app.url("/sandbox/api/command"))
            .header(reqwest::header::COOKIE, &cookie)
            .header("x-csrf-token", &token)
            .header(reqwest::header::ORIGIN, &origin)
            .json(&serde_json::json!({"channel": app.demo().dice.to_string(), "text": "/nope"}))
            .send()
            .await
            .unwrap();
        // 400: the command was read (and is unknown), not refused.
        assert_eq!(response.status().as_u16(), status, "{origin}");
    }
}
