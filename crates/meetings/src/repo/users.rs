//! Accounts (`users`): registration, the row a login checks, `last_login_at`.

use chrono::{DateTime, Utc};

use super::{MeetingsError, Repo};
use crate::auth::Email;
use crate::domain::{DisplayName, OAuthState, UserId};
use crate::schema;

/// What a login needs to know of an account.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub user_id: UserId,
    /// `None` for an account that only logs in through an OAuth provider.
    pub password_hash: Option<String>,
    pub is_active: bool,
}

impl Repo {
    /// Creates an account with a password hash; `None` when the email is taken.
    pub async fn create_user(
        &self,
        email: &Email,
        display_name: &DisplayName,
        password_hash: &str,
    ) -> Result<Option<UserId>, MeetingsError> {
        let id: Option<uuid::Uuid> = sqlx::query_scalar(schema::INSERT_USER)
            .bind(email.as_str())
            .bind(display_name.as_str())
            .bind(password_hash)
            .fetch_optional(self.pg.pool())
            .await?;
        Ok(id.map(UserId::from_uuid))
    }

    /// The account with this email, as a login checks it.
    pub async fn login_record(&self, email: &Email) -> Result<Option<LoginRecord>, MeetingsError> {
        let row: Option<schema::UserLoginRow> = sqlx::query_as(schema::SELECT_USER_LOGIN)
            .bind(email.as_str())
            .fetch_optional(self.pg.pool())
            .await?;
        Ok(row.map(|row| LoginRecord {
            user_id: UserId::from_uuid(row.user_id),
            password_hash: row.password_hash,
            is_active: row.is_active,
        }))
    }

    /// Sets `last_login_at`.
    pub async fn record_login(&self, user: UserId, at: DateTime<Utc>) -> Result<(), MeetingsError> {
        sqlx::query(schema::RECORD_LOGIN)
            .bind(user.as_uuid())
            .bind(at)
            .execute(self.pg.pool())
            .await?;
        Ok(())
    }
}

/// A provider's account to link (tokens already sealed).
#[derive(Debug, Clone)]
pub struct OAuthLink {
    /// `oauth_providers.provider`, e.g. `discord`.
    pub provider: &'static str,
    pub provider_user_id: String,
    /// The email a new account gets (the provider's, or a stand-in).
    pub email: Email,
    pub display_name: DisplayName,
    pub access_token_sealed: Vec<u8>,
    pub refresh_token_sealed: Option<Vec<u8>>,
    pub token_expires_at: Option<DateTime<Utc>>,
}

impl Repo {
    /// Finds the account linked to the provider's user, or creates one (no password)
    /// and links it; either way stores the new sealed tokens. One transaction; when two
    /// first logins race, the loser's new account is rolled back and it uses the
    /// winner's. Returns the user and whether the account was created.
    pub async fn link_oauth_user(&self, link: &OAuthLink) -> Result<(UserId, bool), MeetingsError> {
        for _ in 0..2 {
            let mut tx = self.pg.pool().begin().await?;
            let existing: Option<uuid::Uuid> = sqlx::query_scalar(schema::SELECT_OAUTH_USER)
                .bind(link.provider)
                .bind(&link.provider_user_id)
                .fetch_optional(&mut *tx)
                .await?;
            let (user, created) = match existing {
                Some(user) => (user, false),
                None => {
                    let user: Option<uuid::Uuid> = sqlx::query_scalar(schema::INSERT_OAUTH_USER)
                        .bind(link.email.as_str())
                        .bind(link.display_name.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let user = user.ok_or_else(|| {
                        store::StorageError::conflict(format!(
                            "an account with the email of {} user {}",
                            link.provider, link.provider_user_id
                        ))
                    })?;
                    (user, true)
                }
            };
            let linked: uuid::Uuid = sqlx::query_scalar(schema::UPSERT_OAUTH_PROVIDER)
                .bind(user)
                .bind(link.provider)
                .bind(&link.provider_user_id)
                .bind(&link.access_token_sealed)
                .bind(link.refresh_token_sealed.as_deref())
                .bind(link.token_expires_at)
                .fetch_one(&mut *tx)
                .await?;
            if linked != user {
                tx.rollback().await?;
                continue;
            }
            tx.commit().await?;
            return Ok((UserId::from_uuid(user), created));
        }
        Err(store::StorageError::conflict("a provider link that keeps changing").into())
    }

    /// The account of Discord user `discord_user_id` signed in to Tavern's own web
    /// pages: the one linked to them, or one made and linked now (with the stand-in
    /// email the meetings' Discord login uses, and no provider token: the web session
    /// holds none for the meetings). Returns it and whether it was made.
    pub async fn discord_web_account(
        &self,
        discord_user_id: &str,
        display_name: DisplayName,
    ) -> Result<(UserId, bool), MeetingsError> {
        let email = crate::auth::discord_email(discord_user_id).map_err(|e| {
            store::StorageError::corrupt(format!("Discord user id {discord_user_id}"), e)
        })?;
        self.link_oauth_user(&OAuthLink {
            provider: crate::auth::DISCORD,
            provider_user_id: discord_user_id.to_owned(),
            email,
            display_name,
            access_token_sealed: Vec::new(),
            refresh_token_sealed: None,
            token_expires_at: None,
        })
        .await
    }
}

impl Repo {
    /// Remembers the one-time `state` of a provider login for
    /// [`schema::OAUTH_STATE_TTL`].
    pub async fn save_oauth_state(
        &self,
        state: &OAuthState,
        provider: &str,
    ) -> Result<(), MeetingsError> {
        let mut writes = store::Writes::new();
        writes.set_ex(
            &schema::oauth_state_key(state),
            provider,
            schema::OAUTH_STATE_TTL.as_secs(),
        );
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// Takes a login `state` (read and deleted in one `MULTI`/`EXEC`, so it is used
    /// once): the provider it was made for, or `None` when unknown, used or expired.
    pub async fn take_oauth_state(
        &self,
        state: &OAuthState,
    ) -> Result<Option<String>, MeetingsError> {
        let key = schema::oauth_state_key(state);
        let mut pipe = redis::pipe();
        pipe.atomic().get(&key).del(&key).ignore();
        let mut conn = self.redis.conn();
        let (provider,): (Option<String>,) = pipe.query_async(&mut conn).await?;
        Ok(provider)
    }
}
