//! The real twilight 0.18 shard and HTTP client, pointed at the sim: READY, an
//! interaction answered through twilight, the bot's own message coming back as
//! MESSAGE_CREATE, and a dropped connection resumed with the missed interaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use discord_sim::{Sim, SimConfig};
use serde_json::json;
use twilight_gateway::{ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt};
use twilight_model::application::command::Command;
use twilight_model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};
use twilight_model::id::Id;

/// Next event matching `wanted`, skipping others and transient receive errors
/// (twilight reports reconnects as errors and carries on).
async fn next_matching(shard: &mut Shard, wanted: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let next = tokio::time::timeout_at(deadline, shard.next_event(EventTypeFlags::all()))
            .await
            .expect("event before the deadline");
        match next {
            Some(Ok(event)) if wanted(&event) => return event,
            Some(Ok(_)) => {}
            Some(Err(error)) => eprintln!("gateway receive error (twilight retries): {error}"),
            None => panic!("shard closed"),
        }
    }
}

#[tokio::test]
async fn twilight_shard_and_client_work_against_the_sim() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig {
        interaction_deadline: Duration::from_secs(30),
        ..SimConfig::default()
    })
    .unwrap();
    let demo = sim.seed_demo();

    let http = twilight_http::Client::builder()
        .token(sim.token().to_owned())
        .proxy(sim.addr().to_string(), true)
        .ratelimiter(None)
        .build();
    let app = Id::new(sim.application_id().get());
    let guild = Id::new(demo.guild.get());
    let interactions = http.interaction(app);
    let roll: Command = serde_json::from_value(json!({
        "name": "roll", "description": "Roll dice", "type": 1, "version": "1",
        "default_member_permissions": null,
        "options": [{"name": "expression", "description": "Dice", "type": 3, "required": true}]
    }))
    .unwrap();
    let registered = interactions
        .set_guild_commands(guild, &[roll])
        .await
        .unwrap()
        .models()
        .await
        .unwrap();
    assert_eq!(registered.len(), 1);
    assert!(registered[0].id.is_some());
    let me = http.current_user().await.unwrap().model().await.unwrap();
    assert_eq!(me.id.get(), sim.bot_user_id().get());

    let config = ConfigBuilder::new(
        sim.token().to_owned(),
        Intents::GUILDS | Intents::GUILD_MESSAGES | Intents::MESSAGE_CONTENT,
    )
    .proxy_url(sim.gateway_url())
    .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let Event::Ready(ready) = next_matching(&mut shard, |e| matches!(e, Event::Ready(_))).await
    else {
        unreachable!()
    };
    assert_eq!(ready.application.id, app);
    assert_eq!(ready.resume_gateway_url, sim.gateway_url());
    let Event::GuildCreate(created) =
        next_matching(&mut shard, |e| matches!(e, Event::GuildCreate(_))).await
    else {
        unreachable!()
    };
    assert_eq!(created.id(), guild);

    // A slash command, answered through twilight's interaction client.
    let pending = sim
        .run_command(
            demo.alice,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "1d20"}]),
        )
        .unwrap();
    let Event::InteractionCreate(interaction) =
        next_matching(&mut shard, |e| matches!(e, Event::InteractionCreate(_))).await
    else {
        unreachable!()
    };
    assert_eq!(interaction.id.get(), pending.id().get());
    let response = InteractionResponse {
        kind: InteractionResponseType::ChannelMessageWithSource,
        data: Some(InteractionResponseData {
            content: Some("1d20 = 11".into()),
            ..Default::default()
        }),
    };
    interactions
        .create_response(interaction.id, &interaction.token, &response)
        .await
        .unwrap();
    let reply = pending.response(Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply.content.as_deref(), Some("1d20 = 11"));
    let Event::MessageCreate(echo) =
        next_matching(&mut shard, |e| matches!(e, Event::MessageCreate(_))).await
    else {
        unreachable!()
    };
    assert_eq!(echo.content, "1d20 = 11");
    let original = interactions
        .response(&interaction.token)
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert_eq!(original.id, echo.id);

    // The bot posts through REST and sees its own MESSAGE_CREATE.
    let sent = http
        .create_message(Id::new(demo.general.get()))
        .content("Welcome to the tavern")
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    let Event::MessageCreate(own) =
        next_matching(&mut shard, |e| matches!(e, Event::MessageCreate(_))).await
    else {
        unreachable!()
    };
    assert_eq!(own.id, sent.id);

    // Drop the connection and refuse reconnects while another interaction is
    // dispatched; once reconnects are allowed the shard resumes and receives it.
    sim.set_gateway_accepting(false);
    assert_eq!(sim.drop_gateway_connections(), 1);
    let missed = sim
        .run_command(
            demo.bob,
            demo.dice,
            "roll",
            json!([{"name": "expression", "value": "2d4"}]),
        )
        .unwrap();
    // Keep polling the shard so it really tries (and fails) to reconnect.
    let during_outage = tokio::time::timeout(
        Duration::from_millis(1500),
        next_matching(&mut shard, |e| matches!(e, Event::InteractionCreate(_))),
    )
    .await;
    assert!(
        during_outage.is_err(),
        "nothing arrives while reconnects are refused"
    );
    sim.set_gateway_accepting(true);
    let Event::InteractionCreate(replayed) =
        next_matching(&mut shard, |e| matches!(e, Event::InteractionCreate(_))).await
    else {
        unreachable!()
    };
    assert_eq!(replayed.id.get(), missed.id().get());
    next_matching(&mut shard, |e| matches!(e, Event::Resumed)).await;
    assert_eq!(sim.gateway_session_count(), 1, "resumed, not re-identified");
}

#[tokio::test]
async fn twilight_ratelimiter_reads_the_sims_headers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig::default()).unwrap();
    let demo = sim.seed_demo();
    // The default client keeps twilight's rate limiter, which parses every
    // response's X-RateLimit-* headers.
    let http = twilight_http::Client::builder()
        .token(sim.token().to_owned())
        .proxy(sim.addr().to_string(), true)
        .build();
    let channel = Id::new(demo.general.get());
    for i in 0..3 {
        http.create_message(channel)
            .content(&format!("message {i}"))
            .await
            .unwrap();
    }
    sim.inject_fault(
        discord_sim::RouteMatch::new("POST", "/channels/"),
        discord_sim::Fault::RateLimited {
            retry_after_secs: 0.2,
            global: false,
        },
        1,
    );
    // twilight waits `Retry-After` and retries a 429 by itself.
    let started = std::time::Instant::now();
    let after = http
        .create_message(channel)
        .content("after the limit")
        .await
        .unwrap()
        .model()
        .await
        .unwrap();
    assert_eq!(after.content, "after the limit");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let statuses: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 200, 200, 429, 200]);
    let messages = http
        .channel_messages(channel)
        .limit(10)
        .await
        .unwrap()
        .models()
        .await
        .unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[0].content, "after the limit");
}
