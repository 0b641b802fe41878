//! `/channels/...`: channels, permission overwrites and messages.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{Call, Reply, Request, Route, Upload};
use crate::Snowflake;
use crate::error::ApiError;
use crate::model::{
    Attachment, MessageReference, OverwriteKind, PermissionOverwrite, message_flags,
};
use crate::snowflake::SnowflakeGen;
use crate::state::{ChannelPatch, Ctx, MessageEdit, NewMessage, State};

pub(super) fn handle(route: Route, call: Call<'_>) -> Result<Reply, ApiError> {
    let Call {
        state,
        ctx,
        ids,
        req,
    } = call;
    match route {
        Route::GetChannel(channel) => Ok(Reply::ok(state.channel_json(channel)?)),
        Route::EditChannel(channel) => {
            state.channel(channel)?;
            let patch = parse_channel_patch(&req.body)?;
            state.update_channel(channel, patch)?;
            Ok(Reply::ok(state.channel_json(channel)?))
        }
        Route::DeleteChannel(channel) => Ok(Reply::ok(state.delete_channel(channel)?)),
        Route::SetPermission(channel, target) => {
            let kind = match req.body.get("type") {
                Some(kind) => parse_overwrite_kind(kind)?,
                None => {
                    return Err(ApiError::invalid_form(
                        "type",
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    ));
                }
            };
            let overwrite = PermissionOverwrite {
                id: target,
                kind,
                allow: parse_permissions(req.body.get("allow"), "allow")?,
                deny: parse_permissions(req.body.get("deny"), "deny")?,
            };
            let c = &mut state.channel_mut(channel)?.channel;
            if c.guild_id.is_none() {
                return Err(ApiError::new(
                    400,
                    50024,
                    "Cannot execute action on this channel type",
                ));
            }
            match c.permission_overwrites.iter_mut().find(|o| o.id == target) {
                Some(existing) => *existing = overwrite,
                None => c.permission_overwrites.push(overwrite),
            }
            state.announce_channel_update(channel)?;
            Ok(Reply::NoContent)
        }
        Route::DeletePermission(channel, target) => {
            let c = &mut state.channel_mut(channel)?.channel;
            c.permission_overwrites.retain(|o| o.id != target);
            state.announce_channel_update(channel)?;
            Ok(Reply::NoContent)
        }
        Route::Typing(channel) => {
            state.channel(channel)?;
            Ok(Reply::NoContent)
        }
        Route::GetMessages(channel) => list_messages(state, channel, &req),
        Route::GetMessage(channel, message) => {
            let m = state.message(channel, message)?;
            if m.is_ephemeral() {
                return Err(ApiError::unknown_message());
            }
            Ok(Reply::ok(state.message_json(m, false)))
        }
        Route::CreateMessage(channel) => {
            let c = &state.channel(channel)?.channel;
            let guild = c.guild_id;
            let body = MessageBody::parse(&req.body)?;
            // `enforce_nonce`: the same author's earlier message with this nonce is
            // returned instead of a second one.
            if body.enforce_nonce
                && let Some(nonce) = &body.nonce
                && let Some((first_channel, first)) = state.message_by_nonce(ctx.bot_id, nonce)
                && let Ok(m) = state.message(first_channel, first)
            {
                return Ok(Reply::ok(state.message_json(m, false)));
            }
            let nonce = body.nonce.clone();
            let reference = body.reference(state, channel, guild)?;
            let attachments = store_uploads(state, ctx, ids, channel, &req.files);
            let new = NewMessage {
                channel_id: channel,
                author_id: ctx.bot_id,
                content: body.content.unwrap_or_default(),
                embeds: body.embeds.unwrap_or_default(),
                components: body.components.unwrap_or_default(),
                attachments,
                flags: body.flags.unwrap_or(0)
                    & (message_flags::SUPPRESS_EMBEDS
                        | message_flags::SUPPRESS_NOTIFICATIONS
                        | message_flags::IS_COMPONENTS_V2),
                kind: if reference.is_some() { 19 } else { 0 },
                tts: body.tts,
                message_reference: reference,
                allowed_mentions: body.allowed_mentions,
                nonce: nonce.clone(),
                ..NewMessage::default()
            };
            if new.content.is_empty()
                && new.embeds.is_empty()
                && new.components.is_empty()
                && new.attachments.is_empty()
            {
                return Err(ApiError::empty_message());
            }
            let id = state.create_message(ids, new)?;
            if let Some(nonce) = nonce {
                state.remember_nonce(ctx.bot_id, nonce, channel, id);
            }
            let m = state.message(channel, id)?;
            Ok(Reply::ok(state.message_json(m, false)))
        }
        Route::EditMessage(channel, message) => {
            let m = state.message(channel, message)?;
            if m.author_id != ctx.bot_id {
                return Err(ApiError::not_author());
            }
            let (existing, old_flags) = (m.attachments.clone(), m.flags);
            let body = MessageBody::parse(&req.body)?;
            let edit = body.into_edit(
                state, ctx, ids, channel, existing, old_flags, &req.files, true,
            );
            state.edit_message(channel, message, edit)?;
            let m = state.message(channel, message)?;
            Ok(Reply::ok(state.message_json(m, false)))
        }
        Route::DeleteMessage(channel, message) => {
            state.delete_message(channel, message)?;
            Ok(Reply::NoContent)
        }
        Route::BulkDeleteMessages(channel) => bulk_delete(state, channel, &req),
        _ => Err(ApiError::not_found()),
    }
}

