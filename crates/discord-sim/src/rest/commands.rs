//! `/applications/{app}/[guilds/{guild}/]commands`: command registration.
//!
//! Registration is validated with Discord's rules (name and description lengths,
//! lowercase chat-input names, at most 25 options and choices, required options
//! first, 8000 characters per command, unique names) because a command Discord would
//! reject must fail in our tests too, not at deploy time.

use serde_json::{Map, Value, json};

use super::{Call, Reply, Route};
use crate::Snowflake;
use crate::error::ApiError;
use crate::model::Command;
use crate::snowflake::SnowflakeGen;
use crate::state::{Ctx, State};

pub(super) fn handle(route: Route, call: Call<'_>) -> Result<Reply, ApiError> {
    let Call {
        state,
        ctx,
        ids,
        req,
    } = call;
    match route {
        Route::GetCommands { app, guild } => {
            check_scope(state, ctx, app, guild)?;
            let list: Vec<Value> = state
                .commands
                .iter()
                .filter(|c| c.guild_id == guild)
                .map(|c| c.raw.clone())
                .collect();
            Ok(Reply::ok(Value::Array(list)))
        }
        Route::SetCommands { app, guild } => {
            check_scope(state, ctx, app, guild)?;
            let Some(items) = req.body.as_array() else {
                return Err(ApiError::invalid_form(
                    "_body",
                    "LIST_TYPE_CONVERT",
                    "Only iterables may be used in a ListType",
                ));
            };
            let mut validated = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                validated.push(validate_command(item, &index.to_string())?);
            }
            check_bulk_limits(&validated)?;
            let previous: Vec<Command> = state
                .commands
                .iter()
                .filter(|c| c.guild_id == guild)
                .cloned()
                .collect();
            state.commands.retain(|c| c.guild_id != guild);
            let mut out = Vec::with_capacity(validated.len());
            for item in validated {
                let existing = previous
                    .iter()
                    .find(|c| c.name == item.name && c.kind == item.kind)
                    .map(|c| c.id);
                let command = build_command(ctx, ids, guild, existing, item);
                out.push(command.raw.clone());
                state.commands.push(command);
            }
            Ok(Reply::ok(Value::Array(out)))
        }
        Route::CreateCommand { app, guild } => {
            check_scope(state, ctx, app, guild)?;
            let item = validate_command(&req.body, "")?;
            let existing = state
                .commands
                .iter()
                .position(|c| c.guild_id == guild && c.name == item.name && c.kind == item.kind);
            let command = build_command(
                ctx,
                ids,
                guild,
                existing.map(|i| state.commands[i].id),
                item,
            );
            let raw = command.raw.clone();
            match existing {
                Some(index) => {
                    state.commands[index] = command;
                    Ok(Reply::ok(raw))
                }
                None => {
                    let count = state
                        .commands
                        .iter()
                        .filter(|c| c.guild_id == guild && c.kind == command.kind)
                        .count();
                    if count >= max_commands(command.kind) {
                        return Err(ApiError::new(
                            400,
                            30032,
                            "Maximum number of application commands reached",
                        ));
                    }
                    state.commands.push(command);
                    Ok(Reply::Json(201, raw))
                }
            }
        }
        Route::GetCommand {
            app,
            guild,
            command,
        } => {
            check_scope(state, ctx, app, guild)?;
            state
                .commands
                .iter()
                .find(|c| c.guild_id == guild && c.id == command)
                .map(|c| Reply::ok(c.raw.clone()))
                .ok_or_else(ApiError::unknown_command)
        }
        Route::EditCommand {
            app,
            guild,
            command,
        } => {
            check_scope(state, ctx, app, guild)?;
            let index = state
                .commands
                .iter()
                .position(|c| c.guild_id == guild && c.id == command)
                .ok_or_else(ApiError::unknown_command)?;
            let mut merged = state.commands[index].raw.clone();
            if let (Some(target), Some(patch)) = (merged.as_object_mut(), req.body.as_object()) {
                for (key, value) in patch {
                    target.insert(key.clone(), value.clone());
                }
            }
            let item = validate_command(&merged, "")?;
            let updated = build_command(ctx, ids, guild, Some(command), item);
            let raw = updated.raw.clone();
            state.commands[index] = updated;
            Ok(Reply::ok(raw))
        }
        Route::DeleteCommand {
            app,
            guild,
            command,
        } => {
            check_scope(state, ctx, app, guild)?;
            let before = state.commands.len();
            state
                .commands
                .retain(|c| !(c.guild_id == guild && c.id == command));
            if state.commands.len() == before {
                return Err(ApiError::unknown_command());
            }
            Ok(Reply::NoContent)
        }
        _ => Err(ApiError::not_found()),
    }
}

fn check_scope(
    state: &State,
    ctx: &Ctx,
    app: Snowflake,
    guild: Option<Snowflake>,
) -> Result<(), ApiError> {
    if app != ctx.app_id {
        return Err(ApiError::new(403, 50001, "Missing Access"));
    }
    if let Some(guild) = guild {
        state.guild(guild)?;
    }
    Ok(())
}

