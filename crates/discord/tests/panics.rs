//! A handler that panics still answers: the user gets the internal-error reply, not
//! Discord's "did not respond", and the log says what panicked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Logs, bot_config, config, registered, sim, start_bot};
use discord::{CommandSpec, Discord, Invocation, Response, Router};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

// A current-thread runtime: the subscriber set for this thread sees every task.
#[tokio::test(flavor = "current_thread")]
async fn a_panicking_handler_answers_the_internal_error_reply() {
    let captured = Logs::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let (sim, demo) = sim();
    let mut router = Router::new(Discord::new(&config(&sim)));
    router
        .command(
            CommandSpec::new("boom", "Panics in its work"),
            Arc::new(|_inv: Invocation| async move {
                if true {
                    panic!("the dice fell off the table");
                }
                Ok(Response::Message(discord::Reply::text("never")))
            }),
        )
        .unwrap();
    router
        .command(
            CommandSpec::new("early", "Panics before its work begins"),
            Arc::new(|_inv: Invocation| -> std::future::Ready<_> { panic!("no work at all") }),
        )
        .unwrap();
    let bot = start_bot(bot_config(&sim, config(&sim)), router).await;
    registered(&sim, &["boom", "early"]).await;
    for name in ["boom", "early"] {
        let reply = sim
            .run_command(demo.bob, demo.general, name, json!([]))
            .unwrap()
            .response(WAIT)
            .await
            .unwrap();
        let content = reply.content.unwrap_or_default();
        assert!(
            content.contains("Something went wrong on our side"),
            "{name}: {content}"
        );
    }
    bot.stop().await.unwrap();
    let logs = captured.text();
    let line = logs
        .lines()
        .find(|l| l.contains("the dice fell off the table"))
        .unwrap_or_else(|| panic!("the panic is not logged:\n{logs}"));
    assert!(line.contains("ERROR") && line.contains("boom"), "{line}");
}
