use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use twilight_gateway::{
    CloseFrame, ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};

use crate::handler::EventHandler;
use crate::model::EventKind;
use crate::rest::{Discord, DiscordConfig};
use crate::router::Router;
use crate::wire;

/// How long a closing shard waits for the gateway to acknowledge the close.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How the bot connects.
#[derive(Clone)]
pub struct BotConfig {
    pub rest: DiscordConfig,
    /// WebSocket URL of a stand-in gateway (discord-sim); `None` for Discord's.
    pub gateway: Option<String>,
    /// Number of shards; `None` asks Discord (`GET /gateway/bot`).
    pub shards: Option<u32>,
    /// How long shutdown waits for in-flight interactions.
    pub drain_timeout: Duration,
}

impl std::fmt::Debug for BotConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotConfig")
            .field("rest", &self.rest)
            .field("gateway", &self.gateway)
            .field("shards", &self.shards)
            .finish()
    }
}

impl BotConfig {
    /// A bot on a stand-in Discord (discord-sim) at `api_addr` (`host:port`, plain HTTP)
    /// and `gateway_url`: one shard, quick retries, a short drain. Sandbox mode, tests
    /// and benchmarks use it.
    pub fn stand_in(token: &str, api_addr: &str, gateway_url: &str) -> BotConfig {
        let mut rest = DiscordConfig::new(token, Some(api_addr.to_owned()));
        rest.base_backoff = Duration::from_millis(50);
        BotConfig {
            rest,
            gateway: Some(gateway_url.to_owned()),
            shards: Some(1),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Live gateway facts for `/ping` and readiness. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct GatewayStatus {
    inner: Arc<StatusInner>,
}

#[derive(Debug, Default)]
struct StatusInner {
    ready: AtomicBool,
    latency_us: AtomicU64,
    resumes: AtomicU64,
}

impl GatewayStatus {
    /// At least one shard has received READY (or RESUMED) and is connected.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }
    /// Average heartbeat round trip of the shards.
    pub fn latency(&self) -> Option<Duration> {
        match self.inner.latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
    /// How many times a shard resumed a session.
    pub fn resumes(&self) -> u64 {
        self.inner.resumes.load(Ordering::Relaxed)
    }
}

/// The Discord side of Tavern: shards, routing and event fan-out.
pub struct Bot {
    config: BotConfig,
    router: Arc<Router>,
    events: Vec<Arc<dyn EventHandler>>,
    status: GatewayStatus,
    registered: Arc<AtomicBool>,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("config", &self.config)
            .field("router", &self.router)
            .finish()
    }
}

/// Why the bot stopped.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("asking Discord for the shard count: {0}")]
    ShardCount(String),
}

impl Bot {
    pub fn new(config: BotConfig, router: Router, events: Vec<Arc<dyn EventHandler>>) -> Bot {
        Bot {
            config,
            router: Arc::new(router),
            events,
            status: GatewayStatus::default(),
            registered: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Shares `status` (created earlier, e.g. for a `/ping` handler) instead of a new one.
    pub fn with_status(mut self, status: GatewayStatus) -> Bot {
        self.status = status;
        self
    }

    pub fn status(&self) -> GatewayStatus {
        self.status.clone()
    }

    pub fn discord(&self) -> &Discord {
        self.router.discord()
    }

    async fn shard_count(&self) -> Result<u32, BotError> {
        if let Some(n) = self.config.shards {
            return Ok(n.max(1));
        }
        let client = crate::rest::http_client(&self.config.rest);
        let info = client
            .gateway()
            .authed()
            .await
            .map_err(|e| BotError::ShardCount(e.to_string()))?
            .model()
            .await
            .map_err(|e| BotError::ShardCount(e.to_string()))?;
        Ok(info.shards.max(1))
    }

    /// Runs every shard until `shutdown` is cancelled, then closes the shards (no new
    /// work), waits for in-flight interactions and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BotError> {
        let count = self.shard_count().await?;
        tracing::info!(
            shards = count,
            gateway = self.config.gateway.as_deref().unwrap_or("discord"),
            "starting shards"
        );
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..count {
            let mut builder =
                ConfigBuilder::new(self.config.rest.token.clone(), intents(&self.events));
            if let Some(url) = &self.config.gateway {
                builder = builder.proxy_url(url.clone());
            }
            let shard = Shard::with_config(ShardId::new(index, count), builder.build());
            let runner = ShardRunner {
                router: Arc::clone(&self.router),
                wanted: wanted_events(&self.events),
                events: self.events.clone(),
                status: self.status.clone(),
                registered: Arc::clone(&self.registered),
            };
            tasks.spawn(runner.run(shard, shutdown.clone()));
        }
        while tasks.join_next().await.is_some() {}
        self.status.inner.ready.store(false, Ordering::Relaxed);
        if !self.router.wait_in_flight(self.config.drain_timeout).await {
            tracing::warn!(timeout = ?self.config.drain_timeout, "in-flight interactions did not finish before the drain timeout");
        }
        tracing::info!("discord connection closed");
        Ok(())
    }
}

/// The intents to ask for: `GUILDS` always, the rest only when a handler wants the
/// events behind them, so Discord does not send (and the bot does not read) every message
/// of every guild for nothing, and privileged intents are asked for only when used.
fn intents(handlers: &[Arc<dyn EventHandler>]) -> Intents {
    let mut intents = Intents::GUILDS;
    for kind in handlers.iter().flat_map(|h| h.kinds().iter()) {
        intents |= match kind {
            EventKind::MessageCreate | EventKind::MessageUpdate | EventKind::MessageDelete => {
                Intents::GUILD_MESSAGES | Intents::DIRECT_MESSAGES | Intents::MESSAGE_CONTENT
            }
            EventKind::GuildAvailable => Intents::GUILDS,
            EventKind::MemberAdd => Intents::GUILD_MEMBERS,
        };
    }
    intents
}

/// The gateway events to decode: what the bot itself needs plus what the handlers want.
/// Everything else (the bot's own message edits coming back as MESSAGE_UPDATE, say) is
/// skipped after reading its type, without decoding the payload.
fn wanted_events(handlers: &[Arc<dyn EventHandler>]) -> EventTypeFlags {
    // Close frames come back as `Event::GatewayClose` whatever the flags.
    let mut flags =
        EventTypeFlags::READY | EventTypeFlags::RESUMED | EventTypeFlags::INTERACTION_CREATE;
    for kind in handlers.iter().flat_map(|h| h.kinds().iter()) {
        flags |= match kind {
            EventKind::MessageCreate => EventTypeFlags::MESSAGE_CREATE,
            EventKind::MessageUpdate => EventTypeFlags::MESSAGE_UPDATE,
            EventKind::MessageDelete => EventTypeFlags::MESSAGE_DELETE,
            EventKind::GuildAvailable => EventTypeFlags::GUILD_CREATE,
            EventKind::MemberAdd => EventTypeFlags::MEMBER_ADD,
        };
    }
    flags
}

struct ShardRunner {
    router: Arc<Router>,
    /// Decoded event types (see [`wanted_events`]).
    wanted: EventTypeFlags,
    events: Vec<Arc<dyn EventHandler>>,
    status: GatewayStatus,
    registered: Arc<AtomicBool>,
}

impl ShardRunner {
    async fn run(self, mut shard: Shard, shutdown: CancellationToken) {
        let id = shard.id();
        let mut closing: Option<tokio::time::Instant> = None;
        loop {
            let next = tokio::select! {
                next = shard.next_event(self.wanted) => next,
                () = shutdown.cancelled(), if closing.is_none() => {
                    tracing::info!(shard = %id, "closing shard");
                    closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    shard.close(CloseFrame::NORMAL);
                    continue;
                }
                // A peer that never completes the close handshake must not hold shutdown.
                () = tokio::time::sleep_until(closing.unwrap_or_else(tokio::time::Instant::now)), if closing.is_some() => break,
            };
            let event = match next {
                None => break,
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    tracing::warn!(shard = %id, %error, "gateway receive error; the shard reconnects");
                    continue;
                }
            };
            if let Some(avg) = shard.latency().average() {
                self.status
                    .inner
                    .latency_us
                    .store(avg.as_micros().max(1) as u64, Ordering::Relaxed);
            }
            if closing.is_some() {
                if matches!(event, Event::GatewayClose(_)) {
                    break;
                }
                continue;
            }
            self.on_event(id, event).await;
        }
        tracing::info!(shard = %id, "shard stopped");
    }

    async fn on_event(&self, shard: ShardId, event: Event) {
        match event {
            Event::Ready(ready) => {
                tracing::info!(%shard, session = %ready.session_id, guilds = ready.guilds.len(), "gateway ready");
                self.router
                    .discord()
                    .set_application_id(ready.application.id);
                self.status.inner.ready.store(true, Ordering::Relaxed);
                if !self.registered.swap(true, Ordering::SeqCst) {
                    let discord = self.router.discord().clone();
                    let specs = self.router.specs().to_vec();
                    let registered = Arc::clone(&self.registered);
                    tokio::spawn(async move {
                        match discord.register_commands(&specs).await {
                            Ok(()) => {
                                tracing::info!(commands = specs.len(), "slash commands registered")
                            }
                            Err(error) => {
                                registered.store(false, Ordering::SeqCst);
                                tracing::error!(%error, "registering slash commands failed; will retry on next READY");
                            }
                        }
                    });
                }
            }
            Event::Resumed => {
                tracing::info!(%shard, "gateway session resumed");
                self.status.inner.resumes.fetch_add(1, Ordering::Relaxed);
                self.status.inner.ready.store(true, Ordering::Relaxed);
            }
            Event::GatewayClose(frame) => {
                tracing::warn!(%shard, ?frame, "gateway connection closed; reconnecting");
            }
            Event::InteractionCreate(interaction) => self.router.dispatch(interaction.0),
            other => {
                if self.events.is_empty() {
                    return;
                }
                if let Some(event) = wire::event(&other) {
                    let kind = event.kind();
                    for handler in self.events.iter().filter(|h| h.kinds().contains(&kind)) {
                        tokio::spawn(handler.on_event(event.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::BoxFuture;
    use crate::model::Event;

    struct Wants(Vec<EventKind>);

    impl EventHandler for Wants {
        fn on_event(&self, _event: Event) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn kinds(&self) -> &[EventKind] {
            &self.0
        }
    }

    #[test]
    fn only_wanted_events_are_decoded() {
        let base =
            EventTypeFlags::READY | EventTypeFlags::RESUMED | EventTypeFlags::INTERACTION_CREATE;
        assert_eq!(
            wanted_events(&[]),
            base,
            "interactions and session events only"
        );
        assert_eq!(intents(&[]), Intents::GUILDS);

        let members: Arc<dyn EventHandler> = Arc::new(Wants(vec![EventKind::MemberAdd]));
        let flags = wanted_events(std::slice::from_ref(&members));
        assert_eq!(flags, base | EventTypeFlags::MEMBER_ADD);
        assert!(!flags.contains(EventTypeFlags::MESSAGE_UPDATE));
        assert_eq!(
            intents(&[members]),
            Intents::GUILDS | Intents::GUILD_MEMBERS,
            "no message intents, privileged or not"
        );

        let all: Arc<dyn EventHandler> = Arc::new(Wants(EventKind::ALL.to_vec()));
        assert!(intents(std::slice::from_ref(&all)).contains(Intents::MESSAGE_CONTENT));
        let flags = wanted_events(&[all]);
        for flag in [
            EventTypeFlags::MESSAGE_CREATE,
            EventTypeFlags::MESSAGE_UPDATE,
            EventTypeFlags::MESSAGE_DELETE,
            EventTypeFlags::GUILD_CREATE,
            EventTypeFlags::MEMBER_ADD,
        ] {
            assert!(flags.contains(flag), "{flag:?}");
        }
    }
}
