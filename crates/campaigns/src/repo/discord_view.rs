//! What the Discord step of the sync ([`crate::discord_sync`]) reads from Redis: every
//! tracked series with its events, RSVPs, hosts, channels, roles and manual removals,
//! every link, the orphans and the free-spots message, in a handful of pipelined
//! round trips (one per kind of key, not one per key), and the free-spots message's
//! own record.
//!
//! Lenient like [`Repo::sync_view`]: a value that cannot be read leaves its series out
//! of the view (named in [`DiscordView::unreadable`]) instead of failing the run; the
//! step never acts on a series it could not read, and `tavern check` reports the key.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use discord::model::{ChannelId, MessageId, RoleId, UserId};
use store::Writes;

use super::{Repo, RepoError, channel_id, role_id, time, user_id};
use crate::domain::{self, EventSeriesId, MeetupEventId, MeetupUserId, SeriesType};
use crate::repo::Orphan;
use crate::repo::managed::Newcomers;
use crate::schema;

/// A stored event as the Discord step sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventState {
    pub id: MeetupEventId,
    pub name: String,
    pub time: DateTime<Utc>,
    pub link: String,
    /// Meetup users who RSVP'd yes.
    pub users: BTreeSet<MeetupUserId>,
    pub hosts: BTreeSet<MeetupUserId>,
}

/// A tracked series as the Discord step sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesState {
    pub id: EventSeriesId,
    pub series_type: Option<SeriesType>,
    pub is_online: bool,
    /// Its readable events, oldest first.
    pub events: Vec<EventState>,
    pub channel: Option<ChannelId>,
    pub voice_channel: Option<ChannelId>,
    pub guest_role: Option<RoleId>,
    pub host_role: Option<RoleId>,
    pub removed_users: BTreeSet<UserId>,
    pub removed_hosts: BTreeSet<UserId>,
    /// Who the sync gave the guest role ([`schema::synced_guests`]).
    pub synced_guests: BTreeSet<UserId>,
    /// Who an announcement in the channel already welcomed ([`schema::welcomed`]).
    pub welcomed: Newcomers,
}

#[cfg(test)]
impl SeriesState {
    /// A series `id` with `events` and nothing else known (no type, not online, no
    /// channel, role or removal): the unit tests' starting point.
    pub(crate) fn bare(id: EventSeriesId, events: Vec<EventState>) -> SeriesState {
        SeriesState {
            id,
            series_type: None,
            is_online: false,
            events,
            channel: None,
            voice_channel: None,
            guest_role: None,
            host_role: None,
            removed_users: BTreeSet::new(),
            removed_hosts: BTreeSet::new(),
            synced_guests: BTreeSet::new(),
            welcomed: Newcomers::default(),
        }
    }
}

/// The free-spots message as Tavern last wrote it (Tavern's own key,
/// [`schema::FREE_SPOTS_MESSAGE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSpotsMessage {
    pub channel: ChannelId,
    pub message: MessageId,
    pub content: String,
}

/// Everything the Discord step reads from Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscordView {
    pub series: Vec<SeriesState>,
    /// Every readable link, Meetup user to Discord user.
    pub links: BTreeMap<MeetupUserId, UserId>,
    pub orphans: Vec<Orphan>,
    pub free_spots: Option<FreeSpotsMessage>,
    /// `managed_discord_channels`: the only channels a `[channel]` shortcode may take
    /// over.
    pub managed_channels: BTreeSet<ChannelId>,
    /// Every game's guest and host role (`discord_roles`, `discord_host_roles`), which
    /// a `[role]` shortcode may not hand out.
    pub game_roles: BTreeSet<RoleId>,
    /// The game channels recorded as closed to Tavern ([`schema::CLOSED_CHANNELS`]),
    /// so a run that finds one open again forgets it without asking Redis per series.
    pub closed_channels: BTreeSet<ChannelId>,
    /// The refused shortcodes the organisers were told about
    /// ([`schema::REFUSED_SHORTCODES`]), so a run forgets those that no longer apply.
    pub refused_shortcodes: BTreeSet<String>,
    /// What could not be read and was left out, for the log.
    pub unreadable: Vec<String>,
    /// How many series (or ids in `event_series`) could not be read and were left out.
    pub series_left_out: usize,
    /// Redis round trips the read took (for `tavern bench campaigns`).
    pub round_trips: usize,
}

type Conn = store::RedisConn;

async fn smembers_many(conn: &mut Conn, keys: &[String]) -> Result<Vec<Vec<String>>, RepoError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("SMEMBERS").arg(key);
    }
    Ok(pipe.query_async(conn).await?)
}

