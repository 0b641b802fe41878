//! Totals across results, per-result crit flags, the `ul` flag, `+dN` /
//! `-dN`, and the Cypher, AGE and narrative dice: their values, the JSON
//! they carry, the streamed summary and what the odds say about them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dice::{ErrorKind, Node, Num, Rng};

fn roll(input: &str, seed: u64) -> dice::Outcome {
    dice::roll(input, &mut Rng::seeded(seed)).unwrap()
}

fn streamed(input: &str, seed: u64) -> (String, dice::Summary) {
    let mut text = String::new();
    let summary = dice::parse(input)
        .unwrap()
        .roll_plain(&mut Rng::seeded(seed), &mut text)
        .unwrap();
    (text, summary)
}

#[test]
fn repeated_and_separated_rolls_carry_a_grand_total() {
    for (input, results) in [("6 4d6", 6), ("1d20+5; 2d6+3", 2), ("3 1d6; 2 1d4", 5)] {
        for seed in 0..20 {
            let o = roll(input, seed);
            assert_eq!(o.results().count(), results);
            let sum: i64 = o
                .results()
                .map(|r| match r.total {
                    Num::Int(i) => i,
                    Num::Dec(_) => panic!("integer rolls"),
                })
                .sum();
            assert_eq!(o.grand_total(), Some(Num::Int(sum)), "{input}");
            let json = serde_json::to_value(&o).unwrap();
            assert_eq!(json["grand_total"], sum, "{input}");
            let text = o.render_plain();
            assert!(
                text.ends_with(&format!("\nTotal: {sum}")),
                "{input}: {text}"
            );
            let (streamed_text, summary) = streamed(input, seed);
            assert_eq!(streamed_text, text);
            assert_eq!(summary.grand_total, Some(Num::Int(sum)));
            assert_eq!(summary.totals.len(), results);
        }
    }
}

#[test]
fn a_single_result_has_no_grand_total() {
    let o = roll("1d20+5", 1);
    assert_eq!(o.grand_total(), None);
    assert!(
        serde_json::to_value(&o)
            .unwrap()
            .get("grand_total")
            .is_none()
    );
    assert!(!o.render_plain().contains("Total"));
    assert_eq!(streamed("1d20+5", 1).1.grand_total, None);
}

#[test]
fn grand_total_counts_passes_of_checks_and_keeps_decimals() {
    let o = roll("5 1d20 >= 1", 3);
    assert_eq!(o.grand_total(), Some(Num::Int(5)));
    let o = roll("1.5; 2", 3);
    assert_eq!(o.grand_total(), Some(Num::Dec(3.5)));
}

#[test]
fn every_result_of_a_repeated_roll_has_its_own_crit_flag() {
    // Find a seed where a 20 and a 1 both show among ten d20 rolls.
    let (o, seed) = (0..500)
        .map(|seed| (roll("10 1d20+3", seed), seed))
        .find(|(o, _)| o.results().any(|r| r.critical) && o.results().any(|r| r.fumble))
        .expect("a seed with both");
    let (_, summary) = streamed("10 1d20+3", seed);
    assert_eq!(summary.flags.len(), 10);
    for ((r, flags), line) in o
        .results()
        .zip(&summary.flags)
        .zip(o.render_plain().lines())
    {
        let Node::Binary { left, .. } = &r.tree else {
            panic!("a sum")
        };
        let Node::Dice(d) = &**left else {
            panic!("dice first")
        };
        let face = d.dice[0].face;
        assert_eq!(r.critical, face == 20);
        assert_eq!(r.fumble, face == 1);
        assert_eq!((flags.critical, flags.fumble), (r.critical, r.fumble));
        assert_eq!(line.ends_with("(critical)"), r.critical, "{line}");
        assert_eq!(line.ends_with("(fumble)"), r.fumble, "{line}");
    }
    let json = serde_json::to_value(&o).unwrap();
    let crits = json["rolls"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["critical"] == true)
        .count();
    assert_eq!(crits, o.results().filter(|r| r.critical).count());
}

#[test]
fn without_a_d20_the_single_die_decides_crit_and_fumble() {
    let crit = (0..200).map(|s| roll("1d6+2", s)).find(|o| o.is_critical());
    let crit = crit.expect("a six");
    assert_eq!(crit.total(), Num::Int(8));
    let fumble = (0..200).map(|s| roll("2d8kl1", s)).find(|o| o.is_fumble());
    assert_eq!(fumble.expect("a one").total(), Num::Int(1));
    // A sum of several dice has no crit die.
    assert!((0..200).all(|s| !roll("4d6", s).is_critical() && !roll("4d6", s).is_fumble()));
    // A d20 anywhere wins over a smaller single die.
    for seed in 0..100 {
        let o = roll("1d6 + 1d20", seed);
        let Node::Binary { right, .. } = &o.first().unwrap().tree else {
            panic!("a sum")
        };
        let Node::Dice(d20) = &**right else {
            panic!("dice")
        };
        assert_eq!(o.is_critical(), d20.dice[0].face == 20);
    }
}

#[test]
fn ul_shows_dice_in_the_order_rolled_even_when_sorting_was_asked() {
    for seed in 0..30 {
        let plain = roll("4d6", seed);
        let sorted = roll("4d6s", seed);
        let unsorted = roll("ul 4d6s", seed);
        let faces = |o: &dice::Outcome| -> Vec<i64> {
            o.first().unwrap().tree.dice_terms()[0]
                .dice
                .iter()
                .map(|d| d.value)
                .collect()
        };
        assert_eq!(faces(&unsorted), faces(&plain));
        let mut expect = faces(&plain);
        expect.sort_unstable();
        assert_eq!(faces(&sorted), expect);
        assert!(unsorted.flags.unsorted);
        assert_eq!(streamed("ul 4d6s", seed).0, unsorted.render_plain());
    }
}

