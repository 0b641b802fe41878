use std::borrow::Cow;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, SqlStr};

use crate::StoreError;

/// One feature's PostgreSQL migrations, applied inside the feature's own schema.
///
/// Two seeds both define a `users` table, so each feature lives in a schema of its own
/// (`clips`, `meet`, ...). The migration SQL is written as in the seed, unqualified: it
/// runs with `search_path` set to the feature's schema, and the bookkeeping table
/// `_sqlx_migrations` lives in that schema too, so features migrate independently.
#[derive(Debug, Clone, Copy)]
pub struct FeatureMigrations {
    /// The PostgreSQL schema, e.g. `clips`. Must be a plain lowercase identifier.
    pub schema: &'static str,
    /// `(version, description, sql)`, in version order. Usually `include_str!`ed files.
    pub steps: &'static [(i64, &'static str, &'static str)],
}

impl FeatureMigrations {
    fn migrator(&self) -> Migrator {
        let migrations = self
            .steps
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect();
        let mut migrator = Migrator::with_migrations(migrations);
        migrator.create_schema(self.schema);
        migrator.dangerous_set_table_name(format!("{}._sqlx_migrations", self.schema));
        migrator
    }

    fn schema_is_plain_identifier(&self) -> bool {
        !self.schema.is_empty()
            && self
                .schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }
}

/// The query parameters the PostgreSQL driver reads (`options[...]` too). It ignores
/// any other with a WARN that carries the parameter's value, which may be a secret
/// (`sslpassword`): Tavern leaves such parameters out before the driver sees the URL,
/// and its configuration check names them, without their values
/// ([`unread_parameters`]).
const READ_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

fn is_read(key: &str) -> bool {
    READ_PARAMETERS.contains(&key) || key.starts_with("options[")
}

/// `url` split at its query: before it, its `&`-separated parameters, and its
/// fragment; `None` without a query.
fn query_parts(url: &str) -> Option<(&str, Vec<&str>, Option<&str>)> {
    let (base, query) = url.split_once('?')?;
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let pairs = query.split('&').filter(|pair| !pair.is_empty()).collect();
    Some((base, pairs, fragment))
}

fn key_of(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(key, _)| key)
}

/// The keys of `url`'s query parameters the driver does not read, in order.
pub fn unread_parameters(url: &str) -> Vec<String> {
    let Some((_, pairs, _)) = query_parts(url) else {
        return Vec::new();
    };
    pairs
        .into_iter()
        .map(key_of)
        .filter(|key| !is_read(key))
        .map(str::to_owned)
        .collect()
}

/// `url` without the query parameters the driver does not read.
fn read_parameters_only(url: &str) -> Cow<'_, str> {
    let Some((base, pairs, fragment)) = query_parts(url) else {
        return Cow::Borrowed(url);
    };
    let kept: Vec<&str> = pairs
        .into_iter()
        .filter(|pair| is_read(key_of(pair)))
        .collect();
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    Cow::Owned(out)
}

/// Whether `url` is one [`Postgres::connect`] can use (its form, `sslmode` and the
/// other parameters the driver reads), without connecting: for configuration checks,
/// which name the setting.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    connect_options(url).map(drop)
}

/// The URL's options, and unless it sets `client_min_messages` itself, no notices:
/// PostgreSQL's NOTICE lines ("schema … already exists, skipping" at every start's
/// migrations) would be logged as Tavern's own; warnings and errors still come.
fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let url = read_parameters_only(url);
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::BadUrl {
        what: "postgres",
        // The driver says "error with configuration: " once for each layer.
        reason: e.to_string().replace("error with configuration: ", ""),
    })?;
    Ok(if url.contains("client_min_messages") {
        options
    } else {
        options.options([("client_min_messages", "warning")])
    })
}

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(15);

/// The pool: at most 16 connections. A connection back from the pool is pinged only
/// when it sat idle for [`PING_AFTER_IDLE`] (a server restart or a dropped link shows
/// there, and the pool opens a fresh one): sqlx's default pings before every acquire,
/// a round trip more on every query of a busy server.
fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// How long [`why_no_connection`] waits for its one direct connection.
const DIAGNOSE_WITHIN: Duration = Duration::from_secs(3);

/// `error`, or, when it is only the pool timing out while it waits for a connection
/// (which says nothing of why), the error of one direct connection with `options`: the
/// server refusing, an unknown host, a bad password, a missing database. The pool's
/// error stays when that connection works (every connection is in use) or gets no
/// answer either.
async fn why_no_connection(options: &PgConnectOptions, error: sqlx::Error) -> StoreError {
    if !matches!(error, sqlx::Error::PoolTimedOut) {
        return StoreError::Postgres(error);
    }
    let direct = tokio::time::timeout(
        DIAGNOSE_WITHIN,
        <sqlx::PgConnection as sqlx::Connection>::connect_with(options),
    )
    .await;
    match direct {
        Ok(Err(cause)) => StoreError::Postgres(cause),
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
            StoreError::Postgres(error)
        }
        Err(_) => StoreError::Postgres(error),
    }
}

/// The advisory lock every Tavern process takes while it migrates (any number that no
/// other program on the database uses; these are the bytes of "tavernmg").
const MIGRATION_LOCK: i64 = 0x7461_7665_726e_6d67;

/// The shared PostgreSQL pool.
#[derive(Clone, Debug)]
pub struct Postgres {
    pool: PgPool,
}

