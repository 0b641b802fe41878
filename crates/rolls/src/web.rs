//! The seed's Backend Service as JSON over HTTP, under `/api/rolls/`.
//!
//! Nobody calls it anonymously (the kit's `web::access`): a browser is the signed-in
//! user of its session (state-changing requests carry the session's CSRF token) and
//! acts only for itself; a program sends an API token (`tavern tokens create NAME
//! --scopes rolls:read,rolls:write`) and acts for the user `?user=ID` names (the seed:
//! "All REST requests will have user=? in the query parameters"). Reading takes
//! `rolls:read`, changing `rolls:write`; a body must be JSON (415 otherwise); one over
//! the site's limit, with or without a `Content-Length`, is 413 (`payload_too_large`,
//! naming the limit).
//! Anonymous requests get 401, another user's data 403.
//!
//! A signed-in user is authenticated (Discord's OAuth2 proved who they are) and is
//! added to `user_set` like a Discord user; the user a token's `?user=` names is
//! only *claimed* ([`Caller::Claimed`]): the controller counts the request but does
//! not add the id to `user_set`.
//!
//! A channel's initiative tracker is read and changed only for members of the
//! channel's guild who see the channel (View Channel, from its permission overwrites;
//! Discord is asked and its answer remembered: [`crate::membership`]); someone who is
//! not a member gets 403, a member who does not see the channel 404 as for a channel
//! that does not exist (a 403 would tell them it is there), an unknown channel 404, a direct
//! message's tracker 403 (it is read and changed from Discord only). Bad input answers 400 with
//! `{"error": "..."}` (plus `column` and `pointer` for dice errors); storage failures
//! answer in the kit's words and status (`feature::reply`); our other failures answer
//! 500 with a short message and are logged.
//!
//! An answer is at most [`MAX_ANSWER_BYTES`] of JSON. Only a roll can be larger (its
//! result tree holds every die: 20,000 dice are about 1 MB); such an answer leaves
//! out `outcome`, cuts `text` and `markdown` to [`MAX_ANSWER_TEXT`] characters each
//! and says so in `"cut"`.
//!
//! A roll answers with its roll id (`id`), `seed` and `input` beside the roll; the
//! user's aliases apply, and with `channel` (a channel of a server the user is a
//! member of) the server's too ([`crate::alias`]). `format=png` answers the odds as
//! the chart `/odds` attaches ([`crate::chart`]; 400 when there is no exact
//! distribution to draw). `rolls/{id}` is a roll looked up by id ([`crate::history`]).
//!
//! | method | path                                        | body                        |
//! |--------|---------------------------------------------|-----------------------------|
//! | GET    | `/api/rolls/roll?user=&expression=[&channel=]` |                          |
//! | GET    | `/api/rolls/odds?user=&expression=[&format=json\|png]` |                   |
//! | GET    | `/api/rolls/stats?user=[&all=true]`         |                             |
//! | GET    | `/api/rolls/characters?user=`               |                             |
//! | POST   | `/api/rolls/characters?user=`               | `{"name", "initiative_modifier", "initiative"?}` |
//! | DELETE | `/api/rolls/characters/{name}?user=`        |                             |
//! | GET    | `/api/rolls/rolls/{id}?user=`               |                             |
//! | GET    | `/api/rolls/aliases?user=`                  |                             |
//! | POST   | `/api/rolls/aliases?user=`                  | `{"name", "expression"}`    |
//! | DELETE | `/api/rolls/aliases/{name}?user=`           |                             |
//! | GET    | `/api/rolls/initiative/{channel}?user=`     |                             |
//! | POST   | `/api/rolls/initiative/{channel}/join?user=`| `{"character"?, "roll"?, "name"?}` or none |
//! | POST   | `/api/rolls/initiative/{channel}/remove?user=` | `{"character"?}` or none |
//!
//! A roll's `total` is its first result's; with several results (`3 1d20`, `1d20;
//! 2d6`) `grand_total` is their sum (the `Total` line of `text`). `join` and `remove`
//! take no body as `{}` (every field is optional). What a request names that is not
//! there is 404 with the sentence Discord's answer uses: a character (`DELETE
//! /characters/{name}`, `join` with `character`), a roll id (one that is not an id at
//! all is 400), an alias, a command of `help`, the caller's entry in the tracker
//! (`remove`).
//! | POST   | `/api/rolls/initiative/{channel}/next?user=[&round=&turn=]` |             |
//! | POST   | `/api/rolls/initiative/{channel}/reset?user=`|                            |

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use feature::access::{Access, BodyLimit, Caller as WebCaller, Denied, JsonBody, Routes};
use serde::Deserialize;

