//! The media wire contract (version 1), shared by the media handler and its clients.
//!
//! # Opening a session
//!
//! A client opens `/media/{meeting_id}?wt_token={token}`. The one-time token is a
//! `wt:token:{token}` for that meeting whose `connection_type` is `media` (a
//! participant's, from its media grant: admitted only while that participant is in the
//! meeting) or `recorder` (a client of the server's own, the recorder or the media
//! benchmark, under an id that never joins; issued only by server-side code, and
//! refused by the meeting controller). Anything else is refused with 403.
//!
//! # Control stream
//!
//! The client opens ONE bidirectional stream first. Each direction is a sequence of
//! frames exactly like the signalling's (a `u32` big-endian length, 1 ..= 64 KiB, then
//! one protobuf message):
//!
//! ```text
//! syntax = "proto3";
//! message MediaClientMessage { uint32 version = 1;
//!   oneof payload { RequestKeyframe request_keyframe = 2;
//!                   PublisherLeft publisher_left = 3;       // 3: relays only (addition)
//!                   SetLayer set_layer = 4; } }             // 4: participants only (addition)
//! message RequestKeyframe { string publisher_participant_id = 1; uint32 track = 2; }
//! message SetLayer { string publisher_participant_id = 1; uint32 track = 2;
//!   uint32 max_layer = 3; bool highest = 4; }
//! message MediaServerMessage { uint32 version = 1;
//!   oneof payload { KeyframeRequest keyframe_request = 2;
//!                   PublisherLeft publisher_left = 3; } }   // 3: relays only (addition)
//! message PublisherLeft { string participant_id = 1; }
//! message KeyframeRequest { uint32 track = 1;      // handler -> publisher
//!   string publisher_participant_id = 2;            // relays only (addition)
//!   optional uint32 layer = 3; }                    // addition
//! ```
//!
//! `version` must be [`VERSION`]; anything malformed closes that session only.
//!
//! # Simulcast layers (an addition to version 1)
//!
//! A publisher may send one video track as several layers (the header's `layer` byte,
//! 0 = the smallest, at most [`MAX_LAYER`]: a higher one is a bad frame and closes the
//! publisher's session), each layer an independent stream of frames with its own key
//! frames and its own sequence numbers. The handler learns the layers a publisher
//! sends from its frames (and keeps them while it is connected), and forwards to each
//! subscriber ONE layer per (publisher, video track):
//!
//! - By default the highest layer that publisher has sent, so a client that never
//!   speaks of layers (or the recorder) receives what it received before simulcast.
//! - `SetLayer` chooses, for one (publisher, track), the highest layer of those the
//!   publisher sends that is at most `max_layer` (the lowest one sent when none is);
//!   `highest = true` goes back to the default. It may be sent before the publisher's
//!   first frame (the handler keeps such choices for at most 16 publishers it has not
//!   seen in the meeting, and ignores more); it holds until the subscriber leaves, or
//!   until the publisher does. Audio has no layers: every
//!   audio frame is forwarded, and a `SetLayer` naming track 0 (or `max_layer` above
//!   [`MAX_LAYER`]) closes the session for a protocol error.
//! - A subscriber changes layer only at a key frame of the new layer: it keeps the old
//!   layer until then, and the publisher is sent a `KeyframeRequest` naming the new
//!   layer (`layer`). A `KeyframeRequest` without `layer` asks for a key frame on
//!   every layer of the track (a publisher that knows no layers just sends one). A
//!   subscriber's `RequestKeyframe` is put to the publisher for the layer that
//!   subscriber receives (before its first frame: the one it is to receive).
//! - Relays carry every layer (a relay's frames are never filtered); the receiving
//!   handler picks the layer of each of its own subscribers. `SetLayer` is said by
//!   participants only: over a relay it closes the relay for a protocol error.
//! - A subscriber falling behind drops its layer until that layer's next key frame, and
//!   the publisher is asked for one naming the layer; a relay falling behind does so
//!   per layer too. Across a relay a key frame is asked for every layer. A subscriber
//!   whose queue is still full at that key frame waits for the next without another
//!   request; one still full at 3 key frames in a row (and behind for 10 s) is moved to
//!   the next lower layer sent, as if it had chosen it with `SetLayer`, or on the
//!   lowest is closed with [`CLOSE_BY_HANDLER`] and a reason starting `behind`.
//!
//! # Key frame requests
//!
//! The handler sends a publisher at most one `KeyframeRequest` per (track, layer) every
//! 500 ms (one without `layer` counts for every layer of the track), however many
//! subscribers ask or however often: a request within that time is held back, sent
//! once it has passed, and dropped when a key frame of that layer arrives first.
//!
//! # Relays between handlers (an addition to version 1)
//!
//! One meeting's participants may be connected to several handlers; each pair of them
//! relays the meeting over ONE session. The handler whose id sorts first opens it, at
//! `/relay/{meeting_id}?wt_token={token}` on the other's endpoint, pinning the
//! certificate hash the other registered (`media_handlers.metadata.certificate_hash`).
//! The token is a one-time `wt:token:{token}` with `connection_type` `relay`, issued by
//! the opening handler through the shared repository (so only a process holding the
//! repository's credentials can open a relay); `/media/` refuses it, and `/relay/`
//! refuses every other kind (403).
//!
//! - The opening handler opens one bidirectional control stream, exactly like a
//!   participant; it sends `MediaClientMessage`s and receives `MediaServerMessage`s.
//!   Asking for a key frame of a publisher connected to the other handler is, from the
//!   opener, `RequestKeyframe` (as a participant asks) and, from the other side,
//!   `KeyframeRequest` with `publisher_participant_id` set. A request that arrives over
//!   a relay is put to the publisher if it is connected to the handler receiving it, and
//!   otherwise dropped (it never crosses a second relay).
//! - When a participant whose frames a handler relayed leaves, it tells the other side
//!   `PublisherLeft` (either direction), so that side records its participants'
//!   subscriptions to that publisher's streams as ended; a departure is never dropped,
//!   and is sent before any key frame request waiting. A participant's session that
//!   sends `PublisherLeft` is closed for a protocol error.
//! - Both sides send frames as the handler sends them to a participant (forwarded
//!   streams, below), under the ORIGINAL publisher's id; every layer is a lane of its
//!   own. A frame larger than [`MAX_MEDIA_FRAME`] or a malformed one closes the relay.
//!   Each handler sends over a relay only
//!   the frames of the participants connected to it, and forwards a frame relayed in
//!   only to its own participants: a frame crosses one relay at most and never loops.
//!   A relayed frame naming a participant connected to the receiving handler is dropped.
//! - A relay falling behind is treated like a slow subscriber (it drops that publisher's
//!   video until the next key frame and the publisher is asked for one); a participant
//!   falling behind on a relayed publisher has the key frame asked for across the relay.
//!
//! # Media frames
//!
//! Publisher to handler: every encoded frame on its own unidirectional stream, closed
//! after the frame: the [`FrameHeader`] (16 bytes), then the payload to the end of the
//! stream, at most [`MAX_MEDIA_FRAME`] (1 MiB) in all; a larger one closes the session.
//! A frame must arrive whole within 10 s, or it is dropped and its stream stopped
//! (`STOP_SENDING` with [`CLOSE_PROTOCOL_ERROR`]); more than 16 MiB held at once in a
//! session's frames not yet whole closes it (`too_much_unfinished`).
//!
//! Handler to subscriber (and across a relay), forwarded streams: one unidirectional
//! stream per lane, a (publisher, track, layer), starting with the publisher's
//! participant id as 16 raw UUID bytes, then one or more of the publisher's frames
//! unchanged, each behind its length ([`LENGTH_LEN`] bytes, `u32` big-endian,
//! [`FRAME_HEADER_LEN`] ..= [`MAX_MEDIA_FRAME`]). The handler starts a new stream for a
//! lane at its first frame and at each video key frame (audio frames stay on their
//! stream), finishes a lane's stream after 10 s without a frame, and keeps at most 48
//! open at once (finishing the one used longest ago), so a receiver reads every
//! stream it is given, all at once, each to its end; frames of one lane may arrive on
//! two streams at a key frame, so a receiver orders a lane by sequence number as it
//! always had to. This is a change to version 1's one stream per frame, which cost
//! both ends a stream for every frame and every subscriber.
//!
//! ```text
//! byte 0      version = 1
//! byte 1      track: 0 audio (Opus), 1 camera video, 2 screen video
//! byte 2      flags: bit 0 key frame, bit 1 end-to-end encrypted
//! byte 3      layer: simulcast/spatial layer, 0 = lowest
//! bytes 4-11  timestamp in microseconds, u64 big-endian
//! bytes 12-15 sequence number per (publisher, track, layer), u32 big-endian
//! ```

