//! The sim's world: users, guilds, channels, roles, members, messages.
//!
//! Everything lives in one [`State`] behind one mutex (see `Shared`). Every mutation
//! that Discord would announce on the gateway dispatches the event while the lock is
//! held, so sequence numbers follow the order in which the state changed, exactly as a
//! client observing Discord would expect. Both the REST routes and the Rust seeding API
//! go through the same methods here, so they cannot drift apart.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::cdn::Cdn;
use crate::config::SimConfig;
use crate::error::ApiError;
use crate::fault::{Buckets, FaultRule};
use crate::gateway::{GatewayState, intents};
use crate::interaction::InteractionState;
use crate::model::{
    Attachment, AttachmentSpec, Channel, ChannelKind, ChannelSpec, Command, Guild, Member, Message,
    MessageInteractionMetadata, MessageReference, OverwriteKind, PermissionOverwrite,
    RequestRecord, Role, RoleSpec, SeedMessage, User, message_flags, permissions,
};
use crate::oauth::OAuthState;
use crate::snowflake::{Snowflake, SnowflakeGen};
use crate::time;

/// Attachment size limit reported in interactions (Discord's default, 10 MiB).
pub(crate) const ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;

/// Immutable facts about this sim instance, fixed at start.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub config: SimConfig,
    pub app_id: Snowflake,
    pub bot_id: Snowflake,
    pub addr: SocketAddr,
    /// Mixed into interaction tokens and session ids so they are not guessable from
    /// ids alone (tests must use the token they were given).
    pub secret: u64,
}

impl Ctx {
    pub fn gateway_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// What the server tasks and the [`crate::Sim`] handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub ctx: Ctx,
    pub ids: SnowflakeGen,
    state: Mutex<State>,
    /// `true` once shutdown was requested; connection tasks watch it.
    pub shutdown: watch::Sender<bool>,
}

impl Shared {
    pub fn new(config: SimConfig, addr: SocketAddr) -> Arc<Self> {
        let ids = SnowflakeGen::default();
        let app_id = config
            .application_id
            .map_or_else(|| ids.next(), Snowflake::new);
        let bot_id = config
            .bot_user_id
            .map_or_else(|| ids.next(), Snowflake::new);
        let secret = random_u64();
        let ctx = Ctx {
            config,
            app_id,
            bot_id,
            addr,
            secret,
        };
        let state = State::new(&ctx);
        let (shutdown, _) = watch::channel(false);
        Arc::new(Self {
            ctx,
            ids,
            state: Mutex::new(state),
            shutdown,
        })
    }

    /// Locks the state. A panic while holding the lock (a bug in the sim) must not
    /// wedge every later test assertion, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the state and the context.
    pub fn with<R>(&self, f: impl FnOnce(&mut State, &Ctx, &SnowflakeGen) -> R) -> R {
        let mut state = self.lock();
        f(&mut state, &self.ctx, &self.ids)
    }
}

/// A random-enough `u64` without a `rand` dependency: std's `RandomState` is seeded
/// from the OS per process and per instance.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(crate::snowflake::now_unix_ms());
    hasher.finish()
}

#[derive(Debug)]
pub(crate) struct GuildState {
    pub guild: Guild,
    pub roles: BTreeMap<Snowflake, Role>,
    pub members: BTreeMap<Snowflake, Member>,
    pub channels: BTreeSet<Snowflake>,
    /// Who is connected to which voice channel.
    pub voice: BTreeMap<Snowflake, Snowflake>,
}

#[derive(Debug)]
pub(crate) struct ChannelState {
    pub channel: Channel,
    /// Ordered by id, which is creation order.
    pub messages: BTreeMap<Snowflake, Message>,
}

/// A message about to be stored.
#[derive(Debug, Default)]
pub(crate) struct NewMessage {
    pub channel_id: Snowflake,
    pub author_id: Snowflake,
    pub content: String,
    pub embeds: Vec<Value>,
    pub components: Vec<Value>,
    pub attachments: Vec<Attachment>,
    pub flags: u64,
    pub kind: u8,
    pub tts: bool,
    pub message_reference: Option<MessageReference>,
    pub interaction_metadata: Option<MessageInteractionMetadata>,
    pub webhook_id: Option<Snowflake>,
    pub application_id: Option<Snowflake>,
    pub visible_to: Option<Snowflake>,
    /// `allowed_mentions` as sent (`None`: absent).
    pub allowed_mentions: Option<Value>,
    pub nonce: Option<String>,
}

/// Changes to a stored message; `None` leaves a field alone.
#[derive(Debug, Default)]
pub(crate) struct MessageEdit {
    pub content: Option<String>,
    pub embeds: Option<Vec<Value>>,
    pub components: Option<Vec<Value>>,
    pub attachments: Option<Vec<Attachment>>,
    pub flags: Option<u64>,
    /// Set `edited_timestamp`. Not done when a deferred placeholder gets its content.
    pub mark_edited: bool,
    /// `allowed_mentions` sent with the edit (`None`: absent); applies to new content.
    pub allowed_mentions: Option<Value>,
}

/// Changes to a channel; the outer `None` leaves a field alone.
#[derive(Debug, Default)]
pub(crate) struct ChannelPatch {
    pub name: Option<String>,
    pub topic: Option<Option<String>>,
    pub parent_id: Option<Option<Snowflake>>,
    pub position: Option<i32>,
    pub nsfw: Option<bool>,
    pub permission_overwrites: Option<Vec<PermissionOverwrite>>,
    pub rate_limit_per_user: Option<u16>,
    pub bitrate: Option<u32>,
    pub user_limit: Option<u32>,
}

#[derive(Debug, Default)]
pub(crate) struct RolePatch {
    pub name: Option<String>,
    pub permissions: Option<u64>,
    pub color: Option<u32>,
    pub hoist: Option<bool>,
    pub mentionable: Option<bool>,
    pub unicode_emoji: Option<Option<String>>,
    pub position: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub users: HashMap<Snowflake, User>,
    pub guilds: BTreeMap<Snowflake, GuildState>,
    pub channels: HashMap<Snowflake, ChannelState>,
    /// Recipient user id -> the bot's DM channel with them.
    pub dms: HashMap<Snowflake, Snowflake>,
    /// Registered commands, global and per guild, in registration order.
    pub commands: Vec<Command>,
    pub interactions: HashMap<Snowflake, InteractionState>,
    pub interaction_tokens: HashMap<String, Snowflake>,
    /// Attachment id -> bytes served under `/attachments/`.
    pub attachment_data: HashMap<Snowflake, Arc<[u8]>>,
    /// Attachment id -> `(channel, message)` holding it, so the CDN finds a file
    /// without scanning a channel's history.
    pub attachment_index: HashMap<Snowflake, (Snowflake, Snowflake)>,
    /// Signs and checks attachment URLs.
    pub cdn: Cdn,
    /// 429s answered because a bucket or the global limit was exceeded (injected
    /// faults not counted).
    pub rate_limited: u64,
    pub gateway: GatewayState,
    pub faults: Vec<FaultRule>,
    pub buckets: Buckets,
    pub requests: VecDeque<RequestRecord>,
    pub oauth: OAuthState,
    /// `(author, nonce)` -> the message created with it and when, for `enforce_nonce`.
    pub nonces: HashMap<(Snowflake, String), (Snowflake, Channelled)>,
    /// Roles a guild may hold ([`crate::SimConfig::guild_role_limit`]).
    pub role_limit: usize,
}

/// Where and when a nonce was used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channelled {
    pub channel: Snowflake,
    pub at: std::time::Instant,
}

impl State {
    fn new(ctx: &Ctx) -> Self {
        let mut users = HashMap::new();
        users.insert(
            ctx.bot_id,
            User {
                id: ctx.bot_id,
                name: ctx.config.bot_name.clone(),
                global_name: None,
                bot: true,
            },
        );
        Self {
            users,
            guilds: BTreeMap::new(),
            channels: HashMap::new(),
            dms: HashMap::new(),
            commands: Vec::new(),
            interactions: HashMap::new(),
            interaction_tokens: HashMap::new(),
            attachment_data: HashMap::new(),
            attachment_index: HashMap::new(),
            cdn: Cdn::new(ctx.secret, ctx.config.attachment_url_lifetime),
            rate_limited: 0,
            gateway: GatewayState::new(ctx.config.resume_buffer),
            faults: Vec::new(),
            buckets: Buckets::default(),
            requests: VecDeque::new(),
            oauth: OAuthState {
                redirect_uris: ctx.config.oauth_redirect_uris.iter().cloned().collect(),
                ..OAuthState::default()
            },
            nonces: HashMap::new(),
            role_limit: ctx.config.guild_role_limit,
        }
    }

