//! Which kind of Tavern wrote the data in its stores, so sandbox mode can tell when it
//! was pointed at a real community's Redis or PostgreSQL.
//!
//! Every start marks the stores with its mode: the Redis key `tavern:mode` and the row
//! of `tavern.instance` in PostgreSQL (the core feature's schema) hold `discord` or
//! `sandbox`. A Tavern connected to Discord always writes `discord`. Sandbox mode
//! writes `sandbox` only into stores that are empty or already its own; it refuses to
//! start (exit 2, before writing any demo data) when a store holds `discord`, and when
//! a store holds data but no mark (written before marks existed, or by something else)
//! it runs but writes none of its demo data there, saying so in one warning line. A
//! Tavern connected to Discord takes over stores a sandbox marked (the mark becomes
//! `discord`) and says so in one warning line: the demo data stays. In PostgreSQL "data" means a row in
//! any table of any schema but Tavern's own bookkeeping; in Redis, any key outside
//! `tavern:` (sessions, logins, locks) the sandbox itself may have written first.
//!
//! While it runs, a Tavern whose start-up found Redis its own writes the mark again if
//! Redis loses it (a restart without persistence), never over another mark; so the
//! next start finds the data written since then to be its own.

use std::fmt;

use store::{Postgres, Redis, StoreError, redis, sqlx};

/// The Redis key of the mark.
pub const MODE_KEY: &str = "tavern:mode";

/// The core feature's PostgreSQL schema: the mark.
pub const MIGRATIONS: store::FeatureMigrations = store::FeatureMigrations {
    schema: "tavern",
    steps: &[(
        1,
        "instance",
        "CREATE TABLE instance (
            id boolean PRIMARY KEY DEFAULT true CHECK (id),
            mode text NOT NULL CHECK (mode IN ('sandbox', 'discord')),
            marked_at timestamptz NOT NULL DEFAULT now()
        );",
    )],
};

const READ_MODE: &str = "SELECT mode FROM tavern.instance";
const MARK_SANDBOX: &str =
    "INSERT INTO tavern.instance (mode) VALUES ('sandbox') ON CONFLICT (id) DO NOTHING";
/// Marks `discord`, answering the mark it found (no row when there was none): the
/// data-modifying CTE runs on the snapshot the `SELECT` reads.
const MARK_DISCORD: &str = "WITH found AS (SELECT mode FROM tavern.instance), \
     marked AS (INSERT INTO tavern.instance (mode) VALUES ('discord') \
     ON CONFLICT (id) DO UPDATE SET mode = 'discord', marked_at = now()) \
     SELECT mode FROM found";
const DATA_TABLES: &str = "SELECT schemaname, tablename FROM pg_catalog.pg_tables \
     WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'tavern') \
     AND tablename <> '_sqlx_migrations'";

/// How this Tavern runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Against the in-process fake Discord.
    Sandbox,
    /// Connected to Discord with a bot token.
    Discord,
}

/// A store that holds data this mode did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    /// Marked by a Tavern connected to Discord (found by the sandbox).
    Discord(&'static str),
    /// Not marked, but not empty either (found by the sandbox).
    Unmarked(&'static str),
    /// Marked by the sandbox (found by a Tavern connected to Discord, which takes the
    /// store over).
    Sandbox(&'static str),
}

impl Foreign {
    /// The store holding the data: "Redis" or "PostgreSQL".
    pub fn store(&self) -> &'static str {
        match self {
            Foreign::Discord(store) | Foreign::Unmarked(store) | Foreign::Sandbox(store) => store,
        }
    }
}

impl fmt::Display for Foreign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Foreign::Discord(store) => {
                write!(f, "{store} holds data of a Tavern connected to Discord")
            }
            Foreign::Unmarked(store) => write!(f, "{store} holds data sandbox mode did not write"),
            Foreign::Sandbox(store) => write!(f, "{store} holds a sandbox's data"),
        }
    }
}

