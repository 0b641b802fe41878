//! Tavern's own view of Discord: what a feature declares (commands, components) and what
//! it receives and answers. Features never see the wire format; the crate's private
//! `wire` module converts.

use std::collections::{BTreeMap, BTreeSet};

pub use twilight_model::id::Id;
pub use twilight_model::id::marker::{
    ApplicationMarker, ChannelMarker, GuildMarker, InteractionMarker, MessageMarker, RoleMarker,
    UserMarker,
};

pub type ApplicationId = Id<ApplicationMarker>;
pub type ChannelId = Id<ChannelMarker>;
pub type GuildId = Id<GuildMarker>;
pub type InteractionId = Id<InteractionMarker>;
pub type MessageId = Id<MessageMarker>;
pub type RoleId = Id<RoleMarker>;
pub type UserId = Id<UserMarker>;

/// Reads a Discord snowflake from its decimal text (a stored value, an option, a URL):
/// plain digits only (`u64::from_str` would also take `+5`, so one id could be spelled
/// two ways and name two keys), not zero, within 64 bits. `what` names it in the error.
pub fn parse_id<M>(what: &'static str, text: &str) -> Result<Id<M>, base::InvalidId> {
    let n = base::id::parse_positive(what, text)?;
    Id::new_checked(n).ok_or_else(|| base::InvalidId::new(what, text, "it must not be zero"))
}

/// A slash command a feature registers.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    pub name: String,
    pub description: String,
    pub options: Vec<OptionSpec>,
    /// Its answers are for the caller alone: a slow handler is deferred privately
    /// (see [`CommandSpec::private`]).
    pub private: bool,
    /// Offered in servers only, not in a direct message with the bot (see
    /// [`CommandSpec::guild_only`]).
    pub guild_only: bool,
}

impl CommandSpec {
    pub fn new(name: &str, description: &str) -> CommandSpec {
        CommandSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            options: Vec::new(),
            private: false,
            guild_only: false,
        }
    }

    /// Marks every answer of this command private (a one-time link, a lookup): when
    /// the handler is slow the deferral Discord shows meanwhile is private too. Other
    /// commands defer privately only when called with `private: true`.
    pub fn private(mut self) -> CommandSpec {
        self.private = true;
        self
    }

    /// Offers this command in servers only: Discord registers it with the guild
    /// context alone, so its users are not offered it in a direct message with the bot,
    /// where it could do nothing (a channel's GM, a server's games). Others are offered
    /// in both. The handler still refuses an invocation outside a server (a registration
    /// made by an older version may stand for a while).
    pub fn guild_only(mut self) -> CommandSpec {
        self.guild_only = true;
        self
    }

    pub fn option(mut self, option: OptionSpec) -> CommandSpec {
        self.options.push(option);
        self
    }
}

/// The type of a command option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    SubCommand,
    String,
    Integer,
    Boolean,
    User,
    Channel,
    Number,
}

/// One option (or subcommand) of a slash command.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    pub kind: OptionKind,
    pub name: String,
    pub description: String,
    pub required: bool,
    /// `(label, value)` pairs for string choices.
    pub choices: Vec<(String, String)>,
    /// Options of a subcommand.
    pub options: Vec<OptionSpec>,
    pub min_value: Option<i64>,
    pub max_value: Option<i64>,
    /// Discord asks the handler for suggestions while the user types
    /// ([`Action::Autocomplete`], answered with [`Response::Choices`]).
    pub autocomplete: bool,
}

impl OptionSpec {
    fn new(kind: OptionKind, name: &str, description: &str) -> OptionSpec {
        OptionSpec {
            kind,
            name: name.to_owned(),
            description: description.to_owned(),
            required: false,
            choices: Vec::new(),
            options: Vec::new(),
            min_value: None,
            max_value: None,
            autocomplete: false,
        }
    }

    /// Suggestions while the user types (string, integer and number options): the
    /// command's handler gets an [`Action::Autocomplete`] and answers
    /// [`Response::Choices`].
    pub fn autocomplete(mut self) -> OptionSpec {
        self.autocomplete = true;
        self
    }

