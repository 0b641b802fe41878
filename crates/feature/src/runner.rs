//! Running what features hand over: [`JobRunner`] (scheduled jobs under Redis locks)
//! and [`ServiceRunner`] (long-running services, restarted with backoff, reported to
//! `/readyz`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::Redis;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{Job, Service};

/// The Redis key that holds the lock of job `name`. Tavern's own key, not a seed's.
pub fn lock_key(name: &str) -> String {
    format!("tavern:lock:job:{name}")
}

/// Runs jobs on their schedules until shutdown.
#[derive(Debug)]
pub struct JobRunner {
    redis: Redis,
    instance: String,
}

impl JobRunner {
    /// `instance` names this process in the lock value (for operators reading Redis).
    pub fn new(redis: Redis, instance: String) -> JobRunner {
        JobRunner { redis, instance }
    }

    /// Takes the lock of `job` for one period: `SET key instance NX PX period`. The lock is
    /// never released early, so a second replica cannot run the job again in the same
    /// period even if the first finished quickly.
    async fn acquire(&self, job: &Job) -> bool {
        let mut conn = self.redis.conn();
        let ttl_ms = job.period().as_millis().clamp(1000, u64::MAX as u128) as u64;
        let reply: Result<Option<String>, _> = store::redis::cmd("SET")
            .arg(lock_key(job.name()))
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await;
        match reply {
            Ok(v) => v.is_some(),
            Err(error) => {
                tracing::warn!(%error, "could not take the job lock; skipping this period");
                false
            }
        }
    }

    async fn run_once(job: &Job, said: &mut Said) {
        let started = Instant::now();
        match job.run_now().await {
            Ok(()) => {
                let ms = started.elapsed().as_millis() as u64;
                if said.success() {
                    tracing::info!(
                        ms,
                        "job done (its next runs are logged at debug level while they succeed)"
                    );
                } else {
                    tracing::debug!(ms, "job done");
                }
            }
            Err(error) => {
                said.failure();
                tracing::error!(%error, "job failed; it runs again next period");
            }
        }
    }

    /// Schedules every job; returns after shutdown once the `on_shutdown` jobs ran.
    pub async fn run(self, jobs: Vec<Job>, shutdown: CancellationToken) {
        let runner = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        for job in jobs {
            let runner = Arc::clone(&runner);
            let shutdown = shutdown.clone();
            let span = tracing::info_span!("job", job = job.name());
            tasks.spawn(
                async move {
                    let mut ticker = tokio::time::interval(job.period());
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    // The first tick fires at once: it is the start-up run when asked for.
                    ticker.tick().await;
                    let mut said = Said::default();
                    if job.runs_at_startup() && runner.acquire(&job).await {
                        Self::run_once(&job, &mut said).await;
                    }
                    loop {
                        tokio::select! {
                            _ = ticker.tick() => {
                                if runner.acquire(&job).await {
                                    Self::run_once(&job, &mut said).await;
                                }
                            }
                            () = shutdown.cancelled() => break,
                        }
                    }
                    if job.runs_on_shutdown() {
                        Self::run_once(&job, &mut said).await;
                    }
                }
                .instrument(span),
            );
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// What a job's log has said of its runs: a success is told at `info` when it is the
/// first since start-up or since a failure, at `debug` otherwise (a job every 30 s
/// would fill an operator's log with "done"); every failure is an error.
#[derive(Debug, Default)]
struct Said {
    succeeding: bool,
}

impl Said {
    /// A run succeeded: whether to say so at `info`.
    fn success(&mut self) -> bool {
        !std::mem::replace(&mut self.succeeding, true)
    }

    /// A run failed (said as an error): the next success is told at `info` again.
    fn failure(&mut self) {
        self.succeeding = false;
    }
}

/// How a service is doing, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    Starting,
    Running,
    /// It failed (or returned before shutdown) and is being started again.
    Restarting {
        error: String,
    },
    Stopped,
}

/// Runs the features' services and remembers how each is doing.
#[derive(Debug, Clone, Default)]
pub struct ServiceRunner {
    states: Arc<Mutex<BTreeMap<&'static str, ServiceState>>>,
}

impl ServiceRunner {
    pub fn new() -> ServiceRunner {
        ServiceRunner::default()
    }

    fn set(&self, name: &'static str, state: ServiceState) {
        if let Ok(mut states) = self.states.lock() {
            states.insert(name, state);
        }
    }

    /// Every service by name with its state.
    pub fn states(&self) -> Vec<(&'static str, ServiceState)> {
        self.states
            .lock()
            .map(|s| s.iter().map(|(n, st)| (*n, st.clone())).collect())
            .unwrap_or_default()
    }

    /// Starts every service; returns once all stopped after `shutdown`. A service that
    /// fails, or returns while Tavern is not shutting down, is logged and started again
    /// after 0.5 s doubling to 30 s.
    pub async fn run(&self, services: Vec<Service>, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        for service in services {
            self.set(service.name(), ServiceState::Starting);
            let runner = self.clone();
            let shutdown = shutdown.clone();
            let span = tracing::info_span!("service", service = service.name());
            tasks.spawn(
                async move {
                    let name = service.name();
                    let mut delay = crate::backoff::FIRST_DELAY;
                    loop {
                        runner.set(name, ServiceState::Running);
                        tracing::info!("service started");
                        let started = Instant::now();
                        let result = service.start(shutdown.clone()).await;
                        if shutdown.is_cancelled() {
                            if let Err(error) = result {
                                tracing::warn!(%error, "service failed while stopping");
                            }
                            break;
                        }
                        let error = match result {
                            Ok(()) => "it stopped by itself".to_owned(),
                            Err(error) => error.to_string(),
                        };
                        // A service that ran a good while before failing starts over
                        // with a short wait; one that keeps failing waits longer.
                        if started.elapsed() > Duration::from_secs(60) {
                            delay = crate::backoff::FIRST_DELAY;
                        }
                        tracing::error!(%error, retry_in = ?delay, "service failed; starting it again");
                        runner.set(name, ServiceState::Restarting { error });
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = shutdown.cancelled() => break,
                        }
                        delay = (delay * 2).min(crate::backoff::MAX_DELAY);
                    }
                    runner.set(name, ServiceState::Stopped);
                    tracing::info!("service stopped");
                }
                .instrument(span),
            );
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_failing_service_is_restarted_and_reported_then_stops_on_shutdown() {
        let starts = Arc::new(AtomicU32::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let counted = Arc::clone(&starts);
        let service = Service::new("flaky", move |shutdown: CancellationToken| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            let tx = tx.clone();
            async move {
                let _ = tx.send(n);
                if n == 1 {
                    return Err::<(), _>("first start fails");
                }
                shutdown.cancelled().await;
                Ok(())
            }
        });
        let runner = ServiceRunner::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let runner = runner.clone();
            let shutdown = shutdown.clone();
            async move { runner.run(vec![service], shutdown).await }
        });
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2), "restarted after the failure");
        assert_eq!(runner.states(), vec![("flaky", ServiceState::Running)]);
        shutdown.cancel();
        task.await.expect("runner");
        assert_eq!(runner.states(), vec![("flaky", ServiceState::Stopped)]);
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }
}

