//! The user-topic voice channel: anyone may rename the shared voice channel
//! ([`DiscordSettings::topic_voice_channel`]) to what they want to talk about with
//! `/topic`, and it goes back to [`DiscordSettings::topic_default_name`] once it has
//! been empty for [`RESET_AFTER`].
//!
//! The rules ([`TopicState`]) are pure: a name is 2 to 100 characters
//! ([`VoiceChannelTopic`]); a rename is refused within [`RATE_LIMIT`] (ten minutes) of
//! the last one (`user_topic_voice_channel_topic_time`; Discord allows two renames of a
//! channel per ten minutes, and one is kept for the reset: a `/topic`, its reset two
//! minutes later and another `/topic` five minutes after the first would be three, and
//! Discord would hold the third for minutes) and while the channel carries a custom
//! name and is in use; the name is reset once the channel has been empty for
//! [`RESET_AFTER`] and the topic is at least that old.
//!
//! **Who is in the channel.** Discord's REST API cannot list a voice channel's
//! members; the gateway's voice states can. [`VoiceTracker`] keeps who is connected to
//! the topic channel in Redis (the list in GUILD_CREATE, then every
//! VOICE_STATE_UPDATE), so [`GatewayVoice`] answers on any replica, whichever process
//! runs the guild's shard. It also records, under the controllable clock, since when
//! the channel has been empty (Tavern's key
//! [`TOPIC_VOICE_EMPTY_SINCE`](crate::schema::TOPIC_VOICE_EMPTY_SINCE): written when the
//! last person leaves, removed when somebody joins). The reset is a periodic check
//! ([`reset_job`], every minute, under the kit's job lock): in use while anybody is
//! connected, reset once it has been empty for two minutes and the topic is two minutes
//! old. Found empty with no time recorded (Tavern was not listening when it emptied),
//! the check records its own time and the two minutes count from there. A source that
//! does not know
//! ([`Occupancy::Unknown`]: Redis unreadable, or [`NoVoiceStates`]) makes a custom
//! topic count as in use for [`ASSUMED_IN_USE`] after it was set.

use std::sync::Arc;
use std::time::Duration;

use base::Clock;
use chrono::{DateTime, TimeDelta, Utc};
use discord::{
    BoxFuture, ChannelId, Discord, Event, EventHandler, EventKind, GuildId, Invocation, Reply,
    Response, RestError, UserId,
};
use feature::Job;

use crate::commands::{CommandError, CommandResult, Commands};
use crate::config::DiscordSettings;
use crate::domain::VoiceChannelTopic;
use crate::repo::{Repo, RepoError};

/// A topic is reset once the channel has been empty this long and the topic is this
/// old.
pub const RESET_AFTER: TimeDelta = TimeDelta::minutes(2);
/// At most one `/topic` per this long: with the reset, two renames in Discord's
/// ten-minute window for a channel's name.
pub const RATE_LIMIT: TimeDelta = TimeDelta::minutes(10);
/// Without knowing who is connected, how long a custom topic counts as in use.
pub const ASSUMED_IN_USE: TimeDelta = TimeDelta::hours(1);
/// The reset job's name (and lock).
pub const RESET_JOB: &str = "campaigns-topic-reset";
/// How often the reset job looks.
pub const RESET_EVERY: Duration = Duration::from_secs(60);

/// How many people are connected to a voice channel, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occupancy {
    Known(usize),
    Unknown,
}

/// Tells who is connected to a voice channel.
pub trait VoiceOccupancy: Send + Sync + 'static {
    fn occupancy(&self, channel: ChannelId) -> BoxFuture<'static, Occupancy>;
}

/// An occupancy source that never knows ([`Occupancy::Unknown`]): for a Tavern that
/// reads no voice states.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoVoiceStates;

impl VoiceOccupancy for NoVoiceStates {
    fn occupancy(&self, _channel: ChannelId) -> BoxFuture<'static, Occupancy> {
        Box::pin(async { Occupancy::Unknown })
    }
}

/// Who is connected to the topic voice channel, as [`VoiceTracker`] recorded it.
#[derive(Debug, Clone)]
pub struct GatewayVoice {
    repo: Repo,
}

impl GatewayVoice {
    pub fn new(repo: Repo) -> GatewayVoice {
        GatewayVoice { repo }
    }
}

impl VoiceOccupancy for GatewayVoice {
    fn occupancy(&self, channel: ChannelId) -> BoxFuture<'static, Occupancy> {
        let repo = self.repo.clone();
        Box::pin(async move {
            match repo.topic_voice_count().await {
                Ok(count) => Occupancy::Known(count),
                Err(error) => {
                    tracing::warn!(%error, %channel, "could not read who is in the topic voice channel");
                    Occupancy::Unknown
                }
            }
        })
    }
}

