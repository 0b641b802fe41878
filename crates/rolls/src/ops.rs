//! The seed's controller / operation / model split.
//!
//! Every Discord command, button and REST request goes through [`Controller::run`]:
//! the operation reads what it needs and *plans* its writes, the controller adds its
//! bookkeeping (`INCR c_{command}`, and `SADD user_set` for an authenticated
//! caller, with their timestamps) to the same [`Writes`] and commits everything in
//! one atomic step. Dice work (parse, roll, render, odds) runs in the [`DicePool`],
//! never on the async workers. Operations that change a
//! document name it as a guard, so the commit is a compare-and-set
//! ([`store::Redis::apply_if`]) planned again on a lost race ([`store::optimistic()`],
//! which gives up with [`store::StorageError::Conflict`]); read-only operations commit
//! the bookkeeping with a plain `MULTI/EXEC`. A failed operation writes nothing, and
//! one turned down without a change ([`Operation::counts`]) is not counted, so only
//! requests that did something are counted.
//!
//! Models are plain `Serialize` structs: the REST API returns them as JSON and the
//! Discord handlers render them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use base::Clock;
use chrono::{DateTime, Utc};
use serde::Serialize;
use store::{Attempt, Writes, optimistic};

use crate::RollsError;
use crate::domain::{
    self, Caller, ChannelId, Character, Entry, MAX_CHARACTERS, MessageId, Tracker, UserId,
};
use crate::pool::DicePool;
use crate::repo::{Repo, bookkeeping, put_tracker, put_user};
use crate::schema;

/// What an operation wants committed, and what it answers.
#[derive(Debug)]
pub struct Plan<M> {
    /// `(key, bytes read)`: commit only if `key` still holds these bytes.
    pub guard: Option<(String, Option<Vec<u8>>)>,
    pub writes: Writes,
    pub model: M,
}

impl<M> Plan<M> {
    /// A plan with no writes of its own.
    pub fn read_only(model: M) -> Plan<M> {
        Plan {
            guard: None,
            writes: Writes::new(),
            model,
        }
    }
}

/// What an operation may use: the repositories and the dice pool.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub repo: &'a Repo,
    pub dice: &'a DicePool,
}

/// One kind of request. `COMMAND` names its counter (`c_{COMMAND}`).
pub trait Operation: Send + Sync {
    type Model: Serialize + Send;
    const COMMAND: &'static str;
    /// Reads and decides; may run more than once if a guarded commit loses a race, so it
    /// must not have side effects.
    fn plan(
        &self,
        env: Env<'_>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Plan<Self::Model>, RollsError>> + Send;

    /// Whether the request this answers counts as a use (`c_{COMMAND}`, `user_set`):
    /// every one that succeeded, except one that was turned down and changed nothing
    /// (a Next from a position the turn has left: [`TrackerModel::moved_on`]).
    fn counts(_model: &Self::Model) -> bool {
        true
    }
}

/// The controller: the one way requests reach Redis.
#[derive(Debug, Clone)]
pub struct Controller {
    repo: Repo,
    dice: DicePool,
    clock: Arc<dyn Clock>,
}

impl Controller {
    /// Requests over `repo`, dice work in `dice`, timestamps from `clock`.
    pub fn new(repo: Repo, dice: DicePool, clock: Arc<dyn Clock>) -> Controller {
        Controller { repo, dice, clock }
    }

    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    pub fn dice(&self) -> &DicePool {
        &self.dice
    }

