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

    /// The current window's count without counting anything (0 when none was
    /// counted), and the window's start (Unix seconds).
    pub async fn request_count(
        &self,
        endpoint: &RateLimitPart,
        identifier: &RateLimitPart,
        now: DateTime<Utc>,
    ) -> Result<(u64, i64), MeetingsError> {
        let window = domain::rate_limit_window(now, schema::RATE_LIMIT_TTL.as_secs());
        let key = schema::rate_limit_key(endpoint, identifier, window);
        let mut conn = self.redis.conn();
        let count: Option<u64> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        Ok((count.unwrap_or(0), window))
    }
}
