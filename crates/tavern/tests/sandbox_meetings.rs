//! Sandbox mode's demo meeting: made once (its code kept in the data dir, so a restart
//! finds the same one), open to guests and end-to-end encrypted; the console
//! links to `/meet/{code}`, that page answers, and a guest gets a grant for it. Once
//! the meeting has ended, the console's next drawing makes (and links) a new one.
//! The console and the meetings routes are served over a real PostgreSQL and Redis,
//! with a registered meeting controller row (no server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use meetings::domain::{ControllerId, HealthStatus, MeetingCode};
use meetings::repo::{ControllerHeartbeat, ControllerRegistration};
use meetings::{MeetingsConfig, Repo};
use serde_json::{Value, json};
use tavern::sandbox::{
    DEMO_MEETING_FILE, DemoMeeting, RECORDABLE_MEETING_FILE, RECORDABLE_MEETING_NAME,
};
use testkit::World;

struct Site {
    world: World,
    base: String,
    http: reqwest::Client,
    repo: Repo,
    data_dir: tempfile::TempDir,
}

async fn site() -> (Site, Arc<DemoMeeting>) {
    let world = World::with_postgres().await;
    let config = MeetingsConfig {
        secret_key: Some(meetings::auth::MeetingsSecretKey::generate().unwrap()),
        ..MeetingsConfig::default()
    };
    let mut feature = meetings::feature(&world.ctx, config.clone());
    world.migrate(std::slice::from_ref(&feature)).await;
    for work in &feature.startup {
        work.run().await.unwrap();
    }
    let repo = Repo::from_context(&world.ctx);
    let controller = ControllerId::parse("mc-1").unwrap();
    repo.register_controller(&ControllerRegistration {
        controller_id: controller.clone(),
        region: config.region.clone(),
        endpoint: "https://mc-1.test:4433".into(),
        max_meetings: 100,
        max_participants: 1000,
        version: Some("test".into()),
        certificate_hash: None,
    })
    .await
    .unwrap();
    repo.heartbeat_controller(&ControllerHeartbeat {
        controller_id: controller,
        current_meetings: 0,
        current_participants: 0,
        health: HealthStatus::Healthy,
    })
    .await
    .unwrap();

    let data_dir = tempfile::tempdir().unwrap();
    let meeting = Arc::new(
        DemoMeeting::new(data_dir.path()).hosted_by(world.demo.demo_player, "Demo Player"),
    );
    let console = web::sandbox::routes_with(
        world.sim.clone(),
        world.demo.clone(),
        &world.ctx.sessions,
        Some(meeting.link()),
    );
    let router = feature.routes.take().unwrap().merge(console);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(web::serve_with(
        listener,
        router,
        web::ServerConfig::default(),
        std::future::pending(),
    ));
    (
        Site {
            world,
            base,
            http: reqwest::Client::new(),
            repo,
            data_dir,
        },
        meeting,
    )
}

impl Site {
    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The demo meeting's link on the console, if it shows one.
    async fn console_link(&self) -> Option<String> {
        let (status, page) = self.get("/sandbox").await;
        assert_eq!(status, 200, "{page}");
        link_in(&page)
    }
}

/// The demo meeting's link on a console page, if it shows one (with its hint).
fn link_in(page: &str) -> Option<String> {
    let at = page.find("data-demo-meeting")?;
    let tag = &page[page[..at].rfind('<')?..];
    let href = tag.find("href=\"")? + 6;
    let end = tag[href..].find('"')?;
    assert!(page.contains("in two tabs to see yourself twice"), "{page}");
    Some(tag[href..href + end].to_owned())
}

/// The `href` of the console's link marked `attribute`, if it shows one.
fn href_of(page: &str, attribute: &str) -> Option<String> {
    let at = page.find(attribute)?;
    let tag = &page[page[..at].rfind('<')?..];
    let href = tag.find("href=\"")? + 6;
    let end = tag[href..].find('"')?;
    Some(tag[href..href + end].to_owned())
}

