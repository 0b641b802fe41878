//! Who may run a game: one rule for the slash commands and the web pages.
//!
//! In a game channel, a member is
//! - an **admin** when they hold [`DiscordSettings::admin_role`] (nobody, when none is
//!   configured);
//! - a **host** when they hold the channel's host role, or their linked Meetup account
//!   hosts one of the series' events and no host removed them with `/hosts remove`
//!   (`removed_hosts`: a removal outlives the Meetup data, as it does for the sync).
//!
//! The caller brings the roles ([`roles_of`] asks Discord, [`Discord::member_roles`];
//! someone who is not a member of the guild holds none).

use discord::{ChannelId, Discord, RestError, RoleId, UserId};

use crate::config::DiscordSettings;
use crate::domain::{EventSeriesId, MeetupUserId};
use crate::repo::{Removal, Repo, RepoError};

/// What a member may do in a game channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Admin,
    Host,
    /// Neither: a player, or a stranger.
    Member,
}

impl Standing {
    /// Hosts and admins run a game.
    pub fn runs_the_game(self) -> bool {
        matches!(self, Standing::Admin | Standing::Host)
    }
}

/// The roles `user` holds in the community's guild (none when not a member).
pub async fn roles_of(
    discord: &Discord,
    settings: &DiscordSettings,
    user: UserId,
) -> Result<Vec<RoleId>, RestError> {
    Ok(discord
        .member_roles(settings.guild, user)
        .await?
        .unwrap_or_default())
}

/// `user`'s standing in the game channel `channel` of `series`, given the roles they
/// hold and the admin role (if one is configured).
pub async fn standing(
    repo: &Repo,
    admin_role: Option<RoleId>,
    channel: ChannelId,
    series: &EventSeriesId,
    user: UserId,
    roles: &[RoleId],
) -> Result<Standing, RepoError> {
    let holds = |role: Option<RoleId>| role.is_some_and(|r| roles.contains(&r));
    if holds(admin_role) {
        return Ok(Standing::Admin);
    }
    let (_, host_role) = repo.channel_roles(channel).await?;
    if holds(host_role) {
        return Ok(Standing::Host);
    }
    if let Some(meetup) = repo.meetup_user_of(user).await?
        && series_hosts(repo, series).await?.contains(&meetup)
        && !repo.removed(channel, Removal::Host).await?.contains(&user)
    {
        return Ok(Standing::Host);
    }
    Ok(Standing::Member)
}

/// The Meetup hosts of every event of a series, each once.
pub async fn series_hosts(
    repo: &Repo,
    series: &EventSeriesId,
) -> Result<Vec<MeetupUserId>, RepoError> {
    let mut hosts = Vec::new();
    for event in repo.series_events(series).await? {
        for host in repo.event_hosts(&event).await? {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    Ok(hosts)
}
