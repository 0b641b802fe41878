//! Who may read and change a channel's initiative tracker from outside Discord: the
//! members of the channel's guild who see the channel, as Discord decides it.
//!
//! A Discord interaction needs no such check (Discord only delivers a command from a
//! channel its user can see); a REST request names any channel id, so
//! [`Membership::check`] asks Discord which guild the channel is in, whether the user
//! is a member of it, and then, from the member's roles, the guild's roles and owner
//! and the channel's permission overwrites, whether they hold View Channel there
//! (`discord::model::permissions`, the one home of Discord's overwrite order). A
//! thread is seen by whoever sees its parent and holds Manage Threads there: Discord
//! does not tell a private thread from a public one, so only those who see it either
//! way are let in.
//!
//! Answers are remembered for a while so that a busy tracker costs Discord a few
//! requests per user every few minutes, not a few per click: the channel's guild (it
//! never changes), and the whole verdict for a user and a channel, computed from
//! Discord's answers of that moment, for [`MEMBER_FOR`] when they see it (so someone
//! who lost sight of it, or left the server, keeps it at most that long) and for
//! [`NOT_MEMBER_FOR`] otherwise (so someone who was just let in waits at most that
//! long). Those windows run on the kit's clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base::Clock;
use chrono::{DateTime, TimeDelta, Utc};

use discord::model::GuildId;
use discord::{Discord, RestError};

use discord::model::permissions::{self, MANAGE_THREADS, VIEW_CHANNEL};

use crate::domain::{ChannelId, UserId};

/// How long a "sees the channel" answer is trusted.
pub const MEMBER_FOR: Duration = Duration::from_secs(5 * 60);
/// How long a "not a member" or "does not see the channel" answer is trusted.
pub const NOT_MEMBER_FOR: Duration = Duration::from_secs(30);
/// How long a channel's guild is remembered (it never changes; this only bounds memory).
const CHANNEL_FOR: Duration = Duration::from_secs(60 * 60);
/// Most remembered answers of each kind before expired ones are dropped.
const MAX_REMEMBERED: usize = 10_000;

/// Whether a user may read and change a channel's tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A member of the channel's guild who sees the channel.
    Sees,
    /// The user is not a member of the channel's guild.
    NotMember,
    /// A member of the channel's guild who does not see the channel (its permission
    /// overwrites keep them out).
    Hidden,
    /// Discord knows no such channel, or the bot cannot see it.
    UnknownChannel,
    /// A direct message: it has no guild whose members could be asked.
    NoGuild,
}

/// Where a channel is, for Tavern.
enum Place {
    Guild(GuildId),
    /// A direct message.
    Direct,
    /// Discord knows no such channel, or the bot cannot see it.
    Unknown,
}

/// Why no verdict could be reached.
#[derive(Debug, thiserror::Error)]
#[error("could not ask Discord who may change this tracker: {0}")]
pub struct MembershipError(#[from] RestError);

/// Asks Discord, remembering its answers (for how long, by the kit's clock); cheap to
/// clone.
#[derive(Clone)]
pub struct Membership {
    discord: Discord,
    clock: Arc<dyn Clock>,
    memory: Arc<Memory>,
}

/// Answers by key, each with when it stops being trusted.
type Remembered<K, V> = Mutex<HashMap<K, (V, DateTime<Utc>)>>;

#[derive(Default)]
struct Memory {
    channels: Remembered<ChannelId, Option<GuildId>>,
    verdicts: Remembered<(ChannelId, UserId), Verdict>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").finish_non_exhaustive()
    }
}

impl Membership {
    pub fn new(discord: Discord, clock: Arc<dyn Clock>) -> Membership {
        Membership {
            discord,
            clock,
            memory: Arc::default(),
        }
    }

    /// Whether `user` may read and change `channel`'s tracker.
    pub async fn check(
        &self,
        channel: ChannelId,
        user: UserId,
    ) -> Result<Verdict, MembershipError> {
        let guild = match self.place(channel).await? {
            Place::Guild(guild) => guild,
            Place::Direct => return Ok(Verdict::NoGuild),
            Place::Unknown => return Ok(Verdict::UnknownChannel),
        };
        if let Some(verdict) = recall(&self.memory.verdicts, &(channel, user), self.clock.now()) {
            return Ok(verdict);
        }
        let verdict = self.ask(guild, channel, user).await?;
        let keep = if verdict == Verdict::Sees {
            MEMBER_FOR
        } else {
            NOT_MEMBER_FOR
        };
        remember(
            &self.memory.verdicts,
            (channel, user),
            verdict,
            self.clock.now(),
            keep,
        );
        Ok(verdict)
    }

