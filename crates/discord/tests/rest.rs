//! `Discord` (REST) against discord-sim when Discord refuses, limits or does not answer:
//! nothing a fault provokes may get the bot banned or post a thing twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Logs, bot_config, config, id, registered, requests, says_each_part_once, sim, start_bot,
};
use discord::{
    BreakerConfig, ChannelKind, ChannelSpec, CommandSpec, Discord, DiscordConfig, GlobalLimiter,
    Id, Invocation, Reply, Response, RestError, Router,
};
use discord_sim::{Demo, Fault, RouteMatch, Sim};
use testkit::eventually;

#[tokio::test]
async fn refusals_are_counted_apart_from_other_client_errors() {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let (sim, demo) = sim();
    let discord = Discord::new(&config(&sim));
    sim.inject_fault(RouteMatch::new("GET", "/users/@me"), Fault::Status(401), 1);
    let general = format!("/channels/{}/messages", demo.general);
    sim.inject_fault(RouteMatch::new("POST", &general), Fault::Status(403), 1);

    assert_eq!(discord.probe().await.unwrap_err().status(), Some(401));
    let refused = discord.send(id(demo.general), &Reply::text("x")).await;
    assert_eq!(refused.unwrap_err().status(), Some(403));
    let missing = discord.send(Id::new(123_456_789), &Reply::text("x")).await;
    assert_eq!(missing.unwrap_err().status(), Some(404));

    let text = metrics.render();
    let count = |route: &str, outcome: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("tavern_discord_rest_requests_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(count("user.current", "401").as_deref(), Some("1"), "{text}");
    assert_eq!(
        count("channel.message.create", "403").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("channel.message.create", "4xx").as_deref(),
        Some("1"),
        "{text}"
    );
}

// A current-thread runtime: the subscriber set for this thread sees every task.
#[tokio::test(flavor = "current_thread")]
async fn a_channel_that_keeps_refusing_is_not_called_again_and_the_logs_say_so() {
    let captured = Logs::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let (sim, demo) = sim();
    let discord = Discord::new(&config(&sim));
    let path = format!("/channels/{}/messages", demo.general);
    sim.inject_fault(RouteMatch::new("POST", &path), Fault::Status(403), 100);

    for _ in 0..8 {
        let error = discord
            .send(id(demo.general), &Reply::text("x"))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(403), "{error}");
    }
    assert_eq!(
        requests(&sim, "POST", &path).len(),
        5,
        "five refusals open the breaker; the rest fail without a request"
    );
    let logs = captured.text();
    let line = logs
        .lines()
        .find(|l| l.contains("circuit breaker open"))
        .unwrap_or_else(|| panic!("no circuit breaker line in:\n{logs}"));
    assert!(
        line.contains(&format!("channels/{}", demo.general)),
        "{line}"
    );
    assert!(line.contains("403"), "{line}");
}

