//! Repositories over [`crate::schema`]: meetings in PostgreSQL, sessions, presence, tokens
//! and counters in Redis, and the seed's two data flows (a join, a meeting's end) across
//! both. One [`Repo`], one file per aggregate:
//!
//! - `meetings`: creating, reading and ending meetings (Data Flow Example 2);
//! - `participants`: joining (Data Flow Example 1), sessions, heartbeats, presence,
//!   leaving and the removal of absent participants;
//! - `streams`: published media streams and subscriptions;
//! - `registry`: meeting controllers and media handlers, their load and assignment;
//! - `tokens`: one-time WebTransport connection tokens and the JWT blacklist;
//! - `recordings`: recordings of meetings and their status;
//! - `rate_limits`, `cache`, `audit`.
//!
//! Every multi-key Redis change is one atomic step: a [`store::Writes`] batch through
//! `MULTI`/`EXEC`, or through [`store::Redis::apply_when`] where the change depends on
//! what is there (the meeting has room, the participant is still in the set, the session
//! still exists). Editing the `streams` JSON array of a session is a read in Rust and a
//! write guarded by the field's old value, retried by [`store::optimistic()`]. A step
//! that spans Redis and PostgreSQL cannot be atomic; the order is chosen so a failure
//! leaves nothing a reader would trust wrongly (see [`Repo::join`]).

pub mod api_keys;
mod audit;
mod cache;
mod meetings;
mod participants;
mod rate_limits;
mod recordings;
mod registry;
mod signing_keys;
mod streams;
mod tokens;
pub mod users;

use std::sync::Arc;

use base::{Clock, InvalidId};
use store::{Postgres, Redis, StorageError, Writes};

pub use self::audit::AuditEntry;
pub use self::meetings::{CODE_ATTEMPTS, HostedStatus, Meeting, MeetingSettings, NewMeeting};
pub use self::participants::{
    Admitted, CONTROLLER_GONE_AFTER, JoinRequest, JoinWith, Joined, ParticipantSession, PendingRow,
    Reaped,
};
pub use self::recordings::{FinishedRecording, NewRecording, Recording, RecordingRefusal};
pub use self::registry::{
    ControllerHeartbeat, ControllerRegistration, HandlerHeartbeat, HandlerRegistration,
    RegisteredController, RegisteredHandler,
};
pub use self::streams::NewStream;
pub use self::tokens::{ConnectionGrant, MediaAdmission};
pub use crate::error::MeetingsError;

/// The seed's tables and keys, over the shared stores. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Repo {
    redis: Redis,
    pg: Postgres,
    clock: Arc<dyn Clock>,
    /// Shared by the clones of this repository.
    recent_controllers: Arc<registry::RecentControllers>,
    /// Shared by the clones of this repository.
    known_codes: Arc<meetings::KnownCodes>,
}

impl Repo {
    /// A repository over `redis` and `pg`; `clock` stamps what Redis keeps as Unix
    /// seconds (join and heartbeat times, token and stream creation, capacity reports)
    /// and decides when a blacklisted token has expired.
    pub fn new(redis: Redis, pg: Postgres, clock: Arc<dyn Clock>) -> Repo {
        Repo {
            redis,
            pg,
            clock,
            recent_controllers: Arc::default(),
            known_codes: Arc::default(),
        }
    }

    /// The repository of a feature built from `ctx`.
    pub fn from_context(ctx: &feature::Context) -> Repo {
        Repo::new(ctx.redis.clone(), ctx.postgres.clone(), ctx.clock.clone())
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub fn postgres(&self) -> &Postgres {
        &self.pg
    }

    /// Now, on the repository's clock (the one tests move).
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Now, in Unix seconds, as the seed's hashes store times.
    fn now_secs(&self) -> i64 {
        self.clock.now().timestamp()
    }
}

/// A stored value that does not parse as what the schema says it is.
fn corrupt(e: InvalidId) -> StorageError {
    StorageError::corrupt(format!("a stored {}", e.what), e)
}

/// A TTL as the whole seconds `EXPIRE` takes.
fn ttl_secs(d: std::time::Duration) -> u64 {
    d.as_secs()
}

/// Unix seconds stored as text in a hash field.
fn parse_seconds(what: &'static str, s: &str) -> Result<i64, StorageError> {
    s.parse()
        .map_err(|_| corrupt(InvalidId::new(what, s, "expected Unix seconds")))
}

/// `HSET key field value ...` of every pair, as one command of `writes`.
fn hset_all<V: redis::ToRedisArgs>(writes: &mut Writes, key: &str, fields: &[(&str, V)]) {
    fields
        .iter()
        .fold(writes.command("HSET").arg(key), |cmd, (field, value)| {
            cmd.arg(*field).arg(value)
        });
}
