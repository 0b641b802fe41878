//! The pure rules of meetings: typed ids, the seed's enumerated values, meeting codes,
//! connection tokens and the other values that become parts of keys, the choice of a
//! meeting controller and the retention rules. No I/O, no clock, no global randomness:
//! time and random numbers come in as arguments, so every rule is unit-tested.

use std::fmt;
use std::str::FromStr;

use base::{InvalidId, Secret};
use chrono::{DateTime, Datelike, Months, TimeDelta, TimeZone, Utc};
use rand::Rng;

base::key_id! {
    /// `meetings.meeting_id`.
    pub struct MeetingId(Uuid) { what: "meeting id" }
}
base::key_id! {
    /// `meeting_participants.participant_id`: one session of one person in one meeting
    /// (a person who joins twice gets two).
    pub struct ParticipantId(Uuid) { what: "participant id" }
}
base::key_id! {
    /// `users.user_id`.
    pub struct UserId(Uuid) { what: "user id" }
}
base::key_id! {
    /// `recordings.recording_id`.
    pub struct RecordingId(Uuid) { what: "recording id" }
}
base::key_id! {
    /// `stream:{stream_id}`: one published media stream.
    pub struct StreamId(Uuid) { what: "stream id" }
}

// Names that become part of a Redis key and a `VARCHAR(max)` column: ASCII letters,
// digits, `.`, `_` and `-` only (no `:` that would blur the key's structure, no braces
// that would act as a cluster hash tag).
base::key_id! {
    /// `meeting_controllers.controller_id` (`VARCHAR(255)`), e.g. `mc-us-west-1-001`.
    pub struct ControllerId(String) { what: "controller id", chars: base::id::NAME, max: 255 }
}
base::key_id! {
    /// `media_handlers.handler_id` (`VARCHAR(255)`), e.g. `mh-us-west-1-003`.
    pub struct HandlerId(String) { what: "media handler id", chars: base::id::NAME, max: 255 }
}
base::key_id! {
    /// A region (`VARCHAR(50)`), e.g. `us-west-1`.
    pub struct Region(String) { what: "region", chars: base::id::NAME, max: 50 }
}

impl ControllerId {
    /// A fresh id, `mc-` and ten random letters or digits, for a controller that was not
    /// given one.
    pub fn generate() -> ControllerId {
        ControllerId(format!("mc-{}", base::id::NAME.random(10)))
    }
}

impl HandlerId {
    /// A fresh id, `mh-` and ten random letters or digits, for a media handler that was
    /// not given one.
    pub fn generate() -> HandlerId {
        HandlerId(format!("mh-{}", base::id::NAME.random(10)))
    }
}

impl Region {
    /// `local`: the region of a deployment that names none.
    pub fn local() -> Region {
        Region(String::from("local"))
    }
}

/// A person's or a meeting's display name (`VARCHAR(255)`): trimmed, 1 to 255
/// characters, none that would hide or disguise it (see [`shown_name_problem`]): it is
/// shown to everyone in the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 255;

    /// A name a user gives (a meeting's, a guest's, an account's).
    pub fn parse(s: &str) -> Result<DisplayName, InvalidId> {
        match shown_name_problem(s.trim()) {
            Some(problem) => Err(InvalidId::new(DISPLAY_NAME, s, problem)),
            None => DisplayName::stored(s),
        }
    }

    /// A name read back from a row or a token that Tavern wrote: trimmed, bounded and
    /// without control characters, but not held to [`shown_name_problem`], so that a
    /// name saved before that rule stays readable.
    pub fn stored(s: &str) -> Result<DisplayName, InvalidId> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(InvalidId::new(DISPLAY_NAME, s, "empty"));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidId::new(
                DISPLAY_NAME,
                s,
                "longer than 255 characters",
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidId::new(
                DISPLAY_NAME,
                s,
                "control characters are not allowed",
            ));
        }
        Ok(DisplayName(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const DISPLAY_NAME: &str = "display name";

/// Why `name`, a name users give that others see (a display name, an API key's name),
/// cannot be shown as typed: its first control character, line or paragraph separator
/// (U+2028, U+2029: a name is one line), direction override or isolate (U+202A to
/// U+202E, U+2066 to U+2069), or other invisible format character
/// (Unicode's general category Cf: U+200B to U+200F, U+2060, U+FEFF, ...), named as
/// `U+202E`. `None` when it can.
///
/// Three format characters are kept where emoji and scripts need them, and only there:
/// U+200D (zero width joiner) and U+200C (zero width non-joiner) between two non-ASCII
/// characters that are not themselves format or control characters (family,
/// profession and flag emoji; Persian keeps the letters of one word apart with U+200C,
/// and Indic scripts write it after a virama, a combining mark), and the tag
/// characters U+E0020 to U+E007F right after U+1F3F4 or another tag (the flags of
/// England, Scotland and Wales).
pub fn shown_name_problem(name: &str) -> Option<String> {
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let after = chars.get(i + 1).copied();
        let kept = (matches!(c, '\u{200C}' | '\u{200D}') && joins_symbols(before, after))
            || (is_tag(c) && before.is_some_and(|b| b == '\u{1F3F4}' || is_tag(b)));
        let kind = if c.is_control() {
            "a control character"
        } else if matches!(c, '\u{2028}' | '\u{2029}') {
            "a line break"
        } else if is_direction_control(c) {
            "a text direction override"
        } else if is_format(c) && !kept {
            "an invisible formatting character"
        } else {
            continue;
        };
        return Some(format!("U+{:04X} ({kind}) is not allowed", u32::from(c)));
    }
    None
}

/// U+200D or U+200C may stand between `before` and `after` when both are non-ASCII and
/// visible.
fn joins_symbols(before: Option<char>, after: Option<char>) -> bool {
    let visible =
        |c: Option<char>| c.is_some_and(|c| !c.is_ascii() && !is_format(c) && !c.is_control());
    visible(before) && visible(after)
}

/// The bidirectional embeddings, overrides and isolates.
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0020}'..='\u{E007F}')
}

/// Unicode's general category Cf (format), as of Unicode 15.1.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

