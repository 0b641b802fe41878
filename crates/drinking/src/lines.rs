//! The game's themed lines: several per event, one picked at random each time by the
//! game's [`DiceSource::pick`] (seeded in tests), so the table does not read the same
//! sentence all night. A line is flavour under the facts: the facts of a message (who
//! rolled what, who drinks) are written by [`crate::commands`] and never depend on
//! which line was picked.
//!
//! Placeholders: `{player}` (who acted), `{die}` (the face rolled), `{target}` (who was
//! handed a drink), `{players}` (who is in a roll-off), `{winner}` and `{loser}`.

use crate::domain::DiceSource;

/// What happened, for picking a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An ordinary roll.
    Roll,
    /// The crit value: a drink to hand out.
    Crit,
    /// The crit value with nobody else in the game: the roller drinks it.
    CritAlone,
    /// The fail value: a drink for the roller.
    Fail,
    /// A tie starts a roll-off.
    RollOff,
    /// A drink was handed to somebody.
    Assigned,
    /// The game is over.
    GameOver,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::Roll,
        Event::Crit,
        Event::CritAlone,
        Event::Fail,
        Event::RollOff,
        Event::Assigned,
        Event::GameOver,
    ];

    /// The lines of this event.
    pub fn lines(self) -> &'static [&'static str] {
        match self {
            Event::Roll => &[
                "The die settles on {die}. The tavern shrugs.",
                "{die}. Not glory, not shame: just a number.",
                "{player} rolls a {die} and reaches for their mug anyway.",
                "A {die}! The barkeep nods politely.",
                "{die}. Somewhere a bard composes a very short song.",
            ],
            Event::Crit => &[
                "The tavern roars! {player} holds the fate of a drink.",
                "A crit! Somebody at this table is about to get thirsty.",
                "{player} rolls {die} and grins like a goblin with a key.",
                "Critical hit! Choose your victim wisely, {player}.",
                "The dice gods smile on {player}. Someone else will pay for it.",
            ],
            Event::CritAlone => &[
                "Nobody else to pour for, {player}: this one is yours.",
                "{player} rolls {die} to an empty table and toasts themselves.",
                "A crit with nobody to share it. Cheers, {player}.",
                "The tavern is quiet tonight; {player} drinks to their own {die}.",
            ],
            Event::Fail => &[
                "Critical fail! {player} drinks, and the tavern cheers.",
                "{die}... The die has spoken, {player}: bottoms up.",
                "Ouch. {player} fumbles, and the mug is already waiting.",
                "A natural {die}. Even the rats look away, {player}.",
                "{player} rolls {die}. The barkeep is already pouring.",
            ],
            Event::RollOff => &[
                "A tie! {players} stare each other down: roll again!",
                "Steel meets steel: {players} go to a roll-off.",
                "The tavern holds its breath for {players}. Roll-off!",
                "Nobody blinks, so {players} roll once more.",
            ],
            Event::Assigned => &[
                "{player} slides a drink across the table to {target}.",
                "{target}, you have been chosen. Drink up!",
                "By decree of {player}, {target} drinks.",
                "{target} receives a gift from {player}: a full mug.",
                "{player} points at {target}. The tavern obeys.",
            ],
            Event::GameOver => &[
                "The dice rest. {winner} stands tall; {loser} pays the toll.",
                "Game over! {winner} gloats, {loser} drinks.",
                "Another round survives the night. Hail {winner}! Pity {loser}.",
                "The tavern settles its debts: {loser} drinks, {winner} smirks.",
            ],
        }
    }
}

/// `template` with its placeholders filled from `vars` (`("player", "alice")`);
/// a placeholder with no value is left out.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                if let Some((_, value)) = vars.iter().find(|(k, _)| *k == name) {
                    out.push_str(value);
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A line for `event`, picked by `dice`, filled from `vars`.
pub fn line(dice: &dyn DiceSource, event: Event, vars: &[(&str, &str)]) -> String {
    let lines = event.lines();
    let index = dice.pick(lines.len()).min(lines.len().saturating_sub(1));
    lines.get(index).map_or_else(String::new, |t| fill(t, vars))
}

/// A line for `event` fixed by `key` (the same key gives the same line): for text that
/// is redrawn, such as the public game message, which must not change on every edit.
pub fn stable_line(key: &str, event: Event, vars: &[(&str, &str)]) -> String {
    let lines = event.lines();
    let hash = key
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let index = usize::try_from(hash % lines.len().max(1) as u64).unwrap_or(0);
    lines.get(index).map_or_else(String::new, |t| fill(t, vars))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::testing::ScriptedDice;

    const KNOWN: [&str; 6] = ["player", "die", "target", "players", "winner", "loser"];

    fn vars() -> Vec<(&'static str, &'static str)> {
        KNOWN.iter().map(|k| (*k, "X")).collect()
    }

    #[test]
    fn every_line_is_well_formed() {
        for event in Event::ALL {
            assert!(event.lines().len() >= 3, "{event:?} has several lines");
            for template in event.lines() {
                let mut rest = *template;
                while let Some(open) = rest.find('{') {
                    let close = rest[open..].find('}').expect("a closed placeholder") + open;
                    let name = &rest[open + 1..close];
                    assert!(KNOWN.contains(&name), "{template}: unknown {{{name}}}");
                    rest = &rest[close + 1..];
                }
                let filled = fill(template, &vars());
                assert!(!filled.contains(['{', '}']), "{filled}");
                assert!(!filled.trim().is_empty() && filled.len() < 200, "{filled}");
                assert!(
                    !filled.contains(['*', '_', '`', '@']),
                    "no markdown: {filled}"
                );
            }
        }
    }

    #[test]
    fn lines_vary_and_a_seed_repeats_them() {
        let dice = ScriptedDice::new(None).seed(7);
        for event in Event::ALL {
            let seen: BTreeSet<String> = (0..50).map(|_| line(&dice, event, &vars())).collect();
            assert!(seen.len() > 1, "{event:?} always says the same: {seen:?}");
        }
        let a = ScriptedDice::new(None).seed(42);
        let b = ScriptedDice::new(None).seed(42);
        let from_a: Vec<String> = (0..20).map(|_| line(&a, Event::Crit, &vars())).collect();
        let from_b: Vec<String> = (0..20).map(|_| line(&b, Event::Crit, &vars())).collect();
        assert_eq!(from_a, from_b);
    }

    #[test]
    fn filling_leaves_unknown_placeholders_out() {
        assert_eq!(
            fill(
                "{player} hands {target} a {drink}",
                &[("player", "a"), ("target", "b")]
            ),
            "a hands b a "
        );
        assert_eq!(fill("no {end", &[]), "no {end");
        assert_eq!(
            stable_line("g1", Event::GameOver, &vars()),
            stable_line("g1", Event::GameOver, &vars())
        );
    }
}
