//! The sync service against real Redis and real object stores: a temp-dir folder, S3
//! (moto's server) and Azure Blob Storage (Azurite).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::sync::Arc;
use std::time::Duration;

use base::Clock;
use common::me;
use redis::AsyncCommands;
use rolls::domain::{ChannelId, UserId};
use rolls::jobs::Manifest;
use rolls::ops::{CharacterOp, InitOp, RollOp};
use rolls::{RollsConfig, StoreOptions, SyncService, SyncTarget, jobs, sync_once};
use store::harness::{AZURITE_ACCOUNT, AZURITE_KEY, TestAzurite, TestS3};
use testkit::World;

/// The sync of `world`'s Redis with `config`'s store, dated by the world's clock.
fn service(world: &World, config: &RollsConfig) -> SyncService {
    SyncService::open(&world.redis, config, Arc::clone(&world.ctx.clock)).expect("store")
}

/// A roll, a character and an initiative entry for user 42 in channel 77.
async fn seed(world: &World) {
    let c = common::controller(world);
    let user = UserId::new(42);
    c.run(
        me(user),
        &RollOp {
            expression: "1d6".into(),
        },
    )
    .await
    .expect("roll");
    c.run(
        me(user),
        &CharacterOp::Add {
            user,
            name: "Bo".into(),
            initiative_modifier: 1,
            initiative: None,
        },
    )
    .await
    .expect("add");
    c.run(
        me(user),
        &InitOp::Join {
            channel: ChannelId::new(77),
            user,
            character: None,
            roll: Some("5".into()),
            display_name: "x".into(),
            once: false,
        },
    )
    .await
    .expect("join");
}

async fn get(redis: &store::Redis, key: &str) -> Option<String> {
    let mut conn = redis.conn();
    conn.get(key).await.expect("get")
}

/// Seeds one Redis, syncs it to `config`'s store, restores into an empty Redis and
/// compares every key; a second restore keeps everything.
async fn round_trip(config: &RollsConfig) {
    let a = World::new().await;
    let ra = a.redis.clone();
    seed(&a).await;
    let report = sync_once(&ra, config).await.expect("sync");
    assert_eq!(report.written, 4, "user_set, user_42, init_77, counters");

    let b = World::new().await;
    let rb = b.redis.clone();
    let restorer = service(&b, config);
    let report = restorer.restore().await.expect("restore");
    assert_eq!(report.restored, 4);
    for key in [
        "user_42",
        "user_42:updated_time",
        "init_77",
        "init_77:updated_time",
        "c_roll",
        "c_init",
        "c_character",
        "c_:updated_time",
        "user_set:updated_time",
    ] {
        assert_eq!(get(&rb, key).await, get(&ra, key).await, "{key}");
    }
    let mut conn = rb.conn();
    let members: Vec<String> = conn.smembers("user_set").await.expect("members");
    assert_eq!(members, vec!["42".to_owned()]);
    // A second restore finds Redis as new as the snapshot and keeps it.
    let report = restorer.restore().await.expect("restore");
    assert_eq!((report.restored, report.kept), (0, 4));
}

#[tokio::test]
async fn a_snapshot_restores_into_an_empty_redis() {
    let dir = tempfile::tempdir().expect("dir");
    let config = RollsConfig::new(dir.path());
    round_trip(&config).await;
    assert!(dir.path().join("rolls-sync/rolls/user_set.json").exists());
    assert!(dir.path().join("rolls-sync/rolls/c_.json").exists());
}

fn s3_config(s3: &TestS3, url: &str) -> RollsConfig {
    let mut config = RollsConfig::new("/nonexistent");
    config.sync_target = Some(SyncTarget::parse(url).expect("url"));
    config.store_options = StoreOptions::default()
        .with("aws_endpoint", s3.endpoint())
        .with("aws_allow_http", "true")
        .with("aws_region", "us-east-1")
        .with("aws_access_key_id", "tavern")
        .with("aws_secret_access_key", "tavern-secret");
    config
}

