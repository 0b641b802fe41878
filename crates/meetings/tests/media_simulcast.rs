//! Simulcast through the media handler: a publisher sends its camera as two layers, and
//! each subscriber receives the one layer it chose (the highest by default), changing
//! layer only at a key frame of the new one; a relay between two handlers carries both
//! layers. Real WebTransport clients against handlers bound on 127.0.0.1, over real
//! PostgreSQL and Redis. Every wait has a deadline; nothing sleeps to synchronise and no
//! assertion is about timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::media::{next_frame, start};
use common::meeting;
use common::wt::DEADLINE;
use meetings::domain::ParticipantId;
use meetings::media::client::MediaClient;
use meetings::media::proto::{FLAG_KEY, TRACK_AUDIO, TRACK_CAMERA};

/// Bytes of a layer-0 (small) and a layer-1 (large) delta frame.
const SMALL: usize = 1_000;
const LARGE: usize = 4_000;
/// Rounds of delta frames (one per layer, and an audio frame) published.
const ROUNDS: u32 = 20;

/// The next key frame `client` is asked for: (track, layer).
async fn next_ask(client: &mut MediaClient) -> (u8, Option<u8>) {
    tokio::time::timeout(DEADLINE, client.next_keyframe_ask())
        .await
        .expect("a keyframe request in time")
        .unwrap()
        .expect("a keyframe request, not the end of the control stream")
}

/// Publishes one camera frame of `layer`, its payload `len` bytes of `layer`.
async fn video(publisher: &MediaClient, layer: u8, key: bool, seq: u32, len: usize) {
    let flags = if key { FLAG_KEY } else { 0 };
    publisher
        .send_layer_frame(
            TRACK_CAMERA,
            flags,
            layer,
            u64::from(seq) * 41_666,
            seq,
            &vec![layer; len],
        )
        .await
        .unwrap();
}

/// Chooses the layer of `publisher`'s camera `subscriber` receives, then waits until
/// the handler has taken it: a key frame request sent after it on the same control
/// stream reaches the publisher.
async fn choose(
    subscriber: &mut MediaClient,
    publisher_id: ParticipantId,
    publisher: &mut MediaClient,
    max_layer: Option<u8>,
) {
    subscriber
        .set_layer(publisher_id, TRACK_CAMERA, max_layer)
        .await
        .unwrap();
    subscriber
        .request_keyframe(publisher_id, TRACK_AUDIO)
        .await
        .unwrap();
    loop {
        if next_ask(publisher).await.0 == TRACK_AUDIO {
            return;
        }
    }
}

/// Both layers' key frames (layer 0 first), each waited for at the subscribers that
/// take it, then [`ROUNDS`] rounds of deltas on both layers and audio.
async fn publish_both_layers(
    publisher: &mut MediaClient,
    low: &mut MediaClient,
    high: &mut MediaClient,
) {
    video(publisher, 0, true, 0, SMALL).await;
    for subscriber in [&mut *low, &mut *high] {
        let first = next_frame(subscriber).await;
        assert_eq!((first.header.layer, first.header.seq), (0, 0));
    }
    // The only layer so far, until the default subscriber changes to the key frame of
    // the higher one.
    video(publisher, 1, true, 0, LARGE).await;
    let first = next_frame(high).await;
    assert_eq!(
        (first.header.layer, first.header.is_key()),
        (1, true),
        "the default subscriber changes to the highest layer at its key frame"
    );
    for seq in 1..=ROUNDS {
        video(publisher, 1, false, seq, LARGE).await;
        video(publisher, 0, false, seq, SMALL).await;
        publisher
            .send_frame(TRACK_AUDIO, FLAG_KEY, u64::from(seq), seq, b"opus")
            .await
            .unwrap();
    }
}

/// Reads `ROUNDS` camera frames and `ROUNDS` audio frames; every camera frame must be
/// of `layer`. The camera payload bytes received.
async fn receive_rounds(client: &mut MediaClient, layer: u8) -> usize {
    let (mut camera, mut audio, mut bytes) = (0, 0, 0);
    while camera < ROUNDS || audio < ROUNDS {
        let frame = next_frame(client).await;
        if frame.header.track == TRACK_AUDIO {
            audio += 1;
            continue;
        }
        assert_eq!(
            frame.header.layer, layer,
            "only layer {layer} (seq {} of layer {} came)",
            frame.header.seq, frame.header.layer
        );
        camera += 1;
        bytes += frame.payload.len();
    }
    assert_eq!((camera, audio), (ROUNDS, ROUNDS));
    bytes
}

