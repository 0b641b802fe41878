//! The table tools end to end: aliases and saved rolls, GM and blind rolls, roll ids
//! and the odds chart, through discord-sim with the real router, over the REST API on
//! a real listener, with real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use discord_sim::{InteractionReply, RoleSpec, Snowflake};
use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::{TestBot, WAIT, World};

/// The world with the bot serving the rolls feature, and its REST routes on a real
/// listener with an API token (`rolls:read,rolls:write`).
struct Table {
    w: World,
    bot: TestBot,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Table {
    let w = World::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let feature = rolls::feature(&w.ctx, rolls::RollsConfig::new(dir.path()));
    let router = feature.routes.clone().expect("routes");
    let bot = TestBot::spawn(&w, vec![feature]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let token = web::tokens::ApiTokens::new(w.redis.clone())
        .create(
            &web::tokens::TokenName::parse("table-tests").unwrap(),
            web::tokens::Scope::parse_list("rolls:read,rolls:write").unwrap(),
            testkit::epoch(),
        )
        .await
        .expect("token");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.token.expose_str())
            .parse()
            .unwrap(),
    );
    Table {
        w,
        bot,
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Table {
    /// `/roll expression` by `user`.
    async fn roll(&self, user: Snowflake, expression: &str) -> InteractionReply {
        self.run(
            user,
            "roll",
            json!([{"name": "expression", "value": expression}]),
        )
        .await
    }

    async fn run(&self, user: Snowflake, name: &str, options: Value) -> InteractionReply {
        self.w
            .sim
            .run_command(user, self.w.demo.dice, name, options)
            .expect("run")
            .final_response(WAIT)
            .await
            .expect("reply")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send")
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).await;
        (r.status().as_u16(), r.json().await.expect("json"))
    }

    /// Gives `user` a role with Manage Server.
    fn make_manager(&self, user: Snowflake) {
        let role = self
            .w
            .sim
            .create_role(
                self.w.demo.guild,
                RoleSpec::new("Admins", discord::permissions::MANAGE_GUILD),
            )
            .expect("role");
        self.w
            .sim
            .add_member_role(self.w.demo.guild, user, role)
            .expect("give role");
    }

    /// The messages of `user`'s DM channel with the bot.
    fn dms(&self, user: Snowflake) -> Vec<discord_sim::Message> {
        let channel = self.w.sim.dm_channel(user).expect("dm channel");
        self.w.sim.messages(channel)
    }
}

fn content(reply: &InteractionReply) -> &str {
    reply.content.as_deref().unwrap_or_default()
}

/// The roll id under a roll (`roll id `XXXXXXXX``).
fn roll_id(text: &str) -> String {
    let at = text.find("roll id `").expect("a roll id") + "roll id `".len();
    text[at..at + 8].to_owned()
}

// ---- aliases and saved rolls --------------------------------------------------------

#[tokio::test]
async fn aliases_with_arguments_shadowing_and_manage_server() {
    let t = start().await;
    let (alice, bob) = (t.w.demo.alice, t.w.demo.bob);

    // A server alias needs Manage Server.
    let refused = t
        .run(
            bob,
            "alias",
            json!([{"name": "add", "options": [
                {"name": "name", "value": "attack"},
                {"name": "expression", "value": "1d1+100"},
                {"name": "server", "value": true}]}]),
        )
        .await;
    assert!(refused.ephemeral);
    assert!(content(&refused).contains("Manage Server"), "{refused:?}");
    t.make_manager(bob);
    let added = t
        .run(
            bob,
            "alias",
            json!([{"name": "add", "options": [
                {"name": "name", "value": "attack"},
                {"name": "expression", "value": "1d1+100"},
                {"name": "server", "value": true}]}]),
        )
        .await;
    assert!(content(&added).contains("Saved `attack`"), "{added:?}");
    let stored: String =
        t.w.redis
            .conn()
            .get(format!("alias_guild_{}", t.w.demo.guild))
            .await
            .expect("server aliases");
    assert_eq!(
        serde_json::from_str::<Value>(&stored).unwrap(),
        json!({"attack": "1d1+100"})
    );

    // Everyone uses the server's alias...
    let roll = t.roll(alice, "attack").await;
    assert!(content(&roll).contains("= `101`"), "{roll:?}");
    // ...until their own shadows it; arguments fill the placeholders.
    t.run(
        alice,
        "alias",
        json!([{"name": "add", "options": [
            {"name": "name", "value": "attack"},
            {"name": "expression", "value": "1d1+{1}+{1}"}]}]),
    )
    .await;
    let roll = t.roll(alice, "attack 3 + 1").await;
    assert!(
        content(&roll).contains("`attack 3 + 1` → `1d1+3+3 + 1`"),
        "{roll:?}"
    );
    assert!(content(&roll).contains("= `8`"), "{roll:?}");
    let doc: String =
        t.w.redis
            .conn()
            .get(format!("user_{alice}"))
            .await
            .expect("user doc");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["aliases"]["attack"], "1d1+{1}+{1}");
    assert_eq!(doc["saved_rolls"], json!({}), "the seed's field is kept");

