//! Repositories over [`crate::schema`]: every read and write of the game's Redis data.
//!
//! Concurrency: a button press takes the last `game:{gameID}` document this process saw
//! (the `Recent` cache; a read, one round trip, when it has none), applies a rule of
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
//! Every read-decide-write step (a press, creating a game, paying) runs in
//! [`store::optimistic()`], the kit's one retry loop; paying replaces a ledger member only
//! while it is still there ([`store::Condition::sorted_member`]). Transient connection
//! errors are retried with backoff by [`store::transient()`], the store's one such retry
//! ([`RETRIES`]); every round trip is counted ([`Repo::round_trips`]) so tests and
//! benchmarks can check the budget.
//!
//! Failures are [`RepoError`]: the rules' refusals and a vanished game next to the
//! kit's [`StorageError`] for everything the store says.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use store::{Attempt, Condition, Conditional, Guarded, Redis, StorageError, StoreError, Writes};

use crate::domain::{
    self, ChannelId, DrinkRecord, Effects, Game, GameError, GameId, InvalidData, MessageId,
    PlayerDoc, Rules, ScopeId, SessionDoc, SessionId, Standing, UserId,
};
use crate::schema::{self, ACTIVE_GAMES, FIELD_ASSIGNED, FIELD_RECEIVED};

/// Attempts of one round trip that fails with a transient error (connection refused or
/// dropped, timeout) before the error is returned: [`store::transient()`]'s.
pub const RETRIES: u32 = store::transient::ATTEMPTS;

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
    /// A document failed validation before storage (a bug: nothing was written).
    #[error("invalid data: {0}")]
    Invalid(#[from] InvalidData),
    /// The store could not do it, or holds data that cannot be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
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
    /// Also stores `player` (when there is one: the actor may not be in the game).
    pub fn with_player(mut self, player: Option<PlayerDoc>) -> Step<T> {
        self.player = player;
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
    pub names: HashMap<UserId, String>,
    pub games: usize,
}

/// A player's tab: what they owe, have drunk and have handed out this session (from the
/// ledgers of the session's games), what they still owe from earlier sessions (the
/// ledgers of the other games `player_games:{playerID}` names: games not yet expired),
/// where each unpaid drink can be paid, and their all-time counters
/// (`player_drinks:{playerID}`).
#[derive(Debug, Default)]
pub struct Tab {
    pub session: Option<SessionDoc>,
    /// This session's standing of the player (zero when they have no drinks).
    pub standing: Option<Standing>,
    /// Their unpaid drinks this session, oldest first.
    pub unpaid: Vec<DrinkRecord>,
    /// Their unpaid drinks of earlier sessions, oldest first.
    pub earlier: Vec<DrinkRecord>,
    /// The games holding their unpaid drinks (this session's and earlier), oldest
    /// first: where **Pay** takes them.
    pub open: Vec<OpenGame>,
    /// `player_drinks:{playerID}`: drinks received and handed out, all sessions.
    pub received_ever: i64,
    pub assigned_ever: i64,
    /// Names of the players the unpaid drinks came from.
    pub names: HashMap<UserId, String>,
}

/// A game whose ledger holds unpaid drinks of one player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGame {
    pub game: GameId,
    pub session: SessionId,
    /// How many of the player's drinks are unpaid there.
    pub owed: usize,
    /// When the game was started, while its document is stored; else when its first
    /// unpaid drink was poured.
    pub since: DateTime<Utc>,
    /// Where its message is (scope, channel, message), while the game's document is
    /// stored: **Pay** on that message pays them.
    pub message: Option<(ScopeId, ChannelId, MessageId)>,
}

/// One decision of [`Repo::update_game`]: the game before and after the rule, and the
/// writes that store the change.
struct Decided<T> {
    before: Game,
    game: Game,
    step: Step<T>,
    writes: Writes,
    stored: String,
}

/// Locks a mutex that guards plain data (a panic elsewhere cannot leave it half-written).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The game id a `channel:{channelID}` pointer holds.
fn game_pointer(key: &str, raw: &[u8]) -> Result<GameId, StorageError> {
    GameId::parse(&String::from_utf8_lossy(raw)).map_err(|e| StorageError::corrupt(key, e))
}

