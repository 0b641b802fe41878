//! The campaigns' repositories over the seed's keys ([`crate::schema`]), one file per
//! aggregate, all on one facade, [`Repo`]:
//!
//! - [`links`]: Meetup ↔ Discord user links and the users' own OAuth2 tokens;
//! - [`linking`]: the one-time linking ids and the CSRF tokens of the linking flow;
//! - [`organiser`]: the organiser's OAuth2 tokens;
//! - [`events`]: Meetup events, their hosts, RSVPs and series relation, and what the
//!   Meetup sync reads ([`Repo::sync_view`]);
//! - [`series`]: event series, and removing a series with every key of it;
//! - [`channels`]: a series' text and voice channel and a channel's guest and host
//!   roles;
//! - [`lifecycle`]: a game channel's expiration, reminders, snooze and deletion;
//! - [`discord_view`]: what the Discord step of the sync reads, pipelined, and the
//!   free-spots message's record;
//! - [`topic`]: claiming the user-topic voice channel (its topic time, compared and
//!   set in one step);
//! - [`names`]: the Meetup members' names the sync saw (Tavern's own, for
//!   `/players list`);
//! - [`schedule`]: the schedule form's claim on a session it creates (one Meetup event
//!   per session, however often the form is sent);
//! - [`removals`], [`orphans`], [`managed`]: the small sets and strings (manual
//!   removals, Discord objects the bot failed to delete, managed channels, the
//!   user-topic voice channel's topic time).
//!
//! Every change that touches more than one key is one atomic step: a `WATCH`/`MULTI`
//! transaction ([`store::Redis::watch`], which retries when a watched key changes)
//! when the change depends on what is stored (a link must not overwrite another link,
//! a channel must not be taken twice), or one `MULTI`/`EXEC` ([`store::Redis::apply`])
//! when it does not. A transaction's body may `WATCH` more keys once it has read which
//! ones it needs (the channel of a series, the roles of a channel); they are watched
//! before `MULTI`, so a concurrent change to any of them makes the transaction start
//! over. A reader therefore never sees half a relation.
//!
//! Refusals (a user linked elsewhere, a channel owned by another series) are decided
//! inside the transaction and leave Redis untouched. Failures of Redis itself, and
//! values that cannot be read, are [`StorageError`]s inside [`RepoError::Storage`].

pub mod channels;
pub mod directory;
pub mod discord_view;
pub mod events;
pub mod lifecycle;
pub mod linking;
pub mod links;
pub mod managed;
pub mod names;
pub mod organiser;
pub mod orphans;
pub mod removals;
pub mod schedule;
pub mod series;
pub mod sync_guard;
pub mod topic;

use std::future::Future;

use chrono::{DateTime, Utc};
use discord::model::{ChannelId, RoleId, UserId};
use meetup::{AccessToken, RefreshToken};
use store::{Redis, RedisConn, StorageError, StoreError, Writes};

use crate::domain::{self, EndAdventureError, EventSeriesId, MeetupEventId, MeetupUserId};
use base::InvalidId;

pub use channels::Registration;
pub use directory::MeetupDirectory;
pub use discord_view::{DiscordView, EventState, FreeSpotsMessage, SeriesState};
pub use events::{EventDeletion, EventUpsert, MeetupEvent, SyncView, TrackedEvent, TrackedSeries};
pub use lifecycle::GoneObjects;
pub use linking::{CSRF_TTL_SECS, CsrfCheck, LINKING_ID_TTL_SECS, OPENED_LINKING_ID_TTL_SECS};
pub use links::{LinkOutcome, UserTokens};
pub use organiser::{
    OrganizerTokens, REFUSAL_ALERT_LOCK_TTL, RefusalAlertClaim, TOKEN_REFRESH_LOCK_TTL,
    TokenRefreshLock,
};
pub use orphans::Orphan;
pub use removals::Removal;
pub use schedule::{ScheduleClaim, UNKNOWN_KEPT_SECONDS};
pub use series::RemovedSeries;
pub use topic::TopicClaim;