#[tokio::test]
async fn after_its_cooldown_one_probe_goes_through_and_closes_the_breaker() {
    let (sim, demo) = sim();
    let mut config = config(&sim);
    config.breaker = BreakerConfig {
        threshold: 2,
        window: Duration::from_secs(60),
        cooldown: Duration::from_millis(300),
    };
    let discord = Discord::new(&config);
    let path = format!("/channels/{}/messages", demo.general);
    sim.inject_fault(RouteMatch::new("POST", &path), Fault::Status(404), 100);
    for _ in 0..2 {
        let error = discord.send(id(demo.general), &Reply::text("x")).await;
        assert_eq!(error.unwrap_err().status(), Some(404));
    }
    let open = discord
        .send(id(demo.general), &Reply::text("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(open, RestError::CircuitOpen { status: 404, .. }),
        "{open}"
    );
    assert_eq!(requests(&sim, "POST", &path).len(), 2);
    assert!(
        discord.probe().await.is_ok(),
        "other targets are still called"
    );

    sim.clear_faults();
    let sent = eventually("the breaker lets a probe through", || {
        let discord = discord.clone();
        let channel = id(demo.general);
        async move { discord.send(channel, &Reply::text("back")).await.ok() }
    })
    .await;
    assert_eq!(
        requests(&sim, "POST", &path).len(),
        3,
        "while open, calls fail without a request"
    );
    let message = sim.message(demo.general, sent.get()).expect("posted");
    assert_eq!(message.content, "back");
    discord
        .send(id(demo.general), &Reply::text("closed again"))
        .await
        .expect("the breaker is closed");
}

/// A breaker on `demo.general`'s messages opened by two 404s, with a short cooldown.
async fn opened_breaker(sim: &Sim, demo: &Demo) -> (Discord, String) {
    let mut config = config(sim);
    config.breaker = BreakerConfig {
        threshold: 2,
        window: Duration::from_secs(60),
        cooldown: Duration::from_millis(100),
    };
    let discord = Discord::new(&config);
    let path = format!("/channels/{}/messages", demo.general);
    sim.inject_fault(RouteMatch::new("POST", &path), Fault::Status(404), 2);
    for _ in 0..2 {
        let error = discord.send(id(demo.general), &Reply::text("x")).await;
        assert_eq!(error.unwrap_err().status(), Some(404));
    }
    let open = discord.send(id(demo.general), &Reply::text("x")).await;
    assert!(
        matches!(open, Err(RestError::CircuitOpen { .. })),
        "{open:?}"
    );
    (discord, path)
}

#[tokio::test]
async fn a_probe_answered_429_lets_the_breaker_probe_again_and_close() {
    let (sim, demo) = sim();
    let (discord, path) = opened_breaker(&sim, &demo).await;
    let limited = Fault::RateLimited {
        retry_after_secs: 0.01,
        global: false,
    };
    sim.inject_fault(RouteMatch::new("POST", &path), limited, 1);
    let sent = eventually("a probe gets through after the 429", || {
        let discord = discord.clone();
        let channel = id(demo.general);
        async move { discord.send(channel, &Reply::text("back")).await.ok() }
    })
    .await;
    assert_eq!(
        requests(&sim, "POST", &path)
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        vec![404, 404, 429, 200],
        "the probe's own retry after the 429 went out and closed the breaker"
    );
    assert!(sim.message(demo.general, sent.get()).is_some());
    discord
        .send(id(demo.general), &Reply::text("closed"))
        .await
        .expect("the breaker is closed");
}

#[tokio::test]
async fn a_probe_whose_caller_gave_up_lets_the_next_caller_probe() {
    let (sim, demo) = sim();
    let (discord, path) = opened_breaker(&sim, &demo).await;
    let gate = discord_sim::Gate::new();
    sim.inject_fault(RouteMatch::new("POST", &path), Fault::Gate(gate.clone()), 1);
    // Call until one call is the probe, held at the gate, then give that call up.
    let probe = loop {
        let call = tokio::spawn({
            let discord = discord.clone();
            let channel = id(demo.general);
            async move { discord.send(channel, &Reply::text("given up")).await }
        });
        eventually("the call ends or reaches the gate", || {
            let done = call.is_finished() || gate.arrived() > 0;
            async move { done.then_some(()) }
        })
        .await;
        if gate.arrived() > 0 {
            break call;
        }
        let refused = call.await.expect("call");
        assert!(
            matches!(refused, Err(RestError::CircuitOpen { .. })),
            "{refused:?}"
        );
    };
    probe.abort();
    assert!(probe.await.unwrap_err().is_cancelled());
    gate.open();
    discord
        .send(id(demo.general), &Reply::text("back"))
        .await
        .expect("the next caller probes and closes the breaker");
}

#[tokio::test]
async fn an_unreachable_discord_logs_no_interaction_or_webhook_token() {
    const TOKEN: &str = "aW50ZXJhY3Rpb246c2VjcmV0LXRva2Vu";
    // A port nobody listens on: every request fails to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let mut config = DiscordConfig::new("bot-token", Some(addr));
    config.base_backoff = Duration::from_millis(1);
    config.max_retries = 1;
    let discord = Discord::new(&config);
    discord.set_application_id(Id::new(42));
    let logs = testkit::logged(async {
        let errors = [
            discord
                .edit_original(TOKEN, &Reply::text("x"))
                .await
                .unwrap_err(),
            discord.delete_original(TOKEN).await.unwrap_err(),
            discord
                .follow_up(TOKEN, &Reply::text("x"))
                .await
                .unwrap_err(),
        ];
        for error in errors {
            assert!(matches!(error, RestError::Transport { .. }), "{error:?}");
            // As callers log it.
            tracing::error!(%error, source = ?std::error::Error::source(&error), "call failed");
        }
    })
    .await;
    assert!(logs.contains("discord unreachable"), "{logs}");
    assert!(logs.contains("call failed"), "{logs}");
    assert!(!logs.contains(TOKEN), "the token was logged:\n{logs}");
}

#[tokio::test]
async fn a_429_without_json_backs_off_exponentially() {
    let (sim, demo) = sim();
    let discord = Discord::new(&config(&sim));
    let path = format!("/channels/{}/messages", demo.general);
    sim.inject_fault(RouteMatch::new("POST", &path), Fault::HtmlRateLimited, 2);

    discord
        .send(id(demo.general), &Reply::text("after the ban"))
        .await
        .expect("posted once the pause is over");

    let posts = requests(&sim, "POST", &path);
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 429, 200]
    );
    let first = posts[1].at.duration_since(posts[0].at);
    let second = posts[2].at.duration_since(posts[1].at);
    let backoff = DiscordConfig::new("", None).ban_backoff;
    assert!(first >= backoff, "waited the first backoff: {first:?}");
    assert!(second >= backoff * 2, "then twice as long: {second:?}");
}

