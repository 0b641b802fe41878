//! Configuration: an optional `tavern.toml`, then `TAVERN_*` environment variables on top.
//!
//! Every value is parsed into its final type here, so the rest of Tavern never sees a
//! malformed address or URL. A bad value is a [`ConfigError`] naming the key and what is
//! wrong; the binary prints it on one line and exits with code 2.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use feature::Secret;

/// A connection URL that may carry a password; `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
    fn redacted(&self) -> String {
        store::redact_url(&self.0)
    }
}

impl std::fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Tavern's settings, fully parsed.
#[derive(Debug, Clone)]
pub struct Config {
    pub redis_url: ServiceUrl,
    pub database_url: ServiceUrl,
    /// `None`: sandbox mode (an in-process fake Discord).
    pub discord_token: Option<Secret>,
    /// `host:port` of a plain-HTTP stand-in for Discord's REST API; `None` for Discord's.
    pub discord_api: Option<String>,
    /// WebSocket URL of a stand-in gateway; `None` for Discord's.
    pub discord_gateway: Option<String>,
    /// The gateway shards this process runs (`shards`, `shard_total`); `None`: all of
    /// the count Discord recommends.
    pub shards: Option<discord::ShardRange>,
    pub http_addr: SocketAddr,
    /// A separate listener for `/metrics`; it is also served on `http_addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// Where local state lives (object-store snapshots, sandbox data).
    pub data_dir: PathBuf,
    /// Where the rolls sync keeps its snapshots; `None`: `{data_dir}/rolls-sync`.
    /// Credentials come from the cloud's own environment variables (`AWS_*`, `AZURE_*`).
    pub rolls_sync_url: Option<rolls::SyncTarget>,
    /// How many dated rolls snapshots to keep (`rolls_sync_keep`, at least 1).
    pub rolls_sync_keep: usize,
    /// Where people reach Tavern's web server (`https://tavern.example`): the base of
    /// the login callback and the origin state-changing requests must come from.
    /// `None`: `http://{http_addr}`.
    pub public_url: Option<url::Url>,
    /// Log in with Discord on the web: `None` unless the OAuth2 client is configured
    /// (sandbox mode uses the fake Discord's own client instead).
    pub discord_login: Option<DiscordLogin>,
    /// Meetup for the campaigns: `None` when no group is configured (no sync runs).
    pub meetup: Option<campaigns::config::CampaignsConfig>,
    pub log_format: LogFormat,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the login rate
    /// limit): addresses or networks. Empty: the socket's peer is the client.
    pub trusted_proxies: web::client::TrustedProxies,
    /// `tavern serve --sandbox-public`: sandbox mode may listen on a non-loopback
    /// address. A flag of the command, not a setting of the file or environment.
    pub sandbox_public: bool,
    /// `meetings_secret_key`: 32 bytes in base64; seals the meetings' signing keys and
    /// OAuth tokens at rest. `None`: sandbox mode makes one in the data dir; otherwise
    /// the meetings' tokens do not survive a restart.
    pub meetings_secret_key: Option<meetings::auth::MeetingsSecretKey>,
    /// Where meetings are assigned and how this process takes part in them.
    pub meetings: MeetingsSettings,
    /// The drinking game: its die, crit and fail values, player limit, force-start
    /// delay and how long a finished game is kept (`drinking_*`).
    pub drinking: DrinkingSettings,
}

/// The drinking game's settings (`drinking_*`); the binary hands them to
/// `drinking::DrinkingConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrinkingSettings {
    /// `drinking_die`, `drinking_crit`, `drinking_fail` (default a d6, 6 crits, 1 fails).
    pub die: drinking::DiceRules,
    /// `drinking_max_players` (default 10, at least 1).
    pub max_players: usize,
    /// `drinking_force_start_after` (default `5m`).
    pub force_start_after: std::time::Duration,
    /// `drinking_game_lifetime`: how long a finished game is kept (default `24h`).
    pub game_lifetime: std::time::Duration,
}

/// A duration setting: whole seconds (`300`) or a whole number with a unit, `s`, `m`,
/// `h` or `d` (`90s`, `5m`, `24h`, `2d`); at least one second.
fn parse_duration_setting(source: &str, value: &str) -> Result<std::time::Duration, ConfigError> {
    let text = value.trim();
    let bad = || {
        err(
            source,
            format!(
                "`{value}` is not a duration (whole seconds, or a number with s, m, h or d: `90s`, `5m`, `24h`)"
            ),
        )
    };
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(bad()),
    };
    let secs = number.checked_mul(factor).ok_or_else(bad)?;
    if secs == 0 {
        return Err(err(source, format!("`{value}` is zero; give at least 1s")));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// The drinking game's settings of `raw`, checked together (crit and fail must be
/// faces of the die and differ); an error names the key at fault.
fn drinking_settings(raw: &Raw) -> Result<DrinkingSettings, ConfigError> {
    let defaults = drinking::DrinkingConfig::default();
    let face = |key: &str, default: u8| -> Result<(u8, String), ConfigError> {
        match raw.get(key) {
            None => Ok((default, key.to_owned())),
            Some((src, v)) => v
                .trim()
                .parse::<u8>()
                .map(|n| (n, src.to_owned()))
                .map_err(|_| {
                    let least = if key == "drinking_die" { 2 } else { 1 };
                    err(
                        src,
                        format!("`{v}` is not a whole number from {least} to 100"),
                    )
                }),
        }
    };
    let (sides, sides_src) = face("drinking_die", defaults.die.sides)?;
    // Unset, the crit is the die's highest face (6 on a d6, 20 on a d20).
    let (crit, crit_src) = face("drinking_crit", sides)?;
    let (fail, fail_src) = face("drinking_fail", defaults.die.fail)?;
    let die = drinking::DiceRules::new(sides, crit, fail).map_err(|e| {
        // Only the crit was set: it is the crit that meets the fail's default face.
        if let drinking::DiceRulesError::Same(face) = e
            && raw.get("drinking_crit").is_some()
            && raw.get("drinking_fail").is_none()
        {
            return err(
                &crit_src,
                format!(
                    "{face} is also the fail face (drinking_fail, {} by default); crit and \
                     fail must differ",
                    defaults.die.fail
                ),
            );
        }
        let src = match e.setting() {
            "drinking_die" => &sides_src,
            "drinking_crit" => &crit_src,
            _ => &fail_src,
        };
        err(src, e.to_string())
    })?;
    let max_players = whole_number(
        raw,
        "drinking_max_players",
        defaults.player_limit,
        1..=25,
        "a number of players from 1 to 25",
    )?;
    let force_start_after = match raw.get("drinking_force_start_after") {
        None => defaults.force_start_after,
        Some((src, v)) => parse_duration_setting(src, v)?,
    };
    let game_lifetime = match raw.get("drinking_game_lifetime") {
        None => defaults.completed_ttl,
        Some((src, v)) => parse_duration_setting(src, v)?,
    };
    Ok(DrinkingSettings {
        die,
        max_players,
        force_start_after,
        game_lifetime,
    })
}

/// The meetings' region and meeting controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingsSettings {
    /// `meetings_region`: the region this process assigns meetings in and its meeting
    /// controller registers in (default `local`).
    pub region: meetings::domain::Region,
    /// `meeting_controller`: `in-process` (default: `tavern serve` runs one) or
    /// `separate` (`tavern meeting-controller` processes do).
    pub controller: ControllerMode,
    /// `meeting_controller_addr`: the UDP address the controller listens on (default
    /// `127.0.0.1:0`, any free port: clients learn it from their join grant).
    pub controller_addr: SocketAddr,
    /// `meeting_controller_host`: the host name clients reach the controller by
    /// (default: the host of `public_url`, else the listening address).
    pub controller_host: Option<String>,
    /// `meeting_controller_id`: its id in the registry (default: a new one per start).
    pub controller_id: Option<meetings::domain::ControllerId>,
    /// `meeting_controller_cert` and `meeting_controller_key`: PEM files, both or
    /// neither; neither: a self-signed certificate valid 14 days (replaced every 7),
    /// pinned by its hash.
    pub controller_certificate: Option<(PathBuf, PathBuf)>,
    /// `meetings_recordings_url`: where meeting recordings are written, a local
    /// directory or any `object_store` URL (`s3://bucket/prefix`, ...; default: the
    /// `recordings` directory in the data dir).
    pub recordings_url: Option<String>,
    /// `tavern media-handler`'s own settings.
    pub media_handler: MediaHandlerSettings,
    /// The meetings' authentication settings; of them, the rate limits are set here:
    /// `meetings_failed_logins_per_minute` (per email and per client address, default
    /// 10), `meetings_created_per_minute` (per user, default 30),
    /// `meetings_registrations_per_minute` (per client address, default 10; also the
    /// Discord logins an address may start) and
    /// `meetings_guest_tokens_per_minute` (per client address, default 30).
    pub auth: meetings::auth::AuthConfig,
}

/// The settings of a media handler run as its own process (`tavern media-handler`);
/// the in-process one takes the meeting controller's host and any free port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaHandlerSettings {
    /// `media_handler_addr`: the UDP address it listens on (default `127.0.0.1:0`, any
    /// free port: it registers the one it got, and grants hand it out).
    pub addr: Option<SocketAddr>,
    /// `media_handler_host`: the host name clients (and the other handlers) reach it by
    /// (default: as `meeting_controller_host`).
    pub host: Option<String>,
    /// `media_handler_id`: its id in the registry (default: a new one per start).
    pub id: Option<meetings::domain::HandlerId>,
    /// `media_handler_cert` and `media_handler_key`: PEM files, both or neither;
    /// neither: a self-signed certificate valid 14 days (replaced every 7), pinned by its
    /// hash (registered in `media_handlers.metadata.certificate_hash`).
    pub certificate: Option<(PathBuf, PathBuf)>,
}

/// The host name or address under `key`, if set.
fn optional_host(raw: &Raw, key: &str) -> Result<Option<String>, ConfigError> {
    match raw.get(key) {
        None => Ok(None),
        Some((src, v)) => {
            let host = v.trim();
            if url::Host::parse(host).is_err() {
                return Err(err(src, format!("`{v}` is not a host name or address")));
            }
            Ok(Some(host.to_owned()))
        }
    }
}

/// A PEM certificate chain and key file under `cert` and `key`: both or neither.
fn pem_pair(raw: &Raw, cert: &str, key: &str) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (raw.get(cert), raw.get(key)) {
        (None, None) => Ok(None),
        (Some((_, c)), Some((_, k))) => {
            Ok(Some((PathBuf::from(c.trim()), PathBuf::from(k.trim()))))
        }
        (Some((src, _)), None) | (None, Some((src, _))) => Err(err(
            src,
            format!("needs its pair: set both {cert} and {key}, or neither"),
        )),
    }
}

/// `path`, set by `setting`, can be read and holds a PEM block whose label ends with
/// `label` (`CERTIFICATE`; `PRIVATE KEY`, which `RSA PRIVATE KEY` and `EC PRIVATE KEY`
/// end with too).
fn pem_file(path: &Path, setting: &str, label: &str, what: &str) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(setting, format!("`{}` cannot be read: {e}", path.display())))?;
    let holds = text.lines().any(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|found| found.ends_with(label))
    });
    if holds {
        Ok(())
    } else {
        Err(err(
            setting,
            format!(
                "`{}` holds no PEM {what} (a `-----BEGIN …{label}-----` block)",
                path.display()
            ),
        ))
    }
}

