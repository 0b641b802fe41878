//! The scan engine end to end: discord-sim as Discord (its history served over REST,
//! faults injected), a real PostgreSQL, the real `discord` REST client. Every count is
//! checked exactly against what was seeded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clips::domain::{ChannelId, MessageId, ScanRunId, ScanStatus};
use clips::repo::{ChannelInfo, GuildInfo, Repo, ScanRun};
use clips::scan::{Requested, ScanError, ScanMode, Scanner};
use clips::services::{self, WorkerConfig};
use discord_sim::{AttachmentSpec, ChannelKind, Fault, RouteMatch, SeedMessage, Sim, SimConfig};
use store::harness::TestPostgres;
use testkit::{ManualClock, eventually};
use tokio_util::sync::CancellationToken;

struct Env {
    server: TestPostgres,
    sim: Sim,
    repo: Repo,
    scanner: Scanner,
    discord: discord::Discord,
    channel: ChannelId,
    author: u64,
}

async fn env() -> Env {
    env_with(SimConfig::default()).await
}

/// A migrated PostgreSQL, a sim with its demo guild and an empty text channel
/// `#clips` in it, and a scanner over both. The channel is not registered in Tavern
/// yet: a scan request registers it from Discord.
async fn env_with(config: SimConfig) -> Env {
    discord::install_crypto_provider();
    let server = TestPostgres::start().await;
    let pg = server.connect().await;
    pg.migrate(&clips::MIGRATIONS).await.expect("migrate");
    let sim = Sim::start(config).expect("sim");
    let demo = sim.seed_demo();
    let channel = sim
        .create_channel(demo.guild, "clips", ChannelKind::Text)
        .expect("channel");
    let bot =
        discord::BotConfig::stand_in(sim.token(), &sim.addr().to_string(), &sim.gateway_url());
    let discord = discord::Discord::new(&bot.rest);
    let repo = Repo::new(&pg);
    let clock = Arc::new(ManualClock::new(testkit::epoch()));
    let scanner = Scanner::new(repo.clone(), discord.clone(), clock);
    Env {
        server,
        sim,
        repo,
        scanner,
        discord,
        channel: ChannelId::new(channel.get()),
        author: demo.alice.get(),
    }
}

/// What a seeded history holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Expected {
    messages: i64,
    /// Messages with at least one clip.
    matched: i64,
    clips: i64,
}

impl std::ops::Add for Expected {
    type Output = Expected;
    fn add(self, o: Expected) -> Expected {
        Expected {
            messages: self.messages + o.messages,
            matched: self.matched + o.matched,
            clips: self.clips + o.clips,
        }
    }
}

/// `n` messages: every 7th has a video (every 21st two), every 5th an image, every
/// 11th an audio file, every 13th a `video.mp4.txt`; the rest text.
fn history(author: u64, n: usize, tag: &str) -> (Vec<SeedMessage>, Expected) {
    let mut expected = Expected {
        messages: n as i64,
        ..Expected::default()
    };
    let messages = (0..n)
        .map(|i| {
            let mut m = SeedMessage::new(author, format!("{tag} message {i}"));
            let mut videos = 0;
            if i % 7 == 0 {
                m = m.attachment(AttachmentSpec::sized(
                    format!("{tag}-{i}.mp4"),
                    "video/mp4",
                    5_000_000,
                ));
                videos += 1;
                if i % 21 == 0 {
                    m = m.attachment(AttachmentSpec::sized(
                        format!("{tag}-{i}.MOV"),
                        "video/quicktime",
                        9_000,
                    ));
                    videos += 1;
                }
            }
            if i % 5 == 0 {
                m = m.attachment(AttachmentSpec::sized(
                    format!("{tag}-{i}.png"),
                    "image/png",
                    100,
                ));
            }
            if i % 11 == 0 {
                m = m.attachment(AttachmentSpec::sized(
                    format!("{tag}-{i}.webm"),
                    "audio/webm",
                    100,
                ));
            }
            if i % 13 == 0 {
                m = m.attachment(AttachmentSpec::sized("video.mp4.txt", "text/plain", 10));
            }
            if videos > 0 {
                expected.matched += 1;
                expected.clips += videos;
            }
            m
        })
        .collect();
    (messages, expected)
}

