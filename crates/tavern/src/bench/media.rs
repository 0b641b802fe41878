//! `tavern bench media`: the media handler forwarding one publisher to N synthetic
//! subscribers over loopback. The handler runs on this process's main runtime, the
//! publisher and the subscribers (real WebTransport clients, [`MediaClient`]) on a
//! runtime of their own (two worker threads by default: the subscribers stand for as
//! many machines, and one thread would queue each frame's 100 reads behind each other
//! and count that as the handler's latency), so the handler's CPU time is told from
//! theirs. Connection tokens live in the Redis at `redis_url` and the handler registers
//! in the PostgreSQL at `database_url` (point both at scratch stores).
//!
//! The publisher sends 2.5 Mbit/s: 30 video frames a second of ~10 KB (a key frame
//! every 2 s) and 50 audio frames a second of 160 B. For each N (10, 100, 500 by
//! default), after a 1 s warm-up, for `seconds`: frames and bytes the subscribers
//! received per second, the handler's CPU (process CPU time from `/proc` minus the
//! clients' threads), bytes out per second per core of it, frames the handler skipped
//! for subscribers behind, and the added latency from the publisher's send to a
//! subscriber's receipt of its last byte (same process clock: the frame's timestamp is
//! the send time), p50 and p99. Printed next to the anchor (LiveKit: about 531 MB/s out on 16 cores,
//! ~33 MB/s per core) and the goal (at least that per core, p99 under 5 ms at N = 100),
//! with ratios. Nothing is asserted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use meetings::domain::{HandlerId, MeetingId, ParticipantId, ServiceConnection};
use meetings::media::client::MediaClient;
use meetings::media::proto::{
    FLAG_KEY, FRAME_HEADER_LEN, PUBLISHER_LEN, TRACK_AUDIO, TRACK_CAMERA,
};
use meetings::media::{HandlerConfig, MediaHandler};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    FAKES_THREAD, fakes_cpu, machine_cpu, percentile, print_stolen, process_cpu, stolen_share,
};

/// The size of `tavern bench media`.
#[derive(Debug, Clone)]
pub struct MediaLoad {
    /// The subscriber counts, one run each.
    pub subscribers: Vec<usize>,
    /// Seconds measured per run (after a 1 s warm-up).
    pub seconds: u64,
    /// The publisher's bitrate, bits per second (audio included).
    pub bitrate: u64,
    /// Worker threads of the clients' runtime.
    pub client_threads: usize,
}

impl Default for MediaLoad {
    /// N = 10, 100, 500; 10 s each; 2.5 Mbit/s; two client threads.
    fn default() -> MediaLoad {
        MediaLoad {
            subscribers: vec![10, 100, 500],
            seconds: 10,
            bitrate: 2_500_000,
            client_threads: 2,
        }
    }
}

/// LiveKit's forwarding per core: ~531 MB/s out on 16 cores.
const ANCHOR_BYTES_PER_CORE: f64 = 531.0e6 / 16.0;
/// The goal's p99 added latency at N = 100.
const GOAL_P99: Duration = Duration::from_millis(5);
/// Video frames per second, and a key frame every this many.
const VIDEO_FPS: u64 = 30;
const KEY_EVERY: u64 = 60;
/// Audio frames per second, of this many bytes.
const AUDIO_FPS: u64 = 50;
const AUDIO_BYTES: usize = 160;
/// Warm-up before measuring.
const WARM_UP: Duration = Duration::from_secs(1);
/// Sessions opened at once.
const CONNECT_CONCURRENCY: usize = 50;

/// What the subscribers counted while measuring.
#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
}

/// Runs `load` against a media handler of its own on the given stores.
pub async fn run(redis_url: &str, database_url: &str, load: MediaLoad) -> anyhow::Result<()> {
    let redis = store::Redis::connect(redis_url)
        .await
        .with_context(|| format!("connecting to {}", store::redact_url(redis_url)))?;
    let pg = store::Postgres::connect(database_url)
        .await
        .with_context(|| format!("connecting to {}", store::redact_url(database_url)))?;
    pg.migrate(&meetings::MIGRATIONS)
        .await
        .context("migrating the meetings schema")?;
    let repo = meetings::Repo::new(redis, pg, Arc::new(feature::SystemClock));

    let handler_id = HandlerId::parse(&format!("mh-bench-{}", std::process::id()))
        .context("the bench's handler id")?;
    let mut config = HandlerConfig::new(handler_id);
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let handler = MediaHandler::bind(repo.clone(), config)
        .await
        .context("binding the media handler")?;
    let url_base = handler.endpoint();
    let hash = handler.certificate_hash().to_owned();
    let served = handler.load();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(handler.run(shutdown.clone()));

    let fakes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(load.client_threads.max(1))
        .thread_name(FAKES_THREAD)
        .enable_all()
        .build()
        .context("starting the clients' runtime")?;

    println!(
        "tavern bench media: 1 publisher at {:.1} Mbit/s ({VIDEO_FPS} video frames/s, key every \
         {} s; {AUDIO_FPS} audio frames/s of {AUDIO_BYTES} B), {} s per run, over loopback",
        load.bitrate as f64 / 1e6,
        KEY_EVERY / VIDEO_FPS,
        load.seconds
    );
    println!(
        "  anchor: LiveKit ~{:.0} MB/s out per core; goal: >= that per core, p99 added latency < {} ms at N = 100",
        ANCHOR_BYTES_PER_CORE / 1e6,
        GOAL_P99.as_millis()
    );
    let mut result = Ok(());
    for &n in &load.subscribers {
        let one = Run {
            repo: &repo,
            fakes: &fakes,
            url_base: &url_base,
            hash: &hash,
            served: &served,
            load: &load,
        };
        if let Err(error) = one.measure(n.max(1)).await {
            result = Err(error);
            break;
        }
    }
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => eprintln!("tavern: the bench's media handler failed: {error}"),
        Ok(Err(error)) => eprintln!("tavern: the bench's media handler panicked: {error}"),
        Err(_) => eprintln!("tavern: the bench's media handler did not stop in time"),
    }
    fakes.shutdown_background();
    result
}

