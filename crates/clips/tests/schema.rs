//! The migration against a real PostgreSQL: the catalog holds the seed's tables exactly,
//! plus Tavern's one addition (the clip index, table `clips`) as designed; the trigger
//! fires, pgcrypto is shared, and migrating again changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use clips::ClipsConfig;
use store::harness::TestPostgres;
use store::{FeatureMigrations, Postgres};
use testkit::World;
use testkit::catalog::Catalog;

type Column = (String, String, String, bool, Option<String>);

/// Tavern's addition to the seed's tables: the clip index.
const INDEX_TABLE: &str = "clips";
/// Tavern's second addition: the parts of a deep scan read concurrently.
const PARTS_TABLE: &str = "scan_run_parts";

fn is_addition(table: &str) -> bool {
    let table = table.strip_prefix("clips.").unwrap_or(table);
    table == INDEX_TABLE || table == PARTS_TABLE
}

/// The schema as the catalog holds it.
async fn catalog(pg: &Postgres) -> Catalog {
    Catalog::read(pg, clips::schema::SCHEMA).await
}

/// Every column of the schema: (table, column, type, NOT NULL, default).
async fn columns(pg: &Postgres) -> Vec<Column> {
    catalog(pg)
        .await
        .columns
        .into_iter()
        .map(|c| (c.table, c.name, c.ty, c.not_null, c.default))
        .collect()
}

/// The columns of one table.
async fn columns_of(pg: &Postgres, table: &str) -> Vec<Column> {
    columns(pg)
        .await
        .into_iter()
        .filter(|c| c.0 == table)
        .collect()
}

/// Asserts the constraints of one (schema-qualified) table: (name, definition).
async fn assert_constraints(pg: &Postgres, table: &str, expected: &[(&str, &str)]) {
    let actual = constraints(pg).await;
    let actual: Vec<(&str, &str)> = actual
        .iter()
        .filter(|(t, _, _)| t == table)
        .map(|(_, name, definition)| (name.as_str(), definition.as_str()))
        .collect();
    assert_eq!(actual, expected, "the constraints of {table}");
}

/// Every constraint: (schema-qualified table, name, definition).
async fn constraints(pg: &Postgres) -> Vec<(String, String, String)> {
    let catalog = catalog(pg).await;
    catalog
        .constraints
        .into_iter()
        .map(|k| {
            (
                format!("{}.{}", catalog.schema, k.table),
                k.name,
                k.definition,
            )
        })
        .collect()
}

/// Every index: (name, definition).
async fn indexes(pg: &Postgres) -> Vec<(String, String)> {
    catalog(pg)
        .await
        .indexes
        .into_iter()
        .map(|i| (i.name, i.definition))
        .collect()
}

/// The user triggers of `table`: (name, definition).
async fn triggers(pg: &Postgres, table: &str) -> Vec<(String, String)> {
    catalog(pg)
        .await
        .triggers
        .into_iter()
        .filter(|t| t.table == table)
        .map(|t| (t.name, t.definition))
        .collect()
}

async fn migrated() -> (TestPostgres, Postgres) {
    let server = TestPostgres::start().await;
    let pg = server.connect().await;
    pg.migrate(&clips::MIGRATIONS).await.expect("migrate");
    (server, pg)
}

fn col(table: &str, column: &str, ty: &str, not_null: bool, default: Option<&str>) -> Column {
    (
        table.into(),
        column.into(),
        ty.into(),
        not_null,
        default.map(Into::into),
    )
}

