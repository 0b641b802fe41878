//! The least work an input needs, known before a single die is rolled.
//!
//! A dice term with a literal count rolls at least that many dice: rerolls,
//! explosions and `ra` only add to it. The right side of `then` may not be
//! rolled at all and a computed count is unknown until its dice are rolled, so
//! both count as nothing. The bound is therefore never above what the roll
//! really needs, and an input whose bound is already over a budget can be
//! refused before doing any of the work.

use crate::ast::{Count, Expr, ExprKind, RollSpec, SidesSpec};

/// Visits every dice term that is rolled whatever the dice show, in the
/// evaluator's order, with its literal count (0 for a computed count) and its
/// byte offset. Stops early when `visit` returns `false`; returns whether it
/// ran to the end.
fn certain_terms(expr: &Expr, visit: &mut impl FnMut(u64, usize) -> bool) -> bool {
    match &expr.kind {
        ExprKind::Num(_) => true,
        ExprKind::Dice(spec) => {
            let count = match &spec.count {
                Count::Lit(n) => u64::try_from(*n).unwrap_or(0),
                Count::Expr(e) => {
                    if !certain_terms(e, visit) {
                        return false;
                    }
                    0
                }
            };
            if let SidesSpec::Expr(e) = &spec.sides
                && !certain_terms(e, visit)
            {
                return false;
            }
            visit(count, expr.span.start)
        }
        ExprKind::Set(set) => set.items.iter().all(|item| certain_terms(item, visit)),
        ExprKind::Group(group) => certain_terms(&group.inner, visit),
        ExprKind::Paren(inner) | ExprKind::Unary(_, inner) | ExprKind::Call(_, inner) => {
            certain_terms(inner, visit)
        }
        ExprKind::Binary(_, _, l, r) | ExprKind::Compare(_, _, l, r) => {
            certain_terms(l, visit) && certain_terms(r, visit)
        }
        // The right side is rolled only if the check passes.
        ExprKind::Then(_, condition, _) => certain_terms(condition, visit),
    }
}

/// The fewest dice one evaluation of `expr` rolls.
pub(crate) fn dice_per_roll(expr: &Expr) -> u64 {
    let mut total = 0u64;
    certain_terms(expr, &mut |count, _| {
        total = total.saturating_add(count);
        true
    });
    total
}

/// The byte offset of the term at which a whole input (every part, every
/// repetition) is sure to roll more than `max` dice, if it is.
pub(crate) fn first_term_over(rolls: &[RollSpec], max: u64) -> Option<usize> {
    let mut total = 0u64;
    let mut over = None;
    for spec in rolls {
        for _ in 0..spec.repeat {
            let finished = certain_terms(&spec.expr, &mut |count, at| {
                total = total.saturating_add(count);
                if total > max {
                    over = Some(at);
                }
                over.is_none()
            });
            if !finished {
                return over;
            }
        }
    }
    over
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(source: &str) -> u64 {
        crate::parse(source)
            .map(|program| program.rolls.iter().map(|r| dice_per_roll(&r.expr)).sum())
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn the_bound_counts_literal_dice_that_are_always_rolled() {
        assert_eq!(bound("4d6kh3 + 2d8"), 6);
        assert_eq!(bound("10d6!"), 10, "explosions only add");
        assert_eq!(bound("adv 1d20+5"), 2, "advantage rolls two d20s");
        assert_eq!(
            bound("1d20 >= 15 then 100d6"),
            1,
            "then may not roll its side"
        );
        assert_eq!(bound("(1d4)d6"), 1, "a computed count is unknown");
        assert_eq!(bound("(3d6, 2d6)k1"), 5);
        assert_eq!(bound("1d(2d6)"), 3, "the dice of a computed side count");
        assert_eq!(bound("4dF"), 4);
    }

    #[test]
    fn the_first_term_over_a_limit_is_found_across_repeats_and_parts() {
        let over = |source: &str| {
            crate::parse(source)
                .map(|program| first_term_over(&program.rolls, 20_000))
                .ok()
        };
        assert_eq!(over("3 10000d6"), Some(Some(2)));
        assert_eq!(over("1d6; 2 10000d6"), Some(Some(7)));
        assert_eq!(over("2 10000d6"), Some(None));
    }
}
