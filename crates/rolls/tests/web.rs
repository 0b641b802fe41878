//! The REST backend over a real listener with real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::World;

/// The feature's routes on a real listener, over the world's Redis.
struct Api {
    base: String,
    http: reqwest::Client,
    /// The `Authorization` header `http` sends.
    authorization: String,
    world: World,
    _dir: tempfile::TempDir,
}

async fn start() -> Api {
    start_as(Served::Alone).await
}

/// How the feature's routes are served.
enum Served {
    /// On their own.
    Alone,
    /// In the site `tavern serve` assembles, by its server (body limit included).
    InTheSite,
}

/// Always ready, for the assembled site's `/readyz`.
struct Ready;

impl web::Readiness for Ready {
    fn check(&self) -> discord::BoxFuture<'static, Vec<web::Component>> {
        Box::pin(async { Vec::new() })
    }
}

async fn start_as(served: Served) -> Api {
    let world = World::new().await;
    let dir = tempfile::tempdir().expect("dir");
    // The world's discord-sim answers who is a member of which guild.
    let feature = rolls::feature(&world.ctx, rolls::RollsConfig::new(dir.path()));
    let router = feature.routes.expect("routes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    match served {
        Served::Alone => {
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
        }
        Served::InTheSite => {
            let late = web::LateRoutes::default();
            late.set(router);
            let (site, _) = web::assemble(
                web::AppState {
                    readiness: std::sync::Arc::new(Ready),
                    metrics: None,
                },
                web::page::Site::default(),
                Vec::new(),
                late,
            );
            tokio::spawn(web::serve_with(
                listener,
                site,
                web::ServerConfig::default(),
                std::future::pending(),
            ));
        }
    }
    // A program's API token, acting for whoever `?user=` names.
    let token = web::tokens::ApiTokens::new(world.redis.clone())
        .create(
            &web::tokens::TokenName::parse("rolls-tests").unwrap(),
            web::tokens::Scope::parse_list("rolls:read,rolls:write").unwrap(),
            testkit::epoch(),
        )
        .await
        .expect("token");
    let authorization = format!("Bearer {}", token.token.expose_str());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        authorization.parse().unwrap(),
    );
    Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
        authorization,
        world,
        _dir: dir,
    }
}

impl Api {
    /// A new Discord user who is a member of the demo guild: their id.
    fn member(&self, name: &str) -> u64 {
        let user = self.world.sim.create_user(name);
        self.world
            .sim
            .add_member(self.world.demo.guild, user)
            .expect("member");
        user.get()
    }

    /// The demo guild's dice channel, as a path segment.
    fn table(&self) -> String {
        self.world.demo.dice.to_string()
    }

    /// A signed-in session of `user`: its cookie header and CSRF token.
    async fn session(&self, user: u64) -> (String, String) {
        self.session_named(user, &format!("user{user}"), None).await
    }

    /// A signed-in session of `user` with this Discord username and display name.
    async fn session_named(
        &self,
        user: u64,
        username: &str,
        global_name: Option<&str>,
    ) -> (String, String) {
        let sessions = &self.world.ctx.sessions;
        let session = sessions
            .log_in(
                None,
                web::session::SessionUser {
                    id: discord::model::UserId::new(user),
                    username: username.to_owned(),
                    global_name: global_name.map(str::to_owned),
                    avatar: None,
                },
                &discord::oauth::TokenGrant {
                    access_token: "discord-access".into(),
                    refresh_token: None,
                    expires_in: std::time::Duration::from_secs(3600),
                    scopes: vec![],
                },
            )
            .await
            .expect("log in");
        (
            format!(
                "{}={}",
                sessions.config().cookie_name(),
                session.id().expose()
            ),
            session.csrf_token().to_owned(),
        )
    }

