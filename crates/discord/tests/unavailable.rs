//! A handler whose storage is down answers the user in plain words, and the metrics count
//! the interaction as an outage, not as answered well.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{bot_config, config, registered, sim, start_bot};
use discord::{CommandSpec, Discord, HandlerError, Invocation, Response, Router};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn an_answer_that_storage_is_down_counts_as_unavailable_not_ok() {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let (sim, demo) = sim();
    let mut router = Router::new(Discord::new(&config(&sim)));
    router
        .command(
            CommandSpec::new("roll", "Rolls dice"),
            Arc::new(|_inv: Invocation| async move {
                Err::<Response, _>(HandlerError::unavailable(
                    "Tavern can't reach its storage right now",
                ))
            }),
        )
        .unwrap();
    let bot = start_bot(bot_config(&sim, config(&sim)), router).await;
    registered(&sim, &["roll"]).await;
    let reply = sim
        .run_command(demo.bob, demo.general, "roll", json!([]))
        .unwrap()
        .response(WAIT)
        .await
        .unwrap();
    assert!(
        reply
            .content
            .unwrap_or_default()
            .contains("can't reach its storage"),
    );
    bot.stop().await.unwrap();
    let text = metrics.render();
    assert!(
        text.contains(r#"tavern_interactions_total{kind="command",outcome="unavailable"} 1"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"tavern_interactions_total{kind="command",outcome="ok"}"#),
        "{text}"
    );
}
