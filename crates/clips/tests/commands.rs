//! `/clips` end to end: the real bot against discord-sim, a real PostgreSQL. Each
//! subcommand's answer and what it stored, the refusal of a member without Manage
//! Server, the refusals of bad settings, and the status of a run in progress (held by
//! a worker of its own after its first page).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use clips::domain::{ChannelId, GuildId, ScanStatus};
use clips::repo::ScanRun;
use clips::scan::Scanner;
use clips::{ClipsConfig, Repo};
use discord_sim::{AttachmentSpec, ChannelKind, InteractionReply, Snowflake};
use serde_json::{Value, json};
use testkit::{TestBot, WAIT, World};
use tokio_util::sync::CancellationToken;

/// Discord's Manage Server permission bit.
mod common;

/// The demo guild with a `#clips` channel holding a little history (two videos, an
/// image, chatter), a "Moderators" role with Manage Server given to the demo player,
/// and the bot routing the clip archive. Carol has no such role.
struct Setup {
    world: World,
    _bot: TestBot,
    repo: Repo,
    clips: Snowflake,
}

fn id(s: Snowflake) -> u64 {
    u64::from(s)
}

fn channel_id(s: Snowflake) -> ChannelId {
    ChannelId::new(id(s))
}

async fn setup() -> Setup {
    let world = World::with_postgres().await;
    let guild = world.demo.guild;
    let clips = world
        .sim
        .create_channel(guild, "clips", ChannelKind::Text)
        .unwrap();
    common::make_manager(&world.sim, guild, world.demo.demo_player, "Moderators");
    let post = |content: &str, attachments: Vec<AttachmentSpec>| {
        world
            .sim
            .post_user_message(clips, world.demo.alice, content, attachments)
            .unwrap();
    };
    post("hello all", vec![]);
    post(
        "the dragon fight",
        vec![AttachmentSpec::new("dragon.mp4", "video/mp4", vec![1; 64])],
    );
    post(
        "a map",
        vec![AttachmentSpec::new("map.png", "image/png", vec![2; 64])],
    );
    post(
        "that crit",
        vec![AttachmentSpec::new("crit.webm", "video/webm", vec![3; 64])],
    );
    post("gg", vec![]);

    let feature = clips::feature(&world.ctx, ClipsConfig::default());
    world.migrate(std::slice::from_ref(&feature)).await;
    let bot = TestBot::spawn(&world, vec![feature]).await;
    let repo = Repo::new(&world.postgres);
    Setup {
        world,
        _bot: bot,
        repo,
        clips,
    }
}

impl Setup {
    async fn run_as(
        &self,
        user: Snowflake,
        channel: Snowflake,
        sub: &str,
        options: Value,
    ) -> InteractionReply {
        let reply = self
            .world
            .sim
            .run_command(
                user,
                channel,
                "clips",
                json!([{"name": sub, "options": options}]),
            )
            .expect("the command runs")
            .final_response(WAIT)
            .await
            .expect("a reply");
        assert!(reply.ephemeral, "every /clips answer is private: {reply:?}");
        reply
    }

    /// The demo player (Manage Server) runs `/clips {sub}` in `#clips`.
    async fn admin(&self, sub: &str, options: Value) -> String {
        self.run_as(self.world.demo.demo_player, self.clips, sub, options)
            .await
            .content
            .unwrap_or_default()
    }

    /// [`Setup::admin`], asserting the reply says `expected`.
    async fn admin_says(&self, sub: &str, options: Value, expected: &str) -> String {
        let text = self.admin(sub, options).await;
        assert!(text.contains(expected), "/clips {sub}: {text}");
        text
    }

    fn scanner(&self) -> Scanner {
        Scanner::new(
            self.repo.clone(),
            self.world.ctx.discord.clone(),
            self.world.ctx.clock.clone(),
        )
    }

    async fn latest(&self) -> Option<ScanRun> {
        self.scanner().latest(channel_id(self.clips)).await.unwrap()
    }
}

