//! Repositories over the seed's keys ([`crate::schema`]).
//!
//! Every change that touches more than one key is one atomic step: a `WATCH`/`MULTI`
//! transaction ([`store::Redis::watch`]) when the change depends on what is stored (a
//! link must not overwrite another link, a channel must not be taken twice), or one
//! `MULTI`/`EXEC` ([`store::Redis::apply`]) when it does not. A transaction's body may
//! `WATCH` more keys once it has read which ones it needs (the channel of a series, the
//! roles of a channel); they are watched before `MULTI`, so a concurrent change to any of
//! them makes the transaction start over. A reader therefore never sees half a relation.
//!
//! Refusals (a user linked elsewhere, a channel owned by another series) are decided
//! inside the transaction and leave Redis untouched.

use std::future::Future;

use chrono::{DateTime, Utc};
use discord::model::{ChannelId, RoleId, UserId};
use meetup::{AccessToken, RefreshToken};
use store::{Redis, RedisConn, Writes};

use crate::domain::{
    self, ChannelLifecycle, EndAdventureError, EventSeriesId, InvalidId, LinkingId, MeetupEventId,
    MeetupUserId, SeriesType, TransientUserId,
};
use crate::schema;

/// How long a linking id lives before anyone opens it. The seed only says "short
/// lived"; a day is long enough to find a DM again, short enough that ids do not pile up.
pub const LINKING_ID_TTL_SECS: u64 = 24 * 60 * 60;
/// How long a linking id lives once its page has been opened (the behaviour doc's 10
/// minutes: enough to log in on Meetup, short enough that a leaked URL soon dies).
pub const OPENED_LINKING_ID_TTL_SECS: u64 = 10 * 60;
/// How long a CSRF token lives (the behaviour doc's 1 hour).
pub const CSRF_TTL_SECS: u64 = 60 * 60;

/// Errors of the campaigns' repositories.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
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
    #[error("`{key}` holds `{value}`, which is not valid: {reason}")]
    Corrupt {
        key: String,
        value: String,
        reason: String,
    },
}

fn corrupt(key: &str, value: &str, reason: impl ToString) -> RepoError {
    RepoError::Corrupt {
        key: key.to_owned(),
        value: value.chars().take(64).collect(),
        reason: reason.to_string(),
    }
}

/// A secret string (a CSRF token) that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// OAuth2 tokens (a user's own, or the organiser's), as the Meetup client takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access: AccessToken,
    pub refresh: RefreshToken,
}

/// A linked Meetup user's own tokens and when they were last refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTokens {
    pub tokens: Tokens,
    pub last_refresh: Option<DateTime<Utc>>,
}

/// The organiser's tokens and when they are next refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizerTokens {
    pub tokens: Tokens,
    pub next_refresh: Option<DateTime<Utc>>,
}

/// What [`CampaignStore::link`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    /// The two were already linked to each other (their keys were rewritten, which also
    /// repairs a missing set membership).
    AlreadyLinked,
}

/// A Meetup event as stored in the `meetup_event:{}` hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetupEvent {
    pub id: MeetupEventId,
    pub name: String,
    pub time: DateTime<Utc>,
    pub link: String,
    pub urlname: String,
    /// The optional `is_online` field; `None` removes it.
    pub is_online: Option<bool>,
}

/// Everything one sync learned about an event, written in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventUpsert {
    pub event: MeetupEvent,
    pub series: EventSeriesId,
    /// The series' type to store (the caller decides it with
    /// [`SeriesType::after_sync`]); `None` leaves it as it is.
    pub series_type: Option<SeriesType>,
    /// `[online]` was in the description: the series is marked online. Never unmarked
    /// by a sync (a later session without the shortcode keeps the voice channel).
    pub series_online: bool,
    /// The event's hosts; replaces the stored set.
    pub hosts: Vec<MeetupUserId>,
    /// The "yes" RSVPs, when they were fetched (only for a series' next event);
    /// `None` leaves the stored set as it is.
    pub rsvps: Option<Vec<MeetupUserId>>,
}

/// A tracked event as the Meetup sync sees it ([`CampaignStore::sync_view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedEvent {
    /// The `urlname` of its Meetup group.
    pub urlname: String,
    /// When it starts.
    pub time: DateTime<Utc>,
    /// Its series (`None` when the relation is missing).
    pub series: Option<EventSeriesId>,
}

/// A tracked series as the Meetup sync sees it ([`CampaignStore::sync_view`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackedSeries {
    /// The stored type, if any.
    pub series_type: Option<SeriesType>,
    /// Its tracked events (`event_series:{}:meetup_events`).
    pub events: std::collections::BTreeSet<MeetupEventId>,
}

/// Every tracked event and series, read for one sync ([`CampaignStore::sync_view`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncView {
    pub events: std::collections::BTreeMap<MeetupEventId, TrackedEvent>,
    pub series: std::collections::BTreeMap<EventSeriesId, TrackedSeries>,
    /// What could not be read and was left out, for the log.
    pub unreadable: Vec<String>,
}

/// What [`CampaignStore::delete_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDeletion {
    /// The series the event belonged to.
    pub series: Option<EventSeriesId>,
    /// The series went with its last event (it had no channel; a series with a
    /// channel stays until the channel is deleted).
    pub series_removed: bool,
}

/// What [`CampaignStore::register_channel`] and its siblings did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Registered,
    /// Exactly this relation was already stored.
    AlreadyRegistered,
}

/// Everything that pointed at a removed series, for the caller to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovedSeries {
    pub events: Vec<MeetupEventId>,
    pub channel: Option<ChannelId>,
    pub voice_channel: Option<ChannelId>,
    pub guest_role: Option<RoleId>,
    pub host_role: Option<RoleId>,
}

/// The two kinds of manual removal a host can make in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// `removed_users`: not added back as a player by sync.
    User,
    /// `removed_hosts`: not promoted to host again by sync.
    Host,
}

/// Something the bot created on Discord and failed to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphan {
    Channel(ChannelId),
    VoiceChannel(ChannelId),
    Role(RoleId),
}

impl Orphan {
    fn set(self) -> &'static str {
        match self {
            Orphan::Channel(_) => schema::ORPHANED_DISCORD_CHANNELS,
            Orphan::VoiceChannel(_) => schema::ORPHANED_DISCORD_VOICE_CHANNELS,
            Orphan::Role(_) => schema::ORPHANED_DISCORD_ROLES,
        }
    }
    fn id(self) -> u64 {
        match self {
            Orphan::Channel(c) | Orphan::VoiceChannel(c) => c.get(),
            Orphan::Role(r) => r.get(),
        }
    }
}

/// The result a transaction body hands back: the writes to commit and the answer, or a
/// refusal (with nothing to write).
type Body<T> = Result<(Writes, Result<T, RepoError>), store::StoreError>;

fn refuse<T>(error: RepoError) -> Body<T> {
    Ok((Writes::new(), Err(error)))
}

async fn get(conn: &mut RedisConn, key: &str) -> Result<Option<String>, store::StoreError> {
    Ok(redis::cmd("GET").arg(key).query_async(conn).await?)
}

