//! The scan engine: reads a channel's history from Discord's REST API, 100 messages a
//! request, and indexes the clips it finds.
//!
//! - **Two kinds of scan**, one mechanism: a run reads the part of history its row's
//!   window still holds ([`ScanWindow`]). A deep scan ([`ScanMode::Deep`]) walks
//!   backward from the newest message to the channel's start; a quick one
//!   ([`ScanMode::Quick`]) walks forward from the channel's `last_message_id` once a
//!   scan has read the history down to its start (since the last purge), and until
//!   then reads the whole history: a message seen live moves `last_message_id` too, so
//!   it alone says nothing about what was read. A guild back after an outage gets
//!   [`ScanMode::CatchUp`]: forward from `last_message_id` either way.
//! - **Each page is one statement** ([`Repo::record_page`]): its clips, the run's
//!   counters and window, the channel's `message_count` / `last_message_id` /
//!   `last_scanned_at` / `last_activity_at`. A process killed between two pages loses
//!   nothing and counts nothing twice; the run resumes from its row.
//! - **One run per channel across processes**: the process running a channel's scan
//!   holds a PostgreSQL advisory lock on a connection of its own for the whole run
//!   ([`Repo::try_lock_channel`]). A run that is `running` while its channel's lock is
//!   free was abandoned (its process died, and its lock with its connection); whoever
//!   takes the lock continues it from its row. [`Scanner::request`] hands back such a
//!   run instead of queuing a new one, and [`Scanner::run`] continues it.
//! - **Managers' rule**: `/clips` and the web ask for scans with
//!   [`Scanner::request_if_reading`] (only a channel being read is scanned) and start
//!   or stop reading with [`Scanner::set_reading`] (stopping cancels the unfinished
//!   scan), both under the channel's request lock. `tavern clips scan` (an operator's
//!   import) and the catch-up after an outage use [`Scanner::request`].
//! - **Cancel**: the run's status becomes `canceled`; its worker's next page is refused
//!   (the page statement writes only while the run is `running`) and it stops.
//! - **Tavern's own permissions**: Discord answers a history request without Read
//!   Message History with an empty list, not an error, so before reading a run
//!   computes what Tavern may do in the channel (`access`: its roles, the channel's
//!   overwrites) and, lacking View Channel or Read Message History, fails at once
//!   with a reason naming what to grant ([`crate::domain::cannot_read_reason`])
//!   instead of recording an empty, complete scan. Starting to read such a channel is
//!   refused the same way ([`ScanError::Unreadable`]). Discord failing to answer that
//!   question does not stop the scan: the history request decides then. The answer
//!   is kept a minute per guild ([`Scanner::with_sight_cache`]); a manager's action
//!   drops it, and a run trusts it only to say "may read" (`access`'s docs).
//! - **Failures**: Discord refusing the channel (401, 403, 404, or its circuit breaker
//!   open after those) fails the run at once; other errors (5xx and timeouts the
//!   `discord` crate already retried, 429s beyond its retries) are tried again a few
//!   times with a pause, then fail the run. Either way `error_message` says what
//!   happened in words. A database failure ends [`Scanner::run`] with an error and
//!   leaves the run `running`, to be continued.
//! - **Counters**: a run's `messages_scanned` counts the messages it read inside its
//!   window, `messages_matched` those with at least one clip. The channel's
//!   `message_count` is the seed's "total messages processed": every message a scan page
//!   or the gateway handed to the index, so a second deep scan of a channel counts its
//!   messages again (a scan run is what is counted, not a set of distinct messages), and
//!   a message seen live while a catch-up reads the same stretch counts twice.
//!   `last_message_id` only moves forward (compared as numbers).
//! - **Speed**: the request for the next page goes out while the current page is being
//!   written (its window is known as soon as the page is read), so a scan costs about
//!   the slower of Discord and PostgreSQL per page, not their sum. Discord's rate limits
//!   are the `discord` crate's: it follows the bucket headers, so a scan runs at the
//!   limit without 429s.
//! - **Parts** ([`Scanner::with_parts`], off by default): a deep scan may split the
//!   history left after its first page, from the channel's creation (its own snowflake)
//!   to that page, into parts of equal time read concurrently, each forward, each page
//!   one statement with its part's window (`scan_run_parts`, see
//!   [`crate::schema::index::V3_SCAN_PARTS`]). Once split, the parts' windows, not the
//!   run row's, say what is left; a resumed run continues its unfinished parts.

