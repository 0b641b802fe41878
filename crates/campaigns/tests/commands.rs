//! The campaigns' slash commands end to end: the real bot against discord-sim, real
//! Redis, the `ManualClock`. Each command's happy path, and each refusing whoever may
//! not use it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use campaigns::config::DiscordSettings;
use campaigns::repo::Removal;
use campaigns::{CampaignsConfig, SeriesType};
use chrono::TimeDelta;
use common::{Env, meetup, series_id, upsert, world_env};
use discord::model::{ChannelId, GuildId, RoleId, UserId};
use discord_sim::{ChannelKind, InteractionReply, RoleSpec, Snowflake};
use serde_json::{Value, json};
use testkit::{TestBot, WAIT, World};

/// A community with one game: `#dragon-hunt` (series `s1`, event `e1` hosted by Meetup
/// member 1 with RSVPs 2 and 3), its guest and host roles, and an admin role.
///
/// - alice is linked to Meetup member 1: a host through Meetup;
/// - bob is linked to Meetup member 2: a player;
/// - carol is nobody in particular;
/// - demo-player holds the admin role.
struct Game {
    env: Env,
    bot: Option<TestBot>,
    channel: Snowflake,
    guest: Snowflake,
    host: Snowflake,
    admin: Snowflake,
}

fn id(s: Snowflake) -> u64 {
    u64::from(s)
}

fn settings(w: &World, admin: Snowflake) -> DiscordSettings {
    let mut settings = DiscordSettings::new(GuildId::new(id(w.demo.guild)));
    settings.admin_role = Some(RoleId::new(id(admin)));
    settings.alerts_channel = Some(ChannelId::new(id(w.demo.campaigns)));
    settings.topic_voice_channel = Some(ChannelId::new(id(w.demo.voice)));
    settings.topic_default_name = "Table".into();
    settings
}

fn config(settings: DiscordSettings) -> CampaignsConfig {
    let mut config = CampaignsConfig::new(
        meetup::ClientId::new("tavern"),
        meetup::ClientSecret::from("tavern-secret"),
        meetup::MeetupEndpoints::production().unwrap(),
        Vec::new(),
    );
    config.discord = Some(settings);
    config
}

async fn game() -> Game {
    game_with(|c| c).await
}

async fn game_with(adjust: impl FnOnce(CampaignsConfig) -> CampaignsConfig) -> Game {
    let env = world_env().await;
    let w = env.world();
    let guild = w.demo.guild;
    let (channel, guest, host) = common::dragon_hunt(&w.sim, guild);
    let admin = w
        .sim
        .create_role(guild, RoleSpec::new("Admins", 0))
        .unwrap();
    w.sim
        .add_member_role(guild, w.demo.demo_player, admin)
        .unwrap();

    let mut up = upsert("e1", "s1");
    up.series_type = Some(SeriesType::Adventure);
    env.store.upsert_event(&up).await.unwrap();
    let c = ChannelId::new(id(channel));
    env.store
        .register_channel(&series_id("s1"), c)
        .await
        .unwrap();
    env.store
        .register_roles(c, RoleId::new(id(guest)), RoleId::new(id(host)))
        .await
        .unwrap();
    env.store
        .link(meetup(1), UserId::new(id(w.demo.alice)), None)
        .await
        .unwrap();
    env.store
        .link(meetup(2), UserId::new(id(w.demo.bob)), None)
        .await
        .unwrap();

    let feature = campaigns::feature(&w.ctx, Some(adjust(config(settings(w, admin)))));
    let bot = TestBot::spawn(w, vec![feature]).await;
    Game {
        env,
        bot: Some(bot),
        channel,
        guest,
        host,
        admin,
    }
}

/// [`game`] with a fake Meetup as the community's: its group `dragons`, and an
/// organiser whose tokens Tavern holds.
async fn game_with_meetup() -> (Game, meetup::fake::FakeMeetup, meetup::GroupUrlname) {
    let fake = meetup::fake::FakeMeetup::start().await.unwrap();
    let group = meetup::GroupUrlname::parse("dragons").unwrap();
    fake.add_group(&group, "Dragons and Dice").unwrap();
    let organiser = fake.add_member("Olivia Organiser");
    let endpoints = fake.endpoints();
    let g = game_with(|mut c| {
        c.groups = vec![group.clone()];
        c.endpoints = endpoints;
        c
    })
    .await;
    let tokens = fake.issue_tokens(&organiser).unwrap();
    g.env
        .store
        .set_organizer_tokens(
            &campaigns::repo::Tokens {
                access: tokens.access_token.clone(),
                refresh: tokens.refresh_token.clone(),
            },
            testkit::epoch() + TimeDelta::days(2),
        )
        .await
        .unwrap();
    (g, fake, group)
}

impl Game {
    fn w(&self) -> &World {
        self.env.world()
    }

    async fn run_in(
        &self,
        user: Snowflake,
        channel: Snowflake,
        name: &str,
        options: Value,
    ) -> InteractionReply {
        self.w()
            .sim
            .run_command(user, channel, name, options)
            .expect("the command runs")
            .final_response(WAIT)
            .await
            .expect("a reply")
    }

    /// Runs a command in the game channel.
    async fn run(&self, user: Snowflake, name: &str, options: Value) -> InteractionReply {
        self.run_in(user, self.channel, name, options).await
    }

    /// Waits until Tavern has recorded `n` people in the topic voice channel.
    async fn connected(&self, n: usize) {
        testkit::eventually("the topic channel's occupancy is recorded", || async {
            let members = self
                .env
                .members("tavern:campaigns:topic_voice_channel:connected")
                .await;
            (members.len() == n).then_some(())
        })
        .await;
    }

    /// Waits until Tavern has recorded that the topic voice channel has been empty
    /// since `since` (`None`: that it is not recorded as empty).
    async fn empty_since(&self, since: Option<chrono::DateTime<chrono::Utc>>) {
        testkit::eventually("the topic channel's empty time is recorded", || async {
            let raw = self
                .env
                .get("tavern:campaigns:topic_voice_channel:empty_since")
                .await;
            let recorded = raw.map(|r| chrono::DateTime::parse_from_rfc3339(&r).unwrap());
            (recorded == since.map(Into::into)).then_some(())
        })
        .await;
    }

    /// The topic channel's reset job, run by hand under the test's clock.
    fn reset_job(&self) -> feature::Job {
        let w = self.w();
        campaigns::feature(&w.ctx, Some(config(settings(w, self.admin))))
            .jobs
            .into_iter()
            .find(|j| j.name() == campaigns::topic::RESET_JOB)
            .expect("the reset job")
    }

    fn roles_of(&self, user: Snowflake) -> Vec<Snowflake> {
        self.w()
            .sim
            .member(self.w().demo.guild, user)
            .map(|m| m.roles)
            .unwrap_or_default()
    }

    fn channel_id(&self) -> ChannelId {
        ChannelId::new(id(self.channel))
    }

    async fn stop(mut self) {
        if let Some(bot) = self.bot.take() {
            bot.stop().await;
        }
    }
}

fn text(reply: &InteractionReply) -> &str {
    reply.content.as_deref().unwrap_or_default()
}

/// A private refusal saying `words`.
#[track_caller]
fn refused(reply: &InteractionReply, words: &str) {
    assert!(reply.ephemeral, "a refusal is private: {reply:?}");
    assert!(text(reply).contains(words), "expected “{words}”: {reply:?}");
}

fn user_option(user: Snowflake) -> Value {
    json!({"name": "user", "value": user.to_string()})
}

