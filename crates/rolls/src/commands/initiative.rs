//! `/init`: the command's options and how an invocation becomes an [`InitOp`].
//!
//! | subcommand | options | does |
//! |---|---|---|
//! | `join` | `character`, `roll` | join with a character (its initiative expression) |
//! | `add` | `name` (`goblin x3 group:goblins hp:7 ac:15 init:1d20+2 save:+1 hidden note:…`), `initiative`, `hp`, `ac`, `count`, `group`, `hidden`, `con-save` | add combatants the caller runs |
//! | `hp` | `name`, `value` (`N`, `+N`, `-N`), `max`, `temp` | set, heal or damage; maximum and temporary hit points |
//! | `damage` | `name`, `amount` (an expression, `2d6+3`) | damage: temporary hit points first, concentration save |
//! | `heal` | `name`, `amount` | healing up to the maximum |
//! | `effect` | `action` (`add`, `remove`, `drop`), `name`, `effect`, `duration` (rounds), `by`, `concentration` | effects and conditions |
//! | `note` | `name`, `text` | a note (no text clears it) |
//! | `opt` | `name`, `ac`, `con-save`, `hidden` | armour class, save modifier, hiding |
//! | `next`, `prev` | | the next / previous turn |
//! | `move` | `name`, `initiative` | a new initiative for a combatant (its whole group) |
//! | `skip` | `rounds` | to the top of a later round |
//! | `reroll` | `mode` (`on`, `off`) | roll initiative again at the top of every round |
//! | `view` | | the tracker with your hidden combatants, for your eyes |
//! | `get`, `remove`, `reset` | | repost, leave, clear |

use discord::{CommandSpec, Invocation, OptionSpec};

use crate::RollsError;
use crate::domain::combat::{self, AddSpec, MAX_COUNT, MAX_DURATION, MAX_SKIP};
use crate::ops::{CombatAction, InitOp};

fn name() -> OptionSpec {
    OptionSpec::string("name", "The combatant").required()
}

/// The `/init` command.
pub fn spec() -> CommandSpec {
    let hp_range = || (-combat::MAX_HP, combat::MAX_HP);
    let (lo, hi) = hp_range();
    CommandSpec::new("init", "This channel's initiative tracker")
        .option(
            OptionSpec::subcommand("join", "Join initiative")
                .option(OptionSpec::string(
                    "character",
                    "Which of your saved characters (default: your active one)",
                ))
                .option(OptionSpec::string(
                    "roll",
                    "15 is your initiative; +2 / -1 add to 1d20; adv+2; or dice (default: your character's)",
                )),
        )
        .option(OptionSpec::subcommand("get", "Show the tracker"))
        .option(
            OptionSpec::subcommand("remove", "Leave initiative")
                .option(OptionSpec::string("character", "Which of your entries")),
        )
        .option(OptionSpec::subcommand("reset", "Clear the tracker"))
        .option(OptionSpec::subcommand("next", "Next turn"))
        .option(
            OptionSpec::subcommand("add", "Add combatants you run (monsters, NPCs)")
                .option(
                    OptionSpec::string(
                        "name",
                        "e.g. goblin x3 group:goblins hp:7 ac:15 init:1d20+2 save:+1 hidden",
                    )
                    .required(),
                )
                .option(OptionSpec::string(
                    "initiative",
                    "15 is the initiative; +3 / -1 add to 1d20; adv+2; or dice (default 1d20)",
                ))
                .option(OptionSpec::integer("hp", "Hit points").range(lo, hi))
                .option(OptionSpec::integer("ac", "Armour class").range(0, combat::MAX_AC))
                .option(OptionSpec::integer("count", "How many").range(1, MAX_COUNT as i64))
                .option(OptionSpec::string("group", "Act together as this group"))
                .option(OptionSpec::boolean("hidden", "Shown to the channel as ???"))
                .option(
                    OptionSpec::integer("con-save", "Constitution save modifier")
                        .range(*combat::SAVE_RANGE.start(), *combat::SAVE_RANGE.end()),
                ),
        )
        .option(
            OptionSpec::subcommand("hp", "Set, heal (+n) or damage (-n) hit points")
                .option(name())
                .option(OptionSpec::string("value", "25 sets, +5 heals, -5 damages"))
                .option(OptionSpec::integer("max", "Maximum hit points").range(1, hi))
                .option(OptionSpec::integer("temp", "Temporary hit points").range(0, hi)),
        )
        .option(
            OptionSpec::subcommand("damage", "Damage a combatant")
                .option(name())
                .option(
                    OptionSpec::string("amount", "A number or an expression, e.g. 2d6+3")
                        .required(),
                ),
        )
        .option(
            OptionSpec::subcommand("heal", "Heal a combatant")
                .option(name())
                .option(
                    OptionSpec::string("amount", "A number or an expression, e.g. 2d4+2")
                        .required(),
                ),
        )
        .option(
            OptionSpec::subcommand("effect", "Add or remove an effect or condition")
                .option(
                    OptionSpec::string("action", "add, remove, or drop (end concentration)")
                        .required()
                        .choice("add", "add")
                        .choice("remove", "remove")
                        .choice("drop", "drop"),
                )
                .option(name())
                .option(OptionSpec::string("effect", "e.g. Blessed, Prone"))
                .option(
                    OptionSpec::integer("duration", "Rounds (default: until removed)")
                        .range(1, i64::from(MAX_DURATION)),
                )
                .option(OptionSpec::string(
                    "by",
                    "Who placed it (default: whoever's turn it is)",
                ))
                .option(OptionSpec::boolean(
                    "concentration",
                    "It lasts while its caster concentrates",
                )),
        )
        .option(
            OptionSpec::subcommand("note", "A note on a combatant")
                .option(name())
                .option(OptionSpec::string("text", "The note (empty clears it)")),
        )
        .option(
            OptionSpec::subcommand("opt", "Armour class, save modifier, hiding")
                .option(name())
                .option(OptionSpec::integer("ac", "Armour class").range(0, combat::MAX_AC))
                .option(
                    OptionSpec::integer("con-save", "Constitution save modifier")
                        .range(*combat::SAVE_RANGE.start(), *combat::SAVE_RANGE.end()),
                )
                .option(OptionSpec::boolean("hidden", "Shown to the channel as ???")),
        )
        .option(OptionSpec::subcommand("prev", "Previous turn"))
        .option(
            OptionSpec::subcommand("move", "Give a combatant a new initiative")
                .option(name())
                .option(OptionSpec::integer("initiative", "The new initiative").required()),
        )
        .option(
            OptionSpec::subcommand("skip", "Skip to the top of a later round").option(
                OptionSpec::integer("rounds", "How many rounds (default 1)")
                    .range(1, i64::from(MAX_SKIP)),
            ),
        )
        .option(
            OptionSpec::subcommand("reroll", "Roll initiative again every round").option(
                OptionSpec::string("mode", "on or off")
                    .required()
                    .choice("on", "on")
                    .choice("off", "off"),
            ),
        )
        .option(OptionSpec::subcommand(
            "view",
            "The tracker with your hidden combatants (only you see it)",
        ))
}

