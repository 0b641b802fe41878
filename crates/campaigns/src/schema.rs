//! The one place that knows the seed's Redis keys (`hyperion-redis-schema.md`), exactly
//! as written there. Nothing outside this module formats a key or names a hash field.
//!
//! Each key's doc comment gives its Redis type, what it relates and the key holding the
//! inverse relation, so the repositories ([`crate::repo`]) and the check
//! ([`crate::check`]) can be read against it. `u64` values are stored in decimal.
//!
//! This module depends on [`crate::domain`] (the typed ids the key functions take),
//! never the reverse.

use discord::model::{ChannelId, RoleId, UserId};

use crate::domain::{EventSeriesId, LinkingId, MeetupEventId, MeetupUserId, TransientUserId};

// ---- Meetup events -------------------------------------------------------------------

/// Set of string: every tracked Meetup event id. Each member has a
/// [`meetup_event`] hash.
pub const MEETUP_EVENTS: &str = "meetup_events";

/// Set of u64 (Meetup user ids): guests who RSVP'd "yes" to the event (1:N).
pub fn meetup_event_meetup_users(event: &MeetupEventId) -> String {
    format!("meetup_event:{event}:meetup_users")
}

/// Set of u64 (Meetup user ids): the event's hosts (1:N).
pub fn meetup_event_meetup_hosts(event: &MeetupEventId) -> String {
    format!("meetup_event:{event}:meetup_hosts")
}

/// String (event series id): the series the event belongs to (N:1). Inverse:
/// [`event_series_meetup_events`].
pub fn meetup_event_event_series(event: &MeetupEventId) -> String {
    format!("meetup_event:{event}:event_series")
}

/// Hash: the event itself; fields [`EVENT_NAME`], [`EVENT_TIME`], [`EVENT_LINK`],
/// [`EVENT_URLNAME`] and the optional [`EVENT_IS_ONLINE`].
pub fn meetup_event(event: &MeetupEventId) -> String {
    format!("meetup_event:{event}")
}

/// [`meetup_event`] field: the title as it appears on Meetup.
pub const EVENT_NAME: &str = "name";
/// [`meetup_event`] field: date and time of the event, RFC 3339.
pub const EVENT_TIME: &str = "time";
/// [`meetup_event`] field: URL of the event page.
pub const EVENT_LINK: &str = "link";
/// [`meetup_event`] field: `urlname` of the event's Meetup group.
pub const EVENT_URLNAME: &str = "urlname";
/// [`meetup_event`] field, optional: `"true"` or `"false"`.
pub const EVENT_IS_ONLINE: &str = "is_online";

// ---- Meetup users --------------------------------------------------------------------

/// Set of u64: every linked Meetup user. Its counterpart is [`DISCORD_USERS`]; each
/// member has a [`meetup_user_discord_user`].
pub const MEETUP_USERS: &str = "meetup_users";

/// u64 (Discord user id): the Discord user this Meetup user is linked to (1:1).
/// Inverse: [`discord_user_meetup_user`].
pub fn meetup_user_discord_user(user: MeetupUserId) -> String {
    format!("meetup_user:{user}:discord_user")
}

/// Hash: the Meetup user's own OAuth2 tokens, fields [`OAUTH2_ACCESS_TOKEN`] and
/// [`OAUTH2_REFRESH_TOKEN`] (only with the extra consent scope).
pub fn meetup_user_oauth2_tokens(user: MeetupUserId) -> String {
    format!("meetup_user:{user}:oauth2_tokens")
}

/// [`meetup_user_oauth2_tokens`] field.
pub const OAUTH2_ACCESS_TOKEN: &str = "access_token";
/// [`meetup_user_oauth2_tokens`] field.
pub const OAUTH2_REFRESH_TOKEN: &str = "refresh_token";

