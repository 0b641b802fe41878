//! `tavern meetings create NAME` and `tavern meetings join CODE --as NAME`: a meeting
//! made and joined from the command line, on the same stores and meeting controllers as
//! `tavern serve` (so a sandbox can be tried without a browser or an account); and
//! `tavern meeting-controller`, a meeting controller as its own process, and `tavern
//! media-handler`, a media handler as its own process (registered with its endpoint and
//! certificate hash, which every meeting controller reads from the registry).
//!
//! `create` writes the meeting as the operator (no creator) and prints its code. `join`
//! makes a join grant as the API's guest route would (the operator may join any meeting,
//! also one that requires sign-in), opens the WebTransport session at the assigned
//! controller, sends `JoinRequest`, and prints the participants it sees: everybody in
//! the `JoinResponse`, then each arrival and departure, until Ctrl-C (it leaves) or the
//! meeting ends; `--once` leaves right after the first list. Both need the meetings
//! secret key `tavern serve` uses (`TAVERN_MEETINGS_SECRET_KEY`, or the sandbox's in
//! the data dir) to sign the meeting token the controller checks.
//!
//! Exit codes: 0 done; 1 refused (unknown or ended meeting, no controller, the
//! controller said no); 2 a command or configuration that cannot run.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use meetings::controller::client::{Client, ClientError, NotOpened, Opened, open_session};
use meetings::controller::proto::{self, server_message};
use meetings::domain::{DisplayName, MeetingKey};
use meetings::grant::{self, GrantError, Joiner};
use meetings::repo::{Meeting, MeetingSettings, NewMeeting};
use meetings::{MeetingsError, Repo};
use rand::SeedableRng as _;
use tavern::config::Config;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum MeetingsCommand {
    /// Create a meeting (as the operator) and print its code.
    Create {
        /// The meeting's name.
        name: String,
        /// Most people in the meeting at once.
        #[arg(long, default_value_t = 100)]
        max_participants: i32,
        /// Print one JSON object `{meeting_id, meeting_code, display_name}` instead.
        #[arg(long)]
        json: bool,
    },
    /// Join a meeting by code (or id) and print the participants seen, until Ctrl-C.
    Join {
        /// The meeting's code (`ABC-DEFG-HJK`, any case, hyphens optional) or id.
        code: String,
        /// The name the others see.
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        /// Leave right after printing who is there.
        #[arg(long)]
        once: bool,
    },
}

/// The exit code of `tavern meetings join` stopped by Ctrl-C before it had joined (a
/// shell's for SIGINT).
const INTERRUPTED: u8 = 130;

pub async fn run(config: &Config, command: MeetingsCommand) -> anyhow::Result<ExitCode> {
    tavern::app::ensure_sandbox_meetings_key(config);
    match command {
        MeetingsCommand::Create {
            name,
            max_participants,
            json,
        } => create(config, &name, max_participants, json).await,
        MeetingsCommand::Join { code, name, once } => join(config, &code, &name, once).await,
    }
}

/// The meetings repository and authentication over the configured stores, migrated.
async fn services(config: &Config) -> anyhow::Result<(Repo, meetings::auth::Auth)> {
    let redis = store::Redis::connect(config.redis_url.expose())
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis_url))?;
    let pg = store::Postgres::connect(config.database_url.expose())
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", config.database_url))?;
    pg.migrate(&meetings::MIGRATIONS)
        .await
        .context("migrating the meetings schema")?;
    discord::install_crypto_provider();
    let public_url = tavern::app::public_url(config, config.http_addr)?;
    let ctx = tavern::app::context(redis, pg, discord::Discord::without_token(), public_url);
    let settings = tavern::app::meetings_config(config);
    Ok((Repo::from_context(&ctx), meetings::auth(&ctx, &settings)))
}

/// Refuses to sign meeting tokens no controller could check.
fn require_secret_key(config: &Config) -> Option<ExitCode> {
    if tavern::app::meetings_config(config).secret_key.is_some() {
        return None;
    }
    eprintln!(
        "tavern: joining signs a meeting token the controller checks: set TAVERN_MEETINGS_SECRET_KEY \
         to the key `tavern serve` uses"
    );
    Some(ExitCode::from(2))
}

