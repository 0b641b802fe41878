//! Interaction callbacks and the interaction webhook (edit @original, follow-ups).
//!
//! The rules enforced here are the ones a bot most often gets wrong: one callback per
//! interaction (40060 on the second), the 3-second window for it (10062 after), a
//! 15-minute token for edits and follow-ups (50027 after), deferred responses that
//! are completed by the first edit or follow-up.

use std::time::Instant;

use serde_json::{Value, json};

use super::channels::{MessageBody, store_uploads};
use super::{Call, Reply, Route};
use crate::Snowflake;
use crate::error::ApiError;
use crate::interaction::{InteractionReply, InteractionState, ReplySource, kind};
use crate::model::{MessageReference, message_flags};
use crate::state::{Ctx, NewMessage, State};

/// Response flags an interaction message may carry.
const RESPONSE_FLAGS: u64 = message_flags::EPHEMERAL
    | message_flags::SUPPRESS_EMBEDS
    | message_flags::SUPPRESS_NOTIFICATIONS
    | message_flags::IS_COMPONENTS_V2;

pub(super) fn handle(route: Route, call: Call<'_>) -> Result<Reply, ApiError> {
    match route {
        Route::InteractionCallback { id, token } => callback(call, id, &token),
        Route::GetOriginal { app, token } => {
            let Call {
                state, ctx, req, ..
            } = call;
            let interaction = by_token(state, ctx, app, &token, req.received)?;
            let (channel, original) = (interaction.channel_id, interaction.original_message);
            let message = original.ok_or_else(ApiError::unknown_message)?;
            let m = state.message(channel, message)?;
            Ok(Reply::ok(state.message_json(m, false)))
        }
        Route::EditOriginal { app, token } => {
            let interaction = {
                let i = by_token(call.state, call.ctx, app, &token, call.req.received)?;
                i.original_message.ok_or_else(ApiError::unknown_message)?;
                i.id
            };
            edit_response(call, interaction, None, ReplySource::EditOriginal)
        }
        Route::DeleteOriginal { app, token } => {
            let Call {
                state, ctx, req, ..
            } = call;
            let interaction = by_token(state, ctx, app, &token, req.received)?;
            let channel = interaction.channel_id;
            let message = interaction
                .original_message
                .take()
                .ok_or_else(ApiError::unknown_message)?;
            state.delete_message(channel, message)?;
            Ok(Reply::NoContent)
        }
        Route::CreateFollowup { app, token } => followup(call, app, &token),
        Route::GetFollowup {
            app,
            token,
            message,
        } => {
            let Call {
                state, ctx, req, ..
            } = call;
            let interaction = by_token(state, ctx, app, &token, req.received)?;
            let channel = interaction.channel_id;
            if !owns(interaction, message) {
                return Err(ApiError::unknown_message());
            }
            let m = state.message(channel, message)?;
            Ok(Reply::ok(state.message_json(m, false)))
        }
        Route::EditFollowup {
            app,
            token,
            message,
        } => {
            let interaction = {
                let i = by_token(call.state, call.ctx, app, &token, call.req.received)?;
                if !owns(i, message) {
                    return Err(ApiError::unknown_message());
                }
                i.id
            };
            edit_response(call, interaction, Some(message), ReplySource::EditFollowup)
        }
        Route::DeleteFollowup {
            app,
            token,
            message,
        } => {
            let Call {
                state, ctx, req, ..
            } = call;
            let interaction = by_token(state, ctx, app, &token, req.received)?;
            let channel = interaction.channel_id;
            if !owns(interaction, message) {
                return Err(ApiError::unknown_message());
            }
            interaction.followups.retain(|f| *f != message);
            if interaction.original_message == Some(message) {
                interaction.original_message = None;
            }
            state.delete_message(channel, message)?;
            Ok(Reply::NoContent)
        }
        _ => Err(ApiError::not_found()),
    }
}

fn owns(interaction: &InteractionState, message: Snowflake) -> bool {
    interaction.followups.contains(&message) || interaction.original_message == Some(message)
}

