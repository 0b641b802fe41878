//! Rolling straight to text, without building the result tree.
//!
//! Bulk callers (the `tavern roll -` command, a bot that only posts the
//! rendered line) want the text and the total, not a tree they will throw
//! away. This path evaluates each expression once, writing the rendering as
//! it goes. It calls the same pool code as [`Program::roll`], in the same
//! order, so for a given seed it consumes the same random numbers and
//! produces byte-for-byte the text of `roll(..).render_plain()` /
//! `render_markdown()`; a property test holds it to that. Sets and groups,
//! whose rendering depends on later keep/drop decisions, are evaluated into
//! a small tree and rendered from it.

use crate::ast::{CompareOp, DiceSpec, Expr, ExprKind, UnaryOp};
use crate::error::DiceError;
use crate::eval::{Evaluator, Scan, apply_binary, apply_func, apply_unary, written_decimal};
use crate::num::Num;
use crate::render::{
    Style, dice_show_value, push_num, text, tick, verdict, write_annotations, write_dice,
    write_grand_total, write_node, write_prefix, write_suffix, write_tally, write_total,
};
use crate::rng::Rng;
use crate::{GrandTotal, Program};

type SResult<T> = Result<T, DiceError>;

/// What a streamed roll returns besides its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Total of the first result (as [`crate::Outcome::total`]).
    pub total: Num,
    /// Pass/fail of the first result (as [`crate::Outcome::check`]).
    pub check: Option<bool>,
    /// Natural 20 on the leftmost d20 of the first result.
    pub critical: bool,
    /// Natural 1 on the leftmost d20 of the first result.
    pub fumble: bool,
    /// Number of results (repeats and `;`-separated rolls).
    pub results: usize,
    /// Every total, in order, when there is more than one result; empty
    /// otherwise (so the common case allocates nothing).
    pub totals: Vec<Num>,
    /// Critical and fumble of every result, in order, when there is more
    /// than one result; empty otherwise.
    pub flags: Vec<ResultFlags>,
    /// Sum of every total when there is more than one result (as
    /// [`crate::Outcome::grand_total`]).
    pub grand_total: Option<Num>,
}

/// Critical and fumble of one result of a repeated or `;`-separated roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultFlags {
    /// Natural maximum on the crit die (see [`crate::ExprResult::critical`]).
    pub critical: bool,
    /// Natural 1 on the crit die.
    pub fumble: bool,
}

struct Streamer<'e> {
    ev: Evaluator<'e>,
    scan: Scan,
    style: Style,
    dice: bool,
    /// Outcome of the comparison or `then` that finished last; for a
    /// bracketed root that is the outermost one.
    last_check: Option<bool>,
}

impl Program {
    /// Rolls like [`Program::roll`] and appends exactly what
    /// [`crate::Outcome::render_plain`] would print, without building the
    /// result tree. Same seed, same text.
    pub fn roll_plain(&self, rng: &mut Rng, out: &mut String) -> Result<Summary, DiceError> {
        self.roll_text(rng, out, Style::Plain)
    }

    /// Like [`Program::roll_plain`], for [`crate::Outcome::render_markdown`].
    pub fn roll_markdown(&self, rng: &mut Rng, out: &mut String) -> Result<Summary, DiceError> {
        self.roll_text(rng, out, Style::Markdown)
    }

