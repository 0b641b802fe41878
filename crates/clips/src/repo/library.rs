//! The web library over the clip index: pages of a guild's clips with filters, search
//! and a keyset cursor ([`Repo::library_page`]), the authors to filter by, refreshed
//! CDN URLs, the danger zone's purges, the guild page's counts and latest runs per
//! channel, and which guilds Tavern is in. Every statement
//! is in [`crate::schema::library`], which also says why the pages stay fast.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{Repo, RepoError, ScanRun, corrupt};
use crate::domain::{ChannelId, GuildId, MessageId, UserId, parse_snowflake};
use crate::schema::ScanRunRow;
use crate::schema::library::{self as sql, LibraryClipRow, LibraryShape};

/// The most clips one page may ask for.
pub const MAX_PAGE: u32 = 200;
/// The most authors [`Repo::guild_authors`] lists.
pub const MAX_AUTHORS: u32 = 500;

/// Words to search for in a clip's file name and its message's text: trimmed, not
/// empty, at most 200 characters, none of them a control character (PostgreSQL's text
/// cannot hold a NUL, and no file name or message is searched for by the others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSearch {
    #[error("the search is empty")]
    Empty,
    #[error("the search is longer than 200 characters")]
    TooLong,
    #[error(
        "the search has a character it cannot contain (a control character such as NUL or a \
         line break); search with words only"
    )]
    ControlCharacter,
}

impl SearchText {
    pub fn parse(raw: &str) -> Result<SearchText, BadSearch> {
        let text = raw.trim();
        if text.is_empty() {
            Err(BadSearch::Empty)
        } else if text.chars().count() > 200 {
            Err(BadSearch::TooLong)
        } else if text.chars().any(char::is_control) {
            Err(BadSearch::ControlCharacter)
        } else {
            Ok(SearchText(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `LIKE` pattern: the words anywhere, with `LIKE`'s own characters (`%`, `_`
    /// and the escape `\`) taken literally.
    pub fn like_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.0.len() + 2);
        pattern.push('%');
        for c in self.0.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }
}

/// Which clips a library page shows: one guild's, narrowed by the optional filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryFilter {
    pub guild: GuildId,
    pub channel: Option<ChannelId>,
    pub author: Option<UserId>,
    /// Posted at or after.
    pub from: Option<DateTime<Utc>>,
    /// Posted before.
    pub to: Option<DateTime<Utc>>,
    pub search: Option<SearchText>,
    /// Only clips of these channels (those a member may see); `None` for every
    /// channel of the guild.
    pub channels: Option<Vec<ChannelId>>,
}

impl LibraryFilter {
    /// Every clip of `guild`.
    pub fn guild(guild: GuildId) -> LibraryFilter {
        LibraryFilter {
            guild,
            channel: None,
            author: None,
            from: None,
            to: None,
            search: None,
            channels: None,
        }
    }

    /// Whether the filter asks for nothing but the guild's clips (those it may see).
    pub fn is_whole_library(&self) -> bool {
        self.channel.is_none()
            && self.author.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.search.is_none()
    }
}

/// Where a page starts: after the clip posted at `posted_at` with `attachment` (the
/// last clip of the page before). Written in URLs as `{microseconds}-{attachment id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryCursor {
    pub posted_at: DateTime<Utc>,
    pub attachment: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a page cursor (it looks like 1718000000000000-1234567890)")]
pub struct BadCursor(pub String);

impl FromStr for LibraryCursor {
    type Err = BadCursor;
    fn from_str(raw: &str) -> Result<LibraryCursor, BadCursor> {
        let bad = || BadCursor(raw.chars().take(60).collect());
        let (micros, attachment) = raw.split_once('-').ok_or_else(bad)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(micros) || !digits(attachment) {
            return Err(bad());
        }
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let attachment: u64 = attachment.parse().map_err(|_| bad())?;
        let posted_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        Ok(LibraryCursor {
            posted_at,
            attachment,
        })
    }
}

impl fmt::Display for LibraryCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.posted_at.timestamp_micros(),
            self.attachment
        )
    }
}

/// One clip as the library shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryClip {
    /// Discord's attachment id.
    pub attachment: u64,
    pub message: MessageId,
    pub channel: ChannelId,
    pub guild: GuildId,
    pub author: UserId,
    pub author_name: String,
    pub posted_at: DateTime<Utc>,
    pub filename: String,
    pub content_type: Option<String>,
    pub size_bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_secs: Option<f64>,
    pub url: String,
    pub url_expires_at: Option<DateTime<Utc>>,
    pub message_text: String,
}

