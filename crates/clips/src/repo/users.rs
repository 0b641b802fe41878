//! `users`: the Discord users who logged in or own a guild.

use chrono::{DateTime, Utc};

use super::{Repo, RepoError, corrupt};
use crate::domain::{InternalUserId, StoredText, UserId, parse_snowflake};
use crate::schema::{self, UserRow};

/// What Discord tells us about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProfile {
    pub id: UserId,
    pub username: Option<String>,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
}

/// A stored user.
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

impl Repo {
    /// Creates or refreshes a user by Discord id; returns the stored row.
    pub async fn upsert_user(&self, profile: &UserProfile) -> Result<StoredUser, RepoError> {
        let row: UserRow = sqlx::query_as(schema::UPSERT_USER)
            .bind(profile.id.to_string())
            .bind(
                profile
                    .username
                    .as_deref()
                    .map(|n| StoredText::new(n).into_string()),
            )
            .bind(
                profile
                    .global_name
                    .as_deref()
                    .map(|n| StoredText::new(n).into_string()),
            )
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
}
