//! The sync, step 2 (Redis → Discord), end to end: the fake Meetup over loopback
//! through the production `MeetupClient`, a real `redis-server`, and discord-sim as
//! Discord through the production REST client (no gateway).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use campaigns::config::DiscordSettings;
use campaigns::jobs::{FullReport, FullSyncError, sync_all, sync_all_until};
use campaigns::repo::{Removal, Tokens};
use campaigns::{CampaignsConfig, MeetupUserId, Repo, SeriesType, schema};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use discord::model::{ChannelId, GuildId, RoleId, UserId};
use discord_sim::{ChannelKind, ChannelSpec, Fault, Gate, RouteMatch, Snowflake};
use meetup::fake::{FakeMeetup, NewEvent};
use meetup::{EventId, GroupUrlname, MeetupClient, MemberId, RsvpStatus};
use store::redis::AsyncCommands;

struct World {
    world: testkit::World,
    store: Repo,
    fake: FakeMeetup,
    client: MeetupClient,
    config: CampaignsConfig,
    group: GroupUrlname,
    now: DateTime<Utc>,
}

fn snowflake_user(s: Snowflake) -> UserId {
    UserId::new(s.get())
}

impl World {
    async fn new() -> World {
        let world = testkit::World::new().await;
        let store = Repo::new(world.redis.clone());
        let common::MeetupSide {
            fake,
            group,
            organiser,
            client,
            mut config,
        } = common::meetup_side().await;
        let mut settings = DiscordSettings::new(GuildId::new(world.demo.guild.get()));
        settings.free_spots_channel = Some(ChannelId::new(world.demo.campaigns.get()));
        config.discord = Some(settings);
        let tokens = fake.issue_tokens(&organiser).unwrap();
        store
            .set_organizer_tokens(
                &Tokens {
                    access: tokens.access_token.clone(),
                    refresh: tokens.refresh_token.clone(),
                },
                testkit::epoch() + TimeDelta::days(2),
            )
            .await
            .unwrap();
        World {
            now: testkit::epoch(),
            world,
            store,
            fake,
            client,
            config,
            group,
        }
    }

    fn settings(&mut self) -> &mut DiscordSettings {
        self.config.discord.as_mut().unwrap()
    }

    /// One run of the channel lifecycle at `now`, with the current settings.
    async fn lifecycle(&self, now: DateTime<Utc>) -> campaigns::lifecycle::LifecycleReport {
        let settings = self.config.discord.as_ref().unwrap();
        campaigns::lifecycle::run_lifecycle(&self.store, &self.world.ctx.discord, settings, now)
            .await
            .unwrap()
    }

    async fn sync(&self) -> FullReport {
        sync_all(
            &self.store,
            &self.client,
            &self.world.ctx.discord,
            &self.config,
            self.now,
        )
        .await
        .unwrap()
    }

    /// A Meetup member linked to a Discord member of the demo guild.
    async fn linked(&self, name: &str, discord: Snowflake) -> MemberId {
        let member = self.fake.add_member(name);
        self.store
            .link(
                MeetupUserId::parse(member.as_str()).unwrap(),
                snowflake_user(discord),
                None,
            )
            .await
            .unwrap();
        member
    }

    fn event(&self, title: &str, days: i64, description: &str, hosts: &[&MemberId]) -> EventId {
        let mut e = NewEvent::new(&self.group, title, day(self.now, days));
        e.description = description.to_owned();
        e.hosts = hosts.iter().map(|h| (*h).clone()).collect();
        e.max_tickets = Some(6);
        self.fake.add_event(e).unwrap()
    }

    fn rsvp(&self, event: &EventId, member: &MemberId) {
        self.fake
            .add_rsvp(event, member, RsvpStatus::Yes, 0)
            .unwrap();
    }

    /// The series' text channel, guest role and host role, from Redis.
    async fn series_objects(&self, event: &EventId) -> (ChannelId, RoleId, RoleId) {
        let series = campaigns::EventSeriesId::parse(event.as_str()).unwrap();
        let channel = self.store.series_channel(&series).await.unwrap().unwrap();
        let (guest, host) = self.store.channel_roles(channel).await.unwrap();
        (channel, guest.unwrap(), host.unwrap())
    }

    /// Takes `user` out of the game by hand, as `/players remove` (`Removal::User`, the
    /// guest role) or `/hosts remove` (`Removal::Host`, the host role) do: marked removed
    /// in Redis and the role taken away on Discord.
    async fn remove_by_hand(
        &self,
        channel: ChannelId,
        removal: Removal,
        user: Snowflake,
        role: RoleId,
    ) {
        self.store
            .mark_removed(channel, removal, snowflake_user(user))
            .await
            .unwrap();
        self.world
            .ctx
            .discord
            .remove_role(
                GuildId::new(self.world.demo.guild.get()),
                snowflake_user(user),
                role,
            )
            .await
            .unwrap();
    }

    fn roles_of(&self, user: Snowflake) -> Vec<u64> {
        self.world
            .sim
            .member(self.world.demo.guild, user)
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default()
    }

    /// Discord requests that change something since the last `clear_requests`.
    fn writes(&self) -> Vec<String> {
        self.world
            .sim
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Writes that change a role or post a message (welcomes); the free-spots
    /// message's edits, which follow Meetup's counts, are left out.
    fn role_and_post_writes(&self) -> Vec<String> {
        self.writes()
            .into_iter()
            .filter(|r| r.starts_with("POST") || r.contains("/roles/"))
            .collect()
    }

    async fn check(&self) -> Vec<feature::Finding> {
        campaigns::check::check(&self.world.redis).await.unwrap()
    }
}

/// `n` days after `now`, in the group's offset (+01:00).
fn day(now: DateTime<Utc>, n: i64) -> DateTime<FixedOffset> {
    (now + TimeDelta::days(n)).with_timezone(&FixedOffset::east_opt(3600).unwrap())
}

fn has(roles: &[u64], role: RoleId) -> bool {
    roles.contains(&role.get())
}

#[tokio::test]
async fn a_new_campaign_gets_its_channel_roles_members_and_an_announcement() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let host = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    let bob = w.linked("Bob", demo.bob).await;
    let stranger = w.fake.add_member("Sam Unlinked");
    let first = w.event(
        "Curse of Strahd",
        3,
        "Gothic horror.\n[new campaign]",
        &[&host],
    );
    for m in [&alice, &bob, &stranger] {
        w.rsvp(&first, m);
    }

    let report = w.sync().await;
    let discord = report.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);

    let (channel, guest, host_role) = w.series_objects(&first).await;
    let sim_channel = w
        .world
        .sim
        .channel(channel.get())
        .expect("the channel exists");
    assert_eq!(sim_channel.name, "curse-of-strahd");
    assert_eq!(sim_channel.kind, ChannelKind::Text);
    assert!(
        sim_channel
            .topic
            .as_deref()
            .is_some_and(|t| t.starts_with("Next session:") && t.contains("/events/")),
        "{:?}",
        sim_channel.topic
    );
    // Private: @everyone may not view it; the roles and the bot may.
    let everyone = sim_channel
        .permission_overwrites
        .iter()
        .find(|o| o.id == demo.guild)
        .expect("an @everyone overwrite");
    assert_ne!(everyone.deny & discord::model::permissions::VIEW_CHANNEL, 0);
    for id in [
        guest.get(),
        host_role.get(),
        w.world.sim.bot_user_id().get(),
    ] {
        let o = sim_channel
            .permission_overwrites
            .iter()
            .find(|o| o.id.get() == id)
            .unwrap_or_else(|| panic!("an overwrite for {id}"));
        assert_ne!(o.allow & discord::model::permissions::VIEW_CHANNEL, 0);
    }
    let roles: Vec<u64> = w
        .world
        .sim
        .roles(demo.guild)
        .iter()
        .map(|r| r.id.get())
        .collect();
    assert!(roles.contains(&guest.get()) && roles.contains(&host_role.get()));
    assert!(has(&w.roles_of(demo.alice), guest));
    assert!(has(&w.roles_of(demo.bob), guest));
    assert!(has(&w.roles_of(demo.carol), host_role));
    assert!(!has(&w.roles_of(demo.demo_player), guest));

    let messages = w.world.sim.messages(channel.get());
    assert_eq!(messages.len(), 1, "one announcement");
    let announcement = &messages[0];
    for u in [demo.alice, demo.bob, demo.carol] {
        assert!(announcement.content.contains(&format!("<@{u}>")));
    }
    let mut pinged = announcement.pings.users.clone();
    pinged.sort();
    let mut expected = vec![demo.alice, demo.bob, demo.carol];
    expected.sort();
    assert_eq!(pinged, expected, "exactly the newcomers are pinged");

    // A second session keeps the series a campaign, in the same channel.
    let second = w.event(
        "Curse of Strahd, session 2",
        10,
        &format!("[campaign {first}]"),
        &[&host],
    );
    w.sync().await;
    let series = campaigns::EventSeriesId::parse(first.as_str()).unwrap();
    assert_eq!(
        w.store.series_type(&series).await.unwrap(),
        Some(SeriesType::Campaign)
    );
    let second = campaigns::MeetupEventId::parse(second.as_str()).unwrap();
    assert_eq!(
        w.store.series_of_event(&second).await.unwrap(),
        Some(series.clone())
    );
    assert_eq!(w.series_objects(&first).await.0, channel);
    assert_eq!(w.store.game_channels().await.unwrap(), vec![channel]);

    // A second sync right after makes no Discord write at all.
    w.world.sim.clear_requests();
    w.sync().await;
    assert_eq!(w.writes(), Vec::<String>::new());
    assert_eq!(w.check().await, Vec::new());
}