impl LibraryClip {
    /// The cursor of the page that follows this clip.
    pub fn cursor(&self) -> LibraryCursor {
        LibraryCursor {
            posted_at: self.posted_at,
            attachment: self.attachment,
        }
    }

    /// Who posted it, as a page shows them: their name, else their id.
    pub fn author_shown(&self) -> String {
        if self.author_name.is_empty() {
            self.author.to_string()
        } else {
            self.author_name.clone()
        }
    }
}

impl TryFrom<LibraryClipRow> for LibraryClip {
    type Error = RepoError;
    fn try_from(row: LibraryClipRow) -> Result<LibraryClip, RepoError> {
        let bad = |e| corrupt("clip", e);
        let attachment =
            base::id::parse_positive("attachment id", &row.attachment_id).map_err(bad)?;
        Ok(LibraryClip {
            attachment,
            message: parse_snowflake("message id", &row.message_id).map_err(bad)?,
            channel: parse_snowflake("channel id", &row.channel_id).map_err(bad)?,
            guild: parse_snowflake("guild id", &row.guild_id).map_err(bad)?,
            author: parse_snowflake("user id", &row.author_id).map_err(bad)?,
            author_name: row.author_name,
            posted_at: row.posted_at,
            filename: row.filename,
            content_type: row.content_type,
            size_bytes: u64::try_from(row.size_bytes).unwrap_or(0),
            width: row.width.and_then(|w| u32::try_from(w).ok()),
            height: row.height.and_then(|h| u32::try_from(h).ok()),
            duration_secs: row.duration_secs,
            url: row.url,
            url_expires_at: row.url_expires_at,
            message_text: row.message_text,
        })
    }
}

/// A page of clips and the cursor of the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryPage {
    pub clips: Vec<LibraryClip>,
    pub next: Option<LibraryCursor>,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Clips deleted from the index.
    pub clips: u64,
    /// Channels whose scan position was reset.
    pub channels: u64,
}

/// A CDN URL refreshed by Discord, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshedUrl {
    pub attachment: u64,
    pub url: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Binds a library page statement's parameters, in the order [`shape`]'s statement
/// numbers them: the guild, each filter that is set, the cursor, and one more than
/// `limit` (to tell whether another page follows).
fn bind_page<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    filter: &LibraryFilter,
    cursor: Option<LibraryCursor>,
    limit: u32,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query = query.bind(filter.guild.to_string());
    if let Some(channel) = filter.channel {
        query = query.bind(channel.to_string());
    }
    if let Some(author) = filter.author {
        query = query.bind(author.to_string());
    }
    if let Some(from) = filter.from {
        query = query.bind(from);
    }
    if let Some(to) = filter.to {
        query = query.bind(to);
    }
    if let Some(search) = &filter.search {
        query = query.bind(search.like_pattern());
    }
    if let Some(cursor) = cursor {
        query = query
            .bind(cursor.posted_at)
            .bind(cursor.attachment.to_string());
    }
    if let Some(channels) = &filter.channels {
        query = query.bind(channel_texts(channels));
    }
    query.bind(i64::from(limit) + 1)
}

/// Channel ids as the index writes them.
fn channel_texts(channels: &[ChannelId]) -> Vec<String> {
    channels.iter().map(ToString::to_string).collect()
}

