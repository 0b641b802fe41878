//! The combat tracker's rules: hit points, temporary hit points and armour class per
//! combatant, effects with durations in rounds, concentration, hidden combatants,
//! groups acting on one initiative, notes, and the turn order (`next`, `prev`,
//! `move`, `skip`, rerolling each round). Pure: dice results come in as numbers, the
//! caller rolls them in the [`crate::DicePool`].
//!
//! # Rules where the issue left room
//! - **Turns and groups.** Combatants of one group share one initiative and sit
//!   together in the order; a group takes one turn (its members act together), so the
//!   tracker's `turn` always points at the first member of a group.
//! - **Effect durations** are in rounds and follow the one who placed the effect (the
//!   caster, `by`), as Avrae does for its `-end` effects: an effect of `N` rounds placed
//!   in round `R` ends **at the end of the caster's turn in round `R + N`**. When the
//!   caster is no longer in the fight, the effect ends at the end of its bearer's turn
//!   from that round on. An effect without a duration lasts until it is removed.
//!   Going back with `prev` does not bring back effects that ended.
//! - **Concentration**: a combatant concentrates on the effects it placed with the
//!   concentration flag (on itself or others), one spell at a time: placing a
//!   concentration effect with another name ends the earlier ones. Damage to a
//!   concentrating combatant (temporary hit points absorbing it count too) asks for a
//!   Constitution save of DC `max(10, damage / 2)` (rounded down); with a known save
//!   modifier the save is rolled (`1d20 + modifier`), and a failed save ends every
//!   concentration effect the combatant placed. Dropping to 0 hit points ends them
//!   without a save.
//! - **Damage** is taken from temporary hit points first, then hit points, never below
//!   0. Healing stops at the maximum when one is known. Temporary hit points do not
//!   stack: setting them replaces the old ones.
//! - **Hidden combatants** are shown to the channel as `???`, without hit points, armour
//!   class, effects or note; the one who added them sees them whole in `/init view`.
//!   For anyone else a hidden combatant is as if absent ([`visible_to`]): its name
//!   finds nothing (`hp`, `damage`, `heal`, `effect` and its `by`, `note`, `opt`,
//!   `move` answer "no combatant"), its group is not theirs to join, and its name is
//!   not taken: a player who adds a combatant of the same name gets one of their own
//!   (as two players may join under one name), and each of the two means their own
//!   by that name ([`find`]). Only its adder shows it again (`opt hidden:false`).
//! - **Names shared by two players.** Two players may each have a combatant of one
//!   name (both joined as `Goblin`, or one was hidden when the other was added). A
//!   name means the caller's own first; else the one combatant of that name they may
//!   see; when several other players have one, a bare name is refused, saying whose
//!   they are, and `Goblin (@Alice)` (the player picked from Discord's @ list, which
//!   arrives as `Goblin (<@id>)`) names one ([`find`]). `/init add` still refuses a
//!   name the adder can see taken, as Avrae does.
//! - **Skip** (`/init skip [rounds]`, Avrae's `skipround`) goes to the top of the
//!   round `rounds` later, every turn in between ending (effects tick as they would).
//! - **Moving** (`/init move`): moving anyone else never changes whose turn it is.
//!   Moving the combatant whose turn it is is a delay: the turn passes to the one that
//!   came after it, in the same round, and it acts when its new place comes up (the
//!   position the turn points at stays where it was, so nobody is skipped). Moved
//!   ahead of its place, its turn ends (effects tick) and it acts at its new place
//!   next round; moved within its place, it keeps the turn ([`move_to`]).
//! - **Leaving** on one's own turn ends that turn as Next does; the last in the order
//!   leaving starts the next round ([`super::leave`]).
//! - **Rerolling** (`/init reroll on`): at the top of every new round each combatant
//!   (each group once) with an initiative expression rolls it again and the order is
//!   sorted anew; a fixed number stays.
//! - **Bounds**: [`MAX_EFFECTS`] effects per combatant, names of effects at most
//!   [`MAX_EFFECT_LEN`] characters, notes at most [`MAX_NOTE_LEN`], durations at most
//!   [`MAX_DURATION`] rounds, hit points and damage within ±[`MAX_HP`], armour class
//!   0..=[`MAX_AC`], at most [`MAX_COUNT`] combatants added at once (and the tracker's
//!   [`MAX_TRACKER_ENTRIES`] in all).

use serde::{Deserialize, Serialize};

use super::{
    DISCORD_MESSAGE_MAX, Entry, MAX_NAME_LEN, MAX_TRACKER_ENTRIES, Refusal, Tracker, UserId,
    clean_named, escape, fit_message, refuse,
};

/// Most effects on one combatant.
pub const MAX_EFFECTS: usize = 8;
/// Longest effect name.
pub const MAX_EFFECT_LEN: usize = 32;
/// Longest note on a combatant.
pub const MAX_NOTE_LEN: usize = 120;
/// Longest effect duration, in rounds (an hour is 600).
pub const MAX_DURATION: u32 = 1000;
/// Largest hit point value (and damage, healing) the tracker keeps.
pub const MAX_HP: i64 = 1_000_000;
/// Largest armour class.
pub const MAX_AC: i64 = 100;
/// Most combatants one `/init add` adds.
pub const MAX_COUNT: usize = 20;
/// Most rounds one `/init skip` skips.
pub const MAX_SKIP: u32 = 100;
/// Longest initiative expression.
pub const MAX_EXPRESSION_LEN: usize = 100;
/// Range of a save modifier.
pub const SAVE_RANGE: std::ops::RangeInclusive<i64> = -30..=30;

/// What the combat tracker keeps about one combatant, beyond its name, owner and
/// initiative. Every field is optional in the JSON, so trackers written before it read
/// as they were, and an entry without combat data is written as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Combatant {
    /// The initiative expression rolled (`1d20+3`), rolled again by a reroll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hp: Option<i64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub temp_hp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ac: Option<i64>,
    /// Constitution save modifier: when known, concentration saves are rolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub con_save: Option<i64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// The group this combatant acts with (one initiative, one turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
}

/// An effect or condition on a combatant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    pub name: String,
    /// Who placed it (a combatant's name); its duration follows their turns.
    pub by: String,
    /// It ends at the end of `by`'s turn in this round (`None`: until removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_round: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub concentration: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

// ---- finding combatants ----------------------------------------------------------

/// Whether `viewer` may see and act on `entry`: a shown combatant is everyone's, a
/// hidden one only its adder's. For anyone else a hidden combatant is as if absent.
pub fn visible_to(entry: &Entry, viewer: UserId) -> bool {
    !entry.combat.hidden || entry.user == viewer
}

/// The index of the combatant called `name` (any case) that `viewer` may see
/// ([`visible_to`]). Of several with that name, `viewer`'s own; else, when they are
/// other players', `name` must say whose, as `Goblin (@Alice)` (Discord sends the
/// mention as `<@id>`): a bare name shared by two others' combatants is refused,
/// naming their owners, rather than reaching the first.
pub fn find(tracker: &Tracker, viewer: UserId, name: &str) -> Result<usize, Refusal> {
    let wanted = name.trim();
    let called = |e: &Entry, name: &str| e.name.eq_ignore_ascii_case(name) && visible_to(e, viewer);
    if let Some((name, owner)) = split_owner(wanted)
        && !tracker.entries.iter().any(|e| called(e, wanted))
    {
        return tracker
            .entries
            .iter()
            .position(|e| called(e, name) && e.user == owner)
            .map_or_else(
                || {
                    refuse(format!(
                        "<@{owner}> has no combatant `{name}` in this channel's initiative."
                    ))
                },
                Ok,
            );
    }
    if let Some(own) = tracker
        .entries
        .iter()
        .position(|e| called(e, wanted) && e.user == viewer)
    {
        return Ok(own);
    }
    let matching: Vec<usize> = (0..tracker.entries.len())
        .filter(|&i| called(&tracker.entries[i], wanted))
        .collect();
    match matching.as_slice() {
        [] => refuse(format!(
            "There is no combatant `{wanted}` in this channel's initiative.{}",
            group_hint(tracker, viewer, wanted)
        )),
        [one] => Ok(*one),
        several => {
            let shown = &tracker.entries[several[0]].name;
            let owners: Vec<String> = several
                .iter()
                .map(|&i| format!("<@{}>'s", tracker.entries[i].user))
                .collect();
            let owners = match owners.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            };
            refuse(format!(
                "{} combatants are named `{shown}` ({owners}); say whose: `{shown} (@player)`, picking the player from Discord's @ list.",
                count_word(several.len())
            ))
        }
    }
}

/// When `name` is a group's (as the tracker shows `orcs (@alice)`) rather than a
/// combatant's: a sentence saying how to name one of its combatants; else nothing.
pub fn group_hint(tracker: &Tracker, viewer: UserId, name: &str) -> String {
    let name = name.trim();
    let members: Vec<&str> = tracker
        .entries
        .iter()
        .filter(|e| {
            visible_to(e, viewer)
                && e.combat
                    .group
                    .as_deref()
                    .is_some_and(|g| g.eq_ignore_ascii_case(name))
        })
        .map(|e| e.name.as_str())
        .collect();
    let Some(first) = members.first() else {
        return String::new();
    };
    let shown: Vec<String> = members.iter().take(3).map(|m| format!("`{m}`")).collect();
    let more = if members.len() > 3 { ", …" } else { "" };
    format!(
        " `{name}` is a group ({}{more}): name one of its combatants, e.g. `{first}`.",
        shown.join(", ")
    )
}

/// `Goblin (<@123>)` or `Goblin <@123>` (also `<@!123>`, Discord's nickname mention)
/// as the name and the user the mention names.
fn split_owner(text: &str) -> Option<(&str, UserId)> {
    let text = text.trim_end();
    let (text, closed) = match text.strip_suffix(')') {
        Some(inner) => (inner.trim_end(), true),
        None => (text, false),
    };
    let text = text.strip_suffix('>')?;
    let at = text.rfind("<@")?;
    let id = text[at + 2..].trim_start_matches('!');
    let owner: UserId = discord::model::parse_id("user", id).ok()?;
    let mut name = text[..at].trim_end();
    if closed {
        name = name.strip_suffix('(')?.trim_end();
    }
    (!name.is_empty()).then_some((name, owner))
}

