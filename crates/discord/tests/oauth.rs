//! `discord::oauth` against discord-sim over real HTTP: the URL it builds is one the
//! sim accepts, and every call decodes what the sim (shaped like Discord) answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use discord::model::GuildId;
use discord::oauth::{
    AccessToken, AuthorizationCode, BotInstall, ClientSecret, OAuthApp, OAuthEndpoints, OAuthError,
    Scope,
};
use discord_sim::{Sim, SimConfig, Snowflake};
use url::Url;

struct World {
    sim: Sim,
    app: OAuthApp,
}

const CALLBACK: &str = "http://127.0.0.1:9/login/discord/callback";

fn world() -> World {
    discord::install_crypto_provider();
    let sim = Sim::start(SimConfig::default()).unwrap();
    sim.register_redirect_uri(CALLBACK);
    let app = OAuthApp::new(
        sim.application_id().to_string(),
        ClientSecret::from(sim.client_secret()),
        Url::parse(CALLBACK).unwrap(),
        OAuthEndpoints::at(&sim.http_url()).unwrap(),
    );
    World { sim, app }
}

/// Plays the browser at the authorize URL as `user`; returns the callback URL.
async fn consent(authorize: Url, user: Snowflake) -> Url {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .get(authorize)
        .query(&[("sim_user_id", user.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    Url::parse(location).unwrap()
}

fn param(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn login_round_trip_gives_typed_user_and_guilds() {
    let World { sim, app } = world();
    let demo = sim.seed_demo();
    sim.set_guild_owner(demo.guild, demo.alice).unwrap();
    let url = app.authorize_url("xyz", &[Scope::Identify, Scope::Guilds], None);
    let back = consent(url, demo.alice).await;
    assert!(back.as_str().starts_with(CALLBACK));
    assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
    let code = AuthorizationCode::from(param(&back, "code").unwrap());

    let grant = app.exchange_code(&code).await.unwrap();
    assert_eq!(grant.scopes, vec!["identify", "guilds"]);
    assert!(grant.expires_in.as_secs() > 0);

    let me = app.current_user(&grant.access_token).await.unwrap();
    assert_eq!(me.id.get(), demo.alice.get());
    assert_eq!(me.username, "alice");
    assert_eq!(me.display_name(), "alice");

    let guilds = app.current_user_guilds(&grant.access_token).await.unwrap();
    assert_eq!(guilds.len(), 1);
    assert_eq!(guilds[0].id, GuildId::new(demo.guild.get()));
    assert!(guilds[0].owner);
    assert!(guilds[0].can_manage());

    // The code was single use.
    match app.exchange_code(&code).await {
        Err(OAuthError::InvalidGrant { .. }) => {}
        other => panic!("reused code: {other:?}"),
    }

    // Refresh rotates; the old refresh token is then refused.
    let old_refresh = grant.refresh_token.clone().unwrap();
    let renewed = app.refresh(&old_refresh).await.unwrap();
    assert_ne!(renewed.access_token, grant.access_token);
    assert!(matches!(
        app.refresh(&old_refresh).await,
        Err(OAuthError::InvalidGrant { .. })
    ));

    sim.revoke_oauth_token(renewed.access_token.expose());
    assert!(matches!(
        app.current_user(&renewed.access_token).await,
        Err(OAuthError::Unauthorized)
    ));
    assert!(matches!(
        app.current_user_guilds(&AccessToken::from("nope")).await,
        Err(OAuthError::Unauthorized)
    ));
}

#[tokio::test]
async fn wrong_secret_is_invalid_client_and_dead_server_is_transport() {
    let World { sim, app } = world();
    let demo = sim.seed_demo();
    let wrong = OAuthApp::new(
        app.client_id(),
        ClientSecret::from("wrong"),
        app.redirect_uri().clone(),
        app.endpoints().clone(),
    );
    let back = consent(wrong.authorize_url("s", &[Scope::Identify], None), demo.bob).await;
    let code = AuthorizationCode::from(param(&back, "code").unwrap());
    assert!(matches!(
        wrong.exchange_code(&code).await,
        Err(OAuthError::InvalidClient)
    ));

    let nowhere = OAuthApp::new(
        "1",
        ClientSecret::from("x"),
        Url::parse(CALLBACK).unwrap(),
        // Port 9 (discard) on loopback: nothing listens there.
        OAuthEndpoints::at("http://127.0.0.1:9").unwrap(),
    );
    assert!(matches!(
        nowhere.exchange_code(&code).await,
        Err(OAuthError::Transport { .. })
    ));
}

#[tokio::test]
async fn bot_install_url_adds_the_bot_to_the_preselected_guild() {
    let World { sim, app } = world();
    let demo = sim.seed_demo();
    let guild = sim.create_user_guild("Carol's Keep", demo.carol).unwrap();
    let url = app.authorize_url(
        "install-1",
        &[Scope::Bot, Scope::ApplicationsCommands],
        Some(BotInstall {
            guild: GuildId::new(guild.get()),
            permissions: 68_608,
        }),
    );
    let back = consent(url, demo.carol).await;
    assert_eq!(param(&back, "guild_id"), Some(guild.to_string()));
    assert_eq!(param(&back, "permissions").as_deref(), Some("68608"));
    assert!(sim.member(guild, sim.bot_user_id()).is_some());
}

/// A refused connection reported with its chain says the endpoint, the request's
/// failure and the refusal, each once.
#[tokio::test]
async fn an_unreachable_discords_oauth_error_says_each_cause_once() {
    discord::install_crypto_provider();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let nowhere = OAuthApp::new(
        "1",
        ClientSecret::from("x"),
        Url::parse(CALLBACK).unwrap(),
        OAuthEndpoints::at(&format!("http://{addr}")).unwrap(),
    );
    let code = AuthorizationCode::from("code".to_owned());
    let error = nowhere.exchange_code(&code).await.unwrap_err();
    assert!(matches!(error, OAuthError::Transport { .. }), "{error:?}");
    let report = common::chain(&error);
    assert!(report.starts_with("discord oauth2 token: "), "{report}");
    assert!(
        report.to_lowercase().contains("connection refused"),
        "{report}"
    );
    common::says_each_part_once(&report);
}
