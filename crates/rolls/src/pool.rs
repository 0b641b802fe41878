//! Where dice work runs: never on the async workers.
//!
//! Parsing, rolling, rendering and odds are plain CPU work with no await in them; on
//! the runtime's worker threads a heavy one would hold a worker for its whole
//! duration, and a few at once would stall every shard, `/ping` included. So each
//! runs on tokio's blocking threads ([`tokio::task::spawn_blocking`]), and a
//! semaphore per lane bounds how many run at once, so a burst of heavy requests
//! queues (cheaply, as waiting tasks) instead of taking every core.
//!
//! Two lanes, because their costs differ by three orders of magnitude: a roll is at
//! most 20,000 dice (a few milliseconds), odds may take seconds (up to 40 million
//! exact steps, then up to 10 million simulated dice; see the dice crate's
//! GRAMMAR.md). With one lane, a queue of heavy odds would hold every quick roll
//! behind it.
//!
//! A permit is taken before the work starts and released when the work ends, even if
//! the request that asked for it is gone (a dropped future cannot stop a blocking
//! thread), so the bound holds at every moment. The queue is bounded too: past
//! [`MAX_WAITING`] requests waiting in a lane, the next is refused at once
//! ([`RollsError::Busy`]) rather than held for minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::RollsError;

/// Most requests waiting for one lane; the next is refused as busy.
pub const MAX_WAITING: usize = 256;

/// One lane: how many run at once, and how many wait.
#[derive(Debug)]
struct Lane {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Lane {
    fn new(size: usize) -> Arc<Lane> {
        Arc::new(Lane {
            running: Arc::new(Semaphore::new(size)),
            waiting: AtomicUsize::new(0),
        })
    }
}

/// Counts a waiting request for as long as it waits (also when it is dropped).
struct Waiting<'l>(&'l AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The bounded pool of dice work. Cheap to clone; clones share the lanes.
#[derive(Debug, Clone)]
pub struct DicePool {
    rolls: Arc<Lane>,
    odds: Arc<Lane>,
    sizes: (usize, usize),
}

impl DicePool {
    /// At most `rolls` rolls and `odds` odds computations at once (each at least 1).
    pub fn new(rolls: usize, odds: usize) -> DicePool {
        let (rolls, odds) = (rolls.max(1), odds.max(1));
        DicePool {
            rolls: Lane::new(rolls),
            odds: Lane::new(odds),
            sizes: (rolls, odds),
        }
    }

    /// Sized from the machine: each lane gets half of the cores (at least one), so
    /// with both lanes busy the dice use the cores and the runtime's workers, which
    /// only wait on the network, still get scheduled at once.
    pub fn for_this_machine() -> DicePool {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let lane = (cores / 2).max(1);
        DicePool::new(lane, lane)
    }

    /// `(rolls, odds)`: how many of each may run at once.
    pub fn sizes(&self) -> (usize, usize) {
        self.sizes
    }

    /// Runs `work` (a roll and its rendering) in the rolls lane.
    pub async fn roll<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RollsError> {
        run(&self.rolls, work).await
    }

    /// Runs `work` (odds and their rendering) in the odds lane.
    pub async fn odds<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RollsError> {
        run(&self.odds, work).await
    }
}

async fn run<T: Send + 'static>(
    lane: &Lane,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RollsError> {
    let waiting = lane.waiting.fetch_add(1, Ordering::AcqRel);
    let queued = Waiting(&lane.waiting);
    if waiting >= MAX_WAITING {
        return Err(RollsError::Busy { waiting });
    }
    let permit = Arc::clone(&lane.running)
        .acquire_owned()
        .await
        .map_err(|_| RollsError::DiceWork("the dice pool is closed".to_owned()))?;
    drop(queued);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|error| RollsError::DiceWork(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_off_the_runtime_and_a_lane_runs_one_at_a_time() {
        let pool = DicePool::new(1, 1);
        assert_eq!(pool.sizes(), (1, 1));
        let runtime_thread = std::thread::current().id();
        let ran_on = pool
            .roll(|| std::thread::current().id())
            .await
            .expect("runs");
        assert_ne!(ran_on, runtime_thread);

        // Hold the odds lane: a second odds job waits, a roll does not.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let held = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.odds(move || {
                    let _ = started.send(());
                    gate.recv().is_ok()
                })
                .await
            }
        });
        running.await.expect("the first odds job runs");
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.odds(|| 2).await }
        });
        assert_eq!(pool.roll(|| 1).await.expect("roll"), 1);
        assert!(!queued.is_finished());
        release.send(()).expect("release");
        assert!(held.await.expect("join").expect("odds"));
        assert_eq!(queued.await.expect("join").expect("odds"), 2);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = DicePool::new(1, 1);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let held = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.odds(move || {
                    let _ = started.send(());
                    gate.recv().is_ok()
                })
                .await
            }
        });
        running.await.expect("the first odds job runs");
        let waiters: Vec<_> = (0..MAX_WAITING)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.odds(|| ()).await })
            })
            .collect();
        // Let every waiter reach the queue.
        while pool.odds.waiting.load(Ordering::Acquire) < MAX_WAITING {
            tokio::task::yield_now().await;
        }
        let err = pool.odds(|| ()).await.expect_err("the queue is full");
        assert!(matches!(err, RollsError::Busy { waiting } if waiting == MAX_WAITING));
        assert!(
            err.user_message().contains("busy"),
            "{}",
            err.user_message()
        );
        // The rolls lane is another queue.
        assert_eq!(pool.roll(|| 3).await.expect("roll"), 3);
        release.send(()).expect("release");
        assert!(held.await.expect("join").expect("odds"));
        for w in waiters {
            w.await.expect("join").expect("ran");
        }
        assert_eq!(pool.odds.waiting.load(Ordering::Acquire), 0);
    }
}
