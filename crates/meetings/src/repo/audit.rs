//! The audit log (`audit_logs`, partitioned by month).

use std::net::IpAddr;

use sqlx::PgExecutor;

use super::{MeetingsError, Repo};
use crate::domain::{ActorType, AuditResult, UserId};
use crate::schema;

/// One `audit_logs` row to append.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// e.g. `user_login`, `meeting_created`, `participant_joined`.
    pub event_type: String,
    pub actor_user_id: Option<UserId>,
    pub actor_type: ActorType,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub action: String,
    pub result: AuditResult,
    pub error_message: Option<String>,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// `None`: the column's default, `{}`.
    pub metadata: Option<serde_json::Value>,
}

impl Repo {
    /// Appends one row to `audit_logs` (it lands in its month's partition, or the default
    /// one); returns its `id`.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<i64, MeetingsError> {
        append(self.pg.pool(), entry).await
    }
}

/// Appends `entry` through `executor`: the pool, or a transaction's connection (so a
/// change and its audit row land together or not at all); returns the row's `id`.
pub(super) async fn append<'e>(
    executor: impl PgExecutor<'e>,
    entry: &AuditEntry,
) -> Result<i64, MeetingsError> {
    let id: i64 = sqlx::query_scalar(schema::INSERT_AUDIT)
        .bind(&entry.event_type)
        .bind(entry.actor_user_id.map(|u| u.as_uuid()))
        .bind(entry.actor_type.as_str())
        .bind(entry.target_type.as_deref())
        .bind(entry.target_id.as_deref())
        .bind(&entry.action)
        .bind(entry.result.as_str())
        .bind(entry.error_message.as_deref())
        .bind(entry.ip_address.map(|ip| ip.to_string()))
        .bind(entry.user_agent.as_deref())
        .bind(entry.metadata.as_ref())
        .fetch_one(executor)
        .await?;
    Ok(id)
}
