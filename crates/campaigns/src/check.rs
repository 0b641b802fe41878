//! `tavern check` for the campaigns: finds every relation of the seed that does not hold
//! both ways. A finding's `subject` is the key holding the reference that does not
//! resolve (the key to look at first).
//!
//! - 1:1 pairs: `meetup_user:{}:discord_user` / `discord_user:{}:meetup_user`, a series'
//!   text and voice channel / the channel's series, a channel's guest and host role /
//!   the role's channel. Each side must point at a key that points back.
//! - Sets and their per-id keys: every member of `meetup_users`, `discord_users`,
//!   `discord_channels`, `discord_voice_channels`, `discord_roles`,
//!   `discord_host_roles` and `meetup_events` has its relation key, and every such key's
//!   id is in its set.
//! - Events: every tracked event has its `meetup_event:{}` hash; an event's series is
//!   tracked and lists it in `event_series:{}:meetup_events`, and every event listed
//!   there names that series back; every series with keys is in `event_series`.
//! - Types: the seed's global sets are sets.
//! - Values that are not ids at all.
//! - With a Discord bot token ([`check_discord`]): game text and voice channels that
//!   Discord no longer has (deleted by hand) or that an admin closed to Tavern, or, when
//!   Tavern was removed from the community's server, that one finding instead.
//!
//! The check reads with `SCAN`, so it does not block the server; it is not a snapshot,
//! so a change made while it runs can show up as a finding that a second run no longer
//! reports. On a Redis Cluster it sees the keys of the node it is connected to only.

use std::collections::{BTreeMap, BTreeSet};

use discord::Discord;
use discord::model::{ChannelId, GuildId};
use feature::Finding;
use store::{Redis, RedisConn, StorageError};

use crate::repo::Repo;

use crate::domain::{EventSeriesId, MeetupEventId};
use crate::schema::{self, KeyFamily};

/// The check's name in `tavern check`.
pub const NAME: &str = "campaigns";

/// The campaigns' consistency check of Redis alone.
pub fn campaigns_check(redis: Redis) -> feature::Check {
    feature::Check::new(NAME, move || {
        let redis = redis.clone();
        async move { check(&redis).await }
    })
}

/// The campaigns' consistency check, for [`crate::feature`]: Redis ([`check`]) and,
/// when `discord` has a bot token, the game channels Discord no longer has or Tavern
/// may not see ([`check_discord`]; `guild`: the community's server,
/// `campaigns_guild_id`, when configured).
pub fn campaigns_check_with(
    redis: Redis,
    discord: Discord,
    guild: Option<GuildId>,
) -> feature::Check {
    feature::Check::new(NAME, move || {
        let (redis, discord) = (redis.clone(), discord.clone());
        async move {
            let mut findings = check(&redis).await.map_err(CheckError::Storage)?;
            if discord.has_token() {
                let repo = Repo::new(redis);
                findings.extend(check_discord(&repo, &discord, guild).await?);
                findings.sort_by(|a, b| (&a.subject, &a.problem).cmp(&(&b.subject, &b.problem)));
            }
            Ok::<_, CheckError>(findings)
        }
    })
}

/// Why the check could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Repo(#[from] crate::RepoError),
    #[error("asking Discord about channel {channel}: {source}")]
    Discord {
        channel: ChannelId,
        #[source]
        source: discord::RestError,
    },
    #[error("asking Discord about the server {guild}: {source}")]
    Guild {
        guild: GuildId,
        #[source]
        source: discord::RestError,
    },
}

/// The subject of the finding that Tavern is not in the community's server: the
/// setting naming that server.
pub const GUILD_SETTING: &str = "campaigns_guild_id";

