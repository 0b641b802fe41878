//! Every command and button end to end: discord-sim, the real router and real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::time::Duration;

use discord_sim::InteractionReply;
use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::{TestBot, WAIT, World};

/// The world with the bot serving the rolls feature (its sync folder in `_dir`).
async fn start() -> (World, TestBot, tempfile::TempDir) {
    let world = World::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let feature = rolls::feature(&world.ctx, rolls::RollsConfig::new(dir.path()));
    let bot = TestBot::spawn(&world, vec![feature]).await;
    (world, bot, dir)
}

/// What these tests do in the world: commands, clicks, and reading back.
trait Play {
    async fn run(
        &self,
        user: discord_sim::Snowflake,
        name: &str,
        options: Value,
    ) -> InteractionReply;
    async fn click(
        &self,
        user: discord_sim::Snowflake,
        message: discord_sim::Snowflake,
        id: &str,
    ) -> InteractionReply;
    async fn counter(&self, command: &str) -> i64;
    fn tracker(&self) -> discord_sim::Message;
}

impl Play for World {
    async fn run(
        &self,
        user: discord_sim::Snowflake,
        name: &str,
        options: Value,
    ) -> InteractionReply {
        self.sim
            .run_command(user, self.demo.dice, name, options)
            .expect("run")
            .final_response(WAIT)
            .await
            .expect("reply")
    }

    async fn click(
        &self,
        user: discord_sim::Snowflake,
        message: discord_sim::Snowflake,
        id: &str,
    ) -> InteractionReply {
        self.sim
            .click_button(user, self.demo.dice, message, id)
            .expect("click")
            .final_response(WAIT)
            .await
            .expect("reply")
    }

    async fn counter(&self, command: &str) -> i64 {
        let mut conn = self.redis.conn();
        let v: Option<i64> = conn.get(format!("c_{command}")).await.expect("get");
        v.unwrap_or(0)
    }

    /// The channel's tracker message (the latest one with a Join button).
    fn tracker(&self) -> discord_sim::Message {
        self.sim
            .messages(self.demo.dice)
            .into_iter()
            .rev()
            .find(|m| m.content.starts_with("**Initiative**"))
            .expect("tracker message")
    }
}

fn content(reply: &InteractionReply) -> &str {
    reply.content.as_deref().unwrap_or_default()
}

/// The id of a message's Next button.
fn next_id(message: &discord_sim::Message) -> String {
    message
        .component_summaries()
        .into_iter()
        .filter_map(|c| c.custom_id)
        .find(|id| id.starts_with("rolls:init:next"))
        .expect("a Next button")
}

/// `c_init`: how many `/init` uses were counted.
async fn init_uses(w: &World) -> i64 {
    let mut conn = w.redis.conn();
    let count: Option<i64> = conn.get("c_init").await.expect("c_init");
    count.unwrap_or(0)
}

/// The stored tracker's `(round, turn)`.
async fn position(w: &World) -> (u64, u64) {
    let mut conn = w.redis.conn();
    let raw: String = conn
        .get(format!("init_{}", u64::from(w.demo.dice)))
        .await
        .expect("init");
    let json: Value = serde_json::from_str(&raw).expect("json");
    (
        json["round"].as_u64().expect("round"),
        json["turn"].as_u64().expect("turn"),
    )
}

#[tokio::test]
async fn roll_public_private_and_errors() {
    let (w, bot, _dir) = start().await;
    let reply = w
        .run(
            w.demo.alice,
            "roll",
            json!([{"name": "expression", "value": "2d6+3"}]),
        )
        .await;
    assert!(content(&reply).contains("2d6"), "{reply:?}");
    assert!(!reply.ephemeral);

    let reply = w
        .run(
            w.demo.alice,
            "roll",
            json!([{"name": "expression", "value": "1d20"}, {"name": "private", "value": true}]),
        )
        .await;
    assert!(reply.ephemeral, "{reply:?}");

    let reply = w
        .run(
            w.demo.bob,
            "roll",
            json!([{"name": "expression", "value": "1d20 + x"}]),
        )
        .await;
    assert!(reply.ephemeral);
    assert!(content(&reply).contains("1d20 + x\n       ^"), "{reply:?}");

    assert_eq!(w.counter("roll").await, 2, "the failed roll is not counted");
    bot.stop().await;
}

