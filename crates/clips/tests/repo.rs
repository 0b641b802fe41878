//! The repositories against a real PostgreSQL: what each writes, the cascades of the
//! seed's foreign keys, and the races the single-statement changes are there to win.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use clips::domain::{
    ChannelId, GuildId, InstallIntent, IntentState, MessageId, PURGE_GRACE, STATE_BYTES,
    ScanStatus, ScanWindow, Settings, UserId,
};
use clips::repo::{ChannelInfo, GuildInfo, Progress, Repo, RepoError, ScanRun, UserProfile};
use clips::{ClipsConfig, ConsumeError, jobs};
use feature::{Clock, Feature, ManualClock, SystemClock};
use serde_json::json;
use store::harness::TestPostgres;
use testkit::{World, eventually};

struct Env {
    /// What keeps the servers up: a [`TestPostgres`], or a whole [`World`].
    _servers: Box<dyn std::any::Any>,
    pg: store::Postgres,
    repo: Repo,
}

/// A migrated PostgreSQL of its own: enough for the repositories.
async fn env() -> Env {
    let server = TestPostgres::start().await;
    let pg = server.connect().await;
    pg.migrate(&clips::MIGRATIONS).await.expect("migrate");
    let repo = Repo::new(&pg);
    Env {
        _servers: Box::new(server),
        pg,
        repo,
    }
}

/// A [`World`] with PostgreSQL and the feature built from its context (with the
/// system's clock when `system_clock`, else the world's manual clock, returned) and
/// migrated as `tavern migrate` does.
async fn env_with_feature(system_clock: bool) -> (Env, Arc<ManualClock>, Feature) {
    let world = World::with_postgres().await;
    let mut ctx = world.ctx.clone();
    if system_clock {
        ctx.clock = Arc::new(SystemClock);
    }
    let clips = clips::feature(&ctx, ClipsConfig::default());
    world.migrate(std::slice::from_ref(&clips)).await;
    let (pg, clock) = (world.postgres.clone(), world.clock.clone());
    let repo = Repo::new(&pg);
    let env = Env {
        _servers: Box::new(world),
        pg,
        repo,
    };
    (env, clock, clips)
}

/// The feature's purge job.
fn purge_job(clips: &Feature) -> &feature::Job {
    clips
        .jobs
        .iter()
        .find(|j| j.name() == jobs::PURGE_INSTALL_INTENTS)
        .expect("the purge job")
}

const GUILD: u64 = 500;
const CHANNEL: u64 = 600;

fn user(n: u64) -> UserId {
    UserId::new(n)
}
fn guild(n: u64) -> GuildId {
    GuildId::new(n)
}
fn channel(n: u64) -> ChannelId {
    ChannelId::new(n)
}
fn mid(n: u64) -> MessageId {
    MessageId::new(n)
}
fn settings(v: serde_json::Value) -> Settings {
    Settings::from_json(v).expect("object")
}
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
}

fn profile(n: u64, name: &str) -> UserProfile {
    UserProfile {
        id: user(n),
        username: Some(name.into()),
        global_name: Some(name.to_uppercase()),
        avatar: None,
    }
}

fn guild_info(owner: Option<u64>) -> GuildInfo {
    GuildInfo {
        id: guild(GUILD),
        name: "The Tavern".into(),
        icon: Some("abc".into()),
        owner: owner.map(user),
    }
}

fn channel_info(n: u64) -> ChannelInfo {
    ChannelInfo {
        id: channel(n),
        guild: guild(GUILD),
        name: Some(format!("clips-{n}")),
        kind: Some("text".into()),
        is_nsfw: false,
    }
}

impl Env {
    /// A guild with one channel.
    async fn with_channel(&self) {
        self.repo
            .upsert_guild(&guild_info(None))
            .await
            .expect("guild");
        self.repo
            .upsert_channel(&channel_info(CHANNEL))
            .await
            .expect("channel");
    }

    /// A deep scan of [`CHANNEL`], queued.
    async fn queue_deep(&self) -> ScanRun {
        self.repo
            .queue_run(channel(CHANNEL), ScanWindow::deep(None))
            .await
            .expect("queue")
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.pg.pool())
            .await
            .expect("count")
    }

    async fn intent_of(&self, owner: u64, now: DateTime<Utc>) -> InstallIntent {
        self.repo
            .upsert_user(&profile(owner, "owner"))
            .await
            .expect("user");
        let intent = InstallIntent::new(IntentState::generate(), user(owner), guild(GUILD), now);
        self.repo
            .create_intent(&intent)
            .await
            .expect("create intent");
        intent
    }
}

// ---- users and guilds

#[tokio::test]
async fn upserting_a_user_refreshes_the_profile_and_keeps_the_row() {
    let env = env().await;

    let first = env
        .repo
        .upsert_user(&profile(42, "ann"))
        .await
        .expect("insert");
    let second = env
        .repo
        .upsert_user(&profile(42, "anne"))
        .await
        .expect("update");
    env.repo.record_login(user(42), at(0)).await.expect("login");

    assert_eq!(first.id, second.id, "same users.id");
    assert_eq!(second.profile.username.as_deref(), Some("anne"));
    let stored = env
        .repo
        .user(user(42))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.profile, profile(42, "anne"));
    assert_eq!(stored.last_login_at, Some(at(0)));
    assert_eq!(env.count("SELECT count(*) FROM clips.users").await, 1);
    assert!(matches!(
        env.repo.record_login(user(7), at(0)).await,
        Err(RepoError::UnknownUser(u)) if u == user(7)
    ));
}