/// String, optional (RFC 3339): when [`meetup_user_oauth2_tokens`] were last refreshed.
pub fn meetup_user_oauth2_tokens_last_refresh_time(user: MeetupUserId) -> String {
    format!("meetup_user:{user}:oauth2_tokens:last_refresh_time")
}

// ---- Discord users -------------------------------------------------------------------

/// Set of u64: every linked Discord user. Counterpart of [`MEETUP_USERS`].
pub const DISCORD_USERS: &str = "discord_users";

/// u64 (Meetup user id): the Meetup user this Discord user is linked to (1:1).
/// Inverse: [`meetup_user_discord_user`].
pub fn discord_user_meetup_user(user: UserId) -> String {
    format!("discord_user:{user}:meetup_user")
}

// ---- Event series --------------------------------------------------------------------

/// Set of string: every tracked event series.
pub const EVENT_SERIES: &str = "event_series";

/// Set of string (Meetup event ids): the tracked events of the series (1:N). Inverse:
/// [`meetup_event_event_series`] of each member.
pub fn event_series_meetup_events(series: &EventSeriesId) -> String {
    format!("event_series:{series}:meetup_events")
}

/// u64 (channel id): the series' bot-controlled text channel (1:1). Inverse:
/// [`discord_channel_event_series`].
pub fn event_series_discord_channel(series: &EventSeriesId) -> String {
    format!("event_series:{series}:discord_channel")
}

/// u64 (channel id), optional: the series' voice channel (1:1). Inverse:
/// [`discord_voice_channel_event_series`].
pub fn event_series_discord_voice_channel(series: &EventSeriesId) -> String {
    format!("event_series:{series}:discord_voice_channel")
}

/// String: `campaign` or `adventure` (see [`crate::domain::SeriesType`]). A key of its
/// own, as the seed writes it (the seed muses it belongs in a hash; we keep its names).
pub fn event_series_type(series: &EventSeriesId) -> String {
    format!("event_series:{series}:type")
}

/// Bool: [`TRUE`] for online series; absent (or anything else) otherwise.
pub fn event_series_is_online(series: &EventSeriesId) -> String {
    format!("event_series:{series}:is_online")
}

/// How a true bool is stored ([`event_series_is_online`], [`EVENT_IS_ONLINE`]).
pub const TRUE: &str = "true";
/// How a false bool is stored ([`EVENT_IS_ONLINE`]).
pub const FALSE: &str = "false";

// ---- Discord channels ----------------------------------------------------------------

/// Set of u64: every bot-controlled game text channel.
pub const DISCORD_CHANNELS: &str = "discord_channels";

/// String (event series id): the series the channel belongs to (1:1). Inverse:
/// [`event_series_discord_channel`].
pub fn discord_channel_event_series(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:event_series")
}

/// u64 (role id): the channel's guest role (1:1). Inverse:
/// [`discord_role_discord_channel`].
pub fn discord_channel_discord_role(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:discord_role")
}

/// u64 (role id): the channel's host role (1:1). Inverse:
/// [`discord_host_role_discord_channel`].
pub fn discord_channel_discord_host_role(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:discord_host_role")
}

/// Set of u64 (Discord user ids): hosts removed by hand, never promoted again by sync.
pub fn discord_channel_removed_hosts(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:removed_hosts")
}

/// Set of u64 (Discord user ids): users removed by hand, never added back by sync.
pub fn discord_channel_removed_users(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:removed_users")
}

/// String (RFC 3339): when the channel expires.
pub fn discord_channel_expiration_time(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:expiration_time")
}

/// String (RFC 3339): when the channel was last reminded of its expiration.
pub fn discord_channel_last_expiration_reminder_time(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:last_expiration_reminder_time")
}

/// String (RFC 3339): no expiration reminders before this time.
pub fn discord_channel_snooze_until(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:snooze_until")
}

/// String (RFC 3339): the channel is deleted after this time.
pub fn discord_channel_deletion_time(channel: ChannelId) -> String {
    format!("discord_channel:{channel}:deletion_time")
}

