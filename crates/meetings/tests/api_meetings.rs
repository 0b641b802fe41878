//! The global controller's meeting routes over real PostgreSQL and Redis, through the
//! router `meetings::feature` builds, served by Tavern's own server (client addresses
//! through a trusted proxy): creating meetings (validation, scopes, the per-user rate
//! limit), reading them by id or code with a join grant for a registered meeting
//! controller (its meeting token, one-time connection token, URL and certificate hash),
//! the refusal when no controller is alive, guests' tokens, settings and the end.
//! Time is the world's manual clock; controllers are registered rows, no server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use meetings::auth::{Auth, MeetingsSecretKey};
use meetings::domain::{
    ConnectionType, ControllerId, DisplayName, HealthStatus, MeetingCode, MeetingId, UserId,
    WtToken,
};
use meetings::repo::{ControllerHeartbeat, ControllerRegistration, JoinRequest};
use meetings::{MeetingsConfig, Repo};
use redis::AsyncCommands;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use testkit::World;

const PASSWORD: &str = "correct horse 7";
const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

struct Site {
    world: World,
    base: String,
    http: reqwest::Client,
    repo: Repo,
    /// A second `Auth` over the same stores and secret (as the meeting controller has).
    auth: Auth,
}

/// An answer: status, JSON body (`null` when none), headers.
struct Answer {
    status: u16,
    body: Value,
    headers: HeaderMap,
}

impl Answer {
    #[track_caller]
    fn refused(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (status, Some(code)),
            "{}",
            self.body
        );
    }

    #[track_caller]
    fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = web::ServerConfig {
        trusted_proxies: web::client::TrustedProxies::parse("127.0.0.1").unwrap(),
        ..web::ServerConfig::default()
    };
    tokio::spawn(web::serve_with(
        listener,
        router,
        config,
        std::future::pending(),
    ));
    base
}

async fn site_with(adjust: impl FnOnce(&mut MeetingsConfig)) -> Site {
    let world = World::with_postgres().await;
    let mut config = MeetingsConfig {
        secret_key: Some(MeetingsSecretKey::generate().unwrap()),
        ..MeetingsConfig::default()
    };
    adjust(&mut config);
    let mut feature = meetings::feature(&world.ctx, config.clone());
    world.migrate(std::slice::from_ref(&feature)).await;
    for work in &feature.startup {
        work.run().await.unwrap();
    }
    let base = serve(feature.routes.take().unwrap()).await;
    Site {
        repo: Repo::from_context(&world.ctx),
        auth: meetings::auth(&world.ctx, &config),
        world,
        base,
        http: reqwest::Client::new(),
    }
}

async fn site() -> Site {
    site_with(|_| {}).await
}

/// A site with a live controller, `mc-1`, and a user, Alice: her token and her id.
async fn site_with_alice() -> (Site, String, String) {
    let site = site().await;
    site.live_controller("mc-1").await;
    let (alice, alice_id) = site.user("alice@example.org", "Alice").await;
    (site, alice, alice_id)
}

/// The test's meeting controller: `https://{name}.test:4433`, in the default region.
fn controller(name: &str) -> ControllerRegistration {
    ControllerRegistration {
        controller_id: ControllerId::parse(name).unwrap(),
        region: MeetingsConfig::default().region,
        endpoint: format!("https://{name}.test:4433"),
        max_meetings: 100,
        max_participants: 1000,
        version: Some("test".into()),
        certificate_hash: Some(HASH.into()),
    }
}

impl Site {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
        ip: &str,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-forwarded-for", ip);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.call(Method::POST, path, Some(body), bearer, "198.51.100.1")
            .await
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        self.call(Method::GET, path, None, bearer, "198.51.100.1")
            .await
    }

    async fn patch(&self, path: &str, body: Value, bearer: Option<&str>) -> Answer {
        self.call(Method::PATCH, path, Some(body), bearer, "198.51.100.1")
            .await
    }

    /// Registers `name` as `email`: its access token (every scope) and user id.
    async fn user(&self, email: &str, name: &str) -> (String, String) {
        let answer = self
            .post(
                "/api/v1/auth/register",
                json!({ "email": email, "password": PASSWORD, "display_name": name }),
                None,
            )
            .await;
        let body = answer.ok(201);
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["user_id"].as_str().unwrap().to_owned(),
        )
    }

    /// An API key of the user with `token`, holding `scopes`.
    async fn key(&self, token: &str, scopes: &[&str]) -> String {
        let answer = self
            .post(
                "/api/v1/api-keys",
                json!({ "name": "test key", "scopes": scopes }),
                Some(token),
            )
            .await;
        answer.ok(201)["key"].as_str().unwrap().to_owned()
    }

    /// `POST /api/v1/meetings` as `token`: the meeting.
    async fn create(&self, token: &str, body: Value) -> Value {
        self.post("/api/v1/meetings", body, Some(token))
            .await
            .ok(201)
            .clone()
    }

    /// A registered meeting controller that has just sent a heartbeat.
    async fn live_controller(&self, name: &str) {
        self.repo
            .register_controller(&controller(name))
            .await
            .unwrap();
        self.beat(name).await;
    }

    async fn beat(&self, name: &str) {
        self.repo
            .heartbeat_controller(&ControllerHeartbeat {
                controller_id: ControllerId::parse(name).unwrap(),
                current_meetings: 0,
                current_participants: 0,
                health: HealthStatus::Healthy,
            })
            .await
            .unwrap();
    }

    /// `(actor_user_id, target_id, metadata)` of the audit rows of `event`, oldest first.
    async fn audit_rows(&self, event: &str) -> Vec<(Option<uuid::Uuid>, Option<String>, Value)> {
        sqlx::query_as(
            "SELECT actor_user_id, target_id, metadata FROM meet.audit_logs \
             WHERE event_type = $1 ORDER BY id",
        )
        .bind(event)
        .fetch_all(self.world.postgres.pool())
        .await
        .unwrap()
    }

    /// Redeems the connection token of `grant` (a join grant's JSON), which must open a
    /// signalling session to `meeting` for the grant's participant; the token.
    async fn redeems_for(&self, grant: &Value, meeting: &str) -> WtToken {
        let wt = WtToken::parse(grant["wt_token"].as_str().unwrap()).unwrap();
        let redeemed = self
            .repo
            .redeem_connection_token(&wt)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(redeemed.meeting_id.to_string(), meeting);
        assert_eq!(
            redeemed.participant_id.to_string(),
            grant["participant_id"].as_str().unwrap()
        );
        assert_eq!(redeemed.connection_type, ConnectionType::Signaling);
        wt
    }

    /// Ends the meeting `id` as the user of `token`, then reads it by `key` (its id or
    /// code): ended, and no grant.
    async fn end_and_read_no_grant(&self, token: &str, id: &str, key: &str) {
        self.post(
            &format!("/api/v1/meetings/{id}/end"),
            json!({}),
            Some(token),
        )
        .await
        .ok(200);
        let answer = self
            .get(&format!("/api/v1/meetings/{key}"), Some(token))
            .await;
        let body = answer.ok(200);
        assert_eq!(body["status"], "ended");
        assert!(body.get("join_grant").is_none(), "{body}");
    }

    async fn meeting_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM meet.meetings")
            .fetch_one(self.world.postgres.pool())
            .await
            .unwrap()
    }
}