    pub fn subcommand(name: &str, description: &str) -> OptionSpec {
        Self::new(OptionKind::SubCommand, name, description)
    }
    pub fn string(name: &str, description: &str) -> OptionSpec {
        Self::new(OptionKind::String, name, description)
    }
    pub fn integer(name: &str, description: &str) -> OptionSpec {
        Self::new(OptionKind::Integer, name, description)
    }
    pub fn number(name: &str, description: &str) -> OptionSpec {
        Self::new(OptionKind::Number, name, description)
    }
    pub fn boolean(name: &str, description: &str) -> OptionSpec {
        Self::new(OptionKind::Boolean, name, description)
    }
    pub fn user(name: &str, description: &str) -> OptionSpec {
        Self::new(OptionKind::User, name, description)
    }
    pub fn channel(name: &str, description: &str) -> OptionSpec {
        Self::new(OptionKind::Channel, name, description)
    }
    pub fn required(mut self) -> OptionSpec {
        self.required = true;
        self
    }
    pub fn choice(mut self, label: &str, value: &str) -> OptionSpec {
        self.choices.push((label.to_owned(), value.to_owned()));
        self
    }
    pub fn range(mut self, min: i64, max: i64) -> OptionSpec {
        self.min_value = Some(min);
        self.max_value = Some(max);
        self
    }
    /// Adds an option to a subcommand.
    pub fn option(mut self, option: OptionSpec) -> OptionSpec {
        self.options.push(option);
        self
    }
}

/// A value a user gave for an option.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    String(String),
    Integer(i64),
    Number(f64),
    Boolean(bool),
    User(UserId),
    Channel(ChannelId),
}

/// The options of an invoked command, flattened: `subcommand` is the path of nested
/// subcommand names (`["join"]` for `/init join`), `values` the leaf options by name,
/// `bots` the users the options name that are bot accounts (as Discord resolved them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub subcommand: Vec<String>,
    pub values: BTreeMap<String, OptionValue>,
    pub bots: BTreeSet<UserId>,
}

impl Options {
    /// Whether `user`, named by a user option, is a bot account.
    pub fn is_bot(&self, user: UserId) -> bool {
        self.bots.contains(&user)
    }

    /// The first subcommand name, if any.
    pub fn sub(&self) -> Option<&str> {
        self.subcommand.first().map(String::as_str)
    }
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(OptionValue::String(s)) => Some(s),
            _ => None,
        }
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(OptionValue::Integer(v)) => Some(*v),
            _ => None,
        }
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(OptionValue::Boolean(v)) => Some(*v),
            _ => None,
        }
    }
    pub fn user(&self, name: &str) -> Option<UserId> {
        match self.values.get(name) {
            Some(OptionValue::User(v)) => Some(*v),
            _ => None,
        }
    }
}

/// Who pressed or typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub id: UserId,
    /// Display name (global name, or username).
    pub name: String,
}

/// What the user did.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A slash command.
    Command { name: String, options: Options },
    /// The user is typing an option with [`OptionSpec::autocomplete`]: `focused` names
    /// it, and its text so far is in `options` as a string. Answered with
    /// [`Response::Choices`] within Discord's 3 seconds, never deferred.
    Autocomplete {
        name: String,
        options: Options,
        focused: String,
    },
    /// A button press (`values` empty) or a select-menu pick.
    Component {
        custom_id: String,
        values: Vec<String>,
        /// The message the component is attached to.
        message_id: MessageId,
    },
}

/// An interaction, as a feature sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub id: InteractionId,
    pub action: Action,
    pub actor: Actor,
    pub guild_id: Option<GuildId>,
    pub channel_id: ChannelId,
    /// The caller's permission bits in the channel, as Discord computed them for this
    /// interaction (guild roles and channel overwrites); `None` outside a guild.
    pub member_permissions: Option<u64>,
}

impl Invocation {
    /// Whether the caller may manage the guild the command ran in: Administrator or
    /// Manage Server (an owner has every permission). False outside a guild.
    pub fn can_manage_guild(&self) -> bool {
        self.member_permissions.is_some_and(|bits| {
            bits & (permissions::ADMINISTRATOR | permissions::MANAGE_GUILD) != 0
        })
    }

