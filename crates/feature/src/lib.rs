//! The kit every feature is built from, and the contract between a feature and the
//! `tavern` binary.
//!
//! A feature crate exposes one function, `fn feature(ctx: &Context, config) ->
//! Feature`: it is given the shared [`Context`] (Redis, PostgreSQL, Discord, the web
//! sessions, the clock) and hands back one [`Feature`] value: slash commands, a
//! component prefix, a gateway event handler, HTTP routes and the pages they add to the
//! site's navigation, scheduled [`Job`]s, long-running [`Service`]s, [`Startup`] work,
//! PostgreSQL migrations and consistency [`Check`]s. The binary builds the list once;
//! `tavern serve`, `tavern migrate` and `tavern check` all read it.
//!
//! The small shared pieces exist once, here or below:
//! - ids that become parts of Redis keys: [`key_id!`]; secrets: [`Secret`]; time:
//!   [`Clock`] (all from `base`); Discord snowflakes: `discord::model` ids;
//! - the optimistic-concurrency loop, the conditional writes and the one error
//!   vocabulary of repositories: [`store::optimistic()`], [`store::Condition`],
//!   [`StorageError`];
//! - the mapping of a [`StorageError`] to what a user sees, on Discord
//!   ([`reply::handler_error`]) and over HTTP ([`reply::http_error`]);
//! - retrying with backoff ([`backoff::retry`]), for start-up work, services and the
//!   stores;
//! - the [`Catalogue`] of every feature's slash commands (in [`Context::catalogue`],
//!   filled by the binary once every feature is built), for `/help`.
//!
//! - who may call each HTTP route: [`Feature::web`] takes routes declared with
//!   `web::access::Routes` (method, path, [`Access`]), and [`manifest`] collects them
//!   for the binary and its tests.
//!
//! A feature that needs something the kit lacks adds it to the kit, not to itself.

pub mod backoff;
mod catalogue;
mod context;
mod contract;
pub mod discord_limit;
pub mod reply;
mod runner;
mod tasks;

pub use base::{Clock, FailureStreak, InvalidId, ManualClock, Secret, SystemClock, key_id};
pub use catalogue::{Catalogue, CommandEntry, FeatureCommands};
pub use context::Context;
pub use contract::{Access, Feature, Manifest, NavLink, RouteSpec, Routes, bot, manifest, route};
pub use discord::{BoxFuture, CommandSpec, Discord, EventHandler, Handler, HandlerError};
pub use runner::{JobRunner, ServiceRunner, ServiceState, forget_job_runs, lock_key};
pub use store::{FeatureMigrations, Postgres, Redis, StorageError, StoreError};
pub use tasks::{Check, Finding, Job, Service, Startup, TaskError};
/// Declaring routes with who may call them, and learning who did: `Routes`, `Access`,
/// the `Caller` extractor, `JsonBody`, `Denied` (see `web::access`).
pub use web::access;