fn id_of(meeting: &Value) -> String {
    meeting["meeting_id"].as_str().unwrap().to_owned()
}

fn code_of(meeting: &Value) -> String {
    meeting["meeting_code"].as_str().unwrap().to_owned()
}

/// The meeting fields of a body (without `join_grant`).
fn meeting_part(body: &Value) -> Value {
    let mut body = body.clone();
    body.as_object_mut().unwrap().remove("join_grant");
    body
}

const MEETING_FIELDS: [&str; 14] = [
    "meeting_id",
    "meeting_code",
    "display_name",
    "status",
    "created_by_user_id",
    "max_participants",
    "enable_e2e_encryption",
    "require_auth",
    "allow_recording",
    "waiting_room_enabled",
    "scheduled_start_time",
    "actual_start_time",
    "ended_at",
    "created_at",
];

#[tokio::test]
async fn a_created_meeting_has_a_code_its_creator_and_an_audit_row_and_reads_by_id_or_code() {
    let (site, alice, alice_id) = site_with_alice().await;

    let answer = site
        .post(
            "/api/v1/meetings",
            json!({
                "display_name": "  Friday night  ",
                "max_participants": 8,
                "require_auth": true,
                "allow_recording": true,
                "scheduled_start_time": "2026-12-05T19:30:00+01:00",
            }),
            Some(&alice),
        )
        .await;
    let meeting = answer.ok(201).clone();
    let id = id_of(&meeting);
    assert_eq!(
        answer.header("location"),
        Some(format!("/api/v1/meetings/{id}").as_str())
    );
    let mut keys: Vec<&str> = meeting
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = MEETING_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{meeting}");
    assert_eq!(meeting["display_name"], "Friday night");
    assert_eq!(meeting["status"], "scheduled");
    assert_eq!(meeting["created_by_user_id"], alice_id.as_str());
    assert_eq!(meeting["max_participants"], 8);
    assert_eq!(meeting["require_auth"], true);
    assert_eq!(meeting["allow_recording"], true);
    assert_eq!(meeting["enable_e2e_encryption"], true, "the seed's default");
    assert_eq!(meeting["waiting_room_enabled"], false);
    assert_eq!(
        meeting["scheduled_start_time"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        "2026-12-05T18:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(meeting["actual_start_time"], Value::Null);
    assert_eq!(meeting["ended_at"], Value::Null);

    // The code: ABC-DEFG-HJK from the unambiguous alphabet, canonical as stored.
    let code = code_of(&meeting);
    let groups: Vec<&str> = code.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [3, 4, 3],
        "{code}"
    );
    assert!(
        groups
            .concat()
            .bytes()
            .all(|b| MeetingCode::ALPHABET.contains(&b)),
        "{code}"
    );
    assert_eq!(MeetingCode::parse(&code).unwrap().as_str(), code);

    let rows = site.audit_rows("meeting_created").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.map(|u| u.to_string()), Some(alice_id.clone()));
    assert_eq!(rows[0].1.as_deref(), Some(id.as_str()));
    assert_eq!(rows[0].2["meeting_code"], code.as_str());

    // Read by id, and by the code as people type it.
    let by_id = site
        .get(&format!("/api/v1/meetings/{id}"), Some(&alice))
        .await;
    assert_eq!(meeting_part(by_id.ok(200)), meeting);
    let undashed = code.replace('-', "");
    for typed in [
        code.clone(),
        code.to_lowercase(),
        undashed.clone(),
        undashed.to_lowercase(),
    ] {
        let answer = site
            .get(&format!("/api/v1/meetings/{typed}"), Some(&alice))
            .await;
        assert_eq!(meeting_part(answer.ok(200)), meeting, "{typed}");
    }

    // Nothing there.
    for path in [
        format!("/api/v1/meetings/{}", MeetingId::random()),
        "/api/v1/meetings/ZZZ-ZZZZ-ZZZ".to_owned(),
        "/api/v1/meetings/not-a-meeting".to_owned(),
    ] {
        site.get(&path, Some(&alice))
            .await
            .refused(404, "meeting_not_found");
    }
}

#[tokio::test]
async fn meetings_get_the_seed_defaults_and_bad_input_is_refused_with_the_field_and_reason() {
    let site = site().await;
    let (alice, _) = site.user("alice@example.org", "Alice").await;

    let plain = site
        .create(&alice, json!({ "display_name": "Plain" }))
        .await;
    assert_eq!(plain["max_participants"], 100);
    assert_eq!(plain["enable_e2e_encryption"], true);
    assert_eq!(plain["require_auth"], false);
    assert_eq!(plain["allow_recording"], false);
    assert_eq!(plain["waiting_room_enabled"], false);
    assert_eq!(plain["scheduled_start_time"], Value::Null);

    let long = "x".repeat(256);
    for (body, code, field) in [
        (
            json!({ "display_name": "" }),
            "bad_display_name",
            "display_name",
        ),
        (
            json!({ "display_name": "   " }),
            "bad_display_name",
            "display_name",
        ),
        (
            json!({ "display_name": "a\u{7}b" }),
            "bad_display_name",
            "display_name",
        ),
        (
            json!({ "display_name": long }),
            "bad_display_name",
            "display_name",
        ),
        (
            json!({ "display_name": "M", "max_participants": 0 }),
            "bad_max_participants",
            "max_participants",
        ),
        (
            json!({ "display_name": "M", "max_participants": 1001 }),
            "bad_max_participants",
            "max_participants",
        ),
        (
            json!({ "display_name": "M", "max_participants": -5 }),
            "bad_max_participants",
            "max_participants",
        ),
        (
            json!({ "display_name": "M", "scheduled_start_time": "tomorrow at eight" }),
            "bad_scheduled_start_time",
            "scheduled_start_time",
        ),
        (
            json!({ "display_name": "M", "scheduled_start_time": "2026-12-05 19:30" }),
            "bad_scheduled_start_time",
            "scheduled_start_time",
        ),
    ] {
        let answer = site
            .post("/api/v1/meetings", body.clone(), Some(&alice))
            .await;
        answer.refused(400, code);
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
        assert!(
            answer.body["error"].as_str().unwrap().contains(field),
            "{}",
            answer.body
        );
    }
    // Shapes the body cannot have.
    for body in [
        json!({}),
        json!({ "name": "M" }),
        json!({ "display_name": "M", "max_participants": "ten" }),
        json!({ "display_name": "M", "colour": "red" }),
    ] {
        site.post("/api/v1/meetings", body, Some(&alice))
            .await
            .refused(400, "bad_request");
    }
    let not_json = site
        .http
        .post(format!("{}/api/v1/meetings", site.base))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body("display_name=M")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 415);
    assert_eq!(site.meeting_count().await, 1, "only the valid one was made");
}