/// The `media_handler_*` settings of `raw`.
fn media_handler_settings(raw: &Raw) -> Result<MediaHandlerSettings, ConfigError> {
    let addr = raw
        .get("media_handler_addr")
        .map(|(src, v)| parse_addr(src, v))
        .transpose()?;
    let host = optional_host(raw, "media_handler_host")?;
    let id = raw
        .get("media_handler_id")
        .map(|(src, v)| {
            meetings::domain::HandlerId::parse(v.trim()).map_err(|e| err(src, e.to_string()))
        })
        .transpose()?;
    let certificate = pem_pair(raw, "media_handler_cert", "media_handler_key")?;
    Ok(MediaHandlerSettings {
        addr,
        host,
        id,
        certificate,
    })
}

/// Which processes run a meeting controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerMode {
    InProcess,
    Separate,
}

/// The meetings settings of `raw`.
fn meetings_settings(raw: &Raw) -> Result<MeetingsSettings, ConfigError> {
    let region = match raw.get("meetings_region") {
        None => meetings::domain::Region::local(),
        Some((src, v)) => {
            meetings::domain::Region::parse(v.trim()).map_err(|e| err(src, e.to_string()))?
        }
    };
    let controller = match raw.get("meeting_controller").map(|(s, v)| (s, v.trim())) {
        None | Some((_, "in-process")) => ControllerMode::InProcess,
        Some((_, "separate")) => ControllerMode::Separate,
        Some((src, v)) => {
            return Err(err(
                src,
                format!("`{v}` is not a meeting controller mode (in-process or separate)"),
            ));
        }
    };
    let controller_addr = match raw.get("meeting_controller_addr") {
        Some((src, v)) => parse_addr(src, v)?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let controller_host = optional_host(raw, "meeting_controller_host")?;
    let controller_id = raw
        .get("meeting_controller_id")
        .map(|(src, v)| {
            meetings::domain::ControllerId::parse(v.trim()).map_err(|e| err(src, e.to_string()))
        })
        .transpose()?;
    let controller_certificate =
        pem_pair(raw, "meeting_controller_cert", "meeting_controller_key")?;
    let recordings_url = raw
        .get("meetings_recordings_url")
        .map(|(src, v)| storage_location(src, v).map(|()| v.trim().to_owned()))
        .transpose()?;
    let defaults = meetings::auth::AuthConfig::default();
    let auth = meetings::auth::AuthConfig {
        failed_logins_per_minute: per_minute(
            raw,
            "meetings_failed_logins_per_minute",
            defaults.failed_logins_per_minute,
        )?,
        meetings_created_per_minute: per_minute(
            raw,
            "meetings_created_per_minute",
            defaults.meetings_created_per_minute,
        )?,
        registrations_per_minute: per_minute(
            raw,
            "meetings_registrations_per_minute",
            defaults.registrations_per_minute,
        )?,
        guest_tokens_per_minute: per_minute(
            raw,
            "meetings_guest_tokens_per_minute",
            defaults.guest_tokens_per_minute,
        )?,
        ..defaults
    };
    Ok(MeetingsSettings {
        region,
        controller,
        controller_addr,
        controller_host,
        controller_id,
        controller_certificate,
        recordings_url,
        media_handler: media_handler_settings(raw)?,
        auth,
    })
}

/// Checks a place to keep files (`meetings_recordings_url`): a folder, `file:///path`,
/// `s3://bucket/prefix`, `az://container/prefix` or an https:// S3 or Blob URL, as the
/// rolls sync reads it (no credentials in it: they come from the environment). A path
/// that looks like a URL with a mistyped `://` (`s3//bucket`, `s3:/bucket`) is refused
/// rather than taken for a local folder. The error never repeats a password.
fn storage_location(source: &str, value: &str) -> Result<(), ConfigError> {
    let value = value.trim();
    if !value.contains("://") {
        let schemes = [
            "s3", "s3a", "az", "azure", "abfs", "abfss", "file", "http", "https",
        ];
        let lower = value.to_ascii_lowercase();
        let before_colon = lower.split_once(':').map(|(head, _)| head);
        let mistyped = schemes.iter().any(|scheme| {
            before_colon == Some(scheme) || lower.starts_with(&format!("{scheme}//"))
        });
        if mistyped {
            return Err(err(
                source,
                format!(
                    "`{}` looks like a URL without its `://`: give {FORMS}",
                    store::redact_url(value)
                ),
            ));
        }
    }
    rolls::SyncTarget::parse(value)
        .map(drop)
        .map_err(|e| err(source, sync_target_problem(e)))
}

/// Every form of a place to keep files (`rolls_sync_url`, `meetings_recordings_url`).
const FORMS: &str = "a folder, file:///path, s3://bucket/prefix, az://container/prefix, or an \
                     https:// S3 or Blob Storage URL (https://s3.<region>.amazonaws.com/bucket, \
                     https://<account>.blob.core.windows.net/container)";

/// What was wrong with a place to keep files, naming every accepted form once where the
/// problem is the form itself (the sync target's own list leaves out the https:// ones).
fn sync_target_problem(e: rolls::BadSyncTarget) -> String {
    let url = &e.url;
    if e.problem.starts_with("is not supported") {
        format!("`{url}` is not supported: use {FORMS}")
    } else if e.problem.starts_with("is empty") {
        format!("`{url}` is empty: give {FORMS}")
    } else if e.problem.starts_with("is not a URL") {
        format!("`{url}` {}: give {FORMS}", e.problem)
    } else {
        e.to_string()
    }
}

/// A rate limit under `key`: a whole number of requests a minute, at least 1.
fn per_minute(raw: &Raw, key: &str, default: u64) -> Result<u64, ConfigError> {
    whole_number(
        raw,
        key,
        default,
        1..=u64::MAX,
        "a rate limit (a whole number of requests a minute, >= 1)",
    )
}

/// The whole number under `key`, within `range` (`default` when it is not set); any
/// other value is refused as not being `what`.
fn whole_number<T>(
    raw: &Raw,
    key: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd,
{
    match raw.get(key) {
        None => Ok(default),
        Some((src, v)) => match v.trim().parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(err(src, format!("`{v}` is not {what}"))),
        },
    }
}

/// Tavern's OAuth2 client at Discord, for logging in on the web.
#[derive(Debug, Clone)]
pub struct DiscordLogin {
    /// The application id.
    pub client_id: String,
    pub client_secret: Secret,
    /// Discord's web base (`https://discord.com`), or a stand-in's.
    pub base_url: url::Url,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The log filter when `TAVERN_LOG` is unset: `info`, with sqlx and tower_http at
/// `warn` (a statement slower than sqlx's 1 s threshold is a warning, under the target
/// `sqlx::query`). sqlx's pool says nothing below `error`: during a PostgreSQL outage
/// it warns of every connection its on-release test or a ping finds broken, and of
/// slow acquires, while Tavern tells the outage itself (`/readyz`, the services that
/// lose the store), once.
pub const DEFAULT_LOG_FILTER: &str =
    "info,sqlx=warn,sqlx::pool=error,sqlx_core::pool=error,tower_http=warn";

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// The environment variable or `tavern.toml` key, as the user wrote it.
    pub key: String,
    pub problem: String,
}

/// The keys Tavern understands: (toml key, environment variable).
const KEYS: &[(&str, &str)] = &[
    ("redis_url", "TAVERN_REDIS_URL"),
    ("database_url", "TAVERN_DATABASE_URL"),
    ("discord_token", "TAVERN_DISCORD_TOKEN"),
    ("discord_api", "TAVERN_DISCORD_API"),
    ("discord_gateway", "TAVERN_DISCORD_GATEWAY"),
    ("shards", "TAVERN_SHARDS"),
    ("shard_total", "TAVERN_SHARD_TOTAL"),
    ("http_addr", "TAVERN_HTTP_ADDR"),
    ("metrics_addr", "TAVERN_METRICS_ADDR"),
    ("data_dir", "TAVERN_DATA_DIR"),
    ("rolls_sync_url", "TAVERN_ROLLS_SYNC_URL"),
    ("rolls_sync_keep", "TAVERN_ROLLS_SYNC_KEEP"),
    ("public_url", "TAVERN_PUBLIC_URL"),
    ("discord_client_id", "TAVERN_DISCORD_CLIENT_ID"),
    ("discord_client_secret", "TAVERN_DISCORD_CLIENT_SECRET"),
    ("discord_oauth_url", "TAVERN_DISCORD_OAUTH_URL"),
    ("meetup_groups", "TAVERN_MEETUP_GROUPS"),
    ("meetings_secret_key", "TAVERN_MEETINGS_SECRET_KEY"),
    ("meetup_client_id", "TAVERN_MEETUP_CLIENT_ID"),
    ("meetup_client_secret", "TAVERN_MEETUP_CLIENT_SECRET"),
    ("meetup_graphql_url", "TAVERN_MEETUP_GRAPHQL_URL"),
    ("meetup_authorize_url", "TAVERN_MEETUP_AUTHORIZE_URL"),
    ("meetup_token_url", "TAVERN_MEETUP_TOKEN_URL"),
    ("campaigns_guild_id", "TAVERN_CAMPAIGNS_GUILD_ID"),
    ("campaigns_categories", "TAVERN_CAMPAIGNS_CATEGORIES"),
    (
        "campaigns_one_shot_categories",
        "TAVERN_CAMPAIGNS_ONE_SHOT_CATEGORIES",
    ),
    (
        "campaigns_organiser_role",
        "TAVERN_CAMPAIGNS_ORGANISER_ROLE",
    ),
    ("campaigns_admin_role", "TAVERN_CAMPAIGNS_ADMIN_ROLE"),
    (
        "campaigns_alerts_channel",
        "TAVERN_CAMPAIGNS_ALERTS_CHANNEL",
    ),
    (
        "campaigns_free_spots_channel",
        "TAVERN_CAMPAIGNS_FREE_SPOTS_CHANNEL",
    ),
    (
        "campaigns_topic_voice_channel",
        "TAVERN_CAMPAIGNS_TOPIC_VOICE_CHANNEL",
    ),
    (
        "campaigns_topic_default_name",
        "TAVERN_CAMPAIGNS_TOPIC_DEFAULT_NAME",
    ),
    ("log_format", "TAVERN_LOG_FORMAT"),
    ("trusted_proxies", "TAVERN_TRUSTED_PROXIES"),
    ("meetings_region", "TAVERN_MEETINGS_REGION"),
    ("meetings_recordings_url", "TAVERN_MEETINGS_RECORDINGS_URL"),
    (
        "meetings_failed_logins_per_minute",
        "TAVERN_MEETINGS_FAILED_LOGINS_PER_MINUTE",
    ),
    (
        "meetings_created_per_minute",
        "TAVERN_MEETINGS_CREATED_PER_MINUTE",
    ),
    (
        "meetings_registrations_per_minute",
        "TAVERN_MEETINGS_REGISTRATIONS_PER_MINUTE",
    ),
    (
        "meetings_guest_tokens_per_minute",
        "TAVERN_MEETINGS_GUEST_TOKENS_PER_MINUTE",
    ),
    ("meeting_controller", "TAVERN_MEETING_CONTROLLER"),
    ("meeting_controller_addr", "TAVERN_MEETING_CONTROLLER_ADDR"),
    ("meeting_controller_host", "TAVERN_MEETING_CONTROLLER_HOST"),
    ("meeting_controller_id", "TAVERN_MEETING_CONTROLLER_ID"),
    ("meeting_controller_cert", "TAVERN_MEETING_CONTROLLER_CERT"),
    ("meeting_controller_key", "TAVERN_MEETING_CONTROLLER_KEY"),
    ("media_handler_addr", "TAVERN_MEDIA_HANDLER_ADDR"),
    ("media_handler_host", "TAVERN_MEDIA_HANDLER_HOST"),
    ("media_handler_id", "TAVERN_MEDIA_HANDLER_ID"),
    ("media_handler_cert", "TAVERN_MEDIA_HANDLER_CERT"),
    ("media_handler_key", "TAVERN_MEDIA_HANDLER_KEY"),
    ("drinking_die", "TAVERN_DRINKING_DIE"),
    ("drinking_crit", "TAVERN_DRINKING_CRIT"),
    ("drinking_fail", "TAVERN_DRINKING_FAIL"),
    ("drinking_max_players", "TAVERN_DRINKING_MAX_PLAYERS"),
    (
        "drinking_force_start_after",
        "TAVERN_DRINKING_FORCE_START_AFTER",
    ),
    ("drinking_game_lifetime", "TAVERN_DRINKING_GAME_LIFETIME"),
];

/// Raw values and where each came from (to name the right key in an error).
struct Raw {
    values: BTreeMap<&'static str, (String, String)>,
}

impl Raw {
    fn get(&self, key: &str) -> Option<(&str, &str)> {
        self.values
            .get(key)
            .map(|(source, value)| (source.as_str(), value.as_str()))
            .filter(|(_, v)| !v.trim().is_empty())
    }
}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// An `http` or `https` URL.
fn web_url(source: &str, value: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value.trim())
        .map_err(|e| err(source, format!("`{value}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(err(source, format!("`{value}` is not an http(s) URL")));
    }
    Ok(url)
}

/// The Discord login client: id and secret together, or neither.
fn discord_login(raw: &Raw) -> Result<Option<DiscordLogin>, ConfigError> {
    let id = raw.get("discord_client_id");
    let secret = raw.get("discord_client_secret");
    let base_url = match raw.get("discord_oauth_url") {
        Some((src, v)) => web_url(src, v)?,
        None => url::Url::parse("https://discord.com")
            .map_err(|e| err("discord_oauth_url", e.to_string()))?,
    };
    match (id, secret) {
        (None, None) => Ok(None),
        (Some((_, id)), Some((_, secret))) => Ok(Some(DiscordLogin {
            client_id: id.trim().to_owned(),
            client_secret: Secret::from(secret.trim()),
            base_url,
        })),
        (Some((src, _)), None) => Err(err(
            "TAVERN_DISCORD_CLIENT_SECRET",
            format!("is required when {src} is set"),
        )),
        (None, Some((src, _))) => Err(err(
            "TAVERN_DISCORD_CLIENT_ID",
            format!("is required when {src} is set"),
        )),
    }
}

/// The campaigns' Meetup settings. Groups switch the sync on; then the OAuth client id and
/// secret are required (the sync refreshes the organiser's token with them). The three
/// Meetup URLs default to Meetup's own and exist so the sandbox and tests can point at a
/// fake.
fn meetup_config(raw: &Raw) -> Result<Option<campaigns::config::CampaignsConfig>, ConfigError> {
    use campaigns::config::{
        CampaignsConfig, ClientId, ClientSecret, GroupUrlname, MeetupEndpoints,
    };
    let Some((groups_src, groups)) = raw.get("meetup_groups") else {
        return Ok(None);
    };
    let groups = groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| GroupUrlname::parse(g).map_err(|e| err(groups_src, format!("`{g}`: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let required = |key: &str, var: &str| {
        raw.get(key)
            .map(|(_, v)| v.trim().to_owned())
            .ok_or_else(|| err(var, format!("is required when {groups_src} is set")))
    };
    let client_id = ClientId::new(required("meetup_client_id", "TAVERN_MEETUP_CLIENT_ID")?);
    let client_secret = ClientSecret::from(required(
        "meetup_client_secret",
        "TAVERN_MEETUP_CLIENT_SECRET",
    )?);
    let production = MeetupEndpoints::production()
        .map_err(|e| err("meetup_graphql_url", format!("Meetup's own URLs: {e}")))?;
    // Each configured URL is parsed with Meetup's own for the other two, so an error
    // names the key (and the endpoint) that is wrong.
    let mut endpoints = production.clone();
    let chosen = |key: &str| raw.get(key).map(|(src, v)| (src, v.trim()));
    let own = (
        production.graphql.as_str(),
        production.authorize.as_str(),
        production.token.as_str(),
    );
    if let Some((src, v)) = chosen("meetup_graphql_url") {
        endpoints.graphql = MeetupEndpoints::parse(v, own.1, own.2)
            .map_err(|e| err(src, e.to_string()))?
            .graphql;
    }
    if let Some((src, v)) = chosen("meetup_authorize_url") {
        endpoints.authorize = MeetupEndpoints::parse(own.0, v, own.2)
            .map_err(|e| err(src, e.to_string()))?
            .authorize;
    }
    if let Some((src, v)) = chosen("meetup_token_url") {
        endpoints.token = MeetupEndpoints::parse(own.0, own.1, v)
            .map_err(|e| err(src, e.to_string()))?
            .token;
    }
    Ok(Some(CampaignsConfig::new(
        client_id,
        client_secret,
        endpoints,
        groups,
    )))
}

/// The campaigns' Discord side (`campaigns_*` keys): where game channels and roles are
/// made and who may do what. `campaigns_guild_id` is required once Meetup groups are
/// configured (`groups_src` names the key that configured them); every other key is
/// optional. Every id is checked even without groups, so a typo is found at start.
fn campaigns_settings(
    raw: &Raw,
    groups_src: Option<&str>,
) -> Result<Option<campaigns::config::DiscordSettings>, ConfigError> {
    use discord::model::{ChannelId, RoleId, parse_id};
    fn one<M>(
        raw: &Raw,
        key: &str,
        what: &'static str,
    ) -> Result<Option<discord::model::Id<M>>, ConfigError> {
        raw.get(key)
            .map(|(src, v)| parse_id(what, v.trim()).map_err(|e| err(src, e.to_string())))
            .transpose()
    }
    fn list(raw: &Raw, key: &str) -> Result<Vec<ChannelId>, ConfigError> {
        let Some((src, v)) = raw.get(key) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<ChannelId> = Vec::new();
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = parse_id("category id", part).map_err(|e| err(src, e.to_string()))?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }
    let guild = one(raw, "campaigns_guild_id", "guild id")?;
    let categories = list(raw, "campaigns_categories")?;
    let one_shot_categories = list(raw, "campaigns_one_shot_categories")?;
    let organiser_role: Option<RoleId> = one(raw, "campaigns_organiser_role", "role id")?;
    let admin_role: Option<RoleId> = one(raw, "campaigns_admin_role", "role id")?;
    let alerts_channel: Option<ChannelId> = one(raw, "campaigns_alerts_channel", "channel id")?;
    let free_spots_channel: Option<ChannelId> =
        one(raw, "campaigns_free_spots_channel", "channel id")?;
    let topic_voice_channel: Option<ChannelId> =
        one(raw, "campaigns_topic_voice_channel", "channel id")?;
    let topic_default_name = match raw.get("campaigns_topic_default_name") {
        None => None,
        Some((src, v)) => {
            let name = v.trim();
            let length = name.chars().count();
            if !(1..=100).contains(&length) {
                return Err(err(
                    src,
                    format!("`{name}` is not a channel name (1 to 100 characters)"),
                ));
            }
            Some(name.to_owned())
        }
    };
    let Some(guild) = guild else {
        if let Some(groups_src) = groups_src {
            return Err(err(
                "TAVERN_CAMPAIGNS_GUILD_ID",
                format!("is required when {groups_src} is set"),
            ));
        }
        return Ok(None);
    };
    let mut settings = campaigns::config::DiscordSettings::new(guild);
    settings.categories = categories;
    settings.one_shot_categories = one_shot_categories;
    settings.organiser_role = organiser_role;
    settings.admin_role = admin_role;
    settings.alerts_channel = alerts_channel;
    settings.free_spots_channel = free_spots_channel;
    settings.topic_voice_channel = topic_voice_channel;
    if let Some(name) = topic_default_name {
        settings.topic_default_name = name;
    }
    Ok(Some(settings))
}

/// The shards this process runs. `shards` is a count (`4`: shards 0-3 of 4, all of
/// them) or a range of `shard_total` (`0-7` with `shard_total = 16`: half the bot, the
/// other half in another process); `shard_total` alone runs all of them.
fn shard_range(raw: &Raw) -> Result<Option<discord::ShardRange>, ConfigError> {
    let whole = |src: &str, v: &str, what: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| err(src, format!("`{v}` is not {what}")))
    };
    let total = match raw.get("shard_total") {
        Some((src, v)) => Some((src, whole(src, v, "a shard total (a whole number >= 1)")?)),
        None => None,
    };
    let range = match (raw.get("shards"), total) {
        (None, None) => return Ok(None),
        (None, Some((src, total))) => {
            discord::ShardRange::all(total).map_err(|e| err(src, format!("`{total}`: {e}")))?
        }
        (Some((src, v)), total) => match v.split_once('-') {
            None => {
                let count = whole(
                    src,
                    v,
                    "a shard count (a whole number >= 1) or a range such as 0-7",
                )?;
                let all = discord::ShardRange::all(count)
                    .map_err(|e| err(src, format!("`{v}` is not a shard count: {e}")))?;
                if let Some((total_src, total)) = total
                    && total != count
                {
                    return Err(err(
                        total_src,
                        format!(
                            "`{total}` does not match {src} = {count}, which runs all of {count} shards; \
                             to run part of {total} shards, write {src} as a range such as 0-{}",
                            count.min(total).saturating_sub(1)
                        ),
                    ));
                }
                all
            }
            Some((first, last)) => {
                let Some((_, total)) = total else {
                    return Err(err(
                        "TAVERN_SHARD_TOTAL",
                        format!(
                            "is required when {src} is a range (`{}`): how many shards the bot has in all",
                            v.trim()
                        ),
                    ));
                };
                let bound = |n: &str| {
                    n.trim().parse::<u32>().map_err(|_| {
                        err(
                            src,
                            format!("`{}` is not a shard range (first-last, e.g. 0-7)", v.trim()),
                        )
                    })
                };
                discord::ShardRange::new(bound(first)?, bound(last)?, total)
                    .map_err(|e| err(src, format!("`{}`: {e}", v.trim())))?
            }
        },
    };
    Ok(Some(range))
}

fn parse_addr(source: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        err(
            source,
            format!("`{value}` is not a socket address (expected IP:port, e.g. 127.0.0.1:8080)"),
        )
    })
}

