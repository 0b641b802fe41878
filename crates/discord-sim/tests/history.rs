//! What a clip archive needs from the fake Discord: seeded histories, history reads
//! exactly as Discord pages them, edits, deletes and bulk deletes on the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::{ALL_INTENTS, RawGateway, Rest, twilight, twilight_event, unsigned};
use discord_sim::{AttachmentSpec, ChannelKind, SeedMessage, SimError, Snowflake};
use serde_json::{Value, json};
use twilight_model::gateway::event::{DispatchEvent, GatewayEvent};

fn ids(messages: &Value) -> Vec<Snowflake> {
    messages
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn video(name: &str) -> AttachmentSpec {
    AttachmentSpec {
        width: Some(1920),
        height: Some(1080),
        duration_secs: Some(31.5),
        ..AttachmentSpec::sized(name, "video/mp4", 48_000_000)
    }
}

#[tokio::test]
async fn seeding_a_long_history_is_cheap_ordered_and_silent() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let clips = sim
        .create_channel(demo.guild, "clips", ChannelKind::Text)
        .unwrap();
    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;
    // Someone who has since left the server: messages stay, membership is not needed.
    let former = sim.create_user("former-member");

    let history = (0..200_000u32).map(|i| {
        let author = if i % 3 == 0 { former } else { demo.alice };
        let message = SeedMessage::new(author, format!("message {i}"));
        if i % 20 == 0 {
            message.attachment(video(&format!("clip-{i}.mp4")))
        } else {
            message
        }
    });
    let started = Instant::now();
    let seeded = sim.seed_history(clips, history).unwrap();
    eprintln!("seeded 200,000 messages in {:?}", started.elapsed());

    assert_eq!(seeded.len(), 200_000);
    assert!(
        seeded.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing"
    );
    assert!(seeded[0] > clips, "newer than the channel");
    assert_eq!(sim.message_count(clips), 200_000);
    assert_eq!(
        sim.channel(clips).unwrap().last_message_id,
        seeded.last().copied()
    );
    let with_video = sim.message(clips, seeded[40]).unwrap();
    assert_eq!(with_video.attachments.len(), 1);
    assert_eq!(with_video.attachments[0].size, 48_000_000);
    assert_eq!(with_video.author_id, demo.alice);

    // Nothing was dispatched: the next MESSAGE_CREATE is the live one, and it is
    // newer than the whole history.
    let live = sim
        .post_user_message(clips, demo.bob, "after the seed", Vec::new())
        .unwrap();
    assert!(live > *seeded.last().unwrap());
    let created = gateway.dispatch("MESSAGE_CREATE").await;
    assert_eq!(created["d"]["id"], live.to_string());
    assert!(
        !gateway.frames.iter().any(|f| f.contains("message 1")),
        "no seeded message reached the gateway"
    );

    // Bad input changes nothing.
    let nobody = Snowflake::new(42);
    let error = sim
        .seed_history(
            clips,
            [
                SeedMessage::new(demo.bob, "ok"),
                SeedMessage::new(nobody, "?"),
            ],
        )
        .unwrap_err();
    assert!(
        matches!(error, SimError::UnknownUser(id) if id == nobody),
        "{error}"
    );
    assert_eq!(sim.message_count(clips), 200_001);
    let category = sim
        .create_channel(demo.guild, "Archive", ChannelKind::Category)
        .unwrap();
    assert!(matches!(
        sim.seed_history(category, [SeedMessage::new(demo.bob, "x")]),
        Err(SimError::NotTextChannel(_))
    ));
}

