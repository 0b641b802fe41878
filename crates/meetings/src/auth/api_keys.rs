//! API keys: `tmk_` followed by 43 characters of base64url (32 random bytes). The key
//! is shown once, at creation; the stores keep its SHA-256 (`api_keys.key_hash`) and
//! its first 12 characters (`api_keys.key_prefix`, `tmk_` and 8 more) so a person can
//! tell their keys apart.

use base::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use super::crypto::{CryptoError, random_bytes, sha256_hex};

/// A whole API key, a bearer [`Secret`]: `Debug` is redacted, there is no `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeySecret(Secret);

impl ApiKeySecret {
    /// What every key starts with (and what tells a key from a JWT in a bearer header).
    pub const PREFIX: &'static str = "tmk_";
    const BODY_LEN: usize = 43;
    /// Characters kept as `key_prefix`.
    pub const SHOWN: usize = 12;

    pub fn generate() -> Result<ApiKeySecret, CryptoError> {
        Ok(ApiKeySecret(Secret::new(format!(
            "{}{}",
            Self::PREFIX,
            B64URL.encode(random_bytes::<32>()?)
        ))))
    }

    /// Reads a presented key; `None` for anything that is not shaped like one.
    pub fn parse(s: &str) -> Option<ApiKeySecret> {
        let body = s.strip_prefix(Self::PREFIX)?;
        let ok = body.len() == Self::BODY_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| ApiKeySecret(Secret::from(s)))
    }

    /// Whether a bearer credential claims to be an API key (rather than a JWT).
    pub fn looks_like(s: &str) -> bool {
        s.starts_with(Self::PREFIX)
    }

    /// `api_keys.key_hash`.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.expose_str().as_bytes())
    }

    /// `api_keys.key_prefix`.
    pub fn prefix(&self) -> String {
        self.0.expose_str().chars().take(Self::SHOWN).collect()
    }

    /// The key, for the one answer that shows it. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_str()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn keys_have_a_prefix_a_hash_and_hide_from_debug() {
        let key = ApiKeySecret::generate().unwrap();
        assert_eq!(key.expose().len(), 47);
        assert!(ApiKeySecret::looks_like(key.expose()));
        assert_eq!(ApiKeySecret::parse(key.expose()), Some(key.clone()));
        assert_eq!(key.prefix().len(), 12);
        assert!(key.expose().starts_with(&key.prefix()));
        assert_eq!(key.hash().len(), 64);
        assert!(!format!("{key:?}").contains(key.expose()));
        assert_eq!(format!("{key:?}"), "ApiKeySecret(Secret([redacted]))");
        assert_ne!(ApiKeySecret::generate().unwrap(), key);
        assert!(ApiKeySecret::parse("tmk_short").is_none());
        assert!(ApiKeySecret::parse("eyJhbGciOi.x.y").is_none());
    }
}

base::key_id! {
    /// `api_keys.key_id`.
    pub struct ApiKeyId(Uuid) { what: "API key id" }
}
