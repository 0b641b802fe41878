//! Ids, documents and pure rules: characters, the initiative tracker, and the text
//! users see. No I/O, so every rule here is tested without Redis or Discord. Where the
//! documents are stored, and under which key, is [`crate::schema`]'s business.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod combat;
pub mod import;

/// Discord snowflakes, typed. They serialise as decimal strings (so JavaScript clients
/// do not lose precision) and read numbers too.
pub use discord::model::{ChannelId, MessageId, UserId};

/// Most characters one user may have (the original's limit).
pub const MAX_CHARACTERS: usize = 9;

/// Most entries in one channel's initiative tracker. Twenty keeps the tracker
/// message within Discord's 2,000 characters even at its longest (32-character
/// names, 20-digit initiatives and user ids): see `a_full_tracker_fits_one_message`.
pub const MAX_TRACKER_ENTRIES: usize = 20;

/// Discord's limit on the content of one message, in characters.
pub const DISCORD_MESSAGE_MAX: usize = 2000;

/// A user whose identity was proven, and so may be added to `user_set`.
///
/// Only proof makes one: Discord signs every interaction it delivers, so the actor
/// of an [`Invocation`] is authenticated ([`Authenticated::by_discord`]); a web
/// session was signed in through Discord's OAuth2, so its user is too
/// ([`Authenticated::signed_in`]). A user id a request merely names (an API token's
/// `?user=`) is a [`Caller::Claimed`], which the repositories never add to `user_set`.
///
/// [`Invocation`]: discord::Invocation
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    user: UserId,
}

impl Authenticated {
    /// The user who acted in a Discord interaction.
    pub fn by_discord(invocation: &discord::Invocation) -> Authenticated {
        Authenticated {
            user: invocation.actor.id,
        }
    }

    /// The user of a signed-in web session (logged in through Discord's OAuth2);
    /// `None` for a program's API token, which proves no user.
    pub fn signed_in(caller: &feature::access::Caller) -> Option<Authenticated> {
        caller.user().map(|user| Authenticated { user: user.id })
    }

    pub fn user(&self) -> UserId {
        self.user
    }
}

/// Who a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Proven (a Discord interaction): counted and added to `user_set`.
    Authenticated(Authenticated),
    /// Only named by the request: counted, never added to `user_set`.
    Claimed(UserId),
}

impl Caller {
    /// The user the request is for, proven or not.
    pub fn user(&self) -> UserId {
        match self {
            Caller::Authenticated(who) => who.user(),
            Caller::Claimed(user) => *user,
        }
    }

    /// The proven user, if any.
    pub fn authenticated(&self) -> Option<Authenticated> {
        match self {
            Caller::Authenticated(who) => Some(*who),
            Caller::Claimed(_) => None,
        }
    }
}

impl From<Authenticated> for Caller {
    fn from(who: Authenticated) -> Caller {
        Caller::Authenticated(who)
    }
}

/// A user's personal data: characters, the active one, saved rolls.
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
    /// Named expressions, edited and rolled with `/saved` ([`crate::alias`]).
    #[serde(default)]
    pub saved_rolls: BTreeMap<String, String>,
    /// The user's aliases (`/alias`): name (lower case) to template with `{}`
    /// placeholders ([`crate::alias`]). Not written while empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One character of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Character {
    /// Added to the d20 when joining initiative without a roll.
    #[serde(default)]
    pub initiative_modifier: i64,
    /// The initiative expression rolled when joining without a roll (`1d20+3`,
    /// `2d20kh1+3` for advantage); without one, `1d20` plus the modifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiative: Option<String>,
}

impl Character {
    /// What joining initiative rolls for this character.
    pub fn initiative_expression(&self) -> String {
        match &self.initiative {
            Some(expression) => expression.clone(),
            None if self.initiative_modifier == 0 => "1d20".to_owned(),
            None => format!("1d20{:+}", self.initiative_modifier),
        }
    }
}

/// A channel's initiative tracker. The seed left its shape open ("Not sure what this
/// will look like yet"); this is it:
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
    /// Initiative is rolled again at the top of every round (`/init reroll on`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reroll: bool,
    /// Someone pressed Next (or skipped): the fight has begun, even when `prev` or a
    /// move brought the turn back to the top of round 1. Absent in trackers stored
    /// before it was kept; `combat::started` then infers it as it did (past round
    /// 1 or past the top), which a tracker that has not begun always is not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub started: bool,
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
            reroll: false,
            started: false,
        }
    }
}

/// One combatant in a tracker. The combat fields ([`combat::Combatant`]: hit points,
/// effects, group, …) sit beside these in the same JSON object, each only when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub user: UserId,
    pub initiative: i64,
    #[serde(flatten)]
    pub combat: combat::Combatant,
}

/// Longest character name; keeps button labels and custom ids within Discord's limits.
pub const MAX_NAME_LEN: usize = 32;

/// A request the user can fix: shown to them as is. A refusal because something the
/// request names is not there ([`Refusal::missing`]: a roll id, an alias, a command,
/// an entry of the tracker) is a 404 over REST, one because it belongs to someone else
/// ([`Refusal::not_yours`]: another player's combatant) a 403, any other a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    message: String,
    kind: RefusalKind,
}

/// Why a [`Refusal`] refuses, for the REST status it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request cannot be done as asked (400).
    Cannot,
    /// Something it names is not there (404).
    Missing,
    /// What it names is someone else's to change (403).
    NotYours,
}

impl Refusal {
    /// The request cannot be done as asked, for the reason `message` gives.
    pub fn new(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            kind: RefusalKind::Cannot,
        }
    }

    /// Something the request names is not there, as `message` says.
    pub fn missing(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            kind: RefusalKind::Missing,
        }
    }

    /// What the request names is someone else's to change, as `message` says.
    pub fn not_yours(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            kind: RefusalKind::NotYours,
        }
    }

    /// Why it refuses.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// Whether it names something that is not there.
    pub fn is_missing(&self) -> bool {
        self.kind == RefusalKind::Missing
    }

    /// The sentence shown to the user.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The sentence, taken.
    pub fn into_message(self) -> String {
        self.message
    }
}

fn refuse<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::new(message))
}

/// Refuses because what the request names is not there ([`Refusal::missing`]).
fn missing<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::missing(message))
}

