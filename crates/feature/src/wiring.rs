use std::sync::Arc;
use std::time::Duration;

use discord::{Bot, BotConfig, DiscordConfig, DuplicateRoute, Router};
use tokio_util::sync::CancellationToken;

use crate::Feature;

/// Routes every feature's commands and components through one [`Router`], and collects
/// their event handlers.
pub fn route(
    discord: discord::Discord,
    features: &mut [Feature],
) -> Result<(Router, Vec<Arc<dyn discord::EventHandler>>), DuplicateRoute> {
    let mut router = Router::new(discord);
    let mut events = Vec::new();
    for feature in features.iter_mut() {
        for (spec, handler) in std::mem::take(&mut feature.commands) {
            router.command(spec, handler)?;
        }
        if let Some((prefix, handler)) = feature.components.take() {
            router.components(prefix, handler)?;
        }
        if let Some(handler) = feature.events.take() {
            events.push(handler);
        }
    }
    Ok((router, events))
}

/// A bot connected to a stand-in Discord (discord-sim), for end-to-end tests of features.
#[derive(Debug)]
pub struct TestBot {
    pub discord: discord::Discord,
    pub status: discord::GatewayStatus,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// The REST/gateway settings that point a bot at a stand-in Discord.
pub fn sim_config(token: &str, api_addr: &str, gateway_url: &str) -> BotConfig {
    let mut rest = DiscordConfig::new(token, Some(api_addr.to_owned()));
    rest.base_backoff = Duration::from_millis(50);
    BotConfig {
        rest,
        gateway: Some(gateway_url.to_owned()),
        shards: Some(1),
        drain_timeout: Duration::from_secs(5),
    }
}

impl TestBot {
    /// The [`discord::Discord`] to build features with before [`TestBot::start`].
    pub fn discord_for(config: &BotConfig) -> discord::Discord {
        discord::Discord::new(&config.rest)
    }

    /// Routes `features` and connects. Returns once the gateway is ready.
    pub async fn start(
        config: BotConfig,
        discord: discord::Discord,
        mut features: Vec<Feature>,
    ) -> TestBot {
        let (router, events) =
            route(discord.clone(), &mut features).expect("features route without clashes");
        let bot = Bot::new(config, router, events);
        let status = bot.status();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = bot.run(token).await {
                panic!("test bot stopped: {error}");
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !status.is_ready() {
            assert!(
                std::time::Instant::now() < deadline,
                "bot did not become ready within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        TestBot {
            discord,
            status,
            shutdown,
            task,
        }
    }

    /// Closes the shards and waits for in-flight interactions.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
