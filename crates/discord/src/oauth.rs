//! OAuth2 with Discord: logging people in ("Log in with Discord") and the bot-install
//! flow, as typed values.
//!
//! The flow (authorization-code grant, RFC 6749 §4.1):
//! 1. [`OAuthApp::authorize_url`] builds the URL the browser is sent to, carrying a
//!    `state` the caller generated and remembers (it is the CSRF defence of the
//!    callback: a callback whose `state` we did not issue is refused).
//! 2. Discord sends the browser back to the app's redirect URI with `code` and `state`
//!    (or `error=access_denied` when the user pressed Cancel).
//! 3. [`OAuthApp::exchange_code`] trades the code for a [`TokenGrant`] (access token,
//!    refresh token, lifetime, scopes); [`OAuthApp::refresh`] renews it later.
//! 4. [`OAuthApp::current_user`] and [`OAuthApp::current_user_guilds`] call the API
//!    as that user (`Authorization: Bearer`).
//!
//! Every URL is configuration ([`OAuthEndpoints`]): production uses
//! [`OAuthEndpoints::discord`], tests and the sandbox [`OAuthEndpoints::at`] on
//! discord-sim. Responses are decoded through twilight-model's `CurrentUser` and
//! `CurrentUserGuild`, the same types the bot trusts, so a field Discord stopped sending
//! fails here and in discord-sim's own tests rather than in a feature.
//!
//! Secrets (client secret, codes, access and refresh tokens) are `base::Secret`s, whose
//! `Debug` prints `[redacted]`; only `expose()` gives the text, for the request that sends it.
//! Errors never include a secret either: they carry Discord's status and its short
//! `error` code, not the request.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::model::{GuildId, UserId};

pub use base::Secret;

/// The application's OAuth2 client secret (developer portal, "OAuth2").
pub type ClientSecret = Secret;
/// A one-time authorization code from the redirect back to us.
pub type AuthorizationCode = Secret;
/// An access token: `Authorization: Bearer <token>` on the user's behalf.
pub type AccessToken = Secret;
/// A refresh token: trades for a new access token (and a new refresh token).
pub type RefreshToken = Secret;

/// Where Discord's OAuth2 endpoints are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthEndpoints {
    /// The consent page the browser visits (`https://discord.com/oauth2/authorize`).
    pub authorize: Url,
    /// The token endpoint (`https://discord.com/api/v10/oauth2/token`).
    pub token: Url,
    /// The REST API base, without a trailing slash (`https://discord.com/api/v10`).
    pub api: Url,
}

impl OAuthEndpoints {
    /// Discord itself.
    pub fn discord() -> Result<OAuthEndpoints, url::ParseError> {
        OAuthEndpoints::at("https://discord.com")
    }

    /// The endpoints of a Discord-like server at `base` (`http://127.0.0.1:PORT` for
    /// discord-sim): `{base}/oauth2/authorize`, `{base}/api/v10/oauth2/token`,
    /// `{base}/api/v10`.
    pub fn at(base: &str) -> Result<OAuthEndpoints, url::ParseError> {
        let base = base.trim_end_matches('/');
        Ok(OAuthEndpoints {
            authorize: Url::parse(&format!("{base}/oauth2/authorize"))?,
            token: Url::parse(&format!("{base}/api/v10/oauth2/token"))?,
            api: Url::parse(&format!("{base}/api/v10"))?,
        })
    }
}

/// An OAuth2 scope Tavern asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `identify`: `GET /users/@me` without the e-mail address.
    Identify,
    /// `email`: `/users/@me` with the address.
    Email,
    /// `guilds`: `GET /users/@me/guilds`.
    Guilds,
    /// `bot`: adds the bot to a guild (the install flow).
    Bot,
    /// `applications.commands`: lets the app register slash commands in the guild.
    ApplicationsCommands,
}

