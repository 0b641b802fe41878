//! The Discord runtime against discord-sim: routing, deferral, resume, rate limits,
//! retries and graceful shutdown. A small test feature stands in for the real ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use discord::{
    ButtonStyle, Choice, CommandSpec, Component, HandlerError, Invocation, OptionSpec, Reply,
    Response,
};
use discord_sim::{Fault, RouteMatch};
use feature::Feature;
use serde_json::json;
use testkit::{TestBot, World, eventually};

const WAIT: Duration = Duration::from_secs(5);

/// A feature with a fast command, a slow command and buttons, counting its calls.
fn test_feature(calls: Arc<AtomicUsize>) -> Feature {
    let c = Arc::clone(&calls);
    let feature = Feature::new("test").command(
        CommandSpec::new("echo", "Echo text back")
            .option(OptionSpec::string("text", "What to say").required()),
        Arc::new(move |inv: Invocation| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                let text = inv.options().str("text").unwrap_or_default().to_owned();
                if text == "refuse" {
                    return Err(HandlerError::user("I won't say that."));
                }
                Ok(Response::Message(Reply::text(format!("echo: {text}")).row(
                    vec![
                        Component::button("test:again", "Again", ButtonStyle::Primary),
                        Component::button(
                            "test:slow-refusal",
                            "Refuse slowly",
                            ButtonStyle::Secondary,
                        ),
                    ],
                )))
            }
        }),
    );
    let c = Arc::clone(&calls);
    feature
        .command(
            CommandSpec::new("slow", "Takes a while")
                .option(OptionSpec::integer("ms", "How long").required())
                .option(OptionSpec::boolean("private", "Only you see it"))
                .option(OptionSpec::boolean("refuse", "Refuse after the wait")),
            Arc::new(move |inv: Invocation| {
                c.fetch_add(1, Ordering::SeqCst);
                async move {
                    let ms = inv.options().int("ms").unwrap_or(0).max(0) as u64;
                    // The handler's own work takes this long (not a synchronisation).
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    if inv.options().bool("refuse").unwrap_or(false) {
                        return Err(HandlerError::user("Not now."));
                    }
                    Ok(Response::Message(Reply::text(format!("slept {ms} ms"))))
                }
            }),
        )
        .command(
            CommandSpec::new("pick", "Pick a dragon").option(
                OptionSpec::string("dragon", "Which one")
                    .required()
                    .autocomplete(),
            ),
            Arc::new(|inv: Invocation| async move {
                if let Some((_, typed)) = inv.autocompleting() {
                    if typed == "slow" {
                        // Slower than Discord allows for suggestions.
                        tokio::time::sleep(
                            discord::AUTOCOMPLETE_WITHIN + Duration::from_millis(300),
                        )
                        .await;
                    }
                    let choices = ["Bahamut", "Tiamat", "Tiamat the Younger"]
                        .into_iter()
                        .filter(|d| d.to_lowercase().starts_with(&typed.to_lowercase()))
                        .map(|d| Choice::new(d, d))
                        .collect();
                    return Ok(Response::Choices(choices));
                }
                let dragon = inv.options().str("dragon").unwrap_or_default().to_owned();
                Ok(Response::Message(Reply::text(format!(
                    "you picked {dragon}"
                ))))
            }),
        )
        .command(
            CommandSpec::new("whisper", "A slow private answer").private(),
            Arc::new(|_inv: Invocation| async move {
                // Slower than the deferral deadline.
                tokio::time::sleep(discord::DEFER_AFTER + Duration::from_millis(300)).await;
                Ok(Response::Message(Reply::private("only for you")))
            }),
        )
        .components(
            "test",
            Arc::new(|inv: Invocation| async move {
                if inv.custom_id_parts().get(1) == Some(&"slow-refusal") {
                    tokio::time::sleep(discord::DEFER_AFTER + Duration::from_millis(300)).await;
                    return Err(HandlerError::user("Not your game."));
                }
                Ok(Response::Update(Reply::text(format!(
                    "pressed {} by {}",
                    inv.custom_id_parts().join("/"),
                    inv.actor.name
                ))))
            }),
        )
}

/// Records every event it receives, as `kind: detail`; receives only `kinds`.
struct Recorder {
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    kinds: Vec<discord::EventKind>,
}

