//! The seed's Redis structures: one function per key pattern, the field names of the
//! hashes and the TTLs, as named constants. No other module formats a key.

use std::time::Duration;

use crate::domain::{
    CacheEntityId, ControllerId, MeetingId, OAuthState, ParticipantId, RateLimitPart, StreamId,
    TokenHash, UserId, WtToken,
};

/// `meeting:{meeting_id}` (hash): the active meeting's state.
pub fn meeting_key(id: MeetingId) -> String {
    format!("meeting:{id}")
}

/// `participant:{participant_id}` (hash): one participant session.
pub fn participant_key(id: ParticipantId) -> String {
    format!("participant:{id}")
}

/// `meeting:{meeting_id}:participants` (set of participant ids).
pub fn meeting_participants_key(id: MeetingId) -> String {
    format!("meeting:{id}:participants")
}

/// SCAN pattern matching every `meeting:{meeting_id}:participants` set.
pub const MEETING_PARTICIPANTS_PATTERN: &str = "meeting:*:participants";

/// The meeting of a `meeting:{meeting_id}:participants` key; `None` for any other key.
pub fn meeting_of_participants_key(key: &str) -> Option<MeetingId> {
    let id = key
        .strip_prefix("meeting:")?
        .strip_suffix(":participants")?;
    MeetingId::parse(id).ok()
}

/// `stream:{stream_id}` (hash): one media stream's metadata.
pub fn stream_key(id: StreamId) -> String {
    format!("stream:{id}")
}

/// SCAN pattern matching every `stream:{stream_id}` hash.
pub const STREAM_PATTERN: &str = "stream:*";

/// The stream of a `stream:{stream_id}` key; `None` for any other key.
pub fn stream_of_key(key: &str) -> Option<StreamId> {
    StreamId::parse(key.strip_prefix("stream:")?).ok()
}

/// `participant:{participant_id}:subscriptions` (set of stream ids).
pub fn participant_subscriptions_key(id: ParticipantId) -> String {
    format!("participant:{id}:subscriptions")
}

/// `tavern:meetings:meeting:{meeting_id}:media_handlers` (set of handler ids): the media
/// handlers with participants of the meeting connected right now, so each can find the
/// others and relay the meeting to them. Tavern's own key (the seed's
/// `meeting:{meeting_id}` names one `media_handler_id`; a meeting spread over several
/// handlers needs them all). A handler adds itself when the meeting's first participant
/// connects to it and removes itself when the last one leaves; while it serves the
/// meeting it refreshes the key's TTL ([`MEETING_MEDIA_HANDLERS_TTL`]) every few
/// seconds; a handler that stopped heartbeating is removed by the one that would relay
/// to it (and the key goes with its TTL once no handler serves the meeting).
pub fn meeting_media_handlers_key(id: MeetingId) -> String {
    format!("tavern:meetings:meeting:{id}:media_handlers")
}

/// `tavern:meetings:meeting:{meeting_id}:admitted` (set): who the host let in from the
/// meeting's waiting room, so that they come back without waiting again when they join
/// anew (a lost connection, the meeting moved to another controller): a signed-in user
/// as [`admitted_user_member`], a guest as [`admitted_guest_member`] (the hash of the
/// admission token its page was given). Tavern's own key (the seed keeps no
/// admissions); in Redis because the next join may reach another controller. Lives
/// [`MEETING_ADMITTED_TTL`] from the last admission.
pub fn meeting_admitted_key(id: MeetingId) -> String {
    format!("tavern:meetings:meeting:{id}:admitted")
}

/// The member of [`meeting_admitted_key`] for a signed-in user let in.
pub fn admitted_user_member(user: UserId) -> String {
    format!("user:{user}")
}

/// The member of [`meeting_admitted_key`] for a guest let in: the SHA-256 of the
/// admission token its page was given (the token itself is never stored).
pub fn admitted_guest_member(token: &TokenHash) -> String {
    format!("guest:{}", token.as_str())
}

/// `ratelimit:{endpoint}:{identifier}:{window}` (string counter). The endpoint and the
/// identifier may themselves contain `:` (the seed's example is
/// `ratelimit:api:meetings:create:user:123:1705411200`).
pub fn rate_limit_key(endpoint: &RateLimitPart, identifier: &RateLimitPart, window: i64) -> String {
    format!(
        "ratelimit:{}:{}:{window}",
        endpoint.as_str(),
        identifier.as_str()
    )
}

