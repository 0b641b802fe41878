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
use tavern::sandbox::{DEMO_MEETING_FILE, DemoMeeting};
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
    let meeting = Arc::new(DemoMeeting::new(data_dir.path()));
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
    let meetings: i64 = sqlx::query_scalar("SELECT count(*) FROM meet.meetings")
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