mod table;

/// A JSON body whose every field is optional: no body at all is taken as `{}`; a
/// body is read as [`JsonBody`] reads one (415 unless JSON, 400 for a bad one, 413
/// naming the server's limit).
#[derive(Debug)]
struct OptionalJson<T>(T);

impl<S, T> axum::extract::FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Default,
{
    type Rejection = Denied;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let limit = BodyLimit::of(&request);
        let (parts, body) = request.into_parts();
        let request = axum::extract::Request::from_parts(parts.clone(), body);
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| Denied::unreadable_body(&rejection, limit))?;
        if bytes.is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let JsonBody(value) = JsonBody::<T>::from_request(request, state).await?;
        Ok(OptionalJson(value))
    }
}

use crate::RollsError;
use crate::commands::Ctx;
use crate::domain::{self, Authenticated, Caller, ChannelId, UserId};
use crate::membership::{Membership, Verdict};
use crate::ops::{CharacterOp, HelpOp, InitOp, Operation, StatsOp, TrackerModel, TurnAt};

type Params = Query<BTreeMap<String, String>>;

/// An error answer: as [`RollsError::into_http`] words it, or the kit's refusal of
/// the caller ([`Denied`]).
#[derive(Debug)]
pub enum ApiError {
    Rolls(RollsError),
    Denied(Denied),
}

