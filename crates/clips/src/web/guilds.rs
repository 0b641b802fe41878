//! Your guilds, a guild's channels, scans with live progress, and the danger zone.
//!
//! - `GET /clips`: the guilds you share with Tavern (a link to each) and the ones you
//!   may manage without it (an "Add Tavern" button, see [`super::install`]).
//! - `GET /clips/guilds/{guild}`: the guild's channels (not its categories; for a
//!   member who does not manage the guild, only those Discord shows them,
//!   [`super::sight`]), each with
//!   whether Tavern reads it, its clip count and its latest scan run. Managers get the
//!   reading toggle, quick and deep scan buttons, a cancel button while a run is
//!   unfinished, and the danger zone. A run that is queued or running is shown live:
//!   the page's script polls `GET /api/clips/channels/{channel}/scan` every second and
//!   stops once the run is final ([`ScanStatusBody::live`]); a channel the member does
//!   not see answers 404 there too.
//! - For managers, channels Tavern itself may not read (no View Channel or Read
//!   Message History for its roles there, [`crate::scan::Scanner::unreadable_channels`])
//!   are marked with what to grant; Discord failing to say marks none.
//! - Reading and scans follow `/clips`'s rule, kept by the engine
//!   ([`crate::scan::Scanner`]): a channel is scanned only while Tavern reads it
//!   (`request_if_reading` queues a run, or hands back the channel's unfinished one,
//!   and the scan worker picks it up; the page offers scans only for channels being
//!   read), and "Stop reading" also cancels its unfinished scan (`set_reading`), as
//!   `/clips disable` does. Cancel stops a run after its current page.
//! - The danger zone's purges delete the index of a channel or of the whole guild,
//!   reset the scan position and delete the scan runs that built it, so the next scan
//!   reads everything again. Each is
//!   confirmed by typing the channel's or the guild's name, checked here, on the server;
//!   a purge is refused while a scan of the channel is unfinished (it would go on
//!   adding clips to what was just emptied): asked first for the page's sentence, and
//!   decided in the purge's own statement, under the channels' scan-request locks
//!   ([`crate::Repo::purge_channel_index`]), so a scan queued in between refuses it too
//!   (409).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use discord::model::{ChannelId, GuildId};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use web::access::Denied;
use web::page::{Page, Problem};
use web::session::CurrentUser;

use super::sight::sight;
use super::{
    CLIPS_PATH, INSTALL_PATH, WebState, as_denied, channel_name, channel_standing, guild_path,
    library_path, managed_channel, must_manage, my_guilds, parse_guild, respond, scan_problem,
    see_other, standing, storage_problem, stored_guild,
};
use crate::domain::{ReadPermission, permission_names};
use crate::repo::{ScanRun, StoredChannel};
use crate::scan::{Requested, ScanMode};

