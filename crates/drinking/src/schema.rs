//! The one place that knows the seed's Redis keys and the JSON stored under them.
//!
//! Keys of the seed (`ronnied-redis-design.md`), exactly as written there:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `game:{gameID}` | string | a [`Game`] as JSON, its roll-offs nested inside |
//! | `channel:{channelID}` | string | the id of the channel's running game |
//! | `active_games` | set | ids of games not yet completed |
//! | `player:{playerID}` | string | a [`PlayerDoc`] as JSON |
//! | `player_games:{playerID}` | set | ids of the running games the player is in |
//! | `drinks:{gameID}` | sorted set | [`DrinkRecord`] JSON members scored by their time (ms) |
//! | `player_drinks:{playerID}` | hash | `assigned`, `received` counters |
//!
//! Tavern's own additions (the seed has no notion of where a session lives):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `session:{scopeID}` | string | the current [`SessionDoc`] of a guild (or of a DM channel) |
//! | `session_games:{sessionID}` | set | ids of the games started during that session |
//!
//! Nothing outside this module formats a key.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The set of games that are not completed.
pub const ACTIVE_GAMES: &str = "active_games";
/// `player_drinks:{playerID}` field: drinks this player handed to somebody else.
pub const FIELD_ASSIGNED: &str = "assigned";
/// `player_drinks:{playerID}` field: drinks this player was given (by anyone or by a rule).
pub const FIELD_RECEIVED: &str = "received";

/// `SCAN` patterns used by the consistency check.
pub const CHANNEL_PATTERN: &str = "channel:*";
pub const PLAYER_GAMES_PATTERN: &str = "player_games:*";
pub const DRINKS_PATTERN: &str = "drinks:*";
pub const PLAYER_DRINKS_PATTERN: &str = "player_drinks:*";

pub fn game_key(id: &GameId) -> String {
    format!("game:{id}")
}
/// `game:{gameID}` for an id read from an index that may hold anything (the check).
pub fn game_key_unchecked(id: &str) -> String {
    format!("game:{id}")
}
pub fn channel_key(id: ChannelRef) -> String {
    format!("channel:{id}")
}
pub fn player_key(id: PlayerId) -> String {
    format!("player:{id}")
}
pub fn player_games_key(id: PlayerId) -> String {
    format!("player_games:{id}")
}
pub fn drinks_key(id: &GameId) -> String {
    format!("drinks:{id}")
}
pub fn player_drinks_key(id: PlayerId) -> String {
    format!("player_drinks:{id}")
}
/// Tavern's addition: the current session of a guild (or DM channel).
pub fn session_key(scope: ScopeId) -> String {
    format!("session:{scope}")
}
/// Tavern's addition: the games started in a session, for its leaderboard.
pub fn session_games_key(id: &SessionId) -> String {
    format!("session_games:{id}")
}

/// The id part of a key produced by one of the functions above (`"drinks:abc"` -> `"abc"`).
pub fn key_suffix<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix)?.strip_prefix(':')
}