#[tokio::test]
async fn names_from_discord_holding_a_nul_are_stored_without_it() {
    let env = env().await;
    let stored_user = env
        .repo
        .upsert_user(&profile(1, "a\0nn"))
        .await
        .expect("a user name with a NUL is stored");
    assert_eq!(stored_user.profile.username.as_deref(), Some("ann"));
    assert_eq!(stored_user.profile.global_name.as_deref(), Some("ANN"));

    let mut info = guild_info(None);
    info.name = "The\0 Tavern".into();
    env.repo
        .upsert_guild(&info)
        .await
        .expect("a guild name with a NUL is stored");
    let stored = env.repo.guild(guild(GUILD)).await.unwrap().unwrap();
    assert_eq!(stored.info.name, "The Tavern");
    env.repo
        .claim_guild(guild(GUILD + 1), "Ot\0her", user(1))
        .await
        .expect("a claimed guild's name with a NUL is stored");
    let other = env.repo.guild(guild(GUILD + 1)).await.unwrap().unwrap();
    assert_eq!(other.info.name, "Other");

    let mut one = channel_info(1);
    one.name = Some("cl\0ips".into());
    env.repo
        .upsert_channel(&one)
        .await
        .expect("a channel name with a NUL is stored");
    let mut two = channel_info(2);
    two.name = Some("hi\0ghlights".into());
    env.repo
        .sync_guild_channels(guild(GUILD), &[one, two])
        .await
        .expect("a guild's channel list with a NUL in a name is stored");
    let names: Vec<Option<String>> = env
        .repo
        .guild_channels(guild(GUILD))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.info.name)
        .collect();
    assert_eq!(
        names,
        vec![Some("clips".to_owned()), Some("highlights".to_owned())]
    );
}

#[tokio::test]
async fn a_guild_is_recorded_with_its_owner_who_gets_a_bare_user_row() {
    let env = env().await;

    env.repo
        .upsert_guild(&guild_info(Some(9)))
        .await
        .expect("guild");

    let stored = env
        .repo
        .guild(guild(GUILD))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.info, guild_info(Some(9)));
    assert!(stored.joined_at.is_some() && stored.last_seen_at.is_some());
    let owner = env
        .repo
        .user(user(9))
        .await
        .expect("read")
        .expect("owner row");
    assert_eq!(owner.profile.username, None);

    // Refreshing keeps joined_at and takes the new name and owner.
    let mut renamed = guild_info(Some(10));
    renamed.name = "New name".into();
    env.repo.upsert_guild(&renamed).await.expect("refresh");
    let again = env
        .repo
        .guild(guild(GUILD))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(again.info, renamed);
    assert_eq!(again.joined_at, stored.joined_at);
}

#[tokio::test]
async fn deleting_the_owner_leaves_the_guild_without_one_and_removes_their_intents() {
    let env = env().await;
    env.repo
        .upsert_guild(&guild_info(Some(9)))
        .await
        .expect("guild");
    env.intent_of(9, Utc::now()).await;

    assert!(env.repo.delete_user(user(9)).await.expect("delete"));

    let stored = env
        .repo
        .guild(guild(GUILD))
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(stored.info.owner, None, "ON DELETE SET NULL");
    assert_eq!(
        env.count("SELECT count(*) FROM clips.install_intents")
            .await,
        0,
        "ON DELETE CASCADE"
    );
    assert!(!env.repo.delete_user(user(9)).await.expect("delete again"));
}

#[tokio::test]
async fn deleting_a_guild_removes_its_channels_and_their_runs_but_not_its_settings() {
    let env = env().await;
    env.with_channel().await;
    env.repo
        .upsert_channel(&channel_info(CHANNEL + 1))
        .await
        .expect("channel");
    env.queue_deep().await;
    env.repo
        .update_guild_settings(guild(GUILD), &settings(json!({"scan_nsfw": true})))
        .await
        .expect("settings");

    assert!(env.repo.delete_guild(guild(GUILD)).await.expect("delete"));

    assert_eq!(
        env.count("SELECT count(*) FROM clips.bot_channels").await,
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM clips.bot_channel_scan_runs")
            .await,
        0
    );
    assert_eq!(
        env.repo
            .guild_settings(guild(GUILD))
            .await
            .expect("settings"),
        settings(json!({"scan_nsfw": true}))
    );
}

#[tokio::test]
async fn claiming_sets_an_owner_only_where_there_is_none() {
    let env = env().await;
    env.repo
        .upsert_user(&profile(1, "first"))
        .await
        .expect("user");
    env.repo
        .upsert_user(&profile(2, "second"))
        .await
        .expect("user");

    let new = env
        .repo
        .claim_guild(guild(GUILD), "g", user(1))
        .await
        .expect("claim");
    let taken = env
        .repo
        .claim_guild(guild(GUILD), "g", user(2))
        .await
        .expect("claim");

    assert_eq!(new, Some(user(1)));
    assert_eq!(taken, Some(user(1)), "an owned guild keeps its owner");

    env.repo.delete_user(user(1)).await.expect("delete");
    let orphan = env
        .repo
        .claim_guild(guild(GUILD), "g", user(2))
        .await
        .expect("claim");
    assert_eq!(orphan, Some(user(2)), "an ownerless guild is claimed");
    assert!(matches!(
        env.repo.claim_guild(guild(GUILD + 1), "h", user(3)).await,
        Err(RepoError::UnknownUser(u)) if u == user(3)
    ));
}

// ---- settings