#[tokio::test]
async fn snapshots_round_trip_through_s3_under_a_prefix() {
    let s3 = TestS3::start();
    s3.create_bucket("tavern-backups");
    let config = s3_config(&s3, "s3://tavern-backups/prod/tavern");
    round_trip(&config).await;
    // Read back with a plain HTTP GET, not through the client under test.
    let object = s3
        .get("tavern-backups", "prod/tavern/rolls/user_set.json")
        .expect("the snapshot object is under the URL's prefix");
    let snap: jobs::Snapshot = serde_json::from_str(&object).expect("snapshot JSON");
    assert_eq!(snap.key, "user_set");
    assert_eq!(snap.value, jobs::Value::Set(vec!["42".into()]));
    assert!(s3.get("tavern-backups", "rolls/user_set.json").is_none());
}

#[tokio::test]
async fn a_missing_s3_bucket_is_an_error_that_names_it() {
    let s3 = TestS3::start();
    let config = s3_config(&s3, "s3://no-such-bucket");
    let world = World::new().await;
    let redis = world.redis.clone();
    seed(&world).await;
    let err = sync_once(&redis, &config).await.expect_err("no bucket");
    assert!(err.to_string().contains("no-such-bucket"), "{err}");
}

fn azure_config(azurite: &TestAzurite, url: &str, key: &str) -> RollsConfig {
    let mut config = RollsConfig::new("/nonexistent");
    config.sync_target = Some(SyncTarget::parse(url).expect("url"));
    config.store_options = StoreOptions::default()
        .with("azure_storage_account_name", AZURITE_ACCOUNT)
        .with("azure_storage_account_key", key)
        .with("azure_storage_endpoint", azurite.endpoint())
        .with("azure_allow_http", "true");
    config
}

#[tokio::test]
async fn snapshots_round_trip_through_azure_blob_storage() {
    let azurite = TestAzurite::start();
    azurite.create_container("tavern");
    let config = azure_config(&azurite, "az://tavern/backups", AZURITE_KEY);
    round_trip(&config).await;
    // The objects sit under the prefix: list them from the container's root.
    let mut root = config.clone();
    root.sync_target = Some(SyncTarget::parse("az://tavern").expect("url"));
    let objects = jobs::open_store(&root).expect("store");
    let listed = objects
        .list_with_delimiter(Some(&"backups/rolls".into()))
        .await
        .expect("list");
    let mut names: Vec<String> = listed
        .objects
        .iter()
        .map(|o| o.location.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "backups/rolls/c_.json",
            "backups/rolls/init_77.json",
            "backups/rolls/user_42.json",
            "backups/rolls/user_set.json"
        ]
    );
}

