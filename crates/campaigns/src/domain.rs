//! The campaigns' rules, without I/O: typed ids, the shortcodes of Meetup event
//! descriptions, series types and the channel lifecycle (expiration, reminders, snooze,
//! end of an adventure), and the user-topic voice channel's name.
//!
//! Every function takes the time it needs as an argument, so the rules are tested
//! without a clock and the jobs that call them decide what "now" is.

use std::fmt;
use std::str::FromStr;

use base::InvalidId;
use chrono::{DateTime, TimeDelta, Utc};
use discord::model::{ChannelId, RoleId};

// ---------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------
//
// Every string id becomes part of a Redis key, so it is 1 to 64 ASCII letters or digits:
// never the `:` that separates a key's parts, nor the `*`, `?`, `[` of a `SCAN` pattern.
// The bound keeps a hostile value from producing huge keys (Meetup's ids are far shorter).

base::key_id! {
    /// A Meetup event's id (Meetup hands out digits or, in its newer API, letters and
    /// digits).
    pub struct MeetupEventId(String) {
        what: "Meetup event id", chars: base::id::ALNUM, max: 64, random: 12,
    }
}

base::key_id! {
    /// An event series' id, minted by Tavern when an event starts a new series.
    pub struct EventSeriesId(String) {
        what: "event series id", chars: base::id::ALNUM, max: 64, random: 16,
    }
}

impl EventSeriesId {
    /// The id of the series an event starts with `[new adventure]` / `[new campaign]`:
    /// the event's own id. Deterministic, so every sync (and every replica) names the
    /// series the same way without storing a mapping, and `[campaign <eventId>]` still
    /// finds the series by the id organisers write after that first event was cancelled
    /// (the series lives on while it has events or a channel). Both ids have the same
    /// form (1 to 64 ASCII letters or digits), so the conversion cannot fail.
    pub fn started_by(event: &MeetupEventId) -> EventSeriesId {
        EventSeriesId(event.as_str().to_owned())
    }
}

base::key_id! {
    /// The one-time id in a linking URL (`meetup_linking:{}:discord_user`). A bearer
    /// secret: whoever holds it may link a Meetup account to that Discord user, so its
    /// `Debug` is redacted and only [`LinkingId::expose`] gives it (to the key and the
    /// URL).
    pub secret struct LinkingId(String) {
        what: "linking id", chars: base::id::ALNUM, max: 64, random: 32,
    }
}

base::key_id! {
    /// The transient "user id" a browser carries in a cookie during linking; it names
    /// the CSRF token under `csrf:{}`. A bearer secret like [`LinkingId`].
    pub secret struct TransientUserId(String) {
        what: "transient user id", chars: base::id::ALNUM, max: 64, random: 32,
    }
}

base::key_id! {
    /// A Meetup member's id: a positive integer (Meetup never hands out zero), stored
    /// in decimal.
    pub struct MeetupUserId(u64) { what: "Meetup user id" }
}

pub use discord::model::parse_id as parse_snowflake;

// ---------------------------------------------------------------------------------------
// Series type
// ---------------------------------------------------------------------------------------

/// What kind of series an event belongs to; decides reminder timing and wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesType {
    /// Several sessions.
    Campaign,
    /// A one-shot.
    Adventure,
}

impl SeriesType {
    /// The value stored in `event_series:{}:type`.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesType::Campaign => "campaign",
            SeriesType::Adventure => "adventure",
        }
    }

    /// Reads the stored value.
    pub fn parse(value: &str) -> Result<SeriesType, InvalidId> {
        match value {
            "campaign" => Ok(SeriesType::Campaign),
            "adventure" => Ok(SeriesType::Adventure),
            other => Err(InvalidId::new(
                "series type",
                other,
                "expected `campaign` or `adventure`",
            )),
        }
    }

    /// The type of a series after a sync that counted `events` events in it: a series
    /// with more than one event is a campaign whatever it started as (an adventure that
    /// got a second session has become a campaign); otherwise the stored type stands,
    /// and a series with none stored is an adventure.
    pub fn after_sync(stored: Option<SeriesType>, events: usize) -> SeriesType {
        if events > 1 {
            SeriesType::Campaign
        } else {
            stored.unwrap_or(SeriesType::Adventure)
        }
    }
}

impl fmt::Display for SeriesType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SeriesType {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<SeriesType, InvalidId> {
        SeriesType::parse(s)
    }
}

// ---------------------------------------------------------------------------------------
// Shortcodes
// ---------------------------------------------------------------------------------------

/// Which series an event belongs to, as its description says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesShortcode {
    /// `[new adventure]`: the event starts a new one-shot series.
    NewAdventure,
    /// `[new campaign]`: the event starts a new campaign.
    NewCampaign,
    /// `[campaign <eventId>]`: the event joins the series of that (earlier) event.
    Join(MeetupEventId),
}

