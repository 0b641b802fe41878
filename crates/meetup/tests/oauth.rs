//! OAuth2 against the fake: authorize redirect, code exchange, single-use codes, refresh
//! rotation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::{http, world};
use meetup::{AuthorizationCode, ClientId, ClientSecret, MeetupError, OAuthApp};
use url::Url;

fn app() -> OAuthApp {
    OAuthApp {
        client_id: ClientId::new("tavern"),
        client_secret: ClientSecret::from("tavern-secret"),
        redirect_uri: Url::parse("http://localhost:8080/meetup/callback").unwrap(),
    }
}

/// Follows the authorize URL like a browser would and returns the redirect's query.
async fn authorize(w: &common::World, app: &OAuthApp, state: &str) -> Vec<(String, String)> {
    let url = w.client.endpoints().authorize_url(app, state, None);
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    let location = Url::parse(location).unwrap();
    assert!(
        location.as_str().starts_with(app.redirect_uri.as_str()),
        "{location}"
    );
    location.query_pairs().into_owned().collect()
}

fn code_of(pairs: &[(String, String)]) -> AuthorizationCode {
    let code = pairs
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone());
    AuthorizationCode::from(code.unwrap())
}

fn oauth_error(err: &MeetupError) -> &str {
    match err {
        MeetupError::OAuth { error, status, .. } => {
            assert_eq!(*status, 400);
            error
        }
        other => panic!("expected an OAuth error, got {other}"),
    }
}

#[tokio::test]
async fn code_exchange_works_once_and_the_tokens_belong_to_the_member() {
    let w = world().await;
    let app = app();
    w.fake
        .add_oauth_client(&app.client_id, &app.client_secret, &app.redirect_uri);
    let gm = w.fake.add_member("Gabriel GM");
    w.fake.sign_in(&gm).unwrap();

    let pairs = authorize(&w, &app, "csrf-123").await;
    assert!(pairs.contains(&("state".into(), "csrf-123".into())));
    let code = code_of(&pairs);
    let tokens = w.client.exchange_code(&app, &code).await.unwrap();
    assert_eq!(tokens.token_type, "bearer");
    assert_eq!(
        tokens.expires_in.as_secs(),
        meetup::fake::TOKEN_LIFETIME_SECS
    );
    let me = w.client.self_member(&tokens.access_token).await.unwrap();
    assert_eq!(me.id, gm);

    let err = w.client.exchange_code(&app, &code).await.unwrap_err();
    assert_eq!(oauth_error(&err), "invalid_grant");
    // A replayed code revokes what it gave (it may have been stolen).
    assert!(!w.fake.is_access_token_valid(&tokens.access_token));
    assert!(
        w.client
            .self_member(&tokens.access_token)
            .await
            .unwrap_err()
            .is_unauthorized()
    );
}

#[tokio::test]
async fn wrong_secret_unknown_code_and_nobody_signed_in_are_refused() {
    let w = world().await;
    let app = app();
    w.fake
        .add_oauth_client(&app.client_id, &app.client_secret, &app.redirect_uri);

    // Nobody is signed in to Meetup: the user is sent back with an error.
    let pairs = authorize(&w, &app, "s").await;
    assert!(
        pairs.contains(&("error".into(), "access_denied".into())),
        "{pairs:?}"
    );

    let gm = w.fake.add_member("Gabriel GM");
    w.fake.sign_in(&gm).unwrap();
    let code = code_of(&authorize(&w, &app, "s").await);
    let wrong = OAuthApp {
        client_secret: ClientSecret::from("guess"),
        ..app.clone()
    };
    let err = w.client.exchange_code(&wrong, &code).await.unwrap_err();
    assert_eq!(oauth_error(&err), "invalid_client");
    let err = w
        .client
        .exchange_code(&app, &AuthorizationCode::from("made-up"))
        .await
        .unwrap_err();
    assert_eq!(oauth_error(&err), "invalid_grant");
    // The refused attempts did not spend the real code.
    w.client.exchange_code(&app, &code).await.unwrap();

    // An unregistered redirect URI gets no redirect at all.
    let evil = OAuthApp {
        redirect_uri: Url::parse("http://evil.example/cb").unwrap(),
        ..app
    };
    let url = w.client.endpoints().authorize_url(&evil, "s", None);
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let statuses: Vec<_> = w.fake.token_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![400, 400, 200]);
}

#[tokio::test]
async fn refresh_rotates_both_tokens() {
    let w = world().await;
    let app = app();
    w.fake
        .add_oauth_client(&app.client_id, &app.client_secret, &app.redirect_uri);
    let gm = w.fake.add_member("Gabriel GM");
    w.fake.sign_in(&gm).unwrap();
    let code = code_of(&authorize(&w, &app, "s").await);
    let old = w.client.exchange_code(&app, &code).await.unwrap();

    let new = w
        .client
        .refresh(&app.client_id, &app.client_secret, &old.refresh_token)
        .await
        .unwrap();
    assert_ne!(new.access_token, old.access_token);
    assert_ne!(new.refresh_token, old.refresh_token);
    assert_eq!(
        w.client.self_member(&new.access_token).await.unwrap().id,
        gm
    );

    let err = w.client.self_member(&old.access_token).await.unwrap_err();
    assert!(matches!(err, MeetupError::Unauthorized { .. }), "{err}");
    let err = w
        .client
        .refresh(&app.client_id, &app.client_secret, &old.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(oauth_error(&err), "invalid_grant");
    assert!(w.fake.is_refresh_token_valid(&new.refresh_token));
    let grants: Vec<_> = w
        .fake
        .token_requests()
        .into_iter()
        .map(|r| (r.grant_type, r.status))
        .collect();
    assert_eq!(
        grants,
        vec![
            ("authorization_code".to_owned(), 200),
            ("refresh_token".to_owned(), 200),
            ("refresh_token".to_owned(), 400)
        ]
    );
}
