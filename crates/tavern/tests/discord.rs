//! The Discord runtime against discord-sim: routing, deferral, resume, rate limits,
//! retries and graceful shutdown. A small test feature stands in for the real ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use discord::{
    ButtonStyle, CommandSpec, Component, HandlerError, Invocation, OptionSpec, Reply, Response,
};
use discord_sim::{Fault, RouteMatch, Sim, SimConfig};
use feature::{Feature, TestBot, sim_config};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

/// A feature with a fast command, a slow command and buttons, counting its calls.
fn test_feature(calls: Arc<AtomicUsize>) -> Feature {
    let mut feature = Feature::new("test");
    let c = Arc::clone(&calls);
    feature.commands.push((
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
                    vec![Component::button(
                        "test:again",
                        "Again",
                        ButtonStyle::Primary,
                    )],
                )))
            }
        }),
    ));
    let c = Arc::clone(&calls);
    feature.commands.push((
        CommandSpec::new("slow", "Takes a while")
            .option(OptionSpec::integer("ms", "How long").required())
            .option(OptionSpec::boolean("private", "Only you see it")),
        Arc::new(move |inv: Invocation| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                let ms = inv.options().int("ms").unwrap_or(0).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Response::Message(Reply::text(format!("slept {ms} ms"))))
            }
        }),
    ));
    feature.components = Some((
        "test",
        Arc::new(|inv: Invocation| async move {
            Ok(Response::Update(Reply::text(format!(
                "pressed {} by {}",
                inv.custom_id_parts().join("/"),
                inv.actor.name
            ))))
        }),
    ));
    feature
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

/// A sim with the demo guild and a bot running `features`, ready.
async fn start_with(features: Vec<Feature>) -> (Sim, discord_sim::Demo, TestBot) {
    discord::install_crypto_provider();
    let sim = Sim::start(SimConfig::default()).expect("sim");
    let demo = sim.seed_demo();
    let config = sim_config(sim.token(), &sim.addr().to_string(), &sim.gateway_url());
    let discord = TestBot::discord_for(&config);
    let bot = TestBot::start(config, discord, features).await;
    (sim, demo, bot)
}

/// [`start_with`] the test feature, once its two commands are registered.
async fn start() -> (Sim, discord_sim::Demo, TestBot, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (sim, demo, bot) = start_with(vec![test_feature(Arc::clone(&calls))]).await;
    // Commands are registered right after READY.
    let deadline = Instant::now() + WAIT;
    while sim.registered_commands().len() < 2 {
        assert!(Instant::now() < deadline, "commands not registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (sim, demo, bot, calls)
}

#[tokio::test]
async fn commands_are_registered_by_bulk_overwrite_and_routed_by_name() {
    let (sim, demo, bot, _) = start().await;
    let names: Vec<String> = sim
        .registered_commands()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["echo".to_owned(), "slow".to_owned()]);
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.ends_with("/commands"))
    );

    let i = sim
        .run_command(
            demo.alice,
            demo.general,
            "echo",
            json!([{"name":"text","type":3,"value":"hi"}]),
        )
        .expect("run");
    let reply = i.response(WAIT).await.expect("reply");
    assert_eq!(reply.content.as_deref(), Some("echo: hi"));
    assert_eq!(reply.components[0].custom_id.as_deref(), Some("test:again"));
    bot.stop().await;
}

#[tokio::test]
async fn buttons_are_routed_by_custom_id_prefix_and_update_the_message() {
    let (sim, demo, bot, _) = start().await;
    let i = sim
        .run_command(
            demo.alice,
            demo.general,
            "echo",
            json!([{"name":"text","type":3,"value":"x"}]),
        )
        .expect("run");
    let message = i
        .response(WAIT)
        .await
        .expect("reply")
        .message_id
        .expect("message id");

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
    let (sim, demo, bot, _) = start().await;
    let i = sim
        .run_command(
            demo.alice,
            demo.general,
            "echo",
            json!([{"name":"text","type":3,"value":"refuse"}]),
        )
        .expect("run");
    let reply = i.response(WAIT).await.expect("reply");
    assert!(reply.ephemeral);
    assert_eq!(reply.content.as_deref(), Some("⚠️ I won't say that."));
    bot.stop().await;
}

#[tokio::test]
async fn a_slow_handler_is_deferred_then_its_answer_edits_the_original() {
    let (sim, demo, bot, _) = start().await;
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

#[tokio::test]
async fn after_a_gateway_drop_the_shard_resumes_and_every_interaction_is_answered_once() {
    let (sim, demo, bot, calls) = start().await;
    // One interaction in flight (its handler takes 600 ms) when the connection drops.
    let in_flight = sim
        .run_command(
            demo.alice,
            demo.general,
            "slow",
            json!([{"name":"ms","type":4,"value":600}]),
        )
        .expect("run");
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.set_gateway_accepting(false);
    assert!(sim.drop_gateway_connections() >= 1, "the bot was connected");
    // Another is sent while the bot is disconnected: it is buffered for RESUME.
    let during_drop = sim
        .run_command(
            demo.bob,
            demo.general,
            "echo",
            json!([{"name":"text","type":3,"value":"during"}]),
        )
        .expect("run");
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    // Give a duplicate delivery time to show up, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.interaction_callback_attempts(in_flight.id()), 1);
    assert_eq!(sim.interaction_callback_attempts(during_drop.id()), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "each handler ran once");
    assert!(
        bot.status.resumes() >= 1,
        "the session was resumed, not re-identified"
    );
    bot.stop().await;
}

#[tokio::test]
async fn a_429_waits_retry_after_and_posts_once() {
    let (sim, demo, bot, _) = start().await;
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
    let (sim, demo, bot, _) = start().await;
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
    let (sim, demo, bot, _) = start().await;
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
    let (sim, demo, bot, _) = start().await;
    let i = sim
        .run_command(
            demo.alice,
            demo.general,
            "slow",
            json!([{"name":"ms","type":4,"value":500}]),
        )
        .expect("run");
    tokio::time::sleep(Duration::from_millis(100)).await;
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
    let mut first = Feature::new("first");
    first.events = Some(Arc::new(Recorder {
        seen: Arc::clone(&everything),
        kinds: discord::EventKind::ALL.to_vec(),
    }));
    let mut second = Feature::new("second");
    second.events = Some(Arc::new(Recorder {
        seen: Arc::clone(&members_only),
        kinds: vec![discord::EventKind::MemberAdd],
    }));
    let (sim, demo, bot) = start_with(vec![first, second]).await;

    sim.post_user_message(
        demo.general,
        demo.alice,
        "a clip: https://example.invalid/v.mp4",
        vec![],
    )
    .expect("post");
    let newcomer = sim.create_user("newcomer");
    sim.add_member(demo.guild, newcomer).expect("add member");
    let deadline = Instant::now() + WAIT;
    let wanted = |seen: &[String]| seen.iter().any(|l| l == "member: newcomer");
    loop {
        let first_done = everything.lock().map(|s| wanted(&s)).unwrap_or(false);
        let second_done = members_only.lock().map(|s| wanted(&s)).unwrap_or(false);
        if first_done && second_done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both handlers see the new member"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
