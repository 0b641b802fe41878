//! Fuzzes the decoding of downloaded rolls sync objects, as the restore reads
//! them: a snapshot manifest (`rolls::jobs::Manifest`) and the paths built from
//! it, a key set's object into a `rolls::jobs::Snapshot`, its timestamp key
//! (`Snapshot::updated_time_key`, which refuses what is not a rolls key set)
//! and size, the `:updated_time` text (`store::updated_time::decode`), and
//! then what the bot reads back from a restored key: a user's document or a
//! channel's initiative tracker, used as the commands use them.
//!
//! Properties, besides "never panics":
//! - A decoded manifest or snapshot round-trips through its JSON unchanged.
//! - The paths a manifest's keys lead to stay under `rolls/` without a `..`.
//! - A snapshot the restore accepts names a timestamp key that is its own
//!   key's (`{key}:updated_time`, or the counters' shared one).
//! - A restored user document and tracker round-trip through their JSON
//!   (unknown fields of a user document are kept), and a tracker's turn
//!   stays inside its entries after `next` or a `leave`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rolls::domain::{self, Tracker, UserDoc};
use rolls::jobs::{self, Manifest, Snapshot, Value};
use rolls::schema;

fn round_trips<T>(what: &str, value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = serde_json::to_vec(value).unwrap_or_else(|e| panic!("{what} not writable: {e}"));
    let again: T = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{what} does not read back: {e}: {value:?}"));
    assert_eq!(&again, value, "{what} changed in a round trip");
}

/// Equal JSON, numbers that are no `i64` or `u64` within a rounding error. The
/// workspace enables serde_json's `float_roundtrip`, so stored floats come back
/// bit for bit and the tolerance is only a guard should that feature go away.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_json(vx, vy))
        }
        _ => a == b,
    }
}

fn user_document(raw: &str) {
    let Ok(mut doc) = serde_json::from_str::<UserDoc>(raw) else {
        return;
    };
    let bytes =
        serde_json::to_vec(&doc).unwrap_or_else(|e| panic!("user document not writable: {e}"));
    let again: UserDoc = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("user document does not read back: {e}: {doc:?}"));
    assert_eq!(
        (
            &again.characters,
            &again.active_character,
            &again.saved_rolls
        ),
        (&doc.characters, &doc.active_character, &doc.saved_rolls),
        "user document changed in a round trip"
    );
    assert!(
        same_json(
            &serde_json::Value::Object(again.extra.clone()),
            &serde_json::Value::Object(doc.extra.clone())
        ),
        "unknown fields of a user document changed in a round trip: {:?} -> {:?}",
        doc.extra,
        again.extra
    );
    let _ = domain::render_characters(&doc);
    let _ = domain::active(&doc);
    let first = doc.characters.keys().next().cloned();
    if let Some(name) = first {
        let _ = domain::set_active(&mut doc, &name);
        let _ = domain::add_character(&mut doc, &name, 1);
        let _ = domain::remove_character(&mut doc, &name);
    }
    let _ = domain::add_character(&mut doc, "Vex", 3);
}

fn tracker(raw: &str) {
    let Ok(mut tracker) = serde_json::from_str::<Tracker>(raw) else {
        return;
    };
    round_trips("tracker", &tracker);
    let _ = domain::render_tracker(&tracker);
    let user = tracker.entries.first().map(|e| e.user);
    if domain::next_turn(&mut tracker).is_ok() {
        assert!(
            tracker.turn < tracker.entries.len(),
            "turn past the entries after next"
        );
    }
    if let Some(user) = user {
        if domain::leave(&mut tracker, user, None).is_ok() {
            assert!(
                tracker.turn < tracker.entries.len().max(1),
                "turn past the entries after leave"
            );
        }
    }
    let _ = domain::render_tracker(&tracker);
}

/// A manifest (`rolls/snapshots/{taken_at}.json`) as the restore reads it: it
/// round-trips, and the object paths built from what it names stay inside
/// their folders whatever a key holds (`..`, `/`, ...).
fn manifest(data: &[u8]) {
    let Ok(manifest) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    round_trips("manifest", &manifest);
    let path = jobs::manifest_path(manifest.taken_at).to_string();
    assert!(path.starts_with("rolls/snapshots/"), "{path}");
    for (key, version) in manifest.sets.iter().chain(&manifest.held_back) {
        for path in [
            jobs::version_path(key, version.updated_time).to_string(),
            jobs::mirror_path(key).to_string(),
        ] {
            assert!(path.starts_with("rolls/"), "{key:?} -> {path}");
            assert!(
                path.split('/').all(|part| part != ".." && part != "."),
                "{key:?} -> {path} climbs out of its folder"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = store::updated_time::decode(text);
    }
    manifest(data);
    let Ok(snap) = serde_json::from_slice::<Snapshot>(data) else {
        return;
    };
    round_trips("snapshot", &snap);
    let _ = snap.size();
    let Some(ts_key) = snap.updated_time_key() else {
        return;
    };
    if ts_key == schema::COUNTERS_UPDATED_TIME {
        assert_eq!(
            snap.key,
            schema::COUNTERS_SET,
            "only the counters share a timestamp"
        );
        assert!(matches!(snap.value, Value::Counters(_)));
    } else {
        assert_eq!(ts_key, schema::updated_time_key(&snap.key));
    }
    match &snap.value {
        Value::String(raw) if snap.key.starts_with("user_") => user_document(raw),
        Value::String(raw) if snap.key.starts_with("init_") => tracker(raw),
        Value::Set(members) => {
            for m in members {
                let _ = m.parse::<u64>();
            }
        }
        _ => {}
    }
});
