//! The HTTP server's limits and what it tells strangers, over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web::client::TrustedProxies;
use web::{AppState, Component, LateRoutes, Readiness, ServerConfig};

/// A dependency that is never ready, with a detail that must stay private.
struct Down;

impl Readiness for Down {
    fn check(&self) -> discord::BoxFuture<'static, Vec<Component>> {
        Box::pin(async {
            vec![Component {
                name: "postgres",
                ready: false,
                detail: Some("connection refused at db.internal:5432".into()),
            }]
        })
    }
}

fn state() -> AppState {
    AppState {
        readiness: Arc::new(Down),
        metrics: None,
    }
}

/// The site with three extra routes: one that never answers, one that takes a body
/// and one that fails (500).
async fn spawn(config: ServerConfig) -> SocketAddr {
    spawn_with(state(), config).await
}

/// [`spawn`] with this state.
async fn spawn_with(state: AppState, config: ServerConfig) -> SocketAddr {
    discord::install_crypto_provider();
    let extra = Router::new()
        .route("/stall", get(std::future::pending::<String>))
        .route(
            "/echo",
            post(|body: String| async move { body.len().to_string() }),
        )
        .route(
            "/json",
            post(
                |web::access::JsonBody(body): web::access::JsonBody<serde_json::Value>| async move {
                    body.to_string().len().to_string()
                },
            ),
        )
        .route(
            "/broken",
            get(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
        );
    let app = web::router(
        state,
        web::page::Site::default(),
        vec![extra],
        LateRoutes::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(web::serve_with(
        listener,
        app,
        config,
        std::future::pending(),
    ));
    addr
}

/// Reads until the server closes the connection (or the deadline, a failure).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&seen).into_owned()
}

/// One request on an open keep-alive connection; returns the status line.
async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let addr = spawn(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();
    read_to_close(&mut stream).await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_or_only_an_http2_preface_is_closed() {
    let addr = spawn(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 2,
        ..ServerConfig::default()
    })
    .await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut preface = TcpStream::connect(addr).await.unwrap();
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut silent).await;
    read_to_close(&mut preface).await;
    // Their slots are free again: a visitor is served, not turned away.
    let mut visitor = TcpStream::connect(addr).await.unwrap();
    assert!(
        exchange(&mut visitor, "/healthz").await.contains("200"),
        "the two closed connections still hold their slots"
    );
}

#[tokio::test]
async fn an_http2_connection_that_begins_no_request_is_closed_though_it_answers_pings() {
    let addr = spawn(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 1,
        ..ServerConfig::default()
    })
    .await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    // The client side answers the server's pings for as long as it runs.
    let connection = tokio::spawn(connection);
    let request = axum::http::Request::get(format!("http://{addr}/healthz"))
        .body(http_body_util::Empty::<axum::body::Bytes>::new())
        .unwrap();
    let answer = sender.send_request(request).await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    // Then it begins nothing more: the server ends the connection.
    let ended = tokio::time::timeout(Duration::from_secs(20), connection).await;
    assert!(
        ended.is_ok(),
        "the server kept an idle HTTP/2 connection open"
    );
    // Its only slot is free again: a visitor is served, not turned away.
    let mut visitor = TcpStream::connect(addr).await.unwrap();
    assert!(
        exchange(&mut visitor, "/healthz").await.contains("200"),
        "the idle HTTP/2 connection still holds its slot"
    );
}

