//! Probability distributions of rolls.
//!
//! The exact engine works on dense integer distributions (`Dist`) and
//! follows the evaluator's stage order: per-die face distribution ->
//! rerolls (a small Markov chain, capped like the roller) -> explosions
//! (chains up to the roller's cap) -> implosion -> min/max -> keep/drop
//! (order statistics) -> success scores -> sum over dice (convolution) ->
//! arithmetic and comparisons over independent sub-expressions.
//!
//! It gives up, and the caller falls back to a seeded Monte-Carlo
//! simulation, when an expression has decimals, computed side counts,
//! keep/drop on pools that gain dice (explosions, `ra`, implosion), keep
//! middle, merged or multi-step keep/drop by count, keep/drop on sets or
//! groups, or when the work exceeds [`EXACT_WORK_BUDGET`] or a distribution
//! would hold more than [`EXACT_MAX_OUTCOMES`] outcomes.
//!
//! Explosion chains are followed to the roller's cap, but their far tails
//! (total probability below [`TAIL_EPSILON`]) are cut: they cannot change
//! any figure at the precision shown, and cutting them keeps `8d6!` cheap.

use crate::Program;
use crate::ast::{
    BinaryOp, CompareOp, Cond, Count, Counting, DiceSpec, ExplodeMode, Expr, ExprKind, Faces, Func,
    Mods, RerollMode, Selector, SidesSpec, UnaryOp,
};
use crate::error::{DiceError, ErrorKind};
use crate::eval::{Evaluator, FATE, apply_binary, num_error_kind, numbered};
use crate::limits::{MAX_DICE, MAX_EXPLOSIONS, MAX_REROLLS_PER_DIE};
use crate::num::Num;
use crate::outcome::Node;
use crate::render::escape_into;
use crate::rng::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Most steps the exact engine may spend: multiply-adds, copies and
/// binomial terms (well under a second, release build).
pub const EXACT_WORK_BUDGET: u64 = 40_000_000;
/// Most distinct outcomes one exact distribution may hold.
pub const EXACT_MAX_OUTCOMES: usize = 1_000_000;
/// Explosion-chain tails with less total probability than this are cut.
pub const TAIL_EPSILON: f64 = 1e-16;
/// Seed of the Monte-Carlo fallback, so odds are reproducible.
pub const SIMULATION_SEED: u64 = 0x0DD5_5EED;
/// Most simulated rolls.
pub const SIMULATION_MAX_SAMPLES: usize = 100_000;
/// Fewest simulated rolls (even for very expensive expressions).
pub const SIMULATION_MIN_SAMPLES: usize = 2_000;
/// Dice the simulation may roll in total, the odds' work budget: expensive
/// expressions get fewer samples, and one that needs more than this for
/// [`SIMULATION_MIN_SAMPLES`] rolls is refused
/// ([`crate::ErrorKind::OddsOverBudget`]).
pub const SIMULATION_DICE_BUDGET: usize = 10_000_000;
/// Exact distributions with at most this many outcomes are listed in full.
pub const LISTED_OUTCOMES: usize = 1_000;
/// Shown for outcomes whose chance is too small to compute (it underflows
/// an `f64`): they count for min and max, and a note gives their range.
const UNDERFLOW_BELOW: &str = "1e-300";

/// How the figures were obtained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Method {
    /// Computed exactly (up to floating point and
    /// [`TAIL_EPSILON`](crate::limits::TAIL_EPSILON)).
    Exact,
    /// Estimated from this many simulated rolls with a fixed seed.
    Simulated {
        /// Number of simulated rolls.
        samples: usize,
        /// Seed used.
        seed: u64,
    },
}

/// Percentiles: the smallest outcome whose cumulative probability reaches
/// the given fraction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Percentiles {
    pub p5: Num,
    pub p25: Num,
    pub p50: Num,
    pub p75: Num,
    pub p95: Num,
}

/// Probability that the roll's comparison (or the check of its `then`)
/// passes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckOdds {
    /// The check as rolled, e.g. `1d20+5 >= 15`: as written, except that a
    /// term a word of the roll rewrote shows what it rolls (`adv 1d20+5 >=
    /// 15` reads `2d20kh1+5 >= 15`).
    pub description: String,
    /// Between 0 and 1.
    pub probability: f64,
}

/// One outcome of an exact distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Chance {
    /// The outcome.
    pub value: i64,
    /// Its probability.
    pub probability: f64,
}

/// The odds of a roll.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Odds {
    /// The input.
    pub expression: String,
    /// What the statistics describe: the whole roll, or the left side of a
    /// comparison, as rolled (like [`CheckOdds::description`]).
    pub subject: String,
    /// Exact or simulated.
    pub method: Method,
    /// Expected value.
    pub mean: f64,
    /// Standard deviation.
    pub std_dev: f64,
    /// Smallest possible (or observed) outcome. Exact odds give the true
    /// minimum even when its chance is too small to compute (`1000d6`:
    /// 1000); past explosion tails cut at [`TAIL_EPSILON`], the largest
    /// outcome left.
    pub min: Num,
    /// Largest possible (or observed) outcome, as for [`Odds::min`].
    pub max: Num,
    /// p5 / p25 / p50 / p75 / p95.
    pub percentiles: Percentiles,
    /// Chance of passing, for comparisons and `then`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckOdds>,
    /// Chance of at least one net success, for success-counting pools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_least_one_success: Option<f64>,
    /// Every outcome with its probability (exact method, small supports).
    /// Outcomes whose chance is too small to compute (below 1e-300) are
    /// left out, though [`Odds::min`] and [`Odds::max`] count them; a note
    /// says which.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub distribution: Vec<Chance>,
    /// Remarks (e.g. that odds are for one repetition).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

// ---- dense distributions --------------------------------------------------------

/// Probability of each integer in `min ..= min + p.len() - 1`.
#[derive(Debug, Clone, PartialEq)]
struct Dist {
    min: i64,
    p: Vec<f64>,
    /// The smallest and largest outcome that can happen (`None`: no mass).
    /// A chance too small for an `f64` (`1000d6` rolling 1000 is 6^-1000)
    /// is 0 in `p`, yet its outcome is possible: these bounds follow the
    /// outcomes, not the chances, so they stay exact.
    support: Option<(i64, i64)>,
}

type Support = Option<(i64, i64)>;

