//! Typed values the client hands out and the fake is seeded with: ids, statuses, events,
//! members and RSVPs.
//!
//! Ids are newtypes with private fields, made only through `parse`, so a Meetup id is
//! never confused with a Discord snowflake or a group urlname. Enums Meetup may extend
//! keep an `Other` variant: a new status on Meetup's side must not break a whole sync.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, TimeDelta};

/// Why a string is not a valid id or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct ParseError {
    kind: &'static str,
    value: String,
    reason: &'static str,
}

impl ParseError {
    fn new(kind: &'static str, value: &str, reason: &'static str) -> ParseError {
        ParseError {
            kind,
            value: value.chars().take(80).collect(),
            reason,
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $allowed:expr, $max:literal, $why:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and checks the id's form.
            pub fn parse(value: &str) -> Result<$name, ParseError> {
                if value.is_empty() {
                    return Err(ParseError::new($kind, value, "it is empty"));
                }
                if value.len() > $max {
                    return Err(ParseError::new($kind, value, "it is too long"));
                }
                let allowed: fn(char) -> bool = $allowed;
                if !value.chars().all(allowed) {
                    return Err(ParseError::new($kind, value, $why));
                }
                Ok($name(value.to_owned()))
            }

            /// The id as Meetup writes it.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// An id made of decimal digits, which every id type accepts (the fake's
            /// generated ids; urlnames are never generated).
            #[allow(dead_code)]
            pub(crate) fn from_number(n: u64) -> $name {
                $name(n.to_string())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(value: &str) -> Result<$name, ParseError> {
                $name::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A Meetup event id (alphanumeric; numeric for most events, letters for some
    /// recurring ones).
    EventId,
    "event id",
    |c| c.is_ascii_alphanumeric(),
    64,
    "only ASCII letters and digits are allowed"
);
id_type!(
    /// A Meetup member id.
    MemberId,
    "member id",
    |c| c.is_ascii_alphanumeric(),
    64,
    "only ASCII letters and digits are allowed"
);
id_type!(
    /// A Meetup RSVP id.
    RsvpId,
    "RSVP id",
    |c| c.is_ascii_alphanumeric() || c == '!' || c == '-' || c == '_',
    128,
    "only ASCII letters, digits, '!', '-' and '_' are allowed"
);
id_type!(
    /// A Meetup group id.
    GroupId,
    "group id",
    |c| c.is_ascii_alphanumeric(),
    64,
    "only ASCII letters and digits are allowed"
);
id_type!(
    /// A group's unique URL path (`groupByUrlname`), as configured per community.
    GroupUrlname,
    "group urlname",
    |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
    100,
    "only ASCII letters, digits, '-' and '_' are allowed"
);

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A value this crate does not know yet (Meetup added it after us).
            Other(String),
        }

        impl $name {
            /// The value as Meetup writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Other(other) => other,
                }
            }

            /// Reads Meetup's spelling; unknown values become `Other`.
            pub fn from_wire(value: &str) -> $name {
                match value {
                    $($wire => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `EventStatus`: the lifecycle of an event.
    EventStatus {
        /// Published and upcoming (or running).
        Active = "ACTIVE",
        /// Over.
        Past = "PAST",
        /// Cancelled; it stays on the calendar.
        Cancelled = "CANCELLED",
        /// Cancelled and removed.
        CancelledPerm = "CANCELLED_PERM",
        /// Not published yet.
        Draft = "DRAFT",
        /// Proposed by a member.
        Proposed = "PROPOSED",
        /// Awaiting approval.
        Pending = "PENDING",
        /// Blocked by Meetup.
        Blocked = "BLOCKED",
        /// A template for new events.
        Template = "TEMPLATE",
        /// Scheduled automatically.
        Autosched = "AUTOSCHED",
        /// An automatically scheduled event that was cancelled.
        AutoschedCancelled = "AUTOSCHED_CANCELLED",
        /// An automatically scheduled draft.
        AutoschedDraft = "AUTOSCHED_DRAFT",
        /// An automatically scheduled event that is over.
        AutoschedFinished = "AUTOSCHED_FINISHED",
    }
);

wire_enum!(
    /// `EventType`: where an event takes place.
    EventType {
        /// Online only (a campaign gets a voice channel).
        Online = "ONLINE",
        /// In person only.
        Physical = "PHYSICAL",
        /// Both online and in person.
        Hybrid = "HYBRID",
    }
);

wire_enum!(
    /// `RsvpStatus`: a member's answer to an event.
    RsvpStatus {
        /// Going.
        Yes = "YES",
        /// Not going.
        No = "NO",
        /// On the waitlist of a full event.
        Waitlist = "WAITLIST",
        /// Confirmed as attended by an organiser.
        Attended = "ATTENDED",
        /// Marked as absent with an excuse.
        ExcusedAbsence = "EXCUSED_ABSENCE",
        /// Not answered.
        Havent = "HAVENT",
        /// No longer used by Meetup.
        Maybe = "MAYBE",
        /// Expected but did not come.
        NoShow = "NO_SHOW",
        /// Going, payment not processed yet.
        YesPendingPayment = "YES_PENDING_PAYMENT",
    }
);

wire_enum!(
    /// `Role`: a member's role in a group.
    GroupRole {
        /// The group's (primary) organiser.
        Organizer = "ORGANIZER",
        /// A co-organiser.
        Coorganizer = "COORGANIZER",
        /// An assistant organiser.
        AssistantOrganizer = "ASST_ORGANIZER",
        /// May create and manage events only.
        EventOrganizer = "EVENT_ORGANIZER",
        /// A plain member.
        Member = "MEMBER",
    }
);

impl GroupRole {
    /// Whether this role organises the group: organiser, co-organiser or assistant
    /// organiser. These see every RSVP and may create events; an event organiser
    /// manages only events and a member nothing.
    pub fn organises(&self) -> bool {
        matches!(
            self,
            GroupRole::Organizer | GroupRole::Coorganizer | GroupRole::AssistantOrganizer
        )
    }
}

/// A new event to create on Meetup ([`crate::MeetupClient::create_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// The group it is created in.
    pub group: GroupUrlname,
    /// Title (1 to 80 characters on Meetup).
    pub title: String,
    /// Description (simple HTML; where the campaign shortcodes live).
    pub description: String,
    /// Start, with the group's offset.
    pub starts_at: DateTime<FixedOffset>,
    /// Duration, if known.
    pub duration: Option<TimeDelta>,
    /// Hosts (at most 5 on Meetup). Meetup wants their numeric ids; an id that is not
    /// a number is left out.
    pub hosts: Vec<MemberId>,
    /// An online event (venue `online`).
    pub online: bool,
    /// Maximum RSVPs, if limited.
    pub max_tickets: Option<u32>,
}

/// A member as seen in an event or RSVP: id and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member id.
    pub id: MemberId,
    /// Display name; Meetup may hide it (null).
    pub name: Option<String>,
}

/// A host of an event. Meetup gives the member and a display name, either possibly null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHost {
    /// The hosting member, if visible.
    pub member: Option<Member>,
    /// The host's display name.
    pub name: Option<String>,
}

/// A Meetup event with the fields campaigns use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event id.
    pub id: EventId,
    /// Title.
    pub title: String,
    /// Description (where the campaign shortcodes live).
    pub description: String,
    /// Link to the event on meetup.com.
    pub url: String,
    /// Start, in the group's offset. Null in the schema, so optional here.
    pub starts_at: Option<DateTime<FixedOffset>>,
    /// End, if Meetup knows it.
    pub ends_at: Option<DateTime<FixedOffset>>,
    /// Duration, if Meetup knows it.
    pub duration: Option<TimeDelta>,
    /// Lifecycle status.
    pub status: EventStatus,
    /// Online, in person or both.
    pub event_type: EventType,
    /// RSVP limit, if any.
    pub max_tickets: Option<u32>,
    /// The group's urlname.
    pub group: Option<GroupUrlname>,
    /// The group's time zone, an IANA name such as `Europe/Zurich`, when Meetup gives
    /// one.
    pub group_timezone: Option<String>,
    /// Hosts in Meetup's order.
    pub hosts: Vec<EventHost>,
}

/// An RSVP to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rsvp {
    /// RSVP id.
    pub id: RsvpId,
    /// Who answered.
    pub member: Member,
    /// Their answer; `None` when Meetup gives none (the schema allows null). The
    /// client keeps such an RSVP in a YES list (the server filtered for YES), so one
    /// odd entry does not fail the whole list.
    pub status: Option<RsvpStatus>,
    /// Whether the member hosts the event.
    pub is_host: bool,
    /// Guests the member brings.
    pub guests: u32,
}