/// Set of u64: text channels created by the bot that could not be deleted; retried.
pub const ORPHANED_DISCORD_CHANNELS: &str = "orphaned_discord_channels";

// ---- Discord voice channels ----------------------------------------------------------

/// Set of u64: every bot-controlled voice channel.
pub const DISCORD_VOICE_CHANNELS: &str = "discord_voice_channels";

/// String (event series id): the series the voice channel belongs to (1:1). Inverse:
/// [`event_series_discord_voice_channel`].
pub fn discord_voice_channel_event_series(channel: ChannelId) -> String {
    format!("discord_voice_channel:{channel}:event_series")
}

/// String (RFC 3339): the voice channel is deleted after this time.
pub fn discord_voice_channel_deletion_time(channel: ChannelId) -> String {
    format!("discord_voice_channel:{channel}:deletion_time")
}

/// Set of u64: voice channels created by the bot that could not be deleted; retried.
pub const ORPHANED_DISCORD_VOICE_CHANNELS: &str = "orphaned_discord_voice_channels";

/// String (RFC 3339): when the topic of the shared user-topic voice channel was set.
pub const USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME: &str = "user_topic_voice_channel_topic_time";

// ---- Managed Discord channels --------------------------------------------------------

/// Set of u64: bot-managed channels that are not game channels.
pub const MANAGED_DISCORD_CHANNELS: &str = "managed_discord_channels";

// ---- Discord roles -------------------------------------------------------------------

/// Set of u64 (the seed's "set of 64" read as u64, like every other id set): every
/// bot-controlled guest role.
pub const DISCORD_ROLES: &str = "discord_roles";

/// Set of u64: every bot-controlled host role.
pub const DISCORD_HOST_ROLES: &str = "discord_host_roles";

/// u64 (channel id): the channel a guest role belongs to (1:1). Inverse:
/// [`discord_channel_discord_role`].
pub fn discord_role_discord_channel(role: RoleId) -> String {
    format!("discord_role:{role}:discord_channel")
}

/// u64 (channel id): the channel a host role belongs to (1:1). Inverse:
/// [`discord_channel_discord_host_role`].
pub fn discord_host_role_discord_channel(role: RoleId) -> String {
    format!("discord_host_role:{role}:discord_channel")
}

/// Set of u64: roles created by the bot that could not be deleted; retried. The seed's
/// name (the original code wrote `orphaned_roles`).
pub const ORPHANED_DISCORD_ROLES: &str = "orphaned_discord_roles";

// ---- Linking -------------------------------------------------------------------------

/// String, as long as a linking id lives before it is opened (a day): the name (display
/// name, else username) a Discord user had in Discord when they asked `/link-meetup`
/// for a linking link, so the linking page names the account it links rather than its
/// id. Tavern's own key: the seed has none.
pub fn linking_name(user: UserId) -> String {
    format!("tavern:campaigns:linking_name:{user}")
}

/// String, [`MEETUP_NAME_TTL_SECS`] from the last sync that saw it: the display name
/// Meetup gave a member in an RSVP list or as a host, so `/players list` names a member
/// who has not linked a Discord account rather than showing only a number. Tavern's
/// own key: the seed keeps no names.
pub fn meetup_name(user: MeetupUserId) -> String {
    format!("tavern:campaigns:meetup_name:{user}")
}

/// How long a Meetup member's name is kept after the last sync that saw it: a member
/// who no longer RSVPs or hosts is forgotten.
pub const MEETUP_NAME_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// u64 (Discord user id), short-lived: the Discord user a one-time linking id stands
/// for (N:1: a user may hold several links).
pub fn meetup_linking_discord_user(linking: &LinkingId) -> String {
    // The one place a linking id is exposed: it is part of its key.
    format!("meetup_linking:{}:discord_user", linking.expose())
}

