//! Text output: Discord Markdown and plain text.
//!
//! Markdown follows the conventions Discord players know from Avrae: dropped
//! dice struck through (`~~1~~`), natural max faces and 1s in bold,
//! exploded dice marked `!`, changed values as `1 -> 4`, the total in
//! backticks. Plain text uses the same layout without markup: a dropped die
//! is written `~1~`. Player-written text (labels, comments, annotations) is
//! escaped in Markdown so it cannot break the formatting.

use crate::ast::UnaryOp;
use crate::num::Num;
use crate::outcome::{DiceRoll, Die, DieOrigin, ExprResult, Node, Outcome, Tally};
use std::fmt::Write;

/// Discord messages are limited to 2000 characters; long pools are cut in
/// Markdown after this many dice (the plain text and JSON keep them all).
pub const MARKDOWN_MAX_DICE: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Markdown,
    Plain,
}

impl Outcome {
    /// Discord Markdown, one line per result.
    pub fn render_markdown(&self) -> String {
        let mut out = String::with_capacity(64);
        self.write_markdown(&mut out);
        out
    }

    /// Plain text, one line per result.
    pub fn render_plain(&self) -> String {
        let mut out = String::with_capacity(64);
        self.write_plain(&mut out);
        out
    }

    /// Appends the Markdown rendering to `out` (lets callers reuse buffers).
    pub fn write_markdown(&self, out: &mut String) {
        write_outcome(out, self, Style::Markdown);
    }

    /// Appends the plain rendering to `out` (lets callers reuse buffers).
    pub fn write_plain(&self, out: &mut String) {
        write_outcome(out, self, Style::Plain);
    }
}

fn write_outcome(out: &mut String, o: &Outcome, style: Style) {
    let md = style == Style::Markdown;
    let mut first = true;
    for roll in &o.rolls {
        let many = roll.results.len() > 1;
        for (i, r) in roll.results.iter().enumerate() {
            if !first {
                out.push('\n');
            }
            first = false;
            write_prefix(out, roll.label.as_deref(), many, i, md);
            if o.flags.no_results {
                write_total(out, r.total, r.check, md);
            } else {
                write_result(out, r, style, !o.flags.simple);
            }
            write_suffix(
                out,
                roll.comment.as_deref(),
                r.critical,
                r.fumble,
                &r.notes,
                md,
            );
        }
    }
    if let Some(sum) = o.grand_total {
        write_grand_total(out, sum, md);
    }
}

/// The line after several results with the sum of their totals.
pub(crate) fn write_grand_total(out: &mut String, sum: Num, md: bool) {
    out.push('\n');
    out.push_str(if md { "**Total:** " } else { "Total: " });
    tick(out, md, |o| push_num(o, sum));
}

/// Label and repetition number in front of a result line.
pub(crate) fn write_prefix(out: &mut String, label: Option<&str>, many: bool, i: usize, md: bool) {
    if let Some(label) = label {
        if md {
            out.push_str("**");
            escape_into(out, label);
            out.push_str("**");
        } else {
            out.push_str(label);
        }
        if many {
            out.push_str(" #");
            push_int(out, i64::try_from(i + 1).unwrap_or(i64::MAX));
        }
        out.push_str(": ");
    } else if many {
        out.push('#');
        push_int(out, i64::try_from(i + 1).unwrap_or(i64::MAX));
        out.push_str(": ");
    }
}

