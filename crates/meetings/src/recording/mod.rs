//! Recordings of meetings with `allow_recording` (issue 14, point 4).
//!
//! A [`Recorder`] records a meeting the way a participant watches it: it takes a
//! one-time `recorder` connection token for a fresh id of its own that never joins the
//! meeting (the media handler admits such a token without a participant in the meeting;
//! only server-side code issues one), opens a media session on the meeting's media
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
//! their display name in the meeting, read from Redis (the participants' sessions the
//! controller keeps) beside the frame reading, which never waits for it: a new track's
//! frames are held until the name comes, for a second or 256 frames at most, after
//! which the track is named after the start of its participant's id (`Participant
//! 1a2b3c4d (camera)`). A participant who joins while recording adds
//! tracks; one who leaves ends theirs. Where a publisher sends several simulcast
//! layers, a track keeps the highest layer seen, switching up only at that layer's key
//! frame (a decoder needs one). A video track starts at its first key frame. A frame
//! sent before the last key frame taken (by its sequence number) is dropped: the
//! handler forwards each group of frames from a key frame on a stream of its own, read
//! at once with the others, so after a loss such a frame can arrive after the key
//! frame, and recorded there it would corrupt the picture.
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
//! server never sees the media; a recording running when it is turned on stops at the
//! next check), and a frame flagged end-to-end encrypted is dropped unread should one
//! arrive.
//!
//! # Life of a recording
//! `recording` while frames arrive: each track's frames are spooled to a local file
//! under the work directory ([`spool`]: the file says which track it holds, so a later
//! start can mux it), in a directory of its own whose `lock` file the process making
//! it holds locked. It stops when its host stops it, when the meeting would refuse it
//! now as a start is refused ([`refusal`], checked every
//! [`RecordingsConfig::check_every`] beside the frame reading, which a slow database
//! never holds up: the meeting ended, or its `allow_recording` was
//! turned off or end-to-end encryption on, which the ready row's `error_message`
//! says), when the media session closes, when a
//! frame cannot be spooled (a full disk: what was spooled is kept, and the ready row's
//! `error_message` says it stopped early), or when Tavern shuts down; then
//! `processing`: the spools are muxed into one WebM file ([`webm`]) and written to the
//! recordings store through `object_store` (local files by default, any `object_store`
//! URL when configured), at `{prefix}/{meeting_id}/{recording_id}.webm`. A muxing that
//! fails for want of disk space, a store that refuses the file and a database that
//! cannot mark it ready are tried again, the wait doubling from
//! [`RecordingsConfig::store_retry_first`] up to [`MAX_RETRY_WAIT`], for at most
//! [`RecordingsConfig::store_retry_for`]; the muxed file is kept until it is stored.
//! `ready` with the file's size, duration, codecs and resolution; or `failed` with the
//! reason (nothing was recorded, the store refused for too long, ...). A file stored
//! for a row that no longer waits for it (deleted, failed elsewhere) is deleted. The
//! row's status is the truth across replicas: a stop on another replica changes it,
//! and the recording replica's check sees that. The recording replica touches the row
//! (`updated_at`) at every check, while it records and while it finishes; a row left
//! `recording` or `processing` by a replica that stopped is failed with
//! [`STALE_MESSAGE`] once it has not been touched for [`RecordingsConfig::stale_after`]
//! (checked when the meeting's recordings are started, stopped or listed, and when its
//! page asks whether it is being recorded), so a crash never leaves a meeting
//! unrecordable, nor its page saying it is recorded.
//!
//! What a stopped server left in the work directory (a crash, or a shutdown that could
//! not wait for the muxing or the store) is taken up when Tavern starts again
//! ([`Recorder::recover`]): a recording whose row still waits for its file, or was
//! failed as stale meanwhile, is finished from its spools (its ready row saying
//! [`RECOVERED_NOTE`]); the files of one that cannot be finished are removed and its
//! row failed; nothing stays there for ever.
//!
//! # Download links
//! A ready recording's `download_url` is `/api/v1/recordings/{id}/download?expires=
//! {unix seconds}&signature={base64url}`, the signature HMAC-SHA256 over
//! `{id}\n{expires}` with a key derived (HKDF-SHA256) from `meetings_secret_key`; it
//! is valid [`RecordingsConfig::link_valid_for`] (1 hour by default).

pub mod spool;
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
use tracing::Instrument as _;

use self::spool::{SpoolReader, SpoolWriter, TrackMeta};
use self::webm::{MuxTrack, TrackKind};
use crate::auth::MeetingsSecretKey;
use crate::controller::MediaDirectory;
use crate::domain::{
    HandlerId, MeetingId, MeetingStatus, ParticipantId, RecordingId, RecordingStatus,
    ServiceConnection, UserId,
};
use crate::media::client::{MediaClient, MediaClientError, ReceivedFrame};
use crate::media::proto::{FLAG_E2E, FrameHeader, TRACK_AUDIO, TRACK_CAMERA, TRACK_SCREEN};
use crate::repo::{FinishedRecording, Meeting, NewRecording, Recording, RecordingRefusal};
use crate::{MeetingsError, Repo};

/// The path of a recording's download route.
pub const DOWNLOAD_PATH: &str = "/api/v1/recordings/{recording_id}/download";

/// The `error_message` of a recording whose replica stopped before finishing it.
pub const STALE_MESSAGE: &str = "the server making this recording stopped before finishing it";

/// The longest wait between two tries at storing a recording's file.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(5 * 60);

/// The `error_message` of a ready recording a stopped server left, finished at the
/// next start.
pub const RECOVERED_NOTE: &str = "the server making this recording stopped; it was finished when it started again, and its last moments may be missing";

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
    /// A recordings store to use as it is, with the `storage_bucket` its rows name,
    /// instead of opening `storage` (an embedding application's own store; tests).
    pub store: Option<(String, Arc<dyn ObjectStore>)>,
    /// How long a finished recording waits before its file is muxed or stored again
    /// after the disk or the store failed; each later wait doubles, up to
    /// [`MAX_RETRY_WAIT`].
    pub store_retry_first: Duration,
    /// How long a finished recording's file is tried again before the recording is
    /// failed (and its work files removed).
    pub store_retry_for: Duration,
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
            store: None,
            store_retry_first: Duration::from_secs(1),
            store_retry_for: Duration::from_secs(24 * 60 * 60),
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
    /// The meeting has no media handler because nobody is in its call: its state, not a
    /// fault of the server's.
    #[error("nobody is in the meeting yet: join it first, then record")]
    NoMedia,
    /// The meeting has participants but no media handler: none could take it when they
    /// joined (every one full, stopped or unreachable), a capacity problem of the
    /// server's. `participants` is how many are in the call.
    #[error("no media server can take this meeting right now; try again shortly")]
    NoMediaHandler {
        meeting: MeetingId,
        participants: usize,
    },
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

    /// Deletes the object at `path`; one already gone is no error.
    async fn delete(&self, path: &ObjectPath) -> Result<(), object_store::Error> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn object_path(&self, meeting: MeetingId, recording: RecordingId) -> ObjectPath {
        self.prefix
            .clone()
            .join(meeting.to_string())
            .join(format!("{recording}.webm"))
    }
}

