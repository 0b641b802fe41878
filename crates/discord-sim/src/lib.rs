//! A fake Discord on loopback that speaks the real wire protocol (API v10): REST under
//! `/api/v10` and the gateway WebSocket on every other path of the same port.
//!
//! Our end-to-end tests and the offline sandbox point the real bot (twilight) at it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), discord_sim::SimError> {
//! use discord_sim::{Sim, SimConfig};
//! let sim = Sim::start(SimConfig::default())?;
//! let demo = sim.seed_demo();
//! // twilight_http::Client::builder().token(sim.token().into())
//! //     .proxy(sim.addr().to_string(), true).ratelimiter(None).build();
//! // twilight_gateway::ConfigBuilder::new(sim.token().into(), intents)
//! //     .proxy_url(sim.gateway_url()).build();
//! let roll = sim.run_command(demo.alice, demo.dice, "roll",
//!     serde_json::json!([{"name": "expression", "value": "1d20"}]))?;
//! let reply = roll.response(std::time::Duration::from_secs(3)).await?;
//! assert!(reply.content.is_some());
//! # Ok(()) }
//! ```
//!
//! Design in one paragraph: all state is in one `State` behind one mutex; REST
//! handlers, the seeding API and the gateway all mutate it through the same methods,
//! and every mutation Discord would announce is dispatched to the gateway sessions
//! while the lock is held, so sequence numbers match the order of changes. Payloads
//! are built as `serde_json::Value` in Discord's documented shape (including the
//! fields twilight-model requires) and serialised once per dispatch. What the sim
//! simplifies is listed on [`Sim`].
//!
//! Codemap:
//! - `state`: the world (users, guilds, channels, roles, members, messages) and its
//!   Discord-shaped JSON rendering; every mutation that Discord announces dispatches.
//! - `history`: message lists written straight to bytes, because a history scan
//!   reads hundreds of 100-message pages a second.
//! - `cdn`: signed, expiring attachment URLs and byte ranges, as Discord's CDN.
//! - `gateway`: sessions, sequence numbers, replay buffers, one task per WebSocket.
//! - `rest`: one handler for all of `/api/v10` (faults, auth, buckets, request log),
//!   `route` parses the closed set of routes, `guard` checks the bot's permissions
//!   and the role hierarchy before a route runs, one module per route family.
//! - `interaction`: building INTERACTION_CREATE for simulated users and the
//!   [`Interaction`] handle tests wait on.
//! - `fault`: [`RouteMatch`]/[`Fault`] rules and rate-limit buckets.
//! - `oauth`: OAuth2 (authorization codes, tokens, refresh, revocation) for logging
//!   people in with Discord and for the bot-install flow; `rest::oauth` serves
//!   `GET /oauth2/authorize` and the token endpoints. How a test says who is
//!   "logged in to Discord" is described there and on [`Sim::sign_in`].
//! - `model`: the plain structs tests seed and inspect.
//!
//! Invariants: ids are unique and increase in creation order; a dispatch's sequence
//! number is assigned under the state lock, so per-session order equals the order of
//! state changes; ephemeral messages never leave the sim except through the
//! interaction webhook.

mod cdn;
mod config;
mod error;
mod fault;
mod gateway;
mod history;
mod interaction;
pub mod model;
mod oauth;
mod rest;
mod snowflake;
mod state;
mod time;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use serde_json::Value;
use tokio::net::TcpListener;

pub use config::SimConfig;
pub use error::SimError;
pub use fault::{Fault, Gate, RouteMatch};
pub use gateway::intents;
pub use interaction::{Interaction, InteractionReply, ReplySource};
pub use model::{
    Attachment, AttachmentSpec, Channel, ChannelKind, ChannelSpec, Command, ComponentSummary, Demo,
    Guild, InstalledGuild, Member, Message, MessageInteractionMetadata, MessageReference,
    OverwriteKind, PermissionOverwrite, Pings, RequestRecord, Role, RoleSpec, SeedMessage, User,
};
pub use snowflake::Snowflake;

use crate::error::ApiError;
use crate::fault::FaultRule;
use crate::state::{ChannelPatch, MessageEdit, NewMessage, Shared};

