//! The combat tracker's operations: each [`CombatAction`] reads the channel's
//! tracker, rolls what it needs in the [`DicePool`] (damage, healing, initiative,
//! concentration saves, rerolls), applies [`crate::domain::combat`]'s rules and says what
//! happened in a [`Said`]. The controller commits the tracker like any other
//! `/init` change (compare-and-set on `init_{channel_id}`).

use crate::RollsError;
use crate::domain::combat::{self as rules, AddSpec, Rerolls, TurnReport};
use crate::domain::{Tracker, UserId, escape};
use crate::history::RollLog;
use crate::ops::Env;
use crate::pool::DicePool;

/// One change (or view) of the combat tracker.
#[derive(Debug, Clone)]
pub enum CombatAction {
    /// `/init add`: monsters and other combatants run by the caller.
    Add(AddSpec),
    /// `/init hp name [value] [max] [temp]`: `value` is `N` (set), `+N` (heal) or
    /// `-N` (damage).
    Hp {
        name: String,
        value: Option<String>,
        max: Option<i64>,
        temp: Option<i64>,
    },
    /// `/init damage name expression`.
    Damage {
        name: String,
        expression: String,
    },
    /// `/init heal name expression`.
    Heal {
        name: String,
        expression: String,
    },
    /// `/init effect add name effect [duration] [by] [concentration]`.
    EffectAdd {
        name: String,
        effect: String,
        duration: Option<u32>,
        by: Option<String>,
        concentration: bool,
    },
    /// `/init effect remove name effect`.
    EffectRemove {
        name: String,
        effect: String,
    },
    /// `/init effect drop name`: `name` stops concentrating.
    Drop {
        name: String,
    },
    /// `/init note name [text]` (no text clears).
    Note {
        name: String,
        text: String,
    },
    /// `/init opt name [ac] [con-save] [hidden]`.
    Opt {
        name: String,
        ac: Option<i64>,
        con_save: Option<i64>,
        hidden: Option<bool>,
    },
    Prev,
    /// `/init move name initiative`.
    Move {
        name: String,
        initiative: i64,
    },
    /// `/init skip [rounds]`.
    Skip {
        rounds: u32,
    },
    /// `/init reroll on|off`.
    Reroll {
        on: bool,
    },
    /// `/init view`: the tracker with the caller's hidden combatants shown.
    View,
}

/// What an action says.
#[derive(Debug, Clone, Default)]
pub struct Said {
    pub message: String,
    /// About a hidden combatant: for the caller's eyes only.
    pub private: bool,
    /// Whom to notify (a new turn).
    pub ping: Vec<UserId>,
}

impl Said {
    fn public(message: String) -> Said {
        Said {
            message,
            ..Said::default()
        }
    }

    fn about(tracker: &Tracker, at: usize, message: String) -> Said {
        Said {
            message,
            private: tracker.entries.get(at).is_some_and(|e| e.combat.hidden),
            ping: Vec::new(),
        }
    }
}

/// A rolled expression: its whole-number total and its rendering.
/// Recorded in `log` under a roll id.
async fn roll(
    dice: &DicePool,
    log: &RollLog,
    expression: &str,
) -> Result<(i64, String), RollsError> {
    let expression = expression.trim();
    if expression.is_empty() {
        return Err(RollsError::refused(
            "Give an amount or a dice expression, e.g. `2d6+3`.",
        ));
    }
    let rolled = log.roll(dice, expression).await?;
    let value = rolled.total.as_int().ok_or_else(|| {
        RollsError::refused(format!("`{expression}` must come to a whole number."))
    })?;
    Ok((value, rolled.markdown))
}

/// New initiatives for every unit with an expression, rolled in one piece of dice work.
async fn rerolls(dice: &DicePool, tracker: &Tracker) -> Result<Rerolls, RollsError> {
    let wanted = rules::reroll_expressions(tracker);
    dice.roll(move || {
        let mut rng = dice::Rng::from_random_state();
        let mut out = Rerolls::new();
        for (key, expression) in wanted {
            // An expression that no longer rolls (it did when it was stored) keeps
            // its combatant's old initiative.
            if let Some(value) = dice::roll(&expression, &mut rng)
                .ok()
                .and_then(|o| o.total().as_int())
            {
                out.insert(key, value);
            }
        }
        out
    })
    .await
}