impl From<RollsError> for ApiError {
    fn from(e: RollsError) -> Self {
        ApiError::Rolls(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Rolls(e) => e.into_http(),
            ApiError::Denied(denied) => denied.into_response(),
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::Rolls(RollsError::refused(message))
}

/// Who the request acts for: the signed-in user of a session, authenticated (naming
/// anyone else is 403), or whoever an API token's `?user=` names, claimed.
fn user(caller: &WebCaller, params: &BTreeMap<String, String>) -> Result<Caller, ApiError> {
    let user = caller
        .acts_for(params.get("user").map(String::as_str))
        .map_err(ApiError::Denied)?;
    Ok(match Authenticated::signed_in(caller) {
        Some(who) if who.user() == user => who.into(),
        _ => Caller::Claimed(user),
    })
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

/// Most bytes of JSON in one answer.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Most characters of `text` and of `markdown` in an answer that had to be cut.
pub const MAX_ANSWER_TEXT: usize = 64 * 1024;

async fn run<O: Operation>(ctx: &Ctx, caller: Caller, op: O) -> Result<Response, ApiError>
where
    O::Model: 'static,
{
    let model = ctx.controller.run(caller, &op).await?;
    answer(ctx.controller.dice(), model).await
}

/// The answer to `model`, its JSON built ([`capped`]) in the dice pool's rolls lane:
/// a roll's answer runs to a megabyte of JSON before it is cut, CPU work that must
/// not hold a runtime worker.
async fn answer<M>(pool: &crate::pool::DicePool, model: M) -> Result<Response, ApiError>
where
    M: serde::Serialize + Send + 'static,
{
    Ok(pool.roll(move || capped(&model)).await?)
}

/// `model` as JSON of at most [`MAX_ANSWER_BYTES`]: whole when it fits, else
/// without its result tree and with its texts cut (see the module docs).
fn capped<M: serde::Serialize>(model: &M) -> Response {
    let internal = |what: String| ApiError::Rolls(RollsError::Answer(what)).into_response();
    let body = match serde_json::to_vec(model) {
        Ok(body) => body,
        Err(error) => return internal(format!("answer not serialisable: {error}")),
    };
    if body.len() <= MAX_ANSWER_BYTES {
        return json_body(body);
    }
    let mut value = match serde_json::to_value(model) {
        Ok(value) => value,
        Err(error) => return internal(format!("answer not serialisable: {error}")),
    };
    if let Some(fields) = value.as_object_mut() {
        fields.remove("outcome");
        for name in ["text", "markdown"] {
            if let Some(serde_json::Value::String(text)) = fields.get_mut(name)
                && text.chars().count() > MAX_ANSWER_TEXT
            {
                *text = text.chars().take(MAX_ANSWER_TEXT).collect::<String>() + "…";
            }
        }
        fields.insert(
            "cut".to_owned(),
            serde_json::Value::String(format!(
                "the whole answer is {} bytes, over the limit of {MAX_ANSWER_BYTES}: `outcome` is left out and `text` and `markdown` are cut to {MAX_ANSWER_TEXT} characters",
                body.len()
            )),
        );
    }
    match serde_json::to_vec(&value) {
        Ok(body) if body.len() <= MAX_ANSWER_BYTES => json_body(body),
        Ok(body) => internal(format!(
            "answer of {} bytes still over the limit after cutting",
            body.len()
        )),
        Err(error) => internal(format!("answer not serialisable: {error}")),
    }
}

fn json_body(body: Vec<u8>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The routes, to be merged at the root (paths start with `/api/rolls/`): reading
/// takes a signed-in user or a token with `rolls:read`, changing takes a signed-in
/// user (with the session's CSRF token) or a token with `rolls:write`.
pub fn routes(context: &feature::Context, ctx: Ctx) -> Routes {
    let read = || Access::user_or_token("rolls:read");
    let write = || Access::user_or_token("rolls:write");
    Routes::new(&context.sessions)
        .get("/api/rolls/roll", read(), table::roll)
        .get("/api/rolls/odds", read(), table::odds)
        .get("/api/rolls/rolls/{id}", read(), table::roll_check)
        .get("/api/rolls/aliases", read(), table::aliases_list)
        .post("/api/rolls/aliases", write(), table::aliases_add)
        .delete("/api/rolls/aliases/{name}", write(), table::aliases_remove)
        .get("/api/rolls/stats", read(), stats)
        .get("/api/rolls/help", read(), help)
        .get("/api/rolls/characters", read(), characters_list)
        .post("/api/rolls/characters", write(), characters_add)
        .delete("/api/rolls/characters/{name}", write(), characters_remove)
        .get("/api/rolls/initiative/{channel}", read(), init_get)
        .post("/api/rolls/initiative/{channel}/join", write(), init_join)
        .post(
            "/api/rolls/initiative/{channel}/remove",
            write(),
            init_remove,
        )
        .post("/api/rolls/initiative/{channel}/next", write(), init_next)
        .post("/api/rolls/initiative/{channel}/reset", write(), init_reset)
        .with_state(ctx)
}

async fn stats(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let all = match p.get("all").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => return Err(bad(format!("`all` must be true or false, not `{other}`"))),
    };
    run(&ctx, who, StatsOp { all }).await
}

async fn help(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let command = p.get("command").cloned();
    let catalogue = ctx.catalogue.clone();
    run(
        &ctx,
        who,
        HelpOp {
            command,
            place: domain::HelpPlace::Server,
            catalogue,
        },
    )
    .await
}

async fn characters_list(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let user = who.user();
    run(&ctx, who, CharacterOp::List { user }).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddCharacter {
    #[serde(default)]
    name: String,
    #[serde(default)]
    initiative_modifier: i64,
    /// An initiative expression (`1d20+3`), rolled instead of the modifier.
    #[serde(default)]
    initiative: Option<String>,
}

async fn characters_add(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Query(p): Params,
    JsonBody(b): JsonBody<AddCharacter>,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let user = who.user();
    let op = CharacterOp::Add {
        user,
        name: b.name,
        initiative_modifier: b.initiative_modifier,
        initiative: b.initiative,
    };
    run(&ctx, who, op).await
}

async fn characters_remove(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let user = who.user();
    run(&ctx, who, CharacterOp::Remove { user, name }).await
}

/// What a request does with a channel, in the words of a refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Use {
    /// Reads its initiative tracker.
    See,
    /// Changes its initiative tracker.
    Change,
    /// Rolls with the aliases of its server.
    Roll,
}

impl Use {
    fn refusal(self) -> &'static str {
        match self {
            Use::See => "only members of this channel's server may see its initiative tracker",
            Use::Change => {
                "only members of this channel's server may change its initiative tracker"
            }
            Use::Roll => "only members of this channel's server may roll with its aliases",
        }
    }

    fn direct_message(self) -> &'static str {
        match self {
            Use::See | Use::Change => {
                "a direct message's initiative tracker is read and changed from Discord only"
            }
            Use::Roll => "a direct message has no server aliases; roll without `channel`",
        }
    }
}

/// Refuses someone who is not a member of the channel's guild or does not see the
/// channel.
async fn member_of(
    membership: &Membership,
    channel: ChannelId,
    caller: Caller,
    to: Use,
) -> Result<(), ApiError> {
    let verdict = membership.check(channel, caller.user()).await.map_err(|error| {
        tracing::warn!(%error, %channel, "could not check who may change this tracker");
        ApiError::Denied(Denied::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "could not ask Discord whether you are a member of this channel's server; try again shortly",
        ))
    })?;
    match verdict {
        Verdict::Sees => Ok(()),
        Verdict::NotMember => Err(ApiError::Denied(Denied::forbidden(to.refusal()))),
        Verdict::NoGuild => Err(ApiError::Denied(Denied::forbidden(to.direct_message()))),
        // A member kept out of the channel is answered as if it did not exist, as
        // the clips library does: a 403 would tell them it is there.
        Verdict::UnknownChannel | Verdict::Hidden => Err(ApiError::Denied(Denied::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("no channel {channel} that both you and Tavern can see"),
        ))),
    }
}

