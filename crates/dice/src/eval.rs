//! Evaluation: rolls the dice of a parsed expression and builds the result
//! tree.
//!
//! A dice pool goes through fixed stages, whatever order the modifiers were
//! written in: roll -> rerolls -> reroll-and-add -> explosions -> implosion
//! -> min/max -> keep/drop -> success counting -> sort (display only). The
//! odds engine in `odds.rs` follows exactly the same stages.

use crate::ast::System;
use crate::ast::{
    BinaryOp, Cond, Count, Counting, DiceSpec, Explode, ExplodeMode, Expr, ExprKind, Faces, Func,
    GroupSpec, Reroll, RerollMode, SelectStep, Selector, SetSpec, SidesSpec, SortOrder, UnaryOp,
};
use crate::error::{DiceError, ErrorKind};
use crate::limits::{MAX_DICE, MAX_EXPLOSIONS, MAX_REROLLS_PER_DIE, MAX_ROLLS, MAX_SIDES};
use crate::num::{Num, NumError};
use crate::outcome::{
    DiceRoll, Die, DieOrigin, ExprResult, GroupRoll, Node, SetItem, SetRoll, Symbols, Tally,
};
use crate::rng::Rng;
use crate::systems;
use std::sync::Arc;

type EResult<T> = Result<T, DiceError>;

const NOTE_EXPLOSION_CAP: &str = "explosions stopped at the cap of 100 per die";
const NOTE_REROLL_CAP: &str = "rerolls stopped at the cap of 100 per die";

/// How a decimal literal was written (`2.0`, `.50`). It is shown as written:
/// the short form of its value (`2`) would read as an integer, and `7 / 2 =
/// 3.5` would contradict the integer rule `7/2 = 3`.
pub(crate) fn written_decimal<'s>(src: &'s str, expr: &Expr) -> Option<&'s str> {
    if !matches!(expr.kind, ExprKind::Num(Num::Dec(_))) {
        return None;
    }
    let text = src.get(expr.span.start..expr.span.end)?;
    let len = text
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    text.get(..len).filter(|t| !t.is_empty())
}

pub(crate) struct Evaluator<'a> {
    src: &'a str,
    rng: &'a mut Rng,
    rolls: usize,
    /// Most dice this evaluation may roll: [`MAX_ROLLS`], or less when a
    /// caller's budget has less left (the odds simulation).
    limit: usize,
    /// The last evaluation stopped at `limit` where [`MAX_ROLLS`] would have
    /// let it go on.
    budget_hit: bool,
    pub(crate) notes: Vec<String>,
    /// Symbols of the narrative dice rolled in the current result.
    pub(crate) symbols: Option<Symbols>,
    /// The `ul` flag: pools are shown in roll order even when they ask to
    /// be sorted.
    pub(crate) unsorted: bool,
}

