//! Whole games through discord-sim: the real bot (twilight) on a fake Discord, with a
//! real redis-server behind it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use discord::UserId;
use discord_sim::{ComponentSummary, InteractionReply, Snowflake};
use drinking::domain::{DrinkReason, DrinkRecord, GameId, GameStatus};
use drinking::testing::ScriptedDice;
use drinking::{Drinking, DrinkingConfig};
use redis::AsyncCommands;
use serde_json::json;
use testkit::{TestBot, WAIT, World, eventually};

/// The bot with the drinking game on a fresh [`World`].
struct Table {
    world: World,
    game: Drinking,
    dice: Arc<ScriptedDice>,
    bot: TestBot,
}

async fn table() -> Table {
    let world = World::new().await;
    let dice = Arc::new(ScriptedDice::new(None));
    let game = Drinking::new(
        &world.ctx,
        DrinkingConfig {
            dice: dice.clone(),
            ..DrinkingConfig::default()
        },
    );
    let bot = TestBot::spawn(&world, vec![game.feature()]).await;
    Table {
        world,
        game,
        dice,
        bot,
    }
}

fn pid(user: Snowflake) -> UserId {
    UserId::new(user.get())
}

fn button(reply: &InteractionReply, label: &str) -> String {
    find(&reply.components, label)
}

fn find(components: &[ComponentSummary], label: &str) -> String {
    components
        .iter()
        .find(|c| c.label.as_deref() == Some(label))
        .and_then(|c| c.custom_id.clone())
        .unwrap_or_else(|| panic!("no {label} button in {components:?}"))
}

impl Table {
    async fn command(&self, user: Snowflake, channel: Snowflake, sub: &str) -> InteractionReply {
        let interaction = self
            .world
            .sim
            .run_command(
                user,
                channel,
                "ronnied",
                json!([{"name": sub, "type": 1, "options": []}]),
            )
            .expect("command dispatched");
        interaction.response(WAIT).await.expect("command answered")
    }

    async fn click(
        &self,
        user: Snowflake,
        channel: Snowflake,
        message: Snowflake,
        custom_id: &str,
    ) -> InteractionReply {
        let interaction = self
            .world
            .sim
            .click_button(user, channel, message, custom_id)
            .expect("click dispatched");
        interaction.response(WAIT).await.expect("click answered")
    }

    /// Waits until the public game message satisfies `ready` (it is edited in the background).
    async fn wait_message(
        &self,
        channel: Snowflake,
        message: Snowflake,
        what: &str,
        ready: impl Fn(&discord_sim::Message) -> bool,
    ) -> discord_sim::Message {
        eventually(&format!("the game message {what}"), || {
            let shown = self
                .world
                .sim
                .message(channel, message)
                .filter(|m| ready(m));
            async move { shown }
        })
        .await
    }

