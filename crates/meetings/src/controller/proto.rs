//! The signalling protocol between a participant and its meeting controller: protobuf
//! messages (prost derives, no `.proto` build step) in length-prefixed frames on one
//! WebTransport bidirectional stream.
//!
//! # Wire format (version 1)
//!
//! The client opens the session at `webtransport_url?wt_token={token}`, then opens one
//! bidirectional stream. Each direction is a sequence of frames:
//!
//! ```text
//! +--------------------------+-------------------------------+
//! | length: u32, big-endian  | `length` bytes: one protobuf  |
//! | (1 ..= 65_536)           | ClientMessage / ServerMessage |
//! +--------------------------+-------------------------------+
//! ```
//!
//! A frame longer than [`MAX_FRAME`] (64 KiB) or of length 0 is a protocol error. The
//! client sends [`ClientMessage`]s, the server [`ServerMessage`]s; both carry `version`
//! (field 1, always [`VERSION`]) and exactly one payload (a protobuf `oneof`). The first
//! client message must be a `JoinRequest` (within the join timeout); the server answers
//! `JoinResponse` or `Error`. After an `Error` that ends the session for a reason the
//! client must know (its join refused, say) the controller waits up to 2 s for the
//! client to close the connection, having read it, before closing it itself: a browser
//! drops what it has not yet read when the connection closes, and is not shown the
//! close's code and reason either (wtransport closes the QUIC connection, which a
//! browser reports as lost). A protocol error (bad length, undecodable bytes, another
//! version, no payload, a message out of turn) is answered with `Error` and the
//! session is closed with application error code [`CLOSE_PROTOCOL_ERROR`] and the reason.
//!
//! The schema, as a `.proto` a browser client may compile (or hand-encode):
//!
//! ```text
//! syntax = "proto3";
//! message ClientMessage {
//!   uint32 version = 1;
//!   oneof payload {
//!     JoinRequest join_request = 2;       Heartbeat heartbeat = 3;
//!     SetMute set_mute = 4;               PublishStream publish_stream = 5;
//!     UnpublishStream unpublish_stream = 6;
//!     Subscribe subscribe = 7;            Unsubscribe unsubscribe = 8;
//!     Leave leave = 9;                    KeyExchange e2e_key = 10;
//!     RequestMediaGrant request_media_grant = 11;
//!     Admission admission = 12;
//!   }
//! }
//! message JoinRequest { string token = 1; string client_version = 2; string admission = 3; }
//! message Heartbeat {}
//! message SetMute { bool audio_muted = 1; bool video_muted = 2; }
//! message PublishStream { string stream_type = 1; string codec = 2; uint64 max_bitrate = 3; }
//! message UnpublishStream { string stream_id = 1; }
//! message Subscribe { string stream_id = 1; }
//! message Unsubscribe { string stream_id = 1; }
//! message Leave {}
//! message KeyExchange { string participant_id = 1; bytes payload = 2; }
//! message RequestMediaGrant {}
//! message Admission { string participant_id = 1; bool admit = 2; }
//!
//! message ServerMessage {
//!   uint32 version = 1;
//!   oneof payload {
//!     JoinResponse join_response = 2;     ParticipantJoined participant_joined = 3;
//!     ParticipantLeft participant_left = 4;
//!     MuteChanged mute_changed = 5;       StreamPublished stream_published = 6;
//!     StreamUnpublished stream_unpublished = 7;
//!     MeetingEnded meeting_ended = 8;     HeartbeatAck heartbeat_ack = 9;
//!     Error error = 10;                   KeyExchange e2e_key = 11;
//!     MediaGrant media_grant = 12;
//!     Waiting waiting = 13;               WaitingRoom waiting_room = 14;
//!     MoreParticipants more_participants = 15;
//!   }
//! }
//! message StreamInfo { string stream_id = 1; string participant_id = 2;
//!   string stream_type = 3; string codec = 4; uint64 max_bitrate = 5; }
//! message ParticipantInfo { string participant_id = 1; optional string user_id = 2;
//!   string display_name = 3; bool audio_muted = 4; bool video_muted = 5;
//!   repeated StreamInfo streams = 6; }
//! message JoinResponse { string participant_id = 1; string meeting_id = 2;
//!   string meeting_display_name = 3; bool e2e_encryption = 4;
//!   repeated ParticipantInfo participants = 5; repeated string media_handlers = 6;
//!   MediaGrant media = 7; uint32 more_participants = 8; string admission = 9; }
//! message MediaGrant { string url = 1; string wt_token = 2; string certificate_hash = 3; }
//! message ParticipantJoined { ParticipantInfo participant = 1; }
//! message ParticipantLeft { string participant_id = 1; string reason = 2; }
//! message MuteChanged { string participant_id = 1; bool audio_muted = 2; bool video_muted = 3; }
//! message StreamPublished { StreamInfo stream = 1; }
//! message StreamUnpublished { string stream_id = 1; string participant_id = 2; }
//! message MeetingEnded { string reason = 1; string code = 2; }
//! message HeartbeatAck {}
//! message Error { string code = 1; string message = 2; optional string participant_id = 3;
//!   optional string answers = 4; }
//! message Waiting { string meeting_display_name = 1; uint64 wait_seconds = 2;
//!   string admission = 3; }
//! message Visitor { string participant_id = 1; string display_name = 2; }
//! message WaitingRoom { repeated Visitor waiting = 1; }
//! message MoreParticipants { repeated ParticipantInfo participants = 1; }
//! ```
//!
//! A `JoinResponse` whose list does not fit one frame (hundreds of participants) carries
//! the first of them and says how many more follow (`more_participants`); they follow at
//! once in `MoreParticipants` messages, each a frame, in order, before any other message. A participant publishes at most
//! [`MAX_STREAMS_PER_PARTICIPANT`] streams at once (one more: `Error`
//! [`TOO_MANY_STREAMS`]), so one participant's entry always fits a frame. The controller
//! never drops a message it cannot frame: the session closes instead
//! ([`CLOSE_BY_CONTROLLER`], `internal: ...`).
//!
//! Ids are the canonical UUID strings; `stream_type` is `video_camera`, `video_screen`
//! or `audio_microphone`; `reason` of `ParticipantLeft` is the seed's leave reason
//! (`voluntary`, `connection_lost`, ...). `media` is where the participant sends and
//! receives its media ([`crate::media`]): the meeting's media handler's
//! `{endpoint}/media/{meeting_id}`, a one-time connection token (`connection_type`
//! `media`) to open it with `?wt_token=`, and the handler's certificate SHA-256 (lowercase
//! hex, empty when it serves a certificate browsers trust); absent when the controller
//! hands out no media grants or no handler could take the meeting.
//!
//! A joined participant whose media session failed to open, or was lost during the
//! call, sends `RequestMediaGrant` (the first grant's connection token may be spent)
//! and is answered a server `media_grant`: a new one-time token for the meeting's media
//! handler, or for another one when the registry no longer has that handler alive and
//! `healthy` (it stopped, or stopped heartbeating). The answer is `Error`
//! [`NO_MEDIA`] when no handler can take the meeting (or the controller hands out no
//! media grants), and `Error` `rate_limited` after [`MEDIA_GRANTS_PER_MINUTE`] in a
//! minute; the session goes on either way.
//!
//! # The waiting room
//!
//! In a meeting with `waiting_room_enabled`, everybody but the account that created it
//! (its host) waits after `JoinRequest`: the server answers `Waiting` (not yet a
//! participant: nobody is told, nothing is stored) and holds the request. The host's
//! sessions get a `WaitingRoom` with everybody waiting whenever that changes, and on
//! their own join when somebody waits already; a host answers `Admission` for a visitor
//! (`admit`: let in, else turned away). Let in, the visitor's join goes on as any other
//! (`JoinResponse`, the others told); turned away, it gets `Error`
//! [`ADMISSION_DENIED`] and its session closes ([`CLOSE_JOIN_REFUSED`], "the host did not
//! let you in"). Visitors wait while the host is away, until they leave (a `Leave`, or
//! their connection closes) or for at most the controller's waiting limit (30 minutes by
//! default: `Error` [`WAITING_TIMEOUT`], closed the same way). While waiting a client
//! sends `Heartbeat` (answered) as a participant does, and may send `Leave`; anything
//! else is a protocol error. Presence applies as to participants: a visitor that sends
//! nothing for the presence timeout (30 s; its connection is dead, or its heartbeats
//! stopped) is taken out of the list, the host told, and its session closed
//! ([`CLOSE_BY_CONTROLLER`], "no heartbeat within the presence timeout ..."). A
//! meeting without a creator has no host: its visitors wait until the limit. At most
//! [`MAX_WAITING`] wait at once (more: `Error` [`WAITING_ROOM_FULL`]). An `Admission`
//! from anybody but the host is answered `Error` `not_host`, and one naming nobody
//! waiting (they left, or another of the host's windows decided) `Error`
//! `unknown_visitor`; the session goes on.
//!
//! An admission is remembered for the meeting, 24 hours from the last one, in Redis
//! (`tavern:meetings:meeting:{meeting_id}:admitted`), so whichever controller a later
//! join reaches: whoever the host let in joins again (a lost connection, the meeting
//! moved to another controller) without waiting. A signed-in user is remembered by its
//! account. A guest let in is given an admission token in its `JoinResponse`
//! (`admission`: 64 lowercase hex characters, 256 random bits; only its SHA-256 is
//! stored) and presents it in the `JoinRequest` of a later join (`admission`; empty:
//! none): a guest whose token the meeting remembers does not wait, and is given the same
//! token again. The token is the only proof (a display name proves nothing); one that is
//! unknown, from another meeting or malformed is no proof, and that guest waits as any
//! visitor. A visitor turned away, or never let in, has nothing remembered and waits
//! again. Everybody else's `admission` is empty. A visitor waiting when the meeting moves
//! is told `Error` [`MEETING_MOVED`] and closed as those in the meeting are; it joins
//! again with a new grant and waits at the new controller.
//!
//! A visitor whose connection is lost while it waits (a network change, the server
//! closing it) asks for a new grant and sends `JoinRequest` again, as the browser client
//! does, and waits again. A guest is given its admission token as soon as it waits
//! (`Waiting.admission`) and presents it in that `JoinRequest`; a signed-in visitor is
//! known by its account. While the controller still lists the visitor's earlier
//! connection (a lost connection is noticed only once it has been silent for a while),
//! the new one takes that place in the list, under its new participant id, and the
//! earlier one is told `Error` [`WAITING_ELSEWHERE`] and closed ([`CLOSE_JOIN_REFUSED`]);
//! otherwise the visitor waits at the end of the list. The waiting limit runs from when
//! the visitor began waiting, not from each new connection: the one that took the
//! place is told (`Waiting.wait_seconds`) and given only what is left of it. The host's
//! decision and a new connection of the visitor are one step, so the decision wins
//! whichever comes first: an `Admission` naming the earlier connection (the list the
//! host saw) decides for the one that took its place; and a new connection of a visitor
//! the host has decided on since it began waiting (its earlier connection, perhaps
//! lost, may not have heard it) is let in at once (`JoinResponse`) or turned away
//! ([`ADMISSION_DENIED`]) instead of waiting again. That decision is kept for the
//! visitor's next connection only, and no longer than its waiting limit. (A signed-in visitor waiting
//! from two windows thus waits from the newer one.) A guest let in keeps the token
//! `Waiting` gave it: its `JoinResponse` names the same one.
//!
//! # Budgets
//!
//! Each session's messages are counted against two token buckets ([`Budget`]): one for
//! `KeyExchange`s ([`KEY_EXCHANGE_BUDGET`]: 100 a second, 2,100 at once) and one for
//! every other message ([`MESSAGE_BUDGET`]: 20 a second, 50 at once); `Leave` is never
//! counted. A message over its budget is dropped, unanswered but for one `Error`
//! [`RATE_LIMITED`] when the first is dropped (not again until that budget has filled up
//! completely); the session goes on. A session that has had [`FLOOD_FACTOR`] times a
//! budget's burst dropped without that budget ever filling up again is closed
//! ([`CLOSE_BY_CONTROLLER`], reason `rate_limited: ...`). A `SetMute` that changes
//! nothing is not broadcast.
//!
//! `e2e_key` is the participants' own channel for agreeing end-to-end encryption keys:
//! a client's `KeyExchange` names the participant it is for (`participant_id`), and the
//! controller relays it to that one participant, if connected here, as a server
//! `KeyExchange` naming the sender; `payload` (at most [`MAX_KEY_EXCHANGE`] bytes) is
//! opaque to the controller, which neither reads nor logs it. A key exchange for nobody
//! connected is dropped (the participant may have just left). One whose recipient has
//! half its outgoing queue or more waiting (it does not keep up) is dropped too, and the
//! sender told with `Error` [`RECIPIENT_BUSY`] naming that recipient in `participant_id`:
//! once per recipient, not again for it until the sender's key exchange budget has
//! filled up again. The recipient is never closed for what others send it. The sender
//! decides what to send again: the browser client says hello to that recipient again
//! after 1 s, and after 2 s and 4 s more while it has not answered with its sender key
//! (a client answers every hello, a repeated one too, with its sender key).
//!
//! `Error.participant_id` is set for [`RECIPIENT_BUSY`] only. `Error.answers` names the
//! client message the error answers when it is the answer to one the client waits for:
//! `request_media_grant` ([`ANSWERS_MEDIA_GRANT`]) on the `no_media` and `rate_limited`
//! answers to `RequestMediaGrant`, so that a client tells them apart from a budget's
//! `rate_limited`, which answers nothing. Error
//! codes: `invalid_message`, [`RECIPIENT_BUSY`], [`TOO_MANY_STREAMS`], [`ADMISSION_DENIED`],
//! [`WAITING_TIMEOUT`], [`WAITING_ROOM_FULL`], `not_host`, `unknown_visitor`, [`AUTH_REQUIRED`] (a guest's join to a
//! meeting that admits signed-in users only, even with a grant made before the host
//! required it; a guest already in when the host requires it is told so and closed
//! with [`CLOSE_JOIN_REFUSED`] within a sweep, leaving `kicked`),
//! `unexpected_message`, `unsupported_version`, `frame_too_large`, `invalid_token`,
//! `meeting_full`, `meeting_ended`, `already_joined`, `controller_full`,
//! `invalid_stream`, `unknown_stream`, `too_slow`, `internal`, [`NO_MEDIA`],
//! `rate_limited`, and [`MEETING_MOVED`]: the
//! registry gave the meeting to another controller (this one's heartbeats had stopped
//! for a while), so the session closes and the client joins again with a new grant,
//! which names the new controller.

