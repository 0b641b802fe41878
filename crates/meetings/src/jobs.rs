//! Scheduled work: the seed's retention table as batch jobs, the `audit_logs`
//! partitions made ahead of time, the presence job that removes absent participants,
//! ends the streams of sessions that expired and the meetings nobody joined again
//! after their controller stopped, and the statistics of ended meetings (the seed's
//! Data Flow Example 2, step 2).
//!
//! Each function takes `now` so tests decide the date; the jobs pass the clock's.
//! Every statement comes from [`crate::schema`].

use chrono::{DateTime, Utc};
use store::Postgres;

use crate::domain::{Month, Retention};
use crate::recording::{FileDeleted, RecordingFiles};
use crate::repo::{MeetingsError, Repo};
use crate::schema;

/// Rows deleted per statement: keeps each transaction (and its locks) short when a
/// backlog is cleared.
pub const BATCH: i64 = 500;

/// What one retention run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub meetings: u64,
    pub recordings: u64,
    /// Recordings past retention kept because their stored file could not be deleted
    /// (tried again at the next run).
    pub recordings_kept: u64,
    /// Names of the dropped `audit_logs` partitions.
    pub audit_partitions: Vec<String>,
    /// Rows deleted from the default partition (months that had no partition).
    pub audit_default_rows: u64,
}

/// Runs every retention rule once, recordings first (a meeting is kept while it still
/// has recordings, see the crate docs); recordings' stored files are deleted from
/// `files` (see [`delete_expired_recordings`]).
pub async fn run_retention(
    pg: &Postgres,
    rules: &Retention,
    now: DateTime<Utc>,
    files: Option<&RecordingFiles>,
) -> Result<RetentionReport, MeetingsError> {
    let ExpiredRecordings {
        deleted: recordings,
        kept: recordings_kept,
    } = delete_expired_recordings(pg, rules, now, files).await?;
    let meetings = delete_expired_meetings(pg, rules, now).await?;
    let (audit_partitions, audit_default_rows) = drop_expired_audit_logs(pg, rules, now).await?;
    let report = RetentionReport {
        meetings,
        recordings,
        recordings_kept,
        audit_partitions,
        audit_default_rows,
    };
    tracing::info!(?report, "meetings retention done");
    Ok(report)
}

