//! `clips`: the clip index, Tavern's addition to the seed (one row per video attachment,
//! see [`crate::schema::index`]). Every write takes a message's or a page's clips at
//! once, as arrays, in one statement that also moves what goes with it (the scan run and
//! the channel's progress, or the channel's counters for a live message), and inserts
//! with `ON CONFLICT (attachment_id) DO NOTHING`, so nothing is ever indexed twice.

use chrono::{DateTime, Utc};

use super::{Repo, RepoError};
use crate::domain::{ChannelId, MessageId, ScanRunId, StoredText, UserId};
use crate::repo::scan_runs::{Progress, ScanRun};
use crate::schema::{ScanRunRow, index};

/// One video attachment to index. Its text is [`StoredText`] (no NUL), so no clip
/// Discord can describe fails the statement that writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClip {
    /// Discord's attachment id: the clip's identity.
    pub attachment_id: u64,
    pub message_id: MessageId,
    pub author_id: UserId,
    pub author_name: StoredText,
    /// The message's time.
    pub posted_at: DateTime<Utc>,
    pub filename: StoredText,
    pub content_type: Option<StoredText>,
    pub size_bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_secs: Option<f64>,
    pub url: StoredText,
    pub proxy_url: Option<StoredText>,
    /// When `url` stops working (its `ex` parameter), if it says.
    pub url_expires_at: Option<DateTime<Utc>>,
    /// The message's text.
    pub message_text: StoredText,
}

/// Clips as the parallel arrays the statements unnest, in the order of [`index`]'s
/// "Clip arrays".
#[derive(Default)]
struct Columns {
    attachment_id: Vec<String>,
    message_id: Vec<String>,
    author_id: Vec<String>,
    author_name: Vec<String>,
    posted_at: Vec<DateTime<Utc>>,
    filename: Vec<String>,
    content_type: Vec<Option<String>>,
    size_bytes: Vec<i64>,
    width: Vec<Option<i32>>,
    height: Vec<Option<i32>>,
    duration_secs: Vec<Option<f64>>,
    url: Vec<String>,
    proxy_url: Vec<Option<String>>,
    url_expires_at: Vec<Option<DateTime<Utc>>>,
    message_text: Vec<String>,
}

/// A dimension as PostgreSQL's `integer`; one beyond it is dropped rather than wrapped.
fn int4(value: Option<u32>) -> Option<i32> {
    value.and_then(|v| i32::try_from(v).ok())
}

impl Columns {
    fn of(clips: &[NewClip]) -> Columns {
        let mut c = Columns::default();
        for clip in clips {
            c.attachment_id.push(clip.attachment_id.to_string());
            c.message_id.push(clip.message_id.to_string());
            c.author_id.push(clip.author_id.to_string());
            c.author_name.push(clip.author_name.to_string());
            c.posted_at.push(clip.posted_at);
            c.filename.push(clip.filename.to_string());
            c.content_type
                .push(clip.content_type.as_ref().map(ToString::to_string));
            c.size_bytes
                .push(i64::try_from(clip.size_bytes).unwrap_or(i64::MAX));
            c.width.push(int4(clip.width));
            c.height.push(int4(clip.height));
            c.duration_secs
                .push(clip.duration_secs.filter(|d| d.is_finite()));
            c.url.push(clip.url.to_string());
            c.proxy_url
                .push(clip.proxy_url.as_ref().map(ToString::to_string));
            c.url_expires_at.push(clip.url_expires_at);
            c.message_text.push(clip.message_text.to_string());
        }
        c
    }

    /// Binds the arrays, in order, as the statement's first fifteen parameters.
    fn bind<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(self.attachment_id)
            .bind(self.message_id)
            .bind(self.author_id)
            .bind(self.author_name)
            .bind(self.posted_at)
            .bind(self.filename)
            .bind(self.content_type)
            .bind(self.size_bytes)
            .bind(self.width)
            .bind(self.height)
            .bind(self.duration_secs)
            .bind(self.url)
            .bind(self.proxy_url)
            .bind(self.url_expires_at)
            .bind(self.message_text)
    }
}

/// One page of a scan: the run's progress and the clips found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub progress: Progress,
    /// The newest message time of the page; moves the channel's `last_activity_at`.
    pub newest_at: Option<DateTime<Utc>>,
    pub clips: Vec<NewClip>,
}

impl Repo {
    /// Records one page of a running scan in one statement: its clips, the run's
    /// counters and remaining window, the channel's message count, last message id,
    /// last scan and last activity. A run that is no longer running takes nothing
    /// ([`RepoError::NotRunning`]), which is how its worker learns it was canceled.
    pub async fn record_page(&self, id: ScanRunId, page: &Page) -> Result<ScanRun, RepoError> {
        let p = &page.progress;
        let mut tx = self.page_transaction().await?;
        let row = Columns::of(&page.clips)
            .bind(sqlx::query_as::<_, ScanRunRow>(index::RECORD_PAGE))
            .bind(id.to_string())
            .bind(i64::from(p.scanned))
            .bind(i64::from(p.matched))
            .bind(p.newest.map(|m| m.to_string()))
            .bind(page.newest_at)
            .bind(p.remaining.after().map(|m| m.to_string()))
            .bind(p.remaining.before().map(|m| m.to_string()))
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        self.page_recorded(id, row).await
    }

