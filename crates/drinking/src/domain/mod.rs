//! The game without I/O: its ids ([`GameId`], [`SessionId`], [`DrinkId`], [`ScopeId`];
//! players, channels and messages are Discord's [`UserId`], [`ChannelId`],
//! [`MessageId`]), its documents ([`Game`], [`DrinkRecord`], [`PlayerDoc`],
//! [`SessionDoc`]) and its rules. Every operation takes the game document, the time and
//! a dice source, changes the document and says which drinks were poured.
//!
//! Life of a game: `waiting` (players join) -> `active` (everyone rolls the game's die,
//! [`DiceRules`]: 1d6 unless configured otherwise) ->
//! `roll_off` (only while ties are being broken) -> `completed`.
//!
//! - The creator begins. Anyone else in the game may force-start once the game is
//!   [`Rules::force_start_after`] old; the creator then owes a `delayed_start` drink.
//! - The crit value (6 on the classic d6) is a critical hit: the roller picks who drinks
//!   (`critical_hit`). The fail value (1) is a critical fail: an automatic
//!   `critical_fail` drink for the roller. Below, "a 6" and "a 1" mean the crit and fail
//!   values of the game's die.
//! - **Alone** (a game begun with one player), the one roll pours exactly one drink, for
//!   the player: a 6 is a critical hit with nobody else to hand it to, so they drink it
//!   (`critical_hit`, from and to them); a 1 is the usual `critical_fail`; any other face
//!   is the lowest roll (`lowest_roll`). There is nobody to beat, so nobody wins.
//! - Once everyone has rolled and handed out their drinks, a single lowest roller takes a
//!   `lowest_roll` drink and a single highest roller is the winner. A tie for lowest (or
//!   for highest) starts a roll-off: a child game with only the tied players, played by
//!   the same rules (6s and 1s pour drinks there too). A tie in a roll-off nests another
//!   roll-off. Every drink of a roll-off is recorded for the top-level game. When
//!   everyone is tied, only the lowest roll-off is played: somebody must drink, and
//!   nobody stands out as the winner.
//! - A game is completed once it and all its roll-offs are resolved.

use std::time::Duration;

use chrono::{DateTime, Utc};

mod documents;
mod ids;

pub use documents::{
    DiceRules, DiceRulesError, DrinkReason, DrinkRecord, Game, GameStatus, InvalidData,
    Participant, ParticipantStatus, PlayerDoc, RollOffKind, SessionDoc, clean_name,
};
pub use ids::{
    ChannelId, Die, DrinkId, GameId, GuildId, MAX_SIDES, MessageId, ScopeId, SessionId, UserId,
    parse_player,
};

/// The configurable part of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Most players in one game (the original had this setting and ignored it).
    pub player_limit: usize,
    /// After this long, anyone in a waiting game may begin it (and the creator owes a
    /// drink); a game idle this long may be abandoned by anyone.
    pub force_start_after: Duration,
    /// The die new games are played with.
    pub dice: DiceRules,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            player_limit: 10,
            force_start_after: Duration::from_secs(5 * 60),
            dice: DiceRules::default(),
        }
    }
}

/// Where die rolls come from. It is told who rolls so that a test can script each
/// player's dice even when their presses race each other; real dice ignore it.
///
/// It also picks which themed line a message uses ([`DiceSource::pick`]), so a test that
/// seeds its dice gets the same lines every run.
pub trait DiceSource: Send + Sync {
    /// One roll of a die with `sides` sides (1 to `sides`).
    fn roll(&self, player: UserId, sides: u8) -> Die;

    /// An index below `choices` (0 when there are none), for varied lines.
    fn pick(&self, choices: usize) -> usize {
        rand::random_range(0..choices.max(1))
    }
}

/// Rolls once and then keeps answering the same value: a press that loses a race and is
/// redone on the fresh game keeps the roll it already made. A press refused by the rules
/// never rolls, because the rules refuse before they roll.
pub struct StickyDice<'a> {
    source: &'a dyn DiceSource,
    rolled: std::sync::Mutex<Option<Die>>,
}

impl std::fmt::Debug for StickyDice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StickyDice")
            .field("rolled", &self.rolled)
            .finish_non_exhaustive()
    }
}

impl<'a> StickyDice<'a> {
    pub fn new(source: &'a dyn DiceSource) -> StickyDice<'a> {
        StickyDice {
            source,
            rolled: std::sync::Mutex::new(None),
        }
    }
}

impl DiceSource for StickyDice<'_> {
    fn roll(&self, player: UserId, sides: u8) -> Die {
        let mut rolled = match self.rolled.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *rolled.get_or_insert_with(|| self.source.roll(player, sides))
    }

    fn pick(&self, choices: usize) -> usize {
        self.source.pick(choices)
    }
}

/// Fair dice from the thread-local generator (seeded from the OS).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomDice;

impl DiceSource for RandomDice {
    fn roll(&self, _player: UserId, sides: u8) -> Die {
        let value = rand::random_range(1..=sides.clamp(1, MAX_SIDES));
        Die::new(value).unwrap_or(Die::ONE)
    }
}

/// Why an action was refused. Every variant is shown to the user who tried it, so the
/// messages speak to them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GameError {
    #[error("you are already in this game")]
    AlreadyJoined,
    #[error("the game is full ({limit} players)")]
    GameFull { limit: usize },
    #[error("the game has already started")]
    AlreadyStarted,
    #[error("the game has not started yet")]
    NotStarted,
    #[error("this game is over")]
    GameOver,
    #[error("you are not in this game")]
    NotInGame,
    #[error("only the creator may begin for now; anyone in the game may force-start in {}", human(*remaining))]
    OnlyCreatorMayBeginYet { remaining: Duration },
    #[error("only the creator may abandon this game for now; anyone may in {}", human(*remaining))]
    OnlyCreatorMayAbandonYet { remaining: Duration },
    #[error("you have already rolled")]
    AlreadyRolled,
    #[error("you have rolled in this roll-off: waiting for {waiting_on} to roll")]
    WaitingForOthers { waiting_on: String },
    /// A player of the game pressed Roll while roll-offs they are not in are played.
    #[error(
        "you are not in {}: only {players} roll in {}",
        if *several { "these roll-offs" } else { "this roll-off" },
        if *several { "them" } else { "it" }
    )]
    NotInRollOff { players: String, several: bool },
    #[error("pick who drinks for your {crit} first")]
    MustAssignFirst { crit: u8 },
    #[error("you have no drink to hand out")]
    NothingToAssign,
    #[error("pick somebody else: a {crit} hands a drink to another player")]
    CannotAssignToSelf { crit: u8 },
    #[error("that player is not in this game")]
    TargetNotInGame,
    #[error("you have no unpaid drinks here")]
    NothingToPay,
    #[error("a game is already running in this channel")]
    GameAlreadyRunning,
}

/// `a`, `a and b`, `a, b and c`, for messages.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `4 min 30 s`, for messages.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs().max(1);
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// What an operation changed besides the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Drinks to append to the ledger (`drinks:{gameID}` of the top-level game).
    pub drinks: Vec<DrinkRecord>,
    /// Roll-offs that started: which tie and who plays.
    pub roll_offs_started: Vec<(RollOffKind, Vec<UserId>)>,
    /// Players who took a `lowest_roll` drink.
    pub lowest: Vec<UserId>,
    /// The winner, if decided by this operation.
    pub winner: Option<UserId>,
    /// True when this operation completed the whole game (happens exactly once).
    pub completed: bool,
}

