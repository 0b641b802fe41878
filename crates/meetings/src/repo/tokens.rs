//! Tokens: one-time WebTransport connection tokens (`wt:token:{token}`) and the JWT
//! blacklist (`token:blacklist:{token_hash}`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use store::{StorageError, Writes};

use super::{MeetingsError, Repo, corrupt, parse_seconds, ttl_secs};
use crate::domain::{
    self, ConnectionType, MeetingId, ParticipantConnection, ParticipantId, ServiceConnection,
    TokenHash, WtToken,
};
use crate::schema::{self, wt_token_fields};

/// Whom a redeemed media-session token admits ([`Repo::media_admission`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaAdmission {
    /// A participant in the meeting (in `meeting:{id}:participants`, its session live):
    /// its media session lasts while it stays in the meeting.
    Participant,
    /// A client of the server's own (the recorder, the benchmark): a `recorder` token,
    /// which only server-side code issues.
    Service,
    /// A `media` token whose participant is not in the meeting (it never joined, its
    /// join was undone, it left or it was dropped): refused.
    Absent,
}

/// What a redeemed `wt:token:{token}` grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionGrant {
    pub participant_id: ParticipantId,
    pub meeting_id: MeetingId,
    pub created_at: i64,
    pub connection_type: ConnectionType,
}

/// A new token's `wt:token:{token}` hash (5 minutes), created at `now` (Unix s), added
/// to `writes`.
fn token_writes(
    writes: &mut Writes,
    now: i64,
    meeting: MeetingId,
    participant: ParticipantId,
    connection_type: ConnectionType,
) -> WtToken {
    use wt_token_fields as f;
    let token = WtToken::generate(&mut rand::rng());
    let key = schema::wt_token_key(&token);
    writes
        .command("HSET")
        .arg(&key)
        .arg(f::PARTICIPANT_ID)
        .arg(participant.to_string())
        .arg(f::MEETING_ID)
        .arg(meeting.to_string())
        .arg(f::CREATED_AT)
        .arg(now)
        .arg(f::CONNECTION_TYPE)
        .arg(connection_type.as_str());
    writes.expire(&key, ttl_secs(schema::WT_TOKEN_TTL));
    token
}

impl Repo {
    /// Issues a one-time WebTransport connection token (`wt:token:{token}`, 5 minutes)
    /// for a participant's signalling or media session: never a `recorder` one.
    pub async fn issue_participant_token(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
        kind: ParticipantConnection,
    ) -> Result<WtToken, MeetingsError> {
        self.issue(meeting, participant, kind.into()).await
    }

    /// Issues a one-time connection token (`wt:token:{token}`, 5 minutes) for a client
    /// of the server's own under `id`: a recorder's media session (admitted without a
    /// read, on the media handler's `/media/` only) or a relay between media handlers.
    /// Only server-side code calls it, never a route a participant reaches.
    pub async fn issue_service_token(
        &self,
        meeting: MeetingId,
        id: ParticipantId,
        kind: ServiceConnection,
    ) -> Result<WtToken, MeetingsError> {
        self.issue(meeting, id, kind.into()).await
    }

    async fn issue(
        &self,
        meeting: MeetingId,
        participant: ParticipantId,
        connection_type: ConnectionType,
    ) -> Result<WtToken, MeetingsError> {
        let mut writes = Writes::new();
        let token = token_writes(
            &mut writes,
            self.now_secs(),
            meeting,
            participant,
            connection_type,
        );
        self.redis.apply(&writes).await?;
        Ok(token)
    }

    /// Deletes a connection token nobody was given (`wt:token:{token}`): one written
    /// ahead of a read that then refused the grant.
    pub async fn discard_connection_token(&self, token: &WtToken) -> Result<(), MeetingsError> {
        let mut writes = Writes::new();
        writes.del(&schema::wt_token_key(token));
        self.redis.apply(&writes).await?;
        Ok(())
    }

    /// A new one-time connection token for a participant, its `wt:token:{token}` hash
    /// (5 minutes) added to `writes`: a step that issues one among other writes (a
    /// join's media token).
    pub(super) fn participant_token_writes(
        &self,
        writes: &mut Writes,
        meeting: MeetingId,
        participant: ParticipantId,
        kind: ParticipantConnection,
    ) -> WtToken {
        token_writes(writes, self.now_secs(), meeting, participant, kind.into())
    }