/// Every game text channel and voice channel (`discord_channels`,
/// `discord_voice_channels`) that Discord says no longer exists (404) or that the bot
/// may no longer see (403 Missing Access: an admin closed it to Tavern), one request
/// per channel. The subject is the channel's `event_series` key, the relation that
/// points at nothing (or at a channel Tavern cannot reach).
///
/// Discord answers 403 Missing Access for every channel of a server the bot is no
/// longer in too, where "give Tavern's role View Channel" would be wrong advice: at
/// the first 403 the check asks once whether Tavern is still in `guild` (the
/// community's server), and if it is not, the only finding is that (subject
/// [`GUILD_SETTING`]) and how to add it again.
pub async fn check_discord(
    repo: &Repo,
    discord: &Discord,
    guild: Option<GuildId>,
) -> Result<Vec<Finding>, CheckError> {
    let mut findings = Vec::new();
    // Asked at the first 403 only: whether Tavern is still in `guild`.
    let mut member: Option<bool> = None;
    let text = repo.game_channels().await?;
    let voice = repo.voice_channels().await?;
    for (channel, is_voice) in text
        .into_iter()
        .map(|c| (c, false))
        .chain(voice.into_iter().map(|c| (c, true)))
    {
        let (subject, what) = if is_voice {
            (
                schema::discord_voice_channel_event_series(channel),
                "voice channel",
            )
        } else {
            (
                schema::discord_channel_event_series(channel),
                "game channel",
            )
        };
        match discord.channel_guild(channel).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {
                findings.push(finding(
                    subject,
                    format!("the {what} {channel} no longer exists on Discord"),
                ));
            }
            // Discord's 403 Missing Access: the channel is there, closed to the bot, or
            // the bot is not in its server any more.
            Err(e) if e.is_missing_permission() => {
                if let Some(guild) = guild
                    && member.is_none()
                {
                    let is_member = in_guild(discord, guild).await?;
                    member = Some(is_member);
                    if !is_member {
                        return Ok(vec![finding(
                            GUILD_SETTING,
                            format!(
                                "Tavern is not in the server {guild} (Discord answers 403 \
                                 Missing Access for it and its channels): a server admin can \
                                 add it again through its install link (\"Add Tavern\" on \
                                 /clips); the game channels cannot be checked until then"
                            ),
                        )]);
                    }
                }
                findings.push(finding(
                    subject,
                    format!(
                        "Tavern may not see the {what} {channel} on Discord: a server admin \
                         can give Tavern's role View Channel there"
                    ),
                ));
            }
            Err(source) => return Err(CheckError::Discord { channel, source }),
        }
    }
    Ok(findings)
}

/// Whether the bot is still a member of `guild`: Discord answers a guild lookup with
/// 403 Missing Access (or 404) once the bot was removed.
async fn in_guild(discord: &Discord, guild: GuildId) -> Result<bool, CheckError> {
    match discord.guild(guild).await {
        Ok(found) => Ok(found.is_some()),
        Err(e) if e.is_missing_permission() => Ok(false),
        Err(source) => Err(CheckError::Guild { guild, source }),
    }
}

fn finding(subject: impl Into<String>, problem: impl Into<String>) -> Finding {
    Finding::new(subject, problem)
}

/// What kind of id a relation holds, to spot values that are no id at all.
#[derive(Debug, Clone, Copy)]
enum IdKind {
    /// A Discord or Meetup number.
    Number,
    /// An event series id.
    Series,
    /// A Meetup event id.
    Event,
}

impl IdKind {
    fn accepts(self, value: &str) -> bool {
        match self {
            IdKind::Number => {
                !value.is_empty()
                    && value.bytes().all(|b| b.is_ascii_digit())
                    && value.parse::<u64>().is_ok_and(|n| n != 0)
            }
            IdKind::Series => EventSeriesId::parse(value).is_ok(),
            IdKind::Event => MeetupEventId::parse(value).is_ok(),
        }
    }
}

/// `MGET` in chunks; keys that are absent (or not strings) read as `None`.
async fn get_many(
    conn: &mut RedisConn,
    keys: &[String],
) -> Result<Vec<Option<String>>, StorageError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let part: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query_async(conn).await?;
        out.extend(part);
    }
    Ok(out)
}

async fn members(conn: &mut RedisConn, key: &str) -> Result<BTreeSet<String>, StorageError> {
    let list: Vec<String> = redis::cmd("SMEMBERS").arg(key).query_async(conn).await?;
    Ok(list.into_iter().collect())
}

async fn key_type(conn: &mut RedisConn, key: &str) -> Result<String, StorageError> {
    Ok(redis::cmd("TYPE").arg(key).query_async(conn).await?)
}

/// Every key of a family with its id and value (keys that vanished meanwhile left out).
async fn family_values(
    redis: &Redis,
    family: KeyFamily,
) -> Result<Vec<(String, String, String)>, StorageError> {
    let keys: Vec<String> = redis
        .scan(&family.pattern())
        .await?
        .into_iter()
        .filter(|k| family.id_of(k).is_some())
        .collect();
    let values = get_many(&mut redis.conn(), &keys).await?;
    Ok(keys
        .into_iter()
        .zip(values)
        .filter_map(|(key, value)| {
            let id = family.id_of(&key)?.to_owned();
            Some((key, id, value?))
        })
        .collect())
}