impl SeriesShortcode {
    /// The type a new series gets; `None` for [`SeriesShortcode::Join`], whose series
    /// already has one.
    pub fn new_series_type(&self) -> Option<SeriesType> {
        match self {
            SeriesShortcode::NewAdventure => Some(SeriesType::Adventure),
            SeriesShortcode::NewCampaign => Some(SeriesType::Campaign),
            SeriesShortcode::Join(_) => None,
        }
    }
}

/// Everything the shortcodes of one event description say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventShortcodes {
    /// `None`: the event belongs to no series and is not tracked.
    pub series: Option<SeriesShortcode>,
    /// `[channel <id>]`: reuse this existing channel for the new series.
    pub channel: Option<ChannelId>,
    /// `[online]`: the series also gets a voice channel.
    pub online: bool,
    /// `[role <id>]`, in order of appearance, without repeats: roles for everyone who
    /// RSVP'd yes. Parsed on any event, but only a tracked event (one with a series
    /// shortcode) is synced, so on an untracked event they do nothing.
    pub roles: Vec<RoleId>,
}

impl EventShortcodes {
    /// Whether the event belongs to a series (and is stored).
    pub fn is_tracked(&self) -> bool {
        self.series.is_some()
    }
}

/// Why an event description's shortcodes cannot be used. Each variant says which
/// shortcode and where (the byte offset of its `[` in the description), so an organiser
/// can find and fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShortcodeError {
    #[error("shortcode `{shortcode}` at byte {at}: {source}")]
    MalformedId {
        shortcode: String,
        at: usize,
        #[source]
        source: InvalidId,
    },
    #[error("shortcode `{shortcode}` at byte {at} contradicts the earlier `{earlier}`")]
    Conflict {
        earlier: String,
        shortcode: String,
        at: usize,
    },
    #[error(
        "shortcode `{shortcode}` at byte {at} names a channel, but only an event with \
         `[new adventure]` or `[new campaign]` can take over a channel"
    )]
    ChannelWithoutNewSeries { shortcode: String, at: usize },
}

/// One bracketed shortcode found in a description.
enum Found {
    Series(SeriesShortcode),
    Channel(ChannelId),
    Online,
    Role(RoleId),
}

/// Reads one bracket's inside; `Ok(None)` when it is ordinary text.
fn read_shortcode(inner: &str) -> Result<Option<Found>, InvalidId> {
    let words: Vec<&str> = inner.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Ok(None);
    };
    let compact = words.concat().to_ascii_lowercase();
    match compact.as_str() {
        "newadventure" => return Ok(Some(Found::Series(SeriesShortcode::NewAdventure))),
        "newcampaign" => return Ok(Some(Found::Series(SeriesShortcode::NewCampaign))),
        "online" => return Ok(Some(Found::Online)),
        _ => {}
    }
    let keyword = first.to_ascii_lowercase();
    let what = match keyword.as_str() {
        "campaign" => "Meetup event id",
        "channel" => "Discord channel id",
        "role" => "Discord role id",
        _ => return Ok(None),
    };
    let argument = match words.as_slice() {
        [_] => return Err(InvalidId::new(what, "", "it is missing")),
        [_, argument] => *argument,
        // More words: prose such as "[campaign setting: Eberron]", not a shortcode.
        _ => return Ok(None),
    };
    Ok(Some(match keyword.as_str() {
        "campaign" => Found::Series(SeriesShortcode::Join(MeetupEventId::parse(argument)?)),
        "channel" => Found::Channel(parse_snowflake(what, argument)?),
        _ => Found::Role(parse_snowflake(what, argument)?),
    }))
}

