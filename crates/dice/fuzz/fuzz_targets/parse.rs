//! Fuzzes the whole pipeline a chat message goes through: parse, roll with
//! a fixed seed, render both ways and serialise. Any panic is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(program) = dice::parse(&input)
        && let Ok(outcome) = program.roll(&mut dice::Rng::seeded(0))
    {
        let _ = outcome.render_plain();
        let _ = outcome.render_markdown();
        let _ = outcome.total();
    }
});
