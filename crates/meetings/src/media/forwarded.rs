//! Forwarded streams: how the handler writes frames to a subscriber or a relay, and how
//! they are read back ([`proto`]'s "Media frames").
//!
//! A writer keeps one open unidirectional stream per lane, a (publisher, track, layer):
//! the stream starts with the publisher's id, then carries that lane's frames, each
//! behind its length. A video key frame starts a new stream (the frames before it are
//! no longer needed to decode what follows), and so does a lane's first frame; audio
//! frames stay on their lane's stream. A lane idle for [`IDLE`] is finished, and a
//! writer holding [`MAX_LANES`] streams finishes the one used longest ago before it
//! opens another, so the peer's limit of concurrent streams is never reached.
//!
//! Opening a stream costs both ends far more than writing to one, and a frame fanned out
//! to a hundred subscribers paid it a hundred times: a stream per group of frames is what
//! keeps the handler's added latency low (`tavern bench media`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wtransport::error::StreamReadExactError;
use wtransport::{Connection, RecvStream, SendStream};

use super::Shared;
use super::proto::{
    self, FRAME_HEADER_LEN, FrameHeader, LENGTH_LEN, MediaFrameError, PUBLISHER_LEN,
};
use crate::domain::ParticipantId;

/// A frame on its way to a subscriber or a relay: its publisher's id, its length
/// (`u32` big-endian) and the frame (header and payload), as a new stream starts with
/// them ([`proto::FORWARD_PREFIX`]).
pub(super) type Forwarded = Arc<Vec<u8>>;

/// A lane with no frame for this long has its stream finished.
const IDLE: Duration = Duration::from_secs(10);
/// The most streams one writer holds open (peers allow 100 at once by default).
const MAX_LANES: usize = 48;
/// How often a writer looks for idle lanes.
const SWEEP: Duration = Duration::from_secs(1);

/// The forwarded frame of `frame` (a header and payload) published by `publisher`,
/// with `frame`'s bytes read behind [`proto::FORWARD_PREFIX`] zero bytes: fills in the
/// prefix.
pub(super) fn seal(publisher: ParticipantId, mut frame: Vec<u8>) -> Forwarded {
    let len = u32::try_from(frame.len().saturating_sub(proto::FORWARD_PREFIX)).unwrap_or(u32::MAX);
    if let Some(prefix) = frame.get_mut(..proto::FORWARD_PREFIX) {
        prefix[..PUBLISHER_LEN].copy_from_slice(publisher.as_uuid().as_bytes());
        prefix[PUBLISHER_LEN..].copy_from_slice(&len.to_be_bytes());
    }
    Arc::new(frame)
}

/// A lane's key, and whether its frame starts a new stream, read from a forwarded frame.
fn lane_of(frame: &[u8]) -> Option<([u8; PUBLISHER_LEN], u8, u8, bool)> {
    let publisher = *frame.first_chunk::<PUBLISHER_LEN>()?;
    let header = frame.get(proto::FORWARD_PREFIX..)?;
    let (track, flags, layer) = (*header.get(1)?, *header.get(2)?, *header.get(3)?);
    let starts = track != proto::TRACK_AUDIO && flags & proto::FLAG_KEY != 0;
    Some((publisher, track, layer, starts))
}

/// A lane: (publisher id, track, layer).
type LaneKey = ([u8; PUBLISHER_LEN], u8, u8);

/// The open stream of each lane (`S`: a stream, finished when dropped), and when each
/// was last written to.
struct Lanes<S> {
    open: HashMap<LaneKey, (S, Instant)>,
    swept: Instant,
}

impl<S> Lanes<S> {
    fn new(now: Instant) -> Lanes<S> {
        Lanes {
            open: HashMap::new(),
            swept: now,
        }
    }

    /// The stream a frame of `key` continues, or `None` when it goes on a new one
    /// (`starts`, or the lane has none). Drops, and so finishes, the streams of lanes
    /// idle for [`IDLE`] (looked for every [`SWEEP`]), the lane's own stream when a new
    /// one starts, and the stream used longest ago when [`MAX_LANES`] are open and a new
    /// one is needed.
    fn take(&mut self, key: LaneKey, starts: bool, now: Instant) -> Option<S> {
        if now.duration_since(self.swept) >= SWEEP {
            self.open
                .retain(|_, (_, used)| now.duration_since(*used) < IDLE);
            self.swept = now;
        }
        let open = self.open.remove(&key).map(|(stream, _)| stream);
        if !starts && open.is_some() {
            return open;
        }
        drop(open);
        if self.open.len() >= MAX_LANES
            && let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| *key)
        {
            self.open.remove(&oldest);
        }
        None
    }

    /// `stream` carries `key`'s frames from now on.
    fn put(&mut self, key: LaneKey, stream: S, now: Instant) {
        self.open.insert(key, (stream, now));
    }
}

