//! `/character import`: characters brought over from Feyre (the original bot), or
//! from another Tavern, in one of three forms:
//!
//! - Feyre's user document, as its Redis key `user_{id}` or the sync's
//!   `rolls/user_{id}.json` holds it:
//!   `{"characters": {"Vex": {"initiative_modifier": 3}}, "active_character": "Vex"}`;
//! - only its `characters` object: `{"Vex": {"initiative_modifier": 3}, "Vax": 4}`
//!   (a bare number is a modifier, a bare string an expression; an object may carry
//!   `"initiative": "2d20kh1+3"`);
//! - the text `/character list` shows: `★ Vex (initiative +3)`, or simply `Vex +3`,
//!   `Vex: 1d20+3`, `Vax 2d20kh1+4`; one character a line, or separated by `,` or `;`
//!   (a Discord text option is one line: `Vex +3, Percy -1`), and `/character list`'s
//!   whole answer pasted as one line reads too (its `★` / `•` separate characters, its
//!   heading, with its `**` or without them as copied from Discord, and its last line
//!   are skipped, its escaped names read as typed).
//!
//! An import is all or nothing: every character must be valid and the user must have
//! room for the new ones ([`MAX_CHARACTERS`]); a character of the same name
//! (any case) is updated. The first character becomes active when none is.

use serde_json::Value;

use super::combat::clean_expression;
use super::{
    Character, MAX_CHARACTERS, PICK_ACTIVE, Refusal, UserDoc, clean_name, find_character, refuse,
};

/// Longest import text.
pub const MAX_IMPORT_LEN: usize = 20_000;

/// One character read from an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub name: String,
    pub character: Character,
}

/// What an import text holds: the characters and, from a Feyre document, the
/// active one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Import {
    pub characters: Vec<Imported>,
    pub active: Option<String>,
}

fn character_from(name: &str, value: &Value) -> Result<Imported, Refusal> {
    let name = clean_name(name)?;
    let bad = || {
        Refusal::new(format!(
            "Character `{name}`: expected an object with `initiative_modifier` (a whole number) or `initiative` (an expression), a number or an expression."
        ))
    };
    let character = match value {
        Value::Number(n) => Character {
            initiative_modifier: n.as_i64().ok_or_else(bad)?,
            initiative: None,
        },
        Value::String(s) => Character {
            initiative_modifier: 0,
            initiative: Some(clean_expression(s)?),
        },
        Value::Object(o) => Character {
            initiative_modifier: match o.get("initiative_modifier") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_i64().ok_or_else(bad)?,
            },
            initiative: match o.get("initiative") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(clean_expression(s)?),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(_) => return Err(bad()),
            },
        },
        _ => return Err(bad()),
    };
    if !(-100..=100).contains(&character.initiative_modifier) {
        return refuse(format!(
            "Character `{name}`: the initiative modifier must be between -100 and 100."
        ));
    }
    Ok(Imported { name, character })
}

fn from_json(value: &Value) -> Result<Import, Refusal> {
    let Value::Object(top) = value else {
        return refuse("The JSON must be an object: Feyre's user document or its `characters`.");
    };
    let (characters, active) = match top.get("characters") {
        Some(Value::Object(characters)) => (
            characters,
            top.get("active_character")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        Some(_) => return refuse("`characters` must be an object keyed by name."),
        None => (top, None),
    };
    let characters = characters
        .iter()
        .map(|(name, v)| character_from(name, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Import { characters, active })
}

/// Whether `line` is `/character list`'s heading, as sent (`**Your characters**
/// (2/9)`) or as Discord shows it and a copy takes it (`Your characters (2/9)`).
fn is_heading(line: &str) -> bool {
    let line = line.trim();
    if line.starts_with("**") {
        return true;
    }
    let Some(rest) = line.strip_prefix(HEADING) else {
        return false;
    };
    let rest = rest.trim();
    rest.is_empty()
        || rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(have, most)| {
                [have, most]
                    .iter()
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
}

/// The words of `/character list`'s heading.
pub const HEADING: &str = "Your characters";

fn from_line(line: &str, number: usize) -> Result<Option<Imported>, Refusal> {
    if is_heading(line) {
        return Ok(None);
    }
    let line = line
        .trim()
        .trim_start_matches(['★', '•', '-', '*', '·'])
        .trim();
    if line.is_empty() || line.starts_with("**") || line.starts_with("Pick the") {
        return Ok(None);
    }
    let at = |what: String| Refusal::new(format!("Character {number} (`{line}`): {what}"));
    let (name, value) = if let Some((name, rest)) = line.split_once(" (initiative ") {
        (name, rest.trim_end_matches(')'))
    } else if let Some((name, value)) = line.rsplit_once(':') {
        (name, value)
    } else if let Some((name, value)) = line.rsplit_once(char::is_whitespace) {
        (name, value)
    } else {
        return Err(at(
            "expected a name and an initiative, e.g. `Vex +3` or `Vex 1d20+3`.".into(),
        ));
    };
    let value = value.trim();
    let character = match value.trim_start_matches('+').parse::<i64>() {
        Ok(modifier) => Value::from(modifier),
        Err(_) => Value::from(value),
    };
    character_from(name, &character)
        .map(Some)
        .map_err(|e| at(e.into_message()))
}

/// `text` with the backslashes [`super::escape`] put in front of Markdown taken out.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| n.is_ascii_punctuation()) {
            continue;
        }
        out.push(c);
    }
    out
}