// --- everybody -------------------------------------------------------------------

#[tokio::test]
async fn link_meetup_gives_a_private_one_time_link() {
    let g = game().await;
    let w = g.w();
    let reply = g
        .run_in(w.demo.carol, w.demo.general, "link-meetup", json!([]))
        .await;
    assert!(reply.ephemeral, "{reply:?}");
    assert!(reply.pings.users.is_empty() && reply.pings.roles.is_empty());
    let content = text(&reply);
    let start = content
        .find("http://127.0.0.1:8080/link-meetup/")
        .expect("the link");
    let linking = content[start..]
        .trim()
        .trim_start_matches("http://127.0.0.1:8080/link-meetup/");
    assert_eq!(linking.len(), 32, "{content}");
    assert_eq!(
        g.env
            .get(&format!("meetup_linking:{linking}:discord_user"))
            .await,
        Some(w.demo.carol.to_string())
    );
    // Her name in Discord is kept for the linking page.
    let name = g
        .env
        .get(&format!("tavern:campaigns:linking_name:{}", w.demo.carol))
        .await;
    assert!(
        name.as_deref()
            .is_some_and(|n| n.to_lowercase().contains("carol")),
        "{name:?}"
    );

    // Somebody already linked is told to unlink first.
    let reply = g
        .run_in(w.demo.alice, w.demo.general, "link-meetup", json!([]))
        .await;
    refused(&reply, "already linked to Meetup member 1");
    g.stop().await;
}

#[tokio::test]
async fn unlink_meetup_removes_the_callers_link() {
    let g = game().await;
    let w = g.w();
    let reply = g
        .run_in(w.demo.bob, w.demo.general, "unlink-meetup", json!([]))
        .await;
    assert!(reply.ephemeral);
    assert!(
        text(&reply).contains("no longer linked to Meetup member 2"),
        "{reply:?}"
    );
    assert_eq!(
        g.env
            .get(&format!("discord_user:{}:meetup_user", w.demo.bob))
            .await,
        None
    );
    assert_eq!(g.env.get("meetup_user:2:discord_user").await, None);
    assert!(
        !g.env
            .members("meetup_users")
            .await
            .contains(&"2".to_owned())
    );

    let reply = g
        .run_in(w.demo.bob, w.demo.general, "unlink-meetup", json!([]))
        .await;
    assert!(text(&reply).contains("was not linked"), "{reply:?}");
    g.stop().await;
}

// --- hosts -----------------------------------------------------------------------

#[tokio::test]
async fn a_meetup_host_adds_lists_and_removes_players() {
    let g = game().await;
    let w = g.w();
    let carol = w.demo.carol;
    g.env
        .store
        .mark_removed(g.channel_id(), Removal::User, UserId::new(id(carol)))
        .await
        .unwrap();

    let reply = g
        .run(
            w.demo.alice,
            "players",
            json!([{"name": "add", "options": [user_option(carol)]}]),
        )
        .await;
    assert!(!reply.ephemeral, "{reply:?}");
    assert!(
        text(&reply).contains(&format!("<@{carol}> joins this game")),
        "{reply:?}"
    );
    assert_eq!(
        reply.pings.users,
        vec![carol],
        "only the added player is notified"
    );
    assert!(g.roles_of(carol).contains(&g.guest));
    let removed_key = format!("discord_channel:{}:removed_users", g.channel);
    assert!(
        g.env.members(&removed_key).await.is_empty(),
        "the removal is forgotten"
    );

    let reply = g
        .run(w.demo.alice, "players", json!([{"name": "list"}]))
        .await;
    assert!(reply.ephemeral);
    assert!(reply.pings.users.is_empty());
    let list = text(&reply);
    assert!(list.contains(&format!("<@{}>", w.demo.bob)), "{list}");
    assert!(list.contains("Meetup member 3 (not linked)"), "{list}");
    assert!(
        list.contains(&format!("**Hosts**: <@{}> (on Meetup)", w.demo.alice)),
        "{list}"
    );
    // Carol holds the player role without an RSVP: the host added her by hand.
    assert!(
        list.contains(&format!(
            "\n**Added by hand** (the player role without an RSVP): <@{carol}>\n"
        )),
        "{list}"
    );

    let reply = g
        .run(
            w.demo.alice,
            "players",
            json!([{"name": "remove", "options": [user_option(carol)]}]),
        )
        .await;
    assert!(
        text(&reply).contains("They have no RSVP on Meetup; should they RSVP later"),
        "{reply:?}"
    );
    assert!(reply.pings.users.is_empty());
    assert!(!g.roles_of(carol).contains(&g.guest));
    assert_eq!(g.env.members(&removed_key).await, vec![carol.to_string()]);
    g.stop().await;
}

/// `/players list` lists a removed player only as removed, every host (the Meetup
/// ones and those added by hand, marked), and an unlinked member by the name Meetup
/// gave them.
#[tokio::test]
async fn players_list_shows_the_removed_once_every_host_and_meetup_names() {
    let g = game().await;
    let w = g.w();
    let (alice, bob, carol) = (w.demo.alice, w.demo.bob, w.demo.carol);
    // Bob RSVP'd and holds the player role, as the sync gives it.
    w.sim.add_member_role(w.demo.guild, bob, g.guest).unwrap();
    g.env
        .store
        .remember_meetup_names(&[(meetup(3), "Dora Dice".to_owned())])
        .await
        .unwrap();
    let reply = g
        .run(
            alice,
            "players",
            json!([{"name": "remove", "options": [user_option(bob)]}]),
        )
        .await;
    assert!(text(&reply).contains("was removed"), "{reply:?}");
    let reply = g
        .run(
            alice,
            "hosts",
            json!([{"name": "add", "options": [user_option(carol)]}]),
        )
        .await;
    assert!(text(&reply).contains("is now a host"), "{reply:?}");

    let reply = g.run(alice, "players", json!([{"name": "list"}])).await;
    let list = text(&reply);
    assert!(
        list.contains("**Players (RSVP'd yes)**: Dora Dice (Meetup member 3, not linked)\n"),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "**Hosts**: <@{alice}> (on Meetup), <@{carol}> (added by hand)"
        )),
        "{list}"
    );
    assert!(
        list.contains(&format!("**Removed as players**: <@{bob}>")),
        "{list}"
    );
    assert_eq!(list.matches(&format!("<@{bob}>")).count(), 1, "{list}");
    assert!(reply.pings.users.is_empty());
    g.stop().await;
}

/// When Discord will not list the server's members, `/players list` still lists what
/// Tavern knows (the RSVPs, the Meetup hosts), names those who hold a role by hand by
/// their role, and says once, last, why and what lets it name them.
#[tokio::test]
async fn players_list_without_the_member_list_says_why_and_names_the_roles() {
    let g = game().await;
    let w = g.w();
    let alice = w.demo.alice;
    w.sim.inject_fault(
        discord_sim::RouteMatch::exact("GET", format!("/guilds/{}/members", w.demo.guild)),
        discord_sim::Fault::Status(403),
        1,
    );
    let reply = g.run(alice, "players", json!([{"name": "list"}])).await;
    let list = text(&reply);
    assert!(list.contains("**Players (RSVP'd yes)**: "), "{list}");
    assert!(
        list.contains(&format!(
            "**Added by hand** (the player role without an RSVP): the members with the <@&{}> role\n",
            g.guest
        )),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "**Hosts**: <@{alice}> (on Meetup), and the members with the <@&{}> role (added by hand)\n",
            g.host
        )),
        "{list}"
    );
    assert!(
        list.ends_with("turning on the Server Members intent of Tavern's bot in the Discord Developer Portal lets it name them._"),
        "{list}"
    );
    assert!(
        reply.pings.users.is_empty() && reply.pings.roles.is_empty(),
        "{reply:?}"
    );
    g.stop().await;
}

