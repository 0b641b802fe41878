//! Tavern's own commands, present whatever features are enabled: `/ping`; and its
//! own PostgreSQL schema `tavern` (the mode mark of [`crate::instance`]).

use std::sync::Arc;
use std::time::Duration;

use discord::{CommandSpec, Discord, GatewayStatus, HandlerError, Invocation, Reply, Response};
use feature::Feature;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `/ping`: the gateway heartbeat round trip and a fresh REST round trip.
async fn ping(
    discord: Discord,
    gateway: GatewayStatus,
    _invocation: Invocation,
) -> Result<Response, HandlerError> {
    let rest = discord.probe().await.map_err(HandlerError::internal)?;
    let gateway = gateway
        .latency()
        .map(ms)
        .unwrap_or_else(|| "not measured yet".into());
    Ok(Response::Message(Reply::text(format!(
        "🏓 Pong! Gateway: {gateway} · REST: {}",
        ms(rest)
    ))))
}

/// The core feature. `gateway` is filled in once the bot exists.
pub fn feature(ctx: &feature::Context, gateway: GatewayStatus) -> Feature {
    let discord = ctx.discord.clone();
    let handler = move |invocation: Invocation| ping(discord.clone(), gateway.clone(), invocation);
    Feature::new("core")
        .migrations(crate::instance::MIGRATIONS)
        .command(
            CommandSpec::new(
                "ping",
                "Check that Tavern is alive: gateway and REST latency",
            ),
            Arc::new(handler),
        )
}