/// Comment, critical/fumble and notes after a result line.
pub(crate) fn write_suffix(
    out: &mut String,
    comment: Option<&str>,
    critical: bool,
    fumble: bool,
    notes: &[String],
    md: bool,
) {
    if let Some(c) = comment {
        if md {
            // The comment follows a dash of its own; one the player wrote first
            // (`1d20 — to hit`) is not shown twice.
            let shown = c.trim_start_matches(['—', '–', '−', '-']).trim_start();
            let shown = if shown.is_empty() { c } else { shown };
            out.push_str(" — *");
            escape_into(out, shown);
            out.push('*');
        } else {
            out.push_str(" # ");
            out.push_str(c);
        }
    }
    if critical {
        out.push_str(if md { " **(critical)**" } else { " (critical)" });
    } else if fumble {
        out.push_str(if md { " **(fumble)**" } else { " (fumble)" });
    }
    for note in notes {
        if md {
            out.push_str("\n-# ");
            escape_into(out, note);
        } else {
            out.push_str(" [");
            out.push_str(note);
            out.push(']');
        }
    }
}

/// Just the total (the `nr` flag).
pub(crate) fn write_total(out: &mut String, total: Num, check: Option<bool>, md: bool) {
    tick(out, md, |o| push_num(o, total));
    if let Some(passed) = check {
        out.push(' ');
        verdict(out, md, passed);
    }
}

fn write_result(out: &mut String, r: &ExprResult, style: Style, dice: bool) {
    let md = style == Style::Markdown;
    let arrow = if md { " → " } else { " -> " };
    match &r.tree {
        Node::Compare {
            op,
            left,
            right,
            passed,
            ..
        } => {
            write_node(out, left, style, dice);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            write_node(out, right, style, dice);
            out.push_str(arrow);
            tick(out, md, |o| push_num(o, left.value()));
            if !matches!(**right, Node::Number { .. }) {
                out.push_str(" vs ");
                push_num(out, right.value());
            }
            out.push(' ');
            verdict(out, md, *passed);
        }
        Node::Then {
            condition,
            passed,
            effect,
            value,
        } => {
            write_check(out, condition, style, dice);
            out.push_str(arrow);
            verdict(out, md, *passed);
            if let Some(e) = effect {
                out.push_str(if md { " ⇒ " } else { " => " });
                write_node(out, e, style, dice);
            }
            out.push_str(" = ");
            tick(out, md, |o| push_num(o, *value));
        }
        tree => {
            write_node(out, tree, style, dice);
            out.push_str(" = ");
            tick(out, md, |o| push_num(o, r.total));
        }
    }
    if let Some(t) = &r.tally {
        write_tally(out, t);
    }
}

/// Whether a pool's rendering ends with its value: one die shown, whose value
/// is the pool's (`1d20 (15)`), so a `then` does not repeat it.
pub(crate) fn dice_show_value(d: &DiceRoll, show: bool) -> bool {
    match d.dice.as_slice() {
        [die] => {
            show && !d.fate
                && d.narrative.is_none()
                && d.annotations.is_empty()
                && d.tally.is_none()
                && d.value == Num::Int(die.value)
        }
        _ => false,
    }
}

/// The condition of a `then`, with the total it compared (unless the
/// condition already shows it: `1d20 (4) -> pass`, not `1d20 (4) (4)`).
fn write_check(out: &mut String, node: &Node, style: Style, dice: bool) {
    match node {
        Node::Compare {
            op, left, right, ..
        } => {
            write_node(out, left, style, dice);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            write_node(out, right, style, dice);
            out.push_str(" (");
            push_num(out, left.value());
            out.push(')');
        }
        other => {
            write_node(out, other, style, dice);
            let shown = match other {
                Node::Number { annotations, .. } => annotations.is_empty(),
                Node::Dice(d) => dice_show_value(d, dice),
                _ => false,
            };
            if !shown {
                out.push_str(" (");
                push_num(out, other.value());
                out.push(')');
            }
        }
    }
}

pub(crate) fn write_tally(out: &mut String, t: &Tally) {
    let plural = |n: i64, one: &str, many: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {many}")
        }
    };
    out.push_str(" (");
    out.push_str(&plural(t.successes, "success", "successes"));
    if t.failures != 0 {
        out.push_str(", ");
        out.push_str(&plural(t.failures, "failure", "failures"));
    }
    if t.botches != 0 {
        out.push_str(", ");
        out.push_str(&plural(t.botches, "botch", "botches"));
    }
    out.push(')');
}

