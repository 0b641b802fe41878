//! Attachments: the CDN (`GET /attachments/{channel}/{id}/{filename}`, outside the
//! API, signed URLs and byte ranges) and `POST /attachments/refresh-urls`. The
//! signing rules live in `crate::cdn`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Call, Reply};
use crate::Snowflake;
use crate::cdn::{ByteRange, GONE_BODY, byte_range, parse_url};
use crate::error::ApiError;
use crate::state::Shared;

/// Most URLs one refresh request may carry (Discord: 50).
const REFRESH_LIMIT: usize = 50;

/// Serves an attachment's bytes for a valid signed URL, with its `Content-Type` and
/// `Range` support (206 with `Content-Range`), as a `<video>` element needs.
/// Expired, unsigned or forged URLs get Discord's 404 text; so do attachments that
/// were made without bytes.
pub(super) async fn serve(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path((channel, attachment, _filename)): Path<(u64, u64, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (channel, attachment) = (Snowflake::new(channel), Snowflake::new(attachment));
    let found = {
        let state = shared.lock();
        let signed = state.cdn.verify(channel, attachment, uri.query());
        let content_type = state
            .attachment_index
            .get(&attachment)
            .filter(|(c, _)| *c == channel)
            .and_then(|(c, m)| state.channels.get(c)?.messages.get(m))
            .and_then(|m| m.attachments.iter().find(|a| a.id == attachment))
            .map(|a| a.content_type.clone());
        let data = state.attachment_data.get(&attachment).cloned();
        match (signed, content_type, data) {
            (true, Some(content_type), Some(data)) => Some((content_type, data)),
            _ => None,
        }
    };
    let Some((content_type, data)) = found else {
        return gone();
    };
    let len = data.len() as u64;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, body, content_range) = match byte_range(range, len) {
        ByteRange::Whole => (StatusCode::OK, Body::from(data.to_vec()), None),
        ByteRange::Part(start, end) => {
            let slice = data
                .get(start as usize..=end as usize)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            (
                StatusCode::PARTIAL_CONTENT,
                Body::from(slice),
                Some(format!("bytes {start}-{end}/{len}")),
            )
        }
        ByteRange::Unsatisfiable => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            Body::empty(),
            Some(format!("bytes */{len}")),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let content_type = content_type.unwrap_or_else(|| "application/octet-stream".into());
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(value) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// Discord's CDN answer for a URL that is expired, unsigned, forged or unknown.
fn gone() -> Response {
    let mut response = Response::new(Body::from(GONE_BODY));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `POST /attachments/refresh-urls` `{"attachment_urls": [...]}` (1-50 URLs): a
/// freshly signed URL for each one that names an attachment the sim still has,
/// expired or not; others are left out of the answer.
pub(super) fn refresh_urls(call: Call<'_>) -> Result<Reply, ApiError> {
    let Call {
        state, ctx, req, ..
    } = call;
    let Some(urls) = req.body.get("attachment_urls").and_then(Value::as_array) else {
        return Err(ApiError::invalid_form(
            "attachment_urls",
            "BASE_TYPE_REQUIRED",
            "This field is required",
        ));
    };
    if urls.is_empty() || urls.len() > REFRESH_LIMIT {
        return Err(ApiError::invalid_form(
            "attachment_urls",
            "BASE_TYPE_BAD_LENGTH",
            format!("Must be between 1 and {REFRESH_LIMIT} in length."),
        ));
    }
    let http_url = ctx.http_url();
    let mut refreshed = Vec::with_capacity(urls.len());
    for (index, url) in urls.iter().enumerate() {
        let Some(original) = url.as_str() else {
            return Err(ApiError::invalid_form(
                &format!("attachment_urls.{index}"),
                "STRING_TYPE_CONVERT",
                "Could not interpret value as string.",
            ));
        };
        let Some((channel, attachment)) = parse_url(original, &http_url) else {
            continue;
        };
        let stored = state
            .attachment_index
            .get(&attachment)
            .filter(|(c, _)| *c == channel)
            .and_then(|(c, m)| state.channels.get(c)?.messages.get(m))
            .and_then(|m| m.attachments.iter().find(|a| a.id == attachment));
        if let Some(stored) = stored {
            refreshed.push(json!({
                "original": original,
                "refreshed": state.cdn.sign(&stored.url, channel, attachment),
            }));
        }
    }
    Ok(Reply::ok(json!({ "refreshed_urls": refreshed })))
}
