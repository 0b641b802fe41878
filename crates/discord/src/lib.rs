//! The only crate that speaks Discord.
//!
//! Features describe commands and components with [`model`] types, answer
//! [`Invocation`]s with [`Response`]s and call Discord through [`Discord`]; this crate
//! turns all of that into the wire format (twilight 0.18) and back.
//!
//! - [`Discord`]: REST calls that honour rate limits (per-route buckets, the global
//!   limit, optionally shared by several processes through a [`GlobalLimiter`], 429
//!   `retry_after`, Cloudflare's 429 with a growing pause), retry 5xx with backoff,
//!   never repeat a create blindly, and stop calling a target that keeps refusing
//!   (circuit breaker).
//! - [`Router`]: routes slash commands by name and components by `custom_id` prefix,
//!   defers automatically when a handler takes longer than [`DEFER_AFTER`], then edits
//!   the original response.
//! - [`Bot`]: the gateway runner: a range of the bot's shards ([`ShardRange`]) that
//!   resume after a drop, readiness per shard ([`GatewayStatus`]), event fan-out,
//!   command registration by the process running shard 0, a close code Discord will not
//!   take back ([`fatal_close_code`]) returned as an error, graceful shutdown that
//!   finishes in-flight work.
//! - [`oauth`]: OAuth2 with Discord ("Log in with Discord", the bot-install flow):
//!   authorize URLs, code exchange, refresh, and the user's own `@me` and guilds.

mod breaker;
mod gateway;
mod handler;
pub mod markdown;
pub mod model;
pub mod oauth;
mod rest;
mod router;
mod wire;

pub use breaker::BreakerConfig;
pub use gateway::{
    Bot, BotConfig, BotError, GatewayStatus, InvalidShards, ShardHealth, ShardRange,
    fatal_close_code, invite_url,
};
pub use handler::{BoxFuture, EventHandler, Handler, HandlerError};
pub use model::*;
pub use rest::{Discord, DiscordConfig, GlobalLimiter, MAX_BAN_BACKOFF, RestError};
pub use router::{AUTOCOMPLETE_WITHIN, DEFER_AFTER, DuplicateRoute, MISSING_PERMISSION, Router};

/// Installs the process-wide rustls crypto provider (ring). twilight's TLS needs exactly
/// one; call this once at start-up before any client is built. Calling it twice is fine.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
