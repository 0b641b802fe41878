//! The REST backend over a real listener with real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::World;

/// The feature's routes on a real listener, over the world's Redis.
struct Api {
    base: String,
    http: reqwest::Client,
    world: World,
    _dir: tempfile::TempDir,
}

async fn start() -> Api {
    let world = World::new().await;
    let dir = tempfile::tempdir().expect("dir");
    // No bot token: the API must not need Discord except for best-effort edits.
    let ctx = feature::Context {
        discord: discord::Discord::without_token(),
        ..world.ctx.clone()
    };
    let feature = rolls::feature(&ctx, rolls::RollsConfig::new(dir.path()));
    let router = feature.routes.expect("routes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        world,
        _dir: dir,
    }
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send");
        (r.status().as_u16(), r.json().await.expect("json"))
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("send");
        (r.status().as_u16(), r.json().await.expect("json"))
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send");
        (r.status().as_u16(), r.json().await.expect("json"))
    }
}

#[tokio::test]
async fn roll_odds_and_stats() {
    let api = start().await;
    let (status, body) = api.get("/api/rolls/roll?user=5&expression=3d6").await;
    assert_eq!(status, 200, "{body}");
    let total = body["total"].as_i64().expect("total");
    assert!((3..=18).contains(&total));
    assert!(body["markdown"].as_str().expect("md").contains("3d6"));

    let (status, body) = api
        .get("/api/rolls/odds?user=5&expression=1d20%2B5%3E%3D15")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        (body["odds"]["check"]["probability"]
            .as_f64()
            .unwrap_or(-1.0)
            - 0.55)
            .abs()
            < 1e-9
            || body["markdown"].as_str().expect("md").contains("55.00%"),
        "{body}"
    );

    let (status, body) = api.get("/api/rolls/stats?user=6&all=true").await;
    assert_eq!(status, 200);
    assert_eq!(body["counters"]["roll"], 1);
    assert_eq!(body["counters"]["odds"], 1);
    assert_eq!(body["counters"]["help"], 0);
    assert_eq!(body["total"], 2);
    assert_eq!(
        body["users"], 1,
        "stats sees the state before its own request"
    );

    let mut conn = api.world.redis.conn();
    let members: Vec<String> = conn.smembers("user_set").await.expect("members");
    assert_eq!(members.len(), 2);
    let stats: i64 = conn.get("c_stats").await.expect("c_stats");
    assert_eq!(stats, 1);
}

#[tokio::test]
async fn bad_input_is_a_400_with_a_clear_error() {
    let api = start().await;
    let (status, body) = api.get("/api/rolls/roll?expression=1d20").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().expect("error").contains("user"),
        "{body}"
    );
    let (status, body) = api.get("/api/rolls/roll?user=abc&expression=1d20").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.get("/api/rolls/roll?user=1").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("expression")
    );
    let (status, body) = api
        .get("/api/rolls/roll?user=1&expression=1d20%20%2B%20x")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["column"], 8);
    assert_eq!(body["pointer"], "1d20 + x\n       ^");
    let (status, _) = api
        .post("/api/rolls/characters?user=1", json!({"nom": "x"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .post("/api/rolls/initiative/0/next?user=1", json!({}))
        .await;
    assert_eq!(status, 400);
    let (status, body) = api
        .post("/api/rolls/initiative/3/next?user=1", json!({}))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().expect("error").contains("Nobody"));
}

#[tokio::test]
async fn characters_and_initiative() {
    let api = start().await;
    let (status, body) = api
        .post(
            "/api/rolls/characters?user=9",
            json!({"name": "Vex", "initiative_modifier": 100}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], "Vex");
    let (status, body) = api
        .post(
            "/api/rolls/characters?user=9",
            json!({"name": "Vax", "initiative_modifier": -1}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["characters"]["Vax"]["initiative_modifier"], -1);
    let (_, body) = api.get("/api/rolls/characters?user=9").await;
    assert_eq!(body["characters"].as_object().expect("obj").len(), 2);

    // No roll: 1d20 + 100 for the active character.
    let (status, body) = api
        .post("/api/rolls/initiative/12/join?user=9", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let first = body["tracker"]["entries"][0].clone();
    assert_eq!(first["name"], "Vex");
    assert!((101..=120).contains(&first["initiative"].as_i64().expect("int")));
    let (_, body) = api
        .post(
            "/api/rolls/initiative/12/join?user=10",
            json!({"roll": "3", "name": "Pike"}),
        )
        .await;
    assert_eq!(body["tracker"]["entries"][1]["name"], "Pike");
    let (_, body) = api
        .post("/api/rolls/initiative/12/next?user=9", json!({}))
        .await;
    assert_eq!(body["tracker"]["turn"], 1);
    let (_, body) = api.get("/api/rolls/initiative/12?user=9").await;
    assert!(
        body["markdown"]
            .as_str()
            .expect("md")
            .contains("▶ `  3` Pike"),
        "{body}"
    );
    let (_, body) = api
        .post("/api/rolls/initiative/12/remove?user=10", json!({}))
        .await;
    assert_eq!(body["tracker"]["entries"].as_array().expect("arr").len(), 1);
    let (_, body) = api
        .post("/api/rolls/initiative/12/reset?user=9", json!({}))
        .await;
    assert_eq!(body["tracker"]["entries"].as_array().expect("arr").len(), 0);

    let (status, _) = api.delete("/api/rolls/characters/vex?user=9").await;
    assert_eq!(status, 200);
    let (status, body) = api.delete("/api/rolls/characters/vex?user=9").await;
    assert_eq!(status, 400, "{body}");
}
