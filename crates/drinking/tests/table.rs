//! The game message as a table through discord-sim: Start New Game on a finished game,
//! the session leaderboard and latest drinks on the message, the tab, a game played
//! under a configuration other than the defaults, and `/help` listing every feature's
//! commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use discord::UserId;
use discord_sim::{ComponentSummary, InteractionReply, Snowflake};
use drinking::domain::{DiceRules, GameStatus};
use drinking::testing::ScriptedDice;
use drinking::{Drinking, DrinkingConfig};
use serde_json::json;
use testkit::{TestBot, WAIT, World, eventually};

struct Table {
    world: World,
    game: Drinking,
    dice: Arc<ScriptedDice>,
    bot: TestBot,
}

async fn table_with(tweak: impl FnOnce(&mut DrinkingConfig)) -> Table {
    let world = World::new().await;
    let dice = Arc::new(ScriptedDice::new(None));
    let mut config = DrinkingConfig {
        dice: dice.clone(),
        ..DrinkingConfig::default()
    };
    tweak(&mut config);
    let game = Drinking::new(&world.ctx, config);
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

fn text(reply: &InteractionReply) -> String {
    reply.content.clone().unwrap_or_default()
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
        self.world
            .sim
            .run_command(
                user,
                channel,
                "ronnied",
                json!([{"name": sub, "type": 1, "options": []}]),
            )
            .expect("command dispatched")
            .response(WAIT)
            .await
            .expect("command answered")
    }

    async fn click(
        &self,
        user: Snowflake,
        channel: Snowflake,
        message: Snowflake,
        custom_id: &str,
    ) -> InteractionReply {
        self.world
            .sim
            .click_button(user, channel, message, custom_id)
            .expect("click dispatched")
            .response(WAIT)
            .await
            .expect("click answered")
    }

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

    /// alice starts, bob and carol join, alice begins; returns the message and its
    /// Roll button.
    async fn three_player_game(&self, channel: Snowflake) -> (Snowflake, String) {
        let demo = self.world.demo.clone();
        let start = self.command(demo.alice, channel, "start").await;
        let message = start.message_id.expect("the game message");
        let join = find(&start.components, "Join");
        for user in [demo.bob, demo.carol] {
            self.click(user, channel, message, &join).await;
        }
        let begin = find(&start.components, "Begin");
        self.click(demo.alice, channel, message, &begin).await;
        let shown = self
            .wait_message(channel, message, "offered Roll", |m| {
                m.component_summaries()
                    .iter()
                    .any(|c| c.label.as_deref() == Some("Roll"))
            })
            .await;
        (message, find(&shown.component_summaries(), "Roll"))
    }

    /// alice crits and hands her drink to bob, bob rolls 4, carol rolls 2 (lowest).
    async fn play_classic_round(&self, channel: Snowflake) -> Snowflake {
        let demo = self.world.demo.clone();
        self.dice.script(pid(demo.alice), &[6]);
        self.dice.script(pid(demo.bob), &[4]);
        self.dice.script(pid(demo.carol), &[2]);
        let (message, roll) = self.three_player_game(channel).await;
        let six = self.click(demo.alice, channel, message, &roll).await;
        let menu = six
            .components
            .iter()
            .find(|c| c.kind == 3)
            .expect("a select menu")
            .custom_id
            .clone()
            .expect("its id");
        self.click(demo.bob, channel, message, &roll).await;
        self.click(demo.carol, channel, message, &roll).await;
        self.world
            .sim
            .select(
                demo.alice,
                channel,
                six.message_id.expect("the private reply"),
                &menu,
                vec![demo.bob.to_string()],
            )
            .expect("select dispatched")
            .response(WAIT)
            .await
            .expect("select answered");
        message
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_game_shows_the_board_and_drinks_and_starts_the_next_one() {
    let w = table_with(|_| {}).await;
    let demo = w.world.demo.clone();
    let channel = demo.drinking;
    let message = w.play_classic_round(channel).await;

    let over = w
        .wait_message(channel, message, "showed the table", |m| {
            m.content.contains("game over") && m.content.contains("Session leaderboard")
        })
        .await;
    let content = &over.content;
    assert!(content.contains("🍺 **Latest drinks**"), "{content}");
    assert!(content.contains("• **bob** ← alice's crit"), "{content}");
    assert!(content.contains("• **carol** ← lowest roll"), "{content}");
    assert!(
        content.contains("**bob** — owes 1 · paid 0 · handed out 0")
            && content.contains("**carol** — owes 1")
            && content.contains("**alice** — owes 0 · paid 0 · handed out 1"),
        "{content}"
    );
    assert!(content.chars().count() <= 2000);
    let buttons: Vec<String> = over
        .component_summaries()
        .iter()
        .filter_map(|c| c.label.clone())
        .collect();
    assert_eq!(buttons, vec!["Start New Game", "Pay", "Tab"]);

    // bob pays on the finished game: the drink shows as paid on the message.
    let pay = find(&over.component_summaries(), "Pay");
    w.click(demo.bob, channel, message, &pay).await;
    let paid = w
        .wait_message(channel, message, "showed bob's paid drink", |m| {
            m.content.contains("• **bob** ← alice's crit ✅")
        })
        .await;
    assert!(
        paid.content
            .contains("**bob** — owes 0 · paid 1 · handed out 0"),
        "{}",
        paid.content
    );

    // Start New Game: a new public game message in the same channel, by the presser.
    let new = find(&over.component_summaries(), "Start New Game");
    let next = w.click(demo.bob, channel, message, &new).await;
    assert!(!next.ephemeral, "the new game is for everyone");
    let next_text = text(&next);
    assert!(
        next_text.contains("waiting for players") && next_text.contains("Started by **bob**"),
        "{next_text}"
    );
    assert!(
        next_text.contains("📊 **Session leaderboard**")
            && next_text.contains("**carol** — owes 1"),
        "the session carries on: {next_text}"
    );
    let second = next.message_id.expect("a new message");
    assert_ne!(second, message);
    let join = find(&next.components, "Join");
    let joined = w.click(demo.carol, channel, second, &join).await;
    assert!(text(&joined).contains("You're in"), "{joined:?}");

    // The usual rule: one running game per channel.
    let again = w.click(demo.alice, channel, message, &new).await;
    assert!(
        again.ephemeral && text(&again).contains("already running"),
        "{again:?}"
    );
    let stored = w
        .game
        .repo()
        .channel_game(discord::ChannelId::new(channel.get()))
        .await
        .expect("read")
        .expect("a game runs");
    let running = w
        .game
        .repo()
        .load_game(&stored)
        .await
        .expect("load")
        .expect("game")
        .0;
    assert_eq!(running.status, GameStatus::Waiting);
    assert_eq!(running.creator_id, pid(demo.bob));
    w.bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tab_shows_what_a_player_owes_has_drunk_and_handed_out() {
    let w = table_with(|_| {}).await;
    let demo = w.world.demo.clone();
    let channel = demo.drinking;
    let message = w.play_classic_round(channel).await;
    let over = w
        .wait_message(channel, message, "said game over", |m| {
            m.content.contains("game over")
        })
        .await;

    let tab = w.command(demo.bob, channel, "tab").await;
    let shown = text(&tab);
    assert!(tab.ephemeral, "a tab is private");
    assert!(
        shown.contains("**bob's tab**")
            && shown.contains("You owe **1** · you've drunk **0** · you've handed out **0**"),
        "{shown}"
    );
    assert!(
        shown.contains("handed to you for a crit from **alice**"),
        "{shown}"
    );
    assert!(
        shown.contains("All sessions: **1** received · **0** handed out"),
        "{shown}"
    );

    // bob drinks and pays; the Tab button on the game message says so.
    w.click(
        demo.bob,
        channel,
        message,
        &find(&over.component_summaries(), "Pay"),
    )
    .await;
    let tab = w
        .click(
            demo.bob,
            channel,
            message,
            &find(&over.component_summaries(), "Tab"),
        )
        .await;
    let shown = text(&tab);
    assert!(tab.ephemeral);
    assert!(
        shown.contains("You owe **0** · you've drunk **1** · you've handed out **0**")
            && !shown.contains("Still to drink"),
        "{shown}"
    );

    let alice = text(&w.command(demo.alice, channel, "tab").await);
    assert!(
        alice.contains("You owe **0** · you've drunk **0** · you've handed out **1**")
            && alice.contains("All sessions: **0** received · **1** handed out"),
        "{alice}"
    );
    w.bot.stop().await;
}

/// A d20 where 20 crits and 2 fails, three players at most, force-start after 90 s and
/// finished games kept two hours: the game plays by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_plays_by_a_configured_die_limit_and_delays() {
    let w = table_with(|c| {
        c.die = DiceRules::new(20, 20, 2).expect("d20 rules");
        c.player_limit = 3;
        c.force_start_after = Duration::from_secs(90);
        c.completed_ttl = Duration::from_secs(2 * 60 * 60);
    })
    .await;
    let demo = w.world.demo.clone();
    let channel = demo.drinking;
    let dave = w.world.sim.create_user("dave");
    w.world.sim.add_member(demo.guild, dave).expect("member");
    w.dice.script(pid(demo.alice), &[20]);
    w.dice.script(pid(demo.bob), &[6]);
    w.dice.script(pid(demo.carol), &[2]);

    let start = w.command(demo.alice, channel, "start").await;
    let opening = text(&start);
    assert!(
        opening.contains("**Ronnied** (d20)")
            && opening.contains("20 = hand out a drink · 2 = drink"),
        "{opening}"
    );
    let message = start.message_id.expect("message");
    let join = find(&start.components, "Join");
    for user in [demo.bob, demo.carol] {
        w.click(user, channel, message, &join).await;
    }
    let full = w.click(dave, channel, message, &join).await;
    assert!(text(&full).contains("full (3 players)"), "{full:?}");
    let early = w
        .click(
            demo.bob,
            channel,
            message,
            &find(&start.components, "Begin"),
        )
        .await;
    assert!(
        text(&early).contains("force-start in 1 min 30 s"),
        "{early:?}"
    );
    w.click(
        demo.alice,
        channel,
        message,
        &find(&start.components, "Begin"),
    )
    .await;
    let shown = w
        .wait_message(channel, message, "offered Roll", |m| {
            m.component_summaries()
                .iter()
                .any(|c| c.label.as_deref() == Some("Roll"))
        })
        .await;
    let roll = find(&shown.component_summaries(), "Roll");

    // 20 crits: alice picks who drinks.
    let twenty = w.click(demo.alice, channel, message, &roll).await;
    // Under the facts, one of the crit's themed lines.
    let said = text(&twenty);
    assert!(
        drinking::lines::Event::Crit
            .lines()
            .iter()
            .any(|t| said.contains(&drinking::lines::fill(
                t,
                &[("player", "alice"), ("die", "20")]
            ))),
        "{said}"
    );
    assert!(
        text(&twenty).contains("You rolled **20**! Pick who drinks"),
        "{twenty:?}"
    );
    let menu = twenty
        .components
        .iter()
        .find(|c| c.kind == 3)
        .expect("a select menu")
        .custom_id
        .clone()
        .expect("id");
    // 6 is an ordinary face of a d20.
    let six = w.click(demo.bob, channel, message, &roll).await;
    assert!(text(&six).contains("🎲 You rolled **6**."), "{six:?}");
    assert!(six.components.is_empty(), "no drink to hand out on a 6");
    // 2 is the configured fail.
    let two = w.click(demo.carol, channel, message, &roll).await;
    assert!(
        text(&two).contains("You rolled **2**: critical fail"),
        "{two:?}"
    );
    w.world
        .sim
        .select(
            demo.alice,
            channel,
            twenty.message_id.expect("private reply"),
            &menu,
            vec![demo.bob.to_string()],
        )
        .expect("select")
        .response(WAIT)
        .await
        .expect("answered");

    let over = w
        .wait_message(channel, message, "said game over", |m| {
            m.content.contains("game over")
        })
        .await;
    assert!(
        over.content.contains("alice — 🎲 20 💥"),
        "{}",
        over.content
    );
    assert!(over.content.contains("carol — 🎲 2 💀"), "{}", over.content);
    let game = drinking::ComponentId::parse(&roll).expect("id").game;
    let stored = w
        .game
        .repo()
        .load_game(&game)
        .await
        .expect("load")
        .expect("kept")
        .0;
    assert_eq!(stored.dice, DiceRules::new(20, 20, 2).expect("rules"));
    let ttl = store::harness::ttl(&w.world.redis, &format!("game:{game}")).await;
    assert!((7_190..=7_200).contains(&ttl), "kept two hours: {ttl}");
    w.bot.stop().await;
}

/// `/help` lists at least one command of every feature the bot runs, grouped by
/// feature, within one message; `/help command` details any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_command_of_every_feature() {
    let world = World::new().await;
    let dir = tempfile::tempdir().expect("a data dir");
    let features = vec![
        rolls::feature(&world.ctx, rolls::RollsConfig::new(dir.path())),
        drinking::feature(&world.ctx, DrinkingConfig::default()),
        clips::feature(&world.ctx, clips::ClipsConfig::default()),
    ];
    let clip_commands: Vec<String> = features[2]
        .commands
        .iter()
        .map(|(spec, _)| spec.name.clone())
        .collect();
    assert!(!clip_commands.is_empty());
    let bot = TestBot::spawn(&world, features).await;
    let demo = world.demo.clone();
    let help = |options: serde_json::Value| {
        let sim = world.sim.clone();
        async move {
            sim.run_command(demo.bob, demo.dice, "help", options)
                .expect("help dispatched")
                .final_response(WAIT)
                .await
                .expect("help answered")
        }
    };

    let all = help(json!([])).await;
    let listed = text(&all);
    println!("/help:\n{listed}");
    assert!(listed.chars().count() <= 2000, "{}", listed.len());
    assert!(listed.contains("**Dice and initiative**"), "{listed}");
    assert!(
        listed.contains("`/roll expression [private] [mode]`"),
        "{listed}"
    );
    assert!(listed.contains("**Drinking game**"), "{listed}");
    assert!(
        listed.contains("`/ronnied start|leaderboard|newsession|abandon|tab`"),
        "{listed}"
    );
    assert!(listed.contains("**Clips**"), "{listed}");
    for command in &clip_commands {
        assert!(
            listed.contains(&format!("`/{command}")),
            "{command}: {listed}"
        );
    }

    let one = text(&help(json!([{"name": "command", "value": "ronnied"}])).await);
    assert!(
        one.contains("`/ronnied tab` Your tab: drinks you owe"),
        "{one}"
    );
    let own = text(&help(json!([{"name": "command", "value": "character"}])).await);
    assert!(own.contains("at most 9"), "{own}");
    let unknown = help(json!([{"name": "command", "value": "dance"}])).await;
    assert!(
        unknown.ephemeral && text(&unknown).contains("ronnied"),
        "{unknown:?}"
    );
    bot.stop().await;
}

/// A player who lost the private "Who drinks?" menu (dismissed with the answer it came
/// in) gets it again when they press Roll, worded with the configured crit face, and
/// the game goes on from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_who_drinks_menu_comes_back_on_roll() {
    let w = table_with(|c| {
        c.die = DiceRules::new(20, 20, 2).expect("d20 rules");
    })
    .await;
    let demo = w.world.demo.clone();
    let channel = demo.drinking;
    w.dice.script(pid(demo.alice), &[20]);
    w.dice.script(pid(demo.bob), &[6]);
    w.dice.script(pid(demo.carol), &[5]);
    let (message, roll) = w.three_player_game(channel).await;
    let twenty = w.click(demo.alice, channel, message, &roll).await;
    assert!(text(&twenty).contains("Pick who drinks"), "{twenty:?}");
    for user in [demo.bob, demo.carol] {
        w.click(user, channel, message, &roll).await;
    }

    // Her menu is gone; Roll hands it to her again.
    let again = w.click(demo.alice, channel, message, &roll).await;
    assert!(again.ephemeral, "{again:?}");
    assert!(
        text(&again).contains("**20**") && !text(&again).contains('6'),
        "{again:?}"
    );
    let menu = again
        .components
        .iter()
        .find(|c| c.kind == 3)
        .expect("the menu again");
    let labels: Vec<&str> = menu.options.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, vec!["bob", "carol"]);
    let picked = w
        .world
        .sim
        .select(
            demo.alice,
            channel,
            again.message_id.expect("private reply"),
            &menu.custom_id.clone().expect("id"),
            vec![demo.carol.to_string()],
        )
        .expect("select")
        .response(WAIT)
        .await
        .expect("answered");
    let said = text(&picked);
    assert!(
        said.contains("handed a drink to **carol**") && said.contains("Game over"),
        "{said}"
    );
    let game = drinking::ComponentId::parse(&roll).expect("id").game;
    let stored = w
        .game
        .repo()
        .load_game(&game)
        .await
        .expect("load")
        .expect("kept")
        .0;
    assert_eq!(stored.status, GameStatus::Completed);
    w.bot.stop().await;
}