/// Writes each queued frame on its lane's stream (opening one as the module says),
/// until the queue closes or the connection does.
pub(super) async fn write_media(
    shared: Arc<Shared>,
    conn: Connection,
    mut frames: mpsc::Receiver<Forwarded>,
) {
    let mut lanes: Lanes<SendStream> = Lanes::new(Instant::now());
    while let Some(frame) = frames.recv().await {
        let Some((publisher, track, layer, starts)) = lane_of(&frame) else {
            continue;
        };
        let key = (publisher, track, layer);
        let now = Instant::now();
        let (mut stream, bytes) = match lanes.take(key, starts, now) {
            Some(stream) => (stream, frame.get(PUBLISHER_LEN..).unwrap_or_default()),
            None => {
                let Ok(opening) = conn.open_uni().await else {
                    return;
                };
                let Ok(stream) = opening.await else {
                    return;
                };
                if track == proto::TRACK_AUDIO {
                    // Audio is small and late audio is heard: it goes out first.
                    stream.set_priority(1);
                }
                (stream, frame.as_slice())
            }
        };
        // A subscriber may stop a stream (it gave up on those frames): the lane's next
        // frame opens another.
        if stream.write_all(bytes).await.is_ok() {
            shared.meter.count(frame.len() - proto::FORWARD_PREFIX);
            lanes.put(key, stream, now);
        }
    }
}

/// Why a forwarded stream could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardedError {
    /// The stream was reset or the connection was lost.
    #[error("a stream failed: {0}")]
    Stream(String),
    /// The bytes are not forwarded frames.
    #[error("a bad media frame: {0}")]
    Frame(#[from] MediaFrameError),
}

/// A forwarded stream being read: its publisher, then its frames one by one.
pub(crate) struct ForwardedStream {
    stream: RecvStream,
    publisher: ParticipantId,
}

impl ForwardedStream {
    /// Reads the stream's publisher id: `None` when it ends first.
    pub(crate) async fn open(
        mut stream: RecvStream,
    ) -> Result<Option<ForwardedStream>, ForwardedError> {
        let mut id = [0u8; PUBLISHER_LEN];
        if !fill(&mut stream, &mut id).await? {
            return Ok(None);
        }
        Ok(Some(ForwardedStream {
            stream,
            publisher: ParticipantId::from_uuid(uuid::Uuid::from_bytes(id)),
        }))
    }

    /// Whose frames the stream carries.
    pub(crate) fn publisher(&self) -> ParticipantId {
        self.publisher
    }

    /// The next frame: its header, and its bytes (header and payload) behind `reserve`
    /// zero bytes; `None` at the stream's end. A length outside
    /// [`FRAME_HEADER_LEN`]`..=`[`proto::MAX_MEDIA_FRAME`] or a bad header is an error.
    pub(crate) async fn next(
        &mut self,
        reserve: usize,
    ) -> Result<Option<(FrameHeader, Vec<u8>)>, ForwardedError> {
        let mut len = [0u8; LENGTH_LEN];
        if !fill(&mut self.stream, &mut len).await? {
            return Ok(None);
        }
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > proto::MAX_MEDIA_FRAME {
            return Err(MediaFrameError::TooLarge.into());
        }
        if len < FRAME_HEADER_LEN {
            return Err(MediaFrameError::Short(len).into());
        }
        let mut bytes = vec![0u8; reserve + len];
        if !fill(
            &mut self.stream,
            bytes.get_mut(reserve..).unwrap_or_default(),
        )
        .await?
        {
            return Err(MediaFrameError::Short(0).into());
        }
        let header = FrameHeader::parse(bytes.get(reserve..).unwrap_or_default())?;
        Ok(Some((header, bytes)))
    }
}