/// Reads the shortcodes of an event description.
///
/// Shortcodes are bracketed, case-insensitive and whitespace-tolerant (`[ New  Campaign ]`
/// and `[newcampaign]` are `[new campaign]`); a keyword and its id are separated by
/// whitespace. A bracket that does not start with a keyword is ordinary text, and so is
/// a keyword followed by more than one word (`[campaign setting: Eberron]`). A keyword
/// with a malformed or missing id is an error, because the organiser clearly meant the
/// shortcode and would otherwise wonder why nothing happened.
///
/// Conflicts are errors: two different series shortcodes, two different channels, and
/// a `[channel]` on an event that does not start a new series.
pub fn parse_shortcodes(description: &str) -> Result<EventShortcodes, ShortcodeError> {
    let mut out = EventShortcodes::default();
    // Text of the shortcode that set `series` / `channel`, for conflict messages.
    let mut series_text = String::new();
    let mut channel_at: Option<(String, usize)> = None;
    let mut rest = description;
    let mut offset = 0;
    while let Some(open) = rest.find('[') {
        let after_open = &rest[open + 1..];
        let Some(close) = after_open.find(']') else {
            break;
        };
        let inner = &after_open[..close];
        // "[a [b]": the later `[` opens the bracket.
        if let Some(nested) = inner.rfind('[') {
            let skip = open + 1 + nested;
            offset += skip;
            rest = &rest[skip..];
            continue;
        }
        let at = offset + open;
        let text = format!("[{inner}]");
        let found = read_shortcode(inner).map_err(|source| ShortcodeError::MalformedId {
            shortcode: text.clone(),
            at,
            source,
        })?;
        match found {
            None => {}
            Some(Found::Series(series)) => match &out.series {
                Some(earlier) if *earlier != series => {
                    return Err(ShortcodeError::Conflict {
                        earlier: series_text,
                        shortcode: text,
                        at,
                    });
                }
                Some(_) => {}
                None => {
                    out.series = Some(series);
                    series_text = text;
                }
            },
            Some(Found::Channel(channel)) => match out.channel {
                Some(earlier) if earlier != channel => {
                    return Err(ShortcodeError::Conflict {
                        earlier: channel_at.map(|(t, _)| t).unwrap_or_default(),
                        shortcode: text,
                        at,
                    });
                }
                Some(_) => {}
                None => {
                    out.channel = Some(channel);
                    channel_at = Some((text, at));
                }
            },
            Some(Found::Online) => out.online = true,
            Some(Found::Role(role)) if !out.roles.contains(&role) => out.roles.push(role),
            Some(Found::Role(_)) => {}
        }
        let consumed = open + 1 + close + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if let Some((shortcode, at)) = channel_at {
        let starts_series = out
            .series
            .as_ref()
            .is_some_and(|s| s.new_series_type().is_some());
        if !starts_series {
            return Err(ShortcodeError::ChannelWithoutNewSeries { shortcode, at });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Channel lifecycle
// ---------------------------------------------------------------------------------------

/// `t + d`, saturating instead of panicking on a time near the end of chrono's range (a
/// corrupt stored time must not bring a job down).
fn add(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A channel's expiration time: the time of its series' last event, or `now` when the
/// series has no event left (its channel then expires at once).
pub fn expiration_time(last_event: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    last_event.unwrap_or(now)
}

/// How long after expiration the first reminder comes: players of a campaign often
/// schedule the next session a few days after the last one, so they get more time.
pub fn first_reminder_after(series: SeriesType) -> TimeDelta {
    match series {
        SeriesType::Adventure => TimeDelta::days(1),
        SeriesType::Campaign => TimeDelta::days(3),
    }
}

/// The time between two reminders: 2 days (adventure) or 4 days (campaign). The
/// lifecycle job runs every quarter of an hour, so a reminder comes at most that much
/// after it is due and keeps its time of day (a daily job needed slack here, which
/// made every reminder come earlier than the last).
pub fn reminder_interval(series: SeriesType) -> TimeDelta {
    let days = match series {
        SeriesType::Adventure => 2,
        SeriesType::Campaign => 4,
    };
    TimeDelta::days(days)
}

/// What is stored about a game channel's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLifecycle {
    pub series_type: SeriesType,
    pub expiration: Option<DateTime<Utc>>,
    pub last_reminder: Option<DateTime<Utc>>,
    pub snooze_until: Option<DateTime<Utc>>,
    pub deletion: Option<DateTime<Utc>>,
}

impl ChannelLifecycle {
    /// When the next expiration reminder is due; `None` when none will be (no
    /// expiration known, or the deletion is already scheduled).
    ///
    /// The first reminder comes [`first_reminder_after`] the expiration; each next one
    /// [`reminder_interval`] after the last. A reminder sent before the current
    /// expiration belongs to an earlier period (a new session moved the expiration), so
    /// it does not count. A snooze pushes the due time to its end.
    pub fn next_reminder(&self) -> Option<DateTime<Utc>> {
        if self.deletion.is_some() {
            return None;
        }
        let expiration = self.expiration?;
        let first = add(expiration, first_reminder_after(self.series_type));
        let due = match self.last_reminder {
            Some(last) if last >= expiration => {
                add(last, reminder_interval(self.series_type)).max(first)
            }
            _ => first,
        };
        Some(match self.snooze_until {
            Some(snooze) => due.max(snooze),
            None => due,
        })
    }

    /// Whether the lifecycle job should remind the channel now.
    pub fn reminder_due(&self, now: DateTime<Utc>) -> bool {
        self.next_reminder().is_some_and(|due| due <= now)
    }
}

/// How long a session counts as running after it started. The seed keeps no end or
/// duration of an event, and once it has started Meetup no longer lists it in the
/// sync's window, so its end is not known when it matters: a session counts until 12
/// hours after its start, longer than any evening's game, so nobody loses the channel
/// while they play.
pub const SESSION_GRACE: TimeDelta = TimeDelta::hours(12);

/// Whether a session that starts at `start` still counts at `now`: it has not started
/// yet, or it started less than [`SESSION_GRACE`] ago.
pub fn session_counts(start: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now < add(start, SESSION_GRACE)
}

// ---------------------------------------------------------------------------------------
// Series names
// ---------------------------------------------------------------------------------------

/// The name of a series from the title of one of its events: the title without a
/// trailing session marker, so the channel and roles a new series gets carry the
/// game's name, not its first session's number.
///
/// Conservative: only a marker at the very end of the title, with a number in digits,
/// is taken away, with what separates it from the name (spaces, `-`, `–`, `—`, `:`,
/// `,`, `|`, `/`): "Session N", "Part N" (either also with `#N`), "#N", or one of
/// them in parentheses ("(Session 2)"); the words in any case, as whole words. A
/// title that would be left without a letter or digit ("Session 1") is kept whole,
/// and so is anything else: "Session 1: Into the Mists", "Apollo 13", "Counterpart
/// 2", "Part One".
pub fn series_name(title: &str) -> &str {
    let trimmed = title.trim_end();
    let Some(cut) = session_marker_start(trimmed) else {
        return title;
    };
    let name = trimmed[..cut]
        .trim_end_matches(|c: char| c.is_whitespace() || NAME_SEPARATORS.contains(&c));
    if name.chars().any(char::is_alphanumeric) {
        name
    } else {
        title
    }
}

/// What may separate a name from its session marker.
const NAME_SEPARATORS: [char; 7] = ['-', '–', '—', ':', ',', '|', '/'];

/// Where the session marker `title` ends with starts, if it ends with one (see
/// [`series_name`]).
fn session_marker_start(title: &str) -> Option<usize> {
    if let Some(inner) = title.strip_suffix(')') {
        let open = inner.rfind('(')?;
        let marker = inner[open + 1..].trim();
        return (marker_start(marker) == Some(0)).then_some(open);
    }
    let start = marker_start(title)?;
    // A marker is a word of its own: "Part 2", not "Counterpart 2".
    let whole = title[..start]
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_alphanumeric());
    whole.then_some(start)
}

/// Where a marker at the end of `text` starts: "Session N", "Part N", "Session #N",
/// "Part #N" or "#N".
fn marker_start(text: &str) -> Option<usize> {
    let before_digits = text.trim_end_matches(|c: char| c.is_ascii_digit());
    if before_digits.len() == text.len() {
        return None;
    }
    let (before, hash) = match before_digits.strip_suffix('#') {
        Some(before) => (before, Some(before.len())),
        None => (before_digits, None),
    };
    let word_end = before.trim_end();
    let spaced = word_end.len() < before.len();
    for word in ["session", "part"] {
        let Some(start) = word_end.len().checked_sub(word.len()) else {
            continue;
        };
        if (spaced || hash.is_some())
            && word_end.is_char_boundary(start)
            && word_end[start..].eq_ignore_ascii_case(word)
        {
            return Some(start);
        }
    }
    // A bare "#N".
    hash
}

/// How long after `end adventure` the channels are deleted: time for the players to say
/// goodbye and save what they want.
pub const END_ADVENTURE_DELAY: TimeDelta = TimeDelta::hours(8);

/// Why `end adventure` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EndAdventureError {
    #[error("the channel has no expiration time yet; the next sync sets it")]
    NoExpiration,
    #[error("the adventure has not ended yet: its last session is at {expiration}")]
    NotExpired { expiration: DateTime<Utc> },
    #[error("the channel is already scheduled for deletion at {deletion}")]
    AlreadyScheduled { deletion: DateTime<Utc> },
}

/// The deletion time `end adventure` sets: [`END_ADVENTURE_DELAY`] from now, allowed only
/// once the channel has expired (its last session has begun), and not twice (a second
/// call would silently postpone the deletion the organisers were told about).
pub fn end_adventure(
    now: DateTime<Utc>,
    expiration: Option<DateTime<Utc>>,
    deletion: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, EndAdventureError> {
    if let Some(deletion) = deletion {
        return Err(EndAdventureError::AlreadyScheduled { deletion });
    }
    let expiration = expiration.ok_or(EndAdventureError::NoExpiration)?;
    if now < expiration {
        return Err(EndAdventureError::NotExpired { expiration });
    }
    Ok(add(now, END_ADVENTURE_DELAY))
}

/// A snooze of a channel's expiration reminders, in whole days: 0 (clear the snooze) to
/// 180 (half a year is as long as a campaign sensibly pauses without a new session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnoozeDays(u16);

/// Why a snooze is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnoozeError {
    #[error("a snooze of {0} days is not allowed: use 0 (to clear it) to 180 days")]
    OutOfRange(i64),
    #[error("`{0}` is not a whole number of days")]
    NotANumber(String),
}

impl SnoozeDays {
    pub const MAX: u16 = 180;

    pub fn new(days: i64) -> Result<SnoozeDays, SnoozeError> {
        match u16::try_from(days) {
            Ok(d) if d <= SnoozeDays::MAX => Ok(SnoozeDays(d)),
            _ => Err(SnoozeError::OutOfRange(days)),
        }
    }

    pub fn days(self) -> u16 {
        self.0
    }

    /// The `snooze_until` to store: `None` (delete it) for 0 days.
    pub fn until(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.0 > 0).then(|| add(now, TimeDelta::days(i64::from(self.0))))
    }
}

impl FromStr for SnoozeDays {
    type Err = SnoozeError;
    fn from_str(s: &str) -> Result<SnoozeDays, SnoozeError> {
        let trimmed = s.trim();
        let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SnoozeError::NotANumber(s.chars().take(32).collect()));
        }
        // All digits: the only way to fail is a number too large for i64.
        let days = trimmed.parse::<i64>().unwrap_or(i64::MAX);
        SnoozeDays::new(days)
    }
}

