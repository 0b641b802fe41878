//! A fake Meetup on loopback: GraphQL at `/gql-ext` and OAuth2 at `/oauth2/authorize`
//! and `/oauth2/access`, over state that tests seed and inspect.
//!
//! Tests and the offline sandbox point [`crate::MeetupClient`] at
//! [`FakeMeetup::endpoints`]. The fake is strict where Meetup is: every GraphQL document
//! is validated against the real schema (so a wrong field fails in our tests, not in
//! production), a request needs a known bearer token, codes are single-use and a
//! refresh rotates both tokens. What it does not model is listed on [`FakeMeetup`].

pub mod demo;
mod exec;
mod state;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Form, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::{debug, warn};
use url::Url;

use crate::model::{
    EventId, EventStatus, EventType, GroupId, GroupRole, GroupUrlname, MemberId, RsvpId, RsvpStatus,
};
use crate::oauth::{AccessToken, ClientId, ClientSecret, MeetupEndpoints, RefreshToken, Tokens};
use crate::schema::Schema;
use crate::validate;

use state::{ClientRecord, CodeRecord, EventRecord, GroupRecord, MemberRecord, RsvpRecord};

/// Seconds the fake announces as `expires_in`. Tokens never expire by the clock in the
/// fake (no timed behaviour in tests); use [`FakeMeetup::revoke_access_token`].
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// An error the seeding API reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FakeError {
    /// No group has this urlname.
    #[error("the fake has no group `{0}`")]
    UnknownGroup(GroupUrlname),
    /// No member has this id.
    #[error("the fake has no member `{0}`")]
    UnknownMember(MemberId),
    /// No event has this id.
    #[error("the fake has no event `{0}`")]
    UnknownEvent(EventId),
    /// A group with this urlname exists already.
    #[error("the fake already has a group `{0}`")]
    DuplicateGroup(GroupUrlname),
    /// The member never answered the event.
    #[error("member `{member}` never answered event `{event}`")]
    NoRsvp { event: EventId, member: MemberId },
}

/// A fault the next GraphQL requests answer with instead of executing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFault {
    /// HTTP 429 with `Retry-After: retry_after_secs`.
    RateLimited {
        /// Seconds in the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// This HTTP status (e.g. 500, 502, 503) with a plain body.
    Status(u16),
}

/// One GraphQL request as the fake received it (tokens are not recorded).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphQlRequest {
    /// `operationName`, if sent.
    pub operation_name: Option<String>,
    /// The document.
    pub query: String,
    /// The variables (an empty object if none were sent).
    pub variables: Value,
    /// Whether the bearer token was known.
    pub authorized: bool,
    /// The HTTP status the fake answered.
    pub status: u16,
}

/// One token-endpoint request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `grant_type` as sent.
    pub grant_type: String,
    /// The HTTP status the fake answered.
    pub status: u16,
    /// The OAuth `error` code, if it refused.
    pub error: Option<String>,
}

/// An event to seed. Build with [`NewEvent::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The group it belongs to (must exist).
    pub group: GroupUrlname,
    /// Title.
    pub title: String,
    /// Description (campaign shortcodes go here).
    pub description: String,
    /// Start time with the group's offset.
    pub starts_at: DateTime<FixedOffset>,
    /// Duration; `endTime` is derived from it. Default 3 hours.
    pub duration: Option<TimeDelta>,
    /// Default `ACTIVE`.
    pub status: EventStatus,
    /// Default `PHYSICAL`.
    pub event_type: EventType,
    /// RSVP limit. Default none.
    pub max_tickets: Option<u32>,
    /// Hosts (must exist). Default none.
    pub hosts: Vec<MemberId>,
}

impl NewEvent {
    /// An active in-person event of 3 hours without hosts or description.
    pub fn new(group: &GroupUrlname, title: &str, starts_at: DateTime<FixedOffset>) -> NewEvent {
        NewEvent {
            group: group.clone(),
            title: title.to_owned(),
            description: String::new(),
            starts_at,
            duration: Some(TimeDelta::hours(3)),
            status: EventStatus::Active,
            event_type: EventType::Physical,
            max_tickets: None,
            hosts: Vec::new(),
        }
    }
}

struct Shared {
    state: Mutex<state::State>,
}

