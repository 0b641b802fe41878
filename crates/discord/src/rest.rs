use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;
use twilight_http::request::TryIntoRequest;
use twilight_http_ratelimiting::{Endpoint, RateLimitHeaders, RateLimiter};
use twilight_model::channel::ChannelType;
use twilight_model::channel::message::MessageFlags;
use twilight_model::channel::permission_overwrite::{PermissionOverwrite, PermissionOverwriteType};
use twilight_model::guild::Permissions;

use crate::breaker::{BreakerConfig, Breakers, Change};
use crate::handler::BoxFuture;
use crate::model::*;
use crate::wire;

/// The bot's global request limit shared by every process of one bot.
///
/// Discord allows a bot 50 requests per second in all (interaction callbacks apart),
/// whatever the number of processes it runs in. Each process already keeps its own
/// requests within [`DiscordConfig::global_rate_limit`]; with several processes, one
/// implementation of this trait, backed by a store they share, makes them keep within it
/// together. [`Discord`] awaits [`GlobalLimiter::acquire`] before every request it
/// counts against the global limit.
pub trait GlobalLimiter: Send + Sync + 'static {
    /// Waits until one more request may be sent. An implementation whose store is
    /// unreachable lets the request go (each process still keeps its own limit, and a
    /// 429 is still honoured) rather than stopping the bot.
    fn acquire(&self) -> BoxFuture<'static, ()>;
}

/// How to reach Discord's REST API.
#[derive(Clone)]
pub struct DiscordConfig {
    pub token: String,
    /// `host:port` of a plain-HTTP stand-in for `discord.com` (discord-sim); `None` for
    /// the real API.
    pub api: Option<String>,
    /// Retries of a 5xx or a connection failure before giving up.
    pub max_retries: u32,
    /// First backoff after a 5xx; doubles each retry.
    pub base_backoff: Duration,
    /// Requests per second allowed across all routes (interaction callbacks are exempt).
    /// Discord's default is 50; large bots are granted more on request.
    pub global_rate_limit: u16,
    /// How long one request may take, connecting included, before it counts as timed
    /// out.
    pub request_timeout: Duration,
    /// First wait after a 429 that is not Discord's (no JSON body: Cloudflare refusing
    /// this address). Doubles with each one in a row, up to [`MAX_BAN_BACKOFF`]; every
    /// request of this handle waits it out.
    pub ban_backoff: Duration,
    /// When a request target that keeps answering 401, 403 or 404 is no longer called.
    pub breaker: BreakerConfig,
    /// The global limit shared with the bot's other processes, if any.
    pub global_limiter: Option<Arc<dyn GlobalLimiter>>,
    /// The web client that opens links to messages ([`Discord::message_url`]):
    /// `None` for Discord's own (`https://discord.com`); a stand-in names its own (the
    /// sandbox's console), since Discord does not know the stand-in's guilds.
    pub app: Option<url::Url>,
}

/// Discord's own web client, where message links lead by default.
const DISCORD_APP: &str = "https://discord.com";

/// The longest wait after Cloudflare's 429s in a row.
pub const MAX_BAN_BACKOFF: Duration = Duration::from_secs(600);

/// A 429 is waited out this many times before the call gives up.
const MAX_RATE_LIMITED: u32 = 5;

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"<redacted>")
            .field("api", &self.api)
            .field("max_retries", &self.max_retries)
            .field("base_backoff", &self.base_backoff)
            .field("global_rate_limit", &self.global_rate_limit)
            .field("request_timeout", &self.request_timeout)
            .field("ban_backoff", &self.ban_backoff)
            .field("breaker", &self.breaker)
            .field("global_limiter", &self.global_limiter.is_some())
            .field("app", &self.app.as_ref().map(url::Url::as_str))
            .finish()
    }
}

impl DiscordConfig {
    pub fn new(token: impl Into<String>, api: Option<String>) -> DiscordConfig {
        DiscordConfig {
            token: token.into(),
            api,
            max_retries: 4,
            base_backoff: Duration::from_millis(200),
            global_rate_limit: 50,
            request_timeout: Duration::from_secs(10),
            ban_backoff: Duration::from_secs(2),
            breaker: BreakerConfig::default(),
            global_limiter: None,
            app: None,
        }
    }
}

// reqwest says only `error sending request`; why (`tcp connect error: Connection
// refused`) is in its causes, which `base::with_causes` adds.
pub(crate) use base::with_causes;

/// A failed REST call.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("discord {route}: HTTP {status}: {message}")]
    Status {
        route: &'static str,
        status: u16,
        /// Discord's JSON error code (`10008` Unknown Message, ...); 0 when absent.
        code: u64,
        message: String,
    },
    #[error("discord {route}: still rate limited after {attempts} attempts")]
    RateLimited { route: &'static str, attempts: u32 },
    /// Discord could not be reached or the connection failed. The message says the
    /// client's error with its causes (`connection refused`, ...) and names no
    /// `source`: a report of the chain (`{:#}`) says each cause once, and a log of
    /// the message alone still says why.
    #[error("discord {route}: {}", with_causes(.cause))]
    Transport {
        route: &'static str,
        cause: reqwest::Error,
    },
    /// No answer came (a timeout, a connection lost after sending, a 5xx) to a request
    /// that creates something, so it may have taken effect: it is not sent again blindly.
    #[error(
        "discord {route}: no answer ({reason}); the request may have taken effect, so it was not repeated"
    )]
    Unconfirmed { route: &'static str, reason: String },
    /// The target kept answering 401, 403 or 404, so it is not called for a while.
    #[error(
        "discord {route}: not calling {target} for {retry_in:.0?}: it kept answering HTTP {status} (circuit breaker open)"
    )]
    CircuitOpen {
        route: &'static str,
        target: String,
        status: u16,
        retry_in: Duration,
    },
    #[error("discord {route}: bad response body: {message}")]
    Decode {
        route: &'static str,
        message: String,
    },
    #[error("discord: bad request built by tavern: {0}")]
    Build(String),
    #[error("discord: the application id is not known yet (no READY received)")]
    NoApplicationId,
    #[error("discord {route}: no bot token is configured (TAVERN_DISCORD_TOKEN)")]
    NoToken { route: &'static str },
}

impl RestError {
    /// The HTTP status, when Discord answered with an error status (for an open
    /// circuit breaker, the status the target kept answering).
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Status { status, .. } | RestError::CircuitOpen { status, .. } => {
                Some(*status)
            }
            RestError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Discord's JSON error code, when it sent one.
    pub fn code(&self) -> Option<u64> {
        match self {
            RestError::Status { code, .. } if *code != 0 => Some(*code),
            _ => None,
        }
    }

    /// Discord refused because the bot lacks a permission or cannot see the channel
    /// (403 with 50001 Missing Access or 50013 Missing Permissions, also while a
    /// circuit breaker holds such a refusal): something a server admin fixes, not a
    /// fault of Tavern's.
    pub fn is_missing_permission(&self) -> bool {
        match self {
            RestError::Status {
                status: 403, code, ..
            } => matches!(code, 50001 | 50013),
            RestError::CircuitOpen { status: 403, .. } => true,
            _ => false,
        }
    }
}