#[tokio::test]
async fn every_table_has_the_seeds_columns_types_nullability_and_defaults() {
    let (_server, pg) = migrated().await;

    let all = columns(&pg).await;
    let actual: Vec<Column> = all.iter().filter(|c| !is_addition(&c.0)).cloned().collect();

    const TZ: &str = "timestamp with time zone";
    const NO_TZ: &str = "timestamp without time zone";
    let expected = vec![
        col(
            "bot_channel_scan_runs",
            "id",
            "uuid",
            true,
            Some("gen_random_uuid()"),
        ),
        col("bot_channel_scan_runs", "channel_id", "text", true, None),
        col(
            "bot_channel_scan_runs",
            "after_message_id",
            "text",
            false,
            None,
        ),
        col(
            "bot_channel_scan_runs",
            "before_message_id",
            "text",
            false,
            None,
        ),
        col(
            "bot_channel_scan_runs",
            "status",
            "clips.scan_status",
            true,
            Some("'queued'::clips.scan_status"),
        ),
        col(
            "bot_channel_scan_runs",
            "messages_scanned",
            "bigint",
            true,
            Some("0"),
        ),
        col(
            "bot_channel_scan_runs",
            "messages_matched",
            "bigint",
            true,
            Some("0"),
        ),
        col(
            "bot_channel_scan_runs",
            "error_message",
            "text",
            false,
            None,
        ),
        col("bot_channel_scan_runs", "started_at", TZ, false, None),
        col("bot_channel_scan_runs", "finished_at", TZ, false, None),
        col(
            "bot_channel_scan_runs",
            "created_at",
            TZ,
            true,
            Some("now()"),
        ),
        col("bot_channels", "channel_id", "text", true, None),
        col("bot_channels", "guild_id", "text", true, None),
        col("bot_channels", "name", "text", false, None),
        col("bot_channels", "type", "text", false, None),
        col("bot_channels", "is_nsfw", "boolean", false, Some("false")),
        col("bot_channels", "is_reading", "boolean", true, Some("false")),
        col("bot_channels", "last_message_id", "text", false, None),
        col("bot_channels", "last_scanned_at", TZ, false, None),
        col("bot_channels", "last_activity_at", TZ, false, None),
        col("bot_channels", "message_count", "bigint", true, Some("0")),
        col(
            "bot_channels",
            "settings",
            "jsonb",
            true,
            Some("'{}'::jsonb"),
        ),
        col("bot_channels", "created_at", TZ, true, Some("now()")),
        col("bot_channels", "updated_at", TZ, true, Some("now()")),
        col("bot_guilds", "guild_id", "text", true, None),
        col("bot_guilds", "name", "text", true, None),
        col("bot_guilds", "icon", "text", false, None),
        col("bot_guilds", "owner_user_id", "text", false, None),
        col("bot_guilds", "joined_at", TZ, false, Some("now()")),
        col("bot_guilds", "last_seen_at", TZ, false, Some("now()")),
        col("guild_settings", "guild_id", "text", true, None),
        col(
            "guild_settings",
            "settings",
            "jsonb",
            true,
            Some("'{}'::jsonb"),
        ),
        col("guild_settings", "updated_at", TZ, false, Some("now()")),
        col("install_intents", "state", "text", true, None),
        col("install_intents", "user_id", "text", true, None),
        col("install_intents", "guild_id", "text", true, None),
        col(
            "install_intents",
            "created_at",
            NO_TZ,
            false,
            Some("CURRENT_TIMESTAMP"),
        ),
        col("install_intents", "expires_at", NO_TZ, true, None),
        // `serial`: an integer fed by its own sequence.
        col(
            "users",
            "id",
            "integer",
            true,
            Some("nextval('clips.users_id_seq'::regclass)"),
        ),
        col("users", "discord_user_id", "text", true, None),
        col("users", "username", "text", false, None),
        col("users", "global_name", "text", false, None),
        col("users", "avatar", "text", false, None),
        col("users", "last_login_at", TZ, false, None),
    ];
    assert_eq!(actual, expected);

    let mut tables: Vec<String> = actual.iter().map(|c| c.0.clone()).collect();
    tables.dedup();
    let mut seed: Vec<String> = clips::schema::TABLES
        .iter()
        .map(|t| t.to_string())
        .collect();
    seed.sort();
    assert_eq!(tables, seed, "exactly the seed's tables");
    let mut every: Vec<String> = all.iter().map(|c| c.0.clone()).collect();
    every.dedup();
    seed.push(INDEX_TABLE.to_owned());
    seed.push(PARTS_TABLE.to_owned());
    seed.sort();
    assert_eq!(every, seed, "and the two additions, nothing else");
}

