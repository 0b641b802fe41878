//! The media handler end to end: real WebTransport clients against a handler bound on
//! 127.0.0.1, over real PostgreSQL and Redis; media grants made by the meeting
//! controller. Every wait has a deadline; nothing sleeps to synchronise and no
//! assertion is about timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::media::next_frame;
use common::wt::DEADLINE;
use common::{hash_of, meeting};
use meetings::auth::Auth;
use meetings::controller::client::{Client, ClientError};
use meetings::controller::{
    ControllerConfig, MediaDirectory, MediaHandlerAddress, MediaHandlers, MeetingController,
};
use meetings::domain::{
    ConnectionType, ControllerId, DisplayName, HandlerId, Liveness, ParticipantId, Region,
};
use meetings::media::HandlerConfig;
use meetings::media::client::{MediaClient, MediaClientError, ReceivedFrame};
use meetings::media::proto::{self, FLAG_E2E, FLAG_KEY, FrameHeader};
use meetings::repo::{JoinRequest, JoinWith};
use meetings::{MeetingsConfig, schema};
use testkit::{World, eventually};
use tokio_util::sync::CancellationToken;

/// A media handler ([`common::media`]'s) over a test world of its own, announcing
/// itself in a directory.
struct Handler {
    world: World,
    id: HandlerId,
    /// Where it announced itself.
    directory: MediaDirectory,
    handler: common::media::Handler,
}

impl std::ops::Deref for Handler {
    type Target = common::media::Handler;

    fn deref(&self) -> &common::media::Handler {
        &self.handler
    }
}

/// A handler with the test defaults (heartbeat every 200 ms) changed by `adjust`.
async fn handler_with(adjust: impl FnOnce(&mut HandlerConfig)) -> Handler {
    let (world, repo) = common::world().await;
    let id = HandlerId::parse("mh-test").unwrap();
    let directory = MediaDirectory::default();
    let handler = common::media::start_with(&repo, id.as_str(), |config| {
        config.directory = Some(directory.clone());
        adjust(config);
    })
    .await;
    Handler {
        world,
        id,
        directory,
        handler,
    }
}

async fn handler() -> Handler {
    handler_with(|_| {}).await
}

impl Handler {
    /// Waits until `n` participants have their session open on the handler.
    async fn connected(&self, n: usize) {
        self.until("the sessions are open on the handler", |l| {
            l.participants() == n
        })
        .await;
    }

    async fn stop(self) {
        self.handler.stop().await;
    }
}

/// What one participant publishes in the three-way test: (track, flags, timestamp, seq,
/// payload), distinct per publisher.
fn frames_of(index: u8) -> Vec<(u8, u8, u64, u32, Vec<u8>)> {
    vec![
        (
            1,
            FLAG_KEY,
            1_000 + u64::from(index),
            0,
            vec![index; 10_000],
        ),
        (1, 0, 34_333, 1, vec![index.wrapping_add(100); 3_000]),
        (0, FLAG_KEY, 20_000, 0, vec![0xee, index, 0x00, 0xff]),
        (
            2,
            FLAG_KEY | FLAG_E2E,
            u64::MAX,
            u32::MAX,
            (0..=255).collect(),
        ),
        (0, 0, 40_000, 1, Vec::new()),
    ]
}

type Seen = (ParticipantId, u8, u8, u64, u32, Vec<u8>);

fn seen(frame: ReceivedFrame) -> Seen {
    let h = frame.header;
    (
        frame.publisher,
        h.track,
        h.flags,
        h.timestamp,
        h.seq,
        frame.payload,
    )
}

#[tokio::test]
async fn three_participants_each_receive_the_others_frames_byte_exact_and_never_their_own() {
    let h = handler().await;
    let m = meeting(&h.repo, "Three").await;
    let elsewhere = meeting(&h.repo, "Elsewhere").await;
    let mut three = Vec::new();
    for _ in 0..3 {
        three.push(h.connect(m).await);
    }
    let (outsider, mut outside) = h.connect(elsewhere).await;
    let (neighbour, neighbour_client) = h.connect(elsewhere).await;
    h.connected(5).await;

    for (i, (_, client)) in three.iter().enumerate() {
        for (track, flags, ts, seq, payload) in frames_of(u8::try_from(i).unwrap()) {
            client
                .send_frame(track, flags, ts, seq, &payload)
                .await
                .unwrap();
        }
    }
    let ids: Vec<ParticipantId> = three.iter().map(|(id, _)| *id).collect();
    for (i, (me, client)) in three.iter_mut().enumerate() {
        let mut expected: HashSet<Seen> = HashSet::new();
        for (j, publisher) in ids.iter().enumerate() {
            if j == i {
                continue;
            }
            for (track, flags, ts, seq, payload) in frames_of(u8::try_from(j).unwrap()) {
                expected.insert((*publisher, track, flags, ts, seq, payload));
            }
        }
        let mut got = HashSet::new();
        while got.len() < expected.len() {
            let frame = seen(next_frame(client).await);
            assert_ne!(frame.0, *me, "never its own frames");
            assert!(expected.contains(&frame), "unexpected frame {:?}", &frame.0);
            got.insert(frame);
        }
        assert_eq!(got, expected);
    }

    // The other meeting's participant got none of them: its first frame is its
    // neighbour's, sent after all of the above were delivered.
    neighbour_client
        .send_frame(1, FLAG_KEY, 7, 7, b"next door")
        .await
        .unwrap();
    let first = next_frame(&mut outside).await;
    assert_eq!(first.publisher, neighbour);
    assert_eq!(first.payload, b"next door");
    assert_ne!(outsider, neighbour);
    h.stop().await;
}

