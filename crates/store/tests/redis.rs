//! The Redis helpers against a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use store::harness::TestRedis;
use store::redis::AsyncCommands;
use store::{Guarded, Writes, updated_time};

#[tokio::test]
async fn apply_writes_every_command_in_one_step() {
    let server = TestRedis::start().await;
    let redis = server.connect().await;

    let mut writes = Writes::new();
    writes
        .set("a", "1")
        .sadd("members", "x")
        .hincrby("counts", "n", 2)
        .zadd("ledger", 5.0, "e");
    redis.apply(&writes).await.expect("apply");

    let mut conn = redis.conn();
    let a: String = conn.get("a").await.expect("get");
    let members: Vec<String> = conn.smembers("members").await.expect("smembers");
    let n: i64 = conn.hget("counts", "n").await.expect("hget");
    let ledger: Vec<(String, f64)> = conn
        .zrange_withscores("ledger", 0, -1)
        .await
        .expect("zrange");
    assert_eq!((a.as_str(), members, n), ("1", vec!["x".to_owned()], 2));
    assert_eq!(ledger, vec![("e".to_owned(), 5.0)]);
}

#[tokio::test]
async fn a_failing_command_is_reported() {
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let mut conn = redis.conn();
    let _: () = conn.set("s", "text").await.expect("set");
    let mut writes = Writes::new();
    writes.hincrby("s", "f", 1);
    assert!(
        redis.apply(&writes).await.is_err(),
        "HINCRBY on a string must fail"
    );
}

#[tokio::test]
async fn apply_if_writes_only_when_the_guard_is_unchanged() {
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let mut conn = redis.conn();

    let mut create = Writes::new();
    create.set("doc", "v1").sadd("index", "doc");
    assert!(redis.apply_if("doc", None, &create).await.expect("create"));
    // A second create loses: the key exists now.
    assert!(
        !redis
            .apply_if("doc", None, &create)
            .await
            .expect("second create")
    );

    let mut update = Writes::new();
    update.set("doc", "v2").set("other", "side");
    assert!(
        !redis
            .apply_if("doc", Some(b"stale"), &update)
            .await
            .expect("stale update")
    );
    let other: Option<String> = conn.get("other").await.expect("get");
    assert_eq!(other, None, "a lost compare-and-set writes nothing");
    assert!(
        redis
            .apply_if("doc", Some(b"v1"), &update)
            .await
            .expect("update")
    );
    let doc: String = conn.get("doc").await.expect("get");
    assert_eq!(doc, "v2");
}

#[tokio::test]
async fn a_failed_compare_and_set_hands_back_the_current_value() {
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let mut conn = redis.conn();

    let mut update = Writes::new();
    update.set("doc", "v2").sadd("index", "doc");
    assert_eq!(
        redis
            .apply_or_read("doc", Some(b"v1"), &update)
            .await
            .expect("absent"),
        Guarded::Changed(None),
        "the guard key does not exist"
    );
    let _: () = conn.set("doc", "v1-by-someone-else").await.expect("set");
    assert_eq!(
        redis
            .apply_or_read("doc", Some(b"v1"), &update)
            .await
            .expect("stale"),
        Guarded::Changed(Some(b"v1-by-someone-else".to_vec()))
    );
    let members: Vec<String> = conn.smembers("index").await.expect("smembers");
    assert!(
        members.is_empty(),
        "nothing written on a lost compare-and-set"
    );
    assert_eq!(
        redis
            .apply_or_read("doc", Some(b"v1-by-someone-else"), &update)
            .await
            .expect("retry with what it handed back"),
        Guarded::Applied
    );
    let doc: String = conn.get("doc").await.expect("get");
    assert_eq!(doc, "v2");
}