impl Shared {
    /// The state; a panic while holding the lock (a bug in a test) must not hide every
    /// later request, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, state::State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake Meetup. Dropping it stops the server.
///
/// Supported: `Query.groupByUrlname`, `Query.group`, `Query.event`, `Query.self`;
/// on `Group`: `id urlname name link isPrivate timezone events(first after filter sort
/// status)`
/// (filter: `status`, `afterDateTime` (inclusive), `beforeDateTime` (exclusive),
/// `hostId`, `title`); on `Event`: `id token title description eventUrl dateTime
/// endTime duration status eventType maxTickets group eventHosts rsvps rsvp isAttending
/// guestsAllowed numberOfAllowedGuests rsvpQuestions`; `Event.rsvps(first after filter
/// sort)` with `filter.rsvpStatus` (default YES and ATTENDED, as the schema says),
/// `onlyHosts`, `onlyWithGuests`, `sort.sortField: NAME`, `sortOrder`, `hostsFirst`,
/// and the counts `totalCount yesCount noCount waitlistCount attendedCount absentCount
/// noShowCount`; `Member { id name memberUrl }`; `Rsvp { id member event status isHost
/// guestsCount }`; connections with `first`/`after`, `pageInfo` and `totalCount`;
/// aliases, fragments, `@skip`/`@include`, `__typename`, variables with defaults.
///
/// On `Group`, `membershipMetadata { role status }` is the viewer's role as
/// [`FakeMeetup::set_role`] gave it (null for a non-member), and `memberships(first
/// after filter)` lists the group's members (a role there, a hosted event or an RSVP
/// to one of its events) with `filter.memberIds`, `excludeMemberIds` and `name`; as on
/// Meetup, a member id nobody has matches nobody (an empty list, no error).
///
/// Mutations: `createEvent` (one per document) creates an event when the viewer holds
/// a role that may (organiser, co-organiser, assistant or event organiser) and answers
/// `CreateEventPayload { event errors }`; `groupUrlname`, `title` (1-80 characters),
/// `description` (at most 50,000), `startDateTime` (RFC 3339, or a local time read as
/// UTC), `duration`, `eventHosts` (existing members; the viewer too unless
/// `selfRsvp: false`), `venueId: "online"` (an online event), `publishStatus` and
/// `rsvpSettings.rsvpLimit` are honoured, a bad value is a payload error naming the
/// field.
///
/// Not modelled: other mutations (validated, then refused with a GraphQL error); other query
/// roots (a GraphQL error naming the field); fields without seeded data (null where
/// the schema allows, else a field error naming the field); introspection; venues,
/// photos, fees, series; `last`/`before` paging; token expiry by the clock; scopes;
/// HTTP Basic client authentication (credentials go in the form, as our client sends
/// them); rate limits other than injected faults.
pub struct FakeMeetup {
    shared: Arc<Shared>,
    addr: SocketAddr,
    endpoints: MeetupEndpoints,
    shutdown: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for FakeMeetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeMeetup")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeMeetup {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

impl FakeMeetup {
    /// Starts a fake on a free loopback port (port 0). Needs a tokio runtime.
    pub async fn start() -> io::Result<FakeMeetup> {
        FakeMeetup::start_on(TcpListener::bind(("127.0.0.1", 0)).await?).await
    }

