//! The OpenAPI document served at `/api/v1/openapi.json`: generated, it lists exactly
//! the routes the meetings feature serves (each with its method), says which need the
//! bearer scheme, and its schemas carry what the answers carry (the join grant's
//! fields, the JWKS as served).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use meetings::MeetingsConfig;
use meetings::auth::MeetingsSecretKey;
use serde_json::Value;
use testkit::World;
use web::access::Access;

/// Serves the meetings feature over a fresh world: its base URL and declared routes.
async fn start() -> (World, String, Vec<web::access::RouteSpec>) {
    let world = World::with_postgres().await;
    let config = MeetingsConfig {
        secret_key: Some(MeetingsSecretKey::generate().unwrap()),
        ..MeetingsConfig::default()
    };
    let mut feature = meetings::feature(&world.ctx, config);
    world.migrate(std::slice::from_ref(&feature)).await;
    for work in &feature.startup {
        work.run().await.unwrap();
    }
    let manifest = feature.manifest.clone();
    let router = feature.routes.take().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(web::serve_with(
        listener,
        router,
        web::ServerConfig::default(),
        std::future::pending(),
    ));
    (world, base, manifest)
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The property names of the component schema `name`, following `allOf`.
fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    let mut out = BTreeSet::new();
    collect(doc, schema, &mut out);
    out
}

