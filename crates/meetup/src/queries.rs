//! The GraphQL documents the client sends, as constants.
//!
//! `build.rs` validates every document in [`ALL`] against `schema/meetup.graphql` with
//! the `validate` module and fails the build naming the bad field, so a typo or a field
//! Meetup removed never reaches production. The fake server validates them again on
//! every request. Field names and argument types here were checked against the schema,
//! not against older documentation (`upcomingEvents`, `tickets`, `isOnline` are gone).

/// The event fields the client decodes into [`crate::Event`] (a macro because `concat!`
/// takes only literals).
macro_rules! event_fields {
    () => {
        "
fragment EventFields on Event {
  id
  title
  description
  eventUrl
  dateTime
  endTime
  duration
  status
  eventType
  maxTickets
  group { urlname timezone }
  eventHosts { member { id name } name }
}
"
    };
}

/// One page of a group's events within a window, oldest first.
pub const GROUP_EVENTS: &str = concat!(
    "query GroupEvents($urlname: String!, $first: Int!, $after: String, ",
    "$statuses: [EventStatus!], $afterDateTime: DateTime, $beforeDateTime: DateTime) {
  groupByUrlname(urlname: $urlname) {
    urlname
    events(
      first: $first
      after: $after
      filter: { status: $statuses, afterDateTime: $afterDateTime, beforeDateTime: $beforeDateTime }
      sort: ASC
    ) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { ...EventFields } }
    }
  }
}
",
    event_fields!()
);

/// One event by id.
pub const EVENT: &str = concat!(
    "query Event($eventId: ID!) {
  event(id: $eventId) { ...EventFields }
}
",
    event_fields!()
);

/// One page of an event's RSVPs with the given statuses.
pub const EVENT_RSVPS: &str =
    "query EventRsvps($eventId: ID!, $first: Int!, $after: String, $statuses: [RsvpStatus!]) {
  event(id: $eventId) {
    id
    rsvps(first: $first, after: $after, filter: { rsvpStatus: $statuses }) {
      totalCount
      yesCount
      pageInfo { hasNextPage endCursor }
      edges { node { id status isHost guestsCount member { id name } } }
    }
  }
}
";

/// The member the access token belongs to.
pub const SELF_MEMBER: &str = "query SelfMember {
  self { id name }
}
";

/// The authenticated member's role in a group (`membershipMetadata` is the viewer's
/// own membership; null when they are not a member).
pub const GROUP_ROLE: &str = "query GroupRole($urlname: String!) {
  groupByUrlname(urlname: $urlname) {
    urlname
    membershipMetadata { role }
  }
}
";

/// A member of a group, by member id: the group's memberships narrowed to that id
/// (no edge: the group has no such member, or Meetup none at all).
pub const GROUP_MEMBER: &str = "query GroupMember($urlname: String!, $memberIds: [Int!]) {
  groupByUrlname(urlname: $urlname) {
    urlname
    memberships(first: 1, filter: { memberIds: $memberIds }) {
      edges { node { id name } }
    }
  }
}
";

/// Creates (and publishes) an event; Meetup answers the event or payload errors.
pub const CREATE_EVENT: &str = concat!(
    "mutation CreateEvent($input: CreateEventInput!) {
  createEvent(input: $input) {
    errors { code field message }
    event { ...EventFields }
  }
}
",
    event_fields!()
);

/// Every document the client sends, with its operation name (checked by `build.rs`).
pub const ALL: [(&str, &str); 7] = [
    ("GroupEvents", GROUP_EVENTS),
    ("Event", EVENT),
    ("EventRsvps", EVENT_RSVPS),
    ("SelfMember", SELF_MEMBER),
    ("GroupRole", GROUP_ROLE),
    ("GroupMember", GROUP_MEMBER),
    ("CreateEvent", CREATE_EVENT),
];