#[tokio::test]
async fn a_lanes_frames_share_one_stream_until_the_next_video_key_frame() {
    let h = handler().await;
    let m = meeting(&h.repo, "Lanes").await;
    let (publisher_id, publisher) = h.connect(m).await;
    let (_, mut subscriber) = h.connect(m).await;
    h.connected(2).await;

    // Two groups of camera frames (a key frame, then four more) and ten audio frames,
    // interleaved: every frame arrives byte exact on three streams (the camera's two
    // groups, and audio's one), audio in the order sent.
    let mut sent = Vec::new();
    for seq in 0..10u32 {
        let flags = if seq % 5 == 0 { FLAG_KEY } else { 0 };
        let video = format!("video {seq}").into_bytes();
        let audio = format!("audio {seq}").into_bytes();
        publisher
            .send_frame(proto::TRACK_CAMERA, flags, u64::from(seq), seq, &video)
            .await
            .unwrap();
        publisher
            .send_frame(proto::TRACK_AUDIO, FLAG_KEY, u64::from(seq), seq, &audio)
            .await
            .unwrap();
        sent.push((proto::TRACK_CAMERA, seq, video));
        sent.push((proto::TRACK_AUDIO, seq, audio));
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let frame = next_frame(&mut subscriber).await;
        assert_eq!(frame.publisher, publisher_id);
        got.push((frame.header.track, frame.header.seq, frame.payload));
    }
    let audio: Vec<u32> = got
        .iter()
        .filter(|(track, _, _)| *track == proto::TRACK_AUDIO)
        .map(|(_, seq, _)| *seq)
        .collect();
    assert_eq!(audio, (0..10).collect::<Vec<_>>());
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
    assert_eq!(subscriber.streams_received(), 3);

    // The next key frame starts a fourth; audio goes on on its own.
    publisher
        .send_frame(proto::TRACK_CAMERA, FLAG_KEY, 10, 10, b"key")
        .await
        .unwrap();
    publisher
        .send_frame(proto::TRACK_AUDIO, FLAG_KEY, 10, 10, b"audio 10")
        .await
        .unwrap();
    for _ in 0..2 {
        next_frame(&mut subscriber).await;
    }
    assert_eq!(subscriber.streams_received(), 4);
    h.stop().await;
}

#[tokio::test]
async fn a_reused_wrong_meeting_or_signalling_token_is_refused() {
    let h = handler().await;
    let m = meeting(&h.repo, "Tokens").await;
    let other = meeting(&h.repo, "Other").await;
    let participant = h.join(m).await;
    let media = ConnectionType::Media;

    let token = h.token(m, participant, media).await;
    let first = h.open("media", m, &token).await.unwrap();
    let reused = h.open("media", m, &token).await;
    assert!(
        matches!(reused, Err(MediaClientError::Rejected)),
        "{reused:?}"
    );

    let for_m = h.token(m, participant, media).await;
    let wrong = h.open("media", other, &for_m).await;
    assert!(
        matches!(wrong, Err(MediaClientError::Rejected)),
        "{wrong:?}"
    );
    // Refused tokens are spent: the right meeting does not take it afterwards either.
    let after = h.open("media", m, &for_m).await;
    assert!(
        matches!(after, Err(MediaClientError::Rejected)),
        "{after:?}"
    );

    let signalling = h
        .repo
        .issue_participant_token(
            m,
            participant,
            meetings::domain::ParticipantConnection::Signaling,
        )
        .await
        .unwrap();
    let typed = h.open("media", m, signalling.expose()).await;
    assert!(
        matches!(typed, Err(MediaClientError::Rejected)),
        "{typed:?}"
    );

    let unknown = h.open("media", m, &"ab".repeat(32)).await;
    assert!(
        matches!(unknown, Err(MediaClientError::Rejected)),
        "{unknown:?}"
    );
    let fresh = h.token(m, participant, media).await;
    let path = h.open("meetings", m, &fresh).await;
    assert!(matches!(path, Err(MediaClientError::Rejected)), "{path:?}");

    first.close();
    h.stop().await;
}

/// A participant's `media` token opens a session only while its participant is in the
/// meeting: not for an id that never joined, nor for one whose join was undone because
/// its row was not written (the token came from the join's own step). A `recorder`
/// token, the server's own clients', opens one under an id that never joins, on
/// `/media/` only.
#[tokio::test]
async fn a_media_token_opens_a_session_only_for_a_participant_in_the_meeting() {
    let h = handler().await;
    let m = meeting(&h.repo, "Present").await;
    let media = ConnectionType::Media;

    let stranger = h.token(m, ParticipantId::random(), media).await;
    let refused = h.open("media", m, &stranger).await;
    assert!(
        matches!(refused, Err(MediaClientError::Rejected)),
        "{refused:?}"
    );

    let undone = meeting(&h.repo, "Undone").await;
    let read = h.repo.meeting(undone).await.unwrap();
    let who = ParticipantId::random();
    let (joined, row) = h
        .repo
        .join_meeting(
            &read,
            who,
            &JoinRequest {
                meeting_id: undone,
                user_id: None,
                display_name: DisplayName::parse("Undone").unwrap(),
                ip_address: None,
                user_agent: None,
                client_version: None,
            },
            &HashSet::new(),
            JoinWith {
                media_token: true,
                ..JoinWith::default()
            },
        )
        .await
        .unwrap();
    // The meeting ends between the join's Redis step and its row: no row is written,
    // and the join is undone.
    h.repo.end_meeting(undone).await.unwrap();
    assert!(row.write().await.is_err());
    let unspent = joined.media_token.expect("the join's own media token");
    let refused = h.open("media", undone, unspent.expose()).await;
    assert!(
        matches!(refused, Err(MediaClientError::Rejected)),
        "{refused:?}"
    );

    let (_, _participant) = h.connect(m).await;
    let (_, _recorder) = h.recorder(m).await;
    h.connected(2).await;
    let recorder = h
        .token(m, ParticipantId::random(), ConnectionType::Recorder)
        .await;
    let relayed = h.open("relay", m, &recorder).await;
    assert!(
        matches!(relayed, Err(MediaClientError::Rejected)),
        "{relayed:?}"
    );
    h.stop().await;
}

/// A `recorder` token opens no signalling session at the meeting controller, even one
/// naming a participant the controller expects; the grant's own token still does.
#[tokio::test]
async fn a_recorder_token_is_refused_by_the_meeting_controller() {
    let c = common::wt::controller().await;
    let m = meeting(&c.repo, "Signalled").await;
    let grant = c.grant(m, "Guest").await;
    let recorder = c
        .repo
        .issue_service_token(
            m,
            grant.participant_id,
            meetings::domain::ServiceConnection::Recorder,
        )
        .await
        .unwrap();
    let refused = Client::connect(
        &grant.webtransport_url,
        recorder.expose(),
        grant.certificate_hash.as_deref(),
    )
    .await;
    assert!(matches!(refused, Err(ClientError::Rejected)), "{refused:?}");

    let mut client = c.connect(&grant).await;
    let response = common::wt::join_in_time(&mut client, &grant).await;
    assert_eq!(response.participant_id, grant.participant_id.to_string());
    c.stop().await;
}

