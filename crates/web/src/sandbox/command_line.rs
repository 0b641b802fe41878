//! What a person types in the console (`/character add name:Vex initiative-modifier:3`)
//! turned into the command name and Discord-shaped options, using the registered
//! command's option list.
//!
//! The rules, in the order they apply:
//! - Words are split on spaces; `"double quotes"` keep spaces together (`\"` and `\\`
//!   inside quotes are a quote and a backslash).
//! - After the command name come its subcommand (group) names, if it has any.
//! - `name:value` fills the option `name` (`name: value` too); a quoted value keeps its
//!   spaces (`name:"Sir Vex"`). A name the command does not have is an error that
//!   names it. A word that is all quoted (`"a:b"`) or a link (`https://...`) is a
//!   value, not a name.
//! - The other words fill the options not given by name, one word each, in the order
//!   the command declares them (required ones first). The last required option, and
//!   the last option, take the rest of the line when they are text: `/roll 2d6 + 3` is
//!   the expression `2d6 + 3`, and `/init add goblin x3` the name `goblin x3`. So where
//!   optional options follow a required text one, they are given by name:
//!   `/character add Vex initiative-modifier:3` (`/character add Vex 3` is the name
//!   `Vex 3`); a name with spaces is quoted (`/character add "Sir Vex" 3` where the
//!   modifier is required).
//! - Values are checked against the option's type, choices and bounds; users, roles
//!   and channels are found by name, `@name`, `#name`, a mention or an id.

use serde_json::{Value, json};

/// The guild's members, roles and channels, to resolve options of those types by name.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// `(name, id)`; a member may appear under several names (username, global name,
    /// nickname), all lower case.
    pub users: Vec<(String, u64)>,
    pub roles: Vec<(String, u64)>,
    pub channels: Vec<(String, u64)>,
}

/// One word of the line: its text (quotes removed) and, for `name:value`, the name.
#[derive(Debug, Clone, PartialEq)]
struct Word {
    /// As typed, for messages.
    raw: String,
    /// The value (the whole word when there is no name).
    text: String,
    key: Option<String>,
}

fn is_option_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_lowercase() || c.is_numeric() || c == '-' || c == '_')
}

/// Splits a line into words (see the module docs for quoting and `name:value`).
fn words(line: &str) -> Result<Vec<Word>, String> {
    let mut out = Vec::new();
    let mut raw = String::new();
    let mut current = String::new();
    let mut key: Option<String> = None;
    let mut quoted = false;
    let mut seen_quote = false;
    let mut has_word = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if quoted && matches!(chars.peek(), Some('"' | '\\')) => {
                let escaped = chars.next().unwrap_or('\\');
                raw.push(ch);
                raw.push(escaped);
                current.push(escaped);
            }
            '"' => {
                raw.push(ch);
                quoted = !quoted;
                seen_quote = true;
                has_word = true;
            }
            ':' if !quoted
                && !seen_quote
                && key.is_none()
                && is_option_name(&current)
                && !chars.clone().take(2).eq("//".chars()) =>
            {
                raw.push(ch);
                key = Some(std::mem::take(&mut current));
            }
            c if c.is_whitespace() && !quoted => {
                // `name: value`: the value is the next word.
                if key.is_some() && current.is_empty() && !seen_quote {
                    if !raw.ends_with(' ') {
                        raw.push(' ');
                    }
                    continue;
                }
                if has_word {
                    out.push(Word {
                        raw: std::mem::take(&mut raw).trim_end().to_owned(),
                        text: std::mem::take(&mut current),
                        key: key.take(),
                    });
                    has_word = false;
                    seen_quote = false;
                }
            }
            c => {
                raw.push(c);
                current.push(c);
                has_word = true;
            }
        }
    }
    if quoted {
        return Err("a closing `\"` is missing".into());
    }
    if has_word {
        out.push(Word {
            raw,
            text: current,
            key,
        });
    }
    Ok(out)
}

fn option_name(option: &Value) -> &str {
    option["name"].as_str().unwrap_or_default()
}

