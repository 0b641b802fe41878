//! The sandbox console in headless Chromium, driven through ChromeDriver (WebDriver).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}: {found}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }
}

#[tokio::test]
async fn a_person_types_ping_in_the_sandbox_console_and_sees_the_reply() {
    let app = common::spawn_app().await;
    let driver = Driver::start().await;

    driver
        .call(
            reqwest::Method::POST,
            "/url",
            json!({"url": app.url("/sandbox")}),
        )
        .await;
    // The console lists the demo guild's channels once it has loaded.
    driver.find("button.channel.active").await;
    let input = driver.find("#command").await;
    driver
        .call(
            reqwest::Method::POST,
            &format!("/element/{input}/value"),
            json!({"text": "/ping"}),
        )
        .await;
    let send = driver.find("#send").await;
    driver
        .call(
            reqwest::Method::POST,
            &format!("/element/{send}/click"),
            json!({}),
        )
        .await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = driver
            .script("return document.getElementById('messages').innerText")
            .await;
        let text = text.as_str().unwrap_or_default().to_owned();
        if text.contains("Pong") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no reply shown; page says: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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
    driver
        .call(
            reqwest::Method::POST,
            &format!("/element/{input}/value"),
            json!({"text": "/nope"}),
        )
        .await;
    driver
        .call(
            reqwest::Method::POST,
            &format!("/element/{send}/click"),
            json!({}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = driver
            .script("return document.getElementById('status').innerText")
            .await;
        if status
            .as_str()
            .unwrap_or_default()
            .contains("unknown command `/nope`")
        {
            break;
        }
        assert!(Instant::now() < deadline, "status shows no error: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver.call(reqwest::Method::DELETE, "", json!({})).await;
}