/// "It is X's turn" for the unit now up, with whom to ping, and what ended.
pub(crate) fn turn_said(tracker: &Tracker, report: &TurnReport) -> Said {
    let shown = rules::public_view(tracker);
    let up = rules::current(&shown);
    let mut ping: Vec<UserId> = Vec::new();
    for e in up {
        if !ping.contains(&e.user) {
            ping.push(e.user);
        }
    }
    let who = match up.first() {
        Some(first) => escape(first.combat.group.as_ref().unwrap_or(&first.name)),
        None => return Said::default(),
    };
    let mentions: Vec<String> = ping.iter().map(|u| format!("<@{u}>")).collect();
    let mut message = String::new();
    if report.rerolled {
        message.push_str(&format!(
            "🎲 Round {}: initiative was rolled again.\n",
            tracker.round
        ));
    }
    if !report.ended.is_empty() {
        message.push_str(&format!(
            "⌛ Ended: {}.\n",
            rules::ended_text(tracker, &report.ended)
        ));
    }
    message.push_str(&format!(
        "{}, it is **{who}**'s turn (round {}).",
        mentions.join(" "),
        tracker.round
    ));
    Said {
        message,
        private: false,
        ping,
    }
}

/// `/init next` (and the Next button): the turn ends, effects tick, the next one is
/// up; a new round is rerolled when reroll is on.
pub async fn next(env: Env<'_>, tracker: &mut Tracker) -> Result<Said, RollsError> {
    let rolled = if tracker.reroll && rules::next_wraps(tracker) {
        Some(rerolls(env.dice, tracker).await?)
    } else {
        None
    };
    let report = rules::next(tracker, rolled.as_ref())?;
    Ok(turn_said(tracker, &report))
}

/// New initiatives for a turn that may wrap while someone leaves (reroll on only).
pub(crate) async fn leave_rerolls(
    env: Env<'_>,
    tracker: &Tracker,
) -> Result<Option<Rerolls>, RollsError> {
    if tracker.reroll && rules::next_wraps(tracker) {
        Ok(Some(rerolls(env.dice, tracker).await?))
    } else {
        Ok(None)
    }
}

fn hp_text(tracker: &Tracker, at: usize) -> String {
    let Some(e) = tracker.entries.get(at) else {
        return String::new();
    };
    let c = &e.combat;
    let mut out = match (c.hp, c.max_hp) {
        (Some(hp), Some(max)) => format!("HP {hp}/{max}"),
        (Some(hp), None) => format!("HP {hp}"),
        _ => "HP not tracked".to_owned(),
    };
    if c.temp_hp > 0 {
        out.push_str(&format!(" +{} temp", c.temp_hp));
    }
    out
}

/// Damage to the combatant at `at`, with its concentration save (rolled when the
/// save modifier is known).
async fn take_damage(
    env: Env<'_>,
    log: &RollLog,
    tracker: &mut Tracker,
    at: usize,
    amount: i64,
    how: &str,
) -> Result<Said, RollsError> {
    let report = rules::damage(tracker, at, amount)?;
    let name = &escape(&report.name);
    let mut message = format!("💥 **{name}** takes {} damage{how}", report.damage);
    if report.absorbed > 0 {
        message.push_str(&format!(
            " ({} taken by temporary hit points)",
            report.absorbed
        ));
    }
    message.push_str(&format!(": {}.", hp_text(tracker, at)));
    if !report.dropped.is_empty() {
        message.push_str(&format!(
            "\n🧠 At 0 hit points **{name}** loses concentration: {} ended.",
            rules::ended_text(tracker, &report.dropped)
        ));
    }
    if let Some(check) = report.concentration {
        message.push_str(&format!(
            "\n🧠 **{name}** is concentrating on {}: Constitution save **DC {}**.",
            escape(&check.effects.join(", ")),
            check.dc
        ));
        match check.modifier {
            Some(modifier) => {
                let expression = format!("1d20{modifier:+}");
                let (total, shown) = roll(env.dice, log, &expression).await?;
                if total >= check.dc {
                    message.push_str(&format!(
                        " Save: {shown} — **success**, concentration holds."
                    ));
                } else {
                    let ended = rules::end_concentration(tracker, &report.name);
                    message.push_str(&format!(
                        " Save: {shown} — **failure**: {} ended.",
                        rules::ended_text(tracker, &ended)
                    ));
                }
            }
            None => message.push_str(&format!(
                " On a failure: `/init effect action:drop name:{}`.",
                report.name
            )),
        }
    }
    Ok(Said::about(tracker, at, message))
}

