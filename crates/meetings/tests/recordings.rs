//! Recordings end to end: the meetings API served over real PostgreSQL and Redis, a
//! real media handler on 127.0.0.1, two participants publishing VP8 and Opus frames
//! with real media clients, the recorder joining the handler like a participant, and
//! the WebM file it writes read back by a real demuxer (`mkvmerge -J`, Debian package
//! `mkvtoolnix`). Every wait has a deadline; nothing sleeps to synchronise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use meetings::auth::MeetingsSecretKey;
use meetings::controller::MediaDirectory;
use meetings::domain::{DisplayName, HandlerId, Liveness, MeetingId, ParticipantId, Region};
use meetings::media::client::MediaClient;
use meetings::media::proto::{FLAG_E2E, FLAG_KEY, TRACK_AUDIO, TRACK_CAMERA, TRACK_SCREEN};
use meetings::media::{HandlerConfig, Load, MediaHandler};
use meetings::recording::RecordingsConfig;
use meetings::repo::JoinRequest;
use meetings::{MeetingsConfig, Repo};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use testkit::{World, eventually};
use tokio_util::sync::CancellationToken;

/// Video frames each participant sends (30 per second) and audio packets (50 per
/// second): two seconds of each.
const VIDEO_FRAMES: u64 = 60;
/// Every test account's password.
const PASSWORD: &str = "correct horse battery staple";
const VIDEO_INTERVAL_US: u64 = 33_333;
const AUDIO_PACKETS: u64 = 100;
const AUDIO_INTERVAL_US: u64 = 20_000;

/// The meetings API, a media handler and the directory the recorder finds it in.
struct Site {
    world: World,
    /// The site's context (its sessions at its address).
    ctx: feature::Context,
    repo: Repo,
    base: String,
    http: reqwest::Client,
    load: Load,
    handler: HandlerId,
    endpoint: String,
    certificate_hash: String,
    storage: PathBuf,
    dirs: tempfile::TempDir,
    shutdown: CancellationToken,
}

async fn site() -> Site {
    site_with(|_| {}).await
}

