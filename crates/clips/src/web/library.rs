//! A guild's clip library: `GET /clips/guilds/{guild}/library?channel=&author=&from=&to=&q=&before=`.
//!
//! - A grid of clips, newest first, [`PAGE_SIZE`] a page: each tile is the video itself
//!   (`<video preload="metadata">`, so the browser fetches only enough to draw its first
//!   frame as the poster, and plays it inline on a click) with its file name, duration,
//!   size, author, channel and date, the message's text, and a link back to the message
//!   in Discord. Each tile carries `data-attachment-id`.
//! - Filters: channel, author, a date range (`from` and `to`, both days inclusive, in
//!   UTC), and a search in file names and message texts (`q`, case-insensitive).
//!   Each bad value is a 400 page naming the field.
//! - Paging by keyset: "Older clips" carries `before=` the last tile's cursor
//!   ([`crate::repo::library::LibraryCursor`]), never an offset, so every page costs
//!   the same however deep (see [`crate::schema::library`]).
//! - Discord's CDN URLs are signed and expire (their `ex` parameter,
//!   [`crate::domain::cdn_url_expiry`]). URLs that expired
//!   or expire within [`REFRESH_MARGIN`] are refreshed with Discord
//!   (`POST /attachments/refresh-urls`, 50 at a time) before the page renders, and the
//!   new ones stored. If Discord does not answer, the page shows the old URLs (those
//!   tiles may not play) and says so.
//!
//! Each clip also has a page of its own, `GET /clips/guilds/{guild}/clips/{attachment}`
//! (the tile's file name links to it), a link members can share: the video at full
//! width, its details, the message's whole text, and links to the message in Discord,
//! the clips of its channel and the library. A clip the guild does not have, and one
//! in a channel the member does not see, are the same 404.
//!
//! Any member of the guild (per their Discord guild list) may see it, with the clips,
//! channels and authors of the channels Discord shows them ([`super::sight`]; a
//! manager sees every channel). `channel=` naming a channel Tavern does not know in
//! the guild, or one the member does not see, is a 404 page, the same for both.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use discord::Discord;
use discord::model::{ChannelId, GuildId, UserId};
use maud::{Markup, html};
use serde::Deserialize;
use web::page::{Page, Problem};
use web::session::CurrentUser;

use super::sight::sight;
use super::{
    WebState, channel_name, clip_path, guild_path, human_duration, human_size, library_path,
    parse_guild, quoted, respond, standing, storage_problem, stored_guild,
};
use crate::domain::cdn_url_expiry;
use crate::repo::StoredChannel;
use crate::repo::library::{LibraryClip, LibraryCursor, LibraryFilter, RefreshedUrl, SearchText};

/// Clips on a page.
pub const PAGE_SIZE: u32 = 24;
/// URLs expiring sooner than this are refreshed before a page shows them.
pub const REFRESH_MARGIN: TimeDelta = TimeDelta::minutes(5);
/// Discord refreshes at most this many URLs per request.
const REFRESH_BATCH: usize = 50;

/// The query of a library page, as typed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LibraryQuery {
    channel: Option<String>,
    author: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    before: Option<String>,
}

fn present(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn bad(sentence: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "Check the filters", sentence)
}

fn day(field: &str, raw: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        bad(format!(
            "“{field}” must be a day written YYYY-MM-DD, not “{}”.",
            quoted(raw)
        ))
    })
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The id a filter `field` names, if given; 400 naming the field (which must be `what`)
/// otherwise.
fn id_filter<T>(
    raw: &Option<String>,
    field: &'static str,
    what: &str,
) -> Result<Option<discord::model::Id<T>>, Problem> {
    present(raw)
        .map(|raw| {
            discord::model::parse_id::<T>(field, raw)
                .map_err(|_| bad(format!("“{field}” must be {what}, not “{}”.", quoted(raw))))
        })
        .transpose()
}