impl discord::EventHandler for Recorder {
    fn on_event(&self, event: discord::Event) -> discord::BoxFuture<'static, ()> {
        let line = match &event {
            discord::Event::MessageCreate { content, .. } => format!("message: {content}"),
            discord::Event::MemberAdd { user, .. } => format!("member: {}", user.name),
            other => format!("{:?}", other.kind()),
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(line);
        }
        Box::pin(async {})
    }

    fn kinds(&self) -> &[discord::EventKind] {
        &self.kinds
    }
}

/// A world (discord-sim with the demo guild) and a bot running `features`, ready.
async fn start_with(features: Vec<Feature>) -> (World, TestBot) {
    let world = World::new().await;
    let bot = TestBot::spawn(&world, features).await;
    (world, bot)
}

/// [`start_with`] the test feature.
async fn start() -> (World, TestBot, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (world, bot) = start_with(vec![test_feature(Arc::clone(&calls))]).await;
    (world, bot, calls)
}

/// `user` runs `/echo text` in `channel`.
fn echo(
    sim: &discord_sim::Sim,
    user: discord_sim::Snowflake,
    channel: discord_sim::Snowflake,
    text: &str,
) -> discord_sim::Interaction {
    sim.run_command(
        user,
        channel,
        "echo",
        json!([{"name": "text", "type": 3, "value": text}]),
    )
    .expect("run")
}

/// The message the interaction's answer made.
async fn message_of(interaction: &discord_sim::Interaction) -> discord_sim::Snowflake {
    interaction
        .response(WAIT)
        .await
        .expect("reply")
        .message_id
        .expect("message id")
}

/// Waits until the handlers have been called `n` times in all.
async fn called(calls: &AtomicUsize, n: usize) {
    eventually("the handler was called", || {
        let done = calls.load(Ordering::SeqCst) >= n;
        async move { done.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn commands_are_registered_by_bulk_overwrite_and_routed_by_name() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let names: Vec<String> = sim
        .registered_commands()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        vec![
            "echo".to_owned(),
            "slow".to_owned(),
            "pick".to_owned(),
            "whisper".to_owned()
        ]
    );
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.ends_with("/commands"))
    );

    let i = echo(sim, demo.alice, demo.general, "hi");
    let reply = i.response(WAIT).await.expect("reply");
    assert_eq!(reply.content.as_deref(), Some("echo: hi"));
    assert_eq!(reply.components[0].custom_id.as_deref(), Some("test:again"));
    bot.stop().await;
}

#[tokio::test]
async fn buttons_are_routed_by_custom_id_prefix_and_update_the_message() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let i = echo(sim, demo.alice, demo.general, "x");
    let message = message_of(&i).await;

    let press = sim
        .click_button(demo.bob, demo.general, message, "test:again")
        .expect("click");
    let reply = press.response(WAIT).await.expect("reply");
    assert_eq!(reply.callback_type, 7, "UPDATE_MESSAGE");
    let edited = sim.message(demo.general, message).expect("message");
    assert_eq!(edited.content, "pressed test/again by bob");
    bot.stop().await;
}

#[tokio::test]
async fn a_refusal_is_shown_privately_to_the_user() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let i = echo(sim, demo.alice, demo.general, "refuse");
    let reply = i.response(WAIT).await.expect("reply");
    assert!(reply.ephemeral);
    assert_eq!(reply.content.as_deref(), Some("⚠️ I won't say that."));
    bot.stop().await;
}

#[tokio::test]
async fn a_slow_handler_is_deferred_then_its_answer_edits_the_original() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let i = sim
        .run_command(
            demo.alice,
            demo.general,
            "slow",
            json!([{"name":"ms","type":4,"value":1600}, {"name":"private","type":5,"value":true}]),
        )
        .expect("run");
    let first = i.response(WAIT).await.expect("first callback");
    assert_eq!(
        first.callback_type, 5,
        "DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE"
    );
    assert!(first.ephemeral, "a private command defers privately");
    let waited = first.callback_at.duration_since(i.dispatched_at);
    assert!(
        waited >= discord::DEFER_AFTER,
        "deferred only after {:?}: {waited:?}",
        discord::DEFER_AFTER
    );
    let last = i.final_response(WAIT).await.expect("final");
    assert_eq!(last.content.as_deref(), Some("slept 1600 ms"));
    assert_eq!(
        sim.interaction_callback_attempts(i.id()),
        1,
        "one callback, then an edit"
    );
    bot.stop().await;
}

