//! `bot_channel_scan_runs`: one row per scan of a channel's history, its status
//! machine and its progress.

use chrono::{DateTime, Utc};

use super::{Repo, RepoError, corrupt, unless_violates};
use crate::domain::{
    ChannelId, MessageId, ScanMode, ScanRunId, ScanStart, ScanStatus, ScanWindow, parse_snowflake,
};
use crate::schema::{self, ScanRunRow};

/// A scan run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRun {
    pub id: ScanRunId,
    pub channel: ChannelId,
    /// What is left to read (moves with every page, see [`ScanWindow`]).
    pub window: ScanWindow,
    pub status: ScanStatus,
    pub messages_scanned: i64,
    pub messages_matched: i64,
    pub error_message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<ScanRunRow> for ScanRun {
    type Error = RepoError;
    fn try_from(row: ScanRunRow) -> Result<ScanRun, RepoError> {
        let bad = |e| corrupt("scan run", e);
        let bound = |raw: Option<&str>| {
            raw.map(|raw| parse_snowflake("message id", raw))
                .transpose()
                .map_err(|e| corrupt("scan run", e))
        };
        Ok(ScanRun {
            id: ScanRunId::parse(&row.id).map_err(bad)?,
            channel: parse_snowflake("channel id", &row.channel_id).map_err(bad)?,
            window: ScanWindow::between(
                bound(row.after_message_id.as_deref())?,
                bound(row.before_message_id.as_deref())?,
            )
            .map_err(|e| corrupt("scan run", e))?,
            status: row.status.parse().map_err(|e| corrupt("scan run", e))?,
            messages_scanned: row.messages_scanned,
            messages_matched: row.messages_matched,
            error_message: row.error_message,
            started_at: row.started_at,
            finished_at: row.finished_at,
            created_at: row.created_at,
        })
    }
}

/// One page's worth of progress of a running scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Messages read in this step (inside the window; at most a page).
    pub scanned: u32,
    /// Of which matched.
    pub matched: u32,
    /// The window still to read (the current one when the scan is complete).
    pub remaining: ScanWindow,
    /// The newest message id seen in this step; moves the channel's last message id.
    pub newest: Option<MessageId>,
}

