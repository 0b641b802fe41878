//! Secrets at rest: AES-256-GCM under the configured `meetings_secret_key`, and the
//! SHA-256 digests the stores keep instead of bearer secrets.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)`, with a fresh
//! random nonce each time. Each use passes its own associated data (say `signing-key:
//! {kid}` or `oauth:discord:access`), so a ciphertext copied from one place to another
//! does not open there.

use base::Secret;
use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Why a secret key or a sealed value was refused. Never shows key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the meetings secret key must be 32 bytes in base64: {0}")]
    BadKey(&'static str),
    #[error("a sealed value does not open with this key (wrong key, or altered)")]
    Unsealable,
    #[error("no random bytes from the operating system")]
    NoRandomness,
}

/// `meetings_secret_key`: the 32-byte AES-256-GCM key that encrypts signing keys and
/// OAuth tokens at rest. A [`Secret`]: `Debug` is redacted; there is no `Display`.
#[derive(Debug, Clone)]
pub struct MeetingsSecretKey(Secret<[u8; 32]>);

impl MeetingsSecretKey {
    /// Reads the configured key: standard base64 (padding optional) of exactly 32 bytes.
    pub fn parse_base64(text: &str) -> Result<MeetingsSecretKey, CryptoError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CryptoError::BadKey("it is empty"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| CryptoError::BadKey("it is not base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::BadKey("it does not decode to 32 bytes"))?;
        Ok(MeetingsSecretKey(Secret::new(key)))
    }

    /// A fresh random key (the sandbox's, written once to its data dir).
    pub fn generate() -> Result<MeetingsSecretKey, CryptoError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| CryptoError::NoRandomness)?;
        Ok(MeetingsSecretKey(Secret::new(key)))
    }

    /// A random key from `rng` (give it a cryptographically secure one).
    pub fn random<R: rand::Rng + ?Sized>(rng: &mut R) -> MeetingsSecretKey {
        MeetingsSecretKey(Secret::new(rng.random()))
    }

    /// The key in standard base64, to write where it is kept (the sandbox's data dir).
    /// Never log it.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.expose())
    }

    fn aead(&self) -> Result<LessSafeKey, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, self.0.expose())
            .map_err(|_| CryptoError::BadKey("rejected"))?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Encrypts `plain` bound to `context` (the associated data).
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError::NoRandomness)?;
        let mut buffer = plain.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| CryptoError::Unsealable)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buffer.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// Decrypts what [`MeetingsSecretKey::seal`] made for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Unsealable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unsealable)?;
        let mut buffer = body.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| CryptoError::Unsealable)?;
        Ok(plain.to_vec())
    }
}

/// SHA-256 of `data`, in lowercase hex: what the stores keep of a JWT (the blacklist)
/// and of an API key (`api_keys.key_hash`). Both are high-entropy secrets, so a fast
/// digest is enough (a password would need argon2).
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::NoRandomness)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_key_and_context_they_were_sealed_with() {
        let key = MeetingsSecretKey::generate().unwrap();
        let sealed = key.seal("signing-key:a", b"private half").unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"private half"));
        assert_eq!(key.open("signing-key:a", &sealed).unwrap(), b"private half");
        assert_eq!(
            key.open("signing-key:b", &sealed),
            Err(CryptoError::Unsealable)
        );
        let other = MeetingsSecretKey::generate().unwrap();
        assert_eq!(
            other.open("signing-key:a", &sealed),
            Err(CryptoError::Unsealable)
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(key.open("signing-key:a", &altered).is_err());
        assert!(key.open("signing-key:a", &sealed[..10]).is_err());
    }

    #[test]
    fn the_configured_key_is_32_bytes_of_base64_and_never_shown() {
        let key = MeetingsSecretKey::generate().unwrap();
        let text = key.to_base64();
        let again = MeetingsSecretKey::parse_base64(&text).unwrap();
        assert_eq!(again.0, key.0);
        assert_eq!(format!("{key:?}"), "MeetingsSecretKey(Secret([redacted]))");
        assert!(MeetingsSecretKey::parse_base64(text.trim_end_matches('=')).is_ok());
        assert_eq!(
            MeetingsSecretKey::parse_base64("").unwrap_err(),
            CryptoError::BadKey("it is empty")
        );
        assert!(MeetingsSecretKey::parse_base64("not base64!").is_err());
        assert!(MeetingsSecretKey::parse_base64("AAAA").is_err());
        assert!(!format!("{key:?}").contains(&text));
    }

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
