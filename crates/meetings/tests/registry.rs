//! The registry end to end: controllers and media handlers register and heartbeat into
//! their rows and the capacity hashes, and a new meeting goes only to an alive, healthy
//! controller of its region with room, by weighted choice. Time is the test world's
//! manual clock; an expired capacity hash is made by `PEXPIRE`, never by waiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{handler_registration, hash_of, meeting, world};
use meetings::domain::{
    ControllerId, DisplayName, HandlerId, HealthStatus, Liveness, MeetingId, Region,
};
use meetings::repo::{ControllerHeartbeat, ControllerRegistration, HandlerHeartbeat, JoinRequest};
use meetings::{MeetingsError, Repo};
use rand::SeedableRng;
use rand::rngs::StdRng;
use redis::AsyncCommands;
use store::StorageError;
use testkit::{World, eventually};

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

fn id(name: &str) -> ControllerId {
    ControllerId::parse(name).unwrap()
}

async fn register(repo: &Repo, name: &str, in_region: &str, max_meetings: i32) {
    repo.register_controller(&ControllerRegistration {
        controller_id: id(name),
        region: region(in_region),
        endpoint: format!("https://{name}.example.org:4433"),
        max_meetings,
        max_participants: 10_000,
        version: Some("1.0.0".into()),
        certificate_hash: None,
    })
    .await
    .unwrap();
}

async fn beat(repo: &Repo, name: &str, current_meetings: i32, health: HealthStatus) {
    repo.heartbeat_controller(&ControllerHeartbeat {
        controller_id: id(name),
        current_meetings,
        current_participants: 0,
        health,
    })
    .await
    .unwrap();
}

/// Joins a participant without an account to `m`.
async fn join_anonymous(repo: &Repo, m: MeetingId) {
    repo.join(&JoinRequest {
        meeting_id: m,
        user_id: None,
        display_name: DisplayName::parse("A").unwrap(),
        ip_address: None,
        user_agent: None,
        client_version: None,
    })
    .await
    .unwrap();
}

/// Assigns `n` new meetings in `region`; how many went to each controller (`None`
/// counted as "none").
async fn assign_many(
    repo: &Repo,
    in_region: &str,
    n: usize,
    rng: &mut StdRng,
) -> HashMap<String, usize> {
    let live = Liveness::default();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let m = meeting(repo, "One-shot").await;
        let chosen = repo
            .assign_controller(m, &region(in_region), &live, rng)
            .await
            .unwrap();
        let name = chosen.map_or_else(|| "none".to_owned(), |c| c.to_string());
        *counts.entry(name).or_default() += 1;
    }
    counts
}

async fn capacity(world: &World, name: &str) -> HashMap<String, String> {
    hash_of(&world.redis, &format!("controller:{name}:capacity")).await
}

#[tokio::test]
async fn a_controller_whose_heartbeats_stop_gets_no_new_meetings_until_it_reports_again() {
    let (world, repo) = world().await;
    register(&repo, "mc-quiet", "eu-west-1", 1000).await;
    register(&repo, "mc-steady", "eu-west-1", 1000).await;
    let mut rng = StdRng::seed_from_u64(1);
    let both = assign_many(&repo, "eu-west-1", 40, &mut rng).await;
    assert!(both.contains_key("mc-quiet") && both.contains_key("mc-steady"));

    // 40 s pass; only mc-steady keeps reporting (every 20 s).
    world.clock.advance(Duration::from_secs(20));
    beat(&repo, "mc-steady", 0, HealthStatus::Healthy).await;
    world.clock.advance(Duration::from_secs(20));
    beat(&repo, "mc-steady", 0, HealthStatus::Healthy).await;

    let counts = assign_many(&repo, "eu-west-1", 40, &mut rng).await;
    assert_eq!(counts.get("mc-steady"), Some(&40), "{counts:?}");

    // mc-quiet reports again: back in the choice.
    beat(&repo, "mc-quiet", 0, HealthStatus::Healthy).await;
    let counts = assign_many(&repo, "eu-west-1", 40, &mut rng).await;
    assert!(counts.contains_key("mc-quiet"), "{counts:?}");

    // With a more patient limit (configuration), a quiet controller still counts.
    world.clock.advance(Duration::from_secs(60));
    let patient = Liveness {
        heartbeat_limit: chrono::TimeDelta::minutes(5),
    };
    let m = meeting(&repo, "One-shot").await;
    assert!(
        repo.assign_controller(m, &region("eu-west-1"), &patient, &mut rng)
            .await
            .unwrap()
            .is_some()
    );
    let m = meeting(&repo, "One-shot").await;
    assert_eq!(
        repo.assign_controller(m, &region("eu-west-1"), &Liveness::default(), &mut rng)
            .await
            .unwrap(),
        None,
        "nobody reported within 30 s"
    );
}