fn parse_url(source: &str, value: &str, schemes: &[&str]) -> Result<ServiceUrl, ConfigError> {
    let value = value.trim();
    let scheme_ok = schemes
        .iter()
        .any(|s| value.starts_with(&format!("{s}://")));
    if !scheme_ok {
        let shown = quoted_url(value);
        return Err(err(
            source,
            format!(
                "`{shown}` must start with {}",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    }
    if let Err(problem) = check_ports(value) {
        let shown = quoted_url(value);
        return Err(err(source, format!("`{shown}`: {problem}")));
    }
    Ok(ServiceUrl(value.to_owned()))
}

/// A service URL a configuration error quotes: everything up to its last `@` (the user
/// info, whose password may hold an unencoded `/`, `?`, `#` or `@` that would hide where
/// it ends) as `***`, and credentials in its query hidden.
fn quoted_url(value: &str) -> String {
    let hidden = match value.rsplit_once('@') {
        Some((before, hosts)) => {
            let scheme = before.split_once("://").map_or("", |(scheme, _)| scheme);
            format!("{scheme}://***@{hosts}")
        }
        None => value.to_owned(),
    };
    ServiceUrl(hidden).redacted()
}

/// The ports a service URL names (one per host: `h1:6379,h2:6380` for several), each a
/// number from 1 to 65535 when given; otherwise what is wrong with the first that is
/// not, saying nothing but a port number (the user info may hold a password).
fn check_ports(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    for host in hosts.split(',') {
        let port = match host.strip_prefix('[') {
            // An IPv6 address: its port follows the bracket.
            Some(v6) => v6
                .split_once(']')
                .and_then(|(_, after)| after.strip_prefix(':')),
            None => host.rsplit_once(':').map(|(_, port)| port),
        };
        let Some(port) = port else { continue };
        if port.is_empty() {
            return Err("a host has a `:` but no port after it".to_owned());
        }
        // Not shown: what is not a number may be part of a password written with a
        // `/`, `?`, `#` or `@` of its own.
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(
                "a port is not a number (a password holding `/`, `?`, `#` or `@` \
                        must be percent-encoded)"
                    .to_owned(),
            );
        }
        match port.parse::<u32>() {
            Ok(1..=65535) => {}
            _ => return Err(format!("port {port} is out of range 1-65535")),
        }
    }
    Ok(())
}

fn parse_host_port(source: &str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    let bad = || {
        err(
            source,
            format!("`{value}` is not host:port (e.g. 127.0.0.1:5000)"),
        )
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(value.to_owned())
}

/// The `TAVERN_*` variables of `vars`; one whose name or value is not UTF-8 is an
/// error naming it (other variables are none of Tavern's business, whatever they hold).
fn tavern_variables(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut env = BTreeMap::new();
    for (name, value) in vars {
        if !name.as_encoded_bytes().starts_with(b"TAVERN_") {
            continue;
        }
        let Some(name) = name.to_str() else {
            return Err(err(
                &name.to_string_lossy(),
                "the variable's name is not valid UTF-8",
            ));
        };
        let Some(value) = value.to_str() else {
            return Err(err(name, "the value is not valid UTF-8"));
        };
        env.insert(name.to_owned(), value.to_owned());
    }
    Ok(env)
}

/// Where a TOML syntax error is: "line L, column C" of `text` at the error's start.
fn toml_position(text: &str, error: &toml::de::Error) -> Option<String> {
    let start = error.span()?.start;
    let before = text.get(..start)?;
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    Some(format!("line {line}, column {column}"))
}

impl Config {
    /// Loads `file` (if given, or `./tavern.toml` if present) and then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env = tavern_variables(std::env::vars_os())?;
        let default_file = PathBuf::from("tavern.toml");
        let file = match file {
            Some(f) => Some(f.to_path_buf()),
            None if default_file.exists() => Some(default_file),
            None => None,
        };
        let toml_text = match &file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| err(&path.display().to_string(), format!("cannot read: {e}")))?,
            ),
            None => None,
        };
        Config::from_sources(toml_text.as_deref(), file.as_deref(), &env)
    }

    /// Builds the configuration from a TOML text and environment variables (pure, for tests).
    pub fn from_sources(
        toml_text: Option<&str>,
        toml_path: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file_label = toml_path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "tavern.toml".into());
        let mut raw = Raw {
            values: BTreeMap::new(),
        };
        if let Some(text) = toml_text {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                let message = e.message().trim();
                match toml_position(text, &e) {
                    Some(at) => err(&file_label, format!("{at}: {message}")),
                    None => err(&file_label, message.to_owned()),
                }
            })?;
            for (key, value) in table {
                let Some((name, _)) = KEYS.iter().find(|(k, _)| *k == key) else {
                    let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                    let guess = closest(&key, known.iter().copied())
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    return Err(err(
                        &format!("{file_label}: {key}"),
                        format!("unknown key{guess} (known keys: {})", known.join(", ")),
                    ));
                };
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    other => {
                        return Err(err(
                            &format!("{file_label}: {key}"),
                            format!("expected a string, found {}", other.type_str()),
                        ));
                    }
                };
                raw.values
                    .insert(name, (format!("{file_label}: {key}"), text));
            }
        }
        for (name, var) in KEYS {
            if let Some(value) = env.get(*var) {
                raw.values.insert(name, ((*var).to_owned(), value.clone()));
            }
        }
        for var in env.keys() {
            let known = KEYS.iter().any(|(_, v)| v == var)
                || matches!(
                    var.as_str(),
                    "TAVERN_CONFIG" | "TAVERN_LOG" | "TAVERN_REDIS_SERVER" | "TAVERN_PG_BINDIR"
                );
            if !known && var.starts_with("TAVERN_") && !var.starts_with("TAVERN_TEST_") {
                let guess = closest(var, KEYS.iter().map(|(_, v)| *v))
                    .map(|v| format!("; did you mean {v}?"))
                    .unwrap_or_default();
                return Err(err(
                    var,
                    format!("unknown setting{guess} (see README: Configuration)"),
                ));
            }
        }

        let redis_url = match raw.get("redis_url") {
            Some((src, v)) => {
                let url = parse_url(
                    src,
                    v,
                    &["redis", "rediss", "redis+cluster", "redis+sentinel"],
                )?;
                store::check_redis_url(url.expose()).map_err(|e| err(src, e.to_string()))?;
                url
            }
            None => ServiceUrl("redis://127.0.0.1:6379/".into()),
        };
        let database_url = match raw.get("database_url") {
            Some((src, v)) => {
                let url = parse_url(src, v, &["postgres", "postgresql"])?;
                store::check_postgres_url(url.expose()).map_err(|e| err(src, e.to_string()))?;
                url
            }
            None => ServiceUrl("postgres://tavern@127.0.0.1:5432/tavern".into()),
        };
        // Set but empty is a mistake (an unset variable in a deployment template, say),
        // never a request for sandbox mode: leave the key out for that.
        if let Some((src, value)) = raw.values.get("discord_token")
            && value.trim().is_empty()
        {
            return Err(err(
                src,
                "is empty; set the bot token, or leave the setting out for sandbox mode",
            ));
        }
        let discord_token = raw
            .get("discord_token")
            .map(|(_, v)| Secret::from(v.trim()));
        let discord_api = raw
            .get("discord_api")
            .map(|(s, v)| parse_host_port(s, v))
            .transpose()?;
        let discord_gateway = match raw.get("discord_gateway") {
            Some((src, v)) => Some(parse_url(src, v, &["ws", "wss"])?.0),
            None => None,
        };
        let shards = shard_range(&raw)?;
        let http_addr = match raw.get("http_addr") {
            Some((src, v)) => parse_addr(src, v)?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let metrics_addr = raw
            .get("metrics_addr")
            .map(|(s, v)| parse_addr(s, v))
            .transpose()?;
        // The same port (or one address taking every interface's) cannot be bound twice;
        // port 0 is any free one, each its own.
        if let (Some(metrics), Some((src, _))) = (metrics_addr, raw.get("metrics_addr"))
            && metrics.port() != 0
            && metrics.port() == http_addr.port()
            && (metrics.ip() == http_addr.ip()
                || metrics.ip().is_unspecified()
                || http_addr.ip().is_unspecified())
        {
            return Err(err(
                src,
                format!(
                    "{metrics} is the web server's address ({http_addr}) too; leave it out \
                     (the web server serves /metrics as well) or give it a port of its own"
                ),
            ));
        }
        let data_dir = raw
            .get("data_dir")
            .map(|(_, v)| PathBuf::from(v.trim()))
            .unwrap_or_else(|| PathBuf::from(".tavern"));
        let rolls_sync_url = raw
            .get("rolls_sync_url")
            .map(|(src, v)| {
                rolls::SyncTarget::parse(v).map_err(|e| err(src, sync_target_problem(e)))
            })
            .transpose()?;
        let rolls_sync_keep = whole_number(
            &raw,
            "rolls_sync_keep",
            rolls::DEFAULT_SYNC_KEEP,
            1..=usize::MAX,
            "a number of snapshots to keep (a whole number >= 1)",
        )?;
        let public_url = raw
            .get("public_url")
            .map(|(src, v)| {
                let url = web_url(src, v)?;
                // Tavern's pages, callbacks and links are at the root of its site.
                if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                    return Err(err(
                        src,
                        format!(
                            "`{}` has a path, query or fragment; give the site's origin only \
                             (scheme, host and port, e.g. https://tavern.example.org): Tavern \
                             serves its pages at the root of its own host",
                            v.trim()
                        ),
                    ));
                }
                Ok(url)
            })
            .transpose()?;
        let discord_login = discord_login(&raw)?;
        let mut meetup = meetup_config(&raw)?;
        let groups_src = raw.get("meetup_groups").map(|(src, _)| src.to_owned());
        let campaigns_discord = campaigns_settings(&raw, groups_src.as_deref())?;
        if let Some(meetup) = &mut meetup {
            meetup.discord = campaigns_discord;
        }
        let log_format = match raw.get("log_format") {
            None => LogFormat::Text,
            Some((_, "text")) => LogFormat::Text,
            Some((_, "json")) => LogFormat::Json,
            Some((src, v)) => {
                return Err(err(
                    src,
                    format!("`{v}` is not a log format (text or json)"),
                ));
            }
        };
        let trusted_proxies = raw
            .get("trusted_proxies")
            .map(|(src, v)| web::client::TrustedProxies::parse(v).map_err(|e| err(src, e)))
            .transpose()?
            .unwrap_or_default();
        let meetings_secret_key = raw
            .get("meetings_secret_key")
            .map(|(src, v)| {
                meetings::auth::MeetingsSecretKey::parse_base64(v).map_err(|e| {
                    err(
                        src,
                        format!("{e} (make one with `openssl rand -base64 32`)"),
                    )
                })
            })
            .transpose()?;
        let meetings = meetings_settings(&raw)?;
        let drinking = drinking_settings(&raw)?;
        if discord_token.is_none() && (discord_api.is_some() || discord_gateway.is_some()) {
            return Err(err(
                "TAVERN_DISCORD_TOKEN",
                "is required when TAVERN_DISCORD_API or TAVERN_DISCORD_GATEWAY is set",
            ));
        }
        Ok(Config {
            redis_url,
            database_url,
            discord_token,
            discord_api,
            discord_gateway,
            shards,
            http_addr,
            metrics_addr,
            data_dir,
            rolls_sync_url,
            rolls_sync_keep,
            public_url,
            discord_login,
            meetup,
            log_format,
            trusted_proxies,
            sandbox_public: false,
            meetings_secret_key,
            meetings,
            drinking,
        })
    }

    /// What `tavern serve` refuses before starting: sandbox mode (anyone who reaches
    /// the console acts as the demo users, and nothing asks who they are) on an
    /// address other people can reach, unless `--sandbox-public` says it is meant.
    pub fn check_serve(&self) -> Result<(), ConfigError> {
        if self.sandbox() && !self.http_addr.ip().is_loopback() && !self.sandbox_public {
            return Err(err(
                "TAVERN_HTTP_ADDR",
                format!(
                    "sandbox mode (no TAVERN_DISCORD_TOKEN) refuses to listen on {}, which \
                     others can reach; listen on 127.0.0.1, set the bot token, or pass \
                     --sandbox-public to `tavern serve`",
                    self.http_addr
                ),
            ));
        }
        if self.sandbox() && self.http_addr.ip().is_unspecified() && self.public_url.is_none() {
            return Err(err(
                "TAVERN_PUBLIC_URL",
                format!(
                    "sandbox mode on {} needs the address browsers use to reach it: set \
                     TAVERN_PUBLIC_URL (public_url), e.g. http://<this machine's name>:{}; \
                     the console refuses actions sent from any other origin",
                    self.http_addr,
                    self.http_addr.port()
                ),
            ));
        }
        Ok(())
    }

    /// The files serving reads, checked before anything starts: [`Config::check_data_dir`]
    /// and the meeting controller's and media handler's PEM certificates and keys, when
    /// set (readable, each holding what it should), so that a wrong path is a
    /// configuration error naming its setting, not a service that fails again and again.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        self.check_data_dir()?;
        for (pair, cert, key) in [
            (
                &self.meetings.controller_certificate,
                "TAVERN_MEETING_CONTROLLER_CERT",
                "TAVERN_MEETING_CONTROLLER_KEY",
            ),
            (
                &self.meetings.media_handler.certificate,
                "TAVERN_MEDIA_HANDLER_CERT",
                "TAVERN_MEDIA_HANDLER_KEY",
            ),
        ] {
            if let Some((chain, private)) = pair {
                pem_file(chain, cert, "CERTIFICATE", "certificate")?;
                pem_file(private, key, "PRIVATE KEY", "private key")?;
            }
        }
        Ok(())
    }

    /// `data_dir` is a folder Tavern can write in (made when missing): the rolls sync's
    /// snapshots, the sandbox's data and recordings live there, and finding out only
    /// when the first of them is written leaves a server that never gets ready.
    pub fn check_data_dir(&self) -> Result<(), ConfigError> {
        let dir = &self.data_dir;
        let refuse = |e: std::io::Error| {
            err(
                "TAVERN_DATA_DIR",
                format!(
                    "`{}` is not a folder Tavern can write in: {e}",
                    dir.display()
                ),
            )
        };
        std::fs::create_dir_all(dir).map_err(refuse)?;
        let probe = dir.join(".tavern-write-check");
        std::fs::write(&probe, b"").map_err(refuse)?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    /// Sandbox mode: no Discord token was given.
    pub fn sandbox(&self) -> bool {
        self.discord_token.is_none()
    }
}

