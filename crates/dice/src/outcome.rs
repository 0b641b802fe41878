//! The result of rolling: a tree callers can walk, plus the figures they
//! usually want (total, pass/fail, successes, critical/fumble).
//!
//! Everything here is `Serialize` so the CLI and the REST API can hand the
//! full breakdown to other clients as JSON.

use crate::ast::{BinaryOp, CompareOp, Flags, Func, UnaryOp};
use crate::num::Num;
use serde::{Serialize, Serializer};
use std::sync::Arc;

/// Serialises shared strings as plain JSON strings.
fn shared_str<S: Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a die was added to its pool after the initial roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DieOrigin {
    /// Rolled because the previous die exploded.
    Explosion,
    /// Rolled because a die imploded; its value counts negative.
    Implosion,
    /// Rolled by `ra` (reroll and add).
    RerollAdd,
}

/// One physical die.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Die {
    /// What the die contributes (after compounding, penetration, min/max, or
    /// negated for implosion dice).
    pub value: i64,
    /// The face that was rolled (after rerolls). "Natural" for crits.
    pub face: i64,
    /// Not counted because keep/drop removed it.
    #[serde(skip_serializing_if = "is_false")]
    pub dropped: bool,
    /// This die triggered an explosion (or compounded).
    #[serde(skip_serializing_if = "is_false")]
    pub exploded: bool,
    /// Set for dice added by explosion, implosion or `ra`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<DieOrigin>,
    /// Earlier faces, oldest first, when the die was rerolled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rerolled_from: Vec<i64>,
    /// Faces added into this die by compounding (`!!`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compounded: Vec<i64>,
    /// The value before `mi`/`ma` changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped_from: Option<i64>,
    /// Highest face of a numbered die.
    #[serde(skip_serializing_if = "is_false")]
    pub critical: bool,
    /// A 1 on a numbered die.
    #[serde(skip_serializing_if = "is_false")]
    pub fumble: bool,
    /// A reroll or explosion chain stopped at its cap on this die.
    #[serde(skip_serializing_if = "is_false")]
    pub capped: bool,
    /// Successes this die scored (0, 1 or 2) when the pool counts.
    #[serde(skip_serializing_if = "is_zero")]
    pub successes: i64,
    /// This die counted as a failure (subtracts one success).
    #[serde(skip_serializing_if = "is_false")]
    pub failure: bool,
    /// This die counted as a botch.
    #[serde(skip_serializing_if = "is_false")]
    pub botch: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Die {
    pub(crate) fn rolled(face: i64) -> Self {
        Die {
            value: face,
            face,
            dropped: false,
            exploded: false,
            origin: None,
            rerolled_from: Vec::new(),
            compounded: Vec::new(),
            clamped_from: None,
            critical: false,
            fumble: false,
            capped: false,
            successes: 0,
            failure: false,
            botch: false,
        }
    }
}

/// Success counting summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Successes scored (double successes count two).
    pub successes: i64,
    /// Failures (each cancels a success).
    pub failures: i64,
    /// Botches (only counted).
    pub botches: i64,
}

impl Tally {
    /// Successes minus failures: the value of a counting pool.
    pub fn net(&self) -> i64 {
        self.successes.saturating_sub(self.failures)
    }

    pub(crate) fn add(&mut self, other: Tally) {
        self.successes = self.successes.saturating_add(other.successes);
        self.failures = self.failures.saturating_add(other.failures);
        self.botches = self.botches.saturating_add(other.botches);
    }
}

