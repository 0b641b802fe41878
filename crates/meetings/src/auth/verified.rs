//! The access tokens whose signature this process has checked, so that a client's
//! later requests with the same token are not checked again: an Ed25519 verification
//! is about a tenth of a millisecond on a small machine, most of what a token's check
//! costs once its "not revoked" is remembered too.
//!
//! An entry is keyed by the token's SHA-256 (the blacklist's key too), so only the
//! very bytes checked before are answered from here. It keeps the claims and the key
//! that signed them: the caller still checks the expiry against its clock and that the
//! key is still published, and the blacklist is asked as for any token.

use std::collections::HashMap;
use std::sync::Mutex;

use super::jwt::{Claims, Kid};
use crate::domain::TokenHash;

/// Tokens remembered at most; when full, the expired ones go, and if that is not
/// enough, all of them (each is then checked once more at its next use).
const VERIFIED_MAX: usize = 10_000;

/// Checked signatures, by token hash.
#[derive(Debug, Default)]
pub(super) struct Verified {
    seen: Mutex<HashMap<TokenHash, Signed>>,
}

/// What a checked token said, and which key signed it.
#[derive(Debug, Clone)]
pub(super) struct Signed {
    pub kid: Kid,
    pub claims: Claims,
}

impl Verified {
    /// The claims and key of the token with `hash`, if its signature was checked here.
    pub(super) fn get(&self, hash: &TokenHash) -> Option<Signed> {
        self.seen.lock().ok()?.get(hash).cloned()
    }

    /// Remembers that the token with `hash` was signed by `kid` and says `claims`;
    /// `now` (Unix seconds) decides which entries have expired when room is needed.
    pub(super) fn keep(&self, hash: TokenHash, signed: Signed, now: i64) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= VERIFIED_MAX && !seen.contains_key(&hash) {
            seen.retain(|_, s| s.claims.exp > now);
            if seen.len() >= VERIFIED_MAX {
                seen.clear();
            }
        }
        seen.insert(hash, signed);
    }

    /// Forgets the token with `hash` (it expired, or its key is no longer published).
    pub(super) fn forget(&self, hash: &TokenHash) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(hash);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn signed(exp: i64) -> Signed {
        Signed {
            kid: Kid::parse("k1").unwrap(),
            claims: Claims {
                sub: "u".to_owned(),
                exp,
                iat: 0,
                jti: "j".to_owned(),
                scope: String::new(),
                mid: None,
                pid: None,
                name: None,
            },
        }
    }

    fn hash(i: usize) -> TokenHash {
        TokenHash::parse(&format!("{i:064x}")).unwrap()
    }

    #[test]
    fn a_full_cache_drops_the_expired_first_then_everything() {
        let verified = Verified::default();
        // Half of them expire at 100, half at 1000.
        for i in 0..VERIFIED_MAX {
            let exp = if i % 2 == 0 { 100 } else { 1000 };
            verified.keep(hash(i), signed(exp), 50);
        }
        assert_eq!(verified.len(), VERIFIED_MAX);
        // At 500 the first half has expired: room is made by dropping it alone.
        verified.keep(hash(VERIFIED_MAX), signed(1000), 500);
        assert_eq!(verified.len(), VERIFIED_MAX / 2 + 1);
        assert!(verified.get(&hash(1)).is_some());
        assert!(verified.get(&hash(0)).is_none());

        // Full again with nothing expired: everything goes but the newcomer.
        let mut next = VERIFIED_MAX + 1;
        while verified.len() < VERIFIED_MAX {
            verified.keep(hash(next), signed(1000), 500);
            next += 1;
        }
        assert!(verified.get(&hash(1)).is_some());
        verified.keep(hash(next), signed(1000), 500);
        assert_eq!(verified.len(), 1);
        assert!(verified.get(&hash(1)).is_none());
        assert_eq!(verified.get(&hash(next)).unwrap().claims.exp, 1000);

        // Keeping it again replaces it; forgetting removes it.
        verified.keep(hash(next), signed(2000), 500);
        assert_eq!(verified.len(), 1);
        assert_eq!(verified.get(&hash(next)).unwrap().claims.exp, 2000);
        verified.forget(&hash(next));
        assert!(verified.get(&hash(next)).is_none());
    }
}
