//! Per-feature migrations against a real PostgreSQL server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use store::FeatureMigrations;
use store::harness::TestPostgres;

const A: FeatureMigrations = FeatureMigrations {
    schema: "alpha",
    steps: &[(
        1,
        "users",
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL);",
    )],
};
const B: FeatureMigrations = FeatureMigrations {
    schema: "beta",
    steps: &[
        (1, "users", "CREATE TABLE users (id UUID PRIMARY KEY);"),
        (2, "email", "ALTER TABLE users ADD COLUMN email TEXT;"),
    ],
};

#[tokio::test]
async fn two_features_each_get_their_own_users_table_and_migrate_idempotently() {
    let server = TestPostgres::start().await;
    let pg = server.connect().await;

    assert_eq!(pg.migrate(&A).await.expect("migrate alpha"), 1);
    assert_eq!(pg.migrate(&B).await.expect("migrate beta"), 2);
    assert_eq!(pg.migrate(&A).await.expect("migrating again is a no-op"), 0);
    assert_eq!(pg.migrate(&B).await.expect("migrating again is a no-op"), 0);

    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, column_name::text FROM information_schema.columns \
         WHERE table_name = 'users' ORDER BY table_schema, ordinal_position",
    )
    .fetch_all(pg.pool())
    .await
    .expect("columns");
    let expected = [
        ("alpha", "id"),
        ("alpha", "name"),
        ("beta", "id"),
        ("beta", "email"),
    ];
    let columns: Vec<(&str, &str)> = columns
        .iter()
        .map(|(s, c)| (s.as_str(), c.as_str()))
        .collect();
    assert_eq!(columns, expected);

    // The search path used for migrations does not leak into pooled connections.
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(pg.pool())
        .await
        .expect("show");
    assert!(!path.contains("alpha") && !path.contains("beta"), "{path}");
}

#[tokio::test]
async fn a_broken_migration_is_an_error_naming_its_schema_and_leaves_nothing_half_done() {
    let server = TestPostgres::start().await;
    let pg = server.connect().await;
    const BROKEN: FeatureMigrations = FeatureMigrations {
        schema: "gamma",
        steps: &[(1, "broken", "CREATE TABLE t (id INT); CREATE TABLE oops (;")],
    };
    let err = pg.migrate(&BROKEN).await.expect_err("syntax error");
    assert!(err.to_string().contains("gamma"), "{err}");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('gamma.t') IS NOT NULL")
        .fetch_one(pg.pool())
        .await
        .expect("query");
    assert!(!exists, "a failed migration step rolls back");
}

#[tokio::test]
async fn processes_starting_together_migrate_the_same_schemas_at_once_without_failing() {
    let server = TestPostgres::start().await;
    // Each `tavern serve` migrates at start; several processes start together.
    let mut processes = Vec::new();
    for _ in 0..6 {
        processes.push(store::Postgres::connect(&server.url()).await.expect("pool"));
    }
    let runs: Vec<_> = processes
        .iter()
        .cloned()
        .map(|pg| {
            tokio::spawn(async move {
                pg.migrate(&A).await?;
                pg.migrate(&B).await
            })
        })
        .collect();
    for run in runs {
        run.await
            .expect("join")
            .expect("migrating at the same time succeeds");
    }
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM beta._sqlx_migrations")
        .fetch_one(processes[0].pool())
        .await
        .expect("count");
    assert_eq!(versions, 2, "each step applied once");
}

/// Pooled connections get no NOTICE messages (migrations' "already exists, skipping"
/// would be logged at every start), unless the URL asks for them.
#[tokio::test]
async fn connections_skip_notices_unless_the_url_asks_for_them() {
    let server = TestPostgres::start().await;
    let level = |pg: store::Postgres| async move {
        sqlx::query_scalar::<_, String>("SHOW client_min_messages")
            .fetch_one(pg.pool())
            .await
            .expect("show")
    };
    assert_eq!(level(server.connect().await).await, "warning");
    let url = server.url();
    let joiner = if url.contains('?') { '&' } else { '?' };
    let asked = format!("{url}{joiner}options=-c%20client_min_messages%3Dnotice");
    let pg = store::Postgres::connect(&asked).await.expect("pool");
    assert_eq!(level(pg).await, "notice");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_with_why_it_could_not_be_reached() {
    // Nothing listens on port 9: the pool only times out, the reason is the refusal.
    let error = store::Postgres::connect("postgres://nobody@127.0.0.1:9/none")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("Connection refused"), "{text}");
    assert!(error.is_transient(), "{text}");

    // The same from a pool made before the server went away.
    let lazy = store::Postgres::lazy("postgres://nobody@127.0.0.1:9/none").unwrap();
    let text = lazy.ping().await.unwrap_err().to_string();
    assert!(text.contains("Connection refused"), "{text}");
}

/// What PostgreSQL refuses is said as it says it, with its SQLSTATE code, not with the
/// line of PostgreSQL's own source the driver adds.
#[tokio::test]
async fn a_refused_connection_says_what_postgresql_said_and_its_code() {
    let server = TestPostgres::start().await;
    let url = server.url();
    let (base, _) = url.rsplit_once('/').expect("a database in the url");
    let error = store::Postgres::connect(&format!("{base}/no_such_database"))
        .await
        .expect_err("no such database");
    let said = error.to_string();
    assert!(
        said.contains("database \"no_such_database\" does not exist (SQLSTATE 3D000)"),
        "{said}"
    );
    assert!(!said.contains(" at line "), "{said}");
}