use prost::Message as _;

pub use crate::controller::proto::{FrameError, HEADER_LEN, MAX_FRAME, frame_length, split_frame};

/// The version of the control messages and of the media frame header.
pub const VERSION: u32 = 1;
/// Bytes of a media frame's header.
pub const FRAME_HEADER_LEN: usize = 16;
/// Bytes of the publisher id at the start of a forwarded stream.
pub const PUBLISHER_LEN: usize = 16;
/// Bytes of the length in front of each frame on a forwarded stream.
pub const LENGTH_LEN: usize = 4;
/// Bytes in front of a frame that starts a forwarded stream: the publisher id and the
/// frame's length.
pub const FORWARD_PREFIX: usize = PUBLISHER_LEN + LENGTH_LEN;
/// The largest media frame, header included (1 MiB).
pub const MAX_MEDIA_FRAME: usize = 1024 * 1024;
/// The highest simulcast layer a media frame may carry.
pub const MAX_LAYER: u8 = 7;
/// The highest track number.
pub const MAX_TRACK: u8 = 2;
/// Track 0: audio (Opus).
pub const TRACK_AUDIO: u8 = 0;
/// Track 1: camera video.
pub const TRACK_CAMERA: u8 = 1;
/// Track 2: screen video.
pub const TRACK_SCREEN: u8 = 2;
/// Flag bit 0: a key frame.
pub const FLAG_KEY: u8 = 0b01;
/// Flag bit 1: the payload is end-to-end encrypted.
pub const FLAG_E2E: u8 = 0b10;

