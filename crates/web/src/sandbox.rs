//! The sandbox console: a web page where a person plays with Tavern without Discord.
//!
//! It talks to the in-process fake Discord (discord-sim) as a user would talk to
//! Discord: pick a channel, read its messages, type a slash command as one of the demo
//! users, press the buttons and pick from the menus on messages. The bot on the other
//! side is the production bot, unchanged.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use discord_sim::{ChannelKind, ComponentSummary, Demo, Sim, Snowflake};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone)]
struct Console {
    sim: Sim,
    demo: Demo,
}

/// How long an action waits for the bot's first answer before returning anyway.
const ANSWER_WAIT: Duration = Duration::from_millis(3500);

/// The console's routes, under `/sandbox`.
pub fn routes(sim: Sim, demo: Demo) -> Router {
    Router::new()
        .route("/sandbox", get(page))
        .route("/sandbox/api/state", get(state))
        .route("/sandbox/api/channels/{channel}/messages", get(messages))
        .route("/sandbox/api/command", post(command))
        .route("/sandbox/api/click", post(click))
        .route("/sandbox/api/select", post(select))
        .with_state(Console { sim, demo })
}

async fn page() -> Html<&'static str> {
    Html(include_str!("sandbox.html"))
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

/// A malformed id in a request: answered 400 with what was wrong.
struct BadId(String);

impl IntoResponse for BadId {
    fn into_response(self) -> Response {
        bad_request(self.0)
    }
}

fn parse_id(raw: &str, what: &str) -> Result<Snowflake, BadId> {
    raw.trim()
        .parse::<u64>()
        .map(Snowflake::new)
        .map_err(|_| BadId(format!("`{raw}` is not a {what} id")))
}

#[derive(Serialize)]
struct ChannelView {
    id: String,
    name: String,
    voice: bool,
}

#[derive(Serialize)]
struct UserView {
    id: String,
    name: String,
}

async fn state(State(console): State<Console>) -> Json<Value> {
    let guild = console.sim.guild(console.demo.guild);
    let channels: Vec<ChannelView> = console
        .sim
        .channels(console.demo.guild)
        .into_iter()
        .filter(|c| matches!(c.kind, ChannelKind::Text | ChannelKind::Voice))
        .map(|c| ChannelView {
            id: c.id.get().to_string(),
            name: c.name,
            voice: c.kind == ChannelKind::Voice,
        })
        .collect();
    let users: Vec<UserView> = [
        console.demo.demo_player,
        console.demo.alice,
        console.demo.bob,
        console.demo.carol,
    ]
    .into_iter()
    .filter_map(|id| console.sim.user(id))
    .map(|u| UserView {
        id: u.id.get().to_string(),
        name: u.global_name.unwrap_or(u.name),
    })
    .collect();
    let commands: Vec<Value> = console
        .sim
        .registered_commands()
        .into_iter()
        .map(|c| json!({ "name": c.name, "description": c.description, "usage": usage(&c.name, &c.options) }))
        .collect();
    Json(json!({
        "guild": guild.map(|g| g.name).unwrap_or_default(),
        "default_channel": console.demo.dice.get().to_string(),
        "channels": channels,
        "users": users,
        "commands": commands,
    }))
}

