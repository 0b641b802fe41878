//! The seed's Redis keys, in one place, named exactly as in the seed.
//!
//! | key                         | type    | content                                     |
//! |-----------------------------|---------|---------------------------------------------|
//! | `user_set`                  | set     | every user id that made a request           |
//! | `user_set:updated_time`     | string  | Unix millis of the last write of `user_set` |
//! | `user_{id}`                 | string  | [`UserDoc`] as JSON                         |
//! | `user_{id}:updated_time`    | string  | Unix millis                                  |
//! | `c_{command}`               | string  | integer counter (`INCR`)                     |
//! | `c_:updated_time`           | string  | Unix millis of the last write of any counter |
//! | `init_{channel_id}`         | string  | [`Tracker`] as JSON                         |
//! | `init_{channel_id}:updated_time` | string | Unix millis                            |
//! | `user_set:restoring:{nonce}` | set   | not in the seed: members a restore is adding, joined into `user_set` in one step once whole; expires after an hour |
//!
//! Additions (not in the seed; the sync service leaves them alone, [`classify`] does
//! not know them):
//!
//! | key                         | type    | content                                     |
//! |-----------------------------|---------|---------------------------------------------|
//! | `alias_guild_{guild_id}`    | string  | a server's aliases, JSON `{"name": "template"}` ([`crate::alias`]) |
//! | `alias_guild_{guild_id}:updated_time` | string | Unix millis                        |
//! | `gm_{channel_id}`           | string  | the channel's GM, JSON [`GmDoc`](crate::gm::GmDoc) |
//! | `gm_role_{guild_id}`        | string  | the server's GM role, JSON [`GmRoleDoc`](crate::gm::GmRoleDoc) |
//! | `roll_{id}`                 | string  | one roll, JSON [`RollRecord`](crate::history::RollRecord), expires after 30 days |
//!
//! A user's own aliases live in their `user_{id}` document (`aliases`, beside
//! `saved_rolls`).
//!
//! The JSON shapes are the documents of [`crate::domain`] (`serde` as declared there;
//! snowflakes as decimal strings). No other module spells these names; everything
//! else goes through the functions here.
//!
//! [`UserDoc`]: crate::domain::UserDoc
//! [`Tracker`]: crate::domain::Tracker

use crate::domain::{ChannelId, UserId};

/// The set of every user id.
pub const USER_SET: &str = "user_set";
/// Prefix of the per-user documents.
pub const USER_PREFIX: &str = "user_";
/// Prefix of the command counters.
pub const COUNTER_PREFIX: &str = "c_";
/// Prefix of the per-channel initiative trackers.
pub const INIT_PREFIX: &str = "init_";
/// The one timestamp shared by every counter (the seed: "Rather than having a
/// c_command:updated_time we set c_:updated_time").
pub const COUNTERS_UPDATED_TIME: &str = "c_:updated_time";
/// Suffix of every timestamp key.
pub const UPDATED_TIME_SUFFIX: &str = ":updated_time";
/// The name of the key set of all counters (they share one timestamp, so the sync
/// keeps them together): the prefix of their timestamp key.
pub const COUNTERS_SET: &str = COUNTER_PREFIX;

/// `user_{id}`.
pub fn user_key(user: UserId) -> String {
    format!("{USER_PREFIX}{user}")
}

/// How a user is written into `user_set`: its decimal string.
pub fn user_set_member(user: UserId) -> String {
    user.to_string()
}

/// `c_{command}`.
pub fn counter_key(command: &str) -> String {
    format!("{COUNTER_PREFIX}{command}")
}

/// `init_{channel_id}`.
pub fn init_key(channel: ChannelId) -> String {
    format!("{INIT_PREFIX}{channel}")
}

/// Prefix of a server's aliases (an addition).
pub const GUILD_ALIAS_PREFIX: &str = "alias_guild_";
/// Prefix of a channel's GM (an addition).
pub const GM_PREFIX: &str = "gm_";
/// Prefix of a server's GM role (an addition).
pub const GM_ROLE_PREFIX: &str = "gm_role_";
/// Prefix of a recorded roll (an addition).
pub const ROLL_PREFIX: &str = "roll_";
/// How long a recorded roll is kept: 30 days.
pub const ROLL_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// `alias_guild_{guild_id}`.
pub fn guild_alias_key(guild: discord::model::GuildId) -> String {
    format!("{GUILD_ALIAS_PREFIX}{guild}")
}

/// `gm_{channel_id}`.
pub fn gm_key(channel: ChannelId) -> String {
    format!("{GM_PREFIX}{channel}")
}

/// `gm_role_{guild_id}`.
pub fn gm_role_key(guild: discord::model::GuildId) -> String {
    format!("{GM_ROLE_PREFIX}{guild}")
}

/// `roll_{id}` (the id as shown: 8 base32 characters, upper case).
pub fn roll_key(id: &str) -> String {
    format!("{ROLL_PREFIX}{id}")
}

/// Where a restore gathers the members it adds to the set `of` before joining them
/// in (`{of}:restoring:{nonce}`). Not a seed key: [`classify`] leaves it out.
pub fn restore_scratch_key(of: &str, nonce: u64) -> String {
    format!("{of}:restoring:{nonce}")
}

