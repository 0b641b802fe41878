//! `tavern roll` and `tavern odds`: the dice engine on the command line.
//!
//! `tavern roll EXPR` prints the plain-text result; `--json` prints one JSON
//! object; `--seed N` makes the roll reproducible. `tavern roll -` reads one
//! expression per line from stdin and writes one JSON line per expression.
//! That mode is built for bulk use (benchmarks, audits, other tools): stdin
//! and stdout are locked once, output is buffered, the line, text and JSON
//! buffers are reused, and each line goes through `dice::roll_plain`, which
//! reads and rolls everyday shapes (`1d20+5`, `2d20kh1+3`, `1d8+1d6+2`) in
//! one pass without a syntax tree and renders everything else as it is
//! evaluated; the JSON line is written by hand into one buffer. No parse
//! cache: real input varies its numbers, so a cache would mostly miss. With
//! `--seed` the generator is seeded once for the whole run, so a file of
//! expressions always yields the same output.
//!
//! Exit codes: 0 on success; 2 when a single expression is invalid (the
//! message on stderr points at the column). In stdin mode a bad line becomes
//! a JSON line with an `error` object and the run goes on.

use anyhow::{Context, Result};
use dice::{DiceError, Num, Outcome, Rng};
use serde::Serialize;
use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

/// Arguments of `tavern roll`.
#[derive(clap::Args, Debug)]
pub struct RollArgs {
    /// Dice expression, e.g. `4d6kh3` or `1d20+5 >= 15`; `-` reads one
    /// expression per line from stdin and prints one JSON line each.
    #[arg(allow_hyphen_values = true)]
    pub expression: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seed the dice for a reproducible result.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Arguments of `tavern odds`.
#[derive(clap::Args, Debug)]
pub struct OddsArgs {
    /// Dice expression, e.g. `1d20+5 >= 15`.
    #[arg(allow_hyphen_values = true)]
    pub expression: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Exit code for input the dice engine rejects.
const BAD_INPUT: u8 = 2;

/// `error` member of a JSON line.
#[derive(Serialize)]
struct ErrorJson {
    message: String,
    column: usize,
}

impl From<&DiceError> for ErrorJson {
    fn from(e: &DiceError) -> Self {
        ErrorJson {
            message: e.to_string(),
            column: e.column(),
        }
    }
}

/// Appends `s` as a JSON string. Runs of plain characters are copied in one
/// go; only quotes, backslashes and control characters are escaped.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(bytes.get(run..i).unwrap_or_default());
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        run = i + 1;
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.push(b'"');
}

fn push_json_num(out: &mut Vec<u8>, n: Num) -> io::Result<()> {
    match n {
        Num::Int(i) => {
            // Integer to decimal without `core::fmt`, which shows up in
            // profiles of the bulk mode.
            let mut buf = [0u8; 20];
            let mut rest = i.unsigned_abs();
            let mut at = buf.len();
            loop {
                at -= 1;
                buf[at] = b'0' + (rest % 10).to_le_bytes()[0];
                rest /= 10;
                if rest == 0 {
                    break;
                }
            }
            if i < 0 {
                out.push(b'-');
            }
            out.extend_from_slice(&buf[at..]);
            Ok(())
        }
        Num::Dec(_) => serde_json::to_writer(&mut *out, &n).map_err(io::Error::from),
    }
}

/// The stdin mode's line for a valid expression, written directly: this is
/// the hot loop of bulk rolling. Same fields as [`RollLine`].
fn push_roll_line(out: &mut Vec<u8>, line: &RollLine<'_>) -> io::Result<()> {
    out.extend_from_slice(b"{\"expression\":");
    push_json_str(out, line.expression);
    out.extend_from_slice(b",\"total\":");
    push_json_num(out, line.total)?;
    out.extend_from_slice(b",\"text\":");
    push_json_str(out, line.text);
    if let Some(check) = line.check {
        out.extend_from_slice(if check {
            b",\"check\":true"
        } else {
            b",\"check\":false"
        });
    }
    if line.critical {
        out.extend_from_slice(b",\"critical\":true");
    }
    if line.fumble {
        out.extend_from_slice(b",\"fumble\":true");
    }
    if !line.totals.is_empty() {
        out.extend_from_slice(b",\"totals\":[");
        for (i, t) in line.totals.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_num(out, *t)?;
        }
        out.push(b']');
    }
    if !line.flags.is_empty() {
        out.extend_from_slice(b",\"flags\":[");
        for (i, f) in line.flags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(match (f.critical, f.fumble) {
                (true, _) => b"{\"critical\":true}",
                (false, true) => b"{\"fumble\":true}",
                (false, false) => b"{}",
            });
        }
        out.push(b']');
    }
    if let Some(sum) = line.grand_total {
        out.extend_from_slice(b",\"grand_total\":");
        push_json_num(out, sum)?;
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// Critical and fumble of one result, in the `flags` member.
#[derive(Serialize)]
struct FlagsJson {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    critical: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fumble: bool,
}

impl From<&dice::ResultFlags> for FlagsJson {
    fn from(f: &dice::ResultFlags) -> Self {
        FlagsJson {
            critical: f.critical,
            fumble: f.fumble && !f.critical,
        }
    }
}

/// One line of `tavern roll -` output for a valid expression.
#[derive(Serialize)]
struct RollLine<'a> {
    expression: &'a str,
    total: Num,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    critical: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fumble: bool,
    /// All totals when the input has repeats or `;`-separated rolls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    totals: Vec<Num>,
    /// Critical / fumble of every result, alongside `totals`.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "flags_json")]
    flags: Vec<dice::ResultFlags>,
    /// Sum of `totals`.
    #[serde(skip_serializing_if = "Option::is_none")]
    grand_total: Option<Num>,
}