async fn members(conn: &mut RedisConn, key: &str) -> Result<Vec<String>, store::StoreError> {
    let mut out: Vec<String> = redis::cmd("SMEMBERS").arg(key).query_async(conn).await?;
    out.sort();
    Ok(out)
}

/// `WATCH` more keys from inside a transaction body (before its `MULTI`).
async fn watch_more(conn: &mut RedisConn, keys: &[&str]) -> Result<(), store::StoreError> {
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

/// The campaigns' data in Redis. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CampaignStore {
    redis: Redis,
}

impl CampaignStore {
    pub fn new(redis: Redis) -> CampaignStore {
        CampaignStore { redis }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Runs a `WATCH` transaction whose body may refuse.
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

    // ---- Linking Meetup and Discord users ----------------------------------------

    /// Links a Meetup user and a Discord user: both 1:1 keys and both sets (and the
    /// user's own tokens, when they gave the extra consent) in one transaction.
    ///
    /// Refused when either is linked to somebody else: silently moving a link would hand
    /// one person's game access to another, so the old link must be removed on purpose
    /// first ([`CampaignStore::unlink_discord_user`]).
    pub async fn link(
        &self,
        meetup: MeetupUserId,
        discord: UserId,
        tokens: Option<&UserTokens>,
    ) -> Result<LinkOutcome, RepoError> {
        let meetup_key = schema::meetup_user_discord_user(meetup);
        let discord_key = schema::discord_user_meetup_user(discord);
        let keys = [meetup_key.clone(), discord_key.clone()];
        let (meetup_key, discord_key) = (&meetup_key, &discord_key);
        self.transact(&keys, move |mut conn| async move {
            let linked_discord = get(&mut conn, meetup_key).await?;
            let linked_meetup = get(&mut conn, discord_key).await?;
            let linked_discord = match user_id(meetup_key, linked_discord) {
                Ok(v) => v,
                Err(e) => return refuse(e),
            };
            let linked_meetup = match meetup_user_id(discord_key, linked_meetup) {
                Ok(v) => v,
                Err(e) => return refuse(e),
            };
            if let Some(other) = linked_discord.filter(|d| *d != discord) {
                return refuse(RepoError::MeetupUserLinkedElsewhere {
                    meetup,
                    discord: other,
                });
            }
            if let Some(other) = linked_meetup.filter(|m| *m != meetup) {
                return refuse(RepoError::DiscordUserLinkedElsewhere {
                    discord,
                    meetup: other,
                });
            }
            let outcome = if linked_discord.is_some() && linked_meetup.is_some() {
                LinkOutcome::AlreadyLinked
            } else {
                LinkOutcome::Linked
            };
            let mut writes = Writes::new();
            writes
                .set(meetup_key, discord.get())
                .set(discord_key, meetup.get())
                .sadd(schema::MEETUP_USERS, meetup.get())
                .sadd(schema::DISCORD_USERS, discord.get());
            if let Some(tokens) = tokens {
                user_token_writes(&mut writes, meetup, tokens);
            }
            Ok((writes, Ok(outcome)))
        })
        .await
        .inspect(|outcome| tracing::info!(%meetup, %discord, ?outcome, "linked Meetup user"))
    }

    /// Removes the link of a Discord user, both directions, and the Meetup user's own
    /// tokens (they were given for this link). Returns the Meetup user it was linked to.
    pub async fn unlink_discord_user(
        &self,
        discord: UserId,
    ) -> Result<Option<MeetupUserId>, RepoError> {
        let discord_key = schema::discord_user_meetup_user(discord);
        let keys = [discord_key.clone()];
        let discord_key = &discord_key;
        let unlinked = self
            .transact(&keys, move |mut conn| async move {
                let raw = get(&mut conn, discord_key).await?;
                let meetup = match meetup_user_id(discord_key, raw) {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        let mut writes = Writes::new();
                        writes.srem(schema::DISCORD_USERS, discord.get());
                        return Ok((writes, Ok(None)));
                    }
                    Err(e) => return refuse(e),
                };
                let meetup_key = schema::meetup_user_discord_user(meetup);
                watch_more(&mut conn, &[&meetup_key]).await?;
                let back = user_id(&meetup_key, get(&mut conn, &meetup_key).await?);
                let writes =
                    unlink_writes(meetup, discord, matches!(back, Ok(Some(d)) if d == discord));
                Ok((writes, Ok(Some(meetup))))
            })
            .await?;
        tracing::info!(%discord, meetup = ?unlinked, "unlinked Discord user");
        Ok(unlinked)
    }