    // ---- lookups ---------------------------------------------------------------

    pub fn user(&self, id: Snowflake) -> Result<&User, ApiError> {
        self.users.get(&id).ok_or_else(ApiError::unknown_user)
    }

    pub fn guild(&self, id: Snowflake) -> Result<&GuildState, ApiError> {
        self.guilds.get(&id).ok_or_else(ApiError::unknown_guild)
    }

    pub fn guild_mut(&mut self, id: Snowflake) -> Result<&mut GuildState, ApiError> {
        self.guilds.get_mut(&id).ok_or_else(ApiError::unknown_guild)
    }

    pub fn channel(&self, id: Snowflake) -> Result<&ChannelState, ApiError> {
        self.channels.get(&id).ok_or_else(ApiError::unknown_channel)
    }

    pub fn channel_mut(&mut self, id: Snowflake) -> Result<&mut ChannelState, ApiError> {
        self.channels
            .get_mut(&id)
            .ok_or_else(ApiError::unknown_channel)
    }

    pub fn member(&self, guild: Snowflake, user: Snowflake) -> Result<&Member, ApiError> {
        self.guild(guild)?
            .members
            .get(&user)
            .ok_or_else(ApiError::unknown_member)
    }

    pub fn message(&self, channel: Snowflake, id: Snowflake) -> Result<&Message, ApiError> {
        self.channel(channel)?
            .messages
            .get(&id)
            .ok_or_else(ApiError::unknown_message)
    }

    // ---- users and guilds ------------------------------------------------------

    pub fn create_user(&mut self, ids: &SnowflakeGen, name: &str) -> Snowflake {
        self.create_account(ids, name, false)
    }

    /// Creates a user, a bot account when `bot` (another application's bot, not the
    /// one the sim serves).
    pub fn create_account(&mut self, ids: &SnowflakeGen, name: &str, bot: bool) -> Snowflake {
        let id = ids.next();
        self.users.insert(
            id,
            User {
                id,
                name: name.to_owned(),
                global_name: Some(name.to_owned()),
                bot,
            },
        );
        id
    }

    /// Creates a guild owned by the bot, with an `@everyone` role (id = guild id, as
    /// on Discord) and the bot as its first member, and announces it with
    /// GUILD_CREATE as Discord does when a bot joins a guild.
    pub fn create_guild(&mut self, ctx: &Ctx, ids: &SnowflakeGen, name: &str) -> Snowflake {
        let id = ids.next();
        let everyone = Role {
            id,
            guild_id: id,
            name: "@everyone".to_owned(),
            permissions: permissions::EVERYONE_DEFAULT,
            color: 0,
            hoist: false,
            mentionable: false,
            managed: false,
            position: 0,
            unicode_emoji: None,
            bot_id: None,
        };
        let bot_member = Member {
            guild_id: id,
            user_id: ctx.bot_id,
            nick: None,
            roles: Vec::new(),
            joined_at: time::now_iso(),
        };
        self.guilds.insert(
            id,
            GuildState {
                guild: Guild {
                    id,
                    name: name.to_owned(),
                    owner_id: ctx.bot_id,
                    preferred_locale: "en-US".to_owned(),
                    icon: None,
                },
                roles: BTreeMap::from([(id, everyone)]),
                members: BTreeMap::from([(ctx.bot_id, bot_member)]),
                channels: BTreeSet::new(),
                voice: BTreeMap::new(),
            },
        );
        let payload = self.guild_create_json(id);
        self.gateway
            .dispatch("GUILD_CREATE", Some(id), intents::GUILDS, &payload);
        id
    }

