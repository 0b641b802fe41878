//! Headless Chromium driven through ChromeDriver (WebDriver over HTTP), for the tests
//! of pages: `Browser::start`, then open, find, click, type, run scripts, set cookies.
//! `TAVERN_TEST_CHROMEDRIVER` and `TAVERN_TEST_CHROMIUM` name the binaries when they
//! are not `chromedriver` and `/usr/bin/chromium` (Debian's `chromium-driver` and
//! `chromium`, which `scripts/test.sh` installs).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test plumbing: a failure is the test's

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{eventually, eventually_within};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// ChromeDriver with one headless Chromium session (a phone-sized window); both stop
/// when it is dropped.
pub struct Browser {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("chromedriver", &self.base)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Drop for Browser {
    /// Kills ChromeDriver's whole process group: Chromium and its helper processes are
    /// ChromeDriver's children, and killing ChromeDriver alone would leave them running.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !killed.is_ok_and(|status| status.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Browser {
    pub async fn start() -> Browser {
        Browser::start_with_text_size(16).await
    }

    /// A browser whose reader set their text size to `pixels` (16 is the default; 32
    /// is twice the size, as a phone's largest text settings give).
    pub async fn start_with_text_size(pixels: u32) -> Browser {
        let port = store::harness::free_port();
        let binary =
            std::env::var("TAVERN_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            // Its own process group, which `drop` kills with everything Chromium started.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{binary}` ({e}); install Debian's chromium-driver (scripts/test.sh does)"
                )
            });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually_within(Duration::from_secs(20), "chromedriver starts", || {
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
                         format!("--user-data-dir={}", profile.path().display())],
                "prefs": {"webkit": {"webprefs": {"default_font_size": pixels}}}
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
        Browser {
            child,
            base,
            http,
            session,
            _profile: profile,
        }
    }

    /// One WebDriver command of the session (`path` after `/session/{id}`); its value.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
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

    /// Navigates and waits for the page to load (WebDriver's `/url` does).
    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// The element `css` selects, once the page shows it.
    pub async fn find(&self, css: &str) -> String {
        eventually(&format!("the page shows {css}"), move || async move {
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

    pub async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    pub async fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Runs `script` in the page; what it returns.
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// What the script returns as text, once `ready` accepts it.
    pub async fn text_when(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let ready = &ready;
        eventually_within(limit, what, move || async move {
            let text = self.script(script).await;
            let text = text.as_str().unwrap_or_default().to_owned();
            ready(&text).then_some(text)
        })
        .await
    }

    /// Waits until the page's `main h1` reads `heading`; the page's text.
    pub async fn page_titled(&self, heading: &str) -> String {
        eventually(&format!("a page titled {heading:?}"), || async move {
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
    pub async fn status(&self) -> u64 {
        self.script("return performance.getEntriesByType('navigation')[0].responseStatus;")
            .await
            .as_u64()
            .expect("a navigation status")
    }

    pub async fn add_cookie(&self, name: &str, value: &str) {
        self.call(
            reqwest::Method::POST,
            "/cookie",
            json!({"cookie": {"name": name, "value": value, "path": "/", "httpOnly": true}}),
        )
        .await;
    }

    /// Sizes the window to `width` x `height` CSS pixels (a phone's: 390 x 844, an
    /// iPhone 14's).
    pub async fn window_size(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    pub async fn delete_cookies(&self) {
        self.call(reqwest::Method::DELETE, "/cookie", json!({}))
            .await;
    }

    /// Ends the session (Chromium closes); ChromeDriver stops when dropped.
    pub async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", json!({})).await;
    }
}