    /// Removes the link of a Meetup user (an admin unlinking by Meetup id); the mirror
    /// of [`CampaignStore::unlink_discord_user`].
    pub async fn unlink_meetup_user(
        &self,
        meetup: MeetupUserId,
    ) -> Result<Option<UserId>, RepoError> {
        let meetup_key = schema::meetup_user_discord_user(meetup);
        let keys = [meetup_key.clone()];
        let meetup_key = &meetup_key;
        let unlinked = self
            .transact(&keys, move |mut conn| async move {
                let raw = get(&mut conn, meetup_key).await?;
                let discord = match user_id(meetup_key, raw) {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        let mut writes = Writes::new();
                        writes.srem(schema::MEETUP_USERS, meetup.get());
                        return Ok((writes, Ok(None)));
                    }
                    Err(e) => return refuse(e),
                };
                let discord_key = schema::discord_user_meetup_user(discord);
                watch_more(&mut conn, &[&discord_key]).await?;
                let back = meetup_user_id(&discord_key, get(&mut conn, &discord_key).await?);
                let mut writes = Writes::new();
                // The Meetup side goes in any case; the Discord side only if it points
                // back here (otherwise it belongs to another, valid link).
                writes
                    .del(meetup_key)
                    .srem(schema::MEETUP_USERS, meetup.get())
                    .del(&schema::meetup_user_oauth2_tokens(meetup))
                    .del(&schema::meetup_user_oauth2_tokens_last_refresh_time(meetup));
                if matches!(back, Ok(Some(m)) if m == meetup) {
                    writes
                        .del(&discord_key)
                        .srem(schema::DISCORD_USERS, discord.get());
                }
                Ok((writes, Ok(Some(discord))))
            })
            .await?;
        tracing::info!(%meetup, discord = ?unlinked, "unlinked Meetup user");
        Ok(unlinked)
    }

    /// The Meetup user a Discord user is linked to.
    pub async fn meetup_user_of(&self, discord: UserId) -> Result<Option<MeetupUserId>, RepoError> {
        let key = schema::discord_user_meetup_user(discord);
        meetup_user_id(&key, self.read(&key).await?)
    }

    /// The Discord user a Meetup user is linked to.
    pub async fn discord_user_of(&self, meetup: MeetupUserId) -> Result<Option<UserId>, RepoError> {
        let key = schema::meetup_user_discord_user(meetup);
        user_id(&key, self.read(&key).await?)
    }

    /// Stores a linked user's refreshed tokens (hash and refresh time in one step).
    pub async fn set_user_tokens(
        &self,
        meetup: MeetupUserId,
        tokens: &UserTokens,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        user_token_writes(&mut writes, meetup, tokens);
        Ok(self.redis.apply(&writes).await?)
    }

    /// A Meetup user's own tokens, if they gave them.
    pub async fn user_tokens(&self, meetup: MeetupUserId) -> Result<Option<UserTokens>, RepoError> {
        let key = schema::meetup_user_oauth2_tokens(meetup);
        let time_key = schema::meetup_user_oauth2_tokens_last_refresh_time(meetup);
        let mut conn = self.redis.conn();
        let (access, refresh): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&key)
            .arg(schema::OAUTH2_ACCESS_TOKEN)
            .arg(schema::OAUTH2_REFRESH_TOKEN)
            .query_async(&mut conn)
            .await
            .map_err(store::StoreError::from)?;
        let (Some(access), Some(refresh)) = (access, refresh) else {
            return Ok(None);
        };
        let last_refresh = time(&time_key, get(&mut conn, &time_key).await?)?;
        Ok(Some(UserTokens {
            tokens: Tokens {
                access: AccessToken::new(access),
                refresh: RefreshToken::new(refresh),
            },
            last_refresh,
        }))
    }

    // ---- One-time linking ids and CSRF tokens ------------------------------------

    /// Mints a one-time linking id for a Discord user (the URL in the "link meetup" DM);
    /// it lives [`LINKING_ID_TTL_SECS`] until opened.
    pub async fn create_linking_id(&self, discord: UserId) -> Result<LinkingId, RepoError> {
        let id = LinkingId::random();
        let mut writes = Writes::new();
        writes.set_ex(
            &schema::meetup_linking_discord_user(&id),
            discord.get(),
            LINKING_ID_TTL_SECS,
        );
        self.redis.apply(&writes).await?;
        Ok(id)
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
            .await
            .map_err(store::StoreError::from)?;
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
            .await
            .map_err(store::StoreError::from)?;
        user_id(&key, raw)
    }

    /// Stores the CSRF token of a browser's transient user id for [`CSRF_TTL_SECS`].
    pub async fn set_csrf(&self, user: &TransientUserId, token: &Secret) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.set_ex(&schema::csrf(user), token.expose(), CSRF_TTL_SECS);
        Ok(self.redis.apply(&writes).await?)
    }

    /// Takes the CSRF token (read and delete, `GETDEL`): each token answers one
    /// callback only.
    pub async fn take_csrf(&self, user: &TransientUserId) -> Result<Option<Secret>, RepoError> {
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(schema::csrf(user))
            .query_async(&mut self.redis.conn())
            .await
            .map_err(store::StoreError::from)?;
        Ok(raw.map(Secret))
    }

    // ---- Organiser token ---------------------------------------------------------

    /// Stores the organiser's tokens and the next refresh time in one step.
    pub async fn set_organizer_tokens(
        &self,
        tokens: &Tokens,
        next_refresh: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes
            .set(schema::MEETUP_ACCESS_TOKEN, tokens.access.expose())
            .set(schema::MEETUP_REFRESH_TOKEN, tokens.refresh.expose())
            .set(
                schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME,
                rfc3339(next_refresh),
            );
        Ok(self.redis.apply(&writes).await?)
    }

    /// Moves the next refresh (e.g. retry in an hour after a failed refresh).
    pub async fn set_next_token_refresh(&self, at: DateTime<Utc>) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.set(schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME, rfc3339(at));
        Ok(self.redis.apply(&writes).await?)
    }

    /// The organiser's tokens, if an organiser has authorised Tavern.
    pub async fn organizer_tokens(&self) -> Result<Option<OrganizerTokens>, RepoError> {
        let (access, refresh, next): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("MGET")
                .arg(schema::MEETUP_ACCESS_TOKEN)
                .arg(schema::MEETUP_REFRESH_TOKEN)
                .arg(schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME)
                .query_async(&mut self.redis.conn())
                .await
                .map_err(store::StoreError::from)?;
        let (Some(access), Some(refresh)) = (access, refresh) else {
            return Ok(None);
        };
        Ok(Some(OrganizerTokens {
            tokens: Tokens {
                access: AccessToken::new(access),
                refresh: RefreshToken::new(refresh),
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
        let keys = [schema::MEETUP_REFRESH_TOKEN.to_owned()];
        self.transact(&keys, move |mut conn| async move {
            let stored = get(&mut conn, schema::MEETUP_REFRESH_TOKEN).await?;
            if stored.as_deref() != Some(spent.expose()) {
                return Ok((Writes::new(), Ok(false)));
            }
            let mut writes = Writes::new();
            writes
                .set(schema::MEETUP_ACCESS_TOKEN, tokens.access.expose())
                .set(schema::MEETUP_REFRESH_TOKEN, tokens.refresh.expose())
                .set(
                    schema::MEETUP_ACCESS_TOKEN_REFRESH_TIME,
                    rfc3339(next_refresh),
                );
            Ok((writes, Ok(true)))
        })
        .await
    }

    // ---- Events ------------------------------------------------------------------

    /// Stores an event with its hosts, RSVPs and series membership (both directions,
    /// and the `meetup_events` / `event_series` sets) in one transaction.
    ///
    /// An event that already belongs to another series is refused: the original bot
    /// skipped such an event too, because moving it would silently change who may see
    /// which channel.
    pub async fn upsert_event(&self, upsert: &EventUpsert) -> Result<(), RepoError> {
        let id = &upsert.event.id;
        let series_key = schema::meetup_event_event_series(id);
        let keys = [series_key.clone()];
        let series_key = &series_key;
        self.transact(&keys, move |mut conn| async move {
            let current = match series_id(series_key, get(&mut conn, series_key).await?) {
                Ok(v) => v,
                Err(e) => return refuse(e),
            };
            if let Some(current) = current.filter(|s| *s != upsert.series) {
                return refuse(RepoError::EventInOtherSeries {
                    event: upsert.event.id.clone(),
                    current,
                    requested: upsert.series.clone(),
                });
            }
            Ok((event_writes(upsert), Ok(())))
        })
        .await?;
        tracing::debug!(event = %id, series = %upsert.series, "event stored");
        Ok(())
    }

    /// An event's hash, `None` when it is not stored.
    pub async fn event(&self, id: &MeetupEventId) -> Result<Option<MeetupEvent>, RepoError> {
        let key = schema::meetup_event(id);
        let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.redis.conn())
            .await
            .map_err(store::StoreError::from)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| -> Result<String, RepoError> {
            fields
                .get(name)
                .cloned()
                .ok_or_else(|| corrupt(&key, "", format!("the field `{name}` is missing")))
        };
        let raw_time = field(schema::EVENT_TIME)?;
        let time = time(&key, Some(raw_time))?.ok_or_else(|| corrupt(&key, "", "no time"))?;
        let is_online = match fields.get(schema::EVENT_IS_ONLINE).map(String::as_str) {
            None => None,
            Some(schema::TRUE) => Some(true),
            Some(schema::FALSE) => Some(false),
            Some(other) => return Err(corrupt(&key, other, "`is_online` is not true/false")),
        };
        Ok(Some(MeetupEvent {
            id: id.clone(),
            name: field(schema::EVENT_NAME)?,
            time,
            link: field(schema::EVENT_LINK)?,
            urlname: field(schema::EVENT_URLNAME)?,
            is_online,
        }))
    }

    /// The series an event belongs to.
    pub async fn series_of_event(
        &self,
        id: &MeetupEventId,
    ) -> Result<Option<EventSeriesId>, RepoError> {
        let key = schema::meetup_event_event_series(id);
        series_id(&key, self.read(&key).await?)
    }

    /// An event's hosts.
    pub async fn event_hosts(&self, id: &MeetupEventId) -> Result<Vec<MeetupUserId>, RepoError> {
        self.meetup_user_set(&schema::meetup_event_meetup_hosts(id))
            .await
    }

    /// An event's "yes" RSVPs.
    pub async fn event_users(&self, id: &MeetupEventId) -> Result<Vec<MeetupUserId>, RepoError> {
        self.meetup_user_set(&schema::meetup_event_meetup_users(id))
            .await
    }

    async fn meetup_user_set(&self, key: &str) -> Result<Vec<MeetupUserId>, RepoError> {
        self.read_members(key)
            .await?
            .into_iter()
            .map(|v| MeetupUserId::parse(&v).map_err(|e| corrupt(key, &v, e)))
            .collect()
    }

    /// Every tracked event.
    pub async fn tracked_events(&self) -> Result<Vec<MeetupEventId>, RepoError> {
        self.token_set(schema::MEETUP_EVENTS, MeetupEventId::parse)
            .await
    }

    /// Every tracked series.
    pub async fn tracked_series(&self) -> Result<Vec<EventSeriesId>, RepoError> {
        self.token_set(schema::EVENT_SERIES, EventSeriesId::parse)
            .await
    }

    /// The tracked events of a series.
    pub async fn series_events(
        &self,
        series: &EventSeriesId,
    ) -> Result<Vec<MeetupEventId>, RepoError> {
        self.token_set(
            &schema::event_series_meetup_events(series),
            MeetupEventId::parse,
        )
        .await
    }

    async fn token_set<T>(
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

    /// What the Meetup sync compares Meetup's answer with: every tracked event with its
    /// group, time and series, and every tracked series with its type and events.
    ///
    /// Lenient on purpose: an id or value that cannot be read is left out of the view
    /// and named in [`SyncView::unreadable`] instead of failing, so one corrupt key
    /// never stops every sync, and the sync never deletes an event it could not read
    /// (`tavern check` reports such keys). Not a snapshot: the sync's writes are each
    /// checked again in their own transaction.
    pub async fn sync_view(&self) -> Result<SyncView, RepoError> {
        let mut conn = self.redis.conn();
        let mut view = SyncView::default();
        for raw in members(&mut conn, schema::MEETUP_EVENTS).await? {
            let Ok(id) = MeetupEventId::parse(&raw) else {
                view.unreadable
                    .push(format!("`{}` member `{raw}`", schema::MEETUP_EVENTS));
                continue;
            };
            let hash = schema::meetup_event(&id);
            let (urlname, raw_time): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(&hash)
                .arg(schema::EVENT_URLNAME)
                .arg(schema::EVENT_TIME)
                .query_async(&mut conn)
                .await
                .map_err(store::StoreError::from)?;
            let series_key = schema::meetup_event_event_series(&id);
            let series = series_id(&series_key, get(&mut conn, &series_key).await?);
            let time = time(&hash, raw_time);
            let (Some(urlname), Ok(Some(time)), Ok(series)) = (urlname, time, series) else {
                view.unreadable.push(format!("event `{id}`"));
                continue;
            };
            view.events.insert(
                id,
                TrackedEvent {
                    urlname,
                    time,
                    series,
                },
            );
        }
        for raw in members(&mut conn, schema::EVENT_SERIES).await? {
            let Ok(id) = EventSeriesId::parse(&raw) else {
                view.unreadable
                    .push(format!("`{}` member `{raw}`", schema::EVENT_SERIES));
                continue;
            };
            let type_key = schema::event_series_type(&id);
            let series_type = parse_at(
                &type_key,
                get(&mut conn, &type_key).await?,
                SeriesType::parse,
            );
            let mut events = std::collections::BTreeSet::new();
            let events_key = schema::event_series_meetup_events(&id);
            let mut readable = true;
            for raw in members(&mut conn, &events_key).await? {
                match MeetupEventId::parse(&raw) {
                    Ok(event) => {
                        events.insert(event);
                    }
                    Err(_) => readable = false,
                }
            }
            let (true, Ok(series_type)) = (readable, series_type) else {
                view.unreadable.push(format!("event series `{id}`"));
                continue;
            };
            view.series.insert(
                id,
                TrackedSeries {
                    series_type,
                    events,
                },
            );
        }
        Ok(view)
    }

    /// Deletes an event with all its keys and relations, in one transaction. A series
    /// left without events and without a channel goes too (nothing on Discord belongs
    /// to it, and no reminder will ever clean it up); a series with a channel stays, so
    /// its channel expires and is reminded and deleted by the lifecycle.
    pub async fn delete_event(&self, id: &MeetupEventId) -> Result<EventDeletion, RepoError> {
        let series_key = schema::meetup_event_event_series(id);
        let keys = [series_key.clone()];
        let series_key = &series_key;
        let deletion = self
            .transact(&keys, move |mut conn| async move {
                let mut writes = Writes::new();
                writes
                    .del(&schema::meetup_event(id))
                    .del(&schema::meetup_event_meetup_hosts(id))
                    .del(&schema::meetup_event_meetup_users(id))
                    .del(series_key)
                    .srem(schema::MEETUP_EVENTS, id.as_str());
                // A corrupt series id is dropped with the event: it names nothing.
                let Ok(Some(series)) = series_id(series_key, get(&mut conn, series_key).await?)
                else {
                    return Ok((
                        writes,
                        Ok(EventDeletion {
                            series: None,
                            series_removed: false,
                        }),
                    ));
                };
                let events_key = schema::event_series_meetup_events(&series);
                let channel_key = schema::event_series_discord_channel(&series);
                let voice_key = schema::event_series_discord_voice_channel(&series);
                watch_more(&mut conn, &[&events_key, &channel_key, &voice_key]).await?;
                let others = members(&mut conn, &events_key)
                    .await?
                    .into_iter()
                    .filter(|e| e != id.as_str())
                    .count();
                let has_channel = get(&mut conn, &channel_key).await?.is_some()
                    || get(&mut conn, &voice_key).await?.is_some();
                writes.srem(&events_key, id.as_str());
                let series_removed = others == 0 && !has_channel;
                if series_removed {
                    writes
                        .srem(schema::EVENT_SERIES, series.as_str())
                        .del(&events_key)
                        .del(&schema::event_series_type(&series))
                        .del(&schema::event_series_is_online(&series));
                }
                Ok((
                    writes,
                    Ok(EventDeletion {
                        series: Some(series),
                        series_removed,
                    }),
                ))
            })
            .await?;
        tracing::info!(event = %id, ?deletion, "event deleted");
        Ok(deletion)
    }

    // ---- Series, channels, roles -------------------------------------------------

    /// A series' stored type (`None` when absent).
    pub async fn series_type(
        &self,
        series: &EventSeriesId,
    ) -> Result<Option<SeriesType>, RepoError> {
        let key = schema::event_series_type(series);
        parse_at(&key, self.read(&key).await?, SeriesType::parse)
    }

    /// Whether a series is online (`event_series:{}:is_online` is `"true"`; absent or
    /// anything else is "falsy", as the seed says).
    pub async fn series_is_online(&self, series: &EventSeriesId) -> Result<bool, RepoError> {
        let raw = self.read(&schema::event_series_is_online(series)).await?;
        Ok(raw.as_deref() == Some(schema::TRUE))
    }

    /// The text channel of a series.
    pub async fn series_channel(
        &self,
        series: &EventSeriesId,
    ) -> Result<Option<ChannelId>, RepoError> {
        let key = schema::event_series_discord_channel(series);
        channel_id(&key, self.read(&key).await?)
    }

    /// The voice channel of a series.
    pub async fn series_voice_channel(
        &self,
        series: &EventSeriesId,
    ) -> Result<Option<ChannelId>, RepoError> {
        let key = schema::event_series_discord_voice_channel(series);
        channel_id(&key, self.read(&key).await?)
    }

    /// The series a game text channel belongs to.
    pub async fn channel_series(
        &self,
        channel: ChannelId,
    ) -> Result<Option<EventSeriesId>, RepoError> {
        let key = schema::discord_channel_event_series(channel);
        series_id(&key, self.read(&key).await?)
    }

    /// The series a voice channel belongs to.
    pub async fn voice_channel_series(
        &self,
        channel: ChannelId,
    ) -> Result<Option<EventSeriesId>, RepoError> {
        let key = schema::discord_voice_channel_event_series(channel);
        series_id(&key, self.read(&key).await?)
    }

    /// A channel's guest and host roles.
    pub async fn channel_roles(
        &self,
        channel: ChannelId,
    ) -> Result<(Option<RoleId>, Option<RoleId>), RepoError> {
        let guest_key = schema::discord_channel_discord_role(channel);
        let host_key = schema::discord_channel_discord_host_role(channel);
        Ok((
            role_id(&guest_key, self.read(&guest_key).await?)?,
            role_id(&host_key, self.read(&host_key).await?)?,
        ))
    }

    /// Records a series' text channel: both 1:1 keys and `discord_channels`, in one
    /// transaction. Refused when the series is not tracked (it was deleted meanwhile),
    /// already has another channel (a concurrent sync won: delete the channel just
    /// created) or the channel belongs to another series.
    pub async fn register_channel(
        &self,
        series: &EventSeriesId,
        channel: ChannelId,
    ) -> Result<Registration, RepoError> {
        self.register_series_channel(series, channel, SeriesChannel::Text)
            .await
    }

    /// Records a series' voice channel: both 1:1 keys and `discord_voice_channels`, in
    /// one transaction; refused like [`CampaignStore::register_channel`].
    pub async fn register_voice_channel(
        &self,
        series: &EventSeriesId,
        channel: ChannelId,
    ) -> Result<Registration, RepoError> {
        self.register_series_channel(series, channel, SeriesChannel::Voice)
            .await
    }

    async fn register_series_channel(
        &self,
        series: &EventSeriesId,
        channel: ChannelId,
        kind: SeriesChannel,
    ) -> Result<Registration, RepoError> {
        let (forward, backward, set) = match kind {
            SeriesChannel::Text => (
                schema::event_series_discord_channel(series),
                schema::discord_channel_event_series(channel),
                schema::DISCORD_CHANNELS,
            ),
            SeriesChannel::Voice => (
                schema::event_series_discord_voice_channel(series),
                schema::discord_voice_channel_event_series(channel),
                schema::DISCORD_VOICE_CHANNELS,
            ),
        };
        let keys = [
            schema::EVENT_SERIES.to_owned(),
            forward.clone(),
            backward.clone(),
        ];
        let (forward, backward) = (&forward, &backward);
        let outcome = self
            .transact(&keys, move |mut conn| async move {
                let tracked: bool = redis::cmd("SISMEMBER")
                    .arg(schema::EVENT_SERIES)
                    .arg(series.as_str())
                    .query_async(&mut conn)
                    .await?;
                if !tracked {
                    return refuse(RepoError::UnknownSeries(series.clone()));
                }
                let existing = match channel_id(forward, get(&mut conn, forward).await?) {
                    Ok(v) => v,
                    Err(e) => return refuse(e),
                };
                let owner = match series_id(backward, get(&mut conn, backward).await?) {
                    Ok(v) => v,
                    Err(e) => return refuse(e),
                };
                if let Some(existing) = existing.filter(|c| *c != channel) {
                    return refuse(RepoError::SeriesHasChannel {
                        series: series.clone(),
                        what: kind.name(),
                        existing,
                    });
                }
                if let Some(owner) = owner.clone().filter(|s| s != series) {
                    return refuse(RepoError::ChannelTaken {
                        channel,
                        series: owner,
                    });
                }
                let outcome = if existing.is_some() && owner.is_some() {
                    Registration::AlreadyRegistered
                } else {
                    Registration::Registered
                };
                let mut writes = Writes::new();
                writes
                    .set(forward, channel.get())
                    .set(backward, series.as_str())
                    .sadd(set, channel.get());
                Ok((writes, Ok(outcome)))
            })
            .await?;
        tracing::info!(%series, %channel, kind = kind.name(), ?outcome, "series channel registered");
        Ok(outcome)
    }

    /// Records a game channel's guest and host roles: the four 1:1 keys and both role
    /// sets, in one transaction. Refused when the channel is not a game channel, already
    /// has other roles, or a role belongs to another channel.
    pub async fn register_roles(
        &self,
        channel: ChannelId,
        guest: RoleId,
        host: RoleId,
    ) -> Result<Registration, RepoError> {
        if guest == host {
            return Err(RepoError::SameRole(guest));
        }
        let channel_series = schema::discord_channel_event_series(channel);
        let channel_guest = schema::discord_channel_discord_role(channel);
        let channel_host = schema::discord_channel_discord_host_role(channel);
        let guest_channel = schema::discord_role_discord_channel(guest);
        let host_channel = schema::discord_host_role_discord_channel(host);
        let keys = [
            channel_series.clone(),
            channel_guest.clone(),
            channel_host.clone(),
            guest_channel.clone(),
            host_channel.clone(),
        ];
        let k = (
            &channel_series,
            &channel_guest,
            &channel_host,
            &guest_channel,
            &host_channel,
        );
        let outcome = self
            .transact(&keys, move |mut conn| async move {
                let (channel_series, channel_guest, channel_host, guest_channel, host_channel) = k;
                if get(&mut conn, channel_series).await?.is_none() {
                    return refuse(RepoError::UnknownChannel(channel));
                }
                let mut same = 0;
                for (key, role, what) in [
                    (channel_guest, guest, "guest role"),
                    (channel_host, host, "host role"),
                ] {
                    match role_id(key, get(&mut conn, key).await?) {
                        Err(e) => return refuse(e),
                        Ok(Some(existing)) if existing != role => {
                            return refuse(RepoError::ChannelHasRole {
                                channel,
                                what,
                                existing,
                            });
                        }
                        Ok(Some(_)) => same += 1,
                        Ok(None) => {}
                    }
                }
                for (key, role) in [(guest_channel, guest), (host_channel, host)] {
                    match channel_id(key, get(&mut conn, key).await?) {
                        Err(e) => return refuse(e),
                        Ok(Some(owner)) if owner != channel => {
                            return refuse(RepoError::RoleTaken {
                                role,
                                channel: owner,
                            });
                        }
                        Ok(Some(_)) => same += 1,
                        Ok(None) => {}
                    }
                }
                let mut writes = Writes::new();
                writes
                    .set(channel_guest, guest.get())
                    .set(guest_channel, channel.get())
                    .set(channel_host, host.get())
                    .set(host_channel, channel.get())
                    .sadd(schema::DISCORD_ROLES, guest.get())
                    .sadd(schema::DISCORD_HOST_ROLES, host.get());
                let outcome = if same == 4 {
                    Registration::AlreadyRegistered
                } else {
                    Registration::Registered
                };
                Ok((writes, Ok(outcome)))
            })
            .await?;
        tracing::info!(%channel, %guest, %host, ?outcome, "channel roles registered");
        Ok(outcome)
    }

    /// Removes a series and every key that belongs to it (its events and their keys,
    /// its text and voice channel keys, its roles' keys, the set memberships), in one
    /// transaction. Called once the channels and roles are gone from Discord (or were
    /// recorded as orphans).
    pub async fn remove_series(&self, series: &EventSeriesId) -> Result<RemovedSeries, RepoError> {
        let events_key = schema::event_series_meetup_events(series);
        let channel_key = schema::event_series_discord_channel(series);
        let voice_key = schema::event_series_discord_voice_channel(series);
        let keys = [events_key.clone(), channel_key.clone(), voice_key.clone()];
        let k = (&events_key, &channel_key, &voice_key);
        let removed = self
            .transact(&keys, move |mut conn| async move {
                let (events_key, channel_key, voice_key) = k;
                let mut removed = RemovedSeries::default();
                let mut writes = Writes::new();
                for raw in members(&mut conn, events_key).await? {
                    // Only events that point back here are this series' to delete.
                    let Ok(event) = MeetupEventId::parse(&raw) else {
                        continue;
                    };
                    let back_key = schema::meetup_event_event_series(&event);
                    watch_more(&mut conn, &[&back_key]).await?;
                    if get(&mut conn, &back_key).await?.as_deref() != Some(series.as_str()) {
                        continue;
                    }
                    event_delete_writes(&mut writes, &event);
                    removed.events.push(event);
                }
                writes
                    .del(events_key)
                    .del(channel_key)
                    .del(voice_key)
                    .del(&schema::event_series_type(series))
                    .del(&schema::event_series_is_online(series))
                    .srem(schema::EVENT_SERIES, series.as_str());
                let channel = channel_id(channel_key, get(&mut conn, channel_key).await?);
                if let Ok(Some(channel)) = channel {
                    let back_key = schema::discord_channel_event_series(channel);
                    let guest_key = schema::discord_channel_discord_role(channel);
                    let host_key = schema::discord_channel_discord_host_role(channel);
                    watch_more(&mut conn, &[&back_key, &guest_key, &host_key]).await?;
                    if get(&mut conn, &back_key).await?.as_deref() == Some(series.as_str()) {
                        removed.channel = Some(channel);
                        let guest = role_id(&guest_key, get(&mut conn, &guest_key).await?);
                        let host = role_id(&host_key, get(&mut conn, &host_key).await?);
                        removed.guest_role = guest.ok().flatten();
                        removed.host_role = host.ok().flatten();
                        // A role's own key goes only if it points back at this channel.
                        let guest_back =
                            removed.guest_role.map(schema::discord_role_discord_channel);
                        let host_back = removed
                            .host_role
                            .map(schema::discord_host_role_discord_channel);
                        let mut owned = [removed.guest_role, removed.host_role];
                        for (slot, back) in owned.iter_mut().zip([guest_back, host_back]) {
                            let Some(back) = back else { continue };
                            watch_more(&mut conn, &[&back]).await?;
                            let points_back = get(&mut conn, &back).await?.as_deref()
                                == Some(channel.get().to_string().as_str());
                            if !points_back {
                                *slot = None;
                            }
                        }
                        let [guest_owned, host_owned] = owned;
                        channel_delete_writes(&mut writes, channel, guest_owned, host_owned);
                    }
                }
                let voice = channel_id(voice_key, get(&mut conn, voice_key).await?);
                if let Ok(Some(voice)) = voice {
                    let back_key = schema::discord_voice_channel_event_series(voice);
                    watch_more(&mut conn, &[&back_key]).await?;
                    if get(&mut conn, &back_key).await?.as_deref() == Some(series.as_str()) {
                        removed.voice_channel = Some(voice);
                        writes
                            .del(&back_key)
                            .del(&schema::discord_voice_channel_deletion_time(voice))
                            .srem(schema::DISCORD_VOICE_CHANNELS, voice.get());
                    }
                }
                Ok((writes, Ok(removed)))
            })
            .await?;
        tracing::info!(%series, ?removed, "series removed");
        Ok(removed)
    }

    // ---- Channel lifecycle -------------------------------------------------------

    /// What is stored about a game channel's lifecycle; `None` when the channel is not a
    /// game channel. A series without a stored type counts as an adventure.
    pub async fn channel_lifecycle(
        &self,
        channel: ChannelId,
    ) -> Result<Option<ChannelLifecycle>, RepoError> {
        let Some(series) = self.channel_series(channel).await? else {
            return Ok(None);
        };
        let keys = [
            schema::discord_channel_expiration_time(channel),
            schema::discord_channel_last_expiration_reminder_time(channel),
            schema::discord_channel_snooze_until(channel),
            schema::discord_channel_deletion_time(channel),
        ];
        let raw: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.redis.conn())
            .await
            .map_err(store::StoreError::from)?;
        let mut times = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(raw) {
            times.push(time(key, value)?);
        }
        let [expiration, last_reminder, snooze_until, deletion] = times[..] else {
            return Err(corrupt(
                &keys[0],
                "",
                "MGET answered the wrong number of values",
            ));
        };
        Ok(Some(ChannelLifecycle {
            series_type: self
                .series_type(&series)
                .await?
                .unwrap_or(SeriesType::Adventure),
            expiration,
            last_reminder,
            snooze_until,
            deletion,
        }))
    }

    /// Sets a game channel's expiration time. A changed expiration clears a scheduled
    /// deletion of the channel and of its series' voice channel, in the same step (a new
    /// session was scheduled: the channel is needed again). Returns whether it changed;
    /// refused for a channel that is not a game channel.
    pub async fn set_expiration(
        &self,
        channel: ChannelId,
        expiration: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        let expiration_key = schema::discord_channel_expiration_time(channel);
        let series_key = schema::discord_channel_event_series(channel);
        let keys = [expiration_key.clone(), series_key.clone()];
        let k = (&expiration_key, &series_key);
        let changed = self
            .transact(&keys, move |mut conn| async move {
                let (expiration_key, series_key) = k;
                if get(&mut conn, series_key).await?.is_none() {
                    return refuse(RepoError::UnknownChannel(channel));
                }
                let current = time(expiration_key, get(&mut conn, expiration_key).await?);
                if matches!(current, Ok(Some(t)) if t == expiration) {
                    return Ok((Writes::new(), Ok(false)));
                }
                let mut writes = Writes::new();
                writes
                    .set(expiration_key, rfc3339(expiration))
                    .del(&schema::discord_channel_deletion_time(channel));
                if let Some(voice) = series_voice_channel(&mut conn, series_key).await? {
                    writes.del(&schema::discord_voice_channel_deletion_time(voice));
                }
                Ok((writes, Ok(true)))
            })
            .await?;
        if changed {
            tracing::info!(%channel, %expiration, "channel expiration set");
        }
        Ok(changed)
    }

    /// Records that the channel was reminded of its expiration.
    pub async fn record_reminder(
        &self,
        channel: ChannelId,
        at: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.set(
            &schema::discord_channel_last_expiration_reminder_time(channel),
            rfc3339(at),
        );
        Ok(self.redis.apply(&writes).await?)
    }

    /// Snoozes a channel's reminders until `until`; `None` clears the snooze.
    pub async fn set_snooze(
        &self,
        channel: ChannelId,
        until: Option<DateTime<Utc>>,
    ) -> Result<(), RepoError> {
        let key = schema::discord_channel_snooze_until(channel);
        let mut writes = Writes::new();
        match until {
            Some(t) => writes.set(&key, rfc3339(t)),
            None => writes.del(&key),
        };
        Ok(self.redis.apply(&writes).await?)
    }

    /// `end adventure`: schedules the deletion of a game channel and its series' voice
    /// channel at now + 8 h, in one transaction, if the rules allow it now
    /// ([`domain::end_adventure`], decided on the stored values under `WATCH`, so a sync
    /// that moves the expiration meanwhile makes it decide again). Returns the deletion
    /// time.
    pub async fn end_adventure(
        &self,
        channel: ChannelId,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, RepoError> {
        let expiration_key = schema::discord_channel_expiration_time(channel);
        let deletion_key = schema::discord_channel_deletion_time(channel);
        let series_key = schema::discord_channel_event_series(channel);
        let keys = [
            expiration_key.clone(),
            deletion_key.clone(),
            series_key.clone(),
        ];
        let k = (&expiration_key, &deletion_key, &series_key);
        let deletion = self
            .transact(&keys, move |mut conn| async move {
                let (expiration_key, deletion_key, series_key) = k;
                if get(&mut conn, series_key).await?.is_none() {
                    return refuse(RepoError::UnknownChannel(channel));
                }
                let expiration = time(expiration_key, get(&mut conn, expiration_key).await?);
                let scheduled = time(deletion_key, get(&mut conn, deletion_key).await?);
                let (expiration, scheduled) = match (expiration, scheduled) {
                    (Ok(e), Ok(s)) => (e, s),
                    (Err(e), _) | (_, Err(e)) => return refuse(e),
                };
                let at = match domain::end_adventure(now, expiration, scheduled) {
                    Ok(at) => at,
                    Err(e) => return refuse(e.into()),
                };
                let mut writes = Writes::new();
                writes.set(deletion_key, rfc3339(at));
                if let Some(voice) = series_voice_channel(&mut conn, series_key).await? {
                    writes.set(
                        &schema::discord_voice_channel_deletion_time(voice),
                        rfc3339(at),
                    );
                }
                Ok((writes, Ok(at)))
            })
            .await?;
        tracing::info!(%channel, %deletion, "channel deletion scheduled");
        Ok(deletion)
    }

    /// When a voice channel is to be deleted.
    pub async fn voice_channel_deletion_time(
        &self,
        channel: ChannelId,
    ) -> Result<Option<DateTime<Utc>>, RepoError> {
        let key = schema::discord_voice_channel_deletion_time(channel);
        time(&key, self.read(&key).await?)
    }

    /// Every game text channel.
    pub async fn game_channels(&self) -> Result<Vec<ChannelId>, RepoError> {
        self.snowflake_set(schema::DISCORD_CHANNELS).await
    }

    /// Every bot-controlled voice channel.
    pub async fn voice_channels(&self) -> Result<Vec<ChannelId>, RepoError> {
        self.snowflake_set(schema::DISCORD_VOICE_CHANNELS).await
    }

    async fn snowflake_set<T>(&self, key: &str) -> Result<Vec<discord::model::Id<T>>, RepoError> {
        self.read_members(key)
            .await?
            .into_iter()
            .map(|v| domain::parse_snowflake("Discord id", &v).map_err(|e| corrupt(key, &v, e)))
            .collect()
    }

    // ---- Manual removals ---------------------------------------------------------

    /// Records that a host removed `user` (as a player or as a host) from a channel, so
    /// sync does not undo it.
    pub async fn mark_removed(
        &self,
        channel: ChannelId,
        kind: Removal,
        user: UserId,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.sadd(&removal_key(channel, kind), user.get());
        Ok(self.redis.apply(&writes).await?)
    }

    /// Forgets a removal (the user was added back by hand).
    pub async fn unmark_removed(
        &self,
        channel: ChannelId,
        kind: Removal,
        user: UserId,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.srem(&removal_key(channel, kind), user.get());
        Ok(self.redis.apply(&writes).await?)
    }

    /// The users removed from a channel by hand.
    pub async fn removed(
        &self,
        channel: ChannelId,
        kind: Removal,
    ) -> Result<Vec<UserId>, RepoError> {
        self.snowflake_set(&removal_key(channel, kind)).await
    }

    // ---- Orphans, managed channels, the user-topic voice channel -----------------

    /// Records something that could not be deleted from Discord, to retry later.
    pub async fn add_orphan(&self, orphan: Orphan) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.sadd(orphan.set(), orphan.id());
        Ok(self.redis.apply(&writes).await?)
    }

    /// Forgets an orphan once it has been deleted.
    pub async fn remove_orphan(&self, orphan: Orphan) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.srem(orphan.set(), orphan.id());
        Ok(self.redis.apply(&writes).await?)
    }

    /// Every recorded orphan.
    pub async fn orphans(&self) -> Result<Vec<Orphan>, RepoError> {
        let mut out = Vec::new();
        for c in self
            .snowflake_set(schema::ORPHANED_DISCORD_CHANNELS)
            .await?
        {
            out.push(Orphan::Channel(c));
        }
        for c in self
            .snowflake_set(schema::ORPHANED_DISCORD_VOICE_CHANNELS)
            .await?
        {
            out.push(Orphan::VoiceChannel(c));
        }
        for r in self.snowflake_set(schema::ORPHANED_DISCORD_ROLES).await? {
            out.push(Orphan::Role(r));
        }
        Ok(out)
    }

    /// Marks a (non-game) channel as managed by the bot, or not.
    pub async fn set_managed_channel(
        &self,
        channel: ChannelId,
        managed: bool,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        if managed {
            writes.sadd(schema::MANAGED_DISCORD_CHANNELS, channel.get());
        } else {
            writes.srem(schema::MANAGED_DISCORD_CHANNELS, channel.get());
        }
        Ok(self.redis.apply(&writes).await?)
    }

    /// Every managed (non-game) channel.
    pub async fn managed_channels(&self) -> Result<Vec<ChannelId>, RepoError> {
        self.snowflake_set(schema::MANAGED_DISCORD_CHANNELS).await
    }

    /// Records when the user-topic voice channel's topic was set (for the rate limit).
    pub async fn set_topic_time(&self, at: DateTime<Utc>) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.set(schema::USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME, rfc3339(at));
        Ok(self.redis.apply(&writes).await?)
    }

    /// When the user-topic voice channel's topic was last set.
    pub async fn topic_time(&self) -> Result<Option<DateTime<Utc>>, RepoError> {
        let key = schema::USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME;
        time(key, self.read(key).await?)
    }
}