pub(crate) fn verdict(out: &mut String, md: bool, passed: bool) {
    let word = if passed { "pass" } else { "fail" };
    if md {
        out.push_str("**");
        out.push_str(word);
        out.push_str("**");
    } else {
        out.push_str(word);
    }
}

pub(crate) fn tick(out: &mut String, md: bool, f: impl FnOnce(&mut String)) {
    if md {
        out.push('`');
    }
    f(out);
    if md {
        out.push('`');
    }
}

pub(crate) fn write_annotations(out: &mut String, annotations: &[String], style: Style) {
    for a in annotations {
        out.push_str(" [");
        if style == Style::Markdown {
            escape_into(out, a);
        } else {
            out.push_str(a);
        }
        out.push(']');
    }
}

pub(crate) fn write_node(out: &mut String, node: &Node, style: Style, dice: bool) {
    let md = style == Style::Markdown;
    match node {
        Node::Number {
            value,
            written,
            annotations,
        } => {
            match written {
                Some(w) => out.push_str(w),
                None => push_num(out, *value),
            }
            write_annotations(out, annotations, style);
        }
        Node::Dice(d) => {
            write_dice(out, d, style, dice);
            write_annotations(out, &d.annotations, style);
        }
        Node::Set(s) => {
            out.push(if s.brace { '{' } else { '(' });
            for (i, item) in s.items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if item.dropped {
                    out.push_str(if md { "~~" } else { "~" });
                }
                write_node(out, &item.node, style, dice);
                if item.dropped {
                    out.push_str(if md { "~~" } else { "~" });
                }
            }
            if !s.brace && s.items.len() == 1 {
                out.push(',');
            }
            out.push(if s.brace { '}' } else { ')' });
            text(out, &s.suffix, md);
            write_annotations(out, &s.annotations, style);
        }
        Node::Group(g) => {
            out.push('{');
            write_node(out, &g.inner, style, dice);
            out.push('}');
            text(out, &g.suffix, md);
            write_annotations(out, &g.annotations, style);
        }
        Node::Paren {
            inner, annotations, ..
        } => {
            out.push('(');
            write_node(out, inner, style, dice);
            out.push(')');
            write_annotations(out, annotations, style);
        }
        Node::Unary { op, operand, .. } => {
            out.push(if *op == UnaryOp::Neg { '-' } else { '+' });
            write_node(out, operand, style, dice);
        }
        Node::Binary {
            op, left, right, ..
        } => {
            write_node(out, left, style, dice);
            out.push(' ');
            text(out, op.symbol(), md);
            out.push(' ');
            write_node(out, right, style, dice);
        }
        Node::Compare {
            op, left, right, ..
        } => {
            write_node(out, left, style, dice);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            write_node(out, right, style, dice);
        }
        Node::Then {
            condition, effect, ..
        } => {
            write_node(out, condition, style, dice);
            out.push_str(" then ");
            match effect {
                Some(e) => write_node(out, e, style, dice),
                None => out.push_str("(not rolled)"),
            }
        }
        Node::Call {
            func,
            arg,
            annotations,
            ..
        } => {
            out.push_str(func.name());
            out.push('(');
            write_node(out, arg, style, dice);
            out.push(')');
            write_annotations(out, annotations, style);
        }
    }
}

/// Appends an integer without going through `core::fmt` (rendering is on
/// the hot path of bulk rolling).
pub(crate) fn push_int(out: &mut String, v: i64) {
    // Most numbers in a roll are single faces and small totals.
    if (0..10).contains(&v) {
        out.push(char::from(b'0' + v.to_le_bytes()[0]));
        return;
    }
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            // n % 10 < 10, so the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            let digit = (n % 10) as u8;
            *slot = b'0' + digit;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    let digits = buf.get(i..).unwrap_or_default();
    out.reserve(digits.len() + 1);
    if v < 0 {
        out.push('-');
    }
    // ASCII digits: pushing them one by one skips UTF-8 validation.
    for &d in digits {
        out.push(char::from(d));
    }
}

