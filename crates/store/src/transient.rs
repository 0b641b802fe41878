//! The one retry of a single round trip that failed transiently: the connection was
//! refused or dropped, the call timed out, or a failover is under way
//! ([`StoreError::is_transient`]). Anything else fails at once.
//!
//! Only for calls that are safe to send twice: a read, or a write whose guard makes a
//! repeat a no-op (`apply_if`, `apply_when`), since the first may have been applied
//! before its answer was lost.

use std::future::Future;
use std::time::Duration;

use crate::StoreError;

/// How often a call is tried before its transient error is returned.
pub const ATTEMPTS: u32 = 4;
/// The wait after the first failure; it doubles after each one (25, 50, 100 ms).
pub const FIRST_BACKOFF: Duration = Duration::from_millis(25);

/// Runs `call` (given the attempt number, from 1) until it succeeds, fails with an error
/// that is not transient, or has been tried [`ATTEMPTS`] times. `what` names the call in
/// the logs: a WARN line per retry, an ERROR line for the error returned.
pub async fn transient<T, F, Fut>(what: &str, mut call: F) -> Result<T, StoreError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match call(attempt).await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_transient() && attempt < ATTEMPTS => {
                tracing::warn!(what, attempt, %error, "transient redis error; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            Err(error) => {
                tracing::error!(what, attempt, %error, "redis call failed");
                return Err(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_transient_error_is_retried_until_it_passes_or_the_attempts_run_out() {
        let mut calls = 0;
        let value = transient("get", |n| {
            calls += 1;
            async move {
                if n < 3 {
                    Err(StoreError::Timeout(Duration::from_secs(5)))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(value, Ok(3)), "{value:?}");
        assert_eq!(calls, 3);

        let mut calls = 0;
        let never: Result<(), StoreError> = transient("get", |_| {
            calls += 1;
            async { Err(StoreError::Timeout(Duration::from_secs(5))) }
        })
        .await;
        assert!(matches!(never, Err(StoreError::Timeout(_))), "{never:?}");
        assert_eq!(calls, ATTEMPTS);
    }

    #[tokio::test]
    async fn an_error_that_is_not_transient_fails_at_once() {
        let mut calls = 0;
        let result: Result<(), StoreError> = transient("get", |_| {
            calls += 1;
            async { Err(StoreError::UnexpectedReply("junk".to_owned())) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::UnexpectedReply(_))));
        assert_eq!(calls, 1);
    }
}
