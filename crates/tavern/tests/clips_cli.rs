//! `tavern clips scan` as an operator runs it: the binary against discord-sim (REST
//! only) and a real PostgreSQL, configured through `TAVERN_*`. Its output and exit
//! codes, `--json`, a second run with nothing new, and a `kill -9` mid-scan followed
//! by a resume that loses no clip and indexes none twice. Multi-threaded: the test
//! blocks one worker on the child process while discord-sim answers it on the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use clips::Repo;
use clips::domain::{ChannelId, ScanStatus};
use clips::repo::ScanRun;
use discord_sim::{AttachmentSpec, ChannelKind, Fault, RouteMatch, Snowflake};
use serde_json::Value;
use testkit::{World, eventually_within};

struct Setup {
    world: World,
    database_url: String,
    redis_url: String,
    repo: Repo,
}

async fn setup() -> Setup {
    let mut world = World::with_postgres().await;
    let database_url = world.postgres_server().unwrap().url();
    let redis_url = world.redis_server().url();
    let repo = Repo::new(&world.postgres);
    Setup {
        world,
        database_url,
        redis_url,
        repo,
    }
}

/// A channel of `messages` messages by Alice: every `every`-th has a video, every
/// seventh an image, the rest is chatter.
fn channel_with_history(s: &Setup, name: &str, messages: usize, every: usize) -> Snowflake {
    let w = &s.world;
    let channel = w
        .sim
        .create_channel(w.demo.guild, name, ChannelKind::Text)
        .unwrap();
    for i in 0..messages {
        let attachments = if i % every == 0 {
            vec![AttachmentSpec::new(
                format!("clip-{i}.mp4"),
                "video/mp4",
                vec![0; 16],
            )]
        } else if i % 7 == 0 {
            vec![AttachmentSpec::new(
                format!("shot-{i}.png"),
                "image/png",
                vec![0; 16],
            )]
        } else {
            Vec::new()
        };
        w.sim
            .post_user_message(channel, w.demo.alice, &format!("message {i}"), attachments)
            .unwrap();
    }
    channel
}

/// Ten pages of history, a video in every tenth message, whose pages come slowly
/// (250 ms each) so that a stop lands mid-run.
fn slow_long_history(s: &Setup) -> (Snowflake, ChannelId) {
    let channel = channel_with_history(s, "long-history", 1_000, 10);
    s.world.sim.inject_fault(
        RouteMatch::new("GET", format!("/channels/{channel}/messages")),
        Fault::Delay(Duration::from_millis(250)),
        10_000,
    );
    (channel, ChannelId::new(channel.get()))
}