#[tokio::test]
async fn anonymous_callers_are_401_and_credentials_without_the_scope_403() {
    let (site, alice, _) = site_with_alice().await;
    let meeting = site.create(&alice, json!({ "display_name": "M" })).await;
    let id = id_of(&meeting);
    let read_only = site.key(&alice, &["meetings:read"]).await;
    let create_only = site.key(&alice, &["meetings:create"]).await;

    let settings = format!("/api/v1/meetings/{id}/settings");
    let end = format!("/api/v1/meetings/{id}/end");
    let get = format!("/api/v1/meetings/{id}");
    let routes = [
        (
            Method::POST,
            "/api/v1/meetings".to_owned(),
            json!({ "display_name": "M" }),
        ),
        (Method::GET, get.clone(), Value::Null),
        (
            Method::PATCH,
            settings.clone(),
            json!({ "max_participants": 3 }),
        ),
        (Method::POST, end.clone(), json!({})),
    ];
    for (method, path, body) in &routes {
        let body = (!body.is_null()).then(|| body.clone());
        for bearer in [
            None,
            Some("not-a-token"),
            Some("tmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            let answer = site
                .call(method.clone(), path, body.clone(), bearer, "198.51.100.1")
                .await;
            assert_eq!(
                answer.status, 401,
                "{method} {path} {bearer:?}: {}",
                answer.body
            );
            assert!(answer.header("www-authenticate").is_some());
        }
    }

    // The guest route takes its credential (the code) from the request: an empty body
    // changes nothing, as the route walk knocks.
    let knock = site
        .post("/api/v1/meetings/1/guest-token", json!({}), None)
        .await;
    assert_eq!(knock.status, 400, "{}", knock.body);

    site.post(
        "/api/v1/meetings",
        json!({ "display_name": "M" }),
        Some(&read_only),
    )
    .await
    .refused(403, "insufficient_scope");
    site.get(&get, Some(&create_only))
        .await
        .refused(403, "insufficient_scope");
    site.patch(
        &settings,
        json!({ "max_participants": 3 }),
        Some(&read_only),
    )
    .await
    .refused(403, "insufficient_scope");
    site.post(&end, json!({}), Some(&read_only))
        .await
        .refused(403, "insufficient_scope");
    assert_eq!(site.meeting_count().await, 1);

    // Reading without `meetings:join`: the meeting, no grant.
    let answer = site.get(&get, Some(&read_only)).await;
    let body = answer.ok(200);
    assert!(body.get("join_grant").is_none(), "{body}");
    assert_eq!(meeting_part(body), meeting);
}

#[tokio::test]
async fn creating_meetings_is_limited_per_user_and_served_again_after_the_window() {
    let site = site_with(|config| config.auth.meetings_created_per_minute = 3).await;
    let (alice, alice_id) = site.user("alice@example.org", "Alice").await;
    let (bob, _) = site.user("bob@example.org", "Bob").await;
    for i in 0..3 {
        site.create(&alice, json!({ "display_name": format!("M{i}") }))
            .await;
    }
    let refused = site
        .post(
            "/api/v1/meetings",
            json!({ "display_name": "M4" }),
            Some(&alice),
        )
        .await;
    refused.refused(429, "rate_limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(site.meeting_count().await, 3);
    let mut conn = site.world.redis.conn();
    let keys: Vec<String> = conn
        .keys(format!("ratelimit:api:meetings:create:user:{alice_id}:*"))
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");

    // Another user is not limited; bad input is refused without counting.
    site.create(&bob, json!({ "display_name": "B" })).await;
    site.post(
        "/api/v1/meetings",
        json!({ "display_name": "" }),
        Some(&alice),
    )
    .await
    .refused(400, "bad_display_name");

    site.world.clock.advance(Duration::from_secs(retry));
    site.create(&alice, json!({ "display_name": "M5" })).await;
    assert_eq!(site.meeting_count().await, 5);
}

#[tokio::test]
async fn reading_a_meeting_grants_a_join_to_its_live_controller() {
    let site = site().await;
    site.live_controller("mc-1").await;
    let (alice, alice_id) = site.user("alice@example.org", "Alice Liddell").await;
    let meeting = site.create(&alice, json!({ "display_name": "M" })).await;
    let id = id_of(&meeting);

    let answer = site
        .get(
            &format!("/api/v1/meetings/{}", code_of(&meeting)),
            Some(&alice),
        )
        .await;
    let body = answer.ok(200).clone();
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(meeting_part(&body), meeting);
    let grant = &body["join_grant"];
    let mut fields: Vec<&str> = grant
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "certificate_hash",
            "expires_in",
            "participant_id",
            "token",
            "webtransport_url",
            "wt_token"
        ]
    );
    assert_eq!(
        grant["webtransport_url"],
        format!("https://mc-1.test:4433/meetings/{id}")
    );
    assert_eq!(grant["certificate_hash"], HASH);
    assert_eq!(grant["expires_in"], 300);
    let participant = grant["participant_id"].as_str().unwrap();

    // The meeting token names this meeting, this participant, the user and their name.
    let (ticket, _) = site
        .auth
        .meeting_ticket(grant["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(ticket.meeting_id.to_string(), id);
    assert_eq!(ticket.participant_id.to_string(), participant);
    assert_eq!(ticket.user_id, Some(UserId::parse(&alice_id).unwrap()));
    assert_eq!(
        ticket.display_name,
        DisplayName::parse("Alice Liddell").unwrap()
    );
    // It is no access token.
    assert!(
        site.auth
            .verify_token(grant["token"].as_str().unwrap())
            .await
            .is_err()
    );

    // The connection token opens one session: the first redemption wins, the second
    // finds nothing.
    let wt = site.redeems_for(grant, &id).await;
    assert!(
        site.repo
            .redeem_connection_token(&wt)
            .await
            .unwrap()
            .is_none()
    );

    // The meeting is now the controller's; each read names a new participant there.
    let (assigned,): (Option<String>,) = sqlx::query_as(
        "SELECT assigned_controller_id FROM meet.meetings WHERE meeting_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(site.world.postgres.pool())
    .await
    .unwrap();
    assert_eq!(assigned.as_deref(), Some("mc-1"));
    let again = site
        .get(&format!("/api/v1/meetings/{id}"), Some(&alice))
        .await;
    let again = &again.ok(200)["join_grant"];
    assert_ne!(again["participant_id"], grant["participant_id"]);
    assert_ne!(again["wt_token"], grant["wt_token"]);
    assert_eq!(again["webtransport_url"], grant["webtransport_url"]);

    // An API key: with `meetings:join` a grant, without it none.
    let joiner = site.key(&alice, &["meetings:read", "meetings:join"]).await;
    let reader = site.key(&alice, &["meetings:read"]).await;
    let answer = site
        .get(&format!("/api/v1/meetings/{id}"), Some(&joiner))
        .await;
    let token = answer.ok(200)["join_grant"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ticket, _) = site.auth.meeting_ticket(&token).await.unwrap();
    assert_eq!(ticket.display_name.as_str(), "Alice Liddell");
    let answer = site
        .get(&format!("/api/v1/meetings/{id}"), Some(&reader))
        .await;
    assert!(
        answer.ok(200).get("join_grant").is_none(),
        "{}",
        answer.body
    );

    // An ended meeting: no grant.
    site.end_and_read_no_grant(&alice, &id, &id).await;
}

/// The connection tokens in Redis (`wt:token:*`) once they are `count` in number: a
/// token written ahead of a grant then refused is deleted in the background.
async fn connection_tokens(site: &Site, count: usize) -> Vec<String> {
    testkit::eventually(&format!("{count} connection tokens in Redis"), || async {
        let mut conn = site.world.redis.conn();
        let keys: Vec<String> = conn.keys("wt:token:*").await.unwrap();
        (keys.len() == count).then_some(keys)
    })
    .await
}

#[tokio::test]
async fn a_grant_s_token_is_for_the_meeting_the_read_found_and_none_is_left_by_a_refusal() {
    let (site, alice, _) = site_with_alice().await;
    // The server created `first` under its code, so it takes the code for that meeting
    // and writes a grant's token for it while reading. Then retention deletes `first`
    // and `second` draws its code.
    let first = site
        .create(&alice, json!({ "display_name": "First" }))
        .await;
    let second = site
        .create(&alice, json!({ "display_name": "Second" }))
        .await;
    let code = code_of(&first);
    let pool = site.world.postgres.pool();
    sqlx::query("DELETE FROM meet.meetings WHERE meeting_id = $1::uuid")
        .bind(id_of(&first))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE meet.meetings SET meeting_code = $1 WHERE meeting_id = $2::uuid")
        .bind(&code)
        .bind(id_of(&second))
        .execute(pool)
        .await
        .unwrap();

    // The grant is for the meeting the code names now, and its token is the only one
    // left: the one written for the first meeting is gone.
    let answer = site
        .get(&format!("/api/v1/meetings/{code}"), Some(&alice))
        .await;
    let body = answer.ok(200);
    assert_eq!(body["meeting_id"], id_of(&second).as_str());
    let grant = &body["join_grant"];
    let wt = WtToken::parse(grant["wt_token"].as_str().unwrap()).unwrap();
    assert_eq!(
        connection_tokens(&site, 1).await,
        [format!("wt:token:{}", wt.expose())]
    );
    site.redeems_for(grant, &id_of(&second)).await;
    connection_tokens(&site, 0).await;

    // No token outlives a read that grants nothing: no such meeting, an ended one, a
    // guest at a meeting for signed-in users only.
    site.get(
        &format!("/api/v1/meetings/{}", uuid::Uuid::new_v4()),
        Some(&alice),
    )
    .await
    .refused(404, "meeting_not_found");
    connection_tokens(&site, 0).await;
    site.end_and_read_no_grant(&alice, &id_of(&second), &code)
        .await;
    connection_tokens(&site, 0).await;
    let members = site
        .create(
            &alice,
            json!({ "display_name": "Members", "require_auth": true }),
        )
        .await;
    site.post(
        &format!("/api/v1/meetings/{}/guest-token", code_of(&members)),
        json!({ "display_name": "Guest" }),
        None,
    )
    .await
    .refused(403, "auth_required");
    connection_tokens(&site, 0).await;
}

#[tokio::test]
async fn without_a_live_controller_reading_a_meeting_is_503_and_stopped_heartbeats_get_nothing_new()
{
    let site = site().await;
    let (alice, _) = site.user("alice@example.org", "Alice").await;
    let first = site.create(&alice, json!({ "display_name": "M1" })).await;
    let answer = site
        .get(&format!("/api/v1/meetings/{}", id_of(&first)), Some(&alice))
        .await;
    answer.refused(503, "no_controller");
    assert!(answer.header("retry-after").is_some());

    // A controller whose heartbeats stopped gets no new meeting.
    site.live_controller("mc-quiet").await;
    site.world.clock.advance(Duration::from_secs(31));
    let second = site.create(&alice, json!({ "display_name": "M2" })).await;
    site.get(
        &format!("/api/v1/meetings/{}", id_of(&second)),
        Some(&alice),
    )
    .await
    .refused(503, "no_controller");
    let (assigned,): (Option<String>,) = sqlx::query_as(
        "SELECT assigned_controller_id FROM meet.meetings WHERE meeting_id = $1::uuid",
    )
    .bind(id_of(&second))
    .fetch_one(site.world.postgres.pool())
    .await
    .unwrap();
    assert_eq!(assigned, None);

    // Its next heartbeat brings it back.
    site.beat("mc-quiet").await;
    let answer = site
        .get(
            &format!("/api/v1/meetings/{}", id_of(&second)),
            Some(&alice),
        )
        .await;
    assert_eq!(
        answer.ok(200)["join_grant"]["webtransport_url"],
        format!("https://mc-quiet.test:4433/meetings/{}", id_of(&second))
    );
}

#[tokio::test]
async fn guests_get_a_grant_for_open_meetings_only() {
    let (site, alice, _) = site_with_alice().await;
    let open = site.create(&alice, json!({ "display_name": "Open" })).await;
    let closed = site
        .create(
            &alice,
            json!({ "display_name": "Members", "require_auth": true }),
        )
        .await;
    let guest_path = |meeting: &Value| {
        format!(
            "/api/v1/meetings/{}/guest-token",
            code_of(meeting).replace('-', "").to_lowercase()
        )
    };

    let answer = site
        .post(
            &guest_path(&open),
            json!({ "display_name": " Mira " }),
            None,
        )
        .await;
    let body = answer.ok(200).clone();
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["meeting"], open);
    assert_eq!(body["certificate_hash"], HASH);
    assert_eq!(
        body["webtransport_url"],
        format!("https://mc-1.test:4433/meetings/{}", id_of(&open))
    );
    let (ticket, _) = site
        .auth
        .meeting_ticket(body["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(ticket.user_id, None);
    assert_eq!(ticket.display_name.as_str(), "Mira");
    assert_eq!(ticket.meeting_id.to_string(), id_of(&open));
    assert_eq!(
        ticket.participant_id.to_string(),
        body["participant_id"].as_str().unwrap()
    );
    let wt = WtToken::parse(body["wt_token"].as_str().unwrap()).unwrap();
    let redeemed = site
        .repo
        .redeem_connection_token(&wt)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.participant_id, ticket.participant_id);

    site.post(
        &guest_path(&closed),
        json!({ "display_name": "Mira" }),
        None,
    )
    .await
    .refused(403, "auth_required");
    let bad = site
        .post(&guest_path(&open), json!({ "display_name": "" }), None)
        .await;
    bad.refused(400, "bad_display_name");
    assert_eq!(bad.body["field"], "display_name");
    site.post(
        "/api/v1/meetings/ZZZ-ZZZZ-ZZZ/guest-token",
        json!({ "display_name": "M" }),
        None,
    )
    .await
    .refused(404, "meeting_not_found");
    // By id too, as every other meeting route.
    let by_id = site
        .post(
            &format!("/api/v1/meetings/{}/guest-token", id_of(&open)),
            json!({ "display_name": "M" }),
            None,
        )
        .await;
    assert_eq!(by_id.ok(200)["meeting"], open);
    site.post(
        "/api/v1/meetings/0b8f6f7e-1c0e-4e55-9f59-6f6f1c3f7a10/guest-token",
        json!({ "display_name": "M" }),
        None,
    )
    .await
    .refused(404, "meeting_not_found");

    for meeting in [&open, &closed] {
        site.post(
            &format!("/api/v1/meetings/{}/end", id_of(meeting)),
            json!({}),
            Some(&alice),
        )
        .await
        .ok(200);
    }
    site.post(&guest_path(&open), json!({ "display_name": "Mira" }), None)
        .await
        .refused(410, "meeting_ended");
    // An ended meeting is ended, whoever it admitted.
    site.post(
        &guest_path(&closed),
        json!({ "display_name": "Mira" }),
        None,
    )
    .await
    .refused(410, "meeting_ended");

    // Limited per client address.
    let ask = |ip: &'static str| {
        site.call(
            Method::POST,
            "/api/v1/meetings/ZZZ-ZZZZ-ZZZ/guest-token",
            Some(json!({ "display_name": "M" })),
            None,
            ip,
        )
    };
    for _ in 0..30 {
        assert_eq!(ask("203.0.113.9").await.status, 404);
    }
    let refused = ask("203.0.113.9").await;
    refused.refused(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(ask("203.0.113.10").await.status, 404, "another address");
}

#[tokio::test]
async fn only_the_creator_changes_settings_or_ends_a_meeting() {
    let (site, alice, alice_id) = site_with_alice().await;
    let (bob, _) = site.user("bob@example.org", "Bob").await;
    let meeting = site
        .create(&alice, json!({ "display_name": "Before" }))
        .await;
    let id = id_of(&meeting);
    let settings = format!(
        "/api/v1/meetings/{}/settings",
        code_of(&meeting).to_lowercase()
    );
    site.repo
        .join(&JoinRequest {
            meeting_id: MeetingId::parse(&id).unwrap(),
            user_id: None,
            display_name: DisplayName::parse("Early guest").unwrap(),
            ip_address: None,
            user_agent: None,
            client_version: None,
        })
        .await
        .unwrap();

    site.patch(&settings, json!({ "max_participants": 12 }), Some(&bob))
        .await
        .refused(403, "not_creator");
    let manager = site.key(&bob, &["meetings:manage"]).await;
    site.patch(&settings, json!({ "max_participants": 12 }), Some(&manager))
        .await
        .refused(403, "not_creator");

    let changed = site
        .patch(
            &settings,
            json!({ "display_name": "After", "max_participants": 12, "waiting_room_enabled": true }),
            Some(&alice),
        )
        .await;
    let changed = changed.ok(200).clone();
    assert_eq!(changed["display_name"], "After");
    assert_eq!(changed["max_participants"], 12);
    assert_eq!(changed["waiting_room_enabled"], true);
    assert_eq!(
        changed["require_auth"], meeting["require_auth"],
        "left as it was"
    );
    assert_eq!(changed["status"], "active", "somebody joined");
    let read = site
        .get(&format!("/api/v1/meetings/{id}"), Some(&alice))
        .await;
    assert_eq!(meeting_part(read.ok(200)), changed);
    let hash: std::collections::HashMap<String, String> = site
        .world
        .redis
        .conn()
        .hgetall(format!("meeting:{id}"))
        .await
        .unwrap();
    assert_eq!(
        hash["display_name"], "After",
        "the running meeting's hash too"
    );
    let rows = site.audit_rows("meeting_settings_changed").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.map(|u| u.to_string()), Some(alice_id.clone()));
    assert_eq!(rows[0].1.as_deref(), Some(id.as_str()));
    assert_eq!(
        rows[0].2["changes"],
        json!({
            "display_name": { "from": "Before", "to": "After" },
            "max_participants": { "from": 100, "to": 12 },
            "waiting_room_enabled": { "from": false, "to": true },
        })
    );

    // Nothing to change: the meeting as it is, no row.
    let same = site
        .patch(&settings, json!({ "max_participants": 12 }), Some(&alice))
        .await;
    assert_eq!(same.ok(200)["max_participants"], 12);
    assert_eq!(site.audit_rows("meeting_settings_changed").await.len(), 1);
    for (body, code) in [
        (json!({ "max_participants": 0 }), "bad_max_participants"),
        (json!({ "display_name": "" }), "bad_display_name"),
        (json!({ "colour": "red" }), "bad_request"),
    ] {
        site.patch(&settings, body, Some(&alice))
            .await
            .refused(400, code);
    }
    site.patch(
        "/api/v1/meetings/ZZZ-ZZZZ-ZZZ/settings",
        json!({ "max_participants": 3 }),
        Some(&alice),
    )
    .await
    .refused(404, "meeting_not_found");

    // The end.
    let end = format!("/api/v1/meetings/{id}/end");
    site.post(&end, json!({}), Some(&bob))
        .await
        .refused(403, "not_creator");
    let ended = site.post(&end, json!({}), Some(&alice)).await;
    let ended = ended.ok(200).clone();
    assert_eq!(ended["status"], "ended");
    let ended_at = ended["ended_at"].as_str().unwrap().to_owned();
    let rows = site.audit_rows("meeting_ended").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0.map(|u| u.to_string()), Some(alice_id));
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM meet.meeting_participants \
         WHERE meeting_id = $1::uuid AND leave_reason = 'meeting_ended'",
    )
    .bind(&id)
    .fetch_one(site.world.postgres.pool())
    .await
    .unwrap();
    assert_eq!(left, 1);

    // Again: the same end.
    let again = site.post(&end, json!({}), Some(&alice)).await;
    assert_eq!(again.ok(200)["ended_at"].as_str(), Some(ended_at.as_str()));
    assert_eq!(site.audit_rows("meeting_ended").await.len(), 1);
    let read = site
        .get(&format!("/api/v1/meetings/{id}"), Some(&alice))
        .await;
    let read = read.ok(200);
    assert_eq!(read["status"], "ended");
    assert_eq!(read["ended_at"].as_str(), Some(ended_at.as_str()));
    assert!(read.get("join_grant").is_none());
    site.patch(&settings, json!({ "max_participants": 3 }), Some(&alice))
        .await
        .refused(409, "meeting_ended");
}