/// `GET /clips`.
pub(crate) async fn list(
    State(state): State<WebState>,
    current: CurrentUser,
    page: Page,
) -> Response {
    let guilds = match my_guilds(&state, &current).await {
        Ok(guilds) => guilds,
        Err(problem) => return page.problem(problem),
    };
    let ids: Vec<GuildId> = guilds.iter().map(|g| g.id).collect();
    let known = match state.repo.known_guilds(&ids).await {
        Ok(known) => known,
        Err(e) => return page.problem(storage_problem(&e)),
    };
    let mut shared: Vec<_> = guilds.iter().filter(|g| known.contains(&g.id)).collect();
    let mut addable: Vec<_> = guilds
        .iter()
        .filter(|g| !known.contains(&g.id) && g.can_manage())
        .collect();
    shared.sort_by_key(|g| g.name.to_lowercase());
    addable.sort_by_key(|g| g.name.to_lowercase());
    let installs = state.install.is_some();
    let csrf = page.csrf_field();
    page.render(
        "Clips",
        html! {
            section.clips {
                h1 { "Clips" }
                p.lead {
                    "Every video your community posted in the channels Tavern reads, \
                     in one library."
                }
                h2 { "Your servers with Tavern" }
                @if shared.is_empty() {
                    p.muted { "None yet: Tavern is in none of your servers." }
                } @else {
                    ul.cards.guilds {
                        @for guild in &shared {
                            li data-guild-id=(guild.id) {
                                a href=(guild_path(guild.id)) { (guild.name) }
                                " "
                                @if guild.can_manage() { span.badge { "you manage it" } }
                                " "
                                a.muted href=(library_path(guild.id)) { "Open the library" }
                            }
                        }
                    }
                }
                @if !addable.is_empty() {
                    h2 { "Add Tavern to a server you manage" }
                    ul.cards.addable {
                        @for guild in &addable {
                            li data-guild-id=(guild.id) {
                                form.inline method="post" action=(INSTALL_PATH) {
                                    (csrf)
                                    input type="hidden" name="guild_id" value=(guild.id);
                                    span { (guild.name) } " "
                                    button type="submit" disabled[!installs] { "Add Tavern" }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

/// One channel's row on the guild page.
struct ChannelView {
    channel: StoredChannel,
    clips: i64,
    latest: Option<ScanRun>,
    /// What Tavern lacks to read the channel's history (managers' page only; empty
    /// when it reads it or when Discord could not say).
    unreadable: Vec<ReadPermission>,
}

/// `GET /clips/guilds/{guild}`.
pub(crate) async fn page(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    current: CurrentUser,
    page: Page,
) -> Response {
    respond(&page, guild_page(&state, &raw, &current, &page).await)
}

async fn guild_page(
    state: &WebState,
    raw: &str,
    current: &CurrentUser,
    page: &Page,
) -> Result<Markup, Problem> {
    let guild = parse_guild(raw)?;
    let (standing, mine) = standing(state, current, guild).await?;
    let stored = stored_guild(state, guild, || {
        Problem::not_found(format!(
            "Tavern is not in {} yet. A manager of the server can add it from the clips page.",
            mine.name
        ))
        .link("Your servers", CLIPS_PATH)
    })
    .await?;
    let sight = sight(state, current, standing, &mine).await?;
    let channels = state
        .repo
        .guild_channels(guild)
        .await
        .map_err(|e| storage_problem(&e))?;
    let mut clips = state
        .repo
        .clips_by_channel(guild)
        .await
        .map_err(|e| storage_problem(&e))?;
    let mut latest = state
        .repo
        .latest_runs(guild)
        .await
        .map_err(|e| storage_problem(&e))?;
    let manages = standing.manages();
    let mut unreadable = if manages {
        unreadable_channels(state, guild).await
    } else {
        BTreeMap::new()
    };
    let views: Vec<ChannelView> = channels
        .into_iter()
        .filter(|c| c.info.kind.as_deref() != Some("category") && sight.sees(c.info.id))
        .map(|channel| {
            let id = channel.info.id;
            ChannelView {
                clips: clips.remove(&id).unwrap_or(0),
                latest: latest.remove(&id),
                unreadable: unreadable.remove(&id).unwrap_or_default(),
                channel,
            }
        })
        .collect();
    let name = stored.info.name.clone();
    Ok(page.render(
        &name,
        html! {
            section.clips-guild {
                h1 { (name) }
                p {
                    a.button href=(library_path(guild)) { "Open the library" }
                    @if !manages {
                        " " span.muted { "You may browse; only the server's managers change what Tavern reads." }
                    }
                }
                h2 { "Channels" }
                @if views.is_empty() && manages {
                    p.muted { "Tavern knows no channel of this server yet." }
                } @else if views.is_empty() {
                    p.muted { "Tavern knows no channel of this server that Discord shows you." }
                }
                ul.channel-list {
                    @for view in &views {
                        (channel_row(page, view, manages))
                    }
                }
                @if manages {
                    (danger_zone(page, guild, &name, &views))
                }
            }
        },
    ))
}

/// The channels of `guild` Tavern cannot read, for the managers' page; none when
/// Discord cannot say (logged: the page still shows, without the marks).
async fn unreadable_channels(
    state: &WebState,
    guild: GuildId,
) -> BTreeMap<ChannelId, Vec<ReadPermission>> {
    match state.scanner.unreadable_channels(guild).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%guild, %error, "could not ask Discord which channels Tavern may read; the page marks none");
            BTreeMap::new()
        }
    }
}

fn channel_row(page: &Page, view: &ChannelView, manages: bool) -> Markup {
    let id = view.channel.info.id;
    let live = view.latest.as_ref().is_some_and(|r| !r.status.is_final());
    let status = view.latest.as_ref().map_or("none", |r| r.status.as_str());
    let scanned = view.latest.as_ref().map_or(0, |r| r.messages_scanned);
    let matched = view.latest.as_ref().map_or(0, |r| r.messages_matched);
    let error = view
        .latest
        .as_ref()
        .and_then(|r| r.error_message.clone())
        .unwrap_or_default();
    html! {
        li.channel id=(format!("channel-{id}")) data-channel-id=(id)
            data-live=(format!("/api/clips/channels/{id}/scan"))
            data-live-active=(if live { "true" } else { "false" })
            data-status=(status) {
            h3 {
                "#" (channel_name(&view.channel))
                @if view.channel.info.is_nsfw { " " span.badge { "NSFW" } }
                " "
                @if view.channel.is_reading { span.badge.ok { "read by Tavern" } }
                @else { span.badge { "not read" } }
                @if !view.unreadable.is_empty() {
                    " " span.badge data-field="unreadable" { "Tavern cannot read it" }
                }
            }
            @if !view.unreadable.is_empty() {
                p.scan { span.error data-field="unreadable-reason" {
                    "Discord does not give Tavern " (permission_names(&view.unreadable))
                    " in this channel, so it cannot read its history: grant them to Tavern's \
                     role (or Tavern itself) in the channel's permissions."
                } }
            }
            p.scan {
                "Latest scan: " strong data-field="status" { (status) }
                " · " span data-field="messages_scanned" { (scanned) } " messages read"
                " · " span data-field="messages_matched" { (matched) } " with clips"
                " · " span data-field="clips_in_channel" { (view.clips) } " clips in the index"
                " " span.error data-field="error_message" { (error) }
            }
            @if manages {
                div.actions {
                    form.inline method="post" action=(format!("/clips/channels/{id}/reading")) {
                        (page.csrf_field())
                        @if view.channel.is_reading {
                            input type="hidden" name="reading" value="0";
                            button type="submit" data-action="stop-reading" { "Stop reading" }
                        } @else {
                            input type="hidden" name="reading" value="1";
                            button type="submit" data-action="start-reading" { "Read this channel" }
                        }
                    }
                    @if view.channel.is_reading {
                        form.inline method="post" action=(format!("/clips/channels/{id}/scans")) {
                            (page.csrf_field())
                            button type="submit" data-action="quick-scan" data-idle-only hidden[live] { "Quick scan" }
                        }
                        form.inline method="post" action=(format!("/clips/channels/{id}/scans")) {
                            (page.csrf_field())
                            input type="hidden" name="deep" value="1";
                            button type="submit" data-action="deep-scan" data-idle-only hidden[live] { "Deep scan" }
                        }
                    } @else {
                        " " span.muted { "Read the channel to scan its history." }
                    }
                    form.inline method="post" action=(format!("/clips/channels/{id}/scans/cancel")) {
                        (page.csrf_field())
                        button.secondary type="submit" data-action="cancel-scan" data-live-only hidden[!live] { "Cancel the scan" }
                    }
                }
            }
        }
    }
}

fn danger_zone(page: &Page, guild: GuildId, guild_name: &str, views: &[ChannelView]) -> Markup {
    html! {
        section.danger-zone {
            h2 { "Danger zone" }
            p {
                "Purging deletes Tavern's index of the clips (the videos stay on Discord), \
                 resets the scan position and forgets the scans that built the index, so \
                 the next scan, quick or deep, reads everything again."
            }
            @for view in views {
                @let id = view.channel.info.id;
                @let name = channel_name(&view.channel);
                form.purge method="post" action=(format!("/clips/channels/{id}/purge")) data-purge-channel=(id) {
                    (page.csrf_field())
                    label for=(format!("purge-{id}")) { "Purge #" (name) "'s index: type " strong { (name) } " to confirm" } br;
                    input id=(format!("purge-{id}")) type="text" name="confirm" required autocomplete="off";
                    " "
                    button.danger type="submit" { "Purge the channel" }
                }
            }
            form method="post" action=(format!("/clips/guilds/{guild}/purge")) id="purge-guild" {
                (page.csrf_field())
                label for="purge-guild-confirm" { "Purge this server's whole index: type " strong { (guild_name) } " to confirm" } br;
                input #purge-guild-confirm type="text" name="confirm" required autocomplete="off";
                " "
                button.danger type="submit" { "Purge the server" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReadingForm {
    reading: String,
}

/// `POST /clips/channels/{channel}/reading`.
pub(crate) async fn reading(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    current: CurrentUser,
    page: Page,
    Form(form): Form<ReadingForm>,
) -> Response {
    let result = async {
        let channel = managed_channel(&state, &current, &raw).await?;
        let reading = match form.reading.as_str() {
            "1" | "true" | "on" => true,
            "0" | "false" | "off" => false,
            other => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "Check the form",
                    format!(
                        "`reading` must be 1 or 0, not `{}`.",
                        other.chars().take(20).collect::<String>()
                    ),
                ));
            }
        };
        let canceled = state
            .scanner
            .set_reading(channel.info.id, reading)
            .await
            .map_err(|e| scan_problem(&e))?;
        tracing::info!(channel = %channel.info.id, reading, canceled = canceled.map(|r| tracing::field::display(r.id)), user = %current.user.id, "reading toggled on the web");
        Ok(back_to(&channel))
    }
    .await;
    respond(&page, result)
}

fn back_to(channel: &StoredChannel) -> Response {
    see_other(&format!(
        "{}#channel-{}",
        guild_path(channel.info.guild),
        channel.info.id
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ScanForm {
    #[serde(default)]
    deep: Option<String>,
}

/// `POST /clips/channels/{channel}/scans`: queues a quick scan, or a deep one with
/// `deep=1`, of a channel Tavern reads (409 otherwise, as `/clips scan` refuses); an
/// unfinished run of the channel is kept (and continued), not doubled.
pub(crate) async fn start_scan(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    current: CurrentUser,
    page: Page,
    Form(form): Form<ScanForm>,
) -> Response {
    let result = async {
        let channel = managed_channel(&state, &current, &raw).await?;
        let mode = match form.deep.as_deref() {
            None | Some("" | "0" | "false") => ScanMode::Quick,
            Some(_) => ScanMode::Deep,
        };
        let requested = state
            .scanner
            .request_if_reading(channel.info.id, mode)
            .await
            .map_err(|e| scan_problem(&e))?;
        match requested {
            Requested::Queued(run) => {
                tracing::info!(channel = %channel.info.id, run = %run.id, user = %current.user.id, "scan queued from the web")
            }
            Requested::Existing(run) => {
                tracing::info!(channel = %channel.info.id, run = %run.id, "scan requested on the web; one is already unfinished")
            }
        }
        Ok(back_to(&channel))
    }
    .await;
    respond(&page, result)
}

/// `POST /clips/channels/{channel}/scans/cancel`.
pub(crate) async fn cancel_scan(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    current: CurrentUser,
    page: Page,
) -> Response {
    let result = async {
        let channel = managed_channel(&state, &current, &raw).await?;
        let canceled = state
            .scanner
            .cancel(channel.info.id)
            .await
            .map_err(|e| scan_problem(&e))?;
        tracing::info!(channel = %channel.info.id, canceled = canceled.is_some(), user = %current.user.id, "scan cancel from the web");
        Ok(back_to(&channel))
    }
    .await;
    respond(&page, result)
}

/// What `GET /api/clips/channels/{channel}/scan` answers: the channel's latest run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanStatusBody {
    pub channel_id: String,
    /// `None` when the channel was never scanned.
    pub run_id: Option<String>,
    /// The run's status, or `none`.
    pub status: String,
    pub messages_scanned: i64,
    pub messages_matched: i64,
    pub clips_in_channel: i64,
    pub error_message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// True while the run is queued or running: the page keeps polling.
    pub live: bool,
}

impl ScanStatusBody {
    fn new(channel: ChannelId, run: Option<&ScanRun>, clips: i64) -> ScanStatusBody {
        ScanStatusBody {
            channel_id: channel.to_string(),
            run_id: run.map(|r| r.id.to_string()),
            status: run.map_or("none", |r| r.status.as_str()).to_owned(),
            messages_scanned: run.map_or(0, |r| r.messages_scanned),
            messages_matched: run.map_or(0, |r| r.messages_matched),
            clips_in_channel: clips,
            error_message: run.and_then(|r| r.error_message.clone()),
            started_at: run.and_then(|r| r.started_at),
            finished_at: run.and_then(|r| r.finished_at),
            live: run.is_some_and(|r| !r.status.is_final()),
        }
    }
}

/// `GET /api/clips/channels/{channel}/scan`.
pub(crate) async fn scan_status(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    current: CurrentUser,
) -> Result<Json<ScanStatusBody>, Denied> {
    let (channel, _) = channel_standing(&state, &current, &raw)
        .await
        .map_err(|p| as_denied(&p))?;
    let id = channel.info.id;
    let run = state
        .scanner
        .latest(id)
        .await
        .map_err(|e| as_denied(&scan_problem(&e)))?;
    let clips = state
        .repo
        .clips_in_channel(id)
        .await
        .map_err(|e| as_denied(&storage_problem(&e)))?;
    Ok(Json(ScanStatusBody::new(id, run.as_ref(), clips)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PurgeForm {
    #[serde(default)]
    confirm: String,
}

/// Whether `typed` confirms `name` (surrounding spaces and a channel's `#` aside;
/// otherwise exactly, case included).
fn confirms(typed: &str, name: &str) -> bool {
    let typed = typed.trim();
    let typed = typed.strip_prefix('#').unwrap_or(typed);
    !name.is_empty() && typed == name
}

/// Refuses a purge while a scan of `channel` is unfinished.
async fn no_unfinished_scan(state: &WebState, channel: &StoredChannel) -> Result<(), Problem> {
    let latest = state
        .scanner
        .latest(channel.info.id)
        .await
        .map_err(|e| scan_problem(&e))?;
    if let Some(run) = latest.filter(|r| !r.status.is_final()) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "A scan is unfinished",
            format!(
                "A scan of #{} is {}; cancel it first, then purge. Nothing was purged.",
                channel_name(channel),
                run.status
            ),
        ));
    }
    Ok(())
}

/// `POST /clips/channels/{channel}/purge`.
pub(crate) async fn purge_channel(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    current: CurrentUser,
    page: Page,
    Form(form): Form<PurgeForm>,
) -> Response {
    let result = purge_one_channel(&state, &raw, &current, &form).await;
    let answer = result.map(|(channel, purged)| {
        purged_page(
            &page,
            channel.info.guild,
            html! {
                (purged.clips) " clips of #" (channel_name(&channel))
                " were removed from Tavern's index. The next scan reads the \
                 channel's whole history again."
            },
        )
    });
    respond(&page, answer)
}

/// The page after a purge: what was purged, and the way back to the guild.
fn purged_page(page: &Page, guild: GuildId, what: Markup) -> Markup {
    page.render(
        "Index purged",
        html! {
            section.content {
                h1 { "Index purged" }
                p { (what) }
                p { a href=(guild_path(guild)) { "Back to the server" } }
            }
        },
    )
}

/// 400 unless `typed` confirms the `kind`'s (channel's or server's) `name`.
fn must_confirm(typed: &str, kind: &str, name: &str, guild: GuildId) -> Result<(), Problem> {
    if confirms(typed, name) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Not confirmed",
            format!("Type the {kind}'s name, {name}, exactly to confirm. Nothing was purged."),
        )
        .link("Back to the server", guild_path(guild)))
    }
}

async fn purge_one_channel(
    state: &WebState,
    raw: &str,
    current: &CurrentUser,
    form: &PurgeForm,
) -> Result<(StoredChannel, crate::repo::library::Purged), Problem> {
    let channel = managed_channel(state, current, raw).await?;
    let name = channel_name(&channel);
    must_confirm(&form.confirm, "channel", &name, channel.info.guild)?;
    no_unfinished_scan(state, &channel).await?;
    let purged = state
        .repo
        .purge_channel_index(channel.info.id)
        .await
        .map_err(|e| storage_problem(&e))?;
    tracing::info!(channel = %channel.info.id, clips = purged.clips, user = %current.user.id, "channel index purged on the web");
    Ok((channel, purged))
}

/// `POST /clips/guilds/{guild}/purge`.
pub(crate) async fn purge_guild(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    current: CurrentUser,
    page: Page,
    Form(form): Form<PurgeForm>,
) -> Response {
    let result = async {
        let guild = parse_guild(&raw)?;
        let (standing, _) = standing(&state, &current, guild).await?;
        must_manage(standing)?;
        let stored =
            stored_guild(&state, guild, || Problem::not_found("Tavern is not in this server."))
                .await?;
        must_confirm(&form.confirm, "server", &stored.info.name, guild)?;
        let channels = state
            .repo
            .guild_channels(guild)
            .await
            .map_err(|e| storage_problem(&e))?;
        for channel in &channels {
            no_unfinished_scan(&state, channel).await?;
        }
        let purged = state
            .repo
            .purge_guild_index(guild)
            .await
            .map_err(|e| storage_problem(&e))?;
        tracing::info!(%guild, clips = purged.clips, user = %current.user.id, "guild index purged on the web");
        Ok((stored, purged))
    }
    .await;
    let answer = result.map(|(stored, purged)| {
        purged_page(
            &page,
            stored.info.id,
            html! {
                (purged.clips) " clips of " (stored.info.name) " were removed from \
                 Tavern's index, and " (purged.channels) " channels will be read \
                 from their start by their next scan."
            },
        )
    });
    respond(&page, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_are_confirmed_by_the_exact_name() {
        assert!(confirms("clips", "clips"));
        assert!(confirms("  #clips ", "clips"));
        assert!(!confirms("Clips", "clips"));
        assert!(!confirms("", ""));
        assert!(!confirms("clip", "clips"));
    }

    #[test]
    fn the_status_body_is_live_until_final() {
        let body = ScanStatusBody::new(ChannelId::new(5), None, 3);
        assert_eq!(body.status, "none");
        assert!(!body.live);
        assert_eq!(body.clips_in_channel, 3);
    }
}
