//! What the meeting controller and the media handler share as servers of a region: a
//! bound WebTransport endpoint ([`Listener`]) that registers in the registry, says
//! when it serves, accepts sessions, renews its self-signed certificate (registering
//! the new hash) and heartbeats its load, registering again when the registry lost it.
//! What differs between the two, their registry rows and load, is a [`Registrant`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use store::StorageError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wtransport::Endpoint;
use wtransport::endpoint::IncomingSession;
use wtransport::endpoint::endpoint_side::Server;

use crate::MeetingsError;
use crate::domain::HealthStatus;
use crate::wt::ListenError;

/// A server of the region as the registry sees it: the part that differs between a
/// meeting controller and a media handler.
pub(crate) trait Registrant: Send + Sync + 'static {
    /// Its row in the registry.
    type Registration: Clone + Send + 'static;
    /// What it is, in log lines ("meeting controller").
    const KIND: &'static str;
    /// The span its registry work is logged in, naming it.
    fn span(&self) -> tracing::Span;
    /// How it heartbeats.
    fn beating(&self) -> Beating<'_>;
    /// Writes `registration` into the registry (again).
    fn register(
        &self,
        registration: &Self::Registration,
    ) -> impl Future<Output = Result<(), MeetingsError>> + Send;
    /// Writes a heartbeat of its load with `health`; `NotFound` when the registry lost
    /// it.
    fn beat(&self, health: HealthStatus) -> impl Future<Output = Result<(), MeetingsError>> + Send;
    /// Where `registration` holds the hash of the certificate served.
    fn certificate_hash(registration: &mut Self::Registration) -> &mut Option<String>;
    /// Told the hash of a renewed self-signed certificate, served from now on, before it
    /// is registered.
    fn renewed(&self, _registration: &Self::Registration, _hash: &str) {}
}

/// How a [`Registrant`] heartbeats.
pub(crate) struct Beating<'a> {
    /// How often.
    pub every: Duration,
    /// Cancelled when it shuts down: the heartbeats stop.
    pub stop: &'a CancellationToken,
    /// Whether its heartbeats are failing, so that an outage is logged once.
    pub streak: &'a feature::FailureStreak,
}