/// The smallest range holding both.
fn join(a: Support, b: Support) -> Support {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Why the exact engine stopped: not supported or too expensive. The caller
/// simulates instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GiveUp;

/// Errors are real roll errors (e.g. a possible division by zero); `Ok(Err(GiveUp))`
/// means "simulate".
type Exact<T> = Result<Result<T, GiveUp>, DiceError>;

struct Budget {
    left: u64,
}

impl Budget {
    fn spend(&mut self, work: u64) -> Result<(), GiveUp> {
        if work > self.left {
            self.left = 0;
            return Err(GiveUp);
        }
        self.left -= work;
        Ok(())
    }
}

fn size_ok(len: u64) -> Result<usize, GiveUp> {
    usize::try_from(len)
        .ok()
        .filter(|&n| n <= EXACT_MAX_OUTCOMES)
        .ok_or(GiveUp)
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn idx(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

impl Dist {
    fn point(v: i64) -> Dist {
        Dist {
            min: v,
            p: vec![1.0],
            support: Some((v, v)),
        }
    }

    /// No probability mass at all; the neutral start of a mixture.
    fn empty() -> Dist {
        Dist {
            min: 0,
            p: Vec::new(),
            support: None,
        }
    }

    /// Chances from `min` on, possible where they are positive (only for
    /// chances that cannot have underflowed: those of one die).
    fn dense(min: i64, p: Vec<f64>) -> Dist {
        let at = |i: Option<usize>| i.map(|i| min.saturating_add(idx(i)));
        let support = at(p.iter().position(|p| *p > 0.0)).zip(at(p.iter().rposition(|p| *p > 0.0)));
        Dist { min, p, support }
    }

    fn max(&self) -> i64 {
        self.min.saturating_add(idx(self.p.len()).saturating_sub(1))
    }

    fn iter(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.p
            .iter()
            .enumerate()
            .filter(|(_, p)| **p > 0.0)
            .map(|(i, p)| (self.min.saturating_add(idx(i)), *p))
    }

    fn total(&self) -> f64 {
        self.p.iter().sum()
    }

    /// Builds a distribution from (value, probability) pairs.
    fn from_pairs(pairs: impl Iterator<Item = (i64, f64)> + Clone) -> Result<Dist, GiveUp> {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (v, p) in pairs.clone() {
            if p > 0.0 {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if lo > hi {
            return Ok(Dist::empty());
        }
        let len = size_ok(hi.abs_diff(lo).saturating_add(1))?;
        let mut p = vec![0.0; len];
        for (v, q) in pairs {
            if q > 0.0
                && let Some(slot) = usize::try_from(v.abs_diff(lo))
                    .ok()
                    .and_then(|i| p.get_mut(i))
            {
                *slot += q;
            }
        }
        Ok(Dist {
            min: lo,
            p,
            support: Some((lo, hi)),
        })
    }

    fn scale(mut self, k: f64) -> Dist {
        for p in &mut self.p {
            *p *= k;
        }
        if k <= 0.0 || k.is_nan() {
            self.support = None;
        }
        self
    }

    fn shift(&self, by: i64) -> Result<Dist, GiveUp> {
        let support = match self.support {
            Some((lo, hi)) => Some((
                lo.checked_add(by).ok_or(GiveUp)?,
                hi.checked_add(by).ok_or(GiveUp)?,
            )),
            None => None,
        };
        Ok(Dist {
            min: self.min.checked_add(by).ok_or(GiveUp)?,
            p: self.p.clone(),
            support,
        })
    }

    fn negate(&self) -> Result<Dist, GiveUp> {
        let min = self.max().checked_neg().ok_or(GiveUp)?;
        let mut p = self.p.clone();
        p.reverse();
        let support = match self.support {
            Some((lo, hi)) => Some((
                hi.checked_neg().ok_or(GiveUp)?,
                lo.checked_neg().ok_or(GiveUp)?,
            )),
            None => None,
        };
        Ok(Dist { min, p, support })
    }

    fn convolve(&self, other: &Dist, budget: &mut Budget) -> Result<Dist, GiveUp> {
        budget.spend(as_u64(self.p.len()).saturating_mul(as_u64(other.p.len())))?;
        let len = size_ok(as_u64(self.p.len() + other.p.len()).saturating_sub(1))?;
        let min = self.min.checked_add(other.min).ok_or(GiveUp)?;
        self.max().checked_add(other.max()).ok_or(GiveUp)?;
        // Independent: the extremes of the sum are the sums of the extremes.
        let support = match (self.support, other.support) {
            (Some((a0, a1)), Some((b0, b1))) => Some((
                a0.checked_add(b0).ok_or(GiveUp)?,
                a1.checked_add(b1).ok_or(GiveUp)?,
            )),
            _ => None,
        };
        let mut p = vec![0.0; len];
        for (i, a) in self.p.iter().enumerate() {
            if *a == 0.0 {
                continue;
            }
            if let Some(dst) = p.get_mut(i..) {
                for (d, b) in dst.iter_mut().zip(&other.p) {
                    *d += a * b;
                }
            }
        }
        Ok(Dist { min, p, support })
    }

    /// Adds `k * other` into `self`, widening as needed.
    fn add_scaled(&mut self, other: &Dist, k: f64, budget: &mut Budget) -> Result<(), GiveUp> {
        budget.spend(as_u64(other.p.len()))?;
        let support = if k > 0.0 {
            join(self.support, other.support)
        } else {
            self.support
        };
        if other.p.is_empty() {
            self.support = support;
            return Ok(());
        }
        if self.p.is_empty() {
            *self = other.clone().scale(k);
            self.support = support;
            return Ok(());
        }
        self.support = support;
        let lo = self.min.min(other.min);
        let hi = self.max().max(other.max());
        let len = size_ok(hi.abs_diff(lo).saturating_add(1))?;
        if lo != self.min || len != self.p.len() {
            // Widening copies the whole of `self`: work too.
            budget.spend(as_u64(len))?;
            let mut p = vec![0.0; len];
            let off = usize::try_from(self.min.abs_diff(lo)).map_err(|_| GiveUp)?;
            if let Some(dst) = p.get_mut(off..) {
                for (d, s) in dst.iter_mut().zip(&self.p) {
                    *d = *s;
                }
            }
            self.p = p;
            self.min = lo;
        }
        let off = usize::try_from(other.min.abs_diff(self.min)).map_err(|_| GiveUp)?;
        if let Some(dst) = self.p.get_mut(off..) {
            for (d, s) in dst.iter_mut().zip(&other.p) {
                *d += k * s;
            }
        }
        Ok(())
    }

    /// The distribution of `f` of the outcome. Its bounds take `f` of the
    /// outcomes with a chance and of the extremes, exact for monotone `f`.
    fn map(&self, f: impl Fn(i64) -> i64) -> Result<Dist, GiveUp> {
        let pairs: Vec<(i64, f64)> = self.iter().map(|(v, p)| (f(v), p)).collect();
        let mut out = Dist::from_pairs(pairs.into_iter())?;
        if let Some((lo, hi)) = self.support {
            let ends = [f(lo), f(hi)];
            out.support = join(
                out.support,
                Some((ends[0].min(ends[1]), ends[0].max(ends[1]))),
            );
        }
        Ok(out)
    }

    fn power(&self, n: i64, budget: &mut Budget) -> Result<Dist, GiveUp> {
        let mut acc = Dist::point(0);
        for _ in 0..n {
            acc = acc.convolve(self, budget)?;
        }
        Ok(acc)
    }

    /// Drops leading and trailing zero entries.
    fn trim_zeros(mut self) -> Dist {
        let first = self.p.iter().position(|p| *p > 0.0).unwrap_or(0);
        let last = self.p.iter().rposition(|p| *p > 0.0).unwrap_or(0);
        if !self.p.iter().any(|p| *p > 0.0) {
            return Dist {
                support: self.support,
                ..Dist::empty()
            };
        }
        if first > 0 || last + 1 < self.p.len() {
            self.p = self
                .p
                .get(first..=last)
                .map(<[f64]>::to_vec)
                .unwrap_or_default();
            self.min = self.min.saturating_add(idx(first));
        }
        self
    }

    /// Cuts tails whose total mass is below [`TAIL_EPSILON`]: the outcomes
    /// cut are taken as impossible (explosion chains are followed that far
    /// only to be exact to the precision shown).
    fn trim_tails(mut self) -> Dist {
        let mut cut = 0.0;
        while self.p.len() > 1 {
            let last = self.p.last().copied().unwrap_or(0.0);
            if cut + last >= TAIL_EPSILON {
                break;
            }
            cut += last;
            self.p.pop();
        }
        let top = self.p.iter().rposition(|p| *p > 0.0);
        self.support = match (self.support, top) {
            (Some((lo, _)), Some(i)) => {
                let top = self.min.saturating_add(idx(i));
                Some((lo.min(top), top))
            }
            _ => None,
        };
        self.trim_zeros()
    }

    /// The chance of a positive outcome (a `then` check passing): exactly 1
    /// or 0 when every possible outcome is positive or none is, whatever
    /// rounding left of the chances.
    fn chance_positive(&self) -> f64 {
        match self.support {
            Some((lo, _)) if lo > 0 => 1.0,
            Some((_, hi)) if hi <= 0 => 0.0,
            None => 0.0,
            _ => self.prob(|v| v > 0),
        }
    }

    fn prob(&self, pred: impl Fn(i64) -> bool) -> f64 {
        // A fold from +0.0: an empty `sum` of floats is -0.0, shown as "-0.00%".
        self.iter()
            .filter(|(v, _)| pred(*v))
            .fold(0.0, |total, (_, p)| total + p)
    }
}

// ---- the exact engine -------------------------------------------------------------

struct Engine<'a> {
    src: &'a str,
    budget: Budget,
}

impl Engine<'_> {
    fn error(&self, kind: ErrorKind, at: usize) -> DiceError {
        DiceError::new(kind, self.src, at)
    }

    fn dist(&mut self, expr: &Expr) -> Exact<Dist> {
        Ok(match &expr.kind {
            ExprKind::Num(Num::Int(n)) => Ok(Dist::point(*n)),
            ExprKind::Num(Num::Dec(_)) => Err(GiveUp),
            ExprKind::Dice(spec) => self.dice(spec)?,
            ExprKind::Set(set) => {
                if !set.mods.select.is_empty() || set.mods.counting.any() {
                    return Ok(Err(GiveUp));
                }
                let mut acc = Dist::point(0);
                for item in &set.items {
                    let d = match self.dist(item)? {
                        Ok(d) => d,
                        Err(g) => return Ok(Err(g)),
                    };
                    acc = match acc.convolve(&d, &mut self.budget) {
                        Ok(a) => a,
                        Err(g) => return Ok(Err(g)),
                    };
                }
                Ok(acc)
            }
            ExprKind::Group(g) => {
                if !g.mods.select.is_empty() || g.mods.counting.any() {
                    return Ok(Err(GiveUp));
                }
                self.dist(&g.inner)?
            }
            ExprKind::Paren(e) => self.dist(e)?,
            ExprKind::Unary(op, e) => match self.dist(e)? {
                Ok(d) if *op == UnaryOp::Neg => d.negate(),
                other => other,
            },
            ExprKind::Binary(op, at, l, r) => {
                let (a, b) = match (self.dist(l)?, self.dist(r)?) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return Ok(Err(GiveUp)),
                };
                self.binary(*op, *at, &a, &b)?
            }
            ExprKind::Compare(op, _, l, r) => {
                let (a, b) = match (self.dist(l)?, self.dist(r)?) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return Ok(Err(GiveUp)),
                };
                self.compare(*op, &a, &b).map(bernoulli)
            }
            ExprKind::Then(_, c, e) => {
                let (cond, effect) = match (self.dist(c)?, self.dist(e)?) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return Ok(Err(GiveUp)),
                };
                let pass = cond.chance_positive();
                let mut out = Dist::point(0).scale(1.0 - pass);
                match out.add_scaled(&effect, pass, &mut self.budget) {
                    Ok(()) => Ok(out.trim_zeros()),
                    Err(g) => Err(g),
                }
            }
            ExprKind::Call(func, e) => match self.dist(e)? {
                Ok(d) => match func {
                    Func::Floor | Func::Ceil | Func::Round => Ok(d),
                    Func::Abs => {
                        if d.min == i64::MIN {
                            return Err(self.error(ErrorKind::Overflow, expr.span.start));
                        }
                        d.map(i64::abs)
                    }
                },
                Err(g) => Err(g),
            },
        })
    }

    /// Probability that `a op b` holds for independent `a` and `b`.
    fn compare(&mut self, op: CompareOp, a: &Dist, b: &Dist) -> Result<f64, GiveUp> {
        let diff = a.convolve(&b.negate()?, &mut self.budget)?;
        Ok(diff.prob(|d| op.holds(d.cmp(&0))))
    }

    fn binary(&mut self, op: BinaryOp, at: usize, a: &Dist, b: &Dist) -> Exact<Dist> {
        match op {
            BinaryOp::Add => return Ok(a.convolve(b, &mut self.budget)),
            BinaryOp::Sub => {
                return Ok(b.negate().and_then(|nb| a.convolve(&nb, &mut self.budget)));
            }
            _ => {}
        }
        if let Err(g) = self
            .budget
            .spend(as_u64(a.p.len()).saturating_mul(as_u64(b.p.len())))
        {
            return Ok(Err(g));
        }
        let mut out: HashMap<i64, f64> = HashMap::new();
        for (x, px) in a.iter() {
            for (y, py) in b.iter() {
                match apply_binary(op, Num::Int(x), Num::Int(y)) {
                    Ok(Num::Int(v)) => *out.entry(v).or_insert(0.0) += px * py,
                    Ok(Num::Dec(_)) => return Ok(Err(GiveUp)),
                    Err(e) => return Err(self.error(num_error_kind(e), at)),
                }
            }
        }
        let mut dist = match Dist::from_pairs(out.iter().map(|(v, p)| (*v, *p))) {
            Ok(d) => d,
            Err(g) => return Ok(Err(g)),
        };
        // The extremes of each side are possible, so `op` of them is too,
        // even when its chance underflowed; for `*`, `/` and `//` they are
        // also the extremes of the result.
        if let (Some((a0, a1)), Some((b0, b1))) = (a.support, b.support) {
            for (x, y) in [(a0, b0), (a0, b1), (a1, b0), (a1, b1)] {
                if let Ok(Num::Int(v)) = apply_binary(op, Num::Int(x), Num::Int(y)) {
                    dist.support = join(dist.support, Some((v, v)));
                }
            }
        }
        Ok(Ok(dist))
    }

    fn dice(&mut self, spec: &DiceSpec) -> Exact<Dist> {
        let faces = match spec.sides {
            SidesSpec::Lit(s) => numbered(s),
            SidesSpec::Fate => FATE,
            SidesSpec::Expr(_) => return Ok(Err(GiveUp)),
        };
        let mods = &spec.mods;
        let counts: Result<Dist, GiveUp> = match &spec.count {
            Count::Lit(n) => Ok(Dist::point(*n)),
            Count::Expr(e) => match self.dist(e)? {
                Ok(d) => {
                    if d.min < 0 {
                        return Err(
                            self.error(ErrorKind::NegativeDiceCount { count: d.min }, e.span.start)
                        );
                    }
                    if d.max() > MAX_DICE {
                        return Err(self.error(
                            ErrorKind::TooManyDice {
                                count: d.max(),
                                max: MAX_DICE,
                            },
                            e.span.start,
                        ));
                    }
                    Ok(d)
                }
                Err(g) => Err(g),
            },
        };
        Ok(counts.and_then(|counts| self.pool(mods, faces, &counts)))
    }

    fn pool(&mut self, mods: &Mods, faces: Faces, counts: &Dist) -> Result<Dist, GiveUp> {
        let w = Weight::new(&mods.counting, faces);
        let rolled = reroll_faces(mods, faces, &mut self.budget)?;
        if mods.select.is_empty() {
            let group = self.group(mods, faces, &rolled, &w)?;
            // Mixture over the number of dice.
            let mut out = Dist::empty();
            let mut acc = Dist::point(0);
            let mut k = 0i64;
            for (n, pn) in counts.iter() {
                while k < n {
                    acc = acc.convolve(&group, &mut self.budget)?;
                    k += 1;
                }
                out.add_scaled(&acc, pn, &mut self.budget)?;
            }
            return Ok(out.trim_zeros());
        }
        if mods.adds_dice() || counts.p.len() != 1 {
            return Err(GiveUp);
        }
        let n = counts.min;
        let values = die_values(mods, faces, &rolled, &mut self.budget)?;
        let steps = &mods.select;
        if steps
            .iter()
            .all(|s| s.selectors.iter().all(|x| matches!(x, Selector::Match(_))))
        {
            let kept = |v: i64| {
                steps.iter().all(|s| {
                    let hit = s.selectors.iter().any(|x| match x {
                        Selector::Match(c) => c.matches(v, faces),
                        _ => false,
                    });
                    hit == s.keep
                })
            };
            let die = values.map(|v| if kept(v) { w.of(v) } else { 0 })?;
            return die.power(n, &mut self.budget);
        }
        let [step] = steps.as_slice() else {
            return Err(GiveUp);
        };
        let [sel] = step.selectors.as_slice() else {
            return Err(GiveUp);
        };
        let (top, m) = match (*sel, step.keep) {
            (Selector::Highest(k), true) => (true, clamp_count(k, n)),
            (Selector::Lowest(k), true) => (false, clamp_count(k, n)),
            (Selector::Lowest(k), false) => (true, n - clamp_count(k, n)),
            (Selector::Highest(k), false) => (false, n - clamp_count(k, n)),
            _ => return Err(GiveUp),
        };
        keep_extreme(&values, n, m, top, &w, &mut self.budget)
    }

    /// Distribution of what one initial die contributes together with the
    /// dice it adds (explosions, implosion, `ra`).
    fn group(
        &mut self,
        mods: &Mods,
        faces: Faces,
        rolled: &Dist,
        w: &Weight,
    ) -> Result<Dist, GiveUp> {
        let clamp = |v: i64| clamp_value(v, mods);
        let uniform = uniform(faces)?;
        let explode = mods.explode.as_ref();
        if let Some(ex) = explode
            && ex.mode == ExplodeMode::Compound
        {
            // One die whose value is the sum of its chain.
            let values = die_values(mods, faces, rolled, &mut self.budget)?;
            return values.map(|v| w.of(v));
        }
        let explodes = |v: i64| explode.is_some_and(|e| e.matches(v, faces));
        // Sum of weights of the extra dice rolled after an exploding die.
        let chain = match explode {
            None => Dist::point(0),
            Some(ex) => {
                let penetrate = ex.mode == ExplodeMode::Penetrate;
                let extra_weight = |f: i64| w.of(clamp(if penetrate { f - 1 } else { f }));
                let levels = if ex.mode == ExplodeMode::Once {
                    1
                } else {
                    MAX_EXPLOSIONS
                };
                let (stop, again) = split_faces(&uniform, explodes, extra_weight)?;
                chain_levels(&stop, &again, levels, &mut self.budget)?
            }
        };
        let implode = !mods.implode.is_empty();
        let implosion = if implode {
            uniform.map(|f| w.of(-f))?
        } else {
            Dist::point(0)
        };
        let implodes = |v: i64| mods.implode.iter().any(|c| c.matches(v, faces));
        let adds = |v: i64| {
            mods.rerolls
                .iter()
                .any(|r| r.mode == RerollMode::Add && r.cond.matches(v, faces))
        };
        let added = if mods.rerolls.iter().any(|r| r.mode == RerollMode::Add) {
            // A fresh die that may explode but neither rerolls nor implodes.
            let (stop, again) = split_faces(&uniform, explodes, |f| w.of(clamp(f)))?;
            let mut d = stop;
            d.add_scaled(
                &again.convolve(&chain, &mut self.budget)?,
                1.0,
                &mut self.budget,
            )?;
            d
        } else {
            Dist::point(0)
        };
        // Group faces by which extras they trigger, then convolve once per class.
        let mut classes: [Vec<(i64, f64)>; 8] = Default::default();
        for (v, p) in rolled.iter() {
            let class = usize::from(explodes(v))
                | usize::from(implode && implodes(v)) << 1
                | usize::from(adds(v)) << 2;
            if let Some(c) = classes.get_mut(class) {
                c.push((w.of(clamp(v)), p));
            }
        }
        let mut out = Dist::empty();
        for (class, pairs) in classes.iter().enumerate() {
            if pairs.is_empty() {
                continue;
            }
            let mut d = Dist::from_pairs(pairs.iter().copied())?;
            if class & 1 != 0 {
                d = d.convolve(&chain, &mut self.budget)?;
            }
            if class & 2 != 0 {
                d = d.convolve(&implosion, &mut self.budget)?;
            }
            if class & 4 != 0 {
                d = d.convolve(&added, &mut self.budget)?;
            }
            out.add_scaled(&d, 1.0, &mut self.budget)?;
        }
        Ok(out.trim_zeros())
    }
}