/// One direction of a 1:1 relation: every `forward` key must hold an id whose
/// `backward` key holds this key's id.
async fn one_to_one(
    redis: &Redis,
    forward: KeyFamily,
    holds: IdKind,
    backward: KeyFamily,
    findings: &mut Vec<Finding>,
) -> Result<(), StorageError> {
    let entries = family_values(redis, forward).await?;
    let mut valid = Vec::new();
    for (key, id, value) in entries {
        if holds.accepts(&value) {
            valid.push((key, id, value));
        } else {
            findings.push(finding(
                key,
                format!("holds `{value}`, which is not a valid id"),
            ));
        }
    }
    let inverse_keys: Vec<String> = valid
        .iter()
        .map(|(_, _, value)| backward.key_for_raw(value))
        .collect();
    let inverses = get_many(&mut redis.conn(), &inverse_keys).await?;
    for ((key, id, value), (inverse_key, inverse)) in
        valid.into_iter().zip(inverse_keys.iter().zip(inverses))
    {
        match inverse {
            Some(back) if back == id => {}
            Some(back) => findings.push(finding(
                key,
                format!("points at {value}, but `{inverse_key}` points at {back} instead"),
            )),
            None => findings.push(finding(
                key,
                format!("points at {value}, but its inverse `{inverse_key}` is missing"),
            )),
        }
    }
    Ok(())
}

/// A set of ids against the family of per-id keys its members must have.
async fn set_and_family(
    redis: &Redis,
    set: &str,
    family: KeyFamily,
    findings: &mut Vec<Finding>,
) -> Result<(), StorageError> {
    let mut conn = redis.conn();
    let in_set = members(&mut conn, set).await?;
    let keyed: BTreeMap<String, String> = family_values(redis, family)
        .await?
        .into_iter()
        .map(|(key, id, _)| (id, key))
        .collect();
    for id in &in_set {
        if !keyed.contains_key(id) {
            findings.push(finding(
                set,
                format!("names {id}, but `{}` is missing", family.key_for_raw(id)),
            ));
        }
    }
    for (id, key) in keyed {
        if !in_set.contains(&id) {
            findings.push(finding(
                key,
                format!("exists, but `{set}` does not name {id}"),
            ));
        }
    }
    Ok(())
}

