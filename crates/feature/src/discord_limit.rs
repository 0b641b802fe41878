//! Discord's global request limit, shared through Redis by every process of one bot.
//!
//! Discord counts a bot's requests per second across all its connections (50 by
//! default). Each process keeps its own pace ([`discord::DiscordConfig::global_rate_limit`]);
//! with several processes, [`RedisGlobalLimiter`] makes them keep it together: one
//! counter per wall-clock second (`tavern:discord:global:{second}`, incremented and
//! given a two-second expiry in one `MULTI`/`EXEC`), and a request that finds its second
//! full waits for the next. One key, so it works on a Redis Cluster too.
//!
//! If Redis does not answer, requests go on (with a warning at most once a minute):
//! each process still keeps its own limit and Discord's 429s are still honoured, and a
//! bot that stops talking to Discord because its cache is down would be worse.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use discord::{BoxFuture, GlobalLimiter};
use store::{Redis, StoreError};

/// The Redis key counting the bot's requests in the wall-clock second `second`.
/// Tavern's own key, not a seed's.
pub fn window_key(second: u64) -> String {
    format!("tavern:discord:global:{second}")
}

/// The global limit in Redis. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RedisGlobalLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    redis: Redis,
    per_second: u64,
    /// When an unreachable Redis was last reported (seconds since the epoch).
    warned_at: AtomicU64,
}

impl RedisGlobalLimiter {
    /// At most `per_second` requests per second for all processes using this Redis.
    pub fn new(redis: Redis, per_second: u16) -> RedisGlobalLimiter {
        RedisGlobalLimiter {
            inner: Arc::new(Inner {
                redis,
                per_second: u64::from(per_second.max(1)),
                warned_at: AtomicU64::new(0),
            }),
        }
    }

    /// Takes one request of the second that `now` (since the epoch) falls in: `None`
    /// when it may go, or how long until the next second when this one is full.
    pub async fn try_acquire(&self, now: Duration) -> Result<Option<Duration>, StoreError> {
        let second = now.as_secs();
        let key = window_key(second);
        let mut conn = self.inner.redis.conn();
        let (taken,): (u64,) = store::redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(2000)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(StoreError::from)?;
        if taken <= self.inner.per_second {
            return Ok(None);
        }
        Ok(Some(Duration::from_secs(second + 1).saturating_sub(now)))
    }

    async fn wait_turn(self) {
        loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            match self.try_acquire(now).await {
                Ok(None) => return,
                Ok(Some(wait)) => tokio::time::sleep(wait).await,
                Err(error) => {
                    let last = self.inner.warned_at.load(Ordering::Relaxed);
                    if now.as_secs() >= last + 60 {
                        self.inner.warned_at.store(now.as_secs(), Ordering::Relaxed);
                        tracing::warn!(%error, "the shared Discord request limit is unreachable in Redis; this process keeps its own limit meanwhile");
                    }
                    return;
                }
            }
        }
    }
}

impl GlobalLimiter for RedisGlobalLimiter {
    fn acquire(&self) -> BoxFuture<'static, ()> {
        Box::pin(self.clone().wait_turn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn processes_share_one_count_per_second() {
        let server = store::harness::TestRedis::start().await;
        let first = RedisGlobalLimiter::new(server.connect().await, 3);
        let second = RedisGlobalLimiter::new(server.connect().await, 3);
        let now = Duration::from_millis(1_750_000_000_250);
        let mut answers = Vec::new();
        for limiter in [&first, &second, &first, &second] {
            answers.push(limiter.try_acquire(now).await.expect("redis"));
        }
        assert_eq!(
            answers,
            vec![None, None, None, Some(Duration::from_millis(750))],
            "the fourth request of the second waits for the next, whichever process sends it"
        );
        let next = now + Duration::from_millis(750);
        assert_eq!(second.try_acquire(next).await.expect("redis"), None);
        let ttl = store::harness::ttl(&server.connect().await, &window_key(1_750_000_000)).await;
        assert!((1..=2).contains(&ttl), "old seconds expire: {ttl}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_lets_requests_go() {
        let mut server = store::harness::TestRedis::start().await;
        let limiter = RedisGlobalLimiter::new(server.connect().await, 1);
        server.kill();
        tokio::time::timeout(Duration::from_secs(30), limiter.acquire())
            .await
            .expect("does not hold the request");
    }
}
