//! Plain Rust views of the sim's state, for tests to seed and inspect.
//!
//! These are deliberately not twilight types: tests of the bot should compare what the
//! fake received against simple values, and the sim must not depend on the library the
//! bot uses (otherwise a bug shared by both would go unnoticed). The Discord-shaped JSON
//! rendering of each type lives in `wire`.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Snowflake;

/// Message flag bits the sim interprets.
pub mod message_flags {
    /// Do not include embeds when serialising this message.
    pub const SUPPRESS_EMBEDS: u64 = 1 << 2;
    /// Only the user who triggered the interaction can see the message.
    pub const EPHEMERAL: u64 = 1 << 6;
    /// A deferred interaction response ("Bot is thinking...").
    pub const LOADING: u64 = 1 << 7;
    /// No push or desktop notifications.
    pub const SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;
    /// Uses the layout components (components v2).
    pub const IS_COMPONENTS_V2: u64 = 1 << 15;
}

/// Permission bits the sim uses when it computes effective permissions.
pub mod permissions {
    pub const CREATE_INSTANT_INVITE: u64 = 1 << 0;
    pub const KICK_MEMBERS: u64 = 1 << 1;
    pub const BAN_MEMBERS: u64 = 1 << 2;
    pub const ADMINISTRATOR: u64 = 1 << 3;
    pub const MANAGE_CHANNELS: u64 = 1 << 4;
    pub const MANAGE_GUILD: u64 = 1 << 5;
    pub const ADD_REACTIONS: u64 = 1 << 6;
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    pub const SEND_MESSAGES: u64 = 1 << 11;
    pub const MANAGE_MESSAGES: u64 = 1 << 13;
    pub const EMBED_LINKS: u64 = 1 << 14;
    pub const ATTACH_FILES: u64 = 1 << 15;
    pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
    pub const MENTION_EVERYONE: u64 = 1 << 17;
    pub const USE_EXTERNAL_EMOJIS: u64 = 1 << 18;
    pub const CONNECT: u64 = 1 << 20;
    pub const SPEAK: u64 = 1 << 21;
    pub const MUTE_MEMBERS: u64 = 1 << 22;
    pub const DEAFEN_MEMBERS: u64 = 1 << 23;
    pub const MOVE_MEMBERS: u64 = 1 << 24;
    pub const CHANGE_NICKNAME: u64 = 1 << 26;
    pub const MANAGE_NICKNAMES: u64 = 1 << 27;
    pub const MANAGE_ROLES: u64 = 1 << 28;
    pub const USE_APPLICATION_COMMANDS: u64 = 1 << 31;
    pub const SEND_MESSAGES_IN_THREADS: u64 = 1 << 38;
    pub const MODERATE_MEMBERS: u64 = 1 << 40;

    /// Every permission bit Discord currently defines (through bit 50).
    pub const ALL: u64 = (1 << 51) - 1;

    /// What a new guild's `@everyone` role gets on Discord.
    pub const EVERYONE_DEFAULT: u64 = CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | MENTION_EVERYONE
        | USE_EXTERNAL_EMOJIS
        | CONNECT
        | SPEAK
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS;
}

/// A Discord user (a person or the bot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Snowflake,
    /// The unique `username`.
    pub name: String,
    pub global_name: Option<String>,
    pub bot: bool,
}

/// A guild (server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guild {
    pub id: Snowflake,
    pub name: String,
    pub owner_id: Snowflake,
    pub preferred_locale: String,
    /// The icon's hash (32 hex digits, `a_` first when animated), if it has one.
    pub icon: Option<String>,
}

/// Channel types the sim models (Discord's numeric `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum ChannelKind {
    Text,
    Dm,
    Voice,
    Category,
    Announcement,
    Stage,
    Forum,
}

impl ChannelKind {
    /// Discord's numeric channel type.
    pub const fn code(self) -> u8 {
        match self {
            Self::Text => 0,
            Self::Dm => 1,
            Self::Voice => 2,
            Self::Category => 4,
            Self::Announcement => 5,
            Self::Stage => 13,
            Self::Forum => 15,
        }
    }