#[tokio::test]
async fn a_player_added_by_hand_keeps_the_role_through_the_next_sync() {
    let g = game().await;
    let w = g.w();
    let carol = w.demo.carol;
    // Carol once got the guest role from the sync (an RSVP she has since withdrawn)
    // and was removed by hand; now a host adds her back by hand.
    g.env
        .store
        .record_synced_guests(g.channel_id(), &[UserId::new(id(carol))], &[])
        .await
        .unwrap();
    g.env
        .store
        .mark_removed(g.channel_id(), Removal::User, UserId::new(id(carol)))
        .await
        .unwrap();
    let reply = g
        .run(
            w.demo.alice,
            "players",
            json!([{"name": "add", "options": [user_option(carol)]}]),
        )
        .await;
    assert!(text(&reply).contains("joins this game"), "{reply:?}");
    assert!(g.roles_of(carol).contains(&g.guest));
    assert!(
        g.env
            .members(&format!("tavern:campaigns:synced_guests:{}", g.channel))
            .await
            .is_empty(),
        "she holds the role by hand now, not from the sync"
    );

    // The next sync leaves her role alone.
    w.clock.set(common::at("2026-02-01T12:00:00Z"));
    let report = campaigns::sync_discord(
        &g.env.store,
        &w.ctx.discord,
        &settings(w, g.admin),
        &std::collections::BTreeMap::new(),
        w.ctx.now(),
    )
    .await
    .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(
        g.roles_of(carol).contains(&g.guest),
        "the sync kept the role a host gave by hand: {report:?}"
    );
    g.stop().await;
}

#[tokio::test]
async fn a_host_role_holder_adds_and_removes_hosts() {
    let g = game().await;
    let w = g.w();
    w.sim
        .add_member_role(w.demo.guild, w.demo.carol, g.host)
        .unwrap();
    let bob = w.demo.bob;

    let reply = g
        .run(
            w.demo.carol,
            "hosts",
            json!([{"name": "add", "options": [user_option(bob)]}]),
        )
        .await;
    assert!(text(&reply).contains("is now a host"), "{reply:?}");
    assert_eq!(reply.pings.users, vec![bob]);
    assert!(g.roles_of(bob).contains(&g.host));

    let reply = g
        .run(
            w.demo.carol,
            "hosts",
            json!([{"name": "remove", "options": [user_option(bob)]}]),
        )
        .await;
    assert!(text(&reply).contains("no longer a host"), "{reply:?}");
    assert!(!g.roles_of(bob).contains(&g.host));
    assert_eq!(
        g.env
            .members(&format!("discord_channel:{}:removed_hosts", g.channel))
            .await,
        vec![bob.to_string()]
    );
    g.stop().await;
}

/// A removal says what is true of the one removed: the sync would have made a Meetup
/// host or an RSVP'd player one again and now will not; one added by hand was never
/// the sync's, and will not be made one should they host or RSVP later.
#[tokio::test]
async fn a_removal_says_what_the_sync_will_not_do_for_each_case() {
    let g = game().await;
    let w = g.w();
    let (alice, bob, carol) = (w.demo.alice, w.demo.bob, w.demo.carol);
    let admin = w.demo.demo_player;
    let remove = |command: &'static str, user| {
        g.run(
            admin,
            command,
            json!([{"name": "remove", "options": [user_option(user)]}]),
        )
    };
    // Carol is a host by hand only; Alice hosts on Meetup.
    w.sim.add_member_role(w.demo.guild, carol, g.host).unwrap();
    let reply = remove("hosts", carol).await;
    assert_eq!(
        text(&reply),
        format!(
            "<@{carol}> is no longer a host of this game. They do not host it on Meetup; \
             should they host a session there later, the sync will not make them a host."
        )
    );
    let reply = remove("hosts", alice).await;
    assert_eq!(
        text(&reply),
        format!(
            "<@{alice}> is no longer a host of this game; they host it on Meetup, but the \
             sync will not make them a host again."
        )
    );
    // Bob RSVP'd on Meetup.
    let reply = remove("players", bob).await;
    assert_eq!(
        text(&reply),
        format!(
            "<@{bob}> was removed from this game; they RSVP'd on Meetup, but the sync will \
             not add them back."
        )
    );
    g.stop().await;
}

/// Adding someone who already holds the role, or removing someone who does not, is
/// answered privately: nothing is posted, nobody is pinged, nothing is recorded.
#[tokio::test]
async fn adding_twice_or_removing_who_is_not_there_is_answered_privately() {
    let g = game().await;
    let w = g.w();
    let (alice, bob, carol) = (w.demo.alice, w.demo.bob, w.demo.carol);
    w.sim.add_member_role(w.demo.guild, bob, g.guest).unwrap();
    w.sim.add_member_role(w.demo.guild, alice, g.host).unwrap();
    // What everyone sees: messages not flagged ephemeral (64).
    let posted = || {
        w.sim
            .messages(g.channel)
            .into_iter()
            .filter(|m| m.flags & 64 == 0)
            .count()
    };
    let before = posted();
    for (name, sub, user, words) in [
        ("players", "add", bob, "already plays in this game"),
        ("players", "remove", carol, "does not play in this game"),
        (
            "players",
            "remove",
            alice,
            "stay in it through the host role",
        ),
        ("hosts", "add", alice, "already hosts this game"),
        ("hosts", "remove", carol, "is not a host of this game"),
    ] {
        let options = json!([{"name": sub, "options": [user_option(user)]}]);
        let reply = g.run(alice, name, options).await;
        assert!(reply.ephemeral, "/{name} {sub}: {reply:?}");
        assert!(
            text(&reply).contains(&format!("<@{user}> ")) && text(&reply).contains(words),
            "/{name} {sub}: {reply:?}"
        );
        assert!(reply.pings.users.is_empty(), "/{name} {sub}: {reply:?}");
    }
    assert!(
        text(
            &g.run(
                alice,
                "players",
                json!([{"name": "remove", "options": [user_option(alice)]}])
            )
            .await
        )
        .contains("/hosts remove")
    );
    assert_eq!(posted(), before, "nothing is posted in the channel");
    assert!(g.roles_of(bob).contains(&g.guest));
    assert!(g.roles_of(alice).contains(&g.host));
    for kind in ["removed_users", "removed_hosts"] {
        let key = format!("discord_channel:{}:{kind}", g.channel);
        assert!(g.env.members(&key).await.is_empty(), "{kind}");
    }
    g.stop().await;
}

#[tokio::test]
async fn host_commands_refuse_players_and_work_only_in_game_channels() {
    let g = game().await;
    let w = g.w();
    let carol = w.demo.carol;
    for (name, options) in [
        (
            "players",
            json!([{"name": "add", "options": [user_option(carol)]}]),
        ),
        (
            "players",
            json!([{"name": "remove", "options": [user_option(carol)]}]),
        ),
        ("players", json!([{"name": "list"}])),
        (
            "hosts",
            json!([{"name": "add", "options": [user_option(carol)]}]),
        ),
        (
            "hosts",
            json!([{"name": "remove", "options": [user_option(carol)]}]),
        ),
        ("end-adventure", json!([])),
        ("schedule-session", json!([])),
    ] {
        // bob is a player, not a host.
        let reply = g.run(w.demo.bob, name, options.clone()).await;
        refused(&reply, "is for the hosts of this game");
        // A host outside a game channel.
        let reply = g.run_in(w.demo.alice, w.demo.general, name, options).await;
        refused(&reply, "works only in a game channel");
    }
    assert!(!g.roles_of(carol).contains(&g.guest));
    assert!(!g.roles_of(carol).contains(&g.host));
    assert_eq!(
        g.env
            .get(&format!("discord_channel:{}:deletion_time", g.channel))
            .await,
        None
    );
    g.stop().await;
}

