//! Every payload the sim produces must deserialize with twilight-model 0.18, the
//! library the bot uses: gateway frames of every kind and REST response bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{ALL_INTENTS, RawGateway, Rest, register_commands};
use discord_sim::{AttachmentSpec, ChannelKind, RoleSpec};
use serde::de::{DeserializeOwned, DeserializeSeed};
use serde_json::{Value, json};
use twilight_model::gateway::event::{GatewayEvent, GatewayEventDeserializer};

/// Deserializes a REST body into a twilight type, with a readable failure.
fn parse<T: DeserializeOwned>(what: &str, value: &Value) -> T {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(parsed) => parsed,
        Err(error) => panic!("{what} does not deserialize with twilight-model: {error}\n{value:#}"),
    }
}

fn parse_frame(frame: &str) -> GatewayEvent {
    let deserializer = GatewayEventDeserializer::from_json(frame)
        .unwrap_or_else(|| panic!("frame lacks op/t: {frame}"));
    let mut json = serde_json::Deserializer::from_str(frame);
    match deserializer.deserialize(&mut json) {
        Ok(event) => event,
        Err(error) => {
            panic!("gateway frame does not deserialize with twilight-model: {error}\n{frame}")
        }
    }
}

#[tokio::test]
async fn rest_bodies_deserialize_with_twilight() {
    use twilight_model::application::command::Command;
    use twilight_model::channel::{Channel, Message};
    use twilight_model::gateway::connection_info::{BotConnectionInfo, ConnectionInfo};
    use twilight_model::guild::{Guild, Member, Role};
    use twilight_model::oauth::Application;
    use twilight_model::user::{CurrentUser, CurrentUserGuild, User};

    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    register_commands(&rest, &sim, demo.guild).await;

    let (_, body) = rest.get("/gateway").await;
    parse::<ConnectionInfo>("GET /gateway", &body);
    let (_, body) = rest.get("/gateway/bot").await;
    let info = parse::<BotConnectionInfo>("GET /gateway/bot", &body);
    assert_eq!(info.url, sim.gateway_url());
    let (_, body) = rest.get("/users/@me").await;
    let me = parse::<CurrentUser>("GET /users/@me", &body);
    assert_eq!(me.id.get(), sim.bot_user_id().get());
    assert!(me.bot);
    let (_, body) = rest.get(&format!("/users/{}", demo.alice)).await;
    parse::<User>("GET /users/{id}", &body);
    let (_, body) = rest.get("/users/@me/guilds").await;
    parse::<Vec<CurrentUserGuild>>("GET /users/@me/guilds", &body);
    let (_, body) = rest.get("/applications/@me").await;
    let app = parse::<Application>("GET /applications/@me", &body);
    assert_eq!(app.id.get(), sim.application_id().get());
    let (_, body) = rest
        .get(&format!("/guilds/{}?with_counts=true", demo.guild))
        .await;
    parse::<Guild>("GET /guilds/{id}", &body);

    let (_, body) = rest
        .get(&format!(
            "/applications/{}/guilds/{}/commands",
            sim.application_id(),
            demo.guild
        ))
        .await;
    parse::<Vec<Command>>("GET guild commands", &body);
    let (_, body) = rest
        .get(&format!("/applications/{}/commands", sim.application_id()))
        .await;
    let commands = parse::<Vec<Command>>("GET global commands", &body);
    assert_eq!(commands[0].options.len(), 2);

    // Channels of every type, with overwrites.
    let (status, body) = rest
        .post(
            &format!("/guilds/{}/channels", demo.guild),
            json!({
                "name": "Session Zero", "type": 0, "topic": "first session", "parent_id": demo.category,
                "permission_overwrites": [
                    {"id": demo.guild, "type": 0, "allow": "0", "deny": "1024"},
                    {"id": demo.alice, "type": 1, "allow": "3072", "deny": "0"}
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let channel = parse::<Channel>("POST /guilds/{id}/channels", &body);
    assert_eq!(channel.name.as_deref(), Some("session-zero"));
    for kind in [2, 4, 5, 13, 15] {
        let (status, body) = rest
            .post(
                &format!("/guilds/{}/channels", demo.guild),
                json!({"name": format!("kind {kind}"), "type": kind}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        parse::<Channel>("POST channel of another type", &body);
    }
    let (_, body) = rest.get(&format!("/guilds/{}/channels", demo.guild)).await;
    parse::<Vec<Channel>>("GET /guilds/{id}/channels", &body);
    let (_, body) = rest
        .patch(
            &format!("/channels/{}", channel.id),
            json!({"topic": null, "nsfw": true}),
        )
        .await;
    parse::<Channel>("PATCH /channels/{id}", &body);
    let (_, body) = rest
        .post("/users/@me/channels", json!({"recipient_id": demo.bob}))
        .await;
    let dm = parse::<Channel>("POST /users/@me/channels", &body);

    // Roles and members.
    let (_, body) = rest
        .post(
            &format!("/guilds/{}/roles", demo.guild),
            json!({"name": "Players", "permissions": "1024", "color": 16711680}),
        )
        .await;
    let role = parse::<Role>("POST /guilds/{id}/roles", &body);
    let (_, body) = rest.get(&format!("/guilds/{}/roles", demo.guild)).await;
    parse::<Vec<Role>>("GET /guilds/{id}/roles", &body);
    let (status, _) = rest
        .put(
            &format!(
                "/guilds/{}/members/{}/roles/{}",
                demo.guild, demo.alice, role.id
            ),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, body) = rest
        .get(&format!("/guilds/{}/members/{}", demo.guild, demo.alice))
        .await;
    let member = parse::<Member>("GET /guilds/{id}/members/{id}", &body);
    assert_eq!(member.roles.len(), 1);
    let (_, body) = rest
        .get(&format!("/guilds/{}/members?limit=100", demo.guild))
        .await;
    parse::<Vec<Member>>("GET /guilds/{id}/members", &body);

    // Messages: plain, with embeds and components, a reply, in a DM; user messages
    // with attachments and mentions.
    let user_message = sim
        .post_user_message(
            demo.general,
            demo.alice,
            &format!("hey <@{}> and <@&{}>", demo.bob, role.id),
            vec![AttachmentSpec::new(
                "clip.mp4",
                "video/mp4",
                b"fake video".to_vec(),
            )],
        )
        .expect("user message");
    let (_, body) = rest
        .post(
            &format!("/channels/{}/messages", demo.general),
            json!({
                "content": "Initiative!",
                "embeds": [{"title": "Round 1", "description": "Alice goes first", "color": 5814783,
                            "fields": [{"name": "Alice", "value": "17", "inline": true}]}],
                "components": [{"type": 1, "components": [
                    {"type": 2, "style": 1, "label": "Next", "custom_id": "init:next"},
                    {"type": 2, "style": 5, "label": "Rules", "url": "http://127.0.0.1/rules"}
                ]}, {"type": 1, "components": [
                    {"type": 3, "custom_id": "init:pick", "options": [
                        {"label": "Alice", "value": "alice"}, {"label": "Bob", "value": "bob"}
                    ]}
                ]}],
                "message_reference": {"message_id": user_message}
            }),
        )
        .await;
    let message = parse::<Message>("POST /channels/{id}/messages", &body);
    assert!(message.referenced_message.is_some());
    let (_, body) = rest
        .patch(
            &format!("/channels/{}/messages/{}", demo.general, message.id),
            json!({"content": "Initiative (edited)"}),
        )
        .await;
    parse::<Message>("PATCH /channels/{id}/messages/{id}", &body);
    let (_, body) = rest
        .get(&format!("/channels/{}/messages?limit=10", demo.general))
        .await;
    let listed = parse::<Vec<Message>>("GET /channels/{id}/messages", &body);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].attachments.len(), 1);
    assert_eq!(listed[1].mentions.len(), 1);
    let (_, body) = rest
        .post(
            &format!("/channels/{}/messages", dm.id),
            json!({"content": "psst"}),
        )
        .await;
    parse::<Message>("POST a DM message", &body);

    // Interaction responses through the webhook routes.
    let interaction = common::alice_rolls(&sim, &demo);
    let (status, body) = rest
        .post(
            &format!(
                "/interactions/{}/{}/callback?with_response=true",
                interaction.id(),
                interaction.token()
            ),
            json!({"type": 5}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    parse::<twilight_model::application::interaction::callback::InteractionCallbackResponse>(
        "callback with_response",
        &body,
    );
    let (_, body) = rest
        .patch(
            &format!(
                "/webhooks/{}/{}/messages/@original",
                sim.application_id(),
                interaction.token()
            ),
            json!({"content": "You rolled 17"}),
        )
        .await;
    let original = parse::<Message>("PATCH @original", &body);
    assert!(original.interaction_metadata.is_some());
    let (_, body) = rest
        .post(
            &format!("/webhooks/{}/{}", sim.application_id(), interaction.token()),
            json!({"content": "secret", "flags": 64}),
        )
        .await;
    parse::<Message>("POST follow-up", &body);

    // Error bodies parse as twilight-http's API errors.
    let (status, body) = rest.get("/channels/1").await;
    assert_eq!(status, 404);
    let error = parse::<twilight_http::api_error::ApiError>("404 body", &body);
    assert!(matches!(
        error,
        twilight_http::api_error::ApiError::General(ref e) if e.code == 10003
    ));
    sim.inject_fault(
        discord_sim::RouteMatch::prefix("/gateway"),
        discord_sim::Fault::RateLimited {
            retry_after_secs: 0.5,
            global: false,
        },
        1,
    );
    let (status, body) = rest.get("/gateway").await;
    assert_eq!(status, 429);
    assert!(matches!(
        parse::<twilight_http::api_error::ApiError>("429 body", &body),
        twilight_http::api_error::ApiError::Ratelimited(_)
    ));
}

#[tokio::test]
async fn every_gateway_frame_deserializes_with_twilight() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    register_commands(&rest, &sim, demo.guild).await;

    let mut gateway = RawGateway::connect(&sim).await;
    let ready = gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;
    let session = ready["d"]["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();

    // Heartbeat -> ACK; member chunk on request.
    gateway.send(json!({"op": 1, "d": 1})).await;
    gateway
        .send(
            json!({"op": 8, "d": {"guild_id": demo.guild, "query": "", "limit": 0, "nonce": "n1"}}),
        )
        .await;

    // Guild structure events.
    let dave = sim.create_user("dave");
    sim.add_member(demo.guild, dave).expect("member add");
    let role = sim
        .create_role(demo.guild, RoleSpec::new("GM", 8))
        .expect("role");
    sim.add_member_role(demo.guild, dave, role)
        .expect("member update");
    let (status, _) = rest
        .patch(
            &format!("/guilds/{}/roles/{role}", demo.guild),
            json!({"name": "Game Master"}),
        )
        .await;
    assert_eq!(status, 200);
    let extra = sim
        .create_channel(demo.guild, "scratch", ChannelKind::Text)
        .expect("channel");
    let (status, _) = rest
        .patch(
            &format!("/channels/{extra}"),
            json!({"name": "scratch-pad"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = rest.delete(&format!("/channels/{extra}")).await;
    assert_eq!(status, 200);
    let (status, _) = rest
        .delete(&format!("/guilds/{}/roles/{role}", demo.guild))
        .await;
    assert_eq!(status, 204);
    sim.remove_member(demo.guild, dave).expect("member remove");

    // Messages by users and by the bot.
    let message = sim
        .post_user_message(
            demo.general,
            demo.alice,
            &format!("<@{}> look", demo.bob),
            vec![AttachmentSpec::new("map.png", "image/png", vec![1, 2, 3])],
        )
        .expect("message");
    sim.edit_user_message(demo.general, message, "look!")
        .expect("edit");
    sim.delete_user_message(demo.general, message)
        .expect("delete");
    let dm = sim.dm_channel(demo.carol).expect("dm");
    sim.post_user_message(dm, demo.carol, "hello bot", Vec::new())
        .expect("dm message");

    // Interactions of every kind: command (guild, with user option, subcommand),
    // DM command, button, select, modal submit; and their responses.
    let roll = sim
        .run_command(
            demo.alice,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "2d6"}, {"name": "private", "value": false}]),
        )
        .expect("roll");
    let response = twilight_model::http::interaction::InteractionResponse {
        kind: twilight_model::http::interaction::InteractionResponseType::ChannelMessageWithSource,
        data: Some(twilight_model::http::interaction::InteractionResponseData {
            content: Some("You rolled 7".into()),
            components: Some(vec![twilight_model::channel::message::Component::ActionRow(
                twilight_model::channel::message::component::ActionRow {
                    id: None,
                    components: vec![
                        twilight_model::channel::message::Component::Button(
                            twilight_model::channel::message::component::Button {
                                custom_id: Some("roll:again".into()),
                                disabled: false,
                                emoji: None,
                                id: None,
                                label: Some("Again".into()),
                                sku_id: None,
                                style: twilight_model::channel::message::component::ButtonStyle::Primary,
                                url: None,
                            },
                        ),
                    ],
                },
            )]),
            ..Default::default()
        }),
    };
    let (status, body) = rest
        .post(
            &format!("/interactions/{}/{}/callback", roll.id(), roll.token()),
            serde_json::to_value(&response).expect("serialise twilight response"),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let reply = roll.response(Duration::from_secs(2)).await.expect("reply");
    let reply_message = reply.message_id.expect("message created");

    let game = sim
        .run_command(
            demo.bob,
            demo.drinking,
            "game",
            json!([{"name": "start", "options": [{"name": "rounds", "value": 3}, {"name": "with", "value": demo.carol}]}]),
        )
        .expect("game start");
    rest.post(
        &format!("/interactions/{}/{}/callback", game.id(), game.token()),
        json!({"type": 4, "data": {"content": "Game on", "components": [{"type": 1, "components": [
            {"type": 3, "custom_id": "game:who", "placeholder": "Who drinks?", "options": [
                {"label": "Alice", "value": "alice"}, {"label": "Bob", "value": "bob"}]}]}]}}),
    )
    .await;
    let game_message = game
        .response(Duration::from_secs(2))
        .await
        .expect("game reply")
        .message_id
        .expect("game message");

    let dm_game = sim
        .run_command(demo.carol, dm, "game", json!([{"name": "stop"}]))
        .expect("dm command");
    rest.post(
        &format!(
            "/interactions/{}/{}/callback",
            dm_game.id(),
            dm_game.token()
        ),
        json!({"type": 4, "data": {"content": "stopped", "flags": 64}}),
    )
    .await;

    let click = sim
        .click_button(demo.bob, demo.dice, reply_message, "roll:again")
        .expect("click");
    rest.post(
        &format!("/interactions/{}/{}/callback", click.id(), click.token()),
        json!({"type": 9, "data": {"custom_id": "roll:modal", "title": "Roll what?", "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": "expr", "style": 1, "label": "Expression"}]}
        ]}}),
    )
    .await;
    click
        .response(Duration::from_secs(2))
        .await
        .expect("modal shown");
    let submit = sim
        .submit_modal(demo.bob, demo.dice, "roll:modal", &[("expr", "3d8")])
        .expect("modal submit");
    rest.post(
        &format!("/interactions/{}/{}/callback", submit.id(), submit.token()),
        json!({"type": 7, "data": {"content": "Rolled 3d8: 12"}}),
    )
    .await;
    let pick = sim
        .select(
            demo.alice,
            demo.drinking,
            game_message,
            "game:who",
            vec!["bob".into()],
        )
        .expect("select");
    rest.post(
        &format!("/interactions/{}/{}/callback", pick.id(), pick.token()),
        json!({"type": 6}),
    )
    .await;
    rest.patch(
        &format!(
            "/webhooks/{}/{}/messages/@original",
            sim.application_id(),
            pick.token()
        ),
        json!({"content": "Bob drinks", "components": []}),
    )
    .await;

    // Drain everything dispatched so far.
    while gateway.try_next(Duration::from_millis(300)).await.is_some() {}
    let seq = gateway
        .frames
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(f).ok())
        .filter_map(|f| f["s"].as_u64())
        .max()
        .expect("numbered dispatches");

    // RESUME with replay, RESUMED, and INVALID_SESSION on an unknown session.
    let mut frames = std::mem::take(&mut gateway.frames);
    gateway.abandon();
    sim.post_user_message(demo.general, demo.carol, "while you were away", Vec::new())
        .expect("message while disconnected");
    let mut resumed = RawGateway::connect(&sim).await;
    assert_eq!(resumed.next_frame().await["op"], 10);
    resumed
        .send(json!({"op": 6, "d": {"token": sim.token(), "session_id": session, "seq": seq - 1}}))
        .await;
    resumed.dispatch("RESUMED").await;
    let mut invalid = RawGateway::connect(&sim).await;
    invalid.next_frame().await;
    invalid
        .send(json!({"op": 6, "d": {"token": sim.token(), "session_id": "nope", "seq": 1}}))
        .await;
    assert_eq!(invalid.next_frame().await["op"], 9);
    frames.extend(resumed.frames.iter().cloned());
    frames.extend(invalid.frames.iter().cloned());

    let mut seen = BTreeSet::new();
    for frame in &frames {
        let value: Value = serde_json::from_str(frame).expect("json");
        let label = match parse_frame(frame) {
            GatewayEvent::Dispatch(_, _) => value["t"].as_str().unwrap_or_default().to_owned(),
            GatewayEvent::Hello(_) => "HELLO".to_owned(),
            GatewayEvent::HeartbeatAck => "HEARTBEAT_ACK".to_owned(),
            GatewayEvent::InvalidateSession(_) => "INVALID_SESSION".to_owned(),
            GatewayEvent::Heartbeat => "HEARTBEAT".to_owned(),
            GatewayEvent::Reconnect => "RECONNECT".to_owned(),
        };
        seen.insert(label);
    }
    for expected in [
        "HELLO",
        "HEARTBEAT_ACK",
        "INVALID_SESSION",
        "READY",
        "RESUMED",
        "GUILD_CREATE",
        "GUILD_MEMBERS_CHUNK",
        "GUILD_MEMBER_ADD",
        "GUILD_MEMBER_UPDATE",
        "GUILD_MEMBER_REMOVE",
        "GUILD_ROLE_CREATE",
        "GUILD_ROLE_UPDATE",
        "GUILD_ROLE_DELETE",
        "CHANNEL_CREATE",
        "CHANNEL_UPDATE",
        "CHANNEL_DELETE",
        "MESSAGE_CREATE",
        "MESSAGE_UPDATE",
        "MESSAGE_DELETE",
        "INTERACTION_CREATE",
    ] {
        assert!(
            seen.contains(expected),
            "no {expected} frame seen: {seen:?}"
        );
    }
    // Interactions of types 2 (guild and DM), 3 (button and select) and 5 were sent.
    let interaction_types: BTreeSet<(u64, bool)> = frames
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(f).ok())
        .filter(|f| f["t"] == "INTERACTION_CREATE")
        .map(|f| {
            (
                f["d"]["type"].as_u64().unwrap_or(0),
                f["d"]["guild_id"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        interaction_types,
        BTreeSet::from([(2, true), (2, false), (3, true), (5, true)])
    );
}
