//! The sync, step 2 (Redis → Discord): every tracked series with an upcoming event
//! gets its private text channel, guest role, host role and, when online, its voice
//! channel; the people who RSVP'd and the hosts get the roles; newcomers are announced;
//! the channel's topic links the next session; the free-spots message is kept up to
//! date. It runs right after every Meetup → Redis step ([`crate::jobs`], `tavern
//! campaigns sync --once`), REST only.
//!
//! # One run ([`sync_discord`])
//! 1. **Read**: Redis ([`Repo::discord_view`], a few pipelined round trips) and
//!    Discord (the guild's channels, roles and members: three to a few requests, not
//!    one per series).
//! 2. **Orphans**: every channel or role in the `orphaned_*` sets is deleted from
//!    Discord; deleted (or already gone) ones leave the set.
//! 3. **Each series**, planned without I/O by [`plan_series`]:
//!    - [`Step::Create`]: what is missing (text channel, voice channel, the two roles)
//!      is created on Discord, then registered in Redis, each relation in one
//!      transaction ([`Repo::register_channel`], [`Repo::register_roles`],
//!      [`Repo::register_voice_channel`]). An object whose registration is refused (a
//!      concurrent run won, the series went) or fails (Redis is gone), and everything
//!      created with it when one create fails, is deleted again; what cannot be
//!      deleted goes to the `orphaned_*` sets for the next run. Then the series is
//!      planned again with what now exists.
//!    - [`Step::Update`]: the edits that bring Discord in line, each only when it
//!      differs from what Discord has: the channels' permission overwrites, topic and
//!      category; the roles to grant and revoke; the announcement.
//!    - [`Step::Skip`]: the series cannot be synced (its channel or a role was deleted
//!      by hand; `tavern check` reports it).
//! 4. **Free spots**: the message in `campaigns_free_spots_channel` is edited in
//!    place when its text changed (posted once, its id kept in Tavern's own key
//!    `schema::FREE_SPOTS_MESSAGE`).
//!
//! A series whose state did not change costs no Discord request at all: a second run
//! right after the first makes zero writes.
//!
//! # Choices
//! - **Which series**: those with at least one event that is not over: upcoming, or
//!   started less than [`crate::domain::SESSION_GRACE`] (12 hours) ago. The seed keeps
//!   no end or duration of an event and Meetup stops listing an event once it started,
//!   so a session counts as running for that fixed time; players keep the channel (and
//!   the guest role their RSVP to it gave them) while they play, even when the next
//!   session is already on Meetup. A series whose events are all over is left to the
//!   lifecycle (expiration, reminders, deletion). "Upcoming" below means this: not over.
//! - **Names**: the channel is named after the title of the series' next event when
//!   it is made, without a trailing session marker ("Curse of Strahd - Session 1"
//!   makes `curse-of-strahd`; [`crate::domain::series_name`] says which markers), in
//!   lower case, letters, digits and dashes, at most 100 characters; the guest role
//!   (and the voice channel) is that name, the host role the name and "(host)". Names
//!   are never changed afterwards (organisers may rename; channels made before keep
//!   theirs). The seed keeps no host names, so the
//!   original's `[Host names] Series` role name is not rebuilt.
//! - **Who gets what**: the guest role goes to the linked members who RSVP'd yes to any
//!   upcoming event of the series, minus `removed_users`; the host role to linked hosts
//!   of those events, minus `removed_hosts`. People who are not members of the guild are
//!   skipped, and so is Tavern's own account (linked to a Meetup member before `/link`
//!   refused it). The guest role is revoked from a member who holds it without such an RSVP
//!   and is not a host only when the sync gave it (a withdrawn RSVP, or a Meetup
//!   account unlinked; `/sync` counts the two apart): Tavern keeps who
//!   it gave the role in its own key `schema::synced_guests`, so people a host added by
//!   hand (`/players add`) keep it. The host role is
//!   never revoked by the sync (hosts keep theirs; `/hosts remove` does it). `[role
//!   <id>]` roles go to the linked members who RSVP'd yes to that event (an event of
//!   a series: an event without a series shortcode is not tracked, so its `[role]`
//!   does nothing) and are never
//!   revoked (the sync cannot tell who got them otherwise); see "Shortcodes" for the
//!   roles refused.
//! - **Permissions**: a game channel is private: `@everyone` may not view it; the guest
//!   role, the host role (also managing messages), the organiser role and the bot (also
//!   managing the channel) may. The voice channel has the same overwrites with connect
//!   and speak. The overwrites are set to exactly this list; an overwrite added by hand
//!   is removed by the next run.
//! - **Categories**: campaign channels go to `campaigns_categories`, one-shots to
//!   `campaigns_one_shot_categories` (or the campaign categories when none are set),
//!   the first that holds fewer than Discord's 50 channels. A channel already in one of
//!   its categories stays there; an adventure that became a campaign moves. With every
//!   category full, a new channel is made at the top level and an existing one stays
//!   (with a warning). The voice channel goes beside its text channel, or to the next
//!   category with room when that one is full, and is moved only out of a category that
//!   is not one of its own. Without categories channels stay where they are (new ones
//!   at the top level).
//! - **Topic**: `"Next session: <time> <link>"` of the next event that has not started,
//!   or of the running one when there is none.
//! - **Shortcodes** (whoever can write a Meetup event's description writes them, so
//!   they are not trusted): `[channel <id>]` takes over only a channel an admin marked
//!   with `/manage-channel` (`managed_discord_channels`); any other channel is ignored
//!   and the series gets a channel of its own. A managed channel taken over stays the
//!   organisers': the sync adds the game's roles and the bot to its overwrites and
//!   leaves its other overwrites (`@everyone` included), topic and category as they
//!   are; it is registered (never deleted by the sync if the registration is refused),
//!   and when the game ends the lifecycle gives it back: it is kept, the game's roles
//!   and voice channel are deleted and the bot's overwrite is removed, so it is as the
//!   organisers left it. While a game uses it, `/manage-channel managed:false` is
//!   refused (unmarked, it would be deleted with the game), a channel the sync
//!   created for a game, text or voice, cannot be marked (marked, it would outlive its
//!   game), and only a text channel can be marked at all. A managed channel that
//!   does not exist is a skip. `[role <id>]` is refused for the campaigns' admin role,
//!   the organisers' role, `@everyone` and every game's guest and host role
//!   (`discord_roles`, `discord_host_roles`), for a role granting any moderator's
//!   permission ([`POWERFUL_PERMISSIONS`]: Administrator, Manage Server, Manage Roles,
//!   Manage Channels, Manage Messages, Kick or Ban Members, ...) and for one an
//!   integration manages (as the guild's role list says each run), and for a role not
//!   below the bot's own highest role (unless the bot owns the guild), which Discord
//!   would refuse at every run: a server that added Tavern through its install link
//!   has Tavern's role at the bottom of its list until an admin drags it up, and the
//!   alert says so. A refused shortcode is a line in the run's report
//!   ([`DiscordReport::skipped`]) every run, and a WARN in the log and an alert to the
//!   organisers once (Tavern's own key `schema::REFUSED_SHORTCODES`). A run forgets
//!   the records that no longer apply ([`stale_refusals`]: accepted now, gone from
//!   the event, or the event started or is no longer tracked), so the record does not
//!   grow without end and a shortcode refused again later is told again.
//! - **A game channel an admin closed to Tavern** (Discord answers the sync's writes
//!   to it with 403 Missing Access, or Missing Permissions) is not a failure of the
//!   run: the series' line goes to [`DiscordReport::skipped`] every run with what to
//!   give back, the run's other writes for the series (role grants) go on, its
//!   announcement waits (see "Announcements"), and the organisers are alerted once,
//!   with a WARN in the log (Tavern's own key `schema::CLOSED_CHANNELS`; any write to
//!   the channel that succeeds again, an edit or an announcement, clears it, and so
//!   does a run that finds the channel's overwrites exactly as Tavern sets them, which
//!   let Tavern in (an admin gave it back as it was, with nothing to write since), so
//!   closing it again is told again). So `failed` counts what Tavern or Discord got
//!   wrong, not what an admin chose; `tavern check` reports it too.
//! - **Announcements**: one message per run and series naming the players and hosts
//!   who just got a role, pinging exactly them (allowed mentions name those users):
//!   players are welcomed to the table, a new host is told they host the game and
//!   given the hosts already there as co-hosts (named, not pinged); a host who also
//!   RSVP'd is welcomed as a host only. A
//!   grant Discord refused leaves its user out of the message (the next run, granting
//!   again, announces them then). An announcement Discord refused (the channel closed
//!   to Tavern, or any other failure) is owed: its newcomers already hold their role,
//!   so no later plan counts them new, and Tavern keeps them in its own key
//!   `schema::unannounced` (read for every game channel in one round trip a run, kept
//!   30 days after the last addition) until an announcement gets through, which names
//!   them with that run's newcomers; one who lost the role meanwhile is left out.
//!   Who an announcement that got through welcomed is kept in Tavern's own key
//!   `schema::welcomed` (deleted with the channel): someone who comes back to the
//!   game (unlinked and linked again, or gave a withdrawn RSVP again) gets the role
//!   again without a second welcome, as a player or as a host.
//! - **Free spots**: upcoming tracked events whose Meetup RSVP limit (`maxTickets`)
//!   and RSVPs this run's step 1 read, with the limit not reached, soonest first. The
//!   seats taken count each YES RSVP's guests too, as Meetup's limit does. Step 1
//!   reads only each series' next event's RSVPs, so a later session (whose stored
//!   RSVPs may be missing or old) is not listed: better no line than a wrong count.
//!   Neither the limit nor the guests are in the seed, so only this run's answer
//!   counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use discord::model::{
    ChannelEdit, ChannelId, ChannelKind, ChannelSpec, GuildChannel, GuildId, GuildMember,
    GuildRole, Overwrite, OverwriteTarget, Reply, RoleId, UserId, permissions,
};
use discord::{Discord, RestError};