fn is_text(option: &Value) -> bool {
    option["type"].as_u64() == Some(3)
}

/// Finds `raw` among `(name, id)` entries: an id, a mention (`<@1>`, `<#1>`,
/// `<@&1>`) or a name with or without its `@` / `#`.
fn lookup(raw: &str, entries: &[(String, u64)], sigils: &[&str]) -> Option<u64> {
    let mut wanted = raw.trim();
    if let Some(inner) = wanted.strip_prefix('<').and_then(|w| w.strip_suffix('>')) {
        wanted = ["@&", "@!", "@", "#"]
            .iter()
            .find_map(|p| inner.strip_prefix(p))
            .unwrap_or(inner);
    }
    if let Ok(id) = wanted.parse::<u64>() {
        return Some(id);
    }
    let wanted = sigils
        .iter()
        .find_map(|s| wanted.strip_prefix(s))
        .unwrap_or(wanted)
        .to_lowercase();
    entries
        .iter()
        .find(|(n, _)| *n == wanted)
        .map(|(_, id)| *id)
}

fn bounds_error(name: &str, raw: &str, option: &Value, value: f64) -> Option<String> {
    let min = option["min_value"].as_f64();
    let max = option["max_value"].as_f64();
    let below = min.is_some_and(|m| value < m);
    let above = max.is_some_and(|m| value > m);
    if !(below || above) {
        return None;
    }
    let show = |v: Option<&Value>| v.map(ToString::to_string).unwrap_or_else(|| "…".into());
    Some(format!(
        "option `{name}` must be between {} and {}, not `{raw}`",
        show(option.get("min_value")),
        show(option.get("max_value"))
    ))
}

fn typed_value(option: &Value, raw: &str, directory: &Directory) -> Result<Value, String> {
    let name = option_name(option);
    if let Some(choices) = option["choices"].as_array().filter(|c| !c.is_empty()) {
        let found = choices.iter().find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(raw))
                || match &c["value"] {
                    Value::String(v) => v == raw,
                    other => other
                        .as_f64()
                        .is_some_and(|n| raw.parse::<f64>().ok() == Some(n)),
                }
        });
        return match found {
            Some(choice) => Ok(choice["value"].clone()),
            None => {
                let names: Vec<&str> = choices.iter().filter_map(|c| c["name"].as_str()).collect();
                Err(format!(
                    "option `{name}` must be one of: {}; not `{raw}`",
                    names.join(", ")
                ))
            }
        };
    }
    match option["type"].as_u64() {
        Some(4) => {
            let value = raw
                .parse::<i64>()
                .map_err(|_| format!("option `{name}` wants a whole number, not `{raw}`"))?;
            #[allow(clippy::cast_precision_loss)]
            match bounds_error(name, raw, option, value as f64) {
                Some(error) => Err(error),
                None => Ok(Value::from(value)),
            }
        }
        Some(10) => {
            let value = raw
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("option `{name}` wants a number, not `{raw}`"))?;
            match bounds_error(name, raw, option, value) {
                Some(error) => Err(error),
                None => Ok(Value::from(value)),
            }
        }
        Some(5) => match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "off" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("option `{name}` wants true or false, not `{raw}`")),
        },
        Some(6) => lookup(raw, &directory.users, &["@"])
            .map(|id| Value::String(id.to_string()))
            .ok_or_else(|| format!("option `{name}`: no member called `{raw}`")),
        Some(7) => lookup(raw, &directory.channels, &["#"])
            .map(|id| Value::String(id.to_string()))
            .ok_or_else(|| format!("option `{name}`: no channel called `{raw}`")),
        Some(8) => lookup(raw, &directory.roles, &["@"])
            .map(|id| Value::String(id.to_string()))
            .ok_or_else(|| format!("option `{name}`: no role called `{raw}`")),
        Some(9) => lookup(raw, &directory.users, &["@"])
            .or_else(|| lookup(raw, &directory.roles, &["@"]))
            .map(|id| Value::String(id.to_string()))
            .ok_or_else(|| format!("option `{name}`: no member or role called `{raw}`")),
        Some(11) => Err(format!(
            "option `{name}` wants a file, which the sandbox console cannot send"
        )),
        _ => {
            let chars = raw.chars().count() as u64;
            let short = option["min_length"].as_u64().is_some_and(|m| chars < m);
            let long = option["max_length"].as_u64().is_some_and(|m| chars > m);
            if short || long {
                return Err(format!(
                    "option `{name}` must be {}–{} characters long, not {chars}",
                    option["min_length"].as_u64().unwrap_or(0),
                    option["max_length"].as_u64().unwrap_or(6000)
                ));
            }
            Ok(Value::String(raw.to_owned()))
        }
    }
}

