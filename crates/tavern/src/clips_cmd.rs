//! `tavern clips scan CHANNEL_ID [--deep] [--json]`: one scan of a channel's history,
//! run to its end in this process over Discord's REST API (no gateway), for an
//! operator who wants a channel indexed now, or a first import before `tavern serve`.
//!
//! It migrates the clips schema, registers the channel and its guild from Discord when
//! Tavern has not seen them, queues a run (or takes up the channel's unfinished one:
//! a run left `running` by a killed process is continued from its row, not started
//! over) and runs it, with a progress bar when standard output is a terminal. At the
//! end it prints `scanned N messages, matched M, clips in channel K`, or with `--json`
//! one JSON object `{"run_id", "status", "messages_scanned", "messages_matched",
//! "clips_in_channel"}` as the last line of standard output. Its logs go to standard
//! error, so standard output holds only the bar and the figures.
//!
//! When another live worker holds the channel's run (a `tavern serve` scan worker took
//! it, or another `tavern clips scan`), the command does not start a second run: it
//! says so on standard error, follows that run's row (the same progress display) until
//! it ends, and prints the figures of that run. While it waits it keeps trying the
//! channel's lock, so a worker that stops mid-run (shut down, killed: its lock goes a
//! moment later with its connection) has its run taken up and continued here.
//!
//! Exit codes: 0 when the run succeeded (also when there was nothing new), 1 when it
//! failed or was canceled elsewhere (the reason on standard error), 2 for a command or
//! configuration that cannot run, 130 after Ctrl-C. Ctrl-C stops the run after the
//! page in flight and leaves it resumable: the same command continues it; Ctrl-C while
//! waiting for another worker's run leaves that run to its worker.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use clips::repo::ScanRun;
use clips::scan::{Requested, ScanError, ScanMode, Scanner};
use clips::{Repo, ScanStatus};
use discord::ChannelId;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tavern::config::Config;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum ClipsCommand {
    /// Scan one channel's history for videos, to the end, over REST: a catch-up from
    /// where the last scan stopped (the whole history until a scan has read it to its
    /// start since the channel's last purge), or `--deep`.
    Scan {
        /// The channel's Discord id.
        channel_id: String,
        /// Read the whole history again, newest to oldest.
        #[arg(long)]
        deep: bool,
        /// Print one JSON object as the last line instead of the sentence.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, command: ClipsCommand) -> anyhow::Result<ExitCode> {
    let ClipsCommand::Scan {
        channel_id,
        deep,
        json,
    } = command;
    let channel: ChannelId = match discord::model::parse_id("channel id", channel_id.trim()) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("tavern: `{channel_id}` is not a Discord channel id: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if config.discord_token.is_none() {
        eprintln!(
            "tavern: scanning reads the channel's history from Discord and needs the bot token (TAVERN_DISCORD_TOKEN)"
        );
        return Ok(ExitCode::from(2));
    }
    discord::install_crypto_provider();
    let pg = store::Postgres::connect(config.database_url.expose())
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", config.database_url))?;
    pg.migrate(&clips::MIGRATIONS)
        .await
        .context("migrating the clips schema")?;
    let repo = Repo::new(&pg);
    let discord = tavern::app::command_discord(config);
    let scanner = Scanner::new(repo.clone(), discord, Arc::new(feature::SystemClock));

    let stored = scanner
        .ensure_channel(channel)
        .await
        .with_context(|| format!("registering channel {channel}"))?;
    let mode = if deep {
        ScanMode::Deep
    } else {
        ScanMode::Quick
    };
    let run = match scanner
        .request(channel, mode)
        .await
        .with_context(|| format!("queueing a scan of channel {channel}"))?
    {
        Requested::Queued(run) => run,
        Requested::Existing(run) => {
            eprintln!(
                "tavern: channel {channel} already has a {} scan run {} ({} messages so far): following it to its end",
                run.status, run.id, run.messages_scanned
            );
            run
        }
    };
    tracing::info!(%channel, run = %run.id, deep, "clips scan started");

    let bar = progress_bar(stored.info.name.as_deref().unwrap_or("channel"));
    let progress = {
        let bar = bar.clone();
        move |run: &ScanRun| {
            if let Some(bar) = &bar {
                bar.set_message(format!(
                    "{} messages read, {} with clips",
                    run.messages_scanned, run.messages_matched
                ));
                bar.tick();
            }
        }
    };
    let cancel = CancellationToken::new();
    let interrupted = CancellationToken::new();
    let watcher = {
        let (cancel, interrupted) = (cancel.clone(), interrupted.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.cancel();
                cancel.cancel();
            }
        })
    };
    let outcome = run_or_follow(&scanner, &run, &progress, &cancel, &interrupted).await;
    watcher.abort();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let finished = match outcome {
        Ok(Followed::Ended(finished)) => finished,
        Ok(Followed::StoppedWaiting(now)) => {
            eprintln!(
                "tavern: interrupted: stopped waiting for scan run {} ({} messages so far), which its worker goes on with",
                now.id, now.messages_scanned
            );
            return Ok(ExitCode::from(130));
        }
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context(format!("scan run {} of channel {channel}", run.id)));
        }
    };
    let clips_in_channel = repo
        .clips_in_channel(channel)
        .await
        .context("counting the channel's clips")?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "run_id": finished.id.to_string(),
                "status": finished.status.as_str(),
                "messages_scanned": finished.messages_scanned,
                "messages_matched": finished.messages_matched,
                "clips_in_channel": clips_in_channel,
            })
        );
    } else {
        println!(
            "scanned {} messages, matched {}, clips in channel {clips_in_channel}",
            finished.messages_scanned, finished.messages_matched
        );
    }
    Ok(match finished.status {
        ScanStatus::Succeeded => ExitCode::SUCCESS,
        _ if interrupted.is_cancelled() => {
            eprintln!(
                "tavern: interrupted: scan run {} stopped after {} messages and stays resumable; run the same command again to continue it",
                finished.id, finished.messages_scanned
            );
            ExitCode::from(130)
        }
        ScanStatus::Failed => {
            eprintln!(
                "tavern: scan run {} failed: {}",
                finished.id,
                finished
                    .error_message
                    .as_deref()
                    .unwrap_or("no reason recorded")
            );
            ExitCode::FAILURE
        }
        ScanStatus::Canceled => {
            eprintln!(
                "tavern: scan run {} was canceled (by `/clips cancel` or the web library)",
                finished.id
            );
            ExitCode::FAILURE
        }
        status @ (ScanStatus::Queued | ScanStatus::Running) => {
            eprintln!(
                "tavern: scan run {} stopped while {status}; run the same command again to continue it",
                finished.id
            );
            ExitCode::FAILURE
        }
    })
}