fn count_word(n: usize) -> String {
    match n {
        2 => "Two".to_owned(),
        3 => "Three".to_owned(),
        n => n.to_string(),
    }
}

/// Whether `name` is taken among the combatants `adder` may see: a hidden
/// combatant of someone else does not take its name from them.
fn name_taken(tracker: &Tracker, adder: UserId, name: &str) -> bool {
    tracker
        .entries
        .iter()
        .any(|e| e.name.eq_ignore_ascii_case(name) && visible_to(e, adder))
}

/// The indices of the turn unit (a group, or one combatant) starting at `at`.
fn unit_at(tracker: &Tracker, at: usize) -> std::ops::Range<usize> {
    let Some(first) = tracker.entries.get(at) else {
        return at..at;
    };
    let end = match &first.combat.group {
        None => at + 1,
        Some(group) => {
            at + tracker.entries[at..]
                .iter()
                .take_while(|e| e.combat.group.as_deref() == Some(group.as_str()))
                .count()
        }
    };
    at..end
}

/// Where the unit holding index `i` starts.
pub(crate) fn unit_start(tracker: &Tracker, i: usize) -> usize {
    let Some(group) = tracker.entries.get(i).and_then(|e| e.combat.group.clone()) else {
        return i;
    };
    let mut start = i;
    while start > 0 && tracker.entries[start - 1].combat.group.as_deref() == Some(group.as_str()) {
        start -= 1;
    }
    start
}

/// The indices of the unit whose turn it is.
pub(crate) fn current_range(tracker: &Tracker) -> std::ops::Range<usize> {
    unit_at(tracker, tracker.turn)
}

/// The combatants whose turn it is (a whole group, or one).
pub fn current(tracker: &Tracker) -> &[Entry] {
    let range = unit_at(tracker, tracker.turn);
    tracker.entries.get(range).unwrap_or_default()
}

/// Sorts by initiative, highest first; ties keep their order, and a group's members
/// stay together where its first member is.
pub fn sort(tracker: &mut Tracker) {
    let anchors: Vec<(i64, usize)> = tracker
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let anchor = e.combat.group.as_ref().map_or(i, |g| {
                tracker
                    .entries
                    .iter()
                    .position(|o| o.combat.group.as_ref() == Some(g))
                    .unwrap_or(i)
            });
            (e.initiative, anchor)
        })
        .collect();
    let mut keyed: Vec<((std::cmp::Reverse<i64>, usize), Entry)> = anchors
        .into_iter()
        .zip(std::mem::take(&mut tracker.entries))
        .map(|((initiative, anchor), e)| ((std::cmp::Reverse(initiative), anchor), e))
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    tracker.entries = keyed.into_iter().map(|(_, e)| e).collect();
}

/// Whether the fight has begun: someone pressed Next or skipped ([`Tracker::started`];
/// before that, joins and leaves only reorder the list). A tracker stored without the
/// flag has begun when it is past round 1 or past the top of the order.
pub(crate) fn started(tracker: &Tracker) -> bool {
    tracker.started || tracker.round > 1 || tracker.turn > 0
}

fn current_name(tracker: &Tracker) -> Option<String> {
    tracker.entries.get(tracker.turn).map(|e| e.name.clone())
}

/// Whose turn it is, as who added the combatant and its name (two players' combatants
/// may share a name).
fn current_key(tracker: &Tracker) -> Option<(UserId, String)> {
    tracker
        .entries
        .get(tracker.turn)
        .map(|e| (e.user, e.name.clone()))
}

/// Puts the turn back on the combatant `key` names (the start of its group).
fn restore(tracker: &mut Tracker, key: Option<(UserId, String)>) {
    tracker.turn = key
        .and_then(|(user, name)| {
            tracker
                .entries
                .iter()
                .position(|e| e.user == user && e.name == name)
        })
        .map_or(0, |i| unit_start(tracker, i));
}

// ---- adding ------------------------------------------------------------------------

/// What `/init add` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddSpec {
    pub name: String,
    pub count: usize,
    pub group: Option<String>,
    /// A number or an expression (default `1d20`).
    pub initiative: Option<String>,
    pub hp: Option<i64>,
    pub ac: Option<i64>,
    pub con_save: Option<i64>,
    pub hidden: bool,
    pub note: Option<String>,
}

/// One word of `/init add`'s text, or a quoted run of words (quotes taken off), with
/// where the rest of the line after it begins.
struct Word<'a> {
    text: &'a str,
    quoted: bool,
    rest: usize,
}

/// The words of `text`: split at whitespace, except that a run in straight (`"…"`) or
/// curly (`“…”`) double quotes is one word, taken as written.
fn add_words(text: &str) -> Result<Vec<Word<'_>>, Refusal> {
    let is_open = |c: char| c == '"' || c == '\u{201C}';
    let is_close = |c: char| c == '"' || c == '\u{201D}';
    let mut words = Vec::new();
    let mut at = 0;
    while let Some(start) = text[at..]
        .find(|c: char| !c.is_whitespace())
        .map(|i| at + i)
    {
        let first = text[start..].chars().next().unwrap_or(' ');
        if is_open(first) {
            let inner = start + first.len_utf8();
            let Some(end) = text[inner..].find(is_close).map(|i| inner + i) else {
                return refuse(format!(
                    "`{}`: a quoted name needs its closing quote.",
                    text[start..].trim()
                ));
            };
            let close = text[end..].chars().next().map_or(1, char::len_utf8);
            words.push(Word {
                text: text[inner..end].trim(),
                quoted: true,
                rest: end + close,
            });
            at = end + close;
        } else {
            let end = text[start..]
                .find(char::is_whitespace)
                .map_or(text.len(), |i| start + i);
            words.push(Word {
                text: &text[start..end],
                quoted: false,
                rest: end,
            });
            at = end;
        }
    }
    Ok(words)
}

/// Reads `/init add`'s text: a name, then optionally `xN` (how many), `group:NAME`,
/// `init:EXPR`, `hp:N`, `ac:N`, `save:N` (Constitution save), `note:TEXT` (the rest
/// of the line) and `hidden`, e.g. `goblin x3 group:goblins hp:7 ac:15`. A name in
/// double quotes (`"Hidden Ogre"`) is taken whole, settings and all.
pub fn parse_add(text: &str) -> Result<AddSpec, Refusal> {
    let mut spec = AddSpec {
        count: 1,
        ..AddSpec::default()
    };
    let mut name = Vec::new();
    for &Word {
        text: word,
        quoted,
        rest,
    } in &add_words(text)?
    {
        if quoted {
            if !word.is_empty() {
                name.push(word);
            }
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if let Some(n) = lower
            .strip_prefix('x')
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            spec.count = n
                .parse()
                .ok()
                .filter(|n| (1..=MAX_COUNT).contains(n))
                .ok_or_else(|| {
                    Refusal::new(format!(
                        "`{word}`: add between 1 and {MAX_COUNT} combatants at once."
                    ))
                })?;
        } else if lower == "hidden" {
            spec.hidden = true;
        } else if let Some((key, value)) = word.split_once(':') {
            let number = |what: &str| {
                value
                    .trim_start_matches('+')
                    .parse::<i64>()
                    .map_err(|_| Refusal::new(format!("`{word}`: {what} must be a whole number.")))
            };
            match key.to_ascii_lowercase().as_str() {
                "group" => spec.group = Some(value.to_owned()),
                "init" => spec.initiative = Some(value.to_owned()),
                "hp" => spec.hp = Some(number("hit points")?),
                "ac" => spec.ac = Some(number("armour class")?),
                "save" | "con" => spec.con_save = Some(number("a save modifier")?),
                "note" => {
                    let words = std::iter::once(value).chain(text[rest..].split_whitespace());
                    spec.note = Some(words.collect::<Vec<_>>().join(" "));
                    break;
                }
                _ => {
                    return refuse(format!(
                        "`{word}`: unknown setting `{key}:`. Known: `xN`, `group:`, `init:`, `hp:`, `ac:`, `save:`, `note:`, `hidden`."
                    ));
                }
            }
        } else {
            name.push(word);
        }
    }
    spec.name = name.join(" ");
    Ok(spec)
}

/// What an initiative option asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitiativeInput {
    /// A bare number (`15`): this initiative, as it is.
    Fixed(i64),
    /// An expression to roll.
    Roll(String),
}

/// Reads an initiative option as Avrae's users mean it: a bare number is the
/// initiative itself; a signed number is a modifier on the d20 (`+3` rolls `1d20+3`,
/// `-1` rolls `1d20-1`); `adv` / `dis` (also `advantage`, `disadvantage`), with an
/// optional modifier (`adv+2`, `dis -1`), roll two d20 and keep the higher / lower
/// (`2d20kh1+2`), and `eadv` (Elven Accuracy) three, keeping the highest; anything
/// else is a dice expression.
pub fn initiative_input(text: &str) -> Result<InitiativeInput, Refusal> {
    let text = clean_expression(text)?;
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let modifier = |rest: &str| -> Option<i64> {
        if rest.is_empty() {
            return Some(0);
        }
        let digits = rest.strip_prefix(['+', '-'])?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest.parse::<i64>().ok()
    };
    let with = |dice: &str, m: i64| match m {
        0 => dice.to_owned(),
        m => format!("{dice}{m:+}"),
    };
    if compact.bytes().all(|b| b.is_ascii_digit())
        && let Ok(value) = compact.parse::<i64>()
    {
        return Ok(InitiativeInput::Fixed(value));
    }
    if compact.starts_with(['+', '-'])
        && let Some(m) = modifier(&compact)
    {
        return Ok(InitiativeInput::Roll(with("1d20", m)));
    }
    for (word, dice) in [
        ("advantage", "2d20kh1"),
        ("adv", "2d20kh1"),
        ("eadv", "3d20kh1"),
        ("disadvantage", "2d20kl1"),
        ("dis", "2d20kl1"),
    ] {
        if let Some(rest) = compact.strip_prefix(word) {
            return match modifier(rest) {
                Some(m) => Ok(InitiativeInput::Roll(with(dice, m))),
                None => refuse(format!(
                    "`{text}`: after `{word}` give only a modifier, e.g. `{word}+2`."
                )),
            };
        }
    }
    Ok(InitiativeInput::Roll(text))
}

