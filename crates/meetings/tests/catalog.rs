//! The migrated `meet` schema against the seed, read back from a real PostgreSQL catalog:
//! columns (types, lengths, nullability, defaults), keys, foreign keys with their delete
//! rules, index names, the audit partitioning and the `updated_at` triggers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::migrated;
use store::Postgres;
use testkit::catalog::Catalog;

/// The migrated `meet` schema, read back from the catalog.
async fn catalog(pg: &Postgres) -> Catalog {
    Catalog::read(pg, "meet").await
}

fn lines(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn every_table_has_the_seeds_columns_types_nullability_and_defaults() {
    let env = migrated().await;
    let catalog = catalog(&env.pg).await;
    let expected: [(&str, &str); 9] = [
        (
            "users",
            "user_id uuid NOT NULL DEFAULT gen_random_uuid()
             email character varying(255) NOT NULL
             display_name character varying(255) NOT NULL
             password_hash character varying(255)
             created_at timestamp with time zone NOT NULL DEFAULT now()
             updated_at timestamp with time zone NOT NULL DEFAULT now()
             last_login_at timestamp with time zone
             is_active boolean NOT NULL DEFAULT true
             metadata jsonb DEFAULT '{}'::jsonb",
        ),
        (
            "oauth_providers",
            "id bigint NOT NULL DEFAULT nextval('meet.oauth_providers_id_seq'::regclass)
             user_id uuid NOT NULL
             provider character varying(50) NOT NULL
             provider_user_id character varying(255) NOT NULL
             access_token_encrypted bytea
             refresh_token_encrypted bytea
             token_expires_at timestamp with time zone
             created_at timestamp with time zone NOT NULL DEFAULT now()
             updated_at timestamp with time zone NOT NULL DEFAULT now()",
        ),
        (
            "meetings",
            "meeting_id uuid NOT NULL DEFAULT gen_random_uuid()
             created_by_user_id uuid
             display_name character varying(255) NOT NULL
             meeting_code character varying(20) NOT NULL
             max_participants integer NOT NULL DEFAULT 100
             enable_e2e_encryption boolean NOT NULL DEFAULT true
             require_auth boolean NOT NULL DEFAULT false
             allow_recording boolean NOT NULL DEFAULT false
             waiting_room_enabled boolean NOT NULL DEFAULT false
             status character varying(20) NOT NULL DEFAULT 'scheduled'::character varying
             scheduled_start_time timestamp with time zone
             actual_start_time timestamp with time zone
             ended_at timestamp with time zone
             assigned_controller_id character varying(255)
             assigned_region character varying(50)
             created_at timestamp with time zone NOT NULL DEFAULT now()
             updated_at timestamp with time zone NOT NULL DEFAULT now()
             metadata jsonb DEFAULT '{}'::jsonb",
        ),
        (
            "meeting_participants",
            "id bigint NOT NULL DEFAULT nextval('meet.meeting_participants_id_seq'::regclass)
             meeting_id uuid NOT NULL
             participant_id uuid NOT NULL
             user_id uuid
             display_name character varying(255) NOT NULL
             joined_at timestamp with time zone NOT NULL DEFAULT now()
             left_at timestamp with time zone
             leave_reason character varying(50)
             ip_address inet
             user_agent text
             client_version character varying(50)
             total_duration_seconds integer DEFAULT 0",
        ),
        (
            "recordings",
            "recording_id uuid NOT NULL DEFAULT gen_random_uuid()
             meeting_id uuid NOT NULL
             started_by_user_id uuid
             started_at timestamp with time zone NOT NULL
             ended_at timestamp with time zone
             duration_seconds integer
             file_size_bytes bigint
             storage_path text NOT NULL
             storage_bucket character varying(255) NOT NULL
             video_codec character varying(50)
             audio_codec character varying(50)
             resolution character varying(20)
             status character varying(20) NOT NULL DEFAULT 'recording'::character varying
             error_message text
             is_public boolean NOT NULL DEFAULT false
             access_token character varying(255)
             created_at timestamp with time zone NOT NULL DEFAULT now()
             updated_at timestamp with time zone NOT NULL DEFAULT now()",
        ),
        (
            "meeting_controllers",
            "controller_id character varying(255) NOT NULL
             region character varying(50) NOT NULL
             endpoint text NOT NULL
             max_meetings integer NOT NULL
             current_meetings integer NOT NULL DEFAULT 0
             max_participants integer NOT NULL
             current_participants integer NOT NULL DEFAULT 0
             health_status character varying(20) NOT NULL DEFAULT 'healthy'::character varying
             last_heartbeat_at timestamp with time zone NOT NULL DEFAULT now()
             version character varying(50)
             created_at timestamp with time zone NOT NULL DEFAULT now()
             updated_at timestamp with time zone NOT NULL DEFAULT now()
             metadata jsonb DEFAULT '{}'::jsonb",
        ),
        (
            "media_handlers",
            "handler_id character varying(255) NOT NULL
             region character varying(50) NOT NULL
             endpoint text NOT NULL
             max_streams integer NOT NULL
             current_streams integer NOT NULL DEFAULT 0
             max_bitrate_mbps integer NOT NULL
             current_bitrate_mbps integer NOT NULL DEFAULT 0
             health_status character varying(20) NOT NULL DEFAULT 'healthy'::character varying
             last_heartbeat_at timestamp with time zone NOT NULL DEFAULT now()
             supports_transcoding boolean NOT NULL DEFAULT true
             supports_mixing boolean NOT NULL DEFAULT true
             supported_codecs text[] DEFAULT ARRAY['VP9'::text, 'AV1'::text, 'H264'::text, 'Opus'::text]
             created_at timestamp with time zone NOT NULL DEFAULT now()
             updated_at timestamp with time zone NOT NULL DEFAULT now()
             metadata jsonb DEFAULT '{}'::jsonb",
        ),
        (
            "audit_logs",
            "id bigint NOT NULL DEFAULT nextval('meet.audit_logs_id_seq'::regclass)
             event_type character varying(50) NOT NULL
             actor_user_id uuid
             actor_type character varying(50) NOT NULL
             target_type character varying(50)
             target_id character varying(255)
             action character varying(100) NOT NULL
             result character varying(20) NOT NULL
             error_message text
             ip_address inet
             user_agent text
             metadata jsonb DEFAULT '{}'::jsonb
             created_at timestamp with time zone NOT NULL DEFAULT now()",
        ),
        (
            "api_keys",
            "key_id uuid NOT NULL DEFAULT gen_random_uuid()
             user_id uuid NOT NULL
             key_hash character varying(255) NOT NULL
             key_prefix character varying(20) NOT NULL
             name character varying(255) NOT NULL
             scopes text[] NOT NULL
             is_active boolean NOT NULL DEFAULT true
             last_used_at timestamp with time zone
             expires_at timestamp with time zone
             created_at timestamp with time zone NOT NULL DEFAULT now()
             updated_at timestamp with time zone NOT NULL DEFAULT now()",
        ),
    ];
    assert_eq!(
        expected.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        meetings::schema::TABLES
    );
    // And nothing else: the catalog's own list (partitions aside) is the nine.
    let mut seeded: Vec<String> = expected.iter().map(|(t, _)| (*t).to_owned()).collect();
    seeded.sort();
    assert_eq!(catalog.tables(), seeded, "the tables of schema meet");
    for (table, want) in expected {
        assert_eq!(catalog.column_lines(table), lines(want), "table {table}");
    }
}

/// `(table, definition)` of every PK, UNIQUE and FK constraint in `meet`, sorted.
fn constraints(catalog: &Catalog) -> Vec<(String, String)> {
    let mut constraints: Vec<(String, String)> = catalog
        .constraints
        .iter()
        .filter(|k| matches!(k.kind.as_str(), "p" | "u" | "f"))
        .map(|k| (k.table.clone(), k.definition.clone()))
        .collect();
    constraints.sort();
    constraints
}

#[tokio::test]
async fn keys_uniques_and_foreign_keys_carry_the_seeds_delete_rules() {
    let env = migrated().await;
    let mut want: Vec<(String, String)> = [
        (
            "api_keys",
            "FOREIGN KEY (user_id) REFERENCES meet.users(user_id) ON DELETE CASCADE",
        ),
        ("api_keys", "PRIMARY KEY (key_id)"),
        ("api_keys", "UNIQUE (key_hash)"),
        (
            "audit_logs",
            "FOREIGN KEY (actor_user_id) REFERENCES meet.users(user_id) ON DELETE SET NULL",
        ),
        ("audit_logs", "PRIMARY KEY (id, created_at)"),
        ("media_handlers", "PRIMARY KEY (handler_id)"),
        ("meeting_controllers", "PRIMARY KEY (controller_id)"),
        (
            "meeting_participants",
            "FOREIGN KEY (meeting_id) REFERENCES meet.meetings(meeting_id) ON DELETE CASCADE",
        ),
        (
            "meeting_participants",
            "FOREIGN KEY (user_id) REFERENCES meet.users(user_id) ON DELETE SET NULL",
        ),
        ("meeting_participants", "PRIMARY KEY (id)"),
        (
            "meeting_participants",
            "UNIQUE (meeting_id, participant_id)",
        ),
        (
            "meetings",
            "FOREIGN KEY (created_by_user_id) REFERENCES meet.users(user_id) ON DELETE SET NULL",
        ),
        ("meetings", "PRIMARY KEY (meeting_id)"),
        ("meetings", "UNIQUE (meeting_code)"),
        (
            "oauth_providers",
            "FOREIGN KEY (user_id) REFERENCES meet.users(user_id) ON DELETE CASCADE",
        ),
        ("oauth_providers", "PRIMARY KEY (id)"),
        ("oauth_providers", "UNIQUE (provider, provider_user_id)"),
        (
            "recordings",
            "FOREIGN KEY (meeting_id) REFERENCES meet.meetings(meeting_id) ON DELETE CASCADE",
        ),
        (
            "recordings",
            "FOREIGN KEY (started_by_user_id) REFERENCES meet.users(user_id) ON DELETE SET NULL",
        ),
        ("recordings", "PRIMARY KEY (recording_id)"),
        ("users", "PRIMARY KEY (user_id)"),
        ("users", "UNIQUE (email)"),
    ]
    .iter()
    .map(|(t, d)| (t.to_string(), d.to_string()))
    .collect();
    want.sort();
    assert_eq!(constraints(&catalog(&env.pg).await), want);
}

#[tokio::test]
async fn the_seeds_indexes_exist_under_their_names_on_their_columns() {
    let env = migrated().await;
    let mut rows: Vec<(String, String)> = catalog(&env.pg)
        .await
        .indexes
        .into_iter()
        .filter(|i| i.name.starts_with("idx_"))
        .map(|i| (i.name, i.definition))
        .collect();
    rows.sort();
    let mut want = vec![
        ("idx_users_email", "users", "email"),
        ("idx_users_created_at", "users", "created_at"),
        ("idx_oauth_user_id", "oauth_providers", "user_id"),
        ("idx_meetings_created_by", "meetings", "created_by_user_id"),
        ("idx_meetings_meeting_code", "meetings", "meeting_code"),
        ("idx_meetings_status", "meetings", "status"),
        (
            "idx_meetings_scheduled_start",
            "meetings",
            "scheduled_start_time",
        ),
        (
            "idx_meetings_controller",
            "meetings",
            "assigned_controller_id",
        ),
        (
            "idx_participants_meeting_id",
            "meeting_participants",
            "meeting_id",
        ),
        (
            "idx_participants_user_id",
            "meeting_participants",
            "user_id",
        ),
        (
            "idx_participants_joined_at",
            "meeting_participants",
            "joined_at",
        ),
        ("idx_recordings_meeting_id", "recordings", "meeting_id"),
        (
            "idx_recordings_started_by",
            "recordings",
            "started_by_user_id",
        ),
        ("idx_recordings_status", "recordings", "status"),
        ("idx_controllers_region", "meeting_controllers", "region"),
        (
            "idx_controllers_health",
            "meeting_controllers",
            "health_status",
        ),
        (
            "idx_controllers_heartbeat",
            "meeting_controllers",
            "last_heartbeat_at",
        ),
        ("idx_handlers_region", "media_handlers", "region"),
        ("idx_handlers_health", "media_handlers", "health_status"),
        ("idx_audit_event_type", "audit_logs", "event_type"),
        ("idx_audit_actor", "audit_logs", "actor_user_id"),
        ("idx_audit_target", "audit_logs", "target_type, target_id"),
        ("idx_audit_created_at", "audit_logs", "created_at"),
        ("idx_api_keys_user_id", "api_keys", "user_id"),
        ("idx_api_keys_hash", "api_keys", "key_hash"),
    ]
    .into_iter()
    .map(|(name, table, cols)| {
        let only = if table == "audit_logs" { "ONLY " } else { "" };
        (
            name.to_owned(),
            format!("CREATE INDEX {name} ON {only}meet.{table} USING btree ({cols})"),
        )
    })
    .collect::<Vec<_>>();
    want.sort();
    assert_eq!(rows, want);
}

#[tokio::test]
async fn the_constraints_are_enforced_and_deletes_cascade_or_null_as_written() {
    let env = migrated().await;
    let pool = env.pg.pool();
    let user: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.users (email, display_name) VALUES ('a@example.org', 'A') RETURNING user_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let duplicate =
        sqlx::query("INSERT INTO meet.users (email, display_name) VALUES ('a@example.org', 'B')")
            .execute(pool)
            .await;
    assert!(duplicate.is_err(), "email is UNIQUE");
    let too_long =
        sqlx::query("INSERT INTO meet.meetings (display_name, meeting_code) VALUES ('x', $1)")
            .bind("C".repeat(21))
            .execute(pool)
            .await;
    assert!(too_long.is_err(), "meeting_code is VARCHAR(20)");

    let meeting: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.meetings (created_by_user_id, display_name, meeting_code) \
         VALUES ($1, 'Session zero', 'ABC-DEFG-HJK') RETURNING meeting_id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    let participant = uuid::Uuid::new_v4();
    let join = "INSERT INTO meet.meeting_participants (meeting_id, participant_id, user_id, display_name) \
                VALUES ($1, $2, $3, 'A')";
    sqlx::query(join)
        .bind(meeting)
        .bind(participant)
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    let twice = sqlx::query(join)
        .bind(meeting)
        .bind(participant)
        .bind(user)
        .execute(pool)
        .await;
    assert!(twice.is_err(), "(meeting_id, participant_id) is UNIQUE");
    sqlx::query(
        "INSERT INTO meet.recordings (meeting_id, started_by_user_id, started_at, storage_path, storage_bucket) \
         VALUES ($1, $2, NOW(), 'p', 'b')",
    )
    .bind(meeting)
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO meet.oauth_providers (user_id, provider, provider_user_id) VALUES ($1, 'github', '1')")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO meet.api_keys (user_id, key_hash, key_prefix, name, scopes) VALUES ($1, 'h', 'tv_', 'k', ARRAY['meetings:create'])")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO meet.audit_logs (event_type, actor_user_id, actor_type, action, result) VALUES ('user_login', $1, 'user', 'login', 'success')")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    let orphan = sqlx::query("INSERT INTO meet.recordings (meeting_id, started_at, storage_path, storage_bucket) VALUES ($1, NOW(), 'p', 'b')")
        .bind(uuid::Uuid::new_v4())
        .execute(pool)
        .await;
    assert!(orphan.is_err(), "recordings.meeting_id references meetings");

    // Deleting the user: its OAuth links and API keys go, the rest forgets it.
    sqlx::query("DELETE FROM meet.users WHERE user_id = $1")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(count("SELECT count(*) FROM meet.oauth_providers").await, 0);
    assert_eq!(count("SELECT count(*) FROM meet.api_keys").await, 0);
    assert_eq!(
        count("SELECT count(*) FROM meet.meetings WHERE created_by_user_id IS NULL").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM meet.meeting_participants WHERE user_id IS NULL").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM meet.recordings WHERE started_by_user_id IS NULL").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM meet.audit_logs WHERE actor_user_id IS NULL").await,
        1
    );

    // Deleting the meeting takes its participants and recordings along.
    sqlx::query("DELETE FROM meet.meetings WHERE meeting_id = $1")
        .bind(meeting)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM meet.meeting_participants").await,
        0
    );
    assert_eq!(count("SELECT count(*) FROM meet.recordings").await, 0);
}