use std::fmt;

use prost::Message as _;

/// The protocol version this controller speaks.
pub const VERSION: u32 = 1;
/// The largest frame body, in bytes (64 KiB).
pub const MAX_FRAME: usize = 64 * 1024;
/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Streams one participant may publish at once; one more is answered `Error`
/// [`TOO_MANY_STREAMS`].
pub const MAX_STREAMS_PER_PARTICIPANT: usize = 8;

/// The `Error` code of a `PublishStream` past [`MAX_STREAMS_PER_PARTICIPANT`].
pub const TOO_MANY_STREAMS: &str = "too_many_streams";

/// The largest `KeyExchange.payload`, in bytes.
pub const MAX_KEY_EXCHANGE: usize = 4 * 1024;

/// Application error code of a session closed normally (a leave, the meeting's end).
pub const CLOSE_NORMAL: u32 = 0;
/// Application error code of a session closed for a protocol error.
pub const CLOSE_PROTOCOL_ERROR: u32 = 1;
/// Application error code of a session whose join was refused (or, for a guest, whose
/// stay: the host required sign-in since).
pub const CLOSE_JOIN_REFUSED: u32 = 2;
/// Application error code of a session closed by the controller (shutdown, a
/// participant removed elsewhere, a client that cannot keep up, silence, a meeting
/// moved to another controller).
pub const CLOSE_BY_CONTROLLER: u32 = 3;

