//! Routes declared with their access, over real HTTP and a real Redis: who gets in,
//! who does not, and what they are told.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::Method;
use discord::oauth::TokenGrant;
use serde::Deserialize;
use serde_json::{Value, json};
use store::harness::TestRedis;
use store::redis;
use url::Url;
use web::access::{Access, Caller, Denied, JsonBody, RouteSpec, Routes, Scope};
use web::session::{COOKIE, SessionConfig, SessionUser, Sessions};
use web::tokens::{ApiTokens, TokenName};

#[derive(Debug, Deserialize)]
struct UserQuery {
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Thing {
    name: String,
}

fn who(caller: &Caller) -> String {
    match caller {
        Caller::User(current) => format!("user {}", current.user.id),
        Caller::Token(token) => format!("token {}", token.name),
    }
}

async fn list(
    State(label): State<&'static str>,
    caller: Caller,
    Query(q): Query<UserQuery>,
) -> Result<axum::Json<Value>, Denied> {
    let user = caller.acts_for(q.user.as_deref())?;
    Ok(axum::Json(
        json!({"state": label, "caller": who(&caller), "for": user.to_string()}),
    ))
}

async fn add(
    caller: Caller,
    Query(q): Query<UserQuery>,
    JsonBody(thing): JsonBody<Thing>,
) -> Result<axum::Json<Value>, Denied> {
    let user = caller.acts_for(q.user.as_deref())?;
    Ok(axum::Json(
        json!({"added": thing.name, "caller": who(&caller), "for": user.to_string()}),
    ))
}

async fn admin(caller: Caller) -> String {
    who(&caller)
}

async fn profile(caller: Caller) -> String {
    who(&caller)
}

async fn public(caller: Option<Caller>) -> String {
    caller.map_or_else(|| "anonymous".to_owned(), |c| who(&c))
}

struct App {
    base: Url,
    sessions: Sessions,
    tokens: ApiTokens,
    manifest: Vec<RouteSpec>,
    redis: store::Redis,
    _server: TestRedis,
    http: reqwest::Client,
}

async fn spawn() -> App {
    discord::install_crypto_provider();
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let sessions = Sessions::new(redis.clone(), SessionConfig::for_public_url(&base));
    let routes = Routes::new(&sessions)
        .get("/api/things", Access::user_or_token("things:read"), list)
        .post("/api/things", Access::user_or_token("things:write"), add)
        .get("/api/admin", Access::token("things:admin"), admin)
        .post("/api/profile", Access::User, profile)
        .get("/public", Access::Public, public)
        .with_state("the state");
    let manifest = routes.manifest().to_vec();
    let (router, _) = routes.into_parts();
    tokio::spawn(web::serve(listener, router, std::future::pending()));
    App {
        base,
        tokens: ApiTokens::new(redis.clone()),
        sessions,
        manifest,
        redis,
        _server: server,
        http: reqwest::Client::new(),
    }
}

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl App {
    fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap()
    }

    /// A logged-in session of user `id`: its cookie and CSRF token.
    async fn session(&self, id: u64) -> (String, String) {
        let user = SessionUser {
            id: discord::model::UserId::new(id),
            username: format!("user{id}"),
            global_name: None,
            avatar: None,
        };
        let grant = TokenGrant {
            access_token: "discord-access".into(),
            refresh_token: None,
            expires_in: Duration::from_secs(3600),
            scopes: vec![],
        };
        let session = self.sessions.log_in(None, user, &grant).await.unwrap();
        (
            format!("{COOKIE}={}", session.id().expose()),
            session.csrf_token().to_owned(),
        )
    }

    async fn token(&self, name: &str, scopes: &str) -> String {
        let created = self
            .tokens
            .create(
                &TokenName::parse(name).unwrap(),
                Scope::parse_list(scopes).unwrap(),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        created.token.expose_str().to_owned()
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            headers,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }
}

#[tokio::test]
async fn every_declared_route_is_in_the_manifest_with_its_access() {
    let app = spawn().await;
    let shown: Vec<String> = app.manifest.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "GET /api/things (signed-in user or token with things:read)",
            "POST /api/things (signed-in user or token with things:write)",
            "GET /api/admin (token with things:admin)",
            "POST /api/profile (signed-in user)",
            "GET /public (public)",
        ]
    );
    let changing: Vec<&str> = app
        .manifest
        .iter()
        .filter(|r| r.changes_state())
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(changing, ["/api/things", "/api/profile"]);
    assert_eq!(app.manifest[0].method, Method::GET);
}

