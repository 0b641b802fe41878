//! `install_intents`: the OAuth `state` of each bot installation in progress.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Repo, RepoError, corrupt, unless_violates};
use crate::domain::{
    ConsumeError, INTENT_TTL, InstallIntent, IntentState, UserId, consume_verdict, parse_snowflake,
    purge_cutoff,
};
use crate::schema::{self, InstallIntentRow};

impl TryFrom<InstallIntentRow> for InstallIntent {
    type Error = RepoError;
    fn try_from(row: InstallIntentRow) -> Result<InstallIntent, RepoError> {
        let bad = |e| corrupt("install intent", e);
        let expires_at = row.expires_at.and_utc();
        Ok(InstallIntent {
            state: IntentState::parse_token(&row.state)
                .map_err(|e| corrupt("install intent", e))?,
            user: parse_snowflake("user id", &row.user_id).map_err(bad)?,
            guild: parse_snowflake("guild id", &row.guild_id).map_err(bad)?,
            // The column may be null (the seed gives it only a default); Tavern always
            // writes it, and a row without one is taken as created TTL before expiry.
            created_at: row
                .created_at
                .map(|t| t.and_utc())
                .unwrap_or(expires_at - INTENT_TTL),
            expires_at,
        })
    }
}

impl Repo {
    /// Stores a new intent; its user must be known ([`RepoError::UnknownUser`]).
    /// Both times are written explicitly as UTC: the columns are `timestamp` without
    /// time zone, and the seed's default (`current_timestamp`) would be the session's
    /// local time.
    pub async fn create_intent(&self, intent: &InstallIntent) -> Result<(), RepoError> {
        sqlx::query(schema::INSERT_INTENT)
            .bind(intent.state.expose())
            .bind(intent.user.to_string())
            .bind(intent.guild.to_string())
            .bind(intent.created_at.naive_utc())
            .bind(intent.expires_at.naive_utc())
            .execute(&self.pool)
            .await
            .map_err(|e| {
                unless_violates(
                    e,
                    schema::INTENT_USER_FK,
                    RepoError::UnknownUser(intent.user),
                )
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
            .bind(state.expose())
            .bind(user.to_string())
            .bind(now.naive_utc())
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            return row.try_into();
        }
        // Not consumed: read what is there only to say why.
        let found: Option<InstallIntentRow> = sqlx::query_as(schema::SELECT_INTENT)
            .bind(state.expose())
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

    /// Deletes the intents that expired more than `grace` before `now`; returns how
    /// many.
    pub async fn purge_install_intents(
        &self,
        now: DateTime<Utc>,
        grace: TimeDelta,
    ) -> Result<u64, RepoError> {
        let done = sqlx::query(schema::PURGE_INTENTS)
            .bind(purge_cutoff(now, grace).naive_utc())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
