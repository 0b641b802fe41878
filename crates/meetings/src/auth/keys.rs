//! Signing keys and their rotation. The rules are pure (time comes in as an argument):
//!
//! - the newest key signs; a new one is made once the newest is `rotate_every` old;
//! - an older key stops signing when its successor appears, and stays published (and
//!   verifying) until every token it may have signed has expired: its successor's
//!   creation plus the token lifetime plus [`KEY_CACHE_FOR`] (a replica may sign with
//!   its cached key that long after another replica rotated);
//! - after that it is dropped from the JWKS and from storage.
//!
//! Key material is an Ed25519 pair kept as PKCS#8, sealed with the meetings secret key
//! before it is stored.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;

use super::crypto::{CryptoError, MeetingsSecretKey, random_bytes};
use super::jwt::{Kid, public_of};

/// How long a process uses the keys it read before reading them again (so a rotation by
/// another replica is seen within this time).
pub const KEY_CACHE_FOR: Duration = Duration::from_secs(60);

/// How often at most a process reads the keys again for tokens naming a `kid` it does
/// not know: the first such token after a read waits for the next one (until this long
/// after the last read), every other waits for that same read, so that tokens with
/// made-up `kid`s cost one read in this time however many come, while a key another
/// replica just made is still found.
pub const UNKNOWN_KEY_READ_EVERY: Duration = Duration::from_secs(2);

/// What the rules need to know of a stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: Kid,
    pub created_at: DateTime<Utc>,
}

/// The rotation schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A key signs this long before the next one replaces it.
    pub rotate_every: Duration,
    /// How long an access token lives (`exp - iat`).
    pub token_ttl: Duration,
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Rotation {
    /// Whether a new key is due at `now`: there is none, or the newest is old enough.
    pub fn due(&self, keys: &[KeyInfo], now: DateTime<Utc>) -> bool {
        newest(keys).is_none_or(|k| k.created_at + delta(self.rotate_every) <= now)
    }

    /// Until when `key` verifies tokens: `None` while it is the newest (it signs), else
    /// its successor's creation plus the token lifetime plus [`KEY_CACHE_FOR`].
    pub fn verifies_until(&self, keys: &[KeyInfo], key: &KeyInfo) -> Option<DateTime<Utc>> {
        let successor = keys
            .iter()
            .filter(|k| (k.created_at, &k.kid) > (key.created_at, &key.kid))
            .min_by_key(|k| (k.created_at, k.kid.clone()))?;
        Some(successor.created_at + delta(self.token_ttl) + delta(KEY_CACHE_FOR))
    }

    /// Whether a key this process cannot open (sealed under another secret) may be
    /// removed: once no schedule could still use it (signing `rotate_every`, then its
    /// tokens' lifetime, then [`KEY_CACHE_FOR`]). Until then a replica that holds its
    /// secret may still sign or verify with it.
    pub fn abandoned(&self, key: &KeyInfo, now: DateTime<Utc>) -> bool {
        key.created_at + delta(self.rotate_every) + delta(self.token_ttl) + delta(KEY_CACHE_FOR)
            <= now
    }

    /// Whether `key` is still published (and verifies) at `now`.
    pub fn published(&self, keys: &[KeyInfo], key: &KeyInfo, now: DateTime<Utc>) -> bool {
        self.verifies_until(keys, key)
            .is_none_or(|until| now < until)
    }
}

/// The key that signs: the newest (ties broken by `kid`, so every replica agrees).
pub fn newest(keys: &[KeyInfo]) -> Option<&KeyInfo> {
    keys.iter().max_by_key(|k| (k.created_at, k.kid.clone()))
}

/// A key pair in memory, with its public half and identity.
#[derive(Debug)]
pub struct LoadedKey {
    pub info: KeyInfo,
    pub pair: Ed25519KeyPair,
    pub public: Vec<u8>,
}

/// A new key as it is stored: identity, public half and the sealed PKCS#8 document.
#[derive(Debug, Clone)]
pub struct SealedKey {
    pub info: KeyInfo,
    pub public: Vec<u8>,
    pub sealed_private: Vec<u8>,
}

