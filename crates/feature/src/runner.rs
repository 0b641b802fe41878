//! Running what features hand over: [`JobRunner`] (scheduled jobs under Redis locks)
//! and [`ServiceRunner`] (long-running services, restarted with backoff, reported to
//! `/readyz`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use store::{Redis, Writes};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{FailureStreak, Job, Service};

/// The Redis key held while job `name` runs somewhere: taken before a run, renewed while
/// it goes on, deleted when it ends. Tavern's own key, not a seed's.
pub fn lock_key(name: &str) -> String {
    format!("tavern:lock:job:{name}")
}

/// The Redis key that says job `name` ran (or is running) in period `slot`, the number
/// of whole periods since the Unix epoch. Kept for two periods.
pub fn slot_key(name: &str, slot: u64) -> String {
    format!("tavern:lock:job:{name}:{slot}")
}

/// Forgets that job `name` ran: deletes its running lock and the marks of the periods it
/// ran in (`slot_key`), so the next period check runs it at once. For a process that
/// knows the earlier runs worked on what no longer exists (the sandbox after a restart);
/// returns how many keys it deleted.
pub async fn forget_job_runs(redis: &Redis, name: &str) -> Result<usize, store::redis::RedisError> {
    let lock = lock_key(name);
    let prefix = format!("{lock}:");
    let mut keys = vec![lock];
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = store::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis.conn())
            .await?;
        keys.extend(found.into_iter().filter(|key| {
            key.strip_prefix(&prefix)
                .is_some_and(|slot| !slot.is_empty() && slot.bytes().all(|b| b.is_ascii_digit()))
        }));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    store::redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut redis.conn())
        .await
}

/// How long the running lock lives without renewal: a process that dies mid-run frees
/// its job this long after.
const RUNNING_TTL: Duration = Duration::from_secs(30);
/// How often a run renews its running lock.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often, and how many times, a shutdown run looks again for a running lock held
/// by another process before it runs anyway.
const SHUTDOWN_RETRY: Duration = Duration::from_millis(250);
const SHUTDOWN_TRIES: u32 = 40;

/// The period `at` falls in: whole periods since the Unix epoch.
fn slot_at(at: SystemTime, period: Duration) -> u64 {
    let since = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let period = period.as_millis().max(1);
    u64::try_from(since / period).unwrap_or(u64::MAX)
}

/// What the text of a panic said, when it said something.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Runs jobs on their schedules until shutdown.
///
/// Each period runs once across replicas: a run first takes the job's running lock
/// ([`lock_key`], so a run still going elsewhere is not started twice), then marks its
/// period (`slot_key`, `SET NX`, so the other replicas skip that period). The running
/// lock is renewed while the run goes on and deleted when it ends.
#[derive(Debug)]
pub struct JobRunner {
    redis: Redis,
    instance: String,
    /// Whether Redis refuses the job locks: an outage is told once for all the jobs
    /// (WARN), each refusal after it at debug, and its end once (INFO).
    locks: FailureStreak,
}

/// How a try at a job lock was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockTold {
    /// The first refusal of an outage.
    Warn,
    /// A refusal during an outage already told.
    Debug,
    /// The first lock taken (or found held) after an outage.
    Info,
    /// Redis answered, as it does.
    Nothing,
}

/// Whether [`JobRunner::attempt`] ran the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Ran,
    /// Another process runs the job right now.
    Running,
    /// The period was already run (or taken) by a process.
    Taken,
    /// Redis could not say.
    Unknown,
}

impl JobRunner {
    /// `instance` names this process in the lock values (for operators reading Redis).
    pub fn new(redis: Redis, instance: String) -> JobRunner {
        JobRunner {
            redis,
            instance,
            locks: FailureStreak::new(),
        }
    }

