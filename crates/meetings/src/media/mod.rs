//! The media handler: a selective forwarding unit over WebTransport (issue 14, point 1).
//!
//! A [`MediaHandler`] binds a UDP port with a TLS identity (like the meeting controller:
//! a self-signed ECDSA certificate valid 14 days unless PEM files are configured,
//! renewed every 7 days; its SHA-256 is what the media grant hands out), registers in
//! `media_handlers`, heartbeats its real load (the tracks its participants publish, and
//! the Mbit/s it receives and sends) and serves sessions until shut down. [`proto`] is
//! the wire contract:
//!
//! - A session request must be `/media/{meeting_id}?wt_token={token}`; the one-time
//!   token must grant a `media` or `recorder` connection to that meeting (403
//!   otherwise, 404 for another path). A `media` token is a participant's: it admits
//!   only while its participant is in the meeting (403 if it never joined, its join was
//!   undone, or it left or was dropped). A `recorder` token is a client of the server's
//!   own (the recorder, `tavern bench media`) under an id that never joins: only
//!   server-side code issues one, it is admitted without looking at the meeting, and
//!   the meeting controller refuses it. A participant's session is closed
//!   (`left: ...`) within `presence_every` (5 s) of its leaving or being dropped: every
//!   served meeting's participants are read at once for that. A participant's new
//!   session replaces its earlier one, which is closed (`replaced: ...`); the new one
//!   takes over its streams and subscriptions.
//! - The client opens one bidirectional control stream first; a malformed control
//!   message closes that session only.
//! - Each encoded frame arrives on its own unidirectional stream and is forwarded,
//!   without being decoded, to every other participant of the same meeting on this
//!   handler, on a stream per (publisher, track, layer) that starts with the publisher's
//!   id (16 raw UUID bytes) and carries its frames unchanged, each behind its length; a
//!   video key frame starts a new one (`forwarded.rs`). A frame over 1 MiB or with a bad
//!   header closes the publisher's session, and so do more than `max_unfinished_bytes`
//!   (16 MiB) held in its frames not yet whole; a frame not whole within
//!   `frame_timeout` (10 s) is dropped and its stream stopped. `SetLayer` naming a
//!   publisher not in the meeting here is kept for 16 such publishers at most.
//! - Every subscriber has its own bounded queue and writer task, so a slow one never
//!   delays the others: a frame that does not fit its queue starts dropping that
//!   (publisher, track) for that subscriber until the publisher's next key frame, and the
//!   publisher is sent a `KeyframeRequest`. A subscriber whose queue is still full at
//!   that key frame waits for the next one without asking again, and one still full at
//!   3 key frames of a video in a row (and behind for `stalled_after`, 10 s) is moved to
//!   a lower layer of it, or closed (`behind: ...`) when there is none (participants
//!   only: the server's own clients, such as the recorder, keep their layer and
//!   session): one stuck viewer
//!   never makes a publisher send only key frames. A participant joining late gets a
//!   `KeyframeRequest` sent to every publisher on its behalf (and its video starts at the
//!   next key frame).
//! - A publisher is sent at most one `KeyframeRequest` per (track, layer) every
//!   `keyframe_request_every` (500 ms), whoever asks (subscribers' `RequestKeyframe`,
//!   joins, layer changes, relays); one asked for sooner is held back until then, and
//!   dropped when a key frame of that layer comes first.
//!
//! - One meeting may be spread over several handlers: each keeps its place in the
//!   meeting's `tavern:meetings:meeting:{meeting_id}:media_handlers` set while it has
//!   participants of it, and each pair of them relays the meeting over one
//!   authenticated session (a one-time `relay` connection token), frames under their
//!   original publisher's id, key frame requests and departures across, never a frame
//!   relayed twice (`relay.rs`, and the wire in [`proto`]).
//! - `stream:{stream_id}` and `participant:{participant_id}:subscriptions` are kept
//!   current off the frame path: one stream per (publisher, track), its id derived from
//!   the two ([`track_stream_id`]), registered at the track's first frame; a subscriber
//!   is subscribed at its first frame of it and unsubscribed when it leaves, when the
//!   publisher leaves (on either handler) or when the relay it came through closes
//!   (`bookkeeping.rs`).
//! - It registers its certificate hash with its endpoint (`media_handlers.metadata`
//!   `certificate_hash`), so a meeting controller in another process grants it too
//!   (`tavern media-handler` runs one as its own process).
//! - Simulcast: a publisher may send a video track as several layers (the header's
//!   `layer` byte, 0..=7); each participant receives one layer per (publisher, track),
//!   the highest sent unless it chose another with `SetLayer`, changing only at a key
//!   frame of the new one (the publisher is sent a `KeyframeRequest` naming that
//!   layer); relays carry every layer.
//!
//! [`client::MediaClient`] is the other end (tests and the benchmark).

