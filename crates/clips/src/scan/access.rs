//! Whether Tavern itself may read a channel's history, as Discord would decide it.
//!
//! Discord answers a history request of a bot without Read Message History with an
//! empty list, not an error, so a scan cannot tell "no messages" from "not allowed".
//! Tavern therefore computes its own permissions first, with the same rule the web
//! uses for a member ([`Viewer`]): its roles' guild-level permissions (`@everyone`
//! included), the channel's overwrites, the owner and Administrator holding everything.
//! A thread, which Discord's channel list does not hold, takes its parent's.

use std::collections::BTreeMap;

use discord::RestError;
use discord::model::{GuildChannel, RoleId};

use super::Scanner;
use crate::domain::{ChannelId, GuildId, ReadPermission, Viewer, missing_to_read};

/// The bot as the channel rule sees it in one guild, with the guild's channels.
pub(crate) struct BotSight {
    viewer: Viewer,
    channels: Vec<GuildChannel>,
}

impl BotSight {
    /// What the bot lacks to read a listed channel's history; `None` when Discord does
    /// not list the channel (a thread, or a channel deleted since).
    fn lacks_listed(&self, channel: ChannelId) -> Option<Vec<ReadPermission>> {
        self.channels
            .iter()
            .find(|c| c.id == channel)
            .map(|c| missing_to_read(self.viewer.permissions_in(&c.overwrites)))
    }
}

impl Scanner {
    /// Asks Discord who the bot is in `guild`: its id, the owner, the roles with their
    /// permissions, the bot's roles, and the channels with their overwrites.
    pub(crate) async fn bot_sight(&self, guild: GuildId) -> Result<BotSight, RestError> {
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
        let channels = self.discord.guild_channels(guild).await?;
        Ok(BotSight {
            viewer: Viewer {
                guild,
                user: bot,
                owner: owner == Some(bot),
                base,
                roles: mine,
            },
            channels,
        })
    }

    /// What Tavern lacks to read `channel`'s history in `guild` (empty: it reads it). A
    /// channel Discord does not list is taken as a thread and judged by its parent; one
    /// whose parent is unknown too is taken as readable (the history request decides).
    pub async fn bot_lacks(
        &self,
        guild: GuildId,
        channel: ChannelId,
    ) -> Result<Vec<ReadPermission>, RestError> {
        let sight = self.bot_sight(guild).await?;
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
    /// lacks in each (threads are not listed, so never here).
    pub async fn unreadable_channels(
        &self,
        guild: GuildId,
    ) -> Result<BTreeMap<ChannelId, Vec<ReadPermission>>, RestError> {
        let sight = self.bot_sight(guild).await?;
        Ok(sight
            .channels
            .iter()
            .filter_map(|c| {
                let missing = missing_to_read(sight.viewer.permissions_in(&c.overwrites));
                (!missing.is_empty()).then_some((c.id, missing))
            })
            .collect())
    }
}
