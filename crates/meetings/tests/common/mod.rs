//! Shared set-up of the repository tests: real servers, migrated, no Discord.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use feature::SystemClock;
use meetings::Repo;
use store::harness::{TestPostgres, TestRedis};
use store::{Postgres, Redis};

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