fn flags_json<S: serde::Serializer>(
    flags: &[dice::ResultFlags],
    ser: S,
) -> Result<S::Ok, S::Error> {
    ser.collect_seq(flags.iter().map(FlagsJson::from))
}

/// One line of `tavern roll -` output for an invalid expression.
#[derive(Serialize)]
struct ErrorLine<'a> {
    expression: &'a str,
    error: ErrorJson,
}

/// `tavern roll --json EXPR` output: the summary plus the full result tree.
#[derive(Serialize)]
struct RollDocument<'a> {
    #[serde(flatten)]
    line: RollLine<'a>,
    markdown: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    outcome: &'a Outcome,
}

fn rng_for(seed: Option<u64>) -> Rng {
    match seed {
        Some(s) => Rng::seeded(s),
        None => Rng::from_random_state(),
    }
}

fn summary<'a>(expression: &'a str, outcome: &'a Outcome, text: &'a str) -> RollLine<'a> {
    let many = outcome.results().nth(1).is_some();
    let totals: Vec<Num> = if many {
        outcome.results().map(|r| r.total).collect()
    } else {
        Vec::new()
    };
    let flags = if many {
        outcome
            .results()
            .map(|r| dice::ResultFlags {
                critical: r.critical,
                fumble: r.fumble,
            })
            .collect()
    } else {
        Vec::new()
    };
    RollLine {
        expression,
        total: outcome.total(),
        text,
        check: outcome.check(),
        critical: outcome.is_critical(),
        fumble: outcome.is_fumble(),
        totals,
        flags,
        grand_total: outcome.grand_total(),
    }
}

/// Prints a dice error with a caret under the column and returns exit code 2.
fn bad_input(source: &str, err: &DiceError) -> ExitCode {
    eprintln!("error: {err}");
    for line in err.pointer(source).lines() {
        eprintln!("  {line}");
    }
    ExitCode::from(BAD_INPUT)
}

/// Treats a closed stdout (`tavern roll - | head`) as a normal end.
fn finish_output(result: io::Result<()>) -> Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing the results"),
    }
}