/// Appends a number: integers fast, decimals through `Display`.
pub(crate) fn push_num(out: &mut String, v: Num) {
    match v {
        Num::Int(i) => push_int(out, i),
        Num::Dec(_) => {
            let _ = write!(out, "{v}");
        }
    }
}

pub(crate) fn text(out: &mut String, s: &str, md: bool) {
    if md {
        escape_into(out, s);
    } else {
        out.push_str(s);
    }
}

pub(crate) fn write_dice(out: &mut String, d: &DiceRoll, style: Style, show: bool) {
    let md = style == Style::Markdown;
    text(out, &d.notation, md);
    if !show {
        return;
    }
    out.push_str(" (");
    let limit = if md { MARKDOWN_MAX_DICE } else { usize::MAX };
    for (i, die) in d.dice.iter().enumerate() {
        if i == limit {
            let _ = write!(out, ", … +{} more", d.dice.len() - limit);
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        if let Some(kind) = d.narrative {
            let face = crate::systems::face_text(kind, die.face);
            if md {
                escape_into(out, face);
            } else {
                out.push_str(face);
            }
            continue;
        }
        write_die(out, die, d.fate, md);
    }
    out.push(')');
}

fn face_text(out: &mut String, v: i64, fate: bool) {
    if fate {
        out.push_str(match v {
            1 => "+",
            -1 => "-",
            0 => "0",
            _ => "",
        });
        if !(-1..=1).contains(&v) {
            push_int(out, v);
        }
    } else {
        push_int(out, v);
    }
}

fn write_die(out: &mut String, die: &Die, fate: bool, md: bool) {
    if die.dropped {
        out.push_str(if md { "~~" } else { "~" });
    }
    for f in &die.rerolled_from {
        face_text(out, *f, fate);
        out.push_str(" -> ");
    }
    if let Some(before) = die.clamped_from {
        face_text(out, before, fate);
        out.push_str(" -> ");
    }
    let bold = md && (die.critical || die.fumble);
    if bold {
        out.push_str("**");
    }
    face_text(out, die.value, fate);
    if bold {
        out.push_str("**");
    }
    if die.exploded {
        out.push('!');
    }
    if die.origin == Some(DieOrigin::RerollAdd) {
        out.push('+');
    }
    if die.dropped {
        out.push_str(if md { "~~" } else { "~" });
    }
}

/// Escapes Discord Markdown control characters in player-written text.
///
/// Names in the features go through `discord::markdown::escape`; this crate keeps its own
/// because it is pure (no I/O, no dependency but serde) and must not depend on the
/// Discord adapter. It escapes fewer characters on purpose: it also runs over dice
/// notation and narrative faces, whose `>`, `<`, `#`, `[ ]` and `:` must read as
/// written in every roll; a `<@id>` in a comment shows, but replies ping nobody.
pub(crate) fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_s_own_leading_dash_is_not_shown_after_the_separator() {
        let suffix = |comment: &str, md: bool| {
            let mut s = String::new();
            write_suffix(&mut s, Some(comment), false, false, &[], md);
            s
        };
        assert_eq!(suffix("— to hit", true), " — *to hit*");
        assert_eq!(suffix("– to hit", true), " — *to hit*");
        assert_eq!(suffix("to hit — nice", true), " — *to hit — nice*");
        assert_eq!(suffix("—", true), " — *—*");
        assert_eq!(suffix("— to hit", false), " # — to hit");
    }

    #[test]
    fn integers_print_like_display() {
        for v in [0, 1, -1, 9, 10, -10, 123_456, i64::MAX, i64::MIN] {
            let mut s = String::new();
            push_int(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }
}
