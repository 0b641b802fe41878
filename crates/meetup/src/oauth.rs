//! OAuth2 values: the app's credentials, tokens, and where Meetup's endpoints are.
//!
//! Secrets (client secret, authorization codes, access and refresh tokens) are
//! `base::Secret`s, whose `Debug` prints `[redacted]`, so a `tracing` field or a `{:?}` of a config or an
//! error never leaks one. Only [`expose`](AccessToken::expose) gives the text, for the
//! one place that sends it.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

pub use base::Secret;

/// An OAuth2 access token (`Authorization: Bearer ...`).
pub type AccessToken = Secret;
/// An OAuth2 refresh token.
pub type RefreshToken = Secret;
/// The app's OAuth2 client secret.
pub type ClientSecret = Secret;
/// A one-time authorization code from the redirect.
pub type AuthorizationCode = Secret;

/// The app's OAuth2 client id (public: it appears in the authorize URL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Wraps the client id.
    pub fn new(value: impl Into<String>) -> ClientId {
        ClientId(value.into())
    }

    /// The id as registered with Meetup.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An OAuth2 app registered with Meetup: who we are and where Meetup sends users back.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// Client id.
    pub client_id: ClientId,
    /// Client secret (redacted in `Debug`).
    pub client_secret: ClientSecret,
    /// Our callback URL, exactly as registered.
    pub redirect_uri: Url,
}

/// The tokens a grant returns.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// For `Authorization: Bearer`.
    pub access_token: AccessToken,
    /// For the next refresh. Meetup rotates it on every refresh.
    pub refresh_token: RefreshToken,
    /// Lifetime Meetup announced.
    pub expires_in: Duration,
    /// When the access token expires, computed on receipt.
    pub expires_at: DateTime<Utc>,
    /// Normally `bearer`.
    pub token_type: String,
}

/// Meetup's production endpoints.
pub mod production {
    /// GraphQL.
    pub const GRAPHQL_URL: &str = "https://api.meetup.com/gql-ext";
    /// OAuth2 authorize (the user's browser goes there).
    pub const AUTHORIZE_URL: &str = "https://secure.meetup.com/oauth2/authorize";
    /// OAuth2 token endpoint (`authorization_code` and `refresh_token` grants).
    pub const TOKEN_URL: &str = "https://secure.meetup.com/oauth2/access";
}

/// Where the client sends requests. Configuration, so tests and the sandbox point it
/// at [`crate::fake::FakeMeetup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetupEndpoints {
    /// `POST` GraphQL documents here.
    pub graphql: Url,
    /// Send users here to authorize the app.
    pub authorize: Url,
    /// `POST` form-encoded grants here.
    pub token: Url,
}

/// Why an endpoint URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Meetup {which} URL {url:?}: {reason}")]
pub struct EndpointError {
    which: &'static str,
    url: String,
    reason: String,
}

impl MeetupEndpoints {
    /// Parses three URLs; each must be `http` or `https`.
    pub fn parse(graphql: &str, authorize: &str, token: &str) -> Result<Self, EndpointError> {
        Ok(MeetupEndpoints {
            graphql: parse_endpoint("GraphQL", graphql)?,
            authorize: parse_endpoint("authorize", authorize)?,
            token: parse_endpoint("token", token)?,
        })
    }

    /// Meetup's real endpoints.
    pub fn production() -> Result<Self, EndpointError> {
        MeetupEndpoints::parse(
            production::GRAPHQL_URL,
            production::AUTHORIZE_URL,
            production::TOKEN_URL,
        )
    }

    /// The URL to send a user to: Meetup asks them to approve `app` and redirects to
    /// `app.redirect_uri` with `code` and `state`. `state` must be unguessable and bound
    /// to the user's session (CSRF).
    pub fn authorize_url(&self, app: &OAuthApp, state: &str, scope: Option<&str>) -> Url {
        let mut url = self.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", app.client_id.as_str())
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", app.redirect_uri.as_str())
                .append_pair("state", state);
            if let Some(scope) = scope {
                query.append_pair("scope", scope);
            }
        }
        url
    }
}

fn parse_endpoint(which: &'static str, url: &str) -> Result<Url, EndpointError> {
    let error = |reason: String| EndpointError {
        which,
        url: url.to_owned(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|e| error(e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(error(format!("scheme `{other}` is not http or https"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let tokens = Tokens {
            access_token: AccessToken::from("acc-123"),
            refresh_token: RefreshToken::from("ref-456"),
            expires_in: Duration::from_secs(3600),
            expires_at: Utc::now(),
            token_type: "bearer".into(),
        };
        let printed = format!("{tokens:?}");
        assert!(
            !printed.contains("acc-123") && !printed.contains("ref-456"),
            "{printed}"
        );
        assert!(printed.contains("[redacted]"));
        let app = OAuthApp {
            client_id: ClientId::new("tavern"),
            client_secret: ClientSecret::from("s3cret"),
            redirect_uri: Url::parse("http://localhost/cb").unwrap(),
        };
        assert!(!format!("{app:?}").contains("s3cret"));
    }

    #[test]
    fn endpoints_parse_and_build_the_authorize_url() {
        let endpoints = MeetupEndpoints::production().unwrap();
        assert_eq!(endpoints.graphql.path(), "/gql-ext");
        assert!(MeetupEndpoints::parse("ftp://x", "http://a", "http://b").is_err());
        assert!(MeetupEndpoints::parse("not a url", "http://a", "http://b").is_err());
        let app = OAuthApp {
            client_id: ClientId::new("tavern"),
            client_secret: ClientSecret::from("s3cret"),
            redirect_uri: Url::parse("http://localhost/cb?x=1").unwrap(),
        };
        let url = endpoints.authorize_url(&app, "st&ate", Some("basic"));
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("state".into(), "st&ate".into())));
        assert!(pairs.contains(&("redirect_uri".into(), "http://localhost/cb?x=1".into())));
        assert!(pairs.contains(&("response_type".into(), "code".into())));
        assert!(!url.as_str().contains("s3cret"));
    }
}
