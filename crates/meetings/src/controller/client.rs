//! A signalling client of the meeting controller (the CLI's `tavern meetings join`, the
//! benchmark, the tests): opens the session with the join grant's `webtransport_url`,
//! `wt_token` and `certificate_hash`, joins with the meeting token, then sends and
//! receives [`proto`] messages. The `JoinResponse` it returns carries the media grant
//! ([`proto::MediaGrant`]: its `url`, `wt_token` and `certificate_hash` open a
//! [`crate::media::client::MediaClient`]).

use std::sync::Arc;
use std::time::Duration;

use wtransport::endpoint::endpoint_side;
use wtransport::error::{ConnectingError, ConnectionError};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream};

use super::proto::{
    self, ClientMessage, FrameError, JoinResponse, ServerMessage, client_message, server_message,
};
use crate::domain::WT_TOKEN_PARAM;

/// How long [`Client::leave`] waits for the controller to end its stream.
const LEAVE_WAIT: Duration = Duration::from_secs(2);

/// How often a client sends `Heartbeat`, in the meeting and while it waits for the
/// host: a third of the controller's presence timeout (30 s), as the browser client.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// How long each of [`open_session`]'s connections but the last may take to open its
/// session before it is given up for one more with a new grant. Setting a session up
/// takes two round trips (the QUIC handshake, then the session request), and QUIC
/// resends a lost packet after about a second, so a slow link with a loss still opens
/// within it; a controller that lost part of the set-up (README, "Known problems")
/// would otherwise hold the client until its own `join_timeout`. The last connection
/// waits as long as QUIC does.
pub const FIRST_TRY_WAIT: Duration = Duration::from_secs(3);

/// How many connections [`open_session`] makes at most, each with a new grant. A
/// connection lost while it is set up is rare (about 1 in 300) but not always alone:
/// with two, about 1 join in 3,000 still failed; a third makes that a few in a million.
pub const CONNECTIONS: u32 = 3;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not a WebTransport URL: {0}")]
    InvalidUrl(String),
    #[error("the certificate hash must be 64 hex digits (SHA-256)")]
    InvalidCertificateHash,
    #[error("could not open a local UDP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The controller refused the session request (a used, unknown or expired
    /// connection token, or one for another meeting).
    #[error("the meeting controller refused the session")]
    Rejected,
    #[error("could not connect to the meeting controller: {0}")]
    Connect(ConnectingError),
    #[error("the session failed: {0}")]
    Connection(#[from] ConnectionError),
    #[error("the signalling stream failed: {0}")]
    Stream(String),
    /// The controller answered `Error`.
    #[error("{message} ({code})")]
    Refused { code: String, message: String },
    #[error("the controller sent a bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("the session closed")]
    Closed,
    #[error("unexpected message from the controller: {0}")]
    Unexpected(String),
    /// The session was not open within this long ([`FIRST_TRY_WAIT`]).
    #[error("the meeting controller did not open the session within {} s", .0.as_secs())]
    NotOpenedInTime(Duration),
}

impl ClientError {
    /// Whether the session failed to open in a way that a new join grant and a new
    /// connection may well avoid: the connection was closed while it was being set up,
    /// before the session request was answered, by the controller (an HTTP/3 error, or
    /// the request dropped unanswered) or by this client's own HTTP/3 layer (it gave up
    /// on the connection, or found an HTTP/3 error in what the controller sent); or the
    /// session was not open within [`FIRST_TRY_WAIT`]. wtransport 0.7.2 can lose half of
    /// a control frame that arrives in two pieces and then fails the connection or
    /// waits for bytes that never come (README, "Known problems"); nothing of the
    /// participant is recorded then. A refusal ([`ClientError::Rejected`]) is not this,
    /// nor a connection that timed out in QUIC.
    pub fn worth_a_new_grant(&self) -> bool {
        matches!(
            self,
            ClientError::NotOpenedInTime(_)
                | ClientError::Connect(ConnectingError::ConnectionError(
                    ConnectionError::ApplicationClosed(_)
                        | ConnectionError::LocallyClosed
                        | ConnectionError::LocalH3Error(_)
                ))
        )
    }
}