#[tokio::test]
async fn odds_stats_and_help() {
    let (w, bot, _dir) = start().await;
    let reply = w
        .run(
            w.demo.alice,
            "odds",
            json!([{"name": "expression", "value": "1d20+5 >= 15"}]),
        )
        .await;
    assert!(content(&reply).contains("55.00%"), "{reply:?}");
    let reply = w.run(w.demo.bob, "help", json!([])).await;
    assert!(content(&reply).contains("/init join"), "{reply:?}");
    let reply = w
        .run(
            w.demo.bob,
            "help",
            json!([{"name": "command", "value": "character"}]),
        )
        .await;
    assert!(content(&reply).contains("at most 9"), "{reply:?}");
    let reply = w
        .run(
            w.demo.bob,
            "help",
            json!([{"name": "command", "value": "dance"}]),
        )
        .await;
    assert!(
        reply.ephemeral && content(&reply).contains("no command"),
        "{reply:?}"
    );

    let reply = w.run(w.demo.carol, "stats", json!([])).await;
    let text = content(&reply);
    assert!(
        text.contains("`/odds` 1") && text.contains("`/help` 2"),
        "{text}"
    );
    assert!(
        text.contains("**Total** 3") && text.contains("**Users** 2"),
        "{text}"
    );
    assert!(!text.contains("`/roll`"), "{text}");
    let reply = w
        .run(
            w.demo.carol,
            "stats",
            json!([{"name": "all", "value": true}]),
        )
        .await;
    assert!(content(&reply).contains("`/roll` 0"), "{reply:?}");
    assert!(content(&reply).contains("**Users** 3"), "{reply:?}");
    bot.stop().await;
}

#[tokio::test]
async fn characters_and_the_active_character_buttons() {
    let (w, bot, _dir) = start().await;
    for (name, modifier) in [("Vex", 3), ("Vax", 4)] {
        let reply = w
            .run(
                w.demo.alice,
                "character",
                json!([{"name": "add", "options": [{"name": "name", "value": name}, {"name": "initiative-modifier", "value": modifier}]}]),
            )
            .await;
        assert!(content(&reply).contains(name), "{reply:?}");
    }
    let list = w
        .run(w.demo.alice, "character", json!([{"name": "list"}]))
        .await;
    assert!(content(&list).contains("★ Vex"), "{list:?}");
    let alice = u64::from(w.demo.alice);
    let ids: Vec<String> = list
        .components
        .iter()
        .filter_map(|c| c.custom_id.clone())
        .collect();
    assert_eq!(
        ids,
        vec![
            format!("rolls:active:{alice}:Vax"),
            format!("rolls:active:{alice}:Vex")
        ]
    );
    let message = list.message_id.expect("message");

    let pressed = w
        .click(w.demo.alice, message, &format!("rolls:active:{alice}:Vax"))
        .await;
    assert_eq!(pressed.callback_type, 7);
    assert!(content(&pressed).contains("★ Vax"), "{pressed:?}");
    let other = w
        .click(w.demo.bob, message, &format!("rolls:active:{alice}:Vex"))
        .await;
    assert!(
        other.ephemeral && content(&other).contains("someone else"),
        "{other:?}"
    );

    let removed = w
        .run(
            w.demo.alice,
            "character",
            json!([{"name": "remove", "options": [{"name": "name", "value": "vax"}]}]),
        )
        .await;
    assert!(content(&removed).contains("Removed **Vax**"), "{removed:?}");

    for i in 0..8 {
        w.run(
            w.demo.bob,
            "character",
            json!([{"name": "add", "options": [{"name": "name", "value": format!("b{i}")}, {"name": "initiative-modifier", "value": 0}]}]),
        )
        .await;
    }
    let ninth = w
        .run(w.demo.bob, "character", json!([{"name": "add", "options": [{"name": "name", "value": "b8"}, {"name": "initiative-modifier", "value": 0}]}]))
        .await;
    assert!(!content(&ninth).contains("at most"), "{ninth:?}");
    let tenth = w
        .run(w.demo.bob, "character", json!([{"name": "add", "options": [{"name": "name", "value": "b9"}, {"name": "initiative-modifier", "value": 0}]}]))
        .await;
    assert!(
        tenth.ephemeral && content(&tenth).contains("9 characters"),
        "{tenth:?}"
    );
    bot.stop().await;
}