    /// Starts a fake on `listener` (the sandbox uses a fixed port).
    pub async fn start_on(listener: TcpListener) -> io::Result<FakeMeetup> {
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let endpoints = MeetupEndpoints::parse(
            &format!("{base}/gql-ext"),
            &format!("{base}/oauth2/authorize"),
            &format!("{base}/oauth2/access"),
        )
        .map_err(io::Error::other)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state::State::default()),
        });
        let app = router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "fake Meetup server stopped with an error");
            }
        });
        debug!(%addr, "fake Meetup listening");
        Ok(FakeMeetup {
            shared,
            addr,
            endpoints,
            shutdown: Some(stop),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// GraphQL, authorize and token URLs of this fake, for [`crate::MeetupClient::new`].
    pub fn endpoints(&self) -> MeetupEndpoints {
        self.endpoints.clone()
    }

    /// Adds a group; its id is generated.
    pub fn add_group(&self, urlname: &GroupUrlname, name: &str) -> Result<GroupId, FakeError> {
        let mut state = self.shared.lock();
        if state.groups.contains_key(urlname) {
            return Err(FakeError::DuplicateGroup(urlname.clone()));
        }
        let id = GroupId::from_number(id_number(state.next_number()));
        state.groups.insert(
            urlname.clone(),
            GroupRecord {
                id: id.clone(),
                urlname: urlname.clone(),
                name: name.to_owned(),
                timezone: None,
            },
        );
        Ok(id)
    }

    /// Sets a group's time zone (an IANA name, such as `Europe/Zurich`), which
    /// `Group.timezone` answers.
    pub fn set_group_timezone(
        &self,
        urlname: &GroupUrlname,
        timezone: &str,
    ) -> Result<(), FakeError> {
        let mut state = self.shared.lock();
        let group = state
            .groups
            .get_mut(urlname)
            .ok_or_else(|| FakeError::UnknownGroup(urlname.clone()))?;
        group.timezone = Some(timezone.to_owned());
        Ok(())
    }

    /// Adds a member; its id is generated.
    pub fn add_member(&self, name: &str) -> MemberId {
        let mut state = self.shared.lock();
        let id = MemberId::from_number(id_number(state.next_number()));
        state.members.insert(
            id.clone(),
            MemberRecord {
                id: id.clone(),
                name: name.to_owned(),
            },
        );
        id
    }

    /// Adds an event; its id is generated.
    pub fn add_event(&self, event: NewEvent) -> Result<EventId, FakeError> {
        let mut state = self.shared.lock();
        if !state.groups.contains_key(&event.group) {
            return Err(FakeError::UnknownGroup(event.group));
        }
        if let Some(host) = event.hosts.iter().find(|h| !state.members.contains_key(*h)) {
            return Err(FakeError::UnknownMember(host.clone()));
        }
        let id = EventId::from_number(id_number(state.next_number()));
        state.events.push(EventRecord {
            id: id.clone(),
            group: event.group,
            title: event.title,
            description: event.description,
            starts_at: event.starts_at,
            duration: event.duration,
            status: event.status,
            event_type: event.event_type,
            max_tickets: event.max_tickets,
            hosts: event.hosts,
        });
        Ok(id)
    }

    /// Gives `member` a role in `group` (organiser, member, ...): what
    /// `Group.membershipMetadata.role` answers when `member` asks, and whether they may
    /// create events there (any organiser role, event organiser included).
    pub fn set_role(
        &self,
        group: &GroupUrlname,
        member: &MemberId,
        role: GroupRole,
    ) -> Result<(), FakeError> {
        let mut state = self.shared.lock();
        if !state.groups.contains_key(group) {
            return Err(FakeError::UnknownGroup(group.clone()));
        }
        if !state.members.contains_key(member) {
            return Err(FakeError::UnknownMember(member.clone()));
        }
        state.roles.insert((group.clone(), member.clone()), role);
        Ok(())
    }

    /// Every event, in creation order (seeded or created through `createEvent`), as
    /// its seed would describe it.
    pub fn events(&self) -> Vec<(EventId, NewEvent)> {
        self.shared
            .lock()
            .events
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    NewEvent {
                        group: e.group.clone(),
                        title: e.title.clone(),
                        description: e.description.clone(),
                        starts_at: e.starts_at,
                        duration: e.duration,
                        status: e.status.clone(),
                        event_type: e.event_type.clone(),
                        max_tickets: e.max_tickets,
                        hosts: e.hosts.clone(),
                    },
                )
            })
            .collect()
    }

    /// Changes an event's status (e.g. cancels it).
    pub fn set_event_status(&self, id: &EventId, status: EventStatus) -> Result<(), FakeError> {
        let mut state = self.shared.lock();
        let event = state
            .event_mut(id)
            .ok_or_else(|| FakeError::UnknownEvent(id.clone()))?;
        event.status = status;
        Ok(())
    }

    /// Records `member`'s answer to `event` with `guests` guests. `isHost` follows the
    /// event's hosts.
    pub fn add_rsvp(
        &self,
        event: &EventId,
        member: &MemberId,
        status: RsvpStatus,
        guests: u32,
    ) -> Result<RsvpId, FakeError> {
        let mut state = self.shared.lock();
        if state.event(event.as_str()).is_none() {
            return Err(FakeError::UnknownEvent(event.clone()));
        }
        if !state.members.contains_key(member) {
            return Err(FakeError::UnknownMember(member.clone()));
        }
        let id = RsvpId::from_number(id_number(state.next_number()));
        state.rsvps.push(RsvpRecord {
            id: id.clone(),
            event: event.clone(),
            member: member.clone(),
            status,
            guests,
        });
        Ok(id)
    }

    /// Changes `member`'s answer to `event` (a withdrawn RSVP is `No`, as Meetup shows
    /// it); the member must have answered before.
    pub fn change_rsvp(
        &self,
        event: &EventId,
        member: &MemberId,
        status: RsvpStatus,
    ) -> Result<(), FakeError> {
        let mut state = self.shared.lock();
        let rsvp = state
            .rsvps
            .iter_mut()
            .find(|r| &r.event == event && &r.member == member)
            .ok_or_else(|| FakeError::NoRsvp {
                event: event.clone(),
                member: member.clone(),
            })?;
        rsvp.status = status;
        Ok(())
    }

    /// Replaces an event's hosts.
    pub fn set_event_hosts(&self, id: &EventId, hosts: Vec<MemberId>) -> Result<(), FakeError> {
        let mut state = self.shared.lock();
        let event = state
            .event_mut(id)
            .ok_or_else(|| FakeError::UnknownEvent(id.clone()))?;
        event.hosts = hosts;
        Ok(())
    }

    /// Registers an OAuth client with its secret and its one redirect URI.
    pub fn add_oauth_client(&self, id: &ClientId, secret: &ClientSecret, redirect_uri: &Url) {
        self.shared.lock().clients.insert(
            id.as_str().to_owned(),
            ClientRecord {
                secret: secret.expose().to_owned(),
                redirect_uri: redirect_uri.as_str().to_owned(),
            },
        );
    }

    /// The member who is "logged in to meetup.com" and approves the next authorize
    /// requests. With nobody signed in, authorize redirects with `error=access_denied`.
    pub fn sign_in(&self, member: &MemberId) -> Result<(), FakeError> {
        let mut state = self.shared.lock();
        if !state.members.contains_key(member) {
            return Err(FakeError::UnknownMember(member.clone()));
        }
        state.signed_in = Some(member.clone());
        Ok(())
    }

    /// Issues tokens for `member` directly (as if an OAuth flow had happened), for
    /// tests that are not about OAuth.
    pub fn issue_tokens(&self, member: &MemberId) -> Result<Tokens, FakeError> {
        let mut state = self.shared.lock();
        if !state.members.contains_key(member) {
            return Err(FakeError::UnknownMember(member.clone()));
        }
        let (access, refresh) = state.issue_tokens(member, "");
        Ok(tokens(access, refresh))
    }

    /// Makes an access token unknown, as if it had expired.
    pub fn revoke_access_token(&self, token: &AccessToken) {
        self.shared.lock().access_tokens.remove(token.expose());
    }

    /// Whether the fake would accept this access token.
    pub fn is_access_token_valid(&self, token: &AccessToken) -> bool {
        self.shared
            .lock()
            .access_tokens
            .contains_key(token.expose())
    }

    /// Whether the fake would accept this refresh token.
    pub fn is_refresh_token_valid(&self, token: &RefreshToken) -> bool {
        self.shared
            .lock()
            .refresh_tokens
            .contains_key(token.expose())
    }

    /// The next `count` GraphQL requests answer `fault` instead of executing (before
    /// authentication, like a proxy in front of Meetup would).
    pub fn fail_next(&self, count: usize, fault: FakeFault) {
        let mut state = self.shared.lock();
        for _ in 0..count {
            state.faults.push_back(fault.clone());
        }
    }

    /// From now on every RSVP list shows at most `shown` entries in all (its paging
    /// ends there, `hasNextPage` false), while `totalCount` still counts every RSVP the
    /// filter matches: paging that stops early, or a private group hiding members from
    /// the viewer. `None` shows whole lists again.
    pub fn cut_rsvp_lists(&self, shown: Option<usize>) {
        self.shared.lock().rsvp_list_limit = shown;
    }

    /// The next `count` GraphQL requests named `operation` (`operationName`) answer
    /// `fault` instead of executing; other requests are not affected.
    pub fn fail_next_of(&self, operation: &str, count: usize, fault: FakeFault) {
        let mut state = self.shared.lock();
        let queue = state
            .operation_faults
            .entry(operation.to_owned())
            .or_default();
        for _ in 0..count {
            queue.push_back(fault.clone());
        }
    }

    /// Every GraphQL request received, oldest first.
    pub fn graphql_requests(&self) -> Vec<GraphQlRequest> {
        self.shared.lock().graphql_log.clone()
    }

    /// Every token-endpoint request received, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared.lock().token_log.clone()
    }
}