/// Application error code of a media session closed normally.
pub const CLOSE_NORMAL: u32 = 0;
/// Application error code of a media session closed for a protocol error (a malformed
/// control message, a bad or oversized media frame).
pub const CLOSE_PROTOCOL_ERROR: u32 = 1;
/// Application error code of a media session closed by the handler: shutdown, or (its
/// reason says which) a subscriber that stayed behind (`behind: ...`), a participant
/// no longer in the meeting (`left: ...`) or a session replaced by a newer one of the
/// same participant (`replaced: ...`).
pub const CLOSE_BY_HANDLER: u32 = 3;

/// A message from a media client on the control stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MediaClientMessage {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(oneof = "media_client_message::Payload", tags = "2, 3, 4")]
    pub payload: Option<media_client_message::Payload>,
}

/// The payloads of [`MediaClientMessage`].
pub mod media_client_message {
    /// What a media client says.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        #[prost(message, tag = "2")]
        RequestKeyframe(super::RequestKeyframe),
        /// Relays only.
        #[prost(message, tag = "3")]
        PublisherLeft(super::PublisherLeft),
        /// Participants only (simulcast, an addition to version 1).
        #[prost(message, tag = "4")]
        SetLayer(super::SetLayer),
    }
}

/// A subscriber chooses which simulcast layer of (publisher, track) it receives: the
/// highest one sent that is at most `max_layer`, or (with `highest`) the highest one
/// sent, the default.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SetLayer {
    #[prost(string, tag = "1")]
    pub publisher_participant_id: String,
    #[prost(uint32, tag = "2")]
    pub track: u32,
    #[prost(uint32, tag = "3")]
    pub max_layer: u32,
    #[prost(bool, tag = "4")]
    pub highest: bool,
}

/// A subscriber asks a publisher (through the handler) for a key frame on `track`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestKeyframe {
    #[prost(string, tag = "1")]
    pub publisher_participant_id: String,
    #[prost(uint32, tag = "2")]
    pub track: u32,
}

/// A message from the media handler on the control stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MediaServerMessage {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(oneof = "media_server_message::Payload", tags = "2, 3")]
    pub payload: Option<media_server_message::Payload>,
}

/// The payloads of [`MediaServerMessage`].
pub mod media_server_message {
    /// What the media handler says.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        #[prost(message, tag = "2")]
        KeyframeRequest(super::KeyframeRequest),
        /// Relays only.
        #[prost(message, tag = "3")]
        PublisherLeft(super::PublisherLeft),
    }
}

