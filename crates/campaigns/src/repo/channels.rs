//! A series' bot-controlled text and voice channel (`event_series:{}:discord_channel`
//! and `:discord_voice_channel` with their inverses and sets) and a game channel's
//! guest and host roles (`discord_channel:{}:discord_role` and `:discord_host_role`
//! with their inverses and sets).

use discord::model::{ChannelId, RoleId};
use store::Writes;

use super::{Repo, RepoError, channel_id, get, refuse, role_id, series_id};
use crate::domain::EventSeriesId;
use crate::schema;

/// What [`Repo::register_channel`] and its siblings did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Registered,
    /// Exactly this relation was already stored.
    AlreadyRegistered,
}

/// A series' two kinds of channel.
#[derive(Debug, Clone, Copy)]
enum SeriesChannel {
    Text,
    Voice,
}

impl SeriesChannel {
    fn name(self) -> &'static str {
        match self {
            SeriesChannel::Text => "text channel",
            SeriesChannel::Voice => "voice channel",
        }
    }
}

impl Repo {
    /// The series a game text channel belongs to.
    pub async fn channel_series(
        &self,
        channel: ChannelId,
    ) -> Result<Option<EventSeriesId>, RepoError> {
        let key = schema::discord_channel_event_series(channel);
        series_id(&key, self.read(&key).await?)
    }

    /// The series a voice channel belongs to.
    pub async fn voice_channel_series(
        &self,
        channel: ChannelId,
    ) -> Result<Option<EventSeriesId>, RepoError> {
        let key = schema::discord_voice_channel_event_series(channel);
        series_id(&key, self.read(&key).await?)
    }

    /// A channel's guest and host roles.
    pub async fn channel_roles(
        &self,
        channel: ChannelId,
    ) -> Result<(Option<RoleId>, Option<RoleId>), RepoError> {
        let guest_key = schema::discord_channel_discord_role(channel);
        let host_key = schema::discord_channel_discord_host_role(channel);
        Ok((
            role_id(&guest_key, self.read(&guest_key).await?)?,
            role_id(&host_key, self.read(&host_key).await?)?,
        ))
    }

    /// Every game text channel.
    pub async fn game_channels(&self) -> Result<Vec<ChannelId>, RepoError> {
        self.snowflake_set(schema::DISCORD_CHANNELS).await
    }

    /// Every bot-controlled voice channel.
    pub async fn voice_channels(&self) -> Result<Vec<ChannelId>, RepoError> {
        self.snowflake_set(schema::DISCORD_VOICE_CHANNELS).await
    }

    /// Records a series' text channel: both 1:1 keys and `discord_channels`, in one
    /// transaction. Refused when the series is not tracked (it was deleted meanwhile),
    /// already has another channel (a concurrent sync won: delete the channel just
    /// created) or the channel belongs to another series.
    pub async fn register_channel(
        &self,
        series: &EventSeriesId,
        channel: ChannelId,
    ) -> Result<Registration, RepoError> {
        self.register_series_channel(series, channel, SeriesChannel::Text)
            .await
    }

    /// Records a series' voice channel: both 1:1 keys and `discord_voice_channels`, in
    /// one transaction; refused like [`Repo::register_channel`].
    pub async fn register_voice_channel(
        &self,
        series: &EventSeriesId,
        channel: ChannelId,
    ) -> Result<Registration, RepoError> {
        self.register_series_channel(series, channel, SeriesChannel::Voice)
            .await
    }

    async fn register_series_channel(
        &self,
        series: &EventSeriesId,
        channel: ChannelId,
        kind: SeriesChannel,
    ) -> Result<Registration, RepoError> {
        let (forward, backward, set) = match kind {
            SeriesChannel::Text => (
                schema::event_series_discord_channel(series),
                schema::discord_channel_event_series(channel),
                schema::DISCORD_CHANNELS,
            ),
            SeriesChannel::Voice => (
                schema::event_series_discord_voice_channel(series),
                schema::discord_voice_channel_event_series(channel),
                schema::DISCORD_VOICE_CHANNELS,
            ),
        };
        let keys = [
            schema::EVENT_SERIES.to_owned(),
            forward.clone(),
            backward.clone(),
        ];
        let (forward, backward) = (&forward, &backward);
        let outcome = self
            .transact(&keys, move |mut conn| async move {
                let tracked: bool = redis::cmd("SISMEMBER")
                    .arg(schema::EVENT_SERIES)
                    .arg(series.as_str())
                    .query_async(&mut conn)
                    .await?;
                if !tracked {
                    return refuse(RepoError::UnknownSeries(series.clone()));
                }
                let existing = match channel_id(forward, get(&mut conn, forward).await?) {
                    Ok(v) => v,
                    Err(e) => return refuse(e),
                };
                let owner = match series_id(backward, get(&mut conn, backward).await?) {
                    Ok(v) => v,
                    Err(e) => return refuse(e),
                };
                if let Some(existing) = existing.filter(|c| *c != channel) {
                    return refuse(RepoError::SeriesHasChannel {
                        series: series.clone(),
                        what: kind.name(),
                        existing,
                    });
                }
                if let Some(owner) = owner.clone().filter(|s| s != series) {
                    return refuse(RepoError::ChannelTaken {
                        channel,
                        series: owner,
                    });
                }
                let outcome = if existing.is_some() && owner.is_some() {
                    Registration::AlreadyRegistered
                } else {
                    Registration::Registered
                };
                let mut writes = Writes::new();
                writes
                    .set(forward, channel.get())
                    .set(backward, series.as_str())
                    .sadd(set, channel.get());
                Ok((writes, Ok(outcome)))
            })
            .await?;
        tracing::info!(%series, %channel, kind = kind.name(), ?outcome, "series channel registered");
        Ok(outcome)
    }