use crate::config::DiscordSettings;
use crate::domain::{
    EventSeriesId, MeetupEventId, MeetupUserId, SeriesType, series_name, session_counts,
};
use crate::lifecycle::alert_organisers;
use crate::repo::managed::Newcomers;
use crate::repo::{
    DiscordView, FreeSpotsMessage, Orphan, Registration, Repo, RepoError, SeriesState,
};
use crate::sync::EventExtras;

/// Discord's limit of channels in one category.
pub const CATEGORY_LIMIT: usize = 50;

/// Why a run could not start (each series' own failures are in [`DiscordReport`]).
#[derive(Debug, thiserror::Error)]
pub enum DiscordSyncError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("could not read the guild from Discord: {0}")]
    Discord(RestError),
}

impl From<RestError> for DiscordSyncError {
    fn from(e: RestError) -> DiscordSyncError {
        DiscordSyncError::Discord(e)
    }
}

/// What a run did, for the log and `tavern campaigns sync --once`: one line per thing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscordReport {
    pub created: Vec<String>,
    pub changed: Vec<String>,
    pub deleted: Vec<String>,
    /// Series left alone and shortcodes ignored, with why.
    pub skipped: Vec<String>,
    /// What failed, with why; the next run tries again.
    pub failed: Vec<String>,
    /// Series with an upcoming or running event.
    pub series: usize,
    /// Redis round trips of the read.
    pub redis_round_trips: usize,
    /// What the lines above did, counted by kind (for `/sync`'s answer).
    pub tally: DiscordTally,
}

/// What one run changed on Discord, counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscordTally {
    /// Game text channels set up for a series (made, or a managed channel taken over).
    pub channels_set_up: usize,
    /// Voice channels made for online series.
    pub voice_channels_made: usize,
    /// Roles given to members (guest, host and `[role]` roles).
    pub roles_given: usize,
    /// Guest roles taken back: the member has no yes RSVP to a session still to come
    /// (withdrawn, or only to sessions that are over) or no Meetup account linked.
    pub roles_taken: usize,
    /// Of `roles_taken`, those whose member has no Meetup account linked any more.
    pub roles_taken_unlinked: usize,
    /// Game channels whose topic, category or permissions were corrected.
    pub channels_updated: usize,
    /// Announcements of newcomers posted.
    pub welcomes: usize,
    /// Leftover channels and roles (`orphaned_*`) deleted.
    pub leftovers_deleted: usize,
    /// Whether the free-spots message was posted or edited.
    pub free_spots_updated: bool,
}

impl DiscordTally {
    /// Whether the run changed nothing on Discord.
    pub fn is_empty(&self) -> bool {
        *self == DiscordTally::default()
    }
}

/// Discord as one run sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscordState {
    pub guild: GuildId,
    pub bot: UserId,
    pub channels: BTreeMap<ChannelId, GuildChannel>,
    /// The guild's roles, with what each grants across the guild and whether an
    /// integration manages it (a `[role]` shortcode never hands out a powerful one:
    /// [`refused_role`]).
    pub roles: BTreeMap<RoleId, GuildRole>,
    pub members: BTreeMap<UserId, BTreeSet<RoleId>>,
    /// The guild's owner, whom the role hierarchy does not bind (`None`: unknown).
    pub owner: Option<UserId>,
}

impl DiscordState {
    /// Builds the state from what Discord answered.
    pub fn new(
        guild: GuildId,
        bot: UserId,
        channels: Vec<GuildChannel>,
        roles: Vec<GuildRole>,
        members: Vec<GuildMember>,
        owner: Option<UserId>,
    ) -> DiscordState {
        DiscordState {
            owner,
            guild,
            bot,
            channels: channels.into_iter().map(|c| (c.id, c)).collect(),
            roles: roles.into_iter().map(|r| (r.id, r)).collect(),
            members: members
                .into_iter()
                .map(|m| (m.user, m.roles.into_iter().collect()))
                .collect(),
        }
    }

    /// Whether Discord would refuse the bot giving `role`: it is not below the bot's
    /// highest role (level counts as above), and the bot does not own the guild.
    pub fn above_bot(&self, role: RoleId) -> bool {
        if self.owner == Some(self.bot) {
            return false;
        }
        let Some(position) = self.roles.get(&role).map(|r| r.position) else {
            return false;
        };
        let top = self
            .members
            .get(&self.bot)
            .into_iter()
            .flatten()
            .filter_map(|r| self.roles.get(r))
            .map(|r| r.position)
            .max()
            .unwrap_or(0);
        position >= top
    }

    fn children(&self, category: ChannelId) -> usize {
        self.channels
            .values()
            .filter(|c| c.parent_id == Some(category))
            .count()
    }
}

/// A channel to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChannel {
    pub name: String,
    pub parent: Option<ChannelId>,
}

/// What is missing for a series and is created (then registered) first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Creation {
    /// A new text channel.
    pub text: Option<NewChannel>,
    /// `[channel <id>]`: an existing channel to register as the series' channel.
    pub reuse: Option<ChannelId>,
    /// The guest and host roles' names, when the channel has no roles yet.
    pub roles: Option<(String, String)>,
    /// A new voice channel (online series).
    pub voice: Option<NewChannel>,
}

/// The edits that bring a set-up series in line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub edits: Vec<(ChannelId, ChannelEdit)>,
    pub grants: Vec<(UserId, RoleId)>,
    pub revokes: Vec<(UserId, RoleId)>,
    /// Of `revokes`, the members with no Meetup account linked (unlinked since the
    /// sync gave them the role); the others have no yes RSVP to a session to come.
    pub unlinked: BTreeSet<UserId>,
    /// The announcement to post in the text channel.
    pub announce: Option<Reply>,
    /// The series' channels whose overwrites are already exactly what Tavern sets: its
    /// own overwrite lets it see, write in and manage them, so one recorded as closed
    /// to Tavern is open again (no request needed to know it).
    pub open: Vec<ChannelId>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
            && self.grants.is_empty()
            && self.revokes.is_empty()
            && self.announce.is_none()
    }
}

/// What [`plan_series`] decides for one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Create(Creation),
    Update(Changes),
    Skip(String),
}

/// Room left in the categories during one run (channels made or moved in this run
/// count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Categories {
    counts: BTreeMap<ChannelId, usize>,
}

impl Categories {
    pub fn new(settings: &DiscordSettings, discord: &DiscordState) -> Categories {
        let counts = settings
            .categories
            .iter()
            .chain(&settings.one_shot_categories)
            .map(|c| (*c, discord.children(*c)))
            .collect();
        Categories { counts }
    }