/// The recordings store as the stored files' owner: where the retention job deletes a
/// recording's file with its row ([`crate::jobs::delete_expired_recordings`]). Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct RecordingFiles {
    /// `Err`: why the configured store is unusable.
    storage: Result<Storage, String>,
}

/// What [`RecordingFiles::delete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDeleted {
    /// The file is gone (deleted now, or it never was stored).
    Deleted,
    /// This server cannot reach the file: its bucket is not the configured store's, or
    /// no store is usable.
    Unreachable,
}

impl RecordingFiles {
    /// The store `config` names (see [`RecordingsConfig::storage`] and
    /// [`RecordingsConfig::store`]).
    pub fn new(config: &RecordingsConfig) -> RecordingFiles {
        let storage = match (&config.store, &config.storage) {
            (Some((bucket, store)), _) => Ok(Storage {
                store: store.clone(),
                bucket: bucket.clone(),
                prefix: ObjectPath::default(),
            }),
            (None, None) => Err("recordings are not configured on this server".to_owned()),
            (None, Some(setting)) => Storage::open(setting).map_err(|e| {
                tracing::warn!(error = %e, "the recordings store is unusable; recordings are refused");
                e.to_string()
            }),
        };
        RecordingFiles { storage }
    }

    /// Deletes the file a recording row names (its `storage_bucket` and
    /// `storage_path`). `Err`: the store failed, the file may still be there.
    pub async fn delete(&self, bucket: &str, path: &str) -> Result<FileDeleted, String> {
        let Ok(storage) = &self.storage else {
            return Ok(FileDeleted::Unreachable);
        };
        if storage.bucket != bucket {
            return Ok(FileDeleted::Unreachable);
        }
        storage
            .delete(&ObjectPath::from(path))
            .await
            .map(|()| FileDeleted::Deleted)
            .map_err(|e| e.to_string())
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
    files: RecordingFiles,
    config: RecordingsConfig,
    directory: MediaDirectory,
    work_dir: PathBuf,
    link_key: hmac::Key,
    /// The recordings this process is making, by id.
    running: Mutex<HashMap<RecordingId, Running>>,
    tasks: TaskTracker,
    /// Cancelled when Tavern shuts down: finishing stops waiting to try again.
    shutdown: CancellationToken,
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
        let files = RecordingFiles::new(&config);
        let storage = files.storage.clone();
        let work_dir = config
            .work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("tavern-recordings"));
        Recorder {
            inner: Arc::new(Inner {
                repo,
                clock,
                storage,
                files,
                directory: config.directory.clone().unwrap_or(directory),
                config,
                work_dir,
                link_key: link_key(secret),
                running: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
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
            Err(_) if inner.config.storage.is_none() && inner.config.store.is_none() => {
                return Err(RecordingError::NotConfigured);
            }
            Err(why) => return Err(RecordingError::Store(why.clone())),
        };
        let Some(handler) = inner.repo.meeting_media_handler(meeting.meeting_id).await? else {
            return Err(self.without_media_handler(meeting.meeting_id).await);
        };
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
        // The recorder's own id, never a participant's: its `recorder` token is
        // admitted without one in the meeting.
        let me = ParticipantId::random();
        let token = inner
            .repo
            .issue_service_token(meeting.meeting_id, me, ServiceConnection::Recorder)
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
        let lock = match make_work_dir(&inner.work_dir, recording_id).await {
            Ok(lock) => lock,
            Err(error) => {
                client.close();
                return Err(error.into());
            }
        };
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
            lock,
            running,
            track_names: std::sync::Mutex::default(),
        };
        inner.tasks.spawn(task.run(client));
        Ok(recording)
    }

