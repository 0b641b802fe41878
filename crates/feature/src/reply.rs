//! The one place a [`StorageError`] becomes what a person sees: a private Discord reply
//! or an HTTP error. Features wrap [`StorageError`] in their own error types next to
//! their domain refusals and call these for the storage part, so every feature words
//! "not found", "busy", "broken" and "down" the same way.

use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base::FailureStreak;
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

/// The storage outages the features' answers have seen, one per store: each told once
/// when it begins (WARN) and once when it ends (INFO, [`store_reachable`]), each answer
/// in between at debug.
static OUTAGES: Outages = Outages::new();

/// A store whose outage the answers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Redis,
    Postgres,
}

/// One [`FailureStreak`] per store, and one for a failure that names none (a timeout).
#[derive(Debug, Default)]
struct Outages {
    redis: FailureStreak,
    postgres: FailureStreak,
    unnamed: FailureStreak,
}

impl Outages {
    const fn new() -> Outages {
        Outages {
            redis: FailureStreak::new(),
            postgres: FailureStreak::new(),
            unnamed: FailureStreak::new(),
        }
    }

    fn of(&self, cause: &store::StoreError) -> (&FailureStreak, &'static str) {
        match cause {
            store::StoreError::Redis(_) => (&self.redis, "redis"),
            store::StoreError::Postgres(_) | store::StoreError::Migrate { .. } => {
                (&self.postgres, "postgres")
            }
            _ => (&self.unnamed, "storage"),
        }
    }

    /// Says `store` answered: true when that ends an outage the answers told.
    fn reachable(&self, store: Store) -> bool {
        let streak = match store {
            Store::Redis => &self.redis,
            Store::Postgres => &self.postgres,
        };
        let ended = streak.succeeded();
        // A failure that named no store ends with any store answering.
        let unnamed = self.unnamed.succeeded();
        if ended {
            tracing::info!(store = ?store, "storage can be reached again");
        } else if unnamed {
            tracing::info!("storage can be reached again");
        }
        ended || unnamed
    }
}

/// Says that `store` answered (a ping, a periodic write): ends an outage of it that the
/// features' answers told, with one INFO. The binary calls it where it sees the stores
/// work: its readiness probe and its periodic Redis write.
pub fn store_reachable(store: Store) {
    OUTAGES.reachable(store);
}

/// How an answer's storage failure was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    /// Every time: stored data that cannot be read, a store that refused for good.
    Error,
    /// The first answer of an outage.
    Warn,
    /// An answer during an outage already told.
    Debug,
    /// Not a failure of ours (not found, a conflict, a duplicate).
    Nothing,
}

/// Whether `error` is a store that cannot be reached for now (down, a dropped
/// connection, a timeout, a failover): an outage, which passes, told once. A feature
/// answering it with a page says so with [`web::page::Problem::outage`].
pub fn is_outage(error: &StorageError) -> bool {
    matches!(error, StorageError::Unavailable(cause) if cause.is_transient())
}

/// Logs `error` with its cause: an outage once per streak of its store, anything
/// broken every time.
fn tell(error: &StorageError, outages: &Outages) -> Told {
    match error {
        StorageError::Corrupt { what, reason } => {
            tracing::error!(%what, %reason, "stored data cannot be read");
            Told::Error
        }
        StorageError::Unavailable(cause) if cause.is_transient() => {
            let (outage, store) = outages.of(cause);
            if outage.failed() {
                tracing::warn!(
                    store,
                    error = %cause,
                    "storage unavailable; answers are refused until it can be reached again"
                );
                Told::Warn
            } else {
                tracing::debug!(store, error = %cause, "storage still unavailable");
                Told::Debug
            }
        }
        StorageError::Unavailable(cause) => {
            tracing::error!(error = %cause, "storage unavailable");
            Told::Error
        }
        StorageError::NotFound { .. }
        | StorageError::Conflict { .. }
        | StorageError::Duplicate { .. } => Told::Nothing,
    }
}