/// Splits a face distribution into the faces that end a chain and those
/// that continue it, each mapped to its weight.
fn split_faces(
    faces: &Dist,
    continues: impl Fn(i64) -> bool,
    weight: impl Fn(i64) -> i64,
) -> Result<(Dist, Dist), GiveUp> {
    let pairs: Vec<(i64, f64, bool)> = faces
        .iter()
        .map(|(f, p)| (weight(f), p, continues(f)))
        .collect();
    let part = |want: bool| {
        Dist::from_pairs(
            pairs
                .iter()
                .filter(move |x| x.2 == want)
                .map(|&(v, p, _)| (v, p)),
        )
    };
    Ok((part(false)?, part(true)?))
}

/// Weight sum of a chain of extra dice, at most `levels` long: each die adds
/// its weight and, if it continues the chain and the cap allows, the rest of
/// the chain. `C(1) = stop + again`, `C(k) = stop + again * C(k - 1)`.
fn chain_levels(
    stop: &Dist,
    again: &Dist,
    levels: u32,
    budget: &mut Budget,
) -> Result<Dist, GiveUp> {
    let mut c = Dist::empty();
    for level in 1..=levels {
        let mut next = stop.clone();
        let tail = if level == 1 {
            again.clone()
        } else {
            again.convolve(&c, budget)?
        };
        next.add_scaled(&tail, 1.0, budget)?;
        let next = next.trim_tails();
        // Once a level adds nothing representable, later levels cannot either.
        let converged = next == c;
        c = next;
        if again.p.is_empty() || converged {
            break;
        }
    }
    Ok(c)
}