    /// Creates a guild owned by `owner`, a person, which the bot is not in: the
    /// starting point of the bot-install flow. Nothing is dispatched, because Discord
    /// tells a bot nothing about guilds it is not in (`GatewayState::bot_absent`).
    pub fn create_user_guild(
        &mut self,
        ids: &SnowflakeGen,
        name: &str,
        owner: Snowflake,
    ) -> Result<Snowflake, ApiError> {
        self.user(owner)?;
        let id = ids.next();
        let everyone = Role {
            id,
            guild_id: id,
            name: "@everyone".to_owned(),
            permissions: permissions::EVERYONE_DEFAULT,
            color: 0,
            hoist: false,
            mentionable: false,
            managed: false,
            position: 0,
            unicode_emoji: None,
            bot_id: None,
        };
        let owner_member = Member {
            guild_id: id,
            user_id: owner,
            nick: None,
            roles: Vec::new(),
            joined_at: time::now_iso(),
        };
        self.gateway.bot_absent.insert(id);
        self.guilds.insert(
            id,
            GuildState {
                guild: Guild {
                    id,
                    name: name.to_owned(),
                    owner_id: owner,
                    preferred_locale: "en-US".to_owned(),
                    icon: None,
                },
                roles: BTreeMap::from([(id, everyone)]),
                members: BTreeMap::from([(owner, owner_member)]),
                channels: BTreeSet::new(),
                voice: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    /// The bot joins `guild` (the end of the bot-install flow): it becomes a member
    /// and receives GUILD_CREATE, as on Discord. With `permissions` (what the install
    /// link asked for), Discord first makes a managed role named after the bot that
    /// holds exactly those permissions, gives it to the bot, and puts it at the bottom,
    /// just above `@everyone`, below every role the guild had: the guild's admins must
    /// move it up before the bot may manage their roles. Idempotent: a bot already in
    /// the guild keeps its roles.
    ///
    /// Returns the managed role, if one was made.
    pub fn bot_join(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        guild: Snowflake,
        permissions: u64,
    ) -> Result<Option<Snowflake>, ApiError> {
        let state = self.guild(guild)?;
        if state.members.contains_key(&ctx.bot_id) {
            return Ok(None);
        }
        let role = if permissions == 0 {
            None
        } else {
            let id = ids.next();
            let role = Role {
                id,
                guild_id: guild,
                name: ctx.config.bot_name.clone(),
                permissions: permissions & permissions::ALL,
                color: 0,
                hoist: false,
                mentionable: false,
                managed: true,
                position: 1,
                unicode_emoji: None,
                bot_id: Some(ctx.bot_id),
            };
            self.insert_role_at_bottom(guild, role)?;
            Some(id)
        };
        let state = self.guild_mut(guild)?;
        state.members.insert(
            ctx.bot_id,
            Member {
                guild_id: guild,
                user_id: ctx.bot_id,
                nick: None,
                roles: role.into_iter().collect(),
                joined_at: time::now_iso(),
            },
        );
        self.gateway.bot_absent.remove(&guild);
        let payload = self.guild_create_json(guild);
        self.gateway
            .dispatch("GUILD_CREATE", Some(guild), intents::GUILDS, &payload);
        Ok(role)
    }

    /// Hands a guild to another member (Discord's ownership transfer). No
    /// GUILD_UPDATE is sent: nothing in Tavern watches for it yet.
    pub fn set_guild_owner(&mut self, guild: Snowflake, owner: Snowflake) -> Result<(), ApiError> {
        let state = self.guild_mut(guild)?;
        if !state.members.contains_key(&owner) {
            return Err(ApiError::unknown_member());
        }
        state.guild.owner_id = owner;
        Ok(())
    }

    pub fn add_member(&mut self, guild: Snowflake, user: Snowflake) -> Result<(), ApiError> {
        self.user(user)?;
        let state = self.guild_mut(guild)?;
        if state.members.contains_key(&user) {
            return Ok(());
        }
        state.members.insert(
            user,
            Member {
                guild_id: guild,
                user_id: user,
                nick: None,
                roles: Vec::new(),
                joined_at: time::now_iso(),
            },
        );
        let mut payload = self.member_json(guild, user, true)?;
        insert(&mut payload, "guild_id", json!(guild));
        self.gateway.dispatch(
            "GUILD_MEMBER_ADD",
            Some(guild),
            intents::GUILD_MEMBERS,
            &payload,
        );
        Ok(())
    }

    /// Connects `user` to the voice channel `channel` of `guild`, or disconnects them
    /// (`None`), and announces VOICE_STATE_UPDATE.
    pub fn set_voice(
        &mut self,
        guild: Snowflake,
        user: Snowflake,
        channel: Option<Snowflake>,
    ) -> Result<(), ApiError> {
        self.member(guild, user)?;
        if let Some(channel) = channel {
            let kind = self.channel(channel)?.channel.kind;
            if kind != ChannelKind::Voice || !self.guild(guild)?.channels.contains(&channel) {
                return Err(ApiError::new(
                    400,
                    50024,
                    format!("{channel} is not a voice channel of guild {guild}"),
                ));
            }
        }
        let voice = &mut self.guild_mut(guild)?.voice;
        match channel {
            Some(channel) => voice.insert(user, channel),
            None => voice.remove(&user),
        };
        let mut payload = voice_state_json(guild, user, channel);
        if let Ok(member) = self.member_json(guild, user, true) {
            insert(&mut payload, "member", member);
        }
        self.gateway.dispatch(
            "VOICE_STATE_UPDATE",
            Some(guild),
            intents::GUILD_VOICE_STATES,
            &payload,
        );
        Ok(())
    }

    pub fn remove_member(&mut self, guild: Snowflake, user: Snowflake) -> Result<(), ApiError> {
        let removed = self.guild_mut(guild)?.members.remove(&user);
        if removed.is_none() {
            return Err(ApiError::unknown_member());
        }
        let payload = json!({"guild_id": guild, "user": self.user_json(user)});
        self.gateway.dispatch(
            "GUILD_MEMBER_REMOVE",
            Some(guild),
            intents::GUILD_MEMBERS,
            &payload,
        );
        Ok(())
    }

    /// Applies `change` to a member's roles and nickname and announces
    /// GUILD_MEMBER_UPDATE if anything changed.
    pub fn update_member(
        &mut self,
        guild: Snowflake,
        user: Snowflake,
        roles: Option<Vec<Snowflake>>,
        nick: Option<Option<String>>,
    ) -> Result<(), ApiError> {
        let state = self.guild_mut(guild)?;
        if let Some(roles) = &roles {
            // `@everyone` is implicit and cannot be assigned.
            if roles
                .iter()
                .any(|r| !state.roles.contains_key(r) || *r == guild)
            {
                return Err(ApiError::unknown_role());
            }
        }
        let member = state
            .members
            .get_mut(&user)
            .ok_or_else(ApiError::unknown_member)?;
        let mut changed = false;
        if let Some(mut roles) = roles {
            let mut seen = BTreeSet::new();
            roles.retain(|r| seen.insert(*r));
            if roles != member.roles {
                member.roles = roles;
                changed = true;
            }
        }
        if let Some(nick) = nick
            && nick != member.nick
        {
            member.nick = nick;
            changed = true;
        }
        if changed {
            let mut payload = self.member_json(guild, user, true)?;
            insert(&mut payload, "guild_id", json!(guild));
            self.gateway.dispatch(
                "GUILD_MEMBER_UPDATE",
                Some(guild),
                intents::GUILD_MEMBERS,
                &payload,
            );
        }
        Ok(())
    }

    pub fn add_member_role(
        &mut self,
        guild: Snowflake,
        user: Snowflake,
        role: Snowflake,
    ) -> Result<(), ApiError> {
        let state = self.guild(guild)?;
        if !state.roles.contains_key(&role) {
            return Err(ApiError::unknown_role());
        }
        let mut roles = state
            .members
            .get(&user)
            .ok_or_else(ApiError::unknown_member)?
            .roles
            .clone();
        if !roles.contains(&role) {
            roles.push(role);
        }
        self.update_member(guild, user, Some(roles), None)
    }

    pub fn remove_member_role(
        &mut self,
        guild: Snowflake,
        user: Snowflake,
        role: Snowflake,
    ) -> Result<(), ApiError> {
        let state = self.guild(guild)?;
        if !state.roles.contains_key(&role) {
            return Err(ApiError::unknown_role());
        }
        let mut roles = state
            .members
            .get(&user)
            .ok_or_else(ApiError::unknown_member)?
            .roles
            .clone();
        roles.retain(|r| *r != role);
        self.update_member(guild, user, Some(roles), None)
    }

    // ---- roles -----------------------------------------------------------------

    pub fn create_role(
        &mut self,
        ids: &SnowflakeGen,
        guild: Snowflake,
        spec: RoleSpec,
    ) -> Result<Snowflake, ApiError> {
        let limit = self.role_limit;
        let state = self.guild_mut(guild)?;
        if state.roles.len() >= limit {
            return Err(ApiError::new(
                400,
                30005,
                format!("Maximum number of guild roles reached ({limit})"),
            ));
        }
        let id = ids.next();
        let role = Role {
            id,
            guild_id: guild,
            name: spec.name,
            permissions: spec.permissions & permissions::ALL,
            color: spec.color,
            hoist: spec.hoist,
            mentionable: spec.mentionable,
            managed: false,
            position: 1,
            unicode_emoji: spec.unicode_emoji,
            bot_id: None,
        };
        self.insert_role_at_bottom(guild, role)?;
        Ok(id)
    }

    /// Stores `role` at position 1, just above `@everyone`, where Discord puts every
    /// new role, moving the others up one (each move announced with
    /// GUILD_ROLE_UPDATE, the new role with GUILD_ROLE_CREATE).
    fn insert_role_at_bottom(&mut self, guild: Snowflake, mut role: Role) -> Result<(), ApiError> {
        let state = self.guild_mut(guild)?;
        let mut moved = Vec::new();
        for other in state.roles.values_mut().filter(|r| r.id != guild) {
            other.position += 1;
            moved.push(json!({"guild_id": guild, "role": role_json(other)}));
        }
        role.position = 1;
        let payload = json!({"guild_id": guild, "role": role_json(&role)});
        state.roles.insert(role.id, role);
        for update in moved {
            self.gateway
                .dispatch("GUILD_ROLE_UPDATE", Some(guild), intents::GUILDS, &update);
        }
        self.gateway
            .dispatch("GUILD_ROLE_CREATE", Some(guild), intents::GUILDS, &payload);
        Ok(())
    }

    /// Moves `role` to `position` (1 is just above `@everyone`) and renumbers the
    /// others 1, 2, ... in their order, as Discord's role reordering does, announcing
    /// each role whose position changed with GUILD_ROLE_UPDATE. `@everyone` stays at 0.
    pub fn set_role_position(
        &mut self,
        guild: Snowflake,
        role: Snowflake,
        position: i64,
    ) -> Result<(), ApiError> {
        if role == guild {
            return Err(ApiError::new(400, 50028, "Invalid Role"));
        }
        let state = self.guild_mut(guild)?;
        if !state.roles.contains_key(&role) {
            return Err(ApiError::unknown_role());
        }
        let mut order: Vec<(i64, Snowflake)> = state
            .roles
            .values()
            .filter(|r| r.id != guild && r.id != role)
            .map(|r| (r.position, r.id))
            .collect();
        order.sort_unstable();
        let max_index = i64::try_from(order.len()).unwrap_or(i64::MAX);
        let index = usize::try_from((position - 1).clamp(0, max_index)).unwrap_or(0);
        order.insert(index, (position, role));
        let mut updates = Vec::new();
        for (new_position, (_, id)) in (1..).zip(order) {
            if let Some(r) = state.roles.get_mut(&id)
                && r.position != new_position
            {
                r.position = new_position;
                updates.push(json!({"guild_id": guild, "role": role_json(r)}));
            }
        }
        for update in updates {
            self.gateway
                .dispatch("GUILD_ROLE_UPDATE", Some(guild), intents::GUILDS, &update);
        }
        Ok(())
    }

    pub fn update_role(
        &mut self,
        guild: Snowflake,
        role: Snowflake,
        patch: RolePatch,
    ) -> Result<(), ApiError> {
        let state = self.guild_mut(guild)?;
        let entry = state
            .roles
            .get_mut(&role)
            .ok_or_else(ApiError::unknown_role)?;
        if let Some(name) = patch.name {
            entry.name = name;
        }
        if let Some(permissions) = patch.permissions {
            entry.permissions = permissions & permissions::ALL;
        }
        if let Some(color) = patch.color {
            entry.color = color;
        }
        if let Some(hoist) = patch.hoist {
            entry.hoist = hoist;
        }
        if let Some(mentionable) = patch.mentionable {
            entry.mentionable = mentionable;
        }
        if let Some(emoji) = patch.unicode_emoji {
            entry.unicode_emoji = emoji;
        }
        if let Some(position) = patch.position {
            entry.position = position;
        }
        let payload = json!({"guild_id": guild, "role": role_json(entry)});
        self.gateway
            .dispatch("GUILD_ROLE_UPDATE", Some(guild), intents::GUILDS, &payload);
        Ok(())
    }

    /// Deletes a role and takes it away from every member (Discord does not send
    /// member updates for that, so neither does the sim).
    pub fn delete_role(&mut self, guild: Snowflake, role: Snowflake) -> Result<(), ApiError> {
        if role == guild {
            return Err(ApiError::new(400, 50028, "Invalid Role"));
        }
        let state = self.guild_mut(guild)?;
        if state.roles.remove(&role).is_none() {
            return Err(ApiError::unknown_role());
        }
        for member in state.members.values_mut() {
            member.roles.retain(|r| *r != role);
        }
        for channel in state.channels.clone() {
            if let Some(c) = self.channels.get_mut(&channel) {
                c.channel.permission_overwrites.retain(|o| o.id != role);
            }
        }
        let payload = json!({"guild_id": guild, "role_id": role});
        self.gateway
            .dispatch("GUILD_ROLE_DELETE", Some(guild), intents::GUILDS, &payload);
        Ok(())
    }

    // ---- channels --------------------------------------------------------------

    pub fn create_channel(
        &mut self,
        ids: &SnowflakeGen,
        guild: Snowflake,
        spec: ChannelSpec,
    ) -> Result<Snowflake, ApiError> {
        if spec.kind == ChannelKind::Dm {
            return Err(ApiError::invalid_form(
                "type",
                "BASE_TYPE_CHOICES",
                "Value must be one of {0, 2, 4, 5, 13, 15}.",
            ));
        }
        let name = normalize_channel_name(&spec.name, spec.kind)?;
        self.check_parent(guild, spec.parent_id, spec.kind)?;
        let state = self.guild(guild)?;
        let position = spec.position.unwrap_or_else(|| {
            let siblings = state
                .channels
                .iter()
                .filter_map(|c| self.channels.get(c))
                .filter(|c| c.channel.parent_id == spec.parent_id)
                .count();
            i32::try_from(siblings).unwrap_or(i32::MAX)
        });
        let voice = matches!(spec.kind, ChannelKind::Voice | ChannelKind::Stage);
        let id = ids.next();
        let channel = Channel {
            id,
            guild_id: Some(guild),
            kind: spec.kind,
            name,
            topic: spec.topic,
            parent_id: spec.parent_id,
            position,
            nsfw: spec.nsfw,
            permission_overwrites: spec.permission_overwrites,
            rate_limit_per_user: spec.rate_limit_per_user,
            bitrate: voice.then(|| spec.bitrate.unwrap_or(64_000)),
            user_limit: voice.then(|| spec.user_limit.unwrap_or(0)),
            recipients: Vec::new(),
            last_message_id: None,
        };
        self.channels.insert(
            id,
            ChannelState {
                channel,
                messages: BTreeMap::new(),
            },
        );
        self.guild_mut(guild)?.channels.insert(id);
        let payload = self.channel_json(id)?;
        self.gateway
            .dispatch("CHANNEL_CREATE", Some(guild), intents::GUILDS, &payload);
        Ok(id)
    }

    fn check_parent(
        &self,
        guild: Snowflake,
        parent: Option<Snowflake>,
        kind: ChannelKind,
    ) -> Result<(), ApiError> {
        let Some(parent) = parent else {
            return Ok(());
        };
        let ok = kind != ChannelKind::Category
            && self.channels.get(&parent).is_some_and(|p| {
                p.channel.kind == ChannelKind::Category && p.channel.guild_id == Some(guild)
            });
        if ok {
            Ok(())
        } else {
            Err(ApiError::invalid_form(
                "parent_id",
                "CHANNEL_PARENT_INVALID",
                "Invalid parent channel",
            ))
        }
    }

    pub fn update_channel(&mut self, id: Snowflake, patch: ChannelPatch) -> Result<(), ApiError> {
        let (guild, kind) = {
            let c = &self.channel(id)?.channel;
            (c.guild_id, c.kind)
        };
        let Some(guild) = guild else {
            return Err(ApiError::new(
                400,
                50024,
                "Cannot execute action on this channel type",
            ));
        };
        let name = patch
            .name
            .as_deref()
            .map(|n| normalize_channel_name(n, kind))
            .transpose()?;
        if let Some(parent) = patch.parent_id {
            self.check_parent(guild, parent, kind)?;
        }
        let channel = &mut self.channel_mut(id)?.channel;
        if let Some(name) = name {
            channel.name = name;
        }
        if let Some(topic) = patch.topic {
            channel.topic = topic;
        }
        if let Some(parent) = patch.parent_id {
            channel.parent_id = parent;
        }
        if let Some(position) = patch.position {
            channel.position = position;
        }
        if let Some(nsfw) = patch.nsfw {
            channel.nsfw = nsfw;
        }
        if let Some(overwrites) = patch.permission_overwrites {
            channel.permission_overwrites = overwrites;
        }
        if let Some(rate) = patch.rate_limit_per_user {
            channel.rate_limit_per_user = rate;
        }
        if channel.bitrate.is_some() {
            if let Some(bitrate) = patch.bitrate {
                channel.bitrate = Some(bitrate);
            }
            if let Some(limit) = patch.user_limit {
                channel.user_limit = Some(limit);
            }
        }
        self.announce_channel_update(id)
    }

    pub fn announce_channel_update(&mut self, id: Snowflake) -> Result<(), ApiError> {
        let guild = self.channel(id)?.channel.guild_id;
        let payload = self.channel_json(id)?;
        self.gateway
            .dispatch("CHANNEL_UPDATE", guild, intents::GUILDS, &payload);
        Ok(())
    }

    /// Deletes a channel and its messages. Children of a deleted category lose their
    /// parent, as on Discord, each with a CHANNEL_UPDATE.
    pub fn delete_channel(&mut self, id: Snowflake) -> Result<Value, ApiError> {
        let payload = self.channel_json(id)?;
        let Some(state) = self.channels.remove(&id) else {
            return Err(ApiError::unknown_channel());
        };
        for message in state.messages.values() {
            self.forget_attachments(&message.attachments);
        }
        let guild = state.channel.guild_id;
        match guild {
            Some(guild) => {
                if let Some(g) = self.guilds.get_mut(&guild) {
                    g.channels.remove(&id);
                }
            }
            None => self.dms.retain(|_, channel| *channel != id),
        }
        self.gateway
            .dispatch("CHANNEL_DELETE", guild, intents::GUILDS, &payload);
        if state.channel.kind == ChannelKind::Category {
            let children: Vec<Snowflake> = self
                .channels
                .values()
                .filter(|c| c.channel.parent_id == Some(id))
                .map(|c| c.channel.id)
                .collect();
            for child in children {
                if let Some(c) = self.channels.get_mut(&child) {
                    c.channel.parent_id = None;
                }
                self.announce_channel_update(child)?;
            }
        }
        Ok(payload)
    }

    /// The bot's DM channel with `user`, created on first use.
    pub fn dm_channel(
        &mut self,
        ids: &SnowflakeGen,
        user: Snowflake,
    ) -> Result<Snowflake, ApiError> {
        self.user(user)?;
        if let Some(id) = self.dms.get(&user) {
            return Ok(*id);
        }
        let id = ids.next();
        self.channels.insert(
            id,
            ChannelState {
                channel: Channel {
                    id,
                    guild_id: None,
                    kind: ChannelKind::Dm,
                    name: String::new(),
                    topic: None,
                    parent_id: None,
                    position: 0,
                    nsfw: false,
                    permission_overwrites: Vec::new(),
                    rate_limit_per_user: 0,
                    bitrate: None,
                    user_limit: None,
                    recipients: vec![user],
                    last_message_id: None,
                },
                messages: BTreeMap::new(),
            },
        );
        self.dms.insert(user, id);
        Ok(id)
    }

    // ---- messages --------------------------------------------------------------

    /// Stores a message and announces it (unless ephemeral: Discord never sends
    /// ephemeral messages over the gateway).
    pub fn create_message(
        &mut self,
        ids: &SnowflakeGen,
        new: NewMessage,
    ) -> Result<Snowflake, ApiError> {
        let channel = &self.channel(new.channel_id)?.channel;
        if !channel.kind.is_textual() {
            return Err(ApiError::not_text_channel());
        }
        let guild_id = channel.guild_id;
        let id = ids.next();
        let (mentions, mention_roles, mention_everyone) =
            self.parse_mentions(guild_id, &new.content);
        let pings = pings(
            &mentions,
            &mention_roles,
            mention_everyone,
            new.allowed_mentions.as_ref(),
        );
        let message = Message {
            id,
            channel_id: new.channel_id,
            guild_id,
            author_id: new.author_id,
            content: new.content,
            embeds: new.embeds.into_iter().map(normalize_embed).collect(),
            components: new.components,
            attachments: new.attachments,
            flags: new.flags,
            kind: new.kind,
            timestamp: id.iso_timestamp(),
            edited_timestamp: None,
            tts: new.tts,
            pinned: false,
            mentions,
            mention_roles,
            mention_everyone,
            allowed_mentions: new.allowed_mentions,
            pings,
            nonce: new.nonce,
            message_reference: new.message_reference,
            interaction_metadata: new.interaction_metadata,
            webhook_id: new.webhook_id,
            application_id: new.application_id,
            visible_to: new.visible_to,
        };
        let ephemeral = message.is_ephemeral();
        for attachment in &message.attachments {
            self.attachment_index
                .insert(attachment.id, (new.channel_id, id));
        }
        let state = self.channel_mut(new.channel_id)?;
        state.messages.insert(id, message);
        if !ephemeral {
            state.channel.last_message_id = Some(id);
            self.announce_message("MESSAGE_CREATE", new.channel_id, id)?;
        }
        Ok(id)
    }

    fn announce_message(
        &mut self,
        event: &'static str,
        channel: Snowflake,
        id: Snowflake,
    ) -> Result<(), ApiError> {
        let guild = self.channel(channel)?.channel.guild_id;
        let intent = if guild.is_some() {
            intents::GUILD_MESSAGES
        } else {
            intents::DIRECT_MESSAGES
        };
        if !self.gateway.wanted(guild, intent) {
            return Ok(());
        }
        let message = self.message(channel, id)?;
        let payload = self.message_json(message, true);
        self.gateway.dispatch(event, guild, intent, &payload);
        Ok(())
    }

    pub fn edit_message(
        &mut self,
        channel: Snowflake,
        id: Snowflake,
        edit: MessageEdit,
    ) -> Result<(), ApiError> {
        let guild = self.channel(channel)?.channel.guild_id;
        let mentions = edit
            .content
            .as_deref()
            .map(|content| self.parse_mentions(guild, content));
        let message = self
            .channels
            .get_mut(&channel)
            .ok_or_else(ApiError::unknown_channel)?
            .messages
            .get_mut(&id)
            .ok_or_else(ApiError::unknown_message)?;
        if let Some(content) = edit.content {
            message.content = content;
        }
        if let Some((users, roles, everyone)) = mentions {
            message.pings = pings(&users, &roles, everyone, edit.allowed_mentions.as_ref());
            message.allowed_mentions = edit.allowed_mentions;
            message.mentions = users;
            message.mention_roles = roles;
            message.mention_everyone = everyone;
        }
        if let Some(embeds) = edit.embeds {
            message.embeds = embeds.into_iter().map(normalize_embed).collect();
        }
        if let Some(components) = edit.components {
            message.components = components;
        }
        let mut dropped = Vec::new();
        if let Some(attachments) = edit.attachments {
            let old = std::mem::replace(&mut message.attachments, attachments);
            dropped.extend(
                old.iter()
                    .map(|a| a.id)
                    .filter(|old| !message.attachments.iter().any(|a| a.id == *old)),
            );
            for attachment in &message.attachments {
                self.attachment_index.insert(attachment.id, (channel, id));
            }
        }
        if let Some(flags) = edit.flags {
            message.flags = flags;
        }
        if edit.mark_edited {
            message.edited_timestamp = Some(time::now_iso());
        }
        let ephemeral = message.is_ephemeral();
        for old in dropped {
            self.attachment_index.remove(&old);
            self.attachment_data.remove(&old);
        }
        if !ephemeral {
            self.announce_message("MESSAGE_UPDATE", channel, id)?;
        }
        Ok(())
    }

    /// Drops the bytes and the index entries of attachments whose message is gone.
    fn forget_attachments(&mut self, attachments: &[Attachment]) {
        for attachment in attachments {
            self.attachment_data.remove(&attachment.id);
            self.attachment_index.remove(&attachment.id);
        }
    }

    pub fn delete_message(&mut self, channel: Snowflake, id: Snowflake) -> Result<(), ApiError> {
        let state = self.channel_mut(channel)?;
        let guild = state.channel.guild_id;
        let message = state
            .messages
            .remove(&id)
            .ok_or_else(ApiError::unknown_message)?;
        self.forget_attachments(&message.attachments);
        if !message.is_ephemeral() {
            self.dispatch_deletion(
                "MESSAGE_DELETE",
                guild,
                json!({"id": id, "channel_id": channel}),
            );
        }
        Ok(())
    }

    /// A new attachment of a message in `channel`, its bytes stored if it has any.
    /// The caller stores the message, which indexes the attachment.
    pub fn new_attachment(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        channel: Snowflake,
        spec: AttachmentSpec,
    ) -> Attachment {
        let id = ids.next();
        let url = format!(
            "{}/attachments/{channel}/{id}/{}",
            ctx.http_url(),
            spec.filename
        );
        let size = spec.size.unwrap_or(spec.data.len() as u64);
        if !spec.data.is_empty() {
            self.attachment_data.insert(id, Arc::from(spec.data));
        }
        Attachment {
            id,
            filename: spec.filename,
            content_type: spec.content_type,
            size,
            proxy_url: url.clone(),
            url,
            width: spec.width,
            height: spec.height,
            duration_secs: spec.duration_secs,
            description: None,
        }
    }

    /// Stores `messages` as the newest part of `channel`'s history, oldest first,
    /// without announcing anything (they were sent before the bot looked). The
    /// caller has checked the channel and the authors. Ids are minted in order, so
    /// they are newer than the channel and everything in it, and older than anything
    /// created afterwards.
    pub fn seed_history(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        channel: Snowflake,
        messages: Vec<SeedMessage>,
    ) -> Result<Vec<Snowflake>, ApiError> {
        let guild_id = self.channel(channel)?.channel.guild_id;
        let mut minted = Vec::with_capacity(messages.len());
        // Collected, then built into a tree at once: inserting in order one by one
        // would leave every node half empty (twice the memory).
        let mut batch = Vec::with_capacity(messages.len());
        // Formatting a timestamp is the costly part of a message; ids minted in the
        // same millisecond share one.
        let mut stamp = (u64::MAX, String::new());
        for seed in messages {
            let id = ids.next();
            let ms = id.timestamp_ms();
            if ms != stamp.0 {
                stamp = (ms, time::iso_from_unix_ms(ms));
            }
            let attachments: Vec<Attachment> = seed
                .attachments
                .into_iter()
                .map(|spec| self.new_attachment(ctx, ids, channel, spec))
                .collect();
            for attachment in &attachments {
                self.attachment_index.insert(attachment.id, (channel, id));
            }
            let (mentions, mention_roles, mention_everyone) =
                self.parse_mentions(guild_id, &seed.content);
            let pings = pings(&mentions, &mention_roles, mention_everyone, None);
            batch.push((
                id,
                Message {
                    id,
                    channel_id: channel,
                    guild_id,
                    author_id: seed.author,
                    content: seed.content,
                    embeds: Vec::new(),
                    components: Vec::new(),
                    attachments,
                    flags: 0,
                    kind: 0,
                    timestamp: stamp.1.clone(),
                    edited_timestamp: None,
                    tts: false,
                    pinned: false,
                    mentions,
                    mention_roles,
                    mention_everyone,
                    allowed_mentions: None,
                    pings,
                    nonce: None,
                    message_reference: None,
                    interaction_metadata: None,
                    webhook_id: None,
                    application_id: None,
                    visible_to: None,
                },
            ));
            minted.push(id);
        }
        let mut batch: BTreeMap<Snowflake, Message> = batch.into_iter().collect();
        let state = self.channel_mut(channel)?;
        state.messages.append(&mut batch);
        if let Some(last) = minted.last() {
            state.channel.last_message_id = Some(*last);
        }
        Ok(minted)
    }

    /// Deletes those of `ids` that are messages of `channel` and announces them in
    /// one MESSAGE_DELETE_BULK. Returns the ids deleted (unknown ones are skipped,
    /// as Discord does).
    pub fn bulk_delete(
        &mut self,
        channel: Snowflake,
        ids: &[Snowflake],
    ) -> Result<Vec<Snowflake>, ApiError> {
        let state = self.channel_mut(channel)?;
        let guild = state.channel.guild_id;
        let mut removed = Vec::new();
        for id in ids {
            if state.messages.get(id).is_some_and(|m| !m.is_ephemeral())
                && let Some(message) = state.messages.remove(id)
            {
                removed.push(message);
            }
        }
        let deleted: Vec<Snowflake> = removed.iter().map(|m| m.id).collect();
        for message in &removed {
            self.forget_attachments(&message.attachments);
        }
        if !deleted.is_empty() {
            let payload = json!({"ids": deleted, "channel_id": channel});
            self.dispatch_deletion("MESSAGE_DELETE_BULK", guild, payload);
        }
        Ok(deleted)
    }

    /// Dispatches a message deletion (`MESSAGE_DELETE`, `MESSAGE_DELETE_BULK`) with the
    /// guild's id when there is one, to the sessions with the matching message intent.
    fn dispatch_deletion(
        &mut self,
        event: &'static str,
        guild: Option<Snowflake>,
        mut payload: Value,
    ) {
        if let Some(guild) = guild {
            insert(&mut payload, "guild_id", json!(guild));
        }
        let intent = if guild.is_some() {
            intents::GUILD_MESSAGES
        } else {
            intents::DIRECT_MESSAGES
        };
        self.gateway.dispatch(event, guild, intent, &payload);
    }

    /// Renames a guild or changes its icon and announces GUILD_UPDATE.
    pub fn update_guild(
        &mut self,
        guild: Snowflake,
        name: Option<String>,
        icon: Option<Option<String>>,
    ) -> Result<(), ApiError> {
        let state = self.guild_mut(guild)?;
        if let Some(name) = name {
            state.guild.name = name;
        }
        if let Some(icon) = icon {
            state.guild.icon = icon;
        }
        let payload = self.guild_json(guild)?;
        self.gateway
            .dispatch("GUILD_UPDATE", Some(guild), intents::GUILDS, &payload);
        Ok(())
    }

    /// The bot is kicked from (or leaves) `guild`: it stops being a member, gets
    /// GUILD_DELETE without `unavailable` (Discord's sign of a removal rather than an
    /// outage), and hears nothing more about the guild until it is added again.
    pub fn remove_bot(&mut self, ctx: &Ctx, guild: Snowflake) -> Result<(), ApiError> {
        let state = self.guild_mut(guild)?;
        if state.members.remove(&ctx.bot_id).is_none() {
            return Err(ApiError::unknown_member());
        }
        state.voice.remove(&ctx.bot_id);
        let payload = json!({"id": guild});
        self.gateway
            .dispatch("GUILD_DELETE", Some(guild), intents::GUILDS, &payload);
        self.gateway.bot_absent.insert(guild);
        Ok(())
    }

    /// Whether the bot may not see `guild` (it is not a member).
    pub fn bot_absent(&self, guild: Snowflake) -> bool {
        self.gateway.bot_absent.contains(&guild)
    }

    /// A copy of `message` whose attachment URLs are freshly signed, as every view
    /// of a message on Discord is.
    pub fn signed_message(&self, message: &Message) -> Message {
        let mut copy = message.clone();
        for attachment in &mut copy.attachments {
            attachment.url = self
                .cdn
                .sign(&attachment.url, message.channel_id, attachment.id);
            attachment.proxy_url =
                self.cdn
                    .sign(&attachment.proxy_url, message.channel_id, attachment.id);
        }
        copy
    }

    /// An attachment object with freshly signed URLs.
    pub fn attachment_json(&self, channel: Snowflake, a: &Attachment) -> Value {
        let url = self.cdn.sign(&a.url, channel, a.id);
        let proxy_url = self.cdn.sign(&a.proxy_url, channel, a.id);
        attachment_json_with(a, &url, &proxy_url)
    }

    /// The message `author` created with `nonce` in the last few minutes, if any
    /// (Discord's `enforce_nonce`).
    pub fn message_by_nonce(
        &self,
        author: Snowflake,
        nonce: &str,
    ) -> Option<(Snowflake, Snowflake)> {
        let (message, used) = self.nonces.get(&(author, nonce.to_owned()))?;
        (used.at.elapsed() < NONCE_MEMORY).then_some((used.channel, *message))
    }

    /// Remembers that `author` created `message` with `nonce`.
    pub fn remember_nonce(
        &mut self,
        author: Snowflake,
        nonce: String,
        channel: Snowflake,
        message: Snowflake,
    ) {
        let now = std::time::Instant::now();
        if self.nonces.len() > 4096 {
            self.nonces
                .retain(|_, (_, used)| now.duration_since(used.at) < NONCE_MEMORY);
        }
        self.nonces
            .insert((author, nonce), (message, Channelled { channel, at: now }));
    }

    /// `<@id>`/`<@!id>` user mentions, `<@&id>` role mentions and `@everyone`.
    fn parse_mentions(
        &self,
        guild: Option<Snowflake>,
        content: &str,
    ) -> (Vec<Snowflake>, Vec<Snowflake>, bool) {
        let mut users = Vec::new();
        let mut roles = Vec::new();
        let mut rest = content;
        while let Some(start) = rest.find("<@") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find('>') else { break };
            let inner = &rest[..end];
            let (is_role, digits) = match inner.as_bytes().first() {
                Some(b'&') => (true, &inner[1..]),
                Some(b'!') => (false, &inner[1..]),
                _ => (false, inner),
            };
            if let Ok(id) = digits.parse::<u64>().map(Snowflake::new) {
                if is_role {
                    let known = guild
                        .and_then(|g| self.guilds.get(&g))
                        .is_some_and(|g| g.roles.contains_key(&id));
                    if known && !roles.contains(&id) {
                        roles.push(id);
                    }
                } else if self.users.contains_key(&id) && !users.contains(&id) {
                    users.push(id);
                }
            }
            rest = &rest[end..];
        }
        (
            users,
            roles,
            content.contains("@everyone") || content.contains("@here"),
        )
    }

    // ---- permissions -----------------------------------------------------------

    /// Effective permissions of `user` in `guild`, and in `channel` if given, with
    /// Discord's algorithm: owner and ADMINISTRATOR get everything; otherwise
    /// `@everyone` | member roles, then the channel's `@everyone`, role and member
    /// overwrites in that order.
    pub fn permissions(
        &self,
        guild: Snowflake,
        user: Snowflake,
        channel: Option<Snowflake>,
    ) -> u64 {
        let Some(g) = self.guilds.get(&guild) else {
            return 0;
        };
        if g.guild.owner_id == user {
            return permissions::ALL;
        }
        let Some(member) = g.members.get(&user) else {
            return 0;
        };
        let mut perms = g.roles.get(&guild).map_or(0, |r| r.permissions);
        for role in &member.roles {
            perms |= g.roles.get(role).map_or(0, |r| r.permissions);
        }
        if perms & permissions::ADMINISTRATOR != 0 {
            return permissions::ALL;
        }
        let Some(channel) = channel.and_then(|c| self.channels.get(&c)) else {
            return perms;
        };
        let overwrites = &channel.channel.permission_overwrites;
        if let Some(everyone) = overwrites.iter().find(|o| o.id == guild) {
            perms = (perms & !everyone.deny) | everyone.allow;
        }
        let (mut allow, mut deny) = (0, 0);
        for o in overwrites
            .iter()
            .filter(|o| o.kind == OverwriteKind::Role && member.roles.contains(&o.id))
        {
            allow |= o.allow;
            deny |= o.deny;
        }
        perms = (perms & !deny) | allow;
        if let Some(o) = overwrites
            .iter()
            .find(|o| o.kind == OverwriteKind::Member && o.id == user)
        {
            perms = (perms & !o.deny) | o.allow;
        }
        perms
    }

    // ---- Discord-shaped JSON ---------------------------------------------------

    pub fn user_json(&self, id: Snowflake) -> Value {
        match self.users.get(&id) {
            Some(user) => user_json(user),
            None => user_json(&User {
                id,
                name: "deleted_user".to_owned(),
                global_name: None,
                bot: false,
            }),
        }
    }

    /// A guild member object; `with_user` adds the nested user (absent in
    /// MESSAGE_CREATE's `member`, present everywhere else).
    pub fn member_json(
        &self,
        guild: Snowflake,
        user: Snowflake,
        with_user: bool,
    ) -> Result<Value, ApiError> {
        let member = self.member(guild, user)?;
        let mut value = json!({
            "nick": member.nick,
            "avatar": null,
            "banner": null,
            "roles": member.roles,
            "joined_at": member.joined_at,
            "premium_since": null,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "communication_disabled_until": null,
        });
        if with_user {
            insert(&mut value, "user", self.user_json(user));
        }
        Ok(value)
    }

    pub fn channel_json(&self, id: Snowflake) -> Result<Value, ApiError> {
        let c = &self.channel(id)?.channel;
        let mut value = json!({
            "id": c.id,
            "type": c.kind.code(),
            "flags": 0,
            "last_message_id": c.last_message_id,
        });
        if c.kind == ChannelKind::Dm {
            let recipients: Vec<Value> = c.recipients.iter().map(|u| self.user_json(*u)).collect();
            insert(&mut value, "recipients", Value::Array(recipients));
            return Ok(value);
        }
        let overwrites: Vec<Value> = c.permission_overwrites.iter().map(overwrite_json).collect();
        let map = object(&mut value);
        map.insert("guild_id".into(), json!(c.guild_id));
        map.insert("name".into(), json!(c.name));
        map.insert("position".into(), json!(c.position));
        map.insert("permission_overwrites".into(), Value::Array(overwrites));
        map.insert("parent_id".into(), json!(c.parent_id));
        map.insert("nsfw".into(), json!(c.nsfw));
        match c.kind {
            ChannelKind::Voice | ChannelKind::Stage => {
                map.insert("bitrate".into(), json!(c.bitrate.unwrap_or(64_000)));
                map.insert("user_limit".into(), json!(c.user_limit.unwrap_or(0)));
                map.insert("rtc_region".into(), Value::Null);
                map.insert("rate_limit_per_user".into(), json!(c.rate_limit_per_user));
            }
            ChannelKind::Category => {}
            _ => {
                map.insert("topic".into(), json!(c.topic));
                map.insert("rate_limit_per_user".into(), json!(c.rate_limit_per_user));
            }
        }
        Ok(value)
    }

    /// The guild object of `GET /guilds/{id}`.
    pub fn guild_json(&self, id: Snowflake) -> Result<Value, ApiError> {
        let g = self.guild(id)?;
        let mut roles: Vec<&Role> = g.roles.values().collect();
        roles.sort_by_key(|r| (r.position, r.id));
        Ok(json!({
            "id": g.guild.id,
            "name": g.guild.name,
            "icon": g.guild.icon,
            "icon_hash": g.guild.icon,
            "splash": null,
            "discovery_splash": null,
            "owner_id": g.guild.owner_id,
            "afk_channel_id": null,
            "afk_timeout": 300,
            "widget_enabled": false,
            "widget_channel_id": null,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": roles.into_iter().map(role_json).collect::<Vec<_>>(),
            "emojis": [],
            "features": [],
            "mfa_level": 0,
            "application_id": null,
            "system_channel_id": null,
            "system_channel_flags": 0,
            "rules_channel_id": null,
            "max_presences": null,
            "max_members": 500_000,
            "vanity_url_code": null,
            "description": null,
            "banner": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": g.guild.preferred_locale,
            "public_updates_channel_id": null,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "stickers": [],
            "premium_progress_bar_enabled": false,
            "safety_alerts_channel_id": null,
        }))
    }

    /// The full guild object of GUILD_CREATE, with channels, members and the
    /// gateway-only fields.
    pub fn guild_create_json(&self, id: Snowflake) -> Value {
        let Ok(mut value) = self.guild_json(id) else {
            return Value::Null;
        };
        let Some(g) = self.guilds.get(&id) else {
            return Value::Null;
        };
        let channels: Vec<Value> = g
            .channels
            .iter()
            .filter_map(|c| self.channel_json(*c).ok())
            .collect();
        let members: Vec<Value> = g
            .members
            .keys()
            .filter_map(|u| self.member_json(id, *u, true).ok())
            .collect();
        let joined_at = g
            .members
            .values()
            .find(|m| self.users.get(&m.user_id).is_some_and(|u| u.bot))
            .map_or_else(|| id.iso_timestamp(), |m| m.joined_at.clone());
        let map = object(&mut value);
        map.insert("joined_at".into(), json!(joined_at));
        map.insert("large".into(), json!(false));
        map.insert("unavailable".into(), json!(false));
        map.insert("member_count".into(), json!(g.members.len()));
        let voice: Vec<Value> = g
            .voice
            .iter()
            .map(|(user, channel)| voice_state_json(id, *user, Some(*channel)))
            .collect();
        map.insert("voice_states".into(), Value::Array(voice));
        map.insert("members".into(), Value::Array(members));
        map.insert("channels".into(), Value::Array(channels));
        map.insert("threads".into(), json!([]));
        map.insert("presences".into(), json!([]));
        map.insert("stage_instances".into(), json!([]));
        map.insert("guild_scheduled_events".into(), json!([]));
        map.insert("soundboard_sounds".into(), json!([]));
        value
    }

    /// A message object. `for_gateway` adds what MESSAGE_CREATE carries beyond the
    /// REST object (`guild_id`, `member`).
    pub fn message_json(&self, m: &Message, for_gateway: bool) -> Value {
        let mentions: Vec<Value> = m
            .mentions
            .iter()
            .map(|u| {
                let mut user = self.user_json(*u);
                if let Some(member) = m.guild_id.and_then(|g| self.member_json(g, *u, false).ok()) {
                    insert(&mut user, "member", member);
                }
                user
            })
            .collect();
        let embeds = if m.flags & message_flags::SUPPRESS_EMBEDS != 0 {
            Vec::new()
        } else {
            m.embeds.clone()
        };
        let mut value = json!({
            "id": m.id,
            "channel_id": m.channel_id,
            "author": self.user_json(m.author_id),
            "content": m.content,
            "timestamp": m.timestamp,
            "edited_timestamp": m.edited_timestamp,
            "tts": m.tts,
            "mention_everyone": m.mention_everyone,
            "mentions": mentions,
            "mention_roles": m.mention_roles,
            "attachments": m.attachments.iter().map(|a| self.attachment_json(m.channel_id, a)).collect::<Vec<_>>(),
            "embeds": embeds,
            "components": m.components,
            "pinned": m.pinned,
            "type": m.kind,
            "flags": m.flags,
        });
        let map = object(&mut value);
        if let Some(webhook) = m.webhook_id {
            map.insert("webhook_id".into(), json!(webhook));
        }
        if let Some(app) = m.application_id {
            map.insert("application_id".into(), json!(app));
        }
        if let Some(nonce) = &m.nonce {
            map.insert("nonce".into(), json!(nonce));
        }
        if let Some(reference) = &m.message_reference {
            map.insert(
                "message_reference".into(),
                json!({
                    "type": 0,
                    "message_id": reference.message_id,
                    "channel_id": reference.channel_id,
                    "guild_id": reference.guild_id,
                }),
            );
            let referenced = reference
                .message_id
                .and_then(|r| self.message(reference.channel_id, r).ok())
                .map_or(Value::Null, |r| self.message_json_shallow(r));
            map.insert("referenced_message".into(), referenced);
        }
        if let Some(meta) = &m.interaction_metadata {
            let user = self.user_json(meta.user_id);
            let owners = match m.guild_id {
                Some(guild) => json!({"0": guild}),
                None => json!({"0": "0"}),
            };
            let mut metadata = json!({
                "id": meta.id,
                "type": meta.kind,
                "user": user,
                "authorizing_integration_owners": owners,
            });
            let meta_map = object(&mut metadata);
            if let Some(name) = &meta.name {
                meta_map.insert("name".into(), json!(name));
            }
            if let Some(id) = meta.interacted_message_id {
                meta_map.insert("interacted_message_id".into(), json!(id));
            }
            if let Some(id) = meta.original_response_message_id {
                meta_map.insert("original_response_message_id".into(), json!(id));
            }
            map.insert("interaction_metadata".into(), metadata);
            if let Some(name) = &meta.name {
                map.insert(
                    "interaction".into(),
                    json!({"id": meta.id, "type": meta.kind, "name": name, "user": user}),
                );
            }
        }
        if for_gateway && let Some(guild) = m.guild_id {
            map.insert("guild_id".into(), json!(guild));
            if m.webhook_id.is_none()
                && let Ok(member) = self.member_json(guild, m.author_id, false)
            {
                map.insert("member".into(), member);
            }
        }
        value
    }

    /// A referenced message is rendered one level deep only, as Discord does.
    fn message_json_shallow(&self, m: &Message) -> Value {
        let mut value = self.message_json(m, false);
        if let Some(map) = value.as_object_mut() {
            map.remove("referenced_message");
        }
        value
    }

    pub fn role_json(&self, guild: Snowflake, role: Snowflake) -> Result<Value, ApiError> {
        self.guild(guild)?
            .roles
            .get(&role)
            .map(role_json)
            .ok_or_else(ApiError::unknown_role)
    }

    /// Current user object (READY and `GET /users/@me`).
    pub fn current_user_json(&self, ctx: &Ctx) -> Value {
        let mut user = self.user_json(ctx.bot_id);
        let map = object(&mut user);
        map.insert("verified".into(), json!(true));
        map.insert("mfa_enabled".into(), json!(false));
        map.insert("flags".into(), json!(0));
        map.insert("locale".into(), json!("en-US"));
        map.insert("email".into(), Value::Null);
        user
    }

    /// `GET /users/@me` for an OAuth2 bearer token: the user the token was issued
    /// to; `email` stays null (sim users have none) and is only present with the
    /// `email` scope, as on Discord.
    pub fn oauth_user_json(&self, user: Snowflake, with_email: bool) -> Value {
        let mut value = self.user_json(user);
        let map = object(&mut value);
        map.insert("verified".into(), json!(true));
        map.insert("mfa_enabled".into(), json!(false));
        map.insert("flags".into(), json!(0));
        map.insert("premium_type".into(), json!(0));
        map.insert("locale".into(), json!("en-US"));
        if with_email {
            map.insert("email".into(), Value::Null);
        }
        value
    }

    /// `GET /users/@me/guilds`: the partial guilds `user` is a member of, with
    /// `owner` and the user's guild-level `permissions`, ordered by id as Discord
    /// pages them.
    pub fn user_guilds_json(&self, user: Snowflake) -> Value {
        let guilds: Vec<Value> = self
            .guilds
            .values()
            .filter(|g| g.members.contains_key(&user))
            .map(|g| {
                json!({
                    "id": g.guild.id,
                    "name": g.guild.name,
                    "icon": g.guild.icon,
                    "banner": null,
                    "owner": g.guild.owner_id == user,
                    "permissions": self.permissions(g.guild.id, user, None).to_string(),
                    "features": [],
                })
            })
            .collect();
        Value::Array(guilds)
    }

    pub fn log_request(&mut self, record: RequestRecord, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.requests.len() >= capacity {
            self.requests.pop_front();
        }
        self.requests.push_back(record);
    }
}

pub(crate) fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "username": user.name,
        "discriminator": "0",
        "global_name": user.global_name,
        "avatar": null,
        "avatar_decoration_data": null,
        "banner": null,
        "accent_color": null,
        "bot": user.bot,
        "system": false,
        "public_flags": 0,
        "primary_guild": null,
    })
}

