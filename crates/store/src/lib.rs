//! Storage plumbing shared by every feature.
//!
//! - [`Redis`]: one handle over a single Redis server or a Redis Cluster, cheap to clone,
//!   reconnecting by itself ([`RedisConn`] implements [`redis::aio::ConnectionLike`], so
//!   every `redis` command and pipeline works on it).
//! - [`Writes`]: a batch of Redis writes applied atomically, either unconditionally
//!   ([`Redis::apply`], one `MULTI`/`EXEC` round trip) or guarded by a compare-and-set on
//!   one key ([`Redis::apply_if`], one Lua round trip) — the building block for optimistic
//!   concurrency without `WATCH` on a shared multiplexed connection. [`Redis::watch`] runs a
//!   classic `WATCH`/`MULTI` transaction with retries on a dedicated connection when the
//!   read set is several keys.
//! - [`updated_time`]: the `{key}:updated_time` convention (write a key and its timestamp
//!   together).
//! - [`Postgres`]: a sqlx pool plus per-feature migrations, each feature in its own
//!   PostgreSQL schema.
//! - `harness` (feature `harness`): real `redis-server` and PostgreSQL processes for tests.

mod error;
#[cfg(feature = "harness")]
pub mod harness;
mod postgres;
mod redis_conn;
pub mod updated_time;
mod writes;

pub use error::StoreError;
pub use postgres::{FeatureMigrations, Postgres};
pub use redis_conn::{Redis, RedisConn};
pub use writes::Writes;

/// Re-exported so feature crates name one version of the client libraries.
pub use redis;
pub use sqlx;
