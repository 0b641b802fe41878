//! The bot's channels outside the games: `managed_discord_channels`, and the time the
//! shared user-topic voice channel's topic was last set
//! (`user_topic_voice_channel_topic_time`, for its rate limit), and the sync's records
//! of game channels closed to Tavern and of the newcomers whose announcement waits.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use discord::model::{ChannelId, RoleId, UserId};
use store::Writes;

use super::{Repo, RepoError, rfc3339, time};
use crate::{domain, schema};

/// Members of a game channel by the role the sync gave them, as its two records of
/// newcomers keep them: those who got their role but whose announcement Discord
/// refused ([`schema::unannounced`]), and those an announcement already welcomed
/// ([`schema::welcomed`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Newcomers {
    /// Given the guest role.
    pub players: BTreeSet<UserId>,
    /// Given the host role.
    pub hosts: BTreeSet<UserId>,
}

impl Newcomers {
    pub fn is_empty(&self) -> bool {
        self.players.is_empty() && self.hosts.is_empty()
    }

    /// Reads the members of [`schema::unannounced`] or [`schema::welcomed`]
    /// (`player:{id}`, `host:{id}`); the members that do not read are handed back.
    pub(super) fn read(members: Vec<String>) -> (Newcomers, Vec<String>) {
        let mut out = Newcomers::default();
        let mut unreadable = Vec::new();
        for member in members {
            let parsed = member.split_once(':').and_then(|(kind, id)| {
                let user: UserId = domain::parse_snowflake("Discord user id", id).ok()?;
                match kind {
                    "player" => Some(out.players.insert(user)),
                    "host" => Some(out.hosts.insert(user)),
                    _ => None,
                }
            });
            if parsed.is_none() {
                unreadable.push(member);
            }
        }
        (out, unreadable)
    }

    /// The members of [`schema::unannounced`] or [`schema::welcomed`] naming them.
    fn members(&self) -> Vec<String> {
        self.players
            .iter()
            .map(|u| format!("player:{u}"))
            .chain(self.hosts.iter().map(|u| format!("host:{u}")))
            .collect()
    }
}