mod bookkeeping;
pub mod client;
mod forwarded;
pub mod proto;
mod relay;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[cfg(doc)]
use crate::controller::MediaHandlers;
use crate::controller::{MediaDirectory, MediaHandlerAddress};
use crate::domain::{HandlerId, HealthStatus, Region};
use crate::repo::{HandlerHeartbeat, HandlerRegistration};
use crate::server::{self, Beating, Listener, Registrant};
use crate::{MeetingsError, Repo};

pub use self::bookkeeping::track_stream_id;
use self::session::Rooms;

/// Settings of one media handler.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    /// Its id in `media_handlers` (stable across restarts of the same instance).
    pub handler_id: HandlerId,
    /// The UDP address it listens on (port 0: any free port).
    pub listen: SocketAddr,
    /// The host name (or address) clients reach it by, in its registered endpoint.
    pub public_host: String,
    /// The region it registers in.
    pub region: Region,
    /// Streams (published tracks) it takes at most, as registered for assignment.
    pub max_streams: i32,
    /// Mbit/s (in and out) it takes at most, as registered for assignment.
    pub max_bitrate_mbps: i32,
    /// How often it reports its load to the registry (the registry's liveness is 30 s).
    pub heartbeat_every: Duration,
    /// Frames waiting for one subscriber before it counts as behind.
    pub subscriber_queue: usize,
    /// The shortest time between two key frame requests put to a publisher for the
    /// same (track, layer); one asked for sooner is held back and put to it once this
    /// has passed, unless a key frame of that layer came meanwhile.
    pub keyframe_request_every: Duration,
    /// How long a subscriber may stay behind on a publisher's video before it is dealt
    /// with, once its queue was also still full at 3 of that video's key frames in a
    /// row: moved to a lower layer when one is sent, else its session closed.
    pub stalled_after: Duration,
    /// How often the participants with a media session here are looked for in their
    /// meetings; the sessions of those who left are closed.
    pub presence_every: Duration,
    /// How long a published frame may take to arrive whole; a later one is dropped
    /// (its stream stopped).
    pub frame_timeout: Duration,
    /// The most bytes one session may hold in published frames not yet whole; more
    /// closes it (`too_much_unfinished`).
    pub max_unfinished_bytes: usize,
    /// How long a session may take to open its control stream.
    pub open_timeout: Duration,
    /// A PEM certificate chain and key; `None`: a self-signed certificate valid 14 days
    /// (renewed every `certificate_renew_every`), its hash handed out in media grants.
    pub certificate: Option<(PathBuf, PathBuf)>,
    /// Where it announces its endpoint and certificate hash once registered (the
    /// in-process meeting controller's [`MediaHandlers::directory`]); `None`: nowhere.
    pub directory: Option<MediaDirectory>,
    /// How often it refreshes its place among each served meeting's handlers and looks
    /// for handlers to relay to (also at once whenever a participant comes or goes).
    pub relay_every: Duration,
    /// How often a self-signed certificate is replaced by a fresh one (its hash
    /// registered and announced for the grants made after); a configured certificate
    /// is kept.
    pub certificate_renew_every: Duration,
}

