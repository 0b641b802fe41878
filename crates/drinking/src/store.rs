//! Repositories over [`crate::schema`]: every read and write of the game's Redis data.
//!
//! Concurrency: a button press takes the last `game:{gameID}` document this process saw
//! (the [`Recent`] cache; a read, one round trip, when it has none), applies a rule of
//! [`crate::domain`] to it, and writes the document back together with everything that
//! follows from it (ledger entries, counters, indexes, TTL) in one guarded step
//! ([`store::Redis::apply_or_read`], one round trip) that only succeeds if the stored
//! document is byte for byte the one the rule saw. When it is not (another press, another
//! instance, a stale cache) the step hands back the stored document and the rule is
//! redone on it, with no extra read. So a press costs one round trip when the game was
//! seen before and two when not; ten players pressing Roll at once each get their roll
//! recorded exactly once, and the game is completed by exactly one of them. A write
//! whose answer was lost to a dropped connection is retried safely for the same reason:
//! if it had been applied, the guard no longer matches and the retry sees the result.
//! The cache is only ever a guess: correctness rests on the guard alone.
//!
//! Transient connection errors are retried with backoff ([`RETRIES`]); every round trip
//! is counted ([`Repo::round_trips`]) so tests and benchmarks can check the budget.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use store::{Guarded, Redis, StoreError, Writes};

use crate::domain::{self, Effects, GameError, Rules, Standing};
use crate::schema::{
    self, ACTIVE_GAMES, ChannelRef, DrinkRecord, FIELD_ASSIGNED, FIELD_RECEIVED, Game, GameId,
    GameStatus, InvalidData, MessageRef, PlayerDoc, PlayerId, ScopeId, SessionDoc, SessionId,
};

/// Attempts of one round trip that fails with a transient error (connection refused or
/// dropped, timeout) before the error is returned.
pub const RETRIES: u32 = 4;
/// Attempts of a read-decide-write step that keeps losing races before giving up.
const MAX_CONFLICTS: u32 = 200;

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The rules refused the action; shown to the user.
    #[error(transparent)]
    Rule(#[from] GameError),
    #[error("that game no longer exists")]
    GameNotFound(GameId),
    #[error("no game is running in this channel")]
    NoGameInChannel,
    /// A document failed validation before storage, or stored data could not be read.
    #[error("invalid data: {0}")]
    Invalid(#[from] InvalidData),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the game kept changing; gave up after {0} attempts")]
    Contention(u32),
}

/// What a rule applied by [`Repo::update_game`] produced.
#[derive(Debug)]
pub struct Step<T> {
    pub value: T,
    pub effects: Effects,
    /// The acting player's document to store, when the action changes it.
    pub player: Option<PlayerDoc>,
}

impl<T> Step<T> {
    pub fn new(value: T, effects: Effects) -> Step<T> {
        Step {
            value,
            effects,
            player: None,
        }
    }
    pub fn with_player(mut self, player: PlayerDoc) -> Step<T> {
        self.player = Some(player);
        self
    }
}

/// The stored game after a successful [`Repo::update_game`].
#[derive(Debug)]
pub struct Updated<T> {
    pub game: Game,
    pub value: T,
    pub effects: Effects,
}

/// A session's leaderboard and the names to show.
#[derive(Debug, Default)]
pub struct Board {
    pub session: Option<SessionDoc>,
    pub standings: Vec<Standing>,
    pub names: HashMap<PlayerId, String>,
    pub games: usize,
}

/// Replaces one ledger member by another only if it is still there: the compare-and-set
/// that makes two presses of Pay never pay the same drink twice.
fn replace_member_script() -> &'static redis::Script {
    static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
return 0
",
        )
    });
    &SCRIPT
}

/// The last stored bytes of recently pressed games, by id: the guess that saves the read
/// of a press. Bounded; when full, an arbitrary entry makes room (a miss costs one read).
#[derive(Default)]
struct Recent {
    games: std::sync::Mutex<HashMap<GameId, Arc<[u8]>>>,
}

impl Recent {
    const CAPACITY: usize = 10_000;

    fn get(&self, id: &GameId) -> Option<Arc<[u8]>> {
        self.games.lock().ok()?.get(id).cloned()
    }

    fn put(&self, id: &GameId, raw: Arc<[u8]>) {
        if let Ok(mut games) = self.games.lock() {
            if games.len() >= Self::CAPACITY
                && !games.contains_key(id)
                && let Some(evicted) = games.keys().next().cloned()
            {
                games.remove(&evicted);
            }
            games.insert(id.clone(), raw);
        }
    }

