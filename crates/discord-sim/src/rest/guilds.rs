//! `/guilds/...`: guilds, their channels, roles and members.

use serde_json::{Value, json};

use super::channels::{parse_overwrites, parse_permissions};
use super::{Call, Reply, Route};
use crate::Snowflake;
use crate::error::ApiError;
use crate::model::{ChannelKind, ChannelSpec, RoleSpec};
use crate::state::{RolePatch, insert};

pub(super) fn handle(route: Route, call: Call<'_>) -> Result<Reply, ApiError> {
    let Call {
        state, ids, req, ..
    } = call;
    match route {
        Route::GetGuild(guild) => {
            let mut value = state.guild_json(guild)?;
            if req.query("with_counts") == Some("true") {
                let count = state.guild(guild)?.members.len();
                insert(&mut value, "approximate_member_count", json!(count));
                insert(&mut value, "approximate_presence_count", json!(0));
            }
            Ok(Reply::ok(value))
        }
        Route::GetGuildChannels(guild) => {
            let mut channels: Vec<&crate::model::Channel> = state
                .guild(guild)?
                .channels
                .iter()
                .filter_map(|c| state.channels.get(c))
                .map(|c| &c.channel)
                .collect();
            channels.sort_by_key(|c| (c.position, c.id));
            let rendered: Vec<Value> = channels
                .iter()
                .filter_map(|c| state.channel_json(c.id).ok())
                .collect();
            Ok(Reply::ok(Value::Array(rendered)))
        }
        Route::CreateGuildChannel(guild) => {
            state.guild(guild)?;
            let spec = parse_channel_spec(&req.body)?;
            let id = state.create_channel(ids, guild, spec)?;
            Ok(Reply::Json(201, state.channel_json(id)?))
        }
        Route::GetRoles(guild) => {
            let mut roles: Vec<&crate::model::Role> = state.guild(guild)?.roles.values().collect();
            roles.sort_by_key(|r| (r.position, r.id));
            Ok(Reply::ok(Value::Array(
                roles.into_iter().map(crate::state::role_json).collect(),
            )))
        }
        Route::CreateRole(guild) => {
            state.guild(guild)?;
            let body = &req.body;
            let spec = RoleSpec {
                name: body
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("new role")
                    .to_owned(),
                permissions: match body.get("permissions") {
                    None | Some(Value::Null) => state
                        .guild(guild)?
                        .roles
                        .get(&guild)
                        .map_or(0, |r| r.permissions),
                    value => parse_permissions(value, "permissions")?,
                },
                color: color(body),
                hoist: body.get("hoist").and_then(Value::as_bool).unwrap_or(false),
                mentionable: body
                    .get("mentionable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                unicode_emoji: body
                    .get("unicode_emoji")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            check_role_name(&spec.name)?;
            let role = state.create_role(ids, guild, spec)?;
            Ok(Reply::ok(state.role_json(guild, role)?))
        }
        Route::EditRole(guild, role) => {
            let body = &req.body;
            let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
            if let Some(name) = &name {
                check_role_name(name)?;
            }
            let patch = RolePatch {
                name,
                permissions: match body.get("permissions") {
                    None | Some(Value::Null) => None,
                    value => Some(parse_permissions(value, "permissions")?),
                },
                color: (body.get("color").is_some() || body.get("colors").is_some())
                    .then(|| color(body)),
                hoist: body.get("hoist").and_then(Value::as_bool),
                mentionable: body.get("mentionable").and_then(Value::as_bool),
                unicode_emoji: body
                    .get("unicode_emoji")
                    .map(|v| v.as_str().map(str::to_owned)),
                position: None,
            };
            state.update_role(guild, role, patch)?;
            Ok(Reply::ok(state.role_json(guild, role)?))
        }
        Route::DeleteRole(guild, role) => {
            state.delete_role(guild, role)?;
            Ok(Reply::NoContent)
        }
        Route::ListMembers(guild) => {
            let limit = req
                .query("limit")
                .map_or(Ok(1), |raw| raw.parse::<usize>())
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_form(
                        "limit",
                        "NUMBER_TYPE_MAX",
                        "Must be between 1 and 1000.",
                    )
                })?;
            let after = req
                .query("after")
                .and_then(|a| a.parse::<u64>().ok())
                .map_or(Snowflake::new(0), Snowflake::new);
            let members: Vec<Value> = state
                .guild(guild)?
                .members
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(limit)
                .filter_map(|(user, _)| state.member_json(guild, *user, true).ok())
                .collect();
            Ok(Reply::ok(Value::Array(members)))
        }
        Route::GetMember(guild, user) => {
            state.guild(guild)?;
            Ok(Reply::ok(state.member_json(guild, user, true)?))
        }
        Route::EditMember(guild, user) => {
            state.member(guild, user)?;
            let roles = match req.body.get("roles") {
                None | Some(Value::Null) => None,
                Some(value) => Some(
                    serde_json::from_value::<Vec<Snowflake>>(value.clone()).map_err(|_| {
                        ApiError::invalid_form(
                            "roles",
                            "LIST_TYPE_CONVERT",
                            "Only iterables of snowflakes",
                        )
                    })?,
                ),
            };
            let nick = req
                .body
                .get("nick")
                .map(|n| n.as_str().filter(|s| !s.is_empty()).map(str::to_owned));
            state.update_member(guild, user, roles, nick)?;
            Ok(Reply::ok(state.member_json(guild, user, true)?))
        }
        Route::RemoveMember(guild, user) => {
            state.remove_member(guild, user)?;
            Ok(Reply::NoContent)
        }
        Route::AddMemberRole(guild, user, role) => {
            state.add_member_role(guild, user, role)?;
            Ok(Reply::NoContent)
        }
        Route::RemoveMemberRole(guild, user, role) => {
            state.remove_member_role(guild, user, role)?;
            Ok(Reply::NoContent)
        }
        _ => Err(ApiError::not_found()),
    }
}