fn bernoulli(p: f64) -> Dist {
    Dist::dense(0, vec![1.0 - p, p])
}

fn clamp_count(k: u64, n: i64) -> i64 {
    i64::try_from(k).unwrap_or(i64::MAX).min(n)
}

fn clamp_value(v: i64, mods: &Mods) -> i64 {
    let mut v = v;
    if let Some(m) = mods.min
        && v < m
    {
        v = m;
    }
    if let Some(m) = mods.max
        && v > m
    {
        v = m;
    }
    v
}

fn uniform(faces: Faces) -> Result<Dist, GiveUp> {
    let len = size_ok(faces.max.abs_diff(faces.min).saturating_add(1))?;
    #[allow(clippy::cast_precision_loss)]
    let q = 1.0 / len as f64;
    Ok(Dist {
        min: faces.min,
        p: vec![q; len],
        support: Some((faces.min, faces.max)),
    })
}

/// What a kept die adds to the pool's value: its value, or its success score
/// minus a failure when the pool counts successes.
struct Weight<'a> {
    counting: &'a Counting,
    faces: Faces,
}

impl<'a> Weight<'a> {
    fn new(counting: &'a Counting, faces: Faces) -> Self {
        Weight { counting, faces }
    }

    fn of(&self, v: i64) -> i64 {
        if !self.counting.counts() {
            return v;
        }
        let any = |conds: &[Cond]| conds.iter().any(|c| c.matches(v, self.faces));
        let score = if any(&self.counting.double) {
            2
        } else {
            i64::from(any(&self.counting.success))
        };
        score - i64::from(any(&self.counting.failure))
    }
}

