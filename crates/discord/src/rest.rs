use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use twilight_http::api_error::ApiError;
use twilight_http::error::ErrorType;
use twilight_model::channel::ChannelType;
use twilight_model::channel::message::MessageFlags;
use twilight_model::channel::permission_overwrite::{PermissionOverwrite, PermissionOverwriteType};
use twilight_model::guild::Permissions;

use crate::model::*;
use crate::wire;

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
}

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"<redacted>")
            .field("api", &self.api)
            .field("max_retries", &self.max_retries)
            .field("base_backoff", &self.base_backoff)
            .field("global_rate_limit", &self.global_rate_limit)
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
        }
    }
}

/// A failed REST call.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("discord {route}: HTTP {status}: {message}")]
    Status {
        route: &'static str,
        status: u16,
        message: String,
    },
    #[error("discord {route}: still rate limited after {attempts} attempts")]
    RateLimited { route: &'static str, attempts: u32 },
    #[error("discord {route}: {source}")]
    Transport {
        route: &'static str,
        #[source]
        source: twilight_http::Error,
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
    /// The HTTP status, when Discord answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Status { status, .. } => Some(*status),
            RestError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }
}

struct Inner {
    http: twilight_http::Client,
    /// For interaction callbacks only: Discord does not count them against the global
    /// limit and each interaction is its own route, so they skip the limiter (and the
    /// queue behind a burst of message edits). A 429 is still honoured by `call`.
    callbacks: twilight_http::Client,
    application_id: OnceLock<ApplicationId>,
    /// Smoothed latency of successful REST calls, in microseconds (0 = none yet).
    latency_us: AtomicU64,
    max_retries: u32,
    base_backoff: Duration,
    /// False for [`Discord::without_token`]: every call fails at once.
    has_token: bool,
}

/// Discord's REST API, as features use it. Cheap to clone.
///
/// Every call goes through one retry policy: twilight's limiter keeps within the
/// per-route buckets it learns from `X-RateLimit-*` headers and the global 50/s; a 429
/// that still happens waits `retry_after` and retries; a 5xx or a connection failure
/// retries with exponential backoff; any other 4xx is returned at once (retrying a 404
/// cannot help, and invalid requests count against the ban threshold).
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

/// Builds the twilight client behind [`Discord`] and the gateway's own.
pub(crate) fn http_client(config: &DiscordConfig) -> twilight_http::Client {
    client_with(
        config,
        Some(twilight_http_ratelimiting::RateLimiter::new(
            config.global_rate_limit.max(1),
        )),
    )
}

