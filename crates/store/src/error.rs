use std::time::Duration;

/// Errors from the storage layer. Feature crates wrap these in their own error types.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migration of schema `{schema}`: {source}")]
    Migrate {
        schema: String,
        #[source]
        source: sqlx::migrate::MigrateError,
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
