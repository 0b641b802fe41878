//! API tokens: what a program (not a browser) shows to call Tavern's API.
//!
//! An admin issues one with `tavern tokens create NAME --scopes rolls:read,rolls:write`
//! and revokes it with `tavern tokens revoke NAME`. A token is `tavern_` followed by 64
//! lowercase hex characters (256 bits from the OS-seeded CSPRNG); it is shown once, at
//! creation, and sent as `Authorization: Bearer <token>`.
//!
//! Choices, and why:
//! - **Stored as its SHA-256, not with a password hash.** A slow, salted hash (argon2)
//!   protects secrets people choose, which are guessable; a token is 256 random bits, so
//!   nobody can find one from its SHA-256 by guessing, fast hash or not. The fast hash
//!   lets every request find its token with one lookup keyed by the hash, and a copy of
//!   Redis (a backup, a replica) holds nothing that can be presented as a token.
//! - **Two hashes, one hash slot.** `tavern:{api_tokens}:by_hash` maps the SHA-256 (hex)
//!   to the token's record (name, scopes, creation time; JSON) and
//!   `tavern:{api_tokens}:by_name` maps the name to the SHA-256. The `{api_tokens}` hash
//!   tag keeps both in one cluster slot, so creating and revoking are single atomic
//!   steps (a name is never half issued) on a Redis Cluster as on one server.
//! - **Names and scopes are checked** ([`TokenName`], [`Scope`]): a name is what the
//!   admin revokes by, so it is short and printable; a scope is `area:action`.

use std::fmt;

use base::Secret;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::{Condition, Conditional, Redis, Writes, redis};

/// The hash from a token's SHA-256 (hex) to its record.
pub const BY_HASH_KEY: &str = "tavern:{api_tokens}:by_hash";
/// The hash from a token's name to its SHA-256 (hex).
pub const BY_NAME_KEY: &str = "tavern:{api_tokens}:by_name";
/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "tavern_";

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("an API token named `{0}` already exists; revoke it first or pick another name")]
    Exists(String),
    #[error("a token needs at least one scope (e.g. --scopes rolls:read)")]
    NoScopes,
    #[error("token store: {0}")]
    Store(#[from] store::StoreError),
    #[error("token store: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("token record of `{name}` is not valid JSON: {source}")]
    Corrupt {
        name: String,
        source: serde_json::Error,
    },
}

/// What a name or scope was refused for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{raw}` is not a valid {what}: {rule}")]
pub struct InvalidName {
    pub raw: String,
    pub what: &'static str,
    pub rule: &'static str,
}

/// A token's name: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenName(String);

