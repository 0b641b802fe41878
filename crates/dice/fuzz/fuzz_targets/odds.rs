//! Fuzzes the odds engine: parse arbitrary text and compute its odds, exact or
//! simulated. Any panic is a bug, and so is any figure that contradicts
//! another: a mean outside `[min, max]`, percentiles out of order, a
//! probability outside `[0, 1]`, a listed distribution that is not sorted,
//! does not sum to 1 or does not start at `min` and end at `max` (or lie
//! within them, when a note says that outcomes too unlikely to compute are
//! left out), a sample
//! count outside the simulation's limits, or (exact odds of a plain roll
//! without explosions) a seeded roll whose total the odds call impossible.
//!
//! Time budget per input: the engine bounds itself (exact work and outcome
//! budgets, then a simulation of at least `SIMULATION_MIN_SAMPLES` rolls
//! within `SIMULATION_DICE_BUDGET` dice; see `dice::limits`). An input one
//! roll of which needs more dice than that budget allows for the fewest
//! samples is cut here: its odds would cost more than the engine promises,
//! which the dice crate's own benchmark covers, and fuzzing it only spends
//! seconds per input. Everything else runs under libFuzzer's `-timeout`
//! (`scripts/fuzz.sh`), so an input that escapes the budgets is reported as
//! a timeout, which is a finding: one expression must never stall a shard.

#![no_main]

use dice::limits::{SIMULATION_DICE_BUDGET, SIMULATION_MAX_SAMPLES, SIMULATION_MIN_SAMPLES};
use dice::{Method, Node, Num, Outcome, Rng};
use libfuzzer_sys::fuzz_target;

/// Loose enough for sums of many floating-point terms.
const EPS: f64 = 1e-6;

fn le(a: Num, b: Num) -> bool {
    a.as_f64() <= b.as_f64()
}

fn within(x: f64, lo: f64, hi: f64) -> bool {
    let slack = EPS * (1.0 + lo.abs().max(hi.abs()));
    lo - slack <= x && x <= hi + slack
}

fn probability(p: f64) -> bool {
    (0.0..=1.0 + EPS).contains(&p)
}

/// Dice in a result tree, rerolls, explosions and computed counts or sides
/// included.
fn dice_in(tree: &Node) -> usize {
    let mut n = 0;
    tree.walk(&mut |node| {
        if let Node::Dice(d) = node {
            n += d.dice.len();
            n += d
                .dice
                .iter()
                .map(|die| die.rerolled_from.len() + die.compounded.len())
                .sum::<usize>();
            n += d.count_roll.as_deref().map_or(0, dice_in);
            n += d.sides_roll.as_deref().map_or(0, dice_in);
        }
    });
    n
}

/// Dice one roll of the input rolled (the most of any `;`-part).
fn dice_rolled(outcome: &Outcome) -> usize {
    outcome
        .rolls
        .iter()
        .flat_map(|r| r.results.iter())
        .map(|r| dice_in(&r.tree))
        .max()
        .unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Ok(program) = dice::parse(&input) else {
        return;
    };
    // The per-input budget (see the module docs).
    if let Ok(outcome) = program.roll(&mut Rng::seeded(0)) {
        if dice_rolled(&outcome) > SIMULATION_DICE_BUDGET / SIMULATION_MIN_SAMPLES {
            return;
        }
    }
    let Ok(odds) = program.odds() else {
        return;
    };
    // Renderings never panic and always say something.
    assert!(!odds.render_plain().is_empty());
    assert!(!odds.render_markdown().is_empty());

    if let Method::Simulated { samples, .. } = odds.method {
        assert!(
            (SIMULATION_MIN_SAMPLES..=SIMULATION_MAX_SAMPLES).contains(&samples),
            "{samples} samples for {input:?}"
        );
    }

    let (min, max) = (odds.min, odds.max);
    let p = &odds.percentiles;
    let order = [min, p.p5, p.p25, p.p50, p.p75, p.p95, max];
    let finite = order.iter().all(|n| n.as_f64().is_finite());
    if finite {
        assert!(
            order.windows(2).all(|w| le(w[0], w[1])),
            "min, percentiles and max out of order for {input:?}: {order:?}"
        );
        if odds.mean.is_finite() {
            assert!(
                within(odds.mean, min.as_f64(), max.as_f64()),
                "mean {} outside [{min:?}, {max:?}] for {input:?}",
                odds.mean
            );
        }
    }
    assert!(
        !(odds.std_dev < 0.0),
        "negative standard deviation for {input:?}"
    );
    if let Some(check) = &odds.check {
        assert!(
            probability(check.probability),
            "check probability {} for {input:?}",
            check.probability
        );
    }
    if let Some(p) = odds.at_least_one_success {
        assert!(probability(p), "P(at least one success) {p} for {input:?}");
    }

    if !odds.distribution.is_empty() {
        assert_eq!(odds.method, Method::Exact, "only exact odds list outcomes");
        assert!(
            odds.distribution
                .windows(2)
                .all(|w| w[0].value < w[1].value),
            "distribution not sorted for {input:?}"
        );
        assert!(
            odds.distribution
                .iter()
                .all(|c| c.probability > 0.0 && probability(c.probability)),
            "a listed probability outside (0, 1] for {input:?}"
        );
        let sum: f64 = odds.distribution.iter().map(|c| c.probability).sum();
        assert!(
            (sum - 1.0).abs() < EPS,
            "distribution sums to {sum} for {input:?}"
        );
        let first = odds.distribution.first().map(|c| Num::Int(c.value));
        let last = odds.distribution.last().map(|c| Num::Int(c.value));
        // Outcomes whose chance underflows are not listed, yet min and max
        // count them; the note names them.
        let underflow = odds
            .notes
            .iter()
            .any(|n| n.contains("each with a chance below"));
        if underflow {
            assert!(
                first.is_some_and(|f| le(min, f)) && last.is_some_and(|l| le(l, max)),
                "distribution outside [min, max] for {input:?}"
            );
        } else {
            assert_eq!(first, Some(min), "distribution does not start at min");
            assert_eq!(last, Some(max), "distribution does not end at max");
        }
    }

    // A seeded roll of a plain expression lands inside the exact support.
    let exploding = odds.notes.iter().any(|n| n.contains("exploding"));
    if odds.method == Method::Exact && odds.check.is_none() && !exploding {
        if let Ok(outcome) = program.roll(&mut Rng::seeded(u64::from(data.len() as u32))) {
            let Some(result) = outcome.rolls.first().and_then(|r| r.results.first()) else {
                return;
            };
            let total = result.total;
            assert!(
                le(min, total) && le(total, max),
                "rolled {total:?} outside [{min:?}, {max:?}] for {input:?}"
            );
            if let (Num::Int(v), false) = (total, odds.distribution.is_empty()) {
                assert!(
                    odds.distribution.iter().any(|c| c.value == v),
                    "rolled {v}, which the exact distribution of {input:?} does not hold"
                );
            }
        }
    }
});