    // A comment that mentions an alias is a comment, not an alias call.
    let roll = t.roll(alice, "1d1+2 to attack[attack]").await;
    assert!(
        content(&roll).contains("= `3`") && !content(&roll).contains('→'),
        "{roll:?}"
    );
    let roll = t.roll(alice, "1d1[attack] + 1").await;
    assert!(content(&roll).contains("= `2`"), "{roll:?}");

    // A missing argument says what is missing and how to pass it.
    let missing = t.roll(alice, "attack").await;
    assert!(missing.ephemeral);
    assert!(
        content(&missing).contains("takes 1 argument, and got 0")
            && content(&missing).contains("`attack 1`"),
        "{missing:?}"
    );

    // The REST API expands the user's aliases, and the server's with `channel`.
    let (status, body) = t
        .get_json(&format!(
            "/api/rolls/roll?user={alice}&expression=attack%202"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expression"], "1d1+2+2");
    assert_eq!(body["total"], 5);
    assert_eq!(body["aliases"], json!(["attack"]));
    let (status, body) = t
        .get_json(&format!(
            "/api/rolls/roll?user={bob}&expression=attack&channel={}",
            t.w.demo.dice
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 101);
    let (status, _) = t
        .get_json(&format!("/api/rolls/roll?user={bob}&expression=attack"))
        .await;
    assert_eq!(
        status, 400,
        "without `channel` only bob's own aliases apply"
    );

    // A program edits a user's own aliases over REST.
    let carol = t.w.demo.carol;
    let r = t
        .http
        .post(format!("{}/api/rolls/aliases?user={carol}", t.base))
        .json(&json!({"name": "Smite", "expression": "{}d1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, listed) = t
        .get_json(&format!("/api/rolls/aliases?user={carol}"))
        .await;
    assert_eq!(listed["aliases"], json!({"smite": "{}d1"}));
    let (_, rolled) = t
        .get_json(&format!(
            "/api/rolls/roll?user={carol}&expression=smite%204"
        ))
        .await;
    assert_eq!(rolled["total"], 4, "{rolled}");
    let r = t
        .http
        .post(format!("{}/api/rolls/aliases?user={carol}", t.base))
        .json(&json!({"name": "d6", "expression": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "d6 is already dice");
    let r = t
        .http
        .delete(format!("{}/api/rolls/aliases/smite?user={carol}", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, listed) = t
        .get_json(&format!("/api/rolls/aliases?user={carol}"))
        .await;
    assert_eq!(listed["aliases"], json!({}));

    // Listing and removing.
    let list = t
        .run(alice, "alias", json!([{"name": "list", "options": []}]))
        .await;
    assert!(
        content(&list).contains("`attack` → `1d1+{1}+{1}`"),
        "{list:?}"
    );
    t.run(
        alice,
        "alias",
        json!([{"name": "remove", "options": [{"name": "name", "value": "Attack"}]}]),
    )
    .await;
    let roll = t.roll(alice, "attack").await;
    assert!(
        content(&roll).contains("= `101`"),
        "the server's again: {roll:?}"
    );
    t.bot.stop().await;
}

#[tokio::test]
async fn saved_rolls_are_edited_and_rolled() {
    let t = start().await;
    let alice = t.w.demo.alice;
    let saved = t
        .run(
            alice,
            "saved",
            json!([{"name": "add", "options": [
                {"name": "name", "value": "Fireball"},
                {"name": "expression", "value": "8d1+2"}]}]),
        )
        .await;
    assert!(content(&saved).contains("Saved `fireball`"), "{saved:?}");
    let bad = t
        .run(
            alice,
            "saved",
            json!([{"name": "add", "options": [
                {"name": "name", "value": "oops"},
                {"name": "expression", "value": "1d20 +"}]}]),
        )
        .await;
    assert!(bad.ephemeral && content(&bad).contains("^"), "{bad:?}");
    let list = t
        .run(alice, "saved", json!([{"name": "list", "options": []}]))
        .await;
    assert!(content(&list).contains("`fireball` → `8d1+2`"), "{list:?}");
    assert!(!content(&list).contains("oops"));
    let used = t
        .run(
            alice,
            "saved",
            json!([{"name": "use", "options": [{"name": "name", "value": "fireball"}]}]),
        )
        .await;
    assert!(!used.ephemeral);
    assert!(content(&used).contains("= `10`"), "{used:?}");
    let doc: String = t.w.redis.conn().get(format!("user_{alice}")).await.unwrap();
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["saved_rolls"], json!({"fireball": "8d1+2"}));
    t.run(
        alice,
        "saved",
        json!([{"name": "remove", "options": [{"name": "name", "value": "fireball"}]}]),
    )
    .await;
    let gone = t
        .run(
            alice,
            "saved",
            json!([{"name": "use", "options": [{"name": "name", "value": "fireball"}]}]),
        )
        .await;
    assert!(
        content(&gone).contains("no saved roll `fireball`"),
        "{gone:?}"
    );
    t.bot.stop().await;
}

// ---- GM and blind rolls -------------------------------------------------------------

#[tokio::test]
async fn gm_and_blind_rolls_reach_the_gm_only() {
    let t = start().await;
    let (alice, bob, carol) = (t.w.demo.alice, t.w.demo.bob, t.w.demo.carol);

    // Without a GM a GM roll is refused before rolling.
    let refused = t
        .run(
            bob,
            "roll",
            json!([{"name": "expression", "value": "1d1+41"}, {"name": "mode", "value": "gm"}]),
        )
        .await;
    assert!(
        refused.ephemeral && content(&refused).contains("no GM"),
        "{refused:?}"
    );

    let set = t
        .run(alice, "gm", json!([{"name": "set", "options": []}]))
        .await;
    assert!(content(&set).contains(&format!("<@{alice}> is now this channel's GM")));
    let taken = t
        .run(carol, "gm", json!([{"name": "set", "options": []}]))
        .await;
    assert!(
        taken.ephemeral && content(&taken).contains("is this channel's GM"),
        "{taken:?}"
    );

    // GM roll: the roller sees it privately, the GM by DM, the channel only that it happened.
    let before = t.w.sim.messages(t.w.demo.dice).len();
    let gm_roll = t
        .run(
            bob,
            "roll",
            json!([{"name": "expression", "value": "1d1+41"}, {"name": "mode", "value": "gm"}]),
        )
        .await;
    assert!(gm_roll.ephemeral, "{gm_roll:?}");
    assert!(content(&gm_roll).contains("= `42`"), "{gm_roll:?}");
    let id = roll_id(content(&gm_roll));
    let dms = t.dms(alice);
    assert_eq!(dms.len(), 1, "{dms:?}");
    assert!(dms[0].content.contains("= `42`") && dms[0].content.contains(&format!("<@{bob}>")));
    let public: Vec<_> = t.w.sim.messages(t.w.demo.dice)[before..]
        .iter()
        .filter(|m| m.flags & 64 == 0)
        .cloned()
        .collect();
    assert_eq!(public.len(), 1, "one notice in the channel: {public:?}");
    assert!(
        public[0]
            .content
            .contains(&format!("<@{bob}> made a GM roll"))
    );
    assert!(!public[0].content.contains("`42`"), "{public:?}");

    // Blind roll: the roller does not see the result either.
    let blind = t
        .run(
            bob,
            "roll",
            json!([{"name": "expression", "value": "1d1+6"}, {"name": "mode", "value": "blind"}]),
        )
        .await;
    assert!(blind.ephemeral);
    assert!(content(&blind).contains("sent to the GM"), "{blind:?}");
    assert!(!content(&blind).contains("= `7`"), "{blind:?}");
    let blind_id = roll_id(content(&blind));
    let dms = t.dms(alice);
    assert_eq!(dms.len(), 2);
    assert!(dms[1].content.contains("blind roll") && dms[1].content.contains("= `7`"));

    // Their ids show the result to the GM (and a GM roll's to its roller), nobody else.
    let (_, as_gm) = t
        .get_json(&format!("/api/rolls/rolls/{blind_id}?user={alice}"))
        .await;
    assert_eq!(as_gm["total"], 7, "{as_gm}");
    let (_, as_roller) = t
        .get_json(&format!("/api/rolls/rolls/{blind_id}?user={bob}"))
        .await;
    assert_eq!(as_roller["hidden"], true, "{as_roller}");
    assert_eq!(as_roller["total"], Value::Null);
    let (_, own) = t
        .get_json(&format!("/api/rolls/rolls/{id}?user={bob}"))
        .await;
    assert_eq!(own["total"], 42);
    let peek = t
        .run(carol, "roll-check", json!([{"name": "id", "value": id}]))
        .await;
    assert!(
        peek.ephemeral && !content(&peek).contains("`42`") && !content(&peek).contains("1d1+41"),
        "{peek:?}"
    );

    // A server's GM role: its members get GM rolls where a channel has no GM.
    t.run(alice, "gm", json!([{"name": "clear", "options": []}]))
        .await;
    let role =
        t.w.sim
            .create_role(t.w.demo.guild, RoleSpec::new("GM", 0))
            .unwrap();
    t.w.sim
        .add_member_role(t.w.demo.guild, carol, role)
        .unwrap();
    let denied = t
        .run(
            bob,
            "gm",
            json!([{"name": "role", "options": [{"name": "role", "value": format!("<@&{role}>")}]}]),
        )
        .await;
    assert!(content(&denied).contains("Manage Server"), "{denied:?}");
    t.make_manager(bob);
    t.run(
        bob,
        "gm",
        json!([{"name": "role", "options": [{"name": "role", "value": format!("<@&{role}>")}]}]),
    )
    .await;
    t.run(
        bob,
        "roll",
        json!([{"name": "expression", "value": "1d1"}, {"name": "mode", "value": "blind"}]),
    )
    .await;
    let carol_dms = t.dms(carol);
    assert_eq!(carol_dms.len(), 1, "{carol_dms:?}");
    assert_eq!(t.dms(alice).len(), 2, "alice is no longer the GM");

    // In a direct message with the bot nobody is made GM, nor told to become one:
    // there is nobody to roll for them. Discord does not offer `/gm` there (it is
    // registered for servers only), while `/roll` is offered in both.
    let dm = t.w.sim.dm_channel(carol).expect("carol's direct messages");
    let registered = t.w.sim.registered_commands();
    let offered = |name: &str| {
        let c = registered.iter().find(|c| c.name == name).expect(name);
        (c.offered_in_guilds(), c.offered_in_dms())
    };
    assert_eq!(offered("gm"), (true, false));
    assert_eq!(offered("roll"), (true, true));
    assert!(matches!(
        t.w.sim
            .run_command(carol, dm, "gm", json!([{"name": "set", "options": []}])),
        Err(discord_sim::SimError::NotOfferedHere { .. })
    ));
    // `/help` there lists what is offered there and names `/gm` apart.
    let help =
        t.w.sim
            .run_command(carol, dm, "help", json!([]))
            .expect("run")
            .final_response(WAIT)
            .await
            .expect("reply");
    let help = content(&help);
    assert!(!help.contains("`/gm set"), "{help}");
    assert!(help.contains("`/roll expression"), "{help}");
    assert!(
        help.contains("In a server's channels there are also `/gm`"),
        "{help}"
    );
    // A registration that offers it there (an older version's, still standing) reaches
    // Tavern, which refuses it.
    let everywhere: Vec<discord::CommandSpec> =
        rolls::feature(&t.w.ctx, rolls::RollsConfig::new(t._dir.path()))
            .commands
            .into_iter()
            .map(|(spec, _)| discord::CommandSpec {
                guild_only: false,
                ..spec
            })
            .collect();
    t.w.ctx
        .discord
        .register_commands(&everywhere)
        .await
        .expect("registered without contexts");
    for options in [
        json!([{"name": "set", "options": []}]),
        json!([{"name": "clear", "options": []}]),
        json!([]),
    ] {
        let refused =
            t.w.sim
                .run_command(carol, dm, "gm", options.clone())
                .expect("run")
                .final_response(WAIT)
                .await
                .expect("reply");
        assert!(
            refused.ephemeral && content(&refused).contains("`/gm` works only in a server"),
            "/gm {options} in a DM: {refused:?}"
        );
    }
    t.bot.stop().await;
}

// ---- roll ids -----------------------------------------------------------------------

#[tokio::test]
async fn every_roll_has_an_id_that_replays_exactly() {
    let t = start().await;
    let alice = t.w.demo.alice;
    let roll = t.roll(alice, "4d6kh3 + 1d20").await;
    let id = roll_id(content(&roll));
    assert_eq!(id.len(), 8);

    let stored: String =
        t.w.redis
            .conn()
            .get(format!("roll_{id}"))
            .await
            .expect("record");
    let record: Value = serde_json::from_str(&stored).unwrap();
    let ttl: i64 = t.w.redis.conn().ttl(format!("roll_{id}")).await.unwrap();
    assert!(
        ttl > 29 * 24 * 3600 && ttl <= 30 * 24 * 3600,
        "kept 30 days: {ttl}"
    );
    assert_eq!(record["user"], alice.to_string());
    assert_eq!(record["expression"], "4d6kh3 + 1d20");
    assert_eq!(
        record["time"], "2025-06-15T16:53:20.000Z",
        "the world's clock"
    );

    // The seed, replayed through the dice crate, gives the same roll.
    let seed: u64 = record["seed"].as_str().unwrap().parse().unwrap();
    let replay = dice::roll("4d6kh3 + 1d20", &mut dice::Rng::seeded(seed)).unwrap();
    assert_eq!(record["result"], replay.render_plain());
    assert_eq!(
        record["total"],
        serde_json::to_value(replay.total()).unwrap()
    );

    let check = t
        .run(
            t.w.demo.bob,
            "roll-check",
            json!([{"name": "id", "value": id.to_lowercase()}]),
        )
        .await;
    assert!(!check.ephemeral, "a public roll's check is public");
    assert!(
        content(&check).contains(&format!("Seed: `{seed}`")),
        "{check:?}"
    );
    assert!(content(&check).contains("the same result"), "{check:?}");

    // REST rolls get ids too, and the lookup answers in JSON.
    let (status, body) = t
        .get_json(&format!("/api/rolls/roll?user={alice}&expression=2d6"))
        .await;
    assert_eq!(status, 200);
    let rest_id = body["id"].as_str().unwrap().to_owned();
    let (status, looked) = t
        .get_json(&format!("/api/rolls/rolls/{rest_id}?user={alice}"))
        .await;
    assert_eq!(status, 200, "{looked}");
    assert_eq!(looked["seed"], body["seed"]);
    assert_eq!(looked["total"], body["total"]);
    assert_eq!(looked["replay_matches"], true);
    let (status, missing) = t
        .get_json(&format!("/api/rolls/rolls/ZZZZZZZZ?user={alice}"))
        .await;
    assert_eq!(status, 404, "an id no roll has: {missing}");
    assert!(
        missing["error"].as_str().unwrap().contains("30 days"),
        "{missing}"
    );
    let (status, _) = t
        .get_json(&format!("/api/rolls/rolls/nope?user={alice}"))
        .await;
    assert_eq!(status, 400);
    t.bot.stop().await;
}

/// `private`, `gm` or `blind` typed as the last word of a public roll would be its
/// label, the roll shown to all: it is refused, saying which option rolls out of sight,
/// and nothing is posted.
#[tokio::test]
async fn a_mode_typed_as_the_label_of_a_public_roll_is_refused() {
    let t = start().await;
    let carol = t.w.demo.carol;
    let public = |t: &Table| {
        t.w.sim
            .messages(t.w.demo.dice)
            .iter()
            .filter(|m| m.flags & 64 == 0)
            .count()
    };
    let before = public(&t);
    for (typed, option) in [
        ("4d6kh3 private", "`private:True`"),
        ("1d20+5 GM", "`mode:gm`"),
        ("1d20 blind", "`mode:blind`"),
    ] {
        let reply = t.roll(carol, typed).await;
        assert!(reply.ephemeral, "{reply:?}");
        let said = content(&reply);
        assert!(
            said.contains("would be this roll's label, and the roll public: nothing was rolled")
                && said.contains(option),
            "{typed}: {said}"
        );
    }
    assert_eq!(public(&t), before, "nothing posted");
    // With the option, the same words roll out of sight as asked.
    let mine = t
        .run(
            carol,
            "roll",
            json!([{"name": "expression", "value": "4d6kh3 private"}, {"name": "private", "value": true}]),
        )
        .await;
    assert!(
        mine.ephemeral && content(&mine).contains("private"),
        "{mine:?}"
    );
    t.bot.stop().await;
}

/// A private roll is its roller's alone: recorded as private, hidden from anyone else
/// who checks its id (in Discord and over REST), and checked by its roller only to them.
#[tokio::test]
async fn a_private_roll_is_checked_by_its_roller_alone() {
    let t = start().await;
    let (bob, carol) = (t.w.demo.bob, t.w.demo.carol);
    let mine = t
        .run(
            carol,
            "roll",
            json!([{"name": "expression", "value": "1d1+18"}, {"name": "private", "value": true}]),
        )
        .await;
    assert!(
        mine.ephemeral && content(&mine).contains("`19`"),
        "{mine:?}"
    );
    let id = roll_id(content(&mine));
    let flagged = t.roll(carol, "p 1d1+30").await;
    assert!(flagged.ephemeral, "{flagged:?}");
    let flagged_id = roll_id(content(&flagged));

    let before = t.w.sim.messages(t.w.demo.dice).len();
    for id in [&id, &flagged_id] {
        let peek = t
            .run(bob, "roll-check", json!([{"name": "id", "value": id}]))
            .await;
        assert!(peek.ephemeral, "{peek:?}");
        assert!(
            content(&peek).contains("only for whoever rolled it")
                && !content(&peek).contains("`19`")
                && !content(&peek).contains("1d1+"),
            "{peek:?}"
        );
        let (status, body) = t
            .get_json(&format!("/api/rolls/rolls/{id}?user={bob}"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["mode"], "private", "{body}");
        assert_eq!(body["hidden"], true, "{body}");
        assert_eq!(body["total"], Value::Null, "{body}");
        assert_eq!(body["expression"], "", "{body}");
    }

    let own = t
        .run(carol, "roll-check", json!([{"name": "id", "value": id}]))
        .await;
    assert!(own.ephemeral, "only to its roller: {own:?}");
    assert!(content(&own).contains("1d1+18"), "{own:?}");
    let (_, body) = t
        .get_json(&format!("/api/rolls/rolls/{id}?user={carol}"))
        .await;
    assert_eq!(
        (body["hidden"].clone(), body["total"].clone()),
        (json!(false), json!(19))
    );
    let public: Vec<_> = t.w.sim.messages(t.w.demo.dice)[before..]
        .iter()
        .filter(|m| m.flags & 64 == 0)
        .cloned()
        .collect();
    assert!(
        public.is_empty(),
        "nothing posted in the channel: {public:?}"
    );
    t.bot.stop().await;
}

/// An alias that does not roll is refused when added, as a saved roll is, in the
/// same words; one with placeholders or other aliases is checked filled in.
#[tokio::test]
async fn an_alias_that_does_not_roll_is_refused_like_a_saved_roll() {
    let t = start().await;
    let alice = t.w.demo.alice;
    let add = |cmd: &'static str, name: &'static str, expression: &'static str| {
        t.run(
            alice,
            cmd,
            json!([{"name": "add", "options": [{"name": "name", "value": name}, {"name": "expression", "value": expression}]}]),
        )
    };
    let saved = add("saved", "bad", "1d20+").await;
    let alias = add("alias", "bad", "1d20+").await;
    assert!(alias.ephemeral, "{alias:?}");
    assert_eq!(content(&alias), content(&saved), "the same refusal");
    assert!(content(&alias).contains("ends too early"), "{alias:?}");
    let stored: Option<String> = t.w.redis.conn().get(format!("user_{alice}")).await.unwrap();
    assert!(
        !stored.unwrap_or_default().contains("1d20+\""),
        "nothing saved"
    );

    let hit = add("alias", "hit", "1d20+{} >= {}").await;
    assert!(content(&hit).contains("Saved `hit`"), "{hit:?}");
    let uses = add("alias", "strong", "hit 5 15").await;
    assert!(content(&uses).contains("Saved `strong`"), "{uses:?}");
    t.bot.stop().await;
}

/// `/roll-check` shows what the user typed as written: the expression in a code span
/// its backticks cannot end, the label escaped, dropped dice struck through as `/roll`
/// shows them (not a literal `~1~`).
#[tokio::test]
async fn a_roll_check_shows_the_users_text_as_written() {
    let t = start().await;
    let expression = "(Sneak __x__ ||y||) 2d1kh1 + 1d1 # a`b";
    let roll = t.roll(t.w.demo.alice, expression).await;
    assert!(content(&roll).contains("roll id"), "{roll:?}");
    let id = roll_id(content(&roll));
    let check = t
        .run(
            t.w.demo.bob,
            "roll-check",
            json!([{"name": "id", "value": id}]),
        )
        .await;
    let text = content(&check);
    assert!(
        text.contains("Expression: ``(Sneak __x__ ||y||) 2d1kh1 + 1d1 # a`b``\n"),
        "{check:?}"
    );
    assert!(
        text.contains("Sneak \\_\\_x\\_\\_ \\|\\|y\\|\\|"),
        "{check:?}"
    );
    assert!(!text.contains("Sneak __x__ ||y||**"), "{check:?}");
    assert!(text.contains("(**1**, ~~**1**~~)"), "{check:?}");
    assert!(!text.contains("~1~"), "{check:?}");
    assert!(text.contains("the same result"), "{check:?}");
    t.bot.stop().await;
}

// ---- the odds chart -----------------------------------------------------------------

/// The bars of a chart: the colours of the runs of bar pixels just above the x axis.
fn bars(png_bytes: &[u8]) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(
        (info.width, info.height),
        (rolls::chart::WIDTH, rolls::chart::HEIGHT)
    );
    let channels = info.line_size / info.width as usize;
    let y = (rolls::chart::PLOT_TOP + rolls::chart::PLOT_HEIGHT - 1) as usize;
    let row = &buf[y * info.line_size..(y + 1) * info.line_size];
    let mut runs: Vec<[u8; 3]> = Vec::new();
    let mut previous: Option<[u8; 3]> = None;
    for x in rolls::chart::PLOT_LEFT as usize..info.width as usize {
        let px = [
            row[x * channels],
            row[x * channels + 1],
            row[x * channels + 2],
        ];
        let is_bar = px == rolls::chart::BAR || px == rolls::chart::PASS;
        if is_bar && previous != Some(px) {
            runs.push(px);
        }
        previous = is_bar.then_some(px);
    }
    runs
}

#[tokio::test]
async fn odds_come_with_a_chart_shading_the_pass_chance() {
    let t = start().await;
    let reply = t
        .run(
            t.w.demo.alice,
            "odds",
            json!([{"name": "expression", "value": "1d20+5 >= 15"}]),
        )
        .await;
    assert!(content(&reply).contains("55.00%"), "{reply:?}");
    let message =
        t.w.sim
            .message(t.w.demo.dice, reply.message_id.expect("a message"))
            .expect("stored");
    assert_eq!(message.attachments.len(), 1, "{message:?}");
    let attachment = &message.attachments[0];
    assert_eq!(attachment.filename, "odds.png");
    let png_bytes = t.w.sim.attachment_data(attachment.id).expect("bytes");
    let runs = bars(&png_bytes);
    assert_eq!(runs.len(), 20, "one bar per outcome (6..=25)");
    let shaded: Vec<bool> = runs.iter().map(|c| *c == rolls::chart::PASS).collect();
    assert_eq!(
        shaded,
        [vec![false; 9], vec![true; 11]].concat(),
        "15..=25 pass"
    );

    // The REST API draws the same chart.
    let r = t
        .get(&format!(
            "/api/rolls/odds?user={}&expression=1d20%2B5%20%3E%3D%2015&format=png",
            t.w.demo.alice
        ))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let body = r.bytes().await.unwrap();
    assert_eq!(&body[..], &png_bytes[..]);

    // No comparison: every bar plain. Estimated odds: no chart, said so.
    let plain = t
        .get(&format!(
            "/api/rolls/odds?user={}&expression=3d6&format=png",
            t.w.demo.alice
        ))
        .await
        .bytes()
        .await
        .unwrap();
    let runs = bars(&plain);
    assert_eq!(runs.len(), 16);
    assert!(runs.iter().all(|c| *c == rolls::chart::BAR));
    let (status, body) = t
        .get_json(&format!(
            "/api/rolls/odds?user={}&expression=3d6&format=gif",
            t.w.demo.alice
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    t.bot.stop().await;
}
