//! The crate's one error type: user mistakes (shown to them), storage failures (in
//! the kit's words, [`feature::reply`]) and our other failures (logged). Each way out
//! is one function: [`RollsError::into_handler_error`] for Discord,
//! [`RollsError::into_http`] for the REST API.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use discord::HandlerError;
use serde_json::json;
use store::StorageError;

use crate::domain::{Refusal, RefusalKind};

/// Most characters of an expression a dice error quotes: a longer one (up to the
/// thousands a Discord option takes) is quoted around the problem with `…` where it
/// is cut, so the error and its caret always fit one message.
pub const POINTER_WIDTH: usize = 60;

/// `source` on one line with a caret under `column` (1-based, in characters): whole
/// when it is at most [`POINTER_WIDTH`] characters, otherwise that many around the
/// column, `…` marking what was left out.
fn pointer(source: &str, column: usize) -> String {
    let mut line: Vec<char> = source
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    while line.last() == Some(&' ') {
        line.pop();
    }
    let at = column.saturating_sub(1);
    let start = if line.len() <= POINTER_WIDTH {
        0
    } else {
        at.saturating_sub(POINTER_WIDTH / 2)
            .min(line.len() - POINTER_WIDTH)
    };
    let end = (start + POINTER_WIDTH).min(line.len());
    let before = if start > 0 { "…" } else { "" };
    let after = if end < line.len() { "…" } else { "" };
    let shown: String = line.get(start..end).unwrap_or_default().iter().collect();
    let pad = " ".repeat(at.saturating_sub(start) + before.chars().count());
    format!("{before}{shown}{after}\n{pad}^")
}

/// Everything that can go wrong in this feature.
#[derive(Debug, thiserror::Error)]
pub enum RollsError {
    /// A bad dice expression; `pointer` is the input (at most `POINTER_WIDTH` (60)
    /// characters of it around the problem) with a caret under the problem.
    #[error("{message} (column {column})")]
    Dice {
        message: String,
        column: usize,
        pointer: String,
    },
    /// Any other request the user can fix.
    #[error(transparent)]
    Refused(Refusal),
    /// What the request names does not exist (a character, a roll id, an alias, …):
    /// the user can fix it; the REST API answers 404. A [`Refusal::missing`] becomes
    /// this one.
    #[error("{0}")]
    NotFound(String),
    /// What the request names is someone else's to change (another player's
    /// combatant): the REST API answers 403. A [`Refusal::not_yours`] becomes this one.
    #[error("{0}")]
    NotYours(String),
    /// Redis could not do what was asked: down, a document that does not parse, or
    /// too many concurrent changes of one document.
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("discord: {0}")]
    Discord(#[from] discord::RestError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("snapshot `{path}` is not valid: {reason}")]
    BadSnapshot { path: String, reason: String },
    /// The local folder of the rolls sync could not be made.
    #[error("the rolls sync folder `{path}` cannot be made: {reason}")]
    SyncFolder { path: String, reason: String },
    #[error("object store setting `{key}`: {reason}")]
    BadStoreOption { key: String, reason: String },
    /// The dice pool could not run the work (it panicked, or the runtime is
    /// shutting down).
    #[error("dice work failed: {0}")]
    DiceWork(String),
    /// A REST answer could not be built.
    #[error("answer not built: {0}")]
    Answer(String),
    /// Too many dice requests are already waiting for the pool.
    #[error(
        "the dice are busy right now ({waiting} requests are waiting for their turn); try again in a minute"
    )]
    Busy { waiting: usize },
}

impl From<Refusal> for RollsError {
    fn from(refusal: Refusal) -> RollsError {
        match refusal.kind() {
            RefusalKind::Missing => RollsError::NotFound(refusal.into_message()),
            RefusalKind::NotYours => RollsError::NotYours(refusal.into_message()),
            RefusalKind::Cannot => RollsError::Refused(refusal),
        }
    }
}

impl From<store::StoreError> for RollsError {
    fn from(error: store::StoreError) -> RollsError {
        RollsError::Storage(error.into())
    }
}