    /// The options of a command; empty for a component.
    pub fn options(&self) -> Options {
        match &self.action {
            Action::Command { options, .. } | Action::Autocomplete { options, .. } => {
                options.clone()
            }
            Action::Component { .. } => Options::default(),
        }
    }

    /// While the user types an autocomplete option: its name and the text so far.
    pub fn autocompleting(&self) -> Option<(&str, &str)> {
        match &self.action {
            Action::Autocomplete {
                options, focused, ..
            } => Some((focused.as_str(), options.str(focused).unwrap_or_default())),
            _ => None,
        }
    }

    /// Convention: a boolean command option named `private` makes the reply, and the
    /// deferral that may precede it, visible only to the user.
    pub fn wants_private(&self) -> bool {
        match &self.action {
            Action::Command { options, .. } => options.bool("private").unwrap_or(false),
            Action::Autocomplete { .. } | Action::Component { .. } => false,
        }
    }

    /// The component's custom id, split at `:` (`"ronnied:join:42"` -> `["ronnied", "join", "42"]`).
    pub fn custom_id_parts(&self) -> Vec<&str> {
        match &self.action {
            Action::Component { custom_id, .. } => custom_id.split(':').collect(),
            Action::Command { .. } | Action::Autocomplete { .. } => Vec::new(),
        }
    }
}

/// Button colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonStyle {
    Primary,
    Secondary,
    Success,
    Danger,
}

/// One option of a select menu.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectOption {
    pub label: String,
    pub value: String,
    pub description: Option<String>,
}

/// A message component.
#[derive(Debug, Clone, PartialEq)]
pub enum Component {
    Button {
        custom_id: String,
        label: String,
        style: ButtonStyle,
        disabled: bool,
    },
    Select {
        custom_id: String,
        placeholder: String,
        options: Vec<SelectOption>,
    },
}

impl Component {
    pub fn button(
        custom_id: impl Into<String>,
        label: impl Into<String>,
        style: ButtonStyle,
    ) -> Component {
        Component::Button {
            custom_id: custom_id.into(),
            label: label.into(),
            style,
            disabled: false,
        }
    }
}

/// A row of components (Discord allows 5 buttons or 1 select menu per row, 5 rows).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Vec<Component>);

/// Who a message may notify. The default notifies nobody: a mention written in the
/// content (`<@id>`, `@everyone`, a role), whoever wrote it, is shown but pings no one
/// unless it is named here. Dice output and anything that repeats what a user typed
/// keep the default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mentions {
    /// Users pinged when the content mentions them.
    pub users: Vec<UserId>,
    /// Roles pinged when the content mentions them.
    pub roles: Vec<RoleId>,
}

/// A message Tavern sends: text, components and files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    pub content: String,
    pub rows: Vec<Row>,
    /// Visible only to the user who triggered the interaction.
    pub ephemeral: bool,
    /// Who the message notifies; nobody unless named (see [`Reply::ping`]).
    pub mentions: Mentions,
    /// Files uploaded with the message (a multipart request); see [`Reply::upload`].
    pub uploads: Vec<Upload>,
}

/// A file Tavern uploads with a message (shown as an attachment; an image inline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The attachment's name, e.g. `odds.png` (Discord takes the type from it).
    pub filename: String,
    pub bytes: Vec<u8>,
    /// Alt text for screen readers.
    pub description: Option<String>,
}