#[tokio::test]
async fn a_429_without_json_pauses_every_request() {
    let (sim, demo) = sim();
    let mut config = config(&sim);
    config.ban_backoff = Duration::from_millis(400);
    let discord = Discord::new(&config);
    let path = format!("/channels/{}/messages", demo.general);
    sim.inject_fault(RouteMatch::new("POST", &path), Fault::HtmlRateLimited, 1);
    let banned = tokio::spawn({
        let discord = discord.clone();
        let channel = id(demo.general);
        async move { discord.send(channel, &Reply::text("x")).await }
    });
    eventually("every request is paused", || {
        let paused = discord.paused().is_some();
        async move { paused.then_some(()) }
    })
    .await;
    discord.probe().await.expect("probe");
    banned.await.unwrap().expect("posted");
    let ban = requests(&sim, "POST", &path)[0].at;
    let probe = requests(&sim, "GET", "/users/@me")[0].at;
    assert!(
        probe.duration_since(ban) >= Duration::from_millis(400),
        "another route waited out the pause too"
    );
}

#[tokio::test]
async fn a_message_whose_answer_timed_out_is_not_posted_twice() {
    let (sim, demo) = sim();
    let mut config = config(&sim);
    config.request_timeout = Duration::from_millis(300);
    let discord = Discord::new(&config);
    let path = format!("/channels/{}/messages", demo.general);
    sim.inject_fault(
        RouteMatch::new("POST", &path),
        Fault::TimeoutAfterCommit(Duration::from_secs(1)),
        1,
    );

    let sent = discord
        .send(id(demo.general), &Reply::text("only once"))
        .await
        .expect("posted");

    let copies: Vec<_> = sim
        .messages(demo.general)
        .into_iter()
        .filter(|m| m.content == "only once")
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "the retry found the first one by its nonce"
    );
    assert_eq!(copies[0].id.get(), sent.get());
    assert_eq!(requests(&sim, "POST", &path).len(), 2, "it was retried");
}

