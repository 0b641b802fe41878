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
    "age",
    "cs",
    "cypher",
    "gen ",
    "2a",
    "1p",
    "2d",
    "1c",
    "1b",
    "1s",
    "1f",
    "ul ",
    "+d",
    "-d",
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
        // A single die also carries its crit / fumble flag.
        let md = md.trim_end_matches(" **(critical)**").trim_end_matches(" **(fumble)**");
        prop_assert!(md.ends_with(&needle), "{}", md);
    }
}

/// Streams a roll and rolls it into a tree with the same seed; both must
/// agree on everything, byte for byte.
fn assert_stream_matches(input: &str, seed: u64) {
    let Ok(program) = dice::parse(input) else {
        return;
    };
    let tree = program.roll(&mut Rng::seeded(seed));
    let mut plain = String::new();
    let streamed = program.roll_plain(&mut Rng::seeded(seed), &mut plain);
    match (tree, streamed) {
        (Ok(o), Ok(s)) => {
            assert_eq!(plain, o.render_plain(), "{input} seed {seed}");
            assert_eq!(s.total, o.total(), "{input}");
            assert_eq!(s.check, o.check(), "{input}");
            assert_eq!(s.critical, o.is_critical(), "{input}");
            assert_eq!(s.fumble, o.is_fumble(), "{input}");
            assert_eq!(s.results, o.results().count(), "{input}");
            if s.results > 1 {
                let totals: Vec<Num> = o.results().map(|r| r.total).collect();
                assert_eq!(s.totals, totals, "{input}");
            }
            let mut md = String::new();
            program
                .roll_markdown(&mut Rng::seeded(seed), &mut md)
                .unwrap();
            assert_eq!(md, o.render_markdown(), "{input} seed {seed}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{input}"),
        (a, b) => panic!(
            "{input}: tree {:?} vs stream {:?}",
            a.map(|_| ()),
            b.map(|_| ())
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn streaming_matches_the_tree(s in tokens(), seed in any::<u64>()) {
        assert_stream_matches(&s, seed);
    }
}

#[test]
fn streaming_matches_the_tree_on_every_golden_input() {
    let inputs = [
        "1d20",
        "d20",
        "1d20+5",
        "4d6kh3",
        "4d6k3",
        "4d6kl1",
        "4d6km2",
        "4d6d1",
        "4d6dl1",
        "4d6dh1",
        "4d6ph1",
        "4d6pl1",
        "4d6p1",
        "4d6k1k2",
        "4d6kh1kl1",
        "4d6k>3",
        "4d6p=1",
        "2d20kh1",
        "2d20kl1+3",
        "3d6!",
        "3d6!5",
        "3d6!>4",
        "3d6!!",
        "3d6!p",
        "3d6e",
        "3d6e5",
        "3d6ie",
        "3d6eo6",
        "3d6eo>4",
        "1d6!!!",
        "4d6r2",
        "4d6ir2",
        "4d6rg5",
        "4d6irg5",
        "4d6rr1",
        "4d6ro1",
        "4d6r<3",
        "4d6ra6",
        "4d6mi3",
        "4d6ma4",
        "4d6i",
        "4d6i2",
        "4d6s",
        "4d6sa",
        "4d6sd",
        "10d10t7",
        "10d10tl3",
        "10d10>=7f1",
        "10d10>7",
        "10d10<3",
        "10d10=10",
        "6d10t7ds10",
        "5d10t8b1",
        "4dF",
        "dF",
        "df",
        "2dF+1",
        "d%",
        "1d%",
        "(1d4+1)*2",
        "(1d4+1)d6",
        "1d(2*3)",
        "{4d6+3d8}k4",
        "{3d6, 3d6}kh1",
        "(1d20, 1d20)kh1",
        "(3d6,)",
        "()",
        "(1,2,3)",
        "(1d6,1d6,1d6)>3",
        "{2d6}>3",
        "2d6 + 1d4[fire] + 3 [bonus]",
        "1d20+5 to hit the goblin",
        "1d20 ! attack",
        "1d20 # attack",
        "(Fireball) 8d6",
        "(Attack roll) 1d20+5 vs AC",
        "3 4d6k3",
        "4d6k3c2",
        "1d20; 2d6",
        "+d20+5",
        "-d20",
        "adv 1d20+5",
        "1d20+5 adv",
        "advantage 1d20",
        "dis 1d20",
        "1d20 dis",
        "1d20+5>15t2d6+4",
        "1d20+5>15t2d6+4",
        "1d20+5>15 then 2d6+4",
        "1d20>15t2d6",
        "1d20+5 >= 15",
        "1d20+5 >= 15",
        "1d20 >= 1d20",
        "4d6 k3",
        "4d6 keep 3",
        "4d6 keep highest 3",
        "4d6 keep lowest 1",
        "4d6 drop 1",
        "4d6 drop highest 1",
        "3d6 explode",
        "3d6 explode 5",
        "4d6 reroll 1",
        "5d10 t8 f1",
        "3d6 e6",
        "1d20 plus 5",
        "1d20 minus 1",
        "2 times 1d6",
        "wng 4d6",
        "4cod",
        "4cod8",
        "4cod9",
        "4codr",
        "4wod8",
        "ex5",
        "fitd2",
        "fitd0",
        "sw8",
        "sr6",
        "cpr",
        "cpr",
        "+d6",
        "-d12+2",
        "ul 4d6s",
        "cs4",
        "cypher2+1",
        "age",
        "age+3",
        "gen 2a1p 2d1c",
        "gen 1f",
        "6 4d6",
        "1d20+5; 2d6+3",
        "p 1d20",
        "s 4d6k3",
        "nr 4d6k3",
        "ul 4d6",
        "1d20",
        "1d20",
        "2d20kh1",
        "1d6!=3",
        "4d6kh3 [str]",
        "1d20 [to hit] + 5",
        "floor(1d6/2)",
        "1d20*2+1d4",
        "-(1d6)",
        "1d6**2",
        "1d20 % 7",
        "1d20 // 3",
        "3 - 1d4 - 1",
        "1d4 - -1",
        "2d6>7",
        "(2d6)>7",
        "2d6 > 7",
        "4D6KH3",
        "3D6!",
        "10d6t5t6",
        "8d6!",
        "1d1!",
        "(1d20>10)",
        "((1d20+5>15 then 2d6))",
        "(1d20 > 5 then 1d1-5)",
        "1d20 > 5 then (1d6 > 3 then 2)",
        "s 1d20+5>10",
        "nr 4d6k3; 1d20 > 10",
        "3 1d20>10 then 1d6",
        "(Hit) 2 1d20+5 ! sneak",
        "{2d6, 1d20}kh1 + 1d20",
        "{4d6}k3 > 10",
        "(1d4)d20",
        "1d20 + (1d20, 2d10)kl1",
        "floor(1d20/3) [x] * -2",
        "wng 6d6 + 1d20",
        "1d20c3",
        "10000d1",
        "1d1!+1d1!",
    ];
    for input in inputs {
        for seed in 0..25 {
            assert_stream_matches(input, seed);
        }
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
