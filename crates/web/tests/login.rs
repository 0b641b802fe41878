//! The login flow end to end over real HTTP: Tavern's routes on a loopback port,
//! discord-sim as Discord, a real redis-server for sessions. The test plays the browser
//! and follows every redirect by hand, carrying the cookie itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::{get, post};
use discord::oauth::{ClientSecret, OAuthApp, OAuthEndpoints};
use discord_sim::{Demo, Sim, SimConfig, Snowflake};
use serde_json::Value;
use store::harness::TestRedis;
use store::redis;
use url::Url;
use web::session::{COOKIE, CurrentUser, KEY_PREFIX, SessionConfig, Sessions};

struct App {
    base: Url,
    sim: Sim,
    demo: Demo,
    redis: store::Redis,
    _server: TestRedis,
    http: reqwest::Client,
}

/// A route a feature would add: a state-changing API call for logged-in users.
async fn create_thing(user: CurrentUser) -> String {
    format!("created by {}", user.user.username)
}

/// A page a feature would add.
async fn library(user: CurrentUser) -> String {
    format!("library of {}", user.user.username)
}

async fn spawn() -> App {
    spawn_with(web::ServerConfig::default()).await
}

async fn spawn_with(config: web::ServerConfig) -> App {
    discord::install_crypto_provider();
    let sim = Sim::start(SimConfig::default()).unwrap();
    let demo = sim.seed_demo();
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let callback = web::login::callback_url(&base).unwrap();
    sim.register_redirect_uri(callback.as_str());
    let app = OAuthApp::new(
        sim.application_id().to_string(),
        ClientSecret::from(sim.client_secret()),
        callback,
        OAuthEndpoints::at(&sim.http_url()).unwrap(),
    );
    let sessions = Sessions::new(redis.clone(), SessionConfig::for_public_url(&base));
    let feature = Router::new()
        .route("/api/things", post(create_thing))
        .route("/library", get(library));
    // A route someone forgot to protect: its extractor must fail loudly, not let
    // everyone in.
    let unprotected = Router::new().route("/unprotected", get(library));
    let (login, _) =
        web::login::routes(sessions.clone(), app, web::login::LoginRateLimit::default())
            .into_parts();
    let routes = login.merge(sessions.protect(feature)).merge(unprotected);
    // Composed as Tavern composes its site (its trace layer included).
    let router = web::router(
        web::AppState {
            readiness: std::sync::Arc::new(NeverReady),
            metrics: None,
        },
        web::page::Site::default(),
        vec![routes],
        web::LateRoutes::default(),
    );
    tokio::spawn(web::serve_with(
        listener,
        router,
        config,
        std::future::pending(),
    ));
    App {
        base,
        sim,
        demo,
        redis,
        _server: server,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

/// One HTTP exchange as the browser sees it.
struct Hop {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

impl Hop {
    /// The session id the `Set-Cookie` header sets.
    fn cookie(&self) -> String {
        let header = self.set_cookie.as_deref().expect("a Set-Cookie header");
        let value = header
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix(&format!("{COOKIE}=")))
            .expect("our cookie");
        value.to_owned()
    }

    fn location(&self) -> &str {
        self.location.as_deref().expect("a Location header")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

impl App {
    fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap()
    }

    async fn send(&self, request: reqwest::RequestBuilder, cookie: Option<&str>) -> Hop {
        let request = match cookie {
            Some(cookie) => request.header("cookie", format!("{COOKIE}={cookie}")),
            None => request,
        };
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        Hop {
            status: response.status().as_u16(),
            location,
            set_cookie,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&self, url: impl reqwest::IntoUrl, cookie: Option<&str>) -> Hop {
        self.send(self.http.get(url), cookie).await
    }

    /// `/login/discord?next=..` up to Discord's redirect back; returns the pre-login
    /// cookie and the callback URL.
    async fn to_discord_and_back(
        &self,
        next: &str,
        user: Snowflake,
        extra: &str,
    ) -> (String, String) {
        let mut start = self.url("/login/discord");
        start.query_pairs_mut().append_pair("next", next);
        let hop = self.get(start, None).await;
        assert_eq!(hop.status, 303, "{}", hop.body);
        let anonymous = hop.cookie();
        let authorize = format!("{}&sim_user_id={user}{extra}", hop.location());
        assert!(authorize.starts_with(&self.sim.http_url()), "{authorize}");
        let hop = self.get(&authorize, None).await;
        assert_eq!(hop.status, 302, "{}", hop.body);
        (anonymous, hop.location().to_owned())
    }

    /// The whole login as `user`; returns the logged-in cookie and where it landed.
    async fn log_in(&self, user: Snowflake, next: &str) -> (String, String) {
        let (anonymous, callback) = self.to_discord_and_back(next, user, "").await;
        let hop = self.get(&callback, Some(&anonymous)).await;
        assert_eq!(hop.status, 303, "{}", hop.body);
        (hop.cookie(), hop.location().to_owned())
    }

    async fn me(&self, cookie: &str) -> Hop {
        self.get(self.url("/api/me"), Some(cookie)).await
    }

    async fn ttl(&self, cookie: &str) -> i64 {
        redis::cmd("TTL")
            .arg(format!("{KEY_PREFIX}{cookie}"))
            .query_async(&mut self.redis.conn())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn login_lands_back_and_api_me_shows_the_user() {
    let app = spawn().await;
    let (anonymous, callback) = app
        .to_discord_and_back("/library?tab=recent", app.demo.alice, "")
        .await;
    let hop = app.get(&callback, Some(&anonymous)).await;
    assert_eq!(hop.status, 303, "{}", hop.body);
    assert_eq!(hop.location(), "/library?tab=recent");
    let set_cookie = hop.set_cookie.clone().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain-http site: {set_cookie}"
    );
    let cookie = hop.cookie();
    assert_ne!(cookie, anonymous, "login must rotate the session id");

    let me = app.me(&cookie).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let me = me.json();
    assert_eq!(me["id"], app.demo.alice.to_string());
    assert_eq!(me["username"], "alice");
    assert_eq!(me["csrf_token"].as_str().unwrap().len(), 64);

    // The pre-login session is gone; the page is served to the logged-in user.
    assert_eq!(app.ttl(&anonymous).await, -2);
    assert_eq!(app.me(&anonymous).await.status, 401);
    let page = app.get(app.url("/library"), Some(&cookie)).await;
    assert_eq!((page.status, page.body.as_str()), (200, "library of alice"));
    let page = app.get(app.url("/unprotected"), Some(&cookie)).await;
    assert_eq!(page.status, 500);
}

#[tokio::test]
async fn sessions_expire_after_seven_days_and_pre_login_ones_after_ten_minutes() {
    let app = spawn().await;
    let (anonymous, _) = app.to_discord_and_back("/", app.demo.bob, "").await;
    let ttl = app.ttl(&anonymous).await;
    assert!((1..=600).contains(&ttl), "pre-login TTL {ttl}");
    let (cookie, _) = app.log_in(app.demo.bob, "/").await;
    let ttl = app.ttl(&cookie).await;
    assert!(
        (7 * 24 * 3600 - 60..=7 * 24 * 3600).contains(&ttl),
        "TTL {ttl}"
    );
    // A request does not extend it (fixed lifetime).
    assert_eq!(app.me(&cookie).await.status, 200);
    assert!(app.ttl(&cookie).await <= ttl);
    // When Redis drops the key, the cookie is worthless.
    redis::cmd("DEL")
        .arg(format!("{KEY_PREFIX}{cookie}"))
        .query_async::<()>(&mut app.redis.conn())
        .await
        .unwrap();
    assert_eq!(app.me(&cookie).await.status, 401);
}

/// A session record that cannot be read (damaged, or of another shape) ends that
/// session: the visitor is signed out and can sign in again, never refused every page
/// until the record expires, and the record is gone.
#[tokio::test]
async fn an_unreadable_session_record_signs_its_visitor_out_and_is_removed() {
    let app = spawn().await;
    let (cookie, _) = app.log_in(app.demo.bob, "/").await;
    let key = format!("{KEY_PREFIX}{cookie}");
    redis::cmd("SET")
        .arg(&key)
        .arg("{\"csrf\": 7")
        .query_async::<()>(&mut app.redis.conn())
        .await
        .unwrap();

    assert_eq!(app.me(&cookie).await.status, 401);
    let page = app.get(app.url("/library"), Some(&cookie)).await;
    assert_eq!(page.status, 303, "sent to sign in, not 503: {}", page.body);
    assert!(page.location().starts_with("/login"), "{}", page.location());
    let left: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut app.redis.conn())
        .await
        .unwrap();
    assert_eq!(left, None);
    let (again, _) = app.log_in(app.demo.bob, "/").await;
    assert_eq!(app.me(&again).await.status, 200);
}

#[tokio::test]
async fn forged_reused_and_foreign_states_are_refused() {
    let app = spawn().await;
    let (anonymous, callback) = app.to_discord_and_back("/", app.demo.alice, "").await;

    // A state Tavern never issued.
    let mut forged = Url::parse(&callback).unwrap();
    let code = forged
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "forged");
    let hop = app.get(forged, Some(&anonymous)).await;
    assert_eq!(hop.status, 400);
    assert!(
        hop.body.contains("expired or was already used"),
        "{}",
        hop.body
    );

    // No state at all.
    let hop = app
        .get(
            app.url("/login/discord/callback?code=abc"),
            Some(&anonymous),
        )
        .await;
    assert_eq!(hop.status, 400);
    assert!(hop.body.contains("no state"), "{}", hop.body);

    // The real one works once...
    let hop = app.get(&callback, Some(&anonymous)).await;
    assert_eq!(hop.status, 303, "{}", hop.body);
    // ...and never again.
    let hop = app.get(&callback, Some(&anonymous)).await;
    assert_eq!(hop.status, 400);
    assert!(
        hop.body.contains("expired or was already used"),
        "{}",
        hop.body
    );

    // A callback started by another browser (login CSRF): refused, even though the
    // state and code are genuine.
    let (_attacker, planted) = app.to_discord_and_back("/", app.demo.bob, "").await;
    let (victim, _) = app.log_in(app.demo.carol, "/").await;
    let hop = app.get(&planted, Some(&victim)).await;
    assert_eq!(hop.status, 400);
    assert!(hop.body.contains("another browser"), "{}", hop.body);
    let hop = app.get(&planted, None).await;
    assert_eq!(hop.status, 400);
    assert_eq!(app.me(&victim).await.json()["username"], "carol");
}

#[tokio::test]
async fn cancelling_on_discord_and_refused_codes_explain_themselves() {
    let app = spawn().await;
    let (anonymous, callback) = app
        .to_discord_and_back("/library", app.demo.alice, "&sim_decision=deny")
        .await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let hop = app.get(&callback, Some(&anonymous)).await;
    assert_eq!(hop.status, 403);
    assert!(hop.body.contains("cancelled"), "{}", hop.body);
    assert!(hop.body.contains("next=%2Flibrary"), "{}", hop.body);
    assert_eq!(app.me(&anonymous).await.status, 401);

    // Someone spent the code before Tavern could (a reload racing, a leak): Discord
    // refuses it and the user is told to start again.
    let (anonymous, callback) = app.to_discord_and_back("/", app.demo.alice, "").await;
    let code = Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let spent = reqwest::Client::new()
        .post(format!("{}/oauth2/token", app.sim.api_url()))
        .basic_auth(
            app.sim.application_id().to_string(),
            Some(app.sim.client_secret()),
        )
        .body(format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}",
            url::form_urlencoded::byte_serialize(
                web::login::callback_url(&app.base)
                    .unwrap()
                    .as_str()
                    .as_bytes()
            )
            .collect::<String>()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(spent.status().as_u16(), 200);
    let hop = app.get(&callback, Some(&anonymous)).await;
    assert_eq!(hop.status, 400);
    assert!(
        hop.body.contains("Discord refused the login code"),
        "{}",
        hop.body
    );
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token() {
    let app = spawn().await;
    let (cookie, _) = app.log_in(app.demo.alice, "/").await;
    let token = app.me(&cookie).await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let things = app.url("/api/things");

    let hop = app.send(app.http.post(things.clone()), Some(&cookie)).await;
    assert_eq!(hop.status, 403, "no token");
    assert!(hop.json()["error"].as_str().unwrap().contains("CSRF"));

    let wrong = "0".repeat(64);
    let hop = app
        .send(
            app.http.post(things.clone()).header("x-csrf-token", wrong),
            Some(&cookie),
        )
        .await;
    assert_eq!(hop.status, 403, "wrong token");

    let hop = app
        .send(
            app.http.post(things.clone()).header("x-csrf-token", &token),
            Some(&cookie),
        )
        .await;
    assert_eq!((hop.status, hop.body.as_str()), (200, "created by alice"));

    // An HTML form carries it as a field.
    let hop = app
        .send(
            app.http
                .post(things.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("name=dice&csrf_token={token}")),
            Some(&cookie),
        )
        .await;
    assert_eq!((hop.status, hop.body.as_str()), (200, "created by alice"));

    // Another site's page, even holding the token, is refused by origin.
    let hop = app
        .send(
            app.http
                .post(things.clone())
                .header("x-csrf-token", &token)
                .header("origin", "https://evil.example"),
            Some(&cookie),
        )
        .await;
    assert_eq!(hop.status, 403);
    let own_origin = app.base.origin().ascii_serialization();
    let hop = app
        .send(
            app.http
                .post(things.clone())
                .header("x-csrf-token", &token)
                .header("origin", own_origin),
            Some(&cookie),
        )
        .await;
    assert_eq!(hop.status, 200);

    // Another session's token is not this session's token.
    let (other, _) = app.log_in(app.demo.bob, "/").await;
    let hop = app
        .send(
            app.http.post(things).header("x-csrf-token", &token),
            Some(&other),
        )
        .await;
    assert_eq!(hop.status, 403);
}

#[tokio::test]
async fn a_browser_form_refused_for_its_session_gets_a_page_saying_what_to_do() {
    let app = spawn().await;
    let (cookie, _) = app.log_in(app.demo.alice, "/").await;
    let things = app.url("/api/things");
    let form = |body: &str| {
        app.http
            .post(things.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .body(body.to_owned())
    };
    // A form from a page opened before the visitor signed in again.
    let stale = app
        .send(
            form(&format!("name=dice&csrf_token={}", "0".repeat(64))),
            Some(&cookie),
        )
        .await;
    assert_eq!(stale.status, 403);
    assert!(
        stale.body.contains("<h1>This page is out of date</h1>"),
        "{}",
        stale.body
    );
    assert!(stale.body.contains("reload the page"), "{}", stale.body);
    // A form sent after the session ended.
    let signed_out = app.send(form("name=dice&csrf_token=x"), None).await;
    assert_eq!(signed_out.status, 403);
    assert!(
        signed_out.body.contains("<h1>You are signed out</h1>"),
        "{}",
        signed_out.body
    );
    assert!(
        signed_out.body.contains("href=\"/login/discord\""),
        "{}",
        signed_out.body
    );
    // A program's request is still answered in JSON.
    let api = app
        .send(
            app.http
                .post(things.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body("name=dice"),
            Some(&cookie),
        )
        .await;
    assert_eq!(api.status, 403);
    assert!(api.json()["error"].as_str().unwrap().contains("CSRF"));
}

#[tokio::test]
async fn a_form_from_a_tab_signed_out_elsewhere_gets_the_signed_out_page() {
    let app = spawn().await;
    let (cookie, _) = app.log_in(app.demo.alice, "/").await;
    let token = app.me(&cookie).await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another tab logs out.
    let hop = app
        .send(
            app.http
                .post(app.url("/logout"))
                .header("x-csrf-token", &token),
            Some(&cookie),
        )
        .await;
    assert_eq!(hop.status, 303);
    // The stale tab's "Log out" form, as a browser sends it.
    let stale = app
        .send(
            app.http
                .post(app.url("/logout"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
                .header("sec-fetch-mode", "navigate")
                .body(format!("csrf_token={token}")),
            Some(&cookie),
        )
        .await;
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert!(
        stale.body.contains("<h1>You are signed out</h1>"),
        "{}",
        stale.body
    );
    assert!(
        stale.body.contains("href=\"/login/discord\""),
        "{}",
        stale.body
    );
    // A browser that says it navigates, without naming HTML, is shown the page too.
    let navigating = app
        .send(
            app.http
                .post(app.url("/logout"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("sec-fetch-mode", "navigate")
                .body(format!("csrf_token={token}")),
            Some(&cookie),
        )
        .await;
    assert!(
        navigating.body.contains("<h1>You are signed out</h1>"),
        "{}",
        navigating.body
    );
    // A script's call is still answered in JSON.
    let api = app
        .send(
            app.http
                .post(app.url("/logout"))
                .header("x-csrf-token", &token),
            Some(&cookie),
        )
        .await;
    assert_eq!(api.status, 401);
    assert_eq!(api.json()["error"], "not logged in");
    assert_eq!(api.json()["login"], "/login/discord");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn().await;
    let (cookie, _) = app.log_in(app.demo.carol, "/").await;
    let token = app.me(&cookie).await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let hop = app
        .send(app.http.post(app.url("/logout")), Some(&cookie))
        .await;
    assert_eq!(hop.status, 403, "logout is a POST and needs the token too");
    assert_eq!(app.me(&cookie).await.status, 200);

    let hop = app
        .send(
            app.http
                .post(app.url("/logout"))
                .header("x-csrf-token", &token),
            Some(&cookie),
        )
        .await;
    assert_eq!(hop.status, 303);
    assert_eq!(hop.location(), "/");
    assert!(hop.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(app.ttl(&cookie).await, -2);
    let me = app.me(&cookie).await;
    assert_eq!(me.status, 401);
    assert_eq!(me.json()["error"], "not logged in");
    // A page sends the browser to the login, remembering where it was.
    let page = app.get(app.url("/library?tab=all"), Some(&cookie)).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location(),
        "/login/discord?next=%2Flibrary%3Ftab%3Dall"
    );
}

#[tokio::test]
async fn next_never_leaves_the_site() {
    let app = spawn().await;
    for evil in [
        "https://evil.example",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        let (_, landed) = app.log_in(app.demo.alice, evil).await;
        assert_eq!(landed, "/", "{evil}");
    }
    let (_, landed) = app.log_in(app.demo.alice, "/library?tab=1").await;
    assert_eq!(landed, "/library?tab=1");
}

#[tokio::test]
async fn api_me_is_never_cached() {
    let app = spawn().await;
    let (cookie, _) = app.log_in(app.demo.alice, "/").await;
    let response = app
        .http
        .get(app.url("/api/me"))
        .header("cookie", format!("{COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers().get("cache-control").unwrap(),
        "no-store",
        "the answer carries the CSRF token"
    );
}

#[tokio::test]
async fn starting_logins_is_rate_limited_per_client_address() {
    let app = spawn().await;
    let start = app.url("/login/discord");
    for n in 1..=10 {
        let hop = app.get(start.clone(), None).await;
        assert_eq!(hop.status, 303, "login {n}: {}", hop.body);
    }
    let response = app.http.get(start.clone()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Without a trusted proxy, claiming another address changes nothing.
    let spoofed = app
        .http
        .get(start.clone())
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status().as_u16(), 429);
    // The count is in Redis, where every replica sees it.
    let keys = app.redis.scan("tavern:ratelimit:login:*").await.unwrap();
    assert_eq!(keys, ["tavern:ratelimit:login:127.0.0.1"]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = spawn_with(web::ServerConfig {
        trusted_proxies: web::client::TrustedProxies::parse("127.0.0.1").unwrap(),
        ..web::ServerConfig::default()
    })
    .await;
    let start = app.url("/login/discord");
    let from = |ip: &'static str| {
        app.http
            .get(start.clone())
            .header("x-forwarded-for", ip)
            .send()
    };
    for _ in 0..10 {
        assert_eq!(from("203.0.113.1").await.unwrap().status().as_u16(), 303);
    }
    assert_eq!(from("203.0.113.1").await.unwrap().status().as_u16(), 429);
    assert_eq!(from("203.0.113.2").await.unwrap().status().as_u16(), 303);
}

#[tokio::test]
async fn oauth_codes_and_errors_never_reach_the_logs() {
    // The requests go through the whole site (its trace layer), served on this thread.
    let app = spawn().await;
    let (anonymous, callback) = app.to_discord_and_back("/", app.demo.alice, "").await;
    let state = Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let base = app.base.clone();
    let cookie = format!("{COOKIE}={anonymous}");
    let log = testkit::logged(async {
        let url = format!(
            "{base}login/discord/callback?code=SECRETCODE123&state={state}&error=FORGED%20LINE%0Ainjected"
        );
        let response = app
            .http
            .get(&url)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 502);
        // A query elsewhere keeps what is not a credential.
        let answer = app
            .http
            .get(format!("{base}healthz?password=hunter2&code=SECRETCODE123&page=2"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        // A Meetup linking id is a bearer secret in the path.
        app.http
            .get(format!("{base}link-meetup/SECRETLINK123/start"))
            .send()
            .await
            .unwrap();
    })
    .await;
    assert!(
        log.contains("discord refused the authorization request"),
        "{log}"
    );
    assert!(log.contains("page=2"), "the rest of the URI is kept: {log}");
    // The 502 is a warning that names its route (and not its query).
    let failure = log
        .lines()
        .find(|line| line.contains("response failed"))
        .unwrap_or_else(|| panic!("no failure line:\n{log}"));
    assert!(failure.contains("WARN"), "{failure}");
    assert!(
        failure.contains("uri=/login/discord/callback?<redacted> "),
        "{failure}"
    );
    assert!(log.contains("uri=/link-meetup/***/start "), "{log}");
    for secret in [
        "SECRETCODE123",
        "FORGED",
        "injected",
        "hunter2",
        "SECRETLINK123",
    ] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
    }
}

struct NeverReady;

impl web::Readiness for NeverReady {
    fn check(&self) -> discord::BoxFuture<'static, Vec<web::Component>> {
        Box::pin(async { Vec::new() })
    }
}
