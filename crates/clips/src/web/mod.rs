//! The clip archive on the web, in Tavern's one layout (`web::page`) on its sessions,
//! CSRF protection and route declarations (`web::access`):
//!
//! - [`guilds`]: your guilds (those you share with Tavern, and those you may manage
//!   without it, with "Add Tavern"), a guild's channels with their reading toggles,
//!   quick and deep scans with their progress updated live, and the danger zone.
//! - [`install`]: adding Tavern to a guild, on the existing Discord login: an
//!   `install_intents` row, Discord's authorize page with the guild preselected, and
//!   the callback that records the guild and its owner.
//! - [`library`]: a guild's clips: a grid of posters that play inline, filters by
//!   channel, author and date, search by file name and message text, keyset paging,
//!   links back to the messages; each clip's own page, a link to share; expired CDN
//!   URLs are refreshed before a page shows them.
//!
//! | method | path | who |
//! |--------|------|-----|
//! | GET  | `/clips` | signed-in user |
//! | POST | `/clips/install` | a manager of the guild (+ CSRF) |
//! | GET  | `/clips/install/callback` | the user who started the install |
//! | GET  | `/clips/guilds/{guild}` | a member of the guild (read-only, the channels they see) or a manager |
//! | GET  | `/clips/guilds/{guild}/library` | a member of the guild (the channels they see) |
//! | GET  | `/clips/guilds/{guild}/clips/{attachment}` | a member of the guild who sees the clip's channel |
//! | POST | `/clips/guilds/{guild}/purge` | a manager (+ CSRF, the guild's name typed) |
//! | POST | `/clips/channels/{channel}/reading` | a manager (+ CSRF) |
//! | POST | `/clips/channels/{channel}/scans` | a manager (+ CSRF; `deep=1` for a deep scan; the channel read) |
//! | POST | `/clips/channels/{channel}/scans/cancel` | a manager (+ CSRF) |
//! | POST | `/clips/channels/{channel}/purge` | a manager (+ CSRF, the channel's name typed) |
//! | GET  | `/api/clips/channels/{channel}/scan` | a member of the channel's guild who sees the channel, or a manager (JSON) |
//!
//! # Who may do what
//! Discord says, with the signed-in user's own token (`GET /users/@me/guilds`, the
//! login's `guilds` scope): a guild in the user's list makes them a member, who sees
//! the guild's channels and library read-only; one they own, administer or hold Manage
//! Server in ([`discord::oauth::UserGuild::can_manage`]) makes them a manager, who may
//! also toggle, scan, cancel and purge. Anyone else gets 403, and nobody signed in is
//! sent to log in. The list is cached per user for a minute in Redis
//! ([`crate::schema::library::USER_GUILDS_KEY_PREFIX`]), so page views and the progress
//! polling do not each ask Discord; a change of role shows within that minute.
//!
//! A member who does not manage the guild sees only the channels Discord shows them
//! ([`sight`]): the others' names, clips, authors and scans are absent from every page
//! and answer 404 as an unknown channel does, and Discord failing to say which ones
//! they see shows none. Managers see every channel, since they may read any of them.
//!
//! Every state-changing route is a POST form with the session's CSRF token; every
//! failure is a page (or, under `/api/`, a JSON sentence) that says what went wrong.

pub mod guilds;
pub mod install;
pub mod library;
pub mod sight;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base::Clock;
use discord::Discord;
use discord::model::GuildId;
use discord::oauth::{OAuthApp, OAuthError, UserGuild};
use feature::access::{Access, Routes};
use serde::{Deserialize, Serialize};
use store::Redis;
use web::access::Denied;
pub(crate) use web::page::see_other;
use web::page::{Page, Problem};
use web::session::CurrentUser;

use crate::repo::{Repo, RepoError, StoredChannel, StoredGuild};
use crate::scan::{ScanError, Scanner};
use crate::schema::library::{USER_GUILDS_TTL_SECS, user_guilds_key};

