//! The seed's Backend Service as JSON over HTTP, under `/api/rolls/`.
//!
//! Every request names its user with `?user=ID` (the seed: "All REST requests will
//! have user=? in the query parameters"); the controller adds it to `user_set` and
//! counts the request. Bad input answers 400 with `{"error": "..."}` (plus `column`
//! and `pointer` for dice errors); storage failures answer in the kit's words and
//! status (`feature::reply`); our other failures answer 500 with a short message and
//! are logged.
//!
//! | method | path                                        | body                        |
//! |--------|---------------------------------------------|-----------------------------|
//! | GET    | `/api/rolls/roll?user=&expression=`         |                             |
//! | GET    | `/api/rolls/odds?user=&expression=`         |                             |
//! | GET    | `/api/rolls/stats?user=[&all=true]`         |                             |
//! | GET    | `/api/rolls/characters?user=`               |                             |
//! | POST   | `/api/rolls/characters?user=`               | `{"name", "initiative_modifier"}` |
//! | DELETE | `/api/rolls/characters/{name}?user=`        |                             |
//! | GET    | `/api/rolls/initiative/{channel}?user=`     |                             |
//! | POST   | `/api/rolls/initiative/{channel}/join?user=`| `{"character"?, "roll"?, "name"?}` |
//! | POST   | `/api/rolls/initiative/{channel}/remove?user=` | `{"character"?}`         |
//! | POST   | `/api/rolls/initiative/{channel}/next?user=`|                             |
//! | POST   | `/api/rolls/initiative/{channel}/reset?user=`|                            |

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::RollsError;
use crate::commands::Ctx;
use crate::domain::{ChannelId, UserId};
use crate::ops::{CharacterOp, HelpOp, InitOp, OddsOp, Operation, RollOp, StatsOp, TrackerModel};

type Params = Query<BTreeMap<String, String>>;

/// An error answer, as [`RollsError::into_http`] words it.
#[derive(Debug)]
pub struct ApiError(RollsError);

impl From<RollsError> for ApiError {
    fn from(e: RollsError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_http()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(RollsError::refused(message))
}

fn user(params: &BTreeMap<String, String>) -> Result<UserId, ApiError> {
    let raw = params
        .get("user")
        .ok_or_else(|| bad("`user` is required: add ?user=<discord user id>"))?;
    raw.trim()
        .parse::<UserId>()
        .map_err(|_| bad(format!("`user` must be a Discord user id, not `{raw}`")))
}

fn required<'p>(params: &'p BTreeMap<String, String>, name: &str) -> Result<&'p str, ApiError> {
    params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| bad(format!("`{name}` is required")))
}

fn channel(raw: &str) -> Result<ChannelId, ApiError> {
    raw.parse::<ChannelId>()
        .map_err(|_| bad(format!("`{raw}` is not a channel id")))
}

fn body<T: Default>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(v)) => Ok(v),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(bad(format!("bad JSON body: {}", e.body_text()))),
    }
}

async fn run<O: Operation>(ctx: &Ctx, user: UserId, op: O) -> Result<Json<O::Model>, ApiError> {
    Ok(Json(ctx.controller.run(user, &op).await?))
}

/// The router, to be merged at the root (paths start with `/api/rolls/`).
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/api/rolls/roll", get(roll))
        .route("/api/rolls/odds", get(odds))
        .route("/api/rolls/stats", get(stats))
        .route("/api/rolls/help", get(help))
        .route(
            "/api/rolls/characters",
            get(characters_list).post(characters_add),
        )
        .route(
            "/api/rolls/characters/{name}",
            axum::routing::delete(characters_remove),
        )
        .route("/api/rolls/initiative/{channel}", get(init_get))
        .route("/api/rolls/initiative/{channel}/join", post(init_join))
        .route("/api/rolls/initiative/{channel}/remove", post(init_remove))
        .route("/api/rolls/initiative/{channel}/next", post(init_next))
        .route("/api/rolls/initiative/{channel}/reset", post(init_reset))
        .with_state(ctx)
}