impl<'a> Evaluator<'a> {
    /// The input being evaluated (spans are into it).
    pub fn src(&self) -> &'a str {
        self.src
    }

    pub fn new(src: &'a str, rng: &'a mut Rng) -> Self {
        Evaluator {
            src,
            rng,
            rolls: 0,
            limit: MAX_ROLLS,
            budget_hit: false,
            notes: Vec::new(),
            symbols: None,
            unsorted: false,
        }
    }

    /// Forgets the notes and symbols of the previous result.
    pub(crate) fn start_result(&mut self) {
        self.notes.clear();
        self.symbols = None;
    }

    /// Adds the netted reading of the narrative dice, once all of a
    /// result's dice are rolled.
    pub(crate) fn finish_notes(&mut self) {
        if let Some(s) = &self.symbols {
            let text = systems::narrative_note(s);
            self.notes.push(text);
        }
    }

    /// Lets the next evaluations roll at most `limit` dice (never more than
    /// [`MAX_ROLLS`]); going over is the usual [`ErrorKind::TooManyRolls`],
    /// and [`Evaluator::budget_hit`] tells the caller it was its own limit.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_ROLLS);
    }

    /// Whether the last error was the caller's limit rather than [`MAX_ROLLS`].
    pub fn budget_hit(&self) -> bool {
        self.budget_hit
    }

    /// Refuses `more` dice past the limit.
    fn charge(&mut self, more: usize, at: usize) -> EResult<()> {
        let after = self.rolls.saturating_add(more);
        if after > self.limit {
            self.budget_hit = after <= MAX_ROLLS;
            return Err(self.error(ErrorKind::TooManyRolls { max: MAX_ROLLS }, at));
        }
        Ok(())
    }

    /// Dice rolled so far, including rerolls and explosions.
    pub fn rolls_used(&self) -> usize {
        self.rolls
    }

    /// Starts a fresh roll budget (the odds simulation evaluates the same
    /// expression many times; the limit is per evaluation).
    pub fn reset_budget(&mut self) {
        self.rolls = 0;
        self.budget_hit = false;
        self.start_result();
    }

    pub fn eval_result(&mut self, expr: &Expr) -> EResult<ExprResult> {
        self.start_result();
        let tree = self.eval(expr)?;
        self.finish_notes();
        let mut result = finish(tree, std::mem::take(&mut self.notes));
        result.narrative = self.symbols.take();
        if result.check.is_none() {
            result.check = result.narrative.and_then(|s| s.passed());
        }
        Ok(result)
    }

    pub(crate) fn error(&self, kind: ErrorKind, at: usize) -> DiceError {
        DiceError::new(kind, self.src, at)
    }

    pub(crate) fn num_error(&self, e: NumError, at: usize) -> DiceError {
        self.error(num_error_kind(e), at)
    }

    fn note(&mut self, text: &str) {
        if !self.notes.iter().any(|n| n == text) {
            self.notes.push(text.to_owned());
        }
    }

    fn roll_face(&mut self, faces: Faces, at: usize) -> EResult<i64> {
        self.charge(1, at)?;
        self.rolls += 1;
        Ok(if faces.fate {
            #[allow(clippy::cast_possible_wrap)]
            let v = self.rng.below(3) as i64;
            v - 1
        } else {
            self.rng.range_inclusive(1, faces.max)
        })
    }

    /// A whole number for a dice count or side count.
    fn whole(&self, value: Num, what: &'static str, at: usize) -> EResult<i64> {
        value
            .as_int()
            .ok_or_else(|| self.error(ErrorKind::NotWhole { what }, at))
    }

    pub fn eval(&mut self, expr: &Expr) -> EResult<Node> {
        match &expr.kind {
            ExprKind::Num(n) => Ok(Node::Number {
                value: *n,
                written: written_decimal(self.src, expr).map(Arc::from),
                annotations: expr.annotations.clone(),
            }),
            ExprKind::Dice(spec) => Ok(Node::Dice(Box::new(self.roll_pool(spec, expr)?))),
            ExprKind::Set(set) => self.eval_set(set, expr),
            ExprKind::Group(g) => self.eval_group(g, expr),
            ExprKind::Paren(inner) => {
                let node = self.eval(inner)?;
                Ok(Node::Paren {
                    value: node.value(),
                    inner: Box::new(node),
                    annotations: expr.annotations.clone(),
                })
            }
            ExprKind::Unary(op, operand) => {
                let node = self.eval(operand)?;
                let value = apply_unary(*op, node.value())
                    .map_err(|e| self.num_error(e, expr.span.start))?;
                Ok(Node::Unary {
                    op: *op,
                    operand: Box::new(node),
                    value,
                })
            }
            ExprKind::Binary(op, at, l, r) => {
                let left = self.eval(l)?;
                let right = self.eval(r)?;
                let value = apply_binary(*op, left.value(), right.value())
                    .map_err(|e| self.num_error(e, *at))?;
                Ok(Node::Binary {
                    op: *op,
                    left: Box::new(left),
                    right: Box::new(right),
                    value,
                })
            }
            ExprKind::Compare(op, _, l, r) => {
                let left = self.eval(l)?;
                let right = self.eval(r)?;
                let passed = op.holds(left.value().compare(right.value()));
                Ok(Node::Compare {
                    op: *op,
                    left: Box::new(left),
                    right: Box::new(right),
                    passed,
                    value: Num::Int(i64::from(passed)),
                })
            }
            ExprKind::Then(_, c, e) => {
                let condition = self.eval(c)?;
                let passed = condition.value().is_positive();
                let (effect, value) = if passed {
                    let node = self.eval(e)?;
                    let v = node.value();
                    (Some(Box::new(node)), v)
                } else {
                    (None, Num::Int(0))
                };
                Ok(Node::Then {
                    condition: Box::new(condition),
                    passed,
                    effect,
                    value,
                })
            }
            ExprKind::Call(func, arg) => {
                let node = self.eval(arg)?;
                let value = apply_func(*func, node.value())
                    .map_err(|e| self.num_error(e, expr.span.start))?;
                Ok(Node::Call {
                    func: *func,
                    arg: Box::new(node),
                    value,
                    annotations: expr.annotations.clone(),
                })
            }
        }
    }

    /// Rolls one dice term through every stage.
    pub(crate) fn roll_pool(&mut self, spec: &DiceSpec, expr: &Expr) -> EResult<DiceRoll> {
        let at = expr.span.start;
        let (count, count_roll) = match &spec.count {
            Count::Lit(n) => (*n, None),
            Count::Expr(e) => {
                let node = self.eval(e)?;
                let n = self.whole(node.value(), "the number of dice", e.span.start)?;
                (n, Some(Box::new(node)))
            }
        };
        if count < 0 {
            return Err(self.error(ErrorKind::NegativeDiceCount { count }, at));
        }
        if count > MAX_DICE {
            return Err(self.error(
                ErrorKind::TooManyDice {
                    count,
                    max: MAX_DICE,
                },
                at,
            ));
        }
        let (faces, sides_roll) = match &spec.sides {
            SidesSpec::Lit(s) => (numbered(*s), None),
            SidesSpec::Fate => (FATE, None),
            SidesSpec::Expr(e) => {
                let node = self.eval(e)?;
                let s = self.whole(node.value(), "the number of sides", e.span.start)?;
                if s < 1 {
                    return Err(self.error(ErrorKind::ZeroSides, e.span.start));
                }
                if s > MAX_SIDES {
                    return Err(self.error(
                        ErrorKind::TooManySides {
                            sides: s,
                            max: MAX_SIDES,
                        },
                        e.span.start,
                    ));
                }
                (numbered(s), Some(Box::new(node)))
            }
        };
        let n = usize::try_from(count).unwrap_or(0);
        self.charge(n, at)?;
        let mut dice = Vec::with_capacity(n);
        for _ in 0..n {
            let face = self.roll_face(faces, at)?;
            dice.push(Die::rolled(face));
        }
        let mods = &spec.mods;
        if !mods.rerolls.is_empty() {
            self.apply_rerolls(&mut dice, &mods.rerolls, faces, at)?;
        }
        if let Some(ex) = &mods.explode {
            dice = self.apply_explode(dice, ex, faces, at)?;
        }
        if !mods.implode.is_empty() {
            dice = self.apply_implode(dice, &mods.implode, faces, at)?;
        }
        if mods.min.is_some() || mods.max.is_some() {
            clamp(&mut dice, mods.min, mods.max);
        }
        if !mods.select.is_empty() {
            select(
                &mods.select,
                &mut DicePool {
                    dice: &mut dice,
                    faces,
                },
            );
        }
        if let Some(note) = spec.unmeetable_target() {
            self.note(&note);
        }
        let tally = mods
            .counting
            .any()
            .then(|| count_dice(&mods.counting, dice.iter_mut().map(|d| (d, faces))));
        match mods.sort {
            _ if self.unsorted => {}
            Some(SortOrder::Ascending) => dice.sort_by_key(|d| d.value),
            Some(SortOrder::Descending) => dice.sort_by_key(|d| std::cmp::Reverse(d.value)),
            None => {}
        }
        let mut symbols = None;
        let mut stunt_points = None;
        let narrative = match spec.system {
            Some(System::Narrative(kind)) => Some(kind),
            _ => None,
        };
        if let Some(kind) = narrative {
            let mut all = Symbols::default();
            for die in &mut dice {
                let s = systems::face_symbols(kind, die.face);
                die.value = s.net_successes();
                all.add(s);
            }
            self.symbols.get_or_insert_with(Symbols::default).add(all);
            symbols = Some(all);
        } else if !faces.fate {
            for die in &mut dice {
                die.critical = die.face == faces.max;
                die.fumble = die.face == 1 && !die.critical;
            }
        }
        match spec.system {
            Some(System::Cypher) => {
                if let Some(text) = dice.first().and_then(|d| systems::cypher_note(d.face)) {
                    self.note(text);
                }
            }
            Some(System::Age) => {
                let faces: Vec<i64> = dice.iter().map(|d| d.face).collect();
                stunt_points = systems::age_stunt_points(&faces);
                if let (Some(points), Some(drama)) = (stunt_points, faces.last()) {
                    self.note(&format!(
                        "doubles: {points} stunt points (drama die {drama})"
                    ));
                } else if let Some(drama) = faces.last() {
                    self.note(&format!("drama die {drama}, no doubles"));
                }
            }
            _ => {}
        }
        if spec.wrath
            && let Some(first) = dice.first()
        {
            let text = match first.face {
                6 => "Wrath die: 6 (critical)".to_owned(),
                1 => "Wrath die: 1 (complication)".to_owned(),
                f => format!("Wrath die: {f}"),
            };
            self.note(&text);
        }
        let value = match tally {
            Some(t) if mods.counting.counts() => t.net(),
            _ => sum_kept(&dice),
        };
        Ok(DiceRoll {
            notation: spec.notation.clone(),
            count,
            sides: faces.max,
            fate: faces.fate,
            dice,
            value: Num::Int(value),
            tally,
            annotations: expr.annotations.clone(),
            count_roll,
            sides_roll,
            narrative,
            symbols,
            stunt_points,
            counts: mods.counting.counts(),
        })
    }

    fn apply_rerolls(
        &mut self,
        dice: &mut Vec<Die>,
        rerolls: &[Reroll],
        faces: Faces,
        at: usize,
    ) -> EResult<()> {
        let matches = |mode: RerollMode, v: i64| {
            rerolls
                .iter()
                .any(|r| r.mode == mode && r.cond.matches(v, faces))
        };
        if rerolls.iter().any(|r| r.mode != RerollMode::Add) {
            for die in dice.iter_mut() {
                let mut once_used = false;
                let mut n = 0;
                loop {
                    let v = die.face;
                    let indefinite = matches(RerollMode::Indefinite, v);
                    let once = !once_used && matches(RerollMode::Once, v);
                    if !indefinite && !once {
                        break;
                    }
                    if n >= MAX_REROLLS_PER_DIE {
                        die.capped = true;
                        self.note(NOTE_REROLL_CAP);
                        break;
                    }
                    if !indefinite {
                        once_used = true;
                    }
                    let f = self.roll_face(faces, at)?;
                    die.rerolled_from.push(v);
                    die.face = f;
                    die.value = f;
                    n += 1;
                }
            }
        }
        if rerolls.iter().any(|r| r.mode == RerollMode::Add) {
            let mut out = Vec::with_capacity(dice.len().saturating_mul(2));
            for die in dice.drain(..) {
                let add = matches(RerollMode::Add, die.face);
                out.push(die);
                if add {
                    let mut extra = Die::rolled(self.roll_face(faces, at)?);
                    extra.origin = Some(DieOrigin::RerollAdd);
                    out.push(extra);
                }
            }
            *dice = out;
        }
        Ok(())
    }

    fn apply_explode(
        &mut self,
        dice: Vec<Die>,
        ex: &Explode,
        faces: Faces,
        at: usize,
    ) -> EResult<Vec<Die>> {
        let mut out = Vec::with_capacity(dice.len() + dice.len() / 2 + 1);
        for mut die in dice {
            if !ex.matches(die.face, faces) {
                out.push(die);
                continue;
            }
            die.exploded = true;
            match ex.mode {
                ExplodeMode::Compound => {
                    let mut n = 0;
                    loop {
                        if n >= MAX_EXPLOSIONS {
                            die.capped = true;
                            self.note(NOTE_EXPLOSION_CAP);
                            break;
                        }
                        let f = self.roll_face(faces, at)?;
                        n += 1;
                        die.compounded.push(f);
                        die.value = die.value.saturating_add(f);
                        if !ex.matches(f, faces) {
                            break;
                        }
                    }
                    out.push(die);
                }
                ExplodeMode::Once => {
                    out.push(die);
                    let mut extra = Die::rolled(self.roll_face(faces, at)?);
                    extra.origin = Some(DieOrigin::Explosion);
                    out.push(extra);
                }
                ExplodeMode::Chain | ExplodeMode::Penetrate => {
                    out.push(die);
                    let mut n = 0;
                    loop {
                        if n >= MAX_EXPLOSIONS {
                            if let Some(last) = out.last_mut() {
                                last.capped = true;
                            }
                            self.note(NOTE_EXPLOSION_CAP);
                            break;
                        }
                        let f = self.roll_face(faces, at)?;
                        n += 1;
                        let mut extra = Die::rolled(f);
                        extra.origin = Some(DieOrigin::Explosion);
                        if ex.mode == ExplodeMode::Penetrate {
                            extra.value = f - 1;
                        }
                        let again = ex.matches(f, faces);
                        extra.exploded = again;
                        out.push(extra);
                        if !again {
                            break;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn apply_implode(
        &mut self,
        dice: Vec<Die>,
        conds: &[Cond],
        faces: Faces,
        at: usize,
    ) -> EResult<Vec<Die>> {
        let mut out = Vec::with_capacity(dice.len() + 1);
        for die in dice {
            let implodes = die.origin.is_none() && conds.iter().any(|c| c.matches(die.face, faces));
            out.push(die);
            if implodes {
                let f = self.roll_face(faces, at)?;
                let mut extra = Die::rolled(f);
                extra.value = -f;
                extra.origin = Some(DieOrigin::Implosion);
                out.push(extra);
            }
        }
        Ok(out)
    }

    fn eval_set(&mut self, set: &SetSpec, expr: &Expr) -> EResult<Node> {
        let mut items = Vec::with_capacity(set.items.len());
        for e in &set.items {
            items.push(SetItem {
                node: self.eval(e)?,
                dropped: false,
                success: false,
            });
        }
        if !set.mods.select.is_empty() {
            select(&set.mods.select, &mut SetPool { items: &mut items });
        }
        let counting = &set.mods.counting;
        let mut tally = None;
        let value = if counting.any() {
            let mut t = Tally::default();
            for item in items.iter_mut().filter(|i| !i.dropped) {
                let v = item.node.value();
                let any = |conds: &[Cond]| conds.iter().any(|c| c.matches_num(v));
                let score = if any(&counting.double) {
                    2
                } else {
                    i64::from(any(&counting.success))
                };
                item.success = score > 0;
                t.successes += score;
                t.failures += i64::from(any(&counting.failure));
                t.botches += i64::from(any(&counting.botch));
            }
            tally = Some(t);
            if counting.counts() {
                Num::Int(t.net())
            } else {
                sum_items(&items).map_err(|e| self.num_error(e, expr.span.start))?
            }
        } else {
            sum_items(&items).map_err(|e| self.num_error(e, expr.span.start))?
        };
        Ok(Node::Set(Box::new(SetRoll {
            items,
            brace: set.brace,
            suffix: set.suffix.clone(),
            value,
            tally,
            annotations: expr.annotations.clone(),
        })))
    }

    fn eval_group(&mut self, g: &GroupSpec, expr: &Expr) -> EResult<Node> {
        let mut inner = self.eval(&g.inner)?;
        let mods = &g.mods;
        let mut tally = None;
        let value = if mods.select.is_empty() && !mods.counting.any() {
            inner.value()
        } else {
            {
                let mut refs: Vec<(&mut Die, Faces)> = Vec::new();
                collect_dice(&mut inner, &mut refs);
                if !mods.select.is_empty() {
                    select(&mods.select, &mut GroupPool { dice: &mut refs });
                }
                if mods.counting.any() {
                    tally = Some(count_dice(&mods.counting, refs.into_iter()));
                }
            }
            recompute(&mut inner).map_err(|e| self.num_error(e, expr.span.start))?;
            match tally {
                Some(t) if mods.counting.counts() => Num::Int(t.net()),
                _ => inner.value(),
            }
        };
        Ok(Node::Group(Box::new(GroupRoll {
            inner,
            suffix: g.suffix.clone(),
            value,
            tally,
            annotations: expr.annotations.clone(),
        })))
    }
}

pub(crate) const FATE: Faces = Faces {
    min: -1,
    max: 1,
    fate: true,
};

pub(crate) fn numbered(sides: i64) -> Faces {
    Faces {
        min: 1,
        max: sides,
        fate: false,
    }
}

pub(crate) fn num_error_kind(e: NumError) -> ErrorKind {
    match e {
        NumError::Overflow => ErrorKind::Overflow,
        NumError::DivisionByZero => ErrorKind::DivisionByZero,
        NumError::NotReal => ErrorKind::NotReal,
    }
}

pub(crate) fn apply_binary(op: BinaryOp, a: Num, b: Num) -> Result<Num, NumError> {
    match op {
        BinaryOp::Add => a.add(b),
        BinaryOp::Sub => a.sub(b),
        BinaryOp::Mul => a.mul(b),
        BinaryOp::Div => a.div(b),
        BinaryOp::FloorDiv => a.floor_div(b),
        BinaryOp::Rem => a.rem(b),
        BinaryOp::Pow => a.pow(b),
    }
}

pub(crate) fn apply_unary(op: UnaryOp, a: Num) -> Result<Num, NumError> {
    match op {
        UnaryOp::Neg => a.neg(),
        UnaryOp::Pos => Ok(a),
    }
}

pub(crate) fn apply_func(func: Func, a: Num) -> Result<Num, NumError> {
    match func {
        Func::Floor => a.floor(),
        Func::Ceil => a.ceil(),
        Func::Round => a.round(),
        Func::Abs => a.abs(),
    }
}

fn clamp(dice: &mut [Die], min: Option<i64>, max: Option<i64>) {
    for die in dice
        .iter_mut()
        .filter(|d| d.origin != Some(DieOrigin::Implosion))
    {
        let mut v = die.value;
        if let Some(m) = min
            && v < m
        {
            v = m;
        }
        if let Some(m) = max
            && v > m
        {
            v = m;
        }
        if v != die.value {
            die.clamped_from = Some(die.value);
            die.value = v;
        }
    }
}

fn sum_kept(dice: &[Die]) -> i64 {
    dice.iter()
        .filter(|d| !d.dropped)
        .fold(0i64, |acc, d| acc.saturating_add(d.value))
}

fn sum_items(items: &[SetItem]) -> Result<Num, NumError> {
    items
        .iter()
        .filter(|i| !i.dropped)
        .try_fold(Num::Int(0), |acc, i| acc.add(i.node.value()))
}

/// Scores kept dice: 2 for a double success, else 1 for a success; a
/// failure subtracts one (via the tally); botches are only counted.
fn count_dice<'d>(counting: &Counting, dice: impl Iterator<Item = (&'d mut Die, Faces)>) -> Tally {
    let mut t = Tally::default();
    for (die, faces) in dice {
        if die.dropped {
            continue;
        }
        let v = die.value;
        let any = |conds: &[Cond]| conds.iter().any(|c| c.matches(v, faces));
        die.successes = if any(&counting.double) {
            2
        } else {
            i64::from(any(&counting.success))
        };
        die.failure = any(&counting.failure);
        die.botch = any(&counting.botch);
        t.successes += die.successes;
        t.failures += i64::from(die.failure);
        t.botches += i64::from(die.botch);
    }
    t
}

/// Something keep/drop can act on: dice of a pool, elements of a set, or
/// the dice inside a group.
pub(crate) trait Pool {
    fn size(&self) -> usize;
    fn value(&self, i: usize) -> Num;
    fn matches(&self, i: usize, cond: Cond) -> bool;
    fn is_dropped(&self, i: usize) -> bool;
    fn drop_at(&mut self, i: usize);
}

struct DicePool<'a> {
    dice: &'a mut [Die],
    faces: Faces,
}

impl Pool for DicePool<'_> {
    fn size(&self) -> usize {
        self.dice.len()
    }
    fn value(&self, i: usize) -> Num {
        Num::Int(self.dice.get(i).map_or(0, |d| d.value))
    }
    fn matches(&self, i: usize, cond: Cond) -> bool {
        self.dice
            .get(i)
            .is_some_and(|d| cond.matches(d.value, self.faces))
    }
    fn is_dropped(&self, i: usize) -> bool {
        self.dice.get(i).is_none_or(|d| d.dropped)
    }
    fn drop_at(&mut self, i: usize) {
        if let Some(d) = self.dice.get_mut(i) {
            d.dropped = true;
        }
    }
}

struct SetPool<'a> {
    items: &'a mut [SetItem],
}