/// The result of a roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollOutcome {
    pub die: Die,
    /// Set when the roll was made in a roll-off.
    pub roll_off: Option<RollOffKind>,
    /// The roller rolled a 6 and must now pick who drinks.
    pub must_assign: bool,
    pub effects: Effects,
}

fn remaining(elapsed: chrono::TimeDelta, needed: Duration) -> Option<Duration> {
    let elapsed = elapsed.to_std().unwrap_or(Duration::ZERO);
    needed.checked_sub(elapsed).filter(|d| !d.is_zero())
}

/// Everything needed to pour a drink during one operation.
struct Pour<'a> {
    root_id: &'a GameId,
    session_id: &'a SessionId,
    now: DateTime<Utc>,
    effects: Effects,
}

impl Pour<'_> {
    fn drink(
        &mut self,
        roll_off: Option<&GameId>,
        from: Option<UserId>,
        to: UserId,
        reason: DrinkReason,
    ) {
        self.effects.drinks.push(DrinkRecord {
            id: DrinkId::random(),
            game_id: self.root_id.clone(),
            roll_off_id: roll_off.cloned(),
            session_id: self.session_id.clone(),
            from,
            to,
            reason,
            at: self.now,
            paid: false,
            paid_at: None,
        });
    }
}

impl Game {
    /// A new game in `waiting`, with its creator as the first player.
    pub fn new(
        id: GameId,
        channel_id: ChannelId,
        scope: ScopeId,
        session_id: SessionId,
        creator: UserId,
        creator_name: &str,
        now: DateTime<Utc>,
    ) -> Game {
        Game {
            id,
            channel_id,
            scope,
            session_id,
            creator_id: creator,
            status: GameStatus::Waiting,
            participants: vec![Participant::new(creator, creator_name)],
            parent_id: None,
            roll_off_kind: None,
            roll_offs: Vec::new(),
            message_id: None,
            winner: None,
            force_started_by: None,
            abandoned: false,
            dice: DiceRules::default(),
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// The same game played with `dice`.
    pub fn with_dice(mut self, dice: DiceRules) -> Game {
        self.dice = dice;
        self
    }

    pub fn participant(&self, player: UserId) -> Option<&Participant> {
        self.participants.iter().find(|p| p.player_id == player)
    }

    pub fn is_completed(&self) -> bool {
        self.status == GameStatus::Completed
    }

    /// A top-level game with one player (see the module docs for its rule).
    pub fn is_solo(&self) -> bool {
        self.parent_id.is_none() && self.participants.len() == 1
    }

    /// In a solo game, whether the roll itself poured the player's drink (a 6 or a 1),
    /// so there is no lowest-roll drink.
    pub fn solo_drank_for_roll(&self) -> bool {
        self.is_solo()
            && self
                .participants
                .first()
                .and_then(|p| p.roll)
                .is_some_and(|d| self.dice.is_crit(d) || self.dice.is_fail(d))
    }

    fn all_done(&self) -> bool {
        self.participants
            .iter()
            .all(|p| p.status == ParticipantStatus::Done)
    }

    /// Whether `player` still has something to do in this very node.
    fn is_open_for(&self, player: UserId) -> bool {
        self.status != GameStatus::Completed
            && self
                .participant(player)
                .is_some_and(|p| p.status != ParticipantStatus::Done)
    }

    /// The path (indices into nested `roll_offs`) of the node where `player` has
    /// something to do. There is at most one: a player's next roll-off only starts once
    /// the node they were in is resolved, and the two roll-offs of one game never share
    /// a player.
    fn open_path(&self, player: UserId) -> Option<Vec<usize>> {
        for (i, child) in self.roll_offs.iter().enumerate() {
            if let Some(mut path) = child.open_path(player) {
                path.insert(0, i);
                return Some(path);
            }
        }
        self.is_open_for(player).then(Vec::new)
    }

    fn node(&self, path: &[usize]) -> Option<&Game> {
        match path.split_first() {
            None => Some(self),
            Some((i, rest)) => self.roll_offs.get(*i)?.node(rest),
        }
    }

    fn node_mut(&mut self, path: &[usize]) -> Option<&mut Game> {
        match path.split_first() {
            None => Some(self),
            Some((i, rest)) => self.roll_offs.get_mut(*i)?.node_mut(rest),
        }
    }

    /// The game (top-level or roll-off) where `player` must act now, if any.
    pub fn open_node(&self, player: UserId) -> Option<&Game> {
        if !matches!(self.status, GameStatus::Active | GameStatus::RollOff) {
            return None;
        }
        self.node(&self.open_path(player)?)
    }

    /// Roll-offs still being played, deepest first, with the players who still have to
    /// act in each.
    pub fn pending_roll_offs(&self) -> Vec<&Game> {
        let mut out = Vec::new();
        for child in &self.roll_offs {
            out.extend(child.pending_roll_offs());
            if child.status != GameStatus::Completed && !child.all_done() {
                out.push(child);
            }
        }
        out
    }

    /// Names of players who still have to roll or hand out a drink somewhere in the tree.
    pub fn waiting_on(&self) -> Vec<&Participant> {
        let mut out: Vec<&Participant> = Vec::new();
        for child in &self.roll_offs {
            out.extend(child.waiting_on());
        }
        if self.status != GameStatus::Completed {
            out.extend(
                self.participants
                    .iter()
                    .filter(|p| p.status != ParticipantStatus::Done),
            );
        }
        out
    }

    /// Other players of the game: who a 6 may hand a drink to.
    pub fn assign_targets(&self, roller: UserId) -> Vec<&Participant> {
        self.participants
            .iter()
            .filter(|p| p.player_id != roller)
            .collect()
    }

    /// Adds `player` to a waiting game.
    pub fn join(
        &mut self,
        player: UserId,
        name: &str,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<(), GameError> {
        match self.status {
            GameStatus::Waiting => {}
            GameStatus::Completed => return Err(GameError::GameOver),
            GameStatus::Active | GameStatus::RollOff => return Err(GameError::AlreadyStarted),
        }
        if self.participant(player).is_some() {
            return Err(GameError::AlreadyJoined);
        }
        if self.participants.len() >= rules.player_limit {
            return Err(GameError::GameFull {
                limit: rules.player_limit,
            });
        }
        self.participants.push(Participant::new(player, name));
        self.updated_at = now;
        Ok(())
    }

    /// Starts the game. The creator may always; anyone else in the game once it is
    /// `force_start_after` old, and then the creator owes a `delayed_start` drink.
    pub fn begin(
        &mut self,
        player: UserId,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Effects, GameError> {
        match self.status {
            GameStatus::Waiting => {}
            GameStatus::Completed => return Err(GameError::GameOver),
            GameStatus::Active | GameStatus::RollOff => return Err(GameError::AlreadyStarted),
        }
        let id = self.id.clone();
        let session = self.session_id.clone();
        let mut pour = Pour {
            root_id: &id,
            session_id: &session,
            now,
            effects: Effects::default(),
        };
        if player != self.creator_id {
            if self.participant(player).is_none() {
                return Err(GameError::NotInGame);
            }
            if let Some(remaining) = remaining(now - self.created_at, rules.force_start_after) {
                return Err(GameError::OnlyCreatorMayBeginYet { remaining });
            }
            pour.drink(
                None,
                Some(player),
                self.creator_id,
                DrinkReason::DelayedStart,
            );
            self.force_started_by = Some(player);
        }
        self.status = GameStatus::Active;
        self.updated_at = now;
        Ok(pour.effects)
    }

    /// `player` rolls the game's die in the (sub)game where it is their turn.
    pub fn roll(
        &mut self,
        player: UserId,
        dice: &dyn DiceSource,
        now: DateTime<Utc>,
    ) -> Result<RollOutcome, GameError> {
        match self.status {
            GameStatus::Waiting => return Err(GameError::NotStarted),
            GameStatus::Completed => return Err(GameError::GameOver),
            GameStatus::Active | GameStatus::RollOff => {}
        }
        if self.participant(player).is_none() {
            return Err(GameError::NotInGame);
        }
        let Some(path) = self.open_path(player) else {
            if self.status == GameStatus::Active {
                return Err(GameError::AlreadyRolled);
            }
            let pending = self.pending_roll_offs();
            if !pending.iter().any(|g| g.participant(player).is_some()) {
                let players: Vec<String> = pending
                    .iter()
                    .map(|g| {
                        let names: Vec<String> =
                            g.participants.iter().map(|p| p.name.clone()).collect();
                        match (pending.len(), g.roll_off_kind) {
                            (1, _) | (_, None) => and_list(&names),
                            (_, Some(kind)) => {
                                let tie = match kind {
                                    RollOffKind::Lowest => "lowest",
                                    RollOffKind::Highest => "highest",
                                };
                                format!("{} (tied for {tie})", and_list(&names))
                            }
                        }
                    })
                    .collect();
                return Err(GameError::NotInRollOff {
                    players: players.join(", "),
                    several: pending.len() > 1,
                });
            }
            let names: Vec<String> = self.waiting_on().iter().map(|p| p.name.clone()).collect();
            return Err(GameError::WaitingForOthers {
                waiting_on: names.join(", "),
            });
        };
        let alone = self.is_solo();
        let rules = self.dice;
        let (id, session) = (self.id.clone(), self.session_id.clone());
        let mut pour = Pour {
            root_id: &id,
            session_id: &session,
            now,
            effects: Effects::default(),
        };
        let node = self.node_mut(&path).ok_or(GameError::NotInGame)?;
        let roll_off = node.roll_off_kind;
        let roll_off_id = node.parent_id.as_ref().map(|_| node.id.clone());
        let participant = node
            .participants
            .iter_mut()
            .find(|p| p.player_id == player)
            .ok_or(GameError::NotInGame)?;
        if participant.status == ParticipantStatus::NeedsToAssign {
            return Err(GameError::MustAssignFirst { crit: rules.crit });
        }
        let die = dice.roll(player, rules.sides);
        participant.roll = Some(die);
        participant.rolled_at = Some(now);
        let mut must_assign = false;
        participant.status = if rules.is_crit(die) {
            if alone {
                pour.drink(
                    roll_off_id.as_ref(),
                    Some(player),
                    player,
                    DrinkReason::CriticalHit,
                );
                ParticipantStatus::Done
            } else {
                must_assign = true;
                ParticipantStatus::NeedsToAssign
            }
        } else {
            if rules.is_fail(die) {
                pour.drink(
                    roll_off_id.as_ref(),
                    None,
                    player,
                    DrinkReason::CriticalFail,
                );
            }
            ParticipantStatus::Done
        };
        let mut effects = pour.effects;
        self.settle(&path, now, &mut effects);
        Ok(RollOutcome {
            die,
            roll_off,
            must_assign,
            effects,
        })
    }

    /// `from`, who rolled a 6, hands the drink to `to` (any other player of the game).
    pub fn assign(
        &mut self,
        from: UserId,
        to: UserId,
        now: DateTime<Utc>,
    ) -> Result<Effects, GameError> {
        match self.status {
            GameStatus::Waiting => return Err(GameError::NotStarted),
            GameStatus::Completed => return Err(GameError::GameOver),
            GameStatus::Active | GameStatus::RollOff => {}
        }
        if self.participant(from).is_none() {
            return Err(GameError::NotInGame);
        }
        let path = self.open_path(from).ok_or(GameError::NothingToAssign)?;
        if to == from {
            return Err(GameError::CannotAssignToSelf {
                crit: self.dice.crit,
            });
        }
        if self.participant(to).is_none() {
            return Err(GameError::TargetNotInGame);
        }
        let (id, session) = (self.id.clone(), self.session_id.clone());
        let mut pour = Pour {
            root_id: &id,
            session_id: &session,
            now,
            effects: Effects::default(),
        };
        let node = self.node_mut(&path).ok_or(GameError::NotInGame)?;
        let roll_off_id = node.parent_id.as_ref().map(|_| node.id.clone());
        let participant = node
            .participants
            .iter_mut()
            .find(|p| p.player_id == from)
            .ok_or(GameError::NotInGame)?;
        if participant.status != ParticipantStatus::NeedsToAssign {
            return Err(GameError::NothingToAssign);
        }
        participant.status = ParticipantStatus::Done;
        pour.drink(
            roll_off_id.as_ref(),
            Some(from),
            to,
            DrinkReason::CriticalHit,
        );
        let mut effects = pour.effects;
        self.settle(&path, now, &mut effects);
        Ok(effects)
    }

    /// Ends the game where it stands; drinks already poured stay owed. The creator may
    /// always; anyone else once the game has been idle for `force_start_after`, so a
    /// game whose players left cannot block the channel.
    pub fn abandon(
        &mut self,
        player: UserId,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<(), GameError> {
        if self.status == GameStatus::Completed {
            return Err(GameError::GameOver);
        }
        if player != self.creator_id
            && let Some(remaining) = remaining(now - self.updated_at, rules.force_start_after)
        {
            return Err(GameError::OnlyCreatorMayAbandonYet { remaining });
        }
        self.close_all();
        self.abandoned = true;
        self.updated_at = now;
        Ok(())
    }

    fn close_all(&mut self) {
        self.status = GameStatus::Completed;
        for child in &mut self.roll_offs {
            child.close_all();
        }
    }

    /// Resolves the nodes along `path`, deepest first: a node whose players are all done
    /// pours its lowest-roll drink, names its winner or starts roll-offs; a node whose
    /// roll-offs are all completed completes.
    fn settle(&mut self, path: &[usize], now: DateTime<Utc>, effects: &mut Effects) {
        let (id, session) = (self.id.clone(), self.session_id.clone());
        let mut pour = Pour {
            root_id: &id,
            session_id: &session,
            now,
            effects: std::mem::take(effects),
        };
        let mut winner = None;
        for depth in (0..=path.len()).rev() {
            let Some(node) = self.node_mut(&path[..depth]) else {
                continue;
            };
            node.resolve(&mut pour, &mut winner);
        }
        if let Some(w) = winner {
            self.winner = Some(w);
            pour.effects.winner = Some(w);
        }
        self.updated_at = now;
        pour.effects.completed = self.status == GameStatus::Completed;
        *effects = pour.effects;
    }

    fn resolve(&mut self, pour: &mut Pour<'_>, winner: &mut Option<UserId>) {
        if self.status == GameStatus::Completed || !self.all_done() {
            return;
        }
        if !self.roll_offs.is_empty() {
            if self.roll_offs.iter().all(Game::is_completed) {
                self.status = GameStatus::Completed;
            }
            return;
        }
        let rolls: Vec<(UserId, u8)> = self
            .participants
            .iter()
            .map(|p| (p.player_id, p.roll.map_or(0, Die::get)))
            .collect();
        let low = rolls.iter().map(|r| r.1).min().unwrap_or(0);
        let high = rolls.iter().map(|r| r.1).max().unwrap_or(0);
        let lowest: Vec<UserId> = rolls.iter().filter(|r| r.1 == low).map(|r| r.0).collect();
        let highest: Vec<UserId> = rolls.iter().filter(|r| r.1 == high).map(|r| r.0).collect();
        let everyone_tied = low == high;
        let roll_off_id = self.parent_id.as_ref().map(|_| self.id.clone());
        let (decide_lowest, decide_highest) = match self.roll_off_kind {
            // Alone: one drink per game, and the roll already poured it on a 6 or a 1.
            None if self.is_solo() => (!self.solo_drank_for_roll(), false),
            None => (true, !everyone_tied),
            Some(RollOffKind::Lowest) => (true, false),
            Some(RollOffKind::Highest) => (false, true),
        };
        if decide_lowest {
            if let [loser] = lowest[..] {
                pour.drink(roll_off_id.as_ref(), None, loser, DrinkReason::LowestRoll);
                pour.effects.lowest.push(loser);
            } else {
                self.start_roll_off(RollOffKind::Lowest, &lowest, pour);
            }
        }
        if decide_highest {
            if let [top] = highest[..] {
                *winner = Some(top);
            } else {
                self.start_roll_off(RollOffKind::Highest, &highest, pour);
            }
        }
        self.status = if self.roll_offs.is_empty() {
            GameStatus::Completed
        } else {
            GameStatus::RollOff
        };
    }

    fn start_roll_off(&mut self, kind: RollOffKind, players: &[UserId], pour: &mut Pour<'_>) {
        let participants: Vec<Participant> = self
            .participants
            .iter()
            .filter(|p| players.contains(&p.player_id))
            .map(|p| Participant::new(p.player_id, &p.name))
            .collect();
        self.roll_offs.push(Game {
            id: GameId::random(),
            channel_id: self.channel_id,
            scope: self.scope,
            session_id: self.session_id.clone(),
            creator_id: self.creator_id,
            status: GameStatus::RollOff,
            participants,
            parent_id: Some(self.id.clone()),
            roll_off_kind: Some(kind),
            roll_offs: Vec::new(),
            message_id: None,
            winner: None,
            force_started_by: None,
            abandoned: false,
            dice: self.dice,
            created_at: pour.now,
            updated_at: pour.now,
            version: 0,
        });
        pour.effects
            .roll_offs_started
            .push((kind, players.to_vec()));
    }

    /// Checks `self`, about to be written over `before` (`None`: a new game): its
    /// invariants ([`Game::validate`]) and, when it gained players, the player limit.
    /// The limit is the rules' of the moment a player joins: a game that already has
    /// more players (the limit was lowered since) plays on, and can still be
    /// abandoned.
    pub fn validate_change(&self, before: Option<&Game>, rules: &Rules) -> Result<(), InvalidData> {
        self.validate()?;
        let had = before.map_or(0, |b| b.participants.len());
        if self.participants.len() > had && self.participants.len() > rules.player_limit {
            return Err(InvalidData::Document {
                what: "game",
                reason: format!(
                    "{} players exceed the limit of {}",
                    self.participants.len(),
                    rules.player_limit
                ),
            });
        }
        Ok(())
    }

    /// Checks the invariants of a stored game; run before every write
    /// ([`Game::validate_change`]).
    pub fn validate(&self) -> Result<(), InvalidData> {
        let bad = |reason: String| InvalidData::Document {
            what: "game",
            reason,
        };
        if self.parent_id.is_some() || self.roll_off_kind.is_some() {
            return Err(bad("a top-level game has no parent".into()));
        }
        if let Err(error) = DiceRules::new(self.dice.sides, self.dice.crit, self.dice.fail) {
            return Err(bad(error.to_string()));
        }
        if self.participant(self.creator_id).is_none() {
            return Err(bad("the creator is not a participant".into()));
        }
        if self.status == GameStatus::Waiting
            && (self.participants.iter().any(|p| p.roll.is_some()) || !self.roll_offs.is_empty())
        {
            return Err(bad("nobody rolls before the game begins".into()));
        }
        if self.winner.is_some_and(|w| self.participant(w).is_none()) {
            return Err(bad("the winner is not a participant".into()));
        }
        self.validate_node(self, 0)
    }

    fn validate_node(&self, root: &Game, depth: usize) -> Result<(), InvalidData> {
        let bad = |reason: String| InvalidData::Document {
            what: "game",
            reason: format!(
                "{} {}: {reason}",
                if depth == 0 { "game" } else { "roll-off" },
                self.id
            ),
        };
        if self.participants.is_empty() {
            return Err(bad("no participants".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.participants {
            if !seen.insert(p.player_id) {
                return Err(bad(format!("player {} appears twice", p.player_id)));
            }
            if root.participant(p.player_id).is_none() {
                return Err(bad(format!("player {} is not in the game", p.player_id)));
            }
            let rolled = p.roll.is_some() && p.rolled_at.is_some();
            let consistent = match p.status {
                ParticipantStatus::WaitingToRoll => p.roll.is_none(),
                ParticipantStatus::NeedsToAssign => {
                    p.roll.is_some_and(|d| root.dice.is_crit(d)) && rolled
                }
                ParticipantStatus::Done => rolled,
            };
            if let Some(die) = p.roll
                && die.get() > root.dice.sides
            {
                return Err(bad(format!(
                    "player {} rolled {die} on a {}",
                    p.player_id,
                    root.dice.name()
                )));
            }
            if !consistent {
                return Err(bad(format!(
                    "player {} has status {:?} with roll {:?}",
                    p.player_id, p.status, p.roll
                )));
            }
        }
        if depth > 0 {
            if self.participants.len() < 2 {
                return Err(bad("a roll-off needs at least two players".into()));
            }
            if self.roll_off_kind.is_none() || self.parent_id.is_none() {
                return Err(bad("a roll-off names its parent and its kind".into()));
            }
            if matches!(self.status, GameStatus::Waiting | GameStatus::Active) {
                return Err(bad("a roll-off is either rolling off or completed".into()));
            }
        }
        if self.status == GameStatus::Completed && !root.abandoned && !self.all_done() {
            return Err(bad("completed while players still have to act".into()));
        }
        for child in &self.roll_offs {
            if child.parent_id.as_ref() != Some(&self.id) {
                return Err(bad(format!("roll-off {} names another parent", child.id)));
            }
            child.validate_node(root, depth + 1)?;
        }
        Ok(())
    }
}

/// One line of the leaderboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub player: UserId,
    /// Drinks this player was given.
    pub received: u32,
    /// Of those, how many they paid.
    pub paid: u32,
    /// Drinks they handed to somebody else.
    pub assigned: u32,
}

impl Standing {
    /// Drinks still owed.
    pub fn owed(&self) -> u32 {
        self.received.saturating_sub(self.paid)
    }
}

/// The leaderboard of a set of drinks: most owed first, then most received, then by id
/// so the order is stable.
pub fn leaderboard<'a>(records: impl IntoIterator<Item = &'a DrinkRecord>) -> Vec<Standing> {
    let mut rows: std::collections::BTreeMap<UserId, Standing> = std::collections::BTreeMap::new();
    let blank = |player| Standing {
        player,
        received: 0,
        paid: 0,
        assigned: 0,
    };
    for record in records {
        let row = rows.entry(record.to).or_insert_with(|| blank(record.to));
        row.received += 1;
        if record.paid {
            row.paid += 1;
        }
        if let Some(from) = record.assigned_by() {
            rows.entry(from).or_insert_with(|| blank(from)).assigned += 1;
        }
    }
    let mut out: Vec<Standing> = rows.into_values().collect();
    out.sort_by(|a, b| {
        b.owed()
            .cmp(&a.owed())
            .then(b.received.cmp(&a.received))
            .then(b.assigned.cmp(&a.assigned))
            .then(a.player.cmp(&b.player))
    });
    out
}

/// The drink `player` pays with one press: their oldest unpaid one.
pub fn drink_to_pay(records: &[DrinkRecord], player: UserId) -> Result<&DrinkRecord, GameError> {
    records
        .iter()
        .filter(|r| r.to == player && !r.paid)
        .min_by_key(|r| (r.at, r.id.clone()))
        .ok_or(GameError::NothingToPay)
}

/// The paid version of `record`.
pub fn paid(record: &DrinkRecord, now: DateTime<Utc>) -> DrinkRecord {
    DrinkRecord {
        paid: true,
        paid_at: Some(now),
        ..record.clone()
    }
}

/// The player document written when `player` acts in `game`.
pub fn player_doc(
    game: &Game,
    player: UserId,
    last_roll: Option<Die>,
    now: DateTime<Utc>,
) -> Option<PlayerDoc> {
    let participant = game.participant(player)?;
    Some(PlayerDoc {
        id: player,
        name: participant.name.clone(),
        current_game: (game.status != GameStatus::Completed).then(|| game.id.clone()),
        last_roll,
        last_roll_at: last_roll.map(|_| now),
        updated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use super::*;

    /// Each player's dice, in order.
    #[derive(Default)]
    struct Scripted(Mutex<HashMap<UserId, VecDeque<u8>>>);

    impl Scripted {
        fn new(script: &[(UserId, &[u8])]) -> Scripted {
            let map = script
                .iter()
                .map(|(p, rolls)| (*p, rolls.iter().copied().collect()))
                .collect();
            Scripted(Mutex::new(map))
        }
    }

    impl DiceSource for Scripted {
        fn roll(&self, player: UserId, _sides: u8) -> Die {
            let value = self
                .0
                .lock()
                .expect("lock")
                .get_mut(&player)
                .and_then(VecDeque::pop_front)
                .expect("a scripted roll for this player");
            Die::new(value).expect("scripted value is a die face")
        }
    }

    fn p(n: u64) -> UserId {
        UserId::new(n)
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).expect("time")
    }

    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::TimeDelta::seconds(secs)
    }

    const ALICE: u64 = 1;
    const BOB: u64 = 2;
    const CAROL: u64 = 3;
    const DAVE: u64 = 4;

    fn game_with(players: &[u64]) -> Game {
        let mut game = Game::new(
            GameId::parse("g1").expect("id"),
            ChannelId::new(10),
            ScopeId::new(20).expect("id"),
            SessionId::parse("s1").expect("id"),
            p(players[0]),
            "p1",
            t0(),
        );
        for n in &players[1..] {
            game.join(p(*n), &format!("p{n}"), &Rules::default(), t0())
                .expect("join");
        }
        game
    }

    fn begun(players: &[u64]) -> Game {
        let mut game = game_with(players);
        game.begin(p(players[0]), &Rules::default(), t0())
            .expect("begin");
        game
    }

    fn reasons(effects: &Effects) -> Vec<(Option<u64>, u64, DrinkReason)> {
        effects
            .drinks
            .iter()
            .map(|d| (d.from.map(UserId::get), d.to.get(), d.reason))
            .collect()
    }

    fn valid(game: &Game) {
        game.validate().expect("game stays valid");
    }

    #[test]
    fn the_creator_begins_at_once_without_a_drink() {
        let mut game = game_with(&[ALICE, BOB]);
        let effects = game
            .begin(p(ALICE), &Rules::default(), at(1))
            .expect("begin");
        assert_eq!(game.status, GameStatus::Active);
        assert!(effects.drinks.is_empty());
        assert_eq!(
            game.begin(p(ALICE), &Rules::default(), at(2)),
            Err(GameError::AlreadyStarted)
        );
        valid(&game);
    }

    #[test]
    fn others_may_force_start_after_five_minutes_and_the_creator_drinks() {
        let mut game = game_with(&[ALICE, BOB]);
        let early = game.begin(p(BOB), &Rules::default(), at(299));
        assert_eq!(
            early,
            Err(GameError::OnlyCreatorMayBeginYet {
                remaining: Duration::from_secs(1)
            })
        );
        assert_eq!(game.status, GameStatus::Waiting);
        assert_eq!(
            game.begin(p(CAROL), &Rules::default(), at(400)),
            Err(GameError::NotInGame)
        );

        let effects = game
            .begin(p(BOB), &Rules::default(), at(300))
            .expect("force start");
        assert_eq!(game.status, GameStatus::Active);
        assert_eq!(game.force_started_by, Some(p(BOB)));
        assert_eq!(
            reasons(&effects),
            vec![(Some(BOB), ALICE, DrinkReason::DelayedStart)]
        );
        valid(&game);
    }

    #[test]
    fn the_force_start_delay_is_configurable() {
        let rules = Rules {
            force_start_after: Duration::from_secs(10),
            ..Rules::default()
        };
        let mut game = game_with(&[ALICE, BOB]);
        assert!(game.begin(p(BOB), &rules, at(9)).is_err());
        assert!(game.begin(p(BOB), &rules, at(10)).is_ok());
    }

    #[test]
    fn the_player_limit_is_enforced() {
        let rules = Rules {
            player_limit: 3,
            ..Rules::default()
        };
        let mut game = game_with(&[ALICE]);
        game.join(p(BOB), "bob", &rules, t0()).expect("2nd");
        game.join(p(CAROL), "carol", &rules, t0()).expect("3rd");
        assert_eq!(
            game.join(p(DAVE), "dave", &rules, t0()),
            Err(GameError::GameFull { limit: 3 })
        );
        assert_eq!(game.participants.len(), 3);

        let mut ten = game_with(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(
            ten.join(p(11), "eleven", &Rules::default(), t0()),
            Err(GameError::GameFull { limit: 10 })
        );
        let mut eleven = ten.clone();
        eleven.participants.push(Participant::new(p(11), "eleven"));
        assert!(
            eleven.validate_change(Some(&ten), &rules).is_err(),
            "a write that adds a player over the limit is rejected"
        );
        assert!(
            ten.validate_change(None, &rules).is_err(),
            "so is a new game over it"
        );
    }

    /// Lowering the limit leaves running games with more players writable: they
    /// are played and abandoned; only a join is held to the limit.
    #[test]
    fn a_game_over_a_lowered_limit_plays_on() {
        let lowered = Rules {
            player_limit: 2,
            ..Rules::default()
        };
        let before = begun(&[ALICE, BOB, CAROL]);
        let mut rolled = before.clone();
        let dice = Scripted::new(&[(p(ALICE), &[3])]);
        rolled.roll(p(ALICE), &dice, at(1)).expect("roll");
        rolled
            .validate_change(Some(&before), &lowered)
            .expect("a roll is written");
        let mut abandoned = before.clone();
        abandoned
            .abandon(p(ALICE), &lowered, at(2))
            .expect("the creator abandons");
        abandoned
            .validate_change(Some(&before), &lowered)
            .expect("an abandon is written");
    }

    #[test]
    fn joining_is_refused_twice_or_after_the_start() {
        let mut game = game_with(&[ALICE, BOB]);
        assert_eq!(
            game.join(p(BOB), "bob", &Rules::default(), t0()),
            Err(GameError::AlreadyJoined)
        );
        game.begin(p(ALICE), &Rules::default(), t0())
            .expect("begin");
        assert_eq!(
            game.join(p(CAROL), "carol", &Rules::default(), t0()),
            Err(GameError::AlreadyStarted)
        );
    }

    #[test]
    fn rolling_is_refused_before_the_start_twice_or_to_strangers() {
        let dice = Scripted::new(&[(p(ALICE), &[3, 4]), (p(BOB), &[5])]);
        let mut game = game_with(&[ALICE, BOB]);
        assert_eq!(game.roll(p(ALICE), &dice, t0()), Err(GameError::NotStarted));
        game.begin(p(ALICE), &Rules::default(), t0())
            .expect("begin");
        assert_eq!(game.roll(p(CAROL), &dice, t0()), Err(GameError::NotInGame));
        game.roll(p(ALICE), &dice, t0()).expect("roll");
        assert_eq!(
            game.roll(p(ALICE), &dice, t0()),
            Err(GameError::AlreadyRolled)
        );
        game.roll(p(BOB), &dice, t0()).expect("roll");
        assert_eq!(game.roll(p(BOB), &dice, t0()), Err(GameError::GameOver));
    }

    #[test]
    fn a_single_lowest_roller_drinks_and_the_game_completes() {
        let dice = Scripted::new(&[(p(ALICE), &[4]), (p(BOB), &[2]), (p(CAROL), &[5])]);
        let mut game = begun(&[ALICE, BOB, CAROL]);
        let a = game.roll(p(ALICE), &dice, at(1)).expect("roll");
        assert!(!a.effects.completed && a.effects.drinks.is_empty());
        game.roll(p(BOB), &dice, at(2)).expect("roll");
        let c = game.roll(p(CAROL), &dice, at(3)).expect("roll");
        assert!(c.effects.completed);
        assert_eq!(
            reasons(&c.effects),
            vec![(None, BOB, DrinkReason::LowestRoll)]
        );
        assert_eq!(c.effects.lowest, vec![p(BOB)]);
        assert_eq!(game.winner, Some(p(CAROL)));
        assert_eq!(game.status, GameStatus::Completed);
        valid(&game);
    }

    #[test]
    fn a_one_is_an_automatic_critical_fail() {
        let dice = Scripted::new(&[(p(ALICE), &[1]), (p(BOB), &[3])]);
        let mut game = begun(&[ALICE, BOB]);
        let a = game.roll(p(ALICE), &dice, at(1)).expect("roll");
        assert_eq!(
            reasons(&a.effects),
            vec![(None, ALICE, DrinkReason::CriticalFail)]
        );
        let b = game.roll(p(BOB), &dice, at(2)).expect("roll");
        // Alice is also the single lowest roller.
        assert_eq!(
            reasons(&b.effects),
            vec![(None, ALICE, DrinkReason::LowestRoll)]
        );
        assert!(b.effects.completed);
    }

    #[test]
    fn a_six_hands_out_a_drink_before_the_game_can_end() {
        let dice = Scripted::new(&[(p(ALICE), &[6]), (p(BOB), &[3]), (p(CAROL), &[4])]);
        let mut game = begun(&[ALICE, BOB, CAROL]);
        let a = game.roll(p(ALICE), &dice, at(1)).expect("roll");
        assert!(a.must_assign);
        assert_eq!(
            game.roll(p(ALICE), &dice, at(1)),
            Err(GameError::MustAssignFirst { crit: 6 })
        );
        game.roll(p(BOB), &dice, at(2)).expect("roll");
        let c = game.roll(p(CAROL), &dice, at(3)).expect("roll");
        assert!(!c.effects.completed, "alice still has to pick");
        assert_eq!(game.status, GameStatus::Active);

        assert_eq!(
            game.assign(p(ALICE), p(ALICE), at(4)),
            Err(GameError::CannotAssignToSelf { crit: 6 })
        );
        assert_eq!(
            game.assign(p(ALICE), p(DAVE), at(4)),
            Err(GameError::TargetNotInGame)
        );
        assert_eq!(
            game.assign(p(BOB), p(CAROL), at(4)),
            Err(GameError::NothingToAssign)
        );
        let done = game.assign(p(ALICE), p(CAROL), at(4)).expect("assign");
        assert_eq!(
            reasons(&done),
            vec![
                (Some(ALICE), CAROL, DrinkReason::CriticalHit),
                (None, BOB, DrinkReason::LowestRoll)
            ]
        );
        assert!(done.completed);
        assert_eq!(
            game.assign(p(ALICE), p(CAROL), at(5)),
            Err(GameError::GameOver)
        );
        valid(&game);
    }

    #[test]
    fn alone_in_the_game_a_six_is_drunk_by_the_roller() {
        let dice = Scripted::new(&[(p(ALICE), &[6])]);
        let mut game = begun(&[ALICE]);
        let a = game.roll(p(ALICE), &dice, at(1)).expect("roll");
        assert!(!a.must_assign);
        assert_eq!(
            reasons(&a.effects),
            vec![(Some(ALICE), ALICE, DrinkReason::CriticalHit)],
            "one drink: the crit, not a lowest roll as well"
        );
        assert!(
            a.effects.drinks[0].assigned_by().is_none(),
            "a drink to yourself is not 'assigned'"
        );
        assert!(a.effects.lowest.is_empty());
        assert_eq!(a.effects.winner, None, "alone, nobody wins");
        assert_eq!(game.winner, None);
        assert!(a.effects.completed);
        valid(&game);
    }

    #[test]
    fn alone_in_the_game_every_roll_pours_exactly_one_drink() {
        for (face, reason) in [
            (1, DrinkReason::CriticalFail),
            (2, DrinkReason::LowestRoll),
            (5, DrinkReason::LowestRoll),
            (6, DrinkReason::CriticalHit),
        ] {
            let dice = Scripted::new(&[(p(ALICE), &[face])]);
            let mut game = begun(&[ALICE]);
            let a = game.roll(p(ALICE), &dice, at(1)).expect("roll");
            let drinks = reasons(&a.effects);
            assert_eq!(drinks.len(), 1, "a {face}: {drinks:?}");
            assert_eq!(drinks[0].1, ALICE);
            assert_eq!(drinks[0].2, reason, "a {face}");
            assert_eq!(a.effects.winner, None, "a {face}");
            assert_eq!(
                a.effects.lowest.is_empty(),
                reason != DrinkReason::LowestRoll
            );
            assert!(a.effects.completed);
            assert_eq!(
                game.solo_drank_for_roll(),
                reason != DrinkReason::LowestRoll
            );
            valid(&game);
        }
    }

    #[test]
    fn a_player_outside_the_roll_offs_is_told_who_rolls_in_them() {
        let dice = Scripted::new(&[
            (p(ALICE), &[2]),
            (p(BOB), &[2]),
            (p(CAROL), &[5]),
            (p(DAVE), &[5]),
            (p(5), &[3]),
        ]);
        let mut game = begun(&[ALICE, BOB, CAROL, DAVE, 5]);
        for player in [ALICE, BOB, CAROL, DAVE, 5] {
            game.roll(p(player), &dice, at(1)).expect("roll");
        }
        assert_eq!(game.roll_offs.len(), 2);
        let refused = game.roll(p(5), &dice, at(2)).map(|_| ()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "you are not in these roll-offs: only p1 and p2 (tied for lowest), \
             p3 and p4 (tied for highest) roll in them"
        );
        // A player in a roll-off who has rolled waits for the others in it.
        game.roll(p(ALICE), &Scripted::new(&[(p(ALICE), &[4])]), at(3))
            .expect("roll-off roll");
        assert_eq!(
            game.roll(p(ALICE), &dice, at(4)),
            Err(GameError::WaitingForOthers {
                waiting_on: "p2, p3, p4".to_owned()
            })
        );
        assert_eq!(
            game.roll(p(ALICE), &dice, at(4))
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            "you have rolled in this roll-off: waiting for p2, p3, p4 to roll"
        );
    }

    #[test]
    fn a_tie_for_lowest_starts_a_roll_off_with_only_the_tied_players() {
        let dice = Scripted::new(&[(p(ALICE), &[2, 5]), (p(BOB), &[2, 3]), (p(CAROL), &[4])]);
        let mut game = begun(&[ALICE, BOB, CAROL]);
        game.roll(p(ALICE), &dice, at(1)).expect("roll");
        game.roll(p(BOB), &dice, at(2)).expect("roll");
        let c = game.roll(p(CAROL), &dice, at(3)).expect("roll");
        assert!(!c.effects.completed);
        assert!(c.effects.drinks.is_empty());
        assert_eq!(
            c.effects.roll_offs_started,
            vec![(RollOffKind::Lowest, vec![p(ALICE), p(BOB)])]
        );
        assert_eq!(c.effects.winner, Some(p(CAROL)));
        assert_eq!(game.status, GameStatus::RollOff);
        valid(&game);

        let refused = game.roll(p(CAROL), &dice, at(4));
        assert_eq!(
            refused,
            Err(GameError::NotInRollOff {
                players: "p1 and p2".to_owned(),
                several: false
            })
        );
        assert_eq!(
            refused.map(|_| ()).unwrap_err().to_string(),
            "you are not in this roll-off: only p1 and p2 roll in it"
        );
        let a = game.roll(p(ALICE), &dice, at(5)).expect("roll-off roll");
        assert_eq!(a.roll_off, Some(RollOffKind::Lowest));
        let b = game.roll(p(BOB), &dice, at(6)).expect("roll-off roll");
        assert_eq!(
            reasons(&b.effects),
            vec![(None, BOB, DrinkReason::LowestRoll)]
        );
        let drink = &b.effects.drinks[0];
        assert_eq!(
            drink.game_id, game.id,
            "roll-off drinks count for the parent game"
        );
        assert_eq!(drink.roll_off_id.as_ref(), Some(&game.roll_offs[0].id));
        assert!(b.effects.completed);
        assert_eq!(game.status, GameStatus::Completed);
        // Every player's first roll stays recorded in the top-level game.
        assert_eq!(
            game.participant(p(BOB)).and_then(|x| x.roll).map(Die::get),
            Some(2)
        );
        valid(&game);
    }

    #[test]
    fn a_tie_for_highest_starts_a_roll_off_for_the_winner() {
        let dice = Scripted::new(&[(p(ALICE), &[5, 2]), (p(BOB), &[5, 4]), (p(CAROL), &[3])]);
        let mut game = begun(&[ALICE, BOB, CAROL]);
        game.roll(p(ALICE), &dice, at(1)).expect("roll");
        game.roll(p(BOB), &dice, at(2)).expect("roll");
        let c = game.roll(p(CAROL), &dice, at(3)).expect("roll");
        assert_eq!(
            reasons(&c.effects),
            vec![(None, CAROL, DrinkReason::LowestRoll)]
        );
        assert_eq!(
            c.effects.roll_offs_started,
            vec![(RollOffKind::Highest, vec![p(ALICE), p(BOB)])]
        );
        assert_eq!(game.winner, None);
        game.roll(p(ALICE), &dice, at(4)).expect("roll-off");
        let b = game.roll(p(BOB), &dice, at(5)).expect("roll-off");
        assert_eq!(b.effects.winner, Some(p(BOB)));
        assert!(
            b.effects.drinks.is_empty(),
            "winning a roll-off pours nothing"
        );
        assert!(b.effects.completed);
        assert_eq!(game.winner, Some(p(BOB)));
        valid(&game);
    }

    #[test]
    fn ties_for_lowest_and_highest_run_two_roll_offs_side_by_side() {
        let dice = Scripted::new(&[
            (p(ALICE), &[5, 6]),
            (p(BOB), &[5, 1]),
            (p(CAROL), &[2, 3]),
            (p(DAVE), &[2, 4]),
        ]);
        let mut game = begun(&[ALICE, BOB, CAROL, DAVE]);
        for n in [ALICE, BOB, CAROL, DAVE] {
            game.roll(p(n), &dice, at(1)).expect("roll");
        }
        assert_eq!(game.roll_offs.len(), 2);
        assert_eq!(game.pending_roll_offs().len(), 2);
        // Highest roll-off: alice rolls a 6 and must hand out a drink (to anyone at the table).
        let a = game.roll(p(ALICE), &dice, at(2)).expect("roll-off");
        assert!(a.must_assign);
        let b = game.roll(p(BOB), &dice, at(3)).expect("roll-off");
        assert_eq!(
            reasons(&b.effects),
            vec![(None, BOB, DrinkReason::CriticalFail)]
        );
        let assigned = game.assign(p(ALICE), p(DAVE), at(4)).expect("assign");
        assert_eq!(assigned.winner, Some(p(ALICE)));
        assert!(!assigned.completed, "the lowest roll-off is still running");
        game.roll(p(CAROL), &dice, at(5)).expect("roll-off");
        let d = game.roll(p(DAVE), &dice, at(6)).expect("roll-off");
        assert_eq!(
            reasons(&d.effects),
            vec![(None, CAROL, DrinkReason::LowestRoll)]
        );
        assert!(d.effects.completed);
        valid(&game);
    }

    #[test]
    fn roll_offs_nest_until_the_tie_is_broken() {
        let dice = Scripted::new(&[
            (p(ALICE), &[3, 2, 4]),
            (p(BOB), &[3, 2, 1]),
            (p(CAROL), &[5]),
        ]);
        let mut game = begun(&[ALICE, BOB, CAROL]);
        for n in [ALICE, BOB, CAROL] {
            game.roll(p(n), &dice, at(1)).expect("roll");
        }
        game.roll(p(ALICE), &dice, at(2)).expect("roll-off 1");
        let tie = game.roll(p(BOB), &dice, at(3)).expect("roll-off 1");
        assert_eq!(
            tie.effects.roll_offs_started,
            vec![(RollOffKind::Lowest, vec![p(ALICE), p(BOB)])]
        );
        let first = &game.roll_offs[0];
        assert_eq!(first.status, GameStatus::RollOff);
        assert_eq!(
            first.roll_offs.len(),
            1,
            "the second roll-off nests in the first"
        );
        assert_eq!(first.roll_offs[0].parent_id.as_ref(), Some(&first.id));
        valid(&game);

        game.roll(p(ALICE), &dice, at(4)).expect("roll-off 2");
        let end = game.roll(p(BOB), &dice, at(5)).expect("roll-off 2");
        assert_eq!(
            reasons(&end.effects),
            vec![
                (None, BOB, DrinkReason::CriticalFail),
                (None, BOB, DrinkReason::LowestRoll)
            ]
        );
        assert!(end.effects.drinks.iter().all(|d| d.game_id == game.id));
        assert!(end.effects.completed);
        assert!(game.roll_offs[0].is_completed() && game.roll_offs[0].roll_offs[0].is_completed());
        valid(&game);
    }

    #[test]
    fn when_everyone_ties_only_the_lowest_roll_off_is_played() {
        let dice = Scripted::new(&[(p(ALICE), &[4, 2]), (p(BOB), &[4, 5])]);
        let mut game = begun(&[ALICE, BOB]);
        game.roll(p(ALICE), &dice, at(1)).expect("roll");
        let b = game.roll(p(BOB), &dice, at(1)).expect("roll");
        assert_eq!(
            b.effects.roll_offs_started,
            vec![(RollOffKind::Lowest, vec![p(ALICE), p(BOB)])]
        );
        game.roll(p(ALICE), &dice, at(2)).expect("roll-off");
        let end = game.roll(p(BOB), &dice, at(2)).expect("roll-off");
        assert_eq!(
            reasons(&end.effects),
            vec![(None, ALICE, DrinkReason::LowestRoll)]
        );
        assert!(end.effects.completed);
        assert_eq!(game.winner, None);
    }

    #[test]
    fn the_creator_may_abandon_at_once_others_after_idling() {
        let mut game = begun(&[ALICE, BOB]);
        assert!(matches!(
            game.abandon(p(BOB), &Rules::default(), at(60)),
            Err(GameError::OnlyCreatorMayAbandonYet { .. })
        ));
        game.abandon(p(BOB), &Rules::default(), at(300))
            .expect("idle long enough");
        assert!(game.abandoned && game.is_completed());
        assert_eq!(
            game.abandon(p(ALICE), &Rules::default(), at(301)),
            Err(GameError::GameOver)
        );
        valid(&game);

        let mut other = begun(&[ALICE, BOB]);
        other
            .abandon(p(ALICE), &Rules::default(), at(1))
            .expect("creator");
    }

    #[test]
    fn validation_rejects_inconsistent_documents() {
        let mut game = begun(&[ALICE, BOB]);
        game.participants[1].roll = Some(Die::new(3).expect("die"));
        assert!(
            game.validate().is_err(),
            "a roll without a roll time and status"
        );
        let mut dup = begun(&[ALICE, BOB]);
        dup.participants.push(dup.participants[1].clone());
        assert!(dup.validate().is_err());
        let mut creatorless = begun(&[ALICE, BOB]);
        creatorless.participants.remove(0);
        assert!(creatorless.validate().is_err());
    }

    #[test]
    fn the_leaderboard_counts_owed_assigned_and_paid() {
        let dice = Scripted::new(&[(p(ALICE), &[6]), (p(BOB), &[1]), (p(CAROL), &[4])]);
        let mut game = begun(&[ALICE, BOB, CAROL]);
        let mut drinks = Vec::new();
        drinks.extend(
            game.roll(p(ALICE), &dice, at(1))
                .expect("roll")
                .effects
                .drinks,
        );
        drinks.extend(
            game.roll(p(BOB), &dice, at(2))
                .expect("roll")
                .effects
                .drinks,
        );
        drinks.extend(
            game.roll(p(CAROL), &dice, at(3))
                .expect("roll")
                .effects
                .drinks,
        );
        drinks.extend(game.assign(p(ALICE), p(BOB), at(4)).expect("assign").drinks);
        // bob: critical fail, critical hit from alice, lowest roll.
        assert_eq!(drinks.len(), 3);
        let first = drink_to_pay(&drinks, p(BOB)).expect("bob owes").clone();
        assert_eq!(
            first.reason,
            DrinkReason::CriticalFail,
            "the oldest is paid first"
        );
        let index = drinks
            .iter()
            .position(|d| d.id == first.id)
            .expect("present");
        drinks[index] = paid(&first, at(5));
        assert_eq!(
            drink_to_pay(&drinks, p(CAROL)),
            Err(GameError::NothingToPay)
        );

        let board = leaderboard(&drinks);
        assert_eq!(board[0].player, p(BOB));
        assert_eq!(
            (board[0].received, board[0].paid, board[0].owed()),
            (3, 1, 2)
        );
        let alice = board.iter().find(|s| s.player == p(ALICE)).expect("alice");
        assert_eq!((alice.assigned, alice.owed()), (1, 0));
    }

    #[test]
    fn a_configured_die_crits_and_fails_on_its_own_faces() {
        let rules = DiceRules::new(20, 20, 2).expect("d20 rules");
        let dice = Scripted::new(&[(p(ALICE), &[20]), (p(BOB), &[6]), (p(CAROL), &[2])]);
        let mut game = game_with(&[ALICE, BOB, CAROL]).with_dice(rules);
        game.begin(p(ALICE), &Rules::default(), t0())
            .expect("begin");
        let a = game.roll(p(ALICE), &dice, at(1)).expect("roll");
        assert!(a.must_assign, "20 crits on this die");
        let b = game.roll(p(BOB), &dice, at(2)).expect("roll");
        assert!(
            !b.must_assign && b.effects.drinks.is_empty(),
            "6 is ordinary here"
        );
        let c = game.roll(p(CAROL), &dice, at(3)).expect("roll");
        assert_eq!(
            reasons(&c.effects),
            vec![(None, CAROL, DrinkReason::CriticalFail)]
        );
        valid(&game);
        let json = serde_json::to_string(&game).expect("json");
        assert!(
            json.contains(r#""dice":{"sides":20,"crit":20,"fail":2}"#),
            "{json}"
        );
        assert!(
            !serde_json::to_string(&begun(&[ALICE]))
                .expect("json")
                .contains("dice"),
            "a classic game is stored as before"
        );

        let mut cheat = game.clone();
        cheat.dice = DiceRules::default();
        assert!(cheat.validate().is_err(), "a 20 is not a face of a d6");
    }

    #[test]
    fn dice_rules_are_checked_naming_the_setting() {
        let refused = [
            (DiceRules::new(1, 1, 1), "drinking_die"),
            (DiceRules::new(101, 1, 2), "drinking_die"),
            (DiceRules::new(6, 7, 1), "drinking_crit"),
            (DiceRules::new(6, 6, 0), "drinking_fail"),
            (DiceRules::new(6, 6, 6), "drinking_fail"),
        ];
        for (rules, setting) in refused {
            assert_eq!(rules.expect_err(setting).setting(), setting);
        }
        assert_eq!(
            DiceRules::new(6, 6, 1).expect("classic"),
            DiceRules::default()
        );
        assert!(DiceRules::new(2, 1, 2).is_ok(), "a coin: 1 crits, 2 fails");
    }

    #[test]
    fn sticky_dice_keep_their_first_roll() {
        let dice = Scripted::new(&[(p(ALICE), &[2, 5])]);
        let sticky = StickyDice::new(&dice);
        assert_eq!(sticky.roll(p(ALICE), 6).get(), 2);
        assert_eq!(sticky.roll(p(ALICE), 6).get(), 2);
        assert_eq!(dice.roll(p(ALICE), 6).get(), 5, "only one value was taken");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(270)), "4 min 30 s");
        assert_eq!(human(Duration::from_secs(120)), "2 min");
        assert_eq!(human(Duration::from_millis(10)), "1 s");
    }
}
