//! The client's errors: one variant per thing a caller reacts to differently.

use std::fmt;

use crate::model::{EventId, GroupUrlname};

/// One step of a GraphQL error's `path`: a field's response name or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A field (its alias, if it has one).
    Field(String),
    /// A position in a list.
    Index(usize),
}

/// One entry of a GraphQL response's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphQlError {
    /// What went wrong, as the server put it.
    pub message: String,
    /// Which response field it concerns, if any.
    pub path: Vec<PathSegment>,
    /// Where in the document, as (line, column) pairs.
    pub locations: Vec<(u64, u64)>,
    /// `extensions.code`, if the server gave one.
    pub code: Option<String>,
}

impl fmt::Display for GraphQlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.path.is_empty() {
            f.write_str(" (path ")?;
            for (i, segment) in self.path.iter().enumerate() {
                match segment {
                    PathSegment::Field(name) if i == 0 => f.write_str(name)?,
                    PathSegment::Field(name) => write!(f, ".{name}")?,
                    PathSegment::Index(n) => write!(f, "[{n}]")?,
                }
            }
            f.write_str(")")?;
        }
        if let Some((line, column)) = self.locations.first() {
            write!(f, " at {line}:{column}")?;
        }
        Ok(())
    }
}

fn join(errors: &[GraphQlError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything a Meetup call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MeetupError {
    /// The access token is missing, expired or revoked (HTTP 401): refresh it and retry.
    #[error("Meetup refused the access token (HTTP 401): {message}")]
    Unauthorized {
        /// The server's explanation.
        message: String,
    },
    /// An HTTP status other than 401 that is not a GraphQL answer (after retries, for
    /// 429 and 5xx).
    #[error("Meetup answered HTTP {status} to {operation}: {body}")]
    Status {
        /// The GraphQL operation or OAuth grant.
        operation: String,
        /// HTTP status code.
        status: u16,
        /// The start of the body, for the log.
        body: String,
    },
    /// The server answered with a GraphQL `errors` array.
    #[error("Meetup answered {operation} with errors: {}", join(.errors))]
    GraphQl {
        /// The GraphQL operation.
        operation: String,
        /// Every error, with message and path.
        errors: Vec<GraphQlError>,
    },
    /// The answer did not have the shape the query asks for.
    #[error("could not decode `{field}` in the answer to {operation}: {reason}")]
    Decode {
        /// The GraphQL operation or OAuth grant.
        operation: String,
        /// The JSON path of the offending field (`groupByUrlname.events.edges[3].node.dateTime`).
        field: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The OAuth token endpoint refused the grant (`invalid_grant`, `invalid_client`, ...)
    /// with a 400 or 401 ([`MeetupError::is_refused_grant`],
    /// [`MeetupError::is_client_rejected`]).
    #[error("Meetup refused the OAuth grant (HTTP {status}): {error}{}", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OAuth {
        /// HTTP status code.
        status: u16,
        /// The OAuth `error` code.
        error: String,
        /// `error_description`, if given.
        description: Option<String>,
    },
    /// No group has this urlname (or the token may not see it).
    #[error("Meetup has no group `{0}`")]
    GroupNotFound(GroupUrlname),
    /// No event has this id (or the token may not see it).
    #[error("Meetup has no event `{0}`")]
    EventNotFound(EventId),
    /// A mutation was refused: its payload's `errors` (`code: message` each).
    #[error("Meetup refused {operation}: {}", .errors.join("; "))]
    Refused {
        /// The GraphQL operation.
        operation: String,
        /// Every payload error, as `code (field): message`.
        errors: Vec<String>,
    },
    /// A list came back shorter than the count Meetup gave for it (paging that stopped
    /// early, a group that hides some members from the token's owner). Acting on it
    /// would take away what it left out, so it is not handed out at all.
    #[error(
        "Meetup answered {operation} with {received} of the {total} entries it counts: \
         the list is incomplete"
    )]
    Incomplete {
        /// The GraphQL operation.
        operation: String,
        /// Entries received over all pages.
        received: u64,
        /// Meetup's `totalCount`.
        total: u64,
    },
    /// The request could not be sent or the answer not read (after retries).
    #[error("could not reach Meetup: {0}")]
    Transport(#[source] reqwest::Error),
    /// The client could not be built.
    #[error("invalid Meetup client configuration: {0}")]
    Config(String),
}

impl MeetupError {
    /// True when refreshing the access token may help.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, MeetupError::Unauthorized { .. })
    }

    /// True when the token endpoint refused the grant itself (`invalid_grant`: the
    /// refresh token or code is expired, revoked or spent): only the user authorising
    /// again helps.
    pub fn is_refused_grant(&self) -> bool {
        matches!(self, MeetupError::OAuth { error, .. } if error == "invalid_grant")
    }

    /// True when the token endpoint refused Tavern's own client (`invalid_client`: the
    /// client id or secret is wrong): a configuration error, not the user's grant.
    pub fn is_client_rejected(&self) -> bool {
        matches!(self, MeetupError::OAuth { error, .. } if error == "invalid_client")
    }

    /// True when the request may have reached Meetup and been acted on although the
    /// call failed: a timeout or a connection lost after sending, a 5xx, an answer
    /// that could not be read. For a mutation that means the outcome is unknown (the
    /// event may exist). False when Meetup certainly did not act: no connection, a
    /// 401, a 429, another 4xx, a refusal in words.
    pub fn may_have_been_processed(&self) -> bool {
        match self {
            MeetupError::Transport(e) => !(e.is_connect() || e.is_builder()),
            MeetupError::Status { status, .. } => *status >= 500,
            MeetupError::Decode { .. } => true,
            MeetupError::Unauthorized { .. }
            | MeetupError::GraphQl { .. }
            | MeetupError::OAuth { .. }
            | MeetupError::GroupNotFound(_)
            | MeetupError::EventNotFound(_)
            | MeetupError::Refused { .. }
            | MeetupError::Incomplete { .. }
            | MeetupError::Config(_) => false,
        }
    }
}