/// The operation an `/init` invocation asks for.
pub fn op(inv: &Invocation) -> Result<InitOp, RollsError> {
    let options = inv.options();
    let channel = inv.channel_id;
    let user = inv.actor.id;
    let text = |key: &str| options.str(key).unwrap_or_default().to_owned();
    let character = options.str("character").map(str::to_owned);
    let action = match options.sub() {
        Some("join") => {
            return Ok(InitOp::Join {
                channel,
                user,
                character,
                roll: options.str("roll").map(str::to_owned),
                display_name: inv.actor.name.clone(),
                once: false,
            });
        }
        Some("remove") => {
            return Ok(InitOp::Remove {
                channel,
                user,
                character,
            });
        }
        Some("next") => {
            return Ok(InitOp::Next {
                channel,
                expected: None,
            });
        }
        Some("reset") => return Ok(InitOp::Reset { channel }),
        Some("add") => {
            let mut spec = combat::parse_add(&text("name"))?;
            if let Some(init) = options.str("initiative") {
                spec.initiative = Some(init.to_owned());
            }
            if let Some(hp) = options.int("hp") {
                spec.hp = Some(hp);
            }
            if let Some(ac) = options.int("ac") {
                spec.ac = Some(ac);
            }
            if let Some(count) = options.int("count") {
                spec.count = usize::try_from(count).unwrap_or(0);
            }
            if let Some(group) = options.str("group") {
                spec.group = Some(group.to_owned());
            }
            if let Some(hidden) = options.bool("hidden") {
                spec.hidden = hidden;
            }
            if let Some(save) = options.int("con-save") {
                spec.con_save = Some(save);
            }
            check_count(&spec)?;
            CombatAction::Add(spec)
        }
        Some("hp") => CombatAction::Hp {
            name: text("name"),
            value: options.str("value").map(str::to_owned),
            max: options.int("max"),
            temp: options.int("temp"),
        },
        Some("damage") => CombatAction::Damage {
            name: text("name"),
            expression: text("amount"),
        },
        Some("heal") => CombatAction::Heal {
            name: text("name"),
            expression: text("amount"),
        },
        Some("effect") => {
            let name = text("name");
            let effect = text("effect");
            match options.str("action") {
                Some("remove") => CombatAction::EffectRemove { name, effect },
                Some("drop") => CombatAction::Drop { name },
                _ => CombatAction::EffectAdd {
                    name,
                    effect,
                    duration: options
                        .int("duration")
                        .map(|d| u32::try_from(d).unwrap_or(u32::MAX)),
                    by: options.str("by").map(str::to_owned),
                    concentration: options.bool("concentration").unwrap_or(false),
                },
            }
        }
        Some("note") => CombatAction::Note {
            name: text("name"),
            text: text("text"),
        },
        Some("opt") => CombatAction::Opt {
            name: text("name"),
            ac: options.int("ac"),
            con_save: options.int("con-save"),
            hidden: options.bool("hidden"),
        },
        Some("prev") => CombatAction::Prev,
        Some("move") => CombatAction::Move {
            name: text("name"),
            initiative: options.int("initiative").unwrap_or_default(),
        },
        Some("skip") => CombatAction::Skip {
            rounds: options
                .int("rounds")
                .map_or(1, |r| u32::try_from(r).unwrap_or(u32::MAX)),
        },
        Some("reroll") => CombatAction::Reroll {
            on: options.str("mode") == Some("on"),
        },
        Some("view") => CombatAction::View,
        _ => return Ok(InitOp::Get { channel }),
    };
    Ok(InitOp::Combat {
        channel,
        user,
        action,
    })
}

fn check_count(spec: &AddSpec) -> Result<(), RollsError> {
    if !(1..=MAX_COUNT).contains(&spec.count) {
        return Err(RollsError::refused(format!(
            "Add between 1 and {MAX_COUNT} combatants at once."
        )));
    }
    Ok(())
}

/// Whether the operation only shows something privately (nothing to edit).
pub fn is_view(op: &InitOp) -> bool {
    matches!(
        op,
        InitOp::Combat {
            action: CombatAction::View,
            ..
        }
    )
}
