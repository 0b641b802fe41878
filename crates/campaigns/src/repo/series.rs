//! Event series: the `event_series` set, a series' events, type and online flag, and
//! removing a series with every key that belongs to it.

use discord::model::{ChannelId, RoleId};
use store::Writes;

use super::channels::channel_delete_writes;
use super::events::event_delete_writes;
use super::{Repo, RepoError, channel_id, get, members, parse_at, role_id, watch_more};
use crate::domain::{EventSeriesId, MeetupEventId, SeriesType};
use crate::schema;

/// Everything that pointed at a removed series, for the caller to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovedSeries {
    pub events: Vec<MeetupEventId>,
    pub channel: Option<ChannelId>,
    pub voice_channel: Option<ChannelId>,
    pub guest_role: Option<RoleId>,
    pub host_role: Option<RoleId>,
}

/// For logs: `events 12, 13; channel 4; voice channel none; roles 5, 6`.
impl std::fmt::Display for RemovedSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let one = |id: Option<String>| id.unwrap_or_else(|| "none".to_owned());
        let events: Vec<String> = self.events.iter().map(ToString::to_string).collect();
        let roles: Vec<String> = [self.guest_role, self.host_role]
            .into_iter()
            .flatten()
            .map(|r| r.to_string())
            .collect();
        write!(
            f,
            "events {}; channel {}; voice channel {}; roles {}",
            if events.is_empty() {
                "none".to_owned()
            } else {
                events.join(", ")
            },
            one(self.channel.map(|c| c.to_string())),
            one(self.voice_channel.map(|c| c.to_string())),
            if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(", ")
            },
        )
    }
}

impl Repo {
    /// Every tracked series.
    pub async fn tracked_series(&self) -> Result<Vec<EventSeriesId>, RepoError> {
        self.id_set(schema::EVENT_SERIES, EventSeriesId::parse)
            .await
    }

    /// The tracked events of a series.
    pub async fn series_events(
        &self,
        series: &EventSeriesId,
    ) -> Result<Vec<MeetupEventId>, RepoError> {
        self.id_set(
            &schema::event_series_meetup_events(series),
            MeetupEventId::parse,
        )
        .await
    }

    /// A series' stored type (`None` when absent).
    pub async fn series_type(
        &self,
        series: &EventSeriesId,
    ) -> Result<Option<SeriesType>, RepoError> {
        let key = schema::event_series_type(series);
        parse_at(&key, self.read(&key).await?, SeriesType::parse)
    }

    /// Whether a series is online (`event_series:{}:is_online` is `"true"`; absent or
    /// anything else is "falsy", as the seed says).
    pub async fn series_is_online(&self, series: &EventSeriesId) -> Result<bool, RepoError> {
        let raw = self.read(&schema::event_series_is_online(series)).await?;
        Ok(raw.as_deref() == Some(schema::TRUE))
    }

    /// The text channel of a series.
    pub async fn series_channel(
        &self,
        series: &EventSeriesId,
    ) -> Result<Option<ChannelId>, RepoError> {
        let key = schema::event_series_discord_channel(series);
        channel_id(&key, self.read(&key).await?)
    }

    /// The voice channel of a series.
    pub async fn series_voice_channel(
        &self,
        series: &EventSeriesId,
    ) -> Result<Option<ChannelId>, RepoError> {
        let key = schema::event_series_discord_voice_channel(series);
        channel_id(&key, self.read(&key).await?)
    }

