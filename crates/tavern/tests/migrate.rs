//! `tavern migrate` as an operator runs it, against a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use store::harness::TestPostgres;

/// The migrations of every feature, read from the features as the binary builds them.
fn migrations() -> Vec<store::FeatureMigrations> {
    let config = tavern::Config::from_sources(None, None, &std::collections::BTreeMap::new())
        .expect("the default configuration");
    let redis = store::Redis::lazy("redis://127.0.0.1:9/").expect("lazy redis");
    let postgres = store::Postgres::lazy("postgres://nobody@127.0.0.1:9/none").expect("lazy pg");
    tavern::app::command_features(&config, redis, postgres)
        .expect("features")
        .into_iter()
        .filter_map(|f| f.migrations)
        .collect()
}

fn run_migrate(postgres: &TestPostgres) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .arg("migrate")
        .env("TAVERN_DATABASE_URL", postgres.url())
        .env("TAVERN_LOG", "error")
        .output()
        .expect("run tavern migrate")
}

#[tokio::test]
async fn migrate_creates_every_feature_schema_and_running_it_again_changes_nothing() {
    let postgres = TestPostgres::start().await;

    let first = run_migrate(&postgres);
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for m in migrations() {
        let steps = m.steps.len();
        assert!(
            stdout.contains(&format!(
                "migrated schema {}: {steps} of its {steps} steps applied",
                m.schema
            )),
            "{stdout}"
        );
    }

    let pg = postgres.connect().await;
    let versions = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_tables WHERE tablename = '_sqlx_migrations'",
        )
        .fetch_one(pg.pool())
        .await
        .expect("count migration tables")
    };
    let histories = versions().await;
    assert_eq!(histories, migrations().len() as i64);
    for migrations in migrations() {
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables \
             WHERE schemaname = $1 AND tablename <> '_sqlx_migrations'",
        )
        .bind(migrations.schema)
        .fetch_one(pg.pool())
        .await
        .expect("count tables");
        assert!(tables > 0, "schema {} has no tables", migrations.schema);
    }
    for table in clips::schema::TABLES {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("clips.{table}"))
            .fetch_one(pg.pool())
            .await
            .expect("to_regclass");
        assert!(exists, "clips.{table} is missing");
    }

    let second = run_migrate(&postgres);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(versions().await, histories);
    // And says so: nothing applied the second time.
    let stdout = String::from_utf8_lossy(&second.stdout).into_owned();
    for m in migrations() {
        assert!(
            stdout.contains(&format!(
                "schema {}: up to date ({} steps)",
                m.schema,
                m.steps.len()
            )),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("migrated"), "{stdout}");
}