impl Repo {
    /// A page of clips matching `filter`, newest first, starting after `cursor`; at
    /// most `limit` (1 to [`MAX_PAGE`]) clips. One indexed statement (see
    /// [`crate::schema::library`]): the first page and the thousandth cost the same.
    pub async fn library_page(
        &self,
        filter: &LibraryFilter,
        cursor: Option<LibraryCursor>,
        limit: u32,
    ) -> Result<LibraryPage, RepoError> {
        let limit = limit.clamp(1, MAX_PAGE);
        // Assembled from fixed parts only; every value is bound (see `schema::library`).
        let statement = sqlx::AssertSqlSafe(sql::library_page(shape(filter, cursor.is_some())));
        let query = sqlx::query_as::<_, LibraryClipRow>(statement);
        let rows = bind_page(query, filter, cursor, limit)
            .fetch_all(&self.pool)
            .await?;
        let mut clips = rows
            .into_iter()
            .map(LibraryClip::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let more = clips.len() > limit as usize;
        clips.truncate(limit as usize);
        let next = if more {
            clips.last().map(LibraryClip::cursor)
        } else {
            None
        };
        Ok(LibraryPage { clips, next })
    }

    /// The clip of `guild` whose attachment id is `attachment`, for its own page;
    /// `None` when the guild has none.
    pub async fn library_clip(
        &self,
        guild: GuildId,
        attachment: u64,
    ) -> Result<Option<LibraryClip>, RepoError> {
        let statement = sqlx::AssertSqlSafe(sql::library_clip());
        let row = sqlx::query_as::<_, LibraryClipRow>(statement)
            .bind(guild.to_string())
            .bind(attachment.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(LibraryClip::try_from).transpose()
    }

    /// PostgreSQL's plan for [`Repo::library_page`] with these filters (`EXPLAIN`
    /// text), to check which index serves it.
    pub async fn explain_library_page(
        &self,
        filter: &LibraryFilter,
        cursor: Option<LibraryCursor>,
        limit: u32,
    ) -> Result<String, RepoError> {
        let statement =
            sqlx::AssertSqlSafe(sql::explain_library_page(shape(filter, cursor.is_some())));
        let query = sqlx::query_as::<_, (String,)>(statement);
        let lines = bind_page(query, filter, cursor, limit.clamp(1, MAX_PAGE))
            .fetch_all(&self.pool)
            .await?;
        let lines: Vec<String> = lines.into_iter().map(|(line,)| line).collect();
        Ok(lines.join("\n"))
    }

    /// The authors of a guild's clips with their latest name, by name (at most
    /// [`MAX_AUTHORS`]), for the library's author filter.
    pub async fn guild_authors(&self, guild: GuildId) -> Result<Vec<(UserId, String)>, RepoError> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(sql::SELECT_GUILD_AUTHORS)
            .bind(guild.to_string())
            .bind(i64::from(MAX_AUTHORS))
            .fetch_all(&self.pool)
            .await?;
        authors(rows)
    }

    /// [`Repo::guild_authors`] of the clips in `channels` only (the channels a member
    /// may see).
    pub async fn guild_authors_in(
        &self,
        guild: GuildId,
        channels: &[ChannelId],
    ) -> Result<Vec<(UserId, String)>, RepoError> {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as(sql::SELECT_GUILD_AUTHORS_IN_CHANNELS)
                .bind(guild.to_string())
                .bind(i64::from(MAX_AUTHORS))
                .bind(channel_texts(channels))
                .fetch_all(&self.pool)
                .await?;
        authors(rows)
    }

    /// How many clips each channel of `guild` holds, in one statement (a channel
    /// without clips is absent).
    pub async fn clips_by_channel(
        &self,
        guild: GuildId,
    ) -> Result<HashMap<ChannelId, i64>, RepoError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNT_GUILD_CLIPS_BY_CHANNEL)
            .bind(guild.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(channel, clips)| {
                let channel =
                    parse_snowflake("channel id", &channel).map_err(|e| corrupt("clip", e))?;
                Ok((channel, clips))
            })
            .collect()
    }

    /// The latest scan run of each channel of `guild`, in one statement (a channel
    /// never scanned is absent).
    pub async fn latest_runs(
        &self,
        guild: GuildId,
    ) -> Result<HashMap<ChannelId, ScanRun>, RepoError> {
        let rows: Vec<ScanRunRow> = sqlx::query_as(sql::SELECT_LATEST_RUNS_OF_GUILD)
            .bind(guild.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                let run = ScanRun::try_from(row)?;
                Ok((run.channel, run))
            })
            .collect()
    }

    /// Stores refreshed CDN URLs, all in one statement.
    pub async fn store_clip_urls(&self, urls: &[RefreshedUrl]) -> Result<u64, RepoError> {
        if urls.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = urls.iter().map(|u| u.attachment.to_string()).collect();
        let new: Vec<String> = urls.iter().map(|u| u.url.clone()).collect();
        let expiry: Vec<Option<DateTime<Utc>>> = urls.iter().map(|u| u.expires_at).collect();
        let done = sqlx::query(sql::UPDATE_CLIP_URLS)
            .bind(ids)
            .bind(new)
            .bind(expiry)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The danger zone: deletes a channel's clips, resets its scan position and deletes
    /// its scan runs (the next scan, quick or deep, reads its whole history again), in
    /// one statement.
    /// [`RepoError::UnknownChannel`] when Tavern does not know the channel;
    /// [`RepoError::ScanUnfinished`] (nothing purged) while a scan of it is queued or
    /// running, checked in the same statement, with the channel's scan requests held
    /// off until it commits.
    pub async fn purge_channel_index(&self, channel: ChannelId) -> Result<Purged, RepoError> {
        let purged = self
            .purge(sql::PURGE_CHANNEL_INDEX, "channel_id", &channel.to_string())
            .await?;
        if purged.channels == 0 {
            return Err(RepoError::UnknownChannel(channel));
        }
        tracing::info!(%channel, clips = purged.clips, "channel index purged");
        Ok(purged)
    }

    /// [`Repo::purge_channel_index`] for every channel of a guild, in one statement;
    /// refused (nothing purged) while a scan of any of them is unfinished.
    pub async fn purge_guild_index(&self, guild: GuildId) -> Result<Purged, RepoError> {
        let purged = self
            .purge(sql::PURGE_GUILD_INDEX, "guild_id", &guild.to_string())
            .await?;
        tracing::info!(%guild, clips = purged.clips, channels = purged.channels, "guild index purged");
        Ok(purged)
    }

    /// Runs a purge statement under the request locks of the channels it covers.
    async fn purge(
        &self,
        statement: &'static str,
        column: &str,
        id: &str,
    ) -> Result<Purged, RepoError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::LOCK_PURGED_CHANNELS)
            .bind(id)
            .bind(column)
            .execute(&mut *tx)
            .await?;
        let (clips, channels, unfinished_channel, unfinished_status): (
            i64,
            i64,
            Option<String>,
            Option<String>,
        ) = sqlx::query_as(statement)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if let (Some(channel), Some(status)) = (unfinished_channel, unfinished_status) {
            tx.rollback().await?;
            return Err(RepoError::ScanUnfinished {
                channel: parse_snowflake("channel id", &channel)
                    .map_err(|e| corrupt("scan run", e))?,
                status: status.parse().map_err(|e| corrupt("scan run", e))?,
            });
        }
        tx.commit().await?;
        Ok(Purged {
            clips: u64::try_from(clips).unwrap_or(0),
            channels: u64::try_from(channels).unwrap_or(0),
        })
    }

    /// Which of `guilds` Tavern is in.
    pub async fn known_guilds(&self, guilds: &[GuildId]) -> Result<HashSet<GuildId>, RepoError> {
        if guilds.is_empty() {
            return Ok(HashSet::new());
        }
        let ids: Vec<String> = guilds.iter().map(ToString::to_string).collect();
        let rows: Vec<String> = sqlx::query_scalar(sql::SELECT_KNOWN_GUILDS)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|raw| parse_snowflake("guild id", raw).map_err(|e| corrupt("guild", e)))
            .collect()
    }
}

