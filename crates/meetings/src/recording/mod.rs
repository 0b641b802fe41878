//! Recordings of meetings with `allow_recording` (issue 14, point 4).
//!
//! A [`Recorder`] records a meeting the way a participant watches it: it takes a
//! one-time `media` connection token for a participant id of its own (the admission
//! every participant's media session gets), opens a media session on the meeting's media
//! handler (the seed's `media_handler_id` of `meeting:{meeting_id}`, reached at the
//! address the in-process [`MediaDirectory`] knows, else at the endpoint and
//! certificate hash it registered) and receives every frame the handler
//! forwards, as forwarded: nothing is decoded. Joining late, the handler asks every
//! publisher for a key frame on its behalf, so video starts at the next key frame.
//!
//! # Tracks
//! One WebM file per recording, holding one track per (participant, media track): the
//! camera and the screen as video tracks (VP8 or VP9, told by the first key frame, its
//! size read from that key frame's header), the microphone as an Opus audio track
//! (`CodecPrivate` the `OpusHead`, channels from the first packet). Each track is named
//! after its participant (`Alice (camera)`, `Alice (microphone)`, `Bob (screen)`), by
//! their display name in the meeting. A participant who joins while recording adds
//! tracks; one who leaves ends theirs. Where a publisher sends several simulcast
//! layers, a track keeps the highest layer seen, switching up only at that layer's key
//! frame (a decoder needs one). A video track starts at its first key frame.
//!
//! # Timestamps
//! Frames carry their encoder's timestamps (µs). Each track is placed on the recording's
//! timeline by the arrival of its first frame (µs since the recording started); its
//! later frames keep their encoder spacing from there (never going backwards). When
//! muxed, the earliest frame of the file is at 0. The file's duration runs to the end
//! of its last frame (the last timestamp plus the track's mean frame interval).
//!
//! # End-to-end encryption
//! A meeting with `enable_e2e_encryption` is never recorded (a start is refused: the
//! server never sees the media), and a frame flagged end-to-end encrypted is dropped
//! unread should one arrive (the meeting's settings changed while recording).
//!
//! # Life of a recording
//! `recording` while frames arrive: each track's frames are spooled to a local file
//! under the work directory. It stops when its host stops it, when the meeting ends
//! (checked every [`RecordingsConfig::check_every`]), when the media session closes, or
//! when Tavern shuts down; then `processing`: the spools are muxed into one WebM file
//! ([`webm`]) and written to the recordings store through `object_store` (local files
//! by default, any `object_store` URL when configured), at
//! `{prefix}/{meeting_id}/{recording_id}.webm`. `ready` with the file's size, duration,
//! codecs and resolution; or `failed` with the reason (nothing was recorded, the store
//! refused, ...). The row's status is the truth across replicas: a stop on another
//! replica changes it, and the recording replica's check sees that. The recording
//! replica touches the row (`updated_at`) at every check; a row left `recording` or
//! `processing` by a replica that stopped is failed once it has not been touched for
//! [`RecordingsConfig::stale_after`] (checked when the meeting's recordings are started
//! or listed), so a crash never leaves a meeting unrecordable. Its spools stay in the
//! work directory.
//!
//! # Download links
//! A ready recording's `download_url` is `/api/v1/recordings/{id}/download?expires=
//! {unix seconds}&signature={base64url}`, the signature HMAC-SHA256 over
//! `{id}\n{expires}` with a key derived (HKDF-SHA256) from `meetings_secret_key`; it
//! is valid [`RecordingsConfig::link_valid_for`] (1 hour by default).

mod spool;
pub mod webm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base::Clock;
use base64::Engine as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use ring::{hkdf, hmac};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::spool::SpoolWriter;
use self::webm::{MuxTrack, TrackKind};
use crate::auth::MeetingsSecretKey;
use crate::controller::MediaDirectory;
use crate::domain::{
    ConnectionType, HandlerId, MeetingId, MeetingStatus, ParticipantId, RecordingId,
    RecordingStatus, UserId,
};
use crate::media::client::{MediaClient, MediaClientError, ReceivedFrame};
use crate::media::proto::{FLAG_E2E, TRACK_AUDIO, TRACK_CAMERA, TRACK_SCREEN};
use crate::repo::{FinishedRecording, Meeting, NewRecording, Recording, RecordingRefusal};
use crate::{MeetingsError, Repo};

