//! The fake's GraphQL endpoint spoken to directly: it validates against the real schema
//! and answers in exactly the shape a GraphQL server would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::{day, event, http, world};
use meetup::RsvpStatus;
use serde_json::{Value, json};

async fn post(w: &common::World, body: Value) -> (u16, Value) {
    let response = http()
        .post(w.fake.endpoints().graphql)
        .bearer_auth(w.tokens.access_token.expose())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn an_invalid_query_gets_a_graphql_error_naming_the_field() {
    let w = world().await;
    let query = "query Old($u: String!) {\n  groupByUrlname(urlname: $u) {\n    upcomingEvents { count }\n  }\n}";
    let (status, body) = post(
        &w,
        json!({ "query": query, "variables": { "u": "swiss-rpg" } }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.get("data").is_none(), "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("`upcomingEvents`") && message.contains("`Group`"),
        "{message}"
    );
    assert_eq!(errors[0]["locations"], json!([{ "line": 3, "column": 5 }]));
}

#[tokio::test]
async fn answers_with_aliases_fragments_typename_and_paging() {
    let w = world().await;
    let host = w.fake.add_member("Hana Host");
    let mut first = event(&w, "First", day(1));
    first.hosts = vec![host.clone()];
    let first = w.fake.add_event(first).unwrap();
    let second = w.fake.add_event(event(&w, "Second", day(2))).unwrap();
    w.fake.add_event(event(&w, "Third", day(3))).unwrap();
    w.fake.add_rsvp(&first, &host, RsvpStatus::Yes, 2).unwrap();
    let player = w.fake.add_member("Pat Player");
    w.fake
        .add_rsvp(&first, &player, RsvpStatus::Waitlist, 0)
        .unwrap();

    let query = r#"
query Page($u: String!, $n: Int = 2, $hosts: Boolean!) {
  club: groupByUrlname(urlname: $u) {
    __typename
    urlname
    events(first: $n, sort: ASC) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage }
      edges { node { ...Ev when: dateTime } }
    }
  }
}
fragment Ev on Event {
  id
  title
  eventHosts @include(if: $hosts) { name member { id } }
  going: rsvps { totalCount yesCount waitlistCount edges { node { status guestsCount isHost } } }
}"#;
    let (status, body) = post(
        &w,
        json!({ "query": query, "operationName": "Page", "variables": { "u": "swiss-rpg", "hosts": true } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "data": { "club": {
            "__typename": "Group",
            "urlname": "swiss-rpg",
            "events": {
                "totalCount": 3,
                "pageInfo": { "hasNextPage": true, "hasPreviousPage": false },
                "edges": [
                    { "node": {
                        "id": first.as_str(), "title": "First", "when": "2026-01-02T19:00:00+01:00",
                        "eventHosts": [{ "name": "Hana Host", "member": { "id": host.as_str() } }],
                        "going": { "totalCount": 1, "yesCount": 1, "waitlistCount": 1,
                            "edges": [{ "node": { "status": "YES", "guestsCount": 2, "isHost": true } }] }
                    } },
                    { "node": {
                        "id": second.as_str(), "title": "Second", "when": "2026-01-03T19:00:00+01:00",
                        "eventHosts": [],
                        "going": { "totalCount": 0, "yesCount": 0, "waitlistCount": 0, "edges": [] }
                    } }
                ]
            }
        } } })
    );
}

#[tokio::test]
async fn null_bubbles_to_the_nearest_nullable_field_with_a_path() {
    let w = world().await;
    // `Member.email` is `String!` and the fake has no e-mail addresses.
    let (status, body) = post(&w, json!({ "query": "{ self { id email } }" })).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({ "self": null }));
    assert_eq!(body["errors"][0]["path"], json!(["self", "email"]));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Member.email")
    );
    // A nullable field without data is simply null.
    let (_, body) = post(&w, json!({ "query": "{ self { id bio } }" })).await;
    assert_eq!(body["data"]["self"]["bio"], Value::Null);
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn variables_are_coerced_against_their_declarations() {
    let w = world().await;
    let query = "query Q($id: ID!) { event(id: $id) { id } }";
    let (_, body) = post(&w, json!({ "query": query })).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`$id`"),
        "{body}"
    );
    let (_, body) = post(&w, json!({ "query": query, "variables": { "id": ["x"] } })).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid value"),
        "{body}"
    );
    let (_, body) = post(&w, json!({ "query": query, "variables": { "id": "42" } })).await;
    assert_eq!(body, json!({ "data": { "event": null } }));
    let id = w.fake.add_event(event(&w, "Numbered", day(1))).unwrap();
    let number: u64 = id.as_str().parse().unwrap();
    let (_, body) = post(&w, json!({ "query": query, "variables": { "id": number } })).await;
    assert_eq!(body, json!({ "data": { "event": { "id": id.as_str() } } }));
    let query = "query Q($s: [EventStatus!]) { groupByUrlname(urlname: \"swiss-rpg\") { events(filter: { status: $s }) { totalCount } } }";
    let (_, body) = post(
        &w,
        json!({ "query": query, "variables": { "s": ["LIVE"] } }),
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("EventStatus"),
        "{body}"
    );
}

#[tokio::test]
async fn mutations_are_validated_but_not_executed() {
    let w = world().await;
    let valid = r#"mutation { closeEventRsvps(input: { eventId: "1" }) { errors { message } } }"#;
    let (_, body) = post(&w, json!({ "query": valid })).await;
    assert_eq!(body["data"], Value::Null);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not execute")
    );
    let invalid = r#"mutation { closeEventRsvps(input: { id: "1" }) { errors { message } } }"#;
    let (_, body) = post(&w, json!({ "query": invalid })).await;
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("has no field `id`")),
        "{body}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("misses required field `eventId`")),
        "{body}"
    );
}

#[tokio::test]
async fn requests_without_a_known_token_or_a_body_are_refused() {
    let w = world().await;
    let response = http()
        .post(w.fake.endpoints().graphql)
        .json(&json!({ "query": "{ self { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = http()
        .post(w.fake.endpoints().graphql)
        .bearer_auth(w.tokens.access_token.expose())
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let log = w.fake.graphql_requests();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![401, 400]
    );
}
