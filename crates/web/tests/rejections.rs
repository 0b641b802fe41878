//! What axum itself refuses, answered in the site's words: each kind of refusal through
//! a site composed as Tavern composes it (the routes given at once and the routes
//! installed late), over real HTTP with a real Redis for sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::{Form, Json, Query};
use serde::Deserialize;
use serde_json::Value;
use store::harness::TestRedis;
use url::Url;
use web::access::{Access, Routes};
use web::page::Site;
use web::session::{SessionConfig, Sessions};
use web::{AppState, Component, LateRoutes, Readiness};

struct AlwaysReady;

impl Readiness for AlwaysReady {
    fn check(&self) -> discord::BoxFuture<'static, Vec<Component>> {
        Box::pin(async { Vec::new() })
    }
}

#[derive(Debug, Deserialize)]
struct DateForm {
    date: String,
}

#[derive(Debug, Deserialize)]
struct Scan {
    deep: bool,
}

#[derive(Debug, Deserialize)]
struct Expiry {
    expires: i64,
}

async fn schedule(Form(form): Form<DateForm>) -> String {
    form.date
}

async fn scan(Json(scan): Json<Scan>) -> String {
    scan.deep.to_string()
}

async fn download(Query(q): Query<Expiry>) -> String {
    q.expires.to_string()
}

async fn roll() -> &'static str {
    "rolled"
}

struct TestSite {
    base: Url,
    _redis: TestRedis,
    http: reqwest::Client,
}

async fn spawn() -> TestSite {
    discord::install_crypto_provider();
    let redis = TestRedis::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let sessions = Sessions::new(redis.connect().await, SessionConfig::for_public_url(&base));
    let at_once = Routes::new(&sessions)
        .post("/schedule/{id}", Access::Public, schedule)
        .get("/api/rolls/roll", Access::Public, roll);
    let late = LateRoutes::default();
    let state = AppState {
        readiness: std::sync::Arc::new(AlwaysReady),
        metrics: None,
    };
    let (app, _) = web::assemble(state, Site::default(), vec![at_once], late.clone());
    let (late_routes, _) = Routes::<()>::new(&sessions)
        .post("/clips/scans", Access::Public, scan)
        .get("/api/v1/download", Access::Public, download)
        .into_parts();
    late.set(late_routes);
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestSite {
        base,
        _redis: redis,
        http: reqwest::Client::new(),
    }
}

struct Answer {
    status: u16,
    content_type: String,
    allow: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert!(
            self.content_type.starts_with("application/json"),
            "{} {}",
            self.content_type,
            self.body
        );
        serde_json::from_str(&self.body).unwrap()
    }

    fn page(&self) -> &str {
        assert!(
            self.content_type.starts_with("text/html"),
            "{} {}",
            self.content_type,
            self.body
        );
        &self.body
    }
}

impl TestSite {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (content_type, allow) = (header("content-type").unwrap_or_default(), header("allow"));
        Answer {
            status: response.status().as_u16(),
            content_type,
            allow,
            body: response.text().await.unwrap(),
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.base.join(path).unwrap())
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.base.join(path).unwrap())
    }
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

#[tokio::test]
async fn framework_refusals_are_answered_in_the_sites_format() {
    let site = spawn().await;

    // A form without a field, from a script: JSON naming the field, status kept.
    let form = site
        .send(
            site.post("/schedule/7")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("time=20:00"),
        )
        .await;
    assert_eq!(form.status, 422, "{}", form.body);
    let json = form.json();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("missing field `date`"),
        "{json}"
    );
    assert_eq!(json["code"], "unprocessable_entity");

    // The same form sent by a browser: the problem page, saying what was wrong.
    let browser = site
        .send(
            site.post("/schedule/7")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", BROWSER_ACCEPT)
                .body("time=20:00"),
        )
        .await;
    assert_eq!(browser.status, 422);
    let page = browser.page();
    assert!(
        page.contains("<h1>Tavern could not read the request</h1>"),
        "{page}"
    );
    assert!(page.contains("missing field `date`"), "{page}");

    // No body where JSON is expected (a route installed late).
    let empty = site.send(site.post("/clips/scans")).await;
    assert_eq!(empty.status, 415, "{}", empty.body);
    let json = empty.json();
    assert!(
        json["error"].as_str().unwrap().contains("application/json"),
        "{json}"
    );
    assert_eq!(json["code"], "unsupported_media_type");

    // JSON that does not parse.
    let broken = site
        .send(
            site.post("/clips/scans")
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(broken.status, 400, "{}", broken.body);
    assert_eq!(broken.json()["code"], "bad_request");
    assert!(broken.json()["error"].as_str().unwrap().contains("JSON"));

    // JSON of the wrong shape.
    let shape = site
        .send(
            site.post("/clips/scans")
                .header("content-type", "application/json")
                .body(r#"{"deep": "very"}"#),
        )
        .await;
    assert_eq!(shape.status, 422, "{}", shape.body);
    assert!(shape.json()["error"].as_str().unwrap().contains("deep"));

    // A query value of the wrong kind.
    let query = site.send(site.get("/api/v1/download?expires=abc")).await;
    assert_eq!(query.status, 400, "{}", query.body);
    let json = query.json();
    assert!(
        json["error"].as_str().unwrap().contains("expires"),
        "{json}"
    );
    assert_eq!(json["code"], "bad_request");

    // A method the path does not take, from a program: JSON, `Allow` kept.
    let wrong = site.send(site.post("/api/rolls/roll")).await;
    assert_eq!(wrong.status, 405, "{}", wrong.body);
    assert_eq!(wrong.allow.as_deref(), Some("GET,HEAD"));
    let json = wrong.json();
    assert_eq!(json["code"], "method_not_allowed");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("POST is not allowed"),
        "{json}"
    );

    // ... and a browser opening an address that only takes a form: a page, not a
    // blank one.
    let typed = site
        .send(site.get("/clips/scans").header("accept", BROWSER_ACCEPT))
        .await;
    assert_eq!(typed.status, 405);
    assert_eq!(typed.allow.as_deref(), Some("POST"));
    let page = typed.page();
    assert!(page.contains("<h1>Not a page</h1>"), "{page}");
    assert!(page.contains("href=\"/\""), "{page}");

    // What the handlers answer themselves passes untouched.
    let ok = site.send(site.get("/api/v1/download?expires=5")).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "5"));
}

#[tokio::test]
async fn a_method_the_sites_own_routes_do_not_take_names_those_they_do() {
    let site = spawn().await;
    for path in ["/api/rolls/roll", "/healthz", "/readyz", "/metrics"] {
        let answer = site.send(site.post(path)).await;
        assert_eq!(answer.status, 405, "{path}: {}", answer.body);
        let allow = answer.allow.clone().unwrap_or_default();
        assert!(allow.contains("GET"), "{path}: Allow {allow:?}");
        let json = answer.json();
        let said = json["error"].as_str().unwrap();
        assert_eq!(
            said,
            format!("POST is not allowed on {path}; it takes {allow}"),
            "{path}"
        );
        assert!(!said.contains("other methods"), "{path}: {said}");
        assert_eq!(json["code"], "method_not_allowed");
    }
}
