//! The units of work a feature hands the binary: [`Job`], [`Service`], [`Startup`] and
//! [`Check`]. Each is built from a name and an async closure; the boxing lives here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use discord::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Why a job, a service, start-up work or a check failed. Logged (or, for a check,
/// reported) with the name of the work; the error's own text says what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TaskError(Box<dyn std::error::Error + Send + Sync>);

impl TaskError {
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> TaskError {
        TaskError(error.into())
    }
}

type Run<T> = Arc<dyn Fn() -> BoxFuture<'static, Result<T, TaskError>> + Send + Sync>;

fn boxed<T, F, Fut, E>(run: F) -> Run<T>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
    T: 'static,
{
    Arc::new(move || {
        let future = run();
        Box::pin(async move { future.await.map_err(TaskError::new) })
    })
}

/// Work on a schedule. Every replica schedules it; Redis locks make sure only one runs it
/// per period (`tavern:lock:job:{name}:{period}`) and never while a run goes on elsewhere
/// (`tavern:lock:job:{name}`).
///
/// ```ignore
/// Job::every("rolls-sync", Duration::from_secs(3600), move || snapshot(redis.clone()))
///     .on_shutdown()
/// ```
#[derive(Clone)]
pub struct Job {
    name: &'static str,
    every: Duration,
    at_startup: bool,
    on_shutdown: bool,
    run: Run<()>,
}

impl Job {
    /// Runs `run` every `every` (at least one second), first one period after start-up
    /// unless [`Job::at_startup`] says otherwise.
    pub fn every<F, Fut, E>(name: &'static str, every: Duration, run: F) -> Job
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Job {
            name,
            every,
            at_startup: false,
            on_shutdown: false,
            run: boxed(run),
        }
    }

    /// Also run once right after start-up (under the same lock, so of several replicas
    /// starting together one runs it), not only a period later: a sync should not wait
    /// a whole period to do its first round.
    pub fn at_startup(mut self) -> Job {
        self.at_startup = true;
        self
    }

    /// Also run once when Tavern shuts down (a final snapshot).
    pub fn on_shutdown(mut self) -> Job {
        self.on_shutdown = true;
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn period(&self) -> Duration {
        self.every.max(Duration::from_secs(1))
    }

    pub fn runs_at_startup(&self) -> bool {
        self.at_startup
    }

    pub fn runs_on_shutdown(&self) -> bool {
        self.on_shutdown
    }

    /// Runs the job once, now, without its lock (for tests and `--once` commands).
    pub async fn run_now(&self) -> Result<(), TaskError> {
        (self.run)().await
    }

    /// What runs the job, to run it in a task of its own.
    pub(crate) fn runner(
        &self,
    ) -> impl Fn() -> BoxFuture<'static, Result<(), TaskError>> + Send + 'static {
        let run = Arc::clone(&self.run);
        move || run()
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("every", &self.every)
            .field("at_startup", &self.at_startup)
            .field("on_shutdown", &self.on_shutdown)
            .finish()
    }
}

/// A long-running task (a scan worker, a meeting controller, a media handler). It
/// starts after every feature's start-up work, is handed the shared shutdown token and
/// must return soon after it fires; it shows on `/readyz` under its name. If it fails
/// (or returns before shutdown) it is logged and started again with backoff.
#[derive(Clone)]
pub struct Service {
    name: &'static str,
    run: Arc<dyn Fn(CancellationToken) -> BoxFuture<'static, Result<(), TaskError>> + Send + Sync>,
}

impl Service {
    pub fn new<F, Fut, E>(name: &'static str, run: F) -> Service
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Service {
            name,
            run: Arc::new(move |shutdown| {
                let future = run(shutdown);
                Box::pin(async move { future.await.map_err(TaskError::new) })
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn start(
        &self,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), TaskError>> {
        (self.run)(shutdown)
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("name", &self.name).finish()
    }
}

/// Work that must finish before Tavern serves (restoring a snapshot, making this
/// month's partitions). Retried with backoff until it succeeds; `/readyz` shows it
/// failing meanwhile.
#[derive(Clone)]
pub struct Startup {
    name: &'static str,
    run: Run<()>,
}

impl Startup {
    pub fn new<F, Fut, E>(name: &'static str, run: F) -> Startup
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Startup {
            name,
            run: boxed(run),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub async fn run(&self) -> Result<(), TaskError> {
        (self.run)().await
    }
}

impl std::fmt::Debug for Startup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Startup").field("name", &self.name).finish()
    }
}

/// One inconsistency found by a [`Check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The key or row concerned, e.g. `active_games` or `channel:123`.
    pub subject: String,
    /// What is wrong, in a sentence.
    pub problem: String,
}

impl Finding {
    pub fn new(subject: impl Into<String>, problem: impl Into<String>) -> Finding {
        Finding {
            subject: subject.into(),
            problem: problem.into(),
        }
    }
}

/// A consistency check over a feature's data, run by `tavern check`.
#[derive(Clone)]
pub struct Check {
    name: &'static str,
    run: Run<Vec<Finding>>,
}

impl Check {
    pub fn new<F, Fut, E>(name: &'static str, run: F) -> Check
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Finding>, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Check {
            name,
            run: boxed(run),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub async fn run(&self) -> Result<Vec<Finding>, TaskError> {
        (self.run)().await
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}
