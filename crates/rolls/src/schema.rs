//! The seed's Redis keys, in one place, named exactly as in the seed.
//!
//! | key                         | type    | content                                     |
//! |-----------------------------|---------|---------------------------------------------|
//! | `user_set`                  | set     | every user id that made a request           |
//! | `user_set:updated_time`     | string  | Unix millis of the last write of `user_set` |
//! | `user_{id}`                 | string  | [`UserDoc`] as JSON                          |
//! | `user_{id}:updated_time`    | string  | Unix millis                                  |
//! | `c_{command}`               | string  | integer counter (`INCR`)                     |
//! | `c_:updated_time`           | string  | Unix millis of the last write of any counter |
//! | `init_{channel_id}`         | string  | [`Tracker`] as JSON                          |
//! | `init_{channel_id}:updated_time` | string | Unix millis                            |
//!
//! No other module spells these names; everything else goes through the functions
//! here.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

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

/// A Discord user id (a snowflake). Stored in `user_set` as its decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(#[serde(with = "snowflake")] pub u64);

/// A Discord channel id (a snowflake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelId(#[serde(with = "snowflake")] pub u64);

/// A Discord message id (a snowflake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(#[serde(with = "snowflake")] pub u64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `user_{id}`.
pub fn user_key(user: UserId) -> String {
    format!("{USER_PREFIX}{}", user.0)
}

/// `c_{command}`.
pub fn counter_key(command: &str) -> String {
    format!("{COUNTER_PREFIX}{command}")
}

/// `init_{channel_id}`.
pub fn init_key(channel: ChannelId) -> String {
    format!("{INIT_PREFIX}{}", channel.0)
}

/// The timestamp key of `key` (`{key}:updated_time`).
pub fn updated_time_key(key: &str) -> String {
    store::updated_time::key_for(key)
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
        return id.parse::<u64>().ok().map(|id| KeyKind::User(UserId(id)));
    }
    if let Some(id) = key.strip_prefix(INIT_PREFIX) {
        return id
            .parse::<u64>()
            .ok()
            .map(|id| KeyKind::Init(ChannelId(id)));
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

/// Most characters one user may have (the original's limit).
pub const MAX_CHARACTERS: usize = 9;

/// `user_{id}`: the user's personal data.
///
/// ```json
/// {
///   "characters": { "Aragorn": { "initiative_modifier": 2 } },
///   "active_character": "Aragorn",
///   "saved_rolls": { "attack": "1d20+5" }
/// }
/// ```
///
/// `characters` is an object keyed by name, as in the seed's example. Fields this
/// version does not know are kept as they are (`extra`), so an older or newer writer's
/// data survives a round trip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserDoc {
    #[serde(default)]
    pub characters: BTreeMap<String, Character>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_character: Option<String>,
    /// Named expressions. Stored and synced; no command edits them yet.
    #[serde(default)]
    pub saved_rolls: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One character of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Character {
    /// Added to the d20 when joining initiative without a roll.
    pub initiative_modifier: i64,
}

/// `init_{channel_id}`: the channel's initiative tracker. The seed left this open
/// ("Not sure what this will look like yet"); this is the shape:
///
/// ```json
/// {
///   "entries": [
///     { "name": "Aragorn", "user": "107624977066381312", "initiative": 19 },
///     { "name": "Goblin",  "user": "414560806764675074", "initiative": 12 }
///   ],
///   "turn": 0,
///   "round": 1,
///   "message_id": "1180000000000000000"
/// }
/// ```
///
/// `entries` is kept sorted by initiative, highest first (ties keep join order);
/// `turn` indexes into it; `round` starts at 1 and grows when the turn wraps;
/// `message_id` is the tracker message in the channel (absent until it is posted).
/// Snowflakes are strings so JavaScript clients do not lose precision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    #[serde(default)]
    pub entries: Vec<Entry>,
    #[serde(default)]
    pub turn: usize,
    #[serde(default = "first_round")]
    pub round: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
}

fn first_round() -> u32 {
    1
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            entries: Vec::new(),
            turn: 0,
            round: 1,
            message_id: None,
        }
    }
}

/// One combatant in a tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub user: UserId,
    pub initiative: i64,
}

/// Snowflakes as JSON strings (and accepting numbers on read).
mod snowflake {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(n),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_the_seeds() {
        assert_eq!(
            user_key(UserId(107624977066381312)),
            "user_107624977066381312"
        );
        assert_eq!(counter_key("roll"), "c_roll");
        assert_eq!(init_key(ChannelId(42)), "init_42");
        assert_eq!(updated_time_key(USER_SET), "user_set:updated_time");
        assert_eq!(classify("user_set"), Some(KeyKind::UserSet));
        assert_eq!(classify("user_7"), Some(KeyKind::User(UserId(7))));
        assert_eq!(classify("c_roll"), Some(KeyKind::Counter("roll".into())));
        assert_eq!(classify("c_:updated_time"), None);
        assert_eq!(classify("init_9"), Some(KeyKind::Init(ChannelId(9))));
        assert_eq!(classify("user_7:updated_time"), None);
        assert_eq!(classify("drinking:game"), None);
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
}