impl Env {
    fn seed(&self, n: usize, tag: &str) -> (Vec<u64>, Expected) {
        let (messages, expected) = history(self.author, n, tag);
        let ids = self
            .sim
            .seed_history(self.channel.get(), messages)
            .expect("seed history");
        (ids.into_iter().map(|id| id.get()).collect(), expected)
    }

    async fn request(&self, mode: ScanMode) -> Requested {
        self.scanner
            .request(self.channel, mode)
            .await
            .expect("request")
    }

    async fn run_to_end(&self, requested: &Requested) -> clips::repo::ScanRun {
        self.scanner
            .run(requested.run().id, &|_| {}, CancellationToken::new())
            .await
            .expect("run")
    }

    /// Runs the scan `id` on a task of its own (aborting the task kills the worker).
    fn run_in_background(
        &self,
        id: ScanRunId,
    ) -> tokio::task::JoinHandle<Result<ScanRun, ScanError>> {
        let scanner = self.scanner.clone();
        tokio::spawn(async move { scanner.run(id, &|_| {}, CancellationToken::new()).await })
    }

    /// Waits until the run `id` has read `messages`.
    async fn scanned_at_least(&self, what: &str, id: ScanRunId, messages: i64) {
        eventually(what, || async {
            let run = self.repo.run(id).await.unwrap().unwrap();
            (run.messages_scanned >= messages).then_some(())
        })
        .await;
    }

    /// Runs the abandoned run `id` to its end, once the dead worker's connection (and
    /// its lock) are gone.
    async fn continue_abandoned(&self, what: &str, id: ScanRunId) -> ScanRun {
        eventually(what, || async {
            match self
                .scanner
                .run(id, &|_| {}, CancellationToken::new())
                .await
            {
                Err(ScanError::Busy) => None,
                other => Some(other.unwrap()),
            }
        })
        .await
    }

    async fn clips(&self) -> i64 {
        self.repo.clips_in_channel(self.channel).await.unwrap()
    }

    async fn stored(&self) -> clips::repo::StoredChannel {
        self.repo
            .channel(self.channel)
            .await
            .unwrap()
            .expect("channel row")
    }

    /// The history requests discord-sim answered for the channel, by status.
    fn history_requests(&self) -> Vec<u16> {
        let path = format!("/api/v10/channels/{}/messages", self.channel);
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .map(|r| r.status)
            .collect()
    }

    fn slow_history(&self, delay: Duration) {
        self.sim.inject_fault(
            RouteMatch::new("GET", format!("/channels/{}/messages", self.channel)),
            Fault::Delay(delay),
            10_000,
        );
    }

    /// Exact counters of a finished whole scan of `expected`.
    async fn assert_indexed(&self, run: &clips::repo::ScanRun, expected: Expected) {
        assert_eq!(run.status, ScanStatus::Succeeded, "{run:?}");
        assert_eq!(run.messages_scanned, expected.messages, "messages_scanned");
        assert_eq!(run.messages_matched, expected.matched, "messages_matched");
        assert_eq!(self.clips().await, expected.clips, "clips in the channel");
    }
}

#[tokio::test]
async fn a_deep_scan_indexes_exactly_the_videos_of_a_channel_registered_from_discord() {
    let env = env().await;
    let (ids, expected) = env.seed(350, "a");
    assert_eq!(expected.clips, 50 + 17);

    let requested = env.request(ScanMode::Deep).await;
    assert!(matches!(requested, Requested::Queued(_)), "{requested:?}");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let run = env
        .scanner
        .run(
            requested.run().id,
            &move |r| log.lock().unwrap().push(r.messages_scanned),
            CancellationToken::new(),
        )
        .await
        .unwrap();

    env.assert_indexed(&run, expected).await;
    assert!(run.started_at.is_some() && run.finished_at.is_some());
    let channel = env.stored().await;
    assert_eq!(channel.info.name.as_deref(), Some("clips"));
    assert_eq!(channel.info.kind.as_deref(), Some("text"));
    assert_eq!(channel.message_count, 350);
    assert_eq!(
        channel.last_message_id,
        Some(MessageId::new(*ids.last().unwrap()))
    );
    assert!(channel.last_activity_at.is_some());
    assert_scanned_during(&run, &channel);
    assert!(
        env.repo.guild(channel.info.guild).await.unwrap().is_some(),
        "the guild is registered too"
    );
    // 100 messages a request: 100, 100, 100, 50.
    assert_eq!(env.history_requests(), [200, 200, 200, 200]);
    assert_eq!(
        *seen.lock().unwrap(),
        [0, 100, 200, 300, 350, 350],
        "progress after every page"
    );
    assert_eq!(env.scanner.latest(env.channel).await.unwrap().unwrap(), run);

    // A video of the first message, in full.
    let first = env
        .repo
        .message_clip_ids(env.channel, MessageId::new(ids[0]))
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "message 0 has an mp4 and a MOV");
}

