//! The seed's `stream:{stream_id}` hashes and `participant:{participant_id}:subscriptions`
//! sets, kept by the handler as frames flow.
//!
//! Frames name a (publisher, track), so each published track is one stream whose id is
//! derived from the two ([`track_stream_id`]): every handler finds the same id for a
//! publisher's track without asking anybody, whether the publisher is connected to it
//! or to another handler behind a relay.
//!
//! - The first frame of a track registers its stream ([`crate::Repo::publish_stream`],
//!   `stream_type` from the track, `codec` `Opus` for audio and empty for video: the frame
//!   header does not name the video codec; `max_bitrate` 0).
//! - The first frame queued for a subscriber subscribes it ([`crate::Repo::subscribe`]),
//!   which counts the stream's `subscribers` up. When that fails (the stream is not
//!   registered yet because its publisher's handler has not written it, or the
//!   subscriber has no session) it is tried again with a frame at least
//!   [`RETRY_AFTER`] later.
//! - A subscriber leaving unsubscribes from everything (counted down); a publisher
//!   leaving ends its streams (the seed's hour of TTL after the end) and unsubscribes the
//!   subscribers connected to this handler.
//!
//! Nothing of this is on a frame's path: forwarding queues a [`Book`] (dropped, and
//! tried again later, when the queue is full) for one task that writes them in order.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::proto;
use crate::Repo;
use crate::domain::{MeetingId, ParticipantId, StreamId, StreamType};
use crate::repo::NewStream;

/// Bookkeeping waiting for the writer before more is dropped (and tried again later).
pub(super) const QUEUE: usize = 4096;
/// How long after a failed subscription the next frame tries again.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(2);
/// How long after a subscription found no stream (its publisher's handler has not
/// registered it yet) it is tried again, without waiting for a frame.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(250);
/// Tries of one subscription before it waits for a frame again.
const SUBSCRIBE_TRIES: u8 = 4;

/// The stream id of `publisher`'s `track`: the first 16 bytes of SHA-256 over a fixed
/// label, the publisher's 16 id bytes and the track number, as a version-8 UUID.
pub fn track_stream_id(publisher: ParticipantId, track: u8) -> StreamId {
    let mut input = Vec::with_capacity(48);
    input.extend_from_slice(b"tavern media track stream\0");
    input.extend_from_slice(publisher.as_uuid().as_bytes());
    input.push(track);
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.as_ref().get(..16).unwrap_or(&[0u8; 16]));
    // Version 8 (custom), RFC 9562 variant.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    StreamId::from_uuid(uuid::Uuid::from_bytes(bytes))
}

/// The seed's `stream_type` of a track.
fn stream_type(track: u8) -> StreamType {
    match track {
        proto::TRACK_AUDIO => StreamType::AudioMicrophone,
        proto::TRACK_SCREEN => StreamType::VideoScreen,
        _ => StreamType::VideoCamera,
    }
}

/// Where one subscriber stands with one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Subscription {
    /// Its subscription is queued or written.
    Asked,
    /// The last try failed at this time.
    Failed(Instant),
}

/// One subscriber's subscriptions.
#[derive(Debug, Default)]
pub(super) struct Subscriptions(Mutex<HashMap<StreamId, Subscription>>);

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Subscription>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a frame of `stream` should subscribe now (marking it asked if so).
    pub(super) fn should_subscribe(&self, stream: StreamId) -> bool {
        let mut all = self.lock();
        match all.get(&stream) {
            Some(Subscription::Asked) => false,
            Some(Subscription::Failed(at)) if at.elapsed() < RETRY_AFTER => false,
            _ => {
                all.insert(stream, Subscription::Asked);
                true
            }
        }
    }

    /// The subscription to `stream` failed (or was never sent).
    pub(super) fn failed(&self, stream: StreamId) {
        self.lock()
            .insert(stream, Subscription::Failed(Instant::now()));
    }

    /// Whether `stream` is asked (and not forgotten since).
    fn is_asked(&self, stream: StreamId) -> bool {
        self.lock().get(&stream) == Some(&Subscription::Asked)
    }

    /// Forgets `stream`; whether it was asked (so it may have been counted).
    pub(super) fn take(&self, stream: StreamId) -> bool {
        matches!(self.lock().remove(&stream), Some(Subscription::Asked))
    }

    /// Takes over `old`'s subscriptions (the same participant's earlier media session,
    /// replaced by this one): they are this one's to count down from now on.
    pub(super) fn inherit(&self, old: &Subscriptions) {
        let taken: Vec<_> = old.lock().drain().collect();
        let mut all = self.lock();
        for (stream, state) in taken {
            all.entry(stream).or_insert(state);
        }
    }

    /// Every stream asked for, forgotten.
    pub(super) fn take_all(&self) -> Vec<StreamId> {
        self.lock()
            .drain()
            .filter(|(_, s)| *s == Subscription::Asked)
            .map(|(id, _)| id)
            .collect()
    }
}

