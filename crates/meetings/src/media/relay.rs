//! Relaying one meeting between media handlers ([`super::proto`] describes the wire).
//!
//! Every handler keeps the meetings it has participants of in the meeting's
//! `tavern:meetings:meeting:{meeting_id}:media_handlers` set ([`Repo::serve_meeting_media`],
//! refreshed every [`super::HandlerConfig::relay_every`] and at once when a participant
//! comes or goes) and reads who else is there. For each other handler in the set whose id
//! sorts after its own it opens a relay session (so each pair has exactly one), and
//! closes it once either side no longer has participants of the meeting. Both ends of a
//! relay are a [`Relay`] in the meeting's room: a subscriber of the local publishers and
//! the source of the other side's.
//!
//! [`Repo::serve_meeting_media`]: crate::Repo::serve_meeting_media

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wtransport::endpoint::SessionRequest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream};

use super::Shared;
use super::forwarded::{self, ForwardedError, ForwardedStream};
use super::proto::{
    self, FrameError, KeyframeRequest, MediaClientMessage, MediaFrameError, MediaServerMessage,
    PublisherLeft, RequestKeyframe, media_client_message, media_server_message,
};
use super::session::{self, Close, Relay, RelayControl, RelayOutbox};
use crate::MeetingsError;
use crate::domain::{
    HandlerId, Liveness, MeetingId, ParticipantId, ServiceConnection, WT_TOKEN_PARAM,
};
use crate::repo::ConnectionGrant;

/// Key frame requests decoded ahead of the relay's handling.
const INBOUND_QUEUE: usize = 16;

/// Which end of a relay session this handler is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// It opened the session (its id sorts first): it speaks as a media client.
    Opener,
    /// The other handler opened it: it speaks as the media handler.
    Acceptor,
}

/// Why a relay could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Repo(#[from] MeetingsError),
    #[error("the handler registered a bad endpoint: {0}")]
    Endpoint(String),
    #[error("the handler registered a bad certificate hash")]
    CertificateHash,
    #[error("could not open a local UDP socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("no session within the timeout")]
    TimedOut,
    #[error("it stopped heartbeating")]
    NotAlive,
}

/// Keeps this handler's relays matching the meetings it serves, until it stops; then
/// leaves every meeting's set.
pub(super) async fn manage(shared: Arc<Shared>) {
    let me = shared.config.handler_id.clone();
    let mut every = tokio::time::interval(shared.config.relay_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut served: HashSet<MeetingId> = HashSet::new();
    let mut opened: HashMap<(MeetingId, HandlerId), (CancellationToken, JoinHandle<()>)> =
        HashMap::new();
    loop {
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            () = shared.relay_wake.notified() => {}
            _ = every.tick() => {}
        }
        let local: HashSet<MeetingId> = shared.rooms.local_meetings().into_iter().collect();
        for gone in served.difference(&local) {
            if let Err(error) = shared.repo.leave_meeting_media(*gone, &me).await {
                tracing::warn!(meeting = %gone, %error, "could not leave a meeting's media handlers");
            }
        }
        let mut wanted = HashSet::new();
        for meeting in &local {
            match shared.repo.serve_meeting_media(*meeting, &me).await {
                Ok(handlers) => wanted.extend(
                    handlers
                        .into_iter()
                        .filter(|h| h.as_str() > me.as_str())
                        .map(|h| (*meeting, h)),
                ),
                Err(error) => {
                    tracing::warn!(%meeting, %error, "could not read a meeting's media handlers");
                    // Keeps what it has until the registry answers again.
                    wanted.extend(opened.keys().filter(|(m, _)| m == meeting).cloned());
                }
            }
        }
        served = local;
        opened.retain(|key, (cancel, task)| {
            if wanted.contains(key) {
                !task.is_finished()
            } else {
                cancel.cancel();
                false
            }
        });
        for (meeting, peer) in wanted {
            if opened.contains_key(&(meeting, peer.clone())) {
                continue;
            }
            let cancel = CancellationToken::new();
            let span = tracing::info_span!("media_relay_out", %meeting, peer = %peer);
            let task = tokio::spawn(
                open(shared.clone(), meeting, peer.clone(), cancel.clone()).instrument(span),
            );
            opened.insert((meeting, peer), (cancel, task));
        }
    }
    for (_, (cancel, task)) in opened {
        cancel.cancel();
        let _ = task.await;
    }
    for meeting in served {
        if let Err(error) = shared.repo.leave_meeting_media(meeting, &me).await {
            tracing::warn!(%meeting, %error, "could not leave a meeting's media handlers");
        }
    }
}