impl FromStr for DisplayName {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<DisplayName, InvalidId> {
        DisplayName::parse(s)
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! seed_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in the seed's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as stored (exactly the seed's spelling).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Result<$name, InvalidId> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InvalidId::new($what, s, "not one of the seed's values")),
                }
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<$name, InvalidId> {
                $name::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

seed_enum!(
    /// `meetings.status`; also the `status` field of the `meeting:{meeting_id}` hash.
    MeetingStatus, "meeting status" {
        Scheduled => "scheduled",
        Active => "active",
        Ended => "ended",
    }
);
seed_enum!(
    /// `meeting_participants.leave_reason`.
    LeaveReason, "leave reason" {
        Voluntary => "voluntary",
        Kicked => "kicked",
        ConnectionLost => "connection_lost",
        MeetingEnded => "meeting_ended",
    }
);
seed_enum!(
    /// `recordings.status`.
    RecordingStatus, "recording status" {
        Recording => "recording",
        Processing => "processing",
        Ready => "ready",
        Failed => "failed",
    }
);
seed_enum!(
    /// `meeting_controllers.health_status`, `media_handlers.health_status` and the
    /// `health` field of `controller:{controller_id}:capacity`. The seed names `healthy`,
    /// `degraded` and `unhealthy`; `draining` is Dark Tower's fourth state, a controller
    /// or handler that is stopping (the column is free text, `VARCHAR(20)`).
    HealthStatus, "health status" {
        Healthy => "healthy",
        Degraded => "degraded",
        Unhealthy => "unhealthy",
        Draining => "draining",
    }
);
seed_enum!(
    /// `audit_logs.actor_type`.
    ActorType, "actor type" {
        User => "user",
        System => "system",
        Api => "api",
    }
);
seed_enum!(
    /// `audit_logs.result`.
    AuditResult, "audit result" {
        Success => "success",
        Failure => "failure",
    }
);
seed_enum!(
    /// The `connection_type` field of `wt:token:{token}`. The seed shows `media`; Dark
    /// Tower's meeting controller also takes a signalling connection, and Tavern's media
    /// handlers open `relay` connections to each other (one meeting on several handlers).
    /// The field is free text in the seed (a Redis hash field, in no table).
    ///
    /// `media` is a participant's media session, admitted only while that participant
    /// is in the meeting. `recorder` is a media session of a client of the server's own
    /// (the recorder, `tavern bench media`) under a fresh id that never joins: only
    /// server-side code issues it, never a route a participant reaches, and only the
    /// media handler's `/media/` path takes it.
    ConnectionType, "connection type" {
        Media => "media",
        Signaling => "signaling",
        Relay => "relay",
        Recorder => "recorder",
    }
);

/// The connections a participant is issued a token for ([`crate::Repo::issue_participant_token`]):
/// its signalling session with the meeting controller and its media session. There is
/// no `recorder` here: a path that serves participants cannot name one.
///
/// ```compile_fail
/// let _ = meetings::domain::ParticipantConnection::Recorder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantConnection {
    Signaling,
    Media,
}

/// The connections of the server's own clients ([`crate::Repo::issue_service_token`]): a
/// recorder's (or `tavern bench media`'s) media session under an id that never joins,
/// and a media handler's relay to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceConnection {
    Recorder,
    Relay,
}

impl From<ParticipantConnection> for ConnectionType {
    fn from(kind: ParticipantConnection) -> ConnectionType {
        match kind {
            ParticipantConnection::Signaling => ConnectionType::Signaling,
            ParticipantConnection::Media => ConnectionType::Media,
        }
    }
}

impl From<ServiceConnection> for ConnectionType {
    fn from(kind: ServiceConnection) -> ConnectionType {
        match kind {
            ServiceConnection::Recorder => ConnectionType::Recorder,
            ServiceConnection::Relay => ConnectionType::Relay,
        }
    }
}

seed_enum!(
    /// The `stream_type` field of `stream:{stream_id}`. The seed shows `video_camera`; the
    /// other two are the other things a participant publishes (microphone, shared screen).
    StreamType, "stream type" {
        VideoCamera => "video_camera",
        VideoScreen => "video_screen",
        AudioMicrophone => "audio_microphone",
    }
);

impl MeetingStatus {
    /// Whether people may still join: not once the meeting has ended.
    pub fn is_joinable(self) -> bool {
        !matches!(self, MeetingStatus::Ended)
    }
}

/// The short human-readable code of a meeting (`meetings.meeting_code`, `VARCHAR(20)`).
///
/// Format: ten symbols from a 30-symbol alphabet, shown in groups of three, four and three
/// (`ABC-DEFG-HJK`, twelve characters). The alphabet is the digits 2-9 and the capital
/// letters without `I`, `L`, `O` and `U`, so nothing reads as something else (0/O, 1/I/L)
/// and no accidental words form around `U`. 30^10 ≈ 5.9e14 codes: a collision among
/// millions of meetings is rare, and creation retries on one. Parsing is forgiving
/// (case, spaces and hyphens anywhere); the stored form is always the canonical one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeetingCode(String);

impl MeetingCode {
    /// The symbols codes are made of.
    pub const ALPHABET: &'static [u8; 30] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
    /// Symbols in a code (without separators).
    pub const SYMBOLS: usize = 10;
    /// Group sizes of the canonical form.
    const GROUPS: [usize; 3] = [3, 4, 3];

    /// A random code.
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> MeetingCode {
        let symbols: Vec<u8> = (0..Self::SYMBOLS)
            .map(|_| Self::ALPHABET[rng.random_range(0..Self::ALPHABET.len())])
            .collect();
        MeetingCode::from_symbols(&symbols)
    }

    fn from_symbols(symbols: &[u8]) -> MeetingCode {
        let mut out = String::with_capacity(Self::SYMBOLS + Self::GROUPS.len() - 1);
        let mut rest = symbols;
        for (i, size) in Self::GROUPS.iter().enumerate() {
            if i > 0 {
                out.push('-');
            }
            let (group, tail) = rest.split_at((*size).min(rest.len()));
            out.extend(group.iter().map(|&b| char::from(b)));
            rest = tail;
        }
        MeetingCode(out)
    }

    /// Reads a code as a person may type it: `abc-defg-hjk`, `ABCDEFGHJK`, `abc defg hjk`.
    pub fn parse(s: &str) -> Result<MeetingCode, InvalidId> {
        const WHAT: &str = "meeting code";
        let mut symbols = Vec::with_capacity(Self::SYMBOLS);
        for c in s.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let upper = c.to_ascii_uppercase();
            if !upper.is_ascii() || !Self::ALPHABET.contains(&(upper as u8)) {
                return Err(InvalidId::new(
                    WHAT,
                    s,
                    "only 2-9 and letters other than I, L, O, U are used",
                ));
            }
            symbols.push(upper as u8);
            if symbols.len() > Self::SYMBOLS {
                return Err(InvalidId::new(WHAT, s, "too long"));
            }
        }
        if symbols.len() != Self::SYMBOLS {
            return Err(InvalidId::new(WHAT, s, "a code has 10 symbols"));
        }
        Ok(MeetingCode::from_symbols(&symbols))
    }

    /// The canonical form, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MeetingCode {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<MeetingCode, InvalidId> {
        MeetingCode::parse(s)
    }
}

impl fmt::Display for MeetingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a person or a path names a meeting: by its id, or by its code as typed (the API's
/// `/api/v1/meetings/{meeting}`, `tavern meetings join CODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingKey {
    Id(MeetingId),
    Code(MeetingCode),
}