    /// Runs `op` for `caller`: plan, add bookkeeping (unless [`Operation::counts`] says
    /// the request changed nothing), commit atomically, return the model. Only an
    /// [`Authenticated`](crate::domain::Authenticated) caller is added to `user_set`.
    /// A guarded commit that loses a race is planned again ([`store::optimistic()`]);
    /// running out of attempts is a [`store::StorageError::Conflict`] named after the command.
    pub async fn run<O: Operation>(
        &self,
        caller: impl Into<Caller>,
        op: &O,
    ) -> Result<O::Model, RollsError> {
        let caller = caller.into();
        let env = Env {
            repo: &self.repo,
            dice: &self.dice,
        };
        optimistic(O::COMMAND, |_| async move {
            let at = self.clock.now();
            let plan = op.plan(env, at).await?;
            let mut writes = Writes::new();
            if O::counts(&plan.model) {
                bookkeeping(&mut writes, caller.authenticated(), O::COMMAND, at);
            }
            writes.extend(plan.writes);
            if writes.is_empty() && plan.guard.is_none() {
                return Ok::<_, RollsError>(Attempt::Done(plan.model));
            }
            let committed = match &plan.guard {
                None => {
                    self.repo.redis().apply(&writes).await?;
                    true
                }
                Some((key, expected)) => {
                    self.repo
                        .redis()
                        .apply_if(key, expected.as_deref(), &writes)
                        .await?
                }
            };
            Ok::<_, RollsError>(if committed {
                Attempt::Done(plan.model)
            } else {
                Attempt::Retry
            })
        })
        .await
    }

    /// Records which message shows `channel`'s tracker. Not a user request, so not
    /// counted; compare-and-set like every document write.
    pub async fn set_tracker_message(
        &self,
        channel: ChannelId,
        message: MessageId,
    ) -> Result<(), RollsError> {
        let key = schema::init_key(channel);
        let key = key.as_str();
        optimistic(key, |_| async move {
            let read = self.repo.tracker(channel).await?;
            if read.value.message_id == Some(message) {
                return Ok(Attempt::Done(()));
            }
            let mut tracker = read.value;
            tracker.message_id = Some(message);
            let mut writes = Writes::new();
            put_tracker(&mut writes, channel, &tracker, self.clock.now())?;
            let written = self
                .repo
                .redis()
                .apply_if(key, read.raw.as_deref(), &writes)
                .await?;
            Ok::<_, RollsError>(if written {
                Attempt::Done(())
            } else {
                Attempt::Retry
            })
        })
        .await
    }
}

// ---- roll -------------------------------------------------------------------------

/// A plain roll: no aliases, no roll id. `/roll` and `GET /api/rolls/roll` use
/// [`crate::history::RecordedRollOp`], which rolls through [`RollModel`] too.
#[derive(Debug, Clone)]
pub struct RollOp {
    pub expression: String,
}

/// The result of a roll.
#[derive(Debug, Clone, Serialize)]
pub struct RollModel {
    pub expression: String,
    /// The first result's total (the one result of most rolls).
    pub total: dice::Num,
    /// The sum of every result's total when there are several (`3 1d20`,
    /// `1d20; 2d6`): the `Total` line of `text`; absent for a single result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grand_total: Option<dice::Num>,
    /// Discord Markdown (dropped dice struck through, crits bold).
    pub markdown: String,
    pub text: String,
    pub critical: bool,
    pub fumble: bool,
    /// Pass/fail for comparisons and `then`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<bool>,
    /// The expression asked for a private reply (Dice Maiden's `p` flag).
    pub private: bool,
    /// The full result tree.
    pub outcome: dice::Outcome,
}

impl Operation for RollOp {
    type Model = RollModel;
    const COMMAND: &'static str = "roll";

    async fn plan(&self, env: Env<'_>, _: DateTime<Utc>) -> Result<Plan<RollModel>, RollsError> {
        let expression = self.expression.clone();
        let model = env
            .dice
            .roll(move || {
                let outcome = dice::roll(&expression, &mut dice::Rng::from_random_state())
                    .map_err(|e| RollsError::dice(&expression, &e))?;
                Ok::<_, RollsError>(RollModel::new(&expression, outcome))
            })
            .await??;
        Ok(Plan::read_only(model))
    }
}

impl RollModel {
    pub fn new(expression: &str, outcome: dice::Outcome) -> RollModel {
        RollModel {
            expression: expression.to_owned(),
            total: outcome.total(),
            grand_total: outcome.grand_total(),
            markdown: outcome.render_markdown(),
            text: outcome.render_plain(),
            critical: outcome.is_critical(),
            fumble: outcome.is_fumble(),
            check: outcome.check(),
            private: outcome.is_private(),
            outcome,
        }
    }

