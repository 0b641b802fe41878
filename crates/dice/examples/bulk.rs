//! Rolls every stdin line like `tavern roll -` does (parse, roll straight to
//! text, one JSON line each) so the dice engine's share of the bulk mode can
//! be profiled on its own:
//!
//! ```text
//! cargo build --release -p dice --example bulk
//! valgrind --tool=callgrind target/release/examples/bulk < bench/expressions.txt
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Write};

fn main() {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut rng = dice::Rng::seeded(1);
    let mut line = String::new();
    let mut text = String::new();
    let mut json = Vec::new();
    loop {
        line.clear();
        if input.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let expression = line.trim_end_matches(['\n', '\r']);
        text.clear();
        json.clear();
        match dice::roll_plain(expression, &mut rng, &mut text) {
            Ok(s) => {
                let doc =
                    serde_json::json!({"expression": expression, "total": s.total, "text": &text});
                serde_json::to_writer(&mut json, &doc).unwrap();
            }
            Err(e) => {
                let doc = serde_json::json!({"expression": expression, "error": e.to_string()});
                serde_json::to_writer(&mut json, &doc).unwrap();
            }
        }
        json.push(b'\n');
        out.write_all(&json).unwrap();
    }
    out.flush().unwrap();
}