/// A session [`open_session`] opened: the grant it was opened with, the client, and
/// how many connections that took (1 to [`CONNECTIONS`]).
#[derive(Debug)]
pub struct Opened<G> {
    pub grant: G,
    pub client: Client,
    pub connections: u32,
}

impl<G> Opened<G> {
    /// Whether the first connection failed and a later one opened the session.
    pub fn retried(&self) -> bool {
        self.connections > 1
    }
}

/// Why [`open_session`] opened no session: the last grant's connection failed so.
#[derive(Debug)]
pub struct NotOpened<G> {
    pub grant: G,
    pub error: ClientError,
}

/// Opens a signalling session as every client of ours does: `connect` with a grant
/// from `grant`; while a connection fails in a way a new grant may well avoid
/// ([`ClientError::worth_a_new_grant`], its session not open within
/// [`FIRST_TRY_WAIT`] among them), once more with a new grant (the last one's
/// connection token may be spent), [`CONNECTIONS`] in all; the last connection is not
/// timed. The grant source's error ends it at once.
/// (`connect`'s future owns what it needs of the grant, so that the whole can be a
/// spawned task's.)
pub async fn open_session<G, E, GF, CF>(
    mut grant: impl FnMut() -> GF,
    mut connect: impl FnMut(&G) -> CF,
) -> Result<Result<Opened<G>, NotOpened<G>>, E>
where
    GF: Future<Output = Result<G, E>>,
    CF: Future<Output = Result<Client, ClientError>>,
{
    let mut connections = 0;
    loop {
        connections += 1;
        let last = connections >= CONNECTIONS;
        let granted = grant().await?;
        let connected = if last {
            connect(&granted).await
        } else {
            tokio::time::timeout(FIRST_TRY_WAIT, connect(&granted))
                .await
                .unwrap_or(Err(ClientError::NotOpenedInTime(FIRST_TRY_WAIT)))
        };
        match connected {
            Ok(client) => {
                return Ok(Ok(Opened {
                    grant: granted,
                    client,
                    connections,
                }));
            }
            Err(error) if error.worth_a_new_grant() && !last => {
                tracing::info!(%error, connections, "the session was not opened; once more with a new grant");
            }
            Err(error) => {
                return Ok(Err(NotOpened {
                    grant: granted,
                    error,
                }));
            }
        }
    }
}

impl From<ConnectingError> for ClientError {
    fn from(e: ConnectingError) -> ClientError {
        match e {
            ConnectingError::SessionRejected => ClientError::Rejected,
            other => ClientError::Connect(other),
        }
    }
}

/// How the server (the controller, or a media handler for [`MediaClient`]) closed the
/// session: its application error code and reason.
///
/// [`MediaClient`]: crate::media::client::MediaClient
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// `None` when the session did not end with an application close (a timeout, a
    /// transport error, a local close).
    pub code: Option<u64>,
    pub reason: String,
}

impl Closed {
    /// How `conn` was closed, once it is.
    pub(crate) async fn of(conn: &Connection) -> Closed {
        match conn.closed().await {
            ConnectionError::ApplicationClosed(close) => Closed {
                code: Some(close.code().into_inner()),
                reason: String::from_utf8_lossy(close.reason()).into_owned(),
            },
            other => Closed {
                code: None,
                reason: other.to_string(),
            },
        }
    }
}

/// A client QUIC endpoint (a UDP socket, its receive buffers and its driver) made ahead
/// of the one signalling session it opens, so that opening the session does not pay
/// for it (quinn zeroes about 3 MB of receive buffers per endpoint): the benchmark makes
/// each participant's before timing its join, as a browser's QUIC stack exists before
/// its user clicks "join". One session per endpoint.
pub struct Connector {
    endpoint: Endpoint<endpoint_side::Client>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// An endpoint whose sessions pin the server's certificate to `certificate_hash` (a
    /// self-signed one) or, without, require it to chain to the system's roots.
    pub fn new(certificate_hash: Option<&str>) -> Result<Connector, ClientError> {
        let builder = ClientConfig::builder().with_bind_socket(crate::wt::client_socket()?);
        let mut config = match certificate_hash {
            Some(hash) => builder.with_server_certificate_hashes([digest(hash)?]),
            None => builder.with_native_certs(),
        }
        .build();
        config
            .quic_config_mut()
            .transport_config(Arc::new(crate::wt::transport()));
        Ok(Connector {
            endpoint: Endpoint::client(config)?,
        })
    }

