//! Repositories over the seed's tables and Tavern's additions (every statement is in
//! [`crate::schema`]), one file per aggregate: [`users`], [`guilds`], [`settings`],
//! [`channels`], [`scan_runs`] (with the scan's coordination: requests, the channel's
//! scan lock, the parts of a split scan), [`clips`] (the clip index: a scan's page, a
//! live message, an edit, deletions) and [`install_intents`], all methods of the one
//! [`Repo`] over the shared pool.
//!
//! Every change that must not race is one SQL statement: starting a run is an `UPDATE`
//! guarded by the status the caller saw, consuming an install intent is a guarded
//! `DELETE ... RETURNING`. Rows are parsed into the domain's types on the way out; a row
//! that does not parse is reported as [`StorageError::Corrupt`], never papered over.

pub mod channels;
pub mod clips;
pub mod guilds;
pub mod install_intents;
pub mod library;
pub mod scan_runs;
pub mod settings;
pub mod users;

use sqlx::PgPool;
use store::StorageError;

use crate::domain::{
    ChannelId, ConsumeError, GuildId, IllegalTransition, ScanRunId, ScanStatus, SettingsError,
    UserId,
};

pub use channels::{ChannelInfo, ReadingContext, StoredChannel};
pub use clips::{NewClip, Page};
pub use guilds::{GuildInfo, StoredGuild};
pub use scan_runs::{ChannelLock, Progress, RunPart, RunRequest, ScanRun};
pub use users::{StoredUser, UserProfile};

/// Errors of the clip archive's repositories: the storage vocabulary, next to the
/// domain's refusals.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// PostgreSQL failed, or a stored row does not parse ([`StorageError::Corrupt`]).
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("no user {0}")]
    UnknownUser(UserId),
    #[error("no guild {0}")]
    UnknownGuild(GuildId),
    #[error("no channel {0}")]
    UnknownChannel(ChannelId),
    #[error("no scan run {0}")]
    UnknownRun(ScanRunId),
    /// A scan asked for where a channel must be read first, of one that is not.
    #[error("channel {0} is not being read")]
    NotReading(ChannelId),
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The run was not in the status the caller expected: another worker moved it first.
    #[error("scan run {id} is {actual}, not {expected}")]
    StaleStatus {
        id: ScanRunId,
        expected: ScanStatus,
        actual: ScanStatus,
    },
    /// Progress for a run that is no longer running (canceled, or finished elsewhere).
    #[error("scan run {id} is {actual}, not running")]
    NotRunning { id: ScanRunId, actual: ScanStatus },
    #[error(transparent)]
    Intent(#[from] ConsumeError),
    #[error("invalid settings: {0}")]
    Settings(#[from] SettingsError),
    /// A purge refused because a scan of a channel it covers is unfinished (it would
    /// go on adding clips to the purged index); nothing was purged.
    #[error(
        "a scan of channel {channel} is {status}; cancel it first, then purge (nothing was purged)"
    )]
    ScanUnfinished {
        channel: ChannelId,
        status: ScanStatus,
    },
}

impl From<sqlx::Error> for RepoError {
    fn from(error: sqlx::Error) -> RepoError {
        RepoError::Storage(error.into())
    }
}

impl RepoError {
    /// True when retrying later can succeed (the database was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, RepoError::Storage(e) if e.is_transient())
    }
}

/// A stored `what` that does not parse.
fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> RepoError {
    RepoError::Storage(StorageError::corrupt(what, reason))
}

/// Whether `error` is the violation of foreign key `constraint`.
fn violates(error: &sqlx::Error, constraint: &str) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation() && db.constraint() == Some(constraint))
}

/// `error`, or `refusal` when it is the violation of foreign key `constraint` (the
/// row it points at does not exist).
fn unless_violates(error: sqlx::Error, constraint: &str, refusal: RepoError) -> RepoError {
    if violates(&error, constraint) {
        refusal
    } else {
        error.into()
    }
}

/// The clip archive's tables, over the shared pool.
#[derive(Debug, Clone)]
pub struct Repo {
    pool: PgPool,
}

impl Repo {
    pub fn new(postgres: &store::Postgres) -> Repo {
        Repo {
            pool: postgres.pool().clone(),
        }
    }
}
