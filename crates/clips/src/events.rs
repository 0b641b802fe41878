//! The clip archive in real time, from the gateway.
//!
//! - Guilds and channels: a guild becoming available (at connection, after an outage,
//!   when the bot is added) records the guild and makes its stored channels Discord's
//!   list (new ones added, renamed ones refreshed, ones deleted meanwhile removed).
//!   Threads are not in that list, so a stored thread (registered when `/clips` named
//!   it) stays with its clips; no event here says a thread was deleted (the gateway's
//!   thread events are not handed to features), so only the guild's removal removes
//!   it. Guild and channel updates refresh their rows; the bot leaving a guild
//!   (not an outage: `unavailable`) deletes it, and a channel deletion its channel, with
//!   their scan runs and clips (the foreign keys cascade). Only channels that hold
//!   messages are recorded (not categories).
//! - Messages, only in channels being read (one look-up by primary key decides; other
//!   channels cost nothing more): a new message is indexed at once and moves the
//!   channel's `message_count`, `last_message_id` and `last_activity_at`; an edit makes
//!   the message's clips what its attachments are now (Discord sends the whole list);
//!   deletions, one or in bulk, remove their clips (in any channel: a clip whose message
//!   is gone is gone).
//! - After an outage: when a guild becomes available again, each of its channels being
//!   read whose index has a position (a scan or a live message moved its
//!   `last_message_id`) gets a catch-up scan forward from it requested
//!   ([`ScanMode::CatchUp`]: the messages posted while the bot was away come in no
//!   event). A history never read to its start stays for the next `/clips scan`. The run is queued before any message
//!   of the new session moves `last_message_id`, so its window starts where the index
//!   stopped.
//!
//! - Tavern's own permissions: the events that may change them (a channel created,
//!   changed or deleted, a guild changed or available again) drop what the scanner
//!   kept of them for the guild (see [`crate::scan::Scanner::forget_bot_sight`]).
//!
//! The bot hands this handler its events one at a time, in the order the gateway sent
//! them, so an edit never overtakes its message's creation and a channel's creation
//! never overtakes its guild's arrival.

use std::sync::Arc;

use discord::model::{ChannelInfo as DiscordChannel, Event, EventKind, GuildId};
use discord::{BoxFuture, Discord, EventHandler};

use crate::domain::{ChannelId, ClipMatcher, StoredText};
use crate::repo::{ChannelInfo, GuildInfo, Repo, RepoError};
use crate::scan::ingest::{clips_of, message_time};
use crate::scan::{ScanError, ScanMode, Scanner};

/// The kinds of event the clip archive takes.
pub const KINDS: [EventKind; 10] = [
    EventKind::MessageCreate,
    EventKind::MessageUpdate,
    EventKind::MessageDelete,
    EventKind::MessageDeleteBulk,
    EventKind::GuildAvailable,
    EventKind::GuildUpdate,
    EventKind::GuildRemoved,
    EventKind::ChannelCreate,
    EventKind::ChannelUpdate,
    EventKind::ChannelDelete,
];