    /// Whether messages can be posted in a channel of this type (voice channels have
    /// a text chat on Discord too).
    pub const fn is_textual(self) -> bool {
        matches!(
            self,
            Self::Text | Self::Dm | Self::Voice | Self::Announcement | Self::Stage
        )
    }
}

impl From<ChannelKind> for u8 {
    fn from(kind: ChannelKind) -> u8 {
        kind.code()
    }
}

impl TryFrom<u8> for ChannelKind {
    type Error = String;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        Ok(match code {
            0 => Self::Text,
            1 => Self::Dm,
            2 => Self::Voice,
            4 => Self::Category,
            5 => Self::Announcement,
            13 => Self::Stage,
            15 => Self::Forum,
            other => return Err(format!("unsupported channel type {other}")),
        })
    }
}

/// Whether an overwrite targets a role or a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum OverwriteKind {
    Role,
    Member,
}

impl From<OverwriteKind> for u8 {
    fn from(kind: OverwriteKind) -> u8 {
        match kind {
            OverwriteKind::Role => 0,
            OverwriteKind::Member => 1,
        }
    }
}

impl TryFrom<u8> for OverwriteKind {
    type Error = String;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        match code {
            0 => Ok(Self::Role),
            1 => Ok(Self::Member),
            other => Err(format!("unknown overwrite type {other}")),
        }
    }
}

/// A channel permission overwrite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionOverwrite {
    pub id: Snowflake,
    pub kind: OverwriteKind,
    pub allow: u64,
    pub deny: u64,
}

/// A guild channel or a DM channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: Snowflake,
    /// `None` for DM channels.
    pub guild_id: Option<Snowflake>,
    pub kind: ChannelKind,
    /// Empty for DM channels.
    pub name: String,
    pub topic: Option<String>,
    pub parent_id: Option<Snowflake>,
    pub position: i32,
    pub nsfw: bool,
    pub permission_overwrites: Vec<PermissionOverwrite>,
    pub rate_limit_per_user: u16,
    /// Voice channels only.
    pub bitrate: Option<u32>,
    /// Voice channels only.
    pub user_limit: Option<u32>,
    /// DM channels only: the other participant(s).
    pub recipients: Vec<Snowflake>,
    pub last_message_id: Option<Snowflake>,
}

/// A guild role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub id: Snowflake,
    pub guild_id: Snowflake,
    pub name: String,
    pub permissions: u64,
    pub color: u32,
    pub hoist: bool,
    pub mentionable: bool,
    pub managed: bool,
    pub position: i64,
    pub unicode_emoji: Option<String>,
    /// The bot whose managed role this is (`tags.bot_id`): the role Discord makes when
    /// a bot is added with permissions.
    pub bot_id: Option<Snowflake>,
}

/// A user's membership in a guild.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub guild_id: Snowflake,
    pub user_id: Snowflake,
    pub nick: Option<String>,
    /// Role ids, without the implicit `@everyone`.
    pub roles: Vec<Snowflake>,
    pub joined_at: String,
}

/// A file attached to a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: Snowflake,
    pub filename: String,
    pub content_type: Option<String>,
    pub size: u64,
    /// Points back at the sim (`/attachments/{channel}/{id}/{filename}`), which
    /// serves the bytes if the attachment was made with data. As on Discord's CDN the
    /// URL is signed and expires (`?ex=&is=&hm=`): every view of a message (REST,
    /// gateway, [`crate::Sim::message`]) carries a freshly signed one, valid for
    /// [`crate::SimConfig::attachment_url_lifetime`] or until
    /// [`crate::Sim::expire_attachment_urls`].
    pub url: String,
    pub proxy_url: String,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub duration_secs: Option<f64>,
    pub description: Option<String>,
}