#[tokio::test]
async fn supported_codecs_default_to_the_seeds_array() {
    let env = migrated().await;
    let codecs: Vec<String> = sqlx::query_scalar(
        "INSERT INTO meet.media_handlers (handler_id, region, endpoint, max_streams, max_bitrate_mbps) \
         VALUES ('mh-1', 'r1', 'https://mh-1', 10000, 10000) RETURNING supported_codecs",
    )
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    assert_eq!(codecs, ["VP9", "AV1", "H264", "Opus"]);
}

async fn audit_insert_at(pg: &Postgres, at: Option<&str>) -> String {
    let sql = "INSERT INTO meet.audit_logs (event_type, actor_type, action, result, created_at) \
               VALUES ('meeting_created', 'system', 'create', 'success', COALESCE($1::timestamptz, NOW())) \
               RETURNING tableoid::regclass::text";
    sqlx::query_scalar(sql)
        .bind(at)
        .fetch_one(pg.pool())
        .await
        .expect("audit insert")
}

#[tokio::test]
async fn audit_logs_is_range_partitioned_by_month_and_rows_of_today_and_of_january_2025_land() {
    let env = migrated().await;
    let (strategy, key): (String, String) = sqlx::query_as(
        "SELECT p.partstrat::text, pg_get_partkeydef(p.partrelid) FROM pg_partitioned_table p \
         WHERE p.partrelid = 'meet.audit_logs'::regclass",
    )
    .fetch_one(env.pg.pool())
    .await
    .expect("audit_logs is a partitioned table");
    assert_eq!(
        (strategy.as_str(), key.as_str()),
        ("r", "RANGE (created_at)")
    );
    let bound: String = sqlx::query_scalar(
        "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = 'meet.audit_logs_y2025m01'::regclass",
    )
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    // Printed in the session's time zone; the instants are UTC midnights.
    let utc: (String, String) = sqlx::query_as(
        "SELECT to_char(lower AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), to_char(upper AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') \
         FROM (SELECT (regexp_match($1, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS lower, \
                      (regexp_match($1, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper) b",
    )
    .bind(&bound)
    .fetch_one(env.pg.pool())
    .await
    .unwrap();
    assert_eq!(
        utc,
        ("2025-01-01 00:00".to_owned(), "2025-02-01 00:00".to_owned()),
        "{bound}"
    );

    assert_eq!(
        audit_insert_at(&env.pg, Some("2025-01-15T10:00:00Z")).await,
        "meet.audit_logs_y2025m01"
    );
    // Today has no partition of its own until one is made: the default partition takes it.
    assert_eq!(
        audit_insert_at(&env.pg, None).await,
        "meet.audit_logs_default"
    );
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM meet.audit_logs")
        .fetch_one(env.pg.pool())
        .await
        .unwrap();
    assert_eq!(total, 2);
}

