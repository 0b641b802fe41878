//! A media client of the media handler (tests and the benchmark): opens the session
//! with a media grant's `url`, `wt_token` and `certificate_hash`, opens the control
//! stream, publishes frames and receives everybody else's.
//!
//! Received frames are read by background tasks, one per forwarded stream, into a small
//! bounded queue: a client that stops calling [`MediaClient::next_frame`] stops reading
//! its streams, and the handler sees a subscriber falling behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use wtransport::endpoint::endpoint_side;
use wtransport::error::{ConnectingError, ConnectionError};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream};

use super::forwarded::{ForwardedError, ForwardedStream};
use super::proto::{
    self, FRAME_HEADER_LEN, FrameError, FrameHeader, MediaClientMessage, MediaFrameError,
    RequestKeyframe, SetLayer, media_client_message, media_server_message,
};
use crate::controller::client::Closed;
use crate::domain::{ParticipantId, WT_TOKEN_PARAM};

/// Received frames read ahead of [`MediaClient::next_frame`].
const RECEIVED_QUEUE: usize = 16;
/// The most bytes the handler may send ahead of what this client has read (QUIC's
/// default sets no limit across streams): a client that stops reading is soon a
/// subscriber behind.
const RECEIVE_WINDOW: wtransport::quinn::VarInt = wtransport::quinn::VarInt::from_u32(1024 * 1024);

/// Why a media client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaClientError {
    #[error("not a WebTransport URL: {0}")]
    InvalidUrl(String),
    #[error("the certificate hash must be 64 hex digits (SHA-256)")]
    InvalidCertificateHash,
    #[error("could not open a local UDP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The handler refused the session request (a used, unknown or expired token, or
    /// one for another meeting or connection type).
    #[error("the media handler refused the session")]
    Rejected,
    #[error("could not connect to the media handler: {0}")]
    Connect(ConnectingError),
    #[error("the session failed: {0}")]
    Connection(#[from] ConnectionError),
    #[error("a stream failed: {0}")]
    Stream(String),
    #[error("the handler sent a bad control frame: {0}")]
    Frame(#[from] FrameError),
    #[error("a bad media frame: {0}")]
    Media(#[from] MediaFrameError),
    #[error("the session closed")]
    Closed,
}

impl From<ConnectingError> for MediaClientError {
    fn from(e: ConnectingError) -> MediaClientError {
        match e {
            ConnectingError::SessionRejected => MediaClientError::Rejected,
            other => MediaClientError::Connect(other),
        }
    }
}

/// A frame received from the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// Who published it.
    pub publisher: ParticipantId,
    /// Its header, as the publisher sent it.
    pub header: FrameHeader,
    /// Its payload, as the publisher sent it.
    pub payload: Vec<u8>,
    /// When its last byte was read, before it waited in this client's queue.
    pub received_at: std::time::Instant,
}

/// A connected media session.
pub struct MediaClient {
    // Kept for the connection's lifetime.
    _endpoint: Endpoint<endpoint_side::Client>,
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    /// Control bytes read but not yet a whole frame.
    buffer: Vec<u8>,
    received: mpsc::Receiver<Result<ReceivedFrame, MediaClientError>>,
    reader: JoinHandle<()>,
    /// Forwarded streams the handler has opened to it.
    streams: Arc<AtomicU64>,
}

impl std::fmt::Debug for MediaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaClient")
            .field("remote", &self.conn.remote_address())
            .finish_non_exhaustive()
    }
}

impl Drop for MediaClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Parses a lowercase or uppercase hex SHA-256.
pub(crate) fn digest(hex: &str) -> Result<Sha256Digest, MediaClientError> {
    crate::wt::certificate_digest(hex).ok_or(MediaClientError::InvalidCertificateHash)
}

