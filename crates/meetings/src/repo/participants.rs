//! Participants: the seed's Data Flow Example 1 (a join), the session hashes with their
//! presence and heartbeats, leaving, and the removal of participants whose heartbeat
//! stopped.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use store::{Attempt, Condition, Conditional, StorageError, Writes};

use super::meetings::audit;
use super::{AuditEntry, Meeting, MeetingsError, Repo, corrupt, hset_all, parse_seconds, ttl_secs};
use crate::domain::{
    ActorType, AuditResult, DisplayName, LeaveReason, MeetingId, MeetingStatus,
    ParticipantConnection, ParticipantId, StreamId, TokenHash, UserId, WtToken,
};
use crate::schema::{
    self, CONNECTION_STATE_CONNECTED, NO_STREAMS, meeting_fields, participant_fields, stream_fields,
};

/// A meeting controller whose last heartbeat is older than this counts as gone for the
/// presence job ([`Repo::reap_absent`]): one and a half of its 10-second heartbeats, so
/// that it counts as gone before the presence (30 s) of any participant it held runs
/// out (their last heartbeats reached it at most 10 s before it stopped).
pub const CONTROLLER_GONE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(15);

/// How many times a join's Redis step is tried while the meeting's `status` changes
/// under it (a first join writing it meanwhile).
const JOIN_TRIES: usize = 3;

/// The `status` a join's Redis step expects of the meeting's hash, in the order tried:
/// none yet first while the meeting's row (`read`) says nobody has joined it, else
/// `active` first. Either order joins; the likelier first saves a first join a round
/// trip.
fn redis_status_order(read: MeetingStatus) -> [Option<&'static str>; 2] {
    let active = Some(MeetingStatus::Active.as_str());
    match read {
        MeetingStatus::Scheduled => [None, active],
        MeetingStatus::Active | MeetingStatus::Ended => [active, None],
    }
}

/// Someone joining a meeting (the seed's Data Flow Example 1, step 2).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub meeting_id: MeetingId,
    /// `None` for guests.
    pub user_id: Option<UserId>,
    pub display_name: DisplayName,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub client_version: Option<String>,
}

/// The outcome of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub participant_id: ParticipantId,
    /// `participant_count` of `meeting:{meeting_id}` after this join.
    pub participant_count: i64,
    /// The meeting's sessions right after this join (this one among them; but those
    /// the caller said it knows, [`Repo::join_meeting`]), as [`Repo::participants`]
    /// reads them, ordered by join time: the `JoinResponse`'s list (Example 1, step 3).
    /// When they cannot be read the join is undone and refused.
    pub participants: Vec<ParticipantSession>,
    /// The `media` connection token issued by the join's own step, when asked
    /// ([`JoinWith::media_token`]).
    pub media_token: Option<WtToken>,
}

/// What a join's atomic step does besides joining ([`Repo::join_meeting`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinWith<'a> {
    /// The hash of the meeting token the join presented
    /// ([`crate::auth::Auth::meeting_ticket`]): the join is refused, writing nothing,
    /// while it is on the blacklist ([`MeetingsError::TokenRevoked`]).
    pub presented: Option<&'a TokenHash>,
    /// Also issue the participant a one-time `media` connection token (for whichever
    /// media handler its media grant names), so that a join with media takes no
    /// second round trip.
    pub media_token: bool,
}

/// The `meeting_participants` row (and its audit row) of a join answered before it was
/// written, the seed's "async" write: [`PendingRow::write`] writes it, and if that
/// fails undoes the join's Redis step, so no session outlives the failure without its
/// row. A leave of that participant must wait for it.
#[must_use = "the participant's row is written only by PendingRow::write"]
pub struct PendingRow {
    repo: Repo,
    participant: ParticipantId,
    req: JoinRequest,
}

impl PendingRow {
    /// Writes the row; on failure the Redis session is undone (a leave) and the error
    /// returned.
    pub async fn write(self) -> Result<(), MeetingsError> {
        let PendingRow {
            repo,
            participant,
            req,
        } = self;
        let Err(error) = repo.record_join(&req, participant).await else {
            return Ok(());
        };
        tracing::warn!(meeting = %req.meeting_id, %participant, %error,
            "participant row not written; undoing the Redis session");
        if let Err(undo) = repo.depart(req.meeting_id, participant).await {
            tracing::error!(meeting = %req.meeting_id, %participant, error = %undo,
                "could not undo the Redis session; it expires with its TTL");
        }
        Err(error)
    }
}

impl std::fmt::Debug for PendingRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRow")
            .field("participant", &self.participant)
            .field("meeting", &self.req.meeting_id)
            .finish_non_exhaustive()
    }
}