impl Pool for SetPool<'_> {
    fn size(&self) -> usize {
        self.items.len()
    }
    fn value(&self, i: usize) -> Num {
        self.items.get(i).map_or(Num::Int(0), |x| x.node.value())
    }
    fn matches(&self, i: usize, cond: Cond) -> bool {
        self.items
            .get(i)
            .is_some_and(|x| cond.matches_num(x.node.value()))
    }
    fn is_dropped(&self, i: usize) -> bool {
        self.items.get(i).is_none_or(|x| x.dropped)
    }
    fn drop_at(&mut self, i: usize) {
        if let Some(x) = self.items.get_mut(i) {
            x.dropped = true;
        }
    }
}

struct GroupPool<'a, 'n> {
    dice: &'a mut [(&'n mut Die, Faces)],
}

impl Pool for GroupPool<'_, '_> {
    fn size(&self) -> usize {
        self.dice.len()
    }
    fn value(&self, i: usize) -> Num {
        Num::Int(self.dice.get(i).map_or(0, |(d, _)| d.value))
    }
    fn matches(&self, i: usize, cond: Cond) -> bool {
        self.dice
            .get(i)
            .is_some_and(|(d, f)| cond.matches(d.value, *f))
    }
    fn is_dropped(&self, i: usize) -> bool {
        self.dice.get(i).is_none_or(|(d, _)| d.dropped)
    }
    fn drop_at(&mut self, i: usize) {
        if let Some((d, _)) = self.dice.get_mut(i) {
            d.dropped = true;
        }
    }
}

