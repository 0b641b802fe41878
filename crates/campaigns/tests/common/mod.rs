//! Helpers shared by the campaigns' integration tests: a real `redis-server` per test
//! (alone for the repositories, or inside a [`testkit::World`] where the feature is
//! built from a `Context`) and small readers of what it holds.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use campaigns::Repo;
use campaigns::repo::{EventUpsert, MeetupEvent};
use campaigns::{EventSeriesId, MeetupEventId, MeetupUserId};
use chrono::{DateTime, Utc};
use discord::model::{ChannelId, RoleId, UserId};
use store::harness::TestRedis;

/// What keeps the test's servers running.
enum Servers {
    Redis(TestRedis),
    World(Box<testkit::World>),
}

pub struct Env {
    pub redis: store::Redis,
    pub store: Repo,
    servers: Servers,
}

/// A `redis-server` for this test alone: enough for the repositories and the check.
pub async fn env() -> Env {
    let server = TestRedis::start().await;
    let redis = server.connect().await;
    Env {
        store: Repo::new(redis.clone()),
        redis,
        servers: Servers::Redis(server),
    }
}

/// The test world (its Redis, discord-sim, clock and `Context`), for tests that build
/// the feature.
pub async fn world_env() -> Env {
    let world = testkit::World::new().await;
    let redis = world.redis.clone();
    Env {
        store: Repo::new(redis.clone()),
        redis,
        servers: Servers::World(Box::new(world)),
    }
}

/// The "Dragon Hunt" game of the tests in the demo guild: its text channel, guest role
/// and host role, made in discord-sim.
pub fn dragon_hunt(
    sim: &discord_sim::Sim,
    guild: discord_sim::Snowflake,
) -> (
    discord_sim::Snowflake,
    discord_sim::Snowflake,
    discord_sim::Snowflake,
) {
    let channel = sim
        .create_channel(guild, "dragon-hunt", discord_sim::ChannelKind::Text)
        .unwrap();
    let guest = sim
        .create_role(guild, discord_sim::RoleSpec::new("Dragon Hunt", 0))
        .unwrap();
    let host = sim
        .create_role(guild, discord_sim::RoleSpec::new("Dragon Hunt hosts", 0))
        .unwrap();
    (channel, guest, host)
}

pub fn meetup(n: u64) -> MeetupUserId {
    MeetupUserId::new(n).unwrap()
}
pub fn user(n: u64) -> UserId {
    UserId::new(n)
}
pub fn channel(n: u64) -> ChannelId {
    ChannelId::new(n)
}
pub fn role(n: u64) -> RoleId {
    RoleId::new(n)
}
pub fn event_id(s: &str) -> MeetupEventId {
    MeetupEventId::parse(s).unwrap()
}
pub fn series_id(s: &str) -> EventSeriesId {
    EventSeriesId::parse(s).unwrap()
}
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn event(id: &str, time: &str) -> MeetupEvent {
    MeetupEvent {
        id: event_id(id),
        name: format!("Session of {id}"),
        time: at(time),
        link: format!("https://www.meetup.com/dragons/events/{id}/"),
        urlname: "dragons".into(),
        is_online: None,
    }
}

pub fn upsert(id: &str, series: &str) -> EventUpsert {
    EventUpsert {
        event: event(id, "2026-03-01T18:00:00Z"),
        series: series_id(series),
        series_type: None,
        series_online: false,
        hosts: vec![meetup(1)],
        rsvps: Some(vec![meetup(2), meetup(3)]),
    }
}

impl Env {
    /// The test world; only for an [`world_env`].
    pub fn world(&self) -> &testkit::World {
        match &self.servers {
            Servers::World(world) => world,
            Servers::Redis(_) => panic!("this test needs `world_env()`"),
        }
    }

    /// The `Context` the feature is built from; only for an [`world_env`].
    pub fn ctx(&self) -> &feature::Context {
        &self.world().ctx
    }

    pub fn conn(&self) -> store::RedisConn {
        self.redis.conn()
    }

    pub async fn redis_type(&self, key: &str) -> String {
        store::harness::key_type(&self.redis, key).await
    }