/// The `Error` code, and the start of the close reason, of a session whose meeting
/// moved to another controller.
pub const MEETING_MOVED: &str = "meeting_moved";

/// The `Error` code of a guest's join (or stay) in a meeting that admits signed-in
/// users only (`require_auth`).
pub const AUTH_REQUIRED: &str = "auth_required";

/// The `Error` code of a `RequestMediaGrant` no media handler can answer.
pub const NO_MEDIA: &str = "no_media";

/// New media grants one session may ask for in a minute (each is a connection token
/// kept for 5 minutes).
pub const MEDIA_GRANTS_PER_MINUTE: usize = 6;

/// The `Error` code, and the start of the close reason, of a visitor the host turned
/// away.
pub const ADMISSION_DENIED: &str = "admission_denied";

/// The `Error` code of a visitor nobody let in within the waiting limit.
pub const WAITING_TIMEOUT: &str = "waiting_timeout";

/// The `Error` code of a visitor refused because too many wait already.
pub const WAITING_ROOM_FULL: &str = "waiting_room_full";

/// The `Error` code, and the start of the close reason, of a waiting session whose
/// visitor waits from a newer connection now (which took its place).
pub const WAITING_ELSEWHERE: &str = "waiting_elsewhere";

/// Visitors one meeting's waiting room holds at most.
pub const MAX_WAITING: usize = 100;

/// The `Error` code of a message dropped because its session sent more than its
/// [`Budget`] allows.
pub const RATE_LIMITED: &str = "rate_limited";

/// The `Error` code of a key exchange dropped because its recipient has too much
/// waiting for it already; `participant_id` names the recipient.
pub const RECIPIENT_BUSY: &str = "recipient_busy";

/// `MeetingEnded.code` of a meeting that ended (by its host, elsewhere).
pub const ENDED: &str = "meeting_ended";

