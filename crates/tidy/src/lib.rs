//! The workspace's rules, as pure functions over file text, so that each rule is tested
//! on a planted violation here and run over the real tree by `tests/tidy.rs`.
//!
//! | rule | why |
//! |---|---|
//! | [`seed_names_outside_schema`] | a seed's key or table name, and every SQL statement, lives in one module: the feature's `schema` |
//! | [`domain_depends_on_storage`] | `schema` depends on `domain`, never the reverse |
//! | [`twilight_outside_discord`] | only `discord` knows Discord's wire format |
//! | [`unwrap_allowed_outside_tests`] | no `unwrap`/`expect` outside tests (clippy denies them; an `allow`, on one line or several or in a `cfg_attr`, must not sneak them back) |
//! | [`unwrap_outside_tests`] | no `.unwrap()`/`.expect(..)` in production code, so the workspace test fails on one too, not only clippy |
//! | [`lua_outside_store`] | `store::lua` is the one home of Lua (`redis::Script`, or `EVAL`/`EVALSHA`/`FCALL`/`FUNCTION`/`SCRIPT` sent by hand) |
//! | [`missing_workspace_lints`] | every crate inherits `[workspace.lints]` |
//! | [`test_script_gaps`] | `scripts/test.sh` runs `cargo fmt --check` and clippy with `-D warnings` (as commands: an `echo` naming them, or `\|\| true` after them, does not count) |

use regex::Regex;

/// One broken rule: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.problem)
    }
}

/// A string literal of a Rust file: the line it starts on and its text (escapes kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    pub line: usize,
    pub text: String,
}

/// `source` with every `#[cfg(test)]` item blanked out (its lines kept, empty, so line
/// numbers stay true): production code. Braces inside strings, chars and comments do
/// not count.
pub fn production_part(source: &str) -> String {
    // Found in the code only: the text `#[cfg(test)]` in a comment or a string is no
    // test module.
    let code = code_only(source);
    let bytes = code.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = code[search..].find("#[cfg(test)]") {
        let start = search + found;
        let Some(end) = item_end(bytes, start) else {
            break;
        };
        out.push_str(&source[copied..start]);
        out.extend(source[start..end].chars().filter(|c| *c == '\n'));
        copied = end;
        search = end;
    }
    out.push_str(&source[copied..]);
    out
}

/// Where the item after the attribute at `start` ends: after its matching `}` (or its
/// `;` for an item without a body).
fn item_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + "#[cfg(test)]".len();
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b';' if depth == 0 => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// What the lexer below sets apart from code: a comment (all of it, markers included),
/// the inside of a string literal, or the inside of a char literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opaque {
    Comment,
    Str,
    Char,
}