#[tokio::test]
async fn history_pages_like_discord_in_both_directions() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let seeded = sim
        .seed_history(
            demo.general,
            (0..1_000).map(|i| SeedMessage::new(demo.alice, format!("m{i}"))),
        )
        .unwrap();
    let path = format!("/channels/{}/messages", demo.general);

    // Default limit 50, newest first.
    let (status, page) = rest.get(&path).await;
    assert_eq!(status, 200);
    let expected: Vec<Snowflake> = seeded.iter().rev().take(50).copied().collect();
    assert_eq!(ids(&page), expected);

    // A deep scan: backward from the newest with `before`, 100 at a time.
    let mut walked = Vec::new();
    let mut before: Option<Snowflake> = None;
    loop {
        let query = match before {
            Some(id) => format!("{path}?limit=100&before={id}"),
            None => format!("{path}?limit=100"),
        };
        let (_, page) = rest.get(&query).await;
        let page = ids(&page);
        if page.is_empty() {
            break;
        }
        assert!(page.windows(2).all(|w| w[0] > w[1]), "newest first");
        before = page.last().copied();
        walked.extend(page);
    }
    let newest_first: Vec<Snowflake> = seeded.iter().rev().copied().collect();
    assert_eq!(walked, newest_first);

    // A catch-up: forward with `after`; each page is the `limit` messages right
    // after the anchor, newest first.
    let mut walked = Vec::new();
    let mut after = Snowflake::new(0);
    loop {
        let (_, page) = rest.get(&format!("{path}?limit=100&after={after}")).await;
        let page = ids(&page);
        if page.is_empty() {
            break;
        }
        assert!(page.windows(2).all(|w| w[0] > w[1]), "newest first");
        after = page[0];
        walked.extend(page.into_iter().rev());
    }
    assert_eq!(walked, seeded);
    let (_, page) = rest
        .get(&format!("{path}?limit=3&after={}", seeded[10]))
        .await;
    assert_eq!(ids(&page), vec![seeded[13], seeded[12], seeded[11]]);

    // `around` takes both sides of the anchor, the anchor included.
    let (_, page) = rest
        .get(&format!("{path}?limit=4&around={}", seeded[500]))
        .await;
    assert_eq!(
        ids(&page),
        vec![seeded[502], seeded[501], seeded[500], seeded[499]]
    );

    // Unknown channels are 404 Unknown Channel; a guild without the bot is 403.
    let (status, body) = rest.get("/channels/12345/messages").await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10003)));
    let theirs = sim.create_user_guild("Elsewhere", demo.bob).unwrap();
    let hidden = sim
        .create_channel(theirs, "clips", ChannelKind::Text)
        .unwrap();
    let (status, body) = rest.get(&format!("/channels/{hidden}/messages")).await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (403, Some(50001)),
        "{body}"
    );
}

