//! Extractors of the meetings API: [`Authenticated`] (a bearer access token or API
//! key), [`ClientInfo`] (address and user agent, for rate limits and audit rows) and
//! [`Body`] (a JSON body whose refusals keep the API's error shape).

use std::borrow::Cow;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;
use web::client::ClientAddr;

use super::ApiError;
use crate::auth::{Auth, AuthError, Authenticated, ClientInfo};

/// The bearer credential of a request: `None` when there is no `Authorization`.
fn bearer(parts: &Parts) -> Result<Option<&str>, AuthError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::MissingCredentials)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(AuthError::MissingCredentials),
    }
}

/// A request authenticated with `Authorization: Bearer <access token or API key>`:
/// 401 for none, a malformed, expired, revoked or wrongly signed token, or an unknown,
/// revoked or expired key. The scope check is the handler's
/// ([`Authenticated::require`], 403).
impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        let token = bearer(parts)?.ok_or(AuthError::MissingCredentials)?;
        auth.authenticate(token).await.map_err(|error| {
            tracing::info!(%error, "a meetings request was not authenticated");
            error.into()
        })
    }
}

/// The client: its address as [`web::client`] resolved it (none when the request did
/// not come through Tavern's server) and its `User-Agent`.
impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let addr = Option::<Extension<ClientAddr>>::from_request_parts(parts, state)
            .await
            .ok()
            .flatten();
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        Ok(ClientInfo {
            ip: addr.map(|Extension(a)| a.ip),
            user_agent,
        })
    }
}

/// A JSON body: 415 without a JSON content type, 400 for malformed JSON or a wrong
/// shape (naming the field), in the API's error shape.
#[derive(Debug, Clone)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = web::BodyLimit::of(&request);
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON, with `Content-Type: application/json`",
            )),
            Err(JsonRejection::BytesRejection(e)) => {
                let denied = web::access::Denied::unreadable_body(&e, limit);
                Err(ApiError::new(
                    denied.status,
                    code_of_status(denied.status),
                    denied.message,
                ))
            }
            Err(JsonRejection::JsonDataError(e)) => {
                let text = e.body_text();
                Err(ApiError {
                    field: field_of(&text).map(Cow::Owned),
                    ..ApiError::bad_request("bad_request", format!("bad JSON body: {text}"))
                })
            }
            Err(e) => Err(ApiError::bad_request(
                "bad_request",
                format!("bad JSON body: {}", e.body_text()),
            )),
        }
    }
}

/// The `code` of a refusal that has nothing more to say than its status.
fn code_of_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// The field a body's shape error is about, from its text: `missing field `password``,
/// `unknown field `x``, or the path before `: ` (`display_name: invalid type: ...`),
/// joined as `meeting.display_name` when nested.
fn field_of(text: &str) -> Option<String> {
    let detail = text.rsplit_once("target type: ").map_or(text, |(_, d)| d);
    let (path, rest) = match detail.split_once(": ") {
        Some((path, rest)) if !path.is_empty() && !path.contains(' ') => (Some(path), rest),
        _ => (None, detail),
    };
    let named = ["missing field `", "unknown field `"].iter().find_map(|m| {
        rest.strip_prefix(m)
            .and_then(|after| after.split_once('`'))
            .map(|(name, _)| name)
    });
    match (path, named) {
        (Some(path), Some(name)) if !path.ends_with(name) => Some(format!("{path}.{name}")),
        (Some(path), _) => Some(path.to_owned()),
        (None, Some(name)) => Some(name.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_error_names_its_field() {
        let of = |detail: &str| {
            field_of(&format!(
                "Failed to deserialize the JSON body into the target type: {detail}"
            ))
        };
        assert_eq!(
            of("missing field `password` at line 1 column 40").as_deref(),
            Some("password")
        );
        assert_eq!(
            of("unknown field `colour`, expected one of `a`, `b` at line 1 column 9").as_deref(),
            Some("colour")
        );
        assert_eq!(
            of("display_name: invalid type: integer `5`, expected a string at line 1 column 18")
                .as_deref(),
            Some("display_name")
        );
        assert_eq!(
            of("b[0]: missing field `y` at line 1 column 23").as_deref(),
            Some("b[0].y")
        );
        assert_eq!(
            of("invalid type: integer `5`, expected struct X").as_deref(),
            None
        );
    }
}