/// One run's fixed inputs.
struct Run<'a> {
    repo: &'a meetings::Repo,
    fakes: &'a tokio::runtime::Runtime,
    url_base: &'a str,
    hash: &'a str,
    served: &'a meetings::media::Load,
    load: &'a MediaLoad,
}

impl Run<'_> {
    /// One-time media tokens for `n` clients of `meeting`, each under a fresh id:
    /// `recorder` tokens, as the bench's clients are the server's own (its meeting has
    /// no participants, and a participant's `media` token opens nothing without one).
    async fn tokens(&self, meeting: MeetingId, n: usize) -> anyhow::Result<Vec<String>> {
        let mut tokens = Vec::with_capacity(n);
        for _ in 0..n {
            let token = self
                .repo
                .issue_service_token(
                    meeting,
                    ParticipantId::random(),
                    ServiceConnection::Recorder,
                )
                .await
                .context("issuing a media token")?;
            tokens.push(token.expose().to_owned());
        }
        Ok(tokens)
    }

    async fn measure(&self, n: usize) -> anyhow::Result<()> {
        let meeting = MeetingId::random();
        let url = format!("{}/media/{meeting}", self.url_base);
        let mut tokens = self.tokens(meeting, n + 1).await?;
        let publisher_token = tokens.pop().context("a publisher token")?;

        // Connect the subscribers, then the publisher, on the clients' runtime.
        let subscribers = {
            let (url, hash) = (url.clone(), self.hash.to_owned());
            self.fakes
                .spawn(async move {
                    let mut clients = Vec::with_capacity(tokens.len());
                    for chunk in tokens.chunks(CONNECT_CONCURRENCY) {
                        let mut opening = JoinSet::new();
                        for token in chunk {
                            let (url, hash, token) = (url.clone(), hash.clone(), token.clone());
                            opening.spawn(async move {
                                MediaClient::connect(&url, &token, Some(&hash)).await
                            });
                        }
                        while let Some(client) = opening.join_next().await {
                            clients.push(client??);
                        }
                    }
                    anyhow::Ok(clients)
                })
                .await
                .context("the clients' runtime")??
        };
        let publisher = {
            let (url, hash) = (url.clone(), self.hash.to_owned());
            self.fakes
                .spawn(
                    async move { MediaClient::connect(&url, &publisher_token, Some(&hash)).await },
                )
                .await
                .context("the clients' runtime")??
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.served.participants() < n + 1 {
            if Instant::now() > deadline {
                bail!("the media sessions did not all open within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let epoch = Instant::now();
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let counters = Arc::new(Counters::default());
        let mut receivers = Vec::with_capacity(n);
        for mut client in subscribers {
            let (measuring, stop, counters) = (measuring.clone(), stop.clone(), counters.clone());
            receivers.push(self.fakes.spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let frame = tokio::select! {
                        () = stop.cancelled() => break,
                        frame = client.next_frame() => frame,
                    };
                    let Some(Ok(frame)) = frame else { break };
                    if !measuring.load(Ordering::Relaxed) {
                        continue;
                    }
                    let received = frame.received_at.saturating_duration_since(epoch);
                    let received = u64::try_from(received.as_micros()).unwrap_or(u64::MAX);
                    latencies.push(Duration::from_micros(
                        received.saturating_sub(frame.header.timestamp),
                    ));
                    counters.frames.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(
                        (PUBLISHER_LEN + FRAME_HEADER_LEN + frame.payload.len()) as u64,
                        Ordering::Relaxed,
                    );
                }
                client.close();
                latencies
            }));
        }
        let sent = Arc::new(AtomicU64::new(0));
        let sender = {
            let (measuring, stop, sent) = (measuring.clone(), stop.clone(), sent.clone());
            let video_bytes = usize::try_from(
                (self.load.bitrate / 8).saturating_sub(AUDIO_FPS * AUDIO_BYTES as u64) / VIDEO_FPS,
            )
            .unwrap_or(10_000)
            .max(1);
            self.fakes.spawn(publish(
                publisher,
                epoch,
                video_bytes,
                measuring,
                stop,
                sent,
            ))
        };

        tokio::time::sleep(WARM_UP).await;
        let stolen_before = machine_cpu();
        let (cpu0, fakes0) = (process_cpu(), fakes_cpu());
        let started = Instant::now();
        measuring.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(self.load.seconds.max(1))).await;
        measuring.store(false, Ordering::Relaxed);
        let wall = started.elapsed().as_secs_f64();
        let (cpu1, fakes1) = (process_cpu(), fakes_cpu());
        let stolen = stolen_share(stolen_before);
        stop.cancel();
        let _ = sender.await;
        let mut latencies = Vec::new();
        for receiver in receivers {
            if let Ok(mut got) = receiver.await {
                latencies.append(&mut got);
            }
        }
        latencies.sort_unstable();

        let frames = counters.frames.load(Ordering::Relaxed) as f64;
        let bytes = counters.bytes.load(Ordering::Relaxed) as f64;
        let sent = sent.load(Ordering::Relaxed);
        let expected = sent * n as u64;
        let handler_cpu = match (cpu0, cpu1, fakes0, fakes1) {
            (Some(c0), Some(c1), Some(f0), Some(f1)) => {
                let all = c1.saturating_sub(c0).as_secs_f64();
                let fakes = f1.saturating_sub(f0).as_secs_f64();
                Some((all - fakes).max(0.0))
            }
            _ => None,
        };
        let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
        println!("\nN = {n} subscribers");
        println!(
            "  out: {:.0} frames/s, {:.1} MB/s ({} frames sent, {} of {} forwarded frames received)",
            frames / wall,
            bytes / wall / 1e6,
            sent,
            frames as u64,
            expected
        );
        match handler_cpu {
            Some(cpu) if cpu > 0.0 => {
                let cores = cpu / wall;
                let per_core = bytes / wall / cores;
                println!(
                    "  handler CPU {cores:.2} cores: {:.0} frames/s and {:.1} MB/s out per core \
                     (anchor {:.0} MB/s; ratio {:.2})",
                    frames / wall / cores,
                    per_core / 1e6,
                    ANCHOR_BYTES_PER_CORE / 1e6,
                    per_core / ANCHOR_BYTES_PER_CORE
                );
            }
            _ => println!("  handler CPU: not measurable here (no /proc, or no CPU time used)"),
        }
        let goal = if n == 100 {
            " (goal < 5 ms"
        } else {
            " (goal at N = 100: < 5 ms"
        };
        println!(
            "  added latency p50 {:.2} ms, p99 {:.2} ms{goal}; ratio {:.2})",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            p99.as_secs_f64() / GOAL_P99.as_secs_f64()
        );
        println!(
            "  the clients' own CPU: {:.2} cores (they share this machine with the handler)",
            match (fakes0, fakes1) {
                (Some(f0), Some(f1)) => f1.saturating_sub(f0).as_secs_f64() / wall,
                _ => 0.0,
            }
        );
        print_stolen(stolen);

        let deadline = Instant::now() + Duration::from_secs(30);
        while self.served.participants() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

/// Publishes at the configured rate until `stop`: audio every 20 ms, video every
/// 1/30 s (a key frame every 2 s), each frame's timestamp the send time in µs since
/// `epoch`. Counts the frames sent while `measuring`.
async fn publish(
    publisher: MediaClient,
    epoch: Instant,
    video_bytes: usize,
    measuring: Arc<AtomicBool>,
    stop: CancellationToken,
    sent: Arc<AtomicU64>,
) {
    let video = vec![0x5a; video_bytes];
    let audio = vec![0xa5; AUDIO_BYTES];
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut video_seq, mut audio_seq) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let elapsed = start.elapsed().as_micros() as u64;
        let mut due = Vec::new();
        if audio_seq * 1_000_000 / AUDIO_FPS <= elapsed {
            due.push((TRACK_AUDIO, FLAG_KEY, audio_seq, &audio));
            audio_seq += 1;
        }
        if video_seq * 1_000_000 / VIDEO_FPS <= elapsed {
            let flags = if video_seq % KEY_EVERY == 0 {
                FLAG_KEY
            } else {
                0
            };
            due.push((TRACK_CAMERA, flags, video_seq, &video));
            video_seq += 1;
        }
        for (track, flags, seq, payload) in due {
            let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
            let seq = u32::try_from(seq % (1 << 32)).unwrap_or(0);
            if publisher
                .send_frame(track, flags, now, seq, payload)
                .await
                .is_err()
            {
                return;
            }
            if measuring.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    publisher.close();
}
