//! WebTransport plumbing the meeting controller and the media handler share: a server
//! endpoint with its certificate (configured PEM files, or a self-signed one valid 14
//! days whose SHA-256 clients pin), the `https://host:port` it is reached at, and the
//! reader of a stream of length-prefixed messages ([`crate::controller::proto`]'s
//! framing).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::endpoint::{IncomingSession, SessionRequest};
use wtransport::error::StreamReadExactError;
use wtransport::{Connection, Endpoint, Identity, RecvStream, SendStream, ServerConfig};

use crate::Repo;
use crate::auth::sha256_hex;
use crate::controller::proto::{self, FrameError};
use crate::domain::{ConnectionType, MeetingId, WT_TOKEN_PARAM, WtToken};
use crate::repo::ConnectionGrant;

/// Why a WebTransport server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("could not make the self-signed certificate: {0}")]
    Certificate(String),
    #[error("could not load the certificate or key: {0}")]
    Pem(#[from] wtransport::tls::error::PemLoadError),
    #[error("the certificate file holds no certificate")]
    NoCertificate,
    #[error("the private key is in none of PKCS#8, SEC1 or PKCS#1: {0}")]
    Key(&'static str),
    #[error("the certificate and key cannot serve TLS 1.3: {0}")]
    Tls(#[from] rustls::Error),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The most bytes a session of ours holds sent and not yet acknowledged (QUIC's default
/// is 10 MB): a subscriber whose network cannot take what it is sent falls behind, and
/// drops to the next key frame, within about 1 MiB rather than seconds of media.
pub(crate) const SEND_WINDOW: u64 = 1024 * 1024;

/// How long, in milliseconds, a connection of ours may hear nothing from its peer
/// before it is closed as lost (QUIC's idle timeout: 30 s; the lower of the two peers'
/// counts).
const IDLE_TIMEOUT_MS: u32 = 30_000;

/// How long a side of a connection may go without sending before it sends a QUIC ping,
/// so that a quiet connection (a subscriber between key frames, a participant between
/// heartbeats) is neither idled out nor dropped by a NAT: a third of the idle timeout
/// ([`IDLE_TIMEOUT_MS`]), so two pings in a row may be lost. A ping does not find a dead peer
/// sooner (the idle timeout does), and each one is a packet and its acknowledgement on
/// both machines: a controller holding 1,000 sessions sent 333 pings a second at 3 s.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The QUIC transport of every endpoint of ours (the controller's and the handler's,
/// the signalling and media clients, relays): [`IDLE_TIMEOUT_MS`], a ping after
/// [`KEEP_ALIVE`] without sending, and at most [`SEND_WINDOW`] sent and not yet
/// acknowledged.
pub(crate) fn transport() -> QuicTransportConfig {
    let mut transport = QuicTransportConfig::default();
    let idle =
        wtransport::quinn::IdleTimeout::from(wtransport::quinn::VarInt::from_u32(IDLE_TIMEOUT_MS));
    transport
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .send_window(SEND_WINDOW);
    transport
}

/// The UDP receive and send buffers our endpoints ask for. The kernel grants at most
/// `net.core.rmem_max` / `wmem_max` (and doubles what it grants); its default, about
/// 208 KB, holds fewer than a hundred full datagrams, and a burst (a crowd's handshakes
/// at once, a frame fanned out to a hundred subscribers) overflows it: each packet lost
/// then waits for a retransmission timer, up to a second during a handshake.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// A UDP socket bound to `addr` (an unspecified IPv6 address takes IPv4 too) that asks
/// for [`SOCKET_BUFFER`] each way (a smaller grant is not an error).
pub(crate) fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    if let Err(error) = socket.set_recv_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(%error, "the UDP receive buffer keeps the system's size");
    }
    if let Err(error) = socket.set_send_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(%error, "the UDP send buffer keeps the system's size");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A client's UDP socket on any address and a free port: dual-stack where the system
/// has IPv6, else IPv4 ([`udp_socket`]'s buffers).
pub(crate) fn client_socket() -> std::io::Result<std::net::UdpSocket> {
    udp_socket(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)))
        .or_else(|_| udp_socket(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))))
}

/// A bound server endpoint.
pub(crate) struct Bound {
    pub endpoint: Endpoint<Server>,
    /// SHA-256 (lowercase hex) of the DER of the leaf certificate it serves.
    pub certificate_hash: String,
    pub local_addr: SocketAddr,
}

