//! Statistical checks with fixed seeds: deterministic, yet they would fail
//! for a biased generator, a wrong stage order or a wrong odds formula.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dice::{Method, Num, Rng};
use std::collections::HashMap;

fn totals(expr: &str, seed: u64, n: usize) -> Vec<i64> {
    let program = dice::parse(expr).unwrap();
    let mut rng = Rng::seeded(seed);
    (0..n)
        .map(|_| match program.roll(&mut rng).unwrap().total() {
            Num::Int(v) => v,
            Num::Dec(d) => panic!("decimal {d}"),
        })
        .collect()
}

fn mean(xs: &[i64]) -> f64 {
    xs.iter().sum::<i64>() as f64 / xs.len() as f64
}

fn histogram(xs: &[i64]) -> HashMap<i64, f64> {
    let mut h = HashMap::new();
    for x in xs {
        *h.entry(*x).or_insert(0.0) += 1.0 / xs.len() as f64;
    }
    h
}

/// Largest difference between a simulated histogram and the exact odds.
fn max_gap(expr: &str, seed: u64, n: usize) -> f64 {
    let odds = dice::odds(expr).unwrap();
    assert_eq!(odds.method, Method::Exact, "{expr}");
    assert!(!odds.distribution.is_empty());
    let sim = histogram(&totals(expr, seed, n));
    let mut gap: f64 = 0.0;
    for c in &odds.distribution {
        gap = gap.max((sim.get(&c.value).copied().unwrap_or(0.0) - c.probability).abs());
    }
    for v in sim.keys() {
        assert!(
            odds.distribution.iter().any(|c| c.value == *v),
            "{expr}: simulated {v} is impossible according to the odds"
        );
    }
    gap
}

#[test]
fn mean_of_3d6_is_10_5() {
    let m = mean(&totals("3d6", 12345, 100_000));
    // Standard error is 2.96 / sqrt(100000) = 0.0094; allow 5 of them.
    assert!((m - 10.5).abs() < 0.047, "{m}");
}

#[test]
fn d6_faces_pass_a_chi_square_test() {
    let xs = totals("1d6", 99, 60_000);
    let h = histogram(&xs);
    let expected = 10_000.0;
    let chi2: f64 = (1..=6)
        .map(|f| {
            let observed = h.get(&f).copied().unwrap_or(0.0) * 60_000.0;
            (observed - expected).powi(2) / expected
        })
        .sum();
    // 5 degrees of freedom: 20.5 is the 0.1% critical value.
    assert!(chi2 < 20.5, "chi2 = {chi2}");
}

#[test]
fn large_dice_are_uniform_too() {
    // A modulo-biased generator would skew d1000 toward low faces slightly;
    // this checks the halves are balanced.
    let xs = totals("1d1000", 3, 100_000);
    let low = xs.iter().filter(|x| **x <= 500).count() as f64 / 1e5;
    assert!((low - 0.5).abs() < 0.008, "{low}");
    assert!(xs.iter().all(|x| (1..=1000).contains(x)));
}

#[test]
fn exact_odds_match_known_values() {
    let o = |e: &str| dice::odds(e).unwrap();
    assert!((o("3d6").std_dev - (35.0f64 / 4.0).sqrt()).abs() < 1e-9);
    assert!((o("4d6k3").mean - 15869.0 / 1296.0).abs() < 1e-9);
    assert!((o("2d20kh1").mean - 13.825).abs() < 1e-9);
    assert!((o("2d20kl1").mean - 7.175).abs() < 1e-9);
    let check = o("1d20+5 >= 15").check.unwrap();
    assert!((check.probability - 0.55).abs() < 1e-12);
    assert!((o("1d20+5 > 15").check.unwrap().probability - 0.50).abs() < 1e-12);
    assert!((o("1d20 > 1d20").check.unwrap().probability - 0.475).abs() < 1e-12);
    // Explosions: 3.5 / (1 - 1/6) per die.
    assert!((o("8d6!").mean - 33.6).abs() < 1e-9);
    assert!((o("8d6!!").mean - 33.6).abs() < 1e-9);
    // Penetrating: 3.5 + (1/6) * 3 per die.
    assert!((o("4d6!p").mean - 16.0).abs() < 1e-9);
    // Reroll ones once: (2+3+4+5+6)/6 + 3.5/6 per die.
    assert!((o("4d6ro1").mean - 4.0 * (20.0 + 3.5) / 6.0).abs() < 1e-9);
    // Reroll ones forever: uniform on 2..6.
    assert!((o("1d6rr1").mean - 4.0).abs() < 1e-9);
    // Counting: 10 * (P(>=7) - P(1)).
    assert!((o("10d10>=7f1").mean - 3.0).abs() < 1e-9);
    // Fate dice are centred.
    assert!(o("4dF").mean.abs() < 1e-12);
    assert_eq!(o("4dF").min, Num::Int(-4));
    // Computed counts: E[N] * E[die].
    assert!((o("(1d4)d6").mean - 2.5 * 3.5).abs() < 1e-9);
    // then: half the time 2d6+4.
    assert!((o("1d20+5>15t2d6+4").mean - 0.5 * 11.0).abs() < 1e-9);
    let p = o("4d6k3").percentiles;
    assert_eq!(
        (p.p5, p.p50, p.p95),
        (Num::Int(7), Num::Int(12), Num::Int(17))
    );
}