/// The filter and cursor a query asks for; a 400 page naming the field otherwise.
pub(crate) fn parse_query(
    guild: GuildId,
    query: &LibraryQuery,
) -> Result<(LibraryFilter, Option<LibraryCursor>), Problem> {
    let mut filter = LibraryFilter::guild(guild);
    filter.channel = id_filter(&query.channel, "Channel", "a channel id")?;
    filter.author = id_filter(&query.author, "Author", "a user id")?;
    let from = present(&query.from)
        .map(|raw| day("From", raw))
        .transpose()?;
    let to = present(&query.to).map(|raw| day("To", raw)).transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(bad(format!(
            "“From” ({from}) is after “To” ({to}): nothing can be in between."
        )));
    }
    filter.from = from.map(midnight);
    filter.to = to.and_then(|d| d.succ_opt()).map(midnight);
    if let Some(raw) = present(&query.q) {
        filter.search = Some(SearchText::parse(raw).map_err(|e| bad(format!("“Search”: {e}.")))?);
    }
    let cursor = present(&query.before)
        .map(|raw| raw.parse::<LibraryCursor>())
        .transpose()
        .map_err(|_| {
            bad(
                "The page link is not one this library made; start again from the first page."
                    .to_owned(),
            )
        })?;
    Ok((filter, cursor))
}

/// `GET /clips/guilds/{guild}/library`.
pub(crate) async fn page(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    current: CurrentUser,
    page: Page,
    Query(query): Query<LibraryQuery>,
) -> Response {
    respond(&page, library(&state, &raw, &current, &page, &query).await)
}

async fn library(
    state: &WebState,
    raw: &str,
    current: &CurrentUser,
    page: &Page,
    query: &LibraryQuery,
) -> Result<Markup, Problem> {
    let guild = parse_guild(raw)?;
    let (mut filter, cursor) = parse_query(guild, query)
        .map_err(|problem| problem.link("Show the whole library", super::library_path(guild)))?;
    let (standing, mine) = standing(state, current, guild).await?;
    let stored = stored_guild(state, guild, || {
        Problem::not_found("Tavern is not in this server, so it has no library here.")
    })
    .await?;
    let sight = sight(state, current, standing, &mine).await?;
    let channels: Vec<StoredChannel> = state
        .repo
        .guild_channels(guild)
        .await
        .map_err(|e| storage_problem(&e))?
        .into_iter()
        .filter(|c| c.info.kind.as_deref() != Some("category") && sight.sees(c.info.id))
        .collect();
    if let Some(asked) = filter.channel
        && !channels.iter().any(|c| c.info.id == asked)
    {
        return Err(Problem::not_found(format!(
            "`{asked}` is not a channel of {} that Tavern knows.",
            stored.info.name
        )));
    }
    filter.channels = sight.channels();
    let mut found = state
        .repo
        .library_page(&filter, cursor, PAGE_SIZE)
        .await
        .map_err(|e| storage_problem(&e))?;
    let stale_links = refresh_urls(state, &mut found.clips).await;
    let authors = match &filter.channels {
        None => state.repo.guild_authors(guild).await,
        Some(seen) => state.repo.guild_authors_in(guild, seen).await,
    }
    .map_err(|e| storage_problem(&e))?;
    let names: HashMap<ChannelId, String> = channels
        .iter()
        .map(|c| (c.info.id, channel_name(c)))
        .collect();
    let title = format!("{} · library", stored.info.name);
    // The whole library asked for: empty means nothing is indexed yet, not "no match".
    let everything = cursor.is_none() && filter.is_whole_library();
    Ok(page.render(
        &title,
        html! {
            section.library {
                h1 { "Clips of " (stored.info.name) }
                p { a href=(guild_path(guild)) { "Channels and scans" } }
                (filters(guild, query, &filter, &channels, &authors))
                @if stale_links {
                    p.muted.notice { "Discord did not refresh some video links; those clips may not play. Reload in a moment." }
                }
                @if found.clips.is_empty() && everything {
                    p.empty {
                        "No clips yet. The library holds the videos posted in the channels "
                        "Tavern reads: choose them, and scan their history, under "
                        a href=(guild_path(guild)) { "Channels and scans" } "."
                    }
                } @else if found.clips.is_empty() {
                    p.empty { "No clips match." }
                }
                ul.clip-grid {
                    @for clip in &found.clips {
                        (tile(clip, &names, &state.discord))
                    }
                }
                @if cursor.is_some() || found.next.is_some() {
                    nav.pager aria-label="Library pages" {
                        @if cursor.is_some() {
                            a.button.secondary href=(page_link(guild, query, None)) { "Newest clips" }
                            " "
                        }
                        @if let Some(next) = found.next {
                            a.button rel="next" data-next-page href=(page_link(guild, query, Some(next))) { "Older clips" }
                        }
                    }
                }
            }
        },
    ))
}