#[tokio::test]
async fn guild_settings_update_partially_and_null_removes_a_key() {
    let env = env().await;
    assert_eq!(
        env.repo
            .guild_settings(guild(GUILD))
            .await
            .expect("none yet"),
        Settings::empty()
    );

    let first = env
        .repo
        .update_guild_settings(
            guild(GUILD),
            &settings(json!({"prefix": "!", "video_formats": ["mp4"], "gone": null})),
        )
        .await
        .expect("create");
    let second = env
        .repo
        .update_guild_settings(
            guild(GUILD),
            &settings(json!({"video_formats": ["webm"], "scan_nsfw": true, "prefix": null})),
        )
        .await
        .expect("patch");

    assert_eq!(
        first,
        settings(json!({"prefix": "!", "video_formats": ["mp4"]}))
    );
    assert_eq!(
        second,
        settings(json!({"video_formats": ["webm"], "scan_nsfw": true}))
    );
    assert_eq!(
        env.repo.guild_settings(guild(GUILD)).await.expect("read"),
        second
    );
    let updated_at: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT updated_at FROM clips.guild_settings")
            .fetch_one(env.pg.pool())
            .await
            .expect("updated_at");
    assert!(updated_at.is_some());
}

#[tokio::test]
async fn a_channels_effective_settings_are_its_overrides_merged_over_the_guilds() {
    let env = env().await;
    env.with_channel().await;
    assert_eq!(
        env.repo
            .effective_settings(channel(CHANNEL))
            .await
            .expect("defaults"),
        Settings::empty()
    );
    env.repo
        .update_guild_settings(
            guild(GUILD),
            &settings(json!({"video_formats": ["mp4"], "scan_nsfw": false, "prefix": "!"})),
        )
        .await
        .expect("guild");

    env.repo
        .update_channel_settings(
            channel(CHANNEL),
            &settings(json!({"video_formats": ["mkv"], "prefix": null, "scan_nsfw": true})),
        )
        .await
        .expect("channel");
    let effective = env
        .repo
        .effective_settings(channel(CHANNEL))
        .await
        .expect("merged");

    assert_eq!(
        effective,
        settings(json!({"video_formats": ["mkv"], "scan_nsfw": true, "prefix": "!"})),
        "a null override is not stored, so the guild's value shows through"
    );
    let m = clips::ClipMatcher::from_settings(&effective).expect("matcher");
    assert!(m.matches(&clips::Attachment {
        filename: "a.mkv",
        content_type: None
    }));
    assert!(matches!(
        env.repo
            .update_channel_settings(channel(1), &Settings::empty())
            .await,
        Err(RepoError::UnknownChannel(_))
    ));
}

// ---- channels

#[tokio::test]
async fn channels_are_upserted_enabled_and_disabled() {
    let env = env().await;
    assert!(matches!(
        env.repo.upsert_channel(&channel_info(CHANNEL)).await,
        Err(RepoError::UnknownGuild(g)) if g == guild(GUILD)
    ));
    env.with_channel().await;
    env.repo
        .upsert_channel(&channel_info(CHANNEL + 1))
        .await
        .expect("second");
    env.repo
        .update_channel_settings(channel(CHANNEL), &settings(json!({"scan_nsfw": true})))
        .await
        .expect("settings");

    env.repo
        .set_reading(channel(CHANNEL), true)
        .await
        .expect("enable");
    let mut renamed = channel_info(CHANNEL);
    renamed.name = Some("renamed".into());
    renamed.is_nsfw = true;
    env.repo.upsert_channel(&renamed).await.expect("refresh");

    let stored = env
        .repo
        .channel(channel(CHANNEL))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.info, renamed);
    assert!(stored.is_reading, "a refresh keeps the reading state");
    assert_eq!(stored.settings, settings(json!({"scan_nsfw": true})));
    assert_eq!(stored.message_count, 0);
    let reading = env.repo.reading_channels(guild(GUILD)).await.expect("list");
    assert_eq!(
        reading.iter().map(|c| c.info.id).collect::<Vec<_>>(),
        [channel(CHANNEL)]
    );

    env.repo
        .set_reading(channel(CHANNEL), false)
        .await
        .expect("disable");
    assert!(
        env.repo
            .reading_channels(guild(GUILD))
            .await
            .expect("list")
            .is_empty()
    );
    assert!(matches!(
        env.repo.set_reading(channel(1), true).await,
        Err(RepoError::UnknownChannel(_))
    ));
}

// ---- scan runs

#[tokio::test]
async fn a_run_is_queued_started_and_finished_with_its_timestamps() {
    let env = env().await;
    env.with_channel().await;

    let queued = env
        .repo
        .queue_run(channel(CHANNEL), ScanWindow::catch_up(Some(mid(1000))))
        .await
        .expect("queue");
    assert_eq!(queued.status, ScanStatus::Queued);
    assert_eq!(queued.window, ScanWindow::catch_up(Some(mid(1000))));
    assert_eq!((queued.messages_scanned, queued.messages_matched), (0, 0));
    assert_eq!((queued.started_at, queued.finished_at), (None, None));

    let running = env.repo.start_run(queued.id).await.expect("start");
    assert_eq!(running.status, ScanStatus::Running);
    assert!(running.started_at.is_some() && running.finished_at.is_none());

    let failed = env
        .repo
        .fail_run(queued.id, "discord said 403")
        .await
        .expect("fail");
    assert_eq!(failed.status, ScanStatus::Failed);
    assert_eq!(failed.error_message.as_deref(), Some("discord said 403"));
    assert!(failed.finished_at.is_some());
    assert_eq!(failed.started_at, running.started_at);
    assert_eq!(env.repo.run(queued.id).await.expect("read"), Some(failed));
}

#[tokio::test]
async fn illegal_and_stale_transitions_are_refused_and_change_nothing() {
    let env = env().await;
    env.with_channel().await;
    let run = env.queue_deep().await;

    let illegal = env
        .repo
        .transition_run(run.id, ScanStatus::Queued, ScanStatus::Succeeded, None)
        .await;
    let stale = env.repo.succeed_run(run.id).await;

    assert!(
        matches!(illegal, Err(RepoError::IllegalTransition(_))),
        "{illegal:?}"
    );
    assert!(
        matches!(
            stale,
            Err(RepoError::StaleStatus {
                expected: ScanStatus::Running,
                actual: ScanStatus::Queued,
                ..
            })
        ),
        "{stale:?}"
    );
    assert_eq!(env.repo.run(run.id).await.expect("read"), Some(run));
}

