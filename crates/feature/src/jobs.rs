use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Job, Redis};

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
        let ttl_ms = job.every.as_millis().clamp(1000, u64::MAX as u128) as u64;
        let reply: Result<Option<String>, _> = redis::cmd("SET")
            .arg(lock_key(job.name))
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await;
        match reply {
            Ok(v) => v.is_some(),
            Err(error) => {
                tracing::warn!(job = job.name, %error, "could not take job lock; skipping this period");
                false
            }
        }
    }

    async fn run_once(job: &Job) {
        let started = std::time::Instant::now();
        match (job.run)().await {
            Ok(()) => tracing::info!(
                job = job.name,
                ms = started.elapsed().as_millis() as u64,
                "job done"
            ),
            Err(error) => {
                tracing::error!(job = job.name, %error, "job failed; will run again next period")
            }
        }
    }

    /// Schedules every job; returns after shutdown once the `on_shutdown` jobs ran.
    pub async fn run(self, jobs: Vec<Job>, shutdown: CancellationToken) {
        let runner = std::sync::Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        for job in jobs {
            let runner = std::sync::Arc::clone(&runner);
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let mut ticker = tokio::time::interval(job.every.max(Duration::from_secs(1)));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // The first tick fires at once; skip it: start-up work belongs in `startup`.
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {
                            if runner.acquire(&job).await {
                                Self::run_once(&job).await;
                            }
                        }
                        () = shutdown.cancelled() => break,
                    }
                }
                if job.on_shutdown {
                    Self::run_once(&job).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}