/// On a relay: a participant connected to the sending handler, whose frames it relayed,
/// has left (the receiving handler counts its subscribers' subscriptions down).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PublisherLeft {
    #[prost(string, tag = "1")]
    pub participant_id: String,
}

/// The handler asks a publisher to send a key frame on `track`. On a relay session
/// (`publisher_participant_id`, an addition to version 1) it names which publisher of
/// the opening handler is asked; a participant's session never carries it (empty).
/// `layer` (simulcast, an addition) names the one layer a key frame is needed on;
/// `None`: every layer of the track.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeyframeRequest {
    #[prost(uint32, tag = "1")]
    pub track: u32,
    #[prost(string, tag = "2")]
    pub publisher_participant_id: String,
    #[prost(uint32, optional, tag = "3")]
    pub layer: Option<u32>,
}

impl MediaClientMessage {
    /// A version-1 message carrying `payload`.
    pub fn new(payload: media_client_message::Payload) -> MediaClientMessage {
        MediaClientMessage {
            version: VERSION,
            payload: Some(payload),
        }
    }
}

impl MediaServerMessage {
    /// A version-1 message carrying `payload`.
    pub fn new(payload: media_server_message::Payload) -> MediaServerMessage {
        MediaServerMessage {
            version: VERSION,
            payload: Some(payload),
        }
    }
}

/// One frame holding `message`: the 4-byte big-endian length, then the encoding.
fn frame<M: prost::Message>(message: &M) -> Result<Vec<u8>, FrameError> {
    let len = message.encoded_len();
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    message
        .encode(&mut out)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok(out)
}

/// The control frame of a client message.
pub fn encode_client(message: &MediaClientMessage) -> Result<Vec<u8>, FrameError> {
    frame(message)
}

/// The control frame of a server message.
pub fn encode_server(message: &MediaServerMessage) -> Result<Vec<u8>, FrameError> {
    frame(message)
}

fn check_size(body: &[u8]) -> Result<(), FrameError> {
    match body.len() {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME => Err(FrameError::TooLarge(n)),
        _ => Ok(()),
    }
}

/// Decodes a control frame body as a version-1 client message with a payload.
pub fn decode_client(body: &[u8]) -> Result<media_client_message::Payload, FrameError> {
    check_size(body)?;
    let message =
        MediaClientMessage::decode(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if message.version != VERSION {
        return Err(FrameError::UnsupportedVersion(message.version));
    }
    message.payload.ok_or(FrameError::NoPayload)
}

/// Decodes a control frame body as a version-1 server message with a payload.
pub fn decode_server(body: &[u8]) -> Result<media_server_message::Payload, FrameError> {
    check_size(body)?;
    let message =
        MediaServerMessage::decode(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if message.version != VERSION {
        return Err(FrameError::UnsupportedVersion(message.version));
    }
    message.payload.ok_or(FrameError::NoPayload)
}

/// The 16-byte header in front of every media frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// 0 audio, 1 camera video, 2 screen video.
    pub track: u8,
    /// Bit 0 key frame ([`FLAG_KEY`]), bit 1 end-to-end encrypted ([`FLAG_E2E`]).
    pub flags: u8,
    /// Simulcast/spatial layer, 0 = lowest.
    pub layer: u8,
    /// The encoder's timestamp, in microseconds.
    pub timestamp: u64,
    /// Sequence number per (publisher, track, layer).
    pub seq: u32,
}

/// Why bytes are not a media frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaFrameError {
    #[error("a media frame needs its {FRAME_HEADER_LEN}-byte header ({0} bytes received)")]
    Short(usize),
    #[error("media frame version {0} is not supported (this handler speaks {VERSION})")]
    UnsupportedVersion(u8),
    #[error("track {0} does not exist (0 audio, 1 camera, 2 screen)")]
    UnknownTrack(u8),
    #[error("layer {0} is above the highest simulcast layer, {MAX_LAYER}")]
    UnknownLayer(u8),
    #[error("a media frame larger than {MAX_MEDIA_FRAME} bytes")]
    TooLarge,
}

impl FrameHeader {
    /// Whether this is a key frame.
    pub fn is_key(&self) -> bool {
        self.flags & FLAG_KEY != 0
    }