/// Reads an import text (JSON or lines, see the module docs).
pub fn parse(text: &str) -> Result<Import, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return refuse("Paste Feyre's character JSON or your `/character list` text to import.");
    }
    if text.chars().count() > MAX_IMPORT_LEN {
        return refuse(format!("An import is at most {MAX_IMPORT_LEN} characters."));
    }
    let import = if text.starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Refusal::new(format!(
                "That is not valid JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            ))
        })?;
        from_json(&value)?
    } else {
        let mut characters = Vec::new();
        let text = unescape(&text.replace(PICK_ACTIVE, "\n"));
        let entries = text
            .split(['\n', ',', ';', '★', '•'])
            .filter(|e| !e.trim().is_empty());
        for (i, entry) in entries.enumerate() {
            if let Some(c) = from_line(entry, i + 1)? {
                characters.push(c);
            }
        }
        Import {
            characters,
            active: None,
        }
    };
    if import.characters.is_empty() {
        return refuse("The import holds no characters.");
    }
    Ok(import)
}

/// Merges `import` into `doc`, all or nothing. Returns the names imported.
pub fn merge(doc: &mut UserDoc, import: &Import) -> Result<Vec<String>, Refusal> {
    let mut next = doc.clone();
    let mut names = Vec::new();
    for c in &import.characters {
        let key =
            find_character(&next, &c.name).map_or_else(|| c.name.clone(), |(n, _)| n.to_owned());
        next.characters.insert(key.clone(), c.character.clone());
        if !names.contains(&key) {
            names.push(key);
        }
    }
    if next.characters.len() > MAX_CHARACTERS {
        return refuse(format!(
            "This import would give you {} characters; at most {MAX_CHARACTERS} are allowed. Remove some with `/character remove` first.",
            next.characters.len()
        ));
    }
    if next.active_character.is_none() {
        next.active_character = import
            .active
            .as_deref()
            .and_then(|a| find_character(&next, a).map(|(n, _)| n.to_owned()))
            .or_else(|| names.first().cloned());
    }
    *doc = next;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(import: &Import) -> Vec<(&str, i64, Option<&str>)> {
        import
            .characters
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.character.initiative_modifier,
                    c.character.initiative.as_deref(),
                )
            })
            .collect()
    }

    /// A Discord text option is one line: `,` and `;` separate characters too.
    #[test]
    fn one_line_imports_split_at_commas_and_semicolons() {
        let import = parse("Percy +4, Cassandra -1; Vex 2d20kh1+3").expect("reads");
        assert_eq!(
            names(&import),
            [
                ("Percy", 4, None),
                ("Cassandra", -1, None),
                ("Vex", 0, Some("2d20kh1+3"))
            ]
        );
    }

    /// `/character list`'s answer pasted into the one-line option reads back.
    #[test]
    fn the_character_list_pasted_as_one_line_reads_back() {
        let mut doc = UserDoc::default();
        super::super::add_character(&mut doc, "Vex", 3).expect("added");
        super::super::add_character(&mut doc, "Percy_2", -1).expect("added");
        let shown = super::super::render_characters(&doc).replace('\n', " ");
        let import = parse(&shown).expect("reads");
        assert_eq!(names(&import), [("Percy_2", -1, None), ("Vex", 3, None)]);
    }

    /// Copied from Discord, the list has lost its Markdown: its heading is still not
    /// a character, on one line or on lines of their own.
    #[test]
    fn the_character_list_copied_as_shown_skips_its_heading() {
        let shown = "Your characters (7/9) ★ Grog (initiative 2d20kh1+3) • Keyleth (initiative +2) Pick the active character with the buttons below.";
        let import = parse(shown).expect("reads");
        assert_eq!(
            names(&import),
            [("Grog", 0, Some("2d20kh1+3")), ("Keyleth", 2, None)]
        );
        let lines = "Your characters (2/9)\n★ Grog (initiative +1)\n• Vex (initiative +3)";
        let import = parse(lines).expect("reads");
        assert_eq!(names(&import), [("Grog", 1, None), ("Vex", 3, None)]);
        assert!(is_heading("**Your characters** (2/9)"));
        assert!(!is_heading("Your characters 2d20"), "a character so named");
    }

    #[test]
    fn a_character_name_cannot_hold_a_separator() {
        let mut doc = UserDoc::default();
        let err = super::super::add_character(&mut doc, "Percy, the gun", 1).unwrap_err();
        assert!(err.message().contains("cannot contain `,` or `;`"), "{err}");
    }
}
