//! One participant's WebTransport session (admission, join, messages, departure), the
//! meetings a controller hosts in memory (who is connected, their mute state and
//! streams, each session's outgoing queue), and the sweep over them.
//!
//! Each session runs in its own task, with a reader task decoding frames and a writer
//! task draining a bounded queue to the stream. Others' events are put on that queue
//! with `try_send`: a session whose queue is full is closed (`too_slow`), so no session
//! ever waits for another.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use store::StorageError;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wtransport::endpoint::{IncomingSession, SessionRequest};
use wtransport::{Connection, SendStream, VarInt};

use super::Shared;
use super::proto::{
    self, FrameError, JoinResponse, KeyExchange, MediaGrant, MeetingEnded, MuteChanged,
    ParticipantInfo, ParticipantJoined, ParticipantLeft, ServerMessage, StreamInfo,
    StreamPublished, StreamUnpublished, client_message::Payload as In,
    server_message::Payload as Out,
};
use crate::MeetingsError;
use crate::auth::AuthError;
use crate::domain::{
    ConnectionType, DisplayName, LeaveReason, MeetingId, MeetingStatus, ParticipantId, StreamId,
    StreamType, TokenHash,
};
use crate::repo::{
    Admitted, ConnectionGrant, HostedStatus, JoinRequest, JoinWith, Meeting, NewStream,
    ParticipantSession,
};

/// How long a closing session may take to flush what it still has to say.
const FLUSH: Duration = Duration::from_secs(2);
/// How long a participant who left is given to read the end of the stream and close
/// the connection itself (see [`closed_by_peer`]).
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Frames decoded ahead of the session's handling.
const INBOUND_QUEUE: usize = 16;
/// The longest codec name accepted in `PublishStream`.
const MAX_CODEC_LEN: usize = 64;

/// How a session ends for its participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// The participant leaves now, with this reason.
    Leave(LeaveReason),
    /// It has already left in the stores (the presence job removed it).
    Gone,
    /// The meeting ended (everybody already left with `meeting_ended`).
    Ended,
    /// The meeting moved to another controller: the participant leaves here with
    /// `connection_lost`, and the meeting goes on there even when nobody is left here.
    Moved,
}

/// Why, and how, a session closes.
#[derive(Debug, Clone)]
struct Close {
    code: u32,
    reason: String,
    departure: Departure,
}

impl Close {
    fn new(code: u32, reason: impl Into<String>, departure: Departure) -> Close {
        Close {
            code,
            reason: reason.into(),
            departure,
        }
    }

    fn shutdown() -> Close {
        Close::new(
            proto::CLOSE_BY_CONTROLLER,
            "the meeting controller is shutting down",
            Departure::Leave(LeaveReason::ConnectionLost),
        )
    }

    fn too_slow() -> Close {
        Close::new(
            proto::CLOSE_BY_CONTROLLER,
            "too_slow: the client does not read its messages fast enough",
            Departure::Leave(LeaveReason::ConnectionLost),
        )
    }

    fn moved() -> Close {
        Close::new(
            proto::CLOSE_BY_CONTROLLER,
            format!("{}: {MOVED_MESSAGE}", proto::MEETING_MOVED),
            Departure::Moved,
        )
    }

    /// Whether the participant was told why in a last message, which it must have
    /// the time to read: a leave it asked for, a join refused (or a stay: the host
    /// required sign-in since), the meeting's end, its move to another controller. Not
    /// a lost connection, a protocol error, a client too slow or silent, a shutdown.
    fn told(&self) -> bool {
        self.code == proto::CLOSE_JOIN_REFUSED
            || matches!(
                self.departure,
                Departure::Leave(LeaveReason::Voluntary) | Departure::Ended | Departure::Moved
            )
    }

    fn connection_lost(what: &str) -> Close {
        Close::new(
            proto::CLOSE_NORMAL,
            what,
            Departure::Leave(LeaveReason::ConnectionLost),
        )
    }
}

/// What a guest is told when the meeting admits signed-in users only
/// ([`proto::AUTH_REQUIRED`]).
const AUTH_REQUIRED_MESSAGE: &str =
    "this meeting admits signed-in users only; sign in and join again";

/// What a guest already in is told when the host has required sign-in since.
const AUTH_REQUIRED_NOW: &str =
    "the host now requires participants to sign in; sign in and join again";

/// What a visitor waiting for the host is told ([`proto::MEETING_EMPTIED`]) when the
/// meeting ended because the last participant in it left.
const EMPTIED_MESSAGE: &str = "the meeting ended: everyone in it left";

/// What a participant who left last is told: its leave ended the meeting.
const LEFT_LAST_MESSAGE: &str = "you left; the meeting ended because nobody was left in it";

/// What the host is told when their meeting ends while they are in it (they ended it).
const HOST_ENDED_MESSAGE: &str = "you ended this meeting";

/// What a session whose meeting moved is told ([`proto::MEETING_MOVED`]).
const MOVED_MESSAGE: &str =
    "this meeting moved to another meeting controller; ask for a new join grant and join again";

/// Closes a session from outside its task, with the first reason given.
#[derive(Debug, Clone, Default)]
struct Closer {
    token: CancellationToken,
    why: Arc<OnceLock<Close>>,
}

impl Closer {
    fn close(&self, why: Close) {
        let _ = self.why.set(why);
        self.token.cancel();
    }
}

/// A connected participant of a hosted meeting.
struct Member {
    seq: u64,
    out: mpsc::Sender<ServerMessage>,
    closer: Closer,
    info: ParticipantInfo,
    /// Whether it is the meeting's host (its creator): it is shown the waiting room.
    host: bool,
}

impl Member {
    /// Queues `message` for this member; one that cannot keep up is closed.
    fn deliver(&self, message: ServerMessage) {
        match self.out.try_send(message) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => self.closer.close(Close::too_slow()),
        }
    }
}

/// What became of a key exchange handed to [`Rooms::relay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relayed {
    Sent,
    /// The recipient has half its queue or more waiting: dropped.
    Busy,
    /// Nobody by that id is connected here.
    Absent,
}

/// One of a session's budgets ([`proto::Budget`]): a token bucket, and how many messages
/// it dropped since it was last full.
#[derive(Debug)]
struct Bucket {
    budget: proto::Budget,
    tokens: f64,
    at: Instant,
    dropped: u64,
    /// Whether the last message found it full (the session had paused).
    rested: bool,
}

/// What a [`Bucket`] says of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// Dropped; `first`: the first one since the budget was last full (say so).
    Drop {
        first: bool,
    },
    /// Dropped, and the session has dropped far too many: close it.
    Flooding,
}

impl Bucket {
    fn new(budget: proto::Budget, now: Instant) -> Bucket {
        Bucket {
            budget,
            tokens: f64::from(budget.burst),
            at: now,
            dropped: 0,
            rested: true,
        }
    }

    fn take(&mut self, now: Instant) -> Verdict {
        let burst = f64::from(self.budget.burst);
        let refill = now.saturating_duration_since(self.at).as_secs_f64()
            * f64::from(self.budget.per_second);
        self.at = now;
        self.tokens = (self.tokens + refill).min(burst);
        self.rested = self.tokens >= burst;
        if self.rested {
            // Filled up again: the flood, if any, is over.
            self.dropped = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Pass;
        }
        self.dropped += 1;
        let limit = u64::from(self.budget.burst) * u64::from(proto::FLOOD_FACTOR);
        if self.dropped > limit {
            Verdict::Flooding
        } else {
            Verdict::Drop {
                first: self.dropped == 1,
            }
        }
    }
}

/// The meetings a controller hosts, with their connected participants.
#[derive(Default)]
pub(crate) struct Rooms {
    inner: Mutex<HashMap<MeetingId, HashMap<ParticipantId, Member>>>,
    /// Each meeting's waiting room. Locked before `inner` when both are (never the
    /// other way round).
    lobbies: Mutex<HashMap<MeetingId, Lobby>>,
    seq: AtomicU64,
    /// The meetings emptied by a lost connection and waiting for their participants to
    /// join again, each with the mark of its newest emptying ([`Rooms::emptied`]).
    emptied: Mutex<HashMap<MeetingId, u64>>,
}

/// One meeting's waiting room.
#[derive(Default)]
struct Lobby {
    /// The visitors waiting for the host, longest waiting first.
    waiting: Vec<Waiter>,
    /// The host's decisions on visitors, each kept until the visitor's waiting limit
    /// has passed or a new connection of it has taken it: a connection lost as the host
    /// decided may not have heard it, and its visitor's new connection gets it rather
    /// than waiting again ([`Rooms::wait`]).
    decided: Vec<Decided>,
}

impl Lobby {
    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.decided.is_empty()
    }
}

/// What the host decided for a visitor who waited since `since`.
struct Decided {
    who: Visitor,
    since: DateTime<Utc>,
    admitted: bool,
}

/// What the host decided for a visitor, or why nobody will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Admitted,
    Denied,
    /// The meeting ended while it waited.
    Ended,
    /// The meeting ended while it waited because everyone in it left.
    Emptied,
    /// The meeting moved to another controller while it waited.
    Moved,
    /// The same visitor waits from a newer connection, which took this one's place.
    Replaced,
}

/// Who waits, across connections: a signed-in visitor's account, or the hash of the
/// admission token a guest was given when it began to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Visitor {
    User(crate::domain::UserId),
    Guest(TokenHash),
}

/// The participant ids of a visitor's earlier connections kept for a host's decision
/// that names one of them ([`Waiter::earlier`]).
const EARLIER_KEPT: usize = 8;

/// A visitor waiting for the host ([`Rooms::wait`]).
struct Waiter {
    participant: ParticipantId,
    who: Visitor,
    display_name: String,
    /// When the visitor began waiting for this meeting, on the repository's clock: its
    /// first connection's wait, kept by the connections that take its place, so that
    /// the waiting limit runs from then however often it joins again.
    since: DateTime<Utc>,
    /// The participant ids of the visitor's earlier connections whose place this one
    /// took (the last [`EARLIER_KEPT`]): a host who decided on the list it saw before
    /// names one of them, and the decision is this connection's.
    earlier: Vec<ParticipantId>,
    decide: oneshot::Sender<Decision>,
}

/// Where [`Rooms::wait`] put a visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// At the end of the list.
    Last,
    /// At the place of its earlier connection, which is told [`Decision::Replaced`];
    /// it has waited since that one's `since`.
    Kept { since: DateTime<Utc> },
    /// Nowhere: [`proto::MAX_WAITING`] wait already.
    Full,
    /// Nowhere: the host has decided on this visitor (let in: `true`) while an earlier
    /// connection of it waited.
    Decided { admitted: bool },
}

/// Whether a visitor who began waiting at `since` is past the waiting `limit` at `now`.
fn past(since: DateTime<Utc>, limit: Duration, now: DateTime<Utc>) -> bool {
    now.signed_duration_since(since)
        .to_std()
        .is_ok_and(|waited| waited >= limit)
}