fn color(body: &Value) -> u32 {
    body.get("colors")
        .and_then(|c| c.get("primary_color"))
        .or_else(|| body.get("color"))
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0)
}

fn check_role_name(name: &str) -> Result<(), ApiError> {
    if name.chars().count() > 100 {
        return Err(ApiError::invalid_form(
            "name",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 100 or fewer in length.",
        ));
    }
    Ok(())
}

fn parse_channel_spec(body: &Value) -> Result<ChannelSpec, ApiError> {
    let name = body.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid_form("name", "BASE_TYPE_REQUIRED", "This field is required")
    })?;
    let kind = match body.get("type") {
        None | Some(Value::Null) => ChannelKind::Text,
        Some(value) => value
            .as_u64()
            .and_then(|v| u8::try_from(v).ok())
            .and_then(|v| ChannelKind::try_from(v).ok())
            .filter(|k| *k != ChannelKind::Dm)
            .ok_or_else(|| {
                ApiError::invalid_form(
                    "type",
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {0, 2, 4, 5, 13, 15}.",
                )
            })?,
    };
    let mut spec = ChannelSpec::new(name, kind);
    spec.topic = body.get("topic").and_then(Value::as_str).map(str::to_owned);
    spec.parent_id = match body.get("parent_id") {
        None | Some(Value::Null) => None,
        Some(value) => Some(serde_json::from_value(value.clone()).map_err(|_| {
            ApiError::invalid_form("parent_id", "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        })?),
    };
    spec.position = body
        .get("position")
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok());
    spec.nsfw = body.get("nsfw").and_then(Value::as_bool).unwrap_or(false);
    if let Some(overwrites) = body.get("permission_overwrites").filter(|v| !v.is_null()) {
        spec.permission_overwrites = parse_overwrites(overwrites)?;
    }
    spec.rate_limit_per_user = body
        .get("rate_limit_per_user")
        .and_then(Value::as_u64)
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(0);
    spec.bitrate = body
        .get("bitrate")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    spec.user_limit = body
        .get("user_limit")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    Ok(spec)
}
