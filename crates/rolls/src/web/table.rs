//! The REST side of the table tools: rolls with aliases and ids, the odds chart, roll
//! lookups and the caller's aliases (routes listed in [`crate::web`]).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use feature::access::Caller as WebCaller;
use serde::Deserialize;

use super::{ApiError, JsonBody, Params, Use, bad, channel, member_of, required, run, user};
use crate::alias::{AliasAction, AliasOp, Scope};
use crate::chart::ChartedOddsOp;
use crate::commands::Ctx;
use crate::domain::Caller;
use crate::history::{RecordedRollOp, RollCheckOp, RollMode};
use crate::ops::OddsOp;

/// `GET /api/rolls/roll?user=&expression=[&channel=]`: the user's aliases apply, and
/// with `channel` (of a server the user is a member of) the server's too.
pub(super) async fn roll(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let input = required(&p, "expression")?.to_owned();
    let (guild, in_channel) = match p.get("channel") {
        Some(raw) => {
            let at = channel(raw)?;
            member_of(&ctx.membership, at, who, Use::Roll).await?;
            let guild = ctx
                .discord
                .channel_guild(at)
                .await
                .map_err(|e| ApiError::Rolls(e.into()))?;
            (guild, Some(at))
        }
        None => (None, None),
    };
    let op = RecordedRollOp {
        input,
        user: who.user(),
        guild,
        channel: in_channel,
        mode: RollMode::Public,
        gm: Vec::new(),
    };
    run(&ctx, who, op).await
}

/// `GET /api/rolls/odds?user=&expression=[&format=json|png]`.
pub(super) async fn odds(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let expression = required(&p, "expression")?.to_owned();
    match p.get("format").map(String::as_str) {
        None | Some("json") => run(&ctx, who, OddsOp { expression }).await,
        Some("png") => {
            let model = ctx
                .controller
                .run(who, &ChartedOddsOp { expression })
                .await?;
            let chart = model.chart.map_err(|why| bad(why.to_string()))?;
            Ok((
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("image/png"),
                )],
                chart.png,
            )
                .into_response())
        }
        Some(other) => Err(bad(format!("`format` must be json or png, not `{other}`"))),
    }
}

/// `GET /api/rolls/rolls/{id}?user=`.
pub(super) async fn roll_check(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let viewer = who.user();
    run(&ctx, who, RollCheckOp { id, viewer }).await
}

/// `GET /api/rolls/aliases?user=`: the user's own aliases.
pub(super) async fn aliases_list(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    own_aliases(&ctx, who, AliasAction::List).await
}

/// Runs `action` on the caller's own aliases (the REST API changes no server's).
async fn own_aliases(ctx: &Ctx, who: Caller, action: AliasAction) -> Result<Response, ApiError> {
    let op = AliasOp {
        scope: Scope::User(who.user()),
        action,
        guild: None,
    };
    run(ctx, who, op).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddAlias {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expression: String,
}

/// `POST /api/rolls/aliases?user=` with `{"name", "expression"}`.
pub(super) async fn aliases_add(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Query(p): Params,
    JsonBody(b): JsonBody<AddAlias>,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let action = AliasAction::Add {
        name: b.name,
        template: b.expression,
    };
    own_aliases(&ctx, who, action).await
}

/// `DELETE /api/rolls/aliases/{name}?user=`.
pub(super) async fn aliases_remove(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    own_aliases(&ctx, who, AliasAction::Remove { name }).await
}
