//! Whether a member of a guild sees one of its channels, as Discord decides it: the
//! guild's owner and Administrator see everything; anyone else holds the permissions
//! of `@everyone` and of their roles, changed by the channel's permission overwrites
//! (`@everyone`'s, then their roles' together, every deny before every allow, then
//! their own), and sees the channel with View Channel. No I/O: [`crate::membership`]
//! asks Discord for the pieces.

use discord::model::permissions::{ADMINISTRATOR, VIEW_CHANNEL};
use discord::model::{GuildId, GuildRole, Overwrite, OverwriteTarget, RoleId};

use super::UserId;

/// Manage Threads, which [`discord::model::permissions`] does not list: whoever holds
/// it in a channel sees its private threads too.
pub const MANAGE_THREADS: u64 = 1 << 34;

/// A member of a guild, with what the channel rule needs of the guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    pub guild: GuildId,
    pub user: UserId,
    /// The guild's owner (`None` when Discord did not say).
    pub owner: Option<UserId>,
    /// The guild's roles, `@everyone` (whose id is the guild's) among them.
    pub guild_roles: &'a [GuildRole],
    /// The member's roles, without `@everyone`.
    pub roles: &'a [RoleId],
}

impl Member<'_> {
    /// The member's permissions across the guild, before any channel's overwrites.
    pub fn base(&self) -> u64 {
        let everyone = RoleId::new(self.guild.get());
        self.guild_roles
            .iter()
            .filter(|r| r.id == everyone || self.roles.contains(&r.id))
            .fold(0, |bits, r| bits | r.permissions)
    }

    /// The member's permissions in a channel with these overwrites; every bit for the
    /// owner and an Administrator.
    pub fn permissions_in(&self, overwrites: &[Overwrite]) -> u64 {
        let base = self.base();
        if self.owner == Some(self.user) || base & ADMINISTRATOR != 0 {
            return u64::MAX;
        }
        let everyone = RoleId::new(self.guild.get());
        let mut bits = base;
        if let Some(o) = overwrites
            .iter()
            .find(|o| o.target == OverwriteTarget::Role(everyone))
        {
            bits = (bits & !o.deny) | o.allow;
        }
        let (allow, deny) = overwrites
            .iter()
            .filter(|o| {
                matches!(o.target, OverwriteTarget::Role(role)
                    if role != everyone && self.roles.contains(&role))
            })
            .fold((0, 0), |(allow, deny), o| (allow | o.allow, deny | o.deny));
        bits = (bits & !deny) | allow;
        if let Some(o) = overwrites
            .iter()
            .find(|o| o.target == OverwriteTarget::Member(self.user))
        {
            bits = (bits & !o.deny) | o.allow;
        }
        bits
    }

    /// Whether the member sees a channel with these overwrites (View Channel).
    pub fn sees(&self, overwrites: &[Overwrite]) -> bool {
        self.permissions_in(overwrites) & VIEW_CHANNEL != 0
    }

    /// Whether the member sees every thread of a channel with these overwrites,
    /// private ones included: they see it and hold Manage Threads there.
    pub fn sees_every_thread(&self, overwrites: &[Overwrite]) -> bool {
        let bits = self.permissions_in(overwrites);
        bits & VIEW_CHANNEL != 0 && bits & MANAGE_THREADS != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: u64, permissions: u64) -> GuildRole {
        GuildRole {
            id: RoleId::new(id),
            permissions,
            managed: false,
            position: 0,
        }
    }

    fn overwrite(target: OverwriteTarget, allow: u64, deny: u64) -> Overwrite {
        Overwrite {
            target,
            allow,
            deny,
        }
    }

    #[test]
    fn overwrites_hide_and_show_a_channel_in_discords_order() {
        let guild = GuildId::new(100);
        let everyone = RoleId::new(100);
        let (players, admins) = (RoleId::new(7), RoleId::new(8));
        let guild_roles = [role(100, VIEW_CHANNEL), role(7, 0), role(8, ADMINISTRATOR)];
        let (bob, carol, owner) = (UserId::new(2), UserId::new(3), UserId::new(4));
        let member = |user, roles| Member {
            guild,
            user,
            owner: Some(owner),
            guild_roles: &guild_roles,
            roles,
        };
        let none: &[RoleId] = &[];
        let (player, admin) = ([players], [admins]);
        let open: [Overwrite; 0] = [];
        let closed = [
            overwrite(OverwriteTarget::Role(everyone), 0, VIEW_CHANNEL),
            overwrite(OverwriteTarget::Role(players), VIEW_CHANNEL, 0),
        ];
        assert!(member(bob, none).sees(&open));
        assert!(!member(bob, none).sees(&closed), "@everyone denied");
        assert!(member(carol, &player).sees(&closed), "her role allows");
        assert!(member(bob, &admin).sees(&closed), "an administrator");
        assert!(member(owner, none).sees(&closed), "the owner");
        let singled_out = [
            overwrite(OverwriteTarget::Role(players), VIEW_CHANNEL, 0),
            overwrite(OverwriteTarget::Member(carol), 0, VIEW_CHANNEL),
        ];
        assert!(
            !member(carol, &player).sees(&singled_out),
            "her own overwrite comes last"
        );
    }
}