    /// Why `meeting`, which has no media handler, cannot be recorded: nobody is in its
    /// call ([`RecordingError::NoMedia`]), or people are but no media handler could take
    /// the meeting ([`RecordingError::NoMediaHandler`]).
    async fn without_media_handler(&self, meeting: MeetingId) -> RecordingError {
        match self.inner.repo.participants(meeting).await {
            Ok(present) if present.is_empty() => RecordingError::NoMedia,
            Ok(present) => RecordingError::NoMediaHandler {
                meeting,
                participants: present.len(),
            },
            Err(error) => error.into(),
        }
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

    /// Takes up what a stopped Tavern left in the work directory: each recording's
    /// directory no live process holds (its `lock` file is locked while one uses it).
    /// A recording whose row still waits for its file (`recording`, `processing`, or
    /// failed meanwhile as [`STALE_MESSAGE`]) is finished from its spools in the
    /// background like any stopped one, its ready row saying [`RECOVERED_NOTE`]; one
    /// that cannot be (the store is unusable) is failed and its files removed; the
    /// files of one finished or deleted are removed. Returns the recordings being
    /// finished.
    pub async fn recover(&self) -> Vec<RecordingId> {
        let inner = &self.inner;
        let mut entries = match tokio::fs::read_dir(&inner.work_dir).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(error) => {
                tracing::warn!(%error, dir = %inner.work_dir.display(),
                    "could not read the recordings' work directory");
                return Vec::new();
            }
        };
        let mut resumed = Vec::new();
        loop {
            let entry = match entries.next_entry().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, dir = %inner.work_dir.display(),
                        "could not read the recordings' work directory");
                    break;
                }
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if !entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            // A start cut short before it recorded anything.
            if let Some(id) = name
                .strip_suffix(NEW_DIR_SUFFIX)
                .and_then(|id| RecordingId::parse(id).ok())
            {
                if let Ok(Some(lock)) = lock_work_dir(&dir).await {
                    if let Err(error) = tokio::fs::remove_dir_all(&dir).await {
                        tracing::warn!(recording = %id, %error, dir = %dir.display(),
                            "could not remove a recording's work files");
                    }
                    drop(lock);
                }
                continue;
            }
            let Ok(id) = RecordingId::parse(name) else {
                continue;
            };
            let lock = match lock_work_dir(&dir).await {
                Ok(Some(lock)) => lock,
                // Being made or finished by a live process.
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(recording = %id, %error, dir = %dir.display(),
                        "could not lock a recording's work directory");
                    continue;
                }
            };
            if self.take_up(id, dir, lock).await {
                resumed.push(id);
            }
        }
        resumed
    }

    /// [`Recorder::recover`] for one directory, locked; whether it is being finished.
    async fn take_up(&self, id: RecordingId, dir: PathBuf, lock: std::fs::File) -> bool {
        let inner = &self.inner;
        let row = match inner.repo.recording(id).await {
            Ok(row) => Some(row),
            Err(MeetingsError::Storage(store::StorageError::NotFound { .. })) => None,
            Err(error) => {
                tracing::warn!(recording = %id, %error,
                    "could not read a recording left unfinished; it is taken up at the next start");
                return false;
            }
        };
        let waiting = row.is_some_and(|r| {
            matches!(
                r.status,
                RecordingStatus::Recording | RecordingStatus::Processing
            ) || (r.status == RecordingStatus::Failed
                && r.error_message.as_deref() == Some(STALE_MESSAGE))
        });
        if waiting {
            match &inner.storage {
                Ok(storage) => match inner.repo.resume_recording(id, STALE_MESSAGE).await {
                    Ok(Some(recording)) => {
                        let title = match inner.repo.meeting(recording.meeting_id).await {
                            Ok(meeting) => meeting.display_name,
                            Err(_) => "Recording".to_owned(),
                        };
                        tracing::warn!(recording = %id, "a recording a stopped server left is being finished");
                        inner.tasks.spawn(
                            Finisher {
                                inner: inner.clone(),
                                recording,
                                title,
                                storage: storage.clone(),
                                dir,
                                _lock: lock,
                                note: Some(RECOVERED_NOTE.to_owned()),
                            }
                            .run(),
                        );
                        return true;
                    }
                    // Finished meanwhile.
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(recording = %id, %error,
                            "could not take up a recording left unfinished; it is taken up at the next start");
                        return false;
                    }
                },
                Err(why) => {
                    let message = format!("the recording could not be finished: {why}");
                    tracing::warn!(recording = %id, error = %message, "a recording a stopped server left failed");
                    if let Err(error) = inner
                        .repo
                        .fail_recording(id, &message, inner.clock.now())
                        .await
                    {
                        tracing::warn!(recording = %id, %error, "could not mark the recording failed");
                        return false;
                    }
                }
            }
        }
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {
                tracing::info!(recording = %id, dir = %dir.display(),
                    "the work files a stopped server left of a recording it cannot finish were removed");
            }
            Err(error) => {
                tracing::warn!(recording = %id, %error, dir = %dir.display(),
                    "could not remove a recording's work files");
            }
        }
        drop(lock);
        false
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
    /// them to be written. What is not finished by then (a long recording's muxing, a
    /// store that refuses the file) stays in the work directory and is finished at the
    /// next start ([`Recorder::recover`]).
    pub async fn shutdown(&self, within: Duration) {
        let inner = &self.inner;
        inner.shutdown.cancel();
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
            tracing::warn!(
                "recordings still being written at shutdown; they are finished at the next start"
            );
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

    /// Its recordings store, to delete recordings' files.
    pub fn files(&self) -> RecordingFiles {
        self.inner.files.clone()
    }

    /// The repository it records into.
    pub fn repo(&self) -> &Repo {
        &self.inner.repo
    }
}

/// What a recording's work directory is named while it is made.
const NEW_DIR_SUFFIX: &str = ".new";

/// Makes the work directory of `recording` under `work_dir`, its `lock` file locked:
/// made as `{recording_id}.new` and renamed once locked, so [`Recorder::recover`]
/// never takes a directory being made for one left behind.
async fn make_work_dir(work_dir: &Path, recording: RecordingId) -> std::io::Result<std::fs::File> {
    let (work_dir, name) = (work_dir.to_path_buf(), recording.to_string());
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&work_dir)?;
        let new = work_dir.join(format!("{name}{NEW_DIR_SUFFIX}"));
        std::fs::create_dir(&new)?;
        let file = std::fs::File::create(new.join("lock"))?;
        file.try_lock().map_err(std::io::Error::from)?;
        std::fs::rename(&new, work_dir.join(name))?;
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Takes the lock of the work directory `dir`, the file `lock` in it; `None` when a
/// live process (or another task of this one) holds it.
async fn lock_work_dir(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    let path = dir.join("lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(error)) => Err(error),
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Which frames of a track are recorded: those of the simulcast layer it keeps (the
/// highest seen, switched to at its key frame: a decoder needs one), and of those none
/// sent before the last key frame taken. The handler forwards each group of frames
/// from a key frame on a stream of its own, and the recorder reads the streams at once,
/// so after a loss a delta frame sent before a key frame can arrive after it; recorded
/// after it, it would corrupt the picture until the next key frame. Sequence numbers
/// count per (publisher, track, layer) and media session: a publisher whose media
/// session was lost opens a new one under the same id and counts from 0 again, so a
/// key frame far behind the last one taken (more than [`RESTART_BEHIND`], or the first
/// of a session) starts the track afresh. A lower layer is taken at its key frame once
/// the kept one has sent nothing for [`LOWER_LAYER_AFTER_US`]: it is all that comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Admission {
    /// The simulcast layer it keeps.
    layer: u8,
    /// The sequence number of the last key frame taken on that layer.
    key_seq: Option<u32>,
    /// When the last frame of that layer arrived (µs on the recording's timeline).
    kept_us: u64,
}

/// How many sequence numbers behind the last key frame taken a key frame is taken as
/// the start of a publisher's new media session rather than a late one.
const RESTART_BEHIND: u32 = 1024;

/// How long the kept layer must have sent nothing before a lower layer's key frame is
/// taken instead (µs).
const LOWER_LAYER_AFTER_US: u64 = 1_000_000;

/// What [`Admission::admit`] decided for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// Recorded.
    Take,
    /// Recorded, as the first frame of a publisher's new media session: its encoder
    /// timestamps may start again too.
    Restart,
    /// Not recorded.
    Drop,
}

#[cfg(test)]
impl Admit {
    fn taken(self) -> bool {
        self != Admit::Drop
    }
}

impl Admission {
    /// The admission of a track whose first frame is `first`, arrived at `arrived_us`.
    fn new(first: &FrameHeader, arrived_us: u64) -> Admission {
        Admission {
            layer: first.layer,
            key_seq: first.is_key().then_some(first.seq),
            kept_us: arrived_us,
        }
    }

    /// Whether the frame of `header`, arrived at `arrived_us`, is recorded (a key frame
    /// taken becomes the last).
    fn admit(&mut self, header: &FrameHeader, is_video: bool, arrived_us: u64) -> Admit {
        if is_video && header.layer != self.layer {
            // A higher layer replaces the kept one at its key frame; a lower one only
            // once the kept one has gone quiet.
            let quiet = arrived_us.saturating_sub(self.kept_us) >= LOWER_LAYER_AFTER_US;
            if header.is_key() && (header.layer > self.layer || quiet) {
                self.layer = header.layer;
                self.key_seq = Some(header.seq);
                self.kept_us = arrived_us;
                return Admit::Take;
            }
            return Admit::Drop;
        }
        self.kept_us = self.kept_us.max(arrived_us);
        if let Some(key) = self.key_seq
            && seq_before(header.seq, key)
        {
            let restart = header.is_key()
                && (header.seq == 0 || key.wrapping_sub(header.seq) > RESTART_BEHIND);
            if !restart {
                return Admit::Drop;
            }
            self.key_seq = Some(header.seq);
            return Admit::Restart;
        }
        if header.is_key() {
            self.key_seq = Some(header.seq);
        }
        Admit::Take
    }
}

/// Whether sequence number `a` was sent before `b` (wrapping past `u32::MAX`).
fn seq_before(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) > u32::MAX / 2
}

