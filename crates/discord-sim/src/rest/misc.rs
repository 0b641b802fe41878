//! Gateway discovery, users, DMs and the current application.

use serde_json::json;

use super::{Call, Caller, Reply, Route};
use crate::Snowflake;
use crate::error::ApiError;
use crate::state::user_json;

pub(super) fn handle(route: Route, call: Call<'_>) -> Result<Reply, ApiError> {
    let Call {
        state,
        ctx,
        ids,
        req,
        ..
    } = call;
    match route {
        Route::GetGateway => Ok(Reply::ok(json!({"url": ctx.gateway_url()}))),
        Route::GetGatewayBot => Ok(Reply::ok(json!({
            "url": ctx.gateway_url(),
            "shards": ctx.config.shard_count.max(1),
            "session_start_limit": {
                "total": 1000,
                "remaining": 1000,
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            },
        }))),
        Route::GetCurrentUser => match &req.caller {
            // `identify` is what `/users/@me` needs; `email` adds the address.
            Caller::Bearer(grant) if !grant.has("identify") && !grant.has("email") => {
                Err(ApiError::missing_access())
            }
            Caller::Bearer(grant) => Ok(Reply::ok(
                state.oauth_user_json(grant.user, grant.has("email")),
            )),
            _ => Ok(Reply::ok(state.current_user_json(ctx))),
        },
        Route::GetUser(user) => Ok(Reply::ok(user_json(state.user(user)?))),
        Route::GetCurrentUserGuilds => match &req.caller {
            Caller::Bearer(grant) if !grant.has("guilds") => Err(ApiError::missing_access()),
            Caller::Bearer(grant) => Ok(Reply::ok(state.user_guilds_json(grant.user))),
            _ => Ok(Reply::ok(state.user_guilds_json(ctx.bot_id))),
        },
        Route::CreateDm => {
            let recipient: Snowflake = req
                .body
                .get("recipient_id")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| {
                    ApiError::invalid_form(
                        "recipient_id",
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )
                })?;
            let channel = state.dm_channel(ids, recipient)?;
            Ok(Reply::ok(state.channel_json(channel)?))
        }
        Route::GetCurrentApplication => Ok(Reply::ok(json!({
            "id": ctx.app_id,
            "name": ctx.config.bot_name,
            "icon": null,
            "description": "",
            "summary": "",
            "bot_public": true,
            "bot_require_code_grant": false,
            "bot": state.user_json(ctx.bot_id),
            "verify_key": "0000000000000000000000000000000000000000000000000000000000000000",
            "flags": 0,
            "team": null,
            "rpc_origins": [],
            "redirect_uris": [],
            "interactions_endpoint_url": null,
            "tags": [],
            "approximate_guild_count": state.guilds.len(),
        }))),
        _ => Err(ApiError::not_found()),
    }
}