impl TokenName {
    pub fn parse(raw: &str) -> Result<TokenName, InvalidName> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(TokenName(raw.to_owned()))
        } else {
            Err(InvalidName {
                raw: raw.to_owned(),
                what: "token name",
                rule: "use 1 to 64 letters, digits, `.`, `_` or `-`",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenName {
    type Error = InvalidName;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        TokenName::parse(&raw)
    }
}

impl From<TokenName> for String {
    fn from(name: TokenName) -> String {
        name.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a token may do: `area:action` (`rolls:read`), each part lowercase letters,
/// digits, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    pub fn parse(raw: &str) -> Result<Scope, InvalidName> {
        let part = |p: &str| {
            !p.is_empty()
                && p.len() <= 32
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-')
                })
        };
        match raw.split_once(':') {
            Some((area, action)) if part(area) && part(action) => Ok(Scope(raw.to_owned())),
            _ => Err(InvalidName {
                raw: raw.to_owned(),
                what: "scope",
                rule: "write `area:action` in lowercase, e.g. `rolls:read`",
            }),
        }
    }

    /// A comma-separated list (`rolls:read,rolls:write`), without duplicates.
    pub fn parse_list(raw: &str) -> Result<Vec<Scope>, InvalidName> {
        let mut scopes = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        scopes.sort();
        scopes.dedup();
        Ok(scopes)
    }

    /// A scope written in the code that is not well formed: kept for the manifest to
    /// show, never held by a token (tokens hold parsed scopes only).
    pub(crate) fn unchecked(raw: &'static str) -> Scope {
        Scope(raw.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Scope {
    type Error = InvalidName;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Scope::parse(&raw)
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> String {
        scope.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An issued token as stored (everything but the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: TokenName,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
}

impl TokenInfo {
    pub fn allows(&self, scope: &Scope) -> bool {
        self.scopes.contains(scope)
    }
}

/// A token just issued: the only moment its value is known.
#[derive(Debug)]
pub struct NewToken {
    pub info: TokenInfo,
    /// `tavern_` + 64 hex. Redacted in `Debug`; show it once, to the admin.
    pub token: Secret,
}

/// The SHA-256 of `token`, as lowercase hex: what Redis keeps.
fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `raw` has the shape of a token Tavern issues (one that is not is refused without
/// asking Redis).
pub(crate) fn well_formed(raw: &str) -> bool {
    raw.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The token store, over Tavern's Redis. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiTokens {
    redis: Redis,
}

impl ApiTokens {
    pub fn new(redis: Redis) -> ApiTokens {
        ApiTokens { redis }
    }

    /// Issues a token named `name` with `scopes`; refused when the name is taken.
    pub async fn create(
        &self,
        name: &TokenName,
        scopes: Vec<Scope>,
        now: DateTime<Utc>,
    ) -> Result<NewToken, TokenError> {
        if scopes.is_empty() {
            return Err(TokenError::NoScopes);
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let token = Secret::from(format!("{TOKEN_PREFIX}{hex}"));
        let info = TokenInfo {
            name: name.clone(),
            scopes,
            created_at: now,
        };
        let record = serde_json::to_string(&info).map_err(|source| TokenError::Corrupt {
            name: name.to_string(),
            source,
        })?;
        let hash = digest(token.expose_str());
        let mut writes = Writes::new();
        writes
            .hset(BY_NAME_KEY, name.as_str(), &hash)
            .hset(BY_HASH_KEY, &hash, record);
        let guard = [Condition::hash_field::<&str>(
            BY_NAME_KEY,
            name.as_str(),
            None,
        )];
        match self.redis.apply_when(&guard, &writes).await? {
            Conditional::Applied(_) => Ok(NewToken { info, token }),
            Conditional::Refused(_) => Err(TokenError::Exists(name.to_string())),
        }
    }

    /// Revokes the token named `name`: from now on it is refused. `false` when there
    /// is no such token.
    pub async fn revoke(&self, name: &TokenName) -> Result<bool, TokenError> {
        loop {
            let hash: Option<String> = redis::cmd("HGET")
                .arg(BY_NAME_KEY)
                .arg(name.as_str())
                .query_async(&mut self.redis.conn())
                .await?;
            let Some(hash) = hash else {
                return Ok(false);
            };
            let mut writes = Writes::new();
            writes.command("HDEL").arg(BY_NAME_KEY).arg(name.as_str());
            writes.command("HDEL").arg(BY_HASH_KEY).arg(&hash);
            let guard = [Condition::hash_field(
                BY_NAME_KEY,
                name.as_str(),
                Some(&hash),
            )];
            // Refused only when the name was revoked and issued again in between:
            // revoke what it names now.
            if self.redis.apply_when(&guard, &writes).await?.applied() {
                return Ok(true);
            }
        }
    }

    /// Every issued token, by name.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let records: Vec<String> = redis::cmd("HVALS")
            .arg(BY_HASH_KEY)
            .query_async(&mut self.redis.conn())
            .await?;
        let mut tokens = records
            .iter()
            .map(|raw| {
                serde_json::from_str::<TokenInfo>(raw).map_err(|source| TokenError::Corrupt {
                    name: "?".to_owned(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        tokens.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tokens)
    }

    /// The token `presented` is, if Tavern issued it and it is not revoked. Anything
    /// not shaped like a token is refused without a Redis round trip.
    pub async fn verify(&self, presented: &str) -> Result<Option<TokenInfo>, TokenError> {
        if !well_formed(presented) {
            return Ok(None);
        }
        let record: Option<String> = self
            .redis
            .query_retrying(redis::cmd("HGET").arg(BY_HASH_KEY).arg(digest(presented)))
            .await?;
        record
            .map(|raw| {
                serde_json::from_str(&raw).map_err(|source| TokenError::Corrupt {
                    name: "?".to_owned(),
                    source,
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scopes_are_checked() {
        assert!(TokenName::parse("ci-bot.2").is_ok());
        assert!(TokenName::parse("").is_err());
        assert!(TokenName::parse("has space").is_err());
        assert!(TokenName::parse(&"x".repeat(65)).is_err());
        assert_eq!(
            Scope::parse_list("rolls:write, rolls:read,rolls:read").unwrap(),
            vec![
                Scope::parse("rolls:read").unwrap(),
                Scope::parse("rolls:write").unwrap()
            ]
        );
        for bad in [
            "rolls",
            "Rolls:read",
            "rolls:",
            ":read",
            "rolls:read:x",
            "a b:c",
        ] {
            let e = Scope::parse(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn only_our_shape_is_looked_up() {
        let hex = "ab".repeat(32);
        assert!(well_formed(&format!("tavern_{hex}")));
        assert!(!well_formed(&hex));
        assert!(!well_formed(&format!("tavern_{}", &hex[1..])));
        assert!(!well_formed(&format!("tavern_{}", hex.to_uppercase())));
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
