//! Every Redis structure stays honest when a participant goes, whichever way it goes (a
//! leave, the presence job, the meeting's end, a session that expired first): its
//! streams get the 1-hour TTL of ended streams, the streams it watched count it down,
//! its subscriptions set goes with it; and the lifecycle leaves its audit rows. Real
//! Redis and PostgreSQL through the test world.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{hash_of, meeting, world};
use meetings::domain::{
    DisplayName, LeaveReason, MeetingId, MeetingStatus, ParticipantId, StreamId, StreamType, UserId,
};
use meetings::repo::{JoinRequest, MeetingSettings, NewMeeting, NewStream};
use meetings::{Repo, jobs};
use redis::AsyncCommands;
use testkit::World;

fn join_request(meeting: MeetingId, name: &str, user: Option<UserId>) -> JoinRequest {
    JoinRequest {
        meeting_id: meeting,
        user_id: user,
        display_name: DisplayName::parse(name).unwrap(),
        ip_address: Some("198.51.100.4".parse().unwrap()),
        user_agent: Some("honest-test".into()),
        client_version: None,
    }
}

async fn join(repo: &Repo, m: MeetingId, name: &str) -> ParticipantId {
    repo.join(&join_request(m, name, None))
        .await
        .unwrap()
        .participant_id
}

async fn publish(repo: &Repo, m: MeetingId, p: ParticipantId, kind: StreamType) -> StreamId {
    let stream = StreamId::random();
    assert!(
        repo.publish_stream(&NewStream {
            stream_id: stream,
            meeting_id: m,
            participant_id: p,
            stream_type: kind,
            codec: "VP9".into(),
            max_bitrate: 2_500_000,
        })
        .await
        .unwrap()
    );
    stream
}

async fn ttl(world: &World, key: &str) -> i64 {
    store::harness::ttl(&world.redis, key).await
}

async fn exists(world: &World, key: &str) -> bool {
    world.redis.conn().exists(key).await.unwrap()
}

async fn subscribers(world: &World, stream: StreamId) -> i64 {
    let fields = hash_of(&world.redis, &format!("stream:{stream}")).await;
    fields["subscribers"].parse().unwrap()
}

/// Deletes `keys`, as their expiry would.
async fn expire_now(world: &World, keys: &[String]) {
    let _: () = world.redis.conn().del(keys).await.unwrap();
}

/// The `leave_reason` of `p`'s row.
async fn leave_reason(world: &World, p: ParticipantId) -> Option<String> {
    sqlx::query_scalar(
        "SELECT leave_reason FROM meet.meeting_participants WHERE participant_id = $1",
    )
    .bind(p.as_uuid())
    .fetch_one(world.postgres.pool())
    .await
    .unwrap()
}

/// The stream has the TTL of an ended stream: about an hour (never timed, a range).
async fn assert_ended(world: &World, stream: StreamId) {
    let key = format!("stream:{stream}");
    let ttl = ttl(world, &key).await;
    assert!(
        3_500 < ttl && ttl <= 3_600,
        "{key} should live about 1 h more, TTL {ttl}"
    );
}

async fn assert_live(world: &World, stream: StreamId) {
    let key = format!("stream:{stream}");
    assert_eq!(ttl(world, &key).await, -1, "{key} should still be live");
}

/// Nothing of `p`'s session is left in Redis.
async fn assert_gone(world: &World, m: MeetingId, p: ParticipantId) {
    for key in [
        format!("participant:{p}"),
        format!("presence:{p}"),
        format!("participant:{p}:subscriptions"),
    ] {
        assert!(!exists(world, &key).await, "{key} should be gone");
    }
    let member: bool = world
        .redis
        .conn()
        .sismember(format!("meeting:{m}:participants"), p.to_string())
        .await
        .unwrap();
    assert!(!member, "{p} should have left the set");
}

/// Alice publishes camera and microphone and watches Bob's camera; Bob publishes his
/// camera and watches both of Alice's streams.
struct Scene {
    m: MeetingId,
    alice: ParticipantId,
    bob: ParticipantId,
    alice_camera: StreamId,
    alice_mic: StreamId,
    bob_camera: StreamId,
}