    fn forget(&self, id: &GameId) {
        if let Ok(mut games) = self.games.lock() {
            games.remove(id);
        }
    }
}

/// The game's repository. Cheap to clone.
#[derive(Clone)]
pub struct Repo {
    redis: Redis,
    rules: Rules,
    completed_ttl: Duration,
    round_trips: Arc<AtomicU64>,
    recent: Arc<Recent>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("redis", &self.redis)
            .field("rules", &self.rules)
            .field("completed_ttl", &self.completed_ttl)
            .field("round_trips", &self.round_trips())
            .finish()
    }
}

fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

impl Repo {
    pub fn new(redis: Redis, rules: Rules, completed_ttl: Duration) -> Repo {
        Repo {
            redis,
            rules,
            completed_ttl,
            round_trips: Arc::new(AtomicU64::new(0)),
            recent: Arc::new(Recent::default()),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Redis round trips made so far (each attempt counts, retries included).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Runs one round trip, retrying transient failures with exponential backoff.
    async fn trip<T, F, Fut>(&self, what: &'static str, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut(store::RedisConn) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Duration::from_millis(25);
        let mut attempt = 1;
        loop {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            match call(self.redis.conn()).await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt < RETRIES => {
                    tracing::warn!(what, attempt, %error, "transient redis error; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(error) => {
                    tracing::error!(what, attempt, %error, "redis call failed");
                    return Err(error);
                }
            }
        }
    }

    async fn apply_if(
        &self,
        guard: &str,
        expected: Option<&[u8]>,
        writes: &Writes,
    ) -> Result<bool, StoreError> {
        self.trip("apply_if", |_| self.redis.apply_if(guard, expected, writes))
            .await
    }

    async fn apply_or_read(
        &self,
        guard: &str,
        expected: &[u8],
        writes: &Writes,
    ) -> Result<Guarded, StoreError> {
        self.trip("apply_or_read", |_| {
            self.redis.apply_or_read(guard, Some(expected), writes)
        })
        .await
    }

    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.trip("get", |mut conn| async move {
            Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
        })
        .await
    }

    /// The stored game and its exact bytes (the guard of the next write).
    pub async fn load_game(&self, id: &GameId) -> Result<Option<(Game, Vec<u8>)>, RepoError> {
        let Some(raw) = self.get_bytes(&schema::game_key(id)).await? else {
            return Ok(None);
        };
        let game: Game = schema::decode("game", &raw)?;
        Ok(Some((game, raw)))
    }

    /// The id of the game `channel:{channelID}` points at, if any.
    pub async fn channel_game(&self, channel: ChannelRef) -> Result<Option<GameId>, RepoError> {
        match self.get_bytes(&schema::channel_key(channel)).await? {
            None => Ok(None),
            Some(raw) => Ok(Some(GameId::parse(&String::from_utf8_lossy(&raw))?)),
        }
    }

    /// The guild's current session, creating the first one atomically if there is none
    /// (`SET NX GET`: of two concurrent creators, both end up with the same session).
    pub async fn current_session(
        &self,
        scope: ScopeId,
        now: DateTime<Utc>,
    ) -> Result<SessionDoc, RepoError> {
        if let Some(raw) = self.get_bytes(&schema::session_key(scope)).await? {
            return Ok(schema::decode("session", &raw)?);
        }
        let fresh = SessionDoc {
            id: SessionId::random(),
            scope,
            started_at: now,
            started_by: None,
        };
        let json = schema::encode("session", &fresh)?;
        let key = schema::session_key(scope);
        let previous: Option<Vec<u8>> = self
            .trip("session", |mut conn| {
                let (key, json) = (key.clone(), json.clone());
                async move {
                    Ok(redis::cmd("SET")
                        .arg(key)
                        .arg(json)
                        .arg("NX")
                        .arg("GET")
                        .query_async(&mut conn)
                        .await?)
                }
            })
            .await?;
        match previous {
            Some(raw) => Ok(schema::decode("session", &raw)?),
            None => Ok(fresh),
        }
    }

    /// Starts a new session (leaderboard period) for the guild.
    pub async fn new_session(
        &self,
        scope: ScopeId,
        by: PlayerId,
        now: DateTime<Utc>,
    ) -> Result<SessionDoc, RepoError> {
        let doc = SessionDoc {
            id: SessionId::random(),
            scope,
            started_at: now,
            started_by: Some(by),
        };
        let mut writes = Writes::new();
        writes.set(
            &schema::session_key(scope),
            schema::encode("session", &doc)?,
        );
        self.trip("new_session", |_| self.redis.apply(&writes))
            .await?;
        Ok(doc)
    }

    /// Creates a game in `channel`, refusing while another one runs there. A channel
    /// pointer left at a completed or vanished game is replaced.
    pub async fn create_game(
        &self,
        channel: ChannelRef,
        scope: ScopeId,
        creator: PlayerId,
        creator_name: &str,
        now: DateTime<Utc>,
    ) -> Result<Game, RepoError> {
        let session = self.current_session(scope, now).await?;
        let channel_key = schema::channel_key(channel);
        for _ in 0..MAX_CONFLICTS {
            let current = self.get_bytes(&channel_key).await?;
            if let Some(raw) = &current {
                let id = GameId::parse(&String::from_utf8_lossy(raw))?;
                if let Some((game, _)) = self.load_game(&id).await?
                    && !game.is_completed()
                {
                    return Err(GameError::GameAlreadyRunning.into());
                }
            }
            let game = Game::new(
                GameId::random(),
                channel,
                scope,
                session.id.clone(),
                creator,
                creator_name,
                now,
            );
            game.validate(&self.rules)?;
            let player = PlayerDoc {
                id: creator,
                name: schema::clean_name(creator_name),
                current_game: Some(game.id.clone()),
                last_roll: None,
                last_roll_at: None,
                updated_at: now,
            };
            let stored = schema::encode("game", &game)?;
            let mut writes = Writes::new();
            writes
                .set(&schema::game_key(&game.id), stored.as_str())
                .set(&channel_key, game.id.as_str())
                .sadd(ACTIVE_GAMES, game.id.as_str())
                .sadd(&schema::player_games_key(creator), game.id.as_str())
                .set(
                    &schema::player_key(creator),
                    schema::encode("player", &player)?,
                )
                .sadd(&schema::session_games_key(&session.id), game.id.as_str());
            if self
                .apply_if(&channel_key, current.as_deref(), &writes)
                .await?
            {
                tracing::info!(game = %game.id, %channel, %creator, "game created");
                self.recent.put(&game.id, Arc::from(stored.into_bytes()));
                return Ok(game);
            }
        }
        Err(RepoError::Contention(MAX_CONFLICTS))
    }

    /// Applies `rule` to the stored game and writes the result with everything that
    /// follows from it: one round trip when this process saw the game last, two when it
    /// must read it first (see the module docs).
    ///
    /// `rule` may run several times (once per lost race) and must have no side effects.
    /// A refusal by the rules costs one round trip and writes nothing. `message` is the
    /// public game message the press came from, remembered on the game.
    pub async fn update_game<T, F>(
        &self,
        id: &GameId,
        message: Option<MessageRef>,
        mut rule: F,
    ) -> Result<Updated<T>, RepoError>
    where
        F: FnMut(&mut Game) -> Result<Step<T>, GameError>,
    {
        let key = schema::game_key(id);
        // The document to try: a guess from the cache, or what Redis just said.
        let mut known: Option<(Arc<[u8]>, bool)> = self.recent.get(id).map(|raw| (raw, true));
        for attempt in 1..=MAX_CONFLICTS {
            let (raw, guessed) = match known.take() {
                Some(known) => known,
                None => match self.get_bytes(&key).await? {
                    Some(raw) => (Arc::from(raw), false),
                    None => {
                        self.recent.forget(id);
                        return Err(RepoError::GameNotFound(id.clone()));
                    }
                },
            };
            let attempt_step = schema::decode::<Game>("game", &raw)
                .map_err(RepoError::from)
                .and_then(|before| {
                    let mut game = before.clone();
                    let step = rule(&mut game)?;
                    if game.message_id.is_none() {
                        game.message_id = message;
                    }
                    game.version = before.version + 1;
                    let (writes, stored) = self.writes_for(&before, &game, &step)?;
                    Ok((before, game, step, writes, stored))
                });
            let (before, game, step, writes, stored) = match attempt_step {
                Ok(parts) => parts,
                // A refusal must come from the stored game, never from a stale guess.
                Err(_) if guessed => {
                    self.recent.forget(id);
                    continue;
                }
                Err(error) => {
                    // Refused on the stored game: remember it, the next press starts there.
                    self.recent.put(id, raw);
                    return Err(error);
                }
            };
            match self.apply_or_read(&key, &raw, &writes).await? {
                Guarded::Applied => {
                    self.recent.put(id, Arc::from(stored.into_bytes()));
                    if step.effects.completed || (game.is_completed() && !before.is_completed()) {
                        tracing::info!(game = %game.id, abandoned = game.abandoned, "game completed");
                    }
                    return Ok(Updated {
                        game,
                        value: step.value,
                        effects: step.effects,
                    });
                }
                Guarded::Changed(None) => {
                    self.recent.forget(id);
                    return Err(RepoError::GameNotFound(id.clone()));
                }
                Guarded::Changed(Some(current)) => known = Some((Arc::from(current), false)),
            }
            tracing::debug!(game = %id, attempt, "lost a race on the game; retrying");
            if attempt % 8 == 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(attempt / 8))).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        Err(RepoError::Contention(MAX_CONFLICTS))
    }