/// The guild list.
pub const CLIPS_PATH: &str = "/clips";
/// Starts adding Tavern to a guild.
pub const INSTALL_PATH: &str = "/clips/install";
/// Where Discord sends the browser back after adding the bot (register
/// `{public_url}/clips/install/callback` as a redirect URI of the Discord application).
pub const INSTALL_CALLBACK_PATH: &str = "/clips/install/callback";

/// A guild's page.
pub fn guild_path(guild: GuildId) -> String {
    format!("/clips/guilds/{guild}")
}

/// A guild's library.
pub fn library_path(guild: GuildId) -> String {
    format!("/clips/guilds/{guild}/library")
}

/// One clip's page in a guild's library, by its attachment id.
pub fn clip_path(guild: GuildId, attachment: u64) -> String {
    format!("/clips/guilds/{guild}/clips/{attachment}")
}

/// The install callback URL for a site at `public_url`.
pub fn install_callback_url(public_url: &url::Url) -> Result<url::Url, url::ParseError> {
    public_url.join(INSTALL_CALLBACK_PATH)
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    pub(crate) repo: Repo,
    pub(crate) redis: Redis,
    pub(crate) discord: Discord,
    pub(crate) scanner: Scanner,
    pub(crate) clock: Arc<dyn Clock>,
    /// The web login's Discord application (to read a user's guilds); `None` when
    /// Tavern has no Discord login, and then no page can tell who may see a guild.
    pub(crate) login: Option<OAuthApp>,
    /// The same application with the install callback as its redirect URI.
    pub(crate) install: Option<OAuthApp>,
    /// What every running feature declares: the install asks for their permissions.
    pub(crate) catalogue: feature::Catalogue,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("login", &self.login.is_some())
            .finish_non_exhaustive()
    }
}

impl WebState {
    pub fn new(ctx: &feature::Context, repo: Repo, scanner: Scanner) -> WebState {
        let install = match install_callback_url(&ctx.public_url) {
            Ok(callback) => ctx
                .discord_login
                .as_ref()
                .map(|app| app.clone().with_redirect_uri(callback)),
            Err(error) => {
                tracing::error!(%error, "the install callback URL cannot be built; installs are off");
                None
            }
        };
        WebState {
            repo,
            redis: ctx.redis.clone(),
            discord: ctx.discord.clone(),
            scanner,
            clock: ctx.clock.clone(),
            login: ctx.discord_login.clone(),
            install,
            catalogue: ctx.catalogue.clone(),
        }
    }
}

/// The routes over the context's stores, Discord and login, with a scan engine of
/// their own (the scan worker picks up what they queue).
pub fn routes_for(ctx: &feature::Context) -> Routes {
    let repo = Repo::new(&ctx.postgres);
    let scanner = Scanner::new(repo.clone(), ctx.discord.clone(), ctx.clock.clone())
        .with_sight_cache(ctx.redis.clone());
    routes(ctx, WebState::new(ctx, repo, scanner))
}

/// The routes, each with who may call it (see the module docs).
pub fn routes(ctx: &feature::Context, state: WebState) -> Routes {
    Routes::new(&ctx.sessions)
        .get(CLIPS_PATH, Access::User, guilds::list)
        .post(INSTALL_PATH, Access::User, install::start)
        .get(INSTALL_CALLBACK_PATH, Access::User, install::callback)
        .get("/clips/guilds/{guild}", Access::User, guilds::page)
        .get("/clips/guilds/{guild}/library", Access::User, library::page)
        .get(
            "/clips/guilds/{guild}/clips/{clip}",
            Access::User,
            library::clip_page,
        )
        .post(
            "/clips/guilds/{guild}/purge",
            Access::User,
            guilds::purge_guild,
        )
        .post(
            "/clips/channels/{channel}/reading",
            Access::User,
            guilds::reading,
        )
        .post(
            "/clips/channels/{channel}/scans",
            Access::User,
            guilds::start_scan,
        )
        .post(
            "/clips/channels/{channel}/scans/cancel",
            Access::User,
            guilds::cancel_scan,
        )
        .post(
            "/clips/channels/{channel}/purge",
            Access::User,
            guilds::purge_channel,
        )
        .get(
            "/api/clips/channels/{channel}/scan",
            Access::User,
            guilds::scan_status,
        )
        .with_state(state)
}