mod access;
pub(crate) mod ingest;

use std::sync::Arc;
use std::time::Duration;

use base::Clock;
use discord::Discord;
use discord::RestError;
use discord::model::{ChannelType, HistoryMessage};
use store::Redis;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{
    ChannelId, ClipMatcher, MessageId, PageAnchor, ReadPermission, ScanRunId, ScanStatus,
    ScanWindow, cannot_read_reason, permission_names, split_history,
};
use crate::repo::{ChannelInfo, GuildInfo, Repo, RepoError, RunRequest, ScanRun, StoredChannel};

pub use crate::domain::ScanMode;

/// What [`Scanner::request`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Requested {
    /// A new run was queued.
    Queued(ScanRun),
    /// The channel already had an unfinished run (queued, or running: continued, not
    /// restarted): this one.
    Existing(ScanRun),
}

impl Requested {
    /// The run, new or existing.
    pub fn run(&self) -> &ScanRun {
        match self {
            Requested::Queued(run) | Requested::Existing(run) => run,
        }
    }

    pub fn into_run(self) -> ScanRun {
        match self {
            Requested::Queued(run) | Requested::Existing(run) => run,
        }
    }
}

/// Why a scan could not be requested or run. A scan that ran and failed is not an
/// error: its run ends `failed` with an `error_message`.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Discord(#[from] RestError),
    /// Another live worker (in this process or another) is scanning the channel.
    #[error("another worker is scanning this channel right now")]
    Busy,
    #[error("channel {0} is unknown to Discord, or the bot cannot see it")]
    UnknownChannel(ChannelId),
    #[error("channel {0} is not a channel of a server")]
    NotInGuild(ChannelId),
    #[error("channel {channel} is a {kind} channel, which holds no messages to scan")]
    NoMessages {
        channel: ChannelId,
        kind: &'static str,
    },
    #[error("no scan run {0}")]
    UnknownRun(ScanRunId),
    /// A scan asked for by a manager ([`Scanner::request_if_reading`]) of a channel
    /// that is not being read.
    #[error("channel {0} is not being read")]
    NotReading(ChannelId),
    /// Tavern may not read the channel's history: starting to read it is refused,
    /// naming what to grant ([`Scanner::set_reading`]).
    #[error("Tavern cannot read the history of channel {channel}: it lacks {}", permission_names(.missing))]
    Unreadable {
        channel: ChannelId,
        missing: Vec<ReadPermission>,
    },
}

impl ScanError {
    /// True when trying again later can succeed (the database or Discord was down).
    pub fn is_transient(&self) -> bool {
        match self {
            ScanError::Repo(e) => e.is_transient(),
            ScanError::Discord(e) => !is_refusal(e),
            ScanError::Busy => true,
            _ => false,
        }
    }
}

/// How many times in a row a page may fail (beyond the `discord` crate's own retries)
/// before the run fails.
const PAGE_ATTEMPTS: u32 = 3;
/// The first pause after a failed page; it doubles with each failure.
const PAGE_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Wakes this process's scan workers (see [`crate::services`]) when a run is queued, so
/// a requested scan starts at once rather than at the next poll. One for the process:
/// any [`Scanner`] (a command's, a page's, the worker's own) wakes the worker.
pub(crate) static WAKE: Notify = Notify::const_new();

/// Requests, runs, cancels and reports scans, over the clip archive's tables and the
/// bot's Discord.
#[derive(Clone)]
pub struct Scanner {
    repo: Repo,
    discord: Discord,
    clock: Arc<dyn Clock>,
    /// Parts a deep scan is split into after its first page (1: not split).
    parts: usize,
    /// Where Tavern's own permissions in a guild are kept a minute (`access`); `None`:
    /// asked of Discord each time.
    sight_cache: Option<Redis>,
}

/// Where a lane of a scan records its pages.
#[derive(Debug, Clone, Copy)]
enum Lane {
    /// The run's own window.
    Whole,
    /// One of the run's parts.
    Part(i32),
}

/// How a lane ended.
enum LaneEnd {
    /// Its window is read.
    Complete,
    /// The run stopped (canceled, failed) or the process is shutting down: the row.
    Stopped(ScanRun),
    /// Asked to split after its first page: the row and the window left.
    Split(ScanRun, ScanWindow),
}