#[tokio::test]
async fn of_two_workers_starting_the_same_run_exactly_one_wins() {
    let env = env().await;
    env.with_channel().await;
    for _ in 0..10 {
        let run = env.queue_deep().await;
        let (a, b) = (env.repo.clone(), env.repo.clone());

        let (first, second) = tokio::join!(
            tokio::spawn(async move { a.start_run(run.id).await }),
            tokio::spawn(async move { b.start_run(run.id).await }),
        );

        let results = [first.expect("task"), second.expect("task")];
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{results:?}");
        let loser = results.iter().find(|r| r.is_err()).expect("a loser");
        assert!(
            matches!(
                loser,
                Err(RepoError::StaleStatus {
                    actual: ScanStatus::Running,
                    ..
                })
            ),
            "{loser:?}"
        );
    }
}

#[tokio::test]
async fn canceling_works_from_queued_and_from_running_but_not_after_the_end() {
    let env = env().await;
    env.with_channel().await;
    let queued = env.queue_deep().await;
    let running = env.queue_deep().await;
    env.repo.start_run(running.id).await.expect("start");

    let a = env.repo.cancel_run(queued.id).await.expect("cancel queued");
    let b = env
        .repo
        .cancel_run(running.id)
        .await
        .expect("cancel running");

    assert_eq!(a.status, ScanStatus::Canceled);
    assert_eq!(b.status, ScanStatus::Canceled);
    assert!(a.finished_at.is_some() && b.finished_at.is_some());
    assert!(matches!(
        env.repo.cancel_run(a.id).await,
        Err(RepoError::StaleStatus {
            actual: ScanStatus::Canceled,
            ..
        })
    ));
    let unknown = clips::domain::ScanRunId::parse("00000000-0000-4000-8000-000000000000").unwrap();
    assert!(matches!(
        env.repo.start_run(unknown).await,
        Err(RepoError::UnknownRun(id)) if id == unknown
    ));
    assert!(matches!(
        env.repo.queue_run(channel(1), ScanWindow::deep(None)).await,
        Err(RepoError::UnknownChannel(_))
    ));
}

#[tokio::test]
async fn progress_moves_the_run_and_its_channel_together_until_the_run_stops() {
    let env = env().await;
    env.with_channel().await;
    let run = env.queue_deep().await;
    assert!(matches!(
        env.repo
            .record_progress(
                run.id,
                &Progress {
                    scanned: 1,
                    matched: 0,
                    remaining: run.window,
                    newest: None
                }
            )
            .await,
        Err(RepoError::NotRunning {
            actual: ScanStatus::Queued,
            ..
        })
    ));
    env.repo.start_run(run.id).await.expect("start");

    // First page of a deep scan: the newest messages, 901..=1000.
    let page1: Vec<MessageId> = (901..=1000).map(mid).collect();
    let after1 = run.window.after_page(&page1).expect("more");
    let step1 = env
        .repo
        .record_progress(
            run.id,
            &Progress {
                scanned: 100,
                matched: 3,
                remaining: after1,
                newest: page1.iter().copied().max(),
            },
        )
        .await
        .expect("step 1");
    // Second page, older: 801..=900; its newest (900) must not move last_message_id
    // back (and "900" > "1000" as text: the comparison is numeric).
    let page2: Vec<MessageId> = (801..=900).map(mid).collect();
    let after2 = after1.after_page(&page2).expect("more");
    let step2 = env
        .repo
        .record_progress(
            run.id,
            &Progress {
                scanned: 100,
                matched: 2,
                remaining: after2,
                newest: page2.iter().copied().max(),
            },
        )
        .await
        .expect("step 2");

    assert_eq!(step1.window.before(), Some(mid(901)));
    assert_eq!((step2.messages_scanned, step2.messages_matched), (200, 5));
    assert_eq!(step2.window, after2);
    assert_eq!(
        env.repo
            .run(run.id)
            .await
            .expect("read")
            .expect("run")
            .window
            .before(),
        Some(mid(801))
    );
    let ch = env
        .repo
        .channel(channel(CHANNEL))
        .await
        .expect("read")
        .expect("channel");
    assert_eq!(ch.message_count, 200);
    assert_eq!(ch.last_message_id, Some(mid(1000)));
    assert!(ch.last_scanned_at.is_some());

    // Canceled: the worker's next progress is refused, and nothing moves.
    env.repo.cancel_run(run.id).await.expect("cancel");
    let refused = env
        .repo
        .record_progress(
            run.id,
            &Progress {
                scanned: 100,
                matched: 1,
                remaining: after2,
                newest: Some(mid(5000)),
            },
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(RepoError::NotRunning {
                actual: ScanStatus::Canceled,
                ..
            })
        ),
        "{refused:?}"
    );
    let ch = env
        .repo
        .channel(channel(CHANNEL))
        .await
        .expect("read")
        .expect("channel");
    assert_eq!(
        (ch.message_count, ch.last_message_id),
        (200, Some(mid(1000)))
    );
}

#[tokio::test]
async fn a_channels_runs_list_newest_first() {
    let env = env().await;
    env.with_channel().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        // Separate statements: separate created_at values.
        ids.push(env.queue_deep().await.id);
    }

    let runs = env.repo.runs(channel(CHANNEL), 2).await.expect("list");

    ids.reverse();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..2]);
}