/// `presence:{participant_id}` (string: the last heartbeat, Unix seconds).
pub fn presence_key(id: ParticipantId) -> String {
    format!("presence:{id}")
}

/// `controller:{controller_id}:capacity` (hash).
pub fn controller_capacity_key(id: &ControllerId) -> String {
    format!("controller:{id}:capacity")
}

/// `token:blacklist:{token_hash}` (string: the reason).
pub fn token_blacklist_key(hash: &TokenHash) -> String {
    format!("token:blacklist:{}", hash.as_str())
}

/// `tavern:meetings:revoked` (a pub/sub channel; each message a [`TokenHash`]): a token
/// just put on the blacklist, so that every replica forgets at once that it had found the
/// token valid. Tavern's own channel, not the seed's.
pub const REVOCATIONS_CHANNEL: &str = "tavern:meetings:revoked";

/// `tavern:meetings:signing_keys` (hash: `kid` -> JSON of [`SigningKeyRecord`]): the
/// JWT signing keys, their private halves sealed with `meetings_secret_key`. Tavern's
/// own key, not the seed's: the seed has no place for signing keys, and its tables
/// stay exactly as written. One hash, so a reader sees every key or none.
pub const SIGNING_KEYS_KEY: &str = "tavern:meetings:signing_keys";

/// `tavern:meetings:oauth_state:{state}` (string: the provider): the one-time `state` of
/// a "log in with Discord" that has not come back yet. Tavern's own key (the seed keeps
/// no login state); it holds the state itself, like `wt:token:{token}`, and lives
/// [`OAUTH_STATE_TTL`].
pub fn oauth_state_key(state: &OAuthState) -> String {
    format!("tavern:meetings:oauth_state:{}", state.expose())
}

/// How long a login may take at the provider.
pub const OAUTH_STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// One stored signing key (the value of a `tavern:meetings:signing_keys` field).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The public key, base64url.
    pub public: String,
    /// The sealed PKCS#8 document (nonce, ciphertext, tag), base64url.
    pub sealed_private: String,
}

/// `wt:token:{token}` (hash): a one-time WebTransport connection token. The key holds
/// the secret itself, as the seed writes it.
pub fn wt_token_key(token: &WtToken) -> String {
    format!("wt:token:{}", token.expose())
}

/// `cache:{entity_type}:{entity_id}` (string: JSON of the row).
pub fn cache_key(entity: CacheEntity, id: &CacheEntityId) -> String {
    format!("cache:{}:{id}", entity.as_str())
}

/// Fields of `meeting:{meeting_id}`.
pub mod meeting_fields {
    pub const MEETING_ID: &str = "meeting_id";
    pub const DISPLAY_NAME: &str = "display_name";
    pub const STATUS: &str = "status";
    pub const PARTICIPANT_COUNT: &str = "participant_count";
    /// Unix seconds, as a string.
    pub const STARTED_AT: &str = "started_at";
    pub const CONTROLLER_ID: &str = "controller_id";
    pub const MEDIA_HANDLER_ID: &str = "media_handler_id";
}

/// Fields of `participant:{participant_id}`.
pub mod participant_fields {
    pub const PARTICIPANT_ID: &str = "participant_id";
    pub const MEETING_ID: &str = "meeting_id";
    /// Absent for guests (`meeting_participants.user_id` is NULL for them).
    pub const USER_ID: &str = "user_id";
    pub const DISPLAY_NAME: &str = "display_name";
    /// Unix seconds.
    pub const JOINED_AT: &str = "joined_at";
    /// `connected` once joined (see [`super::CONNECTION_STATE_CONNECTED`]).
    pub const CONNECTION_STATE: &str = "connection_state";
    /// Unix seconds.
    pub const LAST_HEARTBEAT: &str = "last_heartbeat";
    /// A JSON array of stream ids, as the seed shows.
    pub const STREAMS: &str = "streams";
}

/// Fields of `stream:{stream_id}`.
pub mod stream_fields {
    pub const STREAM_ID: &str = "stream_id";
    pub const PARTICIPANT_ID: &str = "participant_id";
    pub const MEETING_ID: &str = "meeting_id";
    pub const STREAM_TYPE: &str = "stream_type";
    pub const CODEC: &str = "codec";
    pub const MAX_BITRATE: &str = "max_bitrate";
    pub const SUBSCRIBERS: &str = "subscribers";
    pub const CREATED_AT: &str = "created_at";
}

