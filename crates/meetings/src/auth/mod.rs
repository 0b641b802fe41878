//! Authentication for the meetings API: accounts with argon2id passwords, EdDSA access
//! tokens (JWTs) published as a JWKS, signing keys rotated on a schedule and sealed at
//! rest, API keys limited to their scopes, the token blacklist, and rate limits on
//! failed logins. [`Auth`] is the one service the routes (and later the global and
//! meeting controllers) use; its pieces are pure and unit-tested:
//!
//! - `crypto`: [`MeetingsSecretKey`] (AES-256-GCM at rest) and SHA-256 digests;
//! - `password`: [`Email`], [`Password`] (the strength rules), argon2id hashes;
//! - `jwt`: the compact JWS encoder and verifier, [`Claims`], [`Jwks`];
//! - `keys`: the rotation rules ([`Rotation`]) and key material;
//! - `scopes`, `api_keys`, `rate_limit`;
//! - `verified`: the access tokens whose signature this process has checked.
//!
//! Every secret here (the secret key, passwords, API keys, access tokens, the Discord
//! login's `state`) is held in a [`base::Secret`], so its `Debug` is redacted.

mod api_keys;
mod crypto;
mod jwt;
mod keys;
mod oauth;
mod password;
mod rate_limit;
mod scopes;
mod verified;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base::{Clock, Secret};
use chrono::{DateTime, TimeDelta, Utc};

pub use self::api_keys::{ApiKeyId, ApiKeySecret};
pub use self::crypto::{CryptoError, MeetingsSecretKey, sha256_hex};
pub use self::jwt::{Claims, Jwk, Jwks, Kid, TokenError, verify_with_jwks};
pub use self::keys::{
    KEY_CACHE_FOR, KeyInfo, LoadedKey, Rotation, SealedKey, UNKNOWN_KEY_READ_EVERY,
};
pub use self::oauth::{DISCORD, discord_display_name, discord_email};
pub use self::password::{CredentialError, Email, Password};
pub use self::rate_limit::{Limit, RateLimiter, Reservation, RetryAfter, identifier};
pub use self::scopes::{Scope, Scopes};

use crate::domain::{
    ActorType, AuditResult, DisplayName, MeetingId, ParticipantId, TokenHash, UserId,
};
use crate::repo::AuditEntry;
use crate::repo::api_keys::NewApiKey;
use crate::{MeetingsError, Repo};

/// Settings of authentication (part of `MeetingsConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthConfig {
    /// How long an access token lives.
    pub access_token_ttl: Duration,
    /// How long a signing key signs before the next one replaces it.
    pub key_rotation: Duration,
    /// How often the rotation job looks whether a key is due.
    pub key_rotation_check: Duration,
    /// Failed logins allowed per minute, per email and per client address.
    pub failed_logins_per_minute: u64,
    /// Meetings one user may create per minute (for the meeting routes).
    pub meetings_created_per_minute: u64,
    /// Registrations per minute from one client address (each costs an argon2id hash);
    /// also the Discord logins one address may start a minute (each stores a state).
    pub registrations_per_minute: u64,
    /// Guest join grants per minute from one client address.
    pub guest_tokens_per_minute: u64,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            access_token_ttl: Duration::from_secs(60 * 60),
            key_rotation: Duration::from_secs(24 * 60 * 60),
            key_rotation_check: Duration::from_secs(10 * 60),
            failed_logins_per_minute: 10,
            meetings_created_per_minute: 30,
            registrations_per_minute: 10,
            guest_tokens_per_minute: 30,
        }
    }
}

impl AuthConfig {
    pub fn rotation(&self) -> Rotation {
        Rotation {
            rotate_every: self.key_rotation,
            token_ttl: self.access_token_ttl,
        }
    }

    /// Failed logins per email.
    pub fn failed_logins_by_email(&self) -> Limit {
        Limit::new("auth:login:failed:email", self.failed_logins_per_minute)
    }

    /// Failed logins per client address.
    pub fn failed_logins_by_address(&self) -> Limit {
        Limit::new("auth:login:failed:ip", self.failed_logins_per_minute)
    }

    /// Registrations per client address.
    pub fn registrations_by_address(&self) -> Limit {
        Limit::new("auth:register:ip", self.registrations_per_minute)
    }

    /// Discord logins started per client address (each stores its OAuth state for 10
    /// minutes), at the registrations' rate.
    pub fn discord_logins_by_address(&self) -> Limit {
        Limit::new("auth:discord:ip", self.registrations_per_minute)
    }

    /// Meetings created per user (the seed's example endpoint).
    pub fn meetings_created(&self) -> Limit {
        Limit::new("api:meetings:create", self.meetings_created_per_minute)
    }

    /// Guest join grants per client address.
    pub fn guest_tokens(&self) -> Limit {
        Limit::new("api:meetings:guest-token", self.guest_tokens_per_minute)
    }
}

/// Why an authentication step refused, or failed. Each has its HTTP status and code in
/// `crate::web`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request is wrong; `code` names what (`bad_email`, `weak_password`, ...), and
    /// `field` the request field it is about, when it is about one.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    },
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Wrong email or wrong password: never which.
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("too many attempts; try again in {} s", .0.seconds())]
    RateLimited(RetryAfter),
    #[error("send `Authorization: Bearer <access token or API key>`")]
    MissingCredentials,
    #[error("{0}")]
    Token(TokenError),
    #[error("unknown, revoked or expired API key")]
    BadApiKey,
    #[error("this needs the scope {0}")]
    MissingScope(Scope),
    #[error("this needs a user's access token, not an API key")]
    UserTokenRequired,
    #[error("no such API key")]
    NoSuchApiKey,
    /// The OAuth provider refused or failed (a code exchange, its user).
    #[error("Discord did not complete the login: {0}")]
    Provider(String),
    /// Logging in with Discord is not configured.
    #[error("logging in with Discord is not configured here")]
    ProviderNotConfigured,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Meetings(#[from] MeetingsError),
}