/// Face distribution of an initial die after rerolls (`r`, `rr`, `ir`, ...),
/// following the roller: indefinite rerolls repeat, a once-reroll is used at
/// most once, and a die stops after [`MAX_REROLLS_PER_DIE`] rerolls.
fn reroll_faces(mods: &Mods, faces: Faces, budget: &mut Budget) -> Result<Dist, GiveUp> {
    let u = uniform(faces)?;
    let loops: Vec<_> = mods
        .rerolls
        .iter()
        .filter(|r| r.mode != RerollMode::Add)
        .collect();
    if loops.is_empty() {
        return Ok(u);
    }
    let matches = |mode: RerollMode, v: i64| {
        loops
            .iter()
            .any(|r| r.mode == mode && r.cond.matches(v, faces))
    };
    let mut fresh = u.p.clone(); // once-reroll still available
    let mut used = vec![0.0; u.p.len()]; // once-reroll used
    let mut done = vec![0.0; u.p.len()];
    for step in 0..=MAX_REROLLS_PER_DIE {
        budget.spend(as_u64(u.p.len()) * 2)?;
        let (mut to_fresh, mut to_used) = (0.0, 0.0);
        for (i, (a, b)) in fresh.iter().zip(&used).enumerate() {
            let v = faces.min.saturating_add(idx(i));
            let indefinite = matches(RerollMode::Indefinite, v);
            let once = matches(RerollMode::Once, v);
            let slot = done.get_mut(i);
            let stop = step == MAX_REROLLS_PER_DIE;
            let mut keep = 0.0;
            if indefinite && !stop {
                to_fresh += a;
                to_used += b;
            } else if once && !stop {
                to_used += a;
                keep += b;
            } else {
                keep += a + b;
            }
            if let Some(s) = slot {
                *s += keep;
            }
        }
        if to_fresh + to_used == 0.0 {
            break;
        }
        for (f, q) in fresh.iter_mut().zip(&u.p) {
            *f = to_fresh * q;
        }
        for (f, q) in used.iter_mut().zip(&u.p) {
            *f = to_used * q;
        }
    }
    Ok(Dist::dense(faces.min, done).trim_zeros())
}

/// Value distribution of a single die that adds no dice: rerolled face,
/// compounded explosion, then min/max.
fn die_values(
    mods: &Mods,
    faces: Faces,
    rolled: &Dist,
    budget: &mut Budget,
) -> Result<Dist, GiveUp> {
    let mut values = rolled.clone();
    if let Some(ex) = &mods.explode
        && ex.mode == ExplodeMode::Compound
    {
        let u = uniform(faces)?;
        // k: sum of the compounded faces added to an exploding die.
        let (stop, again) = split_faces(&u, |f| ex.matches(f, faces), |f| f)?;
        let k = chain_levels(&stop, &again, MAX_EXPLOSIONS, budget)?;
        let mut out = Dist::empty();
        for (v, p) in rolled.iter() {
            let d = if ex.matches(v, faces) {
                k.shift(v)?
            } else {
                Dist::point(v)
            };
            out.add_scaled(&d, p, budget)?;
        }
        values = out.trim_zeros();
    }
    if mods.min.is_some() || mods.max.is_some() {
        values = values.map(|v| clamp_value(v, mods))?;
    }
    Ok(values)
}

