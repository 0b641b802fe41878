//! Who may change a channel's initiative tracker from outside Discord: members of the
//! guild the channel belongs to, as Discord says.
//!
//! A Discord interaction needs no such check (Discord only delivers a command from a
//! channel its user can see); a REST request names any channel id, so
//! [`Membership::check`] asks Discord which guild the channel is in and whether the
//! user is a member of it. Answers are remembered for a while (the channel's guild
//! never changes; a membership for [`MEMBER_FOR`], a refusal for [`NOT_MEMBER_FOR`],
//! so someone who just joined waits at most that long) so that a busy tracker costs
//! Discord two requests per user every few minutes, not two per click.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discord::model::GuildId;
use discord::{Discord, RestError};

use crate::domain::{ChannelId, UserId};

/// How long a "member" answer is trusted.
pub const MEMBER_FOR: Duration = Duration::from_secs(5 * 60);
/// How long a "not a member" answer is trusted.
pub const NOT_MEMBER_FOR: Duration = Duration::from_secs(30);
/// How long a channel's guild is remembered (it never changes; this only bounds memory).
const CHANNEL_FOR: Duration = Duration::from_secs(60 * 60);
/// Most remembered answers of each kind before expired ones are dropped.
const MAX_REMEMBERED: usize = 10_000;

/// Whether a user may change a channel's tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Member,
    /// The user is not a member of the channel's guild.
    NotMember,
    /// Discord knows no such channel, or the bot cannot see it.
    UnknownChannel,
    /// A direct message: it has no guild whose members could be asked.
    NoGuild,
}

/// Why no verdict could be reached.
#[derive(Debug, thiserror::Error)]
#[error("could not ask Discord who may change this tracker: {0}")]
pub struct MembershipError(#[from] RestError);

/// Asks Discord, remembering its answers; cheap to clone.
#[derive(Clone)]
pub struct Membership {
    discord: Discord,
    memory: Arc<Memory>,
}

#[derive(Default)]
struct Memory {
    channels: Mutex<HashMap<ChannelId, (Option<GuildId>, Instant)>>,
    members: Mutex<HashMap<(GuildId, UserId), (bool, Instant)>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").finish_non_exhaustive()
    }
}

impl Membership {
    pub fn new(discord: Discord) -> Membership {
        Membership {
            discord,
            memory: Arc::default(),
        }
    }

    /// Whether `user` may change `channel`'s tracker.
    pub async fn check(
        &self,
        channel: ChannelId,
        user: UserId,
    ) -> Result<Verdict, MembershipError> {
        let guild = match recall(&self.memory.channels, &channel) {
            Some(guild) => guild,
            None => match self.discord.channel_guild(channel).await {
                Ok(guild) => {
                    remember(&self.memory.channels, channel, guild, CHANNEL_FOR);
                    guild
                }
                // Discord answers 404 for a channel it does not know and 403 for one
                // the bot may not see: either way Tavern cannot see it.
                Err(error)
                    if matches!(error, RestError::Status { status: 404, .. })
                        || error.is_missing_permission() =>
                {
                    return Ok(Verdict::UnknownChannel);
                }
                Err(error) => return Err(error.into()),
            },
        };
        let Some(guild) = guild else {
            return Ok(Verdict::NoGuild);
        };
        let member = match recall(&self.memory.members, &(guild, user)) {
            Some(member) => member,
            None => {
                // Discord's 404 (not a member) is an answer, not a refusal.
                let member = self.discord.member_roles(guild, user).await?.is_some();
                let keep = if member { MEMBER_FOR } else { NOT_MEMBER_FOR };
                remember(&self.memory.members, (guild, user), member, keep);
                member
            }
        };
        Ok(if member {
            Verdict::Member
        } else {
            Verdict::NotMember
        })
    }
}

fn recall<K: Eq + std::hash::Hash, V: Copy>(
    memory: &Mutex<HashMap<K, (V, Instant)>>,
    key: &K,
) -> Option<V> {
    let memory = memory.lock().ok()?;
    memory
        .get(key)
        .filter(|(_, until)| *until > Instant::now())
        .map(|(value, _)| *value)
}

fn remember<K: Eq + std::hash::Hash, V>(
    memory: &Mutex<HashMap<K, (V, Instant)>>,
    key: K,
    value: V,
    keep: Duration,
) {
    let Ok(mut memory) = memory.lock() else {
        return;
    };
    let now = Instant::now();
    if memory.len() >= MAX_REMEMBERED {
        memory.retain(|_, (_, until)| *until > now);
        if memory.len() >= MAX_REMEMBERED {
            memory.clear();
        }
    }
    memory.insert(key, (value, now + keep));
}