/// Finds the interaction behind a webhook token: 10015 if unknown, 50027 once the
/// token's 15 minutes are over.
fn by_token<'s>(
    state: &'s mut State,
    ctx: &Ctx,
    app: Snowflake,
    token: &str,
    now: Instant,
) -> Result<&'s mut InteractionState, ApiError> {
    if app != ctx.app_id {
        return Err(ApiError::unknown_webhook());
    }
    let id = *state
        .interaction_tokens
        .get(token)
        .ok_or_else(ApiError::unknown_webhook)?;
    let interaction = state
        .interactions
        .get_mut(&id)
        .ok_or_else(ApiError::unknown_webhook)?;
    if now.duration_since(interaction.dispatched_at) > ctx.config.token_lifetime {
        return Err(ApiError::new(401, 50027, "Invalid Webhook Token"));
    }
    Ok(interaction)
}

/// What the callback route needs to know about the interaction, copied out so the
/// state can be mutated.
struct Target {
    kind: u8,
    user: Snowflake,
    channel: Snowflake,
    guild: Option<Snowflake>,
    source_message: Option<Snowflake>,
}

fn callback(call: Call<'_>, id: Snowflake, token: &str) -> Result<Reply, ApiError> {
    let Call {
        state,
        ctx,
        ids,
        req,
    } = call;
    let target = {
        let interaction = state
            .interactions
            .get_mut(&id)
            .filter(|i| i.token == token)
            .ok_or_else(ApiError::unknown_interaction)?;
        interaction.callback_attempts += 1;
        if interaction.callback_type.is_some() {
            return Err(ApiError::already_acknowledged());
        }
        if req.received.duration_since(interaction.dispatched_at) > ctx.config.interaction_deadline
        {
            return Err(ApiError::unknown_interaction());
        }
        Target {
            kind: interaction.kind,
            user: interaction.user_id,
            channel: interaction.channel_id,
            guild: interaction.guild_id,
            source_message: interaction.source_message,
        }
    };
    let callback_type = req
        .body
        .get("type")
        .and_then(Value::as_u64)
        .and_then(|t| u8::try_from(t).ok())
        .ok_or_else(|| {
            ApiError::invalid_form("type", "BASE_TYPE_REQUIRED", "This field is required")
        })?;
    let autocomplete = target.kind == kind::APPLICATION_COMMAND_AUTOCOMPLETE;
    let allowed = match callback_type {
        8 => autocomplete,
        _ if autocomplete => false,
        4 | 5 => true,
        6 | 7 => target.source_message.is_some(),
        9 => target.kind != kind::MODAL_SUBMIT,
        _ => false,
    };
    if !allowed {
        return Err(ApiError::invalid_form(
            "type",
            "INTERACTION_RESPONSE_TYPE_INVALID",
            "Interaction response type is not valid for this interaction",
        ));
    }
    let data = req.body.get("data").cloned().unwrap_or(Value::Null);
    let metadata = state.interactions.get(&id).map(|i| i.metadata(None));
    let message_kind = if target.kind == kind::APPLICATION_COMMAND {
        20
    } else {
        19
    };
    let reference = (target.kind != kind::APPLICATION_COMMAND)
        .then_some(target.source_message)
        .flatten()
        .map(|message| MessageReference {
            message_id: Some(message),
            channel_id: target.channel,
            guild_id: target.guild,
        });
    let mut modal = None;
    let message = match callback_type {
        4 => {
            let body = MessageBody::parse(&data)?;
            let flags = body.flags.unwrap_or(0) & RESPONSE_FLAGS;
            let attachments = store_uploads(state, ctx, ids, target.channel, &req.files);
            let new = NewMessage {
                channel_id: target.channel,
                author_id: ctx.bot_id,
                content: body.content.unwrap_or_default(),
                embeds: body.embeds.unwrap_or_default(),
                components: body.components.unwrap_or_default(),
                attachments,
                flags,
                kind: message_kind,
                tts: body.tts,
                message_reference: reference,
                interaction_metadata: metadata,
                webhook_id: Some(ctx.app_id),
                application_id: Some(ctx.app_id),
                visible_to: (flags & message_flags::EPHEMERAL != 0).then_some(target.user),
                allowed_mentions: body.allowed_mentions,
                nonce: None,
            };
            if new.content.is_empty()
                && new.embeds.is_empty()
                && new.components.is_empty()
                && new.attachments.is_empty()
            {
                return Err(ApiError::empty_message());
            }
            Some(state.create_message(ids, new)?)
        }
        5 => {
            let flags =
                data.get("flags").and_then(Value::as_u64).unwrap_or(0) & message_flags::EPHEMERAL;
            let new = NewMessage {
                channel_id: target.channel,
                author_id: ctx.bot_id,
                flags: flags | message_flags::LOADING,
                kind: message_kind,
                message_reference: reference,
                interaction_metadata: metadata,
                webhook_id: Some(ctx.app_id),
                application_id: Some(ctx.app_id),
                visible_to: (flags != 0).then_some(target.user),
                ..NewMessage::default()
            };
            Some(state.create_message(ids, new)?)
        }
        6 => target.source_message,
        7 => {
            let source = target
                .source_message
                .ok_or_else(ApiError::unknown_message)?;
            let source_message = state.message(target.channel, source)?;
            let (existing, old_flags) = (source_message.attachments.clone(), source_message.flags);
            let body = MessageBody::parse(&data)?;
            let edit = body.into_edit(
                state,
                ctx,
                ids,
                target.channel,
                existing,
                old_flags,
                &req.files,
                true,
            );
            state.edit_message(target.channel, source, edit)?;
            Some(source)
        }
        9 => {
            let custom_id = data
                .get("custom_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let title = data
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let components = data
                .get("components")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if !(1..=100).contains(&custom_id.chars().count())
                || !(1..=45).contains(&title.chars().count())
                || !(1..=5).contains(&components)
            {
                return Err(ApiError::invalid_form(
                    "data",
                    "MODAL_INVALID",
                    "A modal needs a custom_id (1-100), a title (1-45) and 1-5 components",
                ));
            }
            modal = Some(data.clone());
            None
        }
        8 => {
            let choices = data
                .get("choices")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    ApiError::invalid_form(
                        "data.choices",
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )
                })?;
            let valid = choices.len() <= 25
                && choices.iter().all(|c| {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    (1..=100).contains(&name.chars().count()) && c.get("value").is_some()
                });
            if !valid {
                return Err(ApiError::invalid_form(
                    "data.choices",
                    "BASE_TYPE_BAD_LENGTH",
                    "At most 25 choices, each with a name of 1-100 characters and a value",
                ));
            }
            None
        }
        _ => None,
    };
    // The message the reply describes: none for 6 (nothing visible changed yet).
    let shown = match callback_type {
        6 | 8 | 9 => None,
        _ => message.and_then(|m| state.message(target.channel, m).ok()),
    };
    let reply = InteractionReply::from_message(
        id,
        ReplySource::Callback,
        callback_type,
        shown,
        data,
        req.received,
    );
    let with_response = req.query("with_response") == Some("true");
    let resource = if with_response {
        Some(callback_resource(
            state,
            &target,
            callback_type,
            message,
            modal.as_ref(),
        ))
    } else {
        None
    };
    let interaction = state
        .interactions
        .get_mut(&id)
        .ok_or_else(ApiError::unknown_interaction)?;
    interaction.callback_type = Some(callback_type);
    interaction.answered += 1;
    interaction.original_message = message;
    interaction.modal = modal;
    interaction.publish(reply, true);
    match resource {
        Some(resource) => Ok(Reply::ok(json!({
            "interaction": {
                "id": id,
                "type": target.kind,
                "response_message_id": message,
                "response_message_loading": callback_type == 5,
                "response_message_ephemeral": resource.1,
            },
            "resource": resource.0,
        }))),
        None => Ok(Reply::NoContent),
    }
}