/// Sum of the weights of the `m` highest (`top`) or lowest dice among `n`
/// independent dice with value distribution `values`.
///
/// Values are visited from the most to the least preferred. Given that `r`
/// dice remain and all of them are at most (or at least) the current value
/// `v`, the number showing exactly `v` is binomial with the conditional
/// probability `P(v) / P(remaining values)`; the first `min(k, slots)` of
/// them are kept. States are (dice left, slots left), visited in their order:
/// floating-point sums depend on the order of their terms, so a map visited
/// in hash order would give other last digits on every run.
fn keep_extreme(
    values: &Dist,
    n: i64,
    m: i64,
    top: bool,
    w: &Weight,
    budget: &mut Budget,
) -> Result<Dist, GiveUp> {
    let n = usize::try_from(n).map_err(|_| GiveUp)?;
    let m = usize::try_from(m).map_err(|_| GiveUp)?;
    let mut order: Vec<(i64, f64)> = values.iter().collect();
    if top {
        order.reverse();
    }
    let ln_fact = ln_factorials(n);
    let mut remaining: f64 = order.iter().map(|(_, p)| p).sum();
    let mut states: BTreeMap<(usize, usize), Dist> = BTreeMap::new();
    states.insert((n, m), Dist::point(0));
    let mut done = Dist::empty();
    for (j, (v, pv)) in order.iter().enumerate() {
        let last = j + 1 == order.len();
        let q = if last || remaining <= 0.0 {
            1.0
        } else {
            (pv / remaining).min(1.0)
        };
        remaining -= pv;
        let wv = w.of(*v);
        let mut next: BTreeMap<(usize, usize), Dist> = BTreeMap::new();
        for ((r, c), dist) in states {
            if r == 0 || c == 0 {
                done.add_scaled(&dist, 1.0, budget)?;
                continue;
            }
            // One binomial term per count, each a step even when it is zero.
            budget.spend(as_u64(r + 1))?;
            for k in 0..=r {
                let pk = binomial(&ln_fact, r, k, q);
                if pk == 0.0 {
                    continue;
                }
                let t = k.min(c);
                // The shifted copy is as much work as adding it.
                budget.spend(as_u64(dist.p.len()))?;
                let shifted = dist.shift(wv.checked_mul(idx(t)).ok_or(GiveUp)?)?;
                match next.get_mut(&(r - k, c - t)) {
                    Some(d) => d.add_scaled(&shifted, pk, budget)?,
                    None => {
                        budget.spend(as_u64(shifted.p.len()))?;
                        next.insert((r - k, c - t), shifted.scale(pk));
                    }
                }
            }
        }
        states = next;
    }
    for (_, dist) in states {
        done.add_scaled(&dist, 1.0, budget)?;
    }
    // Any `m` values can be the ones kept (the other dice showing the least
    // preferred value), so the bounds are `m` times the extreme weights,
    // whichever binomial terms underflowed.
    let m = idx(m);
    let weights = || values.iter().map(|(v, _)| w.of(v));
    done.support = match (weights().min(), weights().max()) {
        (Some(lo), Some(hi)) => Some((
            lo.checked_mul(m).ok_or(GiveUp)?,
            hi.checked_mul(m).ok_or(GiveUp)?,
        )),
        _ => None,
    };
    Ok(done.trim_zeros())
}

fn ln_factorials(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    let mut acc = 0.0f64;
    out.push(0.0);
    for i in 1..=n {
        #[allow(clippy::cast_precision_loss)]
        {
            acc += (i as f64).ln();
        }
        out.push(acc);
    }
    out
}

fn binomial(ln_fact: &[f64], r: usize, k: usize, q: f64) -> f64 {
    if q >= 1.0 {
        return if k == r { 1.0 } else { 0.0 };
    }
    if q <= 0.0 {
        return if k == 0 { 1.0 } else { 0.0 };
    }
    let lf = |i: usize| ln_fact.get(i).copied().unwrap_or(0.0);
    #[allow(clippy::cast_precision_loss)]
    let ln = lf(r) - lf(k) - lf(r - k) + k as f64 * q.ln() + (r - k) as f64 * (1.0 - q).ln();
    ln.exp()
}

// ---- statistics and simulation ---------------------------------------------------

struct Stats {
    mean: f64,
    std_dev: f64,
    min: Num,
    max: Num,
    percentiles: Percentiles,
}

fn stats_of(d: &Dist) -> Stats {
    let total = d.total();
    let norm = if total > 0.0 { total } else { 1.0 };
    #[allow(clippy::cast_precision_loss)]
    let mean = d.iter().map(|(v, p)| v as f64 * p).sum::<f64>() / norm;
    #[allow(clippy::cast_precision_loss)]
    let var = d
        .iter()
        .map(|(v, p)| {
            let x = v as f64 - mean;
            x * x * p
        })
        .sum::<f64>()
        / norm;
    let pct = |q: f64| {
        let mut acc = 0.0;
        for (v, p) in d.iter() {
            acc += p / norm;
            if acc >= q - 1e-12 {
                return Num::Int(v);
            }
        }
        Num::Int(d.max())
    };
    let (min, max) = d.support.unwrap_or((d.min, d.min));
    Stats {
        mean,
        std_dev: var.max(0.0).sqrt(),
        min: Num::Int(min),
        max: Num::Int(max),
        percentiles: Percentiles {
            p5: pct(0.05),
            p25: pct(0.25),
            p50: pct(0.5),
            p75: pct(0.75),
            p95: pct(0.95),
        },
    }
}

fn sample_stats(samples: &mut [f64], integral: bool) -> Stats {
    samples.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let n = samples.len().max(1) as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let as_num = |x: f64| {
        if integral {
            Num::Int(float_to_i64(x))
        } else {
            Num::Dec(x)
        }
    };
    let pct = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q * samples.len() as f64).ceil() as usize).max(1) - 1;
        as_num(samples.get(rank).copied().unwrap_or(0.0))
    };
    Stats {
        mean,
        std_dev: var.max(0.0).sqrt(),
        min: as_num(samples.first().copied().unwrap_or(0.0)),
        max: as_num(samples.last().copied().unwrap_or(0.0)),
        percentiles: Percentiles {
            p5: pct(0.05),
            p25: pct(0.25),
            p50: pct(0.5),
            p75: pct(0.75),
            p95: pct(0.95),
        },
    }
}

#[allow(clippy::cast_possible_truncation)]
fn float_to_i64(x: f64) -> i64 {
    x as i64
}

/// Which part of the expression the statistics describe, and which part is
/// the check.
enum Shape<'e> {
    Plain(&'e Expr),
    /// Comparison: statistics of the left side, chance of passing.
    Compare(&'e Expr),
    /// `check then effect`: statistics of the whole, chance of the check.
    Then(&'e Expr, &'e Expr),
}

fn unwrap_paren(e: &Expr) -> &Expr {
    match &e.kind {
        ExprKind::Paren(inner) if e.annotations.is_empty() => unwrap_paren(inner),
        _ => e,
    }
}

fn shape(expr: &Expr) -> Shape<'_> {
    let e = unwrap_paren(expr);
    match &e.kind {
        ExprKind::Compare(..) => Shape::Compare(e),
        ExprKind::Then(_, c, _) => Shape::Then(e, c),
        _ => Shape::Plain(e),
    }
}

fn counts_successes(e: &Expr) -> bool {
    match &unwrap_paren(e).kind {
        ExprKind::Dice(d) => d.mods.counting.counts(),
        ExprKind::Set(s) => s.mods.counting.counts(),
        ExprKind::Group(g) => g.mods.counting.counts(),
        _ => false,
    }
}

