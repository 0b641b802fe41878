//! Typed errors with the position of the problem.
//!
//! Every error carries the byte offset and the 1-based character column of the
//! spot that caused it, because the people reading these messages are players
//! in a Discord channel: "unexpected `x` at column 7: expected a number" lets
//! them fix the roll without knowing anything about parsers.

use std::fmt;

/// What went wrong. The variants are stable enough to match on in tests and
/// in callers that want to translate messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A character (or word) that cannot appear here.
    Unexpected {
        /// The offending text, usually one character.
        found: String,
        /// What the parser would have accepted, phrased for players.
        expected: &'static str,
    },
    /// The input stopped in the middle of something.
    UnexpectedEnd {
        /// What the parser would have accepted, phrased for players.
        expected: &'static str,
    },
    /// An opening bracket without its closing partner.
    Unclosed {
        /// The opening delimiter, e.g. `(`.
        delimiter: char,
    },
    /// The input is longer than [`crate::limits::MAX_INPUT_LEN`] bytes.
    InputTooLong {
        /// Length of the input in bytes.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// Nothing to roll (empty input or only a comment).
    Empty,
    /// A number that does not fit in a 64-bit integer.
    NumberTooLarge,
    /// More dice in one term than [`crate::limits::MAX_DICE`].
    TooManyDice {
        /// The requested count.
        count: i64,
        /// The limit.
        max: i64,
    },
    /// A negative number of dice (possible with computed counts).
    NegativeDiceCount {
        /// The requested count.
        count: i64,
    },
    /// Dice with more sides than [`crate::limits::MAX_SIDES`].
    TooManySides {
        /// The requested number of sides.
        sides: i64,
        /// The limit.
        max: i64,
    },
    /// Dice with zero (or a negative number of) sides.
    ZeroSides,
    /// A dice count or side count that is not a whole number.
    NotWhole {
        /// Which quantity, e.g. "the number of dice".
        what: &'static str,
    },
    /// The evaluation rolled more dice (including rerolls and explosions)
    /// than [`crate::limits::MAX_ROLLS`].
    TooManyRolls {
        /// The limit.
        max: usize,
    },
    /// Brackets, signs or functions nested deeper than [`crate::limits::MAX_DEPTH`].
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A repeat count above [`crate::limits::MAX_REPEAT`] (or zero).
    BadRepeat {
        /// The requested count.
        count: i64,
        /// The limit.
        max: u32,
    },
    /// More `;`-separated rolls than [`crate::limits::MAX_PARTS`].
    TooManyParts {
        /// The limit.
        max: usize,
    },
    /// A repeat count given twice (`6 1d20c3`).
    RepeatTwice,
    /// Division (or modulo) by zero.
    DivisionByZero,
    /// An arithmetic result that does not fit in 64 bits.
    Overflow,
    /// A result that is not a real number, e.g. `(-8) ** 0.5`.
    NotReal,
    /// A modifier used where it has no meaning.
    InvalidModifier {
        /// The modifier as written.
        modifier: String,
        /// Why it is not allowed here.
        reason: &'static str,
    },
    /// `a < b < c`: comparisons do not chain.
    ChainedComparison,
    /// `adv` / `dis` with no single d20 to rewrite.
    NoD20ForAdvantage,
    /// A game-system alias whose dice could not be found (e.g. `wng` without d6).
    AliasNeedsDice {
        /// The alias as written.
        alias: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// `odds` was given several rolls separated by `;`.
    OddsOfSeveralRolls,
    /// `odds` was given dice whose result is not a number it can compute
    /// exactly (narrative dice: symbols, not a sum).
    OddsUnsupported {
        /// What the odds cannot handle, as the player wrote it.
        what: &'static str,
    },
    /// The odds would roll more dice than the simulation's budget
    /// ([`crate::limits::SIMULATION_DICE_BUDGET`]): even the fewest simulated
    /// rolls ([`crate::limits::SIMULATION_MIN_SAMPLES`]) of this expression
    /// need more.
    OddsOverBudget {
        /// Dice one roll of the expression needs (at least, or on average).
        dice_per_roll: u64,
        /// The fewest simulated rolls that make odds worth showing.
        samples: usize,
        /// The budget, in dice.
        budget: usize,
    },
}

/// A dice error: what went wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiceError {
    kind: ErrorKind,
    offset: usize,
    column: usize,
}

