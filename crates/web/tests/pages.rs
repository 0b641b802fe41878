//! The site's pages over real HTTP: the layout, the assets, the home page and the
//! sandbox console, on a loopback port with discord-sim as Discord and a real
//! redis-server for sessions. No bot runs here: the console shows what the sim holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use discord::model::UserId;
use discord::oauth::{AccessToken, TokenGrant};
use discord_sim::{AttachmentSpec, ChannelKind, Demo, RoleSpec, Sim, SimConfig, Snowflake};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, COOKIE, RETRY_AFTER};
use store::harness::TestRedis;
use url::Url;
use web::access::{Access, Routes};
use web::page::{NavLink, Site};
use web::session::{COOKIE as SESSION_COOKIE, SessionConfig, SessionUser, Sessions};
use web::{AppState, Component, LateRoutes, Readiness};

struct AlwaysReady;

impl Readiness for AlwaysReady {
    fn check(&self) -> discord::BoxFuture<'static, Vec<Component>> {
        Box::pin(async { Vec::new() })
    }
}

struct TestSite {
    base: Url,
    sim: Sim,
    demo: Demo,
    sessions: Sessions,
    redis: TestRedis,
    http: reqwest::Client,
}

/// A 1×1 PNG.
const PIXEL: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn spawn() -> TestSite {
    spawn_with(|config| config).await
}