#[tokio::test]
async fn keys_uniques_and_foreign_keys_with_their_delete_rules_are_the_seeds() {
    let (_server, pg) = migrated().await;

    let actual: Vec<(String, String, String)> = constraints(&pg)
        .await
        .into_iter()
        .filter(|(table, _, _)| !is_addition(table))
        .collect();

    let expected: Vec<(String, String, String)> = [
        (
            "clips.bot_channel_scan_runs",
            "bot_channel_scan_runs_channel_id_fkey",
            "FOREIGN KEY (channel_id) REFERENCES clips.bot_channels(channel_id) ON DELETE CASCADE",
        ),
        ("clips.bot_channel_scan_runs", "bot_channel_scan_runs_pkey", "PRIMARY KEY (id)"),
        (
            "clips.bot_channels",
            "bot_channels_guild_id_fkey",
            "FOREIGN KEY (guild_id) REFERENCES clips.bot_guilds(guild_id) ON DELETE CASCADE",
        ),
        ("clips.bot_channels", "bot_channels_pkey", "PRIMARY KEY (channel_id)"),
        (
            "clips.bot_guilds",
            "bot_guilds_owner_user_id_fkey",
            "FOREIGN KEY (owner_user_id) REFERENCES clips.users(discord_user_id) ON DELETE SET NULL",
        ),
        ("clips.bot_guilds", "bot_guilds_pkey", "PRIMARY KEY (guild_id)"),
        ("clips.guild_settings", "guild_settings_pkey", "PRIMARY KEY (guild_id)"),
        ("clips.install_intents", "install_intents_pkey", "PRIMARY KEY (state)"),
        (
            "clips.install_intents",
            "install_intents_user_id_fkey",
            "FOREIGN KEY (user_id) REFERENCES clips.users(discord_user_id) ON DELETE CASCADE",
        ),
        ("clips.users", "users_discord_user_id_key", "UNIQUE (discord_user_id)"),
        ("clips.users", "users_pkey", "PRIMARY KEY (id)"),
    ]
    .iter()
    .map(|(t, n, d)| (t.to_string(), n.to_string(), d.to_string()))
    .collect();
    assert_eq!(actual, expected);

    // The same delete rules as information_schema reports them.
    let rules: Vec<(String, String)> = sqlx::query_as(
        "SELECT constraint_name::text, delete_rule::text
         FROM information_schema.referential_constraints
         WHERE constraint_schema = 'clips' AND constraint_name NOT LIKE 'clips\\_%'
           AND constraint_name NOT LIKE 'scan\\_run\\_parts\\_%' ORDER BY 1",
    )
    .fetch_all(pg.pool())
    .await
    .expect("rules");
    let rules: Vec<(&str, &str)> = rules
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            ("bot_channel_scan_runs_channel_id_fkey", "CASCADE"),
            ("bot_channels_guild_id_fkey", "CASCADE"),
            ("bot_guilds_owner_user_id_fkey", "SET NULL"),
            ("install_intents_user_id_fkey", "CASCADE"),
        ]
    );
}

