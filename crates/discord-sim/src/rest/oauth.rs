//! OAuth2 over HTTP: the authorize "page" (`GET /oauth2/authorize`, outside `/api`),
//! the token endpoint (`POST /api/v10/oauth2/token`) and revocation
//! (`POST /api/v10/oauth2/token/revoke`). The rules live in `crate::oauth`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State as AxumState;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Call, Caller, Reply, Route, parse_query};
use crate::Snowflake;
use crate::error::ApiError;
use crate::model::permissions;
use crate::oauth::{Grant, KNOWN_SCOPES, TokenError};
use crate::state::Shared;

/// Discord's consent screen, minus the screen. Errors about the request itself
/// (unknown client, unregistered redirect URI, nobody signed in) are pages, never
/// redirects: redirecting to an unverified URI is how codes get stolen. Once the
/// redirect URI is known good, the remaining errors travel back to it as
/// `error=...`, as RFC 6749 §4.1.2.1 says.
pub(super) async fn authorize(AxumState(shared): AxumState<Arc<Shared>>, uri: Uri) -> Response {
    let query = parse_query(uri.query());
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let ctx = &shared.ctx;
    if param("client_id") != Some(ctx.app_id.to_string().as_str()) {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown application: no such client_id.",
        );
    }
    let mut state = shared.lock();
    let Some(redirect_uri) = param("redirect_uri").map(str::to_owned) else {
        return page(StatusCode::BAD_REQUEST, "Missing redirect_uri.");
    };
    if !state.oauth.redirect_uris.contains(&redirect_uri) {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid OAuth2 redirect_uri: it is not registered for this application.",
        );
    }
    let client_state = param("state");
    let back = |pairs: &[(&str, &str)]| {
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        if let Some(s) = client_state {
            all.push(("state", s));
        }
        redirect(&redirect_uri, &all)
    };
    if param("response_type") != Some("code") {
        return back(&[("error", "unsupported_response_type")]);
    }
    let scopes: Vec<String> = param("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() || scopes.iter().any(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return back(&[("error", "invalid_scope")]);
    }
    let user = match param("sim_user_id") {
        Some(raw) => raw.parse::<u64>().ok().map(Snowflake::new),
        None => state.oauth.signed_in,
    };
    let Some(user) = user.filter(|u| state.users.get(u).is_some_and(|u| !u.bot)) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Nobody is signed in to discord-sim: add sim_user_id=<user id> to the authorize \
             URL or call Sim::sign_in.",
        );
    };
    if param("sim_decision") == Some("deny") {
        return back(&[
            ("error", "access_denied"),
            (
                "error_description",
                "The resource owner or authorization server denied the request",
            ),
        ]);
    }
    let mut extra = Vec::new();
    if scopes.iter().any(|s| s == "bot") {
        // Discord lets the user pick a guild they manage; the sim has no picker.
        let Some(guild) = param("guild_id").and_then(|g| g.parse::<u64>().ok()) else {
            return page(
                StatusCode::BAD_REQUEST,
                "discord-sim has no guild picker: the bot scope needs guild_id.",
            );
        };
        let guild = Snowflake::new(guild);
        if state.guild(guild).is_err() {
            return page(StatusCode::BAD_REQUEST, "Unknown guild.");
        }
        if state.permissions(guild, user, None) & permissions::MANAGE_GUILD == 0 {
            return page(
                StatusCode::FORBIDDEN,
                "You need the Manage Server permission in this guild to add a bot.",
            );
        }
        let requested = match param("permissions").map(str::parse::<u64>) {
            None => 0,
            Some(Ok(bits)) => bits,
            Some(Err(_)) => return page(StatusCode::BAD_REQUEST, "Invalid permissions."),
        };
        if let Err(error) = state.bot_join(ctx, &shared.ids, guild, requested) {
            return page(StatusCode::BAD_REQUEST, &error.message);
        }
        extra.push(("guild_id", guild.to_string()));
        extra.push(("permissions", requested.to_string()));
    }
    let grant = Grant { user, scopes };
    let code = state.oauth.issue_code(grant, &redirect_uri, Instant::now());
    drop(state);
    let mut pairs: Vec<(&str, &str)> = vec![("code", code.as_str())];
    pairs.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    back(&pairs)
}

/// `POST /oauth2/token` and `/oauth2/token/revoke`. Errors are RFC 6749 bodies
/// (`{"error": "invalid_grant", ...}`), not Discord's usual `{message, code}`.
pub(super) fn handle(route: Route, call: Call<'_>) -> Result<Reply, ApiError> {
    let Call {
        state, ctx, req, ..
    } = call;
    let field = |name: &str| req.body.get(name).and_then(Value::as_str);
    let (client_id, secret) = match &req.caller {
        Caller::Basic { client_id, secret } => (Some(client_id.as_str()), Some(secret.as_str())),
        _ => (field("client_id"), field("client_secret")),
    };
    let client_ok = client_id == Some(ctx.app_id.to_string().as_str())
        && secret == Some(ctx.config.oauth_client_secret.as_str());
    let result = if !client_ok {
        Err(TokenError::InvalidClient)
    } else if route == Route::OAuthRevoke {
        match field("token") {
            Some(token) => {
                state.oauth.revoke(token);
                return Ok(Reply::ok(json!({})));
            }
            None => Err(TokenError::InvalidRequest("Missing \"token\".")),
        }
    } else {
        let lifetime = ctx.config.oauth_token_lifetime;
        match field("grant_type") {
            Some("authorization_code") => match field("code") {
                Some(code) => {
                    state
                        .oauth
                        .exchange_code(code, field("redirect_uri"), req.received, lifetime)
                }
                None => Err(TokenError::InvalidRequest("Missing \"code\".")),
            },
            Some("refresh_token") => match field("refresh_token") {
                Some(token) => state.oauth.refresh(token, req.received, lifetime),
                None => Err(TokenError::InvalidRequest("Missing \"refresh_token\".")),
            },
            Some(_) => Err(TokenError::UnsupportedGrantType),
            None => Err(TokenError::InvalidRequest("Missing \"grant_type\".")),
        }
    };
    Ok(match result {
        Ok(pair) => Reply::ok(json!({
            "access_token": pair.access_token,
            "token_type": "Bearer",
            "expires_in": pair.expires_in.as_secs(),
            "refresh_token": pair.refresh_token,
            "scope": pair.scope,
        })),
        Err(error) => Reply::Json(error.status(), error.body()),
    })
}

fn page(status: StatusCode, sentence: &str) -> Response {
    let html = format!(
        "<!doctype html><title>discord-sim OAuth2</title><h1>OAuth2 error</h1><p>{}</p>\n",
        escape_html(sentence)
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn redirect(base: &str, pairs: &[(&str, &str)]) -> Response {
    let mut location = base.to_owned();
    let mut separator = if base.contains('?') { '&' } else { '?' };
    for (key, value) in pairs {
        location.push(separator);
        location.push_str(&percent_encode(key));
        location.push('=');
        location.push_str(&percent_encode(value));
        separator = '&';
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            "The redirect URI is not a valid URL.",
        ),
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_append_encoded_pairs() {
        let response = redirect("http://x/cb?a=1", &[("code", "c 1"), ("state", "s&t")]);
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()[header::LOCATION],
            "http://x/cb?a=1&code=c%201&state=s%26t"
        );
    }
}