/// One track being recorded.
struct TrackState {
    /// Which of its frames are recorded.
    admission: Admission,
    /// The encoder timestamp of its first frame and where that frame is on the
    /// recording's timeline (µs).
    first_ts: u64,
    anchor_us: u64,
    last_us: u64,
    spool: Option<SpoolWriter>,
    /// Set while its publisher's name is being read: its spool is made once the name
    /// is known (it names the track), and its frames are held until then.
    naming: Option<Naming>,
}

/// `name (what)`, numbered from 2 while `taken` has it; then taken.
fn unique_name(taken: &mut std::collections::HashSet<String>, name: &str, what: &str) -> String {
    let mut candidate = format!("{name} ({what})");
    let mut number = 2u32;
    while taken.contains(&candidate) {
        candidate = format!("{name} ({what} {number})");
        number = number.saturating_add(1);
    }
    taken.insert(candidate.clone());
    candidate
}

/// A new track waiting for its publisher's name ([`TrackState::naming`]).
struct Naming {
    number: u64,
    kind: TrackKind,
    /// `camera`, `screen` or `microphone`.
    what: &'static str,
    /// When it began to wait.
    since: Instant,
    /// Its frames so far: where on the timeline (µs), whether a key frame, the payload.
    held: Vec<(u64, bool, Vec<u8>)>,
}

/// Frames a track holds at most while its publisher's name is read (about five
/// seconds of audio), and how long it waits for the name: past either, it is named
/// after the publisher's id.
const HELD_AT_MOST: usize = 256;
const NAME_WAIT: Duration = Duration::from_secs(1);

/// A track's name when its publisher's is not known: the start of its id.
fn unnamed(publisher: ParticipantId) -> String {
    format!("Participant {}", &publisher.to_string()[..8])
}

/// Reads the names of `meeting`'s participants (from Redis, as the controller keeps
/// them) whenever the frame reading asks for publishers it does not know, and answers
/// with every name found and the publishers asked for (an unreadable store answers no
/// names: those tracks are named after the ids). Runs beside the frame reading, which
/// never waits for it.
async fn read_names(
    inner: Arc<Inner>,
    meeting: MeetingId,
    mut asked: tokio::sync::mpsc::Receiver<ParticipantId>,
    answers: tokio::sync::mpsc::Sender<(HashMap<ParticipantId, String>, Vec<ParticipantId>)>,
) {
    while let Some(first) = asked.recv().await {
        let mut who = vec![first];
        while let Ok(more) = asked.try_recv() {
            who.push(more);
        }
        let names = match inner.repo.participants(meeting).await {
            Ok(sessions) => sessions
                .into_iter()
                .map(|s| (s.participant_id, s.display_name))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "could not read the participants' names; their tracks are named after their ids");
                HashMap::new()
            }
        };
        if answers.send((names, who)).await.is_err() {
            return;
        }
    }
}