/// The site with its recordings settings changed by `adjust`.
async fn site_with(adjust: impl FnOnce(&mut RecordingsConfig)) -> Site {
    let world = World::with_postgres().await;
    let dirs = tempfile::tempdir().unwrap();
    let storage = dirs.path().join("recordings");
    let directory = MediaDirectory::default();
    let mut recordings = RecordingsConfig {
        storage: Some(storage.display().to_string()),
        work_dir: Some(dirs.path().join("work")),
        check_every: Duration::from_millis(200),
        directory: Some(directory.clone()),
        ..RecordingsConfig::default()
    };
    adjust(&mut recordings);
    let config = MeetingsConfig {
        secret_key: Some(MeetingsSecretKey::generate().unwrap()),
        recordings,
        ..MeetingsConfig::default()
    };
    // Served at the context's public URL: the sessions check a browser's origin.
    let testkit::Listening {
        listener,
        base,
        ctx,
    } = world.listen().await;
    let mut feature = meetings::feature(&ctx, config);
    world.migrate(std::slice::from_ref(&feature)).await;
    for work in &feature.startup {
        work.run().await.unwrap();
    }
    let router = feature.routes.take().unwrap();
    tokio::spawn(web::serve_with(
        listener,
        router,
        web::ServerConfig::default(),
        std::future::pending(),
    ));

    let repo = Repo::from_context(&ctx);
    let handler = HandlerId::parse("mh-recordings").unwrap();
    let mut media = HandlerConfig::new(handler.clone());
    media.listen = "127.0.0.1:0".parse().unwrap();
    media.heartbeat_every = Duration::from_millis(200);
    // Room for every frame of the test in each subscriber's queue: the recording must
    // not lose frames to a burst sent as fast as the loopback takes it.
    media.subscriber_queue = 4096;
    media.directory = Some(directory);
    let bound = MediaHandler::bind(repo.clone(), media).await.unwrap();
    let endpoint = bound.endpoint();
    let certificate_hash = bound.certificate_hash().to_owned();
    let load = bound.load();
    let shutdown = CancellationToken::new();
    tokio::spawn(bound.run(shutdown.clone()));
    eventually("the media handler registers", || {
        let (repo, id) = (repo.clone(), handler.clone());
        async move {
            let loads = repo
                .handler_loads(&Region::local(), &Liveness::default())
                .await
                .ok()?;
            loads.iter().any(|h| h.handler_id == id).then_some(())
        }
    })
    .await;
    Site {
        world,
        ctx,
        repo,
        base,
        http: reqwest::Client::new(),
        load,
        handler,
        endpoint,
        certificate_hash,
        storage,
        dirs,
        shutdown,
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What [`Site::recording_alice`] sets up.
struct Recording {
    /// The host's access token.
    host: String,
    meeting: MeetingId,
    alice_id: ParticipantId,
    alice: MediaClient,
    /// The recording's id.
    id: String,
}

impl Site {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /api/v1/meetings/{meeting}/recordings` with `token`: the status and body.
    async fn start_recording(&self, meeting: MeetingId, token: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/api/v1/meetings/{meeting}/recordings"),
            None,
            Some(token),
        )
        .await
    }

    /// A registered account's access token.
    async fn account(&self, email: &str, name: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/register",
                Some(json!({"email": email, "password": PASSWORD, "display_name": name})),
                None,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A meeting created by `token`'s account with `settings`.
    async fn meeting(&self, token: &str, settings: Value) -> MeetingId {
        let mut body = json!({"display_name": "Friday night"});
        body.as_object_mut()
            .unwrap()
            .extend(settings.as_object().unwrap().clone());
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/meetings",
                Some(body),
                Some(token),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        MeetingId::parse(body["meeting_id"].as_str().unwrap()).unwrap()
    }

    /// `name` joins `meeting` (the meeting's first join assigns the media handler, as
    /// the meeting controller does) and connects to the media handler.
    async fn participant(&self, meeting: MeetingId, name: &str) -> (ParticipantId, MediaClient) {
        let joined = self
            .repo
            .join(&JoinRequest {
                meeting_id: meeting,
                user_id: None,
                display_name: DisplayName::parse(name).unwrap(),
                ip_address: None,
                user_agent: None,
                client_version: None,
            })
            .await
            .unwrap();
        if self
            .repo
            .meeting_media_handler(meeting)
            .await
            .unwrap()
            .is_none()
        {
            let assigned = self
                .repo
                .assign_media_handler(
                    meeting,
                    &Region::local(),
                    &Liveness::default(),
                    &mut StdRng::seed_from_u64(1),
                )
                .await
                .unwrap();
            assert_eq!(assigned.as_ref(), Some(&self.handler));
        }
        let client = self.media_session(meeting, joined.participant_id).await;
        (joined.participant_id, client)
    }

    /// A media session of `participant` (in `meeting`), as the page opens one with a
    /// fresh media grant.
    async fn media_session(&self, meeting: MeetingId, participant: ParticipantId) -> MediaClient {
        let token = self
            .repo
            .issue_participant_token(
                meeting,
                participant,
                meetings::domain::ParticipantConnection::Media,
            )
            .await
            .unwrap();
        MediaClient::connect(
            &format!("{}/media/{meeting}", self.endpoint),
            token.expose(),
            Some(&self.certificate_hash),
        )
        .await
        .unwrap()
    }

    /// A host's meeting that allows recording, Alice in it with her media session, and a
    /// recording of it started (the recorder connected).
    async fn recording_alice(&self) -> Recording {
        let host = self.account("host@example.com", "Host").await;
        self.recording_alice_hosted_by(host).await
    }

    /// [`Site::recording_alice`] in a meeting of `host`'s (an access token).
    async fn recording_alice_hosted_by(&self, host: String) -> Recording {
        let meeting = self
            .meeting(
                &host,
                json!({"allow_recording": true, "enable_e2e_encryption": false}),
            )
            .await;
        let (alice_id, alice) = self.participant(meeting, "Alice").await;
        self.connected(1).await;
        let (status, started) = self.start_recording(meeting, &host).await;
        assert_eq!(status, 201, "{started}");
        let id = started["recording_id"].as_str().unwrap().to_owned();
        self.connected(2).await;
        Recording {
            host,
            meeting,
            alice_id,
            alice,
            id,
        }
    }

    async fn connected(&self, n: usize) {
        let load = self.load.clone();
        eventually("the media sessions are open on the handler", || {
            let load = load.clone();
            async move { (load.participants() == n).then_some(()) }
        })
        .await;
    }

    async fn recordings(&self, meeting: MeetingId, token: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/meetings/{meeting}/recordings"),
                None,
                Some(token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["recordings"].as_array().unwrap().clone()
    }

    /// Waits until recording `id` of `meeting` (listed with the host's `token`) has
    /// recorded `frames` frames.
    async fn recorded(&self, (meeting, token, id): (MeetingId, &str, &str), frames: u64) {
        eventually(
            &format!("the recorder has {frames} frames"),
            || async move {
                let rows = self.recordings(meeting, token).await;
                let row = rows.iter().find(|r| r["recording_id"] == id)?;
                (row["frames_recorded"].as_u64() >= Some(frames)).then_some(())
            },
        )
        .await;
    }

    /// Waits until recording `id` of `meeting` is `status`, and answers it.
    async fn recording_in(&self, meeting: MeetingId, token: &str, id: &str, status: &str) -> Value {
        eventually(&format!("the recording is {status}"), || async move {
            self.recordings(meeting, token)
                .await
                .into_iter()
                .find(|r| r["recording_id"] == id && r["status"] == status)
        })
        .await
    }
}

/// A VP8 frame shaped like an encoder's: the 3-byte frame tag (key frames with the
/// start code and a 320x240 size), then `len` bytes of payload.
fn vp8_frame(key: bool, n: u64, len: usize) -> Vec<u8> {
    let first_partition = 100u32;
    let tag = (u32::from(!key)) | (1 << 4) | (first_partition << 5);
    let mut frame = tag.to_le_bytes()[..3].to_vec();
    if key {
        frame.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        frame.extend_from_slice(&320u16.to_le_bytes());
        frame.extend_from_slice(&240u16.to_le_bytes());
    }
    frame.extend((0..len).map(|i| (i as u64 ^ n) as u8));
    frame
}

/// An Opus packet: a TOC byte (CELT fullband, 20 ms, mono, one frame), then payload.
fn opus_packet(n: u64) -> Vec<u8> {
    let mut packet = vec![0xf8];
    packet.extend((0..60).map(|i| (i ^ n) as u8));
    packet
}

/// Publishes two seconds of camera (a key frame every second) and microphone from
/// each of `publishers`, interleaved in time; each publisher's encoder clock starts at
/// its own `base` (µs).
///
/// Every 20 frames it waits until the recording `watch` (meeting, host's token, id) has
/// recorded them: a recorder (like any subscriber) that falls behind skips to the next
/// key frame, and a burst faster than real time must not make it so.
async fn publish(
    site: &Site,
    watch: (MeetingId, &str, &str),
    publishers: &[(&MediaClient, u64)],
) -> u64 {
    publish_after(site, watch, publishers, 0).await
}

/// [`publish`] into a recording that has `already` frames.
async fn publish_after(
    site: &Site,
    watch: (MeetingId, &str, &str),
    publishers: &[(&MediaClient, u64)],
    already: u64,
) -> u64 {
    let mut events: Vec<(u64, u8, u64)> = Vec::new();
    for n in 0..VIDEO_FRAMES {
        events.push((n * VIDEO_INTERVAL_US, TRACK_CAMERA, n));
    }
    for n in 0..AUDIO_PACKETS {
        events.push((n * AUDIO_INTERVAL_US, TRACK_AUDIO, n));
    }
    events.sort();
    let mut sent = 0;
    for (at, track, n) in events {
        for (client, base) in publishers {
            let seq = u32::try_from(n).unwrap();
            if track == TRACK_CAMERA {
                let key = n % 30 == 0;
                let flags = if key { FLAG_KEY } else { 0 };
                client
                    .send_frame(track, flags, base + at, seq, &vp8_frame(key, n, 900))
                    .await
                    .unwrap();
            } else {
                client
                    .send_frame(track, FLAG_KEY, base + at, seq, &opus_packet(n))
                    .await
                    .unwrap();
            }
            sent += 1;
            if sent % 20 == 0 {
                site.recorded(watch, already + sent).await;
            }
        }
    }
    site.recorded(watch, already + sent).await;
    sent
}

/// `mkvmerge -J` of `file`: what a real Matroska demuxer reads in it.
fn demux(file: &Path) -> Value {
    let output = std::process::Command::new("mkvmerge")
        .arg("-J")
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "mkvmerge (Debian package `mkvtoolnix`) is needed to read the recording back: {e}"
            )
        });
    assert!(
        output.status.success() || output.status.code() == Some(1),
        "mkvmerge failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn a_two_person_meeting_is_recorded_as_a_webm_a_demuxer_reads_and_downloaded_by_its_signed_link()
 {
    let site = site().await;
    let host = site.account("host@example.com", "Host").await;
    let meeting = site
        .meeting(
            &host,
            json!({"allow_recording": true, "enable_e2e_encryption": false}),
        )
        .await;
    let (_, alice) = site.participant(meeting, "Alice").await;
    let (_, bob) = site.participant(meeting, "Bob").await;
    site.connected(2).await;

    // Somebody else may not start it.
    let guest = site.account("guest@example.com", "Guest").await;
    let (status, body) = site.start_recording(meeting, &guest).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_creator")),
        "{body}"
    );

    let (status, started) = site.start_recording(meeting, &host).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["status"], "recording");
    assert!(started["download_url"].is_null());
    let id = started["recording_id"].as_str().unwrap().to_owned();
    // One at a time.
    let (status, body) = site.start_recording(meeting, &host).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("recording_running")),
        "{body}"
    );
    // The recorder's media session is the third.
    site.connected(3).await;

    // A frame flagged end-to-end encrypted is never recorded (it would be a track).
    for client in [&alice, &bob] {
        client
            .send_frame(
                TRACK_SCREEN,
                FLAG_KEY | FLAG_E2E,
                0,
                0,
                &vp8_frame(true, 0, 500),
            )
            .await
            .unwrap();
    }
    let sent = publish(
        &site,
        (meeting, &host, &id),
        &[(&alice, 1_000_000), (&bob, 987_654_321)],
    )
    .await;
    assert_eq!(sent, 2 * (VIDEO_FRAMES + AUDIO_PACKETS));
    eventually("the recorder has every frame", || async {
        let rows = site.recordings(meeting, &host).await;
        let row = rows.iter().find(|r| r["recording_id"] == id.as_str())?;
        (row["frames_recorded"].as_u64() == Some(sent)).then_some(())
    })
    .await;

    let (status, stopped) = site
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/meetings/{meeting}/recordings/{id}/stop"),
            None,
            Some(&host),
        )
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert!(
        ["processing", "ready"].contains(&stopped["status"].as_str().unwrap()),
        "{stopped}"
    );
    assert!(!stopped["ended_at"].is_null(), "{stopped}");
    let ready = site.recording_in(meeting, &host, &id, "ready").await;
    assert_eq!(ready["duration_seconds"], 2, "{ready}");
    assert_eq!(ready["video_codec"], "VP8", "{ready}");
    assert_eq!(ready["audio_codec"], "Opus", "{ready}");
    assert_eq!(ready["resolution"], "320x240", "{ready}");
    let size = ready["file_size_bytes"].as_u64().unwrap();
    assert!(size > 0);

    // The row, as stored.
    let row = site
        .repo
        .recording(meetings::domain::RecordingId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(row.storage_bucket, "local");
    assert_eq!(row.storage_path, format!("{meeting}/{id}.webm"));
    assert!(site.storage.join(&row.storage_path).is_file());

    // The download link streams the file.
    let url = ready["download_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("/api/v1/recordings/{id}/download?expires=")),
        "{url}"
    );
    let response = site
        .http
        .get(format!("{}{url}", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "video/webm");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    let file = site.dirs.path().join("downloaded.webm");
    std::fs::write(&file, &bytes).unwrap();

    // A real demuxer reads it: a video and an audio track per participant, named after
    // them, and two seconds long (within a frame).
    let info = demux(&file);
    assert_eq!(info["container"]["recognized"], true, "{info}");
    assert_eq!(info["container"]["type"], "Matroska", "{info}");
    let tracks = info["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 4, "{info}");
    let mut described: Vec<(String, String)> = tracks
        .iter()
        .map(|t| {
            (
                t["properties"]["track_name"].as_str().unwrap().to_owned(),
                t["properties"]["codec_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    described.sort();
    assert_eq!(
        described,
        [
            ("Alice (camera)".to_owned(), "V_VP8".to_owned()),
            ("Alice (microphone)".to_owned(), "A_OPUS".to_owned()),
            ("Bob (camera)".to_owned(), "V_VP8".to_owned()),
            ("Bob (microphone)".to_owned(), "A_OPUS".to_owned()),
        ]
    );
    for track in tracks {
        if track["type"] == "video" {
            assert_eq!(
                track["properties"]["pixel_dimensions"], "320x240",
                "{track}"
            );
        } else {
            assert_eq!(track["properties"]["audio_channels"], 1, "{track}");
            assert_eq!(
                track["properties"]["audio_sampling_frequency"], 48000,
                "{track}"
            );
        }
    }
    let duration_ns = info["container"]["properties"]["duration"]
        .as_u64()
        .unwrap();
    let sent_ns = VIDEO_FRAMES * VIDEO_INTERVAL_US * 1000;
    assert!(
        duration_ns.abs_diff(sent_ns) <= VIDEO_INTERVAL_US * 1000,
        "{duration_ns} ns recorded, {sent_ns} ns sent"
    );

    // A tampered link and an expired one are refused.
    let tampered = format!("{url}x");
    let (status, body) = site.call(reqwest::Method::GET, &tampered, None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("bad_signature")),
        "{body}"
    );
    let other_id = url.replace(&id, &meetings::domain::RecordingId::random().to_string());
    let (status, _) = site.call(reqwest::Method::GET, &other_id, None, None).await;
    assert_eq!(status, 403);
    site.world.clock.advance(Duration::from_secs(2 * 60 * 60));
    let (status, body) = site.call(reqwest::Method::GET, url, None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("bad_signature")),
        "{body}"
    );
    // A fresh listing (with a fresh access token: the clock moved past the first)
    // signs a fresh link.
    let (status, login) = site
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/user/token",
            Some(json!({"email": "host@example.com", "password": PASSWORD})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let host = login["access_token"].as_str().unwrap().to_owned();
    let fresh = site.recording_in(meeting, &host, &id, "ready").await;
    let (status, _) = site
        .call(
            reqwest::Method::GET,
            fresh["download_url"].as_str().unwrap(),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_publisher_whose_media_session_was_lost_is_recorded_again_from_its_new_one() {
    let site = site().await;
    let Recording {
        host,
        meeting,
        alice_id,
        alice,
        id,
    } = site.recording_alice().await;
    let watch = (meeting, host.as_str(), id.as_str());
    let first = publish(&site, watch, &[(&alice, 0)]).await;

    // Her connection is lost; the page opens a new media session under the same id,
    // whose sequence numbers and encoder clock start again at 0.
    alice.close();
    site.connected(1).await;
    let again = site.media_session(meeting, alice_id).await;
    site.connected(2).await;
    let second = publish_after(&site, watch, &[(&again, 0)], first).await;
    eventually("the recorder has every frame of both sessions", || async {
        let rows = site.recordings(meeting, &host).await;
        let row = rows.iter().find(|r| r["recording_id"] == id.as_str())?;
        (row["frames_recorded"].as_u64() == Some(first + second)).then_some(())
    })
    .await;

    let (status, stopped) = site
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/meetings/{meeting}/recordings/{id}/stop"),
            None,
            Some(&host),
        )
        .await;
    assert_eq!(status, 200, "{stopped}");
    let ready = site.recording_in(meeting, &host, &id, "ready").await;
    // The second session follows the first on the timeline, not on top of its end.
    let seconds = ready["duration_seconds"].as_u64().unwrap();
    assert!(seconds >= 4, "{ready}");
    let row = site
        .repo
        .recording(meetings::domain::RecordingId::parse(&id).unwrap())
        .await
        .unwrap();
    let info = demux(&site.storage.join(&row.storage_path));
    assert_eq!(info["tracks"].as_array().unwrap().len(), 2, "{info}");
}

/// The recorder's row is touched and its meeting looked at apart from the frames: a
/// database that does not answer (here the row locked, so touching it waits) does not
/// hold up their recording.
#[tokio::test]
async fn a_database_that_does_not_answer_does_not_hold_up_the_recording() {
    let site = site().await;
    let Recording {
        host,
        meeting,
        alice,
        id,
        ..
    } = site.recording_alice().await;

    let pool = site.world.postgres.pool();
    let mut locked = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM meet.recordings WHERE recording_id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(&mut *locked)
        .await
        .unwrap();
    eventually("the recorder waits to touch its row", || async move {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(pool)
            .await
            .ok()?;
        (waiting > 0).then_some(())
    })
    .await;
    let sent = publish(&site, (meeting, &host, &id), &[(&alice, 0)]).await;
    assert_eq!(sent, VIDEO_FRAMES + AUDIO_PACKETS);
    locked.rollback().await.unwrap();

    let (status, stopped) = site
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/meetings/{meeting}/recordings/{id}/stop"),
            None,
            Some(&host),
        )
        .await;
    assert_eq!(status, 200, "{stopped}");
    let ready = site.recording_in(meeting, &host, &id, "ready").await;
    assert_eq!(ready["duration_seconds"], 2, "{ready}");
}

/// A new publisher's name is read beside the frame reading: while Redis answers nobody
/// (its clients paused), the publisher's first frames are spooled all the same (its
/// track named after its id once the name has not come within a second).
#[tokio::test]
async fn a_redis_that_does_not_answer_does_not_hold_up_a_new_publishers_track() {
    let site = site().await;
    let Recording { alice, id, .. } = site.recording_alice().await;
    let dir = site.dirs.path().join("work").join(&id);

    let mut conn = site.world.redis.conn();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(4000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Answered once Redis answers again.
    let awake = async move {
        let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    };
    for n in 0..10u32 {
        alice
            .send_frame(
                TRACK_AUDIO,
                FLAG_KEY,
                u64::from(n) * AUDIO_INTERVAL_US,
                n,
                &opus_packet(u64::from(n)),
            )
            .await
            .unwrap();
    }
    let spooled = eventually("Alice's track is spooled", || {
        let dir = dir.clone();
        async move {
            std::fs::read_dir(&dir)
                .ok()?
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|e| e == "spool"))
                .then_some(())
        }
    });
    tokio::select! {
        biased;
        () = spooled => {}
        () = awake => panic!("Alice's track was spooled only once Redis answered again"),
    }
}

#[tokio::test]
async fn encrypted_and_unrecordable_meetings_are_refused_and_ending_a_meeting_stops_its_recording()
{
    let site = site().await;
    let host = site.account("host@example.com", "Host").await;

    let e2e = site
        .meeting(
            &host,
            json!({"allow_recording": true, "enable_e2e_encryption": true}),
        )
        .await;
    let (status, body) = site.start_recording(e2e, &host).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("e2e_encrypted")),
        "{body}"
    );
    assert_eq!(
        body["error"],
        "recordings are not offered for end-to-end encrypted meetings: the server never sees the media"
    );

    let plain = site
        .meeting(
            &host,
            json!({"allow_recording": false, "enable_e2e_encryption": false}),
        )
        .await;
    let (status, body) = site.start_recording(plain, &host).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("recording_not_allowed")),
        "{body}"
    );
    assert!(site.recordings(e2e, &host).await.is_empty());
    assert!(site.recordings(plain, &host).await.is_empty());

    // A recording of a meeting that ends is finished with it.
    let Recording {
        meeting, alice, id, ..
    } = site.recording_alice_hosted_by(host.clone()).await;
    let sent = publish(&site, (meeting, &host, &id), &[(&alice, 0)]).await;
    eventually("the recorder has every frame", || async {
        let rows = site.recordings(meeting, &host).await;
        let row = rows.iter().find(|r| r["recording_id"] == id.as_str())?;
        (row["frames_recorded"].as_u64() == Some(sent)).then_some(())
    })
    .await;
    let (status, body) = site
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/meetings/{meeting}/end"),
            None,
            Some(&host),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ready = site.recording_in(meeting, &host, &id, "ready").await;
    assert_eq!(ready["duration_seconds"], 2, "{ready}");
    // An ended meeting is not recorded again.
    let (status, body) = site.start_recording(meeting, &host).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("meeting_ended")),
        "{body}"
    );
}

#[tokio::test]
async fn recording_a_meeting_nobody_is_in_is_refused_as_its_state_not_a_server_fault() {
    let site = site().await;
    let host = site.account("host@example.com", "Host").await;
    let meeting = site
        .meeting(
            &host,
            json!({"allow_recording": true, "enable_e2e_encryption": false}),
        )
        .await;
    // A 409, not a 5xx: the kit logs no "response failed" warning for it.
    let (status, body) = site.start_recording(meeting, &host).await;
    assert_eq!(
        (status, body["code"].as_str(), body["error"].as_str()),
        (
            409,
            Some("no_media"),
            Some("nobody is in the meeting yet: join it first, then record")
        ),
        "{body}"
    );
    assert!(
        site.repo
            .meeting_recordings(meeting)
            .await
            .unwrap()
            .is_empty(),
        "nothing started"
    );
}

#[tokio::test]
async fn recording_a_meeting_whose_people_no_media_handler_took_is_a_server_capacity_problem() {
    let site = site().await;
    let host = site.account("host@example.com", "Host").await;
    let meeting = site
        .meeting(
            &host,
            json!({"allow_recording": true, "enable_e2e_encryption": false}),
        )
        .await;
    // Alice joins, and no media handler can take the meeting (none in the controller's
    // region): she is in the call without media, as the controller lets her.
    site.repo
        .join(&JoinRequest {
            meeting_id: meeting,
            user_id: None,
            display_name: DisplayName::parse("Alice").unwrap(),
            ip_address: None,
            user_agent: None,
            client_version: None,
        })
        .await
        .unwrap();
    let nowhere = Region::parse("nowhere").unwrap();
    let assigned = site
        .repo
        .assign_media_handler(
            meeting,
            &nowhere,
            &Liveness::default(),
            &mut StdRng::seed_from_u64(1),
        )
        .await
        .unwrap();
    assert_eq!(assigned, None);

    let logs = testkit::Logs::default();
    let capture = logs.capture();
    let (status, body) = site.start_recording(meeting, &host).await;
    drop(capture);
    assert_eq!(
        (status, body["code"].as_str(), body["error"].as_str()),
        (
            503,
            Some("no_media_handler"),
            Some("no media server can take this meeting right now; try again shortly")
        ),
        "{body}"
    );
    let said = logs.warnings("no media handler could take it");
    assert_eq!(said.len(), 1, "{}", logs.text());
    assert!(said[0].contains(&meeting.to_string()), "{}", logs.text());
    assert!(
        site.repo
            .meeting_recordings(meeting)
            .await
            .unwrap()
            .is_empty(),
        "nothing started"
    );

    // Once a media handler takes the meeting, the same start records.
    let assigned = site
        .repo
        .assign_media_handler(
            meeting,
            &Region::local(),
            &Liveness::default(),
            &mut StdRng::seed_from_u64(1),
        )
        .await
        .unwrap();
    assert_eq!(assigned.as_ref(), Some(&site.handler));
    let (status, body) = site.start_recording(meeting, &host).await;
    assert_eq!(status, 201, "{body}");
}

/// A Tavern web session signed in as the Discord user `id`: its cookie and CSRF token.
async fn web_session(site: &Site, id: u64, name: &str) -> (String, String) {
    let sessions = &site.ctx.sessions;
    let profile = web::session::SessionUser {
        id: discord::model::UserId::new(id),
        username: name.to_lowercase(),
        global_name: Some(name.to_owned()),
        avatar: None,
    };
    let grant = discord::oauth::TokenGrant {
        access_token: base::Secret::from("discord access token"),
        refresh_token: None,
        expires_in: Duration::from_secs(3600),
        scopes: vec!["identify".into()],
    };
    let session = sessions.log_in(None, profile, &grant).await.unwrap();
    (
        format!(
            "{}={}",
            sessions.config().cookie_name(),
            session.id().expose()
        ),
        session.csrf_token().to_owned(),
    )
}

impl Site {
    /// A request of the page's script: the session cookie, and the CSRF token if given.
    async fn page_call(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: &str,
        csrf: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, cookie)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A meeting created by the meetings account linked to Discord user `id`.
    async fn hosted_meeting(
        &self,
        id: u64,
        settings: meetings::repo::MeetingSettings,
    ) -> meetings::repo::Meeting {
        let (account, _) = self
            .repo
            .link_oauth_user(&meetings::repo::users::OAuthLink {
                provider: meetings::auth::DISCORD,
                provider_user_id: id.to_string(),
                email: meetings::auth::Email::parse(&format!("discord-{id}@users.discord.invalid"))
                    .unwrap(),
                display_name: DisplayName::parse("Mira").unwrap(),
                access_token_sealed: Vec::new(),
                refresh_token_sealed: None,
                token_expires_at: None,
            })
            .await
            .unwrap();
        self.repo
            .create_meeting(&meetings::repo::NewMeeting {
                display_name: DisplayName::parse("Campaign night").unwrap(),
                created_by: Some(account),
                settings,
                scheduled_start_time: None,
            })
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_page_control_lets_the_host_record_and_stop_with_the_csrf_token_and_says_why_not() {
    let site = site().await;
    let (cookie, csrf) = web_session(&site, 4242, "Mira").await;
    let meeting = site
        .hosted_meeting(
            4242,
            meetings::repo::MeetingSettings {
                allow_recording: true,
                enable_e2e_encryption: false,
                ..Default::default()
            },
        )
        .await;
    let code = meeting.meeting_code.as_str().to_owned();
    let control = format!("/meet/{code}/recording");

    // The page names the control for a signed-in visitor.
    let page = site
        .http
        .get(format!("{}/meet/{code}", site.base))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(" data-recording-url=\"{control}\"")),
        "{page}"
    );

    let (status, panel) = site
        .page_call(reqwest::Method::GET, &control, &cookie, None)
        .await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(
        panel,
        json!({"host": true, "offered": true, "reason": null, "recording": null, "recordings": []})
    );

    // Anyone with the code (no session) asks whether it is being recorded.
    let now = |code: String| {
        let request = site
            .http
            .get(format!("{}/meet/{code}/recording/now", site.base));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(now(code.clone()).await, (200, json!({"recording": false})));
    let (status, body) = now("ZZZ-ZZZZ-ZZZ".into()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("meeting_not_found"))
    );

    let (_, _alice) = site.participant(meeting.meeting_id, "Alice").await;
    site.connected(1).await;
    // A state-changing request without the page's CSRF token is refused.
    let (status, _) = site
        .page_call(reqwest::Method::POST, &control, &cookie, None)
        .await;
    assert_eq!(status, 403);
    let (status, started) = site
        .page_call(reqwest::Method::POST, &control, &cookie, Some(&csrf))
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["status"], "recording");
    assert_eq!(
        started["started_by_user_id"],
        meeting.created_by_user_id.unwrap().to_string()
    );
    let (_, panel) = site
        .page_call(reqwest::Method::GET, &control, &cookie, None)
        .await;
    assert_eq!(panel["recording"]["recording_id"], started["recording_id"]);
    assert_eq!(now(code.clone()).await, (200, json!({"recording": true})));

    // Another signed-in visitor is not the host: no control, and a start is refused.
    let (other_cookie, other_csrf) = web_session(&site, 777, "Oren").await;
    let (status, panel) = site
        .page_call(reqwest::Method::GET, &control, &other_cookie, None)
        .await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(panel["host"], false);
    assert!(panel["recording"].is_null());
    assert_eq!(
        panel["recordings"],
        json!([]),
        "only the host sees the list"
    );
    let (status, body) = site
        .page_call(
            reqwest::Method::POST,
            &format!("{control}/stop"),
            &other_cookie,
            Some(&other_csrf),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_creator")),
        "{body}"
    );

    // Stopped with nothing sent, the recording fails and says why.
    let (status, stopped) = site
        .page_call(
            reqwest::Method::POST,
            &format!("{control}/stop"),
            &cookie,
            Some(&csrf),
        )
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(now(code.clone()).await, (200, json!({"recording": false})));
    let id = stopped["recording_id"].as_str().unwrap().to_owned();
    let failed = eventually("the empty recording fails", || async {
        let row = site
            .repo
            .recording(meetings::domain::RecordingId::parse(&id).unwrap())
            .await
            .ok()?;
        (row.status == meetings::domain::RecordingStatus::Failed).then_some(row)
    })
    .await;
    assert_eq!(
        failed.error_message.as_deref(),
        Some("nothing was recorded: no participant sent audio or video")
    );
    assert!(failed.file_size_bytes.is_none());
    // The host's page lists it, failed, with the reason and no download link.
    let (_, panel) = site
        .page_call(reqwest::Method::GET, &control, &cookie, None)
        .await;
    assert!(panel["recording"].is_null(), "{panel}");
    let listed = panel["recordings"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{panel}");
    assert_eq!(listed[0]["recording_id"], json!(id));
    assert_eq!(listed[0]["status"], "failed");
    assert!(listed[0]["download_url"].is_null());
    let (status, body) = site
        .page_call(
            reqwest::Method::POST,
            &format!("{control}/stop"),
            &cookie,
            Some(&csrf),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("not_recording")),
        "{body}"
    );

    // An end-to-end encrypted meeting's page says why it is not recorded.
    let e2e = site
        .hosted_meeting(
            4242,
            meetings::repo::MeetingSettings {
                allow_recording: true,
                enable_e2e_encryption: true,
                ..Default::default()
            },
        )
        .await;
    let (status, panel) = site
        .page_call(
            reqwest::Method::GET,
            &format!("/meet/{}/recording", e2e.meeting_code.as_str()),
            &cookie,
            None,
        )
        .await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(panel["offered"], false);
    assert_eq!(
        panel["reason"],
        "recordings are not offered for end-to-end encrypted meetings: the server never sees the media"
    );
}

#[tokio::test]
async fn a_recording_left_behind_by_a_stopped_server_is_failed_and_the_meeting_recorded_again() {
    let site = site_with(|r| r.stale_after = Duration::from_secs(1)).await;
    let host = site.account("host@example.com", "Host").await;
    let meeting = site
        .meeting(
            &host,
            json!({"allow_recording": true, "enable_e2e_encryption": false}),
        )
        .await;
    let (_, _alice) = site.participant(meeting, "Alice").await;
    site.connected(1).await;
    // A row some server started and never finished (nothing records it here).
    let orphan = site
        .repo
        .start_recording(&meetings::repo::NewRecording {
            recording_id: meetings::domain::RecordingId::random(),
            meeting_id: meeting,
            started_by: None,
            started_at: base::Clock::now(&*site.world.clock),
            storage_path: format!("{meeting}/orphan.webm"),
            storage_bucket: "local".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let id = orphan.recording_id.to_string();
    let failed = site.recording_in(meeting, &host, &id, "failed").await;
    assert_eq!(
        failed["error_message"],
        meetings::recording::STALE_MESSAGE,
        "{failed}"
    );
    let (status, started) = site.start_recording(meeting, &host).await;
    assert_eq!(status, 201, "{started}");
    // A recording being made is kept alive: touched past the stale period, it is
    // still recording.
    let running =
        meetings::domain::RecordingId::parse(started["recording_id"].as_str().unwrap()).unwrap();
    eventually(
        "the running recording is touched past the stale period",
        || async {
            let row = site.repo.recording(running).await.ok()?;
            (row.updated_at - row.created_at > chrono::Duration::milliseconds(1500)).then_some(())
        },
    )
    .await;
    let listed = site.recordings(meeting, &host).await;
    let row = listed
        .iter()
        .find(|r| r["recording_id"] == running.to_string())
        .unwrap();
    assert_eq!(row["status"], "recording", "{row}");
}

/// The page's Record / Stop button as `text|data-recording`, or empty before it shows.
const RECORD_BUTTON: &str = "const b = document.getElementById('record'); \
     return b ? b.textContent + '|' + (document.getElementById('meet').dataset.recording || '') : ''";

/// On a guest's page: `data-recording` and what the page says about recording.
const GUEST_TOLD: &str = "const n = document.getElementById('recording-status'); \
     return (document.getElementById('meet').dataset.recording || '') + '|' + (n ? n.textContent : '')";

/// What the page says about recording.
const RECORDING_NOTE: &str =
    "const n = document.getElementById('recording-status'); return n ? n.textContent : ''";

#[tokio::test]
async fn in_a_browser_the_host_records_and_stops_with_the_button_and_an_encrypted_meeting_says_why_not()
 {
    let site = site().await;
    let (cookie, _) = web_session(&site, 4242, "Mira").await;
    let (cookie_name, cookie_value) = cookie.split_once('=').unwrap();
    let meeting = site
        .hosted_meeting(
            4242,
            meetings::repo::MeetingSettings {
                allow_recording: true,
                enable_e2e_encryption: false,
                ..Default::default()
            },
        )
        .await;
    let (_, _alice) = site.participant(meeting.meeting_id, "Alice").await;
    site.connected(1).await;

    let browser = testkit::browser::Browser::start().await;
    let page = format!("{}/meet/{}", site.base, meeting.meeting_code.as_str());
    browser.open(&page).await;
    browser.add_cookie(cookie_name, cookie_value).await;
    browser.open(&page).await;
    let limit = Duration::from_secs(30);
    // A guest's page (no session, not the host) is told too.
    let guest = testkit::browser::Browser::start().await;
    guest.open(&page).await;
    guest
        .text_when("the guest's page asked", limit, GUEST_TOLD, |t| t == "0|")
        .await;
    browser
        .text_when("the host sees Record", limit, RECORD_BUTTON, |t| {
            t == "Record|0"
        })
        .await;
    browser
        .script("document.getElementById('record').click(); return ''")
        .await;
    browser
        .text_when(
            "the button says the meeting is recorded",
            limit,
            RECORD_BUTTON,
            |t| t == "Stop recording|1",
        )
        .await;
    let rows = site
        .repo
        .meeting_recordings(meeting.meeting_id)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, meetings::domain::RecordingStatus::Recording);
    assert_eq!(
        browser.script(RECORDING_NOTE).await,
        "This meeting is being recorded."
    );
    guest
        .text_when("the guest is told it is recorded", limit, GUEST_TOLD, |t| {
            t == "1|This meeting is being recorded."
        })
        .await;
    browser
        .script("document.getElementById('record').click(); return ''")
        .await;
    browser
        .text_when(
            "the button offers Record again",
            limit,
            RECORD_BUTTON,
            |t| t == "Record|0",
        )
        .await;
    let row = site.repo.recording(rows[0].recording_id).await.unwrap();
    assert_ne!(row.status, meetings::domain::RecordingStatus::Recording);
    guest
        .text_when(
            "the guest is told it no longer is",
            limit,
            GUEST_TOLD,
            |t| t == "0|",
        )
        .await;
    guest.quit().await;
    // The page lists it, and follows it while it is processed: nothing was sent, so
    // it ends failed, with the reason.
    browser
        .text_when(
            "the page lists the recording as failed",
            limit,
            "const li = document.querySelector('#recordings li'); \
             return li ? `${li.dataset.status}|${li.textContent}` : ''",
            |t| t.starts_with("failed|") && t.contains("nothing was recorded"),
        )
        .await;

    // An end-to-end encrypted meeting's page says why it is not recorded, and offers
    // no button.
    let e2e = site
        .hosted_meeting(
            4242,
            meetings::repo::MeetingSettings {
                allow_recording: true,
                enable_e2e_encryption: true,
                ..Default::default()
            },
        )
        .await;
    browser
        .open(&format!("{}/meet/{}", site.base, e2e.meeting_code.as_str()))
        .await;
    browser
        .text_when("the page says why", limit, RECORDING_NOTE, |t| {
            t == "Recordings are not offered for end-to-end encrypted meetings: the server never sees the media."
        })
        .await;
    assert_eq!(browser.script(RECORD_BUTTON).await, "");
    browser.quit().await;
}

/// The host's recordings as the page lists them, `status|link|shown` a line (`link`
/// the download's path, `shown` whether no hidden element holds the item).
const LISTED: &str = "return Array.from(document.querySelectorAll('#recordings li')).map((li) => { \
     const a = li.querySelector('a'); \
     return `${li.dataset.status}|${a ? new URL(a.href).pathname : ''}|${!li.closest('[hidden]')}`; \
     }).join('\\n')";

impl Site {
    /// A ready recording of `meeting` (made and stored, as far as its row says).
    async fn ready_recording(
        &self,
        meeting: &meetings::repo::Meeting,
    ) -> meetings::domain::RecordingId {
        let now = base::Clock::now(&*self.world.clock);
        let made = self
            .repo
            .start_recording(&meetings::repo::NewRecording {
                recording_id: meetings::domain::RecordingId::random(),
                meeting_id: meeting.meeting_id,
                started_by: meeting.created_by_user_id,
                started_at: now,
                storage_path: format!("{}/made.webm", meeting.meeting_id),
                storage_bucket: "local".into(),
            })
            .await
            .unwrap()
            .unwrap();
        self.repo
            .stop_recording(made.recording_id, now)
            .await
            .unwrap()
            .unwrap();
        self.repo
            .finish_recording(
                made.recording_id,
                &meetings::repo::FinishedRecording {
                    duration_seconds: 42,
                    file_size_bytes: 4096,
                    video_codec: Some("VP8".into()),
                    audio_codec: Some("Opus".into()),
                    resolution: Some("320x240".into()),
                    note: None,
                },
            )
            .await
            .unwrap()
            .unwrap();
        made.recording_id
    }
}

#[tokio::test]
async fn the_host_finds_an_ended_meeting_s_recordings_with_their_download_links_on_its_page() {
    let site = site().await;
    let (cookie, _) = web_session(&site, 4242, "Mira").await;
    let (cookie_name, cookie_value) = cookie.split_once('=').unwrap();
    let meeting = site
        .hosted_meeting(
            4242,
            meetings::repo::MeetingSettings {
                allow_recording: true,
                enable_e2e_encryption: false,
                ..Default::default()
            },
        )
        .await;
    // A recording made and stored while the meeting ran, then the meeting ended.
    let made = site.ready_recording(&meeting).await;
    site.repo.end_meeting(meeting.meeting_id).await.unwrap();

    let browser = testkit::browser::Browser::start().await;
    let page = format!("{}/meet/{}", site.base, meeting.meeting_code.as_str());
    browser.open(&page).await;
    browser.add_cookie(cookie_name, cookie_value).await;
    browser.open(&page).await;
    let listed = browser
        .text_when(
            "the ended meeting's page lists the host's recording",
            Duration::from_secs(30),
            LISTED,
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(
        listed,
        format!("ready|/api/v1/recordings/{made}/download|true"),
        "a ready recording, its download link, shown"
    );
    assert_eq!(browser.script(RECORD_BUTTON).await, "", "nothing to record");
    browser.quit().await;
}

#[tokio::test]
async fn the_meetings_page_lists_the_host_s_ended_meetings_with_recordings() {
    let site = site().await;
    let (cookie, _) = web_session(&site, 4242, "Mira").await;
    let settings = meetings::repo::MeetingSettings {
        allow_recording: true,
        enable_e2e_encryption: false,
        ..Default::default()
    };
    let recorded = site.hosted_meeting(4242, settings).await;
    site.ready_recording(&recorded).await;
    site.repo.end_meeting(recorded.meeting_id).await.unwrap();
    // Ended with no recording, and recorded but still open: not listed there.
    let unrecorded = site.hosted_meeting(4242, settings).await;
    site.repo.end_meeting(unrecorded.meeting_id).await.unwrap();
    let open = site.hosted_meeting(4242, settings).await;
    site.ready_recording(&open).await;
    // Someone else's ended recorded meeting.
    let theirs = site.hosted_meeting(777, settings).await;
    site.ready_recording(&theirs).await;
    site.repo.end_meeting(theirs.meeting_id).await.unwrap();

    let page = site
        .http
        .get(format!("{}/meet", site.base))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list = page
        .split("Recent meetings with recordings")
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .unwrap_or_else(|| panic!("the list is shown: {page}"));
    let code = recorded.meeting_code.as_str();
    assert!(
        list.contains(&format!(
            "data-meeting-code=\"{code}\"><a href=\"/meet/{code}\">"
        )),
        "{list}"
    );
    for other in [&unrecorded, &open, &theirs] {
        assert!(
            !list.contains(other.meeting_code.as_str()),
            "{} is not listed: {list}",
            other.meeting_code.as_str()
        );
    }
}

/// A recordings store that refuses every write while `failing` (as an object store
/// does through an outage), counting the writes it refused; reads and deletes pass.
#[derive(Debug, Clone)]
struct FlakyStore {
    inner: std::sync::Arc<dyn object_store::ObjectStore>,
    state: std::sync::Arc<FlakyState>,
}

#[derive(Debug)]
struct FlakyState {
    failing: std::sync::atomic::AtomicBool,
    refused: std::sync::atomic::AtomicU64,
    /// While `true`, writes wait (counted in `waiting`); `stored` counts the writes done.
    held: tokio::sync::watch::Sender<bool>,
    waiting: std::sync::atomic::AtomicU64,
    stored: std::sync::atomic::AtomicU64,
}

impl FlakyStore {
    fn over(dir: &Path) -> FlakyStore {
        std::fs::create_dir_all(dir).unwrap();
        FlakyStore {
            inner: std::sync::Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap(),
            ),
            state: std::sync::Arc::new(FlakyState {
                failing: Default::default(),
                refused: Default::default(),
                held: tokio::sync::watch::Sender::new(false),
                waiting: Default::default(),
                stored: Default::default(),
            }),
        }
    }

    fn hold(&self, held: bool) {
        self.state.held.send_replace(held);
    }

    fn waiting(&self) -> u64 {
        self.state.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn stored(&self) -> u64 {
        self.state.stored.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits while writes are held.
    async fn gate(&self) {
        let mut held = self.state.held.subscribe();
        if *held.borrow_and_update() {
            self.state
                .waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.wait_for(|held| !*held).await.unwrap();
        }
    }

    fn set_failing(&self, failing: bool) {
        self.state
            .failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    fn refused(&self) -> u64 {
        self.state.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn refuse(&self) -> object_store::Result<()> {
        if self.state.failing.load(std::sync::atomic::Ordering::SeqCst) {
            self.state
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "flaky",
                source: "the store is unreachable".into(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlakyStore({})", self.inner)
    }
}

type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl object_store::ObjectStore for FlakyStore {
    fn put_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> Boxed<'c, object_store::Result<object_store::PutResult>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            self.gate().await;
            self.refuse()?;
            let put = self.inner.put_opts(location, payload, opts).await?;
            self.state
                .stored
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(put)
        })
    }

    fn put_multipart_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> Boxed<'c, object_store::Result<Box<dyn object_store::MultipartUpload>>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            self.gate().await;
            self.refuse()?;
            self.inner.put_multipart_opts(location, opts).await
        })
    }

    fn get_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b object_store::path::Path,
        options: object_store::GetOptions,
    ) -> Boxed<'c, object_store::Result<object_store::GetResult>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.get_opts(location, options)
    }

    fn delete_stream(
        &self,
        locations: futures_util::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
    {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
    {
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'a, 'b, 'c>(
        &'a self,
        prefix: Option<&'b object_store::path::Path>,
    ) -> Boxed<'c, object_store::Result<object_store::ListResult>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'a, 'b, 'd, 'c>(
        &'a self,
        from: &'b object_store::path::Path,
        to: &'d object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> Boxed<'c, object_store::Result<()>>
    where
        'a: 'c,
        'b: 'c,
        'd: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            self.refuse()?;
            self.inner.copy_opts(from, to, options).await
        })
    }
}

/// A site whose recordings store is a [`FlakyStore`] over its storage directory,
/// trying again after 20 ms.
async fn flaky_site() -> (Site, FlakyStore) {
    let mut flaky = None;
    let site = site_with(|r| {
        let store = FlakyStore::over(Path::new(r.storage.as_deref().unwrap()));
        r.store = Some(("local".to_owned(), std::sync::Arc::new(store.clone())));
        r.store_retry_first = Duration::from_millis(20);
        flaky = Some(store);
    })
    .await;
    (site, flaky.unwrap())
}

#[tokio::test]
async fn a_failed_upload_is_retried_and_the_file_kept() {
    let (site, flaky) = flaky_site().await;
    let Recording {
        host,
        meeting,
        alice,
        id,
        ..
    } = site.recording_alice().await;
    publish(&site, (meeting, &host, &id), &[(&alice, 0)]).await;

    // The store is out when the recording stops.
    flaky.set_failing(true);
    let (status, stopped) = site
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/meetings/{meeting}/recordings/{id}/stop"),
            None,
            Some(&host),
        )
        .await;
    assert_eq!(status, 200, "{stopped}");
    eventually("the store refused the file twice", || async {
        (flaky.refused() >= 2).then_some(())
    })
    .await;
    // Still waiting for its file, which is kept.
    let row = site
        .repo
        .recording(meetings::domain::RecordingId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(row.status, meetings::domain::RecordingStatus::Processing);
    let work = site.dirs.path().join("work").join(&id);
    assert!(work.join("recording.webm").is_file());
    assert!(!site.storage.join(&row.storage_path).exists());

    // The store is back: the file is stored and the work files go.
    flaky.set_failing(false);
    let ready = site.recording_in(meeting, &host, &id, "ready").await;
    assert_eq!(ready["duration_seconds"], 2, "{ready}");
    assert!(ready["error_message"].is_null(), "{ready}");
    let stored = site.storage.join(&row.storage_path);
    assert_eq!(
        std::fs::metadata(&stored).unwrap().len(),
        ready["file_size_bytes"].as_u64().unwrap()
    );
    assert_eq!(demux(&stored)["tracks"].as_array().unwrap().len(), 2);
    eventually("the work files are removed", || async {
        (!work.exists()).then_some(())
    })
    .await;
}

/// Writes a spool of `frames` frames of `kind` (video: a key frame every 30) for track
/// `number` named `name` in `dir`, its last record cut short as a crash leaves it.
async fn crashed_spool(
    dir: &Path,
    number: u64,
    name: &str,
    kind: meetings::recording::webm::TrackKind,
    frames: u64,
) {
    use meetings::recording::spool::{SpoolWriter, TrackMeta};
    let video = matches!(kind, meetings::recording::webm::TrackKind::Video { .. });
    let path = dir.join(format!("{number}.spool"));
    let meta = TrackMeta {
        number,
        name: name.to_owned(),
        kind,
    };
    let mut spool = SpoolWriter::create(&path, &meta).await.unwrap();
    for n in 0..=frames {
        if video {
            let key = n % 30 == 0;
            spool
                .append(n * VIDEO_INTERVAL_US, key, &vp8_frame(key, n, 300))
                .await
                .unwrap();
        } else {
            spool
                .append(n * AUDIO_INTERVAL_US, true, &opus_packet(n))
                .await
                .unwrap();
        }
    }
    spool.finish().await.unwrap();
    // The last frame's write never completed.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
}

#[tokio::test]
async fn spools_left_by_a_crash_are_finished_or_removed_at_start() {
    use meetings::domain::{RecordingId, RecordingStatus};
    use meetings::recording::webm::{TrackKind, VideoCodec};
    let site = site().await;
    let host = site.account("host@example.com", "Host").await;
    let work = site.dirs.path().join("work");
    // A row as a server that stopped left it.
    let row = |status: &'static str| {
        let site = &site;
        let host = host.clone();
        let work = work.clone();
        async move {
            let meeting = site
                .meeting(
                    &host,
                    json!({"allow_recording": true, "enable_e2e_encryption": false}),
                )
                .await;
            let id = RecordingId::random();
            let row = site
                .repo
                .start_recording(&meetings::repo::NewRecording {
                    recording_id: id,
                    meeting_id: meeting,
                    started_by: None,
                    started_at: base::Clock::now(&*site.world.clock),
                    storage_path: format!("{meeting}/{id}.webm"),
                    storage_bucket: "local".into(),
                })
                .await
                .unwrap()
                .unwrap();
            let at = base::Clock::now(&*site.world.clock);
            match status {
                "recording" => {}
                "stale" => {
                    site.repo
                        .fail_recording(id, meetings::recording::STALE_MESSAGE, at)
                        .await
                        .unwrap()
                        .unwrap();
                }
                "ready" => {
                    site.repo.stop_recording(id, at).await.unwrap().unwrap();
                    site.repo
                        .finish_recording(
                            id,
                            &meetings::repo::FinishedRecording {
                                duration_seconds: 1,
                                file_size_bytes: 1,
                                video_codec: None,
                                audio_codec: Some("Opus".into()),
                                resolution: None,
                                note: None,
                            },
                        )
                        .await
                        .unwrap()
                        .unwrap();
                }
                other => unreachable!("{other}"),
            }
            std::fs::create_dir_all(work.join(id.to_string())).unwrap();
            row
        }
    };
    let camera = TrackKind::Video {
        codec: VideoCodec::Vp8,
        size: (320, 240),
    };
    let microphone = TrackKind::Audio { channels: 1 };

    // Cut off while recording: a camera and a microphone.
    let crashed = row("recording").await;
    let dir = work.join(crashed.recording_id.to_string());
    crashed_spool(&dir, 1, "Alice (camera)", camera.clone(), 60).await;
    crashed_spool(&dir, 2, "Alice (microphone)", microphone.clone(), 100).await;
    // Failed as stale by another replica before this one started again.
    let stale = row("stale").await;
    crashed_spool(
        &work.join(stale.recording_id.to_string()),
        1,
        "Bob (microphone)",
        microphone.clone(),
        50,
    )
    .await;
    // Nothing was spooled.
    let empty = row("recording").await;
    // Finished already, and a row that is gone: only files are left.
    let finished = row("ready").await;
    let unknown = work.join(RecordingId::random().to_string());
    std::fs::create_dir_all(&unknown).unwrap();
    // Being made by a live process, which holds its lock.
    let live = row("recording").await;
    let live_dir = work.join(live.recording_id.to_string());
    let live_lock = std::fs::File::create(live_dir.join("lock")).unwrap();
    live_lock.lock().unwrap();
    // A start cut short before it recorded anything.
    std::fs::create_dir_all(work.join(format!("{}.new", RecordingId::random()))).unwrap();
    // Something else in the work directory is not touched.
    std::fs::write(work.join("notes.txt"), b"mine").unwrap();

    // The server starts again.
    let recorder = meetings::recording::Recorder::new(
        site.repo.clone(),
        site.world.clock.clone(),
        &MeetingsSecretKey::generate().unwrap(),
        MediaDirectory::default(),
        RecordingsConfig {
            storage: Some(site.storage.display().to_string()),
            work_dir: Some(work.clone()),
            check_every: Duration::from_millis(200),
            ..RecordingsConfig::default()
        },
    );
    let mut resumed = recorder.recover().await;
    resumed.sort();
    // Taken up: those whose rows wait for a file (the empty one fails when muxed).
    let mut expected = vec![crashed.recording_id, stale.recording_id, empty.recording_id];
    expected.sort();
    assert_eq!(resumed, expected);

    let ready = |id: RecordingId| {
        let repo = site.repo.clone();
        eventually("the recording left behind is ready", move || {
            let repo = repo.clone();
            async move {
                let row = repo.recording(id).await.ok()?;
                (row.status == RecordingStatus::Ready).then_some(row)
            }
        })
    };
    let done = ready(crashed.recording_id).await;
    assert_eq!(
        done.error_message.as_deref(),
        Some(meetings::recording::RECOVERED_NOTE)
    );
    assert_eq!(done.video_codec.as_deref(), Some("VP8"));
    assert_eq!(done.audio_codec.as_deref(), Some("Opus"));
    assert_eq!(done.resolution.as_deref(), Some("320x240"));
    assert_eq!(done.duration_seconds, Some(2));
    assert!(done.ended_at.is_some());
    let info = demux(&site.storage.join(&done.storage_path));
    assert_eq!(info["tracks"].as_array().unwrap().len(), 2, "{info}");
    let revived = ready(stale.recording_id).await;
    assert_eq!(revived.audio_codec.as_deref(), Some("Opus"));
    assert!(site.storage.join(&revived.storage_path).is_file());

    let failed = eventually("the empty one is failed", || async {
        let row = site.repo.recording(empty.recording_id).await.ok()?;
        (row.status == RecordingStatus::Failed).then_some(row)
    })
    .await;
    assert_eq!(
        failed.error_message.as_deref(),
        Some("nothing was recorded: no participant sent audio or video")
    );
    let still = site.repo.recording(finished.recording_id).await.unwrap();
    assert_eq!(still.status, RecordingStatus::Ready);
    assert_eq!(still.file_size_bytes, Some(1));

    // Nothing is left but the live recording's files and what is not a recording's.
    eventually("the work directory holds only what is in use", || async {
        let mut left: Vec<String> = std::fs::read_dir(&work)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![live.recording_id.to_string(), "notes.txt".to_owned()];
        want.sort();
        (left == want).then_some(())
    })
    .await;
    assert_eq!(
        site.repo.recording(live.recording_id).await.unwrap().status,
        RecordingStatus::Recording
    );
    drop(live_lock);
}

#[tokio::test]
async fn disallowing_recording_stops_the_running_recording_and_encrypting_under_it_is_refused() {
    let site = site().await;
    let Recording {
        host,
        meeting,
        alice,
        id,
        ..
    } = site.recording_alice().await;
    publish(&site, (meeting, &host, &id), &[(&alice, 0)]).await;

    // End-to-end encryption cannot be turned on under the people in the call (their
    // keys and frames depend on it): refused, and the recording goes on.
    let settings = format!("/api/v1/meetings/{meeting}/settings");
    let (status, body) = site
        .call(
            reqwest::Method::PATCH,
            &settings,
            Some(json!({"enable_e2e_encryption": true})),
            Some(&host),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "meeting_in_progress", "{body}");
    let listed = site.recordings(meeting, &host).await;
    assert_eq!(listed[0]["status"], "recording", "{listed:?}");

    let (status, body) = site
        .call(
            reqwest::Method::PATCH,
            &settings,
            Some(json!({"allow_recording": false})),
            Some(&host),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // It stops (what was recorded until then is kept) and says why.
    let ready = site.recording_in(meeting, &host, &id, "ready").await;
    assert_eq!(ready["duration_seconds"], 2, "{ready}");
    assert_eq!(
        ready["error_message"],
        "the recording stopped because this meeting does not allow recording",
        "{ready}"
    );
    // And a new one is refused.
    let (status, _) = site.start_recording(meeting, &host).await;
    assert_eq!(status, 409);
    drop(alice);
}

#[tokio::test]
async fn a_recording_a_stopped_server_left_is_not_shown_running_on_the_meeting_page() {
    // Every row not touched since it was written counts as left behind.
    let site = site_with(|r| r.stale_after = Duration::ZERO).await;
    let (cookie, csrf) = web_session(&site, 4242, "Mira").await;
    let meeting = site
        .hosted_meeting(
            4242,
            meetings::repo::MeetingSettings {
                allow_recording: true,
                enable_e2e_encryption: false,
                ..Default::default()
            },
        )
        .await;
    let code = meeting.meeting_code.as_str().to_owned();
    // A row some server started and never finished (nothing records it here).
    let orphan = site
        .repo
        .start_recording(&meetings::repo::NewRecording {
            recording_id: meetings::domain::RecordingId::random(),
            meeting_id: meeting.meeting_id,
            started_by: None,
            started_at: base::Clock::now(&*site.world.clock),
            storage_path: format!("{}/orphan.webm", meeting.meeting_id),
            storage_bucket: "local".into(),
        })
        .await
        .unwrap()
        .unwrap();

    // Every visitor's page is told it is not being recorded.
    eventually("the page says the meeting is not recorded", || async {
        let response = site
            .http
            .get(format!("{}/meet/{code}/recording/now", site.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        (body == json!({"recording": false})).then_some(())
    })
    .await;
    let row = site.repo.recording(orphan.recording_id).await.unwrap();
    assert_eq!(row.status, meetings::domain::RecordingStatus::Failed);
    assert_eq!(
        row.error_message.as_deref(),
        Some(meetings::recording::STALE_MESSAGE)
    );

    // The host's control shows no recording running, lists it failed, and its Stop
    // leaves the row as it is.
    let control = format!("/meet/{code}/recording");
    let (status, panel) = site
        .page_call(reqwest::Method::GET, &control, &cookie, None)
        .await;
    assert_eq!(status, 200, "{panel}");
    assert!(panel["recording"].is_null(), "{panel}");
    assert_eq!(panel["recordings"][0]["status"], "failed", "{panel}");
    let (status, body) = site
        .page_call(
            reqwest::Method::POST,
            &format!("{control}/stop"),
            &cookie,
            Some(&csrf),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("not_recording")),
        "{body}"
    );
    assert_eq!(
        site.repo
            .recording(orphan.recording_id)
            .await
            .unwrap()
            .status,
        meetings::domain::RecordingStatus::Failed
    );
}

#[tokio::test]
async fn a_file_stored_after_its_recording_was_deleted_is_deleted_too() {
    let (site, flaky) = flaky_site().await;
    let Recording {
        host,
        meeting,
        alice,
        id,
        ..
    } = site.recording_alice().await;
    let recording_id = meetings::domain::RecordingId::parse(&id).unwrap();
    publish(&site, (meeting, &host, &id), &[(&alice, 0)]).await;
    let path = site
        .repo
        .recording(recording_id)
        .await
        .unwrap()
        .storage_path;

    // The file is on its way to the store when the row goes (past retention).
    flaky.hold(true);
    let (status, _) = site
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/meetings/{meeting}/recordings/{id}/stop"),
            None,
            Some(&host),
        )
        .await;
    assert_eq!(status, 200);
    eventually("the file is being stored", || async {
        (flaky.waiting() >= 1).then_some(())
    })
    .await;
    let later = chrono::Utc::now() + chrono::Duration::days(800);
    let gone = meetings::jobs::delete_expired_recordings(
        &site.ctx.postgres,
        &meetings::domain::Retention::default(),
        later,
        None,
    )
    .await
    .unwrap();
    assert_eq!(gone.deleted, 1);
    flaky.hold(false);

    // It was stored, and then deleted: nobody's file is left behind.
    eventually(
        "the stored file is deleted and the work files removed",
        || async {
            let work = site.dirs.path().join("work").join(&id);
            (flaky.stored() >= 1 && !site.storage.join(&path).exists() && !work.exists())
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_recording_failed_as_left_behind_while_its_server_lives_is_still_finished() {
    let site = site().await;
    let Recording {
        host,
        meeting,
        alice,
        id,
        ..
    } = site.recording_alice().await;
    publish(&site, (meeting, &host, &id), &[(&alice, 0)]).await;

    // Its touches did not reach the database for a while (an outage), and another
    // replica took it for left behind.
    let recording_id = meetings::domain::RecordingId::parse(&id).unwrap();
    site.repo
        .fail_recording(
            recording_id,
            meetings::recording::STALE_MESSAGE,
            base::Clock::now(&*site.world.clock),
        )
        .await
        .unwrap()
        .unwrap();
    // The server making it still has its frames: it stops, and finishes it.
    let ready = site.recording_in(meeting, &host, &id, "ready").await;
    assert_eq!(ready["duration_seconds"], 2, "{ready}");
    assert!(ready["error_message"].is_null(), "{ready}");
    let row = site.repo.recording(recording_id).await.unwrap();
    assert!(site.storage.join(&row.storage_path).is_file());
}

#[tokio::test]
async fn a_full_disk_stops_the_recording_and_keeps_what_was_spooled() {
    let site = site().await;
    let Recording {
        host,
        meeting,
        alice,
        id,
        ..
    } = site.recording_alice().await;
    // Two seconds of camera: the first track.
    for n in 0..VIDEO_FRAMES {
        let key = n % 30 == 0;
        let flags = if key { FLAG_KEY } else { 0 };
        alice
            .send_frame(
                TRACK_CAMERA,
                flags,
                n * VIDEO_INTERVAL_US,
                u32::try_from(n).unwrap(),
                &vp8_frame(key, n, 900),
            )
            .await
            .unwrap();
        if (n + 1) % 20 == 0 {
            site.recorded((meeting, &host, &id), n + 1).await;
        }
    }
    // The disk is full when the microphone's track is written: its spool is
    // `/dev/full`, where every write fails for want of space.
    let work = site.dirs.path().join("work").join(&id);
    std::os::unix::fs::symlink("/dev/full", work.join("2.spool")).unwrap();
    for n in 0..400 {
        alice
            .send_frame(
                TRACK_AUDIO,
                FLAG_KEY,
                n * AUDIO_INTERVAL_US,
                u32::try_from(n).unwrap(),
                &opus_packet(n),
            )
            .await
            .unwrap();
    }

    // It stops, and what was spooled is the file; the row says why it is short.
    let ready = site.recording_in(meeting, &host, &id, "ready").await;
    let note = ready["error_message"].as_str().unwrap();
    assert!(
        note.starts_with("the recording stopped early: a frame could not be written"),
        "{note}"
    );
    assert_eq!(ready["duration_seconds"], 2, "{ready}");
    assert_eq!(ready["video_codec"], "VP8", "{ready}");
    let row = site
        .repo
        .recording(meetings::domain::RecordingId::parse(&id).unwrap())
        .await
        .unwrap();
    let info = demux(&site.storage.join(&row.storage_path));
    let tracks = info["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 1, "{info}");
    assert_eq!(tracks[0]["properties"]["track_name"], "Alice (camera)");
    eventually("the work files are removed", || async {
        (!work.exists()).then_some(())
    })
    .await;
}
