//! The combat tracker end to end: discord-sim, the real router and real Redis. One
//! fight played round by round checks hit points, temporary hit points, damage rolls,
//! concentration, effect durations, hidden combatants, groups, `prev`, `move`,
//! `skip`, rerolling each round, turn mentions and their `allowed_mentions`, and that
//! the tracker stays one message edited in place the whole fight.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use discord_sim::{InteractionReply, Snowflake};
use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::{TestBot, WAIT, World};

async fn start() -> (World, TestBot, tempfile::TempDir) {
    let world = World::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let feature = rolls::feature(&world.ctx, rolls::RollsConfig::new(dir.path()));
    let bot = TestBot::spawn(&world, vec![feature]).await;
    (world, bot, dir)
}

async fn run(w: &World, user: Snowflake, name: &str, options: Value) -> InteractionReply {
    w.sim
        .run_command(user, w.demo.dice, name, options)
        .expect("run")
        .final_response(WAIT)
        .await
        .expect("reply")
}

/// `/init sub key:value …`.
async fn init(
    w: &World,
    user: Snowflake,
    sub: &str,
    options: &[(&str, Value)],
) -> InteractionReply {
    let options: Vec<Value> = options
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    run(w, user, "init", json!([{"name": sub, "options": options}])).await
}

/// `/character add name:{name}` for `user`.
async fn character(w: &World, user: Snowflake, name: &str) -> InteractionReply {
    run(
        w,
        user,
        "character",
        json!([{"name": "add", "options": [{"name": "name", "value": name}]}]),
    )
    .await
}

fn content(reply: &InteractionReply) -> &str {
    reply.content.as_deref().unwrap_or_default()
}

/// Every tracker message in the channel (messages the bot posted, not the private
/// `/init view` answers).
fn trackers(w: &World) -> Vec<discord_sim::Message> {
    w.sim
        .messages(w.demo.dice)
        .into_iter()
        .filter(|m| m.content.starts_with("**Initiative**") && m.interaction_metadata.is_none())
        .collect()
}

/// The id of the tracker message's Next button.
fn next_button(w: &World, id: Snowflake) -> String {
    w.sim
        .message(w.demo.dice, id)
        .expect("tracker")
        .component_summaries()
        .into_iter()
        .filter_map(|c| c.custom_id)
        .find(|c| c.starts_with("rolls:init:next"))
        .expect("a Next button")
}

/// The one tracker message's content.
fn tracker(w: &World, id: Snowflake) -> String {
    w.sim.message(w.demo.dice, id).expect("tracker").content
}

async fn stored(w: &World) -> Value {
    let mut conn = w.redis.conn();
    let raw: String = conn
        .get(format!("init_{}", u64::from(w.demo.dice)))
        .await
        .expect("init");
    serde_json::from_str(&raw).expect("json")
}

/// A turn change notifies exactly `user`: the mention is in the content and
/// `allowed_mentions` lets only that user through.
fn notifies_only(reply: &InteractionReply, user: Snowflake) {
    assert!(
        content(reply).starts_with(&format!("<@{}>", u64::from(user))),
        "{reply:?}"
    );
    let allowed = reply
        .allowed_mentions
        .as_ref()
        .expect("allowed_mentions sent");
    assert_eq!(allowed["parse"], json!([]), "{allowed}");
    assert_eq!(
        allowed["users"],
        json!([u64::from(user).to_string()]),
        "{allowed}"
    );
    assert_eq!(reply.pings.users, vec![user], "{reply:?}");
    assert!(!reply.pings.everyone);
}