/// The path of a recording's download route.
pub const DOWNLOAD_PATH: &str = "/api/v1/recordings/{recording_id}/download";

/// The `error_message` of a recording whose replica stopped before finishing it.
pub const STALE_MESSAGE: &str = "the server making this recording stopped before finishing it";

/// The salt and info of the download links' key derivation.
const LINK_SALT: &[u8] = b"tavern meetings recordings";
const LINK_INFO: &[u8] = b"download link v1";

/// Settings of the recordings.
#[derive(Debug, Clone)]
pub struct RecordingsConfig {
    /// Where recordings are written: a local directory (a path, or a `file://` URL) or
    /// any `object_store` URL (`s3://bucket/prefix`, `az://container/prefix`, ...; its
    /// credentials and options from the environment, as `object_store` names them).
    /// `None`: recordings are not offered (a start answers 503). Tavern passes
    /// `meetings_recordings_url`, by default `{data_dir}/recordings`.
    pub storage: Option<String>,
    /// Where the spools and the muxed file are kept while a recording is made; `None`:
    /// `tavern-recordings` in the system's temporary directory.
    pub work_dir: Option<PathBuf>,
    /// How often a running recording checks whether its meeting ended or it was
    /// stopped elsewhere.
    pub check_every: Duration,
    /// How long a download link is valid.
    pub link_valid_for: Duration,
    /// A recording `recording` or `processing` whose replica gave no sign of life (it
    /// touches the row every `check_every`) for this long is failed: that replica
    /// stopped before finishing it, and the meeting may be recorded again.
    pub stale_after: Duration,
    /// Where the media handlers are reached; `None`: the one [`crate::feature()`] shares
    /// with the in-process controller and media handler.
    pub directory: Option<MediaDirectory>,
}

impl Default for RecordingsConfig {
    fn default() -> RecordingsConfig {
        RecordingsConfig {
            storage: None,
            work_dir: None,
            check_every: Duration::from_secs(2),
            link_valid_for: Duration::from_secs(60 * 60),
            stale_after: Duration::from_secs(60),
            directory: None,
        }
    }
}

/// Why a recording could not be started, stopped or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{}", refusal_message(*.0))]
    Refused(RecordingRefusal),
    #[error("recordings are not configured on this server")]
    NotConfigured,
    #[error(
        "nobody in this meeting has been granted media yet; start the recording once someone has joined"
    )]
    NoMedia,
    #[error("this meeting's media handler ({0}) cannot be reached from here")]
    HandlerUnknown(HandlerId),
    #[error("could not open a media session for the recording: {0}")]
    Connect(#[from] MediaClientError),
    #[error("the recordings store is unusable: {0}")]
    Store(String),
    #[error("the recording's file could not be prepared: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Meetings(#[from] MeetingsError),
}

/// The sentence for a refusal.
pub fn refusal_message(refusal: RecordingRefusal) -> &'static str {
    match refusal {
        RecordingRefusal::UnknownMeeting => "there is no such meeting",
        RecordingRefusal::Ended => "this meeting has ended",
        RecordingRefusal::NotAllowed => "this meeting does not allow recording",
        RecordingRefusal::EndToEndEncrypted => {
            "recordings are not offered for end-to-end encrypted meetings: the server never sees the media"
        }
        RecordingRefusal::AlreadyRunning => "this meeting is being recorded already",
    }
}