/// `tavern clips <args>` started, its output captured.
fn spawn(s: &Setup, args: &[&str]) -> Child {
    command(s, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The channel's latest run once it is running and has read `scanned` messages.
async fn running_after(s: &Setup, channel: ChannelId, scanned: i64, what: &str) -> ScanRun {
    eventually_within(Duration::from_secs(60), what, || async {
        // Nothing until the child has migrated the schema and queued its run.
        let run = s.repo.runs(channel, 1).await.ok()?.into_iter().next()?;
        (run.status == ScanStatus::Running && run.messages_scanned >= scanned).then_some(run)
    })
    .await
}

fn command(s: &Setup, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tavern"));
    command
        .arg("clips")
        .args(args)
        .env("TAVERN_DATABASE_URL", &s.database_url)
        .env("TAVERN_REDIS_URL", &s.redis_url)
        .env("TAVERN_LOG", "error")
        .env("TAVERN_DISCORD_TOKEN", s.world.sim.token())
        .env("TAVERN_DISCORD_API", s.world.sim.addr().to_string())
        .stdin(Stdio::null());
    command
}

fn scan(s: &Setup, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["scan"];
    all.extend_from_slice(args);
    let Output {
        status,
        stdout,
        stderr,
    } = command(s, &all).output().expect("run tavern clips scan");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn last_line(stdout: &str) -> &str {
    stdout.lines().last().unwrap_or_default()
}

fn json_line(stdout: &str) -> Value {
    serde_json::from_str(last_line(stdout))
        .unwrap_or_else(|e| panic!("the last line is one JSON object ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_prints_its_figures_and_a_second_with_nothing_new_exits_0() {
    let s = setup().await;
    let channel = channel_with_history(&s, "highlights", 250, 10);
    let id = channel.to_string();

    let (code, stdout, stderr) = scan(&s, &[&id]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        last_line(&stdout),
        "scanned 250 messages, matched 25, clips in channel 25",
        "{stdout}"
    );
    // The channel and its guild were registered from Discord.
    let stored = s
        .repo
        .channel(ChannelId::new(channel.get()))
        .await
        .unwrap()
        .expect("the channel is registered");
    assert_eq!(stored.info.name.as_deref(), Some("highlights"));

    let (code, stdout, stderr) = scan(&s, &[&id]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        last_line(&stdout),
        "scanned 0 messages, matched 0, clips in channel 25",
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_one_object_on_the_last_line() {
    let s = setup().await;
    let channel = channel_with_history(&s, "highlights", 120, 4);
    // With the default logging: the logs go to stderr, stdout holds the one object.
    let out = command(&s, &["scan", &channel.to_string(), "--deep", "--json"])
        .env("TAVERN_LOG", "info")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stderr.contains("scan run stopped"), "{stderr}");
    let figures = json_line(&stdout);
    assert_eq!(figures["status"], "succeeded", "{figures}");
    assert_eq!(figures["messages_scanned"], 120, "{figures}");
    assert_eq!(figures["messages_matched"], 30, "{figures}");
    assert_eq!(figures["clips_in_channel"], 30, "{figures}");
    let runs = s.repo.runs(ChannelId::new(channel.get()), 5).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(figures["run_id"], runs[0].id.to_string(), "{figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_unknown_channel_fails_with_the_reason() {
    let s = setup().await;
    let (code, _, stderr) = scan(&s, &["not-a-number"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a Discord channel id"), "{stderr}");

    let (code, stdout, stderr) = scan(&s, &["123456789"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("123456789"), "{stderr}");
    assert!(stdout.is_empty(), "logs go to stderr: {stdout}");

    // Without a bot token there is no Discord to read.
    let out = Command::new(env!("CARGO_BIN_EXE_tavern"))
        .args(["clips", "scan", "123456789"])
        .env("TAVERN_DATABASE_URL", &s.database_url)
        .env("TAVERN_REDIS_URL", &s.redis_url)
        .env_remove("TAVERN_DISCORD_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TAVERN_DISCORD_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_scan_then_a_second_run_resumes_it_with_no_clip_lost_or_twice() {
    let s = setup().await;
    let (channel, channel_id) = slow_long_history(&s);
    let mut child = spawn(&s, &["scan", &channel.to_string(), "--json"]);
    let killed = running_after(&s, channel_id, 200, "the first run has read a few pages").await;
    child.kill().unwrap(); // SIGKILL: no clean-up of any kind
    let status = child.wait().unwrap();
    assert!(!status.success());
    let after_kill = s.repo.run(killed.id).await.unwrap().unwrap();
    assert_eq!(
        after_kill.status,
        ScanStatus::Running,
        "a killed run stays running"
    );
    assert!(after_kill.messages_scanned < 1_000, "{after_kill:?}");

    s.world.sim.clear_faults();
    let (code, stdout, stderr) = scan(&s, &[&channel.to_string(), "--json"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let figures = json_line(&stdout);
    assert_eq!(
        figures["run_id"],
        killed.id.to_string(),
        "the same run continued: {figures}"
    );
    assert_eq!(figures["status"], "succeeded");
    assert_eq!(figures["messages_scanned"], 1_000, "{figures}");
    assert_eq!(figures["messages_matched"], 100, "{figures}");
    assert_eq!(figures["clips_in_channel"], 100, "{figures}");
    assert_eq!(s.repo.clips_in_channel(channel_id).await.unwrap(), 100);
    assert_eq!(
        s.repo.runs(channel_id, 5).await.unwrap().len(),
        1,
        "no second run was started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_after_the_page_in_flight_and_leaves_the_run_resumable() {
    let s = setup().await;
    let (channel, channel_id) = slow_long_history(&s);
    let child = spawn(&s, &["scan", &channel.to_string()]);
    let started = running_after(&s, channel_id, 100, "the run has read a page").await;
    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("resumable"), "{stderr}");
    let stopped = s.repo.run(started.id).await.unwrap().unwrap();
    assert_eq!(stopped.status, ScanStatus::Running, "left to be continued");
    assert!(stopped.messages_scanned < 1_000, "{stopped:?}");

    s.world.sim.clear_faults();
    let (code, stdout, stderr) = scan(&s, &[&channel.to_string(), "--json"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let figures = json_line(&stdout);
    assert_eq!(figures["run_id"], started.id.to_string(), "{figures}");
    assert_eq!(figures["messages_scanned"], 1_000, "{figures}");
    assert_eq!(figures["clips_in_channel"], 100, "{figures}");
}