#[tokio::test]
async fn a_member_without_manage_server_is_refused_privately_and_nothing_changes() {
    let s = setup().await;
    for (sub, options) in [
        ("enable", json!([])),
        ("scan", json!([{"name": "deep", "value": true}])),
        ("settings", json!([{"name": "nsfw", "value": true}])),
        ("status", json!([])),
    ] {
        let reply = s.run_as(s.world.demo.carol, s.clips, sub, options).await;
        let text = reply.content.unwrap_or_default();
        assert!(text.contains("Manage Server"), "{sub}: {text}");
    }
    // Refused before anything was written: the channel (which the gateway may have
    // registered meanwhile) is not read, no scan was queued, no setting stored.
    let channel = s.repo.channel(channel_id(s.clips)).await.unwrap();
    assert!(
        channel.as_ref().is_none_or(|c| !c.is_reading),
        "{channel:?}"
    );
    assert!(s.latest().await.is_none());
    assert!(
        s.repo
            .guild_settings(GuildId::new(id(s.world.demo.guild)))
            .await
            .unwrap()
            .to_json()
            .as_object()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn enable_registers_the_channel_and_its_guild_from_discord_and_disable_stops_reading() {
    let s = setup().await;
    s.admin_says("enable", json!([]), "is now indexed").await;
    let channel = s.repo.channel(channel_id(s.clips)).await.unwrap().unwrap();
    assert!(channel.is_reading);
    assert_eq!(channel.info.name.as_deref(), Some("clips"));
    let guild = s
        .repo
        .guild(GuildId::new(id(s.world.demo.guild)))
        .await
        .unwrap()
        .expect("the guild was registered from Discord");
    assert_eq!(guild.info.name, "Tavern Demo");

    // Enabled again before any scan: what a scan would read is its whole history.
    let again = s.admin("enable", json!([])).await;
    assert!(again.contains("already indexed"), "{again}");
    assert!(
        again.ends_with("`/clips scan` reads its whole history."),
        "{again}"
    );

    // Disabling also cancels the channel's unfinished scan.
    s.admin("scan", json!([])).await;
    let text = s
        .admin_says("disable", json!([]), "no longer indexed")
        .await;
    assert!(text.contains("scan was canceled"), "{text}");
    let channel = s.repo.channel(channel_id(s.clips)).await.unwrap().unwrap();
    assert!(!channel.is_reading);
    assert_eq!(s.latest().await.unwrap().status, ScanStatus::Canceled);
    let again = s.admin("disable", json!([])).await;
    assert!(again.contains("is not indexed"), "{again}");
}

#[tokio::test]
async fn the_channel_option_names_another_channel_of_the_server() {
    let s = setup().await;
    let reply = s
        .run_as(
            s.world.demo.demo_player,
            s.world.demo.general,
            "enable",
            json!([{"name": "channel", "value": s.clips.to_string()}]),
        )
        .await;
    let text = reply.content.unwrap_or_default();
    assert!(text.contains(&format!("<#{}>", s.clips)), "{text}");
    assert!(
        s.repo
            .channel(channel_id(s.clips))
            .await
            .unwrap()
            .unwrap()
            .is_reading
    );
    // #general itself was not enabled.
    let general = s
        .repo
        .channel(channel_id(s.world.demo.general))
        .await
        .unwrap();
    assert!(general.is_none_or(|c| !c.is_reading));

    // A category holds no messages of its own.
    let text = s
        .run_as(
            s.world.demo.demo_player,
            s.clips,
            "enable",
            json!([{"name": "channel", "value": s.world.demo.category.to_string()}]),
        )
        .await
        .content
        .unwrap_or_default();
    assert!(text.contains("category"), "{text}");
}

#[tokio::test]
async fn a_channel_not_indexed_is_not_scanned() {
    let s = setup().await;
    s.admin_says("scan", json!([]), "`/clips enable` it first")
        .await;
    assert!(s.latest().await.is_none());
}

#[tokio::test]
async fn scan_queues_one_run_a_second_names_it_and_cancel_stops_it() {
    let s = setup().await;
    s.admin("enable", json!([])).await;
    // Never scanned: even a quick scan reads the whole history.
    let text = s.admin_says("scan", json!([]), "Queued a deep scan").await;
    let run = s.latest().await.expect("a run was queued");
    assert_eq!(run.status, ScanStatus::Queued);
    assert!(text.contains(&run.id.to_string()), "{text}");

    let text = s
        .admin_says(
            "scan",
            json!([{"name": "deep", "value": true}]),
            "already queued",
        )
        .await;
    assert!(text.contains(&run.id.to_string()), "{text}");
    assert_eq!(
        s.repo.runs(channel_id(s.clips), 10).await.unwrap().len(),
        1,
        "one run per channel at a time"
    );

    s.admin_says("status", json!([]), "queued").await;

    s.admin_says("cancel", json!([]), "Canceled the scan").await;
    assert_eq!(s.latest().await.unwrap().status, ScanStatus::Canceled);
    s.admin_says("cancel", json!([]), "No scan").await;
    s.admin_says("status", json!([]), "canceled").await;
}

#[tokio::test]
async fn status_shows_the_finished_run_and_the_clips_in_the_channel() {
    let s = setup().await;
    let text = s.admin_says("status", json!([]), "not indexed").await;
    assert!(text.contains("No scan yet"), "{text}");
    // `/clips scan` is refused until the channel is enabled: status says so.
    assert!(text.contains("`/clips enable` it first"), "{text}");
    assert!(!text.contains("reads its whole history"), "{text}");
    s.admin_says("scan", json!([]), "`/clips enable` it first")
        .await;

    s.admin("enable", json!([])).await;
    s.admin("scan", json!([])).await;
    let run = s.latest().await.unwrap();
    let done = s
        .scanner()
        .run(run.id, &|_: &ScanRun| {}, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.status, ScanStatus::Succeeded);
    assert_eq!(done.messages_matched, 2);

    let text = s
        .admin_says("status", json!([]), "is indexed: 2 clips")
        .await;
    assert!(text.contains("finished"), "{text}");
    assert!(text.contains("5 messages read, 2 with clips"), "{text}");
    assert!(text.contains("Last scanned"), "{text}");

    // Nothing new: a catch-up from where the deep scan stopped.
    s.admin_says("scan", json!([]), "Queued a catch-up scan")
        .await;
}

#[tokio::test]
async fn after_enable_a_live_message_does_not_stop_scan_from_reading_the_history() {
    let s = setup().await;
    let enabled = s.admin_says("enable", json!([]), "is now indexed").await;
    assert!(enabled.contains("reads its whole history"), "{enabled}");
    // Someone types "gg": the gateway indexes it and moves last_message_id.
    let gg = s
        .world
        .sim
        .post_user_message(s.clips, s.world.demo.alice, "gg", vec![])
        .unwrap();
    testkit::eventually("the live message is seen", || async {
        let c = s.repo.channel(channel_id(s.clips)).await.unwrap().unwrap();
        (c.last_message_id.map(|m| m.get()) == Some(id(gg))).then_some(())
    })
    .await;

    let text = s.admin_says("scan", json!([]), "Queued a deep scan").await;
    assert!(text.contains("has not been read to its start"), "{text}");
    let run = s.latest().await.unwrap();
    let done = s
        .scanner()
        .run(run.id, &|_: &ScanRun| {}, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((done.messages_scanned, done.messages_matched), (6, 2));
    assert_eq!(
        s.repo.clips_in_channel(channel_id(s.clips)).await.unwrap(),
        2
    );

    // Read: the next one catches up, and status does not ask for the history again.
    let status = s.admin_says("status", json!([]), "2 clips").await;
    assert!(!status.contains("not been read"), "{status}");
    s.admin_says("scan", json!([]), "Queued a catch-up scan")
        .await;
}

/// A worker of its own runs `run` (a thread with its own runtime, connections and
/// Discord client, as another process's worker would): it holds the channel's lock and,
/// after its first page, stands still until `go` is sent. Returns the run after that
/// page, `go`, and the worker's end.
async fn worker_paused_after_a_page(
    s: &mut Setup,
    run: ScanRun,
) -> (
    ScanRun,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<ScanRun>,
) {
    let database_url = s.world.postgres_server().unwrap().url();
    let bot = s.world.bot_config();
    let (paused, paused_at) = std::sync::mpsc::channel::<ScanRun>();
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let pg = store::Postgres::connect(&database_url).await.unwrap();
            let scanner = Scanner::new(
                Repo::new(&pg),
                discord::Discord::new(&bot.rest),
                std::sync::Arc::new(base::SystemClock),
            );
            let paused = std::sync::Mutex::new(Some(paused));
            let wait_for_go = std::sync::Mutex::new(wait_for_go);
            // Blocks the worker's only thread: the run stays `running`, its lock held.
            let progress = move |now: &ScanRun| {
                if now.messages_scanned > 0
                    && let Some(paused) = paused.lock().unwrap().take()
                {
                    paused.send(now.clone()).unwrap();
                    wait_for_go.lock().unwrap().recv().unwrap();
                }
            };
            scanner
                .run(run.id, &progress, CancellationToken::new())
                .await
                .unwrap()
        })
    });
    let paused_at = tokio::task::spawn_blocking(move || {
        paused_at
            .recv_timeout(WAIT)
            .expect("the worker reads its first page")
    })
    .await
    .unwrap();
    (paused_at, go, done)
}