/// Why the meeting refuses a recording, judged from its row (the start checks again
/// under the row's lock).
pub fn refusal(meeting: &Meeting) -> Option<RecordingRefusal> {
    if meeting.status == MeetingStatus::Ended {
        Some(RecordingRefusal::Ended)
    } else if meeting.settings.enable_e2e_encryption {
        Some(RecordingRefusal::EndToEndEncrypted)
    } else if !meeting.settings.allow_recording {
        Some(RecordingRefusal::NotAllowed)
    } else {
        None
    }
}

/// The recordings store: the `object_store` and where recordings go in it.
#[derive(Debug, Clone)]
struct Storage {
    store: Arc<dyn ObjectStore>,
    /// `recordings.storage_bucket`: `local`, or the URL's bucket or container.
    bucket: String,
    /// The prefix every object path starts with (may be empty).
    prefix: ObjectPath,
}

impl Storage {
    fn open(setting: &str) -> Result<Storage, RecordingError> {
        let setting = setting.trim();
        let url = url::Url::parse(setting)
            .ok()
            .filter(|u| u.scheme().len() > 1 && u.scheme() != "file");
        match url {
            Some(url) => {
                let (store, prefix) = object_store::parse_url_opts(
                    &url,
                    // A variable that is not UTF-8 is no object store option (and must
                    // not panic the start).
                    std::env::vars_os()
                        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
                )
                .map_err(|e| RecordingError::Store(e.to_string()))?;
                Ok(Storage {
                    store: Arc::from(store),
                    bucket: url.host_str().unwrap_or(url.scheme()).to_owned(),
                    prefix,
                })
            }
            None => {
                let dir = match url::Url::parse(setting) {
                    Ok(u) if u.scheme() == "file" => u.to_file_path().map_err(|()| {
                        RecordingError::Store(format!("`{setting}` is not a local path"))
                    })?,
                    _ => PathBuf::from(setting),
                };
                std::fs::create_dir_all(&dir).map_err(|e| {
                    RecordingError::Store(format!("cannot make {}: {e}", dir.display()))
                })?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| RecordingError::Store(e.to_string()))?;
                Ok(Storage {
                    store: Arc::new(store),
                    bucket: "local".to_owned(),
                    prefix: ObjectPath::default(),
                })
            }
        }
    }

    fn object_path(&self, meeting: MeetingId, recording: RecordingId) -> ObjectPath {
        self.prefix
            .clone()
            .join(meeting.to_string())
            .join(format!("{recording}.webm"))
    }
}

/// Starts, stops and serves recordings. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    repo: Repo,
    clock: Arc<dyn Clock>,
    /// `Err`: why the configured store is unusable (said on every start).
    storage: Result<Storage, String>,
    config: RecordingsConfig,
    directory: MediaDirectory,
    work_dir: PathBuf,
    link_key: hmac::Key,
    /// The recordings this process is making, by id.
    running: Mutex<HashMap<RecordingId, Running>>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("storage", &self.inner.storage.as_ref().map(|s| &s.bucket))
            .field("work_dir", &self.inner.work_dir)
            .finish_non_exhaustive()
    }
}

/// A recording this process is making: cancelling `stop` stops it; `frames` counts the
/// frames recorded so far.
#[derive(Debug, Clone, Default)]
struct Running {
    stop: CancellationToken,
    frames: Arc<AtomicU64>,
}

/// The download links' key, derived from the meetings secret key.
fn link_key(secret: &MeetingsSecretKey) -> hmac::Key {
    let material = secret.to_base64();
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, LINK_SALT).extract(material.as_bytes());
    match prk.expand(&[LINK_INFO], hmac::HMAC_SHA256) {
        Ok(okm) => hmac::Key::from(okm),
        // Unreachable (32 bytes is within HKDF's limit); the secret itself then.
        Err(_) => hmac::Key::new(hmac::HMAC_SHA256, material.as_bytes()),
    }
}