/// One write of the bookkeeping.
pub(super) enum Book {
    /// `publisher` of `meeting` sent its first frame of `track`.
    Published {
        meeting: MeetingId,
        publisher: ParticipantId,
        track: u8,
    },
    /// `subscriber` got its first frame of `stream` (`of` is where its state is kept).
    Subscribe {
        subscriber: ParticipantId,
        stream: StreamId,
        of: Arc<Subscriptions>,
    },
    /// `subscriber` no longer receives `stream`.
    Unsubscribe {
        subscriber: ParticipantId,
        stream: StreamId,
    },
    /// `publisher`'s `track` ended (it left).
    Ended { publisher: ParticipantId, track: u8 },
}

/// A subscription to try again at `at`: its `tries` so far.
struct Retry {
    at: Instant,
    tries: u8,
    subscriber: ParticipantId,
    stream: StreamId,
    of: Arc<Subscriptions>,
}

/// Writes the queued bookkeeping, in order, until the queue closes or `done` (then
/// what is queued is still written); subscriptions that found no stream are tried again
/// a few times meanwhile.
pub(super) async fn keep(repo: Repo, mut books: mpsc::Receiver<Book>, done: CancellationToken) {
    let mut retries: VecDeque<Retry> = VecDeque::new();
    loop {
        let next_retry = retries.front().map(|r| r.at);
        let book = tokio::select! {
            biased;
            book = books.recv() => match book {
                Some(book) => book,
                None => return,
            },
            () = done.cancelled() => match books.try_recv() {
                Ok(book) => book,
                Err(_) => return,
            },
            () = sleep_until(next_retry), if next_retry.is_some() => {
                if let Some(retry) = retries.pop_front()
                    && retry.of.is_asked(retry.stream)
                {
                    subscribe(&repo, retry, &mut retries).await;
                }
                continue;
            }
        };
        match book {
            Book::Subscribe {
                subscriber,
                stream,
                of,
            } => {
                let first = Retry {
                    at: Instant::now(),
                    tries: 0,
                    subscriber,
                    stream,
                    of,
                };
                subscribe(&repo, first, &mut retries).await;
            }
            other => write(&repo, other).await,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Subscribes; when the stream is not there (yet), queues another try, up to
/// [`SUBSCRIBE_TRIES`], then leaves it to a later frame.
async fn subscribe(repo: &Repo, mut retry: Retry, retries: &mut VecDeque<Retry>) {
    retry.tries += 1;
    match repo.subscribe(retry.subscriber, retry.stream).await {
        Ok(Some(_)) => {}
        Ok(None) if retry.tries < SUBSCRIBE_TRIES => {
            retry.at = Instant::now() + RESUBSCRIBE_AFTER;
            retries.push_back(retry);
        }
        Ok(None) => retry.of.failed(retry.stream),
        Err(error) => {
            tracing::warn!(subscriber = %retry.subscriber, stream = %retry.stream, %error,
                "could not record a subscription");
            retry.of.failed(retry.stream);
        }
    }
}

async fn write(repo: &Repo, book: Book) {
    match book {
        Book::Published {
            meeting,
            publisher,
            track,
        } => {
            let stream = NewStream {
                stream_id: track_stream_id(publisher, track),
                meeting_id: meeting,
                participant_id: publisher,
                stream_type: stream_type(track),
                codec: if track == proto::TRACK_AUDIO {
                    "Opus".to_owned()
                } else {
                    String::new()
                },
                max_bitrate: 0,
            };
            match repo.publish_stream(&stream).await {
                Ok(true) => {}
                Ok(false) => tracing::debug!(%publisher, track,
                        "a track of a publisher without a session is not registered"),
                Err(error) => tracing::warn!(%publisher, track, %error,
                        "could not register a published track's stream"),
            }
        }
        // Written by `keep` (with its tries).
        Book::Subscribe { .. } => {}
        Book::Unsubscribe { subscriber, stream } => {
            if let Err(error) = repo.unsubscribe(subscriber, stream).await {
                tracing::warn!(%subscriber, %stream, %error, "could not record an unsubscription");
            }
        }
        Book::Ended { publisher, track } => {
            let stream = track_stream_id(publisher, track);
            if let Err(error) = repo.end_stream(stream, publisher).await {
                tracing::warn!(%publisher, %stream, %error, "could not end a stream");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_track_of_each_publisher_has_its_own_stable_stream_id() {
        let (p, q) = (ParticipantId::random(), ParticipantId::random());
        assert_eq!(track_stream_id(p, 1), track_stream_id(p, 1));
        assert_ne!(track_stream_id(p, 0), track_stream_id(p, 1));
        assert_ne!(track_stream_id(p, 1), track_stream_id(q, 1));
        let id = track_stream_id(p, 2);
        assert_eq!(id.as_uuid().get_version_num(), 8);
        assert_eq!(StreamId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn a_failed_subscription_is_tried_again_only_after_a_while() {
        let subs = Subscriptions::default();
        let s = StreamId::random();
        assert!(subs.should_subscribe(s));
        assert!(!subs.should_subscribe(s), "asked once");
        subs.failed(s);
        assert!(!subs.should_subscribe(s), "not at once after failing");
        assert!(!subs.take(s), "a failed one was never counted");
        assert!(subs.should_subscribe(s));
        assert_eq!(subs.take_all(), vec![s]);
    }
}
