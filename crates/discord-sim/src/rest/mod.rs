//! The HTTP side: REST under `/api/v10`, attachment downloads, and the gateway
//! upgrade on every other path.
//!
//! One handler serves every REST request: it consumes an injected fault if one
//! matches, checks the bot token, counts the rate-limit bucket, runs the route and
//! logs the request, all under a single acquisition of the state lock (a `Delay`
//! fault sleeps before taking it).

mod attachments;
mod channels;
mod commands;
mod guard;
mod guilds;
mod interactions;
mod misc;
mod oauth;
mod route;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::fault::{BucketStatus, Fault, take_fault};
use crate::model::RequestRecord;
use crate::oauth::Grant;
use crate::snowflake::{SnowflakeGen, now_unix_ms};
use crate::state::{Ctx, Shared, State};

pub(crate) use route::Route;

/// Every REST path starts with this.
pub(crate) const API_PREFIX: &str = "/api/v10";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v10", any(rest))
        .route("/api/v10/{*rest}", any(rest))
        .route("/oauth2/authorize", get(oauth::authorize))
        .route(
            "/attachments/{channel}/{attachment}/{filename}",
            get(attachments::serve),
        )
        .fallback(gateway_or_not_found)
        .with_state(shared)
}

/// A file part of a multipart request.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub filename: String,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// What a route handler gets besides the state.
#[derive(Debug)]
pub(crate) struct Request {
    /// The JSON body (`payload_json` for multipart), `Null` if empty.
    pub body: Value,
    pub files: Vec<Upload>,
    pub query: Vec<(String, String)>,
    pub received: Instant,
    /// Who is calling, from the `Authorization` header.
    pub caller: Caller,
}

/// Who a REST request comes from, by its `Authorization` header.
#[derive(Debug)]
pub(crate) enum Caller {
    /// `Bot <token>` with the sim's bot token.
    Bot,
    /// `Bearer <token>` with a live OAuth2 access token.
    Bearer(Grant),
    /// `Basic base64(client_id:client_secret)`, checked by the token endpoint.
    Basic {
        client_id: String,
        secret: String,
    },
    Anonymous,
}

impl Caller {
    fn from_headers(headers: &HeaderMap, bot_token: &str, state: &State, now: Instant) -> Caller {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Caller::Anonymous;
        };
        if let Some(token) = value.strip_prefix("Bot ") {
            if token == bot_token {
                return Caller::Bot;
            }
        } else if let Some(token) = value.strip_prefix("Bearer ") {
            if let Some(grant) = state.oauth.bearer(token, now) {
                return Caller::Bearer(grant.clone());
            }
        } else if let Some(encoded) = value.strip_prefix("Basic ") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            if let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Caller::Basic {
                    client_id: percent_decode(id),
                    secret: percent_decode(secret),
                };
            }
        }
        Caller::Anonymous
    }
}

impl Request {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a route produced.
#[derive(Debug)]
pub(crate) enum Reply {
    Json(u16, Value),
    /// JSON already serialised (large lists, see `history`).
    Raw(u16, Vec<u8>),
    NoContent,
}

impl Reply {
    pub fn ok(value: Value) -> Self {
        Self::Json(200, value)
    }
}

/// Everything a route handler may touch.
pub(crate) struct Call<'a> {
    pub state: &'a mut State,
    pub ctx: &'a Ctx,
    pub ids: &'a SnowflakeGen,
    pub req: Request,
}