/// A guild of the signed-in user, as Discord listed it (and the cache keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyGuild {
    pub id: GuildId,
    pub name: String,
    pub owner: bool,
    pub permissions: u64,
}

impl MyGuild {
    /// Owner, Administrator or Manage Server.
    pub fn can_manage(&self) -> bool {
        UserGuild {
            id: self.id,
            name: String::new(),
            owner: self.owner,
            permissions: self.permissions,
        }
        .can_manage()
    }
}

/// What the signed-in user may do in a guild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Sees the guild's channels and library.
    Member,
    /// Also toggles, scans, cancels and purges.
    Manager,
}

impl Standing {
    pub fn manages(self) -> bool {
        self == Standing::Manager
    }
}

/// The signed-in user's guilds: from the cache, else from Discord with the session's
/// access token (then cached for [`USER_GUILDS_TTL_SECS`]).
pub(crate) async fn my_guilds(
    state: &WebState,
    current: &CurrentUser,
) -> Result<Vec<MyGuild>, Problem> {
    let key = user_guilds_key(current.user.id);
    if let Some(guilds) = cached(state, &key, "guild list").await {
        return Ok(guilds);
    }
    let Some(app) = state.login.as_ref() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Discord login is off",
            "This Tavern has no Discord login configured, so it cannot tell which servers \
             you are in.",
        ));
    };
    let log_in_again = || {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "Log in again",
            "Tavern can no longer ask Discord which servers you are in (your Discord \
             authorisation expired or was revoked). Log in again to continue.",
        )
        .link("Log in with Discord", "/login/discord?next=%2Fclips")
    };
    let Some(token) = current.session.discord_access_token() else {
        return Err(log_in_again());
    };
    let guilds = match app.current_user_guilds(&token).await {
        Ok(guilds) => guilds,
        Err(OAuthError::Unauthorized) => return Err(log_in_again()),
        Err(error) => {
            tracing::warn!(%error, user = %current.user.id, "could not read a user's guilds");
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "Discord did not answer",
                "Tavern could not ask Discord which servers you are in; try again in a moment.",
            ));
        }
    };
    let guilds: Vec<MyGuild> = guilds
        .into_iter()
        .map(|g| MyGuild {
            id: g.id,
            name: g.name,
            owner: g.owner,
            permissions: g.permissions,
        })
        .collect();
    cache(state, &key, &guilds, USER_GUILDS_TTL_SECS, "guild list").await;
    Ok(guilds)
}

/// A per-user answer kept in Redis as JSON at `key`; `None` (logged when it is not a
/// plain miss) when absent, unreadable or Redis is down: the caller asks Discord.
pub(crate) async fn cached<T: serde::de::DeserializeOwned>(
    state: &WebState,
    key: &str,
    what: &'static str,
) -> Option<T> {
    crate::cache::get(&state.redis, key, what).await
}

/// Keeps `value` at `key` as JSON for `ttl_secs` (a failure is logged: the next request
/// asks Discord again).
pub(crate) async fn cache<T: serde::Serialize>(
    state: &WebState,
    key: &str,
    value: &T,
    ttl_secs: u64,
    what: &'static str,
) {
    crate::cache::set(&state.redis, key, value, ttl_secs, what).await;
}

