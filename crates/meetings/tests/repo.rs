//! The repositories against real Redis and PostgreSQL: exact key names, types, TTLs,
//! counts and rows, including the seed's two data flows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use chrono::{TimeDelta, Utc};
use common::{Env, env, handler_registration};
use meetings::domain::{
    ActorType, AuditResult, CacheEntityId, ConnectionType, ControllerId, DisplayName, HandlerId,
    HealthStatus, LeaveReason, Liveness, MeetingCode, MeetingId, MeetingStatus,
    ParticipantConnection, ParticipantId, RateLimitPart, Region, ServiceConnection, StreamId,
    StreamType, TokenHash, UserId, WtToken,
};
use meetings::repo::{
    AuditEntry, ControllerHeartbeat, ControllerRegistration, HandlerHeartbeat, HandlerRegistration,
    JoinRequest, JoinWith, MeetingSettings, NewMeeting, NewStream,
};
use meetings::schema::CacheEntity;
use meetings::{MeetingsError, Repo};
use rand::SeedableRng;
use redis::AsyncCommands;
use store::StorageError;

/// `participant_id, user_id, display_name, host(ip_address), client_version`.
type ParticipantRow = (
    uuid::Uuid,
    Option<uuid::Uuid>,
    String,
    Option<String>,
    Option<String>,
);

fn repo(env: &Env) -> Repo {
    env.repo()
}

fn new_meeting(name: &str) -> NewMeeting {
    NewMeeting {
        display_name: DisplayName::parse(name).unwrap(),
        created_by: None,
        settings: MeetingSettings::default(),
        scheduled_start_time: None,
    }
}

fn join_request(meeting: MeetingId, name: &str) -> JoinRequest {
    JoinRequest {
        meeting_id: meeting,
        user_id: None,
        display_name: DisplayName::parse(name).unwrap(),
        ip_address: Some("192.0.2.7".parse().unwrap()),
        user_agent: Some("test-agent".into()),
        client_version: Some("0.1.0".into()),
    }
}

async fn hash(env: &Env, key: &str) -> HashMap<String, String> {
    let mut conn = env.redis.conn();
    conn.hgetall(key).await.expect("hgetall")
}

async fn exists(env: &Env, key: &str) -> bool {
    let mut conn = env.redis.conn();
    conn.exists(key).await.expect("exists")
}

/// `name` joined to meeting `m` through [`Repo::join`]: its participant id.
async fn joined(repo: &Repo, m: MeetingId, name: &str) -> ParticipantId {
    repo.join(&join_request(m, name))
        .await
        .unwrap()
        .participant_id
}

/// After a refused join: meeting `m`'s `participant_count` and its participants in
/// Redis (sessions, presences) and PostgreSQL (rows) are `n` each, as before it.
async fn assert_participants_recorded(env: &Env, m: MeetingId, n: usize) {
    assert_eq!(
        hash(env, &format!("meeting:{m}")).await["participant_count"],
        n.to_string()
    );
    assert_eq!(env.redis.scan("participant:*").await.unwrap().len(), n);
    assert_eq!(env.redis.scan("presence:*").await.unwrap().len(), n);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM meet.meeting_participants")
        .fetch_one(env.pg.pool())
        .await
        .unwrap();
    assert_eq!(rows, i64::try_from(n).unwrap());
}

fn assert_ttl_within(ttl: i64, max: i64, key: &str) {
    assert!(
        0 < ttl && ttl <= max,
        "TTL of {key} is {ttl}, expected 0 < ttl <= {max}"
    );
}

#[tokio::test]
async fn a_created_meeting_has_a_canonical_code_the_seeds_defaults_and_is_found_by_id_and_code() {
    let env = env().await;
    let repo = repo(&env);

    let meeting = repo
        .create_meeting(&new_meeting("Session zero"))
        .await
        .unwrap();

    assert_eq!(meeting.status, MeetingStatus::Scheduled);
    assert_eq!(meeting.settings, MeetingSettings::default());
    assert_eq!(meeting.settings.max_participants, 100);
    assert_eq!(meeting.meeting_code.as_str().len(), 12);
    assert_eq!(meeting.metadata, Some(serde_json::json!({})));
    assert_eq!(repo.meeting(meeting.meeting_id).await.unwrap(), meeting);
    let typed = MeetingCode::parse(&meeting.meeting_code.as_str().to_lowercase()).unwrap();
    assert_eq!(repo.meeting_by_code(&typed).await.unwrap(), meeting);
    let missing = MeetingId::random();
    assert!(matches!(
        repo.meeting(missing).await,
        Err(MeetingsError::Storage(StorageError::NotFound { what }))
            if what == format!("meeting {missing}")
    ));
}