#[tokio::test]
async fn indexes_have_the_seeds_names_and_definitions() {
    let (_server, pg) = migrated().await;

    let actual: Vec<(String, String)> = indexes(&pg)
        .await
        .into_iter()
        .filter(|(_, definition)| {
            !definition.contains(&format!(" ON clips.{INDEX_TABLE} "))
                && !definition.contains(&format!(" ON clips.{PARTS_TABLE} "))
        })
        .collect();

    let expected: Vec<(String, String)> = [
        (
            "bot_channel_scan_runs_pkey",
            "CREATE UNIQUE INDEX bot_channel_scan_runs_pkey ON clips.bot_channel_scan_runs USING btree (id)",
        ),
        (
            "bot_channels_pkey",
            "CREATE UNIQUE INDEX bot_channels_pkey ON clips.bot_channels USING btree (channel_id)",
        ),
        (
            "bot_guilds_pkey",
            "CREATE UNIQUE INDEX bot_guilds_pkey ON clips.bot_guilds USING btree (guild_id)",
        ),
        (
            "guild_settings_pkey",
            "CREATE UNIQUE INDEX guild_settings_pkey ON clips.guild_settings USING btree (guild_id)",
        ),
        (
            "idx_bot_channels_guild",
            "CREATE INDEX idx_bot_channels_guild ON clips.bot_channels USING btree (guild_id)",
        ),
        (
            "idx_bot_channels_isreading",
            "CREATE INDEX idx_bot_channels_isreading ON clips.bot_channels USING btree (is_reading) WHERE (is_reading = true)",
        ),
        (
            "idx_bot_channels_last_message_id",
            "CREATE INDEX idx_bot_channels_last_message_id ON clips.bot_channels USING btree (last_message_id)",
        ),
        (
            "idx_bot_channels_work",
            "CREATE INDEX idx_bot_channels_work ON clips.bot_channels USING btree (guild_id, is_reading, last_scanned_at)",
        ),
        (
            "idx_bot_scan_runs_channel",
            "CREATE INDEX idx_bot_scan_runs_channel ON clips.bot_channel_scan_runs USING btree (channel_id, created_at DESC)",
        ),
        (
            "install_intents_pkey",
            "CREATE UNIQUE INDEX install_intents_pkey ON clips.install_intents USING btree (state)",
        ),
        (
            "users_discord_user_id_key",
            "CREATE UNIQUE INDEX users_discord_user_id_key ON clips.users USING btree (discord_user_id)",
        ),
        (
            "users_pkey",
            "CREATE UNIQUE INDEX users_pkey ON clips.users USING btree (id)",
        ),
    ]
    .iter()
    .map(|(n, d)| (n.to_string(), d.to_string()))
    .collect();
    assert_eq!(actual, expected);
}

#[tokio::test]
async fn scan_status_has_the_seeds_labels_in_order_and_matches_the_domain() {
    let (_server, pg) = migrated().await;

    let labels: Vec<String> = sqlx::query_scalar(
        "SELECT enumlabel::text FROM pg_enum
         WHERE enumtypid = 'clips.scan_status'::regtype ORDER BY enumsortorder",
    )
    .fetch_all(pg.pool())
    .await
    .expect("labels");

    assert_eq!(
        labels,
        ["queued", "running", "succeeded", "failed", "canceled"]
    );
    let domain: Vec<&str> = clips::ScanStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels, domain);
}

#[tokio::test]
async fn the_trigger_moves_updated_at_on_every_update_of_a_channel() {
    let (_server, pg) = migrated().await;
    let triggers = triggers(&pg, "bot_channels").await;
    assert_eq!(
        triggers,
        [(
            "trg_bot_channels_updated_at".to_string(),
            "CREATE TRIGGER trg_bot_channels_updated_at BEFORE UPDATE ON clips.bot_channels \
             FOR EACH ROW EXECUTE FUNCTION clips.bot_channels_set_updated_at()"
                .to_string()
        )]
    );
    sqlx::raw_sql(
        "INSERT INTO clips.bot_guilds (guild_id, name) VALUES ('1', 'g');
         INSERT INTO clips.bot_channels (channel_id, guild_id, created_at, updated_at)
         VALUES ('2', '1', '2000-01-01T00:00:00Z', '2000-01-01T00:00:00Z');",
    )
    .execute(pg.pool())
    .await
    .expect("seed rows");
    let old: chrono::DateTime<chrono::Utc> = "2000-01-01T00:00:00Z".parse().unwrap();

    sqlx::query("UPDATE clips.bot_channels SET name = 'renamed' WHERE channel_id = '2'")
        .execute(pg.pool())
        .await
        .expect("update");
    let (updated, created): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as(
            "SELECT updated_at, created_at FROM clips.bot_channels WHERE channel_id = '2'",
        )
        .fetch_one(pg.pool())
        .await
        .expect("read");
    assert!(updated > old, "updated_at moved: {updated}");
    assert_eq!(created, old, "created_at is left alone");

    // Even an UPDATE that sets updated_at itself gets the trigger's value.
    sqlx::query(
        "UPDATE clips.bot_channels SET updated_at = '2000-01-01T00:00:00Z' WHERE channel_id = '2'",
    )
    .execute(pg.pool())
    .await
    .expect("update");
    let again: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT updated_at FROM clips.bot_channels WHERE channel_id = '2'")
            .fetch_one(pg.pool())
            .await
            .expect("read");
    assert!(again > old, "{again}");
}