async fn rest(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let unix_ms = now_unix_ms();
    let path = uri.path().to_owned();
    let relative = path.strip_prefix(API_PREFIX).unwrap_or(&path);
    let route = Route::parse(&method, relative);
    let parsed_body = parse_body(&headers, &body);
    let query = parse_query(uri.query());

    let fault = take_fault(&mut shared.lock().faults, method.as_str(), &path);
    let faulted = fault.is_some();
    let mut hold = None;
    let fault = match fault {
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        Some(Fault::TimeoutAfterCommit(delay)) => {
            hold = Some(delay);
            None
        }
        Some(Fault::Gate(gate)) => {
            gate.pass().await;
            None
        }
        other => other,
    };

    let config = &shared.ctx.config;
    let response = {
        let mut state = shared.lock();
        let (template, major) = match &route {
            Ok(route) => route.bucket(),
            Err(_) => ("unknown", String::new()),
        };
        let bucket = state.buckets.hit(
            template,
            &major,
            config.rate_limit_per_window,
            config.rate_limit_window,
            received,
        );
        let outcome: Result<Reply, Response> = 'outcome: {
            match fault {
                Some(Fault::RateLimited {
                    retry_after_secs,
                    global,
                }) => break 'outcome Err(rate_limited(&bucket, retry_after_secs, global)),
                Some(Fault::Status(status)) => {
                    break 'outcome Err(error_response(&status_error(status), &bucket));
                }
                Some(Fault::HtmlRateLimited) => break 'outcome Err(cloudflare_ban()),
                _ => {}
            }
            let route = match route {
                Ok(route) => route,
                Err(error) => break 'outcome Err(error_response(&error, &bucket)),
            };
            let caller = Caller::from_headers(&headers, &config.token, &state, received);
            let allowed = match caller {
                Caller::Bot => true,
                Caller::Bearer(_) => route.accepts_bearer() || !route.needs_bot_token(),
                Caller::Basic { .. } | Caller::Anonymous => !route.needs_bot_token(),
            };
            if !allowed {
                break 'outcome Err(error_response(&ApiError::unauthorized(), &bucket));
            }
            if matches!(caller, Caller::Bot)
                && route.counts_globally()
                && let Some(limit) = config.global_rate_limit
                && let Some(retry) = state.buckets.hit_global(limit, received)
            {
                state.rate_limited += 1;
                break 'outcome Err(globally_rate_limited(retry));
            }
            if bucket.exceeded {
                state.rate_limited += 1;
                let retry = bucket.reset_after.as_secs_f64();
                break 'outcome Err(rate_limited(&bucket, retry, false));
            }
            if matches!(caller, Caller::Bot)
                && let Some(guild) =
                    route.guild_scope(|c| state.channels.get(&c).and_then(|c| c.channel.guild_id))
                && state.bot_absent(guild)
            {
                break 'outcome Err(error_response(&ApiError::missing_access(), &bucket));
            }
            let (body, files) = match parsed_body {
                Ok(parsed) => parsed,
                Err(error) => break 'outcome Err(error_response(&error, &bucket)),
            };
            let call = Call {
                state: &mut state,
                ctx: &shared.ctx,
                ids: &shared.ids,
                req: Request {
                    body,
                    files,
                    query,
                    received,
                    caller,
                },
            };
            match execute(route, call) {
                Ok(reply) => Ok(reply),
                Err(error) => Err(error_response(&error, &bucket)),
            }
        };
        let response = match outcome {
            Ok(reply) => success_response(reply, &bucket),
            Err(response) => response,
        };
        state.log_request(
            RequestRecord {
                method: method.to_string(),
                path,
                query: uri.query().map(str::to_owned),
                status: response.status().as_u16(),
                at: received,
                unix_ms,
                faulted,
            },
            config.request_log_capacity,
        );
        response
    };
    tracing::trace!(%method, %uri, status = response.status().as_u16(), "rest request");
    if let Some(delay) = hold {
        // The change is made and logged; only the answer is late.
        tokio::time::sleep(delay).await;
    }
    response
}