/// `GET /channels/{id}/messages`: newest first, `limit` 1-100 (default 50), at most
/// one of `before`, `after`, `around`. Ephemeral messages are never listed.
fn list_messages(state: &State, channel: Snowflake, req: &Request) -> Result<Reply, ApiError> {
    let limit = match req.query("limit") {
        None => 50,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_form(
                    "limit",
                    "NUMBER_TYPE_MAX",
                    "Must be between 1 and 100.",
                ));
            }
        },
    };
    let anchor = |key: &str| -> Result<Option<Snowflake>, ApiError> {
        req.query(key)
            .map(|raw| {
                raw.parse::<u64>().map(Snowflake::new).map_err(|_| {
                    ApiError::invalid_form(
                        key,
                        "NUMBER_TYPE_COERCE",
                        format!("Value \"{raw}\" is not snowflake."),
                    )
                })
            })
            .transpose()
    };
    let (before, after, around) = (anchor("before")?, anchor("after")?, anchor("around")?);
    let messages = &state.channel(channel)?.messages;
    let visible = |m: &&crate::model::Message| !m.is_ephemeral();
    let mut picked: Vec<&crate::model::Message> = if let Some(around) = around {
        let older_count = limit.div_ceil(2);
        let mut older: Vec<_> = messages
            .range(..=around)
            .rev()
            .map(|(_, m)| m)
            .filter(visible)
            .take(older_count)
            .collect();
        let newer: Vec<_> = messages
            .range((
                std::ops::Bound::Excluded(around),
                std::ops::Bound::Unbounded,
            ))
            .map(|(_, m)| m)
            .filter(visible)
            .take(limit - older.len().min(limit))
            .collect();
        older.extend(newer);
        older
    } else if let Some(after) = after {
        // The `limit` messages right after the anchor, returned newest first.
        messages
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .map(|(_, m)| m)
            .filter(visible)
            .take(limit)
            .collect()
    } else {
        let upper = before.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        messages
            .range((std::ops::Bound::Unbounded, upper))
            .rev()
            .map(|(_, m)| m)
            .filter(visible)
            .take(limit)
            .collect()
    };
    picked.sort_by_key(|m| std::cmp::Reverse(m.id));
    Ok(Reply::Raw(200, state.message_list_json(&picked)))
}

/// How old a message may be for bulk deletion (Discord: two weeks).
const BULK_DELETE_MAX_AGE_MS: u64 = 14 * 24 * 3600 * 1000;