impl Postgres {
    /// Connects and checks the server answers. Fails fast so the caller can report an
    /// unreachable database and retry with backoff.
    pub async fn connect(url: &str) -> Result<Postgres, StoreError> {
        let options = connect_options(url)?;
        match pool_options().connect_with(options.clone()).await {
            Ok(pool) => Ok(Postgres { pool }),
            Err(error) => Err(why_no_connection(&options, error).await),
        }
    }

    /// A pool that connects on first use: for commands and tests that may never touch
    /// PostgreSQL. A bad URL is still refused here.
    pub fn lazy(url: &str) -> Result<Postgres, StoreError> {
        let pool = pool_options().connect_lazy_with(connect_options(url)?);
        Ok(Postgres { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `SELECT 1`, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match sqlx::query("SELECT 1").execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(error) => Err(why_no_connection(&self.pool.connect_options(), error).await),
        }
    }

    /// Applies `migrations` in their schema; already-applied steps are skipped. How many
    /// steps this call applied (logged at `info` when some were, at `debug` otherwise).
    pub async fn migrate(&self, migrations: &FeatureMigrations) -> Result<usize, StoreError> {
        let schema = migrations.schema;
        if !migrations.schema_is_plain_identifier() {
            return Err(StoreError::Migrate {
                schema: schema.to_owned(),
                cause: sqlx::migrate::MigrateError::Source(
                    format!("schema name `{schema}` is not a plain lowercase identifier").into(),
                ),
            });
        }
        let mut conn = self.pool.acquire().await?;
        // Several processes starting together migrate the same schemas: one at a time,
        // or two `CREATE SCHEMA IF NOT EXISTS` collide in the catalog.
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        let result = Self::migrate_locked(&mut conn, migrations).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // Never hand a connection that may still hold the lock back to the pool:
            // closing it releases the lock.
            drop(conn.detach());
        }
        let applied = result?;
        unlocked?;
        if applied > 0 {
            tracing::info!(schema, applied, "postgres schema migrated");
        } else {
            tracing::debug!(schema, "postgres schema up to date");
        }
        Ok(applied)
    }

    /// The steps recorded as applied in `schema`: none before its first migration.
    async fn applied_steps(
        conn: &mut sqlx::PgConnection,
        schema: &str,
    ) -> Result<usize, StoreError> {
        let recorded: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
             WHERE schemaname = $1 AND tablename = '_sqlx_migrations')",
        )
        .bind(schema)
        .fetch_one(&mut *conn)
        .await?;
        if !recorded {
            return Ok(0);
        }
        Self::recorded_steps(conn, schema).await
    }

    /// The steps recorded as applied in `schema`, whose history table exists.
    async fn recorded_steps(
        conn: &mut sqlx::PgConnection,
        schema: &str,
    ) -> Result<usize, StoreError> {
        let count = format!("SELECT count(*) FROM {schema}._sqlx_migrations WHERE success");
        let steps: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .fetch_one(&mut *conn)
            .await?;
        Ok(usize::try_from(steps).unwrap_or(0))
    }

    async fn migrate_locked(
        conn: &mut sqlx::PgConnection,
        migrations: &FeatureMigrations,
    ) -> Result<usize, StoreError> {
        let schema = migrations.schema;
        let before = Self::applied_steps(conn, schema).await?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut *conn)
            .await?;
        let search_path = format!("SET search_path TO {schema}, public");
        sqlx::raw_sql(sqlx::AssertSqlSafe(search_path))
            .execute(&mut *conn)
            .await?;
        // `run_direct` rather than `run`: `run` is generic over `Acquire` and its future is not
        // provably `Send` inside a spawned task.
        let result = migrations
            .migrator()
            .run_direct(None, &mut *conn, false)
            .await;
        // The connection goes back to the pool: do not leak the search path.
        sqlx::raw_sql("RESET search_path")
            .execute(&mut *conn)
            .await?;
        result.map_err(|cause| StoreError::Migrate {
            schema: schema.to_owned(),
            cause,
        })?;
        // The run made the history table.
        let after = Self::recorded_steps(conn, schema).await?;
        Ok(after.saturating_sub(before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_the_driver_does_not_read_are_left_out_and_named() {
        let url =
            "postgres://u:p@db/t?sslmode=require&sslpassword=Sup3rSecret&options[search_path]=x#f";
        assert_eq!(unread_parameters(url), ["sslpassword"]);
        assert_eq!(
            read_parameters_only(url),
            "postgres://u:p@db/t?sslmode=require&options[search_path]=x#f"
        );
        assert_eq!(
            read_parameters_only("postgres://db/t?sslpassword=s"),
            "postgres://db/t"
        );
        assert!(unread_parameters("postgres://db/t").is_empty());
        assert_eq!(read_parameters_only("postgres://db/t"), "postgres://db/t");
    }

    #[test]
    fn a_malformed_url_or_sslmode_is_refused_without_connecting() {
        assert!(check_url("postgres://u@127.0.0.1:5432/t?sslmode=require").is_ok());
        for bad in [
            "postgres://u@127.0.0.1:5432/t?sslmode=bogus",
            "postgres://u@[::1:55432/t",
            "postgres://u@127.0.0.1:5432/t?port=abc",
        ] {
            let error = check_url(bad).expect_err(bad);
            assert!(
                matches!(
                    error,
                    StoreError::BadUrl {
                        what: "postgres",
                        ..
                    }
                ),
                "{bad}: {error}"
            );
        }
    }
}
