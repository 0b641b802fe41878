//! API keys (`api_keys`): stored by hash with their prefix, looked up by hash, touched
//! when used, revoked by their owner.

use chrono::{DateTime, Utc};

use super::{MeetingsError, Repo};
use crate::auth::{ApiKeyId, Scopes};
use crate::domain::UserId;
use crate::schema;

/// How often `last_used_at` is written for a key in use: at most once a minute.
pub const LAST_USED_EVERY_SECS: f64 = 60.0;

/// A new key's row.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub user_id: UserId,
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    pub key_prefix: String,
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored key, as a request presenting it finds it.
#[derive(Debug, Clone)]
pub struct StoredApiKey {
    pub key_id: ApiKeyId,
    pub user_id: UserId,
    pub scopes: Scopes,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// The owner's `users.is_active`.
    pub user_active: bool,
}

impl StoredApiKey {
    /// Usable at `now`: active, not expired, its owner active.
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.is_active && self.user_active && self.expires_at.is_none_or(|at| now < at)
    }
}

impl Repo {
    pub async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKeyId, MeetingsError> {
        let id: uuid::Uuid = sqlx::query_scalar(schema::INSERT_API_KEY)
            .bind(key.user_id.as_uuid())
            .bind(&key.key_hash)
            .bind(&key.key_prefix)
            .bind(&key.name)
            .bind(key.scopes.to_vec())
            .bind(key.expires_at)
            .fetch_one(self.pg.pool())
            .await?;
        Ok(ApiKeyId::from_uuid(id))
    }

    pub async fn api_key_by_hash(&self, hash: &str) -> Result<Option<StoredApiKey>, MeetingsError> {
        let row: Option<schema::ApiKeyRow> = sqlx::query_as(schema::SELECT_API_KEY_BY_HASH)
            .bind(hash)
            .fetch_optional(self.pg.pool())
            .await?;
        Ok(row.map(|row| StoredApiKey {
            key_id: ApiKeyId::from_uuid(row.key_id),
            user_id: UserId::from_uuid(row.user_id),
            scopes: Scopes::lenient(row.scopes.iter().map(String::as_str)),
            is_active: row.is_active,
            expires_at: row.expires_at,
            user_active: row.user_active,
        }))
    }

    /// Records a use of the key at `now` (written at most once a minute per key).
    pub async fn touch_api_key(
        &self,
        key: ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<(), MeetingsError> {
        sqlx::query(schema::TOUCH_API_KEY)
            .bind(key.as_uuid())
            .bind(now)
            .bind(LAST_USED_EVERY_SECS)
            .execute(self.pg.pool())
            .await?;
        Ok(())
    }

    /// Revokes `owner`'s active key; `false` when there is no such key (unknown,
    /// someone else's, or already revoked).
    pub async fn revoke_api_key(
        &self,
        key: ApiKeyId,
        owner: UserId,
    ) -> Result<bool, MeetingsError> {
        let id: Option<uuid::Uuid> = sqlx::query_scalar(schema::REVOKE_API_KEY)
            .bind(key.as_uuid())
            .bind(owner.as_uuid())
            .fetch_optional(self.pg.pool())
            .await?;
        Ok(id.is_some())
    }
}