#[tokio::test]
async fn end_adventure_schedules_the_deletion_and_alerts_the_organisers() {
    let g = game().await;
    let w = g.w();
    // The event is at 2026-03-01T18:00Z. No lifecycle run has stored the expiration
    // yet: the command reads it from the series' events itself.
    assert_eq!(
        g.env
            .get(&format!("discord_channel:{}:expiration_time", g.channel))
            .await,
        None
    );
    w.clock.set(common::at("2026-03-01T12:00:00Z"));
    let reply = g.run(w.demo.alice, "end-adventure", json!([])).await;
    let last = common::at("2026-03-01T18:00:00Z").timestamp();
    refused(
        &reply,
        &format!("This game's last session is on <t:{last}:F> (<t:{last}:R>)."),
    );
    assert!(
        text(&reply).contains("`/end-adventure` works once it has started."),
        "{reply:?}"
    );

    w.clock.set(common::at("2026-03-01T22:00:00Z"));
    let reply = g.run(w.demo.alice, "end-adventure", json!([])).await;
    assert!(!reply.ephemeral, "{reply:?}");
    assert!(text(&reply).contains("will be deleted"), "{reply:?}");
    // The players get a notification: the game's player role is mentioned and pinged,
    // nobody else.
    assert!(
        text(&reply).starts_with(&format!("<@&{}> This game is over.", g.guest)),
        "{reply:?}"
    );
    assert_eq!(reply.pings.roles, vec![g.guest], "{reply:?}");
    assert!(
        reply.pings.users.is_empty() && !reply.pings.everyone,
        "{reply:?}"
    );
    let deletion = g
        .env
        .get(&format!("discord_channel:{}:deletion_time", g.channel))
        .await
        .unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&deletion).unwrap(),
        common::at("2026-03-02T06:00:00Z")
    );
    let alert = testkit::eventually("the organisers are alerted", || {
        let found = w
            .sim
            .messages(w.demo.campaigns)
            .into_iter()
            .find(|m| m.content.contains("ended the game"));
        async move { found }
    })
    .await;
    assert!(
        alert.content.contains(&format!("<#{}>", g.channel)),
        "{alert:?}"
    );

    let reply = g.run(w.demo.alice, "end-adventure", json!([])).await;
    refused(&reply, "already scheduled for deletion");
    g.stop().await;
}

#[tokio::test]
async fn schedule_session_links_the_form_privately() {
    let g = game().await;
    let w = g.w();
    let reply = g.run(w.demo.alice, "schedule-session", json!([])).await;
    assert!(reply.ephemeral);
    assert!(
        text(&reply).contains(&format!(
            "http://127.0.0.1:8080/campaigns/schedule/{}",
            g.channel
        )),
        "{reply:?}"
    );
    g.stop().await;
}

// --- admins ----------------------------------------------------------------------

#[tokio::test]
async fn admin_commands_refuse_everybody_else() {
    let g = game().await;
    let w = g.w();
    for (name, options) in [
        ("snooze", json!([{"name": "days", "value": 7}])),
        ("manage-channel", json!([])),
        (
            "link",
            json!([user_option(w.demo.carol), {"name": "meetup-id", "value": "9"}]),
        ),
        ("unlink", json!([user_option(w.demo.bob)])),
        ("whois", json!([user_option(w.demo.bob)])),
        ("sync", json!([])),
    ] {
        // alice hosts the game, but is no admin.
        let reply = g.run(w.demo.alice, name, options).await;
        refused(&reply, "is for admins");
        assert!(
            text(&reply).contains(&format!("<@&{}>", g.admin)),
            "{reply:?}"
        );
        assert!(reply.pings.roles.is_empty(), "a refusal pings nobody");
    }
    assert_eq!(g.env.get("meetup_user:9:discord_user").await, None);
    assert!(g.env.members("managed_discord_channels").await.is_empty());
    assert_eq!(
        g.env.get("meetup_user:2:discord_user").await,
        Some(w.demo.bob.to_string())
    );
    g.stop().await;
}

#[tokio::test]
async fn snooze_sets_and_clears_the_reminders_pause() {
    let g = game().await;
    let w = g.w();
    let admin = w.demo.demo_player;
    let key = format!("discord_channel:{}:snooze_until", g.channel);
    let reply = g
        .run(admin, "snooze", json!([{"name": "days", "value": 7}]))
        .await;
    assert!(text(&reply).contains("snoozed until"), "{reply:?}");
    let until = g.env.get(&key).await.unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&until).unwrap(),
        testkit::epoch() + TimeDelta::days(7)
    );
    let reply = g
        .run(admin, "snooze", json!([{"name": "days", "value": 0}]))
        .await;
    assert!(text(&reply).contains("cleared"), "{reply:?}");
    assert_eq!(g.env.get(&key).await, None);

    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "snooze",
            json!([{"name": "days", "value": 3}]),
        )
        .await;
    refused(&reply, "works only in a game channel");
    g.stop().await;
}

#[tokio::test]
async fn manage_channel_marks_and_unmarks_a_channel() {
    let g = game().await;
    let w = g.w();
    let admin = w.demo.demo_player;
    let reply = g
        .run_in(admin, w.demo.general, "manage-channel", json!([]))
        .await;
    assert!(
        reply.ephemeral && text(&reply).contains("is now managed"),
        "{reply:?}"
    );
    // It says what that means: a Meetup event may make it a game's channel.
    assert!(
        text(&reply).contains(&format!("`[channel {}]`", w.demo.general)),
        "{reply:?}"
    );
    assert_eq!(
        g.env.members("managed_discord_channels").await,
        vec![w.demo.general.to_string()]
    );
    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "manage-channel",
            json!([{"name": "managed", "value": false}]),
        )
        .await;
    assert!(text(&reply).contains("no longer managed"), "{reply:?}");
    assert!(g.env.members("managed_discord_channels").await.is_empty());

    // A managed channel a game took over stays managed while the game runs (unmarked,
    // the game's end would delete it).
    g.env
        .store
        .set_managed_channel(g.channel_id(), true)
        .await
        .unwrap();
    let reply = g
        .run(
            admin,
            "manage-channel",
            json!([{"name": "managed", "value": false}]),
        )
        .await;
    refused(&reply, "stays managed while the game");
    assert_eq!(
        g.env.members("managed_discord_channels").await,
        vec![g.channel.to_string()]
    );
    g.stop().await;
}

/// A game channel Tavern created is not marked managed: marked, it would be kept when
/// its game ends, and it could not be unmarked while the game runs.
#[tokio::test]
async fn manage_channel_refuses_a_game_channel_tavern_created() {
    let g = game().await;
    let w = g.w();
    let reply = g.run(w.demo.demo_player, "manage-channel", json!([])).await;
    refused(&reply, "is a game's channel that Tavern created");
    assert!(
        text(&reply).contains("deletes it when the game ends"),
        "{reply:?}"
    );
    assert!(g.env.members("managed_discord_channels").await.is_empty());
    g.stop().await;
}

