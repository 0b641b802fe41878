//! What campaigns' web flows ask of Meetup: the token owner's role in a group, and the
//! `createEvent` mutation, against the fake (which validates every document against
//! the real schema before it answers). Also the sandbox's demo data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Offset as _, TimeDelta, Timelike as _};
use meetup::fake::{FakeFault, demo};
use meetup::{EventDraft, EventStatus, EventType, GroupRole, GroupUrlname, MeetupError};

fn draft(world: &common::World, title: &str) -> EventDraft {
    EventDraft {
        group: world.group.clone(),
        title: title.to_owned(),
        description: "[campaign 123] More of the story.".into(),
        starts_at: common::day(7),
        duration: Some(TimeDelta::hours(4)),
        hosts: vec![],
        online: false,
        max_tickets: Some(5),
    }
}

#[tokio::test]
async fn the_role_in_a_group_is_the_token_owners_and_none_for_a_non_member() {
    let world = common::world().await;
    assert_eq!(
        world
            .client
            .group_role(&world.tokens.access_token, &world.group)
            .await
            .unwrap(),
        None
    );
    world
        .fake
        .set_role(&world.group, &world.organiser, GroupRole::Coorganizer)
        .unwrap();
    let role = world
        .client
        .group_role(&world.tokens.access_token, &world.group)
        .await
        .unwrap();
    assert_eq!(role, Some(GroupRole::Coorganizer));
    assert!(role.unwrap().organises());
    assert!(!GroupRole::EventOrganizer.organises());
    assert!(!GroupRole::Member.organises());

    let missing = GroupUrlname::parse("nobody-here").unwrap();
    let error = world
        .client
        .group_role(&world.tokens.access_token, &missing)
        .await
        .unwrap_err();
    assert!(matches!(error, MeetupError::GroupNotFound(_)), "{error}");
}

#[tokio::test]
async fn a_group_member_is_found_by_id_and_an_id_meetup_does_not_know_is_nobody() {
    let world = common::world().await;
    let token = &world.tokens.access_token;
    // Members of the group: one with a role, one who hosts, one who RSVP'd.
    let rita = world.fake.add_member("Rita Role");
    world
        .fake
        .set_role(&world.group, &rita, GroupRole::Member)
        .unwrap();
    let hank = world.fake.add_member("Hank Host");
    let petra = world.fake.add_member("Petra Player");
    let mut e = common::event(&world, "One-shot", common::day(3));
    e.hosts = vec![hank.clone()];
    let event = world.fake.add_event(e).unwrap();
    world
        .fake
        .add_rsvp(&event, &petra, meetup::RsvpStatus::Yes, 0)
        .unwrap();
    // On Meetup, but not in this group.
    let stranger = world.fake.add_member("Sam Stranger");

    for (member, name) in [
        (&rita, "Rita Role"),
        (&hank, "Hank Host"),
        (&petra, "Petra Player"),
    ] {
        let found = world
            .client
            .group_member(token, &world.group, member)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name} is a member"));
        assert_eq!(&found.id, member);
        assert_eq!(found.name.as_deref(), Some(name));
    }
    assert_eq!(
        world
            .client
            .group_member(token, &world.group, &stranger)
            .await
            .unwrap(),
        None
    );
    // An id nobody has: no member, no error, as Meetup answers.
    let unknown = meetup::MemberId::parse("123456").unwrap();
    assert_eq!(
        world
            .client
            .group_member(token, &world.group, &unknown)
            .await
            .unwrap(),
        None
    );
    let missing = GroupUrlname::parse("nobody-here").unwrap();
    let error = world
        .client
        .group_member(token, &missing, &rita)
        .await
        .unwrap_err();
    assert!(matches!(error, MeetupError::GroupNotFound(_)), "{error}");
}

