//! Accounts' credentials: [`Email`] (parsed, lowercase), [`Password`] (the strength
//! rules, with the reason a weak one is refused) and their argon2id hashes.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base::Secret;

use super::crypto::{CryptoError, random_bytes};

/// A refused email or password, with the reason a person can act on. Never contains the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("bad email: {0}")]
    Email(&'static str),
    #[error("weak password: {0}")]
    WeakPassword(&'static str),
    /// Longer than [`Password::MAX_BYTES`]: refused before any rule or hashing.
    #[error("the password is too long: at most 1024 bytes")]
    PasswordTooLong,
}

/// `users.email` (`VARCHAR(255)`, unique): trimmed and lowercased, so `Alice@Example.org`
/// and `alice@example.org` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Result<Email, CredentialError> {
        let email = s.trim().to_lowercase();
        if email.is_empty() {
            return Err(CredentialError::Email("it is empty"));
        }
        if email.len() > Self::MAX_LEN {
            return Err(CredentialError::Email("longer than 255 characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(CredentialError::Email("it contains spaces"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(CredentialError::Email("it has no `@`"));
        };
        if local.is_empty() {
            return Err(CredentialError::Email("nothing before the `@`"));
        }
        if domain.contains('@') {
            return Err(CredentialError::Email("more than one `@`"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
            return Err(CredentialError::Email(
                "the part after the `@` must be a domain like example.org",
            ));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that passed the strength rules. A [`Secret`]: `Debug` is redacted, there
/// is no `Display`; it lives only until it is hashed or checked.
#[derive(Debug, Clone)]
pub struct Password(Secret);

impl Password {
    pub const MIN_CHARS: usize = 10;
    /// Bounds the hashing work a request can ask for.
    pub const MAX_BYTES: usize = 1024;

    /// A new password, held to the rules: at least 10 characters, at most 1024 bytes,
    /// not all one kind of character (only digits, only letters), not the email or its
    /// part before the `@`.
    pub fn new_for(s: &str, email: &Email) -> Result<Password, CredentialError> {
        if s.len() > Self::MAX_BYTES {
            return Err(CredentialError::PasswordTooLong);
        }
        if s.chars().count() < Self::MIN_CHARS {
            return Err(CredentialError::WeakPassword(
                "it must be at least 10 characters long",
            ));
        }
        if s.chars().all(|c| c.is_numeric()) {
            return Err(CredentialError::WeakPassword("it must not be only digits"));
        }
        if s.chars().all(char::is_alphabetic) {
            return Err(CredentialError::WeakPassword(
                "it must contain something other than letters (a digit, a space or a symbol)",
            ));
        }
        let first = s.chars().next();
        if s.chars().all(|c| Some(c) == first) {
            return Err(CredentialError::WeakPassword(
                "it must not repeat one character",
            ));
        }
        let lower = s.to_lowercase();
        let local = email.as_str().split('@').next().unwrap_or_default();
        if lower == email.as_str() || (local.len() >= 4 && lower.contains(local)) {
            return Err(CredentialError::WeakPassword(
                "it must not contain your email address",
            ));
        }
        Ok(Password(Secret::from(s)))
    }

    /// A password presented at login: no rules (an old password stays usable), only the
    /// size bound.
    pub fn presented(s: &str) -> Option<Password> {
        (s.len() <= Self::MAX_BYTES).then(|| Password(Secret::from(s)))
    }

    fn expose(&self) -> &[u8] {
        self.0.expose_str().as_bytes()
    }
}

/// argon2id with the crate's recommended parameters (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`, ~97 characters: fits
/// `users.password_hash VARCHAR(255)`). CPU-heavy: call it off the async workers.
pub fn hash_password(password: &Password) -> Result<String, CryptoError> {
    let salt_bytes = random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| CryptoError::NoRandomness)?;
    hasher()
        .hash_password(password.expose(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| CryptoError::NoRandomness)
}

/// Whether `password` matches the stored PHC string. A stored value that is not a PHC
/// string matches nothing. CPU-heavy: call it off the async workers.
pub fn verify_password(password: &Password, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    hasher().verify_password(password.expose(), &parsed).is_ok()
}

/// A hash of a password nobody has, verified when the email is unknown, so a login
/// with an unknown email costs the same time as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Ww2N4J7Q4l0a2fE5m0w1mZtLr8d4P6b6aGm4mYqUo2c"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn email() -> Email {
        Email::parse("alice@example.org").unwrap()
    }

    #[test]
    fn emails_are_lowercased_and_bad_ones_say_why() {
        assert_eq!(
            Email::parse("  Alice@Example.ORG ").unwrap().as_str(),
            "alice@example.org"
        );
        for (bad, why) in [
            ("", "it is empty"),
            ("alice", "it has no `@`"),
            ("@example.org", "nothing before the `@`"),
            ("a@b@example.org", "more than one `@`"),
            (
                "alice@localhost",
                "the part after the `@` must be a domain like example.org",
            ),
            (
                "alice@example..org",
                "the part after the `@` must be a domain like example.org",
            ),
            ("al ice@example.org", "it contains spaces"),
        ] {
            assert_eq!(
                Email::parse(bad),
                Err(CredentialError::Email(why)),
                "{bad:?}"
            );
        }
        assert!(Email::parse(&format!("{}@example.org", "a".repeat(250))).is_err());
    }

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        let e = email();
        assert!(Password::new_for("correct horse 7", &e).is_ok());
        for (bad, words) in [
            ("short1", "at least 10"),
            ("12345678901", "only digits"),
            ("onlyletterspassword", "other than letters"),
            ("!!!!!!!!!!!!", "repeat"),
            ("alice-1234567", "email"),
        ] {
            let err = Password::new_for(bad, &e).unwrap_err();
            assert!(err.to_string().contains(words), "{bad:?}: {err}");
            assert!(!err.to_string().contains(bad), "{err}");
        }
        assert!(Password::new_for(&"ab1".repeat(400), &e).is_err());
        assert!(
            !format!("{:?}", Password::new_for("correct horse 7", &e).unwrap()).contains("horse")
        );
        assert_eq!(
            format!("{:?}", Password::presented("correct horse 7").unwrap()),
            "Password(Secret([redacted]))"
        );
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify_only_the_password() {
        let password = Password::new_for("correct horse 7", &email()).unwrap();
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(hash.len() <= 255);
        assert_ne!(hash, hash_password(&password).unwrap(), "salted");
        assert!(verify_password(&password, &hash));
        assert!(!verify_password(
            &Password::presented("wrong horse 7").unwrap(),
            &hash
        ));
        assert!(!verify_password(&password, "not a hash"));
        assert!(!verify_password(&password, decoy_hash()));
        // The decoy is a real PHC string, so checking it costs a full hash.
        assert!(PasswordHash::new(decoy_hash()).is_ok());
    }
}
