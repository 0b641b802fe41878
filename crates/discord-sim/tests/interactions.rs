//! Interactions: what a simulated user triggers, and the rules of the bot's answers
//! (one callback, 3 s to give it, deferrals completed by edits or follow-ups,
//! component updates, modals, ephemeral messages).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ALL_INTENTS, RawGateway, Rest, register_commands};
use discord_sim::{ReplySource, SimConfig, SimError};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(2);

fn callback_path(interaction: &discord_sim::Interaction) -> String {
    format!(
        "/interactions/{}/{}/callback",
        interaction.id(),
        interaction.token()
    )
}

#[tokio::test]
async fn command_payload_matches_the_registered_command() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    register_commands(&rest, &sim, demo.guild).await;
    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;

    let roll = sim
        .run_command(
            demo.alice,
            demo.dice,
            "roll",
            json!([{"name": "expression", "type": 3, "value": "1d20"}]),
        )
        .unwrap();
    let frame = gateway.dispatch("INTERACTION_CREATE").await;
    let d = &frame["d"];
    assert_eq!(d, roll.payload());
    assert_eq!(d["type"], 2);
    assert_eq!(d["data"]["name"], "roll");
    assert_eq!(d["data"]["type"], 1);
    assert_eq!(d["data"]["guild_id"], demo.guild.to_string());
    let registered = sim.registered_commands();
    let command = registered.iter().find(|c| c.name == "roll").unwrap();
    assert_eq!(d["data"]["id"], command.id.to_string());
    assert_eq!(
        d["data"]["options"],
        json!([{"name": "expression", "type": 3, "value": "1d20"}])
    );
    assert_eq!(d["member"]["user"]["id"], demo.alice.to_string());
    assert_eq!(d["channel"]["id"], demo.dice.to_string());
    assert_eq!(d["attachment_size_limit"], 10_485_760);
    assert_eq!(
        d["authorizing_integration_owners"],
        json!({"0": demo.guild})
    );
    assert_eq!(d["context"], 0);
    assert!(d["app_permissions"].is_string());
    assert_eq!(d["entitlements"], json!([]));

    // Subcommands, types filled in from the schema, resolved users.
    let game = sim
        .run_command(
            demo.bob,
            demo.drinking,
            "game",
            json!([{"name": "start", "options": [{"name": "rounds", "value": 5}, {"name": "with", "value": demo.carol}]}]),
        )
        .unwrap();
    let data = &game.payload()["data"];
    assert_eq!(data["options"][0]["type"], 1);
    assert_eq!(
        data["options"][0]["options"][0],
        json!({"name": "rounds", "type": 4, "value": 5})
    );
    assert_eq!(
        data["options"][0]["options"][1]["value"],
        demo.carol.to_string()
    );
    assert_eq!(
        data["resolved"]["users"][demo.carol.to_string()]["username"],
        "carol"
    );
    assert!(data["resolved"]["members"][demo.carol.to_string()]["permissions"].is_string());
    assert!(data.get("guild_id").is_none(), "global command");

    // What cannot happen on Discord fails here.
    assert!(matches!(
        sim.run_command(demo.alice, demo.dice, "nope", Value::Null),
        Err(SimError::UnknownCommand(_))
    ));
    assert!(matches!(
        sim.run_command(
            demo.alice,
            demo.dice,
            "roll",
            json!([{"name": "expresion", "value": "1d4"}])
        ),
        Err(SimError::InvalidOptions(_))
    ));
    assert!(matches!(
        sim.run_command(demo.alice, demo.dice, "roll", json!([])),
        Err(SimError::InvalidOptions(_))
    ));
    assert!(matches!(
        sim.run_command(
            demo.alice,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": 3}])
        ),
        Err(SimError::InvalidOptions(_))
    ));
    let stranger = sim.create_user("stranger");
    assert!(matches!(
        sim.run_command(
            stranger,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "d6"}])
        ),
        Err(SimError::NotAMember { .. })
    ));
}