/// Pools up to this size are selected without touching the heap.
const INLINE_POOL: usize = 64;

/// A scratch buffer on the stack for small pools, on the heap otherwise.
enum Scratch<T: Copy + Default> {
    Inline([T; INLINE_POOL]),
    Heap(Vec<T>),
}

impl<T: Copy + Default> Scratch<T> {
    fn new(len: usize) -> Self {
        if len <= INLINE_POOL {
            Scratch::Inline([T::default(); INLINE_POOL])
        } else {
            Scratch::Heap(vec![T::default(); len])
        }
    }

    fn slice(&mut self, len: usize) -> &mut [T] {
        match self {
            Scratch::Inline(a) => a.get_mut(..len).unwrap_or_default(),
            Scratch::Heap(v) => v.get_mut(..len).unwrap_or_default(),
        }
    }
}

/// Keep/drop: each step selects among the dice still kept; a keep step drops
/// everything it did not select, a drop step drops what it selected. Ties
/// are broken by position: of two equal dice the earlier is selected first,
/// by "highest" and "lowest" alike.
pub(crate) fn select(steps: &[SelectStep], pool: &mut dyn Pool) {
    let len = pool.size();
    let mut kept_buf = Scratch::<usize>::new(len);
    let mut keyed: Vec<(Num, usize)> = Vec::new();
    let mut chosen_buf = Scratch::<bool>::new(len);
    for step in steps {
        let kept_all = kept_buf.slice(len);
        let mut k = 0;
        for i in 0..len {
            if !pool.is_dropped(i)
                && let Some(slot) = kept_all.get_mut(k)
            {
                *slot = i;
                k += 1;
            }
        }
        let kept = kept_all.get(..k).unwrap_or_default();
        let chosen = chosen_buf.slice(len);
        chosen.fill(false);
        for sel in &step.selectors {
            let (n, highest) = match *sel {
                Selector::Match(cond) => {
                    for &i in kept {
                        if pool.matches(i, cond)
                            && let Some(c) = chosen.get_mut(i)
                        {
                            *c = true;
                        }
                    }
                    continue;
                }
                Selector::Highest(n) => (n, true),
                Selector::Lowest(n) | Selector::Middle(n) => (n, false),
            };
            // Each value is read once; (value, position) is a total order, so
            // the selection is deterministic whatever algorithm finds it.
            keyed.clear();
            keyed.extend(kept.iter().map(|&i| (pool.value(i), i)));
            let by = |a: &(Num, usize), b: &(Num, usize)| {
                let by_value = a.0.compare(b.0);
                let by_value = if highest {
                    by_value.reverse()
                } else {
                    by_value
                };
                by_value.then(a.1.cmp(&b.1))
            };
            let n = usize::try_from(n).unwrap_or(usize::MAX).min(k);
            let picked = if matches!(sel, Selector::Middle(_)) {
                keyed.sort_unstable_by(by);
                let skip = (k - n) / 2;
                keyed.get(skip..skip + n).unwrap_or_default()
            } else {
                // Only which `n` come first matters, not their order.
                if n > 0 && n < k {
                    keyed.select_nth_unstable_by(n - 1, by);
                }
                keyed.get(..n).unwrap_or_default()
            };
            for &(_, i) in picked {
                if let Some(c) = chosen.get_mut(i) {
                    *c = true;
                }
            }
        }
        for &i in kept {
            if step.keep != chosen.get(i).copied().unwrap_or(false) {
                pool.drop_at(i);
            }
        }
    }
}