impl Reply {
    pub fn text(content: impl Into<String>) -> Reply {
        Reply {
            content: content.into(),
            ..Reply::default()
        }
    }
    pub fn private(content: impl Into<String>) -> Reply {
        Reply {
            content: content.into(),
            ephemeral: true,
            ..Reply::default()
        }
    }
    pub fn row(mut self, components: Vec<Component>) -> Reply {
        self.rows.push(Row(components));
        self
    }
    /// Lets the message notify `user` (whom the content mentions as `<@id>`).
    pub fn ping(mut self, user: UserId) -> Reply {
        if !self.mentions.users.contains(&user) {
            self.mentions.users.push(user);
        }
        self
    }
    /// Uploads a file with the message (an image is shown inline).
    pub fn upload(
        mut self,
        filename: impl Into<String>,
        bytes: Vec<u8>,
        description: Option<String>,
    ) -> Reply {
        self.uploads.push(Upload {
            filename: filename.into(),
            bytes,
            description,
        });
        self
    }
    /// Lets the message notify the members of `role` (mentioned as `<@&id>`).
    pub fn ping_role(mut self, role: RoleId) -> Reply {
        if !self.mentions.roles.contains(&role) {
            self.mentions.roles.push(role);
        }
        self
    }
}

/// How a handler answers an interaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// A new message in the channel (or a private one if `ephemeral`).
    Message(Reply),
    /// Edit the message the pressed component is attached to (components only).
    Update(Reply),
    /// Suggestions for an [`Action::Autocomplete`] (Discord shows at most 25).
    Choices(Vec<Choice>),
}

/// One autocomplete suggestion: what the user sees and what the option gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub name: String,
    pub value: String,
}

impl Choice {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Choice {
        Choice {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// An event from the gateway that features may react to.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    MessageCreate {
        guild_id: Option<GuildId>,
        channel_id: ChannelId,
        message_id: MessageId,
        author: Actor,
        author_is_bot: bool,
        content: String,
        attachments: Vec<Attachment>,
        /// When it was posted (Unix milliseconds).
        timestamp_ms: i64,
    },
    /// A message was edited. Discord sends the whole message, so `attachments` is the
    /// full list after the edit (an edit can remove attachments, or a bot add some).
    MessageUpdate {
        guild_id: Option<GuildId>,
        channel_id: ChannelId,
        message_id: MessageId,
        author: Option<Actor>,
        content: Option<String>,
        attachments: Vec<Attachment>,
        /// When it was first posted (Unix milliseconds).
        timestamp_ms: Option<i64>,
    },
    MessageDelete {
        guild_id: Option<GuildId>,
        channel_id: ChannelId,
        message_id: MessageId,
    },
    /// Many messages of one channel deleted at once (a moderator's bulk delete).
    MessageDeleteBulk {
        guild_id: Option<GuildId>,
        channel_id: ChannelId,
        message_ids: Vec<MessageId>,
    },
    /// A guild became available: at connection, after an outage, or when the bot was
    /// added to it.
    GuildAvailable {
        guild_id: GuildId,
        name: String,
        /// Who is connected to which voice channel now (empty unless a handler wants
        /// [`EventKind::VoiceStateUpdate`], whose intent Discord needs for this list).
        voice: Vec<VoiceState>,
        /// The icon hash.
        icon: Option<String>,
        owner_id: Option<UserId>,
        /// Every channel of the guild (threads excepted).
        channels: Vec<ChannelInfo>,
    },
    /// The guild's name, icon or owner changed.
    GuildUpdate(GuildInfo),
    /// The bot left or was removed from the guild, or (`unavailable`) the guild is in an
    /// outage and will come back with a [`Event::GuildAvailable`].
    GuildRemoved {
        guild_id: GuildId,
        unavailable: bool,
    },
    ChannelCreate(ChannelInfo),
    ChannelUpdate(ChannelInfo),
    ChannelDelete(ChannelInfo),
    MemberAdd {
        guild_id: GuildId,
        user: Actor,
    },
    /// Someone joined, moved between or left voice channels.
    VoiceStateUpdate {
        guild_id: GuildId,
        state: VoiceState,
    },
}

/// A member's voice connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceState {
    pub user: UserId,
    /// The voice channel they are connected to; `None` once they left.
    pub channel_id: Option<ChannelId>,
}

