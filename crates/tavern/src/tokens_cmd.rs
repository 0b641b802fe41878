//! `tavern tokens create|revoke|list`: the API tokens programs use to call Tavern's
//! REST API (see `web::tokens` for how they are kept).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use feature::Clock as _;
use tavern::config::Config;
use web::tokens::{ApiTokens, Scope, TokenError, TokenName};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token: `tavern tokens create NAME --scopes rolls:read,rolls:write`. The
    /// token is printed alone on the last line, once; only its SHA-256 is kept.
    Create {
        /// What to call it (to revoke it by): letters, digits, `.`, `_`, `-`.
        name: String,
        /// Comma-separated scopes, each one a route takes API tokens for (e.g. rolls:read).
        #[arg(long)]
        scopes: String,
    },
    /// Revoke a token by name: from now on it is refused.
    Revoke { name: String },
    /// The issued tokens: name, scopes, creation time.
    List,
}

/// A refusal of what was typed: one line on stderr, exit code 2.
fn usage_error(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("tavern: {message}");
    Ok(ExitCode::from(2))
}

pub async fn run(config: &Config, command: TokensCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokensCommand::Create { name, scopes } => {
            let name = match TokenName::parse(name.trim()) {
                Ok(name) => name,
                Err(e) => return usage_error(e),
            };
            let scopes = match Scope::parse_list(&scopes) {
                Ok(scopes) if scopes.is_empty() => return usage_error(TokenError::NoScopes),
                Ok(scopes) => scopes,
                Err(e) => return usage_error(e),
            };
            let manifest = routes(config)?;
            let known = manifest.scopes();
            if let Some(unknown) = scopes.iter().find(|s| !known.contains(s)) {
                let shown: Vec<&str> = known.iter().map(Scope::as_str).collect();
                let shown = shown.join(", ");
                if manifest.bearer_scopes().contains(unknown) {
                    return usage_error(format!(
                        "`{unknown}` is not a scope of Tavern's API tokens: the routes asking \
                         for it take their own credentials (the meetings API its own keys, \
                         from POST {}); the scopes an API token can have are: {shown}",
                        meetings::web::API_KEYS_PATH
                    ));
                }
                return usage_error(format!(
                    "no route asks for the scope `{unknown}` (the scopes there are: {shown})"
                ));
            }
            let tokens = tokens(config).await?;
            match tokens
                .create(&name, scopes, feature::SystemClock.now())
                .await
            {
                Ok(created) => {
                    let scopes: Vec<&str> = created.info.scopes.iter().map(Scope::as_str).collect();
                    println!(
                        "created API token `{}` with scopes {}",
                        created.info.name,
                        scopes.join(", ")
                    );
                    println!("it is shown only now; send it as `Authorization: Bearer <token>`:");
                    println!("{}", created.token.expose_str());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ TokenError::Exists(_)) => usage_error(e),
                Err(e) => Err(e).context("issuing the token"),
            }
        }
        TokensCommand::Revoke { name } => {
            let name = match TokenName::parse(name.trim()) {
                Ok(name) => name,
                Err(e) => return usage_error(e),
            };
            if tokens(config)
                .await?
                .revoke(&name)
                .await
                .context("revoking the token")?
            {
                println!("revoked API token `{name}`");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("tavern: no API token is named `{name}`");
                Ok(ExitCode::from(1))
            }
        }
        TokensCommand::List => {
            let list = tokens(config)
                .await?
                .list()
                .await
                .context("listing the tokens")?;
            if list.is_empty() {
                println!("no API tokens");
            }
            for token in list {
                let scopes: Vec<&str> = token.scopes.iter().map(Scope::as_str).collect();
                println!(
                    "{}\t{}\tcreated {}",
                    token.name,
                    scopes.join(","),
                    token.created_at.to_rfc3339()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn tokens(config: &Config) -> anyhow::Result<ApiTokens> {
    let redis = store::Redis::connect(config.redis_url.expose())
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis_url))?;
    Ok(ApiTokens::new(redis))
}

/// The routes of the features, for the scopes they ask for (built as `serve` builds
/// them, with stores that are never touched).
fn routes(config: &Config) -> anyhow::Result<web::access::Manifest> {
    let redis = store::Redis::lazy(config.redis_url.expose())
        .with_context(|| format!("the Redis URL {}", config.redis_url))?;
    let postgres = store::Postgres::lazy(config.database_url.expose())
        .with_context(|| format!("the PostgreSQL URL {}", config.database_url))?;
    let features = tavern::app::command_features(config, redis, postgres)?;
    Ok(feature::manifest(&features))
}