#[tokio::test]
async fn a_newly_linked_host_is_told_they_host_the_game_with_the_other_hosts_as_co_hosts() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let carol = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    // Bob hosts too, but links his Meetup account only after the first sync. Like a
    // host on Meetup, he also RSVP'd yes.
    let bob = w.fake.add_member("Bob Host");
    let first = w.event("Curse of Strahd", 3, "[new campaign]", &[&carol, &bob]);
    w.rsvp(&first, &alice);
    w.rsvp(&first, &bob);
    w.sync().await;
    let (channel, guest, host_role) = w.series_objects(&first).await;
    assert!(has(&w.roles_of(demo.carol), host_role));
    assert_eq!(w.world.sim.messages(channel.get()).len(), 1);

    w.store
        .link(
            MeetupUserId::parse(bob.as_str()).unwrap(),
            snowflake_user(demo.bob),
            None,
        )
        .await
        .unwrap();
    w.sync().await;

    assert!(has(&w.roles_of(demo.bob), host_role));
    assert!(has(&w.roles_of(demo.bob), guest));
    let messages = w.world.sim.messages(channel.get());
    assert_eq!(messages.len(), 2, "one welcome for Bob");
    let welcome = &messages[1];
    assert_eq!(
        welcome.content,
        format!(
            "<@{}>, you host this game. Your co-host: <@{}>.",
            demo.bob, demo.carol
        )
    );
    assert_eq!(
        welcome.pings.users,
        vec![demo.bob],
        "only the newcomer is pinged"
    );
}

#[tokio::test]
async fn a_player_who_unlinks_and_links_again_gets_the_role_back_without_a_second_welcome() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let carol = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    let bob = w.linked("Bob", demo.bob).await;
    let first = w.event("Curse of Strahd", 3, "[new campaign]", &[&carol]);
    for m in [&alice, &bob] {
        w.rsvp(&first, m);
    }
    w.sync().await;
    let (channel, guest, _) = w.series_objects(&first).await;
    assert_eq!(
        w.world.sim.messages(channel.get()).len(),
        1,
        "the first welcome"
    );

    // Alice unlinks: the sync takes the role it gave her.
    w.store
        .unlink_discord_user(snowflake_user(demo.alice))
        .await
        .unwrap();
    w.sync().await;
    assert!(!has(&w.roles_of(demo.alice), guest));

    // She links again: the role comes back, and no second welcome is posted.
    w.store
        .link(
            MeetupUserId::parse(alice.as_str()).unwrap(),
            snowflake_user(demo.alice),
            None,
        )
        .await
        .unwrap();
    w.sync().await;
    assert!(has(&w.roles_of(demo.alice), guest));
    assert_eq!(
        w.world.sim.messages(channel.get()).len(),
        1,
        "no second welcome"
    );

    // Someone new is still welcomed the first time.
    let dora = w.linked("Dora", demo.demo_player).await;
    w.rsvp(&first, &dora);
    w.sync().await;
    let messages = w.world.sim.messages(channel.get());
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[1].content,
        format!("Welcome to the table, <@{}>!", demo.demo_player)
    );
}

#[tokio::test]
async fn a_series_channel_roles_and_voice_channel_are_named_without_the_first_session_s_number() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let host = w.linked("Carol Host", demo.carol).await;
    let first = w.event(
        "Curse of Strahd - Session 1",
        3,
        "[new campaign] [online]",
        &[&host],
    );
    let report = w.sync().await;
    assert!(report.discord.unwrap().failed.is_empty());

    let (channel, guest, host_role) = w.series_objects(&first).await;
    assert_eq!(
        w.world.sim.channel(channel.get()).unwrap().name,
        "curse-of-strahd"
    );
    let role_name = |id: RoleId| {
        w.world
            .sim
            .roles(demo.guild)
            .into_iter()
            .find(|r| r.id.get() == id.get())
            .map(|r| r.name)
            .unwrap()
    };
    assert_eq!(role_name(guest), "Curse of Strahd");
    assert_eq!(role_name(host_role), "Curse of Strahd (host)");
    let series = campaigns::EventSeriesId::parse(first.as_str()).unwrap();
    let voice = w
        .store
        .series_voice_channel(&series)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        w.world.sim.channel(voice.get()).unwrap().name,
        "Curse of Strahd"
    );
}

#[tokio::test]
async fn a_withdrawn_rsvp_loses_the_guest_role_while_hosts_keep_theirs() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let host = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    let bob = w.linked("Bob", demo.bob).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[&host]);
    w.rsvp(&first, &alice);
    // A second player, so that one withdrawal is not most of the list (that would
    // wait for a second run to confirm it).
    w.rsvp(&first, &bob);
    w.sync().await;
    let (_, guest, host_role) = w.series_objects(&first).await;
    assert!(has(&w.roles_of(demo.alice), guest));
    assert!(has(&w.roles_of(demo.carol), host_role));

    // A host adds a linked member who never RSVP'd by hand, as `/players add` does.
    w.linked("Dora", demo.demo_player).await;
    w.world
        .ctx
        .discord
        .add_role(
            GuildId::new(demo.guild.get()),
            snowflake_user(demo.demo_player),
            guest,
        )
        .await
        .unwrap();
    // On Meetup, Alice withdraws and Carol no longer hosts; the next whole sync.
    w.fake.change_rsvp(&first, &alice, RsvpStatus::No).unwrap();
    w.fake.set_event_hosts(&first, Vec::new()).unwrap();
    let again = w.sync().await.discord.expect("the Discord step ran");
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert!(
        !has(&w.roles_of(demo.alice), guest),
        "the withdrawn RSVP lost the role"
    );
    assert!(
        has(&w.roles_of(demo.carol), host_role),
        "the host keeps hers"
    );
    assert!(
        has(&w.roles_of(demo.demo_player), guest),
        "a player added by hand keeps the role"
    );
}

/// A player whose Meetup account an admin unlinked loses the guest role like one who
/// withdrew, and `/sync`'s summary tells the two causes apart.
#[tokio::test]
async fn an_unlinked_player_loses_the_guest_role_and_the_summary_says_why() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let host = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    let bob = w.linked("Bob", demo.bob).await;
    let dora = w.linked("Dora", demo.demo_player).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[&host]);
    for player in [&alice, &bob, &dora] {
        w.rsvp(&first, player);
    }
    w.sync().await;
    let (_, guest, _) = w.series_objects(&first).await;
    assert!(has(&w.roles_of(demo.bob), guest));

    // An admin unlinks Bob (`/unlink`); only that: the sync takes his role back.
    w.store
        .unlink_discord_user(snowflake_user(demo.bob))
        .await
        .unwrap();
    let unlinked = w.sync().await;
    assert!(
        !has(&w.roles_of(demo.bob), guest),
        "the unlinked one lost it"
    );
    let summary = unlinked.summary();
    assert!(
        summary.contains("took 1 player role back (Meetup account unlinked)"),
        "{summary}"
    );
    assert!(!summary.contains("RSVP"), "{summary}");

    // Alice withdraws on Meetup: that one is told as a missing RSVP.
    w.fake.change_rsvp(&first, &alice, RsvpStatus::No).unwrap();
    let withdrawn = w.sync().await;
    assert!(!has(&w.roles_of(demo.alice), guest));
    let summary = withdrawn.summary();
    assert!(
        summary.contains("took 1 player role back (no RSVP to a session still to come)"),
        "{summary}"
    );
    assert!(has(&w.roles_of(demo.demo_player), guest), "Dora plays on");
}

#[tokio::test]
async fn a_short_or_emptied_rsvp_list_takes_no_guest_role_away() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let host = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    let bob = w.linked("Bob", demo.bob).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[&host]);
    w.rsvp(&first, &alice);
    w.rsvp(&first, &bob);
    w.sync().await;
    let (_, guest, _) = w.series_objects(&first).await;
    let players = [demo.alice, demo.bob];
    assert!(players.iter().all(|p| has(&w.roles_of(*p), guest)));
    let event = campaigns::MeetupEventId::parse(first.as_str()).unwrap();
    let stored = w.store.event_users(&event).await.unwrap();
    assert_eq!(stored.len(), 2);

    // Meetup's list stops short of the two its count says (then lists none at all):
    // nobody is removed, nobody loses the role, and nothing is sent to Discord.
    for shown in [1, 0] {
        w.fake.cut_rsvp_lists(Some(shown));
        w.world.sim.clear_requests();
        let report = w.sync().await;
        assert_eq!(
            report.meetup.incomplete_rsvps,
            vec![event.clone()],
            "the incomplete list is reported"
        );
        assert_eq!(w.store.event_users(&event).await.unwrap(), stored);
        assert!(players.iter().all(|p| has(&w.roles_of(*p), guest)));
        assert_eq!(
            w.role_and_post_writes(),
            Vec::<String>::new(),
            "no role change"
        );
    }
    w.fake.cut_rsvp_lists(None);

    // Both withdraw (to Meetup's answer, every stored RSVP is gone): the first run
    // keeps them, the next one confirms it and takes the role away.
    w.fake.change_rsvp(&first, &alice, RsvpStatus::No).unwrap();
    w.fake.change_rsvp(&first, &bob, RsvpStatus::No).unwrap();
    w.world.sim.clear_requests();
    let held = w.sync().await;
    assert_eq!(held.meetup.held_rsvps, 2);
    assert_eq!(w.store.event_users(&event).await.unwrap(), stored);
    assert!(players.iter().all(|p| has(&w.roles_of(*p), guest)));
    assert_eq!(w.role_and_post_writes(), Vec::<String>::new());
    let confirmed = w.sync().await;
    assert_eq!(confirmed.meetup.held_rsvps, 0);
    assert!(w.store.event_users(&event).await.unwrap().is_empty());
    assert!(players.iter().all(|p| !has(&w.roles_of(*p), guest)));
}