/// Why a value could not be read as an id or a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidData {
    #[error("`{value}` is not a valid {what}")]
    Id { what: &'static str, value: String },
    #[error("invalid {what}: {reason}")]
    Document { what: &'static str, reason: String },
}

fn id_error(what: &'static str, value: &str) -> InvalidData {
    InvalidData::Id {
        what,
        value: value.chars().take(64).collect(),
    }
}

/// Ids Tavern mints (games, sessions, drinks): 1 to 32 of `[0-9a-z]`, so they fit in a
/// component's `custom_id` (100 characters) next to the action and never contain the `:`
/// that separates key parts.
macro_rules! minted_id {
    ($name:ident, $what:literal) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<$name, InvalidData> {
                let ok = !value.is_empty()
                    && value.len() <= 32
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
                if ok {
                    Ok($name(value.to_owned()))
                } else {
                    Err(id_error($what, value))
                }
            }
            /// A fresh random id.
            pub fn random() -> $name {
                $name(format!("{:016x}", rand::random::<u64>()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl FromStr for $name {
            type Err = InvalidData;
            fn from_str(s: &str) -> Result<$name, InvalidData> {
                $name::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidData;
            fn try_from(s: String) -> Result<$name, InvalidData> {
                $name::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

minted_id!(GameId, "game id");
minted_id!(SessionId, "session id");
minted_id!(DrinkId, "drink id");

/// Discord snowflakes: non-zero `u64`s, stored as decimal strings in JSON (as Discord
/// does, because JavaScript readers lose precision on large numbers).
macro_rules! snowflake_id {
    ($name:ident, $what:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(u64);

        impl $name {
            pub fn new(value: u64) -> Result<$name, InvalidData> {
                if value == 0 {
                    Err(id_error($what, "0"))
                } else {
                    Ok($name(value))
                }
            }
            pub fn parse(value: &str) -> Result<$name, InvalidData> {
                match value.parse::<u64>() {
                    Ok(v) if v != 0 && !value.starts_with('+') => Ok($name(v)),
                    _ => Err(id_error($what, value)),
                }
            }
            pub fn get(self) -> u64 {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl FromStr for $name {
            type Err = InvalidData;
            fn from_str(s: &str) -> Result<$name, InvalidData> {
                $name::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidData;
            fn try_from(s: String) -> Result<$name, InvalidData> {
                $name::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }
    };
}

snowflake_id!(PlayerId, "player id");
snowflake_id!(ChannelRef, "channel id");
snowflake_id!(MessageRef, "message id");
snowflake_id!(ScopeId, "session scope id");

impl From<discord::UserId> for PlayerId {
    fn from(id: discord::UserId) -> PlayerId {
        PlayerId(id.get())
    }
}
impl From<discord::ChannelId> for ChannelRef {
    fn from(id: discord::ChannelId) -> ChannelRef {
        ChannelRef(id.get())
    }
}
impl From<discord::MessageId> for MessageRef {
    fn from(id: discord::MessageId) -> MessageRef {
        MessageRef(id.get())
    }
}
impl From<MessageRef> for discord::MessageId {
    fn from(id: MessageRef) -> discord::MessageId {
        discord::MessageId::new(id.0)
    }
}
impl From<ChannelRef> for discord::ChannelId {
    fn from(id: ChannelRef) -> discord::ChannelId {
        discord::ChannelId::new(id.0)
    }
}
impl ScopeId {
    /// Sessions are per guild; a game in a DM channel has the channel as its scope.
    pub fn of(guild: Option<discord::GuildId>, channel: discord::ChannelId) -> ScopeId {
        ScopeId(guild.map_or(channel.get(), |g| g.get()))
    }
}

/// A value of one six-sided die: 1 to 6.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Die(u8);

impl Die {
    pub const CRITICAL_FAIL: Die = Die(1);
    pub const CRITICAL_HIT: Die = Die(6);

    pub fn new(value: u8) -> Result<Die, InvalidData> {
        if (1..=6).contains(&value) {
            Ok(Die(value))
        } else {
            Err(id_error("die value", &value.to_string()))
        }
    }
    pub fn get(self) -> u8 {
        self.0
    }
}
impl fmt::Debug for Die {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d6={}", self.0)
    }
}
impl fmt::Display for Die {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl TryFrom<u8> for Die {
    type Error = InvalidData;
    fn try_from(v: u8) -> Result<Die, InvalidData> {
        Die::new(v)
    }
}
impl From<Die> for u8 {
    fn from(d: Die) -> u8 {
        d.0
    }
}

/// Where a game is in its life. A roll-off child is created in `roll_off` and ends in
/// `completed`; only a top-level game is ever `waiting` or `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GameStatus {
    Waiting,
    Active,
    RollOff,
    Completed,
}

/// What a participant still has to do in one (sub)game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantStatus {
    WaitingToRoll,
    /// Rolled a 6 and has not yet picked who drinks.
    NeedsToAssign,
    Done,
}

/// Which tie a roll-off breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollOffKind {
    /// Tied for the highest roll: the roll-off decides the game's winner.
    Highest,
    /// Tied for the lowest roll: the roll-off decides who takes the `lowest_roll` drink.
    Lowest,
}

/// One player in one (sub)game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub player_id: PlayerId,
    /// Display name when they joined; shown in messages.
    pub name: String,
    pub status: ParticipantStatus,
    pub roll: Option<Die>,
    pub rolled_at: Option<DateTime<Utc>>,
}

impl Participant {
    pub fn new(player_id: PlayerId, name: &str) -> Participant {
        Participant {
            player_id,
            name: clean_name(name),
            status: ParticipantStatus::WaitingToRoll,
            roll: None,
            rolled_at: None,
        }
    }
}

/// Display names end up in Discord messages: strip mention and markdown characters and
/// keep them short so one name cannot ping the channel or break the layout.
pub fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '@' | '*' | '_' | '`' | '~' | '|' | '<' | '>'))
        .take(32)
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "player".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A game, stored as JSON at `game:{gameID}`.
///
/// A roll-off is a child game (own id, own participants, own status) nested in
/// `roll_offs` of the game it breaks a tie for, not a key of its own: the seed stores a
/// game as one JSON document "with nested participants" for single atomic reads and
/// writes, and nesting the children keeps every press on a game tree a single
/// compare-and-set on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Game {
    pub id: GameId,
    pub channel_id: ChannelRef,
    pub scope: ScopeId,
    pub session_id: SessionId,
    pub creator_id: PlayerId,
    pub status: GameStatus,
    pub participants: Vec<Participant>,
    /// Set on roll-off children: the game whose tie they break.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<GameId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_off_kind: Option<RollOffKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roll_offs: Vec<Game>,
    /// The public game message, once known (learnt from the first button press on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageRef>,
    /// The single highest roller, once decided (top-level game only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<PlayerId>,
    /// Who began the game when it was not the creator (a force start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_started_by: Option<PlayerId>,
    #[serde(default)]
    pub abandoned: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Incremented by every stored change; orders edits of the public message.
    pub version: u64,
}

/// Why a drink was poured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrinkReason {
    CriticalHit,
    CriticalFail,
    LowestRoll,
    DelayedStart,
}

/// One drink, a member of the sorted set `drinks:{gameID}` (scored by `at` in ms).
///
/// `game_id` is always the top-level game: drinks of roll-offs count for the parent
/// game; `roll_off_id` says which roll-off poured it. `from` is the player who handed
/// it out, `None` when a rule did (critical fail, lowest roll).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrinkRecord {
    pub id: DrinkId,
    pub game_id: GameId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_off_id: Option<GameId>,
    pub session_id: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PlayerId>,
    pub to: PlayerId,
    pub reason: DrinkReason,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub paid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<DateTime<Utc>>,
}

impl DrinkRecord {
    /// Whether this drink counts in the `assigned` field of the giver's
    /// `player_drinks` hash: only drinks handed to somebody else do.
    pub fn assigned_by(&self) -> Option<PlayerId> {
        self.from.filter(|from| *from != self.to)
    }

    /// The sorted-set score: milliseconds since the epoch.
    pub fn score(&self) -> f64 {
        self.at.timestamp_millis() as f64
    }

    pub fn to_json(&self) -> Result<String, InvalidData> {
        serde_json::to_string(self).map_err(|e| InvalidData::Document {
            what: "drink record",
            reason: e.to_string(),
        })
    }

    pub fn from_json(raw: &str) -> Result<DrinkRecord, InvalidData> {
        serde_json::from_str(raw).map_err(|e| InvalidData::Document {
            what: "drink record",
            reason: e.to_string(),
        })
    }
}

/// A player, stored as JSON at `player:{playerID}`. Written on join and on every roll;
/// the leaderboard reads the names from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerDoc {
    pub id: PlayerId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_game: Option<GameId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_roll: Option<Die>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_roll_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A leaderboard period of a guild, stored as JSON at `session:{scopeID}` (Tavern's
/// addition). A new session replaces it; the old one's games and ledgers stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDoc {
    pub id: SessionId,
    pub scope: ScopeId,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<PlayerId>,
}

/// Serialises a document after checking it (validation before storage).
pub fn encode<T: Serialize>(what: &'static str, doc: &T) -> Result<String, InvalidData> {
    serde_json::to_string(doc).map_err(|e| InvalidData::Document {
        what,
        reason: e.to_string(),
    })
}

/// Reads a document; a malformed one is an error naming what it was.
pub fn decode<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    raw: &[u8],
) -> Result<T, InvalidData> {
    serde_json::from_slice(raw).map_err(|e| InvalidData::Document {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_as_in_the_seed() {
        let game = GameId::parse("abc123").expect("id");
        let player = PlayerId::new(42).expect("id");
        let channel = ChannelRef::new(7).expect("id");
        assert_eq!(game_key(&game), "game:abc123");
        assert_eq!(channel_key(channel), "channel:7");
        assert_eq!(player_key(player), "player:42");
        assert_eq!(player_games_key(player), "player_games:42");
        assert_eq!(drinks_key(&game), "drinks:abc123");
        assert_eq!(player_drinks_key(player), "player_drinks:42");
        assert_eq!(ACTIVE_GAMES, "active_games");
        assert_eq!(key_suffix("drinks:abc123", "drinks"), Some("abc123"));
    }

    #[test]
    fn ids_parse_and_reject() {
        assert!(GameId::parse("").is_err());
        assert!(GameId::parse("has:colon").is_err());
        assert!(GameId::parse("UPPER").is_err());
        assert!(GameId::parse(&"a".repeat(33)).is_err());
        assert_eq!(GameId::random().as_str().len(), 16);
        assert!(PlayerId::parse("0").is_err());
        assert!(PlayerId::parse("-1").is_err());
        assert!(PlayerId::parse("+5").is_err());
        assert_eq!(PlayerId::parse("99").expect("id").get(), 99);
        assert!(Die::new(0).is_err());
        assert!(Die::new(7).is_err());
    }

    #[test]
    fn drink_records_round_trip_and_reject_bad_values() {
        let record = DrinkRecord {
            id: DrinkId::parse("d1").expect("id"),
            game_id: GameId::parse("g1").expect("id"),
            roll_off_id: None,
            session_id: SessionId::parse("s1").expect("id"),
            from: Some(PlayerId::new(1).expect("id")),
            to: PlayerId::new(2).expect("id"),
            reason: DrinkReason::CriticalHit,
            at: DateTime::from_timestamp_millis(1_700_000_000_000).expect("time"),
            paid: false,
            paid_at: None,
        };
        let json = record.to_json().expect("json");
        assert!(json.contains(r#""reason":"critical_hit""#), "{json}");
        assert!(json.contains(r#""to":"2""#), "{json}");
        assert_eq!(DrinkRecord::from_json(&json).expect("parse"), record);
        assert!(DrinkRecord::from_json(&json.replace(r#""to":"2""#, r#""to":"0""#)).is_err());
        assert_eq!(record.score(), 1_700_000_000_000.0);
    }

    #[test]
    fn names_cannot_mention_or_format() {
        assert_eq!(clean_name("@everyone"), "everyone");
        assert_eq!(clean_name("**bold**"), "bold");
        assert_eq!(clean_name("   "), "player");
        assert_eq!(clean_name(&"x".repeat(100)).len(), 32);
    }
}