impl Repo {
    /// Queues a scan of `window` in `channel`.
    pub async fn queue_run(
        &self,
        channel: ChannelId,
        window: ScanWindow,
    ) -> Result<ScanRun, RepoError> {
        let row: ScanRunRow = sqlx::query_as(schema::INSERT_RUN)
            .bind(channel.to_string())
            .bind(window.after().map(|id| id.to_string()))
            .bind(window.before().map(|id| id.to_string()))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                unless_violates(
                    e,
                    schema::RUN_CHANNEL_FK,
                    RepoError::UnknownChannel(channel),
                )
            })?;
        row.try_into()
    }

    pub async fn run(&self, id: ScanRunId) -> Result<Option<ScanRun>, RepoError> {
        let row: Option<ScanRunRow> = sqlx::query_as(schema::SELECT_RUN)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// A channel's most recent runs, newest first.
    pub async fn runs(&self, channel: ChannelId, limit: u32) -> Result<Vec<ScanRun>, RepoError> {
        let rows: Vec<ScanRunRow> = sqlx::query_as(schema::SELECT_RUNS_OF_CHANNEL)
            .bind(channel.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Moves a run from `from` to `to` if the rules allow it and the run is still in
    /// `from`: one guarded `UPDATE`, so of two callers racing from the same status,
    /// exactly one wins and the other gets [`RepoError::StaleStatus`]. `error_message`
    /// is recorded when given (for `failed`).
    pub async fn transition_run(
        &self,
        id: ScanRunId,
        from: ScanStatus,
        to: ScanStatus,
        error_message: Option<&str>,
    ) -> Result<ScanRun, RepoError> {
        from.transition(to)?;
        let row: Option<ScanRunRow> = sqlx::query_as(schema::TRANSITION_RUN)
            .bind(id.to_string())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(error_message)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => {
                tracing::info!(run = %id, %from, %to, "scan run status changed");
                row.try_into()
            }
            None => {
                let actual = self.run(id).await?.ok_or(RepoError::UnknownRun(id))?;
                Err(RepoError::StaleStatus {
                    id,
                    expected: from,
                    actual: actual.status,
                })
            }
        }
    }

    /// queued -> running: the worker that gets `Ok` owns the run.
    pub async fn start_run(&self, id: ScanRunId) -> Result<ScanRun, RepoError> {
        self.transition_run(id, ScanStatus::Queued, ScanStatus::Running, None)
            .await
    }

    /// running -> succeeded.
    pub async fn succeed_run(&self, id: ScanRunId) -> Result<ScanRun, RepoError> {
        self.transition_run(id, ScanStatus::Running, ScanStatus::Succeeded, None)
            .await
    }

    /// running -> failed, with the reason.
    pub async fn fail_run(&self, id: ScanRunId, error: &str) -> Result<ScanRun, RepoError> {
        self.transition_run(id, ScanStatus::Running, ScanStatus::Failed, Some(error))
            .await
    }

    /// Cancels a run that is queued or running (whichever it is now).
    pub async fn cancel_run(&self, id: ScanRunId) -> Result<ScanRun, RepoError> {
        match self
            .transition_run(id, ScanStatus::Queued, ScanStatus::Canceled, None)
            .await
        {
            Err(RepoError::StaleStatus {
                actual: ScanStatus::Running,
                ..
            }) => {
                self.transition_run(id, ScanStatus::Running, ScanStatus::Canceled, None)
                    .await
            }
            other => other,
        }
    }

    /// Records one step of a running scan: counters, the remaining window, and the
    /// channel's message count, last scan time and last message id, in one statement.
    /// A run that is no longer running takes no progress ([`RepoError::NotRunning`]):
    /// that is how a worker learns its run was canceled. A page with no clips and no
    /// time, written by [`Repo::record_page`]'s statement.
    pub async fn record_progress(
        &self,
        id: ScanRunId,
        progress: &Progress,
    ) -> Result<ScanRun, RepoError> {
        let page = crate::repo::clips::Page {
            progress: *progress,
            newest_at: None,
            clips: Vec::new(),
        };
        self.record_page(id, &page).await
    }
}

/// What [`Repo::request_run`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RunRequest {
    /// A new run was queued.
    Queued(ScanRun),
    /// The channel already had an unfinished run (queued, or running): this one.
    Existing(ScanRun),
}

/// A channel's scan lock, held by a connection of its own (not one of the pool's) for
/// as long as this value lives: a PostgreSQL session-level advisory lock, so it is
/// released by [`ChannelLock::release`], or when the connection closes, whatever closes
/// it (this value dropped, the process killed).
#[derive(Debug)]
pub struct ChannelLock {
    channel: ChannelId,
    connection: sqlx::PgConnection,
}

impl ChannelLock {
    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    /// Releases the lock and closes its connection.
    pub async fn release(mut self) {
        let unlocked = sqlx::query_scalar::<_, bool>(crate::schema::index::UNLOCK_CHANNEL_SCAN)
            .bind(self.channel.to_string())
            .fetch_one(&mut self.connection)
            .await;
        if let Err(error) = unlocked {
            // Closing the connection releases it all the same.
            tracing::warn!(channel = %self.channel, %error, "scan lock release failed");
        }
        let _ = sqlx::Connection::close(self.connection).await;
    }
}

