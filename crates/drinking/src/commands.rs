//! Discord handlers: `/ronnied start|leaderboard|newsession|abandon`, the Join, Begin,
//! Roll and Pay buttons of the game message and the select menu that hands out a drink.
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
    Action, ButtonStyle, ChannelId, CommandSpec, Component, Discord, Handler, HandlerError,
    Invocation, MessageId, OptionSpec, Reply, Response, SelectOption, UserId,
};
use store::StorageError;

use crate::domain::{
    self, DiceSource, DrinkReason, Effects, Game, GameId, GameStatus, Participant,
    ParticipantStatus, RollOffKind, RollOutcome, ScopeId, StickyDice,
};
use crate::repo::{Board, Repo, RepoError, Step};

/// The slash command and the component prefix.
pub const COMMAND: &str = "ronnied";
pub const PREFIX: &str = "ronnied";

/// Leaderboard lines shown at most (Discord messages hold 2000 characters).
const LEADERBOARD_ROWS: usize = 20;

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
}

/// What a component does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    Join,
    Begin,
    Roll,
    Pay,
    /// The select menu that picks who drinks for a 6.
    Assign,
}

impl Press {
    fn name(self) -> &'static str {
        match self {
            Press::Join => "join",
            Press::Begin => "begin",
            Press::Roll => "roll",
            Press::Pay => "pay",
            Press::Assign => "assign",
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
    slots: Mutex<HashMap<GameId, Slot>>,
}

struct Slot {
    /// The newest rendering: version, where, what.
    latest: (u64, ChannelId, MessageId, Reply),
    shown: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(discord: Discord) -> Arc<Publisher> {
        Arc::new(Publisher {
            discord,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// Shows `game` in its public message, unless a newer version was already shown.
    /// Returns at once; the edit happens on a background task.
    pub fn publish(self: &Arc<Self>, game: &Game) {
        let Some(message) = game.message_id else {
            return;
        };
        let reply = render_game(game);
        let latest = (game.version, game.channel_id, message, reply);
        let start = {
            let Ok(mut slots) = self.slots.lock() else {
                return;
            };
            match slots.get_mut(&game.id) {
                Some(slot) => {
                    if latest.0 > slot.latest.0 {
                        slot.latest = latest;
                    }
                    false
                }
                None => {
                    slots.insert(game.id.clone(), Slot { latest, shown: 0 });
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
                match slots.get(&id) {
                    Some(slot) if slot.latest.0 > slot.shown => Some(slot.latest.clone()),
                    _ => {
                        slots.remove(&id);
                        None
                    }
                }
            };
            let Some((version, channel, message, reply)) = next else {
                return;
            };
            if let Err(error) = self.discord.edit(channel, message, &reply).await {
                tracing::warn!(game = %id, %error, "could not edit the game message");
            }
            if let Ok(mut slots) = self.slots.lock()
                && let Some(slot) = slots.get_mut(&id)
            {
                slot.shown = version;
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
            repo,
            clock,
            dice,
            publisher: Publisher::new(discord),
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
            Some("start") => {
                let game = self
                    .repo
                    .create_game(channel, scope, player, &name, now)
                    .await
                    .map_err(handler_error)?;
                Ok(Response::Message(render_game(&game)))
            }
            Some("leaderboard") => {
                let board = self.repo.leaderboard(scope).await.map_err(handler_error)?;
                Ok(Response::Message(render_leaderboard(&board)))
            }
            Some("newsession") => {
                self.repo
                    .new_session(scope, player, now)
                    .await
                    .map_err(handler_error)?;
                Ok(Response::Message(Reply::text(format!(
                    "🆕 **New session** started by **{name}**. The leaderboard starts from zero."
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
            other => Err(HandlerError::user(format!(
                "Unknown subcommand {}.",
                other.unwrap_or("(none)")
            ))),
        }
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
                let updated = self
                    .repo
                    .update_game(&id.game, Some(message), |game| {
                        let outcome = game.roll(player, &dice, now)?;
                        let effects = outcome.effects.clone();
                        let doc = domain::player_doc(game, player, Some(outcome.die), now);
                        Ok(Step::new(outcome, effects).with_player(doc))
                    })
                    .await
                    .map_err(handler_error)?;
                self.publisher.publish(&updated.game);
                Ok(Response::Message(roll_reply(
                    &updated.game,
                    player,
                    &updated.value,
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
                let mut text = format!(
                    "🍺 You handed a drink to **{}**.",
                    participant_name(&updated.game, target)
                );
                summarize(&mut text, &updated.game, player, &updated.effects);
                Ok(Response::Update(Reply::private(text)))
            }
            Press::Pay => {
                let (drink, still_owed) = self
                    .repo
                    .pay(&id.game, player, now)
                    .await
                    .map_err(handler_error)?;
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
        DrinkReason::CriticalHit => "handed to you for a 6",
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

/// The private answer to a Roll press.
fn roll_reply(game: &Game, player: UserId, outcome: &RollOutcome) -> Reply {
    let mut text = String::new();
    if let Some(kind) = outcome.roll_off {
        let _ = write!(text, "**Roll-off ({})** · ", kind_text(kind));
    }
    let die = outcome.die.get();
    match die {
        6 if outcome.must_assign => {
            let _ = write!(text, "💥 You rolled **6**! Pick who drinks:");
        }
        6 => {
            let _ = write!(
                text,
                "💥 You rolled **6**, and you're alone, so you drink it yourself 🍺"
            );
        }
        1 => {
            let _ = write!(text, "💀 You rolled **1**: critical fail, drink up 🍺");
        }
        n => {
            let _ = write!(text, "🎲 You rolled **{n}**.");
        }
    }
    summarize(&mut text, game, player, &outcome.effects);
    let mut reply = Reply::private(text);
    if outcome.must_assign {
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
        reply = reply.row(vec![Component::Select {
            custom_id: custom_id(Press::Assign, &game.id),
            placeholder: "Who drinks?".to_owned(),
            options,
        }]);
    }
    reply
}

/// Adds what the action set in motion: roll-offs, who drinks, the end of the game.
fn summarize(text: &mut String, game: &Game, player: UserId, effects: &Effects) {
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
    }
    if !effects.lowest.is_empty() {
        let _ = write!(
            text,
            "\n🍺 {} rolled lowest and drinks.",
            names(game, &effects.lowest)
        );
    }
    if let Some(winner) = effects.winner {
        let _ = write!(text, "\n🏆 {} wins the round.", names(game, &[winner]));
    }
    if effects.completed {
        text.push_str(
            "\n🏁 Game over. Press **Pay** on the game message once you've had a drink you owe.",
        );
    }
}

fn roll_cell(p: &Participant) -> String {
    match (p.roll, p.status) {
        (None, _) => "⏳ to roll".to_owned(),
        (Some(d), ParticipantStatus::NeedsToAssign) => format!("🎲 {d} 💥 picking who drinks…"),
        (Some(d), _) if d.get() == 6 => format!("🎲 {d} 💥"),
        (Some(d), _) if d.get() == 1 => format!("🎲 {d} 💀"),
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
            let _ = write!(out, "\n{indent}• {} — {}", p.name, roll_cell(p));
        }
        render_roll_offs(out, child, depth + 1);
    }
}

/// Who took the `lowest_roll` drink, read from the tree: the single lowest roller of the
/// game, or of its lowest roll-off, recursively.
fn lowest_loser(game: &Game) -> Option<UserId> {
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

/// The public game message.
pub fn render_game(game: &Game) -> Reply {
    let creator = participant_name(game, game.creator_id);
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
                "🎲 **Ronnied** · waiting for players ({count} in)\nStarted by **{creator}**. Press **Join** to play; **{creator}** presses **Begin**.\n6 = hand out a drink · 1 = drink · lowest roll drinks.",
            );
        }
        GameStatus::Active => {
            let _ = write!(
                text,
                "🎲 **Ronnied** · rolling ({rolled}/{} rolled)\nEveryone presses **Roll**. 6 = hand out a drink · 1 = drink.",
                game.participants.len()
            );
        }
        GameStatus::RollOff => {
            text.push_str("🎲 **Ronnied** · roll-off! Tied players press **Roll**.");
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
            let _ = write!(text, "\n• {} — {}", p.name, roll_cell(p));
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
        text.push_str("\nPress **Pay** once you've had a drink you owe.");
    }
    if let Some(forcer) = game.force_started_by {
        let _ = write!(
            text,
            "\n⏰ Force-started by **{}**: **{creator}** owes a drink.",
            participant_name(game, forcer)
        );
    }
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
        ],
        GameStatus::Completed => vec![Component::button(
            custom_id(Press::Pay, &game.id),
            "Pay",
            ButtonStyle::Secondary,
        )],
    };
    Reply::text(text).row(row)
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

/// Routes `/ronnied`.
pub struct CommandHandler(pub Arc<Commands>);
/// Routes `ronnied:*` components.
pub struct ComponentHandler(pub Arc<Commands>);

impl std::fmt::Debug for CommandHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommandHandler")
    }
}
impl std::fmt::Debug for ComponentHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ComponentHandler")
    }
}

impl Handler for CommandHandler {
    fn handle(
        &self,
        invocation: Invocation,
    ) -> discord::BoxFuture<'static, Result<Response, HandlerError>> {
        let commands = Arc::clone(&self.0);
        Box::pin(async move { commands.command(invocation).await })
    }
}

impl Handler for ComponentHandler {
    fn handle(
        &self,
        invocation: Invocation,
    ) -> discord::BoxFuture<'static, Result<Response, HandlerError>> {
        let commands = Arc::clone(&self.0);
        Box::pin(async move { commands.component(invocation).await })
    }
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

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(
            sentence("you have already rolled"),
            "You have already rolled."
        );
    }
}