impl Scope {
    /// The scope as Discord spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Identify => "identify",
            Scope::Email => "email",
            Scope::Guilds => "guilds",
            Scope::Bot => "bot",
            Scope::ApplicationsCommands => "applications.commands",
        }
    }
}

/// The guild preselected in a bot-install authorize URL, and the permission bits the
/// bot asks for there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotInstall {
    pub guild: GuildId,
    pub permissions: u64,
}

/// What the token endpoint granted. `Debug` shows no token.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: AccessToken,
    /// Discord always sends one; kept optional because RFC 6749 allows leaving it out.
    pub refresh_token: Option<RefreshToken>,
    /// How long the access token is good for, from when it was granted.
    pub expires_in: Duration,
    /// The scopes actually granted (a user may grant fewer than asked).
    pub scopes: Vec<String>,
}

/// The logged-in Discord user, as `GET /users/@me` describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthUser {
    pub id: UserId,
    /// The unique username.
    pub username: String,
    /// The display name, if the user set one.
    pub global_name: Option<String>,
    /// The avatar hash (for `cdn.discordapp.com/avatars/{id}/{hash}.png`).
    pub avatar: Option<String>,
}

impl OAuthUser {
    /// What to call the user on a page: the display name, else the username.
    pub fn display_name(&self) -> &str {
        self.global_name.as_deref().unwrap_or(&self.username)
    }
}

/// One guild of the user, as `GET /users/@me/guilds` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGuild {
    pub id: GuildId,
    pub name: String,
    /// Whether the user owns the guild.
    pub owner: bool,
    /// The user's guild-level permission bits (without channel overwrites).
    pub permissions: u64,
}

impl UserGuild {
    const ADMINISTRATOR: u64 = 1 << 3;
    const MANAGE_GUILD: u64 = 1 << 5;

    /// Whether the user may add a bot to this guild and change its settings: owner,
    /// administrator or Manage Server, which is what Discord itself requires.
    pub fn can_manage(&self) -> bool {
        self.owner || self.permissions & (Self::ADMINISTRATOR | Self::MANAGE_GUILD) != 0
    }
}

/// Why an OAuth2 call failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The code or refresh token was refused (`invalid_grant`): expired, already used,
    /// revoked, or issued for another redirect URI. The user must log in again.
    #[error("discord oauth2: the grant was refused ({description})")]
    InvalidGrant { description: String },
    /// Our client id or secret was refused (`invalid_client`): a configuration error.
    #[error("discord oauth2: client authentication failed (check the client id and secret)")]
    InvalidClient,
    /// The access token was refused by the API (401): expired or revoked.
    #[error("discord oauth2: the access token was refused")]
    Unauthorized,
    /// Any other error status.
    #[error("discord oauth2 {endpoint}: HTTP {status}: {message}")]
    Status {
        endpoint: &'static str,
        status: u16,
        message: String,
    },
    /// Discord could not be reached or the connection failed. The message says the
    /// client's error with its causes and names no `source`, so a report of the chain
    /// (`{:#}`) says each cause once.
    #[error("discord oauth2 {endpoint}: {}", crate::rest::with_causes(.cause))]
    Transport {
        endpoint: &'static str,
        cause: reqwest::Error,
    },
    /// Discord answered 2xx with a body we cannot read.
    #[error("discord oauth2 {endpoint}: bad response body: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
}

/// Tavern's OAuth2 application at Discord: who we are and where Discord sends users
/// back. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct OAuthApp {
    client_id: String,
    client_secret: ClientSecret,
    redirect_uri: Url,
    endpoints: OAuthEndpoints,
    http: reqwest::Client,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// How long one OAuth2 HTTP call may take. A login waits on it, so it is short; the
