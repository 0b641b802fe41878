//! `tavern clips scan` as an operator runs it: the binary against discord-sim (REST
//! only) and a real PostgreSQL, configured through `TAVERN_*`. Its output and exit
//! codes, `--json`, a second run with nothing new, and a `kill -9` mid-scan followed
//! by a resume that loses no clip and indexes none twice; a run another live worker
//! holds (followed to its end, not refused), a run Discord refuses (failed) and one
//! canceled elsewhere. Multi-threaded: the test blocks one worker on the child process
//! while discord-sim answers it on the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clips::Repo;
use clips::domain::{ChannelId, ScanStatus};
use clips::repo::ScanRun;
use clips::scan::{ScanMode, Scanner};
use discord_sim::{AttachmentSpec, ChannelKind, Fault, RouteMatch, Snowflake};
use serde_json::Value;
use testkit::{World, eventually, eventually_within};
use tokio_util::sync::CancellationToken;

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

/// Waits (off the runtime) for a spawned `tavern clips scan --json` to end: its exit
/// code, the JSON object on its last stdout line, and stdout and stderr for messages.
async fn finished(child: Child) -> (Option<i32>, Value, String, String) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), json_line(&stdout), stdout, stderr)
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
    // Read from a pipe, not a terminal: plain text, no colour codes.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
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

/// The lines the child writes to standard error, as they come (read on a thread).
fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    received
}

/// Waits (up to a minute) for a line of `lines` containing `needle`, and returns it
/// with the receiver. Fails when the child closes standard error first (it exited).
async fn line_with(lines: Receiver<String>, needle: &'static str) -> (String, Receiver<String>) {
    tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(needle) => return (line, lines),
                Ok(line) => seen.push(line),
                Err(e) => panic!("no line with `{needle}` on stderr ({e}); it said: {seen:?}"),
            }
        }
    })
    .await
    .unwrap()
}

/// A live scan worker of its own, as `tavern serve`'s scan worker is: on a thread with
/// its own runtime, connections and Discord client, it queues a deep scan of the
/// channel and runs it, holding the channel's lock, and after its first page stands
/// still until `go` is sent.
struct HeldWorker {
    /// The run after its first page.
    paused_at: ScanRun,
    go: Sender<()>,
    /// The run as the worker ended it.
    done: std::thread::JoinHandle<ScanRun>,
}

