//! `MeetupClient`: the GraphQL calls campaigns needs and the OAuth2 grants, over reqwest.
//!
//! The client holds no token: every call takes the [`AccessToken`] to use, because the
//! caller owns the token's lifecycle (it is stored in Redis and refreshed on a schedule
//! or after [`MeetupError::Unauthorized`]). A `MeetupClient` is cheap to clone.

use std::fmt;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::error::{GraphQlError, MeetupError, PathSegment};
use crate::model::{
    self, Event, EventDraft, EventHost, EventId, EventStatus, EventType, EventWindow, GroupRole,
    GroupUrlname, Member, MemberId, Rsvp, RsvpId, RsvpList, RsvpStatus,
};
use crate::oauth::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, MeetupEndpoints, OAuthApp,
    RefreshToken, Tokens,
};
use crate::queries;

/// How often and how patiently to retry a 429 or 5xx answer (and, for GraphQL reads, a
/// failed connection). Other 4xx answers are never retried: asking again cannot help.
/// A `Retry-After` (seconds or an HTTP date) longer than `max_backoff` is not waited
/// for: the answer goes back to the caller at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Wait before the first retry; doubled each time.
    pub initial_backoff: Duration,
    /// Upper bound of one wait; a server's `Retry-After` beyond it ends the retries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts over about 1.4 s plus what `Retry-After` asks, at most 10 s a wait:
    /// enough for a blip, short enough for a 15-minute sync.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Page size for connections. Meetup documents no maximum for `first`; 100 keeps
/// answers small while a group's upcoming events fit in one or two pages.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Safety net against a server whose `pageInfo` never ends.
const MAX_PAGES: usize = 1_000;

/// A Meetup API client. See the module docs.
#[derive(Clone)]
pub struct MeetupClient {
    http: reqwest::Client,
    endpoints: MeetupEndpoints,
    retry: RetryPolicy,
    page_size: u32,
}

impl fmt::Debug for MeetupClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeetupClient")
            .field("endpoints", &self.endpoints)
            .field("retry", &self.retry)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// Which retries a request may have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    /// A read: retry 429, 5xx and connection failures.
    Read,
    /// A grant that consumes something (a code, a refresh token), or a mutation that
    /// creates something: retry only 429,
    /// which means the server did not process it. After a 5xx or a lost connection
    /// the code may be spent, and a retry would only turn the real error into
    /// `invalid_grant`.
    Grant,
}

