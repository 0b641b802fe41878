//! Retrying with backoff: the stores at start-up, start-up work, services.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// First wait after a failure; doubles up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// Runs `attempt` until it succeeds, waiting 0.5 s doubling to 30 s between tries;
/// `on_error` sees each failure with its attempt number. Returns the value and how many
/// attempts it took, or `None` when shut down first (also mid-attempt).
pub async fn retry<T, E, F, Fut>(
    shutdown: &CancellationToken,
    mut attempt: F,
    mut on_error: impl FnMut(u32, &E),
) -> Option<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = FIRST_DELAY;
    let mut attempts = 1u32;
    loop {
        let result = tokio::select! {
            result = attempt() => result,
            () = shutdown.cancelled() => return None,
        };
        match result {
            Ok(value) => return Some((value, attempts)),
            Err(error) => on_error(attempts, &error),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return None,
        }
        delay = (delay * 2).min(MAX_DELAY);
        attempts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_until_success_and_counts_attempts() {
        let shutdown = CancellationToken::new();
        let mut calls = 0;
        let mut seen = Vec::new();
        let result = retry(
            &shutdown,
            || {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err(n) } else { Ok("done") } }
            },
            |attempt, error: &i32| seen.push((attempt, *error)),
        )
        .await;
        assert_eq!(result, Some(("done", 3)));
        assert_eq!(seen, vec![(1, 1), (2, 2)]);
    }

    #[tokio::test]
    async fn shutdown_stops_the_retries() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let result: Option<((), u32)> =
            retry(&shutdown, || async { Err::<(), _>("down") }, |_, _| {}).await;
        assert_eq!(result, None);
    }
}