fn dice_faces(d: &DiceRoll) -> Faces {
    if d.fate { FATE } else { numbered(d.sides) }
}

/// Every kept die under `node`, with its faces.
fn collect_dice<'n>(node: &'n mut Node, out: &mut Vec<(&'n mut Die, Faces)>) {
    match node {
        Node::Number { .. } => {}
        Node::Dice(d) => {
            let faces = dice_faces(d);
            out.extend(
                d.dice
                    .iter_mut()
                    .filter(|d| !d.dropped)
                    .map(|die| (die, faces)),
            );
        }
        Node::Set(s) => {
            for item in s.items.iter_mut().filter(|i| !i.dropped) {
                collect_dice(&mut item.node, out);
            }
        }
        Node::Group(g) => collect_dice(&mut g.inner, out),
        Node::Paren { inner, .. } => collect_dice(inner, out),
        Node::Unary { operand, .. } => collect_dice(operand, out),
        Node::Call { arg, .. } => collect_dice(arg, out),
        Node::Binary { left, right, .. } | Node::Compare { left, right, .. } => {
            collect_dice(left, out);
            collect_dice(right, out);
        }
        Node::Then {
            condition, effect, ..
        } => {
            collect_dice(condition, out);
            if let Some(e) = effect {
                collect_dice(e, out);
            }
        }
    }
}

