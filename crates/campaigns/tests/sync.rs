//! The Meetup sync (step 1, Meetup → Redis) against a real `redis-server` and the real
//! fake Meetup over loopback, through the production `MeetupClient`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use campaigns::repo::{EventUpsert, MeetupEvent, Tokens};
use campaigns::{CampaignsConfig, SeriesType, SyncError};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use common::{Env, at, channel, event_id, meetup, series_id, world_env};
use meetup::fake::{FakeMeetup, NewEvent};
use meetup::{EventId, EventStatus, EventType, GroupUrlname, MeetupClient, MemberId, RsvpStatus};
use testkit::Logs;

/// "Now" for every sync: the window is `[NOW, NOW + 60 days)`.
const NOW: &str = "2026-01-01T12:00:00Z";

struct World {
    env: Env,
    fake: FakeMeetup,
    client: MeetupClient,
    config: CampaignsConfig,
    group: GroupUrlname,
    organiser: MemberId,
    now: DateTime<Utc>,
}

impl World {
    async fn sync(&self) -> Result<campaigns::SyncReport, SyncError> {
        campaigns::sync_once(&self.env.store, &self.client, &self.config, self.now).await
    }

    fn member(&self, name: &str) -> (MemberId, String) {
        let id = self.fake.add_member(name);
        let text = id.as_str().to_owned();
        (id, text)
    }

    fn event(&self, title: &str, days: i64, description: &str, hosts: &[&MemberId]) -> EventId {
        let mut e = NewEvent::new(&self.group, title, day(days));
        e.description = description.to_owned();
        e.hosts = hosts.iter().map(|h| (*h).clone()).collect();
        self.fake.add_event(e).unwrap()
    }

    fn rsvp(&self, event: &EventId, member: &MemberId, status: RsvpStatus) {
        self.fake.add_rsvp(event, member, status, 0).unwrap();
    }

    /// Gives the organiser fresh tokens on the fake and stores them as Tavern would.
    async fn authorise(&self) -> meetup::Tokens {
        let tokens = self.fake.issue_tokens(&self.organiser).unwrap();
        self.env
            .store
            .set_organizer_tokens(
                &Tokens {
                    access: tokens.access_token.clone(),
                    refresh: tokens.refresh_token.clone(),
                },
                at("2026-01-03T00:00:00Z"),
            )
            .await
            .unwrap();
        tokens
    }
}

/// Day `n` at 19:00 in the group's offset (+01:00), i.e. 18:00 UTC.
fn day(n: i64) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-01-01T19:00:00+01:00").unwrap() + TimeDelta::days(n)
}

/// How the sync stores day `n`: RFC 3339 in UTC.
fn stored_day(n: i64) -> String {
    day(n).with_timezone(&Utc).to_rfc3339()
}

async fn world() -> World {
    let env = world_env().await;
    let common::MeetupSide {
        fake,
        group,
        organiser,
        client,
        config,
    } = common::meetup_side().await;
    World {
        env,
        fake,
        client,
        config,
        group,
        organiser,
        now: at(NOW),
    }
}

/// The ids of the standard community.
struct Community {
    adventure: String,
    session1: String,
    session2: String,
    session3: String,
    untracked: String,
    malformed: String,
    hosts: Vec<String>,
    players: Vec<String>,
    gm: String,
    campaign_players: Vec<String>,
}