#[tokio::test]
async fn a_held_rsvp_removal_is_forgotten_when_meetup_lists_the_player_again() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let host = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[&host]);
    w.rsvp(&first, &alice);
    w.sync().await;
    let (_, guest, _) = w.series_objects(&first).await;

    // One odd answer without Alice, then she is listed again: she keeps the role all
    // along and is not welcomed a second time.
    w.fake.change_rsvp(&first, &alice, RsvpStatus::No).unwrap();
    assert_eq!(w.sync().await.meetup.held_rsvps, 1);
    w.fake.change_rsvp(&first, &alice, RsvpStatus::Yes).unwrap();
    w.world.sim.clear_requests();
    assert_eq!(w.sync().await.meetup.held_rsvps, 0);
    assert!(has(&w.roles_of(demo.alice), guest));
    assert_eq!(
        w.role_and_post_writes(),
        Vec::<String>::new(),
        "no welcome again"
    );
    let pending: Vec<String> = w
        .world
        .redis
        .conn()
        .smembers(schema::PENDING_RSVP_REMOVALS)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

#[tokio::test]
async fn removed_users_stay_removed_across_syncs() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let alice = w.linked("Alice", demo.alice).await;
    let bob = w.linked("Bob", demo.bob).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    w.rsvp(&first, &alice);
    w.rsvp(&first, &bob);
    w.sync().await;
    let (channel, guest, _) = w.series_objects(&first).await;
    assert!(has(&w.roles_of(demo.bob), guest));
    // A host removes Bob, as `/players remove` does.
    w.remove_by_hand(channel, Removal::User, demo.bob, guest)
        .await;
    for _ in 0..2 {
        w.sync().await;
        assert!(!has(&w.roles_of(demo.bob), guest), "Bob stays removed");
        assert!(has(&w.roles_of(demo.alice), guest));
    }
}

/// A Meetup host removed by hand (`/hosts remove`) does not get the host role back from
/// later syncs, though Meetup still lists them as host; the other host keeps theirs.
#[tokio::test]
async fn removed_hosts_stay_removed_across_syncs() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let carol = w.linked("Carol Host", demo.carol).await;
    let bob = w.linked("Bob Host", demo.bob).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[&carol, &bob]);
    w.sync().await;
    let (channel, _, host) = w.series_objects(&first).await;
    assert!(has(&w.roles_of(demo.bob), host));
    // A host removes Bob from the hosts, as `/hosts remove` does.
    w.remove_by_hand(channel, Removal::Host, demo.bob, host)
        .await;
    for _ in 0..2 {
        w.sync().await;
        assert!(!has(&w.roles_of(demo.bob), host), "Bob stays removed");
        assert!(has(&w.roles_of(demo.carol), host));
    }
    assert_eq!(
        w.world.sim.messages(channel.get()).len(),
        1,
        "only the first announcement"
    );
}

/// The announcement names only those whose role Discord really gave; one refused now
/// is announced by the run that gives it.
#[tokio::test]
async fn a_refused_role_grant_is_left_out_of_the_announcement() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let host = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    let bob = w.linked("Bob", demo.bob).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[&host]);
    w.rsvp(&first, &alice);
    w.rsvp(&first, &bob);
    w.world.sim.inject_fault(
        RouteMatch::new(
            "PUT",
            format!("/guilds/{}/members/{}/roles/", demo.guild, demo.bob),
        ),
        Fault::Status(403),
        1,
    );
    let discord = w.sync().await.discord.unwrap();
    assert!(
        discord
            .failed
            .iter()
            .any(|f| f.contains(&demo.bob.to_string())),
        "{:?}",
        discord.failed
    );
    let (channel, guest, _) = w.series_objects(&first).await;
    assert!(!has(&w.roles_of(demo.bob), guest));
    let messages = w.world.sim.messages(channel.get());
    assert_eq!(messages.len(), 1, "{messages:?}");
    let content = &messages[0].content;
    assert!(
        content.contains(&format!("<@{}>", demo.alice))
            && content.contains(&format!("<@{}>", demo.carol)),
        "{content}"
    );
    assert!(!content.contains(&format!("<@{}>", demo.bob)), "{content}");
    assert!(!messages[0].pings.users.contains(&demo.bob));

    // The next run gives Bob the role and announces him alone.
    w.sync().await;
    assert!(has(&w.roles_of(demo.bob), guest));
    let messages = w.world.sim.messages(channel.get());
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[1].pings.users, vec![demo.bob]);
    assert!(!messages[1].content.contains(&format!("<@{}>", demo.alice)));
}

#[tokio::test]
async fn shortcodes_cannot_hand_out_the_admin_role_or_take_over_general() {
    let mut w = World::new().await;
    let demo = w.world.demo.clone();
    let admin = w
        .world
        .sim
        .create_role(demo.guild, discord_sim::RoleSpec::new("Admins", 0))
        .unwrap();
    // A role nobody configured, but one that bans members.
    let moderators = w
        .world
        .sim
        .create_role(
            demo.guild,
            discord_sim::RoleSpec::new("Moderators", discord_sim::model::permissions::BAN_MEMBERS),
        )
        .unwrap();
    let alerts = w
        .world
        .sim
        .create_channel(demo.guild, "organisers", ChannelKind::Text)
        .unwrap();
    w.settings().admin_role = Some(RoleId::new(admin.get()));
    w.settings().alerts_channel = Some(ChannelId::new(alerts.get()));
    let bob = w.linked("Bob", demo.bob).await;
    let general_before = w.world.sim.channel(demo.general).unwrap();
    let first = w.event(
        "Tomb of Horrors",
        3,
        &format!(
            "[new adventure] [role {admin}] [role {moderators}] [channel {}]",
            demo.general
        ),
        &[],
    );
    w.rsvp(&first, &bob);

    // The second run still ignores the `[role]`; the `[channel]` no longer matters
    // (the series has its channel).
    for ignored in [3, 2] {
        let discord = w.sync().await.discord.unwrap();
        assert!(discord.failed.is_empty(), "{:?}", discord.failed);
        assert_eq!(discord.skipped.len(), ignored, "{:?}", discord.skipped);
    }
    let (channel, guest, _) = w.series_objects(&first).await;
    assert_ne!(channel.get(), demo.general.get(), "a channel of its own");
    assert!(has(&w.roles_of(demo.bob), guest));
    assert!(
        !w.roles_of(demo.bob).contains(&admin.get()),
        "no admin role from a Meetup description"
    );
    assert!(
        !w.roles_of(demo.bob).contains(&moderators.get()),
        "no moderator's role either"
    );
    let general = w.world.sim.channel(demo.general).unwrap();
    assert_eq!(
        general.permission_overwrites, general_before.permission_overwrites,
        "#general is untouched"
    );
    assert_eq!(general.parent_id, general_before.parent_id);
    // The organisers are told once per shortcode, not at every run.
    let told: Vec<String> = w
        .world
        .sim
        .messages(alerts)
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(told.len(), 3, "{told:?}");
    assert!(
        told.iter().any(|t| t.contains(&format!("[role {admin}]"))),
        "{told:?}"
    );
    assert!(
        told.iter()
            .any(|t| t.contains(&format!("[role {moderators}]")) && t.contains("moderator")),
        "{told:?}"
    );
    assert!(
        told.iter()
            .any(|t| t.contains(&format!("[channel {}]", demo.general))),
        "{told:?}"
    );
}

#[tokio::test]
async fn an_online_series_also_gets_a_voice_channel() {
    let w = World::new().await;
    let first = w.event("Starfinder", 3, "[new campaign] [online]", &[]);
    w.sync().await;
    let series = campaigns::EventSeriesId::parse(first.as_str()).unwrap();
    let voice = w
        .store
        .series_voice_channel(&series)
        .await
        .unwrap()
        .expect("a voice channel");
    let sim_voice = w.world.sim.channel(voice.get()).unwrap();
    assert_eq!(sim_voice.kind, ChannelKind::Voice);
    let (channel, guest, _) = w.series_objects(&first).await;
    assert_eq!(
        sim_voice.parent_id,
        w.world.sim.channel(channel.get()).unwrap().parent_id
    );
    assert!(
        sim_voice
            .permission_overwrites
            .iter()
            .any(|o| o.id.get() == guest.get())
    );
    w.world.sim.clear_requests();
    w.sync().await;
    assert_eq!(w.writes(), Vec::<String>::new());
    assert_eq!(w.check().await, Vec::new());
}

#[tokio::test]
async fn a_failed_role_creation_leaves_an_orphan_that_the_next_run_deletes() {
    let w = World::new().await;
    let guild = w.world.demo.guild;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    w.world.sim.inject_fault(
        RouteMatch::new("POST", format!("/guilds/{guild}/roles")),
        Fault::Status(502),
        50,
    );
    w.world.sim.inject_fault(
        RouteMatch::new("DELETE", "/channels/"),
        Fault::Status(502),
        50,
    );
    let report = w.sync().await.discord.unwrap();
    assert_eq!(report.failed.len(), 2, "{:?}", report.failed);
    let orphans = w.store.orphans().await.unwrap();
    let [campaigns::repo::Orphan::Channel(orphan)] = orphans.as_slice() else {
        panic!("expected one orphaned channel: {orphans:?}");
    };
    assert!(
        w.world.sim.channel(orphan.get()).is_some(),
        "still on Discord"
    );
    let series = campaigns::EventSeriesId::parse(first.as_str()).unwrap();
    assert_eq!(w.store.series_channel(&series).await.unwrap(), None);

    w.world.sim.clear_faults();
    let report = w.sync().await.discord.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(
        w.world.sim.channel(orphan.get()).is_none(),
        "the orphan is deleted"
    );
    assert_eq!(w.store.orphans().await.unwrap(), Vec::new());
    let (channel, _, _) = w.series_objects(&first).await;
    assert_ne!(channel, *orphan);
    assert_eq!(w.check().await, Vec::new());
    let with_discord = campaigns::check::check_discord(
        &w.store,
        &w.world.ctx.discord,
        w.config.discord.as_ref().map(|s| s.guild),
    )
    .await
    .unwrap();
    assert_eq!(with_discord, Vec::new());
}