/// The sentence a user sees for `error`. Corrupt data and a store refusing for good are
/// logged here with their cause every time (the user is told only that it is on our
/// side); an outage is logged once when it begins, then at debug until it ends.
pub fn user_message(error: &StorageError) -> String {
    tell(error, &OUTAGES);
    words(error)
}

fn words(error: &StorageError) -> String {
    match error {
        StorageError::NotFound { what } => format!("I can't find {what} any more."),
        StorageError::Conflict { .. } => {
            "Too many changes at once; please try again in a moment.".to_owned()
        }
        StorageError::Duplicate { .. } => "That already exists, so nothing was changed.".to_owned(),
        StorageError::Corrupt { .. } => {
            "Something is wrong with the stored data on our side; an admin can find it in the logs."
                .to_owned()
        }
        StorageError::Unavailable(_) => {
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

/// A storage failure as an HTTP answer: its [`status`] and `{"error": user_message,
/// "code": <the status's kind>}`, [`marked`] when it is an outage's.
pub fn http_error(error: &StorageError) -> Response {
    let mut response = web::access::Denied::new(status(error), user_message(error)).into_response();
    marked(error, &mut response);
    response
}

/// Marks `response`, a feature's answer to `error` (built from [`status`] and
/// [`user_message`]), as an outage's when it is one: [`web::Outage`] (so the request
/// is not logged as a failure each time: the outage was told once) and `Retry-After`.
pub fn marked<B>(error: &StorageError, response: &mut axum::http::Response<B>) {
    if is_outage(error) && response.status() == StatusCode::SERVICE_UNAVAILABLE {
        web::Outage::mark(response);
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(web::session::UNAVAILABLE_RETRY_AFTER_SECS),
        );
    }
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

    fn refused() -> StorageError {
        StorageError::Unavailable(store::StoreError::Redis(store::redis::RedisError::from(
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"),
        )))
    }

    fn timed_out() -> StorageError {
        StorageError::Unavailable(store::StoreError::Timeout(std::time::Duration::from_secs(
            5,
        )))
    }

    #[test]
    fn an_outage_is_told_once_when_it_begins_and_once_when_it_ends() {
        let outages = Outages::new();
        assert_eq!(tell(&refused(), &outages), Told::Warn);
        assert_eq!(tell(&refused(), &outages), Told::Debug);
        assert_eq!(tell(&refused(), &outages), Told::Debug);
        assert!(
            !outages.reachable(Store::Postgres),
            "another store's outage goes on"
        );
        assert_eq!(tell(&refused(), &outages), Told::Debug);
        assert!(outages.reachable(Store::Redis), "the end is told");
        assert!(!outages.reachable(Store::Redis), "once");
        assert_eq!(tell(&refused(), &outages), Told::Warn, "a new outage");
        assert_eq!(tell(&timed_out(), &outages), Told::Warn, "a store unnamed");
        assert_eq!(tell(&timed_out(), &outages), Told::Debug);
        assert!(outages.reachable(Store::Postgres), "ended by any store");
    }

    #[test]
    fn a_store_refusing_for_good_or_unreadable_data_is_an_error_every_time() {
        let outages = Outages::new();
        let refusing = StorageError::Unavailable(store::StoreError::BadUrl {
            what: "postgres",
            reason: "no host".into(),
        });
        assert_eq!(tell(&refusing, &outages), Told::Error);
        assert_eq!(tell(&refusing, &outages), Told::Error);
        let corrupt = StorageError::corrupt("user_1", "not JSON");
        assert_eq!(tell(&corrupt, &outages), Told::Error);
        assert_eq!(tell(&corrupt, &outages), Told::Error);
        assert!(!outages.reachable(Store::Postgres), "no outage began");
    }

    #[test]
    fn an_outages_answer_is_marked_and_says_its_kind() {
        let answer = http_error(&refused());
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(web::Outage::marks(&answer));
        assert_eq!(answer.headers()["retry-after"], "60");
        let refusing = StorageError::Unavailable(store::StoreError::BadUrl {
            what: "postgres",
            reason: "no host".into(),
        });
        let answer = http_error(&refusing);
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !web::Outage::marks(&answer),
            "not an outage: a failure each time"
        );
    }
}