/// `tavern roll`.
pub fn run_roll(args: &RollArgs) -> Result<ExitCode> {
    let mut rng = rng_for(args.seed);
    if args.expression == "-" {
        let stdin = io::stdin();
        let stdout = io::stdout();
        let mut input = stdin.lock();
        let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
        return finish_output(roll_lines(&mut input, &mut out, &mut rng));
    }
    let source = args.expression.as_str();
    let outcome = match dice::parse(source).and_then(|p| p.roll(&mut rng)) {
        Ok(o) => o,
        Err(e) => return Ok(bad_input(source, &e)),
    };
    let text = outcome.render_plain();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = if args.json {
        let doc = RollDocument {
            line: summary(source, &outcome, &text),
            markdown: outcome.render_markdown(),
            seed: args.seed,
            outcome: &outcome,
        };
        serde_json::to_writer(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        writeln!(out, "{text}")
    };
    finish_output(written.and_then(|()| out.flush()))
}

/// The stdin mode: one JSON line per input line, errors included.
fn roll_lines(input: &mut impl BufRead, out: &mut impl Write, rng: &mut Rng) -> io::Result<()> {
    let mut line = String::with_capacity(256);
    let mut text = String::with_capacity(256);
    let mut json = Vec::with_capacity(512);
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let expression = line.trim_end_matches(['\n', '\r']);
        text.clear();
        match dice::roll_plain(expression, rng, &mut text) {
            Ok(s) => {
                json.clear();
                let line = RollLine {
                    expression,
                    total: s.total,
                    text: &text,
                    check: s.check,
                    critical: s.critical,
                    fumble: s.fumble,
                    totals: s.totals,
                    flags: s.flags,
                    grand_total: s.grand_total,
                };
                push_roll_line(&mut json, &line)?;
                out.write_all(&json)?;
            }
            Err(e) => {
                let line = ErrorLine {
                    expression,
                    error: ErrorJson::from(&e),
                };
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()
}

/// `tavern odds`.
pub fn run_odds(args: &OddsArgs) -> Result<ExitCode> {
    let source = args.expression.as_str();
    let odds = match dice::odds(source) {
        Ok(o) => o,
        Err(e) => return Ok(bad_input(source, &e)),
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = if args.json {
        #[derive(Serialize)]
        struct OddsDocument<'a> {
            #[serde(flatten)]
            odds: &'a dice::Odds,
            text: String,
        }
        let doc = OddsDocument {
            odds: &odds,
            text: odds.render_plain(),
        };
        serde_json::to_writer(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        writeln!(out, "{}", odds.render_plain())
    };
    finish_output(written.and_then(|()| out.flush()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(input: &str, seed: u64) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        roll_lines(&mut input.as_bytes(), &mut out, &mut Rng::seeded(seed)).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn stdin_mode_prints_one_json_line_per_expression() {
        let lines = run("1d20+5\n4d6kh3\r\n1d20 + x\n\n2 1d1\n", 7);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["expression"], "1d20+5");
        assert!(lines[0]["total"].is_i64());
        assert!(lines[0]["text"].as_str().unwrap().starts_with("1d20 ("));
        assert_eq!(lines[1]["expression"], "4d6kh3");
        assert_eq!(lines[2]["error"]["column"], 8);
        assert!(
            lines[2]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unexpected `x`")
        );
        assert!(lines[3]["error"].is_object());
        assert_eq!(lines[4]["totals"], serde_json::json!([1, 1]));
    }

    #[test]
    fn json_lines_escape_like_serde() {
        for s in [
            "plain",
            "quote \" and \\ backslash",
            "tab\tnew\nline\u{1}",
            "é ✓ 🎲",
            "",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
        // A comment with quotes survives the round trip.
        let lines = run("1d1 \"sneak\" \\ attack\n1.5*2\n-1234567*1000\n", 1);
        assert_eq!(lines[2]["total"], -1_234_567_000);
        assert_eq!(lines[0]["text"], "1d1 (1) = 1 # \"sneak\" \\ attack");
        assert_eq!(lines[1]["total"], serde_json::json!(3.0));
    }

    #[test]
    fn stdin_mode_carries_the_grand_total_and_per_result_flags() {
        let lines = run("6 4d6\n1d20+5; 2d6+3\n10 1d20\n1d20\n", 4);
        for line in &lines[..3] {
            let totals = line["totals"].as_array().unwrap();
            let sum: i64 = totals.iter().map(|t| t.as_i64().unwrap()).sum();
            assert_eq!(line["grand_total"], sum, "{line}");
            assert_eq!(line["flags"].as_array().unwrap().len(), totals.len());
            assert!(
                line["text"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("Total: {sum}"))
            );
        }
        // Each d20 result is flagged on its own.
        let text = lines[2]["text"].as_str().unwrap();
        for (flags, row) in lines[2]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .zip(text.lines())
        {
            assert_eq!(
                flags["critical"] == true,
                row.ends_with("(critical)"),
                "{row}"
            );
            assert_eq!(flags["fumble"] == true, row.ends_with("(fumble)"), "{row}");
        }
        assert!(lines[3].get("grand_total").is_none());
        assert!(lines[3].get("flags").is_none());
    }

    #[test]
    fn hand_written_line_matches_serde() {
        let flags = vec![
            dice::ResultFlags {
                critical: true,
                fumble: false,
            },
            dice::ResultFlags {
                critical: false,
                fumble: true,
            },
            dice::ResultFlags {
                critical: false,
                fumble: false,
            },
        ];
        let line = RollLine {
            expression: "3 1d20",
            total: Num::Int(20),
            text: "t",
            check: Some(true),
            critical: true,
            fumble: false,
            totals: vec![Num::Int(20), Num::Int(1), Num::Int(7)],
            flags,
            grand_total: Some(Num::Int(28)),
        };
        let mut out = Vec::new();
        push_roll_line(&mut out, &line).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&line).unwrap() + "\n"
        );
    }

    #[test]
    fn stdin_mode_is_seeded_once() {
        let a = run("1d1000\n1d1000\n", 3);
        let b = run("1d1000\n1d1000\n", 3);
        assert_eq!(a, b);
        // One generator for the run: the second line continues the stream.
        assert_ne!(a[0]["total"], a[1]["total"]);
    }
}
