//! The meeting controller: the WebTransport sessions of meetings' participants, the
//! seed's Data Flow Examples 1 and 2 over the wire.
//!
//! A [`MeetingController`] binds a UDP port with a TLS identity (a self-signed ECDSA
//! certificate valid 14 days unless PEM files are configured; its SHA-256 is what join
//! grants hand out for `serverCertificateHashes`; it is replaced by a fresh one every
//! 7 days, whose hash is registered for the grants made after, while open sessions keep
//! theirs), registers in the registry and heartbeats its real load, and serves sessions
//! until shut down:
//!
//! - A session request must be `/meetings/{meeting_id}?wt_token={token}`; the one-time
//!   token is redeemed (an unknown, used or expired token, or one granted for another
//!   meeting, is refused with 403; another path with 404).
//! - The client opens one bidirectional stream and sends `JoinRequest` with its meeting
//!   token within the join timeout ([`proto`] describes the frames). The token must
//!   verify and name the redeemed grant's meeting and participant; then the participant
//!   joins ([`Repo::join_as`], Example 1) and gets `JoinResponse` with everybody else,
//!   who are told `ParticipantJoined`.
//! - In a meeting with a waiting room, everybody but its creator (the host) waits after
//!   `JoinRequest` until a host's session lets them in or turns them away ([`proto`],
//!   "The waiting room"); waiting, they are nobody's participant yet, but heartbeat as
//!   participants do (one silent for the presence timeout is taken off the host's
//!   list), and the waiting limit runs from when they began waiting over all their
//!   connections. Those let in are
//!   remembered for the meeting in Redis (a user by account, a guest by the admission
//!   token its `JoinResponse` gave it), so that they join again, here or on the
//!   controller the meeting moves to, without waiting.
//! - Mute changes and published or ended streams are broadcast; a `Heartbeat` refreshes
//!   presence ([`Repo::heartbeat`]) and is acknowledged. Silence for the presence
//!   timeout or a lost connection is a `connection_lost` leave, `Leave` a `voluntary`
//!   one; the others are told `ParticipantLeft`. The last one out ends the meeting
//!   ([`Repo::end_meeting`], Example 2).
//! - Every couple of seconds a sweep looks at the meetings it hosts: one ended elsewhere
//!   (the REST route) sends `MeetingEnded` and closes its sessions; participants the
//!   presence job removed have their sessions closed and the rest told.
//! - A malformed, oversized, wrong-version or out-of-turn message is answered with
//!   `Error` and closes that session only. Each session runs in its own tasks with a
//!   bounded outgoing queue: a client that does not keep up is closed, never waited for.
//!   What one participant sends never closes another: each session's messages are
//!   counted against budgets (over budget: dropped, `Error` `rate_limited` once; far
//!   over: closed), and a key exchange for a recipient that does not keep up is dropped
//!   and its sender told (`recipient_busy`) ([`proto`], "Budgets").
//!
//! - With [`ControllerConfig::media`], each `JoinResponse` carries a media grant: the
//!   meeting's media handler (assigned by [`Repo::assign_media_handler`] at the first
//!   join this controller sees, then kept for the meeting while it hosts it and the
//!   handler serves: the sweep forgets one that stopped or stopped heartbeating, and
//!   the next join is assigned another), a one-time `media` connection token (issued
//!   by the join's own Redis step) and the handler's certificate hash. A participant
//!   whose media session failed or was lost asks again (`RequestMediaGrant`, at most 6
//!   a minute) and gets a new token, for another handler when the meeting's no longer
//!   serves.
//!
//! [`client::Client`] is the other end (the CLI, the benchmark and the tests).

pub mod client;
pub mod proto;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::domain::{ControllerId, HandlerId, HealthStatus, Liveness, MeetingId, Region};
use crate::repo::{ControllerHeartbeat, ControllerRegistration};
use crate::server::{self, Beating, Listener, Registrant};
use crate::{MeetingsError, Repo};

use self::session::Rooms;