pub(crate) fn compute(program: &Program) -> Result<Odds, DiceError> {
    let src = program.source();
    let [spec] = program.rolls.as_slice() else {
        let at = program.rolls.get(1).map_or(0, |r| r.span.start);
        return Err(DiceError::new(ErrorKind::OddsOfSeveralRolls, src, at));
    };
    if let Some(at) = first_narrative(&spec.expr) {
        return Err(DiceError::new(
            ErrorKind::OddsUnsupported {
                what: "narrative dice (`gen`)",
            },
            src,
            at,
        ));
    }
    // As rolled: `adv 1d20+5` is labelled `2d20kh1+5`, not `1d20+5`.
    let text = |e: &Expr, check: bool| spec.shown(src, e.span, check);
    let mut notes = Vec::new();
    if spec.repeat > 1 {
        notes.push(format!(
            "odds of one roll; the {} repetitions are independent",
            spec.repeat
        ));
    }
    let shape = shape(&spec.expr);
    let (subject_expr, check_expr) = match shape {
        Shape::Plain(e) => (e, None),
        Shape::Compare(e) => match &e.kind {
            ExprKind::Compare(_, _, l, _) => (l.as_ref(), Some(e)),
            _ => (e, None),
        },
        Shape::Then(e, c) => (e, Some(c)),
    };
    let counting = counts_successes(subject_expr);
    let exploding = has_explosion(&spec.expr);
    for dice in dice_terms(&spec.expr) {
        if let Some(note) = dice.unmeetable_target()
            && !notes.contains(&note)
        {
            notes.push(note);
        }
    }

    let mut engine = Engine {
        src,
        budget: Budget {
            left: EXACT_WORK_BUDGET,
        },
    };
    let exact = exact_parts(&mut engine, &shape, subject_expr)?;
    let (method, stats, check_p, at_least_one, distribution) = match exact {
        Ok((subject, check_p)) => {
            let total = subject.total();
            let subject = if (total - 1.0).abs() > 1e-12 && total > 0.0 {
                subject.scale(1.0 / total)
            } else {
                subject
            };
            // Explosion chains run to the roller's cap; outcomes that far out
            // are too unlikely to report as the maximum.
            let subject = if exploding {
                subject.trim_tails()
            } else {
                subject
            };
            let distribution = if subject.iter().count() <= LISTED_OUTCOMES {
                subject
                    .iter()
                    .map(|(value, probability)| Chance { value, probability })
                    .collect()
            } else {
                Vec::new()
            };
            let at_least_one = counting.then(|| subject.prob(|v| v >= 1));
            if let Some(note) = underflow_note(&subject) {
                notes.push(note);
            }
            (
                Method::Exact,
                stats_of(&subject),
                check_p,
                at_least_one,
                distribution,
            )
        }
        Err(GiveUp) => {
            let sim = simulate(program, &spec.expr)?;
            let at_least_one = counting.then_some(sim.at_least_one);
            let mut samples = sim.values;
            let stats = sample_stats(&mut samples, sim.integral);
            (
                Method::Simulated {
                    samples: sim.samples,
                    seed: SIMULATION_SEED,
                },
                stats,
                sim.check,
                at_least_one,
                Vec::new(),
            )
        }
    };
    // Only the exact engine cuts explosion tails; a simulation's max is the
    // largest total it rolled, and says so by its method.
    if exploding && method == Method::Exact {
        notes.push("exploding dice can exceed the max shown, with a chance below 1e-16".to_owned());
    }
    Ok(Odds {
        expression: src.to_owned(),
        subject: text(subject_expr, false),
        method,
        mean: stats.mean,
        std_dev: stats.std_dev,
        min: stats.min,
        max: stats.max,
        percentiles: stats.percentiles,
        check: check_expr.zip(check_p).map(|(e, probability)| CheckOdds {
            description: text(e, true),
            probability,
        }),
        at_least_one_success: at_least_one,
        distribution,
        notes,
    })
}

/// The note for outcomes that can happen but whose chance is too small for
/// an `f64` (below about 1e-308, so surely below [`UNDERFLOW_BELOW`]): min
/// and max count them, the distribution leaves them out.
fn underflow_note(d: &Dist) -> Option<String> {
    let (lo, hi) = d.support?;
    let first = d.iter().next().map(|(v, _)| v);
    let last = d.iter().last().map(|(v, _)| v);
    let below = first.filter(|&v| lo < v);
    let above = last.filter(|&v| v < hi);
    let which = match (below, above) {
        (Some(b), Some(a)) => format!("below {b} and above {a}"),
        (Some(b), None) => format!("below {b}"),
        (None, Some(a)) => format!("above {a}"),
        (None, None) => return None,
    };
    Some(format!(
        "outcomes {which} can happen, each with a chance below {UNDERFLOW_BELOW}"
    ))
}

fn has_explosion(e: &Expr) -> bool {
    dice_terms(e).into_iter().any(|d| {
        d.mods
            .explode
            .as_ref()
            .is_some_and(|x| x.mode != ExplodeMode::Once)
    })
}

/// Every dice term of an expression, those that give another its count or sides
/// included.
fn dice_terms(e: &Expr) -> Vec<&DiceSpec> {
    let mut found = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Dice(d) => {
                found.push(d.as_ref());
                if let Count::Expr(c) = &d.count {
                    stack.push(c);
                }
                if let SidesSpec::Expr(s) = &d.sides {
                    stack.push(s);
                }
            }
            ExprKind::Set(s) => stack.extend(s.items.iter()),
            ExprKind::Group(g) => stack.push(&g.inner),
            ExprKind::Paren(x) | ExprKind::Unary(_, x) | ExprKind::Call(_, x) => stack.push(x),
            ExprKind::Binary(_, _, l, r)
            | ExprKind::Compare(_, _, l, r)
            | ExprKind::Then(_, l, r) => {
                stack.push(l);
                stack.push(r);
            }
            ExprKind::Num(_) => {}
        }
    }
    found
}

/// Exact distribution of the subject and the check probability, or
/// `GiveUp`.
fn exact_parts(engine: &mut Engine, shape: &Shape, subject: &Expr) -> Exact<(Dist, Option<f64>)> {
    match shape {
        Shape::Plain(_) => Ok(engine.dist(subject)?.map(|d| (d, None))),
        Shape::Compare(e) => {
            let ExprKind::Compare(op, _, l, r) = &e.kind else {
                return Ok(Err(GiveUp));
            };
            let (a, b) = match (engine.dist(l)?, engine.dist(r)?) {
                (Ok(a), Ok(b)) => (a, b),
                _ => return Ok(Err(GiveUp)),
            };
            Ok(engine.compare(*op, &a, &b).map(|p| (a, Some(p))))
        }
        Shape::Then(e, c) => {
            let whole = match engine.dist(e)? {
                Ok(d) => d,
                Err(g) => return Ok(Err(g)),
            };
            let cond = match engine.dist(c)? {
                Ok(d) => d,
                Err(g) => return Ok(Err(g)),
            };
            Ok(Ok((whole, Some(cond.chance_positive()))))
        }
    }
}

struct Simulation {
    values: Vec<f64>,
    integral: bool,
    samples: usize,
    check: Option<f64>,
    at_least_one: f64,
}