/// A `participant:{participant_id}` hash, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSession {
    pub participant_id: ParticipantId,
    pub meeting_id: MeetingId,
    pub user_id: Option<UserId>,
    pub display_name: String,
    pub joined_at: i64,
    pub connection_state: String,
    pub last_heartbeat: i64,
    pub streams: String,
}

/// What [`Repo::reap_absent`] did to one meeting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The participants removed for want of a heartbeat.
    pub left: Vec<ParticipantId>,
    /// Whether that left the meeting empty, so it ended.
    pub ended: bool,
}

impl Repo {
    /// Data Flow Example 1, a join: in one atomic step, the `participant:{id}` hash
    /// (TTL 5 min), its presence (30 s), `SADD meeting:{id}:participants`, and on
    /// `meeting:{id}` the state fields, `started_at` (first join only) and `HINCRBY
    /// participant_count 1`, all only while the set has fewer members than
    /// `max_participants` (else [`MeetingsError::MeetingFull`], nothing written) and
    /// `meeting:{id}` does not say `ended` (else [`MeetingsError::MeetingEnded`],
    /// nothing written); then the `meeting_participants` row (and the meeting becomes
    /// `active` on its first join), in one PostgreSQL transaction, only while the
    /// meeting has not ended (else `MeetingEnded`, and the Redis step undone).
    ///
    /// The seed writes PostgreSQL after Redis ("async"). If that write fails, the Redis
    /// step is undone (the participant leaves again), so no session lives without its row.
    pub async fn join(&self, req: &JoinRequest) -> Result<Joined, MeetingsError> {
        self.join_as(ParticipantId::random(), req).await
    }

    /// [`Repo::join`] under an id chosen beforehand (the join grant names the
    /// participant before its connection arrives). An id already in use, in Redis or in
    /// `meeting_participants`, is a `Conflict` and changes nothing.
    pub async fn join_as(
        &self,
        participant: ParticipantId,
        req: &JoinRequest,
    ) -> Result<Joined, MeetingsError> {
        let meeting = self.meeting(req.meeting_id).await?;
        let (joined, row) = self
            .join_meeting(
                &meeting,
                participant,
                req,
                &HashSet::new(),
                JoinWith::default(),
            )
            .await?;
        row.write().await?;
        Ok(joined)
    }