    /// Records a game channel's guest and host roles: the four 1:1 keys and both role
    /// sets, in one transaction. Refused when the channel is not a game channel, already
    /// has other roles, or a role belongs to another channel.
    pub async fn register_roles(
        &self,
        channel: ChannelId,
        guest: RoleId,
        host: RoleId,
    ) -> Result<Registration, RepoError> {
        if guest == host {
            return Err(RepoError::SameRole(guest));
        }
        let channel_series = schema::discord_channel_event_series(channel);
        let channel_guest = schema::discord_channel_discord_role(channel);
        let channel_host = schema::discord_channel_discord_host_role(channel);
        let guest_channel = schema::discord_role_discord_channel(guest);
        let host_channel = schema::discord_host_role_discord_channel(host);
        let keys = [
            channel_series.clone(),
            channel_guest.clone(),
            channel_host.clone(),
            guest_channel.clone(),
            host_channel.clone(),
        ];
        let k = (
            &channel_series,
            &channel_guest,
            &channel_host,
            &guest_channel,
            &host_channel,
        );
        let outcome = self
            .transact(&keys, move |mut conn| async move {
                let (channel_series, channel_guest, channel_host, guest_channel, host_channel) = k;
                if get(&mut conn, channel_series).await?.is_none() {
                    return refuse(RepoError::UnknownChannel(channel));
                }
                let mut same = 0;
                for (key, role, what) in [
                    (channel_guest, guest, "guest role"),
                    (channel_host, host, "host role"),
                ] {
                    match role_id(key, get(&mut conn, key).await?) {
                        Err(e) => return refuse(e),
                        Ok(Some(existing)) if existing != role => {
                            return refuse(RepoError::ChannelHasRole {
                                channel,
                                what,
                                existing,
                            });
                        }
                        Ok(Some(_)) => same += 1,
                        Ok(None) => {}
                    }
                }
                for (key, role) in [(guest_channel, guest), (host_channel, host)] {
                    match channel_id(key, get(&mut conn, key).await?) {
                        Err(e) => return refuse(e),
                        Ok(Some(owner)) if owner != channel => {
                            return refuse(RepoError::RoleTaken {
                                role,
                                channel: owner,
                            });
                        }
                        Ok(Some(_)) => same += 1,
                        Ok(None) => {}
                    }
                }
                let mut writes = Writes::new();
                writes
                    .set(channel_guest, guest.get())
                    .set(guest_channel, channel.get())
                    .set(channel_host, host.get())
                    .set(host_channel, channel.get())
                    .sadd(schema::DISCORD_ROLES, guest.get())
                    .sadd(schema::DISCORD_HOST_ROLES, host.get());
                let outcome = if same == 4 {
                    Registration::AlreadyRegistered
                } else {
                    Registration::Registered
                };
                Ok((writes, Ok(outcome)))
            })
            .await?;
        tracing::info!(%channel, %guest, %host, ?outcome, "channel roles registered");
        Ok(outcome)
    }
}

/// Every key of a game text channel, its membership in `discord_channels`, and the
/// keys and set memberships of the roles it owns.
pub(super) fn channel_delete_writes(
    writes: &mut Writes,
    channel: ChannelId,
    guest: Option<RoleId>,
    host: Option<RoleId>,
) {
    writes
        .del(&schema::discord_channel_event_series(channel))
        .del(&schema::discord_channel_discord_role(channel))
        .del(&schema::discord_channel_discord_host_role(channel))
        .del(&schema::discord_channel_removed_hosts(channel))
        .del(&schema::discord_channel_removed_users(channel))
        .del(&schema::discord_channel_expiration_time(channel))
        .del(&schema::discord_channel_last_expiration_reminder_time(
            channel,
        ))
        .del(&schema::discord_channel_snooze_until(channel))
        .del(&schema::discord_channel_deletion_time(channel))
        .del(&schema::synced_guests(channel))
        .del(&schema::welcomed(channel))
        .srem(schema::DISCORD_CHANNELS, channel.get());
    if let Some(guest) = guest {
        writes
            .del(&schema::discord_role_discord_channel(guest))
            .srem(schema::DISCORD_ROLES, guest.get());
    }
    if let Some(host) = host {
        writes
            .del(&schema::discord_host_role_discord_channel(host))
            .srem(schema::DISCORD_HOST_ROLES, host.get());
    }
}