#[tokio::test]
async fn a_wrong_azure_key_is_refused_and_redis_is_untouched() {
    let azurite = TestAzurite::start();
    azurite.create_container("tavern");
    // A well-formed key that is not the account's.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let config = azure_config(&azurite, "az://tavern", wrong);
    let world = World::new().await;
    let redis = world.redis.clone();
    let err = sync_once(&redis, &config).await.expect_err("bad key");
    assert!(!err.to_string().contains(wrong), "the key leaked: {err}");
    assert!(
        err.to_string().contains("403") || err.to_string().contains("uthoriz"),
        "{err}"
    );
    let mut conn = redis.conn();
    let keys: Vec<String> = conn.keys("*").await.expect("keys");
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn newer_data_in_redis_wins_and_older_is_replaced() {
    let dir = tempfile::tempdir().expect("dir");
    let config = RollsConfig::new(dir.path());
    let world = World::new().await;
    let redis = world.redis.clone();
    seed(&world).await;
    let sync = service(&world, &config);
    sync.snapshot().await.expect("snapshot");
    let snap_user = get(&redis, "user_42").await.expect("doc");
    let snap_ts: i64 = get(&redis, "user_42:updated_time")
        .await
        .expect("ts")
        .parse()
        .expect("int");

    let mut conn = redis.conn();
    // user_42 changed after the snapshot (newer): must be kept.
    let _: () = conn
        .set("user_42", r#"{"characters":{}}"#)
        .await
        .expect("set");
    let _: () = conn
        .set("user_42:updated_time", (snap_ts + 1000).to_string())
        .await
        .expect("set");
    // init_77 is older than the snapshot (e.g. restored from an old backup): replaced.
    let _: () = conn.set("init_77", r#"{"entries":[]}"#).await.expect("set");
    let _: () = conn.set("init_77:updated_time", "1000").await.expect("set");
    let snap_init = {
        let bytes = std::fs::read(dir.path().join("rolls-sync/rolls/init_77.json")).expect("read");
        let snap: jobs::Snapshot = serde_json::from_slice(&bytes).expect("json");
        snap
    };
    // The counters lost their timestamp: an older state, replaced too.
    let _: () = conn.del("c_:updated_time").await.expect("del");
    let _: () = conn.set("c_roll", 0).await.expect("set");

    let report = sync.restore().await.expect("restore");
    // user_set (nothing missing) and user_42 (newer) kept; init_77 and c_ restored.
    assert_eq!(report.restored, 2, "{report:?}");
    assert_eq!(report.kept, 2, "{report:?}");
    assert_eq!(
        get(&redis, "user_42").await.as_deref(),
        Some(r#"{"characters":{}}"#)
    );
    assert_ne!(get(&redis, "user_42").await, Some(snap_user));
    let jobs::Value::String(init) = snap_init.value else {
        panic!("string")
    };
    assert_eq!(get(&redis, "init_77").await, Some(init));
    assert_eq!(
        get(&redis, "init_77:updated_time").await,
        Some(snap_init.updated_time.to_string())
    );
    assert_eq!(get(&redis, "c_roll").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn the_feature_restores_at_startup_and_snapshots_in_its_job() {
    let dir = tempfile::tempdir().expect("dir");
    let a = World::new().await;
    let ra = a.redis.clone();
    seed(&a).await;
    let feature = rolls::feature(&a.ctx, RollsConfig::new(dir.path()));
    assert_eq!(feature.name, "rolls");
    let names: Vec<&str> = feature
        .commands
        .iter()
        .map(|(c, _)| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "roll",
            "odds",
            "init",
            "character",
            "stats",
            "help",
            "roll-check",
            "alias",
            "saved",
            "gm"
        ]
    );
    assert_eq!(feature.components.as_ref().map(|(p, _)| *p), Some("rolls"));
    let job = &feature.jobs[0];
    assert_eq!(job.name(), "rolls-sync");
    assert_eq!(job.period(), std::time::Duration::from_secs(3600));
    assert!(job.runs_on_shutdown());
    job.run_now().await.expect("snapshot job");

    let b = World::new().await;
    let rb = b.redis.clone();
    let fresh = rolls::feature(&b.ctx, RollsConfig::new(dir.path()));
    let startup = fresh.startup.first().expect("startup");
    assert_eq!(startup.name(), "rolls-restore");
    startup.run().await.expect("restore");
    assert_eq!(get(&rb, "user_42").await, get(&ra, "user_42").await);
    assert_eq!(get(&rb, "c_roll").await.as_deref(), Some("1"));
}

/// `users` users in a fresh Redis, already in a first snapshot to a local folder: the
/// folder, the world, the sync and the snapshot's report.
async fn snapshotted(users: u64) -> (tempfile::TempDir, World, SyncService, jobs::SyncReport) {
    let dir = tempfile::tempdir().expect("dir");
    let config = RollsConfig::new(dir.path());
    let world = World::new().await;
    common::seed_users(&world.redis, users, 1_750_000_000_000).await;
    let sync = service(&world, &config);
    let first = sync.snapshot().await.expect("snapshot");
    (dir, world, sync, first)
}

/// An hour later, a snapshot with what it logged: its report and the log lines.
async fn snapshot_an_hour_later(
    world: &World,
    sync: &SyncService,
) -> (jobs::SyncReport, common::Logs) {
    world.clock.advance(Duration::from_secs(3600));
    let logs = common::Logs::default();
    let report = {
        let _guard = logs.capture();
        sync.snapshot().await.expect("snapshot")
    };
    (report, logs)
}

async fn members(redis: &store::Redis) -> usize {
    let mut conn = redis.conn();
    conn.scard("user_set").await.expect("scard")
}

fn read_object(dir: &std::path::Path, path: &str) -> jobs::Snapshot {
    let bytes = std::fs::read(dir.join("rolls-sync").join(path)).expect(path);
    serde_json::from_slice(&bytes).expect("snapshot JSON")
}

fn set_size(snap: &jobs::Snapshot) -> usize {
    match &snap.value {
        jobs::Value::Set(members) => members.len(),
        other => panic!("not a set: {other:?}"),
    }
}

/// A set of 10,000 members is more than one Redis command can take from a Lua
/// script; the restore adds it in chunks and joins it in one step.
#[tokio::test]
async fn a_user_set_of_ten_thousand_restores_into_an_empty_redis() {
    let dir = tempfile::tempdir().expect("dir");
    let config = RollsConfig::new(dir.path());
    let a = World::new().await;
    common::seed_users(&a.redis, 10_000, 1_750_000_000_000).await;
    service(&a, &config).snapshot().await.expect("snapshot");

    let b = World::new().await;
    let report = service(&b, &config).restore().await.expect("restore");
    assert_eq!(
        report.restored, 10_002,
        "user_set, 10,000 documents, counters"
    );
    assert_eq!(members(&b.redis).await, 10_000);
    assert_eq!(
        get(&b.redis, "user_set:updated_time").await.as_deref(),
        Some("1750000000000")
    );
    assert_eq!(get(&b.redis, "c_roll").await.as_deref(), Some("10000"));
    assert!(get(&b.redis, "user_1009999").await.is_some());
    let mut conn = b.redis.conn();
    let scratch: Vec<String> = conn.keys("user_set:restoring:*").await.expect("keys");
    assert!(scratch.is_empty(), "{scratch:?}");
}

/// The restore joins what it adds with what Redis gained meanwhile: nothing in Redis
/// is lost, and the newer timestamp stays.
#[tokio::test]
async fn a_restore_adds_to_user_set_and_counters_and_keeps_what_redis_has() {
    let (_dir, world, sync, _) = snapshotted(3).await;
    let mut conn = world.redis.conn();
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("flush");
    // After the loss, one new user rolled twice.
    let _: () = conn.sadd("user_set", "77").await.expect("sadd");
    let _: () = conn
        .set("user_set:updated_time", "1750000009999")
        .await
        .expect("set");
    let _: () = conn.set("c_roll", 2).await.expect("set");
    let _: () = conn
        .set("c_:updated_time", "1750000009999")
        .await
        .expect("set");

    let report = sync.restore().await.expect("restore");
    assert_eq!(report.restored, 5, "{report:?}");
    assert_eq!(members(&world.redis).await, 4);
    assert_eq!(
        get(&world.redis, "user_set:updated_time").await.as_deref(),
        Some("1750000009999")
    );
    assert_eq!(
        get(&world.redis, "c_roll").await.as_deref(),
        Some("5"),
        "3 + 2"
    );
}

/// The second snapshot writes the one set that changed and lists the rest again.
#[tokio::test]
async fn a_snapshot_writes_only_what_changed_since_the_last_one() {
    let (dir, world, sync, first) = snapshotted(50).await;
    assert_eq!(first.written, 52, "{first:?}");

    let mut conn = world.redis.conn();
    let _: () = conn
        .set("user_1000007", r#"{"characters":{}}"#)
        .await
        .expect("set");
    let _: () = conn
        .set("user_1000007:updated_time", "1750000005000")
        .await
        .expect("set");
    world.clock.advance(Duration::from_secs(3600));
    let second = sync.snapshot().await.expect("snapshot");
    assert_eq!((second.written, second.unchanged), (1, 51), "{second:?}");
    let versions = dir.path().join("rolls-sync/rolls/versions/user_1000007");
    let mut names: Vec<String> = std::fs::read_dir(&versions)
        .expect("versions")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["1750000000000.json", "1750000005000.json"]);
    let untouched = dir.path().join("rolls-sync/rolls/versions/user_1000008");
    assert_eq!(std::fs::read_dir(untouched).expect("dir").count(), 1);
    // The second snapshot still lists every set.
    let paths = sync.snapshots().await.expect("list");
    let last = sync
        .manifest(paths.last().expect("two"))
        .await
        .expect("manifest");
    assert_eq!(last.sets.len(), 52);
}

/// `user_set` only grows: a snapshot of a much smaller one is written beside the
/// previous one, which stays the current one, and the operator is warned.
#[tokio::test]
async fn a_shrinking_set_is_written_beside_the_previous_snapshot_with_a_warning() {
    let (dir, world, sync, _) = snapshotted(10).await;

    // Redis lost user_set and counters; two users came back since.
    let mut conn = world.redis.conn();
    let _: () = conn.del(&["user_set", "c_roll"]).await.expect("del");
    let _: () = conn.sadd("user_set", &["1", "2"]).await.expect("sadd");
    let _: () = conn
        .set("user_set:updated_time", "1750000009000")
        .await
        .expect("set");
    let _: () = conn.set("c_roll", 1).await.expect("set");
    let _: () = conn
        .set("c_:updated_time", "1750000009000")
        .await
        .expect("set");
    let (report, logs) = snapshot_an_hour_later(&world, &sync).await;
    assert_eq!(report.held_back, 2, "{report:?}");
    assert_eq!(
        set_size(&read_object(dir.path(), "rolls/user_set.json")),
        10
    );
    let beside = read_object(dir.path(), "rolls/versions/user_set/1750000009000.json");
    assert_eq!(set_size(&beside), 2);
    let warnings = logs.warnings("would shrink by more than half");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.contains("key=user_set")),
        "{warnings:?}"
    );

    let paths = sync.snapshots().await.expect("list");
    let last: Manifest = sync
        .manifest(paths.last().expect("two"))
        .await
        .expect("manifest");
    assert_eq!(last.sets["user_set"].size, 10);
    assert_eq!(last.held_back["user_set"].size, 2);
    // A restore from it gives the ten back, and the two new ones stay.
    sync.restore().await.expect("restore");
    assert_eq!(members(&world.redis).await, 12);
}

/// A key set the last snapshot has and Redis no longer has (`user_set` deleted) is
/// carried over: the new snapshot keeps its previous version, the mirror is left as
/// it was, and the operator is warned.
#[tokio::test]
async fn a_key_set_gone_from_redis_keeps_its_previous_version_with_a_warning() {
    let (dir, world, sync, _) = snapshotted(10).await;
    let mirror = dir.path().join("rolls-sync/rolls/user_set.json");
    let mirrored = std::fs::read(&mirror).expect("the mirror of user_set");
    let paths = sync.snapshots().await.expect("list");
    let first: Manifest = sync
        .manifest(paths.last().expect("one"))
        .await
        .expect("manifest");
    let before = first.sets["user_set"];
    assert_eq!(before.size, 10);

    let mut conn = world.redis.conn();
    let _: () = conn
        .del(&["user_set", "user_set:updated_time"])
        .await
        .expect("del");
    let (report, logs) = snapshot_an_hour_later(&world, &sync).await;
    assert_eq!(report.carried, 1, "{report:?}");
    assert_eq!((report.written, report.held_back), (0, 0), "{report:?}");
    let warnings = logs.warnings("missing from Redis");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("first=user_set"), "{warnings:?}");
    assert_eq!(
        std::fs::read(&mirror).expect("the mirror of user_set"),
        mirrored,
        "the mirror is unchanged"
    );

    let paths = sync.snapshots().await.expect("list");
    assert_eq!(paths.len(), 2, "{paths:?}");
    let last: Manifest = sync
        .manifest(paths.last().expect("two"))
        .await
        .expect("manifest");
    assert_eq!(last.sets["user_set"], before);
    assert!(last.held_back.is_empty(), "{last:?}");
    // The version it lists is still there, and a restore brings the ten back.
    assert_eq!(
        set_size(&read_object(
            dir.path(),
            &format!("rolls/versions/user_set/{}.json", before.updated_time)
        )),
        10
    );
    sync.restore().await.expect("restore");
    assert_eq!(members(&world.redis).await, 10);
}

/// Every snapshot is a dated manifest; past the retention count the oldest go, with
/// the versions only they listed.
#[tokio::test]
async fn snapshots_are_dated_versions_and_only_the_last_ones_are_kept() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = RollsConfig::new(dir.path());
    config.sync_keep = 3;
    let world = World::new().await;
    common::seed_users(&world.redis, 2, 1_750_000_000_000).await;
    let sync = service(&world, &config);
    let mut conn = world.redis.conn();
    let mut deleted = 0;
    for hour in 0..5i64 {
        // user_1000000 changes every hour.
        let at = 1_750_000_000_000 + (hour + 1) * 3_600_000;
        let doc = format!(r#"{{"characters":{{"H{hour}":{{"initiative_modifier":0}}}}}}"#);
        let _: () = conn.set("user_1000000", doc).await.expect("set");
        let _: () = conn
            .set("user_1000000:updated_time", at.to_string())
            .await
            .expect("set");
        deleted += sync.snapshot().await.expect("snapshot").deleted;
        world.clock.advance(Duration::from_secs(3600));
    }
    assert_eq!(deleted, 2);
    let names: Vec<String> = sync
        .snapshots()
        .await
        .expect("list")
        .iter()
        .map(|p| p.filename().expect("name").to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "2025-06-15T18-53-20.000Z.json",
            "2025-06-15T19-53-20.000Z.json",
            "2025-06-15T20-53-20.000Z.json"
        ]
    );
    let versions = |key: &str| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir.path().join("rolls-sync/rolls/versions").join(key))
                .expect("versions")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
        v.sort();
        v
    };
    // The versions of hours 1 and 2 went with their snapshots; 3 to 5 stay.
    assert_eq!(
        versions("user_1000000"),
        [
            "1750010800000.json",
            "1750014400000.json",
            "1750018000000.json"
        ]
    );
    // Unchanged sets keep their one version.
    assert_eq!(versions("user_1000001"), ["1750000000000.json"]);
    assert_eq!(versions("user_set"), ["1750000000000.json"]);
}