impl HandlerConfig {
    /// The defaults for handler `handler_id`: listens on `127.0.0.1:4434`, reached as
    /// `127.0.0.1`, region `local`, 1,000 streams and 1,000 Mbit/s, heartbeats every
    /// 10 s, 64 frames queued per subscriber, a key frame asked of a publisher at most
    /// every 500 ms per (track, layer), a subscriber behind dealt with after 10 s (and 3
    /// key frames), who is still in the meetings looked at every 5 s, 10 s for a
    /// published frame to arrive whole and 16 MiB held in frames not yet whole per
    /// session, 10 s to open the control stream, a self-signed certificate, announced
    /// nowhere, relays looked for every 2 s.
    pub fn new(handler_id: HandlerId) -> HandlerConfig {
        HandlerConfig {
            handler_id,
            listen: SocketAddr::from(([127, 0, 0, 1], 4434)),
            public_host: "127.0.0.1".to_owned(),
            region: Region::local(),
            max_streams: 1000,
            max_bitrate_mbps: 1000,
            heartbeat_every: Duration::from_secs(10),
            subscriber_queue: 64,
            keyframe_request_every: Duration::from_millis(500),
            stalled_after: Duration::from_secs(10),
            presence_every: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(10),
            max_unfinished_bytes: 16 * 1024 * 1024,
            open_timeout: Duration::from_secs(10),
            certificate: None,
            directory: None,
            relay_every: Duration::from_secs(2),
            certificate_renew_every: crate::wt::CERTIFICATE_RENEW_EVERY,
        }
    }
}

/// Why the media handler could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Listen(#[from] crate::wt::ListenError),
    #[error("could not register the media handler: {0}")]
    Register(#[source] MeetingsError),
}

/// What every session of a handler shares.
pub(crate) struct Shared {
    repo: Repo,
    config: HandlerConfig,
    rooms: Rooms,
    /// Media bytes received and sent since the last heartbeat.
    meter: Meter,
    /// Cancelled when the handler shuts down: every session closes.
    stop: CancellationToken,
    /// Woken when a participant comes or goes: the relays may have to change.
    relay_wake: tokio::sync::Notify,
    /// Whether heartbeats are failing, so an outage is logged once.
    heartbeats: feature::FailureStreak,
}

/// The media bytes a handler receives and sends, read as a bitrate at each heartbeat:
/// over the time since the reading before (or since the meter was made), whichever
/// heartbeat reads it.
struct Meter {
    bytes: AtomicU64,
    since: std::sync::Mutex<Instant>,
}

impl Meter {
    fn new(now: Instant) -> Meter {
        Meter {
            bytes: AtomicU64::new(0),
            since: std::sync::Mutex::new(now),
        }
    }

    fn count(&self, n: usize) {
        self.bytes
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Mbit/s of the bytes counted since the last reading, over the time since then;
    /// the next reading starts at `now`.
    fn read(&self, now: Instant) -> i32 {
        let since = std::mem::replace(
            &mut *self
                .since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            now,
        );
        let bytes = self.bytes.swap(0, Ordering::Relaxed);
        mbps(bytes, now.saturating_duration_since(since))
    }
}

/// What a handler is serving right now (for tests and operators).
#[derive(Clone)]
pub struct Load {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("participants", &self.participants())
            .field("streams", &self.streams())
            .finish()
    }
}

impl Load {
    /// Participants with an open media session, over all meetings.
    pub fn participants(&self) -> usize {
        self.shared.rooms.load().0
    }

    /// Tracks published by the connected participants.
    pub fn streams(&self) -> usize {
        self.shared.rooms.load().1
    }

    /// Relay sessions to other handlers (either end), over all meetings.
    pub fn relays(&self) -> usize {
        self.shared.rooms.relays()
    }
}

/// A bound media handler; [`MediaHandler::run`] serves it.
pub struct MediaHandler {
    listener: Listener,
    shared: Arc<Shared>,
    /// The bookkeeping queue [`bookkeeping::keep`] writes out.
    books: tokio::sync::mpsc::Receiver<bookkeeping::Book>,
}