pub(crate) fn role_json(role: &Role) -> Value {
    let mut value = json!({
        "id": role.id,
        "name": role.name,
        "color": role.color,
        "colors": {"primary_color": role.color, "secondary_color": null, "tertiary_color": null},
        "hoist": role.hoist,
        "icon": null,
        "unicode_emoji": role.unicode_emoji,
        "position": role.position,
        "permissions": role.permissions.to_string(),
        "managed": role.managed,
        "mentionable": role.mentionable,
        "flags": 0,
    });
    if let Some(bot) = role.bot_id {
        insert(&mut value, "tags", json!({"bot_id": bot}));
    }
    value
}

pub(crate) fn overwrite_json(o: &PermissionOverwrite) -> Value {
    json!({
        "id": o.id,
        "type": u8::from(o.kind),
        "allow": o.allow.to_string(),
        "deny": o.deny.to_string(),
    })
}

/// An attachment object with the given (signed) URLs.
fn attachment_json_with(a: &Attachment, url: &str, proxy_url: &str) -> Value {
    let mut value = json!({
        "id": a.id,
        "filename": a.filename,
        "size": a.size,
        "url": url,
        "proxy_url": proxy_url,
        "content_type": a.content_type,
    });
    let map = object(&mut value);
    if let Some(description) = &a.description {
        map.insert("description".into(), json!(description));
    }
    if let Some(width) = a.width {
        map.insert("width".into(), json!(width));
    }
    if let Some(height) = a.height {
        map.insert("height".into(), json!(height));
    }
    if let Some(duration) = a.duration_secs {
        map.insert("duration_secs".into(), json!(duration));
    }
    value
}

