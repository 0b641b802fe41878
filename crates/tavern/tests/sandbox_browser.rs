//! The sandbox console in headless Chromium, driven through ChromeDriver (WebDriver).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use discord_sim::ChannelKind;
use serde_json::{Value, json};

struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Driver {
    async fn start() -> Driver {
        let port = store::harness::free_port();
        let binary =
            std::env::var("TAVERN_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{binary}` ({e}); install Debian's chromium-driver (scripts/test.sh does)"));
        let base = format!("http://127.0.0.1:{port}");
        discord::install_crypto_provider();
        let http = reqwest::Client::new();
        testkit::eventually_within(Duration::from_secs(20), "chromedriver starts", || {
            let status = http.get(format!("{base}/status")).send();
            async move { status.await.ok().map(|_| ()) }
        })
        .await;
        let profile = tempfile::tempdir().expect("profile dir");
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
            .expect("new session")
            .json()
            .await
            .expect("json");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Driver {
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
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        response["value"].clone()
    }

    async fn open(&self, url: String) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// The element `css` selects, once the page shows it.
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

    async fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
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

    /// What the script returns as text, once `ready` accepts it.
    async fn text_when(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let ready = &ready;
        testkit::eventually_within(limit, what, move || async move {
            let text = self.script(script).await;
            let text = text.as_str().unwrap_or_default().to_owned();
            ready(&text).then_some(text)
        })
        .await
    }
}

const MESSAGES: &str = "return document.getElementById('messages').innerText";

#[tokio::test]
async fn a_person_types_ping_in_the_sandbox_console_and_sees_the_reply() {
    let app = common::spawn_app().await;
    let driver = Driver::start().await;

    driver.open(app.url("/sandbox")).await;
    // The console lists the demo guild's channels once it has loaded.
    driver.find("button.channel.active").await;
    let input = driver.find("#command").await;
    driver.type_into(&input, "/ping").await;
    let send = driver.find("#send").await;
    driver.click(&send).await;

    let text = driver
        .text_when(
            "the reply to /ping is shown",
            Duration::from_secs(15),
            MESSAGES,
            |text| text.contains("Pong"),
        )
        .await;
    assert!(
        text.contains("Gateway:") && text.contains("REST:"),
        "{text}"
    );
    assert!(
        text.contains("BOT"),
        "the reply is shown as the bot's: {text}"
    );

    // A mistake is explained on the page, not swallowed.
    let input = driver.find("#command").await;
    driver.type_into(&input, "/nope").await;
    driver.click(&send).await;
    driver
        .text_when(
            "the status shows the error",
            Duration::from_secs(10),
            "return document.getElementById('status').innerText",
            |status| status.contains("unknown command `/nope`"),
        )
        .await;
    driver.call(reqwest::Method::DELETE, "", json!({})).await;
}

#[tokio::test]
async fn the_console_shows_what_discord_would() {
    let app = common::spawn_app().await;
    let (sim, demo) = (app.sim(), app.demo());
    sim.post_user_message(
        demo.general,
        demo.alice,
        &format!(
            "<@{}>, ||the innkeeper did it|| in <#{}>",
            demo.bob, demo.dice
        ),
        vec![],
    )
    .expect("alice posts");
    let quiet = sim
        .create_channel(demo.guild, "quiet", ChannelKind::Text)
        .expect("a new channel");
    let driver = Driver::start().await;

    driver.open(app.url("/sandbox")).await;
    // Voice channels are listed, marked as voice.
    driver.find("button.channel.voice").await;
    let voice = driver
        .script(
            "return Array.from(document.querySelectorAll('button.channel.voice'))\
             .map(b => b.textContent).join('|')",
        )
        .await;
    assert!(
        voice.as_str().unwrap_or_default().contains("Table"),
        "{voice}"
    );

    // Mentions show as names, and the spoiler stays hidden until clicked.
    let general = driver
        .find(&format!("button.channel[data-id=\"{}\"]", demo.general))
        .await;
    driver.click(&general).await;
    let text = driver
        .text_when(
            "#general's messages are shown",
            Duration::from_secs(10),
            MESSAGES,
            |text| text.contains("the innkeeper did it"),
        )
        .await;
    assert!(text.contains("@bob"), "{text}");
    assert!(text.contains("#dice"), "{text}");
    assert!(!text.contains("<@"), "{text}");
    let spoiler = driver.find("#messages .spoiler").await;
    let class = driver
        .script("return document.querySelector('#messages .spoiler').className")
        .await;
    assert_eq!(class, "spoiler");
    driver.click(&spoiler).await;
    let class = driver
        .script("return document.querySelector('#messages .spoiler').className")
        .await;
    assert_eq!(class, "spoiler revealed");

    // An empty channel opens with its welcome.
    driver
        .open(app.url(&format!("/sandbox?channel={quiet}")))
        .await;
    let text = driver
        .text_when(
            "#quiet's welcome is shown",
            Duration::from_secs(10),
            MESSAGES,
            |text| text.contains("This is the beginning of #quiet"),
        )
        .await;
    assert!(text.contains("Welcome to #quiet!"), "{text}");
    let messages = driver
        .script("return document.querySelectorAll('#messages .message').length")
        .await;
    assert_eq!(messages, 0);
    driver.call(reqwest::Method::DELETE, "", json!({})).await;
}