/// Ids are decimal numbers from one counter, offset so they look like Meetup's (nine
/// digits, never a leading zero).
fn id_number(n: u64) -> u64 {
    100_000_000 + n
}

fn tokens(access: String, refresh: String) -> Tokens {
    let expires_in = std::time::Duration::from_secs(TOKEN_LIFETIME_SECS);
    Tokens {
        access_token: AccessToken::from(access),
        refresh_token: RefreshToken::from(refresh),
        expires_in,
        expires_at: Utc::now() + TimeDelta::seconds(TOKEN_LIFETIME_SECS as i64),
        token_type: "bearer".to_owned(),
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/gql-ext", post(graphql))
        .route("/oauth2/authorize", get(authorize))
        .route("/oauth2/access", post(token))
        .with_state(shared)
}

fn graphql_errors(status: StatusCode, messages: Vec<Value>) -> Response {
    (status, Json(json!({ "errors": messages }))).into_response()
}

/// `POST /gql-ext`: faults, then authentication, then parse, validate and execute.
async fn graphql(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let request = parsed.as_ref().ok().and_then(Value::as_object);
    let query = request
        .and_then(|r| r.get("query"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let operation_name = request
        .and_then(|r| r.get("operationName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let variables = match request.and_then(|r| r.get("variables")) {
        None | Some(Value::Null) => Some(Map::new()),
        Some(Value::Object(vars)) => Some(vars.clone()),
        Some(_) => None,
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);

    let mut state = shared.lock();
    let viewer = bearer.and_then(|t| state.access_tokens.get(t)).cloned();
    let fault = operation_name
        .as_deref()
        .and_then(|op| state.operation_faults.get_mut(op))
        .and_then(VecDeque::pop_front)
        .or_else(|| state.faults.pop_front());
    let mut record = GraphQlRequest {
        operation_name: operation_name.clone(),
        query: query.clone().unwrap_or_default(),
        variables: Value::Object(variables.clone().unwrap_or_default()),
        authorized: viewer.is_some(),
        status: 200,
    };
    let response = match (fault, viewer) {
        (Some(FakeFault::RateLimited { retry_after_secs }), _) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "errors": [{ "message": "too many requests" }] })),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        (Some(FakeFault::Status(code)), _) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, "injected fault").into_response()
        }
        (None, None) => graphql_errors(
            StatusCode::UNAUTHORIZED,
            vec![json!({
                "message": if bearer.is_some() {
                    "invalid or expired access token"
                } else {
                    "missing Authorization: Bearer access token"
                },
                "extensions": { "code": "UNAUTHENTICATED" },
            })],
        ),
        (None, Some(viewer)) => match (query, variables) {
            (Some(query), Some(variables)) => answer(
                &mut state,
                &viewer,
                &query,
                operation_name.as_deref(),
                &variables,
            ),
            _ => graphql_errors(
                StatusCode::BAD_REQUEST,
                vec![json!({
                    "message": "the body must be a JSON object with a string `query` and an object `variables`"
                })],
            ),
        },
    };
    record.status = response.status().as_u16();
    debug!(
        operation = record.operation_name.as_deref().unwrap_or("(anonymous)"),
        status = record.status,
        "fake Meetup answered a GraphQL request"
    );
    state.graphql_log.push(record);
    response
}

