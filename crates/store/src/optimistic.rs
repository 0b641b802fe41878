//! The one optimistic-concurrency loop: read, decide, write if nothing changed, else
//! again. Rolls, the drinking game and campaigns all change their documents this way.

use std::future::Future;
use std::time::Duration;

use crate::StorageError;

/// How often an optimistic change is tried before it gives up with
/// [`StorageError::Conflict`]. Each lost race means somebody else's change went in, so
/// running out takes that many writers hammering one document at once.
pub const MAX_ATTEMPTS: u32 = 16;

/// What one attempt decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// Written (or nothing needed writing): the result.
    Done(T),
    /// The guard failed: somebody else changed the document; read it again.
    Retry,
}

/// Runs `attempt` (given the attempt number, from 1) until it is [`Attempt::Done`],
/// at most [`MAX_ATTEMPTS`] times, then fails with [`StorageError::Conflict`] naming
/// `what`. After the first few lost races it yields a little (growing, jittered) so
/// that a crowd of writers spreads out instead of colliding in lockstep.
///
/// `attempt` may run several times: it must read what it decides on inside itself,
/// and have no effect outside the guarded write.
pub async fn optimistic<T, E, F, Fut>(what: &str, mut attempt: F) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<Attempt<T>, E>>,
    E: From<StorageError>,
{
    for n in 1..=MAX_ATTEMPTS {
        match attempt(n).await? {
            Attempt::Done(value) => return Ok(value),
            Attempt::Retry => {
                tracing::debug!(what, attempt = n, "changed under us; trying again");
                if n >= 3 {
                    let jitter = u64::from(rand_below(1 << n.min(8)));
                    tokio::time::sleep(Duration::from_micros(100 * jitter)).await;
                }
            }
        }
    }
    tracing::warn!(
        what,
        attempts = MAX_ATTEMPTS,
        "gave up: too many concurrent changes"
    );
    Err(StorageError::conflict(what).into())
}

/// A cheap non-cryptographic number below `n` (jitter only).
fn rand_below(n: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (hasher.finish() % u64::from(n.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_until_done_and_gives_up_with_a_conflict() {
        let mut calls = 0;
        let value: Result<u32, StorageError> = optimistic("doc", |n| {
            calls += 1;
            async move {
                Ok(if n < 3 {
                    Attempt::Retry
                } else {
                    Attempt::Done(n)
                })
            }
        })
        .await;
        assert_eq!(value.expect("done"), 3);
        assert_eq!(calls, 3);

        let never: Result<(), StorageError> =
            optimistic("game:1", |_| async { Ok(Attempt::Retry) }).await;
        assert!(matches!(never, Err(StorageError::Conflict { what }) if what == "game:1"));
    }

    #[tokio::test]
    async fn an_error_stops_at_once() {
        let mut calls = 0;
        let result: Result<(), StorageError> = optimistic("doc", |_| {
            calls += 1;
            async { Err(StorageError::not_found("doc")) }
        })
        .await;
        assert!(matches!(result, Err(StorageError::NotFound { .. })));
        assert_eq!(calls, 1);
    }
}