/// String, short-lived: the CSRF token of a transient browser "user id".
pub fn csrf(user: &TransientUserId) -> String {
    // The one place a transient user id is exposed: it is part of its key.
    format!("csrf:{}", user.expose())
}

// ---- OAuth2 organiser token ----------------------------------------------------------

/// String: access token of someone who organises every configured Meetup group.
pub const MEETUP_ACCESS_TOKEN: &str = "meetup_access_token";
/// String: that organiser's refresh token.
pub const MEETUP_REFRESH_TOKEN: &str = "meetup_refresh_token";
/// String (RFC 3339): when the organiser token is next refreshed.
pub const MEETUP_ACCESS_TOKEN_REFRESH_TIME: &str = "meetup_access_token_refresh_time";

// ---- Tavern's own keys (not in the seed) ---------------------------------------------

/// Hash: Meetup refused Tavern's organiser authorisation (the refresh grant was
/// refused, or a freshly refreshed token was refused again), fields
/// [`AUTHORISATION_REFUSED_AT`], [`AUTHORISATION_REFUSED_ALERTED`],
/// [`AUTHORISATION_REFUSED_GRANT`] and [`AUTHORISATION_REFUSED_CURRENT`]. An organiser
/// authorising again, or a Meetup call with the organiser's token that works (unless
/// the refresh grant itself was refused), removes it; a refresh does not. Tavern's
/// own key: the seed has none for it.
pub const AUTHORISATION_REFUSED: &str = "tavern:campaigns:meetup_authorisation_refused";
/// [`AUTHORISATION_REFUSED`] field (RFC 3339): when Meetup first refused it.
pub const AUTHORISATION_REFUSED_AT: &str = "at";
/// [`AUTHORISATION_REFUSED`] field: present once the organisers were told on Discord.
pub const AUTHORISATION_REFUSED_ALERTED: &str = "alerted";
/// String with a TTL: held while someone (the refresh job, the sync, the schedule
/// form, on any replica) refreshes the organiser token, so that two never spend the
/// same refresh token at once (Meetup rotates it; the second would be refused and
/// taken for a refused authorisation). The value names the holder. Tavern's own key.
pub const TOKEN_REFRESH_LOCK: &str = "tavern:campaigns:meetup_token_refresh_lock";
/// String with a TTL: held by whoever is telling the organisers about the recorded
/// refusal right now, so that one replica sends the alert; the value names the
/// holder. Tavern's own key.
pub const REFUSAL_ALERT_LOCK: &str = "tavern:campaigns:meetup_refusal_alert_lock";
/// [`AUTHORISATION_REFUSED`] field: present when Meetup refused the refresh grant
/// itself (`invalid_grant`); a Meetup call that works with the access token issued
/// with it does not clear such a refusal.
pub const AUTHORISATION_REFUSED_GRANT: &str = "grant";
/// [`AUTHORISATION_REFUSED`] field: present while the stored token pair is the one
/// Meetup refused (a refresh storing another removes it); no refresh is tried then.
pub const AUTHORISATION_REFUSED_CURRENT: &str = "current";

/// Set of string (Meetup event ids): tracked events a Meetup sync found gone but did
/// not delete, because together they were more than half of the tracked events it
/// asked Meetup about; the next run deletes those it still finds gone and forgets the
/// rest. Tavern's own key: the seed has none for it.
pub const PENDING_DELETIONS: &str = "tavern:campaigns:pending_deletions";

/// Set of string (`{meetup event id}:{meetup user id}`): YES RSVPs a Meetup sync no
/// longer found but kept, because together they were more than half of the event's
/// stored RSVPs; the next run removes those it still does not find and forgets the
/// rest. Tavern's own key: the seed has none for it.
pub const PENDING_RSVP_REMOVALS: &str = "tavern:campaigns:pending_rsvp_removals";