/// A Tavern web session signed in as the Discord user `id`: its cookie and CSRF token.
async fn web_session(site: &Site, id: u64, name: &str) -> (String, String) {
    let sessions = &site.world.ctx.sessions;
    let profile = web::session::SessionUser {
        id: discord::model::UserId::new(id),
        username: name.to_lowercase(),
        global_name: Some(name.to_owned()),
        avatar: None,
    };
    let grant = discord::oauth::TokenGrant {
        access_token: base::Secret::from("discord access token"),
        refresh_token: None,
        expires_in: Duration::from_secs(3600),
        scopes: vec!["identify".into()],
    };
    let session = sessions.log_in(None, profile, &grant).await.unwrap();
    (
        format!(
            "{}={}",
            sessions.config().cookie_name(),
            session.id().expose()
        ),
        session.csrf_token().to_owned(),
    )
}

impl Site {
    /// `POST /meet/{code}/grant` with the session cookie and CSRF token given.
    async fn session_grant(&self, code: &str, cookie: Option<&str>, csrf: Option<&str>) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/meet/{code}/grant", self.base))
            .header("x-forwarded-for", "198.51.100.1");
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }
}

#[tokio::test]
async fn a_signed_in_web_session_gets_a_grant_named_by_its_account_also_where_auth_is_required() {
    let (site, alice, _) = site_with_alice().await;
    let open = site.create(&alice, json!({ "display_name": "Open" })).await;
    let members = site
        .create(
            &alice,
            json!({ "display_name": "Members", "require_auth": true }),
        )
        .await;
    let (cookie, csrf) = web_session(&site, 4242, "Mira").await;

    // The page tells the script where a signed-in visitor's grant is, and only them.
    let page = |cookie: Option<&str>| {
        let mut request = site
            .http
            .get(format!("{}/meet/{}", site.base, code_of(&members)));
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let signed_in = page(Some(&cookie)).await;
    assert!(
        signed_in.contains(&format!(
            "data-grant-url=\"/meet/{}/grant\"",
            code_of(&members)
        )),
        "{signed_in}"
    );
    assert!(signed_in.contains(&format!("name=\"csrf-token\" content=\"{csrf}\"")));
    assert!(!page(None).await.contains("data-grant-url"));

    let mut accounts = Vec::new();
    for meeting in [&open, &members] {
        let answer = site
            .session_grant(&code_of(meeting), Some(&cookie), Some(&csrf))
            .await;
        let body = answer.ok(200).clone();
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(&body["meeting"], meeting);
        assert_eq!(
            body["webtransport_url"],
            format!("https://mc-1.test:4433/meetings/{}", id_of(meeting))
        );
        let (ticket, _) = site
            .auth
            .meeting_ticket(body["token"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(ticket.display_name.as_str(), "Mira");
        assert_eq!(body["display_name"], "Mira", "the name the others see");
        assert_eq!(ticket.meeting_id.to_string(), id_of(meeting));
        assert_eq!(
            ticket.participant_id.to_string(),
            body["participant_id"].as_str().unwrap()
        );
        let wt = WtToken::parse(body["wt_token"].as_str().unwrap()).unwrap();
        let redeemed = site.repo.redeem_connection_token(&wt).await.unwrap();
        assert_eq!(redeemed.unwrap().participant_id, ticket.participant_id);
        accounts.push(
            ticket
                .user_id
                .expect("a signed-in user's grant names the account"),
        );
    }
    // One account, linked to the Discord user, found again on the second grant.
    assert_eq!(accounts[0], accounts[1]);
    let linked: (uuid::Uuid, String) = sqlx::query_as(
        "SELECT user_id, provider_user_id FROM meet.oauth_providers WHERE provider = 'discord'",
    )
    .fetch_one(site.world.postgres.pool())
    .await
    .unwrap();
    assert_eq!(linked, (accounts[0].as_uuid(), "4242".to_owned()));

    // The code as typed; an unknown code; an ended meeting.
    site.session_grant(
        &code_of(&open).replace('-', "").to_lowercase(),
        Some(&cookie),
        Some(&csrf),
    )
    .await
    .ok(200);
    site.session_grant("ZZZ-ZZZZ-ZZZ", Some(&cookie), Some(&csrf))
        .await
        .refused(404, "meeting_not_found");
    site.post(
        &format!("/api/v1/meetings/{}/end", id_of(&open)),
        json!({}),
        Some(&alice),
    )
    .await
    .ok(200);
    site.session_grant(&code_of(&open), Some(&cookie), Some(&csrf))
        .await
        .refused(410, "meeting_ended");
}

#[tokio::test]
async fn the_page_of_no_meeting_or_of_an_ended_one_says_so_and_offers_no_join_form() {
    let site = site().await;
    let (alice, _) = site.user("alice@example.org", "Alice").await;
    let meeting = site.create(&alice, json!({ "display_name": "Open" })).await;
    let (cookie, _) = web_session(&site, 4242, "Mira").await;
    let page = |code: String, cookie: Option<String>| {
        let mut request = site.http.get(format!("{}/meet/{code}", site.base));
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let offers_to_join =
        |page: &str| page.contains("id=\"join-form\"") || page.contains("id=\"invite-link\"");

    // An open meeting's page invites and offers the form.
    let (status, open) = page(code_of(&meeting), None).await;
    assert_eq!(status, 200, "{open}");
    assert!(offers_to_join(&open), "{open}");

    // Its title is the meeting's name, escaped as the page escapes names.
    let named = site
        .create(&alice, json!({ "display_name": "Friday <table> & co" }))
        .await;
    let (status, friday) = page(code_of(&named), None).await;
    assert_eq!(status, 200, "{friday}");
    assert!(
        friday.contains("<title>Friday &lt;table&gt; &amp; co · Tavern</title>"),
        "{friday}"
    );

    // A well-formed code that names no meeting.
    let (status, none) = page("AAA-AAAA-AAA".into(), None).await;
    assert_eq!(status, 404, "{none}");
    assert!(none.contains("No meeting has this code"), "{none}");
    assert!(!offers_to_join(&none), "{none}");

    // An ended meeting: said, with no invitation or form; a signed-in visitor's page
    // names the recordings control (the host's recordings are listed through it).
    site.post(
        &format!("/api/v1/meetings/{}/end", id_of(&meeting)),
        json!({}),
        Some(&alice),
    )
    .await
    .ok(200);
    let (status, ended) = page(code_of(&meeting), None).await;
    assert_eq!(status, 410, "{ended}");
    assert!(ended.contains("This meeting has ended."), "{ended}");
    assert!(ended.contains("Open"), "its name: {ended}");
    assert!(
        ended.contains("<title>Open (ended) · Tavern</title>"),
        "its title names it: {ended}"
    );
    assert!(ended.contains("data-ended=\"1\""), "{ended}");
    assert!(!offers_to_join(&ended), "{ended}");
    assert!(!ended.contains("data-recording-url"), "{ended}");
    let (status, signed_in) = page(code_of(&meeting), Some(cookie)).await;
    assert_eq!(status, 410, "{signed_in}");
    assert!(
        signed_in.contains(&format!(
            "data-recording-url=\"/meet/{}/recording\"",
            code_of(&meeting)
        )),
        "{signed_in}"
    );
    assert!(!offers_to_join(&signed_in), "{signed_in}");
}

#[tokio::test]
async fn a_long_value_in_the_address_is_quoted_back_cut_to_forty_characters() {
    let site = site().await;
    let long = format!("{}{}", "x".repeat(40), "y".repeat(260));
    let get = |path: String| {
        let request = site.http.get(format!("{}{path}", site.base));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let cut = format!("“{}…”", "x".repeat(40));

    // The meeting page of something that is no code.
    let (status, page) = get(format!("/meet/{long}")).await;
    assert_eq!(status, 404, "{page}");
    // (The header's login link carries the whole address back; the page's text not.)
    let main = page.split("<main").nth(1).unwrap_or_default();
    assert!(main.contains(&cut), "{page}");
    assert!(!main.contains("yy"), "{page}");

    // The meetings page's code field, sent the same.
    let (status, page) = get(format!("/meet?code={long}")).await;
    assert_eq!(status, 400, "{page}");
    let reason = page
        .split("id=\"code-error\"")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("the reason is shown: {page}"));
    assert!(reason.contains(&cut), "{reason}");
    assert!(!reason.contains("yy"), "{reason}");
}

#[tokio::test]
async fn a_link_from_another_site_does_not_join_at_once_but_a_bookmark_or_a_tavern_page_does() {
    let site = site().await;
    let (alice, _) = site.user("alice@example.org", "Alice").await;
    let meeting = site.create(&alice, json!({ "display_name": "Open" })).await;
    let (cookie, _) = web_session(&site, 4242, "Mira").await;
    let page = |query: &'static str, fetch_site: Option<&'static str>| {
        let mut request = site
            .http
            .get(format!("{}/meet/{}{query}", site.base, code_of(&meeting)))
            .header(reqwest::header::COOKIE, &cookie);
        if let Some(fetch_site) = fetch_site {
            request = request.header("sec-fetch-site", fetch_site);
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let joins_at_once = |page: &str| page.contains("data-autojoin=\"1\"");
    // The signed-in visitor's own name fills the form; whether the page joins by
    // itself depends on where the visit came from.
    for from in ["none", "same-origin"] {
        let page = page("?autojoin=1", Some(from)).await;
        assert!(joins_at_once(&page), "{from}: {page}");
        assert!(page.contains("value=\"Mira\""), "{page}");
    }
    for from in [Some("cross-site"), Some("same-site"), None] {
        let page = page("?autojoin=1&name=Mira", from).await;
        assert!(!joins_at_once(&page), "{from:?}: {page}");
        assert!(page.contains("value=\"Mira\""), "{page}");
    }
    assert!(!joins_at_once(&page("", Some("none")).await));
}

#[tokio::test]
async fn the_session_grant_refuses_callers_without_a_session_or_without_its_csrf_token() {
    let (site, alice, _) = site_with_alice().await;
    let code = code_of(&site.create(&alice, json!({ "display_name": "Open" })).await);
    let (cookie, csrf) = web_session(&site, 4242, "Mira").await;

    let nobody = site.session_grant(&code, None, None).await;
    assert_eq!(nobody.status, 401, "{}", nobody.body);
    let stranger = site.session_grant(&code, None, Some(&csrf)).await;
    assert_eq!(stranger.status, 401, "{}", stranger.body);
    let no_csrf = site.session_grant(&code, Some(&cookie), None).await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    let wrong_csrf = site
        .session_grant(&code, Some(&cookie), Some("0123456789abcdef"))
        .await;
    assert_eq!(wrong_csrf.status, 403, "{}", wrong_csrf.body);
    // The meetings' own bearer credentials are not a web session.
    let bearer = site
        .call(
            Method::POST,
            &format!("/meet/{code}/grant"),
            None,
            Some(&alice),
            "198.51.100.1",
        )
        .await;
    assert_eq!(bearer.status, 403, "{}", bearer.body);
    // None of them made an account or a grant.
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM meet.oauth_providers")
        .fetch_one(site.world.postgres.pool())
        .await
        .unwrap();
    assert_eq!(links, 0);
}

#[tokio::test]
async fn a_meeting_to_start_now_gets_its_controller_at_creation_and_a_scheduled_one_at_its_first_grant()
 {
    let (site, alice, _) = site_with_alice().await;
    let assigned = |id: String| {
        let pool = site.world.postgres.pool().clone();
        async move {
            let (controller, region): (Option<String>, Option<String>) = sqlx::query_as(
                "SELECT assigned_controller_id, assigned_region FROM meet.meetings \
                 WHERE meeting_id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
            controller.zip(region)
        }
    };
    let capacity = |controller: &'static str| {
        let redis = site.world.redis.clone();
        async move {
            let mut conn = redis.conn();
            let current: String = redis::AsyncCommands::hget(
                &mut conn,
                format!("controller:{controller}:capacity"),
                "current_meetings",
            )
            .await
            .unwrap();
            current
        }
    };
    let before = capacity("mc-1").await;

    let now = site.create(&alice, json!({ "display_name": "Now" })).await;
    let (controller, _) = assigned(id_of(&now)).await.expect("assigned at creation");
    assert_eq!(controller, "mc-1");
    let counted = capacity("mc-1").await;
    assert_eq!(
        counted.parse::<i64>().unwrap(),
        before.parse::<i64>().unwrap() + 1,
        "the assignment is counted"
    );
    let grant = site
        .get(&format!("/api/v1/meetings/{}", id_of(&now)), Some(&alice))
        .await;
    assert_eq!(
        grant.ok(200)["join_grant"]["webtransport_url"],
        format!("https://mc-1.test:4433/meetings/{}", id_of(&now))
    );
    assert_eq!(capacity("mc-1").await, counted, "the grant kept it");

    let later = site
        .create(
            &alice,
            json!({ "display_name": "Later", "scheduled_start_time": "2099-01-01T19:00:00Z" }),
        )
        .await;
    assert_eq!(assigned(id_of(&later)).await, None);
    site.get(&format!("/api/v1/meetings/{}", id_of(&later)), Some(&alice))
        .await
        .ok(200);
    assert!(
        assigned(id_of(&later)).await.is_some(),
        "chosen at the first grant"
    );
}

#[tokio::test]
async fn names_that_hide_or_reverse_text_are_refused_naming_the_character() {
    let (site, alice, _) = site_with_alice().await;
    let refused = |answer: Answer, named: &str| {
        answer.refused(400, "bad_display_name");
        assert_eq!(answer.body["field"], "display_name", "{}", answer.body);
        let message = answer.body["error"].as_str().unwrap();
        assert!(
            message.contains("display_name") && message.contains(named),
            "{message}"
        );
    };

    refused(
        site.post(
            "/api/v1/meetings",
            json!({ "display_name": "a\u{200B}b\u{202E}" }),
            Some(&alice),
        )
        .await,
        "U+200B",
    );
    let meeting = site
        .create(&alice, json!({ "display_name": "Zoë's 山 night 🐉" }))
        .await;
    assert_eq!(meeting["display_name"], "Zoë's 山 night 🐉");
    refused(
        site.patch(
            &format!("/api/v1/meetings/{}/settings", id_of(&meeting)),
            json!({ "display_name": "x\u{2066}y" }),
            Some(&alice),
        )
        .await,
        "U+2066",
    );
    let guest = format!("/api/v1/meetings/{}/guest-token", code_of(&meeting));
    refused(
        site.post(&guest, json!({ "display_name": "\u{202E}evil" }), None)
            .await,
        "U+202E",
    );
    refused(
        site.post(&guest, json!({ "display_name": "Mi\u{FEFF}ra" }), None)
            .await,
        "U+FEFF",
    );
    // A family emoji is joined by U+200D, and stays one.
    let family = "Mira \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
    let answer = site
        .post(&guest, json!({ "display_name": family }), None)
        .await;
    assert_eq!(answer.ok(200)["display_name"], family);
    let unchanged = site
        .get(
            &format!("/api/v1/meetings/{}", id_of(&meeting)),
            Some(&alice),
        )
        .await;
    assert_eq!(unchanged.ok(200)["display_name"], "Zoë's 山 night 🐉");
}

/// Sends `body` to `path` in HTTP/1.1 chunks (no `Content-Length`, so only reading it
/// finds its size) and reads the answer: its status and JSON body.
async fn chunked_post(base: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    // The server may answer and close before it has read everything: writing then
    // fails, which is no concern of the test. The write half is kept until the answer
    // is read (dropped, it would end the request early).
    let writer = tokio::spawn(async move {
        let sent = async {
            write.write_all(head.as_bytes()).await?;
            for chunk in body.chunks(64 * 1024) {
                write
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                write.write_all(chunk).await?;
                write.write_all(b"\r\n").await?;
            }
            write.write_all(b"0\r\n\r\n").await
        }
        .await;
        (write, sent)
    });
    let mut answer = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n) = read.read(&mut buf).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let _ = writer.await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an answer to {path}: {text:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_as_too_large_naming_the_limit() {
    let site = site().await;
    let mut body = br#"{"display_name":""#.to_vec();
    // Over the server's 1 MiB and over axum's own 2 MiB for JSON bodies: this router
    // is served without the site's layers, which hold bodies to the server's limit.
    body.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024 + 1));
    body.extend(br#""}"#);
    let (status, answer) = chunked_post(
        &site.base,
        "/api/v1/meetings/ZZZ-ZZZZ-ZZZ/guest-token",
        body,
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(
        answer,
        json!({ "error": "the body is larger than 1 MiB", "code": "payload_too_large" })
    );
}
