//! [`FailureStreak`]: logging a repeated piece of work (a heartbeat, a probe) once per
//! change of state instead of once per try.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a repeated piece of work is failing, so its caller logs the first failure of
/// a run at `warn`, the rest at `debug`, and one `info` when it works again:
///
/// ```
/// # let streak = feature::FailureStreak::new();
/// # let result: Result<(), &str> = Err("down");
/// match result {
///     Err(error) if streak.failed() => tracing::warn!(%error, "heartbeat failed"),
///     Err(error) => tracing::debug!(%error, "heartbeat failed again"),
///     Ok(()) if streak.succeeded() => tracing::info!("heartbeats work again"),
///     Ok(()) => {}
/// }
/// ```
#[derive(Debug, Default)]
pub struct FailureStreak {
    failing: AtomicBool,
}

impl FailureStreak {
    pub const fn new() -> FailureStreak {
        FailureStreak {
            failing: AtomicBool::new(false),
        }
    }

    /// Records a failure; true when it is the first since the work last succeeded (or
    /// ever), the one to log loudly.
    pub fn failed(&self) -> bool {
        !self.failing.swap(true, Ordering::Relaxed)
    }

    /// Records a success; true when it ends a run of failures, the one to say so.
    pub fn succeeded(&self) -> bool {
        self.failing.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::FailureStreak;

    #[test]
    fn only_the_first_failure_and_the_first_success_after_it_stand_out() {
        let streak = FailureStreak::new();
        assert!(!streak.succeeded(), "nothing to say while it works");
        assert!(streak.failed(), "the first failure");
        assert!(!streak.failed(), "a second failure is quiet");
        assert!(!streak.failed(), "and a third");
        assert!(streak.succeeded(), "working again");
        assert!(!streak.succeeded(), "then quiet");
        assert!(streak.failed(), "a new outage is told again");
    }
}