/// A member of [`PENDING_RSVP_REMOVALS`].
pub fn pending_rsvp_removal(event: &MeetupEventId, user: MeetupUserId) -> String {
    format!("{event}:{}", user.get())
}

/// The event and user of a member of [`PENDING_RSVP_REMOVALS`]; `None` when it does
/// not read.
pub fn parse_pending_rsvp_removal(member: &str) -> Option<(MeetupEventId, MeetupUserId)> {
    let (event, user) = member.split_once(':')?;
    Some((
        MeetupEventId::parse(event).ok()?,
        MeetupUserId::parse(user).ok()?,
    ))
}

/// Hash: the free-spots message Tavern keeps up to date in the configured channel,
/// fields [`FREE_SPOTS_CHANNEL`], [`FREE_SPOTS_MESSAGE_ID`] and [`FREE_SPOTS_CONTENT`]
/// (what it last said, so an unchanged list costs no Discord request). Tavern's own
/// key: the seed has none for it.
pub const FREE_SPOTS_MESSAGE: &str = "tavern:campaigns:free_spots_message";
/// [`FREE_SPOTS_MESSAGE`] field: the channel id.
pub const FREE_SPOTS_CHANNEL: &str = "channel";
/// [`FREE_SPOTS_MESSAGE`] field: the message id.
pub const FREE_SPOTS_MESSAGE_ID: &str = "message";
/// [`FREE_SPOTS_MESSAGE`] field: the message's content.
pub const FREE_SPOTS_CONTENT: &str = "content";

/// Set of u64 (Discord user ids): the members the sync gave this game channel's guest
/// role because they RSVP'd yes. Only they lose it again when their RSVP goes; people
/// a host added by hand keep it. Tavern's own key: the seed has none for it.
pub fn synced_guests(channel: ChannelId) -> String {
    format!("tavern:campaigns:synced_guests:{channel}")
}

/// Set of string, expiring [`UNANNOUNCED_TTL_SECS`] after its last addition: the
/// newcomers the sync gave this game channel's guest role (`player:{user}`) or host role
/// (`host:{user}`) whose announcement Discord refused (an admin closed the channel to
/// Tavern), so the next announcement that gets through names and pings them; deleted
/// once they are announced. Tavern's own key: the seed has none for it.
pub fn unannounced(channel: ChannelId) -> String {
    format!("tavern:campaigns:unannounced:{channel}")
}

/// Set of string: who an announcement in this game channel already welcomed, as a
/// player (`player:{user}`) or a host (`host:{user}`), so that someone who comes back
/// (unlinked and linked again, or a withdrawn RSVP given again) gets the role again
/// without a second welcome. Owned by the game channel: deleted with its other keys.
/// Tavern's own key: the seed has none for it.
pub fn welcomed(channel: ChannelId) -> String {
    format!("tavern:campaigns:welcomed:{channel}")
}

/// How long [`unannounced`] keeps newcomers no announcement got through for: 30 days.
pub const UNANNOUNCED_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// Set of string: the `[role]` and `[channel]` shortcodes the sync refused, one member
/// per event and shortcode (`{event}:role:{id}`, `{event}:channel:{id}`), so the
/// organisers are told once, not at every run. The sync takes out the members that no
/// longer apply (accepted now, gone from the event, the event started or untracked).
/// Tavern's own key: the seed has none.
pub const REFUSED_SHORTCODES: &str = "tavern:campaigns:refused_shortcodes";

/// Set of u64 (Discord channel ids): the game channels Discord refused the sync's
/// writes to because an admin closed them to Tavern (403 Missing Access or Missing
/// Permissions), so the organisers are told once, not at every run; a write to the
/// channel that succeeds again takes it out, and so does a sync that finds the
/// channel's overwrites exactly as Tavern sets them, so closing it again is told again.
/// Tavern's own key: the seed has none.
pub const CLOSED_CHANNELS: &str = "tavern:campaigns:closed_channels";