impl Repo {
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
        self.apply(&writes).await
    }

    /// Every managed (non-game) channel.
    pub async fn managed_channels(&self) -> Result<Vec<ChannelId>, RepoError> {
        self.snowflake_set(schema::MANAGED_DISCORD_CHANNELS).await
    }

    /// Whether a channel is one of the managed (non-game) channels.
    pub async fn is_managed_channel(&self, channel: ChannelId) -> Result<bool, RepoError> {
        let managed: bool = redis::cmd("SISMEMBER")
            .arg(schema::MANAGED_DISCORD_CHANNELS)
            .arg(channel.get())
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(managed)
    }

    /// Records that the sync refused a shortcode (`what`, e.g. `{event}:role:{id}`);
    /// `true` the first time, so the organisers are told once
    /// ([`schema::REFUSED_SHORTCODES`]).
    pub async fn note_refused_shortcode(&self, what: &str) -> Result<bool, RepoError> {
        let added: i64 = redis::cmd("SADD")
            .arg(schema::REFUSED_SHORTCODES)
            .arg(what)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(added == 1)
    }

    /// Forgets refused shortcodes that no longer apply
    /// ([`schema::REFUSED_SHORTCODES`]), so one refused again later is told again.
    pub async fn forget_refused_shortcodes(&self, records: &[String]) -> Result<(), RepoError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut writes = Writes::new();
        writes
            .command("SREM")
            .arg(schema::REFUSED_SHORTCODES)
            .arg(records);
        self.apply(&writes).await
    }

    /// Records that Discord refused the sync's writes to a game channel closed to
    /// Tavern; `true` the first time since it was last reachable, so the organisers are
    /// told once ([`schema::CLOSED_CHANNELS`]).
    pub async fn note_closed_channel(&self, channel: ChannelId) -> Result<bool, RepoError> {
        let added: i64 = redis::cmd("SADD")
            .arg(schema::CLOSED_CHANNELS)
            .arg(channel.get())
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(added == 1)
    }

    /// Forgets that a game channel was closed to Tavern: a write to it succeeded.
    pub async fn forget_closed_channel(&self, channel: ChannelId) -> Result<(), RepoError> {
        let _: i64 = redis::cmd("SREM")
            .arg(schema::CLOSED_CHANNELS)
            .arg(channel.get())
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    /// Records that Discord refused the lifecycle's deletion of a game's channel
    /// because an admin closed it to Tavern; `true` the first time, so the organisers
    /// are told once ([`schema::UNDELETABLE_CHANNELS`]; removing the series or a new
    /// session's cancelling the deletion takes it out).
    pub async fn note_undeletable_channel(&self, channel: ChannelId) -> Result<bool, RepoError> {
        let added: i64 = redis::cmd("SADD")
            .arg(schema::UNDELETABLE_CHANNELS)
            .arg(channel.get())
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(added == 1)
    }

    /// Records that Discord refused the lifecycle's deletion of an ended game's role
    /// (it sits above Tavern's own role, or Tavern lost Manage Roles); `true` the first
    /// time, so the organisers are told once ([`schema::UNDELETABLE_ROLES`]; removing
    /// the series or a new session's cancelling the deletion takes it out).
    pub async fn note_undeletable_role(&self, role: RoleId) -> Result<bool, RepoError> {
        let added: i64 = redis::cmd("SADD")
            .arg(schema::UNDELETABLE_ROLES)
            .arg(role.get())
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(added == 1)
    }

    /// Records when the user-topic voice channel's topic was set (for the rate limit).
    pub async fn set_topic_time(&self, at: DateTime<Utc>) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.set(schema::USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME, rfc3339(at));
        self.apply(&writes).await
    }

    /// When the user-topic voice channel's topic was last set.
    pub async fn topic_time(&self) -> Result<Option<DateTime<Utc>>, RepoError> {
        let key = schema::USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME;
        time(key, self.read(key).await?)
    }

    /// The newcomers of each of `channels` whose announcement is still owed
    /// ([`schema::unannounced`]), read in one round trip; channels owing none are left
    /// out. A member that is not `player:{id}` or `host:{id}` is left out with a warning.
    pub async fn unannounced(
        &self,
        channels: &[ChannelId],
    ) -> Result<BTreeMap<ChannelId, Newcomers>, RepoError> {
        if channels.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut pipe = redis::pipe();
        for channel in channels {
            pipe.cmd("SMEMBERS").arg(schema::unannounced(*channel));
        }
        let all: Vec<Vec<String>> = pipe.query_async(&mut self.redis.conn()).await?;
        let mut out = BTreeMap::new();
        for (channel, members) in channels.iter().zip(all) {
            let (owed, unreadable) = Newcomers::read(members);
            for member in unreadable {
                tracing::warn!(%channel, %member, "unreadable unannounced newcomer left out");
            }
            if !owed.is_empty() {
                out.insert(*channel, owed);
            }
        }
        Ok(out)
    }

    /// Remembers newcomers of a game channel whose announcement Discord refused, for
    /// the next announcement that gets through ([`schema::unannounced`], kept
    /// [`schema::UNANNOUNCED_TTL_SECS`] after the last addition).
    pub async fn remember_unannounced(
        &self,
        channel: ChannelId,
        owed: &Newcomers,
    ) -> Result<(), RepoError> {
        if owed.is_empty() {
            return Ok(());
        }
        let key = schema::unannounced(channel);
        let members = owed.members();
        let mut writes = Writes::new();
        writes.command("SADD").arg(&key).arg(members);
        writes.expire(&key, schema::UNANNOUNCED_TTL_SECS);
        self.apply(&writes).await
    }

    /// A game channel's announcement welcoming `welcomed` got through: they are
    /// welcomed for good, no newcomer is owed one any more, and the channel is open to
    /// Tavern again ([`schema::welcomed`], [`schema::unannounced`],
    /// [`schema::CLOSED_CHANNELS`]), in one step.
    pub async fn announced(
        &self,
        channel: ChannelId,
        welcomed: &Newcomers,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        if !welcomed.is_empty() {
            writes
                .command("SADD")
                .arg(schema::welcomed(channel))
                .arg(welcomed.members());
        }
        writes
            .del(&schema::unannounced(channel))
            .srem(schema::CLOSED_CHANNELS, channel.get());
        self.apply(&writes).await
    }
}