async fn get_many(conn: &mut Conn, keys: &[String]) -> Result<Vec<Option<String>>, RepoError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    Ok(redis::cmd("MGET").arg(keys).query_async(conn).await?)
}

fn snowflakes<T>(raw: &[String]) -> Result<BTreeSet<discord::model::Id<T>>, ()> {
    raw.iter()
        .map(|v| domain::parse_snowflake("Discord id", v).map_err(|_| ()))
        .collect()
}

fn meetup_users(raw: &[String]) -> Result<BTreeSet<MeetupUserId>, ()> {
    raw.iter()
        .map(|v| MeetupUserId::parse(v).map_err(|_| ()))
        .collect()
}

impl Repo {
    /// Reads what the Discord step needs (see the module docs).
    pub async fn discord_view(&self) -> Result<DiscordView, RepoError> {
        let mut conn = self.redis.conn();
        let mut view = DiscordView::default();

        let globals = [
            schema::EVENT_SERIES,
            schema::MEETUP_USERS,
            schema::ORPHANED_DISCORD_CHANNELS,
            schema::ORPHANED_DISCORD_VOICE_CHANNELS,
            schema::ORPHANED_DISCORD_ROLES,
            schema::CLOSED_CHANNELS,
            schema::REFUSED_SHORTCODES,
        ]
        .map(str::to_owned);
        let mut sets = smembers_many(&mut conn, &globals).await?.into_iter();
        view.round_trips += 1;
        let (series_raw, users_raw) = (
            sets.next().unwrap_or_default(),
            sets.next().unwrap_or_default(),
        );
        for (make, raw) in [
            Orphan::Channel as fn(ChannelId) -> Orphan,
            Orphan::VoiceChannel,
        ]
        .into_iter()
        .zip([sets.next(), sets.next()])
        {
            for id in raw.unwrap_or_default() {
                match domain::parse_snowflake("channel id", &id) {
                    Ok(c) => view.orphans.push(make(c)),
                    Err(_) => view.unreadable.push(format!("orphan `{id}`")),
                }
            }
        }
        for id in sets.next().unwrap_or_default() {
            match domain::parse_snowflake("role id", &id) {
                Ok(r) => view.orphans.push(Orphan::Role(r)),
                Err(_) => view.unreadable.push(format!("orphan role `{id}`")),
            }
        }
        // A member that is no channel id is left as it is (`tavern check` reports it).
        view.closed_channels = sets
            .next()
            .unwrap_or_default()
            .iter()
            .filter_map(|id| domain::parse_snowflake("channel id", id).ok())
            .collect();
        view.refused_shortcodes = sets.next().unwrap_or_default().into_iter().collect();

        // Links.
        let users: Vec<MeetupUserId> = users_raw
            .iter()
            .filter_map(|raw| MeetupUserId::parse(raw).ok())
            .collect();
        let keys: Vec<String> = users
            .iter()
            .map(|u| schema::meetup_user_discord_user(*u))
            .collect();
        let linked = get_many(&mut conn, &keys).await?;
        view.round_trips += usize::from(!keys.is_empty());
        for ((user, key), raw) in users.into_iter().zip(&keys).zip(linked) {
            match user_id(key, raw) {
                Ok(Some(discord)) => {
                    view.links.insert(user, discord);
                }
                Ok(None) => {}
                Err(_) => view.unreadable.push(format!("`{key}`")),
            }
        }

        // Series keys.
        let series: Vec<EventSeriesId> = series_raw
            .iter()
            .filter_map(|raw| match EventSeriesId::parse(raw) {
                Ok(id) => Some(id),
                Err(_) => {
                    view.series_left_out += 1;
                    view.unreadable.push(format!("series `{raw}`"));
                    None
                }
            })
            .collect();
        let event_keys: Vec<String> = series
            .iter()
            .map(schema::event_series_meetup_events)
            .collect();
        let event_sets = smembers_many(&mut conn, &event_keys).await?;
        let mut series_keys = Vec::with_capacity(series.len() * 4);
        for s in &series {
            series_keys.push(schema::event_series_type(s));
            series_keys.push(schema::event_series_is_online(s));
            series_keys.push(schema::event_series_discord_channel(s));
            series_keys.push(schema::event_series_discord_voice_channel(s));
        }
        let series_values = get_many(&mut conn, &series_keys).await?;
        view.round_trips += 2 * usize::from(!series.is_empty());

        // Events of every series.
        let mut events: Vec<MeetupEventId> = Vec::new();
        let mut series_events: Vec<Result<Vec<MeetupEventId>, ()>> = Vec::new();
        for raw in &event_sets {
            let parsed: Result<Vec<MeetupEventId>, ()> = raw
                .iter()
                .map(|e| MeetupEventId::parse(e).map_err(|_| ()))
                .collect();
            if let Ok(list) = &parsed {
                events.extend(list.iter().cloned());
            }
            series_events.push(parsed);
        }
        let mut pipe = redis::pipe();
        for e in &events {
            pipe.cmd("HMGET")
                .arg(schema::meetup_event(e))
                .arg(schema::EVENT_NAME)
                .arg(schema::EVENT_TIME)
                .arg(schema::EVENT_LINK);
        }
        let hashes: Vec<Vec<Option<String>>> = if events.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        let mut people_keys = Vec::with_capacity(events.len() * 2);
        for e in &events {
            people_keys.push(schema::meetup_event_meetup_users(e));
            people_keys.push(schema::meetup_event_meetup_hosts(e));
        }
        let people = smembers_many(&mut conn, &people_keys).await?;
        view.round_trips += 2 * usize::from(!events.is_empty());
        let mut event_states: HashMap<MeetupEventId, Result<EventState, ()>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            let hash = hashes.get(i).cloned().unwrap_or_default();
            let key = schema::meetup_event(e);
            let state = (|| {
                let [Some(name), Some(raw_time), Some(link)] =
                    <[Option<String>; 3]>::try_from(hash).unwrap_or_default()
                else {
                    return Err(());
                };
                let time = time(&key, Some(raw_time)).ok().flatten().ok_or(())?;
                Ok(EventState {
                    id: e.clone(),
                    name,
                    time,
                    link,
                    users: meetup_users(people.get(2 * i).map_or(&[][..], Vec::as_slice))?,
                    hosts: meetup_users(people.get(2 * i + 1).map_or(&[][..], Vec::as_slice))?,
                })
            })();
            event_states.insert(e.clone(), state);
        }