/// Recomputes values bottom-up after a group dropped dice inside its tree.
/// Nothing is rolled again; a `then` keeps its original decision.
fn recompute(node: &mut Node) -> Result<(), NumError> {
    match node {
        Node::Number { .. } => {}
        Node::Dice(d) => {
            let value = match &mut d.tally {
                Some(t) => {
                    let kept = || d.dice.iter().filter(|x| !x.dropped);
                    t.successes = kept().map(|x| x.successes).sum();
                    t.failures = kept().map(|x| i64::from(x.failure)).sum();
                    t.botches = kept().map(|x| i64::from(x.botch)).sum();
                    if d.counts { t.net() } else { sum_kept(&d.dice) }
                }
                None => sum_kept(&d.dice),
            };
            d.value = Num::Int(value);
        }
        Node::Set(s) => {
            for item in &mut s.items {
                recompute(&mut item.node)?;
            }
            if s.tally.is_none() {
                s.value = sum_items(&s.items)?;
            }
        }
        Node::Group(g) => {
            recompute(&mut g.inner)?;
            if g.tally.is_none() {
                g.value = g.inner.value();
            }
        }
        Node::Paren { inner, value, .. } => {
            recompute(inner)?;
            *value = inner.value();
        }
        Node::Unary { op, operand, value } => {
            recompute(operand)?;
            *value = apply_unary(*op, operand.value())?;
        }
        Node::Binary {
            op,
            left,
            right,
            value,
        } => {
            recompute(left)?;
            recompute(right)?;
            *value = apply_binary(*op, left.value(), right.value())?;
        }
        Node::Compare {
            op,
            left,
            right,
            passed,
            value,
        } => {
            recompute(left)?;
            recompute(right)?;
            *passed = op.holds(left.value().compare(right.value()));
            *value = Num::Int(i64::from(*passed));
        }
        Node::Then {
            condition,
            effect,
            value,
            ..
        } => {
            recompute(condition)?;
            if let Some(e) = effect {
                recompute(e)?;
                *value = e.value();
            }
        }
        Node::Call {
            func, arg, value, ..
        } => {
            recompute(arg)?;
            *value = apply_func(*func, arg.value())?;
        }
    }
    Ok(())
}

