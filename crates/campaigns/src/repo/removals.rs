//! Manual removals (`discord_channel:{}:removed_users` and `:removed_hosts`): people a
//! host removed from a game channel by hand, whom the sync must not add back.

use discord::model::{ChannelId, UserId};
use store::Writes;

use super::{Repo, RepoError};
use crate::schema;

/// The two kinds of manual removal a host can make in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// `removed_users`: not added back as a player by sync.
    User,
    /// `removed_hosts`: not promoted to host again by sync.
    Host,
}

fn removal_key(channel: ChannelId, kind: Removal) -> String {
    match kind {
        Removal::User => schema::discord_channel_removed_users(channel),
        Removal::Host => schema::discord_channel_removed_hosts(channel),
    }
}

impl Repo {
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
        self.apply(&writes).await
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
        self.apply(&writes).await
    }

    /// A player added by hand (`/players add`), in one step: forgets their manual
    /// removal and that the sync gave them the guest role
    /// ([`schema::synced_guests`]), so no later sync takes the role a host gave.
    pub async fn add_player_by_hand(
        &self,
        channel: ChannelId,
        user: UserId,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes
            .srem(&removal_key(channel, Removal::User), user.get())
            .srem(&schema::synced_guests(channel), user.get());
        self.apply(&writes).await
    }

    /// The users removed from a channel by hand.
    pub async fn removed(
        &self,
        channel: ChannelId,
        kind: Removal,
    ) -> Result<Vec<UserId>, RepoError> {
        self.snowflake_set(&removal_key(channel, kind)).await
    }
}