    /// The first of `candidates` with room, counted as taken.
    fn take(&mut self, candidates: &[ChannelId]) -> Option<ChannelId> {
        let chosen = candidates
            .iter()
            .copied()
            .find(|c| self.counts.get(c).copied().unwrap_or(0) < CATEGORY_LIMIT)?;
        *self.counts.entry(chosen).or_insert(0) += 1;
        Some(chosen)
    }

    /// `preferred` (the text channel's category) when it has room, else the first of
    /// `candidates` with room; counted as taken. `None` (the top level) when
    /// `preferred` is `None` or nothing has room.
    fn take_beside(
        &mut self,
        preferred: Option<ChannelId>,
        candidates: &[ChannelId],
    ) -> Option<ChannelId> {
        let preferred = preferred?;
        match self.counts.get_mut(&preferred) {
            Some(count) if *count < CATEGORY_LIMIT => {
                *count += 1;
                Some(preferred)
            }
            Some(_) => self.take(candidates),
            // Not a configured category: Tavern does not count it, so it goes there.
            None => Some(preferred),
        }
    }

    fn release(&mut self, category: Option<ChannelId>) {
        if let Some(count) = category.and_then(|c| self.counts.get_mut(&c)) {
            *count = count.saturating_sub(1);
        }
    }
}

/// The categories a series' channel belongs in.
pub fn categories_for(settings: &DiscordSettings, series_type: SeriesType) -> &[ChannelId] {
    match series_type {
        SeriesType::Adventure if !settings.one_shot_categories.is_empty() => {
            &settings.one_shot_categories
        }
        _ => &settings.categories,
    }
}

/// A channel name Discord accepts, from an event title: lower case letters and digits,
/// dashes between words, at most 100 characters; `fallback` when nothing is left.
pub fn channel_name(title: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out: String = out.trim_end_matches('-').chars().take(100).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        fallback.chars().take(100).collect()
    } else {
        out
    }
}

/// `s` cut to at most `max` characters.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The permission overwrites of a game channel (see "Permissions" in the module docs),
/// in a fixed order.
///
/// Discord lets the bot grant in an overwrite only what it holds itself, so it needs
/// every permission given here ([`BOT_PERMISSIONS`]).
pub fn overwrites(
    settings: &DiscordSettings,
    bot: UserId,
    guest: Option<RoleId>,
    host: Option<RoleId>,
    kind: ChannelKind,
) -> Vec<Overwrite> {
    use permissions::*;
    let base = match kind {
        ChannelKind::Voice => VIEW_CHANNEL | CONNECT | SPEAK,
        _ => VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY,
    };
    let role = |id: RoleId, allow: u64| Overwrite {
        target: OverwriteTarget::Role(id),
        allow,
        deny: 0,
    };
    let mut out = vec![Overwrite {
        target: OverwriteTarget::Role(settings.guild.cast()),
        allow: 0,
        deny: VIEW_CHANNEL,
    }];
    if let Some(guest) = guest {
        out.push(role(guest, base));
    }
    if let Some(host) = host {
        out.push(role(host, base | MANAGE_MESSAGES));
    }
    if let Some(organiser) = settings.organiser_role {
        out.push(role(organiser, base));
    }
    out.push(Overwrite {
        target: OverwriteTarget::Member(bot),
        allow: base | MANAGE_CHANNELS | MANAGE_MESSAGES,
        deny: 0,
    });
    out
}

/// The overwrites of a managed channel a series took over: what the organisers set,
/// with the guest role's, the host role's and the bot's entries as in [`overwrites`]
/// (the same permissions a game channel gives them); `@everyone` and every other entry
/// stay as they are.
pub fn borrowed_overwrites(
    current: &[Overwrite],
    settings: &DiscordSettings,
    bot: UserId,
    guest: RoleId,
    host: RoleId,
) -> Vec<Overwrite> {
    let ours = |o: &Overwrite| match o.target {
        OverwriteTarget::Role(r) => r == guest || r == host,
        OverwriteTarget::Member(u) => u == bot,
    };
    let mut out: Vec<Overwrite> = current.iter().filter(|o| !ours(o)).cloned().collect();
    out.extend(
        overwrites(settings, bot, Some(guest), Some(host), ChannelKind::Text)
            .into_iter()
            .filter(ours),
    );
    out
}

/// Overwrites in a comparable form (Discord returns them in any order).
fn overwrite_key(list: &[Overwrite]) -> Vec<(u8, u64, u64, u64)> {
    let mut keys: Vec<(u8, u64, u64, u64)> = list
        .iter()
        .map(|o| match o.target {
            OverwriteTarget::Role(r) => (0, r.get(), o.allow, o.deny),
            OverwriteTarget::Member(u) => (1, u.get(), o.allow, o.deny),
        })
        .collect();
    keys.sort_unstable();
    keys
}

/// The topic of a game channel: its next session.
pub fn topic(time: DateTime<Utc>, link: &str) -> String {
    cut(
        &format!(
            "Next session: {} {link}",
            time.format("%a %-d %b %Y, %H:%M UTC")
        ),
        1024,
    )
}

/// Everything [`plan_series`] looks at besides the series itself.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub settings: &'a DiscordSettings,
    pub discord: &'a DiscordState,
    pub links: &'a BTreeMap<MeetupUserId, UserId>,
    pub extras: &'a BTreeMap<MeetupEventId, EventExtras>,
    /// `managed_discord_channels`: the channels a `[channel]` shortcode may take over.
    pub managed: &'a BTreeSet<ChannelId>,
    /// Every game's guest and host role: never handed out by a `[role]` shortcode.
    pub game_roles: &'a BTreeSet<RoleId>,
    pub now: DateTime<Utc>,
}

/// The permissions that make a role a moderator's or an admin's: a `[role]` shortcode
/// never hands out a role granting any of them.
pub const POWERFUL_PERMISSIONS: u64 = permissions::ADMINISTRATOR
    | permissions::MANAGE_GUILD
    | permissions::MANAGE_ROLES
    | permissions::MANAGE_CHANNELS
    | permissions::MANAGE_MESSAGES
    | permissions::MANAGE_THREADS
    | permissions::MANAGE_WEBHOOKS
    | permissions::MANAGE_GUILD_EXPRESSIONS
    | permissions::KICK_MEMBERS
    | permissions::BAN_MEMBERS
    | permissions::MODERATE_MEMBERS
    | permissions::MENTION_EVERYONE
    | permissions::VIEW_AUDIT_LOG
    | permissions::MUTE_MEMBERS
    | permissions::DEAFEN_MEMBERS
    | permissions::MOVE_MEMBERS
    | permissions::MANAGE_NICKNAMES
    | permissions::MANAGE_EVENTS;

/// Why a `[role <id>]` shortcode is refused, if it is: the configured admin or
/// organiser role, `@everyone`, any game's guest or host role, a role granting a
/// moderator's permission ([`POWERFUL_PERMISSIONS`]), one an integration manages, or
/// one Discord would not let the bot give ([`DiscordState::above_bot`]; see
/// "Shortcodes" in the module docs).
pub fn refused_role(
    role: RoleId,
    settings: &DiscordSettings,
    game_roles: &BTreeSet<RoleId>,
    discord: &DiscordState,
) -> Option<&'static str> {
    let info = discord.roles.get(&role);
    if settings.admin_role == Some(role) {
        Some("it is the campaigns' admin role")
    } else if settings.organiser_role == Some(role) {
        Some("it is the organisers' role")
    } else if role.get() == settings.guild.get() {
        Some("it is @everyone")
    } else if game_roles.contains(&role) {
        Some("it is a game's player or host role")
    } else if info.is_some_and(|r| r.permissions & POWERFUL_PERMISSIONS != 0) {
        Some(
            "it grants a moderator's permissions (such as Administrator, Manage Server, Manage Roles, Kick or Ban Members)",
        )
    } else if info.is_some_and(|r| r.managed) {
        Some("an integration manages it")
    } else if discord.above_bot(role) {
        Some(
            "it is not below Tavern's own role, and Discord lets Tavern give only roles below its own: an admin can drag Tavern's role above it in Server Settings → Roles",
        )
    } else {
        None
    }
}

/// Why a `[channel <id>]` shortcode is refused, if it is: only a managed channel
/// (`/manage-channel`) may be taken over.
pub fn refused_channel(channel: ChannelId, managed: &BTreeSet<ChannelId>) -> Option<&'static str> {
    (!managed.contains(&channel))
        .then_some("only a channel an admin marked with `/manage-channel` can be taken over")
}