/// The voice channel Tavern created for a game is refused like its text channel, and
/// any other channel but a text one too (a game's channel is a text channel, so the
/// sync would take over nothing else); an already marked one can still be unmarked.
#[tokio::test]
async fn manage_channel_refuses_a_game_s_voice_channel_and_any_channel_but_a_text_one() {
    let g = game().await;
    let w = g.w();
    let admin = w.demo.demo_player;
    let game_voice = w
        .sim
        .create_channel(w.demo.guild, "Dragon Hunt", ChannelKind::Voice)
        .unwrap();
    g.env
        .store
        .register_voice_channel(&series_id("s1"), ChannelId::new(id(game_voice)))
        .await
        .unwrap();
    let reply = g
        .run_in(admin, game_voice, "manage-channel", json!([]))
        .await;
    refused(&reply, "is a game's voice channel that Tavern created");
    assert!(
        text(&reply).contains("deletes it when the game ends"),
        "{reply:?}"
    );

    // Another voice channel (the topic's) cannot be a game's channel either.
    let reply = g
        .run_in(admin, w.demo.voice, "manage-channel", json!([]))
        .await;
    refused(&reply, "is a voice channel");
    assert!(
        text(&reply).contains("only a text channel can be marked"),
        "{reply:?}"
    );
    assert!(g.env.members("managed_discord_channels").await.is_empty());

    // One marked before this was checked is refused again with how to unmark it, and
    // unmarking it works.
    g.env
        .store
        .set_managed_channel(ChannelId::new(id(w.demo.voice)), true)
        .await
        .unwrap();
    let reply = g
        .run_in(admin, w.demo.voice, "manage-channel", json!([]))
        .await;
    refused(&reply, "`/manage-channel managed:false` unmarks it");
    let reply = g
        .run_in(
            admin,
            w.demo.voice,
            "manage-channel",
            json!([{"name": "managed", "value": false}]),
        )
        .await;
    assert!(text(&reply).contains("no longer managed"), "{reply:?}");
    assert!(g.env.members("managed_discord_channels").await.is_empty());
    g.stop().await;
}

/// Tavern's own account is not a person: it is not linked to a Meetup member, nor
/// added as a player or a host, and nothing is stored or given.
#[tokio::test]
async fn tavern_itself_is_not_linked_or_added_as_a_player_or_host() {
    let g = game().await;
    let w = g.w();
    let admin = w.demo.demo_player;
    let bot = w.sim.bot_user_id();
    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "link",
            json!([user_option(bot), {"name": "meetup-id", "value": "6"}]),
        )
        .await;
    refused(&reply, "is Tavern itself, a bot, not a person");
    assert!(
        text(&reply).contains("only a person can be linked to a Meetup account"),
        "{reply:?}"
    );
    assert_eq!(
        g.env
            .store
            .meetup_user_of(UserId::new(id(bot)))
            .await
            .unwrap(),
        None
    );

    let reply = g
        .run(
            w.demo.alice,
            "players",
            json!([{"name": "add", "options": [user_option(bot)]}]),
        )
        .await;
    refused(&reply, "only a person can play in a game");
    let reply = g
        .run(
            w.demo.alice,
            "hosts",
            json!([{"name": "add", "options": [user_option(bot)]}]),
        )
        .await;
    refused(&reply, "only a person can host a game");
    let roles = g.roles_of(bot);
    assert!(
        !roles.contains(&g.guest) && !roles.contains(&g.host),
        "{roles:?}"
    );

    // Another application's bot in the server: refused alike, as Discord says it is
    // a bot.
    let dice_bot = w.sim.create_bot_user("DiceBot");
    w.sim.add_member(w.demo.guild, dice_bot).unwrap();
    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "link",
            json!([user_option(dice_bot), {"name": "meetup-id", "value": "6"}]),
        )
        .await;
    refused(
        &reply,
        "is a bot, not a person: only a person can be linked",
    );
    for (command, only) in [("players", "play in a game"), ("hosts", "host a game")] {
        let reply = g
            .run(
                w.demo.alice,
                command,
                json!([{"name": "add", "options": [user_option(dice_bot)]}]),
            )
            .await;
        refused(
            &reply,
            &format!("is a bot, not a person: only a person can {only}"),
        );
    }
    let roles = g.roles_of(dice_bot);
    assert!(
        !roles.contains(&g.guest) && !roles.contains(&g.host),
        "{roles:?}"
    );
    g.stop().await;
}

#[tokio::test]
async fn an_admin_links_looks_up_and_unlinks_by_hand() {
    let (g, fake, group) = game_with_meetup().await;
    let w = g.w();
    let (admin, carol) = (w.demo.demo_player, w.demo.carol);
    // Carol's Meetup account, a member of the community's group.
    let nine = fake.add_member("Carol on Meetup");
    fake.set_role(&group, &nine, meetup::GroupRole::Member)
        .unwrap();
    let nine = nine.as_str();
    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "link",
            json!([user_option(carol), {"name": "meetup-id", "value": nine}]),
        )
        .await;
    assert!(
        reply.ephemeral && text(&reply).contains(&format!("is now linked to Meetup member {nine}")),
        "{reply:?}"
    );
    assert!(reply.pings.users.is_empty());
    assert_eq!(
        g.env.get(&format!("meetup_user:{nine}:discord_user")).await,
        Some(carol.to_string())
    );
    assert_eq!(
        g.env
            .get(&format!("discord_user:{carol}:meetup_user"))
            .await,
        Some(nine.into())
    );

    let reply = g
        .run_in(admin, w.demo.general, "whois", json!([user_option(carol)]))
        .await;
    assert!(
        text(&reply).contains(&format!("is Meetup member {nine}")),
        "{reply:?}"
    );
    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "whois",
            json!([{"name": "meetup-id", "value": "1"}]),
        )
        .await;
    assert!(
        text(&reply).contains(&format!("is <@{}>", w.demo.alice)),
        "{reply:?}"
    );
    assert!(reply.pings.users.is_empty());
    let reply = g.run_in(admin, w.demo.general, "whois", json!([])).await;
    refused(&reply, "exactly one of");

    // Bad input names what was wrong; a link to somebody else's account is refused.
    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "link",
            json!([user_option(carol), {"name": "meetup-id", "value": "abc"}]),
        )
        .await;
    refused(&reply, "not a Meetup member id");
    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "link",
            json!([user_option(carol), {"name": "meetup-id", "value": "2"}]),
        )
        .await;
    // Meetup member 2 is bob's: he is named (not pinged), and the way out is given.
    let bob = w.demo.bob;
    refused(
        &reply,
        &format!(
            "Meetup member 2 is already linked to <@{bob}>. To link it to <@{carol}>, `/unlink` <@{bob}> first."
        ),
    );
    assert!(reply.pings.users.is_empty(), "{reply:?}");
    // Carol herself is linked to her Meetup account.
    let reply = g
        .run_in(
            admin,
            w.demo.general,
            "link",
            json!([user_option(carol), {"name": "meetup-id", "value": "7"}]),
        )
        .await;
    refused(
        &reply,
        &format!(
            "<@{carol}> is already linked to Meetup member {nine}. To link another Meetup account, `/unlink` <@{carol}> first."
        ),
    );
    assert!(reply.pings.users.is_empty(), "{reply:?}");

    let reply = g
        .run_in(admin, w.demo.general, "unlink", json!([user_option(carol)]))
        .await;
    assert!(
        text(&reply).contains(&format!("no longer linked to Meetup member {nine}")),
        "{reply:?}"
    );
    assert_eq!(
        g.env.get(&format!("meetup_user:{nine}:discord_user")).await,
        None
    );
    g.stop().await;
}