fn hp_of(tracker: &Value, name: &str) -> i64 {
    tracker["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["hp"].as_i64())
        .expect("hp")
}

#[tokio::test]
async fn a_whole_fight_round_by_round() {
    let (w, bot, _dir) = start().await;
    let (alice, bob, carol) = (w.demo.alice, w.demo.bob, w.demo.carol);

    // ---- set up: two players, a hidden assassin, a group of goblins -----------------
    character(&w, alice, "Cleric").await;
    character(&w, bob, "Fighter").await;
    init(
        &w,
        alice,
        "join",
        &[("character", json!("Cleric")), ("roll", json!("20"))],
    )
    .await;
    let id = trackers(&w).first().expect("posted").id;
    init(
        &w,
        bob,
        "join",
        &[("character", json!("Fighter")), ("roll", json!("15"))],
    )
    .await;
    let added = init(
        &w,
        carol,
        "add",
        &[("name", json!("goblin x3 group:goblins hp:7 ac:15 init:10"))],
    )
    .await;
    assert!(
        content(&added)
            .contains("**goblin 1**, **goblin 2**, **goblin 3** joined initiative with 10"),
        "{added:?}"
    );
    let hidden = init(
        &w,
        carol,
        "add",
        &[
            ("name", json!("assassin hp:40 ac:17 init:12")),
            ("hidden", json!(true)),
        ],
    )
    .await;
    assert!(
        hidden.ephemeral,
        "a hidden combatant is announced to its adder only: {hidden:?}"
    );
    let shown = tracker(&w, id);
    assert!(
        !shown.contains("assassin") && !shown.contains("HP 40"),
        "{shown}"
    );
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[1].starts_with("▶ ` 20` Cleric"), "{shown}");
    assert!(lines[2].contains("` 15` Fighter"), "{shown}");
    assert!(lines[3].contains("` 12` ???"), "{shown}");
    assert!(lines[4].contains("` 10` goblins"), "{shown}");
    assert!(lines[5].contains("◦ goblin 1 — HP 7/7 · AC 15"), "{shown}");

    // The adder sees the assassin in a private view; others do not.
    let view = init(&w, carol, "view", &[]).await;
    assert!(view.ephemeral, "{view:?}");
    assert!(
        content(&view).contains("assassin") && content(&view).contains("HP 40/40"),
        "{view:?}"
    );
    let view = init(&w, alice, "view", &[]).await;
    assert!(!content(&view).contains("assassin"), "{view:?}");

    // ---- round 1, the cleric's turn: hit points, temporary hit points, effects ----
    let hp = init(
        &w,
        alice,
        "hp",
        &[
            ("name", json!("cleric")),
            ("value", json!("30")),
            ("temp", json!(5)),
        ],
    )
    .await;
    assert!(content(&hp).contains("HP 30/30 +5 temp"), "{hp:?}");
    init(
        &w,
        alice,
        "opt",
        &[("name", json!("Cleric")), ("ac", json!(16))],
    )
    .await;
    let bless = init(
        &w,
        alice,
        "effect",
        &[
            ("action", json!("add")),
            ("name", json!("Fighter")),
            ("effect", json!("Blessed")),
            ("duration", json!(10)),
            ("by", json!("Cleric")),
            ("concentration", json!(true)),
        ],
    )
    .await;
    assert!(
        content(&bless).contains("concentration of Cleric"),
        "{bless:?}"
    );
    init(
        &w,
        alice,
        "effect",
        &[
            ("action", json!("add")),
            ("name", json!("Fighter")),
            ("effect", json!("Guided")),
            ("duration", json!(1)),
            ("by", json!("Cleric")),
        ],
    )
    .await;
    assert!(
        tracker(&w, id).contains("HP 30/30 +5 temp · AC 16"),
        "{}",
        tracker(&w, id)
    );

    // Damage: temporary hit points first, then a concentration prompt with its DC.
    let hit = init(
        &w,
        carol,
        "damage",
        &[("name", json!("Cleric")), ("amount", json!("8"))],
    )
    .await;
    let text = content(&hit);
    assert!(text.contains("takes 8 damage"), "{text}");
    assert!(text.contains("5 taken by temporary hit points"), "{text}");
    assert!(text.contains("HP 27/30"), "{text}");
    assert!(
        text.contains("concentrating on Blessed") && text.contains("**DC 10**"),
        "{text}"
    );
    assert!(
        tracker(&w, id).contains("Blessed"),
        "no save rolled: it holds"
    );

    // With a save modifier the save is rolled: +30 always succeeds, -30 always fails.
    // The answer says what changed, and only that.
    let opt = init(
        &w,
        alice,
        "opt",
        &[("name", json!("Cleric")), ("con-save", json!(30))],
    )
    .await;
    assert_eq!(
        content(&opt),
        "**Cleric**: Constitution save modifier is now +30 (concentration saves are rolled).",
        "{opt:?}"
    );
    let hit = init(
        &w,
        carol,
        "damage",
        &[("name", json!("Cleric")), ("amount", json!("1"))],
    )
    .await;
    assert!(
        content(&hit).contains("**success**, concentration holds"),
        "{hit:?}"
    );
    assert!(tracker(&w, id).contains("Blessed"));
    init(
        &w,
        alice,
        "opt",
        &[("name", json!("Cleric")), ("con-save", json!(-30))],
    )
    .await;
    let hit = init(
        &w,
        carol,
        "damage",
        &[("name", json!("Cleric")), ("amount", json!("2d6+3"))],
    )
    .await;
    let text = content(&hit);
    assert!(
        text.contains("**failure**") && text.contains("Blessed on Fighter ended"),
        "{text}"
    );
    let hp = hp_of(&stored(&w).await, "Cleric");
    assert!((11..=21).contains(&hp), "{hp}");
    assert!(!tracker(&w, id).contains("Blessed"), "{}", tracker(&w, id));
    let healed = init(
        &w,
        alice,
        "heal",
        &[("name", json!("Cleric")), ("amount", json!("100"))],
    )
    .await;
    assert!(content(&healed).contains("HP 30/30"), "{healed:?}");
    let bad = init(
        &w,
        alice,
        "heal",
        &[("name", json!("Nobody")), ("amount", json!("1"))],
    )
    .await;
    assert!(
        bad.ephemeral && content(&bad).contains("no combatant `Nobody`"),
        "{bad:?}"
    );

    // ---- round 1: the fighter, the assassin, the goblins -----------------------------
    let next = init(&w, alice, "next", &[]).await;
    notifies_only(&next, bob);
    assert!(
        content(&next).contains("**Fighter**'s turn (round 1)"),
        "{next:?}"
    );
    // Placed during the fighter's turn: one round, so it ends at the end of the
    // fighter's turn in round 2.
    let fear = init(
        &w,
        bob,
        "effect",
        &[
            ("action", json!("add")),
            ("name", json!("goblin 1")),
            ("effect", json!("Frightened")),
            ("duration", json!(1)),
        ],
    )
    .await;
    assert!(
        content(&fear).contains("until the end of Fighter's turn in round 2"),
        "{fear:?}"
    );
    init(
        &w,
        bob,
        "note",
        &[("name", json!("Fighter")), ("text", json!("has the map"))],
    )
    .await;
    assert!(
        tracker(&w, id).contains("📝 has the map"),
        "{}",
        tracker(&w, id)
    );

    let next = init(&w, bob, "next", &[]).await;
    notifies_only(&next, carol);
    assert!(content(&next).contains("**???**'s turn"), "{next:?}");
    assert!(!content(&next).contains("assassin"), "{next:?}");
    let stab = init(
        &w,
        carol,
        "damage",
        &[("name", json!("assassin")), ("amount", json!("5"))],
    )
    .await;
    assert!(
        stab.ephemeral,
        "damage to a hidden combatant is told to its adder: {stab:?}"
    );
    assert!(!tracker(&w, id).contains("HP 35"), "{}", tracker(&w, id));

    let next = init(&w, carol, "next", &[]).await;
    notifies_only(&next, carol);
    assert!(content(&next).contains("**goblins**'s turn"), "{next:?}");
    assert!(
        tracker(&w, id).contains("▶ ` 10` goblins"),
        "{}",
        tracker(&w, id)
    );

    // ---- round 2: durations end on the right turn -------------------------------------
    let next = init(&w, carol, "next", &[]).await;
    notifies_only(&next, alice);
    assert!(content(&next).contains("(round 2)"), "{next:?}");
    assert!(!content(&next).contains("Ended"), "{next:?}");
    let shown = tracker(&w, id);
    assert!(
        shown.contains("Guided") && shown.contains("Frightened"),
        "{shown}"
    );

    // The cleric's turn ends: Guided (one round, by the cleric) ends.
    let next = init(&w, alice, "next", &[]).await;
    assert!(
        content(&next).contains("Ended: Guided on Fighter."),
        "{next:?}"
    );
    let shown = tracker(&w, id);
    assert!(
        !shown.contains("Guided") && shown.contains("Frightened"),
        "{shown}"
    );

    // The fighter's turn ends: Frightened (one round, by the fighter) ends.
    let next = init(&w, bob, "next", &[]).await;
    assert!(
        content(&next).contains("Ended: Frightened on goblin 1."),
        "{next:?}"
    );
    assert!(
        !tracker(&w, id).contains("Frightened"),
        "{}",
        tracker(&w, id)
    );

    // ---- prev, move, reroll, skip ----------------------------------------------------------
    let back = init(&w, carol, "prev", &[]).await;
    notifies_only(&back, bob);
    assert!(
        !tracker(&w, id).contains("Frightened"),
        "ended effects stay ended"
    );
    let first = init(&w, alice, "prev", &[]).await;
    notifies_only(&first, alice);

    let moved = init(
        &w,
        carol,
        "move",
        &[("name", json!("goblin 2")), ("initiative", json!(25))],
    )
    .await;
    assert!(
        content(&moved).contains("**goblins** moved to initiative 25"),
        "{moved:?}"
    );
    let shown = tracker(&w, id);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[1].starts_with("• ` 25` goblins"), "{shown}");
    assert!(
        shown.contains("▶ ` 20` Cleric"),
        "the turn stays with the cleric: {shown}"
    );

    // An ogre rolls 1d20+100; moved to the bottom by hand, a reroll puts it back on top.
    init(&w, carol, "add", &[("name", json!("ogre init:1d20+100"))]).await;
    init(
        &w,
        carol,
        "move",
        &[("name", json!("ogre")), ("initiative", json!(-50))],
    )
    .await;
    assert!(
        tracker(&w, id)
            .trim_end()
            .lines()
            .last()
            .expect("line")
            .contains("ogre")
    );
    let on = init(&w, carol, "reroll", &[("mode", json!("on"))]).await;
    assert!(content(&on).contains("every round"), "{on:?}");
    assert!(tracker(&w, id).contains("rerolled each round"));
    // Cleric, Fighter, ???, ogre: the fourth Next starts round 3, rerolled.
    for _ in 0..3 {
        init(&w, carol, "next", &[]).await;
    }
    let top = init(&w, carol, "next", &[]).await;
    assert!(
        content(&top).contains("Round 3: initiative was rolled again"),
        "{top:?}"
    );
    let shown = tracker(&w, id);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[0].contains("round 3"), "{shown}");
    assert!(
        lines[1].starts_with("▶") && lines[1].contains("ogre"),
        "{shown}"
    );
    let ogre = stored(&w).await["entries"][0]["initiative"]
        .as_i64()
        .expect("int");
    assert!((101..=120).contains(&ogre), "{ogre}");
    init(&w, carol, "reroll", &[("mode", json!("off"))]).await;

    let skip = init(&w, carol, "skip", &[("rounds", json!(2))]).await;
    assert!(content(&skip).contains("Skipped to round 5"), "{skip:?}");
    assert!(tracker(&w, id).starts_with("**Initiative** — round 5"));

    // The Next button edits the tracker in place and announces the turn beside it,
    // notifying only the one whose turn it is.
    let before = w.sim.messages(w.demo.dice).len();
    let pressed = w
        .sim
        .click_button(alice, w.demo.dice, id, &next_button(&w, id))
        .expect("click")
        .final_response(WAIT)
        .await
        .expect("reply");
    assert_eq!(pressed.callback_type, 7, "{pressed:?}");
    let announced = testkit::eventually("the turn is announced", || {
        let w = &w;
        async move {
            w.sim
                .messages(w.demo.dice)
                .into_iter()
                .skip(before)
                .find(|m| m.content.contains("'s turn"))
        }
    })
    .await;
    let up = stored(&w).await;
    let turn = up["turn"].as_u64().expect("turn") as usize;
    let user: u64 = up["entries"][turn]["user"]
        .as_str()
        .expect("user")
        .parse()
        .expect("id");
    assert_eq!(
        announced.pings.users,
        vec![Snowflake::from(user)],
        "{announced:?}"
    );
    assert_eq!(
        announced.allowed_mentions.as_ref().expect("sent")["users"],
        json!([user.to_string()])
    );

    // ---- one tracker message the whole fight ------------------------------------------
    let all = trackers(&w);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, id);
    bot.stop().await;
}