/// Pass/fail of the expression: its top-level comparison or `then`.
pub(crate) fn root_check(node: &Node) -> Option<bool> {
    match node {
        Node::Compare { passed, .. } | Node::Then { passed, .. } => Some(*passed),
        Node::Paren { inner, .. } => root_check(inner),
        _ => None,
    }
}

/// Success tallies and the leftmost d20, gathered in the tree's walk order
/// (parents first, left to right; computed dice counts are not part of it).
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub tally: Option<Tally>,
    /// `None` until a d20 term is seen; then its natural face, if it has dice.
    pub natural: Option<Option<i64>>,
    /// Without a d20: the natural face and highest face of the first pool
    /// that keeps a single die (`1d6`, `2d8kh1`).
    pub single: Option<(i64, i64)>,
}

impl Scan {
    fn add(&mut self, t: Option<Tally>) {
        if let Some(t) = t {
            self.tally.get_or_insert_with(Tally::default).add(t);
        }
    }

    pub fn dice(&mut self, d: &DiceRoll) {
        if self.single.is_none() && !d.fate && d.narrative.is_none() && d.sides >= 2 {
            let mut kept = d.dice.iter().filter(|x| !x.dropped && x.origin.is_none());
            if let (Some(only), None) = (kept.next(), kept.next()) {
                self.single = Some((only.face, d.sides));
            }
        }
        if self.natural.is_none() && d.sides == 20 && !d.fate && d.narrative.is_none() {
            self.natural = Some(
                d.dice
                    .iter()
                    .find(|x| !x.dropped && x.origin.is_none())
                    .or_else(|| d.dice.first())
                    .map(|x| x.face),
            );
        }
        self.add(d.tally);
    }

