//! The `tavern` binary's library half: configuration and the wiring of `tavern serve`,
//! kept in a library so end-to-end tests start the real thing in-process on port 0.

pub mod app;
pub mod bench;
pub mod config;
mod core;
pub mod instance;
pub mod sandbox;

pub use app::{Running, start};
pub use config::{Config, ConfigError};