// ---- install intents

#[tokio::test]
async fn an_intent_is_stored_in_utc_and_consumed_once_by_its_user() {
    let env = env().await;
    let now = Utc::now();
    let intent = env.intent_of(1, now).await;
    let stored: (chrono::NaiveDateTime, chrono::NaiveDateTime) =
        sqlx::query_as("SELECT created_at, expires_at FROM clips.install_intents")
            .fetch_one(env.pg.pool())
            .await
            .expect("row");
    assert_eq!(
        stored,
        (intent.created_at.naive_utc(), intent.expires_at.naive_utc()),
        "UTC wall-clock times"
    );

    let first = env.repo.consume_intent(&intent.state, user(1), now).await;
    let second = env.repo.consume_intent(&intent.state, user(1), now).await;

    assert_eq!(first.expect("consumed"), intent);
    assert!(
        matches!(second, Err(RepoError::Intent(ConsumeError::Unknown))),
        "{second:?}"
    );
}

#[tokio::test]
async fn another_users_callback_is_forbidden_and_leaves_the_intent_to_its_owner() {
    let env = env().await;
    let now = at(0);
    let intent = env.intent_of(1, now).await;
    env.repo
        .upsert_user(&profile(2, "mallory"))
        .await
        .expect("user");

    let stolen = env.repo.consume_intent(&intent.state, user(2), now).await;

    assert!(
        matches!(stolen, Err(RepoError::Intent(ConsumeError::Forbidden))),
        "{stolen:?}"
    );
    assert_eq!(
        env.repo
            .consume_intent(&intent.state, user(1), now + TimeDelta::minutes(9))
            .await
            .expect("owner consumes"),
        intent
    );
}

#[tokio::test]
async fn an_expired_or_unknown_state_is_rejected() {
    let env = env().await;
    let intent = env.intent_of(1, at(0)).await;

    let late = env
        .repo
        .consume_intent(&intent.state, user(1), at(0) + TimeDelta::minutes(10))
        .await;
    let unknown = env
        .repo
        .consume_intent(&IntentState::from_entropy([7; STATE_BYTES]), user(1), at(0))
        .await;

    assert!(
        matches!(late, Err(RepoError::Intent(ConsumeError::Expired))),
        "{late:?}"
    );
    assert!(
        matches!(unknown, Err(RepoError::Intent(ConsumeError::Unknown))),
        "{unknown:?}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM clips.install_intents")
            .await,
        1
    );
}