/// Checks an initiative expression's size (the dice crate checks the rest).
pub fn clean_expression(text: &str) -> Result<String, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return refuse("An initiative expression cannot be empty.");
    }
    if text.chars().count() > MAX_EXPRESSION_LEN {
        return refuse(format!(
            "Initiative expressions are at most {MAX_EXPRESSION_LEN} characters."
        ));
    }
    Ok(text.to_owned())
}

fn check_hp(what: &str, value: i64) -> Result<i64, Refusal> {
    if !(-MAX_HP..=MAX_HP).contains(&value) {
        return refuse(format!(
            "{what} must be between -{MAX_HP} and {MAX_HP}, not {value}."
        ));
    }
    Ok(value)
}

/// A damage or healing amount, which cannot be negative: 0 to [`MAX_HP`].
fn check_amount(what: &str, value: i64) -> Result<i64, Refusal> {
    if !(0..=MAX_HP).contains(&value) {
        return refuse(format!(
            "{what} must be between 0 and {MAX_HP}, not {value}."
        ));
    }
    Ok(value)
}

fn check_ac(value: i64) -> Result<i64, Refusal> {
    if !(0..=MAX_AC).contains(&value) {
        return refuse(format!(
            "Armour class must be between 0 and {MAX_AC}, not {value}."
        ));
    }
    Ok(value)
}

fn check_save(value: i64) -> Result<i64, Refusal> {
    if !SAVE_RANGE.contains(&value) {
        return refuse(format!(
            "A save modifier must be between {} and {}, not {value}.",
            SAVE_RANGE.start(),
            SAVE_RANGE.end()
        ));
    }
    Ok(value)
}

/// Checks a note's length and characters (an empty note clears it).
pub fn clean_note(note: &str) -> Result<Option<String>, Refusal> {
    let note = note.trim();
    if note.is_empty() {
        return Ok(None);
    }
    if note.chars().count() > MAX_NOTE_LEN {
        return refuse(format!("Notes are at most {MAX_NOTE_LEN} characters."));
    }
    if note.chars().any(char::is_control) {
        return refuse("Notes cannot contain control characters.");
    }
    Ok(Some(note.to_owned()))
}

/// The names `/init add` gives `adder`: the name itself for one, `name 1`, `name 2`,
/// … (the first free numbers) for several. Only names `adder` can see are taken
/// (`name_taken`).
pub fn add_names(tracker: &Tracker, adder: UserId, spec: &AddSpec) -> Result<Vec<String>, Refusal> {
    let base = clean_named(&spec.name, "combatant")?;
    if spec.count == 1 {
        if name_taken(tracker, adder, &base) {
            return refuse(format!(
                "There is already a combatant called `{base}`; pick another name or add several with `x2`."
            ));
        }
        return Ok(vec![base]);
    }
    let mut names = Vec::with_capacity(spec.count);
    let mut n = 1;
    while names.len() < spec.count {
        let name = format!("{base} {n}");
        if name.chars().count() > MAX_NAME_LEN {
            return refuse(format!(
                "`{name}` is longer than {MAX_NAME_LEN} characters; use a shorter name."
            ));
        }
        if !name_taken(tracker, adder, &name) {
            names.push(name);
        }
        n += 1;
    }
    Ok(names)
}

/// Adds combatants for `user` (all or none). `initiative` is the rolled value (a group
/// that is already in the fight keeps its own), `expression` what was rolled (kept for
/// rerolls). Returns the names added.
pub fn add(
    tracker: &mut Tracker,
    user: UserId,
    spec: &AddSpec,
    initiative: i64,
    expression: Option<String>,
) -> Result<Vec<String>, Refusal> {
    let names = add_names(tracker, user, spec)?;
    if tracker.entries.len() + names.len() > MAX_TRACKER_ENTRIES {
        return refuse(format!(
            "This channel's initiative has {} of at most {MAX_TRACKER_ENTRIES} entries; {} more do not fit. Remove some with `/init remove` first.",
            tracker.entries.len(),
            names.len()
        ));
    }
    let group = match spec.group.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(g) => Some(clean_named(g, "group")?),
    };
    let hp = spec.hp.map(|v| check_hp("Hit points", v)).transpose()?;
    let ac = spec.ac.map(check_ac).transpose()?;
    let con_save = spec.con_save.map(check_save).transpose()?;
    let note = match &spec.note {
        Some(n) => clean_note(n)?,
        None => None,
    };
    // A group already in the fight keeps its initiative (and expression); a group of
    // hidden combatants only for their adder.
    let existing = group.as_ref().and_then(|g| {
        tracker.entries.iter().find(|e| {
            visible_to(e, user)
                && e.combat
                    .group
                    .as_ref()
                    .is_some_and(|o| o.eq_ignore_ascii_case(g))
        })
    });
    let (initiative, expression, group) = match existing {
        Some(member) => (
            member.initiative,
            member.combat.init_expr.clone(),
            member.combat.group.clone(),
        ),
        None => (initiative, expression, group),
    };
    let keep = if started(tracker) {
        current_key(tracker)
    } else {
        None
    };
    for name in &names {
        tracker.entries.push(Entry {
            name: name.clone(),
            user,
            initiative,
            combat: Combatant {
                init_expr: expression.clone(),
                hp,
                max_hp: hp,
                ac,
                con_save,
                hidden: spec.hidden,
                group: group.clone(),
                note: note.clone(),
                ..Combatant::default()
            },
        });
    }
    sort(tracker);
    restore(tracker, keep);
    Ok(names)
}

// ---- hit points ----------------------------------------------------------------------

/// What damage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamageReport {
    pub name: String,
    pub damage: i64,
    /// Taken by temporary hit points.
    pub absorbed: i64,
    pub hp: Option<i64>,
    /// Set when the combatant concentrates: the save it must make.
    pub concentration: Option<ConcentrationCheck>,
    /// Concentration effects ended because the combatant dropped to 0.
    pub dropped: Vec<Ended>,
}

/// A concentration save asked for by damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcentrationCheck {
    pub dc: i64,
    /// The save modifier, when known: the caller rolls `1d20 + modifier`.
    pub modifier: Option<i64>,
    /// What the combatant concentrates on.
    pub effects: Vec<String>,
}

/// The DC of a concentration save after `damage`: `max(10, damage / 2)`.
pub fn concentration_dc(damage: i64) -> i64 {
    (damage / 2).max(10)
}

/// The names of the concentration effects `caster` placed (on anyone).
pub fn concentrating_on(tracker: &Tracker, caster: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in &tracker.entries {
        for f in &e.combat.effects {
            if f.concentration && f.by.eq_ignore_ascii_case(caster) && !names.contains(&f.name) {
                names.push(f.name.clone());
            }
        }
    }
    names
}

/// An effect that ended: `(effect, bearer)`.
pub type Ended = (String, String);

/// Ends every concentration effect `caster` placed.
pub fn end_concentration(tracker: &mut Tracker, caster: &str) -> Vec<Ended> {
    let mut ended = Vec::new();
    for e in &mut tracker.entries {
        let bearer = e.name.clone();
        e.combat.effects.retain(|f| {
            let ends = f.concentration && f.by.eq_ignore_ascii_case(caster);
            if ends {
                ended.push((f.name.clone(), bearer.clone()));
            }
            !ends
        });
    }
    ended
}

/// `damage` to the combatant at `at`: temporary hit points first, then hit points
/// (never below 0). A concentrating combatant gets a [`ConcentrationCheck`].
pub fn damage(tracker: &mut Tracker, at: usize, damage: i64) -> Result<DamageReport, Refusal> {
    if damage < 0 {
        return refuse(format!(
            "Damage cannot be negative ({damage}); use `/init heal` to heal."
        ));
    }
    let damage = check_amount("Damage", damage)?;
    let Some(entry) = tracker.entries.get_mut(at) else {
        return refuse("That combatant left the fight.");
    };
    let absorbed = entry.combat.temp_hp.min(damage);
    entry.combat.temp_hp -= absorbed;
    let rest = damage - absorbed;
    if let Some(hp) = entry.combat.hp.as_mut() {
        *hp = (*hp - rest).max(0);
    }
    let name = entry.name.clone();
    let hp = entry.combat.hp;
    let con_save = entry.combat.con_save;
    let effects = concentrating_on(tracker, &name);
    let mut report = DamageReport {
        name: name.clone(),
        damage,
        absorbed,
        hp,
        concentration: None,
        dropped: Vec::new(),
    };
    if effects.is_empty() || damage == 0 {
        return Ok(report);
    }
    if hp == Some(0) {
        report.dropped = end_concentration(tracker, &name);
    } else {
        report.concentration = Some(ConcentrationCheck {
            dc: concentration_dc(damage),
            modifier: con_save,
            effects,
        });
    }
    Ok(report)
}

/// Heals the combatant at `at` by `amount` (up to its maximum). Returns its hit points.
pub fn heal(tracker: &mut Tracker, at: usize, amount: i64) -> Result<i64, Refusal> {
    if amount < 0 {
        return refuse(format!(
            "Healing cannot be negative ({amount}); use `/init damage` for damage."
        ));
    }
    let amount = check_amount("Healing", amount)?;
    let Some(entry) = tracker.entries.get_mut(at) else {
        return refuse("That combatant left the fight.");
    };
    let Some(hp) = entry.combat.hp else {
        return refuse(format!(
            "`{}` has no hit points yet; set them with `/init hp {} value`.",
            entry.name, entry.name
        ));
    };
    let mut healed = hp.saturating_add(amount).min(MAX_HP);
    if let Some(max) = entry.combat.max_hp {
        healed = healed.min(max.max(hp));
    }
    entry.combat.hp = Some(healed);
    Ok(healed)
}

/// Sets hit points (and the maximum when there is none yet, or `max` is given) and
/// temporary hit points.
pub fn set_hp(
    tracker: &mut Tracker,
    at: usize,
    hp: Option<i64>,
    max: Option<i64>,
    temp: Option<i64>,
) -> Result<(), Refusal> {
    let hp = hp.map(|v| check_hp("Hit points", v)).transpose()?;
    let max = max.map(|v| check_hp("Maximum hit points", v)).transpose()?;
    let temp = temp
        .map(|v| check_hp("Temporary hit points", v))
        .transpose()?;
    if temp.is_some_and(|t| t < 0) {
        return refuse("Temporary hit points cannot be negative.");
    }
    if max.is_some_and(|m| m < 1) {
        return refuse("Maximum hit points must be at least 1.");
    }
    let Some(entry) = tracker.entries.get_mut(at) else {
        return refuse("That combatant left the fight.");
    };
    let c = &mut entry.combat;
    if let Some(max) = max {
        c.max_hp = Some(max);
    }
    if let Some(hp) = hp {
        c.hp = Some(hp);
        if c.max_hp.is_none() {
            c.max_hp = Some(hp.max(1));
        }
    } else if max.is_some() && c.hp.is_none() {
        c.hp = max;
    }
    if let Some(temp) = temp {
        c.temp_hp = temp;
    }
    Ok(())
}