impl MediaClient {
    /// Opens the session at `url` with the one-time `wt_token` and opens the control
    /// stream. With `certificate_hash` (non-empty) the handler's certificate is pinned
    /// to it; without, it must chain to the system's roots.
    pub async fn connect(
        url: &str,
        wt_token: &str,
        certificate_hash: Option<&str>,
    ) -> Result<MediaClient, MediaClientError> {
        let mut url =
            url::Url::parse(url).map_err(|e| MediaClientError::InvalidUrl(e.to_string()))?;
        if url.scheme() != "https" {
            return Err(MediaClientError::InvalidUrl(
                "the scheme must be https".to_owned(),
            ));
        }
        url.query_pairs_mut().append_pair(WT_TOKEN_PARAM, wt_token);
        let builder = ClientConfig::builder().with_bind_socket(crate::wt::client_socket()?);
        let mut config = match certificate_hash.filter(|h| !h.is_empty()) {
            Some(hash) => builder.with_server_certificate_hashes([digest(hash)?]),
            None => builder.with_native_certs(),
        }
        .build();
        let mut transport = crate::wt::transport();
        transport.receive_window(RECEIVE_WINDOW);
        config
            .quic_config_mut()
            .transport_config(Arc::new(transport));
        let endpoint = Endpoint::client(config)?;
        let conn = endpoint.connect(url.as_str()).await?;
        let (send, recv) = conn
            .open_bi()
            .await?
            .await
            .map_err(|e| MediaClientError::Stream(e.to_string()))?;
        let (tx, received) = mpsc::channel(RECEIVED_QUEUE);
        let streams = Arc::new(AtomicU64::new(0));
        let reader = tokio::spawn(receive(conn.clone(), tx, streams.clone()));
        Ok(MediaClient {
            _endpoint: endpoint,
            conn,
            send,
            recv,
            buffer: Vec::new(),
            received,
            reader,
            streams,
        })
    }

    /// Publishes one frame (of simulcast layer 0) on a stream of its own.
    pub async fn send_frame(
        &self,
        track: u8,
        flags: u8,
        timestamp: u64,
        seq: u32,
        payload: &[u8],
    ) -> Result<(), MediaClientError> {
        self.send_layer_frame(track, flags, 0, timestamp, seq, payload)
            .await
    }

    /// Publishes one frame of simulcast `layer` on a stream of its own.
    pub async fn send_layer_frame(
        &self,
        track: u8,
        flags: u8,
        layer: u8,
        timestamp: u64,
        seq: u32,
        payload: &[u8],
    ) -> Result<(), MediaClientError> {
        let header = FrameHeader {
            track,
            flags,
            layer,
            timestamp,
            seq,
        };
        let mut bytes = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
        bytes.extend_from_slice(&header.encode());
        bytes.extend_from_slice(payload);
        self.send_raw_frame(&bytes).await
    }

    /// Writes `bytes` on a new unidirectional stream as they are (tests send bad frames
    /// so).
    pub async fn send_raw_frame(&self, bytes: &[u8]) -> Result<(), MediaClientError> {
        let mut stream = self
            .conn
            .open_uni()
            .await?
            .await
            .map_err(|e| MediaClientError::Stream(e.to_string()))?;
        stream
            .write_all(bytes)
            .await
            .map_err(|e| MediaClientError::Stream(e.to_string()))
        // Dropping the stream finishes it.
    }

    /// The next frame from another participant; `None` once the session has closed.
    /// Cancel-safe.
    pub async fn next_frame(&mut self) -> Option<Result<ReceivedFrame, MediaClientError>> {
        self.received.recv().await
    }

    /// Asks `publisher` (through the handler) for a key frame on `track`.
    pub async fn request_keyframe(
        &mut self,
        publisher: ParticipantId,
        track: u8,
    ) -> Result<(), MediaClientError> {
        let message = MediaClientMessage::new(media_client_message::Payload::RequestKeyframe(
            RequestKeyframe {
                publisher_participant_id: publisher.to_string(),
                track: u32::from(track),
            },
        ));
        let frame = proto::encode_client(&message)?;
        self.send_control_raw(&frame).await
    }

    /// Chooses the simulcast layer of `publisher`'s video `track` this client receives:
    /// the highest sent that is at most `max_layer`; `None`: the highest sent (the
    /// default).
    pub async fn set_layer(
        &mut self,
        publisher: ParticipantId,
        track: u8,
        max_layer: Option<u8>,
    ) -> Result<(), MediaClientError> {
        let message = MediaClientMessage::new(media_client_message::Payload::SetLayer(SetLayer {
            publisher_participant_id: publisher.to_string(),
            track: u32::from(track),
            max_layer: u32::from(max_layer.unwrap_or(0)),
            highest: max_layer.is_none(),
        }));
        let frame = proto::encode_client(&message)?;
        self.send_control_raw(&frame).await
    }

