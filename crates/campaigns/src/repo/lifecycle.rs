//! A game channel's lifecycle: its expiration time, the last expiration reminder, a
//! snooze, and the scheduled deletion of the channel and its series' voice channel.
//! The rules are [`crate::domain`]'s; this file stores what they decide.

use chrono::{DateTime, Utc};
use discord::model::ChannelId;
use store::{RedisConn, StoreError, Writes};

use super::channels::channel_delete_writes;
use super::{
    Repo, RepoError, channel_id, corrupt, get, refuse, rfc3339, role_id, series_id, time,
    watch_more,
};
use crate::domain::{self, ChannelLifecycle, EventSeriesId, SeriesType};
use crate::schema;

/// What of a game's Discord objects is gone (Discord no longer has it, or it waits in
/// the `orphaned_*` sets to be deleted), for [`Repo::forget_gone_objects`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GoneObjects {
    /// The text channel: every key of the channel goes, and with them its roles'
    /// relations (they hang on the channel), so the series has no channel or roles.
    pub text: bool,
    /// A guest or host role: both relations go, so the series has no roles.
    pub roles: bool,
    /// The voice channel: its relation goes.
    pub voice: bool,
}

impl Repo {
    /// What is stored about a game channel's lifecycle; `None` when the channel is not a
    /// game channel. A series without a stored type counts as an adventure.
    pub async fn channel_lifecycle(
        &self,
        channel: ChannelId,
    ) -> Result<Option<ChannelLifecycle>, RepoError> {
        let Some(series) = self.channel_series(channel).await? else {
            return Ok(None);
        };
        let keys = [
            schema::discord_channel_expiration_time(channel),
            schema::discord_channel_last_expiration_reminder_time(channel),
            schema::discord_channel_snooze_until(channel),
            schema::discord_channel_deletion_time(channel),
        ];
        let raw: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.redis.conn())
            .await?;
        let mut times = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(raw) {
            times.push(time(key, value)?);
        }
        let [expiration, last_reminder, snooze_until, deletion] = times[..] else {
            return Err(corrupt(
                &keys[0],
                "",
                "MGET answered the wrong number of values",
            ));
        };
        Ok(Some(ChannelLifecycle {
            series_type: self
                .series_type(&series)
                .await?
                .unwrap_or(SeriesType::Adventure),
            expiration,
            last_reminder,
            snooze_until,
            deletion,
        }))
    }

    /// Sets a game channel's expiration time. A changed expiration clears a scheduled
    /// deletion of the channel and of its series' voice channel, in the same step (a new
    /// session was scheduled: the channel is needed again). Returns whether it changed;
    /// refused for a channel that is not a game channel.
    pub async fn set_expiration(
        &self,
        channel: ChannelId,
        expiration: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        let expiration_key = schema::discord_channel_expiration_time(channel);
        let series_key = schema::discord_channel_event_series(channel);
        let keys = [expiration_key.clone(), series_key.clone()];
        let k = (&expiration_key, &series_key);
        let changed = self
            .transact(&keys, move |mut conn| async move {
                let (expiration_key, series_key) = k;
                if get(&mut conn, series_key).await?.is_none() {
                    return refuse(RepoError::UnknownChannel(channel));
                }
                let current = time(expiration_key, get(&mut conn, expiration_key).await?);
                if matches!(current, Ok(Some(t)) if t == expiration) {
                    return Ok((Writes::new(), Ok(false)));
                }
                let mut writes = Writes::new();
                writes
                    .set(expiration_key, rfc3339(expiration))
                    .del(&schema::discord_channel_deletion_time(channel))
                    .srem(schema::UNDELETABLE_CHANNELS, channel.get());
                if let Some(voice) = series_voice_channel(&mut conn, series_key).await? {
                    writes
                        .del(&schema::discord_voice_channel_deletion_time(voice))
                        .srem(schema::UNDELETABLE_CHANNELS, voice.get());
                }
                for role_key in [
                    schema::discord_channel_discord_role(channel),
                    schema::discord_channel_discord_host_role(channel),
                ] {
                    if let Ok(Some(role)) = role_id(&role_key, get(&mut conn, &role_key).await?) {
                        writes.srem(schema::UNDELETABLE_ROLES, role.get());
                    }
                }
                Ok((writes, Ok(true)))
            })
            .await?;
        if changed {
            tracing::info!(%channel, %expiration, "channel expiration set");
        }
        Ok(changed)
    }

    /// Records that the channel was reminded of its expiration.
    pub async fn record_reminder(
        &self,
        channel: ChannelId,
        at: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.set(
            &schema::discord_channel_last_expiration_reminder_time(channel),
            rfc3339(at),
        );
        self.apply(&writes).await
    }

    /// Snoozes a channel's reminders until `until`; `None` clears the snooze.
    pub async fn set_snooze(
        &self,
        channel: ChannelId,
        until: Option<DateTime<Utc>>,
    ) -> Result<(), RepoError> {
        let key = schema::discord_channel_snooze_until(channel);
        let mut writes = Writes::new();
        match until {
            Some(t) => writes.set(&key, rfc3339(t)),
            None => writes.del(&key),
        };
        self.apply(&writes).await
    }

    /// `end adventure`: schedules the deletion of a game channel and its series' voice
    /// channel at now + 8 h, in one transaction, if the rules allow it now
    /// ([`domain::end_adventure`], decided on the stored values under `WATCH`, so a sync
    /// that moves the expiration meanwhile makes it decide again). Returns the deletion
    /// time.
    pub async fn end_adventure(
        &self,
        channel: ChannelId,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, RepoError> {
        let expiration_key = schema::discord_channel_expiration_time(channel);
        let deletion_key = schema::discord_channel_deletion_time(channel);
        let series_key = schema::discord_channel_event_series(channel);
        let keys = [
            expiration_key.clone(),
            deletion_key.clone(),
            series_key.clone(),
        ];
        let k = (&expiration_key, &deletion_key, &series_key);
        let deletion = self
            .transact(&keys, move |mut conn| async move {
                let (expiration_key, deletion_key, series_key) = k;
                if get(&mut conn, series_key).await?.is_none() {
                    return refuse(RepoError::UnknownChannel(channel));
                }
                let expiration = time(expiration_key, get(&mut conn, expiration_key).await?);
                let scheduled = time(deletion_key, get(&mut conn, deletion_key).await?);
                let (expiration, scheduled) = match (expiration, scheduled) {
                    (Ok(e), Ok(s)) => (e, s),
                    (Err(e), _) | (_, Err(e)) => return refuse(e),
                };
                let at = match domain::end_adventure(now, expiration, scheduled) {
                    Ok(at) => at,
                    Err(e) => return refuse(e.into()),
                };
                let mut writes = Writes::new();
                writes.set(deletion_key, rfc3339(at));
                if let Some(voice) = series_voice_channel(&mut conn, series_key).await? {
                    writes.set(
                        &schema::discord_voice_channel_deletion_time(voice),
                        rfc3339(at),
                    );
                }
                Ok((writes, Ok(at)))
            })
            .await?;
        tracing::info!(%channel, %deletion, "channel deletion scheduled");
        Ok(deletion)
    }

    /// Forgets what `gone` names of the game in `channel` (series `series`), in one
    /// transaction, so the Discord sync makes them again as for a new game: the end of
    /// the game had begun (some of it deleted, the rest held) when a new session came.
    /// Returns the roles whose relations went (one may still be on Discord, no longer
    /// the game's). Nothing is written when `channel` is no longer the series' channel.
    pub async fn forget_gone_objects(
        &self,
        series: &EventSeriesId,
        channel: ChannelId,
        gone: GoneObjects,
    ) -> Result<Vec<discord::model::RoleId>, RepoError> {
        let channel_key = schema::event_series_discord_channel(series);
        let back_key = schema::discord_channel_event_series(channel);
        let guest_key = schema::discord_channel_discord_role(channel);
        let host_key = schema::discord_channel_discord_host_role(channel);
        let voice_key = schema::event_series_discord_voice_channel(series);
        let keys = [
            channel_key.clone(),
            back_key.clone(),
            guest_key.clone(),
            host_key.clone(),
            voice_key.clone(),
        ];
        let k = (&channel_key, &back_key, &guest_key, &host_key, &voice_key);
        self.transact(&keys, move |mut conn| async move {
            let (channel_key, back_key, guest_key, host_key, voice_key) = k;
            let ours = get(&mut conn, channel_key).await?.as_deref()
                == Some(channel.get().to_string().as_str())
                && get(&mut conn, back_key).await?.as_deref() == Some(series.as_str());
            if !ours {
                return Ok((Writes::new(), Ok(Vec::new())));
            }
            let guest = role_id(guest_key, get(&mut conn, guest_key).await?)
                .ok()
                .flatten();
            let host = role_id(host_key, get(&mut conn, host_key).await?)
                .ok()
                .flatten();
            let mut writes = Writes::new();
            let mut forgotten = Vec::new();
            if gone.text || gone.roles {
                forgotten.extend(guest.into_iter().chain(host));
                for role in &forgotten {
                    writes.srem(schema::UNDELETABLE_ROLES, role.get());
                }
            }
            if gone.text {
                channel_delete_writes(&mut writes, channel, guest, host);
                writes
                    .del(channel_key)
                    .srem(schema::CLOSED_CHANNELS, channel.get())
                    .srem(schema::UNDELETABLE_CHANNELS, channel.get());
            } else if gone.roles {
                writes.del(guest_key).del(host_key);
                // Who the sync gave the old guest role: the new one starts afresh.
                writes.del(&schema::synced_guests(channel));
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
            if gone.voice
                && let Ok(Some(voice)) = channel_id(voice_key, get(&mut conn, voice_key).await?)
            {
                writes
                    .del(voice_key)
                    .del(&schema::discord_voice_channel_event_series(voice))
                    .del(&schema::discord_voice_channel_deletion_time(voice))
                    .srem(schema::DISCORD_VOICE_CHANNELS, voice.get())
                    .srem(schema::CLOSED_CHANNELS, voice.get())
                    .srem(schema::UNDELETABLE_CHANNELS, voice.get());
            }
            Ok((writes, Ok(forgotten)))
        })
        .await
    }

    /// When a voice channel is to be deleted.
    pub async fn voice_channel_deletion_time(
        &self,
        channel: ChannelId,
    ) -> Result<Option<DateTime<Utc>>, RepoError> {
        let key = schema::discord_voice_channel_deletion_time(channel);
        time(&key, self.read(&key).await?)
    }
}

/// The voice channel of the series named at `series_key`, `WATCH`ed from here on; a
/// missing or unreadable relation is no voice channel.
async fn series_voice_channel(
    conn: &mut RedisConn,
    series_key: &str,
) -> Result<Option<ChannelId>, StoreError> {
    let Ok(Some(series)) = series_id(series_key, get(conn, series_key).await?) else {
        return Ok(None);
    };
    let voice_key = schema::event_series_discord_voice_channel(&series);
    watch_more(conn, &[&voice_key]).await?;
    Ok(channel_id(&voice_key, get(conn, &voice_key).await?)
        .ok()
        .flatten())
}