/// Redis dies (and comes back with what it had acknowledged) while the Discord step
/// holds a channel that is not registered yet: the channel and roles go again, the
/// Meetup step's keys are still there, no relation is left half written, and the next
/// sync makes the series exactly one channel.
#[tokio::test]
async fn redis_restarted_mid_sync_leaves_no_half_relation() {
    let mut w = World::new().await;
    let guild = w.world.demo.guild;
    w.world.redis_server().persist().await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    let series = campaigns::EventSeriesId::parse(first.as_str()).unwrap();
    let event = campaigns::MeetupEventId::parse(first.as_str()).unwrap();
    // Step 1 alone, then step 2 held at its role creation: the channel exists on
    // Discord and nothing is registered.
    let settings = w.config.discord.take().unwrap();
    let report = w.sync().await;
    assert_eq!(
        w.store.series_of_event(&event).await.unwrap(),
        Some(series.clone())
    );
    let gate = Gate::new();
    w.world.sim.inject_fault(
        RouteMatch::new("POST", format!("/guilds/{guild}/roles")),
        Fault::Gate(gate.clone()),
        1,
    );
    let (store, discord, extras, now, step_2_settings) = (
        w.store.clone(),
        w.world.ctx.discord.clone(),
        report.meetup.extras.clone(),
        w.now,
        settings.clone(),
    );
    let task = tokio::spawn(async move {
        campaigns::sync_discord(&store, &discord, &step_2_settings, &extras, now).await
    });
    testkit::eventually("the role creation is held", || {
        let held = gate.arrived() == 1;
        async move { held.then_some(()) }
    })
    .await;
    let created = w
        .world
        .sim
        .channel_by_name(guild, "tomb-of-horrors")
        .expect("the channel is made before the roles")
        .id;
    w.world.redis_server().kill();
    gate.open();
    let outcome = task.await.unwrap();
    if let Ok(report) = &outcome {
        assert!(
            !report.failed.is_empty(),
            "registration cannot have succeeded"
        );
    }
    // What was created on Discord went again.
    assert!(
        w.world.sim.channel(created).is_none(),
        "the channel was deleted again"
    );
    let tomb_roles = |w: &World| -> Vec<String> {
        w.world
            .sim
            .roles(guild)
            .iter()
            .map(|r| r.name.clone())
            .filter(|n| n.starts_with("Tomb of Horrors"))
            .collect()
    };
    assert_eq!(tomb_roles(&w), Vec::<String>::new());

    w.world.redis_server().restart_with_data().await;
    testkit::eventually("Redis answers again", || {
        let redis = w.world.redis.clone();
        async move { redis.scan("*").await.ok() }
    })
    .await;
    // Step 1's keys survived the restart; no key of a channel or role exists, so no
    // relation is half written; the check agrees.
    assert_eq!(
        w.store.series_of_event(&event).await.unwrap(),
        Some(series.clone())
    );
    let events_key = schema::event_series_meetup_events(&series);
    assert_eq!(
        w.world.redis.scan(&events_key).await.unwrap(),
        vec![events_key.clone()]
    );
    assert_eq!(w.store.series_channel(&series).await.unwrap(), None);
    assert_eq!(
        w.world.redis.scan("*discord*").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(w.check().await, Vec::new());

    // The next sync makes the series exactly one channel.
    w.config.discord = Some(settings);
    let report = w.sync().await;
    let discord = report.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    let (channel, _, _) = w.series_objects(&first).await;
    let named: Vec<Snowflake> = w
        .world
        .sim
        .channels(guild)
        .into_iter()
        .filter(|c| c.name == "tomb-of-horrors")
        .map(|c| c.id)
        .collect();
    assert_eq!(named, vec![Snowflake::from(channel.get())]);
    assert_eq!(w.store.game_channels().await.unwrap(), vec![channel]);
    assert_eq!(tomb_roles(&w).len(), 2, "the guest and host roles, once");
    assert_eq!(w.check().await, Vec::new());
}

/// A sync that runs longer than its guard's expiry keeps the guard (it is renewed),
/// so a second sync is still refused; the guard is given back at the end.
#[tokio::test]
async fn a_sync_longer_than_its_guard_ttl_keeps_the_guard() {
    let mut w = World::new().await;
    let ttl = Duration::from_millis(1500);
    w.config.sync_guard_ttl = ttl;
    let guild = w.world.demo.guild;
    w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    let gate = Gate::new();
    w.world.sim.inject_fault(
        RouteMatch::new("POST", format!("/guilds/{guild}/channels")),
        Fault::Gate(gate.clone()),
        1,
    );
    let holder = || async {
        w.world
            .redis
            .conn()
            .get::<_, Option<String>>(schema::SYNC_RUNNING)
            .await
            .unwrap()
    };
    let second = async {
        testkit::eventually("the first sync is held at its channel creation", || {
            let held = gate.arrived() == 1;
            async move { held.then_some(()) }
        })
        .await;
        let first_holder = holder().await.expect("the first sync holds the guard");
        // Three times the guard's expiry pass while the first sync is held.
        let held_since = std::time::Instant::now();
        testkit::eventually("three expiries of the guard have passed", || {
            let passed = held_since.elapsed() > 3 * ttl;
            async move { passed.then_some(()) }
        })
        .await;
        assert_eq!(holder().await, Some(first_holder), "still the first sync's");
        let refused = sync_all(&w.store, &w.client, &w.world.ctx.discord, &w.config, w.now).await;
        assert!(
            matches!(refused, Err(FullSyncError::Busy)),
            "a second sync must not start: {refused:?}"
        );
        gate.open();
    };
    let (first, ()) = tokio::join!(w.sync(), second);
    let discord = first.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert_eq!(w.store.game_channels().await.unwrap().len(), 1);
    assert_eq!(holder().await, None, "the guard is given back");
}

/// A sync whose guard is lost mid-run (here: another run took it) says so in the logs
/// and stops its Discord writes before the next series, leaving the other run's guard
/// alone and no half-made series behind.
#[tokio::test]
async fn a_sync_that_lost_its_guard_says_so_and_stops_its_discord_writes() {
    let mut w = World::new().await;
    w.config.sync_guard_ttl = Duration::from_millis(1500);
    let guild = w.world.demo.guild;
    w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    w.event("Curse of Strahd", 4, "[new adventure]", &[]);
    let gate = Gate::new();
    w.world.sim.inject_fault(
        RouteMatch::new("POST", format!("/guilds/{guild}/channels")),
        Fault::Gate(gate.clone()),
        1,
    );
    let stop = campaigns::StopSignal::default();
    let mut outcome = None;
    let logs = testkit::logged(async {
        let run = sync_all_until(
            &w.store,
            &w.client,
            &w.world.ctx.discord,
            &w.config,
            w.now,
            &stop,
        );
        let take_over = async {
            testkit::eventually("the sync is held at its first channel", || {
                let held = gate.arrived() == 1;
                async move { held.then_some(()) }
            })
            .await;
            let _: () = w
                .world
                .redis
                .conn()
                .set(schema::SYNC_RUNNING, "another-run")
                .await
                .unwrap();
            testkit::eventually("the sync notices it lost the guard", || {
                let lost = stop.is_stopped();
                async move { lost.then_some(()) }
            })
            .await;
            gate.open();
        };
        let (report, ()) = tokio::join!(run, take_over);
        outcome = Some(report);
    })
    .await;
    let discord = outcome.unwrap().unwrap().discord.unwrap();
    assert!(
        discord
            .failed
            .iter()
            .any(|f| f == campaigns::discord_sync::STOPPED),
        "{:?}",
        discord.failed
    );
    assert!(logs.contains("lost its sync guard"), "{logs}");
    // The series under way was finished; the other was not started.
    assert_eq!(w.store.game_channels().await.unwrap().len(), 1);
    let made: Vec<String> = w
        .world
        .sim
        .channels(guild)
        .into_iter()
        .map(|c| c.name)
        .filter(|n| n == "tomb-of-horrors" || n == "curse-of-strahd")
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(w.check().await, Vec::new());
    let guard: Option<String> = w
        .world
        .redis
        .conn()
        .get(schema::SYNC_RUNNING)
        .await
        .unwrap();
    assert_eq!(
        guard.as_deref(),
        Some("another-run"),
        "not ours to give back"
    );
}

#[tokio::test]
async fn a_full_category_falls_back_to_the_next_one() {
    let mut w = World::new().await;
    let guild = w.world.demo.guild;
    let full = w
        .world
        .sim
        .create_channel(guild, "Campaigns I", ChannelKind::Category)
        .unwrap();
    for i in 0..50 {
        w.world
            .sim
            .create_channel_with(
                guild,
                ChannelSpec::new(format!("old-{i}"), ChannelKind::Text).parent(full),
            )
            .unwrap();
    }
    let spare = w
        .world
        .sim
        .create_channel(guild, "Campaigns II", ChannelKind::Category)
        .unwrap();
    w.settings().categories = vec![ChannelId::new(full.get()), ChannelId::new(spare.get())];
    let first = w.event("Tomb of Horrors", 3, "[new campaign]", &[]);
    w.sync().await;
    let (channel, _, _) = w.series_objects(&first).await;
    assert_eq!(
        w.world.sim.channel(channel.get()).unwrap().parent_id,
        Some(spare)
    );
}

#[tokio::test]
async fn the_free_spots_message_is_edited_in_place() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let alice = w.linked("Alice", demo.alice).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    w.rsvp(&first, &alice);
    w.sync().await;
    let spots = ChannelId::new(demo.campaigns.get());
    let messages = w.world.sim.messages(spots.get());
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].content.contains("5 of 6 seats free"),
        "{}",
        messages[0].content
    );
    let bob = w.linked("Bob", demo.bob).await;
    w.rsvp(&first, &bob);
    w.sync().await;
    let messages = w.world.sim.messages(spots.get());
    assert_eq!(messages.len(), 1, "edited, not posted again");
    assert!(
        messages[0].content.contains("4 of 6 seats free"),
        "{}",
        messages[0].content
    );
}

