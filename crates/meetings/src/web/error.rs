//! [`ApiError`]: every refusal of the meetings API as `{"error": "...", "code": "..."}`
//! ([`ErrorBody`], with the `field` a validation error is about) with its status (401
//! with `WWW-Authenticate`, 429 and 503 with `Retry-After`).

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::MeetingsError;
use crate::auth::{AuthError, TokenError};

/// A refusal or failure of the meetings API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable word (`invalid_credentials`, `rate_limited`, ...).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// Seconds, for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// The request field a validation error is about (`display_name`, ...).
    pub field: Option<Cow<'static, str>>,
    /// Answered because a store cannot be reached for now: told once in the log by
    /// `feature::reply`, so the answer is marked [`web::Outage`] (not a failed request
    /// each time).
    pub outage: bool,
}

/// The body of every refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A sentence for people.
    #[schema(example = "the meeting was not found")]
    pub error: String,
    /// A stable, machine-readable word.
    #[schema(example = "meeting_not_found")]
    pub code: String,
    /// The request field a validation error is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "display_name")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            field: None,
            outage: false,
        }
    }

    /// 400 for a bad value of the request's `field`.
    pub fn bad_field(
        field: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            field: Some(Cow::Borrowed(field)),
            ..ApiError::bad_request(code, message)
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 404 `meeting_not_found`.
    pub fn meeting_not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "meeting_not_found",
            "there is no meeting with this id or code",
        )
    }

    /// 403 `not_creator`: only the meeting's creator (its host) may do this.
    pub fn not_creator() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "not_creator",
            "only the meeting's creator (its host) may do this",
        )
    }

    /// A storage error of a look-up: "not found" is `not_found`'s, the rest as usual.
    pub fn lookup(e: MeetingsError, not_found: fn() -> ApiError) -> ApiError {
        match e {
            MeetingsError::Storage(store::StorageError::NotFound { .. }) => not_found(),
            e => e.into(),
        }
    }

    /// `Ok` when `who` created `meeting`, else [`ApiError::not_creator`].
    pub fn require_creator(
        meeting: &crate::repo::Meeting,
        who: &crate::auth::Authenticated,
    ) -> Result<(), ApiError> {
        if meeting.created_by_user_id == Some(who.user_id) {
            Ok(())
        } else {
            Err(ApiError::not_creator())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code.to_owned(),
            field: self.field.map(Cow::into_owned),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"meetings\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.outage {
            web::Outage::mark(&mut response);
        }
        response
    }
}

impl From<store::StorageError> for ApiError {
    fn from(e: store::StorageError) -> ApiError {
        MeetingsError::from(e).into()
    }
}

impl From<MeetingsError> for ApiError {
    fn from(e: MeetingsError) -> ApiError {
        match &e {
            // `feature::reply::user_message` logs it: an outage once, when it begins (then
            // at debug until it ends), broken data and a store refusing for good every time.
            MeetingsError::Storage(storage) => {
                let status = feature::reply::status(storage);
                let code = match status {
                    StatusCode::NOT_FOUND => "not_found",
                    StatusCode::CONFLICT => "conflict",
                    StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                    _ => "internal",
                };
                let error = ApiError::new(status, code, feature::reply::user_message(storage));
                if feature::reply::is_outage(storage) {
                    ApiError {
                        retry_after: Some(u64::from(web::session::UNAVAILABLE_RETRY_AFTER_SECS)),
                        outage: true,
                        ..error
                    }
                } else {
                    error
                }
            }
            MeetingsError::MeetingEnded(_) => {
                ApiError::new(StatusCode::GONE, "meeting_ended", e.user_message())
            }
            MeetingsError::MeetingFull { .. } => {
                ApiError::new(StatusCode::CONFLICT, "meeting_full", e.user_message())
            }
            MeetingsError::MeetingInProgress(_) => ApiError::new(
                StatusCode::CONFLICT,
                "meeting_in_progress",
                "end-to-end encryption can only be changed while nobody is in the meeting",
            ),
            MeetingsError::CodesExhausted(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.user_message(),
            ),
            #[allow(unreachable_patterns)]
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.user_message(),
            ),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let message = e.to_string();
        match e {
            AuthError::Invalid {
                code,
                field: Some(field),
                message,
            } => ApiError::bad_field(field, code, message),
            AuthError::Invalid {
                code,
                field: None,
                message,
            } => ApiError::bad_request(code, message),
            AuthError::EmailTaken => ApiError::new(StatusCode::CONFLICT, "email_taken", message),
            AuthError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message)
            }
            AuthError::RateLimited(retry) => ApiError {
                retry_after: Some(retry.seconds()),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            },
            AuthError::MissingCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "missing_credentials", message)
            }
            AuthError::Token(token) => {
                let code = match token {
                    TokenError::Expired => "token_expired",
                    TokenError::Revoked => "token_revoked",
                    _ => "invalid_token",
                };
                ApiError::new(StatusCode::UNAUTHORIZED, code, message)
            }
            AuthError::BadApiKey => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message)
            }
            AuthError::MissingScope(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
            }
            AuthError::UserTokenRequired => {
                ApiError::new(StatusCode::FORBIDDEN, "user_token_required", message)
            }
            AuthError::NoSuchApiKey => ApiError::not_found(message),
            AuthError::Provider(_) => {
                tracing::warn!(error = %message, "a login with Discord failed");
                ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", message)
            }
            AuthError::ProviderNotConfigured => {
                ApiError::new(StatusCode::NOT_FOUND, "not_configured", message)
            }
            AuthError::Crypto(error) => {
                tracing::error!(%error, "meetings authentication failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "authentication is not working right now",
                )
            }
            AuthError::Meetings(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_outage_is_an_outage_s_answer_and_broken_data_is_not() {
        let down = ApiError::from(store::StorageError::from(store::StoreError::Timeout(
            std::time::Duration::from_secs(5),
        )))
        .into_response();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(web::Outage::marks(&down), "not a failed request each time");
        assert!(down.headers().contains_key(header::RETRY_AFTER));
        let broken =
            ApiError::from(store::StorageError::corrupt("meeting", "not JSON")).into_response();
        assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!web::Outage::marks(&broken));
        assert!(!broken.headers().contains_key(header::RETRY_AFTER));
    }
}