/// A series' two kinds of channel.
#[derive(Debug, Clone, Copy)]
enum SeriesChannel {
    Text,
    Voice,
}

impl SeriesChannel {
    fn name(self) -> &'static str {
        match self {
            SeriesChannel::Text => "text channel",
            SeriesChannel::Voice => "voice channel",
        }
    }
}

fn removal_key(channel: ChannelId, kind: Removal) -> String {
    match kind {
        Removal::User => schema::discord_channel_removed_users(channel),
        Removal::Host => schema::discord_channel_removed_hosts(channel),
    }
}

/// The voice channel of the series named at `series_key`, `WATCH`ed from here on; a
/// missing or unreadable relation is no voice channel.
async fn series_voice_channel(
    conn: &mut RedisConn,
    series_key: &str,
) -> Result<Option<ChannelId>, store::StoreError> {
    let Ok(Some(series)) = series_id(series_key, get(conn, series_key).await?) else {
        return Ok(None);
    };
    let voice_key = schema::event_series_discord_voice_channel(&series);
    watch_more(conn, &[&voice_key]).await?;
    Ok(channel_id(&voice_key, get(conn, &voice_key).await?)
        .ok()
        .flatten())
}

fn user_token_writes(writes: &mut Writes, meetup: MeetupUserId, tokens: &UserTokens) {
    let key = schema::meetup_user_oauth2_tokens(meetup);
    let time_key = schema::meetup_user_oauth2_tokens_last_refresh_time(meetup);
    writes
        .command("HSET")
        .arg(&key)
        .arg(schema::OAUTH2_ACCESS_TOKEN)
        .arg(tokens.tokens.access.expose())
        .arg(schema::OAUTH2_REFRESH_TOKEN)
        .arg(tokens.tokens.refresh.expose());
    match tokens.last_refresh {
        Some(t) => writes.set(&time_key, rfc3339(t)),
        None => writes.del(&time_key),
    };
}