/// Errors of the campaigns' repositories: a storage failure, or a refusal the rules
/// of the seed's relations make.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Redis failed, gave up on a contended transaction, or holds a value that cannot
    /// be read (`Corrupt` names the key).
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("Meetup user {meetup} is already linked to Discord user {discord}")]
    MeetupUserLinkedElsewhere {
        meetup: MeetupUserId,
        discord: UserId,
    },
    #[error("Discord user {discord} is already linked to Meetup user {meetup}")]
    DiscordUserLinkedElsewhere {
        discord: UserId,
        meetup: MeetupUserId,
    },
    #[error("event {event} belongs to series {current}, not to {requested}")]
    EventInOtherSeries {
        event: MeetupEventId,
        current: EventSeriesId,
        requested: EventSeriesId,
    },
    #[error("event series {0} is not tracked")]
    UnknownSeries(EventSeriesId),
    #[error("event series {series} already has the {what} {existing}")]
    SeriesHasChannel {
        series: EventSeriesId,
        what: &'static str,
        existing: ChannelId,
    },
    #[error("channel {channel} already belongs to event series {series}")]
    ChannelTaken {
        channel: ChannelId,
        series: EventSeriesId,
    },
    #[error("channel {0} is not a game channel")]
    UnknownChannel(ChannelId),
    #[error("channel {channel} already has the {what} {existing}")]
    ChannelHasRole {
        channel: ChannelId,
        what: &'static str,
        existing: RoleId,
    },
    #[error("role {role} already belongs to channel {channel}")]
    RoleTaken { role: RoleId, channel: ChannelId },
    #[error("role {0} cannot be both the guest and the host role")]
    SameRole(RoleId),
    #[error(transparent)]
    EndAdventure(#[from] EndAdventureError),
}

impl From<StoreError> for RepoError {
    fn from(error: StoreError) -> RepoError {
        RepoError::Storage(error.into())
    }
}

impl From<redis::RedisError> for RepoError {
    fn from(error: redis::RedisError) -> RepoError {
        RepoError::Storage(error.into())
    }
}

impl RepoError {
    /// What a person sees for this error in a Discord reply or on a page. The one
    /// mapping of the campaigns' errors: the storage part in the kit's words
    /// ([`feature::reply::user_message`]), the refusals in their own.
    pub fn user_message(&self) -> String {
        match self {
            RepoError::Storage(error) => feature::reply::user_message(error),
            refusal => refusal.to_string(),
        }
    }

    /// This error as a Discord handler's answer (a private message).
    pub fn handler_error(&self) -> feature::HandlerError {
        match self {
            RepoError::Storage(error) => feature::reply::handler_error(error),
            refusal => feature::HandlerError::user(refusal.to_string()),
        }
    }
}

/// A stored value that cannot be read: [`StorageError::Corrupt`] naming the key.
fn corrupt(key: &str, value: &str, reason: impl std::fmt::Display) -> RepoError {
    let value: String = value.chars().take(64).collect();
    RepoError::Storage(StorageError::corrupt(
        key,
        format!("`{value}` is not valid: {reason}"),
    ))
}

/// OAuth2 tokens (a user's own, or the organiser's), as the Meetup client takes them.
/// Both are [`base::Secret`]s: `Debug` never shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access: AccessToken,
    pub refresh: RefreshToken,
}

/// The result a transaction body hands back: the writes to commit and the answer, or a
/// refusal (with nothing to write).
type Body<T> = Result<(Writes, Result<T, RepoError>), StoreError>;

fn refuse<T>(error: RepoError) -> Body<T> {
    Ok((Writes::new(), Err(error)))
}

async fn get(conn: &mut RedisConn, key: &str) -> Result<Option<String>, StoreError> {
    Ok(redis::cmd("GET").arg(key).query_async(conn).await?)
}

async fn members(conn: &mut RedisConn, key: &str) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = redis::cmd("SMEMBERS").arg(key).query_async(conn).await?;
    out.sort();
    Ok(out)
}

/// `WATCH` more keys from inside a transaction body (before its `MULTI`).
async fn watch_more(conn: &mut RedisConn, keys: &[&str]) -> Result<(), StoreError> {
    redis::cmd("WATCH").arg(keys).exec_async(conn).await?;
    Ok(())
}