#[tokio::test]
async fn a_stopping_server_finishes_the_requests_it_serves_closes_the_silent_ones_and_returns() {
    discord::install_crypto_provider();
    // Says when it has begun, then reads its body.
    let begun = Arc::new(tokio::sync::Notify::new());
    let told = Arc::clone(&begun);
    let extra = Router::new().route(
        "/echo",
        post(move |request: axum::extract::Request| async move {
            told.notify_one();
            let body = axum::body::to_bytes(request.into_body(), 1024)
                .await
                .unwrap();
            body.len().to_string()
        }),
    );
    let app = web::router(
        state(),
        web::page::Site::default(),
        vec![extra],
        LateRoutes::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web::serve_with(
        listener,
        app,
        // Long enough that waiting it out would miss the test's deadline.
        ServerConfig {
            header_read_timeout: Duration::from_secs(60),
            ..ServerConfig::default()
        },
        async move {
            let _ = stopped.await;
        },
    ));
    // A spare connection a browser opened ahead, which has sent nothing.
    let _spare = TcpStream::connect(addr).await.unwrap();
    let mut upload = TcpStream::connect(addr).await.unwrap();
    upload
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc")
        .await
        .unwrap();
    // The request is being served (its handler waits for the rest of its body) when
    // the server is told to stop: it is finished, answered and then the server returns.
    tokio::time::timeout(Duration::from_secs(20), begun.notified())
        .await
        .expect("the upload's handler began");
    stop.send(()).unwrap();
    // The server has stopped accepting (its listener is closed) before the upload goes on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server kept accepting connections after it was told to stop"
        );
        tokio::task::yield_now().await;
    }
    upload.write_all(b"def").await.unwrap();
    let answer = read_to_close(&mut upload).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n6"), "{answer}");
    let returned = tokio::time::timeout(Duration::from_secs(20), server).await;
    assert!(
        returned.is_ok(),
        "the server did not return once its requests were done"
    );
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_408() {
    let addr = spawn(ServerConfig {
        request_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let answer = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("http://{addr}/stall"))
        .send()
        .await
        .expect("an answer before the client gives up");
    assert_eq!(answer.status().as_u16(), 408);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let addr = spawn(ServerConfig {
        max_body_bytes: 1024,
        ..ServerConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let small = http
        .post(format!("http://{addr}/echo"))
        .body("x".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(small.text().await.unwrap(), "1000");
    let big = http
        .post(format!("http://{addr}/echo"))
        .body("x".repeat(64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_in_the_sites_format() {
    let addr = spawn(ServerConfig::default()).await;
    let http = reqwest::Client::new();
    let over = "x".repeat(1024 * 1024 + 1);

    // A program (the API, a script): JSON with a code, the status kept.
    let answer = http
        .post(format!("http://{addr}/echo"))
        .header("content-type", "application/json")
        .body(over.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 413);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "error": "the body is larger than 1 MiB",
            "code": "payload_too_large",
        })
    );

    // A browser sending a form: the problem page, saying what was wrong.
    let answer = http
        .post(format!("http://{addr}/echo"))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(over)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 413);
    let content_type = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = answer.text().await.unwrap();
    assert!(page.contains("the body is larger than 1 MiB"), "{page}");
}

/// A body without a length that runs over the limit while a handler reads it: 413 in
/// the site's format naming the server's limit, whether the handler reads it as text
/// (axum's bare refusal, answered by the site) or through the kit's `JsonBody`.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_in_the_sites_format() {
    let addr = spawn(ServerConfig {
        max_body_bytes: 64 * 1024,
        ..ServerConfig::default()
    })
    .await;
    for path in ["/echo", "/json"] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                     Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
        for _ in 0..8 {
            // The server may answer (and stop reading) before the body ends.
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("application/json"), "{path}: {answer}");
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "the body is larger than 64 KiB",
                "code": "payload_too_large",
            }),
            "{path}"
        );
    }
}

/// A server of `config` with a cap of two connections, both taken by connections that
/// were answered 200: its address and the two.
async fn at_its_cap_of_two(config: ServerConfig) -> (SocketAddr, TcpStream, TcpStream) {
    let addr = spawn(ServerConfig {
        max_connections: 2,
        ..config
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut first, "/healthz").await.contains("200"));
    assert!(exchange(&mut second, "/healthz").await.contains("200"));
    (addr, first, second)
}

#[tokio::test]
async fn connections_past_the_cap_are_answered_503_until_one_closes() {
    let (addr, first, mut second) = at_its_cap_of_two(ServerConfig::default()).await;

    let mut third = TcpStream::connect(addr).await.unwrap();
    let status = exchange(&mut third, "/healthz").await;
    assert!(status.contains("503"), "{status}");
    read_to_close(&mut third).await;

    drop(first);
    // Until the server has noticed the close, a new connection is still turned away.
    testkit::eventually("a slot freed by closing a connection", || async {
        let mut next = TcpStream::connect(addr).await.unwrap();
        exchange(&mut next, "/healthz")
            .await
            .contains("200")
            .then_some(())
    })
    .await;
    assert!(exchange(&mut second, "/healthz").await.contains("200"));
}