#[tokio::test]
async fn ensuring_a_month_partition_moves_its_rows_out_of_the_default_and_is_idempotent() {
    let env = migrated().await;
    let pool = env.pg.pool();
    assert_eq!(
        audit_insert_at(&env.pg, Some("2031-03-10T00:00:00Z")).await,
        "meet.audit_logs_default"
    );
    assert_eq!(
        audit_insert_at(&env.pg, Some("2031-04-01T00:00:00Z")).await,
        "meet.audit_logs_default"
    );

    let ensure = "SELECT meet.audit_logs_ensure_partition($1::date)";
    for _ in 0..2 {
        let name: String = sqlx::query_scalar(ensure)
            .bind("2031-03-17")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(name, "audit_logs_y2031m03");
    }
    let placed: Vec<(String, String)> = sqlx::query_as(
        "SELECT tableoid::regclass::text, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') \
         FROM meet.audit_logs ORDER BY created_at",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        placed,
        [
            (
                "meet.audit_logs_y2031m03".to_owned(),
                "2031-03-10".to_owned()
            ),
            (
                "meet.audit_logs_default".to_owned(),
                "2031-04-01".to_owned()
            ),
        ]
    );
    assert_eq!(
        audit_insert_at(&env.pg, Some("2031-03-31T23:59:59Z")).await,
        "meet.audit_logs_y2031m03"
    );
    // The new partition carries the parent's indexes.
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'meet' AND tablename = 'audit_logs_y2031m03'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(indexes, 5, "primary key and the four idx_audit_* indexes");
}