/// Fields of `controller:{controller_id}:capacity`.
pub mod controller_capacity_fields {
    pub const MAX_MEETINGS: &str = "max_meetings";
    pub const CURRENT_MEETINGS: &str = "current_meetings";
    pub const MAX_PARTICIPANTS: &str = "max_participants";
    pub const CURRENT_PARTICIPANTS: &str = "current_participants";
    pub const HEALTH: &str = "health";
    /// Unix seconds.
    pub const LAST_UPDATE: &str = "last_update";
}

/// Fields of `wt:token:{token}`.
pub mod wt_token_fields {
    pub const PARTICIPANT_ID: &str = "participant_id";
    pub const MEETING_ID: &str = "meeting_id";
    /// Unix seconds.
    pub const CREATED_AT: &str = "created_at";
    pub const CONNECTION_TYPE: &str = "connection_type";
}

/// The `connection_state` of a participant session once joined.
pub const CONNECTION_STATE_CONNECTED: &str = "connected";

/// The `streams` of a session that publishes nothing: an empty JSON array.
pub const NO_STREAMS: &str = "[]";

/// `meeting:{meeting_id}` and `meeting:{meeting_id}:participants`: kept 24 h after the
/// meeting ends (no TTL while it runs).
pub const MEETING_TTL_AFTER_END: Duration = Duration::from_secs(24 * 60 * 60);
/// `participant:{participant_id}`: 5 minutes, refreshed on every heartbeat.
pub const PARTICIPANT_TTL: Duration = Duration::from_secs(5 * 60);
/// `stream:{stream_id}`: kept 1 hour after the stream ends (no TTL while it runs).
pub const STREAM_TTL_AFTER_END: Duration = Duration::from_secs(60 * 60);
/// `participant:{participant_id}:subscriptions`: the seed gives none. It is deleted when
/// its participant leaves, is dropped by the presence job or the meeting ends; until
/// then it lives 1 hour, refreshed on every heartbeat and subscription. That is longer
/// than the session (5 minutes) on purpose: if the session hash expires before the
/// presence job removes the participant, the set is still there to count the watched
/// streams' `subscribers` down.
pub const SUBSCRIPTIONS_TTL: Duration = Duration::from_secs(60 * 60);
/// `tavern:meetings:meeting:{meeting_id}:media_handlers`: 60 seconds, refreshed by every
/// handler serving the meeting.
pub const MEETING_MEDIA_HANDLERS_TTL: Duration = Duration::from_secs(60);
/// `tavern:meetings:meeting:{meeting_id}:admitted`: 24 hours, from the last admission.
pub const MEETING_ADMITTED_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// `ratelimit:...`: 60 seconds, for per-minute windows.
pub const RATE_LIMIT_TTL: Duration = Duration::from_secs(60);
/// `presence:{participant_id}`: 30 seconds; without a heartbeat the participant counts
/// as disconnected.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);
/// `controller:{controller_id}:capacity`: 5 minutes, refreshed on heartbeat.
pub const CONTROLLER_CAPACITY_TTL: Duration = Duration::from_secs(5 * 60);
/// `wt:token:{token}`: 5 minutes, and used once.
pub const WT_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
// `token:blacklist:{token_hash}` lives until the token expires: its TTL is computed per
// token (`domain::seconds_until`), never a constant.

/// `cache:...`: between these bounds, by entity type ([`CacheEntity::ttl`]).
pub const CACHE_TTL_MIN: Duration = Duration::from_secs(5 * 60);
/// The upper bound of cache TTLs.
pub const CACHE_TTL_MAX: Duration = Duration::from_secs(60 * 60);

/// The `{entity_type}` of `cache:{entity_type}:{entity_id}`, with its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheEntity {
    /// Meetings change state (status, assignment): the shortest TTL.
    Meeting,
    /// Controllers report every heartbeat; a cached one is a few minutes old at most.
    Controller,
    Recording,
    /// Users change rarely: the longest TTL.
    User,
}