#[tokio::test]
async fn garbage_on_the_control_stream_or_an_oversized_frame_closes_only_that_session() {
    let h = handler().await;
    let m = meeting(&h.repo, "Rough").await;
    let (_, mut garbage) = h.connect(m).await;
    let (_, oversized) = h.connect(m).await;
    let (_, bad_header) = h.connect(m).await;
    let (publisher, sender) = h.connect(m).await;
    let (_, mut receiver) = h.connect(m).await;
    h.connected(5).await;

    garbage
        .send_control_raw(b"\x00\x00\x00\x05hello")
        .await
        .unwrap();
    let closed = tokio::time::timeout(DEADLINE, garbage.closed())
        .await
        .expect("closed in time");
    assert_eq!(closed.code, Some(u64::from(proto::CLOSE_PROTOCOL_ERROR)));
    assert!(closed.reason.starts_with("invalid_message"), "{closed:?}");

    let too_big = vec![0u8; proto::MAX_MEDIA_FRAME + 1];
    let mut header = FrameHeader {
        track: 1,
        flags: FLAG_KEY,
        layer: 0,
        timestamp: 0,
        seq: 0,
    }
    .encode()
    .to_vec();
    header.extend_from_slice(&too_big[proto::FRAME_HEADER_LEN..]);
    // The handler may close the session before the whole frame is written.
    let _ = oversized.send_raw_frame(&header).await;
    let closed = tokio::time::timeout(DEADLINE, oversized.closed())
        .await
        .expect("closed in time");
    assert_eq!(closed.code, Some(u64::from(proto::CLOSE_PROTOCOL_ERROR)));
    assert!(closed.reason.starts_with("frame_too_large"), "{closed:?}");

    bad_header.send_raw_frame(b"\x02short").await.unwrap();
    let closed = tokio::time::timeout(DEADLINE, bad_header.closed())
        .await
        .expect("closed in time");
    assert_eq!(closed.code, Some(u64::from(proto::CLOSE_PROTOCOL_ERROR)));

    h.connected(2).await;
    sender
        .send_frame(0, FLAG_KEY, 1, 1, b"still here")
        .await
        .unwrap();
    let frame = next_frame(&mut receiver).await;
    assert_eq!(frame.publisher, publisher);
    assert_eq!(frame.payload, b"still here");
    h.stop().await;
}

#[tokio::test]
async fn a_late_joiner_asks_the_publishers_for_a_key_frame_and_starts_at_one() {
    let h = handler().await;
    let m = meeting(&h.repo, "Late").await;
    let (publisher_id, mut publisher) = h.connect(m).await;
    let (_, mut early) = h.connect(m).await;
    h.connected(2).await;
    publisher
        .send_frame(1, FLAG_KEY, 0, 0, b"key 0")
        .await
        .unwrap();
    publisher.send_frame(1, 0, 1, 1, b"delta 1").await.unwrap();
    for _ in 0..2 {
        next_frame(&mut early).await;
    }

    let (_, mut late) = h.connect(m).await;
    let asked = tokio::time::timeout(DEADLINE, publisher.next_keyframe_request())
        .await
        .expect("a KeyframeRequest in time")
        .unwrap();
    assert_eq!(asked, Some(proto::TRACK_CAMERA));
    // The late one skips video until the key frame that answers the request.
    publisher.send_frame(1, 0, 2, 2, b"delta 2").await.unwrap();
    publisher
        .send_frame(1, FLAG_KEY, 3, 3, b"key 3")
        .await
        .unwrap();
    let first = next_frame(&mut late).await;
    assert_eq!(first.publisher, publisher_id);
    assert_eq!(
        (first.header.seq, first.payload.as_slice()),
        (3, &b"key 3"[..])
    );
    // A subscriber may ask too.
    late.request_keyframe(publisher_id, proto::TRACK_SCREEN)
        .await
        .unwrap();
    let asked = tokio::time::timeout(DEADLINE, publisher.next_keyframe_request())
        .await
        .expect("a KeyframeRequest in time")
        .unwrap();
    assert_eq!(asked, Some(proto::TRACK_SCREEN));
    h.stop().await;
}

/// Frames the slow-subscriber test publishes before the slow one reads again.
const SENT: u32 = 300;
/// Frames the publisher sends ahead of the fast subscriber.
const WINDOW: u32 = 8;
/// Sequence numbers from here on are the recovery key frames.
const RECOVERY: u32 = 1_000_000;

