//! Which channels a signed-in member sees on the web: what Discord would show them.
//!
//! A manager of the guild (owner, Administrator, Manage Server: [`super::Standing`])
//! sees every channel Tavern stored, as they may choose any of them to read anyway.
//! Anyone else sees a channel's name, clips, authors and scans only when Discord gives
//! them View Channel and Read Message History there ([`crate::domain::Viewer`]): their
//! guild-level permissions from their Discord guild list ([`super::MyGuild`]), their
//! roles (`GET /guilds/{guild}/members/{user}`, as the bot) and the channel's
//! permission overwrites (`GET /guilds/{guild}/channels`, as the bot). A thread shows
//! only when they read its parent and hold Manage Threads there (its parent asked of
//! Discord only then), since Tavern cannot tell a private thread from a public one
//! (see the crate docs).
//!
//! The answer is cached per member and guild for
//! [`crate::schema::library::VISIBLE_CHANNELS_TTL_SECS`] in Redis
//! ([`crate::schema::library::visible_channels_key`]). Discord failing to answer shows
//! nothing: the page says Tavern could not ask, never falls back to every channel.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use discord::model::{ChannelId, GuildId};
use web::page::Problem;
use web::session::CurrentUser;

use super::{CLIPS_PATH, MyGuild, Standing, WebState, cache, cached, storage_problem};
use crate::domain::{ListedChannel, StoredKind, Viewer, thread_parents_read, visible_channels};
use crate::schema::library::{VISIBLE_CHANNELS_TTL_SECS, visible_channels_key};

/// The channels whose clips, names and scans the user sees in one guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sight {
    /// Every channel: a manager.
    All,
    /// Only these.
    Only(BTreeSet<ChannelId>),
}

impl Sight {
    pub(crate) fn sees(&self, channel: ChannelId) -> bool {
        match self {
            Sight::All => true,
            Sight::Only(channels) => channels.contains(&channel),
        }
    }

    /// The channels to narrow a query to; `None` for every channel.
    pub(crate) fn channels(&self) -> Option<Vec<ChannelId>> {
        match self {
            Sight::All => None,
            Sight::Only(channels) => Some(channels.iter().copied().collect()),
        }
    }
}

/// What the user sees in `mine`'s guild, given their standing there.
pub(crate) async fn sight(
    state: &WebState,
    current: &CurrentUser,
    standing: Standing,
    mine: &MyGuild,
) -> Result<Sight, Problem> {
    if standing.manages() {
        return Ok(Sight::All);
    }
    let key = visible_channels_key(mine.id, current.user.id);
    if let Some(channels) = cached::<Vec<ChannelId>>(state, &key, "visible channels").await {
        return Ok(Sight::Only(channels.into_iter().collect()));
    }
    let visible = ask_discord(state, current, mine).await?;
    let channels: Vec<ChannelId> = visible.iter().copied().collect();
    cache(
        state,
        &key,
        &channels,
        VISIBLE_CHANNELS_TTL_SECS,
        "visible channels",
    )
    .await;
    Ok(Sight::Only(visible))
}

/// The page when Discord cannot say what the user may see: nothing is shown.
fn discord_silent(guild: GuildId, error: &discord::RestError) -> Problem {
    tracing::warn!(%error, %guild, "could not read a guild's channels or a member's roles; showing nothing");
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "Discord did not answer",
        "Tavern could not ask Discord which of this server's channels you may see, so it \
         shows none of them; try again in a moment.",
    )
}

/// The stored channels the member sees, from Discord's channel list, their roles and,
/// only if they may see every thread of some channel, the parents of stored threads.
async fn ask_discord(
    state: &WebState,
    current: &CurrentUser,
    mine: &MyGuild,
) -> Result<BTreeSet<ChannelId>, Problem> {
    let guild = mine.id;
    let listed = state
        .discord
        .guild_channels(guild)
        .await
        .map_err(|e| discord_silent(guild, &e))?;
    let roles = state
        .discord
        .member_roles(guild, current.user.id)
        .await
        .map_err(|e| discord_silent(guild, &e))?;
    let Some(roles) = roles else {
        tracing::info!(user = %current.user.id, %guild, "clips page refused: Discord no longer lists the member");
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Not your server",
            "Discord does not list you as a member of this server any more, so Tavern does \
             not show you its clips.",
        )
        .link("Your servers", CLIPS_PATH));
    };
    let viewer = Viewer {
        guild,
        user: current.user.id,
        owner: mine.owner,
        base: mine.permissions,
        roles,
    };
    let listed: Vec<ListedChannel<'_>> = listed
        .iter()
        .map(|c| ListedChannel {
            id: c.id,
            overwrites: &c.overwrites,
        })
        .collect();
    let asks_parents = !thread_parents_read(&viewer, &listed).is_empty();
    let stored_channels = state
        .repo
        .guild_channels(guild)
        .await
        .map_err(|e| storage_problem(&e))?;
    let mut stored = Vec::with_capacity(stored_channels.len());
    for channel in &stored_channels {
        let id = channel.info.id;
        let is_listed = listed.iter().any(|c| c.id == id);
        let kind = if !is_listed
            && channel.info.kind.as_deref() == Some(discord::model::ChannelType::Thread.as_str())
        {
            let parent = if asks_parents {
                state
                    .discord
                    .channel(id)
                    .await
                    .map_err(|e| discord_silent(guild, &e))?
                    .and_then(|info| info.parent_id)
            } else {
                None
            };
            StoredKind::Thread { parent }
        } else {
            StoredKind::Channel
        };
        stored.push((id, kind));
    }
    Ok(visible_channels(&viewer, &listed, &stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manager_sees_every_channel_and_a_member_only_theirs() {
        let (a, b) = (ChannelId::new(1), ChannelId::new(2));
        assert!(Sight::All.sees(a) && Sight::All.channels().is_none());
        let only = Sight::Only([a].into());
        assert!(only.sees(a) && !only.sees(b));
        assert_eq!(only.channels(), Some(vec![a]));
    }
}
