//! Every way Tavern sends or edits a message says whom it may ping: nobody, unless the
//! reply names them. discord-sim works out who would have been notified.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{bot_config, config, id, registered, sim, start_bot};
use discord::{
    ButtonStyle, CommandSpec, Component, Discord, Invocation, Reply, Response, Router, UserId,
};
use discord_sim::{InteractionReply, Message, Pings};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn nobody(message: &Message) {
    assert_eq!(message.pings, Pings::default(), "{message:?}");
    assert_eq!(
        message.allowed_mentions,
        Some(json!({"parse": []})),
        "{message:?}"
    );
    assert!(message.mention_everyone, "the content does say @everyone");
}

fn nobody_in(reply: &InteractionReply) {
    assert_eq!(reply.pings, Pings::default(), "{reply:?}");
    assert_eq!(
        reply.allowed_mentions,
        Some(json!({"parse": []})),
        "{reply:?}"
    );
}

#[tokio::test]
async fn no_message_pings_anyone_it_does_not_name() {
    let (sim, demo) = sim();
    let loud = format!("<@{}> <@&{}> @everyone @here", demo.alice, demo.guild);
    let discord = Discord::new(&config(&sim));
    let mut router = Router::new(discord.clone());
    let text = loud.clone();
    router
        .command(
            CommandSpec::new("loud", "Answers at once"),
            Arc::new(move |_inv: Invocation| {
                let text = text.clone();
                async move {
                    Ok(Response::Message(Reply::text(text).row(vec![
                        Component::button("loud:again", "Again", ButtonStyle::Primary),
                    ])))
                }
            }),
        )
        .unwrap();
    let text = loud.clone();
    router
        .command(
            CommandSpec::new("slow", "Answers after a deferral"),
            Arc::new(move |_inv: Invocation| {
                let text = text.clone();
                async move {
                    tokio::time::sleep(discord::DEFER_AFTER + Duration::from_millis(200)).await;
                    Ok(Response::Message(Reply::text(text)))
                }
            }),
        )
        .unwrap();
    let text = loud.clone();
    router
        .components(
            "loud",
            Arc::new(move |_inv: Invocation| {
                let text = text.clone();
                async move { Ok(Response::Update(Reply::text(format!("{text}!")))) }
            }),
        )
        .unwrap();
    let bot = start_bot(bot_config(&sim, config(&sim)), router).await;
    registered(&sim, &["loud", "slow"]).await;

    // The interaction callback, a button's update, and the edit after a deferral.
    let answered = sim
        .run_command(demo.bob, demo.general, "loud", json!([]))
        .unwrap()
        .response(WAIT)
        .await
        .unwrap();
    nobody_in(&answered);
    let message = answered.message_id.unwrap();
    let pressed = sim
        .click_button(demo.bob, demo.general, message, "loud:again")
        .unwrap()
        .response(WAIT)
        .await
        .unwrap();
    nobody_in(&pressed);
    let slow = sim
        .run_command(demo.bob, demo.general, "slow", json!([]))
        .unwrap();
    let edited = slow.final_response(WAIT).await.unwrap();
    assert_eq!(edited.content.as_deref(), Some(loud.as_str()));
    nobody_in(&edited);

    // A follow-up, a channel message, its edit, a direct message.
    let follow_up = discord
        .follow_up(slow.token(), &Reply::text(&loud))
        .await
        .unwrap();
    nobody(&sim.message(demo.general, follow_up.get()).unwrap());
    let sent = discord
        .send(id(demo.general), &Reply::text(&loud))
        .await
        .unwrap();
    nobody(&sim.message(demo.general, sent.get()).unwrap());
    discord
        .edit(
            id(demo.general),
            sent,
            &Reply::text(format!("{loud} (edited)")),
        )
        .await
        .unwrap();
    nobody(&sim.message(demo.general, sent.get()).unwrap());
    let dm = discord
        .dm(id(demo.carol), &Reply::text(&loud))
        .await
        .unwrap();
    let dm_channel = sim.dm_channel(demo.carol).unwrap();
    nobody(&sim.message(dm_channel, dm.get()).unwrap());

    bot.stop().await.unwrap();
}

#[tokio::test]
async fn a_reply_that_pings_someone_pings_exactly_them() {
    let (sim, demo) = sim();
    let discord = Discord::new(&config(&sim));
    let alice: UserId = id(demo.alice);
    let content = format!(
        "<@{}>, your turn (after <@{}>). @everyone watch",
        demo.alice, demo.bob
    );

    let sent = discord
        .send(id(demo.general), &Reply::text(&content).ping(alice))
        .await
        .unwrap();
    let message = sim.message(demo.general, sent.get()).unwrap();
    assert_eq!(
        message.pings,
        Pings {
            users: vec![demo.alice],
            roles: Vec::new(),
            everyone: false
        }
    );
    assert_eq!(
        message.allowed_mentions,
        Some(json!({"parse": [], "users": [demo.alice.to_string()]}))
    );
    assert_eq!(
        message.mentions,
        vec![demo.alice, demo.bob],
        "bob is mentioned but not pinged"
    );
}
