//! `tavern check` as an operator runs it, against real Redis and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use store::harness::{TestPostgres, TestRedis};
use store::redis::AsyncCommands;

fn run_check(redis: &TestRedis, postgres: &TestPostgres) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("check")
        .env("TAVERN_REDIS_URL", redis.url())
        .env("TAVERN_DATABASE_URL", postgres.url())
        .env("TAVERN_LOG", "error")
        .output()
        .expect("run tavern check")
}

#[tokio::test]
async fn check_is_quiet_on_clean_data_and_reports_a_dangling_active_game() {
    let redis = TestRedis::start().await;
    let postgres = TestPostgres::start().await;

    let clean = run_check(&redis, &postgres);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(String::from_utf8_lossy(&clean.stdout).contains("no inconsistencies found"));

    let mut conn = redis.connect().await.conn();
    let _: () = conn.sadd("active_games", "ghost-game").await.expect("sadd");
    let dirty = run_check(&redis, &postgres);
    let stdout = String::from_utf8_lossy(&dirty.stdout);
    assert_eq!(dirty.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("active_games") && stdout.contains("ghost-game"),
        "{stdout}"
    );
}

#[tokio::test]
async fn check_reports_a_campaigns_link_without_its_inverse() {
    let redis = TestRedis::start().await;
    let postgres = TestPostgres::start().await;

    // A Meetup user that points at a Discord user who does not point back: half a link.
    let mut conn = redis.connect().await.conn();
    let _: () = conn.sadd("meetup_users", 7u64).await.expect("sadd");
    let _: () = conn
        .set("meetup_user:7:discord_user", 42u64)
        .await
        .expect("set");

    let dirty = run_check(&redis, &postgres);
    let stdout = String::from_utf8_lossy(&dirty.stdout);
    assert_eq!(dirty.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("campaigns") && l.contains("meetup_user:7:discord_user")),
        "{stdout}"
    );
}

#[test]
fn a_check_that_cannot_reach_its_stores_exits_2_not_1() {
    // Nothing listens on port 9: the check cannot look, which is not "found some".
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("check")
        .env("TAVERN_REDIS_URL", "redis://:hunter2@127.0.0.1:9/")
        .env("TAVERN_DATABASE_URL", "postgres://nobody@127.0.0.1:9/none")
        .env("TAVERN_LOG", "error")
        .output()
        .expect("run tavern check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the check could not run") && stderr.contains("Redis"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // The cause is said once: not repeated by each error that wraps it, nor by a log
    // line beside the printed message.
    let said = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(said.matches("Connection refused").count(), 1, "{said}");
}

/// `migrate` and `check` seal and sign nothing, so they say nothing of the meetings
/// secret key (none is configured here), whether in sandbox mode or with a bot token.
#[tokio::test]
async fn migrate_and_check_say_nothing_of_the_meetings_secret_key_they_do_not_use() {
    let redis = TestRedis::start().await;
    let postgres = TestPostgres::start().await;
    let run = |command: &str, token: Option<&str>| {
        let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"));
        run.arg(command)
            .env("TAVERN_REDIS_URL", redis.url())
            .env("TAVERN_DATABASE_URL", postgres.url())
            .env("TAVERN_DATA_DIR", common::scratch_dir())
            .env("TAVERN_LOG", "warn")
            .env_remove("TAVERN_MEETINGS_SECRET_KEY");
        if let Some(token) = token {
            run.env("TAVERN_DISCORD_TOKEN", token);
        }
        run.output().expect("run tavern")
    };
    for (command, token) in [
        ("migrate", None),
        ("migrate", Some("a-bot-token")),
        ("check", None),
    ] {
        let out = run(command, token);
        // The log goes to standard output, what the command prints too.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{command}: {said}");
        assert!(
            !said.to_lowercase().contains("secret key"),
            "{command} (token: {token:?}): {said}"
        );
    }
}