impl From<redis::RedisError> for RollsError {
    fn from(error: redis::RedisError) -> RollsError {
        RollsError::Storage(error.into())
    }
}

impl RollsError {
    /// Whether the user caused it (and can read about it) rather than us.
    pub fn is_user(&self) -> bool {
        matches!(
            self,
            RollsError::Dice { .. }
                | RollsError::Refused(_)
                | RollsError::NotFound(_)
                | RollsError::NotYours(_)
                | RollsError::Busy { .. }
        )
    }

    /// The text shown to a user: with the caret pointer for dice errors.
    pub fn user_message(&self) -> String {
        match self {
            RollsError::Dice {
                message, pointer, ..
            } => format!("{message}\n```\n{pointer}\n```"),
            RollsError::Storage(error) => feature::reply::user_message(error),
            other => other.to_string(),
        }
    }

    /// The answer of a Discord handler: the user's mistakes as they are (cut to fit
    /// one message with the router's warning sign in front: a 1,000-character
    /// expression with its caret line is longer than that), storage failures in the
    /// kit's words, anything else internal (logged by the router).
    pub fn into_handler_error(self) -> HandlerError {
        match self {
            RollsError::Storage(error) => feature::reply::handler_error(&error),
            error if error.is_user() => HandlerError::user(crate::domain::fit_message(
                &error.user_message(),
                crate::domain::DISCORD_MESSAGE_MAX - 4,
                crate::commands::CUT_NOTE,
            )),
            error => HandlerError::internal(error),
        }
    }

    /// The answer of the REST API: 400 `{"error"}` for the user's mistakes (dice
    /// errors add `column` and `pointer`; 404 for something named that does not exist:
    /// [`RollsError::NotFound`], a [`Refusal::missing`]; 403 for someone else's:
    /// [`RollsError::NotYours`], a [`Refusal::not_yours`]), storage failures in the kit's
    /// words and status, anything else a logged 500.
    pub fn into_http(self) -> Response {
        match self {
            RollsError::Dice {
                message,
                column,
                pointer,
            } => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": message, "column": column, "pointer": pointer})),
            )
                .into_response(),
            RollsError::Storage(error) => feature::reply::http_error(&error),
            RollsError::NotFound(message) => {
                (StatusCode::NOT_FOUND, axum::Json(json!({"error": message}))).into_response()
            }
            RollsError::NotYours(message) => {
                (StatusCode::FORBIDDEN, axum::Json(json!({"error": message}))).into_response()
            }
            RollsError::Busy { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "60")],
                axum::Json(json!({"error": self.to_string()})),
            )
                .into_response(),
            error if error.is_user() => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": error.to_string()})),
            )
                .into_response(),
            error => {
                tracing::error!(%error, "rolls api request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "internal error; see the server log"})),
                )
                    .into_response()
            }
        }
    }

    pub(crate) fn dice(source: &str, error: &dice::DiceError) -> RollsError {
        RollsError::Dice {
            message: error.message(),
            column: error.column(),
            pointer: pointer(source, error.column()),
        }
    }

    pub(crate) fn refused(message: impl Into<String>) -> RollsError {
        RollsError::Refused(Refusal::new(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_expression_is_quoted_around_its_problem() {
        assert_eq!(pointer("1d20 + x", 8), "1d20 + x\n       ^");
        let long = format!("{}+x", "1d20+".repeat(500));
        let start = pointer(&long, 1);
        assert_eq!(
            start.lines().next().map(|l| l.chars().count()),
            Some(POINTER_WIDTH + 1)
        );
        assert!(
            start.starts_with("1d20+1d20") && start.contains("…\n^"),
            "{start}"
        );
        let end = pointer(&long, long.chars().count());
        let (quoted, caret) = end.split_once('\n').expect("two lines");
        assert!(quoted.starts_with('…') && quoted.ends_with("+x"), "{end}");
        assert_eq!(
            caret.chars().count(),
            quoted.chars().count(),
            "under the x: {end}"
        );
    }
}
