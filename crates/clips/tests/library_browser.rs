//! The clip library and the scan progress in headless Chromium (through ChromeDriver),
//! on the whole site as `tavern serve` composes it (the layout, the shared stylesheet
//! and script, the clips feature's routes) with the feature's scan worker running:
//! the grid shows the clips and its filters narrow them, one column on a phone; a deep
//! scan started from the guild page shows its progress live until it says done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use clips::ClipsConfig;
use clips::domain::{ChannelId, GuildId, MessageId, UserId};
use clips::repo::clips::NewClip;
use clips::repo::{ChannelInfo, GuildInfo, Repo};
use discord_sim::{AttachmentSpec, Fault, RouteMatch, SeedMessage, Snowflake};
use testkit::World;
use testkit::browser::Browser;
use tokio_util::sync::CancellationToken;

mod common;

struct Ready;

impl web::Readiness for Ready {
    fn check(&self) -> discord::BoxFuture<'static, Vec<web::Component>> {
        Box::pin(async { Vec::new() })
    }
}

/// The site on a port of its own, with the clips feature's services running.
struct Site {
    world: World,
    ctx: feature::Context,
    base: String,
    repo: Repo,
    guild: GuildId,
    general: ChannelId,
    shutdown: CancellationToken,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn site() -> Site {
    let world = World::with_postgres().await;
    let testkit::Listening {
        listener,
        base,
        ctx,
    } = world.listen().await;
    let ctx = feature::Context {
        clock: Arc::new(feature::SystemClock),
        ..ctx
    };
    let mut feature = clips::feature(&ctx, ClipsConfig::default());
    world.migrate(std::slice::from_ref(&feature)).await;
    let late = web::LateRoutes::default();
    late.set(feature.routes.take().expect("the clips pages"));
    let site = web::page::Site::new(feature.nav.clone());
    let app = web::router(
        web::AppState {
            readiness: Arc::new(Ready),
            metrics: None,
        },
        site,
        vec![],
        late,
    );
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let _ = web::serve(listener, app, async move { shutdown.cancelled().await }).await;
        }
    });
    // The feature's services, as `tavern serve` runs them: the scan worker among them.
    let services = std::mem::take(&mut feature.services);
    assert!(
        services
            .iter()
            .any(|s| s.name() == clips::services::SCAN_WORKER),
        "the clips feature runs its scan worker"
    );
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { feature::ServiceRunner::new().run(services, shutdown).await }
    });

    let repo = Repo::new(&world.postgres);
    let demo = &world.demo;
    let guild = GuildId::new(u64::from(demo.guild));
    repo.upsert_guild(&GuildInfo {
        id: guild,
        name: "Tavern demo".into(),
        icon: None,
        owner: None,
    })
    .await
    .unwrap();
    let general = ChannelId::new(u64::from(demo.general));
    repo.upsert_channel(&ChannelInfo {
        id: general,
        guild,
        name: Some("general".into()),
        kind: Some("text".into()),
        is_nsfw: false,
    })
    .await
    .unwrap();
    repo.set_reading(general, true).await.unwrap();
    Site {
        base,
        world,
        ctx,
        repo,
        guild,
        general,
        shutdown,
    }
}

impl Site {
    /// A member of the demo guild (a manager when `manager`), signed in in `browser`.
    async fn sign_in(&self, browser: &Browser, name: &str, manager: bool) -> Snowflake {
        let user = common::guild_member(&self.world.sim, self.world.demo.guild, name, manager);
        let profile = web::session::SessionUser {
            id: UserId::new(u64::from(user)),
            username: name.to_lowercase(),
            global_name: Some(name.into()),
            avatar: None,
        };
        let session = testkit::discord_session(&self.ctx, user, profile).await;
        browser.open(&format!("{}/healthz", self.base)).await;
        browser
            .add_cookie(
                self.ctx.sessions.config().cookie_name(),
                session.id().expose(),
            )
            .await;
        user
    }
}