/// A fresh self-signed certificate (valid 14 days, the most browsers accept for
/// `serverCertificateHashes`) for `localhost`, `127.0.0.1` and `public_host`.
fn self_signed(public_host: &str) -> Result<Identity, ListenError> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !names.iter().any(|n| n == public_host) {
        names.push(public_host.to_owned());
    }
    Identity::self_signed(&names).map_err(|e| ListenError::Certificate(e.to_string()))
}

/// The TLS of every server endpoint of ours: TLS 1.3 with the ALPN of WebTransport,
/// serving `identity`, and choosing AES-128-GCM with SHA-256 whenever the client offers
/// it, whatever it prefers (a key that is not the certificate's is an error here).
///
/// That is the suite browsers prefer; a client of rustls's defaults (ours, the
/// benchmark's) puts AES-256-GCM with SHA-384 first. The two are alike in strength
/// here, since the key exchange (X25519 or P-256) gives 128-bit security either way,
/// but SHA-256 runs on the processor's SHA instructions where it has them and SHA-384
/// does not: the handshake's key schedule (HKDF, a few dozen HMACs on each side) and
/// every packet's AES cost both ends of a connection less.
fn tls(identity: &Identity) -> Result<rustls::ServerConfig, ListenError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: the others keep their order after it.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let chain = identity
        .certificate_chain()
        .as_slice()
        .iter()
        .map(|certificate| CertificateDer::from(certificate.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::try_from(identity.private_key().secret_der().to_vec())
        .map_err(ListenError::Key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.ignore_client_order = true;
    config.alpn_protocols = vec![wtransport::tls::WEBTRANSPORT_ALPN.to_vec()];
    Ok(config)
}

/// The certificate hash a join grant hands out (a SHA-256 in lowercase or uppercase
/// hex, as `leaf_hash` writes it) as the digest a client pins; `None` if it is not one.
pub fn certificate_digest(hex: &str) -> Option<wtransport::tls::Sha256Digest> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(wtransport::tls::Sha256Digest::new(bytes))
}

/// SHA-256 (lowercase hex) of the DER of `identity`'s leaf certificate.
fn leaf_hash(identity: &Identity) -> Result<String, ListenError> {
    let leaf = identity
        .certificate_chain()
        .as_slice()
        .first()
        .ok_or(ListenError::NoCertificate)?;
    Ok(sha256_hex(leaf.der()))
}

/// How often a self-signed certificate is replaced: half its 14 days, so that the
/// hash in any grant handed out names a certificate with a week still to run.
pub const CERTIFICATE_RENEW_EVERY: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 60 * 60);

/// Serves a fresh self-signed certificate on `endpoint` from its next connection on
/// (connections open keep theirs); the new certificate's hash.
pub(crate) fn renew_self_signed(
    endpoint: &Endpoint<Server>,
    public_host: &str,
) -> Result<String, ListenError> {
    let identity = self_signed(public_host)?;
    let certificate_hash = leaf_hash(&identity)?;
    // Not rebound: the address here is never used.
    let config = ServerConfig::builder()
        .with_bind_default(0)
        .with_custom_tls_and_transport(tls(&identity)?, transport())
        .build();
    endpoint
        .reload_config(config, false)
        .map_err(|source| ListenError::Bind {
            addr: endpoint
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
            source,
        })?;
    Ok(certificate_hash)
}

/// Binds `listen` (UDP) with `certificate` (a PEM chain and key), or a fresh
/// self-signed certificate for `localhost`, `127.0.0.1` and `public_host`.
pub(crate) async fn bind(
    listen: SocketAddr,
    certificate: Option<&(PathBuf, PathBuf)>,
    public_host: &str,
) -> Result<Bound, ListenError> {
    let identity = match certificate {
        Some((chain, key)) => Identity::load_pemfiles(chain, key).await?,
        None => self_signed(public_host)?,
    };
    let certificate_hash = leaf_hash(&identity)?;
    let bind_error = |source| ListenError::Bind {
        addr: listen,
        source,
    };
    let server = ServerConfig::builder()
        .with_bind_socket(udp_socket(listen).map_err(bind_error)?)
        .with_custom_tls_and_transport(tls(&identity)?, transport())
        .build();
    let endpoint = Endpoint::server(server).map_err(bind_error)?;
    let local_addr = endpoint.local_addr().map_err(bind_error)?;
    Ok(Bound {
        endpoint,
        certificate_hash,
        local_addr,
    })
}

