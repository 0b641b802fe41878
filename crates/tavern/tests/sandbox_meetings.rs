//! The meetings page (`/meet`: join by code, start a meeting, "your meetings"), and
//! sandbox mode's demo meeting: made once (its code kept in the data dir, so a restart
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
    site_with(|_| {}).await
}

/// [`site`] with the meetings' configuration as `adjust` leaves it.
async fn site_with(adjust: impl FnOnce(&mut MeetingsConfig)) -> (Site, Arc<DemoMeeting>) {
    let world = World::with_postgres().await;
    let mut config = MeetingsConfig {
        secret_key: Some(meetings::auth::MeetingsSecretKey::generate().unwrap()),
        ..MeetingsConfig::default()
    };
    adjust(&mut config);
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
    /// `path` as the visitor with `cookie` sees it: its status and text.
    async fn get_as(&self, path: &str, cookie: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

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
    assert!(page.contains("Host a meeting you can record</a> (its host is the demo player: Log in signs you in as them)."), "{page}");
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

    // After a restart the fake Discord's demo player has a new id: the kept meeting is
    // not theirs to record, so it is ended and another is made for them, which the
    // next start by the same player keeps.
    let next_player = 4_343_434_343_u64;
    let restarted = |id: u64| {
        let meeting = DemoMeeting::new(site.data_dir.path()).hosted_by(id, "Demo Player");
        meeting.connect(site.repo.clone());
        meeting
    };
    let theirs = restarted(next_player)
        .recordable_code()
        .await
        .unwrap()
        .unwrap();
    assert_ne!(theirs, code);
    let new_host = site
        .repo
        .linked_account(meetings::auth::DISCORD, &next_player.to_string())
        .await
        .unwrap()
        .unwrap();
    let made = site.repo.meeting_by_code(&theirs).await.unwrap();
    assert_eq!(made.created_by_user_id, Some(new_host));
    assert!(made.settings.allow_recording);
    let earlier = site.repo.meeting_by_code(&code).await.unwrap();
    assert!(!earlier.status.is_joinable(), "the earlier one is ended");
    let kept = restarted(next_player).recordable_code().await.unwrap();
    assert_eq!(kept, Some(theirs));
}

/// The CSRF token a page carries in its layout.
fn csrf_in(page: &str) -> String {
    let at = page
        .find("name=\"csrf-token\" content=\"")
        .expect("a signed-in page carries its CSRF token")
        + "name=\"csrf-token\" content=\"".len();
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn the_meetings_page_sends_a_typed_code_to_its_meeting_or_says_why_not() {
    let (site, _) = site().await;
    let repo = &site.repo;
    let made = |name: &'static str| async move {
        let new = meetings::repo::NewMeeting {
            display_name: meetings::domain::DisplayName::parse(name).unwrap(),
            created_by: None,
            settings: Default::default(),
            scheduled_start_time: None,
        };
        repo.create_meeting(&new).await.unwrap()
    };
    let open = made("Open table").await;
    let over = made("Last week").await;
    site.repo.end_meeting(over.meeting_id).await.unwrap();

    // Signed out: the code field, and a way in to start one.
    let (status, page) = site.get("/meet").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"join-by-code\""), "{page}");
    assert!(
        page.contains("href=\"/login/discord?next=%2Fmeet\""),
        "{page}"
    );
    assert!(!page.contains("id=\"start\""), "{page}");

    // Typed as people type it: on to the meeting's page, in its canonical form.
    let typed = open.meeting_code.as_str().to_lowercase().replace('-', "");
    let answer = common::no_redirects()
        .get(format!("{}/meet?code=%20{typed}%20", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(
        answer.headers()["location"],
        format!("/meet/{}", open.meeting_code).as_str()
    );

    // Otherwise the page again, saying why beside the field, with what was typed.
    let unused = loop {
        let code = MeetingCode::generate(&mut rand::rng());
        if site.repo.meeting_by_code(&code).await.is_err() {
            break code;
        }
    };
    for (typed, status, reason) in [
        ("<b>nope</b>", 400, "is not a meeting code"),
        (unused.as_str(), 404, "No meeting has the code"),
        (over.meeting_code.as_str(), 410, "has ended"),
    ] {
        let query: String = url::form_urlencoded::byte_serialize(typed.as_bytes()).collect();
        let (got, page) = site.get(&format!("/meet?code={query}")).await;
        assert_eq!(got, status, "{typed}: {page}");
        let error = &page[page.find("id=\"code-error\"").expect("the reason")..];
        assert!(
            error[..error.find("</p>").unwrap()].contains(reason),
            "{typed}: {page}"
        );
        assert!(page.contains("aria-invalid=\"true\""), "{page}");
        assert!(
            !page.contains("<b>nope</b>"),
            "typed text is escaped: {page}"
        );
    }
}

#[tokio::test]
async fn a_signed_in_member_starts_a_meeting_on_the_meetings_page_finds_it_there_and_ends_it() {
    let (site, _) = site_with(|config| config.auth.meetings_created_per_minute = 2).await;
    let cookie = web_session(&site, 4242, "Ada").await;
    let mine = || async {
        site.repo
            .open_meetings_of_provider_user(meetings::auth::DISCORD, "4242", 20)
            .await
            .unwrap()
    };
    let page = |path: &'static str| site.get_as(path, &cookie);
    let start = |form: Vec<(&'static str, String)>| {
        let request = common::no_redirects().post(format!("{}/meet", site.base));
        let cookie = cookie.clone();
        async move {
            request
                .header(reqwest::header::COOKIE, cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };

    let (status, first) = page("/meet").await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains("id=\"start\""), "{first}");
    assert!(first.contains("value=\"Ada's meeting\""), "{first}");
    let ticked = |page: &str, name: &str| {
        let at = page.find(&format!("name=\"{name}\"")).unwrap();
        let tag = &page[page[..at].rfind('<').unwrap()..];
        tag[..tag.find('>').unwrap()].contains("checked")
    };
    assert!(
        ticked(&first, "enable_e2e_encryption"),
        "the API's default: {first}"
    );
    assert!(!ticked(&first, "require_auth"), "{first}");
    assert!(!ticked(&first, "allow_recording"), "{first}");
    assert!(first.contains("None open"), "{first}");
    assert!(mine().await.is_empty(), "reading the page makes nothing");
    let csrf = csrf_in(&first);

    // Without the form's CSRF field: refused, nothing made.
    let forged = start(vec![("display_name", "Forged".to_owned())]).await;
    assert_eq!(forged.status(), 403);
    assert!(mine().await.is_empty());

    // A name that is no name: the form again, with the reason and what was sent.
    let empty = start(vec![
        ("csrf_token", csrf.clone()),
        ("display_name", "   ".to_owned()),
        ("allow_recording", "on".to_owned()),
    ])
    .await;
    assert_eq!(empty.status(), 400);
    let again = empty.text().await.unwrap();
    assert!(again.contains("id=\"start-error\""), "{again}");
    assert!(ticked(&again, "allow_recording"), "kept as sent: {again}");
    assert!(
        !ticked(&again, "enable_e2e_encryption"),
        "kept as sent: {again}"
    );
    assert!(mine().await.is_empty());

    // Started: on to its page; made by Ada's meetings account with the ticks as sent.
    let started = start(vec![
        ("csrf_token", csrf.clone()),
        ("display_name", "Friday one-shot".to_owned()),
        ("allow_recording", "on".to_owned()),
    ])
    .await;
    assert_eq!(started.status(), 303);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let code = code_of(&location);
    let meeting = site.repo.meeting_by_code(&code).await.unwrap();
    assert_eq!(meeting.display_name, "Friday one-shot");
    assert!(!meeting.settings.enable_e2e_encryption);
    assert!(!meeting.settings.require_auth);
    assert!(meeting.settings.allow_recording);
    assert_eq!(mine().await, vec![meeting.clone()]);
    let owner: String = sqlx::query_scalar(
        "SELECT provider_user_id FROM meet.oauth_providers WHERE user_id = $1 AND provider = 'discord'",
    )
    .bind(meeting.created_by_user_id.unwrap().as_uuid())
    .fetch_one(site.world.postgres.pool())
    .await
    .unwrap();
    assert_eq!(owner, "4242");
    // Its controller is assigned at once, as for the API's meetings.
    assert!(meeting.assigned_controller_id.is_some());

    // Listed, with a link to its page, until it ends.
    let (_, listed) = page("/meet").await;
    assert!(
        listed.contains(&format!("data-meeting-code=\"{code}\"")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("href=\"/meet/{code}\"")),
        "{listed}"
    );
    assert!(listed.contains("not started"), "{listed}");

    // The API's per-user limit holds here too (2 a minute in this test).
    let second = start(vec![
        ("csrf_token", csrf.clone()),
        ("display_name", "Second".to_owned()),
    ])
    .await;
    assert_eq!(second.status(), 303);
    let third = start(vec![
        ("csrf_token", csrf.clone()),
        ("display_name", "Third".to_owned()),
    ])
    .await;
    assert_eq!(third.status(), 429);
    let wait: u64 = third.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let refused = third.text().await.unwrap();
    assert!(refused.contains("id=\"start-error\""), "{refused}");
    assert_eq!(mine().await.len(), 2);

    // Ended from the page by its creator only, with the form's CSRF field.
    let end = format!("{}/meet/{code}/end", site.base);
    assert!(
        listed.contains(&format!("action=\"/meet/{code}/end\"")),
        "{listed}"
    );
    let bob = web_session(&site, 5151, "Bob").await;
    let (_, bobs_page) = site.get_as("/meet", &bob).await;
    let not_his = common::no_redirects()
        .post(&end)
        .header(reqwest::header::COOKIE, &bob)
        .form(&[("csrf_token", csrf_in(&bobs_page))])
        .send()
        .await
        .unwrap();
    assert_eq!(not_his.status(), 403);
    let said = not_his.text().await.unwrap();
    assert!(said.contains("Only the meeting's creator"), "{said}");
    let forged = common::no_redirects()
        .post(&end)
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let still = site.repo.meeting(meeting.meeting_id).await.unwrap();
    assert!(still.status.is_joinable());
    let ended = common::no_redirects()
        .post(&end)
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[("csrf_token", csrf.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 303);
    assert_eq!(ended.headers()["location"], "/meet");
    let now = site.repo.meeting(meeting.meeting_id).await.unwrap();
    assert!(!now.status.is_joinable());
    let (_, after) = page("/meet").await;
    assert!(
        !after.contains(&format!("data-meeting-code=\"{code}\"")),
        "{after}"
    );
}