#[tokio::test]
async fn bounds_and_bad_input_are_refused_in_words() {
    let (w, bot, _dir) = start().await;
    let carol = w.demo.carol;
    let reply = init(&w, carol, "add", &[("name", json!("goblin x21"))]).await;
    assert!(
        reply.ephemeral && content(&reply).contains("between 1 and 20"),
        "{reply:?}"
    );
    let reply = init(&w, carol, "add", &[("name", json!("goblin colour:green"))]).await;
    assert!(
        content(&reply).contains("unknown setting `colour:`"),
        "{reply:?}"
    );
    init(&w, carol, "add", &[("name", json!("orc x18 init:5"))]).await;
    let reply = init(&w, carol, "add", &[("name", json!("troll x3"))]).await;
    assert!(content(&reply).contains("3 more do not fit"), "{reply:?}");
    let reply = init(
        &w,
        carol,
        "damage",
        &[("name", json!("orc 1")), ("amount", json!("1d6 +"))],
    )
    .await;
    assert!(reply.ephemeral, "{reply:?}");
    let reply = init(
        &w,
        carol,
        "note",
        &[("name", json!("orc 1")), ("text", json!("x".repeat(121)))],
    )
    .await;
    assert!(content(&reply).contains("at most 120"), "{reply:?}");
    for i in 0..8 {
        init(
            &w,
            carol,
            "effect",
            &[
                ("action", json!("add")),
                ("name", json!("orc 1")),
                ("effect", json!(format!("e{i}"))),
            ],
        )
        .await;
    }
    let reply = init(
        &w,
        carol,
        "effect",
        &[
            ("action", json!("add")),
            ("name", json!("orc 1")),
            ("effect", json!("ninth")),
        ],
    )
    .await;
    assert!(content(&reply).contains("8 effects"), "{reply:?}");
    let reply = init(&w, carol, "prev", &[]).await;
    assert!(content(&reply).contains("first turn"), "{reply:?}");
    assert_eq!(trackers(&w).len(), 1);
    bot.stop().await;
}

