//! One participant's media session (admission, control stream, published frames), the
//! meetings a handler serves in memory (who is connected, what each publishes, each
//! subscriber's queue and dropped tracks), and the forwarding between them.
//!
//! A frame is read whole from its stream, prefixed once with its publisher's id and
//! shared (one allocation) by every subscriber's queue. Queues are filled with
//! `try_send`: a full one never makes a publisher wait; the frame is dropped for that
//! subscriber, and so is the rest of that (publisher, track) until its next key frame.
//! The publisher is asked for one when the subscriber falls behind, not again while its
//! queue is still full at the key frames that follow; after [`STALLED_KEY_FRAMES`] of
//! those it is moved to a lower layer or closed. Every key frame request to a publisher
//! passes one limit per (track, layer) ([`Member::ask_keyframe`]).
//!
//! Simulcast: a video frame's `layer` is recorded per (publisher, track) in the room
//! (the layers it sends), and each participant receives one layer of it, the one it
//! chose with `SetLayer` or else the highest sent ([`Choice`]); it changes layer only at
//! a key frame of the new one (asked for when the choice changes). A relay receives
//! every layer, each dropped separately when it falls behind (its drop keys are
//! [`lane`]s).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wtransport::endpoint::{IncomingSession, SessionRequest};
use wtransport::{Connection, RecvStream, SendStream, VarInt};

use super::Shared;
use super::bookkeeping::{Book, Subscriptions, track_stream_id};
use super::forwarded::{self, Forwarded};
use super::proto::{
    self, FrameHeader, KeyframeRequest, MediaServerMessage, media_client_message::Payload as In,
    media_server_message::Payload as Out,
};
use crate::domain::{ConnectionType, MeetingId, ParticipantId};
use crate::repo::{ConnectionGrant, MediaAdmission};

/// Control messages queued for one session before more are dropped (keyframe requests
/// are idempotent, so losing one when many are waiting loses nothing).
const CONTROL_QUEUE: usize = 32;
/// Control messages decoded ahead of the session's handling.
const INBOUND_QUEUE: usize = 16;
/// Bytes read from a frame's stream at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Layer choices a subscriber may hold for publishers not (yet) seen in its meeting on
/// this handler (a publisher behind a relay is seen at its first relayed frame); more
/// `SetLayer`s naming such publishers are ignored.
const UNSEEN_CHOICES: usize = 16;
/// Key frames of one (publisher, video track) a subscriber may find its queue still
/// full at, in a row, before it is dealt with (once it has also been behind for
/// [`super::HandlerConfig::stalled_after`]): moved to a lower layer of that publisher
/// when one is sent, else closed. Until then it waits for the publisher's own key
/// frames, asking for none. A client of the server's own (the recorder) is never dealt
/// with so: it keeps its layer and its session, and waits for the next key frame it
/// has room for (the publisher asked once, within `keyframe_request_every`).
pub(super) const STALLED_KEY_FRAMES: u8 = 3;

/// Why, and how, a session closes.
#[derive(Debug, Clone)]
pub(super) struct Close {
    pub(super) code: u32,
    pub(super) reason: String,
}

impl Close {
    pub(super) fn new(code: u32, reason: impl Into<String>) -> Close {
        Close {
            code,
            reason: reason.into(),
        }
    }

    pub(super) fn shutdown() -> Close {
        Close::new(
            proto::CLOSE_BY_HANDLER,
            "the media handler is shutting down",
        )
    }

    pub(super) fn protocol(code: &str, message: impl std::fmt::Display) -> Close {
        Close::new(proto::CLOSE_PROTOCOL_ERROR, format!("{code}: {message}"))
    }
}

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

/// Which layer of one (publisher, video track) a participant receives.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Choice {
    /// The highest layer it wants (`SetLayer`); `None`: the highest sent.
    max: Option<u8>,
    /// The layer it receives now; `None` before the first frame.
    current: Option<u8>,
    /// A key frame of the layer it waits to switch to has been asked for.
    asked: bool,
}

/// The layer chosen among those set in `sent` (bit `l`: layer `l` is sent): the highest
/// at most `max` (the highest of all without one), else the lowest sent; `None` when
/// nothing was sent yet.
fn pick(sent: u8, max: Option<u8>) -> Option<u8> {
    if sent == 0 {
        return None;
    }
    let limit = max.unwrap_or(proto::MAX_LAYER).min(proto::MAX_LAYER);
    let below = sent & (u8::MAX >> (proto::MAX_LAYER - limit));
    let bit = if below == 0 {
        sent.trailing_zeros()
    } else {
        u8::BITS - 1 - below.leading_zeros()
    };
    u8::try_from(bit).ok()
}

/// The drop key of (track, layer) for a relay, which receives every layer: the track in
/// the low two bits, the layer above (layer 0's lane is the track itself).
fn lane(track: u8, layer: u8) -> u8 {
    track | (layer << 2)
}

/// The (publisher, track)s (or a relay's lanes) a subscriber skips until their next key
/// frame.
type Dropping = Mutex<HashMap<(ParticipantId, u8), Behind>>;

/// Why a subscriber skips a (publisher, track) until its next key frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Behind {
    /// The key frames of it it found its queue still full at since, in a row.
    missed: u8,
    /// When it started skipping it.
    since: Instant,
}

impl Behind {
    fn new() -> Behind {
        Behind {
            missed: 0,
            since: Instant::now(),
        }
    }
}

/// A key frame request: a track, and its layer (`None`: every layer).
type Ask = (u8, Option<u8>);

/// The key frame requests put to one publisher: at most one per (track, layer) per
/// interval; one asked for sooner is held back until the interval has passed (and
/// dropped when a key frame of it comes first).
#[derive(Debug, Default)]
struct Asks {
    /// When each request was last put to the publisher.
    sent: HashMap<Ask, Instant>,
    /// Requests held back.
    held: HashSet<Ask>,
}

impl Asks {
    /// Whether `ask` may be put to the publisher at `now` (not within `every` of the
    /// last one for it, nor of the last one for every layer of its track).
    fn may_send(&self, ask: Ask, now: Instant, every: Duration) -> bool {
        let recent = |key: Ask| {
            self.sent
                .get(&key)
                .is_some_and(|at| now.saturating_duration_since(*at) < every)
        };
        !recent((ask.0, None)) && (ask.1.is_none() || !recent(ask))
    }
}

/// A participant connected to the handler: a subscriber of everybody else and a
/// publisher of its own tracks.
pub(super) struct Member {
    /// Frames for this subscriber (its writer task drains them).
    frames: mpsc::Sender<Forwarded>,
    /// Control messages for this participant (keyframe requests).
    control: mpsc::Sender<MediaServerMessage>,
    /// The (publisher, track)s this subscriber skips until their next key frame.
    dropping: Dropping,
    /// The key frame requests put to it as a publisher.
    asks: Mutex<Asks>,
    /// The shortest time between two of them for the same (track, layer).
    ask_every: Duration,
    /// How long it may stay behind before it is dealt with ([`STALLED_KEY_FRAMES`]).
    stalled_after: Duration,
    /// Closes its session.
    closer: Closer,
    /// A participant of the meeting (admitted by a `media` token, not a client of the
    /// server's own): its session is closed once it is no longer in the meeting
    /// ([`watch_presence`]), and it is moved down a layer or closed when it stays
    /// behind ([`Member::stalled`]); the server's own clients never are.
    in_meeting: bool,
    /// Bit `t` set: it has published track `t`.
    published: AtomicU8,
    /// The streams it receives, as recorded in `participant:{id}:subscriptions`.
    subscriptions: Arc<Subscriptions>,
    /// The layer it receives of each (publisher, video track).
    layers: Mutex<HashMap<(ParticipantId, u8), Choice>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Member {
    /// A member whose frames and control messages go to `frames` and `control`, asked
    /// for a key frame at most every `ask_every` per (track, layer), dealt with once
    /// behind for `stalled_after` ([`STALLED_KEY_FRAMES`]), closed by `closer`.
    fn new(
        frames: mpsc::Sender<Forwarded>,
        control: mpsc::Sender<MediaServerMessage>,
        (ask_every, stalled_after): (Duration, Duration),
        closer: Closer,
    ) -> Member {
        Member {
            frames,
            control,
            dropping: Mutex::default(),
            asks: Mutex::default(),
            ask_every,
            stalled_after,
            closer,
            in_meeting: false,
            published: AtomicU8::new(0),
            subscriptions: Arc::default(),
            layers: Mutex::default(),
        }
    }

    fn dropping(&self) -> MutexGuard<'_, HashMap<(ParticipantId, u8), Behind>> {
        lock(&self.dropping)
    }