#[tokio::test]
async fn message_callback_creates_a_message_once() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    register_commands(&rest, &sim, demo.guild).await;
    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;

    let roll = common::alice_rolls(&sim, &demo);
    assert!(!roll.is_answered());
    let (status, _) = rest
        .post(
            &callback_path(&roll),
            json!({"type": 4, "data": {"content": "🎲 1d20 = 17", "embeds": [{"title": "Roll"}],
                "components": [{"type": 1, "components": [{"type": 2, "style": 2, "label": "Reroll", "custom_id": "reroll"}]}]}}),
        )
        .await;
    assert_eq!(status, 204);
    let reply = roll.response(WAIT).await.unwrap();
    assert_eq!(reply.callback_type, 4);
    assert_eq!(reply.source, ReplySource::Callback);
    assert_eq!(reply.content.as_deref(), Some("🎲 1d20 = 17"));
    assert_eq!(
        reply.embeds[0]["type"], "rich",
        "Discord fills in the embed type"
    );
    assert_eq!(reply.components[0].custom_id.as_deref(), Some("reroll"));
    assert_eq!(reply.components[0].label.as_deref(), Some("Reroll"));
    assert!(!reply.ephemeral);
    assert!(reply.callback_at >= roll.dispatched_at);
    assert_eq!(roll.final_response(WAIT).await.unwrap(), reply);

    let messages = sim.messages(demo.dice);
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(Some(message.id), reply.message_id);
    assert_eq!(message.author_id, sim.bot_user_id());
    assert_eq!(message.kind, 20);
    let metadata = message.interaction_metadata.as_ref().unwrap();
    assert_eq!((metadata.id, metadata.user_id), (roll.id(), demo.alice));
    let created = gateway.dispatch("MESSAGE_CREATE").await;
    assert_eq!(
        created["d"]["interaction_metadata"]["id"],
        roll.id().to_string()
    );
    assert_eq!(created["d"]["webhook_id"], sim.application_id().to_string());

    // A second callback is refused and changes nothing.
    let (status, body) = rest
        .post(
            &callback_path(&roll),
            json!({"type": 4, "data": {"content": "again"}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": "Interaction has already been acknowledged.", "code": 40060})
        )
    );
    assert_eq!(sim.interaction_count_answered(roll.id()), 1);
    assert_eq!(sim.interaction_callback_attempts(roll.id()), 2);
    assert_eq!(sim.messages(demo.dice).len(), 1);

    // A wrong token is an unknown interaction.
    let (status, body) = rest
        .post(
            &format!("/interactions/{}/wrong/callback", roll.id()),
            json!({"type": 4}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10062)));
}

#[tokio::test]
async fn late_callbacks_are_unknown_interactions() {
    let sim = common::start_with(SimConfig {
        interaction_deadline: Duration::from_millis(150),
        ..SimConfig::default()
    });
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    register_commands(&rest, &sim, demo.guild).await;
    let roll = common::alice_rolls(&sim, &demo);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, body) = rest
        .post(
            &callback_path(&roll),
            json!({"type": 4, "data": {"content": "too late"}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"message": "Unknown interaction", "code": 10062})
        )
    );
    assert!(matches!(
        roll.response(Duration::from_millis(50)).await,
        Err(SimError::Timeout)
    ));
    assert_eq!(sim.interaction_count_answered(roll.id()), 0);
    assert!(sim.messages(demo.dice).is_empty());
}