/// The writes that unlink a pair; the Meetup side only when it points back at
/// `discord` (otherwise it belongs to another link and stays).
fn unlink_writes(meetup: MeetupUserId, discord: UserId, meetup_points_back: bool) -> Writes {
    let mut writes = Writes::new();
    writes
        .del(&schema::discord_user_meetup_user(discord))
        .srem(schema::DISCORD_USERS, discord.get());
    if meetup_points_back {
        writes
            .del(&schema::meetup_user_discord_user(meetup))
            .srem(schema::MEETUP_USERS, meetup.get())
            .del(&schema::meetup_user_oauth2_tokens(meetup))
            .del(&schema::meetup_user_oauth2_tokens_last_refresh_time(meetup));
    }
    writes
}

fn event_writes(upsert: &EventUpsert) -> Writes {
    let event = &upsert.event;
    let id = &event.id;
    let hash = schema::meetup_event(id);
    let mut writes = Writes::new();
    writes
        .command("HSET")
        .arg(&hash)
        .arg(schema::EVENT_NAME)
        .arg(&event.name)
        .arg(schema::EVENT_TIME)
        .arg(rfc3339(event.time))
        .arg(schema::EVENT_LINK)
        .arg(&event.link)
        .arg(schema::EVENT_URLNAME)
        .arg(&event.urlname);
    match event.is_online {
        Some(online) => {
            writes.hset(
                &hash,
                schema::EVENT_IS_ONLINE,
                if online { schema::TRUE } else { schema::FALSE },
            );
        }
        None => {
            writes
                .command("HDEL")
                .arg(&hash)
                .arg(schema::EVENT_IS_ONLINE);
        }
    }
    let hosts = schema::meetup_event_meetup_hosts(id);
    writes.del(&hosts);
    sadd_all(&mut writes, &hosts, upsert.hosts.iter().map(|u| u.get()));
    if let Some(rsvps) = &upsert.rsvps {
        let users = schema::meetup_event_meetup_users(id);
        writes.del(&users);
        sadd_all(&mut writes, &users, rsvps.iter().map(|u| u.get()));
    }
    let series = &upsert.series;
    writes
        .set(&schema::meetup_event_event_series(id), series.as_str())
        .sadd(&schema::event_series_meetup_events(series), id.as_str())
        .sadd(schema::MEETUP_EVENTS, id.as_str())
        .sadd(schema::EVENT_SERIES, series.as_str());
    if let Some(series_type) = upsert.series_type {
        writes.set(&schema::event_series_type(series), series_type.as_str());
    }
    if upsert.series_online {
        writes.set(&schema::event_series_is_online(series), schema::TRUE);
    }
    writes
}

