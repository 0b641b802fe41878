//! Orphans (`orphaned_discord_channels`, `orphaned_discord_voice_channels`,
//! `orphaned_discord_roles`): what the bot created on Discord and failed to delete,
//! kept to retry.

use discord::model::{ChannelId, RoleId};
use store::Writes;

use super::{Repo, RepoError};
use crate::schema;

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

impl Repo {
    /// Records something that could not be deleted from Discord, to retry later.
    pub async fn add_orphan(&self, orphan: Orphan) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.sadd(orphan.set(), orphan.id());
        self.apply(&writes).await
    }

    /// Forgets an orphan once it has been deleted.
    pub async fn remove_orphan(&self, orphan: Orphan) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.srem(orphan.set(), orphan.id());
        self.apply(&writes).await
    }

    /// Every recorded orphan: channels, then voice channels, then roles.
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
}