#[tokio::test]
async fn create_event_copies_every_field_and_the_fake_stores_the_event() {
    let world = common::world().await;
    world
        .fake
        .set_role(&world.group, &world.organiser, GroupRole::Organizer)
        .unwrap();
    let gm = world.fake.add_member("Gabriel");
    let mut draft = draft(&world, "Curse of Strahd - Session 2");
    draft.hosts = vec![gm.clone()];
    draft.online = true;
    let event = world
        .client
        .create_event(&world.tokens.access_token, &draft)
        .await
        .unwrap();
    assert_eq!(event.title, "Curse of Strahd - Session 2");
    assert_eq!(event.description, "[campaign 123] More of the story.");
    assert_eq!(event.starts_at, Some(common::day(7)));
    assert_eq!(event.duration, Some(TimeDelta::hours(4)));
    assert_eq!(event.event_type, EventType::Online);
    assert_eq!(event.status, EventStatus::Active);
    assert_eq!(event.max_tickets, Some(5));
    assert_eq!(event.group, Some(world.group.clone()));
    let hosts: Vec<_> = event
        .hosts
        .iter()
        .filter_map(|h| h.member.as_ref().map(|m| m.id.clone()))
        .collect();
    assert!(hosts.contains(&gm), "{hosts:?}");

    let stored = world.fake.events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, event.id);
    // Readable like any other event afterwards.
    let read = world
        .client
        .event(&world.tokens.access_token, &event.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, event);
}

#[tokio::test]
async fn create_event_is_refused_in_words_and_never_retried_after_a_server_error() {
    let world = common::world().await;
    // Not allowed in the group: a payload error, nothing created.
    let error = world
        .client
        .create_event(&world.tokens.access_token, &draft(&world, "Session 2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, MeetupError::Refused { errors, .. } if errors[0].starts_with("FORBIDDEN")),
        "{error}"
    );
    world
        .fake
        .set_role(&world.group, &world.organiser, GroupRole::EventOrganizer)
        .unwrap();
    // A title over Meetup's 80 characters names the field.
    let error = world
        .client
        .create_event(&world.tokens.access_token, &draft(&world, &"x".repeat(81)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("(title)"), "{error}");
    assert!(world.fake.events().is_empty());

    // A 502 is not retried: the event might exist already.
    world.fake.fail_next(1, FakeFault::Status(502));
    let before = world.fake.graphql_requests().len();
    let error = world
        .client
        .create_event(&world.tokens.access_token, &draft(&world, "Session 2"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, MeetupError::Status { status: 502, .. }),
        "{error}"
    );
    assert_eq!(world.fake.graphql_requests().len(), before + 1);
    assert!(world.fake.events().is_empty());
}

#[tokio::test]
async fn the_demo_group_has_a_campaign_a_one_shot_an_online_series_and_an_organiser() {
    let fake = meetup::fake::FakeMeetup::start().await.unwrap();
    let now = chrono::Utc::now();
    let callback = url::Url::parse("http://127.0.0.1:9/campaigns/meetup/callback").unwrap();
    let seeded = demo::seed(&fake, now, &callback).unwrap();
    let events = fake.events();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|(_, e)| e.starts_at > now));
    let descriptions: Vec<&str> = events.iter().map(|(_, e)| e.description.as_str()).collect();
    assert!(descriptions[0].starts_with("[new campaign]"));
    assert!(descriptions[1].starts_with(&format!("[campaign {}]", seeded.campaign[0])));
    assert!(descriptions[2].starts_with("[new adventure]"));
    assert!(descriptions[3].contains("[online]"));
    let client = meetup::MeetupClient::new(fake.endpoints()).unwrap();
    let role = client
        .group_role(&seeded.organiser_tokens.access_token, &seeded.group)
        .await
        .unwrap();
    assert_eq!(role, Some(GroupRole::Organizer));
    let rsvps = client
        .event_rsvps(&seeded.organiser_tokens.access_token, &seeded.campaign[0])
        .await
        .unwrap();
    assert!(rsvps.iter().any(|r| r.member.id == seeded.player));

    // The group has a time zone, and its events start at their evening hour there with
    // that day's offset (a campaign session a week after a clock change keeps its hour).
    let first = client
        .event(&seeded.organiser_tokens.access_token, &seeded.campaign[0])
        .await
        .unwrap()
        .expect("the campaign's first session");
    assert_eq!(first.group_timezone.as_deref(), Some("Europe/Zurich"));
    for (id, hour) in [
        (&seeded.campaign[0], 18),
        (&seeded.campaign[1], 18),
        (&seeded.one_shot, 14),
        (&seeded.online, 19),
    ] {
        let (_, event) = events.iter().find(|(e, _)| e == id).unwrap();
        let local = event.starts_at.with_timezone(&demo::TIMEZONE);
        assert_eq!((local.hour(), local.minute()), (hour, 0), "{id}");
        assert_eq!(
            event.starts_at.offset().local_minus_utc(),
            local.offset().fix().local_minus_utc(),
            "{id} starts with the zone's offset of that day"
        );
    }
}
