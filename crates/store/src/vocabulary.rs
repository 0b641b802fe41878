//! The one storage error vocabulary features speak: [`StorageError`].
//!
//! A repository returns `NotFound`, `Conflict`, `Duplicate`, `Corrupt` or `Unavailable`, whatever the
//! store underneath; a feature's own error type wraps it next to its domain refusals,
//! and `feature` turns it into the words a user sees, in one place, for Discord and for
//! HTTP alike.

use std::fmt::Display;

use crate::StoreError;

/// Why a repository could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// What was asked for does not exist (a game, a meeting, a row).
    #[error("{what} was not found")]
    NotFound { what: String },
    /// Others changed the same thing at the same time, more often than we retry. Trying
    /// again later can work.
    #[error("{what} changed under us too often; try again")]
    Conflict { what: String },
    /// A uniqueness rule refused the write: what it would create already exists. Trying
    /// again gets the same answer. `constraint` names the rule (a PostgreSQL unique
    /// constraint or index).
    #[error("the write would duplicate what already exists (unique key {constraint})")]
    Duplicate { constraint: String },
    /// The stored value is not what the schema says (a hand edit, a bug, an old format).
    #[error("{what} holds data Tavern cannot read: {reason}")]
    Corrupt { what: String, reason: String },
    /// The store is down or answered with an error; nothing was decided. The message
    /// says the store's error, so it is not named again as the source.
    #[error("storage is unavailable: {0}")]
    Unavailable(StoreError),
}

impl StorageError {
    pub fn not_found(what: impl Display) -> StorageError {
        StorageError::NotFound {
            what: what.to_string(),
        }
    }

    pub fn conflict(what: impl Display) -> StorageError {
        StorageError::Conflict {
            what: what.to_string(),
        }
    }

    pub fn corrupt(what: impl Display, reason: impl Display) -> StorageError {
        StorageError::Corrupt {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }

    /// True when the same request may succeed later without anything changing on our
    /// side (a conflict, an outage); a duplicate never does.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Conflict { .. } => true,
            StorageError::Unavailable(e) => e.is_transient(),
            StorageError::NotFound { .. }
            | StorageError::Duplicate { .. }
            | StorageError::Corrupt { .. } => false,
        }
    }
}

impl From<StoreError> for StorageError {
    fn from(error: StoreError) -> StorageError {
        match error {
            StoreError::Contention { keys, .. } => StorageError::Conflict {
                what: keys.join(", "),
            },
            StoreError::UnexpectedReply(reply) => StorageError::corrupt("a Redis reply", reply),
            StoreError::Redis(e)
                if e.code() == Some("WRONGTYPE")
                    || e.kind() == redis::ErrorKind::UnexpectedReturnType =>
            {
                StorageError::corrupt("a Redis value", e)
            }
            StoreError::Postgres(sqlx::Error::RowNotFound) => StorageError::not_found("the row"),
            StoreError::Postgres(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let constraint = e.constraint().unwrap_or("(unnamed)").to_owned();
                tracing::warn!(%constraint, error = %e, "a write was refused by a unique key");
                StorageError::Duplicate { constraint }
            }
            StoreError::Postgres(
                e @ (sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)),
            ) => StorageError::corrupt("a PostgreSQL row", e),
            other => StorageError::Unavailable(other),
        }
    }
}

impl From<redis::RedisError> for StorageError {
    fn from(error: redis::RedisError) -> StorageError {
        StoreError::from(error).into()
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> StorageError {
        StoreError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_fall_into_the_vocabulary() {
        let contention = StoreError::Contention {
            keys: vec!["game:1".into()],
            attempts: 3,
        };
        assert!(matches!(
            StorageError::from(contention),
            StorageError::Conflict { what } if what == "game:1"
        ));
        assert!(matches!(
            StorageError::from(StoreError::UnexpectedReply("x".into())),
            StorageError::Corrupt { .. }
        ));
        assert!(matches!(
            StorageError::from(sqlx::Error::RowNotFound),
            StorageError::NotFound { .. }
        ));
        let down = StorageError::from(StoreError::Timeout(std::time::Duration::from_secs(1)));
        assert!(matches!(down, StorageError::Unavailable(_)));
        assert!(down.is_transient());
        assert!(!StorageError::not_found("game 1").is_transient());
        assert_eq!(
            StorageError::corrupt("game:1", "not JSON").to_string(),
            "game:1 holds data Tavern cannot read: not JSON"
        );
    }
}