#[tokio::test]
async fn listed_messages_render_exactly_as_single_ones() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let channel = demo.general;
    sim.seed_history(
        channel,
        [
            SeedMessage::new(demo.alice, "plain"),
            SeedMessage::new(demo.bob, "with a clip").attachment(video("a.mp4")),
            SeedMessage::new(demo.carol, format!("hey <@{}> and @everyone", demo.alice)),
            SeedMessage::new(sim.bot_user_id(), ""),
        ],
    )
    .unwrap();
    let uploaded = AttachmentSpec::new("b.webm", "video/webm", b"webm".to_vec());
    let posted = sim
        .post_user_message(channel, demo.alice, "live", vec![uploaded])
        .unwrap();
    let (status, _) = rest
        .post(
            &format!("/channels/{channel}/messages"),
            json!({"content": "a reply", "message_reference": {"message_id": posted},
                   "embeds": [{"title": "Recap"}], "nonce": "n-1"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = rest
        .post(
            &format!("/channels/{channel}/messages"),
            json!({"content": "quiet", "embeds": [{"title": "hidden"}], "flags": 4}),
        )
        .await;
    assert_eq!(status, 200);

    let (_, list) = rest
        .get(&format!("/channels/{channel}/messages?limit=100"))
        .await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 7);
    twilight::<Vec<twilight_model::channel::Message>>("GET messages", &Value::Array(list.clone()));
    for mut listed in list {
        let id = listed["id"].as_str().unwrap().to_owned();
        let (_, mut single) = rest
            .get(&format!("/channels/{channel}/messages/{id}"))
            .await;
        for message in [&mut listed, &mut single] {
            for attachment in message["attachments"].as_array_mut().unwrap() {
                for key in ["url", "proxy_url"] {
                    let url = unsigned(attachment[key].as_str().unwrap()).to_owned();
                    attachment[key] = json!(url);
                }
            }
        }
        assert_eq!(listed, single);
    }
}

#[tokio::test]
async fn edits_deletes_and_bulk_deletes_reach_the_gateway() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, ALL_INTENTS, [0, 1]).await;
    let channel = demo.general;

    let first = AttachmentSpec::new("one.mp4", "video/mp4", b"1111".to_vec());
    let second = AttachmentSpec::new("two.png", "image/png", b"22".to_vec());
    let message = sim
        .post_user_message(
            channel,
            demo.alice,
            "two files",
            vec![first.clone(), second],
        )
        .unwrap();
    gateway.dispatch("MESSAGE_CREATE").await;
    let before = sim.message(channel, message).unwrap().attachments;

    // The user removes the picture: a full MESSAGE_UPDATE, the video keeps its id.
    sim.edit_user_message_with(channel, message, None, Some(vec![first]))
        .unwrap();
    let update = gateway.dispatch("MESSAGE_UPDATE").await;
    let GatewayEvent::Dispatch(_, DispatchEvent::MessageUpdate(parsed)) = twilight_event(&update)
    else {
        panic!("not a message update: {update}");
    };
    assert_eq!(parsed.content, "two files");
    assert_eq!(parsed.attachments.len(), 1);
    assert_eq!(parsed.attachments[0].id.get(), before[0].id.get());
    assert_eq!(update["d"]["guild_id"], demo.guild.to_string());
    assert!(update["d"]["edited_timestamp"].is_string());
    let removed = common::get(&before[1].url).await.unwrap();
    assert_eq!(
        removed.status(),
        404,
        "the removed file is gone from the CDN"
    );

    // Text and a new clip (what a bot or webhook may do): a new attachment id.
    sim.edit_user_message_with(
        channel,
        message,
        Some("now with a clip"),
        Some(vec![video("later.mp4")]),
    )
    .unwrap();
    let update = gateway.dispatch("MESSAGE_UPDATE").await;
    twilight_event(&update);
    assert_eq!(update["d"]["content"], "now with a clip");
    assert_eq!(update["d"]["attachments"][0]["filename"], "later.mp4");
    assert_ne!(
        update["d"]["attachments"][0]["id"],
        before[0].id.to_string()
    );

    // MESSAGE_DELETE carries the guild.
    sim.delete_user_message(channel, message).unwrap();
    let deleted = gateway.dispatch("MESSAGE_DELETE").await;
    twilight_event(&deleted);
    assert_eq!(deleted["d"]["guild_id"], demo.guild.to_string());

    // Bulk delete over REST, validated as Discord does.
    let seeded = sim
        .seed_history(
            channel,
            (0..5).map(|i| SeedMessage::new(demo.bob, format!("b{i}"))),
        )
        .unwrap();
    let path = format!("/channels/{channel}/messages/bulk-delete");
    let old = Snowflake::new((15 * 24 * 3600 * 1000u64) << 22);
    let too_many: Vec<String> = (1..=101u64)
        .map(|i| (seeded[0].get() + i).to_string())
        .collect();
    for (body, code) in [
        (json!({"messages": [seeded[0]]}), 50035),
        (json!({"messages": too_many}), 50035),
        (json!({"messages": [seeded[0], seeded[0]]}), 50035),
        (json!({"messages": [seeded[0], old]}), 50034),
        (json!({}), 50035),
    ] {
        let (status, error) = rest.post(&path, body.clone()).await;
        assert_eq!(
            (status, error["code"].as_u64()),
            (400, Some(code)),
            "{body} -> {error}"
        );
    }
    assert_eq!(sim.message_count(channel), 5);
    let unknown = Snowflake::new(seeded[4].get() + 1_000);
    let (status, _) = rest
        .post(&path, json!({"messages": [seeded[0], seeded[1], unknown]}))
        .await;
    assert_eq!(status, 204);
    let bulk = gateway.dispatch("MESSAGE_DELETE_BULK").await;
    let GatewayEvent::Dispatch(_, DispatchEvent::MessageDeleteBulk(parsed)) = twilight_event(&bulk)
    else {
        panic!("not a bulk delete: {bulk}");
    };
    let deleted: Vec<u64> = parsed.ids.iter().map(|id| id.get()).collect();
    assert_eq!(deleted, vec![seeded[0].get(), seeded[1].get()]);
    assert_eq!(parsed.guild_id.map(|g| g.get()), Some(demo.guild.get()));
    assert_eq!(parsed.channel_id.get(), channel.get());

    // And from the seeding API (a moderator's purge).
    assert!(matches!(
        sim.bulk_delete_messages(channel, &[seeded[2], unknown]),
        Err(SimError::UnknownMessage(_))
    ));
    sim.bulk_delete_messages(channel, &[seeded[2], seeded[3]])
        .unwrap();
    let bulk = gateway.dispatch("MESSAGE_DELETE_BULK").await;
    twilight_event(&bulk);
    assert_eq!(bulk["d"]["ids"], json!([seeded[2], seeded[3]]));
    assert_eq!(sim.message_count(channel), 1);
}

