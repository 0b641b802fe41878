//! Adding Tavern to a guild, on the existing Discord login (the seed's
//! `install_intents`).
//!
//! 1. `POST /clips/install` (form: `guild_id`, CSRF): a manager of the guild (per their
//!    Discord guild list) gets an `install_intents` row (a random `state`, valid 10
//!    minutes, [`crate::domain::InstallIntent`]) and is sent (303) to Discord's
//!    authorize page with `scope=bot applications.commands`, the guild preselected and
//!    not changeable ([`discord::oauth::BotInstall`]), the permissions every running
//!    feature needs ([`BOT_PERMISSIONS`] and the others', from
//!    [`feature::Catalogue::bot_permissions`]: the campaigns' game channels and roles
//!    need Manage Channels and Manage Roles) and `redirect_uri` =
//!    `{public_url}/clips/install/callback`.
//! 2. `GET /clips/install/callback?code&state&guild_id`: the state is consumed first
//!    ([`crate::Repo::consume_intent`], one guarded `DELETE`): unknown or expired is 400,
//!    another user's is 403 (and stays for its owner). Then Discord's own refusal
//!    (`error=access_denied`: the user pressed Cancel) is a page saying nothing was
//!    added, and a `guild_id` other than the intent's is 400. Otherwise the guild is
//!    read from Discord as the bot (which proves the bot is in it), recorded with its
//!    owner as Discord names it (or, when Discord names none, the installing user, if
//!    the guild has no owner yet: [`crate::Repo::claim_guild`]), its channels are
//!    registered, and the browser goes to the guild's page.
//!
//! The code in the callback is not exchanged: a bot install needs no user token, and
//! the bot's presence in the guild is checked with the bot's own token instead.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use discord::model::{GuildId, permissions};
use discord::oauth::{BotInstall, Scope};
use serde::Deserialize;
use web::page::{Page, Problem};
use web::session::CurrentUser;

use super::{WebState, guild_path, must_manage, parse_guild, see_other, standing, storage_problem};
use crate::domain::{ConsumeError, InstallIntent, IntentState};
use crate::repo::{ChannelInfo, GuildInfo, RepoError, UserProfile};

/// What the archive needs of the bot in a guild: see channels, read their history (the
/// scans), and send messages (the commands' answers). The install link asks for these
/// and every other running feature's ([`feature::Catalogue::bot_permissions`]).
pub const BOT_PERMISSIONS: u64 =
    permissions::VIEW_CHANNEL | permissions::SEND_MESSAGES | permissions::READ_MESSAGE_HISTORY;

#[derive(Debug, Deserialize)]
pub(crate) struct InstallForm {
    #[serde(default)]
    guild_id: String,
}

/// `POST /clips/install`.
pub(crate) async fn start(
    State(state): State<WebState>,
    current: CurrentUser,
    page: Page,
    Form(form): Form<InstallForm>,
) -> Response {
    match leave_for_discord(&state, &current, &form).await {
        Ok(response) => response,
        Err(problem) => page.problem(problem),
    }
}

async fn leave_for_discord(
    state: &WebState,
    current: &CurrentUser,
    form: &InstallForm,
) -> Result<Response, Problem> {
    let guild: GuildId =
        discord::model::parse_id("guild id", form.guild_id.trim()).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "Check the form",
                format!(
                    "`{}` is not a Discord server id.",
                    super::quoted(&form.guild_id)
                ),
            )
        })?;
    let (standing, _) = standing(state, current, guild).await?;
    must_manage(standing)?;
    let Some(app) = state.install.as_ref() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Installs are off",
            "This Tavern has no Discord application configured for the web, so it cannot \
             send you to Discord to add the bot.",
        ));
    };
    let user = &current.user;
    state
        .repo
        .upsert_user(&UserProfile {
            id: user.id,
            username: Some(user.username.clone()),
            global_name: user.global_name.clone(),
            avatar: user.avatar.clone(),
        })
        .await
        .map_err(|e| storage_problem(&e))?;
    let intent = InstallIntent::new(IntentState::generate(), user.id, guild, state.clock.now());
    state
        .repo
        .create_intent(&intent)
        .await
        .map_err(|e| storage_problem(&e))?;
    let target = app.authorize_url(
        intent.state.expose(),
        &[Scope::Bot, Scope::ApplicationsCommands],
        Some(BotInstall {
            guild,
            permissions: BOT_PERMISSIONS | state.catalogue.bot_permissions(),
        }),
    );
    Ok(see_other(target.as_str()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    state: Option<String>,
    guild_id: Option<String>,
    error: Option<String>,
}

/// `GET /clips/install/callback`.
pub(crate) async fn callback(
    State(state): State<WebState>,
    current: CurrentUser,
    page: Page,
    Query(query): Query<CallbackQuery>,
) -> Response {
    match finish(&state, &current, &query).await {
        Ok(guild) => see_other(&guild_path(guild)),
        Err(problem) => page.problem(problem),
    }
}

fn unknown() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "Unknown install",
        "This answer from Discord does not belong to an install Tavern started (or it was \
         already finished). Start again from the clips page.",
    )
    .link("Your servers", super::CLIPS_PATH)
}