/// Sets armour class, save modifier and whether the combatant is hidden.
pub fn set_options(
    tracker: &mut Tracker,
    at: usize,
    ac: Option<i64>,
    con_save: Option<i64>,
    hidden: Option<bool>,
) -> Result<(), Refusal> {
    let ac = ac.map(check_ac).transpose()?;
    let con_save = con_save.map(check_save).transpose()?;
    let Some(entry) = tracker.entries.get_mut(at) else {
        return refuse("That combatant left the fight.");
    };
    if let Some(ac) = ac {
        entry.combat.ac = Some(ac);
    }
    if let Some(save) = con_save {
        entry.combat.con_save = Some(save);
    }
    if let Some(hidden) = hidden {
        entry.combat.hidden = hidden;
    }
    Ok(())
}

/// Sets (or with an empty text clears) a combatant's note.
pub fn set_note(tracker: &mut Tracker, at: usize, note: &str) -> Result<Option<String>, Refusal> {
    let note = clean_note(note)?;
    let Some(entry) = tracker.entries.get_mut(at) else {
        return refuse("That combatant left the fight.");
    };
    entry.combat.note = note.clone();
    Ok(note)
}

// ---- effects -------------------------------------------------------------------------

/// Checks an effect name.
pub fn clean_effect(name: &str) -> Result<String, Refusal> {
    let name = name.trim();
    if name.is_empty() {
        return refuse("An effect needs a name, e.g. `Blessed` or `Prone`.");
    }
    if name.chars().count() > MAX_EFFECT_LEN {
        return refuse(format!(
            "Effect names are at most {MAX_EFFECT_LEN} characters."
        ));
    }
    if name.chars().any(char::is_control) {
        return refuse("Effect names cannot contain control characters.");
    }
    Ok(name.to_owned())
}

/// What adding an effect did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectAdded {
    pub bearer: String,
    pub effect: Effect,
    /// Earlier concentration effects of the same caster that this one ended.
    pub replaced: Vec<Ended>,
}

/// Puts `effect` on the combatant at `at`, placed by `by` (one `viewer` may see;
/// default: whoever's turn it is once the fight started, else the bearer), for
/// `duration` rounds (none: until removed). The same effect again replaces the old one.
pub fn add_effect(
    tracker: &mut Tracker,
    viewer: UserId,
    at: usize,
    effect: &str,
    duration: Option<u32>,
    by: Option<&str>,
    concentration: bool,
) -> Result<EffectAdded, Refusal> {
    let effect = clean_effect(effect)?;
    if let Some(d) = duration
        && !(1..=MAX_DURATION).contains(&d)
    {
        return refuse(format!(
            "A duration is between 1 and {MAX_DURATION} rounds, not {d}."
        ));
    }
    let Some(bearer) = tracker.entries.get(at).map(|e| e.name.clone()) else {
        return refuse("That combatant left the fight.");
    };
    let by = match by.map(str::trim).filter(|b| !b.is_empty()) {
        Some(b) => tracker.entries[find(tracker, viewer, b)?].name.clone(),
        None if started(tracker) => current_name(tracker).unwrap_or_else(|| bearer.clone()),
        None => bearer.clone(),
    };
    let entry = &tracker.entries[at];
    let replacing = entry
        .combat
        .effects
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(&effect));
    if !replacing && entry.combat.effects.len() >= MAX_EFFECTS {
        return refuse(format!(
            "`{bearer}` already has {MAX_EFFECTS} effects, the most it can hold; remove one with `/init effect remove` first."
        ));
    }
    // One concentration at a time: a new spell ends the caster's other ones.
    let mut replaced = Vec::new();
    if concentration {
        for e in &mut tracker.entries {
            let holder = e.name.clone();
            e.combat.effects.retain(|f| {
                let other = f.concentration
                    && f.by.eq_ignore_ascii_case(&by)
                    && !f.name.eq_ignore_ascii_case(&effect);
                if other {
                    replaced.push((f.name.clone(), holder.clone()));
                }
                !other
            });
        }
    }
    let added = Effect {
        name: effect.clone(),
        by,
        ends_round: duration.map(|d| tracker.round.saturating_add(d)),
        concentration,
    };
    let entry = &mut tracker.entries[at];
    entry
        .combat
        .effects
        .retain(|f| !f.name.eq_ignore_ascii_case(&effect));
    entry.combat.effects.push(added.clone());
    Ok(EffectAdded {
        bearer,
        effect: added,
        replaced,
    })
}

/// Removes the effect called `effect` from the combatant at `at`.
pub fn remove_effect(tracker: &mut Tracker, at: usize, effect: &str) -> Result<String, Refusal> {
    let Some(entry) = tracker.entries.get_mut(at) else {
        return refuse("That combatant left the fight.");
    };
    let wanted = effect.trim();
    let Some(i) = entry
        .combat
        .effects
        .iter()
        .position(|f| f.name.eq_ignore_ascii_case(wanted))
    else {
        return refuse(format!("`{}` has no effect `{wanted}`.", entry.name));
    };
    Ok(entry.combat.effects.remove(i).name)
}

/// Ends the turn of the current unit: effects whose caster (or, with the caster gone,
/// bearer) is in it and whose last round has come end.
fn end_turn(tracker: &mut Tracker) -> Vec<Ended> {
    let acting: Vec<String> = current(tracker).iter().map(|e| e.name.clone()).collect();
    let names: Vec<String> = tracker.entries.iter().map(|e| e.name.clone()).collect();
    let round = tracker.round;
    let mut ended = Vec::new();
    for e in &mut tracker.entries {
        let bearer = e.name.clone();
        e.combat.effects.retain(|f| {
            let Some(last) = f.ends_round else {
                return true;
            };
            let caster_here = names.iter().any(|n| n.eq_ignore_ascii_case(&f.by));
            let clock = if caster_here { &f.by } else { &bearer };
            let ends = round >= last && acting.iter().any(|a| a.eq_ignore_ascii_case(clock));
            if ends {
                ended.push((f.name.clone(), bearer.clone()));
            }
            !ends
        });
    }
    ended
}

/// New initiatives for a reroll: one per turn unit that has an expression, by the
/// unit's key ([`unit_key`]).
pub type Rerolls = std::collections::BTreeMap<String, i64>;

/// The key of the unit of `entry` in [`Rerolls`]: `group:{name}` or `entry:{name}`.
pub fn unit_key(entry: &Entry) -> String {
    match &entry.combat.group {
        Some(g) => format!("group:{}", g.to_lowercase()),
        None => format!("entry:{}", entry.name.to_lowercase()),
    }
}

/// The expressions a reroll rolls, by unit key.
pub fn reroll_expressions(tracker: &Tracker) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for e in &tracker.entries {
        if let Some(expr) = &e.combat.init_expr {
            let key = unit_key(e);
            if !out.iter().any(|(k, _)| *k == key) {
                out.push((key, expr.clone()));
            }
        }
    }
    out
}

/// Whether the next turn starts a new round.
pub fn next_wraps(tracker: &Tracker) -> bool {
    unit_at(tracker, tracker.turn).end >= tracker.entries.len()
}

/// What a turn change did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnReport {
    /// The effects that ended.
    pub ended: Vec<Ended>,
    /// Whether initiative was rolled again (a new round with reroll on).
    pub rerolled: bool,
}

/// The next turn: the current unit's turn ends, the next unit is up; past the last,
/// a new round starts (rerolled with `rerolls` when reroll is on).
pub fn next(tracker: &mut Tracker, rerolls: Option<&Rerolls>) -> Result<TurnReport, Refusal> {
    if tracker.entries.is_empty() {
        return refuse("Nobody has joined initiative in this channel yet.");
    }
    let mut report = TurnReport {
        ended: end_turn(tracker),
        rerolled: false,
    };
    tracker.started = true;
    let after = unit_at(tracker, tracker.turn).end;
    if after >= tracker.entries.len() {
        report.rerolled = new_round(tracker, rerolls);
    } else {
        tracker.turn = after;
    }
    Ok(report)
}

/// Starts the next round at the top of the order, rolling initiative again with
/// `rerolls` when reroll is on. Returns whether it rerolled.
fn new_round(tracker: &mut Tracker, rerolls: Option<&Rerolls>) -> bool {
    tracker.round = tracker.round.saturating_add(1);
    tracker.turn = 0;
    let Some(rerolls) = rerolls.filter(|_| tracker.reroll) else {
        return false;
    };
    for e in &mut tracker.entries {
        if let Some(v) = rerolls.get(&unit_key(e)) {
            e.initiative = *v;
        }
    }
    sort(tracker);
    true
}

/// The previous turn (back across the top of a round, never before round 1). Effects
/// that ended stay ended.
pub fn prev(tracker: &mut Tracker) -> Result<(), Refusal> {
    if tracker.entries.is_empty() {
        return refuse("Nobody has joined initiative in this channel yet.");
    }
    if tracker.turn == 0 {
        if tracker.round <= 1 {
            return refuse("This is the first turn of the fight; there is no turn before it.");
        }
        tracker.round -= 1;
        tracker.turn = unit_start(tracker, tracker.entries.len() - 1);
    } else {
        tracker.turn = unit_start(tracker, tracker.turn - 1);
    }
    Ok(())
}

/// Skips to the top of the round `rounds` later, every turn in between ending.
pub fn skip(
    tracker: &mut Tracker,
    rounds: u32,
    rerolls: Option<&Rerolls>,
) -> Result<TurnReport, Refusal> {
    if !(1..=MAX_SKIP).contains(&rounds) {
        return refuse(format!(
            "Skip between 1 and {MAX_SKIP} rounds, not {rounds}."
        ));
    }
    let target = tracker.round.saturating_add(rounds);
    let mut report = TurnReport::default();
    while tracker.round < target {
        let step = next(tracker, rerolls)?;
        report.ended.extend(step.ended);
        report.rerolled |= step.rerolled;
    }
    Ok(report)
}