/// The one small lexer of the rules: every comment, string literal (plain, raw, byte)
/// and char literal of `source`, in order, as byte ranges. A lifetime is code.
fn opaque_spans(source: &str) -> Vec<(Opaque, std::ops::Range<usize>)> {
    let bytes = source.as_bytes();
    let len = bytes.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < len {
        let b = bytes[i];
        if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            let start = i;
            while i < len && bytes[i] != b'\n' {
                i += 1;
            }
            out.push((Opaque::Comment, start..i));
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let start = i;
            let mut depth = 0;
            while i < len {
                if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push((Opaque::Comment, start..i.min(len)));
        } else if b == b'r'
            && (bytes.get(i + 1) == Some(&b'"') || bytes.get(i + 1) == Some(&b'#'))
            && (i == 0 || !is_ident(bytes[i - 1]))
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while bytes.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if bytes.get(j) != Some(&b'"') {
                i += 1;
                continue;
            }
            let start = j + 1;
            let mut end = start;
            let closing: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while end < len && !bytes[end..].starts_with(&closing) {
                end += 1;
            }
            out.push((Opaque::Str, start..end.min(len)));
            i = (end + closing.len()).min(len);
        } else if b == b'"' {
            let start = i + 1;
            let mut end = start;
            while end < len && bytes[end] != b'"' {
                if bytes[end] == b'\\' {
                    end += 1;
                }
                end += 1;
            }
            let end = end.min(len);
            out.push((Opaque::Str, start..end));
            i = end + 1;
        } else if b == b'\'' {
            // A char literal ('a', '\n', '\'', '"') or a lifetime ('a): a char literal
            // is taken whole so its quote is not taken for a string.
            if bytes.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < len && bytes[j] != b'\'' {
                    j += 1;
                }
                out.push((Opaque::Char, i + 1..j.min(len)));
                i = j + 1;
            } else if bytes.get(i + 2) == Some(&b'\'') {
                out.push((Opaque::Char, i + 1..i + 2));
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every string literal in `source` (plain, raw, byte), skipping comments and char
/// literals. Lines are 1-based.
pub fn string_literals(source: &str) -> Vec<Literal> {
    opaque_spans(source)
        .into_iter()
        .filter(|(kind, _)| *kind == Opaque::Str)
        .map(|(_, range)| Literal {
            line: line_of(source, range.start),
            text: source[range].to_owned(),
        })
        .collect()
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `source` with the insides of its comments and string literals (plain, raw, byte)
/// blanked to spaces, byte for byte, newlines kept: the code alone, at the same offsets
/// and on the same lines.
pub fn code_only(source: &str) -> String {
    let mut out = source.as_bytes().to_vec();
    for (_, range) in opaque_spans(source) {
        for b in &mut out[range] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    // Only whole characters were blanked (every byte of one, to ASCII spaces), so
    // this is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The text between the bracket at `open` (`{`, `[` or `(`) and its match, in code
/// made by [`code_only`].
fn bracketed(code: &str, open: usize) -> Option<&str> {
    let bytes = code.as_bytes();
    let (o, c) = match bytes.get(open)? {
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        b'(' => (b'(', b')'),
        _ => return None,
    };
    let mut depth = 0usize;
    for (i, b) in bytes.iter().enumerate().skip(open) {
        if *b == o {
            depth += 1;
        } else if *b == c {
            depth -= 1;
            if depth == 0 {
                return Some(&code[open + 1..i]);
            }
        }
    }
    None
}

/// The seed names of one feature crate: patterns a string literal of its production
/// code may match only inside its `schema` module.
#[derive(Debug)]
pub struct SeedNames {
    pub krate: &'static str,
    pub patterns: Vec<Regex>,
}

fn regexes(patterns: &[&str]) -> Vec<Regex> {
    patterns
        .iter()
        .map(|p| Regex::new(p).unwrap_or_else(|e| panic!("tidy pattern {p}: {e}")))
        .collect()
}

/// A table named by SQL: `FROM t`, `INTO t`, `UPDATE t`, `JOIN t`, `TABLE t`, or the
/// schema-qualified `schema.t`.
fn sql_tables(schema: &str, tables: &[&str]) -> Vec<String> {
    let list = tables.join("|");
    vec![
        format!(r"(?i)\b(from|into|update|join|table)\s+({schema}\.)?({list})\b"),
        format!(r"\b{schema}\.({list})\b"),
    ]
}

/// SQL statements: a feature's SQL lives in its `schema` module with its tables.
/// A `SELECT` may span lines (`(?s)`: `.` crosses them).
const SQL: &str = r"(?s)\b(SELECT\s.+?\sFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\S+\s+SET)\b";

/// The seed names of every feature, from the five seed documents.
pub fn seed_names() -> Vec<SeedNames> {
    let clips_tables = sql_tables(
        "clips",
        &[
            "users",
            "bot_guilds",
            "guild_settings",
            "bot_channels",
            "bot_channel_scan_runs",
            "install_intents",
            // Tavern's additions, held to the same rule.
            "clips",
            "scan_run_parts",
        ],
    );
    let meet_tables = sql_tables(
        "meet",
        &[
            "users",
            "oauth_providers",
            "meetings",
            "meeting_participants",
            "recordings",
            "meeting_controllers",
            "media_handlers",
            "audit_logs",
            "api_keys",
        ],
    );
    let mut clips: Vec<&str> = clips_tables.iter().map(String::as_str).collect();
    clips.push(SQL);
    let mut meetings: Vec<&str> = meet_tables.iter().map(String::as_str).collect();
    meetings.push(SQL);
    meetings.extend([
        r"^(meeting|participant|stream|ratelimit|presence|controller|cache):",
        r"^(token:blacklist|wt:token):",
    ]);
    vec![
        SeedNames {
            krate: "rolls",
            patterns: regexes(&[
                r"^user_set$",
                r"^user_\{",
                r"^c_(\{|:updated_time)",
                r"^init_\{",
                r":updated_time$",
            ]),
        },
        SeedNames {
            krate: "drinking",
            patterns: regexes(&[
                r"^(game|channel|player|player_games|drinks|player_drinks|session|session_games):",
                r"^active_games$",
            ]),
        },
        SeedNames {
            krate: "campaigns",
            patterns: regexes(&[
                r"^(meetup_event|meetup_user|discord_user|event_series|discord_channel|discord_voice_channel|discord_role|discord_host_role|meetup_linking|csrf):",
                r"^(meetup_events|meetup_users|discord_users|event_series|discord_channels|orphaned_discord_channels|discord_voice_channels|orphaned_discord_voice_channels|user_topic_voice_channel_topic_time|managed_discord_channels|discord_roles|discord_host_roles|orphaned_discord_roles|meetup_access_token|meetup_refresh_token|meetup_access_token_refresh_time)$",
            ]),
        },
        SeedNames {
            krate: "clips",
            patterns: regexes(&clips),
        },
        SeedNames {
            krate: "meetings",
            patterns: regexes(&meetings),
        },
    ]
}

/// True for a path inside a feature's `schema` module (`src/schema.rs`, `src/schema/…`).
pub fn is_schema_module(path: &str) -> bool {
    path.contains("/src/schema.rs") || path.contains("/src/schema/")
}

/// Seed key and table names in the production code of `path` (a file of crate
/// `names.krate` outside its `schema` module).
pub fn seed_names_outside_schema(path: &str, source: &str, names: &SeedNames) -> Vec<Violation> {
    if is_schema_module(path) {
        return Vec::new();
    }
    string_literals(&production_part(source))
        .into_iter()
        .filter_map(|lit| {
            names
                .patterns
                .iter()
                .find(|p| p.is_match(&lit.text))
                .map(|p| Violation {
                    file: path.to_owned(),
                    line: lit.line,
                    problem: format!(
                        "seed name `{}` (rule {}) outside the `schema` module of {}",
                        lit.text,
                        p.as_str(),
                        names.krate
                    ),
                })
        })
        .collect()
}

/// True for a path inside a feature's `domain` module (`src/domain.rs`, `src/domain/…`).
pub fn is_domain_module(path: &str) -> bool {
    path.contains("/src/domain.rs") || path.contains("/src/domain/")
}

/// `domain` naming `schema` (or a repository): the rules must not depend on the
/// storage layout; `schema` depends on `domain`, never the reverse.
pub fn domain_depends_on_storage(path: &str, source: &str) -> Vec<Violation> {
    if !is_domain_module(path) {
        return Vec::new();
    }
    production_part(source)
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or_default();
            [
                "crate::schema",
                "crate::repo",
                "super::schema",
                "super::repo",
            ]
            .iter()
            .any(|p| code.contains(p))
        })
        .map(|(n, _)| n + 1)
        .chain(grouped_storage_imports(&code_only(&production_part(
            source,
        ))))
        .collect::<std::collections::BTreeSet<usize>>()
        .into_iter()
        .map(|line| Violation {
            file: path.to_owned(),
            line,
            problem: "`domain` depends on `schema` or `repo`: the dependency points the other way"
                .to_owned(),
        })
        .collect()
}

/// Lines of `crate::{..}` / `super::{..}` groups (nested ones too) that name `schema`
/// or `repo` as a path of the group: `use crate::{domain::X, schema::game_key};`.
fn grouped_storage_imports(code: &str) -> Vec<usize> {
    let group = Regex::new(r"\b(crate|super)\s*::\s*\{").unwrap_or_else(|e| panic!("{e}"));
    let member = Regex::new(r"(^|[{,])\s*(schema|repo)\b\s*(::|,|\}|$|as\b)")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut lines = Vec::new();
    for found in group.find_iter(code) {
        let open = found.end() - 1;
        let Some(inner) = bracketed(code, open) else {
            continue;
        };
        // Only the group's own members: a nested `domain::{schema}` is not ours.
        let mut top = String::with_capacity(inner.len());
        let mut depth = 0usize;
        for c in inner.chars() {
            match c {
                '{' => {
                    depth += 1;
                    top.push(if depth == 1 { '{' } else { ' ' });
                }
                '}' => {
                    depth = depth.saturating_sub(1);
                    top.push(' ');
                }
                _ if depth > 0 => top.push(if c == '\n' { '\n' } else { ' ' }),
                _ => top.push(c),
            }
        }
        for caps in member.captures_iter(&top) {
            if let Some(name) = caps.get(2) {
                lines.push(line_of(code, open + 1 + name.start()));
            }
        }
    }
    lines
}

/// `twilight` named in a Rust file of a crate other than `discord`.
pub fn twilight_outside_discord(path: &str, source: &str) -> Vec<Violation> {
    source
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or_default();
            code.contains("twilight_") || code.contains("twilight::")
        })
        .map(|(n, _)| Violation {
            file: path.to_owned(),
            line: n + 1,
            problem: "twilight is only for the `discord` crate; use `discord::model`".to_owned(),
        })
        .collect()
}

/// A `twilight-*` dependency in a manifest other than `discord`'s (discord-sim's
/// dev-dependencies may use it: its tests prove the fake speaks to the real client).
pub fn twilight_dependency(path: &str, manifest: &str, dev_allowed: bool) -> Vec<Violation> {
    // `tm = { package = "twilight-model", .. }`: a dependency under another name.
    let renamed =
        Regex::new(r#"\bpackage\s*=\s*["']twilight[-_]"#).unwrap_or_else(|e| panic!("{e}"));
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in manifest.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
            // `[dependencies.twilight-model]`: a dependency as a table of its own.
            if !section_names_twilight(&section) {
                continue;
            }
        }
        if trimmed.starts_with("twilight")
            || trimmed.starts_with("\"twilight")
            || trimmed.starts_with('[')
            || renamed.is_match(trimmed)
        {
            let dev = section.contains("dev-dependencies");
            if !(dev && dev_allowed) {
                out.push(Violation {
                    file: path.to_owned(),
                    line: n + 1,
                    problem: format!(
                        "twilight dependency in {section}: only `discord` speaks twilight"
                    ),
                });
            }
        }
    }
    out
}