/// The last stored bytes of recently pressed games, by id: the guess that saves the read
/// of a press. Bounded; when full, an arbitrary entry makes room (a miss costs one read).
#[derive(Default)]
struct Recent {
    games: Mutex<HashMap<GameId, Arc<[u8]>>>,
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

/// What [`Repo::new_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub started: SessionDoc,
    /// The session it replaced (none for a guild's first).
    pub ended: Option<SessionDoc>,
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

    /// The same repository with a round-trip count of its own: for the reads made in
    /// the background after a press is answered (the game message's leaderboard), so
    /// they do not blur the per-press figure of [`Repo::round_trips`].
    pub fn detached(&self) -> Repo {
        Repo {
            round_trips: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        }
    }

    /// Redis round trips made so far (each attempt counts, retries included).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Runs one round trip through [`store::transient()`], the store's one retry of
    /// transient failures (counting every attempt as a round trip).
    /// The members of the set at `key`.
    async fn members(&self, what: &'static str, key: &str) -> Result<Vec<String>, StorageError> {
        self.trip(what, |mut conn| {
            let key = key.to_owned();
            async move {
                Ok(redis::cmd("SMEMBERS")
                    .arg(key)
                    .query_async(&mut conn)
                    .await?)
            }
        })
        .await
    }