#[tokio::test]
async fn pgcrypto_lives_in_public_and_another_feature_can_ask_for_it_too() {
    let (_server, pg) = migrated().await;
    let schema: String = sqlx::query_scalar(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgcrypto'",
    )
    .fetch_one(pg.pool())
    .await
    .expect("pgcrypto installed");
    assert_eq!(schema, "public");

    // A second feature that needs pgcrypto too migrates in its own schema and uses it.
    const OTHER: FeatureMigrations = FeatureMigrations {
        schema: "other",
        steps: &[(
            1,
            "uses pgcrypto",
            "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
             CREATE TABLE secrets (h bytea NOT NULL DEFAULT digest('x', 'sha256'));
             INSERT INTO secrets DEFAULT VALUES;",
        )],
    };
    pg.migrate(&OTHER).await.expect("second feature migrates");
    let len: i32 = sqlx::query_scalar("SELECT length(h) FROM other.secrets")
        .fetch_one(pg.pool())
        .await
        .expect("digest");
    assert_eq!(len, 32);

    // And run ids still get their default.
    sqlx::raw_sql(
        "INSERT INTO clips.bot_guilds (guild_id, name) VALUES ('1', 'g');
         INSERT INTO clips.bot_channels (channel_id, guild_id) VALUES ('2', '1');
         INSERT INTO clips.bot_channel_scan_runs (channel_id) VALUES ('2');",
    )
    .execute(pg.pool())
    .await
    .expect("insert a run");
    let version: i32 = sqlx::query_scalar(
        "SELECT get_byte(uuid_send(id), 6) >> 4 FROM clips.bot_channel_scan_runs",
    )
    .fetch_one(pg.pool())
    .await
    .expect("uuid version");
    assert_eq!(version, 4, "a random (v4) uuid");
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let (_server, pg) = migrated().await;
    let before = (
        columns(&pg).await,
        constraints(&pg).await,
        indexes(&pg).await,
        catalog(&pg).await.triggers,
    );

    pg.migrate(&clips::MIGRATIONS).await.expect("migrate again");

    let after = (
        columns(&pg).await,
        constraints(&pg).await,
        indexes(&pg).await,
        catalog(&pg).await.triggers,
    );
    assert_eq!(before, after);
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM clips._sqlx_migrations ORDER BY version")
            .fetch_all(pg.pool())
            .await
            .expect("history");
    assert_eq!(
        applied,
        [1, 2, 3],
        "the seed's tables, the clip index, the scan parts"
    );
}

#[tokio::test]
async fn the_feature_carries_the_migrations_and_the_purge_job() {
    let world = World::new().await;

    let feature = clips::feature(&world.ctx, ClipsConfig::default());

    assert_eq!(feature.name, "clips");
    assert_eq!(feature.migrations.map(|m| m.schema), Some("clips"));
    let jobs: Vec<(&str, Duration)> = feature
        .jobs
        .iter()
        .map(|j| (j.name(), j.period()))
        .collect();
    assert_eq!(
        jobs,
        [(
            "purge_install_intents",
            std::time::Duration::from_secs(1800)
        )]
    );
    let services: Vec<&str> = feature.services.iter().map(|s| s.name()).collect();
    assert_eq!(services, [clips::services::SCAN_WORKER]);
    let kinds = feature
        .events
        .as_ref()
        .expect("the gateway handler")
        .kinds()
        .to_vec();
    assert_eq!(kinds, clips::events::KINDS);
}