/// What every lane of one run shares.
struct LaneContext<'a> {
    id: ScanRunId,
    channel: ChannelId,
    matcher: &'a ClipMatcher,
    nsfw: bool,
    progress: &'a (dyn Fn(&ScanRun) + Send + Sync),
    cancel: &'a CancellationToken,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner").finish_non_exhaustive()
    }
}

/// Whether Discord refuses the channel itself (no access, no such channel): trying
/// again will not help.
fn is_refusal(error: &RestError) -> bool {
    matches!(error.status(), Some(401 | 403 | 404))
}

impl Scanner {
    pub fn new(repo: Repo, discord: Discord, clock: Arc<dyn Clock>) -> Scanner {
        Scanner {
            repo,
            discord,
            clock,
            parts: 1,
            sight_cache: None,
        }
    }

    /// Keeps what Tavern itself may do in a guild's channels in `redis` for a minute,
    /// instead of asking Discord five questions at every check (see `access` in the
    /// module's docs).
    pub fn with_sight_cache(mut self, redis: Redis) -> Scanner {
        self.sight_cache = Some(redis);
        self
    }

    /// Splits each deep scan, after its first page, into `parts` parts of equal time
    /// read concurrently (1, the default, reads the history in one piece). Worth it
    /// only where Discord's requests are not the limit: one bot's global limit (50
    /// requests a second) caps a scan at 5,000 messages a second however it reads,
    /// while a raised limit or discord-sim lets parts multiply the speed.
    pub fn with_parts(mut self, parts: usize) -> Scanner {
        self.parts = parts.max(1);
        self
    }

    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// The channel's row, registering the channel and its guild from Discord's REST API
    /// (`Discord::channel` / `Discord::guild`) when Tavern has not seen them.
    pub async fn ensure_channel(&self, channel: ChannelId) -> Result<StoredChannel, ScanError> {
        if let Some(stored) = self.repo.channel(channel).await? {
            return Ok(stored);
        }
        let info = self
            .discord
            .channel(channel)
            .await?
            .ok_or(ScanError::UnknownChannel(channel))?;
        let guild = info.guild_id.ok_or(ScanError::NotInGuild(channel))?;
        if self.repo.guild(guild).await?.is_none() {
            let found = self
                .discord
                .guild(guild)
                .await?
                .ok_or(ScanError::UnknownChannel(channel))?;
            self.repo.upsert_guild(&GuildInfo::from(found)).await?;
        }
        self.repo
            .upsert_channel(&ChannelInfo {
                id: channel,
                guild,
                name: Some(info.name),
                kind: Some(info.kind.as_str().to_owned()),
                is_nsfw: info.nsfw,
            })
            .await?;
        tracing::info!(%channel, %guild, "channel registered from Discord");
        self.repo
            .channel(channel)
            .await?
            .ok_or(ScanError::UnknownChannel(channel))
    }

    /// Queues a run, or hands back the channel's unfinished one (queued, or running
    /// with no live worker holding it: that one is continued, not restarted). Registers
    /// the channel first if needed ([`Scanner::ensure_channel`]); a channel that holds
    /// no messages (a category, a forum) is refused ([`ScanError::NoMessages`]).
    pub async fn request(
        &self,
        channel: ChannelId,
        mode: ScanMode,
    ) -> Result<Requested, ScanError> {
        self.request_with(channel, mode, false).await
    }

    /// [`Scanner::request`] as a manager asks for it, from `/clips scan` or the web:
    /// only for a channel being read ([`ScanError::NotReading`] otherwise), decided
    /// with the queuing, under the lock [`Scanner::set_reading`] takes to stop reading.
    /// With [`Scanner::set_reading`], the one rule both follow.
    pub async fn request_if_reading(
        &self,
        channel: ChannelId,
        mode: ScanMode,
    ) -> Result<Requested, ScanError> {
        self.request_with(channel, mode, true).await
    }

    /// Starts or stops reading a channel, as a manager does from `/clips` or the web.
    /// Stopping also cancels the channel's unfinished scan, in the same transaction
    /// (no scan of a channel no longer read goes on, or is queued meanwhile); its clips
    /// stay. Returns the canceled run.
    pub async fn set_reading(
        &self,
        channel: ChannelId,
        reading: bool,
    ) -> Result<Option<ScanRun>, ScanError> {
        if reading {
            if let Some(stored) = self.repo.channel(channel).await? {
                // A manager's action: what an admin just changed counts.
                self.forget_bot_sight(stored.info.guild).await;
                let missing = self.lacks_or_none(stored.info.guild, channel).await;
                if !missing.is_empty() {
                    return Err(ScanError::Unreadable { channel, missing });
                }
            }
            self.repo.set_reading(channel, true).await?;
            return Ok(None);
        }
        Ok(self.repo.stop_reading(channel).await?)
    }