/// The hourly job with 10,000 users and Redis flushed between two runs: the second
/// run finds Redis holding less than the last snapshot, restores it first and then
/// snapshots the whole, so neither Redis nor the backup loses anything.
#[tokio::test]
async fn the_hourly_job_restores_first_when_redis_lost_its_data() {
    let dir = tempfile::tempdir().expect("dir");
    let config = RollsConfig::new(dir.path());
    let world = World::new().await;
    let at = world.clock.now().timestamp_millis() - 60_000;
    common::seed_users(&world.redis, 10_000, at).await;
    let feature = rolls::feature(&world.ctx, config.clone());
    let job = &feature.jobs[0];
    job.run_now().await.expect("first snapshot");

    let mut conn = world.redis.conn();
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("flush");
    world.clock.advance(Duration::from_secs(1800));
    // Life goes on after the loss: a new player rolls.
    common::controller(&world)
        .run(
            me(UserId::new(5)),
            &RollOp {
                expression: "1d20".into(),
            },
        )
        .await
        .expect("roll");
    world.clock.advance(Duration::from_secs(1800));

    let logs = common::Logs::default();
    {
        let _guard = logs.capture();
        job.run_now().await.expect("second snapshot");
    }
    assert_eq!(
        logs.warnings("Redis holds less than the last rolls snapshot")
            .len(),
        1
    );
    assert_eq!(members(&world.redis).await, 10_001);
    assert!(get(&world.redis, "user_1009999").await.is_some());
    assert!(get(&world.redis, "user_1000000").await.is_some());
    assert_eq!(get(&world.redis, "c_roll").await.as_deref(), Some("10001"));
    // The backup was not overwritten by the emptied Redis: it has everything.
    assert_eq!(
        set_size(&read_object(dir.path(), "rolls/user_set.json")),
        10_001
    );
    let sync = service(&world, &config);
    let paths = sync.snapshots().await.expect("list");
    assert_eq!(paths.len(), 2);
    let last = sync.manifest(&paths[1]).await.expect("manifest");
    assert_eq!(last.sets.len(), 10_002);
    assert_eq!(last.sets["user_set"].size, 10_001);
    assert!(last.held_back.is_empty());
}

