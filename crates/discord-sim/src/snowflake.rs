//! Discord-style ids.
//!
//! A snowflake is `milliseconds since 2015-01-01 << 22 | low bits`. The sim keeps the
//! timestamp part real (so `before`/`after` paging and shard routing behave as on
//! Discord) and uses the low 22 bits as a counter, so two ids minted in the same
//! millisecond still sort in creation order.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds between the Unix epoch and Discord's epoch (2015-01-01T00:00:00Z).
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// A Discord id. Serialised as a decimal string, as Discord does, because JSON
/// numbers lose precision above 2^53 in many clients; accepts strings or numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Snowflake(u64);

impl Snowflake {
    /// Wraps a raw id.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw id.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch encoded in the id.
    pub const fn timestamp_ms(self) -> u64 {
        (self.0 >> 22) + DISCORD_EPOCH_MS
    }

    /// The shard a guild with this id belongs to, for `shard_count` shards.
    pub const fn shard(self, shard_count: u32) -> u32 {
        if shard_count == 0 {
            return 0;
        }
        ((self.0 >> 22) % shard_count as u64) as u32
    }

    /// ISO-8601 timestamp of the id's creation, in Discord's format.
    pub fn iso_timestamp(self) -> String {
        crate::time::iso_from_unix_ms(self.timestamp_ms())
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Snowflake {
    fn from(raw: u64) -> Self {
        Self(raw)
    }
}

impl From<Snowflake> for u64 {
    fn from(id: Snowflake) -> Self {
        id.0
    }
}

impl PartialEq<u64> for Snowflake {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl FromStr for Snowflake {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SnowflakeVisitor;

        impl Visitor<'_> for SnowflakeVisitor {
            type Value = Snowflake;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a snowflake as a string or an integer")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Snowflake, E> {
                Ok(Snowflake(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Snowflake, E> {
                u64::try_from(v)
                    .map(Snowflake)
                    .map_err(|_| E::custom("negative snowflake"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Snowflake, E> {
                v.parse().map(Snowflake).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(SnowflakeVisitor)
    }
}

/// Mints strictly increasing snowflakes without a lock.
#[derive(Debug, Default)]
pub(crate) struct SnowflakeGen {
    last: AtomicU64,
}

impl SnowflakeGen {
    pub(crate) fn next(&self) -> Snowflake {
        let floor = (now_unix_ms().saturating_sub(DISCORD_EPOCH_MS)) << 22;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = floor.max(prev + 1);
            match self.last.compare_exchange_weak(
                prev,
                candidate,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Snowflake(candidate),
                Err(actual) => prev = actual,
            }
        }
    }
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(DISCORD_EPOCH_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_carry_time() {
        let generator = SnowflakeGen::default();
        let a = generator.next();
        let b = generator.next();
        assert!(b > a);
        let now = now_unix_ms();
        assert!(a.timestamp_ms() <= now && now - a.timestamp_ms() < 5_000);
    }

    #[test]
    fn serde_as_string() {
        let id = Snowflake::new(175928847299117063);
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(json, "\"175928847299117063\"");
        let back: Snowflake = serde_json::from_str(&json).expect("from string");
        assert_eq!(back, id);
        let back: Snowflake = serde_json::from_str("175928847299117063").expect("from number");
        assert_eq!(back, id);
    }

    #[test]
    fn shard_routing_matches_discord_formula() {
        let id = Snowflake::new(175928847299117063);
        assert_eq!(id.shard(16), ((175928847299117063u64 >> 22) % 16) as u32);
        assert_eq!(id.shard(1), 0);
    }
}