    pub fn node(&mut self, node: &Node) {
        node.walk(&mut |n| match n {
            Node::Dice(d) => self.dice(d),
            Node::Set(s) => self.add(s.tally),
            Node::Group(g) => self.add(g.tally),
            _ => {}
        });
    }

    pub fn critical(&self) -> bool {
        match self.natural {
            Some(natural) => natural == Some(20),
            None => self.single.is_some_and(|(face, max)| face == max),
        }
    }

    pub fn fumble(&self) -> bool {
        match self.natural {
            Some(natural) => natural == Some(1),
            None => self.single.is_some_and(|(face, _)| face == 1),
        }
    }

    /// The die [`Scan::critical`] and [`Scan::fumble`] read: its natural face and
    /// its number of sides.
    pub fn deciding(&self) -> Option<(i64, i64)> {
        match self.natural {
            Some(natural) => natural.map(|face| (face, 20)),
            None => self.single,
        }
    }
}

fn finish(tree: Node, notes: Vec<String>) -> ExprResult {
    let mut scan = Scan::default();
    scan.node(&tree);
    ExprResult {
        total: tree.value(),
        check: root_check(&tree),
        tally: scan.tally,
        critical: scan.critical(),
        fumble: scan.fumble(),
        notes,
        narrative: None,
        tree,
    }
}
