//! OAuth2 as Discord plays it: the authorization-code grant, refresh, revocation and
//! the bearer tokens `GET /users/@me` and `GET /users/@me/guilds` accept.
//!
//! The sim is one application: its client id is the application id
//! ([`crate::Sim::application_id`]), its secret [`crate::SimConfig::oauth_client_secret`],
//! and redirect URIs must be registered first ([`crate::Sim::register_redirect_uri`]),
//! exactly as on Discord's developer portal, because an authorize request with an
//! unregistered `redirect_uri` must end on an error page and never in a redirect (that
//! is what stops a phishing page from harvesting codes).
//!
//! Discord shows a login and consent page at `/oauth2/authorize`; the sim has none, so
//! the test or the sandbox says who is "logged in to Discord": the query parameter
//! `sim_user_id=<id>` on the authorize URL, else the user given to
//! [`crate::Sim::sign_in`]. `sim_decision=deny` plays the user pressing "Cancel"
//! (Discord then redirects with `error=access_denied`).
//!
//! Codes are single use, live 10 minutes and are bound to their client and
//! `redirect_uri`. A refresh token is single use too (refreshing rotates it); an
//! access token lives [`crate::SimConfig::oauth_token_lifetime`] or until revoked.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::Snowflake;

/// How long an authorization code may wait for its exchange (Discord: 10 minutes).
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// Scopes the sim knows. Others are refused with `invalid_scope`, as Discord does.
pub(crate) const KNOWN_SCOPES: &[&str] = &[
    "identify",
    "email",
    "guilds",
    "guilds.members.read",
    "connections",
    "bot",
    "applications.commands",
];

/// What a code or a token grants: one user, some scopes.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub user: Snowflake,
    pub scopes: Vec<String>,
}

impl Grant {
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn scope_string(&self) -> String {
        self.scopes.join(" ")
    }
}

#[derive(Debug)]
pub(crate) struct PendingCode {
    pub grant: Grant,
    pub redirect_uri: String,
    pub expires: Instant,
}

#[derive(Debug)]
pub(crate) struct IssuedToken {
    pub grant: Grant,
    pub expires: Instant,
}

/// OAuth2 part of the sim state.
#[derive(Debug, Default)]
pub(crate) struct OAuthState {
    pub redirect_uris: BTreeSet<String>,
    /// The user "logged in to Discord in the browser" when an authorize request has no
    /// `sim_user_id`.
    pub signed_in: Option<Snowflake>,
    pub codes: HashMap<String, PendingCode>,
    pub access: HashMap<String, IssuedToken>,
    /// Refresh token -> what it grants. Removed when used (rotation).
    pub refresh: HashMap<String, Grant>,
}

/// Why the token endpoint refused, as the RFC 6749 `error` code Discord sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenError {
    InvalidRequest(&'static str),
    InvalidClient,
    InvalidGrant(&'static str),
    UnsupportedGrantType,
}

impl TokenError {
    pub fn status(&self) -> u16 {
        match self {
            TokenError::InvalidClient => 401,
            _ => 400,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        let (error, description) = match self {
            TokenError::InvalidRequest(d) => ("invalid_request", *d),
            TokenError::InvalidClient => ("invalid_client", "Invalid client credentials."),
            TokenError::InvalidGrant(d) => ("invalid_grant", *d),
            TokenError::UnsupportedGrantType => {
                ("unsupported_grant_type", "Unsupported grant type.")
            }
        };
        serde_json::json!({"error": error, "error_description": description})
    }
}

/// A token pair just issued.
#[derive(Debug)]
pub(crate) struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: Duration,
    pub scope: String,
}

impl OAuthState {
    /// Mints a code for `grant`, to be exchanged with the same `redirect_uri`.
    pub fn issue_code(&mut self, grant: Grant, redirect_uri: &str, now: Instant) -> String {
        self.codes.retain(|_, c| c.expires > now);
        let code = random_token();
        self.codes.insert(
            code.clone(),
            PendingCode {
                grant,
                redirect_uri: redirect_uri.to_owned(),
                expires: now + CODE_LIFETIME,
            },
        );
        code
    }

    /// `grant_type=authorization_code`: the code is consumed whether or not the
    /// exchange succeeds, so a leaked code is good for at most one attempt.
    pub fn exchange_code(
        &mut self,
        code: &str,
        redirect_uri: Option<&str>,
        now: Instant,
        lifetime: Duration,
    ) -> Result<TokenPair, TokenError> {
        let pending = self
            .codes
            .remove(code)
            .ok_or(TokenError::InvalidGrant("Invalid \"code\" in request."))?;
        if pending.expires <= now {
            return Err(TokenError::InvalidGrant("Invalid \"code\" in request."));
        }
        match redirect_uri {
            None => Err(TokenError::InvalidRequest("Missing \"redirect_uri\".")),
            Some(uri) if uri != pending.redirect_uri => Err(TokenError::InvalidGrant(
                "Invalid \"redirect_uri\" in request.",
            )),
            Some(_) => Ok(self.issue_tokens(pending.grant, now, lifetime)),
        }
    }

    /// `grant_type=refresh_token`: rotates the refresh token.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        now: Instant,
        lifetime: Duration,
    ) -> Result<TokenPair, TokenError> {
        let grant = self
            .refresh
            .remove(refresh_token)
            .ok_or(TokenError::InvalidGrant(
                "Invalid \"refresh_token\" in request.",
            ))?;
        Ok(self.issue_tokens(grant, now, lifetime))
    }

    fn issue_tokens(&mut self, grant: Grant, now: Instant, lifetime: Duration) -> TokenPair {
        self.access.retain(|_, t| t.expires > now);
        let access_token = random_token();
        let refresh_token = random_token();
        let scope = grant.scope_string();
        self.access.insert(
            access_token.clone(),
            IssuedToken {
                grant: grant.clone(),
                expires: now + lifetime,
            },
        );
        self.refresh.insert(refresh_token.clone(), grant);
        TokenPair {
            access_token,
            refresh_token,
            expires_in: lifetime,
            scope,
        }
    }

    /// Revokes an access or refresh token. Unknown tokens are ignored, as RFC 7009
    /// asks (the caller cannot learn whether a token existed).
    pub fn revoke(&mut self, token: &str) {
        self.access.remove(token);
        self.refresh.remove(token);
    }

    /// The grant behind a live bearer token.
    pub fn bearer(&self, token: &str, now: Instant) -> Option<&Grant> {
        self.access
            .get(token)
            .filter(|t| t.expires > now)
            .map(|t| &t.grant)
    }
}