/// What may be done after a failure that leaves a request's effect unknown (a
/// timeout, a connection lost after sending, a 5xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Sending it again does no harm: reads, edits, deletes, PUTs, and a message whose
    /// nonce Discord enforces.
    Safe,
    /// It creates something: the failure is returned as [`RestError::Unconfirmed`] for
    /// the caller to check before it tries again.
    Create,
}

/// A request let through [`Discord`]'s breakers whose answer is not recorded yet. If it
/// is dropped unrecorded (its caller was cancelled while it waited or was on the wire),
/// it records "no answer", so a half-open breaker lets the next caller probe rather than
/// waiting forever for this one.
struct Pending<'a> {
    discord: &'a Discord,
    spec: Spec,
    path: &'a str,
    recorded: bool,
}

impl Pending<'_> {
    fn record(&mut self, status: Option<u16>) {
        self.recorded = true;
        self.discord.breaker_record(&self.spec, self.path, status);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.discord.breaker_record(&self.spec, self.path, None);
        }
    }
}

/// How one route is called.
#[derive(Debug, Clone, Copy)]
struct Spec {
    route: &'static str,
    /// Counted against the global limit and the route's bucket (everything except
    /// interaction callbacks, which Discord exempts).
    limited: bool,
    repeat: Repeat,
    /// Whether 5xx and transport failures are retried here at all.
    retries: bool,
    /// A 404 is an answer ("no such thing"), not a refusal the circuit breaker counts.
    absent_ok: bool,
}

impl Spec {
    const fn new(route: &'static str) -> Spec {
        Spec {
            route,
            limited: true,
            repeat: Repeat::Safe,
            retries: true,
            absent_ok: false,
        }
    }
    const fn absent_ok(mut self) -> Spec {
        self.absent_ok = true;
        self
    }
    const fn creates(mut self) -> Spec {
        self.repeat = Repeat::Create;
        self
    }
    const fn unlimited(mut self) -> Spec {
        self.limited = false;
        self
    }
    const fn once(mut self) -> Spec {
        self.retries = false;
        self
    }
}

/// A successful answer: its body.
struct Answer {
    body: Vec<u8>,
}

/// Discord's JSON error body.
#[derive(serde::Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: u64,
}

/// Discord's 429 body.
#[derive(serde::Deserialize)]
struct RateLimitedBody {
    retry_after: f64,
    #[serde(default)]
    global: bool,
}

struct Inner {
    /// Builds requests (paths, validated JSON bodies); never sends them.
    factory: twilight_http::Client,
    http: reqwest::Client,
    /// `https://discord.com/api/v10/` or the stand-in's.
    base: String,
    /// `Bot <token>`.
    authorization: String,
    limiter: RateLimiter,
    global: Option<Arc<dyn GlobalLimiter>>,
    breakers: Mutex<Breakers>,
    /// Requests under the global limit wait until then (a global 429).
    paused_until: Mutex<Option<tokio::time::Instant>>,
    /// Every request waits until then, interaction callbacks too (Cloudflare's 429:
    /// the whole address is refused).
    banned_until: Mutex<Option<tokio::time::Instant>>,
    /// Cloudflare 429s in a row (doubles the wait).
    bans_in_a_row: AtomicU32,
    application_id: OnceLock<ApplicationId>,
    /// Smoothed latency of successful REST calls, in microseconds (0 = none yet).
    latency_us: AtomicU64,
    max_retries: u32,
    base_backoff: Duration,
    ban_backoff: Duration,
    /// False for [`Discord::without_token`]: every call fails at once.
    has_token: bool,
    /// Where message links lead, without a trailing `/` ([`DiscordConfig::app`]).
    app: String,
}

/// Discord's REST API, as features use it. Cheap to clone.
///
/// Every call goes through one policy:
/// - each process keeps within the per-route buckets it learns from `X-RateLimit-*`
///   headers and the global limit (and, with a [`GlobalLimiter`], within the limit
///   shared with the bot's other processes);
/// - a 429 waits `retry_after` (a global one pauses every request) and retries, at most
///   5 times; a 429 without Discord's JSON (Cloudflare refusing this address) pauses
///   every request with a backoff that doubles each time instead;
/// - a 5xx or a connection failure retries with exponential backoff, except for a
///   request that creates something, which is never sent twice blindly (messages carry
///   a nonce Discord enforces; channels and roles are looked for first; follow-ups are
///   not repeated);
/// - 401, 403 and 404 are returned at once and counted per target: one that keeps
///   answering them is not called for a while (circuit breaker), since invalid requests
///   count towards Discord's ban;
/// - any other 4xx is returned at once.
#[derive(Clone)]
pub struct Discord {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord")
            .field("application_id", &self.inner.application_id.get())
            .finish_non_exhaustive()
    }
}

fn overwrite(o: &Overwrite) -> PermissionOverwrite {
    let (id, kind) = match o.target {
        OverwriteTarget::Role(id) => (id.cast(), PermissionOverwriteType::Role),
        OverwriteTarget::Member(id) => (id.cast(), PermissionOverwriteType::Member),
    };
    PermissionOverwrite {
        id,
        kind,
        allow: Permissions::from_bits_truncate(o.allow),
        deny: Permissions::from_bits_truncate(o.deny),
    }
}

/// The metric label of an answer's status.
fn outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        401 => "401",
        403 => "403",
        429 => "429",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The bucket facts of an answer, whatever its scope.
fn rate_limit_headers(headers: &reqwest::header::HeaderMap) -> Option<RateLimitHeaders> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if get(RateLimitHeaders::SCOPE) == Some("global") {
        return None;
    }
    let reset_after: f64 = get(RateLimitHeaders::RESET_AFTER)?.parse().ok()?;
    Some(RateLimitHeaders {
        bucket: get(RateLimitHeaders::BUCKET)?.as_bytes().to_vec(),
        limit: get(RateLimitHeaders::LIMIT)?.parse().ok()?,
        remaining: get(RateLimitHeaders::REMAINING)?.parse().ok()?,
        reset_at: Instant::now() + Duration::from_secs_f64(reset_after.clamp(0.0, 3600.0)),
    })
}

/// A nonce for a message, unique within this process and unlikely across processes.
fn message_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let pid = u64::from(std::process::id());
    // At most 25 characters, as Discord requires.
    format!(
        "{:x}",
        (nanos ^ (pid << 40)).wrapping_add(n.wrapping_mul(0x9e37_79b9))
    )
}

impl Discord {
    pub fn new(config: &DiscordConfig) -> Discord {
        Discord::build(config, true)
    }

