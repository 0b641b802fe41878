//! Whether Tavern itself may read a channel's history, as Discord would decide it.
//!
//! Discord answers a history request of a bot without Read Message History with an
//! empty list, not an error, so a scan cannot tell "no messages" from "not allowed".
//! Tavern therefore computes its own permissions first, with the same rule the web
//! uses for a member ([`Viewer`]): its roles' guild-level permissions (`@everyone`
//! included), the channel's overwrites, the owner and Administrator holding everything.
//! A thread, which Discord's channel list does not hold, takes its parent's.
//!
//! # Kept a minute
//! Computing them takes five requests (who the bot is, the guild's owner, its roles,
//! the bot's roles, the channels), so the result, the bot's permissions in each listed
//! channel, is kept per guild for [`BOT_SIGHT_TTL_SECS`] in Redis
//! ([`bot_sight_key`]; the same mechanism as the web's visible channels) when the
//! scanner has Redis ([`Scanner::with_sight_cache`]). How each user of it stays right
//! after an admin changes a permission:
//! - **The managers' guild page** ([`Scanner::unreadable_channels`]) takes the kept
//!   answer: a change shows within a minute, or at once after a manager's action below.
//! - **A manager's action** (`/clips enable`, `/clips scan`, the page's "Read this
//!   channel" and scan buttons: [`Scanner::set_reading`],
//!   [`Scanner::request_if_reading`]) drops the guild's kept answer first, so the check
//!   it makes, the run it queues and the page it leads back to ask Discord again.
//! - **A scan run and a manager's enable** ([`Scanner::bot_lacks`]) never take the
//!   kept answer: they ask Discord (and keep what it says for the page). Five requests
//!   are nothing beside reading a history, and a kept "may read" from before an admin
//!   took Read Message History away would let a deep scan read Discord's empty answer
//!   as the whole history, done.
//! - **The gateway** (the [`crate::events`] handler): a channel created, changed or
//!   deleted, and a guild changed or available again, drop the guild's kept answer
//!   ([`Scanner::forget_bot_sight`]); a changed role comes in no event the features
//!   get, hence the minute.

use std::collections::BTreeMap;

use discord::RestError;
use discord::model::RoleId;
use serde::{Deserialize, Serialize};

use super::Scanner;
use crate::cache;
use crate::domain::{ChannelId, GuildId, ReadPermission, Viewer, missing_to_read};
use crate::schema::library::{BOT_SIGHT_TTL_SECS, bot_sight_key};

/// What Tavern's cached permissions are called in the log.
const WHAT: &str = "Tavern's permissions";

/// The bot's permissions in each channel Discord lists for one guild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct BotSight {
    channels: Vec<(ChannelId, u64)>,
}

impl BotSight {
    /// What the bot lacks to read a listed channel's history; `None` when Discord does
    /// not list the channel (a thread, or a channel deleted since).
    fn lacks_listed(&self, channel: ChannelId) -> Option<Vec<ReadPermission>> {
        self.channels
            .iter()
            .find(|(id, _)| *id == channel)
            .map(|(_, bits)| missing_to_read(*bits))
    }
}

impl Scanner {
    /// Asks Discord who the bot is in `guild`: its id, the owner, the roles with their
    /// permissions, the bot's roles, and the channels with their overwrites; keeps the
    /// result (see the module's docs).
    async fn ask_bot_sight(&self, guild: GuildId) -> Result<BotSight, RestError> {
        let bot = self.discord.current_user_id().await?;
        let owner = self.discord.guild(guild).await?.and_then(|g| g.owner_id);
        let roles = self.discord.guild_roles(guild).await?;
        // Not a member (any more): no role, and only `@everyone`'s permissions.
        let mine = self
            .discord
            .member_roles(guild, bot)
            .await?
            .unwrap_or_default();
        let everyone = RoleId::new(guild.get());
        let base = roles
            .iter()
            .filter(|r| r.id == everyone || mine.contains(&r.id))
            .fold(0, |bits, r| bits | r.permissions);
        let viewer = Viewer {
            guild,
            user: bot,
            owner: owner == Some(bot),
            base,
            roles: mine,
        };
        let sight = BotSight {
            channels: self
                .discord
                .guild_channels(guild)
                .await?
                .iter()
                .map(|c| (c.id, viewer.permissions_in(&c.overwrites)))
                .collect(),
        };
        if let Some(redis) = &self.sight_cache {
            cache::set(
                redis,
                &bot_sight_key(guild),
                &sight,
                BOT_SIGHT_TTL_SECS,
                WHAT,
            )
            .await;
        }
        Ok(sight)
    }

    /// The kept answer for `guild` when there is one, else Discord's.
    async fn bot_sight(&self, guild: GuildId) -> Result<BotSight, RestError> {
        if let Some(redis) = &self.sight_cache
            && let Some(sight) = cache::get(redis, &bot_sight_key(guild), WHAT).await
        {
            return Ok(sight);
        }
        self.ask_bot_sight(guild).await
    }

    /// Drops the kept answer for `guild`: the next question asks Discord (see the
    /// module's docs for who calls it).
    pub async fn forget_bot_sight(&self, guild: GuildId) {
        if let Some(redis) = &self.sight_cache {
            cache::forget(redis, &bot_sight_key(guild), WHAT).await;
        }
    }

    /// What Tavern lacks to read `channel`'s history in `guild` (empty: it reads it). A
    /// channel Discord does not list is taken as a thread and judged by its parent; one
    /// whose parent is unknown too is taken as readable (the history request decides).
    /// Always Discord's answer, never a kept one (see the module's docs).
    pub async fn bot_lacks(
        &self,
        guild: GuildId,
        channel: ChannelId,
    ) -> Result<Vec<ReadPermission>, RestError> {
        let sight = self.ask_bot_sight(guild).await?;
        if let Some(missing) = sight.lacks_listed(channel) {
            return Ok(missing);
        }
        let parent = match self.discord.channel(channel).await {
            Ok(found) => found.and_then(|info| info.parent_id),
            // A thread it may not see: its parent decides, and it is unknown.
            Err(error) if error.is_missing_permission() => {
                return Ok(ReadPermission::ALL.to_vec());
            }
            Err(error) => return Err(error),
        };
        Ok(parent
            .and_then(|parent| sight.lacks_listed(parent))
            .unwrap_or_default())
    }

    /// The listed channels of `guild` whose history Tavern cannot read, with what it
    /// lacks in each (threads are not listed, so never here); a kept answer is used.
    pub async fn unreadable_channels(
        &self,
        guild: GuildId,
    ) -> Result<BTreeMap<ChannelId, Vec<ReadPermission>>, RestError> {
        let sight = self.bot_sight(guild).await?;
        Ok(sight
            .channels
            .iter()
            .filter_map(|(id, bits)| {
                let missing = missing_to_read(*bits);
                (!missing.is_empty()).then_some((*id, missing))
            })
            .collect())
    }
}
