//! The game's documents: a [`Game`] with its nested roll-offs, a player's
//! [`PlayerDoc`], a [`DrinkRecord`] of the ledger and a [`SessionDoc`]. Their serde
//! shape is the JSON the seed stores; [`crate::schema`] says under which key.

use base::InvalidId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{
    ChannelId, Die, DrinkId, GameId, MAX_SIDES, MessageId, ScopeId, SessionId, UserId,
};

/// Why a value could not be read as an id or a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidData {
    #[error(transparent)]
    Id(#[from] InvalidId),
    #[error("invalid {what}: {reason}")]
    Document { what: &'static str, reason: String },
}

/// The die of a game: how many sides, which value is a critical hit (hand out a drink)
/// and which a critical fail (drink). Classic Ronnied is a d6 where 6 crits and 1
/// fails. Stored in the game (only when not classic), so a game keeps the die it
/// started with when the configuration changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiceRules {
    pub sides: u8,
    pub crit: u8,
    pub fail: u8,
}

impl Default for DiceRules {
    fn default() -> DiceRules {
        DiceRules {
            sides: 6,
            crit: 6,
            fail: 1,
        }
    }
}

/// Why a [`DiceRules`] is refused; [`DiceRulesError::setting`] names the setting at
/// fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiceRulesError {
    #[error("a die has 2 to {MAX_SIDES} sides, not {0}")]
    Sides(u8),
    #[error("{crit} is not a face of a d{sides} (1 to {sides})")]
    Crit { crit: u8, sides: u8 },
    #[error("{fail} is not a face of a d{sides} (1 to {sides})")]
    Fail { fail: u8, sides: u8 },
    #[error("{0} is also the crit value; crit and fail must differ")]
    Same(u8),
}

impl DiceRulesError {
    /// The configuration key at fault: `drinking_die`, `drinking_crit` or
    /// `drinking_fail`.
    pub fn setting(&self) -> &'static str {
        match self {
            DiceRulesError::Sides(_) => "drinking_die",
            DiceRulesError::Crit { .. } => "drinking_crit",
            DiceRulesError::Fail { .. } | DiceRulesError::Same(_) => "drinking_fail",
        }
    }
}

impl DiceRules {
    /// Checked rules: 2 to [`MAX_SIDES`] sides, crit and fail faces of the die and
    /// different from each other.
    pub fn new(sides: u8, crit: u8, fail: u8) -> Result<DiceRules, DiceRulesError> {
        if !(2..=MAX_SIDES).contains(&sides) {
            return Err(DiceRulesError::Sides(sides));
        }
        if !(1..=sides).contains(&crit) {
            return Err(DiceRulesError::Crit { crit, sides });
        }
        if !(1..=sides).contains(&fail) {
            return Err(DiceRulesError::Fail { fail, sides });
        }
        if crit == fail {
            return Err(DiceRulesError::Same(fail));
        }
        Ok(DiceRules { sides, crit, fail })
    }

    /// Whether these are the classic d6 rules (then a game does not store them).
    pub fn is_classic(&self) -> bool {
        *self == DiceRules::default()
    }

    pub fn is_crit(&self, die: Die) -> bool {
        die.get() == self.crit
    }

    pub fn is_fail(&self, die: Die) -> bool {
        die.get() == self.fail
    }

