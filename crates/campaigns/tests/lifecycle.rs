//! The daily lifecycle of game channels under the `ManualClock`: expiration,
//! reminders, snooze, end of an adventure and deletion, against discord-sim and real
//! Redis. The job's function is called directly with the clock's "now".

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use campaigns::config::DiscordSettings;
use campaigns::lifecycle::{LIFECYCLE_JOB, LifecycleReport, run_lifecycle};
use campaigns::repo::Orphan;
use campaigns::{CampaignsConfig, SeriesType};
use chrono::{DateTime, Utc};
use common::{Env, at, series_id, upsert, world_env};
use discord::model::{
    ChannelEdit, ChannelId, GuildId, Overwrite, OverwriteTarget, RoleId, permissions,
};
use discord_sim::{ChannelKind, Fault, RouteMatch, Snowflake};

fn id(s: Snowflake) -> u64 {
    u64::from(s)
}

/// One game: series `s1` with event `e1` at [`SESSION`], a text and a voice channel
/// and both roles, made in discord-sim and stored in Redis.
struct Game {
    env: Env,
    settings: DiscordSettings,
    text: Snowflake,
    voice: Snowflake,
    guest: Snowflake,
    host: Snowflake,
}

const SESSION: &str = "2026-03-01T18:00:00Z";

async fn game(series_type: SeriesType) -> Game {
    let env = world_env().await;
    let w = env.world();
    let guild = w.demo.guild;
    let (text, guest, host) = common::dragon_hunt(&w.sim, guild);
    let voice = w
        .sim
        .create_channel(guild, "Dragon Hunt", ChannelKind::Voice)
        .unwrap();
    let mut up = upsert("e1", "s1");
    up.series_type = Some(series_type);
    up.series_online = true;
    env.store.upsert_event(&up).await.unwrap();
    let s = series_id("s1");
    let t = ChannelId::new(id(text));
    env.store.register_channel(&s, t).await.unwrap();
    env.store
        .register_voice_channel(&s, ChannelId::new(id(voice)))
        .await
        .unwrap();
    env.store
        .register_roles(t, RoleId::new(id(guest)), RoleId::new(id(host)))
        .await
        .unwrap();
    let mut settings = DiscordSettings::new(GuildId::new(id(guild)));
    settings.alerts_channel = Some(ChannelId::new(id(w.demo.campaigns)));
    w.clock.set(at("2026-02-20T09:00:00Z"));
    Game {
        env,
        settings,
        text,
        voice,
        guest,
        host,
    }
}

impl Game {
    fn w(&self) -> &testkit::World {
        self.env.world()
    }

    fn text_id(&self) -> ChannelId {
        ChannelId::new(id(self.text))
    }

    /// One run of the job at `now` (the clock is set there first).
    async fn run_at(&self, now: &str) -> LifecycleReport {
        self.w().clock.set(at(now));
        let report = run_lifecycle(
            &self.env.store,
            &self.w().ctx.discord,
            &self.settings,
            self.w().ctx.now(),
        )
        .await
        .unwrap();
        assert_eq!(report.failed, 0, "{report:?}");
        report
    }

    /// The bot's reminders in the game channel.
    fn reminders(&self) -> Vec<discord_sim::Message> {
        self.w()
            .sim
            .messages(self.text)
            .into_iter()
            .filter(|m| m.content.contains("no session coming up"))
            .collect()
    }

    async fn stored_time(&self, key: &str) -> Option<DateTime<Utc>> {
        self.env.get(key).await.map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .unwrap()
                .with_timezone(&Utc)
        })
    }
}