    /// Logs what Redis said to a try at a job lock, then `instead` (what the job does
    /// for want of it): a Redis outage once for all the jobs, not once per job and
    /// period.
    fn told<T>(
        &self,
        answer: &Result<T, store::redis::RedisError>,
        instead: &'static str,
    ) -> LockTold {
        match answer {
            Ok(_) if self.locks.succeeded() => {
                tracing::info!("job locks can be taken again; the jobs run again");
                LockTold::Info
            }
            Ok(_) => LockTold::Nothing,
            Err(error) if self.locks.failed() => {
                tracing::warn!(
                    %error,
                    instead,
                    "could not take the job lock; the next refusals are logged at debug \
                     until Redis answers again"
                );
                LockTold::Warn
            }
            Err(error) => {
                tracing::debug!(%error, instead, "could not take the job lock");
                LockTold::Debug
            }
        }
    }

    /// `SET key instance NX PX ttl`: whether this process took `key`.
    async fn take(&self, key: &str, ttl: Duration) -> Result<bool, store::redis::RedisError> {
        let mut conn = self.redis.conn();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: Option<String> = store::redis::cmd("SET")
            .arg(key)
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        Ok(reply.is_some())
    }

    /// Deletes the running lock of `job` if this process still holds it.
    async fn release(&self, job: &Job) {
        let key = lock_key(job.name());
        let mut writes = Writes::new();
        writes.del(&key);
        if let Err(error) = self
            .redis
            .apply_if(&key, Some(self.instance.as_bytes()), &writes)
            .await
        {
            tracing::warn!(%error, "could not release the job's running lock; it expires by itself");
        }
    }

    /// Extends the running lock of `job` if this process still holds it.
    async fn renew(&self, job: &Job) {
        let key = lock_key(job.name());
        let mut writes = Writes::new();
        writes
            .command("PEXPIRE")
            .arg(&key)
            .arg(RUNNING_TTL.as_millis() as u64);
        match self
            .redis
            .apply_if(&key, Some(self.instance.as_bytes()), &writes)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the job's running lock was lost while it ran"),
            Err(error) => tracing::warn!(%error, "could not renew the job's running lock"),
        }
    }

    /// Runs `job` for period `slot` unless it runs elsewhere or the period was taken.
    async fn attempt(&self, job: &Job, slot: u64, said: &mut Said) -> Attempt {
        let running = self.take(&lock_key(job.name()), RUNNING_TTL).await;
        self.told(&running, "skipping this period");
        match running {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("the job still runs elsewhere; skipping this period");
                return Attempt::Running;
            }
            Err(_) => return Attempt::Unknown,
        }
        let ttl = job.period().saturating_mul(2);
        let period = self.take(&slot_key(job.name(), slot), ttl).await;
        self.told(
            &period,
            "skipping this period (its period could not be taken)",
        );
        let outcome = match period {
            Ok(true) => {
                self.run_locked(job, said, Run::Periodic).await;
                Attempt::Ran
            }
            Ok(false) => Attempt::Taken,
            Err(_) => Attempt::Unknown,
        };
        self.release(job).await;
        outcome
    }

    /// Runs `job` once while renewing its running lock.
    async fn run_locked(&self, job: &Job, said: &mut Said, kind: Run) {
        let run = Self::run_once(job, said, kind);
        tokio::pin!(run);
        let mut renewals =
            tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        loop {
            tokio::select! {
                () = &mut run => break,
                _ = renewals.tick() => self.renew(job).await,
            }
        }
    }

    /// The shutdown run: under the running lock when it can be had (waiting a while
    /// for a run elsewhere to end), since its work is this process's own.
    async fn shutdown_run(&self, job: &Job, said: &mut Said) {
        for _ in 0..SHUTDOWN_TRIES {
            let running = self.take(&lock_key(job.name()), RUNNING_TTL).await;
            self.told(&running, "running it anyway");
            match running {
                Ok(true) => {
                    self.run_locked(job, said, Run::Shutdown).await;
                    self.release(job).await;
                    return;
                }
                Ok(false) => tokio::time::sleep(SHUTDOWN_RETRY).await,
                Err(_) => break,
            }
        }
        Self::run_once(job, said, Run::Shutdown).await;
    }

    /// Runs `job` once; a panic in it counts as a failed run.
    async fn run_once(job: &Job, said: &mut Said, kind: Run) {
        let started = Instant::now();
        let run = job.runner();
        let result = match tokio::spawn(async move { run().await }).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(join) if join.is_panic() => {
                Err(format!("it panicked: {}", panic_text(&*join.into_panic())))
            }
            Err(join) => Err(join.to_string()),
        };
        match result {
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
                tracing::error!(%error, "{}", kind.failed());
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
                    let now = || slot_at(SystemTime::now(), job.period());
                    if job.runs_at_startup() {
                        runner.attempt(&job, now(), &mut said).await;
                    }
                    loop {
                        tokio::select! {
                            _ = ticker.tick() => {
                                runner.attempt(&job, now(), &mut said).await;
                            }
                            () = shutdown.cancelled() => break,
                        }
                    }
                    if job.runs_on_shutdown() {
                        runner.shutdown_run(&job, &mut said).await;
                    }
                }
                .instrument(span),
            );
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a job's scheduler stopped");
            }
        }
    }
}

