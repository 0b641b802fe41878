//! The organiser's OAuth2 tokens (`meetup_access_token`, `meetup_refresh_token`,
//! `meetup_access_token_refresh_time`): someone who organises every configured Meetup
//! group authorised Tavern, and the sync reads Meetup with their token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use meetup::{AccessToken, RefreshToken};
use store::{Condition, Conditional, Writes};

use super::{Repo, RepoError, Tokens, rfc3339, time};
use crate::schema;

/// How long the token refresh lock lives if its holder never gives it back (it died):
/// longer than a refresh takes, retries included.
pub const TOKEN_REFRESH_LOCK_TTL: Duration = Duration::from_secs(60);

/// How long a claim to tell the organisers about a refusal lives if its holder never
/// finishes it (it died): longer than sending one Discord message takes.
pub const REFUSAL_ALERT_LOCK_TTL: Duration = Duration::from_secs(60);

/// A claim to tell the organisers about the recorded refusal
/// ([`Repo::claim_refusal_alert`]).
#[derive(Debug)]
pub struct RefusalAlertClaim {
    /// When Meetup refused Tavern's authorisation: what the alert says.
    pub at: DateTime<Utc>,
    raw: String,
    holder: String,
}

/// The organiser token's refresh lock, held ([`Repo::try_lock_token_refresh`]); give
/// it back with [`Repo::unlock_token_refresh`].
#[derive(Debug)]
pub struct TokenRefreshLock {
    holder: String,
}

/// A value no other holder of the lock has: this process, the time, a counter.
fn lock_holder() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}:{nanos}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The organiser's tokens and when they are next refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizerTokens {
    pub tokens: Tokens,
    pub next_refresh: Option<DateTime<Utc>>,
}

/// The writes that store a token pair and the next refresh time. A recorded refusal
/// ([`Repo::note_authorisation_refused`]) stays, with its date and whether the
/// organisers were told: only an organiser authorising again
/// ([`Repo::set_organizer_tokens`]) or a Meetup call that works
/// ([`Repo::authorisation_works`]) answers it. The new pair is no longer the refused
/// one, though, so it may be refreshed ([`Repo::refusal_stands`]).
fn organizer_writes(tokens: &Tokens, next_refresh: DateTime<Utc>) -> Writes {
    let mut writes = Writes::new();
    writes
        .set(schema::MEETUP_ACCESS_TOKEN, tokens.access.expose_str())
        .set(schema::MEETUP_REFRESH_TOKEN, tokens.refresh.expose_str())
        .set(
            schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME,
            rfc3339(next_refresh),
        )
        .command("HDEL")
        .arg(schema::AUTHORISATION_REFUSED)
        .arg(schema::AUTHORISATION_REFUSED_CURRENT);
    writes
}

impl Repo {
    /// Stores the tokens an organiser just authorised Tavern with and the next refresh
    /// time in one step, forgetting any refusal recorded for the ones before.
    pub async fn set_organizer_tokens(
        &self,
        tokens: &Tokens,
        next_refresh: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let mut writes = organizer_writes(tokens, next_refresh);
        writes.del(schema::AUTHORISATION_REFUSED);
        self.apply(&writes).await
    }