/// An event's YES RSVPs as Meetup listed them ([`crate::MeetupClient::event_rsvp_list`]),
/// with the count Meetup gave for the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsvpList {
    /// The RSVPs listed, over all pages, in Meetup's order.
    pub rsvps: Vec<Rsvp>,
    /// Entries received over all pages (RSVPs of another status included, which
    /// [`RsvpList::rsvps`] leaves out).
    pub received: u64,
    /// Meetup's `totalCount` for the list, when it gave one.
    pub total: Option<u64>,
}

impl RsvpList {
    /// Whether Meetup listed every entry it counts. An incomplete list (paging that
    /// ended early, a group hiding members from the token's owner, a count that
    /// includes entries it never lists) names who said yes, but not everybody.
    pub fn is_complete(&self) -> bool {
        self.total.is_none_or(|total| self.received >= total)
    }
}

/// Which of a group's events to fetch: a half-open window on the start time
/// (`after <= dateTime < before`, each bound optional) and the statuses to include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWindow {
    /// Only events starting at or after this time.
    pub after: Option<DateTime<FixedOffset>>,
    /// Only events starting before this time.
    pub before: Option<DateTime<FixedOffset>>,
    /// Only events in these statuses; empty means every status.
    pub statuses: Vec<EventStatus>,
}

impl Default for EventWindow {
    /// Every active event: what a sync of upcoming sessions wants.
    fn default() -> EventWindow {
        EventWindow {
            after: None,
            before: None,
            statuses: vec![EventStatus::Active],
        }
    }
}