    /// Asks this participant (a publisher) for a key frame on `track` (on `layer` only,
    /// or on every layer), unless it was asked the same within `ask_every`: then the
    /// request is held back until then ([`Member::send_held`]).
    fn ask_keyframe(&self, track: u8, layer: Option<u8>) {
        self.ask_keyframe_at(track, layer, Instant::now());
    }

    fn ask_keyframe_at(&self, track: u8, layer: Option<u8>, now: Instant) {
        {
            let mut asks = lock(&self.asks);
            if !asks.may_send((track, layer), now, self.ask_every) {
                asks.held.insert((track, layer));
                return;
            }
            asks.sent.insert((track, layer), now);
        }
        self.put_ask(track, layer);
    }

    fn put_ask(&self, track: u8, layer: Option<u8>) {
        let ask = MediaServerMessage::new(Out::KeyframeRequest(KeyframeRequest {
            track: u32::from(track),
            publisher_participant_id: String::new(),
            layer: layer.map(u32::from),
        }));
        // A full queue already holds requests: this one is not needed.
        let _ = self.control.try_send(ask);
    }

    /// This publisher sent a frame of `track` on `layer` (`sent`: the layers it sends,
    /// 0 for audio): a key frame answers the requests held back for it; the held
    /// requests whose interval has passed are put to it.
    fn published_frame(&self, track: u8, layer: u8, is_key: bool, sent: u8) {
        self.published_frame_at(track, layer, is_key, sent, Instant::now());
    }

    fn published_frame_at(&self, track: u8, layer: u8, is_key: bool, sent: u8, now: Instant) {
        let due: Vec<Ask> = {
            let mut asks = lock(&self.asks);
            if asks.held.is_empty() {
                return;
            }
            if is_key {
                asks.held.remove(&(track, Some(layer)));
                if sent & !(1 << layer) == 0 {
                    asks.held.remove(&(track, None));
                }
            }
            let due: Vec<Ask> = asks
                .held
                .iter()
                .copied()
                .filter(|ask| asks.may_send(*ask, now, self.ask_every))
                .collect();
            for ask in &due {
                asks.held.remove(ask);
                asks.sent.insert(*ask, now);
            }
            due
        };
        for (track, layer) in due {
            self.put_ask(track, layer);
        }
    }

    /// This subscriber found its queue still full at key frames of `key`, `layer`, too
    /// many in a row: it moves to the next lower layer of it sent (`sent`: the layers
    /// sent), else its session is closed. `true` when it was closed.
    fn stalled(&self, key: (ParticipantId, u8), layer: u8, sent: u8) -> bool {
        let lower = sent & ((1u8 << layer) - 1);
        if lower != 0 {
            let to = u8::try_from(u8::BITS - 1 - lower.leading_zeros()).unwrap_or(0);
            let mut layers = lock(&self.layers);
            let choice = layers.entry(key).or_default();
            choice.max = Some(to);
            choice.asked = false;
            drop(layers);
            // It waits for the lower layer's key frame, counting afresh.
            self.dropping().insert(key, Behind::new());
            return false;
        }
        self.closer.close(Close::new(
            proto::CLOSE_BY_HANDLER,
            format!(
                "behind: its queue was still full at {STALLED_KEY_FRAMES} key frames in a row \
                 of the lowest layer of a publisher's video"
            ),
        ));
        true
    }

    fn tracks(&self) -> impl Iterator<Item = u8> {
        tracks_of(self.published.load(Ordering::Relaxed))
    }

    /// The layer of (publisher, track) this subscriber receives, else the one it waits
    /// for (`sent`: the layers sent); `None` before any.
    fn layer_of(&self, key: (ParticipantId, u8), sent: u8) -> Option<u8> {
        let choice = lock(&self.layers).get(&key).copied().unwrap_or_default();
        choice.current.or_else(|| pick(sent, choice.max))
    }

    /// Whether this subscriber takes a video frame of `key` on `layer` (`sent`: the
    /// layers sent, this one included): the layer it receives, or the key frame of the
    /// one it switches to. The first frame of the layer it wants that it cannot take yet
    /// sets `ask` to that layer (a key frame of it is to be asked for).
    fn takes(
        &self,
        key: (ParticipantId, u8),
        layer: u8,
        is_key: bool,
        sent: u8,
        ask: &mut Option<u8>,
    ) -> bool {
        let mut layers = lock(&self.layers);
        let choice = layers.entry(key).or_default();
        if choice.current == Some(layer) {
            return true;
        }
        if pick(sent, choice.max) != Some(layer) {
            return false;
        }
        // The first frame, or the key frame of the new layer: take it from here on (a
        // participant joining late still waits for its key frame, see `dropping`).
        if choice.current.is_none() || is_key {
            choice.current = Some(layer);
            choice.asked = false;
            return true;
        }
        if !choice.asked {
            choice.asked = true;
            *ask = Some(layer);
        }
        false
    }
}

/// The tracks whose bits are set in `published`.
fn tracks_of(published: u8) -> impl Iterator<Item = u8> {
    (0..=proto::MAX_TRACK).filter(move |t| published & (1 << t) != 0)
}

/// A relay of one meeting to another media handler ([`super::relay`]): a subscriber of
/// the frames of this handler's participants, and the source of the frames the other
/// handler's participants publish.
pub(super) struct Relay {
    /// The other handler (for logs).
    pub(super) peer: String,
    /// Frames of this handler's publishers for the other handler.
    frames: mpsc::Sender<Forwarded>,
    /// Key frame requests for the other handler's publishers (the oldest kept when full:
    /// one already waiting asks the same).
    control: mpsc::Sender<RelayControl>,
    /// The departures of publishers here, never dropped (one per publisher that
    /// leaves), told before any key frame request waiting.
    departures: mpsc::UnboundedSender<ParticipantId>,
    /// The lanes it skips until their next key frame.
    dropping: Dropping,
    /// The publishers seen through it, with the bits of the tracks they published.
    remote: Mutex<HashMap<ParticipantId, u8>>,
}

impl Relay {
    /// A relay to `peer` queueing at most `queue` frames, with the receivers of its
    /// frames and of what it tells the other handler.
    pub(super) fn new(
        peer: String,
        queue: usize,
    ) -> (Arc<Relay>, mpsc::Receiver<Forwarded>, RelayOutbox) {
        let (frames, frames_rx) = mpsc::channel(queue.max(1));
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (departures, departures_rx) = mpsc::unbounded_channel();
        let relay = Arc::new(Relay {
            peer,
            frames,
            control,
            departures,
            dropping: Mutex::default(),
            remote: Mutex::new(HashMap::new()),
        });
        let outbox = RelayOutbox {
            control: control_rx,
            departures: departures_rx,
        };
        (relay, frames_rx, outbox)
    }

    /// Asks the other handler for a key frame of `publisher` on `track` (on every layer).
    fn ask_keyframe(&self, publisher: ParticipantId, track: u8) {
        // A full queue already holds requests: this one is not needed.
        let _ = self
            .control
            .try_send(RelayControl::Keyframe(publisher, track));
    }