impl Repo {
    /// The channel's newest unfinished run (queued or running), if any.
    pub async fn unfinished_run(&self, channel: ChannelId) -> Result<Option<ScanRun>, RepoError> {
        let row: Option<ScanRunRow> = sqlx::query_as(crate::schema::index::SELECT_UNFINISHED_RUN)
            .bind(channel.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Queues a run of `window` in `channel` unless the channel has an unfinished run,
    /// which is handed back instead. One transaction under a per-channel advisory lock,
    /// so two requests racing queue one run.
    pub async fn request_run(
        &self,
        channel: ChannelId,
        window: ScanWindow,
    ) -> Result<RunRequest, RepoError> {
        self.request_with(channel, false, |_| window).await
    }

    /// Queues a scan of `mode` in `channel` unless the channel has an unfinished run,
    /// which is handed back instead. The window follows from the channel's state read
    /// in the same transaction, under the lock a purge takes too ([`ScanMode::window`]),
    /// so a purge cannot slip between the choice and the queuing.
    pub async fn request_scan(
        &self,
        channel: ChannelId,
        mode: ScanMode,
    ) -> Result<RunRequest, RepoError> {
        self.request_with(channel, false, |start| mode.window(&start))
            .await
    }

    /// [`Repo::request_scan`] for a channel being read: [`RepoError::NotReading`]
    /// otherwise (an unfinished run is still handed back). Decided in the same
    /// transaction, under the lock [`Repo::stop_reading`] takes too, so no run is queued
    /// for a channel whose reading stopped meanwhile.
    pub async fn request_scan_if_reading(
        &self,
        channel: ChannelId,
        mode: ScanMode,
    ) -> Result<RunRequest, RepoError> {
        self.request_with(channel, true, |start| mode.window(&start))
            .await
    }

    /// Stops reading a channel and cancels its unfinished run (queued or running,
    /// whichever it is by then), in one transaction under the channel's request lock:
    /// no scan of it is queued in between. Returns the canceled run.
    pub async fn stop_reading(&self, channel: ChannelId) -> Result<Option<ScanRun>, RepoError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(crate::schema::index::LOCK_CHANNEL_REQUESTS)
            .bind(channel.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(schema::SET_READING)
            .bind(channel.to_string())
            .bind(false)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(RepoError::UnknownChannel(channel));
        }
        let unfinished: Option<ScanRunRow> =
            sqlx::query_as(crate::schema::index::SELECT_UNFINISHED_RUN)
                .bind(channel.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let mut canceled = None;
        if let Some(run) = unfinished {
            // A worker may start the queued run meanwhile: then it is canceled running.
            for from in [ScanStatus::Queued, ScanStatus::Running] {
                let row: Option<ScanRunRow> = sqlx::query_as(schema::TRANSITION_RUN)
                    .bind(&run.id)
                    .bind(from.as_str())
                    .bind(ScanStatus::Canceled.as_str())
                    .bind(None::<&str>)
                    .fetch_optional(&mut *tx)
                    .await?;
                if row.is_some() {
                    canceled = row;
                    break;
                }
            }
        }
        tx.commit().await?;
        let canceled: Option<ScanRun> = canceled.map(TryInto::try_into).transpose()?;
        tracing::info!(%channel, canceled = canceled.as_ref().map(|r| tracing::field::display(r.id)), "channel reading stopped");
        Ok(canceled)
    }

    /// Whether the channel's history has been read to its start since its index was
    /// last purged, and where its index stopped; `None` for an unknown channel.
    pub async fn scan_start(&self, channel: ChannelId) -> Result<Option<ScanStart>, RepoError> {
        let mut connection = self.pool.acquire().await?;
        Ok(scan_start(&mut connection, channel)
            .await?
            .map(|(start, _)| start))
    }

    async fn request_with(
        &self,
        channel: ChannelId,
        needs_reading: bool,
        window: impl FnOnce(ScanStart) -> ScanWindow,
    ) -> Result<RunRequest, RepoError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(crate::schema::index::LOCK_CHANNEL_REQUESTS)
            .bind(channel.to_string())
            .execute(&mut *tx)
            .await?;
        let existing: Option<ScanRunRow> =
            sqlx::query_as(crate::schema::index::SELECT_UNFINISHED_RUN)
                .bind(channel.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = existing {
            tx.commit().await?;
            return Ok(RunRequest::Existing(row.try_into()?));
        }
        let (start, reading) = scan_start(&mut tx, channel)
            .await?
            .ok_or(RepoError::UnknownChannel(channel))?;
        if needs_reading && !reading {
            return Err(RepoError::NotReading(channel));
        }
        let window = window(start);
        let row: ScanRunRow = sqlx::query_as(schema::INSERT_RUN)
            .bind(channel.to_string())
            .bind(window.after().map(|id| id.to_string()))
            .bind(window.before().map(|id| id.to_string()))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                unless_violates(
                    e,
                    schema::RUN_CHANNEL_FK,
                    RepoError::UnknownChannel(channel),
                )
            })?;
        tx.commit().await?;
        let run: ScanRun = row.try_into()?;
        tracing::info!(run = %run.id, %channel, history_read = start.history_read, "scan run queued");
        Ok(RunRequest::Queued(run))
    }

