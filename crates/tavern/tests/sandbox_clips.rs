//! Sandbox mode's clip archive: the demo guild has a `#clips` channel with a few
//! hundred messages of history and some real videos; the demo player may manage the
//! server, so `/clips enable` and `/clips scan` work at once, the scan worker of
//! `tavern serve` indexes every video, the sim serves the video's bytes, and the demo
//! player, logged in on the web with (fake) Discord, browses the library at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clips::Repo;
use clips::domain::{ChannelId, GuildId, ScanStatus};
use reqwest::header::{ACCEPT, COOKIE};
use serde_json::json;
use testkit::WAIT;

#[tokio::test]
async fn the_demo_clips_channel_is_enabled_scanned_and_its_videos_indexed() {
    let app = common::spawn_app().await;
    let sim = app.sim();
    let demo = app.demo();
    let channel = sim
        .channel_by_name(demo.guild, "clips")
        .expect("the demo guild has #clips");
    let history = sim.messages(channel.id);
    assert_eq!(history.len(), tavern::sandbox::CLIPS_MESSAGES);
    let videos: Vec<_> = history
        .iter()
        .flat_map(|m| &m.attachments)
        .filter(|a| a.content_type.as_deref() == Some("video/webm"))
        .collect();
    assert_eq!(videos.len(), tavern::sandbox::clips_videos());
    assert!(
        history
            .iter()
            .flat_map(|m| &m.attachments)
            .any(|a| a.content_type.as_deref() == Some("image/png")),
        "some screenshots too"
    );
    // Real video bytes: a WebM (EBML) header, served by the sim.
    let bytes = app
        .http
        .get(&videos[0].url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..4], &[0x1a, 0x45, 0xdf, 0xa3], "a WebM file");

    testkit::eventually("/clips is registered", || async {
        sim.registered_commands()
            .iter()
            .any(|c| c.name == "clips")
            .then_some(())
    })
    .await;
    // `/clips <sub>` as the demo player, whose answer says `expected`.
    let command = |sub: &'static str, expected: &'static str| {
        let pending = sim
            .run_command(
                demo.demo_player,
                channel.id,
                "clips",
                json!([{"name": sub, "options": []}]),
            )
            .expect("the command runs");
        async move {
            let reply = pending.final_response(WAIT).await.unwrap();
            let text = reply.content.unwrap_or_default();
            assert!(text.contains(expected), "/clips {sub}: {text}");
        }
    };
    command("enable", "is now indexed").await;
    command("scan", "Queued").await;

    let pg = app.postgres.connect().await;
    let repo = Repo::new(&pg);
    let id = ChannelId::new(channel.id.get());
    let run = testkit::eventually("the scan worker finishes the run", || {
        let repo = repo.clone();
        async move {
            let run = repo.runs(id, 1).await.ok()?.into_iter().next()?;
            (run.status == ScanStatus::Succeeded).then_some(run)
        }
    })
    .await;
    assert_eq!(run.messages_scanned, tavern::sandbox::CLIPS_MESSAGES as i64);
    assert_eq!(
        repo.clips_in_channel(id).await.unwrap(),
        tavern::sandbox::clips_videos() as i64
    );

    // The demo player logs in on the web and browses the library: a tile per video.
    let http = common::no_redirects();
    let session = app.log_in(&http).await;
    let library = clips::web::library_path(GuildId::new(demo.guild.get()));
    let response = http
        .get(app.url(&library))
        .header(ACCEPT, "text/html")
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {library}");
    let page = response.text().await.unwrap();
    let tiles = page.matches("data-attachment-id=\"").count();
    assert_eq!(
        tiles,
        tavern::sandbox::clips_videos().min(clips::web::library::PAGE_SIZE as usize),
        "a tile per video on the first page: {page}"
    );
    assert!(page.contains("<video"), "videos play inline: {page}");

    // "Open in Discord" opens the clip's message in the console (Discord does not know
    // the sandbox's guild).
    let open = page
        .split("<a class=\"clip-link\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a tile links to its message");
    let prefix = app.url(&format!("/sandbox/channels/{}/{}/", demo.guild, channel.id));
    let message = open
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{open} is in the console, under {prefix}"));
    assert!(
        history
            .iter()
            .any(|m| m.id.to_string() == message && !m.attachments.is_empty()),
        "{open} names a message of #clips with a video"
    );
    let response = http.get(open).send().await.unwrap();
    assert_eq!(response.status(), 303, "GET {open}");
    let to = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        to,
        format!("/sandbox?channel={}&message={message}", channel.id)
    );
    // A page of the console: its status and HTML.
    let html = |path: String| {
        let request = http.get(app.url(&path)).header(ACCEPT, "text/html");
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, console) = html(to.clone()).await;
    assert_eq!(status, 200, "GET {to}");
    assert!(
        console.contains(&format!("data-message=\"{message}\"")),
        "the console marks the message: {console}"
    );

    // What the console cannot show is said: a link to a direct message or to another
    // server, a malformed message id, a message deleted since.
    let deleted = history.last().expect("#clips has messages").id;
    sim.delete_user_message(channel.id, deleted)
        .expect("the message is deleted");
    for (path, expected, says) in [
        (
            format!("/sandbox/channels/@me/{}/{message}", channel.id),
            404,
            "direct message",
        ),
        (
            format!("/sandbox/channels/1/{}/{message}", channel.id),
            404,
            "its own guild only",
        ),
        (
            format!("/sandbox?channel={}&message=12x", channel.id),
            400,
            "is not a message id",
        ),
        (
            format!("/sandbox?channel={}&message={deleted}", channel.id),
            200,
            "The linked message is no longer in #clips.",
        ),
    ] {
        let (status, text) = html(path.clone()).await;
        assert_eq!(status, expected, "GET {path}");
        assert!(text.contains(says), "GET {path}: {text}");
    }
}