    pub async fn ttl(&self, key: &str) -> i64 {
        store::harness::ttl(&self.redis, key).await
    }

    pub async fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .unwrap()
    }

    pub async fn set(&self, key: &str, value: &str) {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .exec_async(&mut self.conn())
            .await
            .unwrap();
    }

    pub async fn del(&self, key: &str) {
        redis::cmd("DEL")
            .arg(key)
            .exec_async(&mut self.conn())
            .await
            .unwrap();
    }

    pub async fn sadd(&self, key: &str, member: &str) {
        redis::cmd("SADD")
            .arg(key)
            .arg(member)
            .exec_async(&mut self.conn())
            .await
            .unwrap();
    }

    pub async fn srem(&self, key: &str, member: &str) {
        redis::cmd("SREM")
            .arg(key)
            .arg(member)
            .exec_async(&mut self.conn())
            .await
            .unwrap();
    }

    /// A set's members, sorted.
    pub async fn members(&self, key: &str) -> Vec<String> {
        let mut m: Vec<String> = redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .unwrap();
        m.sort();
        m
    }

    /// A hash's fields and values, sorted by field.
    pub async fn hash(&self, key: &str) -> Vec<(String, String)> {
        let map: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .unwrap();
        map.into_iter().collect()
    }

    /// Every key in the server, sorted.
    pub async fn keys(&self) -> Vec<String> {
        self.redis.scan("*").await.unwrap()
    }

    /// Every key with its type, sorted: a snapshot to compare before and after.
    pub async fn snapshot(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for key in self.keys().await {
            let kind = self.redis_type(&key).await;
            let value = match kind.as_str() {
                "string" => self.get(&key).await.unwrap_or_default(),
                "set" => self.members(&key).await.join(","),
                "hash" => format!("{:?}", self.hash(&key).await),
                other => other.to_owned(),
            };
            out.push((key, kind, value));
        }
        out
    }

    /// A series with one event, a text channel, both roles and a voice channel.
    pub async fn full_series(
        &self,
        series: &str,
        event: &str,
        text: u64,
        voice: u64,
        guest: u64,
        host: u64,
    ) {
        let mut up = upsert(event, series);
        up.series_type = Some(campaigns::SeriesType::Adventure);
        up.series_online = true;
        self.store.upsert_event(&up).await.unwrap();
        let s = series_id(series);
        self.store
            .register_channel(&s, channel(text))
            .await
            .unwrap();
        self.store
            .register_roles(channel(text), role(guest), role(host))
            .await
            .unwrap();
        self.store
            .register_voice_channel(&s, channel(voice))
            .await
            .unwrap();
    }
}

/// Meetup's side of a sync test: a fake Meetup with the group `dragons` and its
/// organiser, Tavern's OAuth client registered, a client that retries quickly, and a
/// campaigns configuration for the group (no Discord side).
pub struct MeetupSide {
    pub fake: meetup::fake::FakeMeetup,
    pub group: meetup::GroupUrlname,
    pub organiser: meetup::MemberId,
    pub client: meetup::MeetupClient,
    pub config: campaigns::CampaignsConfig,
}

pub async fn meetup_side() -> MeetupSide {
    let fake = meetup::fake::FakeMeetup::start().await.unwrap();
    let group = meetup::GroupUrlname::parse("dragons").unwrap();
    fake.add_group(&group, "Dragons and Dice").unwrap();
    let organiser = fake.add_member("Olivia Organiser");
    let client_id = meetup::ClientId::new("tavern");
    let secret = meetup::ClientSecret::from("tavern-secret");
    fake.add_oauth_client(
        &client_id,
        &secret,
        &"http://127.0.0.1/organiser/callback".parse().unwrap(),
    );
    let client = meetup::MeetupClient::new(fake.endpoints())
        .unwrap()
        .with_retry(meetup::RetryPolicy {
            max_retries: 1,
            initial_backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(2),
        });
    let config =
        campaigns::CampaignsConfig::new(client_id, secret, fake.endpoints(), vec![group.clone()]);
    MeetupSide {
        fake,
        group,
        organiser,
        client,
        config,
    }
}