/// Set of u64 (Discord channel ids): the game's text or voice channels whose scheduled
/// deletion Discord refused because an admin closed them to Tavern (403 Missing Access
/// or Missing Permissions), so the organisers are told once that an admin must delete
/// it or give Tavern Manage Channels back, not at every lifecycle run. A channel leaves
/// it with its series (the deletion went through) or when a new session cancels the
/// deletion. Tavern's own key: the seed has none.
pub const UNDELETABLE_CHANNELS: &str = "tavern:campaigns:undeletable_channels";

/// Set of u64 (Discord role ids): the guest and host roles of ended games whose
/// deletion Discord refused (403 Missing Permissions: an admin moved the role above
/// Tavern's own role, or took Manage Roles from Tavern), so the organisers are told
/// once that an admin must delete the role or drag Tavern's role above it, not at every
/// lifecycle run. A role leaves it with its series (the deletion went through, or the
/// role was deleted by hand) or when a new session cancels the deletion. Tavern's own
/// key: the seed has none.
pub const UNDELETABLE_ROLES: &str = "tavern:campaigns:undeletable_roles";

/// String, for a day: a session the schedule form is creating (`creating`), created
/// (its Meetup link) or sent without a clear answer from Meetup (`unknown`, for an
/// hour) for a series at a start time (Unix seconds), so the same form sent twice
/// makes one Meetup event. Tavern's own key: the seed has none.
pub fn scheduled_session(series: &EventSeriesId, start: i64) -> String {
    format!("tavern:campaigns:scheduled_session:{series}:{start}")
}

/// Hash of Meetup event id -> start (Unix seconds), kept a day after the last addition:
/// the sessions the schedule form created for a series, so the form counts them and
/// copies the newest before the sync has stored them in the series' events (it leaves
/// out those the series already tracks). Tavern's own key: the seed has none.
pub fn created_sessions(series: &EventSeriesId) -> String {
    format!("tavern:campaigns:created_sessions:{series}")
}

/// How long [`created_sessions`] is kept after its last addition: far longer than the
/// sync takes to store a new event (every 15 minutes).
pub const CREATED_SESSIONS_TTL_SECS: u64 = 24 * 60 * 60;

/// String: the holder of the sync guard while a whole sync runs (one at a time across
/// replicas, whoever started it), with an expiry. Tavern's own key.
pub const SYNC_RUNNING: &str = "tavern:campaigns:sync:running";

/// Set of u64 (Discord user ids): who is connected to the user-topic voice channel
/// (`campaigns_topic_voice_channel`), from the gateway's voice states, so the reset
/// job on any replica knows when it is empty. Tavern's own key: the seed has none.
pub const TOPIC_VOICE_CONNECTED: &str = "tavern:campaigns:topic_voice_channel:connected";

/// String (RFC 3339): since when the user-topic voice channel has been empty, written
/// when the last person leaves it ([`TOPIC_VOICE_CONNECTED`] becomes empty) and removed
/// when somebody joins; the reset waits two minutes past it. Tavern's own key: the seed
/// has none.
pub const TOPIC_VOICE_EMPTY_SINCE: &str = "tavern:campaigns:topic_voice_channel:empty_since";

// ---- Reading keys back (the check) ---------------------------------------------------

/// One family of per-id keys, `{prefix}:{id}:{suffix}`, for `SCAN` and for reading the
/// id back out of a key the scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFamily {
    prefix: &'static str,
    suffix: &'static str,
}

impl KeyFamily {
    /// The `SCAN MATCH` pattern of the family.
    pub fn pattern(self) -> String {
        format!("{}:*:{}", self.prefix, self.suffix)
    }

    /// The id part of `key`, if `key` belongs to the family (the id itself may be
    /// anything; the caller parses it).
    pub fn id_of(self, key: &str) -> Option<&str> {
        key.strip_prefix(self.prefix)?
            .strip_prefix(':')?
            .strip_suffix(self.suffix)?
            .strip_suffix(':')
    }

