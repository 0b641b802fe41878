//! The parsed form of a roll.
//!
//! Modifiers are stored by *stage* (rerolls, explosion, implosion, min/max,
//! keep/drop, counting, sort) rather than in the order they were written:
//! the stage order is fixed and documented in GRAMMAR.md, so the evaluator,
//! the odds engine and the renderer all agree on what a pool means.

use crate::num::Num;
use serde::Serialize;
use std::sync::Arc;

/// Byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// Binary arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (floors for integers)
    Div,
    /// `//` (always floors)
    FloorDiv,
    /// `%` (sign of the divisor)
    Rem,
    /// `**`
    Pow,
}

impl BinaryOp {
    /// The symbol used when rendering.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::FloorDiv => "//",
            BinaryOp::Rem => "%",
            BinaryOp::Pow => "**",
        }
    }
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `+x`
    Pos,
}

/// Comparison operators. `>` and `<` are strict everywhere; `>=`/`<=` are
/// inclusive everywhere (comparisons, compare points, selectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// `=` or `==`
    Eq,
    /// `!=`
    Ne,
    /// `>` (strict)
    Gt,
    /// `>=`
    Ge,
    /// `<` (strict)
    Lt,
    /// `<=`
    Le,
}

impl CompareOp {
    /// The symbol used when rendering.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        }
    }

    /// Applies the comparison to an ordering of left against right.
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            CompareOp::Eq => ord == Equal,
            CompareOp::Ne => ord != Equal,
            CompareOp::Gt => ord == Greater,
            CompareOp::Ge => ord != Less,
            CompareOp::Lt => ord == Less,
            CompareOp::Le => ord != Greater,
        }
    }
}

/// Functions callable as `name(expr)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Func {
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
    /// Round half away from zero.
    Round,
    /// Absolute value.
    Abs,
}

impl Func {
    /// The name used when rendering.
    pub fn name(self) -> &'static str {
        match self {
            Func::Floor => "floor",
            Func::Ceil => "ceil",
            Func::Round => "round",
            Func::Abs => "abs",
        }
    }
}

/// A condition on a single die value (or set element total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    /// Compare the value with a constant.
    Cmp(CompareOp, i64),
    /// The value equals the die's highest face (default for explosions).
    IsMax,
    /// The value equals the die's lowest face (default for implosion,
    /// failures and botches).
    IsMin,
}

/// Face range of a die, needed to resolve [`Cond::IsMax`] / [`Cond::IsMin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Faces {
    pub min: i64,
    pub max: i64,
    pub fate: bool,
}

impl Cond {
    pub fn matches(self, value: i64, faces: Faces) -> bool {
        match self {
            Cond::Cmp(op, n) => op.holds(value.cmp(&n)),
            Cond::IsMax => value == faces.max,
            Cond::IsMin => value == faces.min,
        }
    }

    /// Whether some face of a die with these faces matches.
    pub fn met_within(self, faces: Faces) -> bool {
        let (lo, hi) = (faces.min, faces.max);
        match self {
            Cond::Cmp(CompareOp::Eq, n) => (lo..=hi).contains(&n),
            Cond::Cmp(CompareOp::Ne, n) => lo != hi || lo != n,
            Cond::Cmp(CompareOp::Gt, n) => hi > n,
            Cond::Cmp(CompareOp::Ge, n) => hi >= n,
            Cond::Cmp(CompareOp::Lt, n) => lo < n,
            Cond::Cmp(CompareOp::Le, n) => lo <= n,
            Cond::IsMax | Cond::IsMin => true,
        }
    }

    /// Matching on set element totals, which may be decimals. `IsMax`/`IsMin`
    /// never occur on sets (the parser does not produce them there).
    pub fn matches_num(self, value: Num) -> bool {
        match self {
            Cond::Cmp(op, n) => op.holds(value.compare(Num::Int(n))),
            Cond::IsMax | Cond::IsMin => false,
        }
    }
}

/// Which dice a keep/drop step selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selector {
    Highest(u64),
    Lowest(u64),
    Middle(u64),
    Match(Cond),
}