/// A running recording.
struct Task {
    inner: Arc<Inner>,
    recording: Recording,
    title: String,
    storage: Storage,
    dir: PathBuf,
    /// The work directory's lock, held while this process uses it.
    lock: std::fs::File,
    running: Running,
    /// The names its tracks were given: a name already taken (a host who reloaded the
    /// page publishes anew, as a new participant of the same name) gets a number.
    track_names: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// What a received frame did.
enum Taken {
    Kept,
    /// Kept by a new track whose publisher's name is not known here: read it.
    Unnamed(ParticipantId),
    /// Not recorded (yet): ask the publisher for a key frame on the track.
    WantKeyframe(ParticipantId, u8),
    Dropped,
}

/// Why a recording stopped, and what its row should say about it once ready.
struct Stop {
    why: &'static str,
    note: Option<String>,
}

impl Stop {
    fn plain(why: &'static str) -> Stop {
        Stop { why, note: None }
    }
}

impl Task {
    async fn run(self, mut client: MediaClient) {
        let id = self.recording.recording_id;
        let mut tracks: HashMap<(ParticipantId, u8), TrackState> = HashMap::new();
        let mut names: HashMap<ParticipantId, String> = HashMap::new();
        let mut asked: std::collections::HashSet<(ParticipantId, u8)> = Default::default();
        // Publishers' names are read apart from the frames too.
        let (ask_tx, ask_rx) = tokio::sync::mpsc::channel(64);
        let (named_tx, mut named) = tokio::sync::mpsc::channel(4);
        let _naming = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            read_names(
                self.inner.clone(),
                self.recording.meeting_id,
                ask_rx,
                named_tx,
            )
            .in_current_span(),
        ));
        let mut naming: std::collections::HashSet<ParticipantId> = Default::default();
        let mut overdue = tokio::time::interval(NAME_WAIT / 4);
        overdue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = Instant::now();
        // The stores are looked at apart from the frames: a slow or unavailable
        // database never holds up their reading.
        let (ended_tx, mut ended) = tokio::sync::mpsc::channel(1);
        let watching = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            watch(self.inner.clone(), self.recording.clone(), ended_tx).in_current_span(),
        ));
        let stop = loop {
            tokio::select! {
                () = self.running.stop.cancelled() => break Stop::plain("stopped"),
                Some(stop) = ended.recv() => break stop,
                _ = overdue.tick(), if !naming.is_empty() => {
                    // A name not read in time: those tracks are named after the ids.
                    let late: Vec<ParticipantId> = tracks
                        .iter()
                        .filter(|(_, t)| t.naming.as_ref().is_some_and(|n| n.since.elapsed() >= NAME_WAIT))
                        .map(|((publisher, _), _)| *publisher)
                        .collect();
                    let mut failed = None;
                    for publisher in late {
                        tracing::info!(recording = %id, %publisher, "its name was not read in time; its tracks are named after its id");
                        if let Err(error) = self.name_tracks(&mut tracks, publisher, &unnamed(publisher)).await {
                            failed = Some(error);
                            break;
                        }
                    }
                    if let Some(error) = failed {
                        break self.spool_failed(&error);
                    }
                }
                Some((found, who)) = named.recv() => {
                    names.extend(found);
                    let mut failed = None;
                    for publisher in who {
                        naming.remove(&publisher);
                        let name = names.get(&publisher).cloned().unwrap_or_else(|| unnamed(publisher));
                        if let Err(error) = self.name_tracks(&mut tracks, publisher, &name).await {
                            failed = Some(error);
                            break;
                        }
                    }
                    if let Some(error) = failed {
                        break self.spool_failed(&error);
                    }
                }
                frame = client.next_frame() => match frame {
                    Some(Ok(frame)) => {
                        // When it arrived, not when this loop got to it.
                        let since = frame.received_at.saturating_duration_since(started.into_std());
                        let at = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
                        match self.take(&mut tracks, &names, frame, at).await {
                            Ok(Taken::Unnamed(publisher)) => {
                                self.running.frames.fetch_add(1, Ordering::Relaxed);
                                if naming.insert(publisher) && ask_tx.try_send(publisher).is_err() {
                                    // Not asked after all: named after its id.
                                    naming.remove(&publisher);
                                    let name = unnamed(publisher);
                                    if let Err(error) = self.name_tracks(&mut tracks, publisher, &name).await {
                                        break self.spool_failed(&error);
                                    }
                                }
                            }
                            Ok(Taken::WantKeyframe(publisher, track)) => {
                                if asked.insert((publisher, track)) {
                                    let _ = client.request_keyframe(publisher, track).await;
                                }
                            }
                            Ok(Taken::Kept) => {
                                self.running.frames.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Taken::Dropped) => {}
                            Err(error) => break self.spool_failed(&error),
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(recording = %id, %error, "a bad frame was not recorded");
                    }
                    None => break Stop::plain("the media session closed"),
                },
            }
        };
        drop(watching);
        client.close();
        // Tracks still waiting for a name keep what they hold, named after the ids.
        let waiting: Vec<ParticipantId> = tracks
            .iter()
            .filter(|(_, t)| t.naming.is_some())
            .map(|((publisher, _), _)| *publisher)
            .collect();
        for publisher in waiting {
            let name = names
                .get(&publisher)
                .cloned()
                .unwrap_or_else(|| unnamed(publisher));
            if let Err(error) = self.name_tracks(&mut tracks, publisher, &name).await {
                tracing::warn!(recording = %id, %error, "a track's held frames could not be written");
            }
        }
        tracing::info!(recording = %id, reason = stop.why, "recording stopping");
        let now = self.inner.clock.now();
        if let Err(error) = self.inner.repo.stop_recording(id, now).await {
            tracing::warn!(recording = %id, %error, "could not mark the recording processing");
        }
        // Everything buffered onto the disk; a write that fails here cuts the track's
        // last frame short, and reading it back ends the track there.
        for track in tracks.into_values() {
            if let Some(spool) = track.spool
                && let Err(error) = spool.finish().await
            {
                tracing::warn!(recording = %id, %error, "a track's last frames could not be written");
            }
        }
        let Task {
            inner,
            recording,
            title,
            storage,
            dir,
            lock,
            ..
        } = self;
        Finisher {
            inner: inner.clone(),
            recording,
            title,
            storage,
            dir,
            _lock: lock,
            note: stop.note,
        }
        .run()
        .await;
        inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    }

    /// What a frame that could not be written to the work directory stops the
    /// recording with (what was spooled so far is kept and becomes the file).
    fn spool_failed(&self, error: &std::io::Error) -> Stop {
        tracing::error!(recording = %self.recording.recording_id, %error, dir = %self.dir.display(),
            "a frame could not be written to the work directory; the recording stops here");
        Stop {
            why: "a frame could not be spooled",
            note: Some(format!(
                "the recording stopped early: a frame could not be written to the server's work directory ({error}); the file holds what was recorded until then"
            )),
        }
    }

    /// Names `publisher`'s tracks waiting for a name `name`: their spools are made and
    /// the frames they held written.
    async fn name_tracks(
        &self,
        tracks: &mut HashMap<(ParticipantId, u8), TrackState>,
        publisher: ParticipantId,
        name: &str,
    ) -> std::io::Result<()> {
        for ((owner, _), track) in tracks.iter_mut() {
            if *owner == publisher {
                self.open_track(track, name).await?;
            }
        }
        Ok(())
    }

    /// `name (what)`, or `name (what 2)`, `(what 3)`, … when a track of this recording
    /// already has it; the name returned is taken.
    fn unique_track_name(&self, name: &str, what: &str) -> String {
        let mut taken = self
            .track_names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        unique_name(&mut taken, name, what)
    }

    /// Makes the spool of `track` waiting for a name, named after publisher `name`, and
    /// writes the frames it held; nothing for a track that has its spool.
    async fn open_track(&self, track: &mut TrackState, name: &str) -> std::io::Result<()> {
        let Some(Naming {
            number,
            kind,
            what,
            held,
            ..
        }) = track.naming.take()
        else {
            return Ok(());
        };
        let spool_path = self.dir.join(format!("{number}.spool"));
        let meta = TrackMeta {
            number,
            name: self.unique_track_name(name, what),
            kind,
        };
        let mut spool = SpoolWriter::create(&spool_path, &meta).await?;
        for (at, key, payload) in held {
            spool.append(at, key, &payload).await?;
        }
        track.spool = Some(spool);
        Ok(())
    }

    /// Records one received frame (or says why not).
    async fn take(
        &self,
        tracks: &mut HashMap<(ParticipantId, u8), TrackState>,
        names: &HashMap<ParticipantId, String>,
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
            match track.admission.admit(&header, is_video, arrived_us) {
                Admit::Take => {}
                Admit::Restart => {
                    // Its timeline goes on from where the frame arrived.
                    track.first_ts = header.timestamp;
                    track.anchor_us = arrived_us.max(track.last_us);
                }
                Admit::Drop => return Ok(Taken::Dropped),
            }
            let at = track
                .anchor_us
                .saturating_add(header.timestamp.saturating_sub(track.first_ts))
                .max(track.last_us);
            track.last_us = at;
            if let Some(naming) = track.naming.as_mut() {
                naming.held.push((at, header.is_key(), payload));
                if naming.held.len() >= HELD_AT_MOST {
                    self.open_track(track, &unnamed(publisher)).await?;
                }
                return Ok(Taken::Kept);
            }
            if let Some(spool) = track.spool.as_mut() {
                spool.append(at, header.is_key(), &payload).await?;
            }
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
        let number = u64::try_from(tracks.len()).unwrap_or(u64::MAX) + 1;
        let mut track = TrackState {
            admission: Admission::new(&header, arrived_us),
            first_ts: header.timestamp,
            anchor_us: arrived_us,
            last_us: arrived_us,
            spool: None,
            naming: Some(Naming {
                number,
                kind,
                what,
                held: vec![(arrived_us, header.is_key(), payload)],
                since: Instant::now(),
            }),
        };
        // Named at once when its publisher's name is known; else the frames are held
        // while the name is read.
        let taken = match names.get(&publisher) {
            Some(name) => {
                self.open_track(&mut track, name).await?;
                Taken::Kept
            }
            None => Taken::Unnamed(publisher),
        };
        tracks.insert(key, track);
        Ok(taken)
    }
}

