use std::time::Duration;

/// Errors from the storage layer. Feature crates wrap these in their own error types.
///
/// Each variant's message already says the whole cause (the client's error and what it
/// says caused it), so a variant names no `source`: a report that prints the chain
/// (`{:#}`) then says each cause once instead of two or three times.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {}", with_causes(.0))]
    Redis(redis::RedisError),
    #[error("postgres: {}", postgres_said(.0))]
    Postgres(sqlx::Error),
    #[error("postgres migration of schema `{schema}`: {}", with_causes(.cause))]
    Migrate {
        schema: String,
        cause: sqlx::migrate::MigrateError,
    },
    #[error("invalid {what} url: {reason}")]
    BadUrl { what: &'static str, reason: String },
    #[error("optimistic transaction on {keys:?} gave up after {attempts} attempts")]
    Contention { keys: Vec<String>, attempts: u32 },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis answered with something unexpected: {0}")]
    UnexpectedReply(String),
}

impl From<redis::RedisError> for StoreError {
    fn from(error: redis::RedisError) -> StoreError {
        StoreError::Redis(error)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        StoreError::Postgres(error)
    }
}

/// `error`'s message with each cause said once (the one function for it, in `base`).
pub use base::with_causes;

/// What PostgreSQL said, for an operator: its message and SQLSTATE code, without the
/// driver's " at line N" (a line of PostgreSQL's own source, which means nothing to
/// them); any other error with its causes.
fn postgres_said(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => with_causes(other),
    }
}

impl StoreError {
    /// True when retrying the same operation later can succeed (the server was
    /// unreachable or the connection dropped), as opposed to a bad command or bad data.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Redis(e) => {
                use redis::ErrorKind;
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    // A failover in progress: Sentinel names no master yet, the server
                    // written to became a replica, a replica is still loading, or the
                    // primary has no replica in sync (`min-replicas-to-write`).
                    || matches!(
                        e.kind(),
                        ErrorKind::MasterNameNotFoundBySentinel
                            | ErrorKind::NoValidReplicasFoundBySentinel
                    )
                    || matches!(
                        e.code(),
                        Some("READONLY" | "MASTERDOWN" | "LOADING" | "NOREPLICAS")
                    )
                    || crate::sentinel::is_readonly(e)
            }
            StoreError::Postgres(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            StoreError::Timeout(_) | StoreError::Contention { .. } => true,
            StoreError::Migrate { .. }
            | StoreError::BadUrl { .. }
            | StoreError::UnexpectedReply(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreError;
    use crate::StorageError;

    /// What a report of `error` with its chain says: the message, then each source's,
    /// joined with `: `, as anyhow's `{:#}` prints it.
    fn chain(error: &(dyn std::error::Error + 'static)) -> String {
        let mut text = error.to_string();
        let mut next = error.source();
        while let Some(cause) = next {
            text.push_str(&format!(": {cause}"));
            next = cause.source();
        }
        text
    }

    fn refused() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )
    }

    #[test]
    fn a_report_of_a_store_error_with_its_causes_says_each_cause_once() {
        let redis = StoreError::from(redis::RedisError::from(refused()));
        let postgres = StoreError::from(sqlx::Error::Io(refused()));
        let migrate = StoreError::Migrate {
            schema: "clips".into(),
            cause: sqlx::migrate::MigrateError::Execute(sqlx::Error::Io(refused())),
        };
        for error in [redis, postgres, migrate] {
            let unavailable = StorageError::Unavailable(error);
            let report = chain(&unavailable);
            assert_eq!(report.matches("Connection refused").count(), 1, "{report}");
            assert!(report.starts_with("storage is unavailable: "), "{report}");
        }
        let report = chain(&StoreError::from(redis::RedisError::from(refused())));
        assert_eq!(report, "redis: Connection refused (os error 111)");
    }

    fn server(code: &str) -> StoreError {
        StoreError::Redis(redis::make_extension_error(code.into(), Some("...".into())))
    }

    #[test]
    fn what_a_failover_answers_is_worth_retrying_and_a_bad_command_is_not() {
        let no_master = StoreError::Redis(redis::RedisError::from((
            redis::ErrorKind::MasterNameNotFoundBySentinel,
            "Master with given name not found in sentinel",
        )));
        assert!(no_master.is_transient());
        for code in ["READONLY", "MASTERDOWN", "LOADING", "NOREPLICAS"] {
            assert!(server(code).is_transient(), "{code}");
        }
        for code in ["WRONGTYPE", "ERR", "NOSCRIPT"] {
            assert!(!server(code).is_transient(), "{code}");
        }
    }
}