impl Recorder {
    /// A recorder over `repo`, signing download links with a key derived from `secret`,
    /// reaching media handlers through `directory` (unless `config` names its own).
    pub fn new(
        repo: Repo,
        clock: Arc<dyn Clock>,
        secret: &MeetingsSecretKey,
        directory: MediaDirectory,
        config: RecordingsConfig,
    ) -> Recorder {
        let storage = match &config.storage {
            None => Err("recordings are not configured on this server".to_owned()),
            Some(setting) => Storage::open(setting).map_err(|e| {
                tracing::warn!(error = %e, "the recordings store is unusable; recordings are refused");
                e.to_string()
            }),
        };
        let work_dir = config
            .work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("tavern-recordings"));
        Recorder {
            inner: Arc::new(Inner {
                repo,
                clock,
                storage,
                directory: config.directory.clone().unwrap_or(directory),
                config,
                work_dir,
                link_key: link_key(secret),
                running: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Starts recording `meeting` for `by`: checks the meeting allows it, opens the
    /// media session, inserts the `recording` row and records until stopped.
    pub async fn start(
        &self,
        meeting: &Meeting,
        by: Option<UserId>,
    ) -> Result<Recording, RecordingError> {
        let inner = &self.inner;
        if let Some(refused) = refusal(meeting) {
            return Err(RecordingError::Refused(refused));
        }
        let storage = match &inner.storage {
            Ok(storage) => storage.clone(),
            Err(_) if inner.config.storage.is_none() => return Err(RecordingError::NotConfigured),
            Err(why) => return Err(RecordingError::Store(why.clone())),
        };
        let handler = inner
            .repo
            .meeting_media_handler(meeting.meeting_id)
            .await?
            .ok_or(RecordingError::NoMedia)?;
        let (endpoint, certificate_hash) = match inner.directory.address(&handler) {
            Some(address) => (address.endpoint, address.certificate_hash),
            // A handler of another process: where it registered.
            None => match inner.repo.media_handler(&handler).await {
                Ok(registered) => (registered.endpoint, registered.certificate_hash),
                Err(MeetingsError::Storage(store::StorageError::NotFound { .. })) => {
                    return Err(RecordingError::HandlerUnknown(handler));
                }
                Err(error) => return Err(error.into()),
            },
        };
        // The recorder's own participant id, admitted as any participant's media is.
        let me = ParticipantId::random();
        let token = inner
            .repo
            .issue_connection_token(meeting.meeting_id, me, ConnectionType::Media)
            .await?;
        let url = format!(
            "{}/media/{}",
            endpoint.trim_end_matches('/'),
            meeting.meeting_id
        );
        let client =
            MediaClient::connect(&url, token.expose(), certificate_hash.as_deref()).await?;

        let recording_id = RecordingId::random();
        let dir = inner.work_dir.join(recording_id.to_string());
        if let Err(error) = tokio::fs::create_dir_all(&dir).await {
            client.close();
            return Err(error.into());
        }
        if let Err(error) = self.fail_stale(meeting.meeting_id).await {
            client.close();
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(error);
        }
        let started = inner
            .repo
            .start_recording(&NewRecording {
                recording_id,
                meeting_id: meeting.meeting_id,
                started_by: by,
                started_at: inner.clock.now(),
                storage_path: storage
                    .object_path(meeting.meeting_id, recording_id)
                    .to_string(),
                storage_bucket: storage.bucket.clone(),
            })
            .await;
        let recording = match started {
            Ok(Ok(recording)) => recording,
            Ok(Err(refused)) => {
                client.close();
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(RecordingError::Refused(refused));
            }
            Err(error) => {
                client.close();
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(error.into());
            }
        };
        let running = Running::default();
        inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(recording_id, running.clone());
        tracing::info!(meeting = %meeting.meeting_id, recording = %recording_id,
            handler = %handler, "recording started");
        let task = Task {
            inner: self.inner.clone(),
            recording: recording.clone(),
            title: meeting.display_name.clone(),
            storage,
            dir,
            running,
        };
        inner.tasks.spawn(task.run(client));
        Ok(recording)
    }

    /// Fails `meeting`'s recordings whose replica stopped before finishing them
    /// ([`RecordingsConfig::stale_after`]).
    pub async fn fail_stale(&self, meeting: MeetingId) -> Result<(), RecordingError> {
        let failed = self
            .inner
            .repo
            .fail_stale_recordings(meeting, self.inner.config.stale_after, STALE_MESSAGE)
            .await?;
        for id in failed {
            tracing::warn!(recording = %id, %meeting, "a recording whose server stopped was marked failed");
        }
        Ok(())
    }

    /// Stops `recording` (`recording` -> `processing`): the recording replica finishes
    /// it. Answers the row as it is now (unchanged when it had stopped already).
    pub async fn stop(&self, recording: RecordingId) -> Result<Recording, RecordingError> {
        let inner = &self.inner;
        let stopped = inner
            .repo
            .stop_recording(recording, inner.clock.now())
            .await?;
        if let Some(running) = inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&recording)
        {
            running.stop.cancel();
        }
        match stopped {
            Some(row) => Ok(row),
            None => Ok(inner.repo.recording(recording).await?),
        }
    }

    /// Stops every recording this process is making and waits (at most `within`) for
    /// them to be written.
    pub async fn shutdown(&self, within: Duration) {
        let inner = &self.inner;
        for running in inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
        {
            running.stop.cancel();
        }
        inner.tasks.close();
        if tokio::time::timeout(within, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("recordings still being written at shutdown; stopping anyway");
        }
    }

    /// Frames recorded so far by `recording`, while this process is making it.
    pub fn frames_recorded(&self, recording: RecordingId) -> Option<u64> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&recording)
            .map(|r| r.frames.load(Ordering::Relaxed))
    }