#[tokio::test]
async fn status_shows_the_progress_of_the_run_in_progress() {
    let mut s = setup().await;
    // 200 more messages of chatter: three pages in all, the first without a clip.
    for i in 0..200 {
        s.world
            .sim
            .post_user_message(s.clips, s.world.demo.alice, &format!("chatter {i}"), vec![])
            .unwrap();
    }
    s.admin("enable", json!([])).await;
    s.admin("scan", json!([{"name": "deep", "value": true}]))
        .await;
    let queued = s.latest().await.unwrap();
    let (paused_at, go, done) = worker_paused_after_a_page(&mut s, queued.clone()).await;
    assert_eq!(paused_at.status, ScanStatus::Running);
    assert_eq!(paused_at.messages_scanned, 100);

    let text = s.admin_says("status", json!([]), "running since").await;
    let started = paused_at.started_at.unwrap().timestamp();
    assert!(text.contains(&format!("<t:{started}:R>")), "{text}");
    assert!(
        text.contains("100 messages read, 0 with clips so far"),
        "{text}"
    );
    assert!(text.contains(&queued.id.to_string()), "{text}");

    go.send(()).unwrap();
    let finished = tokio::task::spawn_blocking(move || done.join().unwrap())
        .await
        .unwrap();
    assert_eq!(finished.status, ScanStatus::Succeeded);
    let text = s.admin_says("status", json!([]), "finished").await;
    assert!(text.contains("205 messages read, 2 with clips"), "{text}");
}