/// `POST /channels/{id}/messages/bulk-delete` `{"messages": [ids]}`, validated as
/// Discord does: 2-100 ids, no duplicates, none older than two weeks. Ids of
/// messages that do not exist count towards the limits and are skipped.
fn bulk_delete(state: &mut State, channel: Snowflake, req: &Request) -> Result<Reply, ApiError> {
    state.channel(channel)?;
    let Some(items) = req.body.get("messages").and_then(Value::as_array) else {
        return Err(ApiError::invalid_form(
            "messages",
            "BASE_TYPE_REQUIRED",
            "This field is required",
        ));
    };
    if !(2..=100).contains(&items.len()) {
        return Err(ApiError::invalid_form(
            "messages",
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 2 and 100 in length.",
        ));
    }
    let mut ids = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let id: Snowflake = serde_json::from_value(item.clone()).map_err(|_| {
            ApiError::invalid_form(
                &format!("messages.{index}"),
                "NUMBER_TYPE_COERCE",
                "Value is not snowflake.",
            )
        })?;
        if ids.contains(&id) {
            return Err(ApiError::invalid_form(
                &format!("messages.{index}"),
                "BASE_TYPE_DUPLICATE",
                "Duplicate message ids are not allowed.",
            ));
        }
        ids.push(id);
    }
    let oldest_allowed = crate::snowflake::now_unix_ms().saturating_sub(BULK_DELETE_MAX_AGE_MS);
    if ids.iter().any(|id| id.timestamp_ms() < oldest_allowed) {
        return Err(ApiError::new(
            400,
            50034,
            "You can only bulk delete messages that are under 14 days old.",
        ));
    }
    state.bulk_delete(channel, &ids)?;
    Ok(Reply::NoContent)
}

/// Turns uploaded files into attachments served by the sim.
pub(super) fn store_uploads(
    state: &mut State,
    ctx: &Ctx,
    ids: &SnowflakeGen,
    channel: Snowflake,
    files: &[Upload],
) -> Vec<Attachment> {
    files
        .iter()
        .map(|file| {
            let id = ids.next();
            let url = format!(
                "{}/attachments/{channel}/{id}/{}",
                ctx.http_url(),
                file.filename
            );
            state
                .attachment_data
                .insert(id, std::sync::Arc::from(file.data.as_slice()));
            Attachment {
                id,
                filename: file.filename.clone(),
                content_type: file.content_type.clone(),
                size: file.data.len() as u64,
                proxy_url: url.clone(),
                url,
                width: None,
                height: None,
                duration_secs: None,
                description: None,
            }
        })
        .collect()
}

/// The message fields shared by channel messages, interaction responses and
/// webhook edits. Absent keys are `None`; `null` clears.
#[derive(Debug, Default)]
pub(super) struct MessageBody {
    pub content: Option<String>,
    pub embeds: Option<Vec<Value>>,
    pub components: Option<Vec<Value>>,
    pub flags: Option<u64>,
    pub tts: bool,
    pub message_reference: Option<Value>,
    /// `attachments` listed in the body (ids of attachments to keep on edit).
    pub keep_attachments: Option<Vec<Snowflake>>,
    /// `allowed_mentions` as sent, checked (`None`: absent or `null`).
    pub allowed_mentions: Option<Value>,
    /// `nonce` (a string or an integer), as text.
    pub nonce: Option<String>,
    pub enforce_nonce: bool,
}

