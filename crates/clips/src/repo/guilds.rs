//! `bot_guilds`: the guilds the bot is in, with their owner.

use chrono::{DateTime, Utc};

use super::{Repo, RepoError, corrupt, unless_violates};
use crate::domain::{GuildId, StoredText, UserId, parse_snowflake};
use crate::schema::{self, GuildRow};

/// What Discord tells us about a guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildInfo {
    pub id: GuildId,
    pub name: String,
    pub icon: Option<String>,
    pub owner: Option<UserId>,
}

impl From<discord::model::GuildInfo> for GuildInfo {
    fn from(found: discord::model::GuildInfo) -> GuildInfo {
        GuildInfo {
            id: found.id,
            name: found.name,
            icon: found.icon,
            owner: found.owner_id,
        }
    }
}

/// A stored guild.
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

impl Repo {
    /// Creates or refreshes a guild as Discord describes it (its owner too: an owner not
    /// yet known gets a bare user row, which a later login fills in). One transaction.
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
            .bind(StoredText::new(guild.name.as_str()).into_string())
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
            .bind(StoredText::new(name).into_string())
            .bind(owner.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                unless_violates(e, schema::GUILD_OWNER_FK, RepoError::UnknownUser(owner))
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

    /// Deletes a guild; its channels and their scan runs go with it. Its settings stay
    /// (the seed gives them no foreign key), so re-adding the bot finds them again.
    pub async fn delete_guild(&self, guild: GuildId) -> Result<bool, RepoError> {
        let done = sqlx::query(schema::DELETE_GUILD)
            .bind(guild.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
