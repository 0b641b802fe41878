//! The repositories and handlers against a real redis-server: exact keys, types, TTLs,
//! round trips per press, and racing presses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use drinking::domain::{DrinkReason, DrinkRecord, GameId, GameStatus, PlayerDoc, SessionDoc};
use drinking::{Drinking, DrinkingConfig, Press, custom_id};
use redis::AsyncCommands;

async fn ledger(env: &Env, id: &GameId) -> Vec<(DrinkRecord, f64)> {
    let mut conn = env.redis.conn();
    let raw: Vec<(String, f64)> = conn
        .zrange_withscores(format!("drinks:{id}"), 0, -1)
        .await
        .expect("zrange");
    raw.into_iter()
        .map(|(m, s)| (DrinkRecord::from_json(&m).expect("record"), s))
        .collect()
}

#[tokio::test]
async fn a_game_lives_under_the_seed_keys_with_their_types_and_ttl() {
    let env = env().await;
    env.dice.script(player(1), &[6]);
    env.dice.script(player(2), &[4]);
    env.dice.script(player(3), &[2]);
    let id = env.started_game(1, &[2, 3]).await;
    let mut conn = env.redis.conn();

    // While the game runs.
    assert_eq!(env.redis_type(&format!("game:{id}")).await, "string");
    assert_eq!(
        env.redis_type(&format!("channel:{CHANNEL}")).await,
        "string"
    );
    let pointed: String = conn.get(format!("channel:{CHANNEL}")).await.expect("get");
    assert_eq!(pointed, id.as_str());
    assert_eq!(env.redis_type("active_games").await, "set");
    assert!(
        conn.sismember::<_, _, bool>("active_games", id.as_str())
            .await
            .expect("sismember")
    );
    for n in [1, 2, 3] {
        assert_eq!(env.redis_type(&format!("player:{n}")).await, "string");
        let doc: String = conn.get(format!("player:{n}")).await.expect("get");
        let doc: PlayerDoc = serde_json::from_str(&doc).expect("player json");
        assert_eq!(doc.name, name(n));
        assert_eq!(env.redis_type(&format!("player_games:{n}")).await, "set");
        let games: Vec<String> = conn
            .smembers(format!("player_games:{n}"))
            .await
            .expect("smembers");
        assert_eq!(games, vec![id.to_string()]);
    }
    assert_eq!(
        env.ttl(&format!("game:{id}")).await,
        -1,
        "a running game does not expire"
    );
    let raw: String = conn.get(format!("game:{id}")).await.expect("get");
    let json: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(json["status"], "waiting");
    assert_eq!(json["participants"].as_array().map(Vec::len), Some(3));

    // Play it out: alice hands bob a drink, carol rolls lowest.
    env.press(1, &custom_id(Press::Begin, &id))
        .await
        .expect("begin");
    for n in [1, 2, 3] {
        env.press(n, &custom_id(Press::Roll, &id))
            .await
            .expect("roll");
    }
    env.press_values(1, &custom_id(Press::Assign, &id), vec!["2".into()])
        .await
        .expect("assign");

    let game = env.load(&id).await;
    assert_eq!(game.status, GameStatus::Completed);
    assert_eq!(env.redis_type(&format!("drinks:{id}")).await, "zset");
    let drinks = ledger(&env, &id).await;
    let mut reasons: Vec<(Option<u64>, u64, DrinkReason)> = drinks
        .iter()
        .map(|(d, _)| (d.from.map(|p| p.get()), d.to.get(), d.reason))
        .collect();
    // Same score (the test clock stands still): order within it is by member, so sort.
    reasons.sort_by_key(|r| r.1);
    assert_eq!(
        reasons,
        vec![
            (Some(1), 2, DrinkReason::CriticalHit),
            (None, 3, DrinkReason::LowestRoll)
        ]
    );
    for (drink, score) in &drinks {
        assert_eq!(
            *score,
            drink.at.timestamp_millis() as f64,
            "scored by timestamp"
        );
        assert_eq!(drink.session_id, game.session_id);
    }
    assert_eq!(env.redis_type("player_drinks:1").await, "hash");
    let counts = |n: u64| {
        let mut conn = env.redis.conn();
        async move {
            let h: HashMap<String, i64> = conn
                .hgetall(format!("player_drinks:{n}"))
                .await
                .expect("hgetall");
            h
        }
    };
    assert_eq!(counts(1).await, HashMap::from([("assigned".to_owned(), 1)]));
    assert_eq!(counts(2).await, HashMap::from([("received".to_owned(), 1)]));
    assert_eq!(counts(3).await, HashMap::from([("received".to_owned(), 1)]));

    // Completion: TTL on the game, channel and active index cleared, ledger kept, and
    // every player's `player_games` still names the game until it expires.
    let ttl = env.ttl(&format!("game:{id}")).await;
    assert!((86_390..=86_400).contains(&ttl), "24 h TTL, got {ttl}");
    assert_eq!(
        env.ttl(&format!("drinks:{id}")).await,
        -1,
        "the ledger is kept for leaderboards"
    );
    let exists: bool = conn
        .exists(format!("channel:{CHANNEL}"))
        .await
        .expect("exists");
    assert!(!exists, "the channel is free again");
    assert!(
        !conn
            .sismember::<_, _, bool>("active_games", id.as_str())
            .await
            .expect("sismember")
    );
    for n in [1, 2, 3] {
        let games: Vec<String> = conn
            .smembers(format!("player_games:{n}"))
            .await
            .expect("smembers");
        assert_eq!(games, vec![id.to_string()], "player_games:{n}");
        let set_ttl = env.ttl(&format!("player_games:{n}")).await;
        assert!(
            (ttl..=86_400).contains(&set_ttl),
            "player_games:{n} expires with its last game: {set_ttl} s vs {ttl} s"
        );
    }

    // Tavern's session keys.
    assert_eq!(env.redis_type(&format!("session:{GUILD}")).await, "string");
    let session: String = conn.get(format!("session:{GUILD}")).await.expect("get");
    let session: SessionDoc = serde_json::from_str(&session).expect("session json");
    assert_eq!(session.id, game.session_id);
    assert_eq!(
        env.redis_type(&format!("session_games:{}", session.id))
            .await,
        "set"
    );

    // Nothing else was written.
    let mut keys: Vec<String> = conn.keys("*").await.expect("keys");
    keys.sort();
    let mut expected = vec![
        format!("game:{id}"),
        format!("drinks:{id}"),
        format!("session:{GUILD}"),
        format!("session_games:{}", session.id),
    ];
    for n in [1, 2, 3] {
        expected.push(format!("player:{n}"));
        expected.push(format!("player_games:{n}"));
        expected.push(format!("player_drinks:{n}"));
    }
    expected.sort();
    assert_eq!(keys, expected);
    assert!(
        drinking::check::check(&env.redis)
            .await
            .expect("check")
            .is_empty()
    );
}

