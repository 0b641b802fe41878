//! Repositories over the seed's tables (statements in [`crate::schema`]).
//!
//! Every change that must not race is one SQL statement: starting a run is an `UPDATE`
//! guarded by the status the caller saw, consuming an install intent is a guarded
//! `DELETE ... RETURNING`. Rows are parsed into the domain's types on the way out; a row
//! that does not parse is reported as [`RepoError::CorruptRow`], never papered over.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::domain::{
    ChannelId, ConsumeError, GuildId, IllegalTransition, InstallIntent, IntentState,
    InternalUserId, MessageId, ScanRunId, ScanStatus, ScanWindow, Settings, SettingsError, UserId,
    consume_verdict, parse_snowflake, purge_cutoff,
};
use crate::schema::{self, ChannelRow, GuildRow, InstallIntentRow, ScanRunRow, UserRow};

/// Errors of the clip archive's repositories.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("no user {0}")]
    UnknownUser(UserId),
    #[error("no guild {0}")]
    UnknownGuild(GuildId),
    #[error("no channel {0}")]
    UnknownChannel(ChannelId),
    #[error("no scan run {0}")]
    UnknownRun(ScanRunId),
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The run was not in the status the caller expected: another worker moved it first.
    #[error("scan run {id} is {actual}, not {expected}")]
    StaleStatus {
        id: ScanRunId,
        expected: ScanStatus,
        actual: ScanStatus,
    },
    /// Progress for a run that is no longer running (canceled, or finished elsewhere).
    #[error("scan run {id} is {actual}, not running")]
    NotRunning { id: ScanRunId, actual: ScanStatus },
    #[error(transparent)]
    Intent(#[from] ConsumeError),
    #[error("invalid settings: {0}")]
    Settings(#[from] SettingsError),
    #[error("a stored {what} does not parse: {reason}")]
    CorruptRow { what: &'static str, reason: String },
}

impl RepoError {
    /// True when retrying later can succeed (the database was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RepoError::Db(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        )
    }
}

fn corrupt(what: &'static str, reason: impl ToString) -> RepoError {
    RepoError::CorruptRow {
        what,
        reason: reason.to_string(),
    }
}

/// Whether `error` is the violation of foreign key `constraint`.
fn violates(error: &sqlx::Error, constraint: &str) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation() && db.constraint() == Some(constraint))
}

// ---------------------------------------------------------------------------------------
// Values in and out

/// What Discord tells us about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProfile {
    pub id: UserId,
    pub username: Option<String>,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
}

/// A `users` row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUser {
    pub id: InternalUserId,
    pub profile: UserProfile,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl TryFrom<UserRow> for StoredUser {
    type Error = RepoError;
    fn try_from(row: UserRow) -> Result<StoredUser, RepoError> {
        Ok(StoredUser {
            id: InternalUserId::new(row.id),
            profile: UserProfile {
                id: parse_snowflake("user id", &row.discord_user_id)
                    .map_err(|e| corrupt("user", e))?,
                username: row.username,
                global_name: row.global_name,
                avatar: row.avatar,
            },
            last_login_at: row.last_login_at,
        })
    }
}

/// What Discord tells us about a guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildInfo {
    pub id: GuildId,
    pub name: String,
    pub icon: Option<String>,
    pub owner: Option<UserId>,
}

/// A `bot_guilds` row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGuild {
    pub info: GuildInfo,
    pub joined_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl TryFrom<GuildRow> for StoredGuild {
    type Error = RepoError;
    fn try_from(row: GuildRow) -> Result<StoredGuild, RepoError> {
        let owner = row
            .owner_user_id
            .as_deref()
            .map(|raw| parse_snowflake("user id", raw))
            .transpose()
            .map_err(|e| corrupt("guild", e))?;
        Ok(StoredGuild {
            info: GuildInfo {
                id: parse_snowflake("guild id", &row.guild_id).map_err(|e| corrupt("guild", e))?,
                name: row.name,
                icon: row.icon,
                owner,
            },
            joined_at: row.joined_at,
            last_seen_at: row.last_seen_at,
        })
    }
}

/// What Discord tells us about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: ChannelId,
    pub guild: GuildId,
    pub name: Option<String>,
    /// The seed's free-text `type` (`text`, `voice`, ...).
    pub kind: Option<String>,
    pub is_nsfw: bool,
}