/// What an [`Event`] is about, for handlers to say what they want to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    MessageCreate,
    MessageUpdate,
    MessageDelete,
    MessageDeleteBulk,
    GuildAvailable,
    GuildUpdate,
    GuildRemoved,
    ChannelCreate,
    ChannelUpdate,
    ChannelDelete,
    MemberAdd,
    VoiceStateUpdate,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::MessageCreate,
        EventKind::MessageUpdate,
        EventKind::MessageDelete,
        EventKind::MessageDeleteBulk,
        EventKind::GuildAvailable,
        EventKind::GuildUpdate,
        EventKind::GuildRemoved,
        EventKind::ChannelCreate,
        EventKind::ChannelUpdate,
        EventKind::ChannelDelete,
        EventKind::MemberAdd,
        EventKind::VoiceStateUpdate,
    ];
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::MessageCreate { .. } => EventKind::MessageCreate,
            Event::MessageUpdate { .. } => EventKind::MessageUpdate,
            Event::MessageDelete { .. } => EventKind::MessageDelete,
            Event::MessageDeleteBulk { .. } => EventKind::MessageDeleteBulk,
            Event::GuildAvailable { .. } => EventKind::GuildAvailable,
            Event::GuildUpdate(_) => EventKind::GuildUpdate,
            Event::GuildRemoved { .. } => EventKind::GuildRemoved,
            Event::ChannelCreate(_) => EventKind::ChannelCreate,
            Event::ChannelUpdate(_) => EventKind::ChannelUpdate,
            Event::ChannelDelete(_) => EventKind::ChannelDelete,
            Event::MemberAdd { .. } => EventKind::MemberAdd,
            Event::VoiceStateUpdate { .. } => EventKind::VoiceStateUpdate,
        }
    }
}

/// A file on a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub id: u64,
    pub filename: String,
    /// Discord's signed CDN URL; it expires (its `ex` query parameter).
    pub url: String,
    /// The media proxy's URL of the same file.
    pub proxy_url: String,
    pub size: u64,
    pub content_type: Option<String>,
    /// Pixels, for images and videos.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Seconds, for voice messages (and videos where Discord gives it).
    pub duration_secs: Option<f64>,
}

/// A message read from a channel's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryMessage {
    pub id: MessageId,
    pub author: Actor,
    pub author_is_bot: bool,
    pub content: String,
    pub attachments: Vec<Attachment>,
    pub timestamp_ms: i64,
}

/// What a channel is, as Discord says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelType {
    Text,
    Voice,
    Category,
    Announcement,
    Stage,
    Forum,
    Media,
    /// Any kind of thread.
    Thread,
    /// A kind this version does not know, by Discord's number.
    Other(u8),
}

impl ChannelType {
    /// A short lowercase name: `text`, `voice`, `category`, `announcement`, `stage`,
    /// `forum`, `media`, `thread`, or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Text => "text",
            ChannelType::Voice => "voice",
            ChannelType::Category => "category",
            ChannelType::Announcement => "announcement",
            ChannelType::Stage => "stage",
            ChannelType::Forum => "forum",
            ChannelType::Media => "media",
            ChannelType::Thread => "thread",
            ChannelType::Other(_) => "other",
        }
    }

    /// Whether the channel itself holds messages (text, announcement, the text chat of
    /// voice and stage channels, threads); categories, forums and media channels hold
    /// threads or channels, not messages.
    pub fn has_messages(self) -> bool {
        matches!(
            self,
            ChannelType::Text
                | ChannelType::Announcement
                | ChannelType::Voice
                | ChannelType::Stage
                | ChannelType::Thread
        )
    }
}

/// A channel as Discord describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: ChannelId,
    /// `None` for direct messages.
    pub guild_id: Option<GuildId>,
    pub name: String,
    pub kind: ChannelType,
    /// Age-restricted.
    pub nsfw: bool,
    pub parent_id: Option<ChannelId>,
}

/// A guild as Discord describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildInfo {
    pub id: GuildId,
    pub name: String,
    /// The icon hash.
    pub icon: Option<String>,
    pub owner_id: Option<UserId>,
}

/// What a feature wants when it creates a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: ChannelKind,
    pub topic: Option<String>,
    pub parent_id: Option<ChannelId>,
    pub overwrites: Vec<Overwrite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Text,
    Voice,
    Category,
}