#[tokio::test]
async fn link_refuses_a_meetup_id_meetup_does_not_know_or_cannot_be_asked_about() {
    let (g, fake, _) = game_with_meetup().await;
    let w = g.w();
    let (admin, carol) = (w.demo.demo_player, w.demo.carol);
    let nothing_stored = || async {
        assert_eq!(g.env.get("meetup_user:123456:discord_user").await, None);
        assert_eq!(
            g.env
                .get(&format!("discord_user:{carol}:meetup_user"))
                .await,
            None
        );
        assert!(
            !g.env
                .members("meetup_users")
                .await
                .contains(&"123456".to_owned())
        );
        assert!(
            !g.env
                .members("discord_users")
                .await
                .contains(&carol.to_string())
        );
    };
    let link = || {
        g.run_in(
            admin,
            w.demo.general,
            "link",
            json!([user_option(carol), {"name": "meetup-id", "value": "123456"}]),
        )
    };

    let reply = link().await;
    refused(
        &reply,
        "Meetup has no member 123456 in the community's Meetup group (`dragons`).",
    );
    assert!(
        fake.graphql_requests()
            .iter()
            .any(|r| r.operation_name.as_deref() == Some("GroupMember")),
        "Meetup was asked"
    );
    nothing_stored().await;

    // Meetup is down: every try of the look-up answers 503 (the fake has no fault that
    // lasts, so as many as the client makes: its first and each retry), said so,
    // nothing stored. Only the look-up fails, whatever else asks Meetup meanwhile.
    let tries = meetup::RetryPolicy::default().max_retries as usize + 1;
    fake.fail_next_of("GroupMember", tries, meetup::fake::FakeFault::Status(503));
    let reply = link().await;
    refused(&reply, "Meetup could not be reached to check member 123456");
    refused(&reply, "Nothing was linked");
    nothing_stored().await;
    g.stop().await;
}

#[tokio::test]
async fn sync_runs_the_campaigns_sync_now() {
    let fake = meetup::fake::FakeMeetup::start().await.unwrap();
    let group = meetup::GroupUrlname::parse("dragons").unwrap();
    fake.add_group(&group, "Dragons and Dice").unwrap();
    let organiser = fake.add_member("Olivia Organiser");
    let endpoints = fake.endpoints();
    let g = game_with(|mut c| {
        c.groups = vec![group.clone()];
        c.endpoints = endpoints;
        c
    })
    .await;
    let w = g.w();
    let tokens = fake.issue_tokens(&organiser).unwrap();
    g.env
        .store
        .set_organizer_tokens(
            &campaigns::repo::Tokens {
                access: tokens.access_token.clone(),
                refresh: tokens.refresh_token.clone(),
            },
            testkit::epoch() + TimeDelta::days(2),
        )
        .await
        .unwrap();
    let mut event = meetup::fake::NewEvent::new(
        &group,
        "Dragon Night",
        (testkit::epoch() + TimeDelta::days(3)).fixed_offset(),
    );
    event.description = "[new adventure]".into();
    event.hosts = vec![organiser.clone()];
    let event = fake.add_event(event).unwrap();

    // While another sync holds the guard, `/sync` says so and does nothing.
    let ttl = Duration::from_secs(60);
    assert!(g.env.store.start_sync("another run", ttl).await.unwrap());
    let reply = g
        .run_in(w.demo.demo_player, w.demo.general, "sync", json!([]))
        .await;
    assert!(reply.ephemeral);
    assert!(text(&reply).contains("running right now"), "{reply:?}");
    assert_eq!(
        g.env.get("tavern:campaigns:sync:running").await.as_deref(),
        Some("another run"),
        "the other run's guard is left alone"
    );
    g.env.store.end_sync("another run").await.unwrap();

    let reply = g
        .run_in(w.demo.demo_player, w.demo.general, "sync", json!([]))
        .await;
    assert!(reply.ephemeral);
    // What it did, as the run's report counts it (#dragon-hunt gets its players and
    // topic; Dragon Night a channel of its own).
    assert_eq!(
        text(&reply),
        "The sync is done: it set up 1 new game channel with its roles, gave 2 roles to \
         players and hosts, welcomed newcomers in 1 channel and corrected the topic, \
         category or permissions of 1 channel.",
    );
    assert!(
        g.env
            .members("meetup_events")
            .await
            .contains(&event.as_str().to_owned())
    );
    assert_eq!(
        g.env.get("tavern:campaigns:sync:running").await,
        None,
        "the guard is given back"
    );
    let again = g
        .run_in(w.demo.demo_player, w.demo.general, "sync", json!([]))
        .await;
    assert_eq!(
        text(&again),
        "The sync is done: nothing needed changing (2 games with a coming session checked)."
    );
    g.stop().await;
}

#[tokio::test]
async fn sync_without_an_organiser_says_where_to_authorise_and_the_job_stays_quiet() {
    let fake = meetup::fake::FakeMeetup::start().await.unwrap();
    let group = meetup::GroupUrlname::parse("dragons").unwrap();
    fake.add_group(&group, "Dragons and Dice").unwrap();
    let endpoints = fake.endpoints();
    let adjust = |mut c: CampaignsConfig| {
        c.groups = vec![group.clone()];
        c.endpoints = endpoints.clone();
        c
    };
    let g = game_with(adjust).await;
    let w = g.w();
    let reply = g
        .run_in(w.demo.demo_player, w.demo.general, "sync", json!([]))
        .await;
    assert!(reply.ephemeral);
    let said = text(&reply);
    assert!(!said.contains("The sync is done"), "{reply:?}");
    assert!(
        said.contains("No organiser has authorised Tavern"),
        "{reply:?}"
    );
    assert!(
        said.contains("http://127.0.0.1:8080/campaigns/organiser"),
        "{reply:?}"
    );
    // The scheduled job waits for an organiser without failing every period.
    let job = campaigns::feature(&w.ctx, Some(adjust(config(settings(w, g.admin)))))
        .jobs
        .into_iter()
        .find(|j| j.name() == campaigns::jobs::SYNC_JOB)
        .expect("the sync job");
    job.run_now().await.unwrap();
    g.stop().await;
}

#[tokio::test]
async fn sync_without_groups_says_there_is_nothing_to_sync() {
    let g = game().await;
    let w = g.w();
    let reply = g
        .run_in(w.demo.demo_player, w.demo.general, "sync", json!([]))
        .await;
    refused(&reply, "No Meetup group is configured");
    g.stop().await;
}

// --- the topic voice channel ---------------------------------------------------

