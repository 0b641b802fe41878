//! The repositories against a real redis-server: exact key names, Redis types, values
//! and TTLs after each operation, refusals that leave Redis untouched, and concurrent
//! writers that never leave half a relation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use base::Secret;
use campaigns::repo::{
    LinkOutcome, Orphan, Registration, Removal, RemovedSeries, Tokens, UserTokens,
};
use campaigns::{EndAdventureError, LinkingId, RepoError, SeriesType, TransientUserId};
use common::*;
use store::StorageError;

// ---- Linking --------------------------------------------------------------------------

#[tokio::test]
async fn linking_writes_both_one_to_one_keys_and_both_sets() {
    let env = env().await;

    let outcome = env.store.link(meetup(11), user(22), None).await.unwrap();

    assert_eq!(outcome, LinkOutcome::Linked);
    assert_eq!(
        env.redis_type("meetup_user:11:discord_user").await,
        "string"
    );
    assert_eq!(
        env.get("meetup_user:11:discord_user").await.as_deref(),
        Some("22")
    );
    assert_eq!(
        env.redis_type("discord_user:22:meetup_user").await,
        "string"
    );
    assert_eq!(
        env.get("discord_user:22:meetup_user").await.as_deref(),
        Some("11")
    );
    assert_eq!(env.redis_type("meetup_users").await, "set");
    assert_eq!(env.members("meetup_users").await, vec!["11"]);
    assert_eq!(env.redis_type("discord_users").await, "set");
    assert_eq!(env.members("discord_users").await, vec!["22"]);
    assert_eq!(env.ttl("meetup_user:11:discord_user").await, -1);
    assert_eq!(env.ttl("discord_user:22:meetup_user").await, -1);
    assert_eq!(env.keys().await.len(), 4);
    assert_eq!(
        env.store.meetup_user_of(user(22)).await.unwrap(),
        Some(meetup(11))
    );
    assert_eq!(
        env.store.discord_user_of(meetup(11)).await.unwrap(),
        Some(user(22))
    );
}

#[tokio::test]
async fn linking_the_same_pair_again_is_idempotent_and_repairs_sets() {
    let env = env().await;
    env.store.link(meetup(11), user(22), None).await.unwrap();
    env.srem("discord_users", "22").await;

    let outcome = env.store.link(meetup(11), user(22), None).await.unwrap();

    assert_eq!(outcome, LinkOutcome::AlreadyLinked);
    assert_eq!(env.members("discord_users").await, vec!["22"]);
    assert_eq!(env.keys().await.len(), 4);
}

#[tokio::test]
async fn linking_with_consent_stores_the_users_tokens_in_the_same_step() {
    let env = env().await;
    let tokens = UserTokens {
        tokens: Tokens {
            access: meetup::AccessToken::from("acc"),
            refresh: meetup::RefreshToken::from("ref"),
        },
        last_refresh: Some(at("2026-03-01T10:00:00Z")),
    };

    env.store
        .link(meetup(11), user(22), Some(&tokens))
        .await
        .unwrap();

    assert_eq!(env.redis_type("meetup_user:11:oauth2_tokens").await, "hash");
    assert_eq!(
        env.hash("meetup_user:11:oauth2_tokens").await,
        vec![
            ("access_token".to_owned(), "acc".to_owned()),
            ("refresh_token".to_owned(), "ref".to_owned())
        ]
    );
    let time = env
        .get("meetup_user:11:oauth2_tokens:last_refresh_time")
        .await
        .unwrap();
    assert_eq!(at(&time), at("2026-03-01T10:00:00Z"));
    assert_eq!(
        env.store.user_tokens(meetup(11)).await.unwrap(),
        Some(tokens)
    );
    assert!(!format!("{:?}", Secret::from("acc")).contains("acc"));
}