/// `GET /clips/guilds/{guild}/clips/{attachment}`.
pub(crate) async fn clip_page(
    State(state): State<WebState>,
    Path((raw_guild, raw_clip)): Path<(String, String)>,
    current: CurrentUser,
    page: Page,
) -> Response {
    respond(
        &page,
        one_clip(&state, &raw_guild, &raw_clip, &current, &page).await,
    )
}

async fn one_clip(
    state: &WebState,
    raw_guild: &str,
    raw_clip: &str,
    current: &CurrentUser,
    page: &Page,
) -> Result<Markup, Problem> {
    let guild = parse_guild(raw_guild)?;
    // An id that is not one, a clip the guild does not have and one in a channel the
    // member does not see all answer the same.
    let missing = || {
        Problem::not_found(format!(
            "This library has no clip “{}” that you can see.",
            quoted(raw_clip.trim())
        ))
        .link("Show the whole library", library_path(guild))
    };
    let attachment: u64 = raw_clip.trim().parse().map_err(|_| missing())?;
    let (standing, mine) = standing(state, current, guild).await?;
    let stored = stored_guild(state, guild, || {
        Problem::not_found("Tavern is not in this server, so it has no library here.")
    })
    .await?;
    let sight = sight(state, current, standing, &mine).await?;
    let clip = state
        .repo
        .library_clip(guild, attachment)
        .await
        .map_err(|e| storage_problem(&e))?
        .filter(|clip| sight.sees(clip.channel))
        .ok_or_else(missing)?;
    let mut clips = [clip];
    let stale_link = refresh_urls(state, &mut clips).await;
    let [clip] = clips;
    let channel = state
        .repo
        .channel(clip.channel)
        .await
        .map_err(|e| storage_problem(&e))?
        .map_or_else(|| clip.channel.to_string(), |c| channel_name(&c));
    let author = clip.author_shown();
    let in_channel = format!("{}?channel={}", library_path(guild), clip.channel);
    Ok(page.render(
        &format!("{} · {}", clip.filename, stored.info.name),
        html! {
            section.clip-page data-attachment-id=(clip.attachment) {
                p { a href=(library_path(guild)) { "Clips of " (stored.info.name) } }
                h1.clip-name { (clip.filename) }
                @if stale_link {
                    p.muted.notice { "Discord did not refresh this video's link; it may not play. Reload in a moment." }
                }
                video controls preload="metadata" playsinline src=(format!("{}#t=0.1", clip.url))
                    width=[clip.width] height=[clip.height]
                    aria-label=(format!("{} by {}", clip.filename, author)) {
                    a href=(clip.url) { "Download " (clip.filename) }
                }
                div.clip-meta {
                    span.clip-facts {
                        @if let Some(secs) = clip.duration_secs { (human_duration(secs)) " · " }
                        (human_size(clip.size_bytes))
                        @if let (Some(w), Some(h)) = (clip.width, clip.height) { " · " (w) "×" (h) }
                    }
                    span.clip-where {
                        "Posted by " (author) " in #" (channel) " on "
                        time datetime=(clip.posted_at.to_rfc3339()) { (clip.posted_at.format("%-d %B %Y at %H:%M UTC")) }
                    }
                    @if !clip.message_text.is_empty() {
                        p.clip-text { (clip.message_text) }
                    }
                    p.clip-links {
                        a.clip-link href=(message_url(&state.discord, &clip)) { "Open in Discord" }
                        " · "
                        a href=(in_channel) { "More clips of #" (channel) }
                    }
                }
            }
        },
    ))
}