/// A running fake Discord. Cheap to clone; all clones share one server and state.
///
/// Simplifications relative to Discord (deliberate, for tests):
/// - Permissions are enforced on the REST routes the bot calls with Discord's rules
///   (`rest::guard` lists them): 403 50001 Missing Access in a channel the bot cannot
///   see, 403 50013 Missing Permissions otherwise, and the role hierarchy. The bot
///   owns every guild [`Sim::create_guild`] makes, so there it may do anything; in a
///   guild added through the install flow ([`Sim::create_guild_with_bot_role`],
///   [`Sim::install_bot`]) it is an ordinary member with its managed role. Not
///   modelled: threads, the checks of routes Tavern does not call, and the rule that
///   only Administrators may put MANAGE_ROLES in an overwrite. Membership is
///   enforced: about a guild the bot is not in ([`Sim::create_user_guild`] before
///   the install flow, or after [`Sim::remove_bot_from_guild`]) REST answers 403
///   Missing Access and the gateway says nothing. New roles are created at position
///   1, just above `@everyone`, as on Discord.
/// - Intents filter which dispatches a session receives; message content is always
///   included (as if MESSAGE_CONTENT were granted).
/// - No heartbeat timeout and no session expiry: a session lives until a new
///   IDENTIFY for the same shard replaces it while detached, or its replay buffer
///   overflows.
/// - Rate limits are fixed windows per route and major parameter with one limit for
///   every route ([`SimConfig::rate_limit_per_window`], generous by default), plus an
///   optional global per-second limit for the bot token
///   ([`SimConfig::global_rate_limit`], off by default); Discord's per-route limits
///   differ and its buckets may span routes. The headers are exact (rounded up to the
///   millisecond), so a client that follows them meets no 429.
/// - Seeded history ([`Sim::seed_history`]) gets ids minted at seeding time: its
///   timestamps are the moment of seeding, not spread over the past, so the 14-day
///   rule of bulk deletes only bites ids a test makes up. `around` returns the anchor
///   and the older half (rounded up), then the newer messages.
/// - Attachment URLs are signed with a keyed hash (not Discord's HMAC) and
///   [`Sim::expire_attachment_urls`] expires them all at once; `refresh-urls` leaves
///   out URLs that name no attachment of the sim. Attachments made without bytes
///   ([`AttachmentSpec::sized`]) are listed with their size but the CDN answers 404.
/// - OAuth2 has no login or consent page: `GET /oauth2/authorize` approves at once for
///   the user named by `sim_user_id` (or [`Sim::sign_in`]), or denies with
///   `sim_decision=deny`. The bot scope needs `guild_id` (no guild picker) and the
///   user's Manage Server permission; the bot joins with a managed role carrying
///   `permissions` (none when it is 0), and the token response has no `guild` object.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.shared.ctx.addr)
            .field("application_id", &self.shared.ctx.app_id)
            .field("bot_user_id", &self.shared.ctx.bot_id)
            .finish_non_exhaustive()
    }
}

/// Serves a sim on `listener` until `shutdown` resolves or [`Sim::shutdown`] is
/// called. `sim` must have been made with [`Sim::new`] for this listener's address.
pub async fn run(
    listener: TcpListener,
    sim: Sim,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = sim.shared;
    let app = rest::router(Arc::clone(&shared));
    let mut stop = shared.shutdown.subscribe();
    let flag = Arc::clone(&shared);
    tracing::info!(addr = %shared.ctx.addr, "discord-sim listening");
    // Small frames (gateway dispatches, 204s) must not wait for Nagle's algorithm:
    // with the peer's delayed ACKs that adds up to 40 ms per message.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown => {}
                _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {}
            }
            // Tell gateway connections to end so graceful shutdown can finish.
            flag.shutdown.send_replace(true);
        })
        .await
}