    fn build(config: &DiscordConfig, has_token: bool) -> Discord {
        // The HTTP client's TLS needs the process-wide provider; installing it twice is
        // harmless, forgetting it would fail every request.
        crate::install_crypto_provider();
        let token = config.token.trim();
        let authorization = if token.starts_with("Bot ") {
            token.to_owned()
        } else {
            format!("Bot {token}")
        };
        let mut factory = twilight_http::Client::builder()
            .token(authorization.clone())
            .ratelimiter(None)
            // Whatever a request forgets, it pings nobody.
            .default_allowed_mentions(twilight_model::channel::message::AllowedMentions::default());
        if let Some(api) = &config.api {
            factory = factory.proxy(api.clone(), true);
        }
        let base = match &config.api {
            Some(api) => format!("http://{api}/api/v10/"),
            None => "https://discord.com/api/v10/".to_owned(),
        };
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            // Discord asks for `DiscordBot ($url, $version)`.
            .user_agent(concat!(
                "DiscordBot (tavern, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "could not build the Discord HTTP client; using defaults");
                reqwest::Client::new()
            });
        Discord {
            inner: Arc::new(Inner {
                factory: factory.build(),
                http,
                base,
                authorization,
                limiter: RateLimiter::new(config.global_rate_limit.max(1)),
                global: config.global_limiter.clone(),
                breakers: Mutex::new(Breakers::new(config.breaker)),
                paused_until: Mutex::new(None),
                banned_until: Mutex::new(None),
                bans_in_a_row: AtomicU32::new(0),
                application_id: OnceLock::new(),
                latency_us: AtomicU64::new(0),
                max_retries: config.max_retries,
                base_backoff: config.base_backoff,
                ban_backoff: config.ban_backoff,
                has_token,
                app: config
                    .app
                    .as_ref()
                    .map_or(DISCORD_APP, url::Url::as_str)
                    .trim_end_matches('/')
                    .to_owned(),
            }),
        }
    }

    /// A handle for commands that run without a bot token (`tavern check`, `tavern
    /// migrate`): every call fails at once with [`RestError::NoToken`], without a
    /// request. [`Discord::has_token`] tells a caller to skip what needs Discord.
    pub fn without_token() -> Discord {
        let config = DiscordConfig::new("", Some("127.0.0.1:9".to_owned()));
        Discord::build(&config, false)
    }

    /// False for a handle made by [`Discord::without_token`].
    pub fn has_token(&self) -> bool {
        self.inner.has_token
    }

    /// A link that opens `message` of `channel` in the web client
    /// ([`DiscordConfig::app`]): `{app}/channels/{guild}/{channel}/{message}`, with
    /// `@me` in place of the guild for a direct message (`guild` `None`).
    pub fn message_url(
        &self,
        guild: Option<GuildId>,
        channel: ChannelId,
        message: MessageId,
    ) -> String {
        let place = guild.map_or_else(|| "@me".to_owned(), |g| g.get().to_string());
        format!("{}/channels/{place}/{channel}/{message}", self.inner.app)
    }

    /// Records the application id (from READY); interactions need it.
    pub fn set_application_id(&self, id: ApplicationId) {
        let _ = self.inner.application_id.set(id);
    }

    pub fn application_id(&self) -> Option<ApplicationId> {
        self.inner.application_id.get().copied()
    }

    fn app(&self) -> Result<ApplicationId, RestError> {
        self.application_id().ok_or(RestError::NoApplicationId)
    }