impl AuthError {
    fn invalid(code: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::Invalid {
            code,
            field: None,
            message: message.into(),
        }
    }

    /// A wrong value of the request's `field`.
    fn bad_field(field: &'static str, code: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::Invalid {
            code,
            field: Some(field),
            message: message.into(),
        }
    }
}

impl From<store::StorageError> for AuthError {
    fn from(e: store::StorageError) -> AuthError {
        AuthError::Meetings(e.into())
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A user's access token (its hash and expiry, for logout).
    Jwt {
        token_hash: TokenHash,
        jti: String,
        expires_at: DateTime<Utc>,
    },
    /// An API key.
    ApiKey { key_id: ApiKeyId },
}

/// Who a request acts for, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user_id: UserId,
    pub scopes: Scopes,
    pub via: Via,
}

impl Authenticated {
    /// Refuses (403) unless the credential holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope(scope))
        }
    }

    /// Refuses (403) an API key where only a user's own token will do.
    pub fn require_user_token(&self) -> Result<(), AuthError> {
        match self.via {
            Via::Jwt { .. } => Ok(()),
            Via::ApiKey { .. } => Err(AuthError::UserTokenRequired),
        }
    }
}

/// How long a join grant's meeting token lives (as long as its one-time connection
/// token, `wt:token:{token}`).
pub const MEETING_TOKEN_TTL: Duration = crate::schema::WT_TOKEN_TTL;

/// The `sub` of a guest's meeting token.
pub const GUEST_SUBJECT: &str = "guest";

/// Who a meeting token admits: one participant (named by the grant) of one meeting, a
/// user or a guest (`user_id` `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingTicket {
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub user_id: Option<UserId>,
    pub display_name: DisplayName,
}

/// An issued access token. The token is a bearer secret.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_in: u64,
    pub claims: Claims,
}

/// A created API key, shown once.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub key_id: ApiKeyId,
    pub key: ApiKeySecret,
    pub key_prefix: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where a request came from, for rate limits and audit rows.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// What changed in one rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub created: Option<Kid>,
    pub removed: Vec<Kid>,
}

/// The keys in memory: every stored key's identity, the published ones opened.
#[derive(Debug)]
struct Ring {
    /// The ordinal of the read that made it, taken when that read began
    /// ([`Inner::reads_begun`]).
    read: u64,
    loaded_at: DateTime<Utc>,
    infos: Vec<KeyInfo>,
    keys: Vec<LoadedKey>,
}

/// The authentication service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    repo: Repo,
    clock: Arc<dyn Clock>,
    secret: MeetingsSecretKey,
    config: AuthConfig,
    limiter: RateLimiter,
    ring: RwLock<Option<Arc<Ring>>>,
    /// Held while the keys are read again for an unknown `kid` or a stale cache (one
    /// read at a time; the others wait for it), with when the last read began.
    reading: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    /// How many reads of the keys have begun: a read takes the next ordinal as it
    /// begins, so a ring tells whether its read began after a given moment.
    reads_begun: AtomicU64,
    /// The blacklist's recent "not revoked" answers.
    unrevoked: Arc<Unrevoked>,
    /// The access tokens whose signature was checked here.
    verified: verified::Verified,
    /// Stops the task hearing revocations ([`Auth::hear_revocations`]) when the last
    /// clone of this `Auth` goes.
    listener: std::sync::OnceLock<tokio_util::sync::DropGuard>,
    /// The stored keys that did not open, already warned of (once a process: the keys
    /// are read again every minute and at each rotation check).
    warned_foreign: std::sync::Mutex<std::collections::HashSet<Kid>>,
}

/// The blacklist's "not revoked" answers this process reuses, and whether it may.
#[derive(Debug, Default)]
struct Unrevoked {
    /// Tokens the blacklist said were not revoked, and when (the clock's time).
    seen: std::sync::Mutex<std::collections::HashMap<TokenHash, DateTime<Utc>>>,
    /// Whether this process hears [`crate::schema::REVOCATIONS_CHANNEL`] now: only then is an
    /// answer reused, since only then does a logout elsewhere reach it at once.
    listening: AtomicBool,
    /// Bumped by every revocation heard and every loss of the channel: an answer read
    /// before a bump is not kept (it may predate the revocation).
    epoch: AtomicU64,
}

impl Unrevoked {
    /// Forgets every answer (the channel was lost, or said something unreadable).
    fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut seen) = self.seen.lock() {
            seen.clear();
        }
    }

    /// Forgets the answer for a token just revoked.
    fn forget(&self, hash: &TokenHash) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(hash);
        }
    }
}

/// How long this process reuses the blacklist's "not revoked" for a token before it
/// asks Redis again. A logout anywhere reaches every replica at once through
/// [`crate::schema::REVOCATIONS_CHANNEL`], and nothing is reused while that channel is not
/// heard; this bounds what a lost message could cost. It spares the Redis round trip
/// of every request a client makes with the same token.
pub const REVOCATION_CACHE_FOR: Duration = Duration::from_secs(1);