/// `https://{host}:{port}` (an IPv6 address in brackets).
pub(crate) fn endpoint_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// The meeting and the connection token of a session request's path
/// (`{prefix}{meeting_id}?wt_token=...`, `prefix` like `/meetings/`).
pub(crate) fn target(path: &str, prefix: &str) -> Option<(MeetingId, Option<String>)> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let id = path.strip_prefix(prefix)?.trim_end_matches('/');
    let meeting = MeetingId::parse(id).ok()?;
    let token = url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == WT_TOKEN_PARAM)
        .map(|(_, value)| value.into_owned());
    Some((meeting, token))
}

/// Waits for an incoming session's request (at most `handshake_timeout`) and redeems
/// its connection token: the request back with its grant and the peer's address, or
/// refused (404 for another path, 403 for a missing, unknown, used or expired token or
/// one for another meeting or another `kind` of connection, 429 while `stop` is
/// cancelled or when the token cannot be read). `early` is called with the meeting the
/// path names once the request has a well-formed token, before the token is redeemed
/// (work for the session started meanwhile); what it returns comes back with the grant.
pub(crate) async fn admit<T>(
    repo: &Repo,
    stop: &CancellationToken,
    incoming: IncomingSession,
    handshake_timeout: Duration,
    prefix: &str,
    kind: ConnectionType,
    early: impl FnOnce(MeetingId) -> T,
) -> Option<(SessionRequest, ConnectionGrant, SocketAddr, T)> {
    admit_routes(
        repo,
        stop,
        incoming,
        handshake_timeout,
        &[(prefix, &[kind])],
        early,
    )
    .await
    .map(|(request, grant, peer, _, early)| (request, grant, peer, early))
}

/// [`admit`] with several routes, each a path prefix and the connection types one of
/// which its tokens must grant; also returns the index of the route taken.
pub(crate) async fn admit_routes<T>(
    repo: &Repo,
    stop: &CancellationToken,
    incoming: IncomingSession,
    handshake_timeout: Duration,
    routes: &[(&str, &[ConnectionType])],
    early: impl FnOnce(MeetingId) -> T,
) -> Option<(SessionRequest, ConnectionGrant, SocketAddr, usize, T)> {
    let peer = incoming.remote_address();
    let request = tokio::select! {
        () = stop.cancelled() => return None,
        request = tokio::time::timeout(handshake_timeout, incoming) => request,
    };
    let request = match request {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "WebTransport handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "WebTransport handshake timed out");
            return None;
        }
    };
    if stop.is_cancelled() {
        request.too_many_requests().await;
        return None;
    }
    let route = routes
        .iter()
        .enumerate()
        .find_map(|(i, (prefix, kinds))| Some((i, *kinds, target(request.path(), prefix)?)));
    let Some((route, kinds, (meeting, token))) = route else {
        tracing::info!(%peer, "session request for an unknown path refused");
        request.not_found().await;
        return None;
    };
    let Some(token) = token.as_deref().and_then(|t| WtToken::parse(t).ok()) else {
        tracing::info!(%peer, %meeting, "session request without a valid connection token refused");
        request.forbidden().await;
        return None;
    };
    // Started from what the path says, while the token is redeemed; dropped unused if
    // the token is refused.
    let early = early(meeting);
    match repo.redeem_connection_token(&token).await {
        Ok(Some(grant))
            if grant.meeting_id == meeting && kinds.contains(&grant.connection_type) =>
        {
            Some((request, grant, peer, route, early))
        }
        Ok(Some(grant)) => {
            tracing::info!(%peer, %meeting, granted = %grant.meeting_id,
                "connection token for another meeting or connection type refused");
            request.forbidden().await;
            None
        }
        Ok(None) => {
            tracing::info!(%peer, %meeting, "unknown, used or expired connection token refused");
            request.forbidden().await;
            None
        }
        Err(error) => {
            tracing::warn!(%peer, %meeting, %error, "could not redeem a connection token");
            request.too_many_requests().await;
            None
        }
    }
}

