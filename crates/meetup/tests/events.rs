//! `MeetupClient` reads against the fake over real HTTP: paging, windows, RSVPs, self.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use chrono::TimeDelta;
use common::{day, event, world};
use meetup::{EventStatus, EventType, EventWindow, GroupUrlname, MeetupError, RsvpStatus};

#[tokio::test]
async fn pages_through_250_events_in_three_requests_in_order() {
    let w = world().await;
    let host = w.fake.add_member("Hana Host");
    // Created out of time order, so order must come from the server's sort.
    let mut expected = Vec::new();
    for i in 0..250i64 {
        let n = (i * 97) % 250;
        let mut e = event(&w, &format!("Session {n}"), day(n));
        e.description = format!("[campaign 1] session {n}");
        e.hosts = vec![host.clone()];
        e.event_type = EventType::Online;
        expected.push((n, w.fake.add_event(e).unwrap()));
    }
    // Noise the query must not return: another group's event and a cancelled one.
    let other = GroupUrlname::parse("elsewhere").unwrap();
    w.fake.add_group(&other, "Elsewhere").unwrap();
    w.fake
        .add_event(meetup::fake::NewEvent::new(&other, "Not ours", day(3)))
        .unwrap();
    let cancelled = w.fake.add_event(event(&w, "Cancelled", day(4))).unwrap();
    w.fake
        .set_event_status(&cancelled, EventStatus::Cancelled)
        .unwrap();

    let client = w.client.clone().with_page_size(100);
    let events = client
        .group_events(&w.tokens.access_token, &w.group, &EventWindow::default())
        .await
        .unwrap();

    expected.sort();
    let ids: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
    let expected_ids: Vec<_> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, expected_ids, "every event once, oldest first");
    let requests = w.fake.graphql_requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.operation_name.as_deref() == Some("GroupEvents"))
    );
    assert!(requests[0].variables["after"].is_null());
    assert!(requests[1].variables["after"].is_string());
    assert_ne!(
        requests[1].variables["after"],
        requests[2].variables["after"]
    );

    let first = &events[0];
    assert_eq!(first.title, "Session 0");
    assert_eq!(first.description, "[campaign 1] session 0");
    assert_eq!(first.starts_at, Some(day(0)));
    assert_eq!(first.ends_at, Some(day(0) + TimeDelta::hours(3)));
    assert_eq!(first.duration, Some(TimeDelta::hours(3)));
    assert_eq!(first.status, EventStatus::Active);
    assert_eq!(first.event_type, EventType::Online);
    assert_eq!(first.group.as_ref(), Some(&w.group));
    assert_eq!(first.hosts.len(), 1);
    assert_eq!(first.hosts[0].name.as_deref(), Some("Hana Host"));
    assert_eq!(first.hosts[0].member.as_ref().map(|m| &m.id), Some(&host));
    assert!(first.url.contains(first.id.as_str()), "{}", first.url);
}

#[tokio::test]
async fn the_window_is_half_open_and_statuses_filter() {
    let w = world().await;
    let before = w.fake.add_event(event(&w, "before", day(0))).unwrap();
    let on_start = w.fake.add_event(event(&w, "on start", day(1))).unwrap();
    let inside = w.fake.add_event(event(&w, "inside", day(2))).unwrap();
    let on_end = w.fake.add_event(event(&w, "on end", day(3))).unwrap();
    let cancelled = w.fake.add_event(event(&w, "cancelled", day(2))).unwrap();
    w.fake
        .set_event_status(&cancelled, EventStatus::Cancelled)
        .unwrap();

    let window = EventWindow::between(day(1), day(3));
    let events = w
        .client
        .group_events(&w.tokens.access_token, &w.group, &window)
        .await
        .unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, vec![on_start.clone(), inside.clone()]);

    let every_status = EventWindow {
        statuses: Vec::new(),
        ..window
    };
    let events = w
        .client
        .group_events(&w.tokens.access_token, &w.group, &every_status)
        .await
        .unwrap();
    let titles: Vec<_> = events.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(titles, vec!["on start", "inside", "cancelled"]);
    assert_eq!(events[2].status, EventStatus::Cancelled);
    let _ = (before, on_end);
}