/// Which run of a job this is, for what its failure says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// A run of its period: another comes.
    Periodic,
    /// The run at shutdown: none comes from this process.
    Shutdown,
}

impl Run {
    /// What the log says of a failed run: what comes of its work.
    fn failed(self) -> &'static str {
        match self {
            Run::Periodic => "job failed; it runs again next period",
            Run::Shutdown => {
                "job failed at shutdown; this process stops without its work done (the next \
                 start, or another process, runs it again)"
            }
        }
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
                        // In a task of its own, so that a panic is a failure like any
                        // other: logged, shown on /readyz, and the service started again.
                        let started_service = {
                            let (service, shutdown) = (service.clone(), shutdown.clone());
                            tokio::spawn(async move { service.start(shutdown).await })
                        };
                        let result = match started_service.await {
                            Ok(result) => result.map_err(|error| error.to_string()),
                            Err(join) if join.is_panic() => {
                                Err(format!("it panicked: {}", panic_text(&*join.into_panic())))
                            }
                            Err(join) => Err(join.to_string()),
                        };
                        if shutdown.is_cancelled() {
                            if let Err(error) = result {
                                tracing::warn!(%error, "service failed while stopping");
                            }
                            break;
                        }
                        let error = match result {
                            Ok(()) => "it stopped by itself".to_owned(),
                            Err(error) => error,
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
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a service's supervisor stopped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn refused() -> Result<bool, store::redis::RedisError> {
        Err(store::redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        )))
    }

    #[tokio::test]
    async fn a_redis_outage_is_told_once_for_all_the_jobs_and_its_end_once() {
        let redis = store::Redis::lazy("redis://127.0.0.1:1").unwrap();
        let runner = JobRunner::new(redis, "test".into());
        assert_eq!(runner.told(&Ok(true), "x"), LockTold::Nothing);
        assert_eq!(runner.told(&refused(), "x"), LockTold::Warn);
        // Every job, every period after it: quietly.
        for _ in 0..4 {
            assert_eq!(runner.told(&refused(), "x"), LockTold::Debug);
        }
        // Redis answers again (a lock held elsewhere is an answer too).
        assert_eq!(runner.told(&Ok(false), "x"), LockTold::Info);
        assert_eq!(runner.told(&Ok(true), "x"), LockTold::Nothing);
        assert_eq!(runner.told(&refused(), "x"), LockTold::Warn, "a new outage");
    }

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

    #[tokio::test]
    async fn a_panicking_service_is_reported_and_started_again() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let starts = Arc::new(AtomicU32::new(0));
        let (resume_tx, resume_rx) = tokio::sync::watch::channel(false);
        let service = Service::new("crashy", move |shutdown: CancellationToken| {
            let n = starts.fetch_add(1, Ordering::SeqCst) + 1;
            let (tx, mut resume) = (tx.clone(), resume_rx.clone());
            async move {
                if n == 1 {
                    panic!("the worker broke");
                }
                // The second start waits to be told it may say so, so the test sees
                // the state the panic left first.
                let _ = resume.wait_for(|r| *r).await;
                let _ = tx.send(n);
                shutdown.cancelled().await;
                Ok::<(), std::io::Error>(())
            }
        });
        let runner = ServiceRunner::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let runner = runner.clone();
            let shutdown = shutdown.clone();
            async move { runner.run(vec![service], shutdown).await }
        });
        let restarting = restarting_error(&runner).await;
        assert!(
            restarting.contains("panicked") && restarting.contains("the worker broke"),
            "{restarting}"
        );
        resume_tx.send_replace(true);
        assert_eq!(rx.recv().await, Some(2), "started again after the panic");
        shutdown.cancel();
        task.await.expect("runner");
        assert_eq!(runner.states(), vec![("crashy", ServiceState::Stopped)]);
    }

    /// Waits until the runner reports the service restarting (it does for half a
    /// second, and this single-threaded test looks again after each step of the runner);
    /// its error.
    async fn restarting_error(runner: &ServiceRunner) -> String {
        for _ in 0..100_000 {
            if let [(_, ServiceState::Restarting { error })] = runner.states().as_slice() {
                return error.clone();
            }
            tokio::task::yield_now().await;
        }
        panic!("never reported restarting: {:?}", runner.states());
    }
}

