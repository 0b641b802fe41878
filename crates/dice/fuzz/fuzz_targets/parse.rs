//! Fuzzes the whole pipeline a chat message goes through: parse, roll with
//! a fixed seed, render both ways. Any panic is a bug, and so is any
//! difference between the streamed text (`roll_plain`), the one-pass entry
//! point (`dice::roll_plain`) and the rendering of the result tree.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let mut one_pass = String::new();
    let one = dice::roll_plain(&input, &mut dice::Rng::seeded(0), &mut one_pass);
    let Ok(program) = dice::parse(&input) else {
        assert!(one.is_err());
        return;
    };
    let tree = program.roll(&mut dice::Rng::seeded(0));
    let mut streamed = String::new();
    let summary = program.roll_plain(&mut dice::Rng::seeded(0), &mut streamed);
    match (tree, summary) {
        (Ok(outcome), Ok(summary)) => {
            assert_eq!(streamed, outcome.render_plain());
            assert_eq!(one_pass, streamed);
            assert_eq!(one.ok(), Some(summary.clone()));
            assert_eq!(summary.total, outcome.total());
            assert_eq!(summary.grand_total, outcome.grand_total());
            let _ = outcome.render_markdown();
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("tree and stream disagree on success"),
    }
});
