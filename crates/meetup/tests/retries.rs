//! Retries: 429 and 5xx are retried a bounded number of times, other 4xx never.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::world;
use meetup::fake::FakeFault;
use meetup::{EventWindow, MeetupClient, MeetupEndpoints, MeetupError};

fn statuses(w: &common::World) -> Vec<u16> {
    w.fake.graphql_requests().iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn a_429_then_success_is_retried() {
    let w = world().await;
    w.fake.fail_next(
        1,
        FakeFault::RateLimited {
            retry_after_secs: 0,
        },
    );
    let me = w.client.self_member(&w.tokens.access_token).await.unwrap();
    assert_eq!(me.id, w.organiser);
    assert_eq!(statuses(&w), vec![429, 200]);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let w = world().await;
    w.fake.fail_next(2, FakeFault::Status(500));
    w.client
        .group_events(&w.tokens.access_token, &w.group, &EventWindow::default())
        .await
        .unwrap();
    assert_eq!(statuses(&w), vec![500, 500, 200]);

    let w = world().await;
    w.fake.fail_next(10, FakeFault::Status(503));
    let err = w
        .client
        .self_member(&w.tokens.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeetupError::Status { status: 503, .. }),
        "{err}"
    );
    // One attempt and three retries (the policy's bound), then the error.
    assert_eq!(statuses(&w), vec![503; 4]);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_longest_wait_is_answered_at_once() {
    let w = world().await;
    w.fake.fail_next(
        1,
        FakeFault::RateLimited {
            retry_after_secs: 60,
        },
    );
    let err = w
        .client
        .self_member(&w.tokens.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeetupError::Status { status: 429, .. }),
        "{err}"
    );
    // Not asked again after a cut-short wait: the caller's next run asks.
    assert_eq!(statuses(&w), vec![429]);
}

#[tokio::test]
async fn rate_limits_that_do_not_end_are_reported_as_429() {
    let w = world().await;
    w.fake.fail_next(
        10,
        FakeFault::RateLimited {
            retry_after_secs: 0,
        },
    );
    let err = w
        .client
        .self_member(&w.tokens.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeetupError::Status { status: 429, .. }),
        "{err}"
    );
    assert_eq!(statuses(&w), vec![429; 4]);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let w = world().await;
    w.fake.fail_next(3, FakeFault::Status(400));
    let err = w
        .client
        .self_member(&w.tokens.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeetupError::Status { status: 400, .. }),
        "{err}"
    );
    assert_eq!(statuses(&w), vec![400]);

    w.fake.fail_next(1, FakeFault::Status(404));
    // Two 400s are still queued; take them, then the 404.
    for _ in 0..2 {
        w.client
            .self_member(&w.tokens.access_token)
            .await
            .unwrap_err();
    }
    let err = w
        .client
        .self_member(&w.tokens.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeetupError::Status { status: 404, .. }),
        "{err}"
    );
    assert_eq!(statuses(&w), vec![400, 400, 400, 404]);
}

#[tokio::test]
async fn a_wrong_endpoint_is_a_404_without_retries() {
    let w = world().await;
    let base = w.fake.url();
    let endpoints = MeetupEndpoints::parse(
        &format!("{base}/gql"),
        &format!("{base}/oauth2/authorize"),
        &format!("{base}/oauth2/access"),
    )
    .unwrap();
    let client = MeetupClient::new(endpoints)
        .unwrap()
        .with_retry(common::fast_retry());
    let err = client
        .self_member(&w.tokens.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeetupError::Status { status: 404, .. }),
        "{err}"
    );
}