async fn roll(State(ctx): State<Ctx>, Query(p): Params) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let expression = required(&p, "expression")?.to_owned();
    Ok(run(&ctx, user, RollOp { expression })
        .await?
        .into_response())
}

async fn odds(State(ctx): State<Ctx>, Query(p): Params) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let expression = required(&p, "expression")?.to_owned();
    Ok(run(&ctx, user, OddsOp { expression })
        .await?
        .into_response())
}

async fn stats(State(ctx): State<Ctx>, Query(p): Params) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let all = match p.get("all").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => return Err(bad(format!("`all` must be true or false, not `{other}`"))),
    };
    Ok(run(&ctx, user, StatsOp { all }).await?.into_response())
}

async fn help(State(ctx): State<Ctx>, Query(p): Params) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let command = p.get("command").cloned();
    Ok(run(&ctx, user, HelpOp { command }).await?.into_response())
}

async fn characters_list(State(ctx): State<Ctx>, Query(p): Params) -> Result<Response, ApiError> {
    let user = user(&p)?;
    Ok(run(&ctx, user, CharacterOp::List { user })
        .await?
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddCharacter {
    #[serde(default)]
    name: String,
    #[serde(default)]
    initiative_modifier: i64,
}

async fn characters_add(
    State(ctx): State<Ctx>,
    Query(p): Params,
    b: Result<Json<AddCharacter>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let b = body(b)?;
    let op = CharacterOp::Add {
        user,
        name: b.name,
        initiative_modifier: b.initiative_modifier,
    };
    Ok(run(&ctx, user, op).await?.into_response())
}

async fn characters_remove(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let user = user(&p)?;
    Ok(run(&ctx, user, CharacterOp::Remove { user, name })
        .await?
        .into_response())
}

/// Runs a tracker change and, best effort, edits the Discord tracker message so the
/// channel shows what REST clients did.
async fn init_change(ctx: &Ctx, user: UserId, op: InitOp) -> Result<Response, ApiError> {
    let model: TrackerModel = ctx.controller.run(user, &op).await?;
    if let Some(message) = model.tracker.message_id {
        let reply = crate::commands::tracker_reply(&model);
        if let Err(error) = ctx.discord.edit(model.channel, message, &reply).await {
            tracing::warn!(%error, channel = %model.channel, "could not update the tracker message");
        }
    }
    Ok(Json(model).into_response())
}

async fn init_get(
    State(ctx): State<Ctx>,
    Path(c): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let channel = channel(&c)?;
    Ok(run(&ctx, user, InitOp::Get { channel })
        .await?
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    character: Option<String>,
    roll: Option<String>,
    /// Shown when the user has no character (default: `user {id}`).
    name: Option<String>,
}

async fn init_join(
    State(ctx): State<Ctx>,
    Path(c): Path<String>,
    Query(p): Params,
    b: Result<Json<JoinBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let channel = channel(&c)?;
    let b = body(b)?;
    let op = InitOp::Join {
        channel,
        user,
        character: b.character,
        roll: b.roll,
        display_name: b.name.unwrap_or_else(|| format!("user {user}")),
    };
    init_change(&ctx, user, op).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    character: Option<String>,
}

async fn init_remove(
    State(ctx): State<Ctx>,
    Path(c): Path<String>,
    Query(p): Params,
    b: Result<Json<RemoveBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let channel = channel(&c)?;
    let b = body(b)?;
    let op = InitOp::Remove {
        channel,
        user,
        character: b.character,
    };
    init_change(&ctx, user, op).await
}

async fn init_next(
    State(ctx): State<Ctx>,
    Path(c): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let channel = channel(&c)?;
    init_change(&ctx, user, InitOp::Next { channel }).await
}

async fn init_reset(
    State(ctx): State<Ctx>,
    Path(c): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let user = user(&p)?;
    let channel = channel(&c)?;
    init_change(&ctx, user, InitOp::Reset { channel }).await
}