    /// Every write that turns `before` into `after`, validated first.
    fn writes_for<T>(
        &self,
        before: &Game,
        after: &Game,
        step: &Step<T>,
    ) -> Result<(Writes, String), RepoError> {
        after.validate(&self.rules)?;
        let id = after.id.as_str();
        let mut writes = Writes::new();
        let json = schema::encode("game", after)?;
        let completes = after.is_completed() && !before.is_completed();
        if after.is_completed() {
            writes.set_ex(
                &schema::game_key(&after.id),
                json.as_str(),
                ttl_secs(self.completed_ttl),
            );
        } else {
            writes.set(&schema::game_key(&after.id), json.as_str());
        }
        let known: BTreeSet<PlayerId> = before.participants.iter().map(|p| p.player_id).collect();
        for joined in after
            .participants
            .iter()
            .filter(|p| !known.contains(&p.player_id))
        {
            writes.sadd(&schema::player_games_key(joined.player_id), id);
        }
        if let Some(player) = &step.player {
            writes.set(
                &schema::player_key(player.id),
                schema::encode("player", player)?,
            );
        }
        let ledger = schema::drinks_key(&after.id);
        for drink in &step.effects.drinks {
            if drink.game_id != after.id {
                return Err(InvalidData::Document {
                    what: "drink record",
                    reason: format!(
                        "drink of game {} written to the ledger of {}",
                        drink.game_id, after.id
                    ),
                }
                .into());
            }
            writes.zadd(&ledger, drink.score(), drink.to_json()?);
            writes.hincrby(&schema::player_drinks_key(drink.to), FIELD_RECEIVED, 1);
            if let Some(from) = drink.assigned_by() {
                writes.hincrby(&schema::player_drinks_key(from), FIELD_ASSIGNED, 1);
            }
        }
        if completes {
            writes.del(&schema::channel_key(after.channel_id));
            writes.srem(ACTIVE_GAMES, id);
            for p in &after.participants {
                writes.srem(&schema::player_games_key(p.player_id), id);
            }
        }
        Ok((writes, json))
    }