impl Rooms {
    fn lock(&self) -> MutexGuard<'_, HashMap<MeetingId, HashMap<ParticipantId, Member>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_lobbies(&self) -> MutexGuard<'_, HashMap<MeetingId, Lobby>> {
        self.lobbies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The meetings somebody waits for; forgets the decisions on visitors whose waiting
    /// `limit` has passed at `now`.
    fn lobby_meetings(&self, now: DateTime<Utc>, limit: Duration) -> Vec<MeetingId> {
        let mut lobbies = self.lock_lobbies();
        for lobby in lobbies.values_mut() {
            lobby.decided.retain(|d| !past(d.since, limit, now));
        }
        lobbies.retain(|_, lobby| !lobby.is_empty());
        lobbies
            .iter()
            .filter(|(_, lobby)| !lobby.waiting.is_empty())
            .map(|(meeting, _)| *meeting)
            .collect()
    }

    /// `WaitingRoom` listing `waiting`.
    fn waiting_room(waiting: &[Waiter]) -> ServerMessage {
        ServerMessage::new(Out::WaitingRoom(proto::WaitingRoom {
            waiting: waiting
                .iter()
                .map(|w| proto::Visitor {
                    participant_id: w.participant.to_string(),
                    display_name: w.display_name.clone(),
                })
                .collect(),
        }))
    }

    /// Tells the host's sessions connected to `meeting` who waits now (the caller holds
    /// the lobbies, so that the lists reach them in order).
    fn show_waiting(&self, meeting: MeetingId, waiting: &[Waiter]) {
        let list = Rooms::waiting_room(waiting);
        if let Some(room) = self.lock().get(&meeting) {
            for member in room.values().filter(|m| m.host) {
                member.deliver(list.clone());
            }
        }
    }

    /// Puts a visitor in `meeting`'s waiting room and tells the host, in one step with
    /// the host's decisions ([`Rooms::decide`]): at the place of the same visitor's
    /// earlier connection while it is listed (that one is told it was replaced; the
    /// visitor keeps the time it began waiting, and a decision naming the earlier
    /// connection is this one's); nowhere when the host has decided on the visitor
    /// already and its waiting `limit` has not passed at `now` (the decision is this
    /// connection's, and forgotten); else at the end; nowhere (nothing changed) when
    /// [`proto::MAX_WAITING`] wait already.
    fn wait(
        &self,
        meeting: MeetingId,
        mut waiter: Waiter,
        now: DateTime<Utc>,
        limit: Duration,
    ) -> Placed {
        let mut lobbies = self.lock_lobbies();
        let lobby = lobbies.entry(meeting).or_default();
        lobby.decided.retain(|d| !past(d.since, limit, now));
        let placed = if let Some(earlier) = lobby.waiting.iter_mut().find(|w| w.who == waiter.who) {
            waiter.since = earlier.since;
            waiter.earlier = std::mem::take(&mut earlier.earlier);
            waiter.earlier.push(earlier.participant);
            if waiter.earlier.len() > EARLIER_KEPT {
                waiter.earlier.remove(0);
            }
            let since = waiter.since;
            let earlier = std::mem::replace(earlier, waiter);
            // An earlier connection gone meanwhile is simply not there to hear it.
            let _ = earlier.decide.send(Decision::Replaced);
            Placed::Kept { since }
        } else if let Some(at) = lobby.decided.iter().position(|d| d.who == waiter.who) {
            let decided = lobby.decided.remove(at);
            if lobby.is_empty() {
                lobbies.remove(&meeting);
            }
            return Placed::Decided {
                admitted: decided.admitted,
            };
        } else if lobby.waiting.len() >= proto::MAX_WAITING {
            if lobby.is_empty() {
                lobbies.remove(&meeting);
            }
            return Placed::Full;
        } else {
            lobby.waiting.push(waiter);
            Placed::Last
        };
        self.show_waiting(meeting, &lobby.waiting);
        placed
    }

    /// Whether `who` waits for `meeting` (from some connection), or the host decided on
    /// it and that decision is kept for its new connection.
    fn holds(&self, meeting: MeetingId, who: &Visitor) -> bool {
        self.lock_lobbies().get(&meeting).is_some_and(|lobby| {
            lobby.waiting.iter().any(|w| &w.who == who)
                || lobby.decided.iter().any(|d| &d.who == who)
        })
    }

    /// Takes visitor `participant` out of `meeting`'s waiting room (it left or gave up)
    /// and tells the host; the waiter, if it was there.
    fn unwait(&self, meeting: MeetingId, participant: ParticipantId) -> Option<Waiter> {
        let mut lobbies = self.lock_lobbies();
        let lobby = lobbies.get_mut(&meeting)?;
        let at = lobby
            .waiting
            .iter()
            .position(|w| w.participant == participant)?;
        let waiter = lobby.waiting.remove(at);
        self.show_waiting(meeting, &lobby.waiting);
        if lobby.is_empty() {
            lobbies.remove(&meeting);
        }
        Some(waiter)
    }

    /// The host's decision for visitor `participant` of `meeting` (the connection
    /// listed, or an earlier one of the same visitor whose place it took), in one step
    /// with the visitor's new connections ([`Rooms::wait`]): its connection is told,
    /// and the decision is kept for a new connection of the visitor (the one told may
    /// have been lost). `false` when nobody by that id waits (it left, or another of
    /// the host's sessions decided).
    fn decide(&self, meeting: MeetingId, participant: ParticipantId, admit: bool) -> bool {
        let mut lobbies = self.lock_lobbies();
        let Some(lobby) = lobbies.get_mut(&meeting) else {
            return false;
        };
        let Some(at) = lobby
            .waiting
            .iter()
            .position(|w| w.participant == participant || w.earlier.contains(&participant))
        else {
            return false;
        };
        let waiter = lobby.waiting.remove(at);
        self.show_waiting(meeting, &lobby.waiting);
        lobby.decided.retain(|d| d.who != waiter.who);
        if lobby.decided.len() >= proto::MAX_WAITING {
            lobby.decided.remove(0);
        }
        lobby.decided.push(Decided {
            who: waiter.who,
            since: waiter.since,
            admitted: admit,
        });
        let decision = if admit {
            Decision::Admitted
        } else {
            Decision::Denied
        };
        // A visitor gone meanwhile is simply not there to hear it.
        let _ = waiter.decide.send(decision);
        true
    }

    /// Sends `out` (a host's session just joined) who waits for `meeting`, if anybody.
    fn tell_host(&self, meeting: MeetingId, out: &mpsc::Sender<ServerMessage>) {
        let lobbies = self.lock_lobbies();
        if let Some(lobby) = lobbies.get(&meeting).filter(|l| !l.waiting.is_empty()) {
            let _ = out.try_send(Rooms::waiting_room(&lobby.waiting));
        }
    }

    /// Empties `meeting`'s waiting room, telling each visitor `why`.
    fn close_lobby(&self, meeting: MeetingId, why: Decision) {
        let lobby = self.lock_lobbies().remove(&meeting).unwrap_or_default();
        for waiter in lobby.waiting {
            let _ = waiter.decide.send(why);
        }
    }

    /// How many meetings it hosts and how many participants are connected.
    pub(crate) fn load(&self) -> (usize, usize) {
        let rooms = self.lock();
        (rooms.len(), rooms.values().map(HashMap::len).sum())
    }

    fn hosts(&self, meeting: MeetingId) -> bool {
        self.lock().contains_key(&meeting)
    }

    fn lock_emptied(&self) -> MutexGuard<'_, HashMap<MeetingId, u64>> {
        self.emptied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that a lost connection emptied `meeting`: the mark returned is this
    /// emptying's, and replaces any earlier one's.
    fn emptied(&self, meeting: MeetingId) -> u64 {
        let mark = self.seq.fetch_add(1, Ordering::Relaxed);
        self.lock_emptied().insert(meeting, mark);
        mark
    }

    /// Whether the emptying marked `mark` is `meeting`'s newest and nobody has joined
    /// it here since (forgotten then): an earlier emptying's wait gives way to the
    /// newer one's, which waits its own full time.
    fn still_emptied(&self, meeting: MeetingId, mark: u64) -> bool {
        let mut emptied = self.lock_emptied();
        if emptied.get(&meeting) == Some(&mark) {
            emptied.remove(&meeting);
            true
        } else {
            false
        }
    }

    fn meetings(&self) -> Vec<MeetingId> {
        self.lock().keys().copied().collect()
    }

    /// The ids of the connected participants of `meeting`.
    fn ids(&self, meeting: MeetingId) -> HashSet<ParticipantId> {
        self.lock()
            .get(&meeting)
            .map(|room| room.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The connected participants of `meeting`, with their closers.
    fn members(&self, meeting: MeetingId) -> Vec<(ParticipantId, Closer)> {
        self.lock()
            .get(&meeting)
            .map(|room| room.iter().map(|(id, m)| (*id, m.closer.clone())).collect())
            .unwrap_or_default()
    }

    /// Adds a joined participant (its `seq` is given here): its queue gets `response` listing everybody else
    /// (connected here first, in join order, then any other session `stored` in Redis),
    /// and everybody else gets `ParticipantJoined`.
    fn enter(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
        mut member: Member,
        mut response: JoinResponse,
        stored: &[ParticipantSession],
    ) {
        member.seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.lock_emptied().remove(&meeting);
        let mut rooms = self.lock();
        let room = rooms.entry(meeting).or_default();
        let mut here: Vec<&Member> = room.values().collect();
        here.sort_by_key(|m| m.seq);
        response.participants = here.iter().map(|m| m.info.clone()).collect();
        response.participants.extend(
            stored
                .iter()
                .filter(|s| {
                    s.participant_id != participant && !room.contains_key(&s.participant_id)
                })
                .map(info_of_session),
        );
        // A list too long for one frame goes on in MoreParticipants, before anything
        // else reaches this member (it is not in the room yet).
        let (response, more) = proto::split_join_response(response);
        member.deliver(ServerMessage::new(Out::JoinResponse(response)));
        for chunk in more {
            member.deliver(ServerMessage::new(Out::MoreParticipants(chunk)));
        }
        let joined = ServerMessage::new(Out::ParticipantJoined(ParticipantJoined {
            participant: Some(member.info.clone()),
        }));
        for other in room.values() {
            other.deliver(joined.clone());
        }
        room.insert(participant, member);
    }

    /// Removes a participant; whether it was there.
    fn remove(&self, meeting: MeetingId, participant: ParticipantId) -> bool {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(&meeting) else {
            return false;
        };
        let removed = room.remove(&participant).is_some();
        if room.is_empty() {
            rooms.remove(&meeting);
        }
        removed
    }

    /// Sends `message` to every participant of `meeting` but `except`.
    fn broadcast(
        &self,
        meeting: MeetingId,
        except: Option<ParticipantId>,
        message: &ServerMessage,
    ) {
        if let Some(room) = self.lock().get(&meeting) {
            for (id, member) in room {
                if Some(*id) != except {
                    member.deliver(message.clone());
                }
            }
        }
    }

    /// Relays a key exchange to `to` alone, if it is connected to `meeting` here and
    /// keeps up: one with half its queue or more waiting gets nothing (what others send
    /// it never closes it; the controller's own events keep the other half).
    fn relay(&self, meeting: MeetingId, to: ParticipantId, message: ServerMessage) -> Relayed {
        let rooms = self.lock();
        let Some(member) = rooms.get(&meeting).and_then(|room| room.get(&to)) else {
            return Relayed::Absent;
        };
        if member.out.capacity() * 2 <= member.out.max_capacity() {
            return Relayed::Busy;
        }
        match member.out.try_send(message) {
            Ok(()) | Err(TrySendError::Closed(_)) => Relayed::Sent,
            Err(TrySendError::Full(_)) => Relayed::Busy,
        }
    }

    /// Changes what the others see of `participant`: what `change` answers, or `None`
    /// if it is not here.
    fn update<R>(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
        change: impl FnOnce(&mut ParticipantInfo) -> R,
    ) -> Option<R> {
        self.lock()
            .get_mut(&meeting)
            .and_then(|room| room.get_mut(&participant))
            .map(|member| change(&mut member.info))
    }

    /// How many streams `participant` publishes.
    fn stream_count(&self, meeting: MeetingId, participant: ParticipantId) -> usize {
        self.lock()
            .get(&meeting)
            .and_then(|room| room.get(&participant))
            .map_or(0, |m| m.info.streams.len())
    }

    /// Whether `participant` publishes `stream`.
    fn publishes(&self, meeting: MeetingId, participant: ParticipantId, stream: &str) -> bool {
        self.lock()
            .get(&meeting)
            .and_then(|room| room.get(&participant))
            .is_some_and(|m| m.info.streams.iter().any(|s| s.stream_id == stream))
    }

    /// The meeting ended: everybody gets `MeetingEnded` and is closed, and its visitors
    /// are turned away. Only its creator ends a meeting that has people in it, so the
    /// host is told that they ended it.
    fn end(&self, meeting: MeetingId) {
        self.close_lobby(meeting, Decision::Ended);
        if let Some(room) = self.lock().get(&meeting) {
            let ended = ServerMessage::new(Out::MeetingEnded(MeetingEnded {
                reason: "the meeting has ended".to_owned(),
                code: proto::ENDED.to_owned(),
            }));
            let by_you = ServerMessage::new(Out::MeetingEnded(MeetingEnded {
                reason: HOST_ENDED_MESSAGE.to_owned(),
                code: proto::ENDED_BY_YOU.to_owned(),
            }));
            for member in room.values() {
                member.deliver(if member.host {
                    by_you.clone()
                } else {
                    ended.clone()
                });
                member.closer.close(Close::new(
                    proto::CLOSE_NORMAL,
                    "the meeting has ended",
                    Departure::Ended,
                ));
            }
        }
    }

    /// Closes the guests (no user) connected to `meeting`, told [`proto::AUTH_REQUIRED`]:
    /// the host has required sign-in since they joined. How many there were.
    fn remove_guests(&self, meeting: MeetingId) -> usize {
        let Some(room) = self.lock().get(&meeting).map(|room| {
            room.values()
                .filter(|m| m.info.user_id.is_none())
                .map(|m| (m.out.clone(), m.closer.clone()))
                .collect::<Vec<_>>()
        }) else {
            return 0;
        };
        let told = ServerMessage::error(proto::AUTH_REQUIRED, AUTH_REQUIRED_NOW);
        for (out, closer) in &room {
            let _ = out.try_send(told.clone());
            closer.close(Close::new(
                proto::CLOSE_JOIN_REFUSED,
                format!("{}: {AUTH_REQUIRED_NOW}", proto::AUTH_REQUIRED),
                Departure::Leave(LeaveReason::Kicked),
            ));
        }
        room.len()
    }

    /// Tells every participant of `meeting` connected here that it moved (`Error`
    /// [`proto::MEETING_MOVED`]) and closes their sessions.
    fn moved(&self, meeting: MeetingId) {
        self.close_lobby(meeting, Decision::Moved);
        if let Some(room) = self.lock().get(&meeting) {
            let moved = ServerMessage::error(proto::MEETING_MOVED, MOVED_MESSAGE);
            for member in room.values() {
                member.deliver(moved.clone());
                member.closer.close(Close::moved());
            }
        }
    }
}

/// What others see of a participant known only from its Redis session (no mute state
/// or stream details are stored there).
fn info_of_session(session: &ParticipantSession) -> ParticipantInfo {
    ParticipantInfo {
        participant_id: session.participant_id.to_string(),
        user_id: session.user_id.map(|u| u.to_string()),
        display_name: session.display_name.clone(),
        audio_muted: false,
        video_muted: false,
        streams: Vec::new(),
    }
}

/// Serves one incoming connection: admission by its connection token, then the session.
pub(super) async fn serve(shared: Arc<Shared>, incoming: IncomingSession) {
    // The path names the meeting: it is read while the connection token is redeemed,
    // the client opens its stream and sends its JoinRequest, rather than after. A
    // request refused leaves its read to finish unused.
    let prefetch = |meeting| {
        let repo = shared.repo.clone();
        tokio::spawn(async move {
            let read = repo.meeting(meeting).await;
            (read, Instant::now())
        })
    };
    let Some((request, grant, peer, prefetched)) = crate::wt::admit(
        &shared.repo,
        &shared.stop,
        incoming,
        shared.config.join_timeout,
        "/meetings/",
        ConnectionType::Signaling,
        prefetch,
    )
    .await
    else {
        return;
    };
    let span = tracing::info_span!("meeting_session", meeting = %grant.meeting_id,
        participant = %grant.participant_id, %peer);
    run_session(shared, request, grant, peer, prefetched)
        .instrument(span)
        .await;
}

/// The meeting's read, started when its session was asked for, and when it ended.
type Prefetched = JoinHandle<(Result<Meeting, MeetingsError>, Instant)>;

/// Why a join did not happen: refused (answered `Error`, closed as a refused join), or
/// the session closed for another reason while it waited for the host.
enum JoinEnd {
    Refused(Refusal),
    Closed(Close),
}

impl From<Refusal> for JoinEnd {
    fn from(refusal: Refusal) -> JoinEnd {
        JoinEnd::Refused(refusal)
    }
}

/// A refused join: the `Error` code and its sentence.
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    fn internal(what: &str, error: &dyn std::fmt::Display) -> Refusal {
        tracing::warn!(%error, "{what}");
        Refusal::new(
            "internal",
            "the meeting controller could not complete this; try again",
        )
    }
}

/// A guest's admission token ([`proto`], "The waiting room"): 256 random bits in
/// lowercase hex, and the hash the meeting's admissions keep of it.
struct AdmissionToken {
    token: String,
    hash: TokenHash,
}

impl AdmissionToken {
    /// Characters of a token.
    const LEN: usize = 64;

    fn new() -> Option<AdmissionToken> {
        let bytes: [u8; 32] = rand::random();
        AdmissionToken::of(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// What a `JoinRequest` presented, if it has a token's form.
    fn presented(admission: &str) -> Option<AdmissionToken> {
        let well_formed = admission.len() == AdmissionToken::LEN
            && admission
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed
            .then(|| AdmissionToken::of(admission.to_owned()))
            .flatten()
    }

    /// `token` with its hash (lowercase hex, which always parses as a token hash).
    fn of(token: String) -> Option<AdmissionToken> {
        let hash = TokenHash::parse(&crate::auth::sha256_hex(token.as_bytes())).ok()?;
        Some(AdmissionToken { token, hash })
    }
}

/// How old the meeting read when the session was asked for may be when its JoinRequest
/// arrives; a later JoinRequest reads the meeting again, so that a meeting ended in the
/// meantime is not joined on an old read.
const PREFETCH_FRESH: Duration = Duration::from_millis(250);

/// One accepted session.
struct Session {
    shared: Arc<Shared>,
    meeting: MeetingId,
    participant: ParticipantId,
    out: mpsc::Sender<ServerMessage>,
    closer: Closer,
    joined: bool,
    /// The meeting, read since the session was asked for, and when (taken by the join).
    prefetched: Option<Prefetched>,
    /// The participant's row being written after the join's answer.
    row: Option<JoinHandle<Result<(), MeetingsError>>>,
    /// The new media grants it asked for in the last minute.
    media_grants: base::RecentLimit,
    /// Its budget of messages but key exchanges ([`proto::MESSAGE_BUDGET`]).
    messages: Bucket,
    /// Its budget of key exchanges ([`proto::KEY_EXCHANGE_BUDGET`]).
    key_exchanges: Bucket,
    /// The recipients it was told of a key exchange dropped for (busy) since its key
    /// exchange budget was last full.
    told_busy: HashSet<ParticipantId>,
    /// Whether its participant is the meeting's host (its creator, signed in).
    host: bool,
}

/// The outcome of the participant's row write; pending while there is none (a `select!`
/// guard keeps it from being polled then).
async fn row_written(
    row: &mut Option<JoinHandle<Result<(), MeetingsError>>>,
) -> Result<Result<(), MeetingsError>, tokio::task::JoinError> {
    match row {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

async fn run_session(
    shared: Arc<Shared>,
    request: SessionRequest,
    grant: ConnectionGrant,
    peer: SocketAddr,
    prefetched: Prefetched,
) {
    let user_agent = request.user_agent().map(str::to_owned);
    let (conn, send, recv) =
        match crate::wt::open(request, &shared.stop, shared.config.join_timeout).await {
            Ok(opened) => opened,
            Err(crate::wt::NotOpened::Lost) => return,
            Err(crate::wt::NotOpened::Stopping(conn)) => {
                close(&conn, &Close::shutdown());
                return;
            }
            Err(crate::wt::NotOpened::TimedOut(conn)) => {
                close(
                    &conn,
                    &Close::new(
                        proto::CLOSE_PROTOCOL_ERROR,
                        "no stream opened within the join timeout",
                        Departure::Leave(LeaveReason::ConnectionLost),
                    ),
                );
                return;
            }
        };
    let (out, outgoing) = mpsc::channel(shared.config.session_queue.max(8));
    let closer = Closer::default();
    let writer = tokio::spawn(write_frames(send, outgoing, closer.clone()).in_current_span());
    let (inbound_tx, mut inbound) = mpsc::channel(INBOUND_QUEUE);
    let reader = tokio::spawn(
        crate::wt::read_frames(recv, inbound_tx, proto::decode_client).in_current_span(),
    );
    let (message_budget, key_exchange_budget) = (
        shared.config.message_budget,
        shared.config.key_exchange_budget,
    );
    let mut session = Session {
        meeting: grant.meeting_id,
        participant: grant.participant_id,
        shared,
        out,
        closer,
        joined: false,
        prefetched: Some(prefetched),
        row: None,
        media_grants: base::RecentLimit::new(
            proto::MEDIA_GRANTS_PER_MINUTE,
            Duration::from_secs(60),
        ),
        messages: Bucket::new(message_budget, Instant::now()),
        key_exchanges: Bucket::new(key_exchange_budget, Instant::now()),
        told_busy: HashSet::new(),
        host: false,
    };
    let ending = session.run(&mut inbound, peer, user_agent).await;
    reader.abort();
    session.depart(&ending).await;
    let stop = session.shared.stop.clone();
    drop(session);
    flush(writer).await;
    if ending.told() {
        closed_by_peer(&conn, &stop).await;
    }
    tracing::info!(code = ending.code, reason = %ending.reason, "session closed");
    close(&conn, &ending);
}

/// Waits (a little) for a participant to close the connection once it has read what
/// was said last (`MeetingEnded` when it was the last one in, why its join was
/// refused, ...: [`Close::told`]). Closing it from here at once could lose that: a
/// browser drops what it has received but not yet read from a stream when the
/// connection closes under it, and gets no close reason either (the QUIC close is
/// "connection lost" to it).
async fn closed_by_peer(conn: &Connection, stop: &CancellationToken) {
    tokio::select! {
        _ = conn.closed() => {}
        () = stop.cancelled() => {}
        () = tokio::time::sleep(PEER_CLOSE_WAIT) => {
            tracing::debug!("the participant who left did not close the connection; closing it");
        }
    }
}

fn close(conn: &Connection, why: &Close) {
    conn.close(VarInt::from_u32(why.code), why.reason.as_bytes());
}

/// Waits (a little) for the writer to send what is queued and for the peer to have it.
async fn flush(mut writer: JoinHandle<Option<SendStream>>) {
    match tokio::time::timeout(FLUSH, &mut writer).await {
        Ok(Ok(Some(mut send))) => {
            let _ = tokio::time::timeout(FLUSH, send.finish()).await;
        }
        Ok(_) => {}
        Err(_) => writer.abort(),
    }
}

/// Writes queued messages as frames until the queue closes (`Some`: the stream, to
/// finish) or the stream fails (`None`). A message that cannot be framed is never
/// skipped (the client would wait for it): the session is closed (through `closer`)
/// after what came before it.
async fn write_frames(
    mut send: SendStream,
    mut outgoing: mpsc::Receiver<ServerMessage>,
    closer: Closer,
) -> Option<SendStream> {
    while let Some(message) = outgoing.recv().await {
        let frame = match proto::encode_server(&message) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::error!(%error, "an outgoing message could not be framed; closing the session");
                closer.close(Close::new(
                    proto::CLOSE_BY_CONTROLLER,
                    "internal: the meeting controller could not send a message; join again",
                    Departure::Leave(LeaveReason::ConnectionLost),
                ));
                return Some(send);
            }
        };
        if send.write_all(&frame).await.is_err() {
            return None;
        }
    }
    Some(send)
}

impl Session {
    /// Answers `Error` and closes the session for a protocol error.
    fn protocol_error(&self, code: &'static str, message: &str) -> Close {
        tracing::info!(code, message, "protocol error");
        let _ = self.out.try_send(ServerMessage::error(code, message));
        Close::new(
            proto::CLOSE_PROTOCOL_ERROR,
            format!("{code}: {message}"),
            Departure::Leave(LeaveReason::ConnectionLost),
        )
    }

    /// Queues an answer to this session; `Some` when it cannot take it.
    fn reply(&self, payload: Out) -> Option<Close> {
        match self.out.try_send(ServerMessage::new(payload)) {
            Ok(()) => None,
            Err(TrySendError::Full(_)) => Some(Close::too_slow()),
            Err(TrySendError::Closed(_)) => Some(Close::connection_lost("the stream failed")),
        }
    }

    /// The session until it ends: the join, then messages, presence and outside
    /// closes.
    async fn run(
        &mut self,
        inbound: &mut mpsc::Receiver<Result<In, FrameError>>,
        peer: SocketAddr,
        user_agent: Option<String>,
    ) -> Close {
        let shared = self.shared.clone();
        let config = &shared.config;
        let first = tokio::select! {
            () = shared.stop.cancelled() => return Close::shutdown(),
            () = tokio::time::sleep(config.join_timeout) => {
                return self.protocol_error("join_timeout", "no JoinRequest within the join timeout");
            }
            first = inbound.recv() => first,
        };
        match first {
            None => return Close::connection_lost("closed before joining"),
            Some(Err(error)) => return self.protocol_error(error.code(), &error.to_string()),
            Some(Ok(In::JoinRequest(join))) => {
                let ended = match self.join(join, inbound, peer, user_agent).await {
                    Ok(()) => None,
                    Err(JoinEnd::Closed(close)) => return close,
                    Err(JoinEnd::Refused(refusal)) => Some(refusal),
                };
                if let Some(refusal) = ended {
                    tracing::info!(code = refusal.code, message = %refusal.message, "join refused");
                    let _ = self
                        .out
                        .try_send(ServerMessage::error(refusal.code, &refusal.message));
                    return Close::new(
                        proto::CLOSE_JOIN_REFUSED,
                        format!("{}: {}", refusal.code, refusal.message),
                        Departure::Leave(LeaveReason::ConnectionLost),
                    );
                }
            }
            Some(Ok(_)) => {
                return self.protocol_error(
                    "unexpected_message",
                    "the first message must be JoinRequest",
                );
            }
        }

        let mut last_seen = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = self.closer.token.cancelled() => {
                    return self.closer.why.get().cloned().unwrap_or_else(Close::shutdown);
                }
                // A stopping controller has handed its meetings on: the participant
                // joins again elsewhere, and the meeting goes on.
                () = shared.stop.cancelled() => {
                    let _ = self
                        .out
                        .try_send(ServerMessage::error(proto::MEETING_MOVED, MOVED_MESSAGE));
                    return Close::moved();
                }
                written = row_written(&mut self.row), if self.row.is_some() => {
                    self.row = None;
                    let departure = match written {
                        Ok(Ok(())) => continue,
                        // The meeting ended after the join's Redis step (which the write
                        // undid). It departs as at the end: the others, told that the
                        // meeting ended, are not told that it left.
                        Ok(Err(MeetingsError::MeetingEnded(_))) => {
                            let _ = self.out.try_send(ServerMessage::new(Out::MeetingEnded(
                                MeetingEnded {
                                    reason: "the meeting has ended".to_owned(),
                                    code: proto::ENDED.to_owned(),
                                },
                            )));
                            return Close::new(
                                proto::CLOSE_NORMAL,
                                "the meeting has ended",
                                Departure::Ended,
                            );
                        }
                        // The write undid the Redis session.
                        Ok(Err(_)) => Departure::Gone,
                        Err(error) => {
                            tracing::error!(%error, "the participant row's write stopped");
                            Departure::Leave(LeaveReason::ConnectionLost)
                        }
                    };
                    let _ = self.out.try_send(ServerMessage::error(
                        "internal",
                        "the meeting controller could not record this join; join again",
                    ));
                    return Close::new(
                        proto::CLOSE_BY_CONTROLLER,
                        "internal: the join could not be recorded",
                        departure,
                    );
                }
                () = tokio::time::sleep_until(last_seen + config.presence_timeout) => {
                    return Close::new(
                        proto::CLOSE_BY_CONTROLLER,
                        "no heartbeat within the presence timeout",
                        Departure::Leave(LeaveReason::ConnectionLost),
                    );
                }
                message = inbound.recv() => match message {
                    None => return Close::connection_lost("the connection closed"),
                    Some(Err(error)) => return self.protocol_error(error.code(), &error.to_string()),
                    Some(Ok(payload)) => {
                        last_seen = Instant::now();
                        match self.within_budget(&payload, last_seen) {
                            Ok(true) => {}
                            Ok(false) => continue,
                            Err(close) => return close,
                        }
                        if let Some(close) = self.handle(payload).await {
                            return close;
                        }
                    }
                },
            }
        }
    }

    /// The join (Data Flow Example 1): the meeting token must verify and name this
    /// connection's meeting and participant.
    async fn join(
        &mut self,
        join: proto::JoinRequest,
        inbound: &mut mpsc::Receiver<Result<In, FrameError>>,
        peer: SocketAddr,
        user_agent: Option<String>,
    ) -> Result<(), JoinEnd> {
        let shared = self.shared.clone();
        // The token is verified while the meeting (the session's path and its
        // connection grant named it) is still being read; the meeting is used only once
        // the token verified, and read again when it was read more than PREFETCH_FRESH
        // ago.
        let (prefetched, id) = (self.prefetched.take(), self.meeting);
        let meeting = async {
            if let Some(task) = prefetched
                && let Ok((read, at)) = task.await
                && at.elapsed() <= PREFETCH_FRESH
            {
                return read;
            }
            shared.repo.meeting(id).await
        };
        // The token's blacklist entry is checked by the join's own atomic step.
        let (ticket, meeting) = tokio::join!(shared.auth.meeting_ticket(&join.token), meeting);
        let (ticket, presented) = ticket.map_err(|error| match error {
            AuthError::Meetings(e) => Refusal::internal("could not verify a meeting token", &e),
            AuthError::MissingScope(_) => {
                Refusal::new("invalid_token", "this is not a meeting token")
            }
            other => Refusal::new("invalid_token", other.to_string()),
        })?;
        if ticket.meeting_id != self.meeting || ticket.participant_id != self.participant {
            return Err(Refusal::new(
                "invalid_token",
                "this meeting token was not granted for this connection",
            )
            .into());
        }
        let mut meeting = meeting.map_err(refusal)?;
        // The grant checked this too, but the host may have required sign-in since.
        if meeting.settings.require_auth && ticket.user_id.is_none() {
            return Err(Refusal::new(proto::AUTH_REQUIRED, AUTH_REQUIRED_MESSAGE).into());
        }
        self.host = ticket.user_id.is_some() && ticket.user_id == meeting.created_by_user_id;
        // A guest's admission token: the one it presented while it holds, else a new one
        // once the host lets it in.
        let mut admission = None;
        if meeting.settings.waiting_room_enabled && !self.host {
            let presented = AdmissionToken::presented(&join.admission);
            if self
                .admitted_before(ticket.user_id, presented.as_ref())
                .await
            {
                tracing::info!("let in by the host before; not waiting again");
                admission = presented;
            } else {
                // Who waits: the account, or a guest's admission token: the one it
                // presented while its earlier connection still waits here (it takes that
                // one's place), else a new one.
                let (who, token) = match ticket.user_id {
                    Some(user) => (Visitor::User(user), None),
                    None => {
                        let token = presented
                            .filter(|p| {
                                shared
                                    .rooms
                                    .holds(self.meeting, &Visitor::Guest(p.hash.clone()))
                            })
                            .or_else(AdmissionToken::new)
                            .ok_or_else(|| {
                                Refusal::internal("no admission token", &"its hash did not parse")
                            })?;
                        (Visitor::Guest(token.hash.clone()), Some(token))
                    }
                };
                self.wait_for_host(inbound, &meeting, &ticket.display_name, who, token.as_ref())
                    .await?;
                // Read again: it may have ended or changed while the visitor waited.
                meeting = shared.repo.meeting(self.meeting).await.map_err(refusal)?;
                if meeting.settings.require_auth && ticket.user_id.is_none() {
                    return Err(Refusal::new(proto::AUTH_REQUIRED, AUTH_REQUIRED_MESSAGE).into());
                }
                admission = self.remember_admission(ticket.user_id, token).await;
            }
        }
        let (meetings, participants) = shared.rooms.load();
        let limits = &shared.config;
        let participants_full =
            i64::try_from(participants).unwrap_or(i64::MAX) >= i64::from(limits.max_participants);
        let meetings_full = !shared.rooms.hosts(self.meeting)
            && i64::try_from(meetings).unwrap_or(i64::MAX) >= i64::from(limits.max_meetings);
        if participants_full || meetings_full {
            return Err(Refusal::new(
                "controller_full",
                "this meeting controller is full; ask for a new join grant",
            )
            .into());
        }
        let client_version = Some(join.client_version).filter(|v| !v.is_empty());
        // Those connected here are listed from memory (`Rooms::enter`); only the others'
        // sessions are read from Redis.
        let here = shared.rooms.ids(self.meeting);
        let (joined, row) = shared
            .repo
            .join_meeting(
                &meeting,
                self.participant,
                &JoinRequest {
                    meeting_id: self.meeting,
                    user_id: ticket.user_id,
                    display_name: ticket.display_name.clone(),
                    ip_address: Some(peer.ip()),
                    user_agent,
                    client_version,
                },
                &here,
                JoinWith {
                    presented: Some(&presented),
                    // The media grant's token, issued by the join's own step (a media
                    // token names no handler, so it serves whichever the grant names).
                    media_token: shared.config.media.is_some(),
                },
            )
            .await
            .map_err(refusal)?;
        // The row is written while the answer goes out (the seed's "async" write); the
        // session ends if it fails, and a leave waits for it.
        self.row = Some(tokio::spawn(row.write().in_current_span()));
        self.joined = true;
        let stored = joined.participants;
        let me = ParticipantInfo {
            participant_id: self.participant.to_string(),
            user_id: ticket.user_id.map(|u| u.to_string()),
            display_name: ticket.display_name.to_string(),
            audio_muted: false,
            video_muted: false,
            streams: Vec::new(),
        };
        let media = self.media_grant(false, joined.media_token).await;
        let response = JoinResponse {
            participant_id: self.participant.to_string(),
            meeting_id: self.meeting.to_string(),
            meeting_display_name: meeting.display_name,
            e2e_encryption: meeting.settings.enable_e2e_encryption,
            participants: Vec::new(),
            media_handlers: media.iter().map(|(endpoint, _)| endpoint.clone()).collect(),
            media: media.map(|(_, grant)| grant),
            more_participants: 0,
            admission: admission.map(|a| a.token).unwrap_or_default(),
        };
        shared.rooms.enter(
            self.meeting,
            self.participant,
            Member {
                seq: 0,
                out: self.out.clone(),
                closer: self.closer.clone(),
                info: me,
                host: self.host,
            },
            response,
            &stored,
        );
        if self.host {
            shared.rooms.tell_host(self.meeting, &self.out);
        }
        tracing::info!(host = self.host, "participant joined");
        Ok(())
    }

    /// Whether the host let this visitor into the meeting before: its account, or the
    /// guest holding `presented` ([`proto`], "The waiting room"). A store that cannot
    /// answer counts as no (the visitor waits; logged).
    async fn admitted_before(
        &self,
        user: Option<crate::domain::UserId>,
        presented: Option<&AdmissionToken>,
    ) -> bool {
        let who = Admitted {
            user_id: user,
            guest_token: presented.map(|a| &a.hash).filter(|_| user.is_none()),
        };
        match self.shared.repo.was_admitted(self.meeting, who).await {
            Ok(admitted) => admitted,
            Err(error) => {
                tracing::warn!(%error, "could not read the meeting's admissions; the visitor waits");
                false
            }
        }
    }

    /// Remembers that the host let this visitor in: a signed-in user by its account, a
    /// guest by the admission token it was given as it began to wait, returned for its
    /// `JoinResponse`. A store that cannot take it is logged: the join goes on (a later
    /// one waits again).
    async fn remember_admission(
        &self,
        user: Option<crate::domain::UserId>,
        token: Option<AdmissionToken>,
    ) -> Option<AdmissionToken> {
        let token = token.filter(|_| user.is_none());
        let who = Admitted {
            user_id: user,
            guest_token: token.as_ref().map(|a| &a.hash),
        };
        match self.shared.repo.remember_admission(self.meeting, who).await {
            Ok(()) => token,
            Err(error) => {
                tracing::warn!(%error, "could not remember the admission; a later join waits again");
                None
            }
        }
    }

    /// A visitor of a meeting with a waiting room ([`proto`], "The waiting room"): told
    /// to wait (a guest given its admission `token`), listed to the host (at the place
    /// of `who`'s earlier connection while that one is listed), until the host decides
    /// (`Ok`: let in), it leaves, the meeting ends or moves, a newer connection of
    /// `who` takes its place, or the waiting limit (from when `who` began waiting)
    /// passes. A host's decision on `who` while an earlier connection of it waited is
    /// this one's at once, without waiting.
    async fn wait_for_host(
        &mut self,
        inbound: &mut mpsc::Receiver<Result<In, FrameError>>,
        meeting: &Meeting,
        name: &DisplayName,
        who: Visitor,
        token: Option<&AdmissionToken>,
    ) -> Result<(), JoinEnd> {
        let shared = self.shared.clone();
        let (decide, mut decided) = oneshot::channel();
        let now = shared.repo.now();
        let waiter = Waiter {
            participant: self.participant,
            who,
            display_name: name.to_string(),
            since: now,
            earlier: Vec::new(),
            decide,
        };
        let limit = shared.config.waiting_limit;
        let placed = match shared.rooms.wait(self.meeting, waiter, now, limit) {
            Placed::Decided { admitted: true } => {
                tracing::info!(
                    "let in by the host as an earlier connection of this visitor waited"
                );
                return Ok(());
            }
            Placed::Decided { admitted: false } => {
                tracing::info!(
                    "turned away by the host as an earlier connection of this visitor waited"
                );
                return Err(denied().into());
            }
            placed => placed,
        };
        if placed == Placed::Full {
            return Err(Refusal::new(
                proto::WAITING_ROOM_FULL,
                format!(
                    "{} people are waiting for the host already; try again later",
                    proto::MAX_WAITING
                ),
            )
            .into());
        }
        // The limit runs from when the visitor began waiting, over all its connections.
        let left = match placed {
            Placed::Kept { since } => {
                let waited = now
                    .signed_duration_since(since)
                    .to_std()
                    .unwrap_or_default();
                tracing::info!(
                    waited_seconds = waited.as_secs(),
                    "waiting for the host at the place of its earlier connection"
                );
                limit.saturating_sub(waited)
            }
            _ => {
                tracing::info!("waiting for the host");
                limit
            }
        };
        let told = self.reply(Out::Waiting(proto::Waiting {
            meeting_display_name: meeting.display_name.clone(),
            wait_seconds: left.as_secs(),
            admission: token.map(|t| t.token.clone()).unwrap_or_default(),
        }));
        let deadline = tokio::time::sleep(left);
        tokio::pin!(deadline);
        // Presence as for participants: a visitor silent for the presence timeout (its
        // heartbeats stopped) is dropped from the list, and the host told.
        let mut last_seen = Instant::now();
        let end: JoinEnd = match told {
            Some(close) => JoinEnd::Closed(close),
            None => loop {
                tokio::select! {
                    biased;
                    decision = &mut decided => {
                        return match decision {
                            Ok(Decision::Admitted) => {
                                tracing::info!("let in by the host");
                                Ok(())
                            }
                            Ok(Decision::Denied) => Err(denied().into()),
                            Ok(Decision::Replaced) => Err(Refusal::new(
                                proto::WAITING_ELSEWHERE,
                                "you wait for the host from a newer connection, which took this one's place",
                            )
                            .into()),
                            Ok(Decision::Moved) => {
                                let _ = self.out.try_send(ServerMessage::error(
                                    proto::MEETING_MOVED,
                                    MOVED_MESSAGE,
                                ));
                                Err(JoinEnd::Closed(Close::moved()))
                            }
                            Ok(Decision::Emptied) => {
                                Err(Refusal::new(proto::MEETING_EMPTIED, EMPTIED_MESSAGE).into())
                            }
                            Ok(Decision::Ended) | Err(_) => {
                                Err(Refusal::new("meeting_ended", "the meeting has ended").into())
                            }
                        };
                    }
                    () = shared.stop.cancelled() => {
                        let _ = self
                            .out
                            .try_send(ServerMessage::error(proto::MEETING_MOVED, MOVED_MESSAGE));
                        break JoinEnd::Closed(Close::moved());
                    }
                    () = tokio::time::sleep_until(last_seen + shared.config.presence_timeout) => {
                        break JoinEnd::Closed(Close::new(
                            proto::CLOSE_BY_CONTROLLER,
                            "no heartbeat within the presence timeout while waiting for the host",
                            Departure::Leave(LeaveReason::ConnectionLost),
                        ));
                    }
                    () = &mut deadline => {
                        break Refusal::new(
                            proto::WAITING_TIMEOUT,
                            format!(
                                "nobody let you in within {} minutes; join again to wait again",
                                limit.as_secs().div_ceil(60)
                            ),
                        )
                        .into();
                    }
                    message = inbound.recv() => match message {
                        None => break JoinEnd::Closed(Close::connection_lost(
                            "closed while waiting for the host",
                        )),
                        Some(Err(error)) => {
                            break JoinEnd::Closed(self.protocol_error(error.code(), &error.to_string()));
                        }
                        Some(Ok(In::Leave(_))) => {
                            break JoinEnd::Closed(Close::new(
                                proto::CLOSE_NORMAL,
                                "left the waiting room",
                                Departure::Leave(LeaveReason::Voluntary),
                            ));
                        }
                        Some(Ok(payload @ In::Heartbeat(_))) => {
                            last_seen = Instant::now();
                            match self.within_budget(&payload, last_seen) {
                                Ok(false) => {}
                                Ok(true) => {
                                    let ack = Out::HeartbeatAck(proto::HeartbeatAck {});
                                    if let Some(close) = self.reply(ack) {
                                        break JoinEnd::Closed(close);
                                    }
                                }
                                Err(close) => break JoinEnd::Closed(close),
                            }
                        }
                        Some(Ok(_)) => {
                            break JoinEnd::Closed(self.protocol_error(
                                "unexpected_message",
                                "while waiting for the host only Heartbeat and Leave may be sent",
                            ));
                        }
                    },
                }
            },
        };
        if shared
            .rooms
            .unwait(self.meeting, self.participant)
            .is_none()
        {
            // Decided at the same moment: this connection does not hear it, a new
            // connection of the visitor does.
            tracing::debug!("the visitor's waiting ended as the host decided");
        }
        tracing::info!("stopped waiting for the host");
        Err(end)
    }

    /// The media grant of a joined participant, with its handler's endpoint: the
    /// meeting's handler (assigned at the first join here), a one-time `media`
    /// connection token. `None` (logged) without media handlers or when none can take the
    /// meeting: the join goes on without media.
    ///
    /// `renew`: the participant asks again (`RequestMediaGrant`: its media session failed
    /// or was lost), so the meeting's handler is kept only while the registry has it
    /// alive and taking sessions; else another is assigned. `token`: the connection
    /// token, when already issued (by the join's step); else one is issued here.
    async fn media_grant(
        &self,
        renew: bool,
        token: Option<crate::domain::WtToken>,
    ) -> Option<(String, MediaGrant)> {
        let shared = &self.shared;
        let media = shared.config.media.as_ref()?;
        let (handler, address) = {
            let mut assigned = shared.media_assigned.lock().await;
            let kept = match assigned.get(&self.meeting) {
                Some((handler, _)) if renew => {
                    match serving_address(shared, media, handler).await {
                        Some(address) => Some((handler.clone(), Some(address))),
                        None => {
                            tracing::info!(%handler, "the meeting's media handler stopped; assigning another");
                            None
                        }
                    }
                }
                Some((handler, _)) => media_address(shared, media, handler)
                    .await
                    .map(|a| (handler.clone(), Some(a))),
                None => None,
            };
            match kept {
                Some(kept) => kept,
                None => {
                    let mut rng = StdRng::from_rng(&mut rand::rng());
                    let chosen = shared
                        .repo
                        .assign_media_handler(
                            self.meeting,
                            &shared.config.region,
                            &media.liveness,
                            &mut rng,
                        )
                        .await;
                    match chosen {
                        Ok(Some(handler)) => {
                            assigned.insert(self.meeting, (handler.clone(), Instant::now()));
                            (handler, None)
                        }
                        Ok(None) => {
                            tracing::warn!(
                                "no media handler can take this meeting; joined without media"
                            );
                            return None;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not assign a media handler; joined without media");
                            return None;
                        }
                    }
                }
            }
        };
        let address = match address {
            Some(address) => Some(address),
            None => media_address(shared, media, &handler).await,
        };
        let Some(address) = address else {
            tracing::warn!(%handler, "the registry assigned a media handler this controller cannot reach");
            return None;
        };
        let token = match token {
            Some(token) => token,
            None => match shared
                .repo
                .issue_participant_token(
                    self.meeting,
                    self.participant,
                    crate::domain::ParticipantConnection::Media,
                )
                .await
            {
                Ok(token) => token,
                Err(error) => {
                    tracing::warn!(%error, "could not issue a media connection token");
                    return None;
                }
            },
        };
        let endpoint = address.endpoint.trim_end_matches('/').to_owned();
        let grant = MediaGrant {
            url: format!("{endpoint}/media/{}", self.meeting),
            wt_token: token.expose().to_owned(),
            certificate_hash: address.certificate_hash.clone().unwrap_or_default(),
        };
        Some((endpoint, grant))
    }

    /// Counts a message after the join against its budget ([`proto`], "Budgets"):
    /// `Ok(true)` to handle it, `Ok(false)` to drop it (the first one dropped is
    /// answered `rate_limited`), `Err` to close a session that keeps flooding.
    fn within_budget(&mut self, payload: &In, now: Instant) -> Result<bool, Close> {
        let (bucket, what) = match payload {
            In::Leave(_) | In::JoinRequest(_) => return Ok(true),
            In::E2eKey(_) => (&mut self.key_exchanges, "key exchanges"),
            _ => (&mut self.messages, "messages"),
        };
        let budget = bucket.budget;
        let verdict = bucket.take(now);
        if self.key_exchanges.rested {
            self.told_busy.clear();
        }
        match verdict {
            Verdict::Pass => Ok(true),
            Verdict::Drop { first } => {
                if first {
                    tracing::info!(what, "over its budget; messages dropped");
                    let said = self.reply(Out::Error(proto::Error::new(
                        proto::RATE_LIMITED,
                        format!(
                            "too many {what}: at most {} a second ({} at once); the ones beyond are dropped",
                            budget.per_second, budget.burst
                        ),
                    )));
                    if let Some(close) = said {
                        return Err(close);
                    }
                }
                Ok(false)
            }
            Verdict::Flooding => {
                tracing::info!(what, "kept flooding; closed");
                Err(Close::new(
                    proto::CLOSE_BY_CONTROLLER,
                    format!(
                        "{}: the client kept sending far more {what} than allowed",
                        proto::RATE_LIMITED
                    ),
                    Departure::Leave(LeaveReason::ConnectionLost),
                ))
            }
        }
    }

    /// Handles one message after the join; `Some` when the session ends.
    async fn handle(&mut self, payload: In) -> Option<Close> {
        let shared = self.shared.clone();
        let (meeting, me) = (self.meeting, self.participant);
        match payload {
            In::JoinRequest(_) => {
                Some(self.protocol_error("unexpected_message", "this session has already joined"))
            }
            In::Heartbeat(_) => match shared.repo.heartbeat(me).await {
                Ok(true) => self.reply(Out::HeartbeatAck(proto::HeartbeatAck {})),
                Ok(false) => Some(Close::new(
                    proto::CLOSE_BY_CONTROLLER,
                    "the participant's session has expired; join again",
                    Departure::Gone,
                )),
                Err(error) => {
                    tracing::warn!(%error, "heartbeat not recorded");
                    self.reply(internal())
                }
            },
            In::SetMute(mute) => {
                let changed = shared.rooms.update(meeting, me, |info| {
                    let was = (info.audio_muted, info.video_muted);
                    info.audio_muted = mute.audio_muted;
                    info.video_muted = mute.video_muted;
                    was != (mute.audio_muted, mute.video_muted)
                });
                if changed != Some(true) {
                    return None;
                }
                let changed = ServerMessage::new(Out::MuteChanged(MuteChanged {
                    participant_id: me.to_string(),
                    audio_muted: mute.audio_muted,
                    video_muted: mute.video_muted,
                }));
                shared.rooms.broadcast(meeting, Some(me), &changed);
                None
            }
            In::PublishStream(publish) => {
                let Ok(stream_type) = StreamType::parse(&publish.stream_type) else {
                    return self.reply(invalid_stream(
                        "stream_type must be video_camera, video_screen or audio_microphone",
                    ));
                };
                if publish.codec.is_empty() || publish.codec.chars().count() > MAX_CODEC_LEN {
                    return self.reply(invalid_stream("codec must be 1 to 64 characters"));
                }
                if shared.rooms.stream_count(meeting, me) >= proto::MAX_STREAMS_PER_PARTICIPANT {
                    return self.reply(Out::Error(proto::Error::new(
                        proto::TOO_MANY_STREAMS,
                        format!(
                            "a participant publishes at most {} streams at once; end one first",
                            proto::MAX_STREAMS_PER_PARTICIPANT
                        ),
                    )));
                }
                let stream = NewStream {
                    stream_id: StreamId::random(),
                    meeting_id: meeting,
                    participant_id: me,
                    stream_type,
                    codec: publish.codec,
                    max_bitrate: publish.max_bitrate,
                };
                match shared.repo.publish_stream(&stream).await {
                    Ok(true) => {
                        let info = StreamInfo {
                            stream_id: stream.stream_id.to_string(),
                            participant_id: me.to_string(),
                            stream_type: stream_type.as_str().to_owned(),
                            codec: stream.codec,
                            max_bitrate: stream.max_bitrate,
                        };
                        shared
                            .rooms
                            .update(meeting, me, |p| p.streams.push(info.clone()));
                        let published = ServerMessage::new(Out::StreamPublished(StreamPublished {
                            stream: Some(info),
                        }));
                        shared.rooms.broadcast(meeting, None, &published);
                        None
                    }
                    Ok(false) => Some(Close::new(
                        proto::CLOSE_BY_CONTROLLER,
                        "the participant's session has expired; join again",
                        Departure::Gone,
                    )),
                    Err(error) => {
                        tracing::warn!(%error, "stream not published");
                        self.reply(internal())
                    }
                }
            }
            In::UnpublishStream(unpublish) => {
                let stream = match StreamId::parse(&unpublish.stream_id) {
                    Ok(stream) if shared.rooms.publishes(meeting, me, &stream.to_string()) => {
                        stream
                    }
                    _ => return self.reply(unknown_stream("you publish no such stream")),
                };
                if let Err(error) = shared.repo.end_stream(stream, me).await {
                    tracing::warn!(%error, "stream not ended");
                    return self.reply(internal());
                }
                let id = stream.to_string();
                shared
                    .rooms
                    .update(meeting, me, |p| p.streams.retain(|s| s.stream_id != id));
                let ended = ServerMessage::new(Out::StreamUnpublished(StreamUnpublished {
                    stream_id: id,
                    participant_id: me.to_string(),
                }));
                shared.rooms.broadcast(meeting, None, &ended);
                None
            }
            In::Subscribe(subscribe) => {
                let Ok(stream) = StreamId::parse(&subscribe.stream_id) else {
                    return self.reply(unknown_stream("no such stream"));
                };
                match shared.repo.subscribe(me, stream).await {
                    Ok(Some(_)) => None,
                    Ok(None) => self.reply(unknown_stream("no such stream")),
                    Err(error) => {
                        tracing::warn!(%error, "subscription not recorded");
                        self.reply(internal())
                    }
                }
            }
            In::Unsubscribe(unsubscribe) => {
                let Ok(stream) = StreamId::parse(&unsubscribe.stream_id) else {
                    return self.reply(unknown_stream("no such stream"));
                };
                match shared.repo.unsubscribe(me, stream).await {
                    Ok(_) => None,
                    Err(error) => {
                        tracing::warn!(%error, "unsubscription not recorded");
                        self.reply(internal())
                    }
                }
            }
            In::E2eKey(exchange) => {
                // Relayed unread: the payload is the participants' own (key agreement).
                if exchange.payload.len() > proto::MAX_KEY_EXCHANGE {
                    return Some(self.protocol_error(
                        "invalid_message",
                        "a key exchange payload may be at most 4096 bytes",
                    ));
                }
                let to = match ParticipantId::parse(&exchange.participant_id) {
                    Ok(to) if to != me => to,
                    _ => {
                        return Some(self.protocol_error(
                            "invalid_message",
                            "a key exchange must name another participant",
                        ));
                    }
                };
                let relayed = ServerMessage::new(Out::E2eKey(KeyExchange {
                    participant_id: me.to_string(),
                    payload: exchange.payload,
                }));
                match shared.rooms.relay(meeting, to, relayed) {
                    Relayed::Sent => None,
                    Relayed::Absent => {
                        tracing::debug!(
                            "key exchange for a participant not connected here dropped"
                        );
                        None
                    }
                    Relayed::Busy if self.told_busy.contains(&to) => None,
                    Relayed::Busy => {
                        tracing::info!(recipient = %to, "key exchange dropped: its recipient does not keep up");
                        self.told_busy.insert(to);
                        self.reply(Out::Error(
                            proto::Error::new(
                                proto::RECIPIENT_BUSY,
                                format!(
                                    "participant {to} has too much waiting for it; key exchanges for it are dropped for now"
                                ),
                            )
                            .about(to),
                        ))
                    }
                }
            }
            In::RequestMediaGrant(_) => {
                if shared.config.media.is_none() {
                    return self.reply(Out::Error(
                        proto::Error::new(
                            proto::NO_MEDIA,
                            "this meeting server hands out no media grants",
                        )
                        .answering(proto::ANSWERS_MEDIA_GRANT),
                    ));
                }
                if let Err(wait) = self.media_grants.allow(std::time::Instant::now()) {
                    tracing::info!("media grant refused: rate limit");
                    return self.reply(Out::Error(
                        proto::Error::new(
                            proto::RATE_LIMITED,
                            format!(
                                "at most {} new media grants a minute; ask again in {} s",
                                proto::MEDIA_GRANTS_PER_MINUTE,
                                wait.as_secs().max(1)
                            ),
                        )
                        .answering(proto::ANSWERS_MEDIA_GRANT),
                    ));
                }
                match self.media_grant(true, None).await {
                    Some((_, grant)) => {
                        tracing::info!(url = %grant.url, "new media grant");
                        self.reply(Out::MediaGrant(grant))
                    }
                    None => self.reply(Out::Error(
                        proto::Error::new(
                            proto::NO_MEDIA,
                            "no media server can take this meeting right now; try again shortly",
                        )
                        .answering(proto::ANSWERS_MEDIA_GRANT),
                    )),
                }
            }
            In::Admission(admission) => {
                if !self.host {
                    return self.reply(Out::Error(proto::Error::new(
                        "not_host",
                        "only the meeting's host lets people in",
                    )));
                }
                let decided = ParticipantId::parse(&admission.participant_id)
                    .is_ok_and(|visitor| shared.rooms.decide(meeting, visitor, admission.admit));
                if decided {
                    tracing::info!(visitor = %admission.participant_id, admit = admission.admit,
                        "the host decided on a visitor");
                    None
                } else {
                    self.reply(Out::Error(proto::Error::new(
                        "unknown_visitor",
                        "nobody by that id is waiting (they left, or another window of yours decided)",
                    )))
                }
            }
            In::Leave(_) => Some(Close::new(
                proto::CLOSE_NORMAL,
                "left the meeting",
                Departure::Leave(LeaveReason::Voluntary),
            )),
        }
    }

    /// The participant's departure: it leaves the room and (unless the stores already
    /// know) the meeting, the others are told, and the last one out ends the meeting.
    async fn depart(&mut self, ending: &Close) {
        if !self.joined {
            return;
        }
        // The leave updates the participant's row: it waits for the row. A write that
        // failed has undone the join itself.
        let recorded = match self.row.take() {
            Some(row) => matches!(row.await, Ok(Ok(()))),
            None => true,
        };
        let shared = &self.shared;
        let (meeting, me) = (self.meeting, self.participant);
        let was_here = shared.rooms.remove(meeting, me);
        let reason = match ending.departure {
            // Its row was closed with the meeting's, unless it was written after the end
            // closed the others': the leave closes it (nothing else ever would).
            Departure::Ended => {
                if recorded
                    && let Err(error) = shared
                        .repo
                        .leave(meeting, me, LeaveReason::MeetingEnded)
                        .await
                {
                    tracing::warn!(%error, "the leave at the meeting's end was not recorded");
                }
                return;
            }
            // Removed elsewhere (the presence job, an expired session): that removal
            // closes its row, unless the row was not yet committed then. The row's
            // half of a leave is written here too: it closes a row the removal missed
            // and leaves a closed one as it is (Redis is the removal's to change).
            Departure::Gone => {
                let reason = LeaveReason::ConnectionLost;
                if recorded && let Err(error) = shared.repo.record_leave(meeting, me, reason).await
                {
                    tracing::warn!(%error, "the leave was not recorded");
                }
                reason
            }
            Departure::Moved if !recorded => LeaveReason::ConnectionLost,
            Departure::Moved => {
                let reason = LeaveReason::ConnectionLost;
                if let Err(error) = shared.repo.leave(meeting, me, reason).await {
                    tracing::warn!(%error, "the leave was not recorded");
                }
                reason
            }
            Departure::Leave(reason) if !recorded => reason,
            Departure::Leave(reason) => {
                match shared.repo.leave(meeting, me, reason).await {
                    // A lost connection (a reload, a closed tab, the network) is not a
                    // decision to leave: the meeting stays for the presence timeout, so
                    // that the participant can join again, and ends then if nobody did.
                    Ok(0) if reason == LeaveReason::ConnectionLost => {
                        tracing::info!(
                            "the last participant's connection was lost; the meeting waits for them to join again"
                        );
                        let mark = shared.rooms.emptied(meeting);
                        tokio::spawn(
                            end_if_still_empty(shared.clone(), meeting, mark).in_current_span(),
                        );
                    }
                    Ok(0) => {
                        if let Err(error) = shared.repo.end_meeting(meeting).await {
                            tracing::warn!(%error, "the emptied meeting could not be ended");
                        } else {
                            tracing::info!("the last participant left; meeting ended");
                            shared.rooms.close_lobby(meeting, Decision::Emptied);
                            if reason == LeaveReason::Voluntary {
                                let _ = self.out.try_send(ServerMessage::new(Out::MeetingEnded(
                                    MeetingEnded {
                                        reason: LEFT_LAST_MESSAGE.to_owned(),
                                        code: proto::LEFT_LAST.to_owned(),
                                    },
                                )));
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "the leave was not recorded"),
                }
                reason
            }
        };
        if was_here {
            let left = ServerMessage::new(Out::ParticipantLeft(ParticipantLeft {
                participant_id: me.to_string(),
                reason: reason.as_str().to_owned(),
            }));
            shared.rooms.broadcast(meeting, None, &left);
        }
        tracing::info!(reason = reason.as_str(), "participant left");
    }
}

/// Ends `meeting`, emptied by a lost connection, when nobody has joined it again within
/// the presence timeout (as the presence job ends a meeting whose last participant
/// stopped sending heartbeats). Only the newest emptying (`mark`, [`Rooms::emptied`])
/// ends it: one of a participant who joined again and lost the connection again waits
/// its own full time. A stopping controller leaves it to the participants to join again
/// elsewhere, and to the vacated-meetings rule.
async fn end_if_still_empty(shared: Arc<Shared>, meeting: MeetingId, mark: u64) {
    tokio::select! {
        () = shared.stop.cancelled() => return,
        () = tokio::time::sleep(shared.config.presence_timeout) => {}
    }
    if !shared.rooms.still_emptied(meeting, mark) || shared.rooms.hosts(meeting) {
        return;
    }
    match shared.repo.participants(meeting).await {
        Ok(present) if present.is_empty() => {}
        Ok(_) => return,
        Err(error) => {
            tracing::warn!(%meeting, %error, "could not read whether the emptied meeting was joined again");
            return;
        }
    }
    match shared.repo.end_meeting(meeting).await {
        Ok(_) => {
            tracing::info!(%meeting, "nobody joined the emptied meeting again; meeting ended");
            shared.rooms.close_lobby(meeting, Decision::Emptied);
        }
        Err(error) => tracing::warn!(%meeting, %error, "the emptied meeting could not be ended"),
    }
}

/// [`media_address`] of media handler `id` while it still serves its meetings:
/// registered, alive and taking sessions (a handler that stopped reports `draining`;
/// one that died stops heartbeating); `None` once it does not. One read of its
/// registration, which also gives the address of a handler in another process. A
/// registry that cannot be read keeps it (logged), at its directory address.
async fn serving_address(
    shared: &Shared,
    media: &super::MediaHandlers,
    id: &crate::domain::HandlerId,
) -> Option<super::MediaHandlerAddress> {
    match shared.repo.live_media_handler(id, &media.liveness).await {
        Ok(Some(handler)) if handler.health.keeps_its_work() => Some(
            media
                .directory
                .address(id)
                .unwrap_or(super::MediaHandlerAddress {
                    handler_id: handler.handler_id,
                    endpoint: handler.endpoint,
                    certificate_hash: handler.certificate_hash,
                }),
        ),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(handler = %id, %error, "could not read a media handler's registration; kept");
            media.directory.address(id)
        }
    }
}

/// Where media handler `id` is reached: its address in the directory (an in-process
/// handler announces its own), else its registration (a handler in another process
/// registers its endpoint and its certificate hash).
async fn media_address(
    shared: &Shared,
    media: &super::MediaHandlers,
    id: &crate::domain::HandlerId,
) -> Option<super::MediaHandlerAddress> {
    if let Some(address) = media.directory.address(id) {
        return Some(address);
    }
    match shared.repo.media_handler(id).await {
        Ok(registered) => Some(super::MediaHandlerAddress {
            handler_id: registered.handler_id,
            endpoint: registered.endpoint,
            certificate_hash: registered.certificate_hash,
        }),
        Err(error) => {
            tracing::warn!(handler = %id, %error, "could not read a media handler's registration");
            None
        }
    }
}

fn refusal(error: MeetingsError) -> Refusal {
    match error {
        MeetingsError::MeetingEnded(_) => Refusal::new("meeting_ended", error.user_message()),
        MeetingsError::MeetingFull { .. } => Refusal::new("meeting_full", error.user_message()),
        MeetingsError::TokenRevoked => Refusal::new("invalid_token", error.to_string()),
        MeetingsError::Storage(StorageError::Conflict { .. }) => {
            Refusal::new("already_joined", "this participant has already joined")
        }
        MeetingsError::Storage(StorageError::NotFound { .. }) => {
            Refusal::new("unknown_meeting", "there is no such meeting")
        }
        other => Refusal::internal("join failed", &other),
    }
}

/// The refusal of a visitor the host turned away.
fn denied() -> Refusal {
    Refusal::new(proto::ADMISSION_DENIED, "the host did not let you in")
}

fn internal() -> Out {
    Out::Error(proto::Error::new(
        "internal",
        "the meeting controller could not complete this; try again",
    ))
}

fn invalid_stream(message: &str) -> Out {
    Out::Error(proto::Error::new("invalid_stream", message))
}

fn unknown_stream(message: &str) -> Out {
    Out::Error(proto::Error::new("unknown_stream", message))
}

/// Every `sweep_every`, each hosted meeting is checked until the controller stops.
pub(super) async fn sweeps(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(shared.config.sweep_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            _ = every.tick() => {}
        }
        // Who is connected, read before the stores: anybody here joined before the
        // reads below, so absence there means removal, not a join still under way.
        let mut hosted: Vec<_> = shared
            .rooms
            .meetings()
            .into_iter()
            .map(|meeting| (meeting, shared.rooms.members(meeting)))
            .filter(|(_, connected)| !connected.is_empty())
            .collect();
        // Meetings only visitors wait for are checked too: one that ended or moved
        // turns them away.
        let now = shared.repo.now();
        for meeting in shared
            .rooms
            .lobby_meetings(now, shared.config.waiting_limit)
        {
            if !hosted.iter().any(|(m, _)| *m == meeting) {
                hosted.push((meeting, Vec::new()));
            }
        }
        sweep(&shared, hosted).await;
        // A meeting's media handler is forgotten once nobody is connected to it here
        // (and its assignment is older than a join may take to complete), or once it no
        // longer serves: the meeting's next join is assigned another.
        let serving = serving_handlers(&shared).await;
        let mut assigned = shared.media_assigned.lock().await;
        let hosted = shared.rooms.meetings();
        let recent = shared.config.join_timeout;
        assigned.retain(|meeting, (handler, at)| {
            (hosted.contains(meeting) || at.elapsed() < recent)
                && serving
                    .as_ref()
                    .is_none_or(|serving| serving.contains(handler))
        });
    }
}

/// The media handlers of the controller's region that serve (alive and taking
/// sessions), read when some meeting here has one assigned; `None` when there is
/// nothing to check or the registry cannot be read (logged: every assignment is kept).
async fn serving_handlers(shared: &Shared) -> Option<HashSet<crate::domain::HandlerId>> {
    let media = shared.config.media.as_ref()?;
    if shared.media_assigned.lock().await.is_empty() {
        return None;
    }
    match shared
        .repo
        .handler_loads(&shared.config.region, &media.liveness)
        .await
    {
        Ok(loads) => Some(
            loads
                .into_iter()
                .filter(|load| load.health.keeps_its_work())
                .map(|load| load.handler_id)
                .collect(),
        ),
        Err(error) => {
            tracing::warn!(%error, "could not read the media handlers' registrations; assignments kept");
            None
        }
    }
}

/// One sweep of the hosted meetings, each with the participants connected to it here:
/// a meeting ended elsewhere, or moved to another controller, has its sessions closed,
/// and so has each participant no longer in its meeting's Redis set (removed by the
/// presence job), and each guest of a meeting that requires sign-in now (the host
/// changed `require_auth` since they joined: they leave `kicked`). Three round trips in
/// all, however many meetings this controller hosts (a fourth when somebody is missing:
/// their meetings are read again, so that one that ended meanwhile ends here).
async fn sweep(shared: &Shared, hosted: Vec<(MeetingId, Vec<(ParticipantId, Closer)>)>) {
    if hosted.is_empty() {
        return;
    }
    let ids: Vec<MeetingId> = hosted.iter().map(|(meeting, _)| *meeting).collect();
    let statuses = match shared.repo.meeting_statuses(&ids).await {
        Ok(statuses) => statuses,
        Err(error) => {
            tracing::warn!(%error, meetings = ids.len(), "sweep could not read the meetings");
            return;
        }
    };
    let mut open = Vec::with_capacity(hosted.len());
    for (meeting, connected) in hosted {
        match statuses.get(&meeting) {
            Some(hosted) if hosted.status == MeetingStatus::Ended => {
                tracing::info!(%meeting, "meeting ended elsewhere; closing its sessions");
                shared.rooms.end(meeting);
            }
            // Live events reach only the sessions of one controller: a meeting the
            // registry gave to another (this one's heartbeats stopped for a while) is
            // left here, so that everybody meets again there.
            Some(HostedStatus {
                controller: Some(assigned),
                ..
            }) if *assigned != shared.config.controller_id => {
                tracing::info!(%meeting, controller = %assigned,
                    "meeting moved to another controller; closing its sessions here");
                shared.rooms.moved(meeting);
            }
            Some(hosted) => {
                if hosted.require_auth {
                    let guests = shared.rooms.remove_guests(meeting);
                    if guests > 0 {
                        tracing::info!(%meeting, guests, "the meeting requires sign-in now; its guests closed");
                    }
                }
                open.push((meeting, connected));
            }
            None => tracing::warn!(%meeting, "sweep found no row for a hosted meeting"),
        }
    }
    let ids: Vec<MeetingId> = open.iter().map(|(meeting, _)| *meeting).collect();
    let present = match shared.repo.present_participants(&ids).await {
        Ok(present) => present,
        Err(error) => {
            tracing::warn!(%error, meetings = ids.len(), "sweep could not read the participants");
            return;
        }
    };
    let mut removed: Vec<(MeetingId, Vec<(ParticipantId, Closer)>)> = Vec::new();
    for (meeting, connected) in open {
        let gone = removed_elsewhere(connected, &shared.rooms.ids(meeting), present.get(&meeting));
        if !gone.is_empty() {
            removed.push((meeting, gone));
        }
    }
    if removed.is_empty() {
        return;
    }
    // A meeting that ended between the two reads has its participants' sessions gone
    // too: it ends here, rather than telling everybody they left one by one.
    let ids: Vec<MeetingId> = removed.iter().map(|(meeting, _)| *meeting).collect();
    let statuses = shared
        .repo
        .meeting_statuses(&ids)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "sweep could not read the meetings again");
            HashMap::new()
        });
    for (meeting, gone) in removed {
        if statuses
            .get(&meeting)
            .is_some_and(|hosted| hosted.status == MeetingStatus::Ended)
        {
            tracing::info!(%meeting, "meeting ended elsewhere; closing its sessions");
            shared.rooms.end(meeting);
            continue;
        }
        for (participant, closer) in gone {
            tracing::info!(%meeting, %participant, "participant removed elsewhere; closing its session");
            closer.close(Close::new(
                proto::CLOSE_BY_CONTROLLER,
                "removed from the meeting (no heartbeat)",
                Departure::Gone,
            ));
        }
    }
}

