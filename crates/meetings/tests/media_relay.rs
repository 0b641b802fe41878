//! One meeting on two media handlers that relay to each other: real WebTransport
//! clients against two handlers bound on 127.0.0.1, over one real PostgreSQL and Redis.
//! Every wait has a deadline; nothing sleeps to synchronise and no assertion is about
//! timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};

use common::media::{Handler, next_frame, start, start_with};
use common::meeting;
use common::wt::DEADLINE;
use meetings::Repo;
use meetings::domain::{
    ConnectionType, DisplayName, Liveness, MeetingId, ParticipantId, Region, StreamId,
};
use meetings::media::client::{MediaClient, MediaClientError, ReceivedFrame};
use meetings::media::proto::{
    self, FLAG_KEY, FRAME_HEADER_LEN, FrameHeader, TRACK_AUDIO, TRACK_CAMERA, TRACK_SCREEN,
};
use meetings::media::{HandlerConfig, track_stream_id};
use meetings::repo::JoinRequest;
use meetings::schema;
use rand::SeedableRng;
use rand::rngs::StdRng;
use redis::AsyncCommands;
use testkit::{World, eventually};

/// The next track `client` is asked for a key frame on.
async fn next_ask(client: &mut MediaClient) -> u8 {
    tokio::time::timeout(DEADLINE, client.next_keyframe_request())
        .await
        .expect("a keyframe request in time")
        .unwrap()
        .expect("a keyframe request, not the end of the control stream")
}

type Seen = (ParticipantId, u8, u8, u64, Vec<u8>);

fn seen(frame: ReceivedFrame) -> Seen {
    (
        frame.publisher,
        frame.header.track,
        frame.header.flags,
        frame.header.timestamp,
        frame.payload,
    )
}

/// What participant `index` publishes: a camera key frame and an audio frame.
fn frames_of(index: u8) -> Vec<(u8, u8, u64, Vec<u8>)> {
    vec![
        (
            TRACK_CAMERA,
            FLAG_KEY,
            1_000 + u64::from(index),
            vec![index; 5_000],
        ),
        (TRACK_AUDIO, FLAG_KEY, 2_000, vec![0xaa, index]),
    ]
}

async fn handlers_of(world: &World, meeting: MeetingId) -> HashSet<String> {
    world
        .redis
        .conn()
        .smembers(schema::meeting_media_handlers_key(meeting))
        .await
        .unwrap()
}

