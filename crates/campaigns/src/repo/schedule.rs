//! Sessions the schedule form creates (Tavern's own key [`schema::scheduled_session`]):
//! a claim taken before the Meetup event is created, so the same form sent twice (a
//! double click, a reload) creates one event; the second sending is shown the first's
//! link. The sessions it created are also kept per series
//! ([`schema::created_sessions`]), so the form counts a session it made at once, not
//! only after the next sync has stored it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use store::Writes;

use super::{Repo, RepoError, corrupt};
use crate::domain::{EventSeriesId, MeetupEventId};
use crate::schema;

/// How long a claim is kept: long after the next sync has stored the event (the form
/// then finds it among the series' events).
const KEPT_SECONDS: u64 = 24 * 60 * 60;

/// The value of a claim whose event is being created.
const CREATING: &str = "creating";

/// The value of a claim whose creation got no clear answer from Meetup.
const UNKNOWN: &str = "unknown";

/// How long a claim whose outcome is unknown is kept: longer than a few syncs (every
/// 15 minutes), so an event Meetup did create is tracked by then and the form refuses
/// a second one at that time; if Meetup did not create it, the host may try again
/// after this.
pub const UNKNOWN_KEPT_SECONDS: u64 = 60 * 60;

/// What [`Repo::claim_scheduled_session`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleClaim {
    /// Nobody scheduled this session: create it, then [`Repo::scheduled_session_created`]
    /// (or [`Repo::release_scheduled_session`] when creating it failed).
    Claimed,
    /// Another request is creating it right now.
    Creating,
    /// It was created: its Meetup link.
    Created(String),
    /// An earlier request sent it to Meetup but got no clear answer (a timeout, a
    /// 5xx): Meetup may have created it. Kept [`UNKNOWN_KEPT_SECONDS`].
    Unknown,
}

impl Repo {
    /// Claims the session of `series` starting at `start` for the caller, unless
    /// another request claimed it (one `SET NX`).
    pub async fn claim_scheduled_session(
        &self,
        series: &EventSeriesId,
        start: DateTime<Utc>,
    ) -> Result<ScheduleClaim, RepoError> {
        let key = schema::scheduled_session(series, start.timestamp());
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(CREATING)
            .arg("NX")
            .arg("EX")
            .arg(KEPT_SECONDS)
            .query_async(&mut self.redis.conn())
            .await?;
        if taken.is_some() {
            return Ok(ScheduleClaim::Claimed);
        }
        Ok(match self.read(&key).await? {
            Some(value) if value == UNKNOWN => ScheduleClaim::Unknown,
            Some(url) if url != CREATING => ScheduleClaim::Created(url),
            // Creating, or it expired between the two commands: the other request's.
            _ => ScheduleClaim::Creating,
        })
    }

    /// Records the session the caller's claim created: its link on the claim, and the
    /// event (`None`: an id Tavern cannot store) among the series' created sessions
    /// ([`Repo::created_sessions`]), in one step.
    pub async fn scheduled_session_created(
        &self,
        series: &EventSeriesId,
        start: DateTime<Utc>,
        event: Option<&MeetupEventId>,
        url: &str,
    ) -> Result<(), RepoError> {
        let created = schema::created_sessions(series);
        let mut writes = Writes::new();
        writes
            .command("SET")
            .arg(schema::scheduled_session(series, start.timestamp()))
            .arg(url)
            .arg("EX")
            .arg(KEPT_SECONDS);
        if let Some(event) = event {
            writes
                .hset(&created, event.as_str(), start.timestamp())
                .expire(&created, schema::CREATED_SESSIONS_TTL_SECS);
        }
        self.apply(&writes).await
    }

    /// The sessions the schedule form created for `series` in the last day (since the
    /// last one), each with its start, whether or not the sync has stored them yet.
    pub async fn created_sessions(
        &self,
        series: &EventSeriesId,
    ) -> Result<Vec<(MeetupEventId, DateTime<Utc>)>, RepoError> {
        let key = schema::created_sessions(series);
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.redis.conn())
            .await?;
        fields
            .into_iter()
            .map(|(event, start)| {
                let id = MeetupEventId::parse(&event).map_err(|e| corrupt(&key, &event, e))?;
                let start = start
                    .parse::<i64>()
                    .ok()
                    .and_then(|s| DateTime::from_timestamp(s, 0))
                    .ok_or_else(|| corrupt(&key, &start, "not a time in Unix seconds"))?;
                Ok((id, start))
            })
            .collect()
    }

    /// Keeps the caller's claim, for [`UNKNOWN_KEPT_SECONDS`], when Meetup gave no
    /// clear answer to the creation: nobody creates the session again meanwhile.
    pub async fn scheduled_session_unknown(
        &self,
        series: &EventSeriesId,
        start: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes
            .command("SET")
            .arg(schema::scheduled_session(series, start.timestamp()))
            .arg(UNKNOWN)
            .arg("EX")
            .arg(UNKNOWN_KEPT_SECONDS);
        self.apply(&writes).await
    }

    /// Gives a claim back (creating the event failed), so the host can try again.
    pub async fn release_scheduled_session(
        &self,
        series: &EventSeriesId,
        start: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.del(&schema::scheduled_session(series, start.timestamp()));
        self.apply(&writes).await
    }
}