#[tokio::test]
async fn concurrent_watch_transactions_never_lose_an_update() {
    let server = TestRedis::start().await;
    let redis = server.connect().await;

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let redis = redis.clone();
            tokio::spawn(async move {
                redis
                    .watch(&["counter".to_owned()], |mut conn| async move {
                        let current: Option<i64> = conn.get("counter").await?;
                        let mut writes = Writes::new();
                        writes.set("counter", current.unwrap_or(0) + 1);
                        Ok((writes, ()))
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("transaction");
    }
    let mut conn = redis.conn();
    let counter: i64 = conn.get("counter").await.expect("get");
    assert_eq!(counter, 20);
}

#[tokio::test]
async fn a_watch_that_always_loses_its_race_gives_up_after_the_one_loop_s_attempts() {
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let bodies = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));

    let result = redis
        .watch(&["contended".to_owned()], |mut conn| {
            let (bodies, other) = (bodies.clone(), redis.conn());
            async move {
                bodies.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _: Option<i64> = conn.get("contended").await?;
                // Somebody else's write lands between WATCH and EXEC, every time.
                let mut other = other;
                let _: i64 = other.incr("contended", 1).await?;
                let mut writes = Writes::new();
                writes.set("mine", "never");
                Ok((writes, ()))
            }
        })
        .await;

    match result {
        Err(store::StoreError::Contention { keys, attempts }) => {
            assert_eq!(keys, vec!["contended".to_owned()]);
            assert_eq!(attempts, store::optimistic::MAX_ATTEMPTS);
        }
        other => panic!("expected contention, got {other:?}"),
    }
    // Each nil EXEC was one attempt of `store::optimistic`, no more, no fewer.
    assert_eq!(
        bodies.load(std::sync::atomic::Ordering::SeqCst),
        store::optimistic::MAX_ATTEMPTS
    );
    let mut conn = redis.conn();
    let mine: Option<String> = conn.get("mine").await.expect("get");
    assert_eq!(mine, None, "a lost race writes nothing");
    let contended: i64 = conn.get("contended").await.expect("get");
    assert_eq!(contended, i64::from(store::optimistic::MAX_ATTEMPTS));
    // The connection went back to the pool in a usable state: the next one succeeds.
    let value = redis
        .watch(&["contended".to_owned()], |mut conn| async move {
            let n: i64 = conn.get("contended").await?;
            let mut writes = Writes::new();
            writes.set("contended", n + 1);
            Ok((writes, n + 1))
        })
        .await
        .expect("uncontended watch");
    assert_eq!(value, contended + 1);
}

#[tokio::test]
async fn set_with_time_writes_the_key_and_its_timestamp() {
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let at = chrono::DateTime::from_timestamp_millis(1_790_000_000_000).expect("time");

    let mut writes = Writes::new();
    updated_time::set_with_time(&mut writes, "user_1", "{}", at);
    redis.apply(&writes).await.expect("apply");

    let mut conn = redis.conn();
    let stamp: String = conn.get("user_1:updated_time").await.expect("get");
    assert_eq!(updated_time::decode(&stamp), Some(at));
}

#[tokio::test]
async fn connect_to_a_closed_port_fails_fast_with_a_transient_error() {
    let port = store::harness::free_port();
    let err = store::Redis::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .expect_err("nothing listens there");
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn apply_when_writes_only_when_every_condition_holds() {
    use store::{Condition, Conditional};
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let mut conn = redis.conn();
    let _: () = conn.sadd("room", "a").await.expect("sadd");
    let _: () = conn.hset("doc", "v", "1").await.expect("hset");

    // Room for a second member: applied, with the replies of each command.
    let mut join = Writes::new();
    join.sadd("room", "b").hincrby("doc", "count", 1);
    let outcome = redis
        .apply_when(
            &[
                Condition::fewer_than("room", 2),
                Condition::hash_field("doc", "v", Some("1")),
            ],
            &join,
        )
        .await
        .expect("apply_when");
    assert_eq!(outcome.int(0), Some(1));
    assert_eq!(outcome.int(1), Some(1));

    // Full now: refused at the first condition, nothing written.
    let mut third = Writes::new();
    third.sadd("room", "c").hincrby("doc", "count", 1);
    let outcome = redis
        .apply_when(&[Condition::fewer_than("room", 2)], &third)
        .await
        .expect("apply_when");
    assert_eq!(outcome, Conditional::Refused(0));
    let members: Vec<String> = conn.smembers("room").await.expect("smembers");
    assert_eq!(members.len(), 2);

    // Every other kind, holding and failing.
    let cases: Vec<(Condition, bool)> = vec![
        (Condition::exists("doc"), true),
        (Condition::exists("nothing"), false),
        (Condition::absent("nothing"), true),
        (Condition::absent("doc"), false),
        (Condition::member("room", "a"), true),
        (Condition::member("room", "z"), false),
        (Condition::not_member("room", "z"), true),
        (Condition::not_member("room", "a"), false),
        (Condition::hash_field::<&str>("doc", "missing", None), true),
        (Condition::hash_field("doc", "v", Some("2")), false),
        (Condition::equals::<&str>("nothing", None), true),
        (Condition::equals("nothing", Some("x")), false),
        (Condition::sorted_member("ledger", "m"), false),
    ];
    for (condition, holds) in cases {
        let mut writes = Writes::new();
        writes.incr("probe");
        let outcome = redis
            .apply_when(std::slice::from_ref(&condition), &writes)
            .await
            .expect("apply_when");
        assert_eq!(outcome.applied(), holds, "{condition:?}");
    }
    let _: () = conn.zadd("ledger", "m", 1.0).await.expect("zadd");
    let mut writes = Writes::new();
    writes.command("ZREM").arg("ledger").arg("m");
    let outcome = redis
        .apply_when(&[Condition::sorted_member("ledger", "m")], &writes)
        .await
        .expect("apply_when");
    assert_eq!(outcome.int(0), Some(1));
    // With no writes at all, the conditions alone are answered.
    let outcome = redis
        .apply_when(&[Condition::exists("doc")], &Writes::new())
        .await
        .expect("apply_when");
    assert_eq!(outcome, Conditional::Applied(Vec::new()));
}

/// A command sent alone is one round trip, and so is a whole `Writes` batch or pipeline,
/// whatever it holds. (nextest runs each test in a process of its own, so the process-wide
/// count moves only with this test's work.)
#[tokio::test]
async fn round_trips_count_a_batch_or_pipeline_once_and_a_lone_command_once() {
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let mut conn = redis.conn();

    let before = store::redis_round_trips();
    let mut writes = Writes::new();
    writes.set("a", "1").set("b", "2").sadd("s", "x").incr("n");
    redis.apply(&writes).await.expect("apply");
    assert_eq!(
        store::redis_round_trips() - before,
        1,
        "one MULTI/EXEC batch"
    );

    let before = store::redis_round_trips();
    let (a, b): (String, String) = store::redis::pipe()
        .get("a")
        .get("b")
        .query_async(&mut conn)
        .await
        .expect("pipeline");
    assert_eq!((a.as_str(), b.as_str()), ("1", "2"));
    assert_eq!(store::redis_round_trips() - before, 1, "one pipeline");

    let before = store::redis_round_trips();
    let _: i64 = conn.scard("s").await.expect("scard");
    let _: i64 = conn.get("n").await.expect("get");
    assert_eq!(store::redis_round_trips() - before, 2, "two lone commands");
}

/// Waits (with a deadline) for a subscription's next message, or its end (`None`).
async fn next_within(subscription: &mut store::Subscription) -> Option<String> {
    tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next())
        .await
        .expect("a message or the end in time")
        .map(|payload| String::from_utf8(payload).unwrap())
}

#[tokio::test]
async fn a_subscription_gets_what_is_published_in_order_and_ends_when_its_server_goes() {
    let mut server = TestRedis::start().await;
    let redis = server.connect().await;
    let mut subscription = redis.subscribe("news").await.expect("subscribe");
    let mut conn = redis.conn();
    for message in ["first", "second"] {
        let receivers: i64 = store::redis::cmd("PUBLISH")
            .arg("news")
            .arg(message)
            .query_async(&mut conn)
            .await
            .expect("publish");
        assert_eq!(receivers, 1);
    }
    let _: i64 = store::redis::cmd("PUBLISH")
        .arg("other")
        .arg("not for us")
        .query_async(&mut conn)
        .await
        .expect("publish");

    assert_eq!(
        next_within(&mut subscription).await.as_deref(),
        Some("first")
    );
    assert_eq!(
        next_within(&mut subscription).await.as_deref(),
        Some("second")
    );
    server.kill();
    assert_eq!(next_within(&mut subscription).await, None);
}
