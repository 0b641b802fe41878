//! REST behaviour through a plain HTTP client: auth, errors, messages, channels,
//! roles, members, commands, rate-limit headers and fault injection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Rest;
use discord_sim::{ChannelKind, Fault, OverwriteKind, RouteMatch, Snowflake};
use reqwest::Method;
use serde_json::{Value, json};

fn ids(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn auth_unknown_routes_and_error_shapes() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);

    let no_auth = common::get(format!("{}/users/@me", sim.api_url()))
        .await
        .unwrap();
    assert_eq!(no_auth.status().as_u16(), 401);
    assert_eq!(
        no_auth.json::<Value>().await.unwrap(),
        json!({"message": "401: Unauthorized", "code": 0})
    );
    let wrong = Rest {
        token: "nope".into(),
        ..Rest::new(&sim)
    };
    assert_eq!(wrong.get("/users/@me").await.0, 401);
    // Gateway discovery needs no token.
    let gateway = common::get(format!("{}/gateway", sim.api_url()))
        .await
        .unwrap();
    assert_eq!(gateway.status().as_u16(), 200);

    assert_eq!(
        rest.get("/definitely/not/a/route").await,
        (404, json!({"message": "404: Not Found", "code": 0}))
    );
    assert_eq!(
        rest.put(&format!("/channels/{}/messages", demo.general), None)
            .await,
        (
            405,
            json!({"message": "405: Method Not Allowed", "code": 0})
        )
    );

    let unknown = Snowflake::new(42);
    let cases = [
        (format!("/channels/{unknown}"), 10003),
        (
            format!("/channels/{}/messages/{unknown}", demo.general),
            10008,
        ),
        (format!("/guilds/{unknown}"), 10004),
        (format!("/guilds/{}/members/{unknown}", demo.guild), 10007),
        (format!("/users/{unknown}"), 10013),
    ];
    for (path, code) in cases {
        let (status, body) = rest.get(&path).await;
        assert_eq!(
            (status, body["code"].as_u64()),
            (404, Some(code)),
            "{path}: {body}"
        );
    }
    let (status, body) = rest
        .delete(&format!("/guilds/{}/roles/{unknown}", demo.guild))
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10011)));

    let malformed = rest
        .request(
            Method::POST,
            &format!("/channels/{}/messages", demo.general),
        )
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    assert_eq!(malformed.json::<Value>().await.unwrap()["code"], 50035);
}