/// A `bot_channels` row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChannel {
    pub info: ChannelInfo,
    pub is_reading: bool,
    pub last_message_id: Option<MessageId>,
    pub last_scanned_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub message_count: i64,
    pub settings: Settings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<ChannelRow> for StoredChannel {
    type Error = RepoError;
    fn try_from(row: ChannelRow) -> Result<StoredChannel, RepoError> {
        let bad = |e| corrupt("channel", e);
        Ok(StoredChannel {
            info: ChannelInfo {
                id: parse_snowflake("channel id", &row.channel_id).map_err(bad)?,
                guild: parse_snowflake("guild id", &row.guild_id).map_err(bad)?,
                name: row.name,
                kind: row.kind,
                // The seed lets `is_nsfw` be null; unknown reads as not NSFW, its default.
                is_nsfw: row.is_nsfw.unwrap_or(false),
            },
            is_reading: row.is_reading,
            last_message_id: row
                .last_message_id
                .as_deref()
                .map(|raw| parse_snowflake("message id", raw))
                .transpose()
                .map_err(bad)?,
            last_scanned_at: row.last_scanned_at,
            last_activity_at: row.last_activity_at,
            message_count: row.message_count,
            settings: Settings::from_json(row.settings).map_err(|e| corrupt("channel", e))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A `bot_channel_scan_runs` row.
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
    /// The newest message id seen in this step; moves the channel's `last_message_id`.
    pub newest: Option<MessageId>,
}

impl TryFrom<InstallIntentRow> for InstallIntent {
    type Error = RepoError;
    fn try_from(row: InstallIntentRow) -> Result<InstallIntent, RepoError> {
        let bad = |e| corrupt("install intent", e);
        let expires_at = row.expires_at.and_utc();
        Ok(InstallIntent {
            state: IntentState::parse(&row.state).map_err(|e| corrupt("install intent", e))?,
            user: parse_snowflake("user id", &row.user_id).map_err(bad)?,
            guild: parse_snowflake("guild id", &row.guild_id).map_err(bad)?,
            // The column may be null (the seed gives it only a default); Tavern always
            // writes it, and a row without one is taken as created TTL before expiry.
            created_at: row
                .created_at
                .map(|t| t.and_utc())
                .unwrap_or(expires_at - crate::domain::INTENT_TTL),
            expires_at,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The repository

/// The clip archive's tables, over the shared pool.
#[derive(Debug, Clone)]
pub struct Repo {
    pool: PgPool,
}

impl Repo {
    pub fn new(postgres: &store::Postgres) -> Repo {
        Repo {
            pool: postgres.pool().clone(),
        }
    }

    // ---- users

    /// Creates or refreshes a user by Discord id; returns the stored row.
    pub async fn upsert_user(&self, profile: &UserProfile) -> Result<StoredUser, RepoError> {
        let row: UserRow = sqlx::query_as(schema::UPSERT_USER)
            .bind(profile.id.to_string())
            .bind(&profile.username)
            .bind(&profile.global_name)
            .bind(&profile.avatar)
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    pub async fn record_login(&self, user: UserId, at: DateTime<Utc>) -> Result<(), RepoError> {
        let done = sqlx::query(schema::RECORD_LOGIN)
            .bind(user.to_string())
            .bind(at)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(RepoError::UnknownUser(user));
        }
        Ok(())
    }

    pub async fn user(&self, user: UserId) -> Result<Option<StoredUser>, RepoError> {
        let row: Option<UserRow> = sqlx::query_as(schema::SELECT_USER)
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Deletes a user: guilds they owned keep going without an owner, their install
    /// intents go with them. Returns whether the user existed.
    pub async fn delete_user(&self, user: UserId) -> Result<bool, RepoError> {
        let done = sqlx::query(schema::DELETE_USER)
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- guilds

    /// Creates or refreshes a guild as Discord describes it (its owner too: an owner not
    /// yet in `users` gets a bare row, which a later login fills in). One transaction.
    pub async fn upsert_guild(&self, guild: &GuildInfo) -> Result<(), RepoError> {
        let mut tx = self.pool.begin().await?;
        if let Some(owner) = guild.owner {
            sqlx::query(schema::ENSURE_USER)
                .bind(owner.to_string())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(schema::UPSERT_GUILD)
            .bind(guild.id.to_string())
            .bind(&guild.name)
            .bind(&guild.icon)
            .bind(guild.owner.map(|o| o.to_string()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The install flow's "record the guild and its owner if unclaimed": inserts the
    /// guild owned by `owner`, or gives a known guild that owner only if it has none.
    /// `owner` must be a known user (they logged in to start the install). Returns the
    /// guild's owner afterwards, so the caller sees whether the claim took.
    pub async fn claim_guild(
        &self,
        guild: GuildId,
        name: &str,
        owner: UserId,
    ) -> Result<Option<UserId>, RepoError> {
        let after: Option<String> = sqlx::query_scalar(schema::CLAIM_GUILD)
            .bind(guild.to_string())
            .bind(name)
            .bind(owner.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                if violates(&e, schema::GUILD_OWNER_FK) {
                    RepoError::UnknownUser(owner)
                } else {
                    RepoError::Db(e)
                }
            })?;
        after
            .as_deref()
            .map(|raw| parse_snowflake("user id", raw))
            .transpose()
            .map_err(|e| corrupt("guild", e))
    }

    pub async fn guild(&self, guild: GuildId) -> Result<Option<StoredGuild>, RepoError> {
        let row: Option<GuildRow> = sqlx::query_as(schema::SELECT_GUILD)
            .bind(guild.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Deletes a guild; its channels and their scan runs go with it. Its settings row
    /// stays (the seed gives `guild_settings` no foreign key), so re-adding the bot
    /// finds them again.
    pub async fn delete_guild(&self, guild: GuildId) -> Result<bool, RepoError> {
        let done = sqlx::query(schema::DELETE_GUILD)
            .bind(guild.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- settings

    /// A guild's settings; `{}` when it has none.
    pub async fn guild_settings(&self, guild: GuildId) -> Result<Settings, RepoError> {
        let raw: Option<Value> = sqlx::query_scalar(schema::SELECT_GUILD_SETTINGS)
            .bind(guild.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match raw {
            None => Ok(Settings::empty()),
            Some(v) => Settings::from_json(v).map_err(|e| corrupt("guild settings", e)),
        }
    }

    /// Partial update: the patch's top-level keys replace the stored ones (`||`), a key
    /// set to `null` is removed. Creates the row when missing. Returns the result.
    pub async fn update_guild_settings(
        &self,
        guild: GuildId,
        patch: &Settings,
    ) -> Result<Settings, RepoError> {
        let raw: Value = sqlx::query_scalar(schema::PATCH_GUILD_SETTINGS)
            .bind(guild.to_string())
            .bind(patch.to_json())
            .fetch_one(&self.pool)
            .await?;
        Settings::from_json(raw).map_err(|e| corrupt("guild settings", e))
    }

    /// The same partial update on a channel's overrides.
    pub async fn update_channel_settings(
        &self,
        channel: ChannelId,
        patch: &Settings,
    ) -> Result<Settings, RepoError> {
        let raw: Option<Value> = sqlx::query_scalar(schema::PATCH_CHANNEL_SETTINGS)
            .bind(channel.to_string())
            .bind(patch.to_json())
            .fetch_optional(&self.pool)
            .await?;
        let raw = raw.ok_or(RepoError::UnknownChannel(channel))?;
        Settings::from_json(raw).map_err(|e| corrupt("channel settings", e))
    }

    /// A channel's effective settings: its guild's, with its own overrides merged in.
    pub async fn effective_settings(&self, channel: ChannelId) -> Result<Settings, RepoError> {
        let pair: Option<(Value, Value)> = sqlx::query_as(schema::SELECT_SETTINGS_PAIR)
            .bind(channel.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let (guild, own) = pair.ok_or(RepoError::UnknownChannel(channel))?;
        let guild = Settings::from_json(guild).map_err(|e| corrupt("guild settings", e))?;
        let own = Settings::from_json(own).map_err(|e| corrupt("channel settings", e))?;
        Ok(guild.merged_with(&own))
    }

    // ---- channels

    /// Creates or refreshes a channel; its guild must be known.
    pub async fn upsert_channel(&self, channel: &ChannelInfo) -> Result<(), RepoError> {
        sqlx::query(schema::UPSERT_CHANNEL)
            .bind(channel.id.to_string())
            .bind(channel.guild.to_string())
            .bind(&channel.name)
            .bind(&channel.kind)
            .bind(channel.is_nsfw)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if violates(&e, schema::CHANNEL_GUILD_FK) {
                    RepoError::UnknownGuild(channel.guild)
                } else {
                    RepoError::Db(e)
                }
            })?;
        Ok(())
    }

    /// Enables or disables reading a channel.
    pub async fn set_reading(&self, channel: ChannelId, reading: bool) -> Result<(), RepoError> {
        let done = sqlx::query(schema::SET_READING)
            .bind(channel.to_string())
            .bind(reading)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(RepoError::UnknownChannel(channel));
        }
        tracing::info!(%channel, reading, "channel reading changed");
        Ok(())
    }

    pub async fn channel(&self, channel: ChannelId) -> Result<Option<StoredChannel>, RepoError> {
        let row: Option<ChannelRow> = sqlx::query_as(schema::SELECT_CHANNEL)
            .bind(channel.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// A guild's channels being read, least recently scanned first.
    pub async fn reading_channels(&self, guild: GuildId) -> Result<Vec<StoredChannel>, RepoError> {
        let rows: Vec<ChannelRow> = sqlx::query_as(schema::SELECT_READING_CHANNELS)
            .bind(guild.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    // ---- scan runs

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
                if violates(&e, schema::RUN_CHANNEL_FK) {
                    RepoError::UnknownChannel(channel)
                } else {
                    RepoError::Db(e)
                }
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
    /// channel's `message_count`, `last_scanned_at` and `last_message_id`, in one
    /// statement. A run that is no longer running takes no progress
    /// ([`RepoError::NotRunning`]): that is how a worker learns its run was canceled.
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

    // ---- install intents

    /// Stores a new intent; its user must be known ([`RepoError::UnknownUser`]).
    /// Both times are written explicitly as UTC: the columns are `timestamp` without
    /// time zone, and the seed's default (`current_timestamp`) would be the session's
    /// local time.
    pub async fn create_intent(&self, intent: &InstallIntent) -> Result<(), RepoError> {
        sqlx::query(schema::INSERT_INTENT)
            .bind(intent.state.as_str())
            .bind(intent.user.to_string())
            .bind(intent.guild.to_string())
            .bind(intent.created_at.naive_utc())
            .bind(intent.expires_at.naive_utc())
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if violates(&e, schema::INTENT_USER_FK) {
                    RepoError::UnknownUser(intent.user)
                } else {
                    RepoError::Db(e)
                }
            })?;
        tracing::info!(user = %intent.user, guild = %intent.guild, "install intent created");
        Ok(())
    }

    /// Consumes the intent of `state` for `user` at `now`: it is deleted and returned
    /// only if it belongs to `user` and has not expired, in one statement, so it can be
    /// consumed once. Otherwise nothing changes and the error says why
    /// ([`ConsumeError::Unknown`], `Expired`, or `Forbidden` for another user's).
    pub async fn consume_intent(
        &self,
        state: &IntentState,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<InstallIntent, RepoError> {
        let row: Option<InstallIntentRow> = sqlx::query_as(schema::CONSUME_INTENT)
            .bind(state.as_str())
            .bind(user.to_string())
            .bind(now.naive_utc())
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            return row.try_into();
        }
        // Not consumed: read what is there only to say why.
        let found: Option<InstallIntentRow> = sqlx::query_as(schema::SELECT_INTENT)
            .bind(state.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let found = found.map(InstallIntent::try_from).transpose()?;
        match consume_verdict(found.as_ref(), user, now) {
            Err(reason) => {
                tracing::info!(%user, %reason, "install intent refused");
                Err(reason.into())
            }
            // Valid now but not consumed above: a concurrent callback took it first.
            Ok(()) => Err(ConsumeError::Unknown.into()),
        }
    }

    /// Deletes the intents that expired more than the grace period before `now`;
    /// returns how many.
    pub async fn purge_install_intents(&self, now: DateTime<Utc>) -> Result<u64, RepoError> {
        let done = sqlx::query(schema::PURGE_INTENTS)
            .bind(purge_cutoff(now).naive_utc())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
