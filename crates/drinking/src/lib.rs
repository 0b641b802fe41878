//! The dice drinking game ("Ronnied"): games with roll-offs, a drink ledger, sessions and
//! leaderboards, stored in Redis exactly as the seed `ronnied-redis-design.md` lays out.
//!
//! Built like every feature, from the kit: [`feature()`] takes the shared
//! [`feature::Context`] (Redis, Discord, the clock) and a [`DrinkingConfig`] and hands
//! back the [`feature::Feature`] (the `/ronnied` command, the `ronnied:` components and
//! the `drinking` check). [`Drinking`] is the same, kept whole for tests and the
//! `tavern bench drinking` command, which also want its handlers and its round-trip
//! count.
//!
//! # Rooms
//! - [`domain`]: ids ([`domain::GameId`], [`domain::SessionId`], [`domain::DrinkId`]
//!   from `key_id!`; players, channels and messages are Discord's own ids), the
//!   documents and the rules, pure: join, begin (or force-start), roll, hand out a
//!   drink, roll-offs, abandon, leaderboard, paying. Time and dice are injected.
//! - [`schema`]: the seed's keys (and Tavern's two additions) and how documents are
//!   encoded under them. No other module formats or names a key. It depends on
//!   [`domain`], never the reverse.
//! - [`repo`]: repositories over the schema. Each button press is one guarded write of
//!   `game:{gameID}` against the document this process last saw (one round trip; a read
//!   first when it saw none), redone on the stored document when it loses a race, in
//!   the kit's one retry loop ([`store::optimistic()`]). Failures are [`RepoError`]: the
//!   rules' refusals next to the kit's [`store::StorageError`].
//! - [`commands`]: the `/ronnied` command, the buttons and the select menu; the one
//!   place a [`RepoError`] becomes a reply.
//! - [`lines`]: the themed lines (several per event, picked by the game's dice).
//! - [`check`]: the consistency check run by `tavern check`.
//! - [`testing`]: scripted dice for tests and benchmarks.
//!
//! # How a game is driven (for tests and benchmarks through discord-sim)
//! 1. A user runs `/ronnied start` (options `[{"name":"start","type":1,"options":[]}]`).
//!    The interaction's response is the public game message, with the buttons
//!    `ronnied:join:<game>` and `ronnied:begin:<game>`; its `message_id` is the message
//!    every later button is pressed on.
//! 2. Other users press `ronnied:join:<game>` (private "you're in" reply).
//! 3. The creator presses `ronnied:begin:<game>` (anyone in the game may after
//!    [`DrinkingConfig::force_start_after`]; the creator then owes a `delayed_start` drink).
//! 4. Every player presses `ronnied:roll:<game>`; the private reply shows the roll. On
//!    the crit value (6 unless configured) it carries the select menu
//!    `ronnied:assign:<game>` whose option values are player ids: pick one with
//!    `Sim::select` on that private message to hand out the drink. Until they pick,
//!    `ronnied:roll:<game>` answers them with the menu again (for one dismissed
//!    with its private reply).
//! 5. On a tie the players named in the reply ("roll-off") press `ronnied:roll:<game>`
//!    again, on the same game message, until the tie is broken.
//! 6. The game message reads "game over" once completed. `ronnied:pay:<game>` marks the
//!    presser's oldest unpaid drink of that game as paid. `ronnied:new:<game>` (**Start
//!    New Game**, on a finished game) starts the next game in the channel, answered with
//!    its public message. `ronnied:tab:<game>` (**Tab**) and `/ronnied tab` show the
//!    presser's tab privately. `/ronnied leaderboard`, `/ronnied newsession` and
//!    `/ronnied abandon` work at any time.
//!
//! The game message also shows the session's leaderboard (top 5) and the game's latest
//! drinks (last 5), read when it is drawn.
//!
//! After every press the public message is edited in the background (ordered by the
//! game's version, bursts coalesced), so the press's own answer comes first. discord-sim
//! only accepts clicks on buttons the message currently has: after Begin, wait until the
//! message shows `ronnied:roll:<game>` before pressing Roll. Button presses are answered
//! after one Redis round trip when uncontended (two for Pay, and for a game this process
//! has not seen yet; the press that ends a game makes three more, tidying
//! `player_games`; [`Drinking::round_trips`] counts them, not the background reads of
//! the message's leaderboard);
//! [`testing::ScriptedDice`] scripts each player's dice for reproducible runs.
//!
//! # Choices where the seed and the rules leave room
//! - **Sessions** are per guild (per channel in DMs), stored under Tavern's own key
//!   `session:{scopeID}` (JSON: id, start time, who started it); the games started in a
//!   session are indexed in `session_games:{sessionID}` (a set). Every game and every
//!   drink record carries its `session_id`. `/ronnied newsession` replaces the session
//!   document; old ledgers stay. Any member may start one, as in the original (it
//!   only starts a new leaderboard period); the public answer names who did, as a
//!   mention that pings nobody, and the session it ended. A game counts for the session it started in, even if
//!   a new session begins while it runs. The seed names no key for sessions, and
//!   neither addition reuses a seed key's pattern.
//! - **Roll-offs** are child games (own id, participants, status, `parent_id`,
//!   `roll_off_kind`) nested inside the parent's `game:{gameID}` JSON rather than keys of
//!   their own: the seed stores a game as one JSON document "with nested participants"
//!   for atomic reads and writes, and nesting keeps a press on any part of the game tree
//!   one compare-and-set on one key. Indexes (`active_games`, `player_games`) name
//!   top-level games only.
//! - **Ties**: a tie for lowest starts a roll-off deciding who takes the `lowest_roll`
//!   drink; a tie for highest starts one deciding the winner (shown on the message, no
//!   drink). Roll-offs follow the normal 6/1 rules. Everyone tied: only the lowest
//!   roll-off. A 6 hands a drink to any other player of the game, even from a roll-off.
//! - **Ledger**: `drinks:{gameID}` of the top-level game holds every drink of the game
//!   and its roll-offs (each record names its `roll_off_id`). Paying replaces the member
//!   with its paid version (same score) in one step applied only while the unpaid
//!   member is still there (`Redis::apply_when`). Ledgers are kept when games expire:
//!   leaderboards read them.
//! - **Counters**: `player_drinks:{playerID}` `received` counts every drink a player
//!   got; `assigned` counts drinks they handed to *somebody else* (a 6, a force start),
//!   not drinks poured by a rule or to themselves. Paid counts come from the ledger.
//! - **Lifecycle**: on completion (or abandon) `game:{gameID}` gets the configured TTL
//!   (`drinking_game_lifetime`, 24 h by default), `channel:{channelID}` is deleted and
//!   the game leaves `active_games`.
//! - **`player_games:{playerID}`** names *every* game the player is in ("all games a
//!   player is in") until that game expires, finished ones too. Redis cannot expire a
//!   set member, so the set carries the lifetime: it has no TTL while one of its games
//!   runs (every write adding a running game `PERSIST`s it) and, once none runs, expires
//!   with its longest-lived game; members whose game is gone are removed when the
//!   player's next game ends ([`Repo::tidy_player_games`]). The check reports a set that
//!   names no running game and never expires.
//! - **Configuration** ([`DrinkingConfig`]): the die (2 to 100 sides), its crit and fail
//!   values (faces of the die, different), the player limit, the force-start delay and
//!   the lifetime of finished games. A game stores its die (only when it is not the
//!   classic d6/6/1, so older documents keep their bytes) and keeps it when the
//!   configuration changes.
//! - **The tab** reads the ledgers of the session's games (what the player owes, has
//!   drunk, i.e. paid, and has handed out) and the all-time `player_drinks` counters. It
//!   says which session it covers, and counts apart what the player still owes from
//!   earlier sessions: the unpaid drinks in the ledgers of the other games
//!   `player_games:{playerID}` names (so games that have not expired; a ledger outlives
//!   its game, but nothing indexes a player's older ones). It links every game holding
//!   an unpaid drink to its message (`Discord::message_url`, while the game's
//!   document keeps its `message_id`), where **Pay** takes them, old sessions' included.
//!   **Pay** on a game where the player owes nothing says how many they owe elsewhere
//!   and links those games.
//! - **Themed lines** are flavour under the facts of a reply, picked by
//!   [`DiceSource::pick`] so seeded dice give the same lines; the game message's
//!   game-over line is fixed by the game id so redrawing it does not change it.
//! - **A game played alone** pours exactly one drink, for its player: a 6 with nobody
//!   to hand it to is drunk by the roller (`critical_hit` from and to them), a 1 is the
//!   usual `critical_fail`, any other face the `lowest_roll`; nobody wins. Replies and
//!   the game message say just that (no victim to pick, no "Hail X! Pity X").
//! - **Who may**: join only while waiting; begin: the creator, or any player after 5 min;
//!   abandon: the creator, or anyone once the game has been idle for 5 min.
//! - **Redis Cluster**: the seed's exact key names carry no hash tags, so the multi-key
//!   guarded write needs a single Redis server (or a cluster with one shard).