#[tokio::test]
async fn a_taken_code_is_retried_with_another_and_repeated_collisions_give_up() {
    let env = env().await;
    let repo = repo(&env);
    let taken = MeetingCode::parse("AAA-AAAA-AAA").unwrap();
    let free = MeetingCode::parse("BBB-BBBB-BBB").unwrap();
    repo.create_meeting_with_codes(&new_meeting("first"), || taken.clone())
        .await
        .unwrap();

    let mut codes = vec![free.clone(), taken.clone()];
    let second = repo
        .create_meeting_with_codes(&new_meeting("second"), || codes.pop().unwrap())
        .await
        .unwrap();
    assert_eq!(second.meeting_code, free);

    let mut drawn = 0;
    let err = repo
        .create_meeting_with_codes(&new_meeting("third"), || {
            drawn += 1;
            taken.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, MeetingsError::CodesExhausted(5)), "{err}");
    assert_eq!(drawn, 5);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM meet.meetings")
        .fetch_one(env.pg.pool())
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_join_writes_the_session_the_set_and_the_count_in_redis_and_the_row_in_postgres() {
    let env = env().await;
    let repo = repo(&env);
    let meeting = repo.create_meeting(&new_meeting("Standup")).await.unwrap();
    let m = meeting.meeting_id;
    let user: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.users (email, display_name) VALUES ('alice@example.org', 'Alice') RETURNING user_id",
    )
    .fetch_one(env.pg.pool())
    .await
    .unwrap();

    let alice = repo
        .join(&JoinRequest {
            user_id: Some(UserId::from_uuid(user)),
            ..join_request(m, "Alice")
        })
        .await
        .unwrap();
    let guest = repo.join(&join_request(m, "Guest")).await.unwrap();

    assert_eq!(alice.participant_count, 1);
    assert_eq!(guest.participant_count, 2);
    let p = alice.participant_id;
    let participant_key = format!("participant:{p}");
    assert_eq!(env.redis_type(&participant_key).await, "hash");
    assert_ttl_within(env.ttl(&participant_key).await, 300, &participant_key);
    let session = hash(&env, &participant_key).await;
    let mut fields: Vec<&str> = session.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "connection_state",
            "display_name",
            "joined_at",
            "last_heartbeat",
            "meeting_id",
            "participant_id",
            "streams",
            "user_id"
        ]
    );
    assert_eq!(session["participant_id"], p.to_string());
    assert_eq!(session["meeting_id"], m.to_string());
    assert_eq!(session["user_id"], user.to_string());
    assert_eq!(session["display_name"], "Alice");
    assert_eq!(session["connection_state"], "connected");
    assert_eq!(session["streams"], "[]");
    assert!(session["joined_at"].parse::<i64>().unwrap() > 1_700_000_000);
    assert!(
        !hash(&env, &format!("participant:{}", guest.participant_id))
            .await
            .contains_key("user_id"),
        "a guest's session has no user_id"
    );

    let presence_key = format!("presence:{p}");
    assert_eq!(env.redis_type(&presence_key).await, "string");
    assert_ttl_within(env.ttl(&presence_key).await, 30, &presence_key);

    let set_key = format!("meeting:{m}:participants");
    assert_eq!(env.redis_type(&set_key).await, "set");
    let mut conn = env.redis.conn();
    let mut members: Vec<String> = conn.smembers(&set_key).await.unwrap();
    members.sort();
    let mut want = vec![p.to_string(), guest.participant_id.to_string()];
    want.sort();
    assert_eq!(members, want);
    assert_eq!(env.ttl(&set_key).await, -1, "no TTL while the meeting runs");

    let meeting_key = format!("meeting:{m}");
    assert_eq!(env.redis_type(&meeting_key).await, "hash");
    assert_eq!(env.ttl(&meeting_key).await, -1);
    let state = hash(&env, &meeting_key).await;
    assert_eq!(state["meeting_id"], m.to_string());
    assert_eq!(state["display_name"], "Standup");
    assert_eq!(state["status"], "active");
    assert_eq!(state["participant_count"], "2");
    assert!(state.contains_key("started_at"));

    let rows: Vec<ParticipantRow> = sqlx::query_as(
        "SELECT participant_id, user_id, display_name, host(ip_address), client_version \
             FROM meet.meeting_participants WHERE meeting_id = $1 ORDER BY id",
    )
    .bind(m.as_uuid())
    .fetch_all(env.pg.pool())
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                p.as_uuid(),
                Some(user),
                "Alice".to_owned(),
                Some("192.0.2.7".to_owned()),
                Some("0.1.0".to_owned())
            ),
            (
                guest.participant_id.as_uuid(),
                None,
                "Guest".to_owned(),
                Some("192.0.2.7".to_owned()),
                Some("0.1.0".to_owned())
            ),
        ]
    );
    let now_active = repo.meeting(m).await.unwrap();
    assert_eq!(now_active.status, MeetingStatus::Active);
    assert!(now_active.actual_start_time.is_some());

    let sessions = repo.participants(m).await.unwrap();
    let names: Vec<&str> = sessions.iter().map(|s| s.display_name.as_str()).collect();
    assert_eq!(sessions.len(), 2);
    assert!(
        names.contains(&"Alice") && names.contains(&"Guest"),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_join_whose_row_cannot_be_written_leaves_nothing_in_redis() {
    let env = env().await;
    let repo = repo(&env);
    let meeting = repo.create_meeting(&new_meeting("m")).await.unwrap();
    let m = meeting.meeting_id;
    // A user id that references no user: the row's foreign key refuses it.
    let req = JoinRequest {
        user_id: Some(UserId::random()),
        ..join_request(m, "Ghost")
    };

    let err = repo.join(&req).await.unwrap_err();

    assert!(matches!(err, MeetingsError::Storage(_)), "{err}");
    let mut conn = env.redis.conn();
    let members: Vec<String> = conn
        .smembers(format!("meeting:{m}:participants"))
        .await
        .unwrap();
    assert!(members.is_empty(), "{members:?}");
    assert_participants_recorded(&env, m, 0).await;
}

#[tokio::test]
async fn a_join_whose_participant_list_cannot_be_read_is_refused_and_leaves_nothing() {
    let env = env().await;
    let repo = repo(&env);
    let m = repo
        .create_meeting(&new_meeting("m"))
        .await
        .unwrap()
        .meeting_id;
    let first = repo.join(&join_request(m, "A")).await.unwrap();
    // A Redis user that may write everything a join writes but not read a session
    // hash back: the join's own step passes, reading the list for its answer fails.
    let mut conn = env.redis.conn();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER", "no-reads", "on", ">secret", "~*", "&*", "+@all", "-hgetall",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let url = format!(
        "redis://no-reads:secret@127.0.0.1:{}/",
        env.redis_server.port()
    );
    let blind = Repo::new(
        store::Redis::connect(&url).await.unwrap(),
        env.pg.clone(),
        std::sync::Arc::new(feature::SystemClock),
    );

    let second = blind.join(&join_request(m, "B")).await;

    assert!(
        matches!(second, Err(MeetingsError::Storage(_))),
        "a join answered without its list: {second:?}"
    );
    let members: Vec<String> = conn
        .smembers(format!("meeting:{m}:participants"))
        .await
        .unwrap();
    assert_eq!(members, vec![first.participant_id.to_string()]);
    assert_participants_recorded(&env, m, 1).await;
    // Readable again, the same join is answered with the one already there.
    let third = repo.join(&join_request(m, "B")).await.unwrap();
    let listed: std::collections::HashSet<_> = third
        .participants
        .iter()
        .map(|p| p.participant_id)
        .collect();
    assert_eq!(
        listed,
        [first.participant_id, third.participant_id]
            .into_iter()
            .collect()
    );
}