    /// [`Repo::join_as`] with the meeting already read (`req.meeting_id` must be its
    /// id), answered before the participant's row is written: the Redis step and the
    /// `JoinResponse`'s list, and the row's write to run ([`PendingRow`]). The meeting
    /// controller answers the join meanwhile, as the seed has it.
    ///
    /// The list leaves out the joiner and the participants in `known` (those the
    /// caller already knows: a controller's own connected participants), so a join
    /// among known participants only reads no session hash.
    ///
    /// `with` says what the same atomic step also checks and writes ([`JoinWith`]).
    pub async fn join_meeting(
        &self,
        meeting: &Meeting,
        participant: ParticipantId,
        req: &JoinRequest,
        known: &HashSet<ParticipantId>,
        with: JoinWith<'_>,
    ) -> Result<(Joined, PendingRow), MeetingsError> {
        if meeting.meeting_id != req.meeting_id {
            return Err(StorageError::conflict(format!(
                "a join to meeting {} presented meeting {}",
                req.meeting_id, meeting.meeting_id
            ))
            .into());
        }
        if !meeting.status.is_joinable() {
            return Err(MeetingsError::MeetingEnded(meeting.meeting_id));
        }
        let now = self.now_secs();

        let mut session: Vec<(&str, String)> = {
            use participant_fields as f;
            vec![
                (f::PARTICIPANT_ID, participant.to_string()),
                (f::MEETING_ID, meeting.meeting_id.to_string()),
                (f::DISPLAY_NAME, req.display_name.to_string()),
                (f::JOINED_AT, now.to_string()),
                (f::CONNECTION_STATE, CONNECTION_STATE_CONNECTED.to_owned()),
                (f::LAST_HEARTBEAT, now.to_string()),
                (f::STREAMS, NO_STREAMS.to_owned()),
            ]
        };
        if let Some(user) = req.user_id {
            session.push((participant_fields::USER_ID, user.to_string()));
        }
        let mut state: Vec<(&str, String)> = {
            use meeting_fields as f;
            vec![
                (f::MEETING_ID, meeting.meeting_id.to_string()),
                (f::DISPLAY_NAME, meeting.display_name.clone()),
                (f::STATUS, MeetingStatus::Active.as_str().to_owned()),
            ]
        };
        if let Some(controller) = &meeting.assigned_controller_id {
            state.push((meeting_fields::CONTROLLER_ID, controller.to_string()));
        }

        let participant_key = schema::participant_key(participant);
        let set_key = schema::meeting_participants_key(meeting.meeting_id);
        let meeting_key = schema::meeting_key(meeting.meeting_id);
        let mut writes = Writes::new();
        hset_all(&mut writes, &participant_key, &session);
        writes
            .expire(&participant_key, ttl_secs(schema::PARTICIPANT_TTL))
            .set_ex(
                &schema::presence_key(participant),
                now,
                ttl_secs(schema::PRESENCE_TTL),
            )
            .sadd(&set_key, participant.to_string());
        hset_all(&mut writes, &meeting_key, &state);
        writes
            .command("HSETNX")
            .arg(&meeting_key)
            .arg(meeting_fields::STARTED_AT)
            .arg(now);
        writes.hincrby(&meeting_key, meeting_fields::PARTICIPANT_COUNT, 1);
        let count_reply = writes.len() - 1;
        // The set as this join leaves it: the JoinResponse's list, read in the same step.
        writes.command("SMEMBERS").arg(&set_key);
        let members_reply = writes.len() - 1;
        let media_token = with.media_token.then(|| {
            self.participant_token_writes(
                &mut writes,
                meeting.meeting_id,
                participant,
                ParticipantConnection::Media,
            )
        });

        let room = u64::try_from(meeting.settings.max_participants).unwrap_or(0);
        // In this order: a revoked token is refused before anything is said of the
        // meeting.
        let mut conditions = Vec::with_capacity(4);
        conditions.extend(
            with.presented
                .map(|hash| Condition::absent(schema::token_blacklist_key(hash))),
        );
        let first = conditions.len();
        let (full, taken, running) = (first, first + 1, first + 2);
        conditions.push(Condition::fewer_than(&set_key, room));
        conditions.push(Condition::absent(&participant_key));
        // Not into a meeting whose end has reached Redis (the meeting read before may be
        // older than its end): `status` is `active`, or not there yet (the first join).
        // The store has no "not equal", so each of the two is tried, the likelier first:
        // no status yet while the row says nobody has joined (`scheduled`), else
        // `active`. A status that is neither is read back.
        let ended = MeetingStatus::Ended.as_str();
        let statuses = redis_status_order(meeting.status);
        let mut joined = None;
        'tries: for _ in 0..JOIN_TRIES {
            for status in statuses {
                conditions.truncate(running);
                conditions.push(Condition::hash_field(
                    &meeting_key,
                    meeting_fields::STATUS,
                    status,
                ));
                match self.redis.apply_when(&conditions, &writes).await? {
                    Conditional::Refused(i) if i == running => {}
                    outcome => {
                        joined = Some(outcome);
                        break 'tries;
                    }
                }
            }
            let status: Option<String> = redis::cmd("HGET")
                .arg(&meeting_key)
                .arg(meeting_fields::STATUS)
                .query_async(&mut self.redis.conn())
                .await?;
            if status.as_deref() == Some(ended) {
                tracing::info!(meeting = %meeting.meeting_id, %participant, "join refused: the meeting has ended");
                return Err(MeetingsError::MeetingEnded(meeting.meeting_id));
            }
        }
        let Some(joined) = joined else {
            return Err(StorageError::conflict(format!(
                "the state of meeting {} kept changing during a join",
                meeting.meeting_id
            ))
            .into());
        };
        let participant_count = match joined {
            Conditional::Refused(i) if i == taken => {
                return Err(StorageError::conflict(format!(
                    "participant {participant} has already joined"
                ))
                .into());
            }
            Conditional::Refused(i) if i == full => {
                return Err(MeetingsError::MeetingFull {
                    meeting: meeting.meeting_id,
                    max_participants: meeting.settings.max_participants,
                });
            }
            Conditional::Refused(_) => return Err(MeetingsError::TokenRevoked),
            ref applied => applied.int(count_reply).ok_or_else(|| {
                StorageError::corrupt(&meeting_key, "participant_count is not an integer")
            })?,
        };
        let members = match &joined {
            Conditional::Applied(replies) => replies
                .get(members_reply)
                .map(redis::from_redis_value_ref::<Vec<String>>)
                .transpose()
                .ok()
                .flatten(),
            Conditional::Refused(_) => None,
        }
        .ok_or_else(|| StorageError::corrupt(&set_key, "SMEMBERS did not answer a set"))?;