/// Monte-Carlo over the seeded roller, within [`SIMULATION_DICE_BUDGET`]
/// dice in all.
///
/// The budget is kept three ways: an expression whose literal dice already
/// make [`SIMULATION_MIN_SAMPLES`] rolls too many is refused before the first
/// sample; after 200 samples the measured average sets the sample count (or
/// refuses, when even the fewest samples would not fit); and every sample may
/// roll only what is left, so explosions that run long stop the simulation at
/// the budget (refused if that leaves fewer than the fewest samples).
fn simulate(program: &Program, expr: &Expr) -> Result<Simulation, DiceError> {
    let src = program.source();
    let budget = SIMULATION_DICE_BUDGET;
    let over_budget = |dice_per_roll: u64| {
        DiceError::new(
            ErrorKind::OddsOverBudget {
                dice_per_roll,
                samples: SIMULATION_MIN_SAMPLES,
                budget,
            },
            src,
            expr.span.start,
        )
    };
    let fits = |dice_per_roll: u64| {
        dice_per_roll.saturating_mul(as_u64(SIMULATION_MIN_SAMPLES)) <= as_u64(budget)
    };
    let least = crate::cost::dice_per_roll(expr);
    if !fits(least) {
        return Err(over_budget(least));
    }
    let mut rng = Rng::seeded(SIMULATION_SEED);
    let mut ev = Evaluator::new(src, &mut rng);
    let mut values = Vec::new();
    let mut integral = true;
    let mut passes = 0usize;
    let mut has_check = false;
    let mut at_least_one = 0usize;
    let mut dice_used = 0usize;
    let mut target = SIMULATION_MAX_SAMPLES;
    let mut i = 0usize;
    while i < target {
        ev.reset_budget();
        ev.set_limit(budget.saturating_sub(dice_used));
        let node = match ev.eval(expr) {
            Ok(node) => node,
            Err(_) if ev.budget_hit() => break,
            Err(error) => return Err(error),
        };
        dice_used = dice_used.saturating_add(ev.rolls_used());
        let (value, check) = subject_of(&node);
        if let Some(passed) = check {
            has_check = true;
            passes += usize::from(passed);
        }
        if value.as_f64() >= 1.0 {
            at_least_one += 1;
        }
        if matches!(value, Num::Dec(_)) {
            integral = false;
        }
        values.push(value.as_f64());
        i += 1;
        if i == 200 {
            // Expensive expressions get fewer samples.
            let per = (dice_used / 200).max(1);
            if !fits(as_u64(per)) {
                return Err(over_budget(as_u64(per)));
            }
            target = (budget / per).clamp(SIMULATION_MIN_SAMPLES, SIMULATION_MAX_SAMPLES);
            values.reserve(target.saturating_sub(values.len()));
        }
    }
    if i < SIMULATION_MIN_SAMPLES.min(target) {
        let per = dice_used / i.max(1);
        return Err(over_budget(as_u64(
            per.max(budget / SIMULATION_MIN_SAMPLES + 1),
        )));
    }
    #[allow(clippy::cast_precision_loss)]
    let frac = |k: usize| k as f64 / i.max(1) as f64;
    Ok(Simulation {
        values,
        integral,
        samples: i,
        check: has_check.then(|| frac(passes)),
        at_least_one: frac(at_least_one),
    })
}

/// The subject value and check outcome of one simulated roll, matching
/// [`shape`].
fn subject_of(node: &Node) -> (Num, Option<bool>) {
    match node {
        Node::Paren {
            inner, annotations, ..
        } if annotations.is_empty() => subject_of(inner),
        Node::Compare { left, passed, .. } => (left.value(), Some(*passed)),
        Node::Then { passed, value, .. } => (*value, Some(*passed)),
        other => (other.value(), None),
    }
}

// ---- rendering --------------------------------------------------------------------

impl Odds {
    /// Plain text: the chance first (when there is a check), then the
    /// statistics and how they were obtained. A simulation's `min` and `max` are said
    /// as the lowest and highest totals its rolls gave, not as the roll's limits.
    pub fn render_plain(&self) -> String {
        self.render(false)
    }

    /// Discord Markdown version of [`Odds::render_plain`].
    pub fn render_markdown(&self) -> String {
        self.render(true)
    }

    fn render(&self, md: bool) -> String {
        let mut out = String::new();
        let t = |out: &mut String, s: &str| {
            if md {
                out.push('`');
                out.push_str(s);
                out.push('`');
            } else {
                out.push_str(s);
            }
        };
        let name = |out: &mut String, s: &str| {
            if md {
                out.push_str("**");
                escape_into(out, s);
                out.push_str("**");
            } else {
                out.push_str(s);
            }
        };
        if let Some(c) = &self.check {
            name(&mut out, &c.description);
            out.push_str(": ");
            t(&mut out, &format!("{:.2}%", c.probability * 100.0));
            out.push('\n');
        }
        if let Some(p) = self.at_least_one_success {
            out.push_str("at least one success: ");
            t(&mut out, &format!("{:.2}%", p * 100.0));
            out.push('\n');
        }
        name(&mut out, &self.subject);
        out.push_str(": mean ");
        t(&mut out, &format!("{:.2}", self.mean));
        out.push_str(", sd ");
        t(&mut out, &format!("{:.2}", self.std_dev));
        match &self.method {
            // A simulation's extremes are the totals its rolls happened to give, not
            // the limits of the roll.
            Method::Simulated { samples, .. } => {
                out.push_str(", lowest ");
                t(&mut out, &self.min.to_string());
                out.push_str(" and highest ");
                t(&mut out, &self.max.to_string());
                let _ = write!(out, " seen in {samples} simulated rolls");
            }
            Method::Exact => {
                out.push_str(", min ");
                t(&mut out, &self.min.to_string());
                out.push_str(", max ");
                t(&mut out, &self.max.to_string());
            }
        }
        out.push('\n');
        let p = &self.percentiles;
        for (i, (label, v)) in [
            ("p5", p.p5),
            ("p25", p.p25),
            ("p50", p.p50),
            ("p75", p.p75),
            ("p95", p.p95),
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(label);
            out.push(' ');
            t(&mut out, &v.to_string());
        }
        out.push('\n');
        if md {
            out.push_str("-# ");
        }
        match &self.method {
            Method::Exact => out.push_str("exact"),
            Method::Simulated { samples, seed } => {
                let _ = write!(out, "simulated: {samples} rolls, seed {seed:#x}");
            }
        }
        for note in &self.notes {
            out.push_str(if md { "\n-# " } else { "\n" });
            out.push_str(note);
        }
        out
    }
}

/// Where the first narrative dice pool is, if any: the odds refuse them.
fn first_narrative(expr: &Expr) -> Option<usize> {
    match &expr.kind {
        ExprKind::Num(_) => None,
        ExprKind::Dice(spec) => {
            if matches!(spec.system, Some(crate::ast::System::Narrative(_))) {
                return Some(expr.span.start);
            }
            let count = match &spec.count {
                crate::ast::Count::Expr(e) => first_narrative(e),
                crate::ast::Count::Lit(_) => None,
            };
            count.or_else(|| match &spec.sides {
                crate::ast::SidesSpec::Expr(e) => first_narrative(e),
                _ => None,
            })
        }
        ExprKind::Set(set) => set.items.iter().find_map(first_narrative),
        ExprKind::Group(group) => first_narrative(&group.inner),
        ExprKind::Paren(inner) | ExprKind::Unary(_, inner) | ExprKind::Call(_, inner) => {
            first_narrative(inner)
        }
        ExprKind::Binary(_, _, l, r) | ExprKind::Compare(_, _, l, r) | ExprKind::Then(_, l, r) => {
            first_narrative(l).or_else(|| first_narrative(r))
        }
    }
}
