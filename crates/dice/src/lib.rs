//! Pure dice engine: parse, roll, render and compute the odds of dice
//! expressions.
//!
//! The grammar is the union of the rollers Discord players already know
//! (Feyre, Avrae's d20, Dice Maiden, Roll20) with one documented meaning per
//! symbol; see `GRAMMAR.md` in this crate for the full grammar, precedence,
//! stage order, aliases and limits.
//!
//! The crate does no I/O and no async: randomness comes from an [`Rng`] the
//! caller owns (seed it for reproducible rolls), and all output is returned
//! as values.
//!
//! # API
//!
//! ```
//! use dice::{Num, Rng};
//!
//! // Parse once, roll many times.
//! let program = dice::parse("4d6kh3").unwrap();
//! let mut rng = Rng::seeded(42);
//! let outcome = program.roll(&mut rng).unwrap();
//! let Num::Int(total) = outcome.total() else { unreachable!() };
//! assert!((3..=18).contains(&total));
//! println!("{}", outcome.render_markdown()); // 4d6kh3 (~~1~~, 3, 4, **6**) = `13`
//!
//! // One-shot roll; the same seed always gives the same result.
//! let a = dice::roll("1d20+5>15 then 2d6+4", &mut Rng::seeded(7)).unwrap();
//! let b = dice::roll("1d20+5>15 then 2d6+4", &mut Rng::seeded(7)).unwrap();
//! assert_eq!(a, b);
//!
//! // Exact odds where possible, simulation otherwise.
//! let odds = dice::odds("1d20+5 >= 15").unwrap();
//! assert_eq!(odds.render_plain().lines().next(), Some("1d20+5 >= 15: 55.00%"));
//!
//! // Errors say where the problem is.
//! let err = dice::parse("1d20 + x").unwrap_err();
//! assert_eq!(err.column(), 8);
//! assert_eq!(err.pointer("1d20 + x"), "1d20 + x\n       ^");
//!
//! // When only the text and total are needed, skip the result tree: same
//! // seed, same text as `roll(..).render_plain()`.
//! let mut text = String::new();
//! let summary = program.roll_plain(&mut Rng::seeded(42), &mut text).unwrap();
//! assert_eq!(text, program.roll(&mut Rng::seeded(42)).unwrap().render_plain());
//! assert!(matches!(summary.total, Num::Int(3..=18)));
//! ```
//!
//! Main entry points:
//! - [`parse`] -> [`Program`]; [`Program::roll`] -> [`Outcome`];
//!   [`Program::odds`] -> [`Odds`].
//! - [`roll`] and [`odds`]: parse and run in one call.
//! - [`Outcome::total`], [`Outcome::check`], [`Outcome::is_critical`],
//!   [`Outcome::is_fumble`], [`Outcome::grand_total`] (the sum over repeats
//!   and `;`-separated rolls), [`Outcome::render_markdown`],
//!   [`Outcome::render_plain`]; the full tree is in [`Outcome::rolls`]
//!   (a [`Node`] per value, a [`Die`] per die) and serialises to JSON.
//! - [`Program::roll_plain`] / [`Program::roll_markdown`]: the rendered
//!   text and a [`Summary`] without building the tree (bulk rolling);
//!   [`roll_plain`] parses too, and rolls everyday shapes in one pass.
//! - Game systems read from the dice: [`ExprResult::narrative`] /
//!   [`DiceRoll::symbols`] ([`Symbols`], [`NarrativeDie`]) for Genesys /
//!   Star Wars dice, [`DiceRoll::stunt_points`] for AGE, notes for Cypher.
//! - [`Odds::render_plain`], [`Odds::render_markdown`].
//! - [`DiceError::column`], [`DiceError::kind`], [`DiceError::pointer`].
//! - [`Rng::seeded`], [`Rng::from_seed_bytes`], [`Rng::from_random_state`].
//! - [`limits`]: every limit and the odds engine's budgets.

#![deny(clippy::indexing_slicing, clippy::panic, clippy::expect_used)]
#![warn(missing_docs)]

mod ast;
mod cost;
mod error;
mod eval;
mod fast;
mod num;
mod odds;
mod outcome;
mod parser;
mod render;
mod rng;
mod stream;
mod systems;

pub use ast::{BinaryOp, CompareOp, Flags, Func, UnaryOp};
pub use error::{DiceError, ErrorKind};
pub use num::Num;
pub use odds::{Chance, CheckOdds, Method, Odds, Percentiles};
pub use outcome::{
    DiceRoll, Die, DieOrigin, ExprResult, GroupRoll, NarrativeDie, Node, Outcome, RollResult,
    SetItem, SetRoll, Symbols, Tally,
};
pub use render::MARKDOWN_MAX_DICE;
pub use rng::Rng;
pub use stream::{ResultFlags, Summary};

/// Hard limits. They keep a single message from tying up the bot and every
/// one of them has its own error with a position.
pub mod limits {
    /// Longest accepted input, in bytes.
    pub const MAX_INPUT_LEN: usize = 1000;
    /// Most dice in one term (`10000d6` is Feyre's limit).
    pub const MAX_DICE: i64 = 10_000;
    /// Most sides on one die.
    pub const MAX_SIDES: i64 = 1_000_000;
    /// Most dice rolled by one evaluation of a whole input, counting
    /// rerolls, explosions and repeats.
    pub const MAX_ROLLS: usize = 20_000;
    /// Longest explosion chain per die; the chain stops there and the die
    /// is marked `capped` (not an error).
    pub const MAX_EXPLOSIONS: u32 = 100;
    /// Most rerolls of one die; the die keeps its last value and is marked
    /// `capped` (not an error).
    pub const MAX_REROLLS_PER_DIE: u32 = 100;
    /// Deepest nesting of brackets, signs, functions and `then`.
    pub const MAX_DEPTH: usize = 32;
    /// Most repetitions of one roll (`6 4d6`, `4d6c6`).
    pub const MAX_REPEAT: u32 = 100;
    /// Most `;`-separated rolls in one input.
    pub const MAX_PARTS: usize = 20;