/// What [`move_to`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The combatant moved, or its group.
    pub name: String,
    /// Set when the turn passed on because the combatant whose turn it was moved.
    pub turn: Option<TurnReport>,
}

/// Gives the combatant at `at` (its whole group) a new initiative. With reroll on, the
/// next round rolls its expression again.
///
/// Moving anyone else never changes whose turn it is. Moving the combatant whose turn
/// it is (once the fight started) is a delay, as with Avrae's `init opt -p` on the
/// current combatant followed by the turn passing on: the turn passes to the one that
/// came after it in the order, in the same round, and the moved one acts when its new
/// place comes up. Moved ahead of its old place (its new place has passed this round)
/// its turn ends as with Next (effects tick), and it acts at its new place next round;
/// when it was last in the order, that is the top of the next round. Moved to where
/// it already was, it keeps its turn.
pub fn move_to(
    tracker: &mut Tracker,
    at: usize,
    initiative: i64,
    rerolls: Option<&Rerolls>,
) -> Result<Moved, Refusal> {
    let Some(entry) = tracker.entries.get(at) else {
        return refuse("That combatant left the fight.");
    };
    let (name, user) = (entry.name.clone(), entry.user);
    let group = entry.combat.group.clone();
    // Its unit: itself (not another player's combatant of the same name) or its group.
    let unit = |e: &Entry| {
        (e.name == name && e.user == user) || (group.is_some() && e.combat.group == group)
    };
    let is_started = started(tracker);
    let acting = unit_at(tracker, tracker.turn);
    let moving_current = is_started && acting.contains(&at);
    // The one after the moving unit in the order as it was.
    let successor = tracker
        .entries
        .get(acting.end)
        .map(|e| (e.user, e.name.clone()));
    let keep = if is_started {
        current_key(tracker)
    } else {
        None
    };
    for e in &mut tracker.entries {
        if unit(e) {
            // For this round: a reroll rolls the expression again.
            e.initiative = initiative;
        }
    }
    // The unit goes to the end of its new tie: it sorts after equal initiatives.
    let (moved, rest): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut tracker.entries)
        .into_iter()
        .partition(|e| unit(e));
    tracker.entries = rest;
    tracker.entries.extend(moved);
    sort(tracker);
    restore(tracker, keep);
    let mut turn = None;
    if moving_current {
        let landed = tracker.turn;
        if landed > acting.start {
            // A delay: the next one in the old order is up.
            restore(tracker, successor);
            turn = Some(TurnReport::default());
        } else if landed < acting.start {
            // Its new place has passed this round: its turn ends.
            let ended = end_turn(tracker);
            let rerolled = match successor {
                Some(next) => {
                    restore(tracker, Some(next));
                    false
                }
                None => new_round(tracker, rerolls),
            };
            turn = Some(TurnReport { ended, rerolled });
        }
    }
    Ok(Moved {
        name: group.unwrap_or(name),
        turn,
    })
}

/// The tracker with hidden combatants as the channel sees them: `???`, without hit
/// points, armour class, effects, note or group. Positions stay, so the turn does too.
pub fn public_view(tracker: &Tracker) -> Tracker {
    let mut out = tracker.clone();
    // A group whose members are all hidden is shown as `??? n`.
    let mut hidden_groups: Vec<String> = Vec::new();
    for e in &tracker.entries {
        if let Some(g) = &e.combat.group
            && !hidden_groups.contains(g)
            && tracker
                .entries
                .iter()
                .filter(|o| o.combat.group.as_ref() == Some(g))
                .all(|o| o.combat.hidden)
        {
            hidden_groups.push(g.clone());
        }
    }
    for e in &mut out.entries {
        if e.combat.hidden {
            e.name = "???".to_owned();
            let group =
                e.combat
                    .group
                    .take()
                    .map(|g| match hidden_groups.iter().position(|h| *h == g) {
                        Some(n) => format!("??? {}", n + 1),
                        None => g,
                    });
            e.combat = Combatant {
                hidden: true,
                group,
                ..Combatant::default()
            };
        }
    }
    // Effects placed by a hidden caster do not name it.
    let hidden: Vec<String> = tracker
        .entries
        .iter()
        .filter(|e| e.combat.hidden)
        .map(|e| e.name.to_lowercase())
        .collect();
    for e in &mut out.entries {
        for f in &mut e.combat.effects {
            if hidden.contains(&f.by.to_lowercase()) {
                f.by = "???".to_owned();
            }
        }
    }
    out
}

// ---- rendering -------------------------------------------------------------------------

/// How much of each combatant a rendering shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    Full,
    Compact,
    Bare,
}

fn effect_text(f: &Effect, round: u32, detail: Detail) -> String {
    let mut out = escape(&f.name);
    if detail == Detail::Full {
        let mut bits = Vec::new();
        if let Some(last) = f.ends_round {
            // The rounds still to start before the one it ends in: a fresh effect of
            // `N` rounds shows `N` (it lasts through its caster's turn `N` rounds on).
            bits.push(match last.saturating_sub(round) {
                0 => "ends this round".to_owned(),
                1 => "1 round".to_owned(),
                left => format!("{left} rounds"),
            });
        }
        if f.concentration {
            bits.push(format!("conc. {}", escape(&f.by)));
        }
        if !bits.is_empty() {
            out.push_str(&format!(" ({})", bits.join(", ")));
        }
    }
    out
}

fn stats_text(c: &Combatant) -> String {
    let mut bits = Vec::new();
    if let Some(hp) = c.hp {
        let mut hp = match c.max_hp {
            Some(max) => format!("HP {hp}/{max}"),
            None => format!("HP {hp}"),
        };
        if c.temp_hp > 0 {
            hp.push_str(&format!(" +{} temp", c.temp_hp));
        }
        bits.push(hp);
    } else if c.temp_hp > 0 {
        bits.push(format!("+{} temp HP", c.temp_hp));
    }
    if let Some(ac) = c.ac {
        bits.push(format!("AC {ac}"));
    }
    bits.join(" · ")
}

fn entry_line(e: &Entry, round: u32, detail: Detail, in_group: bool) -> String {
    let mut line = if in_group {
        format!("   ◦ {}", escape(&e.name))
    } else {
        format!("`{:>3}` {}", e.initiative, escape(&e.name))
    };
    if !e.combat.hidden && !in_group {
        line.push_str(&format!(" (<@{}>)", e.user));
    }
    if e.combat.hidden && e.name != "???" {
        line.push_str(" *(hidden)*");
    }
    if detail == Detail::Bare {
        return line;
    }
    let stats = stats_text(&e.combat);
    if !stats.is_empty() {
        line.push_str(&format!(" — {stats}"));
    }
    if !e.combat.effects.is_empty() {
        let effects: Vec<String> = e
            .combat
            .effects
            .iter()
            .map(|f| effect_text(f, round, detail))
            .collect();
        line.push_str(&format!(" · *{}*", effects.join(", ")));
    }
    if detail == Detail::Full
        && let Some(note) = &e.combat.note
    {
        line.push_str(&format!("\n      📝 {}", escape(note)));
    }
    line
}

fn render_with(tracker: &Tracker, detail: Detail) -> String {
    let mut out = format!("**Initiative** — round {}", tracker.round);
    if tracker.reroll {
        out.push_str(" · rerolled each round");
    }
    out.push('\n');
    if tracker.entries.is_empty() {
        out.push_str("_Nobody has joined yet. Press **Join** or use `/init join`._");
        return out;
    }
    let mut i = 0;
    while i < tracker.entries.len() {
        let range = unit_at(tracker, i);
        let marker = if i == tracker.turn { "▶" } else { "•" };
        let first = &tracker.entries[i];
        match &first.combat.group {
            Some(group) => {
                let all_hidden = tracker
                    .entries
                    .get(range.clone())
                    .unwrap_or_default()
                    .iter()
                    .all(|e| e.combat.hidden);
                out.push_str(&format!(
                    "{marker} `{:>3}` {}",
                    first.initiative,
                    escape(group)
                ));
                if !all_hidden {
                    out.push_str(&format!(" (<@{}>)", first.user));
                }
                out.push('\n');
                for e in tracker.entries.get(range.clone()).unwrap_or_default() {
                    out.push_str(&entry_line(e, tracker.round, detail, true));
                    out.push('\n');
                }
            }
            None => {
                out.push_str(&format!(
                    "{marker} {}\n",
                    entry_line(first, tracker.round, detail, false)
                ));
            }
        }
        i = range.end.max(i + 1);
    }
    out.truncate(out.trim_end().len());
    // Before anyone pressed Next, the ▶ is on the first to act: Next ends their turn.
    if !started(tracker)
        && let Some(first) = tracker.entries.first()
    {
        let who = first.combat.group.as_deref().unwrap_or(&first.name);
        out.push_str(&format!(
            "\n_The fight begins with **{}**: when their turn is done, press **Next**._",
            escape(who)
        ));
    }
    out
}

/// Said when the tracker had to be shortened to fit one message.
pub const SHORTENED_NOTE: &str =
    "✂️ *Shortened to fit one message; `/init view` shows everything.*";

/// The tracker as Discord Markdown, always one message: in full when it fits, else
/// without notes and durations, else names and initiatives only, else cut.
/// Render [`public_view`] for the channel.
pub fn render(tracker: &Tracker) -> String {
    for detail in [Detail::Full, Detail::Compact, Detail::Bare] {
        let text = render_with(tracker, detail);
        if text.chars().count() <= DISCORD_MESSAGE_MAX {
            return text;
        }
    }
    fit_message(
        &render_with(tracker, Detail::Bare),
        DISCORD_MESSAGE_MAX,
        SHORTENED_NOTE,
    )
}

/// Whether any combatant is hidden.
pub fn has_hidden(tracker: &Tracker) -> bool {
    tracker.entries.iter().any(|e| e.combat.hidden)
}

/// `name` as the channel may see it: `???` for a hidden combatant.
pub fn shown_name(tracker: &Tracker, name: &str) -> String {
    match tracker.entries.iter().find(|e| e.name == name) {
        Some(e) if e.combat.hidden => "???".to_owned(),
        _ => name.to_owned(),
    }
}