#[tokio::test]
async fn initiative_tracker_with_buttons() {
    let (w, bot, _dir) = start().await;
    w.run(
        w.demo.alice,
        "character",
        json!([{"name": "add", "options": [{"name": "name", "value": "Vex"}, {"name": "initiative-modifier", "value": 50}]}]),
    )
    .await;
    // Alice joins without a roll: 1d20 + 50 for her active character.
    let reply = w.run(w.demo.alice, "init", json!([{"name": "join"}])).await;
    assert!(content(&reply).contains("**Vex** joined"), "{reply:?}");
    let tracker = w.tracker();
    assert!(tracker.content.contains("▶"), "{}", tracker.content);
    let value: i64 = {
        let mut conn = w.redis.conn();
        let raw: String = conn
            .get(format!("init_{}", u64::from(w.demo.dice)))
            .await
            .expect("init");
        let json: Value = serde_json::from_str(&raw).expect("json");
        assert_eq!(json["message_id"], tracker.id.to_string());
        json["entries"][0]["initiative"].as_i64().expect("int")
    };
    assert!((51..=70).contains(&value));

    // Bob presses Join on the tracker: it is updated in place.
    let pressed = w.click(w.demo.bob, tracker.id, "rolls:init:join").await;
    assert_eq!(pressed.callback_type, 7, "{pressed:?}");
    assert!(content(&pressed).contains("bob"), "{pressed:?}");
    let ids: Vec<String> = pressed
        .components
        .iter()
        .filter_map(|c| c.custom_id.clone())
        .collect();
    assert_eq!(
        ids,
        vec![
            "rolls:init:join".to_owned(),
            "rolls:init:next:1:0".to_owned()
        ]
    );

    // Carol joins by command as her character with a fixed roll; the same message is
    // edited.
    w.run(
        w.demo.carol,
        "character",
        json!([{"name": "add", "options": [{"name": "name", "value": "Goblin"}]}]),
    )
    .await;
    w.run(w.demo.carol, "init", json!([{"name": "join", "options": [{"name": "character", "value": "Goblin"}, {"name": "roll", "value": "0"}]}]))
        .await;
    let edited = w.sim.message(w.demo.dice, tracker.id).expect("message");
    assert!(edited.content.contains("Goblin"), "{}", edited.content);
    assert!(
        edited
            .content
            .lines()
            .nth(1)
            .expect("line")
            .starts_with("▶"),
        "{}",
        edited.content
    );

    // Next by button, then by command.
    let pressed = w
        .click(w.demo.alice, tracker.id, "rolls:init:next:1:0")
        .await;
    assert!(
        content(&pressed)
            .lines()
            .nth(2)
            .expect("line")
            .starts_with("▶"),
        "{pressed:?}"
    );
    let reply = w.run(w.demo.alice, "init", json!([{"name": "next"}])).await;
    assert!(content(&reply).contains("Goblin"), "{reply:?}");
    let reply = w.run(w.demo.alice, "init", json!([{"name": "next"}])).await;
    assert!(content(&reply).contains("Vex"), "{reply:?}");
    let edited = w.sim.message(w.demo.dice, tracker.id).expect("message");
    assert!(edited.content.contains("round 2"), "{}", edited.content);

    // Get reposts the tracker at the bottom of the channel.
    let reply = w.run(w.demo.bob, "init", json!([{"name": "get"}])).await;
    assert!(reply.ephemeral, "{reply:?}");
    let reposted = w.tracker();
    assert_ne!(reposted.id, tracker.id);

    let reply = w
        .run(
            w.demo.carol,
            "init",
            json!([{"name": "remove", "options": [{"name": "character", "value": "goblin"}]}]),
        )
        .await;
    assert!(content(&reply).contains("left"), "{reply:?}");
    let reply = w
        .run(w.demo.carol, "init", json!([{"name": "remove"}]))
        .await;
    assert!(reply.ephemeral, "{reply:?}");
    let reply = w
        .run(w.demo.alice, "init", json!([{"name": "reset"}]))
        .await;
    assert!(content(&reply).contains("reset"), "{reply:?}");
    let latest = w.sim.message(w.demo.dice, reposted.id).expect("message");
    assert!(
        latest.content.contains("Nobody has joined"),
        "{}",
        latest.content
    );
    let pressed = w
        .click(w.demo.alice, reposted.id, "rolls:init:next:1:0")
        .await;
    assert!(
        pressed.ephemeral && content(&pressed).contains("Nobody"),
        "{pressed:?}"
    );

    assert_eq!(
        w.counter("init").await,
        9,
        "failed requests are not counted"
    );
    bot.stop().await;
}

