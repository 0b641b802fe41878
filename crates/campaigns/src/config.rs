//! [`CampaignsConfig`]: what the campaigns need to talk to Meetup.
//!
//! Everything here comes from Tavern's configuration (file or `TAVERN_*` environment);
//! every Meetup URL is part of it, so tests and the sandbox point the sync at
//! [`meetup::fake::FakeMeetup`].

use std::time::Duration;

use chrono::TimeDelta;
use discord::model::{ChannelId, GuildId, RoleId};
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

/// The name the user-topic voice channel goes back to after two minutes empty, unless
/// `campaigns_topic_default_name` says otherwise.
pub const DEFAULT_TOPIC_NAME: &str = "Topic of your choice";

/// Where a Meetup member's public profile lives on meetup.com; `/whois` links
/// `{MEETUP_PROFILE_BASE}{member id}/`. The only place the address is spelled (the
/// Meetup endpoints Tavern is configured with are API URLs, not the website).
pub const MEETUP_PROFILE_BASE: &str = "https://www.meetup.com/members/";

/// Where the campaigns live in Discord and who may do what there (`campaigns_*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordSettings {
    /// The community's guild: every game channel and role is made there
    /// (`campaigns_guild_id`, required once Meetup groups are configured).
    pub guild: GuildId,
    /// Categories for campaign channels, filled in order: when one holds Discord's 50
    /// channels the next is used (`campaigns_categories`). Empty: channels are made at
    /// the top level.
    pub categories: Vec<ChannelId>,
    /// Categories for one-shot (adventure) channels (`campaigns_one_shot_categories`);
    /// empty: the campaign categories.
    pub one_shot_categories: Vec<ChannelId>,
    /// Organisers see every game channel (`campaigns_organiser_role`).
    pub organiser_role: Option<RoleId>,
    /// Members with this role may use the admin commands (`campaigns_admin_role`).
    pub admin_role: Option<RoleId>,
    /// Where alerts for the organisers go (`campaigns_alerts_channel`).
    pub alerts_channel: Option<ChannelId>,
    /// Where the free-spots message lives, edited in place
    /// (`campaigns_free_spots_channel`).
    pub free_spots_channel: Option<ChannelId>,
    /// The voice channel `/topic` renames (`campaigns_topic_voice_channel`).
    pub topic_voice_channel: Option<ChannelId>,
    /// Its name when nobody set a topic (`campaigns_topic_default_name`).
    pub topic_default_name: String,
}

impl DiscordSettings {
    /// Settings for `guild` with nothing else configured.
    pub fn new(guild: GuildId) -> DiscordSettings {
        DiscordSettings {
            guild,
            categories: Vec::new(),
            one_shot_categories: Vec::new(),
            organiser_role: None,
            admin_role: None,
            alerts_channel: None,
            free_spots_channel: None,
            topic_voice_channel: None,
            topic_default_name: DEFAULT_TOPIC_NAME.to_owned(),
        }
    }
}

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
    /// Longest a whole sync holds its guard without renewing it
    /// ([`crate::jobs::SYNC_GUARD_TTL`]; a running sync renews it every third of this).
    pub sync_guard_ttl: Duration,
    /// The Discord side (channels, roles, commands); `None`: Meetup -> Redis only.
    pub discord: Option<DiscordSettings>,
    /// The organiser page's address (`{public url}/campaigns/organiser`), for the
    /// alert that asks the organisers to authorise Tavern again;
    /// [`CampaignsConfig::at_site`] fills it in from the public URL. `None`: the alert
    /// names the path.
    pub organiser_page: Option<url::Url>,
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
            sync_guard_ttl: crate::jobs::SYNC_GUARD_TTL,
            discord: None,
            organiser_page: None,
        }
    }

    /// This configuration for a site reached at `public_url`: the organiser page (named
    /// in the alert asking the organisers to authorise Tavern again) is the one under
    /// it, unless one is set already. [`crate::feature`] and `tavern campaigns sync
    /// --once` both use it, so the alert is a link whoever runs the sync.
    pub fn at_site(mut self, public_url: &url::Url) -> CampaignsConfig {
        if self.organiser_page.is_none() {
            self.organiser_page = public_url.join(crate::web::ORGANISER_PATH).ok();
        }
        self
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

    #[test]
    fn the_organiser_page_is_under_the_public_url_unless_one_is_set() {
        let site = url::Url::parse("https://tavern.example/").unwrap();
        let page = config(&["dragons"]).at_site(&site).organiser_page;
        assert_eq!(
            page.map(String::from).as_deref(),
            Some("https://tavern.example/campaigns/organiser")
        );
        let mut set = config(&["dragons"]);
        set.organiser_page = Some(url::Url::parse("https://elsewhere.example/o").unwrap());
        let page = set.at_site(&site).organiser_page;
        assert_eq!(
            page.map(String::from).as_deref(),
            Some("https://elsewhere.example/o")
        );
    }
}
