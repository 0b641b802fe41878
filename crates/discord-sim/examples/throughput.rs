//! Measures how many interactions per second the sim sustains end to end: the sim
//! dispatches INTERACTION_CREATE, a minimal bot (raw WebSocket + reqwest, in the
//! same process) answers each with a type 4 callback, and the driver waits for every
//! reply. Prints achieved rate and dispatch -> callback latency percentiles.
//!
//! `cargo run --release -p discord-sim --example throughput -- [rate_per_sec] [seconds]`
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::time::{Duration, Instant};

use discord_sim::{Sim, SimConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(rate, seconds));
}

async fn run(rate: u64, seconds: u64) {
    let sim = Sim::start(SimConfig {
        request_log_capacity: 10_000,
        ..SimConfig::default()
    })
    .unwrap();
    let demo = sim.seed_demo();
    let http = reqwest::Client::new();
    let status = http
        .put(format!(
            "{}/applications/{}/guilds/{}/commands",
            sim.api_url(),
            sim.application_id(),
            demo.guild
        ))
        .header("Authorization", format!("Bot {}", sim.token()))
        .json(&json!([{"name": "ping", "description": "Ping"}]))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());

    tokio::spawn(bot(sim.clone(), http.clone()));
    while sim.gateway_session_count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let total = rate * seconds;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut waiters = Vec::with_capacity(total as usize);
    for _ in 0..total {
        ticker.tick().await;
        let interaction = sim
            .run_command(demo.alice, demo.dice, "ping", Value::Null)
            .unwrap();
        waiters.push(tokio::spawn(async move {
            let reply = interaction.response(Duration::from_secs(10)).await;
            reply.map(|r| {
                (
                    r.callback_at - interaction.dispatched_at,
                    interaction.dispatched_at.elapsed(),
                )
            })
        }));
    }
    let dispatch_time = started.elapsed();
    let mut latencies = Vec::with_capacity(waiters.len());
    let mut round_trips = Vec::with_capacity(waiters.len());
    let mut failed = 0;
    for waiter in waiters {
        match waiter.await.unwrap() {
            Ok((latency, _)) => latencies.push(latency),
            Err(_) => failed += 1,
        }
    }
    let finished = started.elapsed();
    for (i, latency) in latencies.iter().enumerate() {
        if i % 97 == 0 {
            round_trips.push(*latency);
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!("target rate        {rate}/s for {seconds} s ({total} interactions)");
    println!(
        "dispatched in      {:.2} s ({:.0}/s)",
        dispatch_time.as_secs_f64(),
        total as f64 / dispatch_time.as_secs_f64()
    );
    println!(
        "all answered after {:.2} s ({:.0}/s)",
        finished.as_secs_f64(),
        latencies.len() as f64 / finished.as_secs_f64()
    );
    println!("unanswered         {failed}");
    println!(
        "dispatch->callback p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    sim.shutdown();
}

/// A minimal bot: IDENTIFY, then answer every INTERACTION_CREATE with a message.
async fn bot(sim: Sim, http: reqwest::Client) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/?v=10&encoding=json", sim.gateway_url()))
            .await
            .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::Text(
        json!({"op": 2, "d": {"token": sim.token(), "intents": 1, "properties": {}}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let api = sim.api_url();
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["t"] != "INTERACTION_CREATE" {
            continue;
        }
        let url = format!(
            "{api}/interactions/{}/{}/callback",
            frame["d"]["id"].as_str().unwrap(),
            frame["d"]["token"].as_str().unwrap()
        );
        let http = http.clone();
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"type": 4, "data": {"content": "pong"}}))
                .send()
                .await;
            if let Ok(response) = response {
                assert_eq!(response.status().as_u16(), 204);
            }
        });
    }
}
