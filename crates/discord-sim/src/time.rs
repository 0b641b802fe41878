//! Timestamps in Discord's wire format.

use chrono::{DateTime, Utc};

/// `2017-07-11T17:27:07.299000+00:00`, the shape Discord uses for every timestamp.
pub(crate) fn iso_from_unix_ms(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let at = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The current time in Discord's format.
pub(crate) fn now_iso() -> String {
    iso_from_unix_ms(crate::snowflake::now_unix_ms())
}

#[cfg(test)]
mod tests {
    #[test]
    fn format_matches_discord() {
        assert_eq!(
            super::iso_from_unix_ms(1_499_794_027_299),
            "2017-07-11T17:27:07.299000+00:00"
        );
    }
}