#[tokio::test]
async fn a_slow_subscriber_does_not_lower_the_frames_the_others_receive() {
    // However long it stays behind, it is not closed here.
    let h = handler_with(|c| {
        c.subscriber_queue = 16;
        c.stalled_after = Duration::from_secs(3600);
    })
    .await;
    let m = meeting(&h.repo, "Uneven").await;
    let (publisher_id, mut publisher) = h.connect(m).await;
    let (_, mut fast) = h.connect(m).await;
    let (_, mut slow) = h.connect(m).await;
    h.connected(3).await;

    // 300 camera frames of 10 KB, a key frame every 30; the publisher keeps at most
    // WINDOW frames ahead of the fast subscriber, which reads all along. The slow one
    // reads nothing.
    let payload = vec![0x5a; 10_000];
    let mut fast_seqs = HashSet::new();
    for seq in 0..SENT {
        let flags = if seq % 30 == 0 { FLAG_KEY } else { 0 };
        publisher
            .send_frame(1, flags, u64::from(seq) * 33_333, seq, &payload)
            .await
            .unwrap();
        while fast_seqs.len() + (WINDOW as usize) <= seq as usize {
            let frame = next_frame(&mut fast).await;
            assert_eq!(frame.publisher, publisher_id);
            fast_seqs.insert(frame.header.seq);
        }
    }
    while fast_seqs.len() < SENT as usize {
        fast_seqs.insert(next_frame(&mut fast).await.header.seq);
    }
    assert_eq!(fast_seqs, (0..SENT).collect::<HashSet<_>>(), "every frame");

    // The publisher was asked for a camera key frame on the slow one's behalf.
    let asked = tokio::time::timeout(DEADLINE, publisher.next_keyframe_request())
        .await
        .expect("a KeyframeRequest in time")
        .unwrap();
    assert_eq!(asked, Some(proto::TRACK_CAMERA));

    // The slow one reads again: it got fewer frames, and recovers at a key frame. It is
    // not asked for again on its behalf while its queue is still full at one: the
    // publisher sends one each time the slow one has read a queue's worth of its
    // backlog, until it has one.
    let mut slow_seqs = HashSet::new();
    let mut key = RECOVERY;
    publisher
        .send_frame(1, FLAG_KEY, 0, key, &payload)
        .await
        .unwrap();
    let recovered = loop {
        let frame = next_frame(&mut slow).await;
        if frame.header.seq >= RECOVERY {
            assert!(frame.header.is_key());
            break frame.header.seq;
        }
        slow_seqs.insert(frame.header.seq);
        if slow_seqs.len() % 16 == 0 {
            key += 1;
            publisher
                .send_frame(1, FLAG_KEY, 0, key, &payload)
                .await
                .unwrap();
        }
    };
    assert!(recovered >= RECOVERY);
    assert!(
        slow_seqs.len() < SENT as usize,
        "the slow subscriber was dropped frames ({} of {SENT})",
        slow_seqs.len()
    );
    // The fast one never lost any of the recovery key frames either.
    for seq in RECOVERY..=recovered {
        let frame = next_frame(&mut fast).await;
        assert!(
            frame.header.seq >= RECOVERY && frame.header.seq <= key,
            "{seq}"
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn the_handler_registers_and_heartbeats_its_load() {
    let h = handler().await;
    let m = meeting(&h.repo, "Busy").await;
    let (_, publisher) = h.connect(m).await;
    let (_, mut subscriber) = h.connect(m).await;
    h.connected(2).await;

    let row: (String, i32, i32, Vec<String>) = sqlx::query_as(
        "SELECT endpoint, max_streams, max_bitrate_mbps, supported_codecs \
         FROM meet.media_handlers WHERE handler_id = $1",
    )
    .bind(h.id.as_str())
    .fetch_one(h.repo.postgres().pool())
    .await
    .unwrap();
    assert_eq!(row.0, h.endpoint);
    assert_eq!((row.1, row.2), (1000, 1000));
    assert!(row.3.contains(&"VP8".to_owned()) && row.3.contains(&"Opus".to_owned()));
    assert_eq!(
        h.directory.address(&h.id),
        Some(MediaHandlerAddress {
            handler_id: h.id.clone(),
            endpoint: h.endpoint.clone(),
            certificate_hash: Some(h.certificate_hash.clone()),
        }),
        "announced for the in-process controller"
    );

    // Publish audio and camera until a heartbeat reports two streams and traffic.
    let payload = vec![1u8; 20_000];
    let repo = h.repo.clone();
    let id = h.id.clone();
    let mut seq = 0u32;
    let reported = loop {
        for track in [proto::TRACK_AUDIO, proto::TRACK_CAMERA] {
            publisher
                .send_frame(track, FLAG_KEY, 0, seq, &payload)
                .await
                .unwrap();
            next_frame(&mut subscriber).await;
        }
        seq += 1;
        let loads = repo
            .handler_loads(&Region::local(), &Liveness::default())
            .await
            .unwrap();
        let load = loads.into_iter().find(|l| l.handler_id == id).unwrap();
        if load.current_streams == 2 && load.current_bitrate_mbps >= 1 {
            break load;
        }
        assert!(seq < 100_000, "no heartbeat reported the load");
    };
    assert_eq!(reported.max_streams, 1000);
    assert_eq!(h.load.streams(), 2);
    h.stop().await;
}

/// A meeting controller granting `h`'s handlers (its directory), sweeping every
/// `sweep_every`, registered: its shutdown and task.
async fn granting_controller(
    h: &Handler,
    auth: &Auth,
    sweep_every: Duration,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), meetings::controller::ControllerError>>,
) {
    let mut config = ControllerConfig::new(ControllerId::parse("mc-media").unwrap());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.heartbeat_every = Duration::from_millis(200);
    config.sweep_every = sweep_every;
    config.media = Some(MediaHandlers {
        directory: h.directory.clone(),
        liveness: Liveness::default(),
    });
    let controller = MeetingController::bind(h.repo.clone(), auth.clone(), config)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(controller.run(shutdown.clone()));
    let controller_id = ControllerId::parse("mc-media").unwrap();
    eventually("the controller registers", || {
        let (repo, id) = (h.repo.clone(), controller_id.clone());
        async move { repo.controller(&id).await.ok() }
    })
    .await;
    (shutdown, task)
}

/// Guest `name` joined to meeting `m` on the controller `repo` assigns: its grant, its
/// signalling client and the `JoinResponse`.
async fn join_granted(
    repo: &meetings::Repo,
    auth: &Auth,
    m: meetings::domain::MeetingId,
    name: &str,
) -> (
    meetings::grant::JoinGrant,
    Client,
    meetings::controller::proto::JoinResponse,
) {
    let join = common::wt::guest_grant(repo, auth, m, name).await;
    let mut signalling = Client::connect(
        &join.webtransport_url,
        join.wt_token.expose(),
        join.certificate_hash.as_deref(),
    )
    .await
    .unwrap();
    let response = common::wt::join_in_time(&mut signalling, &join).await;
    (join, signalling, response)
}

async fn stop_controller(
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), meetings::controller::ControllerError>>,
) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the controller stops in time")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_join_response_carries_a_working_media_grant() {
    let h = handler().await;
    let auth: Auth = meetings::auth(&h.world.ctx, &MeetingsConfig::default());
    auth.rotate_keys().await.unwrap();
    let (shutdown, task) = granting_controller(&h, &auth, Duration::from_millis(200)).await;

    let m = meeting(&h.repo, "With media").await;
    let mut joined = Vec::new();
    for name in ["Alice", "Bob"] {
        let (join, signalling, response) = join_granted(&h.repo, &auth, m, name).await;
        let media = response.media.clone().expect("a media grant");
        assert_eq!(media.url, format!("{}/media/{m}", h.endpoint));
        assert_eq!(media.certificate_hash, h.certificate_hash);
        assert_eq!(response.media_handlers, vec![h.endpoint.clone()]);
        let client = MediaClient::connect(
            &media.url,
            &media.wt_token,
            Some(media.certificate_hash.as_str()),
        )
        .await
        .unwrap();
        joined.push((join.participant_id, signalling, client, media));
    }
    let state = hash_of(&h.world.redis, &schema::meeting_key(m)).await;
    assert_eq!(state["media_handler_id"], h.id.as_str());
    h.connected(2).await;

    joined[0]
        .2
        .send_frame(1, FLAG_KEY, 5, 0, b"hello bob")
        .await
        .unwrap();
    let frame = next_frame(&mut joined[1].2).await;
    assert_eq!(frame.publisher, joined[0].0);
    assert_eq!(frame.payload, b"hello bob");

    // The grant's token was one-time.
    let reused = MediaClient::connect(
        &joined[0].3.url,
        &joined[0].3.wt_token,
        Some(&h.certificate_hash),
    )
    .await;
    assert!(
        matches!(reused, Err(MediaClientError::Rejected)),
        "{reused:?}"
    );

    stop_controller(shutdown, task).await;
    drop(joined);
    h.stop().await;
}

