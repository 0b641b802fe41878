//! Extractors of the meetings API: [`Authenticated`] (a bearer access token or API
//! key), [`ClientInfo`] (address and user agent, for rate limits and audit rows) and
//! [`Body`] (a JSON body whose refusals keep the API's error shape).

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
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON, with `Content-Type: application/json`",
            )),
            Err(JsonRejection::BytesRejection(e)) => Err(ApiError::new(
                e.status(),
                "bad_request",
                format!("could not read the body: {}", e.body_text()),
            )),
            Err(e) => Err(ApiError::bad_request(
                "bad_request",
                format!("bad JSON body: {}", e.body_text()),
            )),
        }
    }
}