#[tokio::test]
async fn the_job_runs_every_quarter_hour_and_exists_with_the_discord_settings() {
    let g = game(SeriesType::Adventure).await;
    let mut config = CampaignsConfig::new(
        meetup::ClientId::new("tavern"),
        meetup::ClientSecret::from("tavern-secret"),
        meetup::MeetupEndpoints::production().unwrap(),
        Vec::new(),
    );
    let without = campaigns::feature(&g.w().ctx, Some(config.clone()));
    assert!(without.jobs.iter().all(|j| j.name() != LIFECYCLE_JOB));
    config.discord = Some(g.settings.clone());
    let with = campaigns::feature(&g.w().ctx, Some(config));
    let job = with
        .jobs
        .iter()
        .find(|j| j.name() == LIFECYCLE_JOB)
        .expect("the lifecycle job");
    // Often enough that `/end-adventure`'s "deleted at" holds to the quarter hour.
    assert_eq!(job.period(), Duration::from_secs(15 * 60));
    // Run through the job itself: the clock's "now", nothing due yet.
    job.run_now().await.unwrap();
    assert_eq!(
        g.stored_time(&format!("discord_channel:{}:expiration_time", g.text))
            .await,
        Some(at(SESSION))
    );
}

#[tokio::test]
async fn an_adventure_is_reminded_a_day_after_its_session_then_every_two_days() {
    let g = game(SeriesType::Adventure).await;
    let report = g.run_at("2026-02-28T09:00:00Z").await;
    assert_eq!(report.expirations_set, 1);
    assert!(report.reminded.is_empty());
    assert_eq!(
        g.stored_time(&format!("discord_channel:{}:expiration_time", g.text))
            .await,
        Some(at(SESSION))
    );

    // A day after the session, not before.
    assert!(g.run_at("2026-03-02T17:59:00Z").await.reminded.is_empty());
    let report = g.run_at("2026-03-02T18:30:00Z").await;
    assert_eq!(report.reminded, vec![g.text_id()]);
    assert_eq!(
        report.expirations_set, 0,
        "an unchanged expiration is left alone"
    );
    let reminders = g.reminders();
    assert_eq!(reminders.len(), 1);
    let reminder = &reminders[0];
    assert!(reminder.content.contains("/end-adventure"), "{reminder:?}");
    assert!(
        reminder.content.contains(&format!("<@&{}>", g.host)),
        "{reminder:?}"
    );
    assert_eq!(
        reminder.pings.roles,
        vec![g.host],
        "only the hosts are notified"
    );
    assert!(reminder.pings.users.is_empty() && !reminder.pings.everyone);
    assert_eq!(
        g.stored_time(&format!(
            "discord_channel:{}:last_expiration_reminder_time",
            g.text
        ))
        .await,
        Some(at("2026-03-02T18:30:00Z"))
    );

    // Not again the next day, nor a quarter hour before two days have passed; again
    // two days later.
    assert!(g.run_at("2026-03-03T18:30:00Z").await.reminded.is_empty());
    assert!(g.run_at("2026-03-04T18:15:00Z").await.reminded.is_empty());
    assert_eq!(g.run_at("2026-03-04T18:30:00Z").await.reminded.len(), 1);
    assert_eq!(g.reminders().len(), 2);
}

#[tokio::test]
async fn runs_every_quarter_hour_remind_no_more_often_and_delete_on_time() {
    let g = game(SeriesType::Adventure).await;
    let w = g.w();
    let mut now = at("2026-03-01T20:00:00Z");
    let mut reminded = Vec::new();
    while now < at("2026-03-05T00:00:00Z") {
        let report = g.run_at(&now.to_rfc3339()).await;
        if !report.reminded.is_empty() {
            reminded.push(now);
        }
        now += chrono::TimeDelta::minutes(15);
    }
    // A day after the session, then two days later at the same time of day: not every
    // run, and not earlier each time.
    assert_eq!(
        reminded,
        vec![at("2026-03-02T18:00:00Z"), at("2026-03-04T18:00:00Z")]
    );
    assert_eq!(g.reminders().len(), 2);

    // Ended at 10:05, deleted by the first run after 18:05.
    let deletion = g
        .env
        .store
        .end_adventure(g.text_id(), at("2026-03-05T10:05:00Z"))
        .await
        .unwrap();
    assert_eq!(deletion, at("2026-03-05T18:05:00Z"));
    assert!(g.run_at("2026-03-05T18:00:00Z").await.deleted.is_empty());
    assert!(w.sim.channel(g.text).is_some());
    assert_eq!(
        g.run_at("2026-03-05T18:15:00Z").await.deleted,
        vec![series_id("s1")]
    );
    assert!(w.sim.channel(g.text).is_none());
}