#[tokio::test]
async fn anonymous_callers_get_401_in_json() {
    let app = spawn().await;
    for request in [
        app.get("/api/things?user=5"),
        app.post("/api/things?user=5").json(&json!({"name": "x"})),
        app.get("/api/admin"),
        app.post("/api/profile"),
    ] {
        let answer = app.send(request).await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert!(answer.body["error"].is_string(), "{}", answer.body);
        assert!(answer.headers.contains_key("www-authenticate"));
    }
    let answer = app.send(app.get("/public")).await;
    assert_eq!((answer.status, answer.body), (200, json!("anonymous")));
}

#[tokio::test]
async fn the_guards_refusals_say_their_kind_in_code_as_the_sites_other_refusals_do() {
    let app = spawn().await;
    let nobody = app.send(app.get("/api/things?user=5")).await;
    assert_eq!(nobody.status, 401, "{}", nobody.body);
    assert_eq!(nobody.body["code"], "unauthorized", "{}", nobody.body);
    assert_eq!(nobody.body["error"], "not logged in");
    assert_eq!(nobody.body["login"], "/login/discord");
    assert!(nobody.headers.contains_key("www-authenticate"));

    let reader = app.token("reader", "things:read").await;
    let lacking = app
        .send(
            app.get("/api/admin")
                .header("authorization", format!("Bearer {reader}")),
        )
        .await;
    assert_eq!(lacking.status, 403, "{}", lacking.body);
    assert_eq!(lacking.body["code"], "forbidden", "{}", lacking.body);
    assert!(
        lacking.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("things:admin")),
        "{}",
        lacking.body
    );
    assert!(lacking.body.get("login").is_none(), "{}", lacking.body);
    assert!(!lacking.headers.contains_key("www-authenticate"));

    // The body extractor's refusal says its kind too.
    let (cookie, csrf) = app.session(7).await;
    let unreadable = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(unreadable.status, 400, "{}", unreadable.body);
    assert_eq!(
        unreadable.body["code"], "bad_request",
        "{}",
        unreadable.body
    );
}

#[tokio::test]
async fn a_session_acts_for_its_own_user_and_changes_state_only_with_its_csrf_token() {
    let app = spawn().await;
    let (cookie, csrf) = app.session(7).await;

    let own = app
        .send(app.get("/api/things").header("cookie", &cookie))
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["for"], "7");
    assert_eq!(own.body["state"], "the state");
    let named_self = app
        .send(app.get("/api/things?user=7").header("cookie", &cookie))
        .await;
    assert_eq!(named_self.body["for"], "7");
    let other = app
        .send(app.get("/api/things?user=8").header("cookie", &cookie))
        .await;
    assert_eq!(other.status, 403, "another user's data: {}", other.body);
    assert!(other.body["error"].is_string());

    let no_csrf = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .json(&json!({"name": "sword"})),
        )
        .await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    let wrong_csrf = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .header("x-csrf-token", "0".repeat(64))
                .json(&json!({"name": "sword"})),
        )
        .await;
    assert_eq!(wrong_csrf.status, 403);
    let added = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .json(&json!({"name": "sword"})),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.body["added"], "sword");
    assert_eq!(added.body["caller"], "user 7");

    let profile = app
        .send(
            app.post("/api/profile")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf),
        )
        .await;
    assert_eq!(profile.status, 200);

    // A session is not a token.
    let admin = app
        .send(app.get("/api/admin").header("cookie", &cookie))
        .await;
    assert_eq!(admin.status, 401, "{}", admin.body);
}