/// A slow command that ends in a refusal after a public deferral: the public
/// placeholder goes away and the refusal reaches only the caller.
#[tokio::test]
async fn a_slow_refusal_after_a_public_deferral_is_shown_only_to_the_caller() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let i = sim
        .run_command(
            demo.alice,
            demo.general,
            "slow",
            json!([{"name":"ms","type":4,"value":1300}, {"name":"refuse","type":5,"value":true}]),
        )
        .expect("run");
    let first = i.response(WAIT).await.expect("first callback");
    assert_eq!(first.callback_type, 5);
    assert!(!first.ephemeral, "a public command defers publicly");
    let placeholder = first.message_id.expect("the deferral's message");
    let last = i.final_response(WAIT).await.expect("final");
    assert_eq!(last.source, discord_sim::ReplySource::Followup);
    assert!(last.ephemeral, "{last:?}");
    assert_eq!(last.content.as_deref(), Some("⚠️ Not now."));
    assert!(
        sim.message(demo.general, placeholder).is_none(),
        "the public placeholder was deleted"
    );
    bot.stop().await;
}

/// A command marked private defers privately without a `private` option.
#[tokio::test]
async fn a_private_command_defers_privately() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let i = sim
        .run_command(demo.alice, demo.general, "whisper", json!([]))
        .expect("run");
    let first = i.response(WAIT).await.expect("first callback");
    assert_eq!(first.callback_type, 5);
    assert!(first.ephemeral, "deferred privately");
    let last = i.final_response(WAIT).await.expect("final");
    assert_eq!(last.content.as_deref(), Some("only for you"));
    bot.stop().await;
}

/// A slow button that refuses: the refusal is a private follow-up, and the message
/// with the button stays as it was.
#[tokio::test]
async fn a_slow_button_refusal_never_replaces_the_message_it_was_clicked_on() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let i = echo(sim, demo.alice, demo.general, "board");
    let message = message_of(&i).await;
    let press = sim
        .click_button(demo.bob, demo.general, message, "test:slow-refusal")
        .expect("click");
    let first = press.response(WAIT).await.expect("deferral");
    assert_eq!(first.callback_type, 6, "DEFERRED_UPDATE_MESSAGE");
    let last = press.final_response(WAIT).await.expect("final");
    assert_eq!(last.source, discord_sim::ReplySource::Followup);
    assert!(last.ephemeral);
    assert_eq!(last.content.as_deref(), Some("⚠️ Not your game."));
    let board = sim.message(demo.general, message).expect("still there");
    assert_eq!(board.content, "echo: board");
    bot.stop().await;
}

/// While a user types an autocomplete option, the handler's suggestions come back as
/// choices; a handler too slow for Discord's deadline suggests nothing rather than
/// letting the interaction fail.
#[tokio::test]
async fn autocomplete_suggests_choices_and_a_slow_handler_suggests_none() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let registered = sim
        .registered_commands()
        .into_iter()
        .find(|c| c.name == "pick")
        .expect("pick");
    assert_eq!(registered.options[0]["autocomplete"], json!(true));

    let typed = |text: &str| json!([{"name": "dragon", "value": text}]);
    let i = sim
        .autocomplete(demo.alice, demo.general, "pick", typed("tia"), "dragon")
        .expect("autocomplete");
    let reply = i.response(WAIT).await.expect("choices");
    assert_eq!(
        reply.callback_type, 8,
        "APPLICATION_COMMAND_AUTOCOMPLETE_RESULT"
    );
    assert_eq!(
        reply.data["choices"],
        json!([
            {"name": "Tiamat", "value": "Tiamat"},
            {"name": "Tiamat the Younger", "value": "Tiamat the Younger"}
        ])
    );

    let i = sim
        .autocomplete(demo.alice, demo.general, "pick", typed("slow"), "dragon")
        .expect("autocomplete");
    let reply = i.response(WAIT).await.expect("choices");
    assert_eq!(reply.callback_type, 8);
    assert_eq!(reply.data["choices"], json!([]));

    let i = sim
        .run_command(demo.alice, demo.general, "pick", typed("Bahamut"))
        .expect("run");
    let reply = i.response(WAIT).await.expect("reply");
    assert_eq!(reply.content.as_deref(), Some("you picked Bahamut"));
    bot.stop().await;
}