/// `MeetingEnded.code` told the host whose meeting ended while they were in it (they
/// ended it).
pub const ENDED_BY_YOU: &str = "ended_by_you";

/// `MeetingEnded.code` told the participant whose Leave emptied the meeting, which
/// ended.
pub const LEFT_LAST: &str = "left_last";

/// The `Error` code of a visitor waiting for the host whose meeting ended because
/// everyone in it left.
pub const MEETING_EMPTIED: &str = "meeting_emptied";

/// `Error.answers` of an error answering `RequestMediaGrant`.
pub const ANSWERS_MEDIA_GRANT: &str = "request_media_grant";

/// How many messages of a kind one session may send: a token bucket holding `burst`
/// messages, refilled at `per_second`. A message that finds it empty is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Messages a second, sustained.
    pub per_second: u32,
    /// Messages at once, after a quiet spell.
    pub burst: u32,
}

/// Every message but `KeyExchange`, `Leave` and a (refused) second `JoinRequest`: 20 a
/// second, 50 at once. A client sends a heartbeat every few seconds, a mute change a
/// click, a few streams at its join.
pub const MESSAGE_BUDGET: Budget = Budget {
    per_second: 20,
    burst: 50,
};

/// `KeyExchange`s: 100 a second, 2,100 at once. A participant joining the largest
/// meeting (1,000) answers every other one's hello with its own and a sender key.
pub const KEY_EXCHANGE_BUDGET: Budget = Budget {
    per_second: 100,
    burst: 2_100,
};

/// A session that has had this many times its burst dropped without once letting its
/// budget fill up again is closed ([`RATE_LIMITED`]).
pub const FLOOD_FACTOR: u32 = 10;

/// A message from a participant.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientMessage {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(
        oneof = "client_message::Payload",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"
    )]
    pub payload: Option<client_message::Payload>,
}

/// The payloads of [`ClientMessage`].
pub mod client_message {
    /// What a participant says.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        #[prost(message, tag = "2")]
        JoinRequest(super::JoinRequest),
        #[prost(message, tag = "3")]
        Heartbeat(super::Heartbeat),
        #[prost(message, tag = "4")]
        SetMute(super::SetMute),
        #[prost(message, tag = "5")]
        PublishStream(super::PublishStream),
        #[prost(message, tag = "6")]
        UnpublishStream(super::UnpublishStream),
        #[prost(message, tag = "7")]
        Subscribe(super::Subscribe),
        #[prost(message, tag = "8")]
        Unsubscribe(super::Unsubscribe),
        #[prost(message, tag = "9")]
        Leave(super::Leave),
        /// For the participant it names, relayed unread.
        #[prost(message, tag = "10")]
        E2eKey(super::KeyExchange),
        /// A new media grant (the media session failed or was lost).
        #[prost(message, tag = "11")]
        RequestMediaGrant(super::RequestMediaGrant),
        /// The host lets a visitor of the waiting room in, or not.
        #[prost(message, tag = "12")]
        Admission(super::Admission),
    }
}

/// Joins the meeting with the meeting token of the join grant. `Debug` hides the token.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct JoinRequest {
    #[prost(string, tag = "1")]
    pub token: String,
    #[prost(string, tag = "2")]
    pub client_version: String,
    /// The admission token of an earlier `JoinResponse` of this meeting (a guest the
    /// host let in); empty: none.
    #[prost(string, tag = "3")]
    pub admission: String,
}

impl fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinRequest")
            .field("token", &"[redacted]")
            .field("client_version", &self.client_version)
            .field("admission", &(!self.admission.is_empty()))
            .finish()
    }
}

/// Asks for a new media grant: the participant's media session failed to open or was
/// lost.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct RequestMediaGrant {}

/// The host's decision on a visitor of the waiting room.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Admission {
    /// The visitor, as the waiting room lists it.
    #[prost(string, tag = "1")]
    pub participant_id: String,
    /// `true`: let in; `false`: turned away.
    #[prost(bool, tag = "2")]
    pub admit: bool,
}

/// "Wait for the host": the `JoinRequest` is held until the host decides.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Waiting {
    #[prost(string, tag = "1")]
    pub meeting_display_name: String,
    /// How much longer it may wait at most before it is turned away, in seconds: the
    /// waiting limit less what the visitor has waited already from earlier connections
    /// whose place this one took.
    #[prost(uint64, tag = "2")]
    pub wait_seconds: u64,
    /// A guest's admission token, given while it waits ([`proto`](self), "The waiting
    /// room"): presented by a new connection of the same visitor, it keeps its place;
    /// let in, it is the token its `JoinResponse` gives. Empty for a signed-in visitor.
    #[prost(string, tag = "3")]
    pub admission: String,
}

/// Somebody waiting in the waiting room.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Visitor {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(string, tag = "2")]
    pub display_name: String,
}

/// Everybody waiting for the host, longest waiting first (the whole list each time it
/// changes).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WaitingRoom {
    #[prost(message, repeated, tag = "1")]
    pub waiting: Vec<Visitor>,
}

/// "Still here" (presence).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Heartbeat {}

/// The participant's microphone and camera state.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SetMute {
    #[prost(bool, tag = "1")]
    pub audio_muted: bool,
    #[prost(bool, tag = "2")]
    pub video_muted: bool,
}

/// Publishes a media stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishStream {
    #[prost(string, tag = "1")]
    pub stream_type: String,
    #[prost(string, tag = "2")]
    pub codec: String,
    /// Bits per second.
    #[prost(uint64, tag = "3")]
    pub max_bitrate: u64,
}

/// Ends one of the participant's streams.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UnpublishStream {
    #[prost(string, tag = "1")]
    pub stream_id: String,
}

/// Subscribes to a stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Subscribe {
    #[prost(string, tag = "1")]
    pub stream_id: String,
}

/// Unsubscribes from a stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Unsubscribe {
    #[prost(string, tag = "1")]
    pub stream_id: String,
}

/// Leaves the meeting.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Leave {}

