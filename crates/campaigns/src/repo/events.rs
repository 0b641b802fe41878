//! Meetup events: the `meetup_event:{}` hash, its hosts and "yes" RSVPs, the event ↔
//! series relation both ways and the `meetup_events` / `event_series` sets; and what
//! the Meetup sync compares Meetup's answer with ([`Repo::sync_view`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use store::Writes;

use super::{
    Repo, RepoError, corrupt, get, members, parse_at, refuse, rfc3339, sadd_all, series_id, time,
    watch_more,
};
use crate::domain::{EventSeriesId, MeetupEventId, MeetupUserId, SeriesType};
use crate::schema;

/// A Meetup event as stored in the `meetup_event:{}` hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetupEvent {
    pub id: MeetupEventId,
    pub name: String,
    pub time: DateTime<Utc>,
    pub link: String,
    pub urlname: String,
    /// The optional `is_online` field; `None` removes it.
    pub is_online: Option<bool>,
}

/// Everything one sync learned about an event, written in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventUpsert {
    pub event: MeetupEvent,
    pub series: EventSeriesId,
    /// The series' type to store (the caller decides it with
    /// [`SeriesType::after_sync`]); `None` leaves it as it is.
    pub series_type: Option<SeriesType>,
    /// `[online]` was in the description: the series is marked online. Never unmarked
    /// by a sync (a later session without the shortcode keeps the voice channel).
    pub series_online: bool,
    /// The event's hosts; replaces the stored set.
    pub hosts: Vec<MeetupUserId>,
    /// The "yes" RSVPs, when they were fetched (only for a series' next event);
    /// `None` leaves the stored set as it is.
    pub rsvps: Option<Vec<MeetupUserId>>,
}

/// A tracked event as the Meetup sync sees it ([`Repo::sync_view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedEvent {
    /// The `urlname` of its Meetup group.
    pub urlname: String,
    /// When it starts.
    pub time: DateTime<Utc>,
    /// Its series (`None` when the relation is missing).
    pub series: Option<EventSeriesId>,
}

/// A tracked series as the Meetup sync sees it ([`Repo::sync_view`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackedSeries {
    /// The stored type, if any.
    pub series_type: Option<SeriesType>,
    /// Its tracked events (`event_series:{}:meetup_events`).
    pub events: BTreeSet<MeetupEventId>,
}

/// Every tracked event and series, read for one sync ([`Repo::sync_view`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncView {
    pub events: BTreeMap<MeetupEventId, TrackedEvent>,
    pub series: BTreeMap<EventSeriesId, TrackedSeries>,
    /// Deletions the previous run held back for this one to confirm
    /// ([`Repo::set_pending_deletions`]).
    pub pending_deletions: BTreeSet<MeetupEventId>,
    /// RSVP removals the previous run held back for this one to confirm, per event
    /// ([`Repo::set_pending_rsvp_removals`]).
    pub pending_rsvp_removals: BTreeMap<MeetupEventId, BTreeSet<MeetupUserId>>,
    /// What could not be read and was left out, for the log.
    pub unreadable: Vec<String>,
}

/// What [`Repo::delete_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDeletion {
    /// The series the event belonged to.
    pub series: Option<EventSeriesId>,
    /// The series went with its last event (it had no channel; a series with a
    /// channel stays until the channel is deleted).
    pub series_removed: bool,
}

impl Repo {
    /// Stores an event with its hosts, RSVPs and series membership (both directions,
    /// and the `meetup_events` / `event_series` sets) in one transaction.
    ///
    /// An event that already belongs to another series is refused: the original bot
    /// skipped such an event too, because moving it would silently change who may see
    /// which channel.
    pub async fn upsert_event(&self, upsert: &EventUpsert) -> Result<(), RepoError> {
        let id = &upsert.event.id;
        let series_key = schema::meetup_event_event_series(id);
        let keys = [series_key.clone()];
        let series_key = &series_key;
        self.transact(&keys, move |mut conn| async move {
            let current = match series_id(series_key, get(&mut conn, series_key).await?) {
                Ok(v) => v,
                Err(e) => return refuse(e),
            };
            if let Some(current) = current.filter(|s| *s != upsert.series) {
                return refuse(RepoError::EventInOtherSeries {
                    event: upsert.event.id.clone(),
                    current,
                    requested: upsert.series.clone(),
                });
            }
            Ok((event_writes(upsert), Ok(())))
        })
        .await?;
        tracing::debug!(event = %id, series = %upsert.series, "event stored");
        Ok(())
    }

