//! What Tavern's default log filter lets through, as an operator reads the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use store::harness::TestPostgres;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// A PostgreSQL outage: sqlx's pool warns of each connection its on-release test finds
/// broken, which the default filter leaves out (Tavern tells the outage itself), while a
/// statement slower than sqlx's threshold is still a warning.
#[tokio::test]
async fn the_default_log_leaves_out_sqlx_s_connection_tests_in_an_outage_but_not_slow_statements() {
    let everything = testkit::Logs::default();
    let shown = testkit::Logs::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(everything.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(shown.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::EnvFilter::new(
                    tavern::config::DEFAULT_LOG_FILTER,
                )),
        );
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = TestPostgres::start().await;
    let postgres = server.connect().await;
    sqlx::query("SELECT pg_sleep(1.2)")
        .execute(postgres.pool())
        .await
        .unwrap();
    assert_eq!(
        shown.warnings("slow statement").len(),
        1,
        "{}",
        shown.text()
    );

    server.kill();
    // The pooled connection is broken: the query fails, and sqlx tests the connection
    // as it goes back to the pool.
    assert!(
        sqlx::query("SELECT 1")
            .execute(postgres.pool())
            .await
            .is_err()
    );
    testkit::eventually("sqlx tests the broken connection", || async {
        everything
            .text()
            .contains("error occurred while testing the connection on-release")
            .then_some(())
    })
    .await;
    assert!(!shown.text().contains("on-release"), "{}", shown.text());
}