/// A dice term such as `4d6kh3`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiceRoll {
    /// As written (or as an alias expands, e.g. `2d20kh1` for `adv`).
    #[serde(serialize_with = "shared_str")]
    pub notation: Arc<str>,
    /// Number of dice initially rolled.
    pub count: i64,
    /// Number of sides; `fate` dice have faces -1, 0, +1.
    pub sides: i64,
    /// Fate/Fudge dice.
    #[serde(skip_serializing_if = "is_false")]
    pub fate: bool,
    /// Every die, in roll order (or sorted if the term asked for it).
    pub dice: Vec<Die>,
    /// Sum of kept dice, or the net successes when the pool counts.
    pub value: Num,
    /// Present when the pool counts successes, failures or botches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tally: Option<Tally>,
    /// `[fire]` and the like.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
    /// The roll that decided the number of dice, for `(1d4+1)d6`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_roll: Option<Box<Node>>,
    /// The roll that decided the number of sides, for `1d(2*6)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sides_roll: Option<Box<Node>>,
    /// Genesys / Star Wars narrative dice: which kind. Each die's value is
    /// then its net successes and the faces read as symbols.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narrative: Option<NarrativeDie>,
    /// Symbols shown by narrative dice, before netting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Symbols>,
    /// AGE stunt dice: stunt points granted (the drama die) when two dice
    /// show the same face.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stunt_points: Option<i64>,
    /// The value is a success count rather than a sum.
    #[serde(skip)]
    pub(crate) counts: bool,
}

/// One element of a set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetItem {
    /// The element's own result.
    pub node: Node,
    /// Not counted because keep/drop removed it.
    #[serde(skip_serializing_if = "is_false")]
    pub dropped: bool,
    /// Whether the element met the set's success condition.
    #[serde(skip_serializing_if = "is_false")]
    pub success: bool,
}

/// `(a, b)` or `{a, b}`: keep/drop and counting act on element totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetRoll {
    /// Elements.
    pub items: Vec<SetItem>,
    /// `{}` rather than `()`.
    pub brace: bool,
    /// Modifiers as written, e.g. `kh1`.
    #[serde(serialize_with = "shared_str")]
    pub suffix: Arc<str>,
    /// Sum of kept elements, or the number of successes.
    pub value: Num,
    /// Present when the set counts successes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tally: Option<Tally>,
    /// Annotations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
}

/// `{4d6+3d8}k4`: keep/drop and counting act on the dice inside.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRoll {
    /// The grouped expression (its dice carry the dropped marks).
    pub inner: Node,
    /// Modifiers as written.
    #[serde(serialize_with = "shared_str")]
    pub suffix: Arc<str>,
    /// The group's value.
    pub value: Num,
    /// Present when the group counts successes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tally: Option<Tally>,
    /// Annotations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
}

/// A node of the result tree. Every node knows its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    /// A literal number.
    Number {
        /// The number.
        value: Num,
        /// A decimal as written (`2.0`, `.50`), shown instead of the value's
        /// short form (`2`) that would read as an integer.
        #[serde(skip)]
        written: Option<Arc<str>>,
        /// Annotations such as `[bonus]`.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        annotations: Vec<String>,
    },
    /// A dice term.
    Dice(Box<DiceRoll>),
    /// `(a, b)` or `{a, b}`: keep/drop and counting on element totals.
    Set(Box<SetRoll>),
    /// `{4d6+3d8}k4`: keep/drop and counting on the dice inside.
    Group(Box<GroupRoll>),
    /// `( ... )`.
    Paren {
        /// The bracketed expression.
        inner: Box<Node>,
        /// Its value.
        value: Num,
        /// Annotations.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        annotations: Vec<String>,
    },
    /// `-x` / `+x`.
    Unary {
        /// Operator.
        op: UnaryOp,
        /// Operand.
        operand: Box<Node>,
        /// Result.
        value: Num,
    },
    /// Arithmetic.
    Binary {
        /// Operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Node>,
        /// Right operand.
        right: Box<Node>,
        /// Result.
        value: Num,
    },
    /// A comparison; its value is 1 when it passes, 0 otherwise.
    Compare {
        /// Operator.
        op: CompareOp,
        /// Left side.
        left: Box<Node>,
        /// Right side.
        right: Box<Node>,
        /// Outcome.
        passed: bool,
        /// 1 or 0.
        value: Num,
    },
    /// `check then effect`: the effect is rolled only if the check's value is
    /// positive; otherwise the value is 0.
    Then {
        /// The check.
        condition: Box<Node>,
        /// Whether the check passed.
        passed: bool,
        /// The effect, if rolled.
        #[serde(skip_serializing_if = "Option::is_none")]
        effect: Option<Box<Node>>,
        /// The effect's value, or 0.
        value: Num,
    },
    /// `floor(x)` and friends.
    Call {
        /// Function.
        func: Func,
        /// Argument.
        arg: Box<Node>,
        /// Result.
        value: Num,
        /// Annotations.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        annotations: Vec<String>,
    },
}

