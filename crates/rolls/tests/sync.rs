//! The sync service against real Redis and real object stores: a temp-dir folder, S3
//! (moto's server) and Azure Blob Storage (Azurite).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use redis::AsyncCommands;
use rolls::domain::{ChannelId, UserId};
use rolls::ops::{CharacterOp, Controller, InitOp, RollOp};
use rolls::repo::Repo;
use rolls::{RollsConfig, StoreOptions, SyncTarget, jobs, sync_once};
use store::harness::{AZURITE_ACCOUNT, AZURITE_KEY, TestAzurite, TestS3};
use testkit::World;

/// A roll, a character and an initiative entry for user 42 in channel 77.
async fn seed(world: &World) {
    let c = Controller::new(Repo::new(world.redis.clone()), world.ctx.clock.clone());
    let user = UserId::new(42);
    c.run(
        user,
        &RollOp {
            expression: "1d6".into(),
        },
    )
    .await
    .expect("roll");
    c.run(
        user,
        &CharacterOp::Add {
            user,
            name: "Bo".into(),
            initiative_modifier: 1,
        },
    )
    .await
    .expect("add");
    c.run(
        user,
        &InitOp::Join {
            channel: ChannelId::new(77),
            user,
            character: None,
            roll: Some("5".into()),
            display_name: "x".into(),
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
    let objects = jobs::open_store(config).expect("store");
    let report = jobs::restore(&rb, objects.as_ref()).await.expect("restore");
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
    let report = jobs::restore(&rb, objects.as_ref()).await.expect("restore");
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
    let objects = jobs::open_store(&config).expect("store");
    jobs::snapshot(&redis, objects.as_ref())
        .await
        .expect("snapshot");
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
    // The counters lost their timestamp: replaced too.
    let _: () = conn.del("c_:updated_time").await.expect("del");
    let _: () = conn.set("c_roll", 99).await.expect("set");

    let report = jobs::restore(&redis, objects.as_ref())
        .await
        .expect("restore");
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
        ["roll", "odds", "init", "character", "stats", "help"]
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