    /// The signed download path of `recording`, valid from now for
    /// [`RecordingsConfig::link_valid_for`].
    pub fn download_url(&self, recording: RecordingId) -> String {
        let valid = i64::try_from(self.inner.config.link_valid_for.as_secs()).unwrap_or(i64::MAX);
        let expires = self.inner.clock.now().timestamp().saturating_add(valid);
        let signature = self.signature(recording, expires);
        format!(
            "{}?expires={expires}&signature={signature}",
            DOWNLOAD_PATH.replace("{recording_id}", &recording.to_string())
        )
    }

    fn signature(&self, recording: RecordingId, expires: i64) -> String {
        let tag = hmac::sign(
            &self.inner.link_key,
            format!("{recording}\n{expires}").as_bytes(),
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `signature` signs `recording` until `expires`, and that is not past.
    pub fn verify_link(&self, recording: RecordingId, expires: i64, signature: &str) -> bool {
        if expires < self.inner.clock.now().timestamp() {
            return false;
        }
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        hmac::verify(
            &self.inner.link_key,
            format!("{recording}\n{expires}").as_bytes(),
            &tag,
        )
        .is_ok()
    }

    /// The stored object of a ready recording, as a stream of bytes with its size.
    pub async fn open(
        &self,
        recording: &Recording,
    ) -> Result<object_store::GetResult, RecordingError> {
        let storage = self
            .inner
            .storage
            .as_ref()
            .map_err(|why| RecordingError::Store(why.clone()))?;
        storage
            .store
            .get(&ObjectPath::from(recording.storage_path.as_str()))
            .await
            .map_err(|e| RecordingError::Store(e.to_string()))
    }

    /// The repository it records into.
    pub fn repo(&self) -> &Repo {
        &self.inner.repo
    }
}

/// One track being recorded.
struct TrackState {
    number: u64,
    name: String,
    kind: TrackKind,
    /// The simulcast layer it keeps.
    layer: u8,
    /// The encoder timestamp of its first frame and where that frame is on the
    /// recording's timeline (µs).
    first_ts: u64,
    anchor_us: u64,
    first_us: u64,
    last_us: u64,
    frames: u64,
    spool_path: PathBuf,
    spool: Option<SpoolWriter>,
}

/// A running recording.
struct Task {
    inner: Arc<Inner>,
    recording: Recording,
    title: String,
    storage: Storage,
    dir: PathBuf,
    running: Running,
}

/// What a received frame did.
enum Taken {
    Kept,
    /// Not recorded (yet): ask the publisher for a key frame on the track.
    WantKeyframe(ParticipantId, u8),
    Dropped,
}

impl Task {
    async fn run(self, mut client: MediaClient) {
        let id = self.recording.recording_id;
        let mut tracks: HashMap<(ParticipantId, u8), TrackState> = HashMap::new();
        let mut names: HashMap<ParticipantId, String> = HashMap::new();
        let mut asked: std::collections::HashSet<(ParticipantId, u8)> = Default::default();
        let started = Instant::now();
        let mut check = tokio::time::interval(self.inner.config.check_every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure: Option<String> = None;
        let why = loop {
            tokio::select! {
                () = self.running.stop.cancelled() => break "stopped",
                _ = check.tick() => {
                    if let Some(why) = self.finished_elsewhere().await {
                        break why;
                    }
                    self.touch().await;
                }
                frame = client.next_frame() => match frame {
                    Some(Ok(frame)) => {
                        // When it arrived, not when this loop got to it.
                        let since = frame.received_at.saturating_duration_since(started.into_std());
                        let at = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
                        match self.take(&mut tracks, &mut names, frame, at).await {
                            Ok(Taken::WantKeyframe(publisher, track)) => {
                                if asked.insert((publisher, track)) {
                                    let _ = client.request_keyframe(publisher, track).await;
                                }
                            }
                            Ok(Taken::Kept) => {
                                self.running.frames.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Taken::Dropped) => {}
                            Err(error) => {
                                failure = Some(format!("a frame could not be spooled: {error}"));
                                break "failed";
                            }
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(recording = %id, %error, "a bad frame was not recorded");
                    }
                    None => break "the media session closed",
                },
            }
        };
        client.close();
        tracing::info!(recording = %id, reason = why, "recording stopping");
        let now = self.inner.clock.now();
        if let Err(error) = self.inner.repo.stop_recording(id, now).await {
            tracing::warn!(recording = %id, %error, "could not mark the recording processing");
        }
        let result = match failure {
            Some(message) => Err(message),
            None => {
                // Still alive while the file is written.
                let finish = self.finish(tracks);
                tokio::pin!(finish);
                loop {
                    tokio::select! {
                        result = &mut finish => break result,
                        _ = check.tick() => self.touch().await,
                    }
                }
            }
        };
        match result {
            Ok(done) => match self.inner.repo.finish_recording(id, &done).await {
                Ok(Some(_)) => {
                    tracing::info!(recording = %id, bytes = done.file_size_bytes,
                        seconds = done.duration_seconds, "recording ready");
                }
                Ok(None) => {
                    tracing::warn!(recording = %id, "the recording was no longer processing")
                }
                Err(error) => {
                    tracing::warn!(recording = %id, %error, "could not mark the recording ready")
                }
            },
            Err(message) => {
                tracing::warn!(recording = %id, error = %message, "recording failed");
                if let Err(error) = self
                    .inner
                    .repo
                    .fail_recording(id, &message, self.inner.clock.now())
                    .await
                {
                    tracing::warn!(recording = %id, %error, "could not mark the recording failed");
                }
            }
        }
        if let Err(error) = tokio::fs::remove_dir_all(&self.dir).await {
            tracing::warn!(recording = %id, %error, dir = %self.dir.display(),
                "could not remove the recording's work files");
        }
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    }

    /// The sign of life of a recording this replica is making.
    async fn touch(&self) {
        if let Err(error) = self
            .inner
            .repo
            .touch_recording(self.recording.recording_id)
            .await
        {
            tracing::warn!(recording = %self.recording.recording_id, %error,
                "could not mark the recording alive");
        }
    }

    /// Why the recording should end now, seen in the stores: it was stopped (on any
    /// replica) or its meeting ended.
    async fn finished_elsewhere(&self) -> Option<&'static str> {
        let repo = &self.inner.repo;
        match repo.recording(self.recording.recording_id).await {
            Ok(row) if row.status != RecordingStatus::Recording => return Some("stopped"),
            Ok(_) => {}
            Err(MeetingsError::Storage(store::StorageError::NotFound { .. })) => {
                return Some("its row was deleted");
            }
            Err(error) => tracing::warn!(%error, "could not read the recording's status"),
        }
        match repo.meeting(self.recording.meeting_id).await {
            Ok(meeting) if meeting.status == MeetingStatus::Ended => Some("the meeting ended"),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "could not read the recorded meeting");
                None
            }
        }
    }

    /// The name a publisher has in the meeting (read again when unknown).
    async fn name_of(
        &self,
        names: &mut HashMap<ParticipantId, String>,
        publisher: ParticipantId,
    ) -> String {
        if let Some(name) = names.get(&publisher) {
            return name.clone();
        }
        match self
            .inner
            .repo
            .participants(self.recording.meeting_id)
            .await
        {
            Ok(sessions) => {
                for session in sessions {
                    names.insert(session.participant_id, session.display_name);
                }
            }
            Err(error) => tracing::warn!(%error, "could not read the participants' names"),
        }
        names
            .get(&publisher)
            .cloned()
            .unwrap_or_else(|| format!("Participant {}", &publisher.to_string()[..8]))
    }

    /// Records one received frame (or says why not).
    async fn take(
        &self,
        tracks: &mut HashMap<(ParticipantId, u8), TrackState>,
        names: &mut HashMap<ParticipantId, String>,
        frame: ReceivedFrame,
        arrived_us: u64,
    ) -> std::io::Result<Taken> {
        let ReceivedFrame {
            publisher,
            header,
            payload,
            ..
        } = frame;
        if header.flags & FLAG_E2E != 0 {
            return Ok(Taken::Dropped);
        }
        let key = (publisher, header.track);
        let is_video = header.track != TRACK_AUDIO;
        if let Some(track) = tracks.get_mut(&key) {
            if is_video && header.layer != track.layer {
                // A higher layer replaces the kept one at its key frame.
                if header.layer > track.layer && header.is_key() {
                    track.layer = header.layer;
                } else {
                    return Ok(Taken::Dropped);
                }
            }
            let at = track
                .anchor_us
                .saturating_add(header.timestamp.saturating_sub(track.first_ts))
                .max(track.last_us);
            if let Some(spool) = track.spool.as_mut() {
                spool.append(at, header.is_key(), &payload).await?;
            }
            track.last_us = at;
            track.frames += 1;
            return Ok(Taken::Kept);
        }

        // A new track: video from its first key frame, whose header says the codec.
        let kind = if is_video {
            if !header.is_key() {
                return Ok(Taken::WantKeyframe(publisher, header.track));
            }
            let Some(info) = webm::key_frame_info(&payload) else {
                tracing::warn!(recording = %self.recording.recording_id, %publisher,
                    track = header.track, "a video key frame that is neither VP8 nor VP9; not recorded");
                return Ok(Taken::Dropped);
            };
            TrackKind::Video {
                codec: info.codec,
                size: info.size.unwrap_or((0, 0)),
            }
        } else {
            TrackKind::Audio {
                channels: webm::opus_channels(&payload),
            }
        };
        let what = match header.track {
            TRACK_CAMERA => "camera",
            TRACK_SCREEN => "screen",
            _ => "microphone",
        };
        let name = format!("{} ({what})", self.name_of(names, publisher).await);
        let number = u64::try_from(tracks.len()).unwrap_or(u64::MAX) + 1;
        let spool_path = self.dir.join(format!("{number}.spool"));
        let mut spool = SpoolWriter::create(&spool_path).await?;
        spool.append(arrived_us, header.is_key(), &payload).await?;
        tracks.insert(
            key,
            TrackState {
                number,
                name,
                kind,
                layer: header.layer,
                first_ts: header.timestamp,
                anchor_us: arrived_us,
                first_us: arrived_us,
                last_us: arrived_us,
                frames: 1,
                spool_path,
                spool: Some(spool),
            },
        );
        Ok(Taken::Kept)
    }

    /// Muxes the spools, writes the file to the store, and measures it.
    async fn finish(
        &self,
        tracks: HashMap<(ParticipantId, u8), TrackState>,
    ) -> Result<FinishedRecording, String> {
        let mut tracks: Vec<TrackState> = tracks.into_values().collect();
        tracks.sort_by_key(|t| t.number);
        let mut mux_tracks = Vec::with_capacity(tracks.len());
        for track in &mut tracks {
            if let Some(spool) = track.spool.take() {
                spool
                    .finish()
                    .await
                    .map_err(|e| format!("a track's frames could not be written: {e}"))?;
            }
            mux_tracks.push(MuxTrack {
                number: track.number,
                name: track.name.clone(),
                kind: track.kind.clone(),
                spool: track.spool_path.clone(),
                first_us: track.first_us,
                last_us: track.last_us,
                frames: track.frames,
            });
        }
        let file = self.dir.join("recording.webm");
        let muxed = {
            let (tracks, title, file) = (mux_tracks.clone(), self.title.clone(), file.clone());
            tokio::task::spawn_blocking(move || webm::mux(&tracks, &title, &file))
                .await
                .map_err(|e| format!("the muxing stopped: {e}"))?
                .map_err(|e| e.to_string())?
        };
        let path = ObjectPath::from(self.recording.storage_path.as_str());
        upload(&self.storage, &path, &file)
            .await
            .map_err(|e| format!("the file could not be stored: {e}"))?;

        let mut video: Vec<&'static str> = Vec::new();
        let mut resolution = None;
        let mut audio = None;
        for track in &mux_tracks {
            match track.kind {
                TrackKind::Video { codec, size } => {
                    if !video.contains(&codec.name()) {
                        video.push(codec.name());
                    }
                    if resolution.is_none() && size != (0, 0) {
                        resolution = Some(format!("{}x{}", size.0, size.1));
                    }
                }
                TrackKind::Audio { .. } => audio = Some("Opus".to_owned()),
            }
        }
        let seconds = (muxed.duration_ms / 1000.0).round();
        Ok(FinishedRecording {
            duration_seconds: if seconds >= f64::from(i32::MAX) {
                i32::MAX
            } else {
                // Non-negative, integral and in range: exact.
                seconds as i32
            },
            file_size_bytes: i64::try_from(muxed.size).unwrap_or(i64::MAX),
            video_codec: (!video.is_empty()).then(|| video.join(",")),
            audio_codec: audio,
            resolution,
        })
    }
}

/// Copies the local file `file` to `path` in the store (a multipart upload for large
/// files).
async fn upload(storage: &Storage, path: &ObjectPath, file: &Path) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut source = tokio::fs::File::open(file).await?;
    let mut target = object_store::buffered::BufWriter::new(storage.store.clone(), path.clone());
    match tokio::io::copy(&mut source, &mut target).await {
        Ok(_) => target.shutdown().await,
        Err(error) => {
            let _ = target.abort().await;
            Err(error)
        }
    }
}

/// The service that finishes this process's recordings when Tavern shuts down.
pub fn service(recorder: Recorder) -> feature::Service {
    feature::Service::new("meetings-recorder", move |shutdown: CancellationToken| {
        let recorder = recorder.clone();
        async move {
            shutdown.cancelled().await;
            recorder.shutdown(Duration::from_secs(60)).await;
            Ok::<(), std::convert::Infallible>(())
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_link_key_depends_on_the_secret() {
        let a = MeetingsSecretKey::random(&mut rand::rng());
        let b = MeetingsSecretKey::random(&mut rand::rng());
        let sign = |k: &MeetingsSecretKey| hmac::sign(&link_key(k), b"x").as_ref().to_vec();
        assert_eq!(sign(&a), sign(&a));
        assert_ne!(sign(&a), sign(&b));
    }
}