#[tokio::test]
async fn topic_renames_the_voice_channel_with_its_rules() {
    let g = game().await;
    let w = g.w();
    let voice = w.demo.voice;
    let topic = |t: &str| json!([{"name": "topic", "value": t}]);

    let reply = g
        .run_in(w.demo.carol, w.demo.general, "topic", topic("a"))
        .await;
    refused(&reply, "at least 2");
    let reply = g
        .run_in(
            w.demo.carol,
            w.demo.general,
            "topic",
            topic(&"x".repeat(101)),
        )
        .await;
    refused(&reply, "at most 100");
    assert_eq!(w.sim.channel(voice).unwrap().name, "Table");

    let reply = g
        .run_in(
            w.demo.carol,
            w.demo.general,
            "topic",
            topic("  Mörk Borg  "),
        )
        .await;
    assert!(!reply.ephemeral, "{reply:?}");
    assert!(text(&reply).contains("Mörk Borg"), "{reply:?}");
    assert!(reply.pings.users.is_empty() && reply.pings.roles.is_empty());
    assert_eq!(w.sim.channel(voice).unwrap().name, "Mörk Borg");
    let set = g
        .env
        .get("user_topic_voice_channel_topic_time")
        .await
        .unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&set).unwrap(),
        testkit::epoch()
    );

    // Rate-limited, then held while someone is connected.
    let reply = g
        .run_in(w.demo.bob, w.demo.general, "topic", topic("Blades"))
        .await;
    refused(&reply, "a moment ago");
    w.sim
        .set_voice(w.demo.guild, w.demo.carol, Some(voice))
        .unwrap();
    g.connected(1).await;
    w.clock.advance(Duration::from_secs(10 * 60));
    let reply = g
        .run_in(w.demo.bob, w.demo.general, "topic", topic("Blades"))
        .await;
    refused(&reply, "in use with the topic");
    assert_eq!(w.sim.channel(voice).unwrap().name, "Mörk Borg");

    // The periodic reset gives the default name back once the channel has been empty
    // for two minutes.
    let job = g.reset_job();
    job.run_now().await.unwrap();
    assert_eq!(w.sim.channel(voice).unwrap().name, "Mörk Borg", "in use");
    w.sim.set_voice(w.demo.guild, w.demo.carol, None).unwrap();
    g.connected(0).await;
    g.empty_since(Some(w.ctx.now())).await;
    job.run_now().await.unwrap();
    assert_eq!(
        w.sim.channel(voice).unwrap().name,
        "Mörk Borg",
        "empty a moment ago"
    );
    w.clock.advance(Duration::from_secs(2 * 60));
    job.run_now().await.unwrap();
    assert_eq!(w.sim.channel(voice).unwrap().name, "Table");

    let reply = g
        .run_in(w.demo.bob, w.demo.general, "topic", topic("Blades"))
        .await;
    assert!(!reply.ephemeral, "{reply:?}");
    assert_eq!(w.sim.channel(voice).unwrap().name, "Blades");
    g.stop().await;
}

/// The reset counts from the moment the channel became empty, not from the topic's
/// age: a channel in use for ten minutes keeps its topic for two minutes after the last
/// person leaves, and somebody coming back within them starts the count again.
#[tokio::test]
async fn the_topic_resets_two_minutes_after_the_channel_is_empty() {
    let g = game().await;
    let w = g.w();
    let (guild, voice) = (w.demo.guild, w.demo.voice);
    let minute = Duration::from_secs(60);
    let name = || w.sim.channel(voice).unwrap().name;
    let job = g.reset_job();
    let topic = |t: &str| json!([{"name": "topic", "value": t}]);

    let reply = g
        .run_in(w.demo.carol, w.demo.general, "topic", topic("Mörk Borg"))
        .await;
    assert!(!reply.ephemeral, "{reply:?}");
    w.sim.set_voice(guild, w.demo.carol, Some(voice)).unwrap();
    g.connected(1).await;
    g.empty_since(None).await;
    // Occupied well past two minutes: nothing happens.
    w.clock.advance(10 * minute);
    job.run_now().await.unwrap();
    assert_eq!(name(), "Mörk Borg", "in use");

    // Emptied: kept one minute on, reset two minutes on.
    w.sim.set_voice(guild, w.demo.carol, None).unwrap();
    g.connected(0).await;
    g.empty_since(Some(w.ctx.now())).await;
    job.run_now().await.unwrap();
    assert_eq!(name(), "Mörk Borg", "empty a moment ago");
    w.clock.advance(minute);
    job.run_now().await.unwrap();
    assert_eq!(name(), "Mörk Borg", "empty for one minute");
    w.clock.advance(minute);
    job.run_now().await.unwrap();
    assert_eq!(name(), "Table", "empty for two minutes");
    job.run_now().await.unwrap();
    assert_eq!(name(), "Table", "already the default");

    // A new topic; its table empties, then somebody comes back within the two minutes.
    let reply = g
        .run_in(w.demo.bob, w.demo.general, "topic", topic("Blades"))
        .await;
    assert!(!reply.ephemeral, "{reply:?}");
    w.sim.set_voice(guild, w.demo.bob, Some(voice)).unwrap();
    g.connected(1).await;
    g.empty_since(None).await;
    w.clock.advance(3 * minute);
    w.sim.set_voice(guild, w.demo.bob, None).unwrap();
    g.connected(0).await;
    g.empty_since(Some(w.ctx.now())).await;
    w.clock.advance(minute);
    job.run_now().await.unwrap();
    assert_eq!(name(), "Blades", "empty for one minute");
    w.sim.set_voice(guild, w.demo.bob, Some(voice)).unwrap();
    g.connected(1).await;
    g.empty_since(None).await;
    w.clock.advance(minute);
    job.run_now().await.unwrap();
    assert_eq!(name(), "Blades", "back in the channel");
    w.sim.set_voice(guild, w.demo.bob, None).unwrap();
    g.connected(0).await;
    g.empty_since(Some(w.ctx.now())).await;
    w.clock.advance(minute);
    job.run_now().await.unwrap();
    assert_eq!(
        name(),
        "Blades",
        "the first empty spell ended when bob came back"
    );
    w.clock.advance(minute);
    job.run_now().await.unwrap();
    assert_eq!(name(), "Table");
    g.stop().await;
}

/// Found empty with no recorded time (Tavern was not listening when the last person
/// left), the reset starts its two minutes at the first look.
#[tokio::test]
async fn an_empty_channel_nobody_saw_empty_waits_two_minutes_from_the_first_look() {
    let env = world_env().await;
    let w = env.world();
    let voice = ChannelId::new(id(w.demo.voice));
    w.ctx
        .discord
        .rename_channel(voice, "Mörk Borg")
        .await
        .unwrap();
    env.store.set_topic_time(w.ctx.now()).await.unwrap();
    w.clock.advance(Duration::from_secs(60 * 60));
    let reset = || async {
        campaigns::topic::reset_topic(
            &env.store,
            &w.ctx.discord,
            &campaigns::topic::GatewayVoice::new(env.store.clone()),
            voice,
            "Table",
            w.ctx.now(),
        )
        .await
        .unwrap()
    };
    assert!(!reset().await, "nobody saw it empty yet");
    assert!(
        env.get("tavern:campaigns:topic_voice_channel:empty_since")
            .await
            .is_some()
    );
    w.clock.advance(Duration::from_secs(60));
    assert!(!reset().await, "empty for one minute");
    w.clock.advance(Duration::from_secs(60));
    assert!(reset().await);
    assert_eq!(w.sim.channel(w.demo.voice).unwrap().name, "Table");
    assert!(!reset().await, "already the default");
}

#[tokio::test]
async fn a_slow_look_up_is_never_answered_in_public() {
    let g = game().await;
    let w = g.w();
    // Discord takes two seconds to say who holds which role: past the router's
    // deferral, whose placeholder would be public.
    w.sim.inject_fault(
        discord_sim::RouteMatch::new("GET", format!("/guilds/{}/members/", w.demo.guild)),
        discord_sim::Fault::Delay(Duration::from_secs(2)),
        1,
    );
    let reply = g
        .run_in(
            w.demo.demo_player,
            w.demo.general,
            "whois",
            json!([user_option(w.demo.bob)]),
        )
        .await;
    assert!(reply.ephemeral, "{reply:?}");
    let interaction = w
        .sim
        .interaction_replies(reply.interaction_id)
        .into_iter()
        .next()
        .expect("the first callback");
    assert_eq!(interaction.callback_type, 5, "deferred");
    assert!(interaction.ephemeral, "the deferral is private too");
    g.stop().await;
}