#[tokio::test]
async fn deferred_responses_complete_with_an_edit_or_follow_up() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    register_commands(&rest, &sim, demo.guild).await;
    let app = sim.application_id();

    // 5 + edit of @original.
    let roll = sim
        .run_command(
            demo.alice,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "8d6"}]),
        )
        .unwrap();
    assert_eq!(
        rest.post(&callback_path(&roll), json!({"type": 5})).await.0,
        204
    );
    let deferred = roll.response(WAIT).await.unwrap();
    assert_eq!(deferred.callback_type, 5);
    let thinking = sim
        .message(demo.dice, deferred.message_id.unwrap())
        .unwrap();
    assert!(thinking.is_loading());
    assert!(matches!(
        roll.final_response(Duration::from_millis(50)).await,
        Err(SimError::Timeout)
    ));
    let original = format!("/webhooks/{app}/{}/messages/@original", roll.token());
    let (status, edited) = rest.patch(&original, json!({"content": "8d6 = 29"})).await;
    assert_eq!(status, 200, "{edited}");
    let done = roll.final_response(WAIT).await.unwrap();
    assert_eq!(done.source, ReplySource::EditOriginal);
    assert_eq!(done.content.as_deref(), Some("8d6 = 29"));
    let message = sim.message(demo.dice, thinking.id).unwrap();
    assert!(!message.is_loading());
    assert_eq!(message.content, "8d6 = 29");
    let (_, fetched) = rest.get(&original).await;
    assert_eq!(fetched["content"], "8d6 = 29");

    // 5 (ephemeral) + follow-up: the first follow-up replaces the placeholder.
    let private = sim
        .run_command(
            demo.bob,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "1d4"}, {"name": "private", "value": true}]),
        )
        .unwrap();
    rest.post(
        &callback_path(&private),
        json!({"type": 5, "data": {"flags": 64}}),
    )
    .await;
    let (status, _) = rest
        .post(
            &format!("/webhooks/{app}/{}", private.token()),
            json!({"content": "only you: 3"}),
        )
        .await;
    assert_eq!(status, 200);
    let done = private.final_response(WAIT).await.unwrap();
    assert_eq!(done.source, ReplySource::Followup);
    assert!(done.ephemeral);
    let stored = sim.message(demo.dice, done.message_id.unwrap()).unwrap();
    assert_eq!(stored.visible_to, Some(demo.bob));
    // Ephemeral messages are invisible to channel REST.
    let (_, listed) = rest.get(&format!("/channels/{}/messages", demo.dice)).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != stored.id.to_string())
    );

    // A second follow-up is a new message; it can be edited and deleted.
    let (_, second) = rest
        .post(
            &format!("/webhooks/{app}/{}", private.token()),
            json!({"content": "and another", "flags": 64}),
        )
        .await;
    let second_id = second["id"].as_str().unwrap();
    assert_eq!(second["flags"], 64);
    let (status, _) = rest
        .patch(
            &format!("/webhooks/{app}/{}/messages/{second_id}", private.token()),
            json!({"content": "edited"}),
        )
        .await;
    assert_eq!(status, 200);
    let replies = sim.interaction_replies(private.id());
    assert_eq!(
        replies.iter().map(|r| r.source).collect::<Vec<_>>(),
        vec![
            ReplySource::Callback,
            ReplySource::Followup,
            ReplySource::Followup,
            ReplySource::EditFollowup
        ]
    );
    let (status, _) = rest
        .delete(&format!(
            "/webhooks/{app}/{}/messages/{second_id}",
            private.token()
        ))
        .await;
    assert_eq!(status, 204);
    let (status, _) = rest
        .delete(&format!(
            "/webhooks/{app}/{}/messages/@original",
            private.token()
        ))
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn webhook_rules_for_unanswered_and_expired_tokens() {
    let sim = common::start_with(SimConfig {
        token_lifetime: Duration::from_millis(300),
        ..SimConfig::default()
    });
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    register_commands(&rest, &sim, demo.guild).await;
    let app = sim.application_id();
    let roll = common::alice_rolls(&sim, &demo);
    let (status, body) = rest
        .post(
            &format!("/webhooks/{app}/{}", roll.token()),
            json!({"content": "early"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (404, Some(10015)),
        "follow-up before the callback"
    );
    let (status, body) = rest
        .patch(
            &format!("/webhooks/{app}/{}/messages/@original", roll.token()),
            json!({"content": "x"}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10008)));
    let (status, body) = rest
        .post(
            &format!("/webhooks/{app}/not-a-token"),
            json!({"content": "x"}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10015)));

    rest.post(
        &callback_path(&roll),
        json!({"type": 4, "data": {"content": "ok"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = rest
        .post(
            &format!("/webhooks/{app}/{}", roll.token()),
            json!({"content": "late"}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (401, Some(50027)));
}

#[tokio::test]
async fn buttons_selects_and_modals() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let (_, posted) = rest
        .post(
            &format!("/channels/{}/messages", demo.drinking),
            json!({"content": "Round 1", "components": [
                {"type": 1, "components": [
                    {"type": 2, "style": 1, "label": "Roll", "custom_id": "drink:roll"},
                    {"type": 2, "style": 4, "label": "Quit", "custom_id": "drink:quit", "disabled": true}
                ]},
                {"type": 1, "components": [{"type": 3, "custom_id": "drink:target", "options": [
                    {"label": "Alice", "value": "alice"}, {"label": "Bob", "value": "bob"}]}]}
            ]}),
        )
        .await;
    let message: discord_sim::Snowflake = posted["id"].as_str().unwrap().parse().unwrap();

    // Button -> update the message in place (7).
    let click = sim
        .click_button(demo.carol, demo.drinking, message, "drink:roll")
        .unwrap();
    let d = click.payload();
    assert_eq!(d["type"], 3);
    assert_eq!(
        d["data"],
        json!({"custom_id": "drink:roll", "component_type": 2})
    );
    assert_eq!(d["message"]["id"], message.to_string());
    rest.post(
        &callback_path(&click),
        json!({"type": 7, "data": {"content": "Carol rolled a 6", "components": []}}),
    )
    .await;
    let reply = click.final_response(WAIT).await.unwrap();
    assert_eq!(reply.callback_type, 7);
    assert_eq!(reply.message_id, Some(message));
    assert_eq!(reply.content.as_deref(), Some("Carol rolled a 6"));
    let updated = sim.message(demo.drinking, message).unwrap();
    assert!(updated.components.is_empty());
    assert!(updated.edited_timestamp.is_some());

    // The buttons are gone now.
    assert!(matches!(
        sim.click_button(demo.carol, demo.drinking, message, "drink:roll"),
        Err(SimError::UnknownComponent { .. })
    ));

    // Select -> deferred update (6), then @original edits the component's message.
    let (_, posted) = rest
        .post(
            &format!("/channels/{}/messages", demo.drinking),
            json!({"content": "Who drinks?", "components": [{"type": 1, "components": [{"type": 3, "custom_id": "drink:who",
                "options": [{"label": "Alice", "value": "alice"}, {"label": "Bob", "value": "bob"}]}]}]}),
        )
        .await;
    let picker: discord_sim::Snowflake = posted["id"].as_str().unwrap().parse().unwrap();
    assert!(matches!(
        sim.select(
            demo.alice,
            demo.drinking,
            picker,
            "drink:who",
            vec!["zed".into()]
        ),
        Err(SimError::InvalidOptions(_))
    ));
    let pick = sim
        .select(
            demo.alice,
            demo.drinking,
            picker,
            "drink:who",
            vec!["bob".into()],
        )
        .unwrap();
    assert_eq!(pick.payload()["data"]["values"], json!(["bob"]));
    assert_eq!(pick.payload()["data"]["component_type"], 3);
    rest.post(&callback_path(&pick), json!({"type": 6})).await;
    assert_eq!(pick.response(WAIT).await.unwrap().callback_type, 6);
    rest.patch(
        &format!(
            "/webhooks/{}/{}/messages/@original",
            sim.application_id(),
            pick.token()
        ),
        json!({"content": "Bob drinks!", "components": []}),
    )
    .await;
    let done = pick.final_response(WAIT).await.unwrap();
    assert_eq!(done.message_id, Some(picker));
    assert_eq!(
        sim.message(demo.drinking, picker).unwrap().content,
        "Bob drinks!"
    );

    // Command responses cannot use component-only callback types.
    let (_, posted) = rest
        .post(
            &format!("/channels/{}/messages", demo.drinking),
            json!({"content": "Sheet", "components": [{"type": 1, "components": [
                {"type": 2, "style": 1, "label": "Edit", "custom_id": "sheet:edit"}]}]}),
        )
        .await;
    let sheet: discord_sim::Snowflake = posted["id"].as_str().unwrap().parse().unwrap();

    // Button -> modal (9) -> submit (type 5 interaction) -> message response.
    let open = sim
        .click_button(demo.bob, demo.drinking, sheet, "sheet:edit")
        .unwrap();
    let (status, _) = rest
        .post(
            &callback_path(&open),
            json!({"type": 9, "data": {"custom_id": "sheet:form", "title": "Edit sheet", "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": "name", "style": 1, "label": "Name"}]},
                {"type": 1, "components": [{"type": 4, "custom_id": "hp", "style": 1, "label": "HP"}]}
            ]}}),
        )
        .await;
    assert_eq!(status, 204);
    let modal = open.final_response(WAIT).await.unwrap();
    assert_eq!(modal.callback_type, 9);
    assert_eq!(modal.data["custom_id"], "sheet:form");
    assert!(matches!(
        sim.submit_modal(demo.alice, demo.drinking, "sheet:form", &[]),
        Err(SimError::UnknownModal(_))
    ));
    let submit = sim
        .submit_modal(
            demo.bob,
            demo.drinking,
            "sheet:form",
            &[("name", "Bob the Brave"), ("hp", "12")],
        )
        .unwrap();
    let data = &submit.payload()["data"];
    assert_eq!(submit.payload()["type"], 5);
    assert_eq!(data["custom_id"], "sheet:form");
    assert_eq!(
        data["components"][0]["components"][0]["value"],
        "Bob the Brave"
    );
    assert_eq!(data["components"][1]["components"][0]["custom_id"], "hp");
    let (status, body) = rest
        .post(&callback_path(&submit), json!({"type": 9, "data": {}}))
        .await;
    assert_eq!(status, 400, "no modal in response to a modal: {body}");
    rest.post(
        &callback_path(&submit),
        json!({"type": 4, "data": {"content": "Saved", "flags": 64}}),
    )
    .await;
    let saved = submit.response(WAIT).await.unwrap();
    assert!(saved.ephemeral);
    assert_eq!(
        sim.message(demo.drinking, saved.message_id.unwrap())
            .unwrap()
            .visible_to,
        Some(demo.bob)
    );

    // Disabled buttons cannot be clicked.
    let (_, posted) = rest
        .post(
            &format!("/channels/{}/messages", demo.drinking),
            json!({"content": "x", "components": [{"type": 1, "components": [
                {"type": 2, "style": 1, "label": "Off", "custom_id": "off", "disabled": true}]}]}),
        )
        .await;
    let off: discord_sim::Snowflake = posted["id"].as_str().unwrap().parse().unwrap();
    assert!(matches!(
        sim.click_button(demo.bob, demo.drinking, off, "off"),
        Err(SimError::DisabledComponent(_))
    ));
}

