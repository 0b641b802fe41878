//! The one place that knows the seed's Redis keys and the JSON stored under them.
//!
//! Keys of the seed (`ronnied-redis-design.md`), exactly as written there:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `game:{gameID}` | string | a [`Game`](crate::domain::Game) as JSON, its roll-offs nested inside |
//! | `channel:{channelID}` | string | the id of the channel's running game |
//! | `active_games` | set | ids of games not yet completed |
//! | `player:{playerID}` | string | a [`PlayerDoc`](crate::domain::PlayerDoc) as JSON |
//! | `player_games:{playerID}` | set | ids of every game the player is in, kept until the game expires (no TTL while one runs; then the set expires with its last game) |
//! | `drinks:{gameID}` | sorted set | [`DrinkRecord`](crate::domain::DrinkRecord) JSON members scored by their time (ms) |
//! | `player_drinks:{playerID}` | hash | `assigned`, `received` counters |
//!
//! Tavern's own additions (the seed has no notion of where a session lives):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `session:{scopeID}` | string | the current [`SessionDoc`](crate::domain::SessionDoc) of a guild (or of a DM channel) |
//! | `session_games:{sessionID}` | set | ids of the games started during that session |
//!
//! Nothing outside this module formats a key or names one: the repositories and the
//! check ask for keys here. The documents stored under them are the types of
//! [`crate::domain`]; this module depends on it, never the reverse.

use std::fmt::Display;

use serde::{Deserialize, Serialize};
use store::StorageError;

use crate::domain::{ChannelId, GameId, InvalidData, ScopeId, SessionId, UserId, parse_player};

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
pub fn channel_key(id: ChannelId) -> String {
    format!("channel:{id}")
}
pub fn player_key(id: UserId) -> String {
    format!("player:{id}")
}
pub fn player_games_key(id: UserId) -> String {
    format!("player_games:{id}")
}
pub fn drinks_key(id: &GameId) -> String {
    format!("drinks:{id}")
}
pub fn player_drinks_key(id: UserId) -> String {
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

/// The player a `player_drinks:{playerID}` key (found by [`PLAYER_DRINKS_PATTERN`])
/// counts for; `None` when the rest of the key is not a player id.
pub fn player_of_drinks_key(key: &str) -> Option<UserId> {
    key_suffix(key, "player_drinks").and_then(|s| parse_player(s).ok())
}

/// Serialises a document after checking it (validation before storage).
pub fn encode<T: Serialize>(what: &'static str, doc: &T) -> Result<String, InvalidData> {
    serde_json::to_string(doc).map_err(|e| InvalidData::Document {
        what,
        reason: e.to_string(),
    })
}

/// Reads a stored document; a malformed one is [`StorageError::Corrupt`] naming where
/// it was (`what`: its key).
pub fn decode<T: for<'de> Deserialize<'de>>(
    what: impl Display,
    raw: &[u8],
) -> Result<T, StorageError> {
    serde_json::from_slice(raw).map_err(|e| StorageError::corrupt(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_as_in_the_seed() {
        let game = GameId::parse("abc123").expect("id");
        let player = UserId::new(42);
        let channel = ChannelId::new(7);
        assert_eq!(game_key(&game), "game:abc123");
        assert_eq!(channel_key(channel), "channel:7");
        assert_eq!(player_key(player), "player:42");
        assert_eq!(player_games_key(player), "player_games:42");
        assert_eq!(drinks_key(&game), "drinks:abc123");
        assert_eq!(player_drinks_key(player), "player_drinks:42");
        assert_eq!(ACTIVE_GAMES, "active_games");
        assert_eq!(key_suffix("drinks:abc123", "drinks"), Some("abc123"));
        assert_eq!(player_of_drinks_key("player_drinks:42"), Some(player));
        assert_eq!(player_of_drinks_key("player_drinks:+42"), None);
    }
}