/// Trims and checks a character name.
pub fn clean_name(name: &str) -> Result<String, Refusal> {
    clean_named(name, "character")
}

/// Trims and checks the name of a `what` (`character`, `combatant`, `group`): the
/// refusal names what it was.
pub fn clean_named(name: &str, what: &str) -> Result<String, Refusal> {
    let name = name.trim();
    let mut title = what.chars();
    let title: String = title
        .next()
        .map(|c| c.to_uppercase().chain(title).collect())
        .unwrap_or_default();
    if name.is_empty() {
        return refuse(format!("A {what} needs a name."));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return refuse(format!(
            "{title} names are at most {MAX_NAME_LEN} characters; `{name}` has {}.",
            name.chars().count()
        ));
    }
    if name.chars().any(char::is_control) {
        return refuse(format!("{title} names cannot contain control characters."));
    }
    if what == "character" && name.contains([',', ';']) {
        return refuse(format!(
            "Character names cannot contain `,` or `;` (`{name}`): they separate characters in `/character import`."
        ));
    }
    Ok(name.to_owned())
}

/// User-given text (a character's, combatant's, group's or effect's name, a note) as
/// Discord shows it literally (Markdown and mentions escaped). Every message that shows
/// such a name outside a code span goes through this one function.
pub use discord::markdown::escape;

/// The stored name matching `name`, ignoring case (users type names loosely).
pub fn find_character<'d>(doc: &'d UserDoc, name: &str) -> Option<(&'d str, &'d Character)> {
    let wanted = name.trim().to_lowercase();
    doc.characters
        .iter()
        .find(|(n, _)| n.to_lowercase() == wanted)
        .map(|(n, c)| (n.as_str(), c))
}

/// Said when `doc` has no character called `name`: which ones there are.
pub fn no_such_character(doc: &UserDoc, name: &str) -> String {
    let name = name.trim();
    if doc.characters.is_empty() {
        return format!(
            "You have no character named `{name}`; you have no characters yet. Add one with `/character add` (or use `/init add` for a combatant you run)."
        );
    }
    let names: Vec<String> = doc.characters.keys().map(|n| format!("`{n}`")).collect();
    format!(
        "You have no character named `{name}`. Yours: {}.",
        names.join(", ")
    )
}

/// Adds (or updates) a character. The first character becomes the active one.
pub fn add_character(doc: &mut UserDoc, name: &str, modifier: i64) -> Result<String, Refusal> {
    let name = clean_name(name)?;
    if !(-100..=100).contains(&modifier) {
        return refuse("The initiative modifier must be between -100 and 100.");
    }
    let existing = find_character(doc, &name).map(|(n, _)| n.to_owned());
    let key = match existing {
        Some(existing) => existing,
        None => {
            if doc.characters.len() >= MAX_CHARACTERS {
                return refuse(format!(
                    "You already have {MAX_CHARACTERS} characters, the most allowed. Remove one with `/character remove` first."
                ));
            }
            name
        }
    };
    doc.characters.insert(
        key.clone(),
        Character {
            initiative_modifier: modifier,
            initiative: None,
        },
    );
    if doc.active_character.is_none() {
        doc.active_character = Some(key.clone());
    }
    Ok(key)
}

/// Removes a character; the active one falls back to the first remaining.
pub fn remove_character(doc: &mut UserDoc, name: &str) -> Result<String, Refusal> {
    let Some((key, _)) = find_character(doc, name) else {
        return refuse(no_such_character(doc, name));
    };
    let key = key.to_owned();
    doc.characters.remove(&key);
    if doc.active_character.as_deref() == Some(key.as_str()) {
        doc.active_character = doc.characters.keys().next().cloned();
    }
    Ok(key)
}

/// Makes `name` the active character.
pub fn set_active(doc: &mut UserDoc, name: &str) -> Result<String, Refusal> {
    let Some((key, _)) = find_character(doc, name) else {
        return refuse(no_such_character(doc, name));
    };
    let key = key.to_owned();
    doc.active_character = Some(key.clone());
    Ok(key)
}

/// The active character with its modifier, if any.
pub fn active(doc: &UserDoc) -> Option<(&str, &Character)> {
    doc.active_character
        .as_deref()
        .and_then(|name| find_character(doc, name))
}

/// Adds `entry` to the tracker, or replaces the same user's entry of the same name.
/// Once the fight has started (someone pressed Next) the current turn stays on the same
/// combatant; before that, the highest initiative is first up. A tracker already
/// holding [`MAX_TRACKER_ENTRIES`] takes no new entry (replacing one is fine).
pub fn join(tracker: &mut Tracker, entry: Entry) -> Result<(), Refusal> {
    let replaces = |e: &Entry| e.user == entry.user && e.name.eq_ignore_ascii_case(&entry.name);
    if tracker.entries.len() >= MAX_TRACKER_ENTRIES && !tracker.entries.iter().any(replaces) {
        return refuse(format!(
            "This channel's initiative already has {MAX_TRACKER_ENTRIES} entries, the most it can show. Remove one with `/init remove` or start over with `/init reset`."
        ));
    }
    let current = if combat::started(tracker) {
        current_key(tracker)
    } else {
        None
    };
    tracker.entries.retain(|e| !replaces(e));
    tracker.entries.push(entry);
    // Stable: ties keep join order (and groups stay together).
    combat::sort(tracker);
    restore_turn(tracker, current);
    Ok(())
}

/// What [`leave`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// The removed entry's name.
    pub name: String,
    /// Set when the entry left on its own turn (the last of its unit): its turn ended
    /// as with Next, effects ticking, and the next unit is up (past the last, a new
    /// round started).
    pub turn: Option<combat::TurnReport>,
}