impl MeetingKey {
    /// A meeting id, else a meeting code; the code's reason when it is neither.
    pub fn parse(s: &str) -> Result<MeetingKey, InvalidId> {
        match MeetingId::parse(s.trim()) {
            Ok(id) => Ok(MeetingKey::Id(id)),
            Err(_) => MeetingCode::parse(s).map(MeetingKey::Code),
        }
    }
}

base::key_id! {
    /// The `{endpoint}` or `{identifier}` of a rate-limit key, e.g. `api:meetings:create`
    /// or `user:123` (`:` allowed, as in the seed's example; no spaces, no braces, which
    /// would act as a Redis Cluster hash tag).
    pub struct RateLimitPart(String) {
        what: "rate-limit key part", chars: base::id::SEGMENTED, max: 200
    }
}

base::key_id! {
    /// The hash of a JWT (`{token_hash}`; Tavern writes SHA-256 in lowercase hex), never
    /// the token itself: a leaked Redis dump then holds no usable token (so the hash
    /// itself is not a secret).
    pub struct TokenHash(String) { what: "token hash", chars: base::id::NAME, max: 256 }
}

base::key_id! {
    /// The `{entity_id}` of `cache:{entity_type}:{entity_id}`: the cached row's id
    /// (made from the typed ids with `From`; parsed when it comes as text).
    pub struct CacheEntityId(String) {
        what: "cached entity id", chars: base::id::NAME, max: 255
    }
}

impl From<MeetingId> for CacheEntityId {
    fn from(id: MeetingId) -> CacheEntityId {
        CacheEntityId(id.to_string())
    }
}

impl From<UserId> for CacheEntityId {
    fn from(id: UserId) -> CacheEntityId {
        CacheEntityId(id.to_string())
    }
}

impl From<RecordingId> for CacheEntityId {
    fn from(id: RecordingId) -> CacheEntityId {
        CacheEntityId(id.to_string())
    }
}

impl From<&ControllerId> for CacheEntityId {
    fn from(id: &ControllerId) -> CacheEntityId {
        CacheEntityId(id.as_str().to_owned())
    }
}

base::key_id! {
    /// The one-time `state` of a "log in with Discord" (`{state}` of
    /// `tavern:meetings:oauth_state:{state}`): 43 random letters and digits (a state of
    /// the earlier base64url form, with `-` and `_`, still reads). It is a bearer secret
    /// until used, so `Debug` is redacted; a presented one is parsed before it becomes
    /// part of a key, and one of any other shape is refused.
    pub secret struct OAuthState(String) {
        what: "login state", chars: base::id::URL_SAFE, max: 43, min: 43, random: 43,
    }
}

/// A WebTransport connection token (`{token}`): 32 random bytes in lowercase hex. It
/// grants a connection to whoever presents it, so it is a [`Secret`]: `Debug` is
/// redacted, there is no `Display`, and only [`WtToken::expose`] gives the value (for
/// its key and for the client it is issued to).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WtToken(Secret);

impl WtToken {
    pub const HEX_LEN: usize = 64;

    /// A fresh token from `rng` (give it a cryptographically secure one).
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> WtToken {
        let bytes: [u8; 32] = rng.random();
        WtToken(Secret::new(
            bytes.iter().map(|b| format!("{b:02x}")).collect(),
        ))
    }

    /// Reads a presented token. The error shows no part of it.
    pub fn parse(s: &str) -> Result<WtToken, InvalidId> {
        let ok = s.len() == Self::HEX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(InvalidId::new(
                "connection token",
                "[redacted]",
                "expected 64 lowercase hex digits",
            ));
        }
        Ok(WtToken(Secret::from(s)))
    }

    /// The token, for its key and for the client it is issued to. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_str()
    }

    /// True when `presented` is this token (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        self.0.matches(presented)
    }
}

/// The query parameter carrying the one-time connection token when a client opens its
/// WebTransport session: `{webtransport_url}?wt_token={token}`.
pub const WT_TOKEN_PARAM: &str = "wt_token";

/// Where a client opens its WebTransport session to a meeting: the controller's
/// `endpoint` (`https://host:port`) and `/meetings/{meeting_id}`.
pub fn webtransport_url(endpoint: &str, meeting: MeetingId) -> String {
    format!("{}/meetings/{meeting}", endpoint.trim_end_matches('/'))
}

/// When a registered meeting controller or media handler counts as alive: it must have
/// sent a heartbeat within `heartbeat_limit` (and a controller's
/// `controller:{controller_id}:capacity` hash, which expires 5 minutes after its last
/// report, must still exist). One whose heartbeats stopped gets no new meeting; it comes
/// back with its next heartbeat. The limit is the caller's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub heartbeat_limit: TimeDelta,
}

impl Liveness {
    /// Three missed heartbeats of a controller reporting every 10 s.
    pub const DEFAULT_HEARTBEAT_LIMIT: TimeDelta = TimeDelta::seconds(30);

    /// Whether a heartbeat at `last_heartbeat_at` is recent enough at `now`. A heartbeat
    /// stamped in the future (another replica's clock ahead) counts as recent.
    pub fn is_alive(&self, last_heartbeat_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now - last_heartbeat_at <= self.heartbeat_limit
    }

    /// The oldest heartbeat that still counts at `now`.
    pub fn oldest_alive(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.heartbeat_limit
    }
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness {
            heartbeat_limit: Liveness::DEFAULT_HEARTBEAT_LIMIT,
        }
    }
}

impl HealthStatus {
    /// Whether a controller or handler in this state may be given new work: only
    /// `healthy` ones. `degraded` keeps what it has (its meetings stay where their
    /// participants are) but gets nothing new; `unhealthy` and `draining` get nothing.
    pub fn takes_new_work(self) -> bool {
        matches!(self, HealthStatus::Healthy)
    }

    /// Whether a controller or handler in this state keeps what it was given (a
    /// controller its meetings, a handler its meetings' new sessions): `healthy` and
    /// `degraded` ones. A `draining` one is stopping and hands its work on; an
    /// `unhealthy` one loses it.
    pub fn keeps_its_work(self) -> bool {
        matches!(self, HealthStatus::Healthy | HealthStatus::Degraded)
    }
}

/// A meeting controller or a media handler, as the choice of one for a new meeting sees
/// it: one rule ([`accepts_meeting`](Assignee::accepts_meeting)) and one weighted choice
/// ([`choose_controller`], [`choose_media_handler`]) serve both.
pub trait Assignee {
    /// Its region.
    fn region(&self) -> &Region;

    /// Its last reported health.
    fn health(&self) -> HealthStatus;

    /// Whether it is alive at `now`.
    fn alive(&self, now: DateTime<Utc>, liveness: &Liveness) -> bool;