    /// Tells the other handler that `publisher`, connected here, left.
    fn publisher_left(&self, publisher: ParticipantId) {
        // Refused only once the relay's writer is gone: nobody to tell.
        let _ = self.departures.send(publisher);
    }

    fn knows(&self, publisher: ParticipantId) -> bool {
        lock(&self.remote).contains_key(&publisher)
    }
}

/// What one end of a relay has to tell the other: departures first, then key frame
/// requests.
pub(super) struct RelayOutbox {
    control: mpsc::Receiver<RelayControl>,
    departures: mpsc::UnboundedReceiver<ParticipantId>,
}

impl RelayOutbox {
    /// The next thing to tell; `None` once the relay is gone and all is told.
    pub(super) async fn recv(&mut self) -> Option<RelayControl> {
        tokio::select! {
            biased;
            Some(left) = self.departures.recv() => Some(RelayControl::Left(left)),
            Some(ask) = self.control.recv() => Some(ask),
            else => None,
        }
    }
}

/// What one end of a relay tells the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RelayControl {
    /// A key frame of (publisher, track), a publisher of the other handler.
    Keyframe(ParticipantId, u8),
    /// A publisher of this handler left.
    Left(ParticipantId),
}

/// One meeting on this handler: its connected participants and its relays to the other
/// handlers serving it.
#[derive(Default)]
struct Room {
    members: HashMap<ParticipantId, Arc<Member>>,
    relays: Vec<Arc<Relay>>,
    /// The layers each (publisher, video track) sends, here or behind a relay: bit `l`
    /// set once a frame of layer `l` was seen.
    layers: Mutex<HashMap<(ParticipantId, u8), u8>>,
}

impl Room {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.relays.is_empty()
    }

    /// The layers (publisher, track) sends, as bits.
    fn sent(&self, key: (ParticipantId, u8)) -> u8 {
        lock(&self.layers).get(&key).copied().unwrap_or(0)
    }

    /// Forgets the layers of `publisher`, gone, and every choice of them.
    fn forget(&self, publisher: ParticipantId) {
        lock(&self.layers).retain(|(p, _), _| *p != publisher);
        for member in self.members.values() {
            lock(&member.layers).retain(|(p, _), _| *p != publisher);
        }
    }
}

/// The meetings a handler serves, with their connected participants.
#[derive(Default)]
pub(crate) struct Rooms {
    inner: RwLock<HashMap<MeetingId, Room>>,
    /// Where streams and subscriptions are recorded ([`super::bookkeeping`]); `None`:
    /// nowhere.
    books: Option<mpsc::Sender<Book>>,
}

/// What one forwarded frame did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Forwarding {
    /// Subscribers (relays included) it was queued for.
    queued: usize,
    /// Subscribers that skipped it (behind, or waiting for a key frame).
    skipped: usize,
}

/// What offering a frame to one subscriber's queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offered {
    Queued,
    /// Skipped: it waits for a key frame.
    Skipped,
    /// Its queue was full: it now waits for a key frame (the publisher is asked for one).
    FellBehind,
    /// Its queue was still full at the key frame it waited for: it waits for the next
    /// one (asking for none).
    StillBehind(Behind),
    /// The subscriber is gone.
    Gone,
}

/// Offers `frame` of `key` to one subscriber's queue.
fn offer(
    dropping: &Dropping,
    frames: &mpsc::Sender<Forwarded>,
    key: (ParticipantId, u8),
    is_key: bool,
    frame: &Forwarded,
) -> Offered {
    let waiting = {
        let dropping = lock(dropping);
        match dropping.get(&key) {
            Some(_) if !is_key => return Offered::Skipped,
            missed => missed.copied(),
        }
    };
    match frames.try_send(frame.clone()) {
        Ok(()) => {
            if waiting.is_some() {
                lock(dropping).remove(&key);
            }
            Offered::Queued
        }
        Err(TrySendError::Full(_)) => match waiting {
            Some(behind) => {
                let behind = Behind {
                    missed: behind.missed.saturating_add(1),
                    ..behind
                };
                lock(dropping).insert(key, behind);
                Offered::StillBehind(behind)
            }
            None => {
                lock(dropping).insert(key, Behind::new());
                Offered::FellBehind
            }
        },
        Err(TrySendError::Closed(_)) => Offered::Gone,
    }
}

impl Rooms {
    /// Rooms recording streams and subscriptions through `books`.
    pub(super) fn with_books(books: mpsc::Sender<Book>) -> Rooms {
        Rooms {
            inner: RwLock::default(),
            books: Some(books),
        }
    }