fn clip(n: u64, filename: &str) -> NewClip {
    NewClip {
        attachment_id: 5000 + n,
        message_id: MessageId::new(9000 + n),
        author_id: UserId::new(1 + n % 2),
        author_name: if n.is_multiple_of(2) {
            "Alice".into()
        } else {
            "Bob".into()
        },
        posted_at: testkit::epoch() - TimeDelta::hours(i64::try_from(40 - n).unwrap()),
        filename: filename.into(),
        content_type: Some("video/mp4".into()),
        size_bytes: 2_500_000,
        width: Some(1280),
        height: Some(720),
        duration_secs: Some(31.0),
        url: format!("https://cdn.example/{n}/{filename}").into(),
        proxy_url: None,
        url_expires_at: None,
        message_text: format!("clip number {n}").into(),
    }
}

/// Once the address holds `query`, the file names of the grid's tiles, in order.
async fn names_once(browser: &Browser, what: &str, query: &str) -> String {
    grid_once(
        browser,
        what,
        query,
        "[...document.querySelectorAll('.clip-name')].map(n => n.textContent)",
    )
    .await
}

/// Once the address holds `query`, the attachment ids of the grid's tiles, in order.
async fn tile_ids_once(browser: &Browser, what: &str, query: &str) -> String {
    grid_once(
        browser,
        what,
        query,
        "[...document.querySelectorAll('.clip-tile')].map(t => t.dataset.attachmentId)",
    )
    .await
}

/// Once the address holds `query`, the script `list`'s items joined by commas.
async fn grid_once(browser: &Browser, what: &str, query: &str, list: &str) -> String {
    browser
        .text_when(
            what,
            Duration::from_secs(10),
            &format!("return location.search.includes('{query}') ? {list}.join(',') : '';"),
            |t| !t.is_empty(),
        )
        .await
}

#[tokio::test]
async fn the_library_shows_the_grid_and_its_filters_narrow_it() {
    let site = site().await;
    for n in 1..=30u64 {
        let name = if n.is_multiple_of(5) {
            format!("boss_{n}.mp4")
        } else {
            format!("run_{n}.mp4")
        };
        let c = clip(n, &name);
        site.repo
            .index_live_message(site.general, c.message_id, c.posted_at, &[c])
            .await
            .unwrap();
    }
    let browser = Browser::start().await;
    site.sign_in(&browser, "Member", false).await;

    browser
        .open(&format!(
            "{}/clips/guilds/{}/library",
            site.base, site.guild
        ))
        .await;
    let text = browser.page_titled("Clips of Tavern demo").await;
    assert!(text.contains("boss_30.mp4"), "{text}");
    assert!(text.contains("Open in Discord"), "{text}");
    let tiles = browser
        .script(
            "return [...document.querySelectorAll('.clip-tile')].map(t => t.dataset.attachmentId);",
        )
        .await;
    let tiles: Vec<String> = serde_json::from_value(tiles).unwrap();
    assert_eq!(tiles.len(), 24);
    assert_eq!(tiles[0], "5030", "newest first");
    let video = browser
        .script("const v = document.querySelector('.clip-tile video'); return [v.getAttribute('preload'), v.controls];")
        .await;
    assert_eq!(video, serde_json::json!(["metadata", true]));
    // A phone-sized window: one column.
    let columns = browser
        .script("return getComputedStyle(document.querySelector('.clip-grid')).gridTemplateColumns.split(' ').length;")
        .await;
    assert_eq!(columns, serde_json::json!(1));
    // The shared stylesheet and script are the site's.
    let assets = browser
        .script("return [...document.querySelectorAll('link[rel=stylesheet], script[src]')].map(e => e.getAttribute('href') || e.getAttribute('src')).join(' ');")
        .await;
    let assets = assets.as_str().unwrap();
    assert!(
        assets.contains("/assets/site.css") && assets.contains("/assets/site.js"),
        "{assets}"
    );

    // Search.
    let search = browser.find("form.filters input[name=q]").await;
    browser.type_into(&search, "boss").await;
    let show = browser.find("form.filters button[type=submit]").await;
    browser.click(&show).await;
    let names = names_once(&browser, "the search narrows the grid", "q=boss").await;
    assert_eq!(
        names,
        "boss_30.mp4,boss_25.mp4,boss_20.mp4,boss_15.mp4,boss_10.mp4,boss_5.mp4"
    );

    // An author, with the search still on.
    browser
        .script("document.querySelector('select[name=author]').value = '1'; document.querySelector('form.filters').submit(); return null;")
        .await;
    let names = names_once(&browser, "the author filter narrows the grid", "author=1").await;
    assert_eq!(names, "boss_30.mp4,boss_20.mp4,boss_10.mp4");

    // Paging: the second page of everything holds the six oldest.
    browser
        .open(&format!(
            "{}/clips/guilds/{}/library",
            site.base, site.guild
        ))
        .await;
    let next = browser.find("a[data-next-page]").await;
    browser.click(&next).await;
    let rest = tile_ids_once(&browser, "the next page", "before=").await;
    assert_eq!(rest, "5006,5005,5004,5003,5002,5001");
    browser.quit().await;
}