async fn held_worker(s: &Setup, channel: ChannelId) -> HeldWorker {
    let database_url = s.database_url.clone();
    let bot = s.world.bot_config();
    let (paused, paused_at) = mpsc::channel::<ScanRun>();
    let (go, wait_for_go) = mpsc::channel::<()>();
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            discord::install_crypto_provider();
            let pg = store::Postgres::connect(&database_url).await.unwrap();
            pg.migrate(&clips::MIGRATIONS).await.unwrap();
            let scanner = Scanner::new(
                Repo::new(&pg),
                discord::Discord::new(&bot.rest),
                Arc::new(feature::SystemClock),
            );
            let run = scanner
                .request(channel, ScanMode::Deep)
                .await
                .unwrap()
                .into_run();
            let paused = Mutex::new(Some(paused));
            let wait_for_go = Mutex::new(wait_for_go);
            // Blocks this worker's only thread after the first page: the scan stands
            // still with the channel's lock held.
            let progress = move |run: &ScanRun| {
                if run.messages_scanned > 0
                    && let Some(paused) = paused.lock().unwrap().take()
                {
                    paused.send(run.clone()).unwrap();
                    wait_for_go.lock().unwrap().recv().unwrap();
                }
            };
            scanner
                .run(run.id, &progress, CancellationToken::new())
                .await
                .unwrap()
        })
    });
    let paused_at = tokio::task::spawn_blocking(move || {
        paused_at
            .recv_timeout(Duration::from_secs(60))
            .expect("the worker reads its first page")
    })
    .await
    .unwrap();
    HeldWorker {
        paused_at,
        go,
        done,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_a_channel_another_live_worker_holds_follows_that_run_to_its_end() {
    let s = setup().await;
    let channel = channel_with_history(&s, "held", 1_000, 10);
    let channel_id = ChannelId::new(channel.get());
    let worker = held_worker(&s, channel_id).await;
    assert_eq!(worker.paused_at.status, ScanStatus::Running);
    assert_eq!(worker.paused_at.messages_scanned, 100);

    let mut child = spawn(&s, &["scan", &channel.to_string(), "--json"]);
    let lines = stderr_lines(&mut child);
    let (waiting, _lines) = line_with(lines, "waiting for it to end").await;
    assert!(
        waiting.contains(&worker.paused_at.id.to_string()),
        "it names the run: {waiting}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "it waits rather than exiting"
    );

    worker.go.send(()).unwrap();
    let (code, figures, stdout, _) = finished(child).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(
        figures["run_id"],
        worker.paused_at.id.to_string(),
        "{figures}"
    );
    assert_eq!(figures["status"], "succeeded", "{figures}");
    assert_eq!(figures["messages_scanned"], 1_000, "{figures}");
    assert_eq!(figures["messages_matched"], 100, "{figures}");
    assert_eq!(figures["clips_in_channel"], 100, "{figures}");
    // The worker, not the command, ran the run to its end.
    let by_worker = worker.done.join().unwrap();
    assert_eq!(by_worker.status, ScanStatus::Succeeded);
    assert_eq!(by_worker.messages_scanned, 1_000);
    assert_eq!(s.repo.runs(channel_id, 5).await.unwrap().len(), 1);
    assert_eq!(s.repo.clips_in_channel(channel_id).await.unwrap(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_after_a_kill_takes_the_run_up_once_the_dead_workers_lock_is_gone() {
    let s = setup().await;
    let (channel, channel_id) = slow_long_history(&s);
    let mut first = spawn(&s, &["scan", &channel.to_string(), "--json"]);
    let killed = running_after(&s, channel_id, 200, "the first run has read a few pages").await;
    first.kill().unwrap();
    first.wait().unwrap();
    s.world.sim.clear_faults();
    // The killed process's lock, as if its backend had not noticed the kill yet.
    let lingering = eventually("the killed process's lock is free", || async {
        s.repo.try_lock_channel(channel_id).await.unwrap()
    })
    .await;

    let mut second = spawn(&s, &["scan", &channel.to_string(), "--json"]);
    let lines = stderr_lines(&mut second);
    let (_, _lines) = line_with(lines, "waiting for it to end").await;
    assert!(
        second.try_wait().unwrap().is_none(),
        "it waits for the lock"
    );
    lingering.release().await;

    let (code, figures, stdout, _) = finished(second).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(
        figures["run_id"],
        killed.id.to_string(),
        "the same run continued: {figures}"
    );
    assert_eq!(figures["status"], "succeeded", "{figures}");
    assert_eq!(figures["messages_scanned"], 1_000, "{figures}");
    assert_eq!(figures["clips_in_channel"], 100, "{figures}");
    assert_eq!(s.repo.clips_in_channel(channel_id).await.unwrap(), 100);
    assert_eq!(s.repo.runs(channel_id, 5).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_discord_refuses_fails_the_run_with_exit_1_and_its_figures() {
    let s = setup().await;
    let channel = channel_with_history(&s, "refused", 50, 10);
    s.world.sim.inject_fault(
        RouteMatch::new("GET", format!("/channels/{channel}/messages")),
        Fault::Status(403),
        10,
    );
    let (code, stdout, stderr) = scan(&s, &[&channel.to_string(), "--json"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("failed"), "{stderr}");
    assert!(stderr.contains("403"), "the reason is given: {stderr}");
    let figures = json_line(&stdout);
    assert_eq!(figures["status"], "failed", "{figures}");
    assert_eq!(figures["messages_scanned"], 0, "{figures}");
    assert_eq!(figures["clips_in_channel"], 0, "{figures}");
    let run = s.repo.runs(ChannelId::new(channel.get()), 1).await.unwrap()[0].clone();
    assert_eq!(run.status, ScanStatus::Failed);
    assert_eq!(figures["run_id"], run.id.to_string(), "{figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_canceled_elsewhere_ends_the_command_with_exit_1_and_its_figures() {
    let s = setup().await;
    let (channel, channel_id) = slow_long_history(&s);
    let child = spawn(&s, &["scan", &channel.to_string(), "--json"]);
    let running = running_after(&s, channel_id, 100, "the run has read a page").await;
    s.repo.cancel_run(running.id).await.unwrap();
    let (code, figures, stdout, stderr) = finished(child).await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("canceled"), "{stderr}");
    assert_eq!(figures["run_id"], running.id.to_string(), "{figures}");
    assert_eq!(figures["status"], "canceled", "{figures}");
    let scanned = figures["messages_scanned"].as_i64().unwrap();
    assert!((100..1_000).contains(&scanned), "{figures}");
    assert_eq!(
        s.repo
            .run(running.id)
            .await
            .unwrap()
            .unwrap()
            .messages_scanned,
        scanned
    );
}
