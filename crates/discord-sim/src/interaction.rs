//! Interactions: what a simulated user does (slash command, button, select, modal)
//! and the handle a test uses to wait for the bot's answer.
//!
//! Each interaction carries a `watch` channel that the REST callback/webhook routes
//! update while they hold the state lock; a waiting test wakes up as soon as the reply
//! is stored, without polling. `dispatched_at` and `callback_at` are taken at the two
//! ends so benches can measure dispatch -> callback latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::Snowflake;
use crate::error::SimError;
use crate::model::{ChannelKind, ComponentSummary, Message, message_flags};
use crate::snowflake::SnowflakeGen;
use crate::state::{ATTACHMENT_SIZE_LIMIT, Ctx, State, insert, object, role_json};

/// Interaction types (Discord's `type` of an interaction).
pub(crate) mod kind {
    pub const APPLICATION_COMMAND: u8 = 2;
    pub const MESSAGE_COMPONENT: u8 = 3;
    pub const APPLICATION_COMMAND_AUTOCOMPLETE: u8 = 4;
    pub const MODAL_SUBMIT: u8 = 5;
}

/// Where an [`InteractionReply`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplySource {
    /// `POST /interactions/{id}/{token}/callback`.
    Callback,
    /// `PATCH /webhooks/{app}/{token}/messages/@original`.
    EditOriginal,
    /// `POST /webhooks/{app}/{token}`.
    Followup,
    /// `PATCH /webhooks/{app}/{token}/messages/{id}` of a follow-up.
    EditFollowup,
}

/// What the bot answered to an interaction, flattened for assertions.
#[derive(Clone, Debug, PartialEq)]
pub struct InteractionReply {
    pub interaction_id: Snowflake,
    pub source: ReplySource,
    /// Type of the interaction's initial callback (4 message, 5 deferred message,
    /// 6 deferred update, 7 update message, 9 modal, ...).
    pub callback_type: u8,
    /// The message created or edited, if any (none for 6 and 9).
    pub message_id: Option<Snowflake>,
    /// The message's content after this reply (`None` if there is no message).
    pub content: Option<String>,
    pub embeds: Vec<Value>,
    /// Buttons and selects, flattened out of their action rows.
    pub components: Vec<ComponentSummary>,
    /// Components as sent.
    pub raw_components: Vec<Value>,
    pub flags: u64,
    pub ephemeral: bool,
    /// `allowed_mentions` as the bot sent it with this reply (`None`: absent, so every
    /// mention in the content pings).
    pub allowed_mentions: Option<Value>,
    /// Who the message notifies after this reply (nobody for a reply without a
    /// message).
    pub pings: crate::model::Pings,
    /// The request's `data` (callback) or body (webhook), as sent by the bot. For a
    /// modal (type 9) this holds `custom_id`, `title` and `components`.
    pub data: Value,
    /// When the sim received this reply.
    pub callback_at: Instant,
}

impl InteractionReply {
    pub(crate) fn from_message(
        interaction_id: Snowflake,
        source: ReplySource,
        callback_type: u8,
        message: Option<&Message>,
        data: Value,
        callback_at: Instant,
    ) -> Self {
        match message {
            Some(m) => Self {
                interaction_id,
                source,
                callback_type,
                message_id: Some(m.id),
                content: Some(m.content.clone()),
                embeds: m.embeds.clone(),
                components: m.component_summaries(),
                raw_components: m.components.clone(),
                flags: m.flags,
                ephemeral: m.is_ephemeral(),
                allowed_mentions: data
                    .get("allowed_mentions")
                    .filter(|a| !a.is_null())
                    .cloned(),
                pings: m.pings.clone(),
                data,
                callback_at,
            },
            None => {
                let flags = data.get("flags").and_then(Value::as_u64).unwrap_or(0);
                let raw_components = data
                    .get("components")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                Self {
                    interaction_id,
                    source,
                    callback_type,
                    message_id: None,
                    content: None,
                    embeds: Vec::new(),
                    components: ComponentSummary::flatten(&raw_components),
                    raw_components,
                    flags,
                    ephemeral: flags & message_flags::EPHEMERAL != 0,
                    allowed_mentions: data
                        .get("allowed_mentions")
                        .filter(|a| !a.is_null())
                        .cloned(),
                    pings: crate::model::Pings::default(),
                    data,
                    callback_at,
                }
            }
        }
    }
}