    /// The header's 16 bytes.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[0] = 1;
        out[1] = self.track;
        out[2] = self.flags;
        out[3] = self.layer;
        out[4..12].copy_from_slice(&self.timestamp.to_be_bytes());
        out[12..16].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Reads the header at the front of `bytes` (a whole frame or its start).
    pub fn parse(bytes: &[u8]) -> Result<FrameHeader, MediaFrameError> {
        let Some(h) = bytes.first_chunk::<FRAME_HEADER_LEN>() else {
            return Err(MediaFrameError::Short(bytes.len()));
        };
        if u32::from(h[0]) != VERSION {
            return Err(MediaFrameError::UnsupportedVersion(h[0]));
        }
        if h[1] > MAX_TRACK {
            return Err(MediaFrameError::UnknownTrack(h[1]));
        }
        if h[3] > MAX_LAYER {
            return Err(MediaFrameError::UnknownLayer(h[3]));
        }
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&h[4..12]);
        let mut seq = [0u8; 4];
        seq.copy_from_slice(&h[12..16]);
        Ok(FrameHeader {
            track: h[1],
            flags: h[2],
            layer: h[3],
            timestamp: u64::from_be_bytes(timestamp),
            seq: u32::from_be_bytes(seq),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_header_round_trips_and_bad_ones_are_refused() {
        let header = FrameHeader {
            track: TRACK_SCREEN,
            flags: FLAG_KEY | FLAG_E2E,
            layer: 0,
            timestamp: 0x0102_0304_0506_0708,
            seq: 0xdead_beef,
        };
        let bytes = header.encode();
        assert_eq!(bytes[..4], [1, 2, 3, 0]);
        assert_eq!(bytes[4..12], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(bytes[12..], [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(FrameHeader::parse(&bytes), Ok(header));
        assert!(header.is_key());
        assert_eq!(
            FrameHeader::parse(&bytes[..15]),
            Err(MediaFrameError::Short(15))
        );
        let mut v2 = bytes;
        v2[0] = 2;
        assert_eq!(
            FrameHeader::parse(&v2),
            Err(MediaFrameError::UnsupportedVersion(2))
        );
        let mut track = bytes;
        track[1] = 3;
        assert_eq!(
            FrameHeader::parse(&track),
            Err(MediaFrameError::UnknownTrack(3))
        );
        let mut layer = bytes;
        layer[3] = MAX_LAYER;
        assert!(FrameHeader::parse(&layer).is_ok());
        layer[3] = MAX_LAYER + 1;
        assert_eq!(
            FrameHeader::parse(&layer),
            Err(MediaFrameError::UnknownLayer(MAX_LAYER + 1))
        );
    }

    #[test]
    fn control_messages_round_trip_and_garbage_is_refused() {
        let ask = MediaClientMessage::new(media_client_message::Payload::RequestKeyframe(
            RequestKeyframe {
                publisher_participant_id: "p".into(),
                track: 1,
            },
        ));
        let bytes = encode_client(&ask).unwrap();
        let (body, used) = split_frame(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(decode_client(body).unwrap(), ask.payload.unwrap());
        let tell = MediaServerMessage::new(media_server_message::Payload::KeyframeRequest(
            KeyframeRequest {
                track: 0,
                publisher_participant_id: String::new(),
                layer: Some(1),
            },
        ));
        let bytes = encode_server(&tell).unwrap();
        let (body, _) = split_frame(&bytes).unwrap().unwrap();
        assert_eq!(decode_server(body).unwrap(), tell.payload.unwrap());
        let choose = MediaClientMessage::new(media_client_message::Payload::SetLayer(SetLayer {
            publisher_participant_id: "p".into(),
            track: 1,
            max_layer: 0,
            highest: false,
        }));
        let bytes = encode_client(&choose).unwrap();
        let (body, _) = split_frame(&bytes).unwrap().unwrap();
        assert_eq!(decode_client(body).unwrap(), choose.payload.unwrap());
        assert!(decode_client(b"\xff\xff\xff\xff").is_err());
        let v2 = MediaClientMessage {
            version: 2,
            payload: None,
        };
        assert_eq!(
            decode_client(&v2.encode_to_vec()),
            Err(FrameError::UnsupportedVersion(2))
        );
    }
}