/// How [`open`] ended when it gave no stream.
pub(crate) enum NotOpened {
    /// The session was lost before it was accepted or before it opened its stream.
    Lost,
    /// The server is stopping: close the connection as shut down.
    Stopping(Connection),
    /// No stream within the timeout: close the connection for that.
    TimedOut(Connection),
}

/// Accepts an admitted session and waits (at most `timeout`, or until `stop`) for the
/// bidirectional stream its client opens first.
pub(crate) async fn open(
    request: SessionRequest,
    stop: &CancellationToken,
    timeout: Duration,
) -> Result<(Connection, SendStream, RecvStream), NotOpened> {
    let conn = match request.accept().await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::debug!(%error, "session lost while accepting it");
            return Err(NotOpened::Lost);
        }
    };
    let stream = tokio::select! {
        () = stop.cancelled() => return Err(NotOpened::Stopping(conn)),
        stream = tokio::time::timeout(timeout, conn.accept_bi()) => stream,
    };
    match stream {
        Ok(Ok((send, recv))) => Ok((conn, send, recv)),
        Ok(Err(error)) => {
            tracing::debug!(%error, "session closed before opening its stream");
            Err(NotOpened::Lost)
        }
        Err(_) => Err(NotOpened::TimedOut(conn)),
    }
}

/// Reads length-prefixed messages from `recv`, decoded by `decode`, into `inbound`
/// until the stream ends or a frame is bad (sent as the last item).
pub(crate) async fn read_frames<M>(
    mut recv: RecvStream,
    inbound: mpsc::Sender<Result<M, FrameError>>,
    decode: fn(&[u8]) -> Result<M, FrameError>,
) {
    loop {
        let mut header = [0u8; proto::HEADER_LEN];
        match recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(StreamReadExactError::FinishedEarly(0)) | Err(StreamReadExactError::Read(_)) => {
                return;
            }
            Err(StreamReadExactError::FinishedEarly(got)) => {
                let _ = inbound
                    .send(Err(FrameError::Truncated {
                        expected: proto::HEADER_LEN,
                        got,
                    }))
                    .await;
                return;
            }
        }
        let len = match proto::frame_length(header) {
            Ok(len) => len,
            Err(error) => {
                let _ = inbound.send(Err(error)).await;
                return;
            }
        };
        let mut body = vec![0u8; len];
        match recv.read_exact(&mut body).await {
            Ok(()) => {}
            Err(StreamReadExactError::Read(_)) => return,
            Err(StreamReadExactError::FinishedEarly(got)) => {
                let _ = inbound
                    .send(Err(FrameError::Truncated {
                        expected: proto::HEADER_LEN + len,
                        got: proto::HEADER_LEN + got,
                    }))
                    .await;
                return;
            }
        }
        let message = decode(&body);
        let bad = message.is_err();
        if inbound.send(message).await.is_err() || bad {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_udp_sockets_ask_for_more_buffer_than_the_systems_default() {
        let socket = udp_socket(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let granted = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        let default: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_default")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(212_992);
        assert!(granted > default, "granted {granted}, default {default}");
        let client = client_socket().unwrap();
        assert!(client.local_addr().unwrap().ip().is_unspecified());
    }

    #[test]
    fn an_ipv6_host_is_bracketed_in_the_endpoint() {
        assert_eq!(endpoint_url("127.0.0.1", 4433), "https://127.0.0.1:4433");
        assert_eq!(
            endpoint_url("meet.example.org", 443),
            "https://meet.example.org:443"
        );
        assert_eq!(endpoint_url("::1", 4433), "https://[::1]:4433");
        assert_eq!(endpoint_url("[::1]", 4433), "https://[::1]:4433");
    }

    #[test]
    fn a_session_path_names_its_meeting_and_token() {
        let meeting = MeetingId::random();
        assert_eq!(
            target(
                &format!("/meetings/{meeting}?wt_token=abc&x=1"),
                "/meetings/"
            ),
            Some((meeting, Some("abc".to_owned())))
        );
        assert_eq!(
            target(&format!("/media/{meeting}/"), "/media/"),
            Some((meeting, None))
        );
        assert_eq!(target(&format!("/media/{meeting}"), "/meetings/"), None);
        assert_eq!(
            target("/meetings/not-a-uuid?wt_token=abc", "/meetings/"),
            None
        );
        assert_eq!(target("/", "/meetings/"), None);
    }
}