/// `RequestMediaGrant` on `signalling`: the new grant, or the `Error` answered.
async fn ask_media_grant(
    signalling: &mut Client,
) -> Result<meetings::controller::proto::MediaGrant, meetings::controller::proto::Error> {
    use meetings::controller::proto::client_message::Payload as C;
    use meetings::controller::proto::server_message::Payload as S;
    signalling
        .send(C::RequestMediaGrant(
            meetings::controller::proto::RequestMediaGrant {},
        ))
        .await
        .unwrap();
    match common::wt::next_event(signalling).await {
        S::MediaGrant(grant) => Ok(grant),
        S::Error(error) => Err(error),
        other => panic!("neither a media grant nor an error: {other:?}"),
    }
}

/// A participant whose media session failed or was lost asks for a new media grant: a
/// new one-time token for the meeting's handler while that one serves, for another
/// once it stopped; at most 6 a minute, and the 7th is refused with the session kept.
#[tokio::test]
async fn a_new_media_grant_names_the_meetings_handler_while_it_serves_and_another_once_it_stopped()
{
    let h = handler().await;
    let auth: Auth = meetings::auth(&h.world.ctx, &MeetingsConfig::default());
    auth.rotate_keys().await.unwrap();
    // No sweep during the test (the first is at the start): the renewal alone finds
    // that the handler stopped.
    let (shutdown, task) = granting_controller(&h, &auth, Duration::from_secs(3600)).await;
    let m = meeting(&h.repo, "Flaky media").await;
    let (_, mut signalling, response) = join_granted(&h.repo, &auth, m, "Alice").await;
    let first = response.media.expect("a media grant with the join");

    // The handler serves: a new token for it, which opens a session (the first grant's
    // token, never used, is not what opens it).
    let again = ask_media_grant(&mut signalling).await.unwrap();
    assert_eq!(again.url, first.url);
    assert_eq!(again.certificate_hash, h.certificate_hash);
    assert_ne!(again.wt_token, first.wt_token);
    let session = MediaClient::connect(&again.url, &again.wt_token, Some(&h.certificate_hash))
        .await
        .unwrap();
    h.connected(1).await;
    drop(session);

    // Another handler starts, and the meeting's stops (it reports `draining`): the next
    // grant names the other one, whose session opens, and the meeting is its now.
    let other = common::media::start_with(&h.repo, "mh-other", |config| {
        config.directory = Some(h.directory.clone());
    })
    .await;
    let Handler { world, handler, .. } = h;
    handler.stop().await;
    let moved = ask_media_grant(&mut signalling).await.unwrap();
    assert_eq!(moved.url, format!("{}/media/{m}", other.endpoint));
    assert_eq!(moved.certificate_hash, other.certificate_hash);
    let session = MediaClient::connect(&moved.url, &moved.wt_token, Some(&other.certificate_hash))
        .await
        .unwrap();
    other
        .until("the session is open on the other handler", |l| {
            l.participants() == 1
        })
        .await;
    let state = hash_of(&world.redis, &schema::meeting_key(m)).await;
    assert_eq!(state["media_handler_id"], "mh-other");

    // Two asked so far this minute: four more are granted, the seventh is refused with
    // the wait, and the session goes on.
    for _ in 0..4 {
        let granted = ask_media_grant(&mut signalling).await.unwrap();
        assert_eq!(granted.url, moved.url);
    }
    let refused = ask_media_grant(&mut signalling).await.unwrap_err();
    assert_eq!(refused.code, "rate_limited");
    assert!(refused.message.contains("at most 6"), "{}", refused.message);
    assert!(common::wt::heartbeat(&mut signalling).await.is_empty());

    drop(session);
    stop_controller(shutdown, task).await;
    other.stop().await;
}

/// A self-signed certificate is replaced before it expires: the new one's hash is
/// registered and announced, new sessions pin it, and the first is no longer served.
#[tokio::test]
async fn a_self_signed_certificate_is_renewed_registered_and_announced() {
    let h = handler_with(|config| {
        config.certificate_renew_every = Duration::from_millis(500);
    })
    .await;
    let renewed = eventually(
        "the registry holds a renewed certificate's hash",
        || async {
            let hash = h.repo.media_handler(&h.id).await.ok()?.certificate_hash?;
            (hash != h.certificate_hash).then_some(hash)
        },
    )
    .await;
    eventually("the directory announces the renewed hash", || async {
        let announced = h.directory.address(&h.id)?.certificate_hash?;
        (announced == renewed).then_some(())
    })
    .await;
    let m = meetings::domain::MeetingId::random();
    let url = format!("{}/media/{m}", h.endpoint);
    let token = h
        .token(m, ParticipantId::random(), ConnectionType::Recorder)
        .await;
    MediaClient::connect(&url, &token, Some(&renewed))
        .await
        .expect("a client pinning the renewed certificate connects");
    let token = h
        .token(m, ParticipantId::random(), ConnectionType::Recorder)
        .await;
    assert!(
        MediaClient::connect(&url, &token, Some(&h.certificate_hash))
            .await
            .is_err(),
        "the first certificate is no longer served"
    );
}