/// `effect on bearer, …` as the channel may see it.
pub fn ended_text(tracker: &Tracker, ended: &[Ended]) -> String {
    ended
        .iter()
        .map(|(effect, bearer)| {
            let shown = shown_name(tracker, bearer);
            if shown == *bearer {
                format!("{} on {}", escape(effect), escape(bearer))
            } else {
                format!("an effect on {shown}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tracker as `viewer` may see it: [`public_view`], except the combatants
/// `viewer` added, which are whole.
pub fn view_for(tracker: &Tracker, viewer: UserId) -> Tracker {
    let mut out = public_view(tracker);
    for (shown, whole) in out.entries.iter_mut().zip(&tracker.entries) {
        if whole.user == viewer {
            *shown = whole.clone();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const GM: u64 = 9;

    fn spec(text: &str) -> AddSpec {
        parse_add(text).expect("parses")
    }

    fn fight(combatants: &[(&str, i64)]) -> Tracker {
        let mut t = Tracker::default();
        for (i, (name, init)) in combatants.iter().enumerate() {
            add(
                &mut t,
                UserId::new(i as u64 + 1),
                &spec(name),
                *init,
                Some("1d20".into()),
            )
            .expect("added");
        }
        t
    }

    fn names(t: &Tracker) -> Vec<&str> {
        t.entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn up(t: &Tracker) -> &str {
        &t.entries[t.turn].name
    }

    fn effects(t: &Tracker, name: &str) -> Vec<String> {
        t.entries[find(t, UserId::new(GM), name).expect("there")]
            .combat
            .effects
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    /// Damage and healing, which cannot be negative, are bounded from 0.
    #[test]
    fn too_much_damage_or_healing_names_the_range_from_zero() {
        let mut t = fight(&[("orc", 10)]);
        for said in [
            damage(&mut t, 0, 99_999_999_999)
                .unwrap_err()
                .into_message(),
            heal(&mut t, 0, 99_999_999_999).unwrap_err().into_message(),
        ] {
            assert!(
                said.contains(&format!("must be between 0 and {MAX_HP}, not 99999999999.")),
                "{said}"
            );
        }
        assert!(
            damage(&mut t, 0, -3)
                .unwrap_err()
                .into_message()
                .contains("cannot be negative")
        );
    }

    /// A group's name, as the tracker shows it, is not a combatant's: the refusal says
    /// how to name one of its combatants.
    #[test]
    fn a_groups_name_says_how_to_name_one_of_its_combatants() {
        let mut t = Tracker::default();
        add(
            &mut t,
            UserId::new(GM),
            &spec("orc x2 group:orcs"),
            12,
            None,
        )
        .expect("room");
        let said = find(&t, UserId::new(5), "Orcs").unwrap_err().into_message();
        assert!(
            said.contains(
                "`Orcs` is a group (`orc 1`, `orc 2`): name one of its combatants, e.g. `orc 1`."
            ),
            "{said}"
        );
        let said = crate::domain::leave(&mut t, UserId::new(GM), Some("orcs"), None)
            .unwrap_err()
            .into_message();
        assert!(said.contains("is a group"), "{said}");
        assert!(
            !find(&t, UserId::new(5), "trolls")
                .unwrap_err()
                .into_message()
                .contains("group"),
        );
    }

    /// A quoted name is a name, whatever words it holds: `"Hidden Ogre"` is not a
    /// hidden `Ogre`, nor `"Ogre x2"` two ogres; settings outside the quotes still count.
    #[test]
    fn a_quoted_name_stays_whole() {
        let s = spec("\"Hidden Ogre\"");
        assert_eq!(
            (s.name.as_str(), s.hidden, s.count),
            ("Hidden Ogre", false, 1)
        );
        let s = spec("“Ogre x2” hidden x3 hp:9");
        assert_eq!((s.name.as_str(), s.hidden, s.count), ("Ogre x2", true, 3));
        assert_eq!(s.hp, Some(9));
        let s = spec("Big \"hp:3\" note:left   \"flank\"");
        assert_eq!(s.name, "Big hp:3");
        assert_eq!(s.hp, None);
        assert_eq!(s.note.as_deref(), Some("left \"flank\""));
        assert!(
            parse_add("\"Hidden Ogre")
                .unwrap_err()
                .into_message()
                .contains("closing quote")
        );
    }

    #[test]
    fn add_reads_counts_groups_and_settings() {
        let s = spec("goblin x3 group:goblins hp:7 ac:15 save:+1 hidden note:sneaky one");
        assert_eq!(s.name, "goblin");
        assert_eq!(s.count, 3);
        assert_eq!(s.group.as_deref(), Some("goblins"));
        assert_eq!((s.hp, s.ac, s.con_save), (Some(7), Some(15), Some(1)));
        assert!(s.hidden);
        assert_eq!(s.note.as_deref(), Some("sneaky one"));
        assert!(
            parse_add("orc x0")
                .unwrap_err()
                .into_message()
                .contains("between 1 and 20")
        );
        assert!(
            parse_add("orc colour:red")
                .unwrap_err()
                .into_message()
                .contains("unknown setting")
        );
        assert!(
            parse_add("orc hp:lots")
                .unwrap_err()
                .into_message()
                .contains("whole number")
        );

        let mut t = Tracker::default();
        let added = add(&mut t, UserId::new(GM), &s, 12, None).expect("room");
        assert_eq!(added, ["goblin 1", "goblin 2", "goblin 3"]);
        // More goblins join the group at its initiative, numbered on.
        let more = add(
            &mut t,
            UserId::new(GM),
            &spec("goblin x2 group:Goblins"),
            3,
            None,
        )
        .expect("room");
        assert_eq!(more, ["goblin 4", "goblin 5"]);
        assert!(t.entries.iter().all(|e| e.initiative == 12));
        assert!(add(&mut t, UserId::new(GM), &spec("goblin 1"), 1, None).is_err());
        // All or nothing at the cap.
        let err = add(&mut t, UserId::new(GM), &spec("kobold x16"), 1, None).unwrap_err();
        assert!(err.message().contains("do not fit"), "{err}");
        assert_eq!(t.entries.len(), 5);
    }

    #[test]
    fn a_signed_initiative_is_a_modifier_on_the_d20() {
        let roll = |t: &str| InitiativeInput::Roll(t.to_owned());
        assert_eq!(initiative_input("15"), Ok(InitiativeInput::Fixed(15)));
        assert_eq!(initiative_input(" 0 "), Ok(InitiativeInput::Fixed(0)));
        assert_eq!(initiative_input("+3"), Ok(roll("1d20+3")));
        assert_eq!(initiative_input("-1"), Ok(roll("1d20-1")));
        assert_eq!(initiative_input("+ 2"), Ok(roll("1d20+2")));
        assert_eq!(initiative_input("adv"), Ok(roll("2d20kh1")));
        assert_eq!(initiative_input("adv+2"), Ok(roll("2d20kh1+2")));
        assert_eq!(initiative_input("Advantage -1"), Ok(roll("2d20kh1-1")));
        assert_eq!(initiative_input("dis+2"), Ok(roll("2d20kl1+2")));
        assert_eq!(initiative_input("eadv+1"), Ok(roll("3d20kh1+1")));
        assert_eq!(initiative_input("1d20+5"), Ok(roll("1d20+5")));
        assert_eq!(initiative_input("-d20"), Ok(roll("-d20")));
        assert!(
            initiative_input("adv+x")
                .unwrap_err()
                .into_message()
                .contains("`adv+2`")
        );
        assert!(initiative_input("").is_err());
    }

    #[test]
    fn a_long_combatant_name_is_refused_as_a_combatants() {
        let long = "W".repeat(MAX_NAME_LEN + 1);
        let mut t = Tracker::default();
        let err = add(&mut t, UserId::new(GM), &spec(&long), 1, None).unwrap_err();
        assert!(
            err.message()
                .starts_with("Combatant names are at most 32 characters"),
            "{err}"
        );
        let err = add(
            &mut t,
            UserId::new(GM),
            &spec(&format!("orc group:{long}")),
            1,
            None,
        )
        .unwrap_err();
        assert!(
            err.message().starts_with("Group names are at most 32"),
            "{err}"
        );
    }

    #[test]
    fn groups_take_one_turn_and_stay_together() {
        let mut t = fight(&[("Vex", 15), ("Pike", 12)]);
        add(
            &mut t,
            UserId::new(GM),
            &spec("goblin x2 group:goblins"),
            12,
            None,
        )
        .expect("room");
        // Pike (joined first) ties with the goblins and stays ahead of them.
        assert_eq!(names(&t), ["Vex", "Pike", "goblin 1", "goblin 2"]);
        next(&mut t, None).expect("next");
        next(&mut t, None).expect("next");
        assert_eq!(up(&t), "goblin 1");
        assert_eq!(current(&t).len(), 2);
        next(&mut t, None).expect("next");
        assert_eq!((up(&t), t.round), ("Vex", 2));
        prev(&mut t).expect("prev");
        assert_eq!((up(&t), t.round), ("goblin 1", 1));
        // A newcomer joining the goblins' initiative does not split them.
        add(&mut t, UserId::new(GM), &spec("ogre"), 12, None).expect("room");
        assert_eq!(names(&t), ["Vex", "Pike", "goblin 1", "goblin 2", "ogre"]);
        assert_eq!(up(&t), "goblin 1");
    }

    /// Before anyone pressed Next the tracker says who the fight begins with (the ▶)
    /// and that Next ends their turn; once it began, it says nothing of it.
    #[test]
    fn the_tracker_says_who_the_fight_begins_with_until_it_began() {
        let mut t = fight(&[("Zed", 15), ("Yan", 12)]);
        add(&mut t, UserId::new(GM), &spec("Xu"), 20, None).expect("room");
        assert_eq!(up(&t), "Xu");
        let shown = render(&t);
        assert!(shown.contains("▶ ` 20` Xu"), "{shown}");
        assert!(
            shown.ends_with(
                "_The fight begins with **Xu**: when their turn is done, press **Next**._"
            ),
            "{shown}"
        );
        next(&mut t, None).expect("next");
        assert_eq!(up(&t), "Zed");
        assert!(!render(&t).contains("The fight begins"), "{}", render(&t));
    }

    #[test]
    fn prev_stops_at_the_first_turn_and_move_keeps_the_turn() {
        let mut t = fight(&[("A", 20), ("B", 10), ("C", 5)]);
        assert!(
            prev(&mut t)
                .unwrap_err()
                .into_message()
                .contains("first turn")
        );
        next(&mut t, None).expect("next");
        assert_eq!(up(&t), "B");
        let at = find(&t, UserId::new(GM), "c").expect("c");
        move_to(&mut t, at, 30, None).expect("moved");
        assert_eq!(names(&t), ["C", "A", "B"]);
        assert_eq!(up(&t), "B", "the turn stays with B");
        assert_eq!(t.entries[0].initiative, 30);
    }

    /// Moving the combatant whose turn it is delays it: the next one in the order is
    /// up in the same round, and nobody is skipped.
    #[test]
    fn moving_the_current_combatant_passes_the_turn_without_skipping_anyone() {
        let mut t = fight(&[("A", 15), ("B", 10), ("C", 5)]);
        next(&mut t, None).expect("next");
        let b = find(&t, UserId::new(GM), "b").expect("b");
        let moved = move_to(&mut t, b, 1, None).expect("moved");
        assert_eq!(names(&t), ["A", "C", "B"]);
        assert!(moved.turn.is_some(), "the turn passed on");
        assert_eq!((up(&t), t.round), ("C", 1));
        next(&mut t, None).expect("next");
        assert_eq!((up(&t), t.round), ("B", 1));
        next(&mut t, None).expect("next");
        assert_eq!((up(&t), t.round), ("A", 2));

        // Moved ahead of its place: its turn ends, the next one is up, it goes first
        // next round.
        let mut t = fight(&[("A", 15), ("B", 10), ("C", 5)]);
        next(&mut t, None).expect("next");
        let b = find(&t, UserId::new(GM), "b").expect("b");
        move_to(&mut t, b, 20, None).expect("moved");
        assert_eq!((up(&t), t.round), ("C", 1));
        next(&mut t, None).expect("next");
        assert_eq!((up(&t), t.round), ("B", 2));

        // The last one moved to the top: the next round starts with it.
        let mut t = fight(&[("A", 15), ("B", 10), ("C", 5)]);
        next(&mut t, None).expect("next");
        next(&mut t, None).expect("next");
        let c = find(&t, UserId::new(GM), "c").expect("c");
        move_to(&mut t, c, 20, None).expect("moved");
        assert_eq!((up(&t), t.round), ("C", 2));

        // Moved within its own place: still its turn.
        let mut t = fight(&[("A", 15), ("B", 10), ("C", 5)]);
        next(&mut t, None).expect("next");
        let b = find(&t, UserId::new(GM), "b").expect("b");
        assert!(move_to(&mut t, b, 9, None).expect("moved").turn.is_none());
        assert_eq!((up(&t), t.round), ("B", 1));

        // Moving anyone else never changes whose turn it is.
        let mut t = fight(&[("A", 15), ("B", 10), ("C", 5)]);
        next(&mut t, None).expect("next");
        for (name, to) in [("a", 12), ("c", 30), ("c", 1), ("a", 20)] {
            let at = find(&t, UserId::new(GM), name).expect("there");
            assert!(move_to(&mut t, at, to, None).expect("moved").turn.is_none());
            assert_eq!((up(&t), t.round), ("B", 1), "after moving {name} to {to}");
        }
    }

    /// A player's combatant named like someone else's hidden one is its own: finding,
    /// moving and keeping the turn never reach the hidden one.
    #[test]
    fn a_name_shared_with_a_hidden_combatant_reaches_only_the_players_own() {
        let player = UserId::new(1);
        let mut t = fight(&[("Vex", 15)]);
        add(&mut t, UserId::new(GM), &spec("assassin hidden"), 12, None).expect("room");
        add(&mut t, player, &spec("assassin"), 5, None).expect("not taken for them");
        let theirs = find(&t, player, "assassin").expect("their own");
        assert_eq!(
            (t.entries[theirs].user, t.entries[theirs].initiative),
            (player, 5)
        );
        let gms = find(&t, UserId::new(GM), "assassin").expect("the GM's own");
        assert!(t.entries[gms].combat.hidden);
        next(&mut t, None).expect("next");
        assert_eq!(t.entries[t.turn].initiative, 12, "the hidden one is up");
        move_to(&mut t, theirs, 20, None).expect("moved");
        let hidden = t.entries.iter().find(|e| e.combat.hidden).expect("hidden");
        assert_eq!(hidden.initiative, 12, "the hidden one stays where it was");
        assert!(t.entries[t.turn].combat.hidden, "and keeps the turn");
        assert_eq!(t.entries[0].user, player);
    }

    /// Two players' combatants of one name: a third player's bare name is refused,
    /// naming both owners, and `Name (<@id>)` reaches the one they mean; an owner's
    /// bare name still means their own.
    #[test]
    fn a_name_two_other_players_share_must_say_whose() {
        let (alice, bob, gm) = (UserId::new(1), UserId::new(2), UserId::new(GM));
        let mut t = Tracker::default();
        crate::domain::join(&mut t, entry_for(alice, "Goblin", 15)).expect("room");
        crate::domain::join(&mut t, entry_for(bob, "Goblin", 10)).expect("room");
        let refused = find(&t, gm, "goblin").expect_err("ambiguous");
        assert_eq!(
            refused.message(),
            "Two combatants are named `Goblin` (<@1>'s and <@2>'s); say whose: `Goblin (@player)`, picking the player from Discord's @ list."
        );
        for (text, owner) in [
            ("Goblin (<@2>)", bob),
            ("goblin <@!1>", alice),
            (" Goblin ( <@2> ) ", bob),
        ] {
            let at = find(&t, gm, text).expect(text);
            assert_eq!(t.entries[at].user, owner, "{text}");
        }
        assert_eq!(
            find(&t, gm, "Goblin (<@3>)")
                .expect_err("not theirs")
                .into_message(),
            "<@3> has no combatant `Goblin` in this channel's initiative."
        );
        assert_eq!(t.entries[find(&t, bob, "goblin").expect("own")].user, bob);
        assert_eq!(
            t.entries[find(&t, alice, "goblin").expect("own")].user,
            alice
        );
        // Damage through the disambiguated name hits only the one named.
        let at = find(&t, gm, "Goblin (<@2>)").expect("bob's");
        t.entries[at].combat.hp = Some(7);
        assert_eq!(
            t.entries
                .iter()
                .map(|e| (e.user, e.combat.hp))
                .collect::<Vec<_>>(),
            vec![(alice, None), (bob, Some(7))]
        );
    }

    /// A combatant whose own name looks like a mention is still found by it.
    #[test]
    fn a_name_that_looks_like_a_mention_is_found_as_written() {
        let mut t = Tracker::default();
        crate::domain::join(&mut t, entry_for(UserId::new(1), "Imp (<@5>)", 15)).expect("room");
        let at = find(&t, UserId::new(GM), "imp (<@5>)").expect("as written");
        assert_eq!(t.entries[at].name, "Imp (<@5>)");
    }

    fn entry_for(user: UserId, name: &str, initiative: i64) -> Entry {
        Entry {
            name: name.to_owned(),
            user,
            initiative,
            combat: Combatant::default(),
        }
    }

    #[test]
    fn an_effect_ends_at_the_end_of_its_casters_turn_n_rounds_later() {
        let mut t = fight(&[("Cleric", 20), ("Fighter", 15), ("Orc", 10)]);
        next(&mut t, None).expect("next"); // round 1: the fighter is up
        // Placed during the fighter's turn on the orc, two rounds: it ends at the end
        // of the fighter's turn in round 3.
        let at = find(&t, UserId::new(GM), "orc").expect("orc");
        let added = add_effect(
            &mut t,
            UserId::new(GM),
            at,
            "Frightened",
            Some(2),
            None,
            false,
        )
        .expect("ok");
        assert_eq!(added.effect.by, "Fighter");
        assert_eq!(added.effect.ends_round, Some(3));
        let mut ended_at = None;
        for step in 0..12 {
            let before = (t.round, up(&t).to_owned());
            let report = next(&mut t, None).expect("next");
            if !report.ended.is_empty() {
                assert_eq!(report.ended, [("Frightened".into(), "Orc".into())]);
                ended_at = Some((step, before));
                break;
            }
            assert_eq!(effects(&t, "orc"), ["Frightened"]);
        }
        assert_eq!(ended_at.map(|(_, b)| b), Some((3, "Fighter".to_owned())));
        assert!(effects(&t, "orc").is_empty());
    }

    #[test]
    fn an_effect_whose_caster_left_follows_its_bearer_and_none_lasts() {
        let mut t = fight(&[("Wizard", 20), ("Orc", 10)]);
        let orc = find(&t, UserId::new(GM), "orc").expect("orc");
        add_effect(
            &mut t,
            UserId::new(GM),
            orc,
            "Slowed",
            Some(1),
            Some("wizard"),
            false,
        )
        .expect("ok");
        add_effect(&mut t, UserId::new(GM), orc, "Prone", None, None, false).expect("ok");
        super::super::leave(&mut t, UserId::new(1), Some("Wizard"), None).expect("left");
        // Round 1: the orc's turn ends, but the last round is 2.
        assert!(next(&mut t, None).expect("next").ended.is_empty());
        let report = next(&mut t, None).expect("next");
        assert_eq!(report.ended, [("Slowed".into(), "Orc".into())]);
        assert_eq!(effects(&t, "orc"), ["Prone"]);
        let at = find(&t, UserId::new(GM), "orc").expect("orc");
        assert_eq!(
            remove_effect(&mut t, at, "prone").expect("removed"),
            "Prone"
        );
        assert!(remove_effect(&mut t, at, "prone").is_err());
    }

    /// A fresh effect shows the duration typed; the count goes down at the top of each
    /// round, and the round it ends in says so.
    #[test]
    fn an_effect_shows_the_rounds_typed_and_counts_down() {
        let mut t = fight(&[("Cleric", 20), ("Orc", 10)]);
        let orc = find(&t, UserId::new(GM), "orc").expect("orc");
        for (effect, rounds) in [("Blessed", 1), ("Slowed", 10)] {
            add_effect(
                &mut t,
                UserId::new(GM),
                orc,
                effect,
                Some(rounds),
                Some("cleric"),
                false,
            )
            .expect("ok");
        }
        assert!(render(&t).contains("Blessed (1 round)"), "{}", render(&t));
        assert!(render(&t).contains("Slowed (10 rounds)"), "{}", render(&t));
        next(&mut t, None).expect("next");
        next(&mut t, None).expect("next");
        assert_eq!(t.round, 2);
        assert!(
            render(&t).contains("Blessed (ends this round)"),
            "{}",
            render(&t)
        );
        assert!(render(&t).contains("Slowed (9 rounds)"), "{}", render(&t));
        next(&mut t, None).expect("next");
        assert!(
            !render(&t).contains("Blessed"),
            "ended with the cleric's turn: {}",
            render(&t)
        );
    }

    #[test]
    fn effects_are_bounded() {
        let mut t = fight(&[("A", 1)]);
        for i in 0..MAX_EFFECTS {
            add_effect(
                &mut t,
                UserId::new(GM),
                0,
                &format!("e{i}"),
                Some(1),
                None,
                false,
            )
            .expect("room");
        }
        assert!(
            add_effect(&mut t, UserId::new(GM), 0, "one more", None, None, false)
                .unwrap_err()
                .into_message()
                .contains("8 effects")
        );
        // The same effect again replaces it.
        add_effect(&mut t, UserId::new(GM), 0, "E3", Some(5), None, false).expect("replaces");
        assert!(
            add_effect(
                &mut t,
                UserId::new(GM),
                0,
                &"x".repeat(33),
                None,
                None,
                false
            )
            .is_err()
        );
        assert!(add_effect(&mut t, UserId::new(GM), 1, "x", Some(0), None, false).is_err());
        assert!(
            add_effect(
                &mut t,
                UserId::new(GM),
                0,
                "x",
                Some(MAX_DURATION + 1),
                None,
                false
            )
            .is_err()
        );
        assert!(set_note(&mut t, 0, &"n".repeat(MAX_NOTE_LEN + 1)).is_err());
        assert_eq!(set_note(&mut t, 0, "  ").expect("clears"), None);
    }

    #[test]
    fn damage_takes_temporary_hit_points_first_and_asks_for_concentration() {
        let mut t = fight(&[("Cleric", 20), ("Fighter", 15)]);
        let cleric = find(&t, UserId::new(GM), "cleric").expect("cleric");
        set_hp(&mut t, cleric, Some(30), None, Some(5)).expect("hp");
        assert_eq!(t.entries[cleric].combat.max_hp, Some(30));
        let fighter = find(&t, UserId::new(GM), "fighter").expect("fighter");
        add_effect(
            &mut t,
            UserId::new(GM),
            fighter,
            "Blessed",
            Some(10),
            Some("Cleric"),
            true,
        )
        .expect("ok");
        add_effect(
            &mut t,
            UserId::new(GM),
            cleric,
            "Blessed",
            Some(10),
            None,
            true,
        )
        .expect("ok");
        assert_eq!(concentrating_on(&t, "cleric"), ["Blessed"]);

        let report = damage(&mut t, cleric, 8).expect("damage");
        assert_eq!((report.absorbed, report.hp), (5, Some(27)));
        assert_eq!(t.entries[cleric].combat.temp_hp, 0);
        let check = report.concentration.expect("a save");
        assert_eq!((check.dc, check.modifier), (10, None));
        assert_eq!(concentration_dc(25), 12);
        assert_eq!(concentration_dc(21), 10);

        // A new concentration spell ends the old one everywhere.
        let added = add_effect(
            &mut t,
            UserId::new(GM),
            fighter,
            "Hasted",
            Some(10),
            Some("Cleric"),
            true,
        )
        .expect("ok");
        assert_eq!(added.replaced.len(), 2);
        assert!(effects(&t, "cleric").is_empty());

        // Dropping to 0 ends concentration without a save.
        let report = damage(&mut t, cleric, 100).expect("damage");
        assert_eq!(report.hp, Some(0));
        assert!(report.concentration.is_none());
        assert_eq!(report.dropped, [("Hasted".into(), "Fighter".into())]);

        assert_eq!(
            heal(&mut t, cleric, 50).expect("heal"),
            30,
            "up to the maximum"
        );
        assert!(damage(&mut t, cleric, -1).is_err());
        assert!(
            heal(&mut t, fighter, 5)
                .unwrap_err()
                .into_message()
                .contains("no hit points")
        );
        assert!(damage(&mut t, cleric, MAX_HP + 1).is_err());
    }

    #[test]
    fn reroll_happens_at_the_top_of_a_round_only_when_on() {
        let mut t = fight(&[("A", 20), ("B", 10)]);
        add(&mut t, UserId::new(GM), &spec("fixed"), 15, None).expect("room");
        let mut rolls = Rerolls::new();
        rolls.insert("entry:a".into(), 1);
        rolls.insert("entry:b".into(), 30);
        next(&mut t, Some(&rolls)).expect("next");
        next(&mut t, Some(&rolls)).expect("next");
        let report = next(&mut t, Some(&rolls)).expect("next");
        assert!(!report.rerolled, "off by default");
        t.reroll = true;
        assert!(!next_wraps(&t));
        next(&mut t, Some(&rolls)).expect("next");
        next(&mut t, Some(&rolls)).expect("next");
        assert!(next_wraps(&t));
        let report = next(&mut t, Some(&rolls)).expect("next");
        assert!(report.rerolled);
        assert_eq!(names(&t), ["B", "fixed", "A"]);
        assert_eq!((t.turn, t.round), (0, 3));
        assert_eq!(
            reroll_expressions(&t),
            [
                ("entry:b".to_owned(), "1d20".to_owned()),
                ("entry:a".to_owned(), "1d20".to_owned())
            ]
        );
    }

    #[test]
    fn skip_goes_to_the_top_of_a_later_round_ending_effects_on_the_way() {
        let mut t = fight(&[("A", 20), ("B", 10)]);
        add_effect(
            &mut t,
            UserId::new(GM),
            1,
            "Stunned",
            Some(1),
            Some("A"),
            false,
        )
        .expect("ok");
        let report = skip(&mut t, 2, None).expect("skip");
        assert_eq!((t.round, t.turn), (3, 0));
        assert_eq!(report.ended, [("Stunned".into(), "B".into())]);
        assert!(skip(&mut t, 0, None).is_err());
        assert!(skip(&mut t, MAX_SKIP + 1, None).is_err());
    }

    #[test]
    fn hidden_combatants_show_as_question_marks_except_to_their_adder() {
        let mut t = fight(&[("Vex", 15)]);
        add(
            &mut t,
            UserId::new(GM),
            &spec("assassin hp:40 ac:17 hidden"),
            18,
            None,
        )
        .expect("room");
        add(
            &mut t,
            UserId::new(GM),
            &spec("shade x2 group:shades hidden"),
            5,
            None,
        )
        .expect("room");
        let shown = render(&public_view(&t));
        assert!(
            !shown.contains("assassin") && !shown.contains("40"),
            "{shown}"
        );
        assert!(!shown.contains("shade"), "{shown}");
        assert!(
            shown.contains("` 18` ???") && shown.contains("`  5` ??? 1"),
            "{shown}"
        );
        assert!(shown.contains("Vex"), "{shown}");
        let mine = render(&view_for(&t, UserId::new(GM)));
        assert!(
            mine.contains("assassin") && mine.contains("HP 40/40"),
            "{mine}"
        );
        assert!(mine.contains("*(hidden)*"), "{mine}");
        let theirs = render(&view_for(&t, UserId::new(1)));
        assert!(!theirs.contains("assassin"), "{theirs}");
        assert_eq!(shown_name(&t, "assassin"), "???");
    }

    #[test]
    fn the_longest_tracker_is_still_one_message() {
        let mut t = Tracker {
            round: u32::MAX - 1,
            reroll: true,
            ..Tracker::default()
        };
        for i in 0..MAX_TRACKER_ENTRIES {
            let name: String = std::iter::repeat_n('W', MAX_NAME_LEN - 2)
                .chain(format!("{i:02}").chars())
                .collect();
            let s = AddSpec {
                name,
                count: 1,
                hp: Some(-MAX_HP),
                ac: Some(MAX_AC),
                note: Some("n".repeat(MAX_NOTE_LEN)),
                group: (i % 2 == 0).then(|| format!("{}{i:02}", "G".repeat(MAX_NAME_LEN - 2))),
                ..AddSpec::default()
            };
            add(&mut t, UserId::new(u64::MAX - i as u64), &s, i64::MIN, None).expect("room");
            let at = t.entries.len() - 1;
            let at = find(&t, UserId::new(GM), &t.entries[at].name.clone()).expect("there");
            set_hp(&mut t, at, None, None, Some(MAX_HP)).expect("temp");
            for e in 0..MAX_EFFECTS {
                let effect = format!("{}{e}", "E".repeat(MAX_EFFECT_LEN - 1));
                add_effect(
                    &mut t,
                    UserId::new(GM),
                    at,
                    &effect,
                    Some(MAX_DURATION),
                    None,
                    true,
                )
                .expect("room");
            }
        }
        let text = render(&t);
        assert!(
            text.chars().count() <= DISCORD_MESSAGE_MAX,
            "{}",
            text.chars().count()
        );
        assert!(text.starts_with("**Initiative**"), "{text}");
        // A small fight shows everything.
        let mut small = fight(&[("Vex", 15)]);
        set_hp(&mut small, 0, Some(20), Some(25), Some(3)).expect("hp");
        set_options(&mut small, 0, Some(16), None, None).expect("ac");
        add_effect(
            &mut small,
            UserId::new(GM),
            0,
            "Blessed",
            Some(3),
            None,
            true,
        )
        .expect("ok");
        set_note(&mut small, 0, "has the map").expect("note");
        let text = render(&small);
        assert!(text.contains("HP 20/25 +3 temp · AC 16"), "{text}");
        assert!(text.contains("Blessed (3 rounds, conc. Vex)"), "{text}");
        assert!(text.contains("📝 has the map"), "{text}");
    }

    #[test]
    fn old_trackers_read_and_write_as_before() {
        let raw = r#"{"entries":[{"name":"A","user":"5","initiative":3}],"turn":0,"round":2}"#;
        let t: Tracker = serde_json::from_str(raw).expect("old");
        assert_eq!(t.entries[0].combat, Combatant::default());
        assert!(!t.reroll);
        assert_eq!(serde_json::to_string(&t).expect("json"), raw);
        let mut t = t;
        set_hp(&mut t, 0, Some(7), None, None).expect("hp");
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["entries"][0]["hp"], 7);
        assert_eq!(json["entries"][0]["max_hp"], 7);
    }
}