#[cfg(test)]
mod job_tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn only_a_periodic_run_promises_another_after_failing() {
        assert!(Run::Periodic.failed().contains("runs again next period"));
        let shutdown = Run::Shutdown.failed();
        assert!(!shutdown.contains("next period"), "{shutdown}");
        assert!(
            shutdown.contains("stops without its work done"),
            "{shutdown}"
        );
    }

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
        let holders = period_holders(&redis, "purge").await;
        assert!(
            matches!(holders.as_slice(), [h] if h == "replica-a" || h == "replica-b"),
            "the period is marked by the replica that ran it: {holders:?}"
        );
        assert_eq!(running_holder(&redis, "purge").await, None, "released");
    }

    async fn period_holders(redis: &Redis, name: &str) -> Vec<String> {
        let mut conn = redis.conn();
        let keys: Vec<String> = store::redis::cmd("KEYS")
            .arg(format!("{}:*", lock_key(name)))
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        let mut holders = Vec::new();
        for key in keys {
            let holder: String = store::redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("GET");
            holders.push(holder);
        }
        holders
    }

    async fn running_holder(redis: &Redis, name: &str) -> Option<String> {
        let mut conn = redis.conn();
        store::redis::cmd("GET")
            .arg(lock_key(name))
            .query_async(&mut conn)
            .await
            .expect("GET")
    }

    /// A job of period one second that counts its runs and waits for `gate` to let each
    /// one finish (`None`: finishes at once).
    fn gated(
        runs: &Arc<AtomicU32>,
        gate: Option<(
            Arc<tokio::sync::Semaphore>,
            tokio::sync::mpsc::UnboundedSender<()>,
        )>,
    ) -> Job {
        let runs = Arc::clone(runs);
        Job::every("sync", Duration::from_secs(1), move || {
            runs.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            async move {
                if let Some((gate, started)) = gate {
                    let _ = started.send(());
                    gate.acquire().await.expect("gate").forget();
                }
                Ok::<(), std::io::Error>(())
            }
        })
    }

    #[tokio::test]
    async fn a_replica_runs_its_job_in_each_period_one_after_the_other() {
        let server = store::harness::TestRedis::start().await;
        let redis = server.connect().await;
        let runs = Arc::new(AtomicU32::new(0));
        let job = gated(&runs, None);
        let runner = JobRunner::new(redis.clone(), "a".into());
        let mut said = Said::default();
        // The next period comes while the last one's mark still lives in Redis.
        for slot in 100..105 {
            assert_eq!(runner.attempt(&job, slot, &mut said).await, Attempt::Ran);
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            5,
            "one run in each of 5 periods"
        );
        assert_eq!(running_holder(&redis, "sync").await, None);
    }

    #[tokio::test]
    async fn a_period_runs_once_across_replicas() {
        let server = store::harness::TestRedis::start().await;
        let redis = server.connect().await;
        let runs = Arc::new(AtomicU32::new(0));
        let job = gated(&runs, None);
        let (a, b) = (
            JobRunner::new(redis.clone(), "a".into()),
            JobRunner::new(redis.clone(), "b".into()),
        );
        let mut said = Said::default();
        assert_eq!(a.attempt(&job, 7, &mut said).await, Attempt::Ran);
        assert_eq!(b.attempt(&job, 7, &mut said).await, Attempt::Taken);
        assert_eq!(b.attempt(&job, 8, &mut said).await, Attempt::Ran);
        assert_eq!(a.attempt(&job, 8, &mut said).await, Attempt::Taken);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_job_whose_runs_are_forgotten_runs_again_in_the_same_period() {
        let server = store::harness::TestRedis::start().await;
        let redis = server.connect().await;
        let runs = Arc::new(AtomicU32::new(0));
        let job = gated(&runs, None);
        let runner = JobRunner::new(redis.clone(), "a".into());
        let mut said = Said::default();
        assert_eq!(runner.attempt(&job, 7, &mut said).await, Attempt::Ran);
        assert_eq!(runner.attempt(&job, 7, &mut said).await, Attempt::Taken);
        // Another job's marks are not touched.
        let mut conn = redis.conn();
        store::redis::cmd("SET")
            .arg(slot_key("sync-other", 7))
            .arg("x")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        assert_eq!(forget_job_runs(&redis, "sync").await.unwrap(), 1);
        assert_eq!(runner.attempt(&job, 7, &mut said).await, Attempt::Ran);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let kept: bool = store::redis::cmd("EXISTS")
            .arg(slot_key("sync-other", 7))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(kept);
    }

    #[tokio::test]
    async fn a_run_still_going_when_the_next_period_comes_is_not_started_elsewhere() {
        let server = store::harness::TestRedis::start().await;
        let redis = server.connect().await;
        let runs = Arc::new(AtomicU32::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (started, mut running) = tokio::sync::mpsc::unbounded_channel();
        let job = Arc::new(gated(&runs, Some((Arc::clone(&gate), started))));
        let a = Arc::new(JobRunner::new(redis.clone(), "a".into()));
        let b = JobRunner::new(redis.clone(), "b".into());
        let long = tokio::spawn({
            let (a, job) = (Arc::clone(&a), Arc::clone(&job));
            async move { a.attempt(&job, 7, &mut Said::default()).await }
        });
        running.recv().await.expect("a's run started");
        assert_eq!(running_holder(&redis, "sync").await.as_deref(), Some("a"));
        let mut said = Said::default();
        assert_eq!(b.attempt(&job, 8, &mut said).await, Attempt::Running);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "not started twice");
        gate.add_permits(1);
        assert_eq!(long.await.expect("run"), Attempt::Ran);
        assert_eq!(
            running_holder(&redis, "sync").await,
            None,
            "released at its end"
        );
        gate.add_permits(1);
        assert_eq!(b.attempt(&job, 9, &mut said).await, Attempt::Ran);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_job_counts_as_failed_and_runs_again_next_period() {
        let server = store::harness::TestRedis::start().await;
        let redis = server.connect().await;
        let runs = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&runs);
        let job = Job::every("boom", Duration::from_secs(1), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                if true {
                    panic!("the job broke");
                }
                Ok::<(), std::io::Error>(())
            }
        });
        let runner = JobRunner::new(redis.clone(), "a".into());
        let mut said = Said::default();
        assert_eq!(runner.attempt(&job, 1, &mut said).await, Attempt::Ran);
        assert!(!said.succeeding, "the panic is a failed run");
        assert_eq!(runner.attempt(&job, 2, &mut said).await, Attempt::Ran);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "the job goes on");
        assert_eq!(
            running_holder(&redis, "boom").await,
            None,
            "its lock released"
        );
    }
}
