//! Rate limits over the seed's `ratelimit:{endpoint}:{identifier}:{window}` counters:
//! fixed one-minute windows. [`RateLimiter::hit`] counts a request and refuses the ones
//! over the limit (meeting creation, registration); [`RateLimiter::reserve`] and
//! [`RateLimiter::release`] let a caller count only failures (logins) while requests in
//! flight at once still see each other: each is counted before its outcome is known and
//! taken back when it succeeded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use store::StorageError;

use crate::domain::{self, RateLimitPart};
use crate::{MeetingsError, Repo, schema};

/// How many requests a window allows at one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The `{endpoint}` part, e.g. `auth:login:failed:email`.
    pub endpoint: &'static str,
    /// Requests allowed per one-minute window.
    pub per_minute: u64,
}

impl Limit {
    pub const fn new(endpoint: &'static str, per_minute: u64) -> Limit {
        Limit {
            endpoint,
            per_minute,
        }
    }

    fn part(&self) -> Result<RateLimitPart, MeetingsError> {
        key_part(self.endpoint)
    }
}

/// A key part made in the code; one that does not parse is a bug reported as an error,
/// never a panic.
fn key_part(s: &str) -> Result<RateLimitPart, MeetingsError> {
    RateLimitPart::parse(s)
        .map_err(|e| MeetingsError::Storage(StorageError::corrupt("a rate-limit key", e)))
}

/// A refusal: come back after this long (the rest of the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, at least 1, as `Retry-After` says it.
    pub fn seconds(self) -> u64 {
        self.0.as_secs().max(1)
    }
}

/// The limiter: the repository plus the clock's "now" given per call.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    repo: Repo,
}

/// The identifier part for a value a caller gave (an email, an address): a digest, so
/// any text makes a valid key part and the key holds no personal data.
pub fn identifier(kind: &'static str, value: &str) -> Result<RateLimitPart, MeetingsError> {
    let digest = super::crypto::sha256_hex(value.as_bytes());
    key_part(&format!("{kind}:{}", digest.get(..32).unwrap_or(&digest)))
}

fn retry_after(window_start: i64, now: DateTime<Utc>) -> RetryAfter {
    let width = i64::try_from(schema::RATE_LIMIT_TTL.as_secs()).unwrap_or(60);
    let left = (window_start + width - now.timestamp()).max(1);
    RetryAfter(Duration::from_secs(u64::try_from(left).unwrap_or(1)))
}

impl RateLimiter {
    pub fn new(repo: Repo) -> RateLimiter {
        RateLimiter { repo }
    }

    /// Counts one request of `identifier` at `limit`; refused (with the rest of the
    /// window) when it is over the limit.
    pub async fn hit(
        &self,
        limit: &Limit,
        identifier: &RateLimitPart,
        now: DateTime<Utc>,
    ) -> Result<Result<(), RetryAfter>, MeetingsError> {
        let count = self
            .repo
            .count_request(&limit.part()?, identifier, now)
            .await?;
        if count > limit.per_minute {
            let window = domain::rate_limit_window(now, schema::RATE_LIMIT_TTL.as_secs());
            return Ok(Err(retry_after(window, now)));
        }
        Ok(Ok(()))
    }

    /// Counts one request of `identifier` at `limit` before it is known whether it
    /// counts (a login, before its password is checked), so that requests in flight at
    /// once see each other: a [`Reservation`], or refused (and not counted) when the
    /// window is already full. [`RateLimiter::release`] takes back a reservation that
    /// turned out not to count; one kept is counted for the window.
    pub async fn reserve(
        &self,
        limit: &Limit,
        identifier: &RateLimitPart,
        now: DateTime<Utc>,
    ) -> Result<Result<Reservation, RetryAfter>, MeetingsError> {
        let endpoint = limit.part()?;
        let window = domain::rate_limit_window(now, schema::RATE_LIMIT_TTL.as_secs());
        let count = self.repo.count_request(&endpoint, identifier, now).await?;
        let reservation = Reservation {
            endpoint,
            identifier: identifier.clone(),
            window,
        };
        if count > limit.per_minute {
            self.release(reservation).await?;
            return Ok(Err(retry_after(window, now)));
        }
        Ok(Ok(reservation))
    }

    /// Takes back a [`Reservation`] (in the window it was made in).
    pub async fn release(&self, reservation: Reservation) -> Result<(), MeetingsError> {
        self.repo
            .uncount_request(
                &reservation.endpoint,
                &reservation.identifier,
                reservation.window,
            )
            .await
    }
}

/// One request counted by [`RateLimiter::reserve`]: kept, it counts; released, it
/// does not.
#[derive(Debug)]
#[must_use = "a reservation is kept (it counts) or released"]
pub struct Reservation {
    endpoint: RateLimitPart,
    identifier: RateLimitPart,
    window: i64,
}