    /// Its weight in the choice: free slots, or 0 when it cannot take a meeting.
    fn free_capacity(&self) -> u64;

    /// Whether it may get a new meeting of `region` at `now`: of the region, `healthy`,
    /// alive and with free capacity.
    fn accepts_meeting(&self, region: &Region, now: DateTime<Utc>, liveness: &Liveness) -> bool {
        self.region() == region
            && self.health().takes_new_work()
            && self.alive(now, liveness)
            && self.free_capacity() > 0
    }
}

/// `max` less `current` slots, or 0 when the gate (`gate_max` less `gate_current`) has
/// nothing left: the weight is counted in one unit, the other only gates.
fn free_slots(max: i32, current: i32, gate_max: i32, gate_current: i32) -> u64 {
    if i64::from(gate_max) - i64::from(gate_current) <= 0 {
        return 0;
    }
    u64::try_from(i64::from(max) - i64::from(current)).unwrap_or(0)
}

/// Among `candidates`, one that [accepts](Assignee::accepts_meeting) a meeting of
/// `region` at `now`, at random with probability proportional to its free capacity.
fn choose<'a, T: Assignee, R: Rng + ?Sized>(
    candidates: &'a [T],
    region: &Region,
    now: DateTime<Utc>,
    liveness: &Liveness,
    rng: &mut R,
) -> Option<&'a T> {
    weighted_choice(
        candidates
            .iter()
            .filter(|c| c.accepts_meeting(region, now, liveness))
            .map(|c| (c, c.free_capacity())),
        rng,
    )
}

/// What the assignment needs to know of one registered meeting controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerLoad {
    pub controller_id: ControllerId,
    pub region: Region,
    pub health: HealthStatus,
    pub max_meetings: i32,
    pub current_meetings: i32,
    pub max_participants: i32,
    pub current_participants: i32,
    /// `meeting_controllers.last_heartbeat_at`.
    pub last_heartbeat_at: DateTime<Utc>,
    /// Whether its `controller:{controller_id}:capacity` hash still exists (it expires 5
    /// minutes after the last report).
    pub capacity_reported: bool,
}

impl ControllerLoad {
    /// Whether it is alive at `now`: a recent heartbeat and a capacity hash still there.
    pub fn is_alive(&self, now: DateTime<Utc>, liveness: &Liveness) -> bool {
        self.capacity_reported && liveness.is_alive(self.last_heartbeat_at, now)
    }

    /// Whether a meeting already assigned to it stays there at `now`: while it is alive
    /// and `healthy` or `degraded`. A `degraded` controller keeps the meetings it has
    /// (their participants are connected to it) but gets no new one; a `draining` one
    /// is stopping and has handed its meetings on, and an `unhealthy` one loses them.
    pub fn keeps_meetings(&self, now: DateTime<Utc>, liveness: &Liveness) -> bool {
        self.is_alive(now, liveness) && self.health.keeps_its_work()
    }
}

impl Assignee for ControllerLoad {
    fn region(&self) -> &Region {
        &self.region
    }

    fn health(&self) -> HealthStatus {
        self.health
    }

    /// A recent heartbeat and a capacity hash still there ([`ControllerLoad::is_alive`]).
    fn alive(&self, now: DateTime<Utc>, liveness: &Liveness) -> bool {
        self.is_alive(now, liveness)
    }

    /// Its free meeting slots, or 0 when it cannot take a meeting (full on meetings or
    /// on participants). Participants are a gate, not a weight: a meeting's size is
    /// unknown when it is assigned.
    fn free_capacity(&self) -> u64 {
        free_slots(
            self.max_meetings,
            self.current_meetings,
            self.max_participants,
            self.current_participants,
        )
    }
}

/// Picks the meeting controller for a new meeting: among the controllers that
/// [accept](Assignee::accepts_meeting) a meeting of `region` at `now`, one at random
/// with probability proportional to its free meeting slots. Spreading by weight (rather
/// than always the emptiest) keeps replicas of the global controller that decide at the
/// same moment from piling onto one controller. `None` when no controller in the region
/// can take it.
pub fn choose_controller<'a, R: Rng + ?Sized>(
    candidates: &'a [ControllerLoad],
    region: &Region,
    now: DateTime<Utc>,
    liveness: &Liveness,
    rng: &mut R,
) -> Option<&'a ControllerLoad> {
    choose(candidates, region, now, liveness, rng)
}

/// What the assignment needs to know of one registered media handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerLoad {
    pub handler_id: HandlerId,
    pub region: Region,
    pub health: HealthStatus,
    pub max_streams: i32,
    pub current_streams: i32,
    pub max_bitrate_mbps: i32,
    pub current_bitrate_mbps: i32,
    /// `media_handlers.last_heartbeat_at`.
    pub last_heartbeat_at: DateTime<Utc>,
}

impl Assignee for HandlerLoad {
    fn region(&self) -> &Region {
        &self.region
    }

    fn health(&self) -> HealthStatus {
        self.health
    }

    /// A recent heartbeat.
    fn alive(&self, now: DateTime<Utc>, liveness: &Liveness) -> bool {
        liveness.is_alive(self.last_heartbeat_at, now)
    }

    /// Free stream slots, or 0 when the handler has no bitrate left: streams are the
    /// weight, bandwidth the gate (as for controllers, meetings and participants).
    fn free_capacity(&self) -> u64 {
        free_slots(
            self.max_streams,
            self.current_streams,
            self.max_bitrate_mbps,
            self.current_bitrate_mbps,
        )
    }
}

/// Picks the media handler of a meeting, as [`choose_controller`] does: an alive,
/// `healthy` one of `region`, weighted by free stream slots.
pub fn choose_media_handler<'a, R: Rng + ?Sized>(
    candidates: &'a [HandlerLoad],
    region: &Region,
    now: DateTime<Utc>,
    liveness: &Liveness,
    rng: &mut R,
) -> Option<&'a HandlerLoad> {
    choose(candidates, region, now, liveness, rng)
}

/// One item at random, with probability proportional to its weight; items of weight 0
/// are never chosen. `None` when every weight is 0.
fn weighted_choice<T, R: Rng + ?Sized>(
    items: impl Iterator<Item = (T, u64)>,
    rng: &mut R,
) -> Option<T> {
    let eligible: Vec<(T, u64)> = items.filter(|(_, w)| *w > 0).collect();
    let total = eligible
        .iter()
        .try_fold(0u64, |sum, (_, w)| sum.checked_add(*w))?;
    if total == 0 {
        return None;
    }
    let mut ticket = rng.random_range(0..total);
    for (item, weight) in eligible {
        if ticket < weight {
            return Some(item);
        }
        ticket -= weight;
    }
    None
}

