//! OAuth2 as Discord plays it, over real HTTP: authorize redirects, the token
//! endpoint, refresh, revocation, bearer calls (bodies parsed with twilight-model),
//! and the bot-install flow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use discord_sim::{Sim, SimConfig, Snowflake, intents};
use serde_json::Value;

const CALLBACK: &str = "http://127.0.0.1:9/login/discord/callback";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn sim() -> Sim {
    common::start_with(SimConfig {
        oauth_redirect_uris: vec![CALLBACK.to_owned()],
        ..SimConfig::default()
    })
}

/// `GET /oauth2/authorize` with the given extra query pairs; returns status and
/// the `Location` header's query pairs (if it redirected).
async fn authorize(sim: &Sim, extra: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
    let app = sim.application_id().to_string();
    let mut query: Vec<(&str, &str)> = vec![
        ("client_id", app.as_str()),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("scope", "identify guilds"),
        ("state", "st/ate 1"),
    ];
    for (k, v) in extra {
        query.retain(|(key, _)| key != k);
        query.push((k, v));
    }
    let response = client()
        .get(format!("{}/oauth2/authorize", sim.http_url()))
        .query(&query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    let pairs = url_pairs(&location);
    if status == 302 {
        assert!(location.starts_with(CALLBACK), "{location}");
    }
    (status, pairs, body)
}

fn url_pairs(location: &str) -> Vec<(String, String)> {
    let Some((_, query)) = location.split_once('?') else {
        return Vec::new();
    };
    // reqwest has no URL parser re-export we can lean on here; decode by hand.
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn token(sim: &Sim, form: &[(&str, &str)]) -> (u16, Value) {
    let response = client()
        .post(format!("{}/oauth2/token", sim.api_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn exchange(sim: &Sim, code: &str) -> (u16, Value) {
    let app = sim.application_id().to_string();
    token(
        sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("client_id", &app),
            ("client_secret", sim.client_secret()),
        ],
    )
    .await
}

async fn bearer(sim: &Sim, token: &str, path: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}{path}", sim.api_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn code_grant_gives_a_token_for_the_chosen_user() {
    let sim = sim();
    let demo = sim.seed_demo();
    let alice = demo.alice.to_string();
    let (status, pairs, body) = authorize(&sim, &[("sim_user_id", &alice)]).await;
    assert_eq!(status, 302, "{body}");
    assert_eq!(get(&pairs, "state"), Some("st/ate 1"));
    let code = get(&pairs, "code").unwrap().to_owned();

    let (status, grant) = exchange(&sim, &code).await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["token_type"], "Bearer");
    assert_eq!(grant["scope"], "identify guilds");
    assert_eq!(grant["expires_in"], 7 * 24 * 3600);
    let access = grant["access_token"].as_str().unwrap();

    let (status, me) = bearer(&sim, access, "/users/@me").await;
    assert_eq!(status, 200, "{me}");
    let me: twilight_model::user::CurrentUser = serde_json::from_value(me).unwrap();
    assert_eq!(me.id.get(), demo.alice.get());
    assert_eq!(me.name, "alice");
    assert!(!me.bot);

    // The code is single use.
    let (status, error) = exchange(&sim, &code).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid_grant");
}

#[tokio::test]
async fn user_guilds_carry_owner_and_permissions() {
    let sim = sim();
    let demo = sim.seed_demo();
    let own = sim.create_user_guild("Bob's Table", demo.bob).unwrap();
    sim.sign_in(Some(demo.bob));
    let (status, pairs, body) = authorize(&sim, &[]).await;
    assert_eq!(status, 302, "{body}");
    let (_, grant) = exchange(&sim, get(&pairs, "code").unwrap()).await;
    let access = grant["access_token"].as_str().unwrap();

    let (status, guilds) = bearer(&sim, access, "/users/@me/guilds").await;
    assert_eq!(status, 200, "{guilds}");
    let guilds: Vec<twilight_model::user::CurrentUserGuild> =
        serde_json::from_value(guilds).unwrap();
    let summary: Vec<(u64, &str, bool)> = guilds
        .iter()
        .map(|g| (g.id.get(), g.name.as_str(), g.owner))
        .collect();
    assert_eq!(
        summary,
        vec![
            (demo.guild.get(), "Tavern Demo", false),
            (own.get(), "Bob's Table", true)
        ]
    );
    let demo_perms = guilds[0].permissions.bits();
    assert_eq!(demo_perms & (1 << 5), 0, "bob cannot manage the demo guild");
    assert_ne!(guilds[1].permissions.bits() & (1 << 5), 0, "owner can");

    // The bot token still sees the bot's own guilds (not Bob's Table, it is not in it).
    let rest = common::Rest::new(&sim);
    let (status, bot_guilds) = rest.get("/users/@me/guilds").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = bot_guilds
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![demo.guild.to_string()]);
}

#[tokio::test]
async fn token_endpoint_refuses_bad_clients_codes_and_redirects() {
    let sim = sim();
    let demo = sim.seed_demo();
    let alice = demo.alice.to_string();
    let app = sim.application_id().to_string();
    let (_, pairs, _) = authorize(&sim, &[("sim_user_id", &alice)]).await;
    let code = get(&pairs, "code").unwrap().to_owned();

    let (status, error) = token(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("client_id", &app),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Bound to its redirect_uri.
    let (status, error) = token(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("client_id", &app),
            ("client_secret", sim.client_secret()),
        ],
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (status, error) = exchange(&sim, "not-a-code").await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // HTTP Basic client authentication works too.
    let (_, pairs, _) = authorize(&sim, &[("sim_user_id", &alice)]).await;
    let response = client()
        .post(format!("{}/oauth2/token", sim.api_url()))
        .basic_auth(&app, Some(sim.client_secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", get(&pairs, "code").unwrap()),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn refresh_rotates_and_revoked_tokens_are_unauthorized() {
    let sim = sim();
    let demo = sim.seed_demo();
    let carol = demo.carol.to_string();
    let app = sim.application_id().to_string();
    let (_, pairs, _) = authorize(&sim, &[("sim_user_id", &carol)]).await;
    let (_, first) = exchange(&sim, get(&pairs, "code").unwrap()).await;
    let refresh_form = |refresh: String| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh),
            ("client_id", app.clone()),
            ("client_secret", sim.client_secret().to_owned()),
        ]
    };
    let form = refresh_form(first["refresh_token"].as_str().unwrap().to_owned());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, second) = token(&sim, &form).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["access_token"], first["access_token"]);
    let (status, error) = token(&sim, &form).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let access = second["access_token"].as_str().unwrap();
    assert_eq!(bearer(&sim, access, "/users/@me").await.0, 200);
    sim.revoke_oauth_token(access);
    assert_eq!(bearer(&sim, access, "/users/@me").await.0, 401);
    assert_eq!(bearer(&sim, "made-up", "/users/@me/guilds").await.0, 401);
    // A bearer token never works on bot routes.
    let first_access = first["access_token"].as_str().unwrap();
    let path = format!("/guilds/{}", demo.guild);
    assert_eq!(bearer(&sim, first_access, &path).await.0, 401);
}