    /// Opens the session at `webtransport_url` with the one-time `wt_token` and opens
    /// the signalling stream.
    pub async fn connect(
        self,
        webtransport_url: &str,
        wt_token: &str,
    ) -> Result<Client, ClientError> {
        let mut url = url::Url::parse(webtransport_url)
            .map_err(|e| ClientError::InvalidUrl(e.to_string()))?;
        if url.scheme() != "https" {
            return Err(ClientError::InvalidUrl(
                "the scheme must be https".to_owned(),
            ));
        }
        url.query_pairs_mut().append_pair(WT_TOKEN_PARAM, wt_token);
        let conn = self.endpoint.connect(url.as_str()).await?;
        let (send, recv) = conn
            .open_bi()
            .await?
            .await
            .map_err(|e| ClientError::Stream(e.to_string()))?;
        Ok(Client {
            _endpoint: self.endpoint,
            conn,
            send,
            recv,
            buffer: Vec::new(),
            finished: false,
            heartbeat_every: HEARTBEAT_EVERY,
        })
    }
}

/// A connected signalling session.
pub struct Client {
    // Kept for the connection's lifetime.
    _endpoint: Endpoint<endpoint_side::Client>,
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    /// Bytes read but not yet a whole frame.
    buffer: Vec<u8>,
    finished: bool,
    /// How often [`Client::join`] heartbeats while it waits for the host.
    heartbeat_every: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("remote", &self.conn.remote_address())
            .finish_non_exhaustive()
    }
}

/// Parses a lowercase or uppercase hex SHA-256.
fn digest(hex: &str) -> Result<Sha256Digest, ClientError> {
    crate::wt::certificate_digest(hex).ok_or(ClientError::InvalidCertificateHash)
}

impl Client {
    /// Opens the session at `webtransport_url` with the one-time `wt_token` and opens
    /// the signalling stream. With `certificate_hash` the server's certificate is pinned
    /// to it (a self-signed one); without, it must chain to the system's roots. The QUIC
    /// endpoint is made here: [`Connector`] makes it ahead.
    pub async fn connect(
        webtransport_url: &str,
        wt_token: &str,
        certificate_hash: Option<&str>,
    ) -> Result<Client, ClientError> {
        Connector::new(certificate_hash)?
            .connect(webtransport_url, wt_token)
            .await
    }

    /// [`Client::connect`] with `grant`'s `webtransport_url`, `wt_token` and
    /// `certificate_hash`, as a future that owns them ([`open_session`]'s `connect`).
    pub fn connect_granted(
        grant: &crate::grant::JoinGrant,
    ) -> impl Future<Output = Result<Client, ClientError>> + Send + use<> {
        let (url, wt_token, hash) = (
            grant.webtransport_url.clone(),
            grant.wt_token.expose().to_owned(),
            grant.certificate_hash.clone(),
        );
        async move { Client::connect(&url, &wt_token, hash.as_deref()).await }
    }

    /// How often [`Client::join`] sends `Heartbeat` while it waits for the host
    /// ([`HEARTBEAT_EVERY`] unless set here: a test's controller may have a shorter
    /// presence timeout).
    pub fn set_heartbeat_every(&mut self, every: Duration) {
        self.heartbeat_every = every;
    }

    /// Joins with the join grant's meeting token: the `JoinResponse`, or the
    /// controller's `Error` as [`ClientError::Refused`]. In a meeting with a waiting
    /// room this waits (after `Waiting`) until the host lets it in or turns it away,
    /// heartbeating meanwhile as a participant does (the controller drops a silent
    /// visitor from the host's list). A list that came in more than one frame is
    /// returned whole.
    pub async fn join(&mut self, meeting_token: &str) -> Result<JoinResponse, ClientError> {
        self.join_admitted(meeting_token, "").await
    }