    /// [`Scanner::bot_lacks`], or nothing when Discord cannot say (logged): a check
    /// that could not be made refuses nothing.
    async fn lacks_or_none(
        &self,
        guild: crate::domain::GuildId,
        channel: ChannelId,
    ) -> Vec<ReadPermission> {
        match self.bot_lacks(guild, channel).await {
            Ok(missing) => missing,
            Err(error) => {
                tracing::warn!(%channel, %guild, %error, "could not ask Discord what Tavern may do in a channel; going on");
                Vec::new()
            }
        }
    }

    async fn request_with(
        &self,
        channel: ChannelId,
        mode: ScanMode,
        needs_reading: bool,
    ) -> Result<Requested, ScanError> {
        let stored = self.ensure_channel(channel).await?;
        let holds_no_messages = [
            ChannelType::Category,
            ChannelType::Forum,
            ChannelType::Media,
        ]
        .into_iter()
        .find(|kind| stored.info.kind.as_deref() == Some(kind.as_str()));
        if let Some(kind) = holds_no_messages {
            return Err(ScanError::NoMessages {
                channel,
                kind: kind.as_str(),
            });
        }
        if needs_reading {
            // A manager's action: the run asks Discord what Tavern may do now.
            self.forget_bot_sight(stored.info.guild).await;
        }
        let requested = if needs_reading {
            self.repo.request_scan_if_reading(channel, mode).await
        } else {
            self.repo.request_scan(channel, mode).await
        };
        let requested = match requested {
            Ok(RunRequest::Queued(run)) => Requested::Queued(run),
            Ok(RunRequest::Existing(run)) => Requested::Existing(run),
            Err(RepoError::NotReading(channel)) => return Err(ScanError::NotReading(channel)),
            Err(e) => return Err(e.into()),
        };
        WAKE.notify_one();
        Ok(requested)
    }

