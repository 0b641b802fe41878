//! Storage plumbing shared by every feature.
//!
//! - [`Redis`]: one handle over a single Redis server, a Redis Cluster or the master
//!   behind Sentinel (`redis+sentinel://`, followed across failovers: [`SentinelUrl`]),
//!   cheap to clone, reconnecting by itself ([`RedisConn`] implements
//!   [`redis::aio::ConnectionLike`], so every `redis` command and pipeline works on it).
//! - [`Writes`]: a batch of Redis writes applied atomically, either unconditionally
//!   ([`Redis::apply`], one `MULTI`/`EXEC` round trip) or guarded by a compare-and-set on
//!   one key ([`Redis::apply_if`], one Lua round trip) — the building block for optimistic
//!   concurrency without `WATCH` on a shared multiplexed connection. [`Redis::watch`] runs a
//!   classic `WATCH`/`MULTI` transaction with retries on a dedicated connection when the
//!   read set is several keys; [`Redis::apply_when`] applies a batch under
//!   [`Condition`]s (a set has room, a member is still there, a hash field is
//!   unchanged). [`lua`] is the one home of Lua.
//! - [`optimistic()`]: the one read-decide-write-retry loop ([`Redis::watch`] runs on
//!   it too).
//! - [`transient()`]: the one retry of a single round trip that failed transiently (a
//!   dropped connection, a timeout, a failover), with a short backoff.
//! - [`StorageError`]: the one error vocabulary of repositories (`NotFound`,
//!   `Conflict`, `Corrupt`, `Unavailable`).
//! - [`updated_time`]: the `{key}:updated_time` convention (write a key and its timestamp
//!   together).
//! - [`Postgres`]: a sqlx pool plus per-feature migrations, each feature in its own
//!   PostgreSQL schema.
//! - `harness` (feature `harness`): real `redis-server`, PostgreSQL, S3 and Azure Blob
//!   servers for tests.

mod error;
#[cfg(feature = "harness")]
pub mod harness;
pub mod lua;
pub mod optimistic;
mod postgres;
mod redis_conn;
mod sentinel;
pub mod transient;
pub mod updated_time;
mod vocabulary;
mod writes;

pub use error::StoreError;
pub use lua::{Condition, Conditional};
pub use optimistic::{Attempt, optimistic};
pub use postgres::{
    FeatureMigrations, Postgres, check_url as check_postgres_url,
    unread_parameters as unread_postgres_parameters,
};
pub use redis_conn::{
    Guarded, Redis, RedisConn, Subscription, check_url as check_redis_url,
    round_trips as redis_round_trips,
};
pub use sentinel::{FAILOVER_WAIT, SentinelConn, SentinelUrl};
pub use transient::transient;
pub use vocabulary::StorageError;
pub use writes::Writes;

/// Re-exported so feature crates name one version of the client libraries.
pub use redis;
pub use sqlx;

/// A connection URL with its password (if any) replaced by `***`, for logs and `Debug`:
/// the password of the userinfo and the value of every credential-looking query
/// parameter (`password`, `sslpassword`, `secret`, `token`, `sig`, `api_key`, ...).
///
/// A list of URLs separated by commas (Redis Cluster seed nodes, Sentinel hosts) has
/// every part redacted, not only the first.
pub fn redact_url(url: &str) -> String {
    let mut in_query = false;
    url.split(',')
        .map(|part| {
            if part.contains("://") {
                in_query = part.contains('?');
                redact_one_url(part)
            } else if in_query {
                // A comma inside a query value: the rest is still query.
                redact_query(part)
            } else {
                in_query = part.contains('?');
                redact_one_url(&format!("x://{part}"))
                    .trim_start_matches("x://")
                    .to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => format!("{}?{}", redact_userinfo(base), redact_query(query)),
        None => redact_userinfo(url),
    }
}

/// Whether a query parameter named `name` holds a credential.
fn is_credential_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "signature",
        "credential",
        "apikey",
        "api_key",
    ]
    .iter()
    .any(|word| name.contains(word))
        || ["pass", "pwd", "sig", "key", "auth"].contains(&name.as_str())
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_credential_param(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    // The userinfo ends at the last `@` before the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => {
            format!("{}://{user}:***@{}", &url[..scheme_end], &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_hidden_and_nothing_else() {
        use super::redact_url;
        assert_eq!(
            redact_url("postgres://u:pw@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(
            redact_url("redis://:secret@cache:6379/"),
            "redis://:***@cache:6379/"
        );
        assert_eq!(
            redact_url("postgres://tavern@db/tavern"),
            "postgres://tavern@db/tavern"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(
            redact_url("redis+sentinel://:secret@s1:26379,s2:26379/tavern/2"),
            "redis+sentinel://:***@s1:26379,s2:26379/tavern/2"
        );
    }

    #[test]
    fn every_password_of_a_list_of_urls_is_hidden() {
        use super::redact_url;
        assert_eq!(
            redact_url("redis://:a@h1:6379,redis://:b@h2:6379"),
            "redis://:***@h1:6379,redis://:***@h2:6379"
        );
        assert_eq!(
            redact_url("redis+cluster://u:a@h1:6379, redis://u:b@h2:6379,redis://h3:6379"),
            "redis+cluster://u:***@h1:6379, redis://u:***@h2:6379,redis://h3:6379"
        );
        assert_eq!(
            redact_url("redis+sentinel://:a@s1:26379,u:b@s2:26379/tavern/2"),
            "redis+sentinel://:***@s1:26379,u:***@s2:26379/tavern/2"
        );
        assert_eq!(
            redact_url("redis://h1:6379/?token=t,redis://:b@h2:6379/?password=p"),
            "redis://h1:6379/?token=***,redis://:***@h2:6379/?password=***"
        );
        // A comma inside a query value does not end the query.
        assert_eq!(
            redact_url("postgres://db/x?options=a,password=p&user=u"),
            "postgres://db/x?options=a,password=***&user=u"
        );
    }

    #[test]
    fn credential_query_parameters_are_hidden_too() {
        use super::redact_url;
        assert_eq!(
            redact_url("postgres://db/tavern?user=t&password=hunter2&sslmode=require"),
            "postgres://db/tavern?user=t&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u:pw@db/x?sslpassword=s3&application_name=tavern"),
            "postgres://u:***@db/x?sslpassword=***&application_name=tavern"
        );
        assert_eq!(
            redact_url("az://c/p?sv=2024&sig=abc%2Bdef&PWD=x&api_key=k&token=t"),
            "az://c/p?sv=2024&sig=***&PWD=***&api_key=***&token=***"
        );
        // An `@` in a query is not a password separator.
        assert_eq!(
            redact_url("redis://cache:6379/0?client_name=a@b"),
            "redis://cache:6379/0?client_name=a@b"
        );
    }
}