#[tokio::test]
async fn linking_someone_linked_elsewhere_is_refused_and_changes_nothing() {
    let env = env().await;
    env.store.link(meetup(11), user(22), None).await.unwrap();
    env.store.link(meetup(12), user(23), None).await.unwrap();
    let before = env.snapshot().await;

    let taken_meetup = env
        .store
        .link(meetup(11), user(99), None)
        .await
        .unwrap_err();
    let taken_discord = env
        .store
        .link(meetup(98), user(22), None)
        .await
        .unwrap_err();
    let crossed = env
        .store
        .link(meetup(11), user(23), None)
        .await
        .unwrap_err();

    assert!(
        matches!(taken_meetup, RepoError::MeetupUserLinkedElsewhere { meetup: m, discord: d } if m == meetup(11) && d == user(22)),
        "{taken_meetup:?}"
    );
    assert!(
        matches!(taken_discord, RepoError::DiscordUserLinkedElsewhere { discord: d, meetup: m } if d == user(22) && m == meetup(11)),
        "{taken_discord:?}"
    );
    assert!(matches!(
        crossed,
        RepoError::MeetupUserLinkedElsewhere { .. }
    ));
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn unlinking_removes_the_pair_its_set_memberships_and_the_users_tokens() {
    let env = env().await;
    let tokens = UserTokens {
        tokens: Tokens {
            access: meetup::AccessToken::from("a"),
            refresh: meetup::RefreshToken::from("r"),
        },
        last_refresh: None,
    };
    env.store
        .link(meetup(11), user(22), Some(&tokens))
        .await
        .unwrap();
    env.store.link(meetup(12), user(23), None).await.unwrap();

    let unlinked = env.store.unlink_discord_user(user(22)).await.unwrap();

    assert_eq!(unlinked, Some(meetup(11)));
    assert_eq!(
        env.keys().await,
        vec![
            "discord_user:23:meetup_user",
            "discord_users",
            "meetup_user:12:discord_user",
            "meetup_users"
        ]
    );
    assert_eq!(env.members("meetup_users").await, vec!["12"]);
    assert_eq!(env.members("discord_users").await, vec!["23"]);
    assert_eq!(env.store.unlink_discord_user(user(22)).await.unwrap(), None);

    let unlinked = env.store.unlink_meetup_user(meetup(12)).await.unwrap();
    assert_eq!(unlinked, Some(user(23)));
    assert!(env.keys().await.is_empty(), "{:?}", env.keys().await);
}

#[tokio::test]
async fn unlinking_leaves_a_side_that_belongs_to_another_link() {
    let env = env().await;
    // A broken pair: Discord 22 claims Meetup 11, but Meetup 11 is linked to Discord 33.
    env.store.link(meetup(11), user(33), None).await.unwrap();
    env.set("discord_user:22:meetup_user", "11").await;
    env.sadd("discord_users", "22").await;

    assert_eq!(
        env.store.unlink_discord_user(user(22)).await.unwrap(),
        Some(meetup(11))
    );

    assert_eq!(env.get("discord_user:22:meetup_user").await, None);
    assert_eq!(
        env.get("meetup_user:11:discord_user").await.as_deref(),
        Some("33")
    );
    assert_eq!(
        env.get("discord_user:33:meetup_user").await.as_deref(),
        Some("11")
    );
    assert_eq!(env.members("discord_users").await, vec!["33"]);
    assert_eq!(env.members("meetup_users").await, vec!["11"]);
}

#[tokio::test]
async fn racing_links_of_one_meetup_user_leave_exactly_one_link() {
    let env = env().await;
    let mut tasks = Vec::new();
    for d in 1..=8 {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            store.link(meetup(5), user(100 + d), None).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(LinkOutcome::Linked) => won += 1,
            Ok(other) => panic!("{other:?}"),
            Err(RepoError::MeetupUserLinkedElsewhere { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }

    assert_eq!(won, 1);
    let linked = env.get("meetup_user:5:discord_user").await.unwrap();
    assert_eq!(env.members("discord_users").await, vec![linked.clone()]);
    assert_eq!(
        env.get(&format!("discord_user:{linked}:meetup_user"))
            .await
            .as_deref(),
        Some("5")
    );
    assert_eq!(env.keys().await.len(), 4);
    assert!(
        campaigns::check::check(&env.redis)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_reader_never_sees_half_a_link_while_writers_link_and_unlink() {
    let env = env().await;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = env.store.clone();
            tokio::spawn(async move {
                for i in 0..60 {
                    // Two writers fight over one pair with links and unlinks.
                    if (i + w) % 2 == 0 {
                        let _ = store.link(meetup(7), user(70), None).await;
                    } else {
                        store.unlink_discord_user(user(70)).await.unwrap();
                    }
                }
            })
        })
        .collect();
    let redis = env.redis.clone();
    let reader = tokio::spawn(async move {
        let mut reads = 0;
        let mut conn = redis.conn();
        for _ in 0..400 {
            // One MULTI/EXEC: a consistent instant of all four keys.
            let (a, b, in_meetup_users, in_discord_users): (
                Option<String>,
                Option<String>,
                bool,
                bool,
            ) = redis::pipe()
                .atomic()
                .cmd("GET")
                .arg("meetup_user:7:discord_user")
                .cmd("GET")
                .arg("discord_user:70:meetup_user")
                .cmd("SISMEMBER")
                .arg("meetup_users")
                .arg("7")
                .cmd("SISMEMBER")
                .arg("discord_users")
                .arg("70")
                .query_async(&mut conn)
                .await
                .unwrap();
            match (
                a.as_deref(),
                b.as_deref(),
                in_meetup_users,
                in_discord_users,
            ) {
                (Some("70"), Some("7"), true, true) | (None, None, false, false) => {}
                other => panic!("half a relation: {other:?}"),
            }
            reads += 1;
        }
        reads
    });
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(reader.await.unwrap(), 400);
    assert!(
        campaigns::check::check(&env.redis)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- Linking ids, CSRF, organiser tokens ---------------------------------------------

#[tokio::test]
async fn a_linking_id_lives_a_day_then_ten_minutes_once_opened_and_is_used_once() {
    let env = env().await;

    let id = env.store.create_linking_id(user(22)).await.unwrap();
    assert!(!format!("{id:?}").contains(id.expose()), "a bearer secret");
    let key = format!("meetup_linking:{}:discord_user", id.expose());
    assert_eq!(env.redis_type(&key).await, "string");
    assert_eq!(env.get(&key).await.as_deref(), Some("22"));
    let ttl = env.ttl(&key).await;
    assert!(ttl > 600 && ttl <= 86_400, "{ttl}");

    assert_eq!(
        env.store.open_linking_id(&id).await.unwrap(),
        Some(user(22))
    );
    let ttl = env.ttl(&key).await;
    assert!(ttl > 0 && ttl <= 600, "{ttl}");

    assert_eq!(
        env.store.consume_linking_id(&id).await.unwrap(),
        Some(user(22))
    );
    assert_eq!(env.get(&key).await, None);
    assert_eq!(env.store.consume_linking_id(&id).await.unwrap(), None);
    assert_eq!(env.store.open_linking_id(&id).await.unwrap(), None);
    let unknown = LinkingId::parse("nope").unwrap();
    assert_eq!(env.store.open_linking_id(&unknown).await.unwrap(), None);
}

#[tokio::test]
async fn a_csrf_token_lives_an_hour_and_answers_once() {
    let env = env().await;
    let browser = TransientUserId::parse("browser1").unwrap();

    env.store
        .set_csrf(&browser, &Secret::from("tok"))
        .await
        .unwrap();

    assert_eq!(env.redis_type("csrf:browser1").await, "string");
    assert_eq!(env.get("csrf:browser1").await.as_deref(), Some("tok"));
    let ttl = env.ttl("csrf:browser1").await;
    assert!(ttl > 600 && ttl <= 3600, "{ttl}");
    assert_eq!(
        env.store.take_csrf(&browser).await.unwrap(),
        Some(Secret::from("tok"))
    );
    assert_eq!(env.store.take_csrf(&browser).await.unwrap(), None);
}

#[tokio::test]
async fn organiser_tokens_are_three_plain_strings() {
    let env = env().await;
    assert_eq!(env.store.organizer_tokens().await.unwrap(), None);
    let tokens = Tokens {
        access: meetup::AccessToken::from("s3cr3t-a"),
        refresh: meetup::RefreshToken::from("s3cr3t-r"),
    };

    env.store
        .set_organizer_tokens(&tokens, at("2026-03-03T10:00:00Z"))
        .await
        .unwrap();

    for key in [
        "meetup_access_token",
        "meetup_refresh_token",
        "meetup_access_token_refresh_time",
    ] {
        assert_eq!(env.redis_type(key).await, "string", "{key}");
        assert_eq!(env.ttl(key).await, -1, "{key}");
    }
    assert_eq!(
        env.get("meetup_access_token").await.as_deref(),
        Some("s3cr3t-a")
    );
    assert_eq!(
        env.get("meetup_refresh_token").await.as_deref(),
        Some("s3cr3t-r")
    );
    let stored = env.get("meetup_access_token_refresh_time").await.unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&stored).unwrap(),
        at("2026-03-03T10:00:00Z")
    );
    env.store
        .set_next_token_refresh(at("2026-03-03T11:00:00Z"))
        .await
        .unwrap();
    let read = env.store.organizer_tokens().await.unwrap().unwrap();
    assert_eq!(read.tokens, tokens);
    assert_eq!(read.next_refresh, Some(at("2026-03-03T11:00:00Z")));
    assert!(!format!("{read:?}").contains("s3cr3t-a"));
}

/// One claim at a time to tell the organisers about a refusal; it counts as told only
/// when the claim ends told, and a claim that ends untold leaves it for the next.
#[tokio::test]
async fn a_refusal_alert_is_claimed_by_one_and_told_only_when_sent() {
    let env = env().await;
    let tokens = Tokens {
        access: "a".into(),
        refresh: "r".into(),
    };
    env.store
        .set_organizer_tokens(&tokens, at("2026-03-03T10:00:00Z"))
        .await
        .unwrap();
    assert!(env.store.claim_refusal_alert().await.unwrap().is_none());
    assert!(
        env.store
            .note_authorisation_refused(&tokens.refresh, at("2026-03-03T09:00:00Z"))
            .await
            .unwrap()
    );

    let first = env.store.claim_refusal_alert().await.unwrap().unwrap();
    assert_eq!(first.at, at("2026-03-03T09:00:00Z"));
    assert!(
        env.store.claim_refusal_alert().await.unwrap().is_none(),
        "another replica does not send it too"
    );
    env.store.finish_refusal_alert(first, false).await.unwrap();
    let again = env.store.claim_refusal_alert().await.unwrap().unwrap();
    env.store.finish_refusal_alert(again, true).await.unwrap();
    assert!(env.store.claim_refusal_alert().await.unwrap().is_none());
    assert_eq!(
        env.get(campaigns::schema::REFUSAL_ALERT_LOCK).await,
        None,
        "the claim is given back"
    );
}

// ---- Events ---------------------------------------------------------------------------

#[tokio::test]
async fn an_event_is_stored_with_its_hash_sets_and_series_both_ways() {
    let env = env().await;
    let mut up = upsert("e1", "s1");
    up.event.is_online = Some(true);
    up.series_type = Some(SeriesType::Campaign);
    up.series_online = true;

    env.store.upsert_event(&up).await.unwrap();

    assert_eq!(env.redis_type("meetup_event:e1").await, "hash");
    assert_eq!(
        env.hash("meetup_event:e1").await,
        vec![
            ("is_online".to_owned(), "true".to_owned()),
            (
                "link".to_owned(),
                "https://www.meetup.com/dragons/events/e1/".to_owned()
            ),
            ("name".to_owned(), "Session of e1".to_owned()),
            ("time".to_owned(), "2026-03-01T18:00:00+00:00".to_owned()),
            ("urlname".to_owned(), "dragons".to_owned()),
        ]
    );
    assert_eq!(env.redis_type("meetup_event:e1:meetup_hosts").await, "set");
    assert_eq!(env.members("meetup_event:e1:meetup_hosts").await, vec!["1"]);
    assert_eq!(env.redis_type("meetup_event:e1:meetup_users").await, "set");
    assert_eq!(
        env.members("meetup_event:e1:meetup_users").await,
        vec!["2", "3"]
    );
    assert_eq!(
        env.redis_type("meetup_event:e1:event_series").await,
        "string"
    );
    assert_eq!(
        env.get("meetup_event:e1:event_series").await.as_deref(),
        Some("s1")
    );
    assert_eq!(env.redis_type("event_series:s1:meetup_events").await, "set");
    assert_eq!(
        env.members("event_series:s1:meetup_events").await,
        vec!["e1"]
    );
    assert_eq!(env.members("meetup_events").await, vec!["e1"]);
    assert_eq!(env.members("event_series").await, vec!["s1"]);
    assert_eq!(
        env.get("event_series:s1:type").await.as_deref(),
        Some("campaign")
    );
    assert_eq!(
        env.get("event_series:s1:is_online").await.as_deref(),
        Some("true")
    );
    assert_eq!(env.keys().await.len(), 9);
    assert_eq!(
        env.store.event(&event_id("e1")).await.unwrap(),
        Some(up.event)
    );
    assert_eq!(
        env.store.series_type(&series_id("s1")).await.unwrap(),
        Some(SeriesType::Campaign)
    );
    assert!(env.store.series_is_online(&series_id("s1")).await.unwrap());
    assert_eq!(
        env.store.series_events(&series_id("s1")).await.unwrap(),
        vec![event_id("e1")]
    );
}

#[tokio::test]
async fn a_second_sync_replaces_hosts_keeps_unfetched_rsvps_and_drops_is_online() {
    let env = env().await;
    let mut first = upsert("e1", "s1");
    first.event.is_online = Some(false);
    env.store.upsert_event(&first).await.unwrap();

    let mut second = upsert("e1", "s1");
    second.hosts = vec![meetup(8), meetup(9)];
    second.rsvps = None;
    second.event.name = "Renamed".into();
    env.store.upsert_event(&second).await.unwrap();

    assert_eq!(
        env.members("meetup_event:e1:meetup_hosts").await,
        vec!["8", "9"]
    );
    assert_eq!(
        env.members("meetup_event:e1:meetup_users").await,
        vec!["2", "3"]
    );
    let hash = env.hash("meetup_event:e1").await;
    assert!(hash.iter().all(|(f, _)| f != "is_online"), "{hash:?}");
    assert!(hash.contains(&("name".to_owned(), "Renamed".to_owned())));
    assert_eq!(env.get("event_series:s1:is_online").await, None);

    let mut third = upsert("e1", "s1");
    third.rsvps = Some(vec![]);
    third.hosts = vec![];
    env.store.upsert_event(&third).await.unwrap();
    assert_eq!(env.redis_type("meetup_event:e1:meetup_users").await, "none");
    assert_eq!(env.redis_type("meetup_event:e1:meetup_hosts").await, "none");
}

#[tokio::test]
async fn an_event_cannot_move_to_another_series() {
    let env = env().await;
    env.store.upsert_event(&upsert("e1", "s1")).await.unwrap();
    let before = env.snapshot().await;

    let err = env
        .store
        .upsert_event(&upsert("e1", "s2"))
        .await
        .unwrap_err();

    assert!(
        matches!(err, RepoError::EventInOtherSeries { .. }),
        "{err:?}"
    );
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn deleting_the_last_event_of_a_series_without_channel_removes_the_series() {
    let env = env().await;
    let mut up = upsert("e1", "s1");
    up.series_type = Some(SeriesType::Adventure);
    up.series_online = true;
    env.store.upsert_event(&up).await.unwrap();
    env.store.upsert_event(&upsert("e2", "s1")).await.unwrap();
    env.store
        .upsert_event(&upsert("x1", "other"))
        .await
        .unwrap();
    let other = env.snapshot().await;

    let first = env.store.delete_event(&event_id("e1")).await.unwrap();
    assert_eq!(first.series, Some(series_id("s1")));
    assert!(!first.series_removed);
    assert_eq!(
        env.members("event_series:s1:meetup_events").await,
        vec!["e2"]
    );
    assert_eq!(env.redis_type("meetup_event:e1").await, "none");
    assert_eq!(env.redis_type("meetup_event:e1:meetup_hosts").await, "none");
    assert_eq!(env.redis_type("meetup_event:e1:meetup_users").await, "none");
    assert_eq!(env.redis_type("meetup_event:e1:event_series").await, "none");

    let second = env.store.delete_event(&event_id("e2")).await.unwrap();
    assert!(second.series_removed);

    // Only the other series' keys are left, exactly as they were.
    let other: Vec<_> = other
        .into_iter()
        .filter(|(k, _, _)| k.contains("x1") || k.contains("other"))
        .collect();
    let now = env.snapshot().await;
    let expect: Vec<_> = other
        .into_iter()
        .chain(
            now.iter()
                .filter(|(k, _, _)| k == "meetup_events" || k == "event_series")
                .cloned(),
        )
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(now, expect);
    assert_eq!(env.members("meetup_events").await, vec!["x1"]);
    assert_eq!(env.members("event_series").await, vec!["other"]);
    assert!(
        campaigns::check::check(&env.redis)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_series_with_a_channel_outlives_its_last_event() {
    let env = env().await;
    env.store.upsert_event(&upsert("e1", "s1")).await.unwrap();
    env.store
        .register_channel(&series_id("s1"), channel(500))
        .await
        .unwrap();

    let deletion = env.store.delete_event(&event_id("e1")).await.unwrap();

    assert!(!deletion.series_removed);
    assert_eq!(env.members("event_series").await, vec!["s1"]);
    assert_eq!(
        env.get("event_series:s1:discord_channel").await.as_deref(),
        Some("500")
    );
    assert_eq!(env.members("meetup_events").await, Vec::<String>::new());
    assert!(
        campaigns::check::check(&env.redis)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- Channels and roles ---------------------------------------------------------------

#[tokio::test]
async fn registering_channels_and_roles_writes_every_inverse_and_set() {
    let env = env().await;

    env.full_series("s1", "e1", 500, 501, 600, 601).await;

    let strings = [
        ("event_series:s1:discord_channel", "500"),
        ("discord_channel:500:event_series", "s1"),
        ("event_series:s1:discord_voice_channel", "501"),
        ("discord_voice_channel:501:event_series", "s1"),
        ("discord_channel:500:discord_role", "600"),
        ("discord_role:600:discord_channel", "500"),
        ("discord_channel:500:discord_host_role", "601"),
        ("discord_host_role:601:discord_channel", "500"),
    ];
    for (key, value) in strings {
        assert_eq!(env.redis_type(key).await, "string", "{key}");
        assert_eq!(env.get(key).await.as_deref(), Some(value), "{key}");
        assert_eq!(env.ttl(key).await, -1, "{key}");
    }
    for (set, member) in [
        ("discord_channels", "500"),
        ("discord_voice_channels", "501"),
        ("discord_roles", "600"),
        ("discord_host_roles", "601"),
    ] {
        assert_eq!(env.redis_type(set).await, "set", "{set}");
        assert_eq!(env.members(set).await, vec![member], "{set}");
    }
    assert_eq!(
        env.store.channel_roles(channel(500)).await.unwrap(),
        (Some(role(600)), Some(role(601)))
    );
    assert_eq!(
        env.store.channel_series(channel(500)).await.unwrap(),
        Some(series_id("s1"))
    );
    assert_eq!(
        env.store.voice_channel_series(channel(501)).await.unwrap(),
        Some(series_id("s1"))
    );
    assert_eq!(
        env.store
            .series_voice_channel(&series_id("s1"))
            .await
            .unwrap(),
        Some(channel(501))
    );
    // Again: nothing new.
    let s1 = series_id("s1");
    assert_eq!(
        env.store.register_channel(&s1, channel(500)).await.unwrap(),
        Registration::AlreadyRegistered
    );
    assert_eq!(
        env.store
            .register_roles(channel(500), role(600), role(601))
            .await
            .unwrap(),
        Registration::AlreadyRegistered
    );
    assert!(
        campaigns::check::check(&env.redis)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn registrations_that_would_break_a_relation_are_refused_without_writing() {
    let env = env().await;
    env.full_series("s1", "e1", 500, 501, 600, 601).await;
    env.store.upsert_event(&upsert("e2", "s2")).await.unwrap();
    let before = env.snapshot().await;
    let (s1, s2) = (series_id("s1"), series_id("s2"));

    let cases = [
        env.store.register_channel(&s1, channel(502)).await,
        env.store.register_channel(&s2, channel(500)).await,
        env.store
            .register_channel(&series_id("ghost"), channel(503))
            .await,
        env.store.register_voice_channel(&s1, channel(504)).await,
        env.store.register_voice_channel(&s2, channel(501)).await,
        env.store
            .register_roles(channel(999), role(1), role(2))
            .await,
        env.store
            .register_roles(channel(500), role(700), role(601))
            .await,
        env.store
            .register_roles(channel(500), role(5), role(5))
            .await,
    ];
    env.store.register_channel(&s2, channel(510)).await.unwrap();
    let before_roles = env.snapshot().await;
    let role_taken = env
        .store
        .register_roles(channel(510), role(600), role(611))
        .await;

    let errors: Vec<String> = cases
        .into_iter()
        .map(|r| match r.unwrap_err() {
            RepoError::SeriesHasChannel { .. } => "series has channel",
            RepoError::ChannelTaken { .. } => "channel taken",
            RepoError::UnknownSeries(_) => "unknown series",
            RepoError::UnknownChannel(_) => "unknown channel",
            RepoError::ChannelHasRole { .. } => "channel has role",
            RepoError::SameRole(_) => "same role",
            other => panic!("{other:?}"),
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(
        errors,
        vec![
            "series has channel",
            "channel taken",
            "unknown series",
            "series has channel",
            "channel taken",
            "unknown channel",
            "channel has role",
            "same role"
        ]
    );
    assert!(
        matches!(role_taken, Err(RepoError::RoleTaken { .. })),
        "{role_taken:?}"
    );
    assert_eq!(env.snapshot().await, before_roles);
    let mut expect = before;
    expect.retain(|(k, _, _)| k != "discord_channels");
    let mut now = env.snapshot().await;
    now.retain(|(k, _, _)| {
        k != "discord_channels"
            && k != "event_series:s2:discord_channel"
            && !k.starts_with("discord_channel:510")
    });
    assert_eq!(now, expect);
}

#[tokio::test]
async fn racing_channel_registrations_leave_one_channel_per_series() {
    let env = env().await;
    env.store.upsert_event(&upsert("e1", "s1")).await.unwrap();
    let store = Arc::new(env.store.clone());
    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .register_channel(&series_id("s1"), channel(800 + n))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(Registration::Registered) => won += 1,
            Err(RepoError::SeriesHasChannel { .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    assert_eq!(won, 1);
    assert_eq!(env.members("discord_channels").await.len(), 1);
    assert_eq!(env.redis.scan("discord_channel:*").await.unwrap().len(), 1);
    assert!(
        campaigns::check::check(&env.redis)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn removing_a_series_removes_every_key_of_it_and_nothing_else() {
    let env = env().await;
    env.full_series("s2", "x1", 510, 511, 610, 611).await;
    let untouched = env.snapshot().await;
    env.full_series("s1", "e1", 500, 501, 600, 601).await;
    env.store.upsert_event(&upsert("e2", "s1")).await.unwrap();
    let c = channel(500);
    env.store
        .set_expiration(c, at("2026-03-01T18:00:00Z"))
        .await
        .unwrap();
    env.store
        .record_reminder(c, at("2026-03-02T18:00:00Z"))
        .await
        .unwrap();
    env.store
        .set_snooze(c, Some(at("2026-03-09T00:00:00Z")))
        .await
        .unwrap();
    env.store
        .end_adventure(c, at("2026-03-10T00:00:00Z"))
        .await
        .unwrap();
    env.store
        .mark_removed(c, Removal::User, user(5))
        .await
        .unwrap();
    env.store
        .mark_removed(c, Removal::Host, user(6))
        .await
        .unwrap();

    let removed = env.store.remove_series(&series_id("s1")).await.unwrap();

    assert_eq!(
        removed,
        RemovedSeries {
            events: vec![event_id("e1"), event_id("e2")],
            channel: Some(channel(500)),
            voice_channel: Some(channel(501)),
            guest_role: Some(role(600)),
            host_role: Some(role(601)),
        }
    );
    assert_eq!(env.snapshot().await, untouched);
    assert!(
        campaigns::check::check(&env.redis)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- Lifecycle ------------------------------------------------------------------------

#[tokio::test]
async fn a_changed_expiration_clears_scheduled_deletions_of_text_and_voice_channel() {
    let env = env().await;
    env.full_series("s1", "e1", 500, 501, 600, 601).await;
    let c = channel(500);
    assert!(
        env.store
            .set_expiration(c, at("2026-03-01T18:00:00Z"))
            .await
            .unwrap()
    );
    let key = "discord_channel:500:expiration_time";
    assert_eq!(env.redis_type(key).await, "string");
    assert_eq!(at(&env.get(key).await.unwrap()), at("2026-03-01T18:00:00Z"));

    let deletion = env
        .store
        .end_adventure(c, at("2026-03-01T20:00:00Z"))
        .await
        .unwrap();
    assert_eq!(deletion, at("2026-03-02T04:00:00Z"));
    for key in [
        "discord_channel:500:deletion_time",
        "discord_voice_channel:501:deletion_time",
    ] {
        assert_eq!(env.redis_type(key).await, "string", "{key}");
        assert_eq!(at(&env.get(key).await.unwrap()), deletion, "{key}");
    }
    assert_eq!(
        env.store
            .voice_channel_deletion_time(channel(501))
            .await
            .unwrap(),
        Some(deletion)
    );

    // The same expiration again changes nothing.
    assert!(
        !env.store
            .set_expiration(c, at("2026-03-01T18:00:00Z"))
            .await
            .unwrap()
    );
    assert!(env.get("discord_channel:500:deletion_time").await.is_some());

    // A new session moves it: both deletions are cancelled.
    assert!(
        env.store
            .set_expiration(c, at("2026-03-08T18:00:00Z"))
            .await
            .unwrap()
    );
    assert_eq!(env.get("discord_channel:500:deletion_time").await, None);
    assert_eq!(
        env.get("discord_voice_channel:501:deletion_time").await,
        None
    );
}

#[tokio::test]
async fn end_adventure_is_refused_before_expiration_and_twice() {
    let env = env().await;
    env.full_series("s1", "e1", 500, 501, 600, 601).await;
    let c = channel(500);

    let none = env.store.end_adventure(c, at("2026-03-01T20:00:00Z")).await;
    assert!(matches!(
        none,
        Err(RepoError::EndAdventure(EndAdventureError::NoExpiration))
    ));
    env.store
        .set_expiration(c, at("2026-03-01T18:00:00Z"))
        .await
        .unwrap();
    let early = env.store.end_adventure(c, at("2026-03-01T17:00:00Z")).await;
    assert!(matches!(
        early,
        Err(RepoError::EndAdventure(
            EndAdventureError::NotExpired { .. }
        ))
    ));
    assert_eq!(env.get("discord_channel:500:deletion_time").await, None);

    env.store
        .end_adventure(c, at("2026-03-01T19:00:00Z"))
        .await
        .unwrap();
    let twice = env.store.end_adventure(c, at("2026-03-01T21:00:00Z")).await;
    assert!(matches!(
        twice,
        Err(RepoError::EndAdventure(
            EndAdventureError::AlreadyScheduled { .. }
        ))
    ));
    let stranger = env
        .store
        .end_adventure(channel(9), at("2026-03-01T21:00:00Z"))
        .await;
    assert!(matches!(stranger, Err(RepoError::UnknownChannel(_))));
}

#[tokio::test]
async fn the_lifecycle_reads_back_what_was_stored() {
    let env = env().await;
    env.full_series("s1", "e1", 500, 501, 600, 601).await;
    let c = channel(500);
    env.store
        .set_expiration(c, at("2026-03-01T18:00:00Z"))
        .await
        .unwrap();
    env.store
        .record_reminder(c, at("2026-03-02T18:00:00Z"))
        .await
        .unwrap();
    env.store
        .set_snooze(c, Some(at("2026-03-09T00:00:00Z")))
        .await
        .unwrap();
    assert_eq!(
        env.redis_type("discord_channel:500:last_expiration_reminder_time")
            .await,
        "string"
    );
    assert_eq!(
        env.redis_type("discord_channel:500:snooze_until").await,
        "string"
    );

    let lifecycle = env.store.channel_lifecycle(c).await.unwrap().unwrap();

    assert_eq!(lifecycle.series_type, SeriesType::Adventure);
    assert_eq!(lifecycle.expiration, Some(at("2026-03-01T18:00:00Z")));
    assert_eq!(lifecycle.last_reminder, Some(at("2026-03-02T18:00:00Z")));
    assert_eq!(lifecycle.snooze_until, Some(at("2026-03-09T00:00:00Z")));
    assert_eq!(lifecycle.deletion, None);
    assert!(!lifecycle.reminder_due(at("2026-03-08T00:00:00Z")));
    assert!(lifecycle.reminder_due(at("2026-03-09T00:00:00Z")));

    env.store.set_snooze(c, None).await.unwrap();
    assert_eq!(
        env.redis_type("discord_channel:500:snooze_until").await,
        "none"
    );
    assert_eq!(env.store.channel_lifecycle(channel(9)).await.unwrap(), None);

    env.set("discord_channel:500:expiration_time", "yesterday")
        .await;
    let err = env.store.channel_lifecycle(c).await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Storage(StorageError::Corrupt { what: key, .. }) if key == "discord_channel:500:expiration_time"),
        "{err:?}"
    );
}

// ---- Small sets and strings -----------------------------------------------------------

#[tokio::test]
async fn removals_orphans_managed_channels_and_the_topic_time() {
    let env = env().await;
    let c = channel(500);

    env.store
        .mark_removed(c, Removal::User, user(5))
        .await
        .unwrap();
    env.store
        .mark_removed(c, Removal::Host, user(6))
        .await
        .unwrap();
    env.store
        .mark_removed(c, Removal::Host, user(7))
        .await
        .unwrap();
    env.store
        .unmark_removed(c, Removal::Host, user(7))
        .await
        .unwrap();
    env.store
        .add_orphan(Orphan::Channel(channel(1)))
        .await
        .unwrap();
    env.store
        .add_orphan(Orphan::VoiceChannel(channel(2)))
        .await
        .unwrap();
    env.store.add_orphan(Orphan::Role(role(3))).await.unwrap();
    env.store.add_orphan(Orphan::Role(role(4))).await.unwrap();
    env.store
        .remove_orphan(Orphan::Role(role(4)))
        .await
        .unwrap();
    env.store
        .set_managed_channel(channel(40), true)
        .await
        .unwrap();
    env.store
        .set_managed_channel(channel(41), true)
        .await
        .unwrap();
    env.store
        .set_managed_channel(channel(41), false)
        .await
        .unwrap();
    env.store
        .set_topic_time(at("2026-03-01T12:00:00Z"))
        .await
        .unwrap();

    for (set, members) in [
        ("discord_channel:500:removed_users", vec!["5"]),
        ("discord_channel:500:removed_hosts", vec!["6"]),
        ("orphaned_discord_channels", vec!["1"]),
        ("orphaned_discord_voice_channels", vec!["2"]),
        ("orphaned_discord_roles", vec!["3"]),
        ("managed_discord_channels", vec!["40"]),
    ] {
        assert_eq!(env.redis_type(set).await, "set", "{set}");
        assert_eq!(env.members(set).await, members, "{set}");
    }
    assert_eq!(
        env.redis_type("user_topic_voice_channel_topic_time").await,
        "string"
    );
    assert_eq!(
        env.store.topic_time().await.unwrap(),
        Some(at("2026-03-01T12:00:00Z"))
    );
    assert_eq!(
        env.store.removed(c, Removal::User).await.unwrap(),
        vec![user(5)]
    );
    assert_eq!(
        env.store.orphans().await.unwrap(),
        vec![
            Orphan::Channel(channel(1)),
            Orphan::VoiceChannel(channel(2)),
            Orphan::Role(role(3))
        ]
    );
    assert_eq!(
        env.store.managed_channels().await.unwrap(),
        vec![channel(40)]
    );
    assert_eq!(env.keys().await.len(), 7);
}

#[tokio::test]
async fn racing_syncs_put_an_event_in_exactly_one_series() {
    let env = env().await;
    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let store = env.store.clone();
            tokio::spawn(async move { store.upsert_event(&upsert("e1", &format!("s{n}"))).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(RepoError::EventInOtherSeries { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }

    assert_eq!(won, 1);
    let series = env.get("meetup_event:e1:event_series").await.unwrap();
    assert_eq!(env.members("event_series").await, vec![series.clone()]);
    assert_eq!(
        env.members(&format!("event_series:{series}:meetup_events"))
            .await,
        vec!["e1"]
    );
    assert_eq!(env.redis.scan("event_series:*").await.unwrap().len(), 1);
    assert!(
        campaigns::check::check(&env.redis)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deleting_an_unknown_event_changes_nothing_but_the_index() {
    let env = env().await;
    env.store.upsert_event(&upsert("e1", "s1")).await.unwrap();
    let before = env.snapshot().await;

    let deletion = env.store.delete_event(&event_id("nope")).await.unwrap();

    assert_eq!(deletion.series, None);
    assert!(!deletion.series_removed);
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn only_game_channels_get_an_expiration() {
    let env = env().await;

    let err = env
        .store
        .set_expiration(channel(9), at("2026-03-01T18:00:00Z"))
        .await
        .unwrap_err();

    assert!(
        matches!(err, RepoError::UnknownChannel(c) if c == channel(9)),
        "{err:?}"
    );
    assert!(env.keys().await.is_empty());
}