fn answer(
    state: &mut state::State,
    viewer: &MemberId,
    query: &str,
    operation_name: Option<&str>,
    variables: &Map<String, Value>,
) -> Response {
    let schema = match Schema::meetup() {
        Ok(schema) => schema,
        Err(e) => {
            return graphql_errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![json!({ "message": e.to_string() })],
            );
        }
    };
    let doc = match validate::parse_and_validate(schema, query) {
        Ok(doc) => doc,
        Err(errors) => {
            let errors = errors
                .into_iter()
                .map(|e| {
                    json!({
                        "message": e.message,
                        "locations": [{ "line": e.line, "column": e.column }],
                        "extensions": { "code": "GRAPHQL_VALIDATION_FAILED" },
                    })
                })
                .collect();
            // Like most GraphQL servers over application/json: HTTP 200, no `data`.
            return graphql_errors(StatusCode::OK, errors);
        }
    };
    let body = exec::execute(schema, state, viewer, &doc, operation_name, variables);
    (StatusCode::OK, Json(body)).into_response()
}

/// `GET /oauth2/authorize`: the signed-in member approves at once and the browser is
/// sent back to the registered redirect URI with `code` and `state`.
async fn authorize(
    AxumState(shared): AxumState<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let mut state = shared.lock();
    let Some(client) = state.clients.get(param("client_id")).cloned() else {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    };
    // Never redirect anywhere but the registered URI.
    if param("redirect_uri") != client.redirect_uri {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri does not match the registered one",
        )
            .into_response();
    }
    let Ok(mut target) = Url::parse(&client.redirect_uri) else {
        return (
            StatusCode::BAD_REQUEST,
            "registered redirect_uri is invalid",
        )
            .into_response();
    };
    let outcome = if param("response_type") != "code" {
        Err("unsupported_response_type")
    } else {
        state.signed_in.clone().ok_or("access_denied")
    };
    {
        let mut query = target.query_pairs_mut();
        match outcome {
            Ok(member) => {
                let code = state.next_secret("code");
                state.codes.insert(
                    code.clone(),
                    CodeRecord {
                        client_id: param("client_id").to_owned(),
                        member,
                        redirect_uri: client.redirect_uri.clone(),
                        issued: None,
                    },
                );
                query.append_pair("code", &code);
            }
            Err(error) => {
                query.append_pair("error", error);
            }
        }
        if let Some(s) = params.get("state") {
            query.append_pair("state", s);
        }
    }
    match HeaderValue::from_str(target.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "redirect_uri is not a valid header",
        )
            .into_response(),
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// `POST /oauth2/access`: the `authorization_code` and `refresh_token` grants.
async fn token(
    AxumState(shared): AxumState<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant_type = form_field(&form, "grant_type").to_owned();
    let mut state = shared.lock();
    let result = grant(&mut state, &grant_type, &form);
    let (response, status, error) = match result {
        Ok((access, refresh)) => (
            (
                StatusCode::OK,
                Json(json!({
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_in": TOKEN_LIFETIME_SECS,
                    "token_type": "bearer",
                })),
            )
                .into_response(),
            200,
            None,
        ),
        Err((error, description)) => (
            oauth_error(StatusCode::BAD_REQUEST, error, description),
            400,
            Some(error.to_owned()),
        ),
    };
    state.token_log.push(TokenRequest {
        grant_type,
        status,
        error,
    });
    response
}

