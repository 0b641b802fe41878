//! The linking flow's short-lived keys: one-time linking ids
//! (`meetup_linking:{}:discord_user`) and the CSRF tokens of transient browser ids
//! (`csrf:{}`). Both ids are bearer secrets ([`LinkingId`], [`TransientUserId`]); the
//! CSRF token is a [`Secret`].

use base::Secret;
use discord::model::UserId;
use store::Writes;

use super::{Repo, RepoError, user_id};
use crate::domain::{LinkingId, TransientUserId};
use crate::schema;

/// How long a linking id lives before anyone opens it. The seed only says "short
/// lived"; a day is long enough to find a DM again, short enough that ids do not pile up.
pub const LINKING_ID_TTL_SECS: u64 = 24 * 60 * 60;
/// How long a linking id lives once its page has been opened (the behaviour doc's 10
/// minutes: enough to log in on Meetup, short enough that a leaked URL soon dies).
pub const OPENED_LINKING_ID_TTL_SECS: u64 = 10 * 60;
/// The most of a Discord name kept for the linking page (Discord's own limit is 32).
pub const LINKING_NAME_CHARS: usize = 100;
/// How long a CSRF token lives (the behaviour doc's 1 hour).
pub const CSRF_TTL_SECS: u64 = 60 * 60;

/// What [`Repo::take_csrf_if_matches`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfCheck {
    /// No token is stored (expired, used, or never issued).
    Missing,
    /// A token is stored, but not the one presented; it stays.
    Mismatch,
    /// The presented token was the stored one, and is now used up.
    Taken,
}

impl Repo {
    /// Mints a one-time linking id for a Discord user (the URL in the "link meetup" DM);
    /// it lives [`LINKING_ID_TTL_SECS`] until opened.
    pub async fn create_linking_id(&self, discord: UserId) -> Result<LinkingId, RepoError> {
        self.create_linking(discord, None).await
    }

    /// [`Repo::create_linking_id`], keeping also the user's name in Discord (at most
    /// [`LINKING_NAME_CHARS`] characters) as long, in the same step, for the linking
    /// page to show ([`Repo::linking_name`]).
    pub async fn create_named_linking_id(
        &self,
        discord: UserId,
        name: &str,
    ) -> Result<LinkingId, RepoError> {
        self.create_linking(discord, Some(name)).await
    }

    async fn create_linking(
        &self,
        discord: UserId,
        name: Option<&str>,
    ) -> Result<LinkingId, RepoError> {
        let id = LinkingId::random();
        let mut writes = Writes::new();
        writes.set_ex(
            &schema::meetup_linking_discord_user(&id),
            discord.get(),
            LINKING_ID_TTL_SECS,
        );
        if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
            let name: String = name.chars().take(LINKING_NAME_CHARS).collect();
            writes.set_ex(&schema::linking_name(discord), name, LINKING_ID_TTL_SECS);
        }
        self.apply(&writes).await?;
        Ok(id)
    }

    /// The name a Discord user had in Discord when they last asked for a linking link
    /// (kept as long as the link lives unopened); `None` when unknown.
    pub async fn linking_name(&self, discord: UserId) -> Result<Option<String>, RepoError> {
        self.read(&schema::linking_name(discord)).await
    }

    /// The linking page was opened: the id now lives only
    /// [`OPENED_LINKING_ID_TTL_SECS`] more (`GETEX`, one atomic command). `None` when
    /// it expired or was used.
    pub async fn open_linking_id(&self, id: &LinkingId) -> Result<Option<UserId>, RepoError> {
        let key = schema::meetup_linking_discord_user(id);
        let raw: Option<String> = redis::cmd("GETEX")
            .arg(&key)
            .arg("EX")
            .arg(OPENED_LINKING_ID_TTL_SECS)
            .query_async(&mut self.redis.conn())
            .await?;
        user_id(&key, raw)
    }

    /// Uses up a linking id (`GETDEL`: read and delete in one atomic command, so two
    /// callbacks racing with one id cannot both link). `None` when it expired or was
    /// used.
    pub async fn consume_linking_id(&self, id: &LinkingId) -> Result<Option<UserId>, RepoError> {
        let key = schema::meetup_linking_discord_user(id);
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(&key)
            .query_async(&mut self.redis.conn())
            .await?;
        user_id(&key, raw)
    }

    /// Stores the CSRF token of a browser's transient user id for [`CSRF_TTL_SECS`].
    pub async fn set_csrf(&self, user: &TransientUserId, token: &Secret) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.set_ex(&schema::csrf(user), token.expose_str(), CSRF_TTL_SECS);
        self.apply(&writes).await
    }

    /// Checks a CSRF token presented for a browser's transient id and, when it is the
    /// stored one, takes it (each token answers one callback only). The comparison is
    /// constant-time; the delete is a compare-and-delete on the value read, so of two
    /// callbacks racing with one token only one gets [`CsrfCheck::Taken`]. A token
    /// that does not match (or none stored) writes nothing.
    pub async fn take_csrf_if_matches(
        &self,
        user: &TransientUserId,
        presented: &str,
    ) -> Result<CsrfCheck, RepoError> {
        let key = schema::csrf(user);
        let Some(stored) = self.read(&key).await? else {
            return Ok(CsrfCheck::Missing);
        };
        if !Secret::from(stored.as_str()).matches(presented) {
            return Ok(CsrfCheck::Mismatch);
        }
        let mut writes = Writes::new();
        writes.del(&key);
        let taken = self
            .redis
            .apply_if(&key, Some(stored.as_bytes()), &writes)
            .await?;
        Ok(if taken {
            CsrfCheck::Taken
        } else {
            CsrfCheck::Missing
        })
    }

    /// Takes the CSRF token (read and delete, `GETDEL`): each token answers one
    /// callback only.
    pub async fn take_csrf(&self, user: &TransientUserId) -> Result<Option<Secret>, RepoError> {
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(schema::csrf(user))
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(raw.map(Secret::from))
    }
}
