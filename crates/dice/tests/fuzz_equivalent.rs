//! The same work as the cargo-fuzz target `fuzz/fuzz_targets/parse.rs`
//! (parse, roll with a fixed seed, render, compare the streamed text with
//! the tree's, serialise), driven by proptest
//! so it runs on stable Rust in CI. Raise the number of cases with
//! `DICE_FUZZ_CASES=200000 cargo test -p dice --release --test fuzz_equivalent`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dice::Rng;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("DICE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000)
}

/// Bytes biased toward the characters the grammar cares about.
fn dice_bytes() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> =
        b"0123456789dDfF%+-*/()[]{},;<>=!khlmpreiosatbcwngxyu. \t#\xc3\xa9".to_vec();
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(alphabet),
            1 => any::<u8>(),
        ],
        0..64,
    )
}

fn run_one(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    // The one-pass entry point agrees with parse + stream, errors included.
    let mut one_pass = String::new();
    let one = dice::roll_plain(&input, &mut Rng::seeded(0), &mut one_pass);
    let Ok(program) = dice::parse(&input) else {
        assert!(one.is_err(), "{input}");
        return;
    };
    let tree = program.roll(&mut Rng::seeded(0));
    let mut streamed = String::new();
    let summary = program.roll_plain(&mut Rng::seeded(0), &mut streamed);
    match (tree, summary) {
        (Ok(outcome), Ok(summary)) => {
            assert_eq!(streamed, outcome.render_plain(), "{input}");
            assert_eq!(one_pass, streamed, "{input}");
            assert_eq!(one.as_ref().ok(), Some(&summary), "{input}");
            assert_eq!(summary.total, outcome.total());
            assert_eq!(summary.grand_total, outcome.grand_total());
            let _ = outcome.render_markdown();
            let _ = serde_json::to_string(&outcome);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("{input}: tree and stream disagree on success"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_and_roll_never_panic(data in dice_bytes()) {
        run_one(&data);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..128)) {
        run_one(&data);
    }
}
