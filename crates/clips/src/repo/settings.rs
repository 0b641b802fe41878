//! The settings documents: a guild's, a channel's overrides, and the two merged.

use serde_json::Value;

use super::{Repo, RepoError, corrupt};
use crate::domain::{ChannelId, GuildId, Settings};
use crate::schema;

impl Repo {
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
    /// set to `null` is removed. Creates the guild's settings when missing. Returns the
    /// result.
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
}