fn names_of(options: &[Value]) -> String {
    options
        .iter()
        .map(option_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turns `/init join character:Bob roll:15` (or `/init join Bob 15`) into the command
/// name and Discord-shaped options; see the module docs for the rules. Errors are
/// sentences for the person who typed the line.
pub fn parse_command_line(
    line: &str,
    commands: &[(String, Vec<Value>)],
    directory: &Directory,
) -> Result<(String, Value), String> {
    let line = line.trim();
    let Some(rest) = line.strip_prefix('/') else {
        return Err("a command starts with `/`, e.g. `/ping`".into());
    };
    let mut tokens = words(rest)?.into_iter();
    let name = tokens
        .next()
        .ok_or("type a command name after `/`")?
        .raw
        .to_lowercase();
    let Some((_, mut options)) = commands.iter().find(|(n, _)| *n == name).cloned() else {
        if commands.is_empty() {
            return Err(format!(
                "unknown command `/{name}`: no command is registered yet (is the bot up?)"
            ));
        }
        let known: Vec<String> = commands.iter().map(|(n, _)| format!("/{n}")).collect();
        return Err(format!(
            "unknown command `/{name}`; available: {}",
            known.join(", ")
        ));
    };
    let mut path: Vec<String> = Vec::new();
    loop {
        let subs: Vec<&Value> = options
            .iter()
            .filter(|o| matches!(o["type"].as_u64(), Some(1 | 2)))
            .collect();
        if subs.is_empty() {
            break;
        }
        let names: Vec<&str> = subs.iter().map(|o| option_name(o)).collect();
        let next = tokens.next().map(|t| t.raw.to_lowercase());
        let Some(sub) = next
            .as_deref()
            .and_then(|t| subs.iter().find(|o| option_name(o) == t))
        else {
            let so_far = std::iter::once(format!("/{name}"))
                .chain(path.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            return Err(match next {
                Some(unknown) => format!(
                    "`{so_far}` has no `{unknown}`; it takes one of: {}",
                    names.join(", ")
                ),
                None => format!("`{so_far}` needs one of: {}", names.join(", ")),
            });
        };
        path.push(option_name(sub).to_owned());
        options = sub["options"].as_array().cloned().unwrap_or_default();
    }
    let full = std::iter::once(format!("/{name}"))
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");

    let mut given: Vec<(String, Value)> = Vec::new();
    let mut positional: Vec<Word> = Vec::new();
    for token in tokens {
        let Some(key) = &token.key else {
            positional.push(token);
            continue;
        };
        let Some(option) = options.iter().find(|o| option_name(o) == key) else {
            return Err(if options.is_empty() {
                format!("{full} has no option `{key}`: it takes none")
            } else {
                format!(
                    "{full} has no option `{key}`; its options are: {}",
                    names_of(&options)
                )
            });
        };
        if given.iter().any(|(k, _)| k == key) {
            return Err(format!("{full}: the option `{key}` is given twice"));
        }
        given.push((key.clone(), typed_value(option, &token.text, directory)?));
    }

    // Required options first (Discord declares them first anyway), then optional ones.
    let named = &given;
    let open = |required: bool| {
        options.iter().filter(move |o| {
            (o["required"].as_bool() == Some(true)) == required
                && !named.iter().any(|(k, _)| k == option_name(o))
        })
    };
    let required = open(true).count();
    let slots: Vec<Value> = open(true).chain(open(false)).cloned().collect();
    let mut words = positional.into_iter().peekable();
    for (index, slot) in slots.iter().enumerate() {
        let Some(first) = words.next() else {
            break;
        };
        let absorbs = index + 1 == required || index + 1 == slots.len();
        let text = if absorbs && is_text(slot) && words.peek().is_some() {
            std::iter::once(first.text)
                .chain(words.by_ref().map(|w| w.text))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            first.text
        };
        given.push((
            option_name(slot).to_owned(),
            typed_value(slot, &text, directory)?,
        ));
    }
    let left: Vec<String> = words.map(|w| w.raw).collect();
    if !left.is_empty() {
        let left = left.join(" ");
        return Err(if options.is_empty() {
            format!("`{left}` is not an option of {full}: it takes none")
        } else {
            format!(
                "`{left}` is left over: {full} takes {}; write name:value to fill one by name",
                names_of(&options)
            )
        });
    }
    for option in &options {
        let key = option_name(option);
        if option["required"].as_bool() == Some(true) && !given.iter().any(|(k, _)| k == key) {
            return Err(format!("{full}: the option `{key}` is required"));
        }
    }
    let mut leaf: Vec<Value> = given
        .into_iter()
        .map(|(key, value)| {
            let kind = options
                .iter()
                .find(|o| option_name(o) == key)
                .and_then(|o| o["type"].as_u64())
                .unwrap_or(3);
            json!({ "name": key, "type": kind, "value": value })
        })
        .collect();
    // The innermost name is a subcommand (type 1), every one around it a group (2).
    for (depth, sub) in path.iter().rev().enumerate() {
        let kind = if depth == 0 { 1 } else { 2 };
        leaf = vec![json!({ "name": sub, "type": kind, "options": leaf })];
    }
    Ok((name, Value::Array(leaf)))
}

/// A one-line usage hint, e.g. `/init join|get|remove` or `/roll <expression> [private]`.
pub fn usage(name: &str, options: &[Value]) -> String {
    let subs: Vec<&str> = options
        .iter()
        .filter(|o| matches!(o["type"].as_u64(), Some(1 | 2)))
        .filter_map(|o| o["name"].as_str())
        .collect();
    if !subs.is_empty() {
        return format!("/{name} {}", subs.join("|"));
    }
    let args: Vec<String> = options
        .iter()
        .filter_map(|o| {
            let n = o["name"].as_str()?;
            Some(if o["required"].as_bool() == Some(true) {
                format!("<{n}>")
            } else {
                format!("[{n}]")
            })
        })
        .collect();
    format!("/{name} {}", args.join(" ")).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands() -> Vec<(String, Vec<Value>)> {
        vec![
            ("ping".into(), vec![]),
            (
                "roll".into(),
                vec![
                    json!({"type": 3, "name": "expression", "required": true}),
                    json!({"type": 5, "name": "private"}),
                ],
            ),
            (
                "init".into(),
                vec![
                    json!({"type": 1, "name": "join", "options": [
                        {"type": 3, "name": "character"}, {"type": 4, "name": "roll"}
                    ]}),
                    json!({"type": 1, "name": "next", "options": []}),
                ],
            ),
            (
                "character".into(),
                vec![json!({"type": 1, "name": "add", "options": [
                    {"type": 3, "name": "name", "required": true},
                    {"type": 4, "name": "initiative-modifier", "required": true,
                     "min_value": -100, "max_value": 100}
                ]})],
            ),
            (
                "greet".into(),
                vec![
                    json!({"type": 6, "name": "who", "required": true}),
                    json!({"type": 7, "name": "where"}),
                    json!({"type": 3, "name": "mood", "choices": [
                        {"name": "Happy", "value": "happy"}, {"name": "Grumpy", "value": "grumpy"}
                    ]}),
                    json!({"type": 3, "name": "note"}),
                ],
            ),
        ]
    }

    fn none() -> Directory {
        Directory::default()
    }

    fn parse(line: &str) -> Result<(String, Value), String> {
        let directory = Directory {
            users: vec![("alice".into(), 11), ("bob".into(), 12)],
            roles: vec![("players".into(), 21)],
            channels: vec![("dice".into(), 31)],
        };
        parse_command_line(line, &commands(), &directory)
    }

    #[test]
    fn loose_words_fill_the_first_text_option() {
        let (name, options) =
            parse_command_line("/roll 2d6 + 3 private:yes", &commands(), &none()).expect("parse");
        assert_eq!(name, "roll");
        assert_eq!(
            options,
            json!([{"name": "private", "type": 5, "value": true}, {"name": "expression", "type": 3, "value": "2d6 + 3"}])
        );
    }

    #[test]
    fn subcommands_nest_their_options() {
        let (_, options) = parse_command_line(
            "/init join character:\"Sir Bob\" roll:15",
            &commands(),
            &none(),
        )
        .expect("parse");
        assert_eq!(
            options,
            json!([{"name": "join", "type": 1, "options": [
                {"name": "character", "type": 3, "value": "Sir Bob"},
                {"name": "roll", "type": 4, "value": 15}
            ]}])
        );
    }

    #[test]
    fn a_missing_or_unknown_subcommand_says_which_it_takes() {
        assert_eq!(
            parse("/init").unwrap_err(),
            "`/init` needs one of: join, next"
        );
        assert_eq!(
            parse("/init jion").unwrap_err(),
            "`/init` has no `jion`; it takes one of: join, next"
        );
    }

    #[test]
    fn options_by_name_and_by_position_give_the_same_command() {
        let expected = json!([{"name": "add", "type": 1, "options": [
            {"name": "name", "type": 3, "value": "Vex"},
            {"name": "initiative-modifier", "type": 4, "value": 3}
        ]}]);
        for line in [
            "/character add name:Vex initiative-modifier:3",
            "/character add Vex 3",
            "/character add name:Vex 3",
            "/character add name: Vex initiative-modifier: 3",
        ] {
            assert_eq!(
                parse(line).expect(line),
                ("character".into(), expected.clone()),
                "{line}"
            );
        }
        // Named options keep the order they were typed in.
        let (_, options) =
            parse("/character add initiative-modifier:3 \"Sir Vex\"").expect("parse");
        assert_eq!(
            options,
            json!([{"name": "add", "type": 1, "options": [
                {"name": "initiative-modifier", "type": 4, "value": 3},
                {"name": "name", "type": 3, "value": "Sir Vex"}
            ]}])
        );
        let (_, options) =
            parse("/character add name:\"Vex \\\"the Quick\\\"\" -2").expect("parse");
        assert_eq!(options[0]["options"][0]["value"], "Vex \"the Quick\"");
        assert_eq!(options[0]["options"][1]["value"], -2);
    }

    #[test]
    fn positions_fill_optional_options_once_the_required_ones_are_given() {
        let (_, options) = parse("/init join Bob 15").expect("parse");
        assert_eq!(
            options[0]["options"],
            json!([{"name": "character", "type": 3, "value": "Bob"},
                   {"name": "roll", "type": 4, "value": 15}])
        );
        let (_, options) = parse("/roll expression:d20 yes").expect("parse");
        assert_eq!(
            options[1],
            json!({"name": "private", "type": 5, "value": true})
        );
        // The last text option takes the rest of the line; quoted words stay whole.
        let (_, options) =
            parse("/greet @alice #dice grumpy rolled a \"natural 1\"").expect("parse");
        assert_eq!(
            options,
            json!([
                {"name": "who", "type": 6, "value": "11"},
                {"name": "where", "type": 7, "value": "31"},
                {"name": "mood", "type": 3, "value": "grumpy"},
                {"name": "note", "type": 3, "value": "rolled a natural 1"}
            ])
        );
    }

    #[test]
    fn users_roles_and_channels_by_name_or_mention() {
        for who in ["alice", "@Alice", "<@11>", "<@!11>", "11"] {
            let (_, options) = parse(&format!("/greet {who}")).expect(who);
            assert_eq!(options[0]["value"], "11", "{who}");
        }
        let (_, options) = parse("/greet who:bob where:<#31> mood:Happy").expect("parse");
        assert_eq!(options[1]["value"], "31");
        assert_eq!(options[2]["value"], "happy");
        assert!(
            parse("/greet who:zed")
                .unwrap_err()
                .contains("no member called `zed`")
        );
        assert!(
            parse("/greet alice mood:sleepy")
                .unwrap_err()
                .contains("must be one of: Happy, Grumpy")
        );
    }

    #[test]
    fn quoted_words_and_links_are_values_not_names() {
        let (_, options) = parse("/roll \"a:b\"").expect("parse");
        assert_eq!(options[0]["value"], "a:b");
        let (_, options) = parse("/greet alice note:https://example.com/x").expect("parse");
        assert_eq!(options[0]["value"], "https://example.com/x");
        let (_, options) = parse("/greet alice dice happy https://example.com/x").expect("parse");
        assert_eq!(
            options[3],
            json!({"name": "note", "type": 3, "value": "https://example.com/x"})
        );
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        let c = commands();
        assert!(
            parse_command_line("ping", &c, &none())
                .unwrap_err()
                .contains("starts with `/`")
        );
        assert!(
            parse_command_line("/pong", &c, &none())
                .unwrap_err()
                .contains("available: /ping, /roll, /init")
        );
        assert!(
            parse_command_line("/roll", &c, &none())
                .unwrap_err()
                .contains("`expression` is required")
        );
        assert!(
            parse_command_line("/init", &c, &none())
                .unwrap_err()
                .contains("join, next")
        );
        assert!(
            parse_command_line("/init join roll:high", &c, &none())
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            parse_command_line("/roll \"1d6", &c, &none())
                .unwrap_err()
                .contains("closing")
        );
        assert!(
            parse_command_line("/ping now", &c, &none())
                .unwrap_err()
                .contains("not an option")
        );
    }

    #[test]
    fn unknown_options_are_named() {
        assert_eq!(
            parse("/character add nme:Vex initiative-modifier:3").unwrap_err(),
            "/character add has no option `nme`; its options are: name, initiative-modifier"
        );
        assert_eq!(
            parse("/ping loud:yes").unwrap_err(),
            "/ping has no option `loud`: it takes none"
        );
        assert_eq!(
            parse("/character add name:Vex name:Vax 3").unwrap_err(),
            "/character add: the option `name` is given twice"
        );
        assert_eq!(
            parse("/character add Vex 3 4").unwrap_err(),
            "`4` is left over: /character add takes name, initiative-modifier; write \
             name:value to fill one by name"
        );
        assert_eq!(
            parse("/character add Vex").unwrap_err(),
            "/character add: the option `initiative-modifier` is required"
        );
        assert_eq!(
            parse("/character add Vex 500").unwrap_err(),
            "option `initiative-modifier` must be between -100 and 100, not `500`"
        );
        assert_eq!(
            parse("/character add \"Sir Vex\" three").unwrap_err(),
            "option `initiative-modifier` wants a whole number, not `three`"
        );
    }

    #[test]
    fn a_subcommand_group_keeps_its_type() {
        let commands = vec![(
            "init".to_owned(),
            vec![json!({"type": 2, "name": "admin", "options": [
                {"type": 1, "name": "clear", "options": [{"type": 5, "name": "confirm"}]}
            ]})],
        )];
        let (_, options) =
            parse_command_line("/init admin clear confirm:yes", &commands, &none()).expect("parse");
        assert_eq!(
            options,
            json!([{"name": "admin", "type": 2, "options": [
                {"name": "clear", "type": 1, "options": [
                    {"name": "confirm", "type": 5, "value": true}
                ]}
            ]}])
        );
    }

    #[test]
    fn usage_lines() {
        let c = commands();
        assert_eq!(usage("roll", &c[1].1), "/roll <expression> [private]");
        assert_eq!(usage("init", &c[2].1), "/init join|next");
        assert_eq!(usage("ping", &[]), "/ping");
    }
}
