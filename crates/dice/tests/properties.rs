//! Properties that must hold for every input, checked with proptest.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dice::{Node, Num, Outcome, Rng};
use proptest::prelude::*;

/// Pieces of dice syntax; random sequences of them reach far deeper into the
/// parser than random characters do.
const TOKENS: &[&str] = &[
    "1",
    "2",
    "3",
    "4",
    "6",
    "8",
    "10",
    "20",
    "100",
    "0",
    "d",
    "D",
    "%",
    "F",
    "+",
    "-",
    "*",
    "/",
    "//",
    "**",
    "(",
    ")",
    "{",
    "}",
    "[fire]",
    ",",
    ";",
    "<",
    ">",
    "=",
    "==",
    "!=",
    ">=",
    "<=",
    "!",
    "!!",
    "!p",
    "k",
    "kh",
    "kl",
    "km",
    "p",
    "ph",
    "pl",
    "dh",
    "dl",
    "r",
    "rr",
    "ro",
    "ra",
    "rg",
    "ir",
    "irg",
    "e",
    "eo",
    "ie",
    "i",
    "mi",
    "ma",
    "s",
    "sa",
    "sd",
    "t",
    "tl",
    "f",
    "b",
    "ds",
    "c",
    " ",
    " ",
    " then ",
    " plus ",
    " keep ",
    " highest ",
    "adv ",
    " dis",
    "floor(",
    "abs(",
    "round(",
    "wng ",
    "cod",
    "wod",
    "ex",
    "fitd",
    "sw",
    "sr",
    "cpr",
    "df",
    ".",
    "# note",
    "(Label) ",
    "x",
    "é",
];

fn tokens() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..16).prop_map(|v| v.concat())
}

/// Rolls, renders and serialises everything that parses; none of it may panic.
fn exercise(input: &str, seed: u64) {
    if let Ok(program) = dice::parse(input)
        && let Ok(outcome) = program.roll(&mut Rng::seeded(seed))
    {
        let _ = outcome.render_plain();
        let md = outcome.render_markdown();
        assert!(!md.is_empty());
        let json = serde_json::to_string(&outcome);
        assert!(json.is_ok(), "{input}: {json:?}");
    }
}

fn int(o: &Outcome) -> i64 {
    match o.total() {
        Num::Int(v) => v,
        Num::Dec(d) => panic!("expected an integer, got {d}"),
    }
}

