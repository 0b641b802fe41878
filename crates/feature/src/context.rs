use std::sync::Arc;

use base::Clock;
use discord::Discord;
use store::{Postgres, Redis};
use web::session::Sessions;

/// What every feature is built from: the shared stores, Discord, the web sessions and
/// the clock. Cheap to clone; build handlers, jobs and routes from clones of its parts.
#[derive(Clone, Debug)]
pub struct Context {
    pub redis: Redis,
    pub postgres: Postgres,
    /// Discord's REST API as the bot. Without a bot token (`tavern check` and `tavern
    /// migrate` run without one) every call answers [`discord::RestError`] saying so.
    pub discord: Discord,
    /// The web sessions: wrap a feature's router with [`Sessions::protect`] and its
    /// handlers can ask for `web::session::CurrentUser` and get CSRF protection on
    /// every state-changing request.
    pub sessions: Sessions,
    /// What "now" is. Tests hand in a [`base::ManualClock`].
    pub clock: Arc<dyn Clock>,
    /// Where people reach Tavern's web server (links in messages, OAuth callbacks).
    pub public_url: url::Url,
    /// Tavern's OAuth2 application at Discord, the one the web login uses (for flows
    /// that act with a signed-in user's token or add the bot to a guild); `None` when
    /// logging in with Discord is not configured.
    pub discord_login: Option<discord::oauth::OAuthApp>,
    /// Every feature's slash commands, filled by the binary once all features are
    /// built ([`crate::Catalogue::fill`]); `/help` lists them.
    pub catalogue: crate::Catalogue,
}

impl Context {
    /// Now, by the context's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