#[tokio::test]
async fn each_subscriber_receives_the_layer_it_chose_and_changes_only_at_a_key_frame() {
    let (world, repo) = common::world().await;
    let h = start(&repo, "mh-simulcast").await;
    let m = meeting(&repo, "Simulcast").await;
    let (publisher_id, mut publisher) = h.connect(m).await;
    let (_, mut low) = h.connect(m).await;
    let (_, mut high) = h.connect(m).await;
    h.until("three sessions", |l| l.participants() == 3).await;
    choose(&mut low, publisher_id, &mut publisher, Some(0)).await;

    publish_both_layers(&mut publisher, &mut low, &mut high).await;
    let low_bytes = receive_rounds(&mut low, 0).await;
    let high_bytes = receive_rounds(&mut high, 1).await;
    let rounds = usize::try_from(ROUNDS).unwrap();
    assert_eq!(low_bytes, SMALL * rounds);
    assert_eq!(high_bytes, LARGE * rounds);
    assert!(low_bytes < high_bytes, "the small layer costs fewer bytes");

    // Back to the highest layer: the publisher is asked for a key frame of it, and the
    // subscriber keeps layer 0 until that key frame.
    low.set_layer(publisher_id, TRACK_CAMERA, None)
        .await
        .unwrap();
    loop {
        if next_ask(&mut publisher).await == (TRACK_CAMERA, Some(1)) {
            break;
        }
    }
    video(&publisher, 1, false, ROUNDS + 1, LARGE).await;
    video(&publisher, 0, false, ROUNDS + 1, SMALL).await;
    let kept = next_frame(&mut low).await;
    assert_eq!(
        (kept.header.layer, kept.header.seq),
        (0, ROUNDS + 1),
        "a delta of the new layer is no place to change"
    );
    video(&publisher, 1, true, ROUNDS + 2, LARGE).await;
    let changed = next_frame(&mut low).await;
    assert_eq!(
        (
            changed.header.layer,
            changed.header.seq,
            changed.header.is_key()
        ),
        (1, ROUNDS + 2, true)
    );
    // From here on layer 0 is no longer forwarded to it.
    video(&publisher, 0, false, ROUNDS + 2, SMALL).await;
    video(&publisher, 1, false, ROUNDS + 3, LARGE).await;
    let next = next_frame(&mut low).await;
    assert_eq!((next.header.layer, next.header.seq), (1, ROUNDS + 3));

    // And down again: asked for layer 0's key frame.
    high.set_layer(publisher_id, TRACK_CAMERA, Some(0))
        .await
        .unwrap();
    loop {
        if next_ask(&mut publisher).await == (TRACK_CAMERA, Some(0)) {
            break;
        }
    }
    drop(world);
    h.stop().await;
}

#[tokio::test]
async fn a_relay_carries_both_layers_and_the_far_handler_picks_each_subscribers() {
    let (world, repo) = common::world().await;
    let a = start(&repo, "mh-simulcast-a").await;
    let b = start(&repo, "mh-simulcast-b").await;
    let m = meeting(&repo, "Simulcast relayed").await;
    let (publisher_id, mut publisher) = a.connect(m).await;
    let (_, mut low) = b.connect(m).await;
    let (_, mut high) = b.connect(m).await;
    a.until("a relays the meeting", |l| l.relays() == 1).await;
    b.until("b relays the meeting", |l| l.relays() == 1).await;
    // Once b has seen a frame of the publisher, the barrier's request crosses the relay
    // to it.
    publisher
        .send_frame(TRACK_AUDIO, FLAG_KEY, 0, 0, b"hello")
        .await
        .unwrap();
    for subscriber in [&mut low, &mut high] {
        assert_eq!(next_frame(subscriber).await.header.track, TRACK_AUDIO);
    }
    choose(&mut low, publisher_id, &mut publisher, Some(0)).await;

    publish_both_layers(&mut publisher, &mut low, &mut high).await;
    let low_bytes = receive_rounds(&mut low, 0).await;
    let high_bytes = receive_rounds(&mut high, 1).await;
    assert!(low_bytes < high_bytes);
    drop(world);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_bad_layer_choice_closes_only_that_session() {
    let (world, repo) = common::world().await;
    let h = start(&repo, "mh-simulcast-bad").await;
    let m = meeting(&repo, "Simulcast bad").await;
    let (publisher_id, publisher) = h.connect(m).await;
    let (_, mut audio_layer) = h.connect(m).await;
    let (_, mut fine) = h.connect(m).await;
    h.until("three sessions", |l| l.participants() == 3).await;
    audio_layer
        .set_layer(publisher_id, TRACK_AUDIO, Some(0))
        .await
        .unwrap();
    let closed = tokio::time::timeout(DEADLINE, audio_layer.closed())
        .await
        .expect("closed in time");
    assert_eq!(closed.code, Some(1));
    assert!(closed.reason.contains("SetLayer"), "{}", closed.reason);
    h.until("two sessions", |l| l.participants() == 2).await;
    fine.set_layer(publisher_id, TRACK_CAMERA, Some(0))
        .await
        .unwrap();
    video(&publisher, 0, true, 0, SMALL).await;
    assert_eq!(next_frame(&mut fine).await.header.layer, 0);
    drop(world);
    h.stop().await;
}