/// Keeps who is connected to the topic voice channel of the community's guild from
/// the gateway's voice states.
#[derive(Clone)]
pub struct VoiceTracker {
    repo: Repo,
    guild: GuildId,
    channel: ChannelId,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for VoiceTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceTracker")
            .field("guild", &self.guild)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl VoiceTracker {
    /// `None` without a topic voice channel. `clock` dates the moment the channel
    /// becomes empty.
    pub fn new(
        repo: Repo,
        settings: &DiscordSettings,
        clock: Arc<dyn Clock>,
    ) -> Option<VoiceTracker> {
        Some(VoiceTracker {
            repo,
            guild: settings.guild,
            channel: settings.topic_voice_channel?,
            clock,
        })
    }
}

impl EventHandler for VoiceTracker {
    fn on_event(&self, event: Event) -> BoxFuture<'static, ()> {
        let (repo, guild, channel) = (self.repo.clone(), self.guild, self.channel);
        let now = self.clock.now();
        Box::pin(async move {
            let written = match event {
                Event::GuildAvailable {
                    guild_id, voice, ..
                } if guild_id == guild => {
                    let users: Vec<UserId> = voice
                        .iter()
                        .filter(|v| v.channel_id == Some(channel))
                        .map(|v| v.user)
                        .collect();
                    repo.reset_topic_voice(&users, now).await
                }
                Event::VoiceStateUpdate { guild_id, state } if guild_id == guild => {
                    repo.set_topic_voice(state.user, state.channel_id == Some(channel), now)
                        .await
                }
                _ => return,
            };
            if let Err(error) = written {
                tracing::warn!(%error, %channel, "could not record who is in the topic voice channel");
            }
        })
    }

    fn kinds(&self) -> &[EventKind] {
        &[EventKind::GuildAvailable, EventKind::VoiceStateUpdate]
    }
}

/// What the rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    /// The channel's name now.
    pub name: String,
    /// Its name without a topic.
    pub default_name: String,
    pub occupancy: Occupancy,
    /// When `/topic` last renamed it (`user_topic_voice_channel_topic_time`).
    pub set_at: Option<DateTime<Utc>>,
    /// Since when it has been empty, as recorded from the voice states (`None`: not
    /// recorded, or somebody is connected).
    pub empty_since: Option<DateTime<Utc>>,
}

/// Why `/topic` is refused now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicRefusal {
    #[error("a topic was set a moment ago; the next one can be set <t:{}:R>", .until.timestamp())]
    TooSoon { until: DateTime<Utc> },
    #[error("the channel is in use with the topic “{name}”; try again once it is empty")]
    InUse { name: String },
}

impl TopicState {
    /// Whether the channel carries a name other than its default.
    pub fn is_custom(&self) -> bool {
        self.name != self.default_name
    }

    /// Whether people are (or, not knowing, may be) talking in it.
    pub fn in_use(&self, now: DateTime<Utc>) -> bool {
        match self.occupancy {
            Occupancy::Known(n) => n > 0,
            Occupancy::Unknown => self.set_at.is_some_and(|t| now < t + ASSUMED_IN_USE),
        }
    }