        // Channels: roles and removals.
        let mut states: Vec<SeriesState> = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let value = |n: usize| series_values.get(4 * i + n).cloned().flatten();
            let type_key = &series_keys[4 * i];
            let parsed = (
                super::parse_at(type_key, value(0), SeriesType::parse),
                channel_id(&series_keys[4 * i + 2], value(2)),
                channel_id(&series_keys[4 * i + 3], value(3)),
            );
            let (Ok(series_type), Ok(channel), Ok(voice_channel)) = parsed else {
                view.series_left_out += 1;
                view.unreadable.push(format!("series `{s}`"));
                continue;
            };
            let Some(Ok(ids)) = series_events.get(i) else {
                view.series_left_out += 1;
                view.unreadable.push(format!("events of series `{s}`"));
                continue;
            };
            let mut list = Vec::with_capacity(ids.len());
            let mut readable = true;
            for id in ids {
                match event_states.get(id) {
                    Some(Ok(state)) => list.push(state.clone()),
                    _ => readable = false,
                }
            }
            if !readable {
                view.series_left_out += 1;
                view.unreadable.push(format!("an event of series `{s}`"));
                continue;
            }
            list.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
            states.push(SeriesState {
                id: s.clone(),
                series_type,
                is_online: value(1).as_deref() == Some(schema::TRUE),
                events: list,
                channel,
                voice_channel,
                guest_role: None,
                host_role: None,
                removed_users: BTreeSet::new(),
                removed_hosts: BTreeSet::new(),
                synced_guests: BTreeSet::new(),
                welcomed: Newcomers::default(),
            });
        }
        let channels: Vec<ChannelId> = states.iter().filter_map(|s| s.channel).collect();
        let mut role_keys = Vec::with_capacity(channels.len() * 2);
        let mut removal_keys = Vec::with_capacity(channels.len() * 4);
        for c in &channels {
            role_keys.push(schema::discord_channel_discord_role(*c));
            role_keys.push(schema::discord_channel_discord_host_role(*c));
            removal_keys.push(schema::discord_channel_removed_users(*c));
            removal_keys.push(schema::discord_channel_removed_hosts(*c));
            removal_keys.push(schema::synced_guests(*c));
            removal_keys.push(schema::welcomed(*c));
        }
        let roles = get_many(&mut conn, &role_keys).await?;
        let removals = smembers_many(&mut conn, &removal_keys).await?;
        view.round_trips += 2 * usize::from(!channels.is_empty());
        let index: HashMap<ChannelId, usize> =
            channels.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        for state in states {
            let Some(i) = state.channel.and_then(|c| index.get(&c).copied()) else {
                view.series.push(state);
                continue;
            };
            let guest = role_id(&role_keys[2 * i], roles.get(2 * i).cloned().flatten());
            let host = role_id(
                &role_keys[2 * i + 1],
                roles.get(2 * i + 1).cloned().flatten(),
            );
            let users = snowflakes(removals.get(4 * i).map_or(&[][..], Vec::as_slice));
            let hosts = snowflakes(removals.get(4 * i + 1).map_or(&[][..], Vec::as_slice));
            let synced = snowflakes(removals.get(4 * i + 2).map_or(&[][..], Vec::as_slice));
            let (welcomed, unreadable) =
                Newcomers::read(removals.get(4 * i + 3).cloned().unwrap_or_default());
            if let Some(channel) = state.channel {
                for member in unreadable {
                    tracing::warn!(%channel, %member, "unreadable welcomed member left out");
                }
            }
            let (Ok(guest), Ok(host), Ok(users), Ok(hosts), Ok(synced)) =
                (guest, host, users, hosts, synced)
            else {
                view.series_left_out += 1;
                view.unreadable
                    .push(format!("roles or removals of series `{}`", state.id));
                continue;
            };
            view.series.push(SeriesState {
                guest_role: guest,
                host_role: host,
                removed_users: users,
                removed_hosts: hosts,
                synced_guests: synced,
                welcomed,
                ..state
            });
        }

        view.free_spots = self.free_spots_message().await?;
        let sets = smembers_many(
            &mut conn,
            &[
                schema::MANAGED_DISCORD_CHANNELS.to_owned(),
                schema::DISCORD_ROLES.to_owned(),
                schema::DISCORD_HOST_ROLES.to_owned(),
            ],
        )
        .await?;
        view.round_trips += 2;
        let ids = |i: usize, what: &str, view: &mut DiscordView| {
            let raw = sets.get(i).map_or(&[][..], Vec::as_slice);
            // A member that is no snowflake is left out (`tavern check` reports it).
            let read: Vec<u64> = raw.iter().filter_map(|v| v.parse().ok()).collect();
            if read.len() != raw.len() {
                view.unreadable.push(format!("a member of `{what}`"));
            }
            read.into_iter().filter(|v| *v != 0).collect::<Vec<u64>>()
        };
        let managed = ids(0, schema::MANAGED_DISCORD_CHANNELS, &mut view);
        let guests = ids(1, schema::DISCORD_ROLES, &mut view);
        let hosts = ids(2, schema::DISCORD_HOST_ROLES, &mut view);
        view.managed_channels = managed.into_iter().map(ChannelId::new).collect();
        view.game_roles = guests.into_iter().chain(hosts).map(RoleId::new).collect();
        Ok(view)
    }

    /// Records who the sync just gave a channel's guest role (`added`) and took it from
    /// (`removed`), in one step ([`schema::synced_guests`]).
    pub async fn record_synced_guests(
        &self,
        channel: ChannelId,
        added: &[UserId],
        removed: &[UserId],
    ) -> Result<(), RepoError> {
        if added.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let key = schema::synced_guests(channel);
        let mut writes = Writes::new();
        if !added.is_empty() {
            writes
                .command("SADD")
                .arg(&key)
                .arg(added.iter().map(|u| u.get()).collect::<Vec<_>>());
        }
        if !removed.is_empty() {
            writes
                .command("SREM")
                .arg(&key)
                .arg(removed.iter().map(|u| u.get()).collect::<Vec<_>>());
        }
        self.apply(&writes).await
    }

    /// The free-spots message as Tavern last wrote it.
    pub async fn free_spots_message(&self) -> Result<Option<FreeSpotsMessage>, RepoError> {
        let key = schema::FREE_SPOTS_MESSAGE;
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.redis.conn())
            .await?;
        let (Some(channel), Some(message), Some(content)) = (
            fields.get(schema::FREE_SPOTS_CHANNEL),
            fields.get(schema::FREE_SPOTS_MESSAGE_ID),
            fields.get(schema::FREE_SPOTS_CONTENT),
        ) else {
            return Ok(None);
        };
        let channel = channel_id(key, Some(channel.clone()))?;
        let message = super::parse_at(key, Some(message.clone()), |v| {
            domain::parse_snowflake("message id", v)
        })?;
        Ok(channel
            .zip(message)
            .map(|(channel, message)| FreeSpotsMessage {
                channel,
                message,
                content: content.clone(),
            }))
    }

    /// Records the free-spots message Tavern just posted or edited.
    pub async fn set_free_spots_message(
        &self,
        message: &FreeSpotsMessage,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes
            .del(schema::FREE_SPOTS_MESSAGE)
            .command("HSET")
            .arg(schema::FREE_SPOTS_MESSAGE)
            .arg(schema::FREE_SPOTS_CHANNEL)
            .arg(message.channel.get())
            .arg(schema::FREE_SPOTS_MESSAGE_ID)
            .arg(message.message.get())
            .arg(schema::FREE_SPOTS_CONTENT)
            .arg(&message.content);
        self.apply(&writes).await
    }
}