    pub use crate::odds::{
        EXACT_MAX_OUTCOMES, EXACT_WORK_BUDGET, LISTED_OUTCOMES, SIMULATION_DICE_BUDGET,
        SIMULATION_MAX_SAMPLES, SIMULATION_MIN_SAMPLES, SIMULATION_SEED, TAIL_EPSILON,
    };
}

use ast::RollSpec;
use std::sync::Arc;

/// A parsed input, ready to roll any number of times.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    source: Arc<str>,
    flags: Flags,
    rolls: Vec<RollSpec>,
}

/// Parses an input: one or more `;`-separated rolls.
pub fn parse(source: &str) -> Result<Program, DiceError> {
    let parsed = parser::parse_program(source)?;
    Ok(Program {
        source: Arc::from(parsed.read.as_deref().unwrap_or(source)),
        flags: parsed.flags,
        rolls: parsed.rolls,
    })
}

/// Parses and rolls in one go.
pub fn roll(source: &str, rng: &mut Rng) -> Result<Outcome, DiceError> {
    parse(source)?.roll(rng)
}

/// Parses and rolls in one go, appending exactly what
/// [`Program::roll_plain`] would: same random numbers, same text, same
/// [`Summary`]. Everyday shapes (`1d20+5`, `2d20kh1+3`, `1d8+1d6+2`,
/// `3d6*2`) are read and rolled in one pass without building a syntax tree
/// or allocating; everything else is parsed. This is the call for bulk
/// rolling of text that is mostly different each time.
pub fn roll_plain(source: &str, rng: &mut Rng, out: &mut String) -> Result<Summary, DiceError> {
    match fast::try_roll_plain(source, rng, out) {
        Some(summary) => Ok(summary),
        None => parse(source)?.roll_plain(rng, out),
    }
}

/// Parses and computes the odds of a single roll.
pub fn odds(source: &str) -> Result<Odds, DiceError> {
    parse(source)?.odds()
}

impl Program {
    /// The input as read: as given, except that a typographic minus or dash
    /// (`−`, `–`, `—`) or multiplication sign (`×`) before an operand reads as
    /// `-` or `*` (GRAMMAR.md). Error offsets are into it; columns are the same
    /// in the input as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Dice Maiden flags found at the start of the input.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// Number of `;`-separated rolls.
    pub fn roll_count(&self) -> usize {
        self.rolls.len()
    }

    /// Each roll's trailing comment (`1d20+5 to hit`: `to hit`), in order; `None`
    /// for a roll without one.
    pub fn comments(&self) -> impl Iterator<Item = Option<&str>> + '_ {
        self.rolls.iter().map(|r| r.comment.as_deref())
    }

    /// Rolls every part (with its repetitions). Fails only on limits and
    /// arithmetic errors discovered while rolling (too many rolls, division
    /// by zero, a computed dice count that is negative, ...).
    ///
    /// An input sure to roll more than [`limits::MAX_ROLLS`] dice (by its
    /// literal dice counts, repetitions and parts) is refused before a single
    /// die is rolled.
    pub fn roll(&self, rng: &mut Rng) -> Result<Outcome, DiceError> {
        self.check_roll_budget()?;
        let mut ev = eval::Evaluator::new(&self.source, rng);
        ev.unsorted = self.flags.unsorted;
        let mut rolls = Vec::with_capacity(self.rolls.len());
        let mut grand = GrandTotal::default();
        for spec in &self.rolls {
            let mut results = Vec::with_capacity(usize::try_from(spec.repeat).unwrap_or(1));
            for _ in 0..spec.repeat {
                let result = ev.eval_result(&spec.expr)?;
                grand
                    .add(result.total)
                    .map_err(|e| ev.num_error(e, spec.span.start))?;
                results.push(result);
            }
            rolls.push(RollResult {
                expression: Arc::clone(&spec.text),
                label: spec.label.clone(),
                comment: spec.comment.clone(),
                results,
            });
        }
        Ok(Outcome {
            expression: Arc::clone(&self.source),
            flags: self.flags,
            rolls,
            grand_total: grand.get(),
        })
    }

    /// Refuses, before any die is rolled, an input sure to roll more than
    /// [`limits::MAX_ROLLS`] dice.
    pub(crate) fn check_roll_budget(&self) -> Result<(), DiceError> {
        let max = u64::try_from(limits::MAX_ROLLS).unwrap_or(u64::MAX);
        match cost::first_term_over(&self.rolls, max) {
            None => Ok(()),
            Some(at) => Err(DiceError::new(
                ErrorKind::TooManyRolls {
                    max: limits::MAX_ROLLS,
                },
                &self.source,
                at,
            )),
        }
    }

    /// The probability distribution of the (single) roll; see [`Odds`].
    pub fn odds(&self) -> Result<Odds, DiceError> {
        odds::compute(self)
    }
}

/// The sum of every result's total, kept only when there is more than one
/// result.
#[derive(Debug, Default)]
pub(crate) struct GrandTotal {
    sum: Option<Num>,
    results: usize,
}

impl GrandTotal {
    pub(crate) fn add(&mut self, total: Num) -> Result<(), num::NumError> {
        self.sum = Some(match self.sum {
            None => total,
            Some(sum) => eval::apply_binary(BinaryOp::Add, sum, total)?,
        });
        self.results += 1;
        Ok(())
    }

    pub(crate) fn get(&self) -> Option<Num> {
        if self.results > 1 { self.sum } else { None }
    }
}
