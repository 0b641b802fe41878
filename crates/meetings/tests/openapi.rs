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