fn parse_at<T>(
    key: &str,
    raw: Option<String>,
    parse: impl FnOnce(&str) -> Result<T, InvalidId>,
) -> Result<Option<T>, RepoError> {
    raw.map(|v| parse(&v).map_err(|e| corrupt(key, &v, e)))
        .transpose()
}

fn channel_id(key: &str, raw: Option<String>) -> Result<Option<ChannelId>, RepoError> {
    parse_at(key, raw, |v| domain::parse_snowflake("channel id", v))
}

fn role_id(key: &str, raw: Option<String>) -> Result<Option<RoleId>, RepoError> {
    parse_at(key, raw, |v| domain::parse_snowflake("role id", v))
}

fn user_id(key: &str, raw: Option<String>) -> Result<Option<UserId>, RepoError> {
    parse_at(key, raw, |v| domain::parse_snowflake("Discord user id", v))
}

fn meetup_user_id(key: &str, raw: Option<String>) -> Result<Option<MeetupUserId>, RepoError> {
    parse_at(key, raw, MeetupUserId::parse)
}

fn series_id(key: &str, raw: Option<String>) -> Result<Option<EventSeriesId>, RepoError> {
    parse_at(key, raw, EventSeriesId::parse)
}

fn time(key: &str, raw: Option<String>) -> Result<Option<DateTime<Utc>>, RepoError> {
    raw.map(|v| {
        DateTime::parse_from_rfc3339(&v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| corrupt(key, &v, e))
    })
    .transpose()
}

/// How every time is stored: RFC 3339, as the seed says for `time` and the refresh time.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// `SADD key m1 m2 ...`; nothing for no members (SADD needs at least one).
fn sadd_all<I: IntoIterator<Item = u64>>(writes: &mut Writes, key: &str, items: I) {
    let items: Vec<u64> = items.into_iter().collect();
    if !items.is_empty() {
        writes.command("SADD").arg(key).arg(items);
    }
}

/// The campaigns' data in Redis. Cheap to clone. Its methods live with their aggregate
/// (see the module docs).
#[derive(Debug, Clone)]
pub struct Repo {
    redis: Redis,
}

impl Repo {
    pub fn new(redis: Redis) -> Repo {
        Repo { redis }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Runs a `WATCH` transaction whose body may refuse. The store's
    /// [`Redis::watch`] retries while a watched key changes under it and gives up with
    /// [`StorageError::Conflict`].
    async fn transact<T, F, Fut>(&self, keys: &[String], body: F) -> Result<T, RepoError>
    where
        F: FnMut(RedisConn) -> Fut,
        Fut: Future<Output = Body<T>>,
    {
        self.redis.watch(keys, body).await?
    }

    async fn read(&self, key: &str) -> Result<Option<String>, RepoError> {
        Ok(get(&mut self.redis.conn(), key).await?)
    }

    async fn read_members(&self, key: &str) -> Result<Vec<String>, RepoError> {
        Ok(members(&mut self.redis.conn(), key).await?)
    }

    /// A set of string ids (events, series), each parsed.
    async fn id_set<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, InvalidId>,
    ) -> Result<Vec<T>, RepoError> {
        self.read_members(key)
            .await?
            .into_iter()
            .map(|v| parse(&v).map_err(|e| corrupt(key, &v, e)))
            .collect()
    }

    /// A set of Discord ids.
    async fn snowflake_set<T>(&self, key: &str) -> Result<Vec<discord::model::Id<T>>, RepoError> {
        self.id_set(key, |v| domain::parse_snowflake("Discord id", v))
            .await
    }

    /// A set of Meetup user ids.
    async fn meetup_user_set(&self, key: &str) -> Result<Vec<MeetupUserId>, RepoError> {
        self.id_set(key, MeetupUserId::parse).await
    }

    /// Applies `writes` in one `MULTI`/`EXEC`.
    async fn apply(&self, writes: &Writes) -> Result<(), RepoError> {
        Ok(self.redis.apply(writes).await?)
    }
}