/// Settings of one meeting controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Its id in `meeting_controllers` (stable across restarts of the same instance).
    pub controller_id: ControllerId,
    /// The UDP address it listens on (port 0: any free port).
    pub listen: SocketAddr,
    /// The host name (or address) clients reach it by, in `webtransport_url`.
    pub public_host: String,
    /// Meetings it hosts at most (a join that would open one more is refused with
    /// `controller_full`).
    pub max_meetings: i32,
    /// Participants connected to it at most, over all its meetings.
    pub max_participants: i32,
    /// How often it reports its load to the registry (the registry's liveness is 30 s).
    pub heartbeat_every: Duration,
    /// A PEM certificate chain and key; `None`: a self-signed certificate valid 14 days
    /// (renewed every `certificate_renew_every`), its hash handed out in join grants.
    pub certificate: Option<(PathBuf, PathBuf)>,
    /// The region it registers in.
    pub region: Region,
    /// A participant silent this long (no message at all) leaves with
    /// `connection_lost` (the seed's presence TTL, 30 s).
    pub presence_timeout: Duration,
    /// How long a session may take to open its stream and send `JoinRequest`.
    pub join_timeout: Duration,
    /// How often the hosted meetings are checked for an end or removals decided
    /// elsewhere.
    pub sweep_every: Duration,
    /// Messages waiting for one session before it counts as unable to keep up.
    pub session_queue: usize,
    /// The media handlers its joins are granted; `None`: no media grants.
    pub media: Option<MediaHandlers>,
    /// How often a self-signed certificate is replaced by a fresh one (and its hash
    /// registered for the grants made after); a configured certificate is kept.
    pub certificate_renew_every: Duration,
    /// The messages each session may send but key exchanges ([`proto::MESSAGE_BUDGET`]).
    pub message_budget: proto::Budget,
    /// The key exchanges each session may send ([`proto::KEY_EXCHANGE_BUDGET`]).
    pub key_exchange_budget: proto::Budget,
    /// How long a visitor of a waiting room may wait for the host to let it in
    /// ([`proto`], "The waiting room").
    pub waiting_limit: Duration,
}

/// The media handlers a controller grants, and when a registered one counts as alive
/// for an assignment.
#[derive(Debug, Clone)]
pub struct MediaHandlers {
    /// Where the handlers are reached, first: an in-process handler announces its
    /// endpoint and self-signed certificate's hash here. One that is not here is
    /// reached at what it registered (`media_handlers.endpoint` and
    /// `metadata.certificate_hash`), as a `tavern media-handler` process does.
    pub directory: MediaDirectory,
    pub liveness: Liveness,
}

/// Where one media handler is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaHandlerAddress {
    pub handler_id: HandlerId,
    /// `https://host:port`, as the handler registers it.
    pub endpoint: String,
    /// SHA-256 (lowercase hex) of its certificate; `None` for one browsers trust.
    pub certificate_hash: Option<String>,
}

/// The addresses of media handlers, shared: listed up front, or announced by a handler
/// once it serves (an in-process handler's self-signed certificate is only known then:
/// give the same directory to [`crate::media::HandlerConfig::directory`]).
#[derive(Debug, Clone, Default)]
pub struct MediaDirectory(Arc<std::sync::RwLock<Vec<MediaHandlerAddress>>>);

impl MediaDirectory {
    /// A directory holding `addresses`.
    pub fn new(addresses: Vec<MediaHandlerAddress>) -> MediaDirectory {
        MediaDirectory(Arc::new(std::sync::RwLock::new(addresses)))
    }

    /// Adds `address`, replacing the handler's previous one.
    pub fn announce(&self, address: MediaHandlerAddress) {
        let mut all = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.retain(|a| a.handler_id != address.handler_id);
        all.push(address);
    }

    /// The handler `id`'s address, if it is known.
    pub fn address(&self, id: &HandlerId) -> Option<MediaHandlerAddress> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|a| &a.handler_id == id)
            .cloned()
    }
}