/// How often the row of a run another worker holds is read (and its lock tried).
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// How [`run_or_follow`] ended.
enum Followed {
    /// The run stopped: ended (succeeded, failed, canceled), or interrupted here and
    /// left `running`. Its row.
    Ended(ScanRun),
    /// Ctrl-C while another worker held the run: its row then.
    StoppedWaiting(ScanRun),
}

/// Runs `run` here, or, while another live worker holds its channel, follows its row
/// until it ends. The channel's lock is tried again at every poll: a holder that stops
/// (shut down, or killed and its lock gone with its connection a moment later) leaves
/// the run to this process, which continues it from its row.
async fn run_or_follow(
    scanner: &Scanner,
    run: &ScanRun,
    progress: &(dyn Fn(&ScanRun) + Send + Sync),
    cancel: &CancellationToken,
    interrupted: &CancellationToken,
) -> Result<Followed, ScanError> {
    let mut waiting = false;
    loop {
        match scanner.run(run.id, progress, cancel.clone()).await {
            Ok(finished) => return Ok(Followed::Ended(finished)),
            Err(ScanError::Busy) => {}
            Err(error) => return Err(error),
        }
        let now = scanner
            .repo()
            .run(run.id)
            .await?
            .ok_or(ScanError::UnknownRun(run.id))?;
        if !waiting {
            waiting = true;
            tracing::info!(run = %run.id, channel = %run.channel, "scan run held by another worker; following it");
            eprintln!(
                "tavern: another worker (`tavern serve`, or another `tavern clips scan`) is scanning channel {} in run {}: waiting for it to end",
                run.channel, run.id
            );
        }
        progress(&now);
        if now.status.is_final() {
            return Ok(Followed::Ended(now));
        }
        tokio::select! {
            _ = interrupted.cancelled() => return Ok(Followed::StoppedWaiting(now)),
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

/// A spinner with the run's counts, on standard output when it is a terminal; none
/// otherwise (a pipe or a file gets only the final line).
fn progress_bar(channel_name: &str) -> Option<ProgressBar> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
    if let Ok(style) = ProgressStyle::with_template("{spinner} #{prefix} [{elapsed}] {msg}") {
        bar.set_style(style);
    }
    bar.set_prefix(channel_name.to_owned());
    bar.set_message("starting");
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}