/// Once the meeting's media handler stops, the controller's sweep forgets it: a later
/// joiner is granted another handler without asking twice.
#[tokio::test]
async fn a_joiner_after_the_meetings_media_handler_stopped_is_granted_another() {
    let h = handler().await;
    let auth: Auth = meetings::auth(&h.world.ctx, &MeetingsConfig::default());
    auth.rotate_keys().await.unwrap();
    let (shutdown, task) = granting_controller(&h, &auth, Duration::from_millis(100)).await;
    let m = meeting(&h.repo, "Moving media").await;
    let (_, _alice, response) = join_granted(&h.repo, &auth, m, "Alice").await;
    let first = response.media.expect("a media grant").url;
    assert_eq!(first, format!("{}/media/{m}", h.endpoint));

    let other = common::media::start_with(&h.repo, "mh-other", |config| {
        config.directory = Some(h.directory.clone());
    })
    .await;
    let other_url = format!("{}/media/{m}", other.endpoint);
    let Handler { world, handler, .. } = h;
    let repo = handler.repo.clone();
    handler.stop().await;
    // Guests join (and leave) until one is granted the other handler: the joins before
    // the next sweep still name the stopped one, none after it does.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut seen_other = false;
    for i in 0.. {
        let (_, joiner, response) = join_granted(&repo, &auth, m, &format!("Guest {i}")).await;
        let url = response.media.expect("a media grant").url;
        if seen_other {
            assert_eq!(url, other_url, "a joiner after the other was granted");
            break;
        }
        if url == other_url {
            seen_other = true;
        } else {
            assert_eq!(url, first);
            assert!(
                tokio::time::Instant::now() < deadline,
                "no joiner was granted the other handler"
            );
        }
        drop(joiner);
    }
    let state = hash_of(&world.redis, &schema::meeting_key(m)).await;
    assert_eq!(state["media_handler_id"], "mh-other");
    stop_controller(shutdown, task).await;
    other.stop().await;
}

/// The tracks `publisher` is asked for key frames on until it is asked for one on
/// `probe` (a request a subscriber sent after everything counted).
async fn asks_until(publisher: &mut MediaClient, probe: u8) -> Vec<u8> {
    let mut asked = Vec::new();
    loop {
        let track = tokio::time::timeout(DEADLINE, publisher.next_keyframe_request())
            .await
            .expect("a KeyframeRequest in time")
            .unwrap()
            .expect("a KeyframeRequest, not the end of the control stream");
        if track == probe {
            return asked;
        }
        asked.push(track);
    }
}

/// Camera frames the stalled-subscriber test publishes, a key frame every
/// [`STALL_KEY_EVERY`].
const STALL_SENT: u32 = 240;
const STALL_KEY_EVERY: u32 = 10;

/// A subscriber that stops reading costs the publisher one key frame request, not one
/// per key frame: it waits for the publisher's own key frames, and once its queue is
/// still full at three of them in a row (on the only layer sent) it is closed. No
/// interval between requests, and no time it must have been behind, here: what bounds
/// the requests is the stalled one's handling.
#[tokio::test]
async fn a_stalled_subscriber_cannot_make_publishers_send_only_key_frames() {
    let h = handler_with(|c| {
        c.subscriber_queue = 16;
        c.keyframe_request_every = Duration::ZERO;
        c.stalled_after = Duration::ZERO;
    })
    .await;
    let m = meeting(&h.repo, "Stalled").await;
    let (publisher_id, mut publisher) = h.connect(m).await;
    let (_, mut fast) = h.connect(m).await;
    let stalled = Raw::open(&h, m, 256 * 1024).await;
    h.connected(3).await;

    let payload = vec![0x5a; 40_000];
    let mut received = 0u32;
    for seq in 0..STALL_SENT {
        let flags = if seq % STALL_KEY_EVERY == 0 {
            FLAG_KEY
        } else {
            0
        };
        publisher
            .send_frame(proto::TRACK_CAMERA, flags, u64::from(seq), seq, &payload)
            .await
            .unwrap();
        while received + WINDOW <= seq {
            next_frame(&mut fast).await;
            received += 1;
        }
    }
    while received < STALL_SENT {
        next_frame(&mut fast).await;
        received += 1;
    }
    let (code, reason) = stalled.closed().await;
    assert_eq!(code, Some(u64::from(proto::CLOSE_BY_HANDLER)));
    assert!(reason.starts_with("behind"), "{reason}");
    h.connected(2).await;

    fast.request_keyframe(publisher_id, proto::TRACK_SCREEN)
        .await
        .unwrap();
    let asked = asks_until(&mut publisher, proto::TRACK_SCREEN).await;
    assert!(
        !asked.is_empty() && asked.len() <= 2,
        "one request when it fell behind, not one per key frame: {asked:?}"
    );
    h.stop().await;
}

