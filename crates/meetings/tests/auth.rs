//! Authentication over real PostgreSQL and Redis, through the router `meetings::feature`
//! builds, served by Tavern's own server (client addresses through a trusted proxy):
//! registration, login, logout and the blacklist, the JWKS and key rotation, expired,
//! revoked, forged and wrong-scope credentials, API keys, rate limits, a restart over
//! the same stores, and secrets kept out of the logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use meetings::auth::{Auth, Authenticated, Jwks, MeetingsSecretKey, Scope, verify_with_jwks};
use meetings::web::ApiError;
use meetings::{KEY_ROTATION_JOB, MeetingsConfig};
use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::World;

const PASSWORD: &str = "correct horse 7";

struct Site {
    world: World,
    base: String,
    http: reqwest::Client,
    config: MeetingsConfig,
    feature: feature::Feature,
}

fn config(secret: &MeetingsSecretKey) -> MeetingsConfig {
    MeetingsConfig {
        secret_key: Some(secret.clone()),
        ..MeetingsConfig::default()
    }
}

/// Serves `router` as Tavern does, trusting 127.0.0.1 as a proxy so `X-Forwarded-For`
/// names the client.
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

/// The meetings feature over `world`, migrated, its start-up work done, served.
async fn start(world: World, config: MeetingsConfig) -> Site {
    let mut feature = meetings::feature(&world.ctx, config.clone());
    world.migrate(std::slice::from_ref(&feature)).await;
    for work in &feature.startup {
        work.run().await.unwrap();
    }
    let router = feature
        .routes
        .take()
        .unwrap()
        .merge(probe_router(&world, &config));
    let base = serve(router).await;
    Site {
        world,
        base,
        http: reqwest::Client::new(),
        config,
        feature,
    }
}

async fn site() -> Site {
    let world = World::with_postgres().await;
    start(world, config(&MeetingsSecretKey::generate().unwrap())).await
}

/// A route as later parts will write one: authenticated, needing `meetings:create`.
/// Built on its own `Auth` over the same stores and secret (as a second replica).
fn probe_router(world: &World, config: &MeetingsConfig) -> axum::Router {
    async fn probe(
        State(_auth): State<Auth>,
        who: Authenticated,
    ) -> Result<axum::Json<Value>, ApiError> {
        who.require(Scope::MeetingsCreate)?;
        Ok(axum::Json(json!({ "user_id": who.user_id.to_string() })))
    }
    axum::Router::new()
        .route("/probe/create", get(probe))
        .with_state(meetings::auth(&world.ctx, config))
}

impl Site {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn now(&self) -> DateTime<Utc> {
        base::Clock::now(self.world.clock.as_ref())
    }

    async fn post(
        &self,
        path: &str,
        body: Value,
        bearer: Option<&str>,
        ip: &str,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("x-forwarded-for", ip)
            .json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }

    async fn register(&self, email: &str) -> Value {
        let (status, body, _) = self
            .post(
                "/api/v1/auth/register",
                json!({ "email": email, "password": PASSWORD, "display_name": "Alice" }),
                None,
                "198.51.100.1",
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn login(
        &self,
        email: &str,
        password: &str,
        ip: &str,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        self.post(
            "/api/v1/auth/user/token",
            json!({ "email": email, "password": password }),
            None,
            ip,
        )
        .await
    }

    /// `POST /api/v1/api-keys` with `body`, as `bearer` from `ip`: the status and body.
    async fn create_key(&self, body: Value, bearer: &str, ip: &str) -> (u16, Value) {
        let (status, body, _) = self.post("/api/v1/api-keys", body, Some(bearer), ip).await;
        (status, body)
    }

    /// `POST /api/v1/auth/logout` with `token` from `ip`: the status and body.
    async fn logout(&self, token: &str, ip: &str) -> (u16, Value) {
        let (status, body, _) = self
            .post("/api/v1/auth/logout", json!({}), Some(token), ip)
            .await;
        (status, body)
    }

    /// The one row `sql` finds with `arg` bound to `$1`.
    async fn row<T>(&self, sql: &'static str, arg: &str) -> T
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        sqlx::query_as(sql)
            .bind(arg)
            .fetch_one(self.world.postgres.pool())
            .await
            .unwrap()
    }

    /// `GET /probe/create` with `bearer`: the status and body.
    async fn probe(&self, bearer: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url("/probe/create"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn jwks(&self) -> Jwks {
        get_json(&self.http, self.url("/.well-known/jwks.json")).await
    }

    async fn rotate(&self) {
        self.feature
            .jobs
            .iter()
            .find(|j| j.name() == KEY_ROTATION_JOB)
            .unwrap()
            .run_now()
            .await
            .unwrap();
    }

    async fn audit_rows(&self, event: &str) -> Vec<(Option<uuid::Uuid>, String, Option<String>)> {
        sqlx::query_as(
            "SELECT actor_user_id, result, host(ip_address) FROM meet.audit_logs \
             WHERE event_type = $1 ORDER BY id",
        )
        .bind(event)
        .fetch_all(self.world.postgres.pool())
        .await
        .unwrap()
    }
}

/// `GET url` through `http`, its body as JSON.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
) -> T {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Asserts `answer` (a status and body) is `status` with the error `code`.
#[track_caller]
fn assert_refused(answer: (u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
}

fn token_of(body: &Value) -> String {
    body["access_token"].as_str().unwrap().to_owned()
}

/// The JSON of the token's `index`th part (0: the header, 1: the claims).
fn part_of(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn claims_of(token: &str) -> Value {
    part_of(token, 1)
}

fn kid_of(token: &str) -> String {
    part_of(token, 0)["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn registration_answers_a_token_refuses_a_taken_email_and_says_why_input_is_bad() {
    let site = site().await;
    let body = site.register("Alice@Example.org").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = token_of(&body);
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], body["user_id"]);
    for claim in ["exp", "iat", "jti", "scope"] {
        assert!(!claims[claim].is_null(), "{claim}: {claims}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    let (hash, email): (Option<String>, String) = site
        .row(
            "SELECT password_hash, email FROM meet.users WHERE user_id = $1::uuid",
            body["user_id"].as_str().unwrap(),
        )
        .await;
    assert!(hash.unwrap().starts_with("$argon2id$"));
    assert_eq!(email, "alice@example.org");

    let (status, taken, _) = site
        .post(
            "/api/v1/auth/register",
            json!({ "email": "alice@example.org", "password": PASSWORD, "display_name": "A" }),
            None,
            "198.51.100.1",
        )
        .await;
    assert_refused((status, taken), 409, "email_taken");

    let huge = "correct horse 7 ".repeat(32 * 1024);
    for (body, code, field, words) in [
        (
            json!({ "email": "bob@example.org", "password": "short", "display_name": "Bob" }),
            "weak_password",
            "password",
            "at least 10 characters",
        ),
        (
            json!({ "email": "bob@example.org", "password": huge, "display_name": "Bob" }),
            "password_too_long",
            "password",
            "the password is too long: at most 1024 bytes",
        ),
        (
            json!({ "email": "bob", "password": PASSWORD, "display_name": "Bob" }),
            "bad_email",
            "email",
            "no `@`",
        ),
        (
            json!({ "email": "bob@example.org", "password": PASSWORD, "display_name": " " }),
            "bad_display_name",
            "display_name",
            "display name",
        ),
        (
            json!({ "email": "bob@example.org", "display_name": "Bob" }),
            "bad_request",
            "password",
            "password",
        ),
        (
            json!({ "email": "bob@example.org", "password": PASSWORD, "display_name": "\u{202E}boB" }),
            "bad_display_name",
            "display_name",
            "U+202E",
        ),
    ] {
        let (status, answer, _) = site
            .post("/api/v1/auth/register", body, None, "198.51.100.1")
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], code, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(words),
            "{answer}"
        );
    }
    // Logging in without a field says which.
    for (body, field) in [
        (json!({ "email": "alice@example.org" }), "password"),
        (json!({ "password": PASSWORD }), "email"),
        (json!({ "email": 5, "password": PASSWORD }), "email"),
    ] {
        let (status, answer, _) = site
            .post("/api/v1/auth/user/token", body, None, "198.51.100.1")
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], "bad_request", "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let rows = site.audit_rows("user_registered").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].1, "success");
    assert_eq!(rows[1].1, "failure");
    assert_eq!(rows[0].2.as_deref(), Some("198.51.100.1"));
}

#[tokio::test]
async fn login_answers_a_token_and_refuses_either_wrong_part_alike_with_audit_rows() {
    let site = site().await;
    let user = site.register("alice@example.org").await["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body, _) = site
        .login("ALICE@example.org", PASSWORD, "198.51.100.2")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(claims_of(&token_of(&body))["sub"], user.as_str());
    let (last_login,): (Option<DateTime<Utc>>,) = site
        .row(
            "SELECT last_login_at FROM meet.users WHERE user_id = $1::uuid",
            &user,
        )
        .await;
    assert_eq!(last_login, Some(site.now()));

    let (s1, wrong_password, _) = site
        .login("alice@example.org", "wrong horse 7", "198.51.100.2")
        .await;
    let (s2, wrong_email, _) = site
        .login("nobody@example.org", PASSWORD, "198.51.100.2")
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(
        wrong_password, wrong_email,
        "the same answer whichever part was wrong"
    );
    assert_eq!(wrong_password["code"], "invalid_credentials");

    let rows = site.audit_rows("user_login").await;
    let user_uuid: uuid::Uuid = user.parse().unwrap();
    assert_eq!(
        rows,
        vec![
            (
                Some(user_uuid),
                "success".to_owned(),
                Some("198.51.100.2".to_owned())
            ),
            (
                Some(user_uuid),
                "failure".to_owned(),
                Some("198.51.100.2".to_owned())
            ),
            (None, "failure".to_owned(), Some("198.51.100.2".to_owned())),
        ]
    );
}

#[tokio::test]
async fn logout_blacklists_the_token_until_it_expires() {
    let site = site().await;
    let token = token_of(&site.register("alice@example.org").await);
    assert_eq!(site.probe(&token).await.0, 200);
    assert_eq!(site.logout(&token, "198.51.100.3").await.0, 204);
    // The probe route checks with an `Auth` of its own, like another replica: it
    // honours the logout within `REVOCATION_CACHE_FOR`.
    testkit::eventually_within(
        meetings::auth::REVOCATION_CACHE_FOR * 5,
        "the probe refuses the logged-out token",
        || async { (site.probe(&token).await.0 == 401).then_some(()) },
    )
    .await;
    assert_refused(site.probe(&token).await, 401, "token_revoked");
    assert_refused(
        site.logout(&token, "198.51.100.3").await,
        401,
        "token_revoked",
    );

    let hash = meetings::auth::sha256_hex(token.as_bytes());
    let key = format!("token:blacklist:{hash}");
    let ttl = store::harness::ttl(&site.world.redis, &key).await;
    assert!((3590..=3600).contains(&ttl), "TTL {ttl}");
    let mut conn = site.world.redis.conn();
    let reason: String = conn.get(&key).await.unwrap();
    assert_eq!(reason, "logout");
    assert_eq!(site.audit_rows("user_logout").await.len(), 1);
    // Another session of the same user is not affected.
    let (_, other, _) = site
        .login("alice@example.org", PASSWORD, "198.51.100.3")
        .await;
    assert_eq!(site.probe(&token_of(&other)).await.0, 200);
}

/// Blacklists `token` behind the replicas' backs: the key alone, nothing published.
async fn plant_blacklist_entry(world: &World, token: &str) {
    let hash = meetings::auth::sha256_hex(token.as_bytes());
    let mut conn = world.redis.conn();
    let _: () = conn
        .set_ex(format!("token:blacklist:{hash}"), "planted", 3600)
        .await
        .unwrap();
}

fn is_revoked(verified: Result<Authenticated, meetings::auth::AuthError>) -> bool {
    matches!(
        verified,
        Err(meetings::auth::AuthError::Token(
            meetings::auth::TokenError::Revoked
        ))
    )
}

#[tokio::test]
async fn a_logout_on_another_replica_is_honoured_here_at_once() {
    let site = site().await;
    let token = token_of(&site.register("alice@example.org").await);
    // Two replicas over the same stores.
    let here = meetings::auth(&site.world.ctx, &site.config);
    let there = meetings::auth(&site.world.ctx, &site.config);
    let who = here.verify_token(&token).await.unwrap();
    testkit::eventually("this replica hears revocations", || async {
        here.hears_revocations().then_some(())
    })
    .await;
    // Its "not revoked" is reused now: with the test's clock standing still, an entry
    // put on the blacklist without a word to anybody is not seen here.
    here.verify_token(&token).await.unwrap();
    plant_blacklist_entry(&site.world, &token).await;
    assert!(
        here.verify_token(&token).await.is_ok(),
        "the answer is reused"
    );

    // A logout says so: this replica forgets its answer, though the clock stands still.
    there
        .logout(&who, &meetings::auth::ClientInfo::default())
        .await
        .unwrap();
    assert!(is_revoked(there.verify_token(&token).await));
    testkit::eventually("the other replica's logout is honoured here", || {
        let (here, token) = (&here, &token);
        async move { is_revoked(here.verify_token(token).await).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_replica_that_cannot_hear_revocations_reuses_no_answer() {
    let mut site = site().await;
    let token = token_of(&site.register("alice@example.org").await);
    // A Redis user without any pub/sub channel: its subscription is refused.
    let mut conn = site.world.redis.conn();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "deaf",
            "on",
            ">secret",
            "~*",
            "resetchannels",
            "+@all",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let port = site.world.redis_server().port();
    let mut ctx = site.world.ctx.clone();
    ctx.redis = store::Redis::connect(&format!("redis://deaf:secret@127.0.0.1:{port}/"))
        .await
        .unwrap();
    let here = meetings::auth(&ctx, &site.config);
    here.verify_token(&token).await.unwrap();
    here.verify_token(&token).await.unwrap();
    assert!(!here.hears_revocations());

    plant_blacklist_entry(&site.world, &token).await;

    assert!(
        is_revoked(here.verify_token(&token).await),
        "without the channel every check asks the blacklist"
    );
}

#[tokio::test]
async fn the_jwks_publishes_ed25519_keys_that_verify_issued_tokens() {
    let site = site().await;
    let token = token_of(&site.register("alice@example.org").await);
    let raw: Value = get_json(&site.http, site.url("/.well-known/jwks.json")).await;
    let key = &raw["keys"][0];
    assert_eq!(raw["keys"].as_array().unwrap().len(), 1, "{raw}");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["kid"].as_str().unwrap(), kid_of(&token));
    assert!(key.get("d").is_none(), "no private part: {key}");
    let jwks: Jwks = serde_json::from_value(raw).unwrap();
    let claims = verify_with_jwks(&token, &jwks, site.now().timestamp()).unwrap();
    assert_eq!(
        claims.scope,
        "meetings:create meetings:read meetings:join meetings:manage"
    );
}

#[tokio::test]
async fn rotation_signs_with_a_new_key_and_keeps_old_tokens_valid_until_they_expire() {
    let site = site().await;
    let old = token_of(&site.register("alice@example.org").await);
    site.rotate().await;
    assert_eq!(site.jwks().await.keys.len(), 1, "not due yet");

    // A day later a new key signs; the old one is still published.
    site.world
        .clock
        .advance(Duration::from_secs(24 * 60 * 60 - 30 * 60));
    let (_, fresh, _) = site
        .login("alice@example.org", PASSWORD, "198.51.100.4")
        .await;
    let before_rotation = token_of(&fresh);
    site.world.clock.advance(Duration::from_secs(30 * 60));
    site.rotate().await;
    let jwks = site.jwks().await;
    assert_eq!(jwks.keys.len(), 2);
    let (_, after, _) = site
        .login("alice@example.org", PASSWORD, "198.51.100.4")
        .await;
    let new = token_of(&after);
    assert_ne!(kid_of(&new), kid_of(&before_rotation));
    assert_eq!(jwks.keys[0].kid.as_str(), kid_of(&new), "newest first");
    assert_eq!(
        site.probe(&before_rotation).await.0,
        200,
        "signed by the old key"
    );
    assert_eq!(site.probe(&new).await.0, 200);
    // The first token has expired by now, whatever key signed it.
    assert_refused(site.probe(&old).await, 401, "token_expired");

    // Once every token of the old key has expired, it goes.
    site.world.clock.advance(Duration::from_secs(60 * 60 + 61));
    site.rotate().await;
    let jwks = site.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kid.as_str(), kid_of(&new));
    let mut conn = site.world.redis.conn();
    let stored: Vec<String> = conn.hkeys("tavern:meetings:signing_keys").await.unwrap();
    assert_eq!(stored, vec![kid_of(&new)]);
    let rotations = site.audit_rows("signing_key_rotated").await;
    assert_eq!(rotations.len(), 2, "the first key and one rotation");
    let removals: Vec<String> = sqlx::query_scalar(
        "SELECT target_id FROM meet.audit_logs \
         WHERE event_type = 'signing_key_removed' AND target_type = 'signing_key' \
         AND actor_type = 'system' ORDER BY id",
    )
    .fetch_all(site.world.postgres.pool())
    .await
    .unwrap();
    assert_eq!(
        removals,
        vec![kid_of(&before_rotation)],
        "the retired key's removal"
    );
}

#[tokio::test]
async fn expired_revoked_forged_and_tampered_tokens_are_refused() {
    let site = site().await;
    let token = token_of(&site.register("alice@example.org").await);

    // Tampered: the claims changed after signing.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = claims_of(&token);
    claims["scope"] = json!("meetings:create meetings:manage admin");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");
    // Signed by a key of another deployment (another secret, other stores).
    let other_world = World::with_postgres().await;
    let other = start(other_world, config(&MeetingsSecretKey::generate().unwrap())).await;
    let foreign = token_of(&other.register("alice@example.org").await);

    for (credential, code) in [
        (tampered.as_str(), "invalid_token"),
        (foreign.as_str(), "invalid_token"),
        ("not-a-token", "invalid_token"),
        ("tmk_notakey", "invalid_api_key"),
    ] {
        let (status, body) = site.probe(credential).await;
        assert!(body["error"].is_string(), "{credential}: {body}");
        assert_refused((status, body), 401, code);
    }
    let missing = site
        .http
        .get(site.url("/probe/create"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    assert_eq!(
        missing.json::<Value>().await.unwrap()["code"],
        "missing_credentials"
    );

    // Accepted, so its signature is not checked again here; it still expires.
    assert_eq!(site.probe(&token).await.0, 200);
    site.world.clock.advance(Duration::from_secs(3600));
    assert_refused(site.probe(&token).await, 401, "token_expired");
}

#[tokio::test]
async fn api_keys_work_like_tokens_limited_to_their_scopes_until_revoked() {
    let site = site().await;
    let registered = site.register("alice@example.org").await;
    let token = token_of(&registered);
    let expires = site.now() + TimeDelta::days(30);
    let (status, created) = site
        .create_key(
            json!({ "name": "ci", "scopes": ["meetings:read", "meetings:create"], "expires_at": expires }),
            &token,
            "198.51.100.5",
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let prefix = created["key_prefix"].as_str().unwrap();
    assert!(
        key.starts_with(prefix) && key.starts_with("tmk_"),
        "{created}"
    );
    assert_eq!(
        created["scopes"],
        json!(["meetings:create", "meetings:read"])
    );
    assert_eq!(
        created["expires_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        expires
    );
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    let (hash, stored_prefix, last_used): (String, String, Option<DateTime<Utc>>) = site
        .row(
            "SELECT key_hash, key_prefix, last_used_at FROM meet.api_keys WHERE key_id = $1::uuid",
            &key_id,
        )
        .await;
    assert_eq!(hash, meetings::auth::sha256_hex(key.as_bytes()));
    assert_eq!(stored_prefix, prefix);
    assert_eq!(last_used, None);

    let (status, body) = site.probe(&key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], registered["user_id"]);
    let (last_used,): (Option<DateTime<Utc>>,) = site
        .row(
            "SELECT last_used_at FROM meet.api_keys WHERE key_id = $1::uuid",
            &key_id,
        )
        .await;
    assert_eq!(last_used, Some(site.now()));

    // A key without the scope, and a key making keys.
    let (_, read_only) = site
        .create_key(
            json!({ "name": "reader", "scopes": ["meetings:read"] }),
            &token,
            "198.51.100.5",
        )
        .await;
    let read_only = read_only["key"].as_str().unwrap().to_owned();
    assert_refused(site.probe(&read_only).await, 403, "insufficient_scope");
    let made_by_key = site
        .create_key(
            json!({ "name": "x", "scopes": ["meetings:read"] }),
            &key,
            "198.51.100.5",
        )
        .await;
    assert_refused(made_by_key, 403, "user_token_required");
    let (status, body) = site
        .create_key(
            json!({ "name": "x", "scopes": ["meetings:rread"] }),
            &token,
            "198.51.100.5",
        )
        .await;
    assert!(body["error"].as_str().unwrap().contains("meetings:rread"));
    assert_refused((status, body), 400, "bad_scopes");
    let (status, body) = site
        .create_key(
            json!({ "name": "ci\u{200B}", "scopes": ["meetings:read"] }),
            &token,
            "198.51.100.5",
        )
        .await;
    assert!(body["error"].as_str().unwrap().contains("U+200B"), "{body}");
    assert_refused((status, body), 400, "bad_name");

    // Revoked: refused; revoking again is 404, as is someone else's key.
    let delete = |id: String, bearer: String| {
        let request = site
            .http
            .delete(site.url(&format!("/api/v1/api-keys/{id}")))
            .bearer_auth(bearer);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let bob = token_of(&site.register("bob@example.org").await);
    assert_eq!(delete(key_id.clone(), bob).await, 404);
    assert_eq!(delete(key_id.clone(), token.clone()).await, 204);
    assert_eq!(delete(key_id.clone(), token.clone()).await, 404);
    assert_refused(site.probe(&key).await, 401, "invalid_api_key");
    assert_eq!(site.audit_rows("api_key_created").await.len(), 2);
    assert_eq!(site.audit_rows("api_key_revoked").await.len(), 1);

    // An expired key is refused.
    let (_, short) = site
        .create_key(
            json!({ "name": "short", "scopes": ["meetings:create"], "expires_at": site.now() + TimeDelta::minutes(5) }),
            &token,
            "198.51.100.5",
        )
        .await;
    let short = short["key"].as_str().unwrap().to_owned();
    assert_eq!(site.probe(&short).await.0, 200);
    site.world.clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(site.probe(&short).await.0, 401);
}

#[tokio::test]
async fn failed_logins_are_limited_per_email_and_per_address_and_served_again_after_the_window() {
    let site = site().await;
    site.register("alice@example.org").await;
    // Ten failures for one email, each from another address.
    for i in 0..10 {
        let (status, _, _) = site
            .login(
                "alice@example.org",
                "wrong horse 7",
                &format!("203.0.113.{i}"),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, body, headers) = site
        .login("alice@example.org", PASSWORD, "203.0.113.99")
        .await;
    assert_refused((status, body), 429, "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let mut conn = site.world.redis.conn();
    let keys: Vec<String> = conn
        .keys("ratelimit:auth:login:failed:email:*")
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl = store::harness::ttl(&site.world.redis, &keys[0]).await;
    assert!((1..=60).contains(&ttl), "{ttl}");

    // After the window, service again.
    site.world.clock.advance(Duration::from_secs(retry));
    let (status, _, _) = site
        .login("alice@example.org", PASSWORD, "203.0.113.99")
        .await;
    assert_eq!(status, 200);

    // Ten failures from one address, each for another email.
    for i in 0..10 {
        let (status, _, _) = site
            .login(
                &format!("nobody{i}@example.org"),
                "wrong horse 7",
                "203.0.113.200",
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, _, headers) = site
        .login("alice@example.org", PASSWORD, "203.0.113.200")
        .await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = site
        .login("alice@example.org", PASSWORD, "203.0.113.201")
        .await;
    assert_eq!(status, 200, "another address is not limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_logins_sent_at_once_get_no_more_tries_than_the_limit() {
    let site = site().await;
    site.register("alice@example.org").await;
    // Thirty wrong passwords for one email, all in flight at once, each from another
    // address: every one is counted before its (slow) password check, so no more than
    // ten are checked and the rest are refused.
    let attempts = (0..30).map(|i| {
        let site = &site;
        async move {
            site.login(
                "alice@example.org",
                "wrong horse 7",
                &format!("203.0.113.{i}"),
            )
            .await
            .0
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((checked, refused), (10, 20), "{statuses:?}");
    // The ten failures fill the window: the right password is refused too.
    let (status, body, _) = site
        .login("alice@example.org", PASSWORD, "203.0.113.99")
        .await;
    assert_refused((status, body), 429, "rate_limited");
    // A success takes its count back: nine failures and a success leave room for one
    // more failure in the window, not none.
    site.register("bob@example.org").await;
    for i in 0..9 {
        let (status, _, _) = site
            .login(
                "bob@example.org",
                "wrong horse 7",
                &format!("198.51.100.{i}"),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, _, _) = site
        .login("bob@example.org", PASSWORD, "198.51.100.50")
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = site
        .login("bob@example.org", "wrong horse 7", "198.51.100.51")
        .await;
    assert_eq!(status, 401, "the success was not counted as a failure");
    let (status, _, _) = site
        .login("bob@example.org", PASSWORD, "198.51.100.52")
        .await;
    assert_eq!(status, 429, "ten failures fill the window");
}

#[tokio::test]
async fn discord_logins_started_are_limited_per_address_and_a_refused_one_stores_no_state() {
    let site = site().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = |ip: &'static str| {
        let request = http
            .get(site.url("/api/v1/auth/discord"))
            .header("x-forwarded-for", ip);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            (status, body, headers)
        }
    };
    let states = || async {
        let mut conn = site.world.redis.conn();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("tavern:meetings:oauth_state:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.len()
    };
    let before = states().await;
    for _ in 0..10 {
        let (status, body, _) = start("192.0.2.9").await;
        assert_eq!(status, 303, "{body}");
    }
    assert_eq!(states().await, before + 10);
    let (status, body, headers) = start("192.0.2.9").await;
    assert_refused((status, body), 429, "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        states().await,
        before + 10,
        "the refused start stored nothing"
    );
    // Another address is not held back.
    assert_eq!(start("192.0.2.10").await.0, 303);
}

#[tokio::test]
async fn registrations_are_limited_per_address_before_any_password_is_hashed() {
    let site = site().await;
    let register = |email: String, ip: &'static str| {
        let site = &site;
        async move {
            site.post(
                "/api/v1/auth/register",
                json!({ "email": email, "password": PASSWORD, "display_name": "Bulk" }),
                None,
                ip,
            )
            .await
        }
    };
    for i in 0..10 {
        let (status, body, _) = register(format!("bulk{i}@example.org"), "192.0.2.7").await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body, headers) = register("bulk10@example.org".into(), "192.0.2.7").await;
    assert_refused((status, body), 429, "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let taken: (i64,) = site
        .row(
            "SELECT count(*) FROM meet.users WHERE email = $1",
            "bulk10@example.org",
        )
        .await;
    assert_eq!(taken.0, 0, "nothing was made for the refused one");

    // Another address is not limited; this one is served again after the window.
    let (status, _, _) = register("other@example.org".into(), "192.0.2.8").await;
    assert_eq!(status, 201);
    site.world.clock.advance(Duration::from_secs(retry));
    let (status, body, _) = register("bulk10@example.org".into(), "192.0.2.7").await;
    assert_eq!(status, 201, "{body}");
}

/// `token` with its header naming key `kid` instead (its signature unchanged).
fn with_kid(token: &str, kid: &str) -> String {
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid });
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
    let (_, rest) = token.split_once('.').unwrap();
    format!("{header}.{rest}")
}

/// How many `HGETALL`s (the signing keys' read) the Redis server has answered.
async fn hgetall_calls(world: &World) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut world.redis.conn())
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_hgetall:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn tokens_naming_unknown_keys_read_the_keys_once_and_a_key_made_elsewhere_is_found() {
    use meetings::auth::{AuthError, TokenError};
    let site = site().await;
    let token = token_of(&site.register("alice@example.org").await);
    let here = meetings::auth(&site.world.ctx, &site.config);
    let alice = here.verify_token(&token).await.unwrap().user_id;

    // Fifty tokens naming made-up keys, at once: all refused, for one read of the keys.
    let before = hgetall_calls(&site.world).await;
    let mut checks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (here, junk) = (here.clone(), with_kid(&token, &format!("made-up-{i}")));
        checks.spawn(async move { here.verify_token(&junk).await });
    }
    for answer in checks.join_all().await {
        assert!(
            matches!(answer, Err(AuthError::Token(TokenError::UnknownKey))),
            "{answer:?}"
        );
    }
    assert_eq!(hgetall_calls(&site.world).await - before, 1);

    // Another replica makes a new key while this one's keys are fresh: a token it signs
    // is taken here.
    site.world
        .clock
        .advance(Duration::from_secs(24 * 60 * 60 - 30));
    here.jwks().await.unwrap();
    site.world.clock.advance(Duration::from_secs(30));
    let there = meetings::auth(&site.world.ctx, &site.config);
    assert!(there.rotate_keys().await.unwrap().created.is_some());
    let fresh = there
        .issue(alice, &meetings::auth::Scopes::all())
        .await
        .unwrap();
    let fresh = fresh.token.expose_str();
    assert_ne!(kid_of(fresh), kid_of(&token));
    assert_eq!(here.verify_token(fresh).await.unwrap().user_id, alice);
}

/// A token whose signature this process checked before is taken without checking it
/// again (the expiry still counts: `expired_revoked_forged_and_tampered_tokens_are_refused`),
/// but not once the key that signed it is withdrawn from the store (an operator removing
/// a leaked key): after the keys are read again it is refused as signed by an unknown
/// key, as a token never seen here would be.
#[tokio::test]
async fn a_token_checked_before_is_refused_once_its_key_is_withdrawn() {
    use meetings::auth::{AuthError, TokenError};
    let site = site().await;
    let token = token_of(&site.register("alice@example.org").await);
    let here = meetings::auth(&site.world.ctx, &site.config);
    let alice = here.verify_token(&token).await.unwrap().user_id;
    assert_eq!(here.verify_token(&token).await.unwrap().user_id, alice);

    let mut conn = site.world.redis.conn();
    let removed: u64 = conn
        .hdel("tavern:meetings:signing_keys", kid_of(&token))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    // Within the keys' cache time the withdrawal is not known here yet.
    assert_eq!(here.verify_token(&token).await.unwrap().user_id, alice);
    site.world
        .clock
        .advance(meetings::auth::KEY_CACHE_FOR + Duration::from_secs(1));
    let refused = here.verify_token(&token).await;
    assert!(
        matches!(refused, Err(AuthError::Token(TokenError::UnknownKey))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_restarted_feature_over_the_same_stores_verifies_tokens_the_first_issued() {
    let site = site().await;
    let token = token_of(&site.register("alice@example.org").await);
    let sealed: String = {
        let mut conn = site.world.redis.conn();
        conn.hget("tavern:meetings:signing_keys", kid_of(&token))
            .await
            .unwrap()
    };
    let record: Value = serde_json::from_str(&sealed).unwrap();
    let private = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(record["sealed_private"].as_str().unwrap())
        .unwrap();
    assert!(private.len() > 48, "sealed PKCS#8 with nonce and tag");

    // The same secret: the new process verifies and publishes the same key.
    let mut again = meetings::feature(&site.world.ctx, site.config.clone());
    for work in &again.startup {
        work.run().await.unwrap();
    }
    let base = serve(again.routes.take().unwrap()).await;
    let jwks: Jwks = get_json(&site.http, format!("{base}/.well-known/jwks.json")).await;
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kid.as_str(), kid_of(&token));
    let auth = meetings::auth(&site.world.ctx, &site.config);
    let who = auth.verify_token(&token).await.unwrap();
    assert_eq!(
        who.scopes.to_claim(),
        claims_of(&token)["scope"].as_str().unwrap()
    );

    // Another secret opens nothing: the old tokens are refused and a new key is made.
    // The key that does not open is warned of once, however often the keys are read.
    let wrong = config(&MeetingsSecretKey::generate().unwrap());
    let stranger = meetings::auth(&site.world.ctx, &wrong);
    let logs = testkit::logged(async {
        assert!(stranger.verify_token(&token).await.is_err());
        stranger.rotate_keys().await.unwrap();
        stranger.rotate_keys().await.unwrap();
    })
    .await;
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("does not open"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains(&kid_of(&token)), "{logs}");
    let fresh = stranger
        .issue(who.user_id, &meetings::auth::Scopes::all())
        .await
        .unwrap();
    assert_ne!(kid_of(fresh.token.expose_str()), kid_of(&token));
    // The replicas with the right secret go on as before: their key stays, and signs.
    let mut conn = site.world.redis.conn();
    let stored: Vec<String> = conn.hkeys("tavern:meetings:signing_keys").await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(auth.verify_token(&token).await.is_ok());
    auth.rotate_keys().await.unwrap();
    let again = auth
        .issue(who.user_id, &meetings::auth::Scopes::all())
        .await
        .unwrap();
    assert_eq!(kid_of(again.token.expose_str()), kid_of(&token));
}

#[tokio::test]
async fn passwords_tokens_and_keys_never_reach_the_logs() {
    let site = site().await;
    let secrets = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = secrets.clone();
    let logs = testkit::logged(async {
        let token = token_of(&site.register("alice@example.org").await);
        let (_, _, _) = site
            .login("alice@example.org", "wrong horse 7", "198.51.100.9")
            .await;
        let (_, login, _) = site
            .login("alice@example.org", PASSWORD, "198.51.100.9")
            .await;
        let (_, created) = site
            .create_key(
                json!({ "name": "k", "scopes": ["meetings:read"] }),
                &token,
                "198.51.100.9",
            )
            .await;
        let key = created["key"].as_str().unwrap().to_owned();
        site.probe(&key).await;
        site.probe("tmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await;
        site.logout(&token, "198.51.100.9").await;
        site.probe(&token).await;
        seen.lock().unwrap().extend([token, token_of(&login), key]);
    })
    .await;
    assert!(logs.contains("meetings login"), "the capture works: {logs}");
    let secrets = secrets.lock().unwrap().clone();
    for secret in secrets
        .iter()
        .map(String::as_str)
        .chain([PASSWORD, "wrong horse 7"])
    {
        assert!(!logs.contains(secret), "a secret in the logs:\n{logs}");
    }
    let mut conn = site.world.redis.conn();
    let stored: String = conn
        .hget("tavern:meetings:signing_keys", kid_of(&secrets[0]))
        .await
        .unwrap();
    assert!(!logs.contains(&stored));
    let (hash,): (String,) = site
        .row(
            "SELECT password_hash FROM meet.users WHERE email = $1",
            "alice@example.org",
        )
        .await;
    assert!(
        !logs.contains(&hash),
        "the password hash in the logs:\n{logs}"
    );
    let salt_and_hash = hash.rsplit('$').next().unwrap();
    assert!(!logs.contains(salt_and_hash));
}

#[tokio::test]
async fn logging_in_with_discord_makes_the_account_once_links_it_and_seals_its_tokens() {
    let site = site().await;
    let callback = meetings::web::discord_callback_url(&site.world.ctx.public_url).unwrap();
    site.world.sim.register_redirect_uri(callback.as_str());
    let alice = site.world.demo.alice;
    site.world.sim.sign_in(Some(alice));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_owned();
    // Start at Tavern, approve at (fake) Discord, come back with its answer.
    let come_back = || async {
        let start = http
            .get(site.url("/api/v1/auth/discord"))
            .send()
            .await
            .unwrap();
        assert!(start.status().is_redirection(), "{}", start.status());
        let approved = http.get(location(&start)).send().await.unwrap();
        assert!(approved.status().is_redirection(), "{}", approved.status());
        let back = url::Url::parse(&location(&approved)).unwrap();
        assert_eq!(back.path(), "/api/v1/auth/discord/callback");
        site.url(&format!("{}?{}", back.path(), back.query().unwrap()))
    };
    let first_url = come_back().await;
    let answer = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let into = answer.clone();
    let logs = testkit::logged(async {
        let body: Value = get_json(&http, &first_url).await;
        *into.lock().unwrap() = body;
    })
    .await;
    let first = answer.lock().unwrap().clone();
    assert_eq!(first["created"], true, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(
        site.probe(first["access_token"].as_str().unwrap()).await.0,
        200
    );

    let second: Value = get_json(&http, come_back().await).await;
    assert_eq!(second["created"], false, "{second}");
    assert_eq!(second["user_id"], first["user_id"], "found, not made again");

    let (email, hash): (String, Option<String>) = site
        .row(
            "SELECT email, password_hash FROM meet.users WHERE user_id = $1::uuid",
            first["user_id"].as_str().unwrap(),
        )
        .await;
    assert_eq!(email, format!("discord-{alice}@users.discord.invalid"));
    assert_eq!(hash, None);
    let (provider_user, access, refresh): (String, Vec<u8>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT provider_user_id, access_token_encrypted, refresh_token_encrypted \
         FROM meet.oauth_providers WHERE provider = 'discord'",
    )
    .fetch_one(site.world.postgres.pool())
    .await
    .unwrap();
    assert_eq!(provider_user, alice.to_string());
    let secret = site.config.secret_key.clone().unwrap();
    let opened = secret
        .open(&format!("meetings:oauth:discord:{alice}:access"), &access)
        .unwrap();
    assert!(!opened.is_empty());
    let discord_token = String::from_utf8(opened.clone()).unwrap();
    assert!(logs.contains("meetings login with Discord"), "{logs}");
    assert!(
        !logs.contains(&discord_token),
        "Discord's token in the logs:\n{logs}"
    );
    let code = url::Url::parse(&first_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert!(!logs.contains(&code), "the code in the logs:\n{logs}");
    assert!(!logs.contains(first["access_token"].as_str().unwrap()));
    assert!(
        !access.windows(opened.len()).any(|w| w == opened.as_slice()),
        "stored sealed, not in the clear"
    );
    if let Some(refresh) = refresh {
        assert!(
            secret
                .open(&format!("meetings:oauth:discord:{alice}:refresh"), &refresh)
                .is_ok()
        );
    }
    let rows = site.audit_rows("user_registered").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(site.audit_rows("user_login").await.len(), 1);

    // A state is used once.
    let replay = http.get(&first_url).send().await.unwrap();
    assert_eq!(replay.status().as_u16(), 400);
    assert_eq!(replay.json::<Value>().await.unwrap()["code"], "bad_state");
    // Nobody registers the stand-in email first.
    let (status, body, _) = site
        .post(
            "/api/v1/auth/register",
            json!({ "email": "discord-1@users.discord.invalid", "password": PASSWORD, "display_name": "X" }),
            None,
            "198.51.100.1",
        )
        .await;
    assert_refused((status, body), 400, "bad_email");
}