/// `resource` of a `with_response=true` callback, and whether the message is
/// ephemeral.
fn callback_resource(
    state: &State,
    target: &Target,
    callback_type: u8,
    message: Option<Snowflake>,
    modal: Option<&Value>,
) -> (Value, bool) {
    let m = message.and_then(|m| state.message(target.channel, m).ok());
    let ephemeral = m.is_some_and(|m| m.is_ephemeral());
    let mut resource = json!({"type": callback_type});
    match (m, modal) {
        (Some(m), _) if callback_type != 6 => {
            crate::state::insert(&mut resource, "message", state.message_json(m, false));
        }
        (_, Some(modal)) => {
            crate::state::insert(&mut resource, "modal", modal.clone());
        }
        _ => {}
    }
    (resource, ephemeral)
}

/// Edits @original (`message == None`) or a follow-up. Editing a deferred
/// "thinking" placeholder turns it into the real response.
fn edit_response(
    call: Call<'_>,
    interaction: Snowflake,
    message: Option<Snowflake>,
    source: ReplySource,
) -> Result<Reply, ApiError> {
    let Call {
        state,
        ctx,
        ids,
        req,
    } = call;
    let (channel, target, callback_type) = {
        let i = state
            .interactions
            .get(&interaction)
            .ok_or_else(ApiError::unknown_webhook)?;
        let target = message
            .or(i.original_message)
            .ok_or_else(ApiError::unknown_message)?;
        (i.channel_id, target, i.callback_type.unwrap_or(0))
    };
    let existing = state.message(channel, target)?;
    let was_loading = existing.is_loading();
    let old_flags = existing.flags;
    let attachments = existing.attachments.clone();
    let body = MessageBody::parse(&req.body)?;
    let mut edit = body.into_edit(
        state,
        ctx,
        ids,
        channel,
        attachments,
        old_flags,
        &req.files,
        !was_loading,
    );
    // The loading flag goes away with the first edit of a deferred response.
    edit.flags = Some(edit.flags.unwrap_or(old_flags) & !message_flags::LOADING);
    state.edit_message(channel, target, edit)?;
    let m = state.message(channel, target)?;
    let rendered = state.message_json(m, false);
    let reply = InteractionReply::from_message(
        interaction,
        source,
        callback_type,
        Some(m),
        req.body,
        req.received,
    );
    if let Some(i) = state.interactions.get_mut(&interaction) {
        i.publish(reply, false);
    }
    Ok(Reply::ok(rendered))
}