fn max_commands(kind: u8) -> usize {
    match kind {
        1 => 100,
        4 => 1,
        _ => 15,
    }
}

/// A command body that passed validation.
#[derive(Debug)]
struct Validated {
    kind: u8,
    name: String,
    description: String,
    options: Vec<Value>,
    body: Map<String, Value>,
}

fn invalid(path: &str, field: &str, code: &str, message: &str) -> ApiError {
    let full = if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    };
    ApiError::invalid_form(&full, code, message)
}

/// Chat-input (and option) names: 1-32 characters, letters, digits, `-`, `_` and
/// `'`, no uppercase letters.
fn check_chat_name(name: &str, path: &str) -> Result<(), ApiError> {
    let len = name.chars().count();
    if !(1..=32).contains(&len) {
        return Err(invalid(
            path,
            "name",
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 32 in length.",
        ));
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '\''));
    if !valid_chars || name.chars().any(char::is_uppercase) {
        return Err(invalid(
            path,
            "name",
            "APPLICATION_COMMAND_INVALID_NAME",
            "Command name is invalid",
        ));
    }
    Ok(())
}

fn check_description(description: &str, path: &str) -> Result<(), ApiError> {
    if !(1..=100).contains(&description.chars().count()) {
        return Err(invalid(
            path,
            "description",
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 100 in length.",
        ));
    }
    Ok(())
}