fn first_dice(o: &Outcome) -> &dice::DiceRoll {
    let tree = &o.first().expect("a result").tree;
    let terms = tree.dice_terms();
    terms.first().copied().expect("a dice term")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_any_string(s in "\\PC{0,80}") {
        exercise(&s, 1);
    }

    #[test]
    fn parser_never_panics_on_dice_like_strings(s in tokens(), seed in any::<u64>()) {
        exercise(&s, seed);
    }

    #[test]
    fn same_seed_same_outcome(s in tokens(), seed in any::<u64>()) {
        if let Ok(p) = dice::parse(&s) {
            let a = p.roll(&mut Rng::seeded(seed));
            let b = p.roll(&mut Rng::seeded(seed));
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn sums_stay_within_bounds(n in 0i64..40, s in 1i64..200, k in -100i64..100, seed in any::<u64>()) {
        let expr = format!("{n}d{s}+{k}");
        let o = dice::roll(&expr, &mut Rng::seeded(seed)).unwrap();
        let t = int(&o);
        prop_assert!((n + k..=n * s + k).contains(&t), "{expr} = {t}");
        let d = first_dice(&o);
        prop_assert_eq!(d.dice.len() as i64, n);
        prop_assert!(d.dice.iter().all(|x| (1..=s).contains(&x.value)));
    }

    #[test]
    fn keep_and_drop_select_the_right_dice(
        n in 1usize..20, s in 1i64..30, k in 0usize..25, op in 0usize..4, seed in any::<u64>()
    ) {
        let name = ["kh", "kl", "dh", "dl"][op];
        let expr = format!("{n}d{s}{name}{k}");
        let o = dice::roll(&expr, &mut Rng::seeded(seed)).unwrap();
        let d = first_dice(&o);
        let kept: Vec<i64> = d.dice.iter().filter(|x| !x.dropped).map(|x| x.value).collect();
        let dropped: Vec<i64> = d.dice.iter().filter(|x| x.dropped).map(|x| x.value).collect();
        let expected_kept = match name {
            "kh" | "kl" => k.min(n),
            _ => n - k.min(n),
        };
        prop_assert_eq!(kept.len(), expected_kept, "{}", expr);
        // Highest-keeping (kh, dl) never drops a die above a kept one; the
        // lowest-keeping (kl, dh) never drops one below.
        let high = matches!(name, "kh" | "dl");
        for x in &dropped {
            for y in &kept {
                prop_assert!(if high { x <= y } else { x >= y }, "{expr}: dropped {x}, kept {y}");
            }
        }
        prop_assert_eq!(int(&o), kept.iter().sum::<i64>());
    }

    #[test]
    fn success_counts_match_the_dice(n in 0usize..30, s in 1i64..20, target in 0i64..22, seed in any::<u64>()) {
        let expr = format!("{n}d{s}>={target}f1");
        let o = dice::roll(&expr, &mut Rng::seeded(seed)).unwrap();
        let d = first_dice(&o);
        let hits = d.dice.iter().filter(|x| x.value >= target).count() as i64;
        let ones = d.dice.iter().filter(|x| x.value == 1).count() as i64;
        prop_assert_eq!(int(&o), hits - ones);
        let tally = o.first().unwrap().tally.unwrap();
        prop_assert_eq!(tally.successes, hits);
        prop_assert_eq!(tally.failures, ones);
    }

    #[test]
    fn explosions_follow_their_rule(n in 1usize..10, s in 2i64..10, seed in any::<u64>()) {
        let expr = format!("{n}d{s}!");
        let o = dice::roll(&expr, &mut Rng::seeded(seed)).unwrap();
        let d = first_dice(&o);
        // Every max face explodes and is followed by one more die.
        let dice = &d.dice;
        for (i, die) in dice.iter().enumerate() {
            prop_assert_eq!(die.exploded, die.face == s);
            if die.exploded {
                prop_assert!(dice.get(i + 1).is_some_and(|x| x.origin.is_some()));
            }
        }
        let originals = dice.iter().filter(|x| x.origin.is_none()).count();
        prop_assert_eq!(originals, n);
    }

    #[test]
    fn rerolled_dice_no_longer_match(n in 1usize..10, s in 2i64..12, below in 1i64..3, seed in any::<u64>()) {
        let below = below.min(s - 1);
        let expr = format!("{n}d{s}ir{below}");
        let o = dice::roll(&expr, &mut Rng::seeded(seed)).unwrap();
        for die in &first_dice(&o).dice {
            prop_assert!(die.value > below || die.capped);
            prop_assert!(die.rerolled_from.iter().all(|f| *f <= below));
        }
    }

    #[test]
    fn exact_odds_of_plain_sums(n in 1i64..8, s in 1i64..13) {
        let odds = dice::odds(&format!("{n}d{s}")).unwrap();
        prop_assert_eq!(odds.method.clone(), dice::Method::Exact);
        prop_assert_eq!(odds.min, Num::Int(n));
        prop_assert_eq!(odds.max, Num::Int(n * s));
        let mean = n as f64 * (s as f64 + 1.0) / 2.0;
        prop_assert!((odds.mean - mean).abs() < 1e-9);
        let total: f64 = odds.distribution.iter().map(|c| c.probability).sum();
        prop_assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn markdown_shows_the_total_in_backticks(n in 1i64..10, s in 1i64..20, seed in any::<u64>()) {
        let o = dice::roll(&format!("{n}d{s}"), &mut Rng::seeded(seed)).unwrap();
        let md = o.render_markdown();
        let needle = format!("= `{}`", int(&o));
        prop_assert!(md.ends_with(&needle), "{}", md);
    }
}

#[test]
fn result_tree_values_are_consistent() {
    // A binary node's value is its operator applied to its children.
    let o = dice::roll("(2d6 + 3) * 2 - 1d4", &mut Rng::seeded(5)).unwrap();
    let tree = &o.first().unwrap().tree;
    let mut checked = 0;
    tree.walk(&mut |n| {
        if let Node::Binary {
            op,
            left,
            right,
            value,
        } = n
        {
            let (Num::Int(l), Num::Int(r), Num::Int(v)) = (left.value(), right.value(), *value)
            else {
                panic!("integers expected");
            };
            let expect = match op {
                dice::BinaryOp::Add => l + r,
                dice::BinaryOp::Sub => l - r,
                dice::BinaryOp::Mul => l * r,
                _ => unreachable!(),
            };
            assert_eq!(v, expect);
            checked += 1;
        }
    });
    assert_eq!(checked, 3);
}