/// The associated data binding a sealed private key to its `kid`.
pub fn seal_context(kid: &Kid) -> String {
    format!("meetings:signing-key:{kid}")
}

/// Makes a fresh key created at `now`, sealed with `secret`.
pub fn generate(
    secret: &MeetingsSecretKey,
    now: DateTime<Utc>,
) -> Result<(SealedKey, LoadedKey), CryptoError> {
    let kid = Kid::from_bytes(&random_bytes::<16>()?);
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| CryptoError::NoRandomness)?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| CryptoError::NoRandomness)?;
    let public = public_of(&pair);
    let sealed_private = secret.seal(&seal_context(&kid), doc.as_ref())?;
    let info = KeyInfo {
        kid,
        created_at: now,
    };
    Ok((
        SealedKey {
            info: info.clone(),
            public: public.clone(),
            sealed_private,
        },
        LoadedKey { info, pair, public },
    ))
}

/// Opens a stored key with `secret`.
pub fn open(secret: &MeetingsSecretKey, stored: &SealedKey) -> Result<LoadedKey, CryptoError> {
    let doc = secret.open(&seal_context(&stored.info.kid), &stored.sealed_private)?;
    let pair = Ed25519KeyPair::from_pkcs8(&doc).map_err(|_| CryptoError::Unsealable)?;
    let public = public_of(&pair);
    if public != stored.public {
        return Err(CryptoError::Unsealable);
    }
    Ok(LoadedKey {
        info: stored.info.clone(),
        pair,
        public,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn key(name: &str, created: i64) -> KeyInfo {
        KeyInfo {
            kid: Kid::parse(name).unwrap(),
            created_at: at(created),
        }
    }

    const ROTATION: Rotation = Rotation {
        rotate_every: Duration::from_secs(1000),
        token_ttl: Duration::from_secs(100),
    };

    #[test]
    fn a_key_is_due_when_there_is_none_or_the_newest_is_old_enough() {
        assert!(ROTATION.due(&[], at(0)));
        let keys = [key("a", 0), key("b", 500)];
        assert!(!ROTATION.due(&keys, at(1499)));
        assert!(ROTATION.due(&keys, at(1500)));
        assert_eq!(newest(&keys).unwrap().kid.as_str(), "b");
    }

    #[test]
    fn an_old_key_is_published_until_its_last_tokens_expire() {
        let keys = [key("a", 0), key("b", 1000)];
        let until = 1000 + 100 + KEY_CACHE_FOR.as_secs() as i64;
        assert_eq!(ROTATION.verifies_until(&keys, &keys[0]), Some(at(until)));
        assert!(ROTATION.published(&keys, &keys[0], at(until - 1)));
        assert!(!ROTATION.published(&keys, &keys[0], at(until)));
        assert_eq!(ROTATION.verifies_until(&keys, &keys[1]), None);
        assert!(ROTATION.published(&keys, &keys[1], at(i64::from(u32::MAX))));
    }

    #[test]
    fn a_key_nobody_here_can_open_goes_once_no_schedule_could_use_it() {
        let k = key("foreign", 0);
        let end = 1000 + 100 + KEY_CACHE_FOR.as_secs() as i64;
        assert!(!ROTATION.abandoned(&k, at(end - 1)));
        assert!(ROTATION.abandoned(&k, at(end)));
    }

    #[test]
    fn a_sealed_key_opens_only_with_the_secret_it_was_sealed_with() {
        let secret = MeetingsSecretKey::generate().unwrap();
        let (sealed, loaded) = generate(&secret, at(5)).unwrap();
        let opened = open(&secret, &sealed).unwrap();
        assert_eq!(opened.public, loaded.public);
        assert_eq!(opened.info, loaded.info);
        let other = MeetingsSecretKey::generate().unwrap();
        assert!(open(&other, &sealed).is_err());
        let mut moved = sealed.clone();
        moved.info.kid = Kid::parse("elsewhere").unwrap();
        assert!(open(&secret, &moved).is_err(), "bound to its kid");
    }
}