/// Fills `buf` from `stream`: `false` when the stream ended cleanly before its first
/// byte; one ending within it is a short frame.
async fn fill(stream: &mut RecvStream, buf: &mut [u8]) -> Result<bool, ForwardedError> {
    match stream.read_exact(buf).await {
        Ok(()) => Ok(true),
        Err(StreamReadExactError::FinishedEarly(0)) => Ok(false),
        Err(StreamReadExactError::FinishedEarly(n)) => Err(MediaFrameError::Short(n).into()),
        Err(StreamReadExactError::Read(e)) => Err(ForwardedError::Stream(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_frame_names_its_lane_and_only_a_video_key_frame_starts_a_stream() {
        let publisher = ParticipantId::random();
        let frame = |track: u8, flags: u8, layer: u8| {
            let mut bytes = vec![0u8; proto::FORWARD_PREFIX];
            let header = FrameHeader {
                track,
                flags,
                layer,
                timestamp: 7,
                seq: 1,
            };
            bytes.extend_from_slice(&header.encode());
            bytes.extend_from_slice(b"payload");
            seal(publisher, bytes)
        };
        let key = frame(proto::TRACK_CAMERA, proto::FLAG_KEY, 2);
        assert_eq!(key[..PUBLISHER_LEN], *publisher.as_uuid().as_bytes());
        assert_eq!(
            key[PUBLISHER_LEN..proto::FORWARD_PREFIX],
            u32::try_from(FRAME_HEADER_LEN + 7).unwrap().to_be_bytes()
        );
        let id = *publisher.as_uuid().as_bytes();
        assert_eq!(lane_of(&key), Some((id, proto::TRACK_CAMERA, 2, true)));
        assert_eq!(
            lane_of(&frame(proto::TRACK_SCREEN, 0, 0)),
            Some((id, proto::TRACK_SCREEN, 0, false))
        );
        assert_eq!(
            lane_of(&frame(proto::TRACK_AUDIO, proto::FLAG_KEY, 0)),
            Some((id, proto::TRACK_AUDIO, 0, false))
        );
        assert_eq!(lane_of(&key[..proto::FORWARD_PREFIX + 3]), None);
    }

    /// A stream standing for a real one: which it is, and a note when it is dropped
    /// (finished).
    struct Fake(u32, std::rc::Rc<std::cell::RefCell<Vec<u32>>>);

    impl Drop for Fake {
        fn drop(&mut self) {
            self.1.borrow_mut().push(self.0);
        }
    }

    #[test]
    fn a_lane_keeps_its_stream_until_a_key_frame_or_idleness_and_the_oldest_gives_way() {
        let finished = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let fake = |n: u32| Fake(n, finished.clone());
        let t0 = Instant::now();
        let mut lanes = Lanes::new(t0);
        let camera = ([1; PUBLISHER_LEN], proto::TRACK_CAMERA, 0);
        let audio = ([1; PUBLISHER_LEN], proto::TRACK_AUDIO, 0);

        // A lane's first frame and each key frame start a stream; others continue it.
        assert!(lanes.take(camera, true, t0).is_none());
        lanes.put(camera, fake(1), t0);
        let continued = lanes.take(camera, false, t0).expect("the camera's stream");
        assert_eq!(continued.0, 1);
        lanes.put(camera, continued, t0);
        assert!(lanes.take(camera, true, t0).is_none());
        assert_eq!(
            *finished.borrow(),
            [1],
            "the old group's stream is finished"
        );
        lanes.put(camera, fake(2), t0);
        assert!(
            lanes.take(audio, false, t0).is_none(),
            "a lane's first frame"
        );
        lanes.put(audio, fake(3), t0);

        // A lane idle for IDLE is finished at the next look, a busy one is not.
        let later = t0 + IDLE;
        let audio_stream = lanes.take(audio, false, later - SWEEP).expect("audio's");
        lanes.put(audio, audio_stream, later - SWEEP);
        assert!(lanes.take(camera, false, later).is_none());
        assert_eq!(*finished.borrow(), [1, 2]);
        assert_eq!(lanes.take(audio, false, later).map(|s| s.0), Some(3));
        finished.borrow_mut().clear();

        // At MAX_LANES open, a new lane finishes the one used longest ago.
        let mut lanes = Lanes::new(t0);
        for n in 0..MAX_LANES {
            let key = (
                [2; PUBLISHER_LEN],
                proto::TRACK_CAMERA,
                u8::try_from(n).unwrap(),
            );
            let used = t0 + Duration::from_millis(u64::try_from(n).unwrap() + 1);
            assert!(lanes.take(key, true, used).is_none());
            lanes.put(key, fake(u32::try_from(n).unwrap()), used);
        }
        assert!(finished.borrow().is_empty());
        let newcomer = ([3; PUBLISHER_LEN], proto::TRACK_AUDIO, 0);
        assert!(lanes.take(newcomer, false, t0 + SWEEP / 2).is_none());
        assert_eq!(*finished.borrow(), [0], "the oldest lane gave way");
        assert_eq!(lanes.open.len(), MAX_LANES - 1);
    }
}