fn event_delete_writes(writes: &mut Writes, id: &MeetupEventId) {
    writes
        .del(&schema::meetup_event(id))
        .del(&schema::meetup_event_meetup_hosts(id))
        .del(&schema::meetup_event_meetup_users(id))
        .del(&schema::meetup_event_event_series(id))
        .srem(schema::MEETUP_EVENTS, id.as_str());
}

fn channel_delete_writes(
    writes: &mut Writes,
    channel: ChannelId,
    guest: Option<RoleId>,
    host: Option<RoleId>,
) {
    writes
        .del(&schema::discord_channel_event_series(channel))
        .del(&schema::discord_channel_discord_role(channel))
        .del(&schema::discord_channel_discord_host_role(channel))
        .del(&schema::discord_channel_removed_hosts(channel))
        .del(&schema::discord_channel_removed_users(channel))
        .del(&schema::discord_channel_expiration_time(channel))
        .del(&schema::discord_channel_last_expiration_reminder_time(
            channel,
        ))
        .del(&schema::discord_channel_snooze_until(channel))
        .del(&schema::discord_channel_deletion_time(channel))
        .srem(schema::DISCORD_CHANNELS, channel.get());
    if let Some(guest) = guest {
        writes
            .del(&schema::discord_role_discord_channel(guest))
            .srem(schema::DISCORD_ROLES, guest.get());
    }
    if let Some(host) = host {
        writes
            .del(&schema::discord_host_role_discord_channel(host))
            .srem(schema::DISCORD_HOST_ROLES, host.get());
    }
}