    /// The Discord text: the rendered roll with a critical or fumble noted, naming
    /// the die it was read on ([`dice::Outcome::deciding_die`]): a natural 20 or 1
    /// on a d20; without a d20, the highest face or the 1 of a single die (`8 on
    /// the d8`).
    pub fn render(&self) -> String {
        let mut text = self.markdown.clone();
        let on = || match self.outcome.deciding_die() {
            Some((face, 20)) => format!(" (natural {face})"),
            Some((face, sides)) => format!(" ({face} on the d{sides})"),
            None => String::new(),
        };
        if self.critical {
            text.push_str(&format!("\n**Critical!**{}", on()));
        } else if self.fumble {
            text.push_str(&format!("\n*Fumble.*{}", on()));
        }
        text
    }
}

// ---- odds -------------------------------------------------------------------------

/// `GET /api/rolls/odds` as JSON; `/odds` and the PNG chart use
/// [`crate::chart::ChartedOddsOp`].
#[derive(Debug, Clone)]
pub struct OddsOp {
    pub expression: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OddsModel {
    pub markdown: String,
    pub odds: dice::Odds,
}

impl Operation for OddsOp {
    type Model = OddsModel;
    const COMMAND: &'static str = "odds";

    async fn plan(&self, env: Env<'_>, _: DateTime<Utc>) -> Result<Plan<OddsModel>, RollsError> {
        let expression = self.expression.clone();
        let model = env.dice.odds(move || OddsModel::of(&expression)).await??;
        Ok(Plan::read_only(model))
    }
}

impl OddsModel {
    /// The odds of `expression`, worked out here (call it on the dice pool).
    pub fn of(expression: &str) -> Result<OddsModel, RollsError> {
        let odds = dice::odds(expression).map_err(|e| RollsError::dice(expression, &e))?;
        Ok(OddsModel {
            markdown: odds.render_markdown(),
            odds,
        })
    }
}

// ---- stats / help -------------------------------------------------------------------

/// `/stats [all]`, `GET /api/rolls/stats`.
#[derive(Debug, Clone)]
pub struct StatsOp {
    /// Also list this feature's commands that were never used.
    pub all: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsModel {
    /// `c_{command}` values by command, as they were before this request.
    pub counters: BTreeMap<String, i64>,
    pub total: i64,
    /// Members of `user_set`.
    pub users: u64,
}

impl StatsModel {
    pub fn render(&self) -> String {
        let mut out = "**Command usage**\n".to_owned();
        for (command, count) in &self.counters {
            out.push_str(&format!("`/{command}` {count}\n"));
        }
        out.push_str(&format!(
            "**Total** {}\n**Users** {}",
            self.total, self.users
        ));
        out
    }
}

impl Operation for StatsOp {
    type Model = StatsModel;
    const COMMAND: &'static str = "stats";