#[tokio::test]
async fn settings_are_shown_checked_and_stored_for_the_server_or_the_channel() {
    let s = setup().await;
    let guild = GuildId::new(id(s.world.demo.guild));

    let text = s.admin_says("settings", json!([]), "(default)").await;
    assert!(text.contains("NSFW channels no"), "{text}");

    // A bad format is named and nothing is saved.
    let text = s
        .admin_says(
            "settings",
            json!([{"name": "formats", "value": "mp4 my.video"}, {"name": "nsfw", "value": true}]),
            "Nothing was saved",
        )
        .await;
    assert!(text.contains("my.video"), "{text}");
    s.admin_says(
        "settings",
        json!([{"name": "include", "value": "(unclosed"}]),
        "`include` is not a valid regular expression: unclosed group (at character 1).",
    )
    .await;
    assert!(
        s.repo
            .guild_settings(guild)
            .await
            .unwrap()
            .to_json()
            .as_object()
            .unwrap()
            .is_empty()
    );

    // The server's settings.
    let text = s
        .admin_says(
            "settings",
            json!([{"name": "formats", "value": "mp4, webm"}, {"name": "nsfw", "value": true}]),
            "Saved the server's",
        )
        .await;
    assert!(text.contains("formats mp4, webm"), "{text}");
    assert_eq!(
        s.repo.guild_settings(guild).await.unwrap().to_json(),
        json!({"video_formats": ["mp4", "webm"], "scan_nsfw": true})
    );

    // The channel's own override, and what applies there.
    let text = s
        .admin_says(
            "settings",
            json!([{"name": "exclude", "value": "^SPOILER_"}, {"name": "scope", "value": "channel"}]),
            "own clip settings",
        )
        .await;
    assert!(text.contains("exclude `^SPOILER_`"), "{text}");
    let channel = s.repo.channel(channel_id(s.clips)).await.unwrap().unwrap();
    assert_eq!(
        channel.settings.to_json(),
        json!({"exclude_pattern": "^SPOILER_"})
    );

    // `default` and `none` go back to the defaults (for the formats too: `none` is no
    // format named "none").
    s.admin("settings", json!([{"name": "formats", "value": "mkv"}]))
        .await;
    let text = s
        .admin_says(
            "settings",
            json!([{"name": "formats", "value": "none"}]),
            "Saved the server's",
        )
        .await;
    assert!(text.contains("(default)"), "{text}");
    assert_eq!(
        s.repo.guild_settings(guild).await.unwrap().to_json(),
        json!({"scan_nsfw": true})
    );
    s.admin("settings", json!([{"name": "formats", "value": "mkv"}]))
        .await;
    s.admin("settings", json!([{"name": "formats", "value": "default"}]))
        .await;
    s.admin(
        "settings",
        json!([{"name": "exclude", "value": "none"}, {"name": "scope", "value": "channel"}]),
    )
    .await;
    assert_eq!(
        s.repo.guild_settings(guild).await.unwrap().to_json(),
        json!({"scan_nsfw": true})
    );
    s.admin_says("settings", json!([]), "overrides: none").await;
}