#[tokio::test]
async fn one_meeting_on_two_handlers_is_relayed_both_ways_with_keyframe_requests_and_departures() {
    let world = World::with_postgres().await;
    world.postgres.migrate(&meetings::MIGRATIONS).await.unwrap();
    let repo = Repo::from_context(&world.ctx);
    let a = start(&repo, "mh-relay-a").await;
    let b = start(&repo, "mh-relay-b").await;
    let m = meeting(&repo, "Relayed").await;

    let mut people = Vec::new();
    people.push(a.connect(m).await);
    people.push(a.connect(m).await);
    people.push(b.connect(m).await);
    people.push(b.connect(m).await);
    a.until("two sessions on a", |l| l.participants() == 2)
        .await;
    b.until("two sessions on b", |l| l.participants() == 2)
        .await;
    // Each end of the one relay between them is attached.
    a.until("a relays the meeting", |l| l.relays() == 1).await;
    b.until("b relays the meeting", |l| l.relays() == 1).await;
    assert_eq!(
        handlers_of(&world, m).await,
        HashSet::from(["mh-relay-a".to_owned(), "mh-relay-b".to_owned()])
    );

    for (i, (_, client)) in people.iter().enumerate() {
        for (track, flags, ts, payload) in frames_of(u8::try_from(i).unwrap()) {
            client
                .send_frame(track, flags, ts, 0, &payload)
                .await
                .unwrap();
        }
    }
    let ids: Vec<ParticipantId> = people.iter().map(|(id, _)| *id).collect();
    for (i, (me, client)) in people.iter_mut().enumerate() {
        let mut expected = HashSet::new();
        for (j, id) in ids.iter().enumerate() {
            if j == i {
                continue;
            }
            for (track, flags, ts, payload) in frames_of(u8::try_from(j).unwrap()) {
                expected.insert((*id, track, flags, ts, payload));
            }
        }
        let mut got = HashSet::new();
        while got.len() < expected.len() {
            let frame = seen(next_frame(client).await);
            assert_ne!(frame.0, *me, "nobody receives their own frames");
            assert!(got.insert(frame), "no frame arrives twice");
        }
        assert_eq!(
            got, expected,
            "participant {i} receives everybody else's frames, from both handlers, under \
             their own publisher ids"
        );
    }

    // A keyframe request crosses the relay in both directions: from b (the accepting
    // end) to a publisher on a, and from a (the opening end) to one on b. The screen
    // track is asked for because nobody asked for it before.
    let (a0, b0) = (ids[0], ids[2]);
    people[2]
        .1
        .request_keyframe(a0, TRACK_SCREEN)
        .await
        .unwrap();
    assert_eq!(next_ask(&mut people[0].1).await, TRACK_SCREEN);
    people[1]
        .1
        .request_keyframe(b0, TRACK_SCREEN)
        .await
        .unwrap();
    assert_eq!(next_ask(&mut people[2].1).await, TRACK_SCREEN);

    // The first participant on a leaves: what reaches the others on b next is the
    // frames of those still there, and nothing more of it.
    let (_, gone) = people.remove(0);
    gone.close();
    a.until("the leaver's session is closed on a", |l| {
        l.participants() == 1
    })
    .await;
    let stayer = ids[1];
    people[0]
        .1
        .send_frame(TRACK_AUDIO, FLAG_KEY, 9_000, 1, b"after")
        .await
        .unwrap();
    for (_, client) in people.iter_mut().skip(1) {
        let frame = next_frame(client).await;
        assert_eq!(
            (frame.publisher, frame.payload.as_slice()),
            (stayer, &b"after"[..])
        );
    }

    // The last participant on a leaves: a leaves the meeting's handlers and the relay
    // closes at both ends; b goes on serving its own.
    let (_, last) = people.remove(0);
    last.close();
    a.until("a has nobody left", |l| {
        l.participants() == 0 && l.relays() == 0
    })
    .await;
    b.until("b's end of the relay closes", |l| l.relays() == 0)
        .await;
    eventually("a leaves the meeting's handlers", || {
        let world = &world;
        async move {
            (handlers_of(world, m).await == HashSet::from(["mh-relay-b".to_owned()])).then_some(())
        }
    })
    .await;
    people[0]
        .1
        .send_frame(TRACK_AUDIO, FLAG_KEY, 10_000, 2, b"still")
        .await
        .unwrap();
    let frame = next_frame(&mut people[1].1).await;
    assert_eq!(frame.payload, b"still");

    drop(people);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_relay_needs_a_relay_token_and_cannot_speak_for_participants_connected_here() {
    let world = World::with_postgres().await;
    world.postgres.migrate(&meetings::MIGRATIONS).await.unwrap();
    let repo = Repo::from_context(&world.ctx);
    let h = start(&repo, "mh-relay-door").await;
    let m = meeting(&repo, "Door").await;
    let (local, mut client) = h.connect(m).await;
    h.until("the session is open", |l| l.participants() == 1)
        .await;

    // A participant's token does not open a relay, nor a relay's a participant session.
    let media = h
        .token(m, ParticipantId::random(), ConnectionType::Media)
        .await;
    assert!(matches!(
        h.open("relay", m, &media).await,
        Err(MediaClientError::Rejected)
    ));
    let relay = h
        .token(m, ParticipantId::random(), ConnectionType::Relay)
        .await;
    assert!(matches!(
        h.open("media", m, &relay).await,
        Err(MediaClientError::Rejected)
    ));

    // With a relay token, frames come in under their original publisher's id; one
    // naming the participant connected here is dropped.
    let relay = h
        .token(m, ParticipantId::random(), ConnectionType::Relay)
        .await;
    let peer = h.open("relay", m, &relay).await.unwrap();
    h.until("the relay is attached", |l| l.relays() == 1).await;
    let elsewhere = ParticipantId::random();
    let relayed = |publisher: ParticipantId, payload: &[u8]| {
        let mut bytes = publisher.as_uuid().as_bytes().to_vec();
        let len = u32::try_from(FRAME_HEADER_LEN + payload.len()).unwrap();
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(
            &FrameHeader {
                track: TRACK_AUDIO,
                flags: FLAG_KEY,
                layer: 0,
                timestamp: 5,
                seq: 0,
            }
            .encode(),
        );
        bytes.extend_from_slice(payload);
        bytes
    };
    peer.send_raw_frame(&relayed(local, b"forged"))
        .await
        .unwrap();
    peer.send_raw_frame(&relayed(elsewhere, b"relayed"))
        .await
        .unwrap();
    let frame = next_frame(&mut client).await;
    assert_eq!(
        (frame.publisher, frame.payload.as_slice()),
        (elsewhere, &b"relayed"[..])
    );
    // And what the local participant publishes goes out over the relay, under its id.
    client
        .send_frame(TRACK_AUDIO, FLAG_KEY, 7, 0, b"local")
        .await
        .unwrap();
    let mut peer = peer;
    let out = next_frame(&mut peer).await;
    assert_eq!(
        (out.publisher, out.payload.as_slice()),
        (local, &b"local"[..])
    );
    peer.close();
    h.until("the relay is detached", |l| l.relays() == 0).await;

    // A relayed frame longer than a media frame may be closes the relay.
    let relay = h
        .token(m, ParticipantId::random(), ConnectionType::Relay)
        .await;
    let peer = h.open("relay", m, &relay).await.unwrap();
    h.until("the relay is attached", |l| l.relays() == 1).await;
    let mut oversized = elsewhere.as_uuid().as_bytes().to_vec();
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    let _ = peer.send_raw_frame(&oversized).await;
    let closed = tokio::time::timeout(DEADLINE, peer.closed())
        .await
        .expect("closed in time");
    assert_eq!(closed.code, Some(u64::from(proto::CLOSE_PROTOCOL_ERROR)));
    assert!(closed.reason.starts_with("frame_too_large"), "{closed:?}");
    h.until("the relay is detached", |l| l.relays() == 0).await;
    drop(client);
    h.stop().await;
}

/// A participant of `meeting` joined through the repository (its session hash exists,
/// as after a join at the meeting controller).
async fn joined(repo: &Repo, meeting: MeetingId, name: &str) -> ParticipantId {
    let participant = ParticipantId::random();
    repo.join_as(
        participant,
        &JoinRequest {
            meeting_id: meeting,
            user_id: None,
            display_name: DisplayName::parse(name).unwrap(),
            ip_address: None,
            user_agent: None,
            client_version: None,
        },
    )
    .await
    .unwrap();
    participant
}

impl Handler {
    /// Participant `who` (already joined) connected to this handler.
    async fn connect_as(&self, meeting: MeetingId, who: ParticipantId) -> MediaClient {
        let token = self.token(meeting, who, ConnectionType::Media).await;
        self.open("media", meeting, &token).await.unwrap()
    }
}

/// `subscribers` of stream `id` and its hash, once the hash says `count`.
async fn subscribers_reach(world: &World, id: StreamId, count: &str) -> HashMap<String, String> {
    let key = schema::stream_key(id);
    eventually(&format!("{key} counts {count} subscribers"), || {
        let (world, key) = (world, key.clone());
        async move {
            let hash: HashMap<String, String> = world.redis.conn().hgetall(&key).await.unwrap();
            (hash
                .get(schema::stream_fields::SUBSCRIBERS)
                .map(String::as_str)
                == Some(count))
            .then_some(hash)
        }
    })
    .await
}

async fn subscriptions_of(world: &World, who: ParticipantId) -> HashSet<String> {
    world
        .redis
        .conn()
        .smembers(schema::participant_subscriptions_key(who))
        .await
        .unwrap()
}

#[tokio::test]
async fn streams_and_subscriptions_follow_the_frames_and_the_departures_on_both_handlers() {
    let world = World::with_postgres().await;
    world.postgres.migrate(&meetings::MIGRATIONS).await.unwrap();
    let repo = Repo::from_context(&world.ctx);
    let a = start(&repo, "mh-books-a").await;
    let b = start(&repo, "mh-books-b").await;
    let m = meeting(&repo, "Books").await;
    let publisher = joined(&repo, m, "Publisher").await;
    let near = joined(&repo, m, "Near").await;
    let far = joined(&repo, m, "Far").await;
    let stays = joined(&repo, m, "Stays").await;
    let p = a.connect_as(m, publisher).await;
    let mut n = a.connect_as(m, near).await;
    let mut f = b.connect_as(m, far).await;
    let mut s = b.connect_as(m, stays).await;
    a.until("two sessions on a", |l| l.participants() == 2)
        .await;
    b.until("two sessions on b", |l| l.participants() == 2)
        .await;
    a.until("a relays the meeting", |l| l.relays() == 1).await;
    b.until("b relays the meeting", |l| l.relays() == 1).await;

    p.send_frame(TRACK_CAMERA, FLAG_KEY, 1, 0, b"video")
        .await
        .unwrap();
    p.send_frame(TRACK_AUDIO, FLAG_KEY, 2, 0, b"audio")
        .await
        .unwrap();
    for client in [&mut n, &mut f, &mut s] {
        let mut got = HashSet::new();
        while got.len() < 2 {
            got.insert(next_frame(client).await.header.track);
        }
    }

    // One stream per published track, named by its publisher and track, each counted
    // once per subscriber: the one on the same handler and the two behind the relay.
    let (video, audio) = (
        track_stream_id(publisher, TRACK_CAMERA),
        track_stream_id(publisher, TRACK_AUDIO),
    );
    let hash = subscribers_reach(&world, video, "3").await;
    assert_eq!(
        hash[schema::stream_fields::PARTICIPANT_ID],
        publisher.to_string()
    );
    assert_eq!(hash[schema::stream_fields::MEETING_ID], m.to_string());
    assert_eq!(hash[schema::stream_fields::STREAM_TYPE], "video_camera");
    let hash = subscribers_reach(&world, audio, "3").await;
    assert_eq!(hash[schema::stream_fields::STREAM_TYPE], "audio_microphone");
    assert_eq!(hash[schema::stream_fields::CODEC], "Opus");
    let both = HashSet::from([video.to_string(), audio.to_string()]);
    assert_eq!(subscriptions_of(&world, near).await, both);
    assert_eq!(subscriptions_of(&world, far).await, both);
    assert_eq!(subscriptions_of(&world, stays).await, both);
    assert_eq!(
        store::harness::ttl(&world.redis, &schema::stream_key(video)).await,
        -1,
        "live"
    );

    // A subscriber leaving counts down.
    drop(f);
    b.until("far's session closed", |l| l.participants() == 1)
        .await;
    subscribers_reach(&world, video, "2").await;
    subscribers_reach(&world, audio, "2").await;
    assert!(subscriptions_of(&world, far).await.is_empty());

    // The publisher leaving ends its streams and counts its subscribers down, on its
    // own handler and (told across the relay) on the other.
    p.close();
    a.until("the publisher's session closed", |l| l.participants() == 1)
        .await;
    subscribers_reach(&world, video, "0").await;
    subscribers_reach(&world, audio, "0").await;
    assert!(subscriptions_of(&world, near).await.is_empty());
    assert!(subscriptions_of(&world, stays).await.is_empty());
    eventually("the ended stream has the seed's TTL", || {
        let world = &world;
        async move {
            let ttl = store::harness::ttl(&world.redis, &schema::stream_key(video)).await;
            (ttl > 0 && ttl <= 3600).then_some(())
        }
    })
    .await;

    drop((n, s));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_next_meeting_goes_to_the_handler_with_free_capacity_by_its_reported_load() {
    let world = World::with_postgres().await;
    world.postgres.migrate(&meetings::MIGRATIONS).await.unwrap();
    let repo = Repo::from_context(&world.ctx);
    let small = |config: &mut HandlerConfig| config.max_streams = 2;
    let busy = start_with(&repo, "mh-load-busy", small).await;
    let idle = start_with(&repo, "mh-load-idle", small).await;
    let live = Liveness::default();
    let local = Region::local();
    let loads = |repo: Repo| async move {
        let loads = repo
            .handler_loads(&Region::local(), &Liveness::default())
            .await
            .ok()?;
        Some(
            loads
                .into_iter()
                .map(|h| (h.handler_id.as_str().to_owned(), h.current_streams))
                .collect::<HashMap<_, _>>(),
        )
    };
    eventually("both handlers register", || {
        let repo = repo.clone();
        async move { (loads(repo).await?.len() == 2).then_some(()) }
    })
    .await;

    // Both idle: new meetings go to either.
    let mut chosen = HashSet::new();
    let mut rng = StdRng::seed_from_u64(1);
    for i in 0..20 {
        let m = meeting(&repo, &format!("Either {i}")).await;
        joined(&repo, m, "Someone").await;
        let handler = repo
            .assign_media_handler(m, &local, &live, &mut rng)
            .await
            .unwrap()
            .unwrap();
        chosen.insert(handler.as_str().to_owned());
    }
    assert_eq!(chosen.len(), 2, "both idle handlers are chosen: {chosen:?}");

    // Two participants publish on the busy one: it reports its two streams (its
    // maximum), and every next meeting goes to the idle one.
    let m = meeting(&repo, "Busy").await;
    let (_, one) = busy.connect(m).await;
    let (_, two) = busy.connect(m).await;
    busy.until("both sessions open", |l| l.participants() == 2)
        .await;
    one.send_frame(TRACK_AUDIO, FLAG_KEY, 1, 0, b"a")
        .await
        .unwrap();
    two.send_frame(TRACK_AUDIO, FLAG_KEY, 1, 0, b"b")
        .await
        .unwrap();
    eventually("the busy handler reports its two streams", || {
        let repo = repo.clone();
        async move { (loads(repo).await?.get("mh-load-busy") == Some(&2)).then_some(()) }
    })
    .await;
    for i in 0..20 {
        let m = meeting(&repo, &format!("Next {i}")).await;
        joined(&repo, m, "Someone").await;
        let handler = repo
            .assign_media_handler(m, &local, &live, &mut rng)
            .await
            .unwrap();
        assert_eq!(
            handler.map(|h| h.as_str().to_owned()).as_deref(),
            Some("mh-load-idle")
        );
    }

    drop((one, two));
    busy.stop().await;
    idle.stop().await;
}

/// How often `stream` is in `who`'s session's `streams`.
async fn listed(world: &World, who: ParticipantId, stream: StreamId) -> usize {
    let raw: String = world
        .redis
        .conn()
        .hget(
            schema::participant_key(who),
            schema::participant_fields::STREAMS,
        )
        .await
        .unwrap();
    let ids: Vec<String> = serde_json::from_str(&raw).unwrap();
    ids.iter().filter(|id| **id == stream.to_string()).count()
}

/// A publisher's media session reconnecting, whether the new one replaces the old or
/// the old closed first, leaves its stream live (no TTL), counted once per viewer, and
/// listed once in its session; the replaced session is closed.
#[tokio::test]
async fn a_media_reconnect_keeps_the_stream_live_and_its_count_honest() {
    let world = World::with_postgres().await;
    world.postgres.migrate(&meetings::MIGRATIONS).await.unwrap();
    let repo = Repo::from_context(&world.ctx);
    let h = start(&repo, "mh-reconnect").await;
    let m = meeting(&repo, "Reconnect").await;
    let (publisher, viewer, later) = (
        joined(&repo, m, "Publisher").await,
        joined(&repo, m, "Viewer").await,
        joined(&repo, m, "Later").await,
    );
    let video = track_stream_id(publisher, TRACK_CAMERA);
    let first = h.connect_as(m, publisher).await;
    let mut v = h.connect_as(m, viewer).await;
    h.until("two sessions", |l| l.participants() == 2).await;
    first
        .send_frame(TRACK_CAMERA, FLAG_KEY, 1, 0, b"first")
        .await
        .unwrap();
    assert_eq!(next_frame(&mut v).await.payload, b"first");
    subscribers_reach(&world, video, "1").await;

    // A second session replaces the first, which is closed.
    let second = h.connect_as(m, publisher).await;
    let closed = tokio::time::timeout(DEADLINE, first.closed())
        .await
        .expect("the replaced session is closed in time");
    assert_eq!(closed.code, Some(u64::from(proto::CLOSE_BY_HANDLER)));
    assert!(closed.reason.starts_with("replaced"), "{closed:?}");
    h.until("two sessions", |l| l.participants() == 2).await;
    let mut l = h.connect_as(m, later).await;
    h.until("three sessions", |l| l.participants() == 3).await;
    second
        .send_frame(TRACK_CAMERA, FLAG_KEY, 2, 1, b"second")
        .await
        .unwrap();
    assert_eq!(next_frame(&mut v).await.payload, b"second");
    assert_eq!(next_frame(&mut l).await.payload, b"second");
    subscribers_reach(&world, video, "2").await;
    assert_eq!(listed(&world, publisher, video).await, 1);

    // The session closes first (the stream ends), then a new one publishes again.
    second.close();
    h.until("two sessions", |l| l.participants() == 2).await;
    eventually("the stream has the TTL of an ended one", || {
        let world = &world;
        async move {
            let ttl = store::harness::ttl(&world.redis, &schema::stream_key(video)).await;
            (ttl > 0).then_some(())
        }
    })
    .await;
    let third = h.connect_as(m, publisher).await;
    h.until("three sessions", |l| l.participants() == 3).await;
    third
        .send_frame(TRACK_CAMERA, FLAG_KEY, 3, 2, b"third")
        .await
        .unwrap();
    assert_eq!(next_frame(&mut v).await.payload, b"third");
    assert_eq!(next_frame(&mut l).await.payload, b"third");
    subscribers_reach(&world, video, "2").await;
    eventually("the stream is live again", || {
        let world = &world;
        async move {
            let ttl = store::harness::ttl(&world.redis, &schema::stream_key(video)).await;
            (ttl == -1).then_some(())
        }
    })
    .await;
    assert_eq!(listed(&world, publisher, video).await, 1);

    // Its viewers leaving count it down to zero, never below.
    drop(v);
    subscribers_reach(&world, video, "1").await;
    drop(l);
    subscribers_reach(&world, video, "0").await;
    drop(third);
    h.stop().await;
}