#[tokio::test]
async fn free_spots_count_guests_and_leave_out_sessions_whose_rsvps_are_unknown() {
    let w = World::new().await;
    let demo = w.world.demo.clone();
    let alice = w.linked("Alice", demo.alice).await;
    let bob = w.linked("Bob", demo.bob).await;
    let first = w.event("Tomb of Horrors", 3, "[new campaign]", &[]);
    // Alice brings two guests.
    w.fake.add_rsvp(&first, &alice, RsvpStatus::Yes, 2).unwrap();
    // The second session is full already, but only the next session's RSVPs are read.
    let second = w.event(
        "Tomb of Horrors II",
        10,
        &format!("[campaign {first}]"),
        &[],
    );
    for _ in 0..6 {
        let m = w.fake.add_member("Someone");
        w.rsvp(&second, &m);
    }
    w.rsvp(&second, &bob);
    w.sync().await;
    let content = w.world.sim.messages(demo.campaigns.get())[0]
        .content
        .clone();
    assert!(content.contains("3 of 6 seats free"), "{content}");
    assert!(!content.contains("Tomb of Horrors II"), "{content}");
}

#[tokio::test]
async fn the_check_reports_a_game_channel_deleted_on_discord_and_the_sync_leaves_it_alone() {
    let w = World::new().await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    w.sync().await;
    let (channel, _, _) = w.series_objects(&first).await;
    w.world.ctx.discord.delete_channel(channel).await.unwrap();
    let findings = campaigns::check::check_discord(
        &w.store,
        &w.world.ctx.discord,
        w.config.discord.as_ref().map(|s| s.guild),
    )
    .await
    .unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0].subject,
        schema::discord_channel_event_series(channel)
    );
    assert!(findings[0].problem.contains("no longer exists on Discord"));
    let report = w.sync().await.discord.unwrap();
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.created.is_empty(), "{:?}", report.created);
}

#[tokio::test]
async fn the_feature_s_sync_job_runs_both_steps_at_start_up_and_every_15_minutes() {
    let w = World::new().await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    let feature = campaigns::feature(&w.world.ctx, Some(w.config.clone()));
    let job = feature
        .jobs
        .iter()
        .find(|j| j.name() == campaigns::jobs::SYNC_JOB)
        .expect("the sync job");
    assert!(job.runs_at_startup());
    assert_eq!(job.period(), Duration::from_secs(15 * 60));
    job.run_now().await.unwrap();
    let (channel, _, _) = w.series_objects(&first).await;
    assert!(w.world.sim.channel(channel.get()).is_some());
}

/// Where the install link sends the browser back to (registered with discord-sim).
const INSTALL_CALLBACK: &str = "http://127.0.0.1:9/clips/install/callback";

/// A guild owned by a person, with the demo players and an "Organisers" role the
/// owner made, that added Tavern through the install link asking for what the
/// feature declares (`Catalogue::bot_permissions`). The bot is an ordinary member
/// there: its managed role holds those permissions and sits just above `@everyone`,
/// below "Organisers". The world's Discord settings now point at it.
/// Alice's one-shot "Tomb of Horrors", synced: its text channel, guest and host roles,
/// series and voice channel.
struct AlicesGame {
    channel: ChannelId,
    guest: RoleId,
    host: RoleId,
    series: campaigns::EventSeriesId,
    voice: ChannelId,
}

/// Links Alice, makes her game and syncs it (no failure).
async fn alices_game(w: &mut World) -> AlicesGame {
    let demo = w.world.demo.clone();
    let alice = w.linked("Alice", demo.alice).await;
    let first = w.event("Tomb of Horrors", 1, "[new adventure] [online]", &[]);
    w.rsvp(&first, &alice);
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    let (channel, guest, host) = w.series_objects(&first).await;
    let series = campaigns::EventSeriesId::parse(first.as_str()).unwrap();
    let voice = w
        .store
        .series_voice_channel(&series)
        .await
        .unwrap()
        .expect("a voice channel");
    AlicesGame {
        channel,
        guest,
        host,
        series,
        voice,
    }
}

async fn installed_guild(w: &mut World) -> (Snowflake, Snowflake) {
    let sim = w.world.sim.clone();
    let demo = w.world.demo.clone();
    let owner = sim.create_user("Olivia Owner");
    let guild = sim.create_user_guild("Dragons and Dice", owner).unwrap();
    for user in [demo.alice, demo.bob, demo.carol, demo.demo_player] {
        sim.add_member(guild, user).unwrap();
    }
    let organisers = sim
        .create_role(guild, discord_sim::RoleSpec::new("Organisers", 0))
        .unwrap();
    let free_spots = sim
        .create_channel(guild, "free-spots", ChannelKind::Text)
        .unwrap();
    let mut settings = DiscordSettings::new(GuildId::new(guild.get()));
    settings.free_spots_channel = Some(ChannelId::new(free_spots.get()));
    settings.organiser_role = Some(RoleId::new(organisers.get()));
    *w.settings() = settings;

    let feature = campaigns::feature(&w.world.ctx, Some(w.config.clone()));
    w.world.ctx.catalogue.fill(std::slice::from_ref(&feature));
    let permissions = w.world.ctx.catalogue.bot_permissions();
    sim.register_redirect_uri(INSTALL_CALLBACK);
    let app = discord::oauth::OAuthApp::new(
        sim.application_id().to_string(),
        discord::oauth::ClientSecret::from(sim.client_secret()),
        INSTALL_CALLBACK.parse().unwrap(),
        discord::oauth::OAuthEndpoints::at(&sim.http_url()).unwrap(),
    );
    let mut link = app.authorize_url(
        "install",
        &[
            discord::oauth::Scope::Bot,
            discord::oauth::Scope::ApplicationsCommands,
        ],
        Some(discord::oauth::BotInstall {
            guild: GuildId::new(guild.get()),
            permissions,
        }),
    );
    link.query_pairs_mut()
        .append_pair("sim_user_id", &owner.to_string());
    let approved = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(link)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status().as_u16(), 302, "the owner added Tavern");
    let bot = sim
        .member(guild, sim.bot_user_id())
        .expect("the bot joined");
    let bot_role = sim
        .roles(guild)
        .into_iter()
        .find(|r| bot.roles.contains(&r.id))
        .expect("the bot's managed role");
    assert_eq!(
        (bot_role.managed, bot_role.permissions, bot_role.position),
        (true, permissions, 1)
    );
    assert_ne!(
        sim.guild(guild).unwrap().owner_id,
        sim.bot_user_id(),
        "the bot does not own it"
    );
    (guild, bot_role.id)
}