/// A `[role]` or `[channel]` shortcode the sync refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedShortcode {
    pub event: MeetupEventId,
    /// The shortcode as an organiser would write it, e.g. `[role 5]`.
    pub shortcode: String,
    pub why: &'static str,
}

impl RefusedShortcode {
    /// Its member of `schema::REFUSED_SHORTCODES` (one per event and shortcode).
    pub fn record(&self) -> String {
        let code = self
            .shortcode
            .trim_matches(|c| c == '[' || c == ']')
            .replace(' ', ":");
        format!("{}:{code}", self.event)
    }
}

/// The `[role]` and `[channel]` shortcodes of a series' events that are not over which
/// the sync refuses; a `[channel]` only while the series has no channel yet.
pub fn refused_shortcodes(series: &SeriesState, input: PlanInput<'_>) -> Vec<RefusedShortcode> {
    let mut out = Vec::new();
    for event in series
        .events
        .iter()
        .filter(|e| session_counts(e.time, input.now))
    {
        let Some(extra) = input.extras.get(&event.id) else {
            continue;
        };
        if series.channel.is_none()
            && let Some(channel) = extra.channel
            && let Some(why) = refused_channel(channel, input.managed)
        {
            out.push(RefusedShortcode {
                event: event.id.clone(),
                shortcode: format!("[channel {channel}]"),
                why,
            });
        }
        for role in &extra.roles {
            if let Some(why) = refused_role(*role, input.settings, input.game_roles, input.discord)
            {
                out.push(RefusedShortcode {
                    event: event.id.clone(),
                    shortcode: format!("[role {role}]"),
                    why,
                });
            }
        }
    }
    out
}

/// Decides what one series needs, without I/O (see the module docs). `categories`
/// carries the room left in the categories from one series to the next. `None`: the
/// series has no upcoming or running event ([`session_counts`]).
pub fn plan_series(
    series: &SeriesState,
    input: PlanInput<'_>,
    categories: &mut Categories,
) -> Option<Step> {
    let PlanInput {
        settings,
        discord,
        links,
        extras,
        managed,
        game_roles,
        now,
    } = input;
    // Upcoming or still running: a session counts until it is over.
    let upcoming: Vec<_> = series
        .events
        .iter()
        .filter(|e| session_counts(e.time, now))
        .collect();
    // The next session to name and link: the first not started yet, else the running one.
    let next = upcoming
        .iter()
        .find(|e| e.time >= now)
        .or(upcoming.last())?;
    let series_type = series.series_type.unwrap_or(SeriesType::Adventure);
    let wanted_categories = categories_for(settings, series_type);

    // What exists.
    let text = match series.channel {
        Some(channel) => match discord.channels.get(&channel) {
            Some(c) => Some(c),
            None => {
                return Some(Step::Skip(format!(
                    "its channel {channel} no longer exists on Discord"
                )));
            }
        },
        None => None,
    };
    for role in [series.guest_role, series.host_role].into_iter().flatten() {
        if !discord.roles.contains_key(&role) {
            return Some(Step::Skip(format!(
                "its role {role} no longer exists on Discord"
            )));
        }
    }
    let voice = match series.voice_channel {
        Some(channel) => match discord.channels.get(&channel) {
            Some(c) => Some(c),
            None => {
                return Some(Step::Skip(format!(
                    "its voice channel {channel} no longer exists on Discord"
                )));
            }
        },
        None => None,
    };

    // What is missing, named after the series (the title without "Session N").
    let name = series_name(&next.name);
    let mut creation = Creation::default();
    let text_parent = match text {
        Some(text) => text.parent_id,
        None => {
            // Only a managed channel is taken over; a refused one is ignored (the
            // series gets its own channel, the organisers are told).
            let reuse = upcoming
                .iter()
                .chain(series.events.iter().collect::<Vec<_>>().iter())
                .find_map(|e| extras.get(&e.id).and_then(|x| x.channel))
                .filter(|c| refused_channel(*c, managed).is_none());
            match reuse {
                Some(channel) => match discord.channels.get(&channel) {
                    Some(c) if c.kind == Some(ChannelKind::Text) => {
                        creation.reuse = Some(channel);
                        c.parent_id
                    }
                    _ => {
                        return Some(Step::Skip(format!(
                            "its `[channel {channel}]` is not a text channel of the guild"
                        )));
                    }
                },
                None => {
                    let parent = categories.take(wanted_categories);
                    creation.text = Some(NewChannel {
                        name: channel_name(name, &format!("game-{}", series.id)),
                        parent,
                    });
                    parent
                }
            }
        }
    };
    if series.guest_role.is_none() || series.host_role.is_none() {
        if series.guest_role.is_some() || series.host_role.is_some() {
            return Some(Step::Skip(
                "its channel has only one of its two roles".to_owned(),
            ));
        }
        creation.roles = Some((cut(name, 100), cut(&format!("{name} (host)"), 100)));
    }
    if series.is_online && voice.is_none() {
        creation.voice = Some(NewChannel {
            name: cut(name, 100),
            parent: categories.take_beside(text_parent, wanted_categories),
        });
    }
    if creation != Creation::default() {
        return Some(Step::Create(creation));
    }
    let (Some(text), Some(guest), Some(host)) = (text, series.guest_role, series.host_role) else {
        return Some(Step::Skip("its channel or roles are missing".to_owned()));
    };

    // Edits. A managed channel (taken over with `[channel]`) stays the organisers':
    // only the game's roles and the bot are added to its overwrites.
    let borrowed = managed.contains(&text.id);
    let mut changes = Changes::default();
    let mut parent = text.parent_id;
    if !borrowed
        && !wanted_categories.is_empty()
        && !parent.is_some_and(|p| wanted_categories.contains(&p))
        && let Some(chosen) = categories.take(wanted_categories)
    {
        categories.release(parent);
        parent = Some(chosen);
    }
    let wanted_topic = topic(next.time, &next.link);
    let wanted = if borrowed {
        borrowed_overwrites(&text.overwrites, settings, discord.bot, guest, host)
    } else {
        overwrites(
            settings,
            discord.bot,
            Some(guest),
            Some(host),
            ChannelKind::Text,
        )
    };
    let mut edit = ChannelEdit::default();
    if !borrowed && text.topic.as_deref() != Some(wanted_topic.as_str()) {
        edit.topic = Some(wanted_topic);
    }
    if parent != text.parent_id {
        edit.parent_id = Some(parent);
    }
    if overwrite_key(&text.overwrites) == overwrite_key(&wanted) {
        changes.open.push(text.id);
    } else {
        edit.overwrites = Some(wanted);
    }
    if !edit.is_empty() {
        changes.edits.push((text.id, edit));
    }
    if let Some(voice) = voice {
        let wanted = overwrites(
            settings,
            discord.bot,
            Some(guest),
            Some(host),
            ChannelKind::Voice,
        );
        let mut edit = ChannelEdit::default();
        // The voice channel follows its text channel into a configured category with
        // room (moving it into a full one would only be refused).
        if voice.parent_id != parent
            && !wanted_categories.is_empty()
            && !voice
                .parent_id
                .is_some_and(|p| wanted_categories.contains(&p))
            && let Some(chosen) = categories.take_beside(parent, wanted_categories)
        {
            categories.release(voice.parent_id);
            edit.parent_id = Some(Some(chosen));
        }
        if overwrite_key(&voice.overwrites) == overwrite_key(&wanted) {
            changes.open.push(voice.id);
        } else {
            edit.overwrites = Some(wanted);
        }
        if !edit.is_empty() {
            changes.edits.push((voice.id, edit));
        }
    }

    // Roles.
    let linked = |u: &MeetupUserId| links.get(u).copied();
    // Tavern itself never plays or hosts, even linked to a Meetup member (`/link`
    // refuses it; a link made before is left alone).
    let is_member = |u: &UserId| *u != discord.bot && discord.members.contains_key(u);
    let holds = |u: &UserId, r: RoleId| {
        discord
            .members
            .get(u)
            .is_some_and(|roles| roles.contains(&r))
    };
    let players: BTreeSet<UserId> = upcoming
        .iter()
        .flat_map(|e| e.users.iter())
        .filter_map(linked)
        .filter(|u| !series.removed_users.contains(u) && is_member(u))
        .collect();
    let hosts: BTreeSet<UserId> = upcoming
        .iter()
        .flat_map(|e| e.hosts.iter())
        .filter_map(linked)
        .filter(|u| !series.removed_hosts.contains(u) && is_member(u))
        .collect();
    let new_players: Vec<UserId> = players
        .iter()
        .copied()
        .filter(|u| !holds(u, guest))
        .collect();
    let new_hosts: Vec<UserId> = hosts.iter().copied().filter(|u| !holds(u, host)).collect();
    changes
        .grants
        .extend(new_players.iter().map(|u| (*u, guest)));
    changes.grants.extend(new_hosts.iter().map(|u| (*u, host)));
    for (user, roles) in &discord.members {
        if roles.contains(&guest)
            && series.synced_guests.contains(user)
            && !players.contains(user)
            && !hosts.contains(user)
        {
            changes.revokes.push((*user, guest));
            if !links.values().any(|linked| linked == user) {
                changes.unlinked.insert(*user);
            }
        }
    }
    for event in &upcoming {
        let Some(extra) = extras.get(&event.id) else {
            continue;
        };
        for role in extra.roles.iter().filter(|r| {
            discord.roles.contains_key(r)
                && refused_role(**r, settings, game_roles, discord).is_none()
        }) {
            for user in event.users.iter().filter_map(linked) {
                if is_member(&user)
                    && !holds(&user, *role)
                    && !changes.grants.contains(&(user, *role))
                {
                    changes.grants.push((user, *role));
                }
            }
        }
    }
    let co_hosts: Vec<UserId> = discord
        .members
        .iter()
        .filter(|(u, roles)| roles.contains(&host) && !new_hosts.contains(u))
        .map(|(u, _)| *u)
        .collect();
    // Someone welcomed before (who unlinked and linked again, or gave a withdrawn RSVP
    // again) gets the role back without a second welcome.
    let unwelcomed = |users: &[UserId], welcomed: &BTreeSet<UserId>| -> Vec<UserId> {
        users
            .iter()
            .filter(|u| !welcomed.contains(u))
            .copied()
            .collect()
    };
    changes.announce = announcement(
        &unwelcomed(&new_players, &series.welcomed.players),
        &unwelcomed(&new_hosts, &series.welcomed.hosts),
        &co_hosts,
    );
    Some(Step::Update(changes))
}