    /// Up to `limit` runs waiting for a worker, oldest first: queued ones, and running
    /// ones abandoned by their worker (their channel's scan lock is free).
    pub async fn pending_runs(&self, limit: u32) -> Result<Vec<ScanRun>, RepoError> {
        let rows: Vec<ScanRunRow> = sqlx::query_as(crate::schema::index::SELECT_PENDING_RUNS)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Takes `channel`'s scan lock on a connection of its own, if no one holds it
    /// (`None` then). See [`ChannelLock`].
    pub async fn try_lock_channel(
        &self,
        channel: ChannelId,
    ) -> Result<Option<ChannelLock>, RepoError> {
        // Detached from the pool: the lock must live exactly as long as this
        // connection, which the pool would otherwise keep and hand to someone else.
        let mut connection = self.pool.acquire().await?.detach();
        let taken: bool = sqlx::query_scalar(crate::schema::index::TRY_LOCK_CHANNEL_SCAN)
            .bind(channel.to_string())
            .fetch_one(&mut connection)
            .await?;
        if taken {
            Ok(Some(ChannelLock {
                channel,
                connection,
            }))
        } else {
            let _ = sqlx::Connection::close(connection).await;
            Ok(None)
        }
    }
}

/// A part of a deep scan read concurrently with the others (see
/// [`crate::schema::index::V3_SCAN_PARTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPart {
    pub part: i32,
    /// What is left of the part (read forward).
    pub window: ScanWindow,
    pub done: bool,
}

/// [`Repo::scan_start`] on `connection`, with whether the channel is read.
async fn scan_start(
    connection: &mut sqlx::PgConnection,
    channel: ChannelId,
) -> Result<Option<(ScanStart, bool)>, RepoError> {
    let row: Option<(Option<String>, bool, bool)> =
        sqlx::query_as(crate::schema::index::SELECT_SCAN_START)
            .bind(channel.to_string())
            .fetch_optional(connection)
            .await?;
    row.map(|(last, reading, history_read)| {
        let last_message_id = last
            .as_deref()
            .map(|raw| parse_snowflake("message id", raw))
            .transpose()
            .map_err(|e| corrupt("channel", e))?;
        Ok((
            ScanStart {
                last_message_id,
                history_read,
            },
            reading,
        ))
    })
    .transpose()
}

impl Repo {
    /// Splits a run's remaining history into `parts` (numbered from 0), all at once.
    pub async fn insert_run_parts(
        &self,
        id: ScanRunId,
        parts: &[ScanWindow],
    ) -> Result<(), RepoError> {
        let numbers: Vec<i32> = (0..parts.len())
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect();
        let bound = |b: Option<MessageId>| b.map(|m| m.to_string()).unwrap_or_default();
        let after: Vec<String> = parts.iter().map(|w| bound(w.after())).collect();
        let before: Vec<String> = parts.iter().map(|w| bound(w.before())).collect();
        sqlx::query(crate::schema::index::INSERT_RUN_PARTS)
            .bind(id.to_string())
            .bind(numbers)
            .bind(after)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A run's parts, in order (none for a run read in one piece).
    pub async fn run_parts(&self, id: ScanRunId) -> Result<Vec<RunPart>, RepoError> {
        let rows: Vec<(i32, String, String, bool)> =
            sqlx::query_as(crate::schema::index::SELECT_RUN_PARTS)
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(part, after, before, done)| {
                let bad = |e| corrupt("scan run part", e);
                let window = ScanWindow::between(
                    Some(parse_snowflake("message id", &after).map_err(bad)?),
                    Some(parse_snowflake("message id", &before).map_err(bad)?),
                )
                .map_err(|e| corrupt("scan run part", e))?;
                Ok(RunPart { part, window, done })
            })
            .collect()
    }
}
