//! [`RecentLimit`]: at most so many of something in any span of time, counted in memory
//! (one session's requests, one process's retries).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `limit` in any `span`: when each of the last `limit` allowed was.
#[derive(Debug, Clone)]
pub struct RecentLimit {
    limit: usize,
    span: Duration,
    allowed: VecDeque<Instant>,
}

impl RecentLimit {
    pub fn new(limit: usize, span: Duration) -> RecentLimit {
        RecentLimit {
            limit,
            span,
            allowed: VecDeque::with_capacity(limit),
        }
    }

    /// Allows (and counts) one more at `now`, or says how long until one more is
    /// allowed; a refusal is not counted.
    pub fn allow(&mut self, now: Instant) -> Result<(), Duration> {
        while self
            .allowed
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= self.span)
        {
            self.allowed.pop_front();
        }
        if self.allowed.len() < self.limit {
            self.allowed.push_back(now);
            return Ok(());
        }
        Err(match self.allowed.front() {
            Some(oldest) => self
                .span
                .saturating_sub(now.saturating_duration_since(*oldest)),
            None => self.span,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_is_allowed_in_any_span_and_the_wait_is_told() {
        let mut limit = RecentLimit::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let secs = |s| t0 + Duration::from_secs(s);
        assert_eq!(limit.allow(t0), Ok(()));
        assert_eq!(limit.allow(secs(10)), Ok(()));
        assert_eq!(limit.allow(secs(20)), Ok(()));
        // The fourth within the minute waits until the first is a minute old.
        assert_eq!(limit.allow(secs(30)), Err(Duration::from_secs(30)));
        assert_eq!(limit.allow(secs(59)), Err(Duration::from_secs(1)));
        // A refusal is not counted: at 60 s the first has left the window.
        assert_eq!(limit.allow(secs(60)), Ok(()));
        assert_eq!(limit.allow(secs(61)), Err(Duration::from_secs(9)));
        assert_eq!(limit.allow(secs(70)), Ok(()));
        // After a quiet minute the whole limit is there again.
        for s in [200, 201, 202] {
            assert_eq!(limit.allow(secs(s)), Ok(()));
        }
        assert!(limit.allow(secs(203)).is_err());
    }
}
