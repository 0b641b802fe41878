//! `dice::roll_plain` (one pass for everyday shapes) against
//! `parse(..).roll_plain(..)` (the general path): the same text, the same
//! summary, the same error, and the generator left in the same state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dice::Rng;
use proptest::prelude::*;

fn same(input: &str, seed: u64) -> Result<(), TestCaseError> {
    let mut fast_rng = Rng::seeded(seed);
    let mut fast_text = String::from("prefix|");
    let fast = dice::roll_plain(input, &mut fast_rng, &mut fast_text);
    let mut slow_rng = Rng::seeded(seed);
    let mut slow_text = String::from("prefix|");
    let slow = dice::parse(input).and_then(|p| p.roll_plain(&mut slow_rng, &mut slow_text));
    match (fast, slow) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(&fast_text, &slow_text, "{}", input);
            prop_assert_eq!(a, b, "{}", input);
        }
        (Err(a), Err(b)) => prop_assert_eq!(a, b, "{}", input),
        (a, b) => prop_assert!(false, "{input}: {a:?} vs {b:?}"),
    }
    prop_assert_eq!(fast_rng.next_u64(), slow_rng.next_u64(), "{}", input);
    Ok(())
}

const PIECES: &[&str] = &[
    "1",
    "2",
    "3",
    "4",
    "6",
    "8",
    "10",
    "12",
    "20",
    "100",
    "0",
    "007",
    "999999999",
    "1000000000",
    "d",
    "d20",
    "1d20",
    "2d20",
    "4d6",
    "d6",
    "1d1",
    "0d6",
    "10001d6",
    "k",
    "kh",
    "kl",
    "k1",
    "kh1",
    "kl1",
    "kh3",
    "k0",
    "kh5",
    "+",
    "-",
    "*",
    "**",
    " ",
    "(",
    ")",
    "D",
    "K",
    "e",
    "!",
    "r",
    ".5",
    "[x]",
    ";",
    "#",
    "t",
    "c2",
];

fn pieces() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 1..10).prop_map(|v| v.concat())
}

/// Inputs in the fast shape, so that the fast path really runs.
fn fast_shapes() -> impl Strategy<Value = String> {
    let term = prop_oneof![
        (0i64..1000).prop_map(|n| n.to_string()),
        (
            1i64..12,
            prop::sample::select(vec![2i64, 4, 6, 8, 10, 12, 20, 100])
        )
            .prop_map(|(c, s)| format!("{c}d{s}")),
        prop::sample::select(vec![2i64, 6, 20]).prop_map(|s| format!("d{s}")),
        (
            1i64..10,
            prop::sample::select(vec![4i64, 6, 20]),
            1i64..10,
            any::<bool>()
        )
            .prop_map(|(c, s, k, high)| format!(
                "{c}d{s}k{}{}",
                if high { "h" } else { "l" },
                k.min(c)
            )),
    ];
    (
        any::<bool>(),
        prop::collection::vec(
            (prop::sample::select(vec!["+", "-", "*"]), term.clone()),
            0..6,
        ),
        term,
    )
        .prop_map(|(neg, rest, first)| {
            let mut s = String::new();
            if neg && first.starts_with(|c: char| c.is_ascii_digit()) {
                s.push('-');
            }
            s.push_str(&first);
            for (op, t) in rest {
                s.push_str(op);
                s.push_str(&t);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn fast_shapes_roll_like_the_general_path(input in fast_shapes(), seed in any::<u64>()) {
        same(&input, seed)?;
    }

    #[test]
    fn anything_else_rolls_like_the_general_path(input in pieces(), seed in any::<u64>()) {
        same(&input, seed)?;
    }
}

#[test]
fn everyday_rolls_and_edges() {
    for input in [
        "1d20+5",
        "d20",
        "2d20kh1+3",
        "2d20kl1",
        "4d6kh3",
        "4d6k3",
        "1d8+1d6+2",
        "3d6*2",
        "-1d4+7",
        "1d12+3d6",
        "10d10",
        "1d100",
        "2*3-4*5",
        "-5",
        "-d6",
        "+d6",
        "1d20-5",
        "999999999*999999999*999999999",
        "10000d6",
        "10001d6",
        "2d6kh5",
        "2d6kh0",
        "64d6kh1",
        "65d6kh1",
        "1d1",
        "1d20+5 ",
        " 1d20",
        "",
        "1d20+",
        "1d20++5",
        "20000d2",
        "10000d2+10000d2+1d2",
        "1d20 # note",
        "6 4d6",
        "1d20;1d4",
    ] {
        for seed in 0..50 {
            same(input, seed).unwrap();
        }
    }
}