/// Latest replies, published through the interaction's watch channel.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// The initial callback.
    pub response: Option<Arc<InteractionReply>>,
    /// The reply that completes the interaction: the callback itself for 4/7/9, the
    /// first @original edit or follow-up for 5/6.
    pub final_reply: Option<Arc<InteractionReply>>,
}

/// Server-side record of a dispatched interaction.
#[derive(Debug)]
pub(crate) struct InteractionState {
    pub id: Snowflake,
    pub token: String,
    pub kind: u8,
    pub user_id: Snowflake,
    pub channel_id: Snowflake,
    pub guild_id: Option<Snowflake>,
    pub command_name: Option<String>,
    /// The message a component (or the modal opened from it) was on.
    pub source_message: Option<Snowflake>,
    pub dispatched_at: Instant,
    pub callback_type: Option<u8>,
    /// Every callback request, including rejected ones.
    pub callback_attempts: u32,
    /// Accepted callbacks (0 or 1).
    pub answered: u32,
    /// The response message: created by callback 4/5, or the component's message for
    /// 6/7.
    pub original_message: Option<Snowflake>,
    pub followups: Vec<Snowflake>,
    /// `data` of a type 9 (modal) response.
    pub modal: Option<Value>,
    pub replies: Vec<Arc<InteractionReply>>,
    pub progress: watch::Sender<Progress>,
}

impl InteractionState {
    /// Records a reply and wakes whoever waits for it.
    pub fn publish(&mut self, reply: InteractionReply, is_callback: bool) {
        let reply = Arc::new(reply);
        self.replies.push(Arc::clone(&reply));
        let completes = match reply.callback_type {
            5 | 6 => !is_callback,
            _ => true,
        };
        self.progress.send_modify(|p| {
            if is_callback {
                p.response = Some(Arc::clone(&reply));
            }
            if completes && p.final_reply.is_none() {
                p.final_reply = Some(reply);
            }
        });
    }

    /// The `interaction_metadata` for messages sent in response.
    pub fn metadata(
        &self,
        original_response: Option<Snowflake>,
    ) -> crate::model::MessageInteractionMetadata {
        crate::model::MessageInteractionMetadata {
            id: self.id,
            kind: self.kind,
            user_id: self.user_id,
            name: self.command_name.clone(),
            interacted_message_id: self.source_message,
            original_response_message_id: original_response,
        }
    }
}

/// A dispatched interaction, from the simulated user's side.
#[derive(Clone, Debug)]
pub struct Interaction {
    id: Snowflake,
    token: String,
    kind: u8,
    channel_id: Snowflake,
    user_id: Snowflake,
    payload: Arc<Value>,
    rx: watch::Receiver<Progress>,
    /// When INTERACTION_CREATE was handed to the gateway sessions.
    pub dispatched_at: Instant,
}

impl Interaction {
    pub fn id(&self) -> Snowflake {
        self.id
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Interaction type: 2 command, 3 component, 5 modal submit.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    pub fn channel_id(&self) -> Snowflake {
        self.channel_id
    }

    pub fn user_id(&self) -> Snowflake {
        self.user_id
    }

    /// The INTERACTION_CREATE payload (`d`) that was dispatched.
    pub fn payload(&self) -> &Value {
        &self.payload
    }

    /// Waits for the initial callback.
    pub async fn response(&self, timeout: Duration) -> Result<InteractionReply, SimError> {
        self.wait(timeout, |p| p.response.as_deref()).await
    }

    /// Waits until the interaction is complete: for deferred callbacks (5, 6) the
    /// first edit of @original or follow-up; otherwise the callback itself.
    pub async fn final_response(&self, timeout: Duration) -> Result<InteractionReply, SimError> {
        self.wait(timeout, |p| p.final_reply.as_deref()).await
    }

    /// Whether the initial callback has arrived, without waiting.
    pub fn is_answered(&self) -> bool {
        self.rx.borrow().response.is_some()
    }

    async fn wait(
        &self,
        timeout: Duration,
        pick: impl Fn(&Progress) -> Option<&InteractionReply>,
    ) -> Result<InteractionReply, SimError> {
        let mut rx = self.rx.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|p| pick(p).is_some())).await;
        match waited {
            Err(_) => Err(SimError::Timeout),
            Ok(Err(_)) => Err(SimError::Closed),
            Ok(Ok(progress)) => pick(&progress).cloned().ok_or(SimError::Closed),
        }
    }
}