    /// The name `user` goes by in `channel`'s guild, as a command of theirs shows it
    /// (their display name, else their username); `None` when Tavern cannot tell (not a
    /// member, a direct message, a channel it cannot see). Asked of Discord each time.
    pub async fn name(
        &self,
        channel: ChannelId,
        user: UserId,
    ) -> Result<Option<String>, MembershipError> {
        let Place::Guild(guild) = self.place(channel).await? else {
            return Ok(None);
        };
        Ok(self.discord.member(guild, user).await?.map(|m| m.name))
    }

    /// Where `channel` is: its guild is remembered once Discord said it.
    async fn place(&self, channel: ChannelId) -> Result<Place, MembershipError> {
        let guild = match recall(&self.memory.channels, &channel, self.clock.now()) {
            Some(guild) => guild,
            None => match self.discord.channel_guild(channel).await {
                Ok(guild) => {
                    remember(
                        &self.memory.channels,
                        channel,
                        guild,
                        self.clock.now(),
                        CHANNEL_FOR,
                    );
                    guild
                }
                // Discord answers 404 for a channel it does not know and 403 for one
                // the bot may not see: either way Tavern cannot see it.
                Err(error)
                    if matches!(error, RestError::Status { status: 404, .. })
                        || error.is_missing_permission() =>
                {
                    return Ok(Place::Unknown);
                }
                Err(error) => return Err(error.into()),
            },
        };
        Ok(guild.map_or(Place::Direct, Place::Guild))
    }

    /// The verdict from Discord's answers now: the member's roles (Discord's 404, not
    /// a member, is an answer), the guild's channels, roles and owner, and for a
    /// channel the guild does not list (a thread) its parent.
    async fn ask(
        &self,
        guild: GuildId,
        channel: ChannelId,
        user: UserId,
    ) -> Result<Verdict, MembershipError> {
        let Some(roles) = self.discord.member_roles(guild, user).await? else {
            return Ok(Verdict::NotMember);
        };
        // Three independent answers, asked for at once.
        let (listed, guild_roles, about) = tokio::try_join!(
            self.discord.guild_channels(guild),
            self.discord.guild_roles(guild),
            self.discord.guild(guild),
        )?;
        let owner = about.and_then(|g| g.owner_id);
        let member = permissions::Member {
            guild,
            user,
            owner: owner == Some(user),
            base: permissions::base(guild, &guild_roles, &roles),
            roles: &roles,
        };
        // View Channel; for a thread, its parent's, with Manage Threads there.
        let holds = |overwrites: &[discord::model::Overwrite], needed: u64| {
            member.in_channel(overwrites) & needed == needed
        };
        let overwrites_of = |id: ChannelId| {
            listed
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.overwrites.as_slice())
        };
        let sees = match overwrites_of(channel) {
            Some(overwrites) => holds(overwrites, VIEW_CHANNEL),
            None => {
                let parent = self
                    .discord
                    .channel(channel)
                    .await?
                    .and_then(|c| c.parent_id);
                parent
                    .and_then(overwrites_of)
                    .is_some_and(|overwrites| holds(overwrites, VIEW_CHANNEL | MANAGE_THREADS))
            }
        };
        Ok(if sees { Verdict::Sees } else { Verdict::Hidden })
    }
}

fn recall<K: Eq + std::hash::Hash, V: Copy>(
    memory: &Remembered<K, V>,
    key: &K,
    now: DateTime<Utc>,
) -> Option<V> {
    let memory = memory.lock().ok()?;
    memory
        .get(key)
        .filter(|(_, until)| *until > now)
        .map(|(value, _)| *value)
}

/// Remembers `value` for `key` for `keep` from `now`, first dropping what expired
/// when the memory is full (everything, when nothing had).
fn remember<K: Eq + std::hash::Hash, V>(
    memory: &Remembered<K, V>,
    key: K,
    value: V,
    now: DateTime<Utc>,
    keep: Duration,
) {
    let Ok(mut memory) = memory.lock() else {
        return;
    };
    if memory.len() >= MAX_REMEMBERED {
        memory.retain(|_, (_, until)| *until > now);
        if memory.len() >= MAX_REMEMBERED {
            memory.clear();
        }
    }
    let until = TimeDelta::from_std(keep)
        .ok()
        .and_then(|keep| now.checked_add_signed(keep))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    memory.insert(key, (value, until));
}