    /// Whether `/topic` may rename the channel now.
    pub fn may_rename(&self, now: DateTime<Utc>) -> Result<(), TopicRefusal> {
        if let Some(set) = self.set_at {
            let until = set + RATE_LIMIT;
            if now < until {
                return Err(TopicRefusal::TooSoon { until });
            }
        }
        if self.is_custom() && self.in_use(now) {
            return Err(TopicRefusal::InUse {
                name: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Whether the reset should give the channel its default name back now: a custom
    /// name, nobody connected for [`RESET_AFTER`] (known: since `empty_since`; not
    /// knowing: [`ASSUMED_IN_USE`] after the topic was set), and the topic at least
    /// [`RESET_AFTER`] old.
    pub fn reset_due(&self, now: DateTime<Utc>) -> bool {
        let empty_long_enough = match self.occupancy {
            Occupancy::Known(0) => self.empty_since.is_some_and(|t| now >= t + RESET_AFTER),
            Occupancy::Known(_) => false,
            Occupancy::Unknown => !self.in_use(now),
        };
        self.is_custom() && empty_long_enough && self.set_at.is_none_or(|t| now >= t + RESET_AFTER)
    }
}

/// Reads the state of the topic channel (`set_at` is the stored topic time).
async fn state(
    discord: &Discord,
    occupancy: &dyn VoiceOccupancy,
    channel: ChannelId,
    default_name: &str,
    set_at: Option<DateTime<Utc>>,
) -> Result<TopicState, RestError> {
    let name = discord.channel_name(channel).await?.unwrap_or_default();
    Ok(TopicState {
        name,
        default_name: default_name.to_owned(),
        occupancy: occupancy.occupancy(channel).await,
        set_at,
        empty_since: None,
    })
}

/// Why the reset failed.
#[derive(Debug, thiserror::Error)]
pub enum TopicResetError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("Discord: {0}")]
    Discord(#[from] RestError),
}

/// `/topic text`: renames the topic voice channel.
pub(crate) async fn topic_command(c: Commands, inv: Invocation) -> CommandResult {
    c.require_guild(&inv, "topic")?;
    let Some(channel) = c.settings().topic_voice_channel else {
        return Err(CommandError::refused(
            "There is no topic voice channel on this server.",
        ));
    };
    let raw = inv.options().str("topic").unwrap_or_default().to_owned();
    let topic = VoiceChannelTopic::parse(&raw)
        .map_err(|e| CommandError::refused(format!("That topic can't be used: {e}.")))?;
    let default_name = &c.settings().topic_default_name;
    let now = c.now();
    let claim = c.repo().read_topic_claim().await?;
    let current = state(
        c.discord(),
        c.occupancy(),
        channel,
        default_name,
        claim.set_at,
    )
    .await?;
    current
        .may_rename(now)
        .map_err(|e| CommandError::refused(format!("Sorry, {e}.")))?;
    // Claim the channel first: of two people renaming at once, one wins.
    if !c.repo().claim_topic(&claim, now).await? {
        return Err(CommandError::refused(
            "Sorry, somebody set a topic just now; try again in a few minutes.",
        ));
    }
    if let Err(error) = c.discord().rename_channel(channel, topic.as_str()).await {
        // The rename did not happen: give the claim back, so the rate limit does not
        // count it.
        if let Err(release) = c.repo().release_topic(&claim, now).await {
            tracing::warn!(%release, "could not give back the topic claim");
        }
        return Err(error.into());
    }
    tracing::info!(%channel, by = %inv.actor.id, "topic voice channel renamed");
    Ok(Response::Message(Reply::text(format!(
        "<#{channel}> is yours: its topic is now “{}”.",
        topic.as_str()
    ))))
}

/// One look at the topic channel: gives it its default name back when the rules say
/// so. Returns whether it did.
pub async fn reset_topic(
    repo: &Repo,
    discord: &Discord,
    occupancy: &dyn VoiceOccupancy,
    channel: ChannelId,
    default_name: &str,
    now: DateTime<Utc>,
) -> Result<bool, TopicResetError> {
    let set_at = repo.topic_time().await?;
    let mut current = state(discord, occupancy, channel, default_name, set_at).await?;
    // Read after the occupancy: a join in between removes the time, so an empty channel
    // is never paired with the time of an earlier empty spell.
    current.empty_since = repo.topic_voice_empty_since().await?;
    if current.occupancy == Occupancy::Known(0) && current.empty_since.is_none() {
        // Empty, but nobody saw it empty: the two minutes count from now.
        repo.mark_topic_voice_empty(now).await?;
        return Ok(false);
    }
    if !current.reset_due(now) {
        return Ok(false);
    }
    discord.rename_channel(channel, default_name).await?;
    tracing::info!(%channel, "topic voice channel reset to its default name");
    Ok(true)
}

/// The periodic reset ([`reset_topic`] every [`RESET_EVERY`]); `None` without a topic
/// voice channel.
pub fn reset_job(
    repo: Repo,
    discord: Discord,
    settings: &DiscordSettings,
    occupancy: Arc<dyn VoiceOccupancy>,
    clock: Arc<dyn Clock>,
) -> Option<Job> {
    let channel = settings.topic_voice_channel?;
    let default_name: Arc<str> = Arc::from(settings.topic_default_name.as_str());
    Some(Job::every(RESET_JOB, RESET_EVERY, move || {
        let (repo, discord, occupancy, clock, default_name) = (
            repo.clone(),
            discord.clone(),
            Arc::clone(&occupancy),
            Arc::clone(&clock),
            Arc::clone(&default_name),
        );
        async move {
            reset_topic(
                &repo,
                &discord,
                occupancy.as_ref(),
                channel,
                &default_name,
                clock.now(),
            )
            .await
            .map(|_| ())
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn state(name: &str, occupancy: Occupancy, set_at: Option<&str>) -> TopicState {
        TopicState {
            name: name.into(),
            default_name: "Topic of your choice".into(),
            occupancy,
            set_at: set_at.map(at),
            empty_since: None,
        }
    }

    fn empty_since(mut s: TopicState, since: &str) -> TopicState {
        s.empty_since = Some(at(since));
        s
    }

    #[test]
    fn a_rename_waits_ten_minutes_after_the_last_so_its_reset_fits_discords_window() {
        // Renamed at 10:00 and, the channel empty, reset to its default at 10:02: that
        // is Discord's two renames of this channel until 10:10.
        let s = state(
            "Topic of your choice",
            Occupancy::Known(0),
            Some("2026-01-01T10:00:00Z"),
        );
        assert_eq!(
            s.may_rename(at("2026-01-01T10:05:00Z")),
            Err(TopicRefusal::TooSoon {
                until: at("2026-01-01T10:10:00Z")
            })
        );
        assert_eq!(s.may_rename(at("2026-01-01T10:10:00Z")), Ok(()));
    }

    #[test]
    fn a_custom_topic_in_use_is_not_taken_over() {
        let now = at("2026-01-01T12:00:00Z");
        let busy = state(
            "Mörk Borg",
            Occupancy::Known(2),
            Some("2026-01-01T10:00:00Z"),
        );
        assert!(matches!(
            busy.may_rename(now),
            Err(TopicRefusal::InUse { .. })
        ));
        let empty = state(
            "Mörk Borg",
            Occupancy::Known(0),
            Some("2026-01-01T10:00:00Z"),
        );
        assert_eq!(empty.may_rename(now), Ok(()));
        // The default name may be replaced even with people inside.
        let default = state("Topic of your choice", Occupancy::Known(3), None);
        assert_eq!(default.may_rename(now), Ok(()));
    }

    #[test]
    fn the_reset_comes_two_minutes_after_the_channel_emptied() {
        // In use for an hour, empty at 11:00: reset at 11:02, not before.
        let s = empty_since(
            state(
                "Mörk Borg",
                Occupancy::Known(0),
                Some("2026-01-01T10:00:00Z"),
            ),
            "2026-01-01T11:00:00Z",
        );
        assert!(!s.reset_due(at("2026-01-01T11:00:00Z")));
        assert!(!s.reset_due(at("2026-01-01T11:01:59Z")));
        assert!(s.reset_due(at("2026-01-01T11:02:00Z")));
        // Empty without a recorded time: not yet (the job records one first).
        let unrecorded = state(
            "Mörk Borg",
            Occupancy::Known(0),
            Some("2026-01-01T10:00:00Z"),
        );
        assert!(!unrecorded.reset_due(at("2026-01-01T18:00:00Z")));
    }

    #[test]
    fn the_reset_comes_when_empty_and_two_minutes_old() {
        // Set in an empty channel: the topic gets its two minutes too.
        let s = empty_since(
            state(
                "Mörk Borg",
                Occupancy::Known(0),
                Some("2026-01-01T10:00:00Z"),
            ),
            "2026-01-01T09:00:00Z",
        );
        assert!(!s.reset_due(at("2026-01-01T10:01:59Z")));
        assert!(s.reset_due(at("2026-01-01T10:02:00Z")));
        let busy = state(
            "Mörk Borg",
            Occupancy::Known(1),
            Some("2026-01-01T10:00:00Z"),
        );
        assert!(!busy.reset_due(at("2026-01-01T18:00:00Z")));
        let default = state("Topic of your choice", Occupancy::Known(0), None);
        assert!(!default.reset_due(at("2026-01-01T18:00:00Z")));
        // Renamed by hand, never by `/topic`: reset when empty.
        let by_hand = empty_since(
            state("Whatever", Occupancy::Known(0), None),
            "2026-01-01T17:00:00Z",
        );
        assert!(by_hand.reset_due(at("2026-01-01T18:00:00Z")));
    }

    #[test]
    fn not_knowing_who_is_inside_holds_a_topic_for_an_hour() {
        let s = state(
            "Mörk Borg",
            Occupancy::Unknown,
            Some("2026-01-01T10:00:00Z"),
        );
        assert!(s.in_use(at("2026-01-01T10:59:59Z")));
        assert!(matches!(
            s.may_rename(at("2026-01-01T10:30:00Z")),
            Err(TopicRefusal::InUse { .. })
        ));
        assert!(!s.reset_due(at("2026-01-01T10:59:59Z")));
        assert!(s.reset_due(at("2026-01-01T11:00:00Z")));
        assert_eq!(s.may_rename(at("2026-01-01T11:00:00Z")), Ok(()));
    }
}