#[tokio::test]
async fn the_clip_index_is_the_documented_addition_unique_per_attachment() {
    let (_server, pg) = migrated().await;

    let actual = columns_of(&pg, INDEX_TABLE).await;
    const TZ: &str = "timestamp with time zone";
    let t = INDEX_TABLE;
    assert_eq!(
        actual,
        [
            col(t, "attachment_id", "text", true, None),
            col(t, "message_id", "text", true, None),
            col(t, "channel_id", "text", true, None),
            col(t, "guild_id", "text", true, None),
            col(t, "author_id", "text", true, None),
            col(t, "author_name", "text", true, Some("''::text")),
            col(t, "posted_at", TZ, true, None),
            col(t, "filename", "text", true, None),
            col(t, "content_type", "text", false, None),
            col(t, "size_bytes", "bigint", true, None),
            col(t, "width", "integer", false, None),
            col(t, "height", "integer", false, None),
            col(t, "duration_secs", "double precision", false, None),
            col(t, "url", "text", true, None),
            col(t, "proxy_url", "text", false, None),
            col(t, "url_expires_at", TZ, false, None),
            col(t, "message_text", "text", true, Some("''::text")),
            col(t, "indexed_at", TZ, true, Some("now()")),
        ]
    );

    assert_constraints(
        &pg,
        "clips.clips",
        &[
            (
                "clips_channel_id_fkey",
                "FOREIGN KEY (channel_id) REFERENCES clips.bot_channels(channel_id) ON DELETE CASCADE"
            ),
            (
                "clips_guild_id_fkey",
                "FOREIGN KEY (guild_id) REFERENCES clips.bot_guilds(guild_id) ON DELETE CASCADE"
            ),
            ("clips_pkey", "PRIMARY KEY (attachment_id)"),
        ],
    )
    .await;

    let names: Vec<String> = indexes(&pg)
        .await
        .into_iter()
        .filter(|(_, d)| d.contains(" ON clips.clips "))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "clips_pkey",
            "idx_clips_author_posted",
            "idx_clips_channel_posted",
            "idx_clips_guild_posted",
            "idx_clips_message",
            "idx_clips_search",
        ]
    );

    // One row per attachment, whatever inserts it.
    sqlx::raw_sql(
        "INSERT INTO clips.bot_guilds (guild_id, name) VALUES ('1', 'g');
         INSERT INTO clips.bot_channels (channel_id, guild_id) VALUES ('2', '1');
         INSERT INTO clips.clips (attachment_id, message_id, channel_id, guild_id, author_id,
             posted_at, filename, size_bytes, url)
         VALUES ('9', '8', '2', '1', '7', now(), 'a.mp4', 1, 'u')",
    )
    .execute(pg.pool())
    .await
    .expect("a clip");
    let again = sqlx::query(
        "INSERT INTO clips.clips (attachment_id, message_id, channel_id, guild_id, author_id,
             posted_at, filename, size_bytes, url)
         VALUES ('9', '8', '2', '1', '7', now(), 'a.mp4', 1, 'u')",
    )
    .execute(pg.pool())
    .await;
    assert!(again.is_err(), "a second row for one attachment is refused");
    // Deleting the channel deletes its clips.
    sqlx::query("DELETE FROM clips.bot_channels WHERE channel_id = '2'")
        .execute(pg.pool())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM clips.clips")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_scan_parts_are_the_documented_addition_and_go_with_their_run() {
    let (_server, pg) = migrated().await;
    let actual = columns_of(&pg, PARTS_TABLE).await;
    let t = PARTS_TABLE;
    assert_eq!(
        actual,
        [
            col(t, "run_id", "uuid", true, None),
            col(t, "part", "integer", true, None),
            col(t, "after_message_id", "text", true, None),
            col(t, "before_message_id", "text", true, None),
            col(t, "done", "boolean", true, Some("false")),
        ]
    );
    assert_constraints(
        &pg,
        "clips.scan_run_parts",
        &[
            ("scan_run_parts_pkey", "PRIMARY KEY (run_id, part)"),
            (
                "scan_run_parts_run_id_fkey",
                "FOREIGN KEY (run_id) REFERENCES clips.bot_channel_scan_runs(id) ON DELETE CASCADE",
            ),
        ],
    )
    .await;
}
