//! Rate limits: fixed per-minute windows (`ratelimit:{endpoint}:{identifier}:{window}`).

use chrono::{DateTime, Utc};

use super::{MeetingsError, Repo};
use crate::domain::{self, RateLimitPart};
use crate::schema;

impl Repo {
    /// Counts one request in the current per-minute window and returns the window's count
    /// (`INCR` and `EXPIRE 60` in one `MULTI`/`EXEC`, so no counter is left without TTL).
    /// The caller compares it with its limit.
    pub async fn count_request(
        &self,
        endpoint: &RateLimitPart,
        identifier: &RateLimitPart,
        now: DateTime<Utc>,
    ) -> Result<u64, MeetingsError> {
        let window = domain::rate_limit_window(now, schema::RATE_LIMIT_TTL.as_secs());
        let key = schema::rate_limit_key(endpoint, identifier, window);
        let ttl = i64::try_from(schema::RATE_LIMIT_TTL.as_secs()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic().incr(&key, 1).expire(&key, ttl).ignore();
        let mut conn = self.redis.conn();
        let (count,): (u64,) = pipe.query_async(&mut conn).await?;
        Ok(count)
    }

    /// Takes back one request counted in `window` (`DECR` and `EXPIRE 60` in one
    /// `MULTI`/`EXEC`: a counter the window's end already removed comes back at -1 for
    /// a minute, in a window no request uses any more, and never without TTL).
    pub async fn uncount_request(
        &self,
        endpoint: &RateLimitPart,
        identifier: &RateLimitPart,
        window: i64,
    ) -> Result<(), MeetingsError> {
        let key = schema::rate_limit_key(endpoint, identifier, window);
        let ttl = i64::try_from(schema::RATE_LIMIT_TTL.as_secs()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .decr(&key, 1)
            .ignore()
            .expire(&key, ttl)
            .ignore();
        let mut conn = self.redis.conn();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }
}