#[test]
fn simulated_rolls_match_exact_odds() {
    for (expr, seed) in [
        ("4d6k3", 1),
        ("2d20kh1", 2),
        ("2d20kl1+3", 3),
        ("3d6", 4),
        ("4d6ro1", 5),
        ("2d6!", 6),
        ("3d10>=7f1", 7),
        ("4cod", 8),
        ("1d20+5>15t2d6+4", 9),
        ("4d6mi2kh3", 10),
        ("2d10ra10", 11),
        ("cpr", 12),
    ] {
        let gap = max_gap(expr, seed, 50_000);
        // Per-outcome standard error is at most 0.5 / sqrt(50000) = 0.0022.
        assert!(gap < 0.011, "{expr}: gap {gap}");
    }
}

#[test]
fn the_simulation_fallback_agrees_with_the_exact_engine() {
    // `{4d6}k3` keeps across a group, which the exact engine does not
    // handle, so it is simulated; `4d6k3` is the same roll computed exactly.
    let sim = dice::odds("{4d6}k3").unwrap();
    let exact = dice::odds("4d6k3").unwrap();
    assert!(matches!(
        sim.method,
        Method::Simulated {
            samples: 100_000,
            ..
        }
    ));
    assert_eq!(exact.method, Method::Exact);
    assert!(
        (sim.mean - exact.mean).abs() < 0.03,
        "{} vs {}",
        sim.mean,
        exact.mean
    );
    assert!((sim.std_dev - exact.std_dev).abs() < 0.03);
    assert_eq!(sim.percentiles.p50, exact.percentiles.p50);
    // Same seed, same figures.
    assert_eq!(dice::odds("{4d6}k3").unwrap(), sim);
}

#[test]
fn odds_render_for_people() {
    let text = dice::odds("1d20+5 >= 15").unwrap().render_plain();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("1d20+5 >= 15: 55.00%"));
    assert_eq!(
        lines.next(),
        Some("1d20+5: mean 15.50, sd 5.77, min 6, max 25")
    );
    assert_eq!(lines.next(), Some("p5 6, p25 10, p50 15, p75 20, p95 24"));
    assert_eq!(lines.next(), Some("exact"));
    let md = dice::odds("1d20+5 >= 15").unwrap().render_markdown();
    assert!(md.starts_with("**1d20+5 >= 15**: `55.00%`"), "{md}");
    let sim = dice::odds("1.5 * 1d6").unwrap().render_plain();
    assert!(
        sim.contains("simulated: 100000 rolls, seed 0xdd55eed"),
        "{sim}"
    );
    // A simulation's extremes are the totals its rolls gave, not the roll's limits.
    let odds = dice::odds("1.5 * 1d6").unwrap();
    assert_eq!(
        sim.lines().next(),
        Some(
            format!(
                "1.5 * 1d6: mean {:.2}, sd {:.2}, lowest {} and highest {} seen in 100000 simulated rolls",
                odds.mean, odds.std_dev, odds.min, odds.max
            )
            .as_str()
        ),
        "{sim}"
    );
    let md = odds.render_markdown();
    assert!(!md.contains("min `") && !md.contains("max `"), "{md}");
    assert!(
        md.contains(&format!(
            ", lowest `{}` and highest `{}` seen in 100000 simulated rolls\n",
            odds.min, odds.max
        )),
        "{md}"
    );
}

