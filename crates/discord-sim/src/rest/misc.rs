//! Gateway discovery, users, DMs and the current application.

use serde_json::{Value, json};

use super::{Call, Reply, Route};
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
        Route::GetCurrentUser => Ok(Reply::ok(state.current_user_json(ctx))),
        Route::GetUser(user) => Ok(Reply::ok(user_json(state.user(user)?))),
        Route::GetCurrentUserGuilds => {
            let guilds: Vec<Value> = state
                .guilds
                .values()
                .filter(|g| g.members.contains_key(&ctx.bot_id))
                .map(|g| {
                    json!({
                        "id": g.guild.id,
                        "name": g.guild.name,
                        "icon": null,
                        "banner": null,
                        "owner": g.guild.owner_id == ctx.bot_id,
                        "permissions": state.permissions(g.guild.id, ctx.bot_id, None).to_string(),
                        "features": [],
                    })
                })
                .collect();
            Ok(Reply::ok(Value::Array(guilds)))
        }
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