    /// Records one page of one part of a running scan (its window moves to
    /// `page.progress.remaining`, `done` when the part is read), in one statement with
    /// the run's and the channel's counters and the page's clips, like
    /// [`Repo::record_page`].
    pub async fn record_part_page(
        &self,
        id: ScanRunId,
        part: i32,
        page: &Page,
        done: bool,
    ) -> Result<ScanRun, RepoError> {
        let p = &page.progress;
        let after = p
            .remaining
            .after()
            .map(|m| m.to_string())
            .unwrap_or_default();
        let mut tx = self.page_transaction().await?;
        let row = Columns::of(&page.clips)
            .bind(sqlx::query_as::<_, ScanRunRow>(index::RECORD_PART_PAGE))
            .bind(id.to_string())
            .bind(i64::from(p.scanned))
            .bind(i64::from(p.matched))
            .bind(p.newest.map(|m| m.to_string()))
            .bind(page.newest_at)
            .bind(part)
            .bind(after)
            .bind(done)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        self.page_recorded(id, row).await
    }

    /// The transaction a history page is written in: its commit does not wait for the
    /// disk ([`index::PAGE_COMMIT`]). A page is derived data Discord still holds, and
    /// the run's window moves in the same statement as its clips and counters, so a
    /// PostgreSQL crash that loses the last pages' commits loses them whole: the run
    /// resumes from an earlier window and reads them again (no clip lost, none twice).
    /// Waiting for each page's flush would cost a disk sync per 100 messages.
    async fn page_transaction(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, RepoError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(index::PAGE_COMMIT).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// The run after a page (the statement's row), or why the page was refused: the run
    /// is unknown or no longer running.
    async fn page_recorded(
        &self,
        id: ScanRunId,
        row: Option<ScanRunRow>,
    ) -> Result<ScanRun, RepoError> {
        match row {
            Some(row) => row.try_into(),
            None => {
                let actual = self.run(id).await?.ok_or(RepoError::UnknownRun(id))?;
                Err(RepoError::NotRunning {
                    id,
                    actual: actual.status,
                })
            }
        }
    }

    /// A message seen live in `channel`: when the channel is being read, indexes its
    /// `clips` and moves the channel's message count, last message id and last
    /// activity, in one statement; elsewhere writes nothing. Returns whether the channel
    /// is read and how many clips were new.
    pub async fn index_live_message(
        &self,
        channel: ChannelId,
        message: MessageId,
        at: DateTime<Utc>,
        clips: &[NewClip],
    ) -> Result<(bool, u64), RepoError> {
        let (reading, added) = Columns::of(clips)
            .bind(sqlx::query_as::<_, (bool, i64)>(index::INDEX_LIVE_MESSAGE))
            .bind(channel.to_string())
            .bind(message.to_string())
            .bind(at)
            .fetch_one(&self.pool)
            .await?;
        Ok((reading, u64::try_from(added).unwrap_or(0)))
    }

    /// An edited message: `attachments` are the ids of every attachment it holds now,
    /// `clips` the clips among them, `text` its text after the edit. Indexed clips whose attachment is gone are
    /// deleted, the others get the new `text` (when given), new ones are indexed if the
    /// channel is being read; one statement. Returns (removed, added).
    pub async fn replace_message_clips(
        &self,
        channel: ChannelId,
        message: MessageId,
        text: Option<&StoredText>,
        attachments: &[u64],
        clips: &[NewClip],
    ) -> Result<(u64, u64), RepoError> {
        let all: Vec<String> = attachments.iter().map(ToString::to_string).collect();
        let (removed, added) = Columns::of(clips)
            .bind(sqlx::query_as::<_, (i64, i64)>(
                index::REPLACE_MESSAGE_CLIPS,
            ))
            .bind(channel.to_string())
            .bind(message.to_string())
            .bind(text.map(StoredText::as_str))
            .bind(all)
            .fetch_one(&self.pool)
            .await?;
        Ok((
            u64::try_from(removed).unwrap_or(0),
            u64::try_from(added).unwrap_or(0),
        ))
    }

    /// A deleted message's clips; returns how many.
    pub async fn delete_message_clips(
        &self,
        channel: ChannelId,
        message: MessageId,
    ) -> Result<u64, RepoError> {
        let done = sqlx::query(index::DELETE_MESSAGE_CLIPS)
            .bind(channel.to_string())
            .bind(message.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The clips of many deleted messages of one channel (a bulk delete), in one
    /// statement; returns how many.
    pub async fn delete_messages_clips(
        &self,
        channel: ChannelId,
        messages: &[MessageId],
    ) -> Result<u64, RepoError> {
        let ids: Vec<String> = messages.iter().map(ToString::to_string).collect();
        let done = sqlx::query(index::DELETE_MESSAGES_CLIPS)
            .bind(channel.to_string())
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many clips a channel holds.
    pub async fn clips_in_channel(&self, channel: ChannelId) -> Result<i64, RepoError> {
        let count: i64 = sqlx::query_scalar(index::COUNT_CHANNEL_CLIPS)
            .bind(channel.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }

    /// The attachment ids indexed for a message, in ascending order.
    pub async fn message_clip_ids(
        &self,
        channel: ChannelId,
        message: MessageId,
    ) -> Result<Vec<u64>, RepoError> {
        let ids: Vec<String> = sqlx::query_scalar(index::SELECT_MESSAGE_CLIP_IDS)
            .bind(channel.to_string())
            .bind(message.to_string())
            .fetch_all(&self.pool)
            .await?;
        ids.iter()
            .map(|raw| {
                raw.parse::<u64>()
                    .map_err(|e| super::corrupt("clip", format!("attachment id {raw:?}: {e}")))
            })
            .collect()
    }
}