    /// Removes a series and every key that belongs to it (its events and their keys,
    /// its text and voice channel keys, its roles' keys, the set memberships), in one
    /// transaction. Called once the channels and roles are gone from Discord (or were
    /// recorded as orphans).
    pub async fn remove_series(&self, series: &EventSeriesId) -> Result<RemovedSeries, RepoError> {
        let events_key = schema::event_series_meetup_events(series);
        let channel_key = schema::event_series_discord_channel(series);
        let voice_key = schema::event_series_discord_voice_channel(series);
        let keys = [events_key.clone(), channel_key.clone(), voice_key.clone()];
        let k = (&events_key, &channel_key, &voice_key);
        let removed = self
            .transact(&keys, move |mut conn| async move {
                let (events_key, channel_key, voice_key) = k;
                let mut removed = RemovedSeries::default();
                let mut writes = Writes::new();
                for raw in members(&mut conn, events_key).await? {
                    // Only events that point back here are this series' to delete.
                    let Ok(event) = MeetupEventId::parse(&raw) else {
                        continue;
                    };
                    let back_key = schema::meetup_event_event_series(&event);
                    watch_more(&mut conn, &[&back_key]).await?;
                    if get(&mut conn, &back_key).await?.as_deref() != Some(series.as_str()) {
                        continue;
                    }
                    event_delete_writes(&mut writes, &event);
                    removed.events.push(event);
                }
                writes
                    .del(events_key)
                    .del(channel_key)
                    .del(voice_key)
                    .del(&schema::event_series_type(series))
                    .del(&schema::event_series_is_online(series))
                    .srem(schema::EVENT_SERIES, series.as_str());
                let channel = channel_id(channel_key, get(&mut conn, channel_key).await?);
                if let Ok(Some(channel)) = channel {
                    let back_key = schema::discord_channel_event_series(channel);
                    let guest_key = schema::discord_channel_discord_role(channel);
                    let host_key = schema::discord_channel_discord_host_role(channel);
                    watch_more(&mut conn, &[&back_key, &guest_key, &host_key]).await?;
                    if get(&mut conn, &back_key).await?.as_deref() == Some(series.as_str()) {
                        removed.channel = Some(channel);
                        let guest = role_id(&guest_key, get(&mut conn, &guest_key).await?);
                        let host = role_id(&host_key, get(&mut conn, &host_key).await?);
                        removed.guest_role = guest.ok().flatten();
                        removed.host_role = host.ok().flatten();
                        // A role's own key goes only if it points back at this channel.
                        let guest_back =
                            removed.guest_role.map(schema::discord_role_discord_channel);
                        let host_back = removed
                            .host_role
                            .map(schema::discord_host_role_discord_channel);
                        let mut owned = [removed.guest_role, removed.host_role];
                        for (slot, back) in owned.iter_mut().zip([guest_back, host_back]) {
                            let Some(back) = back else { continue };
                            watch_more(&mut conn, &[&back]).await?;
                            let points_back = get(&mut conn, &back).await?.as_deref()
                                == Some(channel.get().to_string().as_str());
                            if !points_back {
                                *slot = None;
                            }
                        }
                        let [guest_owned, host_owned] = owned;
                        channel_delete_writes(&mut writes, channel, guest_owned, host_owned);
                        writes
                            .srem(schema::CLOSED_CHANNELS, channel.get())
                            .srem(schema::UNDELETABLE_CHANNELS, channel.get());
                        for role in [removed.guest_role, removed.host_role]
                            .into_iter()
                            .flatten()
                        {
                            writes.srem(schema::UNDELETABLE_ROLES, role.get());
                        }
                    }
                }
                let voice = channel_id(voice_key, get(&mut conn, voice_key).await?);
                if let Ok(Some(voice)) = voice {
                    let back_key = schema::discord_voice_channel_event_series(voice);
                    watch_more(&mut conn, &[&back_key]).await?;
                    if get(&mut conn, &back_key).await?.as_deref() == Some(series.as_str()) {
                        removed.voice_channel = Some(voice);
                        writes
                            .del(&back_key)
                            .del(&schema::discord_voice_channel_deletion_time(voice))
                            .srem(schema::DISCORD_VOICE_CHANNELS, voice.get())
                            .srem(schema::CLOSED_CHANNELS, voice.get())
                            .srem(schema::UNDELETABLE_CHANNELS, voice.get());
                    }
                }
                Ok((writes, Ok(removed)))
            })
            .await?;
        tracing::info!(%series, %removed, "series removed");
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_series_reads_as_ids_in_logs() {
        let removed = RemovedSeries {
            events: vec![
                MeetupEventId::parse("abc12").expect("id"),
                MeetupEventId::parse("def34").expect("id"),
            ],
            channel: Some(ChannelId::new(4)),
            voice_channel: None,
            guest_role: Some(RoleId::new(5)),
            host_role: Some(RoleId::new(6)),
        };
        assert_eq!(
            removed.to_string(),
            "events abc12, def34; channel 4; voice channel none; roles 5, 6"
        );
        assert_eq!(
            RemovedSeries::default().to_string(),
            "events none; channel none; voice channel none; roles none"
        );
    }
}
