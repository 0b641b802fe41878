//! The scan worker: a long-running [`feature::Service`] that runs the scans people
//! request.
//!
//! It looks for runs that are queued, and for runs that are `running` but abandoned
//! (their process died: the channel's lock is free, see [`crate::scan`]), and runs a
//! few of them at once ([`WorkerConfig::concurrency`]), each on a task of its own. It
//! wakes at once when this process queues a run ([`Scanner::request`]) and otherwise
//! looks every [`WorkerConfig::poll_every`], for runs other processes queued. A run
//! whose channel another live worker holds is left to that worker ([`ScanError::Busy`]).
//!
//! On shutdown it stops taking runs and tells its scans to stop after the page in hand;
//! they stay `running`, and the next worker to start (here or in another process)
//! continues them from their rows.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use feature::{FailureStreak, Service};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::domain::ChannelId;
use crate::repo::RepoError;
use crate::scan::{ScanError, Scanner, WAKE};

/// The service's name (on `/readyz`).
pub const SCAN_WORKER: &str = "clips-scan-worker";

/// How the scan worker works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// How many channels are scanned at once by this process.
    pub concurrency: usize,
    /// How often the worker looks for runs queued by other processes (and for runs
    /// abandoned by dead ones).
    pub poll_every: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            concurrency: 4,
            poll_every: Duration::from_secs(2),
        }
    }
}

/// The scan worker as a service.
pub fn scan_worker(scanner: Scanner, config: WorkerConfig) -> Service {
    Service::new(SCAN_WORKER, move |shutdown: CancellationToken| {
        let scanner = scanner.clone();
        async move {
            work(scanner, config, shutdown).await;
            Ok::<(), std::convert::Infallible>(())
        }
    })
}

/// The worker's loop, until `shutdown` fires.
pub async fn work(scanner: Scanner, config: WorkerConfig, shutdown: CancellationToken) {
    let concurrency = config.concurrency.max(1);
    // Channels this process is scanning now: never started twice from here.
    let active: Arc<Mutex<HashSet<ChannelId>>> = Arc::default();
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Whether reading the pending runs fails (PostgreSQL down): told once per outage.
    let reads = FailureStreak::new();
    tracing::info!(
        concurrency,
        poll_ms = config.poll_every.as_millis() as u64,
        "scan worker started"
    );
    loop {
        while tasks.try_join_next().is_some() {}
        if tasks.len() < concurrency {
            let limit = u32::try_from(concurrency * 4 + tasks.len()).unwrap_or(u32::MAX);
            let pending = scanner.repo().pending_runs(limit).await;
            note_pending_read(&reads, &pending);
            // A failure is logged by note_pending_read, once per outage.
            if let Ok(pending) = pending {
                for run in pending {
                    if tasks.len() >= concurrency {
                        break;
                    }
                    let channel = run.channel;
                    {
                        let mut active = lock(&active);
                        if !active.insert(channel) {
                            continue;
                        }
                    }
                    let scanner = scanner.clone();
                    let active = active.clone();
                    let stop = shutdown.child_token();
                    tasks.spawn(async move {
                            match scanner.run(run.id, &|_| {}, stop).await {
                                Ok(_) | Err(ScanError::Busy) => {}
                                Err(error) => {
                                    tracing::warn!(run = %run.id, %channel, %error, "scan worker: run interrupted; it will be continued");
                                }
                            }
                            lock(&active).remove(&channel);
                        });
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = WAKE.notified() => {}
            _ = tokio::time::sleep(config.poll_every) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // The scans stop after their page in hand (their tokens are children of shutdown).
    while tasks.join_next().await.is_some() {}
    tracing::info!("scan worker stopped");
}

/// Logs a read of the pending runs: the first failure of an outage at WARN, the
/// repeats (one per poll) at DEBUG, and one INFO when they are read again.
fn note_pending_read<T>(reads: &FailureStreak, result: &Result<T, RepoError>) {
    match result {
        Err(error) if reads.failed() => tracing::warn!(
            %error,
            "scan worker: cannot read pending runs; retrying quietly until it can"
        ),
        Err(error) => tracing::debug!(%error, "scan worker: still cannot read pending runs"),
        Ok(_) if reads.succeeded() => tracing::info!("scan worker: reads pending runs again"),
        Ok(_) => {}
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_outage_is_warned_once_and_its_end_told_once() {
        let logs = testkit::logged(async {
            let reads = FailureStreak::new();
            let down =
                || -> Result<(), RepoError> { Err(RepoError::UnknownChannel(ChannelId::new(1))) };
            note_pending_read(&reads, &Ok::<(), RepoError>(()));
            for _ in 0..3 {
                note_pending_read(&reads, &down());
            }
            note_pending_read(&reads, &Ok::<(), RepoError>(()));
            note_pending_read(&reads, &Ok::<(), RepoError>(()));
            note_pending_read(&reads, &down());
        })
        .await;
        let lines = |level: &str, needle: &str| {
            logs.lines()
                .filter(|l| l.contains(level) && l.contains(needle))
                .count()
        };
        // Two outages: each warned once, its repeats at DEBUG, its end told once.
        assert_eq!(lines(" WARN ", "cannot read pending runs"), 2, "{logs}");
        assert_eq!(
            lines(" DEBUG ", "still cannot read pending runs"),
            2,
            "{logs}"
        );
        assert_eq!(lines(" INFO ", "reads pending runs again"), 1, "{logs}");
    }
}