    fn roll_text(&self, rng: &mut Rng, out: &mut String, style: Style) -> SResult<Summary> {
        self.check_roll_budget()?;
        let md = style == Style::Markdown;
        let flags = self.flags;
        let mut s = Streamer {
            ev: Evaluator::new(&self.source, rng),
            scan: Scan::default(),
            style,
            dice: !flags.simple,
            last_check: None,
        };
        let mut summary = Summary {
            total: Num::Int(0),
            check: None,
            critical: false,
            fumble: false,
            results: 0,
            totals: Vec::new(),
            flags: Vec::new(),
            grand_total: None,
        };
        s.ev.unsorted = flags.unsorted;
        let mut grand = GrandTotal::default();
        let mut scratch = String::new();
        for spec in &self.rolls {
            let many = spec.repeat > 1;
            for i in 0..spec.repeat {
                if summary.results > 0 {
                    out.push('\n');
                }
                write_prefix(
                    out,
                    spec.label.as_deref(),
                    many,
                    usize::try_from(i).unwrap_or(0),
                    md,
                );
                s.scan = Scan::default();
                s.last_check = None;
                s.ev.start_result();
                let (total, check) = if flags.no_results {
                    scratch.clear();
                    let (total, check) = s.root(&spec.expr, &mut scratch)?;
                    let check = check.or_else(|| s.narrative_check());
                    write_total(out, total, check, md);
                    (total, check)
                } else {
                    let (total, check) = s.root(&spec.expr, out)?;
                    (total, check.or_else(|| s.narrative_check()))
                };
                s.ev.finish_notes();
                grand
                    .add(total)
                    .map_err(|e| s.ev.num_error(e, spec.span.start))?;
                let (critical, fumble) = (s.scan.critical(), s.scan.fumble());
                write_suffix(
                    out,
                    spec.comment.as_deref(),
                    critical,
                    fumble,
                    &s.ev.notes,
                    md,
                );
                if summary.results == 0 {
                    summary.total = total;
                    summary.check = check;
                    summary.critical = critical;
                    summary.fumble = fumble;
                } else {
                    if summary.totals.is_empty() {
                        summary.totals.push(summary.total);
                        summary.flags.push(ResultFlags {
                            critical: summary.critical,
                            fumble: summary.fumble,
                        });
                    }
                    summary.totals.push(total);
                    summary.flags.push(ResultFlags { critical, fumble });
                }
                summary.results += 1;
            }
        }
        summary.grand_total = grand.get();
        if let Some(sum) = summary.grand_total {
            write_grand_total(out, sum, md);
        }
        Ok(summary)
    }
}