async fn scene(repo: &Repo) -> Scene {
    let m = meeting(repo, "Session zero").await;
    let alice = join(repo, m, "Alice").await;
    let bob = join(repo, m, "Bob").await;
    let alice_camera = publish(repo, m, alice, StreamType::VideoCamera).await;
    let alice_mic = publish(repo, m, alice, StreamType::AudioMicrophone).await;
    let bob_camera = publish(repo, m, bob, StreamType::VideoCamera).await;
    assert_eq!(repo.subscribe(bob, alice_camera).await.unwrap(), Some(1));
    assert_eq!(repo.subscribe(bob, alice_mic).await.unwrap(), Some(1));
    assert_eq!(repo.subscribe(alice, bob_camera).await.unwrap(), Some(1));
    Scene {
        m,
        alice,
        bob,
        alice_camera,
        alice_mic,
        bob_camera,
    }
}

#[tokio::test]
async fn a_leave_ends_the_participants_streams_and_counts_its_subscriptions_down() {
    let (world, repo) = world().await;
    let s = scene(&repo).await;

    assert_eq!(
        repo.leave(s.m, s.alice, LeaveReason::Voluntary)
            .await
            .unwrap(),
        1
    );

    assert_gone(&world, s.m, s.alice).await;
    assert_ended(&world, s.alice_camera).await;
    assert_ended(&world, s.alice_mic).await;
    assert_eq!(subscribers(&world, s.bob_camera).await, 0);
    // Bob is still in: his stream is live, his subscriptions and their counts stand.
    assert_live(&world, s.bob_camera).await;
    assert_eq!(subscribers(&world, s.alice_camera).await, 1);
    assert_eq!(subscribers(&world, s.alice_mic).await, 1);
    assert!(exists(&world, &format!("participant:{}:subscriptions", s.bob)).await);

    // A second leave changes nothing.
    assert_eq!(
        repo.leave(s.m, s.alice, LeaveReason::Voluntary)
            .await
            .unwrap(),
        1
    );
    assert_eq!(subscribers(&world, s.bob_camera).await, 0);
    // And a session that is gone cannot subscribe again.
    assert_eq!(repo.subscribe(s.alice, s.bob_camera).await.unwrap(), None);
    assert_eq!(subscribers(&world, s.bob_camera).await, 0);
    assert!(!exists(&world, &format!("participant:{}:subscriptions", s.alice)).await);
}

#[tokio::test]
async fn a_participant_dropped_by_the_presence_job_leaves_the_same_way() {
    let (world, repo) = world().await;
    let s = scene(&repo).await;
    // Bob's browser crashed: his presence (30 s) ran out.
    expire_now(&world, &[format!("presence:{}", s.bob)]).await;

    assert_eq!(jobs::reap_absent_participants(&repo).await.unwrap(), 1);

    assert_gone(&world, s.m, s.bob).await;
    assert_ended(&world, s.bob_camera).await;
    assert_eq!(subscribers(&world, s.alice_camera).await, 0);
    assert_eq!(subscribers(&world, s.alice_mic).await, 0);
    assert_live(&world, s.alice_camera).await;
    assert_eq!(
        subscribers(&world, s.bob_camera).await,
        1,
        "Alice still watches"
    );
    assert_eq!(
        leave_reason(&world, s.bob).await.as_deref(),
        Some("connection_lost")
    );
}