impl MessageBody {
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        if body.is_null() {
            return Ok(Self::default());
        }
        if !body.is_object() {
            return Err(ApiError::invalid_form(
                "_body",
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ));
        }
        let content = match body.get("content") {
            None => None,
            Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) => {
                if s.chars().count() > 2000 {
                    return Err(ApiError::invalid_form(
                        "content",
                        "BASE_TYPE_MAX_LENGTH",
                        "Must be 2000 or fewer in length.",
                    ));
                }
                Some(s.clone())
            }
            Some(_) => {
                return Err(ApiError::invalid_form(
                    "content",
                    "STRING_TYPE_CONVERT",
                    "Could not interpret value as string.",
                ));
            }
        };
        let array = |key: &str| -> Result<Option<Vec<Value>>, ApiError> {
            match body.get(key) {
                None => Ok(None),
                Some(Value::Null) => Ok(Some(Vec::new())),
                Some(Value::Array(items)) => Ok(Some(items.clone())),
                Some(_) => Err(ApiError::invalid_form(
                    key,
                    "LIST_TYPE_CONVERT",
                    "Only iterables may be used in a ListType",
                )),
            }
        };
        let embeds = array("embeds")?;
        if embeds.as_ref().is_some_and(|e| e.len() > 10) {
            return Err(ApiError::invalid_form(
                "embeds",
                "BASE_TYPE_MAX_LENGTH",
                "Must be 10 or fewer in length.",
            ));
        }
        if let Some(bad) = embeds.iter().flatten().position(|e| !e.is_object()) {
            return Err(ApiError::invalid_form(
                &format!("embeds.{bad}"),
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ));
        }
        let flags = match body.get("flags") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ApiError::invalid_form("flags", "NUMBER_TYPE_COERCE", "Value is not int.")
            })?),
        };
        let components = array("components")?;
        if let Some(components) = &components {
            validate_components(components, flags.unwrap_or(0))?;
        }
        let keep_attachments = array("attachments")?.map(|items| {
            items
                .iter()
                .filter_map(|a| a.get("id").cloned())
                .filter_map(|id| serde_json::from_value(id).ok())
                .collect()
        });
        let allowed_mentions = match body.get("allowed_mentions") {
            None | Some(Value::Null) => None,
            Some(allowed) => Some(check_allowed_mentions(allowed)?),
        };
        let nonce = match body.get("nonce") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= 25 => Some(s.clone()),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
            Some(_) => {
                return Err(ApiError::invalid_form(
                    "nonce",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be an integer or a string of 25 or fewer characters.",
                ));
            }
        };
        Ok(Self {
            allowed_mentions,
            nonce,
            enforce_nonce: body
                .get("enforce_nonce")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            content,
            embeds,
            components,
            flags,
            tts: body.get("tts").and_then(Value::as_bool).unwrap_or(false),
            message_reference: body
                .get("message_reference")
                .filter(|r| !r.is_null())
                .cloned(),
            keep_attachments,
        })
    }

    /// Resolves `message_reference` of a reply, checking the target exists unless
    /// `fail_if_not_exists` is false.
    pub fn reference(
        &self,
        state: &State,
        channel: Snowflake,
        guild: Option<Snowflake>,
    ) -> Result<Option<MessageReference>, ApiError> {
        let Some(reference) = &self.message_reference else {
            return Ok(None);
        };
        let field = |key: &str| -> Option<Snowflake> {
            reference
                .get(key)
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
        };
        let target_channel = field("channel_id").unwrap_or(channel);
        let message_id = field("message_id");
        let must_exist = reference
            .get("fail_if_not_exists")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let exists = message_id.is_some_and(|id| state.message(target_channel, id).is_ok());
        if !exists {
            if must_exist {
                return Err(ApiError::invalid_form(
                    "message_reference",
                    "REPLIES_UNKNOWN_MESSAGE",
                    "Unknown message",
                ));
            }
            return Ok(None);
        }
        Ok(Some(MessageReference {
            message_id,
            channel_id: target_channel,
            guild_id: guild,
        }))
    }

    /// Turns the body into an edit of a message with `existing` attachments.
    #[allow(clippy::too_many_arguments)]
    pub fn into_edit(
        self,
        state: &mut State,
        ctx: &Ctx,
        ids: &SnowflakeGen,
        channel: Snowflake,
        existing: Vec<Attachment>,
        old_flags: u64,
        files: &[Upload],
        mark_edited: bool,
    ) -> MessageEdit {
        // Only these flags can be changed by an edit; ephemeral, loading etc. are
        // fixed when the message is created.
        const EDITABLE: u64 = message_flags::SUPPRESS_EMBEDS | message_flags::IS_COMPONENTS_V2;
        let flags = self
            .flags
            .map(|requested| (old_flags & !EDITABLE) | (requested & EDITABLE));
        let attachments = if self.keep_attachments.is_some() || !files.is_empty() {
            let keep = self
                .keep_attachments
                .unwrap_or_else(|| existing.iter().map(|a| a.id).collect());
            let mut kept: Vec<Attachment> = existing
                .into_iter()
                .filter(|a| keep.contains(&a.id))
                .collect();
            kept.extend(store_uploads(state, ctx, ids, channel, files));
            Some(kept)
        } else {
            None
        };
        MessageEdit {
            content: self.content,
            embeds: self.embeds,
            components: self.components,
            attachments,
            flags,
            mark_edited,
            allowed_mentions: self.allowed_mentions,
        }
    }
}