/// 128 random bits as hex. The sim only needs tokens that tests cannot guess, not a
/// CSPRNG, so std's per-instance random hasher keys suffice (see `random_u64`).
fn random_token() -> String {
    format!(
        "{:016x}{:016x}",
        crate::state::random_u64(),
        crate::state::random_u64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            user: Snowflake::new(7),
            scopes: vec!["identify".into(), "guilds".into()],
        }
    }

    const LIFE: Duration = Duration::from_secs(60);

    #[test]
    fn a_code_is_single_use_and_bound_to_its_redirect() {
        let now = Instant::now();
        let mut oauth = OAuthState::default();
        let code = oauth.issue_code(grant(), "http://a/cb", now);
        let other = oauth.issue_code(grant(), "http://a/cb", now);
        assert_ne!(code, other);
        let pair = oauth
            .exchange_code(&code, Some("http://a/cb"), now, LIFE)
            .expect("first exchange");
        assert_eq!(pair.scope, "identify guilds");
        assert!(oauth.bearer(&pair.access_token, now).is_some());
        assert!(matches!(
            oauth.exchange_code(&code, Some("http://a/cb"), now, LIFE),
            Err(TokenError::InvalidGrant(_))
        ));
        assert!(matches!(
            oauth.exchange_code(&other, Some("http://b/cb"), now, LIFE),
            Err(TokenError::InvalidGrant(_))
        ));
        // The failed attempt consumed the code too.
        assert!(
            oauth
                .exchange_code(&other, Some("http://a/cb"), now, LIFE)
                .is_err()
        );
    }

    #[test]
    fn expired_codes_and_tokens_are_refused() {
        let now = Instant::now();
        let mut oauth = OAuthState::default();
        let code = oauth.issue_code(grant(), "http://a/cb", now);
        let later = now + CODE_LIFETIME + Duration::from_secs(1);
        assert!(
            oauth
                .exchange_code(&code, Some("http://a/cb"), later, LIFE)
                .is_err()
        );
        let code = oauth.issue_code(grant(), "http://a/cb", now);
        let pair = oauth
            .exchange_code(&code, Some("http://a/cb"), now, LIFE)
            .expect("exchange");
        assert!(oauth.bearer(&pair.access_token, now + LIFE).is_none());
    }

    #[test]
    fn refresh_rotates_and_revoke_ends_a_token() {
        let now = Instant::now();
        let mut oauth = OAuthState::default();
        let code = oauth.issue_code(grant(), "http://a/cb", now);
        let first = oauth
            .exchange_code(&code, Some("http://a/cb"), now, LIFE)
            .expect("exchange");
        let second = oauth
            .refresh(&first.refresh_token, now, LIFE)
            .expect("refresh");
        assert!(oauth.refresh(&first.refresh_token, now, LIFE).is_err());
        oauth.revoke(&second.access_token);
        assert!(oauth.bearer(&second.access_token, now).is_none());
    }
}