impl EventWindow {
    /// Active events starting in `[after, before)`.
    pub fn between(after: DateTime<FixedOffset>, before: DateTime<FixedOffset>) -> EventWindow {
        EventWindow {
            after: Some(after),
            before: Some(before),
            ..EventWindow::default()
        }
    }
}

/// Formats a time the way Meetup does: RFC 3339 with seconds and a `+hh:mm` offset.
pub fn format_date_time(t: &DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Parses Meetup's `DateTime`: RFC 3339, or a local time without offset read as UTC
/// (Meetup writes the offset; the fallback keeps hand-written test values working).
pub fn parse_date_time(value: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t);
    }
    chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M"))
        .ok()
        .map(|naive| naive.and_utc().fixed_offset())
}

/// Parses an ISO 8601 duration as Meetup writes `Duration` (`PT2H30M`, `P1DT2H`,
/// `PT90M`). Years and months have no fixed length and are refused.
pub fn parse_duration(value: &str) -> Option<TimeDelta> {
    let rest = value.strip_prefix('P')?;
    if rest.is_empty() {
        return None;
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut seconds: f64 = 0.0;
    for (part, units) in [(date, &[('W', 604_800.0), ('D', 86_400.0)][..])]
        .into_iter()
        .chain(time.map(|t| (t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..])))
    {
        let mut number = String::new();
        let mut unit_index = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let position = units[unit_index..].iter().position(|(u, _)| *u == c)?;
            unit_index += position + 1;
            let n: f64 = number.parse().ok()?;
            seconds += n * units[unit_index - 1].1;
            number.clear();
        }
        if !number.is_empty() {
            return None;
        }
    }
    TimeDelta::try_milliseconds((seconds * 1000.0).round() as i64)
}

/// Formats a duration as ISO 8601 the way Meetup does (`PT2H30M`, `PT0S`).
pub fn format_duration(d: &TimeDelta) -> String {
    let total = d.num_seconds().max(0);
    let (days, rem) = (total / 86_400, total % 86_400);
    let (hours, rem) = (rem / 3_600, rem % 3_600);
    let (minutes, seconds) = (rem / 60, rem % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if hours > 0 || minutes > 0 || seconds > 0 || days == 0 {
        out.push('T');
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if seconds > 0 || (hours == 0 && minutes == 0) {
            out.push_str(&format!("{seconds}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_refuse_bad_forms() {
        assert_eq!(EventId::parse("312345678").unwrap().as_str(), "312345678");
        assert_eq!("abc123".parse::<MemberId>().unwrap().to_string(), "abc123");
        let err = EventId::parse("12 34").unwrap_err();
        assert!(err.to_string().contains("event id"), "{err}");
        assert!(EventId::parse("").is_err());
        assert!(GroupUrlname::parse("swiss-rpg_club").is_ok());
        assert!(GroupUrlname::parse("swiss rpg").is_err());
        assert!(GroupUrlname::parse("a/../b").is_err());
    }

    #[test]
    fn enums_keep_unknown_values() {
        assert_eq!(RsvpStatus::from_wire("YES"), RsvpStatus::Yes);
        assert_eq!(
            EventType::from_wire("METAVERSE"),
            EventType::Other("METAVERSE".into())
        );
        assert_eq!(EventStatus::CancelledPerm.as_str(), "CANCELLED_PERM");
    }

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [
            ("PT2H", 7200),
            ("PT2H30M", 9000),
            ("PT90M", 5400),
            ("P1DT2H", 93600),
            ("PT45S", 45),
            ("P1W", 604_800),
            ("PT1.5H", 5400),
        ] {
            assert_eq!(parse_duration(text).unwrap().num_seconds(), secs, "{text}");
        }
        for bad in ["", "P", "PT", "2H", "PT2X", "PT2", "PT30M2H", "P1Y"] {
            assert!(parse_duration(bad).is_none(), "{bad}");
        }
        for secs in [0, 45, 3600, 9000, 93600] {
            let d = TimeDelta::seconds(secs);
            assert_eq!(parse_duration(&format_duration(&d)), Some(d));
        }
        assert_eq!(format_duration(&TimeDelta::seconds(9000)), "PT2H30M");
    }

    #[test]
    fn date_times_keep_the_offset() {
        let t = parse_date_time("2026-01-05T19:30:00+01:00").unwrap();
        assert_eq!(format_date_time(&t), "2026-01-05T19:30:00+01:00");
        let naive = parse_date_time("2026-01-05T19:30:00").unwrap();
        assert_eq!(format_date_time(&naive), "2026-01-05T19:30:00+00:00");
        assert!(parse_date_time("tomorrow").is_none());
    }
}
