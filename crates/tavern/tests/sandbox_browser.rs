//! The sandbox console in headless Chromium, driven through ChromeDriver (WebDriver).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use discord_sim::ChannelKind;
use testkit::browser::Browser;

const MESSAGES: &str = "return document.getElementById('messages').innerText";

#[tokio::test]
async fn a_person_types_ping_in_the_sandbox_console_and_sees_the_reply() {
    let app = common::spawn_app().await;
    let driver = Browser::start().await;

    driver.open(&app.url("/sandbox")).await;
    // The console lists the demo guild's channels once it has loaded.
    driver.find("button.channel.active").await;
    let input = driver.find("#command").await;
    driver.type_into(&input, "/ping").await;
    let send = driver.find("#send").await;
    driver.click(&send).await;

    let text = driver
        .text_when(
            "the reply to /ping is shown",
            Duration::from_secs(15),
            MESSAGES,
            |text| text.contains("Pong"),
        )
        .await;
    assert!(
        text.contains("Gateway:") && text.contains("REST:"),
        "{text}"
    );
    assert!(
        text.contains("BOT"),
        "the reply is shown as the bot's: {text}"
    );

    // A mistake is explained on the page, not swallowed.
    let input = driver.find("#command").await;
    driver.type_into(&input, "/nope").await;
    driver.click(&send).await;
    driver
        .text_when(
            "the status shows the error",
            Duration::from_secs(10),
            "return document.getElementById('status').innerHTML",
            |status| status.contains("unknown command <code>/nope</code>"),
        )
        .await;
    driver.quit().await;
}

#[tokio::test]
async fn the_console_shows_what_discord_would() {
    let app = common::spawn_app().await;
    let (sim, demo) = (app.sim(), app.demo());
    sim.post_user_message(
        demo.general,
        demo.alice,
        &format!(
            "<@{}>, ||the innkeeper did it|| in <#{}>",
            demo.bob, demo.dice
        ),
        vec![],
    )
    .expect("alice posts");
    let quiet = sim
        .create_channel(demo.guild, "quiet", ChannelKind::Text)
        .expect("a new channel");
    let driver = Browser::start().await;

    driver.open(&app.url("/sandbox")).await;
    // Voice channels are listed, marked as voice.
    driver.find("button.channel.voice").await;
    let voice = driver
        .script(
            "return Array.from(document.querySelectorAll('button.channel.voice'))\
             .map(b => b.textContent).join('|')",
        )
        .await;
    assert!(
        voice.as_str().unwrap_or_default().contains("Table"),
        "{voice}"
    );

    // Mentions show as names, and the spoiler stays hidden until clicked.
    let general = driver
        .find(&format!("button.channel[data-id=\"{}\"]", demo.general))
        .await;
    driver.click(&general).await;
    let text = driver
        .text_when(
            "#general's messages are shown",
            Duration::from_secs(10),
            MESSAGES,
            |text| text.contains("the innkeeper did it"),
        )
        .await;
    assert!(text.contains("@bob"), "{text}");
    assert!(text.contains("#dice"), "{text}");
    assert!(!text.contains("<@"), "{text}");
    let spoiler = driver.find("#messages .spoiler").await;
    let class = driver
        .script("return document.querySelector('#messages .spoiler').className")
        .await;
    assert_eq!(class, "spoiler");
    driver.click(&spoiler).await;
    let class = driver
        .script("return document.querySelector('#messages .spoiler').className")
        .await;
    assert_eq!(class, "spoiler revealed");

    // An empty channel opens with its welcome.
    driver
        .open(&app.url(&format!("/sandbox?channel={quiet}")))
        .await;
    let text = driver
        .text_when(
            "#quiet's welcome is shown",
            Duration::from_secs(10),
            MESSAGES,
            |text| text.contains("This is the beginning of #quiet"),
        )
        .await;
    assert!(text.contains("Welcome to #quiet!"), "{text}");
    let messages = driver
        .script("return document.querySelectorAll('#messages .message').length")
        .await;
    assert_eq!(messages, 0);
    driver.quit().await;
}
