//! Discord's CDN for attachments: signed, expiring URLs and byte ranges.
//!
//! Discord signs every attachment URL it hands out
//! (`.../name.mp4?ex=<hex unix seconds>&is=<hex unix seconds>&hm=<hex signature>&`)
//! and the CDN refuses it with 404 "This content is no longer available." once `ex`
//! has passed or when the signature does not match. Clients refresh URLs through
//! `POST /attachments/refresh-urls` or by fetching the message again. The sim does the
//! same so that code which stores URLs meets expiry in tests; the signature is a keyed
//! hash over the attachment (channel and id), `ex`, `is` and a generation number that
//! [`crate::Sim::expire_attachment_urls`] bumps, which invalidates every URL issued
//! before it without waiting for the clock.

use std::hash::{DefaultHasher, Hasher};
use std::time::Duration;

use crate::Snowflake;

/// The body Discord's CDN sends for an expired or forged attachment URL.
pub(crate) const GONE_BODY: &str = "This content is no longer available.";

/// Signing state: the sim's secret, the URL lifetime and the current generation.
#[derive(Debug)]
pub(crate) struct Cdn {
    secret: u64,
    lifetime_secs: u64,
    generation: u64,
}

impl Cdn {
    pub fn new(secret: u64, lifetime: Duration) -> Self {
        Self {
            secret,
            lifetime_secs: lifetime.as_secs().max(1),
            generation: 0,
        }
    }

    /// Makes every URL signed so far invalid.
    pub fn expire_all(&mut self) {
        self.generation += 1;
    }

    /// `base` (an attachment URL without query) signed now.
    pub fn sign(&self, base: &str, channel: Snowflake, attachment: Snowflake) -> String {
        self.sign_at(base, channel, attachment, now_secs())
    }

    fn sign_at(&self, base: &str, channel: Snowflake, attachment: Snowflake, now: u64) -> String {
        let issued = now;
        let expires = now.saturating_add(self.lifetime_secs);
        let hm = self.signature(channel, attachment, expires, issued);
        format!("{base}?ex={expires:x}&is={issued:x}&hm={hm}&")
    }

    /// Whether `query` (the URL's query string) is a valid, unexpired signature for
    /// the attachment.
    pub fn verify(&self, channel: Snowflake, attachment: Snowflake, query: Option<&str>) -> bool {
        self.verify_at(channel, attachment, query, now_secs())
    }

    fn verify_at(
        &self,
        channel: Snowflake,
        attachment: Snowflake,
        query: Option<&str>,
        now: u64,
    ) -> bool {
        let (mut ex, mut is, mut hm) = (None, None, None);
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("ex", v)) => ex = u64::from_str_radix(v, 16).ok(),
                Some(("is", v)) => is = u64::from_str_radix(v, 16).ok(),
                Some(("hm", v)) => hm = Some(v),
                _ => {}
            }
        }
        let (Some(ex), Some(is), Some(hm)) = (ex, is, hm) else {
            return false;
        };
        ex > now && hm == self.signature(channel, attachment, ex, is)
    }

    /// 256 bits as 64 hex digits, like Discord's `hm`.
    fn signature(&self, channel: Snowflake, attachment: Snowflake, ex: u64, is: u64) -> String {
        let mut out = String::with_capacity(64);
        for lane in 0..4u64 {
            let mut hasher = DefaultHasher::new();
            hasher.write_u64(self.secret);
            hasher.write_u64(lane);
            hasher.write_u64(self.generation);
            hasher.write_u64(channel.get());
            hasher.write_u64(attachment.get());
            hasher.write_u64(ex);
            hasher.write_u64(is);
            out.push_str(&format!("{:016x}", hasher.finish()));
        }
        out
    }
}