/// A one-line usage hint, e.g. `/init join [character] [roll]`.
fn usage(name: &str, options: &[Value]) -> String {
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

#[derive(Deserialize)]
struct AsUser {
    user: Option<String>,
}

#[derive(Serialize)]
struct MessageView {
    id: String,
    author: String,
    bot: bool,
    content: String,
    edited: bool,
    private: bool,
    components: Vec<ComponentView>,
}

#[derive(Serialize)]
struct ComponentView {
    kind: &'static str,
    custom_id: String,
    label: String,
    style: u8,
    disabled: bool,
    options: Vec<(String, String)>,
}

fn component_view(c: ComponentSummary) -> Option<ComponentView> {
    let kind = match c.kind {
        2 => "button",
        3 => "select",
        _ => return None,
    };
    Some(ComponentView {
        kind,
        custom_id: c.custom_id?,
        label: c.label.or(c.placeholder).unwrap_or_default(),
        style: c.style.unwrap_or(2),
        disabled: c.disabled,
        options: c.options,
    })
}

async fn messages(
    State(console): State<Console>,
    Path(channel): Path<String>,
    Query(query): Query<AsUser>,
) -> Response {
    let channel = match parse_id(&channel, "channel") {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let viewer = match query
        .user
        .as_deref()
        .map(|u| parse_id(u, "user"))
        .transpose()
    {
        Ok(v) => v.unwrap_or(console.demo.demo_player),
        Err(r) => return r.into_response(),
    };
    if console.sim.channel(channel).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such channel"})),
        )
            .into_response();
    }
    let list: Vec<MessageView> = console
        .sim
        .messages(channel)
        .into_iter()
        .filter(|m| m.visible_to.is_none_or(|v| v == viewer))
        .map(|m| {
            let author = console.sim.user(m.author_id);
            MessageView {
                id: m.id.get().to_string(),
                author: author
                    .as_ref()
                    .map(|u| u.global_name.clone().unwrap_or_else(|| u.name.clone()))
                    .unwrap_or_else(|| "unknown".into()),
                bot: author.map(|u| u.bot).unwrap_or(false),
                content: m.content,
                edited: m.edited_timestamp.is_some(),
                private: m.visible_to.is_some(),
                components: ComponentSummary::flatten(&m.components)
                    .into_iter()
                    .filter_map(component_view)
                    .collect(),
            }
        })
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize)]
struct CommandBody {
    channel: String,
    user: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct ClickBody {
    channel: String,
    user: Option<String>,
    message: String,
    custom_id: String,
    #[serde(default)]
    values: Vec<String>,
}

fn actor(console: &Console, user: Option<&str>) -> Result<Snowflake, BadId> {
    match user {
        Some(u) => parse_id(u, "user"),
        None => Ok(console.demo.demo_player),
    }
}

async fn answered(interaction: discord_sim::Interaction) -> Response {
    match interaction.response(ANSWER_WAIT).await {
        Ok(reply) => {
            Json(json!({ "ok": true, "callback_type": reply.callback_type })).into_response()
        }
        Err(e) => {
            Json(json!({ "ok": false, "error": format!("the bot has not answered yet: {e}") }))
                .into_response()
        }
    }
}

async fn command(State(console): State<Console>, Json(body): Json<CommandBody>) -> Response {
    let (channel, user) = match (
        parse_id(&body.channel, "channel"),
        actor(&console, body.user.as_deref()),
    ) {
        (Ok(c), Ok(u)) => (c, u),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let commands: Vec<(String, Vec<Value>)> = console
        .sim
        .registered_commands()
        .into_iter()
        .map(|c| (c.name, c.options))
        .collect();
    let users: Vec<(String, u64)> = console
        .sim
        .members(console.demo.guild)
        .into_iter()
        .filter_map(|m| console.sim.user(m.user_id))
        .map(|u| (u.name.to_lowercase(), u.id.get()))
        .collect();
    let (name, options) = match parse_command_line(&body.text, &commands, &users) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    match console.sim.run_command(user, channel, &name, options) {
        Ok(interaction) => answered(interaction).await,
        Err(e) => bad_request(e.to_string()),
    }
}

async fn click(State(console): State<Console>, Json(body): Json<ClickBody>) -> Response {
    component(console, body, false).await
}

async fn select(State(console): State<Console>, Json(body): Json<ClickBody>) -> Response {
    component(console, body, true).await
}

async fn component(console: Console, body: ClickBody, is_select: bool) -> Response {
    let ids = (
        parse_id(&body.channel, "channel"),
        parse_id(&body.message, "message"),
        actor(&console, body.user.as_deref()),
    );
    let (channel, message, user) = match ids {
        (Ok(c), Ok(m), Ok(u)) => (c, m, u),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r.into_response(),
    };
    let result = if is_select {
        console
            .sim
            .select(user, channel, message, &body.custom_id, body.values)
    } else {
        console
            .sim
            .click_button(user, channel, message, &body.custom_id)
    };
    match result {
        Ok(interaction) => answered(interaction).await,
        Err(e) => bad_request(e.to_string()),
    }
}

/// Splits a line into words; `"double quotes"` keep spaces together.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut has_word = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                has_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has_word {
                    out.push(std::mem::take(&mut current));
                    has_word = false;
                }
            }
            c => {
                current.push(c);
                has_word = true;
            }
        }
    }
    if quoted {
        return Err("a closing `\"` is missing".into());
    }
    if has_word {
        out.push(current);
    }
    Ok(out)
}

fn typed_value(option: &Value, raw: &str, users: &[(String, u64)]) -> Result<Value, String> {
    let name = option["name"].as_str().unwrap_or("?");
    match option["type"].as_u64() {
        Some(4) => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("option `{name}` wants a whole number, not `{raw}`")),
        Some(10) => raw
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| format!("option `{name}` wants a number, not `{raw}`")),
        Some(5) => match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "off" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("option `{name}` wants true or false, not `{raw}`")),
        },
        Some(6) => {
            let wanted = raw.trim_start_matches('@').to_lowercase();
            if let Ok(id) = wanted.parse::<u64>() {
                return Ok(Value::String(id.to_string()));
            }
            users
                .iter()
                .find(|(n, _)| *n == wanted)
                .map(|(_, id)| Value::String(id.to_string()))
                .ok_or_else(|| format!("option `{name}`: no member called `{raw}`"))
        }
        _ => Ok(Value::String(raw.to_owned())),
    }
}