/// A roll longer than a Discord message is cut to 2,000 characters in its middle, with
/// a note that says so and where a whole roll can be had; its total and roll id stay.
#[tokio::test]
async fn a_roll_longer_than_a_message_is_cut_with_a_note() {
    let (w, bot, _dir) = start().await;
    let reply = w
        .run(
            w.demo.alice,
            "roll",
            json!([{"name": "expression", "value": "100 40d6"}]),
        )
        .await;
    let text = content(&reply);
    assert!(
        text.chars().count() <= 2000,
        "{} characters",
        text.chars().count()
    );
    // The middle rolls go; the total and the roll id (for `/roll-check`) stay.
    assert!(text.contains(rolls::commands::CUT_ROLL_NOTE), "{text}");
    assert!(text.contains("Total"), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("-# roll id `"), "{text}");
    assert!(
        text.contains("Cut to fit Discord's 2,000 characters"),
        "{text}"
    );
    assert!(text.contains("/api/rolls/roll"), "{text}");
    assert!(
        text.starts_with(&format!("<@{}>", u64::from(w.demo.alice))),
        "{text}"
    );
    // A short roll is whole.
    let reply = w
        .run(
            w.demo.alice,
            "roll",
            json!([{"name": "expression", "value": "2d6"}]),
        )
        .await;
    assert!(!content(&reply).contains("Cut to fit"), "{reply:?}");
    bot.stop().await;
}

/// Dice over their work budget are refused at once, the budget named.
#[tokio::test]
async fn over_budget_rolls_and_odds_are_refused_naming_the_budget() {
    let (w, bot, _dir) = start().await;
    let reply = w
        .run(
            w.demo.alice,
            "roll",
            json!([{"name": "expression", "value": "3 10000d6"}]),
        )
        .await;
    assert!(reply.ephemeral, "{reply:?}");
    assert!(
        content(&reply).contains("more than 20000 dice")
            && content(&reply).contains("the budget of one roll"),
        "{reply:?}"
    );
    let reply = w
        .run(
            w.demo.alice,
            "odds",
            json!([{"name": "expression", "value": "5001d6km1"}]),
        )
        .await;
    assert!(reply.ephemeral, "{reply:?}");
    assert!(
        content(&reply).contains("over the odds budget of 10,000,000 dice"),
        "{reply:?}"
    );
    bot.stop().await;
}

/// Dice work runs off the async workers: with 50 heavy odds in flight, a command that
/// needs no dice and a roll (the other lane) are both answered before the first of
/// the heavy ones, and the heavy ones are answered too, one at a time.
#[tokio::test]
async fn quick_commands_are_answered_while_fifty_heavy_ones_are_in_flight() {
    let world = World::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = rolls::RollsConfig::new(dir.path());
    config.dice = rolls::DicePool::new(1, 1);
    let feature = rolls::feature(&world.ctx, config);
    let bot = TestBot::spawn(&world, vec![feature]).await;
    let w = &world;
    // Decimals: the odds are simulated, 100,000 rolls of 100 dice each: the whole
    // odds budget of 10 million dice.
    let heavy: Vec<discord_sim::Interaction> = (0..50)
        .map(|_| {
            w.sim
                .run_command(
                    w.demo.alice,
                    w.demo.dice,
                    "odds",
                    json!([{"name": "expression", "value": "100d6 * 1.5"}]),
                )
                .expect("run")
        })
        .collect();
    let help = w
        .sim
        .run_command(w.demo.bob, w.demo.dice, "help", json!([]))
        .expect("run");
    let roll = w
        .sim
        .run_command(
            w.demo.bob,
            w.demo.dice,
            "roll",
            json!([{"name": "expression", "value": "1d20"}]),
        )
        .expect("run");
    let help = help.final_response(WAIT).await.expect("help is answered");
    assert!(content(&help).contains("/init join"), "{help:?}");
    let roll = roll
        .final_response(WAIT)
        .await
        .expect("the roll is answered");
    assert!(content(&roll).contains("1d20"), "{roll:?}");
    let mut done = 0;
    for h in &heavy {
        if h.final_response(Duration::ZERO).await.is_ok() {
            done += 1;
        }
    }
    assert_eq!(
        done, 0,
        "a heavy odds was answered before the quick commands"
    );
    let first = testkit::eventually("a heavy odds is answered", || {
        let heavy = &heavy;
        async move {
            for h in heavy {
                if let Ok(reply) = h.final_response(Duration::ZERO).await {
                    return Some(reply);
                }
            }
            None
        }
    })
    .await;
    assert!(
        content(&first).contains("simulated: 100000 rolls"),
        "{first:?}"
    );
    drop(bot);
}