#[tokio::test]
async fn a_campaign_waits_three_days_and_a_snooze_holds_reminders_back() {
    let g = game(SeriesType::Campaign).await;
    g.run_at("2026-02-28T09:00:00Z").await;
    assert!(g.run_at("2026-03-03T18:30:00Z").await.reminded.is_empty());
    assert_eq!(g.run_at("2026-03-04T18:30:00Z").await.reminded.len(), 1);
    assert!(g.reminders()[0].content.contains("/schedule-session"));

    // Snoozed for 7 days from 2026-03-05: nothing until 2026-03-12.
    g.env
        .store
        .set_snooze(g.text_id(), Some(at("2026-03-12T09:00:00Z")))
        .await
        .unwrap();
    assert!(g.run_at("2026-03-09T18:30:00Z").await.reminded.is_empty());
    assert!(g.run_at("2026-03-12T08:59:00Z").await.reminded.is_empty());
    assert_eq!(g.run_at("2026-03-12T09:00:00Z").await.reminded.len(), 1);
    assert_eq!(g.reminders().len(), 2);
}

#[tokio::test]
async fn a_new_session_moves_the_expiration_and_cancels_the_deletion() {
    let g = game(SeriesType::Adventure).await;
    g.run_at("2026-03-01T20:00:00Z").await;
    g.env
        .store
        .end_adventure(g.text_id(), at("2026-03-01T20:00:00Z"))
        .await
        .unwrap();
    // A second session is scheduled before the deletion comes.
    let mut up = upsert("e2", "s1");
    up.event.time = at("2026-03-08T18:00:00Z");
    g.env.store.upsert_event(&up).await.unwrap();
    let report = g.run_at("2026-03-02T05:00:00Z").await;
    assert_eq!(report.expirations_set, 1);
    assert!(report.deleted.is_empty());
    assert_eq!(
        g.env
            .get(&format!("discord_channel:{}:deletion_time", g.text))
            .await,
        None
    );
    assert!(g.w().sim.channel(g.text).is_some());
}