/// Discord's interaction context types.
fn context_type(kind: ChannelKind) -> u8 {
    match kind {
        ChannelKind::Dm => 1,
        _ => 0,
    }
}

impl State {
    /// Validates the actor and channel and returns the channel's guild.
    fn interaction_actor(
        &self,
        user: Snowflake,
        channel: Snowflake,
    ) -> Result<Option<Snowflake>, SimError> {
        self.user(user).map_err(|_| SimError::UnknownUser(user))?;
        let c = &self
            .channel(channel)
            .map_err(|_| SimError::UnknownChannel(channel))?
            .channel;
        if !c.kind.is_textual() {
            return Err(SimError::NotTextChannel(channel));
        }
        if let Some(guild) = c.guild_id {
            if self.member(guild, user).is_err() {
                return Err(SimError::NotAMember { guild, user });
            }
        } else if !c.recipients.contains(&user) {
            return Err(SimError::UnknownChannel(channel));
        }
        Ok(c.guild_id)
    }

    /// Builds, registers and dispatches an interaction; the common tail of every
    /// user action.
    #[allow(clippy::too_many_arguments)]
    fn dispatch_interaction(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        kind: u8,
        user: Snowflake,
        channel: Snowflake,
        data: Value,
        message: Option<Snowflake>,
        command_name: Option<String>,
    ) -> Result<Interaction, SimError> {
        let guild = self.channel(channel).ok().and_then(|c| c.channel.guild_id);
        let channel_kind = self
            .channel(channel)
            .map(|c| c.channel.kind)
            .map_err(|_| SimError::UnknownChannel(channel))?;
        let id = ids.next();
        let token = format!(
            "aW50ZXJhY3Rpb246{}:{:016x}",
            id,
            id.get().rotate_left(17) ^ ctx.secret
        );
        let channel_json = self
            .channel_json(channel)
            .map_err(|_| SimError::UnknownChannel(channel))?;
        let mut payload = json!({
            "id": id,
            "application_id": ctx.app_id,
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": channel,
            "channel": channel_json,
            "locale": "en-US",
            "entitlements": [],
            "context": context_type(channel_kind),
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        });
        let map = object(&mut payload);
        match guild {
            Some(guild) => {
                let mut member = self
                    .member_json(guild, user, true)
                    .map_err(|_| SimError::NotAMember { guild, user })?;
                let perms = self.permissions(guild, user, Some(channel));
                insert(&mut member, "permissions", json!(perms.to_string()));
                map.insert("guild_id".into(), json!(guild));
                map.insert(
                    "guild".into(),
                    json!({"id": guild, "locale": "en-US", "features": []}),
                );
                map.insert("guild_locale".into(), json!("en-US"));
                map.insert("member".into(), member);
                map.insert(
                    "app_permissions".into(),
                    json!(
                        self.permissions(guild, ctx.bot_id, Some(channel))
                            .to_string()
                    ),
                );
                map.insert("authorizing_integration_owners".into(), json!({"0": guild}));
            }
            None => {
                map.insert("user".into(), self.user_json(user));
                map.insert(
                    "app_permissions".into(),
                    json!(crate::model::permissions::ALL.to_string()),
                );
                map.insert("authorizing_integration_owners".into(), json!({"0": "0"}));
            }
        }
        if let Some(message) = message {
            let m = self
                .message(channel, message)
                .map_err(|_| SimError::UnknownMessage(message))?;
            let rendered = self.message_json(m, false);
            insert(&mut payload, "message", rendered);
        }

        let (tx, rx) = watch::channel(Progress::default());
        let dispatched_at = Instant::now();
        self.interactions.insert(
            id,
            InteractionState {
                id,
                token: token.clone(),
                kind,
                user_id: user,
                channel_id: channel,
                guild_id: guild,
                command_name,
                source_message: message,
                dispatched_at,
                callback_type: None,
                callback_attempts: 0,
                answered: 0,
                original_message: None,
                followups: Vec::new(),
                modal: None,
                replies: Vec::new(),
                progress: tx,
            },
        );
        self.interaction_tokens.insert(token.clone(), id);
        self.prune_interactions(ctx, dispatched_at);
        self.gateway
            .dispatch("INTERACTION_CREATE", guild, 0, &payload);
        Ok(Interaction {
            id,
            token,
            kind,
            channel_id: channel,
            user_id: user,
            payload: Arc::new(payload),
            rx,
            dispatched_at,
        })
    }