/// A new adventure (2 hosts, 3 YES RSVPs and 1 NO), a campaign of three sessions
/// (`[new campaign] [online]`, then two `[campaign <first>]`), an untracked event, an
/// event with a malformed shortcode and an adventure beyond the 60-day horizon.
fn community(w: &World) -> Community {
    let (h1, h1s) = w.member("Hana Host");
    let (h2, h2s) = w.member("Hugo Host");
    let players: Vec<(MemberId, String)> =
        ["Pia", "Paul", "Pam"].iter().map(|n| w.member(n)).collect();
    let (no, _) = w.member("Nora Nope");
    let (gm, gms) = w.member("Gabriel GM");
    let (c1, c1s) = w.member("Cara");
    let (c2, c2s) = w.member("Carl");
    let (late, _) = w.member("Lena Later");

    let adventure = w.event(
        "Tomb of Horrors",
        3,
        "A deadly one-shot.\n[new adventure]",
        &[&h1, &h2],
    );
    for (p, _) in &players {
        w.rsvp(&adventure, p, RsvpStatus::Yes);
    }
    w.rsvp(&adventure, &no, RsvpStatus::No);

    let mut first = NewEvent::new(&w.group, "Curse of Strahd: Session 1", day(5));
    first.description = "[new campaign] [online] Bring a character of level 3.".into();
    first.hosts = vec![gm.clone()];
    first.event_type = EventType::Online;
    let session1 = w.fake.add_event(first).unwrap();
    w.rsvp(&session1, &c1, RsvpStatus::Yes);
    w.rsvp(&session1, &c2, RsvpStatus::Yes);
    let join = format!("[campaign {}]", session1.as_str());
    let session2 = w.event("Curse of Strahd: Session 2", 12, &join, &[&gm]);
    // Only the next session's RSVPs are stored: this one must not show up.
    w.rsvp(&session2, &late, RsvpStatus::Yes);
    let session3 = w.event("Curse of Strahd: Session 3", 19, &join, &[&gm]);

    let untracked = w.event("Board game night", 4, "Bring snacks! [online]", &[&h1]);
    let malformed = w.event("Oops", 6, "[campaign 12-34] see you there", &[&h1]);
    w.event("Far future", 90, "[new adventure]", &[&h1]);

    Community {
        adventure: adventure.as_str().into(),
        session1: session1.as_str().into(),
        session2: session2.as_str().into(),
        session3: session3.as_str().into(),
        untracked: untracked.as_str().into(),
        malformed: malformed.as_str().into(),
        hosts: sorted(vec![h1s, h2s]),
        players: sorted(players.into_iter().map(|(_, s)| s).collect()),
        gm: gms,
        campaign_players: sorted(vec![c1s, c2s]),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

const TOKEN_KEYS: [&str; 3] = [
    "meetup_access_token",
    "meetup_access_token_refresh_time",
    "meetup_refresh_token",
];

#[tokio::test]
async fn one_sync_stores_the_tracked_events_as_the_seed_lays_them_out() {
    let w = world().await;
    let c = community(&w);
    w.authorise().await;

    let report = w.sync().await.unwrap();

    assert_eq!(report.groups, 1);
    assert!(report.failed_groups.is_empty());
    assert_eq!(report.seen, 6, "the far-future event is outside the window");
    assert_eq!(report.untracked, 1);
    assert_eq!(report.skipped, 1);
    assert_eq!(report.stored, 4);
    assert_eq!(report.rsvps_fetched, 2, "one next event per series");
    assert_eq!(report.deleted, 0);
    assert!(!report.token_refreshed);

    let (a, s1, s2, s3) = (&c.adventure, &c.session1, &c.session2, &c.session3);
    let mut expected_keys: Vec<String> = vec![
        "event_series".into(),
        format!("event_series:{a}:meetup_events"),
        format!("event_series:{a}:type"),
        format!("event_series:{s1}:is_online"),
        format!("event_series:{s1}:meetup_events"),
        format!("event_series:{s1}:type"),
        "meetup_events".into(),
    ];
    for e in [a, s1, s2, s3] {
        expected_keys.push(format!("meetup_event:{e}"));
        expected_keys.push(format!("meetup_event:{e}:event_series"));
        expected_keys.push(format!("meetup_event:{e}:meetup_hosts"));
    }
    expected_keys.push(format!("meetup_event:{a}:meetup_users"));
    expected_keys.push(format!("meetup_event:{s1}:meetup_users"));
    expected_keys.extend(TOKEN_KEYS.iter().map(|k| (*k).to_owned()));
    // Tavern's own: the names of the hosts of tracked events and of the players listed
    // (not Nora's NO, not Lena's RSVP to a session whose list was not read).
    let named: Vec<&String> = c
        .hosts
        .iter()
        .chain([&c.gm])
        .chain(&c.players)
        .chain(&c.campaign_players)
        .collect();
    expected_keys.extend(
        named
            .iter()
            .map(|m| format!("tavern:campaigns:meetup_name:{m}")),
    );
    expected_keys.sort();
    assert_eq!(w.env.keys().await, expected_keys);
    let names = w
        .env
        .store
        .meetup_names(
            &named
                .iter()
                .map(|m| meetup(m.parse().unwrap()))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let mut names: Vec<String> = names.into_values().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Cara",
            "Carl",
            "Gabriel GM",
            "Hana Host",
            "Hugo Host",
            "Pam",
            "Paul",
            "Pia"
        ]
    );

    // Types, per the seed.
    for key in &expected_keys {
        let expected = if key.ends_with("meetup_events")
            || key.ends_with("meetup_hosts")
            || key.ends_with("meetup_users")
            || key == "event_series"
        {
            "set"
        } else if key.starts_with("meetup_event:") && key.matches(':').count() == 1 {
            "hash"
        } else {
            "string"
        };
        assert_eq!(w.env.redis_type(key).await, expected, "{key}");
    }

    // The tracked sets.
    assert_eq!(
        w.env.members("meetup_events").await,
        sorted(vec![a.clone(), s1.clone(), s2.clone(), s3.clone()])
    );
    assert_eq!(
        w.env.members("event_series").await,
        sorted(vec![a.clone(), s1.clone()])
    );
    assert!(!w.env.members("meetup_events").await.contains(&c.untracked));
    assert!(!w.env.members("meetup_events").await.contains(&c.malformed));

    // The adventure: hash, hosts, YES RSVPs only, its own series.
    assert_eq!(
        w.env.hash(&format!("meetup_event:{a}")).await,
        pairs(&[
            ("name", "Tomb of Horrors"),
            ("time", &stored_day(3)),
            (
                "link",
                &format!("https://www.meetup.com/dragons/events/{a}/")
            ),
            ("urlname", "dragons"),
            ("is_online", "false"),
        ])
    );
    assert_eq!(stored_day(3), "2026-01-04T18:00:00+00:00");
    assert_eq!(
        w.env
            .members(&format!("meetup_event:{a}:meetup_hosts"))
            .await,
        c.hosts
    );
    assert_eq!(
        w.env
            .members(&format!("meetup_event:{a}:meetup_users"))
            .await,
        c.players,
        "the NO RSVP is not stored"
    );
    assert_eq!(
        w.env.get(&format!("meetup_event:{a}:event_series")).await,
        Some(a.clone())
    );
    assert_eq!(
        w.env
            .members(&format!("event_series:{a}:meetup_events"))
            .await,
        vec![a.clone()]
    );
    assert_eq!(
        w.env
            .get(&format!("event_series:{a}:type"))
            .await
            .as_deref(),
        Some("adventure")
    );

    // The campaign: three sessions in the first one's series, both directions.
    assert_eq!(
        w.env.hash(&format!("meetup_event:{s1}")).await,
        pairs(&[
            ("name", "Curse of Strahd: Session 1"),
            ("time", &stored_day(5)),
            (
                "link",
                &format!("https://www.meetup.com/dragons/events/{s1}/")
            ),
            ("urlname", "dragons"),
            ("is_online", "true"),
        ])
    );
    assert_eq!(
        w.env
            .members(&format!("event_series:{s1}:meetup_events"))
            .await,
        sorted(vec![s1.clone(), s2.clone(), s3.clone()])
    );
    for (session, n) in [(s1, 5), (s2, 12), (s3, 19)] {
        assert_eq!(
            w.env
                .get(&format!("meetup_event:{session}:event_series"))
                .await,
            Some(s1.clone()),
            "{session}"
        );
        assert_eq!(
            w.env
                .members(&format!("meetup_event:{session}:meetup_hosts"))
                .await,
            vec![c.gm.clone()]
        );
        let hash = w.env.hash(&format!("meetup_event:{session}")).await;
        assert!(hash.contains(&("time".into(), stored_day(n))), "{hash:?}");
    }
    assert_eq!(
        w.env
            .members(&format!("meetup_event:{s1}:meetup_users"))
            .await,
        c.campaign_players
    );
    assert_eq!(
        w.env
            .get(&format!("event_series:{s1}:type"))
            .await
            .as_deref(),
        Some("campaign")
    );
    assert_eq!(
        w.env
            .get(&format!("event_series:{s1}:is_online"))
            .await
            .as_deref(),
        Some("true")
    );

    // Read back through the repositories too.
    let stored = w.env.store.event(&event_id(s2)).await.unwrap().unwrap();
    assert_eq!(stored.urlname, "dragons");
    assert_eq!(stored.is_online, Some(false));
    assert!(
        w.env
            .store
            .event_users(&event_id(s2))
            .await
            .unwrap()
            .is_empty()
    );

    // And `tavern check` finds nothing.
    let check = campaigns::check::campaigns_check(w.env.redis.clone());
    let found = check.run().await.unwrap();
    assert!(found.is_empty(), "{found:#?}");
}

#[tokio::test]
async fn a_second_sync_without_changes_leaves_redis_identical() {
    let w = world().await;
    community(&w);
    w.authorise().await;
    w.sync().await.unwrap();
    let first = w.env.snapshot().await;

    let report = w.sync().await.unwrap();

    assert_eq!(w.env.snapshot().await, first);
    assert_eq!((report.stored, report.deleted), (4, 0));
}

#[tokio::test]
async fn a_cancelled_session_goes_with_its_relations_and_nothing_else() {
    let w = world().await;
    let c = community(&w);
    w.authorise().await;
    w.sync().await.unwrap();
    let before = w.env.snapshot().await;

    w.fake
        .set_event_status(
            &EventId::parse(&c.session2).unwrap(),
            EventStatus::Cancelled,
        )
        .unwrap();
    let report = w.sync().await.unwrap();

    assert_eq!((report.deleted, report.series_removed), (1, 0));
    let s2 = &c.session2;
    let expected: Vec<(String, String, String)> = before
        .into_iter()
        .filter(|(key, _, _)| !key.starts_with(&format!("meetup_event:{s2}")))
        .map(|(key, kind, value)| {
            if key == "meetup_events" || key.ends_with(":meetup_events") {
                let rest: Vec<&str> = value.split(',').filter(|v| v != s2).collect();
                (key, kind, rest.join(","))
            } else {
                (key, kind, value)
            }
        })
        .collect();
    assert_eq!(w.env.snapshot().await, expected);
    assert_eq!(
        w.env
            .get(&format!("event_series:{}:type", c.session1))
            .await
            .as_deref(),
        Some("campaign"),
        "two sessions left: still a campaign"
    );
    let check = campaigns::check::campaigns_check(w.env.redis.clone());
    assert!(check.run().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_cancelled_adventure_takes_its_series_unless_it_has_a_channel() {
    let w = world().await;
    let (host, _) = w.member("Hana Host");
    let lone = w.event("Lone one-shot", 3, "[new adventure]", &[&host]);
    let kept = w.event("One-shot with a channel", 4, "[new adventure]", &[&host]);
    w.authorise().await;
    w.sync().await.unwrap();
    let kept_series = series_id(kept.as_str());
    w.env
        .store
        .register_channel(&kept_series, channel(5001))
        .await
        .unwrap();

    w.fake
        .set_event_status(&lone, EventStatus::Cancelled)
        .unwrap();
    w.fake
        .set_event_status(&kept, EventStatus::CancelledPerm)
        .unwrap();
    // Both tracked events gone: more than half, so the first run only holds them.
    assert_eq!(w.sync().await.unwrap().held, 2);
    let report = w.sync().await.unwrap();

    assert_eq!((report.deleted, report.series_removed), (2, 1));
    assert!(w.env.members("meetup_events").await.is_empty());
    assert_eq!(
        w.env.members("event_series").await,
        vec![kept.as_str().to_owned()],
        "the series with a channel stays for the lifecycle"
    );
    let lone_keys = w
        .env
        .redis
        .scan(&format!("*{}*", lone.as_str()))
        .await
        .unwrap();
    assert!(lone_keys.is_empty(), "{lone_keys:?}");
    assert!(
        w.env
            .store
            .series_events(&kept_series)
            .await
            .unwrap()
            .is_empty()
    );
    let check = campaigns::check::campaigns_check(w.env.redis.clone());
    assert!(check.run().await.unwrap().is_empty());
}

/// Where a run records the deletions it holds back for a confirming run.
const PENDING: &str = campaigns::schema::PENDING_DELETIONS;

fn cancel(w: &World, ids: &[&String]) {
    for id in ids {
        w.fake
            .set_event_status(&EventId::parse(id).unwrap(), EventStatus::Cancelled)
            .unwrap();
    }
}

#[tokio::test]
async fn a_run_that_would_delete_most_tracked_events_waits_for_a_second_run_to_confirm() {
    let w = world().await;
    let c = community(&w);
    w.authorise().await;
    w.sync().await.unwrap();
    let before = w.env.snapshot().await;
    // Three of the four tracked events in the window are gone from Meetup's answer.
    cancel(&w, &[&c.adventure, &c.session2, &c.session3]);
    let logs = Logs::default();

    let first = {
        let _guard = logs.capture();
        w.sync().await.unwrap()
    };

    assert_eq!((first.deleted, first.held), (0, 3), "{first:?}");
    let kept: Vec<(String, String, String)> = w
        .env
        .snapshot()
        .await
        .into_iter()
        .filter(|(key, _, _)| key != PENDING)
        .collect();
    assert_eq!(kept, before, "the first run deletes nothing");
    let held = sorted(vec![
        c.adventure.clone(),
        c.session2.clone(),
        c.session3.clone(),
    ]);
    assert_eq!(
        w.env.members(PENDING).await,
        held,
        "the pending deletion is recorded"
    );
    let warning: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("WARN") && l.contains("3 of the 4 tracked events"))
        .collect();
    assert_eq!(warning.len(), 1, "{:#?}", logs.lines());

    let second = w.sync().await.unwrap();

    assert_eq!(
        (second.deleted, second.series_removed, second.held),
        (3, 1, 0),
        "{second:?}"
    );
    assert_eq!(
        w.env.members("meetup_events").await,
        vec![c.session1.clone()]
    );
    assert!(w.env.members(PENDING).await.is_empty());
    let check = campaigns::check::campaigns_check(w.env.redis.clone());
    assert!(check.run().await.unwrap().is_empty());
}

#[tokio::test]
async fn held_deletions_are_forgotten_when_the_events_come_back() {
    let w = world().await;
    let c = community(&w);
    w.authorise().await;
    w.sync().await.unwrap();
    let before = w.env.snapshot().await;
    cancel(&w, &[&c.adventure, &c.session2, &c.session3]);
    assert_eq!(w.sync().await.unwrap().deleted, 0);

    // Meetup lists them again (a glitch on its side): nothing is deleted, nothing stays
    // pending, and a later disappearance needs its own confirmation again.
    for id in [&c.adventure, &c.session2, &c.session3] {
        w.fake
            .set_event_status(&EventId::parse(id).unwrap(), EventStatus::Active)
            .unwrap();
    }
    let report = w.sync().await.unwrap();

    assert_eq!(report.deleted, 0);
    assert_eq!(w.env.snapshot().await, before);
    cancel(&w, &[&c.adventure, &c.session2, &c.session3]);
    assert_eq!(w.sync().await.unwrap().deleted, 0);
    assert_eq!(w.env.members(PENDING).await.len(), 3);
}

#[tokio::test]
async fn up_to_half_of_the_tracked_events_are_deleted_in_one_run() {
    let w = world().await;
    let c = community(&w);
    w.authorise().await;
    w.sync().await.unwrap();
    cancel(&w, &[&c.session2, &c.session3]);

    let report = w.sync().await.unwrap();

    assert_eq!(report.deleted, 2, "two of four is not more than half");
    assert!(w.env.members(PENDING).await.is_empty());
}

/// Stores an event as an earlier sync would have.
async fn stored_event(w: &World, id: &str, series: &str, urlname: &str, time: &str) {
    w.env
        .store
        .upsert_event(&EventUpsert {
            event: MeetupEvent {
                id: event_id(id),
                name: format!("Stored {id}"),
                time: at(time),
                link: format!("https://www.meetup.com/{urlname}/events/{id}/"),
                urlname: urlname.into(),
                is_online: Some(false),
            },
            series: series_id(series),
            series_type: Some(SeriesType::Adventure),
            series_online: false,
            hosts: vec![meetup(1)],
            rsvps: Some(vec![meetup(2)]),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn only_events_meetup_was_asked_about_are_deleted() {
    let w = world().await;
    let (host, _) = w.member("Hana Host");
    // On Meetup: an event whose shortcode is now malformed, and one whose shortcode was
    // removed; both were tracked before.
    let malformed = w.event("Typo", 3, "[new adventur] [campaign x-y]", &[&host]);
    let dropped = w.event("No longer a game", 4, "just a meetup", &[&host]);
    // And one still listed as it was, so that the two deletions are not more than half
    // of the events asked about (which would wait for a confirming run).
    let still = w.event("Still on", 6, "[new adventure]", &[&host]);
    w.authorise().await;
    stored_event(
        &w,
        still.as_str(),
        still.as_str(),
        "dragons",
        "2026-01-07T18:00:00Z",
    )
    .await;
    stored_event(
        &w,
        malformed.as_str(),
        malformed.as_str(),
        "dragons",
        "2026-01-04T18:00:00Z",
    )
    .await;
    stored_event(
        &w,
        dropped.as_str(),
        dropped.as_str(),
        "dragons",
        "2026-01-05T18:00:00Z",
    )
    .await;
    // Only in Redis: a past session (history), one beyond the horizon, one of a group
    // that is not synced, and one in the window that Meetup no longer has.
    stored_event(&w, "900", "900", "dragons", "2025-12-30T18:00:00Z").await;
    stored_event(&w, "901", "901", "dragons", "2026-03-15T18:00:00Z").await;
    stored_event(&w, "902", "902", "goblins", "2026-01-10T18:00:00Z").await;
    stored_event(&w, "903", "903", "dragons", "2026-01-10T18:00:00Z").await;

    let report = w.sync().await.unwrap();

    assert_eq!(report.skipped, 1);
    assert_eq!(report.deleted, 2);
    assert_eq!(
        w.env.members("meetup_events").await,
        sorted(vec![
            malformed.as_str().into(),
            still.as_str().into(),
            "900".into(),
            "901".into(),
            "902".into()
        ])
    );
    assert_eq!(
        w.env
            .members(&format!("meetup_event:{}:meetup_users", malformed.as_str()))
            .await,
        vec!["2".to_owned()],
        "a skipped event keeps what was stored"
    );
    assert!(w.env.hash("meetup_event:903").await.is_empty());
    assert!(
        w.env
            .hash(&format!("meetup_event:{}", dropped.as_str()))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn campaign_shortcodes_join_stored_history_and_unknown_targets_are_skipped() {
    let w = world().await;
    let (gm, gms) = w.member("Gabriel GM");
    w.authorise().await;
    // Session 1 happened last week: only Redis has it.
    stored_event(&w, "900", "900", "dragons", "2025-12-25T18:00:00Z").await;
    // Its series' first event was cancelled long ago; the series lives on (a channel).
    w.env
        .store
        .upsert_event(&EventUpsert {
            series: series_id("800"),
            ..upsert_like("801", "2025-12-20T18:00:00Z")
        })
        .await
        .unwrap();
    let session2 = w.event("Session 2", 3, "[campaign 900]", &[&gm]);
    let orphan_series = w.event("Session 2 of 800", 4, "[campaign 800]", &[&gm]);
    let unknown = w.event("Lost", 5, "[campaign 777]", &[&gm]);
    let chained = w.event(
        "Session 3",
        10,
        &format!("[campaign {}]", session2.as_str()),
        &[&gm],
    );

    let report = w.sync().await.unwrap();

    assert_eq!(report.skipped, 1);
    assert_eq!(
        w.env.members("event_series:900:meetup_events").await,
        sorted(vec![
            "900".into(),
            session2.as_str().into(),
            chained.as_str().into()
        ])
    );
    assert_eq!(
        w.env.get("event_series:900:type").await.as_deref(),
        Some("campaign"),
        "an adventure with a second session is a campaign"
    );
    assert_eq!(
        w.env
            .get(&format!(
                "meetup_event:{}:event_series",
                orphan_series.as_str()
            ))
            .await
            .as_deref(),
        Some("800")
    );
    assert!(
        w.env
            .hash(&format!("meetup_event:{}", unknown.as_str()))
            .await
            .is_empty()
    );
    assert_eq!(
        w.env
            .members(&format!("meetup_event:{}:meetup_hosts", session2.as_str()))
            .await,
        vec![gms]
    );
}

fn upsert_like(id: &str, time: &str) -> EventUpsert {
    EventUpsert {
        event: MeetupEvent {
            id: event_id(id),
            name: "Old".into(),
            time: at(time),
            link: "https://www.meetup.com/dragons/events/x/".into(),
            urlname: "dragons".into(),
            is_online: None,
        },
        series: series_id(id),
        series_type: Some(SeriesType::Campaign),
        series_online: false,
        hosts: vec![],
        rsvps: None,
    }
}

#[tokio::test]
async fn without_an_organiser_token_nothing_is_written() {
    let w = world().await;
    community(&w);

    let error = w.sync().await.unwrap_err();

    assert!(matches!(error, SyncError::NoOrganizerToken), "{error:?}");
    assert_eq!(
        error.to_string(),
        "no organiser token: an organiser must authorise Tavern"
    );
    assert!(w.env.keys().await.is_empty());
    assert!(w.fake.graphql_requests().is_empty());
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_stored() {
    let w = world().await;
    let c = community(&w);
    let old = w.authorise().await;
    w.fake.revoke_access_token(&old.access_token);

    let report = w.sync().await.unwrap();

    assert!(report.token_refreshed);
    assert_eq!(report.stored, 4);
    let grants = w.fake.token_requests();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(
        (grants[0].grant_type.as_str(), grants[0].status),
        ("refresh_token", 200)
    );
    let access = w.env.get("meetup_access_token").await.unwrap();
    let refresh = w.env.get("meetup_refresh_token").await.unwrap();
    assert_ne!(access, old.access_token.expose_str());
    assert_ne!(refresh, old.refresh_token.expose_str());
    assert!(
        w.fake
            .is_access_token_valid(&meetup::AccessToken::from(access))
    );
    assert!(
        w.fake
            .is_refresh_token_valid(&meetup::RefreshToken::from(refresh))
    );
    assert!(!w.fake.is_refresh_token_valid(&old.refresh_token));
    assert_eq!(
        w.env
            .get("meetup_access_token_refresh_time")
            .await
            .as_deref(),
        Some("2026-01-01T12:45:00+00:00"),
        "next refresh a quarter of an hour before the new access token's hour ends"
    );
    assert_eq!(
        w.env.members("meetup_events").await.len(),
        4,
        "{:?}",
        c.adventure
    );
}

#[tokio::test]
async fn a_refused_refresh_is_a_clear_error_and_writes_only_the_refusal() {
    let w = world().await;
    community(&w);
    let old = w.authorise().await;
    w.fake.revoke_access_token(&old.access_token);
    w.env.set("meetup_refresh_token", "not-a-valid-token").await;
    let before = w.env.snapshot().await;

    let error = w.sync().await.unwrap_err();

    assert!(matches!(error, SyncError::RefreshRefused(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("an organiser must authorise Tavern again"),
        "{error}"
    );
    // Only the refusal is recorded, for the organiser page and the organisers' alert.
    let mut after = w.env.snapshot().await;
    after.retain(|(key, _, _)| key != campaigns::schema::AUTHORISATION_REFUSED);
    assert_eq!(after, before);
    assert_eq!(
        w.env.store.authorisation_refused().await.unwrap(),
        Some(w.now)
    );
}

#[tokio::test]
async fn a_group_meetup_does_not_know_is_reported_and_the_others_are_synced() {
    let mut w = world().await;
    let (host, _) = w.member("Hana Host");
    w.event("One-shot", 3, "[new adventure]", &[&host]);
    w.authorise().await;
    stored_event(&w, "903", "903", "ghosts", "2026-01-10T18:00:00Z").await;
    w.config.groups.push(GroupUrlname::parse("ghosts").unwrap());

    let report = w.sync().await.unwrap();

    assert_eq!(report.groups, 1);
    assert_eq!(report.failed_groups.len(), 1);
    assert_eq!(report.failed_groups[0].group.as_str(), "ghosts");
    assert_eq!(report.stored, 1);
    assert!(
        w.env
            .members("meetup_events")
            .await
            .contains(&"903".to_owned()),
        "an unanswered group's events stay"
    );
}

#[tokio::test]
async fn the_feature_schedules_the_sync_only_with_groups() {
    let w = world().await;
    let feature = campaigns::feature(w.env.ctx(), Some(w.config.clone()));
    // The sync, and the organiser token's refresh (the web flows' job).
    assert_eq!(feature.jobs.len(), 2);
    assert_eq!(feature.jobs[0].name(), "campaigns-meetup-sync");
    assert_eq!(feature.jobs[1].name(), "campaigns-meetup-token-refresh");
    assert_eq!(feature.jobs[0].period(), Duration::from_secs(15 * 60));
    assert!(
        feature.jobs[0].runs_at_startup(),
        "the first sync runs right after start-up, not a period later"
    );

    let mut no_groups = w.config.clone();
    no_groups.groups.clear();
    assert!(
        campaigns::feature(w.env.ctx(), Some(no_groups))
            .jobs
            .is_empty()
    );
    assert!(campaigns::feature(w.env.ctx(), None).jobs.is_empty());
}

#[tokio::test]
async fn the_job_syncs_and_waits_quietly_for_an_organiser() {
    let w = world().await;
    // The job's window starts at the world's clock: an event a day later is in it.
    let (host, _) = w.member("Hana Host");
    let mut e = NewEvent::new(
        &w.group,
        "Tomorrow",
        (w.env.ctx().now() + TimeDelta::days(1)).fixed_offset(),
    );
    e.description = "[new adventure]".into();
    e.hosts = vec![host];
    let id = w.fake.add_event(e).unwrap();
    let feature = campaigns::feature(w.env.ctx(), Some(w.config.clone()));
    let job = &feature.jobs[0];

    job.run_now().await.expect("no token is not a job failure");
    assert!(w.env.keys().await.is_empty());

    w.authorise().await;
    job.run_now().await.unwrap();
    assert_eq!(
        w.env.members("meetup_events").await,
        vec![id.as_str().to_owned()]
    );
}

#[tokio::test]
async fn refreshed_tokens_replace_only_the_pair_they_were_refreshed_from() {
    let w = world().await;
    w.authorise().await;
    let stored = w.env.store.organizer_tokens().await.unwrap().unwrap();
    let fresh = Tokens {
        access: meetup::AccessToken::from("access-2"),
        refresh: meetup::RefreshToken::from("refresh-2"),
    };
    let next = at("2026-01-05T00:00:00Z");

    let stale = meetup::RefreshToken::from("some-older-refresh-token");
    assert!(
        !w.env
            .store
            .replace_organizer_tokens(&stale, &fresh, next)
            .await
            .unwrap()
    );
    assert_eq!(
        w.env.store.organizer_tokens().await.unwrap().unwrap(),
        stored,
        "a newer pair is left alone"
    );

    assert!(
        w.env
            .store
            .replace_organizer_tokens(&stored.tokens.refresh, &fresh, next)
            .await
            .unwrap()
    );
    let now_stored = w.env.store.organizer_tokens().await.unwrap().unwrap();
    assert_eq!(now_stored.tokens, fresh);
    assert_eq!(now_stored.next_refresh, Some(next));
}

#[tokio::test]
async fn a_run_logs_one_summary_and_a_warning_naming_each_skipped_event() {
    let w = world().await;
    let c = community(&w);
    w.authorise().await;
    let logs = Logs::default();
    let _guard = logs.capture();

    w.sync().await.unwrap();

    assert_eq!(logs.count("Meetup sync done"), 1, "{:#?}", logs.lines());
    let summary = logs
        .lines()
        .into_iter()
        .find(|l| l.contains("Meetup sync done"))
        .unwrap();
    assert!(summary.contains("INFO"), "{summary}");
    assert!(
        summary.contains("stored=4") && summary.contains("deleted=0"),
        "{summary}"
    );
    let skipped: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("skipped a Meetup event"))
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert!(skipped[0].contains("WARN"), "{}", skipped[0]);
    assert!(skipped[0].contains(&c.malformed), "{}", skipped[0]);
    assert!(skipped[0].contains("[campaign 12-34]"), "{}", skipped[0]);
}

#[tokio::test]
async fn no_organiser_token_is_logged_once_per_run() {
    let w = world().await;
    let logs = Logs::default();
    let _guard = logs.capture();

    let _ = w.sync().await.unwrap_err();

    assert_eq!(
        logs.count("no organiser token: an organiser must authorise Tavern"),
        1,
        "{:#?}",
        logs.lines()
    );
    assert_eq!(logs.count("Meetup sync done"), 0);
}

/// An RSVP list shorter than Meetup's count for it still names players who said yes:
/// they are added, nobody is removed, and the run reports the event.
#[tokio::test]
async fn an_incomplete_rsvp_list_adds_the_players_it_lists_and_removes_nobody() {
    let w = world().await;
    let (host, _) = w.member("Hana Host");
    let (alice, alice_id) = w.member("Alice");
    let (bob, bob_id) = w.member("Bob");
    let first = w.event("One-shot", 3, "[new adventure]", &[&host]);
    w.rsvp(&first, &alice, RsvpStatus::Yes);
    w.rsvp(&first, &bob, RsvpStatus::Yes);
    w.authorise().await;
    w.sync().await.unwrap();
    let event = campaigns::MeetupEventId::parse(first.as_str()).unwrap();
    let ids = |users: Vec<campaigns::MeetupUserId>| {
        let mut ids: Vec<String> = users.into_iter().map(|u| u.get().to_string()).collect();
        ids.sort();
        ids
    };
    let mut before = vec![alice_id.clone(), bob_id.clone()];
    before.sort();
    assert_eq!(ids(w.env.store.event_users(&event).await.unwrap()), before);

    // Alice withdraws, Carol and Dan say yes; Meetup lists two of the three it counts
    // (Bob and Carol), Dan hidden.
    let (carol, carol_id) = w.member("Carol");
    let (dan, _) = w.member("Dan");
    w.fake.change_rsvp(&first, &alice, RsvpStatus::No).unwrap();
    w.rsvp(&first, &carol, RsvpStatus::Yes);
    w.rsvp(&first, &dan, RsvpStatus::Yes);
    w.fake.cut_rsvp_lists(Some(2));

    let report = w.sync().await.unwrap();

    assert_eq!(report.incomplete_rsvps, vec![event.clone()]);
    assert_eq!(report.held_rsvps, 0);
    let mut after = vec![alice_id, bob_id, carol_id];
    after.sort();
    assert_eq!(
        ids(w.env.store.event_users(&event).await.unwrap()),
        after,
        "Carol is added; Alice, whom the short list may only hide, stays"
    );
}

/// Two parties refreshing at once (Meetup rotates refresh tokens): a sync that finds
/// its token refused while another refresh holds the lock waits for it and uses the
/// pair it stores, instead of spending the spent refresh token and taking Meetup's
/// `invalid_grant` for a refused authorisation.
#[tokio::test]
async fn a_sync_racing_another_refresh_uses_its_tokens_and_records_no_refusal() {
    let w = world().await;
    community(&w);
    let old = w.authorise().await;
    w.fake.revoke_access_token(&old.access_token);
    // Another party (the refresh job on another replica) holds the lock and refreshes.
    let lock = w
        .env
        .store
        .try_lock_token_refresh()
        .await
        .unwrap()
        .expect("the lock is free");
    let theirs = w
        .client
        .refresh(
            &w.config.client_id,
            &w.config.client_secret,
            &old.refresh_token,
        )
        .await
        .unwrap();
    assert!(
        w.env
            .store
            .try_lock_token_refresh()
            .await
            .unwrap()
            .is_none(),
        "one holder at a time"
    );

    let sync = tokio::spawn({
        let (store, client, config, now) = (
            w.env.store.clone(),
            w.client.clone(),
            w.config.clone(),
            w.now,
        );
        async move { campaigns::sync_once(&store, &client, &config, now).await }
    });
    // The sync found its token refused (and now waits for the lock).
    testkit::eventually("Meetup refuses the sync's token", || async {
        w.fake
            .graphql_requests()
            .iter()
            .any(|r| !r.authorized)
            .then_some(())
    })
    .await;
    // The refresh job, due meanwhile, leaves the token to them.
    let job = campaigns::web::organiser::refresh_if_due(
        &w.env.store,
        &w.client,
        &w.config.client_id,
        &w.config.client_secret,
        at("2026-01-04T00:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(job, campaigns::web::organiser::RefreshOutcome::Busy);
    assert_eq!(w.fake.token_requests().len(), 1);
    // Their pair lands, and they give the lock back.
    let pair = Tokens {
        access: theirs.access_token.clone(),
        refresh: theirs.refresh_token.clone(),
    };
    assert!(
        w.env
            .store
            .replace_organizer_tokens(&old.refresh_token, &pair, at("2026-01-01T12:45:00Z"))
            .await
            .unwrap()
    );
    w.env.store.unlock_token_refresh(lock).await.unwrap();

    let report = sync.await.unwrap().unwrap();
    assert_eq!(report.stored, 4);
    assert_eq!(w.fake.token_requests().len(), 1, "only their refresh");
    assert_eq!(w.env.store.authorisation_refused().await.unwrap(), None);
    assert_eq!(
        w.env.get(campaigns::schema::TOKEN_REFRESH_LOCK).await,
        None,
        "the lock is given back"
    );
}