/// The library URL with the same filters and `before` = `cursor`.
fn page_link(guild: GuildId, query: &LibraryQuery, cursor: Option<LibraryCursor>) -> String {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("channel", &query.channel),
        ("author", &query.author),
        ("from", &query.from),
        ("to", &query.to),
        ("q", &query.q),
    ] {
        if let Some(value) = present(value) {
            pairs.append_pair(key, value);
        }
    }
    if let Some(cursor) = cursor {
        pairs.append_pair("before", &cursor.to_string());
    }
    let query = pairs.finish();
    if query.is_empty() {
        super::library_path(guild)
    } else {
        format!("{}?{query}", super::library_path(guild))
    }
}

fn filters(
    guild: GuildId,
    query: &LibraryQuery,
    filter: &LibraryFilter,
    channels: &[StoredChannel],
    authors: &[(UserId, String)],
) -> Markup {
    let text = |raw: &Option<String>| present(raw).unwrap_or_default().to_owned();
    html! {
        form.filters method="get" action=(super::library_path(guild)) role="search" {
            label {
                "Channel "
                select name="channel" {
                    option value="" { "All channels" }
                    @for channel in channels {
                        option value=(channel.info.id) selected[filter.channel == Some(channel.info.id)] {
                            "#" (channel_name(channel))
                        }
                    }
                }
            }
            label {
                "Author "
                select name="author" {
                    option value="" { "Anyone" }
                    @for (id, name) in authors {
                        option value=(id) selected[filter.author == Some(*id)] {
                            @if name.is_empty() { (id) } @else { (name) }
                        }
                    }
                }
            }
            label { "From " input type="date" name="from" value=(text(&query.from)); }
            label { "To " input type="date" name="to" value=(text(&query.to)); }
            label {
                "Search "
                input type="search" name="q" value=(text(&query.q)) placeholder="file name or message" maxlength="200";
            }
            button type="submit" { "Show" }
        }
    }
}

fn tile(clip: &LibraryClip, channels: &HashMap<ChannelId, String>, discord: &Discord) -> Markup {
    let channel = channels
        .get(&clip.channel)
        .cloned()
        .unwrap_or_else(|| clip.channel.to_string());
    let author = clip.author_shown();
    // `#t=0.1`: the first frame, drawn as the poster once the metadata is in.
    let src = format!("{}#t=0.1", clip.url);
    html! {
        li.clip-tile data-attachment-id=(clip.attachment) {
            video controls preload="metadata" playsinline src=(src)
                width=[clip.width] height=[clip.height]
                aria-label=(format!("{} by {}", clip.filename, author)) {
                a href=(clip.url) { "Download " (clip.filename) }
            }
            div.clip-meta {
                a.clip-name href=(clip_path(clip.guild, clip.attachment)) { (clip.filename) }
                span.clip-facts {
                    @if let Some(secs) = clip.duration_secs { (human_duration(secs)) " · " }
                    (human_size(clip.size_bytes))
                }
                span.clip-where {
                    (author) " in #" (channel) " · "
                    time datetime=(clip.posted_at.to_rfc3339()) { (clip.posted_at.format("%-d %b %Y")) }
                }
                @if !clip.message_text.is_empty() {
                    p.clip-text { (clip.message_text.chars().take(280).collect::<String>()) }
                }
                a.clip-link href=(message_url(discord, clip))
                    aria-label=(format!("Open {} in Discord", clip.filename)) { "Open in Discord" }
            }
        }
    }
}

/// Refreshes the page's CDN URLs that expired or expire soon, stores them, and puts
/// them in the page. True when some could not be refreshed.
/// The clip's message in Discord's client (the sandbox's console in the sandbox).
fn message_url(discord: &Discord, clip: &LibraryClip) -> String {
    discord.message_url(Some(clip.guild), clip.channel, clip.message)
}