pub mod check;
pub mod commands;
pub mod domain;
pub mod lines;
pub mod repo;
pub mod schema;
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

pub use commands::{ComponentId, Press, command_spec, custom_id};
pub use domain::{DiceRules, DiceRulesError, DiceSource, GameError, RandomDice, Rules};
pub use repo::{NewSession, Repo, RepoError};

/// What the game needs of the bot in a guild: see the channel (or thread) and post the
/// game's messages (their buttons are edited through the interactions).
pub const BOT_PERMISSIONS: u64 = discord::model::permissions::VIEW_CHANNEL
    | discord::model::permissions::SEND_MESSAGES
    | discord::model::permissions::SEND_MESSAGES_IN_THREADS;

/// Settings of the drinking game. (The clock is the [`feature::Context`]'s.) The binary
/// reads them from `tavern.toml` / `TAVERN_*`: `drinking_die`, `drinking_crit`,
/// `drinking_fail` ([`DrinkingConfig::die`]), `drinking_max_players`,
/// `drinking_force_start_after` and `drinking_game_lifetime`.
#[derive(Clone)]
pub struct DrinkingConfig {
    /// Most players in one game (`drinking_max_players`, default 10), checked when a
    /// player joins: a running game with more (the limit was lowered since) plays on.
    pub player_limit: usize,
    /// How long a completed game stays in Redis, its `game:{gameID}` TTL
    /// (`drinking_game_lifetime`, default 24 h).
    pub completed_ttl: Duration,
    /// When players other than the creator may begin (and abandon an idle game)
    /// (`drinking_force_start_after`, default 5 min).
    pub force_start_after: Duration,
    /// The die new games are played with, its crit and fail values (`drinking_die`,
    /// `drinking_crit`, `drinking_fail`; default a d6 where 6 crits and 1 fails).
    pub die: DiceRules,
    /// Where rolls (and the choice of themed lines) come from.
    pub dice: Arc<dyn DiceSource>,
}

