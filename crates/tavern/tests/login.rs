//! Logging in on the web with Discord, in sandbox mode: the whole Tavern, its fake
//! Discord's OAuth2, and sessions in a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// The `name=value` part of a response's `Set-Cookie`.
fn session_cookie(response: &reqwest::Response) -> String {
    let raw = response
        .headers()
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .expect("ascii cookie");
    raw.split(';').next().expect("name=value").to_owned()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("a redirect")
        .to_str()
        .expect("ascii location")
        .to_owned()
}

#[tokio::test]
async fn the_sandbox_demo_player_logs_in_with_discord_and_out_again() {
    let app = common::spawn_app().await;
    app.wait_ready().await;
    let http = common::no_redirects();

    // Nobody is logged in yet.
    let anonymous = http.get(app.url("/api/me")).send().await.expect("me");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Tavern sends the browser to (fake) Discord with a state bound to a new session...
    let start = http
        .get(app.url("/login/discord?next=/sandbox"))
        .send()
        .await
        .expect("login");
    assert!(start.status().is_redirection(), "{}", start.status());
    let pre_login = session_cookie(&start);
    let authorize = location(&start);
    assert!(
        authorize.starts_with(&format!("{}/oauth2/authorize", app.sim().http_url())),
        "{authorize}"
    );

    // ...which signs the demo player in and sends the browser back with a code...
    let approved = http.get(&authorize).send().await.expect("authorize");
    assert!(approved.status().is_redirection(), "{}", approved.status());
    let callback = location(&approved);
    assert!(
        callback.starts_with(&app.url("/login/discord/callback")),
        "{callback}"
    );

    // ...and the callback logs them in and returns them where they were going.
    let done = http
        .get(&callback)
        .header(COOKIE, &pre_login)
        .send()
        .await
        .expect("callback");
    assert!(done.status().is_redirection(), "{}", done.status());
    assert_eq!(location(&done), "/sandbox");
    let session = session_cookie(&done);
    assert_ne!(session, pre_login, "logging in issues a new session id");

    let me: serde_json::Value = http
        .get(app.url("/api/me"))
        .header(COOKIE, &session)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["id"], app.demo().demo_player.to_string());
    let csrf = me["csrf_token"].as_str().expect("csrf token").to_owned();

    // The code was spent: the same callback again is refused.
    let replay = http
        .get(&callback)
        .header(COOKIE, &pre_login)
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);

    // Logging out needs the CSRF token, then ends the session.
    let forged = http
        .post(app.url("/logout"))
        .header(COOKIE, &session)
        .send()
        .await
        .expect("logout without token");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let out = http
        .post(app.url("/logout"))
        .header(COOKIE, &session)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .expect("logout");
    assert!(
        out.status().is_success() || out.status().is_redirection(),
        "{}",
        out.status()
    );
    let after = http
        .get(app.url("/api/me"))
        .header(COOKIE, &session)
        .send()
        .await
        .expect("me after logout");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}