/// Looks at the stores every `check_every` while `recording` is made: tells `ended`
/// why it should end once it should ([`finished_elsewhere`]), and touches its row
/// meanwhile. Runs beside the frame reading, which it never holds up.
async fn watch(inner: Arc<Inner>, recording: Recording, ended: tokio::sync::mpsc::Sender<Stop>) {
    let mut check = tokio::time::interval(inner.config.check_every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        check.tick().await;
        if let Some(stop) = finished_elsewhere(&inner, &recording).await {
            let _ = ended.send(stop).await;
            return;
        }
        touch(&inner, recording.recording_id).await;
    }
}

/// Why `recording` should end now, seen in the stores: it was stopped (on any
/// replica), or its meeting refuses a recording now as a start would be refused
/// ([`refusal`]: it ended, its `allow_recording` was turned off, or end-to-end
/// encryption on).
async fn finished_elsewhere(inner: &Inner, recording: &Recording) -> Option<Stop> {
    let repo = &inner.repo;
    match repo.recording(recording.recording_id).await {
        Ok(row) if row.status != RecordingStatus::Recording => {
            return Some(Stop::plain("stopped"));
        }
        Ok(_) => {}
        Err(MeetingsError::Storage(store::StorageError::NotFound { .. })) => {
            return Some(Stop::plain("its row was deleted"));
        }
        Err(error) => tracing::warn!(%error, "could not read the recording's status"),
    }
    match repo.meeting(recording.meeting_id).await {
        Ok(meeting) => match refusal(&meeting)? {
            RecordingRefusal::Ended => Some(Stop::plain("the meeting ended")),
            refused => {
                let why = refusal_message(refused);
                Some(Stop {
                    why,
                    note: Some(format!("the recording stopped because {why}")),
                })
            }
        },
        Err(error) => {
            tracing::warn!(%error, "could not read the recorded meeting");
            None
        }
    }
}

/// The sign of life of a recording this replica is making or finishing.
async fn touch(inner: &Inner, id: RecordingId) {
    if let Err(error) = inner.repo.touch_recording(id).await {
        tracing::warn!(recording = %id, %error, "could not mark the recording alive");
    }
}

/// How a stopped recording's finishing ended.
enum Outcome {
    /// Stored and marked ready.
    Ready(FinishedRecording),
    /// It cannot be finished, for this reason.
    Failed(String),
    /// Its row is no longer waiting for a file (deleted, or failed elsewhere): its
    /// work files and any stored file go.
    Gone(String),
    /// Tavern is shutting down: its work files stay for the next start.
    Interrupted,
}

/// Finishes a stopped recording from its work directory: muxes its spools into one
/// file, stores it and marks the row `ready`, retrying what failed for want of disk
/// space, of the store or of the database with a growing wait, for at most
/// [`RecordingsConfig::store_retry_for`]; the muxed file is kept until it is stored.
/// The row is touched all along, so no replica takes it for stale. Used by a
/// recording that stopped, and by one a stopped server left ([`Recorder::recover`]).
struct Finisher {
    inner: Arc<Inner>,
    recording: Recording,
    title: String,
    storage: Storage,
    dir: PathBuf,
    /// The work directory's lock, held until its files are removed.
    _lock: std::fs::File,
    /// What the ready row's `error_message` says (why it stopped early).
    note: Option<String>,
}

impl Finisher {
    async fn run(self) {
        let id = self.recording.recording_id;
        let outcome = self.keep_alive(self.finish()).await;
        match outcome {
            Outcome::Ready(done) => {
                tracing::info!(recording = %id, bytes = done.file_size_bytes,
                    seconds = done.duration_seconds, "recording ready");
            }
            Outcome::Failed(message) => {
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
            Outcome::Gone(why) => {
                tracing::info!(recording = %id, reason = %why, "the recording is no longer finished here");
            }
            Outcome::Interrupted => {
                tracing::info!(recording = %id, dir = %self.dir.display(),
                    "shutting down: the recording is finished at the next start");
                return;
            }
        }
        if let Err(error) = tokio::fs::remove_dir_all(&self.dir).await {
            tracing::warn!(recording = %id, %error, dir = %self.dir.display(),
                "could not remove the recording's work files");
        }
    }

    /// Runs `work`, touching the row meanwhile.
    async fn keep_alive<T>(&self, work: impl Future<Output = T>) -> T {
        let mut check = tokio::time::interval(self.inner.config.check_every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = check.tick() => touch(&self.inner, self.recording.recording_id).await,
            }
        }
    }