impl std::fmt::Debug for MediaHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaHandler")
            .field("handler_id", &self.shared.config.handler_id)
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl MediaHandler {
    /// Binds `config.listen` (UDP) with the configured certificate, or a fresh
    /// self-signed one for `localhost`, `127.0.0.1` and `public_host`.
    pub async fn bind(repo: Repo, config: HandlerConfig) -> Result<MediaHandler, MediaError> {
        let listener = Listener::bind(
            config.listen,
            config.certificate.as_ref(),
            &config.public_host,
        )
        .await?;
        let (books_tx, books) = tokio::sync::mpsc::channel(bookkeeping::QUEUE);
        Ok(MediaHandler {
            listener,
            books,
            shared: Arc::new(Shared {
                repo,
                config,
                rooms: Rooms::with_books(books_tx),
                meter: Meter::new(Instant::now()),
                stop: CancellationToken::new(),
                relay_wake: tokio::sync::Notify::new(),
                heartbeats: feature::FailureStreak::new(),
            }),
        })
    }

    /// Turns true once [`MediaHandler::run`] has registered it in the region, so that join
    /// grants may name it: what a process waits for before it says it serves.
    pub fn serving(&self) -> tokio::sync::watch::Receiver<bool> {
        self.listener.serving()
    }

    /// The UDP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// `https://{public_host}:{port}`, what it registers (media grants add
    /// `/media/{meeting_id}`).
    pub fn endpoint(&self) -> String {
        self.listener.url()
    }

    /// SHA-256 (lowercase hex) of the DER of the certificate it serves.
    pub fn certificate_hash(&self) -> &str {
        self.listener.certificate_hash()
    }

    /// What it serves right now; stays valid while and after it runs.
    pub fn load(&self) -> Load {
        Load {
            shared: self.shared.clone(),
        }
    }

    /// Registers in the registry, then serves sessions and heartbeats its load until
    /// `shutdown`; then reports `draining`, closes every session and stops.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), MediaError> {
        let shared = self.shared.clone();
        let config = &shared.config;
        let registration = HandlerRegistration {
            handler_id: config.handler_id.clone(),
            region: config.region.clone(),
            endpoint: self.endpoint(),
            max_streams: config.max_streams,
            max_bitrate_mbps: config.max_bitrate_mbps,
            supports_transcoding: false,
            supports_mixing: false,
            supported_codecs: vec!["VP8".to_owned(), "VP9".to_owned(), "Opus".to_owned()],
            certificate_hash: Some(self.certificate_hash().to_owned()),
        };
        // Announced first: nobody assigns it before it is registered.
        shared.announce(&registration.endpoint, self.certificate_hash());
        self.listener
            .register(&*shared, &registration)
            .await
            .map_err(MediaError::Register)?;
        tracing::info!(handler = %config.handler_id, endpoint = %registration.endpoint,
            "media handler serving");

        let books_done = CancellationToken::new();
        let books = tokio::spawn(bookkeeping::keep(
            shared.repo.clone(),
            self.books,
            books_done.clone(),
        ));
        let registration = Arc::new(std::sync::Mutex::new(registration));
        let tasks = TaskTracker::new();
        tasks.spawn(server::heartbeats(shared.clone(), registration.clone()));
        tasks.spawn(relay::manage(shared.clone()));
        tasks.spawn(session::watch_presence(shared.clone()));
        self.listener
            .accept(
                &*shared,
                &registration,
                config.certificate_renew_every,
                &shutdown,
                |incoming| {
                    tasks.spawn(session::serve(shared.clone(), incoming));
                },
            )
            .await;

        tracing::info!(handler = %config.handler_id, "media handler draining");
        let _ = server::report(&*shared, HealthStatus::Draining).await;
        shared.stop.cancel();
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(15), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(handler = %config.handler_id,
                "media sessions still closing at shutdown; stopping anyway");
        }
        // The departures' bookkeeping is written before it stops.
        books_done.cancel();
        if tokio::time::timeout(Duration::from_secs(5), books)
            .await
            .is_err()
        {
            tracing::warn!(handler = %config.handler_id,
                "streams and subscriptions still being written at shutdown; stopping anyway");
        }
        self.listener.close(proto::CLOSE_BY_HANDLER).await;
        Ok(())
    }
}