// ---------------------------------------------------------------------------------------
// User topic voice channel
// ---------------------------------------------------------------------------------------

/// A name for the shared "user topic" voice channel: 2 to 100 characters after trimming
/// (Discord's limits for a channel name), no line breaks or other control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceChannelTopic(String);

/// Why a topic is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("the topic has {}; it needs at least 2", characters(*.0))]
    TooShort(usize),
    #[error("the topic has {}; at most 100 are allowed", characters(*.0))]
    TooLong(usize),
    #[error("the topic may not contain line breaks or other control characters")]
    ControlCharacter,
}

/// "no characters", "1 character", "5 characters".
fn characters(n: usize) -> String {
    match n {
        0 => "no characters".to_owned(),
        1 => "1 character".to_owned(),
        n => format!("{n} characters"),
    }
}

impl VoiceChannelTopic {
    pub const MIN_CHARS: usize = 2;
    pub const MAX_CHARS: usize = 100;

    pub fn parse(value: &str) -> Result<VoiceChannelTopic, TopicError> {
        let topic = value.trim();
        if topic.chars().any(char::is_control) {
            return Err(TopicError::ControlCharacter);
        }
        let len = topic.chars().count();
        if len < VoiceChannelTopic::MIN_CHARS {
            return Err(TopicError::TooShort(len));
        }
        if len > VoiceChannelTopic::MAX_CHARS {
            return Err(TopicError::TooLong(len));
        }
        Ok(VoiceChannelTopic(topic.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for VoiceChannelTopic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<VoiceChannelTopic, TopicError> {
        VoiceChannelTopic::parse(s)
    }
}

#[cfg(test)]
mod series_name_tests {
    use super::series_name;

    #[test]
    fn a_trailing_session_marker_is_left_out_of_the_series_name() {
        for (title, name) in [
            ("Curse of Strahd - Session 1", "Curse of Strahd"),
            ("Curse of Strahd: Session 12", "Curse of Strahd"),
            ("Curse of Strahd session 2 ", "Curse of Strahd"),
            ("Curse of Strahd – SESSION #4", "Curse of Strahd"),
            ("Curse of Strahd #3", "Curse of Strahd"),
            ("Curse of Strahd, Part 2", "Curse of Strahd"),
            ("Curse of Strahd (Session 2)", "Curse of Strahd"),
            ("Curse of Strahd | part #2", "Curse of Strahd"),
            ("Curse of Strahd - (#5)", "Curse of Strahd"),
        ] {
            assert_eq!(series_name(title), name, "{title}");
        }
    }

    #[test]
    fn anything_else_keeps_its_whole_title() {
        for title in [
            "Curse of Strahd",
            "Session 1",
            "#1",
            "Curse of Strahd - Session 1: Into the Mists",
            "Apollo 13",
            "Counterpart 2",
            "Warhammer 40000",
            "Curse of Strahd Part One",
            "Game#3",
            "Sessions 2",
            "Curse of Strahd (Director's Cut)",
            "Tomb (2)",
            "",
        ] {
            assert_eq!(series_name(title), title, "{title:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn event(id: &str) -> MeetupEventId {
        MeetupEventId::parse(id).unwrap()
    }

    // --- ids -----------------------------------------------------------------------

    #[test]
    fn token_ids_take_letters_and_digits_only() {
        assert_eq!(
            MeetupEventId::parse("276754274").unwrap().as_str(),
            "276754274"
        );
        assert_eq!(event("qgkbjsyccjbfb").to_string(), "qgkbjsyccjbfb");
        for bad in ["", "a:b", "a b", "x*", "ä", &"a".repeat(65)] {
            let err = MeetupEventId::parse(bad).unwrap_err();
            assert_eq!(err.what, "Meetup event id", "{bad}");
        }
        assert_eq!(
            EventSeriesId::parse("a:b").unwrap_err().reason,
            "only ASCII letters and digits are allowed"
        );
        assert!(MeetupEventId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let a = EventSeriesId::random();
        let b = EventSeriesId::random();
        assert_eq!(a.as_str().len(), 16);
        assert_ne!(a, b);
        assert_eq!(EventSeriesId::parse(a.as_str()).unwrap(), a);
        let l = LinkingId::random();
        assert_eq!(l.expose().len(), 32);
        assert_eq!(LinkingId::parse(l.expose()).unwrap(), l);
        assert!(TransientUserId::parse(TransientUserId::random().expose()).is_ok());
    }

    #[test]
    fn bearer_ids_are_redacted_in_debug() {
        let l = LinkingId::parse("SeCrEt123").unwrap();
        assert_eq!(format!("{l:?}"), "LinkingId([redacted])");
        let t = TransientUserId::parse("br0wser").unwrap();
        assert_eq!(format!("{t:?}"), "TransientUserId([redacted])");
        let err = LinkingId::parse("Se:cret").unwrap_err();
        assert!(!err.to_string().contains("Se:cret"), "{err}");
        assert!(l.matches("SeCrEt123") && !l.matches("SeCrEt124"));
    }

    #[test]
    fn meetup_user_ids_are_positive_decimal_numbers() {
        assert_eq!(MeetupUserId::parse("12345").unwrap().get(), 12345);
        assert_eq!(
            "7".parse::<MeetupUserId>().unwrap(),
            MeetupUserId::new(7).unwrap()
        );
        for bad in ["", "0", "+5", "-5", "1e3", "abc", "18446744073709551616"] {
            assert!(MeetupUserId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn snowflakes_are_non_zero_decimal_numbers() {
        let c: ChannelId = parse_snowflake("channel", "123").unwrap();
        assert_eq!(c.get(), 123);
        assert!(parse_snowflake::<discord::model::ChannelMarker>("channel", "0").is_err());
        assert!(parse_snowflake::<discord::model::RoleMarker>("role", "+1").is_err());
        assert!(parse_snowflake::<discord::model::RoleMarker>("role", "").is_err());
    }

    // --- series type ---------------------------------------------------------------

    #[test]
    fn series_types_round_trip_and_grow_into_campaigns() {
        for t in [SeriesType::Campaign, SeriesType::Adventure] {
            assert_eq!(SeriesType::parse(t.as_str()).unwrap(), t);
        }
        assert!(SeriesType::parse("Campaign").is_err());
        assert_eq!(
            SeriesType::after_sync(Some(SeriesType::Adventure), 2),
            SeriesType::Campaign
        );
        assert_eq!(
            SeriesType::after_sync(Some(SeriesType::Adventure), 1),
            SeriesType::Adventure
        );
        assert_eq!(
            SeriesType::after_sync(Some(SeriesType::Campaign), 1),
            SeriesType::Campaign
        );
        assert_eq!(SeriesType::after_sync(None, 0), SeriesType::Adventure);
    }

    // --- shortcodes ----------------------------------------------------------------

    #[test]
    fn each_shortcode_is_recognised() {
        let s = parse_shortcodes("Come play! [new adventure] [online] [role 42]").unwrap();
        assert_eq!(s.series, Some(SeriesShortcode::NewAdventure));
        assert!(s.online);
        assert_eq!(s.roles, vec![RoleId::new(42)]);
        assert_eq!(s.channel, None);
        assert!(s.is_tracked());

        let s = parse_shortcodes("[new campaign][channel 987654321]").unwrap();
        assert_eq!(s.series, Some(SeriesShortcode::NewCampaign));
        assert_eq!(s.channel, Some(ChannelId::new(987654321)));
        assert!(!s.online);

        let s = parse_shortcodes("Session 3 [campaign 276754274]").unwrap();
        assert_eq!(s.series, Some(SeriesShortcode::Join(event("276754274"))));
        assert_eq!(SeriesShortcode::Join(event("1")).new_series_type(), None);
        assert_eq!(
            SeriesShortcode::NewCampaign.new_series_type(),
            Some(SeriesType::Campaign)
        );
    }

    #[test]
    fn shortcodes_tolerate_case_and_whitespace() {
        for text in [
            "[NEW ADVENTURE]",
            "[ new   adventure ]",
            "[newadventure]",
            "[New\tAdventure]",
        ] {
            let s = parse_shortcodes(text).unwrap();
            assert_eq!(s.series, Some(SeriesShortcode::NewAdventure), "{text}");
        }
        let s = parse_shortcodes("[ Campaign   abc123 ] [ ONLINE ] [Role 7]").unwrap();
        assert_eq!(s.series, Some(SeriesShortcode::Join(event("abc123"))));
        assert!(s.online);
        assert_eq!(s.roles, vec![RoleId::new(7)]);
    }

    #[test]
    fn events_without_a_series_shortcode_are_not_tracked() {
        for text in [
            "",
            "Just a board game night [One-Shot]",
            "[online]",
            "[campaign setting: Eberron] and more",
            "unclosed [new adventure",
        ] {
            let s = parse_shortcodes(text).unwrap();
            assert!(!s.is_tracked(), "{text}");
        }
        // A role is parsed on any event (the sync only reads tracked events').
        let s = parse_shortcodes("[role 5] [role 6] [role 5]").unwrap();
        assert!(!s.is_tracked());
        assert_eq!(s.roles, vec![RoleId::new(5), RoleId::new(6)]);
    }

    #[test]
    fn the_innermost_bracket_is_the_shortcode() {
        let s = parse_shortcodes("[note [new campaign] end").unwrap();
        assert_eq!(s.series, Some(SeriesShortcode::NewCampaign));
    }

    #[test]
    fn malformed_ids_say_what_and_where() {
        let err = parse_shortcodes("Hi [new campaign] [channel abc]").unwrap_err();
        match &err {
            ShortcodeError::MalformedId {
                shortcode,
                at,
                source,
            } => {
                assert_eq!(shortcode, "[channel abc]");
                assert_eq!(*at, 18);
                assert_eq!(source.what, "Discord channel id");
                assert_eq!(source.value, "abc");
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("[channel abc]") && message.contains("byte 18"),
            "{message}"
        );

        let err = parse_shortcodes("[campaign ab:c]").unwrap_err();
        assert!(
            matches!(err, ShortcodeError::MalformedId { at: 0, .. }),
            "{err:?}"
        );
        let err = parse_shortcodes("[role 0]").unwrap_err();
        assert!(err.to_string().contains("must not be zero"), "{err}");
        let err = parse_shortcodes("[campaign]").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn contradicting_shortcodes_are_refused() {
        let err = parse_shortcodes("[new adventure] [new campaign]").unwrap_err();
        assert_eq!(
            err,
            ShortcodeError::Conflict {
                earlier: "[new adventure]".into(),
                shortcode: "[new campaign]".into(),
                at: 16
            }
        );
        assert!(matches!(
            parse_shortcodes("[new campaign] [campaign 123]"),
            Err(ShortcodeError::Conflict { .. })
        ));
        assert!(matches!(
            parse_shortcodes("[campaign 1] [campaign 2]"),
            Err(ShortcodeError::Conflict { .. })
        ));
        assert!(matches!(
            parse_shortcodes("[new campaign] [channel 1] [channel 2]"),
            Err(ShortcodeError::Conflict { .. })
        ));
        // Repeating the same shortcode is fine.
        assert!(parse_shortcodes("[campaign 1] [CAMPAIGN 1]").is_ok());
        assert!(parse_shortcodes("[new campaign] [channel 3] [channel 3]").is_ok());
    }

    #[test]
    fn only_a_new_series_takes_over_a_channel() {
        let err = parse_shortcodes("[campaign 12] [channel 3]").unwrap_err();
        assert_eq!(
            err,
            ShortcodeError::ChannelWithoutNewSeries {
                shortcode: "[channel 3]".into(),
                at: 14
            }
        );
        assert!(matches!(
            parse_shortcodes("[channel 3]"),
            Err(ShortcodeError::ChannelWithoutNewSeries { .. })
        ));
    }

    // --- lifecycle -----------------------------------------------------------------

    fn lifecycle(series_type: SeriesType) -> ChannelLifecycle {
        ChannelLifecycle {
            series_type,
            expiration: Some(at("2026-03-01T18:00:00Z")),
            last_reminder: None,
            snooze_until: None,
            deletion: None,
        }
    }

    #[test]
    fn expiration_is_the_last_event_or_now() {
        let now = at("2026-03-05T00:00:00Z");
        assert_eq!(expiration_time(None, now), now);
        let last = at("2026-04-01T19:00:00Z");
        assert_eq!(expiration_time(Some(last), now), last);
    }

    #[test]
    fn first_reminder_is_one_day_after_an_adventure_and_three_after_a_campaign() {
        let adventure = lifecycle(SeriesType::Adventure);
        assert_eq!(adventure.next_reminder(), Some(at("2026-03-02T18:00:00Z")));
        assert!(!adventure.reminder_due(at("2026-03-02T17:59:59Z")));
        assert!(adventure.reminder_due(at("2026-03-02T18:00:00Z")));

        let campaign = lifecycle(SeriesType::Campaign);
        assert_eq!(campaign.next_reminder(), Some(at("2026-03-04T18:00:00Z")));
        assert!(!campaign.reminder_due(at("2026-03-03T18:00:00Z")));
    }

    #[test]
    fn reminders_repeat_every_two_or_four_days_at_the_same_time_of_day() {
        let mut adventure = lifecycle(SeriesType::Adventure);
        adventure.last_reminder = Some(at("2026-03-02T18:30:00Z"));
        assert_eq!(adventure.next_reminder(), Some(at("2026-03-04T18:30:00Z")));
        assert!(!adventure.reminder_due(at("2026-03-04T18:15:00Z")));
        assert!(adventure.reminder_due(at("2026-03-04T18:30:00Z")));
        assert!(!adventure.reminder_due(at("2026-03-03T18:30:00Z")));

        let mut campaign = lifecycle(SeriesType::Campaign);
        campaign.last_reminder = Some(at("2026-03-04T18:30:00Z"));
        assert_eq!(campaign.next_reminder(), Some(at("2026-03-08T18:30:00Z")));
        assert!(!campaign.reminder_due(at("2026-03-06T18:30:00Z")));
    }

    #[test]
    fn a_reminder_from_before_the_current_expiration_does_not_count() {
        let mut adventure = lifecycle(SeriesType::Adventure);
        adventure.last_reminder = Some(at("2026-02-20T18:00:00Z"));
        assert_eq!(adventure.next_reminder(), Some(at("2026-03-02T18:00:00Z")));
    }

    #[test]
    fn no_reminder_while_snoozed_or_once_deletion_is_scheduled() {
        let mut adventure = lifecycle(SeriesType::Adventure);
        adventure.snooze_until = Some(at("2026-03-10T00:00:00Z"));
        assert!(!adventure.reminder_due(at("2026-03-09T23:59:59Z")));
        assert!(adventure.reminder_due(at("2026-03-10T00:00:00Z")));
        // A snooze that ended earlier does not delay anything.
        adventure.snooze_until = Some(at("2026-02-01T00:00:00Z"));
        assert_eq!(adventure.next_reminder(), Some(at("2026-03-02T18:00:00Z")));

        let mut ending = lifecycle(SeriesType::Adventure);
        ending.deletion = Some(at("2026-03-03T02:00:00Z"));
        assert_eq!(ending.next_reminder(), None);
        assert!(!ending.reminder_due(at("2027-01-01T00:00:00Z")));

        let mut unknown = lifecycle(SeriesType::Campaign);
        unknown.expiration = None;
        assert_eq!(unknown.next_reminder(), None);
    }

    #[test]
    fn corrupt_far_future_times_do_not_panic() {
        let mut far = lifecycle(SeriesType::Campaign);
        far.expiration = Some(DateTime::<Utc>::MAX_UTC);
        assert_eq!(far.next_reminder(), Some(DateTime::<Utc>::MAX_UTC));
    }

    #[test]
    fn end_adventure_deletes_eight_hours_later_and_only_after_expiration() {
        let expiration = at("2026-03-01T18:00:00Z");
        assert_eq!(
            end_adventure(at("2026-03-01T20:00:00Z"), Some(expiration), None),
            Ok(at("2026-03-02T04:00:00Z"))
        );
        assert_eq!(
            end_adventure(expiration, Some(expiration), None),
            Ok(at("2026-03-02T02:00:00Z"))
        );
        assert_eq!(
            end_adventure(at("2026-03-01T17:00:00Z"), Some(expiration), None),
            Err(EndAdventureError::NotExpired { expiration })
        );
        assert_eq!(
            end_adventure(at("2026-03-01T20:00:00Z"), None, None),
            Err(EndAdventureError::NoExpiration)
        );
        let deletion = at("2026-03-02T00:00:00Z");
        assert_eq!(
            end_adventure(at("2026-03-01T20:00:00Z"), Some(expiration), Some(deletion)),
            Err(EndAdventureError::AlreadyScheduled { deletion })
        );
    }

    #[test]
    fn snoozes_go_from_zero_to_180_days() {
        let now = at("2026-03-01T00:00:00Z");
        assert_eq!(SnoozeDays::new(0).unwrap().until(now), None);
        assert_eq!(
            SnoozeDays::new(7).unwrap().until(now),
            Some(at("2026-03-08T00:00:00Z"))
        );
        assert_eq!(SnoozeDays::new(180).unwrap().days(), 180);
        assert_eq!(SnoozeDays::new(181), Err(SnoozeError::OutOfRange(181)));
        assert_eq!(SnoozeDays::new(-1), Err(SnoozeError::OutOfRange(-1)));
        assert_eq!(" 14 ".parse::<SnoozeDays>().unwrap().days(), 14);
        assert_eq!("-3".parse::<SnoozeDays>(), Err(SnoozeError::OutOfRange(-3)));
        assert_eq!(
            "x".parse::<SnoozeDays>(),
            Err(SnoozeError::NotANumber("x".into()))
        );
        assert_eq!(
            "".parse::<SnoozeDays>(),
            Err(SnoozeError::NotANumber("".into()))
        );
        assert_eq!(
            "1.5".parse::<SnoozeDays>(),
            Err(SnoozeError::NotANumber("1.5".into()))
        );
        assert!(matches!(
            "99999999999999999999".parse::<SnoozeDays>(),
            Err(SnoozeError::OutOfRange(_))
        ));
    }

    #[test]
    fn topics_have_two_to_a_hundred_characters() {
        assert_eq!(VoiceChannelTopic::parse("  D&D  ").unwrap().as_str(), "D&D");
        assert_eq!(VoiceChannelTopic::parse("ab").unwrap().as_str(), "ab");
        assert_eq!(
            VoiceChannelTopic::parse(" a "),
            Err(TopicError::TooShort(1))
        );
        assert_eq!(VoiceChannelTopic::parse(""), Err(TopicError::TooShort(0)));
        // Said as a person would write it.
        assert_eq!(
            TopicError::TooShort(1).to_string(),
            "the topic has 1 character; it needs at least 2"
        );
        assert_eq!(
            TopicError::TooShort(0).to_string(),
            "the topic has no characters; it needs at least 2"
        );
        assert_eq!(
            TopicError::TooLong(101).to_string(),
            "the topic has 101 characters; at most 100 are allowed"
        );
        let hundred = "é".repeat(100);
        assert!(VoiceChannelTopic::parse(&hundred).is_ok());
        assert_eq!(
            VoiceChannelTopic::parse(&"é".repeat(101)),
            Err(TopicError::TooLong(101))
        );
        assert_eq!(
            VoiceChannelTopic::parse("a\nb"),
            Err(TopicError::ControlCharacter)
        );
    }
}
