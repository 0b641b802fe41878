//! The circuit breaker of [`crate::Discord`]: a request target that keeps answering
//! 401, 403 or 404 is not called again for a while.
//!
//! Discord bans (at Cloudflare, for an hour or more) a bot that sends 10,000 invalid
//! requests (401, 403, 429) in 10 minutes. A feature that keeps posting into a channel
//! it lost access to, or editing a message someone deleted, would get there alone. So
//! each target counts its refusals: `threshold` of them within `window` open the
//! breaker, and for `cooldown` every call to that target fails at once, without a
//! request. Then one probe is let through (half-open): a success closes the breaker, a
//! refusal opens it for another cooldown.
//!
//! Targets are the exact request path (a 404 is about that message or channel) and, for
//! a 403, also the channel or guild the path belongs to (a missing permission is about
//! the channel, whatever the route).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Refusals (401, 403, 404) within `window` that open the breaker.
    pub threshold: u32,
    pub window: Duration,
    /// How long an open breaker fails calls at once before it lets a probe through.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            threshold: 5,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
        }
    }
}

/// Why a call is not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Open {
    /// The target whose breaker is open.
    pub target: String,
    /// The last refusal it answered.
    pub status: u16,
    /// How long until a probe is let through.
    pub retry_in: Duration,
}

/// What a caller learns from [`Breakers::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// The target's breaker opened now (`refusals` within the window).
    Opened {
        target: String,
        status: u16,
        refusals: u32,
    },
    /// A probe was refused again: open for another cooldown.
    Reopened {
        target: String,
        status: u16,
    },
    /// A probe succeeded: calls go through again.
    Closed {
        target: String,
    },
}

#[derive(Debug, Default)]
struct State {
    refusals: VecDeque<Instant>,
    open_until: Option<Instant>,
    /// A half-open probe is in flight.
    probing: bool,
    last_status: u16,
}

/// The breakers of one [`crate::Discord`], keyed by target.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    config: BreakerConfig,
    states: HashMap<String, State>,
}

/// The targets a request counts against: its path (without the query) and, for a
/// channel or guild path, the channel or guild itself (`channels/1`).
pub(crate) fn targets(path: &str) -> (String, Option<String>) {
    let path = path.split('?').next().unwrap_or_default();
    let mut segments = path.split('/');
    let major = match (segments.next(), segments.next()) {
        (Some(kind @ ("channels" | "guilds")), Some(id)) => Some(format!("{kind}/{id}")),
        _ => None,
    };
    (path.to_owned(), major.filter(|m| m != path))
}

