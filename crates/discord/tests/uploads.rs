//! Files uploaded with messages (multipart requests), against discord-sim.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config, id, sim};
use discord::{Discord, Reply};

#[tokio::test]
async fn a_message_with_files_carries_them_and_one_without_none() {
    let (sim, demo) = sim();
    let discord = Discord::new(&config(&sim));
    let reply = Reply::text("the chart")
        .upload(
            "odds.png",
            vec![0x89, b'P', b'N', b'G'],
            Some("a chart".into()),
        )
        .upload("notes.txt", b"hello".to_vec(), None);
    let sent = discord.send(id(demo.dice), &reply).await.expect("sent");
    let message = sim.message(demo.dice, sent.get()).expect("stored");
    assert_eq!(message.content, "the chart");
    let names: Vec<&str> = message
        .attachments
        .iter()
        .map(|a| a.filename.as_str())
        .collect();
    assert_eq!(names, ["odds.png", "notes.txt"]);
    let bytes = sim
        .attachment_data(message.attachments[1].id)
        .expect("bytes");
    assert_eq!(&bytes[..], b"hello");

    let plain = discord
        .send(id(demo.dice), &Reply::text("no files"))
        .await
        .expect("sent");
    let message = sim.message(demo.dice, plain.get()).expect("stored");
    assert!(message.attachments.is_empty());

    let dm = discord
        .dm(
            id(demo.alice),
            &Reply::text("for you").upload("a.txt", b"x".to_vec(), None),
        )
        .await
        .expect("dm");
    let channel = sim.dm_channel(demo.alice).expect("dm channel");
    let message = sim.message(channel, dm.get()).expect("stored");
    assert_eq!(message.attachments.len(), 1);
}
