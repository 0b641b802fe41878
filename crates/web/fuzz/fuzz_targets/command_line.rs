//! Fuzzes the sandbox console's command line (`web::sandbox::parse_command_line`)
//! against a fixed set of command specs that uses every option type, choices,
//! bounds, lengths, subcommands and a subcommand group.
//!
//! Properties, besides "never panics":
//! - What parses is valid for the spec: a known command, the declared
//!   subcommand path, only declared options, none twice, every required one,
//!   each with the declared type and a value of that type inside its bounds,
//!   lengths and choices.
//! - What parses round-trips: written back as `/name sub name:"value" ...`
//!   it parses to the same command and options.
//! - A refusal is a sentence: not empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use web::sandbox::{Directory, parse_command_line};

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
            "character".into(),
            vec![
                json!({"type": 1, "name": "add", "options": [
                    {"type": 3, "name": "name", "required": true, "min_length": 1, "max_length": 32},
                    {"type": 4, "name": "initiative-modifier", "required": true, "min_value": -20, "max_value": 20},
                    {"type": 10, "name": "weight", "min_value": 0.5, "max_value": 1000.0},
                ]}),
                json!({"type": 1, "name": "remove", "options": [
                    {"type": 3, "name": "name", "required": true},
                ]}),
            ],
        ),
        (
            "init".into(),
            vec![
                json!({"type": 1, "name": "join", "options": [
                    {"type": 3, "name": "character", "required": true},
                    {"type": 4, "name": "roll"},
                ]}),
                json!({"type": 1, "name": "next"}),
                json!({"type": 2, "name": "admin", "options": [
                    {"type": 1, "name": "clear", "options": [
                        {"type": 7, "name": "channel"},
                        {"type": 5, "name": "confirm", "required": true},
                    ]},
                ]}),
            ],
        ),
        (
            "greet".into(),
            vec![
                json!({"type": 6, "name": "who", "required": true}),
                json!({"type": 7, "name": "where"}),
                json!({"type": 3, "name": "mood", "choices": [
                    {"name": "Happy", "value": "happy"},
                    {"name": "Grumpy", "value": "grumpy"},
                ]}),
                json!({"type": 4, "name": "times", "choices": [
                    {"name": "once", "value": 1},
                    {"name": "twice", "value": 2},
                ]}),
                json!({"type": 8, "name": "role"}),
                json!({"type": 9, "name": "anyone"}),
                json!({"type": 11, "name": "picture"}),
                json!({"type": 3, "name": "note"}),
            ],
        ),
    ]
}

fn directory() -> Directory {
    Directory {
        users: vec![("alice".into(), 11), ("bob".into(), 12)],
        roles: vec![("players".into(), 21)],
        channels: vec![("dice".into(), 31)],
    }
}

fn name(option: &Value) -> &str {
    option["name"].as_str().unwrap_or_default()
}

/// Checks the options of one level against its spec; returns the path of
/// subcommands followed and the leaf options.
fn check_level<'a>(spec: &[Value], given: &'a [Value], path: &mut Vec<String>) -> &'a [Value] {
    let subs: Vec<&Value> = spec
        .iter()
        .filter(|o| matches!(o["type"].as_u64(), Some(1 | 2)))
        .collect();
    if !subs.is_empty() {
        let [only] = given else {
            panic!("a command with subcommands gives one, not {given:?}");
        };
        let sub = subs
            .iter()
            .find(|s| name(s) == name(only))
            .unwrap_or_else(|| panic!("undeclared subcommand {only}"));
        assert_eq!(
            only["type"],
            sub["type"],
            "type of subcommand {}",
            name(sub)
        );
        path.push(name(sub).to_owned());
        let inner = only["options"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let declared = sub["options"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        return check_level(declared, inner, path);
    }
    for (i, option) in given.iter().enumerate() {
        let key = name(option);
        assert!(
            !given[..i].iter().any(|o| name(o) == key),
            "option {key} given twice"
        );
        let declared = spec
            .iter()
            .find(|o| name(o) == key)
            .unwrap_or_else(|| panic!("undeclared option {key}"));
        assert_eq!(option["type"], declared["type"], "type of {key}");
        check_value(declared, &option["value"]);
    }
    for declared in spec {
        if declared["required"].as_bool() == Some(true) {
            assert!(
                given.iter().any(|o| name(o) == name(declared)),
                "required option {} missing",
                name(declared)
            );
        }
    }
    given
}

fn check_value(declared: &Value, value: &Value) {
    let key = name(declared);
    if let Some(choices) = declared["choices"].as_array() {
        assert!(
            choices.iter().any(|c| c["value"] == *value),
            "{key} = {value} is not a choice"
        );
        return;
    }
    let f = |field: &str| declared[field].as_f64();
    let in_bounds =
        |x: f64| f("min_value").is_none_or(|m| x >= m) && f("max_value").is_none_or(|m| x <= m);
    match declared["type"].as_u64() {
        Some(4) => {
            let n = value
                .as_i64()
                .unwrap_or_else(|| panic!("{key} = {value} is no integer"));
            #[allow(clippy::cast_precision_loss)]
            let x = n as f64;
            assert!(in_bounds(x), "{key} = {n} out of bounds");
        }
        Some(10) => {
            let x = value
                .as_f64()
                .unwrap_or_else(|| panic!("{key} = {value} is no number"));
            assert!(x.is_finite() && in_bounds(x), "{key} = {x} out of bounds");
        }
        Some(5) => assert!(value.is_boolean(), "{key} = {value} is no boolean"),
        Some(6 | 7 | 8 | 9) => {
            let id = value
                .as_str()
                .unwrap_or_else(|| panic!("{key} = {value} is no id"));
            assert!(id.parse::<u64>().is_ok(), "{key} = {id:?} is no id");
        }
        Some(11) => panic!("{key}: a file option cannot be filled"),
        _ => {
            let text = value
                .as_str()
                .unwrap_or_else(|| panic!("{key} = {value} is no text"));
            let chars = text.chars().count() as u64;
            let min = declared["min_length"].as_u64().unwrap_or(0);
            let max = declared["max_length"].as_u64().unwrap_or(u64::MAX);
            assert!((min..=max).contains(&chars), "{key} has {chars} characters");
        }
    }
}

/// `"text"` with `"` and `\` escaped, as the console reads it.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn render(command: &str, path: &[String], leaf: &[Value]) -> String {
    let mut words = vec![format!("/{command}")];
    words.extend(path.iter().cloned());
    for option in leaf {
        let value = match &option["value"] {
            Value::String(s) => quoted(s),
            other => other.to_string(),
        };
        words.push(format!("{}:{value}", name(option)));
    }
    words.join(" ")
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let commands = commands();
    let directory = directory();
    match parse_command_line(&line, &commands, &directory) {
        Ok((command, options)) => {
            let spec = commands
                .iter()
                .find(|(n, _)| *n == command)
                .map(|(_, o)| o.as_slice())
                .unwrap_or_else(|| panic!("unknown command {command} accepted from {line:?}"));
            let given = options
                .as_array()
                .unwrap_or_else(|| panic!("options are not a list: {options}"));
            let mut path = Vec::new();
            let leaf = check_level(spec, given, &mut path);
            let again = render(&command, &path, leaf);
            assert_eq!(
                parse_command_line(&again, &commands, &directory),
                Ok((command, options.clone())),
                "{line:?} -> {again:?} does not round-trip"
            );
        }
        Err(message) => assert!(!message.trim().is_empty(), "an empty refusal for {line:?}"),
    }
});