#[tokio::test]
async fn the_completed_ttl_is_configurable() {
    let env = env_with(|c| c.completed_ttl = Duration::from_secs(60)).await;
    let id = env.started_game(1, &[]).await;
    env.press(1, &custom_id(Press::Begin, &id))
        .await
        .expect("begin");
    env.press(1, &custom_id(Press::Roll, &id))
        .await
        .expect("roll");
    let ttl = env.ttl(&format!("game:{id}")).await;
    assert!((55..=60).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn a_press_costs_one_round_trip_and_never_more_than_two() {
    let env = env().await;
    env.dice.script(player(1), &[6]);
    env.dice.script(player(2), &[1]);
    let id = env.started_game(1, &[]).await;
    let repo = env.game.repo();
    let mut measured = Vec::new();
    let mut measure = async |label: &str, user: u64, press: Press, values: Vec<String>| {
        let before = repo.round_trips();
        let result = env.press_values(user, &custom_id(press, &id), values).await;
        let trips = repo.round_trips() - before;
        measured.push((label.to_owned(), trips, result.is_ok()));
    };
    measure("join", 2, Press::Join, vec![]).await;
    measure("begin", 1, Press::Begin, vec![]).await;
    measure("roll (6)", 1, Press::Roll, vec![]).await;
    measure("roll before picking", 1, Press::Roll, vec![]).await;
    measure("roll (1)", 2, Press::Roll, vec![]).await;
    measure("assign, ends the game", 1, Press::Assign, vec!["2".into()]).await;
    measure("pay", 2, Press::Pay, vec![]).await;
    measure("pay again", 2, Press::Pay, vec![]).await;
    println!("round trips per press: {measured:?}");
    let trips: Vec<(&str, u64)> = measured.iter().map(|m| (m.0.as_str(), m.1)).collect();
    assert_eq!(
        trips,
        [
            // The game was created by this process: its document is known, so a press is
            // the guarded write alone.
            ("join", 1),
            ("begin", 1),
            ("roll (6)", 1),
            // A refusal is confirmed against the stored game: one read, nothing
            // written (here answered with the "Who drinks?" menu again, from that read).
            ("roll before picking", 1),
            ("roll (1)", 1),
            // The press that ends a game also tidies its players' `player_games`
            // (their sets, the games' TTLs, one conditional write).
            ("assign, ends the game", 4),
            // Paying reads the ledger and replaces one member.
            ("pay", 2),
            ("pay again", 2),
        ]
    );
    let refused: Vec<&str> = measured
        .iter()
        .filter(|m| !m.2)
        .map(|m| m.0.as_str())
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

#[tokio::test]
async fn a_stale_guess_never_refuses_or_loses_a_press() {
    let env = env().await;
    env.dice.script(player(2), &[4]);
    // Instance A creates the game and remembers it with alice alone in it.
    let id = env.started_game(1, &[]).await;
    // Instance B (another bot process) lets bob join and alice begin.
    let b = env.other_instance();
    env.press_on(&b, 2, &custom_id(Press::Join, &id), vec![])
        .await
        .expect("join on B");
    env.press_on(&b, 1, &custom_id(Press::Begin, &id), vec![])
        .await
        .expect("begin on B");
    // A's guess says bob is not in a started game; the stored game says he is.
    let before = env.game.repo().round_trips();
    env.press(2, &custom_id(Press::Roll, &id))
        .await
        .expect("bob's roll on A goes through");
    let trips = env.game.repo().round_trips() - before;
    let game = env.load(&id).await;
    let bob = game
        .participants
        .iter()
        .find(|p| p.player_id == player(2))
        .expect("bob");
    assert_eq!(
        bob.roll.map(|d| d.get()),
        Some(4),
        "recorded once, as rolled"
    );
    assert_eq!(
        game.version, 3,
        "join, begin, roll after the creation: none lost or doubled"
    );
    assert_eq!(
        trips, 2,
        "the guess was refused, then one read and one write"
    );

    // And a write against a stale guess that the rules allow is redone on the truth.
    env.dice.script(player(1), &[5]);
    let b_before = b.repo().round_trips();
    env.press_on(&b, 1, &custom_id(Press::Roll, &id), vec![])
        .await
        .expect("alice's roll on B");
    assert_eq!(
        b.repo().round_trips() - b_before,
        2 + 3,
        "guarded write refused with the stored game in its answer, then the write \
         (and, as this roll ends the game, the three trips tidying `player_games`)"
    );
    let game = env.load(&id).await;
    assert!(
        game.participants.iter().all(|p| p.roll.is_some()) || game.is_completed(),
        "both rolls are in: {game:?}"
    );
}

#[tokio::test]
async fn ten_players_pressing_roll_at_once_roll_once_each_and_end_the_game_once() {
    let env = env().await;
    // One single lowest (player 1) and one single highest (player 10): no roll-off.
    let values = [2u8, 3, 3, 3, 4, 4, 4, 4, 4, 5];
    for (i, v) in values.iter().enumerate() {
        env.dice.script(player(i as u64 + 1), &[*v]);
    }
    let others: Vec<u64> = (2..=10).collect();
    let id = env.started_game(1, &others).await;
    env.press(1, &custom_id(Press::Begin, &id))
        .await
        .expect("begin");

    let env = Arc::new(env);
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (1..=10u64)
        .map(|n| {
            let (env, barrier, id) = (Arc::clone(&env), Arc::clone(&barrier), id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                env.press(n, &custom_id(Press::Roll, &id)).await
            })
        })
        .collect();
    let mut endings = 0;
    for task in tasks {
        let reply = reply_of(task.await.expect("join").expect("every roll is accepted"));
        assert!(reply.ephemeral, "roll results are private");
        if reply.content.contains("Game over") {
            endings += 1;
        }
    }
    assert_eq!(endings, 1, "exactly one press ended the game");

    let game = env.load(&id).await;
    assert_eq!(game.status, GameStatus::Completed);
    for (i, v) in values.iter().enumerate() {
        let p = game.participant(player(i as u64 + 1)).expect("participant");
        assert_eq!(
            p.roll.map(|d| d.get()),
            Some(*v),
            "each roll recorded once, as rolled"
        );
    }
    assert_eq!(game.winner, Some(player(10)));
    let drinks = ledger(&env, &id).await;
    assert_eq!(
        drinks.len(),
        1,
        "one lowest-roll drink, poured once: {drinks:?}"
    );
    assert_eq!(
        (drinks[0].0.to, drinks[0].0.reason),
        (player(1), DrinkReason::LowestRoll)
    );
    assert!(
        drinking::check::check(&env.redis)
            .await
            .expect("check")
            .is_empty()
    );
}

#[tokio::test]
async fn one_game_per_channel_until_it_ends() {
    let env = env().await;
    let id = env.started_game(1, &[]).await;
    let err = env.command(2, "start").await.expect_err("a game runs here");
    assert!(err.to_string().contains("already running"), "{err}");
    // Another channel is fine.
    env.command_in(2, CHANNEL + 1, "start")
        .await
        .expect("other channel");
    env.command(1, "abandon").await.expect("creator abandons");
    assert!(env.load(&id).await.abandoned);
    env.command(2, "start").await.expect("channel free again");
}

#[tokio::test]
async fn the_player_limit_holds_in_storage() {
    let env = env_with(|c| c.player_limit = 2).await;
    let id = env.started_game(1, &[2]).await;
    let err = env
        .press(3, &custom_id(Press::Join, &id))
        .await
        .expect_err("full");
    assert!(err.to_string().contains("full (2 players)"), "{err}");
    assert_eq!(env.load(&id).await.participants.len(), 2);
}

#[tokio::test]
async fn force_start_after_five_minutes_pours_a_delayed_start_drink() {
    let env = env().await;
    let id = env.started_game(1, &[2]).await;
    let err = env
        .press(2, &custom_id(Press::Begin, &id))
        .await
        .expect_err("too early");
    assert!(err.to_string().contains("5 min"), "{err}");
    env.clock.advance(Duration::from_secs(300));
    env.press(2, &custom_id(Press::Begin, &id))
        .await
        .expect("force start");
    let drinks = ledger(&env, &id).await;
    assert_eq!(drinks.len(), 1);
    assert_eq!(
        (drinks[0].0.from, drinks[0].0.to, drinks[0].0.reason),
        (Some(player(2)), player(1), DrinkReason::DelayedStart)
    );
    let mut conn = env.redis.conn();
    let assigned: i64 = conn
        .hget("player_drinks:2", "assigned")
        .await
        .expect("hget");
    assert_eq!(assigned, 1);
}

#[tokio::test]
async fn pay_leaderboard_and_new_session() {
    let env = env().await;
    env.dice.script(player(1), &[1]);
    env.dice.script(player(2), &[5]);
    let id = env.started_game(1, &[2]).await;
    env.press(1, &custom_id(Press::Begin, &id))
        .await
        .expect("begin");
    env.press(1, &custom_id(Press::Roll, &id))
        .await
        .expect("roll");
    env.clock.advance(Duration::from_secs(1));
    env.press(2, &custom_id(Press::Roll, &id))
        .await
        .expect("roll");
    // alice: critical fail + lowest roll.
    let board = reply_of(env.command(2, "leaderboard").await.expect("leaderboard"));
    assert!(
        board.content.contains("1. **alice** — owes 2 · paid 0"),
        "{}",
        board.content
    );

    let paid = reply_of(
        env.press(1, &custom_id(Press::Pay, &id))
            .await
            .expect("pay"),
    );
    assert!(
        paid.content.contains("rolled a 1") && paid.content.contains("still owe 1"),
        "{}",
        paid.content
    );
    let board = reply_of(env.command(2, "leaderboard").await.expect("leaderboard"));
    assert!(
        board.content.contains("owes 1 · paid 1"),
        "{}",
        board.content
    );
    let err = env
        .press(2, &custom_id(Press::Pay, &id))
        .await
        .expect_err("bob owes nothing");
    assert!(err.to_string().contains("no unpaid drinks"), "{err}");

    env.command(2, "newsession").await.expect("new session");
    let board = reply_of(env.command(2, "leaderboard").await.expect("leaderboard"));
    assert!(board.content.contains("No drinks yet"), "{}", board.content);
    // Counters and the ledger are history: the check still agrees.
    assert!(
        drinking::check::check(&env.redis)
            .await
            .expect("check")
            .is_empty()
    );
}

/// Any member may start a new session, as in the original; the channel is told who
/// did (a mention that pings nobody), whose leaderboard restarts and which session
/// ended, its drinks still owed.
#[tokio::test]
async fn a_new_session_says_in_the_channel_who_started_it_and_what_ended() {
    let env = env().await;
    let first = reply_of(env.command(2, "newsession").await.expect("new session"));
    assert!(!first.ephemeral, "said in the channel");
    assert_eq!(
        first.content,
        "🆕 **New session** started by <@2>: this server's leaderboard starts from zero."
    );
    let started = base::Clock::now(env.clock.as_ref()).timestamp();
    env.clock.advance(Duration::from_secs(60));
    // Carol is in no game and started no session: she may, and is named.
    let second = reply_of(env.command(3, "newsession").await.expect("new session"));
    assert!(!second.ephemeral, "said in the channel");
    assert_eq!(
        second.content,
        format!(
            "🆕 **New session** started by <@3>: this server's leaderboard starts from zero. The session since <t:{started}:R> (started by <@2>) ended; its unpaid drinks are still owed (`/ronnied tab`)."
        )
    );
    assert_eq!(
        second.mentions,
        discord::Mentions::default(),
        "pings nobody"
    );
}

/// A session document that does not decode does not stop a new session (starting one
/// is how it is repaired): the new one replaces it, and the reply names no ended one.
#[tokio::test]
async fn a_new_session_replaces_one_that_does_not_decode() {
    let env = env().await;
    let mut conn = env.redis.conn();
    let _: () = conn
        .set(format!("session:{GUILD}"), "not json")
        .await
        .expect("set");
    let reply = reply_of(env.command(3, "newsession").await.expect("new session"));
    assert_eq!(
        reply.content,
        "🆕 **New session** started by <@3>: this server's leaderboard starts from zero."
    );
    let stored: String = conn.get(format!("session:{GUILD}")).await.expect("get");
    let stored: SessionDoc = serde_json::from_str(&stored).expect("a session again");
    assert_eq!(stored.started_by, Some(player(3)));
    let board = reply_of(env.command(3, "leaderboard").await.expect("leaderboard"));
    assert!(board.content.contains("No drinks yet"), "{}", board.content);
}

/// The tab counts what a player still owes from earlier sessions and links the games
/// that hold it; Pay on a game where they owe nothing says where they do.
#[tokio::test]
async fn the_tab_and_pay_say_where_unpaid_drinks_are_across_sessions() {
    let env = env().await;
    env.dice.script(player(1), &[1, 4]);
    env.dice.script(player(2), &[5, 2]);
    let started = base::Clock::now(env.clock.as_ref()).timestamp();
    let first = env.started_game(1, &[2]).await;
    // The drinks are poured well after the game was posted: the tab names the game by
    // when it was posted.
    env.clock.advance(Duration::from_secs(600));
    env.press(1, &custom_id(Press::Begin, &first))
        .await
        .expect("begin");
    env.press(1, &custom_id(Press::Roll, &first))
        .await
        .expect("roll");
    env.press(2, &custom_id(Press::Roll, &first))
        .await
        .expect("roll");
    // alice owes two drinks in the first game (critical fail, lowest roll); bob then
    // starts a new session, and a second game where bob rolls lowest.
    env.command(2, "newsession").await.expect("new session");
    env.clock.advance(Duration::from_secs(60));
    let second = env.started_game(2, &[1]).await;
    env.press(2, &custom_id(Press::Begin, &second))
        .await
        .expect("begin");
    env.press(1, &custom_id(Press::Roll, &second))
        .await
        .expect("roll");
    env.press(2, &custom_id(Press::Roll, &second))
        .await
        .expect("roll");

    let link = format!("https://discord.com/channels/{GUILD}/{CHANNEL}/{MESSAGE}");
    let err = env
        .press(1, &custom_id(Press::Pay, &second))
        .await
        .expect_err("alice owes nothing in the second game");
    let err = err.to_string();
    assert!(
        err.contains("You have no unpaid drinks in this game. You owe **2** drinks in other games"),
        "{err}"
    );
    assert!(
        err.contains(&link) && err.contains("earlier session"),
        "{err}"
    );

    let tab = reply_of(env.command(1, "tab").await.expect("tab")).content;
    assert!(tab.contains("this session"), "{tab}");
    assert!(tab.contains("You owe **0**"), "{tab}");
    assert!(
        tab.contains("From earlier sessions you still owe **2** drinks."),
        "{tab}"
    );
    assert!(
        tab.contains("**Where to pay**") && tab.contains(&link),
        "{tab}"
    );
    assert!(tab.contains("2 drinks, earlier session"), "{tab}");
    assert!(
        tab.contains(&format!("[game of <t:{started}:R>]({link})")),
        "{tab}"
    );

    // The old message still takes the payment, and the tab follows.
    env.press(1, &custom_id(Press::Pay, &first))
        .await
        .expect("pay on the first game");
    let tab = reply_of(env.command(1, "tab").await.expect("tab")).content;
    assert!(
        tab.contains("From earlier sessions you still owe **1** drink."),
        "{tab}"
    );
    // bob's drink is this session's, in the second game.
    let tab = reply_of(env.command(2, "tab").await.expect("tab")).content;
    assert!(tab.contains("You owe **1**"), "{tab}");
    assert!(!tab.contains("earlier session"), "{tab}");
}

#[tokio::test]
async fn concurrent_payments_never_pay_a_drink_twice() {
    let env = env().await;
    env.dice.script(player(1), &[1]);
    env.dice.script(player(2), &[4]);
    let id = env.started_game(1, &[2]).await;
    env.press(1, &custom_id(Press::Begin, &id))
        .await
        .expect("begin");
    env.press(1, &custom_id(Press::Roll, &id))
        .await
        .expect("roll");
    env.press(2, &custom_id(Press::Roll, &id))
        .await
        .expect("roll");
    // alice owes two drinks (critical fail, lowest roll); five presses race for them.
    let env = Arc::new(env);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (env, id) = (Arc::clone(&env), id.clone());
            tokio::spawn(async move { env.press(1, &custom_id(Press::Pay, &id)).await.is_ok() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("join") {
            ok += 1;
        }
    }
    assert_eq!(ok, 2);
    let drinks = ledger(&env, &id).await;
    assert_eq!(drinks.len(), 2);
    assert!(drinks.iter().all(|(d, _)| d.paid));
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let mut env = env().await;
    let id = env.started_game(1, &[]).await;
    let port = env.world.redis_server().port();
    env.world.redis_server().kill();
    let before = env.game.round_trips();
    let repo = env.game.repo().clone();
    let loading = tokio::spawn(async move { repo.load_game(&id).await });
    // The server comes back once the first attempt has failed and a retry has begun.
    testkit::eventually("a failed round trip is retried", || {
        let trips = env.game.round_trips();
        async move { (trips >= before + 2).then_some(()) }
    })
    .await;
    let _server = store::harness::TestRedis::start_on(port).await;
    // The new server is empty: the game is gone, but the call gets an answer instead
    // of a connection error.
    let result = loading.await.expect("the load task");
    assert!(matches!(result, Ok(None)), "{result:?}");
}

#[tokio::test]
async fn unreadable_documents_are_refused_not_overwritten() {
    let env = env().await;
    let id = env.started_game(1, &[2]).await;
    let mut conn = env.redis.conn();
    let _: () = conn
        .set(format!("game:{id}"), "{\"not\":\"a game\"}")
        .await
        .expect("set");
    let err = env
        .press(1, &custom_id(Press::Begin, &id))
        .await
        .expect_err("bad data");
    assert!(matches!(err, discord::HandlerError::Internal(_)), "{err}");
    let raw: String = conn.get(format!("game:{id}")).await.expect("get");
    assert_eq!(raw, "{\"not\":\"a game\"}");
}

#[tokio::test]
async fn a_tie_is_rolled_off_through_the_buttons_and_counts_for_the_parent_game() {
    let env = env().await;
    env.dice.script(player(1), &[2, 3, 1]);
    env.dice.script(player(2), &[2, 3, 4]);
    env.dice.script(player(3), &[5]);
    let id = env.started_game(1, &[2, 3]).await;
    let roll = custom_id(Press::Roll, &id);
    env.press(1, &custom_id(Press::Begin, &id))
        .await
        .expect("begin");
    env.press(1, &roll).await.expect("roll");
    env.press(2, &roll).await.expect("roll");
    let third = reply_of(env.press(3, &roll).await.expect("roll"));
    assert!(
        third
            .content
            .contains("Tie for lowest between **alice** and **bob**"),
        "{}",
        third.content
    );
    let err = env
        .press(3, &roll)
        .await
        .expect_err("carol is not in the roll-off");
    assert!(
        err.to_string()
            .contains("You are not in this roll-off: only alice and bob roll in it."),
        "{err}"
    );

    // The roll-off ties again and nests; the second one breaks the tie.
    env.press(1, &roll).await.expect("roll-off 1");
    let again = reply_of(env.press(2, &roll).await.expect("roll-off 1"));
    assert!(
        again.content.starts_with("**Roll-off (lowest)**"),
        "{}",
        again.content
    );
    assert!(
        again.content.contains("Tie for lowest"),
        "{}",
        again.content
    );
    env.press(1, &roll).await.expect("roll-off 2");
    let last = reply_of(env.press(2, &roll).await.expect("roll-off 2"));
    assert!(
        last.content.contains("**alice** rolled lowest") && last.content.contains("Game over"),
        "{}",
        last.content
    );

    let game = env.load(&id).await;
    assert_eq!(game.status, GameStatus::Completed);
    assert_eq!(game.roll_offs.len(), 1);
    assert_eq!(game.roll_offs[0].roll_offs.len(), 1);
    let drinks = ledger(&env, &id).await;
    let mut reasons: Vec<DrinkReason> = drinks.iter().map(|(d, _)| d.reason).collect();
    reasons.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reasons,
        vec![DrinkReason::CriticalFail, DrinkReason::LowestRoll]
    );
    assert!(
        drinks
            .iter()
            .all(|(d, _)| d.game_id == id && d.roll_off_id.is_some() && d.to == player(1))
    );
    // Only the top-level game is a key.
    let mut conn = env.redis.conn();
    let games: Vec<String> = conn.keys("game:*").await.expect("keys");
    assert_eq!(games, vec![format!("game:{id}")]);
    let public = drinking::commands::render_game(&game, None);
    assert!(
        public.content.contains("Roll-off for lowest"),
        "{}",
        public.content
    );
    assert!(
        public.content.contains("Lowest roll: **alice** drinks"),
        "{}",
        public.content
    );
}

/// `player_games:{playerID}` names every game a player is in until that game expires:
/// finished games stay next to running ones, a running game keeps the set from
/// expiring, and a game that is gone leaves the set when the next game ends.
#[tokio::test]
async fn player_games_keeps_every_game_until_it_expires() {
    let env = env_with(|c| c.completed_ttl = Duration::from_secs(100)).await;
    let mut conn = env.redis.conn();
    let members = |n: u64| {
        let mut conn = env.redis.conn();
        async move {
            let mut games: Vec<String> = conn
                .smembers(format!("player_games:{n}"))
                .await
                .expect("smembers");
            games.sort();
            games
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // Game one: alice and bob, finished.
    env.dice.script(player(1), &[5]);
    env.dice.script(player(2), &[2]);
    let one = env.started_game(1, &[2]).await;
    env.press(1, &custom_id(Press::Begin, &one))
        .await
        .expect("begin");
    env.press(1, &custom_id(Press::Roll, &one))
        .await
        .expect("roll");
    env.press(2, &custom_id(Press::Roll, &one))
        .await
        .expect("roll");
    assert!(env.load(&one).await.is_completed());
    assert_eq!(members(1).await, vec![one.to_string()]);
    let ttl = env.ttl("player_games:1").await;
    assert!((95..=100).contains(&ttl), "expires with game one: {ttl}");

    // Game two in another channel, still running: both games are named, no TTL.
    let two = {
        let reply = reply_of(
            env.command_in(1, CHANNEL + 1, "start")
                .await
                .expect("start"),
        );
        game_id_of(&reply)
    };
    assert_eq!(
        members(1).await,
        sorted(vec![one.to_string(), two.to_string()])
    );
    assert_eq!(
        env.ttl("player_games:1").await,
        -1,
        "a running game keeps the set"
    );
    assert!(
        drinking::check::check(&env.redis)
            .await
            .expect("check")
            .is_empty()
    );

    // Game one expires (its key goes, as its TTL would make it go).
    let _: () = conn.del(format!("game:{one}")).await.expect("del");
    // bob's set names only game one: it expires with it. The check is content.
    assert!(
        drinking::check::check(&env.redis)
            .await
            .expect("check")
            .is_empty()
    );

    // Game two ends: game one, gone, leaves alice's set; game two stays until it expires.
    env.press(1, &custom_id(Press::Begin, &two))
        .await
        .expect("begin");
    env.dice.script(player(1), &[3]);
    env.press(1, &custom_id(Press::Roll, &two))
        .await
        .expect("roll");
    assert!(env.load(&two).await.is_completed());
    assert_eq!(members(1).await, vec![two.to_string()]);
    let ttl = env.ttl("player_games:1").await;
    assert!((95..=100).contains(&ttl), "expires with game two: {ttl}");
    assert_eq!(
        members(2).await,
        vec![one.to_string()],
        "bob's set waits to expire"
    );
    assert!(
        drinking::check::check(&env.redis)
            .await
            .expect("check")
            .is_empty()
    );

    // A set that names no running game and never expires is what the check reports.
    let _: () = conn.persist("player_games:1").await.expect("persist");
    let findings = drinking::check::check(&env.redis).await.expect("check");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].subject, "player_games:1");
}

/// Lowering `drinking_max_players` (a restart with a smaller limit) leaves running
/// games with more players playable and abandonable; only joining is held to it.
#[tokio::test]
async fn a_lowered_player_limit_leaves_running_games_writable() {
    let env = env_with(|c| c.player_limit = 3).await;
    let id = env.started_game(1, &[2, 3]).await;
    env.press(1, &custom_id(Press::Begin, &id))
        .await
        .expect("begin");
    let lowered = Drinking::new(
        &env.world.ctx,
        DrinkingConfig {
            dice: env.dice.clone(),
            player_limit: 2,
            ..DrinkingConfig::default()
        },
    );
    env.dice.script(player(2), &[4]);
    env.press_on(&lowered, 2, &custom_id(Press::Roll, &id), vec![])
        .await
        .expect("a roll in a game over the new limit");
    let game = env.load(&id).await;
    assert_eq!(game.participants.len(), 3);
    assert!(
        game.participants.iter().any(|p| p.roll.is_some()),
        "{game:?}"
    );
    let abandon = lowered
        .commands()
        .command(discord::Invocation {
            id: discord::Id::new(900_001),
            action: discord::Action::Command {
                name: "ronnied".into(),
                options: discord::Options {
                    subcommand: vec!["abandon".into()],
                    values: Default::default(),
                    bots: Default::default(),
                },
            },
            actor: discord::Actor {
                id: player(1),
                name: name(1),
            },
            guild_id: Some(discord::GuildId::new(GUILD)),
            channel_id: discord::ChannelId::new(CHANNEL),
            member_permissions: None,
        })
        .await;
    abandon.expect("abandoned");
    assert_eq!(env.load(&id).await.status, GameStatus::Completed);
}
