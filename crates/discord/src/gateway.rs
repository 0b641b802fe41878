use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use twilight_gateway::{
    CloseFrame, ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};

use crate::handler::EventHandler;
use crate::model::{ApplicationId, EventKind};
use crate::rest::{Discord, DiscordConfig, RestError};
use crate::router::Router;
use crate::wire;

/// How long a closing shard waits for the gateway to acknowledge the close.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// First wait after a failed `GET /gateway/bot`; doubles up to [`SHARD_COUNT_MAX_DELAY`].
const SHARD_COUNT_FIRST_DELAY: Duration = Duration::from_millis(500);
const SHARD_COUNT_MAX_DELAY: Duration = Duration::from_secs(30);

/// Which of the bot's gateway shards this process runs: `first..=last` of `total`.
/// Several processes split one bot by running disjoint ranges of the same total;
/// Discord sends each shard the events of the guilds whose `(id >> 22) % total` is
/// its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRange {
    first: u32,
    last: u32,
    total: u32,
}

/// A shard range that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidShards {
    #[error("the shard total must be at least 1")]
    NoShards,
    #[error("the range {first}-{last} is backwards (write the lower number first)")]
    Backwards { first: u32, last: u32 },
    #[error("shard {last} does not exist when there are {total} shards (they are numbered 0-{})", total - 1)]
    Beyond { last: u32, total: u32 },
}

impl ShardRange {
    /// Every shard of `total`.
    pub fn all(total: u32) -> Result<ShardRange, InvalidShards> {
        if total == 0 {
            return Err(InvalidShards::NoShards);
        }
        Ok(ShardRange {
            first: 0,
            last: total - 1,
            total,
        })
    }

    /// Shards `first..=last` of `total`.
    pub fn new(first: u32, last: u32, total: u32) -> Result<ShardRange, InvalidShards> {
        if total == 0 {
            return Err(InvalidShards::NoShards);
        }
        if first > last {
            return Err(InvalidShards::Backwards { first, last });
        }
        if last >= total {
            return Err(InvalidShards::Beyond { last, total });
        }
        Ok(ShardRange { first, last, total })
    }

    pub fn first(&self) -> u32 {
        self.first
    }
    pub fn last(&self) -> u32 {
        self.last
    }
    pub fn total(&self) -> u32 {
        self.total
    }
    /// How many shards this process runs.
    pub fn len(&self) -> u32 {
        self.last - self.first + 1
    }
    /// Never: a range holds at least one shard.
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn contains(&self, shard: u32) -> bool {
        (self.first..=self.last).contains(&shard)
    }
    pub fn ids(&self) -> std::ops::RangeInclusive<u32> {
        self.first..=self.last
    }
}

impl std::fmt::Display for ShardRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{} of {}", self.first, self.last, self.total)
    }
}

/// The longest wait between two attempts at registering the slash commands.
const COMMANDS_RETRY_MAX: Duration = Duration::from_secs(30);

/// How the bot connects.
#[derive(Clone)]
pub struct BotConfig {
    pub rest: DiscordConfig,
    /// WebSocket URL of a stand-in gateway (discord-sim); `None` for Discord's.
    pub gateway: Option<String>,
    /// The shards this process runs; `None`: all of the count Discord recommends
    /// (`GET /gateway/bot`, retried with backoff until it answers).
    pub shards: Option<ShardRange>,
    /// How long shutdown waits for in-flight interactions.
    pub drain_timeout: Duration,
    /// The permission bits to invite the bot with: when set, the process that registers
    /// the commands logs, at its first READY, the link that adds the bot to a server
    /// with them ([`invite_url`]).
    pub invite_permissions: Option<u64>,
}

/// The link that adds application `app` to a server with `permissions` and its slash
/// commands.
pub fn invite_url(app: ApplicationId, permissions: u64) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={app}&scope=bot%20applications.commands&permissions={permissions}"
    )
}