/// The authors' rows as ids and names.
/// The authors by name, case aside ([`crate::domain::name_order`]; the database's
/// collation may put every capital first), then by id.
fn authors(rows: Vec<(String, Option<String>)>) -> Result<Vec<(UserId, String)>, RepoError> {
    let mut authors = rows
        .into_iter()
        .map(|(id, name)| {
            let id = parse_snowflake("user id", &id).map_err(|e| corrupt("clip", e))?;
            Ok((id, name.unwrap_or_default()))
        })
        .collect::<Result<Vec<(UserId, String)>, RepoError>>()?;
    authors.sort_by_cached_key(|(id, name)| (crate::domain::name_order(name), *id));
    Ok(authors)
}

fn shape(filter: &LibraryFilter, cursor: bool) -> LibraryShape {
    LibraryShape {
        channel: filter.channel.is_some(),
        author: filter.author.is_some(),
        from: filter.from.is_some(),
        to: filter.to.is_some(),
        search: filter.search.is_some(),
        cursor,
        channels: filter.channels.is_some(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = LibraryCursor {
            posted_at: DateTime::from_timestamp_micros(1_750_006_400_123_456).unwrap(),
            attachment: 1_234_567_890,
        };
        let text = cursor.to_string();
        assert_eq!(text, "1750006400123456-1234567890");
        assert_eq!(text.parse::<LibraryCursor>().unwrap(), cursor);
        for bad in ["", "12", "a-1", "1-", "-1", "+1-2", "1-2-3", "1 -2"] {
            assert!(bad.parse::<LibraryCursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn search_escapes_like_characters() {
        assert_eq!(SearchText::parse("  ").unwrap_err(), BadSearch::Empty);
        assert_eq!(
            SearchText::parse(&"x".repeat(201)).unwrap_err(),
            BadSearch::TooLong
        );
        let s = SearchText::parse(" 100%_done\\ ").unwrap();
        assert_eq!(s.as_str(), "100%_done\\");
        assert_eq!(s.like_pattern(), "%100\\%\\_done\\\\%");
    }
}