/// Whether a status counts as a refusal.
pub(crate) fn is_refusal(status: u16) -> bool {
    matches!(status, 401 | 403 | 404)
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Breakers {
        Breakers {
            config,
            states: HashMap::new(),
        }
    }

    /// May a request to `path` go out now? An open breaker answers why not; a
    /// half-open one lets exactly one probe through.
    pub fn admit(&mut self, path: &str, now: Instant) -> Result<(), Open> {
        let (exact, major) = targets(path);
        let targets: Vec<String> = [Some(exact), major].into_iter().flatten().collect();
        for target in &targets {
            if let Some(state) = self.states.get(target)
                && let Some(until) = state.open_until
                && (now < until || state.probing)
            {
                return Err(Open {
                    retry_in: until.saturating_duration_since(now),
                    status: state.last_status,
                    target: target.clone(),
                });
            }
        }
        // Every open breaker on the way has cooled down: this request is their probe.
        for target in &targets {
            if let Some(state) = self.states.get_mut(target)
                && state.open_until.is_some()
            {
                state.probing = true;
            }
        }
        Ok(())
    }

    /// Records the answer to a request to `path` (`None`: no answer, a transport
    /// error). Returns what changed, for the caller to log.
    pub fn record(&mut self, path: &str, status: Option<u16>, now: Instant) -> Change {
        let (exact, major) = targets(path);
        match status {
            Some(status) if is_refusal(status) => {
                // A 404 is about this resource; a 403 also about its channel or guild.
                let mut change = self.refuse(exact, status, now);
                if status == 403
                    && let Some(major) = major
                {
                    let other = self.refuse(major, status, now);
                    if change == Change::None {
                        change = other;
                    }
                }
                change
            }
            Some(status) if (200..300).contains(&status) => {
                let mut change = Change::None;
                for target in [Some(exact), major].into_iter().flatten() {
                    if let Some(state) = self.states.remove(&target)
                        && state.open_until.is_some()
                    {
                        change = Change::Closed { target };
                    }
                }
                change
            }
            // Neither a refusal nor a success (5xx, 429, 400, no answer): a probe that
            // ends like this leaves the breaker half-open for the next caller.
            _ => {
                for target in [Some(exact), major].into_iter().flatten() {
                    if let Some(state) = self.states.get_mut(&target) {
                        state.probing = false;
                    }
                }
                Change::None
            }
        }
    }

    fn refuse(&mut self, target: String, status: u16, now: Instant) -> Change {
        if self.states.len() > 10_000 {
            let window = self.config.window;
            self.states.retain(|_, s| {
                s.open_until.is_some()
                    || s.refusals
                        .back()
                        .is_some_and(|at| now.saturating_duration_since(*at) < window)
            });
        }
        let config = self.config;
        let state = self.states.entry(target.clone()).or_default();
        state.last_status = status;
        if state.open_until.is_some() {
            if state.probing {
                state.probing = false;
                state.open_until = Some(now + config.cooldown);
                return Change::Reopened { target, status };
            }
            // A request admitted before the breaker opened came back refused too.
            return Change::None;
        }
        state.refusals.push_back(now);
        while state
            .refusals
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= config.window)
        {
            state.refusals.pop_front();
        }
        let refusals = state.refusals.len() as u32;
        if refusals >= config.threshold.max(1) {
            state.refusals.clear();
            state.open_until = Some(now + config.cooldown);
            return Change::Opened {
                target,
                status,
                refusals,
            };
        }
        Change::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(BreakerConfig {
            threshold: 3,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(60),
        })
    }

    #[test]
    fn targets_are_the_path_and_its_channel_or_guild() {
        assert_eq!(
            targets("channels/1/messages/2?x=1"),
            (
                "channels/1/messages/2".to_owned(),
                Some("channels/1".to_owned())
            )
        );
        assert_eq!(targets("channels/1"), ("channels/1".to_owned(), None));
        assert_eq!(targets("users/@me"), ("users/@me".to_owned(), None));
    }

    #[test]
    fn refusals_within_the_window_open_then_a_probe_closes() {
        let mut b = breakers();
        let t0 = Instant::now();
        let path = "channels/1/messages";
        for i in 0..2 {
            assert_eq!(b.admit(path, t0), Ok(()));
            assert_eq!(
                b.record(path, Some(404), t0 + Duration::from_secs(i)),
                Change::None
            );
        }
        assert_eq!(
            b.record(path, Some(404), t0 + Duration::from_secs(2)),
            Change::Opened {
                target: path.to_owned(),
                status: 404,
                refusals: 3
            }
        );
        let open = b
            .admit(path, t0 + Duration::from_secs(3))
            .expect_err("open");
        assert_eq!(open.status, 404);
        assert_eq!(open.retry_in, Duration::from_secs(59));
        assert_eq!(
            b.admit("channels/2/messages", t0),
            Ok(()),
            "other targets go"
        );

        let later = t0 + Duration::from_secs(63);
        assert_eq!(b.admit(path, later), Ok(()), "one probe");
        assert!(b.admit(path, later).is_err(), "only one probe at a time");
        assert_eq!(
            b.record(path, Some(200), later),
            Change::Closed {
                target: path.to_owned()
            }
        );
        assert_eq!(b.admit(path, later), Ok(()));
    }

    #[test]
    fn a_refused_probe_reopens_and_old_refusals_expire() {
        let mut b = breakers();
        let t0 = Instant::now();
        let path = "guilds/5/roles";
        b.record(path, Some(403), t0);
        b.record(path, Some(403), t0 + Duration::from_secs(20));
        assert_eq!(
            b.record(path, Some(403), t0 + Duration::from_secs(21)),
            Change::None,
            "the first refusal left the window"
        );
        assert!(matches!(
            b.record(path, Some(403), t0 + Duration::from_secs(22)),
            Change::Opened { .. }
        ));
        let probe = t0 + Duration::from_secs(90);
        assert_eq!(b.admit(path, probe), Ok(()));
        assert_eq!(
            b.record(path, Some(403), probe),
            Change::Reopened {
                target: path.to_owned(),
                status: 403
            }
        );
        assert!(b.admit(path, probe + Duration::from_secs(59)).is_err());
    }

    #[test]
    fn a_403_counts_against_the_whole_channel_and_a_404_only_its_resource() {
        let mut b = breakers();
        let t0 = Instant::now();
        for m in 1..=3 {
            b.record(&format!("channels/7/messages/{m}"), Some(404), t0);
        }
        assert_eq!(
            b.admit("channels/7/messages/4", t0),
            Ok(()),
            "404s are per message"
        );
        for m in 1..=3 {
            b.record(&format!("channels/7/messages/{m}"), Some(403), t0);
        }
        let open = b
            .admit("channels/7/messages", t0)
            .expect_err("the channel refuses");
        assert_eq!(open.target, "channels/7");
        assert_eq!(b.admit("channels/8/messages", t0), Ok(()));
    }
}