#[tokio::test]
async fn csrf_and_cross_origin_refusals_say_their_kind_in_code() {
    let app = spawn().await;
    let (cookie, csrf) = app.session(7).await;

    let no_csrf = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .json(&json!({"name": "sword"})),
        )
        .await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    assert_eq!(
        no_csrf.body,
        json!({
            "error": "CSRF token missing: send the X-CSRF-Token header",
            "code": "forbidden",
        })
    );

    let wrong_csrf = app
        .send(
            app.post("/api/profile")
                .header("cookie", &cookie)
                .header("x-csrf-token", "0".repeat(64)),
        )
        .await;
    assert_eq!(wrong_csrf.status, 403, "{}", wrong_csrf.body);
    assert_eq!(wrong_csrf.body["code"], "forbidden", "{}", wrong_csrf.body);
    assert!(wrong_csrf.body["error"].is_string(), "{}", wrong_csrf.body);

    let cross_origin = app
        .send(
            app.post("/api/profile")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(cross_origin.status, 403, "{}", cross_origin.body);
    assert_eq!(
        cross_origin.body,
        json!({"error": "cross-origin request refused", "code": "forbidden"})
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_never_an_empty_document() {
    let app = spawn().await;
    let (cookie, csrf) = app.session(7).await;
    let as_text = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .body(r#"{"name": "sword"}"#),
        )
        .await;
    assert_eq!(as_text.status, 415, "{}", as_text.body);
    assert!(as_text.body["error"].as_str().unwrap().contains("JSON"));
    let empty = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf),
        )
        .await;
    assert_eq!(empty.status, 415, "{}", empty.body);
    let broken = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(broken.status, 400, "{}", broken.body);
    assert!(broken.body["error"].is_string());
    let wrong_shape = app
        .send(
            app.post("/api/things")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .json(&json!({"nom": "sword"})),
        )
        .await;
    assert_eq!(wrong_shape.status, 400, "{}", wrong_shape.body);
}

#[tokio::test]
async fn a_token_acts_for_any_named_user_without_csrf_and_only_within_its_scopes() {
    let app = spawn().await;
    let token = app.token("ci-bot", "things:read,things:write").await;
    let bearer = format!("Bearer {token}");

    let read = app
        .send(
            app.get("/api/things?user=42")
                .header("authorization", &bearer),
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["for"], "42");
    assert_eq!(read.body["caller"], "token ci-bot");
    let unnamed = app
        .send(app.get("/api/things").header("authorization", &bearer))
        .await;
    assert_eq!(unnamed.status, 400, "a token must name the user");

    let write = app
        .send(
            app.post("/api/things?user=42")
                .header("authorization", &bearer)
                .json(&json!({"name": "shield"})),
        )
        .await;
    assert_eq!(write.status, 200, "no CSRF for tokens: {}", write.body);

    let admin = app
        .send(app.get("/api/admin").header("authorization", &bearer))
        .await;
    assert_eq!(admin.status, 403, "lacks things:admin: {}", admin.body);
    let profile = app
        .send(app.post("/api/profile").header("authorization", &bearer))
        .await;
    assert_eq!(profile.status, 403, "users only: {}", profile.body);

    let reader = app.token("reader", "things:read").await;
    let write = app
        .send(
            app.post("/api/things?user=42")
                .header("authorization", format!("Bearer {reader}"))
                .json(&json!({"name": "shield"})),
        )
        .await;
    assert_eq!(write.status, 403, "read-only token: {}", write.body);

    for bad in [
        format!("Bearer tavern_{}", "0".repeat(64)),
        "Bearer nonsense".to_owned(),
        "Basic dXNlcjpwdw==".to_owned(),
    ] {
        let answer = app
            .send(app.get("/api/things?user=42").header("authorization", &bad))
            .await;
        assert_eq!(answer.status, 401, "{bad}: {}", answer.body);
    }

    assert!(
        app.tokens
            .revoke(&TokenName::parse("ci-bot").unwrap())
            .await
            .unwrap()
    );
    let revoked = app
        .send(
            app.get("/api/things?user=42")
                .header("authorization", &bearer),
        )
        .await;
    assert_eq!(revoked.status, 401, "revoked: {}", revoked.body);
    assert!(
        !app.tokens
            .revoke(&TokenName::parse("ci-bot").unwrap())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn tokens_are_stored_hashed_under_taverns_keys_with_name_scopes_and_time() {
    let app = spawn().await;
    let token = app.token("backup", "things:read").await;
    assert!(
        token.starts_with("tavern_") && token.len() == 7 + 64,
        "{token}"
    );

    let keys = app.redis.scan("*").await.unwrap();
    assert!(keys.iter().all(|k| k.starts_with("tavern:")), "{keys:?}");
    for key in &keys {
        let fields: Vec<String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut app.redis.conn())
            .await
            .unwrap();
        for field in fields {
            assert!(!field.contains(&token[7..]), "{key} holds the token");
        }
    }
    let list = app.tokens.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name.as_str(), "backup");
    assert_eq!(list[0].scopes, [Scope::parse("things:read").unwrap()]);

    let again = app
        .tokens
        .create(
            &TokenName::parse("backup").unwrap(),
            Scope::parse_list("things:read").unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
}