/// Opens the relay of `meeting` to handler `peer` and runs it until `cancel`, the
/// handler stops or the session ends.
async fn open(shared: Arc<Shared>, meeting: MeetingId, peer: HandlerId, cancel: CancellationToken) {
    let connected = tokio::select! {
        () = cancel.cancelled() => return,
        () = shared.stop.cancelled() => return,
        connected = connect(&shared, meeting, &peer) => connected,
    };
    let (_endpoint, conn, send, recv) = match connected {
        Ok(connected) => connected,
        Err(OpenError::NotAlive) => {
            // Its place in the meeting's set outlives it while others refresh the set.
            tracing::info!(
                "a media handler that stopped heartbeating leaves the meeting's handlers"
            );
            if let Err(error) = shared.repo.leave_meeting_media(meeting, &peer).await {
                tracing::warn!(%error, "could not remove a stopped media handler from a meeting");
            }
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "could not open a relay to another media handler");
            return;
        }
    };
    tracing::info!("relay to another media handler open");
    let ending = run(
        &shared,
        meeting,
        peer.to_string(),
        &conn,
        send,
        recv,
        Side::Opener,
        &cancel,
    )
    .await;
    tracing::info!(code = ending.code, reason = %ending.reason, "relay closed");
    session::close(&conn, &ending);
}

/// The relay session to `peer` for `meeting`, with its control stream.
async fn connect(
    shared: &Shared,
    meeting: MeetingId,
    peer: &HandlerId,
) -> Result<
    (
        Endpoint<wtransport::endpoint::endpoint_side::Client>,
        Connection,
        SendStream,
        RecvStream,
    ),
    OpenError,
> {
    let registered = shared
        .repo
        .live_media_handler(peer, &Liveness::default())
        .await?
        .ok_or(OpenError::NotAlive)?;
    let token = shared
        .repo
        .issue_service_token(meeting, ParticipantId::random(), ServiceConnection::Relay)
        .await?;
    let base = registered.endpoint.trim_end_matches('/');
    let mut url = url::Url::parse(&format!("{base}/relay/{meeting}"))
        .map_err(|e| OpenError::Endpoint(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair(WT_TOKEN_PARAM, token.expose());
    let builder = ClientConfig::builder().with_bind_socket(crate::wt::client_socket()?);
    let mut config = match registered
        .certificate_hash
        .as_deref()
        .filter(|h| !h.is_empty())
    {
        Some(hash) => builder.with_server_certificate_hashes([
            super::client::digest(hash).map_err(|_| OpenError::CertificateHash)?
        ]),
        None => builder.with_native_certs(),
    }
    .build();
    config
        .quic_config_mut()
        .transport_config(Arc::new(crate::wt::transport()));
    let endpoint = Endpoint::client(config)?;
    let opening = async {
        let conn = endpoint
            .connect(url.as_str())
            .await
            .map_err(|e| OpenError::Connect(e.to_string()))?;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| OpenError::Connect(e.to_string()))?
            .await
            .map_err(|e| OpenError::Connect(e.to_string()))?;
        Ok::<_, OpenError>((conn, send, recv))
    };
    let (conn, send, recv) = tokio::time::timeout(shared.config.open_timeout, opening)
        .await
        .map_err(|_| OpenError::TimedOut)??;
    Ok((endpoint, conn, send, recv))
}

/// Serves a relay another handler opened (its token already redeemed).
pub(super) async fn accept(
    shared: Arc<Shared>,
    request: SessionRequest,
    grant: ConnectionGrant,
    peer: SocketAddr,
) {
    let (conn, send, recv) =
        match crate::wt::open(request, &shared.stop, shared.config.open_timeout).await {
            Ok(opened) => opened,
            Err(crate::wt::NotOpened::Lost) => return,
            Err(crate::wt::NotOpened::Stopping(conn)) => {
                session::close(&conn, &Close::shutdown());
                return;
            }
            Err(crate::wt::NotOpened::TimedOut(conn)) => {
                session::close(
                    &conn,
                    &Close::protocol("open_timeout", "no control stream within the timeout"),
                );
                return;
            }
        };
    tracing::info!("relay from another media handler open");
    let ending = run(
        &shared,
        grant.meeting_id,
        peer.to_string(),
        &conn,
        send,
        recv,
        Side::Acceptor,
        &CancellationToken::new(),
    )
    .await;
    tracing::info!(code = ending.code, reason = %ending.reason, "relay closed");
    session::close(&conn, &ending);
}

/// Runs one end of a relay: attached to the meeting's room until the session ends,
/// `cancel`, or the handler stops; says why it ended.
#[allow(clippy::too_many_arguments)]
async fn run(
    shared: &Arc<Shared>,
    meeting: MeetingId,
    peer: String,
    conn: &Connection,
    send: SendStream,
    recv: RecvStream,
    side: Side,
    cancel: &CancellationToken,
) -> Close {
    let (relay, frames_rx, control_rx) = Relay::new(peer, shared.config.subscriber_queue);
    let media_writer = tokio::spawn(forwarded::write_media(
        shared.clone(),
        conn.clone(),
        frames_rx,
    ));
    let control_writer = tokio::spawn(write_control(send, control_rx, side));
    let (inbound_tx, mut inbound) = mpsc::channel(INBOUND_QUEUE);
    let decode = match side {
        Side::Opener => decode_from_acceptor,
        Side::Acceptor => decode_from_opener,
    };
    let reader = tokio::spawn(crate::wt::read_frames(recv, inbound_tx, decode).in_current_span());
    shared.rooms.attach_relay(meeting, relay.clone());

    let mut incoming = JoinSet::new();
    let ending = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                break Close::new(proto::CLOSE_NORMAL, "the relay is no longer needed");
            }
            () = shared.stop.cancelled() => break Close::shutdown(),
            Some(done) = incoming.join_next(), if !incoming.is_empty() => {
                if let Ok(Err(close)) = done {
                    break close;
                }
            }
            told = inbound.recv() => match told {
                None => break Close::new(proto::CLOSE_NORMAL, "the control stream closed"),
                Some(Err(error)) => break Close::protocol(error.code(), &error),
                Some(Ok(RelayControl::Keyframe(publisher, track))) => {
                    if !shared.rooms.request_keyframe(meeting, publisher, track, true) {
                        tracing::debug!(%publisher, "relayed keyframe request for a publisher not here");
                    }
                }
                Some(Ok(RelayControl::Left(publisher))) => {
                    shared.rooms.relayed_publisher_left(meeting, &relay, publisher);
                }
            },
            stream = conn.accept_uni() => match stream {
                Ok(stream) => {
                    incoming.spawn(
                        relayed(shared.clone(), meeting, relay.clone(), stream).in_current_span(),
                    );
                }
                Err(_) => break Close::new(proto::CLOSE_NORMAL, "the connection closed"),
            },
        }
    };
    shared.rooms.detach_relay(meeting, &relay);
    reader.abort();
    incoming.abort_all();
    media_writer.abort();
    control_writer.abort();
    ending
}