    /// [`Client::join`] presenting `admission`, the admission token an earlier
    /// `JoinResponse` of this meeting gave (empty: none), so that a guest the host let in
    /// before does not wait again ([`proto`], "The waiting room").
    pub async fn join_admitted(
        &mut self,
        meeting_token: &str,
        admission: &str,
    ) -> Result<JoinResponse, ClientError> {
        self.send(client_message::Payload::JoinRequest(proto::JoinRequest {
            token: meeting_token.to_owned(),
            client_version: concat!("tavern/", env!("CARGO_PKG_VERSION")).to_owned(),
            admission: admission.to_owned(),
        }))
        .await?;
        // Heartbeats begin once the controller says to wait.
        let mut heartbeats: Option<tokio::time::Interval> = None;
        loop {
            let next = match heartbeats.as_mut() {
                None => self.next().await?,
                // `next` is cancel-safe: a heartbeat due loses nothing read.
                Some(every) => tokio::select! {
                    next = self.next() => next?,
                    _ = every.tick() => {
                        self.send(client_message::Payload::Heartbeat(proto::Heartbeat {}))
                            .await?;
                        continue;
                    }
                },
            };
            match next {
                Some(message) => match message.payload {
                    Some(server_message::Payload::JoinResponse(response)) => {
                        return self.rest_of(response).await;
                    }
                    Some(server_message::Payload::Error(error)) => {
                        return Err(ClientError::Refused {
                            code: error.code,
                            message: error.message,
                        });
                    }
                    Some(server_message::Payload::Waiting(_)) => {
                        tracing::info!("waiting for the host to let this participant in");
                        if heartbeats.is_none() {
                            let every = self.heartbeat_every;
                            let mut interval = tokio::time::interval_at(
                                tokio::time::Instant::now() + every,
                                every,
                            );
                            interval
                                .set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                            heartbeats = Some(interval);
                        }
                    }
                    Some(server_message::Payload::HeartbeatAck(_)) if heartbeats.is_some() => {}
                    other => return Err(ClientError::Unexpected(format!("{other:?}"))),
                },
                None => return Err(ClientError::Closed),
            }
        }
    }

    /// `response` with the participants that follow it in `MoreParticipants` (a list
    /// too long for one frame), which come next.
    async fn rest_of(&mut self, mut response: JoinResponse) -> Result<JoinResponse, ClientError> {
        let want = response.participants.len() + response.more_participants as usize;
        while response.participants.len() < want {
            match self.next().await?.and_then(|m| m.payload) {
                Some(server_message::Payload::MoreParticipants(more)) => {
                    response.participants.extend(more.participants);
                }
                Some(other) => return Err(ClientError::Unexpected(format!("{other:?}"))),
                None => return Err(ClientError::Closed),
            }
        }
        response.more_participants = 0;
        Ok(response)
    }

    /// Sends one message (version 1).
    pub async fn send(&mut self, payload: client_message::Payload) -> Result<(), ClientError> {
        let frame = proto::encode_client(&ClientMessage::new(payload))?;
        self.send_raw(&frame).await
    }

