//! The sandbox's demo Meetup: one group with a campaign (two sessions), a one-shot and
//! an online series, a few members, an organiser who authorised Tavern, and the demo
//! player's own Meetup account, signed in so that linking it on the web goes through.
//!
//! `tavern serve` without a Discord token seeds a [`super::FakeMeetup`] with
//! [`seed`], so a newcomer sees game channels appear after a sync without any account
//! anywhere. The events start a few days after `now`, inside any sync window, at
//! evening hours in the group's time zone ([`TIMEZONE`]) with that day's offset, as
//! Meetup gives them.

use chrono::{DateTime, FixedOffset, NaiveTime, TimeDelta, TimeZone as _, Utc};
use url::Url;

use super::{FakeError, FakeMeetup, NewEvent};
use crate::model::{EventId, EventType, GroupRole, GroupUrlname, MemberId, RsvpStatus};
use crate::oauth::{ClientId, ClientSecret, Tokens};

/// The demo group's urlname.
pub const GROUP: &str = "tavern-demo";
/// The demo OAuth client's id at the fake.
pub const CLIENT_ID: &str = "tavern-sandbox";
/// The demo group's time zone (`Group.timezone`), in which its events start at their
/// hour and the campaigns' schedule form reads a date and time.
pub const TIMEZONE: chrono_tz::Tz = chrono_tz::Europe::Zurich;

/// What [`seed`] made.
#[derive(Debug, Clone)]
pub struct Demo {
    pub group: GroupUrlname,
    /// The group's organiser; Tavern reads Meetup with their tokens.
    pub organiser: MemberId,
    /// Tokens issued to the organiser, as if they had authorised Tavern.
    pub organiser_tokens: Tokens,
    /// The game master hosting the campaign and the online series.
    pub game_master: MemberId,
    /// The demo player's Meetup account: signed in at the fake, ready to be linked.
    pub player: MemberId,
    /// Two more players.
    pub others: Vec<MemberId>,
    /// The campaign's two sessions (`[new campaign]`, then `[campaign <first>]`).
    pub campaign: Vec<EventId>,
    /// The one-shot (`[new adventure]`).
    pub one_shot: EventId,
    /// The online series (`[new campaign] [online]`).
    pub online: EventId,
    pub client_id: ClientId,
    pub client_secret: ClientSecret,
}

/// `hour` o'clock of `at`'s day in [`TIMEZONE`], with that day's offset (a time the
/// clocks skip is the hour after; the demo's evening hours never are one).
fn local_hour(at: DateTime<Utc>, hour: u32) -> DateTime<FixedOffset> {
    let date = at.with_timezone(&TIMEZONE).date_naive();
    let wall = date.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN));
    TIMEZONE
        .from_local_datetime(&wall)
        .earliest()
        .or_else(|| {
            TIMEZONE
                .from_local_datetime(&(wall + TimeDelta::hours(1)))
                .earliest()
        })
        .map_or_else(
            || wall.and_utc().fixed_offset(),
            |local| local.fixed_offset(),
        )
}

/// Seeds `fake` with the demo group, relative to `now`, and registers the OAuth client
/// `CLIENT_ID` with `redirect_uri` (Tavern's Meetup callback).
pub fn seed(fake: &FakeMeetup, now: DateTime<Utc>, redirect_uri: &Url) -> Result<Demo, FakeError> {
    let group = GroupUrlname::parse(GROUP).map_err(|_| {
        // A constant that parses; this arm exists so no panic is possible.
        FakeError::UnknownGroup(GroupUrlname::from_number(0))
    })?;
    fake.add_group(&group, "Tavern Demo Adventurers")?;
    let organiser = fake.add_member("Olivia Organiser");
    let game_master = fake.add_member("Gabriel the GM");
    let player = fake.add_member("Demo Player");
    let ada = fake.add_member("Ada");
    let bruno = fake.add_member("Bruno");
    fake.set_role(&group, &organiser, GroupRole::Organizer)?;
    fake.set_role(&group, &game_master, GroupRole::EventOrganizer)?;
    for member in [&player, &ada, &bruno] {
        fake.set_role(&group, member, GroupRole::Member)?;
    }

    fake.set_group_timezone(&group, TIMEZONE.name())?;
    let day = |days: i64, hour: u32| local_hour(now + TimeDelta::days(days), hour);

    let mut first = NewEvent::new(&group, "Curse of Strahd - Session 1", day(3, 18));
    first.description = "[new campaign] A gothic horror campaign in Barovia.".into();
    first.hosts = vec![game_master.clone()];
    first.max_tickets = Some(5);
    let campaign_first = fake.add_event(first)?;
    let mut second = NewEvent::new(&group, "Curse of Strahd - Session 2", day(10, 18));
    second.description = format!("[campaign {campaign_first}] The story goes on.");
    second.hosts = vec![game_master.clone()];
    second.max_tickets = Some(5);
    let campaign_second = fake.add_event(second)?;

    let mut one_shot = NewEvent::new(&group, "The Sunless Citadel", day(5, 14));
    one_shot.description = "[new adventure] A one-shot for new players.".into();
    one_shot.hosts = vec![organiser.clone()];
    one_shot.max_tickets = Some(6);
    let one_shot_id = fake.add_event(one_shot)?;

    let mut online = NewEvent::new(&group, "Starfinder Online - Session 1", day(7, 19));
    online.description = "[new campaign] [online] Science fantasy on a virtual table.".into();
    online.hosts = vec![game_master.clone()];
    online.event_type = EventType::Online;
    online.max_tickets = Some(4);
    let online_id = fake.add_event(online)?;

    for member in [&player, &ada, &bruno] {
        fake.add_rsvp(&campaign_first, member, RsvpStatus::Yes, 0)?;
    }
    fake.add_rsvp(&campaign_first, &game_master, RsvpStatus::Yes, 0)?;
    fake.add_rsvp(&one_shot_id, &player, RsvpStatus::Yes, 0)?;
    fake.add_rsvp(&one_shot_id, &bruno, RsvpStatus::Yes, 0)?;
    fake.add_rsvp(&one_shot_id, &organiser, RsvpStatus::Yes, 0)?;
    fake.add_rsvp(&online_id, &ada, RsvpStatus::Yes, 0)?;
    fake.add_rsvp(&online_id, &game_master, RsvpStatus::Yes, 0)?;

    let client_id = ClientId::new(CLIENT_ID);
    let client_secret = ClientSecret::from("tavern-sandbox-secret");
    fake.add_oauth_client(&client_id, &client_secret, redirect_uri);
    fake.sign_in(&player)?;
    let organiser_tokens = fake.issue_tokens(&organiser)?;
    Ok(Demo {
        group,
        organiser,
        organiser_tokens,
        game_master,
        player,
        others: vec![ada, bruno],
        campaign: vec![campaign_first, campaign_second],
        one_shot: one_shot_id,
        online: online_id,
        client_id,
        client_secret,
    })
}