    /// Smoothed latency of recent REST calls, if any were made.
    pub fn latency(&self) -> Option<Duration> {
        match self.inner.latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn record_latency(&self, took: Duration) {
        let sample = took.as_micros().clamp(1, u64::MAX as u128) as u64;
        let old = self.inner.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        self.inner.latency_us.store(new.max(1), Ordering::Relaxed);
    }

    /// How long the requests of this handle still wait before they are sent (after a
    /// global 429, or Cloudflare's); `None` when nothing holds them.
    pub fn paused(&self) -> Option<Duration> {
        let now = tokio::time::Instant::now();
        [&self.inner.paused_until, &self.inner.banned_until]
            .into_iter()
            .filter_map(|slot| slot.lock().ok().and_then(|p| *p))
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
            .max()
    }

    fn count(route: &'static str, outcome: &'static str) {
        metrics::counter!("tavern_discord_rest_requests_total", "route" => route, "outcome" => outcome)
            .increment(1);
    }

    /// Waits out the pauses a request honours: Cloudflare's always, a global 429's
    /// unless the request is exempt from the global limit (interactions).
    async fn wait_for_pause(&self, exempt: bool) {
        loop {
            let slots = if exempt {
                vec![&self.inner.banned_until]
            } else {
                vec![&self.inner.banned_until, &self.inner.paused_until]
            };
            let until = slots
                .into_iter()
                .filter_map(|slot| slot.lock().ok().and_then(|p| *p))
                .max();
            match until {
                Some(until) if until > tokio::time::Instant::now() => {
                    tokio::time::sleep_until(until).await;
                }
                _ => return,
            }
        }
    }

    fn pause(slot: &Mutex<Option<tokio::time::Instant>>, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        if let Ok(mut paused) = slot.lock()
            && paused.is_none_or(|p| p < until)
        {
            *paused = Some(until);
        }
    }

    fn breaker_admit(&self, spec: &Spec, path: &str) -> Result<(), RestError> {
        if !guarded(path) {
            return Ok(());
        }
        let Ok(mut breakers) = self.inner.breakers.lock() else {
            return Ok(());
        };
        breakers
            .admit(path, Instant::now())
            .map_err(|open| RestError::CircuitOpen {
                route: spec.route,
                target: open.target,
                status: open.status,
                retry_in: open.retry_in,
            })
    }

    fn breaker_record(&self, spec: &Spec, path: &str, status: Option<u16>) {
        if !guarded(path) {
            return;
        }
        let change = match self.inner.breakers.lock() {
            Ok(mut breakers) => breakers.record(path, status, Instant::now()),
            Err(_) => return,
        };
        let route = spec.route;
        match change {
            Change::None => {}
            Change::Opened {
                target,
                status,
                refusals,
            } => tracing::warn!(
                route,
                %target,
                status,
                refusals,
                "discord keeps refusing this target; not calling it for a while (circuit breaker open)"
            ),
            Change::Reopened { target, status } => tracing::warn!(
                route,
                %target,
                status,
                "discord still refuses this target; circuit breaker open again"
            ),
            Change::Closed { target } => tracing::info!(
                route,
                %target,
                "discord answers this target again; circuit breaker closed"
            ),
        }
    }

    /// Sends the request `make` builds, as [`Discord`]'s docs describe. `make` is
    /// called again for every attempt.
    async fn call<R, F>(&self, spec: Spec, make: F) -> Result<Answer, RestError>
    where
        F: Fn() -> R,
        R: MakeRequest,
    {
        let route = spec.route;
        if !self.inner.has_token {
            return Err(RestError::NoToken { route });
        }
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        loop {
            let request = make().make().map_err(RestError::Build)?;
            let path = request.path().to_owned();
            if let Err(open) = self.breaker_admit(&spec, &path) {
                Self::count(route, "circuit_open");
                return Err(open);
            }
            // Until its answer is recorded, this request may be its breaker's probe: if
            // the caller goes away first, the guard lets the next caller probe instead.
            let mut pending = Pending {
                discord: self,
                spec,
                path: &path,
                recorded: false,
            };
            // Discord exempts interaction callbacks and webhooks from the global limit.
            let exempt = !spec.limited || !guarded(&path);
            self.wait_for_pause(exempt).await;
            if !exempt && let Some(global) = &self.inner.global {
                global.acquire().await;
            }
            let permit = if spec.limited {
                let endpoint = Endpoint {
                    method: request.method(),
                    path: without_token(path.split('?').next().unwrap_or_default()),
                };
                Some(self.inner.limiter.acquire(endpoint).await)
            } else {
                None
            };
            let started = Instant::now();
            let sent = self.exchange(request).await;
            let took = started.elapsed();
            metrics::histogram!("tavern_discord_rest_seconds", "route" => route)
                .record(took.as_secs_f64());

            let wait = match sent {
                Err(error) => {
                    if let Some(permit) = permit {
                        permit.complete(None);
                    }
                    let timeout = error.is_timeout();
                    Self::count(route, if timeout { "timeout" } else { "transport" });
                    pending.record(None);
                    // A refused connection never carried the request; anything later may
                    // have.
                    let unsent = error.is_connect() && !timeout;
                    if !unsent && spec.repeat == Repeat::Create {
                        return Err(RestError::Unconfirmed {
                            route,
                            reason: if timeout {
                                "timed out".to_owned()
                            } else {
                                with_causes(&error)
                            },
                        });
                    }
                    failures += 1;
                    if !spec.retries || failures > self.inner.max_retries {
                        return Err(RestError::Transport {
                            route,
                            cause: error,
                        });
                    }
                    let wait = self.inner.base_backoff * 2u32.pow(failures - 1);
                    tracing::warn!(route, %error, ?wait, "discord unreachable; retrying");
                    wait
                }
                Ok((status, headers, body)) => {
                    let bucket = rate_limit_headers(&headers);
                    if let Some(permit) = permit {
                        permit.complete(bucket);
                    }
                    Self::count(route, outcome(status));
                    if status == 429 {
                        // Neither a success nor a refusal: a probe answered so leaves
                        // the next attempt to probe again.
                        pending.record(Some(status));
                        rate_limited += 1;
                        let wait = self.rate_limit_wait(route, &body);
                        if rate_limited > MAX_RATE_LIMITED {
                            return Err(RestError::RateLimited {
                                route,
                                attempts: rate_limited,
                            });
                        }
                        wait
                    } else if (200..300).contains(&status) {
                        self.inner.bans_in_a_row.store(0, Ordering::Relaxed);
                        pending.record(Some(status));
                        self.record_latency(took);
                        return Ok(Answer { body });
                    } else {
                        if spec.absent_ok && status == 404 {
                            // Expected (a thing already gone): no refusal, no success.
                            pending.record(None);
                        } else {
                            pending.record(Some(status));
                        }
                        let (message, code) = match serde_json::from_slice::<ApiErrorBody>(&body) {
                            Ok(api) => (api.message, api.code),
                            Err(_) => (
                                String::from_utf8_lossy(&body).chars().take(200).collect(),
                                0,
                            ),
                        };
                        let error = RestError::Status {
                            route,
                            status,
                            code,
                            message,
                        };
                        if status < 500 {
                            return Err(error);
                        }
                        if spec.repeat == Repeat::Create {
                            return Err(RestError::Unconfirmed {
                                route,
                                reason: format!("HTTP {status}"),
                            });
                        }
                        failures += 1;
                        if !spec.retries || failures > self.inner.max_retries {
                            return Err(error);
                        }
                        let wait = self.inner.base_backoff * 2u32.pow(failures - 1);
                        tracing::warn!(route, status, ?wait, "discord server error; retrying");
                        wait
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// How long to wait after a 429. Discord's own (JSON with `retry_after`) names the
    /// wait, and a global one pauses every request; one without that body is Cloudflare
    /// refusing this address, which only more requests would prolong: every request
    /// pauses with a backoff that doubles each time it happens again.
    fn rate_limit_wait(&self, route: &'static str, body: &[u8]) -> Duration {
        match serde_json::from_slice::<RateLimitedBody>(body) {
            Ok(limited) => {
                let wait = Duration::from_secs_f64(limited.retry_after.clamp(0.0, 60.0));
                if limited.global {
                    Self::pause(&self.inner.paused_until, wait);
                }
                tracing::warn!(
                    route,
                    ?wait,
                    global = limited.global,
                    "discord rate limited; waiting retry_after"
                );
                wait
            }
            Err(_) => {
                let in_a_row = self.inner.bans_in_a_row.fetch_add(1, Ordering::Relaxed);
                let wait = self
                    .inner
                    .ban_backoff
                    .saturating_mul(2u32.saturating_pow(in_a_row.min(20)))
                    .min(MAX_BAN_BACKOFF);
                Self::pause(&self.inner.banned_until, wait);
                tracing::error!(
                    route,
                    ?wait,
                    in_a_row = in_a_row + 1,
                    "HTTP 429 without Discord's rate-limit body: Cloudflare is refusing this address (too many invalid requests?); pausing every request"
                );
                wait
            }
        }
    }

    /// One HTTP exchange: the status, headers and body, or why there was none.
    async fn exchange(
        &self,
        request: twilight_http::request::Request,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), reqwest::Error> {
        let url = format!("{}{}", self.inner.base, request.path());
        let method = reqwest::Method::from_bytes(request.method().name().as_bytes())
            .unwrap_or(reqwest::Method::GET);
        let mut builder = self.inner.http.request(method, url);
        if request.use_authorization_token() {
            builder = builder.header(reqwest::header::AUTHORIZATION, &self.inner.authorization);
        }
        if let Some(headers) = request.headers() {
            for (name, value) in headers {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
        }
        if let Some(form) = request.form() {
            // A message with files: multipart, `payload_json` and one part per file.
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, form.content_type())
                .body(form.clone().build());
        } else if let Some(body) = request.body() {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        } else if matches!(
            request.method(),
            twilight_http_ratelimiting::Method::Post
                | twilight_http_ratelimiting::Method::Put
                | twilight_http_ratelimiting::Method::Patch
        ) {
            builder = builder.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        // Without the URL: an interaction's or webhook's path holds its token, and these
        // errors are logged.
        let response = builder.send().await.map_err(reqwest::Error::without_url)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(reqwest::Error::without_url)?;
        Ok((status, headers, body.into()))
    }

    fn decode<T: serde::de::DeserializeOwned>(
        route: &'static str,
        answer: &Answer,
    ) -> Result<T, RestError> {
        serde_json::from_slice(&answer.body).map_err(|e| RestError::Decode {
            route,
            message: e.to_string(),
        })
    }

    /// Replaces the application's global commands (bulk overwrite).
    pub async fn register_commands(&self, commands: &[CommandSpec]) -> Result<(), RestError> {
        let app = self.app()?;
        let wire: Vec<_> = commands
            .iter()
            .map(wire::command)
            .collect::<Result<_, _>>()
            .map_err(|e| RestError::Build(e.to_string()))?;
        let client = self.inner.factory.interaction(app);
        self.call(Spec::new("commands.bulk_overwrite"), || {
            client.set_global_commands(&wire)
        })
        .await?;
        Ok(())
    }

    /// The first (and only) callback of an interaction.
    ///
    /// It creates a message, so an attempt without an answer is not repeated blindly:
    /// the next one either lands, or Discord says the interaction was already
    /// acknowledged (40060), which means the earlier one did.
    pub(crate) async fn respond(
        &self,
        id: InteractionId,
        token: &str,
        response: &twilight_model::http::interaction::InteractionResponse,
    ) -> Result<(), RestError> {
        let app = self.app()?;
        let client = self.inner.factory.interaction(app);
        let spec = Spec::new("interaction.callback").unlimited().creates();
        let mut unconfirmed = 0u32;
        loop {
            match self
                .call(spec, || client.create_response(id, token, response))
                .await
            {
                Ok(_) => return Ok(()),
                Err(RestError::Unconfirmed { reason, .. })
                    if unconfirmed < self.inner.max_retries =>
                {
                    unconfirmed += 1;
                    tracing::warn!(interaction = %id, %reason, "interaction callback unconfirmed; sending it again (a duplicate is refused by Discord)");
                    tokio::time::sleep(self.inner.base_backoff).await;
                }
                Err(error) if unconfirmed > 0 && error.code() == Some(40060) => {
                    tracing::info!(interaction = %id, "the unconfirmed interaction callback had landed");
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Replaces the original response of an interaction (after a deferral, or the
    /// component's message after a deferred update).
    pub async fn edit_original(&self, token: &str, reply: &Reply) -> Result<(), RestError> {
        let app = self.app()?;
        let components = wire::components(reply).map_err(|e| RestError::Build(e.to_string()))?;
        let mentions = wire::allowed_mentions(reply);
        let uploads = wire::uploads(reply);
        let client = self.inner.factory.interaction(app);
        self.call(Spec::new("interaction.edit_original"), || {
            client
                .update_response(token)
                .content(Some(&reply.content))
                .components(Some(&components))
                .allowed_mentions(Some(&mentions))
                .attachments(&uploads)
        })
        .await?;
        Ok(())
    }

    /// Deletes the original response of an interaction.
    pub async fn delete_original(&self, token: &str) -> Result<(), RestError> {
        let app = self.app()?;
        let client = self.inner.factory.interaction(app);
        self.call(Spec::new("interaction.delete_original"), || {
            client.delete_response(token)
        })
        .await?;
        Ok(())
    }

    /// A follow-up message for an interaction (valid for 15 minutes). Discord offers
    /// no nonce for these, so one that got no answer is not sent again
    /// ([`RestError::Unconfirmed`]).
    pub async fn follow_up(&self, token: &str, reply: &Reply) -> Result<MessageId, RestError> {
        let app = self.app()?;
        let components = wire::components(reply).map_err(|e| RestError::Build(e.to_string()))?;
        let mentions = wire::allowed_mentions(reply);
        let uploads = wire::uploads(reply);
        let client = self.inner.factory.interaction(app);
        let answer = self
            .call(Spec::new("interaction.follow_up").creates(), || {
                let mut request = client
                    .create_followup(token)
                    .content(&reply.content)
                    .components(&components)
                    .allowed_mentions(Some(&mentions))
                    .attachments(&uploads);
                if reply.ephemeral {
                    request = request.flags(MessageFlags::EPHEMERAL);
                }
                request
            })
            .await?;
        Ok(Self::decode::<twilight_model::channel::Message>("interaction.follow_up", &answer)?.id)
    }

    /// Posts a message in a channel. It carries a nonce that Discord enforces, so a
    /// retry after a timeout returns the message the first attempt created instead of
    /// posting it twice.
    pub async fn send(&self, channel: ChannelId, reply: &Reply) -> Result<MessageId, RestError> {
        let components = wire::components(reply).map_err(|e| RestError::Build(e.to_string()))?;
        let uploads = wire::uploads(reply);
        let mut body = json!({
            "content": reply.content,
            "components": components,
            "allowed_mentions": wire::allowed_mentions(reply),
            "nonce": message_nonce(),
            "enforce_nonce": true,
        });
        if !uploads.is_empty() {
            // With files the body is the multipart request's `payload_json`, which
            // names each file part by id.
            body["attachments"] = uploads
                .iter()
                .map(|a| json!({"id": a.id, "filename": a.filename, "description": a.description}))
                .collect();
        }
        let body = serde_json::to_vec(&body).map_err(|e| RestError::Build(e.to_string()))?;
        let http = &self.inner.factory;
        let answer = self
            .call(Spec::new("channel.message.create"), || {
                http.create_message(channel)
                    .payload_json(&body)
                    .attachments(&uploads)
            })
            .await?;
        Ok(Self::decode::<twilight_model::channel::Message>("channel.message.create", &answer)?.id)
    }

    /// Replaces a message's content and components.
    pub async fn edit(
        &self,
        channel: ChannelId,
        message: MessageId,
        reply: &Reply,
    ) -> Result<(), RestError> {
        let components = wire::components(reply).map_err(|e| RestError::Build(e.to_string()))?;
        let mentions = wire::allowed_mentions(reply);
        let http = &self.inner.factory;
        self.call(Spec::new("channel.message.edit"), || {
            http.update_message(channel, message)
                .content(Some(&reply.content))
                .components(Some(&components))
                .allowed_mentions(Some(&mentions))
        })
        .await?;
        Ok(())
    }

    pub async fn delete_message(
        &self,
        channel: ChannelId,
        message: MessageId,
    ) -> Result<(), RestError> {
        let http = &self.inner.factory;
        self.call(Spec::new("channel.message.delete"), || {
            http.delete_message(channel, message)
        })
        .await?;
        Ok(())
    }

    /// Up to `limit` (1-100) messages before `before` (or the newest), newest first.
    pub async fn history_before(
        &self,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: u16,
    ) -> Result<Vec<HistoryMessage>, RestError> {
        let http = &self.inner.factory;
        let limit = limit.clamp(1, 100);
        let spec = Spec::new("channel.messages");
        let answer = match before {
            Some(before) => {
                self.call(spec, || {
                    http.channel_messages(channel).before(before).limit(limit)
                })
                .await?
            }
            None => {
                self.call(spec, || http.channel_messages(channel).limit(limit))
                    .await?
            }
        };
        let messages: Vec<twilight_model::channel::Message> =
            Self::decode("channel.messages", &answer)?;
        Ok(messages.iter().map(wire::history_message).collect())
    }

    /// Up to `limit` (1-100) messages after `after`, newest first (as Discord returns them).
    pub async fn history_after(
        &self,
        channel: ChannelId,
        after: MessageId,
        limit: u16,
    ) -> Result<Vec<HistoryMessage>, RestError> {
        let http = &self.inner.factory;
        let limit = limit.clamp(1, 100);
        let answer = self
            .call(Spec::new("channel.messages"), || {
                http.channel_messages(channel).after(after).limit(limit)
            })
            .await?;
        let messages: Vec<twilight_model::channel::Message> =
            Self::decode("channel.messages", &answer)?;
        Ok(messages.iter().map(wire::history_message).collect())
    }

    /// Creates a channel. One that got no answer is looked for among the guild's
    /// channels (same name, kind and parent, created since the first attempt) before
    /// it is asked for again, so a timeout never leaves two.
    pub async fn create_channel(
        &self,
        guild: GuildId,
        spec: &ChannelSpec,
    ) -> Result<ChannelId, RestError> {
        let http = &self.inner.factory;
        let overwrites: Vec<_> = spec.overwrites.iter().map(overwrite).collect();
        let kind = match spec.kind {
            ChannelKind::Text => ChannelType::GuildText,
            ChannelKind::Voice => ChannelType::GuildVoice,
            ChannelKind::Category => ChannelType::GuildCategory,
        };
        let route = "guild.channel.create";
        let since = std::time::SystemTime::now();
        let mut attempts = 0u32;
        loop {
            let result = self
                .call(Spec::new(route).creates(), || {
                    let mut request = http
                        .create_guild_channel(guild, &spec.name)
                        .kind(kind)
                        .permission_overwrites(&overwrites);
                    if let Some(topic) = &spec.topic {
                        request = request.topic(topic);
                    }
                    if let Some(parent) = spec.parent_id {
                        request = request.parent_id(parent);
                    }
                    request
                })
                .await;
            match result {
                Ok(answer) => {
                    return Ok(
                        Self::decode::<twilight_model::channel::Channel>(route, &answer)?.id,
                    );
                }
                Err(RestError::Unconfirmed { reason, .. }) if attempts < self.inner.max_retries => {
                    attempts += 1;
                    tokio::time::sleep(self.inner.base_backoff * 2u32.pow(attempts - 1)).await;
                    let channels: Vec<twilight_model::channel::Channel> = Self::decode(
                        "guild.channels",
                        &self
                            .call(Spec::new("guild.channels"), || http.guild_channels(guild))
                            .await?,
                    )?;
                    let created = channels.into_iter().find(|c| {
                        c.name.as_deref() == Some(spec.name.as_str())
                            && c.kind == kind
                            && c.parent_id == spec.parent_id
                            && created_since(c.id.get(), since)
                    });
                    if let Some(channel) = created {
                        tracing::info!(route, channel = %channel.id, %reason, "the unconfirmed channel creation had landed");
                        return Ok(channel.id);
                    }
                    tracing::warn!(route, %reason, "channel creation unconfirmed and no such channel exists; asking again");
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub async fn set_channel_topic(
        &self,
        channel: ChannelId,
        topic: &str,
    ) -> Result<(), RestError> {
        let http = &self.inner.factory;
        self.call(Spec::new("channel.update"), || {
            http.update_channel(channel).topic(topic)
        })
        .await?;
        Ok(())
    }

    pub async fn rename_channel(&self, channel: ChannelId, name: &str) -> Result<(), RestError> {
        let http = &self.inner.factory;
        self.call(Spec::new("channel.update"), || {
            http.update_channel(channel).name(name)
        })
        .await?;
        Ok(())
    }

    pub async fn delete_channel(&self, channel: ChannelId) -> Result<(), RestError> {
        let http = &self.inner.factory;
        self.call(Spec::new("channel.delete"), || http.delete_channel(channel))
            .await?;
        Ok(())
    }

    /// Creates a role. One that got no answer is looked for among the guild's roles
    /// (same name, created since the first attempt) before it is asked for again.
    pub async fn create_role(&self, guild: GuildId, name: &str) -> Result<RoleId, RestError> {
        let http = &self.inner.factory;
        let route = "guild.role.create";
        let since = std::time::SystemTime::now();
        let mut attempts = 0u32;
        loop {
            let result = self
                .call(Spec::new(route).creates(), || {
                    http.create_role(guild).name(name)
                })
                .await;
            match result {
                Ok(answer) => {
                    return Ok(Self::decode::<twilight_model::guild::Role>(route, &answer)?.id);
                }
                Err(RestError::Unconfirmed { reason, .. }) if attempts < self.inner.max_retries => {
                    attempts += 1;
                    tokio::time::sleep(self.inner.base_backoff * 2u32.pow(attempts - 1)).await;
                    let roles: Vec<twilight_model::guild::Role> = Self::decode(
                        "guild.roles",
                        &self
                            .call(Spec::new("guild.roles"), || http.roles(guild))
                            .await?,
                    )?;
                    if let Some(role) = roles
                        .into_iter()
                        .find(|r| r.name == name && created_since(r.id.get(), since))
                    {
                        tracing::info!(route, role = %role.id, %reason, "the unconfirmed role creation had landed");
                        return Ok(role.id);
                    }
                    tracing::warn!(route, %reason, "role creation unconfirmed and no such role exists; asking again");
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub async fn delete_role(&self, guild: GuildId, role: RoleId) -> Result<(), RestError> {
        let http = &self.inner.factory;
        self.call(Spec::new("guild.role.delete"), || {
            http.delete_role(guild, role)
        })
        .await?;
        Ok(())
    }

    pub async fn add_role(
        &self,
        guild: GuildId,
        user: UserId,
        role: RoleId,
    ) -> Result<(), RestError> {
        let http = &self.inner.factory;
        self.call(Spec::new("guild.member.role.add"), || {
            http.add_guild_member_role(guild, user, role)
        })
        .await?;
        Ok(())
    }

    pub async fn remove_role(
        &self,
        guild: GuildId,
        user: UserId,
        role: RoleId,
    ) -> Result<(), RestError> {
        let http = &self.inner.factory;
        self.call(Spec::new("guild.member.role.remove"), || {
            http.remove_guild_member_role(guild, user, role)
        })
        .await?;
        Ok(())
    }

    /// Every channel of a guild (one request), with its kind, parent, topic and
    /// permission overwrites.
    pub async fn guild_channels(&self, guild: GuildId) -> Result<Vec<GuildChannel>, RestError> {
        let channels = self.wire_guild_channels(guild).await?;
        Ok(channels
            .into_iter()
            .map(|c| GuildChannel {
                id: c.id,
                name: c.name.unwrap_or_default(),
                kind: match c.kind {
                    ChannelType::GuildText => Some(ChannelKind::Text),
                    ChannelType::GuildVoice => Some(ChannelKind::Voice),
                    ChannelType::GuildCategory => Some(ChannelKind::Category),
                    _ => None,
                },
                parent_id: c.parent_id,
                topic: c.topic,
                overwrites: c
                    .permission_overwrites
                    .unwrap_or_default()
                    .iter()
                    .map(|o| Overwrite {
                        target: match o.kind {
                            PermissionOverwriteType::Member => OverwriteTarget::Member(o.id.cast()),
                            _ => OverwriteTarget::Role(o.id.cast()),
                        },
                        allow: o.allow.bits(),
                        deny: o.deny.bits(),
                    })
                    .collect(),
            })
            .collect())
    }

    /// Every member of a guild with its roles, 1,000 per request. Discord answers this
    /// only to a bot with the Server Members intent enabled.
    pub async fn guild_members(&self, guild: GuildId) -> Result<Vec<GuildMember>, RestError> {
        let http = &self.inner.factory;
        let route = "guild.members";
        let mut out: Vec<GuildMember> = Vec::new();
        let mut after: Option<UserId> = None;
        loop {
            let answer = self
                .call(Spec::new(route), || {
                    let request = http.guild_members(guild).limit(1000);
                    match after {
                        Some(after) => request.after(after),
                        None => request,
                    }
                })
                .await?;
            let page: Vec<twilight_model::guild::Member> = Self::decode(route, &answer)?;
            let full = page.len() >= 1000;
            after = page.iter().map(|m| m.user.id).max();
            out.extend(page.into_iter().map(|m| GuildMember {
                user: m.user.id,
                roles: m.roles,
            }));
            if !full || after.is_none() {
                return Ok(out);
            }
        }
    }

    /// A guild's roles, `@everyone` among them, with their permissions (one request).
    pub async fn guild_roles(&self, guild: GuildId) -> Result<Vec<GuildRole>, RestError> {
        let http = &self.inner.factory;
        let route = "guild.roles";
        let answer = self.call(Spec::new(route), || http.roles(guild)).await?;
        let roles: Vec<twilight_model::guild::Role> = Self::decode(route, &answer)?;
        Ok(roles
            .into_iter()
            .map(|r| GuildRole {
                id: r.id,
                permissions: r.permissions.bits(),
                managed: r.managed,
                position: r.position,
            })
            .collect())
    }

    /// Changes a channel's topic, parent and permission overwrites in one request (the
    /// fields of `edit` that are set).
    pub async fn edit_channel(
        &self,
        channel: ChannelId,
        edit: &ChannelEdit,
    ) -> Result<(), RestError> {
        let http = &self.inner.factory;
        let overwrites: Option<Vec<PermissionOverwrite>> = edit
            .overwrites
            .as_ref()
            .map(|list| list.iter().map(overwrite).collect());
        self.call(Spec::new("channel.update"), || {
            let mut request = http.update_channel(channel);
            if let Some(topic) = &edit.topic {
                request = request.topic(topic);
            }
            if let Some(parent) = edit.parent_id {
                request = request.parent_id(parent);
            }
            if let Some(overwrites) = &overwrites {
                request = request.permission_overwrites(overwrites);
            }
            request
        })
        .await?;
        Ok(())
    }

    /// The bot's own user id (`GET /users/@me`).
    pub async fn current_user_id(&self) -> Result<UserId, RestError> {
        let http = &self.inner.factory;
        let route = "user.current";
        let answer = self.call(Spec::new(route), || http.current_user()).await?;
        Ok(Self::decode::<twilight_model::user::CurrentUser>(route, &answer)?.id)
    }

    /// The guild `channel` belongs to: `None` for a direct message or group DM;
    /// [`RestError::Status`] 404 for a channel that does not exist and 403 Missing Access
    /// for one the bot may not see or of a guild the bot is not in
    /// ([`RestError::is_missing_permission`]).
    pub async fn channel_guild(&self, channel: ChannelId) -> Result<Option<GuildId>, RestError> {
        let http = &self.inner.factory;
        let route = "channel.get";
        let answer = self
            .call(Spec::new(route), || http.channel(channel))
            .await?;
        Ok(Self::decode::<twilight_model::channel::Channel>(route, &answer)?.guild_id)
    }

    /// The roles of `user` in `guild` (without `@everyone`); `None` when they are not
    /// a member. Discord's 404 is a plain answer, not counted by the circuit breaker.
    pub async fn member_roles(
        &self,
        guild: GuildId,
        user: UserId,
    ) -> Result<Option<Vec<RoleId>>, RestError> {
        Ok(self.guild_member(guild, user).await?.map(|m| m.roles))
    }

    /// `GET /guilds/{guild}/members/{user}`; `None` when they are not a member.
    async fn guild_member(
        &self,
        guild: GuildId,
        user: UserId,
    ) -> Result<Option<twilight_model::guild::Member>, RestError> {
        let http = &self.inner.factory;
        self.get_unless_absent("guild.member.get", || http.guild_member(guild, user))
            .await
    }

    /// `user` as a member of `guild`, named as a command of theirs names them (their
    /// display name, else their username: [`Invocation::actor`]); `None` when they are
    /// not a member.
    pub async fn member(&self, guild: GuildId, user: UserId) -> Result<Option<Actor>, RestError> {
        Ok(self
            .guild_member(guild, user)
            .await?
            .map(|m| wire::actor(&m.user)))
    }

    /// Sends a direct message, opening the DM channel first (opening it twice gives
    /// the same channel).
    pub async fn dm(&self, user: UserId, reply: &Reply) -> Result<MessageId, RestError> {
        let http = &self.inner.factory;
        let answer = self
            .call(Spec::new("user.dm.create"), || {
                http.create_private_channel(user)
            })
            .await?;
        let channel =
            Self::decode::<twilight_model::channel::Channel>("user.dm.create", &answer)?.id;
        self.send(channel, reply).await
    }

    /// A cheap authenticated call (`GET /users/@me`), used to measure REST latency.
    pub async fn probe(&self) -> Result<Duration, RestError> {
        let http = &self.inner.factory;
        let started = Instant::now();
        self.call(Spec::new("user.current"), || http.current_user())
            .await?;
        Ok(started.elapsed())
    }

    /// How many shards Discord recommends (`GET /gateway/bot`), asked once: the
    /// gateway retries it with its own, longer backoff.
    pub(crate) async fn recommended_shards(&self) -> Result<u32, RestError> {
        let http = &self.inner.factory;
        let answer = self
            .call(Spec::new("gateway.bot").once(), || http.gateway().authed())
            .await?;
        let info: twilight_model::gateway::connection_info::BotConnectionInfo =
            Self::decode("gateway.bot", &answer)?;
        Ok(info.shards.max(1))
    }
}

/// Whether a path is watched by the circuit breaker: not interaction callbacks and
/// webhooks, which are per interaction and whose paths carry tokens that must not end
/// up in a long-lived map, an error or a log line.
fn guarded(path: &str) -> bool {
    !(path.starts_with("interactions/") || path.starts_with("webhooks/"))
}

/// `path` with the token of an interaction or webhook (`interactions/{id}/{token}/…`,
/// `webhooks/{id}/{token}/…`) replaced by a digest of it: the rate limiter keys its
/// queues by path and logs them, and a token must not reach the logs.
fn without_token(path: &str) -> String {
    let mut segments: Vec<String> = path.split('/').map(str::to_owned).collect();
    if matches!(
        segments.first().map(String::as_str),
        Some("interactions" | "webhooks")
    ) && let Some(token) = segments.get_mut(2)
    {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut hasher);
        *token = format!("token-{:016x}", hasher.finish());
    }
    segments.join("/")
}

/// Whether the snowflake `id` was minted at or after `since` (less a minute for the
/// difference between our clock and Discord's).
fn created_since(id: u64, since: std::time::SystemTime) -> bool {
    const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
    let created_ms = (id >> 22) + DISCORD_EPOCH_MS;
    let since_ms = since
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    created_ms + 60_000 >= since_ms
}

/// A request twilight builds: its typed requests, or a [`Raw`] one for a route it
/// does not know.
trait MakeRequest {
    fn make(self) -> Result<twilight_http::request::Request, String>;
}

impl<T: TryIntoRequest> MakeRequest for T {
    fn make(self) -> Result<twilight_http::request::Request, String> {
        self.try_into_request().map_err(|e| e.to_string())
    }
}

/// A request for a route twilight has no builder for.
struct Raw(Result<twilight_http::request::Request, twilight_http::Error>);

impl MakeRequest for Raw {
    fn make(self) -> Result<twilight_http::request::Request, String> {
        self.0.map_err(|e| e.to_string())
    }
}

#[derive(serde::Serialize)]
struct RefreshUrls<'a> {
    attachment_urls: &'a [String],
}

#[derive(serde::Deserialize)]
struct RefreshedUrls {
    refreshed_urls: Vec<RefreshedUrl>,
}

#[derive(serde::Deserialize)]
struct RefreshedUrl {
    original: String,
    refreshed: String,
}

/// What the clip archive reads: channels, guilds and messages as Discord describes
/// them, and fresh CDN URLs for attachments whose signed URLs expired.
impl Discord {
    /// A channel (`None` when Discord says it does not exist: 404). A 404 is an answer
    /// here, not counted by the circuit breaker; a channel the bot may not see is
    /// Discord's 403 Missing Access, an error ([`RestError::is_missing_permission`]).
    pub async fn channel(&self, channel: ChannelId) -> Result<Option<ChannelInfo>, RestError> {
        let http = &self.inner.factory;
        let found: Option<twilight_model::channel::Channel> = self
            .get_unless_absent("channel.get", || http.channel(channel))
            .await?;
        Ok(found.as_ref().map(wire::channel_info))
    }

    /// The object a GET answers, or `None` on Discord's 404 (an answer here, not a
    /// failure: the circuit breaker does not count it).
    async fn get_unless_absent<T, R, F>(
        &self,
        route: &'static str,
        make: F,
    ) -> Result<Option<T>, RestError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn() -> R,
        R: MakeRequest,
    {
        match self.call(Spec::new(route).absent_ok(), make).await {
            Ok(answer) => Ok(Some(Self::decode(route, &answer)?)),
            Err(RestError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// A guild the bot is in (`None` on 404: unknown). For a guild the bot is not in,
    /// Discord answers 403 Missing Access (an error here).
    pub async fn guild(&self, guild: GuildId) -> Result<Option<GuildInfo>, RestError> {
        let http = &self.inner.factory;
        let found: Option<twilight_model::guild::PartialGuild> = self
            .get_unless_absent("guild.get", || http.guild(guild))
            .await?;
        Ok(found.as_ref().map(wire::guild_info))
    }

    /// Every channel of a guild as Discord describes it (one request).
    pub async fn guild_channel_infos(&self, guild: GuildId) -> Result<Vec<ChannelInfo>, RestError> {
        let channels = self.wire_guild_channels(guild).await?;
        Ok(channels
            .iter()
            .map(|c| {
                let mut info = wire::channel_info(c);
                info.guild_id.get_or_insert(guild);
                info
            })
            .collect())
    }

    /// A guild's channels as Discord sends them (one request).
    async fn wire_guild_channels(
        &self,
        guild: GuildId,
    ) -> Result<Vec<twilight_model::channel::Channel>, RestError> {
        let http = &self.inner.factory;
        let route = "guild.channels";
        let answer = self
            .call(Spec::new(route), || http.guild_channels(guild))
            .await?;
        Self::decode(route, &answer)
    }

    /// One message (`None` on 404: deleted, or never there).
    pub async fn message(
        &self,
        channel: ChannelId,
        message: MessageId,
    ) -> Result<Option<HistoryMessage>, RestError> {
        let http = &self.inner.factory;
        let found: Option<twilight_model::channel::Message> = self
            .get_unless_absent("channel.message.get", || http.message(channel, message))
            .await?;
        Ok(found.as_ref().map(wire::history_message))
    }

    /// Fresh signed URLs for attachment URLs (Discord's CDN URLs expire): pairs of
    /// (original, refreshed), in Discord's order. At most 50 URLs go in one request;
    /// more are sent in several.
    pub async fn refresh_attachment_urls(
        &self,
        urls: &[String],
    ) -> Result<Vec<(String, String)>, RestError> {
        let route = "attachments.refresh";
        let mut out = Vec::with_capacity(urls.len());
        for chunk in urls.chunks(50) {
            let body = RefreshUrls {
                attachment_urls: chunk,
            };
            let answer = self
                .call(Spec::new(route), || {
                    Raw(twilight_http::request::RequestBuilder::raw(
                        twilight_http::request::Method::Post,
                        "attachments/refresh-urls".to_owned(),
                    )
                    .json(&body)
                    .build())
                })
                .await?;
            let refreshed: RefreshedUrls = Self::decode(route, &answer)?;
            out.extend(
                refreshed
                    .refreshed_urls
                    .into_iter()
                    .map(|r| (r.original, r.refreshed)),
            );
        }
        Ok(out)
    }
}

/// Channel look-ups for the campaigns' commands (what the user-topic voice channel is
/// called now).
impl Discord {
    /// A channel's current name (`None` for a channel without one, such as a DM).
    pub async fn channel_name(&self, channel: ChannelId) -> Result<Option<String>, RestError> {
        let http = &self.inner.factory;
        let route = "channel.get";
        let answer = self
            .call(Spec::new(route), || http.channel(channel))
            .await?;
        Ok(Self::decode::<twilight_model::channel::Channel>(route, &answer)?.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_count_401_and_403_apart() {
        assert_eq!(outcome(204), "ok");
        assert_eq!(outcome(401), "401");
        assert_eq!(outcome(403), "403");
        assert_eq!(outcome(404), "4xx");
        assert_eq!(outcome(429), "429");
        assert_eq!(outcome(502), "5xx");
    }

    // A handle's rate limiter runs on the runtime.
    #[tokio::test]
    async fn message_links_open_in_discord_or_in_the_configured_client() {
        let (guild, channel, message) = (Id::new(1), Id::new(2), Id::new(3));
        let discord = Discord::without_token();
        assert_eq!(
            discord.message_url(Some(guild), channel, message),
            "https://discord.com/channels/1/2/3"
        );
        assert_eq!(
            discord.message_url(None, channel, message),
            "https://discord.com/channels/@me/2/3"
        );
        let mut config = DiscordConfig::new("token", Some("127.0.0.1:9".to_owned()));
        config.app = Some(url::Url::parse("http://127.0.0.1:8080/sandbox/").expect("a URL"));
        assert_eq!(
            Discord::new(&config).message_url(Some(guild), channel, message),
            "http://127.0.0.1:8080/sandbox/channels/1/2/3"
        );
    }

    #[test]
    fn nonces_are_short_and_distinct() {
        let a = message_nonce();
        let b = message_nonce();
        assert!(a.len() <= 25 && b.len() <= 25);
        assert_ne!(a, b);
    }

    #[test]
    fn a_snowflake_tells_when_it_was_made() {
        let now = std::time::SystemTime::now();
        let ms = now
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        let id_now = (ms - 1_420_070_400_000) << 22;
        assert!(created_since(id_now, now));
        let an_hour_ago = (ms - 3_600_000 - 1_420_070_400_000) << 22;
        assert!(!created_since(an_hour_ago, now));
    }
}