#[tokio::test]
async fn rsvps_return_only_yes_across_pages() {
    let w = world().await;
    let host = w.fake.add_member("Hana Host");
    let mut e = event(&w, "Big game", day(5));
    e.hosts = vec![host.clone()];
    e.max_tickets = Some(300);
    let id = w.fake.add_event(e).unwrap();
    w.fake.add_rsvp(&id, &host, RsvpStatus::Yes, 0).unwrap();
    let mut yes = vec![host.clone()];
    for i in 0..230u32 {
        let member = w.fake.add_member(&format!("Player {i}"));
        let status = match i % 4 {
            0 | 1 => RsvpStatus::Yes,
            2 => RsvpStatus::No,
            _ => RsvpStatus::Waitlist,
        };
        if status == RsvpStatus::Yes {
            yes.push(member.clone());
        }
        w.fake.add_rsvp(&id, &member, status, i % 3).unwrap();
    }
    assert_eq!(yes.len(), 117);

    let client = w.client.clone().with_page_size(50);
    let rsvps = client
        .event_rsvps(&w.tokens.access_token, &id)
        .await
        .unwrap();

    let members: Vec<_> = rsvps.iter().map(|r| r.member.id.clone()).collect();
    assert_eq!(members, yes, "every YES once, in RSVP order");
    assert!(rsvps.iter().all(|r| r.status == Some(RsvpStatus::Yes)));
    assert!(rsvps[0].is_host && !rsvps[1].is_host);
    assert_eq!(rsvps[1].guests, 0);
    assert_eq!(rsvps[2].guests, 1);
    assert_eq!(rsvps[1].member.name.as_deref(), Some("Player 0"));
    // 117 YES at 50 a page: the server filtered, so three pages, not five.
    assert_eq!(w.fake.graphql_requests().len(), 3);
}

#[tokio::test]
async fn an_rsvp_list_shorter_than_its_total_count_is_an_error() {
    let w = world().await;
    let id = w.fake.add_event(event(&w, "Big game", day(5))).unwrap();
    for i in 0..5u32 {
        let member = w.fake.add_member(&format!("Player {i}"));
        w.fake.add_rsvp(&id, &member, RsvpStatus::Yes, 0).unwrap();
    }
    let client = w.client.clone().with_page_size(2);

    // Paging that ends after three of five, then a list that hides every entry.
    for shown in [3, 0] {
        w.fake.cut_rsvp_lists(Some(shown));
        let err = client
            .event_rsvps(&w.tokens.access_token, &id)
            .await
            .unwrap_err();
        match err {
            MeetupError::Incomplete {
                received, total, ..
            } => assert_eq!((received, total), (shown as u64, 5)),
            other => panic!("expected Incomplete, got {other}"),
        }
    }

    // The list as listed, for a caller that can use part of it: said incomplete.
    w.fake.cut_rsvp_lists(Some(3));
    let part = client
        .event_rsvp_list(&w.tokens.access_token, &id)
        .await
        .unwrap();
    assert_eq!(
        (part.rsvps.len(), part.received, part.total),
        (3, 3, Some(5))
    );
    assert!(!part.is_complete());

    w.fake.cut_rsvp_lists(None);
    let whole = client
        .event_rsvps(&w.tokens.access_token, &id)
        .await
        .unwrap();
    assert_eq!(whole.len(), 5);
    let listed = client
        .event_rsvp_list(&w.tokens.access_token, &id)
        .await
        .unwrap();
    assert!(listed.is_complete());
    assert_eq!(listed.rsvps, whole);
}

#[tokio::test]
async fn self_and_single_event_and_missing_things() {
    let w = world().await;
    let me = w.client.self_member(&w.tokens.access_token).await.unwrap();
    assert_eq!(me.id, w.organiser);
    assert_eq!(me.name.as_deref(), Some("Olivia Organiser"));

    let id = w.fake.add_event(event(&w, "One-shot", day(1))).unwrap();
    let found = w
        .client
        .event(&w.tokens.access_token, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.title, "One-shot");
    assert!(found.hosts.is_empty());
    assert_eq!(found.max_tickets, None);

    let missing = meetup::EventId::parse("999").unwrap();
    assert!(
        w.client
            .event(&w.tokens.access_token, &missing)
            .await
            .unwrap()
            .is_none()
    );
    let err = w
        .client
        .event_rsvps(&w.tokens.access_token, &missing)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeetupError::EventNotFound(ref e) if *e == missing),
        "{err}"
    );
    let nowhere = GroupUrlname::parse("nowhere").unwrap();
    let err = w
        .client
        .group_events(&w.tokens.access_token, &nowhere, &EventWindow::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeetupError::GroupNotFound(ref g) if *g == nowhere),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_or_revoked_token_is_the_unauthorized_variant() {
    let w = world().await;
    let unknown = meetup::AccessToken::from("not-a-token");
    let err = w.client.self_member(&unknown).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");

    w.fake.revoke_access_token(&w.tokens.access_token);
    let err = w
        .client
        .group_events(&w.tokens.access_token, &w.group, &EventWindow::default())
        .await
        .unwrap_err();
    assert!(matches!(err, MeetupError::Unauthorized { .. }), "{err}");
    // Not retried: asking again with the same token cannot help.
    assert_eq!(w.fake.graphql_requests().len(), 2);
    assert!(
        w.fake
            .graphql_requests()
            .iter()
            .all(|r| !r.authorized && r.status == 401)
    );
}