    /// Forgets interactions whose token expired, every 1024 interactions, so a long
    /// benchmark does not grow the map without bound.
    fn prune_interactions(&mut self, ctx: &Ctx, now: Instant) {
        if !self.interactions.len().is_multiple_of(1024) {
            return;
        }
        let lifetime = ctx.config.token_lifetime;
        self.interactions
            .retain(|_, i| now.duration_since(i.dispatched_at) < lifetime);
        let interactions = &self.interactions;
        self.interaction_tokens
            .retain(|_, id| interactions.contains_key(id));
    }

    pub(crate) fn run_command(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        user: Snowflake,
        channel: Snowflake,
        name: &str,
        options: Value,
    ) -> Result<Interaction, SimError> {
        self.command_interaction(ctx, ids, user, channel, name, options, None)
    }

    /// `user` types into the option `focused` of command `name` (its text so far in
    /// `options`, as a string): an autocomplete interaction. The option must have been
    /// registered with `autocomplete: true`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn autocomplete(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        user: Snowflake,
        channel: Snowflake,
        name: &str,
        options: Value,
        focused: &str,
    ) -> Result<Interaction, SimError> {
        self.command_interaction(ctx, ids, user, channel, name, options, Some(focused))
    }

    #[allow(clippy::too_many_arguments)]
    fn command_interaction(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        user: Snowflake,
        channel: Snowflake,
        name: &str,
        options: Value,
        focused: Option<&str>,
    ) -> Result<Interaction, SimError> {
        let guild = self.interaction_actor(user, channel)?;
        let command = self
            .commands
            .iter()
            .filter(|c| c.name == name && c.kind == 1)
            .find(|c| c.guild_id.is_some() && c.guild_id == guild)
            .or_else(|| {
                self.commands
                    .iter()
                    .find(|c| c.name == name && c.kind == 1 && c.guild_id.is_none())
            })
            .ok_or_else(|| SimError::UnknownCommand(name.to_owned()))?;
        let (offered, place, other) = match guild {
            Some(_) => (command.offered_in_guilds(), "servers", "direct messages"),
            None => (command.offered_in_dms(), "direct messages", "servers"),
        };
        if !offered {
            return Err(SimError::NotOfferedHere {
                command: command.name.clone(),
                place,
                offered: other,
            });
        }
        let given = match options {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            other => {
                return Err(SimError::InvalidOptions(format!(
                    "options must be an array, got {other}"
                )));
            }
        };
        let mut resolved = Resolved::default();
        // While typing (autocomplete), Discord sends what is filled in so far: required
        // options may still be missing.
        let partial = focused.is_some();
        let mut options = normalize_options(given, &command.options, &mut resolved, name, partial)?;
        if let Some(focused) = focused {
            if !autocompletes(&command.options, focused) {
                return Err(SimError::InvalidOptions(format!(
                    "{name}: no option {focused:?} registered with autocomplete"
                )));
            }
            if !mark_focused(&mut options, focused) {
                return Err(SimError::InvalidOptions(format!(
                    "{name}: the focused option {focused:?} is not among the options given"
                )));
            }
        }
        let mut data = json!({
            "id": command.id,
            "name": command.name,
            "type": 1,
        });
        if !options.is_empty() {
            insert(&mut data, "options", Value::Array(options));
        }
        if let Some(guild) = command.guild_id {
            insert(&mut data, "guild_id", json!(guild));
        }
        let resolved = self.resolved_json(guild, user, channel, &resolved)?;
        if let Some(resolved) = resolved {
            insert(&mut data, "resolved", resolved);
        }
        let name = command.name.clone();
        let interaction_kind = if focused.is_some() {
            kind::APPLICATION_COMMAND_AUTOCOMPLETE
        } else {
            kind::APPLICATION_COMMAND
        };
        self.dispatch_interaction(
            ctx,
            ids,
            interaction_kind,
            user,
            channel,
            data,
            None,
            Some(name),
        )
    }

    /// A button click (`values` is `None`) or a select (`values` given).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn use_component(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        user: Snowflake,
        channel: Snowflake,
        message: Snowflake,
        custom_id: &str,
        values: Option<Vec<String>>,
    ) -> Result<Interaction, SimError> {
        let guild = self.interaction_actor(user, channel)?;
        let m = self
            .message(channel, message)
            .map_err(|_| SimError::UnknownMessage(message))?;
        if m.visible_to.is_some_and(|v| v != user) {
            return Err(SimError::UnknownMessage(message));
        }
        let wanted = if values.is_some() {
            "select menu"
        } else {
            "button"
        };
        let component = m
            .component_summaries()
            .into_iter()
            .find(|c| {
                c.custom_id.as_deref() == Some(custom_id)
                    && if values.is_some() {
                        matches!(c.kind, 3 | 5..=8)
                    } else {
                        c.kind == 2
                    }
            })
            .ok_or_else(|| SimError::UnknownComponent {
                message,
                custom_id: custom_id.to_owned(),
                kind: wanted,
            })?;
        if component.disabled {
            return Err(SimError::DisabledComponent(custom_id.to_owned()));
        }
        let mut data = json!({
            "custom_id": custom_id,
            "component_type": component.kind,
        });
        if let Some(values) = values {
            let mut resolved = Resolved::default();
            for value in &values {
                let Ok(id) = value.parse::<u64>().map(Snowflake::new) else {
                    continue;
                };
                match component.kind {
                    5 => resolved.users.push(id),
                    6 => resolved.roles.push(id),
                    7 => resolved.mentionables.push(id),
                    8 => resolved.channels.push(id),
                    _ => {}
                }
            }
            if component.kind == 3 {
                let allowed: Vec<&str> =
                    component.options.iter().map(|(_, v)| v.as_str()).collect();
                if let Some(bad) = values.iter().find(|v| !allowed.contains(&v.as_str())) {
                    return Err(SimError::InvalidOptions(format!(
                        "{bad:?} is not an option of select {custom_id:?}"
                    )));
                }
            }
            insert(&mut data, "values", json!(values));
            if let Some(resolved) = self.resolved_json(guild, user, channel, &resolved)? {
                insert(&mut data, "resolved", resolved);
            }
        }
        self.dispatch_interaction(
            ctx,
            ids,
            kind::MESSAGE_COMPONENT,
            user,
            channel,
            data,
            Some(message),
            None,
        )
    }

    /// Submits a modal the bot showed to `user` in `channel` (type 9 callback), with
    /// text input values by custom id.
    pub(crate) fn submit_modal(
        &mut self,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        user: Snowflake,
        channel: Snowflake,
        custom_id: &str,
        fields: &[(&str, &str)],
    ) -> Result<Interaction, SimError> {
        self.interaction_actor(user, channel)?;
        let shown = self
            .interactions
            .values()
            .filter(|i| i.user_id == user && i.channel_id == channel)
            .filter(|i| {
                i.modal
                    .as_ref()
                    .and_then(|m| m.get("custom_id"))
                    .and_then(Value::as_str)
                    == Some(custom_id)
            })
            .max_by_key(|i| i.id)
            .ok_or_else(|| SimError::UnknownModal(custom_id.to_owned()))?;
        let modal = shown.modal.clone().unwrap_or(Value::Null);
        let source_message = shown.source_message;
        let mut next_id = 0;
        let components = modal
            .get("components")
            .and_then(Value::as_array)
            .map(|rows| {
                rows.iter()
                    .map(|row| modal_submit_component(row, fields, &mut next_id))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let data = json!({"custom_id": custom_id, "components": components});
        self.dispatch_interaction(
            ctx,
            ids,
            kind::MODAL_SUBMIT,
            user,
            channel,
            data,
            source_message,
            None,
        )
    }

    /// `resolved` for the ids an interaction refers to; `None` when there are none.
    /// A resolved channel's `permissions` are those of `user`, who invoked it.
    fn resolved_json(
        &self,
        guild: Option<Snowflake>,
        user: Snowflake,
        channel: Snowflake,
        r: &Resolved,
    ) -> Result<Option<Value>, SimError> {
        if r.is_empty() {
            return Ok(None);
        }
        let mut users = Map::new();
        let mut members = Map::new();
        let mut roles = Map::new();
        let mut channels = Map::new();
        let mut add_user = |state: &State, id: Snowflake| -> Result<(), SimError> {
            state.user(id).map_err(|_| SimError::UnknownUser(id))?;
            users.insert(id.to_string(), state.user_json(id));
            if let Some(guild) = guild
                && let Ok(mut member) = state.member_json(guild, id, false)
            {
                let perms = state.permissions(guild, id, Some(channel));
                insert(&mut member, "permissions", json!(perms.to_string()));
                members.insert(id.to_string(), member);
            }
            Ok(())
        };
        for id in &r.users {
            add_user(self, *id)?;
        }
        let role_of = |id: Snowflake| {
            guild
                .and_then(|g| self.guilds.get(&g))
                .and_then(|g| g.roles.get(&id))
        };
        for id in &r.roles {
            let role = role_of(*id).ok_or(SimError::UnknownRole(*id))?;
            roles.insert(id.to_string(), role_json(role));
        }
        for id in &r.mentionables {
            match role_of(*id) {
                Some(role) => {
                    roles.insert(id.to_string(), role_json(role));
                }
                None => add_user(self, *id)?,
            }
        }
        for id in &r.channels {
            let c = &self
                .channel(*id)
                .map_err(|_| SimError::UnknownChannel(*id))?
                .channel;
            let mut value = json!({
                "id": c.id,
                "type": c.kind.code(),
                "name": c.name,
                "permissions": permissions_in(self, guild, user, *id).to_string(),
            });
            if let Some(parent) = c.parent_id {
                insert(&mut value, "parent_id", json!(parent));
            }
            channels.insert(id.to_string(), value);
        }
        let mut resolved = Map::new();
        for (key, map) in [
            ("users", users),
            ("members", members),
            ("roles", roles),
            ("channels", channels),
        ] {
            if !map.is_empty() {
                resolved.insert(key.to_owned(), Value::Object(map));
            }
        }
        Ok(Some(Value::Object(resolved)))
    }
}

/// `user`'s permissions in `channel`, as Discord puts them on a resolved channel
/// (every bit outside a guild).
fn permissions_in(
    state: &State,
    guild: Option<Snowflake>,
    user: Snowflake,
    channel: Snowflake,
) -> u64 {
    guild.map_or(crate::model::permissions::ALL, |g| {
        state.permissions(g, user, Some(channel))
    })
}

/// Ids referenced by command options or select values.
#[derive(Debug, Default)]
struct Resolved {
    users: Vec<Snowflake>,
    roles: Vec<Snowflake>,
    channels: Vec<Snowflake>,
    mentionables: Vec<Snowflake>,
}

impl Resolved {
    fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.roles.is_empty()
            && self.channels.is_empty()
            && self.mentionables.is_empty()
    }
}

