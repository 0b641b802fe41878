//! The clip archive in real time: the real bot (`TestBot`) on discord-sim's gateway,
//! the feature's event handler, a real PostgreSQL. Users post, edit and delete; guilds
//! and channels come and go; the tables follow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clips::domain::{ChannelId, GuildId, MessageId};
use clips::repo::Repo;
use clips::{ClipsConfig, Settings};
use discord_sim::{AttachmentSpec, ChannelKind, Snowflake};
use testkit::{TestBot, World, eventually};

struct Env {
    world: World,
    repo: Repo,
    _bot: TestBot,
}

/// A world with PostgreSQL, the clips feature migrated and routed by the real bot.
async fn env() -> Env {
    let world = World::with_postgres().await;
    let clips = clips::feature(&world.ctx, ClipsConfig::default());
    world.migrate(std::slice::from_ref(&clips)).await;
    let repo = Repo::new(&world.postgres);
    let bot = TestBot::spawn(&world, vec![clips]).await;
    Env {
        world,
        repo,
        _bot: bot,
    }
}

fn video(name: &str) -> AttachmentSpec {
    AttachmentSpec::sized(name, "video/mp4", 4_000_000)
}

fn image(name: &str) -> AttachmentSpec {
    AttachmentSpec::sized(name, "image/png", 1_000)
}

fn cid(s: Snowflake) -> ChannelId {
    ChannelId::new(s.get())
}

impl Env {
    /// A new text channel of the demo guild, known to Tavern (from its CHANNEL_CREATE)
    /// and being read.
    async fn reading_channel(&self, name: &str) -> ChannelId {
        let id = self
            .world
            .sim
            .create_channel(self.world.demo.guild, name, ChannelKind::Text)
            .unwrap();
        let channel = cid(id);
        eventually("the new channel is recorded", || async {
            self.repo.channel(channel).await.unwrap().map(|_| ())
        })
        .await;
        self.repo.set_reading(channel, true).await.unwrap();
        channel
    }

    fn post(&self, channel: ChannelId, text: &str, files: Vec<AttachmentSpec>) -> MessageId {
        let id = self
            .world
            .sim
            .post_user_message(channel.get(), self.world.demo.alice, text, files)
            .unwrap();
        MessageId::new(id.get())
    }

    /// Edits `message` as Alice: its text (kept when `None`) and its attachments now.
    fn edit(
        &self,
        channel: ChannelId,
        message: MessageId,
        text: Option<&str>,
        files: Vec<AttachmentSpec>,
    ) {
        self.world
            .sim
            .edit_user_message_with(channel.get(), message.get(), text, Some(files))
            .unwrap();
    }

    async fn clip_ids(&self, channel: ChannelId, message: MessageId) -> Vec<u64> {
        self.repo.message_clip_ids(channel, message).await.unwrap()
    }

    /// Waits until `message` has `count` clips indexed.
    async fn clips_become(&self, what: &str, channel: ChannelId, message: MessageId, count: usize) {
        eventually(what, || async {
            (self.clip_ids(channel, message).await.len() == count).then_some(())
        })
        .await;
    }

    async fn clips(&self, channel: ChannelId) -> i64 {
        self.repo.clips_in_channel(channel).await.unwrap()
    }
}

#[tokio::test]
async fn a_new_message_in_a_reading_channel_is_indexed_at_once() {
    let env = env().await;
    let channel = env.reading_channel("clips").await;

    let message = env.post(channel, "gg", vec![video("ace.mp4"), image("x.png")]);
    let ids = eventually("the clip is indexed", || async {
        let ids = env.clip_ids(channel, message).await;
        (!ids.is_empty()).then_some(ids)
    })
    .await;
    assert_eq!(ids.len(), 1, "the image is not a clip");
    let stored = env.repo.channel(channel).await.unwrap().unwrap();
    assert_eq!(stored.message_count, 1);
    assert_eq!(stored.last_message_id, Some(message));
    assert!(stored.last_activity_at.is_some());

    // A message without attachments moves the counters too.
    let text = env.post(channel, "nice", vec![]);
    eventually("the text message is counted", || async {
        let c = env.repo.channel(channel).await.unwrap().unwrap();
        (c.last_message_id == Some(text) && c.message_count == 2).then_some(())
    })
    .await;

    // A channel not being read is left alone.
    let quiet = cid(env.world.demo.general);
    env.repo
        .channel(quiet)
        .await
        .unwrap()
        .expect("general is recorded");
    let ignored = env.post(quiet, "look", vec![video("quiet.mp4")]);
    // Proof the event went by: a later message in the reading channel is indexed.
    let later = env.post(channel, "later", vec![video("later.mp4")]);
    eventually("the later clip is indexed", || async {
        (!env.clip_ids(channel, later).await.is_empty()).then_some(())
    })
    .await;
    assert!(env.clip_ids(quiet, ignored).await.is_empty());
    let general = env.repo.channel(quiet).await.unwrap().unwrap();
    assert_eq!((general.message_count, general.last_message_id), (0, None));
}