#[tokio::test]
async fn authorize_errors_are_pages_until_the_redirect_uri_is_trusted() {
    let sim = sim();
    let demo = sim.seed_demo();
    let alice = demo.alice.to_string();

    let (status, pairs, body) =
        authorize(&sim, &[("client_id", "1"), ("sim_user_id", &alice)]).await;
    assert_eq!((status, pairs.is_empty()), (400, true));
    assert!(body.contains("Unknown application"), "{body}");

    let (status, pairs, body) = authorize(
        &sim,
        &[
            ("redirect_uri", "https://evil.example/cb"),
            ("sim_user_id", &alice),
        ],
    )
    .await;
    assert_eq!((status, pairs.is_empty()), (400, true));
    assert!(body.contains("redirect_uri"), "{body}");

    let (status, _, body) = authorize(&sim, &[]).await;
    assert_eq!(status, 400);
    assert!(body.contains("sim_user_id"), "{body}");

    let (status, pairs, _) = authorize(
        &sim,
        &[
            ("sim_user_id", &alice),
            ("scope", "identify launch.missiles"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(get(&pairs, "error"), Some("invalid_scope"));

    let (status, pairs, _) =
        authorize(&sim, &[("sim_user_id", &alice), ("sim_decision", "deny")]).await;
    assert_eq!(status, 302);
    assert_eq!(get(&pairs, "error"), Some("access_denied"));
    assert_eq!(get(&pairs, "state"), Some("st/ate 1"));
    assert_eq!(get(&pairs, "code"), None);
}

#[tokio::test]
async fn bot_scope_adds_the_bot_to_the_guild() {
    let sim = sim();
    let demo = sim.seed_demo();
    let mut gateway = common::RawGateway::connect(&sim).await;
    gateway.identify(&sim, intents::GUILDS, [0, 1]).await;
    let own = sim.create_user_guild("Dave's Den", demo.alice).unwrap();
    assert!(sim.member(own, sim.bot_user_id()).is_none());
    let alice = demo.alice.to_string();
    let own_id = own.to_string();

    // Bob is not allowed to manage Alice's guild.
    let bob = demo.bob.to_string();
    sim.add_member(own, demo.bob).unwrap();
    let (status, _, body) = authorize(
        &sim,
        &[
            ("sim_user_id", &bob),
            ("scope", "bot"),
            ("guild_id", &own_id),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(sim.member(own, sim.bot_user_id()).is_none());

    let (status, pairs, body) = authorize(
        &sim,
        &[
            ("sim_user_id", &alice),
            ("scope", "bot applications.commands"),
            ("guild_id", &own_id),
            ("permissions", "3072"),
        ],
    )
    .await;
    assert_eq!(status, 302, "{body}");
    assert_eq!(get(&pairs, "guild_id"), Some(own_id.as_str()));
    assert_eq!(get(&pairs, "permissions"), Some("3072"));
    assert!(get(&pairs, "code").is_some());
    assert!(sim.member(own, sim.bot_user_id()).is_some());
    // The demo guild's GUILD_CREATE came with READY; the next one is the new guild.
    let demo_guild = gateway.dispatch("GUILD_CREATE").await;
    assert_eq!(demo_guild["d"]["id"], demo.guild.to_string());
    let created = gateway.dispatch("GUILD_CREATE").await;
    assert_eq!(created["d"]["id"], own_id);
    // Discord made the bot a managed role holding exactly the permissions asked for,
    // just above @everyone, and gave it to the bot.
    let roles = created["d"]["roles"].as_array().unwrap();
    let managed = roles.iter().find(|r| r["managed"] == true).unwrap();
    assert_eq!(managed["permissions"], "3072");
    assert_eq!(managed["position"], 1);
    assert_eq!(managed["name"], sim.config().bot_name);
    assert_eq!(managed["tags"]["bot_id"], sim.bot_user_id().to_string());
    let bot = sim.member(own, sim.bot_user_id()).unwrap();
    assert_eq!(
        bot.roles
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![managed["id"].as_str().unwrap().to_owned()]
    );
    // Events from the guild now reach the bot; ownership moves with the owner.
    sim.set_guild_owner(own, demo.bob).unwrap();
    assert_eq!(
        sim.guild(own).unwrap().owner_id,
        Snowflake::new(demo.bob.get())
    );
}