    /// Queues `book`; `false` when it could not be (the queue is full or closed).
    fn book(&self, book: Book) -> bool {
        match &self.books {
            Some(books) => books.try_send(book).is_ok(),
            None => true,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<MeetingId, Room>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<MeetingId, Room>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connected participants and the tracks they publish, over all meetings (the
    /// publishers of other handlers, seen through relays, are theirs to count).
    pub(crate) fn load(&self) -> (usize, usize) {
        let rooms = self.read();
        let participants = rooms.values().map(|r| r.members.len()).sum();
        let streams = rooms
            .values()
            .flat_map(|r| r.members.values())
            .map(|m| m.tracks().count())
            .sum();
        (participants, streams)
    }

    /// The participants connected here that are in their meeting (not the server's
    /// own clients), by meeting.
    fn in_meeting(&self) -> HashMap<MeetingId, Vec<(ParticipantId, Arc<Member>)>> {
        self.read()
            .iter()
            .filter_map(|(meeting, room)| {
                let members: Vec<_> = room
                    .members
                    .iter()
                    .filter(|(_, m)| m.in_meeting)
                    .map(|(id, m)| (*id, m.clone()))
                    .collect();
                (!members.is_empty()).then_some((*meeting, members))
            })
            .collect()
    }

    /// Relays to other handlers, over all meetings.
    pub(crate) fn relays(&self) -> usize {
        self.read().values().map(|r| r.relays.len()).sum()
    }

    /// The meetings with participants connected here.
    pub(super) fn local_meetings(&self) -> Vec<MeetingId> {
        self.read()
            .iter()
            .filter(|(_, room)| !room.members.is_empty())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Adds a participant: every publisher already there (here or behind a relay) is
    /// asked for a key frame on each track it publishes, and the newcomer's video from
    /// it starts at that key frame.
    fn enter(&self, meeting: MeetingId, participant: ParticipantId, member: Arc<Member>) {
        let mut rooms = self.write();
        let room = rooms.entry(meeting).or_default();
        {
            let mut dropping = member.dropping();
            for (id, publisher) in room.members.iter().filter(|(id, _)| **id != participant) {
                for track in publisher.tracks() {
                    if track != proto::TRACK_AUDIO {
                        dropping.insert((*id, track), Behind::new());
                    }
                    publisher.ask_keyframe(track, None);
                }
            }
            for relay in &room.relays {
                for (id, published) in lock(&relay.remote).iter() {
                    for track in tracks_of(*published) {
                        if track != proto::TRACK_AUDIO {
                            dropping.insert((*id, track), Behind::new());
                        }
                        relay.ask_keyframe(*id, track);
                    }
                }
            }
        }
        if let Some(old) = room.members.insert(participant, member.clone()) {
            // The same participant's earlier session: the new one takes over what it
            // published and its subscriptions (the streams stay live, counted as they
            // were), and it is closed.
            member
                .published
                .fetch_or(old.published.load(Ordering::Relaxed), Ordering::Relaxed);
            member.subscriptions.inherit(&old.subscriptions);
            old.closer.close(Close::new(
                proto::CLOSE_BY_HANDLER,
                "replaced: a newer media session of the same participant opened",
            ));
        }
    }

    /// Removes a participant's `member` (not a later session of the same participant
    /// that took its place).
    fn remove(&self, meeting: MeetingId, participant: ParticipantId, member: &Arc<Member>) {
        let mut rooms = self.write();
        if let Some(room) = rooms.get_mut(&meeting) {
            if room
                .members
                .get(&participant)
                .is_some_and(|m| Arc::ptr_eq(m, member))
            {
                room.members.remove(&participant);
                room.forget(participant);
                if member.tracks().next().is_some() {
                    for relay in &room.relays {
                        relay.publisher_left(participant);
                    }
                }
                if self.books.is_some() {
                    for stream in member.subscriptions.take_all() {
                        self.book(Book::Unsubscribe {
                            subscriber: participant,
                            stream,
                        });
                    }
                    for track in member.tracks() {
                        let stream = track_stream_id(participant, track);
                        for (id, other) in &room.members {
                            if other.subscriptions.take(stream) {
                                self.book(Book::Unsubscribe {
                                    subscriber: *id,
                                    stream,
                                });
                            }
                        }
                        self.book(Book::Ended {
                            publisher: participant,
                            track,
                        });
                    }
                }
            }
            if room.is_empty() {
                rooms.remove(&meeting);
            }
        }
    }

    /// Adds a relay of `meeting`: like a participant joining late, every publisher here
    /// is asked for a key frame, and the relay's video of it starts at that key frame.
    pub(super) fn attach_relay(&self, meeting: MeetingId, relay: Arc<Relay>) {
        let mut rooms = self.write();
        let room = rooms.entry(meeting).or_default();
        {
            let mut dropping = lock(&relay.dropping);
            for (id, publisher) in &room.members {
                for track in publisher.tracks() {
                    if track != proto::TRACK_AUDIO {
                        let sent = room.sent((*id, track)).max(1);
                        for layer in (0..=proto::MAX_LAYER).filter(|l| sent & (1 << l) != 0) {
                            dropping.insert((*id, lane(track, layer)), Behind::new());
                        }
                    }
                    publisher.ask_keyframe(track, None);
                }
            }
        }
        room.relays.push(relay);
    }

    /// Removes a relay of `meeting`.
    pub(super) fn detach_relay(&self, meeting: MeetingId, relay: &Arc<Relay>) {
        let mut rooms = self.write();
        if let Some(room) = rooms.get_mut(&meeting) {
            room.relays.retain(|r| !Arc::ptr_eq(r, relay));
            for publisher in lock(&relay.remote).keys() {
                room.forget(*publisher);
            }
            // Its publishers are out of reach: nobody here receives them any more.
            if self.books.is_some() {
                for (publisher, published) in lock(&relay.remote).iter() {
                    for track in tracks_of(*published) {
                        let stream = track_stream_id(*publisher, track);
                        for (id, member) in &room.members {
                            if member.subscriptions.take(stream) {
                                self.book(Book::Unsubscribe {
                                    subscriber: *id,
                                    stream,
                                });
                            }
                        }
                    }
                }
            }
            if room.is_empty() {
                rooms.remove(&meeting);
            }
        }
    }

    /// `publisher`, connected to the other end of `via`, left: nobody here is subscribed
    /// to its streams any more.
    pub(super) fn relayed_publisher_left(
        &self,
        meeting: MeetingId,
        via: &Relay,
        publisher: ParticipantId,
    ) {
        let Some(published) = lock(&via.remote).remove(&publisher) else {
            return;
        };
        let rooms = self.read();
        let Some(room) = rooms.get(&meeting) else {
            return;
        };
        room.forget(publisher);
        for (id, member) in &room.members {
            let mut dropping = member.dropping();
            for track in tracks_of(published) {
                dropping.remove(&(publisher, track));
                let stream = track_stream_id(publisher, track);
                if self.books.is_some() && member.subscriptions.take(stream) {
                    self.book(Book::Unsubscribe {
                        subscriber: *id,
                        stream,
                    });
                }
            }
        }
    }

    /// Queues `frame` (the publisher's id and bytes) of a participant connected here for
    /// every other participant of `meeting` and every relay of it; a subscriber whose
    /// queue is full drops this (publisher, track) until its next key frame, and the
    /// publisher is asked for one.
    fn forward(
        &self,
        meeting: MeetingId,
        publisher: ParticipantId,
        header: &FrameHeader,
        frame: &Forwarded,
    ) -> Forwarding {
        self.deliver(meeting, publisher, header, frame, None)
    }

    /// Queues `frame`, published on another handler and relayed in through `via`, for
    /// the participants of `meeting` connected here, never for a relay (so a frame
    /// crosses at most one relay and never loops). A frame naming a participant
    /// connected here is refused (`None`): a relay does not speak for them.
    pub(super) fn forward_relayed(
        &self,
        meeting: MeetingId,
        via: &Relay,
        publisher: ParticipantId,
        header: &FrameHeader,
        frame: &Forwarded,
    ) -> Option<usize> {
        if self
            .read()
            .get(&meeting)
            .is_some_and(|room| room.members.contains_key(&publisher))
        {
            return None;
        }
        *lock(&via.remote).entry(publisher).or_insert(0) |= 1 << header.track;
        Some(
            self.deliver(meeting, publisher, header, frame, Some(via))
                .queued,
        )
    }

    fn deliver(
        &self,
        meeting: MeetingId,
        publisher: ParticipantId,
        header: &FrameHeader,
        frame: &Forwarded,
        via: Option<&Relay>,
    ) -> Forwarding {
        let rooms = self.read();
        let Some(room) = rooms.get(&meeting) else {
            return Forwarding::default();
        };
        let source = match via {
            Some(_) => None,
            None => room.members.get(&publisher),
        };
        if let Some(source) = source {
            let before = source
                .published
                .fetch_or(1 << header.track, Ordering::Relaxed);
            if before & (1 << header.track) == 0 {
                self.book(Book::Published {
                    meeting,
                    publisher,
                    track: header.track,
                });
            }
        }
        let key = (publisher, header.track);
        let video = header.track != proto::TRACK_AUDIO;
        let sent = if video {
            let mut layers = lock(&room.layers);
            let sent = layers.entry(key).or_insert(0);
            *sent |= 1 << header.layer;
            *sent
        } else {
            0
        };
        if let Some(source) = source {
            source.published_frame(header.track, header.layer, header.is_key(), sent);
        }
        let stream = self
            .books
            .as_ref()
            .map(|_| track_stream_id(publisher, header.track));
        let mut done = Forwarding::default();
        let mut behind = false;
        // Layers a subscriber waits to switch to (bits): their key frames are asked for.
        let mut switching = 0u8;
        let mut tally = |offered: Offered| match offered {
            Offered::Queued => done.queued += 1,
            Offered::FellBehind => {
                behind = true;
                done.skipped += 1;
            }
            Offered::Skipped | Offered::StillBehind(_) => done.skipped += 1,
            Offered::Gone => {}
        };
        for (id, member) in &room.members {
            if *id == publisher {
                continue;
            }
            if video {
                let mut ask = None;
                let takes = member.takes(key, header.layer, header.is_key(), sent, &mut ask);
                if let Some(layer) = ask {
                    switching |= 1 << layer;
                }
                if !takes {
                    continue;
                }
            }
            let offered = offer(
                &member.dropping,
                &member.frames,
                key,
                header.is_key(),
                frame,
            );
            if video
                && member.in_meeting
                && let Offered::StillBehind(behind) = offered
                && behind.missed >= STALLED_KEY_FRAMES
                && behind.since.elapsed() >= member.stalled_after
                && member.stalled(key, header.layer, sent)
            {
                tracing::info!(subscriber = %id, %publisher, track = header.track,
                    "a subscriber that stayed behind is closed");
            }
            if offered == Offered::Queued
                && let Some(stream) = stream
                && member.subscriptions.should_subscribe(stream)
            {
                let book = Book::Subscribe {
                    subscriber: *id,
                    stream,
                    of: member.subscriptions.clone(),
                };
                if !self.book(book) {
                    member.subscriptions.failed(stream);
                }
            }
            tally(offered);
        }
        if via.is_none() {
            let lane = (publisher, lane(header.track, header.layer));
            for relay in &room.relays {
                tally(offer(
                    &relay.dropping,
                    &relay.frames,
                    lane,
                    header.is_key(),
                    frame,
                ));
            }
        }
        if behind {
            switching |= 1 << header.layer;
        }
        if switching != 0 {
            match (source, via) {
                (Some(source), _) => {
                    for layer in (0..=proto::MAX_LAYER).filter(|l| switching & (1 << l) != 0) {
                        source.ask_keyframe(header.track, Some(layer));
                    }
                }
                (None, Some(via)) => via.ask_keyframe(publisher, header.track),
                (None, None) => {}
            }
        }
        done
    }

    /// `subscriber` (its `member`) of `meeting` chooses the layers of `publisher`'s
    /// `track` it receives: at most `max`, or (`None`) the highest sent. When that is
    /// not the layer it receives now, the publisher is asked for a key frame of it.
    fn set_layer(
        &self,
        meeting: MeetingId,
        member: &Member,
        publisher: ParticipantId,
        track: u8,
        max: Option<u8>,
    ) {
        let key = (publisher, track);
        let rooms = self.read();
        let Some(room) = rooms.get(&meeting) else {
            return;
        };
        let seen = |p: &ParticipantId| {
            room.members.contains_key(p) || room.relays.iter().any(|r| r.knows(*p))
        };
        let sent = room.sent(key);
        let ask = {
            let mut layers = lock(&member.layers);
            if !seen(&publisher)
                && !layers.contains_key(&key)
                && layers.keys().filter(|(p, _)| !seen(p)).count() >= UNSEEN_CHOICES
            {
                tracing::debug!(%publisher, "SetLayer for a publisher not in the meeting ignored");
                return;
            }
            let choice = layers.entry(key).or_default();
            choice.max = max;
            choice.asked = false;
            match (choice.current, pick(sent, max)) {
                (Some(current), Some(wanted)) if current != wanted => {
                    choice.asked = true;
                    Some(wanted)
                }
                _ => None,
            }
        };
        drop(rooms);
        if let Some(layer) = ask {
            self.request_keyframe_layer(meeting, publisher, track, false, Some(layer));
        }
    }

    /// The layer of (publisher, track) `member` receives or waits for in `meeting`.
    fn layer_for(
        &self,
        meeting: MeetingId,
        member: &Member,
        publisher: ParticipantId,
        track: u8,
    ) -> Option<u8> {
        if track == proto::TRACK_AUDIO {
            return None;
        }
        let rooms = self.read();
        let sent = rooms
            .get(&meeting)
            .map_or(0, |room| room.sent((publisher, track)));
        member.layer_of((publisher, track), sent)
    }

    /// Asks `publisher` of `meeting` for a key frame on `track` (for a subscriber): of
    /// the participant itself when it is connected here, else (unless the request came
    /// through a relay: it never crosses two) through the relay it publishes behind.
    /// `false` when it is nowhere known.
    pub(super) fn request_keyframe(
        &self,
        meeting: MeetingId,
        publisher: ParticipantId,
        track: u8,
        relayed: bool,
    ) -> bool {
        self.request_keyframe_layer(meeting, publisher, track, relayed, None)
    }

    /// [`Rooms::request_keyframe`] on `layer` only (`None`: every layer); across a relay
    /// it is asked on every layer.
    fn request_keyframe_layer(
        &self,
        meeting: MeetingId,
        publisher: ParticipantId,
        track: u8,
        relayed: bool,
        layer: Option<u8>,
    ) -> bool {
        let rooms = self.read();
        let Some(room) = rooms.get(&meeting) else {
            return false;
        };
        if let Some(member) = room.members.get(&publisher) {
            member.ask_keyframe(track, layer);
            return true;
        }
        if relayed {
            return false;
        }
        let mut asked = false;
        for relay in room.relays.iter().filter(|r| r.knows(publisher)) {
            relay.ask_keyframe(publisher, track);
            asked = true;
        }
        asked
    }
}

/// Serves one incoming connection: admission by its connection token, then a media
/// session (`/media/`: a participant's `media` token, or a `recorder` token of the
/// server's own clients) or another handler's relay (`/relay/`).
pub(super) async fn serve(shared: Arc<Shared>, incoming: IncomingSession) {
    let routes: [(&str, &[ConnectionType]); 2] = [
        (
            "/media/",
            &[ConnectionType::Media, ConnectionType::Recorder],
        ),
        ("/relay/", &[ConnectionType::Relay]),
    ];
    let Some((request, grant, peer, route, ())) = crate::wt::admit_routes(
        &shared.repo,
        &shared.stop,
        incoming,
        shared.config.open_timeout,
        &routes,
        |_| (),
    )
    .await
    else {
        return;
    };
    if route == 1 {
        let span = tracing::info_span!("media_relay_in", meeting = %grant.meeting_id, %peer);
        super::relay::accept(shared, request, grant, peer)
            .instrument(span)
            .await;
        return;
    }
    let (meeting, participant) = (grant.meeting_id, grant.participant_id);
    let in_meeting = match shared.repo.media_admission(&grant).await {
        Ok(MediaAdmission::Participant) => true,
        Ok(MediaAdmission::Service) => false,
        Ok(MediaAdmission::Absent) => {
            tracing::info!(%peer, %meeting, %participant,
                "media token of a participant not in the meeting refused");
            request.forbidden().await;
            return;
        }
        Err(error) => {
            tracing::warn!(%peer, %meeting, %error,
                "could not read whether a media token's participant is in the meeting");
            request.too_many_requests().await;
            return;
        }
    };
    let span = tracing::info_span!("media_session", %meeting, %participant, %peer);
    run_session(shared, request, grant, in_meeting)
        .instrument(span)
        .await;
}

/// Closes the media sessions of the participants who are no longer in their meeting
/// (they left, or were dropped for want of a heartbeat), every `presence_every`: one
/// read of every served meeting's participants for all of them. Sessions of the
/// server's own clients (admitted by a `recorder` token) are in no meeting and not
/// looked at.
pub(super) async fn watch_presence(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(shared.config.presence_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let watched = shared.rooms.in_meeting();
        if watched.is_empty() {
            continue;
        }
        let meetings: Vec<MeetingId> = watched.keys().copied().collect();
        let present = match shared.repo.present_participants(&meetings).await {
            Ok(present) => present,
            Err(error) => {
                tracing::warn!(%error, "could not read who is still in the meetings served");
                continue;
            }
        };
        for (meeting, members) in watched {
            let here = present.get(&meeting);
            for (participant, member) in members {
                if here.is_some_and(|p| p.contains(&participant)) {
                    continue;
                }
                tracing::info!(%meeting, %participant,
                    "media session of a participant no longer in the meeting closed");
                member.closer.close(Close::new(
                    proto::CLOSE_BY_HANDLER,
                    "left: the participant is no longer in the meeting",
                ));
            }
        }
    }
}

async fn run_session(
    shared: Arc<Shared>,
    request: SessionRequest,
    grant: ConnectionGrant,
    in_meeting: bool,
) {
    let (meeting, me) = (grant.meeting_id, grant.participant_id);
    let (conn, send, recv) =
        match crate::wt::open(request, &shared.stop, shared.config.open_timeout).await {
            Ok(opened) => opened,
            Err(crate::wt::NotOpened::Lost) => return,
            Err(crate::wt::NotOpened::Stopping(conn)) => {
                close(&conn, &Close::shutdown());
                return;
            }
            Err(crate::wt::NotOpened::TimedOut(conn)) => {
                close(
                    &conn,
                    &Close::protocol("open_timeout", "no control stream within the timeout"),
                );
                return;
            }
        };

    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (frames, frames_rx) = mpsc::channel(shared.config.subscriber_queue.max(1));
    let control_writer = tokio::spawn(write_control(send, control_rx));
    let media_writer = tokio::spawn(forwarded::write_media(
        shared.clone(),
        conn.clone(),
        frames_rx,
    ));
    let (inbound_tx, mut inbound) = mpsc::channel(INBOUND_QUEUE);
    let reader = tokio::spawn(
        crate::wt::read_frames(recv, inbound_tx, proto::decode_client).in_current_span(),
    );
    let closer = Closer::default();
    // Bytes of the frames being read and not yet whole.
    let unfinished = Arc::new(AtomicUsize::new(0));
    let mut member = Member::new(
        frames,
        control,
        (
            shared.config.keyframe_request_every,
            shared.config.stalled_after,
        ),
        closer.clone(),
    );
    member.in_meeting = in_meeting;
    let member = Arc::new(member);
    shared.rooms.enter(meeting, me, member.clone());
    shared.relay_wake.notify_one();
    tracing::info!("media session open");

    let mut incoming = JoinSet::new();
    let ending = loop {
        tokio::select! {
            biased;
            () = closer.token.cancelled() => {
                break closer.why.get().cloned().unwrap_or_else(Close::shutdown);
            }
            () = shared.stop.cancelled() => break Close::shutdown(),
            Some(_) = incoming.join_next(), if !incoming.is_empty() => {}
            message = inbound.recv() => match message {
                None => break Close::new(proto::CLOSE_NORMAL, "the control stream closed"),
                Some(Err(error)) => break Close::protocol(error.code(), &error),
                Some(Ok(In::PublisherLeft(_))) => break Close::protocol(
                    "invalid_message",
                    "PublisherLeft is said by relays only",
                ),
                Some(Ok(In::RequestKeyframe(ask))) => {
                    let publisher = ParticipantId::parse(&ask.publisher_participant_id);
                    let track = u8::try_from(ask.track).ok().filter(|t| *t <= proto::MAX_TRACK);
                    match (publisher, track) {
                        (Ok(publisher), Some(track)) => {
                            let layer = shared.rooms.layer_for(meeting, &member, publisher, track);
                            if !shared.rooms.request_keyframe_layer(
                                meeting, publisher, track, false, layer,
                            ) {
                                tracing::debug!(%publisher, "keyframe asked of a publisher not here");
                            }
                        }
                        _ => break Close::protocol(
                            "invalid_message",
                            "RequestKeyframe needs a participant id and a track of 0 to 2",
                        ),
                    }
                }
                Some(Ok(In::SetLayer(choose))) => {
                    let publisher = ParticipantId::parse(&choose.publisher_participant_id);
                    let track = u8::try_from(choose.track)
                        .ok()
                        .filter(|t| *t != proto::TRACK_AUDIO && *t <= proto::MAX_TRACK);
                    let max = u8::try_from(choose.max_layer)
                        .ok()
                        .filter(|l| *l <= proto::MAX_LAYER);
                    match (publisher, track, max) {
                        (Ok(publisher), Some(track), Some(max)) => {
                            let max = (!choose.highest).then_some(max);
                            shared.rooms.set_layer(meeting, &member, publisher, track, max);
                        }
                        _ => break Close::protocol(
                            "invalid_message",
                            format!(
                                "SetLayer needs a participant id, a video track (1 or 2) and a \
                                 max_layer of 0 to {}",
                                proto::MAX_LAYER
                            ),
                        ),
                    }
                }
            },
            stream = conn.accept_uni() => match stream {
                Ok(stream) => {
                    let (shared, closer) = (shared.clone(), closer.clone());
                    let unfinished = unfinished.clone();
                    incoming.spawn(
                        publish(shared, meeting, me, stream, closer, unfinished)
                            .in_current_span(),
                    );
                }
                Err(_) => break Close::new(proto::CLOSE_NORMAL, "the connection closed"),
            },
        }
    };
    shared.rooms.remove(meeting, me, &member);
    shared.relay_wake.notify_one();
    drop(member);
    reader.abort();
    incoming.abort_all();
    media_writer.abort();
    control_writer.abort();
    tracing::info!(code = ending.code, reason = %ending.reason, "media session closed");
    close(&conn, &ending);
}

pub(super) fn close(conn: &Connection, why: &Close) {
    conn.close(VarInt::from_u32(why.code), why.reason.as_bytes());
}

/// Bytes a frame being read holds in its session's count of unfinished bytes, given
/// back when it is dropped.
struct Held<'a> {
    total: &'a AtomicUsize,
    mine: usize,
}

impl Held<'_> {
    /// Counts `n` more bytes; the session's total after.
    fn add(&mut self, n: usize) -> usize {
        self.mine += n;
        self.total.fetch_add(n, Ordering::Relaxed) + n
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.mine, Ordering::Relaxed);
    }
}

/// Reads one published frame from its stream and forwards it. A bad or oversized
/// frame closes the session, and so do more than `max_unfinished_bytes` held in its
/// frames not yet whole (`unfinished`); a frame not whole within `frame_timeout` is
/// dropped (its stream stopped).
async fn publish(
    shared: Arc<Shared>,
    meeting: MeetingId,
    publisher: ParticipantId,
    mut stream: RecvStream,
    closer: Closer,
    unfinished: Arc<AtomicUsize>,
) {
    let read = tokio::time::timeout(
        shared.config.frame_timeout,
        read_frame(
            &mut stream,
            &closer,
            &unfinished,
            shared.config.max_unfinished_bytes,
        ),
    )
    .await;
    let frame = match read {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
        Err(_) => {
            tracing::debug!("a frame not whole in time is dropped");
            stream.stop(VarInt::from_u32(proto::CLOSE_PROTOCOL_ERROR));
            return;
        }
    };
    let header = match FrameHeader::parse(frame.get(proto::FORWARD_PREFIX..).unwrap_or_default()) {
        Ok(header) => header,
        Err(error) => {
            closer.close(Close::protocol("invalid_frame", error));
            return;
        }
    };
    shared.meter.count(frame.len() - proto::FORWARD_PREFIX);
    let frame = forwarded::seal(publisher, frame);
    let done = shared.rooms.forward(meeting, publisher, &header, &frame);
    if done.skipped > 0 {
        tracing::trace!(
            track = header.track,
            skipped = done.skipped,
            "frame skipped for subscribers behind"
        );
    }
}

/// The bytes of a frame's stream behind [`proto::FORWARD_PREFIX`] zero bytes, counted
/// in `unfinished` until whole; `None` (the session closed when the frame or the
/// session's unfinished bytes are too large) when there is nothing to forward.
async fn read_frame(
    stream: &mut RecvStream,
    closer: &Closer,
    unfinished: &AtomicUsize,
    max_unfinished: usize,
) -> Option<Vec<u8>> {
    let limit = proto::FORWARD_PREFIX + proto::MAX_MEDIA_FRAME;
    let mut held = Held {
        total: unfinished,
        mine: 0,
    };
    let mut frame = Vec::with_capacity(proto::FORWARD_PREFIX + READ_CHUNK);
    frame.resize(proto::FORWARD_PREFIX, 0);
    loop {
        let start = frame.len();
        frame.resize(start + READ_CHUNK, 0);
        let read = stream
            .read(frame.get_mut(start..).unwrap_or_default())
            .await;
        match read {
            Ok(Some(n)) => frame.truncate(start + n),
            Ok(None) => {
                frame.truncate(start);
                return Some(frame);
            }
            // A stream the publisher reset, or a lost connection: nothing to forward.
            Err(_) => return None,
        }
        if frame.len() > limit {
            closer.close(Close::protocol(
                "frame_too_large",
                proto::MediaFrameError::TooLarge,
            ));
            return None;
        }
        if held.add(frame.len() - start) > max_unfinished {
            closer.close(Close::protocol(
                "too_much_unfinished",
                format!("more than {max_unfinished} bytes in frames not yet whole"),
            ));
            return None;
        }
    }
}

/// Writes queued control messages as frames until the queue closes or the stream fails.
async fn write_control(mut send: SendStream, mut outgoing: mpsc::Receiver<MediaServerMessage>) {
    while let Some(message) = outgoing.recv().await {
        let frame = match proto::encode_server(&message) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(%error, "an outgoing control message could not be framed; skipped");
                continue;
            }
        };
        if send.write_all(&frame).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Made = (
        Arc<Member>,
        mpsc::Receiver<Forwarded>,
        mpsc::Receiver<MediaServerMessage>,
    );