/// One keep or drop operation; consecutive operators of the same kind are
/// merged into one step whose selection is the union (`k1k2`, `kh1kl1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SelectStep {
    pub keep: bool,
    pub selectors: Vec<Selector>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RerollMode {
    /// Reroll once, keep the new value (`r`, `rg`, `ro`).
    Once,
    /// Reroll while the condition holds, capped (`ir`, `irg`, `rr`).
    Indefinite,
    /// Keep the die and add one more die if it matches (`ra`).
    Add,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reroll {
    pub mode: RerollMode,
    pub cond: Cond,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExplodeMode {
    /// Extra dice that explode again, capped (`e`, `ie`, `!`).
    Chain,
    /// One extra die per matching die; extra dice never explode (`eo`).
    Once,
    /// Extra dice are added into the original die (`!!`).
    Compound,
    /// Like `Chain`, but every extra die counts one less (`!p`).
    Penetrate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Explode {
    pub mode: ExplodeMode,
    /// A die explodes if any condition matches.
    pub conds: Vec<Cond>,
}

impl Explode {
    pub fn matches(&self, value: i64, faces: Faces) -> bool {
        self.conds.iter().any(|c| c.matches(value, faces))
    }
}

/// Success counting rules. A die scores 2 if a `double` rule matches, else
/// 1 if a `success` rule matches; a `failure` match subtracts 1; botches are
/// only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counting {
    pub success: Vec<Cond>,
    pub double: Vec<Cond>,
    pub failure: Vec<Cond>,
    pub botch: Vec<Cond>,
}

impl Counting {
    /// Whether the pool's value is a success count instead of a sum.
    pub fn counts(&self) -> bool {
        !(self.success.is_empty() && self.double.is_empty() && self.failure.is_empty())
    }

    pub fn any(&self) -> bool {
        self.counts() || !self.botch.is_empty()
    }

    pub fn has_target(&self) -> bool {
        !self.success.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortOrder {
    Ascending,
    Descending,
}

/// All modifiers of one pool, by stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mods {
    pub rerolls: Vec<Reroll>,
    pub explode: Option<Explode>,
    pub implode: Vec<Cond>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub select: Vec<SelectStep>,
    pub counting: Counting,
    pub sort: Option<SortOrder>,
}

impl Mods {
    /// True when the pool may contain more dice than it started with.
    pub fn adds_dice(&self) -> bool {
        self.rerolls.iter().any(|r| r.mode == RerollMode::Add)
            || self
                .explode
                .as_ref()
                .is_some_and(|e| e.mode != ExplodeMode::Compound)
            || !self.implode.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Count {
    Lit(i64),
    Expr(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SidesSpec {
    Lit(i64),
    Fate,
    Expr(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiceSpec {
    pub count: Count,
    pub sides: SidesSpec,
    pub mods: Mods,
    /// How the term is shown: the source text, or the expansion of an alias.
    /// Shared with every outcome rolled from it.
    pub notation: Arc<str>,
    /// Wrath & Glory: the first die is the Wrath die.
    pub wrath: bool,
    /// A game system that reads the dice its own way (Cypher, AGE,
    /// narrative dice).
    pub system: Option<System>,
}

impl DiceSpec {
    /// The note for a pool whose success rules no face of its dice can meet (`2d6>=8`,
    /// `4d6t7`): it always counts 0, which is seldom what was meant. A compare point
    /// written against the dice counts the dice that meet it (`GRAMMAR.md`), so the
    /// note says how to compare the total. `None` when a face can succeed, or when the
    /// dice's values are not their faces (compounding explosions, `mi`/`ma`, a game
    /// system's reading, sides rolled at run time).
    pub(crate) fn unmeetable_target(&self) -> Option<String> {
        let faces = match self.sides {
            SidesSpec::Lit(sides) => Faces {
                min: 1,
                max: sides,
                fate: false,
            },
            SidesSpec::Fate => Faces {
                min: -1,
                max: 1,
                fate: true,
            },
            SidesSpec::Expr(_) => return None,
        };
        let mods = &self.mods;
        let rules: Vec<Cond> = mods
            .counting
            .success
            .iter()
            .chain(&mods.counting.double)
            .copied()
            .collect();
        let compounds = mods
            .explode
            .as_ref()
            .is_some_and(|e| e.mode == ExplodeMode::Compound);
        if rules.is_empty()
            || compounds
            || mods.min.is_some()
            || mods.max.is_some()
            || self.system.is_some()
            || rules.iter().any(|c| c.met_within(faces))
        {
            return None;
        }
        let notation = self.notation.trim();
        let die = if faces.fate {
            "Fate die".to_owned()
        } else {
            format!("d{}", faces.max)
        };
        let mut note =
            format!("no {die} can meet the target of {notation}, so it counts 0 successes");
        if let [Cond::Cmp(op, n)] = rules.as_slice()
            && let Some(dice) = notation.strip_suffix(&format!("{}{n}", op.symbol()))
            && !dice.is_empty()
        {
            let symbol = op.symbol();
            note.push_str(&format!(
                "; to compare the total, write {dice} {symbol} {n} or ({dice}){symbol}{n}"
            ));
        }
        Some(note)
    }
}

/// Game systems whose dice mean more than their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    /// Cypher System: `1d20`; 1 is a GM intrusion, 17 to 20 add effects.
    Cypher,
    /// AGE: `3d6`, the last die is the drama die; doubles grant stunt
    /// points equal to it.
    Age,
    /// Genesys / Star Wars narrative dice of one kind; each die's value is
    /// its net successes.
    Narrative(crate::outcome::NarrativeDie),
}

/// `(a, b, c)` or `{a, b}`: keep/drop and counting act on element totals.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SetSpec {
    pub items: Vec<Expr>,
    pub mods: Mods,
    pub brace: bool,
    /// Modifiers as written, for display.
    pub suffix: Arc<str>,
}

/// `{4d6+3d8}k4`: keep/drop and counting act on the individual dice inside.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupSpec {
    pub inner: Expr,
    pub mods: Mods,
    pub suffix: Arc<str>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Num(Num),
    Dice(Box<DiceSpec>),
    Set(Box<SetSpec>),
    Group(Box<GroupSpec>),
    Paren(Box<Expr>),
    Unary(UnaryOp, Box<Expr>),
    /// Operator, its byte offset, operands.
    Binary(BinaryOp, usize, Box<Expr>, Box<Expr>),
    Compare(CompareOp, usize, Box<Expr>, Box<Expr>),
    Then(usize, Box<Expr>, Box<Expr>),
    Call(Func, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    pub annotations: Vec<String>,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Self {
        Expr {
            kind,
            span,
            annotations: Vec::new(),
        }
    }
}

/// Dice Maiden's message flags, written before the roll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Flags {
    /// `p`: the caller should reply privately.
    pub private: bool,
    /// `s`: show the expression and total, without the dice.
    pub simple: bool,
    /// `nr`: show only the total.
    pub no_results: bool,
    /// `ul`: every pool is shown in the order its dice were rolled, even
    /// when it asks to be sorted (`s`, `sa`, `sd`).
    pub unsorted: bool,
}

/// One `;`-separated roll.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollSpec {
    pub span: Span,
    /// This roll's text, trimmed.
    pub text: Arc<str>,
    pub expr: Expr,
    pub label: Option<String>,
    pub comment: Option<String>,
    pub repeat: u32,
    /// Where the source no longer says what is rolled: a term a word of the
    /// roll rewrote (`adv 1d20` rolls `2d20kh1`), with the text it is shown
    /// as. Texts cut from the source (the odds' labels) apply these.
    pub rewrites: Vec<Rewrite>,
}

/// Source text shown differently: `span` of the source reads as `text`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rewrite {
    pub span: Span,
    pub text: Arc<str>,
    /// Shown only in the text of the check: a target the source does not
    /// write as one (`adv cs3`'s `>= 9`), which the checked side's own text
    /// leaves out.
    pub check_only: bool,
}

impl RollSpec {
    /// The source text of `span` as it is rolled: with this roll's
    /// [`Rewrite`]s inside `span` applied (those only for a check when
    /// `span` is the check's), trimmed.
    pub(crate) fn shown(&self, src: &str, span: Span, check: bool) -> String {
        let mut out = String::new();
        let mut at = span.start;
        for rw in &self.rewrites {
            if rw.span.start < at || rw.span.end > span.end || (rw.check_only && !check) {
                continue;
            }
            out.push_str(src.get(at..rw.span.start).unwrap_or(""));
            out.push_str(&rw.text);
            at = rw.span.end;
        }
        out.push_str(src.get(at..span.end).unwrap_or(""));
        out.trim().to_owned()
    }
}