#[cfg(test)]
mod job_tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn a_job_s_first_success_and_the_first_after_a_failure_are_told_at_info() {
        let mut said = Said::default();
        assert!(said.success(), "the first run after start-up");
        assert!(!said.success());
        assert!(!said.success());
        said.failure();
        assert!(said.success(), "back after a failure");
        assert!(!said.success());
        said.failure();
        said.failure();
        assert!(said.success());
    }

    fn counting(
        name: &'static str,
        runs: &Arc<AtomicU32>,
        tx: &tokio::sync::mpsc::UnboundedSender<&'static str>,
    ) -> Job {
        let (runs, tx) = (Arc::clone(runs), tx.clone());
        Job::every(name, Duration::from_secs(3600), move || {
            runs.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(name);
            async { Ok::<(), std::io::Error>(()) }
        })
    }

    #[tokio::test]
    async fn an_at_startup_job_runs_at_once_under_its_lock_and_the_others_wait_a_period() {
        let server = store::harness::TestRedis::start().await;
        let redis = server.connect().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (eager, patient) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let jobs = vec![
            counting("eager", &eager, &tx).at_startup(),
            counting("patient", &patient, &tx).on_shutdown(),
        ];
        let shutdown = CancellationToken::new();
        let runner =
            tokio::spawn(JobRunner::new(redis.clone(), "test".into()).run(jobs, shutdown.clone()));
        assert_eq!(rx.recv().await, Some("eager"), "ran right after start-up");
        // The start-up run took the period's lock, so a second replica would not run it.
        let mut conn = redis.conn();
        let holder: Option<String> = store::redis::cmd("GET")
            .arg(lock_key("eager"))
            .query_async(&mut conn)
            .await
            .expect("GET lock");
        assert_eq!(holder.as_deref(), Some("test"));
        shutdown.cancel();
        runner.await.expect("runner");
        assert_eq!(eager.load(Ordering::SeqCst), 1);
        assert_eq!(patient.load(Ordering::SeqCst), 1, "only its shutdown run");
        assert_eq!(rx.recv().await, Some("patient"));
    }

    #[tokio::test]
    async fn two_replicas_with_the_same_job_run_it_once_in_a_period() {
        let server = store::harness::TestRedis::start().await;
        let redis = server.connect().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let runs = Arc::new(AtomicU32::new(0));
        // Shut down from the start: each replica makes its start-up attempt (the first
        // tick fires at once), then stops before a second period.
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let replicas = ["replica-a", "replica-b"].map(|instance| {
            let jobs = vec![counting("purge", &runs, &tx).at_startup()];
            tokio::spawn(JobRunner::new(redis.clone(), instance.into()).run(jobs, shutdown.clone()))
        });
        for replica in replicas {
            replica.await.expect("replica");
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one run across both replicas"
        );
        assert_eq!(rx.recv().await, Some("purge"));
        drop(tx);
        assert_eq!(rx.recv().await, None, "and no other");
        let mut conn = redis.conn();
        let holder: Option<String> = store::redis::cmd("GET")
            .arg(lock_key("purge"))
            .query_async(&mut conn)
            .await
            .expect("GET lock");
        assert!(
            matches!(holder.as_deref(), Some("replica-a" | "replica-b")),
            "the period's lock is the runner's: {holder:?}"
        );
    }
}
