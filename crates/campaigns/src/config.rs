//! [`CampaignsConfig`]: what the campaigns need to talk to Meetup.
//!
//! Everything here comes from Tavern's configuration (file or `TAVERN_*` environment);
//! every Meetup URL is part of it, so tests and the sandbox point the sync at
//! [`meetup::fake::FakeMeetup`].

use std::time::Duration;

use chrono::TimeDelta;
/// The `meetup` types a config is made of, re-exported so the binary can build a
/// [`CampaignsConfig`] without depending on `meetup` itself.
pub use meetup::{ClientId, ClientSecret, EndpointError, GroupUrlname, MeetupEndpoints};

/// How far ahead the sync looks: Meetup events starting within 60 days of now. Groups
/// announce sessions a few weeks ahead; two months catches every announced session
/// while keeping a sync to one or two pages per group.
pub const DEFAULT_HORIZON: TimeDelta = TimeDelta::days(60);

/// How often the sync runs (the behaviour doc's 15 minutes): RSVPs reach the players'
/// channels soon enough, and Meetup sees a handful of requests per group an hour.
pub const DEFAULT_SYNC_EVERY: Duration = Duration::from_secs(15 * 60);

/// The campaigns' settings for Meetup.
///
/// `Debug` is safe to log: the client secret prints as `Secret([redacted])`.
#[derive(Debug, Clone)]
pub struct CampaignsConfig {
    /// Tavern's OAuth2 client id at Meetup.
    pub client_id: ClientId,
    /// Tavern's OAuth2 client secret (redacted in `Debug`).
    pub client_secret: ClientSecret,
    /// Meetup's GraphQL, authorize and token URLs ([`MeetupEndpoints::production`] in
    /// production).
    pub endpoints: MeetupEndpoints,
    /// The Meetup groups whose events become game channels, by `urlname`. Without any,
    /// [`crate::feature`] schedules no sync.
    pub groups: Vec<GroupUrlname>,
    /// The sync looks at events starting in `[now, now + horizon)`.
    pub horizon: TimeDelta,
    /// The sync job's period.
    pub sync_every: Duration,
}

impl CampaignsConfig {
    /// A configuration with the default horizon ([`DEFAULT_HORIZON`]) and period
    /// ([`DEFAULT_SYNC_EVERY`]). Repeated group urlnames are kept once (a group synced
    /// twice per run would only double the requests).
    pub fn new(
        client_id: ClientId,
        client_secret: ClientSecret,
        endpoints: MeetupEndpoints,
        groups: Vec<GroupUrlname>,
    ) -> CampaignsConfig {
        let mut unique: Vec<GroupUrlname> = Vec::with_capacity(groups.len());
        for group in groups {
            if !unique.contains(&group) {
                unique.push(group);
            }
        }
        CampaignsConfig {
            client_id,
            client_secret,
            endpoints,
            groups: unique,
            horizon: DEFAULT_HORIZON,
            sync_every: DEFAULT_SYNC_EVERY,
        }
    }

    /// Whether there is anything to sync.
    pub fn has_groups(&self) -> bool {
        !self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn config(groups: &[&str]) -> CampaignsConfig {
        CampaignsConfig::new(
            ClientId::new("tavern"),
            ClientSecret::from("s3cret-value"),
            MeetupEndpoints::production().unwrap(),
            groups
                .iter()
                .map(|g| GroupUrlname::parse(g).unwrap())
                .collect(),
        )
    }

    #[test]
    fn debug_hides_the_client_secret() {
        let printed = format!("{:?}", config(&["dragons"]));
        assert!(!printed.contains("s3cret-value"), "{printed}");
        assert!(printed.contains("redacted"), "{printed}");
    }

    #[test]
    fn defaults_and_unique_groups() {
        let c = config(&["dragons", "goblins", "dragons"]);
        assert_eq!(c.groups.len(), 2);
        assert_eq!(c.horizon, TimeDelta::days(60));
        assert_eq!(c.sync_every, Duration::from_secs(900));
        assert!(c.has_groups());
        assert!(!config(&[]).has_groups());
    }
}