impl CacheEntity {
    pub const ALL: [CacheEntity; 4] = [
        CacheEntity::Meeting,
        CacheEntity::Controller,
        CacheEntity::Recording,
        CacheEntity::User,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheEntity::Meeting => "meeting",
            CacheEntity::Controller => "controller",
            CacheEntity::Recording => "recording",
            CacheEntity::User => "user",
        }
    }

    /// Within the seed's 5-60 minutes.
    pub fn ttl(self) -> Duration {
        match self {
            CacheEntity::Meeting | CacheEntity::Controller => CACHE_TTL_MIN,
            CacheEntity::Recording => Duration::from_secs(15 * 60),
            CacheEntity::User => CACHE_TTL_MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const M: &str = "550e8400-e29b-41d4-a716-446655440000";
    const P: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";

    #[test]
    fn keys_are_spelled_as_in_the_seed() {
        let m = MeetingId::parse(M).unwrap();
        let p = ParticipantId::parse(P).unwrap();
        let s = StreamId::parse("b8f3c5a2-1234-5678-9abc-def012345678").unwrap();
        assert_eq!(meeting_key(m), format!("meeting:{M}"));
        assert_eq!(participant_key(p), format!("participant:{P}"));
        assert_eq!(
            meeting_participants_key(m),
            format!("meeting:{M}:participants")
        );
        assert_eq!(stream_key(s), "stream:b8f3c5a2-1234-5678-9abc-def012345678");
        assert_eq!(
            participant_subscriptions_key(p),
            format!("participant:{P}:subscriptions")
        );
        assert_eq!(
            rate_limit_key(
                &RateLimitPart::parse("api:meetings:create").unwrap(),
                &RateLimitPart::parse("user:123").unwrap(),
                1_705_411_200
            ),
            "ratelimit:api:meetings:create:user:123:1705411200"
        );
        assert_eq!(presence_key(p), format!("presence:{P}"));
        assert_eq!(
            meeting_media_handlers_key(m),
            format!("tavern:meetings:meeting:{M}:media_handlers")
        );
        assert_eq!(
            meeting_admitted_key(m),
            format!("tavern:meetings:meeting:{M}:admitted")
        );
        assert_eq!(
            admitted_guest_member(&TokenHash::parse("ab12").unwrap()),
            "guest:ab12"
        );
        assert_eq!(
            controller_capacity_key(&ControllerId::parse("mc-us-west-1-001").unwrap()),
            "controller:mc-us-west-1-001:capacity"
        );
        assert_eq!(
            token_blacklist_key(&TokenHash::parse("ab12").unwrap()),
            "token:blacklist:ab12"
        );
        let token = WtToken::parse(&"a".repeat(64)).unwrap();
        assert_eq!(wt_token_key(&token), format!("wt:token:{}", "a".repeat(64)));
        assert_eq!(
            cache_key(CacheEntity::Meeting, &CacheEntityId::from(m)),
            format!("cache:meeting:{M}")
        );
        let state = OAuthState::random();
        assert_eq!(
            oauth_state_key(&state),
            format!("tavern:meetings:oauth_state:{}", state.expose())
        );
        assert_eq!(
            meeting_of_participants_key(&meeting_participants_key(m)),
            Some(m)
        );
        assert_eq!(meeting_of_participants_key(&meeting_key(m)), None);
        assert_eq!(stream_of_key(&stream_key(s)), Some(s));
        assert_eq!(stream_of_key(&participant_key(p)), None);
        assert_eq!(stream_of_key("stream:nope"), None);
    }

    #[test]
    fn ttls_are_the_seeds() {
        assert_eq!(MEETING_TTL_AFTER_END.as_secs(), 86_400);
        assert_eq!(PARTICIPANT_TTL.as_secs(), 300);
        assert_eq!(STREAM_TTL_AFTER_END.as_secs(), 3_600);
        assert_eq!(RATE_LIMIT_TTL.as_secs(), 60);
        assert_eq!(PRESENCE_TTL.as_secs(), 30);
        assert_eq!(CONTROLLER_CAPACITY_TTL.as_secs(), 300);
        assert_eq!(WT_TOKEN_TTL.as_secs(), 300);
        assert!(SUBSCRIPTIONS_TTL > PARTICIPANT_TTL, "outlives the session");
        for entity in CacheEntity::ALL {
            let ttl = entity.ttl();
            assert!(CACHE_TTL_MIN <= ttl && ttl <= CACHE_TTL_MAX, "{entity:?}");
        }
    }
}