impl DiceError {
    /// Builds an error at byte `offset` of `source`; the column is counted in
    /// characters so that it matches what a player sees.
    pub(crate) fn new(kind: ErrorKind, source: &str, offset: usize) -> Self {
        DiceError {
            kind,
            offset,
            column: column_of(source, offset),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Byte offset of the problem in the input as read ([`crate::Program::source`]:
    /// typographic operators read as ASCII ones, so the offset may differ from the
    /// input as typed; the column does not).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// 1-based character column of the problem in the input.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The message without the position, e.g. "division by zero".
    pub fn message(&self) -> String {
        describe(&self.kind)
    }

    /// The input on one line with a caret under the problem, for terminals
    /// and Discord code blocks. Tabs and line breaks are shown as spaces so
    /// the caret lines up.
    ///
    /// ```text
    /// 1d20 + x
    ///        ^
    /// ```
    pub fn pointer(&self, source: &str) -> String {
        let line: String = source
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        let pad = " ".repeat(self.column.saturating_sub(1));
        format!("{}\n{pad}^", line.trim_end())
    }
}

/// 1-based column of `offset`, counted in characters. Offsets that fall past
/// the end or inside a character are clamped rather than trusted.
pub(crate) fn column_of(source: &str, offset: usize) -> usize {
    let mut end = offset.min(source.len());
    while end > 0 && !source.is_char_boundary(end) {
        end -= 1;
    }
    source.get(..end).map_or(0, |s| s.chars().count()) + 1
}

/// `10000000` as `10,000,000`, for numbers players read.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn describe(kind: &ErrorKind) -> String {
    use ErrorKind as K;
    match kind {
        K::Unexpected { found, expected } if found.trim().is_empty() => {
            format!("unexpected space; expected {expected}")
        }
        K::Unexpected { found, expected } => format!("unexpected `{found}`; expected {expected}"),
        K::UnexpectedEnd { expected } => format!("the roll ends too early; expected {expected}"),
        K::Unclosed { delimiter } => format!("`{delimiter}` is never closed"),
        K::InputTooLong { length, max } => {
            format!("the roll is too long ({length} characters; the limit is {max})")
        }
        K::Empty => "there is nothing to roll".to_owned(),
        K::NumberTooLarge => "this number is too large".to_owned(),
        K::TooManyDice { count, max } => {
            format!("too many dice ({count}); at most {max} dice in one term")
        }
        K::NegativeDiceCount { count } => {
            format!("cannot roll a negative number of dice ({count})")
        }
        K::TooManySides { sides, max } => format!("dice cannot have {sides} sides; at most {max}"),
        K::ZeroSides => "dice need at least one side".to_owned(),
        K::NotWhole { what } => format!("{what} must be a whole number"),
        K::TooManyRolls { max } => format!(
            "this roll needs more than {max} dice (rerolls and explosions count), the budget of one roll; try fewer dice"
        ),
        K::TooDeep { max } => format!("too much nesting; at most {max} levels of brackets"),
        K::BadRepeat { count, max } => {
            format!("cannot repeat a roll {count} times; use 1 to {max}")
        }
        K::TooManyParts { max } => format!("too many rolls in one message; at most {max}"),
        K::RepeatTwice => "the repeat count is given twice".to_owned(),
        K::DivisionByZero => "division by zero".to_owned(),
        K::Overflow => "the result is too large".to_owned(),
        K::NotReal => "the result is not a real number".to_owned(),
        K::InvalidModifier { modifier, reason } => format!("`{modifier}` {reason}"),
        K::ChainedComparison => "comparisons cannot be chained; use `then` or brackets".to_owned(),
        K::NoD20ForAdvantage => {
            "advantage and disadvantage need a single d20 in the roll".to_owned()
        }
        K::AliasNeedsDice { alias, needs } => format!("`{alias}` needs {needs}"),
        K::OddsUnsupported { what } => format!(
            "odds cannot be computed for {what}: their result is a set of symbols, not one number"
        ),
        K::OddsOfSeveralRolls => {
            "odds work on one roll at a time; remove the `;`-separated parts".to_owned()
        }
        K::OddsOverBudget {
            dice_per_roll,
            samples,
            budget,
        } => format!(
            "the odds of this roll need {} simulated rolls of about {} dice each, over the odds budget of {} dice; try fewer dice",
            grouped(u64::try_from(*samples).unwrap_or(u64::MAX)),
            grouped(*dice_per_roll),
            grouped(u64::try_from(*budget).unwrap_or(u64::MAX)),
        ),
    }
}

impl fmt::Display for DiceError {
    /// "unexpected `x` at column 7: expected a number" style: the position
    /// comes right after the problem so it reads naturally in chat.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Unexpected { found, expected } if found.trim().is_empty() => write!(
                f,
                "unexpected space at column {}: expected {expected}",
                self.column
            ),
            ErrorKind::Unexpected { found, expected } => write!(
                f,
                "unexpected `{found}` at column {}: expected {expected}",
                self.column
            ),
            ErrorKind::UnexpectedEnd { expected } => write!(
                f,
                "the roll ends too early at column {}: expected {expected}",
                self.column
            ),
            other => write!(f, "{} at column {}", describe(other), self.column),
        }
    }
}

impl std::error::Error for DiceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(column_of("abc", 0), 1);
        assert_eq!(column_of("abc", 2), 3);
        assert_eq!(column_of("éx", 2), 2);
        // Offsets inside a character or past the end are clamped.
        assert_eq!(column_of("éx", 1), 1);
        assert_eq!(column_of("ab", 99), 3);
    }

    #[test]
    fn pointer_puts_a_caret_under_the_column() {
        let e = DiceError::new(ErrorKind::DivisionByZero, "1d6\t/ 0", 4);
        assert_eq!(e.pointer("1d6\t/ 0"), "1d6 / 0\n    ^");
        let e = DiceError::new(ErrorKind::Empty, "", 0);
        assert_eq!(e.pointer(""), "\n^");
    }

    #[test]
    fn display_puts_the_column_next_to_the_problem() {
        let e = DiceError::new(
            ErrorKind::Unexpected {
                found: "x".into(),
                expected: "a number",
            },
            "1d20 + x",
            7,
        );
        assert_eq!(
            e.to_string(),
            "unexpected `x` at column 8: expected a number"
        );
        let e = DiceError::new(ErrorKind::DivisionByZero, "1/0", 1);
        assert_eq!(e.to_string(), "division by zero at column 2");
    }
}