#[tokio::test]
async fn attachment_urls_are_signed_expire_and_refresh() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let message = sim
        .post_user_message(
            demo.general,
            demo.alice,
            "clip",
            vec![AttachmentSpec::new(
                "session 1.mp4",
                "video/mp4",
                bytes.clone(),
            )],
        )
        .unwrap();
    let (_, fetched) = rest
        .get(&format!("/channels/{}/messages/{message}", demo.general))
        .await;
    let url = fetched["attachments"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let query = url.split_once('?').unwrap().1;
    let keys: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap().0)
        .collect();
    assert_eq!(keys, ["ex", "is", "hm"], "{url}");
    let (ex, is) = (
        u64::from_str_radix(&query[3..query.find('&').unwrap()], 16).unwrap(),
        u64::from_str_radix(
            query
                .split('&')
                .nth(1)
                .unwrap()
                .strip_prefix("is=")
                .unwrap(),
            16,
        )
        .unwrap(),
    );
    assert_eq!(ex - is, 24 * 3600, "Discord's 24 hours");

    let whole = common::get(&url).await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Ranges, as a <video> element asks.
    let http = common::http();
    let part = http
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[100..200]);
    let tail = http
        .get(&url)
        .header("Range", "bytes=9990-")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().len(), 10);
    let beyond = http
        .get(&url)
        .header("Range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);

    // Unsigned and forged URLs are refused like expired ones.
    for bad in [
        unsigned(&url).to_owned(),
        url.replace("hm=", "hm=0"),
        url.replace("ex=", "ex=f"),
    ] {
        let response = common::get(&bad).await.unwrap();
        assert_eq!(response.status(), 404, "{bad}");
        assert_eq!(
            response.text().await.unwrap(),
            "This content is no longer available."
        );
    }

    // A day passes: the stored URL dies; refreshing (or fetching again) revives it.
    sim.expire_attachment_urls();
    assert_eq!(common::get(&url).await.unwrap().status(), 404);
    let stranger = format!("{}/attachments/1/2/x.mp4?ex=1&is=1&hm=1&", sim.http_url());
    let (status, body) = rest
        .post(
            "/attachments/refresh-urls",
            json!({"attachment_urls": [url, stranger]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let refreshed = body["refreshed_urls"].as_array().unwrap();
    assert_eq!(
        refreshed.len(),
        1,
        "unknown attachments are left out: {body}"
    );
    assert_eq!(refreshed[0]["original"], url.as_str());
    let fresh = refreshed[0]["refreshed"].as_str().unwrap();
    assert_ne!(fresh, url);
    assert_eq!(unsigned(fresh), unsigned(&url));
    assert_eq!(common::get(fresh).await.unwrap().status(), 200);
    let again = sim.message(demo.general, message).unwrap().attachments[0]
        .url
        .clone();
    assert_eq!(common::get(&again).await.unwrap().status(), 200);

    // At most 50 per call, and only for the bot.
    let many: Vec<&str> = (0..51).map(|_| url.as_str()).collect();
    let (status, body) = rest
        .post(
            "/attachments/refresh-urls",
            json!({"attachment_urls": many}),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50035)));
    let anonymous = http
        .post(format!("{}/attachments/refresh-urls", sim.api_url()))
        .json(&json!({"attachment_urls": [url]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
