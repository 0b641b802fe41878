//! The only crate that speaks Discord.
//!
//! Features describe commands and components with [`model`] types, answer
//! [`Invocation`]s with [`Response`]s and call Discord through [`Discord`]; this crate
//! turns all of that into the wire format (twilight 0.18) and back.
//!
//! - [`Discord`]: REST calls that honour rate limits (per-route buckets and the global
//!   limit through twilight's limiter, 429 `retry_after`) and retry 5xx with backoff.
//! - [`Router`]: routes slash commands by name and components by `custom_id` prefix,
//!   defers automatically when a handler takes longer than [`DEFER_AFTER`], then edits
//!   the original response.
//! - [`Bot`]: the gateway runner: shards that resume after a drop, event fan-out,
//!   command registration at start, graceful shutdown that finishes in-flight work.
//! - [`oauth`]: OAuth2 with Discord ("Log in with Discord", the bot-install flow):
//!   authorize URLs, code exchange, refresh, and the user's own `@me` and guilds.

mod gateway;
mod handler;
pub mod model;
pub mod oauth;
mod rest;
mod router;
mod wire;

pub use gateway::{Bot, BotConfig, BotError, GatewayStatus};
pub use handler::{BoxFuture, EventHandler, Handler, HandlerError};
pub use model::*;
pub use rest::{Discord, DiscordConfig, RestError};
pub use router::{DEFER_AFTER, DuplicateRoute, Router};

/// Installs the process-wide rustls crypto provider (ring). twilight's TLS needs exactly
/// one; call this once at start-up before any client is built. Calling it twice is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