#[tokio::test]
async fn an_ended_adventure_is_deleted_after_eight_hours_with_every_key() {
    let g = game(SeriesType::Adventure).await;
    let w = g.w();
    g.run_at("2026-03-01T20:00:00Z").await;
    let deletion = g
        .env
        .store
        .end_adventure(g.text_id(), at("2026-03-01T20:00:00Z"))
        .await
        .unwrap();
    assert_eq!(deletion, at("2026-03-02T04:00:00Z"));

    // No reminder once the deletion is scheduled, and nothing deleted before its time.
    let report = g.run_at("2026-03-02T03:59:00Z").await;
    assert!(report.reminded.is_empty() && report.deleted.is_empty());
    assert!(w.sim.channel(g.text).is_some());

    let report = g.run_at("2026-03-02T04:00:00Z").await;
    assert_eq!(report.deleted, vec![series_id("s1")]);
    assert!(report.orphaned.is_empty());
    assert!(w.sim.channel(g.text).is_none(), "the text channel is gone");
    assert!(
        w.sim.channel(g.voice).is_none(),
        "the voice channel is gone"
    );
    let roles: Vec<Snowflake> = w.sim.roles(w.demo.guild).iter().map(|r| r.id).collect();
    assert!(
        !roles.contains(&g.guest) && !roles.contains(&g.host),
        "{roles:?}"
    );
    // Every key of the series went, and the sets no longer list it.
    let left: Vec<String> = g
        .env
        .keys()
        .await
        .into_iter()
        .filter(|k| !k.starts_with("tavern:"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let alert = w
        .sim
        .messages(w.demo.campaigns)
        .into_iter()
        .find(|m| m.content.contains("was deleted"))
        .expect("the organisers are told");
    assert!(alert.content.contains("#dragon-hunt"), "{alert:?}");
    assert!(alert.pings.users.is_empty() && alert.pings.roles.is_empty());

    // The next run has nothing left to do.
    let report = g.run_at("2026-03-03T04:00:00Z").await;
    assert_eq!(report, LifecycleReport::default());
}

#[tokio::test]
async fn a_managed_channel_a_game_took_over_is_kept_when_the_game_ends() {
    let g = game(SeriesType::Adventure).await;
    let w = g.w();
    // The series took over a channel an admin marked with `/manage-channel`.
    g.env
        .store
        .set_managed_channel(g.text_id(), true)
        .await
        .unwrap();
    // Readable by everyone, as the organisers set it; the sync added the game's roles
    // and the bot.
    let discord = &w.ctx.discord;
    let bot = discord.current_user_id().await.unwrap();
    let everyone = Overwrite {
        target: OverwriteTarget::Role(RoleId::new(id(w.demo.guild))),
        allow: permissions::VIEW_CHANNEL,
        deny: 0,
    };
    let role = |r: Snowflake| Overwrite {
        target: OverwriteTarget::Role(RoleId::new(id(r))),
        allow: permissions::VIEW_CHANNEL,
        deny: 0,
    };
    let edit = ChannelEdit {
        overwrites: Some(vec![
            everyone.clone(),
            role(g.guest),
            role(g.host),
            Overwrite {
                target: OverwriteTarget::Member(bot),
                allow: permissions::VIEW_CHANNEL | permissions::MANAGE_CHANNELS,
                deny: 0,
            },
        ]),
        ..ChannelEdit::default()
    };
    discord.edit_channel(g.text_id(), &edit).await.unwrap();
    g.run_at("2026-03-01T20:00:00Z").await;
    g.env
        .store
        .end_adventure(g.text_id(), at("2026-03-01T20:00:00Z"))
        .await
        .unwrap();
    let report = g.run_at("2026-03-02T04:00:00Z").await;
    assert_eq!(report.deleted, vec![series_id("s1")]);
    assert!(w.sim.channel(g.text).is_some(), "the managed channel stays");
    let left = w
        .ctx
        .discord
        .guild_channels(GuildId::new(id(w.demo.guild)))
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == g.text_id())
        .unwrap()
        .overwrites;
    assert_eq!(left, vec![everyone], "given back as the organisers had it");
    assert!(
        w.sim.channel(g.voice).is_none(),
        "the game's voice channel goes"
    );
    let roles: Vec<Snowflake> = w.sim.roles(w.demo.guild).iter().map(|r| r.id).collect();
    assert!(
        !roles.contains(&g.guest) && !roles.contains(&g.host),
        "{roles:?}"
    );
    assert_eq!(
        g.env.members("managed_discord_channels").await,
        vec![g.text.to_string()],
        "it is still a managed channel"
    );
    assert_eq!(
        g.env.members("discord_channels").await,
        Vec::<String>::new()
    );
    let alert = w
        .sim
        .messages(w.demo.campaigns)
        .into_iter()
        .find(|m| m.content.contains("was kept"))
        .expect("the organisers are told");
    assert!(alert.content.contains("#dragon-hunt"), "{alert:?}");
}

#[tokio::test]
async fn what_discord_will_not_delete_becomes_an_orphan() {
    let g = game(SeriesType::Adventure).await;
    let w = g.w();
    g.run_at("2026-03-01T20:00:00Z").await;
    g.env
        .store
        .end_adventure(g.text_id(), at("2026-03-01T20:00:00Z"))
        .await
        .unwrap();
    let host_path = format!("/guilds/{}/roles/{}", w.demo.guild, g.host);
    w.sim.inject_fault(
        RouteMatch::new("DELETE", host_path),
        Fault::Status(500),
        100,
    );

    let report = g.run_at("2026-03-02T04:00:00Z").await;
    assert_eq!(report.deleted, vec![series_id("s1")]);
    assert_eq!(report.orphaned, vec![Orphan::Role(RoleId::new(id(g.host)))]);
    assert_eq!(
        g.env.members("orphaned_discord_roles").await,
        vec![g.host.to_string()]
    );
    assert!(w.sim.channel(g.text).is_none());
    assert_eq!(
        g.env
            .get(&format!("event_series:{}:discord_channel", "s1"))
            .await,
        None
    );
    w.sim.clear_faults();
}