    async fn finish(&self) -> Outcome {
        let id = self.recording.recording_id;
        let file = self.dir.join("recording.webm");
        let mut done: Option<FinishedRecording> = None;
        let mut stored = false;
        let mut wait = self.inner.config.store_retry_first;
        let mut failing_since: Option<Instant> = None;
        if let Ok(Some(outcome)) = self.wanted(false).await {
            return outcome;
        }
        loop {
            let error = match self.attempt(&file, &mut done, &mut stored).await {
                Ok(outcome) => return outcome,
                Err(error) => error,
            };
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.inner.config.store_retry_for {
                return Outcome::Failed(format!(
                    "{error} (tried for {} minutes)",
                    since.elapsed().as_secs() / 60
                ));
            }
            tracing::warn!(recording = %id, %error, retry_in = ?wait,
                "the recording's file is not stored yet; trying again");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.shutdown.cancelled() => return Outcome::Interrupted,
            }
            wait = wait.saturating_mul(2).min(MAX_RETRY_WAIT);
            // Only while the row still waits for its file (the database may be what
            // failed: the next attempt says).
            if let Ok(Some(outcome)) = self.wanted(stored).await {
                return outcome;
            }
        }
    }

    /// Whether the row still waits for this file: `None` yes (a row still `recording`,
    /// its stop not written for a failing database, or failed as [`STALE_MESSAGE`] when
    /// its touches failed, is marked `processing` now);
    /// `Some` no, and how the finishing ends (a stored file that is nobody's is deleted;
    /// a ready row's never). `Err`: not known now.
    async fn wanted(&self, stored: bool) -> Result<Option<Outcome>, String> {
        let id = self.recording.recording_id;
        let repo = &self.inner.repo;
        match repo.recording(id).await {
            Ok(row) => match row.status {
                RecordingStatus::Processing => Ok(None),
                RecordingStatus::Recording => {
                    repo.stop_recording(id, self.inner.clock.now())
                        .await
                        .map_err(|e| format!("could not mark the recording processing: {e}"))?;
                    Ok(None)
                }
                RecordingStatus::Ready => Ok(Some(Outcome::Gone("it is ready".to_owned()))),
                // Taken for left behind (its touches failed for a while): it is not.
                RecordingStatus::Failed if row.error_message.as_deref() == Some(STALE_MESSAGE) => {
                    match repo.resume_recording(id, STALE_MESSAGE).await {
                        Ok(Some(_)) => Ok(None),
                        Ok(None) => Err("the recording changed meanwhile".to_owned()),
                        Err(error) => {
                            Err(format!("could not take the recording up again: {error}"))
                        }
                    }
                }
                RecordingStatus::Failed => Ok(Some(
                    self.gone(stored, "it was failed elsewhere".to_owned())
                        .await,
                )),
            },
            Err(MeetingsError::Storage(store::StorageError::NotFound { .. })) => Ok(Some(
                self.gone(stored, "its row was deleted".to_owned()).await,
            )),
            Err(error) => Err(format!("could not read the recording: {error}")),
        }
    }

    /// One try at what is left to do: mux, store, mark ready. `Err`: a failure worth
    /// trying again.
    async fn attempt(
        &self,
        file: &Path,
        done: &mut Option<FinishedRecording>,
        stored: &mut bool,
    ) -> Result<Outcome, String> {
        let id = self.recording.recording_id;
        let measured = match done {
            Some(measured) => measured.clone(),
            None => {
                let muxed = {
                    let (dir, title, file) =
                        (self.dir.clone(), self.title.clone(), file.to_path_buf());
                    tokio::task::spawn_blocking(move || mux_dir(&dir, &title, &file))
                        .await
                        .map_err(|e| format!("the muxing stopped: {e}"))?
                };
                let measured = match muxed {
                    Ok((muxed, tracks)) => measure(&muxed, &tracks, self.note.clone()),
                    Err(error @ (webm::MuxError::Empty | webm::MuxError::Encode(_))) => {
                        return Ok(Outcome::Failed(error.to_string()));
                    }
                    Err(webm::MuxError::Io(error)) => {
                        // Room for the next try.
                        let _ = tokio::fs::remove_file(file).await;
                        return Err(format!(
                            "the recording's file could not be written: {error}"
                        ));
                    }
                };
                *done = Some(measured.clone());
                measured
            }
        };
        let path = ObjectPath::from(self.recording.storage_path.as_str());
        if !*stored {
            upload(&self.storage, &path, file)
                .await
                .map_err(|e| format!("the file could not be stored: {e}"))?;
            *stored = true;
        }
        match self.inner.repo.finish_recording(id, &measured).await {
            Ok(Some(_)) => Ok(Outcome::Ready(measured)),
            Ok(None) => match self.wanted(true).await? {
                Some(outcome) => Ok(outcome),
                None => Err("the recording was not processing yet".to_owned()),
            },
            Err(error) => Err(format!("could not mark the recording ready: {error}")),
        }
    }

    /// The row no longer waits for this file: a stored copy would be nobody's, and
    /// goes.
    async fn gone(&self, stored: bool, why: String) -> Outcome {
        if stored {
            let path = ObjectPath::from(self.recording.storage_path.as_str());
            if let Err(error) = self.storage.delete(&path).await {
                tracing::warn!(recording = %self.recording.recording_id, %error, %path,
                    "could not delete the stored file of a recording that was no longer wanted");
            }
        }
        Outcome::Gone(why)
    }
}

/// Muxes the spools in `dir` into a WebM file at `out` (blocking): what it wrote, and
/// its tracks. A file that is not a spool (its header cut short by a crash) is left
/// out.
fn mux_dir(
    dir: &Path,
    title: &str,
    out: &Path,
) -> Result<(webm::Muxed, Vec<MuxTrack>), webm::MuxError> {
    let mut tracks = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("spool") {
            continue;
        }
        let reader = match SpoolReader::open(&path) {
            Ok(reader) => reader,
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                tracing::warn!(%error, spool = %path.display(), "not a track's spool; left out");
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let meta = reader.meta().clone();
        let stats = reader.stats()?;
        if stats.cut {
            tracing::warn!(track = %meta.name, spool = %path.display(),
                "a track's last frame was cut short (a failed write or a crash); the track ends before it");
        }
        tracks.push(MuxTrack {
            number: meta.number,
            name: meta.name,
            kind: meta.kind,
            spool: path,
            first_us: stats.first_us,
            last_us: stats.last_us,
            frames: stats.frames,
        });
    }
    tracks.sort_by_key(|t| t.number);
    let muxed = webm::mux(&tracks, title, out)?;
    Ok((muxed, tracks))
}