#[tokio::test]
async fn a_channel_or_role_whose_answer_timed_out_is_looked_for_before_asking_again() {
    let (sim, demo) = sim();
    let mut config = config(&sim);
    config.request_timeout = Duration::from_millis(300);
    let discord = Discord::new(&config);
    let channels = format!("/guilds/{}/channels", demo.guild);
    let roles = format!("/guilds/{}/roles", demo.guild);
    for path in [&channels, &roles] {
        sim.inject_fault(
            RouteMatch::new("POST", path),
            Fault::TimeoutAfterCommit(Duration::from_secs(1)),
            1,
        );
    }

    let spec = ChannelSpec {
        name: "session-12".to_owned(),
        kind: ChannelKind::Text,
        topic: None,
        parent_id: Some(id(demo.category)),
        overwrites: Vec::new(),
    };
    let channel = discord
        .create_channel(id(demo.guild), &spec)
        .await
        .expect("created");
    let named: Vec<_> = sim
        .channels(demo.guild)
        .into_iter()
        .filter(|c| c.name == "session-12")
        .collect();
    assert_eq!(named.len(), 1, "one channel, not two");
    assert_eq!(named[0].id.get(), channel.get());
    assert_eq!(
        requests(&sim, "POST", &channels).len(),
        1,
        "not asked again"
    );

    let role = discord
        .create_role(id(demo.guild), "Session 12")
        .await
        .expect("created");
    let named: Vec<_> = sim
        .roles(demo.guild)
        .into_iter()
        .filter(|r| r.name == "Session 12")
        .collect();
    assert_eq!(named.len(), 1, "one role, not two");
    assert_eq!(named[0].id.get(), role.get());
    assert_eq!(requests(&sim, "POST", &roles).len(), 1);
}

#[tokio::test]
async fn a_channel_creation_refused_with_a_5xx_is_checked_then_asked_for_again() {
    let (sim, demo) = sim();
    let mut config = config(&sim);
    config.request_timeout = Duration::from_millis(300);
    let discord = Discord::new(&config);
    let channels = format!("/guilds/{}/channels", demo.guild);
    sim.inject_fault(RouteMatch::new("POST", &channels), Fault::Status(502), 1);
    let spec = ChannelSpec {
        name: "session-13".to_owned(),
        kind: ChannelKind::Voice,
        topic: None,
        parent_id: None,
        overwrites: Vec::new(),
    };
    discord
        .create_channel(id(demo.guild), &spec)
        .await
        .expect("created on the second try");
    assert_eq!(
        requests(&sim, "POST", &channels)
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        vec![502, 201]
    );
    assert_eq!(
        sim.channels(demo.guild)
            .iter()
            .filter(|c| c.name == "session-13")
            .count(),
        1
    );
}

/// The bot with one command, `hello`, that answers "hello", and one answered
/// interaction; the commands' registration is over.
async fn answered_interaction(
    sim: &Sim,
    demo: &Demo,
    config: DiscordConfig,
) -> (Discord, discord_sim::Interaction) {
    let discord = Discord::new(&config);
    let mut router = Router::new(discord.clone());
    router
        .command(
            CommandSpec::new("hello", "Says hello"),
            Arc::new(|_inv: Invocation| async move { Ok(Response::Message(Reply::text("hello"))) }),
        )
        .unwrap();
    // The bot runs until the test's runtime ends.
    let _bot = start_bot(bot_config(sim, config), router).await;
    registered(sim, &["hello"]).await;
    let interaction = sim
        .run_command(demo.alice, demo.general, "hello", serde_json::json!([]))
        .expect("run");
    interaction
        .response(Duration::from_secs(5))
        .await
        .expect("answered");
    (discord, interaction)
}

#[tokio::test]
async fn a_follow_up_whose_answer_timed_out_is_not_sent_again() {
    let (sim, demo) = sim();
    let mut config = config(&sim);
    config.request_timeout = Duration::from_millis(300);
    let (discord, interaction) = answered_interaction(&sim, &demo, config).await;
    sim.inject_fault(
        RouteMatch::new("POST", "/webhooks/"),
        Fault::TimeoutAfterCommit(Duration::from_secs(1)),
        1,
    );
    let error = discord
        .follow_up(interaction.token(), &Reply::text("one more thing"))
        .await
        .unwrap_err();
    assert!(matches!(error, RestError::Unconfirmed { .. }), "{error}");
    assert_eq!(requests(&sim, "POST", interaction.token()).len(), 1);
    assert_eq!(
        sim.messages(demo.general)
            .iter()
            .filter(|m| m.content == "one more thing")
            .count(),
        1,
        "it did land, once"
    );
}