impl ControllerConfig {
    /// The defaults for controller `controller_id`: listens on `127.0.0.1:4433`, reached
    /// as `127.0.0.1`, heartbeats every 10 s, up to 1,000 meetings and 10,000
    /// participants, a self-signed certificate, region `local`, presence 30 s, join
    /// timeout 10 s, a sweep every 2 s, 256 queued messages per session, no media grants,
    /// the protocol's message budgets, visitors waiting at most 30 minutes.
    pub fn new(controller_id: ControllerId) -> ControllerConfig {
        ControllerConfig {
            controller_id,
            listen: SocketAddr::from(([127, 0, 0, 1], 4433)),
            public_host: "127.0.0.1".to_owned(),
            max_meetings: 1000,
            max_participants: 10_000,
            heartbeat_every: Duration::from_secs(10),
            certificate: None,
            certificate_renew_every: crate::wt::CERTIFICATE_RENEW_EVERY,
            region: Region::local(),
            presence_timeout: crate::schema::PRESENCE_TTL,
            join_timeout: Duration::from_secs(10),
            sweep_every: Duration::from_secs(2),
            session_queue: 256,
            media: None,
            message_budget: proto::MESSAGE_BUDGET,
            key_exchange_budget: proto::KEY_EXCHANGE_BUDGET,
            waiting_limit: Duration::from_secs(30 * 60),
        }
    }
}

/// Why the controller could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Listen(#[from] crate::wt::ListenError),
    #[error("could not register meeting controller: {0}")]
    Register(#[source] MeetingsError),
}

/// What every session of a controller shares.
pub(crate) struct Shared {
    repo: Repo,
    auth: Auth,
    config: ControllerConfig,
    rooms: Rooms,
    /// The media handler of each hosted meeting and when it was assigned (locked while
    /// one is assigned, so the joins of one meeting agree).
    media_assigned: tokio::sync::Mutex<HashMap<MeetingId, (HandlerId, tokio::time::Instant)>>,
    /// Cancelled when the controller shuts down: every session closes.
    stop: CancellationToken,
    /// Whether heartbeats are failing, so an outage is logged once.
    heartbeats: feature::FailureStreak,
}