/// user can retry.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    expires_in: u64,
    #[serde(default)]
    scope: String,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl OAuthApp {
    /// `client_id` is the application id; `redirect_uri` must be registered in the
    /// developer portal exactly as given (Discord compares strings).
    ///
    /// Installs the process-level rustls provider if none is yet
    /// ([`crate::install_crypto_provider`]): reqwest's TLS is built without one and
    /// would panic on the first client otherwise.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        redirect_uri: Url,
        endpoints: OAuthEndpoints,
    ) -> OAuthApp {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            // The token endpoint and the API never redirect; following one would send
            // a bearer token or a code somewhere unexpected.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "could not build the OAuth2 HTTP client; using defaults");
                reqwest::Client::new()
            });
        OAuthApp {
            client_id: client_id.into(),
            client_secret,
            redirect_uri,
            endpoints,
            http,
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// The same application with another registered redirect URI (a second flow,
    /// such as adding the bot to a guild, that comes back to its own callback).
    pub fn with_redirect_uri(&self, redirect_uri: Url) -> OAuthApp {
        OAuthApp {
            redirect_uri,
            ..self.clone()
        }
    }

    pub fn endpoints(&self) -> &OAuthEndpoints {
        &self.endpoints
    }

    /// The URL to send the browser to. `state` must be unguessable and remembered
    /// server-side until the callback. With `install`, the guild is preselected (and
    /// `disable_guild_select=true` keeps the user from picking another, so the guild
    /// the callback reports is the one the caller recorded) and `permissions` asked
    /// for; add [`Scope::Bot`] to `scopes` for that to mean anything.
    pub fn authorize_url(&self, state: &str, scopes: &[Scope], install: Option<BotInstall>) -> Url {
        let scope: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let mut url = self.endpoints.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", self.redirect_uri.as_str())
                .append_pair("response_type", "code")
                .append_pair("scope", &scope.join(" "))
                .append_pair("state", state);
            if let Some(install) = install {
                query
                    .append_pair("guild_id", &install.guild.to_string())
                    .append_pair("permissions", &install.permissions.to_string())
                    .append_pair("disable_guild_select", "true");
            }
        }
        url
    }

    /// Trades the code from the callback for tokens.
    pub async fn exchange_code(&self, code: &AuthorizationCode) -> Result<TokenGrant, OAuthError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("redirect_uri", self.redirect_uri.as_str()),
        ])
        .await
    }

    /// Trades a refresh token for new tokens. Discord rotates refresh tokens: keep
    /// the new one, the old one is dead.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenGrant, OAuthError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ])
        .await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenGrant, OAuthError> {
        const ENDPOINT: &str = "token";
        let mut fields = form.to_vec();
        fields.push(("client_id", &self.client_id));
        fields.push(("client_secret", self.client_secret.expose()));
        let response = self
            .http
            .post(self.endpoints.token.clone())
            .form(&fields)
            .send()
            .await
            .map_err(|cause| OAuthError::Transport {
                endpoint: ENDPOINT,
                cause,
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|cause| OAuthError::Transport {
                endpoint: ENDPOINT,
                cause,
            })?;
        if !(200..300).contains(&status) {
            let error = serde_json::from_slice::<OAuthErrorBody>(&bytes).ok();
            return Err(match error {
                Some(e) if e.error == "invalid_grant" => OAuthError::InvalidGrant {
                    description: e.error_description.unwrap_or(e.error),
                },
                Some(e) if e.error == "invalid_client" => OAuthError::InvalidClient,
                _ if status == 401 => OAuthError::InvalidClient,
                error => OAuthError::Status {
                    endpoint: ENDPOINT,
                    status,
                    message: error.map_or_else(|| body_excerpt(&bytes), |e| e.error),
                },
            });
        }
        let body: TokenBody =
            serde_json::from_slice(&bytes).map_err(|error| OAuthError::Decode {
                endpoint: ENDPOINT,
                message: error.to_string(),
            })?;
        Ok(TokenGrant {
            access_token: AccessToken::from(body.access_token),
            refresh_token: body.refresh_token.map(RefreshToken::from),
            expires_in: Duration::from_secs(body.expires_in),
            scopes: body.scope.split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// `GET /users/@me` as the token's user (needs [`Scope::Identify`]).
    pub async fn current_user(&self, token: &AccessToken) -> Result<OAuthUser, OAuthError> {
        let user: twilight_model::user::CurrentUser =
            self.api_get("users/@me", "users/@me", token).await?;
        Ok(OAuthUser {
            id: user.id,
            username: user.name,
            global_name: user.global_name,
            avatar: user.avatar.map(|hash| hash.to_string()),
        })
    }

    /// `GET /users/@me/guilds` as the token's user (needs [`Scope::Guilds`]): the
    /// first 200 guilds, Discord's page size and its cap on how many guilds a user
    /// can join.
    pub async fn current_user_guilds(
        &self,
        token: &AccessToken,
    ) -> Result<Vec<UserGuild>, OAuthError> {
        let guilds: Vec<twilight_model::user::CurrentUserGuild> = self
            .api_get("users/@me/guilds?limit=200", "users/@me/guilds", token)
            .await?;
        Ok(guilds
            .into_iter()
            .map(|g| UserGuild {
                id: g.id,
                name: g.name,
                owner: g.owner,
                permissions: g.permissions.bits(),
            })
            .collect())
    }

    async fn api_get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        endpoint: &'static str,
        token: &AccessToken,
    ) -> Result<T, OAuthError> {
        let url = format!(
            "{}/{path}",
            self.endpoints.api.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|cause| OAuthError::Transport { endpoint, cause })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|cause| OAuthError::Transport { endpoint, cause })?;
        match status {
            200..=299 => serde_json::from_slice(&bytes).map_err(|error| OAuthError::Decode {
                endpoint,
                message: error.to_string(),
            }),
            401 => Err(OAuthError::Unauthorized),
            _ => Err(OAuthError::Status {
                endpoint,
                status,
                message: body_excerpt(&bytes),
            }),
        }
    }
}

/// The start of an error body, for the error message (bodies of error responses
/// carry no secrets of ours).
fn body_excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> OAuthApp {
        OAuthApp::new(
            "42",
            ClientSecret::from("hunter2"),
            Url::parse("https://tavern.example/login/discord/callback").unwrap(),
            OAuthEndpoints::discord().unwrap(),
        )
    }

    #[test]
    fn discord_endpoints() {
        let endpoints = OAuthEndpoints::discord().unwrap();
        assert_eq!(
            endpoints.authorize.as_str(),
            "https://discord.com/oauth2/authorize"
        );
        assert_eq!(
            endpoints.token.as_str(),
            "https://discord.com/api/v10/oauth2/token"
        );
        assert_eq!(endpoints.api.as_str(), "https://discord.com/api/v10");
    }

    #[test]
    fn authorize_url_carries_everything_encoded() {
        let url = app().authorize_url(
            "s t&ate",
            &[Scope::Identify, Scope::Guilds],
            Some(BotInstall {
                guild: GuildId::new(7),
                permissions: 3072,
            }),
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("client_id"), Some("42"));
        assert_eq!(
            get("redirect_uri"),
            Some("https://tavern.example/login/discord/callback")
        );
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("scope"), Some("identify guilds"));
        assert_eq!(get("state"), Some("s t&ate"));
        assert_eq!(get("guild_id"), Some("7"));
        assert_eq!(get("permissions"), Some("3072"));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let text = format!("{:?} {:?}", app(), AccessToken::from("tok-123"));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("tok-123"), "{text}");
    }

    #[test]
    fn managers_are_owners_admins_and_manage_server() {
        let guild = |owner, permissions| UserGuild {
            id: GuildId::new(1),
            name: "g".into(),
            owner,
            permissions,
        };
        assert!(guild(true, 0).can_manage());
        assert!(guild(false, 1 << 3).can_manage());
        assert!(guild(false, 1 << 5).can_manage());
        assert!(!guild(false, (1 << 10) | (1 << 11)).can_manage());
    }
}