/// An end-to-end encryption key agreement message between two participants: from a
/// client, `participant_id` is the recipient; from the controller, the sender. The
/// controller relays `payload` without reading it; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq, prost::Message)]
#[prost(skip_debug)]
pub struct KeyExchange {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyExchange")
            .field("participant_id", &self.participant_id)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// A message from the meeting controller.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerMessage {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(
        oneof = "server_message::Payload",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15"
    )]
    pub payload: Option<server_message::Payload>,
}

/// The payloads of [`ServerMessage`].
pub mod server_message {
    /// What the controller says.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Payload {
        #[prost(message, tag = "2")]
        JoinResponse(super::JoinResponse),
        #[prost(message, tag = "3")]
        ParticipantJoined(super::ParticipantJoined),
        #[prost(message, tag = "4")]
        ParticipantLeft(super::ParticipantLeft),
        #[prost(message, tag = "5")]
        MuteChanged(super::MuteChanged),
        #[prost(message, tag = "6")]
        StreamPublished(super::StreamPublished),
        #[prost(message, tag = "7")]
        StreamUnpublished(super::StreamUnpublished),
        #[prost(message, tag = "8")]
        MeetingEnded(super::MeetingEnded),
        #[prost(message, tag = "9")]
        HeartbeatAck(super::HeartbeatAck),
        #[prost(message, tag = "10")]
        Error(super::Error),
        /// From the participant it names, relayed unread.
        #[prost(message, tag = "11")]
        E2eKey(super::KeyExchange),
        /// The answer to `RequestMediaGrant`.
        #[prost(message, tag = "12")]
        MediaGrant(super::MediaGrant),
        /// The answer to a `JoinRequest` that must wait for the host.
        #[prost(message, tag = "13")]
        Waiting(super::Waiting),
        /// Who waits for the host now (to the host's sessions).
        #[prost(message, tag = "14")]
        WaitingRoom(super::WaitingRoom),
        /// The rest of a `JoinResponse`'s list that did not fit its frame.
        #[prost(message, tag = "15")]
        MoreParticipants(super::MoreParticipants),
    }
}

/// More of the participants a `JoinResponse` lists: those that did not fit its frame,
/// sent right after it (before anything else), in order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MoreParticipants {
    #[prost(message, repeated, tag = "1")]
    pub participants: Vec<ParticipantInfo>,
}

/// Bytes kept free in a frame for the length prefixes a list's growth may lengthen.
const FRAME_SLACK: usize = 64;

/// `response` as frames can carry it: itself with as much of its list as fits one
/// frame, then [`MoreParticipants`] each fitting one, with the rest in order.
pub fn split_join_response(mut response: JoinResponse) -> (JoinResponse, Vec<MoreParticipants>) {
    let all = std::mem::take(&mut response.participants);
    // Said before it is known: the largest the count can be, so the size is not less.
    response.more_participants = u32::try_from(all.len()).unwrap_or(u32::MAX);
    let base =
        ServerMessage::new(server_message::Payload::JoinResponse(response.clone())).encoded_len();
    let mut rest = all.into_iter().peekable();
    let mut room = MAX_FRAME.saturating_sub(base + FRAME_SLACK);
    while let Some(info) = rest.peek() {
        let len = listed_len(info);
        if len > room {
            break;
        }
        room -= len;
        response.participants.extend(rest.next());
    }
    let mut more = Vec::new();
    let empty = ServerMessage::new(server_message::Payload::MoreParticipants(
        MoreParticipants::default(),
    ))
    .encoded_len();
    while rest.peek().is_some() {
        let mut chunk = MoreParticipants::default();
        let mut room = MAX_FRAME.saturating_sub(empty + FRAME_SLACK);
        while let Some(info) = rest.peek() {
            let len = listed_len(info);
            // One alone always goes (it fits: its fields are bounded).
            if len > room && !chunk.participants.is_empty() {
                break;
            }
            room = room.saturating_sub(len);
            chunk.participants.extend(rest.next());
        }
        more.push(chunk);
    }
    let following: usize = more.iter().map(|m| m.participants.len()).sum();
    response.more_participants = u32::try_from(following).unwrap_or(u32::MAX);
    (response, more)
}

/// The bytes one participant takes in a repeated field: its tag, its length, itself.
fn listed_len(info: &ParticipantInfo) -> usize {
    let len = info.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// A published stream.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StreamInfo {
    #[prost(string, tag = "1")]
    pub stream_id: String,
    #[prost(string, tag = "2")]
    pub participant_id: String,
    #[prost(string, tag = "3")]
    pub stream_type: String,
    #[prost(string, tag = "4")]
    pub codec: String,
    #[prost(uint64, tag = "5")]
    pub max_bitrate: u64,
}

/// A participant as the others see it.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ParticipantInfo {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    /// `None` for a guest.
    #[prost(string, optional, tag = "2")]
    pub user_id: Option<String>,
    #[prost(string, tag = "3")]
    pub display_name: String,
    #[prost(bool, tag = "4")]
    pub audio_muted: bool,
    #[prost(bool, tag = "5")]
    pub video_muted: bool,
    #[prost(message, repeated, tag = "6")]
    pub streams: Vec<StreamInfo>,
}

/// The answer to a `JoinRequest`: who is already there.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinResponse {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(string, tag = "2")]
    pub meeting_id: String,
    #[prost(string, tag = "3")]
    pub meeting_display_name: String,
    #[prost(bool, tag = "4")]
    pub e2e_encryption: bool,
    /// Everybody else in the meeting.
    #[prost(message, repeated, tag = "5")]
    pub participants: Vec<ParticipantInfo>,
    /// Media handler endpoints (the meeting's handler's, when `media` is given).
    #[prost(string, repeated, tag = "6")]
    pub media_handlers: Vec<String>,
    /// Where to open the media session; `None` without a media handler.
    #[prost(message, optional, tag = "7")]
    pub media: Option<MediaGrant>,
    /// How many more participants follow in `MoreParticipants` (0: all are listed here).
    #[prost(uint32, tag = "8")]
    pub more_participants: u32,
    /// A guest let in from the waiting room: the admission token to present in the
    /// `JoinRequest` of a later join to this meeting; empty for everybody else.
    #[prost(string, tag = "9")]
    pub admission: String,
}