/// A bound meeting controller; [`MeetingController::run`] serves it.
pub struct MeetingController {
    listener: Listener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MeetingController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeetingController")
            .field("controller_id", &self.shared.config.controller_id)
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl MeetingController {
    /// Binds `config.listen` (UDP) with the configured certificate, or a fresh
    /// self-signed one for `localhost`, `127.0.0.1` and `public_host`.
    pub async fn bind(
        repo: Repo,
        auth: Auth,
        config: ControllerConfig,
    ) -> Result<MeetingController, ControllerError> {
        let listener = Listener::bind(
            config.listen,
            config.certificate.as_ref(),
            &config.public_host,
        )
        .await?;
        Ok(MeetingController {
            listener,
            shared: Arc::new(Shared {
                repo,
                auth,
                config,
                rooms: Rooms::default(),
                media_assigned: tokio::sync::Mutex::new(HashMap::new()),
                stop: CancellationToken::new(),
                heartbeats: feature::FailureStreak::new(),
            }),
        })
    }

    /// Turns true once [`MeetingController::run`] has registered it in the region, so that join
    /// grants may name it: what a process waits for before it says it serves.
    pub fn serving(&self) -> tokio::sync::watch::Receiver<bool> {
        self.listener.serving()
    }

    /// The UDP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// `https://{public_host}:{port}`, what it registers (join grants add
    /// `/meetings/{meeting_id}`).
    pub fn endpoint(&self) -> String {
        self.listener.url()
    }

    /// SHA-256 (lowercase hex) of the DER of the certificate it serves.
    pub fn certificate_hash(&self) -> &str {
        self.listener.certificate_hash()
    }

    /// Registers in the registry, then serves sessions and heartbeats its load until
    /// `shutdown`; then reports `draining`, hands its meetings on
    /// ([`Repo::release_meetings`]), tells every joined participant that its meeting
    /// moved ([`proto::MEETING_MOVED`]: it joins again with a new grant, which names a
    /// live controller) and closes every session, each participant leaving with
    /// `connection_lost`; a meeting goes on although nobody is left in it here (a
    /// restart ends no meeting). Then it stops.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ControllerError> {
        let shared = self.shared.clone();
        let config = &shared.config;
        let registration = ControllerRegistration {
            controller_id: config.controller_id.clone(),
            region: config.region.clone(),
            endpoint: self.endpoint(),
            max_meetings: config.max_meetings,
            max_participants: config.max_participants,
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            certificate_hash: Some(self.certificate_hash().to_owned()),
        };
        self.listener
            .register(&*shared, &registration)
            .await
            .map_err(ControllerError::Register)?;
        tracing::info!(controller = %config.controller_id, endpoint = %registration.endpoint,
            "meeting controller serving");

        let registration = Arc::new(std::sync::Mutex::new(registration));
        let tasks = TaskTracker::new();
        tasks.spawn(server::heartbeats(shared.clone(), registration.clone()));
        tasks.spawn(session::sweeps(shared.clone()));
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

        tracing::info!(controller = %config.controller_id, "meeting controller draining");
        let _ = server::report(&*shared, HealthStatus::Draining).await;
        // Handed on before anybody is told to join again, so that the new grants name
        // a live controller.
        match shared.repo.release_meetings(&config.controller_id).await {
            Ok(meetings) => tracing::info!(meetings, "meetings handed on to other controllers"),
            Err(error) => tracing::warn!(%error,
                "could not hand this controller's meetings on; they move once its heartbeats have stopped"),
        }
        shared.stop.cancel();
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(15), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(controller = %config.controller_id,
                "sessions still closing at shutdown; stopping anyway");
        }
        let _ = server::report(&*shared, HealthStatus::Draining).await;
        // And any a grant gave it meanwhile from an older read of the registry.
        if let Err(error) = shared.repo.release_meetings(&config.controller_id).await {
            tracing::warn!(%error, "could not hand this controller's meetings on");
        }
        self.listener.close(proto::CLOSE_BY_CONTROLLER).await;
        Ok(())
    }
}

impl Registrant for Shared {
    type Registration = ControllerRegistration;
    const KIND: &'static str = "meeting controller";

    fn span(&self) -> tracing::Span {
        tracing::info_span!("registry", controller = %self.config.controller_id)
    }

    fn beating(&self) -> Beating<'_> {
        Beating {
            every: self.config.heartbeat_every,
            stop: &self.stop,
            streak: &self.heartbeats,
        }
    }

    async fn register(&self, registration: &ControllerRegistration) -> Result<(), MeetingsError> {
        self.repo.register_controller(registration).await
    }

    async fn beat(&self, health: HealthStatus) -> Result<(), MeetingsError> {
        let (meetings, participants) = self.rooms.load();
        let beat = ControllerHeartbeat {
            controller_id: self.config.controller_id.clone(),
            current_meetings: i32::try_from(meetings).unwrap_or(i32::MAX),
            current_participants: i32::try_from(participants).unwrap_or(i32::MAX),
            health,
        };
        self.repo.heartbeat_controller(&beat).await
    }

    fn certificate_hash(registration: &mut ControllerRegistration) -> &mut Option<String> {
        &mut registration.certificate_hash
    }
}

/// The service running `config`'s controller over `repo` and `auth`: bind, then
/// [`MeetingController::run`] until the process shuts down.
pub fn service(repo: Repo, auth: Auth, config: ControllerConfig) -> feature::Service {
    feature::Service::new("meeting-controller", move |shutdown| {
        let (repo, auth, config) = (repo.clone(), auth.clone(), config.clone());
        async move {
            MeetingController::bind(repo, auth, config)
                .await?
                .run(shutdown)
                .await
        }
    })
}