fn execute(route: Route, call: Call<'_>) -> Result<Reply, ApiError> {
    if let Some(reply) = guard::check(&route, &call)? {
        return Ok(reply);
    }
    use Route::*;
    match route {
        OAuthToken | OAuthRevoke => oauth::handle(route, call),
        GetGateway
        | GetGatewayBot
        | GetCurrentUser
        | GetUser(_)
        | GetCurrentUserGuilds
        | CreateDm
        | GetCurrentApplication => misc::handle(route, call),
        GetCommands { .. }
        | SetCommands { .. }
        | CreateCommand { .. }
        | GetCommand { .. }
        | EditCommand { .. }
        | DeleteCommand { .. } => commands::handle(route, call),
        InteractionCallback { .. }
        | GetOriginal { .. }
        | EditOriginal { .. }
        | DeleteOriginal { .. }
        | CreateFollowup { .. }
        | GetFollowup { .. }
        | EditFollowup { .. }
        | DeleteFollowup { .. } => interactions::handle(route, call),
        GetChannel(_)
        | EditChannel(_)
        | DeleteChannel(_)
        | GetMessages(_)
        | CreateMessage(_)
        | GetMessage(..)
        | EditMessage(..)
        | DeleteMessage(..)
        | BulkDeleteMessages(_)
        | SetPermission(..)
        | DeletePermission(..)
        | Typing(_) => channels::handle(route, call),
        RefreshAttachmentUrls => attachments::refresh_urls(call),
        GetGuild(_)
        | GetGuildChannels(_)
        | CreateGuildChannel(_)
        | GetRoles(_)
        | CreateRole(_)
        | EditRole(..)
        | DeleteRole(..)
        | ListMembers(_)
        | GetMember(..)
        | EditMember(..)
        | RemoveMember(..)
        | AddMemberRole(..)
        | RemoveMemberRole(..) => guilds::handle(route, call),
    }
}

fn status_error(status: u16) -> ApiError {
    match status {
        401 => return ApiError::unauthorized(),
        403 => return ApiError::missing_access(),
        404 => return ApiError::not_found(),
        _ => {}
    }
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    ApiError::new(status, 0, format!("{status}: {reason}"))
}

/// Parses a JSON or multipart body. Discord answers malformed bodies with 400 and
/// code 50035 (Invalid Form Body).
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<(Value, Vec<Upload>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("multipart/form-data") {
        return parse_multipart(content_type, body);
    }
    // OAuth2's token endpoint takes forms (RFC 6749); fields become JSON strings.
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(body);
        let fields: serde_json::Map<String, Value> = parse_query(Some(&text))
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Ok((Value::Object(fields), Vec::new()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Value::Null, Vec::new()));
    }
    serde_json::from_slice(body)
        .map(|value| (value, Vec::new()))
        .map_err(|error| {
            ApiError::invalid_form(
                "_body",
                "JSON_INVALID",
                format!("The request body contains invalid JSON: {error}"),
            )
        })
}

/// Enough multipart parsing for Discord's file uploads: a `payload_json` part and
/// `files[n]` parts.
fn parse_multipart(content_type: &str, body: &[u8]) -> Result<(Value, Vec<Upload>), ApiError> {
    let invalid = || ApiError::invalid_form("_body", "MULTIPART_INVALID", "Invalid multipart body");
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or_else(invalid)?;
    let delimiter = format!("--{boundary}");
    let mut payload = Value::Null;
    let mut files = Vec::new();
    for part in split_bytes(body, delimiter.as_bytes()).into_iter().skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let mut content = &part[split + 4..];
        content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .unwrap_or_default();
        let param = |name: &str| {
            disposition
                .split(';')
                .filter_map(|p| p.trim().strip_prefix(&format!("{name}=")))
                .next()
                .map(|v| v.trim_matches('"').to_owned())
        };
        let name = param("name").unwrap_or_default();
        let part_type = head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_owned())
        });
        if name == "payload_json" {
            payload = serde_json::from_slice(content).map_err(|_| invalid())?;
        } else if let Some(filename) = param("filename") {
            files.push(Upload {
                filename,
                content_type: part_type,
                data: content.to_vec(),
            });
        }
    }
    Ok((payload, files))
}