#[tokio::test]
async fn a_join_lists_everybody_but_those_its_caller_knows_and_itself_as_written() {
    let env = env().await;
    let repo = repo(&env);
    let meeting = repo.create_meeting(&new_meeting("m")).await.unwrap();
    let m = meeting.meeting_id;
    let a = joined(&repo, m, "A").await;
    let b = joined(&repo, m, "B").await;
    let c = ParticipantId::random();

    let (joined, row) = repo
        .join_meeting(
            &meeting,
            c,
            &join_request(m, "C"),
            &[a].into_iter().collect(),
            JoinWith::default(),
        )
        .await
        .unwrap();
    row.write().await.unwrap();

    let listed: std::collections::HashSet<_> = joined
        .participants
        .iter()
        .map(|p| p.participant_id)
        .collect();
    assert_eq!(listed, [b, c].into_iter().collect(), "A is known: not read");
    assert_eq!(joined.participant_count, 3);
    // The joiner's own entry is what was written.
    let own = joined
        .participants
        .iter()
        .find(|p| p.participant_id == c)
        .unwrap();
    let stored = repo
        .participants(m)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.participant_id == c)
        .unwrap();
    assert_eq!(*own, stored);
}

#[tokio::test]
async fn the_meeting_ends_in_postgres_and_redis_and_its_keys_get_the_24_hour_ttl() {
    let env = env().await;
    let repo = repo(&env);
    let meeting = repo.create_meeting(&new_meeting("m")).await.unwrap();
    let m = meeting.meeting_id;
    let joined = repo.join(&join_request(m, "Alice")).await.unwrap();

    let ended_at = repo.end_meeting(m).await.unwrap();

    let row = repo.meeting(m).await.unwrap();
    assert_eq!(row.status, MeetingStatus::Ended);
    assert_eq!(row.ended_at, Some(ended_at));
    let (left, reason): (bool, Option<String>) = sqlx::query_as(
        "SELECT left_at IS NOT NULL, leave_reason FROM meet.meeting_participants WHERE participant_id = $1",
    )
    .bind(joined.participant_id.as_uuid())
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    assert!(left);
    assert_eq!(reason.as_deref(), Some("meeting_ended"));
    let meeting_key = format!("meeting:{m}");
    assert_eq!(hash(&env, &meeting_key).await["status"], "ended");
    let ttl = env.ttl(&meeting_key).await;
    assert_ttl_within(ttl, 86_400, &meeting_key);
    assert!(ttl > 86_400 - 60, "{meeting_key}: {ttl}");
    // Everyone still in departed with the end, so the emptied set is gone.
    assert!(!exists(&env, &format!("meeting:{m}:participants")).await);
    assert!(!exists(&env, &format!("participant:{}", joined.participant_id)).await);
    assert_eq!(hash(&env, &meeting_key).await["participant_count"], "0");

    // Ending again keeps the first end and the keys' TTL.
    assert_eq!(repo.end_meeting(m).await.unwrap(), ended_at);
    assert!(env.ttl(&meeting_key).await > 0);
    assert!(matches!(
        repo.join(&join_request(m, "Late")).await,
        Err(MeetingsError::MeetingEnded(id)) if id == m
    ));
    assert!(matches!(
        repo.end_meeting(MeetingId::random()).await,
        Err(MeetingsError::Storage(StorageError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn leaving_counts_down_once_removes_the_session_and_closes_the_row() {
    let env = env().await;
    let repo = repo(&env);
    let m = repo
        .create_meeting(&new_meeting("m"))
        .await
        .unwrap()
        .meeting_id;
    let a = joined(&repo, m, "A").await;
    let b = joined(&repo, m, "B").await;

    assert_eq!(repo.leave(m, a, LeaveReason::Voluntary).await.unwrap(), 1);
    assert_eq!(repo.leave(m, a, LeaveReason::Voluntary).await.unwrap(), 1);

    assert_eq!(
        hash(&env, &format!("meeting:{m}")).await["participant_count"],
        "1"
    );
    assert!(!exists(&env, &format!("participant:{a}")).await);
    assert!(!exists(&env, &format!("presence:{a}")).await);
    assert!(exists(&env, &format!("participant:{b}")).await);
    let (reason, duration): (Option<String>, Option<i32>) = sqlx::query_as(
        "SELECT leave_reason, total_duration_seconds FROM meet.meeting_participants WHERE participant_id = $1",
    )
    .bind(a.as_uuid())
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some("voluntary"));
    assert!(duration.is_some_and(|d| d >= 0));
    assert_eq!(
        repo.leave(m, b, LeaveReason::ConnectionLost).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn participants_whose_heartbeat_stopped_are_removed_and_the_last_one_ends_the_meeting() {
    let env = env().await;
    let repo = repo(&env);
    let m = repo
        .create_meeting(&new_meeting("m"))
        .await
        .unwrap()
        .meeting_id;
    let a = joined(&repo, m, "A").await;
    let b = joined(&repo, m, "B").await;
    let mut conn = env.redis.conn();

    // Everybody is present: nothing to do.
    let none = meetings::jobs::reap_absent_participants(&repo)
        .await
        .unwrap();
    assert_eq!(none, 0);

    // A's presence expires (its 30 s TTL ran out: the browser crashed).
    let _: () = conn.del(format!("presence:{a}")).await.unwrap();
    let left = meetings::jobs::reap_absent_participants(&repo)
        .await
        .unwrap();
    assert_eq!(left, 1);
    let set: Vec<String> = conn
        .smembers(format!("meeting:{m}:participants"))
        .await
        .unwrap();
    assert_eq!(set, [b.to_string()]);
    assert_eq!(
        hash(&env, &format!("meeting:{m}")).await["participant_count"],
        "1"
    );
    let reason: Option<String> = sqlx::query_scalar(
        "SELECT leave_reason FROM meet.meeting_participants WHERE participant_id = $1",
    )
    .bind(a.as_uuid())
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some("connection_lost"));
    assert_eq!(
        repo.meeting(m).await.unwrap().status,
        meetings::domain::MeetingStatus::Active
    );

    // B goes quiet too: nobody is left, so the meeting ends.
    let _: () = conn.del(format!("presence:{b}")).await.unwrap();
    let reaped = repo.reap_absent(m).await.unwrap();
    assert_eq!(reaped.left, [b]);
    assert!(reaped.ended);
    assert_eq!(
        repo.meeting(m).await.unwrap().status,
        meetings::domain::MeetingStatus::Ended
    );
    assert_eq!(hash(&env, &format!("meeting:{m}")).await["status"], "ended");
}

#[tokio::test]
async fn a_heartbeat_refreshes_the_session_and_presence_but_never_revives_an_expired_one() {
    let env = env().await;
    let repo = repo(&env);
    let m = repo
        .create_meeting(&new_meeting("m"))
        .await
        .unwrap()
        .meeting_id;
    let p = joined(&repo, m, "A").await;
    let key = format!("participant:{p}");
    let mut conn = env.redis.conn();
    let _: () = conn.expire(&key, 10).await.unwrap();
    let _: () = conn.del(format!("presence:{p}")).await.unwrap();
    assert!(!repo.is_present(p).await.unwrap());

    assert!(repo.heartbeat(p).await.unwrap());

    let ttl = env.ttl(&key).await;
    assert!(10 < ttl && ttl <= 300, "{ttl}");
    assert!(repo.is_present(p).await.unwrap());
    assert_ttl_within(env.ttl(&format!("presence:{p}")).await, 30, "presence");

    let gone = ParticipantId::random();
    assert!(!repo.heartbeat(gone).await.unwrap());
    assert!(!exists(&env, &format!("participant:{gone}")).await);
    assert!(!exists(&env, &format!("presence:{gone}")).await);
}

fn controller(id: &str, region: &str) -> ControllerRegistration {
    ControllerRegistration {
        controller_id: ControllerId::parse(id).unwrap(),
        region: Region::parse(region).unwrap(),
        endpoint: format!("https://{id}.example.org"),
        max_meetings: 1000,
        max_participants: 10_000,
        version: Some("1.0.0".into()),
        certificate_hash: None,
    }
}

#[tokio::test]
async fn controllers_register_and_heartbeat_into_their_row_and_capacity_hash() {
    let env = env().await;
    let repo = repo(&env);
    let id = ControllerId::parse("mc-us-west-1-001").unwrap();
    repo.register_controller(&controller(id.as_str(), "us-west-1"))
        .await
        .unwrap();

    repo.heartbeat_controller(&ControllerHeartbeat {
        controller_id: id.clone(),
        current_meetings: 245,
        current_participants: 3456,
        health: HealthStatus::Degraded,
    })
    .await
    .unwrap();

    let key = "controller:mc-us-west-1-001:capacity";
    assert_eq!(env.redis_type(key).await, "hash");
    assert_ttl_within(env.ttl(key).await, 300, key);
    let capacity = hash(&env, key).await;
    assert_eq!(capacity["max_meetings"], "1000");
    assert_eq!(capacity["current_meetings"], "245");
    assert_eq!(capacity["max_participants"], "10000");
    assert_eq!(capacity["current_participants"], "3456");
    assert_eq!(capacity["health"], "degraded");
    assert!(capacity["last_update"].parse::<i64>().unwrap() > 1_700_000_000);
    let row: (String, i32, i32, String) = sqlx::query_as(
        "SELECT region, current_meetings, current_participants, health_status \
         FROM meet.meeting_controllers WHERE controller_id = $1",
    )
    .bind(id.as_str())
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    assert_eq!(
        row,
        ("us-west-1".to_owned(), 245, 3456, "degraded".to_owned())
    );

    let unknown = repo
        .heartbeat_controller(&ControllerHeartbeat {
            controller_id: ControllerId::parse("mc-nobody").unwrap(),
            current_meetings: 0,
            current_participants: 0,
            health: HealthStatus::Healthy,
        })
        .await;
    assert!(matches!(
        unknown,
        Err(MeetingsError::Storage(StorageError::NotFound { .. }))
    ));
    assert!(!exists(&env, "controller:mc-nobody:capacity").await);
}

#[tokio::test]
async fn a_meeting_is_assigned_a_healthy_controller_of_its_region() {
    let env = env().await;
    let repo = repo(&env);
    for (id, region) in [
        ("mc-a", "eu-west-1"),
        ("mc-b", "eu-west-1"),
        ("mc-c", "us-east-1"),
    ] {
        repo.register_controller(&controller(id, region))
            .await
            .unwrap();
    }
    repo.heartbeat_controller(&ControllerHeartbeat {
        controller_id: ControllerId::parse("mc-a").unwrap(),
        current_meetings: 0,
        current_participants: 0,
        health: HealthStatus::Unhealthy,
    })
    .await
    .unwrap();
    let m = repo
        .create_meeting(&new_meeting("m"))
        .await
        .unwrap()
        .meeting_id;
    let region = Region::parse("eu-west-1").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);

    let chosen = repo
        .assign_controller(m, &region, &Liveness::default(), &mut rng)
        .await
        .unwrap();

    assert_eq!(chosen.as_ref().map(ControllerId::as_str), Some("mc-b"));
    let meeting = repo.meeting(m).await.unwrap();
    assert_eq!(meeting.assigned_controller_id, chosen);
    assert_eq!(meeting.assigned_region, Some(region));
    let nowhere = Region::parse("ap-south-1").unwrap();
    assert_eq!(
        repo.assign_controller(m, &nowhere, &Liveness::default(), &mut rng)
            .await
            .unwrap(),
        None
    );

    // The join copies the assignment into the meeting hash.
    repo.join(&join_request(m, "A")).await.unwrap();
    assert_eq!(
        hash(&env, &format!("meeting:{m}")).await["controller_id"],
        "mc-b"
    );
}

#[tokio::test]
async fn media_handlers_register_and_report_load() {
    let env = env().await;
    let repo = repo(&env);
    let id = HandlerId::parse("mh-us-west-1-003").unwrap();
    repo.register_handler(&HandlerRegistration {
        handler_id: id.clone(),
        region: Region::parse("us-west-1").unwrap(),
        endpoint: "https://mh.example.org".into(),
        max_streams: 10_000,
        max_bitrate_mbps: 10_000,
        supports_transcoding: false,
        supports_mixing: true,
        supported_codecs: vec!["VP9".into(), "Opus".into()],
        certificate_hash: None,
    })
    .await
    .unwrap();

    repo.heartbeat_handler(&HandlerHeartbeat {
        handler_id: id.clone(),
        current_streams: 42,
        current_bitrate_mbps: 120,
        health: HealthStatus::Healthy,
    })
    .await
    .unwrap();

    let row: (i32, i32, bool, Vec<String>) = sqlx::query_as(
        "SELECT current_streams, current_bitrate_mbps, supports_transcoding, supported_codecs \
         FROM meet.media_handlers WHERE handler_id = $1",
    )
    .bind(id.as_str())
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    assert_eq!(
        row,
        (42, 120, false, vec!["VP9".to_owned(), "Opus".to_owned()])
    );
    let unknown = repo
        .heartbeat_handler(&HandlerHeartbeat {
            handler_id: HandlerId::parse("mh-nobody").unwrap(),
            current_streams: 0,
            current_bitrate_mbps: 0,
            health: HealthStatus::Healthy,
        })
        .await;
    assert!(matches!(
        unknown,
        Err(MeetingsError::Storage(StorageError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn a_connection_token_is_a_five_minute_hash_that_works_exactly_once() {
    let env = env().await;
    let repo = repo(&env);
    let (m, p) = (MeetingId::random(), ParticipantId::random());

    let token = repo
        .issue_participant_token(m, p, ParticipantConnection::Media)
        .await
        .unwrap();

    let key = format!("wt:token:{}", token.expose());
    assert_eq!(env.redis_type(&key).await, "hash");
    assert_ttl_within(env.ttl(&key).await, 300, &key);
    let fields = hash(&env, &key).await;
    assert_eq!(fields["participant_id"], p.to_string());
    assert_eq!(fields["meeting_id"], m.to_string());
    assert_eq!(fields["connection_type"], "media");
    let grant = repo.redeem_connection_token(&token).await.unwrap().unwrap();
    assert_eq!((grant.meeting_id, grant.participant_id), (m, p));
    assert_eq!(grant.connection_type, ConnectionType::Media);
    assert_eq!(grant.created_at.to_string(), fields["created_at"]);
    assert!(!exists(&env, &key).await);
    assert_eq!(repo.redeem_connection_token(&token).await.unwrap(), None);
    let never_issued = WtToken::parse(&"0".repeat(64)).unwrap();
    assert_eq!(
        repo.redeem_connection_token(&never_issued).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn participants_and_the_servers_own_clients_get_their_tokens_stored_as_before() {
    let env = env().await;
    let repo = repo(&env);
    let (m, p) = (MeetingId::random(), ParticipantId::random());
    let participant = [
        (ParticipantConnection::Signaling, "signaling"),
        (ParticipantConnection::Media, "media"),
    ];
    for (kind, stored) in participant {
        let token = repo.issue_participant_token(m, p, kind).await.unwrap();
        let fields = hash(&env, &format!("wt:token:{}", token.expose())).await;
        assert_eq!(fields["connection_type"], stored);
        let grant = repo.redeem_connection_token(&token).await.unwrap().unwrap();
        assert_eq!(grant.connection_type, ConnectionType::from(kind));
    }
    let service = [
        (ServiceConnection::Recorder, "recorder"),
        (ServiceConnection::Relay, "relay"),
    ];
    for (kind, stored) in service {
        let token = repo.issue_service_token(m, p, kind).await.unwrap();
        let fields = hash(&env, &format!("wt:token:{}", token.expose())).await;
        assert_eq!(fields["connection_type"], stored);
        let grant = repo.redeem_connection_token(&token).await.unwrap().unwrap();
        assert_eq!(grant.connection_type, ConnectionType::from(kind));
    }
}

#[tokio::test]
async fn a_blacklisted_token_stays_blacklisted_until_it_would_have_expired() {
    let env = env().await;
    let repo = repo(&env);
    let hash = TokenHash::parse("9f86d081884c7d659a2feaa0c55ad015").unwrap();

    let stored = repo
        .blacklist_token(&hash, "logout", Utc::now() + TimeDelta::hours(1))
        .await
        .unwrap();

    assert!(stored);
    let key = "token:blacklist:9f86d081884c7d659a2feaa0c55ad015";
    assert_eq!(env.redis_type(key).await, "string");
    let ttl = env.ttl(key).await;
    assert!(3_500 < ttl && ttl <= 3_600, "{ttl}");
    assert_eq!(
        repo.blacklisted(&hash).await.unwrap().as_deref(),
        Some("logout")
    );
    let expired = TokenHash::parse("old").unwrap();
    assert!(
        !repo
            .blacklist_token(&expired, "logout", Utc::now() - TimeDelta::seconds(1))
            .await
            .unwrap()
    );
    assert!(!exists(&env, "token:blacklist:old").await);
    assert_eq!(repo.blacklisted(&expired).await.unwrap(), None);
}

#[tokio::test]
async fn the_rate_limit_counter_counts_per_window_and_expires_after_a_minute() {
    let env = env().await;
    let repo = repo(&env);
    let endpoint = RateLimitPart::parse("api:meetings:create").unwrap();
    let user = RateLimitPart::parse("user:123").unwrap();
    let now = chrono::DateTime::from_timestamp(1_705_411_230, 0).unwrap();

    let counts = [
        repo.count_request(&endpoint, &user, now).await.unwrap(),
        repo.count_request(&endpoint, &user, now).await.unwrap(),
        repo.count_request(&endpoint, &user, now).await.unwrap(),
    ];

    assert_eq!(counts, [1, 2, 3]);
    let key = "ratelimit:api:meetings:create:user:123:1705411200";
    assert_eq!(env.redis_type(key).await, "string");
    assert_ttl_within(env.ttl(key).await, 60, key);
    let next_window = now + TimeDelta::seconds(60);
    assert_eq!(
        repo.count_request(&endpoint, &user, next_window)
            .await
            .unwrap(),
        1
    );
    assert!(exists(&env, "ratelimit:api:meetings:create:user:123:1705411260").await);
}

#[tokio::test]
async fn two_connections_racing_with_one_token_get_exactly_one_grant() {
    let env = env().await;
    let repo = repo(&env);
    for _ in 0..20 {
        let token = repo
            .issue_participant_token(
                MeetingId::random(),
                ParticipantId::random(),
                meetings::domain::ParticipantConnection::Signaling,
            )
            .await
            .unwrap();

        let (a, b) = tokio::join!(
            repo.redeem_connection_token(&token),
            repo.redeem_connection_token(&token)
        );

        let grants = [a.unwrap(), b.unwrap()];
        assert_eq!(grants.iter().filter(|g| g.is_some()).count(), 1);
    }
}

#[tokio::test]
async fn a_published_stream_lives_while_live_counts_subscribers_once_and_expires_an_hour_after_it_ends()
 {
    let env = env().await;
    let repo = repo(&env);
    let m = repo
        .create_meeting(&new_meeting("m"))
        .await
        .unwrap()
        .meeting_id;
    let publisher = joined(&repo, m, "Pub").await;
    let viewer = joined(&repo, m, "View").await;
    let stream = StreamId::random();
    let new = NewStream {
        stream_id: stream,
        meeting_id: m,
        participant_id: publisher,
        stream_type: StreamType::VideoCamera,
        codec: "VP9".into(),
        max_bitrate: 2_500_000,
    };

    assert!(repo.publish_stream(&new).await.unwrap());

    let key = format!("stream:{stream}");
    assert_eq!(env.redis_type(&key).await, "hash");
    assert_eq!(env.ttl(&key).await, -1, "no TTL while the stream is live");
    let fields = hash(&env, &key).await;
    assert_eq!(fields["stream_id"], stream.to_string());
    assert_eq!(fields["participant_id"], publisher.to_string());
    assert_eq!(fields["meeting_id"], m.to_string());
    assert_eq!(fields["stream_type"], "video_camera");
    assert_eq!(fields["codec"], "VP9");
    assert_eq!(fields["max_bitrate"], "2500000");
    assert_eq!(fields["subscribers"], "0");
    assert!(fields.contains_key("created_at"));
    let streams = &hash(&env, &format!("participant:{publisher}")).await["streams"];
    assert_eq!(streams, &format!("[\"{stream}\"]"));

    assert_eq!(repo.subscribe(viewer, stream).await.unwrap(), Some(1));
    assert_eq!(repo.subscribe(viewer, stream).await.unwrap(), Some(1));
    let subs_key = format!("participant:{viewer}:subscriptions");
    assert_eq!(env.redis_type(&subs_key).await, "set");
    // The subscriptions set outlives the 5-minute session (1 h, refreshed).
    assert_ttl_within(env.ttl(&subs_key).await, 3_600, &subs_key);
    assert!(env.ttl(&subs_key).await > 300, "{subs_key}");
    let mut conn = env.redis.conn();
    let members: Vec<String> = conn.smembers(&subs_key).await.unwrap();
    assert_eq!(members, [stream.to_string()]);
    assert_eq!(repo.unsubscribe(viewer, stream).await.unwrap(), Some(0));
    assert_eq!(repo.unsubscribe(viewer, stream).await.unwrap(), Some(0));
    assert_eq!(
        repo.subscribe(viewer, StreamId::random()).await.unwrap(),
        None
    );

    assert!(repo.end_stream(stream, publisher).await.unwrap());

    let ttl = env.ttl(&key).await;
    assert!(3_500 < ttl && ttl <= 3_600, "{ttl}");
    assert_eq!(
        hash(&env, &format!("participant:{publisher}")).await["streams"],
        "[]"
    );
    assert!(
        !repo
            .end_stream(StreamId::random(), publisher)
            .await
            .unwrap()
    );
    let orphan = NewStream {
        stream_id: StreamId::random(),
        participant_id: ParticipantId::random(),
        ..new
    };
    assert!(!repo.publish_stream(&orphan).await.unwrap());
    assert!(!exists(&env, &format!("stream:{}", orphan.stream_id)).await);
}

#[tokio::test]
async fn cached_rows_live_for_their_entity_types_ttl() {
    let env = env().await;
    let repo = repo(&env);
    let meeting = MeetingId::random();
    let (id, cached) = (meeting.to_string(), CacheEntityId::from(meeting));
    let row = serde_json::json!({"display_name": "Standup", "status": "active"});

    repo.cache_put(CacheEntity::Meeting, &cached, &row)
        .await
        .unwrap();
    let user = CacheEntityId::parse("u1").unwrap();
    repo.cache_put(CacheEntity::User, &user, &row)
        .await
        .unwrap();

    let key = format!("cache:meeting:{id}");
    assert_eq!(env.redis_type(&key).await, "string");
    assert_ttl_within(env.ttl(&key).await, 300, &key);
    let user_ttl = env.ttl("cache:user:u1").await;
    assert!(300 < user_ttl && user_ttl <= 3_600, "{user_ttl}");
    assert_eq!(
        repo.cache_get(CacheEntity::Meeting, &cached).await.unwrap(),
        Some(row)
    );
    repo.cache_invalidate(CacheEntity::Meeting, &cached)
        .await
        .unwrap();
    assert_eq!(
        repo.cache_get(CacheEntity::Meeting, &cached).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn audit_entries_land_in_their_months_partition_or_the_default() {
    let env = env().await;
    let repo = repo(&env);
    let entry = AuditEntry {
        event_type: "meeting_created".into(),
        actor_user_id: None,
        actor_type: ActorType::System,
        target_type: Some("meeting".into()),
        target_id: Some(MeetingId::random().to_string()),
        action: "create".into(),
        result: AuditResult::Success,
        error_message: None,
        ip_address: Some("2001:db8::1".parse().unwrap()),
        user_agent: None,
        metadata: None,
    };
    let first = repo.audit(&entry).await.unwrap();
    meetings::jobs::ensure_audit_partitions(&env.pg, &meetings::Retention::default(), Utc::now())
        .await
        .unwrap();

    let second = repo.audit(&entry).await.unwrap();

    assert!(second > first);
    let rows: Vec<(String, String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT tableoid::regclass::text, actor_type, host(ip_address), metadata FROM meet.audit_logs ORDER BY id",
    )
    .fetch_all(env.pg.pool())
    .await
    .unwrap();
    let month = meetings::domain::Month::containing(Utc::now());
    let partition = format!("meet.{}", meetings::schema::audit_partition_name(month));
    assert_eq!(rows.len(), 2);
    for (table, actor, ip, metadata) in rows {
        // The first row moved out of the default partition when its month's was made.
        assert_eq!(table, partition);
        assert_eq!((actor.as_str(), ip.as_str()), ("system", "2001:db8::1"));
        assert_eq!(metadata, serde_json::json!({}));
    }
}

#[tokio::test]
async fn a_full_meeting_refuses_the_next_join_and_writes_nothing_for_it() {
    let env = env().await;
    let repo = repo(&env);
    let mut small = new_meeting("small");
    small.settings.max_participants = 2;
    let m = repo.create_meeting(&small).await.unwrap().meeting_id;
    repo.join(&join_request(m, "A")).await.unwrap();
    repo.join(&join_request(m, "B")).await.unwrap();

    let third = repo.join(&join_request(m, "C")).await;

    assert!(
        matches!(third, Err(MeetingsError::MeetingFull { meeting, max_participants: 2 }) if meeting == m),
        "{third:?}"
    );
    assert_participants_recorded(&env, m, 2).await;
}

#[tokio::test]
async fn a_join_presenting_a_blacklisted_token_is_refused_in_its_own_step_and_writes_nothing() {
    let env = env().await;
    let repo = repo(&env);
    let mut small = new_meeting("small");
    small.settings.max_participants = 1;
    let meeting = repo.create_meeting(&small).await.unwrap();
    let m = meeting.meeting_id;
    let (revoked, valid) = (
        TokenHash::parse("5e884898da28047151d0e56f8dc62927").unwrap(),
        TokenHash::parse("6b3a55e0261b0304143f805a24924d0c").unwrap(),
    );
    repo.blacklist_token(&revoked, "logout", Utc::now() + TimeDelta::minutes(5))
        .await
        .unwrap();
    let join = |name: &'static str, token: &TokenHash| {
        let (repo, meeting, token) = (repo.clone(), meeting.clone(), token.clone());
        async move {
            repo.join_meeting(
                &meeting,
                ParticipantId::random(),
                &join_request(meeting.meeting_id, name),
                &std::collections::HashSet::new(),
                JoinWith {
                    presented: Some(&token),
                    media_token: true,
                },
            )
            .await
        }
    };

    let refused = join("A", &revoked).await;

    assert!(
        matches!(refused, Err(MeetingsError::TokenRevoked)),
        "{refused:?}"
    );
    assert!(!exists(&env, &format!("meeting:{m}")).await);
    assert!(env.redis.scan("participant:*").await.unwrap().is_empty());
    assert!(env.redis.scan("presence:*").await.unwrap().is_empty());
    // Nor its media token.
    assert!(env.redis.scan("wt:token:*").await.unwrap().is_empty());
    // A token not on the blacklist joins, and the same step issued its media token: a
    // one-time `media` connection token for this participant of this meeting. Once the
    // meeting is full, a revoked token is still told it is revoked rather than that
    // the meeting is full.
    let (joined, row) = join("B", &valid).await.unwrap();
    row.write().await.unwrap();
    assert_eq!(joined.participant_count, 1);
    let media = joined.media_token.expect("the join's media token");
    let granted = repo.redeem_connection_token(&media).await.unwrap();
    assert_eq!(
        granted.map(|g| (g.participant_id, g.meeting_id, g.connection_type)),
        Some((joined.participant_id, m, ConnectionType::Media))
    );
    assert_eq!(repo.redeem_connection_token(&media).await.unwrap(), None);
    let refused = join("C", &revoked).await;
    assert!(
        matches!(refused, Err(MeetingsError::TokenRevoked)),
        "{refused:?}"
    );
    assert_participants_recorded(&env, m, 1).await;
}

#[tokio::test]
async fn a_running_meeting_gets_a_healthy_media_handler_of_its_region_in_its_hash() {
    let env = env().await;
    let repo = repo(&env);
    let region = Region::parse("eu-west-1").unwrap();
    for (id, health) in [
        ("mh-1", HealthStatus::Unhealthy),
        ("mh-2", HealthStatus::Healthy),
    ] {
        let handler_id = HandlerId::parse(id).unwrap();
        repo.register_handler(&handler_registration(
            &handler_id,
            &region,
            &format!("https://{id}.example.org"),
        ))
        .await
        .unwrap();
        repo.heartbeat_handler(&HandlerHeartbeat {
            handler_id,
            current_streams: 10,
            current_bitrate_mbps: 10,
            health,
        })
        .await
        .unwrap();
    }
    let m = repo
        .create_meeting(&new_meeting("m"))
        .await
        .unwrap()
        .meeting_id;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);

    let before_join = repo
        .assign_media_handler(m, &region, &Liveness::default(), &mut rng)
        .await
        .unwrap();
    repo.join(&join_request(m, "A")).await.unwrap();
    let after_join = repo
        .assign_media_handler(m, &region, &Liveness::default(), &mut rng)
        .await
        .unwrap();

    assert_eq!(before_join, None, "no meeting hash yet: nothing written");
    assert_eq!(after_join.as_ref().map(HandlerId::as_str), Some("mh-2"));
    assert_eq!(
        hash(&env, &format!("meeting:{m}")).await["media_handler_id"],
        "mh-2"
    );
    let nowhere = Region::parse("ap-south-1").unwrap();
    assert_eq!(
        repo.assign_media_handler(m, &nowhere, &Liveness::default(), &mut rng)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn streams_published_at_once_by_one_participant_all_land_in_its_streams() {
    let env = env().await;
    let repo = repo(&env);
    let m = repo
        .create_meeting(&new_meeting("m"))
        .await
        .unwrap()
        .meeting_id;
    let publisher = joined(&repo, m, "Pub").await;
    let streams: Vec<StreamId> = (0..8).map(|_| StreamId::random()).collect();

    let tasks: Vec<_> = streams
        .iter()
        .map(|&stream_id| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.publish_stream(&NewStream {
                    stream_id,
                    meeting_id: m,
                    participant_id: publisher,
                    stream_type: StreamType::AudioMicrophone,
                    codec: "Opus".into(),
                    max_bitrate: 64_000,
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap());
    }

    let raw = hash(&env, &format!("participant:{publisher}")).await["streams"].clone();
    let mut listed: Vec<String> = serde_json::from_str(&raw).unwrap();
    listed.sort();
    let mut want: Vec<String> = streams.iter().map(StreamId::to_string).collect();
    want.sort();
    assert_eq!(listed, want);

    // Ending them one by one empties the array again.
    for stream in &streams {
        assert!(repo.end_stream(*stream, publisher).await.unwrap());
    }
    assert_eq!(
        hash(&env, &format!("participant:{publisher}")).await["streams"],
        "[]"
    );
}

#[tokio::test]
async fn a_sweep_reads_every_hosted_meetings_status_and_present_participants_at_once() {
    let env = env().await;
    let repo = repo(&env);
    let open = repo.create_meeting(&new_meeting("open")).await.unwrap();
    let ended = repo.create_meeting(&new_meeting("ended")).await.unwrap();
    let empty = repo.create_meeting(&new_meeting("empty")).await.unwrap();
    let alice = repo
        .join(&join_request(open.meeting_id, "Alice"))
        .await
        .unwrap();
    let bob = repo
        .join(&join_request(open.meeting_id, "Bob"))
        .await
        .unwrap();
    repo.join(&join_request(ended.meeting_id, "Carol"))
        .await
        .unwrap();
    repo.end_meeting(ended.meeting_id).await.unwrap();
    // Bob's session hash expired; he is still in the set until the presence job runs.
    let mut conn = env.redis.conn();
    let _: () = conn
        .del(format!("participant:{}", bob.participant_id))
        .await
        .unwrap();
    let unknown = MeetingId::random();
    let asked = [open.meeting_id, ended.meeting_id, empty.meeting_id, unknown];

    let statuses = repo.meeting_statuses(&asked).await.unwrap();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert_eq!(statuses[&open.meeting_id].status, MeetingStatus::Active);
    assert_eq!(statuses[&ended.meeting_id].status, MeetingStatus::Ended);
    assert_eq!(statuses[&empty.meeting_id].status, MeetingStatus::Scheduled);
    // Nobody assigned a controller to these meetings (their joins went straight to the
    // repository); a sweep reads the assignment with the status.
    assert!(
        statuses.values().all(|s| s.controller.is_none()),
        "{statuses:?}"
    );

    let present = repo.present_participants(&asked).await.unwrap();
    assert_eq!(present.len(), 4, "every meeting asked for has an entry");
    assert_eq!(
        present[&open.meeting_id],
        [alice.participant_id].into_iter().collect()
    );
    assert!(present[&empty.meeting_id].is_empty());
    assert!(present[&unknown].is_empty());
    assert!(repo.meeting_statuses(&[]).await.unwrap().is_empty());
    assert!(repo.present_participants(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_join_racing_the_meetings_end_is_refused_and_leaves_no_open_row() {
    let env = env().await;
    let repo = repo(&env);
    let meeting = repo
        .create_meeting(&new_meeting("Closing time"))
        .await
        .unwrap();
    let m = meeting.meeting_id;
    let first = joined(&repo, m, "First").await;

    // The meeting as a join read it, then its end, then the join's Redis step.
    let read = repo.meeting(m).await.unwrap();
    repo.end_meeting(m).await.unwrap();
    let late = repo
        .join_meeting(
            &read,
            ParticipantId::random(),
            &join_request(m, "Late"),
            &Default::default(),
            JoinWith::default(),
        )
        .await;
    assert!(
        matches!(late, Err(MeetingsError::MeetingEnded(id)) if id == m),
        "{:?}",
        late.map(|_| ())
    );
    assert_eq!(env.redis.scan("participant:*").await.unwrap().len(), 0);
    assert_eq!(hash(&env, &format!("meeting:{m}")).await["status"], "ended");

    // A join whose Redis step came before the end and its row after: no row is left
    // open, and the Redis step is undone.
    let other = repo
        .create_meeting(&new_meeting("Also closing"))
        .await
        .unwrap();
    let o = other.meeting_id;
    let stays = joined(&repo, o, "Stays").await;
    let read = repo.meeting(o).await.unwrap();
    let racer = ParticipantId::random();
    let (_, row) = repo
        .join_meeting(
            &read,
            racer,
            &join_request(o, "Racer"),
            &Default::default(),
            JoinWith::default(),
        )
        .await
        .unwrap();
    repo.end_meeting(o).await.unwrap();
    let written = row.write().await;
    assert!(
        matches!(written, Err(MeetingsError::MeetingEnded(id)) if id == o),
        "{written:?}"
    );
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM meet.meeting_participants WHERE left_at IS NULL")
            .fetch_one(env.pg.pool())
            .await
            .unwrap();
    assert_eq!(open, 0, "every row of the ended meetings is closed");
    let racers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM meet.meeting_participants WHERE participant_id = $1",
    )
    .bind(racer.as_uuid())
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    assert_eq!(racers, 0);
    assert!(!exists(&env, &format!("participant:{racer}")).await);
    let _ = (first, stays);
}

/// The settings' `UPDATE` itself refuses to change end-to-end encryption while a
/// participant's row is open (so a join recorded between the caller's look at who is in
/// and the `UPDATE` cannot slip through; that interleaving cannot be forced here), and
/// changes it once they have left. Other settings change with people in the meeting.
#[tokio::test]
async fn the_settings_update_refuses_to_change_encryption_while_a_participant_row_is_open() {
    let env = env().await;
    let repo = repo(&env);
    let host: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.users (email, display_name) VALUES ('host@example.org', 'Host') RETURNING user_id",
    )
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    let host = UserId::from_uuid(host);
    let m = repo
        .create_meeting(&new_meeting("Encrypted"))
        .await
        .unwrap()
        .meeting_id;
    let name = DisplayName::parse("Encrypted").unwrap();
    let alice = joined(&repo, m, "Alice").await;
    let read = repo.meeting(m).await.unwrap();
    let encrypted = MeetingSettings {
        enable_e2e_encryption: !read.settings.enable_e2e_encryption,
        ..read.settings
    };

    let refused = repo
        .update_meeting_settings(&read, host, &name, &encrypted)
        .await;
    assert!(
        matches!(refused, Err(MeetingsError::MeetingInProgress(id)) if id == m),
        "{refused:?}"
    );
    assert_eq!(repo.meeting(m).await.unwrap(), read, "nothing changed");

    let bigger = MeetingSettings {
        max_participants: read.settings.max_participants + 1,
        ..read.settings
    };
    let bigger = repo
        .update_meeting_settings(&read, host, &name, &bigger)
        .await
        .unwrap()
        .expect("another setting changes with people in the meeting");
    assert_eq!(
        bigger.settings.max_participants,
        read.settings.max_participants + 1
    );

    repo.leave(m, alice, LeaveReason::Voluntary).await.unwrap();
    let read = repo.meeting(m).await.unwrap();
    let encrypted = MeetingSettings {
        enable_e2e_encryption: !read.settings.enable_e2e_encryption,
        ..read.settings
    };
    let changed = repo
        .update_meeting_settings(&read, host, &name, &encrypted)
        .await
        .unwrap()
        .expect("changed once nobody is in");
    assert_eq!(changed.settings, encrypted);
}