/// The server's own client (the recorder) that stops reading is never moved down a
/// layer nor closed, where a participant stalled alike is: it waits for a key frame it
/// has room for, its session open.
#[tokio::test]
async fn a_stalled_recorder_keeps_its_media_session() {
    let h = handler_with(|c| {
        c.subscriber_queue = 16;
        c.stalled_after = Duration::ZERO;
    })
    .await;
    let m = meeting(&h.repo, "Recorded").await;
    let (_, publisher) = h.connect(m).await;
    let (_, mut fast) = h.connect(m).await;
    let stalled = Raw::open(&h, m, 256 * 1024).await;
    let (recorder_id, recorder) = Raw::recorder(&h, m, 256 * 1024).await;
    h.connected(4).await;

    let payload = vec![0x5a; 40_000];
    let mut received = 0u32;
    for seq in 0..STALL_SENT {
        let flags = if seq % STALL_KEY_EVERY == 0 {
            FLAG_KEY
        } else {
            0
        };
        publisher
            .send_frame(proto::TRACK_CAMERA, flags, u64::from(seq), seq, &payload)
            .await
            .unwrap();
        while received + WINDOW <= seq {
            next_frame(&mut fast).await;
            received += 1;
        }
    }
    while received < STALL_SENT {
        next_frame(&mut fast).await;
        received += 1;
    }
    let (_, reason) = stalled.closed().await;
    assert!(reason.starts_with("behind"), "{reason}");

    // The recorder's session is still served: what it sends reaches the others.
    recorder
        .send(FrameHeader {
            track: proto::TRACK_AUDIO,
            flags: FLAG_KEY,
            layer: 0,
            timestamp: 0,
            seq: 0,
        })
        .await;
    let frame = next_frame(&mut fast).await;
    assert_eq!(
        (frame.publisher, frame.header.track),
        (recorder_id, proto::TRACK_AUDIO)
    );
    h.connected(3).await;
    h.stop().await;
}

/// However often a subscriber asks for a publisher's key frame, the publisher is asked
/// once per (track, layer) per interval (here an hour: once).
#[tokio::test]
async fn a_subscriber_spamming_keyframe_requests_reaches_the_publisher_once_per_interval() {
    let h = handler_with(|c| c.keyframe_request_every = Duration::from_secs(3600)).await;
    let m = meeting(&h.repo, "Spam").await;
    let (publisher_id, mut publisher) = h.connect(m).await;
    let (_, mut spammer) = h.connect(m).await;
    h.connected(2).await;
    publisher
        .send_frame(proto::TRACK_CAMERA, FLAG_KEY, 0, 0, b"key")
        .await
        .unwrap();
    next_frame(&mut spammer).await;

    for _ in 0..200 {
        spammer
            .request_keyframe(publisher_id, proto::TRACK_CAMERA)
            .await
            .unwrap();
    }
    spammer
        .request_keyframe(publisher_id, proto::TRACK_AUDIO)
        .await
        .unwrap();
    let asked = asks_until(&mut publisher, proto::TRACK_AUDIO).await;
    assert_eq!(asked, vec![proto::TRACK_CAMERA], "once");

    // The publisher's frames meanwhile release none of those held back: the hour has
    // not passed.
    publisher
        .send_frame(proto::TRACK_CAMERA, 0, 1, 1, b"delta")
        .await
        .unwrap();
    next_frame(&mut spammer).await;
    spammer
        .request_keyframe(publisher_id, proto::TRACK_SCREEN)
        .await
        .unwrap();
    let asked = asks_until(&mut publisher, proto::TRACK_SCREEN).await;
    assert!(asked.is_empty(), "{asked:?}");
    h.stop().await;
}

/// A media session opened without [`MediaClient`]: it never reads the streams the
/// handler opens to it (a subscriber truly stalled, its receive window `window` bytes),
/// and writes frames as it likes.
struct Raw {
    _endpoint: wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>,
    conn: wtransport::Connection,
    _control: (wtransport::SendStream, wtransport::RecvStream),
}

impl Raw {
    async fn open(h: &Handler, meeting: meetings::domain::MeetingId, window: u32) -> Raw {
        let who = h.join(meeting).await;
        let token = h.token(meeting, who, ConnectionType::Media).await;
        Raw::open_with(h, meeting, window, &token).await
    }

    /// A client of the server's own (as the recorder is), under its id.
    async fn recorder(
        h: &Handler,
        meeting: meetings::domain::MeetingId,
        window: u32,
    ) -> (ParticipantId, Raw) {
        let id = ParticipantId::random();
        let token = h.token(meeting, id, ConnectionType::Recorder).await;
        (id, Raw::open_with(h, meeting, window, &token).await)
    }

    async fn open_with(
        h: &Handler,
        meeting: meetings::domain::MeetingId,
        window: u32,
        token: &str,
    ) -> Raw {
        let hex = h.certificate_hash.as_bytes();
        let digest: Vec<String> = hex
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap().to_owned())
            .collect();
        let digest: wtransport::tls::Sha256Digest = digest.join(":").parse().unwrap();
        let mut config = wtransport::ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes([digest])
            .build();
        let mut transport = wtransport::config::QuicTransportConfig::default();
        transport.receive_window(wtransport::quinn::VarInt::from_u32(window));
        config
            .quic_config_mut()
            .transport_config(std::sync::Arc::new(transport));
        let endpoint = wtransport::Endpoint::client(config).unwrap();
        let url = format!("{}/media/{meeting}?wt_token={token}", h.endpoint);
        let conn = endpoint.connect(url).await.unwrap();
        let control = conn.open_bi().await.unwrap().await.unwrap();
        Raw {
            _endpoint: endpoint,
            conn,
            _control: control,
        }
    }

    /// How the handler closed the session.
    async fn closed(&self) -> (Option<u64>, String) {
        let closed = tokio::time::timeout(DEADLINE, self.conn.closed())
            .await
            .expect("closed in time");
        match closed {
            wtransport::error::ConnectionError::ApplicationClosed(close) => (
                Some(close.code().into_inner()),
                String::from_utf8_lossy(close.reason()).into_owned(),
            ),
            other => (None, other.to_string()),
        }
    }
}

