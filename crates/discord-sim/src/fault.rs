//! Fault injection and rate-limit bookkeeping for REST.
//!
//! Faults are how tests exercise the bot's error handling (429 with `retry_after`,
//! Cloudflare's HTML 429, 401/403/404 and 5xx, slow responses, a timeout after the
//! request took effect, a request held until the test lets it through)
//! deterministically: a rule answers the next `times` matching requests and then
//! disappears. The per-route buckets give every response exact
//! `X-RateLimit-*` headers; their default limit is generous enough that ordinary
//! tests never hit it, and a test or bench may lower it (and turn on the global
//! limit) to play Discord's limits by volume.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Which REST requests a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// HTTP method (case-insensitive); `None` matches any.
    pub method: Option<String>,
    /// Path prefix, with or without the leading `/api/v10`, e.g. `/channels/` or
    /// `/interactions/`. Empty matches every path.
    pub path_prefix: String,
    /// Whether the path must be `path_prefix` itself, not only start with it.
    pub exact: bool,
}

impl RouteMatch {
    /// Requests with this method whose path starts with `path_prefix`.
    pub fn new(method: &str, path_prefix: impl Into<String>) -> Self {
        Self {
            method: Some(method.to_ascii_uppercase()),
            path_prefix: path_prefix.into(),
            exact: false,
        }
    }

    /// Requests with this method to exactly `path` (its query aside): `/guilds/1/members`
    /// and not `/guilds/1/members/2`.
    pub fn exact(method: &str, path: impl Into<String>) -> Self {
        Self {
            exact: true,
            ..Self::new(method, path)
        }
    }

    /// Requests of any method whose path starts with `path_prefix`.
    pub fn prefix(path_prefix: impl Into<String>) -> Self {
        Self {
            method: None,
            path_prefix: path_prefix.into(),
            exact: false,
        }
    }

    /// Every request.
    pub fn any() -> Self {
        Self::prefix("")
    }

    /// `path` is the full request path (`/api/v10/...`).
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(method)
        {
            return false;
        }
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        let relative = path.strip_prefix(crate::rest::API_PREFIX).unwrap_or(path);
        if self.exact {
            return path == self.path_prefix || relative == self.path_prefix;
        }
        path.starts_with(&self.path_prefix) || relative.starts_with(&self.path_prefix)
    }
}

/// What an injected fault does to a matching request.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer 429 with Discord's rate-limit body and headers (`remaining` 0,
    /// `Retry-After`, `X-RateLimit-Scope`, and `X-RateLimit-Global` when global).
    RateLimited { retry_after_secs: f64, global: bool },
    /// Answer 429 the way Cloudflare does when it bans an address for too many
    /// invalid requests: an HTML page, no JSON body and no `X-RateLimit-*` headers.
    HtmlRateLimited,
    /// Answer with this status and a Discord-shaped error body (401 Unauthorized,
    /// 403 Missing Access, 404 Not Found, 5xx ...).
    Status(u16),
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Handle the request normally (a message, channel or role is created), then hold
    /// the answer back this long: a client with a shorter timeout sees a timeout for a
    /// request that took effect.
    TimeoutAfterCommit(Duration),
    /// Hold the request, before it takes effect, until the test opens the [`Gate`];
    /// then handle it normally. The test knows when it arrived ([`Gate::arrived`]), so
    /// it can act at that exact point of the client's work.
    Gate(Gate),
}

/// Where a [`Fault::Gate`] holds requests: cheap to clone, every clone is the same gate.
#[derive(Clone, Debug)]
pub struct Gate {
    open: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    arrived: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.open, &other.open)
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self {
            open: std::sync::Arc::new(tokio::sync::watch::Sender::new(false)),
            arrived: std::sync::Arc::default(),
        }
    }

    /// How many requests have reached the gate so far (held or let through).
    pub fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets every held request (and every later one) through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Counts a request in and waits until the gate is open.
    pub(crate) async fn pass(&self) {
        let mut open = self.open.subscribe();
        self.arrived
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The sender lives in `self`, so the wait ends only when the gate opens.
        let _ = open.wait_for(|o| *o).await;
    }
}

#[derive(Debug)]
pub(crate) struct FaultRule {
    pub matcher: RouteMatch,
    pub fault: Fault,
    pub remaining: usize,
}

/// Takes one use of the first rule matching the request, if any.
pub(crate) fn take_fault(rules: &mut Vec<FaultRule>, method: &str, path: &str) -> Option<Fault> {
    let index = rules
        .iter()
        .position(|r| r.remaining > 0 && r.matcher.matches(method, path))?;
    let rule = &mut rules[index];
    rule.remaining -= 1;
    let fault = rule.fault.clone();
    if rule.remaining == 0 {
        rules.remove(index);
    }
    Some(fault)
}

/// The state of one rate-limit bucket after counting a request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BucketStatus {
    pub limit: u32,
    pub remaining: u32,
    pub reset_after: Duration,
    /// Stable id of the route (what Discord calls the bucket hash).
    pub hash: String,
    /// Whether this request exceeded the limit.
    pub exceeded: bool,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u32,
}