#[tokio::test]
async fn a_command_is_offered_only_where_its_contexts_say() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let global = format!("/applications/{}/commands", sim.application_id());
    let command = |name: &str, extra: Value| {
        let mut c = json!({"name": name, "description": "A command"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let (status, body) = rest
        .put(
            &global,
            Some(json!([
                command("everywhere", json!({"contexts": [0, 1]})),
                command("servers", json!({"contexts": [0]})),
                command("dms", json!({"contexts": [1]})),
                // Without contexts: offered in both, unless dm_permission says no
                // (which contexts, when given, override).
                command("unsaid", json!({})),
                command("no-dms", json!({"dm_permission": false})),
                command(
                    "overridden",
                    json!({"dm_permission": false, "contexts": [0, 1]})
                ),
            ])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let dm = sim.dm_channel(demo.alice).unwrap();
    let offered = |name: &str, channel| match sim.run_command(demo.alice, channel, name, json!([]))
    {
        Ok(interaction) => {
            assert_eq!(interaction.payload()["data"]["name"], name);
            Ok(())
        }
        Err(SimError::NotOfferedHere { place, offered, .. }) => Err((place, offered)),
        Err(other) => panic!("/{name}: {other}"),
    };
    for (name, in_servers, in_dms) in [
        ("everywhere", true, true),
        ("servers", true, false),
        ("dms", false, true),
        ("unsaid", true, true),
        ("no-dms", true, false),
        ("overridden", true, true),
    ] {
        assert_eq!(
            offered(name, demo.dice).is_ok(),
            in_servers,
            "/{name} in #dice"
        );
        assert_eq!(offered(name, dm).is_ok(), in_dms, "/{name} in a DM");
    }
    assert_eq!(
        offered("servers", dm),
        Err(("direct messages", "servers")),
        "the refusal says where it is offered"
    );
    let refused = sim
        .run_command(demo.alice, dm, "servers", json!([]))
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "`/servers` is not offered in direct messages: the bot offers it in servers only"
    );
}

#[tokio::test]
async fn command_interactions_reject_component_callback_types() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    register_commands(&rest, &sim, demo.guild).await;
    let roll = common::alice_rolls(&sim, &demo);
    for kind in [1, 6, 7, 8, 42] {
        let (status, body) = rest
            .post(&callback_path(&roll), json!({"type": kind}))
            .await;
        assert_eq!(
            (status, body["code"].as_u64()),
            (400, Some(50035)),
            "type {kind}"
        );
    }
    // Invalid callbacks do not acknowledge: a valid one still works.
    let (status, _) = rest
        .post(
            &callback_path(&roll),
            json!({"type": 4, "data": {"content": "ok"}}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(sim.interaction_count_answered(roll.id()), 1);
}