#[tokio::test]
async fn every_response_carries_rate_limit_headers() {
    let sim = common::start();
    let rest = Rest::new(&sim);
    for path in ["/users/@me", "/channels/1", "/nope"] {
        let response = rest.request(Method::GET, path).send().await.unwrap();
        let headers = response.headers();
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-ratelimit-reset-after",
            "x-ratelimit-bucket",
        ] {
            assert!(headers.contains_key(name), "{path} lacks {name}");
        }
    }
    let first = rest
        .request(Method::GET, "/users/@me")
        .send()
        .await
        .unwrap();
    let second = rest
        .request(Method::GET, "/users/@me")
        .send()
        .await
        .unwrap();
    let remaining = |r: &reqwest::Response| -> u64 {
        r.headers()["x-ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(remaining(&second) < remaining(&first) || remaining(&first) == 0);
    assert!(remaining(&second) > 1000, "generous buckets");
    assert_eq!(
        first.headers()["x-ratelimit-bucket"],
        second.headers()["x-ratelimit-bucket"]
    );
}

#[tokio::test]
async fn messages_are_listed_newest_first_with_paging() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let mut created = Vec::new();
    for i in 0..10 {
        let (status, body) = rest
            .post(
                &format!("/channels/{}/messages", demo.general),
                json!({"content": format!("m{i}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["author"]["id"], sim.bot_user_id().to_string());
        created.push(body["id"].as_str().unwrap().to_owned());
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let (_, all) = rest
        .get(&format!("/channels/{}/messages", demo.general))
        .await;
    assert_eq!(ids(&all), newest_first);
    let (_, limited) = rest
        .get(&format!("/channels/{}/messages?limit=3", demo.general))
        .await;
    assert_eq!(ids(&limited), newest_first[..3]);
    let (_, before) = rest
        .get(&format!(
            "/channels/{}/messages?limit=3&before={}",
            demo.general, created[5]
        ))
        .await;
    assert_eq!(
        ids(&before),
        vec![created[4].clone(), created[3].clone(), created[2].clone()]
    );
    let (_, after) = rest
        .get(&format!(
            "/channels/{}/messages?limit=3&after={}",
            demo.general, created[5]
        ))
        .await;
    assert_eq!(
        ids(&after),
        vec![created[8].clone(), created[7].clone(), created[6].clone()]
    );
    let (_, around) = rest
        .get(&format!(
            "/channels/{}/messages?limit=3&around={}",
            demo.general, created[5]
        ))
        .await;
    assert_eq!(
        ids(&around),
        vec![created[6].clone(), created[5].clone(), created[4].clone()]
    );

    for bad in ["0", "101", "x"] {
        let (status, body) = rest
            .get(&format!("/channels/{}/messages?limit={bad}", demo.general))
            .await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(50035)));
    }

    // Edit, delete, and what the sim recorded.
    let (status, edited) = rest
        .patch(
            &format!("/channels/{}/messages/{}", demo.general, created[0]),
            json!({"content": "first!"}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(edited["edited_timestamp"].is_string());
    let (status, _) = rest
        .delete(&format!(
            "/channels/{}/messages/{}",
            demo.general, created[1]
        ))
        .await;
    assert_eq!(status, 204);
    let (status, body) = rest
        .get(&format!(
            "/channels/{}/messages/{}",
            demo.general, created[1]
        ))
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10008)));
    let stored = sim.messages(demo.general);
    assert_eq!(stored.len(), 9);
    assert_eq!(stored[0].content, "first!");
    assert!(stored[0].edited_timestamp.is_some());

    // Users' messages cannot be edited by the bot; empty messages are refused.
    let theirs = sim
        .post_user_message(demo.general, demo.alice, "mine", Vec::new())
        .unwrap();
    let (status, body) = rest
        .patch(
            &format!("/channels/{}/messages/{theirs}", demo.general),
            json!({"content": "hacked"}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(50005)));
    let (status, body) = rest
        .post(
            &format!("/channels/{}/messages", demo.general),
            json!({"content": ""}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50006)));
    let (status, body) = rest
        .post(
            &format!("/channels/{}/messages", demo.category),
            json!({"content": "x"}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50008)));

    // Replies reference their target.
    let (status, reply) = rest
        .post(
            &format!("/channels/{}/messages", demo.general),
            json!({"content": "reply", "message_reference": {"message_id": theirs}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(reply["type"], 19);
    assert_eq!(reply["referenced_message"]["id"], theirs.to_string());
    let (status, _) = rest
        .post(
            &format!("/channels/{}/messages", demo.general),
            json!({"content": "reply", "message_reference": {"message_id": "1"}}),
        )
        .await;
    assert_eq!(status, 400);

    // Component limits are enforced.
    let (status, body) = rest
        .post(
            &format!("/channels/{}/messages", demo.general),
            json!({"content": "x", "components": [{"type": 1, "components": [
                {"type": 2, "style": 1, "label": "a", "custom_id": "same"},
                {"type": 2, "style": 1, "label": "b", "custom_id": "same"}
            ]}]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (400, Some(50035)),
        "{body}"
    );
}

#[tokio::test]
async fn channels_with_overwrites_and_categories() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let (status, category) = rest
        .post(
            &format!("/guilds/{}/channels", demo.guild),
            json!({"name": "Campaign: Hyperion", "type": 4}),
        )
        .await;
    assert_eq!(status, 201);
    let category_id = category["id"].as_str().unwrap().to_owned();
    assert_eq!(
        category["name"], "Campaign: Hyperion",
        "categories keep their case"
    );

    let players: Snowflake = sim
        .create_role(
            demo.guild,
            discord_sim::RoleSpec::new("Hyperion players", 0),
        )
        .unwrap();
    let (status, text) = rest
        .post(
            &format!("/guilds/{}/channels", demo.guild),
            json!({
                "name": "Session Notes", "type": 0, "parent_id": category_id, "topic": "notes",
                "permission_overwrites": [
                    {"id": demo.guild, "type": 0, "deny": "1024"},
                    {"id": players, "type": 0, "allow": "1024"}
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let text_id: Snowflake = text["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(text["name"], "session-notes");
    assert_eq!(text["parent_id"], category_id);
    assert_eq!(
        text["permission_overwrites"],
        json!([
            {"id": demo.guild, "type": 0, "allow": "0", "deny": "1024"},
            {"id": players, "type": 0, "allow": "1024", "deny": "0"}
        ])
    );
    let (status, voice) = rest
        .post(
            &format!("/guilds/{}/channels", demo.guild),
            json!({"name": "Hyperion Voice", "type": 2, "parent_id": category_id}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(voice["bitrate"], 64000);

    let stored = sim.channel(text_id).unwrap();
    assert_eq!(stored.topic.as_deref(), Some("notes"));
    assert_eq!(stored.permission_overwrites.len(), 2);
    assert_eq!(stored.permission_overwrites[1].kind, OverwriteKind::Role);

    // Edit: rename, move out of the category, replace overwrites.
    let (status, patched) = rest
        .patch(
            &format!("/channels/{text_id}"),
            json!({"name": "Archive", "parent_id": null, "position": 7,
                   "permission_overwrites": [{"id": demo.alice, "type": 1, "allow": "3072", "deny": "0"}]}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "archive");
    assert_eq!(patched["parent_id"], Value::Null);
    let stored = sim.channel(text_id).unwrap();
    assert_eq!((stored.position, stored.parent_id), (7, None));
    assert_eq!(stored.permission_overwrites[0].kind, OverwriteKind::Member);

    let (status, _) = rest
        .put(
            &format!("/channels/{text_id}/permissions/{players}"),
            Some(json!({"type": 0, "allow": "2048", "deny": "0"})),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(sim.channel(text_id).unwrap().permission_overwrites.len(), 2);
    let (status, _) = rest
        .delete(&format!("/channels/{text_id}/permissions/{players}"))
        .await;
    assert_eq!(status, 204);
    assert_eq!(sim.channel(text_id).unwrap().permission_overwrites.len(), 1);

    // A parent must be a category of the same guild.
    let (status, body) = rest
        .patch(
            &format!("/channels/{text_id}"),
            json!({"parent_id": demo.general}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50035)));

    // Deleting a category orphans its children.
    let voice_id: Snowflake = voice["id"].as_str().unwrap().parse().unwrap();
    let (status, deleted) = rest.delete(&format!("/channels/{category_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["id"], category_id);
    assert_eq!(sim.channel(voice_id).unwrap().parent_id, None);
    assert!(
        sim.channel_by_name(demo.guild, "Campaign: Hyperion")
            .is_none()
    );

    let (_, listed) = rest.get(&format!("/guilds/{}/channels", demo.guild)).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        sim.channels(demo.guild).len()
    );
    assert!(
        sim.channels(demo.guild)
            .iter()
            .any(|c| c.kind == ChannelKind::Voice)
    );
}

#[tokio::test]
async fn roles_and_member_roles() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let mut gateway = common::RawGateway::connect(&sim).await;
    gateway.identify(&sim, common::ALL_INTENTS, [0, 1]).await;

    let (status, role) = rest
        .post(
            &format!("/guilds/{}/roles", demo.guild),
            json!({"name": "Drinkers", "permissions": "0", "mentionable": true}),
        )
        .await;
    assert_eq!(status, 200, "{role}");
    let role_id: Snowflake = role["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        gateway.dispatch("GUILD_ROLE_CREATE").await["d"]["role"]["name"],
        "Drinkers"
    );

    let path = format!(
        "/guilds/{}/members/{}/roles/{role_id}",
        demo.guild, demo.bob
    );
    assert_eq!(rest.put(&path, None).await.0, 204);
    let update = gateway.dispatch("GUILD_MEMBER_UPDATE").await;
    assert_eq!(update["d"]["roles"], json!([role_id]));
    assert_eq!(
        sim.member(demo.guild, demo.bob).unwrap().roles,
        vec![role_id]
    );
    let (_, member) = rest
        .get(&format!("/guilds/{}/members/{}", demo.guild, demo.bob))
        .await;
    assert_eq!(member["roles"], json!([role_id]));
    assert_eq!(member["user"]["username"], "bob");

    assert_eq!(rest.delete(&path).await.0, 204);
    assert!(sim.member(demo.guild, demo.bob).unwrap().roles.is_empty());

    // Unknown role / member.
    let (status, body) = rest
        .put(
            &format!("/guilds/{}/members/{}/roles/1", demo.guild, demo.bob),
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10011)));
    let (status, body) = rest
        .put(
            &format!("/guilds/{}/members/1/roles/{role_id}", demo.guild),
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10007)));

    // Deleting a role takes it from members.
    assert_eq!(rest.put(&path, None).await.0, 204);
    assert_eq!(
        rest.delete(&format!("/guilds/{}/roles/{role_id}", demo.guild))
            .await
            .0,
        204
    );
    assert!(sim.member(demo.guild, demo.bob).unwrap().roles.is_empty());
    assert!(!sim.roles(demo.guild).iter().any(|r| r.id == role_id));
    let deleted = gateway.dispatch("GUILD_ROLE_DELETE").await;
    assert_eq!(deleted["d"]["role_id"], role_id.to_string());
    let (_, roles) = rest.get(&format!("/guilds/{}/roles", demo.guild)).await;
    assert_eq!(roles.as_array().unwrap().len(), 1, "only @everyone left");
}

#[tokio::test]
async fn dm_channels_and_current_user() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let (status, dm) = rest
        .post("/users/@me/channels", json!({"recipient_id": demo.carol}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(dm["type"], 1);
    assert_eq!(dm["recipients"][0]["id"], demo.carol.to_string());
    let (_, again) = rest
        .post("/users/@me/channels", json!({"recipient_id": demo.carol}))
        .await;
    assert_eq!(again["id"], dm["id"], "one DM channel per user");
    let dm_id = dm["id"].as_str().unwrap();
    let (status, _) = rest
        .post(
            &format!("/channels/{dm_id}/messages"),
            json!({"content": "Your character sheet"}),
        )
        .await;
    assert_eq!(status, 200);
    let stored = sim.messages(dm_id.parse::<Snowflake>().unwrap());
    assert_eq!(stored[0].content, "Your character sheet");
    assert_eq!(stored[0].guild_id, None);
    let (status, body) = rest
        .post("/users/@me/channels", json!({"recipient_id": "1"}))
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10013)));

    let (_, me) = rest.get("/users/@me").await;
    assert_eq!(me["id"], sim.bot_user_id().to_string());
    let (_, bot) = rest.get("/gateway/bot").await;
    assert_eq!(bot["url"], sim.gateway_url());
    assert_eq!(bot["shards"], 1);
}

#[tokio::test]
async fn injected_faults_rate_limit_errors_and_delays() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let path = format!("/channels/{}/messages", demo.general);

    sim.inject_fault(
        RouteMatch::new("POST", "/channels/"),
        Fault::RateLimited {
            retry_after_secs: 1.5,
            global: false,
        },
        1,
    );
    let limited = rest
        .request(Method::POST, &path)
        .json(&json!({"content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    let headers = limited.headers().clone();
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert_eq!(headers["x-ratelimit-reset-after"], "1.500");
    assert_eq!(headers["x-ratelimit-scope"], "user");
    assert!(headers.contains_key("x-ratelimit-bucket"));
    assert_eq!(
        limited.json::<Value>().await.unwrap(),
        json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false})
    );
    // The next request goes through.
    assert_eq!(rest.post(&path, json!({"content": "hi"})).await.0, 200);
    assert_eq!(
        sim.messages(demo.general).len(),
        1,
        "the limited request stored nothing"
    );

    sim.inject_fault(
        RouteMatch::any(),
        Fault::RateLimited {
            retry_after_secs: 0.25,
            global: true,
        },
        1,
    );
    let global = rest
        .request(Method::GET, "/users/@me")
        .send()
        .await
        .unwrap();
    assert_eq!(global.headers()["x-ratelimit-global"], "true");
    assert_eq!(global.headers()["x-ratelimit-scope"], "global");

    // Other methods do not match a POST rule; two 500s then success.
    sim.inject_fault(RouteMatch::new("POST", &path), Fault::Status(500), 2);
    assert_eq!(rest.get(&path).await.0, 200);
    let (status, body) = rest.post(&path, json!({"content": "x"})).await;
    assert_eq!(
        (status, body),
        (
            500,
            json!({"message": "500: Internal Server Error", "code": 0})
        )
    );
    assert_eq!(rest.post(&path, json!({"content": "x"})).await.0, 500);
    assert_eq!(rest.post(&path, json!({"content": "x"})).await.0, 200);

    sim.inject_fault(
        RouteMatch::prefix("/users/@me"),
        Fault::Delay(Duration::from_millis(300)),
        1,
    );
    let started = Instant::now();
    assert_eq!(rest.get("/users/@me").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let log = sim.requests();
    let statuses: Vec<u16> = log.iter().filter(|r| r.faulted).map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 500, 500, 200]);
    assert!(log.iter().all(|r| r.path.starts_with("/api/v10/")));
}

#[tokio::test]
async fn command_bulk_overwrite_validates_and_keeps_ids() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let global = format!("/applications/{}/commands", sim.application_id());
    let guild = format!(
        "/applications/{}/guilds/{}/commands",
        sim.application_id(),
        demo.guild
    );
    let option = |name: &str| json!({"name": name, "description": "an option", "type": 3});

    let invalid = [
        json!([{"name": "Roll", "description": "uppercase"}]),
        json!([{"name": "a-name-that-is-way-longer-than-32-chars", "description": "long"}]),
        json!([{"name": "roll", "description": ""}]),
        json!([{"name": "roll", "description": "x".repeat(101)}]),
        json!([{"name": "roll", "description": "too many options",
                "options": (0..26).map(|i| option(&format!("o{i}"))).collect::<Vec<_>>()}]),
        json!([{"name": "roll", "description": "bad option", "options": [{"name": "Bad", "description": "d", "type": 3}]}]),
        json!([{"name": "roll", "description": "order", "options": [
            {"name": "a", "description": "d", "type": 3},
            {"name": "b", "description": "d", "type": 3, "required": true}]}]),
        json!([{"name": "roll", "description": "one"}, {"name": "roll", "description": "two"}]),
        json!([{"name": "roll", "description": "with space", "type": 1, "options": [], "extra": 1}, {"name": "has space", "description": "x"}]),
        json!({"name": "not-a-list", "description": "x"}),
        json!([{"name": "roll", "description": "no such context", "contexts": [0, 3]}]),
        json!([{"name": "roll", "description": "contexts by name", "contexts": ["GUILD"]}]),
        json!([{"name": "roll", "description": "not a list", "contexts": 0}]),
        json!([{"name": "roll", "description": "no such install", "integration_types": [2]}]),
    ];
    for body in invalid {
        let (status, response) = rest.put(&global, Some(body.clone())).await;
        assert_eq!(
            (status, response["code"].as_u64()),
            (400, Some(50035)),
            "{body} -> {response}"
        );
    }
    assert!(
        sim.registered_commands().is_empty(),
        "failed bulk writes change nothing"
    );

    let (status, first) = rest
        .put(
            &guild,
            Some(json!([
                {"name": "roll", "description": "Roll dice", "options": [option("expression")]},
                {"name": "Show Sheet", "type": 2},
            ])),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let roll_id = first[0]["id"].clone();
    assert_eq!(first[0]["application_id"], sim.application_id().to_string());
    assert_eq!(first[0]["guild_id"], demo.guild.to_string());
    assert!(first[0]["version"].is_string());

    // Overwriting keeps the id of a command with the same name, drops the rest.
    let (_, second) = rest
        .put(
            &guild,
            Some(json!([{"name": "roll", "description": "Roll some dice"}])),
        )
        .await;
    assert_eq!(second[0]["id"], roll_id);
    assert_ne!(second[0]["version"], first[0]["version"]);
    let (_, listed) = rest.get(&guild).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let registered = sim.registered_commands();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].description, "Roll some dice");
    assert_eq!(registered[0].guild_id, Some(demo.guild));

    let (status, _) = rest.put("/applications/1/commands", Some(json!([]))).await;
    assert_eq!(status, 403, "another application's commands");
    let (status, body) = rest
        .put(
            &format!("/applications/{}/guilds/1/commands", sim.application_id()),
            Some(json!([])),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10004)));
}

#[tokio::test]
async fn attachments_are_stored_and_served() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);

    // Seeded by a user (what the clips scanner finds in history).
    let clip = discord_sim::AttachmentSpec {
        width: Some(1280),
        height: Some(720),
        duration_secs: Some(12.5),
        ..discord_sim::AttachmentSpec::new(
            "session-1.mp4",
            "video/mp4",
            b"not really a video".to_vec(),
        )
    };
    let message = sim
        .post_user_message(demo.campaigns, demo.alice, "last night", vec![clip])
        .unwrap();
    let (_, fetched) = rest
        .get(&format!("/channels/{}/messages/{message}", demo.campaigns))
        .await;
    let attachment = &fetched["attachments"][0];
    assert_eq!(attachment["content_type"], "video/mp4");
    assert_eq!(attachment["size"], 18);
    assert_eq!(attachment["width"], 1280);
    let url = attachment["url"].as_str().unwrap();
    assert!(url.starts_with(&sim.http_url()));
    let download = common::get(url).await.unwrap();
    assert_eq!(download.headers()["content-type"], "video/mp4");
    assert_eq!(
        download.bytes().await.unwrap().as_ref(),
        b"not really a video"
    );

    // Uploaded by the bot as multipart/form-data, as twilight does with files.
    let body = "--BOUNDARY\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{\"content\":\"the map\",\"attachments\":[{\"id\":0,\"filename\":\"map.png\"}]}\r\n--BOUNDARY\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"map.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n--BOUNDARY--\r\n";
    let response = rest
        .request(
            Method::POST,
            &format!("/channels/{}/messages", demo.campaigns),
        )
        .header("Content-Type", "multipart/form-data; boundary=BOUNDARY")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["content"], "the map");
    assert_eq!(created["attachments"][0]["filename"], "map.png");
    let png = common::get(created["attachments"][0]["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(png.as_ref(), b"PNGDATA");
}

#[tokio::test]
async fn run_serves_until_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = discord_sim::Sim::new(
        discord_sim::SimConfig::default(),
        listener.local_addr().unwrap(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(discord_sim::run(listener, sim.clone(), async move {
        let _ = stopped.await;
    }));
    let rest = Rest::new(&sim);
    assert_eq!(rest.get("/users/@me").await.0, 200);
    let mut gateway = common::RawGateway::connect(&sim).await;
    gateway.identify(&sim, 1, [0, 1]).await;

    stop.send(()).unwrap();
    assert!(
        gateway
            .next()
            .await
            .is_none_or(|f| f.get("close").is_some())
    );
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    assert!(rest.client.get(sim.api_url()).send().await.is_err());
}