/// The user's standing in `guild`; 403 for a guild they are not in.
pub(crate) async fn standing(
    state: &WebState,
    current: &CurrentUser,
    guild: GuildId,
) -> Result<(Standing, MyGuild), Problem> {
    let guilds = my_guilds(state, current).await?;
    let Some(mine) = guilds.into_iter().find(|g| g.id == guild) else {
        tracing::info!(user = %current.user.id, %guild, "clips page refused: not a member");
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Not your server",
            "Discord does not list you as a member of this server, so Tavern does not show \
             you its clips.",
        )
        .link("Your servers", CLIPS_PATH));
    };
    let standing = if mine.can_manage() {
        Standing::Manager
    } else {
        Standing::Member
    };
    Ok((standing, mine))
}

/// 403 unless the user manages the guild.
pub(crate) fn must_manage(standing: Standing) -> Result<(), Problem> {
    if standing.manages() {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Managers only",
            "Only the server's owner, an administrator or someone with Manage Server may \
             change what Tavern reads, start or cancel scans, or purge the index. You may \
             browse the library.",
        ))
    }
}

/// A channel Tavern knows and the user sees (see [`sight`]), with the user's standing
/// in its guild; a channel they do not see is 404, as an unknown one.
pub(crate) async fn channel_standing(
    state: &WebState,
    current: &CurrentUser,
    raw: &str,
) -> Result<(StoredChannel, Standing), Problem> {
    let not_found =
        || Problem::not_found(format!("`{}` is not a channel Tavern knows.", quoted(raw)));
    let id = discord::model::parse_id("channel id", raw).map_err(|_| not_found())?;
    let channel = state
        .repo
        .channel(id)
        .await
        .map_err(|e| storage_problem(&e))?
        .ok_or_else(not_found)?;
    let (standing, mine) = standing(state, current, channel.info.guild).await?;
    if !sight::sight(state, current, standing, &mine)
        .await?
        .sees(channel.info.id)
    {
        tracing::info!(user = %current.user.id, channel = %channel.info.id, "clips channel refused: the member does not see it");
        return Err(not_found());
    }
    Ok((channel, standing))
}

/// A channel Tavern knows whose guild the user manages; 404 or 403 otherwise.
pub(crate) async fn managed_channel(
    state: &WebState,
    current: &CurrentUser,
    raw: &str,
) -> Result<StoredChannel, Problem> {
    let (channel, standing) = channel_standing(state, current, raw).await?;
    must_manage(standing)?;
    Ok(channel)
}

/// The guild as Tavern stored it; `missing` when Tavern is not in it.
pub(crate) async fn stored_guild(
    state: &WebState,
    guild: GuildId,
    missing: impl FnOnce() -> Problem,
) -> Result<StoredGuild, Problem> {
    state
        .repo
        .guild(guild)
        .await
        .map_err(|e| storage_problem(&e))?
        .ok_or_else(missing)
}

/// A channel's name, or its id when Discord gave none.
pub(crate) fn channel_name(channel: &StoredChannel) -> String {
    channel
        .info
        .name
        .clone()
        .unwrap_or_else(|| channel.info.id.to_string())
}

/// What was typed, cut short, to quote it back in a problem.
pub(crate) fn quoted(raw: &str) -> String {
    web::page::quoted(raw)
}

/// A handler's answer: what it built, or its problem as a page.
pub(crate) fn respond(page: &Page, result: Result<impl IntoResponse, Problem>) -> Response {
    match result {
        Ok(answer) => answer.into_response(),
        Err(problem) => page.problem(problem),
    }
}

/// A guild id from the path; 404 for anything else.
pub(crate) fn parse_guild(raw: &str) -> Result<GuildId, Problem> {
    discord::model::parse_id("guild id", raw)
        .map_err(|_| Problem::not_found(format!("`{}` is not a Discord server id.", quoted(raw))))
}