/// Discord fills in `"type": "rich"` for embeds sent without one, and twilight
/// requires it.
fn normalize_embed(mut embed: Value) -> Value {
    if let Some(map) = embed.as_object_mut() {
        map.entry("type").or_insert_with(|| json!("rich"));
    }
    embed
}

/// Discord lowercases text channel names and turns spaces into dashes; names are
/// 1-100 characters.
fn normalize_channel_name(name: &str, kind: ChannelKind) -> Result<String, ApiError> {
    let trimmed = name.trim();
    let len = trimmed.chars().count();
    if !(1..=100).contains(&len) {
        return Err(ApiError::invalid_form(
            "name",
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 100 in length.",
        ));
    }
    Ok(match kind {
        ChannelKind::Text | ChannelKind::Announcement | ChannelKind::Forum => trimmed
            .chars()
            .map(|c| if c.is_whitespace() { '-' } else { c })
            .flat_map(char::to_lowercase)
            .collect(),
        _ => trimmed.to_owned(),
    })
}

/// The map inside a JSON object built by `json!({...})`.
pub(crate) fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

pub(crate) fn insert(value: &mut Value, key: &str, field: Value) {
    object(value).insert(key.to_owned(), field);
}

/// How long `enforce_nonce` remembers a nonce ("the past few minutes").
const NONCE_MEMORY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Who a message notifies, by Discord's rules for `allowed_mentions`: absent, every
/// mention in the content pings; present, `parse` names the kinds that ping
/// (`users`, `roles`, `everyone`) and `users` / `roles` list the only ids that may.
pub(crate) fn pings(
    users: &[Snowflake],
    roles: &[Snowflake],
    everyone: bool,
    allowed: Option<&Value>,
) -> crate::model::Pings {
    let Some(allowed) = allowed.filter(|a| !a.is_null()) else {
        return crate::model::Pings {
            users: users.to_vec(),
            roles: roles.to_vec(),
            everyone,
        };
    };
    let parse: Vec<&str> = allowed
        .get("parse")
        .and_then(Value::as_array)
        .map(|kinds| kinds.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let listed = |key: &str| -> Vec<Snowflake> {
        allowed
            .get(key)
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| serde_json::from_value(id.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (allowed_users, allowed_roles) = (listed("users"), listed("roles"));
    crate::model::Pings {
        users: users
            .iter()
            .copied()
            .filter(|u| parse.contains(&"users") || allowed_users.contains(u))
            .collect(),
        roles: roles
            .iter()
            .copied()
            .filter(|r| parse.contains(&"roles") || allowed_roles.contains(r))
            .collect(),
        everyone: everyone && parse.contains(&"everyone"),
    }
}

/// A voice state as the gateway sends it.
fn voice_state_json(guild: Snowflake, user: Snowflake, channel: Option<Snowflake>) -> Value {
    json!({
        "guild_id": guild,
        "channel_id": channel,
        "user_id": user,
        "session_id": format!("voice-{user}"),
        "deaf": false,
        "mute": false,
        "self_deaf": false,
        "self_mute": false,
        "self_stream": false,
        "self_video": false,
        "suppress": false,
        "request_to_speak_timestamp": null,
    })
}