/// A site whose session settings are `configure`d from those of its URL.
async fn spawn_with(configure: impl FnOnce(SessionConfig) -> SessionConfig) -> TestSite {
    discord::install_crypto_provider();
    let sim = Sim::start(SimConfig::default()).unwrap();
    let demo = sim.seed_demo();
    let redis = TestRedis::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let sessions = Sessions::new(
        redis.connect().await,
        configure(SessionConfig::for_public_url(&base)),
    );
    let site = Site::default();
    let state = AppState {
        readiness: std::sync::Arc::new(AlwaysReady),
        metrics: None,
    };
    // A feature's form, for the refusals of a signed-in user's stale form.
    let late = LateRoutes::default();
    let feature = Routes::new(&sessions)
        .post("/things", Access::User, || async { "done" })
        .get("/api/things", Access::User, || async { "[]" })
        .get(
            "/api/tokened",
            Access::user_or_token("things:read"),
            || async { "[]" },
        );
    let (app, _) = web::assemble(
        state,
        site.clone(),
        vec![
            web::page::home_routes(&sessions),
            web::sandbox::console(sim.clone(), demo.clone(), &sessions, None),
            feature,
        ],
        late.clone(),
    );
    // The features' routes (none here) arrive once Tavern has started.
    late.set(axum::Router::new());
    // The navigation arrives once the features exist, after the server listens.
    site.set_nav([
        web::sandbox::NAV,
        NavLink::new("Clips", "/clips", "The server's videos."),
    ]);
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestSite {
        base,
        sim,
        demo,
        sessions,
        redis,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl TestSite {
    fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap()
    }

    /// A page as a browser asks for it; `(status, headers, body)`.
    async fn page(
        &self,
        path: &str,
        cookie: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self.http.get(self.url(path)).header(ACCEPT, "text/html");
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    async fn fragment(&self, channel: Snowflake) -> String {
        let response = self
            .http
            .get(self.url(&format!("/sandbox/api/channels/{channel}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Logs `user` in without the OAuth dance; returns the session cookie's value and
    /// the CSRF token.
    async fn log_in(&self, user: Snowflake, name: &str) -> (String, String) {
        let grant = TokenGrant {
            access_token: AccessToken::from("token"),
            refresh_token: None,
            expires_in: Duration::from_secs(3600),
            scopes: vec!["identify".into()],
        };
        let user = SessionUser {
            id: UserId::new(user.get()),
            username: name.into(),
            global_name: None,
            avatar: None,
        };
        let session = self.sessions.log_in(None, user, &grant).await.unwrap();
        let cookie = self.sessions.cookie(&session);
        let value = cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        (value, session.csrf_token().to_owned())
    }
}

#[tokio::test]
async fn the_console_is_a_page_of_the_site() {
    let site = spawn().await;
    let (status, headers, page) = site.page("/sandbox", None).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("<meta name=\"viewport\""), "{page}");
    assert!(page.contains("<title>Sandbox · Tavern</title>"), "{page}");
    assert!(page.contains(&web::page::STYLESHEET.url()), "{page}");
    assert!(page.contains(&web::sandbox::SCRIPT.url()), "{page}");
    // The navigation, with the console marked as the current page.
    assert!(
        page.contains("<a href=\"/sandbox\" aria-current=\"page\">Sandbox</a>"),
        "{page}"
    );
    assert!(page.contains("<a href=\"/clips\">Clips</a>"), "{page}");
    // Nobody is signed in: the header offers the login, coming back here.
    assert!(
        page.contains(
            "href=\"/login/discord?next=%2Fsandbox\">Log in\
             <span class=\"login-with\"> with Discord</span></a>"
        ),
        "{page}"
    );
    // The channels, the voice one marked as such, #dice open and its welcome.
    assert!(page.contains("class=\"channel active\""), "{page}");
    assert!(page.contains("class=\"channel voice\""), "{page}");
    assert!(page.contains("<span class=\"name\">Table</span>"), "{page}");
    assert!(page.contains("This is the beginning of #dice."), "{page}");
    assert!(page.contains("Roll dice with /roll"), "{page}");
}

#[tokio::test]
async fn the_console_shows_messages_as_discord_would() {
    let site = spawn().await;
    let (sim, demo) = (&site.sim, &site.demo);
    let gm = sim
        .create_role(demo.guild, RoleSpec::new("Game Master", 0))
        .unwrap();
    sim.post_user_message(
        demo.general,
        demo.alice,
        &format!(
            "hey <@{}>, <@&{gm}> says roll in <#{}>: ||it's a trap|| `1d20` **now** \
             <script>alert(1)</script>\n-# whispered\n> quoted",
            demo.bob, demo.dice
        ),
        vec![
            AttachmentSpec::new("map.png", "image/png", PIXEL.to_vec()),
            AttachmentSpec::new(
                "evil.html",
                "text/html",
                b"<script>alert(1)</script>".to_vec(),
            ),
        ],
    )
    .unwrap();
    let html = site.fragment(demo.general).await;
    assert!(
        html.contains("<span class=\"mention\">@bob</span>"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"mention\">@Game Master</span>"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"mention\">#dice</span>"),
        "{html}"
    );
    assert!(html.contains("class=\"spoiler\""), "{html}");
    assert!(html.contains("it&#39;s a trap</span>"), "{html}");
    assert!(html.contains("<code>1d20</code>"), "{html}");
    assert!(html.contains("<strong>now</strong>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("<div class=\"subtext\">whispered</div>"),
        "{html}"
    );
    assert!(html.contains("<blockquote>quoted</blockquote>"), "{html}");
    assert!(
        html.contains("<span class=\"author\">alice</span>"),
        "{html}"
    );
    assert!(
        html.contains("This is the beginning of #general."),
        "{html}"
    );

    // The image is previewed through the console, which serves it.
    let prefix = "<img src=\"";
    let start = html.find(prefix).expect("an image preview") + prefix.len();
    let src = &html[start..start + html[start..].find('"').unwrap()];
    assert!(src.starts_with("/sandbox/attachments/"), "{src}");
    let image = site.http.get(site.url(src)).send().await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()[CONTENT_TYPE], "image/png");
    assert!(
        image.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox"),
    );
    assert_eq!(image.bytes().await.unwrap().as_ref(), PIXEL);

    // Anything else is a download that cannot run on this site.
    let evil = html
        .split("href=\"")
        .find(|s| s.starts_with("/sandbox/attachments/") && s.contains("evil.html"))
        .and_then(|s| s.split('"').next())
        .expect("a link to the html file");
    let file = site.http.get(site.url(evil)).send().await.unwrap();
    assert_eq!(file.headers()[CONTENT_TYPE], "application/octet-stream");
    assert_eq!(file.headers()["content-disposition"], "attachment");
    assert_eq!(file.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn an_empty_channel_is_welcomed_and_voice_channels_are_listed() {
    let site = spawn().await;
    let (sim, demo) = (&site.sim, &site.demo);
    let quiet = sim
        .create_channel(demo.guild, "quiet", ChannelKind::Text)
        .unwrap();
    let html = site.fragment(quiet).await;
    assert!(html.contains("Welcome to #quiet!"), "{html}");
    assert!(html.contains("This is the beginning of #quiet."), "{html}");
    assert!(!html.contains("class=\"message"), "{html}");

    let voice = site.fragment(demo.voice).await;
    // A voice channel's mark is the drawn speaker, named for screen readers.
    assert!(
        voice.contains(
            "This is the beginning of <svg class=\"icon\" viewBox=\"0 0 24 24\" aria-hidden=\"true\">"
        ) && voice.contains("<span class=\"visually-hidden\">voice channel </span>Table."),
        "{voice}"
    );
    assert!(!voice.contains('🔊'), "{voice}");

    let sidebar = site
        .http
        .get(site.url(&format!("/sandbox/api/sidebar?channel={quiet}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sidebar.contains("<h2 class=\"category\">Tavern</h2>"),
        "{sidebar}"
    );
    assert!(
        sidebar.contains(&format!("data-id=\"{quiet}\"")),
        "{sidebar}"
    );
    assert!(sidebar.contains("class=\"channel active\""), "{sidebar}");
    assert!(
        sidebar.contains("<span class=\"visually-hidden\"> (voice)</span>"),
        "{sidebar}"
    );

    // A channel that does not exist is a page that says so.
    let (status, _, page) = site.page("/sandbox?channel=42", None).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("has no channel 42"), "{page}");
    let (status, _, page) = site.page("/sandbox?channel=general", None).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("`general` is not a channel id"), "{page}");
}

#[tokio::test]
async fn signed_in_pages_show_the_user_and_a_log_out_form() {
    let site = spawn().await;
    let (cookie, csrf) = site.log_in(site.demo.alice, "alice").await;
    let (status, headers, page) = site.page("/sandbox", Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Signed in as <strong>alice</strong>"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<form class=\"logout\" method=\"post\" action=\"/logout\">\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">"
        )),
        "{page}"
    );
    assert!(page.contains(&format!("<meta name=\"csrf-token\" content=\"{csrf}\">")));
    assert!(!page.contains("/login/discord"), "{page}");
    // The console acts as the signed-in member.
    assert!(
        page.contains(&format!(
            "<option value=\"{}\" selected>alice</option>",
            site.demo.alice
        )),
        "{page}"
    );
    // A page made for one session is not kept by shared caches.
    assert_eq!(headers[CACHE_CONTROL], "private, no-cache");

    let (status, _, home) = site.page("/", Some(&cookie)).await;
    assert_eq!(status, 200, "{home}");
    assert!(home.contains("Welcome back, alice!"), "{home}");
    assert!(
        home.contains("<li><a href=\"/clips\">Clips</a></li>"),
        "{home}"
    );
}

#[tokio::test]
async fn problem_pages_show_the_navigation_and_who_is_signed_in() {
    let site = spawn().await;
    let nav = "<li><a href=\"/clips\">Clips</a></li>";

    // An address nobody serves, signed out: the navigation and the login back here.
    let (status, _, page) = site.page("/meet/nowhere", None).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("<h1>Not found</h1>"), "{page}");
    assert!(page.contains(nav), "{page}");
    assert!(
        page.contains("href=\"/login/discord?next=%2Fmeet%2Fnowhere\""),
        "{page}"
    );

    // The same, signed in: the user and the log-out form, kept out of shared caches.
    let (cookie, csrf) = site.log_in(site.demo.alice, "alice").await;
    let (status, headers, page) = site.page("/meet/nowhere", Some(&cookie)).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains(nav), "{page}");
    assert!(
        page.contains("Signed in as <strong>alice</strong>"),
        "{page}"
    );
    assert!(page.contains(&format!("value=\"{csrf}\"")), "{page}");
    assert_eq!(headers[CACHE_CONTROL], "private, no-cache");

    // A signed-in user's form from a stale page: the CSRF refusal, in the same layout.
    let response = site
        .http
        .post(site.url("/things"))
        .header(COOKIE, format!("{SESSION_COOKIE}={cookie}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "text/html")
        .body("csrf_token=stale")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(page.contains("<h1>This page is out of date</h1>"), "{page}");
    assert!(page.contains(nav), "{page}");
    assert!(
        page.contains("Signed in as <strong>alice</strong>"),
        "{page}"
    );
}

#[tokio::test]
async fn assets_are_served_with_their_version() {
    let site = spawn().await;
    for asset in [
        &web::page::STYLESHEET,
        &web::page::SCRIPT,
        &web::sandbox::SCRIPT,
    ] {
        let response = site.http.get(site.url(&asset.url())).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", asset.url());
        assert_eq!(
            response.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            response.headers()["etag"].to_str().unwrap(),
            format!("\"{}\"", asset.version())
        );
        assert!(!response.bytes().await.unwrap().is_empty());
    }
    let css = site
        .http
        .get(site.url("/assets/site.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    assert_eq!(css.headers()[CACHE_CONTROL], "no-cache");
}

/// The console page's CSRF token and the cookie it set, as `(cookie, token)`.
async fn console_token(site: &TestSite) -> (String, String) {
    let response = site.http.get(site.url("/sandbox")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|v| v.starts_with(web::session::CONSOLE_COOKIE))
        .expect("the console's cookie");
    let html = response.text().await.unwrap();
    let token = testkit::attribute_values(&html, "data-csrf")
        .into_iter()
        .next()
        .expect("the page's token");
    (cookie, token)
}

#[tokio::test]
async fn console_actions_need_the_token_of_the_console_page() {
    let site = spawn().await;
    let body = serde_json::json!({"channel": site.demo.dice.to_string(), "text": "/nope"});
    let (cookie, token) = console_token(&site).await;
    for path in ["command", "click", "select"] {
        let url = site.url(&format!("/sandbox/api/{path}"));
        let anonymous = site
            .http
            .post(url.clone())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 403, "{path}");
        let cross_site = site
            .http
            .post(url)
            .json(&body)
            .header(COOKIE, &cookie)
            .header("x-csrf-token", &token)
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(cross_site.status(), 403, "{path}");
    }
    let (other_cookie, _) = console_token(&site).await;
    let mixed = site
        .http
        .post(site.url("/sandbox/api/command"))
        .json(&body)
        .header(COOKIE, &other_cookie)
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.status(), 403, "another page's token");
}

/// The status of a console command sent from a page whose origin is `origin`.
async fn command_from(site: &TestSite, origin: &str) -> u16 {
    let (cookie, token) = console_token(site).await;
    site.http
        .post(site.url("/sandbox/api/command"))
        .header(COOKIE, cookie)
        .header("x-csrf-token", token)
        .header(reqwest::header::ORIGIN, origin)
        .json(&serde_json::json!({"channel": site.demo.dice.to_string(), "text": "/nope"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_console_on_loopback_takes_commands_from_any_loopback_name_of_its_port() {
    let site = spawn_with(SessionConfig::with_loopback_aliases).await;
    let port = site.base.port().unwrap();
    // 400: the command was read (and is unknown), not refused.
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        assert_eq!(
            command_from(&site, &format!("http://{host}:{port}")).await,
            400,
            "{host}"
        );
    }
    let other_port = port.wrapping_add(1);
    for origin in [
        format!("http://localhost:{other_port}"),
        format!("https://localhost:{port}"),
        format!("http://evil.example:{port}"),
    ] {
        assert_eq!(command_from(&site, &origin).await, 403, "{origin}");
    }

    // Without the aliases, only the public URL's own origin is the site's.
    let site = spawn().await;
    let port = site.base.port().unwrap();
    assert_eq!(
        command_from(&site, &format!("http://localhost:{port}")).await,
        403
    );
    assert_eq!(
        command_from(&site, &format!("http://127.0.0.1:{port}")).await,
        400
    );
}

#[tokio::test]
async fn console_commands_explain_their_mistakes() {
    let site = spawn().await;
    let (cookie, token) = console_token(&site).await;
    let response = site
        .http
        .post(site.url("/sandbox/api/command"))
        .header(COOKIE, cookie)
        .header("x-csrf-token", token)
        .json(&serde_json::json!({"channel": site.demo.dice.to_string(), "text": "/nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown command `/nope`"),
        "{body}"
    );
}

/// While the session store is down a signed-in visitor gets 503 with `Retry-After` in
/// the kit's words for an outage: the site's problem page when a browser opens a page
/// or sends a form, JSON under `/api/` (even asked for HTML) and for a script.
#[tokio::test]
async fn a_session_store_outage_is_a_page_for_browsers_and_json_for_the_api_and_scripts() {
    let mut site = spawn().await;
    let (cookie, token) = site.log_in(site.demo.bob, "bob").await;
    site.redis.kill();
    let session = format!("{SESSION_COOKIE}={cookie}");

    let (status, headers, page) = site.page("/sandbox", Some(&cookie)).await;
    assert_eq!(status, 503, "{page}");
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("reach its storage right now"), "{page}");
    assert_eq!(headers[RETRY_AFTER], "60");

    let form = site
        .http
        .post(site.url("/things"))
        .header(COOKIE, &session)
        .header(ACCEPT, "text/html")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 503);
    assert_eq!(form.headers()[RETRY_AFTER], "60");
    let page = form.text().await.unwrap();
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.contains("reach its storage right now"),
        "{page}"
    );

    for (path, accept) in [("/api/things", "text/html"), ("/sandbox", "*/*")] {
        let response = site
            .http
            .get(site.url(path))
            .header(COOKIE, &session)
            .header(ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{path}");
        assert_eq!(response.headers()[RETRY_AFTER], "60", "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "service_unavailable", "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("can't reach its storage right now"),
            "{path}: {body}"
        );
    }
}

/// A Redis that restarted while nobody visited: the session store's connection learns
/// it is dead only from the next visit, which is served all the same (the command is
/// tried once more on the new connection) rather than answered 503.
#[tokio::test]
async fn the_first_visit_after_the_session_store_restarted_is_served() {
    let mut site = spawn().await;
    let (cookie, _) = site.log_in(site.demo.bob, "bob").await;
    let port = site.redis.port();
    site.redis.kill();
    site.redis = TestRedis::start_on(port).await;
    // The new server holds no session: the visitor is served, signed out.
    let (status, _, page) = site.page("/sandbox", Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
}

/// An outage of the session store is told once when it begins (WARN, with its cause)
/// and once when it ends (INFO); the requests in between are logged at debug, neither
/// as an ERROR of their own nor as a failed request.
#[tokio::test]
async fn a_session_store_outage_is_logged_once_when_it_begins_and_once_when_it_ends() {
    let logs = testkit::Logs::default();
    let _guard = logs.capture();
    let mut site = spawn().await;
    let (cookie, _) = site.log_in(site.demo.bob, "bob").await;
    let port = site.redis.port();
    site.redis.kill();
    for _ in 0..3 {
        let (status, _, page) = site.page("/sandbox", Some(&cookie)).await;
        assert_eq!(status, 503, "{page}");
        let api = site
            .http
            .get(site.url("/api/things"))
            .header(COOKIE, format!("{SESSION_COOKIE}={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 503);
        // A token of another shape is refused without asking the store: no sign of
        // the store being back.
        let tokened = site
            .http
            .get(site.url("/api/tokened"))
            .header("authorization", "Bearer tavern_SEKRIT10")
            .send()
            .await
            .unwrap();
        assert_eq!(tokened.status(), 401);
        assert_eq!(logs.count("session store can be reached again"), 0);
    }

    site.redis = TestRedis::start_on(port).await;
    // The new server holds no session: once it answers, the visitor is signed out.
    testkit::eventually("the session store answers again", || async {
        let (status, _, _) = site.page("/sandbox", Some(&cookie)).await;
        (status == 200).then_some(())
    })
    .await;
    site.page("/sandbox", Some(&cookie)).await;

    let loud: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert_eq!(loud.len(), 1, "{loud:#?}");
    assert!(
        loud[0].contains(" WARN ")
            && loud[0].contains("session store cannot be reached")
            && loud[0].contains("error=session store:"),
        "{loud:#?}"
    );
    assert_eq!(
        logs.count("session store can be reached again"),
        1,
        "{}",
        logs.text()
    );
}