/// Of the participants `connected` to a meeting here when the sweep began, those
/// removed from it elsewhere: still connected here now (`still_here`, read after the
/// stores) but not in its Redis set (`present`). One that left on its own meanwhile is
/// not among them: its session takes it out of the room before its leave reaches Redis.
fn removed_elsewhere<C>(
    connected: Vec<(ParticipantId, C)>,
    still_here: &HashSet<ParticipantId>,
    present: Option<&HashSet<ParticipantId>>,
) -> Vec<(ParticipantId, C)> {
    connected
        .into_iter()
        .filter(|(participant, _)| {
            still_here.contains(participant) && !present.is_some_and(|p| p.contains(participant))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_only_those_still_here_and_gone_from_the_meeting() {
        let [stays, removed, left, both] = [(); 4].map(|()| ParticipantId::random());
        let connected = vec![(stays, 'a'), (removed, 'b'), (left, 'c'), (both, 'd')];
        // `left` left on its own while the stores were read: out of the room first, then
        // out of Redis. `both` is gone from both too. Only `removed` was taken out of
        // the meeting by somebody else.
        let still_here = HashSet::from([stays, removed]);
        let present = HashSet::from([stays]);
        assert_eq!(
            removed_elsewhere(connected.clone(), &still_here, Some(&present)),
            vec![(removed, 'b')]
        );
        // A meeting whose set is gone entirely: everybody still here was removed.
        assert_eq!(
            removed_elsewhere(connected, &still_here, None),
            vec![(stays, 'a'), (removed, 'b')]
        );
    }

    fn member(capacity: usize) -> (Member, mpsc::Receiver<ServerMessage>) {
        let (out, rx) = mpsc::channel(capacity);
        let member = Member {
            seq: 0,
            out,
            closer: Closer::default(),
            info: ParticipantInfo::default(),
            host: false,
        };
        (member, rx)
    }

    fn response() -> JoinResponse {
        JoinResponse::default()
    }

    #[test]
    fn a_member_that_cannot_keep_up_is_closed_and_the_others_are_served() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let (slow, fast) = (ParticipantId::random(), ParticipantId::random());
        let (slow_member, _slow_rx) = member(2);
        let slow_closer = slow_member.closer.clone();
        rooms.enter(meeting, slow, slow_member, response(), &[]);
        let (fast_member, mut fast_rx) = member(2);
        let fast_closer = fast_member.closer.clone();
        rooms.enter(meeting, fast, fast_member, response(), &[]);
        // The slow one's queue: its JoinResponse and the fast one's ParticipantJoined.
        assert!(!slow_closer.token.is_cancelled());

        let ack = ServerMessage::new(Out::HeartbeatAck(proto::HeartbeatAck {}));
        for _ in 0..3 {
            rooms.broadcast(meeting, None, &ack);
            while fast_rx.try_recv().is_ok() {}
        }
        assert!(slow_closer.token.is_cancelled(), "never waited for");
        let why = slow_closer.why.get().unwrap();
        assert!(why.reason.starts_with("too_slow"), "{why:?}");
        assert!(!fast_closer.token.is_cancelled());
        assert_eq!(rooms.load(), (1, 2));
        assert!(rooms.remove(meeting, slow) && rooms.remove(meeting, fast));
        assert_eq!(rooms.load(), (0, 0));
    }

    /// A reload at 0 s, a join again at 3 s and another reload at 29 s: the wait begun
    /// at 0 s gives way to the one begun at 29 s, which alone may end the meeting.
    #[test]
    fn only_the_newest_emptying_of_a_meeting_may_end_it() {
        let rooms = Rooms::default();
        let (meeting, other) = (MeetingId::random(), MeetingId::random());
        let first = rooms.emptied(meeting);
        let elsewhere = rooms.emptied(other);
        let again = ParticipantId::random();
        rooms.enter(meeting, again, member(4).0, response(), &[]);
        assert!(rooms.remove(meeting, again));
        let newest = rooms.emptied(meeting);

        assert!(
            !rooms.still_emptied(meeting, first),
            "the first wait ended it"
        );
        assert!(rooms.still_emptied(meeting, newest));
        assert!(!rooms.still_emptied(meeting, newest), "ended twice");
        assert!(
            rooms.still_emptied(other, elsewhere),
            "another meeting's join counted"
        );

        // Nobody left again after joining: no wait may end it.
        let before = rooms.emptied(meeting);
        rooms.enter(meeting, again, member(4).0, response(), &[]);
        assert!(!rooms.still_emptied(meeting, before));
    }

    fn guest(n: u8) -> Visitor {
        Visitor::Guest(TokenHash::parse(&format!("{n:02x}").repeat(32)).unwrap())
    }

    fn waiter(who: &Visitor, since: DateTime<Utc>) -> (Waiter, oneshot::Receiver<Decision>) {
        let (decide, decided) = oneshot::channel();
        let waiter = Waiter {
            participant: ParticipantId::random(),
            who: who.clone(),
            display_name: "Vera".to_owned(),
            since,
            earlier: Vec::new(),
            decide,
        };
        (waiter, decided)
    }

    const LIMIT: Duration = Duration::from_secs(30 * 60);

    #[test]
    fn a_decision_on_a_visitor_is_its_new_connections_whichever_comes_first() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let now = Utc::now();

        // The host decides while the first connection is listed (it may have been
        // lost); the visitor's new connection gets the decision instead of waiting.
        let vera = guest(1);
        let (first, mut heard) = waiter(&vera, now);
        let first_id = first.participant;
        assert_eq!(rooms.wait(meeting, first, now, LIMIT), Placed::Last);
        assert!(rooms.decide(meeting, first_id, true));
        assert_eq!(heard.try_recv(), Ok(Decision::Admitted));
        let (again, _) = waiter(&vera, now);
        assert_eq!(
            rooms.wait(meeting, again, now, LIMIT),
            Placed::Decided { admitted: true }
        );
        // Taken once: a later connection waits.
        let (later, _) = waiter(&vera, now);
        assert_eq!(rooms.wait(meeting, later, now, LIMIT), Placed::Last);

        // The new connection takes the place first; the host's decision names the
        // earlier one (the list it saw) and is the new one's.
        let dan = guest(2);
        let (first, mut replaced) = waiter(&dan, now);
        let first_id = first.participant;
        assert_eq!(rooms.wait(meeting, first, now, LIMIT), Placed::Last);
        let (again, mut heard) = waiter(&dan, now);
        assert_eq!(
            rooms.wait(meeting, again, now, LIMIT),
            Placed::Kept { since: now }
        );
        assert_eq!(replaced.try_recv(), Ok(Decision::Replaced));
        assert!(rooms.decide(meeting, first_id, false));
        assert_eq!(heard.try_recv(), Ok(Decision::Denied));
        let (third, _) = waiter(&dan, now);
        assert_eq!(
            rooms.wait(meeting, third, now, LIMIT),
            Placed::Decided { admitted: false }
        );
    }

    #[test]
    fn a_decision_is_kept_no_longer_than_the_visitors_waiting_limit() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let began = Utc::now();
        let vera = guest(3);
        let (first, _) = waiter(&vera, began);
        let first_id = first.participant;
        assert_eq!(rooms.wait(meeting, first, began, LIMIT), Placed::Last);
        assert!(rooms.decide(meeting, first_id, false));
        let later = began + chrono::Duration::minutes(30);
        let (again, _) = waiter(&vera, later);
        assert_eq!(rooms.wait(meeting, again, later, LIMIT), Placed::Last);
        // The sweep forgets them too.
        let other = guest(4);
        let (first, _) = waiter(&other, began);
        let first_id = first.participant;
        assert_eq!(rooms.wait(meeting, first, began, LIMIT), Placed::Last);
        assert!(rooms.decide(meeting, first_id, true));
        assert_eq!(rooms.lobby_meetings(began, LIMIT), vec![meeting]);
        assert!(rooms.holds(meeting, &other), "kept within the limit");
        assert_eq!(rooms.lobby_meetings(later, LIMIT), vec![meeting]);
        assert!(!rooms.holds(meeting, &other));
        assert!(rooms.holds(meeting, &vera), "still waiting");
    }

    #[test]
    fn a_joiner_is_listed_to_nobody_twice_and_told_to_everybody_else() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let (first, second) = (ParticipantId::random(), ParticipantId::random());
        let (mut a, mut a_rx) = member(8);
        a.info.participant_id = first.to_string();
        rooms.enter(meeting, first, a, response(), &[]);
        let (mut b, mut b_rx) = member(8);
        b.info.participant_id = second.to_string();
        rooms.enter(meeting, second, b, response(), &[]);

        let listed = |m: ServerMessage| match m.payload {
            Some(Out::JoinResponse(r)) => r.participants,
            other => panic!("{other:?}"),
        };
        assert!(listed(a_rx.try_recv().unwrap()).is_empty());
        let seen = listed(b_rx.try_recv().unwrap());
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].participant_id, first.to_string());
        match a_rx.try_recv().unwrap().payload {
            Some(Out::ParticipantJoined(j)) => {
                assert_eq!(j.participant.unwrap().participant_id, second.to_string());
            }
            other => panic!("{other:?}"),
        }
        assert!(b_rx.try_recv().is_err(), "not told of itself");
    }
}