/// Checks test-supplied options against the registered schema, fills in each
/// option's `type` from the schema (so tests may omit it), and collects ids to
/// resolve. A typo in a test's option name fails loudly here instead of reaching the
/// bot as something Discord would never send.
/// Whether an option named `name` anywhere in `schema` has `autocomplete: true`.
fn autocompletes(schema: &[Value], name: &str) -> bool {
    schema.iter().any(|o| {
        (o.get("name").and_then(Value::as_str) == Some(name)
            && o.get("autocomplete").and_then(Value::as_bool) == Some(true))
            || o.get("options")
                .and_then(Value::as_array)
                .is_some_and(|inner| autocompletes(inner, name))
    })
}

/// Marks the option named `name` (at any depth) `focused`; whether it was there.
fn mark_focused(options: &mut [Value], name: &str) -> bool {
    for option in options {
        if option.get("name").and_then(Value::as_str) == Some(name) {
            insert(option, "focused", json!(true));
            return true;
        }
        if let Some(Value::Array(inner)) = option.get_mut("options")
            && mark_focused(inner, name)
        {
            return true;
        }
    }
    false
}

fn normalize_options(
    given: Vec<Value>,
    schema: &[Value],
    resolved: &mut Resolved,
    path: &str,
    partial: bool,
) -> Result<Vec<Value>, SimError> {
    let mut out = Vec::with_capacity(given.len());
    for mut option in given {
        let name = option
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SimError::InvalidOptions(format!("{path}: option without a name")))?
            .to_owned();
        let spec = schema
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(&name))
            .ok_or_else(|| SimError::InvalidOptions(format!("{path}: no option named {name:?}")))?;
        let kind = spec.get("type").and_then(Value::as_u64).unwrap_or(3);
        if let Some(given_kind) = option.get("type").and_then(Value::as_u64)
            && given_kind != kind
        {
            return Err(SimError::InvalidOptions(format!(
                "{path}.{name}: type {given_kind} but the command says {kind}"
            )));
        }
        insert(&mut option, "type", json!(kind));
        let here = format!("{path}.{name}");
        if kind == 1 || kind == 2 {
            let nested = match option.get_mut("options").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let nested_schema = spec
                .get("options")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let nested = normalize_options(nested, nested_schema, resolved, &here, partial)?;
            insert(&mut option, "options", Value::Array(nested));
        } else {
            let value = option
                .get("value")
                .cloned()
                .ok_or_else(|| SimError::InvalidOptions(format!("{here}: missing value")))?;
            let value = check_value(kind, value, &here, resolved)?;
            if let Some(choices) = spec.get("choices").and_then(Value::as_array)
                && !choices.iter().any(|c| c.get("value") == Some(&value))
            {
                return Err(SimError::InvalidOptions(format!(
                    "{here}: {value} is not one of the choices"
                )));
            }
            insert(&mut option, "value", value);
        }
        out.push(option);
    }
    for spec in schema {
        let required = spec
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
        if required
            && !partial
            && !out
                .iter()
                .any(|o| o.get("name").and_then(Value::as_str) == Some(name))
        {
            return Err(SimError::InvalidOptions(format!(
                "{path}: required option {name:?} missing"
            )));
        }
    }
    Ok(out)
}

