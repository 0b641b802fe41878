//! Shared arrangement for the client-against-fake tests: a fake Meetup on a loopback
//! port, one group, an organiser with tokens, and a client pointed at the fake.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test file uses a different part

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta};
use meetup::fake::{FakeMeetup, NewEvent};
use meetup::{GroupUrlname, MeetupClient, MemberId, RetryPolicy, Tokens};

pub struct World {
    pub fake: FakeMeetup,
    pub client: MeetupClient,
    pub group: GroupUrlname,
    pub organiser: MemberId,
    pub tokens: Tokens,
}

/// Retries without real waiting: the tests assert counts, never durations.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

pub async fn world() -> World {
    let fake = FakeMeetup::start().await.unwrap();
    let group = GroupUrlname::parse("swiss-rpg").unwrap();
    fake.add_group(&group, "Swiss RPG").unwrap();
    let organiser = fake.add_member("Olivia Organiser");
    let tokens = fake.issue_tokens(&organiser).unwrap();
    let client = MeetupClient::new(fake.endpoints())
        .unwrap()
        .with_retry(fast_retry());
    World {
        fake,
        client,
        group,
        organiser,
        tokens,
    }
}

/// A time in Zurich's winter offset.
pub fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap()
}

/// `n` days after 2026-01-01 19:00 +01:00.
pub fn day(n: i64) -> DateTime<FixedOffset> {
    at("2026-01-01T19:00:00+01:00") + TimeDelta::days(n)
}

pub fn event(world: &World, title: &str, starts_at: DateTime<FixedOffset>) -> NewEvent {
    NewEvent::new(&world.group, title, starts_at)
}

/// A plain HTTP client for raw requests to the fake (no redirects followed).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