fn section_names_twilight(section: &str) -> bool {
    ["twilight-", "twilight_", "\"twilight"]
        .iter()
        .any(|t| section.contains(&format!("dependencies.{t}")))
}

/// An `allow` (or `expect`) of `clippy::unwrap_used`/`expect_used`, or of the whole
/// `clippy::restriction` group, in production code (before the file's `#[cfg(test)]`
/// module): on one line or several, alone or inside a `cfg_attr`.
pub fn unwrap_allowed_outside_tests(path: &str, source: &str) -> Vec<Violation> {
    let code = code_only(&production_part(source));
    let attribute = Regex::new(r"#\s*!?\s*\[").unwrap_or_else(|e| panic!("{e}"));
    let lint = Regex::new(r"\b(allow|expect)\s*\(").unwrap_or_else(|e| panic!("{e}"));
    let named = Regex::new(r"clippy\s*::\s*(unwrap_used|expect_used|restriction)\b")
        .unwrap_or_else(|e| panic!("{e}"));
    attribute
        .find_iter(&code)
        .filter(|found| {
            bracketed(&code, found.end() - 1)
                .is_some_and(|inner| lint.is_match(inner) && named.is_match(inner))
        })
        .map(|found| Violation {
            file: path.to_owned(),
            line: line_of(&code, found.start()),
            problem: "unwrap/expect allowed in production code: return an error instead".to_owned(),
        })
        .collect()
}