/// Removes `user`'s entry called `name` (any of theirs if `name` is `None`: the most
/// recently sorted last).
///
/// Whose turn it is stays with the same combatant when someone else leaves (the
/// index shifts when an earlier one goes). A combatant leaving on its own turn ends
/// that turn as Next would ([`combat::next`], effects ticking, `rerolls` used when the
/// turn wraps with reroll on): the next one is up, and after the last in the order the
/// next round starts at the top, so nobody acts twice in a round. A group member
/// leaving keeps the turn with the rest of its group.
pub fn leave(
    tracker: &mut Tracker,
    user: UserId,
    name: Option<&str>,
    rerolls: Option<&combat::Rerolls>,
) -> Result<Left, Refusal> {
    let position = tracker.entries.iter().rposition(|e| {
        e.user == user && name.is_none_or(|n| e.name.eq_ignore_ascii_case(n.trim()))
    });
    let Some(position) = position else {
        // Someone else's (that the caller may see): say whose, and who may remove it.
        let theirs = name.and_then(|n| {
            tracker
                .entries
                .iter()
                .find(|e| e.name.eq_ignore_ascii_case(n.trim()) && combat::visible_to(e, user))
        });
        return match (name, theirs) {
            (_, Some(e)) => Err(Refusal::not_yours(format!(
                "`{}` is <@{}>'s: only whoever added a combatant removes it (or `/init reset` clears the whole tracker).",
                e.name, e.user
            ))),
            (Some(n), None) => missing(format!(
                "`{}` is not in this channel's initiative.{}",
                n.trim(),
                combat::group_hint(tracker, user, n)
            )),
            (None, None) => missing("You are not in this channel's initiative."),
        };
    };
    let leaving = (
        tracker.entries[position].user,
        tracker.entries[position].name.clone(),
    );
    let unit = combat::current_range(tracker);
    let mut turn = None;
    if combat::started(tracker)
        && unit.contains(&position)
        && unit.len() == 1
        && tracker.entries.len() > 1
    {
        // Leaving on its own turn: the turn ends and passes on. (Before the fight has
        // begun nobody's turn is running: the next at the top is simply up, unannounced.)
        turn = Some(combat::next(tracker, rerolls)?);
    }
    // Who is up once `leaving` is gone: the unit now up, by one of its other members.
    let keep = combat::current(tracker)
        .iter()
        .find(|e| (e.user, &e.name) != (leaving.0, &leaving.1))
        .map(|e| (e.user, e.name.clone()));
    let at = tracker
        .entries
        .iter()
        .position(|e| e.user == leaving.0 && e.name == leaving.1)
        .unwrap_or(position);
    let removed = tracker.entries.remove(at);
    restore_turn(tracker, keep);
    Ok(Left {
        name: removed.name,
        turn,
    })
}

/// Moves to the next turn; wrapping starts a new round ([`combat::next`] without a
/// reroll).
pub fn next_turn(tracker: &mut Tracker) -> Result<(), Refusal> {
    combat::next(tracker, None).map(|_| ())
}

/// Clears the tracker, keeping the message it is shown in.
pub fn reset(tracker: &mut Tracker) {
    let message_id = tracker.message_id;
    *tracker = Tracker {
        message_id,
        ..Tracker::default()
    };
}

fn current_key(tracker: &Tracker) -> Option<(UserId, String)> {
    tracker
        .entries
        .get(tracker.turn)
        .map(|e| (e.user, e.name.clone()))
}

fn restore_turn(tracker: &mut Tracker, current: Option<(UserId, String)>) {
    tracker.turn = current
        .and_then(|(user, name)| {
            tracker
                .entries
                .iter()
                .position(|e| e.user == user && e.name == name)
        })
        .map_or(0, |i| combat::unit_start(tracker, i));
}

/// The tracker as the channel sees it, in Discord Markdown: sorted, the current turn
/// marked with ▶, hidden combatants as `???` ([`combat::render`] of
/// [`combat::public_view`]).
pub fn render_tracker(tracker: &Tracker) -> String {
    combat::render(&combat::public_view(tracker))
}

/// The character list as Markdown; the active one is marked with ★.
pub fn render_characters(doc: &UserDoc) -> String {
    if doc.characters.is_empty() {
        return "You have no characters yet. Add one with `/character add`.".to_owned();
    }
    let active = active(doc).map(|(n, _)| n.to_owned());
    let mut out = format!(
        "**{}** ({}/{MAX_CHARACTERS})\n",
        import::HEADING,
        doc.characters.len()
    );
    for (name, c) in &doc.characters {
        let shown = escape(name);
        let marker = if Some(name) == active.as_ref() {
            "★"
        } else {
            "•"
        };
        match &c.initiative {
            Some(expression) => {
                let expression = escape(expression);
                out.push_str(&format!("{marker} {shown} (initiative {expression})\n"));
            }
            None => out.push_str(&format!(
                "{marker} {shown} (initiative {:+})\n",
                c.initiative_modifier
            )),
        }
    }
    out.push_str(PICK_ACTIVE);
    out
}

