//! Measures what a clip-archive bench leans on: seeding a long channel history
//! (time and resident memory) and serving it back 100 messages a request, as a
//! deep scan walks it (requests per second, one client in the same process).
//!
//! `cargo run --release -p discord-sim --example history -- [messages]`
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

use std::time::Instant;

use discord_sim::{AttachmentSpec, ChannelKind, SeedMessage, Sim, SimConfig, Snowflake};
use serde_json::Value;

fn main() {
    let count: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(count));
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn run(count: u32) {
    let sim = Sim::start(SimConfig::default()).unwrap();
    let demo = sim.seed_demo();
    let channel = sim
        .create_channel(demo.guild, "clips", ChannelKind::Text)
        .unwrap();
    let history: Vec<SeedMessage> = (0..count)
        .map(|i| {
            let message = SeedMessage::new(demo.alice, format!("message number {i}"));
            if i % 20 == 0 {
                message.attachment(AttachmentSpec {
                    width: Some(1920),
                    height: Some(1080),
                    duration_secs: Some(30.0),
                    ..AttachmentSpec::sized(format!("clip-{i}.mp4"), "video/mp4", 50_000_000)
                })
            } else {
                message
            }
        })
        .collect();
    let before = rss_mib();
    let started = Instant::now();
    sim.seed_history(channel, history).unwrap();
    let seeded = started.elapsed();
    println!(
        "seeded {count} messages in {:.0} ms; resident memory +{:.0} MiB",
        seeded.as_secs_f64() * 1000.0,
        rss_mib() - before
    );

    println!(
        "a stored message is {} bytes before its text and files",
        std::mem::size_of::<discord_sim::Message>()
    );
    let http = reqwest::Client::new();
    let url = format!("{}/channels/{channel}/messages?limit=100", sim.api_url());
    let auth = format!("Bot {}", sim.token());
    let started = Instant::now();
    let (mut requests, mut messages) = (0u32, 0usize);
    let mut before: Option<Snowflake> = None;
    loop {
        let page_url = match before {
            Some(id) => format!("{url}&before={id}"),
            None => url.clone(),
        };
        let body = http
            .get(page_url)
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        requests += 1;
        let page: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last["id"].as_str().unwrap().parse().unwrap());
        messages += page.len();
    }
    let walked = started.elapsed().as_secs_f64();
    println!(
        "deep walk: {requests} requests, {messages} messages in {walked:.2} s \
         ({:.0} requests/s, {:.0} messages/s, client parsing included)",
        f64::from(requests) / walked,
        messages as f64 / walked
    );
}