    async fn plan(&self, env: Env<'_>, _: DateTime<Utc>) -> Result<Plan<StatsModel>, RollsError> {
        let repo = env.repo;
        let commands: Vec<&str> = domain::HELP
            .iter()
            .map(|(command, _, _)| *command)
            .collect();
        let mut counters = repo.counters(&commands).await?;
        if self.all {
            for (command, _, _) in domain::HELP {
                counters.entry((*command).to_owned()).or_insert(0);
            }
        } else {
            counters.retain(|_, v| *v != 0);
        }
        let total = counters.values().sum();
        let users = repo.user_count().await?;
        Ok(Plan::read_only(StatsModel {
            counters,
            total,
            users,
        }))
    }
}

/// `/help [command]`.
#[derive(Debug, Clone)]
pub struct HelpOp {
    pub command: Option<String>,
    /// Where it was asked: in a direct message, the commands offered in servers only
    /// are named apart.
    pub place: domain::HelpPlace,
    /// Every feature's commands (the kit's catalogue): `/help` lists them all.
    pub catalogue: feature::Catalogue,
}

#[derive(Debug, Clone, Serialize)]
pub struct HelpModel {
    pub text: String,
}

impl Operation for HelpOp {
    type Model = HelpModel;
    const COMMAND: &'static str = "help";