/// The known name closest to a mistyped `name`, when it is close enough to be the one
/// meant: at most 2 edits, and fewer than a third of its length.
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    known
        .map(|k| (strsim::levenshtein(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(edits, _)| *edits <= 2 && *edits * 3 < name.len())
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_local_and_sandbox() {
        let c = Config::from_sources(None, None, &env(&[])).expect("defaults");
        assert!(c.sandbox());
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.redis_url.expose(), "redis://127.0.0.1:6379/");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = Config::from_sources(
            Some("http_addr = \"127.0.0.1:9000\"\nredis_url = \"redis://file:1/\""),
            None,
            &env(&[("TAVERN_REDIS_URL", "redis://env:2/")]),
        )
        .expect("config");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:9000");
        assert_eq!(c.redis_url.expose(), "redis://env:2/");
    }

    #[test]
    fn a_sentinel_redis_url_is_taken_and_a_malformed_one_named() {
        let url = "redis+sentinel://:pw@s1:26379,s2:26379/tavern/1";
        let c = Config::from_sources(None, None, &env(&[("TAVERN_REDIS_URL", url)]))
            .expect("a sentinel url");
        assert_eq!(c.redis_url.expose(), url);
        assert!(!format!("{c:?}").contains(":pw@"), "the password is hidden");

        let e = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_REDIS_URL", "redis+sentinel://:pw@s1:26379")]),
        )
        .expect_err("no master name");
        assert_eq!(e.key, "TAVERN_REDIS_URL");
        assert!(e.problem.contains("no master name"), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn serving_needs_a_data_dir_it_can_write_in() {
        let scratch = std::env::temp_dir().join(format!("tavern-data-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let made = scratch.join("made/on/demand");
        let mut c = Config::from_sources(None, None, &env(&[])).expect("config");
        c.data_dir = made.clone();
        c.check_data_dir().expect("a missing folder is made");
        assert!(made.is_dir());
        let file = scratch.join("a-file");
        std::fs::write(&file, b"x").expect("file");
        c.data_dir = file.clone();
        let e = c.check_data_dir().expect_err("a file is no folder");
        assert_eq!(e.key, "TAVERN_DATA_DIR");
        assert!(
            e.problem.contains("is not a folder Tavern can write in"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&scratch);
    }

    #[test]
    fn certificate_files_are_checked_before_serving_naming_their_setting() {
        let scratch = std::env::temp_dir().join(format!("tavern-pem-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).expect("scratch");
        let cert = scratch.join("cert.pem");
        let key = scratch.join("key.pem");
        let other = scratch.join("hostname");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("cert");
        std::fs::write(
            &key,
            "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n",
        )
        .expect("key");
        std::fs::write(&other, "tavern-host\n").expect("other");
        let path = |p: &std::path::Path| p.display().to_string();
        let with = |c: &str, k: &str| {
            let mut config = Config::from_sources(
                None,
                None,
                &env(&[
                    ("TAVERN_MEETING_CONTROLLER_CERT", c),
                    ("TAVERN_MEETING_CONTROLLER_KEY", k),
                ]),
            )
            .expect("config");
            config.data_dir = scratch.join("data");
            config.check_files()
        };
        with(&path(&cert), &path(&key)).expect("a certificate and its key");
        let e = with("/nonexistent.pem", &path(&key)).expect_err("missing");
        assert_eq!(e.key, "TAVERN_MEETING_CONTROLLER_CERT");
        assert!(e.problem.contains("cannot be read"), "{e}");
        let e = with(&path(&other), &path(&key)).expect_err("not a certificate");
        assert_eq!(e.key, "TAVERN_MEETING_CONTROLLER_CERT");
        assert!(e.problem.contains("holds no PEM certificate"), "{e}");
        let e = with(&path(&cert), &path(&cert)).expect_err("a certificate for a key");
        assert_eq!(e.key, "TAVERN_MEETING_CONTROLLER_KEY");
        assert!(e.problem.contains("holds no PEM private key"), "{e}");
        let _ = std::fs::remove_dir_all(&scratch);
    }

    #[test]
    fn the_metrics_address_must_not_be_the_web_servers() {
        for (http, metrics) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:8080", "0.0.0.0:8080"),
        ] {
            let e = Config::from_sources(
                None,
                None,
                &env(&[("TAVERN_HTTP_ADDR", http), ("TAVERN_METRICS_ADDR", metrics)]),
            )
            .expect_err(metrics);
            assert_eq!(e.key, "TAVERN_METRICS_ADDR");
            assert!(e.problem.contains("port of its own"), "{e}");
        }
        let c = Config::from_sources(
            None,
            None,
            &env(&[
                ("TAVERN_HTTP_ADDR", "127.0.0.1:8080"),
                ("TAVERN_METRICS_ADDR", "127.0.0.1:9090"),
            ]),
        )
        .expect("ports of their own");
        assert_eq!(c.metrics_addr.map(|a| a.port()), Some(9090));
    }

    #[test]
    fn a_public_url_is_an_origin_without_a_path() {
        for good in ["https://tavern.example.org", "http://tavern.lan:8080/"] {
            let c =
                Config::from_sources(None, None, &env(&[("TAVERN_PUBLIC_URL", good)])).expect(good);
            assert!(c.public_url.is_some(), "{good}");
        }
        for bad in [
            "http://example.org/path",
            "http://example.org/?x=1",
            "http://example.org/#top",
        ] {
            let e = Config::from_sources(None, None, &env(&[("TAVERN_PUBLIC_URL", bad)]))
                .expect_err(bad);
            assert_eq!(e.key, "TAVERN_PUBLIC_URL");
            assert!(e.problem.contains("give the site's origin only"), "{e}");
        }
    }

    #[test]
    fn a_store_url_the_stores_cannot_use_names_the_setting_before_anything_starts() {
        for (var, url, said) in [
            (
                "TAVERN_REDIS_URL",
                "redis://:hunter2@127.0.0.1:6379/abc",
                "database number",
            ),
            (
                "TAVERN_REDIS_URL",
                "redis://:hunter2@127.0.0.1:6379/0?protocol=resp9",
                "protocol",
            ),
            (
                "TAVERN_DATABASE_URL",
                "postgres://tavern:hunter2@db:5432/tavern?sslmode=bogus",
                "unknown value \"bogus\" for `ssl_mode`",
            ),
        ] {
            let e = Config::from_sources(None, None, &env(&[(var, url)])).expect_err(url);
            assert_eq!(e.key, var, "{e}");
            assert!(e.problem.to_lowercase().contains(said), "{url}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn a_store_url_with_a_port_out_of_range_names_the_setting_and_the_port_not_the_password() {
        for (var, url) in [
            ("TAVERN_REDIS_URL", "redis://:hunter2@127.0.0.1:99999/0"),
            (
                "TAVERN_DATABASE_URL",
                "postgres://tavern:hunter2@db:70000/tavern",
            ),
            (
                "TAVERN_REDIS_URL",
                "redis+sentinel://:hunter2@s1:26379,s2:0/tavern",
            ),
            (
                "TAVERN_DATABASE_URL",
                "postgres://tavern:hunter2@[::1]:65536/tavern",
            ),
        ] {
            let e = Config::from_sources(None, None, &env(&[(var, url)])).expect_err(url);
            assert_eq!(e.key, var, "{e}");
            assert!(e.problem.contains("is out of range 1-65535"), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        // A password written with an unencoded `/`, `?`, `#` or `@` hides where the user
        // info ends: the error still quotes none of it.
        for url in [
            "redis://:hun/ter2@127.0.0.1:6379/0",
            "redis://:hun?ter2@127.0.0.1:6379/0",
            "redis://:hun#ter2@127.0.0.1:6379/0",
            "postgres://tavern:hun/ter2@db:99999/tavern",
            "rediss://:hun/ter2@127.0.0.1:6379/0",
            "mysql://tavern:hun/ter2@db/tavern",
        ] {
            let e = Config::from_sources(None, None, &env(&[("TAVERN_REDIS_URL", url)]))
                .expect_err(url);
            let said = e.to_string();
            assert!(!said.contains("hun") && !said.contains("ter2"), "{said}");
        }
        let e = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_REDIS_URL", "redis://:hunter2@127.0.0.1:99999/0")]),
        )
        .expect_err("out of range");
        assert!(
            e.problem.contains("port 99999 is out of range 1-65535"),
            "{e}"
        );
        let e = Config::from_sources(
            Some("database_url = \"postgres://db:x1/t\""),
            None,
            &env(&[]),
        )
        .expect_err("not a number");
        assert_eq!(e.key, "tavern.toml: database_url");
        assert!(e.problem.contains("not a number"), "{e}");

        for good in [
            "redis://127.0.0.1:6379/0",
            "redis://localhost/",
            "redis+cluster://:pw@h1:7000,h2:7001/",
            "redis+sentinel://:pw@s1:26379,s2:26379/tavern/1",
        ] {
            let c = Config::from_sources(None, None, &env(&[("TAVERN_REDIS_URL", good)]));
            assert!(c.is_ok(), "{good}: {c:?}");
        }
        for good in [
            "postgres://u:p@[::1]:5432/t",
            "postgresql://db/t?sslmode=require",
            "postgres:///t?host=/run/postgresql",
        ] {
            let c = Config::from_sources(None, None, &env(&[("TAVERN_DATABASE_URL", good)]));
            assert!(c.is_ok(), "{good}: {c:?}");
        }
    }

    #[test]
    fn rolls_sync_keep_is_a_count_of_at_least_one() {
        let c = Config::from_sources(None, None, &env(&[])).expect("defaults");
        assert_eq!(c.rolls_sync_keep, rolls::DEFAULT_SYNC_KEEP);
        let c = Config::from_sources(Some("rolls_sync_keep = 5"), None, &env(&[])).expect("file");
        assert_eq!(c.rolls_sync_keep, 5);
        for bad in ["0", "-1", "many"] {
            let e = Config::from_sources(None, None, &env(&[("TAVERN_ROLLS_SYNC_KEEP", bad)]))
                .expect_err(bad);
            assert_eq!(e.key, "TAVERN_ROLLS_SYNC_KEEP");
            assert!(e.problem.contains("a whole number >= 1"), "{e}");
        }
    }

    #[test]
    fn the_meetings_rate_limits_default_to_the_issue_s_and_take_whole_numbers_above_zero() {
        let c = Config::from_sources(None, None, &env(&[])).expect("defaults");
        let limits = |c: &Config| {
            let a = c.meetings.auth;
            (
                a.failed_logins_per_minute,
                a.meetings_created_per_minute,
                a.registrations_per_minute,
                a.guest_tokens_per_minute,
            )
        };
        assert_eq!(limits(&c), (10, 30, 10, 30));
        let c = Config::from_sources(
            Some(
                "meetings_failed_logins_per_minute = 5\nmeetings_created_per_minute = 100\n\
                 meetings_registrations_per_minute = 3\nmeetings_guest_tokens_per_minute = 60",
            ),
            None,
            &env(&[("TAVERN_MEETINGS_CREATED_PER_MINUTE", "200")]),
        )
        .expect("file and environment");
        assert_eq!(limits(&c), (5, 200, 3, 60), "the environment wins");
        for key in [
            "TAVERN_MEETINGS_FAILED_LOGINS_PER_MINUTE",
            "TAVERN_MEETINGS_CREATED_PER_MINUTE",
            "TAVERN_MEETINGS_REGISTRATIONS_PER_MINUTE",
            "TAVERN_MEETINGS_GUEST_TOKENS_PER_MINUTE",
        ] {
            for bad in ["0", "-3", "ten", "1.5"] {
                let e = Config::from_sources(None, None, &env(&[(key, bad)])).expect_err(bad);
                assert_eq!(e.key, key);
                assert!(e.problem.contains("not a rate limit"), "{e}");
            }
        }
    }

    #[test]
    fn the_meeting_controller_runs_in_process_on_a_free_port_unless_configured() {
        let c = Config::from_sources(None, None, &env(&[])).unwrap();
        assert_eq!(c.meetings.region.as_str(), "local");
        assert_eq!(c.meetings.controller, ControllerMode::InProcess);
        assert_eq!(c.meetings.controller_addr.to_string(), "127.0.0.1:0");
        assert_eq!(c.meetings.controller_id, None);
        assert_eq!(c.meetings.controller_certificate, None);

        let c = Config::from_sources(
            Some("meeting_controller = \"separate\"\nmeetings_region = \"eu-west-1\""),
            None,
            &env(&[
                ("TAVERN_MEETING_CONTROLLER_ADDR", "0.0.0.0:4433"),
                ("TAVERN_MEETING_CONTROLLER_HOST", "meet.example.org"),
                ("TAVERN_MEETING_CONTROLLER_ID", "mc-eu-1"),
                ("TAVERN_MEETING_CONTROLLER_CERT", "/etc/tavern/cert.pem"),
                ("TAVERN_MEETING_CONTROLLER_KEY", "/etc/tavern/key.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(c.meetings.controller, ControllerMode::Separate);
        assert_eq!(c.meetings.region.as_str(), "eu-west-1");
        assert_eq!(c.meetings.controller_addr.to_string(), "0.0.0.0:4433");
        assert_eq!(
            c.meetings.controller_host.as_deref(),
            Some("meet.example.org")
        );
        assert_eq!(
            c.meetings.controller_id.as_ref().map(|i| i.as_str()),
            Some("mc-eu-1")
        );
        assert!(c.meetings.controller_certificate.is_some());

        for (key, value, says) in [
            (
                "TAVERN_MEETING_CONTROLLER",
                "sometimes",
                "in-process or separate",
            ),
            ("TAVERN_MEETING_CONTROLLER_ADDR", "4433", "socket address"),
            ("TAVERN_MEETING_CONTROLLER_HOST", "a b", "host name"),
            ("TAVERN_MEETINGS_REGION", "two words", "region"),
            (
                "TAVERN_MEETING_CONTROLLER_CERT",
                "/etc/cert.pem",
                "its pair",
            ),
        ] {
            let e = Config::from_sources(None, None, &env(&[(key, value)])).unwrap_err();
            assert_eq!(e.key, key);
            assert!(e.problem.contains(says), "{key}: {}", e.problem);
        }
    }

    #[test]
    fn the_meetings_secret_key_is_32_bytes_of_base64_never_shown() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let c = Config::from_sources(None, None, &env(&[("TAVERN_MEETINGS_SECRET_KEY", key)]))
            .expect("a key");
        assert!(c.meetings_secret_key.is_some());
        assert!(!format!("{c:?}").contains(key), "the key is hidden");
        assert!(
            Config::from_sources(None, None, &env(&[]))
                .expect("defaults")
                .meetings_secret_key
                .is_none()
        );
        for bad in ["short", "not base64 at all!", "AAAA"] {
            let e = Config::from_sources(None, None, &env(&[("TAVERN_MEETINGS_SECRET_KEY", bad)]))
                .expect_err(bad);
            assert_eq!(e.key, "TAVERN_MEETINGS_SECRET_KEY");
            assert!(e.problem.contains("32 bytes in base64"), "{e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        let e = Config::from_sources(Some("meetings_secret_key = \"AAAA\""), None, &env(&[]))
            .expect_err("file");
        assert_eq!(e.key, "tavern.toml: meetings_secret_key");
    }

    #[test]
    fn the_recordings_url_is_read_and_an_empty_one_means_the_default() {
        let c = Config::from_sources(
            Some("meetings_recordings_url = \"s3://recordings/tavern\""),
            None,
            &env(&[]),
        )
        .expect("a URL");
        assert_eq!(
            c.meetings.recordings_url.as_deref(),
            Some("s3://recordings/tavern")
        );
        let c = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_MEETINGS_RECORDINGS_URL", "/srv/recordings")]),
        )
        .expect("a directory");
        assert_eq!(
            c.meetings.recordings_url.as_deref(),
            Some("/srv/recordings")
        );
        assert!(
            Config::from_sources(None, None, &env(&[]))
                .expect("defaults")
                .meetings
                .recordings_url
                .is_none()
        );
        let blank =
            Config::from_sources(None, None, &env(&[("TAVERN_MEETINGS_RECORDINGS_URL", " ")]))
                .expect("blank");
        assert!(blank.meetings.recordings_url.is_none());
    }

    #[test]
    fn a_recordings_url_that_would_go_wrong_is_refused_at_start_without_its_password() {
        let refused = |url: &str| {
            Config::from_sources(None, None, &env(&[("TAVERN_MEETINGS_RECORDINGS_URL", url)]))
                .expect_err(url)
        };
        for (url, problem) in [
            ("s3//bucket/x", "without its `://`"),
            ("s3:/bucket", "without its `://`"),
            ("az:container", "without its `://`"),
            ("s3://key:hunter2@bucket/x", "carries credentials"),
            ("ftp://u:hunter2@host/x", "carries credentials"),
            ("gs://bucket/x", "not supported"),
            ("s3:///x", "names no bucket"),
        ] {
            let e = refused(url);
            assert_eq!(e.key, "TAVERN_MEETINGS_RECORDINGS_URL", "{url}");
            assert!(e.problem.contains(problem), "{url}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{url}: {e}");
        }
        for url in [
            "/srv/recordings",
            "recordings",
            "file:///srv/recordings",
            "az://container/p",
        ] {
            let c =
                Config::from_sources(None, None, &env(&[("TAVERN_MEETINGS_RECORDINGS_URL", url)]))
                    .expect(url);
            assert_eq!(c.meetings.recordings_url.as_deref(), Some(url));
        }
    }

    #[test]
    fn a_place_for_files_in_no_form_taken_names_every_form_once() {
        for key in ["TAVERN_ROLLS_SYNC_URL", "TAVERN_MEETINGS_RECORDINGS_URL"] {
            let e = Config::from_sources(None, None, &env(&[(key, "http://x/y")])).expect_err(key);
            assert_eq!(e.key, key);
            assert_eq!(
                e.problem.matches("az://container/prefix").count(),
                1,
                "{key}: {e}"
            );
            assert!(
                e.problem.contains("`http://x/y` is not supported")
                    && e.problem
                        .contains("https://s3.<region>.amazonaws.com/bucket")
                    && e.problem
                        .contains("https://<account>.blob.core.windows.net/container"),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn a_crit_on_the_fail_face_blames_the_setting_that_was_set() {
        let e = Config::from_sources(None, None, &env(&[("TAVERN_DRINKING_CRIT", "1")]))
            .expect_err("crit on the default fail face");
        assert_eq!(e.key, "TAVERN_DRINKING_CRIT", "{e}");
        assert_eq!(
            e.problem,
            "1 is also the fail face (drinking_fail, 1 by default); crit and fail must differ"
        );
        let e = Config::from_sources(None, None, &env(&[("TAVERN_DRINKING_FAIL", "6")]))
            .expect_err("fail on the default crit face");
        assert_eq!(e.key, "TAVERN_DRINKING_FAIL", "{e}");
        assert!(e.problem.contains("also the crit value"), "{e}");
        let e = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_DRINKING_CRIT", "3"), ("TAVERN_DRINKING_FAIL", "3")]),
        )
        .expect_err("both on one face");
        assert_eq!(e.key, "TAVERN_DRINKING_FAIL", "{e}");
    }

    #[test]
    fn a_toml_syntax_error_says_where_it_is() {
        let e = Config::from_sources(
            Some("http_addr = \"127.0.0.1:8080\"\ndata_dir = /srv/tavern\n"),
            None,
            &env(&[]),
        )
        .expect_err("bad TOML");
        assert_eq!(e.key, "tavern.toml");
        assert!(e.problem.starts_with("line 2, column 12: "), "{e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }

    #[test]
    fn only_tavern_variables_must_be_utf8() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'a', 0xff]);
        let vars = [
            (OsString::from("OTHER"), bad()),
            (OsString::from_vec(b"NOT_OURS_\xff".to_vec()), bad()),
            (
                OsString::from("TAVERN_HTTP_ADDR"),
                OsString::from("127.0.0.1:1"),
            ),
        ];
        let env = tavern_variables(vars.into_iter()).expect("others are ignored");
        assert_eq!(
            env.into_iter().collect::<Vec<_>>(),
            [("TAVERN_HTTP_ADDR".to_owned(), "127.0.0.1:1".to_owned())]
        );
        let e = tavern_variables([(OsString::from("TAVERN_DATA_DIR"), bad())].into_iter())
            .expect_err("ours");
        assert_eq!(e.key, "TAVERN_DATA_DIR");
        assert!(e.problem.contains("not valid UTF-8"), "{e}");
        let e = tavern_variables(
            [(
                OsString::from_vec(b"TAVERN_\xff".to_vec()),
                OsString::from("x"),
            )]
            .into_iter(),
        )
        .expect_err("a name of ours");
        assert!(e.problem.contains("name is not valid UTF-8"), "{e}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = Config::from_sources(None, None, &env(&[("TAVERN_HTTP_ADDR", "localhost")]))
            .expect_err("bad");
        assert_eq!(e.key, "TAVERN_HTTP_ADDR");
        assert!(
            e.problem.contains("`localhost` is not a socket address"),
            "{e}"
        );

        let e =
            Config::from_sources(Some("http_addr = \"nope\""), None, &env(&[])).expect_err("bad");
        assert_eq!(e.key, "tavern.toml: http_addr");

        let e = Config::from_sources(None, None, &env(&[("TAVERN_DATABASE_URL", "mysql://x")]))
            .expect_err("bad");
        assert_eq!(e.key, "TAVERN_DATABASE_URL");

        let e = Config::from_sources(None, None, &env(&[("TAVERN_DISCORD_API", "http://x:1")]))
            .expect_err("bad");
        assert_eq!(e.key, "TAVERN_DISCORD_API");

        let e =
            Config::from_sources(None, None, &env(&[("TAVERN_HTTP_ADR", "1")])).expect_err("typo");
        assert_eq!(e.key, "TAVERN_HTTP_ADR");
        assert!(e.problem.contains("did you mean TAVERN_HTTP_ADDR?"), "{e}");
        let e = Config::from_sources(Some("htp_addr = \"x\""), None, &env(&[]))
            .expect_err("typo in the file");
        assert!(e.problem.contains("did you mean `http_addr`?"), "{e}");
        // Nothing is guessed for a name close to none.
        let e =
            Config::from_sources(None, None, &env(&[("TAVERN_COLOUR", "1")])).expect_err("unknown");
        assert!(!e.problem.contains("did you mean"), "{e}");

        let e = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_ROLLS_SYNC_URL", "gs://KEY:SECRET@bucket")]),
        )
        .expect_err("bad sync url");
        assert_eq!(e.key, "TAVERN_ROLLS_SYNC_URL");
        assert!(!e.problem.contains("SECRET"), "{e}");

        let e = Config::from_sources(Some("colour = \"red\""), None, &env(&[]))
            .expect_err("unknown key");
        assert!(e.key.ends_with("colour"), "{e}");
    }

    fn with_groups(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut pairs = vec![
            ("TAVERN_MEETUP_GROUPS", "swiss-rpg"),
            ("TAVERN_MEETUP_CLIENT_ID", "tavern-app"),
            ("TAVERN_MEETUP_CLIENT_SECRET", "s"),
        ];
        pairs.extend_from_slice(extra);
        Config::from_sources(None, None, &env(&pairs))
    }

    #[test]
    fn the_campaigns_guild_is_required_once_meetup_groups_are_set() {
        let e = with_groups(&[]).expect_err("no guild");
        assert_eq!(e.key, "TAVERN_CAMPAIGNS_GUILD_ID");
        assert!(e.problem.contains("TAVERN_MEETUP_GROUPS"), "{e}");
        assert_eq!(
            e.to_string(),
            "TAVERN_CAMPAIGNS_GUILD_ID: is required when TAVERN_MEETUP_GROUPS is set"
        );

        let c = with_groups(&[("TAVERN_CAMPAIGNS_GUILD_ID", "4242")]).expect("guild only");
        let d = c.meetup.unwrap().discord.expect("discord settings");
        assert_eq!(d.guild.get(), 4242);
        assert!(d.categories.is_empty() && d.one_shot_categories.is_empty());
        assert_eq!(d.organiser_role, None);
        assert_eq!(d.free_spots_channel, None);
        assert_eq!(d.topic_default_name, campaigns::config::DEFAULT_TOPIC_NAME);
    }

    #[test]
    fn the_drinking_game_is_configured_from_tavern_toml_and_the_environment() {
        let c = Config::from_sources(None, None, &env(&[])).expect("defaults");
        assert_eq!(c.drinking.die, drinking::DiceRules::default());
        assert_eq!(c.drinking.max_players, 10);
        assert_eq!(c.drinking.force_start_after.as_secs(), 300);
        assert_eq!(c.drinking.game_lifetime.as_secs(), 86_400);

        let c = Config::from_sources(
            Some(
                "drinking_die = 20\ndrinking_fail = \"1\"\ndrinking_max_players = 4\n\
                 drinking_force_start_after = \"90s\"\ndrinking_game_lifetime = \"2h\"\n",
            ),
            None,
            &env(&[("TAVERN_DRINKING_CRIT", "19")]),
        )
        .expect("config");
        assert_eq!(
            c.drinking.die,
            drinking::DiceRules::new(20, 19, 1).expect("rules")
        );
        assert_eq!(c.drinking.max_players, 4);
        assert_eq!(c.drinking.force_start_after.as_secs(), 90);
        assert_eq!(c.drinking.game_lifetime.as_secs(), 7_200);
        // The binary hands them to the game.
        let game = crate::app::drinking_config(&c);
        assert_eq!(game.die, c.drinking.die);
        assert_eq!(game.player_limit, 4);
        assert_eq!(game.force_start_after.as_secs(), 90);
        assert_eq!(game.completed_ttl.as_secs(), 7_200);

        // Unset, the crit is the die's highest face.
        let c = Config::from_sources(Some("drinking_die = 12\n"), None, &env(&[])).expect("d12");
        assert_eq!((c.drinking.die.crit, c.drinking.die.fail), (12, 1));
        let c = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_DRINKING_FORCE_START_AFTER", "600")]),
        )
        .expect("seconds");
        assert_eq!(c.drinking.force_start_after.as_secs(), 600);
    }

    #[test]
    fn a_bad_drinking_value_names_its_key() {
        for (key, value, says) in [
            ("TAVERN_DRINKING_DIE", "1", "2 to 100 sides"),
            ("TAVERN_DRINKING_DIE", "d20", "whole number from 2 to 100"),
            ("TAVERN_DRINKING_CRIT", "six", "whole number from 1 to 100"),
            ("TAVERN_DRINKING_CRIT", "7", "not a face of a d6"),
            ("TAVERN_DRINKING_FAIL", "0", "not a face of a d6"),
            ("TAVERN_DRINKING_FAIL", "6", "must differ"),
            ("TAVERN_DRINKING_MAX_PLAYERS", "0", "1 to 25"),
            ("TAVERN_DRINKING_MAX_PLAYERS", "26", "1 to 25"),
            (
                "TAVERN_DRINKING_FORCE_START_AFTER",
                "5 minutes",
                "not a duration",
            ),
            ("TAVERN_DRINKING_FORCE_START_AFTER", "0s", "zero"),
            ("TAVERN_DRINKING_GAME_LIFETIME", "-1h", "not a duration"),
        ] {
            let e = Config::from_sources(None, None, &env(&[(key, value)])).expect_err(key);
            assert_eq!(e.key, key, "{value}");
            assert!(e.problem.contains(says), "{key}={value}: {e}");
        }
        let e = Config::from_sources(
            Some("drinking_die = 20\ndrinking_crit = 21\n"),
            None,
            &env(&[]),
        )
        .expect_err("crit above the die");
        assert_eq!(e.key, "tavern.toml: drinking_crit");
        assert!(e.problem.contains("d20"), "{e}");
    }

    #[test]
    fn every_campaigns_key_is_read_from_the_file_and_the_environment() {
        let c = Config::from_sources(
            Some(
                "meetup_groups = \"swiss-rpg\"\nmeetup_client_id = \"a\"\n\
                 meetup_client_secret = \"s\"\ncampaigns_guild_id = 10\n\
                 campaigns_categories = \"11, 12,11\"\n\
                 campaigns_one_shot_categories = \"13\"\n\
                 campaigns_organiser_role = \"14\"\ncampaigns_admin_role = \"15\"\n\
                 campaigns_alerts_channel = \"16\"\ncampaigns_free_spots_channel = \"17\"\n\
                 campaigns_topic_voice_channel = \"18\"\n",
            ),
            None,
            &env(&[(
                "TAVERN_CAMPAIGNS_TOPIC_DEFAULT_NAME",
                "  Chat about anything ",
            )]),
        )
        .expect("config");
        let d = c.meetup.unwrap().discord.unwrap();
        let ids = |v: &[discord::model::ChannelId]| v.iter().map(|c| c.get()).collect::<Vec<_>>();
        assert_eq!(d.guild.get(), 10);
        assert_eq!(ids(&d.categories), [11, 12]);
        assert_eq!(ids(&d.one_shot_categories), [13]);
        assert_eq!(d.organiser_role.map(|r| r.get()), Some(14));
        assert_eq!(d.admin_role.map(|r| r.get()), Some(15));
        assert_eq!(d.alerts_channel.map(|r| r.get()), Some(16));
        assert_eq!(d.free_spots_channel.map(|r| r.get()), Some(17));
        assert_eq!(d.topic_voice_channel.map(|r| r.get()), Some(18));
        assert_eq!(d.topic_default_name, "Chat about anything");
    }

    #[test]
    fn a_bad_campaigns_value_names_its_key() {
        for (key, value, problem) in [
            ("TAVERN_CAMPAIGNS_GUILD_ID", "guild", "guild id"),
            ("TAVERN_CAMPAIGNS_GUILD_ID", "0", "zero"),
            ("TAVERN_CAMPAIGNS_CATEGORIES", "1,x", "category id"),
            ("TAVERN_CAMPAIGNS_ONE_SHOT_CATEGORIES", "-3", "category id"),
            ("TAVERN_CAMPAIGNS_ORGANISER_ROLE", "@organisers", "role id"),
            ("TAVERN_CAMPAIGNS_ADMIN_ROLE", "1.5", "role id"),
            ("TAVERN_CAMPAIGNS_ALERTS_CHANNEL", "#alerts", "channel id"),
            ("TAVERN_CAMPAIGNS_FREE_SPOTS_CHANNEL", "spots", "channel id"),
            (
                "TAVERN_CAMPAIGNS_TOPIC_VOICE_CHANNEL",
                "voice",
                "channel id",
            ),
        ] {
            let e =
                with_groups(&[("TAVERN_CAMPAIGNS_GUILD_ID", "4242"), (key, value)]).expect_err(key);
            assert_eq!(e.key, key, "{e}");
            assert!(e.problem.contains(problem), "{key}: {e}");
        }
        let long: &'static str = Box::leak("x".repeat(101).into_boxed_str());
        let e = with_groups(&[
            ("TAVERN_CAMPAIGNS_GUILD_ID", "4242"),
            ("TAVERN_CAMPAIGNS_TOPIC_DEFAULT_NAME", long),
        ])
        .expect_err("too long");
        assert_eq!(e.key, "TAVERN_CAMPAIGNS_TOPIC_DEFAULT_NAME");
        // Checked even without Meetup groups, so a typo shows at start.
        let e = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_CAMPAIGNS_ADMIN_ROLE", "admins")]),
        )
        .expect_err("checked without groups");
        assert_eq!(e.key, "TAVERN_CAMPAIGNS_ADMIN_ROLE");
    }

    #[test]
    fn meetup_groups_switch_the_campaigns_sync_on_and_need_the_oauth_client() {
        let off = Config::from_sources(None, None, &env(&[])).expect("defaults");
        assert!(off.meetup.is_none());

        let on = Config::from_sources(
            Some("meetup_groups = \"swiss-rpg, zurich-dnd,swiss-rpg\""),
            None,
            &env(&[
                ("TAVERN_MEETUP_CLIENT_ID", "tavern-app"),
                ("TAVERN_MEETUP_CLIENT_SECRET", "meetup-secret"),
                ("TAVERN_MEETUP_GRAPHQL_URL", "http://127.0.0.1:9/gql-ext"),
                ("TAVERN_CAMPAIGNS_GUILD_ID", "4242"),
            ]),
        )
        .expect("meetup config");
        let meetup = on.meetup.as_ref().expect("sync on");
        let groups: Vec<_> = meetup.groups.iter().map(|g| g.to_string()).collect();
        assert_eq!(groups, ["swiss-rpg", "zurich-dnd"]);
        assert_eq!(meetup.client_id.as_str(), "tavern-app");
        assert_eq!(
            meetup.endpoints.graphql.as_str(),
            "http://127.0.0.1:9/gql-ext"
        );
        assert_eq!(
            meetup.endpoints.token.as_str(),
            "https://secure.meetup.com/oauth2/access"
        );
        assert!(!format!("{on:?}").contains("meetup-secret"));

        let e = Config::from_sources(
            None,
            None,
            &env(&[
                ("TAVERN_MEETUP_GROUPS", "swiss-rpg"),
                ("TAVERN_MEETUP_CLIENT_ID", "tavern-app"),
            ]),
        )
        .expect_err("no secret");
        assert_eq!(e.key, "TAVERN_MEETUP_CLIENT_SECRET");
        assert!(e.problem.contains("TAVERN_MEETUP_GROUPS"), "{e}");

        let e = Config::from_sources(
            None,
            None,
            &env(&[
                ("TAVERN_MEETUP_GROUPS", "swiss-rpg"),
                ("TAVERN_MEETUP_CLIENT_ID", "tavern-app"),
                ("TAVERN_MEETUP_CLIENT_SECRET", "s"),
                ("TAVERN_MEETUP_TOKEN_URL", "ftp://example.org/token"),
            ]),
        )
        .expect_err("bad url");
        assert_eq!(e.key, "TAVERN_MEETUP_TOKEN_URL");
        assert!(e.problem.contains("ftp"), "{e}");
    }

    #[test]
    fn shards_are_a_count_of_all_or_a_range_of_the_total() {
        let shards = |pairs: &[(&str, &str)]| {
            Config::from_sources(None, None, &env(pairs))
                .map(|c| c.shards.map(|r| (r.first(), r.last(), r.total())))
        };
        assert_eq!(shards(&[]), Ok(None), "unset: what Discord recommends");
        assert_eq!(shards(&[("TAVERN_SHARDS", "4")]), Ok(Some((0, 3, 4))));
        assert_eq!(
            shards(&[("TAVERN_SHARDS", "0-7"), ("TAVERN_SHARD_TOTAL", "16")]),
            Ok(Some((0, 7, 16)))
        );
        assert_eq!(
            shards(&[("TAVERN_SHARDS", " 8 - 15 "), ("TAVERN_SHARD_TOTAL", "16")]),
            Ok(Some((8, 15, 16)))
        );
        assert_eq!(shards(&[("TAVERN_SHARD_TOTAL", "2")]), Ok(Some((0, 1, 2))));
        assert_eq!(
            shards(&[("TAVERN_SHARDS", "2"), ("TAVERN_SHARD_TOTAL", "2")]),
            Ok(Some((0, 1, 2)))
        );
        let file = Config::from_sources(Some("shards = \"1-1\"\nshard_total = 2"), None, &env(&[]))
            .expect("from the file");
        assert_eq!(file.shards.map(|r| (r.first(), r.total())), Some((1, 2)));

        for (pairs, key, says) in [
            (
                vec![("TAVERN_SHARDS", "0-7")],
                "TAVERN_SHARD_TOTAL",
                "TAVERN_SHARDS",
            ),
            (
                vec![("TAVERN_SHARDS", "0-16"), ("TAVERN_SHARD_TOTAL", "16")],
                "TAVERN_SHARDS",
                "0-15",
            ),
            (
                vec![("TAVERN_SHARDS", "7-3"), ("TAVERN_SHARD_TOTAL", "16")],
                "TAVERN_SHARDS",
                "backwards",
            ),
            (
                vec![("TAVERN_SHARDS", "0-x"), ("TAVERN_SHARD_TOTAL", "16")],
                "TAVERN_SHARDS",
                "0-x",
            ),
            (vec![("TAVERN_SHARDS", "0")], "TAVERN_SHARDS", "`0`"),
            (
                vec![("TAVERN_SHARD_TOTAL", "none")],
                "TAVERN_SHARD_TOTAL",
                "`none`",
            ),
            (
                vec![("TAVERN_SHARDS", "4"), ("TAVERN_SHARD_TOTAL", "16")],
                "TAVERN_SHARD_TOTAL",
                "range",
            ),
        ] {
            let e = Config::from_sources(None, None, &env(&pairs)).expect_err("bad shards");
            assert_eq!(e.key, key, "{pairs:?}: {e}");
            assert!(e.problem.contains(says), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn the_discord_login_needs_its_id_and_secret_together() {
        let off = Config::from_sources(None, None, &env(&[])).expect("defaults");
        assert!(off.discord_login.is_none() && off.public_url.is_none());

        let on = Config::from_sources(
            None,
            None,
            &env(&[
                ("TAVERN_DISCORD_CLIENT_ID", "1234"),
                ("TAVERN_DISCORD_CLIENT_SECRET", "oauth-secret"),
                ("TAVERN_PUBLIC_URL", "https://tavern.example"),
            ]),
        )
        .expect("login config");
        let login = on.discord_login.as_ref().expect("login on");
        assert_eq!(login.client_id, "1234");
        assert_eq!(login.base_url.as_str(), "https://discord.com/");
        assert_eq!(
            on.public_url.as_ref().map(|u| u.as_str()),
            Some("https://tavern.example/")
        );
        assert!(!format!("{on:?}").contains("oauth-secret"));

        let e = Config::from_sources(None, None, &env(&[("TAVERN_DISCORD_CLIENT_ID", "1234")]))
            .expect_err("no secret");
        assert_eq!(e.key, "TAVERN_DISCORD_CLIENT_SECRET");

        let e = Config::from_sources(None, None, &env(&[("TAVERN_PUBLIC_URL", "tavern.example")]))
            .expect_err("not a URL");
        assert_eq!(e.key, "TAVERN_PUBLIC_URL");
    }

    #[test]
    fn an_empty_discord_token_is_an_error_not_sandbox_mode() {
        for blank in ["", "  "] {
            let e = Config::from_sources(None, None, &env(&[("TAVERN_DISCORD_TOKEN", blank)]))
                .expect_err("empty token");
            assert_eq!(e.key, "TAVERN_DISCORD_TOKEN");
            assert!(e.problem.contains("empty"), "{e}");
        }
        let e = Config::from_sources(Some("discord_token = \"\""), None, &env(&[]))
            .expect_err("empty token in the file");
        assert_eq!(e.key, "tavern.toml: discord_token");
        assert!(
            Config::from_sources(None, None, &env(&[]))
                .expect("no token")
                .sandbox()
        );
    }

    #[test]
    fn sandbox_mode_stays_on_loopback_unless_told_otherwise() {
        let local = Config::from_sources(None, None, &env(&[])).expect("defaults");
        assert!(local.check_serve().is_ok());
        let mut public =
            Config::from_sources(None, None, &env(&[("TAVERN_HTTP_ADDR", "0.0.0.0:8080")]))
                .expect("config");
        let e = public.check_serve().expect_err("sandbox on 0.0.0.0");
        assert_eq!(e.key, "TAVERN_HTTP_ADDR");
        assert!(e.problem.contains("--sandbox-public"), "{e}");
        public.sandbox_public = true;
        // On every address, browsers need to be told which one they use.
        let e = public.check_serve().expect_err("no public URL");
        assert_eq!(e.key, "TAVERN_PUBLIC_URL");
        assert!(e.problem.contains("set TAVERN_PUBLIC_URL"), "{e}");
        public.public_url = Some(url::Url::parse("http://tavern.lan:8080").unwrap());
        assert!(public.check_serve().is_ok());
        let mut one_address = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_HTTP_ADDR", "192.168.1.5:8080")]),
        )
        .expect("config");
        one_address.sandbox_public = true;
        assert!(
            one_address.check_serve().is_ok(),
            "its own address is its URL"
        );
        let bot = Config::from_sources(
            None,
            None,
            &env(&[
                ("TAVERN_HTTP_ADDR", "0.0.0.0:8080"),
                ("TAVERN_DISCORD_TOKEN", "token"),
            ]),
        )
        .expect("config");
        assert!(bot.check_serve().is_ok(), "with a bot, any address");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let c = Config::from_sources(
            None,
            None,
            &env(&[("TAVERN_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")]),
        )
        .expect("config");
        assert!(c.trusted_proxies.trusts("10.1.2.3".parse().unwrap()));
        assert!(!c.trusted_proxies.trusts("192.0.2.1".parse().unwrap()));
        let e = Config::from_sources(None, None, &env(&[("TAVERN_TRUSTED_PROXIES", "proxy.lan")]))
            .expect_err("not an address");
        assert_eq!(e.key, "TAVERN_TRUSTED_PROXIES");
        assert!(e.problem.contains("proxy.lan"), "{e}");
    }

    #[test]
    fn passwords_in_url_queries_never_show() {
        let c = Config::from_sources(
            None,
            None,
            &env(&[(
                "TAVERN_DATABASE_URL",
                "postgres://db:5432/tavern?user=t&password=hunter2",
            )]),
        )
        .expect("config");
        let shown = format!("{c:?} {}", c.database_url);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user=t"), "{shown}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Config::from_sources(
            None,
            None,
            &env(&[
                ("TAVERN_DISCORD_TOKEN", "super-secret-token"),
                (
                    "TAVERN_DATABASE_URL",
                    "postgres://tavern:hunter2@db:5432/tavern",
                ),
                ("TAVERN_REDIS_URL", "redis://:redispw@cache:6379/"),
            ]),
        )
        .expect("config");
        let shown = format!("{c:?}");
        for secret in ["super-secret-token", "hunter2", "redispw"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert!(
            shown.contains("db:5432"),
            "the rest of the URL stays visible: {shown}"
        );
    }
}