/// `(channel, attachment)` of an attachment URL (signed or not) on this sim, with
/// or without the scheme and host.
pub(crate) fn parse_url(url: &str, http_url: &str) -> Option<(Snowflake, Snowflake)> {
    let path = url.strip_prefix(http_url)?;
    let path = path.split(['?', '#']).next()?;
    let mut segments = path.trim_start_matches('/').split('/');
    if segments.next()? != "attachments" {
        return None;
    }
    let channel = segments.next()?.parse().ok()?;
    let attachment = segments.next()?.parse().ok()?;
    segments.next()?;
    Some((channel, attachment))
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// No (usable) range: the whole body, 200.
    Whole,
    /// Inclusive `start..=end`, 206.
    Part(u64, u64),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`); several ranges or other units are served
/// whole, which HTTP allows.
pub(crate) fn byte_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = match (start.is_empty(), end.is_empty()) {
        (true, true) => return ByteRange::Whole,
        (true, false) => match end.parse::<u64>() {
            Ok(0) => return ByteRange::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            Err(_) => return ByteRange::Whole,
        },
        (false, _) => {
            let Ok(first) = start.parse::<u64>() else {
                return ByteRange::Whole;
            };
            let last = if end.is_empty() {
                len.saturating_sub(1)
            } else {
                match end.parse::<u64>() {
                    Ok(last) if last >= first => last.min(len.saturating_sub(1)),
                    _ => return ByteRange::Whole,
                }
            };
            (first, last)
        }
    };
    if len == 0 || parsed.0 >= len {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part(parsed.0, parsed.1)
}

fn now_secs() -> u64 {
    crate::snowflake::now_unix_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (Snowflake, Snowflake) {
        (Snowflake::new(10), Snowflake::new(20))
    }

    #[test]
    fn signed_urls_verify_until_they_expire() {
        let cdn = Cdn::new(7, Duration::from_secs(100));
        let (channel, attachment) = ids();
        let url = cdn.sign_at(
            "http://x/attachments/10/20/a.mp4",
            channel,
            attachment,
            1_000,
        );
        let query = url.split_once('?').map(|(_, q)| q);
        assert!(url.contains("ex=44c&is=3e8&hm="), "{url}");
        assert!(cdn.verify_at(channel, attachment, query, 1_050));
        assert!(!cdn.verify_at(channel, attachment, query, 1_100), "expired");
        assert!(
            !cdn.verify_at(channel, Snowflake::new(21), query, 1_050),
            "other file"
        );
        assert!(!cdn.verify_at(channel, attachment, None, 1_050), "unsigned");
        let forged = url.replace("ex=44c", "ex=fffff");
        let query = forged.split_once('?').map(|(_, q)| q);
        assert!(!cdn.verify_at(channel, attachment, query, 1_050), "forged");
    }

    #[test]
    fn expiring_all_invalidates_earlier_urls_only() {
        let mut cdn = Cdn::new(7, Duration::from_secs(100));
        let (channel, attachment) = ids();
        let old = cdn.sign_at("b", channel, attachment, 1_000);
        cdn.expire_all();
        let new = cdn.sign_at("b", channel, attachment, 1_000);
        let q = |u: &str| u.split_once('?').map(|(_, q)| q.to_owned());
        assert!(!cdn.verify_at(channel, attachment, q(&old).as_deref(), 1_001));
        assert!(cdn.verify_at(channel, attachment, q(&new).as_deref(), 1_001));
    }

    #[test]
    fn urls_parse_back_to_ids() {
        assert_eq!(
            parse_url("http://h:1/attachments/10/20/a b.mp4?ex=1&", "http://h:1"),
            Some(ids())
        );
        assert_eq!(
            parse_url("http://other/attachments/10/20/a", "http://h:1"),
            None
        );
        assert_eq!(
            parse_url("http://h:1/attachments/10/20", "http://h:1"),
            None
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range(None, 10), ByteRange::Whole);
        assert_eq!(byte_range(Some("bytes=0-"), 10), ByteRange::Part(0, 9));
        assert_eq!(byte_range(Some("bytes=2-4"), 10), ByteRange::Part(2, 4));
        assert_eq!(byte_range(Some("bytes=2-40"), 10), ByteRange::Part(2, 9));
        assert_eq!(byte_range(Some("bytes=-3"), 10), ByteRange::Part(7, 9));
        assert_eq!(byte_range(Some("bytes=10-"), 10), ByteRange::Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=0-1,3-4"), 10), ByteRange::Whole);
        assert_eq!(byte_range(Some("items=0-1"), 10), ByteRange::Whole);
    }
}