    /// A participant of the meeting whose queue holds `queue` frames.
    fn member(queue: usize) -> Made {
        member_of(queue, true)
    }

    /// A client of the server's own (the recorder) whose queue holds `queue` frames.
    fn server_client(queue: usize) -> Made {
        member_of(queue, false)
    }

    fn member_of(queue: usize, in_meeting: bool) -> Made {
        let (frames, frames_rx) = mpsc::channel(queue);
        let (control, control_rx) = mpsc::channel(8);
        let mut member = Member::new(
            frames,
            control,
            (Duration::ZERO, Duration::ZERO),
            Closer::default(),
        );
        member.in_meeting = in_meeting;
        (Arc::new(member), frames_rx, control_rx)
    }

    fn header(track: u8, key: bool) -> FrameHeader {
        FrameHeader {
            track,
            flags: if key { proto::FLAG_KEY } else { 0 },
            layer: 0,
            timestamp: 0,
            seq: 0,
        }
    }

    #[test]
    fn a_full_queue_drops_that_track_until_the_next_key_frame_and_asks_for_one() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let (p, slow, fast) = (
            ParticipantId::random(),
            ParticipantId::random(),
            ParticipantId::random(),
        );
        let (pm, _p_frames, mut p_control) = member(8);
        let (sm, mut s_frames, _s_control) = member(1);
        let (fm, mut f_frames, _f_control) = member(8);
        rooms.enter(meeting, p, pm);
        rooms.enter(meeting, slow, sm);
        rooms.enter(meeting, fast, fm);
        let frame = Arc::new(vec![1u8; 20]);