#[tokio::test]
async fn totals_flags_and_game_systems_reach_discord() {
    let (w, bot, _dir) = start().await;
    let roll = |expression: &'static str| {
        let w = &w;
        async move {
            let reply = w
                .run(
                    w.demo.alice,
                    "roll",
                    json!([{"name": "expression", "value": expression}]),
                )
                .await;
            assert!(!reply.ephemeral, "{expression}: {reply:?}");
            content(&reply).to_owned()
        }
    };

    // Six rolls of 4d6: each shown, then their sum.
    let six = roll("6 4d6").await;
    let totals: Vec<i64> = (1..=6)
        .map(|i| {
            let line = six
                .lines()
                .find(|l| l.contains(&format!("#{i}")))
                .unwrap_or_else(|| panic!("result #{i} in {six}"));
            line.rsplit('=')
                .next()
                .unwrap()
                .trim_matches(|c| c == '*' || c == '`' || c == ' ')
                .parse()
                .unwrap_or_else(|e| panic!("{line}: {e}\n{six}"))
        })
        .collect();
    let total_line = six.lines().find(|l| l.contains("Total")).expect("a total");
    let total: i64 = total_line
        .rsplit(':')
        .next()
        .unwrap()
        .trim_matches(|c| c == '*' || c == '`' || c == ' ')
        .parse()
        .unwrap_or_else(|e| panic!("{total_line}: {e}"));
    assert_eq!(total, totals.iter().sum::<i64>(), "{six}");

    // `;`-separated rolls are summed too.
    assert!(roll("1d20+5; 2d6+3").await.contains("Total"));
    // `+d20` is advantage: two d20, the better kept.
    assert!(roll("+d20").await.contains("2d20kh1"));
    // Game systems: Cypher against three times the difficulty, AGE's drama die,
    // Genesys narrative dice netted.
    assert!(roll("cs4").await.contains(">= 12"));
    assert!(roll("age").await.contains("drama die"));
    let narrative = roll("gen 2a1p 2d1c").await;
    assert!(
        narrative.contains("success") || narrative.contains("failure"),
        "{narrative}"
    );
    bot.stop().await;
}

/// A Next button carries the round and turn it was shown at: pressed twice before
/// the tracker is redrawn (a double click, two players at once) it moves the turn
/// once, and the second press shows the tracker as it is. A button posted before
/// buttons carried their position still moves the turn.
#[tokio::test]
async fn a_next_button_pressed_twice_moves_the_turn_once() {
    let (w, bot, _dir) = start().await;
    for (user, character, roll) in [
        (w.demo.alice, "Vex", "20"),
        (w.demo.bob, "Pike", "15"),
        (w.demo.carol, "Grog", "10"),
    ] {
        w.run(
            user,
            "character",
            json!([{"name": "add", "options": [{"name": "name", "value": character}]}]),
        )
        .await;
        w.run(
            user,
            "init",
            json!([{"name": "join", "options": [{"name": "character", "value": character}, {"name": "roll", "value": roll}]}]),
        )
        .await;
    }
    let tracker = w.tracker();
    let id = next_id(&tracker);
    assert_eq!(id, "rolls:init:next:1:0");
    assert_eq!(position(&w).await, (1, 0));
    let uses = init_uses(&w).await;

    // Both presses reach the bot before it redraws the tracker.
    let first = w
        .sim
        .click_button(w.demo.alice, w.demo.dice, tracker.id, &id)
        .expect("click");
    let second = w
        .sim
        .click_button(w.demo.bob, w.demo.dice, tracker.id, &id)
        .expect("click");
    let first = first.final_response(WAIT).await.expect("reply");
    let second = second.final_response(WAIT).await.expect("reply");
    assert_eq!(position(&w).await, (1, 1), "one turn on, not two");
    assert_eq!(
        init_uses(&w).await,
        uses + 1,
        "the press that changed nothing is not counted"
    );
    for pressed in [&first, &second] {
        assert_eq!(pressed.callback_type, 7, "{pressed:?}");
        assert!(content(pressed).contains("▶ ` 15` Pike"), "{pressed:?}");
    }
    let shown = w.sim.message(w.demo.dice, tracker.id).expect("tracker");
    assert_eq!(next_id(&shown), "rolls:init:next:1:1");

    // The redrawn button moves it on.
    w.click(w.demo.bob, tracker.id, "rolls:init:next:1:1").await;
    assert_eq!(position(&w).await, (1, 2));

    // A tracker posted with the earlier button (no position) still works.
    let legacy = discord::Reply::text(shown.content.clone()).row(vec![discord::Component::button(
        "rolls:init:next",
        "Next",
        discord::ButtonStyle::Secondary,
    )]);
    w.ctx
        .discord
        .edit(
            discord::model::ChannelId::new(u64::from(w.demo.dice)),
            discord::model::MessageId::new(u64::from(tracker.id)),
            &legacy,
        )
        .await
        .expect("edit");
    let pressed = w.click(w.demo.carol, tracker.id, "rolls:init:next").await;
    assert_eq!(pressed.callback_type, 7, "{pressed:?}");
    assert_eq!(position(&w).await, (2, 0));
    let shown = w.sim.message(w.demo.dice, tracker.id).expect("tracker");
    assert_eq!(next_id(&shown), "rolls:init:next:2:0");
    bot.stop().await;
}