/// What a test attaches to a simulated user message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttachmentSpec {
    pub filename: String,
    pub content_type: Option<String>,
    /// Served at the attachment's URL. Its length is the attachment's `size` unless
    /// `size` is set.
    pub data: Vec<u8>,
    /// Overrides the reported size (to fake a large video without the bytes).
    pub size: Option<u64>,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub duration_secs: Option<f64>,
}

impl AttachmentSpec {
    /// An attachment with the given name, MIME type and bytes.
    pub fn new(
        filename: impl Into<String>,
        content_type: impl Into<String>,
        data: Vec<u8>,
    ) -> Self {
        Self {
            filename: filename.into(),
            content_type: Some(content_type.into()),
            data,
            ..Self::default()
        }
    }

    /// An attachment that reports `size` bytes but has none to serve (a large video in
    /// a seeded history, where only the metadata matters).
    pub fn sized(filename: impl Into<String>, content_type: impl Into<String>, size: u64) -> Self {
        Self {
            filename: filename.into(),
            content_type: Some(content_type.into()),
            size: Some(size),
            ..Self::default()
        }
    }
}

/// A historical message for [`crate::Sim::seed_history`]: who wrote it, what it says
/// and what it carries. Nothing is dispatched for it; its id (and so its timestamp) is
/// minted when it is seeded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeedMessage {
    /// A user (person or bot) the sim knows; membership of the guild is not needed
    /// (people leave servers, their messages stay).
    pub author: Snowflake,
    pub content: String,
    pub attachments: Vec<AttachmentSpec>,
}

impl SeedMessage {
    /// A text message without attachments.
    pub fn new(author: impl Into<Snowflake>, content: impl Into<String>) -> Self {
        Self {
            author: author.into(),
            content: content.into(),
            attachments: Vec::new(),
        }
    }

    /// Adds an attachment.
    pub fn attachment(mut self, attachment: AttachmentSpec) -> Self {
        self.attachments.push(attachment);
        self
    }
}

/// `message_reference` of a reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReference {
    pub message_id: Option<Snowflake>,
    pub channel_id: Snowflake,
    pub guild_id: Option<Snowflake>,
}

/// `interaction_metadata` of a message sent in response to an interaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInteractionMetadata {
    /// The interaction's id.
    pub id: Snowflake,
    /// Interaction type: 2 application command, 3 component, 5 modal submit.
    pub kind: u8,
    pub user_id: Snowflake,
    /// Command name, for application commands.
    pub name: Option<String>,
    /// For component interactions: the message the component was on.
    pub interacted_message_id: Option<Snowflake>,
    /// For follow-ups: the interaction's original response.
    pub original_response_message_id: Option<Snowflake>,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: Snowflake,
    pub channel_id: Snowflake,
    pub guild_id: Option<Snowflake>,
    pub author_id: Snowflake,
    pub content: String,
    /// Discord-shaped embed objects as received.
    pub embeds: Vec<Value>,
    /// Discord-shaped component objects as received.
    pub components: Vec<Value>,
    pub attachments: Vec<Attachment>,
    /// Message flags; see [`message_flags`].
    pub flags: u64,
    /// Discord's message type: 0 default, 19 reply, 20 chat input command.
    pub kind: u8,
    pub timestamp: String,
    pub edited_timestamp: Option<String>,
    pub tts: bool,
    pub pinned: bool,
    /// Users mentioned in the content (`<@id>`), whether or not they were pinged.
    pub mentions: Vec<Snowflake>,
    pub mention_roles: Vec<Snowflake>,
    /// The content says `@everyone` or `@here`.
    pub mention_everyone: bool,
    /// `allowed_mentions` as the sender sent it with the message or its last edit
    /// (`None`: absent, so Discord parsed every mention).
    pub allowed_mentions: Option<Value>,
    /// Who was notified: the mentions in the content that `allowed_mentions` let
    /// through.
    pub pings: Pings,
    /// The `nonce` the sender attached, as text.
    pub nonce: Option<String>,
    pub message_reference: Option<MessageReference>,
    pub interaction_metadata: Option<MessageInteractionMetadata>,
    pub webhook_id: Option<Snowflake>,
    pub application_id: Option<Snowflake>,
    /// For ephemeral messages: the only user who can see it. Ephemeral messages are
    /// never returned by channel REST routes nor dispatched on the gateway.
    pub visible_to: Option<Snowflake>,
}