    async fn plan(&self, _: Env<'_>, _: DateTime<Utc>) -> Result<Plan<HelpModel>, RollsError> {
        let text = domain::help_all(
            self.command.as_deref(),
            &self.catalogue.features(),
            self.place,
        )?;
        Ok(Plan::read_only(HelpModel { text }))
    }
}

// ---- characters ---------------------------------------------------------------------

/// `/character ...`, `/api/rolls/characters`. Always about the requesting user.
#[derive(Debug, Clone)]
pub enum CharacterOp {
    List {
        user: UserId,
    },
    Add {
        user: UserId,
        name: String,
        initiative_modifier: i64,
        /// An initiative expression (`1d20+3`, `2d20kh1+3`), rolled instead of
        /// `1d20 + initiative_modifier`.
        initiative: Option<String>,
    },
    /// `/character import`: Feyre's characters ([`domain::import`]).
    Import {
        user: UserId,
        data: String,
    },
    Remove {
        user: UserId,
        name: String,
    },
    /// The active-character buttons of `/character list`.
    Activate {
        user: UserId,
        name: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct CharactersModel {
    pub user: UserId,
    pub characters: BTreeMap<String, Character>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    pub max: usize,
    /// What changed, in a sentence (empty for `list`).
    pub message: String,
    pub markdown: String,
}

impl Operation for CharacterOp {
    type Model = CharactersModel;
    const COMMAND: &'static str = "character";

    async fn plan(
        &self,
        env: Env<'_>,
        at: DateTime<Utc>,
    ) -> Result<Plan<CharactersModel>, RollsError> {
        let repo = env.repo;
        let user = match self {
            CharacterOp::List { user }
            | CharacterOp::Add { user, .. }
            | CharacterOp::Remove { user, .. }
            | CharacterOp::Activate { user, .. }
            | CharacterOp::Import { user, .. } => *user,
        };
        let read = repo.user(user).await?;
        let mut doc = read.value;
        let message = match self {
            CharacterOp::List { .. } => String::new(),
            CharacterOp::Add {
                name,
                initiative_modifier,
                initiative: Some(expression),
                ..
            } => {
                let expression = checked_expression(env.dice, expression).await?;
                let name = domain::add_character(&mut doc, name, *initiative_modifier)?;
                if let Some(c) = doc.characters.get_mut(&name) {
                    c.initiative = Some(expression.clone());
                }
                format!(
                    "Saved **{}** (initiative {}).",
                    domain::escape(&name),
                    domain::escape(&expression)
                )
            }
            CharacterOp::Add {
                name,
                initiative_modifier,
                ..
            } => {
                let name = domain::add_character(&mut doc, name, *initiative_modifier)?;
                let name = domain::escape(&name);
                format!("Saved **{name}** (initiative {initiative_modifier:+}).")
            }
            CharacterOp::Import { data, .. } => {
                let import = domain::import::parse(data)?;
                for c in &import.characters {
                    if let Some(expression) = &c.character.initiative {
                        checked_expression(env.dice, expression).await?;
                    }
                }
                let names = domain::import::merge(&mut doc, &import)?;
                let count = match names.len() {
                    1 => "1 character".to_owned(),
                    n => format!("{n} characters"),
                };
                let names: Vec<String> = names
                    .iter()
                    .map(|n| format!("**{}**", domain::escape(n)))
                    .collect();
                format!("Imported {count}: {}.", names.join(", "))
            }
            CharacterOp::Remove { name, .. } => {
                if domain::find_character(&doc, name).is_none() {
                    return Err(RollsError::NotFound(domain::no_such_character(&doc, name)));
                }
                let was_active = domain::active(&doc).map(|(n, _)| n.to_owned());
                let removed = domain::remove_character(&mut doc, name)?;
                let name = domain::escape(&removed);
                // Removing the active character makes another one active: say which.
                match (was_active == Some(removed), domain::active(&doc)) {
                    (false, _) => format!("Removed **{name}**."),
                    (true, Some((now, _))) => format!(
                        "Removed **{name}**. **{}** is now your active character (pick another with `/character list`).",
                        domain::escape(now)
                    ),
                    (true, None) => format!(
                        "Removed **{name}**. You have no characters left; `/init join` uses your display name."
                    ),
                }
            }
            CharacterOp::Activate { name, .. } => {
                let name = domain::escape(&domain::set_active(&mut doc, name)?);
                format!("**{name}** is now your active character.")
            }
        };
        let model = CharactersModel {
            user,
            active: domain::active(&doc).map(|(n, _)| n.to_owned()),
            characters: doc.characters.clone(),
            max: MAX_CHARACTERS,
            markdown: domain::render_characters(&doc),
            message,
        };
        if matches!(self, CharacterOp::List { .. }) {
            return Ok(Plan::read_only(model));
        }
        let mut writes = Writes::new();
        put_user(&mut writes, user, &doc, at)?;
        Ok(Plan {
            guard: Some((schema::user_key(user), read.raw)),
            writes,
            model,
        })
    }
}

/// `expression` if it is an initiative expression that rolls (checked in the pool).
async fn checked_expression(dice: &DicePool, expression: &str) -> Result<String, RollsError> {
    let expression = domain::combat::clean_expression(expression)?;
    let checked = expression.clone();
    dice.roll(move || {
        let outcome = dice::roll(&checked, &mut dice::Rng::from_random_state())
            .map_err(|e| RollsError::dice(&checked, &e))?;
        outcome.total().as_int().map(|_| ()).ok_or_else(|| {
            RollsError::refused(format!(
                "`{checked}` must come to a whole number to be an initiative."
            ))
        })
    })
    .await??;
    Ok(expression)
}

// ---- initiative ---------------------------------------------------------------------

pub mod combat;
pub use combat::CombatAction;

/// `/init ...`, `/api/rolls/initiative/{channel}`.
#[derive(Debug, Clone)]
pub enum InitOp {
    Get {
        channel: ChannelId,
    },
    Join {
        channel: ChannelId,
        user: UserId,
        /// One of the user's characters; default: the active one, else `display_name`.
        character: Option<String>,
        /// A number or a dice expression; default: 1d20 + the character's modifier.
        roll: Option<String>,
        display_name: String,
        /// Refuse, changing nothing, when the user is already in under that name (the
        /// tracker's Join button), instead of rolling again (`/init join`, REST).
        once: bool,
    },
    Remove {
        channel: ChannelId,
        user: UserId,
        character: Option<String>,
    },
    /// The next turn; with `expected`, only from that position (a Next button
    /// carries the one it was shown with, so a second press of it does not advance
    /// again: [`TrackerModel::moved_on`]).
    Next {
        channel: ChannelId,
        expected: Option<TurnAt>,
    },
    Reset {
        channel: ChannelId,
    },
    /// The rest of the combat tracker ([`combat`]): hit points, effects, turns, …
    Combat {
        channel: ChannelId,
        user: UserId,
        action: CombatAction,
    },
}

/// The tracker after an operation. `tracker` and `markdown` are what the channel
/// sees: hidden combatants are `???` ([`domain::combat::public_view`]).
#[derive(Debug, Clone, Serialize)]
pub struct TrackerModel {
    pub channel: ChannelId,
    pub tracker: Tracker,
    /// What happened, in a sentence (empty for `get`); for `view`, the tracker as
    /// the caller may see it.
    pub message: String,
    pub markdown: String,
    /// The message is about a hidden combatant: shown only to the caller.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// Whom the message notifies (whose turn it is).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ping: Vec<UserId>,
    /// A Next from a position the tracker has left: nothing changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub moved_on: bool,
}

/// A tracker's position: its round and whose turn (the index of the unit up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnAt {
    pub round: u32,
    pub turn: usize,
}

impl TurnAt {
    /// Where `tracker` is.
    pub fn of(tracker: &Tracker) -> TurnAt {
        TurnAt {
            round: tracker.round,
            turn: tracker.turn,
        }
    }