#[tokio::test]
async fn an_interaction_callback_whose_answer_timed_out_is_not_answered_twice() {
    let (sim, demo) = sim();
    let mut config = config(&sim);
    config.request_timeout = Duration::from_millis(300);
    sim.inject_fault(
        RouteMatch::new("POST", "/interactions/"),
        Fault::TimeoutAfterCommit(Duration::from_secs(1)),
        1,
    );
    let (_discord, interaction) = answered_interaction(&sim, &demo, config).await;
    let reply = interaction
        .response(Duration::from_secs(5))
        .await
        .expect("answered");
    assert_eq!(reply.content.as_deref(), Some("hello"));
    eventually("the callback was sent again", || {
        let attempts = sim.interaction_callback_attempts(interaction.id());
        async move { (attempts == 2).then_some(()) }
    })
    .await;
    assert_eq!(sim.interaction_count_answered(interaction.id()), 1);
}

/// A limiter that counts what it lets through.
#[derive(Default)]
struct Counting(AtomicUsize);

impl GlobalLimiter for Counting {
    fn acquire(&self) -> discord::BoxFuture<'static, ()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

#[tokio::test]
async fn every_request_but_interaction_callbacks_asks_the_shared_global_limiter() {
    let (sim, demo) = sim();
    let limiter = Arc::new(Counting::default());
    let mut config = config(&sim);
    config.global_limiter = Some(limiter.clone());
    let (discord, interaction) = answered_interaction(&sim, &demo, config).await;
    assert_eq!(sim.interaction_count_answered(interaction.id()), 1);
    assert_eq!(
        limiter.0.load(Ordering::SeqCst),
        1,
        "registering the commands asked; answering the interaction did not"
    );
    discord
        .send(id(demo.general), &Reply::text("counted"))
        .await
        .unwrap();
    discord.probe().await.unwrap();
    assert_eq!(limiter.0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_guilds_roles_come_with_the_permissions_they_grant() {
    use discord_sim::model::{RoleSpec, permissions};
    let (sim, demo) = sim();
    let discord = Discord::new(&config(&sim));
    let moderators = sim
        .create_role(
            demo.guild,
            RoleSpec::new(
                "Moderators",
                permissions::BAN_MEMBERS | permissions::MANAGE_MESSAGES,
            ),
        )
        .unwrap();
    let players = sim
        .create_role(demo.guild, RoleSpec::new("Players", 0))
        .unwrap();

    let roles = discord.guild_roles(id(demo.guild)).await.expect("listed");
    let of = |role: discord_sim::Snowflake| {
        roles
            .iter()
            .find(|r| r.id.get() == role.get())
            .copied()
            .unwrap_or_else(|| panic!("role {role} listed: {roles:?}"))
    };
    assert_eq!(
        of(moderators).permissions,
        permissions::BAN_MEMBERS | permissions::MANAGE_MESSAGES
    );
    assert_eq!(of(players).permissions, 0);
    assert!(!of(players).managed);
    // `@everyone` shares the guild's id and carries its default permissions.
    assert_eq!(of(demo.guild).permissions, permissions::EVERYONE_DEFAULT);
}

/// A refused connection reported with its chain says the route, the request's
/// failure and the refusal, each once.
#[tokio::test]
async fn an_unreachable_discords_error_says_each_cause_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let mut config = DiscordConfig::new("bot-token", Some(addr));
    config.base_backoff = Duration::from_millis(1);
    config.max_retries = 0;
    let discord = Discord::new(&config);
    let error = discord.probe().await.unwrap_err();
    assert!(matches!(error, RestError::Transport { .. }), "{error:?}");
    let report = common::chain(&error);
    assert!(
        report.to_lowercase().contains("connection refused"),
        "{report}"
    );
    says_each_part_once(&report);
}