impl Node {
    /// The node's value.
    pub fn value(&self) -> Num {
        match self {
            Node::Number { value, .. }
            | Node::Paren { value, .. }
            | Node::Unary { value, .. }
            | Node::Binary { value, .. }
            | Node::Compare { value, .. }
            | Node::Then { value, .. }
            | Node::Call { value, .. } => *value,
            Node::Dice(d) => d.value,
            Node::Set(s) => s.value,
            Node::Group(g) => g.value,
        }
    }

    /// Dice terms in this subtree, left to right (depth first).
    pub fn dice_terms(&self) -> Vec<&DiceRoll> {
        let mut out = Vec::new();
        self.walk(&mut |n| {
            if let Node::Dice(d) = n {
                out.push(&**d);
            }
        });
        out
    }

    /// Visits every node, parents before children, left to right.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Node)) {
        f(self);
        match self {
            Node::Number { .. } | Node::Dice(_) => {}
            Node::Set(s) => {
                for item in &s.items {
                    item.node.walk(f);
                }
            }
            Node::Group(g) => g.inner.walk(f),
            Node::Paren { inner, .. } => inner.walk(f),
            Node::Unary { operand, .. } => operand.walk(f),
            Node::Call { arg, .. } => arg.walk(f),
            Node::Binary { left, right, .. } | Node::Compare { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Node::Then {
                condition, effect, ..
            } => {
                condition.walk(f);
                if let Some(e) = effect {
                    e.walk(f);
                }
            }
        }
    }
}

/// One evaluation of one expression (a repeat produces several).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExprResult {
    /// The value of the expression. For a comparison this is 1 or 0; see
    /// `check` for the pass/fail and the tree for the compared totals.
    pub total: Num,
    /// Pass/fail when the expression is a comparison or a `then`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<bool>,
    /// Sum over every counting pool in the evaluated tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tally: Option<Tally>,
    /// The leftmost d20 shows a natural 20 (on its first kept die).
    pub critical: bool,
    /// The leftmost d20 shows a natural 1 (on its first kept die).
    pub fumble: bool,
    /// Remarks for the player (caps reached, Wrath die, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Symbols of every narrative die in the result, before netting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narrative: Option<Symbols>,
    /// The full breakdown.
    pub tree: Node,
}

/// One `;`-separated roll with all its repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollResult {
    /// This roll's text as written.
    #[serde(serialize_with = "shared_str")]
    pub expression: Arc<str>,
    /// `(Label)` before the roll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Free text after the roll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// One entry per repetition (`6 4d6` or `4d6c6` give six).
    pub results: Vec<ExprResult>,
}

/// Everything one input produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The input as given.
    #[serde(serialize_with = "shared_str")]
    pub expression: Arc<str>,
    /// Dice Maiden flags from the start of the input.
    pub flags: Flags,
    /// One entry per `;`-separated roll.
    pub rolls: Vec<RollResult>,
    /// Sum of every result's total, when the input has more than one
    /// result (repeats such as `6 4d6`, or `;`-separated rolls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grand_total: Option<Num>,
}

impl Outcome {
    /// The first result of the first roll; every outcome has one.
    pub fn first(&self) -> Option<&ExprResult> {
        self.rolls.first().and_then(|r| r.results.first())
    }

    /// Total of the first roll (the usual single-expression case); see
    /// [`Outcome::results`] for repeats and `;`-separated rolls.
    pub fn total(&self) -> Num {
        self.first().map_or(Num::Int(0), |r| r.total)
    }

    /// Every result of every roll, in order.
    pub fn results(&self) -> impl Iterator<Item = &ExprResult> {
        self.rolls.iter().flat_map(|r| r.results.iter())
    }