/// A permission overwrite on a channel, for a role or a member.
#[derive(Debug, Clone, PartialEq)]
pub struct Overwrite {
    pub target: OverwriteTarget,
    /// Discord permission bits.
    pub allow: u64,
    pub deny: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverwriteTarget {
    Role(RoleId),
    Member(UserId),
}

/// A channel of a guild, as the guild's channel list gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuildChannel {
    pub id: ChannelId,
    pub name: String,
    /// `None` for a kind features do not make (forum, stage, ...).
    pub kind: Option<ChannelKind>,
    pub parent_id: Option<ChannelId>,
    pub topic: Option<String>,
    pub overwrites: Vec<Overwrite>,
}

/// A role of a guild, with what it lets its holders do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuildRole {
    pub id: RoleId,
    /// Discord permission bits the role grants across the guild.
    pub permissions: u64,
    /// Managed by an integration (a bot's own role, a server booster role): Discord
    /// refuses to give it to or take it from members by hand.
    pub managed: bool,
    /// Its place in the server's role list (`@everyone` is 0, higher is above): a bot
    /// may give only roles below its own highest role.
    pub position: i64,
}

/// A member of a guild with the roles it holds (without `@everyone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildMember {
    pub user: UserId,
    pub roles: Vec<RoleId>,
}

/// A change to a guild channel: each `Some` field is set, `None` fields are left alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelEdit {
    pub topic: Option<String>,
    /// `Some(None)` moves the channel to the top level.
    pub parent_id: Option<Option<ChannelId>>,
    /// Replaces every permission overwrite of the channel.
    pub overwrites: Option<Vec<Overwrite>>,
}

impl ChannelEdit {
    /// Whether the edit changes nothing (and need not be sent).
    pub fn is_empty(&self) -> bool {
        self.topic.is_none() && self.parent_id.is_none() && self.overwrites.is_none()
    }
}

/// Commonly used permission bits.
pub mod permissions {
    pub const ADMINISTRATOR: u64 = 1 << 3;
    pub const MANAGE_GUILD: u64 = 1 << 5;
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    pub const SEND_MESSAGES: u64 = 1 << 11;
    pub const MANAGE_MESSAGES: u64 = 1 << 13;
    pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
    pub const CONNECT: u64 = 1 << 20;
    pub const SPEAK: u64 = 1 << 21;
    pub const MANAGE_CHANNELS: u64 = 1 << 4;
    pub const MANAGE_ROLES: u64 = 1 << 28;
    /// Also lets a message ping a role whose "anyone may mention" setting is off.
    pub const MENTION_EVERYONE: u64 = 1 << 17;
    pub const KICK_MEMBERS: u64 = 1 << 1;
    pub const BAN_MEMBERS: u64 = 1 << 2;
    pub const VIEW_AUDIT_LOG: u64 = 1 << 7;
    pub const MANAGE_WEBHOOKS: u64 = 1 << 29;
    pub const MANAGE_GUILD_EXPRESSIONS: u64 = 1 << 30;
    pub const MANAGE_THREADS: u64 = 1 << 34;
    pub const MODERATE_MEMBERS: u64 = 1 << 40;
    pub const MUTE_MEMBERS: u64 = 1 << 22;
    pub const DEAFEN_MEMBERS: u64 = 1 << 23;
    pub const MOVE_MEMBERS: u64 = 1 << 24;
    pub const MANAGE_NICKNAMES: u64 = 1 << 27;
    pub const MANAGE_EVENTS: u64 = 1 << 33;
    pub const SEND_MESSAGES_IN_THREADS: u64 = 1 << 38;
    /// Every bit: what a guild's owner and an Administrator hold in every channel.
    pub const ALL: u64 = u64::MAX;

    use super::{GuildId, GuildRole, Overwrite, OverwriteTarget, RoleId, UserId};

    /// A member's permissions across `guild` before any channel's overwrites:
    /// `@everyone`'s (the role whose id is the guild's) and those of `roles` (the
    /// member's, without `@everyone`) together, from the guild's roles.
    pub fn base(guild: GuildId, guild_roles: &[GuildRole], roles: &[RoleId]) -> u64 {
        let everyone = RoleId::new(guild.get());
        guild_roles
            .iter()
            .filter(|r| r.id == everyone || roles.contains(&r.id))
            .fold(0, |bits, r| bits | r.permissions)
    }

