//! The keys this crate adds beside the seed's ([`crate::schema`], "Additions"): a
//! server's aliases, a channel's GM, a server's GM role and recorded rolls.

use discord::model::GuildId;
use redis::AsyncCommands;
use store::StorageError;

use super::{Repo, Versioned};
use crate::alias::AliasBook;
use crate::domain::ChannelId;
use crate::gm::{GmDoc, GmRoleDoc};
use crate::history::RollRecord;
use crate::schema;

impl Repo {
    /// `alias_guild_{guild}` (empty when absent).
    pub async fn guild_aliases(
        &self,
        guild: GuildId,
    ) -> Result<Versioned<AliasBook>, StorageError> {
        self.get_json(&schema::guild_alias_key(guild)).await
    }

    /// `gm_{channel}` (`None` inside when absent).
    pub async fn gm(&self, channel: ChannelId) -> Result<Versioned<Option<GmDoc>>, StorageError> {
        self.get_json(&schema::gm_key(channel)).await
    }

    /// `gm_role_{guild}` (`None` inside when absent).
    pub async fn gm_role(
        &self,
        guild: GuildId,
    ) -> Result<Versioned<Option<GmRoleDoc>>, StorageError> {
        self.get_json(&schema::gm_role_key(guild)).await
    }

    /// `roll_{id}`; `None` once it expired (or never was).
    pub async fn roll_record(&self, id: &str) -> Result<Option<RollRecord>, StorageError> {
        let key = schema::roll_key(id);
        let mut conn = self.redis().conn();
        let raw: Option<Vec<u8>> = conn.get(&key).await?;
        raw.map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| StorageError::corrupt(&key, format!("not valid JSON: {e}")))
        })
        .transpose()
    }
}
