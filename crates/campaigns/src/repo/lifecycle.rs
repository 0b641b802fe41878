//! A game channel's lifecycle: its expiration time, the last expiration reminder, a
//! snooze, and the scheduled deletion of the channel and its series' voice channel.
//! The rules are [`crate::domain`]'s; this file stores what they decide.

use chrono::{DateTime, Utc};
use discord::model::ChannelId;
use store::{RedisConn, StoreError, Writes};

use super::{
    Repo, RepoError, channel_id, corrupt, get, refuse, rfc3339, role_id, series_id, time,
    watch_more,
};
use crate::domain::{self, ChannelLifecycle, SeriesType};
use crate::schema;

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