#[tokio::test]
async fn silent_connections_past_the_cap_are_answered_503_and_closed_at_once() {
    // Headers may take an hour: a connection past the cap that waited for its
    // request before being answered would stay open past the test's deadline.
    let (addr, mut first, _second) = at_its_cap_of_two(ServerConfig {
        header_read_timeout: Duration::from_secs(3600),
        ..ServerConfig::default()
    })
    .await;

    // More silent connections than the server lets linger, none sending a byte.
    let mut silent = Vec::new();
    for _ in 0..150 {
        silent.push((TcpStream::connect(addr).await.unwrap(), Vec::new(), false));
    }
    testkit::eventually("every connection past the cap closed", || {
        for (stream, seen, closed) in silent.iter_mut().filter(|(_, _, closed)| !closed) {
            let mut buf = [0u8; 1024];
            loop {
                match stream.try_read(&mut buf) {
                    Ok(0) => *closed = true,
                    Ok(n) => {
                        seen.extend_from_slice(&buf[..n]);
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => *closed = true,
                }
                break;
            }
        }
        let done = silent.iter().all(|(_, _, closed)| *closed);
        async move { done.then_some(()) }
    })
    .await;
    for (_, seen, _) in &silent {
        let seen = String::from_utf8_lossy(seen);
        assert!(
            seen.starts_with("HTTP/1.1 503 ") && seen.contains("too many connections"),
            "{seen}"
        );
    }
    // The connections within the cap are served as before.
    assert!(exchange(&mut first, "/healthz").await.contains("200"));
}

#[tokio::test]
async fn readiness_details_and_metrics_are_for_local_clients_only() {
    let addr = spawn(ServerConfig::default()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");

    let local = http.get(url("/readyz")).send().await.unwrap();
    assert_eq!(local.status().as_u16(), 503);
    let body = local.text().await.unwrap();
    assert!(body.contains("db.internal"), "local: {body}");

    // Through a proxy (any forwarding header), the caller is not local.
    let remote = http
        .get(url("/readyz"))
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(remote.status().as_u16(), 503);
    let body: serde_json::Value = remote.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"ready": false}));

    let metrics = http
        .get(url("/metrics"))
        .header("forwarded", "for=203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 404);

    // The metrics listener tells everything to whoever reaches it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    tokio::spawn(web::serve(
        listener,
        web::metrics_router(state()),
        std::future::pending(),
    ));
    let details = http
        .get(format!("http://{metrics_addr}/readyz"))
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert!(details.text().await.unwrap().contains("db.internal"));
}

#[tokio::test]
async fn trusted_proxies_parse_from_text() {
    let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
    assert!(proxies.trusts("10.9.8.7".parse().unwrap()));
    assert!(TrustedProxies::parse("10.0.0.0/99").is_err());
}

/// A dependency whose readiness the test sets.
struct Switch(Arc<std::sync::atomic::AtomicBool>);

impl Readiness for Switch {
    fn check(&self) -> discord::BoxFuture<'static, Vec<Component>> {
        let ready = self.0.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            vec![Component {
                name: "redis",
                ready,
                detail: (!ready).then(|| "connection refused".to_owned()),
            }]
        })
    }
}

/// Polled every few seconds through an outage, `/readyz` logs the store going down
/// once (WARN, with why) and coming back once (INFO), and its 503s are no request
/// failures; another route's 5xx still is one.
#[tokio::test]
async fn readiness_changes_are_logged_once_each_and_a_503_from_readyz_is_no_failure() {
    let logs = testkit::Logs::default();
    let _guard = logs.capture();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let state = AppState {
        readiness: Arc::new(web::LoggedReadiness::new(Switch(Arc::clone(&ready)))),
        metrics: None,
    };
    let addr = spawn_with(state, ServerConfig::default()).await;
    let http = reqwest::Client::new();
    let get = |path: &'static str, expected: u16| {
        let http = http.clone();
        async move {
            let status = http
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status.as_u16(), expected, "{path}");
        }
    };

    get("/readyz", 200).await;
    ready.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        get("/readyz", 503).await;
    }
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    get("/readyz", 200).await;
    get("/readyz", 200).await;

    let warnings: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains(" WARN "))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("not ready")
            && warnings[0].contains("component=\"redis\"")
            && warnings[0].contains("connection refused"),
        "{warnings:#?}"
    );
    assert_eq!(logs.count("ready again"), 1, "{}", logs.text());

    get("/broken", 500).await;
    assert_eq!(logs.warnings("/broken").len(), 1, "{}", logs.text());
}

/// Before the features' routes exist (Tavern starting, perhaps waiting for its stores),
/// a browser opening one of their pages gets the site's problem page, the API and
/// scripts JSON; none is logged as a failed request.
#[tokio::test]
async fn before_the_features_exist_their_paths_are_a_page_for_a_browser_and_json_otherwise() {
    let logs = testkit::Logs::default();
    let _guard = logs.capture();
    let addr = spawn(ServerConfig::default()).await;
    let http = reqwest::Client::new();
    let get = |path: &'static str, accept: &'static str| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("http://{addr}{path}"))
                .header(reqwest::header::ACCEPT, accept)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 503, "{path}");
            let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .to_owned();
            (content_type, response.text().await.unwrap())
        }
    };

    let (content_type, page) = get("/clips", "text/html").await;
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.contains("Tavern is starting"),
        "{page}"
    );
    for (path, accept) in [("/api/clips", "text/html"), ("/clips", "*/*")] {
        let (content_type, body) = get(path, accept).await;
        assert!(content_type.starts_with("application/json"), "{path}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], "service_unavailable", "{path}: {body}");
    }
    assert!(
        logs.warnings("response failed").is_empty(),
        "{}",
        logs.text()
    );
}