/// Turns `/init join character:Bob roll:15` into the command name and Discord-shaped
/// options, using the registered command's option list. Words without `name:` fill the
/// first text option (so `/roll 2d6 + 3` works).
pub fn parse_command_line(
    line: &str,
    commands: &[(String, Vec<Value>)],
    users: &[(String, u64)],
) -> Result<(String, Value), String> {
    let line = line.trim();
    let Some(rest) = line.strip_prefix('/') else {
        return Err("a command starts with `/`, e.g. `/ping`".into());
    };
    let mut tokens = words(rest)?.into_iter().peekable();
    let name = tokens
        .next()
        .ok_or("type a command name after `/`")?
        .to_lowercase();
    let Some((_, mut options)) = commands.iter().find(|(n, _)| *n == name).cloned() else {
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
        let names: Vec<&str> = subs.iter().filter_map(|o| o["name"].as_str()).collect();
        let next = tokens.next().map(|t| t.to_lowercase());
        let Some(sub) = next
            .as_deref()
            .and_then(|t| subs.iter().find(|o| o["name"].as_str() == Some(t)))
        else {
            return Err(format!(
                "`/{name} {}` needs one of: {}",
                path.join(" "),
                names.join(", ")
            )
            .replace("  ", " "));
        };
        path.push(sub["name"].as_str().unwrap_or_default().to_owned());
        options = sub["options"].as_array().cloned().unwrap_or_default();
    }
    let mut given: Vec<(String, Value)> = Vec::new();
    let mut loose: Vec<String> = Vec::new();
    for token in tokens {
        let named = token
            .split_once(':')
            .filter(|(k, _)| options.iter().any(|o| o["name"].as_str() == Some(k)));
        match named {
            Some((key, value)) => {
                let option = options
                    .iter()
                    .find(|o| o["name"].as_str() == Some(key))
                    .cloned()
                    .unwrap_or_default();
                given.push((key.to_owned(), typed_value(&option, value, users)?));
            }
            None => loose.push(token),
        }
    }
    if !loose.is_empty() {
        let target = options
            .iter()
            .filter(|o| o["type"].as_u64() == Some(3))
            .find(|o| {
                !given
                    .iter()
                    .any(|(k, _)| Some(k.as_str()) == o["name"].as_str())
            });
        match target {
            Some(option) => {
                let key = option["name"].as_str().unwrap_or_default().to_owned();
                given.push((key, Value::String(loose.join(" "))));
            }
            None => {
                return Err(format!(
                    "`{}` is not an option of /{name}; write name:value",
                    loose.join(" ")
                ));
            }
        }
    }
    for option in &options {
        let key = option["name"].as_str().unwrap_or_default();
        if option["required"].as_bool() == Some(true) && !given.iter().any(|(k, _)| k == key) {
            return Err(format!("/{name}: the option `{key}` is required"));
        }
    }
    let mut leaf: Vec<Value> = given
        .into_iter()
        .map(|(key, value)| {
            let kind = options
                .iter()
                .find(|o| o["name"].as_str() == Some(key.as_str()))
                .and_then(|o| o["type"].as_u64())
                .unwrap_or(3);
            json!({ "name": key, "type": kind, "value": value })
        })
        .collect();
    for sub in path.iter().rev() {
        leaf = vec![json!({ "name": sub, "type": 1, "options": leaf })];
    }
    Ok((name, Value::Array(leaf)))
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
        ]
    }

    #[test]
    fn loose_words_fill_the_first_text_option() {
        let (name, options) =
            parse_command_line("/roll 2d6 + 3 private:yes", &commands(), &[]).expect("parse");
        assert_eq!(name, "roll");
        assert_eq!(
            options,
            json!([{"name": "private", "type": 5, "value": true}, {"name": "expression", "type": 3, "value": "2d6 + 3"}])
        );
    }

    #[test]
    fn subcommands_nest_their_options() {
        let (_, options) =
            parse_command_line("/init join character:\"Sir Bob\" roll:15", &commands(), &[])
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
    fn mistakes_say_what_is_wrong() {
        let c = commands();
        assert!(
            parse_command_line("ping", &c, &[])
                .unwrap_err()
                .contains("starts with `/`")
        );
        assert!(
            parse_command_line("/pong", &c, &[])
                .unwrap_err()
                .contains("available: /ping, /roll, /init")
        );
        assert!(
            parse_command_line("/roll", &c, &[])
                .unwrap_err()
                .contains("`expression` is required")
        );
        assert!(
            parse_command_line("/init", &c, &[])
                .unwrap_err()
                .contains("join, next")
        );
        assert!(
            parse_command_line("/init join roll:high", &c, &[])
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            parse_command_line("/roll \"1d6", &c, &[])
                .unwrap_err()
                .contains("closing")
        );
        assert!(
            parse_command_line("/ping now", &c, &[])
                .unwrap_err()
                .contains("not an option")
        );
    }
}
