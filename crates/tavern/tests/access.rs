//! Every route of the assembled site says who may call it, and no state-changing
//! route lets anyone in without a session plus its CSRF token, or an API token with
//! the route's scope: the whole Tavern (sandbox mode), its manifest (every route of
//! the assembled site, the sandbox console's included) walked route by route, each
//! door knocked on three ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use feature::Clock as _;
use reqwest::header::{COOKIE, SET_COOKIE};
use web::access::{Access, Manifest};
use web::tokens::{ApiTokens, Scope, TokenName};

/// The path with every `{param}` filled in (ids and names alike take `1`).
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('1');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// A token holding a scope no route asks for, as `Authorization` sends it.
async fn unscoped_bearer(redis: &store::harness::TestRedis) -> String {
    let redis = store::Redis::connect(&redis.url()).await.unwrap();
    let unrelated = ApiTokens::new(redis)
        .create(
            &TokenName::parse("walker").unwrap(),
            Scope::parse_list("walk:nothing").unwrap(),
            feature::SystemClock.now(),
        )
        .await
        .unwrap();
    format!("Bearer {}", unrelated.token.expose_str())
}

/// Walks `manifest` of the site at `base`: every state-changing route is knocked on
/// anonymously, with `session` but without its CSRF token, and with `bearer` (a token
/// without the route's scope). What let anyone in, or was never declared, is returned.
async fn walk(
    http: &reqwest::Client,
    base: &str,
    manifest: &Manifest,
    session: &str,
    bearer: &str,
) -> Vec<String> {
    let mut open: Vec<String> = manifest
        .undeclared
        .iter()
        .map(|part| format!("{part}: serves routes that do not say who may call them"))
        .collect();
    for route in manifest.routes.iter().filter(|r| r.changes_state()) {
        if route.access == Access::Public {
            open.push(format!("{route}: declared public"));
            continue;
        }
        let url = format!("{base}{}?user=1", concrete(&route.path));
        if route.access == Access::Credentials {
            // Signing up or logging in: without credentials nothing may happen.
            let status = http
                .request(route.method.clone(), &url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap()
                .status();
            if !status.is_client_error() || status.as_u16() == 429 {
                open.push(format!("{route}: no credentials got {status}"));
            }
            continue;
        }
        let knock = |extra: Option<(&'static str, String)>| {
            let mut request = http
                .request(route.method.clone(), &url)
                .header("content-type", "application/json")
                .body("{}");
            if let Some((name, value)) = extra {
                request = request.header(name, value);
            }
            request.send()
        };
        for (who, extra) in [
            ("anonymous", None),
            (
                "a session without its CSRF token",
                Some(("cookie", session.to_owned())),
            ),
            (
                "a token without the scope",
                Some(("authorization", bearer.to_owned())),
            ),
        ] {
            let status = knock(extra).await.unwrap().status().as_u16();
            if !matches!(status, 401 | 403) {
                open.push(format!("{route}: {who} got {status}"));
            }
        }
    }
    open
}

#[tokio::test]
async fn no_state_changing_route_is_reachable_without_a_session_and_csrf_or_a_scoped_token() {
    let app = common::spawn_app().await;
    let http = common::no_redirects();
    let manifest = app
        .running
        .manifest()
        .expect("the routes are in place once ready")
        .clone();
    // The walk sees the whole site: the features', the login's, and what is served
    // before them (the sandbox console among it).
    for (method, path) in [
        ("POST", "/logout"),
        ("GET", "/healthz"),
        ("GET", "/"),
        ("GET", "/sandbox"),
        ("POST", "/sandbox/api/command"),
        ("POST", "/sandbox/api/click"),
        ("POST", "/sandbox/api/select"),
    ] {
        assert!(
            manifest
                .routes
                .iter()
                .any(|r| r.method == method && r.path == path),
            "{method} {path} is not in the manifest: {manifest:?}"
        );
    }
    for route in &manifest.routes {
        if let Some(scope) = route.access.scope().or(route.access.bearer_scope()) {
            assert!(Scope::parse(scope.as_str()).is_ok(), "{route}: bad scope");
        }
    }

    let session = app.log_in(&http).await;
    let bearer = unscoped_bearer(&app.redis).await;
    let open = walk(&http, &app.url(""), &manifest, &session, &bearer).await;
    assert!(open.is_empty(), "reachable:\n{}", open.join("\n"));
}

/// A site with a state-changing route that says nothing about who may call it, or
/// that lets anyone in, fails the walk; the same site without them passes.
#[tokio::test]
async fn a_planted_undeclared_or_public_post_route_fails_the_walk() {
    let app = common::spawn_app().await;
    let http = common::no_redirects();
    let session = app.log_in(&http).await;
    let bearer = unscoped_bearer(&app.redis).await;
    // Sessions over the same Redis, so the walker's session is one here too.
    let sessions = web::session::Sessions::new(
        store::Redis::connect(&app.redis.url()).await.unwrap(),
        web::session::SessionConfig::for_public_url(&url::Url::parse(&app.url("")).unwrap()),
    );
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let write = {
        let written = std::sync::Arc::clone(&written);
        move || async move {
            written.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            "written"
        }
    };
    let site = |planted: Vec<web::access::Routes>| {
        let mut extra = vec![
            web::page::home_routes(&sessions),
            web::sandbox::console(app.sim().clone(), app.demo().clone(), &sessions, None),
        ];
        extra.extend(planted);
        web::assemble(
            web::AppState {
                readiness: std::sync::Arc::new(Ready),
                metrics: None,
            },
            web::page::Site::default(),
            extra,
            web::LateRoutes::default(),
        )
    };
    let serve = |router: axum::Router| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(web::serve(listener, router, std::future::pending()));
        base
    };

    let (clean, manifest) = site(Vec::new());
    let base = serve(clean).await;
    let open = walk(&http, &base, &manifest, &session, &bearer).await;
    assert!(open.is_empty(), "{open:?}");

    let (planted, manifest) = site(vec![
        web::access::Routes::new(&sessions).undeclared(
            "planted",
            axum::Router::new().route("/planted", axum::routing::post(write.clone())),
        ),
        web::access::Routes::new(&sessions).post("/planted/open", Access::Public, write),
    ]);
    let base = serve(planted).await;
    let open = walk(&http, &base, &manifest, &session, &bearer).await;
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(
        open.iter()
            .any(|o| o.starts_with("planted: serves routes that do not say")),
        "{open:?}"
    );
    assert!(
        open.iter()
            .any(|o| o.starts_with("POST /planted/open (public)")),
        "{open:?}"
    );
    // Both routes are there and take anonymous writes: what the walk refuses.
    for path in ["/planted", "/planted/open"] {
        let status = http
            .post(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{path}");
    }
    assert_eq!(written.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// Always ready (the planted site has no stores to wait for).
struct Ready;

impl web::Readiness for Ready {
    fn check(&self) -> discord::BoxFuture<'static, Vec<web::Component>> {
        Box::pin(async { Vec::new() })
    }
}

/// The sandbox console's actions are open to anyone at the console, but only with
/// the token its page carries and the cookie it set, and never from another site.
#[tokio::test]
async fn the_sandbox_console_acts_only_with_the_token_of_its_page() {
    let app = common::spawn_app().await;
    let http = common::no_redirects();
    let page = http.get(app.url("/sandbox")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let cookie = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("tavern_console="))
        .expect("the console's cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let token = testkit::attribute_values(&html, "data-csrf")
        .into_iter()
        .next()
        .expect("the page's token");
    assert_eq!(format!("tavern_console={token}"), cookie);

    let command = |cookie: Option<&str>, token: Option<&str>, origin: Option<&str>| {
        let mut request = http
            .post(app.url("/sandbox/api/command"))
            .json(&serde_json::json!({"channel": app.demo().dice.to_string(), "text": "/nope"}));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let wrong = "0".repeat(64);
    assert_eq!(command(None, None, None).await, 403, "anonymous");
    assert_eq!(command(None, Some(&token), None).await, 403, "no cookie");
    assert_eq!(command(Some(&cookie), None, None).await, 403, "no token");
    assert_eq!(
        command(Some(&cookie), Some(&wrong), None).await,
        403,
        "wrong token"
    );
    assert_eq!(
        command(
            Some(&cookie),
            Some(&token),
            Some("https://elsewhere.example")
        )
        .await,
        403,
        "another origin"
    );
    // With both, the request reaches the console (which explains the unknown command).
    assert_eq!(command(Some(&cookie), Some(&token), None).await, 400);
    let own = app.url("");
    assert_eq!(command(Some(&cookie), Some(&token), Some(&own)).await, 400);
}

/// `tavern tokens ...` against `redis`.
fn tokens_cli(redis: &store::harness::TestRedis, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("tokens")
        .args(args)
        .env("TAVERN_REDIS_URL", redis.url())
        .env("TAVERN_LOG", "error")
        .output()
        .expect("run tavern tokens")
}

#[tokio::test]
async fn an_admin_issues_a_token_on_the_command_line_and_revokes_it() {
    let app = common::spawn_app().await;
    let roll = app.url(&format!(
        "/api/rolls/roll?user={}&expression=1d20",
        app.demo().alice.get()
    ));

    let created = tokens_cli(
        &app.redis,
        &["create", "dice-bot", "--scopes", "rolls:read,rolls:write"],
    );
    let stdout = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(
        created.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = stdout.lines().last().expect("a last line").to_owned();
    assert!(
        token.starts_with("tavern_") && !token.contains(' '),
        "{stdout}"
    );
    let answer = app
        .http
        .get(&roll)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);

    let listed = tokens_cli(&app.redis, &["list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("dice-bot\trolls:read,rolls:write"),
        "{listed}"
    );
    assert!(!listed.contains(&token), "{listed}");

    let again = tokens_cli(
        &app.redis,
        &["create", "dice-bot", "--scopes", "rolls:read"],
    );
    assert_eq!(again.status.code(), Some(2));
    let typo = tokens_cli(&app.redis, &["create", "other", "--scopes", "rolls:wirte"]);
    assert_eq!(typo.status.code(), Some(2));
    let typo = String::from_utf8_lossy(&typo.stderr).into_owned();
    assert!(
        typo.contains("rolls:wirte") && typo.contains("rolls:read"),
        "{typo}"
    );
    assert_eq!(typo.trim().lines().count(), 1, "{typo}");
    // The meetings API takes its own keys, never an API token: none is issued for it.
    let meetings = tokens_cli(
        &app.redis,
        &[
            "create",
            "meet-bot",
            "--scopes",
            "meetings:create,meetings:read",
        ],
    );
    assert_eq!(meetings.status.code(), Some(2));
    let meetings = String::from_utf8_lossy(&meetings.stderr).into_owned();
    assert!(
        meetings.contains("`meetings:create` is not a scope of Tavern's API tokens")
            && meetings.contains("POST /api/v1/api-keys")
            && meetings.contains("rolls:read"),
        "{meetings}"
    );
    assert_eq!(meetings.trim().lines().count(), 1, "{meetings}");
    let listed = tokens_cli(&app.redis, &["list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(!listed.contains("meet-bot"), "{listed}");

    let revoked = tokens_cli(&app.redis, &["revoke", "dice-bot"]);
    assert!(revoked.status.success());
    let answer = app
        .http
        .get(&roll)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    let unknown = tokens_cli(&app.redis, &["revoke", "dice-bot"]);
    assert_eq!(unknown.status.code(), Some(1));
}
