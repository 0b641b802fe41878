//! Log in with Discord: the OAuth2 authorization-code flow of Tavern's Discord
//! application, ending in a meetings access token. The Discord account is found in
//! `oauth_providers` (provider `discord`) or a new account is made and linked; the
//! provider's tokens are sealed with the meetings secret key before they are stored.
//! Discord does not give the email without the `email` scope, so a new account's email
//! is a stand-in, `discord-{id}@users.discord.invalid` (the reserved `.invalid` domain,
//! which registration refuses, so nobody can take it first).

use base::Secret;
use chrono::TimeDelta;
use discord::oauth::{OAuthApp, Scope as DiscordScope};

use super::{AccessToken, Auth, AuthError, ClientInfo, Email, Scopes};
use crate::domain::{ActorType, AuditResult, DisplayName, OAuthState, UserId};
use crate::repo::AuditEntry;
use crate::repo::users::OAuthLink;

/// `oauth_providers.provider` of Discord accounts.
pub const DISCORD: &str = "discord";

/// The associated data of a sealed provider token.
fn seal_context(provider_user_id: &str, which: &str) -> String {
    format!("meetings:oauth:{DISCORD}:{provider_user_id}:{which}")
}

/// Registration refuses emails of the reserved `.invalid` domain (the stand-ins).
pub(crate) fn is_stand_in(email: &Email) -> bool {
    email.as_str().ends_with(".invalid")
}

impl Auth {
    /// Starts a login: a one-time `state` is remembered and Discord's authorize URL
    /// (scope `identify`) returned.
    pub async fn begin_discord_login(
        &self,
        app: &OAuthApp,
        client: &ClientInfo,
    ) -> Result<url::Url, AuthError> {
        self.per_address(
            &self.config().discord_logins_by_address(),
            client,
            "Discord login started",
        )
        .await?;
        let state = OAuthState::random();
        self.repo().save_oauth_state(&state, DISCORD).await?;
        Ok(app.authorize_url(state.expose(), &[DiscordScope::Identify], None))
    }

    /// Finishes a login: the `state` must be one this server made (used once), the code
    /// is exchanged, the Discord user found or made, and an access token signed.
    pub async fn finish_discord_login(
        &self,
        app: &OAuthApp,
        code: &str,
        state: &str,
        client: &ClientInfo,
    ) -> Result<(UserId, AccessToken, bool), AuthError> {
        let bad_state = || {
            AuthError::invalid(
                "bad_state",
                "this login link is unknown, used or expired; start again",
            )
        };
        // Anything this server cannot have made was never issued; it is parsed before it
        // becomes part of a key.
        let state = OAuthState::parse(state).map_err(|_| bad_state())?;
        if self.repo().take_oauth_state(&state).await?.as_deref() != Some(DISCORD) {
            return Err(bad_state());
        }
        let grant = app
            .exchange_code(&Secret::from(code))
            .await
            .map_err(|e| AuthError::Provider(e.to_string()))?;
        let who = app
            .current_user(&grant.access_token)
            .await
            .map_err(|e| AuthError::Provider(e.to_string()))?;
        let id = who.id.to_string();
        let secret = &self.inner.secret;
        let access_token_sealed = secret.seal(
            &seal_context(&id, "access"),
            grant.access_token.expose_str().as_bytes(),
        )?;
        let refresh_token_sealed = grant
            .refresh_token
            .as_ref()
            .map(|t| secret.seal(&seal_context(&id, "refresh"), t.expose_str().as_bytes()))
            .transpose()?;
        let email = discord_email(&id).map_err(|e| AuthError::Provider(e.to_string()))?;
        let display_name = discord_display_name(&id, &[who.display_name(), &who.username])
            .map_err(|e| AuthError::Provider(e.to_string()))?;
        let expires_at =
            self.now() + TimeDelta::from_std(grant.expires_in).unwrap_or(TimeDelta::MAX);
        let (user, created) = self
            .repo()
            .link_oauth_user(&OAuthLink {
                provider: DISCORD,
                provider_user_id: id.clone(),
                email,
                display_name,
                access_token_sealed,
                refresh_token_sealed,
                token_expires_at: Some(expires_at),
            })
            .await?;
        self.repo().record_login(user, self.now()).await?;
        tracing::info!(user = %user, created, "meetings login with Discord");
        self.audit(AuditEntry {
            event_type: if created {
                "user_registered"
            } else {
                "user_login"
            }
            .to_owned(),
            actor_user_id: Some(user),
            actor_type: ActorType::User,
            target_type: Some("user".to_owned()),
            target_id: Some(user.to_string()),
            action: "login_discord".to_owned(),
            result: AuditResult::Success,
            error_message: None,
            ip_address: client.ip,
            user_agent: client.user_agent.clone(),
            metadata: Some(serde_json::json!({ "provider": DISCORD, "provider_user_id": id })),
        })
        .await;
        let token = self.issue(user, &Scopes::all()).await?;
        Ok((user, token, created))
    }
}

/// The stand-in email of the account made for Discord user `id`: the reserved
/// `.invalid` domain, which nobody can register or receive mail at.
pub fn discord_email(id: &str) -> Result<Email, super::CredentialError> {
    Email::parse(&format!("discord-{id}@users.discord.invalid"))
}

/// The first of `names` that makes a display name, else `Discord user {id}`.
pub fn discord_display_name(id: &str, names: &[&str]) -> Result<DisplayName, base::InvalidId> {
    names
        .iter()
        .find_map(|name| DisplayName::parse(name).ok())
        .map_or_else(|| DisplayName::parse(&format!("Discord user {id}")), Ok)
}