/// Checks an option value's JSON type and normalises ids to strings.
fn check_value(
    kind: u64,
    value: Value,
    path: &str,
    resolved: &mut Resolved,
) -> Result<Value, SimError> {
    let bad =
        |what: &str| SimError::InvalidOptions(format!("{path}: expected {what}, got {value}"));
    match kind {
        3 if value.is_string() => Ok(value),
        4 if value.is_i64() || value.is_u64() => Ok(value),
        5 if value.is_boolean() => Ok(value),
        10 if value.is_number() => Ok(value),
        6..=9 | 11 => {
            let id: Snowflake = serde_json::from_value(value.clone()).map_err(|_| bad("an id"))?;
            match kind {
                6 => resolved.users.push(id),
                7 => resolved.channels.push(id),
                8 => resolved.roles.push(id),
                9 => resolved.mentionables.push(id),
                _ => {}
            }
            Ok(json!(id))
        }
        3 => Err(bad("a string")),
        4 => Err(bad("an integer")),
        5 => Err(bad("a boolean")),
        10 => Err(bad("a number")),
        _ => Err(bad("a known option type")),
    }
}

/// Mirrors one top-level modal component into its submitted form: action rows and
/// labels keep their shape, text inputs carry the value the test typed (empty if
/// none), and every component gets the numeric `id` Discord assigns.
fn modal_submit_component(component: &Value, fields: &[(&str, &str)], next_id: &mut i32) -> Value {
    let mut id_for = |c: &Value| {
        *next_id += 1;
        c.get("id")
            .and_then(Value::as_i64)
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(*next_id)
    };
    let kind = component.get("type").and_then(Value::as_u64).unwrap_or(0);
    match kind {
        1 => {
            let id = id_for(component);
            let children: Vec<Value> = component
                .get("components")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| modal_submit_component(c, fields, next_id))
                        .collect()
                })
                .unwrap_or_default();
            json!({"type": 1, "id": id, "components": children})
        }
        18 => {
            let id = id_for(component);
            let child = component
                .get("component")
                .map(|c| modal_submit_component(c, fields, next_id))
                .unwrap_or(Value::Null);
            json!({"type": 18, "id": id, "component": child})
        }
        _ => {
            let id = id_for(component);
            let custom_id = component
                .get("custom_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let value = fields
                .iter()
                .find(|(k, _)| *k == custom_id)
                .map_or("", |(_, v)| v);
            json!({"type": 4, "id": id, "custom_id": custom_id, "value": value})
        }
    }
}