#[tokio::test]
async fn the_end_of_a_meeting_ends_every_stream_and_clears_every_subscription() {
    let (world, repo) = world().await;
    let s = scene(&repo).await;

    repo.end_meeting(s.m).await.unwrap();

    for p in [s.alice, s.bob] {
        assert_gone(&world, s.m, p).await;
    }
    for stream in [s.alice_camera, s.alice_mic, s.bob_camera] {
        assert_ended(&world, stream).await;
        assert_eq!(subscribers(&world, stream).await, 0, "{stream}");
    }
    let state = hash_of(&world.redis, &format!("meeting:{}", s.m)).await;
    assert_eq!(state["status"], "ended");
    assert_eq!(state["participant_count"], "0");
    let meeting_ttl = ttl(&world, &format!("meeting:{}", s.m)).await;
    assert!(
        86_000 < meeting_ttl && meeting_ttl <= 86_400,
        "{meeting_ttl}"
    );
    assert_eq!(
        repo.meeting(s.m).await.unwrap().status,
        MeetingStatus::Ended
    );

    // Ending again repeats the Redis steps harmlessly.
    repo.end_meeting(s.m).await.unwrap();
    for stream in [s.alice_camera, s.alice_mic, s.bob_camera] {
        assert_eq!(subscribers(&world, stream).await, 0, "{stream}");
    }
}

#[tokio::test]
async fn a_session_that_expired_before_the_presence_job_ran_is_still_made_honest() {
    let (world, repo) = world().await;
    let s = scene(&repo).await;
    // Alice's session hash and presence expired (nothing removed her for 5 minutes);
    // her subscriptions set outlives the session on purpose.
    expire_now(
        &world,
        &[
            format!("participant:{}", s.alice),
            format!("presence:{}", s.alice),
        ],
    )
    .await;
    assert!(exists(&world, &format!("participant:{}:subscriptions", s.alice)).await);

    assert_eq!(jobs::reap_absent_participants(&repo).await.unwrap(), 1);

    assert_gone(&world, s.m, s.alice).await;
    assert_eq!(subscribers(&world, s.bob_camera).await, 0);
    // Her streams could not be read from her session: the orphan sweep ended them.
    assert_ended(&world, s.alice_camera).await;
    assert_ended(&world, s.alice_mic).await;
    assert_live(&world, s.bob_camera).await;
    // The sweep is safe to repeat and leaves live streams alone.
    assert_eq!(repo.expire_orphan_streams().await.unwrap(), 0);
    assert_live(&world, s.bob_camera).await;
}