/// Why an event could not be applied (logged; the event is not retried).
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Discord(#[from] discord::RestError),
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// The clip archive's gateway handler.
#[derive(Clone, Debug)]
pub struct ClipsEvents {
    repo: Repo,
    discord: Discord,
    scanner: Scanner,
}

impl ClipsEvents {
    pub fn new(repo: Repo, discord: Discord, scanner: Scanner) -> ClipsEvents {
        ClipsEvents {
            repo,
            discord,
            scanner,
        }
    }

    /// Applies one event.
    pub async fn apply(&self, event: Event) -> Result<(), EventError> {
        if let Some(guild) = moves_permissions(&event) {
            self.scanner.forget_bot_sight(guild).await;
        }
        match event {
            Event::MessageCreate {
                guild_id: Some(_),
                channel_id,
                message_id,
                author,
                content,
                attachments,
                timestamp_ms,
                ..
            } => {
                let at = message_time(message_id, Some(timestamp_ms));
                let clips = if attachments.is_empty() {
                    Vec::new()
                } else {
                    match self.matcher_if_reading(channel_id).await? {
                        None => return Ok(()),
                        Some((matcher, nsfw)) => clips_of(
                            &matcher,
                            nsfw,
                            message_id,
                            &author,
                            at,
                            &content,
                            &attachments,
                        ),
                    }
                };
                let (reading, added) = self
                    .repo
                    .index_live_message(channel_id, message_id, at, &clips)
                    .await?;
                if reading && added > 0 {
                    tracing::info!(channel = %channel_id, message = %message_id, added, "clips indexed live");
                }
            }
            Event::MessageUpdate {
                guild_id: Some(_),
                channel_id,
                message_id,
                author,
                content,
                attachments,
                timestamp_ms,
            } => {
                let Some(context) = self.repo.reading_context(channel_id).await? else {
                    return Ok(());
                };
                let ids: Vec<u64> = attachments.iter().map(|a| a.id).collect();
                let mut clips = Vec::new();
                let matcher = (context.is_reading && !attachments.is_empty())
                    .then(|| usable_matcher(channel_id, &context.settings))
                    .flatten();
                if let Some(matcher) = matcher {
                    // The author and time come with Discord's whole-message
                    // updates; ask for the message when they did not.
                    let (author, at) = match (author, timestamp_ms) {
                        (Some(author), Some(ms)) => (author, message_time(message_id, Some(ms))),
                        _ => match self.discord.message(channel_id, message_id).await? {
                            Some(m) => (m.author, message_time(message_id, Some(m.timestamp_ms))),
                            None => return Ok(()),
                        },
                    };
                    clips = clips_of(
                        &matcher,
                        context.is_nsfw,
                        message_id,
                        &author,
                        at,
                        content.as_deref().unwrap_or_default(),
                        &attachments,
                    );
                }
                let text = content.as_deref().map(StoredText::new);
                let (removed, added) = self
                    .repo
                    .replace_message_clips(channel_id, message_id, text.as_ref(), &ids, &clips)
                    .await?;
                if removed + added > 0 {
                    tracing::info!(channel = %channel_id, message = %message_id, removed, added, "clips of an edited message updated");
                }
            }
            Event::MessageDelete {
                channel_id,
                message_id,
                ..
            } => {
                let removed = self
                    .repo
                    .delete_message_clips(channel_id, message_id)
                    .await?;
                if removed > 0 {
                    tracing::info!(channel = %channel_id, message = %message_id, removed, "clips of a deleted message removed");
                }
            }
            Event::MessageDeleteBulk {
                channel_id,
                message_ids,
                ..
            } => {
                let removed = self
                    .repo
                    .delete_messages_clips(channel_id, &message_ids)
                    .await?;
                if removed > 0 {
                    tracing::info!(channel = %channel_id, messages = message_ids.len(), removed, "clips of bulk-deleted messages removed");
                }
            }
            Event::GuildAvailable {
                guild_id,
                name,
                icon,
                owner_id,
                channels,
                ..
            } => {
                self.repo
                    .upsert_guild(&GuildInfo {
                        id: guild_id,
                        name,
                        icon,
                        owner: owner_id,
                    })
                    .await?;
                let stored: Vec<ChannelInfo> = channels
                    .iter()
                    .filter_map(|c| stored_channel(c, Some(guild_id)))
                    .collect();
                self.repo.sync_guild_channels(guild_id, &stored).await?;
                self.catch_up(guild_id).await;
            }
            Event::GuildUpdate(info) => {
                self.repo.upsert_guild(&GuildInfo::from(info)).await?;
            }
            Event::GuildRemoved {
                guild_id,
                unavailable: false,
            } => {
                let left = self.repo.delete_guild(guild_id).await?;
                if left {
                    tracing::info!(guild = %guild_id, "guild left: its channels and clips removed");
                }
            }
            Event::ChannelCreate(info) | Event::ChannelUpdate(info) => {
                match stored_channel(&info, None) {
                    Some(channel) => match self.repo.upsert_channel(&channel).await {
                        Ok(()) => {}
                        // A guild Tavern has not recorded (its row was lost, or this
                        // came first): recorded from Discord, then the channel.
                        Err(RepoError::UnknownGuild(guild)) => {
                            let Some(found) = self.discord.guild(guild).await? else {
                                return Ok(());
                            };
                            self.repo.upsert_guild(&GuildInfo::from(found)).await?;
                            self.repo.upsert_channel(&channel).await?;
                        }
                        Err(e) => return Err(e.into()),
                    },
                    // No longer a channel with messages (or never one).
                    None => {
                        self.repo.delete_channel(info.id).await?;
                    }
                }
            }
            Event::ChannelDelete(info) => {
                let deleted = self.repo.delete_channel(info.id).await?;
                if deleted {
                    tracing::info!(channel = %info.id, "channel deleted: its clips removed");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The channel's matcher and NSFW flag when it is being read; `None` otherwise (or
    /// when its settings cannot be used, which is logged).
    async fn matcher_if_reading(
        &self,
        channel: ChannelId,
    ) -> Result<Option<(ClipMatcher, bool)>, EventError> {
        let Some(context) = self.repo.reading_context(channel).await? else {
            return Ok(None);
        };
        if !context.is_reading {
            return Ok(None);
        }
        Ok(usable_matcher(channel, &context.settings).map(|m| (m, context.is_nsfw)))
    }

    /// Requests a catch-up scan of each channel of `guild` being read and scanned
    /// before. Failures are logged: the next scan request covers them.
    async fn catch_up(&self, guild: GuildId) {
        let channels = match self.repo.reading_channels(guild).await {
            Ok(channels) => channels,
            Err(error) => {
                tracing::warn!(%guild, %error, "cannot list the channels to catch up");
                return;
            }
        };
        for channel in channels.iter().filter(|c| c.last_message_id.is_some()) {
            if let Err(error) = self
                .scanner
                .request(channel.info.id, ScanMode::CatchUp)
                .await
            {
                tracing::warn!(channel = %channel.info.id, %error, "catch-up scan not requested");
            }
        }
    }
}

/// The guild whose channels may now give Tavern other permissions than Tavern kept
/// ([`Scanner::forget_bot_sight`]): a channel created, changed (its overwrites) or
/// deleted, a guild changed (its owner) or back after an outage.
fn moves_permissions(event: &Event) -> Option<GuildId> {
    match event {
        Event::ChannelCreate(info) | Event::ChannelUpdate(info) | Event::ChannelDelete(info) => {
            info.guild_id
        }
        Event::GuildUpdate(info) => Some(info.id),
        Event::GuildAvailable { guild_id, .. } => Some(*guild_id),
        _ => None,
    }
}

fn usable_matcher(channel: ChannelId, settings: &crate::domain::Settings) -> Option<ClipMatcher> {
    match ClipMatcher::from_settings(settings) {
        Ok(matcher) => Some(matcher),
        Err(error) => {
            tracing::warn!(%channel, %error, "channel settings unusable; message not indexed");
            None
        }
    }
}

/// A Discord channel as Tavern stores it: only channels of a guild that hold messages.
pub(crate) fn stored_channel(info: &DiscordChannel, guild: Option<GuildId>) -> Option<ChannelInfo> {
    if !info.kind.has_messages() {
        return None;
    }
    Some(ChannelInfo {
        id: info.id,
        guild: info.guild_id.or(guild)?,
        name: Some(info.name.clone()),
        kind: Some(info.kind.as_str().to_owned()),
        is_nsfw: info.nsfw,
    })
}

impl EventHandler for ClipsEvents {
    fn on_event(&self, event: Event) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let kind = event.kind();
            if let Err(error) = this.apply(event).await {
                tracing::warn!(?kind, %error, "clips: gateway event not applied");
            }
        })
    }

    fn kinds(&self) -> &[EventKind] {
        &KINDS
    }
}

/// The handler as the feature hands it to the bot.
pub fn handler(repo: Repo, discord: Discord, scanner: Scanner) -> Arc<dyn EventHandler> {
    Arc::new(ClipsEvents::new(repo, discord, scanner))
}