/// Deletes meetings that ended [`Retention::meetings_after_end`] ago or more and have no
/// recording left; their `meeting_participants` rows go by cascade.
pub async fn delete_expired_meetings(
    pg: &Postgres,
    rules: &Retention,
    now: DateTime<Utc>,
) -> Result<u64, MeetingsError> {
    let cutoff = rules.meetings_ended_before(now);
    let mut total = 0;
    loop {
        let done = sqlx::query(schema::DELETE_EXPIRED_MEETINGS)
            .bind(cutoff)
            .bind(BATCH)
            .execute(pg.pool())
            .await?;
        total += done.rows_affected();
        if done.rows_affected() < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// The seed's Data Flow Example 2, step 2, for every ended meeting not done yet: its
/// participants' sessions aggregated into `metadata.statistics` (see
/// `schema::AGGREGATE_ENDED_MEETINGS` for the figures), a batch per statement. How
/// many meetings were done.
pub async fn aggregate_ended_meetings(pg: &Postgres) -> Result<u64, MeetingsError> {
    let mut total = 0;
    loop {
        let done = sqlx::query(schema::AGGREGATE_ENDED_MEETINGS)
            .bind(BATCH)
            .execute(pg.pool())
            .await?;
        total += done.rows_affected();
        if done.rows_affected() < BATCH as u64 {
            if total > 0 {
                tracing::info!(meetings = total, "ended meetings' statistics aggregated");
            }
            return Ok(total);
        }
    }
}

/// What [`delete_expired_recordings`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiredRecordings {
    /// Recordings deleted, with their files.
    pub deleted: u64,
    /// Recordings kept for the next run: their file could not be deleted.
    pub kept: u64,
}

/// Deletes the recordings created [`Retention::recordings`] ago or more, each with its
/// stored file from `files`: the file first, then the row, so a file whose delete
/// failed keeps its row and is tried again at the next run (logged), never forgotten.
/// A file this server cannot reach (its bucket is not the configured store's, or no
/// store is configured: `files` is `None`) cannot be deleted here: its row goes and
/// its bucket and path are logged.
pub async fn delete_expired_recordings(
    pg: &Postgres,
    rules: &Retention,
    now: DateTime<Utc>,
    files: Option<&RecordingFiles>,
) -> Result<ExpiredRecordings, MeetingsError> {
    let cutoff = rules.recordings_created_before(now);
    let mut done = ExpiredRecordings::default();
    let mut after = uuid::Uuid::nil();
    loop {
        let rows: Vec<(uuid::Uuid, String, String)> =
            sqlx::query_as(schema::SELECT_EXPIRED_RECORDINGS)
                .bind(cutoff)
                .bind(BATCH)
                .bind(after)
                .fetch_all(pg.pool())
                .await?;
        let mut gone = Vec::with_capacity(rows.len());
        for (id, bucket, path) in &rows {
            let deleted = match files {
                Some(files) => files.delete(bucket, path).await,
                None => Ok(FileDeleted::Unreachable),
            };
            match deleted {
                Ok(FileDeleted::Deleted) => gone.push(*id),
                Ok(FileDeleted::Unreachable) => {
                    tracing::warn!(recording = %id, bucket, path,
                        "a recording past retention is deleted, but its file is in a store this server does not reach; it remains there");
                    gone.push(*id);
                }
                Err(error) => {
                    tracing::warn!(recording = %id, bucket, path, %error,
                        "the file of a recording past retention could not be deleted; the recording is kept and tried again at the next run");
                    done.kept += 1;
                }
            }
        }
        if !gone.is_empty() {
            let deleted = sqlx::query(schema::DELETE_RECORDINGS)
                .bind(&gone)
                .execute(pg.pool())
                .await?;
            done.deleted += deleted.rows_affected();
        }
        match rows.last() {
            Some((id, _, _)) if (rows.len() as i64) >= BATCH => after = *id,
            _ => return Ok(done),
        }
    }
}

/// The months that have their own `audit_logs` partition.
pub async fn audit_partitions(pg: &Postgres) -> Result<Vec<Month>, MeetingsError> {
    let names: Vec<String> = sqlx::query_scalar(schema::SELECT_AUDIT_PARTITIONS)
        .fetch_all(pg.pool())
        .await?;
    let mut months: Vec<Month> = names
        .iter()
        .filter_map(|n| schema::audit_partition_month(n))
        .collect();
    months.sort();
    Ok(months)
}

/// Drops every `audit_logs` month partition whose whole month is past retention, and
/// deletes rows past retention from the default partition. Returns the dropped names
/// and the deleted row count.
pub async fn drop_expired_audit_logs(
    pg: &Postgres,
    rules: &Retention,
    now: DateTime<Utc>,
) -> Result<(Vec<String>, u64), MeetingsError> {
    let mut dropped = Vec::new();
    for month in audit_partitions(pg).await? {
        if rules.audit_partition_due(month, now) {
            // The name comes from a parsed `Month`, never from catalog text: a plain
            // identifier by construction.
            sqlx::raw_sql(sqlx::AssertSqlSafe(schema::drop_audit_partition(month)))
                .execute(pg.pool())
                .await?;
            let name = schema::audit_partition_name(month);
            tracing::info!(partition = %name, "audit partition past retention dropped");
            dropped.push(name);
        }
    }
    let rows = sqlx::query(schema::DELETE_DEFAULT_AUDIT_ROWS)
        .bind(rules.audit_logs_before(now))
        .execute(pg.pool())
        .await?
        .rows_affected();
    Ok((dropped, rows))
}

/// Makes sure the partitions of this month and of the months ahead exist (moving any of
/// their rows out of the default partition). Returns their names.
pub async fn ensure_audit_partitions(
    pg: &Postgres,
    rules: &Retention,
    now: DateTime<Utc>,
) -> Result<Vec<String>, MeetingsError> {
    let mut names = Vec::new();
    for month in rules.audit_partitions_needed(now) {
        let name: String = sqlx::query_scalar(schema::ENSURE_AUDIT_PARTITION)
            .bind(month.first_day())
            .fetch_one(pg.pool())
            .await?;
        names.push(name);
    }
    Ok(names)
}

/// Runs [`Repo::reap_absent`] over every meeting that has a participants set, then
/// [`Repo::expire_orphan_streams`] (the streams of sessions that expired before they
/// could be reaped); returns how many participants left for want of a heartbeat. One
/// meeting's failure is logged and the others are still reaped.
pub async fn reap_absent_participants(repo: &Repo) -> Result<usize, MeetingsError> {
    let keys = repo
        .redis()
        .scan(schema::MEETING_PARTICIPANTS_PATTERN)
        .await?;
    let mut left = 0;
    for key in keys {
        let Some(meeting) = schema::meeting_of_participants_key(&key) else {
            tracing::warn!(key, "a participants key that names no meeting");
            continue;
        };
        match repo.reap_absent(meeting).await {
            Ok(reaped) => left += reaped.left.len(),
            Err(error) => tracing::warn!(%meeting, %error, "could not remove absent participants"),
        }
    }
    let orphans = repo.expire_orphan_streams().await?;
    if orphans > 0 {
        tracing::info!(orphans, "streams of expired sessions ended");
    }
    Ok(left)
}

/// How long a meeting nobody is in stays open for its participants to join again (its
/// controller stopped or moved it) before [`end_vacated_meetings`] ends it.
pub const VACATED_GRACE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Ends the `active` meetings nobody has been in for [`VACATED_GRACE`]
/// ([`Repo::end_vacated_meetings`]; the grace counts in the database's time, as
/// `left_at` is written): a meeting whose last participant left on their own ended
/// then, but one whose controller stopped or moved it waits for them to join again, and
/// without this would stay open forever. How many ended.
pub async fn end_vacated_meetings(repo: &Repo) -> Result<usize, MeetingsError> {
    Ok(repo.end_vacated_meetings(VACATED_GRACE).await?.len())
}