impl std::fmt::Debug for BotConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotConfig")
            .field("rest", &self.rest)
            .field("gateway", &self.gateway)
            .field("shards", &self.shards)
            .field("invite_permissions", &self.invite_permissions)
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
            shards: ShardRange::all(1).ok(),
            drain_timeout: Duration::from_secs(5),
            invite_permissions: None,
        }
    }
}

/// How one shard is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardHealth {
    /// Connecting, identifying or resuming; no session yet.
    Connecting,
    /// A session is live (READY or RESUMED received).
    Ready,
    /// The connection is gone (the reason); the shard reconnects unless it was fatal.
    Down(String),
}

impl std::fmt::Display for ShardHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardHealth::Connecting => f.write_str("connecting"),
            ShardHealth::Ready => f.write_str("ready"),
            ShardHealth::Down(why) => write!(f, "down: {why}"),
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
    /// The shards this process runs, once known.
    shards: Mutex<BTreeMap<u32, ShardHealth>>,
    total: AtomicU64,
    /// Why the shards have not started yet (a failing `GET /gateway/bot`).
    startup: Mutex<Option<String>>,
    latency_us: AtomicU64,
    resumes: AtomicU64,
    /// Why the slash commands are not registered yet, in the process that registers
    /// them (the one running shard 0); `None` once they are, and in other processes.
    commands: Mutex<Option<String>>,
}

impl GatewayStatus {
    /// Every shard this process runs has a live session. False until the shards are
    /// known, and as soon as any of them is down.
    pub fn is_ready(&self) -> bool {
        self.inner
            .shards
            .lock()
            .map(|shards| !shards.is_empty() && shards.values().all(|s| *s == ShardHealth::Ready))
            .unwrap_or(false)
            && self.commands_pending().is_none()
    }

    /// Why the slash commands are not registered yet, when this process registers them.
    fn commands_pending(&self) -> Option<String> {
        self.inner.commands.lock().ok().and_then(|c| c.clone())
    }

    fn set_commands(&self, pending: Option<String>) {
        if let Ok(mut commands) = self.inner.commands.lock() {
            *commands = pending;
        }
    }

    /// Each shard this process runs, by number.
    pub fn shards(&self) -> Vec<(u32, ShardHealth)> {
        self.inner
            .shards
            .lock()
            .map(|shards| shards.iter().map(|(n, h)| (*n, h.clone())).collect())
            .unwrap_or_default()
    }