/// One calendar month in UTC: the unit of `audit_logs` partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// `month` is 1..=12; the year is limited to four digits (partition names carry four).
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1..=12).contains(&month) && (1..=9999).contains(&year)).then_some(Month { year, month })
    }

    /// The month containing `at` (in UTC).
    pub fn containing(at: DateTime<Utc>) -> Month {
        Month {
            year: at.year(),
            month: at.month(),
        }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Midnight UTC on the 1st.
    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The start of the next month: the exclusive upper bound of this month's partition.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// The 1st, as a date (what `audit_logs_ensure_partition` takes).
    pub fn first_day(self) -> chrono::NaiveDate {
        self.start().date_naive()
    }
}

/// How long each kind of data is kept: the seed's retention table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Meetings: 90 days after they end (their participants go with them, by cascade).
    pub meetings_after_end: TimeDelta,
    /// Recordings: configurable, one year by default, counted from `created_at`.
    pub recordings: Months,
    /// Audit logs: one year, by dropping whole month partitions.
    pub audit_logs: Months,
    /// How many months of `audit_logs` partitions exist ahead of the current one.
    pub audit_partitions_ahead: u32,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            meetings_after_end: TimeDelta::days(90),
            recordings: Months::new(12),
            audit_logs: Months::new(12),
            audit_partitions_ahead: 1,
        }
    }
}

impl Retention {
    /// Meetings that ended at or before this instant are due for deletion at `now`.
    pub fn meetings_ended_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.meetings_after_end
    }

    /// Whether a meeting in `status` that ended at `ended_at` is due at `now`. A meeting
    /// that has not ended is never due, whatever its age.
    pub fn meeting_due(
        &self,
        status: MeetingStatus,
        ended_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        status == MeetingStatus::Ended
            && ended_at.is_some_and(|at| at <= self.meetings_ended_before(now))
    }

    /// Recordings created at or before this instant are due at `now`.
    pub fn recordings_created_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_months(self.recordings)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn recording_due(&self, created_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        created_at <= self.recordings_created_before(now)
    }

    /// Audit rows written before this instant are due at `now`.
    pub fn audit_logs_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_months(self.audit_logs)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// A month's partition is dropped once its *newest* possible row is past retention,
    /// so no row is deleted early.
    pub fn audit_partition_due(&self, month: Month, now: DateTime<Utc>) -> bool {
        month.end() <= self.audit_logs_before(now)
    }

    /// The months whose partitions should exist at `now`: this one and the next
    /// [`Retention::audit_partitions_ahead`].
    pub fn audit_partitions_needed(&self, now: DateTime<Utc>) -> Vec<Month> {
        let mut month = Month::containing(now);
        let mut months = vec![month];
        for _ in 0..self.audit_partitions_ahead {
            month = month.next();
            months.push(month);
        }
        months
    }
}

