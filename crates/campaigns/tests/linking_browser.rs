//! Linking a Meetup account in headless Chromium (driven through ChromeDriver): a
//! person opens the one-time link, goes to Meetup and comes back linked; a forged or
//! missing CSRF token on the way back is refused with 403 and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use campaigns::{CampaignsConfig, MeetupUserId, Repo, TransientUserId};
use discord::model::UserId;
use meetup::fake::FakeMeetup;
use meetup::{ClientId, ClientSecret, GroupUrlname};
use serde_json::{Value, json};
use testkit::World;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// ChromeDriver with one headless Chromium session; both stop when it is dropped.
struct Browser {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let port = store::harness::free_port();
        let binary =
            std::env::var("TAVERN_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{binary}` ({e}); install Debian's chromium-driver")
            });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        testkit::eventually_within(Duration::from_secs(20), "chromedriver starts", || {
            let status = http.get(format!("{base}/status")).send();
            async move { status.await.ok().map(|_| ()) }
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let chromium =
            std::env::var("TAVERN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--disable-dev-shm-usage", "--window-size=420,800",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            child,
            base,
            http,
            session,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let response: Value = self
            .http
            .request(method, url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["value"].clone()
    }

    /// Navigates and waits for the page to load (WebDriver's `/url` does).
    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        testkit::eventually(&format!("the page shows {css}"), move || async move {
            let found = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            found[ELEMENT].as_str().map(str::to_owned)
        })
        .await
    }

    async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Waits until the page's `h1` reads `heading`; the page's text.
    async fn page_titled(&self, heading: &str) -> String {
        testkit::eventually(&format!("a page titled {heading:?}"), || async move {
            let h1 = self
                .script(
                    "const h = document.querySelector('main h1'); return h ? h.textContent : null;",
                )
                .await;
            (h1.as_str() == Some(heading)).then_some(())
        })
        .await;
        self.script("return document.body.innerText;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The HTTP status of the current page, as the browser received it.
    async fn status(&self) -> u64 {
        self.script("return performance.getEntriesByType('navigation')[0].responseStatus;")
            .await
            .as_u64()
            .expect("a navigation status")
    }

    async fn add_cookie(&self, name: &str, value: &str) {
        self.call(
            reqwest::Method::POST,
            "/cookie",
            json!({"cookie": {"name": name, "value": value, "path": "/", "httpOnly": true}}),
        )
        .await;
    }

    async fn delete_cookies(&self) {
        self.call(reqwest::Method::DELETE, "/cookie", json!({}))
            .await;
    }
}

/// The campaigns' web flows on a port of their own, against a fake Meetup whose
/// signed-in member approves every authorization.
struct Site {
    world: World,
    fake: FakeMeetup,
    base: String,
    repo: Repo,
    client_id: ClientId,
    callback: url::Url,
}

async fn site() -> Site {
    let world = World::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let public_url = url::Url::parse(&format!("http://{addr}/")).unwrap();
    let ctx = feature::Context {
        sessions: web::session::Sessions::new(
            world.redis.clone(),
            web::session::SessionConfig::for_public_url(&public_url),
        ),
        public_url: public_url.clone(),
        ..world.ctx.clone()
    };
    let fake = FakeMeetup::start().await.unwrap();
    let group = GroupUrlname::parse("dragons").unwrap();
    fake.add_group(&group, "Dragons").unwrap();
    let client_id = ClientId::new("tavern-browser");
    let secret = ClientSecret::from("tavern-browser-secret");
    let callback = campaigns::web::callback_url(&public_url).unwrap();
    fake.add_oauth_client(&client_id, &secret, &callback);
    let config = CampaignsConfig::new(client_id.clone(), secret, fake.endpoints(), vec![group]);
    let feature = campaigns::web::add(feature::Feature::new("campaigns"), &ctx, &config);
    let router = feature.routes.expect("routes");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Site {
        repo: Repo::new(world.redis.clone()),
        world,
        fake,
        base: format!("http://{addr}"),
        client_id,
        callback,
    }
}

impl Site {
    fn discord_user(&self, name: &str) -> UserId {
        let user = self.world.sim.create_user(name);
        UserId::new(u64::from(user))
    }

    /// A genuine authorization code from Meetup (as the signed-in member).
    async fn code(&self) -> String {
        let mut authorize = self.fake.endpoints().authorize;
        authorize
            .query_pairs_mut()
            .append_pair("client_id", self.client_id.as_str())
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", self.callback.as_str())
            .append_pair("state", "whatever");
        let answer = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(authorize)
            .send()
            .await
            .unwrap();
        let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
        back.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code")
    }

    async fn linked_users(&self) -> Vec<String> {
        let mut users: Vec<String> = redis::cmd("SMEMBERS")
            .arg(campaigns::schema::MEETUP_USERS)
            .query_async(&mut self.world.redis.conn())
            .await
            .unwrap();
        users.sort();
        users
    }
}

#[tokio::test]
async fn a_person_links_their_meetup_account_in_the_browser_and_a_forged_token_is_refused() {
    let site = site().await;
    let browser = Browser::start().await;
    let member = site.fake.add_member("Pat");
    site.fake.sign_in(&member).unwrap();

    // The genuine flow: the link, the button, Meetup, and back, linked.
    let pat = site.discord_user("Pat");
    let id = site.repo.create_linking_id(pat).await.unwrap();
    browser
        .open(&format!("{}/link-meetup/{}", site.base, id.expose()))
        .await;
    let text = browser.page_titled("Link your Meetup account").await;
    assert!(text.contains(&pat.to_string()), "{text}");
    let button = browser.find("main a.button").await;
    browser.click(&button).await;
    let text = browser.page_titled("Linked").await;
    assert!(text.contains("Pat"), "{text}");
    assert_eq!(browser.status().await, 200);
    let meetup_user = MeetupUserId::parse(member.as_str()).unwrap();
    assert_eq!(
        site.repo.meetup_user_of(pat).await.unwrap(),
        Some(meetup_user)
    );
    assert_eq!(site.linked_users().await, vec![meetup_user.to_string()]);

    // A forged token: the browser holds a genuine flow cookie for another person's
    // linking id, and comes back from "Meetup" with a real code but a `state` that is
    // not its token. 403, nothing linked, the linking id still usable.
    let sam = site.discord_user("Sam");
    let id = site.repo.create_linking_id(sam).await.unwrap();
    browser
        .open(&format!("{}/link-meetup/{}", site.base, id.expose()))
        .await;
    browser.page_titled("Link your Meetup account").await;
    let transient = TransientUserId::random();
    site.repo
        .set_csrf(&transient, &"genuinetoken1234".into())
        .await
        .unwrap();
    browser
        .add_cookie(
            campaigns::web::FLOW_COOKIE,
            &format!("{}.{}", transient.expose(), id.expose()),
        )
        .await;
    let code = site.code().await;
    browser
        .open(&format!(
            "{}?code={code}&state=forgedtoken5678",
            site.callback
        ))
        .await;
    let text = browser.page_titled("Refused").await;
    assert!(text.contains("does not match"), "{text}");
    assert_eq!(browser.status().await, 403);
    assert_eq!(site.repo.meetup_user_of(sam).await.unwrap(), None);
    assert_eq!(site.linked_users().await, vec![meetup_user.to_string()]);
    assert!(site.repo.open_linking_id(&id).await.unwrap().is_some());
    let stored: Option<String> = redis::cmd("GET")
        .arg(campaigns::schema::csrf(&transient))
        .query_async(&mut site.world.redis.conn())
        .await
        .unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("genuinetoken1234"),
        "the forgery wrote nothing"
    );

    // A missing token: no flow cookie at all. 403, nothing written.
    browser.delete_cookies().await;
    let code = site.code().await;
    browser
        .open(&format!(
            "{}?code={code}&state=genuinetoken1234",
            site.callback
        ))
        .await;
    let text = browser.page_titled("Refused").await;
    assert!(text.contains("cookie is missing"), "{text}");
    assert_eq!(browser.status().await, 403);
    assert_eq!(site.repo.meetup_user_of(sam).await.unwrap(), None);
    assert_eq!(site.linked_users().await, vec![meetup_user.to_string()]);
}
