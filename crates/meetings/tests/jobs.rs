//! The retention rules and partition upkeep against a real PostgreSQL, and the feature
//! value handed to the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Utc};
use common::migrated;
use meetings::domain::{Month, Retention};
use meetings::jobs;
use store::Postgres;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A meeting with the given status, ended `ended_days_ago` days ago (if any), with one
/// participant row; returns its id.
async fn meeting(
    pg: &Postgres,
    code: &str,
    status: &str,
    ended_days_ago: Option<i32>,
) -> uuid::Uuid {
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.meetings (display_name, meeting_code, status, ended_at) \
         VALUES ($1, $1, $2, NOW() - make_interval(days => $3)) RETURNING meeting_id",
    )
    .bind(code)
    .bind(status)
    .bind(ended_days_ago)
    .fetch_one(pg.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO meet.meeting_participants (meeting_id, participant_id, display_name) \
         VALUES ($1, gen_random_uuid(), 'p')",
    )
    .bind(id)
    .execute(pg.pool())
    .await
    .unwrap();
    id
}

async fn recording(pg: &Postgres, meeting: uuid::Uuid, created_days_ago: i32) {
    sqlx::query(
        "INSERT INTO meet.recordings (meeting_id, started_at, storage_path, storage_bucket, created_at) \
         VALUES ($1, NOW(), 'r/1.webm', 'recordings', NOW() - make_interval(days => $2))",
    )
    .bind(meeting)
    .bind(created_days_ago)
    .execute(pg.pool())
    .await
    .unwrap();
}