/// The tracker's Join button shows the roll in the channel, as `/init join` does, and
/// a second press says the presser is already in, rolling nothing again.
#[tokio::test]
async fn the_join_button_shows_its_roll_and_a_second_press_rolls_nothing() {
    let (w, bot, _dir) = start().await;
    let carol = w.demo.carol;
    w.run(
        carol,
        "character",
        json!([{"name": "add", "options": [{"name": "name", "value": "Keyleth"}, {"name": "initiative", "value": "1d1+18"}]}]),
    )
    .await;
    w.run(w.demo.alice, "init", json!([{"name": "get"}])).await;
    let tracker = w.tracker();
    let stored = || async {
        let mut conn = w.redis.conn();
        let raw: String = conn
            .get(format!("init_{}", u64::from(w.demo.dice)))
            .await
            .expect("init");
        serde_json::from_str::<Value>(&raw).expect("json")
    };

    let pressed = w.click(carol, tracker.id, "rolls:init:join").await;
    assert_eq!(
        pressed.callback_type, 7,
        "the tracker is updated: {pressed:?}"
    );
    assert!(content(&pressed).contains("Keyleth"), "{pressed:?}");
    let shown = testkit::eventually("the join's roll in the channel", || async {
        w.sim
            .messages(w.demo.dice)
            .into_iter()
            .find(|m| m.content.contains("**Keyleth** joined initiative with 19"))
    })
    .await;
    assert!(shown.content.contains("roll id"), "{}", shown.content);
    let before = stored().await;
    let public = || {
        w.sim
            .messages(w.demo.dice)
            .into_iter()
            .filter(|m| m.flags & 64 == 0)
            .count()
    };
    let messages = public();

    let again = w.click(carol, tracker.id, "rolls:init:join").await;
    assert!(again.ephemeral, "{again:?}");
    assert!(
        content(&again).contains("already in initiative as **Keyleth** (19)"),
        "{again:?}"
    );
    assert_eq!(stored().await, before, "nothing rolled again");
    assert_eq!(public(), messages, "nothing posted");
    bot.stop().await;
}

/// A roll too long to read is refused quoting only a piece of it, around where the
/// limit falls, with `…` for the rest, so the refusal fits one message whole: no
/// empty code block, nothing cut.
#[tokio::test]
async fn a_too_long_rolls_refusal_quotes_a_piece_of_it_and_fits() {
    let (w, bot, _dir) = start().await;
    let expression = format!("{}1", "1d6+".repeat(600));
    assert!(expression.chars().count() > 2_000);
    let reply = w
        .run(
            w.demo.alice,
            "roll",
            json!([{"name": "expression", "value": expression}]),
        )
        .await;
    let text = content(&reply);
    assert!(text.contains("the roll is too long"), "{reply:?}");
    let quoted = text
        .split("```\n")
        .nth(1)
        .and_then(|q| q.lines().next())
        .expect("a quoted line");
    assert!(
        quoted.starts_with('…') && quoted.ends_with('…') && quoted.contains("1d6+1d6+"),
        "{reply:?}"
    );
    assert!(quoted.chars().count() <= 62, "{reply:?}");
    assert!(!text.contains("Cut to fit"), "{reply:?}");
    assert!(!text.contains("```\n```"), "{reply:?}");
    bot.stop().await;
}