#[tokio::test]
async fn settings_take_video_star_and_refuse_formats_that_are_not_video() {
    let s = setup().await;
    let guild = GuildId::new(id(s.world.demo.guild));
    for typed in ["exe", "mp4, gif", "image/gif"] {
        let text = s
            .admin_says(
                "settings",
                json!([{"name": "formats", "value": typed}]),
                "Nothing was saved",
            )
            .await;
        assert!(text.contains("is not a video format"), "{text}");
        assert!(text.contains("mp4, webm, mov"), "{text}");
        assert!(text.contains("video/*"), "{text}");
    }
    assert_eq!(
        s.repo.guild_settings(guild).await.unwrap().to_json(),
        json!({})
    );
    s.admin_says(
        "settings",
        json!([{"name": "formats", "value": "video/*"}]),
        "formats video/*",
    )
    .await;
    assert_eq!(
        s.repo.guild_settings(guild).await.unwrap().to_json(),
        json!({"video_formats": ["video/*"]})
    );
}

#[tokio::test]
async fn settings_list_only_what_the_channel_overrides() {
    let s = setup().await;
    s.admin_says(
        "settings",
        json!([{"name": "formats", "value": "mov"}, {"name": "scope", "value": "channel"}]),
        "own clip settings",
    )
    .await;
    s.admin_says(
        "settings",
        json!([{"name": "nsfw", "value": true}, {"name": "scope", "value": "guild"}]),
        "Saved the server's",
    )
    .await;
    let text = s
        .admin_says("settings", json!([]), "NSFW channels yes")
        .await;
    let own = text
        .lines()
        .find(|l| l.contains("own overrides"))
        .unwrap_or_default();
    assert!(own.ends_with("own overrides: formats mov."), "{text}");
    let applies = text
        .lines()
        .find(|l| l.starts_with("In "))
        .unwrap_or_default();
    assert!(
        applies.contains("formats mov; NSFW channels yes; include none; exclude none."),
        "{text}"
    );
}

/// A server that added Tavern through its install link (Tavern an ordinary member
/// whose only role is the install's, at the bottom), with a manager and a
/// `#highlights` channel holding two videos. The bot has recorded both from the
/// gateway before anything else happens, so a late arrival of the guild (whose channel
/// list makes the stored one) cannot undo what a test does.
struct LinkedServer {
    manager: Snowflake,
    channel: Snowflake,
    bot_role: Snowflake,
}

impl Setup {
    async fn linked_server(&self) -> LinkedServer {
        use discord_sim::model::permissions::{READ_MESSAGE_HISTORY, SEND_MESSAGES, VIEW_CHANNEL};
        let sim = &self.world.sim;
        let installed = sim
            .create_guild_with_bot_role(
                "Players' Guild",
                VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY,
            )
            .unwrap();
        let guild = GuildId::new(id(installed.guild));
        testkit::eventually("the bot records the guild", || async {
            self.repo.guild(guild).await.unwrap()
        })
        .await;
        let manager = common::guild_member(sim, installed.guild, "Organiser", true);
        let channel = sim
            .create_channel(installed.guild, "highlights", ChannelKind::Text)
            .unwrap();
        testkit::eventually("the bot records the channel", || async {
            self.repo.channel(channel_id(channel)).await.unwrap()
        })
        .await;
        for (text, file) in [
            ("the ambush", "ambush.mp4"),
            ("chatter", ""),
            ("tpk", "tpk.webm"),
        ] {
            let attachments = if file.is_empty() {
                vec![]
            } else {
                vec![AttachmentSpec::new(file, "video/mp4", vec![1; 32])]
            };
            sim.post_user_message(channel, manager, text, attachments)
                .unwrap();
        }
        LinkedServer {
            manager,
            channel,
            bot_role: installed.bot_role.expect("the install made a role"),
        }
    }