/// Runs `action` on `tracker` for `user`.
pub async fn apply(
    env: Env<'_>,
    log: &RollLog,
    tracker: &mut Tracker,
    user: UserId,
    action: &CombatAction,
) -> Result<Said, RollsError> {
    match action {
        CombatAction::Add(spec) => {
            let asked = spec
                .initiative
                .as_deref()
                .map(rules::initiative_input)
                .transpose()?;
            let (value, how, expression) = match asked {
                Some(rules::InitiativeInput::Fixed(value)) => (value, value.to_string(), None),
                Some(rules::InitiativeInput::Roll(expression)) => {
                    let (value, how) = roll(env.dice, log, &expression).await?;
                    (value, how, Some(expression))
                }
                None => {
                    let (value, how) = roll(env.dice, log, "1d20").await?;
                    (value, how, Some("1d20".to_owned()))
                }
            };
            let names = rules::add(tracker, user, spec, value, expression)?;
            let at = rules::find(tracker, user, names.first().map_or("", String::as_str))?;
            let initiative = tracker.entries.get(at).map_or(value, |e| e.initiative);
            let joined = names
                .iter()
                .map(|n| format!("**{}**", escape(n)))
                .collect::<Vec<_>>()
                .join(", ");
            let mut message = format!("{joined} joined initiative with {initiative}");
            if initiative == value {
                message.push_str(&format!(": {how}"));
            } else {
                message.push_str(" (their group's)");
            }
            if let Some(group) = tracker.entries.get(at).and_then(|e| e.combat.group.clone()) {
                message.push_str(&format!(" in group **{}**", escape(&group)));
            }
            message.push('.');
            if spec.hidden {
                message
                    .push_str(" Hidden: the channel sees `???`; `/init view` shows them to you.");
            }
            Ok(Said::about(tracker, at, message))
        }
        CombatAction::Hp {
            name,
            value,
            max,
            temp,
        } => {
            let at = rules::find(tracker, user, name)?;
            let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty());
            if value.is_none() && max.is_none() && temp.is_none() {
                return Err(RollsError::refused(
                    "Give a value (`25`, `+5` to heal, `-5` for damage), `max` or `temp`.",
                ));
            }
            let number = |v: &str| {
                v.parse::<i64>().map_err(|_| {
                    RollsError::refused(format!(
                        "`{v}` is not a hit point value: use `25` to set, `+5` to heal or `-5` for damage."
                    ))
                })
            };
            rules::set_hp(tracker, at, None, *max, *temp)?;
            let name = escape(&tracker.entries[at].name);
            match value {
                Some(v) if v.starts_with('-') => {
                    let amount = number(v.trim_start_matches('-'))?;
                    take_damage(env, log, tracker, at, amount, "").await
                }
                Some(v) if v.starts_with('+') => {
                    let amount = number(v.trim_start_matches('+'))?;
                    rules::heal(tracker, at, amount)?;
                    let text = format!("💚 **{name}** heals {amount}: {}.", hp_text(tracker, at));
                    Ok(Said::about(tracker, at, text))
                }
                Some(v) => {
                    rules::set_hp(tracker, at, Some(number(v)?), None, None)?;
                    let text = format!("**{name}**: {}.", hp_text(tracker, at));
                    Ok(Said::about(tracker, at, text))
                }
                None => {
                    let text = format!("**{name}**: {}.", hp_text(tracker, at));
                    Ok(Said::about(tracker, at, text))
                }
            }
        }
        CombatAction::Damage { name, expression } => {
            let at = rules::find(tracker, user, name)?;
            let (amount, shown) = roll(env.dice, log, expression).await?;
            if amount < 0 {
                return Err(RollsError::refused(format!(
                    "`{expression}` came to {amount}; damage cannot be negative."
                )));
            }
            take_damage(env, log, tracker, at, amount, &format!(" ({shown})")).await
        }
        CombatAction::Heal { name, expression } => {
            let at = rules::find(tracker, user, name)?;
            let (amount, shown) = roll(env.dice, log, expression).await?;
            rules::heal(tracker, at, amount)?;
            let name = escape(&tracker.entries[at].name);
            let text = format!(
                "💚 **{name}** heals {amount} ({shown}): {}.",
                hp_text(tracker, at)
            );
            Ok(Said::about(tracker, at, text))
        }
        CombatAction::EffectAdd {
            name,
            effect,
            duration,
            by,
            concentration,
        } => {
            let at = rules::find(tracker, user, name)?;
            let added = rules::add_effect(
                tracker,
                user,
                at,
                effect,
                *duration,
                by.as_deref(),
                *concentration,
            )?;
            let mut text = format!(
                "✨ **{}** is now *{}*",
                escape(&added.bearer),
                escape(&added.effect.name)
            );
            match added.effect.ends_round {
                Some(last) => text.push_str(&format!(
                    " until the end of {}'s turn in round {last}",
                    escape(&rules::shown_name(tracker, &added.effect.by))
                )),
                None => text.push_str(" until removed"),
            }
            if added.effect.concentration {
                text.push_str(&format!(
                    " (concentration of {})",
                    escape(&rules::shown_name(tracker, &added.effect.by))
                ));
            }
            text.push('.');
            if !added.replaced.is_empty() {
                text.push_str(&format!(
                    " Concentration moves on: {} ended.",
                    rules::ended_text(tracker, &added.replaced)
                ));
            }
            Ok(Said::about(tracker, at, text))
        }
        CombatAction::EffectRemove { name, effect } => {
            let at = rules::find(tracker, user, name)?;
            let removed = rules::remove_effect(tracker, at, effect)?;
            let text = format!(
                "**{}** is no longer *{}*.",
                escape(&tracker.entries[at].name),
                escape(&removed)
            );
            Ok(Said::about(tracker, at, text))
        }
        CombatAction::Drop { name } => {
            let at = rules::find(tracker, user, name)?;
            let caster = tracker.entries[at].name.clone();
            let ended = rules::end_concentration(tracker, &caster);
            if ended.is_empty() {
                return Err(RollsError::refused(format!(
                    "`{caster}` is not concentrating on anything."
                )));
            }
            let text = format!(
                "🧠 **{}** stops concentrating: {} ended.",
                escape(&caster),
                rules::ended_text(tracker, &ended)
            );
            Ok(Said::about(tracker, at, text))
        }
        CombatAction::Note { name, text } => {
            let at = rules::find(tracker, user, name)?;
            let note = rules::set_note(tracker, at, text)?;
            let name = escape(&tracker.entries[at].name);
            let text = match note {
                Some(note) => format!("📝 **{name}**: {}", escape(&note)),
                None => format!("📝 **{name}**'s note was cleared."),
            };
            Ok(Said::about(tracker, at, text))
        }
        CombatAction::Opt {
            name,
            ac,
            con_save,
            hidden,
        } => {
            let at = rules::find(tracker, user, name)?;
            let owner = tracker.entries[at].user;
            if owner != user {
                return Err(crate::domain::Refusal::not_yours(format!(
                    "`{}` is <@{owner}>'s: only whoever added a combatant changes its options.",
                    tracker.entries[at].name
                ))
                .into());
            }
            if ac.is_none() && con_save.is_none() && hidden.is_none() {
                return Err(RollsError::refused(
                    "Give at least one of `ac`, `con-save` or `hidden`.",
                ));
            }
            rules::set_options(tracker, at, *ac, *con_save, *hidden)?;
            let e = &tracker.entries[at];
            // What changed, and only that.
            let mut bits = Vec::new();
            if let Some(ac) = ac {
                bits.push(format!("AC is now {ac}"));
            }
            if let Some(save) = con_save {
                bits.push(format!(
                    "Constitution save modifier is now {save:+} (concentration saves are rolled)"
                ));
            }
            match hidden {
                Some(true) => bits.push("now hidden: the channel sees `???`".to_owned()),
                Some(false) => bits.push("now shown to the channel".to_owned()),
                None => {}
            }
            let text = format!("**{}**: {}.", escape(&e.name), bits.join("; "));
            // Hiding or showing is the caller's business until the tracker shows it.
            let private = e.combat.hidden || hidden.is_some();
            Ok(Said {
                message: text,
                private,
                ping: Vec::new(),
            })
        }
        CombatAction::Prev => {
            rules::prev(tracker)?;
            Ok(turn_said(tracker, &TurnReport::default()))
        }
        CombatAction::Move { name, initiative } => {
            let at = rules::find(tracker, user, name)?;
            let hidden = tracker.entries[at].combat.hidden;
            let rolled = if tracker.reroll {
                Some(rerolls(env.dice, tracker).await?)
            } else {
                None
            };
            let moved = rules::move_to(tracker, at, *initiative, rolled.as_ref())?;
            let shown = if hidden { "???".to_owned() } else { moved.name };
            let message = format!("**{}** moved to initiative {initiative}.", escape(&shown));
            Ok(match &moved.turn {
                Some(report) => {
                    let mut said = turn_said(tracker, report);
                    said.message = format!("{message}\n{}", said.message);
                    said
                }
                None => Said::public(message),
            })
        }
        CombatAction::Skip { rounds } => {
            let rolled = if tracker.reroll {
                Some(rerolls(env.dice, tracker).await?)
            } else {
                None
            };
            let report = rules::skip(tracker, *rounds, rolled.as_ref())?;
            let mut said = turn_said(tracker, &report);
            said.message = format!("⏭️ Skipped to round {}.\n{}", tracker.round, said.message);
            Ok(said)
        }
        CombatAction::Reroll { on } => {
            tracker.reroll = *on;
            Ok(Said::public(if *on {
                "🎲 Initiative will be rolled again at the top of every round.".to_owned()
            } else {
                "Initiative stays as rolled from round to round.".to_owned()
            }))
        }
        CombatAction::View => Ok(Said {
            message: rules::render(&rules::view_for(tracker, user)),
            private: true,
            ping: Vec::new(),
        }),
    }
}