impl Sim {
    /// Binds `config.bind` and serves in a background task. Must be called inside a
    /// Tokio runtime.
    pub fn start(config: SimConfig) -> io::Result<Sim> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let std_listener = std::net::TcpListener::bind(config.bind)?;
        std_listener.set_nonblocking(true)?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        let sim = Sim::new(config, listener.local_addr()?);
        let served = sim.clone();
        runtime.spawn(async move {
            if let Err(error) = run(listener, served, std::future::pending()).await {
                tracing::error!(%error, "discord-sim server failed");
            }
        });
        Ok(sim)
    }

    /// A sim's state without a server, for use with [`run`] on a listener bound to
    /// `addr` (the address appears in gateway and attachment URLs).
    pub fn new(config: SimConfig, addr: SocketAddr) -> Sim {
        Sim {
            shared: Shared::new(config, addr),
        }
    }

    /// Stops the server and closes every gateway connection.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    // ---- identity ----------------------------------------------------------------

    pub fn addr(&self) -> SocketAddr {
        self.shared.ctx.addr
    }

    /// `ws://127.0.0.1:PORT`, for `ConfigBuilder::proxy_url`.
    pub fn gateway_url(&self) -> String {
        self.shared.ctx.gateway_url()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        self.shared.ctx.http_url()
    }

    /// `http://127.0.0.1:PORT/api/v10`.
    pub fn api_url(&self) -> String {
        format!("{}{}", self.shared.ctx.http_url(), rest::API_PREFIX)
    }

    /// The bot token the sim accepts.
    pub fn token(&self) -> &str {
        &self.shared.ctx.config.token
    }

    pub fn application_id(&self) -> Snowflake {
        self.shared.ctx.app_id
    }

    pub fn bot_user_id(&self) -> Snowflake {
        self.shared.ctx.bot_id
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.ctx.config
    }

    // ---- seeding -----------------------------------------------------------------

    /// Creates a guild owned by the bot (dispatches GUILD_CREATE).
    pub fn create_guild(&self, name: &str) -> Snowflake {
        self.shared
            .with(|s, ctx, ids| s.create_guild(ctx, ids, name))
    }

    /// Creates a guild owned by `owner` (a person) that the bot is not in, for the
    /// bot-install flow: nothing about it reaches the gateway until the bot joins
    /// through `GET /oauth2/authorize?scope=bot&guild_id=...`.
    pub fn create_user_guild(
        &self,
        name: &str,
        owner: impl Into<Snowflake>,
    ) -> Result<Snowflake, SimError> {
        let owner = owner.into();
        self.shared.with(|s, _, ids| {
            s.create_user_guild(ids, name, owner)
                .map_err(|_| SimError::UnknownUser(owner))
        })
    }

    /// Makes `owner`, a member, the guild's owner (its `owner` flag in
    /// `GET /users/@me/guilds`, all permissions).
    pub fn set_guild_owner(
        &self,
        guild: impl Into<Snowflake>,
        owner: impl Into<Snowflake>,
    ) -> Result<(), SimError> {
        let (guild, owner) = (guild.into(), owner.into());
        self.shared.with(|s, _, _| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.set_guild_owner(guild, owner)
                .map_err(|_| SimError::NotAMember { guild, user: owner })
        })
    }

    /// Renames a guild and/or changes its icon (`Some(None)` removes it; an icon is
    /// a hash of 32 hex digits, `a_` first when animated). Dispatches GUILD_UPDATE.
    pub fn update_guild(
        &self,
        guild: impl Into<Snowflake>,
        name: Option<&str>,
        icon: Option<Option<&str>>,
    ) -> Result<(), SimError> {
        let guild = guild.into();
        if let Some(Some(hash)) = icon {
            let digits = hash.strip_prefix("a_").unwrap_or(hash);
            if digits.len() != 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SimError::Rejected {
                    status: 400,
                    code: 50035,
                    message: format!("icon {hash:?} is not an image hash"),
                });
            }
        }
        if name.is_some_and(|n| !(2..=100).contains(&n.trim().chars().count())) {
            return Err(SimError::Rejected {
                status: 400,
                code: 50035,
                message: "a guild name is 2-100 characters".to_owned(),
            });
        }
        self.shared.with(|s, _, _| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.update_guild(
                guild,
                name.map(|n| n.trim().to_owned()),
                icon.map(|i| i.map(str::to_owned)),
            )
            .map_err(rejected)
        })
    }

    /// The bot is removed from `guild` (kicked, or the guild was deleted): it gets
    /// GUILD_DELETE without `unavailable`, nothing more about the guild reaches the
    /// gateway, and REST calls about the guild and its channels answer 403 Missing
    /// Access, as on Discord. The bot-install flow adds it back.
    pub fn remove_bot_from_guild(&self, guild: impl Into<Snowflake>) -> Result<(), SimError> {
        let guild = guild.into();
        self.shared.with(|s, ctx, _| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.remove_bot(ctx, guild).map_err(|_| SimError::NotAMember {
                guild,
                user: ctx.bot_id,
            })
        })
    }

    /// Adds the bot to a guild it is not in, as the end of the bot-install flow does
    /// (`GET /oauth2/authorize?scope=bot&guild_id=...`) with no `permissions`,
    /// without the OAuth2 round trip: it becomes a member with no role and its
    /// sessions get GUILD_CREATE. Idempotent.
    pub fn add_bot_to_guild(&self, guild: impl Into<Snowflake>) -> Result<(), SimError> {
        self.install_bot(guild, 0).map(|_| ())
    }

    /// Adds the bot to a guild it is not in as the bot-install flow does with
    /// `permissions=...`: Discord makes a managed role named after the bot with
    /// exactly those permissions (none if `permissions` is 0), gives it to the bot
    /// and puts it just above `@everyone`, below the guild's other roles. Returns that
    /// role. A bot already in the guild is left as it is (`Ok(None)`).
    pub fn install_bot(
        &self,
        guild: impl Into<Snowflake>,
        permissions: u64,
    ) -> Result<Option<Snowflake>, SimError> {
        let guild = guild.into();
        self.shared.with(|s, ctx, ids| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.bot_join(ctx, ids, guild, permissions).map_err(rejected)
        })
    }

    /// A guild owned by a new user, where the bot is an ordinary member whose only
    /// role is the managed one of an install with `permissions` ([`Sim::install_bot`]):
    /// neither owner nor, unless `permissions` holds it, Administrator, so every
    /// permission and role-hierarchy rule applies to it. [`Sim::set_role_position`]
    /// moves its role.
    pub fn create_guild_with_bot_role(
        &self,
        name: &str,
        permissions: u64,
    ) -> Result<InstalledGuild, SimError> {
        let owner = self.create_user(&format!("{name} owner"));
        let guild = self.create_user_guild(name, owner)?;
        let bot_role = self.install_bot(guild, permissions)?;
        Ok(InstalledGuild {
            guild,
            owner,
            bot_role,
        })
    }

    /// Moves a role to `position` (1 is just above `@everyone`), renumbering the other
    /// roles in their order, as an admin dragging a role in Discord's settings does
    /// (dispatches GUILD_ROLE_UPDATE for each role that moved).
    pub fn set_role_position(
        &self,
        guild: impl Into<Snowflake>,
        role: impl Into<Snowflake>,
        position: i64,
    ) -> Result<(), SimError> {
        let (guild, role) = (guild.into(), role.into());
        self.shared.with(|s, _, _| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.set_role_position(guild, role, position)
                .map_err(|_| SimError::UnknownRole(role))
        })
    }

    /// The effective permissions of `user` in `guild`, and in `channel` if given, as
    /// the sim computes them for its checks (owner and Administrator: every bit).
    pub fn permissions(
        &self,
        guild: impl Into<Snowflake>,
        user: impl Into<Snowflake>,
        channel: Option<Snowflake>,
    ) -> u64 {
        let (guild, user) = (guild.into(), user.into());
        self.shared
            .with(|s, _, _| s.permissions(guild, user, channel))
    }

    /// Renames a channel and/or flips its NSFW flag (dispatches CHANNEL_UPDATE).
    pub fn update_channel(
        &self,
        channel: impl Into<Snowflake>,
        name: Option<&str>,
        nsfw: Option<bool>,
    ) -> Result<(), SimError> {
        let channel = channel.into();
        self.shared.with(|s, _, _| {
            s.channel(channel)
                .map_err(|_| SimError::UnknownChannel(channel))?;
            let patch = ChannelPatch {
                name: name.map(str::to_owned),
                nsfw,
                ..ChannelPatch::default()
            };
            s.update_channel(channel, patch).map_err(rejected)
        })
    }

    /// Replaces a channel's permission overwrites, as a server admin may at any time
    /// (dispatches CHANNEL_UPDATE).
    pub fn set_channel_overwrites(
        &self,
        channel: impl Into<Snowflake>,
        overwrites: Vec<PermissionOverwrite>,
    ) -> Result<(), SimError> {
        let channel = channel.into();
        self.shared.with(|s, _, _| {
            s.channel(channel)
                .map_err(|_| SimError::UnknownChannel(channel))?;
            let patch = ChannelPatch {
                permission_overwrites: Some(overwrites),
                ..ChannelPatch::default()
            };
            s.update_channel(channel, patch).map_err(rejected)
        })
    }

    /// Deletes a channel and its messages (dispatches CHANNEL_DELETE; children of a
    /// deleted category get CHANNEL_UPDATE without a parent).
    pub fn delete_channel(&self, channel: impl Into<Snowflake>) -> Result<(), SimError> {
        let channel = channel.into();
        self.shared.with(|s, _, _| {
            s.channel(channel)
                .map_err(|_| SimError::UnknownChannel(channel))?;
            s.delete_channel(channel).map(|_| ()).map_err(rejected)
        })
    }

    /// Creates a user who is not yet a member of any guild.
    pub fn create_user(&self, name: &str) -> Snowflake {
        self.shared.with(|s, _, ids| s.create_user(ids, name))
    }

    /// Creates another application's bot account, not yet a member of any guild.
    pub fn create_bot_user(&self, name: &str) -> Snowflake {
        self.shared
            .with(|s, _, ids| s.create_account(ids, name, true))
    }

    /// Creates a channel (dispatches CHANNEL_CREATE).
    pub fn create_channel(
        &self,
        guild: impl Into<Snowflake>,
        name: &str,
        kind: ChannelKind,
    ) -> Result<Snowflake, SimError> {
        self.create_channel_with(guild, ChannelSpec::new(name, kind))
    }

    /// Creates a channel with topic, parent, overwrites etc.
    pub fn create_channel_with(
        &self,
        guild: impl Into<Snowflake>,
        spec: ChannelSpec,
    ) -> Result<Snowflake, SimError> {
        let guild = guild.into();
        self.shared.with(|s, _, ids| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.create_channel(ids, guild, spec).map_err(rejected)
        })
    }

    /// The bot's DM channel with `user`, created on first use.
    pub fn dm_channel(&self, user: impl Into<Snowflake>) -> Result<Snowflake, SimError> {
        let user = user.into();
        self.shared.with(|s, _, ids| {
            s.dm_channel(ids, user)
                .map_err(|_| SimError::UnknownUser(user))
        })
    }

    /// The bot's DM channel with `user` when one is open (nothing is created).
    pub fn dm_channel_of(&self, user: impl Into<Snowflake>) -> Option<Snowflake> {
        self.shared.lock().dms.get(&user.into()).copied()
    }

    /// Creates a role (dispatches GUILD_ROLE_CREATE).
    pub fn create_role(
        &self,
        guild: impl Into<Snowflake>,
        spec: RoleSpec,
    ) -> Result<Snowflake, SimError> {
        let guild = guild.into();
        self.shared.with(|s, _, ids| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.create_role(ids, guild, spec).map_err(rejected)
        })
    }

    /// Adds a user to a guild (dispatches GUILD_MEMBER_ADD). Idempotent.
    pub fn add_member(
        &self,
        guild: impl Into<Snowflake>,
        user: impl Into<Snowflake>,
    ) -> Result<(), SimError> {
        let (guild, user) = (guild.into(), user.into());
        self.shared.with(|s, _, _| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.user(user).map_err(|_| SimError::UnknownUser(user))?;
            s.add_member(guild, user).map_err(rejected)
        })
    }

    /// Connects a member to a voice channel of the guild, or disconnects them with
    /// `None` (dispatches VOICE_STATE_UPDATE; GUILD_CREATE lists who is connected).
    pub fn set_voice(
        &self,
        guild: impl Into<Snowflake>,
        user: impl Into<Snowflake>,
        channel: Option<Snowflake>,
    ) -> Result<(), SimError> {
        let (guild, user) = (guild.into(), user.into());
        self.shared.with(|s, _, _| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.set_voice(guild, user, channel).map_err(rejected)
        })
    }

    /// Removes a user from a guild (dispatches GUILD_MEMBER_REMOVE).
    pub fn remove_member(
        &self,
        guild: impl Into<Snowflake>,
        user: impl Into<Snowflake>,
    ) -> Result<(), SimError> {
        let (guild, user) = (guild.into(), user.into());
        self.shared.with(|s, _, _| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.remove_member(guild, user)
                .map_err(|_| SimError::NotAMember { guild, user })
        })
    }

    /// Gives a member a role (dispatches GUILD_MEMBER_UPDATE).
    pub fn add_member_role(
        &self,
        guild: impl Into<Snowflake>,
        user: impl Into<Snowflake>,
        role: impl Into<Snowflake>,
    ) -> Result<(), SimError> {
        let (guild, user, role) = (guild.into(), user.into(), role.into());
        self.shared.with(|s, _, _| {
            s.guild(guild).map_err(|_| SimError::UnknownGuild(guild))?;
            s.member(guild, user)
                .map_err(|_| SimError::NotAMember { guild, user })?;
            s.add_member_role(guild, user, role)
                .map_err(|_| SimError::UnknownRole(role))
        })
    }

    /// A user posts a message (stored, MESSAGE_CREATE dispatched). Attachments are
    /// served by the sim at their `url`.
    pub fn post_user_message(
        &self,
        channel: impl Into<Snowflake>,
        user: impl Into<Snowflake>,
        content: &str,
        attachments: Vec<AttachmentSpec>,
    ) -> Result<Snowflake, SimError> {
        let (channel, user) = (channel.into(), user.into());
        self.shared.with(|s, ctx, ids| {
            check_poster(s, channel, user)?;
            let stored: Vec<Attachment> = attachments
                .into_iter()
                .map(|spec| s.new_attachment(ctx, ids, channel, spec))
                .collect();
            let new = NewMessage {
                channel_id: channel,
                author_id: user,
                content: content.to_owned(),
                attachments: stored,
                ..NewMessage::default()
            };
            s.create_message(ids, new).map_err(rejected)
        })
    }

    /// A user edits their message (MESSAGE_UPDATE).
    pub fn edit_user_message(
        &self,
        channel: impl Into<Snowflake>,
        message: impl Into<Snowflake>,
        content: &str,
    ) -> Result<(), SimError> {
        let (channel, message) = (channel.into(), message.into());
        self.shared.with(|s, _, _| {
            s.message(channel, message)
                .map_err(|_| SimError::UnknownMessage(message))?;
            let edit = MessageEdit {
                content: Some(content.to_owned()),
                mark_edited: true,
                ..MessageEdit::default()
            };
            s.edit_message(channel, message, edit).map_err(rejected)
        })
    }

    /// A user edits their message: new `content` if given, and if `attachments` is
    /// given the message's files become exactly those (people can only remove files
    /// from a sent message; bots and webhooks can add them). A current file whose
    /// name, type and size match a spec stays, with its id; the others are new. One
    /// full MESSAGE_UPDATE is dispatched.
    pub fn edit_user_message_with(
        &self,
        channel: impl Into<Snowflake>,
        message: impl Into<Snowflake>,
        content: Option<&str>,
        attachments: Option<Vec<AttachmentSpec>>,
    ) -> Result<(), SimError> {
        let (channel, message) = (channel.into(), message.into());
        self.shared.with(|s, ctx, ids| {
            let current = s
                .message(channel, message)
                .map_err(|_| SimError::UnknownMessage(message))?
                .attachments
                .clone();
            let attachments = attachments.map(|specs| {
                let mut unused = current;
                specs
                    .into_iter()
                    .map(|spec| {
                        let size = spec.size.unwrap_or(spec.data.len() as u64);
                        let same = unused.iter().position(|a| {
                            a.filename == spec.filename
                                && a.content_type == spec.content_type
                                && a.size == size
                        });
                        match same {
                            Some(index) => unused.remove(index),
                            None => s.new_attachment(ctx, ids, channel, spec),
                        }
                    })
                    .collect()
            });
            let edit = MessageEdit {
                content: content.map(str::to_owned),
                attachments,
                mark_edited: true,
                ..MessageEdit::default()
            };
            s.edit_message(channel, message, edit).map_err(rejected)
        })
    }

    /// A moderator deletes several messages at once (one MESSAGE_DELETE_BULK, as
    /// Discord sends for `POST /channels/{id}/messages/bulk-delete`). Every id must
    /// be a message of the channel.
    pub fn bulk_delete_messages(
        &self,
        channel: impl Into<Snowflake>,
        messages: &[Snowflake],
    ) -> Result<(), SimError> {
        let channel = channel.into();
        self.shared.with(|s, _, _| {
            let stored = &s
                .channel(channel)
                .map_err(|_| SimError::UnknownChannel(channel))?
                .messages;
            if let Some(unknown) = messages.iter().find(|m| !stored.contains_key(m)) {
                return Err(SimError::UnknownMessage(*unknown));
            }
            s.bulk_delete(channel, messages).map_err(rejected)?;
            Ok(())
        })
    }

    /// Stores `messages` as the channel's history, oldest first, without dispatching
    /// anything (they were posted before the bot looked), and returns their ids:
    /// strictly increasing, newer than the channel and its messages so far, older
    /// than anything created afterwards. Authors must be users the sim knows; they
    /// need not be members. Checked before anything is stored: on error nothing is.
    /// Cheap enough for 200,000 messages (use [`AttachmentSpec::sized`] for files
    /// whose bytes do not matter).
    pub fn seed_history(
        &self,
        channel: impl Into<Snowflake>,
        messages: impl IntoIterator<Item = SeedMessage>,
    ) -> Result<Vec<Snowflake>, SimError> {
        let channel = channel.into();
        let messages: Vec<SeedMessage> = messages.into_iter().collect();
        self.shared.with(|s, ctx, ids| {
            let c = &s
                .channel(channel)
                .map_err(|_| SimError::UnknownChannel(channel))?
                .channel;
            if !c.kind.is_textual() {
                return Err(SimError::NotTextChannel(channel));
            }
            let mut known = std::collections::HashSet::new();
            for message in &messages {
                if known.insert(message.author) {
                    s.user(message.author)
                        .map_err(|_| SimError::UnknownUser(message.author))?;
                }
            }
            s.seed_history(ctx, ids, channel, messages)
                .map_err(rejected)
        })
    }

    /// A message is deleted by its author or a moderator (MESSAGE_DELETE).
    pub fn delete_user_message(
        &self,
        channel: impl Into<Snowflake>,
        message: impl Into<Snowflake>,
    ) -> Result<(), SimError> {
        let (channel, message) = (channel.into(), message.into());
        self.shared.with(|s, _, _| {
            s.channel(channel)
                .map_err(|_| SimError::UnknownChannel(channel))?;
            s.delete_message(channel, message)
                .map_err(|_| SimError::UnknownMessage(message))
        })
    }

    /// Seeds the sandbox world: guild "Tavern Demo" with a "Tavern" category holding
    /// #general, #dice, #drinking, #campaigns and the voice channel "Table", and the
    /// members demo-player, alice, bob and carol.
    pub fn seed_demo(&self) -> Demo {
        self.shared.with(|s, ctx, ids| {
            let guild = s.create_guild(ctx, ids, "Tavern Demo");
            let mut channel = |spec: ChannelSpec| {
                s.create_channel(ids, guild, spec)
                    .unwrap_or_else(|_| Snowflake::new(0))
            };
            let category = channel(ChannelSpec::new("Tavern", ChannelKind::Category));
            let general = channel(
                ChannelSpec::new("general", ChannelKind::Text)
                    .parent(category)
                    .topic("Talk about anything"),
            );
            let dice = channel(
                ChannelSpec::new("dice", ChannelKind::Text)
                    .parent(category)
                    .topic("Roll dice with /roll"),
            );
            let drinking = channel(
                ChannelSpec::new("drinking", ChannelKind::Text)
                    .parent(category)
                    .topic("The dice drinking game"),
            );
            let campaigns = channel(
                ChannelSpec::new("campaigns", ChannelKind::Text)
                    .parent(category)
                    .topic("Campaign announcements"),
            );
            let voice = channel(ChannelSpec::new("Table", ChannelKind::Voice).parent(category));
            let mut user = |name: &str| {
                let id = s.create_user(ids, name);
                if let Err(error) = s.add_member(guild, id) {
                    tracing::error!(?error, "seeding demo member failed");
                }
                id
            };
            Demo {
                guild,
                category,
                general,
                dice,
                drinking,
                campaigns,
                voice,
                demo_player: user("demo-player"),
                alice: user("alice"),
                bob: user("bob"),
                carol: user("carol"),
            }
        })
    }

    // ---- queries -----------------------------------------------------------------

    pub fn guilds(&self) -> Vec<Guild> {
        self.shared
            .lock()
            .guilds
            .values()
            .map(|g| g.guild.clone())
            .collect()
    }

    pub fn guild(&self, id: impl Into<Snowflake>) -> Option<Guild> {
        self.shared
            .lock()
            .guilds
            .get(&id.into())
            .map(|g| g.guild.clone())
    }

    /// The guild's channels ordered by position, then id.
    pub fn channels(&self, guild: impl Into<Snowflake>) -> Vec<Channel> {
        let state = self.shared.lock();
        let Some(g) = state.guilds.get(&guild.into()) else {
            return Vec::new();
        };
        let mut channels: Vec<Channel> = g
            .channels
            .iter()
            .filter_map(|c| state.channels.get(c))
            .map(|c| c.channel.clone())
            .collect();
        channels.sort_by_key(|c| (c.position, c.id));
        channels
    }

    pub fn channel(&self, id: impl Into<Snowflake>) -> Option<Channel> {
        self.shared
            .lock()
            .channels
            .get(&id.into())
            .map(|c| c.channel.clone())
    }

    /// The first channel of the guild with this name.
    pub fn channel_by_name(&self, guild: impl Into<Snowflake>, name: &str) -> Option<Channel> {
        self.channels(guild).into_iter().find(|c| c.name == name)
    }

    /// Roles ordered by position (`@everyone` first).
    pub fn roles(&self, guild: impl Into<Snowflake>) -> Vec<Role> {
        let state = self.shared.lock();
        let mut roles: Vec<Role> = state
            .guilds
            .get(&guild.into())
            .map(|g| g.roles.values().cloned().collect())
            .unwrap_or_default();
        roles.sort_by_key(|r| (r.position, r.id));
        roles
    }

    pub fn member(
        &self,
        guild: impl Into<Snowflake>,
        user: impl Into<Snowflake>,
    ) -> Option<Member> {
        self.shared
            .lock()
            .member(guild.into(), user.into())
            .ok()
            .cloned()
    }

    pub fn members(&self, guild: impl Into<Snowflake>) -> Vec<Member> {
        self.shared
            .lock()
            .guilds
            .get(&guild.into())
            .map(|g| g.members.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn user(&self, id: impl Into<Snowflake>) -> Option<User> {
        self.shared.lock().users.get(&id.into()).cloned()
    }

    /// Every message of a channel, oldest first, ephemeral ones included (see
    /// [`Message::visible_to`]).
    pub fn messages(&self, channel: impl Into<Snowflake>) -> Vec<Message> {
        let state = self.shared.lock();
        state
            .channels
            .get(&channel.into())
            .map(|c| {
                c.messages
                    .values()
                    .map(|m| state.signed_message(m))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn message(
        &self,
        channel: impl Into<Snowflake>,
        id: impl Into<Snowflake>,
    ) -> Option<Message> {
        let state = self.shared.lock();
        state
            .message(channel.into(), id.into())
            .ok()
            .map(|m| state.signed_message(m))
    }

    /// How many messages the channel holds (ephemeral ones included), without
    /// copying them.
    pub fn message_count(&self, channel: impl Into<Snowflake>) -> usize {
        self.shared
            .lock()
            .channels
            .get(&channel.into())
            .map_or(0, |c| c.messages.len())
    }

    /// The bytes served at an attachment's `url`, when it was made with data (a
    /// user's upload seeded with bytes, or a file the bot sent).
    pub fn attachment_data(&self, attachment: impl Into<Snowflake>) -> Option<Arc<[u8]>> {
        self.shared
            .lock()
            .attachment_data
            .get(&attachment.into())
            .cloned()
    }

    /// Makes every attachment URL issued so far expired, as if a day had passed:
    /// the CDN answers them 404 until they are refreshed (`POST
    /// /attachments/refresh-urls`) or the message is fetched again.
    pub fn expire_attachment_urls(&self) {
        self.shared.lock().cdn.expire_all();
    }

    /// 429s answered because a rate-limit bucket or the global limit was exceeded
    /// (injected [`Fault::RateLimited`] answers are not counted).
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.lock().rate_limited
    }

    /// Global and guild commands, in registration order.
    pub fn registered_commands(&self) -> Vec<Command> {
        self.shared.lock().commands.clone()
    }

    /// Every REST request served (up to `request_log_capacity`), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// How many callbacks the interaction accepted (0 or 1; a correct bot makes it 1).
    pub fn interaction_count_answered(&self, id: impl Into<Snowflake>) -> usize {
        self.shared
            .lock()
            .interactions
            .get(&id.into())
            .map_or(0, |i| i.answered as usize)
    }

    /// How many callback requests arrived for the interaction, rejected ones included.
    pub fn interaction_callback_attempts(&self, id: impl Into<Snowflake>) -> usize {
        self.shared
            .lock()
            .interactions
            .get(&id.into())
            .map_or(0, |i| i.callback_attempts as usize)
    }

    /// Every reply to the interaction so far: callback, edits, follow-ups.
    pub fn interaction_replies(&self, id: impl Into<Snowflake>) -> Vec<InteractionReply> {
        self.shared
            .lock()
            .interactions
            .get(&id.into())
            .map(|i| i.replies.iter().map(|r| (**r).clone()).collect())
            .unwrap_or_default()
    }

    /// Gateway sessions alive (attached or waiting for RESUME).
    pub fn gateway_session_count(&self) -> usize {
        self.shared.lock().gateway.session_count()
    }

    /// Open gateway WebSockets.
    pub fn gateway_connection_count(&self) -> usize {
        self.shared.lock().gateway.connection_count()
    }

    /// Gateway WebSockets opened since the sim started (closed ones too).
    pub fn gateway_connections_opened(&self) -> usize {
        self.shared.lock().gateway.opened_count()
    }

    // ---- acting as a user --------------------------------------------------------

    /// `user` runs slash command `name` in `channel`. `options` uses Discord's shape
    /// (`[{"name": "expression", "value": "1d20"}]`, subcommands nested under
    /// `options`); each option's `type` may be omitted and is taken from the
    /// registered command. Fails if no such command is registered for the channel's
    /// guild or globally, or if Discord would not offer it in this kind of channel
    /// ([`SimError::NotOfferedHere`]: its `contexts`, or `dm_permission: false`, leave
    /// it out).
    pub fn run_command(
        &self,
        user: impl Into<Snowflake>,
        channel: impl Into<Snowflake>,
        name: &str,
        options: Value,
    ) -> Result<Interaction, SimError> {
        let (user, channel) = (user.into(), channel.into());
        self.shared
            .with(|s, ctx, ids| s.run_command(ctx, ids, user, channel, name, options))
    }

    /// `user` types into the option `focused` of slash command `name` in `channel`:
    /// `options` as for [`Sim::run_command`], with the focused option's text so far as
    /// its (string) value. The bot answers with choices (callback type 8; the reply's
    /// `data["choices"]`). The option must be registered with `autocomplete`.
    pub fn autocomplete(
        &self,
        user: impl Into<Snowflake>,
        channel: impl Into<Snowflake>,
        name: &str,
        options: Value,
        focused: &str,
    ) -> Result<Interaction, SimError> {
        let (user, channel) = (user.into(), channel.into());
        self.shared
            .with(|s, ctx, ids| s.autocomplete(ctx, ids, user, channel, name, options, focused))
    }

    /// `user` clicks the button `custom_id` on `message`.
    pub fn click_button(
        &self,
        user: impl Into<Snowflake>,
        channel: impl Into<Snowflake>,
        message: impl Into<Snowflake>,
        custom_id: &str,
    ) -> Result<Interaction, SimError> {
        let (user, channel, message) = (user.into(), channel.into(), message.into());
        self.shared
            .with(|s, ctx, ids| s.use_component(ctx, ids, user, channel, message, custom_id, None))
    }

    /// `user` picks `values` in the select menu `custom_id` on `message`.
    pub fn select(
        &self,
        user: impl Into<Snowflake>,
        channel: impl Into<Snowflake>,
        message: impl Into<Snowflake>,
        custom_id: &str,
        values: Vec<String>,
    ) -> Result<Interaction, SimError> {
        let (user, channel, message) = (user.into(), channel.into(), message.into());
        self.shared.with(|s, ctx, ids| {
            s.use_component(ctx, ids, user, channel, message, custom_id, Some(values))
        })
    }

    /// `user` submits the modal `custom_id` the bot showed them in `channel`, with
    /// text input values by custom id.
    pub fn submit_modal(
        &self,
        user: impl Into<Snowflake>,
        channel: impl Into<Snowflake>,
        custom_id: &str,
        fields: &[(&str, &str)],
    ) -> Result<Interaction, SimError> {
        let (user, channel) = (user.into(), channel.into());
        self.shared
            .with(|s, ctx, ids| s.submit_modal(ctx, ids, user, channel, custom_id, fields))
    }

    // ---- OAuth2 ------------------------------------------------------------------

    /// Registers a redirect URI for the application (Discord's developer portal
    /// "Redirects" list). `GET /oauth2/authorize` with any other `redirect_uri` shows
    /// an error page and never redirects. The URI must match exactly.
    pub fn register_redirect_uri(&self, uri: &str) {
        self.shared
            .lock()
            .oauth
            .redirect_uris
            .insert(uri.to_owned());
    }

    /// The user "logged in to Discord in the browser": who `GET /oauth2/authorize`
    /// authorises when the URL has no `sim_user_id` (the sandbox, a headless
    /// browser). `None` signs out. The sim has no consent screen: it approves at
    /// once unless the URL says `sim_decision=deny`.
    pub fn sign_in(&self, user: Option<Snowflake>) {
        self.shared.lock().oauth.signed_in = user;
    }

    /// The OAuth2 client secret (the client id is [`Sim::application_id`]).
    pub fn client_secret(&self) -> &str {
        &self.shared.ctx.config.oauth_client_secret
    }

    /// Revokes an OAuth2 access or refresh token, as if the user removed the app's
    /// authorisation in Discord's settings.
    pub fn revoke_oauth_token(&self, token: &str) {
        self.shared.lock().oauth.revoke(token);
    }

    // ---- fault injection ---------------------------------------------------------

    /// The next `times` REST requests matching `route` get `fault`. Rules are
    /// checked in the order they were added.
    pub fn inject_fault(&self, route: RouteMatch, fault: Fault, times: usize) {
        if times == 0 {
            return;
        }
        self.shared.lock().faults.push(FaultRule {
            matcher: route,
            fault,
            remaining: times,
        });
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Drops every gateway WebSocket without a close frame (the client sees 1006).
    /// Sessions stay, buffering dispatches for RESUME. Returns how many were open.
    pub fn drop_gateway_connections(&self) -> usize {
        self.shared.lock().gateway.drop_connections()
    }

    /// Closes the gateway connections of shard `shard` (all of them when `None`) with
    /// a close frame carrying `code`, as Discord does: 4000 and the other resumable
    /// codes make a client reconnect, 4004 (authentication failed), 4010-4014 (invalid
    /// shard, sharding required, invalid API version, invalid or disallowed intents)
    /// are fatal. Sessions stay for RESUME. Returns how many connections were closed.
    pub fn close_gateway_connections(&self, shard: Option<u32>, code: u16) -> usize {
        self.shared.lock().gateway.close_connections(shard, code)
    }

    /// While `false`, gateway upgrade requests get 503, so a client's reconnects fail
    /// until it is `true` again.
    pub fn set_gateway_accepting(&self, accepting: bool) {
        self.shared.lock().gateway.accepting = accepting;
    }
}

fn rejected(error: ApiError) -> SimError {
    SimError::Rejected {
        status: error.status,
        code: error.code,
        message: error.message,
    }
}

fn check_poster(s: &state::State, channel: Snowflake, user: Snowflake) -> Result<(), SimError> {
    s.user(user).map_err(|_| SimError::UnknownUser(user))?;
    let c = &s
        .channel(channel)
        .map_err(|_| SimError::UnknownChannel(channel))?
        .channel;
    if !c.kind.is_textual() {
        return Err(SimError::NotTextChannel(channel));
    }
    match c.guild_id {
        Some(guild) => {
            s.member(guild, user)
                .map_err(|_| SimError::NotAMember { guild, user })?;
        }
        None => {
            if !c.recipients.contains(&user) {
                return Err(SimError::UnknownChannel(channel));
            }
        }
    }
    Ok(())
}