    /// Every drink of a game's ledger with its exact stored member.
    pub async fn ledger(&self, id: &GameId) -> Result<Vec<(DrinkRecord, String)>, RepoError> {
        let key = schema::drinks_key(id);
        let members: Vec<String> = self
            .trip("ledger", |mut conn| {
                let key = key.clone();
                async move {
                    Ok(redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut conn)
                        .await?)
                }
            })
            .await?;
        Ok(parse_ledger(id, members))
    }

    /// Marks `player`'s oldest unpaid drink of game `id` as paid; returns it and how
    /// many they still owe in that game. Two round trips when uncontended.
    pub async fn pay(
        &self,
        id: &GameId,
        player: PlayerId,
        now: DateTime<Utc>,
    ) -> Result<(DrinkRecord, usize), RepoError> {
        let key = schema::drinks_key(id);
        for _ in 0..MAX_CONFLICTS {
            let ledger = self.ledger(id).await?;
            let records: Vec<DrinkRecord> = ledger.iter().map(|(r, _)| r.clone()).collect();
            let chosen = domain::drink_to_pay(&records, player)?.clone();
            let Some((_, old_member)) = ledger.iter().find(|(r, _)| r.id == chosen.id) else {
                continue;
            };
            let paid = domain::paid(&chosen, now);
            let new_member = paid.to_json()?;
            let replaced: i64 = self
                .trip("pay", |mut conn| {
                    let mut invocation = replace_member_script().key(&key);
                    invocation
                        .arg(old_member.as_str())
                        .arg(paid.score())
                        .arg(new_member.as_str());
                    async move { Ok(invocation.invoke_async(&mut conn).await?) }
                })
                .await?;
            if replaced == 1 {
                let still_owed = records.iter().filter(|r| r.to == player && !r.paid).count() - 1;
                tracing::info!(game = %id, %player, drink = %paid.id, "drink paid");
                return Ok((paid, still_owed));
            }
        }
        Err(RepoError::Contention(MAX_CONFLICTS))
    }

    /// The leaderboard of the guild's current session.
    pub async fn leaderboard(&self, scope: ScopeId) -> Result<Board, RepoError> {
        let Some(raw) = self.get_bytes(&schema::session_key(scope)).await? else {
            return Ok(Board::default());
        };
        let session: SessionDoc = schema::decode("session", &raw)?;
        let games_key = schema::session_games_key(&session.id);
        let ids: Vec<String> = self
            .trip("session_games", |mut conn| {
                let key = games_key.clone();
                async move {
                    Ok(redis::cmd("SMEMBERS")
                        .arg(key)
                        .query_async(&mut conn)
                        .await?)
                }
            })
            .await?;
        let ids: Vec<GameId> = ids.iter().filter_map(|s| GameId::parse(s).ok()).collect();
        let mut records = Vec::new();
        if !ids.is_empty() {
            let ledgers: Vec<Vec<String>> = self
                .trip("ledgers", |mut conn| {
                    let mut pipe = redis::pipe();
                    for id in &ids {
                        pipe.cmd("ZRANGE")
                            .arg(schema::drinks_key(id))
                            .arg(0)
                            .arg(-1);
                    }
                    async move { Ok(pipe.query_async(&mut conn).await?) }
                })
                .await?;
            for (id, members) in ids.iter().zip(ledgers) {
                records.extend(parse_ledger(id, members).into_iter().map(|(r, _)| r));
            }
        }
        let standings = domain::leaderboard(records.iter().filter(|r| r.session_id == session.id));
        let names = self.names(standings.iter().map(|s| s.player)).await?;
        Ok(Board {
            session: Some(session),
            standings,
            names,
            games: ids.len(),
        })
    }

    /// Display names from `player:{playerID}` documents.
    pub async fn names(
        &self,
        players: impl Iterator<Item = PlayerId>,
    ) -> Result<HashMap<PlayerId, String>, RepoError> {
        let players: Vec<PlayerId> = players.collect();
        if players.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<String> = players.iter().map(|p| schema::player_key(*p)).collect();
        let docs: Vec<Option<Vec<u8>>> = self
            .trip("names", |mut conn| {
                let keys = keys.clone();
                async move { Ok(redis::cmd("MGET").arg(keys).query_async(&mut conn).await?) }
            })
            .await?;
        let mut names = HashMap::new();
        for raw in docs.into_iter().flatten() {
            match schema::decode::<PlayerDoc>("player", &raw) {
                Ok(doc) => {
                    names.insert(doc.id, doc.name);
                }
                Err(error) => tracing::warn!(%error, "unreadable player document"),
            }
        }
        Ok(names)
    }
}

/// Parses ledger members, skipping (and logging) any that cannot be read.
fn parse_ledger(id: &GameId, members: Vec<String>) -> Vec<(DrinkRecord, String)> {
    members
        .into_iter()
        .filter_map(|member| match DrinkRecord::from_json(&member) {
            Ok(record) => Some((record, member)),
            Err(error) => {
                tracing::warn!(game = %id, %error, "unreadable drink record skipped");
                None
            }
        })
        .collect()
}

/// The player document written when `player` acts in `game`.
pub fn player_doc(
    game: &Game,
    player: PlayerId,
    last_roll: Option<schema::Die>,
    now: DateTime<Utc>,
) -> Option<PlayerDoc> {
    let participant = game.participant(player)?;
    Some(PlayerDoc {
        id: player,
        name: participant.name.clone(),
        current_game: (game.status != GameStatus::Completed).then(|| game.id.clone()),
        last_roll,
        last_roll_at: last_roll.map(|_| now),
        updated_at: now,
    })
}