#[tokio::test]
async fn a_guild_that_added_tavern_through_the_install_link_gets_channels_roles_and_members() {
    let mut w = World::new().await;
    let (guild, bot_role) = installed_guild(&mut w).await;
    let demo = w.world.demo.clone();
    let host = w.linked("Carol Host", demo.carol).await;
    let alice = w.linked("Alice", demo.alice).await;
    let first = w.event(
        "Curse of Strahd",
        3,
        "Gothic horror.\n[new campaign]",
        &[&host],
    );
    w.rsvp(&first, &alice);

    let report = w.sync().await;
    let discord = report.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);

    let (channel, guest, host_role) = w.series_objects(&first).await;
    let sim = &w.world.sim;
    let sim_channel = sim.channel(channel.get()).expect("the channel exists");
    assert_eq!(sim_channel.guild_id, Some(guild));
    let bot = sim.bot_user_id();
    for id in [guest.get(), host_role.get(), bot.get()] {
        assert!(
            sim_channel
                .permission_overwrites
                .iter()
                .any(|o| o.id.get() == id
                    && o.allow & discord::model::permissions::VIEW_CHANNEL != 0),
            "an overwrite letting {id} in"
        );
    }
    // The roles the bot made sit below its own, so it may give them.
    let position = |id: u64| {
        sim.roles(guild)
            .into_iter()
            .find(|r| r.id.get() == id)
            .map(|r| r.position)
            .unwrap()
    };
    assert!(position(guest.get()) < position(bot_role.get()));
    assert!(position(host_role.get()) < position(bot_role.get()));
    let roles_of = |user: Snowflake| -> Vec<u64> {
        sim.member(guild, user)
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default()
    };
    assert!(has(&roles_of(demo.alice), guest));
    assert!(has(&roles_of(demo.carol), host_role));
    let messages = sim.messages(channel.get());
    assert_eq!(messages.len(), 1, "the announcement");
    assert_eq!(messages[0].author_id, bot);

    // Nothing was refused, and a second sync has nothing left to do.
    assert!(
        sim.requests().iter().all(|r| r.status != 403),
        "{:?}",
        sim.requests()
            .iter()
            .filter(|r| r.status == 403)
            .collect::<Vec<_>>()
    );
    sim.clear_requests();
    w.sync().await;
    assert_eq!(w.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn a_role_shortcode_above_tavern_s_role_is_refused_with_how_to_fix_it_until_an_admin_drags_it()
 {
    let mut w = World::new().await;
    let (guild, bot_role) = installed_guild(&mut w).await;
    let demo = w.world.demo.clone();
    let sim = w.world.sim.clone();
    // The owner's "Veterans", made before Tavern came: above Tavern's role.
    let veterans = sim
        .create_role(guild, discord_sim::RoleSpec::new("Veterans", 0))
        .unwrap();
    sim.set_role_position(guild, veterans, 3).unwrap();
    let alerts = sim
        .create_channel(guild, "organisers", ChannelKind::Text)
        .unwrap();
    w.settings().alerts_channel = Some(ChannelId::new(alerts.get()));
    let alice = w.linked("Alice", demo.alice).await;
    let first = w.event(
        "Tomb of Horrors",
        3,
        &format!("[new adventure] [role {veterans}]"),
        &[],
    );
    w.rsvp(&first, &alice);

    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert!(
        discord
            .skipped
            .iter()
            .any(|s| s.contains(&format!("[role {veterans}]"))),
        "{:?}",
        discord.skipped
    );
    let roles_of = |user: Snowflake| sim.member(guild, user).unwrap().roles;
    let (_, guest, _) = w.series_objects(&first).await;
    assert!(roles_of(demo.alice).iter().any(|r| r.get() == guest.get()));
    assert!(!roles_of(demo.alice).contains(&veterans));
    let told: Vec<String> = sim
        .messages(alerts)
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert!(
        told.iter()
            .any(|t| t.contains(&format!("[role {veterans}]"))
                && t.contains("drag Tavern's role above it")),
        "{told:?}"
    );
    assert!(
        sim.requests().iter().all(|r| r.status != 403),
        "the sync did not ask Discord for what it would refuse"
    );

    // An admin drags Tavern's role to the top: the next run gives the role.
    let top = i64::try_from(sim.roles(guild).len()).unwrap();
    sim.set_role_position(guild, bot_role, top).unwrap();
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert!(roles_of(demo.alice).contains(&veterans));
}

#[tokio::test]
async fn in_a_guild_that_added_tavern_through_the_install_link_an_ended_game_is_reminded_and_deleted()
 {
    let mut w = World::new().await;
    let (guild, _) = installed_guild(&mut w).await;
    let AlicesGame {
        channel,
        guest,
        host,
        series,
        voice,
    } = alices_game(&mut w).await;

    // A day after the session, the adventure is reminded that nothing is planned.
    let report = w.lifecycle(w.now + TimeDelta::days(3)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.reminded, vec![channel]);

    // Ended, it is deleted with its roles eight hours later.
    let ended = w.now + TimeDelta::days(3);
    w.store.end_adventure(channel, ended).await.unwrap();
    let report = w.lifecycle(ended + TimeDelta::hours(8)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.orphaned.is_empty(), "{report:?}");
    assert_eq!(report.deleted, vec![series]);
    let sim = &w.world.sim;
    assert!(sim.channel(channel.get()).is_none() && sim.channel(voice.get()).is_none());
    let roles: Vec<u64> = sim.roles(guild).iter().map(|r| r.id.get()).collect();
    assert!(!roles.contains(&guest.get()) && !roles.contains(&host.get()));
    assert!(
        sim.requests().iter().all(|r| r.status != 403),
        "{:?}",
        sim.requests()
            .iter()
            .filter(|r| r.status == 403)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_check_reports_a_game_channel_an_admin_closed_to_tavern_instead_of_failing() {
    let mut w = World::new().await;
    installed_guild(&mut w).await;
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    let second = w.event("Curse of Strahd", 4, "[new adventure]", &[]);
    w.sync().await;
    let (closed, _, _) = w.series_objects(&first).await;
    let (open, _, _) = w.series_objects(&second).await;
    // An admin takes Tavern's own overwrite away and denies it the channel.
    w.world
        .sim
        .set_channel_overwrites(
            closed.get(),
            vec![discord_sim::PermissionOverwrite {
                id: w.world.sim.bot_user_id(),
                kind: discord_sim::OverwriteKind::Member,
                allow: 0,
                deny: discord::model::permissions::VIEW_CHANNEL,
            }],
        )
        .unwrap();

    let findings = campaigns::check::check_discord(
        &w.store,
        &w.world.ctx.discord,
        w.config.discord.as_ref().map(|s| s.guild),
    )
    .await
    .expect("the check runs to the end");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0].subject,
        schema::discord_channel_event_series(closed)
    );
    assert!(
        findings[0].problem.contains("Tavern may not see"),
        "{findings:?}"
    );
    assert!(
        !findings
            .iter()
            .any(|f| f.subject == schema::discord_channel_event_series(open))
    );
}

#[tokio::test]
async fn the_check_says_once_that_tavern_was_removed_from_the_server_instead_of_advice_per_channel()
{
    let mut w = World::new().await;
    let (guild, _) = installed_guild(&mut w).await;
    w.event("Tomb of Horrors", 3, "[new adventure] [online]", &[]);
    w.event("Curse of Strahd", 4, "[new adventure]", &[]);
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert_eq!(w.store.game_channels().await.unwrap().len(), 2);
    // An admin kicks Tavern: Discord answers 403 Missing Access for every channel.
    w.world.sim.remove_bot_from_guild(guild).unwrap();

    let findings = campaigns::check::check_discord(
        &w.store,
        &w.world.ctx.discord,
        w.config.discord.as_ref().map(|s| s.guild),
    )
    .await
    .expect("the check runs to the end");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].subject, campaigns::check::GUILD_SETTING);
    let problem = &findings[0].problem;
    assert!(
        problem.contains(&format!("Tavern is not in the server {guild}"))
            && problem.contains("install link")
            && !problem.contains("View Channel"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_game_channel_reopened_exactly_as_it_was_then_closed_again_is_told_again() {
    let mut w = World::new().await;
    let (guild, _) = installed_guild(&mut w).await;
    let sim = w.world.sim.clone();
    let demo = w.world.demo.clone();
    let alerts = sim
        .create_channel(guild, "organisers", ChannelKind::Text)
        .unwrap();
    w.settings().alerts_channel = Some(ChannelId::new(alerts.get()));
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    let (channel, _, _) = w.series_objects(&first).await;
    let as_it_was = sim.channel(channel.get()).unwrap().permission_overwrites;
    // An admin takes Tavern's own overwrite away and denies it the channel.
    let close = || {
        sim.set_channel_overwrites(
            channel.get(),
            vec![discord_sim::PermissionOverwrite {
                id: sim.bot_user_id(),
                kind: discord_sim::OverwriteKind::Member,
                allow: 0,
                deny: discord::model::permissions::VIEW_CHANNEL,
            }],
        )
        .unwrap();
    };
    let told = || {
        sim.messages(alerts)
            .into_iter()
            .filter(|m| m.content.contains(&channel.to_string()))
            .count()
    };
    close();
    w.sync().await;
    assert_eq!(told(), 1);

    // The admin puts back exactly what Tavern had set, so the sync has nothing to edit
    // there; Alice's welcome is the next write to the channel, and it goes through.
    sim.set_channel_overwrites(channel.get(), as_it_was)
        .unwrap();
    let alice = w.linked("Alice", demo.alice).await;
    w.rsvp(&first, &alice);
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert!(
        !discord
            .changed
            .iter()
            .any(|c| c.contains(&format!("channel {channel} ("))),
        "no edit: {:?}",
        discord.changed
    );
    assert_eq!(sim.messages(channel.get()).len(), 1, "Alice's welcome");

    // Closed again later: the organisers are told again.
    close();
    let discord = w.sync().await.discord.unwrap();
    assert!(
        discord
            .skipped
            .iter()
            .any(|s| s.contains(&format!("channel {channel} skipped"))),
        "{:?}",
        discord.skipped
    );
    assert_eq!(told(), 2);
}

#[tokio::test]
async fn a_game_channel_an_admin_closed_to_tavern_is_a_skip_with_the_reason_and_the_organisers_are_told_once()
 {
    let mut w = World::new().await;
    let (guild, _) = installed_guild(&mut w).await;
    let sim = w.world.sim.clone();
    let demo = w.world.demo.clone();
    let alerts = sim
        .create_channel(guild, "organisers", ChannelKind::Text)
        .unwrap();
    w.settings().alerts_channel = Some(ChannelId::new(alerts.get()));
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    let second = w.event("Curse of Strahd", 4, "[new adventure]", &[]);
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    let (closed, _, _) = w.series_objects(&first).await;
    let (open, _, _) = w.series_objects(&second).await;
    // An admin takes Tavern's own overwrite away and denies it the channel.
    sim.set_channel_overwrites(
        closed.get(),
        vec![discord_sim::PermissionOverwrite {
            id: sim.bot_user_id(),
            kind: discord_sim::OverwriteKind::Member,
            allow: 0,
            deny: discord::model::permissions::VIEW_CHANNEL,
        }],
    )
    .unwrap();
    let told = |channel: ChannelId| -> Vec<String> {
        sim.messages(alerts)
            .into_iter()
            .map(|m| m.content)
            .filter(|t| t.contains(&channel.to_string()))
            .collect()
    };
    let (guest, _) = w.store.channel_roles(closed).await.unwrap();
    let guest = guest.unwrap();

    // Alice, then Bob, sign up while it is closed.
    for (run, (name, user)) in [(1, ("Alice", demo.alice)), (2, ("Bob", demo.bob))] {
        let player = w.linked(name, user).await;
        w.rsvp(&first, &player);
        let discord = w.sync().await.discord.unwrap();
        assert!(
            discord.failed.is_empty(),
            "run {run}: a closed channel is no failure: {:?}",
            discord.failed
        );
        let skipped: Vec<&String> = discord
            .skipped
            .iter()
            .filter(|s| s.contains(&format!("channel {closed} skipped")))
            .collect();
        assert_eq!(skipped.len(), 1, "run {run}: {:?}", discord.skipped);
        assert!(
            skipped[0].contains("Missing Access") && skipped[0].contains("View Channel"),
            "{skipped:?}"
        );
        assert!(
            !discord
                .skipped
                .iter()
                .any(|s| s.contains(&open.to_string())),
            "{:?}",
            discord.skipped
        );
        let alerts = told(closed);
        assert_eq!(alerts.len(), 1, "run {run}: told once: {alerts:?}");
        assert!(alerts[0].contains("View Channel"), "{alerts:?}");
        // They play already; their welcome waits for the channel.
        let roles = sim.member(guild, user).unwrap().roles;
        assert!(roles.iter().any(|r| r.get() == guest.get()), "run {run}");
        assert!(sim.messages(closed.get()).is_empty(), "run {run}");
    }

    // The admin gives the channel back: the next run puts the game's permissions back
    // and welcomes both, pinging exactly them.
    sim.set_channel_overwrites(closed.get(), vec![]).unwrap();
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert!(
        !discord
            .skipped
            .iter()
            .any(|s| s.contains(&closed.to_string())),
        "{:?}",
        discord.skipped
    );
    assert!(
        discord
            .changed
            .iter()
            .any(|c| c.contains(&format!("channel {closed}")) && c.contains("permissions")),
        "{:?}",
        discord.changed
    );
    let messages = sim.messages(closed.get());
    assert_eq!(messages.len(), 1, "one welcome: {messages:?}");
    for user in [demo.alice, demo.bob] {
        assert!(
            messages[0].content.contains(&format!("<@{user}>")),
            "{messages:?}"
        );
    }
    let mut pinged = messages[0].pings.users.clone();
    pinged.sort();
    let mut expected = vec![demo.alice, demo.bob];
    expected.sort();
    assert_eq!(pinged, expected);
    // Welcomed once: nothing is owed any more.
    sim.clear_requests();
    w.sync().await;
    assert_eq!(w.role_and_post_writes(), Vec::<String>::new());
}

#[tokio::test]
async fn an_ended_game_in_a_channel_an_admin_closed_to_tavern_is_skipped_and_held_not_failed_and_the_organisers_are_told_once()
 {
    let mut w = World::new().await;
    let (guild, _) = installed_guild(&mut w).await;
    let sim = w.world.sim.clone();
    let alerts = sim
        .create_channel(guild, "organisers", ChannelKind::Text)
        .unwrap();
    w.settings().alerts_channel = Some(ChannelId::new(alerts.get()));
    let AlicesGame {
        channel,
        guest,
        host,
        series,
        voice,
    } = alices_game(&mut w).await;
    let told = |what: &str| -> Vec<String> {
        sim.messages(alerts)
            .into_iter()
            .map(|m| m.content)
            .filter(|t| t.contains(&channel.to_string()) && t.contains(what))
            .collect()
    };
    // An admin takes Tavern's own overwrite away and denies it the channel.
    let close = || {
        sim.set_channel_overwrites(
            channel.get(),
            vec![discord_sim::PermissionOverwrite {
                id: sim.bot_user_id(),
                kind: discord_sim::OverwriteKind::Member,
                allow: 0,
                deny: discord::model::permissions::VIEW_CHANNEL,
            }],
        )
        .unwrap();
    };
    close();

    // The reminder Discord refuses is a skipped line at each run, not a failure; the
    // organisers are told once.
    let due = w.now + TimeDelta::days(3);
    for run in 0..2 {
        let report = w.lifecycle(due + TimeDelta::minutes(15 * run)).await;
        assert_eq!(report.failed, 0, "run {run}: {report:?}");
        assert!(report.reminded.is_empty(), "{report:?}");
        assert_eq!(report.skipped.len(), 1, "run {run}: {report:?}");
        let line = &report.skipped[0];
        assert!(
            line.contains(&format!("channel {channel}"))
                && line.contains("Missing Access")
                && line.contains("Send Messages"),
            "{line}"
        );
        let reminders = told("remind");
        assert_eq!(reminders.len(), 1, "run {run}: told once: {reminders:?}");
        assert!(reminders[0].contains("View Channel"), "{reminders:?}");
    }

    // The admin gives it back: the next run reminds the hosts.
    sim.set_channel_overwrites(channel.get(), vec![]).unwrap();
    let report = w.lifecycle(due + TimeDelta::minutes(30)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(report.reminded, vec![channel]);

    // Ended, then closed again before its deletion: the deletion is held, whole, and
    // the organisers are told once that an admin must delete it or give it back.
    let ended = due + TimeDelta::hours(1);
    w.store.end_adventure(channel, ended).await.unwrap();
    close();
    for run in 0..2 {
        let report = w
            .lifecycle(ended + TimeDelta::hours(8) + TimeDelta::minutes(15 * run))
            .await;
        assert_eq!(report.failed, 0, "run {run}: {report:?}");
        assert!(report.deleted.is_empty(), "run {run}: {report:?}");
        assert!(report.orphaned.is_empty(), "run {run}: {report:?}");
        assert_eq!(report.skipped.len(), 1, "run {run}: {report:?}");
        assert!(
            report.skipped[0].contains(&format!("channel {channel} held"))
                && report.skipped[0].contains("Manage Channels"),
            "{report:?}"
        );
        let deletions = told("cannot delete");
        assert_eq!(deletions.len(), 1, "run {run}: told once: {deletions:?}");
        assert!(
            deletions[0].contains("Manage Channels") && deletions[0].contains("delete it by hand"),
            "{deletions:?}"
        );
    }
    // Nothing of the game was forgotten or half deleted, and nothing left for the
    // sync to fail on.
    assert_eq!(
        w.store.series_channel(&series).await.unwrap(),
        Some(channel)
    );
    assert!(sim.channel(channel.get()).is_some() && sim.channel(voice.get()).is_some());
    let roles: Vec<u64> = sim.roles(guild).iter().map(|r| r.id.get()).collect();
    assert!(roles.contains(&guest.get()) && roles.contains(&host.get()));
    assert_eq!(w.store.orphans().await.unwrap(), vec![]);

    // The admin gives Tavern the channel back: the next run finishes the deletion.
    sim.set_channel_overwrites(channel.get(), vec![]).unwrap();
    let report = w.lifecycle(ended + TimeDelta::hours(9)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(report.deleted, vec![series]);
    assert!(sim.channel(channel.get()).is_none() && sim.channel(voice.get()).is_none());
    let roles: Vec<u64> = sim.roles(guild).iter().map(|r| r.id.get()).collect();
    assert!(!roles.contains(&guest.get()) && !roles.contains(&host.get()));
    for set in [schema::CLOSED_CHANNELS, schema::UNDELETABLE_CHANNELS] {
        let left: Vec<String> = w.world.redis.conn().smembers(set).await.unwrap();
        assert!(left.is_empty(), "{set}: {left:?}");
    }
}

/// An ended game of Alice's in a guild that added Tavern through the install link,
/// whose guest role an admin dragged above Tavern's own role before the deletion was
/// due: the alerts channel, the game and its deletion time.
async fn ended_game_with_its_role_above_tavern_s(
    w: &mut World,
) -> (Snowflake, Snowflake, Snowflake, AlicesGame, DateTime<Utc>) {
    let (guild, bot_role) = installed_guild(w).await;
    let sim = w.world.sim.clone();
    let alerts = sim
        .create_channel(guild, "organisers", ChannelKind::Text)
        .unwrap();
    w.settings().alerts_channel = Some(ChannelId::new(alerts.get()));
    let game = alices_game(w).await;
    // A day after the session the hosts are reminded; then the adventure is ended.
    let ended = w.now + TimeDelta::days(3);
    let report = w.lifecycle(ended).await;
    assert_eq!(report.reminded, vec![game.channel], "{report:?}");
    w.store.end_adventure(game.channel, ended).await.unwrap();
    let top = i64::try_from(sim.roles(guild).len()).unwrap();
    sim.set_role_position(guild, Snowflake::new(game.guest.get()), top)
        .unwrap();
    (guild, bot_role, alerts, game, ended + TimeDelta::hours(8))
}

#[tokio::test]
async fn an_ended_game_whose_role_an_admin_moved_above_tavern_s_is_held_not_forgotten_and_finished_once_tavern_s_role_is_dragged_above_it()
 {
    let mut w = World::new().await;
    let (guild, bot_role, alerts, game, due) =
        ended_game_with_its_role_above_tavern_s(&mut w).await;
    let AlicesGame {
        channel,
        guest,
        host,
        series,
        voice,
    } = game;
    let sim = w.world.sim.clone();
    let role_exists = |role: RoleId| sim.roles(guild).iter().any(|r| r.id.get() == role.get());
    let told = || -> Vec<String> {
        sim.messages(alerts)
            .into_iter()
            .map(|m| m.content)
            .filter(|t| t.contains(&guest.to_string()))
            .collect()
    };

    // The deletion Discord refuses for the role is a skipped line at each run, not a
    // failure; the game is kept, and the organisers are told once what to do.
    for run in 0..2 {
        let report = w.lifecycle(due + TimeDelta::minutes(15 * run)).await;
        assert_eq!(report.failed, 0, "run {run}: {report:?}");
        assert!(report.deleted.is_empty(), "run {run}: {report:?}");
        assert!(report.orphaned.is_empty(), "run {run}: {report:?}");
        assert_eq!(report.skipped.len(), 1, "run {run}: {report:?}");
        assert!(
            report.skipped[0].contains(&format!("role {guest} held"))
                && report.skipped[0].contains("drag Tavern's role above it"),
            "{report:?}"
        );
        let alerts = told();
        assert_eq!(alerts.len(), 1, "run {run}: told once: {alerts:?}");
        assert!(
            alerts[0].contains("drag Tavern's role above it")
                && alerts[0].contains("delete the role by hand"),
            "{alerts:?}"
        );
    }
    // The channels and the other role went at the time promised; the game's record
    // stays, nothing is an orphan, and the sync has nothing to fail on.
    assert!(sim.channel(channel.get()).is_none() && sim.channel(voice.get()).is_none());
    assert!(role_exists(guest) && !role_exists(host));
    assert_eq!(
        w.store.series_channel(&series).await.unwrap(),
        Some(channel)
    );
    assert_eq!(w.store.orphans().await.unwrap(), vec![]);
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);

    // An admin drags Tavern's role to the top: the next run finishes ending the game.
    let top = i64::try_from(sim.roles(guild).len()).unwrap();
    sim.set_role_position(guild, bot_role, top).unwrap();
    let report = w.lifecycle(due + TimeDelta::hours(1)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(report.deleted, vec![series.clone()]);
    assert!(!role_exists(guest));
    assert_eq!(w.store.series_channel(&series).await.unwrap(), None);
    let left: Vec<String> = w
        .world
        .redis
        .conn()
        .smembers(schema::UNDELETABLE_ROLES)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(told().len(), 1, "not told again");
}

#[tokio::test]
async fn an_ended_game_whose_role_above_tavern_s_an_admin_deletes_by_hand_is_finished_by_the_next_run()
 {
    let mut w = World::new().await;
    let (guild, _, _, game, due) = ended_game_with_its_role_above_tavern_s(&mut w).await;
    let report = w.lifecycle(due).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.deleted.is_empty(), "{report:?}");

    // The admin deletes the role by hand: gone counts as done. (discord-sim deletes
    // roles only through the API, so the role goes back down first and the deletion is
    // asked with the bot's token: what the lifecycle then finds is the same, no role.)
    w.world
        .sim
        .set_role_position(guild, Snowflake::new(game.guest.get()), 1)
        .unwrap();
    w.world
        .ctx
        .discord
        .delete_role(GuildId::new(guild.get()), game.guest)
        .await
        .unwrap();
    let report = w.lifecycle(due + TimeDelta::minutes(15)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(report.orphaned.is_empty(), "{report:?}");
    assert_eq!(report.deleted, vec![game.series.clone()]);
    assert_eq!(w.store.series_channel(&game.series).await.unwrap(), None);
}

#[tokio::test]
async fn a_new_session_of_an_ended_game_whose_channel_went_while_its_role_was_held_gets_a_new_channel()
 {
    let mut w = World::new().await;
    let (guild, _, alerts, game, due) = ended_game_with_its_role_above_tavern_s(&mut w).await;
    let sim = w.world.sim.clone();
    let demo = w.world.demo.clone();
    // The end is held on the guest role; the channels and the host role are gone.
    let report = w.lifecycle(due).await;
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(sim.channel(game.channel.get()).is_none());

    // Meanwhile Alice schedules the next session, and Bob takes a seat.
    w.now = due + TimeDelta::minutes(5);
    let bob = w.linked("Bob", demo.bob).await;
    let next = w.event(
        "Tomb of Horrors - Session 2",
        2,
        &format!("[campaign {}] [online]", game.series),
        &[],
    );
    w.rsvp(&next, &bob);
    w.sync().await;

    // The next lifecycle run sees the game go on: what was deleted is forgotten, the
    // old role Discord still refuses to delete is no longer the game's, and the
    // organisers are told.
    let report = w.lifecycle(w.now + TimeDelta::minutes(10)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.resumed, vec![game.series.clone()], "{report:?}");
    assert!(report.deleted.is_empty(), "{report:?}");
    let told: Vec<String> = sim
        .messages(alerts)
        .into_iter()
        .map(|m| m.content)
        .filter(|t| t.contains("goes on"))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("a new channel") && told[0].contains(&format!("<@&{}>", game.guest)),
        "{told:?}"
    );
    assert!(
        told[0].contains(
            "was scheduled after Tavern had begun deleting it, so the game goes on: \
             the next sync (within 15 minutes) gives it"
        ),
        "{told:?}"
    );

    // The next sync gives the game a new channel, voice channel and roles, and Bob his.
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert!(discord.skipped.is_empty(), "{:?}", discord.skipped);
    let channel = w.store.series_channel(&game.series).await.unwrap().unwrap();
    assert_ne!(channel, game.channel);
    assert!(sim.channel(channel.get()).is_some());
    let (guest, host) = w.store.channel_roles(channel).await.unwrap();
    let guest = guest.unwrap();
    assert!(host.is_some() && guest != game.guest);
    let bobs: Vec<u64> = sim
        .member(guild, demo.bob)
        .map(|m| m.roles.iter().map(|r| r.get()).collect())
        .unwrap_or_default();
    assert!(has(&bobs, guest), "{discord:?}");
    let voice = w.store.series_voice_channel(&game.series).await.unwrap();
    assert!(voice.is_some_and(|v| v != game.voice && sim.channel(v.get()).is_some()));

    // And the lifecycle keeps it like any other game: nothing held, nothing deleted.
    let report = w.lifecycle(w.now + TimeDelta::minutes(30)).await;
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(
        report.skipped.is_empty() && report.deleted.is_empty() && report.resumed.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        w.store.series_channel(&game.series).await.unwrap(),
        Some(channel)
    );
}

#[tokio::test]
async fn a_game_channel_reopened_exactly_as_it_was_with_nothing_written_since_then_closed_again_is_told_again()
 {
    let mut w = World::new().await;
    let (guild, _) = installed_guild(&mut w).await;
    let sim = w.world.sim.clone();
    let alerts = sim
        .create_channel(guild, "organisers", ChannelKind::Text)
        .unwrap();
    w.settings().alerts_channel = Some(ChannelId::new(alerts.get()));
    let first = w.event("Tomb of Horrors", 3, "[new adventure]", &[]);
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    let (channel, _, _) = w.series_objects(&first).await;
    let as_it_was = sim.channel(channel.get()).unwrap().permission_overwrites;
    // An admin takes Tavern's own overwrite away and denies it the channel.
    let close = || {
        sim.set_channel_overwrites(
            channel.get(),
            vec![discord_sim::PermissionOverwrite {
                id: sim.bot_user_id(),
                kind: discord_sim::OverwriteKind::Member,
                allow: 0,
                deny: discord::model::permissions::VIEW_CHANNEL,
            }],
        )
        .unwrap();
    };
    let told = || {
        sim.messages(alerts)
            .into_iter()
            .filter(|m| m.content.contains(&channel.to_string()))
            .count()
    };
    close();
    w.sync().await;
    assert_eq!(told(), 1);

    // The admin puts back exactly what Tavern had set: the next sync has nothing to
    // write there, and writes nothing.
    sim.set_channel_overwrites(channel.get(), as_it_was)
        .unwrap();
    sim.clear_requests();
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert!(
        !discord
            .skipped
            .iter()
            .any(|s| s.contains(&channel.to_string())),
        "{:?}",
        discord.skipped
    );
    assert!(
        !w.writes().iter().any(|r| r.contains(&channel.to_string())),
        "nothing written to the channel: {:?}",
        w.writes()
    );
    assert!(sim.messages(channel.get()).is_empty());

    // Closed again later: the organisers are told again.
    close();
    let discord = w.sync().await.discord.unwrap();
    assert!(
        discord
            .skipped
            .iter()
            .any(|s| s.contains(&format!("channel {channel} skipped"))),
        "{:?}",
        discord.skipped
    );
    assert_eq!(told(), 2);
}

#[tokio::test]
async fn a_refused_role_shortcode_that_is_accepted_later_is_forgotten_and_told_again_if_refused_again()
 {
    let mut w = World::new().await;
    let (guild, bot_role) = installed_guild(&mut w).await;
    let demo = w.world.demo.clone();
    let sim = w.world.sim.clone();
    // The owner's "Veterans", above Tavern's role.
    let veterans = sim
        .create_role(guild, discord_sim::RoleSpec::new("Veterans", 0))
        .unwrap();
    sim.set_role_position(guild, veterans, 3).unwrap();
    let alerts = sim
        .create_channel(guild, "organisers", ChannelKind::Text)
        .unwrap();
    w.settings().alerts_channel = Some(ChannelId::new(alerts.get()));
    let alice = w.linked("Alice", demo.alice).await;
    let first = w.event(
        "Tomb of Horrors",
        3,
        &format!("[new adventure] [role {veterans}]"),
        &[],
    );
    w.rsvp(&first, &alice);
    let told = || {
        sim.messages(alerts)
            .into_iter()
            .filter(|m| m.content.contains(&format!("[role {veterans}]")))
            .count()
    };
    w.sync().await;
    assert_eq!(told(), 1);
    assert_eq!(refused_records(&w).await.len(), 1);

    // An admin drags Tavern's role to the top: the shortcode is accepted and its record
    // goes.
    let top = i64::try_from(sim.roles(guild).len()).unwrap();
    sim.set_role_position(guild, bot_role, top).unwrap();
    let discord = w.sync().await.discord.unwrap();
    assert!(discord.failed.is_empty(), "{:?}", discord.failed);
    assert_eq!(refused_records(&w).await, Vec::<String>::new());

    // Veterans is dragged above Tavern's role again: refused, and told again.
    let top = i64::try_from(sim.roles(guild).len()).unwrap();
    sim.set_role_position(guild, veterans, top).unwrap();
    w.sync().await;
    assert_eq!(told(), 2);
    assert_eq!(refused_records(&w).await.len(), 1);
}

/// What `tavern:campaigns:refused_shortcodes` holds.
async fn refused_records(w: &World) -> Vec<String> {
    w.world
        .redis
        .conn()
        .smembers(schema::REFUSED_SHORTCODES)
        .await
        .unwrap()
}
