//! Shared set-up of the repository tests: real servers, migrated, no Discord; or the
//! test world (with its manual clock) migrated, with a repository over it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use feature::SystemClock;
use meetings::Repo;
use meetings::domain::{DisplayName, HandlerId, MeetingId, Region};
use meetings::repo::{HandlerRegistration, MeetingSettings, NewMeeting};
use redis::AsyncCommands;
use store::harness::{TestPostgres, TestRedis};
use store::{Postgres, Redis};
use testkit::World;

pub mod media;
pub mod wt;

pub struct Pg {
    pub server: TestPostgres,
    pub pg: Postgres,
}

/// A fresh PostgreSQL with the meetings schema migrated.
pub async fn migrated() -> Pg {
    let server = TestPostgres::start().await;
    let pg = server.connect().await;
    pg.migrate(&meetings::MIGRATIONS)
        .await
        .expect("migrate meet");
    Pg { server, pg }
}

pub struct Env {
    pub pg_server: TestPostgres,
    pub redis_server: TestRedis,
    pub pg: Postgres,
    pub redis: Redis,
}

/// Fresh PostgreSQL (migrated) and Redis.
pub async fn env() -> Env {
    let Pg { server, pg } = migrated().await;
    let redis_server = TestRedis::start().await;
    let redis = redis_server.connect().await;
    Env {
        pg_server: server,
        redis_server,
        pg,
        redis,
    }
}

impl Env {
    /// The repository over this environment, on the system clock.
    pub fn repo(&self) -> Repo {
        Repo::new(self.redis.clone(), self.pg.clone(), Arc::new(SystemClock))
    }

    pub async fn redis_type(&self, key: &str) -> String {
        store::harness::key_type(&self.redis, key).await
    }

    pub async fn ttl(&self, key: &str) -> i64 {
        store::harness::ttl(&self.redis, key).await
    }
}

/// A test world (real PostgreSQL and Redis, the manual clock) with the meetings schema
/// migrated, and the repository over it.
pub async fn world() -> (World, Repo) {
    let world = World::with_postgres().await;
    world.postgres.migrate(&meetings::MIGRATIONS).await.unwrap();
    let repo = Repo::from_context(&world.ctx);
    (world, repo)
}

/// A new meeting called `name`, by nobody, with the default settings.
pub async fn meeting(repo: &Repo, name: &str) -> MeetingId {
    repo.create_meeting(&NewMeeting {
        display_name: DisplayName::parse(name).unwrap(),
        created_by: None,
        settings: MeetingSettings::default(),
        scheduled_start_time: None,
    })
    .await
    .unwrap()
    .meeting_id
}

/// The fields of the Redis hash `key`.
pub async fn hash_of(redis: &Redis, key: &str) -> HashMap<String, String> {
    redis.conn().hgetall(key).await.unwrap()
}

/// The registration of media handler `id` in `region` (VP9, transcoding and mixing).
pub fn handler_registration(
    id: &HandlerId,
    region: &Region,
    endpoint: &str,
) -> HandlerRegistration {
    HandlerRegistration {
        handler_id: id.clone(),
        region: region.clone(),
        endpoint: endpoint.to_owned(),
        max_streams: 100,
        max_bitrate_mbps: 1000,
        supports_transcoding: true,
        supports_mixing: true,
        supported_codecs: vec!["VP9".into()],
        certificate_hash: None,
    }
}