    /// Writes `bytes` on the signalling stream as they are (tests send garbage so).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.send
            .write_all(bytes)
            .await
            .map_err(|e| ClientError::Stream(e.to_string()))
    }

    /// The next message from the controller; `None` once the session has closed.
    /// Cancel-safe: a call abandoned half-way loses nothing.
    pub async fn next(&mut self) -> Result<Option<ServerMessage>, ClientError> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((body, used)) = proto::split_frame(&self.buffer)? {
                let payload = proto::decode_server(body)?;
                self.buffer.drain(..used);
                return Ok(Some(ServerMessage::new(payload)));
            }
            if self.finished {
                return Ok(None);
            }
            match self.recv.read(&mut chunk).await {
                Ok(Some(n)) => self.buffer.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                Ok(None) | Err(_) => {
                    self.finished = true;
                    if !self.buffer.is_empty() {
                        return Err(FrameError::Truncated {
                            expected: self.buffer.len() + 1,
                            got: self.buffer.len(),
                        }
                        .into());
                    }
                }
            }
        }
    }

    /// Waits until the session is closed, and says how.
    pub async fn closed(&self) -> Closed {
        Closed::of(&self.conn).await
    }

    /// Leaves the meeting: reads what the controller still says, to the end of its
    /// stream (it ends the stream once the leave is done), then closes the connection,
    /// which the controller waits for. Waits `LEAVE_WAIT` (2 s) at most. The meeting's end
    /// when this leave ended it (the last one in left), as the controller said it.
    pub async fn leave(mut self) -> Result<Option<proto::MeetingEnded>, ClientError> {
        self.send(client_message::Payload::Leave(proto::Leave {}))
            .await?;
        let mut ended = None;
        let _ = tokio::time::timeout(LEAVE_WAIT, async {
            while let Ok(Some(message)) = self.next().await {
                if let Some(server_message::Payload::MeetingEnded(end)) = message.payload {
                    ended = Some(end);
                }
            }
        })
        .await;
        self.conn
            .close(wtransport::VarInt::from_u32(proto::CLOSE_NORMAL), b"left");
        Ok(ended)
    }

    /// Closes the session at once, without leaving (the controller sees a lost
    /// connection).
    pub fn abort(self) {
        self.conn
            .close(wtransport::VarInt::from_u32(proto::CLOSE_NORMAL), b"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_hashes_are_64_hex_digits() {
        let hex = "ab".repeat(32);
        assert_eq!(digest(&hex).unwrap(), Sha256Digest::new([0xab; 32]));
        assert_eq!(
            digest(&hex.to_uppercase()).unwrap(),
            Sha256Digest::new([0xab; 32])
        );
        assert!(digest("abc").is_err());
        assert!(digest(&"zz".repeat(32)).is_err());
        assert!(digest(&"é".repeat(32)).is_err());
    }

    #[test]
    fn a_connection_this_client_closed_while_setting_it_up_is_worth_one_more_try() {
        let setting_up = |e| ClientError::Connect(ConnectingError::ConnectionError(e));
        assert!(setting_up(ConnectionError::LocallyClosed).worth_a_new_grant());
        assert!(ClientError::NotOpenedInTime(FIRST_TRY_WAIT).worth_a_new_grant());
        assert!(!setting_up(ConnectionError::TimedOut).worth_a_new_grant());
        assert!(!setting_up(ConnectionError::CidsExhausted).worth_a_new_grant());
        assert!(!ClientError::Rejected.worth_a_new_grant());
        assert!(!ClientError::Closed.worth_a_new_grant());
    }

    /// Runs [`open_session`] with numbered grants over connections that fail as
    /// `failures` says, one per connection (a refusal once they run out); answers the
    /// grants asked for and the grant and error it ended with.
    async fn open_failing(failures: Vec<ClientError>) -> (u32, u32, ClientError) {
        let failures = std::sync::Mutex::new(failures.into_iter());
        let mut grants = 0;
        let ended = open_session(
            || {
                grants += 1;
                std::future::ready(Ok::<_, std::convert::Infallible>(grants))
            },
            |_: &u32| {
                let failure = failures
                    .lock()
                    .unwrap()
                    .next()
                    .unwrap_or(ClientError::Rejected);
                std::future::ready(Err(failure))
            },
        )
        .await;
        let Ok(Err(NotOpened { grant, error })) = ended else {
            panic!("the connections were all to fail");
        };
        (grants, grant, error)
    }

    fn closed_while_set_up() -> ClientError {
        ClientError::Connect(ConnectingError::ConnectionError(
            ConnectionError::LocallyClosed,
        ))
    }

    #[tokio::test]
    async fn connections_lost_while_set_up_are_made_again_with_new_grants_three_in_all() {
        let (grants, last, error) = open_failing(vec![
            ClientError::NotOpenedInTime(FIRST_TRY_WAIT),
            closed_while_set_up(),
            closed_while_set_up(),
            closed_while_set_up(),
        ])
        .await;
        assert_eq!((grants, last), (3, 3));
        assert!(error.worth_a_new_grant(), "the third one's error: {error}");
    }

    #[tokio::test]
    async fn a_refusal_or_a_grant_error_ends_the_tries_at_once() {
        let (grants, last, error) =
            open_failing(vec![closed_while_set_up(), ClientError::Rejected]).await;
        assert_eq!((grants, last), (2, 2));
        assert!(matches!(error, ClientError::Rejected), "{error}");

        let mut connects = 0;
        let ended = open_session(
            || std::future::ready(Err::<u32, _>("no grant")),
            |_: &u32| {
                connects += 1;
                std::future::ready(Err(ClientError::Rejected))
            },
        )
        .await;
        assert!(matches!(ended, Err("no grant")));
        assert_eq!(connects, 0);
    }
}