impl MeetupClient {
    /// A client for `endpoints` with the default retry policy and page size.
    pub fn new(endpoints: MeetupEndpoints) -> Result<MeetupClient, MeetupError> {
        // reqwest's rustls needs a process-wide provider; the workspace uses ring.
        // Installing twice is harmless (the second call is refused and ignored).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("tavern-meetup/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| MeetupError::Config(e.to_string()))?;
        Ok(MeetupClient {
            http,
            endpoints,
            retry: RetryPolicy::default(),
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> MeetupClient {
        self.retry = retry;
        self
    }

    /// Replaces the page size for connections (at least 1).
    pub fn with_page_size(mut self, page_size: u32) -> MeetupClient {
        self.page_size = page_size.max(1);
        self
    }

    /// The endpoints this client talks to.
    pub fn endpoints(&self) -> &MeetupEndpoints {
        &self.endpoints
    }

    /// Every event of `group` in `window`, oldest first, following `endCursor` until
    /// `hasNextPage` is false.
    pub async fn group_events(
        &self,
        token: &AccessToken,
        group: &GroupUrlname,
        window: &EventWindow,
    ) -> Result<Vec<Event>, MeetupError> {
        let op = "GroupEvents";
        let statuses: Vec<&str> = window.statuses.iter().map(EventStatus::as_str).collect();
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let variables = json!({
                "urlname": group.as_str(),
                "first": self.page_size,
                "after": after,
                "statuses": if statuses.is_empty() { Value::Null } else { json!(statuses) },
                "afterDateTime": window.after.as_ref().map(model::format_date_time),
                "beforeDateTime": window.before.as_ref().map(model::format_date_time),
            });
            let data = self
                .graphql(token, op, queries::GROUP_EVENTS, variables)
                .await?;
            let root = At::root(&data, op);
            let Some(group_node) = root.get("groupByUrlname").non_null() else {
                return Err(MeetupError::GroupNotFound(group.clone()));
            };
            let connection = group_node.get("events");
            for edge in connection.get("edges").items()? {
                events.push(decode_event(&edge.get("node"))?);
            }
            match next_cursor(&connection, after.as_deref())? {
                Some(cursor) => after = Some(cursor),
                None => {
                    debug!(group = %group, count = events.len(), "fetched group events");
                    return Ok(events);
                }
            }
        }
        Err(too_many_pages(op))
    }

    /// One event, or `None` if Meetup has none with this id (or hides it).
    pub async fn event(
        &self,
        token: &AccessToken,
        id: &EventId,
    ) -> Result<Option<Event>, MeetupError> {
        let op = "Event";
        let data = self
            .graphql(token, op, queries::EVENT, json!({ "eventId": id.as_str() }))
            .await?;
        At::root(&data, op)
            .get("event")
            .non_null()
            .map(|event| decode_event(&event))
            .transpose()
    }

    /// The RSVPs of an event that said yes, over all pages, in Meetup's order.
    ///
    /// Fewer entries than the connection's `totalCount` (paging that ended early, a
    /// group that hides members from the token's owner) is
    /// [`MeetupError::Incomplete`]: a caller replacing its copy with a short list would
    /// drop the players it left out ([`MeetupClient::event_rsvp_list`] hands out the
    /// part Meetup listed).
    pub async fn event_rsvps(
        &self,
        token: &AccessToken,
        id: &EventId,
    ) -> Result<Vec<Rsvp>, MeetupError> {
        let list = self.event_rsvp_list(token, id).await?;
        match list.total {
            Some(total) if !list.is_complete() => Err(MeetupError::Incomplete {
                operation: "EventRsvps".to_owned(),
                received: list.received,
                total,
            }),
            _ => Ok(list.rsvps),
        }
    }

    /// The RSVPs of an event that said yes, over all pages, in Meetup's order, with
    /// Meetup's count for the list: fewer entries than the count is not an error here
    /// ([`RsvpList::is_complete`]), for a caller that can act on who is listed without
    /// taking the list for everybody.
    pub async fn event_rsvp_list(
        &self,
        token: &AccessToken,
        id: &EventId,
    ) -> Result<RsvpList, MeetupError> {
        let op = "EventRsvps";
        let mut rsvps = Vec::new();
        let mut after: Option<String> = None;
        let mut received: u64 = 0;
        let mut total: Option<u64> = None;
        for _ in 0..MAX_PAGES {
            let variables = json!({
                "eventId": id.as_str(),
                "first": self.page_size,
                "after": after,
                "statuses": [RsvpStatus::Yes.as_str()],
            });
            let data = self
                .graphql(token, op, queries::EVENT_RSVPS, variables)
                .await?;
            let Some(event) = At::root(&data, op).get("event").non_null() else {
                return Err(MeetupError::EventNotFound(id.clone()));
            };
            let connection = event.get("rsvps");
            // The latest page's count: the list as of the end of the paging.
            total = connection.get("totalCount").optional(At::u64)?.or(total);
            for edge in connection.get("edges").items()? {
                received = received.saturating_add(1);
                let rsvp = decode_rsvp(&edge.get("node"))?;
                // The filter asks for YES only; keep the promise even if a server
                // ignores the filter. An RSVP without a status (the schema allows
                // null) is in the YES list the server was asked for: kept.
                if rsvp.status.as_ref().is_none_or(|s| *s == RsvpStatus::Yes) {
                    rsvps.push(rsvp);
                }
            }
            match next_cursor(&connection, after.as_deref())? {
                Some(cursor) => after = Some(cursor),
                None => {
                    return Ok(RsvpList {
                        rsvps,
                        received,
                        total,
                    });
                }
            }
        }
        Err(too_many_pages(op))
    }

    /// The member the token belongs to.
    pub async fn self_member(&self, token: &AccessToken) -> Result<Member, MeetupError> {
        let op = "SelfMember";
        let data = self
            .graphql(token, op, queries::SELF_MEMBER, json!({}))
            .await?;
        decode_member(&At::root(&data, op).get("self"))
    }

    /// The token owner's role in `group`: `None` when they are not a member (or
    /// their membership has no active role). [`MeetupError::GroupNotFound`] when
    /// Meetup has no such group.
    pub async fn group_role(
        &self,
        token: &AccessToken,
        group: &GroupUrlname,
    ) -> Result<Option<GroupRole>, MeetupError> {
        let op = "GroupRole";
        let data = self
            .graphql(
                token,
                op,
                queries::GROUP_ROLE,
                json!({ "urlname": group.as_str() }),
            )
            .await?;
        let Some(group_node) = At::root(&data, op).get("groupByUrlname").non_null() else {
            return Err(MeetupError::GroupNotFound(group.clone()));
        };
        group_node
            .get("membershipMetadata")
            .non_null()
            .and_then(|m| m.get("role").non_null())
            .map(|role| role.str().map(GroupRole::from_wire))
            .transpose()
    }

    /// `member` as a member of `group`: `None` when the group has no such member,
    /// which is also Meetup's answer for an id no member has (an empty list, no
    /// error). Meetup filters memberships by 32-bit integer ids; an id that is no such
    /// number belongs to no member, and Meetup is not asked. [`MeetupError::GroupNotFound`]
    /// when Meetup has no such group.
    pub async fn group_member(
        &self,
        token: &AccessToken,
        group: &GroupUrlname,
        member: &MemberId,
    ) -> Result<Option<Member>, MeetupError> {
        let Ok(number) = member.as_str().parse::<i32>() else {
            return Ok(None);
        };
        let op = "GroupMember";
        let data = self
            .graphql(
                token,
                op,
                queries::GROUP_MEMBER,
                json!({ "urlname": group.as_str(), "memberIds": [number] }),
            )
            .await?;
        let Some(group_node) = At::root(&data, op).get("groupByUrlname").non_null() else {
            return Err(MeetupError::GroupNotFound(group.clone()));
        };
        // Only the member asked about counts, whatever else an answer holds.
        for edge in group_node.get("memberships").get("edges").items()? {
            if let Some(found) = edge.get("node").optional(decode_member)?
                && &found.id == member
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Creates and publishes `draft` as a new event (the token owner must be allowed
    /// to create events in the group) and returns it as Meetup stored it. Sent once:
    /// only a 429 (not processed) is retried, since a retry after a 5xx or a lost
    /// answer could create the event twice. Payload errors are
    /// [`MeetupError::Refused`].
    pub async fn create_event(
        &self,
        token: &AccessToken,
        draft: &EventDraft,
    ) -> Result<Event, MeetupError> {
        let op = "CreateEvent";
        let hosts: Vec<i64> = draft
            .hosts
            .iter()
            .filter_map(|h| h.as_str().parse::<i64>().ok())
            .take(5)
            .collect();
        let mut input = serde_json::Map::new();
        input.insert("groupUrlname".into(), json!(draft.group.as_str()));
        input.insert("title".into(), json!(draft.title));
        input.insert("description".into(), json!(draft.description));
        input.insert(
            "startDateTime".into(),
            json!(model::format_date_time(&draft.starts_at)),
        );
        input.insert("publishStatus".into(), json!("PUBLISHED"));
        input.insert("selfRsvp".into(), json!(false));
        input.insert("isCopy".into(), json!(true));
        if let Some(duration) = &draft.duration {
            input.insert("duration".into(), json!(model::format_duration(duration)));
        }
        if !hosts.is_empty() {
            input.insert("eventHosts".into(), json!(hosts));
        }
        if draft.online {
            input.insert("venueId".into(), json!("online"));
        }
        if let Some(max) = draft.max_tickets {
            input.insert("rsvpSettings".into(), json!({ "rsvpLimit": max }));
        }
        let data = self
            .graphql_as(
                token,
                op,
                queries::CREATE_EVENT,
                json!({ "input": Value::Object(input) }),
                Idempotence::Grant,
            )
            .await?;
        let payload = At::root(&data, op).get("createEvent");
        if let Some(errors) = payload.get("errors").non_null() {
            let errors: Vec<String> = errors
                .items()?
                .iter()
                .map(|e| {
                    let code = e.get("code").str().unwrap_or("ERROR");
                    let message = e.get("message").str().unwrap_or("(no message)");
                    match e.get("field").non_null().and_then(|f| f.str().ok()) {
                        Some(field) => format!("{code} ({field}): {message}"),
                        None => format!("{code}: {message}"),
                    }
                })
                .collect();
            if !errors.is_empty() {
                return Err(MeetupError::Refused {
                    operation: op.to_owned(),
                    errors,
                });
            }
        }
        match payload.get("event").non_null() {
            Some(event) => decode_event(&event),
            None => Err(payload.get("event").expected("the created event")),
        }
    }

    /// Exchanges the `code` from the authorize redirect for tokens
    /// (`grant_type=authorization_code`).
    pub async fn exchange_code(
        &self,
        app: &OAuthApp,
        code: &AuthorizationCode,
    ) -> Result<Tokens, MeetupError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose()),
            ("redirect_uri", app.redirect_uri.as_str()),
            ("code", code.expose()),
        ];
        self.token_grant("authorization_code", &form).await
    }

    /// Trades a refresh token for new tokens (`grant_type=refresh_token`). Meetup
    /// rotates both: store the new refresh token, the old one is spent. Only the client
    /// credentials are sent (no redirect URI: that belongs to the code grant).
    pub async fn refresh(
        &self,
        client_id: &ClientId,
        client_secret: &ClientSecret,
        refresh_token: &RefreshToken,
    ) -> Result<Tokens, MeetupError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("refresh_token", refresh_token.expose()),
        ];
        self.token_grant("refresh_token", &form).await
    }