/// Runs every check and returns what is wrong, sorted by subject.
pub async fn check(redis: &Redis) -> Result<Vec<Finding>, StorageError> {
    let mut findings = Vec::new();
    let mut conn = redis.conn();

    for set in schema::GLOBAL_SETS {
        let kind = key_type(&mut conn, set).await?;
        if kind != "set" && kind != "none" {
            findings.push(finding(set, format!("is a {kind}, not a set")));
        }
    }

    // 1:1 relations, both directions.
    use IdKind::{Number, Series};
    let pairs = [
        (
            schema::MEETUP_USER_DISCORD_USER,
            Number,
            schema::DISCORD_USER_MEETUP_USER,
            Number,
        ),
        (
            schema::EVENT_SERIES_DISCORD_CHANNEL,
            Number,
            schema::DISCORD_CHANNEL_EVENT_SERIES,
            Series,
        ),
        (
            schema::EVENT_SERIES_DISCORD_VOICE_CHANNEL,
            Number,
            schema::DISCORD_VOICE_CHANNEL_EVENT_SERIES,
            Series,
        ),
        (
            schema::DISCORD_CHANNEL_DISCORD_ROLE,
            Number,
            schema::DISCORD_ROLE_DISCORD_CHANNEL,
            Number,
        ),
        (
            schema::DISCORD_CHANNEL_DISCORD_HOST_ROLE,
            Number,
            schema::DISCORD_HOST_ROLE_DISCORD_CHANNEL,
            Number,
        ),
    ];
    for (a, a_holds, b, b_holds) in pairs {
        one_to_one(redis, a, a_holds, b, &mut findings).await?;
        one_to_one(redis, b, b_holds, a, &mut findings).await?;
    }

    // Sets against the keys of their members.
    let sets = [
        (schema::MEETUP_USERS, schema::MEETUP_USER_DISCORD_USER),
        (schema::DISCORD_USERS, schema::DISCORD_USER_MEETUP_USER),
        (
            schema::DISCORD_CHANNELS,
            schema::DISCORD_CHANNEL_EVENT_SERIES,
        ),
        (
            schema::DISCORD_VOICE_CHANNELS,
            schema::DISCORD_VOICE_CHANNEL_EVENT_SERIES,
        ),
        (schema::DISCORD_ROLES, schema::DISCORD_ROLE_DISCORD_CHANNEL),
        (
            schema::DISCORD_HOST_ROLES,
            schema::DISCORD_HOST_ROLE_DISCORD_CHANNEL,
        ),
        (schema::MEETUP_EVENTS, schema::MEETUP_EVENT_EVENT_SERIES),
    ];
    for (set, family) in sets {
        set_and_family(redis, set, family, &mut findings).await?;
    }

    // Events: their hash, and the event <-> series relation both ways.
    let events = members(&mut conn, schema::MEETUP_EVENTS).await?;
    for event in &events {
        let key = schema::meetup_event_raw(event);
        let kind = key_type(&mut conn, &key).await?;
        if kind != "hash" {
            let problem = if kind == "none" {
                format!("names event {event}, but its hash `{key}` is missing")
            } else {
                format!("names event {event}, but `{key}` is a {kind}, not a hash")
            };
            findings.push(finding(schema::MEETUP_EVENTS, problem));
        }
    }
    let series_set = members(&mut conn, schema::EVENT_SERIES).await?;
    for (key, event, series) in family_values(redis, schema::MEETUP_EVENT_EVENT_SERIES).await? {
        if !IdKind::Series.accepts(&series) {
            findings.push(finding(
                key,
                format!("holds `{series}`, which is not a valid id"),
            ));
            continue;
        }
        if !series_set.contains(&series) {
            findings.push(finding(
                &key,
                format!(
                    "points at series {series}, which is not in `{}`",
                    schema::EVENT_SERIES
                ),
            ));
        }
        let listing = schema::EVENT_SERIES_MEETUP_EVENTS.key_for_raw(&series);
        let listed: bool = redis::cmd("SISMEMBER")
            .arg(&listing)
            .arg(&event)
            .query_async(&mut conn)
            .await?;
        if !listed {
            findings.push(finding(
                key,
                format!("points at series {series}, but `{listing}` does not list event {event}"),
            ));
        }
    }
    for key in redis
        .scan(&schema::EVENT_SERIES_MEETUP_EVENTS.pattern())
        .await?
    {
        let Some(series) = schema::EVENT_SERIES_MEETUP_EVENTS.id_of(&key) else {
            continue;
        };
        let listed: Vec<String> = members(&mut conn, &key).await?.into_iter().collect();
        let back_keys: Vec<String> = listed
            .iter()
            .map(|e| schema::MEETUP_EVENT_EVENT_SERIES.key_for_raw(e))
            .collect();
        let backs = get_many(&mut conn, &back_keys).await?;
        for ((event, back_key), back) in listed.iter().zip(&back_keys).zip(backs) {
            if !IdKind::Event.accepts(event) {
                findings.push(finding(
                    &key,
                    format!("lists `{event}`, which is not a valid id"),
                ));
                continue;
            }
            match back {
                Some(back) if back == series => {}
                Some(back) => findings.push(finding(
                    &key,
                    format!("lists event {event}, but `{back_key}` points at series {back}"),
                )),
                None => findings.push(finding(
                    &key,
                    format!("lists event {event}, but `{back_key}` is missing"),
                )),
            }
        }
    }

    // Series keys belong to tracked series.
    for family in [
        schema::EVENT_SERIES_MEETUP_EVENTS,
        schema::EVENT_SERIES_DISCORD_CHANNEL,
        schema::EVENT_SERIES_DISCORD_VOICE_CHANNEL,
    ] {
        for key in redis.scan(&family.pattern()).await? {
            if let Some(series) = family.id_of(&key)
                && !series_set.contains(series)
            {
                findings.push(finding(
                    &key,
                    format!(
                        "belongs to series {series}, which is not in `{}`",
                        schema::EVENT_SERIES
                    ),
                ));
            }
        }
    }

    findings.sort_by(|a, b| (&a.subject, &a.problem).cmp(&(&b.subject, &b.problem)));
    findings.dedup();
    Ok(findings)
}