    /// Redeems a connection token: read and deleted in one `MULTI`/`EXEC`, so of two
    /// connections presenting the same token exactly one gets the grant. `None` for an
    /// unknown, expired or already used token.
    pub async fn redeem_connection_token(
        &self,
        token: &WtToken,
    ) -> Result<Option<ConnectionGrant>, MeetingsError> {
        use wt_token_fields as f;
        let key = schema::wt_token_key(token);
        let mut pipe = redis::pipe();
        pipe.atomic().hgetall(&key).del(&key).ignore();
        let mut conn = self.redis.conn();
        let (fields,): (HashMap<String, String>,) = pipe.query_async(&mut conn).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &'static str| -> Result<&str, StorageError> {
            fields
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| StorageError::corrupt("a connection token", format!("no `{name}`")))
        };
        Ok(Some(ConnectionGrant {
            participant_id: ParticipantId::parse(field(f::PARTICIPANT_ID)?).map_err(corrupt)?,
            meeting_id: MeetingId::parse(field(f::MEETING_ID)?).map_err(corrupt)?,
            created_at: parse_seconds(f::CREATED_AT, field(f::CREATED_AT)?)?,
            connection_type: ConnectionType::parse(field(f::CONNECTION_TYPE)?).map_err(corrupt)?,
        }))
    }

    /// Whom the redeemed media-session `grant` admits: a `recorder` grant, a client of
    /// the server's own, without a read; a `media` grant, its participant while it is in
    /// the meeting (a member of `meeting:{id}:participants` whose `participant:{id}` hash
    /// lives, read in one round trip), else nobody. Any other kind admits nobody either.
    pub async fn media_admission(
        &self,
        grant: &ConnectionGrant,
    ) -> Result<MediaAdmission, MeetingsError> {
        match grant.connection_type {
            ConnectionType::Recorder => return Ok(MediaAdmission::Service),
            ConnectionType::Media => {}
            ConnectionType::Signaling | ConnectionType::Relay => {
                return Ok(MediaAdmission::Absent);
            }
        }
        let (meeting, participant) = (grant.meeting_id, grant.participant_id);
        let mut conn = self.redis.conn();
        let (member, session): (bool, bool) = redis::pipe()
            .sismember(
                schema::meeting_participants_key(meeting),
                participant.to_string(),
            )
            .exists(schema::participant_key(participant))
            .query_async(&mut conn)
            .await?;
        Ok(if member && session {
            MediaAdmission::Participant
        } else {
            MediaAdmission::Absent
        })
    }

    /// Blacklists a JWT by its hash until `expires_at` (the key's TTL), with a reason,
    /// and publishes the hash on [`schema::REVOCATIONS_CHANNEL`] in the same step.
    /// `false` (nothing stored) when the token has already expired: it is dead anyway.
    pub async fn blacklist_token(
        &self,
        hash: &TokenHash,
        reason: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, MeetingsError> {
        let Some(ttl) = domain::seconds_until(expires_at, self.clock.now()) else {
            return Ok(false);
        };
        let mut writes = Writes::new();
        writes.set_ex(&schema::token_blacklist_key(hash), reason, ttl);
        writes
            .command("PUBLISH")
            .arg(schema::REVOCATIONS_CHANNEL)
            .arg(hash.as_str());
        self.redis.apply(&writes).await?;
        Ok(true)
    }

    /// The hashes of tokens blacklisted from now on, as [`Repo::blacklist_token`]
    /// publishes them.
    pub async fn revocations(&self) -> Result<store::Subscription, MeetingsError> {
        Ok(self.redis.subscribe(schema::REVOCATIONS_CHANNEL).await?)
    }

    /// The reason a token was blacklisted, or `None` if it is not.
    pub async fn blacklisted(&self, hash: &TokenHash) -> Result<Option<String>, MeetingsError> {
        let mut conn = self.redis.conn();
        Ok(redis::cmd("GET")
            .arg(schema::token_blacklist_key(hash))
            .query_async(&mut conn)
            .await?)
    }
}