async fn refresh_urls(state: &WebState, clips: &mut [LibraryClip]) -> bool {
    let soon = state.clock.now() + REFRESH_MARGIN;
    let stale: Vec<String> = clips
        .iter()
        .filter(|c| c.url_expires_at.is_some_and(|t| t <= soon))
        .map(|c| c.url.clone())
        .collect();
    if stale.is_empty() {
        return false;
    }
    let mut fresh: HashMap<String, String> = HashMap::new();
    let mut failed = false;
    for batch in stale.chunks(REFRESH_BATCH) {
        match state.discord.refresh_attachment_urls(batch).await {
            Ok(pairs) => fresh.extend(pairs),
            Err(error) => {
                tracing::warn!(%error, urls = batch.len(), "could not refresh clip URLs");
                failed = true;
            }
        }
    }
    let mut updates = Vec::new();
    for clip in clips.iter_mut() {
        if let Some(url) = fresh.get(&clip.url) {
            let expires_at = cdn_url_expiry(url);
            clip.url = url.clone();
            clip.url_expires_at = expires_at;
            updates.push(RefreshedUrl {
                attachment: clip.attachment,
                url: url.clone(),
                expires_at,
            });
        }
    }
    if updates.len() < stale.len() {
        failed = true;
    }
    if let Err(error) = state.repo.store_clip_urls(&updates).await {
        tracing::warn!(%error, "could not store refreshed clip URLs");
    }
    failed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn query(pairs: &[(&str, &str)]) -> LibraryQuery {
        let mut q = LibraryQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "channel" => q.channel = v,
                "author" => q.author = v,
                "from" => q.from = v,
                "to" => q.to = v,
                "q" => q.q = v,
                "before" => q.before = v,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn filters_parse_and_bad_ones_name_their_field() {
        let guild = GuildId::new(9);
        let (filter, cursor) = parse_query(
            guild,
            &query(&[
                ("channel", "5"),
                ("from", "2025-06-01"),
                ("to", "2025-06-01"),
                ("q", " boss "),
                ("author", ""),
            ]),
        )
        .unwrap();
        assert_eq!(filter.channel, Some(ChannelId::new(5)));
        assert_eq!(filter.author, None);
        assert_eq!(
            filter.from.unwrap().to_rfc3339(),
            "2025-06-01T00:00:00+00:00"
        );
        assert_eq!(filter.to.unwrap().to_rfc3339(), "2025-06-02T00:00:00+00:00");
        assert_eq!(filter.search.unwrap().as_str(), "boss");
        assert!(cursor.is_none());
        for (pairs, field) in [
            (
                vec![("channel", "x")],
                "“Channel” must be a channel id, not “x”.",
            ),
            (
                vec![("author", "-1")],
                "“Author” must be a user id, not “-1”.",
            ),
            (
                vec![("from", "1 June")],
                "“From” must be a day written YYYY-MM-DD, not “1 June”.",
            ),
            (vec![("from", "2025-06-02"), ("to", "2025-06-01")], "after"),
            (
                vec![("before", "nope")],
                "The page link is not one this library made",
            ),
        ] {
            let problem = parse_query(guild, &query(&pairs)).unwrap_err();
            assert_eq!(problem.status, StatusCode::BAD_REQUEST);
            assert!(problem.sentence.contains(field), "{}", problem.sentence);
        }
    }

    #[test]
    fn page_links_keep_the_filters() {
        let guild = GuildId::new(9);
        let q = query(&[("q", "a b"), ("channel", "5")]);
        let cursor = LibraryCursor {
            posted_at: DateTime::from_timestamp(1, 0).unwrap(),
            attachment: 7,
        };
        assert_eq!(
            page_link(guild, &q, Some(cursor)),
            "/clips/guilds/9/library?channel=5&q=a+b&before=1000000-7"
        );
        assert_eq!(
            page_link(guild, &LibraryQuery::default(), None),
            "/clips/guilds/9/library"
        );
    }
}