#[tokio::test]
async fn a_topic_is_claimed_once_and_given_back_when_the_rename_fails() {
    let g = game().await;
    let w = g.w();
    let key = "user_topic_voice_channel_topic_time";
    // Two people read the same state: only the first claim wins.
    let claim = g.env.store.read_topic_claim().await.unwrap();
    let now = testkit::epoch();
    assert!(g.env.store.claim_topic(&claim, now).await.unwrap());
    assert!(!g.env.store.claim_topic(&claim, now).await.unwrap());
    g.env.store.release_topic(&claim, now).await.unwrap();
    assert_eq!(g.env.get(key).await, None);

    // Discord refusing the rename leaves no topic time behind.
    w.sim.inject_fault(
        discord_sim::RouteMatch::new("PATCH", format!("/channels/{}", w.demo.voice)),
        discord_sim::Fault::Status(403),
        1,
    );
    let reply = g
        .run_in(
            w.demo.carol,
            w.demo.general,
            "topic",
            json!([{"name": "topic", "value": "Blades"}]),
        )
        .await;
    refused(&reply, "lack a permission");
    assert_eq!(g.env.get(key).await, None);
    assert_eq!(w.sim.channel(w.demo.voice).unwrap().name, "Table");
    g.stop().await;
}

#[tokio::test]
async fn an_admin_may_use_the_host_commands() {
    let g = game().await;
    let w = g.w();
    let reply = g
        .run(w.demo.demo_player, "schedule-session", json!([]))
        .await;
    assert!(text(&reply).contains("/campaigns/schedule/"), "{reply:?}");
    let reply = g
        .run(
            w.demo.demo_player,
            "players",
            json!([{"name": "add", "options": [user_option(w.demo.carol)]}]),
        )
        .await;
    assert!(text(&reply).contains("joins this game"), "{reply:?}");
    g.stop().await;
}

#[tokio::test]
async fn the_commands_exist_only_with_the_discord_settings() {
    let env = world_env().await;
    let w = env.world();
    let mut without = config(settings(w, w.demo.general));
    without.discord = None;
    let feature = campaigns::feature(&w.ctx, Some(without));
    assert!(feature.commands.is_empty());
    let feature = campaigns::feature(&w.ctx, Some(config(settings(w, w.demo.general))));
    let mut names: Vec<&str> = feature
        .commands
        .iter()
        .map(|(c, _)| c.name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "end-adventure",
            "hosts",
            "link",
            "link-meetup",
            "manage-channel",
            "players",
            "schedule-session",
            "snooze",
            "sync",
            "topic",
            "unlink",
            "unlink-meetup",
            "whois"
        ]
    );
    // What `/help` shows says when `/end-adventure` works.
    let end = feature
        .commands
        .iter()
        .find(|(c, _)| c.name == "end-adventure")
        .unwrap();
    assert!(
        end.0
            .description
            .contains("once its last session has begun"),
        "{:?}",
        end.0.description
    );
}

/// A Meetup host whom another host removed with `/hosts remove` no longer runs the
/// game, though Meetup still lists them as host.
#[tokio::test]
async fn a_removed_host_no_longer_runs_the_game() {
    let g = game().await;
    let w = g.w();
    let reply = g
        .run(w.demo.alice, "players", json!([{"name": "list"}]))
        .await;
    assert!(!text(&reply).starts_with("⚠️"), "a host before: {reply:?}");
    g.env
        .store
        .mark_removed(g.channel_id(), Removal::Host, UserId::new(id(w.demo.alice)))
        .await
        .unwrap();
    let reply = g
        .run(w.demo.alice, "players", json!([{"name": "list"}]))
        .await;
    refused(&reply, "for the hosts of this game");
    g.stop().await;
}

/// Who is in the topic voice channel comes from the gateway: the list when the guild
/// becomes available, then every join, move and leave.
#[tokio::test]
async fn the_topic_channels_occupancy_comes_from_the_gateway() {
    let env = world_env().await;
    let w = env.world();
    let guild = w.demo.guild;
    let key = "tavern:campaigns:topic_voice_channel:connected";
    let other = w
        .sim
        .create_channel(guild, "Lounge", ChannelKind::Voice)
        .unwrap();
    // Connected before the bot starts: GUILD_CREATE lists them.
    w.sim
        .set_voice(guild, w.demo.demo_player, Some(w.demo.voice))
        .unwrap();
    w.sim.set_voice(guild, w.demo.bob, Some(other)).unwrap();
    let admin = w
        .sim
        .create_role(guild, RoleSpec::new("Admins", 0))
        .unwrap();
    let feature = campaigns::feature(&w.ctx, Some(config(settings(w, admin))));
    let bot = TestBot::spawn(w, vec![feature]).await;
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let wait_for = |want: Vec<Snowflake>| {
        let env = &env;
        async move {
            let want = sorted(want.iter().map(|u| u.to_string()).collect());
            testkit::eventually("the recorded occupancy", || {
                let want = want.clone();
                async move { (sorted(env.members(key).await) == want).then_some(()) }
            })
            .await;
        }
    };
    wait_for(vec![w.demo.demo_player]).await;
    w.sim
        .set_voice(guild, w.demo.alice, Some(w.demo.voice))
        .unwrap();
    wait_for(vec![w.demo.demo_player, w.demo.alice]).await;
    // Moving to another channel is leaving this one.
    w.sim
        .set_voice(guild, w.demo.demo_player, Some(other))
        .unwrap();
    wait_for(vec![w.demo.alice]).await;
    w.sim.set_voice(guild, w.demo.alice, None).unwrap();
    wait_for(vec![]).await;
    bot.stop().await;
}

/// The `meetup-id` options of `/link` and `/whois` suggest the Meetup members Tavern
/// knows, to admins only: `/link` the ones not linked yet first, `/whois` the linked.
#[tokio::test]
async fn link_and_whois_suggest_meetup_ids_to_admins_only() {
    let g = game().await;
    let w = g.w();
    let suggest = |user: Snowflake, command: &'static str, typed: &'static str| {
        let sim = &w.sim;
        let channel = w.demo.general;
        async move {
            let i = sim
                .autocomplete(
                    user,
                    channel,
                    command,
                    json!([{"name": "meetup-id", "value": typed}]),
                    "meetup-id",
                )
                .expect("autocomplete");
            let reply = i.response(WAIT).await.expect("choices");
            assert_eq!(reply.callback_type, 8);
            reply.data["choices"]
                .as_array()
                .expect("choices")
                .iter()
                .map(|c| c["name"].as_str().expect("name").to_owned())
                .collect::<Vec<_>>()
        }
    };
    // Meetup member 1 (alice) and 2 (bob) are linked; 3 RSVP'd and is not.
    assert_eq!(
        suggest(w.demo.demo_player, "link", "").await,
        vec!["3 (not linked)", "1 (linked)", "2 (linked)"]
    );
    assert_eq!(
        suggest(w.demo.demo_player, "whois", "").await,
        vec!["1 (linked)", "2 (linked)", "3 (not linked)"]
    );
    assert_eq!(
        suggest(w.demo.demo_player, "whois", "2").await,
        vec!["2 (linked)"]
    );
    assert!(
        suggest(w.demo.carol, "whois", "").await.is_empty(),
        "nobody else sees members' Meetup ids"
    );
    g.stop().await;
}