    /// Writes `bytes` on the control stream as they are (tests send garbage so).
    pub async fn send_control_raw(&mut self, bytes: &[u8]) -> Result<(), MediaClientError> {
        self.send
            .write_all(bytes)
            .await
            .map_err(|e| MediaClientError::Stream(e.to_string()))
    }

    /// The next track the handler asks this client (as a publisher) to send a key frame
    /// on; `None` once the control stream has ended. Cancel-safe.
    pub async fn next_keyframe_request(&mut self) -> Result<Option<u8>, MediaClientError> {
        Ok(self.next_keyframe_ask().await?.map(|(track, _)| track))
    }

    /// The next key frame the handler asks this client (as a publisher) for: the track,
    /// and the simulcast layer when only one is asked for (`None`: every layer); `None`
    /// once the control stream has ended. Cancel-safe.
    pub async fn next_keyframe_ask(
        &mut self,
    ) -> Result<Option<(u8, Option<u8>)>, MediaClientError> {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some((body, used)) = proto::split_frame(&self.buffer)? {
                let payload = proto::decode_server(body)?;
                self.buffer.drain(..used);
                match payload {
                    media_server_message::Payload::KeyframeRequest(ask) => {
                        let track = u8::try_from(ask.track).unwrap_or(u8::MAX);
                        let layer = ask.layer.map(|l| u8::try_from(l).unwrap_or(u8::MAX));
                        return Ok(Some((track, layer)));
                    }
                    // Said to relays only.
                    media_server_message::Payload::PublisherLeft(_) => continue,
                }
            }
            match self.recv.read(&mut chunk).await {
                Ok(Some(n)) => self.buffer.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                Ok(None) | Err(_) => return Ok(None),
            }
        }
    }

    /// How many forwarded streams the handler has opened to this client so far (one per
    /// lane and group of frames: [`proto`]'s "Media frames").
    pub fn streams_received(&self) -> u64 {
        self.streams.load(Ordering::Relaxed)
    }

    /// Waits until the session is closed, and says how.
    pub async fn closed(&self) -> Closed {
        Closed::of(&self.conn).await
    }

    /// Closes the session.
    pub fn close(self) {
        self.conn
            .close(wtransport::VarInt::from_u32(proto::CLOSE_NORMAL), b"");
    }
}

/// Accepts the handler's streams and reads them all at once, each frame into
/// `received` (waiting while it is full), until the session closes.
async fn receive(
    conn: Connection,
    received: mpsc::Sender<Result<ReceivedFrame, MediaClientError>>,
    streams: Arc<AtomicU64>,
) {
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            stream = conn.accept_uni() => match stream {
                Ok(stream) => {
                    streams.fetch_add(1, Ordering::Relaxed);
                    readers.spawn(read_stream(stream, received.clone()));
                }
                Err(_) => return,
            },
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
        }
    }
}

/// Reads one forwarded stream to its end, each frame into `received`.
async fn read_stream(
    stream: RecvStream,
    received: mpsc::Sender<Result<ReceivedFrame, MediaClientError>>,
) {
    let mut stream = match ForwardedStream::open(stream).await {
        Ok(Some(stream)) => stream,
        Ok(None) => return,
        Err(error) => {
            let _ = received.send(Err(error.into())).await;
            return;
        }
    };
    let publisher = stream.publisher();
    loop {
        let frame = match stream.next(0).await {
            Ok(Some((header, mut bytes))) => {
                let received_at = std::time::Instant::now();
                bytes.drain(..FRAME_HEADER_LEN);
                Ok(ReceivedFrame {
                    publisher,
                    header,
                    payload: bytes,
                    received_at,
                })
            }
            Ok(None) => return,
            Err(error) => Err(error.into()),
        };
        let failed = frame.is_err();
        if received.send(frame).await.is_err() || failed {
            return;
        }
    }
}

impl From<ForwardedError> for MediaClientError {
    fn from(e: ForwardedError) -> MediaClientError {
        match e {
            ForwardedError::Stream(e) => MediaClientError::Stream(e),
            ForwardedError::Frame(e) => MediaClientError::Media(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_hashes_are_64_hex_digits() {
        assert_eq!(
            digest(&"ab".repeat(32)).unwrap(),
            Sha256Digest::new([0xab; 32])
        );
        assert!(digest("abc").is_err());
        assert!(digest(&"zz".repeat(32)).is_err());
    }
}