/// A media session granted with the join: `url` opened with `?wt_token={wt_token}`.
/// `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, prost::Message)]
#[prost(skip_debug)]
pub struct MediaGrant {
    /// `{handler_endpoint}/media/{meeting_id}`.
    #[prost(string, tag = "1")]
    pub url: String,
    /// A one-time `wt:token` (`connection_type` `media`) for this participant.
    #[prost(string, tag = "2")]
    pub wt_token: String,
    /// SHA-256 (lowercase hex) of the handler's certificate, or empty.
    #[prost(string, tag = "3")]
    pub certificate_hash: String,
}

impl fmt::Debug for MediaGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaGrant")
            .field("url", &self.url)
            .field("wt_token", &"[redacted]")
            .field("certificate_hash", &self.certificate_hash)
            .finish()
    }
}

/// Somebody joined.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParticipantJoined {
    #[prost(message, optional, tag = "1")]
    pub participant: Option<ParticipantInfo>,
}

/// Somebody left, with the seed's leave reason.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParticipantLeft {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// Somebody muted or unmuted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MuteChanged {
    #[prost(string, tag = "1")]
    pub participant_id: String,
    #[prost(bool, tag = "2")]
    pub audio_muted: bool,
    #[prost(bool, tag = "3")]
    pub video_muted: bool,
}

/// A stream was published (also sent to its publisher, which learns its id so).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPublished {
    #[prost(message, optional, tag = "1")]
    pub stream: Option<StreamInfo>,
}

/// A stream ended.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamUnpublished {
    #[prost(string, tag = "1")]
    pub stream_id: String,
    #[prost(string, tag = "2")]
    pub participant_id: String,
}

/// The meeting ended; the session closes next.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MeetingEnded {
    #[prost(string, tag = "1")]
    pub reason: String,
    /// Why, for a program: [`ENDED`], [`ENDED_BY_YOU`] or [`LEFT_LAST`]; empty from a
    /// server older than the field (read it as [`ENDED`]).
    #[prost(string, tag = "2")]
    pub code: String,
}

/// The answer to a `Heartbeat`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct HeartbeatAck {}

/// A refusal or protocol error: a stable `code` and a sentence for people.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Error {
    #[prost(string, tag = "1")]
    pub code: String,
    #[prost(string, tag = "2")]
    pub message: String,
    /// The participant it is about: the recipient of a key exchange dropped
    /// ([`RECIPIENT_BUSY`]).
    #[prost(string, optional, tag = "3")]
    pub participant_id: Option<String>,
    /// The client message it answers, when the client waits for an answer
    /// ([`ANSWERS_MEDIA_GRANT`]).
    #[prost(string, optional, tag = "4")]
    pub answers: Option<String>,
}

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: &str, message: impl Into<String>) -> Error {
        Error {
            code: code.to_owned(),
            message: message.into(),
            participant_id: None,
            answers: None,
        }
    }

    /// This error, about `participant`.
    pub fn about(mut self, participant: impl fmt::Display) -> Error {
        self.participant_id = Some(participant.to_string());
        self
    }

    /// This error, as the answer to the client message `answers`.
    pub fn answering(mut self, answers: &str) -> Error {
        self.answers = Some(answers.to_owned());
        self
    }
}

impl ClientMessage {
    /// A version-1 message carrying `payload`.
    pub fn new(payload: client_message::Payload) -> ClientMessage {
        ClientMessage {
            version: VERSION,
            payload: Some(payload),
        }
    }
}

impl ServerMessage {
    /// A version-1 message carrying `payload`.
    pub fn new(payload: server_message::Payload) -> ServerMessage {
        ServerMessage {
            version: VERSION,
            payload: Some(payload),
        }
    }

    /// An `Error` message.
    pub fn error(code: &str, message: impl Into<String>) -> ServerMessage {
        ServerMessage::new(server_message::Payload::Error(Error::new(code, message)))
    }
}

/// Why bytes are not a valid frame or message. Each has a stable [`code`](FrameError::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes is larger than the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("a frame may not be empty")]
    Empty,
    #[error("the frame ends before its {expected} bytes ({got} received)")]
    Truncated { expected: usize, got: usize },
    #[error("the message is not valid protobuf: {0}")]
    Malformed(String),
    #[error("protocol version {0} is not supported (this controller speaks {VERSION})")]
    UnsupportedVersion(u32),
    #[error("the message has no payload")]
    NoPayload,
}

impl FrameError {
    /// The `Error.code` sent for it.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge(_) => "frame_too_large",
            FrameError::UnsupportedVersion(_) => "unsupported_version",
            FrameError::Empty
            | FrameError::Truncated { .. }
            | FrameError::Malformed(_)
            | FrameError::NoPayload => "invalid_message",
        }
    }
}

/// Checks a frame's length prefix: the body length it announces, or why it is refused.
pub fn frame_length(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    match len {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME => Err(FrameError::TooLarge(n)),
        n => Ok(n),
    }
}

/// One frame holding `message`: the 4-byte big-endian length, then the encoding.
fn frame<M: prost::Message>(message: &M) -> Result<Vec<u8>, FrameError> {
    let len = message.encoded_len();
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    message
        .encode(&mut out)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok(out)
}

/// The frame of a client message.
pub fn encode_client(message: &ClientMessage) -> Result<Vec<u8>, FrameError> {
    frame(message)
}

/// The frame of a server message.
pub fn encode_server(message: &ServerMessage) -> Result<Vec<u8>, FrameError> {
    frame(message)
}