/// Runs a tracker change for a member of the channel's guild and, best effort,
/// edits the Discord tracker message so the channel shows what REST clients did.
async fn init_change(ctx: &Ctx, caller: Caller, op: InitOp) -> Result<Response, ApiError> {
    member_of(&ctx.membership, op.channel(), caller, Use::Change).await?;
    let model: TrackerModel = ctx.controller.run(caller, &op).await?;
    if model.moved_on {
        return Err(ApiError::Denied(Denied::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "{} Nothing changed; the tracker is at round {}, turn {}.",
                model.message, model.tracker.round, model.tracker.turn
            ),
        )));
    }
    if let Some(message) = model.tracker.message_id {
        let reply = crate::commands::tracker_reply(&model);
        if let Err(error) = ctx.discord.edit(model.channel, message, &reply).await {
            tracing::warn!(%error, channel = %model.channel, "could not update the tracker message");
        }
    }
    Ok(capped(&model))
}

async fn init_get(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Path(c): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let channel = channel(&c)?;
    member_of(&ctx.membership, channel, who, Use::See).await?;
    run(&ctx, who, InitOp::Get { channel }).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    character: Option<String>,
    roll: Option<String>,
    /// Shown when the user has no character (default: [`join_name`]).
    name: Option<String>,
}

/// The name a user without characters joins under when the request gives none, as
/// `/init join` would show them: their Discord display name, else their username. A
/// signed-in user's comes with their session (from Discord's OAuth2); a token's
/// `?user=` is asked of Discord as a member of the channel's server, and when Discord
/// cannot say (it is down, or they are not a member) they join as [`UNNAMED_PLAYER`],
/// the tracker showing their mention beside it.
async fn join_name(ctx: &Ctx, caller: &WebCaller, channel: ChannelId, user: UserId) -> String {
    if let Some(signed_in) = caller.user().filter(|signed_in| signed_in.id == user) {
        return signed_in
            .global_name
            .clone()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| signed_in.username.clone());
    }
    match ctx.membership.name(channel, user).await {
        Ok(Some(name)) if !name.trim().is_empty() => name,
        Ok(_) => UNNAMED_PLAYER.to_owned(),
        Err(error) => {
            tracing::warn!(%error, %channel, %user, "could not ask Discord a joining player's name");
            UNNAMED_PLAYER.to_owned()
        }
    }
}