/// Discord's rules for `allowed_mentions`: an object whose `parse` lists only
/// `users`, `roles` and `everyone`, whose `users` and `roles` hold at most 100 ids, and
/// that does not both parse a kind and list ids of it.
fn check_allowed_mentions(allowed: &Value) -> Result<Value, ApiError> {
    let Some(map) = allowed.as_object() else {
        return Err(ApiError::invalid_form(
            "allowed_mentions",
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        ));
    };
    let mut parse = Vec::new();
    match map.get("parse") {
        None | Some(Value::Null) => {}
        Some(Value::Array(kinds)) => {
            for (i, kind) in kinds.iter().enumerate() {
                match kind.as_str() {
                    Some(k @ ("users" | "roles" | "everyone")) => parse.push(k),
                    _ => {
                        return Err(ApiError::invalid_form(
                            &format!("allowed_mentions.parse.{i}"),
                            "BASE_TYPE_CHOICES",
                            "Value must be one of ('roles', 'users', 'everyone').",
                        ));
                    }
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_form(
                "allowed_mentions.parse",
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ));
        }
    }
    for key in ["users", "roles"] {
        let ids = match map.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(ids)) => ids,
            Some(_) => {
                return Err(ApiError::invalid_form(
                    &format!("allowed_mentions.{key}"),
                    "LIST_TYPE_CONVERT",
                    "Only iterables may be used in a ListType",
                ));
            }
        };
        if ids.len() > 100 {
            return Err(ApiError::invalid_form(
                &format!("allowed_mentions.{key}"),
                "BASE_TYPE_MAX_LENGTH",
                "Must be 100 or fewer in length.",
            ));
        }
        if let Some(bad) = ids
            .iter()
            .position(|id| serde_json::from_value::<Snowflake>(id.clone()).is_err())
        {
            return Err(ApiError::invalid_form(
                &format!("allowed_mentions.{key}.{bad}"),
                "NUMBER_TYPE_COERCE",
                "Value is not snowflake.",
            ));
        }
        if !ids.is_empty() && parse.contains(&key) {
            return Err(ApiError::invalid_form(
                "allowed_mentions",
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                format!("parse:[\"{key}\"] and {key}: [ids...] are mutually exclusive."),
            ));
        }
    }
    Ok(allowed.clone())
}

