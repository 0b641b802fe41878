//! Discord handlers: `/ronnied start|leaderboard|newsession|abandon|tab`, the Join,
//! Begin, Roll, Pay, Tab and Start New Game buttons of the game message and the select
//! menu that hands out a drink.
//!
//! The game message also shows the session's leaderboard (top [`BOARD_ROWS`]) and the
//! game's latest drinks (last [`LATEST_DRINKS`]); replies carry a themed line picked by
//! the game's dice ([`crate::lines`]).
//!
//! The game lives in one public message that is edited in place. Every button press is
//! answered privately (what happened to *you*: your roll, your drink); the public message
//! is then edited by a [`Publisher`] that orders edits by the game's `version` and
//! coalesces bursts, so ten players pressing Roll at once leave the message showing the
//! newest state, not whichever edit arrived last.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use base::{Clock, InvalidId};
use discord::{
    Action, ButtonStyle, ChannelId, CommandSpec, Component, Discord, GuildId, Handler,
    HandlerError, Invocation, MessageId, OptionSpec, Reply, Response, SelectOption, UserId,
};
use store::StorageError;

use crate::domain::{
    self, DiceSource, DrinkReason, Effects, Game, GameError, GameId, GameStatus, Participant,
    ParticipantStatus, RollOffKind, RollOutcome, ScopeId, StickyDice,
};
use crate::domain::{DiceRules, DrinkRecord, SessionDoc, Standing};
use crate::lines::{self, Event};
use crate::repo::{Board, OpenGame, Repo, RepoError, Step, Tab};

/// The slash command and the component prefix.
pub const COMMAND: &str = "ronnied";
pub const PREFIX: &str = "ronnied";

/// Leaderboard lines shown at most (Discord messages hold 2000 characters).
const LEADERBOARD_ROWS: usize = 20;
/// Leaderboard lines on the game message.
pub const BOARD_ROWS: usize = 5;
/// Drinks listed on the game message (the newest).
pub const LATEST_DRINKS: usize = 5;
/// Discord's limit on a message's text.
const MESSAGE_MAX: usize = 2000;

/// `/ronnied` and its subcommands.
pub fn command_spec() -> CommandSpec {
    CommandSpec::new(COMMAND, "The dice drinking game")
        .option(OptionSpec::subcommand(
            "start",
            "Start a game in this channel",
        ))
        .option(OptionSpec::subcommand(
            "leaderboard",
            "Drinks owed, handed out and paid this session",
        ))
        .option(OptionSpec::subcommand(
            "newsession",
            "Start a new session: the leaderboard starts from zero",
        ))
        .option(OptionSpec::subcommand("abandon", "End this channel's game"))
        .option(OptionSpec::subcommand(
            "tab",
            "Your tab: drinks you owe, have drunk and have handed out",
        ))
}

/// What a component does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    Join,
    Begin,
    Roll,
    Pay,
    /// The select menu that picks who drinks for the crit value (a 6 on a d6).
    Assign,
    /// Shows the presser's tab.
    Tab,
    /// On a finished game: starts a new game in its channel.
    New,
}

impl Press {
    fn name(self) -> &'static str {
        match self {
            Press::Join => "join",
            Press::Begin => "begin",
            Press::Roll => "roll",
            Press::Pay => "pay",
            Press::Assign => "assign",
            Press::Tab => "tab",
            Press::New => "new",
        }
    }
}

/// A parsed `custom_id`: `ronnied:<action>:<gameID>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentId {
    pub press: Press,
    pub game: GameId,
}

impl ComponentId {
    pub fn new(press: Press, game: &GameId) -> ComponentId {
        ComponentId {
            press,
            game: game.clone(),
        }
    }

    pub fn parse(custom_id: &str) -> Result<ComponentId, InvalidId> {
        let bad = || {
            InvalidId::new(
                "component id",
                custom_id,
                "not `ronnied:<action>:<game>` with a known action",
            )
        };
        let mut parts = custom_id.split(':');
        if parts.next() != Some(PREFIX) {
            return Err(bad());
        }
        let press = match parts.next() {
            Some("join") => Press::Join,
            Some("begin") => Press::Begin,
            Some("roll") => Press::Roll,
            Some("pay") => Press::Pay,
            Some("assign") => Press::Assign,
            Some("tab") => Press::Tab,
            Some("new") => Press::New,
            _ => return Err(bad()),
        };
        let game = GameId::parse(parts.next().ok_or_else(bad)?)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(ComponentId { press, game })
    }

    pub fn render(&self) -> String {
        format!("{PREFIX}:{}:{}", self.press.name(), self.game)
    }
}

/// The custom id of a button or select of game `game`.
pub fn custom_id(press: Press, game: &GameId) -> String {
    ComponentId::new(press, game).render()
}

/// Orders and coalesces edits of public game messages (see the module docs).
///
/// All interactions of a guild arrive on one shard, so ordering within the process is
/// enough.
pub struct Publisher {
    discord: Discord,
    /// Reads the leaderboard and latest drinks shown on the message (its own
    /// round-trip count: these reads happen after the press is answered).
    repo: Repo,
    slots: Mutex<HashMap<GameId, Slot>>,
}