/// The same against S3 (moto), with fewer users.
#[tokio::test]
async fn the_hourly_job_restores_first_through_s3() {
    let s3 = TestS3::start();
    s3.create_bucket("tavern-backups");
    let config = s3_config(&s3, "s3://tavern-backups/prod");
    let world = World::new().await;
    let at = world.clock.now().timestamp_millis() - 60_000;
    common::seed_users(&world.redis, 200, at).await;
    let sync = service(&world, &config);
    sync.hourly().await.expect("first snapshot");
    let mut conn = world.redis.conn();
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("flush");
    world.clock.advance(Duration::from_secs(3600));
    let report = sync.hourly().await.expect("second snapshot");
    assert!(report.restored_first, "{report:?}");
    assert_eq!(report.restored, 202, "{report:?}");
    assert_eq!(members(&world.redis).await, 200);
    let object = s3
        .get("tavern-backups", "prod/rolls/user_set.json")
        .expect("the mirror");
    let snap: jobs::Snapshot = serde_json::from_str(&object).expect("JSON");
    assert_eq!(set_size(&snap), 200);
}

/// The objects under `rolls-sync/{folder}` of a local store, by path inside the store.
fn objects_in(dir: &std::path::Path, folder: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir.join("rolls-sync").join(folder))
        .expect(folder)
        .map(|e| {
            format!(
                "{folder}/{}",
                e.expect("entry").file_name().to_string_lossy()
            )
        })
        .collect();
    found.sort();
    found
}