#[tokio::test]
async fn subscriber_counts_stay_true_when_subscriptions_race_departures() {
    let (world, repo) = world().await;
    let m = meeting(&repo, "Session zero").await;
    let host = join(&repo, m, "Host").await;
    let stream = publish(&repo, m, host, StreamType::VideoCamera).await;
    let mut viewers = Vec::new();
    for i in 0..8 {
        viewers.push(join(&repo, m, &format!("Viewer {i}")).await);
    }

    // Every viewer subscribes while every other one leaves, all at once.
    let mut tasks = Vec::new();
    for (i, viewer) in viewers.iter().copied().enumerate() {
        let mine = repo.clone();
        tasks.push(tokio::spawn(async move {
            mine.subscribe(viewer, stream).await.unwrap();
            if i % 2 == 0 {
                mine.leave(m, viewer, LeaveReason::Voluntary).await.unwrap();
            }
        }));
        let theirs = repo.clone();
        let other = viewers[(i + 1) % viewers.len()];
        tasks.push(tokio::spawn(async move {
            theirs.subscribe(other, stream).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    // The count is exactly the number of subscriptions sets that hold the stream.
    let mut holders = 0;
    for viewer in &viewers {
        let holds: bool = world
            .redis
            .conn()
            .sismember(
                format!("participant:{viewer}:subscriptions"),
                stream.to_string(),
            )
            .await
            .unwrap();
        holders += i64::from(holds);
    }
    assert_eq!(subscribers(&world, stream).await, holders);
    assert_eq!(holders, 4, "the four who stayed");
}

#[tokio::test]
async fn the_lifecycle_and_every_join_and_leave_leave_an_audit_row() {
    let (world, repo) = world().await;
    let creator = UserId::random();
    sqlx::query(
        "INSERT INTO meet.users (user_id, email, display_name) VALUES ($1, 'gm@example.org', 'GM')",
    )
    .bind(creator.as_uuid())
    .execute(world.postgres.pool())
    .await
    .unwrap();
    let m = repo
        .create_meeting(&NewMeeting {
            display_name: DisplayName::parse("Audited").unwrap(),
            created_by: Some(creator),
            settings: MeetingSettings::default(),
            scheduled_start_time: None,
        })
        .await
        .unwrap()
        .meeting_id;
    let gm = repo
        .join(&join_request(m, "GM", Some(creator)))
        .await
        .unwrap()
        .participant_id;
    let guest = join(&repo, m, "Guest").await;
    repo.leave(m, gm, LeaveReason::Voluntary).await.unwrap();
    repo.leave(m, gm, LeaveReason::Voluntary).await.unwrap();
    repo.end_meeting(m).await.unwrap();
    repo.end_meeting(m).await.unwrap();

    type Row = (String, String, Option<uuid::Uuid>, String, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT event_type, actor_type, actor_user_id, action, host(ip_address) \
         FROM meet.audit_logs WHERE target_type = 'meeting' AND target_id = $1 ORDER BY id",
    )
    .bind(m.to_string())
    .fetch_all(world.postgres.pool())
    .await
    .unwrap();
    let creator = Some(creator.as_uuid());
    let ip = Some("198.51.100.4".to_owned());
    let row = |event: &str, actor: &str, user, action: &str, ip: &Option<String>| -> Row {
        (event.into(), actor.into(), user, action.into(), ip.clone())
    };
    let expected = vec![
        row("meeting_created", "user", creator, "create", &None),
        row("participant_joined", "user", creator, "join", &ip),
        row("participant_joined", "user", None, "join", &ip),
        row("participant_left", "user", creator, "leave", &None),
        row("meeting_ended", "system", None, "end", &None),
    ];
    assert_eq!(rows, expected);
    // The guest's session was closed by the end (in PostgreSQL, and gone from Redis).
    assert_eq!(
        leave_reason(&world, guest).await.as_deref(),
        Some("meeting_ended")
    );
    assert_gone(&world, m, guest).await;
}

/// Registers controller `id` (its heartbeat now, on the world's clock) and assigns it
/// meeting `m`.
async fn hosted_by(world: &World, repo: &Repo, m: MeetingId, id: &str) {
    let controller = meetings::domain::ControllerId::parse(id).unwrap();
    repo.register_controller(&meetings::repo::ControllerRegistration {
        controller_id: controller.clone(),
        region: meetings::domain::Region::local(),
        endpoint: format!("https://{id}.example:4433"),
        max_meetings: 10,
        max_participants: 100,
        version: None,
        certificate_hash: None,
    })
    .await
    .unwrap();
    sqlx::query("UPDATE meet.meetings SET assigned_controller_id = $2 WHERE meeting_id = $1")
        .bind(m.as_uuid())
        .bind(controller.as_str())
        .execute(world.postgres.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_meeting_the_presence_job_empties_after_its_controller_crashed_stays_for_the_rejoin() {
    let (world, repo) = world().await;
    let crashed = meeting(&repo, "Crashed").await;
    let alive = meeting(&repo, "Alive").await;
    hosted_by(&world, &repo, crashed, "mc-crashed").await;
    let alice = join(&repo, crashed, "Alice").await;
    // The crashed controller heartbeats no more; the other one did just now.
    world.clock.advance(std::time::Duration::from_secs(40));
    hosted_by(&world, &repo, alive, "mc-alive").await;
    let bob = join(&repo, alive, "Bob").await;
    expire_now(
        &world,
        &[format!("presence:{alice}"), format!("presence:{bob}")],
    )
    .await;

    assert_eq!(jobs::reap_absent_participants(&repo).await.unwrap(), 2);

    // Alice left (her client joins again through another controller), her meeting goes
    // on; Bob's, whose controller is alive, ended as it always did.
    assert_eq!(
        leave_reason(&world, alice).await.as_deref(),
        Some("connection_lost")
    );
    assert_eq!(
        repo.meeting(crashed).await.unwrap().status,
        MeetingStatus::Active
    );
    assert_eq!(
        repo.meeting(alive).await.unwrap().status,
        MeetingStatus::Ended
    );
}