/// Decodes a frame body (without its length prefix) as a client message of this
/// version with a payload.
pub fn decode_client(body: &[u8]) -> Result<client_message::Payload, FrameError> {
    check_size(body)?;
    let message = ClientMessage::decode(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if message.version != VERSION {
        return Err(FrameError::UnsupportedVersion(message.version));
    }
    message.payload.ok_or(FrameError::NoPayload)
}

/// Decodes a frame body (without its length prefix) as a server message of this
/// version with a payload.
pub fn decode_server(body: &[u8]) -> Result<server_message::Payload, FrameError> {
    check_size(body)?;
    let message = ServerMessage::decode(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if message.version != VERSION {
        return Err(FrameError::UnsupportedVersion(message.version));
    }
    message.payload.ok_or(FrameError::NoPayload)
}

fn check_size(body: &[u8]) -> Result<(), FrameError> {
    match body.len() {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME => Err(FrameError::TooLarge(n)),
        _ => Ok(()),
    }
}

/// Splits one whole frame off the front of `buf`: `Ok(None)` while it is incomplete
/// (wait for more bytes), else the body and the bytes it took.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = frame_length(*header)?;
    match buf.get(HEADER_LEN..HEADER_LEN + len) {
        Some(body) => Ok(Some((body, HEADER_LEN + len))),
        None => Ok(None),
    }
}

/// Decodes a buffer that must hold exactly one whole client frame (prefix and body).
pub fn decode_client_frame(buf: &[u8]) -> Result<client_message::Payload, FrameError> {
    let (body, used) = whole_frame(buf)?;
    if used != buf.len() {
        return Err(FrameError::Malformed(format!(
            "{} bytes after the frame",
            buf.len() - used
        )));
    }
    decode_client(body)
}

/// Decodes a buffer that must hold exactly one whole server frame (prefix and body).
pub fn decode_server_frame(buf: &[u8]) -> Result<server_message::Payload, FrameError> {
    let (body, used) = whole_frame(buf)?;
    if used != buf.len() {
        return Err(FrameError::Malformed(format!(
            "{} bytes after the frame",
            buf.len() - used
        )));
    }
    decode_server(body)
}

fn whole_frame(buf: &[u8]) -> Result<(&[u8], usize), FrameError> {
    match split_frame(buf)? {
        Some(found) => Ok(found),
        None => {
            let expected = match buf.first_chunk::<HEADER_LEN>() {
                Some(h) => HEADER_LEN + frame_length(*h)?,
                None => HEADER_LEN,
            };
            Err(FrameError::Truncated {
                expected,
                got: buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::client_message::Payload as C;
    use super::server_message::Payload as S;
    use super::*;

    fn join() -> ClientMessage {
        ClientMessage::new(C::JoinRequest(JoinRequest {
            token: "eyJ.secret.sig".into(),
            client_version: "tavern-cli/1".into(),
            admission: String::new(),
        }))
    }

    #[test]
    fn client_messages_round_trip_through_frames() {
        let all = [
            join(),
            ClientMessage::new(C::Heartbeat(Heartbeat {})),
            ClientMessage::new(C::SetMute(SetMute {
                audio_muted: true,
                video_muted: false,
            })),
            ClientMessage::new(C::PublishStream(PublishStream {
                stream_type: "video_camera".into(),
                codec: "VP9".into(),
                max_bitrate: 2_500_000,
            })),
            ClientMessage::new(C::UnpublishStream(UnpublishStream {
                stream_id: "s".into(),
            })),
            ClientMessage::new(C::Subscribe(Subscribe {
                stream_id: "s".into(),
            })),
            ClientMessage::new(C::Unsubscribe(Unsubscribe {
                stream_id: "s".into(),
            })),
            ClientMessage::new(C::Leave(Leave {})),
            ClientMessage::new(C::E2eKey(KeyExchange {
                participant_id: "p".into(),
                payload: vec![1, 0, 255],
            })),
            ClientMessage::new(C::RequestMediaGrant(RequestMediaGrant {})),
            ClientMessage::new(C::Admission(Admission {
                participant_id: "p".into(),
                admit: true,
            })),
        ];
        for message in all {
            let bytes = encode_client(&message).unwrap();
            let len = u32::from_be_bytes(*bytes.first_chunk::<4>().unwrap()) as usize;
            assert_eq!(len + HEADER_LEN, bytes.len());
            assert_eq!(Some(decode_client_frame(&bytes).unwrap()), message.payload);
        }
    }

    #[test]
    fn server_messages_round_trip_through_frames() {
        let info = ParticipantInfo {
            participant_id: "p".into(),
            user_id: None,
            display_name: "Ann".into(),
            audio_muted: true,
            video_muted: false,
            streams: vec![StreamInfo {
                stream_id: "s".into(),
                participant_id: "p".into(),
                stream_type: "audio_microphone".into(),
                codec: "Opus".into(),
                max_bitrate: 64_000,
            }],
        };
        let all = [
            ServerMessage::new(S::JoinResponse(JoinResponse {
                participant_id: "p2".into(),
                meeting_id: "m".into(),
                meeting_display_name: "Session zero".into(),
                e2e_encryption: true,
                participants: vec![info.clone()],
                media_handlers: vec!["https://127.0.0.1:4434".into()],
                media: Some(MediaGrant {
                    url: "https://127.0.0.1:4434/media/m".into(),
                    wt_token: "secret".into(),
                    certificate_hash: "ab".repeat(32),
                }),
                more_participants: 0,
                admission: "cd".repeat(32),
            })),
            ServerMessage::new(S::ParticipantJoined(ParticipantJoined {
                participant: Some(info),
            })),
            ServerMessage::new(S::ParticipantLeft(ParticipantLeft {
                participant_id: "p".into(),
                reason: "voluntary".into(),
            })),
            ServerMessage::new(S::MeetingEnded(MeetingEnded {
                reason: "ended".into(),
                code: LEFT_LAST.into(),
            })),
            ServerMessage::new(S::HeartbeatAck(HeartbeatAck {})),
            ServerMessage::new(S::E2eKey(KeyExchange {
                participant_id: "p".into(),
                payload: vec![2; 80],
            })),
            ServerMessage::new(S::MediaGrant(MediaGrant {
                url: "https://127.0.0.1:4434/media/m".into(),
                wt_token: "t".into(),
                certificate_hash: String::new(),
            })),
            ServerMessage::error("invalid_token", "no"),
            ServerMessage::new(S::Waiting(Waiting {
                meeting_display_name: "Session zero".into(),
                wait_seconds: 1800,
                admission: "ef".repeat(32),
            })),
            ServerMessage::new(S::WaitingRoom(WaitingRoom {
                waiting: vec![Visitor {
                    participant_id: "p".into(),
                    display_name: "Vera".into(),
                }],
            })),
        ];
        for message in all {
            let bytes = encode_server(&message).unwrap();
            assert_eq!(Some(decode_server_frame(&bytes).unwrap()), message.payload);
        }
    }

    #[test]
    fn a_join_response_too_long_for_a_frame_goes_on_in_frames_of_more_participants() {
        let stream = StreamInfo {
            stream_id: "s".repeat(36),
            participant_id: "p".repeat(36),
            stream_type: "video_camera".into(),
            codec: "c".repeat(64),
            max_bitrate: u64::MAX,
        };
        let everybody: Vec<ParticipantInfo> = (0..1_000)
            .map(|i| ParticipantInfo {
                participant_id: format!("{i:036}"),
                user_id: Some("u".repeat(36)),
                display_name: "é".repeat(255),
                audio_muted: true,
                video_muted: true,
                streams: vec![stream.clone(); MAX_STREAMS_PER_PARTICIPANT],
            })
            .collect();
        let response = JoinResponse {
            participant_id: "p".repeat(36),
            meeting_display_name: "m".repeat(255),
            participants: everybody.clone(),
            ..JoinResponse::default()
        };
        let (first, more) = split_join_response(response);
        assert!(!first.participants.is_empty() && !more.is_empty());
        let following: usize = more.iter().map(|m| m.participants.len()).sum();
        assert_eq!(first.more_participants as usize, following);
        let mut listed = first.participants.clone();
        encode_server(&ServerMessage::new(S::JoinResponse(first))).unwrap();
        for chunk in more {
            listed.extend(chunk.participants.iter().cloned());
            encode_server(&ServerMessage::new(S::MoreParticipants(chunk))).unwrap();
        }
        assert_eq!(listed, everybody, "everybody, once, in order");

        // A short list stays whole.
        let (whole, none) = split_join_response(JoinResponse {
            participants: everybody[..3].to_vec(),
            ..JoinResponse::default()
        });
        assert_eq!((whole.participants.len(), whole.more_participants), (3, 0));
        assert!(none.is_empty());
    }

    #[test]
    fn a_truncated_frame_is_incomplete_and_refused_as_a_whole() {
        let bytes = encode_client(&join()).unwrap();
        for cut in [0, 2, HEADER_LEN, bytes.len() - 1] {
            assert_eq!(split_frame(&bytes[..cut]), Ok(None), "cut at {cut}");
            assert!(matches!(
                decode_client_frame(&bytes[..cut]),
                Err(FrameError::Truncated { .. })
            ));
        }
        // A body cut short inside a field is not valid protobuf.
        let body = &bytes[HEADER_LEN..bytes.len() - 3];
        let err = decode_client(body).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
        assert_eq!(err.code(), "invalid_message");
    }

    #[test]
    fn oversized_and_empty_frames_are_refused_by_their_prefix() {
        let too_big = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes();
        assert_eq!(
            frame_length(too_big),
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
        assert_eq!(
            frame_length(u32::MAX.to_be_bytes()).unwrap_err().code(),
            "frame_too_large"
        );
        assert_eq!(frame_length(0u32.to_be_bytes()), Err(FrameError::Empty));
        assert_eq!(
            frame_length(u32::try_from(MAX_FRAME).unwrap().to_be_bytes()),
            Ok(MAX_FRAME)
        );
        let mut huge = join();
        if let Some(C::JoinRequest(j)) = &mut huge.payload {
            j.token = "x".repeat(MAX_FRAME);
        }
        assert!(matches!(encode_client(&huge), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn another_version_and_a_missing_payload_are_refused() {
        let mut v2 = join();
        v2.version = 2;
        let bytes = v2.encode_to_vec();
        assert_eq!(
            decode_client(&bytes),
            Err(FrameError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode_client(&bytes).unwrap_err().code(),
            "unsupported_version"
        );
        let v0 = ClientMessage {
            version: 0,
            payload: Some(C::Leave(Leave {})),
        };
        assert_eq!(
            decode_client(&v0.encode_to_vec()),
            Err(FrameError::UnsupportedVersion(0))
        );
        let empty = ClientMessage {
            version: VERSION,
            payload: None,
        };
        assert_eq!(
            decode_client(&empty.encode_to_vec()),
            Err(FrameError::NoPayload)
        );
        assert_eq!(decode_client(&[]), Err(FrameError::Empty));
    }

    #[test]
    fn garbage_is_malformed_and_never_panics() {
        for garbage in [
            &b"\xff\xff\xff\xff\xff"[..],
            b"GET / HTTP/1.1\r\n",
            b"\x0a\x80",
            &[0x12, 0x05, 0x01],
        ] {
            let err = decode_client(garbage).unwrap_err();
            assert!(
                matches!(
                    err,
                    FrameError::Malformed(_) | FrameError::UnsupportedVersion(_)
                ),
                "{garbage:?}: {err:?}"
            );
        }
    }

    #[test]
    fn the_media_grant_debug_hides_the_token() {
        let grant = MediaGrant {
            url: "https://h/media/m".into(),
            wt_token: "secret".into(),
            certificate_hash: String::new(),
        };
        let shown = format!("{grant:?}");
        assert!(
            !shown.contains("secret") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn the_key_exchange_debug_shows_no_payload() {
        let shown = format!(
            "{:?}",
            KeyExchange {
                participant_id: "p".into(),
                payload: b"secretbytes".to_vec(),
            }
        );
        assert!(
            !shown.contains("115") && !shown.contains("secret") && shown.contains("11"),
            "{shown}"
        );
    }

    #[test]
    fn the_join_request_debug_hides_the_token() {
        let shown = format!("{:?}", join());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