/// The modules `source` declares as test code in files of their own
/// (`#[cfg(test)] mod tests;`, other attributes between allowed): their files are tests
/// through and through.
pub fn out_of_line_test_modules(source: &str) -> Vec<String> {
    let declared = Regex::new(
        r"#\[cfg\(test\)\]\s*(#!?\[[^\]]*\]\s*)*(pub(\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    declared
        .captures_iter(&code_only(source))
        .filter_map(|c| c.get(4).map(|m| m.as_str().to_owned()))
        .collect()
}

/// `.unwrap()` or `.expect(..)` in production code (before the file's `#[cfg(test)]`
/// module; comments and strings do not count): a failure there is an error to return.
pub fn unwrap_outside_tests(path: &str, source: &str) -> Vec<Violation> {
    let code = code_only(&production_part(source));
    let call = Regex::new(r"\.\s*(unwrap\s*\(\s*\)|expect\s*\()").unwrap_or_else(|e| panic!("{e}"));
    call.find_iter(&code)
        .map(|found| Violation {
            file: path.to_owned(),
            line: line_of(&code, found.start()),
            problem: format!(
                "`{}` in production code: return an error instead",
                found.as_str().split_whitespace().collect::<String>()
            ),
        })
        .collect()
}

/// `redis::Script` (hand-written Lua) anywhere but `store::lua`.
pub fn lua_outside_store(path: &str, source: &str) -> Vec<Violation> {
    if path.ends_with("crates/store/src/lua.rs") {
        return Vec::new();
    }
    let mut lines: std::collections::BTreeSet<usize> = source
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or_default();
            code.contains("Script::new") || code.contains("redis::Script")
        })
        .map(|(n, _)| n + 1)
        .collect();
    // Lua sent by hand: `cmd("EVAL")`, `cmd("FCALL")`, `cmd("FUNCTION")` ...
    let by_hand = Regex::new(
        r#"(?i)\bcmd\s*\(\s*"(EVAL|EVALSHA|EVAL_RO|EVALSHA_RO|FCALL|FCALL_RO|FUNCTION|SCRIPT)""#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let code = code_only(source);
    for found in by_hand.find_iter(source) {
        // Only a real call: its `cmd(` is code, not a comment or a string.
        if code.get(found.start()..found.start() + 3) == Some("cmd") {
            lines.insert(line_of(source, found.start()));
        }
    }
    lines
        .into_iter()
        .map(|line| Violation {
            file: path.to_owned(),
            line,
            problem: "Lua belongs in `store::lua`: use Writes, apply_if or apply_when".to_owned(),
        })
        .collect()
}