/// The timestamp key of `key` (`{key}:updated_time`).
pub fn updated_time_key(key: &str) -> String {
    store::updated_time::key_for(key)
}

/// `SCAN` pattern of every counter.
pub fn counters_pattern() -> String {
    format!("{COUNTER_PREFIX}*")
}

/// `SCAN` patterns that together cover every seed key (and a few timestamps, which
/// [`classify`] leaves out).
pub fn seed_key_patterns() -> [String; 3] {
    [USER_PREFIX, COUNTER_PREFIX, INIT_PREFIX].map(|prefix| format!("{prefix}*"))
}

/// What kind of seed key `key` is, for the sync service's scans. `None` for keys that
/// are not ours (or are timestamps).
pub fn classify(key: &str) -> Option<KeyKind> {
    if key.ends_with(UPDATED_TIME_SUFFIX) {
        return None;
    }
    if key == USER_SET {
        return Some(KeyKind::UserSet);
    }
    if let Some(id) = key.strip_prefix(USER_PREFIX) {
        return id.parse::<UserId>().ok().map(KeyKind::User);
    }
    if let Some(id) = key.strip_prefix(INIT_PREFIX) {
        return id.parse::<ChannelId>().ok().map(KeyKind::Init);
    }
    key.strip_prefix(COUNTER_PREFIX)
        .filter(|command| !command.is_empty())
        .map(|command| KeyKind::Counter(command.to_owned()))
}

/// The kinds of seed keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    UserSet,
    User(UserId),
    Counter(String),
    Init(ChannelId),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Entry, MessageId, Tracker, UserDoc};

    #[test]
    fn key_names_are_the_seeds() {
        assert_eq!(
            user_key(UserId::new(107624977066381312)),
            "user_107624977066381312"
        );
        assert_eq!(counter_key("roll"), "c_roll");
        assert_eq!(init_key(ChannelId::new(42)), "init_42");
        assert_eq!(updated_time_key(USER_SET), "user_set:updated_time");
        assert_eq!(classify("user_set"), Some(KeyKind::UserSet));
        assert_eq!(classify("user_7"), Some(KeyKind::User(UserId::new(7))));
        assert_eq!(classify("c_roll"), Some(KeyKind::Counter("roll".into())));
        assert_eq!(classify("c_:updated_time"), None);
        assert_eq!(classify("init_9"), Some(KeyKind::Init(ChannelId::new(9))));
        assert_eq!(classify("user_7:updated_time"), None);
        assert_eq!(classify("drinking:game"), None);
        assert_eq!(user_set_member(UserId::new(42)), "42");
        assert_eq!(
            seed_key_patterns(),
            ["user_*".to_owned(), "c_*".to_owned(), "init_*".to_owned()]
        );
        assert_eq!(counters_pattern(), "c_*");
        assert_eq!(updated_time_key(COUNTERS_SET), COUNTERS_UPDATED_TIME);
        let scratch = restore_scratch_key(USER_SET, 7);
        assert_eq!(scratch, "user_set:restoring:7");
        assert_eq!(classify(&scratch), None);
    }

    #[test]
    fn documents_round_trip_and_keep_unknown_fields() {
        let raw = r#"{"characters":{"Bo":{"initiative_modifier":3}},"pets":["cat"]}"#;
        let doc: UserDoc = serde_json::from_str(raw).expect("parse");
        assert_eq!(doc.characters["Bo"].initiative_modifier, 3);
        let back = serde_json::to_value(&doc).expect("serialise");
        assert_eq!(back["pets"][0], "cat");
        let t: Tracker =
            serde_json::from_str(r#"{"entries":[{"name":"A","user":5,"initiative":3}]}"#)
                .expect("parse");
        assert_eq!(t.round, 1);
        let json = serde_json::to_value(&t).expect("serialise");
        assert_eq!(json["entries"][0]["user"], "5");
    }

    /// The stored bytes are exactly what the bare `u64` ids with their string
    /// serialiser wrote before the ids became Discord's typed ids.
    #[test]
    fn stored_documents_keep_their_bytes() {
        let tracker = Tracker {
            entries: vec![Entry {
                name: "Aragorn".into(),
                user: UserId::new(107624977066381312),
                initiative: 19,
                combat: Default::default(),
            }],
            turn: 0,
            round: 1,
            message_id: Some(MessageId::new(1180000000000000000)),
            reroll: false,
            started: false,
        };
        let json = serde_json::to_string(&tracker).expect("serialise");
        assert_eq!(
            json,
            r#"{"entries":[{"name":"Aragorn","user":"107624977066381312","initiative":19}],"turn":0,"round":1,"message_id":"1180000000000000000"}"#
        );
        let back: Tracker = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, tracker);
        let numbers: Tracker = serde_json::from_str(
            r#"{"entries":[{"name":"A","user":107624977066381312,"initiative":1}],"message_id":1180000000000000000}"#,
        )
        .expect("numbers are read too");
        assert_eq!(numbers.entries[0].user, UserId::new(107624977066381312));
        assert_eq!(
            numbers.message_id,
            Some(MessageId::new(1180000000000000000))
        );
    }
}