#[test]
fn plus_and_minus_dn_keep_the_better_or_worse_of_two_for_every_size() {
    for sides in [2, 4, 6, 8, 10, 12, 20, 100, 1000] {
        let adv = dice::odds(&format!("+d{sides}")).unwrap();
        let same = dice::odds(&format!("2d{sides}kh1")).unwrap();
        assert_eq!(adv.mean, same.mean, "+d{sides}");
        assert_eq!(adv.method, dice::Method::Exact);
        let dis = dice::odds(&format!("-d{sides}+1")).unwrap();
        let same = dice::odds(&format!("2d{sides}kl1+1")).unwrap();
        assert_eq!(dis.mean, same.mean, "-d{sides}");
        for seed in 0..10 {
            let o = roll(&format!("+d{sides}"), seed);
            let d = o.first().unwrap().tree.dice_terms()[0].clone();
            assert_eq!(d.count, 2);
            assert_eq!(&*d.notation, format!("2d{sides}kh1"));
            let best = d.dice.iter().map(|x| x.value).max().unwrap();
            assert_eq!(o.total(), Num::Int(best));
        }
    }
    // Not at the start of a roll, it is a sign and a die.
    assert_eq!(
        roll("1+d6", 1).first().unwrap().tree.dice_terms()[0].count,
        1
    );
    // Too many sides is the usual error, not a silent sign.
    assert!(dice::parse("+d2000000").is_err());
}

#[test]
fn cypher_checks_against_three_times_the_difficulty() {
    let odds = dice::odds("cs4").unwrap();
    assert_eq!(odds.method, dice::Method::Exact);
    assert!((odds.check.as_ref().unwrap().probability - 0.45).abs() < 1e-12);
    let odds = dice::odds("cs4+2").unwrap();
    assert!((odds.check.as_ref().unwrap().probability - 0.55).abs() < 1e-12);
    for seed in 0..60 {
        let o = roll("cs5", seed);
        let face = o.first().unwrap().tree.dice_terms()[0].dice[0].face;
        assert_eq!(o.check(), Some(face >= 15));
        let notes = &o.first().unwrap().notes;
        match face {
            1 => assert_eq!(notes, &["natural 1: GM intrusion"]),
            17..=20 => assert_eq!(notes.len(), 1),
            _ => assert!(notes.is_empty()),
        }
    }
    let err = dice::parse("cs11").unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::AliasNeedsDice { alias: "cs", .. }
    ));
}

#[test]
fn age_doubles_grant_stunt_points_equal_to_the_drama_die() {
    let mut seen_doubles = false;
    for seed in 0..100 {
        let o = roll("age+2", seed);
        let d = o.first().unwrap().tree.dice_terms()[0].clone();
        let f: Vec<i64> = d.dice.iter().map(|x| x.face).collect();
        let doubles = f[0] == f[1] || f[0] == f[2] || f[1] == f[2];
        seen_doubles |= doubles;
        assert_eq!(d.stunt_points, doubles.then_some(f[2]), "{f:?}");
        assert_eq!(o.total(), Num::Int(f.iter().sum::<i64>() + 2));
        let json = serde_json::to_value(&o).unwrap();
        let term = &json["rolls"][0]["results"][0]["tree"]["left"];
        assert_eq!(term["stunt_points"].as_i64(), d.stunt_points);
    }
    assert!(seen_doubles);
    // The total is a plain 3d6, so the odds are exact.
    let odds = dice::odds("age").unwrap();
    assert_eq!(odds.method, dice::Method::Exact);
    assert!((odds.mean - 10.5).abs() < 1e-12);
}

#[test]
fn narrative_dice_net_successes_and_advantages() {
    for seed in 0..100 {
        let o = roll("gen 2a1p 2d1c 1b1s", seed);
        let r = o.first().unwrap();
        let symbols = r.narrative.expect("symbols");
        let mut sum = dice::Symbols::default();
        for term in r.tree.dice_terms() {
            let s = term.symbols.expect("every pool has symbols");
            assert!(term.narrative.is_some());
            for field in [
                (s.successes, &mut sum.successes),
                (s.failures, &mut sum.failures),
                (s.advantages, &mut sum.advantages),
                (s.threats, &mut sum.threats),
                (s.triumphs, &mut sum.triumphs),
                (s.despairs, &mut sum.despairs),
            ] {
                *field.1 += field.0;
            }
        }
        assert_eq!(sum.net_successes(), symbols.net_successes());
        assert_eq!(sum.net_advantages(), symbols.net_advantages());
        assert_eq!(r.total, Num::Int(symbols.net_successes()));
        assert_eq!(r.check, Some(symbols.net_successes() > 0));
        assert_eq!(r.notes.len(), 1);
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(
            json["rolls"][0]["results"][0]["narrative"]["advantages"],
            symbols.advantages
        );
        let (text, summary) = streamed("gen 2a1p 2d1c 1b1s", seed);
        assert_eq!(text, o.render_plain());
        assert_eq!(summary.check, r.check);
    }
    // Force dice alone are no check.
    assert_eq!(roll("gen 2f", 1).check(), None);
}

#[test]
fn odds_refuse_narrative_dice_instead_of_guessing() {
    for input in ["gen 2a1d", "gen 1p + 1", "1d20 + (gen 1a)"] {
        let Err(err) = dice::odds(input) else {
            panic!("{input} has no odds")
        };
        assert!(
            matches!(err.kind(), ErrorKind::OddsUnsupported { .. }),
            "{input}: {err}"
        );
        assert!(err.to_string().contains("narrative dice"), "{err}");
    }
}