#[tokio::test]
async fn a_quick_scan_catches_up_with_only_the_new_messages() {
    let env = env().await;
    // Never scanned: a quick scan is a deep one.
    let (_, first) = env.seed(230, "a");
    let run = env.run_to_end(&env.request(ScanMode::Quick).await).await;
    env.assert_indexed(&run, first).await;
    assert_scanned_during(&run, &env.stored().await);

    let (ids, second) = env.seed(120, "b");
    env.sim.clear_requests();
    let requested = env.request(ScanMode::Quick).await;
    assert!(
        requested.run().window.after().is_some(),
        "forward from last_message_id"
    );
    let run = env.run_to_end(&requested).await;

    assert_eq!(run.status, ScanStatus::Succeeded);
    assert_eq!(run.messages_scanned, second.messages);
    assert_eq!(run.messages_matched, second.matched);
    assert_eq!(env.clips().await, first.clips + second.clips);
    let channel = env.stored().await;
    assert_eq!(channel.message_count, 350);
    assert_eq!(
        channel.last_message_id,
        Some(MessageId::new(*ids.last().unwrap()))
    );
    assert_scanned_during(&run, &channel);
    assert_eq!(
        env.history_requests().len(),
        2,
        "120 new messages: two pages"
    );

    // Nothing new: one request, nothing counted, and still a scan: its time moves.
    let before = channel.last_scanned_at.unwrap();
    let run = env.run_to_end(&env.request(ScanMode::Quick).await).await;
    assert_eq!(
        (run.status, run.messages_scanned),
        (ScanStatus::Succeeded, 0)
    );
    let channel = env.stored().await;
    assert_eq!(channel.message_count, 350);
    assert_scanned_during(&run, &channel);
    assert!(
        channel.last_scanned_at.unwrap() > before,
        "a catch-up with nothing new moves last_scanned_at: {before} -> {:?}",
        channel.last_scanned_at
    );
}