/// One undecodable key set in the store is skipped with a warning naming its object;
/// the feature's start-up restore succeeds with everything else.
#[tokio::test]
async fn an_undecodable_key_set_is_skipped_and_the_rest_restored_at_startup() {
    let dir = tempfile::tempdir().expect("dir");
    let config = RollsConfig::new(dir.path());
    let a = World::new().await;
    let ra = a.redis.clone();
    seed(&a).await;
    sync_once(&ra, &config).await.expect("sync");
    let [broken] = objects_in(dir.path(), "rolls/versions/user_42")
        .try_into()
        .expect("one version of user_42");
    std::fs::write(dir.path().join("rolls-sync").join(&broken), b"{not json").expect("write");

    let b = World::new().await;
    let rb = b.redis.clone();
    let logs = common::Logs::default();
    let report = {
        let _guard = logs.capture();
        service(&b, &config).restore().await.expect("restore")
    };
    assert_eq!(
        report.restored, 3,
        "user_set, init_77, counters: {report:?}"
    );
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.skipped[0].starts_with(&broken), "{report:?}");
    let warnings = logs.warnings("cannot be restored");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(&broken), "{warnings:?}");
    assert_eq!(get(&rb, "user_42").await, None);
    assert_eq!(get(&rb, "init_77").await, get(&ra, "init_77").await);
    assert_eq!(get(&rb, "c_roll").await.as_deref(), Some("1"));

    // The start-up work of a fresh Tavern on that store finishes (it used to fail
    // every time, and Tavern stayed not ready).
    let c = World::new().await;
    let fresh = rolls::feature(&c.ctx, RollsConfig::new(dir.path()));
    let startup = fresh.startup.first().expect("startup");
    startup.run().await.expect("the restore finishes");
    assert_eq!(get(&c.redis, "init_77").await, get(&ra, "init_77").await);
}

