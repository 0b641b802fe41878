//! `bot_channel_scan_runs`: one row per scan of a channel's history, its status
//! machine and its progress.

use chrono::{DateTime, Utc};

use super::{Repo, RepoError, corrupt, unless_violates};
use crate::domain::{ChannelId, MessageId, ScanRunId, ScanStatus, ScanWindow, parse_snowflake};
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
    /// that is how a worker learns its run was canceled.
    pub async fn record_progress(
        &self,
        id: ScanRunId,
        progress: &Progress,
    ) -> Result<ScanRun, RepoError> {
        let row: Option<ScanRunRow> = sqlx::query_as(schema::RECORD_PROGRESS)
            .bind(id.to_string())
            .bind(i64::from(progress.scanned))
            .bind(i64::from(progress.matched))
            .bind(progress.remaining.after().map(|m| m.to_string()))
            .bind(progress.remaining.before().map(|m| m.to_string()))
            .bind(progress.newest.map(|m| m.to_string()))
            .fetch_optional(&self.pool)
            .await?;
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
}