impl Streamer<'_> {
    fn md(&self) -> bool {
        self.style == Style::Markdown
    }

    /// A result with narrative dice passes with at least one net success.
    fn narrative_check(&self) -> Option<bool> {
        self.ev.symbols.and_then(|sy| sy.passed())
    }

    /// One result line's body, as `render::write_result` lays it out.
    fn root(&mut self, expr: &Expr, out: &mut String) -> SResult<(Num, Option<bool>)> {
        let md = self.md();
        let arrow = if md { " → " } else { " -> " };
        let (total, check) = match &expr.kind {
            ExprKind::Compare(op, _, l, r) => {
                let (lv, rv, passed) = self.compare(*op, l, r, out)?;
                out.push_str(arrow);
                tick(out, md, |o| push_num(o, lv));
                if !matches!(r.kind, ExprKind::Num(_)) {
                    out.push_str(" vs ");
                    push_num(out, rv);
                }
                out.push(' ');
                verdict(out, md, passed);
                (Num::Int(i64::from(passed)), Some(passed))
            }
            ExprKind::Then(_, c, e) => {
                let passed = match &c.kind {
                    ExprKind::Compare(op, _, l, r) => {
                        let (lv, _, passed) = self.compare(*op, l, r, out)?;
                        out.push_str(" (");
                        push_num(out, lv);
                        out.push(')');
                        passed
                    }
                    _ => {
                        let (v, shown) = match &c.kind {
                            ExprKind::Dice(spec) => self.dice(spec, c, out)?,
                            ExprKind::Num(_) => (self.node(c, out)?, c.annotations.is_empty()),
                            _ => (self.node(c, out)?, false),
                        };
                        if !shown {
                            out.push_str(" (");
                            push_num(out, v);
                            out.push(')');
                        }
                        v.is_positive()
                    }
                };
                out.push_str(arrow);
                verdict(out, md, passed);
                let value = if passed {
                    out.push_str(if md { " ⇒ " } else { " => " });
                    self.node(e, out)?
                } else {
                    Num::Int(0)
                };
                out.push_str(" = ");
                tick(out, md, |o| push_num(o, value));
                (value, Some(passed))
            }
            _ => {
                let total = self.node(expr, out)?;
                out.push_str(" = ");
                tick(out, md, |o| push_num(o, total));
                (total, is_check(expr).then_some(self.last_check).flatten())
            }
        };
        if let Some(t) = &self.scan.tally {
            write_tally(out, t);
        }
        Ok((total, check))
    }

    /// `left op right`; returns both values and the outcome.
    fn compare(
        &mut self,
        op: CompareOp,
        l: &Expr,
        r: &Expr,
        out: &mut String,
    ) -> SResult<(Num, Num, bool)> {
        let lv = self.node(l, out)?;
        out.push(' ');
        out.push_str(op.symbol());
        out.push(' ');
        let rv = self.node(r, out)?;
        Ok((lv, rv, op.holds(lv.compare(rv))))
    }

    /// One pool, as `render::write_node` lays it out; also whether the text
    /// ends with its value (`render::dice_show_value`).
    fn dice(&mut self, spec: &DiceSpec, expr: &Expr, out: &mut String) -> SResult<(Num, bool)> {
        let roll = self.ev.roll_pool(spec, expr)?;
        self.scan.dice(&roll);
        write_dice(out, &roll, self.style, self.dice);
        write_annotations(out, &roll.annotations, self.style);
        Ok((roll.value, dice_show_value(&roll, self.dice)))
    }

    /// One node, as `render::write_node` lays it out.
    fn node(&mut self, expr: &Expr, out: &mut String) -> SResult<Num> {
        let md = self.md();
        let style = self.style;
        Ok(match &expr.kind {
            ExprKind::Num(n) => {
                match written_decimal(self.ev.src(), expr) {
                    Some(w) => out.push_str(w),
                    None => push_num(out, *n),
                }
                write_annotations(out, &expr.annotations, style);
                *n
            }
            ExprKind::Dice(spec) => self.dice(spec, expr, out)?.0,
            ExprKind::Set(_) | ExprKind::Group(_) => {
                let node = self.ev.eval(expr)?;
                self.scan.node(&node);
                write_node(out, &node, style, self.dice);
                node.value()
            }
            ExprKind::Paren(inner) => {
                out.push('(');
                let v = self.node(inner, out)?;
                out.push(')');
                write_annotations(out, &expr.annotations, style);
                v
            }
            ExprKind::Unary(op, operand) => {
                out.push(if *op == UnaryOp::Neg { '-' } else { '+' });
                let v = self.node(operand, out)?;
                apply_unary(*op, v).map_err(|e| self.ev.num_error(e, expr.span.start))?
            }
            ExprKind::Binary(op, at, l, r) => {
                let lv = self.node(l, out)?;
                out.push(' ');
                text(out, op.symbol(), md);
                out.push(' ');
                let rv = self.node(r, out)?;
                apply_binary(*op, lv, rv).map_err(|e| self.ev.num_error(e, *at))?
            }
            ExprKind::Compare(op, _, l, r) => {
                let (_, _, passed) = self.compare(*op, l, r, out)?;
                self.last_check = Some(passed);
                Num::Int(i64::from(passed))
            }
            ExprKind::Then(_, c, e) => {
                let cv = self.node(c, out)?;
                out.push_str(" then ");
                let passed = cv.is_positive();
                let v = if passed {
                    self.node(e, out)?
                } else {
                    out.push_str("(not rolled)");
                    Num::Int(0)
                };
                self.last_check = Some(passed);
                v
            }
            ExprKind::Call(func, arg) => {
                out.push_str(func.name());
                out.push('(');
                let v = self.node(arg, out)?;
                out.push(')');
                write_annotations(out, &expr.annotations, style);
                apply_func(*func, v).map_err(|e| self.ev.num_error(e, expr.span.start))?
            }
        })
    }
}

/// Whether a root has a pass/fail (`eval::root_check`): a comparison or
/// `then`, possibly in brackets.
fn is_check(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Compare(..) | ExprKind::Then(..) => true,
        ExprKind::Paren(inner) => is_check(inner),
        _ => false,
    }
}