/// Discord's component limits: without components v2, at most 5 action rows; at
/// most 5 buttons or one select per row; custom ids 1-100 characters and unique;
/// link buttons need a URL and no custom id; select menus 1-25 options.
pub(super) fn validate_components(components: &[Value], flags: u64) -> Result<(), ApiError> {
    let v2 = flags & message_flags::IS_COMPONENTS_V2 != 0;
    if !v2 && components.len() > 5 {
        return Err(ApiError::invalid_form(
            "components",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 5 or fewer in length.",
        ));
    }
    let mut seen = HashSet::new();
    for (index, component) in components.iter().enumerate() {
        let kind = component.get("type").and_then(Value::as_u64);
        let path = format!("components.{index}");
        if !v2 && kind != Some(1) {
            return Err(ApiError::invalid_form(
                &path,
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "Top-level components must be action rows",
            ));
        }
        if kind == Some(1) {
            let children = component
                .get("components")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let selects = children
                .iter()
                .filter(|c| matches!(c.get("type").and_then(Value::as_u64), Some(3 | 5..=8)))
                .count();
            if children.is_empty() || children.len() > 5 || (selects > 0 && children.len() > 1) {
                return Err(ApiError::invalid_form(
                    &format!("{path}.components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                ));
            }
        }
        check_component(component, &path, &mut seen)?;
    }
    Ok(())
}

fn check_component(
    component: &Value,
    path: &str,
    seen: &mut HashSet<String>,
) -> Result<(), ApiError> {
    let kind = component.get("type").and_then(Value::as_u64).unwrap_or(0);
    let custom_id = component.get("custom_id").and_then(Value::as_str);
    if let Some(id) = custom_id {
        if !(1..=100).contains(&id.chars().count()) {
            return Err(ApiError::invalid_form(
                &format!("{path}.custom_id"),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            ));
        }
        if !seen.insert(id.to_owned()) {
            return Err(ApiError::invalid_form(
                &format!("{path}.custom_id"),
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            ));
        }
    }
    match kind {
        2 => {
            let style = component.get("style").and_then(Value::as_u64).unwrap_or(0);
            let url = component.get("url").and_then(Value::as_str);
            let ok = match style {
                5 => url.is_some() && custom_id.is_none(),
                6 => component.get("sku_id").is_some(),
                1..=4 => custom_id.is_some(),
                _ => false,
            };
            if !ok {
                return Err(ApiError::invalid_form(
                    path,
                    "BUTTON_COMPONENT_INVALID",
                    "Invalid button: style, custom_id and url do not match",
                ));
            }
        }
        3 | 5..=8 => {
            if custom_id.is_none() {
                return Err(ApiError::invalid_form(
                    &format!("{path}.custom_id"),
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                ));
            }
            if kind == 3 {
                let count = component
                    .get("options")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                if !(1..=25).contains(&count) {
                    return Err(ApiError::invalid_form(
                        &format!("{path}.options"),
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 25 in length.",
                    ));
                }
            }
        }
        _ => {}
    }
    for key in ["components", "accessory", "component"] {
        match component.get(key) {
            Some(Value::Array(children)) => {
                for (i, child) in children.iter().enumerate() {
                    check_component(child, &format!("{path}.{key}.{i}"), seen)?;
                }
            }
            Some(child @ Value::Object(_)) => {
                check_component(child, &format!("{path}.{key}"), seen)?
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn parse_overwrite_kind(kind: &Value) -> Result<OverwriteKind, ApiError> {
    match kind {
        Value::Number(n) if n.as_u64() == Some(0) => Ok(OverwriteKind::Role),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(OverwriteKind::Member),
        Value::String(s) if s == "role" || s == "0" => Ok(OverwriteKind::Role),
        Value::String(s) if s == "member" || s == "1" => Ok(OverwriteKind::Member),
        _ => Err(ApiError::invalid_form(
            "type",
            "BASE_TYPE_CHOICES",
            "Value must be one of {0, 1}.",
        )),
    }
}

/// Permission bits as Discord accepts them: a decimal string or an integer.
pub(super) fn parse_permissions(value: Option<&Value>, field: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::invalid_form(
            field,
            "NUMBER_TYPE_COERCE",
            "Value is not a valid permission integer.",
        )
    };
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s.parse().map_err(|_| bad()),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

pub(super) fn parse_overwrites(value: &Value) -> Result<Vec<PermissionOverwrite>, ApiError> {
    let Some(items) = value.as_array() else {
        return Err(ApiError::invalid_form(
            "permission_overwrites",
            "LIST_TYPE_CONVERT",
            "Only iterables may be used in a ListType",
        ));
    };
    items
        .iter()
        .map(|item| {
            let id = item
                .get("id")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| {
                    ApiError::invalid_form(
                        "permission_overwrites.id",
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )
                })?;
            let kind = parse_overwrite_kind(item.get("type").unwrap_or(&json!(0)))?;
            Ok(PermissionOverwrite {
                id,
                kind,
                allow: parse_permissions(item.get("allow"), "allow")?,
                deny: parse_permissions(item.get("deny"), "deny")?,
            })
        })
        .collect()
}

fn parse_channel_patch(body: &Value) -> Result<ChannelPatch, ApiError> {
    let mut patch = ChannelPatch::default();
    if let Some(name) = body.get("name") {
        patch.name = Some(
            name.as_str()
                .ok_or_else(|| {
                    ApiError::invalid_form(
                        "name",
                        "STRING_TYPE_CONVERT",
                        "Could not interpret value as string.",
                    )
                })?
                .to_owned(),
        );
    }
    if let Some(topic) = body.get("topic") {
        patch.topic = Some(topic.as_str().map(str::to_owned));
        if topic.as_str().is_some_and(|t| t.chars().count() > 1024) {
            return Err(ApiError::invalid_form(
                "topic",
                "BASE_TYPE_MAX_LENGTH",
                "Must be 1024 or fewer in length.",
            ));
        }
    }
    if let Some(parent) = body.get("parent_id") {
        patch.parent_id = Some(if parent.is_null() {
            None
        } else {
            Some(serde_json::from_value(parent.clone()).map_err(|_| {
                ApiError::invalid_form("parent_id", "NUMBER_TYPE_COERCE", "Value is not snowflake.")
            })?)
        });
    }
    if let Some(position) = body.get("position").and_then(Value::as_i64) {
        patch.position = i32::try_from(position).ok();
    }
    patch.nsfw = body.get("nsfw").and_then(Value::as_bool);
    if let Some(overwrites) = body.get("permission_overwrites") {
        patch.permission_overwrites = Some(parse_overwrites(overwrites)?);
    }
    patch.rate_limit_per_user = body
        .get("rate_limit_per_user")
        .and_then(Value::as_u64)
        .and_then(|v| u16::try_from(v).ok());
    patch.bitrate = body
        .get("bitrate")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    patch.user_limit = body
        .get("user_limit")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok());
    Ok(patch)
}