    /// The family's key for an id the check read from a value that may hold anything (so
    /// it cannot be typed).
    pub fn key_for_raw(self, id: &str) -> String {
        format!("{}:{id}:{}", self.prefix, self.suffix)
    }
}

/// `meetup_user:{}:discord_user`.
pub const MEETUP_USER_DISCORD_USER: KeyFamily = KeyFamily {
    prefix: "meetup_user",
    suffix: "discord_user",
};
/// `discord_user:{}:meetup_user`.
pub const DISCORD_USER_MEETUP_USER: KeyFamily = KeyFamily {
    prefix: "discord_user",
    suffix: "meetup_user",
};
/// `meetup_event:{}:event_series`.
pub const MEETUP_EVENT_EVENT_SERIES: KeyFamily = KeyFamily {
    prefix: "meetup_event",
    suffix: "event_series",
};
/// `event_series:{}:meetup_events`.
pub const EVENT_SERIES_MEETUP_EVENTS: KeyFamily = KeyFamily {
    prefix: "event_series",
    suffix: "meetup_events",
};
/// `event_series:{}:discord_channel`.
pub const EVENT_SERIES_DISCORD_CHANNEL: KeyFamily = KeyFamily {
    prefix: "event_series",
    suffix: "discord_channel",
};
/// `event_series:{}:discord_voice_channel`.
pub const EVENT_SERIES_DISCORD_VOICE_CHANNEL: KeyFamily = KeyFamily {
    prefix: "event_series",
    suffix: "discord_voice_channel",
};
/// `discord_channel:{}:event_series`.
pub const DISCORD_CHANNEL_EVENT_SERIES: KeyFamily = KeyFamily {
    prefix: "discord_channel",
    suffix: "event_series",
};
/// `discord_voice_channel:{}:event_series`.
pub const DISCORD_VOICE_CHANNEL_EVENT_SERIES: KeyFamily = KeyFamily {
    prefix: "discord_voice_channel",
    suffix: "event_series",
};
/// `discord_role:{}:discord_channel`.
pub const DISCORD_ROLE_DISCORD_CHANNEL: KeyFamily = KeyFamily {
    prefix: "discord_role",
    suffix: "discord_channel",
};
/// `discord_host_role:{}:discord_channel`.
pub const DISCORD_HOST_ROLE_DISCORD_CHANNEL: KeyFamily = KeyFamily {
    prefix: "discord_host_role",
    suffix: "discord_channel",
};
/// `discord_channel:{}:discord_role`.
pub const DISCORD_CHANNEL_DISCORD_ROLE: KeyFamily = KeyFamily {
    prefix: "discord_channel",
    suffix: "discord_role",
};
/// `discord_channel:{}:discord_host_role`.
pub const DISCORD_CHANNEL_DISCORD_HOST_ROLE: KeyFamily = KeyFamily {
    prefix: "discord_channel",
    suffix: "discord_host_role",
};

/// Every set of the seed with a fixed name, for the check's type test.
pub const GLOBAL_SETS: [&str; 12] = [
    MEETUP_EVENTS,
    MEETUP_USERS,
    DISCORD_USERS,
    EVENT_SERIES,
    DISCORD_CHANNELS,
    ORPHANED_DISCORD_CHANNELS,
    DISCORD_VOICE_CHANNELS,
    ORPHANED_DISCORD_VOICE_CHANNELS,
    MANAGED_DISCORD_CHANNELS,
    DISCORD_ROLES,
    DISCORD_HOST_ROLES,
    ORPHANED_DISCORD_ROLES,
];