/// A bound endpoint of a server of the region.
pub(crate) struct Listener {
    endpoint: Endpoint<Server>,
    /// SHA-256 (lowercase hex) of the DER of the certificate served.
    certificate_hash: String,
    local_addr: SocketAddr,
    /// The host name (or address) clients reach it by.
    public_host: String,
    /// Whether its certificate is a self-signed one of its own (else configured).
    self_signed: bool,
    /// Whether it is registered and serving.
    serving: watch::Sender<bool>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local_addr)
            .field("certificate_hash", &self.certificate_hash)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `listen` (UDP) with `certificate` (a PEM chain and key), or a fresh
    /// self-signed one for `localhost`, `127.0.0.1` and `public_host`.
    pub(crate) async fn bind(
        listen: SocketAddr,
        certificate: Option<&(PathBuf, PathBuf)>,
        public_host: &str,
    ) -> Result<Listener, ListenError> {
        let bound = crate::wt::bind(listen, certificate, public_host).await?;
        Ok(Listener {
            endpoint: bound.endpoint,
            certificate_hash: bound.certificate_hash,
            local_addr: bound.local_addr,
            public_host: public_host.to_owned(),
            self_signed: certificate.is_none(),
            serving: watch::channel(false).0,
        })
    }

    /// Turns true once [`Listener::register`] has registered it.
    pub(crate) fn serving(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// The UDP address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https://{public_host}:{port}`, what it registers.
    pub(crate) fn url(&self) -> String {
        crate::wt::endpoint_url(&self.public_host, self.local_addr.port())
    }

    /// SHA-256 (lowercase hex) of the DER of the certificate it was bound with.
    pub(crate) fn certificate_hash(&self) -> &str {
        &self.certificate_hash
    }

    /// Registers `registration` for `server`, then says it serves.
    pub(crate) async fn register<R: Registrant>(
        &self,
        server: &R,
        registration: &R::Registration,
    ) -> Result<(), MeetingsError> {
        server.register(registration).await?;
        self.serving.send_replace(true);
        Ok(())
    }

    /// Hands every session opened to `serve` until `shutdown`; meanwhile, if its
    /// certificate is self-signed, serves a fresh one every `renew_every` and registers
    /// its hash in `registration` (a configured certificate is kept).
    pub(crate) async fn accept<R: Registrant>(
        &self,
        server: &R,
        registration: &Mutex<R::Registration>,
        renew_every: Duration,
        shutdown: &CancellationToken,
        mut serve: impl FnMut(IncomingSession),
    ) {
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                incoming = self.endpoint.accept() => serve(incoming),
                _ = renew.tick(), if self.self_signed => {
                    self.renew(server, registration).instrument(server.span()).await;
                }
            }
        }
    }

    /// Serves a fresh self-signed certificate and registers its hash, so that the
    /// grants made from now on pin it; sessions open keep the old one. A failure is
    /// logged, and the old certificate served until the next try.
    async fn renew<R: Registrant>(&self, server: &R, registration: &Mutex<R::Registration>) {
        let hash = match crate::wt::renew_self_signed(&self.endpoint, &self.public_host) {
            Ok(hash) => hash,
            Err(error) => {
                tracing::warn!(%error, "could not renew the self-signed certificate");
                return;
            }
        };
        let updated = {
            let mut registration = registration.lock().unwrap_or_else(PoisonError::into_inner);
            *R::certificate_hash(&mut registration) = Some(hash.clone());
            registration.clone()
        };
        server.renewed(&updated, &hash);
        match server.register(&updated).await {
            Ok(()) => tracing::info!(certificate_hash = %hash,
                "{} serves a renewed self-signed certificate", R::KIND),
            Err(error) => tracing::warn!(%error,
                "the renewed certificate's hash is not registered yet; the next heartbeat that finds the registration lost registers it"),
        }
    }

    /// Closes every connection (`code`, "shutdown") and waits up to 2 s for them to
    /// go.
    pub(crate) async fn close(&self, code: u32) {
        self.endpoint
            .close(wtransport::VarInt::from_u32(code), b"shutdown");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Reports `server`'s load with `health`; `NotFound` when the registry lost it. An
/// outage is logged once, not at every heartbeat.
pub(crate) async fn report<R: Registrant>(
    server: &R,
    health: HealthStatus,
) -> Result<(), MeetingsError> {
    let result = server.beat(health).await;
    let streak = server.beating().streak;
    let kind = R::KIND;
    let _span = server.span().entered();
    match &result {
        Err(error) if streak.failed() => tracing::warn!(%error, "{kind} heartbeat failed"),
        Err(error) => tracing::debug!(%error, "{kind} heartbeat failed again"),
        Ok(()) if streak.succeeded() => tracing::info!("{kind} heartbeats work again"),
        Ok(()) => {}
    }
    result
}

/// Heartbeats every [`Beating::every`] until `server` stops; registers
/// again when the registry lost it.
pub(crate) async fn heartbeats<R: Registrant>(
    server: Arc<R>,
    registration: Arc<Mutex<R::Registration>>,
) {
    let mut every = tokio::time::interval(server.beating().every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            () = server.beating().stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(MeetingsError::Storage(StorageError::NotFound { .. })) =
            report(&*server, HealthStatus::Healthy).await
        {
            let registration = registration
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            match server.register(&registration).await {
                Ok(()) => {
                    let _ = report(&*server, HealthStatus::Healthy).await;
                }
                Err(error) => {
                    let _span = server.span().entered();
                    tracing::warn!(%error, "{} could not register again", R::KIND);
                }
            }
        }
    }
}