/// A crate manifest without `[lints] workspace = true`.
pub fn missing_workspace_lints(path: &str, manifest: &str) -> Vec<Violation> {
    let mut in_lints = false;
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_lints = trimmed == "[lints]";
            continue;
        }
        if in_lints && trimmed.replace(' ', "") == "workspace=true" {
            return Vec::new();
        }
    }
    vec![Violation {
        file: path.to_owned(),
        line: 1,
        problem: "the crate does not inherit the workspace lints (`[lints]` `workspace = true`)"
            .to_owned(),
    }]
}

/// What `scripts/test.sh` must run besides the tests. Only command lines count: a
/// line that starts with `cargo` (not an `echo` naming it) and whose failure is not
/// swallowed (`|| true`, `|| :`, ...).
pub fn test_script_gaps(path: &str, script: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let commands: Vec<Vec<&str>> = script
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo ") && !l.contains("||"))
        .map(|l| l.split('#').next().unwrap_or_default())
        .map(|l| l.split_whitespace().collect())
        .collect();
    let fmt = commands
        .iter()
        .any(|words| words.starts_with(&["cargo", "fmt"]) && words.contains(&"--check"));
    if !fmt {
        out.push(Violation {
            file: path.to_owned(),
            line: 1,
            problem: "does not run `cargo fmt --all -- --check`".to_owned(),
        });
    }
    let clippy = commands.iter().any(|words| {
        words.starts_with(&["cargo", "clippy"])
            && words.contains(&"--workspace")
            && words.contains(&"--all-targets")
            && words.windows(2).any(|w| w == ["-D", "warnings"])
    });
    if !clippy {
        out.push(Violation {
            file: path.to_owned(),
            line: 1,
            problem: "does not run `cargo clippy --workspace --all-targets -- -D warnings`"
                .to_owned(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(krate: &str) -> SeedNames {
        seed_names()
            .into_iter()
            .find(|n| n.krate == krate)
            .expect("known crate")
    }

    #[test]
    fn literals_skip_comments_and_chars_and_read_raw_strings() {
        let source = "let a = \"one\"; // \"not this\"\n/* \"nor this\" */ let c = '\"'; let d = r#\"raw \"x\"\"#;\nlet e = \"esc \\\" q\";";
        let texts: Vec<(usize, String)> = string_literals(source)
            .into_iter()
            .map(|l| (l.line, l.text))
            .collect();
        assert_eq!(
            texts,
            vec![
                (1, "one".to_owned()),
                (2, "raw \"x\"".to_owned()),
                (3, "esc \\\" q".to_owned())
            ]
        );
    }

    #[test]
    fn a_planted_seed_key_outside_schema_is_found_and_schema_is_exempt() {
        let planted = "fn key(id: &str) -> String { format!(\"game:{id}\") }\n";
        let found = seed_names_outside_schema(
            "crates/drinking/src/repo/mod.rs",
            planted,
            &names("drinking"),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 1);
        assert!(
            seed_names_outside_schema("crates/drinking/src/schema.rs", planted, &names("drinking"))
                .is_empty()
        );
        // A comment or a test module may name keys.
        let fine = "// game:{id} is the game\nfn f() {}\n#[cfg(test)]\nmod tests { const K: &str = \"game:1\"; }\n";
        assert!(
            seed_names_outside_schema("crates/drinking/src/repo/mod.rs", fine, &names("drinking"))
                .is_empty()
        );
    }

    #[test]
    fn a_planted_sql_table_outside_schema_is_found() {
        let planted = "const Q: &str = \"SELECT * FROM meet.meetings WHERE x = $1\";";
        assert_eq!(
            seed_names_outside_schema(
                "crates/meetings/src/repo/meetings.rs",
                planted,
                &names("meetings")
            )
            .len(),
            1
        );
        let planted = "const Q: &str = \"delete from install_intents where expires_at < now()\";";
        assert_eq!(
            seed_names_outside_schema("crates/clips/src/jobs.rs", planted, &names("clips")).len(),
            1
        );
        // The feature's own name is not a table reference.
        let fine = "Feature::new(\"meetings\")";
        assert!(
            seed_names_outside_schema("crates/meetings/src/lib.rs", fine, &names("meetings"))
                .is_empty()
        );
        let planted = "const Q: &str = concat!(\"SELECT id, name FROM \", table!(users));";
        assert_eq!(
            seed_names_outside_schema(
                "crates/meetings/src/repo/users.rs",
                planted,
                &names("meetings")
            )
            .len(),
            1
        );
        let planted = "const Q: &str = \"\n    SELECT id,\n           name\n      FROM meet.oauth_providers\n     WHERE id = $1\";";
        let found = seed_names_outside_schema(
            "crates/meetings/src/repo/users.rs",
            planted,
            &names("meetings"),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let planted = "const Q: &str = \"SELECT id\n FROM elsewhere.things\";";
        assert_eq!(
            seed_names_outside_schema("crates/clips/src/jobs.rs", planted, &names("clips")).len(),
            1,
            "a multi-line SELECT is SQL whatever it reads"
        );
        let planted = "format!(\"user_{}\", id)";
        assert_eq!(
            seed_names_outside_schema("crates/rolls/src/ops.rs", planted, &names("rolls")).len(),
            1
        );
        let planted = "format!(\"event_series:{series}:type\")";
        assert_eq!(
            seed_names_outside_schema("crates/campaigns/src/sync.rs", planted, &names("campaigns"))
                .len(),
            1
        );
    }

    #[test]
    fn a_planted_schema_import_in_domain_is_found() {
        let planted = "use crate::schema::game_key;\nfn f() {}\n";
        assert_eq!(
            domain_depends_on_storage("crates/drinking/src/domain/mod.rs", planted).len(),
            1
        );
        assert!(domain_depends_on_storage("crates/drinking/src/repo.rs", planted).is_empty());
        let fine = "use crate::domain::GameId;\n// crate::schema is not ours to name\n";
        assert!(domain_depends_on_storage("crates/drinking/src/domain.rs", fine).is_empty());
    }

    #[test]
    fn a_planted_grouped_schema_import_in_domain_is_found() {
        let planted = "use crate::{\n    domain::GameId,\n    schema::game_key,\n};\n";
        let found = domain_depends_on_storage("crates/drinking/src/domain/mod.rs", planted);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 3);
        let planted = "use super::{repo, Game};\n";
        assert_eq!(
            domain_depends_on_storage("crates/drinking/src/domain/game.rs", planted).len(),
            1
        );
        // A nested group of another module, or a name that only starts alike, is fine.
        let fine = "use crate::{base::{schema}, schemata::X, repository};\n";
        assert!(domain_depends_on_storage("crates/drinking/src/domain.rs", fine).is_empty());
    }

    #[test]
    fn planted_twilight_is_found_outside_discord() {
        assert_eq!(
            twilight_outside_discord("crates/rolls/src/x.rs", "use twilight_model::id::Id;").len(),
            1
        );
        assert!(
            twilight_outside_discord("crates/rolls/src/x.rs", "// twilight_model is not ours")
                .is_empty()
        );
        let manifest = "[dependencies]\ntwilight-model = \"0.18\"\n[dev-dependencies]\ntwilight-http = \"0.18\"\n";
        assert_eq!(
            twilight_dependency("crates/rolls/Cargo.toml", manifest, false).len(),
            2
        );
        assert_eq!(
            twilight_dependency("crates/discord-sim/Cargo.toml", manifest, true).len(),
            1
        );
    }

    #[test]
    fn a_planted_renamed_or_table_twilight_dependency_is_found() {
        let renamed = "[dependencies]\ntm = { package = \"twilight-model\", version = \"0.18\" }\n";
        let found = twilight_dependency("crates/rolls/Cargo.toml", renamed, false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 2);
        let table = "[package]\nname = \"x\"\n[dependencies.twilight-model]\nversion = \"0.18\"\n";
        let found = twilight_dependency("crates/rolls/Cargo.toml", table, false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 3);
        // discord-sim's dev-dependencies may use it under any spelling.
        let dev = "[dev-dependencies.twilight-http]\nversion = \"0.18\"\n[dev-dependencies]\nth = { package = \"twilight-http\" }\n";
        assert!(twilight_dependency("crates/discord-sim/Cargo.toml", dev, true).is_empty());
        let fine = "[dependencies]\ndiscord = { workspace = true }\n";
        assert!(twilight_dependency("crates/rolls/Cargo.toml", fine, false).is_empty());
    }

    #[test]
    fn a_planted_unwrap_allow_in_production_code_is_found() {
        let planted = "#![allow(clippy::unwrap_used)]\nfn f() {}\n";
        assert_eq!(
            unwrap_allowed_outside_tests("crates/x/src/lib.rs", planted).len(),
            1
        );
        let fine = "fn f() {}\n#[cfg(test)]\n#[allow(clippy::unwrap_used)]\nmod tests {}\n";
        assert!(unwrap_allowed_outside_tests("crates/x/src/lib.rs", fine).is_empty());
    }

    #[test]
    fn a_planted_multi_line_or_cfg_attr_unwrap_allow_is_found() {
        let planted =
            "fn f() {}\n#[allow(\n    dead_code,\n    clippy::expect_used\n)]\nfn g() {}\n";
        let found = unwrap_allowed_outside_tests("crates/x/src/lib.rs", planted);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 2);
        let planted = "#[cfg_attr(feature = \"x\", allow(clippy::unwrap_used))]\nfn f() {}\n";
        assert_eq!(
            unwrap_allowed_outside_tests("crates/x/src/lib.rs", planted).len(),
            1
        );
        let planted = "#![allow(clippy::restriction)]\n";
        assert_eq!(
            unwrap_allowed_outside_tests("crates/x/src/lib.rs", planted).len(),
            1
        );
        // Other lints, and words in comments, are fine.
        let fine =
            "#[allow(clippy::too_many_arguments)]\nfn f() {}\n// #[allow(clippy::unwrap_used)]\n";
        assert!(unwrap_allowed_outside_tests("crates/x/src/lib.rs", fine).is_empty());
    }

    #[test]
    fn a_planted_unwrap_or_expect_in_production_code_is_found() {
        let planted = "fn f(x: Option<u8>) -> u8 {\n    x.unwrap()\n}\nfn g(x: Option<u8>) -> u8 {\n    x\n        .expect(\"set\")\n}\n";
        let found = unwrap_outside_tests("crates/x/src/lib.rs", planted);
        let lines: Vec<usize> = found.iter().map(|v| v.line).collect();
        assert_eq!(lines, vec![2, 6], "{found:?}");
        assert_eq!(
            found[0].problem,
            "`.unwrap()` in production code: return an error instead"
        );
        // Tests, comments, strings and the non-panicking relatives are fine.
        let fine = "/// Never `.unwrap()` here.\nfn f(x: Option<u8>) -> u8 {\n    let _ = \"x.expect(1)\";\n    x.unwrap_or(0).max(x.unwrap_or_default())\n}\nfn e(r: Result<u8, u8>) -> u8 { r.expect_err(\"no\") }\n#[cfg(test)]\nmod tests {\n    fn t() { Some(1).unwrap(); }\n}\n";
        assert!(
            unwrap_outside_tests("crates/x/src/lib.rs", fine).is_empty(),
            "{:?}",
            unwrap_outside_tests("crates/x/src/lib.rs", fine)
        );
    }

    #[test]
    fn out_of_line_test_modules_are_named() {
        let source = "mod repo;\n#[cfg(test)]\nmod validate_tests;\n#[cfg(test)]\n#[allow(clippy::unwrap_used, clippy::expect_used)]\nmod tests;\n#[cfg(test)]\nmod inline { }\n// #[cfg(test)] mod commented;\n";
        assert_eq!(
            out_of_line_test_modules(source),
            vec!["validate_tests".to_owned(), "tests".to_owned()]
        );
    }

    #[test]
    fn cfg_test_in_a_comment_or_string_does_not_hide_production_code() {
        let source = "// see #[cfg(test)] below\nconst S: &str = \"#[cfg(test)]\";\nfn f() { g() }\n#[cfg(test)]\nmod tests { fn t() {} }\n";
        let production = production_part(source);
        assert!(production.contains("fn f() { g() }"), "{production}");
        assert!(!production.contains("fn t()"), "{production}");
        assert_eq!(production.lines().count(), source.lines().count());
    }

    #[test]
    fn planted_lua_outside_store_is_found() {
        let planted = "static S: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(\"return 1\"));";
        assert_eq!(
            lua_outside_store("crates/meetings/src/repo/x.rs", planted).len(),
            1
        );
        assert!(lua_outside_store("crates/store/src/lua.rs", planted).is_empty());
    }

    #[test]
    fn planted_lua_sent_by_hand_is_found() {
        for command in ["EVAL", "EVALSHA", "FCALL", "eval"] {
            let planted = format!(
                "async fn f(c: &mut C) {{\n    redis::cmd(\n        \"{command}\",\n    ).arg(LUA).arg(0).exec_async(c).await;\n}}\n"
            );
            let found = lua_outside_store("crates/meetings/src/repo/x.rs", &planted);
            assert_eq!(found.len(), 1, "{command}: {found:?}");
            assert_eq!(found[0].line, 2);
            assert!(lua_outside_store("crates/store/src/lua.rs", &planted).is_empty());
        }
        let fine = "// redis::cmd(\"EVAL\") is for store::lua\nlet s = \"cmd(\\\"EVAL\\\")\";\nredis::cmd(\"GET\");\n";
        assert!(lua_outside_store("crates/meetings/src/repo/x.rs", fine).is_empty());
    }

    #[test]
    fn a_manifest_without_workspace_lints_is_found() {
        assert_eq!(
            missing_workspace_lints("crates/x/Cargo.toml", "[package]\nname = \"x\"\n").len(),
            1
        );
        assert!(
            missing_workspace_lints(
                "crates/x/Cargo.toml",
                "[package]\n[lints]\nworkspace = true\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_test_script_without_fmt_or_clippy_is_found() {
        assert_eq!(
            test_script_gaps("scripts/test.sh", "cargo nextest run\n").len(),
            2
        );
        let good =
            "cargo fmt --all -- --check\ncargo clippy --workspace --all-targets -- -D warnings\n";
        assert!(test_script_gaps("scripts/test.sh", good).is_empty());
    }

    #[test]
    fn a_test_script_that_only_echoes_or_ignores_fmt_and_clippy_is_found() {
        let echoed = "echo \"==> cargo fmt --check\"\necho \"==> cargo clippy --workspace --all-targets -- -D warnings\"\ncargo nextest run\n";
        let found = test_script_gaps("scripts/test.sh", echoed);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0].problem,
            "does not run `cargo fmt --all -- --check`"
        );
        let ignored = "cargo fmt --all -- --check || true\ncargo clippy --workspace --all-targets -- -D warnings || :\n";
        assert_eq!(test_script_gaps("scripts/test.sh", ignored).len(), 2);
        let weaker = "cargo fmt --all -- --check\ncargo clippy --workspace --all-targets\ncargo clippy -- -D warnings\n";
        let found = test_script_gaps("scripts/test.sh", weaker);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].problem,
            "does not run `cargo clippy --workspace --all-targets -- -D warnings`"
        );
        let indented = "if true; then\n  cargo fmt --all -- --check\n  cargo clippy --workspace --all-targets -- -D warnings # lints\nfi\n";
        assert!(test_script_gaps("scripts/test.sh", indented).is_empty());
    }
}