#[tokio::test]
async fn concurrent_callbacks_consume_an_intent_once() {
    let env = env().await;
    let now = Utc::now();
    let intent = env.intent_of(1, now).await;
    let (a, b) = (env.repo.clone(), env.repo.clone());
    let (sa, sb) = (intent.state.clone(), intent.state.clone());

    let (x, y) = tokio::join!(
        tokio::spawn(async move { a.consume_intent(&sa, user(1), now).await }),
        tokio::spawn(async move { b.consume_intent(&sb, user(1), now).await }),
    );

    let results = [x.expect("task"), y.expect("task")];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

#[tokio::test]
async fn an_intent_for_an_unknown_user_is_refused() {
    let env = env().await;
    let intent = InstallIntent::new(IntentState::generate(), user(3), guild(GUILD), at(0));

    let result = env.repo.create_intent(&intent).await;

    assert!(
        matches!(result, Err(RepoError::UnknownUser(u)) if u == user(3)),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_purge_deletes_intents_five_minutes_after_they_expired() {
    let env = env().await;
    let now = at(10_000);
    // Expired 6 minutes ago, expired 4 minutes ago, still valid.
    let old = env.intent_of(1, now - TimeDelta::minutes(16)).await;
    let recent = env.intent_of(1, now - TimeDelta::minutes(14)).await;
    let live = env.intent_of(1, now - TimeDelta::minutes(1)).await;

    let purged = env
        .repo
        .purge_install_intents(now, PURGE_GRACE)
        .await
        .expect("purge");

    assert_eq!(purged, 1);
    let mut left: Vec<String> = sqlx::query_scalar("SELECT state FROM clips.install_intents")
        .fetch_all(env.pg.pool())
        .await
        .expect("left");
    left.sort();
    let mut expected = vec![
        recent.state.expose().to_owned(),
        live.state.expose().to_owned(),
    ];
    expected.sort();
    assert_eq!(left, expected);
    assert!(!left.contains(&old.state.expose().to_owned()));
}

#[tokio::test]
async fn the_purge_job_purges_with_the_real_clock() {
    let (env, _clock, clips) = env_with_feature(true).await;
    let stale = env.intent_of(1, Utc::now() - TimeDelta::hours(1)).await;
    let fresh = env.intent_of(1, Utc::now()).await;
    let job = purge_job(&clips);

    job.run_now().await.expect("job runs");

    let left: Vec<String> = sqlx::query_scalar("SELECT state FROM clips.install_intents")
        .fetch_all(env.pg.pool())
        .await
        .expect("left");
    assert_eq!(left, [fresh.state.expose().to_owned()]);
    assert_ne!(stale.state, fresh.state);
}

#[tokio::test]
async fn the_purge_job_goes_by_the_contexts_clock() {
    let (env, clock, clips) = env_with_feature(false).await;
    env.intent_of(1, clock.now()).await;
    let job = purge_job(&clips);
    let left = || env.count("SELECT count(*) FROM clips.install_intents");

    // Expired 4 minutes ago: still within the grace.
    clock.advance(Duration::from_secs(14 * 60));
    job.run_now().await.expect("job runs");
    assert_eq!(left().await, 1);

    // Expired 6 minutes ago: purged.
    clock.advance(Duration::from_secs(2 * 60));
    job.run_now().await.expect("job runs");
    assert_eq!(left().await, 0);
}

// ---- the clip index and scan coordination

/// A deep scan's first page: 100 messages (ids 10 to 109), two of them with clips,
/// three clips in all.
fn first_deep_page() -> clips::repo::Page {
    clips::repo::Page {
        progress: Progress {
            scanned: 100,
            matched: 2,
            remaining: ScanWindow::deep(Some(mid(10))),
            newest: Some(mid(109)),
        },
        newest_at: Some(at(109)),
        clips: vec![new_clip(1, 50), new_clip(2, 50), new_clip(3, 60)],
    }
}

fn new_clip(attachment: u64, message: u64) -> clips::repo::NewClip {
    clips::repo::NewClip {
        attachment_id: attachment,
        message_id: mid(message),
        author_id: user(9),
        author_name: "alice".into(),
        posted_at: at(message as i64),
        filename: format!("{attachment}.mp4").into(),
        content_type: Some("video/mp4".into()),
        size_bytes: 1_000,
        width: Some(1920),
        height: Some(1080),
        duration_secs: Some(12.5),
        url: format!("https://cdn.example/{attachment}.mp4?ex=6841f3c0").into(),
        proxy_url: None,
        url_expires_at: Some(at(100)),
        message_text: format!("message {message}").into(),
    }
}

#[tokio::test]
async fn two_requests_racing_queue_one_run() {
    let env = env().await;
    env.with_channel().await;
    let (a, b) = tokio::join!(
        env.repo
            .request_run(channel(CHANNEL), ScanWindow::deep(None)),
        env.repo
            .request_run(channel(CHANNEL), ScanWindow::catch_up(Some(mid(5)))),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let queued = [&a, &b]
        .iter()
        .filter(|r| matches!(r, clips::repo::RunRequest::Queued(_)))
        .count();
    assert_eq!(queued, 1, "{a:?} {b:?}");
    assert_eq!(env.repo.runs(channel(CHANNEL), 10).await.unwrap().len(), 1);
    assert_eq!(
        env.repo
            .request_run(channel(CHANNEL), ScanWindow::deep(None))
            .await
            .unwrap(),
        clips::repo::RunRequest::Existing(
            env.repo
                .unfinished_run(channel(CHANNEL))
                .await
                .unwrap()
                .unwrap()
        )
    );
    assert!(matches!(
        env.repo
            .request_run(channel(404), ScanWindow::deep(None))
            .await,
        Err(RepoError::UnknownChannel(_))
    ));
}

#[tokio::test]
async fn a_page_writes_its_clips_once_and_a_canceled_run_takes_none() {
    let env = env().await;
    env.with_channel().await;
    let run = env.queue_deep().await;
    env.repo.start_run(run.id).await.unwrap();
    let page = first_deep_page();
    let after = env.repo.record_page(run.id, &page).await.unwrap();
    assert_eq!((after.messages_scanned, after.messages_matched), (100, 2));
    assert_eq!(after.window.before(), Some(mid(10)));
    // The same page again (a retry): counted again, indexed once.
    env.repo.record_page(run.id, &page).await.unwrap();
    assert_eq!(
        env.repo.clips_in_channel(channel(CHANNEL)).await.unwrap(),
        3
    );
    assert_eq!(
        env.repo
            .message_clip_ids(channel(CHANNEL), mid(50))
            .await
            .unwrap(),
        [1, 2]
    );
    let stored = env.repo.channel(channel(CHANNEL)).await.unwrap().unwrap();
    assert_eq!(stored.last_message_id, Some(mid(109)));
    assert_eq!(stored.last_activity_at, Some(at(109)));
    assert_eq!(stored.message_count, 200);

    env.repo.cancel_run(run.id).await.unwrap();
    let later = clips::repo::Page {
        clips: vec![new_clip(4, 5)],
        ..page
    };
    assert!(matches!(
        env.repo.record_page(run.id, &later).await,
        Err(RepoError::NotRunning {
            actual: ScanStatus::Canceled,
            ..
        })
    ));
    assert_eq!(
        env.repo.clips_in_channel(channel(CHANNEL)).await.unwrap(),
        3,
        "nothing written"
    );
    assert_eq!(
        env.repo
            .channel(channel(CHANNEL))
            .await
            .unwrap()
            .unwrap()
            .message_count,
        200
    );
}

#[tokio::test]
async fn a_purge_is_refused_in_its_own_statement_while_a_scan_is_unfinished() {
    let env = env().await;
    env.with_channel().await;
    let run = env.queue_deep().await;
    env.repo.start_run(run.id).await.unwrap();
    let page = first_deep_page();
    env.repo.record_page(run.id, &page).await.unwrap();

    // No check beforehand: the purge itself refuses, for the channel and its guild.
    for purge in [
        env.repo.purge_channel_index(channel(CHANNEL)).await,
        env.repo.purge_guild_index(guild(GUILD)).await,
    ] {
        match purge {
            Err(RepoError::ScanUnfinished {
                channel: refused,
                status: ScanStatus::Running,
            }) => assert_eq!(refused, channel(CHANNEL)),
            other => panic!("refused while the scan runs: {other:?}"),
        }
    }
    assert_eq!(
        env.repo.clips_in_channel(channel(CHANNEL)).await.unwrap(),
        3,
        "nothing purged"
    );
    let stored = env.repo.channel(channel(CHANNEL)).await.unwrap().unwrap();
    assert_eq!(stored.last_message_id, Some(mid(109)), "the position stays");
    assert_eq!(stored.message_count, 100);

    // A queued run refuses it too; a finished one does not.
    env.repo.cancel_run(run.id).await.unwrap();
    let queued = env.queue_deep().await;
    assert!(matches!(
        env.repo.purge_channel_index(channel(CHANNEL)).await,
        Err(RepoError::ScanUnfinished {
            status: ScanStatus::Queued,
            ..
        })
    ));
    env.repo.cancel_run(queued.id).await.unwrap();
    let purged = env
        .repo
        .purge_channel_index(channel(CHANNEL))
        .await
        .unwrap();
    assert_eq!((purged.clips, purged.channels), (3, 1));
    let stored = env.repo.channel(channel(CHANNEL)).await.unwrap().unwrap();
    assert_eq!(
        (stored.last_message_id, stored.message_count),
        (None, 0),
        "the position is reset"
    );
    assert_eq!(
        env.repo.clips_in_channel(channel(CHANNEL)).await.unwrap(),
        0
    );
    assert!(matches!(
        env.repo.purge_channel_index(channel(404)).await,
        Err(RepoError::UnknownChannel(_))
    ));
}

#[tokio::test]
async fn live_messages_edits_and_deletes_keep_the_index_current() {
    let env = env().await;
    env.with_channel().await;
    let ch = channel(CHANNEL);
    // Not reading: nothing.
    let (reading, added) = env
        .repo
        .index_live_message(ch, mid(70), at(70), &[new_clip(7, 70)])
        .await
        .unwrap();
    assert_eq!((reading, added), (false, 0));
    assert_eq!(env.repo.clips_in_channel(ch).await.unwrap(), 0);

    env.repo.set_reading(ch, true).await.unwrap();
    let (reading, added) = env
        .repo
        .index_live_message(ch, mid(70), at(70), &[new_clip(7, 70), new_clip(8, 70)])
        .await
        .unwrap();
    assert_eq!((reading, added), (true, 2));
    let stored = env.repo.channel(ch).await.unwrap().unwrap();
    assert_eq!(
        (stored.message_count, stored.last_message_id),
        (1, Some(mid(70)))
    );
    // An older message arriving late does not move last_message_id back.
    env.repo
        .index_live_message(ch, mid(65), at(65), &[])
        .await
        .unwrap();
    assert_eq!(
        env.repo.channel(ch).await.unwrap().unwrap().last_message_id,
        Some(mid(70))
    );

    // Edit: attachment 8 removed, 9 added, text changed.
    let (removed, added) = env
        .repo
        .replace_message_clips(
            ch,
            mid(70),
            Some(&"edited".into()),
            &[7, 9, 99],
            &[new_clip(7, 70), new_clip(9, 70)],
        )
        .await
        .unwrap();
    assert_eq!((removed, added), (1, 1));
    assert_eq!(
        env.repo.message_clip_ids(ch, mid(70)).await.unwrap(),
        [7, 9]
    );
    let text: String =
        sqlx::query_scalar("SELECT message_text FROM clips.clips WHERE attachment_id = '7'")
            .fetch_one(env.pg.pool())
            .await
            .unwrap();
    assert_eq!(text, "edited");

    env.repo
        .index_live_message(ch, mid(80), at(80), &[new_clip(10, 80)])
        .await
        .unwrap();
    env.repo
        .index_live_message(ch, mid(90), at(90), &[new_clip(11, 90)])
        .await
        .unwrap();
    assert_eq!(env.repo.delete_message_clips(ch, mid(70)).await.unwrap(), 2);
    assert_eq!(
        env.repo
            .delete_messages_clips(ch, &[mid(80), mid(90), mid(95)])
            .await
            .unwrap(),
        2
    );
    assert_eq!(env.repo.clips_in_channel(ch).await.unwrap(), 0);
}

#[tokio::test]
async fn a_guilds_channels_are_synced_to_discords_list() {
    let env = env().await;
    env.with_channel().await;
    env.repo.upsert_channel(&channel_info(601)).await.unwrap();
    env.repo.set_reading(channel(601), true).await.unwrap();
    let mut renamed = channel_info(601);
    renamed.name = Some("renamed".into());
    env.repo
        .sync_guild_channels(guild(GUILD), &[renamed, channel_info(602)])
        .await
        .unwrap();
    let channels = env.repo.guild_channels(guild(GUILD)).await.unwrap();
    let ids: Vec<u64> = channels.iter().map(|c| c.info.id.get()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&601) && ids.contains(&602) && !ids.contains(&CHANNEL));
    let kept = channels.iter().find(|c| c.info.id.get() == 601).unwrap();
    assert_eq!(kept.info.name.as_deref(), Some("renamed"));
    assert!(kept.is_reading, "Tavern's state survives a sync");
    assert!(env.repo.delete_channel(channel(602)).await.unwrap());
    assert!(!env.repo.delete_channel(channel(602)).await.unwrap());
}

#[tokio::test]
async fn channels_and_authors_are_listed_by_name_whatever_their_case() {
    // The test database uses the C collation, which sorts every capital first.
    let env = env().await;
    env.with_channel().await;
    let named = |n: u64, name: Option<&str>| ChannelInfo {
        name: name.map(str::to_owned),
        ..channel_info(n)
    };
    env.repo
        .sync_guild_channels(
            guild(GUILD),
            &[
                named(701, Some("Table")),
                named(702, None),
                named(703, Some("campaigns")),
                named(704, Some("Starfinder-society")),
                named(705, Some("dice")),
                named(706, Some("table")),
            ],
        )
        .await
        .unwrap();
    let names: Vec<Option<String>> = env
        .repo
        .guild_channels(guild(GUILD))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.info.name)
        .collect();
    assert_eq!(
        names,
        [
            Some("campaigns"),
            Some("dice"),
            Some("Starfinder-society"),
            Some("Table"),
            Some("table"),
            None
        ]
        .map(|n| n.map(str::to_owned))
    );

    env.repo
        .upsert_channel(&channel_info(CHANNEL))
        .await
        .unwrap();
    env.repo.set_reading(channel(CHANNEL), true).await.unwrap();
    for (n, name) in [(1, "Zed"), (2, "bob"), (3, "Alice"), (4, "carol")] {
        let clip = clips::repo::NewClip {
            author_id: user(n),
            author_name: name.into(),
            ..new_clip(800 + n, 800 + n)
        };
        env.repo
            .index_live_message(channel(CHANNEL), mid(800 + n), at(800), &[clip])
            .await
            .unwrap();
    }
    let authors: Vec<String> = env
        .repo
        .guild_authors(guild(GUILD))
        .await
        .unwrap()
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert_eq!(authors, ["Alice", "bob", "carol", "Zed"]);
}

#[tokio::test]
async fn a_channels_scan_lock_is_held_by_one_connection_and_dies_with_it() {
    let env = env().await;
    let first = env
        .repo
        .try_lock_channel(channel(CHANNEL))
        .await
        .unwrap()
        .expect("free");
    assert!(
        env.repo
            .try_lock_channel(channel(CHANNEL))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.repo
            .try_lock_channel(channel(601))
            .await
            .unwrap()
            .is_some(),
        "per channel"
    );
    drop(first); // the connection closes: the lock goes with it
    let again = eventually("the lock is free again", || async {
        env.repo.try_lock_channel(channel(CHANNEL)).await.unwrap()
    })
    .await;
    again.release().await;
    assert!(
        env.repo
            .try_lock_channel(channel(CHANNEL))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn pending_runs_are_the_queued_and_the_abandoned_not_those_a_live_worker_holds() {
    let env = env().await;
    env.repo.upsert_guild(&guild_info(None)).await.unwrap();
    // Channel ids whose lock keys differ in their high bits (the sign bit included).
    let ids: Vec<u64> = (0..8)
        .map(|i| 1_300_000_000_000_000_000 + i * 7_919)
        .collect();
    let mut runs = Vec::new();
    for id in &ids {
        env.repo.upsert_channel(&channel_info(*id)).await.unwrap();
        let run = env
            .repo
            .queue_run(channel(*id), ScanWindow::deep(None))
            .await
            .unwrap();
        env.repo.start_run(run.id).await.unwrap();
        runs.push(run.id);
    }
    let queued_channel = 1_299_999_999_999_999_999;
    env.repo
        .upsert_channel(&channel_info(queued_channel))
        .await
        .unwrap();
    let queued = env
        .repo
        .queue_run(channel(queued_channel), ScanWindow::deep(None))
        .await
        .unwrap();

    let pending = |env: &Env| {
        let repo = env.repo.clone();
        async move {
            let mut ids: Vec<_> = repo
                .pending_runs(100)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            ids.sort_by_key(|id| id.to_string());
            ids
        }
    };
    let mut all = runs.clone();
    all.push(queued.id);
    all.sort_by_key(|id| id.to_string());
    assert_eq!(
        pending(&env).await,
        all,
        "nobody holds anything: all abandoned or queued"
    );

    let mut locks = Vec::new();
    for id in &ids {
        locks.push(
            env.repo
                .try_lock_channel(channel(*id))
                .await
                .unwrap()
                .expect("free"),
        );
    }
    assert_eq!(
        pending(&env).await,
        [queued.id],
        "held by a live worker: not pending"
    );
    for lock in locks {
        lock.release().await;
    }
    assert_eq!(pending(&env).await, all);
}

#[tokio::test]
async fn a_guilds_clip_counts_and_latest_runs_come_per_channel_in_one_statement_each() {
    let env = env().await;
    env.with_channel().await;
    for n in [601, 602] {
        env.repo.upsert_channel(&channel_info(n)).await.unwrap();
    }
    // Another guild's channel: none of its clips or runs count here.
    let other = GuildInfo {
        id: guild(GUILD + 1),
        ..guild_info(None)
    };
    env.repo.upsert_guild(&other).await.unwrap();
    env.repo
        .upsert_channel(&ChannelInfo {
            guild: other.id,
            ..channel_info(700)
        })
        .await
        .unwrap();
    for (n, message, attachments) in [
        (CHANNEL, 10, vec![1, 2]),
        (CHANNEL, 11, vec![3]),
        (601, 20, vec![4]),
        (700, 30, vec![5]),
    ] {
        env.repo.set_reading(channel(n), true).await.unwrap();
        let clips: Vec<_> = attachments.iter().map(|a| new_clip(*a, message)).collect();
        env.repo
            .index_live_message(channel(n), mid(message), at(message as i64), &clips)
            .await
            .unwrap();
    }
    let first = env.queue_deep().await;
    env.repo.cancel_run(first.id).await.unwrap();
    let second = env
        .repo
        .queue_run(channel(CHANNEL), ScanWindow::catch_up(Some(mid(11))))
        .await
        .unwrap();
    let only = env
        .repo
        .queue_run(channel(601), ScanWindow::deep(None))
        .await
        .unwrap();
    env.repo
        .queue_run(channel(700), ScanWindow::deep(None))
        .await
        .unwrap();

    let counts = env.repo.clips_by_channel(guild(GUILD)).await.unwrap();
    assert_eq!(
        counts,
        [(channel(CHANNEL), 3), (channel(601), 1)]
            .into_iter()
            .collect(),
        "602 has no clips and 700 is another guild's"
    );
    let latest = env.repo.latest_runs(guild(GUILD)).await.unwrap();
    assert_eq!(latest.len(), 2, "{latest:?}");
    assert_eq!(
        latest[&channel(CHANNEL)],
        second,
        "the newest of the channel's runs"
    );
    assert_eq!(latest[&channel(601)], only);
}