/// The name of a player who joins over REST with no character, no `name` and no
/// Discord name Tavern could learn.
pub const UNNAMED_PLAYER: &str = "Player";

async fn init_join(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Path(c): Path<String>,
    Query(p): Params,
    OptionalJson(b): OptionalJson<JoinBody>,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let user = who.user();
    let channel = channel(&c)?;
    let display_name = match b.name {
        Some(name) => name,
        None => {
            // Only a member who sees the channel is asked about (the change below
            // checks again, from what this check remembered).
            member_of(&ctx.membership, channel, who, Use::Change).await?;
            join_name(&ctx, &caller, channel, user).await
        }
    };
    let op = InitOp::Join {
        channel,
        user,
        character: b.character,
        roll: b.roll,
        display_name,
        once: false,
    };
    init_change(&ctx, who, op).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    character: Option<String>,
}

async fn init_remove(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Path(c): Path<String>,
    Query(p): Params,
    OptionalJson(b): OptionalJson<RemoveBody>,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let user = who.user();
    let channel = channel(&c)?;
    let op = InitOp::Remove {
        channel,
        user,
        character: b.character,
    };
    init_change(&ctx, who, op).await
}

async fn init_next(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Path(c): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let channel = channel(&c)?;
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        p.get(name)
            .map(|raw| {
                raw.parse::<u64>().map_err(|_| {
                    bad(format!(
                        "`{name}` must be a whole number of at least 0, not `{raw}`"
                    ))
                })
            })
            .transpose()
    };
    let expected = match (number("round")?, number("turn")?) {
        (None, None) => None,
        (Some(round), Some(turn)) => Some(TurnAt {
            round: u32::try_from(round).map_err(|_| bad(format!("no round {round}")))?,
            turn: usize::try_from(turn).map_err(|_| bad(format!("no turn {turn}")))?,
        }),
        _ => return Err(bad("give both `round` and `turn`, or neither")),
    };
    init_change(&ctx, who, InitOp::Next { channel, expected }).await
}

async fn init_reset(
    State(ctx): State<Ctx>,
    caller: WebCaller,
    Path(c): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let who = user(&caller, &p)?;
    let channel = channel(&c)?;
    init_change(&ctx, who, InitOp::Reset { channel }).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};
    use std::thread::ThreadId;

    use super::*;

    /// A model that notes the thread it is turned into JSON on.
    struct Noting(Arc<Mutex<Vec<ThreadId>>>);

    impl serde::Serialize for Noting {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            self.0.lock().unwrap().push(std::thread::current().id());
            serializer.serialize_str("noted")
        }
    }

    #[tokio::test]
    async fn an_answer_is_turned_into_json_in_the_dice_pool_not_on_the_runtime() {
        let runtime_thread = std::thread::current().id();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pool = crate::pool::DicePool::new(1, 1);
        let response = answer(&pool, Noting(Arc::clone(&seen))).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"\"noted\"");
        let seen = seen.lock().unwrap();
        assert!(!seen.is_empty(), "the model was never serialised");
        assert!(
            seen.iter().all(|id| *id != runtime_thread),
            "serialised on the runtime's thread"
        );
    }
}