    /// A request without the API token, with these headers.
    async fn as_browser(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.expect("send");
        (r.status().as_u16(), r.json().await.expect("json"))
    }

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
    /// A POST without a body (no `Content-Type` either).
    async fn post_empty(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
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
    assert_eq!(body["users"], 0, "REST callers are not authenticated yet");

    let mut conn = api.world.redis.conn();
    let stats: i64 = conn.get("c_stats").await.expect("c_stats");
    assert_eq!(stats, 1);
}

/// `?user=` only claims a user: the request is counted, but nobody is added to
/// `user_set` on the strength of a query parameter.
#[tokio::test]
async fn a_user_named_by_the_query_is_not_added_to_user_set() {
    let api = start().await;
    for user in ["5", "6", "107624977066381312"] {
        let (status, body) = api
            .get(&format!("/api/rolls/roll?user={user}&expression=1d6"))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut conn = api.world.redis.conn();
    let members: Vec<String> = conn.smembers("user_set").await.expect("members");
    assert!(members.is_empty(), "{members:?}");
    let rolls: i64 = conn.get("c_roll").await.expect("c_roll");
    assert_eq!(rolls, 3);
    let (_, body) = api.get("/api/rolls/stats?user=5").await;
    assert_eq!(body["users"], 0, "{body}");
}

/// A channel's tracker takes at most 20 entries; the 21st is refused in words.
#[tokio::test]
async fn the_tracker_refuses_entries_past_its_cap() {
    let api = start().await;
    let table = api.table();
    let players: Vec<u64> = (1..=21).map(|n| api.member(&format!("p{n}"))).collect();
    for (n, user) in players.iter().take(20).enumerate() {
        let (status, body) = api
            .post(
                &format!("/api/rolls/initiative/{table}/join?user={user}"),
                json!({"roll": "10", "name": format!("p{}", n + 1)}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/join?user={}", players[20]),
            json!({"roll": "10", "name": "late"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().expect("error");
    assert!(error.contains("already has 20 entries"), "{error}");
    // Someone already in it may still roll again.
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/join?user={}", players[2]),
            json!({"roll": "18", "name": "p3"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracker"]["entries"][0]["name"], "p3");
    assert_eq!(
        body["tracker"]["entries"]
            .as_array()
            .expect("entries")
            .len(),
        20
    );
}

/// The command-stats redis reports: how many times each command ran since `reset`.
async fn command_calls(redis: &store::Redis) -> String {
    let mut conn = redis.conn();
    redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("info")
}

/// `/api/rolls/stats` reads the counters by name: however many keys Redis holds, it
/// never walks the keyspace.
#[tokio::test]
async fn stats_are_read_from_the_counters_without_a_keyspace_scan() {
    let api = start().await;
    let (status, _) = api.get("/api/rolls/roll?user=5&expression=1d6").await;
    assert_eq!(status, 200);
    let mut conn = api.world.redis.conn();
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .expect("resetstat");
    let (status, body) = api.get("/api/rolls/stats?user=5&all=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["counters"]["roll"], 1);
    assert_eq!(body["counters"]["odds"], 0);
    let calls = command_calls(&api.world.redis).await;
    assert!(!calls.contains("cmdstat_scan"), "{calls}");
    assert!(!calls.contains("cmdstat_keys"), "{calls}");
}

/// A roll whose answer would be over the size cap leaves out its result tree and
/// says so; the answer is still JSON with the total.
#[tokio::test]
async fn a_roll_answer_over_the_size_cap_is_cut_and_says_so() {
    let api = start().await;
    let r = api
        .http
        .get(format!(
            "{}/api/rolls/roll?user=5&expression=2%2010000d6",
            api.base
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.bytes().await.expect("body");
    assert!(
        bytes.len() <= rolls::web::MAX_ANSWER_BYTES,
        "{} bytes",
        bytes.len()
    );
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert!(body.get("outcome").is_none(), "the tree is left out");
    assert!(body["total"].as_i64().is_some(), "{body:?}");
    let cut = body["cut"].as_str().expect("cut");
    assert!(cut.contains("262144"), "{cut}");
    // A small roll is whole.
    let (_, body) = api.get("/api/rolls/roll?user=5&expression=3d6").await;
    assert!(body.get("outcome").is_some() && body.get("cut").is_none());
}

/// The record `GET /api/rolls/roll` keeps for 30 days stays small however many dice
/// were rolled: its result is cut to the documented size, and the roll still replays
/// from its seed to the same total.
#[tokio::test]
async fn a_huge_rolls_record_keeps_a_cut_result_and_still_replays_to_the_same_total() {
    let api = start().await;
    let (status, roll) = api
        .get("/api/rolls/roll?user=5&expression=2%2010000d6")
        .await;
    assert_eq!(status, 200, "{roll}");
    let id = roll["id"].as_str().expect("a roll id").to_owned();
    let total = roll["total"].clone();
    assert!(total.as_i64().is_some(), "{roll}");

    let mut conn = api.world.redis.conn();
    let stored: String = conn
        .get(rolls::schema::roll_key(&id))
        .await
        .expect("the roll's record");
    let record: Value = serde_json::from_str(&stored).expect("json");
    let result = record["result"].as_str().expect("result");
    assert_eq!(
        result.chars().count(),
        rolls::history::MAX_RECORDED_RESULT,
        "{result}"
    );
    assert!(
        result.ends_with(rolls::history::RESULT_CUT_NOTE),
        "{result}"
    );
    // The result at most, the expression and the rest of the record: a few KB.
    assert!(
        stored.len() < 4 * rolls::history::MAX_RECORDED_RESULT,
        "{} bytes",
        stored.len()
    );
    assert_eq!(record["total"], total);

    let (status, check) = api.get(&format!("/api/rolls/rolls/{id}?user=5")).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["replay_matches"], true, "{check}");
    assert_eq!(check["total"], total, "{check}");

    // A small roll's result is kept whole.
    let (_, small) = api.get("/api/rolls/roll?user=5&expression=3d6").await;
    let small_id = small["id"].as_str().expect("a roll id");
    let stored: String = conn
        .get(rolls::schema::roll_key(small_id))
        .await
        .expect("the roll's record");
    let record: Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(record["result"], small["text"], "{record}");
}

/// Over-budget dice are refused with the budget named, by the REST API too.
#[tokio::test]
async fn over_budget_rolls_and_odds_are_refused_naming_the_budget() {
    let api = start().await;
    let (status, body) = api
        .get("/api/rolls/roll?user=5&expression=3%2010000d6")
        .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().expect("error");
    assert!(
        error.contains("20000 dice") && error.contains("budget"),
        "{error}"
    );
    let (status, body) = api.get("/api/rolls/odds?user=5&expression=5001d6km1").await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().expect("error");
    assert!(error.contains("odds budget of 10,000,000 dice"), "{error}");
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
    let gm = api.member("gm");
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{}/next?user={gm}", api.table()),
            json!({}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().expect("error").contains("Nobody"));
}

#[tokio::test]
async fn characters_and_initiative() {
    let api = start().await;
    let table = api.table();
    let (vex, pike) = (api.member("vex"), api.member("pike"));
    let (status, body) = api
        .post(
            &format!("/api/rolls/characters?user={vex}"),
            json!({"name": "Vex", "initiative_modifier": 100}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], "Vex");
    let (status, body) = api
        .post(
            &format!("/api/rolls/characters?user={vex}"),
            json!({"name": "Vax", "initiative_modifier": -1}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["characters"]["Vax"]["initiative_modifier"], -1);
    let (_, body) = api.get(&format!("/api/rolls/characters?user={vex}")).await;
    assert_eq!(body["characters"].as_object().expect("obj").len(), 2);

    // No roll: 1d20 + 100 for the active character.
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/join?user={vex}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first = body["tracker"]["entries"][0].clone();
    assert_eq!(first["name"], "Vex");
    assert!((101..=120).contains(&first["initiative"].as_i64().expect("int")));
    let (_, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/join?user={pike}"),
            json!({"roll": "3", "name": "Pike"}),
        )
        .await;
    assert_eq!(body["tracker"]["entries"][1]["name"], "Pike");
    // A character the user does not have: 404, saying which ones they have.
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/join?user={vex}"),
            json!({"character": "Nobody"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"],
        "You have no character named `Nobody`. Yours: `Vax`, `Vex`."
    );
    let (_, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/next?user={vex}"),
            json!({}),
        )
        .await;
    assert_eq!(body["tracker"]["turn"], 1);
    let (_, body) = api
        .get(&format!("/api/rolls/initiative/{table}?user={vex}"))
        .await;
    assert!(
        body["markdown"]
            .as_str()
            .expect("md")
            .contains("▶ `  3` Pike"),
        "{body}"
    );
    // Someone else's combatant is theirs to remove: 403, saying whose, nothing removed.
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/remove?user={vex}"),
            json!({"character": "Pike"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"],
        format!(
            "`Pike` is <@{pike}>'s: only whoever added a combatant removes it (or `/init reset` clears the whole tracker)."
        )
    );
    let (_, body) = api
        .get(&format!("/api/rolls/initiative/{table}?user={pike}"))
        .await;
    assert_eq!(body["tracker"]["entries"].as_array().expect("arr").len(), 2);
    let (_, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/remove?user={pike}"),
            json!({}),
        )
        .await;
    assert_eq!(body["tracker"]["entries"].as_array().expect("arr").len(), 1);
    let (_, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/reset?user={vex}"),
            json!({}),
        )
        .await;
    assert_eq!(body["tracker"]["entries"].as_array().expect("arr").len(), 0);

    let (status, _) = api
        .delete(&format!("/api/rolls/characters/vex?user={vex}"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .delete(&format!("/api/rolls/characters/vex?user={vex}"))
        .await;
    assert_eq!(status, 404, "gone: {body}");
}

/// A browser is its signed-in user: authenticated, so added to `user_set`; it acts
/// only for itself (naming another user is 403), changes nothing without the
/// session's CSRF token, and without a session or token it is 401.
#[tokio::test]
async fn a_signed_in_user_acts_only_for_themselves_and_is_counted_as_a_user() {
    let api = start().await;
    let (me, other) = (api.member("me"), api.member("other"));
    let (cookie, csrf) = api.session(me).await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    let (status, body) = api
        .as_browser(get.clone(), "/api/rolls/roll?expression=1d6", &[], None)
        .await;
    assert_eq!(status, 401, "{body}");

    let (status, body) = api
        .as_browser(
            get.clone(),
            "/api/rolls/roll?expression=1d6",
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut conn = api.world.redis.conn();
    let members: Vec<String> = conn.smembers("user_set").await.expect("members");
    assert_eq!(members, vec![me.to_string()]);

    let character = json!({"name": "Vex", "initiative_modifier": 2});
    let (status, body) = api
        .as_browser(
            post.clone(),
            &format!("/api/rolls/characters?user={other}"),
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(character.clone()),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().expect("error").contains("yourself"),
        "{body}"
    );
    let stored: Option<String> = conn.get(format!("user_{other}")).await.expect("get");
    assert_eq!(stored, None, "nothing was written for the other user");

    let (status, body) = api
        .as_browser(
            post.clone(),
            "/api/rolls/characters",
            &[("cookie", &cookie)],
            Some(character.clone()),
        )
        .await;
    assert_eq!(status, 403, "no CSRF token: {body}");

    let (status, body) = api
        .as_browser(
            post,
            "/api/rolls/characters",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(character),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stored: Option<String> = conn.get(format!("user_{me}")).await.expect("get");
    assert!(stored.expect("stored").contains("Vex"));
}

/// Only members of the channel's guild change its tracker, through a session or a
/// token acting for them; a channel Discord does not know is 404.
#[tokio::test]
async fn only_members_of_the_channels_guild_change_its_tracker() {
    let api = start().await;
    let table = api.table();
    let member = api.member("member");
    let stranger = api.world.sim.create_user("stranger").get();

    let join = json!({"roll": "12", "name": "x"});
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/join?user={stranger}"),
            join.clone(),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().expect("error").contains("members"),
        "{body}"
    );

    let (cookie, csrf) = api.session(stranger).await;
    let (status, body) = api
        .as_browser(
            reqwest::Method::POST,
            &format!("/api/rolls/initiative/{table}/join"),
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(join.clone()),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, body) = api
        .get(&format!("/api/rolls/initiative/{table}?user={member}"))
        .await;
    assert_eq!(
        body["tracker"]["entries"]
            .as_array()
            .expect("entries")
            .len(),
        0,
        "{body}"
    );

    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/join?user={member}"),
            join.clone(),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/424242/join?user={member}"),
            join,
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

/// A member of the channel's guild whom its permission overwrites keep out of it
/// neither reads nor changes its tracker, by a token acting for them or signed in
/// (with their CSRF token): 404, as for a channel that does not exist.
#[tokio::test]
async fn a_member_who_cannot_see_the_channel_neither_reads_nor_changes_its_tracker() {
    let api = start().await;
    let guild = api.world.demo.guild;
    let player = api.member("player");
    let bob = api.member("bob");
    let view = discord::permissions::VIEW_CHANNEL;
    let overwrite = |id: u64, kind, allow, deny| discord_sim::PermissionOverwrite {
        id: discord_sim::Snowflake::new(id),
        kind,
        allow,
        deny,
    };
    let mut spec = discord_sim::ChannelSpec::new("curse-of-strahd", discord_sim::ChannelKind::Text);
    spec.permission_overwrites = vec![
        overwrite(guild.get(), discord_sim::OverwriteKind::Role, 0, view),
        overwrite(player, discord_sim::OverwriteKind::Member, view, 0),
    ];
    let strahd = api
        .world
        .sim
        .create_channel_with(guild, spec)
        .expect("channel");

    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{strahd}/join?user={player}"),
            json!({"roll": "12", "name": "Grog"}),
        )
        .await;
    assert_eq!(status, 200, "the player sees it: {body}");
    let (status, body) = api
        .get(&format!("/api/rolls/initiative/{strahd}?user={player}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let before = body["tracker"].clone();

    let (status, body) = api
        .get(&format!("/api/rolls/initiative/{strahd}?user={bob}"))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.to_string().contains("Grog"), "{body}");
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{strahd}/next?user={bob}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    let (cookie, csrf) = api.session(bob).await;
    let (status, body) = api
        .as_browser(
            reqwest::Method::GET,
            &format!("/api/rolls/initiative/{strahd}"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api
        .as_browser(
            reqwest::Method::POST,
            &format!("/api/rolls/initiative/{strahd}/next"),
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // The same words as for a channel that does not exist.
    let (_, unknown) = api
        .get(&format!("/api/rolls/initiative/424242?user={bob}"))
        .await;
    assert_eq!(
        body["error"]
            .as_str()
            .map(|e| e.replace(&strahd.to_string(), "")),
        unknown["error"].as_str().map(|e| e.replace("424242", "")),
    );

    let (_, body) = api
        .get(&format!("/api/rolls/initiative/{strahd}?user={player}"))
        .await;
    assert_eq!(body["tracker"], before, "nothing moved");
}

/// Who sees a channel is remembered for a while, by the kit's clock, not asked of
/// Discord at every click: someone an admin just shut out of the channel still reads
/// its tracker for up to 5 minutes and then gets 404; someone just let in waits up to
/// 30 s.
#[tokio::test]
async fn who_sees_a_channel_is_asked_again_once_the_remembered_answer_expires() {
    let api = start().await;
    let guild = api.world.demo.guild;
    let (player, bob) = (api.member("player"), api.member("bob"));
    let view = discord::permissions::VIEW_CHANNEL;
    let only = |allowed: u64| {
        vec![
            discord_sim::PermissionOverwrite {
                id: discord_sim::Snowflake::new(guild.get()),
                kind: discord_sim::OverwriteKind::Role,
                allow: 0,
                deny: view,
            },
            discord_sim::PermissionOverwrite {
                id: discord_sim::Snowflake::new(allowed),
                kind: discord_sim::OverwriteKind::Member,
                allow: view,
                deny: 0,
            },
        ]
    };
    let mut spec = discord_sim::ChannelSpec::new("tomb-of-horrors", discord_sim::ChannelKind::Text);
    spec.permission_overwrites = only(player);
    let tomb = api
        .world
        .sim
        .create_channel_with(guild, spec)
        .expect("channel");
    let status_of = |user: u64| {
        let api = &api;
        async move {
            api.get(&format!("/api/rolls/initiative/{tomb}?user={user}"))
                .await
                .0
        }
    };
    assert_eq!(status_of(player).await, 200);
    assert_eq!(status_of(bob).await, 404);

    // The admin turns the channel over to Bob.
    api.world
        .sim
        .set_channel_overwrites(tomb, only(bob))
        .expect("overwrites");
    assert_eq!(status_of(player).await, 200, "remembered: still sees it");
    assert_eq!(status_of(bob).await, 404, "remembered: still kept out");

    api.world.clock.advance(rolls::membership::NOT_MEMBER_FOR);
    assert_eq!(status_of(bob).await, 200, "asked again after 30 s");
    assert_eq!(status_of(player).await, 200, "remembered for 5 minutes");

    api.world
        .clock
        .advance(rolls::membership::MEMBER_FOR - rolls::membership::NOT_MEMBER_FOR);
    assert_eq!(status_of(player).await, 404, "asked again after 5 minutes");
}

/// Reading a tracker takes what changing it takes: a member of the channel's guild
/// reads it (its names, hit points, armour classes and notes); anyone else, through
/// a session or a token acting for them, gets the same 403 a change would.
#[tokio::test]
async fn only_members_of_the_channels_guild_read_its_tracker() {
    let api = start().await;
    let table = api.table();
    let member = api.member("member");
    let stranger = api.world.sim.create_user("stranger").get();
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/join?user={member}"),
            json!({"roll": "12", "name": "Vex"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = api
        .get(&format!("/api/rolls/initiative/{table}?user={member}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("Vex"), "{body}");

    let (status, body) = api
        .get(&format!("/api/rolls/initiative/{table}?user={stranger}"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.to_string().contains("Vex"), "{body}");
    assert!(
        body["error"].as_str().expect("error").contains("members"),
        "{body}"
    );

    let (cookie, _) = api.session(stranger).await;
    let (status, body) = api
        .as_browser(
            reqwest::Method::GET,
            &format!("/api/rolls/initiative/{table}"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.to_string().contains("Vex"), "{body}");

    let (status, body) = api
        .get(&format!("/api/rolls/initiative/424242?user={member}"))
        .await;
    assert_eq!(status, 404, "{body}");

    // A channel Discord does not let the bot see (403 Missing Access) is one Tavern
    // cannot see either: 404, not a failure of Tavern's.
    let hidden = api
        .world
        .sim
        .create_channel(
            api.world.demo.guild,
            "staff",
            discord_sim::ChannelKind::Text,
        )
        .expect("channel");
    api.world.sim.inject_fault(
        discord_sim::RouteMatch::new("GET", format!("/channels/{hidden}")),
        discord_sim::Fault::Status(403),
        1,
    );
    let (status, body) = api
        .get(&format!("/api/rolls/initiative/{hidden}?user={member}"))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("Tavern can see"),
        "{body}"
    );
}

/// `next` with the position a client last read moves the turn only from there: a
/// second `next` from the same position is 409 and changes nothing.
#[tokio::test]
async fn next_from_a_position_the_turn_has_left_is_a_conflict() {
    let api = start().await;
    let table = api.table();
    let (vex, pike) = (api.member("vex"), api.member("pike"));
    for (user, roll) in [(vex, "20"), (pike, "10")] {
        let (status, body) = api
            .post(
                &format!("/api/rolls/initiative/{table}/join?user={user}"),
                json!({"roll": roll}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let next = format!("/api/rolls/initiative/{table}/next?user={vex}&round=1&turn=0");
    let (status, body) = api.post(&next, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracker"]["turn"], 1, "{body}");
    let (status, body) = api.post(&next, json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("round 1, turn 1"),
        "{body}"
    );
    // A position the tracker never reached is no turn at all, not one it left.
    for (round, turn) in [(1, 5), (7, 0), (1, 2)] {
        let (status, body) = api
            .post(
                &format!("/api/rolls/initiative/{table}/next?user={vex}&round={round}&turn={turn}"),
                json!({}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["error"],
            format!(
                "Round {round}, turn {turn} is not a turn of this tracker; nothing changed. It is at round 1, turn 1."
            ),
        );
    }
    let (_, body) = api
        .get(&format!("/api/rolls/initiative/{table}?user={vex}"))
        .await;
    assert_eq!(
        (
            body["tracker"]["round"].as_u64(),
            body["tracker"]["turn"].as_u64()
        ),
        (Some(1), Some(1)),
        "{body}"
    );
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/next?user={vex}&round=1"),
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/next?user={vex}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracker"]["round"], 2, "{body}");
}

/// A repeated roll answers its grand total beside the first result's `total`; `join`
/// and `remove`, whose fields are all optional, take no body; deleting a character
/// that does not exist is 404.
#[tokio::test]
async fn rest_grand_totals_empty_bodies_and_unknown_characters() {
    let api = start().await;
    let (status, body) = api.get("/api/rolls/roll?user=5&expression=3%201d20").await;
    assert_eq!(status, 200, "{body}");
    let results: i64 = body["outcome"]["rolls"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["total"].as_i64().expect("int"))
        .sum();
    assert_eq!(body["grand_total"].as_i64(), Some(results), "{body}");
    assert!(
        body["text"]
            .as_str()
            .expect("text")
            .contains(&format!("Total: {results}")),
        "{body}"
    );
    let (_, single) = api.get("/api/rolls/roll?user=5&expression=1d20").await;
    assert!(single.get("grand_total").is_none(), "{single}");

    let table = api.table();
    let vex = api.member("vex");
    let (status, body) = api
        .post_empty(&format!("/api/rolls/initiative/{table}/join?user={vex}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracker"]["entries"].as_array().expect("arr").len(), 1);
    let (status, body) = api
        .post_empty(&format!("/api/rolls/initiative/{table}/remove?user={vex}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["tracker"]["entries"]
            .as_array()
            .expect("arr")
            .is_empty()
    );

    let (status, body) = api
        .delete(&format!("/api/rolls/characters/Nobody?user={vex}"))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .starts_with("You have no character named `Nobody`"),
        "{body}"
    );
}

/// Joining with no character and no `name` shows the user as `/init join` would: a
/// signed-in user by their Discord display name (else username), from their session;
/// a token's `?user=` by the name Discord gives that member of the channel's server,
/// and, when Discord cannot say, as a plain "Player" beside their mention. Never as
/// `user <id>`.
#[tokio::test]
async fn joining_without_a_character_shows_the_discord_name_never_the_id() {
    let api = start().await;
    let table = api.table();
    let (carol, dave, erin) = (api.member("carol"), api.member("dave"), api.member("erin"));
    let join = format!("/api/rolls/initiative/{table}/join");

    let (cookie, csrf) = api
        .session_named(carol, "carol", Some("Carol the Bold"))
        .await;
    let (status, body) = api
        .as_browser(
            reqwest::Method::POST,
            &join,
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(json!({"roll": "15"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tracker"]["entries"][0]["name"], "Carol the Bold",
        "{body}"
    );

    let (cookie, csrf) = api.session_named(dave, "dave", None).await;
    let (status, body) = api
        .as_browser(
            reqwest::Method::POST,
            &join,
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(json!({"roll": "10"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracker"]["entries"][1]["name"], "dave", "{body}");

    let (status, body) = api
        .post(&format!("{join}?user={erin}"), json!({"roll": "5"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracker"]["entries"][2]["name"], "erin", "{body}");
    let shown = body["markdown"].as_str().expect("markdown");
    for id in [carol, dave, erin] {
        assert!(!shown.contains(&format!("user {id}")), "{shown}");
    }

    // Discord cannot say who a member is (their membership was checked before):
    // "Player" beside their mention.
    let gus = api.member("gus");
    let (status, body) = api
        .get(&format!("/api/rolls/initiative/{table}?user={gus}"))
        .await;
    assert_eq!(status, 200, "{body}");
    api.world.sim.inject_fault(
        discord_sim::RouteMatch::new(
            "GET",
            format!("/guilds/{}/members/{gus}", api.world.demo.guild),
        ),
        discord_sim::Fault::Status(500),
        10,
    );
    let (status, body) = api
        .post(&format!("{join}?user={gus}"), json!({"roll": "4"}))
        .await;
    api.world.sim.clear_faults();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracker"]["entries"][3]["name"], "Player", "{body}");
    let shown = body["markdown"].as_str().expect("markdown");
    assert!(shown.contains(&format!("Player (<@{gus}>)")), "{shown}");

    // A display name is a combatant's name, not a character's: `,` and `;` (which
    // separate characters in an import) are no reason to turn the player away.
    let frank = api.member("frank");
    let (cookie, csrf) = api
        .session_named(frank, "frank", Some("Smith, Frank; Esq."))
        .await;
    let (status, body) = api
        .as_browser(
            reqwest::Method::POST,
            &join,
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(json!({"roll": "3"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tracker"]["entries"][4]["name"], "Smith, Frank; Esq.",
        "{body}"
    );
}

/// A `next` turned down with 409 changed nothing and is not a use: `/stats` shows the
/// same `init` count as before it (as it does for the Next button's second press).
#[tokio::test]
async fn a_refused_next_is_not_counted() {
    let api = start().await;
    let table = api.table();
    let (vex, pike) = (api.member("vex"), api.member("pike"));
    for (user, roll) in [(vex, "20"), (pike, "10")] {
        let (status, body) = api
            .post(
                &format!("/api/rolls/initiative/{table}/join?user={user}"),
                json!({"roll": roll}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, before) = api
        .get(&format!("/api/rolls/stats?user={vex}&all=true"))
        .await;
    assert_eq!(before["counters"]["init"], 2, "{before}");

    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/next?user={vex}&round=99&turn=0"),
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "a round never reached: {body}");
    let (_, after) = api
        .get(&format!("/api/rolls/stats?user={vex}&all=true"))
        .await;
    assert_eq!(after["counters"]["init"], 2, "{after}");
    let mut conn = api.world.redis.conn();
    let init: i64 = conn.get("c_init").await.expect("c_init");
    assert_eq!(init, 2);

    // A `next` that moves the turn still counts.
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/next?user={vex}&round=1&turn=0"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let init: i64 = conn.get("c_init").await.expect("c_init");
    assert_eq!(init, 3);

    // A `next` from the position the turn just left is 409 and not counted either.
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/next?user={vex}&round=1&turn=0"),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let init: i64 = conn.get("c_init").await.expect("c_init");
    assert_eq!(init, 3);
}

/// Whatever a request names that is not there is 404 with the same sentence as
/// Discord's: a roll id, an alias, a command of `help`, the caller in the tracker; a
/// malformed roll id stays 400.
#[tokio::test]
async fn what_is_not_there_is_a_404() {
    let api = start().await;
    let (status, body) = api.get("/api/rolls/rolls/ZZZZZZZZ?user=5").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"],
        "No roll `ZZZZZZZZ` in the last 30 days (rolls are kept that long).",
    );
    let (status, body) = api.get("/api/rolls/rolls/not-an-id?user=5").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("is not a roll id"),
        "{body}"
    );

    let (status, body) = api.delete("/api/rolls/aliases/nope?user=5").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"],
        "There is no `nope` among the aliases of yours."
    );

    let (status, body) = api.get("/api/rolls/help?user=5&command=nope").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .starts_with("There is no command `nope`."),
        "{body}"
    );

    let table = api.table();
    let vex = api.member("vex");
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/remove?user={vex}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "You are not in this channel's initiative.");
    let (status, body) = api
        .post(
            &format!("/api/rolls/initiative/{table}/remove?user={vex}"),
            json!({"character": "Vex"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "`Vex` is not in this channel's initiative.");
}

/// A body sent in chunks (no `Content-Length`) that grows past the site's limit (1
/// MiB) is 413 with `"code": "payload_too_large"` and a sentence naming the limit,
/// both where the body may be left out (`join`) and where it is required
/// (`characters`, `aliases`).
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_payload_too_large() {
    let api = start_as(Served::InTheSite).await;
    let table = api.table();
    let vex = api.member("vex");
    for path in [
        format!("/api/rolls/initiative/{table}/join?user={vex}"),
        format!("/api/rolls/characters?user={vex}"),
        format!("/api/rolls/aliases?user={vex}"),
    ] {
        let (status, body) =
            chunked_post(&api.base, &path, &api.authorization, 3 * 1024 * 1024).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["code"], "payload_too_large", "{path}: {body}");
        let error = body["error"].as_str().expect("error");
        assert_eq!(error, "the body is larger than 1 MiB", "{path}");
    }
}

/// POSTs `size` bytes of a JSON string as a chunked body, over a plain connection
/// (the client here sends only bodies of a known length): the status and JSON answer.
async fn chunked_post(base: &str, path: &str, authorization: &str, size: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {authorization}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        let frame = format!("{:x}\r\n", chunk.len());
        // The server may answer and close before the whole body is sent.
        if stream.write_all(frame.as_bytes()).await.is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).expect("json"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