/// A repository failure as a page: a storage failure in the kit's words, logged by
/// `feature::reply` (an outage once, when it begins; broken data every time), an
/// outage's page marked as one (`Retry-After`, not a failed request each).
pub(crate) fn storage_problem(error: &RepoError) -> Problem {
    match error {
        RepoError::Storage(storage) => {
            let problem = Problem::new(
                feature::reply::status(storage),
                "Something went wrong",
                feature::reply::user_message(storage),
            );
            if feature::reply::is_outage(storage) {
                problem.outage()
            } else {
                problem
            }
        }
        RepoError::UnknownChannel(_) | RepoError::UnknownGuild(_) | RepoError::UnknownRun(_) => {
            Problem::new(
                StatusCode::NOT_FOUND,
                "Something went wrong",
                error.to_string(),
            )
        }
        refusal => Problem::new(
            StatusCode::CONFLICT,
            "Something went wrong",
            refusal.to_string(),
        ),
    }
}

/// A scan engine failure as a page.
pub(crate) fn scan_problem(error: &ScanError) -> Problem {
    match error {
        ScanError::Repo(repo) => storage_problem(repo),
        ScanError::UnknownChannel(_) | ScanError::NotInGuild(_) | ScanError::UnknownRun(_) => {
            Problem::not_found(error.to_string())
        }
        ScanError::NotReading(_) => Problem::new(
            StatusCode::CONFLICT,
            "Not read by Tavern",
            "Tavern does not read this channel: press \"Read this channel\" first, then \
             scan. Nothing was queued.",
        ),
        ScanError::Unreadable { missing, .. } => Problem::new(
            StatusCode::CONFLICT,
            "Tavern cannot read this channel",
            format!(
                "Discord does not give Tavern {names} in this channel, so it cannot read its \
                 history and does not start reading it. Grant Tavern {names} in the channel's \
                 permissions (for Tavern's role or Tavern itself), then try again.",
                names = crate::domain::permission_names(missing)
            ),
        ),
        ScanError::Busy => Problem::new(
            StatusCode::CONFLICT,
            "A scan is running",
            "Another worker is scanning this channel right now; wait for it to finish.",
        ),
        other => {
            tracing::warn!(error = %other, "clips web: the scan engine refused");
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "The scan could not start",
                other.to_string(),
            )
        }
    }
}

/// A page's problem as the API's JSON sentence, with the same status.
pub(crate) fn as_denied(problem: &Problem) -> Denied {
    Denied::new(problem.status, problem.sentence.clone())
}

/// A size in bytes as people read it (`12.3 MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration in seconds as `m:ss` (or `h:mm:ss`).
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return String::new();
    }
    let total = secs.round() as u64;
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_outage_is_an_outage_s_page_and_broken_data_is_not() {
        use axum::response::IntoResponse as _;
        let down = RepoError::Storage(feature::StorageError::from(store::StoreError::Timeout(
            std::time::Duration::from_secs(5),
        )));
        let response = storage_problem(&down).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            web::Outage::marks(&response),
            "not a failed request each time"
        );
        assert!(response.headers().contains_key("retry-after"));
        let broken = RepoError::Storage(feature::StorageError::corrupt("x", "not JSON"));
        let response = storage_problem(&broken).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!web::Outage::marks(&response));
        assert!(!response.headers().contains_key("retry-after"));
    }

    #[test]
    fn sizes_and_durations_read_like_people_write_them() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(12_345_678), "12.3 MB");
        assert_eq!(human_size(2_000_000_000), "2.0 GB");
        assert_eq!(human_duration(5.4), "0:05");
        assert_eq!(human_duration(754.0), "12:34");
        assert_eq!(human_duration(3725.0), "1:02:05");
        assert_eq!(human_duration(f64::NAN), "");
    }

    #[test]
    fn managers_are_owners_admins_and_manage_server() {
        let guild = |owner, permissions| MyGuild {
            id: GuildId::new(1),
            name: "g".into(),
            owner,
            permissions,
        };
        assert!(guild(true, 0).can_manage());
        assert!(guild(false, 1 << 5).can_manage());
        assert!(guild(false, 1 << 3).can_manage());
        assert!(!guild(false, 1 << 10).can_manage());
    }
}