        let first = rooms.forward(meeting, p, &header(1, true), &frame);
        assert_eq!(
            first,
            Forwarding {
                queued: 2,
                skipped: 0
            }
        );
        let second = rooms.forward(meeting, p, &header(1, false), &frame);
        assert_eq!(
            second,
            Forwarding {
                queued: 1,
                skipped: 1
            }
        );
        match p_control.try_recv().unwrap().payload {
            Some(Out::KeyframeRequest(k)) => assert_eq!(k.track, 1),
            other => panic!("{other:?}"),
        }
        // The slow one reads its queue again: a delta frame is still skipped, audio
        // is not, and the next key frame resumes the video.
        assert!(s_frames.try_recv().is_ok());
        let third = rooms.forward(meeting, p, &header(1, false), &frame);
        assert_eq!(
            third,
            Forwarding {
                queued: 1,
                skipped: 1
            }
        );
        let audio = rooms.forward(meeting, p, &header(0, false), &frame);
        assert_eq!(
            audio,
            Forwarding {
                queued: 2,
                skipped: 0
            }
        );
        assert!(s_frames.try_recv().is_ok());
        let key = rooms.forward(meeting, p, &header(1, true), &frame);
        assert_eq!(
            key,
            Forwarding {
                queued: 2,
                skipped: 0
            }
        );
        let mut fast_got = 0;
        while f_frames.try_recv().is_ok() {
            fast_got += 1;
        }
        assert_eq!(fast_got, 5, "the fast one got every frame");
        assert_eq!(rooms.load(), (3, 2));
    }

    fn asks(control: &mut mpsc::Receiver<MediaServerMessage>) -> Vec<(u32, Option<u32>)> {
        std::iter::from_fn(|| control.try_recv().ok())
            .filter_map(|m| match m.payload {
                Some(Out::KeyframeRequest(k)) => Some((k.track, k.layer)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_request_held_back_goes_out_once_its_interval_has_passed_unless_a_key_frame_answered_it() {
        let (frames, _frames_rx) = mpsc::channel(8);
        let (control, mut control_rx) = mpsc::channel(8);
        let every = Duration::from_millis(500);
        let p = Member::new(frames, control, (every, every), Closer::default());
        let t0 = Instant::now();
        p.ask_keyframe_at(1, Some(0), t0);
        p.ask_keyframe_at(1, Some(0), t0);
        p.ask_keyframe_at(1, Some(1), t0);
        assert_eq!(asks(&mut control_rx), vec![(1, Some(0)), (1, Some(1))]);
        // Within the interval a frame releases nothing; after it, the held one goes.
        p.published_frame_at(1, 0, false, 0b11, t0 + every / 2);
        assert!(asks(&mut control_rx).is_empty());
        let t1 = t0 + every;
        p.published_frame_at(1, 0, false, 0b11, t1);
        assert_eq!(asks(&mut control_rx), vec![(1, Some(0))]);
        // A key frame of the layer asked for answers the request held back.
        p.ask_keyframe_at(1, Some(0), t1);
        p.published_frame_at(1, 0, true, 0b11, t1);
        p.published_frame_at(1, 0, false, 0b11, t1 + every);
        assert!(asks(&mut control_rx).is_empty());
        // Every layer asked for holds back a request for one layer too.
        p.ask_keyframe_at(2, None, t1);
        p.ask_keyframe_at(2, Some(1), t1);
        assert_eq!(asks(&mut control_rx), vec![(2, None)]);
    }

    #[test]
    fn a_subscriber_stalled_on_a_high_layer_moves_down_before_it_is_closed() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let (p, s) = (ParticipantId::random(), ParticipantId::random());
        let (pm, _p_frames, _p_control) = member(8);
        let (sm, mut s_frames, _s_control) = member(1);
        rooms.enter(meeting, p, pm);
        rooms.enter(meeting, s, sm.clone());
        let layered = |layer: u8, key: bool| FrameHeader {
            layer,
            ..header(1, key)
        };
        let frame = Arc::new(vec![0u8; 20]);
        rooms.forward(meeting, p, &layered(0, true), &frame);
        // Layer 1 is the default once sent; its key frames find the queue full.
        for _ in 0..=STALLED_KEY_FRAMES {
            rooms.forward(meeting, p, &layered(1, true), &frame);
        }
        assert_eq!(lock(&sm.layers)[&(p, 1)].max, Some(0), "moved down");
        assert!(!sm.closer.token.is_cancelled());
        // Layer 0's key frame is taken once there is room; then it stalls there too.
        assert!(s_frames.try_recv().is_ok());
        rooms.forward(meeting, p, &layered(0, true), &frame);
        assert_eq!(sm.layer_of((p, 1), 0b11), Some(0));
        rooms.forward(meeting, p, &layered(0, false), &frame);
        for _ in 0..STALLED_KEY_FRAMES {
            rooms.forward(meeting, p, &layered(0, true), &frame);
        }
        assert!(sm.closer.token.is_cancelled(), "no lower layer: closed");
        let why = sm.closer.why.get().unwrap();
        assert_eq!(why.code, proto::CLOSE_BY_HANDLER);
        assert!(why.reason.starts_with("behind"), "{}", why.reason);
    }

    #[test]
    fn the_servers_own_client_that_stays_behind_keeps_its_layer_and_its_session() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let (p, r) = (ParticipantId::random(), ParticipantId::random());
        let (pm, _p_frames, mut p_control) = member(8);
        let (rm, mut r_frames, _r_control) = server_client(1);
        rooms.enter(meeting, p, pm);
        rooms.enter(meeting, r, rm.clone());
        let layered = |layer: u8, key: bool| FrameHeader {
            layer,
            ..header(1, key)
        };
        let frame = Arc::new(vec![0u8; 20]);
        rooms.forward(meeting, p, &layered(0, true), &frame);
        // Layer 1's key frames find its queue full, many in a row: it stays on layer 1.
        for _ in 0..=3 * STALLED_KEY_FRAMES {
            rooms.forward(meeting, p, &layered(1, true), &frame);
        }
        assert_eq!(lock(&rm.layers).get(&(p, 1)).and_then(|c| c.max), None);
        assert!(!rm.closer.token.is_cancelled());
        // The publisher was asked for a key frame on its behalf once (the request
        // interval is zero here), not at every key frame.
        assert_eq!(asks(&mut p_control), vec![(1, Some(1))]);
        // It reads again: the next key frame of layer 1 is taken, and what follows.
        while r_frames.try_recv().is_ok() {}
        rooms.forward(meeting, p, &layered(1, true), &frame);
        assert_eq!(rm.layer_of((p, 1), 0b11), Some(1));
        assert!(r_frames.try_recv().is_ok());
        // Behind on a publisher that sends one layer only, it is not closed either.
        let single = ParticipantId::random();
        let (sm, _s_frames, _s_control) = member(8);
        rooms.enter(meeting, single, sm);
        rooms.forward(meeting, single, &header(1, true), &frame);
        for _ in 0..=3 * STALLED_KEY_FRAMES {
            rooms.forward(meeting, single, &header(1, true), &frame);
        }
        assert!(!rm.closer.token.is_cancelled());
    }

    #[test]
    fn layer_choices_for_publishers_not_in_the_meeting_are_capped() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let (p, s) = (ParticipantId::random(), ParticipantId::random());
        let (pm, _p_frames, _p_control) = member(8);
        let (sm, _s_frames, _s_control) = member(8);
        rooms.enter(meeting, p, pm);
        rooms.enter(meeting, s, sm.clone());
        for _ in 0..1000 {
            rooms.set_layer(meeting, &sm, ParticipantId::random(), 1, Some(0));
        }
        assert_eq!(lock(&sm.layers).len(), UNSEEN_CHOICES);
        // A publisher in the meeting is still chosen for.
        rooms.set_layer(meeting, &sm, p, 1, Some(0));
        assert_eq!(lock(&sm.layers)[&(p, 1)].max, Some(0));
    }

    #[tokio::test]
    async fn a_relay_full_of_key_frame_requests_still_tells_a_departure_first() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let p = ParticipantId::random();
        let (pm, _p_frames, _p_control) = member(8);
        rooms.enter(meeting, p, pm.clone());
        rooms.forward(meeting, p, &header(1, true), &Arc::new(vec![0u8; 20]));
        let (relay, _r_frames, mut outbox) = Relay::new("peer".to_owned(), 8);
        rooms.attach_relay(meeting, relay.clone());
        for _ in 0..2 * CONTROL_QUEUE {
            relay.ask_keyframe(ParticipantId::random(), 1);
        }
        rooms.remove(meeting, p, &pm);
        assert_eq!(outbox.recv().await, Some(RelayControl::Left(p)));
        // The requests that fitted are still told after it.
        let mut asks = 0;
        while let Ok(told) = outbox.control.try_recv() {
            assert!(matches!(told, RelayControl::Keyframe(_, 1)));
            asks += 1;
        }
        assert_eq!(asks, CONTROL_QUEUE);
    }

    #[test]
    fn the_layer_picked_is_the_highest_sent_up_to_the_choice_else_the_lowest() {
        assert_eq!(pick(0, None), None);
        assert_eq!(pick(0b011, None), Some(1));
        assert_eq!(pick(0b011, Some(0)), Some(0));
        assert_eq!(pick(0b101, Some(1)), Some(0));
        assert_eq!(pick(0b110, Some(0)), Some(1));
        assert_eq!(pick(0b1000_0001, None), Some(7));
        assert_eq!(pick(0b1000_0001, Some(proto::MAX_LAYER)), Some(7));
        assert_eq!(lane(proto::TRACK_CAMERA, 0), proto::TRACK_CAMERA);
        assert_ne!(lane(proto::TRACK_CAMERA, 1), lane(proto::TRACK_SCREEN, 0));
    }

    #[test]
    fn a_subscriber_changes_layer_only_at_a_key_frame_of_the_new_one() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let (p, low, relay_peer) = (
            ParticipantId::random(),
            ParticipantId::random(),
            "peer".to_owned(),
        );
        let (pm, _p_frames, mut p_control) = member(8);
        let (lm, mut l_frames, _l_control) = member(64);
        rooms.enter(meeting, p, pm);
        rooms.enter(meeting, low, lm.clone());
        let (relay, mut r_frames, _r_control) = Relay::new(relay_peer, 64);
        rooms.attach_relay(meeting, relay);
        let layered = |layer: u8, key: bool| FrameHeader {
            layer,
            ..header(1, key)
        };
        let frame = Arc::new(vec![0u8; 20]);
        rooms.set_layer(meeting, &lm, p, 1, Some(0));
        rooms.forward(meeting, p, &layered(0, true), &frame);
        rooms.forward(meeting, p, &layered(1, true), &frame);
        rooms.forward(meeting, p, &layered(1, false), &frame);
        rooms.forward(meeting, p, &layered(0, false), &frame);
        let mut got = 0;
        while l_frames.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 2, "layer 0 only");
        let mut relayed = 0;
        while r_frames.try_recv().is_ok() {
            relayed += 1;
        }
        assert_eq!(relayed, 4, "a relay carries every layer");
        // Up: the publisher is asked for layer 1's key frame; layer 0 goes on until it.
        rooms.set_layer(meeting, &lm, p, 1, None);
        let ask = std::iter::from_fn(|| p_control.try_recv().ok())
            .filter_map(|m| match m.payload {
                Some(Out::KeyframeRequest(k)) => Some(k),
                _ => None,
            })
            .last()
            .unwrap();
        assert_eq!((ask.track, ask.layer), (1, Some(1)));
        let done = rooms.forward(meeting, p, &layered(1, false), &frame);
        assert_eq!(done.queued, 1, "the relay only");
        rooms.forward(meeting, p, &layered(0, false), &frame);
        assert!(l_frames.try_recv().is_ok(), "layer 0 until the key frame");
        rooms.forward(meeting, p, &layered(1, true), &frame);
        rooms.forward(meeting, p, &layered(0, false), &frame);
        let frames: Vec<_> = std::iter::from_fn(|| l_frames.try_recv().ok()).collect();
        assert_eq!(frames.len(), 1, "layer 1 from its key frame on");
    }

    #[test]
    fn a_late_joiner_asks_every_publisher_for_key_frames() {
        let rooms = Rooms::default();
        let meeting = MeetingId::random();
        let (p, late) = (ParticipantId::random(), ParticipantId::random());
        let (pm, _p_frames, mut p_control) = member(8);
        rooms.enter(meeting, p, pm.clone());
        let frame = Arc::new(vec![0u8; 20]);
        rooms.forward(meeting, p, &header(0, false), &frame);
        rooms.forward(meeting, p, &header(1, false), &frame);
        let (lm, mut l_frames, _l_control) = member(8);
        rooms.enter(meeting, late, lm.clone());
        let mut asked = Vec::new();
        while let Ok(m) = p_control.try_recv() {
            if let Some(Out::KeyframeRequest(k)) = m.payload {
                asked.push(k.track);
            }
        }
        assert_eq!(asked, vec![0, 1]);
        rooms.forward(meeting, p, &header(1, false), &frame);
        assert!(l_frames.try_recv().is_err(), "video starts at a key frame");
        rooms.forward(meeting, p, &header(1, true), &frame);
        assert!(l_frames.try_recv().is_ok());
        // A stale session of `late` does not remove the one in its place.
        let (stale, _, _) = member(1);
        rooms.remove(meeting, late, &stale);
        assert_eq!(rooms.load().0, 2);
        rooms.remove(meeting, p, &pm);
        rooms.remove(meeting, late, &lm);
        assert_eq!(rooms.load(), (0, 0));
    }
}
