//! The one place a [`StorageError`] becomes what a person sees: a private Discord reply
//! or an HTTP error. Features wrap [`StorageError`] in their own error types next to
//! their domain refusals and call these for the storage part, so every feature words
//! "not found", "busy", "broken" and "down" the same way.

use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use discord::{Handler, HandlerError, Invocation};
use store::StorageError;

/// A command or component handler that runs `run` with a clone of `state` for each
/// interaction and answers its error through `refusal`: the feature's one mapping of
/// its own errors (domain refusals, and storage through [`handler_error`]) to what the
/// user sees.
pub fn handler<S, E, F, Fut>(state: &S, run: F, refusal: fn(E) -> HandlerError) -> Arc<dyn Handler>
where
    S: Clone + Send + Sync + 'static,
    E: Send + 'static,
    F: Fn(S, Invocation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<discord::Response, E>> + Send + 'static,
{
    let state = state.clone();
    Arc::new(move |inv: Invocation| {
        let future = run(state.clone(), inv);
        async move { future.await.map_err(refusal) }
    })
}

/// The sentence a user sees for `error`. Corrupt data and outages are logged here with
/// their cause (the user is told only that it is on our side).
pub fn user_message(error: &StorageError) -> String {
    match error {
        StorageError::NotFound { what } => format!("I can't find {what} any more."),
        StorageError::Conflict { .. } => {
            "Too many changes at once; please try again in a moment.".to_owned()
        }
        StorageError::Duplicate { .. } => "That already exists, so nothing was changed.".to_owned(),
        StorageError::Corrupt { what, reason } => {
            tracing::error!(%what, %reason, "stored data cannot be read");
            "Something is wrong with the stored data on our side; an admin can find it in the logs."
                .to_owned()
        }
        StorageError::Unavailable(cause) => {
            tracing::error!(error = %cause, "storage unavailable");
            "Tavern can't reach its storage right now; please try again in a minute.".to_owned()
        }
    }
}

/// A storage failure as a Discord handler's answer: a private message in the words of
/// [`user_message`]; stored data Tavern cannot read is an internal error instead, so
/// the router logs it with the interaction id and the user gets a reference to quote.
pub fn handler_error(error: &StorageError) -> HandlerError {
    match error {
        StorageError::Corrupt { what, reason } => {
            HandlerError::internal(StorageError::corrupt(what, reason))
        }
        // Answered like a refusal, but counted as an outage, not as a good answer.
        StorageError::Unavailable(_) => HandlerError::unavailable(user_message(error)),
        other => HandlerError::user(user_message(other)),
    }
}

/// The HTTP status for a storage failure: 404, 409 (a conflict, or a duplicate), 500 or
/// 503.
pub fn status(error: &StorageError) -> StatusCode {
    match error {
        StorageError::NotFound { .. } => StatusCode::NOT_FOUND,
        StorageError::Conflict { .. } | StorageError::Duplicate { .. } => StatusCode::CONFLICT,
        StorageError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        StorageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A storage failure as an HTTP answer: its [`status`] and `{"error": user_message}`.
pub fn http_error(error: &StorageError) -> Response {
    (
        status(error),
        axum::Json(serde_json::json!({ "error": user_message(error) })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_words_and_status() {
        let not_found = StorageError::not_found("game 42");
        assert_eq!(user_message(&not_found), "I can't find game 42 any more.");
        assert_eq!(status(&not_found), StatusCode::NOT_FOUND);
        assert_eq!(status(&StorageError::conflict("doc")), StatusCode::CONFLICT);
        let duplicate = StorageError::Duplicate {
            constraint: "games_name_key".into(),
        };
        assert_eq!(
            user_message(&duplicate),
            "That already exists, so nothing was changed."
        );
        assert!(!user_message(&duplicate).contains("try again"));
        assert_eq!(status(&duplicate), StatusCode::CONFLICT);
        assert!(matches!(handler_error(&duplicate), HandlerError::User(_)));
        let corrupt = StorageError::corrupt("user_1", "not JSON");
        assert!(!user_message(&corrupt).contains("not JSON"));
        assert_eq!(status(&corrupt), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(matches!(handler_error(&corrupt), HandlerError::Internal(_)));
        let down = StorageError::from(store::StoreError::Timeout(std::time::Duration::from_secs(
            5,
        )));
        assert_eq!(status(&down), StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(handler_error(&down), HandlerError::Unavailable(_)));
    }
}