/// The TTL (whole seconds, at least 1) a key must get to live until `expires_at`, or
/// `None` when that moment has passed (nothing to store).
pub fn seconds_until(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<u64> {
    let left = expires_at - now;
    if left <= TimeDelta::zero() {
        return None;
    }
    // Round up: a key must not expire before the token does.
    let millis = u64::try_from(left.num_milliseconds()).ok()?;
    Some(millis.div_ceil(1000).max(1))
}

/// The start (Unix seconds) of the fixed window of `window_seconds` containing `now`: the
/// `{window}` part of `ratelimit:{endpoint}:{identifier}:{window}`.
pub fn rate_limit_window(now: DateTime<Utc>, window_seconds: u64) -> i64 {
    let width = i64::try_from(window_seconds.max(1)).unwrap_or(i64::MAX);
    now.timestamp().div_euclid(width) * width
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn uuid_ids_round_trip_in_the_hyphenated_lowercase_form() {
        let text = "550e8400-e29b-41d4-a716-446655440000";
        let id = MeetingId::parse(text).unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(
            MeetingId::parse("550E8400-E29B-41D4-A716-446655440000")
                .unwrap()
                .to_string(),
            text
        );
        let err = ParticipantId::parse("stream1").unwrap_err();
        assert_eq!(err.what, "participant id");
        assert_ne!(StreamId::random(), StreamId::random());
    }

    #[test]
    fn names_used_in_keys_reject_separators_braces_and_excess_length() {
        assert_eq!(
            ControllerId::parse("mc-us-west-1-001").unwrap().as_str(),
            "mc-us-west-1-001"
        );
        for bad in ["", "mc:1", "mc{1}", "mc 1", "mç"] {
            assert!(ControllerId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HandlerId::parse(&"h".repeat(255)).is_ok());
        assert!(HandlerId::parse(&"h".repeat(256)).is_err());
        assert!(Region::parse(&"r".repeat(50)).is_ok());
        assert!(Region::parse(&"r".repeat(51)).is_err());
    }

    #[test]
    fn key_parts_reject_what_would_break_a_key() {
        for bad in ["", "a b", "a{b}", "a\nb"] {
            assert!(RateLimitPart::parse(bad).is_err(), "{bad:?}");
            assert!(TokenHash::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TokenHash::parse("a:b").is_err());
        assert!(WtToken::parse(&"A".repeat(64)).is_err());
        assert!(WtToken::parse("abc").is_err());
    }

    #[test]
    fn key_parts_keep_the_seed_s_colons_and_say_what_was_wrong() {
        let endpoint = RateLimitPart::parse("api:meetings:create").unwrap();
        assert_eq!(endpoint.as_str(), "api:meetings:create");
        assert!(RateLimitPart::parse(&"a".repeat(200)).is_ok());
        let error = RateLimitPart::parse(&"a".repeat(201)).unwrap_err();
        assert_eq!(error.what, "rate-limit key part");
        assert_eq!(error.reason, "it is longer than 200 characters");
        let error = RateLimitPart::parse("user:{1}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`user:{1}` is not a valid rate-limit key part: \
             only printable ASCII other than spaces, '{' and '}' are allowed"
        );
        let hash = crate::auth::sha256_hex(b"token");
        assert_eq!(TokenHash::parse(&hash).unwrap().as_str(), hash);
        let error = TokenHash::parse("ab:12").unwrap_err();
        assert_eq!(error.what, "token hash");
        assert_eq!(
            error.reason,
            "only ASCII letters, digits, '.', '_' and '-' are allowed"
        );
        assert!(TokenHash::parse(&"a".repeat(256)).is_ok());
        assert!(TokenHash::parse(&"a".repeat(257)).is_err());
    }

    #[test]
    fn cached_entity_ids_come_from_the_typed_ids() {
        let meeting = MeetingId::random();
        assert_eq!(
            CacheEntityId::from(meeting).as_str(),
            meeting.to_string().as_str()
        );
        let controller = ControllerId::parse("mc-1").unwrap();
        assert_eq!(CacheEntityId::from(&controller).as_str(), "mc-1");
        assert_eq!(CacheEntityId::parse("u1").unwrap().as_str(), "u1");
        for bad in ["", "a:b", "a b", "{a}", "a*"] {
            assert_eq!(
                CacheEntityId::parse(bad).unwrap_err().what,
                "cached entity id"
            );
        }
    }

    #[test]
    fn login_states_are_random_one_shape_and_hidden_from_debug() {
        let state = OAuthState::random();
        assert_eq!(state.expose().len(), 43);
        assert_eq!(OAuthState::parse(state.expose()).unwrap(), state);
        assert_ne!(OAuthState::random(), state);
        assert_eq!(format!("{state:?}"), "OAuthState([redacted])");
        for bad in ["", "short", "a:b", &format!("{}:", "a".repeat(42))] {
            let error = OAuthState::parse(bad).unwrap_err();
            assert_eq!(error.what, "login state");
            assert_eq!(error.value, "[redacted]", "{error}");
        }
    }

    #[test]
    fn connection_tokens_are_64_hex_digits_hidden_from_debug() {
        let mut rng = StdRng::seed_from_u64(3);
        let token = WtToken::generate(&mut rng);
        assert_eq!(WtToken::parse(token.expose()).unwrap(), token);
        assert_ne!(WtToken::generate(&mut rng), token);
        assert!(!format!("{token:?}").contains(token.expose()));
        assert_eq!(format!("{token:?}"), "WtToken(Secret([redacted]))");
    }

    #[test]
    fn display_names_are_trimmed_bounded_and_printable() {
        assert_eq!(DisplayName::parse("  Alice ").unwrap().as_str(), "Alice");
        assert!(DisplayName::parse(&"é".repeat(255)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(256)).is_err());
        for bad in ["", "   ", "a\u{7}b"] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names_refuse_invisible_and_direction_characters_naming_them() {
        let problem = |name: &str| DisplayName::parse(name).map(|_| ()).map_err(|e| e.reason);
        for (name, named) in [
            ("a\u{200B}b\u{202E}", "U+200B"),
            ("\u{202E}evil", "U+202E"),
            ("x\u{2066}y", "U+2066"),
            ("\u{FEFF}Mira", "U+FEFF"),
            ("Mi\u{00AD}ra", "U+00AD"),
            ("Mi\u{200F}ra", "U+200F"),
            ("a\u{200D}b", "U+200D"),
            ("\u{200D}\u{1F469}", "U+200D"),
            ("\u{1F469}\u{200D}", "U+200D"),
            ("\u{200C}", "U+200C"),
            ("\u{200C}\u{0645}\u{06CC}", "U+200C"),
            ("\u{0645}\u{06CC}\u{200C}", "U+200C"),
            ("a\u{200C}b", "U+200C"),
            ("\u{0645}\u{200C}\u{200C}\u{0645}", "U+200C"),
            ("flag\u{E0067}", "U+E0067"),
            ("a\u{7}b", "U+0007"),
            ("two\u{2028}lines", "U+2028 (a line break)"),
            ("two\u{2029}paragraphs", "U+2029 (a line break)"),
        ] {
            let reason = problem(name).expect_err(name);
            assert!(reason.starts_with(named), "{name:?}: {reason}");
        }
        for good in [
            "Zoë Ångström",
            "山田 太郎",
            "Mira 🐉",
            // Family (ZWJ sequence), a rainbow flag, England's flag (tags).
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
            "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}",
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            // Persian "می‌خواهم", its two parts kept apart by U+200C.
            "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}",
            // Devanagari "क्‌ष": U+200C right after the virama (a combining mark).
            "\u{0915}\u{094D}\u{200C}\u{0937}",
        ] {
            assert_eq!(problem(good), Ok(()), "{good:?}");
        }
        // Names saved before the rule stay readable.
        assert!(DisplayName::stored("a\u{200B}b").is_ok());
        assert!(DisplayName::stored("a\u{7}b").is_err());
    }

    #[test]
    fn enums_speak_exactly_the_seed_values() {
        let spelled = |all: Vec<&'static str>| all.join(",");
        assert_eq!(
            spelled(MeetingStatus::ALL.iter().map(|s| s.as_str()).collect()),
            "scheduled,active,ended"
        );
        assert_eq!(
            spelled(LeaveReason::ALL.iter().map(|s| s.as_str()).collect()),
            "voluntary,kicked,connection_lost,meeting_ended"
        );
        assert_eq!(
            spelled(RecordingStatus::ALL.iter().map(|s| s.as_str()).collect()),
            "recording,processing,ready,failed"
        );
        assert_eq!(
            spelled(HealthStatus::ALL.iter().map(|s| s.as_str()).collect()),
            "healthy,degraded,unhealthy,draining"
        );
        assert_eq!(
            spelled(ActorType::ALL.iter().map(|s| s.as_str()).collect()),
            "user,system,api"
        );
        assert_eq!(
            spelled(AuditResult::ALL.iter().map(|s| s.as_str()).collect()),
            "success,failure"
        );
        for s in LeaveReason::ALL {
            assert_eq!(LeaveReason::parse(s.as_str()).unwrap(), *s);
        }
        assert!(MeetingStatus::parse("Active").is_err());
        assert!(MeetingStatus::Active.is_joinable());
        assert!(!MeetingStatus::Ended.is_joinable());
    }

    #[test]
    fn generated_codes_are_canonical_fit_the_column_and_parse_back() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let code = MeetingCode::generate(&mut rng);
            let s = code.as_str();
            assert_eq!(s.len(), 12);
            assert!(s.len() <= 20, "fits VARCHAR(20)");
            let groups: Vec<&str> = s.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [3, 4, 3]
            );
            assert!(
                s.bytes()
                    .all(|b| b == b'-' || MeetingCode::ALPHABET.contains(&b))
            );
            assert_eq!(MeetingCode::parse(s).unwrap(), code);
        }
    }

    #[test]
    fn codes_parse_as_people_type_them_and_reject_ambiguous_symbols() {
        let canonical = MeetingCode::parse("ABC-DEFG-HJK").unwrap();
        assert_eq!(canonical.as_str(), "ABC-DEFG-HJK");
        for typed in ["abcdefghjk", " abc defg hjk ", "ab-cd-ef-gh-jk"] {
            assert_eq!(MeetingCode::parse(typed).unwrap(), canonical, "{typed:?}");
        }
        for bad in [
            "ABC-DEFG-HJ",
            "ABC-DEFG-HJKM",
            "OBC-DEFG-HJK",
            "1BC-DEFG-HJK",
            "ABC_DEFG_HJK",
            "",
        ] {
            assert!(MeetingCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_code_alphabet_has_no_look_alikes_and_no_duplicates() {
        let alphabet = MeetingCode::ALPHABET;
        for ambiguous in b"01ILOU" {
            assert!(!alphabet.contains(ambiguous));
        }
        let mut sorted = alphabet.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), alphabet.len());
    }

    /// "Now" of the registry tests; every load below reported at this instant.
    fn t0() -> DateTime<Utc> {
        at("2026-06-01T12:00:00Z")
    }

    fn load(
        id: &str,
        region: &str,
        health: HealthStatus,
        max: i32,
        current: i32,
    ) -> ControllerLoad {
        ControllerLoad {
            controller_id: ControllerId::parse(id).unwrap(),
            region: Region::parse(region).unwrap(),
            health,
            max_meetings: max,
            current_meetings: current,
            max_participants: 10_000,
            current_participants: 0,
            last_heartbeat_at: t0(),
            capacity_reported: true,
        }
    }

    #[test]
    fn only_healthy_controllers_of_the_region_with_room_are_chosen() {
        let region = Region::parse("us-west-1").unwrap();
        let candidates = vec![
            load("elsewhere", "eu-west-1", HealthStatus::Healthy, 1000, 0),
            load("degraded", "us-west-1", HealthStatus::Degraded, 1000, 0),
            load("unhealthy", "us-west-1", HealthStatus::Unhealthy, 1000, 0),
            load("full", "us-west-1", HealthStatus::Healthy, 1000, 1000),
            load("overfull", "us-west-1", HealthStatus::Healthy, 10, 12),
            load("good", "us-west-1", HealthStatus::Healthy, 1000, 999),
        ];
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let chosen =
                choose_controller(&candidates, &region, t0(), &Liveness::default(), &mut rng)
                    .unwrap();
            assert_eq!(chosen.controller_id.as_str(), "good");
        }
        let mut no_participant_room = load("p", "us-west-1", HealthStatus::Healthy, 10, 0);
        no_participant_room.current_participants = 10_000;
        assert_eq!(no_participant_room.free_capacity(), 0);
        assert!(
            choose_controller(
                &[no_participant_room],
                &region,
                t0(),
                &Liveness::default(),
                &mut rng
            )
            .is_none()
        );
        assert!(choose_controller(&[], &region, t0(), &Liveness::default(), &mut rng).is_none());
    }

    #[test]
    fn the_choice_is_weighted_by_free_meeting_slots() {
        let region = Region::parse("r1").unwrap();
        // Free slots 300 and 100: about three picks of `big` for one of `small`.
        let candidates = vec![
            load("big", "r1", HealthStatus::Healthy, 1000, 700),
            load("small", "r1", HealthStatus::Healthy, 1000, 900),
        ];
        let mut rng = StdRng::seed_from_u64(42);
        let big = (0..4000)
            .filter(|_| {
                choose_controller(&candidates, &region, t0(), &Liveness::default(), &mut rng)
                    .unwrap()
                    .controller_id
                    .as_str()
                    == "big"
            })
            .count();
        assert!((2800..=3200).contains(&big), "big chosen {big} of 4000");
    }

    #[test]
    fn the_same_seed_makes_the_same_choices() {
        let region = Region::parse("r1").unwrap();
        let candidates: Vec<ControllerLoad> = (0..5)
            .map(|i| load(&format!("mc-{i}"), "r1", HealthStatus::Healthy, 100, i * 10))
            .collect();
        let picks = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| {
                    choose_controller(&candidates, &region, t0(), &Liveness::default(), &mut rng)
                        .unwrap()
                        .controller_id
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(9), picks(9));
    }

    #[test]
    fn media_handlers_are_chosen_among_healthy_ones_of_the_region_by_free_streams() {
        let region = Region::parse("r1").unwrap();
        let handler =
            |id: &str, region: &str, health, streams: (i32, i32), mbps: (i32, i32)| HandlerLoad {
                handler_id: HandlerId::parse(id).unwrap(),
                region: Region::parse(region).unwrap(),
                health,
                max_streams: streams.0,
                current_streams: streams.1,
                max_bitrate_mbps: mbps.0,
                current_bitrate_mbps: mbps.1,
                last_heartbeat_at: t0(),
            };
        let candidates = vec![
            handler(
                "other-region",
                "r2",
                HealthStatus::Healthy,
                (100, 0),
                (100, 0),
            ),
            handler("degraded", "r1", HealthStatus::Degraded, (100, 0), (100, 0)),
            handler(
                "no-bandwidth",
                "r1",
                HealthStatus::Healthy,
                (100, 0),
                (100, 100),
            ),
            handler(
                "no-slots",
                "r1",
                HealthStatus::Healthy,
                (100, 100),
                (100, 0),
            ),
            handler("ok", "r1", HealthStatus::Healthy, (100, 99), (100, 99)),
        ];
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let chosen =
                choose_media_handler(&candidates, &region, t0(), &Liveness::default(), &mut rng)
                    .unwrap();
            assert_eq!(chosen.handler_id.as_str(), "ok");
        }
        assert!(
            choose_media_handler(
                &candidates[..4],
                &region,
                t0(),
                &Liveness::default(),
                &mut rng
            )
            .is_none()
        );
    }

    #[test]
    fn a_controller_whose_heartbeats_stopped_gets_nothing_until_it_reports_again() {
        let region = Region::parse("r1").unwrap();
        let live = Liveness::default();
        let mut quiet = load("quiet", "r1", HealthStatus::Healthy, 1000, 0);
        let mut steady = load("steady", "r1", HealthStatus::Healthy, 1000, 999);
        let mut rng = StdRng::seed_from_u64(11);

        // Exactly at the limit it still counts; one second later it does not.
        let now = t0() + live.heartbeat_limit;
        assert!(quiet.is_alive(now, &live));
        let later = now + TimeDelta::seconds(1);
        steady.last_heartbeat_at = later;
        assert!(!quiet.is_alive(later, &live));
        let both = [quiet.clone(), steady.clone()];
        for _ in 0..200 {
            let chosen = choose_controller(&both, &region, later, &live, &mut rng);
            assert_eq!(chosen.unwrap().controller_id.as_str(), "steady");
        }
        assert!(choose_controller(&[quiet.clone()], &region, later, &live, &mut rng).is_none());

        // Its capacity hash expired: dead even with a recent row.
        quiet.capacity_reported = false;
        assert!(!quiet.is_alive(t0(), &live));
        assert!(choose_controller(&[quiet.clone()], &region, t0(), &live, &mut rng).is_none());

        // It reports again: back in the choice.
        quiet.capacity_reported = true;
        quiet.last_heartbeat_at = later;
        assert!(choose_controller(&[quiet], &region, later, &live, &mut rng).is_some());

        // The limit is configuration.
        let patient = Liveness {
            heartbeat_limit: TimeDelta::minutes(5),
        };
        let reported = load("reported", "r1", HealthStatus::Healthy, 10, 0);
        assert!(reported.is_alive(t0() + TimeDelta::minutes(5), &patient));
        assert!(!reported.is_alive(t0() + TimeDelta::minutes(5), &live));
        assert_eq!(live.oldest_alive(t0()), t0() - TimeDelta::seconds(30));
        // A heartbeat stamped ahead of this replica's clock is recent, not stale.
        assert!(live.is_alive(t0() + TimeDelta::seconds(5), t0()));
    }

    #[test]
    fn draining_degraded_and_unhealthy_controllers_get_no_new_meetings() {
        let region = Region::parse("r1").unwrap();
        let live = Liveness::default();
        assert_eq!(
            HealthStatus::parse("draining").unwrap(),
            HealthStatus::Draining
        );
        for health in HealthStatus::ALL {
            let c = load("c", "r1", *health, 10, 0);
            assert_eq!(
                c.accepts_meeting(&region, t0(), &live),
                *health == HealthStatus::Healthy,
                "{health}"
            );
            assert_eq!(health.takes_new_work(), *health == HealthStatus::Healthy);
            assert_eq!(
                health.keeps_its_work(),
                matches!(health, HealthStatus::Healthy | HealthStatus::Degraded),
                "{health}"
            );
            // The meetings it has stay while it is healthy or degraded (and alive).
            assert_eq!(
                c.keeps_meetings(t0(), &live),
                matches!(health, HealthStatus::Healthy | HealthStatus::Degraded),
                "{health}"
            );
            assert!(!c.keeps_meetings(t0() + TimeDelta::minutes(1), &live));
        }
    }

    #[test]
    fn a_media_handler_whose_heartbeats_stopped_is_not_chosen() {
        let region = Region::parse("r1").unwrap();
        let live = Liveness::default();
        let handler = HandlerLoad {
            handler_id: HandlerId::parse("mh-1").unwrap(),
            region: region.clone(),
            health: HealthStatus::Healthy,
            max_streams: 10,
            current_streams: 0,
            max_bitrate_mbps: 10,
            current_bitrate_mbps: 0,
            last_heartbeat_at: t0(),
        };
        let mut rng = StdRng::seed_from_u64(5);
        let handlers = [handler];
        assert!(choose_media_handler(&handlers, &region, t0(), &live, &mut rng).is_some());
        let late = t0() + TimeDelta::seconds(31);
        assert!(choose_media_handler(&handlers, &region, late, &live, &mut rng).is_none());
    }

    #[test]
    fn meetings_are_due_ninety_days_after_they_end_and_never_before() {
        let rules = Retention::default();
        let now = at("2026-06-01T12:00:00Z");
        let ended = |s| Some(at(s));
        assert!(rules.meeting_due(MeetingStatus::Ended, ended("2026-03-03T12:00:00Z"), now));
        assert!(!rules.meeting_due(MeetingStatus::Ended, ended("2026-03-03T12:00:01Z"), now));
        assert!(!rules.meeting_due(MeetingStatus::Ended, None, now));
        assert!(!rules.meeting_due(MeetingStatus::Active, ended("2020-01-01T00:00:00Z"), now));
        assert!(!rules.meeting_due(MeetingStatus::Scheduled, ended("2020-01-01T00:00:00Z"), now));
        assert_eq!(rules.meetings_ended_before(now), at("2026-03-03T12:00:00Z"));
    }

    #[test]
    fn recordings_are_due_after_a_year_by_default_and_the_period_is_configurable() {
        let now = at("2026-06-01T00:00:00Z");
        let rules = Retention::default();
        assert!(rules.recording_due(at("2025-06-01T00:00:00Z"), now));
        assert!(!rules.recording_due(at("2025-06-01T00:00:01Z"), now));
        let short = Retention {
            recordings: Months::new(1),
            ..Retention::default()
        };
        assert!(short.recording_due(at("2026-05-01T00:00:00Z"), now));
        assert!(!short.recording_due(at("2026-05-15T00:00:00Z"), now));
    }

    #[test]
    fn an_audit_partition_is_dropped_only_once_its_whole_month_is_a_year_old() {
        let rules = Retention::default();
        let jan_2025 = Month::new(2025, 1).unwrap();
        assert_eq!(jan_2025.start(), at("2025-01-01T00:00:00Z"));
        assert_eq!(jan_2025.end(), at("2025-02-01T00:00:00Z"));
        assert!(!rules.audit_partition_due(jan_2025, at("2026-01-31T23:59:59Z")));
        assert!(rules.audit_partition_due(jan_2025, at("2026-02-01T00:00:00Z")));
        let dec = Month::new(2025, 12).unwrap();
        assert_eq!(dec.next(), Month::new(2026, 1).unwrap());
        assert_eq!(dec.end(), at("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn partitions_are_wanted_for_this_month_and_the_ones_ahead() {
        let rules = Retention::default();
        assert_eq!(
            rules.audit_partitions_needed(at("2026-12-31T23:59:59Z")),
            vec![Month::new(2026, 12).unwrap(), Month::new(2027, 1).unwrap()]
        );
        assert!(Month::new(2026, 13).is_none());
        assert!(Month::new(2026, 0).is_none());
        assert_eq!(
            Month::new(2026, 3).unwrap().first_day().to_string(),
            "2026-03-01"
        );
    }

    #[test]
    fn ttl_until_expiry_rounds_up_and_is_absent_for_the_past() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(
            seconds_until(now + TimeDelta::milliseconds(1500), now),
            Some(2)
        );
        assert_eq!(
            seconds_until(now + TimeDelta::seconds(3600), now),
            Some(3600)
        );
        assert_eq!(seconds_until(now, now), None);
        assert_eq!(seconds_until(now - TimeDelta::seconds(1), now), None);
    }

    #[test]
    fn rate_limit_windows_start_on_the_minute() {
        let t = at("2024-01-16T13:20:59Z");
        assert_eq!(rate_limit_window(t, 60), 1_705_411_200);
        assert_eq!(
            rate_limit_window(at("2024-01-16T13:21:00Z"), 60),
            1_705_411_260
        );
    }

    #[test]
    fn made_up_names_are_valid_ids_and_the_session_url_names_the_meeting() {
        assert_eq!(
            Region::parse(Region::local().as_str()).unwrap(),
            Region::local()
        );
        let (a, b) = (ControllerId::generate(), ControllerId::generate());
        assert_eq!(ControllerId::parse(a.as_str()).unwrap(), a);
        assert!(a.as_str().starts_with("mc-") && a.as_str().len() == 13);
        assert_ne!(a, b);
        let meeting = MeetingId::random();
        assert_eq!(
            webtransport_url("https://127.0.0.1:4433/", meeting),
            format!("https://127.0.0.1:4433/meetings/{meeting}")
        );
    }
}