/// Fixed-window counters keyed by route template and major parameter, as Discord
/// keys its buckets.
#[derive(Debug, Default)]
pub(crate) struct Buckets {
    windows: HashMap<String, Window>,
    /// The bot token's one-second window across all routes.
    global: Option<Window>,
}

impl Buckets {
    /// Counts a request against the global limit of `limit` per second; `Some(wait)`
    /// when it exceeds it (the request is refused and not counted).
    pub fn hit_global(&mut self, limit: u32, now: Instant) -> Option<Duration> {
        const SECOND: Duration = Duration::from_secs(1);
        let window = self.global.get_or_insert(Window {
            started: now,
            used: 0,
        });
        if now.duration_since(window.started) >= SECOND {
            window.started = now;
            window.used = 0;
        }
        if window.used >= limit {
            return Some(SECOND.saturating_sub(now.duration_since(window.started)));
        }
        window.used += 1;
        None
    }

    pub fn hit(
        &mut self,
        template: &str,
        major: &str,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> BucketStatus {
        if self.windows.len() > 4096 {
            self.windows
                .retain(|_, w| now.duration_since(w.started) < window);
        }
        let key = format!("{template}:{major}");
        let entry = self.windows.entry(key).or_insert(Window {
            started: now,
            used: 0,
        });
        if now.duration_since(entry.started) >= window {
            entry.started = now;
            entry.used = 0;
        }
        entry.used = entry.used.saturating_add(1);
        let exceeded = entry.used > limit;
        BucketStatus {
            limit,
            remaining: limit.saturating_sub(entry.used),
            reset_after: window.saturating_sub(now.duration_since(entry.started)),
            hash: bucket_hash(template),
            exceeded,
        }
    }
}

/// FNV-1a of the route template, hex: stable across runs, distinct per route.
pub(crate) fn bucket_hash(template: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in template.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_match_accepts_relative_and_full_prefixes() {
        assert!(
            RouteMatch::new("post", "/channels/").matches("POST", "/api/v10/channels/1/messages")
        );
        assert!(RouteMatch::prefix("/api/v10/channels").matches("GET", "/api/v10/channels/1"));
        assert!(!RouteMatch::new("GET", "/channels/").matches("POST", "/api/v10/channels/1"));
        assert!(RouteMatch::any().matches("DELETE", "/api/v10/guilds/1"));
    }

    #[test]
    fn an_exact_route_matches_its_path_alone() {
        let members = RouteMatch::exact("GET", "/guilds/1/members");
        assert!(members.matches("GET", "/api/v10/guilds/1/members"));
        assert!(members.matches("GET", "/api/v10/guilds/1/members?limit=1000"));
        assert!(!members.matches("GET", "/api/v10/guilds/1/members/2"));
        assert!(!members.matches("PUT", "/api/v10/guilds/1/members"));
    }

    #[test]
    fn faults_are_used_up_in_order() {
        let mut rules = vec![FaultRule {
            matcher: RouteMatch::any(),
            fault: Fault::Status(500),
            remaining: 2,
        }];
        assert_eq!(
            take_fault(&mut rules, "GET", "/api/v10/x"),
            Some(Fault::Status(500))
        );
        assert_eq!(
            take_fault(&mut rules, "GET", "/api/v10/x"),
            Some(Fault::Status(500))
        );
        assert_eq!(take_fault(&mut rules, "GET", "/api/v10/x"), None);
        assert!(rules.is_empty());
    }

    #[test]
    fn the_global_window_refuses_past_its_limit() {
        let mut buckets = Buckets::default();
        let now = Instant::now();
        assert_eq!(buckets.hit_global(2, now), None);
        assert_eq!(buckets.hit_global(2, now), None);
        let wait = buckets.hit_global(2, now + Duration::from_millis(300));
        assert_eq!(wait, Some(Duration::from_millis(700)));
        assert_eq!(buckets.hit_global(2, now + Duration::from_secs(1)), None);
    }

    #[test]
    fn buckets_count_and_reset() {
        let mut buckets = Buckets::default();
        let now = Instant::now();
        let window = Duration::from_secs(1);
        let first = buckets.hit("POST /channels/{id}/messages", "1", 2, window, now);
        assert_eq!((first.remaining, first.exceeded), (1, false));
        let _ = buckets.hit("POST /channels/{id}/messages", "1", 2, window, now);
        let third = buckets.hit("POST /channels/{id}/messages", "1", 2, window, now);
        assert!(third.exceeded);
        let other_major = buckets.hit("POST /channels/{id}/messages", "2", 2, window, now);
        assert!(!other_major.exceeded);
        assert_eq!(first.hash, other_major.hash);
        let later = buckets.hit("POST /channels/{id}/messages", "1", 2, window, now + window);
        assert_eq!((later.remaining, later.exceeded), (1, false));
    }
}