/// Marks Redis with `mode`; reports Redis if its data is not the mode's own (in
/// sandbox mode), or was a sandbox's (connected to Discord).
pub async fn mark_redis(redis: &Redis, mode: Mode) -> Result<Option<Foreign>, StoreError> {
    let mut conn = redis.conn();
    if mode == Mode::Discord {
        let found: Option<String> = redis::cmd("SET")
            .arg(MODE_KEY)
            .arg("discord")
            .arg("GET")
            .query_async(&mut conn)
            .await?;
        return Ok((found.as_deref() == Some("sandbox")).then_some(Foreign::Sandbox("Redis")));
    }
    let mark: Option<String> = redis::cmd("GET")
        .arg(MODE_KEY)
        .query_async(&mut conn)
        .await?;
    match mark.as_deref() {
        Some("sandbox") => return Ok(None),
        Some(_) => return Ok(Some(Foreign::Discord("Redis"))),
        None => {}
    }
    // Any key of a feature (outside `tavern:`) means someone was here before.
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if keys.iter().any(|k| !k.starts_with("tavern:")) {
            return Ok(Some(Foreign::Unmarked("Redis")));
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    redis::cmd("SET")
        .arg(MODE_KEY)
        .arg("sandbox")
        .arg("NX")
        .query_async::<()>(&mut conn)
        .await?;
    Ok(None)
}

/// How often a running Tavern whose start-up made Redis its own looks that the mark is
/// still there ([`keep_redis_marked`]).
pub const KEEP_MARKED_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes `mode`'s mark into Redis again if Redis lost it (it restarted without
/// persistence, or was flushed) while this Tavern runs on it, so its next start finds
/// its own data marked instead of taking it for someone else's. Never writes over a
/// mark that is there (`SET NX`), so another Tavern's mark stays; only for a Tavern
/// whose start-up found Redis its own. True when the mark was missing and is written.
pub async fn keep_redis_marked(redis: &Redis, mode: Mode) -> Result<bool, StoreError> {
    let value = match mode {
        Mode::Sandbox => "sandbox",
        Mode::Discord => "discord",
    };
    let written: Option<String> = redis::cmd("SET")
        .arg(MODE_KEY)
        .arg(value)
        .arg("NX")
        .query_async(&mut redis.conn())
        .await?;
    Ok(written.is_some())
}

/// Marks PostgreSQL (migrated, so `tavern.instance` exists) with `mode`; reports
/// PostgreSQL if its data is not the mode's own (in sandbox mode), or was a sandbox's
/// (connected to Discord).
pub async fn mark_postgres(pg: &Postgres, mode: Mode) -> Result<Option<Foreign>, StoreError> {
    let pool = pg.pool();
    if mode == Mode::Discord {
        let found: Option<String> = sqlx::query_scalar(MARK_DISCORD)
            .fetch_optional(pool)
            .await?;
        return Ok((found.as_deref() == Some("sandbox")).then_some(Foreign::Sandbox("PostgreSQL")));
    }
    let mark: Option<String> = sqlx::query_scalar(READ_MODE).fetch_optional(pool).await?;
    match mark.as_deref() {
        Some("sandbox") => return Ok(None),
        Some(_) => return Ok(Some(Foreign::Discord("PostgreSQL"))),
        None => {}
    }
    let tables: Vec<(String, String)> = sqlx::query_as(DATA_TABLES).fetch_all(pool).await?;
    for (schema, table) in tables {
        let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let any_row = format!(
            "SELECT EXISTS (SELECT 1 FROM {}.{})",
            quoted(&schema),
            quoted(&table)
        );
        let has_rows: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(any_row))
            .fetch_one(pool)
            .await?;
        if has_rows {
            return Ok(Some(Foreign::Unmarked("PostgreSQL")));
        }
    }
    sqlx::query(MARK_SANDBOX).execute(pool).await?;
    Ok(None)
}

/// Sandbox mode found stores holding data it did not write, and starts nothing on them:
/// its fake Discord, demo users and demo Meetup tokens would overwrite a real
/// community's.
#[derive(Debug, thiserror::Error)]
#[error(
    "sandbox mode refuses to start on a real community's data: {found}. Point {keys} at stores of their own (empty ones become the sandbox's), or set TAVERN_DISCORD_TOKEN to connect to Discord"
)]
pub struct RefusedStores {
    found: String,
    keys: String,
}

impl RefusedStores {
    /// The refusal for the `foreign` stores, naming them with their URLs (`redis_url`
    /// and `database_url`, already without their passwords).
    pub fn new(foreign: &[Foreign], redis_url: &str, database_url: &str) -> Self {
        let (found, keys): (Vec<String>, Vec<&str>) = foreign
            .iter()
            .map(|f| match f.store() {
                "Redis" => (format!("{f} ({redis_url})"), "TAVERN_REDIS_URL (redis_url)"),
                _ => (
                    format!("{f} ({database_url})"),
                    "TAVERN_DATABASE_URL (database_url)",
                ),
            })
            .unzip();
        Self {
            found: found.join("; "),
            keys: keys.join(" and "),
        }
    }
}

/// Marks both stores and returns those holding data this mode did not write: in
/// sandbox mode, another's (the sandbox then refuses to start on a [`Foreign::Discord`]
/// one: [`RefusedStores`]); connected to Discord, a sandbox's ([`Foreign::Sandbox`],
/// taken over). A store that
/// cannot be read is logged, not fatal: the mark is a safety net, not a reason to stay
/// down.
pub async fn mark(redis: &Redis, pg: &Postgres, mode: Mode) -> Vec<Foreign> {
    let mut foreign = Vec::new();
    for (store, result) in [
        ("Redis", mark_redis(redis, mode).await),
        ("PostgreSQL", mark_postgres(pg, mode).await),
    ] {
        match result {
            Ok(Some(found)) => foreign.push(found),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(store, %error, "could not mark the store with Tavern's mode")
            }
        }
    }
    foreign
}
