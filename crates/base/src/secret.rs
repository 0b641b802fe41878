//! [`Secret`]: a value that must never reach a log.

use std::fmt;

/// A value that must never reach a log: a token, a client secret, a session id, a
/// one-time linking id, an OAuth `state`.
///
/// - `Debug` prints `Secret([redacted])`, so a `tracing` field, a `{:?}` of a config
///   or an error never shows it; there is no `Display`.
/// - [`Secret::expose`] gives the value to the one place that sends or stores it.
/// - Serde reads and writes the bare value (a session document in Redis carries its
///   tokens): serialising a secret is storing it, so do it only into storage.
/// - [`Secret::matches`] compares in constant time, for tokens a client presents.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub const fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value, for the request that sends it or the write that stores it. Never log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The value, consumed.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl Secret<String> {
    /// The text, for the request that sends it or the write that stores it.
    pub fn expose_str(&self) -> &str {
        &self.0
    }

    /// True when `presented` equals the secret, compared in time that depends only on
    /// the lengths (a client guessing a CSRF token learns nothing from timing).
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Secret<String> {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Secret<String> {
        Secret(value.to_owned())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<T: serde::Serialize> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            token: Secret,
        }
        let shown = format!("{:?}", Config { token: secret });
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn expose_and_matches_give_the_value() {
        let secret = Secret::from("abc");
        assert_eq!(secret.expose_str(), "abc");
        assert!(secret.matches("abc"));
        assert!(!secret.matches("abd"));
        assert!(!secret.matches("ab"));
        assert!(!secret.matches(""));
    }

    #[test]
    fn serde_stores_the_bare_value() {
        let secret = Secret::from("t0k3n");
        let json = serde_json::to_string(&secret).expect("serialise");
        assert_eq!(json, "\"t0k3n\"");
        let back: Secret = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, secret);
    }
}