#[tokio::test]
async fn after_a_gateway_drop_the_shard_resumes_and_every_interaction_is_answered_once() {
    let (world, bot, calls) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    // One interaction in flight (its handler takes 600 ms) when the connection drops.
    let in_flight = sim
        .run_command(
            demo.alice,
            demo.general,
            "slow",
            json!([{"name":"ms","type":4,"value":600}]),
        )
        .expect("run");
    called(&calls, 1).await;
    sim.set_gateway_accepting(false);
    assert!(sim.drop_gateway_connections() >= 1, "the bot was connected");
    // Another is sent while the bot is disconnected: it is buffered for RESUME.
    let during_drop = echo(sim, demo.bob, demo.general, "during");
    sim.set_gateway_accepting(true);

    let a = in_flight
        .response(Duration::from_secs(15))
        .await
        .expect("in-flight answered");
    let b = during_drop
        .response(Duration::from_secs(15))
        .await
        .expect("buffered one answered after resume");
    assert_eq!(a.content.as_deref(), Some("slept 600 ms"));
    assert_eq!(b.content.as_deref(), Some("echo: during"));
    // A duplicate delivery would come with the replayed events, before anything sent
    // now: once this barrier is answered and the bot has drained every interaction it
    // received, a duplicate would have been handled and counted below.
    let barrier = echo(sim, demo.carol, demo.general, "barrier");
    barrier.response(WAIT).await.expect("barrier answered");
    let resumes = bot.status.resumes();
    bot.stop().await;
    assert_eq!(sim.interaction_callback_attempts(in_flight.id()), 1);
    assert_eq!(sim.interaction_callback_attempts(during_drop.id()), 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2 + 1,
        "each handler ran once (and the barrier)"
    );
    assert!(resumes >= 1, "the session was resumed, not re-identified");
}

#[tokio::test]
async fn a_429_waits_retry_after_and_posts_once() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let route = format!("/channels/{}/messages", demo.general.get());
    sim.inject_fault(
        RouteMatch::new("POST", route.clone()),
        Fault::RateLimited {
            retry_after_secs: 0.4,
            global: false,
        },
        1,
    );
    sim.clear_requests();

    let started = Instant::now();
    bot.discord
        .send(
            discord::Id::new(demo.general.get()),
            &Reply::text("after the wait"),
        )
        .await
        .expect("posted");
    let took = started.elapsed();

    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&route))
        .collect();
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 200]
    );
    assert!(
        took >= Duration::from_millis(400),
        "waited retry_after: {took:?}"
    );
    let copies = sim
        .messages(demo.general)
        .into_iter()
        .filter(|m| m.content == "after the wait")
        .count();
    assert_eq!(copies, 1);
    bot.stop().await;
}

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_and_a_404_is_not() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let route = format!("/channels/{}/messages", demo.general.get());
    sim.inject_fault(
        RouteMatch::new("POST", route.clone()),
        Fault::Status(502),
        2,
    );
    sim.clear_requests();
    bot.discord
        .send(
            discord::Id::new(demo.general.get()),
            &Reply::text("eventually"),
        )
        .await
        .expect("posted after retries");
    let statuses: Vec<u16> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(&route))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![502, 502, 200]);
    let gaps: Vec<Duration> = {
        let times: Vec<Instant> = sim
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(&route))
            .map(|r| r.at)
            .collect();
        times
            .windows(2)
            .map(|w| w[1].duration_since(w[0]))
            .collect()
    };
    assert!(gaps[1] > gaps[0], "backoff grows: {gaps:?}");

    sim.clear_requests();
    let missing = discord::Id::new(123_456_789);
    let error = bot
        .discord
        .send(missing, &Reply::text("nowhere"))
        .await
        .expect_err("unknown channel");
    assert_eq!(error.status(), Some(404));
    let attempts = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("123456789"))
        .count();
    assert_eq!(attempts, 1, "a 404 is not retried");
    bot.stop().await;
}