/// `text` as a Discord inline code span that shows it as written, backticks and all:
/// fenced by one backtick more than its longest run of them, with a space inside the
/// fence when it begins or ends with one (Discord takes one such space off).
pub fn code_span(text: &str) -> String {
    let text = text.replace('\n', " ");
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// The last line of [`render_characters`].
pub const PICK_ACTIVE: &str = "Pick the active character with the buttons below.";

/// `text` as one Discord message of at most `limit` characters: as it is when it
/// fits; otherwise its middle is cut, so the head (what was asked) and the tail (a
/// roll's total, its critical or fumble line and its roll id) stay whole. The cut
/// falls between lines, marked with `…` and `note` (which says it was cut and where
/// the whole answer is) on lines of their own; a code block open at the cut is closed
/// before it and opened again after it. Text with too few lines for that is cut at
/// the end (at the last line break, else the last space) with `…` and the note.
pub fn fit_message(text: &str, limit: usize, note: &str) -> String {
    let count = |s: &str| s.chars().count();
    if count(text) <= limit {
        return text.to_owned();
    }
    // Room for "…", the note, their line breaks and a code fence on each side.
    let room = limit.saturating_sub(count(note) + 12);
    let lines: Vec<&str> = text.lines().collect();
    // The tail: the last lines, up to a third of the room.
    let mut tail_len = 0;
    let mut tail_from = lines.len();
    while tail_from > 1 {
        let line = count(lines[tail_from - 1]) + 1;
        if tail_len + line > room / 3 {
            break;
        }
        tail_len += line;
        tail_from -= 1;
    }
    // The head: the first lines that fit beside the tail.
    let mut head_len = 0;
    let mut head_to = 0;
    while head_to < tail_from {
        let line = count(lines[head_to]) + 1;
        if head_len + line > room - tail_len {
            break;
        }
        head_len += line;
        head_to += 1;
    }
    if head_to == 0 || tail_from >= lines.len() {
        return fit_end(text, room, note);
    }
    let head = lines[..head_to].join("\n");
    let tail = lines[tail_from..].join("\n");
    let mut out = head.trim_end().to_owned();
    let open = out.matches("```").count() % 2 == 1;
    if open {
        out.push_str("\n```");
    }
    out.push_str("\n…\n");
    out.push_str(note);
    out.push('\n');
    if open || tail.matches("```").count() % 2 == 1 {
        out.push_str("```\n");
    }
    out.push_str(&tail);
    if out.matches("```").count() % 2 == 1 {
        out.push_str("\n```");
    }
    out
}

/// `text` cut at the end to `room` characters, with `…` and `note`.
fn fit_end(text: &str, room: usize, note: &str) -> String {
    let end = text
        .char_indices()
        .nth(room)
        .map_or(text.len(), |(at, _)| at);
    let kept = text.get(..end).unwrap_or_default();
    let kept = match kept.rfind('\n') {
        Some(at) if at > 0 => kept.get(..at).unwrap_or_default(),
        _ => match kept.rfind(' ') {
            Some(at) if at > 0 => kept.get(..at).unwrap_or_default(),
            _ => kept,
        },
    };
    let mut out = kept.trim_end().to_owned();
    out.push('…');
    if out.matches("```").count() % 2 == 1 {
        out.push_str("\n```");
    }
    out.push('\n');
    out.push_str(note);
    out
}

/// The commands `/help` knows, with their usage and a description.
pub const HELP: &[(&str, &str, &str)] = &[
    (
        "roll",
        "/roll expression [private] [mode]",
        "Roll dice, e.g. `4d6kh3`, `1d20+5 >= 15 then 2d6+3`, `adv + 4` (also `dis`, or `eadv` for Elven Accuracy; advantage and disadvantage together cancel out), or your aliases (`attack`, `hit 5 15`). The `private` option (`private:True`) shows the result only to you. The `mode` option: `mode:gm` shows it to you and the GM, `mode:blind` to the GM only. A natural 20 on a d20 is a critical, a natural 1 a fumble; a roll without a d20 notes the highest face or the 1 of a single die the same way, naming it (`8 on the d8`). Every roll has a roll id for `/roll-check`.",
    ),
    (
        "odds",
        "/odds expression",
        "The odds of an expression: mean, spread, percentiles and the chance a comparison succeeds, with a bar chart of the distribution (passing outcomes in green).",
    ),
    (
        "roll-check",
        "/roll-check id",
        "Look up a roll of the last 30 days by its roll id: expression, seed, time, user and result, replayed with its seed.",
    ),
    (
        "alias",
        "/alias add name expression [server] | remove name [server] | list [server]",
        "Names for expressions, used in `/roll`: `attack` -> `1d20+7`; `{}` or `{1}`, `{2}` are filled from the words after the name (`hit` -> `1d20+{} >= {}`, then `/roll hit 5 15`). Yours shadow the server's; `server` ones need Manage Server to change.",
    ),
    (
        "saved",
        "/saved add name expression | remove name | list | use name [mode]",
        "Your saved rolls (at most 25), rolled by name with `use`.",
    ),
    (
        "gm",
        "/gm set | clear | show | role [role]",
        "The channel's GM, who receives `mode:gm` and `mode:blind` rolls: `set` makes you the GM; `role` (Manage Server) names a server role whose members are GMs where a channel has none.",
    ),
    (
        "init",
        "/init join | add | hp | damage | heal | effect | note | opt | next | prev | move | skip | reroll | view | get | remove | reset",
        "A per-channel combat tracker, one message edited in place, with **Join** and **Next** buttons. Joining without a roll rolls your active character's initiative (1d20 plus its modifier, or its expression). A `roll` or `initiative` of `15` is fixed; `+3` / `-1` add to 1d20; `adv+2` rolls 2d20kh1+2. `add goblin x3 group:goblins hp:7 ac:15` adds monsters (`hidden` shows them as ???; `view` shows them to you; a name in quotes, `\"Hidden Ogre\"`, is taken whole). `hp name 25|+5|-5`, `damage name 2d6+3` (temporary hit points first; a concentrating combatant gets a save of DC max(10, half the damage)), `heal name 1d8`; a name two other players' combatants share says whose: `goblin (@Alice)`. `effect add|remove|drop name effect [duration]`: an effect of N rounds ends at the end of its caster's turn N rounds later. `reroll on` rolls initiative again each round; `skip [rounds]` jumps to the top of a later round.",
    ),
    (
        "character",
        "/character add name [initiative-modifier] [initiative] | import data | remove name | list",
        "Your characters (at most 9). `initiative` takes an expression such as `1d20+3` or `2d20kh1+3` (advantage). `import` takes Feyre's user JSON, or `Vex +3, Percy -1` (separated by commas, semicolons or lines; `/character list`'s answer pasted works too). `list` shows buttons to pick the active character used by `/init join`.",
    ),
    (
        "stats",
        "/stats [all]",
        "How often each command was used, the total and the number of users. `all` also lists unused commands.",
    ),
    ("help", "/help [command]", "This help."),
];

/// Where `/help` was asked: what Discord offers there is what it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelpPlace {
    /// A server's channel (and the REST API): every command.
    Server,
    /// A direct message with the bot: not the commands offered in servers only.
    DirectMessage,
}

/// `/help` or `/help command` over this feature's commands alone (what `/help` says
/// when the catalogue of every feature is empty).
pub fn help(command: Option<&str>) -> Result<String, Refusal> {
    help_all(command, &[], HelpPlace::Server)
}