impl Message {
    /// Whether the message is ephemeral (flag 64).
    pub fn is_ephemeral(&self) -> bool {
        self.flags & message_flags::EPHEMERAL != 0
    }

    /// Whether the message is a deferred response still "thinking" (flag 128).
    pub fn is_loading(&self) -> bool {
        self.flags & message_flags::LOADING != 0
    }

    /// Custom ids, labels etc. of every interactive component, flattened.
    pub fn component_summaries(&self) -> Vec<ComponentSummary> {
        ComponentSummary::flatten(&self.components)
    }
}

/// Who a message notifies: the mentions in its content that its `allowed_mentions`
/// let through (all of them when the sender sent no `allowed_mentions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pings {
    pub users: Vec<Snowflake>,
    pub roles: Vec<Snowflake>,
    /// `@everyone` / `@here` went through.
    pub everyone: bool,
}

impl Pings {
    /// Nobody is notified.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.roles.is_empty() && !self.everyone
    }
}

/// A registered application command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: Snowflake,
    pub application_id: Snowflake,
    /// `None` for global commands.
    pub guild_id: Option<Snowflake>,
    pub name: String,
    pub description: String,
    /// 1 chat input, 2 user, 3 message.
    pub kind: u8,
    /// Discord-shaped option objects as registered.
    pub options: Vec<Value>,
    pub default_member_permissions: Option<String>,
    pub version: Snowflake,
    /// The full object the REST API returns for this command.
    pub raw: Value,
}

impl Command {
    /// Whether Discord offers the command in a direct message with the bot. Its
    /// `contexts` decide when registered with them (1 is the bot's direct messages;
    /// `dm_permission` is then ignored); without them a global command is offered there
    /// unless `dm_permission` is false, and a guild command never is.
    pub fn offered_in_dms(&self) -> bool {
        match self.lists_context(1) {
            Some(listed) => listed,
            None => {
                self.guild_id.is_none()
                    && self.raw.get("dm_permission").and_then(Value::as_bool) != Some(false)
            }
        }
    }

    /// Whether Discord offers the command in a server's channels: its `contexts` (0 is a
    /// server) when registered with them, else always.
    pub fn offered_in_guilds(&self) -> bool {
        self.lists_context(0).unwrap_or(true)
    }

    /// Whether the registered `contexts` list `context`; `None` when none were given
    /// (a guild command's are not used).
    fn lists_context(&self, context: u64) -> Option<bool> {
        if self.guild_id.is_some() {
            return None;
        }
        self.raw
            .get("contexts")
            .and_then(Value::as_array)
            .map(|items| items.iter().any(|item| item.as_u64() == Some(context)))
    }
}

/// One REST request the sim served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// Full path, e.g. `/api/v10/channels/1/messages`.
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// When the request arrived.
    #[serde(skip)]
    pub at: Instant,
    /// Wall clock of arrival, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Whether an injected fault produced (or delayed) the response.
    pub faulted: bool,
}

/// An interactive component of a message or response, flattened out of its rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSummary {
    /// Component type: 2 button, 3 string select, 4 text input, 5-8 other selects.
    pub kind: u8,
    pub custom_id: Option<String>,
    pub label: Option<String>,
    pub url: Option<String>,
    pub disabled: bool,
    /// Button style (1-6).
    pub style: Option<u8>,
    /// Select options as `(label, value)`.
    pub options: Vec<(String, String)>,
    pub placeholder: Option<String>,
}

impl ComponentSummary {
    /// Walks action rows, sections, containers and labels, and returns the interactive
    /// components in document order.
    pub fn flatten(components: &[Value]) -> Vec<ComponentSummary> {
        let mut out = Vec::new();
        for component in components {
            Self::walk(component, &mut out);
        }
        out
    }