/// Leaving (or being dropped for want of a heartbeat) closes the participant's media
/// session, and a media token it had not spent opens none; the server's own clients
/// (a `recorder` token's id never joins) are served as before.
#[tokio::test]
async fn a_participant_who_left_loses_its_media_session_and_its_unspent_token() {
    let h = handler_with(|c| c.presence_every = Duration::from_millis(100)).await;
    let m = meeting(&h.repo, "Leaving").await;
    let (leaver, stayer) = (h.join(m).await, h.join(m).await);
    let media = ConnectionType::Media;
    let leaving = h
        .open("media", m, &h.token(m, leaver, media).await)
        .await
        .unwrap();
    let spare = h.token(m, leaver, media).await;
    let mut stays = h
        .open("media", m, &h.token(m, stayer, media).await)
        .await
        .unwrap();
    let (_, recorder) = h.recorder(m).await;
    h.connected(3).await;

    h.repo
        .leave(m, leaver, meetings::domain::LeaveReason::Voluntary)
        .await
        .unwrap();
    let closed = tokio::time::timeout(DEADLINE, leaving.closed())
        .await
        .expect("the leaver's media session is closed in time");
    assert_eq!(closed.code, Some(u64::from(proto::CLOSE_BY_HANDLER)));
    assert!(closed.reason.starts_with("left"), "{closed:?}");
    let reused = h.open("media", m, &spare).await;
    assert!(
        matches!(reused, Err(MediaClientError::Rejected)),
        "{reused:?}"
    );
    h.connected(2).await;
    recorder
        .send_frame(proto::TRACK_AUDIO, FLAG_KEY, 1, 1, b"still served")
        .await
        .unwrap();
    assert_eq!(next_frame(&mut stays).await.payload, b"still served");

    // Dropped by the presence job (its presence expired): the same.
    let dropped = h.join(m).await;
    let dropping = h
        .open("media", m, &h.token(m, dropped, media).await)
        .await
        .unwrap();
    h.connected(3).await;
    let _: () = redis::AsyncCommands::del(&mut h.world.redis.conn(), schema::presence_key(dropped))
        .await
        .unwrap();
    let reaped = h.repo.reap_absent(m).await.unwrap();
    assert_eq!(reaped.left, vec![dropped]);
    let closed = tokio::time::timeout(DEADLINE, dropping.closed())
        .await
        .expect("the dropped one's media session is closed in time");
    assert!(closed.reason.starts_with("left"), "{closed:?}");
    h.connected(2).await;
    h.stop().await;
}

impl Raw {
    /// Sends a frame of `header` with a few bytes of payload on a stream of its own.
    async fn send(&self, header: FrameHeader) {
        let mut stream = self.conn.open_uni().await.unwrap().await.unwrap();
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(b"probe");
        stream.write_all(&bytes).await.unwrap();
        stream.finish().await.unwrap();
    }

    /// A frame stream with `len` bytes of a camera frame written and not finished.
    async fn unfinished(&self, len: usize) -> wtransport::SendStream {
        let mut stream = self.conn.open_uni().await.unwrap().await.unwrap();
        let mut bytes = FrameHeader {
            track: proto::TRACK_CAMERA,
            flags: FLAG_KEY,
            layer: 0,
            timestamp: 0,
            seq: 0,
        }
        .encode()
        .to_vec();
        bytes.resize(len, 0);
        stream.write_all(&bytes).await.unwrap();
        stream
    }
}

/// A session cannot hold more than its share of memory in frames it never finishes:
/// past `max_unfinished_bytes` it is closed, and a frame not whole in time is dropped
/// (its stream stopped) whatever the total.
#[tokio::test]
async fn frames_never_finished_are_dropped_in_time_and_bounded_per_session() {
    let h = handler_with(|c| {
        c.max_unfinished_bytes = 100_000;
        c.frame_timeout = Duration::from_millis(200);
    })
    .await;
    let m = meeting(&h.repo, "Unfinished").await;
    let slow = Raw::open(&h, m, 1024 * 1024).await;
    let mut started = slow.unfinished(1_000).await;
    let stopped = tokio::time::timeout(DEADLINE, started.stopped())
        .await
        .expect("the unfinished frame's stream is stopped in time");
    assert!(
        matches!(stopped, wtransport::error::StreamWriteError::Stopped(_)),
        "{stopped:?}"
    );

    h.stop().await;

    // With no deadline to drop them first, the total held is what closes the session.
    let h = handler_with(|c| c.max_unfinished_bytes = 100_000).await;
    let m = meeting(&h.repo, "Hoarded").await;
    let hoarder = Raw::open(&h, m, 1024 * 1024).await;
    let _held = [
        hoarder.unfinished(40_000).await,
        hoarder.unfinished(40_000).await,
        hoarder.unfinished(40_000).await,
    ];
    let (code, reason) = hoarder.closed().await;
    assert_eq!(code, Some(u64::from(proto::CLOSE_PROTOCOL_ERROR)));
    assert!(reason.starts_with("too_much_unfinished"), "{reason}");
    h.stop().await;
}

/// A meeting controller and a media handler whose registry rows are lost (their
/// database restored from an older backup, say) register again at their next
/// heartbeat, with the endpoint and certificate hash they serve, and keep doing so.
#[tokio::test]
async fn servers_whose_registration_is_lost_register_again_at_their_next_heartbeat() {
    let c = common::wt::controller().await;
    let h = common::media::start(&c.repo, "mh-lost").await;
    let handler_id = HandlerId::parse("mh-lost").unwrap();
    let pool = c.repo.postgres().pool();
    for round in 1..=2 {
        for (table, delete, id) in [
            (
                "meeting_controllers",
                "DELETE FROM meet.meeting_controllers WHERE controller_id = $1",
                c.id.as_str(),
            ),
            (
                "media_handlers",
                "DELETE FROM meet.media_handlers WHERE handler_id = $1",
                handler_id.as_str(),
            ),
        ] {
            let gone = sqlx::query(delete).bind(id).execute(pool).await.unwrap();
            assert_eq!(gone.rows_affected(), 1, "round {round}: {table}");
        }
        let controller = eventually("the controller registers again", || async {
            c.repo.controller(&c.id).await.ok()
        })
        .await;
        assert_eq!(controller.endpoint, c.endpoint, "round {round}");
        assert_eq!(
            controller.certificate_hash.as_deref(),
            Some(c.certificate_hash.as_str()),
            "round {round}"
        );
        let handler = eventually("the media handler registers again", || async {
            c.repo.media_handler(&handler_id).await.ok()
        })
        .await;
        assert_eq!(handler.endpoint, h.endpoint, "round {round}");
        assert_eq!(
            handler.certificate_hash.as_deref(),
            Some(h.certificate_hash.as_str()),
            "round {round}"
        );
    }
    // And the controller takes joins as before.
    let m = meeting(&c.repo, "Restored").await;
    let (_client, response, _) = c.join(m, "Ann").await;
    assert!(response.participants.is_empty(), "{response:?}");
    h.stop().await;
    c.stop().await;
}