/// The announcement of newly added players and hosts, pinging exactly them.
///
/// Players are welcomed to the table; a new host is told they host the game, with
/// `co_hosts` (those who already hold the host role) named as co-hosts without a
/// ping. A host who also RSVP'd (and so got the guest role too) is not welcomed as a
/// player: a new host is welcomed as a host, a co-host not at all.
pub fn announcement(players: &[UserId], hosts: &[UserId], co_hosts: &[UserId]) -> Option<Reply> {
    let list = |users: &[&UserId]| {
        users
            .iter()
            .map(|u| format!("<@{u}>"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let welcomed: Vec<&UserId> = players
        .iter()
        .filter(|u| !hosts.contains(u) && !co_hosts.contains(u))
        .collect();
    let hosts_named: Vec<&UserId> = hosts.iter().collect();
    if welcomed.is_empty() && hosts_named.is_empty() {
        return None;
    }
    let co_hosts: Vec<&UserId> = co_hosts.iter().filter(|u| !hosts.contains(u)).collect();
    let mut lines = Vec::new();
    if !welcomed.is_empty() {
        lines.push(format!("Welcome to the table, {}!", list(&welcomed)));
    }
    if !hosts_named.is_empty() {
        let mut line = if hosts_named.len() == 1 {
            format!("{}, you host this game.", list(&hosts_named))
        } else {
            format!("{}, you host this game together.", list(&hosts_named))
        };
        match co_hosts.len() {
            0 => {}
            1 => line.push_str(&format!(" Your co-host: {}.", list(&co_hosts))),
            _ => line.push_str(&format!(" Your co-hosts: {}.", list(&co_hosts))),
        }
        lines.push(line);
    }
    let mut reply = Reply::text(lines.join("\n"));
    for user in welcomed.into_iter().chain(hosts_named) {
        reply = reply.ping(*user);
    }
    Some(reply)
}

/// The free-spots message's text: upcoming events whose RSVP limit and taken seats
/// (guests included) this run read from Meetup, limit not yet reached, soonest first
/// (at most 2,000 characters, Discord's limit).
pub fn free_spots(
    series: &[SeriesState],
    extras: &BTreeMap<MeetupEventId, EventExtras>,
    now: DateTime<Utc>,
) -> String {
    let mut open: Vec<(DateTime<Utc>, String)> = Vec::new();
    for event in series.iter().flat_map(|s| &s.events) {
        let Some((max, taken)) = extras
            .get(&event.id)
            .and_then(|x| x.max_tickets.zip(x.seats_taken))
        else {
            continue;
        };
        if event.time < now || taken >= max {
            continue;
        }
        let free = max - taken;
        open.push((
            event.time,
            format!(
                "- **{}** ({}): {free} of {max} seat{} free <{}>",
                event.name,
                event.time.format("%a %-d %b, %H:%M UTC"),
                if max == 1 { "" } else { "s" },
                event.link
            ),
        ));
    }
    open.sort();
    let mut text = String::from("**Free spots**\n");
    if open.is_empty() {
        text.push_str("No open seats right now.");
    }
    for (_, line) in open {
        if text.len() + line.len() + 1 > 1990 {
            text.push('…');
            break;
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.trim_end().to_owned()
}

/// What the campaigns need of the bot in the community's guild: make, move and delete
/// the game channels and roles, give the roles, grant what [`overwrites`] grants (the
/// channels' messages, the voice channel, Manage Messages for hosts), and ping the
/// hosts' role in reminders and the players' role when a game ends or a session is
/// scheduled (Mention Everyone: Tavern's roles are not mentionable by anyone). The roles it gives must sit below the bot's own role in the server's list.
pub const BOT_PERMISSIONS: u64 = permissions::VIEW_CHANNEL
    | permissions::SEND_MESSAGES
    | permissions::READ_MESSAGE_HISTORY
    | permissions::CONNECT
    | permissions::SPEAK
    | permissions::MANAGE_CHANNELS
    | permissions::MANAGE_MESSAGES
    | permissions::MANAGE_ROLES
    | permissions::MENTION_EVERYONE;

/// Reads Discord for one run.
pub async fn discord_state(discord: &Discord, guild: GuildId) -> Result<DiscordState, RestError> {
    let bot = discord.current_user_id().await?;
    let channels = discord.guild_channels(guild).await?;
    let roles = discord.guild_roles(guild).await?;
    let members = discord.guild_members(guild).await?;
    let owner = discord.guild(guild).await?.and_then(|g| g.owner_id);
    Ok(DiscordState::new(
        guild, bot, channels, roles, members, owner,
    ))
}

/// Tells a running Discord step to stop before its next Discord write of a series
/// ([`sync_discord_until`]); set when the run lost its sync guard
/// ([`crate::jobs`]). Cheap to clone: every clone is the same signal.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// Asks the run to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the run was asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The line a stopped run adds to [`DiscordReport::failed`].
pub const STOPPED: &str = "stopped: the sync guard was lost (it expired or another sync took it); the next run finishes the work";

/// Runs step 2 once (see the module docs). `extras` is what step 1 read from Meetup
/// ([`crate::SyncReport::extras`]).
pub async fn sync_discord(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    extras: &BTreeMap<MeetupEventId, EventExtras>,
    now: DateTime<Utc>,
) -> Result<DiscordReport, DiscordSyncError> {
    sync_discord_until(repo, discord, settings, extras, now, &StopSignal::default()).await
}

/// What a stopped run hands back: the report so far, with [`STOPPED`].
fn stopped(report: &mut DiscordReport) -> Result<DiscordReport, DiscordSyncError> {
    tracing::error!("the Discord sync stops: {STOPPED}");
    report.failed.push(STOPPED.to_owned());
    Ok(std::mem::take(report))
}

/// [`sync_discord`] that stops once `stop` is set: it deletes no orphan and starts no
/// further series then (a series already started finishes its creation and its undo,
/// so nothing is left half made), leaves the free-spots message alone, and says so
/// in [`DiscordReport::failed`] ([`STOPPED`]).
pub async fn sync_discord_until(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    extras: &BTreeMap<MeetupEventId, EventExtras>,
    now: DateTime<Utc>,
    stop: &StopSignal,
) -> Result<DiscordReport, DiscordSyncError> {
    if stop.is_stopped() {
        return stopped(&mut DiscordReport::default());
    }
    let view = repo.discord_view().await?;
    for what in &view.unreadable {
        tracing::warn!(%what, "unreadable campaign data left out of the Discord sync (see `tavern check`)");
    }
    let channels: Vec<ChannelId> = view.series.iter().filter_map(|s| s.channel).collect();
    let mut owed = repo.unannounced(&channels).await?;
    let mut state = discord_state(discord, settings.guild).await?;
    let mut report = DiscordReport {
        redis_round_trips: view.round_trips + usize::from(!channels.is_empty()),
        ..DiscordReport::default()
    };
    if stop.is_stopped() {
        return stopped(&mut report);
    }
    delete_orphans(repo, discord, settings.guild, &view.orphans, &mut report).await;

    let DiscordView {
        series,
        links,
        free_spots: stored_free_spots,
        managed_channels,
        mut game_roles,
        closed_channels,
        refused_shortcodes: told_refused,
        series_left_out,
        ..
    } = view;
    // Every shortcode this run refuses, to forget those told before that no longer apply.
    let mut refused_now: BTreeSet<String> = BTreeSet::new();
    game_roles.extend(
        series
            .iter()
            .flat_map(|s| [s.guest_role, s.host_role])
            .flatten(),
    );
    let mut categories = Categories::new(settings, &state);
    let mut synced: Vec<SeriesState> = Vec::with_capacity(series.len());
    for mut current in series {
        if stop.is_stopped() {
            return stopped(&mut report);
        }
        let mut created_once = false;
        loop {
            let input = PlanInput {
                settings,
                discord: &state,
                links: &links,
                extras,
                managed: &managed_channels,
                game_roles: &game_roles,
                now,
            };
            let Some(step) = plan_series(&current, input, &mut categories) else {
                break;
            };
            if !created_once {
                report.series += 1;
                let refused = refused_shortcodes(&current, input);
                tell_refused(repo, discord, settings, &refused, &mut report).await;
                refused_now.extend(refused.iter().map(RefusedShortcode::record));
            }
            match step {
                Step::Skip(why) => {
                    tracing::warn!(series = %current.id, %why, "series not synced to Discord");
                    report.skipped.push(format!("series {}: {why}", current.id));
                    break;
                }
                Step::Create(creation) if !created_once => {
                    created_once = true;
                    let made = create(
                        repo,
                        discord,
                        settings,
                        &mut state,
                        &mut current,
                        &creation,
                        &mut report,
                    )
                    .await;
                    game_roles.extend(
                        [current.guest_role, current.host_role]
                            .into_iter()
                            .flatten(),
                    );
                    match made {
                        Ok(()) => continue,
                        Err(why) => {
                            tracing::warn!(series = %current.id, %why, "could not set up the series on Discord");
                            report.failed.push(format!("series {}: {why}", current.id));
                            break;
                        }
                    }
                }
                Step::Create(_) => {
                    report.failed.push(format!(
                        "series {}: still incomplete after creating",
                        current.id
                    ));
                    break;
                }
                Step::Update(changes) => {
                    let owed = current
                        .channel
                        .and_then(|c| owed.remove(&c))
                        .unwrap_or_default();
                    let corrected = report.tally.channels_updated;
                    update(
                        repo,
                        discord,
                        settings,
                        &mut state,
                        &current,
                        changes,
                        owed,
                        &closed_channels,
                        &mut report,
                    )
                    .await;
                    if created_once {
                        // Channels made this run get their topic and overwrites now:
                        // set up, not corrected.
                        report.tally.channels_updated = corrected;
                    }
                    break;
                }
            }
        }
        synced.push(current);
    }

    if stop.is_stopped() {
        return stopped(&mut report);
    }
    let stale = stale_refusals(
        &told_refused,
        &refused_now,
        &synced,
        extras,
        series_left_out == 0,
        now,
    );
    if !stale.is_empty() {
        match repo.forget_refused_shortcodes(&stale).await {
            Ok(()) => {
                tracing::info!(forgotten = ?stale, "refused shortcodes that no longer apply forgotten");
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not forget the refused shortcodes that no longer apply; the next run tries again");
            }
        }
    }
    if let Some(channel) = settings.free_spots_channel {
        let content = free_spots(&synced, extras, now);
        if let Err(why) = refresh_free_spots(
            repo,
            discord,
            channel,
            content,
            stored_free_spots,
            &mut report,
        )
        .await
        {
            tracing::warn!(%why, "could not update the free-spots message");
            report.failed.push(format!("free-spots message: {why}"));
        }
    }
    tracing::info!(
        series = report.series,
        created = report.created.len(),
        changed = report.changed.len(),
        deleted = report.deleted.len(),
        skipped = report.skipped.len(),
        failed = report.failed.len(),
        "Discord sync done"
    );
    Ok(report)
}

/// The records of `told` (refused shortcodes the organisers were told about,
/// `schema::REFUSED_SHORTCODES`) that no longer apply, as the run that refused
/// `refused_now` sees it: the shortcode is accepted now or no longer in its event
/// (Meetup described the event this run, in `extras`), its event has started (Meetup
/// no longer lists it, nothing is given for it any more) or is no longer tracked. A
/// record whose event has not started but which Meetup did not describe this run (its
/// group failed) stays, and so does one of an event the run did not see while a
/// series was left out unread (`every_series_read` false): either may still apply.
pub fn stale_refusals(
    told: &BTreeSet<String>,
    refused_now: &BTreeSet<String>,
    series: &[SeriesState],
    extras: &BTreeMap<MeetupEventId, EventExtras>,
    every_series_read: bool,
    now: DateTime<Utc>,
) -> Vec<String> {
    let events: BTreeMap<&str, DateTime<Utc>> = series
        .iter()
        .flat_map(|s| &s.events)
        .map(|e| (e.id.as_str(), e.time))
        .collect();
    told.iter()
        .filter(|record| !refused_now.contains(*record))
        .filter(|record| {
            let event = record.split_once(':').map_or(record.as_str(), |(e, _)| e);
            match events.get(event) {
                Some(time) => {
                    *time < now
                        || MeetupEventId::parse(event).is_ok_and(|e| extras.contains_key(&e))
                }
                None => every_series_read,
            }
        })
        .cloned()
        .collect()
}

/// Reports refused shortcodes: each in the run's report; the first time one is seen
/// (Tavern's own key `schema::REFUSED_SHORTCODES`), also a warning in the log and an
/// alert to the organisers.
async fn tell_refused(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    refused: &[RefusedShortcode],
    report: &mut DiscordReport,
) {
    for r in refused {
        let line = format!("event {}: `{}` ignored: {}", r.event, r.shortcode, r.why);
        match repo.note_refused_shortcode(&r.record()).await {
            Ok(true) => {
                tracing::warn!(event = %r.event, shortcode = %r.shortcode, why = r.why, "shortcode refused");
                alert_organisers(
                    discord,
                    settings,
                    &format!(
                        "The Meetup event {} asks for `{}`; Tavern ignores it: {}.",
                        r.event, r.shortcode, r.why
                    ),
                )
                .await;
            }
            Ok(false) => {
                tracing::debug!(event = %r.event, shortcode = %r.shortcode, "shortcode refused again");
            }
            Err(e) => {
                tracing::warn!(event = %r.event, shortcode = %r.shortcode, why = r.why, error = %e, "shortcode refused (could not record that the organisers were told)");
            }
        }
        report.skipped.push(line);
    }
}

/// Reports a game channel whose writes Discord refused because an admin closed it to
/// Tavern: a line in the run's report every run; the first time since it was last
/// reachable (Tavern's own key `schema::CLOSED_CHANNELS`), also a warning in the log
/// and an alert to the organisers saying what to give back.
async fn tell_closed(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    series: &EventSeriesId,
    channel: ChannelId,
    error: &RestError,
    report: &mut DiscordReport,
) {
    let why = closed_reason(channel, error);
    match repo.note_closed_channel(channel).await {
        Ok(true) => {
            tracing::warn!(%series, %channel, %error, "game channel closed to Tavern");
            alert_organisers(
                discord,
                settings,
                &format!("Tavern cannot keep up the game <#{channel}> of series {series}: {why}."),
            )
            .await;
        }
        Ok(false) => {
            tracing::debug!(%series, %channel, "game channel still closed to Tavern");
        }
        Err(e) => {
            tracing::warn!(%series, %channel, %error, error_recording = %e, "game channel closed to Tavern (could not record that the organisers were told)");
        }
    }
    report
        .skipped
        .push(format!("series {series}: channel {channel} skipped: {why}"));
}

/// What the organisers read about a channel closed to Tavern: who closed it, what
/// Discord said, and what to give back.
fn closed_reason(channel: ChannelId, error: &RestError) -> String {
    let said = match error.code() {
        Some(50013) => "Missing Permissions",
        _ => "Missing Access",
    };
    format!(
        "a server admin closed channel {channel} to Tavern (Discord answered 403 {said}); \
         give Tavern's role View Channel, Send Messages, Manage Channels and Manage Roles \
         there again (or remove the overwrite that denies them), and the next sync puts \
         the game's permissions back"
    )
}

/// Whether a failed delete means the object is gone anyway.
fn already_gone(error: &RestError) -> bool {
    error.status() == Some(404)
}

async fn delete_orphans(
    repo: &Repo,
    discord: &Discord,
    guild: GuildId,
    orphans: &[Orphan],
    report: &mut DiscordReport,
) {
    for orphan in orphans {
        let deleted = match orphan {
            Orphan::Channel(c) | Orphan::VoiceChannel(c) => discord.delete_channel(*c).await,
            Orphan::Role(r) => discord.delete_role(guild, *r).await,
        };
        match deleted {
            Ok(()) => {
                report.tally.leftovers_deleted += 1;
                report.deleted.push(format!("orphan {orphan:?}"));
            }
            Err(e) if already_gone(&e) => {}
            Err(e) => {
                tracing::warn!(?orphan, error = %e, "could not delete an orphan; the next run tries again");
                report.failed.push(format!("orphan {orphan:?}: {e}"));
                continue;
            }
        }
        if let Err(e) = repo.remove_orphan(*orphan).await {
            tracing::warn!(?orphan, error = %e, "deleted an orphan but could not forget it");
        }
    }
}

/// Deletes what this run created and could not register; records what cannot be
/// deleted as an orphan.
async fn undo(
    repo: &Repo,
    discord: &Discord,
    guild: GuildId,
    created: &[Orphan],
    report: &mut DiscordReport,
) {
    for orphan in created {
        let deleted = match orphan {
            Orphan::Channel(c) | Orphan::VoiceChannel(c) => discord.delete_channel(*c).await,
            Orphan::Role(r) => discord.delete_role(guild, *r).await,
        };
        match deleted {
            Ok(()) => report.deleted.push(format!("unregistered {orphan:?}")),
            Err(e) if already_gone(&e) => {}
            Err(e) => {
                tracing::warn!(?orphan, error = %e, "could not delete an object the sync created; recording it as an orphan");
                match repo.add_orphan(*orphan).await {
                    Ok(()) => report
                        .failed
                        .push(format!("{orphan:?} left as an orphan: {e}")),
                    Err(r) => {
                        tracing::error!(?orphan, error = %r, "could not record an orphan either; it stays on Discord");
                        report
                            .failed
                            .push(format!("{orphan:?} left on Discord, unrecorded: {e}; {r}"));
                    }
                }
            }
        }
    }
}

/// Creates what `creation` names and registers it; see [`Step::Create`].
async fn create(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    state: &mut DiscordState,
    series: &mut SeriesState,
    creation: &Creation,
    report: &mut DiscordReport,
) -> Result<(), String> {
    let guild = settings.guild;
    let bot = state.bot;
    let mut created: Vec<Orphan> = Vec::new();
    let made = async {
        let mut text = series.channel;
        if let Some(new) = &creation.text {
            let spec = ChannelSpec {
                name: new.name.clone(),
                kind: ChannelKind::Text,
                topic: None,
                parent_id: new.parent,
                overwrites: overwrites(settings, bot, None, None, ChannelKind::Text),
            };
            let id = discord.create_channel(guild, &spec).await?;
            created.push(Orphan::Channel(id));
            state.channels.insert(id, guild_channel(id, &spec));
            text = Some(id);
        }
        let mut voice = None;
        if let Some(new) = &creation.voice {
            let spec = ChannelSpec {
                name: new.name.clone(),
                kind: ChannelKind::Voice,
                topic: None,
                parent_id: new.parent,
                overwrites: overwrites(settings, bot, None, None, ChannelKind::Voice),
            };
            let id = discord.create_channel(guild, &spec).await?;
            created.push(Orphan::VoiceChannel(id));
            state.channels.insert(id, guild_channel(id, &spec));
            voice = Some(id);
        }
        let mut roles = None;
        if let Some((guest_name, host_name)) = &creation.roles {
            let guest = discord.create_role(guild, guest_name).await?;
            created.push(Orphan::Role(guest));
            let host = discord.create_role(guild, host_name).await?;
            created.push(Orphan::Role(host));
            // Made without permissions of their own; the overwrites give them theirs.
            for id in [guest, host] {
                state.roles.insert(
                    id,
                    GuildRole {
                        id,
                        permissions: 0,
                        managed: false,
                        // Discord puts a new role at the bottom, just above @everyone.
                        position: 1,
                    },
                );
            }
            roles = Some((guest, host));
        }
        Ok::<_, RestError>((text, voice, roles))
    }
    .await;
    let (text, voice, roles) = match made {
        Ok(made) => made,
        Err(e) => {
            undo(repo, discord, guild, &created, report).await;
            return Err(format!("creating its Discord objects failed: {e}"));
        }
    };
    // Register, each relation in one transaction; whatever is refused is undone.
    let mut unregistered: Vec<Orphan> = Vec::new();
    let mut refusal: Option<String> = None;
    if let Some(channel) = creation.reuse.or(creation.text.as_ref().and(text)) {
        match repo.register_channel(&series.id, channel).await {
            Ok(_) => {
                series.channel = Some(channel);
                report.tally.channels_set_up += 1;
                report
                    .created
                    .push(format!("series {}: channel {channel}", series.id));
            }
            Err(e) => {
                refusal = Some(format!("registering channel {channel}: {e}"));
                unregistered.extend(created.iter().copied());
            }
        }
    }
    if refusal.is_none()
        && let Some((guest, host)) = roles
        && let Some(channel) = series.channel
    {
        match repo.register_roles(channel, guest, host).await {
            Ok(Registration::Registered | Registration::AlreadyRegistered) => {
                series.guest_role = Some(guest);
                series.host_role = Some(host);
                report
                    .created
                    .push(format!("series {}: roles {guest} and {host}", series.id));
            }
            Err(e) => {
                refusal = Some(format!("registering roles: {e}"));
                unregistered.extend([Orphan::Role(guest), Orphan::Role(host)]);
            }
        }
    }
    if refusal.is_none()
        && let Some(voice) = voice
    {
        match repo.register_voice_channel(&series.id, voice).await {
            Ok(_) => {
                series.voice_channel = Some(voice);
                report.tally.voice_channels_made += 1;
                report
                    .created
                    .push(format!("series {}: voice channel {voice}", series.id));
            }
            Err(e) => {
                refusal = Some(format!("registering voice channel {voice}: {e}"));
                unregistered.push(Orphan::VoiceChannel(voice));
            }
        }
    } else if refusal.is_some()
        && let Some(voice) = voice
        && !unregistered.contains(&Orphan::VoiceChannel(voice))
    {
        unregistered.push(Orphan::VoiceChannel(voice));
    }
    if refusal.is_some()
        && let Some((guest, host)) = roles
    {
        for role in [Orphan::Role(guest), Orphan::Role(host)] {
            if !unregistered.contains(&role) {
                unregistered.push(role);
            }
        }
    }
    match refusal {
        None => Ok(()),
        Some(why) => {
            undo(repo, discord, guild, &unregistered, report).await;
            Err(why)
        }
    }
}

/// What Discord now holds for a channel this run created.
fn guild_channel(id: ChannelId, spec: &ChannelSpec) -> GuildChannel {
    GuildChannel {
        id,
        name: spec.name.clone(),
        kind: Some(spec.kind),
        parent_id: spec.parent_id,
        topic: spec.topic.clone(),
        overwrites: spec.overwrites.clone(),
    }
}

/// Applies a series' [`Changes`], keeping `state` in line for the next series.
/// `owed`: the newcomers an earlier run gave their role but could not announce
/// ([`Repo::unannounced`]); the announcement names them too while they still hold it.
/// `recorded_closed`: the channels recorded as closed to Tavern when the run began; one
/// the plan found open again is forgotten.
#[allow(clippy::too_many_arguments)]
async fn update(
    repo: &Repo,
    discord: &Discord,
    settings: &DiscordSettings,
    state: &mut DiscordState,
    series: &SeriesState,
    changes: Changes,
    owed: Newcomers,
    recorded_closed: &BTreeSet<ChannelId>,
    report: &mut DiscordReport,
) {
    let id = &series.id;
    let mut closed: BTreeSet<ChannelId> = BTreeSet::new();
    for (channel, edit) in changes.edits {
        match discord.edit_channel(channel, &edit).await {
            Err(e) if e.is_missing_permission() => {
                closed.insert(channel);
                tell_closed(repo, discord, settings, id, channel, &e, report).await;
            }
            Ok(()) => {
                if let Err(e) = repo.forget_closed_channel(channel).await {
                    tracing::warn!(%channel, error = %e, "could not forget that a game channel was closed to Tavern");
                }
                report.tally.channels_updated += 1;
                report.changed.push(format!(
                    "series {id}: channel {channel} ({})",
                    describe(&edit)
                ));
                if let Some(c) = state.channels.get_mut(&channel) {
                    if let Some(topic) = edit.topic {
                        c.topic = Some(topic);
                    }
                    if let Some(parent) = edit.parent_id {
                        c.parent_id = parent;
                    }
                    if let Some(overwrites) = edit.overwrites {
                        c.overwrites = overwrites;
                    }
                }
            }
            Err(e) => report
                .failed
                .push(format!("series {id}: editing channel {channel}: {e}")),
        }
    }
    // Reopened exactly as Tavern had set it (nothing to edit, maybe nothing written
    // since): open to Tavern again, so closing it again later is told again.
    for channel in changes
        .open
        .iter()
        .filter(|c| recorded_closed.contains(c) && !closed.contains(c))
    {
        match repo.forget_closed_channel(*channel).await {
            Ok(()) => {
                tracing::info!(series = %id, %channel, "game channel open to Tavern again");
            }
            Err(e) => {
                tracing::warn!(%channel, error = %e, "could not forget that a game channel was closed to Tavern");
            }
        }
    }
    let guest = series.guest_role;
    let mut granted: BTreeSet<(UserId, RoleId)> = BTreeSet::new();
    let (mut synced, mut unsynced) = (Vec::new(), Vec::new());
    for (user, role) in changes.grants {
        match discord.add_role(settings.guild, user, role).await {
            Ok(()) => {
                granted.insert((user, role));
                if Some(role) == guest {
                    synced.push(user);
                }
                state.members.entry(user).or_default().insert(role);
                report.tally.roles_given += 1;
                report
                    .changed
                    .push(format!("series {id}: role {role} to user {user}"));
            }
            Err(e) => report.failed.push(format!(
                "series {id}: giving role {role} to user {user}: {e}"
            )),
        }
    }
    for (user, role) in changes.revokes {
        match discord.remove_role(settings.guild, user, role).await {
            Ok(()) => {
                if let Some(roles) = state.members.get_mut(&user) {
                    roles.remove(&role);
                }
                unsynced.push(user);
                report.tally.roles_taken += 1;
                if changes.unlinked.contains(&user) {
                    report.tally.roles_taken_unlinked += 1;
                }
                report
                    .changed
                    .push(format!("series {id}: role {role} taken from user {user}"));
            }
            Err(e) => report.failed.push(format!(
                "series {id}: taking role {role} from user {user}: {e}"
            )),
        }
    }
    if let Some(channel) = series.channel
        && let Err(e) = repo.record_synced_guests(channel, &synced, &unsynced).await
    {
        report.failed.push(format!(
            "series {id}: recording who got the guest role: {e}"
        ));
    }
    let Some(channel) = series.channel else {
        return;
    };
    // Those who really got their role now, and those an earlier announcement never
    // reached who still hold theirs: named and pinged.
    let holds = |user: &UserId, role: Option<RoleId>| {
        role.is_some_and(|r| {
            state
                .members
                .get(user)
                .is_some_and(|roles| roles.contains(&r))
        })
    };
    let planned: Vec<UserId> = changes
        .announce
        .map(|reply| reply.mentions.users)
        .unwrap_or_default();
    let newcomers = |role: Option<RoleId>, earlier: &BTreeSet<UserId>| -> BTreeSet<UserId> {
        planned
            .iter()
            .filter(|u| role.is_some_and(|r| granted.contains(&(**u, r))))
            .chain(earlier.iter().filter(|u| holds(u, role)))
            .copied()
            .collect()
    };
    let due = Newcomers {
        players: &newcomers(guest, &owed.players) - &series.welcomed.players,
        hosts: &newcomers(series.host_role, &owed.hosts) - &series.welcomed.hosts,
    };
    let players: Vec<UserId> = due.players.iter().copied().collect();
    let hosts: Vec<UserId> = due.hosts.iter().copied().collect();
    let co_hosts: Vec<UserId> = series
        .host_role
        .map(|r| {
            state
                .members
                .iter()
                .filter(|(u, roles)| roles.contains(&r) && !due.hosts.contains(u))
                .map(|(u, _)| *u)
                .collect()
        })
        .unwrap_or_default();
    let Some(reply) = announcement(&players, &hosts, &co_hosts) else {
        return;
    };
    let sent = if closed.contains(&channel) {
        Err(None)
    } else {
        discord.send(channel, &reply).await.map_err(Some)
    };
    match sent {
        Ok(_) => {
            report.tally.welcomes += 1;
            report
                .changed
                .push(format!("series {id}: announced newcomers in {channel}"));
            // Not recorded, those owed a welcome would be named and pinged again by the
            // next announcement: tried once more, then a failure of the run.
            let recorded = match repo.announced(channel, &due).await {
                Ok(()) => Ok(()),
                Err(_) => repo.announced(channel, &due).await,
            };
            if let Err(e) = recorded {
                tracing::warn!(%channel, error = %e, "could not record that a game channel's newcomers were announced");
                report.failed.push(format!(
                    "series {id}: recording that the newcomers in {channel} were announced: {e} (the next announcement may name them again)"
                ));
            }
        }
        Err(error) => {
            match error {
                // Its edit was refused already and the organisers told.
                None => {}
                Some(e) if e.is_missing_permission() => {
                    tell_closed(repo, discord, settings, id, channel, &e, report).await;
                }
                Some(e) => report
                    .failed
                    .push(format!("series {id}: announcing newcomers: {e}")),
            }
            // The next announcement that gets through names them.
            if let Err(e) = repo.remember_unannounced(channel, &due).await {
                tracing::warn!(%channel, error = %e, "could not remember the newcomers whose announcement Discord refused");
                report.failed.push(format!(
                    "series {id}: remembering the newcomers to announce: {e}"
                ));
            }
        }
    }
}

fn describe(edit: &ChannelEdit) -> String {
    let mut parts = Vec::new();
    if edit.topic.is_some() {
        parts.push("topic");
    }
    if edit.parent_id.is_some() {
        parts.push("category");
    }
    if edit.overwrites.is_some() {
        parts.push("permissions");
    }
    parts.join(", ")
}

async fn refresh_free_spots(
    repo: &Repo,
    discord: &Discord,
    channel: ChannelId,
    content: String,
    stored: Option<FreeSpotsMessage>,
    report: &mut DiscordReport,
) -> Result<(), String> {
    if let Some(stored) = &stored
        && stored.channel == channel
        && stored.content == content
    {
        return Ok(());
    }
    let reply = Reply::text(content.clone());
    let mut message = None;
    if let Some(stored) = stored.filter(|s| s.channel == channel) {
        match discord.edit(channel, stored.message, &reply).await {
            Ok(()) => {
                message = Some(stored.message);
                report.tally.free_spots_updated = true;
                report
                    .changed
                    .push(format!("free-spots message {}", stored.message));
            }
            Err(e) if already_gone(&e) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let message = match message {
        Some(m) => m,
        None => {
            let m = discord
                .send(channel, &reply)
                .await
                .map_err(|e| e.to_string())?;
            report.tally.free_spots_updated = true;
            report
                .created
                .push(format!("free-spots message {m} in {channel}"));
            m
        }
    };
    repo.set_free_spots_message(&FreeSpotsMessage {
        channel,
        message,
        content,
    })
    .await
    .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