    /// The raw members of each game's `drinks:{gameID}` ledger, in `ids`' order, in one
    /// round trip.
    async fn ledgers(
        &self,
        what: &'static str,
        ids: &[GameId],
    ) -> Result<Vec<Vec<String>>, StorageError> {
        self.trip(what, |mut conn| {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.cmd("ZRANGE")
                    .arg(schema::drinks_key(id))
                    .arg(0)
                    .arg(-1);
            }
            async move { Ok(pipe.query_async(&mut conn).await?) }
        })
        .await
    }

    async fn trip<T, F, Fut>(&self, what: &'static str, mut call: F) -> Result<T, StorageError>
    where
        F: FnMut(store::RedisConn) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        store::transient(what, |_| {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            call(self.redis.conn())
        })
        .await
        .map_err(StorageError::from)
    }

    async fn apply_if(
        &self,
        guard: &str,
        expected: Option<&[u8]>,
        writes: &Writes,
    ) -> Result<bool, StorageError> {
        self.trip("apply_if", |_| self.redis.apply_if(guard, expected, writes))
            .await
    }

    async fn apply_or_read(
        &self,
        guard: &str,
        expected: &[u8],
        writes: &Writes,
    ) -> Result<Guarded, StorageError> {
        self.trip("apply_or_read", |_| {
            self.redis.apply_or_read(guard, Some(expected), writes)
        })
        .await
    }

    async fn apply_when(
        &self,
        what: &'static str,
        conditions: &[Condition],
        writes: &Writes,
    ) -> Result<Conditional, StorageError> {
        self.trip(what, |_| self.redis.apply_when(conditions, writes))
            .await
    }

    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.trip("get", |mut conn| async move {
            Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
        })
        .await
    }

    /// The stored game and its exact bytes (the guard of the next write).
    pub async fn load_game(&self, id: &GameId) -> Result<Option<(Game, Vec<u8>)>, RepoError> {
        let key = schema::game_key(id);
        let Some(raw) = self.get_bytes(&key).await? else {
            return Ok(None);
        };
        let game: Game = schema::decode(&key, &raw)?;
        Ok(Some((game, raw)))
    }

    /// The game as this process last saw it (stored, or refused a press on), else as
    /// stored: for answers that need no more than who plays it, read without a round
    /// trip right after a refusal.
    pub async fn seen_game(&self, id: &GameId) -> Result<Option<Game>, RepoError> {
        match self.recent.get(id) {
            Some(raw) => Ok(Some(schema::decode(schema::game_key(id), &raw)?)),
            None => Ok(self.load_game(id).await?.map(|(game, _)| game)),
        }
    }

    /// The id of the game `channel:{channelID}` points at, if any.
    pub async fn channel_game(&self, channel: ChannelId) -> Result<Option<GameId>, RepoError> {
        let key = schema::channel_key(channel);
        match self.get_bytes(&key).await? {
            None => Ok(None),
            Some(raw) => Ok(Some(game_pointer(&key, &raw)?)),
        }
    }

    /// The guild's current session, creating the first one atomically if there is none
    /// (`SET NX GET`: of two concurrent creators, both end up with the same session).
    pub async fn current_session(
        &self,
        scope: ScopeId,
        now: DateTime<Utc>,
    ) -> Result<SessionDoc, RepoError> {
        let key = schema::session_key(scope);
        if let Some(raw) = self.get_bytes(&key).await? {
            return Ok(schema::decode(&key, &raw)?);
        }
        let fresh = SessionDoc {
            id: SessionId::random(),
            scope,
            started_at: now,
            started_by: None,
        };
        let json = schema::encode("session", &fresh)?;
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
            Some(raw) => Ok(schema::decode(&key, &raw)?),
            None => Ok(fresh),
        }
    }

    /// Starts a new session (leaderboard period) for the guild. Returns it with the
    /// session it ended, if there was one (read just before, for the reply).
    pub async fn new_session(
        &self,
        scope: ScopeId,
        by: UserId,
        now: DateTime<Utc>,
    ) -> Result<NewSession, RepoError> {
        let key = schema::session_key(scope);
        // The session it ends is read only for the reply: one that does not decode is
        // replaced all the same (a new session is how a broken one is repaired).
        let ended = match self.get_bytes(&key).await? {
            Some(raw) => match schema::decode::<SessionDoc>(&key, &raw) {
                Ok(doc) => Some(doc),
                Err(error) => {
                    tracing::warn!(%error, "the session a new one replaces does not decode; replacing it");
                    None
                }
            },
            None => None,
        };
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
        Ok(NewSession {
            started: doc,
            ended,
        })
    }

    /// Creates a game in `channel`, refusing while another one runs there. A channel
    /// pointer left at a completed or vanished game is replaced.
    pub async fn create_game(
        &self,
        channel: ChannelId,
        scope: ScopeId,
        creator: UserId,
        creator_name: &str,
        now: DateTime<Utc>,
    ) -> Result<Game, RepoError> {
        let session = self.current_session(scope, now).await?;
        let channel_key = schema::channel_key(channel);
        store::optimistic(&channel_key, |_| {
            let (channel_key, session) = (&channel_key, &session);
            async move {
                let current = self.get_bytes(channel_key).await?;
                if let Some(raw) = &current {
                    let id = game_pointer(channel_key, raw)?;
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
                )
                .with_dice(self.rules.dice);
                game.validate_change(None, &self.rules)?;
                let player = PlayerDoc {
                    id: creator,
                    name: domain::clean_name(creator_name),
                    current_game: Some(game.id.clone()),
                    last_roll: None,
                    last_roll_at: None,
                    updated_at: now,
                };
                let stored = schema::encode("game", &game)?;
                let mut writes = Writes::new();
                writes
                    .set(&schema::game_key(&game.id), stored.as_str())
                    .set(channel_key, game.id.as_str())
                    .sadd(ACTIVE_GAMES, game.id.as_str())
                    .sadd(&schema::player_games_key(creator), game.id.as_str())
                    // A set naming a running game never expires (see `tidy_player_games`).
                    .persist(&schema::player_games_key(creator))
                    .set(
                        &schema::player_key(creator),
                        schema::encode("player", &player)?,
                    )
                    .sadd(&schema::session_games_key(&session.id), game.id.as_str());
                if !self
                    .apply_if(channel_key, current.as_deref(), &writes)
                    .await?
                {
                    return Ok(Attempt::Retry);
                }
                tracing::info!(game = %game.id, %channel, %creator, "game created");
                self.recent.put(&game.id, Arc::from(stored.into_bytes()));
                Ok(Attempt::Done(game))
            }
        })
        .await
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
        message: Option<MessageId>,
        rule: F,
    ) -> Result<Updated<T>, RepoError>
    where
        F: FnMut(&mut Game) -> Result<Step<T>, GameError>,
    {
        let key = schema::game_key(id);
        // The document to try next: a guess from the cache (`true`), or what Redis just
        // said (`false`). It survives from one attempt to the next.
        let known: Mutex<Option<(Arc<[u8]>, bool)>> =
            Mutex::new(self.recent.get(id).map(|raw| (raw, true)));
        let rule = Mutex::new(rule);
        store::optimistic(&key, |attempt| {
            let (key, known, rule) = (&key, &known, &rule);
            async move {
                let next = lock(known).take();
                let (raw, guessed) = match next {
                    Some(known) => known,
                    None => match self.get_bytes(key).await? {
                        Some(raw) => (Arc::from(raw), false),
                        None => {
                            self.recent.forget(id);
                            return Err(RepoError::GameNotFound(id.clone()));
                        }
                    },
                };
                let decided = self.decide(key, &raw, message, &mut *lock(rule));
                let Decided {
                    before,
                    game,
                    step,
                    writes,
                    stored,
                } = match decided {
                    Ok(decided) => decided,
                    // A refusal must come from the stored game, never from a stale guess.
                    Err(_) if guessed => {
                        self.recent.forget(id);
                        return Ok(Attempt::Retry);
                    }
                    Err(error) => {
                        // Refused on the stored game: remember it, the next press starts there.
                        self.recent.put(id, raw);
                        return Err(error);
                    }
                };
                match self.apply_or_read(key, &raw, &writes).await? {
                    Guarded::Applied => {
                        self.recent.put(id, Arc::from(stored.into_bytes()));
                        if step.effects.completed || (game.is_completed() && !before.is_completed())
                        {
                            tracing::info!(game = %game.id, abandoned = game.abandoned, "game completed");
                            let players: Vec<UserId> =
                                game.participants.iter().map(|p| p.player_id).collect();
                            if let Err(error) = self.tidy_player_games(&players).await {
                                tracing::warn!(game = %game.id, %error, "player_games not tidied after the game ended; `tavern check` reports it until the next game of these players ends");
                            }
                        }
                        Ok(Attempt::Done(Updated {
                            game,
                            value: step.value,
                            effects: step.effects,
                        }))
                    }
                    Guarded::Changed(None) => {
                        self.recent.forget(id);
                        Err(RepoError::GameNotFound(id.clone()))
                    }
                    Guarded::Changed(Some(current)) => {
                        *lock(known) = Some((Arc::from(current), false));
                        tracing::debug!(game = %id, attempt, "lost a race on the game; retrying");
                        Ok(Attempt::Retry)
                    }
                }
            }
        })
        .await
    }

    /// Applies `rule` to the game stored as `raw` and works out the writes.
    fn decide<T, F>(
        &self,
        key: &str,
        raw: &[u8],
        message: Option<MessageId>,
        rule: &mut F,
    ) -> Result<Decided<T>, RepoError>
    where
        F: FnMut(&mut Game) -> Result<Step<T>, GameError>,
    {
        let before: Game = schema::decode(key, raw)?;
        let mut game = before.clone();
        let step = rule(&mut game)?;
        if game.message_id.is_none() {
            game.message_id = message;
        }
        game.version = before.version + 1;
        let (writes, stored) = self.writes_for(&before, &game, &step)?;
        Ok(Decided {
            before,
            game,
            step,
            writes,
            stored,
        })
    }

    /// Every write that turns `before` into `after`, validated first.
    fn writes_for<T>(
        &self,
        before: &Game,
        after: &Game,
        step: &Step<T>,
    ) -> Result<(Writes, String), RepoError> {
        after.validate_change(Some(before), &self.rules)?;
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
        let known: BTreeSet<UserId> = before.participants.iter().map(|p| p.player_id).collect();
        for joined in after
            .participants
            .iter()
            .filter(|p| !known.contains(&p.player_id))
        {
            let key = schema::player_games_key(joined.player_id);
            writes.sadd(&key, id).persist(&key);
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
            // `player_games:{playerID}` keeps the game until it expires: see
            // `tidy_player_games`, run once the completion is stored.
        }
        Ok((writes, json))
    }

    /// Keeps `player_games:{playerID}` of `players` true to the seed ("all games a
    /// player is in") without a key per member: a set names every game of the player
    /// until that game's `game:{gameID}` expires. While a member is running the set has
    /// no TTL (every write that adds a running game also `PERSIST`s it); once none is,
    /// the set expires with its longest-lived completed game, and members whose game is
    /// gone are removed. Run when a game ends (three round trips: the sets, the games'
    /// TTLs, one conditional write for all of them). The write applies only while every
    /// set still holds exactly what was read, so a join racing it is never dropped.
    pub async fn tidy_player_games(&self, players: &[UserId]) -> Result<(), RepoError> {
        if players.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = players
            .iter()
            .map(|p| schema::player_games_key(*p))
            .collect();
        store::optimistic("player_games", |_| {
            let keys = &keys;
            async move {
                let sets: Vec<Vec<String>> = self
                    .trip("player_games", |mut conn| {
                        let mut pipe = redis::pipe();
                        for key in keys {
                            pipe.cmd("SMEMBERS").arg(key);
                        }
                        async move { Ok(pipe.query_async(&mut conn).await?) }
                    })
                    .await?;
                let ids: BTreeSet<&String> = sets.iter().flatten().collect();
                let ids: Vec<&String> = ids.into_iter().collect();
                let ttls: Vec<i64> = if ids.is_empty() {
                    Vec::new()
                } else {
                    self.trip("game ttls", |mut conn| {
                        let mut pipe = redis::pipe();
                        for id in &ids {
                            pipe.cmd("PTTL").arg(schema::game_key_unchecked(id));
                        }
                        async move { Ok(pipe.query_async(&mut conn).await?) }
                    })
                    .await?
                };
                let ttl_of: HashMap<&str, i64> =
                    ids.iter().map(|id| id.as_str()).zip(ttls).collect();
                let mut conditions = Vec::new();
                let mut writes = Writes::new();
                for (key, members) in keys.iter().zip(&sets) {
                    if members.is_empty() {
                        continue;
                    }
                    for member in members {
                        conditions.push(Condition::member(key.as_str(), member.as_str()));
                    }
                    conditions.push(Condition::fewer_than(
                        key.as_str(),
                        members.len() as u64 + 1,
                    ));
                    let mut running = false;
                    let mut longest_ms: i64 = 0;
                    for member in members {
                        match ttl_of.get(member.as_str()).copied().unwrap_or(-2) {
                            -2 => {
                                writes.srem(key, member.as_str());
                            }
                            ms if ms < 0 => running = true,
                            ms => longest_ms = longest_ms.max(ms),
                        }
                    }
                    if !running {
                        if longest_ms > 0 {
                            let secs = u64::try_from(longest_ms).unwrap_or(0).div_ceil(1000);
                            writes.expire(key, secs.max(1));
                        } else {
                            writes.del(key);
                        }
                    }
                }
                if writes.is_empty() {
                    return Ok(Attempt::Done(()));
                }
                if self
                    .apply_when("tidy player_games", &conditions, &writes)
                    .await?
                    .applied()
                {
                    Ok(Attempt::Done(()))
                } else {
                    Ok(Attempt::Retry)
                }
            }
        })
        .await
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
    /// many they still owe in that game. Two round trips when uncontended: the ledger,
    /// then the swap of the member for its paid version, applied only while the old
    /// member is still there, so two presses never pay the same drink twice.
    pub async fn pay(
        &self,
        id: &GameId,
        player: UserId,
        now: DateTime<Utc>,
    ) -> Result<(DrinkRecord, usize), RepoError> {
        let key = schema::drinks_key(id);
        store::optimistic(&key, |_| {
            let key = key.as_str();
            async move {
                let ledger = self.ledger(id).await?;
                let records: Vec<DrinkRecord> = ledger.iter().map(|(r, _)| r.clone()).collect();
                let chosen = domain::drink_to_pay(&records, player)?.clone();
                let Some((_, old_member)) = ledger.iter().find(|(r, _)| r.id == chosen.id) else {
                    return Ok(Attempt::Retry);
                };
                let paid = domain::paid(&chosen, now);
                let new_member = paid.to_json()?;
                let mut writes = Writes::new();
                writes.command("ZREM").arg(key).arg(old_member.as_str());
                writes.zadd(key, paid.score(), new_member.as_str());
                let still_there = [Condition::sorted_member(key, old_member.as_str())];
                if !self
                    .apply_when("pay", &still_there, &writes)
                    .await?
                    .applied()
                {
                    return Ok(Attempt::Retry);
                }
                let still_owed = records.iter().filter(|r| r.to == player && !r.paid).count() - 1;
                tracing::info!(game = %id, %player, drink = %paid.id, "drink paid");
                Ok(Attempt::Done((paid, still_owed)))
            }
        })
        .await
    }

    /// The last `n` drinks of game `id`'s ledger, newest first.
    pub async fn latest_drinks(
        &self,
        id: &GameId,
        n: usize,
    ) -> Result<Vec<DrinkRecord>, RepoError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let key = schema::drinks_key(id);
        let from = -i64::try_from(n).unwrap_or(i64::MAX);
        let members: Vec<String> = self
            .trip("latest drinks", |mut conn| {
                let key = key.clone();
                async move {
                    Ok(redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(from)
                        .arg(-1)
                        .query_async(&mut conn)
                        .await?)
                }
            })
            .await?;
        let mut records: Vec<DrinkRecord> = parse_ledger(id, members)
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        records.reverse();
        Ok(records)
    }

    /// `player`'s tab in the guild's current session, with what they still owe from
    /// earlier sessions and where (up to seven round trips).
    pub async fn tab(&self, scope: ScopeId, player: UserId) -> Result<Tab, RepoError> {
        let board = self.leaderboard_with(scope, Some(player)).await?;
        let earlier = self.earlier_unpaid(&board, player).await?;
        let open = self.open_games(board.unpaid.iter().chain(&earlier)).await?;
        let counters: HashMap<String, i64> = self
            .trip("player counters", |mut conn| {
                let key = schema::player_drinks_key(player);
                async move {
                    Ok(redis::cmd("HGETALL")
                        .arg(key)
                        .query_async(&mut conn)
                        .await?)
                }
            })
            .await?;
        let standing = board.standings.iter().find(|s| s.player == player).cloned();
        Ok(Tab {
            session: board.session,
            standing,
            unpaid: board.unpaid,
            earlier,
            open,
            received_ever: counters.get(FIELD_RECEIVED).copied().unwrap_or(0),
            assigned_ever: counters.get(FIELD_ASSIGNED).copied().unwrap_or(0),
            names: board.names,
        })
    }

    /// `player`'s unpaid drinks in the games `player_games:{playerID}` names outside
    /// the current session's, oldest first.
    async fn earlier_unpaid(
        &self,
        board: &BoardAndUnpaid,
        player: UserId,
    ) -> Result<Vec<DrinkRecord>, RepoError> {
        let key = schema::player_games_key(player);
        let ids = self.members("games of the player", &key).await?;
        let ids: Vec<GameId> = ids
            .iter()
            .filter_map(|s| GameId::parse(s).ok())
            .filter(|id| !board.game_ids.contains(id))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ledgers = self.ledgers("ledgers of the player", &ids).await?;
        let current = board.session.as_ref().map(|s| &s.id);
        let mut out: Vec<DrinkRecord> = ids
            .iter()
            .zip(ledgers)
            .flat_map(|(id, members)| parse_ledger(id, members))
            .map(|(r, _)| r)
            .filter(|r| r.to == player && !r.paid && Some(&r.session_id) != current)
            .collect();
        out.sort_by_key(|r| (r.at, r.id.clone()));
        Ok(out)
    }

    /// The games holding `unpaid`, oldest first, with their messages while their
    /// documents are stored.
    async fn open_games<'a>(
        &self,
        unpaid: impl Iterator<Item = &'a DrinkRecord>,
    ) -> Result<Vec<OpenGame>, RepoError> {
        let mut open: Vec<OpenGame> = Vec::new();
        for drink in unpaid {
            match open.iter_mut().find(|g| g.game == drink.game_id) {
                Some(game) => {
                    game.owed += 1;
                    game.since = game.since.min(drink.at);
                }
                None => open.push(OpenGame {
                    game: drink.game_id.clone(),
                    session: drink.session_id.clone(),
                    owed: 1,
                    since: drink.at,
                    message: None,
                }),
            }
        }
        if open.is_empty() {
            return Ok(open);
        }
        let keys: Vec<String> = open.iter().map(|g| schema::game_key(&g.game)).collect();
        let docs: Vec<Option<Vec<u8>>> = self
            .trip("games of the tab", |mut conn| {
                let keys = keys.clone();
                async move { Ok(redis::cmd("MGET").arg(keys).query_async(&mut conn).await?) }
            })
            .await?;
        for ((game, key), raw) in open.iter_mut().zip(&keys).zip(docs) {
            let Some(raw) = raw else { continue };
            match schema::decode::<Game>(key, &raw) {
                Ok(doc) => {
                    game.message = doc.message_id.map(|m| (doc.scope, doc.channel_id, m));
                    game.since = doc.created_at;
                }
                Err(error) => tracing::warn!(%error, "unreadable game document"),
            }
        }
        open.sort_by_key(|g| g.since);
        Ok(open)
    }

    /// The leaderboard of the guild's current session.
    pub async fn leaderboard(&self, scope: ScopeId) -> Result<Board, RepoError> {
        Ok(self.leaderboard_with(scope, None).await?.board())
    }

    /// The session's leaderboard, and `player`'s unpaid drinks when given.
    async fn leaderboard_with(
        &self,
        scope: ScopeId,
        player: Option<UserId>,
    ) -> Result<BoardAndUnpaid, RepoError> {
        let session_key = schema::session_key(scope);
        let Some(raw) = self.get_bytes(&session_key).await? else {
            return Ok(BoardAndUnpaid::default());
        };
        let session: SessionDoc = schema::decode(&session_key, &raw)?;
        let games_key = schema::session_games_key(&session.id);
        let ids = self.members("games of the session", &games_key).await?;
        let ids: Vec<GameId> = ids.iter().filter_map(|s| GameId::parse(s).ok()).collect();
        let mut records = Vec::new();
        if !ids.is_empty() {
            let ledgers = self.ledgers("ledgers", &ids).await?;
            for (id, members) in ids.iter().zip(ledgers) {
                records.extend(parse_ledger(id, members).into_iter().map(|(r, _)| r));
            }
        }
        records.retain(|r| r.session_id == session.id);
        let standings = domain::leaderboard(records.iter());
        let mut unpaid: Vec<DrinkRecord> = match player {
            Some(player) => records
                .iter()
                .filter(|r| r.to == player && !r.paid)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        unpaid.sort_by_key(|r| (r.at, r.id.clone()));
        let players: BTreeSet<UserId> = standings
            .iter()
            .map(|s| s.player)
            .chain(unpaid.iter().filter_map(|r| r.from))
            .collect();
        let names = self.names(players.into_iter()).await?;
        Ok(BoardAndUnpaid {
            session: Some(session),
            standings,
            names,
            games: ids.len(),
            unpaid,
            game_ids: ids,
        })
    }

    /// Display names from `player:{playerID}` documents.
    pub async fn names(
        &self,
        players: impl Iterator<Item = UserId>,
    ) -> Result<HashMap<UserId, String>, RepoError> {
        let players: Vec<UserId> = players.collect();
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
        for (key, raw) in keys.iter().zip(docs) {
            let Some(raw) = raw else { continue };
            match schema::decode::<PlayerDoc>(key, &raw) {
                Ok(doc) => {
                    names.insert(doc.id, doc.name);
                }
                Err(error) => tracing::warn!(%error, "unreadable player document"),
            }
        }
        Ok(names)
    }
}

/// A [`Board`] and one player's unpaid drinks, read together.
#[derive(Debug, Default)]
struct BoardAndUnpaid {
    session: Option<SessionDoc>,
    standings: Vec<Standing>,
    names: HashMap<UserId, String>,
    games: usize,
    unpaid: Vec<DrinkRecord>,
    /// The session's games.
    game_ids: Vec<GameId>,
}

impl BoardAndUnpaid {
    fn board(self) -> Board {
        Board {
            session: self.session,
            standings: self.standings,
            names: self.names,
            games: self.games,
        }
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