impl Shared {
    /// Tells the configured directory where the handler is reached now.
    fn announce(&self, endpoint: &str, certificate_hash: &str) {
        if let Some(directory) = &self.config.directory {
            directory.announce(MediaHandlerAddress {
                handler_id: self.config.handler_id.clone(),
                endpoint: endpoint.to_owned(),
                certificate_hash: Some(certificate_hash.to_owned()),
            });
        }
    }
}

/// Mbit/s of `bytes` over `elapsed`, rounded up (any traffic counts as 1).
fn mbps(bytes: u64, elapsed: Duration) -> i32 {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = (bytes as f64 * 8.0 / 1_000_000.0 / secs).ceil();
    if rate >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        // In range and integral: the cast is exact.
        rate as i32
    }
}

impl Registrant for Shared {
    type Registration = HandlerRegistration;
    const KIND: &'static str = "media handler";

    fn span(&self) -> tracing::Span {
        tracing::info_span!("registry", handler = %self.config.handler_id)
    }

    fn beating(&self) -> Beating<'_> {
        Beating {
            every: self.config.heartbeat_every,
            stop: &self.stop,
            streak: &self.heartbeats,
        }
    }

    async fn register(&self, registration: &HandlerRegistration) -> Result<(), MeetingsError> {
        self.repo.register_handler(registration).await
    }

    /// The load: the tracks published, and the bitrate since the last heartbeat.
    async fn beat(&self, health: HealthStatus) -> Result<(), MeetingsError> {
        let (_, streams) = self.rooms.load();
        let beat = HandlerHeartbeat {
            handler_id: self.config.handler_id.clone(),
            current_streams: i32::try_from(streams).unwrap_or(i32::MAX),
            current_bitrate_mbps: self.meter.read(Instant::now()),
            health,
        };
        self.repo.heartbeat_handler(&beat).await
    }

    fn certificate_hash(registration: &mut HandlerRegistration) -> &mut Option<String> {
        &mut registration.certificate_hash
    }

    /// Announced too, so that the in-process controller grants the new hash.
    fn renewed(&self, registration: &HandlerRegistration, hash: &str) {
        self.announce(&registration.endpoint, hash);
    }
}

/// The service running `config`'s media handler over `repo`: bind, then
/// [`MediaHandler::run`] until the process shuts down.
pub fn service(repo: Repo, config: HandlerConfig) -> feature::Service {
    feature::Service::new("media-handler", move |shutdown| {
        let (repo, config) = (repo.clone(), config.clone());
        async move { MediaHandler::bind(repo, config).await?.run(shutdown).await }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_is_rounded_up_and_capped() {
        assert_eq!(mbps(0, Duration::from_secs(1)), 0);
        assert_eq!(mbps(1, Duration::from_secs(1)), 1);
        assert_eq!(mbps(2_500_000 / 8 * 10, Duration::from_secs(10)), 3);
        assert_eq!(mbps(u64::MAX, Duration::from_millis(1)), i32::MAX);
    }

    /// Each heartbeat's bitrate is over the time since the heartbeat before, the
    /// draining one sent at shutdown included.
    #[test]
    fn the_bitrate_is_over_the_time_since_the_last_reading() {
        let t0 = Instant::now();
        let meter = Meter::new(t0);
        // 10 Mbit in the first 2 s, read then: 5 Mbit/s.
        meter.count(1_250_000);
        assert_eq!(meter.read(t0 + Duration::from_secs(2)), 5);
        // 10 Mbit more in the next second: 10 Mbit/s.
        meter.count(625_000);
        meter.count(625_000);
        assert_eq!(meter.read(t0 + Duration::from_secs(3)), 10);
        // 2 Mbit over the 2 s to a draining reading: 1 Mbit/s.
        meter.count(250_000);
        assert_eq!(meter.read(t0 + Duration::from_secs(5)), 1);
        // Nothing counted: nothing read.
        assert_eq!(meter.read(t0 + Duration::from_secs(6)), 0);
    }
}