    async fn token_grant(&self, grant: &str, form: &[(&str, &str)]) -> Result<Tokens, MeetupError> {
        let operation = format!("OAuth {grant} grant");
        let (status, body) = self
            .send(&operation, Idempotence::Grant, || {
                self.http
                    .post(self.endpoints.token.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(form)
            })
            .await?;
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        if !status.is_success() {
            return Err(token_error(&operation, status, &body, parsed.as_ref()));
        }
        let Some(value) = parsed else {
            return Err(MeetupError::Decode {
                operation,
                field: "(body)".into(),
                reason: "not JSON".into(),
            });
        };
        let root = At::root(&value, &operation);
        let expires_in = Duration::from_secs(root.get("expires_in").u64()?);
        let expires_at = Utc::now()
            + chrono::TimeDelta::from_std(expires_in).unwrap_or(chrono::TimeDelta::zero());
        let tokens = Tokens {
            access_token: AccessToken::from(root.get("access_token").string()?),
            refresh_token: RefreshToken::from(root.get("refresh_token").string()?),
            expires_in,
            expires_at,
            token_type: root.get("token_type").string()?,
        };
        debug!(
            grant,
            expires_in = expires_in.as_secs(),
            "obtained Meetup tokens"
        );
        Ok(tokens)
    }

    /// Sends one GraphQL document and returns its `data`, mapping every failure to
    /// the error a caller can act on.
    async fn graphql(
        &self,
        token: &AccessToken,
        operation: &str,
        document: &str,
        variables: Value,
    ) -> Result<Value, MeetupError> {
        self.graphql_as(token, operation, document, variables, Idempotence::Read)
            .await
    }

    /// [`MeetupClient::graphql`] with the retries `idempotence` allows (a mutation is
    /// sent as a [`Idempotence::Grant`]: retried only after a 429).
    async fn graphql_as(
        &self,
        token: &AccessToken,
        operation: &str,
        document: &str,
        variables: Value,
        idempotence: Idempotence,
    ) -> Result<Value, MeetupError> {
        let body = json!({
            "query": document,
            "operationName": operation,
            "variables": variables,
        });
        let (status, text) = self
            .send(operation, idempotence, || {
                self.http
                    .post(self.endpoints.graphql.clone())
                    .bearer_auth(token.expose())
                    .json(&body)
            })
            .await?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let errors = parsed
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
            .map(|e| e.iter().map(decode_graphql_error).collect::<Vec<_>>());
        if status == StatusCode::UNAUTHORIZED {
            let message = errors
                .as_ref()
                .and_then(|e| e.first())
                .map(|e| e.message.clone())
                .unwrap_or_else(|| truncate(&text));
            return Err(MeetupError::Unauthorized { message });
        }
        // A throttled or failing server is an HTTP problem whatever its body says; a
        // 400 with an `errors` array is a GraphQL answer (GraphQL over HTTP).
        if !status.is_success() && status != StatusCode::BAD_REQUEST {
            return Err(status_error(operation, status, &text));
        }
        if let Some(errors) = errors {
            let unauthenticated = errors.iter().find(|e| {
                matches!(
                    e.code.as_deref(),
                    Some("UNAUTHENTICATED" | "UNAUTHORIZED" | "AUTHENTICATION_ERROR")
                )
            });
            if let Some(e) = unauthenticated {
                return Err(MeetupError::Unauthorized {
                    message: e.message.clone(),
                });
            }
            // Partial data is not acted on: a sync that saw half an answer would
            // delete what it did not see.
            return Err(MeetupError::GraphQl {
                operation: operation.to_owned(),
                errors,
            });
        }
        if !status.is_success() {
            return Err(status_error(operation, status, &text));
        }
        match parsed {
            Some(Value::Object(mut map)) => match map.remove("data") {
                Some(data @ Value::Object(_)) => Ok(data),
                _ => Err(MeetupError::Decode {
                    operation: operation.to_owned(),
                    field: "data".into(),
                    reason: "missing or not an object".into(),
                }),
            },
            _ => Err(MeetupError::Decode {
                operation: operation.to_owned(),
                field: "(body)".into(),
                reason: "not a JSON object".into(),
            }),
        }
    }

    /// Sends a request, retrying per [`RetryPolicy`]; the final status and body.
    async fn send(
        &self,
        operation: &str,
        idempotence: Idempotence,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, String), MeetupError> {
        let mut attempt: u32 = 0;
        loop {
            let can_retry = attempt < self.retry.max_retries;
            match build().send().await {
                Ok(response) => {
                    let status = response.status();
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || (status.is_server_error() && idempotence == Idempotence::Read);
                    let asked = retry_after(&response);
                    let wait = retry_wait(&self.retry, asked, attempt);
                    if retryable && can_retry && wait.is_none() {
                        warn!(
                            operation,
                            status = status.as_u16(),
                            retry_after_s = asked.map(|d| d.as_secs()),
                            "Meetup asks to wait longer than Tavern waits in one request; not retrying now"
                        );
                    }
                    if let (true, true, Some(wait)) = (retryable, can_retry, wait) {
                        warn!(
                            operation,
                            status = status.as_u16(),
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            "Meetup asked us to retry"
                        );
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    let body = response.text().await.map_err(MeetupError::Transport)?;
                    return Ok((status, body));
                }
                Err(e)
                    if can_retry
                        && idempotence == Idempotence::Read
                        && (e.is_connect() || e.is_timeout()) =>
                {
                    let wait = self.retry.backoff(attempt);
                    warn!(operation, attempt, error = %e, "Meetup unreachable, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(MeetupError::Transport(e)),
            }
        }
    }
}

/// The error of a token endpoint that did not answer 2xx. Only a 400 or 401 with an
/// OAuth `error` is the grant refused ([`MeetupError::OAuth`], RFC 6749 5.2): a 5xx is
/// the server failing and a 429 (or another 4xx) the server throttling or in trouble,
/// whatever its body says, and the grant may work next time.
fn token_error(
    operation: &str,
    status: StatusCode,
    body: &str,
    parsed: Option<&Value>,
) -> MeetupError {
    let error = parsed.and_then(|v| v.get("error")).and_then(Value::as_str);
    match error {
        Some(error) if matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED) => {
            MeetupError::OAuth {
                status: status.as_u16(),
                error: error.to_owned(),
                description: parsed
                    .and_then(|v| v.get("error_description"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }
        }
        _ => status_error(operation, status, body),
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    parse_retry_after(value.to_str().ok()?, Utc::now())
}

/// `Retry-After` (RFC 9110 10.2.3): delay seconds, or an HTTP date (`Wed, 21 Oct 2015
/// 07:28:00 GMT`), read against `now`; a date in the past is no wait.
fn parse_retry_after(value: &str, now: chrono::DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        // Negative or NaN: no usable wait. Finite but beyond any `Duration` (`1e20`):
        // the longest wait there is, so it is not retried early.
        return Duration::try_from_secs_f64(seconds)
            .ok()
            .or_else(|| (seconds.is_finite() && seconds > 0.0).then_some(Duration::MAX));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// How long to wait before retrying `attempt` (0-based), `None` for not at all: a
/// server's `Retry-After` is honoured when it fits in [`RetryPolicy::max_backoff`];
/// one asking for longer is not retried early (that would only be refused again and
/// spend the retries), the answer goes back to the caller, whose next run tries again.
fn retry_wait(
    policy: &RetryPolicy,
    retry_after: Option<Duration>,
    attempt: u32,
) -> Option<Duration> {
    match retry_after {
        Some(wait) if wait > policy.max_backoff => None,
        Some(wait) => Some(wait),
        None => Some(policy.backoff(attempt)),
    }
}

fn truncate(text: &str) -> String {
    const LIMIT: usize = 512;
    if text.len() <= LIMIT {
        return text.to_owned();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn status_error(operation: &str, status: StatusCode, body: &str) -> MeetupError {
    MeetupError::Status {
        operation: operation.to_owned(),
        status: status.as_u16(),
        body: truncate(body),
    }
}

fn too_many_pages(operation: &str) -> MeetupError {
    MeetupError::Decode {
        operation: operation.to_owned(),
        field: "pageInfo".into(),
        reason: format!("more than {MAX_PAGES} pages; the server's paging does not end"),
    }
}

/// The cursor of the next page, or `None` after the last page. A server that claims
/// more pages without a new cursor would loop us forever: that is a decode error.
fn next_cursor(connection: &At<'_>, previous: Option<&str>) -> Result<Option<String>, MeetupError> {
    let page_info = connection.get("pageInfo");
    if !page_info.get("hasNextPage").bool()? {
        return Ok(None);
    }
    let cursor = page_info.get("endCursor").string()?;
    if Some(cursor.as_str()) == previous {
        return Err(page_info
            .get("endCursor")
            .error("the same cursor again while hasNextPage is true"));
    }
    Ok(Some(cursor))
}

fn decode_graphql_error(value: &Value) -> GraphQlError {
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
        .to_owned();
    let path = value
        .get("path")
        .and_then(Value::as_array)
        .map(|segments| {
            segments
                .iter()
                .filter_map(|s| match s {
                    Value::String(name) => Some(PathSegment::Field(name.clone())),
                    Value::Number(n) => n
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .map(PathSegment::Index),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let locations = value
        .get("locations")
        .and_then(Value::as_array)
        .map(|locations| {
            locations
                .iter()
                .filter_map(|l| Some((l.get("line")?.as_u64()?, l.get("column")?.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let code = value
        .get("extensions")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    GraphQlError {
        message,
        path,
        locations,
        code,
    }
}

fn decode_event(node: &At<'_>) -> Result<Event, MeetupError> {
    Ok(Event {
        id: node.get("id").parse(EventId::parse)?,
        title: node.get("title").string()?,
        description: node.get("description").string()?,
        url: node.get("eventUrl").string()?,
        starts_at: node.get("dateTime").optional(date_time)?,
        ends_at: node.get("endTime").optional(date_time)?,
        duration: node.get("duration").optional(|f| {
            let text = f.str()?;
            model::parse_duration(text).ok_or_else(|| f.error("not an ISO 8601 duration"))
        })?,
        status: EventStatus::from_wire(node.get("status").str()?),
        event_type: EventType::from_wire(node.get("eventType").str()?),
        max_tickets: node.get("maxTickets").optional(At::u32)?,
        group: node
            .get("group")
            .optional(|g| g.get("urlname").parse(GroupUrlname::parse))?,
        group_timezone: node
            .get("group")
            .optional(|g| g.get("timezone").optional(At::string))?
            .flatten(),
        hosts: match node.get("eventHosts").non_null() {
            None => Vec::new(),
            Some(hosts) => hosts
                .items()?
                .iter()
                .filter(|h| h.non_null().is_some())
                .map(|h| {
                    Ok(EventHost {
                        member: h.get("member").optional(decode_member)?,
                        name: h.get("name").optional(At::string)?,
                    })
                })
                .collect::<Result<_, MeetupError>>()?,
        },
    })
}

fn date_time(field: &At<'_>) -> Result<chrono::DateTime<chrono::FixedOffset>, MeetupError> {
    model::parse_date_time(field.str()?).ok_or_else(|| field.error("not an RFC 3339 date-time"))
}

fn decode_member(node: &At<'_>) -> Result<Member, MeetupError> {
    Ok(Member {
        id: node.get("id").parse(MemberId::parse)?,
        name: node.get("name").optional(At::string)?,
    })
}

fn decode_rsvp(node: &At<'_>) -> Result<Rsvp, MeetupError> {
    Ok(Rsvp {
        id: node.get("id").parse(RsvpId::parse)?,
        member: decode_member(&node.get("member"))?,
        status: node
            .get("status")
            .optional(|f| f.str().map(RsvpStatus::from_wire))?,
        is_host: node.get("isHost").bool()?,
        guests: node.get("guestsCount").u32()?,
    })
}

/// A JSON value and its path in the answer, so every decode error names its field.
struct At<'a> {
    value: Option<&'a Value>,
    path: String,
    operation: &'a str,
}

impl<'a> At<'a> {
    fn root(value: &'a Value, operation: &'a str) -> At<'a> {
        At {
            value: Some(value),
            path: String::new(),
            operation,
        }
    }

    fn get(&self, name: &str) -> At<'a> {
        At {
            value: self.value.and_then(|v| v.get(name)),
            path: if self.path.is_empty() {
                name.to_owned()
            } else {
                format!("{}.{name}", self.path)
            },
            operation: self.operation,
        }
    }

    fn non_null(&self) -> Option<At<'a>> {
        match self.value {
            None | Some(Value::Null) => None,
            Some(v) => Some(At {
                value: Some(v),
                path: self.path.clone(),
                operation: self.operation,
            }),
        }
    }

    fn error(&self, reason: &str) -> MeetupError {
        MeetupError::Decode {
            operation: self.operation.to_owned(),
            field: self.path.clone(),
            reason: reason.to_owned(),
        }
    }

    fn expected(&self, what: &str) -> MeetupError {
        let found = match self.value {
            None => "nothing (missing)",
            Some(Value::Null) => "null",
            Some(Value::Bool(_)) => "a boolean",
            Some(Value::Number(_)) => "a number",
            Some(Value::String(_)) => "a string",
            Some(Value::Array(_)) => "a list",
            Some(Value::Object(_)) => "an object",
        };
        self.error(&format!("expected {what}, found {found}"))
    }

    fn str(&self) -> Result<&'a str, MeetupError> {
        self.value
            .and_then(Value::as_str)
            .ok_or_else(|| self.expected("a string"))
    }

    fn string(&self) -> Result<String, MeetupError> {
        self.str().map(str::to_owned)
    }

    fn bool(&self) -> Result<bool, MeetupError> {
        self.value
            .and_then(Value::as_bool)
            .ok_or_else(|| self.expected("a boolean"))
    }

    fn u64(&self) -> Result<u64, MeetupError> {
        self.value
            .and_then(Value::as_u64)
            .ok_or_else(|| self.expected("a non-negative integer"))
    }

    fn u32(&self) -> Result<u32, MeetupError> {
        u32::try_from(self.u64()?).map_err(|_| self.error("integer out of range"))
    }

    fn parse<T, E: fmt::Display>(
        &self,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, MeetupError> {
        let text = self.str()?;
        parse(text).map_err(|e| self.error(&e.to_string()))
    }

    /// `None` for null or missing, else the decoded value.
    fn optional<T>(
        &self,
        decode: impl Fn(&At<'a>) -> Result<T, MeetupError>,
    ) -> Result<Option<T>, MeetupError> {
        self.non_null().map(|v| decode(&v)).transpose()
    }

    fn items(&self) -> Result<Vec<At<'a>>, MeetupError> {
        let items = self
            .value
            .and_then(Value::as_array)
            .ok_or_else(|| self.expected("a list"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| At {
                value: Some(v),
                path: format!("{}[{i}]", self.path),
                operation: self.operation,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_name_the_field() {
        let data = json!({"event": {"id": "1", "title": "T", "description": "", "eventUrl": "u",
            "dateTime": "yesterday", "status": "ACTIVE", "eventType": "ONLINE"}});
        let err = decode_event(&At::root(&data, "Event").get("event")).unwrap_err();
        match err {
            MeetupError::Decode { field, .. } => assert_eq!(field, "event.dateTime"),
            other => panic!("{other}"),
        }
        let data = json!({"edges": [{"node": {"id": "1"}}, {"node": {"id": 2}}]});
        let edges = At::root(&data, "X").get("edges").items().unwrap();
        let err = edges[1].get("node").get("id").string().unwrap_err();
        assert!(err.to_string().contains("edges[1].node.id"), "{err}");
    }

    #[test]
    fn an_rsvp_without_a_status_decodes() {
        let data = json!({"id": "7", "member": {"id": "9", "name": "Pia"}, "status": null,
            "isHost": false, "guestsCount": 1});
        let rsvp = decode_rsvp(&At::root(&data, "EventRsvps")).unwrap();
        assert_eq!(rsvp.status, None);
        assert_eq!(rsvp.guests, 1);
        let data = json!({"id": "7", "member": {"id": "9"}, "status": "YES",
            "isHost": true, "guestsCount": 0});
        let rsvp = decode_rsvp(&At::root(&data, "EventRsvps")).unwrap();
        assert_eq!(rsvp.status, Some(RsvpStatus::Yes));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        // Finite but beyond any `Duration`: the longest wait, without a panic, and
        // so not retried early.
        assert_eq!(parse_retry_after("1e20", now), Some(Duration::MAX));
        assert_eq!(
            retry_wait(&RetryPolicy::default(), parse_retry_after("1e20", now), 0),
            None
        );
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("inf", now), None);
    }

    #[test]
    fn a_retry_after_longer_than_the_longest_wait_is_not_retried_early() {
        let policy = RetryPolicy::default();
        assert_eq!(
            retry_wait(&policy, Some(Duration::from_secs(2)), 0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_wait(&policy, Some(Duration::from_secs(120)), 0), None);
        assert_eq!(
            retry_wait(&policy, None, 1),
            Some(Duration::from_millis(400))
        );
    }

    #[test]
    fn only_a_client_error_with_an_oauth_error_is_a_refused_grant() {
        let body = r#"{"error":"server_error","error_description":"try later"}"#;
        let parsed: Value = serde_json::from_str(body).unwrap();
        let op = "OAuth refresh_token grant";
        let err = token_error(op, StatusCode::SERVICE_UNAVAILABLE, body, Some(&parsed));
        assert!(
            matches!(err, MeetupError::Status { status: 503, .. }),
            "{err:?}"
        );
        let body = r#"{"error":"invalid_grant"}"#;
        let parsed: Value = serde_json::from_str(body).unwrap();
        let err = token_error(op, StatusCode::BAD_REQUEST, body, Some(&parsed));
        assert!(
            matches!(&err, MeetupError::OAuth { status: 400, error, .. } if error == "invalid_grant"),
            "{err:?}"
        );
        assert!(err.is_refused_grant() && !err.is_client_rejected());
        let err = token_error(op, StatusCode::UNAUTHORIZED, "nope", None);
        assert!(
            matches!(err, MeetupError::Status { status: 401, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_throttled_token_endpoint_is_not_a_refused_grant_and_a_wrong_secret_is_told_apart() {
        let op = "OAuth refresh_token grant";
        for (status, code) in [
            (StatusCode::TOO_MANY_REQUESTS, 429),
            (StatusCode::FORBIDDEN, 403),
        ] {
            let body = r#"{"error":"invalid_grant","error_description":"slow down"}"#;
            let parsed: Value = serde_json::from_str(body).unwrap();
            let err = token_error(op, status, body, Some(&parsed));
            assert!(
                matches!(err, MeetupError::Status { status, .. } if status == code),
                "{err:?}"
            );
            assert!(!err.is_refused_grant(), "{err:?}");
        }
        let body = r#"{"error":"invalid_client"}"#;
        let parsed: Value = serde_json::from_str(body).unwrap();
        let err = token_error(op, StatusCode::UNAUTHORIZED, body, Some(&parsed));
        assert!(
            err.is_client_rejected() && !err.is_refused_grant(),
            "{err:?}"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        };
        assert_eq!(policy.backoff(0), Duration::from_millis(100));
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(5), Duration::from_millis(300));
    }
}