impl Default for DrinkingConfig {
    fn default() -> DrinkingConfig {
        let rules = Rules::default();
        DrinkingConfig {
            player_limit: rules.player_limit,
            completed_ttl: Duration::from_secs(24 * 60 * 60),
            force_start_after: rules.force_start_after,
            die: rules.dice,
            dice: Arc::new(RandomDice),
        }
    }
}

impl std::fmt::Debug for DrinkingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrinkingConfig")
            .field("player_limit", &self.player_limit)
            .field("completed_ttl", &self.completed_ttl)
            .field("force_start_after", &self.force_start_after)
            .field("die", &self.die)
            .finish_non_exhaustive()
    }
}

impl DrinkingConfig {
    pub fn rules(&self) -> Rules {
        Rules {
            player_limit: self.player_limit.max(1),
            force_start_after: self.force_start_after,
            dice: self.die,
        }
    }
}

/// The drinking game as a [`feature::Feature`]: what the binary calls.
pub fn feature(ctx: &feature::Context, config: DrinkingConfig) -> feature::Feature {
    Drinking::new(ctx, config).feature()
}

/// The drinking game, built once from the [`feature::Context`]; [`Drinking::feature`]
/// is what [`feature()`] hands the binary. Tests and benchmarks keep the whole value for
/// its handlers ([`Drinking::commands`]) and its round-trip count.
#[derive(Debug, Clone)]
pub struct Drinking {
    commands: Arc<commands::Commands>,
    repo: Repo,
}

impl Drinking {
    pub fn new(ctx: &feature::Context, config: DrinkingConfig) -> Drinking {
        let repo = Repo::new(ctx.redis.clone(), config.rules(), config.completed_ttl);
        let commands = Arc::new(commands::Commands::new(
            repo.clone(),
            ctx.discord.clone(),
            Arc::clone(&ctx.clock),
            Arc::clone(&config.dice),
        ));
        Drinking { commands, repo }
    }

    /// The handlers, to call them without a gateway (tests, benchmarks).
    pub fn commands(&self) -> &Arc<commands::Commands> {
        &self.commands
    }

    /// The repository (shared with the handlers).
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// Redis round trips made by the game so far; divide by presses for the per-press
    /// figure.
    pub fn round_trips(&self) -> u64 {
        self.repo.round_trips()
    }

    /// The consistency check of this feature's data, named `drinking`.
    pub fn check(&self) -> feature::Check {
        check::check_of(self.repo.redis().clone())
    }

    /// Commands, components and the check, for the binary.
    pub fn feature(&self) -> feature::Feature {
        feature::Feature::new("drinking")
            .bot_permissions(BOT_PERMISSIONS)
            .command(command_spec(), commands::command_handler(&self.commands))
            .components(
                commands::PREFIX,
                commands::component_handler(&self.commands),
            )
            .check(self.check())
    }
}
