//! Meetup for Tavern: a GraphQL client for Meetup's API, its OAuth2 grants, and a fake
//! Meetup server that tests and the offline sandbox point the client at.
//!
//! The campaigns feature turns Meetup events into Discord channels. It needs a group's
//! upcoming events (with hosts and descriptions, where the campaign shortcodes live),
//! the YES RSVPs of an event, the member a token belongs to, and the organiser's OAuth2
//! tokens. This crate is the only one that knows Meetup's wire format.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use meetup::fake::{FakeMeetup, NewEvent};
//! use meetup::{EventWindow, GroupUrlname, MeetupClient};
//!
//! let fake = FakeMeetup::start().await?;
//! let group = GroupUrlname::parse("swiss-rpg")?;
//! fake.add_group(&group, "Swiss RPG")?;
//! let gm = fake.add_member("Gabriel");
//! let starts = chrono::DateTime::parse_from_rfc3339("2026-01-10T19:00:00+01:00")?;
//! let mut session = NewEvent::new(&group, "Curse of Strahd", starts);
//! session.description = "[new campaign] [online]".into();
//! session.hosts = vec![gm.clone()];
//! fake.add_event(session)?;
//! let tokens = fake.issue_tokens(&gm)?;
//!
//! let client = MeetupClient::new(fake.endpoints())?; // MeetupEndpoints::production() in prod
//! let events = client
//!     .group_events(&tokens.access_token, &group, &EventWindow::default())
//!     .await?;
//! assert_eq!(events[0].hosts[0].name.as_deref(), Some("Gabriel"));
//! # Ok(()) }
//! ```
//!
//! # Modules
//! - `schema`: Meetup's schema (`schema/meetup.graphql`, the SDL printed from an
//!   introspection of `/gql-ext`, included with `include_str!`) parsed once into types,
//!   fields, arguments and enum values ([`schema::Schema::meetup`]).
//! - `validate`: checks an operation document against a schema like a GraphQL server
//!   does (fields exist on their parent, arguments exist, fit and required ones are
//!   given, variables are declared, used and typed, leaf/composite selections, enum
//!   members, fragments, `@skip`/`@include`); every error names the field, argument or
//!   variable and its line:column. The module docs list the rules.
//! - `queries`: the documents the client sends, as constants. `build.rs` validates each
//!   against the schema with the `validate` module (included with `#[path]`), so a
//!   field Meetup does not have fails the build with its name and position.
//! - `model`: typed ids ([`EventId`], [`MemberId`], [`RsvpId`], [`GroupId`],
//!   [`GroupUrlname`]: newtypes with private fields and `parse`), status enums, and the
//!   values the client returns ([`Event`], [`Rsvp`], [`Member`]), with Meetup's
//!   date-time and ISO 8601 duration formats.
//! - `oauth`: [`OAuthApp`], [`Tokens`] and the secret newtypes (redacted in `Debug`),
//!   [`MeetupEndpoints`] (every base URL is configuration) and the authorize URL.
//! - `client` ([`MeetupClient`]): `group_events` (all pages), `event`, `event_rsvps`
//!   (YES only, all pages), `self_member`, `group_role` (the token owner's role in a
//!   group), `create_event` (the one mutation), `exchange_code`, `refresh`; errors are
//!   [`MeetupError`].
//! - [`fake`]: the fake Meetup server ([`fake::FakeMeetup`]); what it supports and what
//!   it does not is listed on that type. [`fake::demo`] seeds the sandbox's demo group.
//!
//! # Choices
//! - **A small parser and our own validator** (`graphql-parser` only), not a GraphQL
//!   framework or a code generator: the rules we need are one module, the build stays
//!   light, and the very same code checks our queries at build time and every request
//!   the fake receives. `graphql-parser` keeps no positions for argument values, so
//!   errors about an argument point at its field (or directive).
//! - **The fake validates, then executes.** A document that is invalid against the
//!   real schema gets `{"errors":[{"message","locations"}]}` (HTTP 200, no `data`),
//!   so a wrong field fails in our tests. Valid queries are executed over seeded state
//!   by a small executor that follows the schema's types: aliases, fragments,
//!   `__typename`, variables coerced against their declarations, connections with
//!   `first`/`after`, and null propagation to the nearest nullable field. A field the
//!   fake has no data for is null when the schema allows null and a field error
//!   naming it otherwise; the fake never invents values.
//! - **The client holds no token.** Each call takes the [`AccessToken`]; campaigns
//!   stores and refreshes tokens (in Redis) and reacts to
//!   [`MeetupError::Unauthorized`] (HTTP 401, or a GraphQL error whose
//!   `extensions.code` says unauthenticated) by refreshing.
//! - **No partial answers.** A response with `errors` is an error even if it carries
//!   some `data`: a sync acting on half an answer would delete what it did not see.
//! - **Retries** ([`RetryPolicy`]): 429 and 5xx are retried with exponential backoff
//!   from 200 ms, each wait at most 10 s, at most 3 times; a `Retry-After` (seconds or
//!   an HTTP date) is honoured, and one asking for more than 10 s ends the retries
//!   (the caller's next run asks again) rather than being cut short. Connection
//!   failures are retried likewise for GraphQL reads. Other 4xx are never retried.
//!   OAuth grants retry only 429: after a 5xx the code may be spent. A token endpoint
//!   answering 5xx, 429 or another 4xx is [`MeetupError::Status`] even with an OAuth
//!   `error` body; only a 400 or 401 with one is a refused grant
//!   ([`MeetupError::OAuth`]: `invalid_grant` is the user's grant,
//!   [`MeetupError::is_refused_grant`]; `invalid_client` is Tavern's own client id or
//!   secret, [`MeetupError::is_client_rejected`]). A `Retry-After` too large for a
//!   duration counts as the longest wait.
//! - **RSVPs without a status** (the schema allows null) are kept in the YES list the
//!   server was asked for, so one odd entry never fails an event's whole list.
//! - **Paging** follows `pageInfo.endCursor` while `hasNextPage`, 100 items a page by
//!   default; a server repeating a cursor is a decode error, not an endless loop. An
//!   RSVP list with fewer entries than its `totalCount` is
//!   [`MeetupError::Incomplete`] from `event_rsvps`, never a shorter answer;
//!   `event_rsvp_list` hands out what was listed and says it is incomplete
//!   ([`RsvpList::is_complete`]) for a caller that can use part of a list (the fake
//!   cuts lists short with [`fake::FakeMeetup::cut_rsvp_lists`]).
//! - **Event windows are half-open** (`after <= dateTime < before`) and default to
//!   `ACTIVE` events, so consecutive windows neither miss nor repeat an event. The
//!   fake implements the filter that way; Meetup documents only "after"/"before".
//! - **RSVPs are filtered by the server** (`filter: {rsvpStatus: [YES]}`) and again by
//!   the client, in case a server ignores the filter.
//! - **Enums Meetup may extend** (`EventStatus`, `EventType`, `RsvpStatus`) have an
//!   `Other(String)` variant: a new value must not break a whole sync. Fields the
//!   schema makes nullable (`dateTime`, `endTime`, `maxTickets`, a host's member) are
//!   `Option`s.
//! - **Decode errors name the field** by its JSON path
//!   (`groupByUrlname.events.edges[3].node.dateTime`).
//! - **TLS** is rustls with the ring provider the rest of the workspace uses; the
//!   client installs it if nobody has.
//! - **The fake's OAuth** follows RFC 6749: codes are single-use (a replayed code is
//!   refused and revokes the tokens it gave), a refresh rotates both tokens and the old
//!   access token stops working, errors are HTTP 400 with `{"error": ...}`
//!   (`invalid_client`, `invalid_grant`, `unsupported_grant_type`), and authorize never
//!   redirects to an unregistered URI.

mod client;
mod error;
pub mod fake;
pub mod model;
pub mod oauth;
pub mod queries;
pub mod schema;
pub mod validate;

#[cfg(test)]
mod validate_tests;

pub use client::{DEFAULT_PAGE_SIZE, MeetupClient, RetryPolicy};
pub use error::{GraphQlError, MeetupError, PathSegment};
pub use model::{
    Event, EventDraft, EventHost, EventId, EventStatus, EventType, EventWindow, GroupId, GroupRole,
    GroupUrlname, Member, MemberId, ParseError, Rsvp, RsvpId, RsvpList, RsvpStatus,
};
pub use oauth::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, EndpointError, MeetupEndpoints,
    OAuthApp, RefreshToken, Tokens,
};