/// Reads a relayed stream (the original publisher's id, then its frames) and forwards
/// each frame to this handler's participants; a bad or oversized one ends the relay.
async fn relayed(
    shared: Arc<Shared>,
    meeting: MeetingId,
    relay: Arc<Relay>,
    stream: RecvStream,
) -> Result<(), Close> {
    let bad = |error: MediaFrameError| {
        let code = match error {
            MediaFrameError::TooLarge => "frame_too_large",
            _ => "invalid_frame",
        };
        Close::protocol(code, error)
    };
    let mut stream = match ForwardedStream::open(stream).await {
        Ok(Some(stream)) => stream,
        Ok(None) => return Ok(()),
        Err(ForwardedError::Frame(error)) => return Err(bad(error)),
        // A reset stream or a lost connection: nothing to forward.
        Err(ForwardedError::Stream(_)) => return Ok(()),
    };
    let publisher = stream.publisher();
    loop {
        let (header, frame) = match stream.next(proto::FORWARD_PREFIX).await {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(ForwardedError::Stream(_)) => return Ok(()),
            Err(ForwardedError::Frame(error)) => return Err(bad(error)),
        };
        shared.meter.count(frame.len() - proto::FORWARD_PREFIX);
        let frame = forwarded::seal(publisher, frame);
        if shared
            .rooms
            .forward_relayed(meeting, &relay, publisher, &header, &frame)
            .is_none()
        {
            tracing::debug!(%publisher, peer = %relay.peer,
                "relayed frame naming a participant connected here dropped");
        }
    }
}

/// The control frame of `told`, as `side` speaks.
fn encode(told: RelayControl, side: Side) -> Result<Vec<u8>, FrameError> {
    match (told, side) {
        (RelayControl::Keyframe(publisher, track), Side::Opener) => {
            proto::encode_client(&MediaClientMessage::new(
                media_client_message::Payload::RequestKeyframe(RequestKeyframe {
                    publisher_participant_id: publisher.to_string(),
                    track: u32::from(track),
                }),
            ))
        }
        (RelayControl::Keyframe(publisher, track), Side::Acceptor) => {
            proto::encode_server(&MediaServerMessage::new(
                media_server_message::Payload::KeyframeRequest(KeyframeRequest {
                    track: u32::from(track),
                    publisher_participant_id: publisher.to_string(),
                    layer: None,
                }),
            ))
        }
        (RelayControl::Left(publisher), Side::Opener) => {
            proto::encode_client(&MediaClientMessage::new(
                media_client_message::Payload::PublisherLeft(PublisherLeft {
                    participant_id: publisher.to_string(),
                }),
            ))
        }
        (RelayControl::Left(publisher), Side::Acceptor) => {
            proto::encode_server(&MediaServerMessage::new(
                media_server_message::Payload::PublisherLeft(PublisherLeft {
                    participant_id: publisher.to_string(),
                }),
            ))
        }
    }
}