#[tokio::test]
async fn updated_at_triggers_fire_on_every_table_that_has_the_column() {
    let env = migrated().await;
    let pool = env.pg.pool();
    let catalog = catalog(&env.pg).await;
    let mut with_updated_at: Vec<String> = catalog
        .columns
        .iter()
        .filter(|c| c.name == "updated_at")
        .map(|c| c.table.clone())
        .collect();
    with_updated_at.sort();
    with_updated_at.dedup();
    let mut triggered: Vec<String> = catalog.triggers.iter().map(|t| t.table.clone()).collect();
    triggered.sort();
    triggered.dedup();
    assert_eq!(
        with_updated_at,
        [
            "api_keys",
            "media_handlers",
            "meeting_controllers",
            "meetings",
            "oauth_providers",
            "recordings",
            "users"
        ]
    );
    assert_eq!(triggered, with_updated_at);

    // One row per table, stamped in the past, then touched.
    let old = "2000-01-01T00:00:00Z";
    let user: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.users (email, display_name, updated_at) VALUES ('t@example.org', 'T', $1::timestamptz) RETURNING user_id",
    )
    .bind(old)
    .fetch_one(pool)
    .await
    .unwrap();
    let meeting: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO meet.meetings (display_name, meeting_code, updated_at) VALUES ('m', 'ZZZ-ZZZZ-ZZZ', $1::timestamptz) RETURNING meeting_id",
    )
    .bind(old)
    .fetch_one(pool)
    .await
    .unwrap();
    let inserts = [
        "INSERT INTO meet.oauth_providers (user_id, provider, provider_user_id, updated_at) VALUES ($1, 'google', 'g', $2::timestamptz)",
        "INSERT INTO meet.api_keys (user_id, key_hash, key_prefix, name, scopes, updated_at) VALUES ($1, 'kh', 'p', 'n', ARRAY['meetings:read'], $2::timestamptz)",
    ];
    for sql in inserts {
        sqlx::query(sql)
            .bind(user)
            .bind(old)
            .execute(pool)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO meet.recordings (meeting_id, started_at, storage_path, storage_bucket, updated_at) VALUES ($1, NOW(), 'p', 'b', $2::timestamptz)")
        .bind(meeting)
        .bind(old)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO meet.meeting_controllers (controller_id, region, endpoint, max_meetings, max_participants, updated_at) VALUES ('mc', 'r', 'e', 1, 1, $1::timestamptz)")
        .bind(old)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO meet.media_handlers (handler_id, region, endpoint, max_streams, max_bitrate_mbps, updated_at) VALUES ('mh', 'r', 'e', 1, 1, $1::timestamptz)")
        .bind(old)
        .execute(pool)
        .await
        .unwrap();

    for table in &with_updated_at {
        let touch = format!("UPDATE meet.{table} SET created_at = created_at");
        sqlx::query(sqlx::AssertSqlSafe(touch))
            .execute(pool)
            .await
            .unwrap();
        let fresh: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT bool_and(updated_at > '2000-01-02'::timestamptz) AND count(*) = 1 FROM meet.{table}"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(fresh, "{table}.updated_at was not refreshed by UPDATE");
    }
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let env = migrated().await;
    let before = catalog(&env.pg).await;

    env.pg
        .migrate(&meetings::MIGRATIONS)
        .await
        .expect("second migration");

    let applied: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, description FROM meet._sqlx_migrations ORDER BY version")
            .fetch_all(env.pg.pool())
            .await
            .unwrap();
    assert_eq!(
        applied,
        [
            (1, "initial_schema".to_owned()),
            (2, "add_indexes".to_owned()),
            (3, "add_triggers".to_owned()),
        ]
    );
    let after = catalog(&env.pg).await;
    assert_eq!(constraints(&after), constraints(&before));
    assert_eq!(
        after.column_lines("meetings"),
        before.column_lines("meetings")
    );
}