async fn codes(pg: &Postgres) -> Vec<String> {
    sqlx::query_scalar("SELECT meeting_code::text FROM meet.meetings ORDER BY meeting_code")
        .fetch_all(pg.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn retention_deletes_meetings_ninety_days_after_their_end_with_their_participants_and_old_recordings()
 {
    let env = migrated().await;
    let pg = &env.pg;
    meeting(pg, "old-ended", "ended", Some(91)).await;
    meeting(pg, "recent-ended", "ended", Some(89)).await;
    meeting(pg, "running", "active", None).await;
    let kept_for_recording = meeting(pg, "old-with-recording", "ended", Some(200)).await;
    recording(pg, kept_for_recording, 30).await;
    let recording_expired = meeting(pg, "old-rec-expired", "ended", Some(400)).await;
    recording(pg, recording_expired, 370).await;

    let report = jobs::run_retention(pg, &Retention::default(), Utc::now(), None)
        .await
        .unwrap();

    assert_eq!(report.recordings, 1);
    assert_eq!(
        report.meetings, 2,
        "old-ended, and old-rec-expired once its recording went"
    );
    assert_eq!(
        codes(pg).await,
        ["old-with-recording", "recent-ended", "running"]
    );
    let participants: i64 = sqlx::query_scalar("SELECT count(*) FROM meet.meeting_participants")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(participants, 3, "participant rows went with their meetings");
    let recordings: i64 = sqlx::query_scalar("SELECT count(*) FROM meet.recordings")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(recordings, 1);

    let again = jobs::run_retention(pg, &Retention::default(), Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(again, jobs::RetentionReport::default());
}

/// A recording of `meeting` created `created_days_ago` days ago, its file at `path` in
/// `bucket`; returns its id.
async fn recording_at(
    pg: &Postgres,
    meeting: uuid::Uuid,
    created_days_ago: i32,
    bucket: &str,
    path: &str,
) -> uuid::Uuid {
    sqlx::query_scalar(
        "INSERT INTO meet.recordings (meeting_id, started_at, storage_path, storage_bucket, status, created_at) \
         VALUES ($1, NOW(), $2, $3, 'ready', NOW() - make_interval(days => $4)) RETURNING recording_id",
    )
    .bind(meeting)
    .bind(path)
    .bind(bucket)
    .bind(created_days_ago)
    .fetch_one(pg.pool())
    .await
    .unwrap()
}

async fn recording_ids(pg: &Postgres) -> Vec<uuid::Uuid> {
    let mut ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT recording_id FROM meet.recordings")
        .fetch_all(pg.pool())
        .await
        .unwrap();
    ids.sort();
    ids
}

#[tokio::test]
async fn retention_deletes_a_recordings_stored_file_with_it_and_tries_a_failed_delete_again() {
    let env = migrated().await;
    let pg = &env.pg;
    let store = tempfile::tempdir().unwrap();
    let files = meetings::recording::RecordingFiles::new(&meetings::recording::RecordingsConfig {
        storage: Some(store.path().display().to_string()),
        ..Default::default()
    });
    let m = meeting(pg, "with-recordings", "ended", Some(10)).await;
    let file = |name: &str| store.path().join("m").join(name);
    std::fs::create_dir_all(store.path().join("m")).unwrap();
    // Stored, and past retention.
    let stored = recording_at(pg, m, 400, "local", "m/stored.webm").await;
    std::fs::write(file("stored.webm"), b"webm").unwrap();
    // Past retention, but its file cannot be deleted now (a directory stands there).
    let stuck = recording_at(pg, m, 400, "local", "m/stuck.webm").await;
    std::fs::create_dir_all(file("stuck.webm").join("x")).unwrap();
    // Past retention, in a store this server does not reach.
    let elsewhere = recording_at(pg, m, 400, "other-bucket", "m/elsewhere.webm").await;
    std::fs::write(file("elsewhere.webm"), b"webm").unwrap();
    // Not past retention.
    let young = recording_at(pg, m, 30, "local", "m/young.webm").await;
    std::fs::write(file("young.webm"), b"webm").unwrap();

    let report = jobs::run_retention(pg, &Retention::default(), Utc::now(), Some(&files))
        .await
        .unwrap();
    assert_eq!((report.recordings, report.recordings_kept), (2, 1));
    assert!(!file("stored.webm").exists(), "deleted with its row");
    assert!(
        file("elsewhere.webm").exists(),
        "not this server's to delete"
    );
    assert!(file("young.webm").exists());
    let mut left = vec![stuck, young];
    left.sort();
    assert_eq!(recording_ids(pg).await, left);
    assert!(!recording_ids(pg).await.contains(&stored));
    assert!(!recording_ids(pg).await.contains(&elsewhere));

    // The next run, once the store lets it, deletes the file and then the row.
    std::fs::remove_dir_all(file("stuck.webm")).unwrap();
    std::fs::write(file("stuck.webm"), b"webm").unwrap();
    let again = jobs::run_retention(pg, &Retention::default(), Utc::now(), Some(&files))
        .await
        .unwrap();
    assert_eq!((again.recordings, again.recordings_kept), (1, 0));
    assert!(!file("stuck.webm").exists());
    assert_eq!(recording_ids(pg).await, [young]);
}

async fn audit_row(pg: &Postgres, created_at: &str) -> String {
    sqlx::query_scalar(
        "INSERT INTO meet.audit_logs (event_type, actor_type, action, result, created_at) \
         VALUES ('user_login', 'user', 'login', 'success', $1::timestamptz) \
         RETURNING tableoid::regclass::text",
    )
    .bind(created_at)
    .fetch_one(pg.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn partitions_are_made_ahead_and_dropped_once_their_month_is_a_year_old() {
    let env = migrated().await;
    let pg = &env.pg;
    let rules = Retention::default();
    assert_eq!(
        audit_row(pg, "2025-01-15T00:00:00Z").await,
        "meet.audit_logs_y2025m01"
    );
    assert_eq!(
        audit_row(pg, "2024-12-01T00:00:00Z").await,
        "meet.audit_logs_default"
    );
    assert_eq!(
        audit_row(pg, "2025-06-20T00:00:00Z").await,
        "meet.audit_logs_default"
    );

    let made = jobs::ensure_audit_partitions(pg, &rules, at("2025-06-10T00:00:00Z"))
        .await
        .unwrap();

    assert_eq!(made, ["audit_logs_y2025m06", "audit_logs_y2025m07"]);
    let month = |y, m| Month::new(y, m).unwrap();
    assert_eq!(
        jobs::audit_partitions(pg).await.unwrap(),
        [month(2025, 1), month(2025, 6), month(2025, 7)]
    );
    assert_eq!(
        audit_row(pg, "2025-07-31T12:00:00Z").await,
        "meet.audit_logs_y2025m07"
    );

    // A day before January 2025 is a year old as a whole, nothing goes.
    let early = jobs::drop_expired_audit_logs(pg, &rules, at("2026-01-31T23:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        early,
        (vec![], 1),
        "only the December 2024 row in the default partition"
    );
    let (dropped, _) = jobs::drop_expired_audit_logs(pg, &rules, at("2026-02-01T00:00:00Z"))
        .await
        .unwrap();

    assert_eq!(dropped, ["audit_logs_y2025m01"]);
    assert_eq!(
        jobs::audit_partitions(pg).await.unwrap(),
        [month(2025, 6), month(2025, 7)]
    );
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM meet.audit_logs ORDER BY created_at",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    assert_eq!(left, ["2025-06-20", "2025-07-31"]);
}

#[tokio::test]
async fn the_feature_brings_its_migrations_jobs_and_a_start_up_that_makes_this_months_partition() {
    let world = testkit::World::with_postgres().await;
    world.clock.set(Utc::now());

    let feature = meetings::feature(&world.ctx, meetings::MeetingsConfig::default());
    world.migrate(std::slice::from_ref(&feature)).await;

    assert_eq!(feature.name, "meetings");
    assert_eq!(feature.migrations.map(|m| m.schema), Some("meet"));
    let mut names: Vec<&str> = feature.jobs.iter().map(|j| j.name()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            meetings::PARTITIONS_JOB,
            meetings::KEY_ROTATION_JOB,
            meetings::PRESENCE_JOB,
            meetings::RETENTION_JOB,
            meetings::STATISTICS_JOB
        ]
    );
    let startup = feature.startup.first().expect("start-up work");
    startup.run().await.unwrap();
    let this_month = Month::containing(Utc::now());
    assert!(
        jobs::audit_partitions(&world.postgres)
            .await
            .unwrap()
            .contains(&this_month)
    );
    let retention = feature
        .jobs
        .iter()
        .find(|j| j.name() == meetings::RETENTION_JOB)
        .unwrap();
    retention.run_now().await.unwrap();
}

#[tokio::test]
async fn the_features_jobs_take_now_from_the_contexts_clock() {
    let world = testkit::World::with_postgres().await;
    world.clock.set(at("2031-11-20T08:00:00Z"));
    let feature = meetings::feature(&world.ctx, meetings::MeetingsConfig::default());
    world.migrate(std::slice::from_ref(&feature)).await;

    let partitions = feature
        .jobs
        .iter()
        .find(|j| j.name() == meetings::PARTITIONS_JOB)
        .unwrap();
    partitions.run_now().await.unwrap();

    let month = |y, m| Month::new(y, m).unwrap();
    assert_eq!(
        jobs::audit_partitions(&world.postgres).await.unwrap(),
        [month(2025, 1), month(2031, 11), month(2031, 12)]
    );
}

/// The seed's Data Flow Example 2, step 2: an ended meeting's sessions aggregated into
/// its `metadata.statistics`, once; a meeting still going is left alone.
#[tokio::test]
async fn an_ended_meeting_gets_its_participants_statistics_once() {
    let env = migrated().await;
    let pg = &env.pg;
    let ended: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.meetings (display_name, meeting_code, status, actual_start_time, ended_at) \
         VALUES ('Done', 'DONE', 'ended', NOW() - interval '2 hours', NOW() - interval '1 hour') \
         RETURNING meeting_id",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    let user: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.users (email, display_name) VALUES ('u@example.org', 'U') \
         RETURNING user_id",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    // A user who stayed 30 minutes and left, a guest who stayed 60 and was lost, and
    // one row without left_at (counted to the meeting's end: 50 minutes).
    for (user_id, joined_min_ago, left_min_ago, reason) in [
        (Some(user), 120, Some(90), Some("voluntary")),
        (None, 120, Some(60), Some("connection_lost")),
        (None, 110, None, None),
    ] {
        sqlx::query(
            "INSERT INTO meet.meeting_participants \
               (meeting_id, participant_id, user_id, display_name, joined_at, left_at, leave_reason) \
             VALUES ($1, gen_random_uuid(), $2, 'p', NOW() - make_interval(mins => $3), \
               NOW() - make_interval(mins => $4), $5)",
        )
        .bind(ended)
        .bind(user_id)
        .bind(joined_min_ago)
        .bind(left_min_ago)
        .bind(reason)
        .execute(pg.pool())
        .await
        .unwrap();
    }
    let going = meeting(pg, "GOING", "active", None).await;

    assert_eq!(jobs::aggregate_ended_meetings(pg).await.unwrap(), 1);
    let stats: serde_json::Value = sqlx::query_scalar(
        "SELECT metadata -> 'statistics' FROM meet.meetings WHERE meeting_id = $1",
    )
    .bind(ended)
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(stats["sessions"], 3, "{stats}");
    assert_eq!(stats["signed_in_users"], 1, "{stats}");
    assert_eq!(stats["guest_sessions"], 2, "{stats}");
    assert_eq!(stats["participant_seconds"], (30 + 60 + 50) * 60, "{stats}");
    assert_eq!(stats["longest_stay_seconds"], 60 * 60, "{stats}");
    assert_eq!(
        stats["leave_reasons"],
        serde_json::json!({ "voluntary": 1, "connection_lost": 1, "unknown": 1 })
    );
    let untouched: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT metadata -> 'statistics' FROM meet.meetings WHERE meeting_id = $1",
    )
    .bind(going)
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(untouched, None, "a meeting still going has no statistics");
    // Done once: a second run finds nothing to do.
    assert_eq!(jobs::aggregate_ended_meetings(pg).await.unwrap(), 0);
}

/// A meeting nobody has been in for the grace period since its controller stopped (its
/// participants left with `connection_lost`, none joined again) is ended by the
/// presence job; one still in it, one within the grace, and one never joined are not.
#[tokio::test]
async fn a_meeting_nobody_joined_again_after_its_controller_stopped_ends_after_the_grace() {
    use meetings::domain::{DisplayName, LeaveReason, MeetingStatus};
    use meetings::repo::JoinRequest;

    let (world, repo) = common::world().await;
    let join = |m, name: &str| JoinRequest {
        meeting_id: m,
        user_id: None,
        display_name: DisplayName::parse(name).unwrap(),
        ip_address: None,
        user_agent: None,
        client_version: None,
    };
    let vacated = common::meeting(&repo, "Vacated").await;
    let occupied = common::meeting(&repo, "Occupied").await;
    let unjoined = common::meeting(&repo, "Never joined").await;
    let gone = repo.join(&join(vacated, "Ann")).await.unwrap();
    let stays = repo.join(&join(occupied, "Bo")).await.unwrap();
    let went = repo.join(&join(occupied, "Cy")).await.unwrap();
    // Moved away by a stopping controller: they leave, and nobody ends the meeting.
    assert_eq!(
        repo.leave(vacated, gone.participant_id, LeaveReason::ConnectionLost)
            .await
            .unwrap(),
        0
    );
    repo.leave(occupied, went.participant_id, LeaveReason::ConnectionLost)
        .await
        .unwrap();
    let status = |m| {
        let repo = repo.clone();
        async move { repo.meeting(m).await.unwrap().status }
    };

    // Within the grace: nothing ends.
    assert_eq!(jobs::end_vacated_meetings(&repo).await.unwrap(), 0);
    assert_eq!(status(vacated).await, MeetingStatus::Active);

    // The leaves, as long ago as the grace and a minute: only the meeting nobody is in
    // ends.
    sqlx::query(
        "UPDATE meet.meeting_participants \
         SET left_at = NOW() - make_interval(secs => $1) WHERE left_at IS NOT NULL",
    )
    .bind(jobs::VACATED_GRACE.as_secs_f64() + 60.0)
    .execute(world.postgres.pool())
    .await
    .unwrap();
    assert_eq!(jobs::end_vacated_meetings(&repo).await.unwrap(), 1);
    assert_eq!(status(vacated).await, MeetingStatus::Ended);
    assert_ne!(status(occupied).await, MeetingStatus::Ended);
    assert_ne!(status(unjoined).await, MeetingStatus::Ended);
    assert!(repo.heartbeat(stays.participant_id).await.unwrap());
    // Again: nothing more.
    assert_eq!(jobs::end_vacated_meetings(&repo).await.unwrap(), 0);
}