fn split_bytes<'a>(haystack: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = haystack;
    while let Some(index) = find(rest, needle) {
        parts.push(&rest[..index]);
        rest = &rest[index + needle.len()..];
    }
    parts.push(rest);
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Discord's `X-RateLimit-*` headers. Times are rounded up to the millisecond, so a
/// client that waits as long as they say never arrives before the window resets.
fn ratelimit_headers(response: &mut Response, bucket: &BucketStatus, remaining: u32) {
    let reset_after_ms = bucket.reset_after.as_micros().div_ceil(1000);
    let reset_after = reset_after_ms as f64 / 1000.0;
    let reset = (u128::from(now_unix_ms()) + reset_after_ms + 1) as f64 / 1000.0;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("x-ratelimit-limit", bucket.limit.to_string());
    set("x-ratelimit-remaining", remaining.to_string());
    set("x-ratelimit-reset", format!("{reset:.3}"));
    set("x-ratelimit-reset-after", format!("{reset_after:.3}"));
    set("x-ratelimit-bucket", bucket.hash.clone());
}

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn success_response(reply: Reply, bucket: &BucketStatus) -> Response {
    let mut response = match reply {
        Reply::Json(status, body) => json_response(status, &body),
        Reply::Raw(status, bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Reply::NoContent => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
    };
    ratelimit_headers(&mut response, bucket, bucket.remaining);
    response
}

fn error_response(error: &ApiError, bucket: &BucketStatus) -> Response {
    let mut response = json_response(error.status, &error.body());
    ratelimit_headers(&mut response, bucket, bucket.remaining);
    response
}

fn rate_limited(bucket: &BucketStatus, retry_after: f64, global: bool) -> Response {
    let body = json!({
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": global,
    });
    let mut response = json_response(429, &body);
    let reset_bucket = BucketStatus {
        reset_after: Duration::from_secs_f64(retry_after.max(0.0)),
        ..bucket.clone()
    };
    ratelimit_headers(&mut response, &reset_bucket, 0);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("{}", retry_after.ceil().max(0.0) as u64)) {
        headers.insert(header::RETRY_AFTER, value);
    }
    headers.insert(
        "x-ratelimit-scope",
        HeaderValue::from_static(if global { "global" } else { "user" }),
    );
    if global {
        headers.insert("x-ratelimit-global", HeaderValue::from_static("true"));
    }
    response
}

/// Discord's answer when the bot token exceeded the global limit: no bucket headers
/// (no bucket is at fault), `X-RateLimit-Global` and `X-RateLimit-Scope: global`.
fn globally_rate_limited(retry_after: std::time::Duration) -> Response {
    let retry_ms = retry_after.as_micros().div_ceil(1000);
    let retry = retry_ms as f64 / 1000.0;
    let body = json!({
        "message": "You are being rate limited.",
        "retry_after": retry,
        "global": true,
    });
    let mut response = json_response(429, &body);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("{}", retry.ceil().max(0.0) as u64)) {
        headers.insert(header::RETRY_AFTER, value);
    }
    headers.insert("x-ratelimit-global", HeaderValue::from_static("true"));
    headers.insert("x-ratelimit-scope", HeaderValue::from_static("global"));
    response
}

/// Cloudflare's answer to an address it banned for too many invalid requests: 429
/// with an HTML page, none of Discord's rate-limit headers and no JSON.
fn cloudflare_ban() -> Response {
    let body = "<!DOCTYPE html>\n<html><head><title>Access denied | discord.com used Cloudflare to restrict access</title></head>\n<body><h1>Error 1015</h1><p>You are being rate limited.</p></body></html>\n";
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    response
}

/// Any path that is not REST: a gateway connection if it is a WebSocket upgrade,
/// else Discord's 404. Query parameters (`v`, `encoding`, `compress`) are ignored;
/// frames are always uncompressed JSON text.
async fn gateway_or_not_found(
    AxumState(shared): AxumState<Arc<Shared>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return json_response(404, &ApiError::not_found().body());
    };
    if !shared.lock().gateway.accepting {
        tracing::debug!("gateway connection refused: not accepting");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "gateway not accepting connections",
        )
            .into_response();
    }
    upgrade.on_upgrade(move |socket| crate::gateway::serve_connection(shared, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query(Some("limit=5&before=12&name=a%20b+c")),
            vec![
                ("limit".to_owned(), "5".to_owned()),
                ("before".to_owned(), "12".to_owned()),
                ("name".to_owned(), "a b c".to_owned())
            ]
        );
    }

    #[test]
    fn multipart_payload_and_files() {
        let body = b"--XYZ\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{\"content\":\"hi\"}\r\n--XYZ\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"clip.mp4\"\r\nContent-Type: video/mp4\r\n\r\nDATA\r\n--XYZ--\r\n";
        let (payload, files) =
            parse_multipart("multipart/form-data; boundary=XYZ", body).expect("parses");
        assert_eq!(payload, json!({"content": "hi"}));
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].filename, "clip.mp4");
        assert_eq!(files[0].content_type.as_deref(), Some("video/mp4"));
        assert_eq!(files[0].data, b"DATA");
    }
}