    /// Whether `tracker` has been at this position or is there now: not a later
    /// round or a later turn of its round, nor a turn past its last combatant.
    pub fn reached(&self, tracker: &Tracker) -> bool {
        let now = TurnAt::of(tracker);
        let in_range = self.turn < tracker.entries.len().max(1);
        in_range && (self.round, self.turn) <= (now.round, now.turn)
    }
}

impl InitOp {
    pub fn channel(&self) -> ChannelId {
        match self {
            InitOp::Get { channel }
            | InitOp::Join { channel, .. }
            | InitOp::Remove { channel, .. }
            | InitOp::Next { channel, .. }
            | InitOp::Reset { channel }
            | InitOp::Combat { channel, .. } => *channel,
        }
    }
}

/// Rolls (or reads) an initiative: `(value, how it was obtained, the expression
/// rolled)`; `default` is rolled when `roll` is empty. `roll` is read by
/// [`domain::combat::initiative_input`]: `15` is fixed, `+3` rolls `1d20+3`, `adv+2`
/// rolls `2d20kh1+2`.
async fn initiative(
    dice: &DicePool,
    log: &crate::history::RollLog,
    roll: Option<&str>,
    default: &str,
) -> Result<(i64, String, Option<String>), RollsError> {
    let expression = match roll.map(str::trim) {
        Some(text) if !text.is_empty() => match domain::combat::initiative_input(text)? {
            domain::combat::InitiativeInput::Fixed(value) => {
                return Ok((value, value.to_string(), None));
            }
            domain::combat::InitiativeInput::Roll(expression) => expression,
        },
        _ => default.to_owned(),
    };
    let rolled = log.roll(dice, &expression).await?;
    let value = rolled
        .total
        .as_int()
        .ok_or_else(|| RollsError::refused("An initiative must be a whole number."))?;
    Ok((value, rolled.markdown, Some(expression)))
}

impl Operation for InitOp {
    type Model = TrackerModel;
    const COMMAND: &'static str = "init";

    /// A Next turned down because the turn moved on changed nothing: not a use.
    fn counts(model: &TrackerModel) -> bool {
        !model.moved_on
    }

