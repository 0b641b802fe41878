//! [`SimConfig`]: knobs a test or the sandbox may turn.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// How to start a [`crate::Sim`]. `Default` gives a loopback listener on a free port
/// and Discord's real timings.
#[derive(Clone)]
pub struct SimConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    /// The bot token the sim accepts (REST `Authorization: Bot <token>`, gateway
    /// IDENTIFY/RESUME).
    pub token: String,
    /// Fixed application id; minted when `None`.
    pub application_id: Option<u64>,
    /// Fixed bot user id; minted when `None`.
    pub bot_user_id: Option<u64>,
    /// The bot user's `username`.
    pub bot_name: String,
    /// Shard count recommended by `GET /gateway/bot`. Sessions route events by the
    /// shard count they identified with, as Discord does.
    pub shard_count: u32,
    /// `heartbeat_interval` sent in HELLO. Tests may make it small.
    pub heartbeat_interval: Duration,
    /// How long after dispatch an interaction accepts its first callback
    /// (Discord: 3 s). Later callbacks get 404 Unknown interaction (10062).
    pub interaction_deadline: Duration,
    /// How long an interaction token accepts webhook edits and follow-ups
    /// (Discord: 15 min).
    pub token_lifetime: Duration,
    /// How many dispatches each gateway session keeps for RESUME replay.
    pub resume_buffer: usize,
    /// How many REST requests [`crate::Sim::requests`] remembers.
    pub request_log_capacity: usize,
    /// Requests allowed per rate-limit bucket (route and major parameter: channel,
    /// guild or webhook) and window. Generous by default, so ordinary tests never meet
    /// it; set it (with [`SimConfig::rate_limit_window`] and
    /// [`SimConfig::global_rate_limit`]) to play Discord's limits, e.g. 5 per 5 s.
    pub rate_limit_per_window: u32,
    /// Length of a rate-limit window.
    pub rate_limit_window: Duration,
    /// Requests per second the bot token may make across all routes (Discord: 50);
    /// `None` (the default) has no global limit. Interaction callbacks are exempt,
    /// as on Discord. Exceeding it answers 429 with `"global": true`.
    pub global_rate_limit: Option<u32>,
    /// How long a signed attachment URL stays valid (Discord: 24 hours).
    pub attachment_url_lifetime: Duration,
    /// The OAuth2 client secret of the sim's application (its client id is the
    /// application id).
    pub oauth_client_secret: String,
    /// `expires_in` of the OAuth2 access tokens the sim issues (Discord: 7 days).
    pub oauth_token_lifetime: Duration,
    /// Redirect URIs registered for the application at start; more can be added with
    /// [`crate::Sim::register_redirect_uri`].
    pub oauth_redirect_uris: Vec<String>,
    /// Roles a guild may hold (Discord: 250). Benchmarks raise it.
    pub guild_role_limit: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: "sim-bot-token".to_owned(),
            application_id: None,
            bot_user_id: None,
            bot_name: "Tavern".to_owned(),
            shard_count: 1,
            heartbeat_interval: Duration::from_millis(41_250),
            interaction_deadline: Duration::from_secs(3),
            token_lifetime: Duration::from_secs(15 * 60),
            resume_buffer: 4096,
            request_log_capacity: 100_000,
            rate_limit_per_window: 10_000,
            rate_limit_window: Duration::from_secs(1),
            global_rate_limit: None,
            attachment_url_lifetime: Duration::from_secs(24 * 3600),
            oauth_client_secret: "sim-client-secret".to_owned(),
            oauth_token_lifetime: Duration::from_secs(7 * 24 * 3600),
            oauth_redirect_uris: Vec::new(),
            guild_role_limit: 250,
        }
    }
}

/// The token and the client secret are redacted: configs end up in logs.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("bind", &self.bind)
            .field("token", &"<redacted>")
            .field("application_id", &self.application_id)
            .field("bot_user_id", &self.bot_user_id)
            .field("bot_name", &self.bot_name)
            .field("shard_count", &self.shard_count)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("interaction_deadline", &self.interaction_deadline)
            .field("token_lifetime", &self.token_lifetime)
            .field("resume_buffer", &self.resume_buffer)
            .field("request_log_capacity", &self.request_log_capacity)
            .field("rate_limit_per_window", &self.rate_limit_per_window)
            .field("rate_limit_window", &self.rate_limit_window)
            .field("global_rate_limit", &self.global_rate_limit)
            .field("attachment_url_lifetime", &self.attachment_url_lifetime)
            .field("oauth_client_secret", &"<redacted>")
            .field("oauth_token_lifetime", &self.oauth_token_lifetime)
            .field("oauth_redirect_uris", &self.oauth_redirect_uris)
            .field("guild_role_limit", &self.guild_role_limit)
            .finish()
    }
}