    /// An admin denies (or, with `deny` 0, stops denying) Tavern's role `deny` in
    /// `server`'s channel.
    fn deny_tavern(&self, server: &LinkedServer, deny: u64) {
        let overwrites = if deny == 0 {
            vec![]
        } else {
            vec![discord_sim::PermissionOverwrite {
                id: server.bot_role,
                kind: discord_sim::OverwriteKind::Role,
                allow: 0,
                deny,
            }]
        };
        self.world
            .sim
            .set_channel_overwrites(server.channel, overwrites)
            .unwrap();
    }

    /// The organiser runs `/clips {sub}` in `server`'s channel.
    async fn organiser(&self, server: &LinkedServer, sub: &str) -> String {
        self.run_as(server.manager, server.channel, sub, json!([]))
            .await
            .content
            .unwrap_or_default()
    }

    /// Runs `server`'s channel's latest run to its end in this process.
    async fn run_latest(&self, server: &LinkedServer) -> ScanRun {
        let scanner = self.scanner();
        let run = scanner
            .latest(channel_id(server.channel))
            .await
            .unwrap()
            .expect("a run was queued");
        scanner
            .run(run.id, &|_: &ScanRun| {}, CancellationToken::new())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn enable_refuses_a_channel_tavern_cannot_read_naming_what_to_grant() {
    use discord_sim::model::permissions::READ_MESSAGE_HISTORY;
    let s = setup().await;
    let server = s.linked_server().await;
    s.deny_tavern(&server, READ_MESSAGE_HISTORY);

    let text = s.organiser(&server, "enable").await;
    assert!(text.contains("Read Message History"), "{text}");
    assert!(text.contains("not indexed"), "{text}");
    assert!(
        !text.contains("View Channel"),
        "only what is missing is named: {text}"
    );
    let stored = s.repo.channel(channel_id(server.channel)).await.unwrap();
    assert!(stored.as_ref().is_none_or(|c| !c.is_reading), "{stored:?}");

    // Once the admin gives it back, enabling works.
    s.deny_tavern(&server, 0);
    let text = s.organiser(&server, "enable").await;
    assert!(text.contains("is now indexed"), "{text}");
}

#[tokio::test]
async fn a_scan_of_a_channel_tavern_cannot_read_fails_saying_so_and_finds_the_videos_once_granted()
{
    use discord_sim::model::permissions::READ_MESSAGE_HISTORY;
    let s = setup().await;
    let server = s.linked_server().await;
    let text = s.organiser(&server, "enable").await;
    assert!(text.contains("is now indexed"), "{text}");
    // An admin closes the history to Tavern afterwards.
    s.deny_tavern(&server, READ_MESSAGE_HISTORY);

    s.organiser(&server, "scan").await;
    let run = s.run_latest(&server).await;
    assert_eq!(run.status, ScanStatus::Failed, "{run:?}");
    let reason = run.error_message.clone().unwrap_or_default();
    assert!(
        reason.contains("cannot read this channel's history")
            && reason.contains("Read Message History"),
        "{reason}"
    );
    let stored = s
        .repo
        .channel(channel_id(server.channel))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.last_scanned_at, None,
        "nothing was recorded as scanned"
    );
    let status = s.organiser(&server, "status").await;
    assert!(status.contains("failed"), "{status}");
    assert!(
        status.contains("grant Tavern Read Message History"),
        "{status}"
    );

    // Granted again: the next scan, quick as it is asked, reads the whole history.
    s.deny_tavern(&server, 0);
    s.organiser(&server, "scan").await;
    let run = s.run_latest(&server).await;
    assert_eq!(run.status, ScanStatus::Succeeded, "{run:?}");
    assert_eq!((run.messages_scanned, run.messages_matched), (3, 2));
    assert_eq!(
        s.repo
            .clips_in_channel(channel_id(server.channel))
            .await
            .unwrap(),
        2
    );
    let status = s.organiser(&server, "status").await;
    assert!(status.contains("is indexed: 2 clips"), "{status}");
}