    /// An event's hash, `None` when it is not stored.
    pub async fn event(&self, id: &MeetupEventId) -> Result<Option<MeetupEvent>, RepoError> {
        let key = schema::meetup_event(id);
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.redis.conn())
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| -> Result<String, RepoError> {
            fields
                .get(name)
                .cloned()
                .ok_or_else(|| corrupt(&key, "", format!("the field `{name}` is missing")))
        };
        let raw_time = field(schema::EVENT_TIME)?;
        let time = time(&key, Some(raw_time))?.ok_or_else(|| corrupt(&key, "", "no time"))?;
        let is_online = match fields.get(schema::EVENT_IS_ONLINE).map(String::as_str) {
            None => None,
            Some(schema::TRUE) => Some(true),
            Some(schema::FALSE) => Some(false),
            Some(other) => {
                let reason = format!("`{}` is not true/false", schema::EVENT_IS_ONLINE);
                return Err(corrupt(&key, other, reason));
            }
        };
        Ok(Some(MeetupEvent {
            id: id.clone(),
            name: field(schema::EVENT_NAME)?,
            time,
            link: field(schema::EVENT_LINK)?,
            urlname: field(schema::EVENT_URLNAME)?,
            is_online,
        }))
    }

    /// The series an event belongs to.
    pub async fn series_of_event(
        &self,
        id: &MeetupEventId,
    ) -> Result<Option<EventSeriesId>, RepoError> {
        let key = schema::meetup_event_event_series(id);
        series_id(&key, self.read(&key).await?)
    }

    /// An event's hosts.
    pub async fn event_hosts(&self, id: &MeetupEventId) -> Result<Vec<MeetupUserId>, RepoError> {
        self.meetup_user_set(&schema::meetup_event_meetup_hosts(id))
            .await
    }

    /// An event's "yes" RSVPs.
    pub async fn event_users(&self, id: &MeetupEventId) -> Result<Vec<MeetupUserId>, RepoError> {
        self.meetup_user_set(&schema::meetup_event_meetup_users(id))
            .await
    }

    /// Every tracked event.
    pub async fn tracked_events(&self) -> Result<Vec<MeetupEventId>, RepoError> {
        self.id_set(schema::MEETUP_EVENTS, MeetupEventId::parse)
            .await
    }

    /// What the Meetup sync compares Meetup's answer with: every tracked event with its
    /// group, time and series, and every tracked series with its type and events.
    ///
    /// Lenient on purpose: an id or value that cannot be read is left out of the view
    /// and named in [`SyncView::unreadable`] instead of failing, so one corrupt key
    /// never stops every sync, and the sync never deletes an event it could not read
    /// (`tavern check` reports such keys). Not a snapshot: the sync's writes are each
    /// checked again in their own transaction.
    pub async fn sync_view(&self) -> Result<SyncView, RepoError> {
        let mut conn = self.redis.conn();
        let mut view = SyncView::default();
        for raw in members(&mut conn, schema::MEETUP_EVENTS).await? {
            let Ok(id) = MeetupEventId::parse(&raw) else {
                view.unreadable
                    .push(format!("`{}` member `{raw}`", schema::MEETUP_EVENTS));
                continue;
            };
            let hash = schema::meetup_event(&id);
            let (urlname, raw_time): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(&hash)
                .arg(schema::EVENT_URLNAME)
                .arg(schema::EVENT_TIME)
                .query_async(&mut conn)
                .await?;
            let series_key = schema::meetup_event_event_series(&id);
            let series = series_id(&series_key, get(&mut conn, &series_key).await?);
            let time = time(&hash, raw_time);
            let (Some(urlname), Ok(Some(time)), Ok(series)) = (urlname, time, series) else {
                view.unreadable.push(format!("event `{id}`"));
                continue;
            };
            view.events.insert(
                id,
                TrackedEvent {
                    urlname,
                    time,
                    series,
                },
            );
        }
        for raw in members(&mut conn, schema::EVENT_SERIES).await? {
            let Ok(id) = EventSeriesId::parse(&raw) else {
                view.unreadable
                    .push(format!("`{}` member `{raw}`", schema::EVENT_SERIES));
                continue;
            };
            let type_key = schema::event_series_type(&id);
            let series_type = parse_at(
                &type_key,
                get(&mut conn, &type_key).await?,
                SeriesType::parse,
            );
            let mut events = BTreeSet::new();
            let events_key = schema::event_series_meetup_events(&id);
            let mut readable = true;
            for raw in members(&mut conn, &events_key).await? {
                match MeetupEventId::parse(&raw) {
                    Ok(event) => {
                        events.insert(event);
                    }
                    Err(_) => readable = false,
                }
            }
            let (true, Ok(series_type)) = (readable, series_type) else {
                view.unreadable.push(format!("event series `{id}`"));
                continue;
            };
            view.series.insert(
                id,
                TrackedSeries {
                    series_type,
                    events,
                },
            );
        }
        for raw in members(&mut conn, schema::PENDING_DELETIONS).await? {
            match MeetupEventId::parse(&raw) {
                Ok(id) => {
                    view.pending_deletions.insert(id);
                }
                // Left out: an unreadable member never confirms a deletion.
                Err(_) => view
                    .unreadable
                    .push(format!("`{}` member `{raw}`", schema::PENDING_DELETIONS)),
            }
        }
        for raw in members(&mut conn, schema::PENDING_RSVP_REMOVALS).await? {
            match schema::parse_pending_rsvp_removal(&raw) {
                Some((event, user)) => {
                    view.pending_rsvp_removals
                        .entry(event)
                        .or_default()
                        .insert(user);
                }
                // Left out: an unreadable member never confirms a removal.
                None => view.unreadable.push(format!(
                    "`{}` member `{raw}`",
                    schema::PENDING_RSVP_REMOVALS
                )),
            }
        }
        Ok(view)
    }

    /// The stored "yes" RSVPs of `events`, for the sync to compare Meetup's answer
    /// with. Lenient like [`Repo::sync_view`]: a member that does not read is left
    /// out (the sync's write replaces the set anyway).
    pub async fn stored_rsvps(
        &self,
        events: &[MeetupEventId],
    ) -> Result<BTreeMap<MeetupEventId, BTreeSet<MeetupUserId>>, RepoError> {
        let mut conn = self.redis.conn();
        let mut out = BTreeMap::new();
        for event in events {
            let users = members(&mut conn, &schema::meetup_event_meetup_users(event))
                .await?
                .iter()
                .filter_map(|raw| MeetupUserId::parse(raw).ok())
                .collect();
            out.insert(event.clone(), users);
        }
        Ok(out)
    }

    /// Records the RSVP removals a sync held back for the next run to confirm,
    /// replacing the previous ones (none: the record goes). One `MULTI`/`EXEC`.
    pub async fn set_pending_rsvp_removals(
        &self,
        removals: &[(MeetupEventId, MeetupUserId)],
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.del(schema::PENDING_RSVP_REMOVALS);
        if !removals.is_empty() {
            writes.sadd(
                schema::PENDING_RSVP_REMOVALS,
                removals
                    .iter()
                    .map(|(event, user)| schema::pending_rsvp_removal(event, *user))
                    .collect::<Vec<_>>(),
            );
        }
        self.apply(&writes).await
    }

    /// Records the deletions a sync held back for the next run to confirm, replacing
    /// the previous ones (none: the record goes). One `MULTI`/`EXEC`.
    pub async fn set_pending_deletions(&self, events: &[MeetupEventId]) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.del(schema::PENDING_DELETIONS);
        if !events.is_empty() {
            writes.sadd(
                schema::PENDING_DELETIONS,
                events.iter().map(MeetupEventId::as_str).collect::<Vec<_>>(),
            );
        }
        self.apply(&writes).await
    }

    /// Deletes an event with all its keys and relations, in one transaction. A series
    /// left without events and without a channel goes too (nothing on Discord belongs
    /// to it, and no reminder will ever clean it up); a series with a channel stays, so
    /// its channel expires and is reminded and deleted by the lifecycle.
    pub async fn delete_event(&self, id: &MeetupEventId) -> Result<EventDeletion, RepoError> {
        let series_key = schema::meetup_event_event_series(id);
        let keys = [series_key.clone()];
        let series_key = &series_key;
        let deletion = self
            .transact(&keys, move |mut conn| async move {
                let mut writes = Writes::new();
                event_delete_writes(&mut writes, id);
                // A corrupt series id is dropped with the event: it names nothing.
                let Ok(Some(series)) = series_id(series_key, get(&mut conn, series_key).await?)
                else {
                    return Ok((
                        writes,
                        Ok(EventDeletion {
                            series: None,
                            series_removed: false,
                        }),
                    ));
                };
                let events_key = schema::event_series_meetup_events(&series);
                let channel_key = schema::event_series_discord_channel(&series);
                let voice_key = schema::event_series_discord_voice_channel(&series);
                watch_more(&mut conn, &[&events_key, &channel_key, &voice_key]).await?;
                let others = members(&mut conn, &events_key)
                    .await?
                    .into_iter()
                    .filter(|e| e != id.as_str())
                    .count();
                let has_channel = get(&mut conn, &channel_key).await?.is_some()
                    || get(&mut conn, &voice_key).await?.is_some();
                writes.srem(&events_key, id.as_str());
                let series_removed = others == 0 && !has_channel;
                if series_removed {
                    writes
                        .srem(schema::EVENT_SERIES, series.as_str())
                        .del(&events_key)
                        .del(&schema::event_series_type(&series))
                        .del(&schema::event_series_is_online(&series));
                }
                Ok((
                    writes,
                    Ok(EventDeletion {
                        series: Some(series),
                        series_removed,
                    }),
                ))
            })
            .await?;
        tracing::info!(
            event = %id,
            series = deletion.series.as_ref().map(tracing::field::display),
            series_removed = deletion.series_removed,
            "event deleted"
        );
        Ok(deletion)
    }
}

