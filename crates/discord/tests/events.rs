//! Gateway events at shutdown: the events already queued for a handler are delivered
//! before the bot stops, and a handler that does not finish is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Logs, bot_config, config, sim};
use discord::{Bot, BoxFuture, Discord, Event, EventHandler, EventKind, Router};
use testkit::eventually;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Reports each message it is handed, then waits for a permit before the next.
struct Slow {
    seen: mpsc::UnboundedSender<String>,
    permits: Arc<Semaphore>,
}

impl EventHandler for Slow {
    fn on_event(&self, event: Event) -> BoxFuture<'static, ()> {
        let (seen, permits) = (self.seen.clone(), Arc::clone(&self.permits));
        Box::pin(async move {
            if let Event::MessageCreate { content, .. } = event {
                let _ = seen.send(content);
                permits.acquire().await.expect("permits").forget();
            }
        })
    }
    fn kinds(&self) -> &[EventKind] {
        &[EventKind::MessageCreate]
    }
}

// A current-thread runtime: the subscriber set for this thread sees every task.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_waits_for_queued_events_and_reports_a_handler_that_does_not_finish() {
    let captured = Logs::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let (sim, demo) = sim();
    let (seen, mut handled) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(0));
    let handler = Arc::new(Slow {
        seen,
        permits: Arc::clone(&permits),
    });
    let mut config = bot_config(&sim, config(&sim));
    config.drain_timeout = Duration::from_millis(300);
    let bot = Bot::new(
        config,
        Router::new(Discord::new(&common::config(&sim))),
        vec![handler],
    );
    let status = bot.status();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(bot.run(shutdown.clone()));
    eventually("the shard is ready", || {
        let ready = status.is_ready();
        async move { ready.then_some(()) }
    })
    .await;
    for text in ["one", "two"] {
        sim.post_user_message(demo.general, demo.alice, text, Vec::new())
            .unwrap();
    }
    assert_eq!(handled.recv().await.as_deref(), Some("one"));
    // "one" may finish; "two" waits in the queue (sent before the shard's close, so it
    // is read first) and then never gets its permit.
    permits.add_permits(1);
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(
        handled.try_recv().ok().as_deref(),
        Some("two"),
        "the queued event was delivered before the bot stopped"
    );
    let logs = captured.text();
    assert!(
        logs.contains("event handlers did not finish their queued events"),
        "{logs}"
    );
}