    fn walk(component: &Value, out: &mut Vec<ComponentSummary>) {
        let kind = component.get("type").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            2..=8 => {
                let text = |key: &str| {
                    component
                        .get(key)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                let options = component
                    .get("options")
                    .and_then(Value::as_array)
                    .map(|opts| {
                        opts.iter()
                            .map(|o| {
                                let field = |k: &str| {
                                    o.get(k)
                                        .and_then(Value::as_str)
                                        .unwrap_or_default()
                                        .to_owned()
                                };
                                (field("label"), field("value"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(ComponentSummary {
                    kind: kind as u8,
                    custom_id: text("custom_id"),
                    label: text("label"),
                    url: text("url"),
                    disabled: component
                        .get("disabled")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    style: component
                        .get("style")
                        .and_then(Value::as_u64)
                        .and_then(|s| u8::try_from(s).ok()),
                    options,
                    placeholder: text("placeholder"),
                });
            }
            _ => {
                for key in ["components", "accessory", "component"] {
                    match component.get(key) {
                        Some(Value::Array(children)) => {
                            for child in children {
                                Self::walk(child, out);
                            }
                        }
                        Some(child @ Value::Object(_)) => Self::walk(child, out),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Ids of the guild, channels and users [`crate::Sim::seed_demo`] creates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demo {
    pub guild: Snowflake,
    /// The "Tavern" category holding the demo channels.
    pub category: Snowflake,
    pub general: Snowflake,
    pub dice: Snowflake,
    pub drinking: Snowflake,
    pub campaigns: Snowflake,
    /// Voice channel "Table".
    pub voice: Snowflake,
    pub demo_player: Snowflake,
    pub alice: Snowflake,
    pub bob: Snowflake,
    pub carol: Snowflake,
}

/// A guild [`crate::Sim::create_guild_with_bot_role`] made: owned by a person, with
/// the bot installed as an ordinary member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledGuild {
    pub guild: Snowflake,
    pub owner: Snowflake,
    /// The bot's managed role (`None` when installed without permissions).
    pub bot_role: Option<Snowflake>,
}

/// A channel to create with [`crate::Sim::create_channel_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: ChannelKind,
    pub topic: Option<String>,
    pub parent_id: Option<Snowflake>,
    /// Appended after its siblings when `None`.
    pub position: Option<i32>,
    pub nsfw: bool,
    pub permission_overwrites: Vec<PermissionOverwrite>,
    pub rate_limit_per_user: u16,
    pub bitrate: Option<u32>,
    pub user_limit: Option<u32>,
}

impl ChannelSpec {
    /// A channel with only a name and a type.
    pub fn new(name: impl Into<String>, kind: ChannelKind) -> Self {
        Self {
            name: name.into(),
            kind,
            topic: None,
            parent_id: None,
            position: None,
            nsfw: false,
            permission_overwrites: Vec::new(),
            rate_limit_per_user: 0,
            bitrate: None,
            user_limit: None,
        }
    }

    /// Puts the channel under a category.
    pub fn parent(mut self, category: impl Into<Snowflake>) -> Self {
        self.parent_id = Some(category.into());
        self
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Adds a permission overwrite.
    pub fn overwrite(mut self, overwrite: PermissionOverwrite) -> Self {
        self.permission_overwrites.push(overwrite);
        self
    }
}

/// A role to create with [`crate::Sim::create_role`] or `POST /guilds/{id}/roles`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSpec {
    pub name: String,
    pub permissions: u64,
    pub color: u32,
    pub hoist: bool,
    pub mentionable: bool,
    pub unicode_emoji: Option<String>,
}

impl RoleSpec {
    /// A role with a name and permission bits.
    pub fn new(name: impl Into<String>, permissions: u64) -> Self {
        Self {
            name: name.into(),
            permissions,
            color: 0,
            hoist: false,
            mentionable: false,
            unicode_emoji: None,
        }
    }
}