fn event_writes(upsert: &EventUpsert) -> Writes {
    let event = &upsert.event;
    let id = &event.id;
    let hash = schema::meetup_event(id);
    let mut writes = Writes::new();
    writes
        .command("HSET")
        .arg(&hash)
        .arg(schema::EVENT_NAME)
        .arg(&event.name)
        .arg(schema::EVENT_TIME)
        .arg(rfc3339(event.time))
        .arg(schema::EVENT_LINK)
        .arg(&event.link)
        .arg(schema::EVENT_URLNAME)
        .arg(&event.urlname);
    match event.is_online {
        Some(online) => {
            writes.hset(
                &hash,
                schema::EVENT_IS_ONLINE,
                if online { schema::TRUE } else { schema::FALSE },
            );
        }
        None => {
            writes
                .command("HDEL")
                .arg(&hash)
                .arg(schema::EVENT_IS_ONLINE);
        }
    }
    let hosts = schema::meetup_event_meetup_hosts(id);
    writes.del(&hosts);
    sadd_all(&mut writes, &hosts, upsert.hosts.iter().map(|u| u.get()));
    if let Some(rsvps) = &upsert.rsvps {
        let users = schema::meetup_event_meetup_users(id);
        writes.del(&users);
        sadd_all(&mut writes, &users, rsvps.iter().map(|u| u.get()));
    }
    let series = &upsert.series;
    writes
        .set(&schema::meetup_event_event_series(id), series.as_str())
        .sadd(&schema::event_series_meetup_events(series), id.as_str())
        .sadd(schema::MEETUP_EVENTS, id.as_str())
        .sadd(schema::EVENT_SERIES, series.as_str());
    if let Some(series_type) = upsert.series_type {
        writes.set(&schema::event_series_type(series), series_type.as_str());
    }
    if upsert.series_online {
        writes.set(&schema::event_series_is_online(series), schema::TRUE);
    }
    writes
}

/// Every key of an event and its membership in `meetup_events` (not its series'
/// listing, which the caller handles).
pub(super) fn event_delete_writes(writes: &mut Writes, id: &MeetupEventId) {
    writes
        .del(&schema::meetup_event(id))
        .del(&schema::meetup_event_meetup_hosts(id))
        .del(&schema::meetup_event_meetup_users(id))
        .del(&schema::meetup_event_event_series(id))
        .srem(schema::MEETUP_EVENTS, id.as_str());
}