async fn finish(
    state: &WebState,
    current: &CurrentUser,
    query: &CallbackQuery,
) -> Result<GuildId, Problem> {
    let presented = query.state.as_deref().unwrap_or_default();
    let intent_state = IntentState::parse_token(presented).map_err(|_| unknown())?;
    let intent = match state
        .repo
        .consume_intent(&intent_state, current.user.id, state.clock.now())
        .await
    {
        Ok(intent) => intent,
        Err(RepoError::Intent(ConsumeError::Unknown)) => return Err(unknown()),
        Err(RepoError::Intent(ConsumeError::Expired)) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "Install expired",
                "This install was started more than 10 minutes ago and has expired. Start \
                 again from the clips page.",
            )
            .link("Your servers", super::CLIPS_PATH));
        }
        Err(RepoError::Intent(ConsumeError::Forbidden)) => {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "Not your install",
                "Another user started this install; only they can finish it.",
            ));
        }
        Err(other) => return Err(storage_problem(&other)),
    };
    let guild = intent.guild;
    if let Some(error) = query.error.as_deref() {
        tracing::info!(
            %guild,
            denied = error == "access_denied",
            "bot install not granted on Discord"
        );
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Tavern was not added",
            "Discord did not add Tavern to the server (the request was cancelled or \
             refused). Nothing was recorded.",
        )
        .link("Your servers", super::CLIPS_PATH));
    }
    if let Some(raw) = query.guild_id.as_deref()
        && parse_guild(raw).ok() != Some(guild)
    {
        tracing::warn!(%guild, "bot install callback for another guild than its intent");
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Another server",
            "Discord reports a different server from the one this install was for. \
             Nothing was recorded.",
        ));
    }
    let info = match state.discord.guild(guild).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "Tavern is not in the server",
                "Discord does not show Tavern in that server, so nothing was recorded. Try \
                 adding it again.",
            ));
        }
        Err(error) => {
            tracing::warn!(%error, %guild, "could not read a guild after an install");
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "Discord did not answer",
                "Tavern could not read the server from Discord; reload this page in a moment \
                 to try again.",
            ));
        }
    };
    match info.owner_id {
        Some(owner) => state
            .repo
            .upsert_guild(&GuildInfo {
                id: guild,
                name: info.name.clone(),
                icon: info.icon.clone(),
                owner: Some(owner),
            })
            .await
            .map_err(|e| storage_problem(&e))?,
        None => {
            state
                .repo
                .claim_guild(guild, &info.name, current.user.id)
                .await
                .map_err(|e| storage_problem(&e))?;
        }
    }
    tracing::info!(%guild, user = %current.user.id, "Tavern added to a guild");
    register_channels(state, guild).await;
    Ok(guild)
}

/// Registers the guild's channels with messages, so its page lists them at once (the
/// gateway keeps them current afterwards). A failure is logged, not fatal: the gateway's
/// guild create brings them too.
async fn register_channels(state: &WebState, guild: GuildId) {
    let channels = match state.discord.guild_channel_infos(guild).await {
        Ok(channels) => channels,
        Err(error) => {
            tracing::warn!(%error, %guild, "could not list a new guild's channels");
            return;
        }
    };
    for channel in channels.into_iter().filter(|c| c.kind.has_messages()) {
        let info = ChannelInfo {
            id: channel.id,
            guild,
            name: Some(channel.name),
            kind: Some(channel.kind.as_str().to_owned()),
            is_nsfw: channel.nsfw,
        };
        if let Err(error) = state.repo.upsert_channel(&info).await {
            tracing::warn!(%error, channel = %info.id, "could not register a new guild's channel");
        }
    }
}