    /// `d6`, `d20`: how messages name the die.
    pub fn name(&self) -> String {
        format!("d{}", self.sides)
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
    pub player_id: UserId,
    /// Display name when they joined; shown in messages.
    pub name: String,
    pub status: ParticipantStatus,
    pub roll: Option<Die>,
    pub rolled_at: Option<DateTime<Utc>>,
}

impl Participant {
    pub fn new(player_id: UserId, name: &str) -> Participant {
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
    pub channel_id: ChannelId,
    pub scope: ScopeId,
    pub session_id: SessionId,
    pub creator_id: UserId,
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
    pub message_id: Option<MessageId>,
    /// The single highest roller, once decided (top-level game only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<UserId>,
    /// Who began the game when it was not the creator (a force start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_started_by: Option<UserId>,
    #[serde(default)]
    pub abandoned: bool,
    /// The die this game is played with (absent: the classic d6, 6 crits, 1 fails).
    #[serde(default, skip_serializing_if = "DiceRules::is_classic")]
    pub dice: DiceRules,
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
    pub from: Option<UserId>,
    pub to: UserId,
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
    pub fn assigned_by(&self) -> Option<UserId> {
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
    pub id: UserId,
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
    pub started_by: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drink_records_round_trip_and_reject_bad_values() {
        let record = DrinkRecord {
            id: DrinkId::parse("d1").expect("id"),
            game_id: GameId::parse("g1").expect("id"),
            roll_off_id: None,
            session_id: SessionId::parse("s1").expect("id"),
            from: Some(UserId::new(1)),
            to: UserId::new(2),
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

    /// Documents as they are stored (ids Tavern minted as strings, Discord's as decimal
    /// strings) read back and are written again byte for byte.
    #[test]
    fn stored_documents_keep_their_bytes() {
        let game = concat!(
            r#"{"id":"00c0ffee12345678","channel_id":"700","scope":"900","#,
            r#""session_id":"5e55101234567890","creator_id":"1","status":"roll_off","#,
            r#""participants":[{"player_id":"1","name":"alice","status":"done","roll":2,"#,
            r#""rolled_at":"2025-06-15T16:53:20Z"},{"player_id":"1234567890123456789","#,
            r#""name":"bob","status":"done","roll":2,"rolled_at":"2025-06-15T16:53:21Z"},"#,
            r#"{"player_id":"3","name":"carol","status":"done","roll":5,"#,
            r#""rolled_at":"2025-06-15T16:53:22Z"}],"roll_offs":[{"id":"abc","#,
            r#""channel_id":"700","scope":"900","session_id":"5e55101234567890","#,
            r#""creator_id":"1","status":"roll_off","participants":[{"player_id":"1","#,
            r#""name":"alice","status":"waiting_to_roll","roll":null,"rolled_at":null},"#,
            r#"{"player_id":"1234567890123456789","name":"bob","status":"needs_to_assign","#,
            r#""roll":6,"rolled_at":"2025-06-15T16:53:23Z"}],"parent_id":"00c0ffee12345678","#,
            r#""roll_off_kind":"lowest","abandoned":false,"#,
            r#""created_at":"2025-06-15T16:53:22Z","updated_at":"2025-06-15T16:53:23Z","#,
            r#""version":0}],"message_id":"5000","winner":"3","force_started_by":"1234567890123456789","#,
            r#""abandoned":false,"created_at":"2025-06-15T16:50:00Z","#,
            r#""updated_at":"2025-06-15T16:53:23Z","version":7}"#,
        );
        let read: Game = serde_json::from_str(game).expect("a stored game");
        assert_eq!(read.creator_id, UserId::new(1));
        assert_eq!(read.message_id, Some(MessageId::new(5000)));
        assert_eq!(serde_json::to_string(&read).expect("json"), game);

        let drink = concat!(
            r#"{"id":"d1","game_id":"00c0ffee12345678","roll_off_id":"abc","#,
            r#""session_id":"5e55101234567890","from":"1234567890123456789","to":"1","#,
            r#""reason":"critical_hit","at":"2025-06-15T16:53:24.500Z","paid":true,"#,
            r#""paid_at":"2025-06-15T17:00:00Z"}"#,
        );
        let record = DrinkRecord::from_json(drink).expect("a stored drink");
        assert_eq!(record.to_json().expect("json"), drink);

        let player = concat!(
            r#"{"id":"1234567890123456789","name":"bob","current_game":"00c0ffee12345678","#,
            r#""last_roll":6,"last_roll_at":"2025-06-15T16:53:23Z","#,
            r#""updated_at":"2025-06-15T16:53:23Z"}"#,
        );
        let doc: PlayerDoc = serde_json::from_str(player).expect("a stored player");
        assert_eq!(serde_json::to_string(&doc).expect("json"), player);

        let session = concat!(
            r#"{"id":"5e55101234567890","scope":"900","#,
            r#""started_at":"2025-06-15T16:00:00Z","started_by":"1"}"#,
        );
        let doc: SessionDoc = serde_json::from_str(session).expect("a stored session");
        assert_eq!(serde_json::to_string(&doc).expect("json"), session);
    }

    #[test]
    fn names_cannot_mention_or_format() {
        assert_eq!(clean_name("@everyone"), "everyone");
        assert_eq!(clean_name("**bold**"), "bold");
        assert_eq!(clean_name("   "), "player");
        assert_eq!(clean_name(&"x".repeat(100)).len(), 32);
    }
}
