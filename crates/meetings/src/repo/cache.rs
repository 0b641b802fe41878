//! The row cache (`cache:{entity_type}:{entity_id}`): JSON of a row, for the entity
//! type's TTL.

use store::Writes;

use super::{MeetingsError, Repo, ttl_secs};
use crate::domain::CacheEntityId;
use crate::schema::{self, CacheEntity};

impl Repo {
    /// Caches `value` (JSON of a row) under `cache:{entity_type}:{entity_id}` with the
    /// entity type's TTL.
    pub async fn cache_put(
        &self,
        entity: CacheEntity,
        id: &CacheEntityId,
        value: &serde_json::Value,
    ) -> Result<(), MeetingsError> {
        let mut writes = Writes::new();
        writes.set_ex(
            &schema::cache_key(entity, id),
            value.to_string(),
            ttl_secs(entity.ttl()),
        );
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// The cached JSON, or `None` when absent or expired (or not JSON: a stale format is
    /// a miss, not an error).
    pub async fn cache_get(
        &self,
        entity: CacheEntity,
        id: &CacheEntityId,
    ) -> Result<Option<serde_json::Value>, MeetingsError> {
        let mut conn = self.redis.conn();
        let raw: Option<String> = redis::cmd("GET")
            .arg(schema::cache_key(entity, id))
            .query_async(&mut conn)
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Drops a cached entity (after the row changed).
    pub async fn cache_invalidate(
        &self,
        entity: CacheEntity,
        id: &CacheEntityId,
    ) -> Result<(), MeetingsError> {
        let mut writes = Writes::new();
        writes.del(&schema::cache_key(entity, id));
        self.redis.apply(&writes).await?;
        Ok(())
    }
}
