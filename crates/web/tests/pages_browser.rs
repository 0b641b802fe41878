//! The site's pages in headless Chromium (through ChromeDriver) at a phone's width:
//! what a visitor gave never widens a page, and the sandbox console keeps its demo
//! meeting links in reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use discord_sim::{Demo, Sim, SimConfig};
use store::harness::TestRedis;
use testkit::browser::Browser;
use url::Url;
use web::page::{Page, Site, html};
use web::sandbox::{DemoMeetingLink, DemoMeetings};
use web::session::{SessionConfig, Sessions};
use web::{AppState, Component, LateRoutes, Readiness};

struct AlwaysReady;

impl Readiness for AlwaysReady {
    fn check(&self) -> discord::BoxFuture<'static, Vec<Component>> {
        Box::pin(async { Vec::new() })
    }
}

struct TestSite {
    base: Url,
    /// What `/test/live/state` answers, for a page's live part.
    live: Arc<Mutex<serde_json::Value>>,
    _sim: Sim,
    _demo: Demo,
    _redis: TestRedis,
}

/// The home page and the sandbox console (linking to two demo meetings), composed as
/// Tavern composes its site.
async fn spawn() -> TestSite {
    discord::install_crypto_provider();
    let sim = Sim::start(SimConfig::default()).unwrap();
    let demo = sim.seed_demo();
    let redis = TestRedis::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let sessions = Sessions::new(redis.connect().await, SessionConfig::for_public_url(&base));
    let meetings: DemoMeetingLink = Arc::new(|| {
        Box::pin(async {
            Some(DemoMeetings {
                meeting: "/meet/ABC-DEFG-HJK".to_owned(),
                recordable: Some("/meet/KLM-NPQR-STU".to_owned()),
            })
        })
    });
    // A page with a live part (as the clips' scan progress is), polling a state the
    // test sets.
    let live = Arc::new(Mutex::new(
        serde_json::json!({ "status": "running", "live": true, "messages_scanned": 0 }),
    ));
    let state = live.clone();
    let live_routes = web::access::Routes::new(&sessions)
        .get("/test/live", web::access::Access::Public, |page: Page| async move {
            page.render(
                "Scan",
                html! {
                    h1 { "Scan" }
                    div #scan data-live="/test/live/state" data-live-active="true" data-status="running" {
                        p {
                            "Latest scan: " strong data-field="status" { "running" }
                            " · " span data-field="messages_scanned" { "0" } " messages read"
                        }
                    }
                },
            )
        })
        .get(
            "/test/live/state",
            web::access::Access::Public,
            move || async move { axum::Json(state.lock().unwrap().clone()) },
        );
    let late = LateRoutes::default();
    let (app, _) = web::assemble(
        AppState {
            readiness: Arc::new(AlwaysReady),
            metrics: None,
        },
        Site::new([web::sandbox::NAV]),
        vec![
            web::page::home_routes(&sessions),
            web::sandbox::console(sim.clone(), demo.clone(), &sessions, Some(meetings)),
            live_routes,
        ],
        late.clone(),
    );
    late.set(axum::Router::new());
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestSite {
        base,
        live,
        _sim: sim,
        _demo: demo,
        _redis: redis,
    }
}

/// Whether the page is no wider than the window (nothing to scroll sideways).
const FITS: &str = "return document.documentElement.scrollWidth <= window.innerWidth;";

#[tokio::test]
async fn on_a_phone_a_long_value_wraps_inside_the_page() {
    let site = spawn().await;
    let browser = Browser::start().await;

    // A problem page quoting one very long word the visitor gave (as a feature's page
    // quotes a mistyped meeting code) wraps it inside the page's width.
    browser
        .open(site.base.join("/no/such/page").unwrap().as_str())
        .await;
    browser.page_titled("Not found").await;
    assert_eq!(browser.script(FITS).await, true, "the 404 page itself fits");
    let fits = browser
        .script(
            "document.querySelector('.problem p').textContent = \
             '“' + 'A'.repeat(300) + '” is not a meeting code.'; \
             const p = document.createElement('p'); p.textContent = 'b'.repeat(300); \
             document.querySelector('main').append(p);",
        )
        .await;
    assert!(fits.is_null(), "{fits}");
    assert_eq!(
        browser.script(FITS).await,
        true,
        "width {} in a window of {}",
        browser
            .script("return document.documentElement.scrollWidth;")
            .await,
        browser.script("return window.innerWidth;").await
    );
    browser.quit().await;
}

#[tokio::test]
async fn on_a_phone_the_console_keeps_the_demo_meeting_links_in_reach() {
    let site = spawn().await;
    let browser = Browser::start().await;
    // The console at a phone's width: both demo meeting links shown, inside the window.
    browser
        .open(site.base.join("/sandbox").unwrap().as_str())
        .await;
    browser.find("[data-demo-meeting]").await;
    for link in ["[data-demo-meeting]", "[data-demo-recordable-meeting]"] {
        let shown = browser
            .script(&format!(
                "const r = document.querySelector('{link}').getBoundingClientRect(); \
                 return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth;"
            ))
            .await;
        assert_eq!(shown, true, "{link} is not in reach on a phone");
    }
    assert_eq!(browser.script(FITS).await, true, "the console fits");
    browser.quit().await;
}

#[tokio::test]
async fn at_390_pixels_the_console_does_not_scroll_sideways() {
    let site = spawn().await;
    let browser = Browser::start().await;
    // An iPhone 14's window, 390 x 844 CSS pixels.
    browser.window_size(390, 844).await;
    browser
        .open(site.base.join("/sandbox").unwrap().as_str())
        .await;
    browser.find("button.channel.voice").await;
    let width = browser
        .script(
            "const d = document.documentElement; \
             return [window.innerWidth, d.clientWidth, d.scrollWidth];",
        )
        .await;
    let [inner, client, scroll] = [0, 1, 2].map(|i| width[i].as_u64().unwrap());
    assert!(inner <= 390, "the window is a phone's: {width}");
    assert!(
        scroll <= client,
        "the page is {scroll} px wide in a window of {client}"
    );
    browser.quit().await;
}

/// What the page's hidden status line says to a screen reader.
const SAID: &str = "const s = document.querySelector('#scan [role=status]'); \
                    return s ? s.textContent : 'no status line';";

#[tokio::test]
async fn a_live_scan_tells_screen_readers_when_its_state_changes_not_every_count() {
    let site = spawn().await;
    let browser = Browser::start().await;
    browser
        .open(site.base.join("/test/live").unwrap().as_str())
        .await;
    browser.page_titled("Scan").await;
    let counted = |n: u64| move |text: &str| text == n.to_string();
    const COUNT: &str =
        "return document.querySelector('[data-field=messages_scanned]').textContent";

    // The counts tick: shown, not said.
    *site.live.lock().unwrap() =
        serde_json::json!({ "status": "running", "live": true, "messages_scanned": 120 });
    browser
        .text_when(
            "the count is shown",
            Duration::from_secs(10),
            COUNT,
            counted(120),
        )
        .await;
    assert_eq!(
        browser.script(SAID).await,
        "",
        "a tick of the count is not said"
    );

    // The scan ends: said once, with what it read.
    *site.live.lock().unwrap() =
        serde_json::json!({ "status": "done", "live": false, "messages_scanned": 250 });
    let said = browser
        .text_when(
            "the end of the scan is said",
            Duration::from_secs(10),
            SAID,
            |text| !text.is_empty(),
        )
        .await;
    assert_eq!(said, "Latest scan: done · 250 messages read");
    browser.quit().await;
}