    /// Why the gateway is not ready, in words for `/readyz`; `None` when it is.
    pub fn detail(&self) -> Option<String> {
        if let Some(startup) = self.inner.startup.lock().ok().and_then(|s| s.clone()) {
            return Some(startup);
        }
        let shards = self.shards();
        if shards.is_empty() {
            return Some("gateway not connected".to_owned());
        }
        let total = self.inner.total.load(Ordering::Relaxed);
        let not_ready: Vec<String> = shards
            .iter()
            .filter(|(_, h)| *h != ShardHealth::Ready)
            .map(|(n, h)| format!("shard {n} of {total} {h}"))
            .chain(self.commands_pending())
            .collect();
        (!not_ready.is_empty()).then(|| not_ready.join("; "))
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

    fn set(&self, shard: u32, health: ShardHealth) {
        if let Ok(mut shards) = self.inner.shards.lock() {
            shards.insert(shard, health);
        }
    }

    fn set_startup(&self, problem: Option<String>) {
        if let Ok(mut startup) = self.inner.startup.lock() {
            *startup = problem;
        }
    }

    fn start(&self, range: ShardRange) {
        self.inner
            .total
            .store(u64::from(range.total()), Ordering::Relaxed);
        if let Ok(mut shards) = self.inner.shards.lock() {
            shards.clear();
            for id in range.ids() {
                shards.insert(id, ShardHealth::Connecting);
            }
        }
        // Interactions only arrive for registered commands: the process that registers
        // them is not ready until they are.
        if range.contains(0) {
            self.set_commands(Some("slash commands not registered yet".to_owned()));
        }
    }

    fn stop_all(&self) {
        if let Ok(mut shards) = self.inner.shards.lock() {
            for health in shards.values_mut() {
                *health = ShardHealth::Down("stopped".to_owned());
            }
        }
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
    #[error("asking Discord for the shard count (GET /gateway/bot): {0}")]
    ShardCount(String),
    /// The gateway closed a shard with a code after which reconnecting cannot help.
    #[error("the gateway closed shard {shard} of {total} with code {code} ({cause}): {fix}")]
    Fatal {
        shard: u32,
        total: u32,
        code: u16,
        cause: &'static str,
        fix: &'static str,
    },
    #[error("the gateway connection of shard {shard} of {total} ended and will not reconnect")]
    Ended { shard: u32, total: u32 },
    /// The task running a shard panicked (or was lost otherwise): its guilds would go
    /// unserved in silence, so every shard stops.
    #[error("the task of shard {shard} of {total} was lost: {reason}")]
    Lost {
        shard: u32,
        total: u32,
        reason: String,
    },
}

/// What a close code after which the gateway refuses to go on means, and what the
/// operator can do about it; `None` for codes a shard recovers from.
pub fn fatal_close_code(code: u16) -> Option<(&'static str, &'static str)> {
    Some(match code {
        4004 => (
            "authentication failed",
            "the bot token is wrong or was reset; set TAVERN_DISCORD_TOKEN to the token on the Bot page of the Discord developer portal",
        ),
        4010 => (
            "invalid shard",
            "the shard numbers do not fit the shard total; check TAVERN_SHARDS and TAVERN_SHARD_TOTAL",
        ),
        4011 => (
            "sharding required",
            "the bot is in too many guilds for this shard total; raise TAVERN_SHARD_TOTAL (or leave TAVERN_SHARDS unset so Discord's recommendation is used)",
        ),
        4012 => (
            "invalid API version",
            "the gateway no longer accepts the API version this Tavern speaks; upgrade Tavern",
        ),
        4013 => (
            "invalid intents",
            "the gateway refused the intents Tavern asked for; this is a bug in Tavern, please report it",
        ),
        4014 => (
            "disallowed intents",
            "the bot asks for a privileged intent it is not allowed (Server Members or Message Content); enable it under Bot > Privileged Gateway Intents in the Discord developer portal",
        ),
        _ => return None,
    })
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

    /// The shards to run: the configured range, or all of what Discord recommends,
    /// asked until it answers (0.5 s doubling to 30 s between tries; readiness shows
    /// the error meanwhile). `Ok(None)` when shut down first. A refused token is fatal.
    async fn shard_range(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<ShardRange>, BotError> {
        if let Some(range) = self.config.shards {
            return Ok(Some(range));
        }
        let mut delay = SHARD_COUNT_FIRST_DELAY;
        let mut attempt = 1u32;
        loop {
            let asked = tokio::select! {
                asked = self.discord().recommended_shards() => asked,
                () = shutdown.cancelled() => return Ok(None),
            };
            match asked {
                Ok(count) => {
                    self.status.set_startup(None);
                    if attempt > 1 {
                        tracing::info!(
                            attempts = attempt,
                            shards = count,
                            "Discord answered the shard count after retrying"
                        );
                    }
                    return ShardRange::all(count)
                        .map(Some)
                        .map_err(|e| BotError::ShardCount(e.to_string()));
                }
                Err(
                    error @ (RestError::NoToken { .. } | RestError::Status { status: 401, .. }),
                ) => {
                    return Err(BotError::ShardCount(format!(
                        "{error}; the bot token was refused: set TAVERN_DISCORD_TOKEN to the token on the Bot page of the Discord developer portal"
                    )));
                }
                Err(error) => {
                    let problem = format!(
                        "asking Discord for the shard count (GET /gateway/bot) failed: {error}; retrying in {delay:?}"
                    );
                    if attempt == 1 {
                        tracing::error!(%error, "asking Discord for the shard count failed; /readyz reports not ready; retrying with backoff (up to every 30 s)");
                    } else {
                        tracing::debug!(%error, attempt, "asking Discord for the shard count still fails");
                    }
                    self.status.set_startup(Some(problem));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return Ok(None),
            }
            delay = (delay * 2).min(SHARD_COUNT_MAX_DELAY);
            attempt += 1;
        }
    }

    /// Runs this process's shards until `shutdown` is cancelled, then closes them (no
    /// new work), waits for in-flight interactions and returns. A shard the gateway
    /// closes for good (a refused token, disallowed intents: see [`fatal_close_code`])
    /// stops every shard and is returned as [`BotError::Fatal`].
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BotError> {
        let Some(range) = self.shard_range(&shutdown).await? else {
            tracing::info!("shut down before the shards started");
            return Ok(());
        };
        tracing::info!(
            shards = %range,
            gateway = self.config.gateway.as_deref().unwrap_or("discord"),
            registers_commands = range.contains(0),
            "starting shards"
        );
        self.status.start(range);
        let stop = shutdown.child_token();
        // Every handler's delivery task, so shutdown waits for the events already queued.
        let deliveries = tokio_util::task::TaskTracker::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut shard_of_task = HashMap::new();
        for index in range.ids() {
            let mut builder =
                ConfigBuilder::new(self.config.rest.token.clone(), intents(&self.events));
            if let Some(url) = &self.config.gateway {
                builder = builder.proxy_url(url.clone());
            }
            let shard = Shard::with_config(ShardId::new(index, range.total()), builder.build());
            let runner = ShardRunner {
                router: Arc::clone(&self.router),
                wanted: wanted_events(&self.events),
                events: self
                    .events
                    .iter()
                    .map(|handler| {
                        EventQueue::spawn(Arc::clone(handler), EVENT_QUEUE_CAPACITY, &deliveries)
                    })
                    .collect(),
                status: self.status.clone(),
                registered: Arc::clone(&self.registered),
                invite_permissions: self.config.invite_permissions,
                total: range.total(),
            };
            let task = tasks.spawn(runner.run(shard, stop.clone()));
            shard_of_task.insert(task.id(), index);
        }
        let mut fatal = None;
        while let Some(joined) = tasks.join_next().await {
            if let Some(error) = shard_ended(joined, &shard_of_task, range.total())
                && fatal.is_none()
            {
                // One shard can no longer run: stop the others rather than serve part
                // of the guilds in silence.
                fatal = Some(error);
                stop.cancel();
            }
        }
        self.status.stop_all();
        // The shards are gone, and with them the queues' senders: each delivery task ends
        // once its handler has had every event already queued.
        deliveries.close();
        let drain = self.config.drain_timeout;
        let (interactions, events) = tokio::join!(
            self.router.wait_in_flight(drain),
            tokio::time::timeout(drain, deliveries.wait()),
        );
        if !interactions {
            tracing::warn!(timeout = ?drain, "in-flight interactions did not finish before the drain timeout");
        }
        if events.is_err() {
            tracing::warn!(timeout = ?drain, "event handlers did not finish their queued events before the drain timeout");
        }
        tracing::info!("discord connection closed");
        match fatal {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// What a shard's task ended with, as an error that stops every shard (`None`: it ended
/// well). A panic is logged at ERROR with what panicked.
fn shard_ended(
    joined: Result<Result<(), BotError>, tokio::task::JoinError>,
    shard_of_task: &HashMap<tokio::task::Id, u32>,
    total: u32,
) -> Option<BotError> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(join) => {
            let shard = shard_of_task.get(&join.id()).copied().unwrap_or(u32::MAX);
            let reason = if join.is_panic() {
                let panic = join.into_panic();
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|t| (*t).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_owned());
                format!("it panicked: {text}")
            } else {
                join.to_string()
            };
            tracing::error!(shard, %reason, "a shard's task was lost; stopping every shard");
            Some(BotError::Lost {
                shard,
                total,
                reason,
            })
        }
    }
}

/// The intents to ask for: `GUILDS` always, the rest only when a handler wants the
/// events behind them, so Discord does not send (and the bot does not read) every message
/// of every guild for nothing, and privileged intents are asked for only when used.
fn intents(handlers: &[Arc<dyn EventHandler>]) -> Intents {
    let mut intents = Intents::GUILDS;
    for kind in handlers.iter().flat_map(|h| h.kinds().iter()) {
        intents |= match kind {
            EventKind::MessageCreate
            | EventKind::MessageUpdate
            | EventKind::MessageDelete
            | EventKind::MessageDeleteBulk => {
                Intents::GUILD_MESSAGES | Intents::DIRECT_MESSAGES | Intents::MESSAGE_CONTENT
            }
            EventKind::GuildAvailable
            | EventKind::GuildUpdate
            | EventKind::GuildRemoved
            | EventKind::ChannelCreate
            | EventKind::ChannelUpdate
            | EventKind::ChannelDelete => Intents::GUILDS,
            EventKind::MemberAdd => Intents::GUILD_MEMBERS,
            EventKind::VoiceStateUpdate => Intents::GUILD_VOICE_STATES,
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
            EventKind::MessageDeleteBulk => EventTypeFlags::MESSAGE_DELETE_BULK,
            EventKind::GuildAvailable => EventTypeFlags::GUILD_CREATE,
            EventKind::GuildUpdate => EventTypeFlags::GUILD_UPDATE,
            EventKind::GuildRemoved => EventTypeFlags::GUILD_DELETE,
            EventKind::ChannelCreate => EventTypeFlags::CHANNEL_CREATE,
            EventKind::ChannelUpdate => EventTypeFlags::CHANNEL_UPDATE,
            EventKind::ChannelDelete => EventTypeFlags::CHANNEL_DELETE,
            EventKind::MemberAdd => EventTypeFlags::MEMBER_ADD,
            EventKind::VoiceStateUpdate => EventTypeFlags::VOICE_STATE_UPDATE,
        };
    }
    flags
}

/// How many events of one shard wait for one handler before more are dropped.
const EVENT_QUEUE_CAPACITY: usize = 10_000;

/// One handler's events of one shard, delivered in the order the gateway sent them:
/// a task per handler awaits each event before the next, so a message's edit never
/// overtakes its creation and a deletion never comes before either. Handlers stay
/// independent of each other (each has its own queue). The queue holds at most
/// `capacity` events: a handler that falls that far behind loses the newer ones (logged
/// and counted) rather than growing memory without end or stalling the shard, which
/// must keep reading to keep its connection. The task ends once the shard stops and the
/// queue is drained; a handler that panics loses that one event.
struct EventQueue {
    handler: Arc<dyn EventHandler>,
    queue: tokio::sync::mpsc::Sender<crate::model::Event>,
    dropped: AtomicU64,
}

impl EventQueue {
    fn spawn(
        handler: Arc<dyn EventHandler>,
        capacity: usize,
        tasks: &tokio_util::task::TaskTracker,
    ) -> EventQueue {
        let (queue, mut events) = tokio::sync::mpsc::channel(capacity.max(1));
        let deliver = Arc::clone(&handler);
        tasks.spawn(async move {
            while let Some(event) = events.recv().await {
                // Its own task, awaited: a handler that panics loses that event
                // only, and the queue goes on.
                if let Err(error) = tokio::spawn(deliver.on_event(event)).await {
                    tracing::error!(%error, "an event handler failed");
                }
            }
        });
        EventQueue {
            handler,
            queue,
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `event` for the handler; false if it was dropped (the queue is full, or
    /// the delivery task is gone after a panic in it).
    fn offer(&self, event: crate::model::Event) -> bool {
        match self.queue.try_send(event) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(event)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!("tavern_gateway_events_dropped_total").increment(1);
                if dropped == 1 || dropped.is_multiple_of(1000) {
                    tracing::warn!(
                        kind = ?event.kind(),
                        dropped,
                        "an event handler is falling behind; its queue is full and events are dropped"
                    );
                }
                false
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

struct ShardRunner {
    router: Arc<Router>,
    /// Decoded event types (see [`wanted_events`]).
    wanted: EventTypeFlags,
    events: Vec<EventQueue>,
    status: GatewayStatus,
    registered: Arc<AtomicBool>,
    invite_permissions: Option<u64>,
    total: u32,
}

impl ShardRunner {
    async fn run(self, mut shard: Shard, shutdown: CancellationToken) -> Result<(), BotError> {
        let id = shard.id();
        let number = id.number();
        let mut closing: Option<tokio::time::Instant> = None;
        let mut last_close: Option<u16> = None;
        // Why the connection went down, until a session is live again.
        let mut last_down: Option<String> = None;
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
                    if matches!(
                        error.kind(),
                        twilight_gateway::error::ReceiveMessageErrorType::Reconnect
                    ) {
                        let why = match &last_down {
                            Some(closed) => format!("{closed}; reconnecting failed: {error}"),
                            None => format!("reconnecting failed: {error}"),
                        };
                        self.status.set(number, ShardHealth::Down(why));
                    }
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
            if let Event::GatewayClose(frame) = &event {
                last_close = frame.as_ref().map(|f| f.code);
                let why = match frame {
                    Some(frame) if frame.reason.is_empty() => {
                        format!("connection closed with code {}", frame.code)
                    }
                    Some(frame) => {
                        format!(
                            "connection closed with code {} ({})",
                            frame.code, frame.reason
                        )
                    }
                    None => "connection closed".to_owned(),
                };
                self.status.set(number, ShardHealth::Down(why.clone()));
                last_down = Some(why);
            }
            if matches!(event, Event::Ready(_) | Event::Resumed) {
                last_down = None;
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
        if closing.is_some() || shutdown.is_cancelled() {
            return Ok(());
        }
        // The stream ended without being asked to: the gateway closed it for good.
        Err(
            match last_close.and_then(|code| fatal_close_code(code).map(|f| (code, f))) {
                Some((code, (cause, fix))) => BotError::Fatal {
                    shard: number,
                    total: self.total,
                    code,
                    cause,
                    fix,
                },
                None => BotError::Ended {
                    shard: number,
                    total: self.total,
                },
            },
        )
    }

    async fn on_event(&self, shard: ShardId, event: Event) {
        match event {
            Event::Ready(ready) => {
                tracing::info!(%shard, session = %ready.session_id, guilds = ready.guilds.len(), "gateway ready");
                self.router
                    .discord()
                    .set_application_id(ready.application.id);
                self.status.set(shard.number(), ShardHealth::Ready);
                // Commands are global: the process that runs shard 0 registers them,
                // once, so processes that split the shards do not all overwrite them.
                // A failure is retried with backoff; readiness waits for it.
                if shard.number() == 0 && !self.registered.swap(true, Ordering::SeqCst) {
                    if let Some(permissions) = self.invite_permissions {
                        tracing::info!(
                            link = %invite_url(ready.application.id, permissions),
                            "to add the bot to a server with the permissions its features need, open this link"
                        );
                    }
                    let discord = self.router.discord().clone();
                    let specs = self.router.specs().to_vec();
                    let status = self.status.clone();
                    tokio::spawn(async move {
                        let mut wait = Duration::from_secs(1);
                        loop {
                            match discord.register_commands(&specs).await {
                                Ok(()) => {
                                    status.set_commands(None);
                                    tracing::info!(
                                        commands = specs.len(),
                                        "slash commands registered"
                                    );
                                    return;
                                }
                                Err(error) => {
                                    status.set_commands(Some(format!(
                                        "registering slash commands failed ({error}); retrying"
                                    )));
                                    tracing::error!(%error, retry_in = ?wait, "registering slash commands failed; /readyz reports not ready; retrying");
                                    tokio::time::sleep(wait).await;
                                    wait = (wait * 2).min(COMMANDS_RETRY_MAX);
                                }
                            }
                        }
                    });
                }
            }
            Event::Resumed => {
                tracing::info!(%shard, "gateway session resumed");
                self.status.inner.resumes.fetch_add(1, Ordering::Relaxed);
                self.status.set(shard.number(), ShardHealth::Ready);
            }
            // A fatal close is not logged here: it ends the bot with an error that says
            // what happened and what to do, in one line.
            Event::GatewayClose(Some(frame)) if fatal_close_code(frame.code).is_some() => {}
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
                    for queue in self
                        .events
                        .iter()
                        .filter(|q| q.handler.kinds().contains(&kind))
                    {
                        queue.offer(event.clone());
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

    #[test]
    fn the_invite_link_names_the_application_its_scopes_and_permissions() {
        use crate::model::permissions::{MANAGE_ROLES, SEND_MESSAGES, VIEW_CHANNEL};
        let link = invite_url(
            ApplicationId::new(4_242),
            VIEW_CHANNEL | SEND_MESSAGES | MANAGE_ROLES,
        );
        assert_eq!(
            link,
            "https://discord.com/oauth2/authorize?client_id=4242\
             &scope=bot%20applications.commands&permissions=268438528"
        );
    }

    struct Wants(Vec<EventKind>);

    impl EventHandler for Wants {
        fn on_event(&self, _event: Event) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn kinds(&self) -> &[EventKind] {
            &self.0
        }
    }

    /// Records the id of each deleted message it is handed, once a permit allows.
    struct Gated {
        seen: Arc<Mutex<Vec<u64>>>,
        permits: Arc<tokio::sync::Semaphore>,
    }

    impl EventHandler for Gated {
        fn on_event(&self, event: Event) -> BoxFuture<'static, ()> {
            let (seen, permits) = (Arc::clone(&self.seen), Arc::clone(&self.permits));
            Box::pin(async move {
                permits.acquire().await.expect("permits").forget();
                if let Event::MessageDelete { message_id, .. } = event {
                    seen.lock().expect("seen").push(message_id.get());
                }
            })
        }
        fn kinds(&self) -> &[EventKind] {
            &[EventKind::MessageDelete]
        }
    }

    // Current-thread: the delivery task does not run before the test awaits.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_event_queue_drops_newer_events_and_delivers_the_queued_ones() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let permits = Arc::new(tokio::sync::Semaphore::new(0));
        let handler = Arc::new(Gated {
            seen: Arc::clone(&seen),
            permits: Arc::clone(&permits),
        });
        let tasks = tokio_util::task::TaskTracker::new();
        let queue = EventQueue::spawn(handler, 2, &tasks);
        let delete = |id: u64| Event::MessageDelete {
            guild_id: None,
            channel_id: crate::Id::new(1),
            message_id: crate::Id::new(id),
        };
        let offered: Vec<bool> = (1..=4).map(|id| queue.offer(delete(id))).collect();
        assert_eq!(
            offered,
            [true, true, false, false],
            "two fit, two are dropped"
        );
        permits.add_permits(10);
        drop(queue);
        tasks.close();
        tasks.wait().await;
        assert_eq!(*seen.lock().expect("seen"), [1, 2]);
    }

    #[tokio::test]
    async fn a_shard_task_that_panics_stops_every_shard_and_says_why() {
        let mut tasks = tokio::task::JoinSet::new();
        let mut shard_of_task = HashMap::new();
        let task = tasks.spawn(async {
            if true {
                panic!("the shard tripped");
            }
            Ok::<(), BotError>(())
        });
        shard_of_task.insert(task.id(), 3);
        let joined = tasks.join_next().await.expect("one task");
        let error = shard_ended(joined, &shard_of_task, 4).expect("a lost shard is fatal");
        assert!(
            matches!(&error, BotError::Lost { shard: 3, total: 4, reason } if reason.contains("the shard tripped")),
            "{error}"
        );
        assert!(shard_ended(Ok(Ok(())), &shard_of_task, 4).is_none());
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
