//! `tavern campaigns sync --once`: one whole campaigns sync (Meetup → Redis → Discord)
//! over REST only (no gateway), for an operator who wants to see what it does now
//! rather than wait for the next round of `tavern serve`.
//!
//! It reads the organiser's Meetup token from the seed's keys (`meetup_access_token`,
//! `meetup_refresh_token`, refreshed and stored again if Meetup refuses it), prints
//! what it created, changed and deleted, and exits 0 when everything synced, 1 when
//! some group or Discord object failed (each named), 2 for a command or configuration
//! that cannot run.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use tavern::config::Config;

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// One whole sync: Meetup → Redis, then Redis → Discord (REST only), printing what
    /// changed.
    Sync {
        /// Run one sync and exit (the only mode; the schedule lives in `tavern serve`).
        #[arg(long)]
        once: bool,
    },
}

pub async fn run(config: &Config, command: CampaignsCommand) -> anyhow::Result<ExitCode> {
    let CampaignsCommand::Sync { once } = command;
    if !once {
        eprintln!(
            "tavern: the campaigns sync runs inside `tavern serve`; use `tavern campaigns sync --once` for one round"
        );
        return Ok(ExitCode::from(2));
    }
    let Some(campaigns) = config.meetup.clone() else {
        eprintln!(
            "tavern: no Meetup group is configured (meetup_groups / TAVERN_MEETUP_GROUPS): nothing to sync"
        );
        return Ok(ExitCode::from(2));
    };
    if config.discord_token.is_none() {
        eprintln!(
            "tavern: the campaigns sync makes channels and roles on Discord and needs the bot token (TAVERN_DISCORD_TOKEN)"
        );
        return Ok(ExitCode::from(2));
    }
    // The alert asking the organisers to authorise Tavern again links the organiser
    // page under the public URL, as `tavern serve` does.
    let campaigns = campaigns.at_site(&tavern::app::public_url(config, config.http_addr)?);
    discord::install_crypto_provider();
    let redis = store::Redis::connect(config.redis_url.expose())
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis_url))?;
    let repo = campaigns::Repo::new(redis);
    let client = meetup::MeetupClient::new(campaigns.endpoints.clone())
        .context("building the Meetup client")?;
    let discord = tavern::app::command_discord(config);
    let now = feature::Clock::now(&feature::SystemClock);
    let report = campaigns::jobs::sync_all(&repo, &client, &discord, &campaigns, now)
        .await
        .context("campaigns sync")?;
    let meetup = &report.meetup;
    println!(
        "Meetup → Redis: {} group(s) read, {} event(s) seen, {} stored, {} deleted, {} skipped, {} held back",
        meetup.groups, meetup.seen, meetup.stored, meetup.deleted, meetup.skipped, meetup.held
    );
    let mut failed = false;
    for group in &meetup.failed_groups {
        println!("failed: {group}");
        failed = true;
    }
    if let Some(d) = &report.discord {
        println!(
            "Redis → Discord: {} series, {} created, {} changed, {} deleted",
            d.series,
            d.created.len(),
            d.changed.len(),
            d.deleted.len()
        );
        for (label, lines) in [
            ("created", &d.created),
            ("changed", &d.changed),
            ("deleted", &d.deleted),
            ("skipped", &d.skipped),
            ("failed", &d.failed),
        ] {
            for line in lines {
                println!("{label}: {line}");
            }
        }
        failed |= !d.failed.is_empty();
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