async fn create(
    config: &Config,
    name: &str,
    max_participants: i32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let display_name = match DisplayName::parse(name) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("tavern: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if !(1..=1000).contains(&max_participants) {
        eprintln!("tavern: --max-participants must be between 1 and 1000");
        return Ok(ExitCode::from(2));
    }
    let (repo, _) = services(config).await?;
    let meeting = repo
        .create_meeting(&NewMeeting {
            display_name,
            created_by: None,
            settings: MeetingSettings {
                max_participants,
                ..MeetingSettings::default()
            },
            scheduled_start_time: None,
        })
        .await
        .context("creating the meeting")?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "meeting_id": meeting.meeting_id.to_string(),
                "meeting_code": meeting.meeting_code.to_string(),
                "display_name": meeting.display_name,
            })
        );
    } else {
        println!("meeting \"{}\" created", meeting.display_name);
        println!("code: {}", meeting.meeting_code);
        println!("id:   {}", meeting.meeting_id);
        println!(
            "join: tavern meetings join {} --as NAME",
            meeting.meeting_code
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How `join` tells which meeting it could not find.
fn named(key: &MeetingKey) -> String {
    match key {
        MeetingKey::Id(id) => format!("the id {id}"),
        MeetingKey::Code(code) => format!("the code {code}"),
    }
}

/// The meeting `key` names, or `None` when there is none.
async fn find(repo: &Repo, key: &MeetingKey) -> Result<Option<Meeting>, MeetingsError> {
    match repo.meeting_by_key(key).await {
        Ok(meeting) => Ok(Some(meeting)),
        Err(MeetingsError::Storage(store::StorageError::NotFound { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn join(config: &Config, code: &str, name: &str, once: bool) -> anyhow::Result<ExitCode> {
    let display_name = match DisplayName::parse(name) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("tavern: --as: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let key = match MeetingKey::parse(code) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("tavern: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(code) = require_secret_key(config) {
        return Ok(code);
    }
    let (repo, auth) = services(config).await?;
    let settings = tavern::app::meetings_config(config);
    let joiner = Joiner {
        user_id: None,
        display_name: display_name.clone(),
    };
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        });
    }
    // A meeting that moves to another controller while this participant is in it
    // (`meeting_moved`, also when its controller stops), or whose connection is lost
    // (at most `REJOINS_ALLOWED` times in `REJOIN_WINDOW`), is joined again, with a new
    // grant: asked for again, for about a minute, while no controller can take it yet
    // (one restarting).
    let mut waits: std::slice::Iter<'static, Duration> = [].iter();
    let mut rejoins = base::RecentLimit::new(REJOINS_ALLOWED, REJOIN_WINDOW);
    loop {
        let meeting = match find(&repo, &key).await {
            Ok(Some(meeting)) => meeting,
            Ok(None) => {
                eprintln!("tavern: no meeting has {}", named(&key));
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(anyhow::Error::from(e).context("reading the meeting")),
        };
        // Ctrl-C while connecting gives up, as it did before this process handled it.
        let connected = tokio::select! {
            () = stop.cancelled() => return Ok(ExitCode::from(INTERRUPTED)),
            connected = connect(&repo, &auth, &settings, &meeting, &joiner) => connected?,
        };
        let (client, grant) = match connected {
            Ok(connected) => connected,
            Err(NotConnected::NoController) => match waits.next() {
                Some(wait) => {
                    println!(
                        "no meeting controller can take the meeting yet; asking again in {:.1} s",
                        wait.as_secs_f64()
                    );
                    tokio::select! {
                        () = stop.cancelled() => return Ok(ExitCode::from(INTERRUPTED)),
                        () = tokio::time::sleep(*wait) => continue,
                    }
                }
                None => {
                    eprintln!("tavern: {}", GrantError::NoController);
                    return Ok(ExitCode::FAILURE);
                }
            },
            Err(NotConnected::Exit(code)) => return Ok(code),
        };
        let token = grant.token.expose_str();
        match attend(client, token, &meeting, &display_name, once, &stop).await? {
            Attended::Over(code) => return Ok(code),
            Attended::Moved => {
                println!("the meeting moved to another meeting controller; joining again");
                waits = REJOIN_WAITS.iter();
            }
            Attended::Lost(reason) => {
                if rejoins.allow(std::time::Instant::now()).is_err() {
                    println!("the meeting controller closed the session ({reason})");
                    return Ok(ExitCode::SUCCESS);
                }
                println!("the connection to the meeting was lost ({reason}); joining again");
                waits = REJOIN_WAITS.iter();
            }
        }
    }
}

/// The waits before asking again for a grant to a moved meeting that no controller can
/// take yet (about a minute in all).
static REJOIN_WAITS: [Duration; 7] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(15),
    Duration::from_secs(30),
];

/// Automatic rejoins after a lost connection allowed in [`REJOIN_WINDOW`] (as the
/// meeting page).
const REJOINS_ALLOWED: usize = 3;
const REJOIN_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Why [`connect`] opened no session.
enum NotConnected {
    /// No controller can take the meeting now (not said yet).
    NoController,
    /// For good, with this exit code (said on standard error).
    Exit(ExitCode),
}

/// A session with the meeting's controller, from a new join grant; why there is none.
async fn connect(
    repo: &Repo,
    auth: &meetings::auth::Auth,
    settings: &meetings::MeetingsConfig,
    meeting: &Meeting,
    joiner: &Joiner,
) -> anyhow::Result<Result<(Client, grant::JoinGrant), NotConnected>> {
    // Opened as every client of ours opens its session (`open_session`: a connection
    // lost while it was set up, or not open within `FIRST_TRY_WAIT`, is made again with
    // a new grant, three in all).
    let opened = open_session(
        || async {
            grant::grant(
                repo,
                auth,
                meeting,
                joiner,
                &settings.region,
                &settings.liveness,
                &mut rand::rngs::StdRng::from_os_rng(),
                None,
            )
            .await
        },
        Client::connect_granted,
    )
    .await;
    match opened {
        Ok(Ok(Opened { grant, client, .. })) => Ok(Ok((client, grant))),
        Ok(Err(NotOpened { grant, error })) => {
            eprintln!(
                "tavern: could not reach the meeting controller at {}: {error}",
                grant.webtransport_url
            );
            Ok(Err(NotConnected::Exit(ExitCode::FAILURE)))
        }
        Err(GrantError::NoController) => Ok(Err(NotConnected::NoController)),
        Err(e @ GrantError::Ended) => {
            eprintln!("tavern: {e}");
            Ok(Err(NotConnected::Exit(ExitCode::FAILURE)))
        }
        Err(e) => Err(e).context("making the join grant"),
    }
}

/// How a participant's time in a meeting ended.
enum Attended {
    /// For good: leave, the meeting's end, a refusal, a close.
    Over(ExitCode),
    /// The meeting moved to another controller (`meeting_moved`): join it there.
    Moved,
    /// The connection was lost, for this reason: the network, or the controller closed
    /// the session (silence, too slow to keep up, removed for want of a heartbeat).
    Lost(String),
}

/// Joins over `client`, prints the participants, then (unless `once`) what happens in
/// the meeting until Ctrl-C (a leave), its end or a move.
async fn attend(
    mut client: Client,
    token: &str,
    meeting: &Meeting,
    display_name: &DisplayName,
    once: bool,
    stop: &CancellationToken,
) -> anyhow::Result<Attended> {
    let joined = tokio::select! {
        () = stop.cancelled() => return Ok(Attended::Over(ExitCode::from(INTERRUPTED))),
        joined = client.join(token) => joined,
    };
    let joined = match joined {
        Ok(r) => r,
        Err(ClientError::Refused { code, .. }) if code == proto::AUTH_REQUIRED => {
            eprintln!("tavern: {}", members_only(meeting));
            return Ok(Attended::Over(ExitCode::FAILURE));
        }
        Err(e) => {
            eprintln!("tavern: the meeting controller refused the join: {e}");
            return Ok(Attended::Over(ExitCode::FAILURE));
        }
    };
    println!(
        "joined \"{}\" ({}) as {}",
        meeting.display_name, meeting.meeting_code, display_name
    );
    let mut names: Vec<(String, String)> = joined
        .participants
        .iter()
        .map(|p| (p.participant_id.clone(), p.display_name.clone()))
        .collect();
    names.push((
        joined.participant_id.clone(),
        format!("{display_name} (you)"),
    ));
    println!("participants ({}):", names.len());
    for (_, name) in &names {
        println!("  {name}");
    }
    if once {
        // Leaving an emptied meeting ends it: say so.
        if let Some(ended) = client.leave().await.context("leaving")? {
            println!("{}", ended.reason);
        }
        return Ok(Attended::Over(ExitCode::SUCCESS));
    }

    let mut heartbeat = tokio::time::interval(meetings::controller::client::HEARTBEAT_EVERY);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                match client.leave().await.context("leaving")? {
                    Some(ended) => println!("{}", ended.reason),
                    None => println!("left"),
                }
                return Ok(Attended::Over(ExitCode::SUCCESS));
            }
            _ = heartbeat.tick() => {
                client
                    .send(proto::client_message::Payload::Heartbeat(proto::Heartbeat {}))
                    .await
                    .context("sending a heartbeat")?;
            }
            message = client.next() => {
                let message = match message {
                    Ok(Some(message)) => message,
                    Ok(None) => {
                        return Ok(match lost(&client).await {
                            Some(reason) => Attended::Lost(reason),
                            None => {
                                println!("the meeting controller closed the session");
                                Attended::Over(ExitCode::SUCCESS)
                            }
                        });
                    }
                    Err(error) => {
                        return match lost(&client).await {
                            Some(reason) => Ok(Attended::Lost(reason)),
                            None => Err(anyhow::Error::from(error)
                                .context("reading from the meeting controller")),
                        };
                    }
                };
                match message.payload {
                    Some(server_message::Payload::ParticipantJoined(joined)) => {
                        if let Some(p) = joined.participant {
                            println!("+ {} joined", p.display_name);
                            names.push((p.participant_id, p.display_name));
                        }
                    }
                    Some(server_message::Payload::ParticipantLeft(left)) => {
                        let name = names
                            .iter()
                            .position(|(id, _)| *id == left.participant_id)
                            .map(|i| names.remove(i).1)
                            .unwrap_or_else(|| left.participant_id.clone());
                        println!("- {name} left ({})", left.reason);
                    }
                    // The reason says it (`the meeting has ended`, `you ended this
                    // meeting`, ...).
                    Some(server_message::Payload::MeetingEnded(ended)) => {
                        if ended.reason.is_empty() {
                            println!("the meeting has ended");
                        } else {
                            println!("{}", ended.reason);
                        }
                        return Ok(Attended::Over(ExitCode::SUCCESS));
                    }
                    // The host required sign-in since: the controller closes this
                    // session, and joining again would be refused.
                    Some(server_message::Payload::Error(error))
                        if error.code == proto::AUTH_REQUIRED =>
                    {
                        eprintln!("tavern: {}", members_only(meeting));
                        return Ok(Attended::Over(ExitCode::FAILURE));
                    }
                    Some(server_message::Payload::Error(error))
                        if error.code == proto::MEETING_MOVED =>
                    {
                        return Ok(Attended::Moved);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// What the command line is told of a meeting that admits signed-in users only: it
/// joins as a guest, so such a meeting is joined from the browser.
fn members_only(meeting: &Meeting) -> String {
    format!(
        "meeting {} admits signed-in users only, and the command line joins as a guest: \
         join it from the browser, signed in (its page is /meet/{})",
        meeting.meeting_code, meeting.meeting_code
    )
}

/// How long a session whose stream ended may take to say how it closed.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why `client`'s session ended, when that was a lost connection: closed by the
/// controller (`CLOSE_BY_CONTROLLER`) or by the network (no application close). `None`
/// for a normal close, a protocol error or a refusal, or a close not told in time.
async fn lost(client: &Client) -> Option<String> {
    let closed = tokio::time::timeout(CLOSE_WAIT, client.closed())
        .await
        .ok()?;
    match closed.code {
        Some(code) if code == u64::from(proto::CLOSE_BY_CONTROLLER) => Some(closed.reason),
        Some(_) => None,
        None => Some(closed.reason),
    }
}

/// `tavern meeting-controller`: this process is one meeting controller of the region,
/// registered and heartbeating until Ctrl-C or SIGTERM.
pub async fn controller(config: &Config, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    if config.meetings_secret_key.is_none() && !config.sandbox() {
        eprintln!(
            "tavern: a separate meeting controller checks meeting tokens signed by `tavern serve`: \
             set TAVERN_MEETINGS_SECRET_KEY to the same key"
        );
        return Ok(ExitCode::from(2));
    }
    tavern::app::ensure_sandbox_meetings_key(config);
    let (repo, auth) = services(config).await?;
    let settings = tavern::app::controller_config(config);
    let controller = meetings::controller::MeetingController::bind(repo, auth, settings)
        .await
        .context("starting the meeting controller")?;
    let line = format!(
        "meeting controller listening at {} (certificate sha-256 {})",
        controller.endpoint(),
        controller.certificate_hash()
    );
    let serving = controller.serving();
    say_when_serving(controller.run(shutdown), serving, &line)
        .await
        .context("running the meeting controller")?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a controller's or a handler's `run`, and prints `line` once `serving` says it
/// is registered in the region: from then on join grants may name it, so whoever
/// waits for the line (an operator, a script) can send people to it. `run`'s result.
async fn say_when_serving<E>(
    run: impl std::future::Future<Output = Result<(), E>>,
    mut serving: tokio::sync::watch::Receiver<bool>,
    line: &str,
) -> Result<(), E> {
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => return result,
        registered = serving.wait_for(|serving| *serving) => {
            if registered.is_ok() {
                println!("{line}");
            }
        }
    }
    run.await
}

/// `tavern media-handler`: this process is one media handler of the region, registered
/// (with its certificate hash) and heartbeating its load until Ctrl-C or SIGTERM.
pub async fn media_handler(
    config: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let (repo, _) = services(config).await?;
    let settings = tavern::app::media_handler_config(config);
    let handler = meetings::media::MediaHandler::bind(repo, settings)
        .await
        .context("starting the media handler")?;
    let line = format!(
        "media handler listening at {} (certificate sha-256 {})",
        handler.endpoint(),
        handler.certificate_hash()
    );
    let serving = handler.serving();
    say_when_serving(handler.run(shutdown), serving, &line)
        .await
        .context("running the media handler")?;
    Ok(ExitCode::SUCCESS)
}