fn client_with(
    config: &DiscordConfig,
    limiter: Option<twilight_http_ratelimiting::RateLimiter>,
) -> twilight_http::Client {
    let mut builder = twilight_http::Client::builder()
        .token(config.token.clone())
        .timeout(Duration::from_secs(10))
        .ratelimiter(limiter);
    if let Some(api) = &config.api {
        builder = builder.proxy(api.clone(), true);
    }
    builder.build()
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

impl Discord {
    pub fn new(config: &DiscordConfig) -> Discord {
        Discord {
            inner: Arc::new(Inner {
                http: http_client(config),
                callbacks: client_with(config, None),
                application_id: OnceLock::new(),
                latency_us: AtomicU64::new(0),
                max_retries: config.max_retries,
                base_backoff: config.base_backoff,
                has_token: true,
            }),
        }
    }

    /// A handle for commands that run without a bot token (`tavern check`, `tavern
    /// migrate`): every call fails at once with [`RestError::NoToken`], without a
    /// request. [`Discord::has_token`] tells a caller to skip what needs Discord.
    pub fn without_token() -> Discord {
        let config = DiscordConfig::new("", Some("127.0.0.1:9".to_owned()));
        let mut discord = Discord::new(&config);
        if let Some(inner) = Arc::get_mut(&mut discord.inner) {
            inner.has_token = false;
        }
        discord
    }

    /// False for a handle made by [`Discord::without_token`].
    pub fn has_token(&self) -> bool {
        self.inner.has_token
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

    /// Sends the request `make` builds, retrying as the type's docs describe. `make` is
    /// called again for every attempt because a twilight request is consumed when sent.
    async fn call<T, F, R>(
        &self,
        route: &'static str,
        make: F,
    ) -> Result<twilight_http::Response<T>, RestError>
    where
        F: Fn() -> R,
        R: IntoFuture<Output = Result<twilight_http::Response<T>, twilight_http::Error>>,
    {
        if !self.inner.has_token {
            return Err(RestError::NoToken { route });
        }
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        loop {
            let started = Instant::now();
            let result = make().into_future().await;
            let took = started.elapsed();
            metrics::histogram!("tavern_discord_rest_seconds", "route" => route)
                .record(took.as_secs_f64());
            let error = match result {
                Ok(response) => {
                    metrics::counter!("tavern_discord_rest_requests_total", "route" => route, "outcome" => "ok").increment(1);
                    self.record_latency(took);
                    return Ok(response);
                }
                Err(error) => error,
            };
            let wait = match error.kind() {
                ErrorType::Response {
                    status, error: api, ..
                } if status.get() == 429 => {
                    metrics::counter!("tavern_discord_rest_requests_total", "route" => route, "outcome" => "429").increment(1);
                    rate_limited += 1;
                    if rate_limited > 5 {
                        return Err(RestError::RateLimited {
                            route,
                            attempts: rate_limited,
                        });
                    }
                    let retry_after = match api {
                        ApiError::Ratelimited(r) => r.retry_after,
                        _ => 1.0,
                    };
                    let wait = Duration::from_secs_f64(retry_after.clamp(0.0, 60.0));
                    tracing::warn!(route, ?wait, "discord rate limited; waiting retry_after");
                    wait
                }
                ErrorType::Response {
                    status, error: api, ..
                } if status.is_server_error() => {
                    metrics::counter!("tavern_discord_rest_requests_total", "route" => route, "outcome" => "5xx").increment(1);
                    failures += 1;
                    if failures > self.inner.max_retries {
                        return Err(RestError::Status {
                            route,
                            status: status.get(),
                            message: api.to_string(),
                        });
                    }
                    let wait = self.inner.base_backoff * 2u32.pow(failures - 1);
                    tracing::warn!(
                        route,
                        status = status.get(),
                        ?wait,
                        "discord server error; retrying"
                    );
                    wait
                }
                ErrorType::Response {
                    status, error: api, ..
                } => {
                    metrics::counter!("tavern_discord_rest_requests_total", "route" => route, "outcome" => "4xx").increment(1);
                    return Err(RestError::Status {
                        route,
                        status: status.get(),
                        message: api.to_string(),
                    });
                }
                ErrorType::RequestError | ErrorType::RequestTimedOut => {
                    metrics::counter!("tavern_discord_rest_requests_total", "route" => route, "outcome" => "transport").increment(1);
                    failures += 1;
                    if failures > self.inner.max_retries {
                        return Err(RestError::Transport {
                            route,
                            source: error,
                        });
                    }
                    let wait = self.inner.base_backoff * 2u32.pow(failures - 1);
                    tracing::warn!(route, %error, ?wait, "discord unreachable; retrying");
                    wait
                }
                ErrorType::Validation | ErrorType::BuildingRequest | ErrorType::Json => {
                    return Err(RestError::Build(error.to_string()));
                }
                _ => {
                    return Err(RestError::Transport {
                        route,
                        source: error,
                    });
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn model<T: serde::de::DeserializeOwned + Unpin + Send>(
        route: &'static str,
        response: twilight_http::Response<T>,
    ) -> Result<T, RestError> {
        response.model().await.map_err(|e| RestError::Decode {
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
        let client = self.inner.http.interaction(app);
        self.call("commands.bulk_overwrite", || {
            client.set_global_commands(&wire)
        })
        .await?;
        Ok(())
    }

    /// The first (and only) callback of an interaction.
    pub(crate) async fn respond(
        &self,
        id: InteractionId,
        token: &str,
        response: &twilight_model::http::interaction::InteractionResponse,
    ) -> Result<(), RestError> {
        let app = self.app()?;
        let client = self.inner.callbacks.interaction(app);
        self.call("interaction.callback", || {
            client.create_response(id, token, response)
        })
        .await?;
        Ok(())
    }

    /// Replaces the original response of an interaction (after a deferral, or the
    /// component's message after a deferred update).
    pub async fn edit_original(&self, token: &str, reply: &Reply) -> Result<(), RestError> {
        let app = self.app()?;
        let components = wire::components(reply).map_err(|e| RestError::Build(e.to_string()))?;
        let client = self.inner.http.interaction(app);
        self.call("interaction.edit_original", || {
            client
                .update_response(token)
                .content(Some(&reply.content))
                .components(Some(&components))
        })
        .await?;
        Ok(())
    }

    /// A follow-up message for an interaction (valid for 15 minutes).
    pub async fn follow_up(&self, token: &str, reply: &Reply) -> Result<MessageId, RestError> {
        let app = self.app()?;
        let components = wire::components(reply).map_err(|e| RestError::Build(e.to_string()))?;
        let client = self.inner.http.interaction(app);
        let response = self
            .call("interaction.follow_up", || {
                let mut request = client
                    .create_followup(token)
                    .content(&reply.content)
                    .components(&components);
                if reply.ephemeral {
                    request = request.flags(MessageFlags::EPHEMERAL);
                }
                request
            })
            .await?;
        Ok(Self::model("interaction.follow_up", response).await?.id)
    }

    /// Posts a message in a channel.
    pub async fn send(&self, channel: ChannelId, reply: &Reply) -> Result<MessageId, RestError> {
        let components = wire::components(reply).map_err(|e| RestError::Build(e.to_string()))?;
        let http = &self.inner.http;
        let response = self
            .call("channel.message.create", || {
                http.create_message(channel)
                    .content(&reply.content)
                    .components(&components)
            })
            .await?;
        Ok(Self::model("channel.message.create", response).await?.id)
    }

    /// Replaces a message's content and components.
    pub async fn edit(
        &self,
        channel: ChannelId,
        message: MessageId,
        reply: &Reply,
    ) -> Result<(), RestError> {
        let components = wire::components(reply).map_err(|e| RestError::Build(e.to_string()))?;
        let http = &self.inner.http;
        self.call("channel.message.edit", || {
            http.update_message(channel, message)
                .content(Some(&reply.content))
                .components(Some(&components))
        })
        .await?;
        Ok(())
    }

    pub async fn delete_message(
        &self,
        channel: ChannelId,
        message: MessageId,
    ) -> Result<(), RestError> {
        let http = &self.inner.http;
        self.call("channel.message.delete", || {
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
        let http = &self.inner.http;
        let limit = limit.clamp(1, 100);
        let response = match before {
            Some(before) => {
                self.call("channel.messages", || {
                    http.channel_messages(channel).before(before).limit(limit)
                })
                .await?
            }
            None => {
                self.call("channel.messages", || {
                    http.channel_messages(channel).limit(limit)
                })
                .await?
            }
        };
        let messages = response.models().await.map_err(|e| RestError::Decode {
            route: "channel.messages",
            message: e.to_string(),
        })?;
        Ok(messages.iter().map(wire::history_message).collect())
    }

    /// Up to `limit` (1-100) messages after `after`, newest first (as Discord returns them).
    pub async fn history_after(
        &self,
        channel: ChannelId,
        after: MessageId,
        limit: u16,
    ) -> Result<Vec<HistoryMessage>, RestError> {
        let http = &self.inner.http;
        let limit = limit.clamp(1, 100);
        let response = self
            .call("channel.messages", || {
                http.channel_messages(channel).after(after).limit(limit)
            })
            .await?;
        let messages = response.models().await.map_err(|e| RestError::Decode {
            route: "channel.messages",
            message: e.to_string(),
        })?;
        Ok(messages.iter().map(wire::history_message).collect())
    }

    pub async fn create_channel(
        &self,
        guild: GuildId,
        spec: &ChannelSpec,
    ) -> Result<ChannelId, RestError> {
        let http = &self.inner.http;
        let overwrites: Vec<_> = spec.overwrites.iter().map(overwrite).collect();
        let kind = match spec.kind {
            ChannelKind::Text => ChannelType::GuildText,
            ChannelKind::Voice => ChannelType::GuildVoice,
            ChannelKind::Category => ChannelType::GuildCategory,
        };
        let response = self
            .call("guild.channel.create", || {
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
            .await?;
        Ok(Self::model("guild.channel.create", response).await?.id)
    }

    pub async fn set_channel_topic(
        &self,
        channel: ChannelId,
        topic: &str,
    ) -> Result<(), RestError> {
        let http = &self.inner.http;
        self.call("channel.update", || {
            http.update_channel(channel).topic(topic)
        })
        .await?;
        Ok(())
    }

    pub async fn rename_channel(&self, channel: ChannelId, name: &str) -> Result<(), RestError> {
        let http = &self.inner.http;
        self.call("channel.update", || http.update_channel(channel).name(name))
            .await?;
        Ok(())
    }

    pub async fn delete_channel(&self, channel: ChannelId) -> Result<(), RestError> {
        let http = &self.inner.http;
        self.call("channel.delete", || http.delete_channel(channel))
            .await?;
        Ok(())
    }

    pub async fn create_role(&self, guild: GuildId, name: &str) -> Result<RoleId, RestError> {
        let http = &self.inner.http;
        let response = self
            .call("guild.role.create", || http.create_role(guild).name(name))
            .await?;
        Ok(Self::model("guild.role.create", response).await?.id)
    }

    pub async fn delete_role(&self, guild: GuildId, role: RoleId) -> Result<(), RestError> {
        let http = &self.inner.http;
        self.call("guild.role.delete", || http.delete_role(guild, role))
            .await?;
        Ok(())
    }

    pub async fn add_role(
        &self,
        guild: GuildId,
        user: UserId,
        role: RoleId,
    ) -> Result<(), RestError> {
        let http = &self.inner.http;
        self.call("guild.member.role.add", || {
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
        let http = &self.inner.http;
        self.call("guild.member.role.remove", || {
            http.remove_guild_member_role(guild, user, role)
        })
        .await?;
        Ok(())
    }

    /// Sends a direct message, opening the DM channel first.
    pub async fn dm(&self, user: UserId, reply: &Reply) -> Result<MessageId, RestError> {
        let http = &self.inner.http;
        let response = self
            .call("user.dm.create", || http.create_private_channel(user))
            .await?;
        let channel = Self::model("user.dm.create", response).await?.id;
        self.send(channel, reply).await
    }

    /// A cheap authenticated call (`GET /users/@me`), used to measure REST latency.
    pub async fn probe(&self) -> Result<Duration, RestError> {
        let http = &self.inner.http;
        let started = Instant::now();
        self.call("user.current", || http.current_user()).await?;
        Ok(started.elapsed())
    }
}