struct Slot {
    /// The newest state: version, where, which game.
    latest: (u64, ChannelId, MessageId, Game),
    /// `latest` (or the table under it) changed since the message was last drawn.
    dirty: bool,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(discord: Discord, repo: Repo) -> Arc<Publisher> {
        Arc::new(Publisher {
            discord,
            repo,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// Shows `game` in its public message, unless a newer version was already shown.
    /// Returns at once; the edit happens on a background task.
    pub fn publish(self: &Arc<Self>, game: &Game) {
        self.push(game, false);
    }

    /// Draws game `id`'s message again (the newest version known), for changes that
    /// are not the game's own: a paid drink changes the leaderboard and the drinks
    /// shown. Reads the game in the background.
    pub fn refresh(self: &Arc<Self>, id: &GameId) {
        let this = Arc::clone(self);
        let id = id.clone();
        tokio::spawn(async move {
            match this.repo.load_game(&id).await {
                Ok(Some((game, _))) => this.push(&game, true),
                Ok(None) => {}
                Err(error) => tracing::warn!(game = %id, %error, "game message not redrawn"),
            }
        });
    }

    fn push(self: &Arc<Self>, game: &Game, redraw: bool) {
        let Some(message) = game.message_id else {
            return;
        };
        let latest = (game.version, game.channel_id, message, game.clone());
        let start = {
            let Ok(mut slots) = self.slots.lock() else {
                return;
            };
            match slots.get_mut(&game.id) {
                Some(slot) => {
                    if latest.0 > slot.latest.0 {
                        slot.latest = latest;
                        slot.dirty = true;
                    } else if redraw {
                        slot.dirty = true;
                    }
                    false
                }
                None => {
                    slots.insert(
                        game.id.clone(),
                        Slot {
                            latest,
                            dirty: true,
                        },
                    );
                    true
                }
            }
        };
        if start {
            let this = Arc::clone(self);
            let id = game.id.clone();
            tokio::spawn(async move { this.drain(id).await });
        }
    }

    async fn drain(&self, id: GameId) {
        loop {
            let next = {
                let Ok(mut slots) = self.slots.lock() else {
                    return;
                };
                match slots.get_mut(&id) {
                    Some(slot) if slot.dirty => {
                        slot.dirty = false;
                        Some(slot.latest.clone())
                    }
                    _ => {
                        slots.remove(&id);
                        None
                    }
                }
            };
            let Some((_, channel, message, game)) = next else {
                return;
            };
            let table = table_of(&self.repo, &game).await;
            let reply = render_game(&game, table.as_ref());
            if let Err(error) = self.discord.edit(channel, message, &reply).await {
                tracing::warn!(game = %id, %error, "could not edit the game message");
            }
        }
    }
}

/// The handlers' shared state.
pub struct Commands {
    repo: Repo,
    clock: Arc<dyn Clock>,
    dice: Arc<dyn DiceSource>,
    publisher: Arc<Publisher>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

/// The one place a [`RepoError`] becomes what the user sees. The rules' refusals and a
/// vanished game are explained; storage failures are worded by [`feature::reply`],
/// except data that cannot be read, which is an internal error (logged with the
/// interaction's id, which the user is shown), as is a document that failed validation.
fn handler_error(error: RepoError) -> HandlerError {
    match error {
        RepoError::Rule(rule) => HandlerError::user(sentence(&rule.to_string())),
        RepoError::GameNotFound(_) => HandlerError::user(
            "This game is over and cleared away. Start a new one with /ronnied start.",
        ),
        RepoError::NoGameInChannel => {
            HandlerError::user("No game is running in this channel. Start one with /ronnied start.")
        }
        RepoError::Storage(corrupt @ StorageError::Corrupt { .. }) => {
            HandlerError::internal(corrupt)
        }
        RepoError::Storage(storage) => feature::reply::handler_error(&storage),
        invalid @ RepoError::Invalid(_) => HandlerError::internal(invalid),
    }
}

/// Capitalises a refusal and ends it with a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

impl Commands {
    pub fn new(
        repo: Repo,
        discord: Discord,
        clock: Arc<dyn Clock>,
        dice: Arc<dyn DiceSource>,
    ) -> Commands {
        Commands {
            repo: repo.clone(),
            clock,
            dice,
            publisher: Publisher::new(discord, repo.detached()),
        }
    }

    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// `/ronnied <subcommand>`.
    pub async fn command(&self, invocation: Invocation) -> Result<Response, HandlerError> {
        let options = invocation.options();
        let channel = invocation.channel_id;
        let scope = ScopeId::of(invocation.guild_id, invocation.channel_id);
        let player = invocation.actor.id;
        let name = domain::clean_name(&invocation.actor.name);
        let now = self.clock.now();
        match options.sub() {
            Some("start") => self.start(channel, scope, player, &name, now).await,
            Some("leaderboard") => {
                let board = self.repo.leaderboard(scope).await.map_err(handler_error)?;
                Ok(Response::Message(render_leaderboard(&board)))
            }
            Some("newsession") => {
                let done = self
                    .repo
                    .new_session(scope, player, now)
                    .await
                    .map_err(handler_error)?;
                let whose = if invocation.guild_id.is_some() {
                    "this server's"
                } else {
                    "this channel's"
                };
                Ok(Response::Message(Reply::text(new_session_text(
                    player,
                    done.ended.as_ref(),
                    whose,
                ))))
            }
            Some("abandon") => {
                let id = self
                    .repo
                    .channel_game(channel)
                    .await
                    .map_err(handler_error)?
                    .ok_or(RepoError::NoGameInChannel)
                    .map_err(handler_error)?;
                let rules = *self.repo.rules();
                let updated = self
                    .repo
                    .update_game(&id, None, |game| {
                        game.abandon(player, &rules, now)?;
                        Ok(Step::new((), Effects::default()))
                    })
                    .await
                    .map_err(handler_error)?;
                self.publisher.publish(&updated.game);
                Ok(Response::Message(Reply::text(format!(
                    "🛑 **{name}** abandoned the game. Drinks already poured are still owed."
                ))))
            }
            Some("tab") => self.tab(scope, player, &name).await,
            other => Err(HandlerError::user(format!(
                "Unknown subcommand {}.",
                other.unwrap_or("(none)")
            ))),
        }
    }

    /// A new game in `channel`, answered with its public message.
    async fn start(
        &self,
        channel: ChannelId,
        scope: ScopeId,
        player: UserId,
        name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Response, HandlerError> {
        let game = self
            .repo
            .create_game(channel, scope, player, name, now)
            .await
            .map_err(handler_error)?;
        let table = table_of(&self.repo, &game).await;
        Ok(Response::Message(render_game(&game, table.as_ref())))
    }

    /// `player`'s tab, privately.
    async fn tab(
        &self,
        scope: ScopeId,
        player: UserId,
        name: &str,
    ) -> Result<Response, HandlerError> {
        let tab = self.repo.tab(scope, player).await.map_err(handler_error)?;
        Ok(Response::Message(Reply::private(render_tab(
            &tab,
            name,
            &self.publisher.discord,
        ))))
    }

    /// The "Who drinks?" menu again, for `player` who rolled the crit value `crit`
    /// and has not picked yet.
    async fn assign_again(
        &self,
        game: &GameId,
        player: UserId,
        crit: u8,
    ) -> Result<Response, HandlerError> {
        let game = self
            .repo
            .seen_game(game)
            .await
            .map_err(handler_error)?
            .ok_or_else(|| handler_error(RepoError::GameNotFound(game.clone())))?;
        let text = format!(
            "💥 You rolled **{crit}** and still hand out a drink for it: pick who drinks first, then the game goes on."
        );
        Ok(Response::Message(
            Reply::private(text).row(vec![assign_menu(&game, player)]),
        ))
    }

    /// A button press or a select-menu pick.
    pub async fn component(&self, invocation: Invocation) -> Result<Response, HandlerError> {
        let Action::Component {
            custom_id,
            values,
            message_id,
        } = &invocation.action
        else {
            return Err(HandlerError::user("This only works from a button."));
        };
        let id = ComponentId::parse(custom_id)
            .map_err(|_| HandlerError::user("That button is not known any more."))?;
        let player = invocation.actor.id;
        let name = domain::clean_name(&invocation.actor.name);
        let message = *message_id;
        let now = self.clock.now();
        let rules = *self.repo.rules();
        match id.press {
            Press::New => {
                let scope = ScopeId::of(invocation.guild_id, invocation.channel_id);
                self.start(invocation.channel_id, scope, player, &name, now)
                    .await
            }
            Press::Tab => {
                let scope = ScopeId::of(invocation.guild_id, invocation.channel_id);
                self.tab(scope, player, &name).await
            }
            Press::Join => {
                let updated = self
                    .repo
                    .update_game(&id.game, Some(message), |game| {
                        game.join(player, &name, &rules, now)?;
                        let doc = domain::player_doc(game, player, None, now);
                        Ok(Step::new(game.participants.len(), Effects::default()).with_player(doc))
                    })
                    .await
                    .map_err(handler_error)?;
                self.publisher.publish(&updated.game);
                Ok(Response::Message(Reply::private(format!(
                    "✅ You're in ({}/{} players). Wait for **Begin**, then press **Roll**.",
                    updated.value, rules.player_limit
                ))))
            }
            Press::Begin => {
                let updated = self
                    .repo
                    .update_game(&id.game, Some(message), |game| {
                        let effects = game.begin(player, &rules, now)?;
                        Ok(Step::new((), effects))
                    })
                    .await
                    .map_err(handler_error)?;
                self.publisher.publish(&updated.game);
                let mut text = String::from("🎲 Game on! Everyone can press **Roll** now.");
                if updated.game.force_started_by == Some(player) {
                    let creator = participant_name(&updated.game, updated.game.creator_id);
                    let _ = write!(
                        text,
                        "\nYou force-started it, so **{creator}** owes a drink for the delay 🍺"
                    );
                }
                Ok(Response::Message(Reply::private(text)))
            }
            Press::Roll => {
                let dice = StickyDice::new(self.dice.as_ref());
                let rolled = self
                    .repo
                    .update_game(&id.game, Some(message), |game| {
                        let outcome = game.roll(player, &dice, now)?;
                        let effects = outcome.effects.clone();
                        let doc = domain::player_doc(game, player, Some(outcome.die), now);
                        Ok(Step::new(outcome, effects).with_player(doc))
                    })
                    .await;
                let updated = match rolled {
                    // Their menu may be gone (dismissed with the private answer it
                    // came in): they get it again, or the game would wait forever.
                    Err(RepoError::Rule(GameError::MustAssignFirst { crit })) => {
                        return self.assign_again(&id.game, player, crit).await;
                    }
                    other => other.map_err(handler_error)?,
                };
                self.publisher.publish(&updated.game);
                Ok(Response::Message(roll_reply(
                    &updated.game,
                    player,
                    &updated.value,
                    self.dice.as_ref(),
                )))
            }
            Press::Assign => {
                let target = values
                    .first()
                    .and_then(|v| domain::parse_player(v).ok())
                    .ok_or_else(|| HandlerError::user("Pick a player from the list."))?;
                let updated = self
                    .repo
                    .update_game(&id.game, None, |game| {
                        Ok(Step::new((), game.assign(player, target, now)?))
                    })
                    .await
                    .map_err(handler_error)?;
                self.publisher.publish(&updated.game);
                let target_name = participant_name(&updated.game, target);
                let mut text = format!("🍺 You handed a drink to **{target_name}**.");
                flavour(
                    &mut text,
                    self.dice.as_ref(),
                    Event::Assigned,
                    &[("player", name.as_str()), ("target", target_name.as_str())],
                );
                summarize(
                    &mut text,
                    &updated.game,
                    player,
                    &updated.effects,
                    self.dice.as_ref(),
                );
                Ok(Response::Update(Reply::private(text)))
            }
            Press::Pay => {
                let paid = self.repo.pay(&id.game, player, now).await;
                if let Err(RepoError::Rule(GameError::NothingToPay)) = paid {
                    // Say where the debt is, when there is one elsewhere.
                    let scope = ScopeId::of(invocation.guild_id, invocation.channel_id);
                    let tab = self.repo.tab(scope, player).await.map_err(handler_error)?;
                    return Err(HandlerError::user(nothing_to_pay_here(
                        &tab,
                        &id.game,
                        &self.publisher.discord,
                    )));
                }
                let (drink, still_owed) = paid.map_err(handler_error)?;
                self.publisher.refresh(&id.game);
                let owed = match still_owed {
                    0 => "You're all square in this game 🎉".to_owned(),
                    1 => "You still owe 1 drink here.".to_owned(),
                    n => format!("You still owe {n} drinks here."),
                };
                Ok(Response::Message(Reply::private(format!(
                    "✅ Paid one drink ({}). {owed}",
                    reason_text(drink.reason)
                ))))
            }
        }
    }
}

fn reason_text(reason: DrinkReason) -> &'static str {
    match reason {
        DrinkReason::CriticalHit => "handed to you for a crit",
        DrinkReason::CriticalFail => "rolled a 1",
        DrinkReason::LowestRoll => "lowest roll",
        DrinkReason::DelayedStart => "late start",
    }
}

fn participant_name(game: &Game, player: UserId) -> String {
    game.participant(player)
        .map_or_else(|| format!("player {player}"), |p| p.name.clone())
}

fn names(game: &Game, players: &[UserId]) -> String {
    let names: Vec<String> = players
        .iter()
        .map(|p| format!("**{}**", participant_name(game, *p)))
        .collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn kind_text(kind: RollOffKind) -> &'static str {
    match kind {
        RollOffKind::Lowest => "lowest",
        RollOffKind::Highest => "highest",
    }
}

/// Adds a themed line for `event` (in italics) to `text`.
fn flavour(text: &mut String, dice: &dyn DiceSource, event: Event, vars: &[(&str, &str)]) {
    let line = lines::line(dice, event, vars);
    if !line.is_empty() {
        let _ = write!(text, "\n_{line}_");
    }
}

/// The private answer to a Roll press.
fn roll_reply(game: &Game, player: UserId, outcome: &RollOutcome, dice: &dyn DiceSource) -> Reply {
    let mut text = String::new();
    if let Some(kind) = outcome.roll_off {
        let _ = write!(text, "**Roll-off ({})** · ", kind_text(kind));
    }
    let die = outcome.die;
    let event = if game.dice.is_crit(die) {
        if outcome.must_assign {
            let _ = write!(text, "💥 You rolled **{die}**! Pick who drinks:");
            Event::Crit
        } else {
            let _ = write!(
                text,
                "💥 You rolled **{die}**, and you're alone, so you drink it yourself 🍺"
            );
            Event::CritAlone
        }
    } else if game.dice.is_fail(die) {
        let _ = write!(text, "💀 You rolled **{die}**: critical fail, drink up 🍺");
        Event::Fail
    } else {
        let _ = write!(text, "🎲 You rolled **{die}**.");
        Event::Roll
    };
    let name = participant_name(game, player);
    let face = die.to_string();
    flavour(
        &mut text,
        dice,
        event,
        &[("player", name.as_str()), ("die", face.as_str())],
    );
    summarize(&mut text, game, player, &outcome.effects, dice);
    let mut reply = Reply::private(text);
    if outcome.must_assign {
        reply = reply.row(vec![assign_menu(game, player)]);
    }
    reply
}

/// The select menu with which `player`, who rolled the crit value, picks who drinks.
fn assign_menu(game: &Game, player: UserId) -> Component {
    let options = game
        .assign_targets(player)
        .into_iter()
        .take(25)
        .map(|p| SelectOption {
            label: p.name.clone(),
            value: p.player_id.to_string(),
            description: None,
        })
        .collect();
    Component::Select {
        custom_id: custom_id(Press::Assign, &game.id),
        placeholder: "Who drinks?".to_owned(),
        options,
    }
}

/// Adds what the action set in motion: roll-offs, who drinks, the end of the game.
fn summarize(
    text: &mut String,
    game: &Game,
    player: UserId,
    effects: &Effects,
    dice: &dyn DiceSource,
) {
    for (kind, players) in &effects.roll_offs_started {
        let you = if players.contains(&player) {
            " You're in it: press **Roll** again."
        } else {
            ""
        };
        let _ = write!(
            text,
            "\n⚔️ Tie for {} between {}: roll-off!{you}",
            kind_text(*kind),
            names(game, players)
        );
        let plain: Vec<String> = players.iter().map(|p| participant_name(game, *p)).collect();
        let plain = plain.join(", ");
        flavour(text, dice, Event::RollOff, &[("players", plain.as_str())]);
    }
    if !effects.lowest.is_empty() {
        if game.is_solo() {
            let _ = write!(
                text,
                "\n🍺 Playing alone, {} takes the lowest-roll drink.",
                names(game, &effects.lowest)
            );
        } else {
            let _ = write!(
                text,
                "\n🍺 {} rolled lowest and drinks.",
                names(game, &effects.lowest)
            );
        }
    }
    if let Some(winner) = effects.winner {
        let _ = write!(text, "\n🏆 {} wins the round.", names(game, &[winner]));
    }
    if effects.completed {
        text.push_str(
            "\n🏁 Game over. Press **Pay** on the game message once you've had a drink you owe.",
        );
        if let (Some(winner), Some(loser)) = (game.winner, lowest_loser(game)) {
            let (winner, loser) = (
                participant_name(game, winner),
                participant_name(game, loser),
            );
            flavour(
                text,
                dice,
                Event::GameOver,
                &[("winner", winner.as_str()), ("loser", loser.as_str())],
            );
        }
    }
}

fn roll_cell(p: &Participant, dice: DiceRules) -> String {
    match (p.roll, p.status) {
        (None, _) => "⏳ to roll".to_owned(),
        (Some(d), ParticipantStatus::NeedsToAssign) => format!("🎲 {d} 💥 picking who drinks…"),
        (Some(d), _) if dice.is_crit(d) => format!("🎲 {d} 💥"),
        (Some(d), _) if dice.is_fail(d) => format!("🎲 {d} 💀"),
        (Some(d), _) => format!("🎲 {d}"),
    }
}

fn render_roll_offs(out: &mut String, game: &Game, depth: usize) {
    for child in &game.roll_offs {
        let kind = child.roll_off_kind.map_or("", kind_text);
        let state = if child.is_completed() {
            "done"
        } else {
            "press **Roll**"
        };
        let indent = "  ".repeat(depth);
        let _ = write!(out, "\n{indent}⚔️ **Roll-off for {kind}** ({state})");
        for p in &child.participants {
            let _ = write!(out, "\n{indent}• {} — {}", p.name, roll_cell(p, game.dice));
        }
        render_roll_offs(out, child, depth + 1);
    }
}

/// Who took the `lowest_roll` drink, read from the tree: the single lowest roller of the
/// game, or of its lowest roll-off, recursively.
fn lowest_loser(game: &Game) -> Option<UserId> {
    if game.solo_drank_for_roll() {
        // Alone, a 6 or a 1 is the game's one drink: nobody drinks for the lowest roll.
        return None;
    }
    let low = game.participants.iter().filter_map(|p| p.roll).min()?;
    let lowest: Vec<UserId> = game
        .participants
        .iter()
        .filter(|p| p.roll == Some(low))
        .map(|p| p.player_id)
        .collect();
    if let [one] = lowest[..] {
        return Some(one);
    }
    game.roll_offs
        .iter()
        .find(|c| c.roll_off_kind == Some(RollOffKind::Lowest))
        .and_then(lowest_loser)
}

/// What the game message shows besides the game: the session's leaderboard and the
/// game's latest drinks.
#[derive(Debug, Default)]
pub struct Table {
    pub board: Board,
    /// Newest first, at most [`LATEST_DRINKS`].
    pub latest: Vec<DrinkRecord>,
}

/// Reads the [`Table`] of `game`; `None` (logged) when Redis cannot answer: the
/// message is then drawn without it rather than not at all.
pub async fn table_of(repo: &Repo, game: &Game) -> Option<Table> {
    let board = repo.leaderboard(game.scope).await;
    let latest = repo.latest_drinks(&game.id, LATEST_DRINKS).await;
    match (board, latest) {
        (Ok(board), Ok(latest)) => Some(Table { board, latest }),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(game = %game.id, %error, "game message drawn without its leaderboard");
            None
        }
    }
}

/// How the game message describes a drink: `**bob** ← alice's crit`.
fn drink_line(game: &Game, drink: &DrinkRecord) -> String {
    let why = match (drink.reason, drink.from) {
        (DrinkReason::CriticalHit, Some(from)) if from != drink.to => {
            format!("{}'s crit", participant_name(game, from))
        }
        (DrinkReason::CriticalHit, _) => "a crit alone".to_owned(),
        (DrinkReason::CriticalFail, _) => "critical fail".to_owned(),
        (DrinkReason::LowestRoll, _) => "lowest roll".to_owned(),
        (DrinkReason::DelayedStart, _) => "late start".to_owned(),
    };
    let paid = if drink.paid { " ✅" } else { "" };
    format!("**{}** ← {why}{paid}", participant_name(game, drink.to))
}

/// The leaderboard and latest drinks, as appended to the game message.
fn render_table(game: &Game, table: &Table) -> String {
    let mut out = String::new();
    if !table.latest.is_empty() {
        out.push_str("\n\n🍺 **Latest drinks**");
        for drink in table.latest.iter().take(LATEST_DRINKS) {
            let _ = write!(out, "\n• {}", drink_line(game, drink));
        }
    }
    if !table.board.standings.is_empty() {
        out.push_str("\n\n📊 **Session leaderboard**");
        for (rank, row) in table.board.standings.iter().take(BOARD_ROWS).enumerate() {
            let name = table
                .board
                .names
                .get(&row.player)
                .cloned()
                .unwrap_or_else(|| participant_name(game, row.player));
            let _ = write!(
                out,
                "\n{}. **{name}** — owes {} · paid {} · handed out {}",
                rank + 1,
                row.owed(),
                row.paid,
                row.assigned
            );
        }
        if table.board.standings.len() > BOARD_ROWS {
            let _ = write!(
                out,
                "\n…and {} more: /ronnied leaderboard",
                table.board.standings.len() - BOARD_ROWS
            );
        }
    }
    out
}

/// The public game message, with its [`Table`] when there is one.
pub fn render_game(game: &Game, table: Option<&Table>) -> Reply {
    let creator = participant_name(game, game.creator_id);
    let (crit, fail) = (game.dice.crit, game.dice.fail);
    let die = if game.dice.is_classic() {
        String::new()
    } else {
        format!(" ({})", game.dice.name())
    };
    let mut text = String::new();
    let rolled = game
        .participants
        .iter()
        .filter(|p| p.roll.is_some())
        .count();
    match game.status {
        GameStatus::Waiting => {
            let count = game.participants.len();
            let _ = write!(
                text,
                "🎲 **Ronnied**{die} · waiting for players ({count} in)\nStarted by **{creator}**. Press **Join** to play; **{creator}** presses **Begin**.\n{crit} = hand out a drink · {fail} = drink · lowest roll drinks.",
            );
        }
        GameStatus::Active => {
            let _ = write!(
                text,
                "🎲 **Ronnied**{die} · rolling ({rolled}/{} rolled)\nEveryone presses **Roll**. {crit} = hand out a drink · {fail} = drink.",
                game.participants.len()
            );
        }
        GameStatus::RollOff => {
            let _ = write!(
                text,
                "🎲 **Ronnied**{die} · roll-off! Tied players press **Roll**."
            );
        }
        GameStatus::Completed if game.abandoned => {
            text.push_str("🛑 **Ronnied** · abandoned. Drinks already poured are still owed.");
        }
        GameStatus::Completed => {
            text.push_str("🏁 **Ronnied** · game over");
        }
    }
    text.push('\n');
    for p in &game.participants {
        if game.status == GameStatus::Waiting {
            let _ = write!(text, "\n• {}", p.name);
        } else {
            let _ = write!(text, "\n• {} — {}", p.name, roll_cell(p, game.dice));
        }
    }
    render_roll_offs(&mut text, game, 0);
    if game.status == GameStatus::Completed && !game.abandoned {
        if let Some(winner) = game.winner {
            let _ = write!(
                text,
                "\n\n🏆 Winner: **{}**",
                participant_name(game, winner)
            );
        }
        if let Some(loser) = lowest_loser(game) {
            let _ = write!(
                text,
                "\n🍺 Lowest roll: **{}** drinks.",
                participant_name(game, loser)
            );
        }
        if let (Some(winner), Some(loser)) = (game.winner, lowest_loser(game)) {
            let (winner, loser) = (
                participant_name(game, winner),
                participant_name(game, loser),
            );
            let line = lines::stable_line(
                game.id.as_str(),
                Event::GameOver,
                &[("winner", winner.as_str()), ("loser", loser.as_str())],
            );
            let _ = write!(text, "\n_{line}_");
        }
        text.push_str("\nPress **Pay** once you've had a drink you owe.");
    }
    if let Some(forcer) = game.force_started_by {
        let _ = write!(
            text,
            "\n⏰ Force-started by **{}**: **{creator}** owes a drink.",
            participant_name(game, forcer)
        );
    }
    if let Some(table) = table {
        let extra = render_table(game, table);
        // The leaderboard and drinks are bounded; the game itself (up to 25 players
        // with roll-offs) comes first and keeps its room.
        if text.chars().count() + extra.chars().count() <= MESSAGE_MAX {
            text.push_str(&extra);
        }
    }
    if text.chars().count() > MESSAGE_MAX {
        text = text.chars().take(MESSAGE_MAX - 1).collect();
        text.push('…');
    }
    let tab = Component::button(
        custom_id(Press::Tab, &game.id),
        "Tab",
        ButtonStyle::Secondary,
    );
    let row = match game.status {
        GameStatus::Waiting => vec![
            Component::button(
                custom_id(Press::Join, &game.id),
                "Join",
                ButtonStyle::Primary,
            ),
            Component::button(
                custom_id(Press::Begin, &game.id),
                "Begin",
                ButtonStyle::Success,
            ),
        ],
        GameStatus::Active | GameStatus::RollOff => vec![
            Component::button(
                custom_id(Press::Roll, &game.id),
                "Roll",
                ButtonStyle::Primary,
            ),
            Component::button(
                custom_id(Press::Pay, &game.id),
                "Pay",
                ButtonStyle::Secondary,
            ),
            tab,
        ],
        GameStatus::Completed => vec![
            Component::button(
                custom_id(Press::New, &game.id),
                "Start New Game",
                ButtonStyle::Success,
            ),
            Component::button(
                custom_id(Press::Pay, &game.id),
                "Pay",
                ButtonStyle::Secondary,
            ),
            tab,
        ],
    };
    Reply::text(text).row(row)
}

/// The public answer to `/ronnied newsession`: who started it, as a mention (shown,
/// never pinging), whose leaderboard restarts (`whose`: this server's, or this
/// channel's in a DM), and the session it ended, whose drinks are still owed. Any
/// member may start one, as in the original; the answer says who did.
fn new_session_text(by: UserId, ended: Option<&SessionDoc>, whose: &str) -> String {
    let mut text =
        format!("🆕 **New session** started by <@{by}>: {whose} leaderboard starts from zero.");
    if let Some(ended) = ended {
        text.push_str(&format!(
            " The session since <t:{}:R>",
            ended.started_at.timestamp()
        ));
        if let Some(starter) = ended.started_by {
            text.push_str(&format!(" (started by <@{starter}>)"));
        }
        text.push_str(" ended; its unpaid drinks are still owed (`/ronnied tab`).");
    }
    text
}

/// The public leaderboard message.
pub fn render_leaderboard(board: &Board) -> Reply {
    let Some(session) = &board.session else {
        return Reply::text("🏆 **Leaderboard** · no games yet. Start one with /ronnied start.");
    };
    let mut text = format!(
        "🏆 **Leaderboard** · session since <t:{}:R> · {} game{}",
        session.started_at.timestamp(),
        board.games,
        if board.games == 1 { "" } else { "s" }
    );
    if board.standings.is_empty() {
        text.push_str("\nNo drinks yet this session.");
    }
    for (rank, row) in board.standings.iter().take(LEADERBOARD_ROWS).enumerate() {
        let name = board
            .names
            .get(&row.player)
            .cloned()
            .unwrap_or_else(|| format!("player {}", row.player));
        let _ = write!(
            text,
            "\n{}. **{name}** — owes {} · paid {} · handed out {}",
            rank + 1,
            row.owed(),
            row.paid,
            row.assigned
        );
    }
    if board.standings.len() > LEADERBOARD_ROWS {
        let _ = write!(
            text,
            "\n…and {} more.",
            board.standings.len() - LEADERBOARD_ROWS
        );
    }
    Reply::text(text)
}

/// A link to a message in Discord's client: in a guild, or in a DM (whose scope is its
/// channel).
fn message_link(
    discord: &Discord,
    scope: ScopeId,
    channel: ChannelId,
    message: MessageId,
) -> String {
    let guild = Some(scope.get())
        .filter(|scope| *scope != channel.get())
        .and_then(GuildId::new_checked);
    discord.message_url(guild, channel, message)
}

/// The games holding a tab's unpaid drinks, one line each, except `skip`.
fn where_to_pay(tab: &Tab, skip: Option<&GameId>, discord: &Discord) -> String {
    let current = tab.session.as_ref().map(|s| &s.id);
    let mut out = String::new();
    let shown: Vec<&OpenGame> = tab.open.iter().filter(|g| Some(&g.game) != skip).collect();
    for game in shown.iter().take(10) {
        let drinks = if game.owed == 1 {
            "1 drink".to_owned()
        } else {
            format!("{} drinks", game.owed)
        };
        let when = if Some(&game.session) == current {
            ""
        } else {
            ", earlier session"
        };
        match game.message {
            Some((scope, channel, message)) => {
                let _ = write!(
                    out,
                    "\n• [game of <t:{}:R>]({}) · {drinks}{when}",
                    game.since.timestamp(),
                    message_link(discord, scope, channel, message)
                );
            }
            None => {
                let _ = write!(
                    out,
                    "\n• a game of <t:{}:R>, cleared away (press **Pay** on its message) · {drinks}{when}",
                    game.since.timestamp()
                );
            }
        }
    }
    if shown.len() > 10 {
        let _ = write!(out, "\n…and {} more games.", shown.len() - 10);
    }
    out
}

/// The refusal of a Pay press on a game where the player owes nothing: where they do.
fn nothing_to_pay_here(tab: &Tab, game: &GameId, discord: &Discord) -> String {
    let elsewhere: usize = tab
        .open
        .iter()
        .filter(|g| &g.game != game)
        .map(|g| g.owed)
        .sum();
    let mut text = "You have no unpaid drinks in this game.".to_owned();
    if elsewhere > 0 {
        let drinks = if elsewhere == 1 { "drink" } else { "drinks" };
        let _ = write!(
            text,
            " You owe **{elsewhere}** {drinks} in other games; press **Pay** on their messages:{}",
            where_to_pay(tab, Some(game), discord)
        );
    }
    text
}

/// A player's tab, for them alone.
pub fn render_tab(tab: &Tab, name: &str, discord: &Discord) -> String {
    let standing = tab.standing.clone().unwrap_or(Standing {
        player: UserId::new(1),
        received: 0,
        paid: 0,
        assigned: 0,
    });
    let mut text = format!("🧾 **{name}'s tab**");
    match &tab.session {
        Some(session) => {
            let _ = write!(
                text,
                " · this session, since <t:{}:R>\nYou owe **{}** · you've drunk **{}** · you've handed out **{}**.",
                session.started_at.timestamp(),
                standing.owed(),
                standing.paid,
                standing.assigned
            );
        }
        None => text.push_str("\nNo games yet. Start one with /ronnied start."),
    }
    if !tab.earlier.is_empty() {
        let n = tab.earlier.len();
        let _ = write!(
            text,
            "\nFrom earlier sessions you still owe **{n}** {}.",
            if n == 1 { "drink" } else { "drinks" }
        );
    }
    if !tab.unpaid.is_empty() {
        text.push_str("\n**Still to drink**");
        for drink in tab.unpaid.iter().take(10) {
            let from = drink
                .from
                .filter(|f| *f != drink.to)
                .map(|f| {
                    let who = tab
                        .names
                        .get(&f)
                        .cloned()
                        .unwrap_or_else(|| format!("player {f}"));
                    format!(" from **{who}**")
                })
                .unwrap_or_default();
            let _ = write!(
                text,
                "\n• {}{from} <t:{}:R>",
                reason_text(drink.reason),
                drink.at.timestamp()
            );
        }
        if tab.unpaid.len() > 10 {
            let _ = write!(text, "\n…and {} more.", tab.unpaid.len() - 10);
        }
    }
    if !tab.open.is_empty() {
        text.push_str(
            "\n**Where to pay** (press **Pay** on the game's message once you've had one)",
        );
        text.push_str(&where_to_pay(tab, None, discord));
    }
    let _ = write!(
        text,
        "\nAll sessions: **{}** received · **{}** handed out.",
        tab.received_ever, tab.assigned_ever
    );
    text
}

/// Routes `/ronnied`: [`Commands::command`] through the kit's [`feature::reply::handler`].
pub fn command_handler(commands: &Arc<Commands>) -> Arc<dyn Handler> {
    feature::reply::handler(
        commands,
        |commands: Arc<Commands>, invocation| async move { commands.command(invocation).await },
        std::convert::identity,
    )
}

/// Routes `ronnied:*` components: [`Commands::component`] through the kit's
/// [`feature::reply::handler`].
pub fn component_handler(commands: &Arc<Commands>) -> Arc<dyn Handler> {
    feature::reply::handler(
        commands,
        |commands: Arc<Commands>, invocation| async move { commands.component(invocation).await },
        std::convert::identity,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids_round_trip() {
        let game = GameId::parse("abc").expect("id");
        for press in [
            Press::Join,
            Press::Begin,
            Press::Roll,
            Press::Pay,
            Press::Assign,
            Press::Tab,
            Press::New,
        ] {
            let id = custom_id(press, &game);
            assert!(id.len() <= 100);
            assert_eq!(
                ComponentId::parse(&id).expect("parse"),
                ComponentId::new(press, &game)
            );
        }
        assert!(ComponentId::parse("ronnied:dance:abc").is_err());
        assert!(ComponentId::parse("other:roll:abc").is_err());
        assert!(ComponentId::parse("ronnied:roll:abc:extra").is_err());
        assert!(ComponentId::parse("ronnied:roll:").is_err());
    }

    /// Alone, a roll's reply and the game message tell one story: one drink, no
    /// victim to choose, no lowest roll on top of a 6 or a 1, and no winner.
    #[test]
    fn a_solo_game_reads_as_one_drink_for_the_player() {
        use crate::domain::{ChannelId, Rules, ScopeId, SessionId};
        use crate::testing::ScriptedDice;
        let alice = UserId::new(1);
        let t0 = chrono::DateTime::from_timestamp(1_750_000_000, 0).expect("time");
        for (face, says) in [
            (6, "you're alone, so you drink it yourself"),
            (1, "critical fail, drink up"),
            (3, "Playing alone, **alice** takes the lowest-roll drink."),
        ] {
            let mut game = Game::new(
                GameId::parse("g1").expect("id"),
                ChannelId::new(10),
                ScopeId::new(20).expect("id"),
                SessionId::parse("s1").expect("id"),
                alice,
                "alice",
                t0,
            );
            game.begin(alice, &Rules::default(), t0).expect("begin");
            let dice = ScriptedDice::new(None);
            dice.script(alice, &[face]);
            let outcome = game.roll(alice, &dice, t0).expect("roll");
            assert_eq!(outcome.effects.drinks.len(), 1, "a {face}");
            let reply = roll_reply(&game, alice, &outcome, &dice).content;
            assert!(reply.contains(says), "a {face}: {reply}");
            let message = render_game(&game, None).content;
            for (text, what) in [(&reply, "reply"), (&message, "message")] {
                for contradiction in [
                    "Pick who drinks",
                    "rolled lowest and drinks",
                    "wins",
                    "Winner",
                ] {
                    assert!(!text.contains(contradiction), "a {face}, {what}: {text}");
                }
                for line in Event::Crit.lines().iter().chain(Event::GameOver.lines()) {
                    let start = line.split('{').next().unwrap_or_default();
                    assert!(
                        start.len() < 8 || !text.contains(start),
                        "a {face}, {what}: {text}"
                    );
                }
            }
            assert_eq!(
                message.contains("Lowest roll: **alice** drinks."),
                face == 3,
                "a {face}: {message}"
            );
        }
    }

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(
            sentence("you have already rolled"),
            "You have already rolled."
        );
    }
}