/// An optional list of enum values (`contexts`, `integration_types`): null, or an
/// array of `allowed` numbers.
fn check_choice_list(
    body: &Map<String, Value>,
    field: &str,
    allowed: &[u64],
    path: &str,
) -> Result<(), ApiError> {
    let items = match body.get(field) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(invalid(
                path,
                field,
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ));
        }
    };
    for (i, item) in items.iter().enumerate() {
        if !item.as_u64().is_some_and(|v| allowed.contains(&v)) {
            let listed: Vec<String> = allowed.iter().map(u64::to_string).collect();
            return Err(invalid(
                path,
                &format!("{field}.{i}"),
                "BASE_TYPE_CHOICES",
                &format!("Value must be one of {{{}}}.", listed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn validate_command(item: &Value, path: &str) -> Result<Validated, ApiError> {
    let Some(body) = item.as_object() else {
        return Err(invalid(
            path,
            "_root",
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        ));
    };
    let kind = match body.get("type") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|k| u8::try_from(k).ok())
            .filter(|k| (1..=4).contains(k))
            .ok_or_else(|| {
                invalid(
                    path,
                    "type",
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {1, 2, 3, 4}.",
                )
            })?,
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(path, "name", "BASE_TYPE_REQUIRED", "This field is required"))?
        .to_owned();
    check_choice_list(body, "contexts", &[0, 1, 2], path)?;
    check_choice_list(body, "integration_types", &[0, 1], path)?;
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let options = match body.get("options") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(invalid(
                path,
                "options",
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ));
        }
    };
    if kind == 1 {
        check_chat_name(&name, path)?;
        check_description(&description, path)?;
        check_options(&options, path, 0)?;
    } else {
        if !(1..=32).contains(&name.chars().count()) {
            return Err(invalid(
                path,
                "name",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 32 in length.",
            ));
        }
        if !description.is_empty() || !options.is_empty() {
            return Err(invalid(
                path,
                "description",
                "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                "Context menu commands cannot have a description or options",
            ));
        }
    }
    let total = name.chars().count() + description.chars().count() + options_length(&options);
    if total > 8000 {
        return Err(invalid(
            path,
            "_root",
            "APPLICATION_COMMAND_TOO_LARGE",
            "Command exceeds maximum size (8000)",
        ));
    }
    Ok(Validated {
        kind,
        name,
        description,
        options,
        body: body.clone(),
    })
}

/// Characters Discord counts toward the 8000 limit: names, descriptions and choice
/// names and values, recursively.
fn options_length(options: &[Value]) -> usize {
    options
        .iter()
        .map(|o| {
            let text = |key: &str| {
                o.get(key)
                    .and_then(Value::as_str)
                    .map_or(0, |s| s.chars().count())
            };
            let choices: usize = o.get("choices").and_then(Value::as_array).map_or(0, |cs| {
                cs.iter()
                    .map(|c| {
                        let name = c
                            .get("name")
                            .and_then(Value::as_str)
                            .map_or(0, |s| s.chars().count());
                        let value = match c.get("value") {
                            Some(Value::String(s)) => s.chars().count(),
                            Some(other) => other.to_string().len(),
                            None => 0,
                        };
                        name + value
                    })
                    .sum()
            });
            let nested = o
                .get("options")
                .and_then(Value::as_array)
                .map_or(0, |os| options_length(os));
            text("name") + text("description") + choices + nested
        })
        .sum()
}

/// `depth` 0 is the command's own options, 1 inside a subcommand or group, 2 inside
/// a subcommand of a group.
fn check_options(options: &[Value], path: &str, depth: u8) -> Result<(), ApiError> {
    if options.len() > 25 {
        return Err(invalid(
            path,
            "options",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 25 or fewer in length.",
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut seen_optional = false;
    let mut has_subcommands = false;
    let mut has_values = false;
    for (index, option) in options.iter().enumerate() {
        let here = if path.is_empty() {
            format!("options.{index}")
        } else {
            format!("{path}.options.{index}")
        };
        let kind = option
            .get("type")
            .and_then(Value::as_u64)
            .filter(|k| (1..=11).contains(k))
            .ok_or_else(|| {
                invalid(
                    &here,
                    "type",
                    "BASE_TYPE_CHOICES",
                    "Value must be one of 1-11.",
                )
            })?;
        let name = option
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        check_chat_name(name, &here)?;
        let description = option
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        check_description(description, &here)?;
        if option.get("autocomplete").and_then(Value::as_bool) == Some(true) {
            let has_choices = option
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty());
            if !matches!(kind, 3 | 4 | 10) || has_choices {
                return Err(invalid(
                    &here,
                    "autocomplete",
                    "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_INVALID",
                    "Autocomplete is for string, integer and number options without choices",
                ));
            }
        }
        if !names.insert(name.to_owned()) {
            return Err(invalid(
                &here,
                "name",
                "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            ));
        }
        let nested = option
            .get("options")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match kind {
            1 | 2 => {
                has_subcommands = true;
                let allowed = if kind == 2 { depth == 0 } else { depth <= 1 };
                if !allowed {
                    return Err(invalid(
                        &here,
                        "type",
                        "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                        "Subcommands cannot be nested this deep",
                    ));
                }
                if kind == 2
                    && nested
                        .iter()
                        .any(|o| o.get("type").and_then(Value::as_u64) != Some(1))
                {
                    return Err(invalid(
                        &here,
                        "options",
                        "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                        "Subcommand groups may only contain subcommands",
                    ));
                }
                check_options(nested, &here, if kind == 2 { 1 } else { 2 })?;
            }
            _ => {
                has_values = true;
                let required = option
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if required && seen_optional {
                    return Err(invalid(
                        &here,
                        "required",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    ));
                }
                seen_optional |= !required;
                if let Some(choices) = option.get("choices").and_then(Value::as_array) {
                    if choices.len() > 25 {
                        return Err(invalid(
                            &here,
                            "choices",
                            "BASE_TYPE_MAX_LENGTH",
                            "Must be 25 or fewer in length.",
                        ));
                    }
                    for (ci, choice) in choices.iter().enumerate() {
                        let choice_name = choice
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !(1..=100).contains(&choice_name.chars().count()) {
                            return Err(invalid(
                                &format!("{here}.choices.{ci}"),
                                "name",
                                "BASE_TYPE_BAD_LENGTH",
                                "Must be between 1 and 100 in length.",
                            ));
                        }
                    }
                }
            }
        }
    }
    if has_subcommands && has_values {
        return Err(invalid(
            path,
            "options",
            "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
            "Subcommands cannot be mixed with other options",
        ));
    }
    Ok(())
}

fn check_bulk_limits(commands: &[Validated]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for (index, command) in commands.iter().enumerate() {
        if !seen.insert((command.kind, command.name.as_str())) {
            return Err(invalid(
                &index.to_string(),
                "name",
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            ));
        }
    }
    for kind in 1..=4u8 {
        if commands.iter().filter(|c| c.kind == kind).count() > max_commands(kind) {
            return Err(ApiError::new(
                400,
                30032,
                "Maximum number of application commands reached",
            ));
        }
    }
    Ok(())
}

fn build_command(
    ctx: &Ctx,
    ids: &SnowflakeGen,
    guild: Option<Snowflake>,
    existing: Option<Snowflake>,
    item: Validated,
) -> Command {
    let id = existing.unwrap_or_else(|| ids.next());
    let version = ids.next();
    let default_member_permissions = match item.body.get("default_member_permissions") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let field = |key: &str| item.body.get(key).cloned().unwrap_or(Value::Null);
    let mut raw = json!({
        "id": id,
        "application_id": ctx.app_id,
        "version": version,
        "default_member_permissions": default_member_permissions,
        "type": item.kind,
        "name": item.name,
        "name_localizations": field("name_localizations"),
        "description": item.description,
        "description_localizations": field("description_localizations"),
        "nsfw": item.body.get("nsfw").and_then(Value::as_bool).unwrap_or(false),
        "integration_types": item.body.get("integration_types").cloned().unwrap_or_else(|| json!([0])),
        "contexts": field("contexts"),
    });
    let map = crate::state::object(&mut raw);
    if !item.options.is_empty() {
        map.insert("options".into(), Value::Array(item.options.clone()));
    }
    match guild {
        Some(guild) => {
            map.insert("guild_id".into(), json!(guild));
        }
        None => {
            map.insert(
                "dm_permission".into(),
                item.body
                    .get("dm_permission")
                    .cloned()
                    .unwrap_or(json!(true)),
            );
        }
    }
    Command {
        id,
        application_id: ctx.app_id,
        guild_id: guild,
        name: item.name,
        description: item.description,
        kind: item.kind,
        options: item.options,
        default_member_permissions,
        version,
        raw,
    }
}