/// What a muxed file measures, for its row.
fn measure(muxed: &webm::Muxed, tracks: &[MuxTrack], note: Option<String>) -> FinishedRecording {
    let mut video: Vec<&'static str> = Vec::new();
    let mut resolution = None;
    let mut audio = None;
    for track in tracks.iter().filter(|t| t.frames > 0) {
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
    FinishedRecording {
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
        note,
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

/// The service that takes up the recordings a stopped Tavern left unfinished when it
/// starts ([`Recorder::recover`]), and finishes this process's recordings when Tavern
/// shuts down.
pub fn service(recorder: Recorder) -> feature::Service {
    feature::Service::new("meetings-recorder", move |shutdown: CancellationToken| {
        let recorder = recorder.clone();
        async move {
            recorder.recover().await;
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

    /// A host who reloads publishes anew under the same name: the recording's tracks
    /// keep names of their own.
    #[test]
    fn a_track_name_already_taken_gets_a_number() {
        let mut taken = std::collections::HashSet::new();
        assert_eq!(unique_name(&mut taken, "Ana", "camera"), "Ana (camera)");
        assert_eq!(
            unique_name(&mut taken, "Ana", "microphone"),
            "Ana (microphone)"
        );
        assert_eq!(unique_name(&mut taken, "Ana", "camera"), "Ana (camera 2)");
        assert_eq!(unique_name(&mut taken, "Ana", "camera"), "Ana (camera 3)");
        assert_eq!(unique_name(&mut taken, "Bo", "camera"), "Bo (camera)");
    }

    fn header(key: bool, layer: u8, seq: u32) -> FrameHeader {
        FrameHeader {
            track: TRACK_CAMERA,
            flags: if key {
                crate::media::proto::FLAG_KEY
            } else {
                0
            },
            layer,
            timestamp: u64::from(seq) * 33_333,
            seq,
        }
    }

    #[test]
    fn a_frame_sent_before_the_last_key_frame_taken_is_dropped() {
        let mut track = Admission::new(&header(true, 0, 0), 0);
        assert!(track.admit(&header(false, 0, 1), true, 0).taken());
        // Key 30 arrives before delta 29 (their streams were read at once).
        assert!(track.admit(&header(true, 0, 30), true, 0).taken());
        assert!(!track.admit(&header(false, 0, 29), true, 0).taken());
        assert!(track.admit(&header(false, 0, 31), true, 0).taken());
        // An older key frame arriving late is no newer start either.
        assert!(!track.admit(&header(true, 0, 2), true, 0).taken());
        assert!(track.admit(&header(false, 0, 32), true, 0).taken());
        // A higher layer is taken from its key frame; its own earlier frames and the
        // lower layer's are dropped.
        assert!(!track.admit(&header(false, 1, 90), true, 0).taken());
        assert!(track.admit(&header(true, 1, 100), true, 0).taken());
        assert!(!track.admit(&header(false, 1, 99), true, 0).taken());
        assert!(!track.admit(&header(false, 0, 33), true, 0).taken());
        assert!(track.admit(&header(false, 1, 101), true, 0).taken());
        // Sequence numbers wrap.
        let mut wrapping = Admission::new(&header(true, 0, u32::MAX - 1), 0);
        assert!(wrapping.admit(&header(false, 0, u32::MAX), true, 0).taken());
        assert!(wrapping.admit(&header(true, 0, 1), true, 0).taken());
        assert!(!wrapping.admit(&header(false, 0, u32::MAX), true, 0).taken());
        assert!(wrapping.admit(&header(false, 0, 2), true, 0).taken());
    }

    #[test]
    fn a_publisher_that_restarted_its_media_session_is_recorded_from_its_new_key_frame() {
        // Its new session counts from 0 again, far behind the last key frame taken.
        let mut video = Admission::new(&header(true, 0, 90_000), 0);
        assert!(video.admit(&header(false, 0, 90_001), true, 0).taken());
        assert_eq!(video.admit(&header(true, 0, 0), true, 0), Admit::Restart);
        assert!(video.admit(&header(false, 0, 1), true, 0).taken());
        // A late frame of the new session before its last key frame is still dropped.
        assert!(video.admit(&header(true, 0, 40), true, 0).taken());
        assert!(!video.admit(&header(false, 0, 39), true, 0).taken());
        // Audio: every frame is a key frame.
        let mut audio = Admission::new(&header(true, 0, 90_000), 0);
        assert_eq!(audio.admit(&header(true, 0, 0), false, 0), Admit::Restart);
        assert!(audio.admit(&header(true, 0, 1), false, 0).taken());
        // A session lost within its first 1,024 frames: its successor's first frame.
        let mut short = Admission::new(&header(true, 0, 300), 0);
        // A key frame only a little behind is a late one, not a restart.
        assert!(!short.admit(&header(true, 0, 250), true, 0).taken());
        assert_eq!(short.admit(&header(true, 0, 0), true, 0), Admit::Restart);
        assert!(short.admit(&header(false, 0, 1), true, 0).taken());
    }

    #[test]
    fn a_lower_layer_is_taken_at_its_key_frame_once_the_kept_one_has_gone_quiet() {
        let second = 1_000_000;
        let mut track = Admission::new(&header(true, 1, 0), 0);
        assert!(track.admit(&header(false, 1, 1), true, 33_000).taken());
        // A lower layer's key frame while the kept layer still comes: not taken.
        assert!(!track.admit(&header(true, 0, 0), true, 40_000).taken());
        assert!(track.admit(&header(false, 1, 2), true, 66_000).taken());
        // The kept layer stops (the handler sends the lower one only): its next key
        // frame is taken, then its delta frames.
        assert!(
            !track
                .admit(&header(false, 0, 1), true, 66_000 + second / 2)
                .taken()
        );
        assert!(
            track
                .admit(&header(true, 0, 30), true, 66_000 + second)
                .taken()
        );
        assert!(
            track
                .admit(&header(false, 0, 31), true, 100_000 + second)
                .taken()
        );
        // A late frame of the layer left is dropped; a higher one is taken again at its
        // key frame.
        assert!(
            !track
                .admit(&header(false, 1, 3), true, 110_000 + second)
                .taken()
        );
        assert!(track.admit(&header(true, 1, 60), true, 2 * second).taken());
        assert!(!track.admit(&header(false, 0, 32), true, 2 * second).taken());
    }

    #[test]
    fn the_link_key_depends_on_the_secret() {
        let a = MeetingsSecretKey::random(&mut rand::rng());
        let b = MeetingsSecretKey::random(&mut rand::rng());
        let sign = |k: &MeetingsSecretKey| hmac::sign(&link_key(k), b"x").as_ref().to_vec();
        assert_eq!(sign(&a), sign(&a));
        assert_ne!(sign(&a), sign(&b));
    }
}