/// A newest manifest that does not decode gives way to the one before it.
#[tokio::test]
async fn an_undecodable_newest_manifest_restores_from_the_one_before() {
    let (dir, world, sync, _) = snapshotted(3).await;
    world.clock.advance(Duration::from_secs(3600));
    sync.snapshot().await.expect("second snapshot");
    let manifests = objects_in(dir.path(), "rolls/snapshots");
    assert_eq!(manifests.len(), 2);
    std::fs::write(dir.path().join("rolls-sync").join(&manifests[1]), b"").expect("write");

    let b = World::new().await;
    let logs = common::Logs::default();
    let report = {
        let _guard = logs.capture();
        service(&b, &RollsConfig::new(dir.path()))
            .restore()
            .await
            .expect("restore")
    };
    assert!(report.restored >= 2, "{report:?}");
    assert_eq!(members(&b.redis).await, 3);
    let warnings = logs.warnings("cannot be restored");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(&manifests[1]), "{warnings:?}");
}

/// A newest manifest that does not decode no longer stops the snapshots: the hourly
/// job lists it as skipped and writes a newer manifest over the one before it, and
/// retention later deletes the broken one instead of failing on it.
#[tokio::test]
async fn an_undecodable_newest_manifest_does_not_stop_the_hourly_snapshots() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = RollsConfig::new(dir.path());
    config.sync_keep = 2;
    let world = World::new().await;
    common::seed_users(&world.redis, 3, 1_750_000_000_000).await;
    let sync = service(&world, &config);
    sync.snapshot().await.expect("first snapshot");
    world.clock.advance(Duration::from_secs(3600));
    sync.snapshot().await.expect("second snapshot");
    let manifests = objects_in(dir.path(), "rolls/snapshots");
    assert_eq!(manifests.len(), 2);
    std::fs::write(dir.path().join("rolls-sync").join(&manifests[1]), b"").expect("write");

    world.clock.advance(Duration::from_secs(3600));
    let report = sync.hourly().await.expect("the hourly job snapshots");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.skipped[0].starts_with(&manifests[1]), "{report:?}");
    let after = objects_in(dir.path(), "rolls/snapshots");
    let newest = after.last().expect("a manifest");
    assert!(
        newest > &manifests[1],
        "a newer manifest is written: {after:?}"
    );
    let written = sync
        .manifest(&object_store::path::Path::from(newest.as_str()))
        .await
        .expect("the new manifest reads");
    assert!(!written.sets.is_empty(), "{written:?}");

    // The plain snapshot too, and retention drops the broken manifest.
    world.clock.advance(Duration::from_secs(3600));
    sync.snapshot().await.expect("the snapshot runs");
    world.clock.advance(Duration::from_secs(3600));
    sync.hourly().await.expect("the hourly job runs");
    let kept = objects_in(dir.path(), "rolls/snapshots");
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&manifests[1]), "{kept:?}");
}