#[tokio::test]
async fn a_quick_scan_reads_the_whole_history_until_a_scan_read_it_to_its_start() {
    let env = env().await;
    env.scanner.ensure_channel(env.channel).await.unwrap();
    env.repo.set_reading(env.channel, true).await.unwrap();
    let (_, old) = env.seed(150, "a");
    // A message seen live (as the gateway hands it over) moves last_message_id.
    let env = &env;
    let live = |tag: &'static str| async move {
        // (Its videos are left to the scans: the index holds what they find.)
        let (ids, expected) = env.seed(1, tag);
        let id = MessageId::new(ids[0]);
        env.repo
            .index_live_message(env.channel, id, chrono::Utc::now(), &[])
            .await
            .unwrap();
        (id, expected)
    };
    let (seen, seen_holds) = live("live").await;
    let old = old + seen_holds;
    assert_eq!(env.stored().await.last_message_id, Some(seen));

    // The catch-up after an outage goes forward from it, and reads nothing older.
    let catch_up = env.run_to_end(&env.request(ScanMode::CatchUp).await).await;
    assert_eq!(catch_up.window.after(), Some(seen));
    assert_eq!(
        (catch_up.status, catch_up.messages_scanned),
        (ScanStatus::Succeeded, 0)
    );

    // So a quick scan still reads the whole history; a canceled one does not count.
    let quick = env.request(ScanMode::Quick).await.into_run();
    assert_eq!(quick.window, clips::ScanWindow::deep(None), "{quick:?}");
    env.scanner.cancel(env.channel).await.unwrap();
    let quick = env.request(ScanMode::Quick).await;
    assert_eq!(quick.run().window, clips::ScanWindow::deep(None));
    let run = env.run_to_end(&quick).await;
    env.assert_indexed(&run, old).await;

    // Read to its start: now a quick scan reads only what is new.
    let (_, new) = env.seed(30, "b");
    let quick = env.request(ScanMode::Quick).await;
    assert_eq!(quick.run().window.after(), Some(seen));
    let run = env.run_to_end(&quick).await;
    assert_eq!(run.messages_scanned, new.messages);
    assert_eq!(env.clips().await, old.clips + new.clips);

    // A purge forgets that the history was read, even once a live message came.
    let purged = env.repo.purge_channel_index(env.channel).await.unwrap();
    assert_eq!(purged.clips as i64, old.clips + new.clips);
    assert!(
        env.scanner.latest(env.channel).await.unwrap().is_none(),
        "its runs went with it"
    );
    let (_, last) = live("after the purge").await;
    let quick = env.request(ScanMode::Quick).await;
    assert_eq!(quick.run().window, clips::ScanWindow::deep(None));
    let run = env.run_to_end(&quick).await;
    env.assert_indexed(&run, old + new + last).await;
}

/// The channel's `last_scanned_at` is the time of `run`'s last page: after the run
/// started and no later than it finished (all three by the database's clock).
fn assert_scanned_during(run: &clips::repo::ScanRun, channel: &clips::repo::StoredChannel) {
    let (started, finished) = (run.started_at.unwrap(), run.finished_at.unwrap());
    let scanned = channel
        .last_scanned_at
        .expect("a scanned channel has last_scanned_at");
    assert!(
        started <= scanned && scanned <= finished,
        "last_scanned_at {scanned} is within run {} ({started} .. {finished})",
        run.id
    );
}

#[tokio::test]
async fn a_scan_killed_mid_way_resumes_with_no_clip_lost_and_none_twice() {
    let env = env().await;
    let (_, expected) = env.seed(800, "k");
    env.slow_history(Duration::from_millis(150));
    let requested = env.request(ScanMode::Deep).await;
    let id = requested.run().id;

    let task = env.run_in_background(id);
    env.scanned_at_least("the scan makes progress", id, 300)
        .await;
    task.abort();
    let _ = task.await;
    env.sim.clear_faults();

    let killed = env.repo.run(id).await.unwrap().unwrap();
    assert_eq!(killed.status, ScanStatus::Running, "killed, not finished");
    assert!(killed.messages_scanned < 800);
    // Whatever the kill interrupted, the row and the index agree.
    assert_eq!(env.stored().await.message_count, killed.messages_scanned);

    // A new request hands back the abandoned run, and running it continues it (once the
    // dead worker's connection, and its lock, are gone).
    let again = env.request(ScanMode::Deep).await;
    assert!(
        matches!(&again, Requested::Existing(run) if run.id == id),
        "{again:?}"
    );
    let run = env
        .continue_abandoned("the abandoned run is continued", id)
        .await;

    env.assert_indexed(&run, expected).await;
    assert_eq!(env.stored().await.message_count, 800);
}

#[tokio::test]
async fn a_queued_then_abandoned_running_run_is_continued_not_restarted() {
    let env = env().await;
    let (_, expected) = env.seed(250, "r");
    let requested = env.request(ScanMode::Deep).await;
    let id = requested.run().id;
    // A worker started it and died before its first page.
    env.repo.start_run(id).await.unwrap();

    let again = env.request(ScanMode::Quick).await;
    assert!(
        matches!(&again, Requested::Existing(run) if run.id == id && run.status == ScanStatus::Running)
    );
    let run = env.run_to_end(&again).await;
    env.assert_indexed(&run, expected).await;
    assert_eq!(
        env.repo.runs(env.channel, 10).await.unwrap().len(),
        1,
        "no second run"
    );
}

