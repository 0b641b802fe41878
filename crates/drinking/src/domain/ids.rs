//! The game's ids and the value of a die.
//!
//! Ids Tavern mints (games, sessions, drinks) are [`base::key_id!`] strings of 1 to 32
//! `[0-9a-z]`, 16 random characters when minted: they fit in a component's `custom_id`
//! (100 characters) next to the action, and never contain the `:` that separates key
//! parts. Players, channels, guilds and messages are Discord snowflakes, typed as
//! `discord::model` ids and stored as decimal strings (as Discord writes them).

use std::fmt;

use base::InvalidId;
use serde::{Deserialize, Serialize};

pub use discord::{ChannelId, GuildId, MessageId, UserId};

base::key_id! {
    /// A game or a roll-off, minted by Tavern.
    pub struct GameId(String) {
        what: "game id", chars: base::id::LOWER_ALNUM, max: 32, random: 16,
    }
}

base::key_id! {
    /// A session (leaderboard period), minted by Tavern.
    pub struct SessionId(String) {
        what: "session id", chars: base::id::LOWER_ALNUM, max: 32, random: 16,
    }
}

base::key_id! {
    /// One drink of a ledger, minted by Tavern.
    pub struct DrinkId(String) {
        what: "drink id", chars: base::id::LOWER_ALNUM, max: 32, random: 16,
    }
}

base::key_id! {
    /// Where a session lives: a guild, or the channel of a game in a DM (which has no
    /// guild). Either way a Discord snowflake, so a plain positive number.
    pub struct ScopeId(u64) { what: "session scope id" }
}

impl ScopeId {
    /// Sessions are per guild; a game in a DM channel has the channel as its scope.
    pub fn of(guild: Option<GuildId>, channel: ChannelId) -> ScopeId {
        ScopeId(guild.map_or(channel.get(), |g| g.get()))
    }
}

/// Reads a player (a Discord user id) from text, such as the value of a select-menu
/// option: a plain positive decimal number, nothing else (no sign, no space), so that
/// one player has one spelling.
pub fn parse_player(value: &str) -> Result<UserId, InvalidId> {
    discord::model::parse_id("player id", value)
}

/// The most sides a game's die may have (`drinking_die`).
pub const MAX_SIDES: u8 = 100;

/// A value shown by a game's die: 1 to [`MAX_SIDES`] (a game's own die may have fewer
/// sides: [`super::DiceRules`] says how many).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Die(u8);

impl Die {
    /// The face every die has.
    pub const ONE: Die = Die(1);

    pub fn new(value: u8) -> Result<Die, InvalidId> {
        if (1..=MAX_SIDES).contains(&value) {
            Ok(Die(value))
        } else {
            Err(InvalidId::new(
                "die value",
                &value.to_string(),
                "a die shows 1 to 100",
            ))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Debug for Die {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "die={}", self.0)
    }
}

impl fmt::Display for Die {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u8> for Die {
    type Error = InvalidId;
    fn try_from(v: u8) -> Result<Die, InvalidId> {
        Die::new(v)
    }
}

impl From<Die> for u8 {
    fn from(d: Die) -> u8 {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_reject() {
        assert!(GameId::parse("").is_err());
        assert!(GameId::parse("has:colon").is_err());
        assert!(GameId::parse("UPPER").is_err());
        assert!(GameId::parse(&"a".repeat(33)).is_err());
        assert_eq!(GameId::random().as_str().len(), 16);
        assert!(parse_player("0").is_err());
        assert!(parse_player("-1").is_err());
        assert!(parse_player("+5").is_err());
        assert_eq!(parse_player("99").expect("id").get(), 99);
        assert!(Die::new(0).is_err());
        assert!(Die::new(101).is_err());
        assert!(Die::new(20).is_ok());
    }

    #[test]
    fn ids_minted_before_still_parse() {
        // Ids used to be minted as 16 lower-case hex digits; stored ones stay valid.
        let old = GameId::parse("00c0ffee12345678").expect("an old game id");
        assert_eq!(old.to_string(), "00c0ffee12345678");
        assert!(SessionId::parse("0123456789abcdef").is_ok());
        assert!(DrinkId::parse("fedcba9876543210").is_ok());
    }

    #[test]
    fn snowflakes_are_stored_as_decimal_strings() {
        let user = UserId::new(1_234_567_890_123_456_789);
        let json = serde_json::to_string(&user).expect("json");
        assert_eq!(json, r#""1234567890123456789""#);
        assert_eq!(serde_json::from_str::<UserId>(&json).expect("read"), user);
        let scope = ScopeId::of(Some(GuildId::new(900)), ChannelId::new(700));
        assert_eq!(serde_json::to_string(&scope).expect("json"), r#""900""#);
        assert_eq!(ScopeId::of(None, ChannelId::new(700)).get(), 700);
    }
}