#[tokio::test]
async fn a_deep_scan_started_on_the_guild_page_shows_its_progress_live_until_done() {
    let site = site().await;
    let sim = &site.world.sim;
    let poster = site.world.demo.alice;
    // 1,000 messages, every 25th with a video; each history page answered slowly, so
    // the scan is visibly under way while the page watches.
    let history = (1..=1000u32).map(|n| SeedMessage {
        author: poster,
        content: format!("message {n}"),
        attachments: if n.is_multiple_of(25) {
            vec![AttachmentSpec::sized(
                format!("play_{n}.mp4"),
                "video/mp4",
                4_000_000,
            )]
        } else {
            Vec::new()
        },
    });
    sim.seed_history(site.world.demo.general, history).unwrap();
    sim.inject_fault(
        RouteMatch::new(
            "GET",
            format!("/channels/{}/messages", site.world.demo.general),
        ),
        Fault::Delay(Duration::from_millis(300)),
        10,
    );
    let browser = Browser::start().await;
    site.sign_in(&browser, "Manager", true).await;
    browser
        .open(&format!("{}/clips/guilds/{}", site.base, site.guild))
        .await;
    browser.page_titled("Tavern demo").await;
    let deep = browser
        .find(&format!(
            "li[data-channel-id='{}'] button[data-action=deep-scan]",
            site.general
        ))
        .await;
    browser.click(&deep).await;

    // Back on the guild page, the run is shown while it is unfinished...
    let status = format!(
        "const li = document.querySelector(\"li[data-channel-id='{}']\"); \
         return li ? li.querySelector('[data-field=status]').textContent + '/' + \
         li.querySelector('[data-field=messages_scanned]').textContent + '/' + \
         li.querySelector('[data-field=clips_in_channel]').textContent : '';",
        site.general
    );
    let first = browser
        .text_when(
            "the page shows the run under way",
            Duration::from_secs(20),
            &status,
            |t| t.starts_with("queued/") || t.starts_with("running/"),
        )
        .await;
    browser
        .script("window.stillThisPage = true; return null;")
        .await;
    // ...and, without a reload, until it is done, with the exact counts.
    let done = browser
        .text_when(
            "the page shows the run done",
            Duration::from_secs(60),
            &status,
            |t| t.starts_with("succeeded/"),
        )
        .await;
    assert_eq!(done, "succeeded/1000/40", "first seen: {first}");
    assert_eq!(
        browser
            .script("return window.stillThisPage === true;")
            .await,
        serde_json::json!(true),
        "the progress came live, not by reloading"
    );
    let buttons = browser
        .script(&format!(
            "const li = document.querySelector(\"li[data-channel-id='{}']\"); \
             return [li.querySelector('[data-action=cancel-scan]').hidden, li.querySelector('[data-action=deep-scan]').hidden];",
            site.general
        ))
        .await;
    assert_eq!(buttons, serde_json::json!([true, false]));
    assert_eq!(site.repo.clips_in_channel(site.general).await.unwrap(), 40);
    browser.quit().await;
}
