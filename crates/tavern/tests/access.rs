//! Every route of the assembled site says who may call it, and no state-changing
//! route lets anyone in without a session plus its CSRF token, or an API token with
//! the route's scope: the whole Tavern (sandbox mode), its manifest walked route by
//! route, each door knocked on three ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use feature::Clock as _;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use web::access::Access;
use web::tokens::{ApiTokens, Scope, TokenName};

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

fn cookie(response: &reqwest::Response) -> String {
    let raw = response.headers()[SET_COOKIE].to_str().unwrap();
    raw.split(';').next().unwrap().to_owned()
}

/// Logs the sandbox's demo player in through the fake Discord; the session cookie.
async fn log_in(app: &common::TestApp, http: &reqwest::Client) -> String {
    let start = http.get(app.url("/login/discord")).send().await.unwrap();
    assert!(start.status().is_redirection(), "{}", start.status());
    let pre_login = cookie(&start);
    let approved = http.get(location(&start)).send().await.unwrap();
    let done = http
        .get(location(&approved))
        .header(COOKIE, &pre_login)
        .send()
        .await
        .unwrap();
    assert!(done.status().is_redirection(), "{}", done.status());
    cookie(&done)
}

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

#[tokio::test]
async fn no_state_changing_route_is_reachable_without_a_session_and_csrf_or_a_scoped_token() {
    let app = common::spawn_app().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let manifest = app
        .running
        .manifest()
        .expect("the routes are in place once ready")
        .clone();
    assert!(
        manifest.undeclared.is_empty(),
        "features with routes that do not say who may call them: {:?}",
        manifest.undeclared
    );
    let changing: Vec<_> = manifest
        .routes
        .iter()
        .filter(|r| r.changes_state())
        .collect();
    assert!(
        changing.iter().any(|r| r.path == "/logout"),
        "the walk sees the whole site: {manifest:?}"
    );
    for route in &manifest.routes {
        if let Some(scope) = route.access.scope() {
            assert!(Scope::parse(scope.as_str()).is_ok(), "{route}: bad scope");
        }
    }

    let session = log_in(&app, &http).await;
    let redis = store::Redis::connect(&app.redis.url()).await.unwrap();
    let unrelated = ApiTokens::new(redis)
        .create(
            &TokenName::parse("walker").unwrap(),
            Scope::parse_list("walk:nothing").unwrap(),
            feature::SystemClock.now(),
        )
        .await
        .unwrap();
    let bearer = format!("Bearer {}", unrelated.token.expose_str());

    let mut open = Vec::new();
    for route in &changing {
        if route.access == Access::Public {
            open.push(format!("{route}: declared public"));
            continue;
        }
        let url = app.url(&format!("{}?user=1", concrete(&route.path)));
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
                Some(("cookie", session.clone())),
            ),
            (
                "a token without the scope",
                Some(("authorization", bearer.clone())),
            ),
        ] {
            let status = knock(extra).await.unwrap().status().as_u16();
            if !matches!(status, 401 | 403) {
                open.push(format!("{route}: {who} got {status}"));
            }
        }
    }
    assert!(open.is_empty(), "reachable:\n{}", open.join("\n"));
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