    async fn plan(
        &self,
        env: Env<'_>,
        at: DateTime<Utc>,
    ) -> Result<Plan<TrackerModel>, RollsError> {
        let repo = env.repo;
        let channel = self.channel();
        let read = repo.tracker(channel).await?;
        let mut tracker = read.value;
        let mut said = combat::Said::default();
        // The rolls this request makes (initiative, damage, healing, saves), recorded
        // under ids like `/roll`'s. Rerolls at the top of a round are not.
        let mut rolls: Option<crate::history::RollLog> = None;
        let mut moved_on = false;
        let message = match self {
            InitOp::Get { .. } => String::new(),
            InitOp::Join {
                user,
                character,
                roll,
                display_name,
                once,
                ..
            } => {
                let doc = repo.user(*user).await?.value;
                let plain = || "1d20".to_owned();
                let (name, expression) = match character {
                    Some(wanted) => match domain::find_character(&doc, wanted) {
                        Some((n, c)) => (n.to_owned(), c.initiative_expression()),
                        // A typo must not join a stranger with a bare d20: combatants
                        // one runs are added with `/init add`.
                        None => {
                            return Err(RollsError::NotFound(domain::no_such_character(
                                &doc, wanted,
                            )));
                        }
                    },
                    None => match domain::active(&doc) {
                        Some((n, c)) => (n.to_owned(), c.initiative_expression()),
                        // Joining under one's Discord name: a combatant's name, which
                        // (unlike a character's) may hold `,` and `;`.
                        None => (domain::clean_named(display_name, "combatant")?, plain()),
                    },
                };
                if *once
                    && let Some(e) = tracker
                        .entries
                        .iter()
                        .find(|e| e.user == *user && e.name.eq_ignore_ascii_case(&name))
                {
                    return Err(RollsError::refused(format!(
                        "You are already in initiative as **{}** ({}). `/init join` rolls again; `/init remove` leaves.",
                        domain::escape(&e.name),
                        e.initiative
                    )));
                }
                let (value, how, rolled) = {
                    let log = rolls.insert(crate::history::RollLog::new(*user, Some(channel), at));
                    initiative(env.dice, log, roll.as_deref(), &expression).await?
                };
                // Joining again keeps what the fight knows about the combatant.
                let mut kept = tracker
                    .entries
                    .iter()
                    .find(|e| e.user == *user && e.name.eq_ignore_ascii_case(&name))
                    .map(|e| e.combat.clone())
                    .unwrap_or_default();
                kept.init_expr = rolled;
                domain::join(
                    &mut tracker,
                    Entry {
                        name: name.clone(),
                        user: *user,
                        initiative: value,
                        combat: kept,
                    },
                )?;
                format!(
                    "**{}** joined initiative with {value}: {how}",
                    domain::escape(&name)
                )
            }
            InitOp::Remove {
                user, character, ..
            } => {
                let rolled = combat::leave_rerolls(env, &tracker).await?;
                let left =
                    domain::leave(&mut tracker, *user, character.as_deref(), rolled.as_ref())?;
                let mut message = format!("**{}** left initiative.", domain::escape(&left.name));
                if let Some(report) = &left.turn {
                    said = combat::turn_said(&tracker, report);
                    message.push('\n');
                    message.push_str(&said.message);
                }
                message
            }
            // A position the tracker has not reached (a later round or turn, or a
            // turn past its last combatant) is no turn at all, not one it left.
            InitOp::Next {
                expected: Some(expected),
                ..
            } if !expected.reached(&tracker) => {
                return Err(RollsError::refused(format!(
                    "Round {}, turn {} is not a turn of this tracker; nothing changed. It is at round {}, turn {}.",
                    expected.round, expected.turn, tracker.round, tracker.turn
                )));
            }
            // Read again after a lost compare-and-set too: a press that lost to
            // another does not advance a second time.
            InitOp::Next {
                expected: Some(expected),
                ..
            } if *expected != TurnAt::of(&tracker) => {
                moved_on = true;
                let up = domain::combat::current(&domain::combat::public_view(&tracker))
                    .first()
                    .map(|e| domain::escape(e.combat.group.as_ref().unwrap_or(&e.name)));
                match up {
                    Some(who) => format!(
                        "The turn already moved on: it is **{who}**'s turn (round {}).",
                        tracker.round
                    ),
                    None => "The turn already moved on.".to_owned(),
                }
            }
            InitOp::Next { .. } => {
                said = combat::next(env, &mut tracker).await?;
                said.message.clone()
            }
            InitOp::Reset { .. } => {
                domain::reset(&mut tracker);
                "Initiative was reset.".to_owned()
            }
            InitOp::Combat { user, action, .. } => {
                let log = rolls.insert(crate::history::RollLog::new(*user, Some(channel), at));
                said = combat::apply(env, log, &mut tracker, *user, action).await?;
                said.message.clone()
            }
        };
        let message = match &rolls {
            Some(log) => log.noted(message),
            None => message,
        };
        let model = TrackerModel {
            channel,
            markdown: domain::render_tracker(&tracker),
            tracker: domain::combat::public_view(&tracker),
            message,
            private: said.private,
            ping: said.ping,
            moved_on,
        };
        let read_only = moved_on
            || matches!(self, InitOp::Get { .. })
            || matches!(
                self,
                InitOp::Combat {
                    action: CombatAction::View,
                    ..
                }
            );
        if read_only {
            return Ok(Plan::read_only(model));
        }
        let mut writes = Writes::new();
        put_tracker(&mut writes, channel, &tracker, at)?;
        if let Some(log) = &rolls {
            log.write_into(&mut writes)?;
        }
        Ok(Plan {
            guard: Some((schema::init_key(channel), read.raw)),
            writes,
            model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulation's extremes are the totals it happened to see, and say so; exact
    /// odds keep their true range.
    #[test]
    fn simulated_odds_say_their_extremes_were_seen_not_limits() {
        let simulated = OddsModel::of("100d100").unwrap();
        assert!(
            matches!(simulated.odds.method, dice::Method::Simulated { .. }),
            "{:?}",
            simulated.odds.method
        );
        let said = &simulated.markdown;
        assert!(!said.contains(", min `"), "{said}");
        assert!(
            said.contains(&format!(
                ", lowest `{}` and highest `{}` seen in",
                simulated.odds.min, simulated.odds.max
            )) && said.contains("simulated rolls"),
            "{said}"
        );
        let exact = OddsModel::of("2d6").unwrap();
        assert!(
            exact.markdown.contains(", min `2`, max `12`"),
            "{}",
            exact.markdown
        );
    }

    fn first_seed(expression: &str, wanted: impl Fn(&dice::Outcome) -> bool) -> RollModel {
        (0..10_000)
            .map(|seed| dice::roll(expression, &mut dice::Rng::seeded(seed)).expect("roll"))
            .find(|o| wanted(o))
            .map(|o| RollModel::new(expression, o))
            .expect("a seed gives it")
    }

    #[test]
    fn criticals_and_fumbles_are_noted() {
        let crit = first_seed("1d20+3", dice::Outcome::is_critical);
        assert!(
            crit.render().ends_with("**Critical!** (natural 20)"),
            "{}",
            crit.render()
        );
        let fumble = first_seed("1d20+3", dice::Outcome::is_fumble);
        assert!(
            fumble.render().ends_with("*Fumble.* (natural 1)"),
            "{}",
            fumble.render()
        );
        let plain = first_seed("1d20", |o| !o.is_critical() && !o.is_fumble());
        assert_eq!(plain.render(), plain.markdown);
    }

    /// Without a d20 the note names the die it was read on: an 8 on a d8 is no
    /// natural 20.
    #[test]
    fn a_crit_without_a_d20_names_its_die() {
        let crit = first_seed("1d8+3", dice::Outcome::is_critical);
        let shown = crit.render();
        assert!(!shown.contains("natural"), "{shown}");
        assert!(shown.ends_with("**Critical!** (8 on the d8)"), "{shown}");
        let fumble = first_seed("2d6kh1", dice::Outcome::is_fumble);
        let shown = fumble.render();
        assert!(shown.ends_with("*Fumble.* (1 on the d6)"), "{shown}");
        let d20 = first_seed("1d8 + 1d20", dice::Outcome::is_critical);
        assert!(
            d20.render().ends_with("**Critical!** (natural 20)"),
            "{}",
            d20.render()
        );
    }
}
