//! `tavern check` for the drinking game: finds data that breaks the invariants the
//! repositories keep.
//!
//! - a game in `active_games` that does not exist (or is already completed);
//! - a `channel:{channelID}` pointing at a missing or completed game;
//! - a `player_games:{playerID}` that names no running game and never expires (it
//!   must expire with its last game), or names a running game and expires;
//! - `player_drinks:{playerID}` counters that disagree with the ledgers (`drinks:*`);
//! - unreadable documents or ledger entries.
//!
//! The check reads with `SCAN`, so it does not block the server; on a Redis Cluster it
//! sees the keys of the node it is connected to only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use feature::{Check, Finding};
use store::{Redis, StorageError};

use crate::domain::{DrinkRecord, Game, UserId};
use crate::schema::{
    self, ACTIVE_GAMES, CHANNEL_PATTERN, DRINKS_PATTERN, FIELD_ASSIGNED, FIELD_RECEIVED,
    PLAYER_DRINKS_PATTERN, PLAYER_GAMES_PATTERN,
};

/// The drinking game's check, named `drinking`, over the data in `redis`.
pub fn check_of(redis: Redis) -> Check {
    Check::new("drinking", move || {
        let redis = redis.clone();
        async move { check(&redis).await }
    })
}

/// What the store knows about one game id.
enum GameState {
    Missing,
    Unreadable(String),
    Running,
    Completed,
}

async fn game_states(
    redis: &Redis,
    ids: &[String],
) -> Result<HashMap<String, GameState>, StorageError> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let keys: Vec<String> = ids
        .iter()
        .map(|id| schema::game_key_unchecked(id))
        .collect();
    let mut conn = redis.conn();
    let mut docs: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let part: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(chunk).query_async(&mut conn).await?;
        docs.extend(part);
    }
    for ((id, key), doc) in ids.iter().zip(&keys).zip(docs) {
        let state = match doc {
            None => GameState::Missing,
            Some(raw) => match schema::decode::<Game>(key, &raw) {
                Err(error) => GameState::Unreadable(error.to_string()),
                Ok(game) if game.is_completed() => GameState::Completed,
                Ok(_) => GameState::Running,
            },
        };
        out.insert(id.clone(), state);
    }
    Ok(out)
}

/// Runs every check and returns what is wrong, in a stable order.
pub async fn check(redis: &Redis) -> Result<Vec<Finding>, StorageError> {
    let mut findings = Vec::new();
    let mut conn = redis.conn();

    // Games that are not running should not be indexed as running.
    let active: Vec<String> = redis::cmd("SMEMBERS")
        .arg(ACTIVE_GAMES)
        .query_async(&mut conn)
        .await?;
    let states = game_states(redis, &active).await?;
    let mut active_sorted = active.clone();
    active_sorted.sort();
    for id in &active_sorted {
        match states.get(id) {
            Some(GameState::Missing) | None => findings.push(Finding::new(
                ACTIVE_GAMES,
                format!("names game {id}, which does not exist"),
            )),
            Some(GameState::Completed) => findings.push(Finding::new(
                ACTIVE_GAMES,
                format!("names game {id}, which is completed"),
            )),
            Some(GameState::Unreadable(e)) => findings.push(Finding::new(
                schema::game_key_unchecked(id),
                format!("unreadable game: {e}"),
            )),
            Some(GameState::Running) => {}
        }
    }

    // Channels point at their running game only.
    let channel_keys = redis.scan(CHANNEL_PATTERN).await?;
    if !channel_keys.is_empty() {
        let targets: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&channel_keys)
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = targets.iter().flatten().cloned().collect();
        let states = game_states(redis, &ids).await?;
        for (key, target) in channel_keys.iter().zip(targets) {
            let Some(id) = target else { continue };
            match states.get(&id) {
                Some(GameState::Missing) | None => findings.push(Finding::new(
                    key,
                    format!("points at game {id}, which does not exist"),
                )),
                Some(GameState::Completed) => findings.push(Finding::new(
                    key,
                    format!("points at game {id}, which is completed"),
                )),
                Some(GameState::Unreadable(_)) | Some(GameState::Running) => {}
            }
        }
    }

    // Player indexes keep every game until it expires: a set naming a running game
    // has no TTL; one naming none expires (with its last game). A set that names no
    // running game and never expires would keep games that are gone forever.
    for key in redis.scan(PLAYER_GAMES_PATTERN).await? {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut conn).await?;
        let states = game_states(redis, &ids).await?;
        let running = ids
            .iter()
            .any(|id| matches!(states.get(id), Some(GameState::Running)));
        if running && ttl >= 0 {
            findings.push(Finding::new(
                &key,
                format!("names a running game but expires in {ttl} s"),
            ));
        }
        if running || ttl >= 0 {
            continue;
        }
        let mut ids = ids;
        ids.sort();
        for id in ids {
            match states.get(&id) {
                Some(GameState::Missing) | None => findings.push(Finding::new(
                    &key,
                    format!("names game {id}, which does not exist, and never expires"),
                )),
                Some(GameState::Completed) => findings.push(Finding::new(
                    &key,
                    format!("names only completed games (such as {id}) and never expires"),
                )),
                Some(GameState::Unreadable(_)) | Some(GameState::Running) => {}
            }
        }
    }

    // Counters agree with the ledgers.
    let mut expected: BTreeMap<UserId, (i64, i64)> = BTreeMap::new();
    for key in redis.scan(DRINKS_PATTERN).await? {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        for member in members {
            match DrinkRecord::from_json(&member) {
                Ok(record) => {
                    expected.entry(record.to).or_default().1 += 1;
                    if let Some(from) = record.assigned_by() {
                        expected.entry(from).or_default().0 += 1;
                    }
                }
                Err(error) => findings.push(Finding::new(
                    &key,
                    format!("unreadable drink record: {error}"),
                )),
            }
        }
    }
    let mut counted: BTreeMap<UserId, (i64, i64)> = BTreeMap::new();
    for key in redis.scan(PLAYER_DRINKS_PATTERN).await? {
        let Some(player) = schema::player_of_drinks_key(&key) else {
            findings.push(Finding::new(&key, "does not name a player"));
            continue;
        };
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        let number = |field: &str| -> Result<i64, String> {
            fields.get(field).map_or(Ok(0), |v| {
                v.parse::<i64>()
                    .map_err(|_| format!("`{field}` is `{v}`, not a number"))
            })
        };
        match (number(FIELD_ASSIGNED), number(FIELD_RECEIVED)) {
            (Ok(a), Ok(r)) => {
                counted.insert(player, (a, r));
            }
            (Err(e), _) | (_, Err(e)) => findings.push(Finding::new(&key, e)),
        }
    }
    let players: BTreeSet<UserId> = expected.keys().chain(counted.keys()).copied().collect();
    for player in players {
        let want = expected.get(&player).copied().unwrap_or_default();
        let have = counted.get(&player).copied().unwrap_or_default();
        if want != have {
            findings.push(Finding::new(
                schema::player_drinks_key(player),
                format!(
                    "counts assigned={} received={}, but the ledgers say assigned={} received={}",
                    have.0, have.1, want.0, want.1
                ),
            ));
        }
    }
    Ok(findings)
}