#[tokio::test]
async fn a_controller_whose_capacity_hash_expired_gets_no_new_meetings() {
    let (world, repo) = world().await;
    register(&repo, "mc-a", "us-east-1", 1000).await;
    register(&repo, "mc-b", "us-east-1", 1000).await;
    let key = "controller:mc-a:capacity";
    let _: () = world.redis.conn().pexpire(key, 1).await.unwrap();
    eventually("the capacity hash expires", || async {
        let there: bool = world.redis.conn().exists(key).await.unwrap();
        (!there).then_some(())
    })
    .await;
    let mut rng = StdRng::seed_from_u64(2);

    let counts = assign_many(&repo, "us-east-1", 30, &mut rng).await;
    assert_eq!(counts.get("mc-b"), Some(&30), "{counts:?}");

    // Its next heartbeat recreates the hash (5-minute TTL) and it is chosen again.
    beat(&repo, "mc-a", 0, HealthStatus::Healthy).await;
    let ttl = store::harness::ttl(&world.redis, key).await;
    assert!(200 < ttl && ttl <= 300, "{ttl}");
    let counts = assign_many(&repo, "us-east-1", 30, &mut rng).await;
    assert!(counts.contains_key("mc-a"), "{counts:?}");
}

#[tokio::test]
async fn draining_degraded_and_unhealthy_controllers_get_no_new_meetings() {
    let (world, repo) = world().await;
    for (name, health) in [
        ("mc-draining", HealthStatus::Draining),
        ("mc-degraded", HealthStatus::Degraded),
        ("mc-unhealthy", HealthStatus::Unhealthy),
        ("mc-healthy", HealthStatus::Healthy),
    ] {
        register(&repo, name, "ap-south-1", 1000).await;
        beat(&repo, name, 0, health).await;
    }
    assert_eq!(capacity(&world, "mc-draining").await["health"], "draining");
    let mut rng = StdRng::seed_from_u64(3);

    let counts = assign_many(&repo, "ap-south-1", 30, &mut rng).await;
    assert_eq!(counts.get("mc-healthy"), Some(&30), "{counts:?}");

    // The last healthy one starts draining: nobody takes new meetings there.
    beat(&repo, "mc-healthy", 30, HealthStatus::Draining).await;
    let counts = assign_many(&repo, "ap-south-1", 3, &mut rng).await;
    assert_eq!(counts.get("none"), Some(&3), "{counts:?}");
}