#[tokio::test]
async fn an_edit_that_adds_or_removes_a_video_updates_the_index() {
    let env = env().await;
    let channel = env.reading_channel("clips").await;
    let message = env.post(channel, "two", vec![video("a.mp4"), video("b.webm")]);
    env.clips_become("both clips are indexed", channel, message, 2)
        .await;

    // One video removed (the other kept, as Discord keeps an attachment in an edit).
    env.edit(channel, message, Some("one left"), vec![video("a.mp4")]);
    env.clips_become("the removed video leaves the index", channel, message, 1)
        .await;

    // A video added.
    env.edit(channel, message, None, vec![video("a.mp4"), video("c.mov")]);
    env.clips_become("the added video joins the index", channel, message, 2)
        .await;
    assert_eq!(env.clips(channel).await, 2);

    // All videos removed.
    env.edit(channel, message, Some("none"), vec![]);
    eventually("no clip is left", || async {
        (env.clips(channel).await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_message_and_an_edit_holding_nul_are_indexed_without_it() {
    let env = env().await;
    let channel = env.reading_channel("clips").await;
    let texts = || async {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT filename, message_text FROM clips.clips ORDER BY attachment_id::numeric",
        )
        .fetch_all(env.world.postgres.pool())
        .await
        .unwrap();
        rows
    };

    // PostgreSQL's text cannot hold a NUL; a message's text and file names can.
    let message = env.post(channel, "gg\0", vec![video("ace\0.mp4")]);
    env.clips_become("the clip is indexed", channel, message, 1)
        .await;
    assert_eq!(texts().await, [("ace.mp4".to_owned(), "gg".to_owned())]);

    env.edit(
        channel,
        message,
        Some("well\0 played"),
        vec![video("ace\0.mp4"), video("b\0.mp4")],
    );
    env.clips_become("the added video joins the index", channel, message, 2)
        .await;
    assert_eq!(
        texts().await,
        [
            ("ace.mp4".to_owned(), "well played".to_owned()),
            ("b.mp4".to_owned(), "well played".to_owned())
        ]
    );
}

#[tokio::test]
async fn deleted_and_bulk_deleted_messages_take_their_clips_with_them() {
    let env = env().await;
    let channel = env.reading_channel("clips").await;
    let messages: Vec<MessageId> = (0..5)
        .map(|i| {
            env.post(
                channel,
                &format!("clip {i}"),
                vec![video(&format!("{i}.mp4"))],
            )
        })
        .collect();
    eventually("five clips", || async {
        (env.clips(channel).await == 5).then_some(())
    })
    .await;

    env.world
        .sim
        .delete_user_message(channel.get(), messages[0].get())
        .unwrap();
    eventually("the deleted message's clip is gone", || async {
        (env.clips(channel).await == 4).then_some(())
    })
    .await;

    let bulk: Vec<Snowflake> = messages[1..4]
        .iter()
        .map(|m| Snowflake::from(m.get()))
        .collect();
    env.world
        .sim
        .bulk_delete_messages(channel.get(), &bulk)
        .unwrap();
    eventually("the bulk-deleted messages' clips are gone", || async {
        (env.clips(channel).await == 1).then_some(())
    })
    .await;
    assert_eq!(env.clip_ids(channel, messages[4]).await.len(), 1);
}

#[tokio::test]
async fn guilds_and_channels_follow_discord() {
    let env = env().await;
    let sim = &env.world.sim;
    let demo = &env.world.demo;
    let guild = GuildId::new(demo.guild.get());

    // GUILD_CREATE at connection: the guild and its channels with messages.
    let stored = eventually("the demo guild is recorded", || async {
        env.repo.guild(guild).await.unwrap()
    })
    .await;
    assert_eq!(stored.info.name, "Tavern Demo");
    let names = eventually("its channels are recorded", || async {
        let channels = env.repo.guild_channels(guild).await.unwrap();
        (!channels.is_empty()).then_some(channels)
    })
    .await;
    let mut names: Vec<String> = names.into_iter().filter_map(|c| c.info.name).collect();
    names.sort();
    assert_eq!(
        names,
        ["Table", "campaigns", "dice", "drinking", "general"],
        "no category"
    );

    // CHANNEL_CREATE, CHANNEL_UPDATE (name, NSFW), CHANNEL_DELETE.
    let channel = env.reading_channel("clips").await;
    env.post(channel, "x", vec![video("x.mp4")]);
    eventually("a clip", || async {
        (env.clips(channel).await == 1).then_some(())
    })
    .await;
    sim.update_channel(channel.get(), Some("highlights"), Some(true))
        .unwrap();
    let updated = eventually("the rename is recorded", || async {
        let c = env.repo.channel(channel).await.unwrap().unwrap();
        (c.info.name.as_deref() == Some("highlights")).then_some(c)
    })
    .await;
    assert!(updated.info.is_nsfw);
    assert!(updated.is_reading, "Tavern's own state is kept");
    sim.delete_channel(channel.get()).unwrap();
    eventually("the deleted channel and its clips are gone", || async {
        env.repo
            .channel(channel)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(env.clips(channel).await, 0);

    // GUILD_UPDATE.
    sim.update_guild(
        demo.guild,
        Some("Tavern Renamed"),
        Some(Some("0123456789abcdef0123456789abcdef")),
    )
    .unwrap();
    let renamed = eventually("the guild rename is recorded", || async {
        let g = env.repo.guild(guild).await.unwrap().unwrap();
        (g.info.name == "Tavern Renamed").then_some(g)
    })
    .await;
    assert_eq!(
        renamed.info.icon.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );

    // A new guild (GUILD_CREATE while connected).
    let other = sim.create_guild("Second Table");
    eventually("the new guild is recorded", || async {
        env.repo
            .guild(GuildId::new(other.get()))
            .await
            .unwrap()
            .map(|_| ())
    })
    .await;

    // GUILD_DELETE (the bot removed): the guild, its channels and clips go.
    let reading = cid(demo.dice);
    env.repo.set_reading(reading, true).await.unwrap();
    env.post(reading, "y", vec![video("y.mp4")]);
    eventually("a clip in dice", || async {
        (env.clips(reading).await == 1).then_some(())
    })
    .await;
    // Its settings stay for when the bot comes back.
    env.repo
        .update_guild_settings(
            guild,
            &Settings::from_json(serde_json::json!({"scan_nsfw": true})).unwrap(),
        )
        .await
        .unwrap();
    sim.remove_bot_from_guild(demo.guild).unwrap();
    eventually("the guild is gone", || async {
        env.repo.guild(guild).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(env.repo.guild_channels(guild).await.unwrap().is_empty());
    assert_eq!(env.clips(reading).await, 0);
    assert_eq!(
        env.repo
            .guild_settings(guild)
            .await
            .unwrap()
            .get("scan_nsfw"),
        Some(&serde_json::json!(true))
    );
}

#[tokio::test]
async fn a_guild_back_after_an_outage_gets_a_catch_up_of_each_reading_channel_seen_before() {
    let env = env().await;
    let channel = env.reading_channel("clips").await;
    let last = env.post(channel, "seen live", vec![]);
    eventually("the live message moves last_message_id", || async {
        let c = env.repo.channel(channel).await.unwrap().unwrap();
        (c.last_message_id == Some(last)).then_some(())
    })
    .await;
    // A reading channel never scanned nor seen gets nothing.
    let fresh = env.reading_channel("fresh").await;

    // The guild becomes available again (a new session after an outage): applied as
    // the bot would hand it over, with the guild's channels as Discord lists them.
    let scanner = clips::scan::Scanner::new(
        env.repo.clone(),
        env.world.ctx.discord.clone(),
        env.world.ctx.clock.clone(),
    );
    let handler = clips::events::ClipsEvents::new(
        env.repo.clone(),
        env.world.ctx.discord.clone(),
        scanner.clone(),
    );
    let guild = GuildId::new(env.world.demo.guild.get());
    let channels = env
        .world
        .ctx
        .discord
        .guild_channel_infos(guild)
        .await
        .unwrap();
    handler
        .apply(discord::model::Event::GuildAvailable {
            guild_id: guild,
            name: "Tavern Demo".into(),
            voice: Vec::new(),
            icon: None,
            owner_id: None,
            channels,
        })
        .await
        .unwrap();
    let run = eventually("a catch-up is requested", || async {
        scanner.latest(channel).await.unwrap()
    })
    .await;
    assert_eq!(
        run.window.after(),
        Some(last),
        "forward from where the index stopped"
    );
    assert_eq!(run.status, clips::ScanStatus::Queued);
    assert!(scanner.latest(fresh).await.unwrap().is_none());
}

#[tokio::test]
async fn a_thread_keeps_its_clips_through_a_restart_while_a_channel_deleted_meanwhile_goes() {
    let world = World::with_postgres().await;
    let feature = || clips::feature(&world.ctx, ClipsConfig::default());
    world.migrate(&[feature()]).await;
    let repo = Repo::new(&world.postgres);
    let bot = TestBot::spawn(&world, vec![feature()]).await;
    let guild = GuildId::new(world.demo.guild.get());
    eventually("the demo guild is recorded", || async {
        repo.guild(guild).await.unwrap()
    })
    .await;

    // A thread, stored as `/clips enable` stores one it is run in (from Discord's
    // answer for the channel), read, with a clip indexed live.
    let thread = ChannelId::new(world.demo.general.get() + 4242);
    repo.upsert_channel(&clips::repo::ChannelInfo {
        id: thread,
        guild,
        name: Some("session 12".into()),
        kind: Some("thread".into()),
        is_nsfw: false,
    })
    .await
    .unwrap();
    repo.set_reading(thread, true).await.unwrap();
    let message = MessageId::new(thread.get() + 1);
    let at = chrono::Utc::now();
    let clip = clips::repo::NewClip {
        attachment_id: thread.get() + 2,
        message_id: message,
        author_id: clips::domain::UserId::new(world.demo.alice.get()),
        author_name: "alice".into(),
        posted_at: at,
        filename: "boss.mp4".into(),
        content_type: Some("video/mp4".into()),
        size_bytes: 1_000,
        width: None,
        height: None,
        duration_secs: None,
        url: "https://cdn.example/boss.mp4".into(),
        proxy_url: None,
        url_expires_at: None,
        message_text: "the boss".into(),
    };
    let (reading, added) = repo
        .index_live_message(thread, message, at, &[clip])
        .await
        .unwrap();
    assert_eq!((reading, added), (true, 1));
    // A channel that will be deleted while the bot is away.
    let doomed = cid(world
        .sim
        .create_channel(world.demo.guild, "doomed", ChannelKind::Text)
        .unwrap());
    eventually("the doomed channel is recorded", || async {
        repo.channel(doomed).await.unwrap().map(|_| ())
    })
    .await;

    // The bot stops; the channel is deleted; the bot starts again (a new session:
    // READY, then the guild with Discord's channel list, which lists no thread).
    bot.stop().await;
    world.sim.delete_channel(doomed.get()).unwrap();
    let _bot = TestBot::spawn(&world, vec![feature()]).await;
    eventually("the channel deleted meanwhile is swept", || async {
        repo.channel(doomed).await.unwrap().is_none().then_some(())
    })
    .await;

    let kept = repo
        .channel(thread)
        .await
        .unwrap()
        .expect("the thread stays");
    assert!(kept.is_reading);
    assert_eq!(repo.clips_in_channel(thread).await.unwrap(), 1);
}