#[tokio::test]
async fn persistent_5xx_gives_up_with_an_error() {
    let (world, bot, _) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let route = format!("/channels/{}/messages", demo.general.get());
    sim.inject_fault(RouteMatch::new("POST", route), Fault::Status(503), 100);
    let error = bot
        .discord
        .send(discord::Id::new(demo.general.get()), &Reply::text("x"))
        .await
        .expect_err("gives up");
    assert_eq!(error.status(), Some(503));
    bot.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_interactions() {
    let (world, bot, calls) = start().await;
    let (sim, demo) = (&world.sim, &world.demo);
    let i = sim
        .run_command(
            demo.alice,
            demo.general,
            "slow",
            json!([{"name":"ms","type":4,"value":500}]),
        )
        .expect("run");
    called(&calls, 1).await;
    bot.stop().await;
    assert_eq!(
        sim.interaction_count_answered(i.id()),
        1,
        "answered before stop returned"
    );
    let reply = i
        .response(Duration::from_millis(10))
        .await
        .expect("already answered");
    assert_eq!(reply.content.as_deref(), Some("slept 500 ms"));
}

#[tokio::test]
async fn gateway_events_fan_out_to_the_handlers_that_want_them() {
    let everything = Arc::new(std::sync::Mutex::new(Vec::new()));
    let members_only = Arc::new(std::sync::Mutex::new(Vec::new()));
    let first = Feature::new("first").events(Arc::new(Recorder {
        seen: Arc::clone(&everything),
        kinds: discord::EventKind::ALL.to_vec(),
    }));
    let second = Feature::new("second").events(Arc::new(Recorder {
        seen: Arc::clone(&members_only),
        kinds: vec![discord::EventKind::MemberAdd],
    }));
    let (world, bot) = start_with(vec![first, second]).await;
    let (sim, demo) = (&world.sim, &world.demo);

    sim.post_user_message(
        demo.general,
        demo.alice,
        "a clip: https://example.invalid/v.mp4",
        vec![],
    )
    .expect("post");
    let newcomer = sim.create_user("newcomer");
    sim.add_member(demo.guild, newcomer).expect("add member");
    let wanted = |seen: &[String]| seen.iter().any(|l| l == "member: newcomer");
    eventually("both handlers see the new member", || {
        let first_done = everything.lock().map(|s| wanted(&s)).unwrap_or(false);
        let second_done = members_only.lock().map(|s| wanted(&s)).unwrap_or(false);
        async move { (first_done && second_done).then_some(()) }
    })
    .await;
    let everything = everything.lock().expect("lock").clone();
    let members_only = members_only.lock().expect("lock").clone();
    assert_eq!(
        everything
            .iter()
            .filter(|l| l.starts_with("message: a clip"))
            .count(),
        1,
        "{everything:?}"
    );
    assert_eq!(members_only, ["member: newcomer"], "only what it asked for");
    bot.stop().await;
}

/// Records the content of each message inside its future, after yielding more often
/// for earlier messages: delivered concurrently, later ones would overtake them.
struct Lagging {
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl discord::EventHandler for Lagging {
    fn on_event(&self, event: discord::Event) -> discord::BoxFuture<'static, ()> {
        let seen = Arc::clone(&self.seen);
        Box::pin(async move {
            if let discord::Event::MessageCreate { content, .. } = event {
                let n: usize = content.parse().unwrap_or(0);
                for _ in 0..(50 - n) * 20 {
                    tokio::task::yield_now().await;
                }
                seen.lock().expect("lock").push(content);
            }
        })
    }

    fn kinds(&self) -> &[discord::EventKind] {
        &[discord::EventKind::MessageCreate]
    }
}

#[tokio::test]
async fn a_handler_receives_its_events_in_the_order_discord_sent_them() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let feature = Feature::new("lagging").events(Arc::new(Lagging {
        seen: Arc::clone(&seen),
    }));
    let (world, bot) = start_with(vec![feature]).await;
    let (sim, demo) = (&world.sim, &world.demo);
    let sent: Vec<String> = (0..50).map(|n| n.to_string()).collect();
    for content in &sent {
        sim.post_user_message(demo.general, demo.alice, content, vec![])
            .expect("post");
    }
    eventually("every message is handled", || {
        let count = seen.lock().map(|s| s.len()).unwrap_or(0);
        async move { (count == 50).then_some(()) }
    })
    .await;
    assert_eq!(*seen.lock().expect("lock"), sent);
    bot.stop().await;
}

// A current-thread runtime: the subscriber set for this thread sees every task.
#[tokio::test(flavor = "current_thread")]
async fn what_a_handler_logs_carries_the_interactions_span() {
    let captured = testkit::Logs::default();
    let _guard = captured.capture();

    let traced = Feature::new("traced").command(
        CommandSpec::new("traced", "Logs from inside its handler"),
        Arc::new(|_inv: Invocation| async move {
            tracing::info!("inside the handler");
            tokio::task::yield_now().await;
            tracing::info!("still inside after an await");
            Ok(Response::Message(Reply::text("logged")))
        }),
    );
    let (world, bot) = start_with(vec![traced]).await;
    let i = world
        .sim
        .run_command(world.demo.alice, world.demo.general, "traced", json!([]))
        .expect("run");
    i.response(WAIT).await.expect("reply");
    bot.stop().await;

    let logs = captured.text();
    let span = format!("interaction{{id={}", i.id().get());
    for message in ["inside the handler", "still inside after an await"] {
        let line = logs
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no log line {message:?} in:\n{logs}"));
        assert!(line.contains(&span), "{line}");
        assert!(line.contains("route=traced"), "{line}");
    }
}