/// Writes what is to be told to the other side, framed as `side` speaks, until the
/// queue closes or the stream fails.
async fn write_control(mut send: SendStream, mut told: RelayOutbox, side: Side) {
    while let Some(told) = told.recv().await {
        let framed = encode(told, side);
        let framed = match framed {
            Ok(framed) => framed,
            Err(error) => {
                tracing::warn!(%error, "a relayed keyframe request could not be framed; skipped");
                continue;
            }
        };
        if send.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// A participant id, or why not.
fn participant_of(id: &str) -> Result<ParticipantId, FrameError> {
    ParticipantId::parse(id)
        .map_err(|_| FrameError::Malformed("a relay's message needs a participant id".to_owned()))
}

/// A publisher id and a track of 0 to 2, or why not.
fn ask_of(publisher: &str, track: u32) -> Result<RelayControl, FrameError> {
    let publisher = ParticipantId::parse(publisher).map_err(|_| {
        FrameError::Malformed("a relayed keyframe request needs a participant id".to_owned())
    })?;
    let track = u8::try_from(track)
        .ok()
        .filter(|t| *t <= proto::MAX_TRACK)
        .ok_or_else(|| FrameError::Malformed("track must be 0 to 2".to_owned()))?;
    Ok(RelayControl::Keyframe(publisher, track))
}

/// What the opening handler tells (`RequestKeyframe`, `PublisherLeft`).
fn decode_from_opener(body: &[u8]) -> Result<RelayControl, FrameError> {
    match proto::decode_client(body)? {
        media_client_message::Payload::RequestKeyframe(ask) => {
            ask_of(&ask.publisher_participant_id, ask.track)
        }
        media_client_message::Payload::PublisherLeft(left) => {
            participant_of(&left.participant_id).map(RelayControl::Left)
        }
        media_client_message::Payload::SetLayer(_) => Err(FrameError::Malformed(
            "SetLayer is said by participants only".to_owned(),
        )),
    }
}

/// What the accepting handler tells (`KeyframeRequest` naming the publisher,
/// `PublisherLeft`).
fn decode_from_acceptor(body: &[u8]) -> Result<RelayControl, FrameError> {
    match proto::decode_server(body)? {
        media_server_message::Payload::KeyframeRequest(ask) => {
            ask_of(&ask.publisher_participant_id, ask.track)
        }
        media_server_message::Payload::PublisherLeft(left) => {
            participant_of(&left.participant_id).map(RelayControl::Left)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_keyframe_requests_must_name_a_publisher_and_a_track() {
        let p = ParticipantId::random();
        let from_acceptor = proto::encode_server(&MediaServerMessage::new(
            media_server_message::Payload::KeyframeRequest(KeyframeRequest {
                track: 1,
                publisher_participant_id: p.to_string(),
                layer: None,
            }),
        ))
        .unwrap();
        let (body, _) = proto::split_frame(&from_acceptor).unwrap().unwrap();
        assert_eq!(
            decode_from_acceptor(body).unwrap(),
            RelayControl::Keyframe(p, 1)
        );
        for side in [Side::Opener, Side::Acceptor] {
            let left = encode(RelayControl::Left(p), side).unwrap();
            let (body, _) = proto::split_frame(&left).unwrap().unwrap();
            let decoded = match side {
                Side::Opener => decode_from_opener(body),
                Side::Acceptor => decode_from_acceptor(body),
            };
            assert_eq!(decoded.unwrap(), RelayControl::Left(p));
        }
        // A participant's kind of request (no publisher) is not a relay's.
        let bare = proto::encode_server(&MediaServerMessage::new(
            media_server_message::Payload::KeyframeRequest(KeyframeRequest {
                track: 1,
                publisher_participant_id: String::new(),
                layer: None,
            }),
        ))
        .unwrap();
        let (body, _) = proto::split_frame(&bare).unwrap().unwrap();
        assert!(decode_from_acceptor(body).is_err());
        let bad_track = proto::encode_client(&MediaClientMessage::new(
            media_client_message::Payload::RequestKeyframe(RequestKeyframe {
                publisher_participant_id: p.to_string(),
                track: 3,
            }),
        ))
        .unwrap();
        let (body, _) = proto::split_frame(&bad_track).unwrap().unwrap();
        assert!(decode_from_opener(body).is_err());
    }
}