fn followup(call: Call<'_>, app: Snowflake, token: &str) -> Result<Reply, ApiError> {
    let (id, channel, original, callback_type, target_kind, metadata, user, guild, source_message) = {
        let i = by_token(call.state, call.ctx, app, token, call.req.received)?;
        if i.callback_type.is_none() {
            return Err(ApiError::unknown_webhook());
        }
        (
            i.id,
            i.channel_id,
            i.original_message,
            i.callback_type.unwrap_or(0),
            i.kind,
            i.metadata(i.original_message),
            i.user_id,
            i.guild_id,
            i.source_message,
        )
    };
    // The first follow-up to a deferred response replaces the "thinking" message.
    let loading = original
        .and_then(|m| call.state.message(channel, m).ok())
        .is_some_and(|m| m.is_loading());
    if loading {
        return edit_response(call, id, None, ReplySource::Followup);
    }
    let Call {
        state,
        ctx,
        ids,
        req,
    } = call;
    let body = MessageBody::parse(&req.body)?;
    let flags = body.flags.unwrap_or(0) & RESPONSE_FLAGS;
    let attachments = store_uploads(state, ctx, ids, channel, &req.files);
    let new = NewMessage {
        channel_id: channel,
        author_id: ctx.bot_id,
        content: body.content.unwrap_or_default(),
        embeds: body.embeds.unwrap_or_default(),
        components: body.components.unwrap_or_default(),
        attachments,
        flags,
        kind: if target_kind == kind::APPLICATION_COMMAND {
            20
        } else {
            19
        },
        tts: body.tts,
        message_reference: (target_kind != kind::APPLICATION_COMMAND)
            .then_some(source_message)
            .flatten()
            .map(|message| MessageReference {
                message_id: Some(message),
                channel_id: channel,
                guild_id: guild,
            }),
        interaction_metadata: Some(metadata),
        webhook_id: Some(ctx.app_id),
        application_id: Some(ctx.app_id),
        visible_to: (flags & message_flags::EPHEMERAL != 0).then_some(user),
        allowed_mentions: body.allowed_mentions,
        nonce: None,
    };
    if new.content.is_empty()
        && new.embeds.is_empty()
        && new.components.is_empty()
        && new.attachments.is_empty()
    {
        return Err(ApiError::empty_message());
    }
    let message = state.create_message(ids, new)?;
    let m = state.message(channel, message)?;
    let rendered = state.message_json(m, false);
    let reply = InteractionReply::from_message(
        id,
        ReplySource::Followup,
        callback_type,
        Some(m),
        req.body,
        req.received,
    );
    if let Some(i) = state.interactions.get_mut(&id) {
        i.followups.push(message);
        i.publish(reply, false);
    }
    Ok(Reply::ok(rendered))
}