/// Tokens remembered as not revoked at most (then the stale ones, or all, are dropped).
const REVOCATION_CACHE_MAX: usize = 10_000;

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Auth {
    pub fn new(
        repo: Repo,
        clock: Arc<dyn Clock>,
        secret: MeetingsSecretKey,
        config: AuthConfig,
    ) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                limiter: RateLimiter::new(repo.clone()),
                repo,
                clock,
                secret,
                config,
                ring: RwLock::new(None),
                reading: tokio::sync::Mutex::new(None),
                reads_begun: AtomicU64::new(0),
                unrevoked: Arc::new(Unrevoked::default()),
                verified: verified::Verified::default(),
                listener: std::sync::OnceLock::new(),
                warned_foreign: std::sync::Mutex::default(),
            }),
        }
    }

    /// Whether this process hears revocations now, so that it reuses the blacklist's
    /// "not revoked" answers ([`REVOCATION_CACHE_FOR`]). It starts listening on its first
    /// token check.
    pub fn hears_revocations(&self) -> bool {
        self.inner.unrevoked.listening.load(Ordering::Acquire)
    }

    /// Starts (once, within a Tokio runtime) the task that hears
    /// [`crate::schema::REVOCATIONS_CHANNEL`]: each hash heard is forgotten as "not revoked";
    /// while the channel is lost nothing is reused, and it subscribes again with backoff.
    fn hear_revocations(&self) {
        if self.inner.listener.get().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stop = tokio_util::sync::CancellationToken::new();
        // Two first checks at once may both get here: the one whose guard is not kept
        // stops its task at once.
        if self.inner.listener.set(stop.clone().drop_guard()).is_ok() {
            runtime.spawn(hear(
                self.inner.repo.clone(),
                self.inner.unrevoked.clone(),
                stop,
            ));
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// The rate limiter (the meeting routes limit creation with
    /// [`AuthConfig::meetings_created`]).
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn repo(&self) -> &Repo {
        &self.inner.repo
    }

    // -----------------------------------------------------------------------------------
    // Keys

    /// Reads the stored keys, opens the published ones and caches them. A key that does
    /// not open (another secret key, altered) is skipped with a warning (once a
    /// process): tokens it signed no longer verify, and the next rotation check makes a
    /// new key.
    async fn load(&self) -> Result<Arc<Ring>, AuthError> {
        let read = self.inner.reads_begun.fetch_add(1, Ordering::AcqRel) + 1;
        let now = self.now();
        let (opened, _) = self.open_stored().await?;
        let infos: Vec<KeyInfo> = opened.iter().map(|k| k.info.clone()).collect();
        let rotation = self.inner.config.rotation();
        let keys = opened
            .into_iter()
            .filter(|k| rotation.published(&infos, &k.info, now))
            .collect();
        let ring = Arc::new(Ring {
            read,
            loaded_at: now,
            infos,
            keys,
        });
        // A read that began earlier and ended later (a rotation's beside a refresh)
        // does not replace what a later one found.
        if let Ok(mut slot) = self.inner.ring.write()
            && slot.as_ref().is_none_or(|kept| kept.read < read)
        {
            *slot = Some(ring.clone());
        }
        Ok(ring)
    }

    /// The stored keys: those that open with the configured secret, and the identities
    /// of those that do not (sealed under another secret, or altered). Only the first
    /// take part in signing, publishing and the rotation schedule.
    async fn open_stored(&self) -> Result<(Vec<LoadedKey>, Vec<KeyInfo>), AuthError> {
        let stored = self.repo().signing_keys().await?;
        let mut opened = Vec::with_capacity(stored.len());
        let mut foreign = Vec::new();
        for key in &stored {
            match keys::open(&self.inner.secret, key) {
                Ok(loaded) => opened.push(loaded),
                Err(error) => {
                    let first = self
                        .inner
                        .warned_foreign
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(key.info.kid.clone());
                    if first {
                        tracing::warn!(
                            kid = %key.info.kid,
                            %error,
                            "a stored signing key does not open with the configured meetings secret key (said once)"
                        );
                    } else {
                        tracing::debug!(kid = %key.info.kid, "a stored signing key does not open");
                    }
                    foreign.push(key.info.clone());
                }
            }
        }
        Ok((opened, foreign))
    }

    fn cached(&self) -> Option<Arc<Ring>> {
        self.inner.ring.read().ok().and_then(|slot| slot.clone())
    }

    /// The cached keys, read again when older than [`KEY_CACHE_FOR`], by one request at
    /// a time: while another read is under way (or waits for its turn) the keys in
    /// memory serve, and only a process that has none yet waits.
    async fn ring(&self) -> Result<Arc<Ring>, AuthError> {
        let fresh = |ring: &Ring| self.now() - ring.loaded_at < to_delta(KEY_CACHE_FOR);
        let cached = self.cached();
        if let Some(ring) = cached.clone().filter(|r| fresh(r)) {
            return Ok(ring);
        }
        let mut reading = match (self.inner.reading.try_lock(), cached) {
            (Ok(reading), _) => reading,
            (Err(_), Some(stale)) => return Ok(stale),
            (Err(_), None) => self.inner.reading.lock().await,
        };
        if let Some(ring) = self.cached().filter(|r| fresh(r)) {
            return Ok(ring);
        }
        *reading = Some(tokio::time::Instant::now());
        self.load().await
    }

    /// The keys read again for a token whose `kid` the keys it was checked against do
    /// not have: at most once every [`UNKNOWN_KEY_READ_EVERY`], one read at a time; a
    /// request waits for the next read and takes the keys it found, or those another
    /// request read while it waited, but only from a read that began after this request
    /// found the `kid` unknown: one begun earlier (a refresh under way) may predate a
    /// key another replica has just made.
    async fn ring_for_unknown_kid(&self) -> Result<Arc<Ring>, AuthError> {
        let asked = self.inner.reads_begun.load(Ordering::Acquire);
        let mut reading = self.inner.reading.lock().await;
        if let Some(ring) = self.cached().filter(|r| r.read > asked) {
            return Ok(ring);
        }
        if let Some(last) = *reading {
            tokio::time::sleep_until(last + UNKNOWN_KEY_READ_EVERY).await;
        }
        *reading = Some(tokio::time::Instant::now());
        tracing::debug!("a token names a key not known here; reading the keys again");
        self.load().await
    }

    /// Makes a new signing key when one is due (none yet, or the newest is
    /// `key_rotation` old) and removes the keys no longer published. The start-up work
    /// and the rotation job; safe to run at any time and on several replicas (two keys
    /// made at once both verify; the newest signs).
    pub async fn rotate_keys(&self) -> Result<RotationReport, AuthError> {
        let now = self.now();
        let rotation = self.inner.config.rotation();
        let (opened, foreign) = self.open_stored().await?;
        let mut infos: Vec<KeyInfo> = opened.iter().map(|k| k.info.clone()).collect();
        let mut report = RotationReport::default();
        if rotation.due(&infos, now) {
            let (sealed, _) = keys::generate(&self.inner.secret, now)?;
            self.repo().add_signing_key(&sealed).await?;
            tracing::info!(kid = %sealed.info.kid, "made a new meetings signing key");
            self.audit_system("signing_key_rotated", "rotate", sealed.info.kid.as_str())
                .await;
            infos.push(sealed.info.clone());
            report.created = Some(sealed.info.kid);
        }
        report.removed = infos
            .iter()
            .filter(|k| !rotation.published(&infos, k, now))
            .chain(foreign.iter().filter(|k| rotation.abandoned(k, now)))
            .map(|k| k.kid.clone())
            .collect();
        if !report.removed.is_empty() {
            self.repo().remove_signing_keys(&report.removed).await?;
            tracing::info!(
                removed = report.removed.len(),
                "removed retired meetings signing keys"
            );
            for kid in &report.removed {
                self.audit_system("signing_key_removed", "remove", kid.as_str())
                    .await;
            }
        }
        self.load().await?;
        Ok(report)
    }

    /// The published keys, as `GET /.well-known/jwks.json` serves them.
    pub async fn jwks(&self) -> Result<Jwks, AuthError> {
        let ring = self.ring().await?;
        let mut keys: Vec<&LoadedKey> = ring.keys.iter().collect();
        keys.sort_by_key(|k| std::cmp::Reverse((k.info.created_at, k.info.kid.clone())));
        Ok(Jwks {
            keys: keys
                .into_iter()
                .map(|k| Jwk::ed25519(&k.info.kid, &k.public))
                .collect(),
        })
    }

    // -----------------------------------------------------------------------------------
    // Tokens

    /// Signs an access token for `user` with `scopes`, with the newest key (made first
    /// if there is none yet).
    pub async fn issue(&self, user: UserId, scopes: &Scopes) -> Result<AccessToken, AuthError> {
        let ttl = self.inner.config.access_token_ttl;
        self.sign_claims(ttl, |claims| {
            claims.sub = user.to_string();
            claims.scope = scopes.to_claim();
        })
        .await
    }

    /// Signs claims filled in by `fill` (`iat`, `exp`, `jti` set here) with the newest
    /// key (made first if there is none yet).
    async fn sign_claims(
        &self,
        ttl: Duration,
        fill: impl FnOnce(&mut Claims),
    ) -> Result<AccessToken, AuthError> {
        let mut ring = self.ring().await?;
        let usable_newest = |ring: &Ring| {
            keys::newest(&ring.infos)
                .and_then(|info| ring.keys.iter().find(|k| k.info == *info))
                .is_some()
        };
        if !usable_newest(&ring) {
            self.rotate_keys().await?;
            ring = self.ring().await?;
        }
        let key = keys::newest(&ring.infos)
            .and_then(|info| ring.keys.iter().find(|k| k.info == *info))
            .ok_or(AuthError::Crypto(CryptoError::Unsealable))?;
        let now = self.now();
        let jti = Kid::from_bytes(&crypto::random_bytes::<16>()?).to_string();
        let mut claims = Claims {
            sub: String::new(),
            iat: now.timestamp(),
            exp: (now + to_delta(ttl)).timestamp(),
            jti,
            scope: String::new(),
            mid: None,
            pid: None,
            name: None,
        };
        fill(&mut claims);
        let token = jwt::sign(&key.info.kid, &key.pair, &claims);
        Ok(AccessToken {
            token: Secret::new(token),
            expires_in: ttl.as_secs(),
            claims,
        })
    }

    /// The claims of a token a key we publish signed, unexpired, and that key. An
    /// unknown `kid` makes the keys be read again (another replica may have rotated), at
    /// most once every [`UNKNOWN_KEY_READ_EVERY`] ([`Auth::ring_for_unknown_kid`]).
    async fn verified_claims(
        &self,
        unverified: jwt::Unverified<'_>,
    ) -> Result<verified::Signed, AuthError> {
        let mut ring = self.ring().await?;
        if !ring.keys.iter().any(|k| k.info.kid == unverified.kid) {
            ring = self.ring_for_unknown_kid().await?;
        }
        let key = ring
            .keys
            .iter()
            .find(|k| k.info.kid == unverified.kid)
            .ok_or(AuthError::Token(TokenError::UnknownKey))?;
        let kid = unverified.kid.clone();
        let claims = unverified
            .verify(&key.public, self.now().timestamp())
            .map_err(AuthError::Token)?;
        Ok(verified::Signed { kid, claims })
    }

    /// The claims of an access token as [`Auth::verified_claims`] says them, its
    /// signature checked once per process: a token checked here before is answered from
    /// what it said while the key that signed it is published here (else it is checked
    /// afresh, and refused) and it has not expired.
    async fn access_claims(
        &self,
        unverified: jwt::Unverified<'_>,
        hash: &TokenHash,
    ) -> Result<Claims, AuthError> {
        let checked = &self.inner.verified;
        if let Some(signed) = checked.get(hash) {
            let ring = self.ring().await?;
            if ring.keys.iter().any(|k| k.info.kid == signed.kid) {
                if signed.claims.exp <= self.now().timestamp() {
                    checked.forget(hash);
                    return Err(AuthError::Token(TokenError::Expired));
                }
                return Ok(signed.claims);
            }
            checked.forget(hash);
        }
        let signed = self.verified_claims(unverified).await?;
        let claims = signed.claims.clone();
        if claims.mid.is_none() {
            checked.keep(hash.clone(), signed, self.now().timestamp());
        }
        Ok(claims)
    }

    /// Verifies an access token: a key we publish signed it, it has not expired, it is
    /// not blacklisted, and it is an access token (a meeting token is not).
    pub async fn verify_token(&self, token: &str) -> Result<Authenticated, AuthError> {
        let unverified = jwt::split(token).map_err(AuthError::Token)?;
        let token_hash = TokenHash::parse(&sha256_hex(token.as_bytes()))
            .map_err(|_| AuthError::Token(TokenError::Malformed))?;
        let claims = self.access_claims(unverified, &token_hash).await?;
        if claims.mid.is_some() {
            return Err(AuthError::Token(TokenError::NotAnAccessToken));
        }
        let user_id =
            UserId::parse(&claims.sub).map_err(|_| AuthError::Token(TokenError::Malformed))?;
        if self.revoked(&token_hash).await? {
            return Err(AuthError::Token(TokenError::Revoked));
        }
        let expires_at = DateTime::from_timestamp(claims.exp, 0)
            .ok_or(AuthError::Token(TokenError::Malformed))?;
        Ok(Authenticated {
            user_id,
            scopes: Scopes::lenient(claims.scope.split(' ')),
            via: Via::Jwt {
                token_hash,
                jti: claims.jti,
                expires_at,
            },
        })
    }

    /// Whether the token with `hash` is on the blacklist; a "no" is reused for
    /// [`REVOCATION_CACHE_FOR`].
    async fn revoked(&self, hash: &TokenHash) -> Result<bool, AuthError> {
        self.hear_revocations();
        let unrevoked = &self.inner.unrevoked;
        let now = self.now();
        let fresh = |at: &DateTime<Utc>| {
            *at <= now && now.signed_duration_since(*at) < to_delta(REVOCATION_CACHE_FOR)
        };
        if self.hears_revocations()
            && let Ok(seen) = unrevoked.seen.lock()
            && seen.get(hash).is_some_and(fresh)
        {
            return Ok(false);
        }
        let epoch = unrevoked.epoch.load(Ordering::Acquire);
        let revoked = self.repo().blacklisted(hash).await?.is_some();
        if !revoked
            && self.hears_revocations()
            && unrevoked.epoch.load(Ordering::Acquire) == epoch
            && let Ok(mut seen) = unrevoked.seen.lock()
        {
            if seen.len() >= REVOCATION_CACHE_MAX {
                seen.retain(|_, at| fresh(at));
                if seen.len() >= REVOCATION_CACHE_MAX {
                    seen.clear();
                }
            }
            seen.insert(hash.clone(), now);
        }
        Ok(revoked)
    }

    /// Signs the meeting token of a join grant: `sub` the user (or `guest`), scope
    /// `meetings:join`, `mid`, `pid`, `name`; it lives [`MEETING_TOKEN_TTL`].
    pub async fn issue_meeting_token(
        &self,
        ticket: &MeetingTicket,
    ) -> Result<AccessToken, AuthError> {
        self.sign_claims(MEETING_TOKEN_TTL, |claims| {
            claims.sub = match ticket.user_id {
                Some(user) => user.to_string(),
                None => GUEST_SUBJECT.to_owned(),
            };
            claims.scope = Scope::MeetingsJoin.as_str().to_owned();
            claims.mid = Some(ticket.meeting_id.to_string());
            claims.pid = Some(ticket.participant_id.to_string());
            claims.name = Some(ticket.display_name.to_string());
        })
        .await
    }

    /// Verifies a meeting token (what a `JoinRequest` carries) but for the blacklist:
    /// signed by a key we publish, unexpired, scope `meetings:join`, naming a meeting
    /// and a participant. The ticket and the token's hash, whose blacklist entry the
    /// caller checks in its own atomic step: a join does ([`crate::Repo::join_meeting`]),
    /// so that a logout cannot fall between the check and the join, and the join makes
    /// no round trip of its own for it. The meeting controller then checks that the
    /// meeting and the participant are the ones its one-time connection token grants.
    pub async fn meeting_ticket(
        &self,
        token: &str,
    ) -> Result<(MeetingTicket, TokenHash), AuthError> {
        let unverified = jwt::split(token).map_err(AuthError::Token)?;
        let claims = self.verified_claims(unverified).await?.claims;
        let malformed = || AuthError::Token(TokenError::Malformed);
        let (Some(mid), Some(pid), Some(name)) = (&claims.mid, &claims.pid, &claims.name) else {
            return Err(AuthError::Token(TokenError::NotAMeetingToken));
        };
        if !Scopes::lenient(claims.scope.split(' ')).contains(Scope::MeetingsJoin) {
            return Err(AuthError::MissingScope(Scope::MeetingsJoin));
        }
        let token_hash =
            TokenHash::parse(&sha256_hex(token.as_bytes())).map_err(|_| malformed())?;
        let ticket = MeetingTicket {
            meeting_id: MeetingId::parse(mid).map_err(|_| malformed())?,
            participant_id: ParticipantId::parse(pid).map_err(|_| malformed())?,
            user_id: match claims.sub.as_str() {
                GUEST_SUBJECT => None,
                sub => Some(UserId::parse(sub).map_err(|_| malformed())?),
            },
            display_name: DisplayName::stored(name).map_err(|_| malformed())?,
        };
        Ok((ticket, token_hash))
    }

    /// Authenticates a bearer credential: an API key (`tmk_...`) or an access token.
    /// A key's use is recorded in `last_used_at`.
    pub async fn authenticate(&self, bearer: &str) -> Result<Authenticated, AuthError> {
        if !ApiKeySecret::looks_like(bearer) {
            return self.verify_token(bearer).await;
        }
        let key = ApiKeySecret::parse(bearer).ok_or(AuthError::BadApiKey)?;
        let now = self.now();
        let stored = self
            .repo()
            .api_key_by_hash(&key.hash())
            .await?
            .filter(|k| k.usable(now))
            .ok_or(AuthError::BadApiKey)?;
        self.repo().touch_api_key(stored.key_id, now).await?;
        Ok(Authenticated {
            user_id: stored.user_id,
            scopes: stored.scopes,
            via: Via::ApiKey {
                key_id: stored.key_id,
            },
        })
    }

    // -----------------------------------------------------------------------------------
    // Accounts

    /// Counts one `what` (a registration, a login started) from the client's address at
    /// `limit`: refused, and logged, past it. A client without an address is not
    /// counted.
    pub(crate) async fn per_address(
        &self,
        limit: &Limit,
        client: &ClientInfo,
        what: &'static str,
    ) -> Result<(), AuthError> {
        let Some(ip) = client.ip else {
            return Ok(());
        };
        let who = identifier("ip", &ip.to_string())?;
        if let Err(retry) = self.limiter().hit(limit, &who, self.now()).await? {
            tracing::warn!(
                retry_after = retry.seconds(),
                what,
                "refused: too many from one address"
            );
            return Err(AuthError::RateLimited(retry));
        }
        Ok(())
    }

    /// Creates an account and signs its first access token.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        display_name: &str,
        client: &ClientInfo,
    ) -> Result<(UserId, AccessToken), AuthError> {
        // Counted before any hashing: argon2id is the expensive part.
        self.per_address(
            &self.inner.config.registrations_by_address(),
            client,
            "registration",
        )
        .await?;
        let email = Email::parse(email)
            .map_err(|e| AuthError::bad_field("email", "bad_email", e.to_string()))?;
        if oauth::is_stand_in(&email) {
            return Err(AuthError::bad_field(
                "email",
                "bad_email",
                "bad email: the .invalid domain is reserved",
            ));
        }
        let password = Password::new_for(password, &email).map_err(|e| {
            let code = match e {
                CredentialError::PasswordTooLong => "password_too_long",
                _ => "weak_password",
            };
            AuthError::bad_field("password", code, e.to_string())
        })?;
        let display_name = DisplayName::parse(display_name).map_err(|e| {
            AuthError::bad_field(
                "display_name",
                "bad_display_name",
                format!("bad display name: {}", e.reason),
            )
        })?;
        let hash = tokio::task::spawn_blocking(move || password::hash_password(&password))
            .await
            .map_err(|_| AuthError::Crypto(CryptoError::NoRandomness))??;
        let Some(user) = self
            .repo()
            .create_user(&email, &display_name, &hash)
            .await?
        else {
            self.audit_user(
                "user_registered",
                "register",
                None,
                AuditResult::Failure,
                Some("email taken"),
                client,
                email.as_str(),
            )
            .await;
            return Err(AuthError::EmailTaken);
        };
        tracing::info!(user = %user, "registered a meetings account");
        self.audit_user(
            "user_registered",
            "register",
            Some(user),
            AuditResult::Success,
            None,
            client,
            email.as_str(),
        )
        .await;
        let token = self.issue(user, &Scopes::all()).await?;
        Ok((user, token))
    }

    /// Checks an email and password; signs an access token. Wrong credentials are one
    /// answer whichever part was wrong (an unknown email costs a decoy hash check, so
    /// it takes as long). Failures count against the email and the client address;
    /// at the limit the answer is [`AuthError::RateLimited`] before anything is checked.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<AccessToken, AuthError> {
        let now = self.now();
        let config = self.inner.config;
        let mut limits = vec![(
            config.failed_logins_by_email(),
            identifier("email", &email.trim().to_lowercase())?,
        )];
        if let Some(ip) = client.ip {
            limits.push((
                config.failed_logins_by_address(),
                identifier("ip", &ip.to_string())?,
            ));
        }
        // Each attempt is counted as a failure before its password is checked, so that
        // attempts in flight at once see each other (argon2 takes a while), and taken
        // back when it succeeds or cannot be judged.
        let mut wait: Option<RetryAfter> = None;
        let mut held = Vec::with_capacity(limits.len());
        for (limit, who) in &limits {
            match self.limiter().reserve(limit, who, now).await? {
                Ok(reservation) => held.push(reservation),
                Err(retry) => wait = Some(wait.map_or(retry, |w| w.max(retry))),
            }
        }
        if let Some(retry) = wait {
            self.release_all(held).await?;
            tracing::warn!(
                retry_after = retry.seconds(),
                "login refused: too many failed attempts"
            );
            return Err(AuthError::RateLimited(retry));
        }

        let parsed = Email::parse(email).ok();
        let record = match &parsed {
            Some(email) => match self.repo().login_record(email).await {
                Ok(record) => record,
                Err(e) => {
                    self.release_all(held).await?;
                    return Err(e.into());
                }
            },
            None => None,
        };
        let stored = record
            .as_ref()
            .filter(|r| r.is_active)
            .and_then(|r| r.password_hash.clone());
        let presented = Password::presented(password);
        let matches = tokio::task::spawn_blocking(move || {
            let hash = stored.as_deref().unwrap_or(password::decoy_hash());
            let ok = presented
                .as_ref()
                .is_some_and(|p| password::verify_password(p, hash));
            ok && stored.is_some()
        })
        .await
        .unwrap_or(false);

        let audit_email = email.trim().to_lowercase();
        let user = record.as_ref().map(|r| r.user_id);
        match (matches, user) {
            (true, Some(user)) => {
                self.release_all(held).await?;
                self.repo().record_login(user, now).await?;
                self.audit_user(
                    "user_login",
                    "login",
                    Some(user),
                    AuditResult::Success,
                    None,
                    client,
                    &audit_email,
                )
                .await;
                tracing::info!(user = %user, "meetings login");
                self.issue(user, &Scopes::all()).await
            }
            _ => {
                // The reservations are kept: this failure counts.
                drop(held);
                self.audit_user(
                    "user_login",
                    "login",
                    user,
                    AuditResult::Failure,
                    Some("invalid credentials"),
                    client,
                    &audit_email,
                )
                .await;
                tracing::info!(known_account = user.is_some(), "meetings login refused");
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    /// Takes back login attempts counted ahead ([`RateLimiter::reserve`]).
    async fn release_all(&self, held: Vec<Reservation>) -> Result<(), AuthError> {
        for reservation in held {
            self.limiter().release(reservation).await?;
        }
        Ok(())
    }

    /// Blacklists the access token of `who` until it expires.
    pub async fn logout(&self, who: &Authenticated, client: &ClientInfo) -> Result<(), AuthError> {
        let Via::Jwt {
            token_hash,
            expires_at,
            ..
        } = &who.via
        else {
            return Err(AuthError::UserTokenRequired);
        };
        self.repo()
            .blacklist_token(token_hash, "logout", *expires_at)
            .await?;
        self.inner.unrevoked.forget(token_hash);
        self.audit(AuditEntry {
            event_type: "user_logout".to_owned(),
            actor_user_id: Some(who.user_id),
            actor_type: ActorType::User,
            target_type: Some("user".to_owned()),
            target_id: Some(who.user_id.to_string()),
            action: "logout".to_owned(),
            result: AuditResult::Success,
            error_message: None,
            ip_address: client.ip,
            user_agent: client.user_agent.clone(),
            metadata: None,
        })
        .await;
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // API keys

    /// Creates an API key for the user `who` acts for (with a user's token only).
    pub async fn create_api_key(
        &self,
        who: &Authenticated,
        name: &str,
        scopes: &[String],
        expires_at: Option<DateTime<Utc>>,
        client: &ClientInfo,
    ) -> Result<CreatedApiKey, AuthError> {
        who.require_user_token()?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(AuthError::bad_field(
                "name",
                "bad_name",
                "name: the key's name must be 1 to 255 characters",
            ));
        }
        if let Some(problem) = crate::domain::shown_name_problem(name) {
            return Err(AuthError::bad_field(
                "name",
                "bad_name",
                format!("name: {problem}"),
            ));
        }
        let scopes = Scopes::parse_list(scopes.iter().map(String::as_str))
            .map_err(|e| AuthError::bad_field("scopes", "bad_scopes", e))?;
        if let Some(at) = expires_at
            && at <= self.now()
        {
            return Err(AuthError::bad_field(
                "expires_at",
                "bad_expiry",
                "expires_at must be in the future",
            ));
        }
        let key = ApiKeySecret::generate()?;
        let key_prefix = key.prefix();
        let key_id = self
            .repo()
            .create_api_key(&NewApiKey {
                user_id: who.user_id,
                key_hash: key.hash(),
                key_prefix: key_prefix.clone(),
                name: name.to_owned(),
                scopes: scopes.clone(),
                expires_at,
            })
            .await?;
        tracing::info!(key = %key_id, prefix = %key_prefix, user = %who.user_id, "created an API key");
        self.audit_api_key(
            who,
            "api_key_created",
            "create",
            key_id,
            client,
            Some(&scopes),
        )
        .await;
        Ok(CreatedApiKey {
            key_id,
            key,
            key_prefix,
            scopes,
            expires_at,
        })
    }

    /// Revokes one of the user's API keys (with a user's token only).
    pub async fn revoke_api_key(
        &self,
        who: &Authenticated,
        key_id: ApiKeyId,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        who.require_user_token()?;
        if !self.repo().revoke_api_key(key_id, who.user_id).await? {
            return Err(AuthError::NoSuchApiKey);
        }
        tracing::info!(key = %key_id, user = %who.user_id, "revoked an API key");
        self.audit_api_key(who, "api_key_revoked", "revoke", key_id, client, None)
            .await;
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Audit

    /// Appends an audit row; a failure to write it is logged, never the caller's
    /// failure (the action itself happened).
    async fn audit(&self, entry: AuditEntry) {
        if let Err(error) = self.repo().audit(&entry).await {
            tracing::error!(event = %entry.event_type, %error, "could not write an audit row");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn audit_user(
        &self,
        event: &str,
        action: &str,
        user: Option<UserId>,
        result: AuditResult,
        error: Option<&str>,
        client: &ClientInfo,
        email: &str,
    ) {
        self.audit(AuditEntry {
            event_type: event.to_owned(),
            actor_user_id: user,
            actor_type: ActorType::User,
            target_type: Some("user".to_owned()),
            target_id: user.map(|u| u.to_string()),
            action: action.to_owned(),
            result,
            error_message: error.map(str::to_owned),
            ip_address: client.ip,
            user_agent: client.user_agent.clone(),
            metadata: Some(serde_json::json!({ "email": email })),
        })
        .await;
    }

    async fn audit_api_key(
        &self,
        who: &Authenticated,
        event: &str,
        action: &str,
        key: ApiKeyId,
        client: &ClientInfo,
        scopes: Option<&Scopes>,
    ) {
        self.audit(AuditEntry {
            event_type: event.to_owned(),
            actor_user_id: Some(who.user_id),
            actor_type: ActorType::User,
            target_type: Some("api_key".to_owned()),
            target_id: Some(key.to_string()),
            action: action.to_owned(),
            result: AuditResult::Success,
            error_message: None,
            ip_address: client.ip,
            user_agent: client.user_agent.clone(),
            metadata: scopes.map(|s| serde_json::json!({ "scopes": s.to_vec() })),
        })
        .await;
    }

    async fn audit_system(&self, event: &str, action: &str, target: &str) {
        self.audit(AuditEntry {
            event_type: event.to_owned(),
            actor_user_id: None,
            actor_type: ActorType::System,
            target_type: Some("signing_key".to_owned()),
            target_id: Some(target.to_owned()),
            action: action.to_owned(),
            result: AuditResult::Success,
            error_message: None,
            ip_address: None,
            user_agent: None,
            metadata: None,
        })
        .await;
    }
}

/// The task [`Auth::hear_revocations`] starts: until `stop`, subscribes to
/// [`crate::schema::REVOCATIONS_CHANNEL`] (again, with [`feature::backoff::retry`],
/// whenever it is lost) and forgets each hash it hears as "not revoked".
async fn hear(repo: Repo, unrevoked: Arc<Unrevoked>, stop: tokio_util::sync::CancellationToken) {
    loop {
        let subscribed = feature::backoff::retry(
            &stop,
            || repo.revocations(),
            |attempt, error: &MeetingsError| {
                if attempt == 1 {
                    tracing::warn!(%error, "cannot hear token revocations; every token is checked in Redis meanwhile");
                } else {
                    tracing::debug!(%error, attempt, "still cannot hear token revocations");
                }
            },
        )
        .await;
        let Some((mut subscription, _)) = subscribed else {
            return;
        };
        unrevoked.listening.store(true, Ordering::Release);
        tracing::debug!("hearing token revocations");
        loop {
            let heard = tokio::select! {
                () = stop.cancelled() => return,
                heard = subscription.next() => heard,
            };
            let Some(payload) = heard else { break };
            match std::str::from_utf8(&payload)
                .ok()
                .and_then(|text| TokenHash::parse(text).ok())
            {
                Some(hash) => unrevoked.forget(&hash),
                None => {
                    tracing::warn!(
                        bytes = payload.len(),
                        "an unreadable token revocation was heard; forgetting every token checked"
                    );
                    unrevoked.forget_all();
                }
            }
        }
        unrevoked.listening.store(false, Ordering::Release);
        unrevoked.forget_all();
        tracing::warn!(
            "lost the token revocations channel; every token is checked in Redis until it is heard again"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A token signed by our own key that names a meeting, a participant and a name but
    /// lacks `meetings:join` is refused for the scope alone: nothing else is wrong
    /// with it (the same token with the scope is accepted).
    #[tokio::test]
    async fn a_signed_token_naming_a_meeting_without_the_join_scope_is_refused_for_it() {
        let world = testkit::World::with_postgres().await;
        world.postgres.migrate(&crate::MIGRATIONS).await.unwrap();
        let auth = crate::auth(&world.ctx, &crate::MeetingsConfig::default());
        auth.rotate_keys().await.unwrap();
        let (meeting, participant) = (MeetingId::random(), ParticipantId::random());
        let token = |scope: Scope| {
            let auth = auth.clone();
            async move {
                auth.sign_claims(MEETING_TOKEN_TTL, |claims| {
                    claims.sub = GUEST_SUBJECT.to_owned();
                    claims.scope = scope.as_str().to_owned();
                    claims.mid = Some(meeting.to_string());
                    claims.pid = Some(participant.to_string());
                    claims.name = Some("Alice".to_owned());
                })
                .await
                .unwrap()
            }
        };

        let read_only = token(Scope::MeetingsRead).await;
        let refused = auth
            .meeting_ticket(read_only.token.expose_str())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, AuthError::MissingScope(Scope::MeetingsJoin)),
            "{refused:?}"
        );
        let joining = token(Scope::MeetingsJoin).await;
        let (ticket, _) = auth
            .meeting_ticket(joining.token.expose_str())
            .await
            .unwrap();
        assert_eq!(
            (ticket.meeting_id, ticket.participant_id),
            (meeting, participant)
        );
    }
}