    /// Pass/fail of the first roll, if it is a comparison or `then`.
    pub fn check(&self) -> Option<bool> {
        self.first().and_then(|r| r.check)
    }

    /// Natural 20 on the leftmost d20 of the first roll; without a d20, the highest
    /// face of its first pool that keeps a single die ([`Outcome::deciding_die`]).
    pub fn is_critical(&self) -> bool {
        self.first().is_some_and(|r| r.critical)
    }

    /// Natural 1 on the die [`Outcome::is_critical`] reads.
    pub fn is_fumble(&self) -> bool {
        self.first().is_some_and(|r| r.fumble)
    }

    /// The die [`Outcome::is_critical`] and [`Outcome::is_fumble`] read in the first
    /// roll, as `(natural face, sides)`: the leftmost d20, else the first pool that
    /// keeps a single die of 2 or more sides (`1d8`, `2d6kh1`). `None` when there is
    /// no such die (then the roll is neither).
    pub fn deciding_die(&self) -> Option<(i64, i64)> {
        let first = self.first()?;
        let mut scan = crate::eval::Scan::default();
        scan.node(&first.tree);
        scan.deciding()
    }

    /// Sum of every result's total when there are several results (see
    /// [`Outcome::results`]); `None` for a single result.
    pub fn grand_total(&self) -> Option<Num> {
        self.grand_total
    }

    /// Whether the player asked for a private reply (`p` flag).
    pub fn is_private(&self) -> bool {
        self.flags.private
    }
}

/// The seven kinds of Genesys / Star Wars narrative dice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NarrativeDie {
    /// Green d8 (`a`).
    Ability,
    /// Yellow d12 (`p`).
    Proficiency,
    /// Blue d6 (`b`).
    Boost,
    /// Purple d8 (`d`).
    Difficulty,
    /// Red d12 (`c`).
    Challenge,
    /// Black d6 (`s`).
    Setback,
    /// White d12 (`f`).
    Force,
}

/// Symbols shown by narrative dice. A triumph also counts as a success and
/// a despair as a failure when netting (`successes` and `failures` do not
/// include them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Symbols {
    /// Success symbols.
    pub successes: i64,
    /// Failure symbols.
    pub failures: i64,
    /// Advantage symbols.
    pub advantages: i64,
    /// Threat symbols.
    pub threats: i64,
    /// Triumphs (each also a success).
    pub triumphs: i64,
    /// Despairs (each also a failure).
    pub despairs: i64,
    /// Light side pips (force dice).
    pub light: i64,
    /// Dark side pips (force dice).
    pub dark: i64,
}

impl Symbols {
    /// Successes minus failures, triumphs and despairs included: positive
    /// means the check succeeds.
    pub fn net_successes(&self) -> i64 {
        self.successes
            .saturating_add(self.triumphs)
            .saturating_sub(self.failures)
            .saturating_sub(self.despairs)
    }

    /// Whether the symbols decide a check: any die but force dice was
    /// rolled (force dice alone only count pips).
    pub fn is_check(&self) -> bool {
        self.successes
            + self.failures
            + self.advantages
            + self.threats
            + self.triumphs
            + self.despairs
            > 0
            || self.light + self.dark == 0
    }

    /// Whether the check succeeds: a check with at least one net success.
    pub fn passed(&self) -> Option<bool> {
        self.is_check().then(|| self.net_successes() > 0)
    }

    /// Advantages minus threats.
    pub fn net_advantages(&self) -> i64 {
        self.advantages.saturating_sub(self.threats)
    }

    pub(crate) fn add(&mut self, o: Symbols) {
        self.successes = self.successes.saturating_add(o.successes);
        self.failures = self.failures.saturating_add(o.failures);
        self.advantages = self.advantages.saturating_add(o.advantages);
        self.threats = self.threats.saturating_add(o.threats);
        self.triumphs = self.triumphs.saturating_add(o.triumphs);
        self.despairs = self.despairs.saturating_add(o.despairs);
        self.light = self.light.saturating_add(o.light);
        self.dark = self.dark.saturating_add(o.dark);
    }
}