#[tokio::test]
async fn the_weighted_choice_respects_free_capacity_and_region() {
    let (world, repo) = world().await;
    register(&repo, "mc-roomy", "eu-west-1", 1000).await;
    register(&repo, "mc-busy", "eu-west-1", 1000).await;
    register(&repo, "mc-elsewhere", "us-east-1", 1000).await;
    // 900 free slots against 100.
    beat(&repo, "mc-roomy", 100, HealthStatus::Healthy).await;
    beat(&repo, "mc-busy", 900, HealthStatus::Healthy).await;
    let mut rng = StdRng::seed_from_u64(4);

    let counts = assign_many(&repo, "eu-west-1", 200, &mut rng).await;

    assert_eq!(counts.get("mc-elsewhere"), None, "{counts:?}");
    let roomy = counts.get("mc-roomy").copied().unwrap_or(0);
    let busy = counts.get("mc-busy").copied().unwrap_or(0);
    assert_eq!(roomy + busy, 200);
    assert!(
        roomy >= 150,
        "about nine in ten to the roomy one: {counts:?}"
    );
    // Each assignment counted against its controller until the next heartbeat.
    assert_eq!(
        capacity(&world, "mc-roomy").await["current_meetings"],
        (100 + roomy).to_string()
    );
    assert_eq!(
        capacity(&world, "mc-busy").await["current_meetings"],
        (900 + busy).to_string()
    );

    // A controller with one slot takes one meeting and then no more.
    register(&repo, "mc-tiny", "sa-east-1", 1).await;
    let counts = assign_many(&repo, "sa-east-1", 3, &mut rng).await;
    assert_eq!(counts.get("mc-tiny"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("none"), Some(&2), "{counts:?}");
    // Its heartbeat says the meeting is over: room again.
    beat(&repo, "mc-tiny", 0, HealthStatus::Healthy).await;
    let counts = assign_many(&repo, "sa-east-1", 1, &mut rng).await;
    assert_eq!(counts.get("mc-tiny"), Some(&1), "{counts:?}");
}

#[tokio::test]
async fn a_registered_controller_is_found_with_its_endpoint_and_the_join_copies_the_assignment() {
    let (world, repo) = world().await;
    register(&repo, "mc-1", "eu-west-1", 10).await;

    let found = repo.controller(&id("mc-1")).await.unwrap();
    assert_eq!(found.endpoint, "https://mc-1.example.org:4433");
    assert_eq!(found.region, region("eu-west-1"));
    assert_eq!(found.health, HealthStatus::Healthy);
    assert_eq!(found.last_heartbeat_at, testkit::epoch());
    assert!(matches!(
        repo.controller(&id("mc-nobody")).await,
        Err(MeetingsError::Storage(StorageError::NotFound { .. }))
    ));

    let m = meeting(&repo, "One-shot").await;
    let mut rng = StdRng::seed_from_u64(5);
    let chosen = repo
        .assign_controller(m, &region("eu-west-1"), &Liveness::default(), &mut rng)
        .await
        .unwrap();
    assert_eq!(chosen, Some(id("mc-1")));
    join_anonymous(&repo, m).await;
    let state = hash_of(&world.redis, &format!("meeting:{m}")).await;
    assert_eq!(state["controller_id"], "mc-1");
}

#[tokio::test]
async fn a_media_handler_whose_heartbeats_stop_gets_no_new_meetings() {
    let (world, repo) = world().await;
    let handler = HandlerId::parse("mh-1").unwrap();
    repo.register_handler(&handler_registration(
        &handler,
        &region("eu-west-1"),
        "https://mh-1.example.org",
    ))
    .await
    .unwrap();
    let m = meeting(&repo, "One-shot").await;
    join_anonymous(&repo, m).await;
    let live = Liveness::default();
    let mut rng = StdRng::seed_from_u64(6);

    world.clock.advance(Duration::from_secs(31));
    assert_eq!(
        repo.assign_media_handler(m, &region("eu-west-1"), &live, &mut rng)
            .await
            .unwrap(),
        None
    );

    repo.heartbeat_handler(&HandlerHeartbeat {
        handler_id: handler.clone(),
        current_streams: 10,
        current_bitrate_mbps: 100,
        health: HealthStatus::Healthy,
    })
    .await
    .unwrap();
    assert_eq!(
        repo.assign_media_handler(m, &region("eu-west-1"), &live, &mut rng)
            .await
            .unwrap(),
        Some(handler)
    );
}

#[tokio::test]
async fn a_meeting_keeps_its_controller_while_it_lives_and_moves_when_it_dies() {
    let (world, repo) = world().await;
    register(&repo, "mc-a", "eu-west-1", 1000).await;
    register(&repo, "mc-b", "eu-west-1", 1000).await;
    let m = meeting(&repo, "One-shot").await;
    let live = Liveness::default();
    let eu = region("eu-west-1");
    let mut rng = StdRng::seed_from_u64(7);

    let first = repo
        .controller_for(m, &eu, &live, &mut rng)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.endpoint,
        format!("https://{}.example.org:4433", first.controller_id)
    );
    for _ in 0..10 {
        let again = repo.controller_for(m, &eu, &live, &mut rng).await.unwrap();
        assert_eq!(
            again.map(|c| c.controller_id),
            Some(first.controller_id.clone())
        );
    }
    let other = if first.controller_id.as_str() == "mc-a" {
        "mc-b"
    } else {
        "mc-a"
    };

    // Degraded: it keeps the meetings it has.
    beat(
        &repo,
        first.controller_id.as_str(),
        1,
        HealthStatus::Degraded,
    )
    .await;
    let kept = repo.controller_for(m, &eu, &live, &mut rng).await.unwrap();
    assert_eq!(
        kept.map(|c| c.controller_id),
        Some(first.controller_id.clone())
    );

    // It stops reporting: the meeting moves to the other one, in its row too.
    world.clock.advance(Duration::from_secs(31));
    beat(&repo, other, 0, HealthStatus::Healthy).await;
    let moved = repo.controller_for(m, &eu, &live, &mut rng).await.unwrap();
    assert_eq!(moved.map(|c| c.controller_id), Some(id(other)));
    let row = repo.meeting(m).await.unwrap();
    assert_eq!(row.assigned_controller_id, Some(id(other)));
    assert_eq!(row.assigned_region, Some(eu.clone()));

    // Unhealthy: it loses its meetings at once; with nobody else, there is none.
    beat(&repo, other, 1, HealthStatus::Unhealthy).await;
    assert_eq!(
        repo.controller_for(m, &eu, &live, &mut rng)
            .await
            .unwrap()
            .map(|c| c.controller_id),
        None
    );
    assert!(matches!(
        repo.controller_for(MeetingId::random(), &eu, &live, &mut rng)
            .await,
        Err(MeetingsError::Storage(StorageError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn replicas_asking_at_once_for_a_new_meetings_controller_all_get_the_same_one() {
    let (_world, repo) = world().await;
    for name in ["mc-1", "mc-2", "mc-3", "mc-4"] {
        register(&repo, name, "eu-west-1", 1000).await;
    }
    let m = meeting(&repo, "One-shot").await;

    let mut tasks = Vec::new();
    for seed in 0..8 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            repo.controller_for(m, &region("eu-west-1"), &Liveness::default(), &mut rng)
                .await
                .unwrap()
                .unwrap()
                .controller_id
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    let stored = repo
        .meeting(m)
        .await
        .unwrap()
        .assigned_controller_id
        .unwrap();
    assert!(
        answers.iter().all(|a| a == &stored),
        "{answers:?} vs {stored}"
    );
}

#[tokio::test]
async fn another_replicas_read_of_the_registry_serves_grants_for_a_second_at_most() {
    let (world, here) = world().await;
    // Another replica: its own repository over the same stores and clock.
    let there = Repo::from_context(&world.ctx);
    register(&here, "mc-a", "eu-west-1", 1000).await;
    let m = meeting(&here, "One-shot").await;
    let live = Liveness::default();
    let eu = region("eu-west-1");
    let mut rng = StdRng::seed_from_u64(8);
    let first = here
        .controller_for(m, &eu, &live, &mut rng)
        .await
        .unwrap()
        .map(|c| c.controller_id);
    assert_eq!(first, Some(id("mc-a")));

    // The other replica hears that mc-a is unhealthy; this one's read is still fresh.
    beat(&there, "mc-a", 1, HealthStatus::Unhealthy).await;
    let kept = here.controller_for(m, &eu, &live, &mut rng).await.unwrap();
    assert_eq!(kept.map(|c| c.controller_id), Some(id("mc-a")));

    // A second later this one reads the registry again: nobody can take the meeting.
    world.clock.advance(Duration::from_secs(1));
    let gone = here.controller_for(m, &eu, &live, &mut rng).await.unwrap();
    assert_eq!(gone, None);

    // Healthy again, heard there; here a second later.
    beat(&there, "mc-a", 1, HealthStatus::Healthy).await;
    assert_eq!(
        here.controller_for(m, &eu, &live, &mut rng).await.unwrap(),
        None
    );
    world.clock.advance(Duration::from_secs(1));
    let back = here.controller_for(m, &eu, &live, &mut rng).await.unwrap();
    assert_eq!(back.map(|c| c.controller_id), Some(id("mc-a")));

    // A heartbeat through this replica is heard at once.
    beat(&here, "mc-a", 1, HealthStatus::Unhealthy).await;
    assert_eq!(
        here.controller_for(m, &eu, &live, &mut rng).await.unwrap(),
        None
    );
}