#[test]
fn odds_labels_name_the_dice_that_advantage_and_wrath_roll() {
    let first_lines = |e: &str| {
        let text = dice::odds(e).unwrap().render_plain();
        text.lines().take(2).map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(
        first_lines("adv 1d20+5 >= 15"),
        [
            "2d20kh1+5 >= 15: 79.75%",
            "2d20kh1+5: mean 18.82, sd 4.71, min 6, max 25"
        ]
    );
    let dis = dice::odds("dis d20 + 2").unwrap();
    assert_eq!(dis.subject, "2d20kl1 + 2");
    assert!((dis.mean - 9.175).abs() < 1e-9);
    let md = dice::odds("1d20[to hit] adv").unwrap().render_markdown();
    assert!(md.starts_with("**2d20kh1[to hit]**: mean"), "{md}");
    assert_eq!(dice::odds("wng 4d6").unwrap().subject, "4d6t4ds6");
}

#[test]
fn exact_odds_of_huge_pools_keep_the_true_min_and_max() {
    let o = |e: &str| dice::odds(e).unwrap();
    let underflow_note = |odds: &dice::Odds| {
        odds.notes
            .iter()
            .find(|n| n.contains("1e-300"))
            .cloned()
            .unwrap_or_default()
    };
    for (expr, min, max) in [
        ("1000d6", 1000, 6000),
        ("2000d2", 2000, 4000),
        ("-1000d6", -6000, -1000),
        ("1000d6*2", 2000, 12000),
        ("300d20kh1", 1, 20),
        ("300d20kl1", 1, 20),
    ] {
        let odds = o(expr);
        assert_eq!(odds.method, Method::Exact, "{expr}");
        assert_eq!(
            (odds.min, odds.max),
            (Num::Int(min), Num::Int(max)),
            "{expr}"
        );
        assert!(underflow_note(&odds).starts_with("outcomes "), "{expr}");
    }
    // The outcomes whose chance underflowed are named, not called impossible.
    let odds = o("1000d6");
    assert_eq!(
        underflow_note(&odds),
        "outcomes below 1597 and above 5403 can happen, each with a chance below 1e-300"
    );
    assert!(odds.render_plain().contains("min 1000, max 6000"));
    // A listed distribution leaves out only those, and the note says so.
    let odds = o("300d20kl1");
    assert_eq!(odds.distribution.last().map(|c| c.value), Some(19));
    assert_eq!(
        underflow_note(&odds),
        "outcomes above 19 can happen, each with a chance below 1e-300"
    );
    // A check that always passes never gives the 0 of a failed one.
    assert_eq!(o("1000d6 then 1d6").min, Num::Int(1));
    // Without underflow there is no such note.
    assert_eq!(underflow_note(&o("100d6")), "");
}

#[test]
fn only_exact_odds_note_the_explosion_tails_they_cut() {
    let note = |e: &str| {
        dice::odds(e)
            .unwrap()
            .notes
            .iter()
            .any(|n| n.contains("exploding dice can exceed the max shown"))
    };
    // Exact: tails below 1e-16 are cut, so the max shown is not the cap.
    assert_eq!(dice::odds("8d6!").unwrap().method, Method::Exact);
    assert!(note("8d6!"));
    // Simulated: the max is the largest total rolled; nothing was cut.
    assert!(matches!(
        dice::odds("4d6kh3!").unwrap().method,
        Method::Simulated { .. }
    ));
    assert!(!note("4d6kh3!"));
}

#[test]
fn exact_keep_highest_and_lowest_odds_are_the_same_bits_every_time() {
    // Each computation is fresh, so a map with a per-map hasher seed would be
    // visited in another order each time; the sums must not depend on it.
    for expr in ["4d6kh3", "12d20kh5", "10d10kl4", "8d12dl3+1d4"] {
        let bits = || {
            let odds = dice::odds(expr).unwrap();
            assert_eq!(odds.method, Method::Exact, "{expr}");
            let mut bits = vec![odds.mean.to_bits(), odds.std_dev.to_bits()];
            bits.extend(odds.distribution.iter().map(|c| c.probability.to_bits()));
            bits
        };
        let first = bits();
        for _ in 0..20 {
            assert_eq!(
                bits(),
                first,
                "{expr}: odds differ between two computations"
            );
        }
    }
}

#[test]
fn odds_labels_name_the_dice_that_advantage_rolls_for_a_cypher_alias() {
    let labels = |e: &str| {
        let odds = dice::odds(e).unwrap();
        (odds.subject, odds.check.map(|c| c.description))
    };
    // The check's target, which `cs3` writes as its difficulty, reads as one.
    assert_eq!(
        labels("adv cs3"),
        ("2d20kh1".to_owned(), Some("2d20kh1 >= 9".to_owned()))
    );
    assert_eq!(
        labels("dis cypher3+1"),
        ("2d20kl1+1".to_owned(), Some("2d20kl1+1 >= 9".to_owned()))
    );
    assert_eq!(labels("cs3 adv"), labels("adv cs3"));
    assert_eq!(labels("adv cs"), ("2d20kh1".to_owned(), None));
    // Without a word that rewrites it, the alias is shown as written.
    assert_eq!(labels("cs3"), ("cs".to_owned(), Some("cs3".to_owned())));
}
