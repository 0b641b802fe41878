//! The contract between a feature crate and the `tavern` binary.
//!
//! A feature is built from a [`Context`] (the shared stores and Discord) and hands back
//! one [`Feature`] value: its slash commands, its component prefix, gateway event
//! handler, HTTP routes, scheduled jobs, PostgreSQL migrations and consistency checks.
//! The binary wires every feature the same way, so adding one touches one line there.

use std::sync::Arc;
use std::time::Duration;

pub use discord::{BoxFuture, CommandSpec, Discord, EventHandler, Handler};
pub use store::{FeatureMigrations, Postgres, Redis, StoreError};

mod jobs;
mod wiring;
pub use jobs::{JobRunner, lock_key};
pub use wiring::{TestBot, route, sim_config};

/// What every feature is built from.
#[derive(Clone, Debug)]
pub struct Context {
    pub redis: Redis,
    pub postgres: Postgres,
    pub discord: Discord,
}

/// Work that runs on a schedule. Every replica schedules it; a Redis lock makes sure only
/// one runs it per period.
#[derive(Clone)]
pub struct Job {
    pub name: &'static str,
    pub every: Duration,
    /// Also run once when Tavern shuts down (e.g. a final snapshot).
    pub on_shutdown: bool,
    pub run: Arc<dyn Fn() -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("every", &self.every)
            .field("on_shutdown", &self.on_shutdown)
            .finish()
    }
}

/// A job's failure; logged, and the job runs again at its next period.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobError(pub Box<dyn std::error::Error + Send + Sync>);

impl JobError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> JobError {
        JobError(Box::new(error))
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

/// A consistency check over a feature's data, run by `tavern check`.
pub trait Check: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn run(&self) -> BoxFuture<'static, Result<Vec<Finding>, StoreError>>;
}

/// Work that must finish before Tavern serves (e.g. restoring a snapshot).
pub type Startup = Arc<dyn Fn() -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Everything a feature contributes.
#[derive(Default)]
pub struct Feature {
    pub name: &'static str,
    pub commands: Vec<(CommandSpec, Arc<dyn Handler>)>,
    /// `(prefix, handler)`: components whose `custom_id` starts with `prefix:`.
    pub components: Option<(&'static str, Arc<dyn Handler>)>,
    pub events: Option<Arc<dyn EventHandler>>,
    pub routes: Option<axum::Router>,
    pub jobs: Vec<Job>,
    pub startup: Option<Startup>,
    pub migrations: Option<FeatureMigrations>,
    pub checks: Vec<Arc<dyn Check>>,
}

impl std::fmt::Debug for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feature")
            .field("name", &self.name)
            .field(
                "commands",
                &self
                    .commands
                    .iter()
                    .map(|(c, _)| &c.name)
                    .collect::<Vec<_>>(),
            )
            .field("components", &self.components.as_ref().map(|(p, _)| p))
            .field("jobs", &self.jobs)
            .field("migrations", &self.migrations.map(|m| m.schema))
            .finish_non_exhaustive()
    }
}

impl Feature {
    pub fn new(name: &'static str) -> Feature {
        Feature {
            name,
            ..Feature::default()
        }
    }
}