        tracing::debug!(meeting = %meeting.meeting_id, %participant, participant_count, "joined");
        // The JoinResponse must list who is there: a join whose list cannot be read is
        // undone and refused (the client asks again) rather than answered "nobody".
        let mut unknown = Vec::with_capacity(members.len());
        for member in members {
            let id = ParticipantId::parse(&member).map_err(corrupt)?;
            if id != participant && !known.contains(&id) {
                unknown.push(id);
            }
        }
        let mut participants = match self.sessions_of(&unknown).await {
            Ok(participants) => participants,
            Err(error) => {
                tracing::warn!(meeting = %meeting.meeting_id, %participant, %error,
                    "could not read the meeting's participants; undoing the join");
                if let Err(undo) = self.depart(meeting.meeting_id, participant).await {
                    tracing::error!(meeting = %meeting.meeting_id, %participant, error = %undo,
                        "could not undo the Redis session; it expires with its TTL");
                }
                return Err(error);
            }
        };
        // The joiner's own session, as just written.
        participants.push(ParticipantSession {
            participant_id: participant,
            meeting_id: meeting.meeting_id,
            user_id: req.user_id,
            display_name: req.display_name.to_string(),
            joined_at: now,
            connection_state: CONNECTION_STATE_CONNECTED.to_owned(),
            last_heartbeat: now,
            streams: NO_STREAMS.to_owned(),
        });
        participants.sort_by_key(|s| (s.joined_at, s.participant_id));
        let joined = Joined {
            participant_id: participant,
            participant_count,
            participants,
            media_token,
        };
        let row = PendingRow {
            repo: self.clone(),
            participant,
            req: req.clone(),
        };
        Ok((joined, row))
    }

    async fn record_join(
        &self,
        req: &JoinRequest,
        participant: ParticipantId,
    ) -> Result<(), MeetingsError> {
        let metadata = serde_json::json!({
            "participant_id": participant.to_string(),
            "guest": req.user_id.is_none(),
        });
        let inserted: i64 = sqlx::query_scalar(schema::JOIN_PARTICIPANT)
            .bind(req.meeting_id.as_uuid())
            .bind(participant.as_uuid())
            .bind(req.user_id.map(|u| u.as_uuid()))
            .bind(req.display_name.as_str())
            .bind(req.ip_address.map(|ip| ip.to_string()))
            .bind(req.user_agent.as_deref())
            .bind(req.client_version.as_deref())
            .bind(audit::PARTICIPANT_JOINED)
            .bind(ActorType::User.as_str())
            .bind(audit::TARGET_MEETING)
            .bind(audit::JOIN)
            .bind(AuditResult::Success.as_str())
            .bind(metadata)
            .fetch_one(self.pg.pool())
            .await?;
        if inserted == 0 {
            // The meeting ended after the join's Redis step: no row that nothing closes.
            return Err(MeetingsError::MeetingEnded(req.meeting_id));
        }
        Ok(())
    }

    /// The sessions of a meeting's participants (Example 1, step 3: the `JoinResponse`),
    /// ordered by join time. Members whose session hash has expired are left out.
    pub async fn participants(
        &self,
        meeting: MeetingId,
    ) -> Result<Vec<ParticipantSession>, MeetingsError> {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(schema::meeting_participants_key(meeting))
            .query_async(&mut self.redis.conn())
            .await?;
        let members = members
            .iter()
            .map(|m| ParticipantId::parse(m).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        self.sessions_of(&members).await
    }

    /// The sessions of `members` (of a meeting's participants set) that still
    /// exist, ordered by join time, in one round trip (tried again after a transient
    /// error, [`store::transient()`]).
    async fn sessions_of(
        &self,
        members: &[ParticipantId],
    ) -> Result<Vec<ParticipantSession>, MeetingsError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for member in members {
            pipe.hgetall(schema::participant_key(*member));
        }
        let hashes: Vec<HashMap<String, String>> =
            store::transient("the participants' sessions", |_| {
                let (pipe, mut conn) = (&pipe, self.redis.conn());
                async move { Ok(pipe.query_async(&mut conn).await?) }
            })
            .await?;
        let mut sessions = hashes
            .into_iter()
            .filter(|h| !h.is_empty())
            .map(|h| session_from_hash(&h))
            .collect::<Result<Vec<_>, _>>()?;
        sessions.sort_by_key(|s| (s.joined_at, s.participant_id));
        Ok(sessions)
    }

    /// The participants of each of `meetings` whose session still exists (those
    /// [`Repo::participants`] would list), in two round trips whatever their number (a
    /// meeting controller's sweep of the meetings it hosts). Every meeting asked for has
    /// an entry.
    pub async fn present_participants(
        &self,
        meetings: &[MeetingId],
    ) -> Result<HashMap<MeetingId, HashSet<ParticipantId>>, MeetingsError> {
        let mut present: HashMap<MeetingId, HashSet<ParticipantId>> =
            meetings.iter().map(|m| (*m, HashSet::new())).collect();
        if meetings.is_empty() {
            return Ok(present);
        }
        let mut conn = self.redis.conn();
        let mut pipe = redis::pipe();
        for meeting in meetings {
            pipe.smembers(schema::meeting_participants_key(*meeting));
        }
        let sets: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        let mut members = Vec::new();
        let mut pipe = redis::pipe();
        for (meeting, set) in meetings.iter().zip(sets) {
            for member in set {
                let id = ParticipantId::parse(&member).map_err(corrupt)?;
                pipe.exists(schema::participant_key(id));
                members.push((*meeting, id));
            }
        }
        if members.is_empty() {
            return Ok(present);
        }
        let exists: Vec<bool> = pipe.query_async(&mut conn).await?;
        for ((meeting, participant), there) in members.into_iter().zip(exists) {
            if there {
                present.entry(meeting).or_default().insert(participant);
            }
        }
        Ok(present)
    }

    /// A participant's heartbeat: refreshes the session hash (5 min) and its
    /// subscriptions, and sets `presence:{id}` (30 s), only while the session exists.
    /// `false` when it has already expired (the client must join again); nothing is
    /// written then, so a late heartbeat never resurrects half a hash.
    pub async fn heartbeat(&self, participant: ParticipantId) -> Result<bool, MeetingsError> {
        let key = schema::participant_key(participant);
        let now = self.now_secs();
        let mut writes = Writes::new();
        writes
            .hset(&key, participant_fields::LAST_HEARTBEAT, now)
            .expire(&key, ttl_secs(schema::PARTICIPANT_TTL))
            .expire(
                &schema::participant_subscriptions_key(participant),
                ttl_secs(schema::SUBSCRIPTIONS_TTL),
            )
            .set_ex(
                &schema::presence_key(participant),
                now,
                ttl_secs(schema::PRESENCE_TTL),
            );
        let beat = self
            .redis
            .apply_when(&[Condition::exists(&key)], &writes)
            .await?;
        Ok(beat.applied())
    }

    /// Whether the participant sent a heartbeat within the presence TTL.
    pub async fn is_present(&self, participant: ParticipantId) -> Result<bool, MeetingsError> {
        let mut conn = self.redis.conn();
        let n: i64 = redis::cmd("EXISTS")
            .arg(schema::presence_key(participant))
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Participants of `meeting` whose presence expired (no heartbeat for
    /// [`schema::PRESENCE_TTL`]: the browser closed or the network dropped without a
    /// leave) leave with `connection_lost`; when that leaves nobody, the meeting ends, as
    /// it does on the last voluntary leave, unless its assigned controller is gone
    /// (crashed: no heartbeat within [`CONTROLLER_GONE_AFTER`]), whose participants are
    /// about to join again through another; [`Repo::end_vacated_meetings`] ends it if
    /// they do not. Without this a crashed client would hold its
    /// seat (the set counts toward `max_participants`) and keep the meeting open forever.
    pub async fn reap_absent(&self, meeting: MeetingId) -> Result<Reaped, MeetingsError> {
        let mut conn = self.redis.conn();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(schema::meeting_participants_key(meeting))
            .query_async(&mut conn)
            .await?;
        let mut participants = Vec::with_capacity(members.len());
        for member in &members {
            match ParticipantId::parse(member) {
                Ok(p) => participants.push(p),
                Err(error) => {
                    tracing::warn!(%meeting, member, %error, "participant set holds a member that is not a participant id");
                }
            }
        }
        let mut reaped = Reaped::default();
        if participants.is_empty() {
            return Ok(reaped);
        }
        let mut pipe = redis::pipe();
        for p in &participants {
            pipe.cmd("EXISTS").arg(schema::presence_key(*p));
        }
        let present: Vec<i64> = pipe.query_async(&mut conn).await?;
        let mut remaining = None;
        for (participant, present) in participants.into_iter().zip(present) {
            if present == 0 {
                remaining = Some(
                    self.leave(meeting, participant, LeaveReason::ConnectionLost)
                        .await?,
                );
                reaped.left.push(participant);
            }
        }
        if remaining == Some(0) {
            if self.assigned_controller_gone(meeting).await? {
                // Its participants were lost with their controller (it crashed): they
                // join again through another within their idle timeout, so the meeting
                // stays; the vacated-meetings rule ends it if nobody does.
                tracing::info!(%meeting, "emptied meeting whose controller is gone kept for its participants to join again");
            } else {
                self.end_meeting(meeting).await?;
                reaped.ended = true;
            }
        }
        if !reaped.left.is_empty() {
            tracing::info!(%meeting, left = reaped.left.len(), ended = reaped.ended, "participants without a heartbeat removed");
        }
        Ok(reaped)
    }

    /// Whether `meeting`'s assigned controller is gone: unregistered, or no heartbeat
    /// within [`CONTROLLER_GONE_AFTER`]. `false` for a meeting assigned none (nothing to
    /// wait for).
    async fn assigned_controller_gone(&self, meeting: MeetingId) -> Result<bool, MeetingsError> {
        let Some(controller) = self.meeting(meeting).await?.assigned_controller_id else {
            return Ok(false);
        };
        match self.controller(&controller).await {
            Ok(registered) => {
                Ok(self.clock.now() - registered.last_heartbeat_at > CONTROLLER_GONE_AFTER)
            }
            Err(MeetingsError::Storage(StorageError::NotFound { .. })) => Ok(true),
            Err(error) => Err(error),
        }
    }

    /// Ends the `active` meetings nobody has been in for `grace` (their participants
    /// left with `connection_lost` when their controller stopped or moved them, and none
    /// joined again), unless a join is under way in Redis; which. `grace` counts in the
    /// database's time, as `left_at` is written.
    pub async fn end_vacated_meetings(
        &self,
        grace: std::time::Duration,
    ) -> Result<Vec<MeetingId>, MeetingsError> {
        let vacated: Vec<uuid::Uuid> = sqlx::query_scalar(schema::SELECT_VACATED_MEETINGS)
            .bind(grace.as_secs_f64())
            .fetch_all(self.pg.pool())
            .await?;
        let mut ended = Vec::with_capacity(vacated.len());
        for meeting in vacated.into_iter().map(MeetingId::from_uuid) {
            let mut conn = self.redis.conn();
            let present: u64 = redis::cmd("SCARD")
                .arg(schema::meeting_participants_key(meeting))
                .query_async(&mut conn)
                .await?;
            if present > 0 {
                continue;
            }
            self.end_meeting(meeting).await?;
            tracing::info!(%meeting, "meeting nobody joined again ended");
            ended.push(meeting);
        }
        Ok(ended)
    }

    /// A participant leaves: in one atomic step it is removed from the set and counted
    /// down (once), its session, presence and subscriptions are deleted, the streams it
    /// published get the 1-hour TTL of ended streams and the streams it watched count
    /// one subscriber fewer (see `depart`); then, in one transaction, its row
    /// gets `left_at`, the reason and the duration, with a `participant_left` audit row
    /// (only the first leave writes them). Returns how many participants remain: at 0
    /// the caller ends the meeting ([`Repo::end_meeting`]), as the meeting controller
    /// does.
    pub async fn leave(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
        reason: LeaveReason,
    ) -> Result<i64, MeetingsError> {
        let remaining = self.depart(meeting, participant).await?;
        self.record_leave(meeting, participant, reason).await?;
        Ok(remaining)
    }

    /// The PostgreSQL half of [`Repo::leave`]: closes the participant's row with
    /// `reason`, and writes the audit row, when the row is still open; a closed row
    /// (or none) is left as it is. For a session whose participant was removed from
    /// Redis elsewhere while its row was still being written.
    pub async fn record_leave(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
        reason: LeaveReason,
    ) -> Result<(), MeetingsError> {
        let mut tx = self.pg.pool().begin().await?;
        let left: Option<(Option<uuid::Uuid>,)> = sqlx::query_as(schema::LEAVE_PARTICIPANT)
            .bind(meeting.as_uuid())
            .bind(participant.as_uuid())
            .bind(reason.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some((user,)) = left {
            // Only a voluntary leave is the person's own act; the rest are the system's
            // (a lost connection, the meeting's end, a kick decided elsewhere).
            let (actor_type, actor_user_id) = match reason {
                LeaveReason::Voluntary => (ActorType::User, user.map(UserId::from_uuid)),
                _ => (ActorType::System, None),
            };
            let entry = AuditEntry {
                event_type: audit::PARTICIPANT_LEFT.to_owned(),
                actor_user_id,
                actor_type,
                target_type: Some(audit::TARGET_MEETING.to_owned()),
                target_id: Some(meeting.to_string()),
                action: audit::LEAVE.to_owned(),
                result: AuditResult::Success,
                error_message: None,
                ip_address: None,
                user_agent: None,
                metadata: Some(serde_json::json!({
                    "participant_id": participant.to_string(),
                    "leave_reason": reason.as_str(),
                })),
            };
            audit::append(&mut *tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The Redis half of a leave, an absence or a meeting's end: one atomic step that
    /// leaves nothing of the participant live in Redis.
    ///
    /// - While it is in `meeting:{id}:participants`: `SREM` and `HINCRBY
    ///   participant_count -1` (otherwise neither, so a repeated or late departure never
    ///   drives the count below the truth).
    /// - `DEL` of `participant:{id}`, `presence:{id}` and
    ///   `participant:{id}:subscriptions`.
    /// - Each stream in the session's `streams` gets the 1-hour TTL of an ended stream
    ///   (the seed's "1 hour after stream ends"; Data Flow Example 2's "sets TTL on Redis
    ///   keys for cleanup").
    /// - Each stream in its subscriptions that still exists counts one subscriber fewer.
    ///
    /// It is decided on what was read just before and written only if that is still so
    /// (the `streams` field unchanged, the subscriptions set exactly as read, each
    /// watched stream still there or still gone), else read again
    /// ([`store::optimistic()`]), so a concurrent publish, subscribe or stream end is never
    /// lost. Returns how many participants remain in the set. Safe to repeat.
    ///
    /// A session hash that already expired has no `streams` to read: its live streams
    /// are found by [`Repo::expire_orphan_streams`]. Its subscriptions outlive it
    /// ([`schema::SUBSCRIPTIONS_TTL`]), so they are still counted down here.
    pub(super) async fn depart(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
    ) -> Result<i64, MeetingsError> {
        let set_key = schema::meeting_participants_key(meeting);
        let what = schema::participant_key(participant);
        store::optimistic(&what, |_| {
            let set_key = &set_key;
            async move {
                let leaving = self.read_leaving(participant).await?;
                for counted in [true, false] {
                    let (conditions, writes, remaining) =
                        departure(meeting, participant, &leaving, counted);
                    match self.redis.apply_when(&conditions, &writes).await? {
                        applied @ Conditional::Applied(_) => {
                            let remaining = applied.int(remaining).ok_or_else(|| {
                                StorageError::corrupt(set_key, "SCARD gave no integer")
                            })?;
                            return Ok::<_, MeetingsError>(Attempt::Done(remaining));
                        }
                        // Not (or no longer) a member: depart without counting down.
                        Conditional::Refused(0) if counted => continue,
                        Conditional::Refused(_) => return Ok(Attempt::Retry),
                    }
                }
                Ok(Attempt::Retry)
            }
        })
        .await
    }

    /// What a departure decides on: the session's `streams` and the subscriptions, with
    /// whether each watched stream still exists.
    async fn read_leaving(&self, participant: ParticipantId) -> Result<Leaving, MeetingsError> {
        let session = schema::participant_key(participant);
        let subscriptions = schema::participant_subscriptions_key(participant);
        let mut conn = self.redis.conn();
        let (streams_field, members): (Option<String>, Vec<String>) = redis::pipe()
            .cmd("HGET")
            .arg(&session)
            .arg(participant_fields::STREAMS)
            .cmd("SMEMBERS")
            .arg(&subscriptions)
            .query_async(&mut conn)
            .await?;
        let own_streams = match &streams_field {
            Some(raw) => match serde_json::from_str::<Vec<String>>(raw) {
                Ok(ids) => ids
                    .iter()
                    .filter_map(|id| match StreamId::parse(id) {
                        Ok(stream) => Some(stream),
                        Err(error) => {
                            tracing::warn!(%participant, %error, "a session's `streams` names no stream");
                            None
                        }
                    })
                    .collect(),
                Err(error) => {
                    // Left to the orphan sweep rather than blocking the departure.
                    tracing::warn!(%participant, %error, "a session's `streams` is not a JSON array of ids");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let mut watched = Vec::with_capacity(members.len());
        let mut pipe = redis::pipe();
        for member in members {
            let stream = StreamId::parse(&member).ok();
            if let Some(stream) = stream {
                pipe.cmd("EXISTS").arg(schema::stream_key(stream));
            }
            watched.push((member, stream));
        }
        let exists: Vec<i64> = if watched.iter().any(|(_, s)| s.is_some()) {
            pipe.query_async(&mut conn).await?
        } else {
            Vec::new()
        };
        let mut exists = exists.into_iter();
        let subscriptions = watched
            .into_iter()
            .map(|(member, stream)| {
                let live = stream.and_then(|s| exists.next().map(|n| (s, n == 1)));
                Subscription { member, live }
            })
            .collect();
        Ok(Leaving {
            streams_field,
            own_streams,
            subscriptions,
        })
    }
}

/// Who was let in from a meeting's waiting room ([`Repo::remember_admission`]): a
/// signed-in user by its id, a guest by the hash of the admission token its page holds.
#[derive(Debug, Clone, Copy)]
pub struct Admitted<'a> {
    pub user_id: Option<UserId>,
    pub guest_token: Option<&'a TokenHash>,
}

impl Admitted<'_> {
    fn members(&self) -> Vec<String> {
        self.user_id
            .map(schema::admitted_user_member)
            .into_iter()
            .chain(self.guest_token.map(schema::admitted_guest_member))
            .collect()
    }
}

impl Repo {
    /// Remembers that the host let `who` into `meeting`, for
    /// [`schema::MEETING_ADMITTED_TTL`] (renewed by every admission), where every
    /// controller finds it.
    pub async fn remember_admission(
        &self,
        meeting: MeetingId,
        who: Admitted<'_>,
    ) -> Result<(), MeetingsError> {
        let members = who.members();
        if members.is_empty() {
            return Ok(());
        }
        let key = schema::meeting_admitted_key(meeting);
        let mut writes = Writes::new();
        for member in &members {
            writes.sadd(&key, member);
        }
        writes.expire(&key, ttl_secs(schema::MEETING_ADMITTED_TTL));
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// Whether the host let `who` (its user, or the guest holding that admission token)
    /// into `meeting` within [`schema::MEETING_ADMITTED_TTL`].
    pub async fn was_admitted(
        &self,
        meeting: MeetingId,
        who: Admitted<'_>,
    ) -> Result<bool, MeetingsError> {
        let members = who.members();
        if members.is_empty() {
            return Ok(false);
        }
        let key = schema::meeting_admitted_key(meeting);
        let mut pipe = redis::pipe();
        for member in &members {
            pipe.sismember(&key, member);
        }
        let found: Vec<bool> = pipe.query_async(&mut self.redis.conn()).await?;
        Ok(found.into_iter().any(|f| f))
    }
}

/// A departing participant as [`Repo::read_leaving`] found it.
struct Leaving {
    /// The session's `streams` field as read (`None`: the session or the field is gone).
    streams_field: Option<String>,
    /// The streams it published that are live.
    own_streams: Vec<StreamId>,
    subscriptions: Vec<Subscription>,
}

/// One member of a participant's subscriptions set.
struct Subscription {
    /// The member as stored.
    member: String,
    /// The stream it names and whether that stream existed (`None`: not a stream id).
    live: Option<(StreamId, bool)>,
}

/// The conditions and writes of one departure ([`Repo::depart`]), and the index of the
/// `SCARD` reply. With `counted`, condition 0 is the set membership.
fn departure(
    meeting: MeetingId,
    participant: ParticipantId,
    leaving: &Leaving,
    counted: bool,
) -> (Vec<Condition>, Writes, usize) {
    let set_key = schema::meeting_participants_key(meeting);
    let session = schema::participant_key(participant);
    let subscriptions = schema::participant_subscriptions_key(participant);
    let member = participant.to_string();

    let mut conditions = Vec::with_capacity(3 + 2 * leaving.subscriptions.len());
    if counted {
        conditions.push(Condition::member(&set_key, &member));
    }
    conditions.push(Condition::hash_field(
        &session,
        participant_fields::STREAMS,
        leaving.streams_field.as_deref(),
    ));
    // Exactly the members read: each still there, and no more of them.
    let read = u64::try_from(leaving.subscriptions.len()).unwrap_or(u64::MAX);
    conditions.push(Condition::fewer_than(
        &subscriptions,
        read.saturating_add(1),
    ));
    for sub in &leaving.subscriptions {
        conditions.push(Condition::member(&subscriptions, sub.member.as_str()));
        if let Some((stream, exists)) = sub.live {
            let key = schema::stream_key(stream);
            conditions.push(if exists {
                Condition::exists(key)
            } else {
                Condition::absent(key)
            });
        }
    }

    let mut writes = Writes::new();
    if counted {
        writes.srem(&set_key, &member).hincrby(
            &schema::meeting_key(meeting),
            meeting_fields::PARTICIPANT_COUNT,
            -1,
        );
    }
    writes
        .command("DEL")
        .arg(&session)
        .arg(schema::presence_key(participant))
        .arg(&subscriptions);
    for stream in &leaving.own_streams {
        writes.expire(
            &schema::stream_key(*stream),
            ttl_secs(schema::STREAM_TTL_AFTER_END),
        );
    }
    for sub in &leaving.subscriptions {
        if let Some((stream, true)) = sub.live {
            writes.hincrby(&schema::stream_key(stream), stream_fields::SUBSCRIBERS, -1);
        }
    }
    writes.command("SCARD").arg(&set_key);
    let remaining = writes.len() - 1;
    (conditions, writes, remaining)
}

fn session_from_hash(h: &HashMap<String, String>) -> Result<ParticipantSession, StorageError> {
    use participant_fields as f;
    let get = |name: &'static str| -> Result<&str, StorageError> {
        h.get(name)
            .map(String::as_str)
            .ok_or_else(|| StorageError::corrupt("a participant session", format!("no `{name}`")))
    };
    Ok(ParticipantSession {
        participant_id: ParticipantId::parse(get(f::PARTICIPANT_ID)?).map_err(corrupt)?,
        meeting_id: MeetingId::parse(get(f::MEETING_ID)?).map_err(corrupt)?,
        user_id: h
            .get(f::USER_ID)
            .map(|s| UserId::parse(s))
            .transpose()
            .map_err(corrupt)?,
        display_name: get(f::DISPLAY_NAME)?.to_owned(),
        joined_at: parse_seconds(f::JOINED_AT, get(f::JOINED_AT)?)?,
        connection_state: get(f::CONNECTION_STATE)?.to_owned(),
        last_heartbeat: parse_seconds(f::LAST_HEARTBEAT, get(f::LAST_HEARTBEAT)?)?,
        streams: get(f::STREAMS)?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_expects_no_status_first_only_of_a_meeting_nobody_has_joined() {
        assert_eq!(
            redis_status_order(MeetingStatus::Scheduled),
            [None, Some("active")]
        );
        assert_eq!(
            redis_status_order(MeetingStatus::Active),
            [Some("active"), None]
        );
    }
}