type GrantResult = Result<(String, String), (&'static str, &'static str)>;

fn form_field<'f>(form: &'f HashMap<String, String>, name: &str) -> &'f str {
    form.get(name).map(String::as_str).unwrap_or("")
}

fn grant(
    state: &mut state::State,
    grant_type: &str,
    form: &HashMap<String, String>,
) -> GrantResult {
    let field = |name: &str| form_field(form, name);
    let client_id = field("client_id");
    let known = state
        .clients
        .get(client_id)
        .is_some_and(|c| c.secret == field("client_secret"));
    if !known {
        return Err(("invalid_client", "unknown client or wrong client secret"));
    }
    match grant_type {
        "authorization_code" => {
            let Some(code) = state.codes.get(field("code")).cloned() else {
                return Err(("invalid_grant", "unknown authorization code"));
            };
            if let Some((access, refresh)) = &code.issued {
                // A replayed code may be stolen: revoke what it gave (RFC 6749 4.1.2).
                state.access_tokens.remove(access);
                state.refresh_tokens.remove(refresh);
                return Err(("invalid_grant", "authorization code already used"));
            }
            if code.client_id != client_id {
                return Err(("invalid_grant", "code was issued to another client"));
            }
            if field("redirect_uri") != code.redirect_uri {
                return Err((
                    "invalid_grant",
                    "redirect_uri does not match the authorize request",
                ));
            }
            let pair = state.issue_tokens(&code.member, client_id);
            if let Some(record) = state.codes.get_mut(field("code")) {
                record.issued = Some(pair.clone());
            }
            Ok(pair)
        }
        "refresh_token" => {
            let Some(record) = state.refresh_tokens.get(field("refresh_token")).cloned() else {
                return Err(("invalid_grant", "unknown refresh token"));
            };
            if record.client_id != client_id && !record.client_id.is_empty() {
                return Err((
                    "invalid_grant",
                    "refresh token was issued to another client",
                ));
            }
            // Rotation: the old pair stops working.
            state.refresh_tokens.remove(field("refresh_token"));
            state.access_tokens.remove(&record.access_token);
            Ok(state.issue_tokens(&record.member, client_id))
        }
        _ => Err((
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        )),
    }
}