    /// Forgets a recorded refusal: a Meetup call with the organiser's token worked.
    /// A refused refresh grant stays ([`Repo::note_refresh_grant_refused`]): the
    /// access token issued with it works until it expires, the refresh token never.
    pub async fn authorisation_works(&self) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.del(schema::AUTHORISATION_REFUSED);
        let conditions = [Condition::hash_field(
            schema::AUTHORISATION_REFUSED,
            schema::AUTHORISATION_REFUSED_GRANT,
            None::<&str>,
        )];
        self.redis.apply_when(&conditions, &writes).await?;
        Ok(())
    }

    /// When Meetup refused Tavern's authorisation, if the stored token pair is the one
    /// it refused (no refresh has stored another since): refreshing it again would
    /// only spend a refresh token on an answer already known.
    pub async fn refusal_stands(&self) -> Result<Option<DateTime<Utc>>, RepoError> {
        let (at, current): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(schema::AUTHORISATION_REFUSED)
            .arg(schema::AUTHORISATION_REFUSED_AT)
            .arg(schema::AUTHORISATION_REFUSED_CURRENT)
            .query_async(&mut self.redis.conn())
            .await?;
        match current {
            Some(_) => time(schema::AUTHORISATION_REFUSED, at),
            None => Ok(None),
        }
    }

    /// Moves the next refresh (e.g. retry in an hour after a failed refresh).
    pub async fn set_next_token_refresh(&self, at: DateTime<Utc>) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.set(schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME, rfc3339(at));
        self.apply(&writes).await
    }

    /// Moves the next refresh only if `refresh` is still the stored refresh token: a
    /// pair stored meanwhile (an organiser authorising again, another refresh) keeps
    /// its own refresh time. Returns whether it moved it.
    pub async fn set_next_token_refresh_for(
        &self,
        refresh: &RefreshToken,
        at: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        let mut writes = Writes::new();
        writes.set(schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME, rfc3339(at));
        Ok(self
            .redis
            .apply_if(
                schema::MEETUP_REFRESH_TOKEN,
                Some(refresh.expose_str().as_bytes()),
                &writes,
            )
            .await?)
    }

    /// Takes the organiser token's refresh lock (`schema::TOKEN_REFRESH_LOCK`) if
    /// nobody holds it; `None` while somebody does. It expires by itself after
    /// [`TOKEN_REFRESH_LOCK_TTL`].
    pub async fn try_lock_token_refresh(&self) -> Result<Option<TokenRefreshLock>, RepoError> {
        let holder = lock_holder();
        let ttl_ms = u64::try_from(TOKEN_REFRESH_LOCK_TTL.as_millis()).unwrap_or(u64::MAX);
        let taken: Option<String> = redis::cmd("SET")
            .arg(schema::TOKEN_REFRESH_LOCK)
            .arg(&holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(taken.map(|_| TokenRefreshLock { holder }))
    }

    /// Gives the refresh lock back, if it is still `lock`'s (not expired and taken by
    /// somebody else meanwhile).
    pub async fn unlock_token_refresh(&self, lock: TokenRefreshLock) -> Result<(), RepoError> {
        self.release(schema::TOKEN_REFRESH_LOCK, &lock.holder).await
    }

    /// Records that Meetup refused Tavern's authorisation at `at` (first refusal kept)
    /// and that the stored pair is the refused one, only if `refused` is still the
    /// stored refresh token: an organiser who authorised again meanwhile stored a pair
    /// nobody refused. Returns whether it is recorded.
    pub async fn note_authorisation_refused(
        &self,
        refused: &RefreshToken,
        at: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        self.note_refusal(refused, at, false).await
    }

    /// [`Repo::note_authorisation_refused`] for a refresh grant Meetup refused
    /// (`invalid_grant`): the refresh token is dead, so a Meetup call that still works
    /// with the access token issued with it ([`Repo::authorisation_works`]) does not
    /// answer this refusal; only an organiser authorising again does.
    pub async fn note_refresh_grant_refused(
        &self,
        refused: &RefreshToken,
        at: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        self.note_refusal(refused, at, true).await
    }

    async fn note_refusal(
        &self,
        refused: &RefreshToken,
        at: DateTime<Utc>,
        grant: bool,
    ) -> Result<bool, RepoError> {
        let mut writes = Writes::new();
        if grant {
            writes.hset(
                schema::AUTHORISATION_REFUSED,
                schema::AUTHORISATION_REFUSED_GRANT,
                "1",
            );
        }
        writes
            .command("HSETNX")
            .arg(schema::AUTHORISATION_REFUSED)
            .arg(schema::AUTHORISATION_REFUSED_AT)
            .arg(rfc3339(at));
        writes.hset(
            schema::AUTHORISATION_REFUSED,
            schema::AUTHORISATION_REFUSED_CURRENT,
            "1",
        );
        let conditions = [Condition::equals(
            schema::MEETUP_REFRESH_TOKEN,
            Some(refused.expose_str()),
        )];
        Ok(matches!(
            self.redis.apply_when(&conditions, &writes).await?,
            Conditional::Applied(_)
        ))
    }

    /// When Meetup refused Tavern's authorisation, if it did since the last one.
    pub async fn authorisation_refused(&self) -> Result<Option<DateTime<Utc>>, RepoError> {
        time(schema::AUTHORISATION_REFUSED, self.refusal_time().await?)
    }

    async fn refusal_time(&self) -> Result<Option<String>, RepoError> {
        Ok(redis::cmd("HGET")
            .arg(schema::AUTHORISATION_REFUSED)
            .arg(schema::AUTHORISATION_REFUSED_AT)
            .query_async(&mut self.redis.conn())
            .await?)
    }

    /// Claims telling the organisers about the recorded refusal, if they have not been
    /// told yet and nobody else is telling them right now (`schema::REFUSAL_ALERT_LOCK`,
    /// held for [`REFUSAL_ALERT_LOCK_TTL`] at most). Send the alert, then
    /// [`Repo::finish_refusal_alert`]: the refusal counts as told only once the alert
    /// went out, so a failed send is tried again, and one replica sends it.
    pub async fn claim_refusal_alert(&self) -> Result<Option<RefusalAlertClaim>, RepoError> {
        if self.untold_refusal().await?.is_none() {
            return Ok(None);
        }
        let holder = lock_holder();
        let ttl_ms = u64::try_from(REFUSAL_ALERT_LOCK_TTL.as_millis()).unwrap_or(u64::MAX);
        let taken: Option<String> = redis::cmd("SET")
            .arg(schema::REFUSAL_ALERT_LOCK)
            .arg(&holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut self.redis.conn())
            .await?;
        if taken.is_none() {
            return Ok(None);
        }
        // Read again under the lock: somebody may have finished telling them between.
        match self.untold_refusal().await? {
            Some((raw, at)) => Ok(Some(RefusalAlertClaim { at, raw, holder })),
            None => {
                self.release(schema::REFUSAL_ALERT_LOCK, &holder).await?;
                Ok(None)
            }
        }
    }

    /// Ends a claim: with `told`, the refusal it was for (if still the recorded one)
    /// counts as told from now on; without, the next claim tries again.
    pub async fn finish_refusal_alert(
        &self,
        claim: RefusalAlertClaim,
        told: bool,
    ) -> Result<(), RepoError> {
        if told {
            let mut writes = Writes::new();
            writes.hset(
                schema::AUTHORISATION_REFUSED,
                schema::AUTHORISATION_REFUSED_ALERTED,
                "1",
            );
            let conditions = [Condition::hash_field(
                schema::AUTHORISATION_REFUSED,
                schema::AUTHORISATION_REFUSED_AT,
                Some(claim.raw.as_str()),
            )];
            self.redis.apply_when(&conditions, &writes).await?;
        }
        self.release(schema::REFUSAL_ALERT_LOCK, &claim.holder)
            .await
    }

    /// The recorded refusal (as stored, and read) if the organisers were not told.
    async fn untold_refusal(&self) -> Result<Option<(String, DateTime<Utc>)>, RepoError> {
        let (at, alerted): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(schema::AUTHORISATION_REFUSED)
            .arg(schema::AUTHORISATION_REFUSED_AT)
            .arg(schema::AUTHORISATION_REFUSED_ALERTED)
            .query_async(&mut self.redis.conn())
            .await?;
        match (at, alerted) {
            (Some(raw), None) => {
                let at = time(schema::AUTHORISATION_REFUSED, Some(raw.clone()))?;
                Ok(at.map(|at| (raw, at)))
            }
            _ => Ok(None),
        }
    }

    /// Deletes lock `key` if `holder` still holds it.
    async fn release(&self, key: &str, holder: &str) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.del(key);
        self.redis
            .apply_if(key, Some(holder.as_bytes()), &writes)
            .await?;
        Ok(())
    }

    /// The organiser's tokens, if an organiser has authorised Tavern.
    pub async fn organizer_tokens(&self) -> Result<Option<OrganizerTokens>, RepoError> {
        let (access, refresh, next): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("MGET")
                .arg(schema::MEETUP_ACCESS_TOKEN)
                .arg(schema::MEETUP_REFRESH_TOKEN)
                .arg(schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME)
                .query_async(&mut self.redis.conn())
                .await?;
        let (Some(access), Some(refresh)) = (access, refresh) else {
            return Ok(None);
        };
        Ok(Some(OrganizerTokens {
            tokens: Tokens {
                access: AccessToken::from(access),
                refresh: RefreshToken::from(refresh),
            },
            next_refresh: time(schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME, next)?,
        }))
    }

    /// Stores a refreshed organiser token pair and the next refresh time, in one
    /// transaction, only if the stored refresh token is still `spent` (the one the
    /// refresh used). Returns whether it stored them.
    ///
    /// Meetup rotates both tokens on a refresh, so whoever refreshed second with the
    /// same refresh token got an error; and an organiser who authorised Tavern again
    /// meanwhile stored a newer pair. In both cases what is stored is newer than what
    /// the caller holds, so it is left alone (the caller may still use its own fresh
    /// access token for the request at hand).
    pub async fn replace_organizer_tokens(
        &self,
        spent: &RefreshToken,
        tokens: &Tokens,
        next_refresh: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        // One compare-and-set round trip on the refresh token.
        Ok(self
            .redis
            .apply_if(
                schema::MEETUP_REFRESH_TOKEN,
                Some(spent.expose_str().as_bytes()),
                &organizer_writes(tokens, next_refresh),
            )
            .await?)
    }
}