#[tokio::test]
async fn a_canceled_scan_stops_at_its_next_page_and_counts_only_what_it_wrote() {
    let env = env().await;
    env.seed(900, "c");
    env.slow_history(Duration::from_millis(100));
    let id = env.request(ScanMode::Deep).await.run().id;
    let task = env.run_in_background(id);
    env.scanned_at_least("the scan makes progress", id, 200)
        .await;

    let canceled = env
        .scanner
        .cancel(env.channel)
        .await
        .unwrap()
        .expect("a run to cancel");
    assert_eq!(canceled.status, ScanStatus::Canceled);
    let ended = task.await.unwrap().unwrap();

    assert_eq!(ended.status, ScanStatus::Canceled);
    assert!(ended.messages_scanned < 900);
    assert_eq!(
        ended.messages_scanned, canceled.messages_scanned,
        "no page after the cancel"
    );
    assert_eq!(env.stored().await.message_count, ended.messages_scanned);
    assert_eq!(
        env.scanner.cancel(env.channel).await.unwrap(),
        None,
        "nothing left to cancel"
    );
    // A new request queues a new run.
    assert!(matches!(
        env.request(ScanMode::Deep).await,
        Requested::Queued(_)
    ));
}

#[tokio::test]
async fn a_429_mid_scan_is_waited_out_and_the_scan_completes_exactly() {
    let env = env().await;
    let (_, expected) = env.seed(500, "l");
    let id = env.request(ScanMode::Deep).await.run().id;
    let sim = &env.sim;
    let route = RouteMatch::new("GET", format!("/channels/{}/messages", env.channel));
    let injected = Mutex::new(false);
    let run = env
        .scanner
        .run(
            id,
            &|r| {
                let mut done = injected.lock().unwrap();
                if r.messages_scanned >= 200 && !*done {
                    sim.inject_fault(
                        route.clone(),
                        Fault::RateLimited {
                            retry_after_secs: 0.3,
                            global: false,
                        },
                        1,
                    );
                    *done = true;
                }
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();

    env.assert_indexed(&run, expected).await;
    let statuses = env.history_requests();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        6,
        "five full pages and an empty one"
    );
}

#[tokio::test]
async fn a_scan_at_discords_limit_sees_no_429_after_the_first_response_of_its_bucket() {
    let env = env_with(SimConfig {
        rate_limit_per_window: 3,
        rate_limit_window: Duration::from_millis(500),
        ..SimConfig::default()
    })
    .await;
    let (_, expected) = env.seed(1_000, "z");
    let run = env.run_to_end(&env.request(ScanMode::Deep).await).await;
    env.assert_indexed(&run, expected).await;
    let statuses = env.history_requests();
    // The first response teaches the bucket; nothing after it is refused.
    assert!(
        statuses.iter().skip(1).all(|s| *s == 200),
        "429s after the first response: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 11);
}

#[tokio::test]
async fn a_second_scanner_elsewhere_gets_busy_while_the_first_holds_the_channel() {
    let env = env().await;
    let (_, expected) = env.seed(400, "b");
    env.slow_history(Duration::from_millis(100));
    let id = env.request(ScanMode::Deep).await.run().id;
    let first = env.scanner.clone();
    let task = tokio::spawn(async move { first.run(id, &|_| {}, CancellationToken::new()).await });
    eventually("the first scan runs", || async {
        let run = env.repo.run(id).await.unwrap().unwrap();
        (run.messages_scanned > 0).then_some(())
    })
    .await;

    // Another process: its own pool, its own scanner.
    let other_pg = env.server.connect().await;
    let other = Scanner::new(
        Repo::new(&other_pg),
        env.discord.clone(),
        Arc::new(ManualClock::new(testkit::epoch())),
    );
    let busy = other.run(id, &|_| {}, CancellationToken::new()).await;
    assert!(matches!(busy, Err(ScanError::Busy)), "{busy:?}");
    assert!(matches!(
        other.request(env.channel, ScanMode::Deep).await.unwrap(),
        Requested::Existing(run) if run.id == id
    ));

    env.sim.clear_faults();
    let run = task.await.unwrap().unwrap();
    env.assert_indexed(&run, expected).await;
}

#[tokio::test]
async fn discord_refusing_the_channel_fails_the_run_with_a_reason() {
    let env = env().await;
    env.seed(150, "f");
    let id = env.request(ScanMode::Deep).await.run().id;
    env.sim.inject_fault(
        RouteMatch::new("GET", format!("/channels/{}/messages", env.channel)),
        Fault::Status(403),
        100,
    );
    let run = env
        .scanner
        .run(id, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(run.status, ScanStatus::Failed);
    let reason = run.error_message.unwrap();
    assert!(
        reason.contains("refused") && reason.contains("403"),
        "{reason}"
    );
    assert!(run.finished_at.is_some());
}

#[tokio::test]
async fn a_channel_unknown_to_discord_is_refused_and_an_nsfw_channel_yields_no_clips() {
    let env = env().await;
    let missing = ChannelId::new(4_242_424_242);
    let err = env
        .scanner
        .request(missing, ScanMode::Deep)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ScanError::UnknownChannel(c) if c == missing),
        "{err:?}"
    );
    let guild = env.sim.guilds()[0].id;
    let category = env
        .sim
        .create_channel(guild, "Stuff", ChannelKind::Category)
        .unwrap();
    let err = env
        .scanner
        .request(ChannelId::new(category.get()), ScanMode::Deep)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ScanError::NoMessages {
                kind: "category",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("holds no messages"), "{err}");

    // NSFW channel, settings not allowing it: messages counted, nothing indexed.
    let stored = env.scanner.ensure_channel(env.channel).await.unwrap();
    env.repo
        .upsert_channel(&ChannelInfo {
            is_nsfw: true,
            ..stored.info.clone()
        })
        .await
        .unwrap();
    let (_, expected) = env.seed(120, "n");
    let run = env.run_to_end(&env.request(ScanMode::Deep).await).await;
    assert_eq!((run.messages_scanned, run.messages_matched), (120, 0));
    assert_eq!(env.clips().await, 0);
    // Allowed: a rescan finds them, without indexing anything twice.
    env.repo
        .update_guild_settings(
            stored.info.guild,
            &clips::Settings::from_json(serde_json::json!({"scan_nsfw": true})).unwrap(),
        )
        .await
        .unwrap();
    let run = env.run_to_end(&env.request(ScanMode::Deep).await).await;
    env.assert_indexed(&run, expected).await;
    let run = env.run_to_end(&env.request(ScanMode::Deep).await).await;
    env.assert_indexed(&run, expected).await;
}

#[tokio::test]
async fn the_worker_runs_requested_scans_and_continues_abandoned_ones() {
    let env = env().await;
    let (_, expected) = env.seed(260, "w");
    // An abandoned run of another channel, known to Tavern only.
    let guild = env.stored_guild_after_request().await;
    let other = ChannelId::new(
        env.sim
            .create_channel(guild.get(), "more", ChannelKind::Text)
            .unwrap()
            .get(),
    );
    let (more, _) = history(env.author, 130, "m");
    env.sim.seed_history(other.get(), more).unwrap();
    let orphan = env
        .scanner
        .request(other, ScanMode::Deep)
        .await
        .unwrap()
        .into_run();
    env.repo.start_run(orphan.id).await.unwrap();

    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(services::work(
        env.scanner.clone(),
        WorkerConfig {
            concurrency: 2,
            poll_every: Duration::from_millis(200),
        },
        shutdown.clone(),
    ));
    let first = env.scanner.latest(env.channel).await.unwrap().unwrap();
    let done = eventually("the worker finishes both runs", || async {
        let a = env.repo.run(first.id).await.unwrap().unwrap();
        let b = env.repo.run(orphan.id).await.unwrap().unwrap();
        (a.status.is_final() && b.status.is_final()).then_some((a, b))
    })
    .await;
    env.assert_indexed(&done.0, expected).await;
    assert_eq!(done.1.status, ScanStatus::Succeeded);
    assert_eq!(done.1.messages_scanned, 130);

    // A request while the worker waits is picked up at once (it is woken).
    let (_, newer) = env.seed(40, "x");
    let next = env.request(ScanMode::Quick).await.into_run();
    let finished = eventually("the woken worker runs the new request", || async {
        let run = env.repo.run(next.id).await.unwrap().unwrap();
        run.status.is_final().then_some(run)
    })
    .await;
    assert_eq!(finished.messages_scanned, newer.messages);

    shutdown.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn a_worker_shut_down_mid_scan_leaves_the_run_running_for_the_next_one() {
    let env = env().await;
    let (_, expected) = env.seed(700, "s");
    env.slow_history(Duration::from_millis(100));
    let id = env.request(ScanMode::Deep).await.run().id;
    let config = WorkerConfig {
        concurrency: 1,
        poll_every: Duration::from_millis(200),
    };
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(services::work(
        env.scanner.clone(),
        config,
        shutdown.clone(),
    ));
    env.scanned_at_least("the worker scans", id, 200).await;
    shutdown.cancel();
    worker.await.unwrap();
    let stopped = env.repo.run(id).await.unwrap().unwrap();
    assert_eq!(
        stopped.status,
        ScanStatus::Running,
        "resumable, not finished"
    );
    assert!(stopped.messages_scanned < 700);
    assert_eq!(env.stored().await.message_count, stopped.messages_scanned);

    // The next worker (a restart) continues it.
    env.sim.clear_faults();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(services::work(
        env.scanner.clone(),
        config,
        shutdown.clone(),
    ));
    let done = eventually("the next worker finishes the run", || async {
        let run = env.repo.run(id).await.unwrap().unwrap();
        run.status.is_final().then_some(run)
    })
    .await;
    env.assert_indexed(&done, expected).await;
    shutdown.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn guilds_and_channels_registered_by_hand_are_used_as_they_are() {
    let env = env().await;
    let guild = clips::domain::GuildId::new(77);
    env.repo
        .upsert_guild(&GuildInfo {
            id: guild,
            name: "g".into(),
            icon: None,
            owner: None,
        })
        .await
        .unwrap();
    let known = ChannelId::new(78);
    env.repo
        .upsert_channel(&ChannelInfo {
            id: known,
            guild,
            name: Some("kept".into()),
            kind: Some("text".into()),
            is_nsfw: false,
        })
        .await
        .unwrap();
    // No Discord call for a channel Tavern knows.
    let stored = env.scanner.ensure_channel(known).await.unwrap();
    assert_eq!(stored.info.name.as_deref(), Some("kept"));
    assert!(env.sim.requests().is_empty() || env.history_requests().is_empty());
    assert_eq!(env.repo.guild_channels(guild).await.unwrap().len(), 1);
}

impl Env {
    /// Queues (and leaves queued) the deep scan of the main channel; returns its guild.
    async fn stored_guild_after_request(&self) -> clips::domain::GuildId {
        self.request(ScanMode::Deep).await;
        self.stored().await.info.guild
    }
}

#[tokio::test]
async fn a_message_holding_nul_is_indexed_without_it_and_the_scan_goes_on() {
    let env = env().await;
    // PostgreSQL's text cannot hold a NUL; Discord's message text and file names can.
    let messages = vec![
        SeedMessage::new(env.author, "gg\0 wp").attachment(AttachmentSpec::sized(
            "ace\0.mp4",
            "video/mp4",
            1_000,
        )),
        SeedMessage::new(env.author, "after").attachment(AttachmentSpec::sized(
            "next.mp4",
            "video/mp4",
            1_000,
        )),
    ];
    env.sim
        .seed_history(env.channel.get(), messages)
        .expect("seed history");

    let run = env.run_to_end(&env.request(ScanMode::Deep).await).await;

    env.assert_indexed(
        &run,
        Expected {
            messages: 2,
            matched: 2,
            clips: 2,
        },
    )
    .await;
    let pg = env.server.connect().await;
    let stored: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT filename, message_text, url FROM clips.clips ORDER BY attachment_id::numeric",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    assert_eq!(stored[0].0, "ace.mp4");
    assert_eq!(stored[0].1, "gg wp");
    assert!(!stored[0].2.contains('\0'), "{:?}", stored[0].2);
    assert_eq!(
        (stored[1].0.as_str(), stored[1].1.as_str()),
        ("next.mp4", "after")
    );
}

#[tokio::test]
async fn a_deep_scan_split_into_parts_indexes_exactly_the_same() {
    let mut env = env().await;
    env.scanner = env.scanner.clone().with_parts(4);
    let (ids, expected) = env.seed(1_234, "p");
    let requested = env.request(ScanMode::Deep).await;
    let run = env.run_to_end(&requested).await;

    env.assert_indexed(&run, expected).await;
    let parts = env.repo.run_parts(run.id).await.unwrap();
    assert_eq!(parts.len(), 4);
    assert!(parts.iter().all(|p| p.done));
    let channel = env.stored().await;
    assert_eq!(channel.message_count, 1_234);
    assert_eq!(
        channel.last_message_id,
        Some(MessageId::new(*ids.last().unwrap()))
    );

    // A rescan: split again, nothing indexed twice.
    let run = env.run_to_end(&env.request(ScanMode::Deep).await).await;
    env.assert_indexed(&run, expected).await;
    assert_eq!(
        env.stored().await.message_count,
        2 * 1_234,
        "every message read counts"
    );
}

#[tokio::test]
async fn a_split_scan_killed_mid_way_resumes_its_parts_with_no_clip_lost_or_twice() {
    let mut env = env().await;
    env.scanner = env.scanner.clone().with_parts(3);
    let (_, expected) = env.seed(1_500, "q");
    env.slow_history(Duration::from_millis(100));
    let id = env.request(ScanMode::Deep).await.run().id;
    let task = env.run_in_background(id);
    env.scanned_at_least("the parts make progress", id, 500)
        .await;
    task.abort();
    let _ = task.await;
    env.sim.clear_faults();
    let killed = env.repo.run(id).await.unwrap().unwrap();
    assert!(killed.messages_scanned < 1_500, "{killed:?}");
    assert_eq!(env.repo.run_parts(id).await.unwrap().len(), 3);

    let run = env
        .continue_abandoned("the abandoned parts are continued", id)
        .await;
    env.assert_indexed(&run, expected).await;
    assert_eq!(env.stored().await.message_count, 1_500);
}

/// Not a test: a quick local measure of ingest speed (a deep scan of a long channel,
/// 5% of messages with a video, discord-sim's rate limits and the client's global limit
/// off). `cargo nextest run -p clips --test scan --run-ignored only ingest_speed`
/// (`--release` for figures worth quoting); `TAVERN_BENCH_MESSAGES` sets the size.
#[tokio::test]
#[ignore = "a measurement, not a test"]
async fn ingest_speed() {
    let n: usize = std::env::var("TAVERN_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut env = env_with(SimConfig {
        rate_limit_per_window: u32::MAX,
        request_log_capacity: 16,
        ..SimConfig::default()
    })
    .await;
    let mut rest = discord::BotConfig::stand_in(
        env.sim.token(),
        &env.sim.addr().to_string(),
        &env.sim.gateway_url(),
    )
    .rest;
    rest.global_rate_limit = u16::MAX;
    env.discord = discord::Discord::new(&rest);
    let parts: usize = std::env::var("TAVERN_BENCH_PARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    env.scanner = Scanner::new(
        env.repo.clone(),
        env.discord.clone(),
        Arc::new(ManualClock::new(testkit::epoch())),
    )
    .with_parts(parts);
    let messages = (0..n).map(|i| {
        let m = SeedMessage::new(env.author, format!("message {i}"));
        if i % 20 == 0 {
            m.attachment(AttachmentSpec::sized(
                format!("clip-{i}.mp4"),
                "video/mp4",
                8_000_000,
            ))
        } else {
            m
        }
    });
    env.sim.seed_history(env.channel.get(), messages).unwrap();
    let requested = env.request(ScanMode::Deep).await;
    let started = std::time::Instant::now();
    let run = env.run_to_end(&requested).await;
    let elapsed = started.elapsed();
    assert_eq!(run.messages_scanned, n as i64);
    assert_eq!(env.clips().await, n.div_ceil(20) as i64);
    println!(
        "ingest: {n} messages, {parts} part(s), in {:.2} s = {:.0} messages/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