    /// A member of a guild as a channel's permissions need them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Member<'a> {
        pub guild: GuildId,
        pub user: UserId,
        /// Whether they own the guild.
        pub owner: bool,
        /// Their permissions across the guild ([`base()`]).
        pub base: u64,
        /// Their roles, without `@everyone`.
        pub roles: &'a [RoleId],
    }

    impl Member<'_> {
        /// Their permissions in a channel with these overwrites, in Discord's order:
        /// the owner and an Administrator hold [`ALL`]; anyone else starts from their
        /// guild permissions, then the `@everyone` overwrite, then their roles'
        /// overwrites together (every deny before every allow), then their own.
        pub fn in_channel(&self, overwrites: &[Overwrite]) -> u64 {
            if self.owner || self.base & ADMINISTRATOR != 0 {
                return ALL;
            }
            let everyone = RoleId::new(self.guild.get());
            let mut bits = self.base;
            if let Some(o) = overwrites
                .iter()
                .find(|o| o.target == OverwriteTarget::Role(everyone))
            {
                bits = (bits & !o.deny) | o.allow;
            }
            let (allow, deny) = overwrites
                .iter()
                .filter(|o| {
                    matches!(o.target, OverwriteTarget::Role(role)
                        if role != everyone && self.roles.contains(&role))
                })
                .fold((0, 0), |(allow, deny), o| (allow | o.allow, deny | o.deny));
            bits = (bits & !deny) | allow;
            if let Some(o) = overwrites
                .iter()
                .find(|o| o.target == OverwriteTarget::Member(self.user))
            {
                bits = (bits & !o.deny) | o.allow;
            }
            bits
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn role(id: u64, permissions: u64) -> GuildRole {
            GuildRole {
                id: RoleId::new(id),
                permissions,
                managed: false,
                position: 0,
            }
        }

        fn overwrite(target: OverwriteTarget, allow: u64, deny: u64) -> Overwrite {
            Overwrite {
                target,
                allow,
                deny,
            }
        }

        #[test]
        fn overwrites_apply_in_discords_order_and_the_owner_and_admins_hold_everything() {
            let guild = GuildId::new(1);
            let (players, gm) = (RoleId::new(2), RoleId::new(3));
            let roles = [
                role(1, VIEW_CHANNEL | SEND_MESSAGES),
                role(2, 0),
                role(3, 0),
            ];
            let base = base(guild, &roles, &[players, gm]);
            assert_eq!(base, VIEW_CHANNEL | SEND_MESSAGES);
            let member = Member {
                guild,
                user: UserId::new(9),
                owner: false,
                base,
                roles: &[players, gm],
            };
            let everyone_out = overwrite(OverwriteTarget::Role(RoleId::new(1)), 0, VIEW_CHANNEL);
            assert_eq!(
                member.in_channel(std::slice::from_ref(&everyone_out)) & VIEW_CHANNEL,
                0
            );
            // A role's allow beats another role's deny; a member's own deny beats both.
            let players_in = overwrite(OverwriteTarget::Role(players), VIEW_CHANNEL, 0);
            let gm_out = overwrite(OverwriteTarget::Role(gm), 0, VIEW_CHANNEL);
            let rule = [everyone_out, players_in, gm_out];
            assert_ne!(member.in_channel(&rule) & VIEW_CHANNEL, 0);
            let me_out = overwrite(OverwriteTarget::Member(UserId::new(9)), 0, VIEW_CHANNEL);
            let with_me = [rule.as_slice(), &[me_out]].concat();
            assert_eq!(member.in_channel(&with_me) & VIEW_CHANNEL, 0);
            // The owner and an Administrator hold every bit whatever the overwrites.
            let owner = Member {
                owner: true,
                ..member
            };
            assert_eq!(owner.in_channel(&with_me), ALL);
            let admin = Member {
                base: base | ADMINISTRATOR,
                ..member
            };
            assert_eq!(admin.in_channel(&with_me), ALL);
        }
    }
}