fn collect(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        collect(doc, &doc["components"]["schemas"][name], out);
    }
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.keys().cloned());
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect(doc, part, out);
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn the_document_lists_every_route_served_with_its_method_and_security() {
    let (_world, base, manifest) = start().await;
    let (status, doc) = get(&format!("{base}/api/v1/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        serde_json::to_value(meetings::web::openapi::document()).unwrap(),
        doc,
        "served as generated"
    );

    // Every route of the API (the browser client's page and its assets are not API).
    let served: BTreeSet<(String, String)> = manifest
        .iter()
        .filter(|r| r.path.starts_with("/api/") || r.path.starts_with("/.well-known/"))
        .map(|r| (r.method.as_str().to_lowercase(), r.path.clone()))
        .collect();
    assert!(
        manifest.iter().any(|r| r.path == "/meet/{code}"),
        "the page is served beside the API"
    );
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    assert_eq!(documented, served);
    for route in [
        ("post", "/api/v1/meetings"),
        ("get", "/api/v1/meetings/{meeting}"),
        ("post", "/api/v1/meetings/{meeting}/guest-token"),
        ("patch", "/api/v1/meetings/{id}/settings"),
        ("post", "/api/v1/meetings/{id}/end"),
        ("get", "/api/v1/openapi.json"),
        ("post", "/api/v1/auth/register"),
        ("get", "/.well-known/jwks.json"),
    ] {
        assert!(
            served.contains(&(route.0.to_owned(), route.1.to_owned())),
            "{route:?}"
        );
    }

    // The bearer scheme, asked for exactly by the routes that take bearer credentials,
    // with the scope they check.
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    let api = manifest
        .iter()
        .filter(|r| r.path.starts_with("/api/") || r.path.starts_with("/.well-known/"));
    for route in api {
        let operation = &doc["paths"][&route.path][route.method.as_str().to_lowercase()];
        let security = &operation["security"];
        match &route.access {
            Access::Bearer(scope) => {
                let wanted: Vec<String> = scope.iter().map(|s| s.as_str().to_owned()).collect();
                assert_eq!(
                    security[0]["bearer"],
                    serde_json::to_value(&wanted).unwrap(),
                    "{route}: {operation}"
                );
            }
            _ => assert!(security.is_null(), "{route}: {operation}"),
        }
        let responses = operation["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{route}");
    }
}

#[tokio::test]
async fn the_schemas_carry_the_meeting_the_join_grant_and_the_served_jwks() {
    let (_world, base, _) = start().await;
    let (_, doc) = get(&format!("{base}/api/v1/openapi.json")).await;

    let grant = set(&[
        "token",
        "expires_in",
        "wt_token",
        "webtransport_url",
        "certificate_hash",
        "participant_id",
    ]);
    assert_eq!(properties(&doc, "JoinGrantJson"), grant);
    let meeting = set(&[
        "meeting_id",
        "meeting_code",
        "display_name",
        "status",
        "created_by_user_id",
        "max_participants",
        "enable_e2e_encryption",
        "require_auth",
        "allow_recording",
        "waiting_room_enabled",
        "scheduled_start_time",
        "actual_start_time",
        "ended_at",
        "created_at",
    ]);
    assert_eq!(properties(&doc, "MeetingJson"), meeting);
    let mut with_grant = meeting.clone();
    with_grant.insert("join_grant".to_owned());
    assert_eq!(properties(&doc, "MeetingWithGrant"), with_grant);
    let guest = properties(&doc, "GuestToken");
    assert!(grant.is_subset(&guest), "{guest:?}");
    assert!(guest.contains("token_type") && guest.contains("meeting"));
    assert_eq!(
        properties(&doc, "ErrorBody"),
        set(&["error", "code", "field"])
    );
    let get_meeting = &doc["paths"]["/api/v1/meetings/{meeting}"]["get"];
    assert_eq!(
        get_meeting["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MeetingWithGrant"
    );
    let statuses: BTreeSet<&str> = get_meeting["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        ["200", "401", "403", "404", "503"]
            .iter()
            .all(|s| statuses.contains(s)),
        "{statuses:?}"
    );

    // The documented JWKS is what the route serves.
    let (status, jwks) = get(&format!("{base}/.well-known/jwks.json")).await;
    assert_eq!(status, 200);
    let served: BTreeSet<String> = jwks["keys"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(properties(&doc, "JsonWebKey"), served);
    assert_eq!(properties(&doc, "JsonWebKeySet"), set(&["keys"]));
}

/// Every `description` and `summary` in `value`, with where it is.
fn descriptions(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let here = format!("{at}/{key}");
                match (key.as_str(), inner) {
                    ("description" | "summary", Value::String(text)) => {
                        out.push((here, text.clone()))
                    }
                    _ => descriptions(inner, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                descriptions(inner, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn descriptions_are_written_for_api_users_not_in_rust_names() {
    let doc = serde_json::to_value(meetings::web::openapi::document()).unwrap();
    let mut all = Vec::new();
    descriptions(&doc, "", &mut all);
    assert!(all.len() > 50, "{}", all.len());
    let leaks: Vec<_> = all
        .iter()
        .filter(|(_, text)| ["::", "[`", "crate::"].iter().any(|r| text.contains(r)))
        .collect();
    assert!(leaks.is_empty(), "{leaks:#?}");
}

/// One request: its status.
async fn status_of(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<(&str, String)>,
    bearer: Option<&str>,
) -> u16 {
    let mut request = http.request(method, url);
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_status_a_route_is_seen_answering_is_documented() {
    let (_world, base, _) = start().await;
    let (_, doc) = get(&format!("{base}/api/v1/openapi.json")).await;
    let http = reqwest::Client::new();
    let json = |v: Value| Some(("application/json", v.to_string()));
    let text = || Some(("text/plain", "hello".to_owned()));
    let url = |path: &str| format!("{base}{path}");
    let mut seen: Vec<(&str, &str, u16)> = Vec::new();
    use reqwest::Method as M;

    let register = "/api/v1/auth/register";
    let registered = http
        .post(url(register))
        .json(&serde_json::json!({
            "email": "alice@example.org", "password": "correct horse 7", "display_name": "Alice"
        }))
        .send()
        .await
        .unwrap();
    seen.push(("post", register, registered.status().as_u16()));
    let registered: Value = registered.json().await.unwrap();
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let bearer = Some(token.as_str());

    let missing_password =
        json(serde_json::json!({ "email": "b@example.org", "display_name": "B" }));
    for (method, path, body, auth) in [
        ("post", register, missing_password, None),
        ("post", register, text(), None),
        (
            "post",
            "/api/v1/auth/user/token",
            json(serde_json::json!({ "email": "a@example.org" })),
            None,
        ),
        ("post", "/api/v1/auth/user/token", text(), None),
        ("post", "/api/v1/api-keys", text(), bearer),
        ("post", "/api/v1/meetings", text(), bearer),
        (
            "post",
            "/api/v1/meetings/{meeting}/guest-token",
            text(),
            None,
        ),
        ("patch", "/api/v1/meetings/{id}/settings", text(), bearer),
    ] {
        let concrete = path
            .replace("{meeting}", "ABC-DEFG-HJK")
            .replace("{id}", "0b8f6f7e-1c0e-4e55-9f59-6f6f1c3f7a10");
        let m = M::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        seen.push((
            method,
            path,
            status_of(&http, m, url(&concrete), body, auth).await,
        ));
    }
    // Registrations from one address: 10 a minute, then 429.
    let mut last = 0;
    for i in 0..20 {
        let body = json(serde_json::json!({
            "email": format!("u{i}@example.org"), "password": "correct horse 7", "display_name": "U"
        }));
        last = status_of(&http, M::POST, url(register), body, None).await;
        if last == 429 {
            break;
        }
    }
    seen.push(("post", register, last));

    let expected = [
        ("post", register, 201),
        ("post", register, 400),
        ("post", register, 415),
        ("post", register, 429),
        ("post", "/api/v1/auth/user/token", 400),
        ("post", "/api/v1/auth/user/token", 415),
        ("post", "/api/v1/api-keys", 415),
        ("post", "/api/v1/meetings", 415),
        ("post", "/api/v1/meetings/{meeting}/guest-token", 415),
        ("patch", "/api/v1/meetings/{id}/settings", 415),
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for want in expected {
        assert!(seen.contains(&want), "{want:?} not seen: {seen:?}");
    }
    let undocumented: Vec<_> = seen
        .iter()
        .filter(|(method, path, status)| {
            doc["paths"][*path][*method]["responses"][status.to_string()].is_null()
        })
        .collect();
    assert!(undocumented.is_empty(), "{undocumented:?}");
}
