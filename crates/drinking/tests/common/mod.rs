//! Helpers shared by the drinking game's integration tests that drive the handlers
//! directly (no gateway): a [`testkit::World`] for the servers, the clock and the
//! context, and hand-made invocations.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base::ManualClock;
use discord::{
    Action, Actor, ChannelId, GuildId, Id, Invocation, MessageId, Options, Reply, Response, UserId,
};
use drinking::domain::{Die, Game, GameId};
use drinking::testing::ScriptedDice;
use drinking::{Drinking, DrinkingConfig};
use testkit::World;

pub const GUILD: u64 = 900;
pub const CHANNEL: u64 = 700;
/// The message the game's buttons are on (a stand-in: no Discord here).
pub const MESSAGE: u64 = 5000;

pub struct Env {
    pub world: World,
    pub redis: store::Redis,
    pub game: Drinking,
    pub clock: Arc<ManualClock>,
    pub dice: Arc<ScriptedDice>,
}

static NEXT_INTERACTION: AtomicU64 = AtomicU64::new(1);

pub fn player(n: u64) -> UserId {
    UserId::new(n)
}

pub fn name(n: u64) -> String {
    match n {
        1 => "alice".into(),
        2 => "bob".into(),
        3 => "carol".into(),
        n => format!("player{n}"),
    }
}

/// A game built from a fresh [`World`]'s context. The invocations below name a guild,
/// channel and message of their own (no gateway delivers them), so the background edits
/// of the public message are refused by discord-sim and logged, as offline.
pub async fn env_with(tweak: impl FnOnce(&mut DrinkingConfig)) -> Env {
    let world = World::new().await;
    let dice = Arc::new(ScriptedDice::new(Some(Die::new(3).expect("die"))));
    let mut config = DrinkingConfig {
        dice: dice.clone(),
        ..DrinkingConfig::default()
    };
    tweak(&mut config);
    let game = Drinking::new(&world.ctx, config);
    Env {
        redis: world.redis.clone(),
        clock: world.clock.clone(),
        world,
        game,
        dice,
    }
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

fn invocation(user: u64, channel: u64, action: Action) -> Invocation {
    Invocation {
        id: Id::new(NEXT_INTERACTION.fetch_add(1, Ordering::Relaxed)),
        action,
        actor: Actor {
            id: UserId::new(user),
            name: name(user),
        },
        guild_id: Some(GuildId::new(GUILD)),
        channel_id: ChannelId::new(channel),
        member_permissions: None,
    }
}

impl Env {
    pub async fn command(&self, user: u64, sub: &str) -> Result<Response, discord::HandlerError> {
        self.command_in(user, CHANNEL, sub).await
    }

    pub async fn command_in(
        &self,
        user: u64,
        channel: u64,
        sub: &str,
    ) -> Result<Response, discord::HandlerError> {
        let action = Action::Command {
            name: "ronnied".into(),
            options: Options {
                subcommand: vec![sub.into()],
                values: BTreeMap::new(),
                bots: Default::default(),
            },
        };
        self.game
            .commands()
            .command(invocation(user, channel, action))
            .await
    }

    pub async fn press(
        &self,
        user: u64,
        custom_id: &str,
    ) -> Result<Response, discord::HandlerError> {
        self.press_values(user, custom_id, Vec::new()).await
    }

    pub async fn press_values(
        &self,
        user: u64,
        custom_id: &str,
        values: Vec<String>,
    ) -> Result<Response, discord::HandlerError> {
        self.press_on(&self.game, user, custom_id, values).await
    }

    /// A press handled by `game` (another instance of the bot, say).
    pub async fn press_on(
        &self,
        game: &Drinking,
        user: u64,
        custom_id: &str,
        values: Vec<String>,
    ) -> Result<Response, discord::HandlerError> {
        let action = Action::Component {
            custom_id: custom_id.into(),
            values,
            message_id: MessageId::new(MESSAGE),
        };
        game.commands()
            .component(invocation(user, CHANNEL, action))
            .await
    }

    /// A second bot instance over the same Redis, clock and dice (its own caches).
    pub fn other_instance(&self) -> Drinking {
        let config = DrinkingConfig {
            dice: self.dice.clone(),
            ..DrinkingConfig::default()
        };
        Drinking::new(&self.world.ctx, config)
    }

    /// Starts a game by `creator`, has `others` join, and returns the game id.
    pub async fn started_game(&self, creator: u64, others: &[u64]) -> GameId {
        let reply = reply_of(self.command(creator, "start").await.expect("start"));
        let id = game_id_of(&reply);
        for n in others {
            self.press(*n, &drinking::custom_id(drinking::Press::Join, &id))
                .await
                .expect("join");
        }
        id
    }

    pub async fn load(&self, id: &GameId) -> Game {
        self.game
            .repo()
            .load_game(id)
            .await
            .expect("load")
            .expect("game exists")
            .0
    }

    pub async fn redis_type(&self, key: &str) -> String {
        store::harness::key_type(&self.redis, key).await
    }

    pub async fn ttl(&self, key: &str) -> i64 {
        store::harness::ttl(&self.redis, key).await
    }
}

pub fn reply_of(response: Response) -> Reply {
    match response {
        Response::Message(r) | Response::Update(r) => r,
        Response::Choices(choices) => panic!("a message, not suggestions: {choices:?}"),
    }
}

/// The game id in the first button of a reply.
pub fn game_id_of(reply: &Reply) -> GameId {
    let discord::Component::Button { custom_id, .. } = &reply.rows[0].0[0] else {
        panic!("the first component is a button");
    };
    drinking::ComponentId::parse(custom_id)
        .expect("our custom id")
        .game
}