#[tokio::test]
async fn characters_take_initiative_expressions_and_import_feyres() {
    let (w, bot, _dir) = start().await;
    let alice = w.demo.alice;
    // An old document with an integer modifier still reads.
    {
        let mut conn = w.redis.conn();
        let _: () = conn
            .set(
                format!("user_{}", u64::from(alice)),
                r#"{"characters":{"Old":{"initiative_modifier":2}},"active_character":"Old","pets":["cat"]}"#,
            )
            .await
            .expect("set");
    }
    let list = run(&w, alice, "character", json!([{"name": "list"}])).await;
    assert!(content(&list).contains("★ Old (initiative +2)"), "{list:?}");

    let added = run(
        &w,
        alice,
        "character",
        json!([{"name": "add", "options": [{"name": "name", "value": "Vex"}, {"name": "initiative", "value": "2d20kh1+3"}]}]),
    )
    .await;
    assert!(
        content(&added).contains("Saved **Vex** (initiative 2d20kh1+3)"),
        "{added:?}"
    );
    let bad = run(
        &w,
        alice,
        "character",
        json!([{"name": "add", "options": [{"name": "name", "value": "Bad"}, {"name": "initiative", "value": "2d20+"}]}]),
    )
    .await;
    assert!(bad.ephemeral, "{bad:?}");

    let joined = init(&w, alice, "join", &[("character", json!("vex"))]).await;
    assert!(content(&joined).contains("**Vex** joined"), "{joined:?}");
    let entry = &stored(&w).await["entries"][0];
    assert_eq!(entry["init_expr"], "2d20kh1+3");
    assert!(
        (4..=23).contains(&entry["initiative"].as_i64().expect("int")),
        "{entry}"
    );

    // Feyre's user document, and the text of a character list.
    let feyre = r#"{"characters":{"Pike":{"initiative_modifier":-1},"Grog":{"initiative_modifier":0}},"active_character":"Pike"}"#;
    let imported = run(
        &w,
        alice,
        "character",
        json!([{"name": "import", "options": [{"name": "data", "value": feyre}]}]),
    )
    .await;
    assert!(
        content(&imported).contains("Imported 2 characters"),
        "{imported:?}"
    );
    let text = "★ Scanlan (initiative +4)\n• Keyleth: 1d20+2";
    let imported = run(
        &w,
        alice,
        "character",
        json!([{"name": "import", "options": [{"name": "data", "value": text}]}]),
    )
    .await;
    assert!(
        content(&imported).contains("**Scanlan**, **Keyleth**"),
        "{imported:?}"
    );
    let list = run(&w, alice, "character", json!([{"name": "list"}])).await;
    let shown = content(&list);
    for line in [
        "• Pike (initiative -1)",
        "• Keyleth (initiative 1d20+2)",
        "• Vex (initiative 2d20kh1+3)",
        "★ Old",
    ] {
        assert!(shown.contains(line), "{line}: {shown}");
    }
    // All or nothing: four more would make ten.
    let too_many = run(
        &w,
        alice,
        "character",
        json!([{"name": "import", "options": [{"name": "data", "value": "A +1\nB +2\nC +3\nD +4"}]}]),
    )
    .await;
    assert!(
        too_many.ephemeral && content(&too_many).contains("at most 9"),
        "{too_many:?}"
    );
    let doc: Value = {
        let mut conn = w.redis.conn();
        let raw: String = conn
            .get(format!("user_{}", u64::from(alice)))
            .await
            .expect("get");
        serde_json::from_str(&raw).expect("json")
    };
    assert_eq!(doc["characters"].as_object().expect("object").len(), 6);
    assert_eq!(doc["pets"][0], "cat", "unknown fields survive");
    assert_eq!(doc["characters"]["Old"], json!({"initiative_modifier": 2}));
    bot.stop().await;
}