/// A Tavern web session signed in as the Discord user `id`: its cookie.
async fn web_session(site: &Site, id: u64, name: &str) -> String {
    let sessions = &site.world.ctx.sessions;
    let profile = web::session::SessionUser {
        id: discord::model::UserId::new(id),
        username: name.to_lowercase(),
        global_name: Some(name.to_owned()),
        avatar: None,
    };
    let grant = discord::oauth::TokenGrant {
        access_token: base::Secret::from("discord access token"),
        refresh_token: None,
        expires_in: std::time::Duration::from_secs(3600),
        scopes: vec!["identify".into()],
    };
    let session = sessions.log_in(None, profile, &grant).await.unwrap();
    format!(
        "{}={}",
        sessions.config().cookie_name(),
        session.id().expose()
    )
}

impl Site {
    /// The page's recording panel for the visitor with `cookie`.
    async fn recording_panel(&self, code: &MeetingCode, cookie: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/meet/{code}/recording", self.base))
            .header(reqwest::header::COOKIE, cookie)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn code_of(link: &str) -> MeetingCode {
    MeetingCode::parse(link.strip_prefix("/meet/").expect("a /meet/ link")).unwrap()
}

#[tokio::test]
async fn the_console_links_the_demo_meeting_which_guests_join_and_a_restart_finds_again() {
    let (site, meeting) = site().await;
    // Before the stores are up the console shows no link.
    assert_eq!(site.console_link().await, None);
    meeting.connect(site.repo.clone());

    let link = site
        .console_link()
        .await
        .expect("the console links the demo meeting");
    let code = code_of(&link);
    let demo = site.repo.meeting_by_code(&code).await.unwrap();
    assert_eq!(demo.display_name, tavern::sandbox::DEMO_MEETING_NAME);
    assert!(demo.settings.enable_e2e_encryption);
    assert!(!demo.settings.require_auth);
    let kept = std::fs::read_to_string(site.data_dir.path().join(DEMO_MEETING_FILE)).unwrap();
    assert_eq!(kept.trim(), code.as_str());

    let (status, page) = site.get(&link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("data-code=\"{code}\"")), "{page}");
    // One stylesheet, the site's, as on every page: the call's styles are its rules.
    assert_eq!(page.matches("rel=\"stylesheet\"").count(), 1, "{page}");
    assert!(page.contains(&web::page::STYLESHEET.url()), "{page}");
    assert!(page.contains("class=\"meet-page\""), "{page}");

    let answer = site
        .http
        .post(format!("{}/api/v1/meetings/{code}/guest-token", site.base))
        .json(&json!({ "display_name": "Newcomer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let grant: Value = answer.json().await.unwrap();
    assert_eq!(grant["meeting"]["meeting_code"], code.as_str());
    assert_eq!(
        grant["webtransport_url"],
        format!("https://mc-1.test:4433/meetings/{}", demo.meeting_id)
    );
    assert!(grant["wt_token"].as_str().is_some_and(|t| !t.is_empty()));

    // Drawn again, and after a restart (a new handle on the same data dir): the same.
    assert_eq!(site.console_link().await.as_deref(), Some(link.as_str()));
    let restarted = DemoMeeting::new(site.data_dir.path());
    restarted.connect(site.repo.clone());
    assert_eq!(restarted.code().await.unwrap(), Some(code.clone()));
    let meetings: i64 =
        sqlx::query_scalar("SELECT count(*) FROM meet.meetings WHERE display_name = $1")
            .bind(tavern::sandbox::DEMO_MEETING_NAME)
            .fetch_one(site.world.postgres.pool())
            .await
            .unwrap();
    assert_eq!(meetings, 1, "made once");
}

#[tokio::test]
async fn an_ended_demo_meeting_is_replaced_by_a_new_one() {
    let (site, meeting) = site().await;
    meeting.connect(site.repo.clone());
    let first = code_of(&site.console_link().await.unwrap());
    let ended = site.repo.meeting_by_code(&first).await.unwrap();
    site.repo.end_meeting(ended.meeting_id).await.unwrap();

    let second = code_of(&site.console_link().await.unwrap());
    assert_ne!(second, first);
    assert!(
        site.repo
            .meeting_by_code(&second)
            .await
            .unwrap()
            .status
            .is_joinable()
    );
    let kept = std::fs::read_to_string(site.data_dir.path().join(DEMO_MEETING_FILE)).unwrap();
    assert_eq!(kept.trim(), second.as_str());

    // A file that holds no code is replaced too, never a failure.
    std::fs::write(site.data_dir.path().join(DEMO_MEETING_FILE), "not a code").unwrap();
    let third = meeting.code().await.unwrap().unwrap();
    assert_ne!(third, second);
}

#[tokio::test]
async fn tavern_serve_in_sandbox_mode_links_a_demo_meeting_that_answers_and_admits_guests() {
    let app = common::spawn_app().await;
    let link = testkit::eventually("the console links the demo meeting", || async {
        let page = app
            .http
            .get(app.url("/sandbox"))
            .header("accept", "text/html")
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        link_in(&page)
    })
    .await;
    let code = code_of(&link);
    let page = app.http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    // The in-process meeting controller registers shortly after start-up.
    let grant: Value = testkit::eventually("a guest's grant for the demo meeting", || async {
        let answer = app
            .http
            .post(app.url(&format!("/api/v1/meetings/{code}/guest-token")))
            .json(&json!({ "display_name": "Newcomer" }))
            .send()
            .await
            .ok()?;
        if answer.status() == 200 {
            answer.json().await.ok()
        } else {
            None
        }
    })
    .await;
    assert_eq!(grant["meeting"]["meeting_code"], code.as_str());
    assert_eq!(grant["meeting"]["enable_e2e_encryption"], true);
}

#[tokio::test]
async fn the_console_links_a_meeting_the_demo_player_hosts_and_may_record() {
    let (site, meeting) = site().await;
    meeting.connect(site.repo.clone());
    let (status, page) = site.get("/sandbox").await;
    assert_eq!(status, 200, "{page}");
    let link = href_of(&page, "data-demo-recordable-meeting")
        .expect("the console links the recordable meeting");
    assert!(page.contains("host a meeting you can record"), "{page}");
    let code = code_of(&link);
    assert_ne!(
        Some(link.clone()),
        href_of(&page, "data-demo-meeting"),
        "two meetings"
    );
    let recordable = site.repo.meeting_by_code(&code).await.unwrap();
    assert_eq!(recordable.display_name, RECORDABLE_MEETING_NAME);
    assert!(recordable.settings.allow_recording);
    assert!(!recordable.settings.enable_e2e_encryption);
    assert!(!recordable.settings.require_auth);
    let player = site.world.demo.demo_player;
    let host = site
        .repo
        .linked_account(meetings::auth::DISCORD, &player.to_string())
        .await
        .unwrap()
        .expect("the demo player has a meetings account");
    assert_eq!(recordable.created_by_user_id, Some(host));
    let kept = std::fs::read_to_string(site.data_dir.path().join(RECORDABLE_MEETING_FILE)).unwrap();
    assert_eq!(kept.trim(), code.to_string());

    // Signed in, the demo player is its host: the page offers the recording.
    let cookie = web_session(&site, player.get(), "Demo Player").await;
    let (status, panel) = site.recording_panel(&code, &cookie).await;
    assert_eq!(status, 200, "{panel}");
    assert_eq!(panel["host"], json!(true), "{panel}");
    assert_eq!(panel["offered"], json!(true), "{panel}");
    // Anyone else signed in is not.
    let stranger = web_session(&site, 4_242_424_242, "Stranger").await;
    let (_, panel) = site.recording_panel(&code, &stranger).await;
    assert_ne!(panel["host"], json!(true), "{panel}");

    // Drawn again, the console links the same meeting.
    let (_, page) = site.get("/sandbox").await;
    assert_eq!(href_of(&page, "data-demo-recordable-meeting"), Some(link));
}
