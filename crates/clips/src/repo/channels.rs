//! `bot_channels`: the channels of the bot's guilds, whether they are read, how far
//! ingestion got, and their settings overrides.

use chrono::{DateTime, Utc};
use discord::model::ChannelType;

use super::{Repo, RepoError, corrupt, unless_violates};
use crate::domain::{ChannelId, GuildId, MessageId, Settings, StoredText, parse_snowflake};
use crate::schema::{self, ChannelRow};

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

/// A stored channel.
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

/// A channel's name as clips stores it: without NULs ([`StoredText`]).
fn stored_name(channel: &ChannelInfo) -> Option<String> {
    channel
        .name
        .as_deref()
        .map(|name| StoredText::new(name).into_string())
}

impl Repo {
    /// Creates or refreshes a channel; its guild must be known.
    pub async fn upsert_channel(&self, channel: &ChannelInfo) -> Result<(), RepoError> {
        sqlx::query(schema::UPSERT_CHANNEL)
            .bind(channel.id.to_string())
            .bind(channel.guild.to_string())
            .bind(stored_name(channel))
            .bind(&channel.kind)
            .bind(channel.is_nsfw)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                unless_violates(
                    e,
                    schema::CHANNEL_GUILD_FK,
                    RepoError::UnknownGuild(channel.guild),
                )
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
}

/// What reading one message of a channel needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingContext {
    pub is_reading: bool,
    pub is_nsfw: bool,
    /// The guild's settings merged with the channel's overrides.
    pub settings: Settings,
}

impl Repo {
    /// Every channel of a guild, by name (case aside, [`crate::domain::name_order`]),
    /// those without one last.
    pub async fn guild_channels(&self, guild: GuildId) -> Result<Vec<StoredChannel>, RepoError> {
        let rows: Vec<ChannelRow> = sqlx::query_as(schema::SELECT_GUILD_CHANNELS)
            .bind(guild.to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut channels = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<Vec<StoredChannel>, RepoError>>()?;
        // Ordered here, not by the database: its collation decides where capitals go.
        channels.sort_by_cached_key(|c| {
            (
                c.info.name.is_none(),
                c.info.name.as_deref().map(crate::domain::name_order),
                c.info.id,
            )
        });
        Ok(channels)
    }

    /// Deletes a channel; its scan runs and its clips go with it. Returns whether it
    /// existed.
    pub async fn delete_channel(&self, channel: ChannelId) -> Result<bool, RepoError> {
        let done = sqlx::query(schema::DELETE_CHANNEL)
            .bind(channel.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Makes a guild's stored channels what Discord lists now (`channels`, a guild's
    /// list, which holds no thread): each is created or refreshed, the others deleted
    /// except threads, in one transaction. A thread is not in that list whether it
    /// exists or not, so its channel row (and its clips) stay. The guild must be known.
    pub async fn sync_guild_channels(
        &self,
        guild: GuildId,
        channels: &[ChannelInfo],
    ) -> Result<(), RepoError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = channels.iter().map(|c| c.id.to_string()).collect();
        sqlx::query(schema::DELETE_STALE_CHANNELS)
            .bind(guild.to_string())
            .bind(ids)
            .bind(ChannelType::Thread.as_str())
            .execute(&mut *tx)
            .await?;
        for channel in channels {
            sqlx::query(schema::UPSERT_CHANNEL)
                .bind(channel.id.to_string())
                .bind(guild.to_string())
                .bind(stored_name(channel))
                .bind(&channel.kind)
                .bind(channel.is_nsfw)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    unless_violates(e, schema::CHANNEL_GUILD_FK, RepoError::UnknownGuild(guild))
                })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether a channel is read, its NSFW flag and its effective settings; `None` for
    /// a channel Tavern does not know.
    pub async fn reading_context(
        &self,
        channel: ChannelId,
    ) -> Result<Option<ReadingContext>, RepoError> {
        let row: Option<(bool, Option<bool>, serde_json::Value, serde_json::Value)> =
            sqlx::query_as(schema::SELECT_READING_CONTEXT)
                .bind(channel.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some((is_reading, is_nsfw, guild, own)) = row else {
            return Ok(None);
        };
        let guild = Settings::from_json(guild).map_err(|e| corrupt("guild settings", e))?;
        let own = Settings::from_json(own).map_err(|e| corrupt("channel settings", e))?;
        Ok(Some(ReadingContext {
            is_reading,
            is_nsfw: is_nsfw.unwrap_or(false),
            settings: guild.merged_with(&own),
        }))
    }
}