/// The heading of a feature's commands in `/help`.
fn feature_title(feature: &str) -> String {
    match feature {
        "rolls" => "Dice and initiative".to_owned(),
        "drinking" => "Drinking game".to_owned(),
        other => {
            let mut chars = other.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }
}

/// How a catalogued command is written: `/ronnied start|tab`, `/link-meetup url [x]`.
fn usage_of(entry: &feature::CommandEntry) -> String {
    let mut usage = format!("/{}", entry.name);
    if !entry.subcommands.is_empty() {
        let subs: Vec<&str> = entry.subcommands.iter().map(|(n, _)| n.as_str()).collect();
        usage.push(' ');
        usage.push_str(&subs.join("|"));
    }
    for (name, _, required) in &entry.options {
        if *required {
            usage.push_str(&format!(" {name}"));
        } else {
            usage.push_str(&format!(" [{name}]"));
        }
    }
    usage
}

/// `/help` or `/help command` over every feature's commands (`features`, from the
/// kit's catalogue), grouped by feature. This feature's own commands keep their
/// hand-written usage and details from [`HELP`]; the others are described from what
/// they registered. With no features (a catalogue never filled) only [`HELP`] is shown.
pub fn help_all(
    command: Option<&str>,
    features: &[feature::FeatureCommands],
    place: HelpPlace,
) -> Result<String, Refusal> {
    let own = |name: &str| HELP.iter().find(|(n, _, _)| *n == name);
    // In a direct message, the commands Discord offers there (the others are named
    // after them, as a server's).
    let in_dm = place == HelpPlace::DirectMessage;
    let servers_only: Vec<String> = features
        .iter()
        .flat_map(|f| f.commands.iter())
        .filter(|c| c.guild_only)
        .map(|c| format!("`/{}`", c.name))
        .collect();
    let all_features = features;
    let filtered: Vec<feature::FeatureCommands>;
    let features = if in_dm {
        filtered = features
            .iter()
            .map(|f| feature::FeatureCommands {
                feature: f.feature.clone(),
                commands: f
                    .commands
                    .iter()
                    .filter(|c| !c.guild_only)
                    .cloned()
                    .collect(),
            })
            .filter(|f| !f.commands.is_empty())
            .collect();
        &filtered[..]
    } else {
        features
    };
    let in_servers = (in_dm && !servers_only.is_empty()).then(|| {
        format!(
            "\nIn a server's channels there are also {}.",
            servers_only.join(", ")
        )
    });
    match command.map(|c| c.trim().trim_start_matches('/').to_lowercase()) {
        None => {
            let mut out = String::new();
            if features.is_empty() {
                out.push_str("**Dice and initiative**\n");
                for (_, usage, _) in HELP {
                    out.push_str(&format!("`{usage}`\n"));
                }
            }
            for group in features {
                out.push_str(&format!("**{}**\n", feature_title(&group.feature)));
                for entry in &group.commands {
                    match own(&entry.name) {
                        Some((_, usage, _)) => out.push_str(&format!("`{usage}`\n")),
                        None => {
                            out.push_str(&format!("`{}` {}\n", usage_of(entry), entry.description))
                        }
                    }
                }
            }
            out.push_str("Use `/help command` for details.");
            if let Some(more) = &in_servers {
                out.push_str(more);
            }
            if out.chars().count() > DISCORD_MESSAGE_MAX && !features.is_empty() {
                // Too long for one message: every command by name, a line per feature.
                out.clear();
                for group in features {
                    let usages: Vec<String> = group
                        .commands
                        .iter()
                        .map(|entry| format!("`{}`", usage_of(entry)))
                        .collect();
                    out.push_str(&format!(
                        "**{}** {}\n",
                        feature_title(&group.feature),
                        usages.join(" ")
                    ));
                }
                out.push_str("Use `/help command` for details.");
                if let Some(more) = &in_servers {
                    out.push_str(more);
                }
            }
            Ok(out)
        }
        Some(name) => {
            // Asked in a direct message of one offered in servers only: said so.
            let elsewhere = if in_dm && servers_only.contains(&format!("`/{name}`")) {
                "\nOffered in a server's channels only, not in direct messages."
            } else {
                ""
            };
            if let Some((_, usage, text)) = own(&name) {
                return Ok(format!("`{usage}`\n{text}{elsewhere}"));
            }
            let found = all_features
                .iter()
                .flat_map(|f| f.commands.iter())
                .find(|c| c.name == name);
            match found {
                Some(entry) => {
                    let mut out = format!("`{}`\n{}", usage_of(entry), entry.description);
                    for (sub, description) in &entry.subcommands {
                        out.push_str(&format!("\n`/{} {sub}` {description}", entry.name));
                    }
                    for (option, description, required) in &entry.options {
                        let optional = if *required { "" } else { " (optional)" };
                        out.push_str(&format!("\n`{option}`{optional}: {description}"));
                    }
                    out.push_str(elsewhere);
                    Ok(out)
                }
                None => {
                    let mut known: Vec<&str> = HELP.iter().map(|(n, _, _)| *n).collect();
                    for entry in all_features.iter().flat_map(|f| f.commands.iter()) {
                        if !known.contains(&entry.name.as_str()) {
                            known.push(&entry.name);
                        }
                    }
                    missing(format!(
                        "There is no command `{name}`. Try one of: {}.",
                        known.join(", ")
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_span_shows_backticks_as_written() {
        assert_eq!(code_span("1d20+5"), "`1d20+5`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("``x"), "``` ``x ```");
        assert_eq!(code_span("a\nb"), "`a b`");
    }

    /// A field this version does not know keeps its number bit for bit through a read
    /// and a write (found by the snapshot fuzz target: a float read back one unit in
    /// the last place off).
    #[test]
    fn unknown_numbers_survive_a_round_trip_bit_for_bit() {
        let number = "33333333333333333333333333333333";
        let raw = format!(r#"{{"characters":{{}},"cjaracters":{{"Vex":{number}}}}}"#);
        let doc: UserDoc = serde_json::from_str(&raw).expect("read");
        let written = serde_json::to_string(&doc).expect("write");
        let again: serde_json::Value = serde_json::from_str(&written).expect("read again");
        let exact: f64 = number.parse().expect("a float");
        assert_eq!(
            again["cjaracters"]["Vex"].as_f64().map(f64::to_bits),
            Some(exact.to_bits()),
            "{written}"
        );
    }

    fn entry(name: &str, user: u64, initiative: i64) -> Entry {
        Entry {
            name: name.into(),
            user: UserId::new(user),
            initiative,
            combat: combat::Combatant::default(),
        }
    }

    #[test]
    fn characters_are_limited_to_nine_and_the_first_is_active() {
        let mut doc = UserDoc::default();
        for i in 0..MAX_CHARACTERS {
            add_character(&mut doc, &format!("c{i}"), 1).expect("room");
        }
        assert_eq!(doc.active_character.as_deref(), Some("c0"));
        let err = add_character(&mut doc, "tenth", 0).expect_err("full");
        assert!(err.message().contains("9 characters"), "{err}");
        // Updating an existing one is still allowed.
        add_character(&mut doc, "C3", 5).expect("update");
        assert_eq!(doc.characters["c3"].initiative_modifier, 5);
        remove_character(&mut doc, "c0").expect("remove");
        assert_eq!(doc.active_character.as_deref(), Some("c1"));
        assert!(remove_character(&mut doc, "nobody").is_err());
        assert!(clean_name(&"x".repeat(33)).is_err());
    }

    #[test]
    fn tracker_sorts_keeps_the_current_turn_and_counts_rounds() {
        let mut t = Tracker::default();
        join(&mut t, entry("A", 1, 10)).expect("room");
        join(&mut t, entry("B", 2, 15)).expect("room");
        // Not started yet: the highest initiative is up.
        assert_eq!((t.entries[0].name.as_str(), t.turn), ("B", 0));
        next_turn(&mut t).expect("next");
        assert_eq!(t.entries[t.turn].name, "A");
        // Started: a higher roll joins ahead and it is still A's turn.
        join(&mut t, entry("C", 3, 20)).expect("room");
        assert_eq!(t.entries[t.turn].name, "A");
        next_turn(&mut t).expect("next");
        assert_eq!((t.turn, t.round), (0, 2));
        // Re-joining replaces.
        join(&mut t, entry("a", 1, 1)).expect("room");
        assert_eq!(t.entries.len(), 3);
        assert_eq!(t.entries[2].initiative, 1);
        assert_eq!(
            leave(&mut t, UserId::new(1), None, None)
                .expect("leave")
                .name,
            "a"
        );
        assert!(leave(&mut t, UserId::new(1), None, None).is_err());
        let text = render_tracker(&t);
        assert!(text.starts_with("**Initiative** — round 2"), "{text}");
        assert!(text.contains("▶ ` 20` C"), "{text}");
        reset(&mut t);
        assert!(t.entries.is_empty());
        assert!(next_turn(&mut t).is_err());
    }

    fn abc() -> Tracker {
        let mut t = Tracker::default();
        join(&mut t, entry("A", 1, 15)).expect("room");
        join(&mut t, entry("B", 2, 10)).expect("room");
        join(&mut t, entry("C", 3, 5)).expect("room");
        t
    }

    fn up(t: &Tracker) -> (&str, u32) {
        (t.entries[t.turn].name.as_str(), t.round)
    }

    /// Back at the top of round 1 with `prev`, the fight has still begun: a later
    /// join with a higher initiative keeps the turn on A instead of putting the
    /// newcomer first up as before the fight. The flag is stored and read back.
    #[test]
    fn a_fight_back_at_the_top_of_round_one_stays_begun() {
        let mut t = abc();
        next_turn(&mut t).expect("next");
        combat::prev(&mut t).expect("prev");
        assert_eq!(up(&t), ("A", 1));
        let mut t: Tracker =
            serde_json::from_str(&serde_json::to_string(&t).expect("json")).expect("read");
        assert!(t.started);
        join(&mut t, entry("D", 4, 20)).expect("room");
        assert_eq!(up(&t), ("A", 1), "A keeps the turn");
        assert_eq!(t.entries[0].name, "D");
    }

    /// A tracker stored before the flag reads as it did: at the top of round 1 it has
    /// not begun (a join of a higher initiative is first up); past it, it has.
    #[test]
    fn a_tracker_stored_without_the_flag_infers_it() {
        let fresh = r#"{"entries":[{"name":"A","user":"1","initiative":15}],"turn":0,"round":1}"#;
        let mut t: Tracker = serde_json::from_str(fresh).expect("old");
        assert!(!combat::started(&t));
        assert_eq!(serde_json::to_string(&t).expect("json"), fresh);
        join(&mut t, entry("D", 4, 20)).expect("room");
        assert_eq!(
            up(&t),
            ("D", 1),
            "the newcomer is first up before the fight"
        );

        let begun = r#"{"entries":[{"name":"A","user":"1","initiative":15},{"name":"B","user":"2","initiative":10}],"turn":1,"round":1}"#;
        let mut t: Tracker = serde_json::from_str(begun).expect("old");
        assert!(combat::started(&t));
        assert_eq!(serde_json::to_string(&t).expect("json"), begun);
        join(&mut t, entry("D", 4, 20)).expect("room");
        assert_eq!(up(&t), ("B", 1), "B keeps the turn");
    }

    /// The last in the order leaving on their own turn ends the round: the top of the
    /// next round is up (nobody acts twice in round 1), and the leaver's turn ends as
    /// with Next, so the effects it keeps the clock of tick.
    #[test]
    fn the_last_leaving_on_their_turn_starts_the_next_round() {
        let mut t = abc();
        next_turn(&mut t).expect("next");
        next_turn(&mut t).expect("next");
        assert_eq!(up(&t), ("C", 1));
        combat::add_effect(&mut t, UserId::new(3), 0, "Blessed", Some(1), None, false)
            .expect("effect");
        next_turn(&mut t).expect("next");
        next_turn(&mut t).expect("next");
        next_turn(&mut t).expect("next");
        assert_eq!(up(&t), ("C", 2));
        let left = leave(&mut t, UserId::new(3), None, None).expect("leave");
        assert_eq!(left.name, "C");
        let report = left.turn.expect("C's turn ended");
        assert_eq!(report.ended, [("Blessed".to_owned(), "A".to_owned())]);
        assert_eq!(up(&t), ("A", 3));
        next_turn(&mut t).expect("next");
        assert_eq!(up(&t), ("B", 3));
    }

    #[test]
    fn leaving_in_the_middle_or_before_the_turn_keeps_the_order() {
        // The current one in the middle: the next one is up, same round.
        let mut t = abc();
        next_turn(&mut t).expect("next");
        let left = leave(&mut t, UserId::new(2), None, None).expect("leave");
        assert!(left.turn.is_some());
        assert_eq!(up(&t), ("C", 1));
        // Someone before the current one: the same combatant keeps the turn.
        let mut t = abc();
        next_turn(&mut t).expect("next");
        next_turn(&mut t).expect("next");
        let left = leave(&mut t, UserId::new(1), None, None).expect("leave");
        assert!(left.turn.is_none());
        assert_eq!(up(&t), ("C", 1));
        // Someone after: nothing moves.
        let mut t = abc();
        next_turn(&mut t).expect("next");
        assert!(
            leave(&mut t, UserId::new(3), None, None)
                .expect("leave")
                .turn
                .is_none()
        );
        assert_eq!(up(&t), ("B", 1));
        // The only one: nobody is up, the round stays.
        let mut t = Tracker::default();
        join(&mut t, entry("A", 1, 15)).expect("room");
        next_turn(&mut t).expect("next");
        assert!(
            leave(&mut t, UserId::new(1), None, None)
                .expect("leave")
                .turn
                .is_none()
        );
        assert_eq!((t.entries.len(), t.turn, t.round), (0, 0, 2));
    }

    #[test]
    fn the_top_leaving_before_anyone_pressed_next_ends_no_turn() {
        let mut t = abc();
        combat::add_effect(&mut t, UserId::new(1), 1, "Blessed", Some(1), None, false)
            .expect("effect");
        let left = leave(&mut t, UserId::new(1), None, None).expect("leave");
        assert!(left.turn.is_none(), "no turn was running: {left:?}");
        assert_eq!(up(&t), ("B", 1));
        assert!(
            t.entries.iter().any(|e| !e.combat.effects.is_empty()),
            "nothing ended"
        );
        // A late joiner still takes the top, as before the fight begins.
        join(&mut t, entry("D", 4, 20)).expect("room");
        assert_eq!(up(&t), ("D", 1));
    }

    #[test]
    fn removing_someone_elses_entry_says_whose_it_is() {
        let mut t = abc();
        let err = leave(&mut t, UserId::new(2), Some("a"), None).expect_err("alice's");
        assert_eq!(
            err.message(),
            "`A` is <@1>'s: only whoever added a combatant removes it (or `/init reset` clears the whole tracker)."
        );
        let err = leave(&mut t, UserId::new(2), Some("nobody"), None).expect_err("absent");
        assert_eq!(
            err.message(),
            "`nobody` is not in this channel's initiative."
        );
        assert_eq!(t.entries.len(), 3);
    }

    /// A group member leaving on the group's turn leaves the turn with the rest.
    #[test]
    fn a_group_member_leaving_keeps_the_groups_turn() {
        let mut t = abc();
        for name in ["g1", "g2"] {
            let mut e = entry(name, 9, 8);
            e.combat.group = Some("goblins".into());
            join(&mut t, e).expect("room");
        }
        next_turn(&mut t).expect("next");
        next_turn(&mut t).expect("next");
        assert_eq!(up(&t), ("g1", 1));
        let left = leave(&mut t, UserId::new(9), Some("g1"), None).expect("leave");
        assert!(left.turn.is_none());
        assert_eq!(up(&t), ("g2", 1));
    }

    /// A name is shown as typed: no mention, no bold, wherever the tracker or a
    /// character list shows it.
    #[test]
    fn names_are_shown_literally() {
        assert_eq!(escape("<@123>"), "\\<\\@123\\>");
        assert_eq!(escape("**Bold**"), "\\*\\*Bold\\*\\*");
        assert_eq!(escape("@everyone"), "\\@everyone");
        assert_eq!(escape("Vex"), "Vex");
        let mut t = Tracker::default();
        join(&mut t, entry("<@123>", 1, 15)).expect("room");
        join(&mut t, entry("**Bold**", 2, 10)).expect("room");
        let text = render_tracker(&t);
        assert!(!text.contains(" <@123>"), "{text}");
        assert!(text.contains("\\<\\@123\\>"), "{text}");
        assert!(text.contains("` 10` \\*\\*Bold\\*\\*"), "{text}");
        let mut doc = UserDoc::default();
        add_character(&mut doc, "_Vex_", 1).expect("added");
        assert!(render_characters(&doc).contains("★ \\_Vex\\_ (initiative +1)"));
    }

    #[test]
    fn a_tracker_takes_at_most_its_cap_of_entries() {
        let mut t = Tracker::default();
        for i in 0..MAX_TRACKER_ENTRIES {
            join(&mut t, entry(&format!("c{i}"), 1, i as i64)).expect("room");
        }
        let err = join(&mut t, entry("one too many", 2, 30)).expect_err("full");
        assert!(err.message().contains("already has 20 entries"), "{err}");
        assert!(err.message().contains("/init remove"), "{err}");
        assert_eq!(t.entries.len(), MAX_TRACKER_ENTRIES);
        // Re-rolling an entry that is already there still works.
        join(&mut t, entry("C3", 1, 99)).expect("replaces");
        assert_eq!(t.entries.len(), MAX_TRACKER_ENTRIES);
        assert_eq!(t.entries[0].initiative, 99);
    }

    #[test]
    fn a_full_tracker_fits_one_message() {
        let mut t = Tracker {
            round: u32::MAX,
            ..Tracker::default()
        };
        for i in 0..MAX_TRACKER_ENTRIES {
            let name: String = std::iter::repeat_n('W', MAX_NAME_LEN - 2)
                .chain(format!("{i:02}").chars())
                .collect();
            join(
                &mut t,
                Entry {
                    name,
                    user: UserId::new(u64::MAX - i as u64),
                    initiative: i64::MIN,
                    combat: combat::Combatant::default(),
                },
            )
            .expect("room");
        }
        let text = render_tracker(&t);
        assert!(
            text.chars().count() <= DISCORD_MESSAGE_MAX,
            "{} characters",
            text.chars().count()
        );
    }

    #[test]
    fn long_text_is_cut_to_the_limit_with_the_note() {
        let note = "*(cut)*";
        assert_eq!(fit_message("short", 2000, note), "short");
        let lines: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let cut = fit_message(&lines, 2000, note);
        assert!(cut.chars().count() <= 2000, "{}", cut.chars().count());
        // The middle is cut between whole lines; the head and the tail stay.
        assert!(cut.starts_with("line 0\nline 1\n"), "{cut}");
        assert!(cut.ends_with("line 498\nline 499"), "{cut}");
        let (head, tail) = cut.split_once("\n…\n*(cut)*\n").expect("the cut marked");
        assert!(head.lines().all(|l| l.starts_with("line ")), "{head}");
        assert!(tail.lines().all(|l| l.starts_with("line ")), "{tail}");
        // One long line of multi-byte characters is cut at a character boundary.
        let wide = "é".repeat(5000);
        let cut = fit_message(&wide, 2000, note);
        assert!(cut.chars().count() <= 2000);
        // An open code block is closed.
        let code = format!("```\n{}", "x ".repeat(3000));
        let cut = fit_message(&code, 2000, note);
        assert_eq!(cut.matches("```").count(), 2, "{cut}");
        assert!(cut.chars().count() <= 2000);
        // A code block across the cut is closed before it and opened after it.
        let block: String = (0..400).map(|i| format!("row {i}\n")).collect();
        let cut = fit_message(&format!("```\n{block}```\nTotal: 9"), 2000, note);
        assert!(cut.chars().count() <= 2000);
        assert!(cut.contains("```\n…\n*(cut)*\n```\n"), "{cut}");
        assert!(cut.ends_with("```\nTotal: 9"), "{cut}");
        assert_eq!(cut.matches("```").count(), 4, "{cut}");
    }

    #[test]
    fn help_lists_every_feature_and_details_any_command() {
        let features = vec![
            feature::FeatureCommands {
                feature: "rolls".into(),
                commands: vec![feature::CommandEntry {
                    name: "roll".into(),
                    description: "Roll dice".into(),
                    subcommands: vec![],
                    options: vec![("expression".into(), "What".into(), true)],
                    guild_only: false,
                }],
            },
            feature::FeatureCommands {
                feature: "drinking".into(),
                commands: vec![feature::CommandEntry {
                    name: "ronnied".into(),
                    description: "The dice drinking game".into(),
                    subcommands: vec![
                        ("start".into(), "Start a game".into()),
                        ("tab".into(), "Your tab".into()),
                    ],
                    options: vec![],
                    guild_only: false,
                }],
            },
            feature::FeatureCommands {
                feature: "campaigns".into(),
                commands: vec![feature::CommandEntry {
                    name: "link-meetup".into(),
                    description: "Link an event".into(),
                    subcommands: vec![],
                    options: vec![("url".into(), "The event".into(), false)],
                    guild_only: false,
                }],
            },
        ];
        let all = help_all(None, &features, HelpPlace::Server).expect("help");
        assert!(
            all.contains("**Dice and initiative**\n`/roll expression [private] [mode]`"),
            "{all}"
        );
        assert!(
            all.contains("**Drinking game**\n`/ronnied start|tab` The dice drinking game"),
            "{all}"
        );
        assert!(
            all.contains("**Campaigns**\n`/link-meetup [url]` Link an event"),
            "{all}"
        );
        let one = help_all(Some("/ronnied"), &features, HelpPlace::Server).expect("one");
        assert!(one.contains("`/ronnied tab` Your tab"), "{one}");
        let refused = help_all(Some("dance"), &features, HelpPlace::Server).expect_err("unknown");
        assert!(
            refused.message().contains("ronnied") && refused.message().contains("link-meetup"),
            "{}",
            refused.message()
        );
        assert!(
            help_all(Some("character"), &features, HelpPlace::Server)
                .expect("own")
                .contains("at most 9")
        );

        // Too many commands for one message: one line per feature, every command named.
        let many = vec![feature::FeatureCommands {
            feature: "big".into(),
            commands: (0..60)
                .map(|n| feature::CommandEntry {
                    name: format!("command-{n}"),
                    description: "A command with a long description, ".repeat(3),
                    subcommands: vec![],
                    options: vec![],
                    guild_only: false,
                })
                .collect(),
        }];
        let compact = help_all(None, &many, HelpPlace::Server).expect("help");
        assert!(
            compact.chars().count() <= DISCORD_MESSAGE_MAX,
            "{}",
            compact.len()
        );
        assert!(compact.contains("`/command-0`") && compact.contains("`/command-59`"));
    }

    #[test]
    fn help_in_a_direct_message_lists_what_is_offered_there_and_names_the_rest() {
        let entry = |name: &str, guild_only| feature::CommandEntry {
            name: name.into(),
            description: format!("The {name} command"),
            subcommands: vec![],
            options: vec![],
            guild_only,
        };
        let features = vec![
            feature::FeatureCommands {
                feature: "rolls".into(),
                commands: vec![entry("roll", false), entry("gm", true)],
            },
            feature::FeatureCommands {
                feature: "clips".into(),
                commands: vec![entry("clips", true)],
            },
        ];
        let server = help_all(None, &features, HelpPlace::Server).expect("help");
        assert!(server.contains("`/gm set | clear"), "{server}");
        assert!(
            server.contains("**Clips**\n`/clips` The clips command"),
            "{server}"
        );
        assert!(!server.contains("In a server's channels"), "{server}");

        let dm = help_all(None, &features, HelpPlace::DirectMessage).expect("help");
        assert!(dm.contains("`/roll expression"), "{dm}");
        assert!(!dm.contains("`/gm set"), "{dm}");
        assert!(
            !dm.contains("**Clips**"),
            "a feature with nothing offered here: {dm}"
        );
        assert!(
            dm.ends_with("\nIn a server's channels there are also `/gm`, `/clips`."),
            "{dm}"
        );

        for name in ["gm", "/clips"] {
            let one = help_all(Some(name), &features, HelpPlace::DirectMessage).expect(name);
            assert!(
                one.ends_with("\nOffered in a server's channels only, not in direct messages."),
                "{one}"
            );
            let there = help_all(Some(name), &features, HelpPlace::Server).expect(name);
            assert!(!there.contains("Offered in"), "{there}");
        }
        let roll = help_all(Some("roll"), &features, HelpPlace::DirectMessage).expect("roll");
        assert!(!roll.contains("Offered in"), "{roll}");
    }

    #[test]
    fn help_knows_every_command() {
        assert!(help(None).expect("help").contains("/init join"));
        assert!(help(Some("/roll")).expect("roll").contains("critical"));
        assert!(help(Some("dance")).is_err());
    }
}
