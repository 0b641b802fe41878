//! The crate's one error type: user mistakes (shown to them) and our failures (logged).

use crate::domain::Refusal;

/// Everything that can go wrong in this feature.
#[derive(Debug, thiserror::Error)]
pub enum RollsError {
    /// A bad dice expression; `pointer` is the input with a caret under the problem.
    #[error("{message} (column {column})")]
    Dice {
        message: String,
        column: usize,
        pointer: String,
    },
    /// Any other request the user can fix.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored document that does not parse; never overwritten silently.
    #[error("stored `{key}` is not valid JSON: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{key}` kept changing under us; try again")]
    Contention { key: String },
    #[error("discord: {0}")]
    Discord(#[from] discord::RestError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("snapshot `{path}` is not valid: {reason}")]
    BadSnapshot { path: String, reason: String },
    #[error("object store setting `{key}`: {reason}")]
    BadStoreOption { key: String, reason: String },
}

impl RollsError {
    /// Whether the user caused it (and can read about it) rather than us.
    pub fn is_user(&self) -> bool {
        matches!(self, RollsError::Dice { .. } | RollsError::Refused(_))
    }

    /// The text shown to a user: with the caret pointer for dice errors.
    pub fn user_message(&self) -> String {
        match self {
            RollsError::Dice {
                message, pointer, ..
            } => format!("{message}\n```\n{pointer}\n```"),
            other => other.to_string(),
        }
    }

    pub(crate) fn dice(source: &str, error: &dice::DiceError) -> RollsError {
        RollsError::Dice {
            message: error.message(),
            column: error.column(),
            pointer: error.pointer(source),
        }
    }

    pub(crate) fn refused(message: impl Into<String>) -> RollsError {
        RollsError::Refused(Refusal(message.into()))
    }
}
