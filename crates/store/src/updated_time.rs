//! The `{key}:updated_time` convention: every write of a key also records when it
//! happened, so a restore from a snapshot can tell which side is newer.
//!
//! Timestamps are Unix milliseconds as a decimal string: sortable, and comparable with a
//! plain integer parse on either side of a restore.

use chrono::{DateTime, Utc};

use crate::Writes;

/// The name of the timestamp key that accompanies `key`.
pub fn key_for(key: &str) -> String {
    format!("{key}:updated_time")
}

/// The stored representation of `at`.
pub fn encode(at: DateTime<Utc>) -> String {
    at.timestamp_millis().to_string()
}

/// Parses a stored timestamp; `None` for a missing or malformed value (treated as "never").
pub fn decode(raw: &str) -> Option<DateTime<Utc>> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
}

/// Adds `SET {key}:updated_time <at>` to `writes`. Call it beside every write of `key`.
pub fn touch<'w>(writes: &'w mut Writes, key: &str, at: DateTime<Utc>) -> &'w mut Writes {
    writes.set(&key_for(key), encode(at))
}

/// Adds `SET key value` and its `:updated_time` to `writes`.
pub fn set_with_time<'w, V: redis::ToRedisArgs>(
    writes: &'w mut Writes,
    key: &str,
    value: V,
    at: DateTime<Utc>,
) -> &'w mut Writes {
    writes.set(key, value);
    touch(writes, key, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_millisecond() {
        let at = DateTime::<Utc>::from_timestamp_millis(1_790_000_000_123).expect("valid");
        assert_eq!(encode(at), "1790000000123");
        assert_eq!(decode(&encode(at)), Some(at));
        assert_eq!(decode("yesterday"), None);
        assert_eq!(key_for("user_set"), "user_set:updated_time");
    }
}