/// The id on the last line of a reply (`-# roll id `X``), if any.
fn roll_ids(text: &str) -> Vec<String> {
    text.lines()
        .rfind(|l| l.starts_with("-# roll id"))
        .map(|l| l.split('`').skip(1).step_by(2).map(str::to_owned).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_trackers_rolls_have_ids_that_replay_exactly() {
    let (w, bot, _dir) = start().await;
    let (alice, bob) = (w.demo.alice, w.demo.bob);
    let joined = init(&w, alice, "join", &[("roll", json!("1d20+2"))]).await;
    let ids = roll_ids(content(&joined));
    assert_eq!(ids.len(), 1, "{joined:?}");
    // A number is not a roll: no id.
    let fixed = init(&w, bob, "add", &[("name", json!("ogre hp:30 init:9"))]).await;
    assert!(roll_ids(content(&fixed)).is_empty(), "{fixed:?}");
    let hit = init(
        &w,
        bob,
        "damage",
        &[("name", json!("ogre")), ("amount", json!("2d6+3"))],
    )
    .await;
    let damage = roll_ids(content(&hit));
    assert_eq!(damage.len(), 1, "{hit:?}");

    for (id, expression) in [(&ids[0], "1d20+2"), (&damage[0], "2d6+3")] {
        let mut conn = w.redis.conn();
        let raw: String = conn.get(format!("roll_{id}")).await.expect("recorded");
        let record: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(record["expression"], expression, "{record}");
        let ttl: i64 = conn.ttl(format!("roll_{id}")).await.unwrap();
        assert!(ttl > 29 * 24 * 3600, "kept 30 days: {ttl}");
        let check = run(
            &w,
            alice,
            "roll-check",
            json!([{"name": "id", "value": id}]),
        )
        .await;
        let text = content(&check);
        assert!(text.contains(expression), "{text}");
        assert!(
            text.contains("Replayed with its seed: the same result."),
            "the check replays the seed: {text}"
        );
    }
    // The damage taken is the recorded roll's total.
    let mut conn = w.redis.conn();
    let raw: String = conn.get(format!("roll_{}", damage[0])).await.unwrap();
    let total = serde_json::from_str::<Value>(&raw).unwrap()["total"]
        .as_i64()
        .unwrap();
    assert!(
        content(&hit).contains(&format!("takes {total} damage")),
        "{hit:?}"
    );
    bot.stop().await;
}

/// A hidden combatant is as if absent for everyone but its adder: a player can
/// neither read its hit points (`heal amount:0`), unhide it, act on it nor learn
/// from `/init add` that the name is taken (they add their own combatant of that
/// name, and each of the two means their own by it).
#[tokio::test]
async fn a_hidden_combatant_is_absent_for_everyone_but_its_adder() {
    let (w, _bot, _dir) = start().await;
    let (alice, carol) = (w.demo.alice, w.demo.carol);
    init(
        &w,
        carol,
        "add",
        &[
            ("name", json!("assassin hp:40 ac:17 init:12")),
            ("hidden", json!(true)),
        ],
    )
    .await;
    let absent = "There is no combatant `assassin`";

    let heal = init(
        &w,
        alice,
        "heal",
        &[("name", json!("assassin")), ("amount", json!("0"))],
    )
    .await;
    assert!(content(&heal).contains(absent), "{heal:?}");
    assert!(!content(&heal).contains("40"), "{heal:?}");
    for (sub, options) in [
        ("opt", vec![("hidden", json!(false))]),
        ("hp", vec![("value", json!("1"))]),
        ("damage", vec![("amount", json!("5"))]),
        ("note", vec![("text", json!("found you"))]),
        ("move", vec![("initiative", json!(30))]),
        (
            "effect",
            vec![("action", json!("add")), ("effect", json!("Marked"))],
        ),
    ] {
        let mut options = options;
        options.push(("name", json!("assassin")));
        let reply = init(&w, alice, sub, &options).await;
        assert!(content(&reply).contains(absent), "{sub}: {reply:?}");
    }
    // Nor may a player name it as the one who placed an effect.
    character(&w, alice, "Cleric").await;
    init(
        &w,
        alice,
        "join",
        &[("character", json!("Cleric")), ("roll", json!("5"))],
    )
    .await;
    let by = init(
        &w,
        alice,
        "effect",
        &[
            ("action", json!("add")),
            ("name", json!("Cleric")),
            ("effect", json!("Cursed")),
            ("by", json!("assassin")),
        ],
    )
    .await;
    assert!(content(&by).contains(absent), "{by:?}");

    let entry = |t: &Value, hidden: bool| -> Value {
        t["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["name"] == "assassin" && e["hidden"].as_bool().unwrap_or(false) == hidden)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let t = stored(&w).await;
    let assassin = entry(&t, true);
    assert_eq!(assassin["hp"], 40, "{t}");
    assert_eq!(assassin["initiative"], 12, "{t}");
    assert!(
        assassin.get("note").is_none() && assassin.get("effects").is_none(),
        "{t}"
    );

    // The name is not taken for alice: she adds her own assassin.
    let added = init(&w, alice, "add", &[("name", json!("assassin hp:9 init:3"))]).await;
    assert!(
        content(&added).contains("**assassin** joined initiative with 3"),
        "{added:?}"
    );
    let hp = init(
        &w,
        alice,
        "heal",
        &[("name", json!("assassin")), ("amount", json!("0"))],
    )
    .await;
    assert!(content(&hp).contains("HP 9/9"), "{hp:?}");
    // Carol still means hers, and may unhide it.
    let hp = init(
        &w,
        carol,
        "heal",
        &[("name", json!("assassin")), ("amount", json!("0"))],
    )
    .await;
    assert!(content(&hp).contains("HP 40/40"), "{hp:?}");
    let shown = init(
        &w,
        carol,
        "opt",
        &[("name", json!("assassin")), ("hidden", json!(false))],
    )
    .await;
    assert!(content(&shown).contains("shown"), "{shown:?}");
    let t = stored(&w).await;
    assert_eq!(entry(&t, false)["hp"], 40, "{t}");
}

#[tokio::test]
async fn a_channel_where_discord_refuses_the_tracker_says_which_permission_is_missing() {
    let (w, _bot, _dir) = start().await;
    // Discord refuses the bot's post in the channel: it cannot see or write there.
    w.sim.inject_fault(
        discord_sim::RouteMatch::new("POST", format!("/channels/{}/messages", w.demo.dice)),
        discord_sim::Fault::Status(403),
        1,
    );
    let refused = init(
        &w,
        w.demo.alice,
        "add",
        &[("name", json!("goblin init:12"))],
    )
    .await;
    assert_eq!(content(&refused), discord::MISSING_PERMISSION);
    assert!(refused.ephemeral, "{refused:?}");
}

/// `/init get` posts the tracker again at the bottom: the older message keeps its
/// text but loses its buttons, and a press on an older message that still shows them
/// (its edit failed) answers privately where the tracker is, changing nothing, so
/// the reposted message stays the one kept up to date.
#[tokio::test]
async fn only_the_latest_tracker_messages_buttons_act() {
    let (w, bot, _dir) = start().await;
    let (alice, bob) = (w.demo.alice, w.demo.bob);
    for (name, initiative) in [("A", "15"), ("B", "10"), ("C", "5")] {
        init(
            &w,
            alice,
            "add",
            &[("name", json!(name)), ("initiative", json!(initiative))],
        )
        .await;
    }
    let first = trackers(&w)[0].id;

    // A repost takes the buttons off the message it replaces.
    init(&w, bob, "get", &[]).await;
    let all = trackers(&w);
    assert_eq!(all.len(), 2, "{all:?}");
    let second = all
        .iter()
        .map(|m| m.id)
        .find(|id| *id != first)
        .expect("new");
    let retired = w.sim.message(w.demo.dice, first).expect("still there");
    assert!(retired.component_summaries().is_empty(), "{retired:?}");
    assert!(retired.content.contains("moved"), "{}", retired.content);

    // A repost whose clean-up Discord refused leaves buttons on the old one.
    let second_next = next_button(&w, second);
    w.sim.inject_fault(
        discord_sim::RouteMatch::new("PATCH", "/channels/"),
        discord_sim::Fault::Status(404),
        1,
    );
    init(&w, bob, "get", &[]).await;
    w.sim.clear_faults();
    let third = trackers(&w)
        .iter()
        .map(|m| m.id)
        .find(|id| *id != first && *id != second)
        .expect("newest");
    let pressed = w
        .sim
        .click_button(alice, w.demo.dice, second, &second_next)
        .expect("click")
        .final_response(WAIT)
        .await
        .expect("reply");
    assert!(pressed.ephemeral, "{pressed:?}");
    assert!(content(&pressed).contains("tracker moved"), "{pressed:?}");
    assert!(
        content(&pressed).contains(&u64::from(third).to_string()),
        "links the latest: {pressed:?}"
    );
    let kept = stored(&w).await;
    assert_eq!(kept["message_id"], json!(u64::from(third).to_string()));
    assert_eq!(kept["turn"], json!(0), "nothing moved");

    // The latest tracker's Next acts and keeps that message up to date.
    w.sim
        .click_button(alice, w.demo.dice, third, &next_button(&w, third))
        .expect("click")
        .final_response(WAIT)
        .await
        .expect("reply");
    assert_eq!(stored(&w).await["turn"], json!(1));
    assert!(
        tracker(&w, third).contains("▶ ` 10` B"),
        "{}",
        tracker(&w, third)
    );
    bot.stop().await;
}

/// `/init join character:` names one of the caller's saved characters: a typo is
/// refused naming the ones they have, and nobody joins with a bare d20.
#[tokio::test]
async fn joining_as_a_character_one_does_not_have_is_refused() {
    let (w, bot, _dir) = start().await;
    let alice = w.demo.alice;
    let none = init(&w, alice, "join", &[("character", json!("Vex"))]).await;
    assert!(
        content(&none).contains("You have no character named `Vex`")
            && content(&none).contains("/character add"),
        "{none:?}"
    );
    character(&w, alice, "Vex").await;
    character(&w, alice, "Percy").await;
    let typo = init(&w, alice, "join", &[("character", json!("Vexx"))]).await;
    assert!(
        content(&typo).contains("You have no character named `Vexx`. Yours: `Percy`, `Vex`."),
        "{typo:?}"
    );
    assert!(trackers(&w).is_empty(), "nobody joined");
    let joined = init(&w, alice, "join", &[("character", json!("vex"))]).await;
    assert!(content(&joined).contains("**Vex** joined"), "{joined:?}");
    bot.stop().await;
}

/// A signed initiative is a modifier on the d20, as Avrae's users mean it; a bare
/// number is the initiative itself; `adv+2` rolls two d20 and keeps the higher.
#[tokio::test]
async fn a_signed_initiative_rolls_the_d20_with_it() {
    let (w, bot, _dir) = start().await;
    let alice = w.demo.alice;
    let added = init(
        &w,
        alice,
        "add",
        &[("name", json!("orc2")), ("initiative", json!("+3"))],
    )
    .await;
    assert!(
        content(&added).contains("1d20 (") && content(&added).contains("+ 3 ="),
        "{added:?}"
    );
    let joined = init(&w, alice, "join", &[("roll", json!("adv+2"))]).await;
    assert!(content(&joined).contains("2d20"), "{joined:?}");
    let fixed = init(
        &w,
        alice,
        "add",
        &[("name", json!("orc3")), ("initiative", json!("3"))],
    )
    .await;
    assert!(
        content(&fixed).contains("joined initiative with 3: 3"),
        "{fixed:?}"
    );
    let stored = stored(&w).await;
    let orc2 = stored["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] == "orc2")
        .expect("orc2")
        .clone();
    assert_eq!(orc2["init_expr"], "1d20+3", "{orc2}");
    assert!((4..=23).contains(&orc2["initiative"].as_i64().expect("int")));
    let theirs = stored["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] != "orc2" && e["name"] != "orc3")
        .expect("alice")
        .clone();
    assert_eq!(theirs["init_expr"], "2d20kh1+2", "{theirs}");
    bot.stop().await;
}

/// Removing the active character says which one is active now (the first remaining,
/// by name), or that none is left.
#[tokio::test]
async fn removing_the_active_character_says_which_is_active_now() {
    let (w, bot, _dir) = start().await;
    let alice = w.demo.alice;
    for name in ["Percy", "Vex", "Cassandra"] {
        character(&w, alice, name).await;
    }
    let remove = |name: &'static str| {
        let w = &w;
        async move {
            run(
                w,
                alice,
                "character",
                json!([{"name": "remove", "options": [{"name": "name", "value": name}]}]),
            )
            .await
        }
    };
    let other = remove("Vex").await;
    assert_eq!(content(&other), "Removed **Vex**.", "{other:?}");
    let active = remove("percy").await;
    assert!(
        content(&active)
            .starts_with("Removed **Percy**. **Cassandra** is now your active character"),
        "{active:?}"
    );
    let last = remove("Cassandra").await;
    assert!(
        content(&last).starts_with("Removed **Cassandra**. You have no characters left"),
        "{last:?}"
    );
    bot.stop().await;
}

/// A name that looks like a mention or Markdown is shown as typed in the join line
/// and the tracker: nobody is mentioned, nothing turns bold.
#[tokio::test]
async fn names_with_markdown_or_mentions_are_shown_as_typed() {
    let (w, bot, _dir) = start().await;
    let alice = w.demo.alice;
    let added = init(&w, alice, "add", &[("name", json!("**Bold** init:12"))]).await;
    assert!(
        content(&added).starts_with("**\\*\\*Bold\\*\\*** joined initiative with 12"),
        "{added:?}"
    );
    init(&w, alice, "add", &[("name", json!("<@123> init:5"))]).await;
    let shown = tracker(&w, trackers(&w)[0].id);
    assert!(shown.contains("`  5` \\<\\@123\\>"), "{shown}");
    assert!(!shown.contains(" <@123>"), "{shown}");
    bot.stop().await;
}

/// Alice and Bob both joined as `Goblin`: Carol's bare `/init damage name:Goblin` is
/// refused naming both, nothing changes, and `Goblin (@Bob)` hits Bob's only.
#[tokio::test]
async fn a_name_two_players_share_is_refused_until_it_says_whose() {
    let (w, _bot, _dir) = start().await;
    let (alice, bob, carol) = (w.demo.alice, w.demo.bob, w.demo.carol);
    for (user, roll) in [(alice, "15"), (bob, "10")] {
        character(&w, user, "Goblin").await;
        init(
            &w,
            user,
            "join",
            &[("character", json!("Goblin")), ("roll", json!(roll))],
        )
        .await;
        init(
            &w,
            user,
            "hp",
            &[("name", json!("Goblin")), ("value", json!("10"))],
        )
        .await;
    }
    let hps = |t: &Value| -> Vec<i64> {
        t["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["hp"].as_i64().expect("hp"))
            .collect()
    };
    assert_eq!(hps(&stored(&w).await), vec![10, 10]);

    let bare = init(
        &w,
        carol,
        "damage",
        &[("name", json!("Goblin")), ("amount", json!("3"))],
    )
    .await;
    assert!(
        content(&bare).contains(&format!(
            "Two combatants are named `Goblin` (<@{}>'s and <@{}>'s); say whose: `Goblin (@player)`",
            u64::from(alice),
            u64::from(bob)
        )),
        "{bare:?}"
    );
    assert_eq!(hps(&stored(&w).await), vec![10, 10], "nothing hit");

    let named = init(
        &w,
        carol,
        "damage",
        &[
            ("name", json!(format!("Goblin (<@{}>)", u64::from(bob)))),
            ("amount", json!("3")),
        ],
    )
    .await;
    assert!(!content(&named).contains("say whose"), "{named:?}");
    assert_eq!(hps(&stored(&w).await), vec![10, 7], "Bob's, not Alice's");
}

/// Only whoever added a combatant hides it, shows it or changes its options; anyone
/// else is told whose it is and nothing changes.
#[tokio::test]
async fn only_the_adder_changes_a_combatants_options() {
    let (w, _bot, _dir) = start().await;
    let (alice, bob) = (w.demo.alice, w.demo.bob);
    init(
        &w,
        alice,
        "add",
        &[("name", json!("Grog")), ("initiative", json!("12"))],
    )
    .await;
    let grog = |t: &Value| -> Value {
        t["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["name"] == "Grog")
            .cloned()
            .expect("Grog")
    };
    let before = grog(&stored(&w).await);
    let trackers_before = trackers(&w)
        .iter()
        .map(|m| m.content.clone())
        .collect::<Vec<_>>();

    let refused = init(
        &w,
        bob,
        "opt",
        &[
            ("name", json!("Grog")),
            ("hidden", json!(true)),
            ("ac", json!(3)),
        ],
    )
    .await;
    assert!(refused.ephemeral, "{refused:?}");
    assert!(
        content(&refused).contains(&format!(
            "`Grog` is <@{}>'s: only whoever added a combatant changes its options.",
            u64::from(alice)
        )),
        "{refused:?}"
    );
    assert_eq!(grog(&stored(&w).await), before, "nothing changed");
    let trackers_after = trackers(&w)
        .iter()
        .map(|m| m.content.clone())
        .collect::<Vec<_>>();
    assert_eq!(
        trackers_after, trackers_before,
        "the channel still sees Grog"
    );

    let mine = init(
        &w,
        alice,
        "opt",
        &[("name", json!("Grog")), ("hidden", json!(true))],
    )
    .await;
    assert!(content(&mine).contains("now hidden"), "{mine:?}");
    assert_eq!(grog(&stored(&w).await)["hidden"], true);
}