    /// Cancels the channel's unfinished run, if any (its worker stops after the current
    /// page). Returns the canceled run.
    pub async fn cancel(&self, channel: ChannelId) -> Result<Option<ScanRun>, ScanError> {
        // A run may move from queued to running between the read and the cancel;
        // `cancel_run` follows it. One finishing meanwhile has nothing left to cancel.
        let Some(run) = self.repo.unfinished_run(channel).await? else {
            return Ok(None);
        };
        match self.repo.cancel_run(run.id).await {
            Ok(run) => Ok(Some(run)),
            Err(RepoError::StaleStatus { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The channel's latest run (for status and progress).
    pub async fn latest(&self, channel: ChannelId) -> Result<Option<ScanRun>, ScanError> {
        Ok(self.repo.runs(channel, 1).await?.into_iter().next())
    }

    /// Runs `run` to its end in this process, holding the channel's cross-process lock;
    /// `progress` is called after every page; returns the final row. [`ScanError::Busy`]
    /// when another live worker holds the channel.
    ///
    /// When `cancel` fires (shutdown) the scan stops after the page in hand and the run
    /// stays `running`, to be continued by whoever takes the channel next.
    pub async fn run(
        &self,
        run: ScanRunId,
        progress: &(dyn Fn(&ScanRun) + Send + Sync),
        cancel: CancellationToken,
    ) -> Result<ScanRun, ScanError> {
        let found = self
            .repo
            .run(run)
            .await?
            .ok_or(ScanError::UnknownRun(run))?;
        if found.status.is_final() {
            return Ok(found);
        }
        let Some(lock) = self.repo.try_lock_channel(found.channel).await? else {
            return Err(ScanError::Busy);
        };
        let started = std::time::Instant::now();
        let result = self.run_locked(run, progress, &cancel).await;
        lock.release().await;
        match &result {
            Ok(done) => tracing::info!(
                run = %done.id,
                channel = %done.channel,
                status = %done.status,
                scanned = done.messages_scanned,
                matched = done.messages_matched,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "scan run stopped"
            ),
            Err(error) => tracing::warn!(%run, %error, "scan run interrupted"),
        }
        result
    }

    /// [`Scanner::run`] with the channel's lock held.
    async fn run_locked(
        &self,
        id: ScanRunId,
        progress: &(dyn Fn(&ScanRun) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<ScanRun, ScanError> {
        // Read again under the lock: the run may have moved since.
        let mut run = self.repo.run(id).await?.ok_or(ScanError::UnknownRun(id))?;
        match run.status {
            ScanStatus::Queued => match self.repo.start_run(id).await {
                Ok(started) => run = started,
                Err(RepoError::StaleStatus { .. }) => {
                    let now = self.repo.run(id).await?.ok_or(ScanError::UnknownRun(id))?;
                    if now.status != ScanStatus::Running {
                        return Ok(now);
                    }
                    run = now;
                }
                Err(e) => return Err(e.into()),
            },
            ScanStatus::Running => {
                tracing::info!(run = %id, channel = %run.channel, "continuing an abandoned scan run");
            }
            _ => return Ok(run),
        }
        let channel = run.channel;
        let Some(context) = self.repo.reading_context(channel).await? else {
            return Err(ScanError::UnknownRun(id));
        };
        let matcher = match ClipMatcher::from_settings(&context.settings) {
            Ok(matcher) => matcher,
            Err(e) => {
                let reason = format!("the channel's settings cannot be used: {e}");
                return self.fail(id, &reason).await;
            }
        };
        if let Some(stored) = self.repo.channel(channel).await? {
            let missing = self.lacks_or_none(stored.info.guild, channel).await;
            if !missing.is_empty() {
                return self.fail(id, &cannot_read_reason(&missing)).await;
            }
        }
        progress(&run);
        let lane = LaneContext {
            id,
            channel,
            matcher: &matcher,
            nsfw: context.is_nsfw,
            progress,
            cancel,
        };

        let mut parts = self.repo.run_parts(id).await?;
        if parts.is_empty() {
            // A deep scan down to the channel's start may be split after its first page.
            let split = self.parts > 1 && run.window.after().is_none();
            match self
                .lane(&lane, Lane::Whole, run.window, run.clone(), split)
                .await?
            {
                LaneEnd::Complete => return self.succeed(id, progress).await,
                LaneEnd::Stopped(row) => return Ok(row),
                LaneEnd::Split(row, rest) => {
                    let floor = MessageId::new(channel.get());
                    let windows = match rest.before() {
                        Some(before) => split_history(floor, before, self.parts),
                        None => Vec::new(),
                    };
                    self.repo.insert_run_parts(id, &windows).await?;
                    tracing::info!(run = %id, %channel, parts = windows.len(), "deep scan split into parts read concurrently");
                    parts = self.repo.run_parts(id).await?;
                    run = row;
                }
            }
        }
        let lanes = parts
            .iter()
            .filter(|p| !p.done)
            .map(|p| self.lane(&lane, Lane::Part(p.part), p.window, run.clone(), false));
        let mut complete = true;
        for end in futures_util::future::join_all(lanes).await {
            match end? {
                LaneEnd::Complete => {}
                LaneEnd::Stopped(_) | LaneEnd::Split(..) => complete = false,
            }
        }
        if complete {
            self.succeed(id, progress).await
        } else {
            Ok(self.repo.run(id).await?.ok_or(ScanError::UnknownRun(id))?)
        }
    }

    /// running -> succeeded, or the run as it is when it moved meanwhile.
    async fn succeed(
        &self,
        id: ScanRunId,
        progress: &(dyn Fn(&ScanRun) + Send + Sync),
    ) -> Result<ScanRun, ScanError> {
        match self.repo.succeed_run(id).await {
            Ok(done) => {
                progress(&done);
                Ok(done)
            }
            Err(RepoError::StaleStatus { .. }) => {
                Ok(self.repo.run(id).await?.ok_or(ScanError::UnknownRun(id))?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads `window` page by page in one lane (the whole run, or one of its parts),
    /// recording each page, until the window is read, the run stops (canceled, failed
    /// here or in another lane), shutdown, or (`split`) right after the first page.
    async fn lane(
        &self,
        cx: &LaneContext<'_>,
        lane: Lane,
        mut window: ScanWindow,
        mut run: ScanRun,
        split: bool,
    ) -> Result<LaneEnd, ScanError> {
        let (id, channel) = (cx.id, cx.channel);
        let mut fetched = self.fetch(channel, window, cx.cancel).await;
        let mut failures = 0u32;
        loop {
            let messages = match fetched {
                None => return Ok(LaneEnd::Stopped(run)), // shut down: the run stays running
                Some(Ok(messages)) => messages,
                Some(Err(error)) => {
                    failures += 1;
                    if is_refusal(&error) {
                        let refused = format!(
                            "Discord refused to give the history of channel {channel}: {error}"
                        );
                        let reason = if error.is_missing_permission() {
                            format!("{} ({refused})", cannot_read_reason(&ReadPermission::ALL))
                        } else {
                            refused
                        };
                        return Ok(LaneEnd::Stopped(self.fail(id, &reason).await?));
                    }
                    if failures >= PAGE_ATTEMPTS {
                        let reason = format!(
                            "reading the history of channel {channel} failed {failures} times in a row: {error}"
                        );
                        return Ok(LaneEnd::Stopped(self.fail(id, &reason).await?));
                    }
                    tracing::warn!(run = %id, %channel, failures, %error, "history page failed; trying again");
                    let pause = PAGE_RETRY_PAUSE * 2u32.pow(failures - 1);
                    tokio::select! {
                        _ = cx.cancel.cancelled() => return Ok(LaneEnd::Stopped(run)),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    fetched = self.fetch(channel, window, cx.cancel).await;
                    continue;
                }
            };
            failures = 0;
            let (page, next) = ingest::digest(window, &messages, cx.matcher, cx.nsfw);
            let write = async {
                match lane {
                    Lane::Whole => self.repo.record_page(id, &page).await,
                    Lane::Part(part) => {
                        self.repo
                            .record_part_page(id, part, &page, next.is_none())
                            .await
                    }
                }
            };
            // The next page is read while this one is written (not when the rest is
            // about to be split: the parts read it).
            let (written, prefetched) = match next {
                Some(next) if !cx.cancel.is_cancelled() && !split => {
                    let (written, prefetched) =
                        tokio::join!(write, self.fetch(channel, next, cx.cancel));
                    (written, Some(prefetched))
                }
                _ => (write.await, None),
            };
            run = match written {
                Ok(run) => run,
                Err(RepoError::NotRunning { actual, .. }) => {
                    tracing::info!(run = %id, %channel, status = %actual, "scan run stopped elsewhere");
                    let now = self.repo.run(id).await?.ok_or(ScanError::UnknownRun(id))?;
                    return Ok(LaneEnd::Stopped(now));
                }
                Err(e) => return Err(e.into()),
            };
            (cx.progress)(&run);
            let Some(next) = next else {
                return Ok(LaneEnd::Complete);
            };
            if cx.cancel.is_cancelled() {
                return Ok(LaneEnd::Stopped(run));
            }
            if split {
                return Ok(LaneEnd::Split(run, next));
            }
            window = next;
            // `None` (shutdown came while writing) ends the loop at its top.
            fetched = prefetched.flatten();
        }
    }

    /// Marks the run failed with `reason`; a run canceled meanwhile stays canceled.
    async fn fail(&self, id: ScanRunId, reason: &str) -> Result<ScanRun, ScanError> {
        tracing::warn!(run = %id, reason, "scan run failed");
        match self.repo.fail_run(id, reason).await {
            Ok(run) => Ok(run),
            Err(RepoError::StaleStatus { .. }) => {
                Ok(self.repo.run(id).await?.ok_or(ScanError::UnknownRun(id))?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One page of `window`'s history, or `None` when `cancel` fired first.
    async fn fetch(
        &self,
        channel: ChannelId,
        window: ScanWindow,
        cancel: &CancellationToken,
    ) -> Option<Result<Vec<HistoryMessage>, RestError>> {
        let request = window.request();
        let limit = u16::try_from(request.limit).unwrap_or(100);
        let call = async {
            match request.anchor {
                PageAnchor::Latest => self.discord.history_before(channel, None, limit).await,
                PageAnchor::Before(before) => {
                    self.discord
                        .history_before(channel, Some(before), limit)
                        .await
                }
                PageAnchor::After(after) => self.discord.history_after(channel, after, limit).await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => None,
            page = call => Some(page),
        }
    }

    /// The clock scans are timed by (for the worker's logs and the commands).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