/// `meetup_event:{}` for an id read from `meetup_events`, which may hold anything.
pub fn meetup_event_raw(id: &str) -> String {
    format!("meetup_event:{id}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn keys_are_spelled_as_in_the_seed() {
        let e = MeetupEventId::parse("276754274").unwrap();
        let s = EventSeriesId::parse("abc").unwrap();
        let m = MeetupUserId::new(11).unwrap();
        let u = UserId::new(22);
        let c = ChannelId::new(33);
        let r = RoleId::new(44);
        let l = LinkingId::parse("lnk").unwrap();
        let t = TransientUserId::parse("tmp").unwrap();
        let keys = [
            meetup_event_meetup_users(&e),
            meetup_event_meetup_hosts(&e),
            meetup_event_event_series(&e),
            meetup_event(&e),
            meetup_user_discord_user(m),
            meetup_user_oauth2_tokens(m),
            meetup_user_oauth2_tokens_last_refresh_time(m),
            discord_user_meetup_user(u),
            event_series_meetup_events(&s),
            event_series_discord_channel(&s),
            event_series_discord_voice_channel(&s),
            event_series_type(&s),
            event_series_is_online(&s),
            discord_channel_event_series(c),
            discord_channel_discord_role(c),
            discord_channel_discord_host_role(c),
            discord_channel_removed_hosts(c),
            discord_channel_removed_users(c),
            discord_channel_expiration_time(c),
            discord_channel_last_expiration_reminder_time(c),
            discord_channel_snooze_until(c),
            discord_channel_deletion_time(c),
            discord_voice_channel_event_series(c),
            discord_voice_channel_deletion_time(c),
            discord_role_discord_channel(r),
            discord_host_role_discord_channel(r),
            meetup_linking_discord_user(&l),
            csrf(&t),
        ];
        let expected = [
            "meetup_event:276754274:meetup_users",
            "meetup_event:276754274:meetup_hosts",
            "meetup_event:276754274:event_series",
            "meetup_event:276754274",
            "meetup_user:11:discord_user",
            "meetup_user:11:oauth2_tokens",
            "meetup_user:11:oauth2_tokens:last_refresh_time",
            "discord_user:22:meetup_user",
            "event_series:abc:meetup_events",
            "event_series:abc:discord_channel",
            "event_series:abc:discord_voice_channel",
            "event_series:abc:type",
            "event_series:abc:is_online",
            "discord_channel:33:event_series",
            "discord_channel:33:discord_role",
            "discord_channel:33:discord_host_role",
            "discord_channel:33:removed_hosts",
            "discord_channel:33:removed_users",
            "discord_channel:33:expiration_time",
            "discord_channel:33:last_expiration_reminder_time",
            "discord_channel:33:snooze_until",
            "discord_channel:33:deletion_time",
            "discord_voice_channel:33:event_series",
            "discord_voice_channel:33:deletion_time",
            "discord_role:44:discord_channel",
            "discord_host_role:44:discord_channel",
            "meetup_linking:lnk:discord_user",
            "csrf:tmp",
        ];
        assert_eq!(keys.as_slice(), expected.as_slice());
    }

    #[test]
    fn key_families_scan_and_read_back_their_ids() {
        assert_eq!(
            MEETUP_USER_DISCORD_USER.pattern(),
            "meetup_user:*:discord_user"
        );
        assert_eq!(
            MEETUP_USER_DISCORD_USER.id_of("meetup_user:42:discord_user"),
            Some("42")
        );
        assert_eq!(
            MEETUP_USER_DISCORD_USER.id_of("meetup_user:42:oauth2_tokens"),
            None
        );
        assert_eq!(
            DISCORD_CHANNEL_EVENT_SERIES.key_for_raw("7"),
            "discord_channel:7:event_series"
        );
        assert_eq!(
            EVENT_SERIES_DISCORD_CHANNEL.id_of(&event_series_discord_channel(
                &EventSeriesId::parse("s1").unwrap()
            )),
            Some("s1")
        );
        assert_eq!(meetup_event_raw("x"), "meetup_event:x");
    }
}