    async fn ledger(&self, game: &GameId) -> Vec<DrinkRecord> {
        let mut conn = self.world.redis.conn();
        let raw: Vec<String> = conn
            .zrange(format!("drinks:{game}"), 0, -1)
            .await
            .expect("zrange");
        raw.iter()
            .map(|m| DrinkRecord::from_json(m).expect("record"))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_game_with_three_users() {
    let w = table().await;
    let demo = w.world.demo.clone();
    let channel = demo.drinking;
    w.dice.script(pid(demo.alice), &[6]);
    w.dice.script(pid(demo.bob), &[4]);
    w.dice.script(pid(demo.carol), &[2]);

    // alice starts; the response is the public game message.
    let start = w.command(demo.alice, channel, "start").await;
    assert!(!start.ephemeral);
    assert!(
        start
            .content
            .as_deref()
            .unwrap_or_default()
            .contains("waiting for players")
    );
    let message = start.message_id.expect("the game message");
    let join = button(&start, "Join");
    let begin = button(&start, "Begin");
    let game = drinking::ComponentId::parse(&join).expect("our id").game;

    for user in [demo.bob, demo.carol] {
        let joined = w.click(user, channel, message, &join).await;
        assert!(joined.ephemeral && joined.content.unwrap_or_default().contains("You're in"));
    }
    let refused = w.click(demo.bob, channel, message, &begin).await;
    assert!(
        refused.ephemeral
            && refused
                .content
                .unwrap_or_default()
                .contains("Only the creator"),
        "only alice begins yet"
    );
    let begun = w.click(demo.alice, channel, message, &begin).await;
    assert!(begun.content.unwrap_or_default().contains("Game on"));

    // The public message now offers Roll.
    let shown = w
        .wait_message(channel, message, "offered Roll", |m| {
            m.component_summaries()
                .iter()
                .any(|c| c.label.as_deref() == Some("Roll"))
        })
        .await;
    let roll = find(&shown.component_summaries(), "Roll");
    let pay = find(&shown.component_summaries(), "Pay");

    // alice rolls a 6: privately told, with a menu to pick who drinks.
    let six = w.click(demo.alice, channel, message, &roll).await;
    assert!(six.ephemeral);
    assert!(
        six.content
            .as_deref()
            .unwrap_or_default()
            .contains("You rolled **6**"),
        "{:?}",
        six.content
    );
    let menu = six
        .components
        .iter()
        .find(|c| c.kind == 3)
        .expect("a select menu");
    let labels: Vec<&str> = menu.options.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, vec!["bob", "carol"]);
    let menu_id = menu.custom_id.clone().expect("custom id");
    let private_message = six.message_id.expect("the private reply is a message");

    let bob = w.click(demo.bob, channel, message, &roll).await;
    assert!(bob.ephemeral && bob.content.unwrap_or_default().contains("You rolled **4**"));
    // The public message shows the rolls as they come in.
    w.wait_message(channel, message, "showed bob's roll", |m| {
        m.content.contains("bob — 🎲 4")
    })
    .await;
    let carol = w.click(demo.carol, channel, message, &roll).await;
    assert!(
        carol
            .content
            .unwrap_or_default()
            .contains("You rolled **2**")
    );

    // alice hands her drink to bob; that completes the game.
    let picked = w
        .world
        .sim
        .select(
            demo.alice,
            channel,
            private_message,
            &menu_id,
            vec![demo.bob.to_string()],
        )
        .expect("select dispatched")
        .response(WAIT)
        .await
        .expect("select answered");
    let text = picked.content.unwrap_or_default();
    assert!(
        text.contains("handed a drink to **bob**") && text.contains("Game over"),
        "{text}"
    );
    assert!(picked.components.is_empty(), "the menu is gone once used");

    let over = w
        .wait_message(channel, message, "said game over", |m| {
            m.content.contains("game over")
        })
        .await;
    assert!(
        over.content.contains("🏆 Winner: **alice**"),
        "{}",
        over.content
    );
    assert!(
        over.content.contains("Lowest roll: **carol** drinks"),
        "{}",
        over.content
    );

    // What Redis now holds.
    let mut drinks: Vec<(u64, DrinkReason)> = w
        .ledger(&game)
        .await
        .iter()
        .map(|d| (d.to.get(), d.reason))
        .collect();
    drinks.sort_by_key(|d| d.0);
    let mut expected = vec![
        (demo.bob.get(), DrinkReason::CriticalHit),
        (demo.carol.get(), DrinkReason::LowestRoll),
    ];
    expected.sort_by_key(|d| d.0);
    assert_eq!(drinks, expected);
    let stored = w
        .game
        .repo()
        .load_game(&game)
        .await
        .expect("load")
        .expect("kept for a day")
        .0;
    assert_eq!(stored.status, GameStatus::Completed);
    assert_eq!(stored.message_id.map(|m| m.get()), Some(message.get()));

    // Leaderboard, paying, a new session.
    let board = w
        .command(demo.carol, channel, "leaderboard")
        .await
        .content
        .unwrap_or_default();
    assert!(
        board.contains("**bob** — owes 1") && board.contains("**carol** — owes 1"),
        "{board}"
    );
    assert!(
        board.contains("**alice** — owes 0 · paid 0 · handed out 1"),
        "{board}"
    );
    let paid = w.click(demo.bob, channel, message, &pay).await;
    assert!(paid.ephemeral && paid.content.unwrap_or_default().contains("Paid one drink"));
    let board = w
        .command(demo.carol, channel, "leaderboard")
        .await
        .content
        .unwrap_or_default();
    assert!(board.contains("**bob** — owes 0 · paid 1"), "{board}");
    w.command(demo.alice, channel, "newsession").await;
    let board = w
        .command(demo.carol, channel, "leaderboard")
        .await
        .content
        .unwrap_or_default();
    assert!(board.contains("No drinks yet"), "{board}");

    // A fresh game can be abandoned by its creator.
    let again = w.command(demo.bob, channel, "start").await;
    let second = again.message_id.expect("message");
    w.click(demo.carol, channel, second, &button(&again, "Join"))
        .await;
    let abandoned = w.command(demo.bob, channel, "abandon").await;
    assert!(abandoned.content.unwrap_or_default().contains("abandoned"));
    w.wait_message(channel, second, "showed the abandon", |m| {
        m.content.contains("abandoned")
    })
    .await;

    assert!(
        drinking::check::check(&w.world.redis)
            .await
            .expect("check")
            .is_empty()
    );
    w.bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_players_press_roll_at_the_same_moment() {
    let w = table().await;
    let demo = w.world.demo.clone();
    let channel = demo.drinking;
    let mut users = vec![demo.alice, demo.bob, demo.carol];
    for n in 4..=10 {
        let user = w.world.sim.create_user(&format!("player{n}"));
        w.world.sim.add_member(demo.guild, user).expect("member");
        users.push(user);
    }
    let values = [2u8, 3, 3, 3, 4, 4, 4, 4, 4, 5];
    for (user, value) in users.iter().zip(values) {
        w.dice.script(pid(*user), &[value]);
    }

    let start = w.command(users[0], channel, "start").await;
    let message = start.message_id.expect("message");
    let join = button(&start, "Join");
    let joins: Vec<_> = users[1..]
        .iter()
        .map(|u| {
            w.world
                .sim
                .click_button(*u, channel, message, &join)
                .expect("click")
        })
        .collect();
    for j in joins {
        let reply = j.response(WAIT).await.expect("answered");
        assert!(reply.content.unwrap_or_default().contains("You're in"));
    }
    w.click(users[0], channel, message, &button(&start, "Begin"))
        .await;
    let shown = w
        .wait_message(channel, message, "offered Roll", |m| {
            m.component_summaries()
                .iter()
                .any(|c| c.label.as_deref() == Some("Roll"))
        })
        .await;
    assert!(
        shown.content.contains("(0/10 rolled)"),
        "every join made it: {}",
        shown.content
    );
    let roll = find(&shown.component_summaries(), "Roll");

    let before = w.game.round_trips();
    let presses: Vec<_> = users
        .iter()
        .map(|u| {
            w.world
                .sim
                .click_button(*u, channel, message, &roll)
                .expect("click")
        })
        .collect();
    let mut endings = 0;
    for press in presses {
        let reply = press.response(WAIT).await.expect("every press answered");
        let text = reply.content.unwrap_or_default();
        assert!(reply.ephemeral && text.contains("You rolled"), "{text}");
        if text.contains("Game over") {
            endings += 1;
        }
    }
    let trips = w.game.round_trips() - before;
    println!(
        "10 racing Roll presses: {trips} Redis round trips ({:.1} per press)",
        trips as f64 / 10.0
    );
    assert_eq!(endings, 1, "the game ended exactly once");

    let game = drinking::ComponentId::parse(&roll).expect("id").game;
    let drinks = w.ledger(&game).await;
    assert_eq!(drinks.len(), 1, "{drinks:?}");
    assert_eq!(
        (drinks[0].to, drinks[0].reason),
        (pid(users[0]), DrinkReason::LowestRoll)
    );
    let stored = w
        .game
        .repo()
        .load_game(&game)
        .await
        .expect("load")
        .expect("exists")
        .0;
    for (user, value) in users.iter().zip(values) {
        assert_eq!(
            stored
                .participant(pid(*user))
                .and_then(|p| p.roll)
                .map(|d| d.get()),
            Some(value)
        );
    }
    let over = w
        .wait_message(channel, message, "said game over", |m| {
            m.content.contains("game over")
        })
        .await;
    assert!(
        over.content.contains("player10 — 🎲 5"),
        "the final edit shows every roll: {}",
        over.content
    );
    assert!(
        drinking::check::check(&w.world.redis)
            .await
            .expect("check")
            .is_empty()
    );
    w.bot.stop().await;
}
