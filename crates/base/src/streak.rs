//! [`FailureStreak`]: telling a repeated failure (a store that stays down through many
//! requests, a heartbeat that keeps failing) once when it begins and once when it
//! ends, instead of once per try.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a repeated piece of work is failing, so its caller logs the first failure of
/// a run loudly (`warn`), the rest at `debug`, and once (`info`) when it works again:
///
/// ```
/// let streak = base::FailureStreak::new();
/// assert!(streak.failed(), "the first failure: say it");
/// assert!(!streak.failed(), "the next ones: quietly");
/// assert!(streak.succeeded(), "working again: say so, once");
/// assert!(!streak.succeeded());
/// ```
///
/// It lives here, below the web and storage layers, so that every crate that sees an
/// outage (the web's session store, the features' workers) tells it the same way.
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
        // Read first: while all is well (nearly always) this is a plain load, not a
        // write every caller contends for.
        self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed)
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
