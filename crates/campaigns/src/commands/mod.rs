//! The campaigns' slash commands, with who may use each:
//!
//! - everybody (`everyone`): `/link-meetup` (a private one-time link to the linking
//!   page), `/unlink-meetup`, and `/topic` ([`crate::topic`]);
//! - the hosts of a game, in its channel (`hosts`): `/players add|remove|list`,
//!   `/hosts add|remove`, `/end-adventure`, `/schedule-session`;
//! - admins, the holders of [`DiscordSettings::admin_role`] (`admin`): `/snooze`,
//!   `/manage-channel`, `/link`, `/unlink`, `/whois`, `/sync`.
//!
//! A host is a member holding the channel's host role, or a member linked to a Meetup
//! host of one of the series' events; admins may use the host commands too. Whoever
//! may not use a command gets a private refusal that says who may. The interaction
//! carries no roles, so they are asked of Discord ([`Discord::member_roles`]) when a
//! command needs them.
//!
//! Every answer notifies only whom it is about: refusals and look-ups are private,
//! public messages ping the person added and nobody else.
//!
//! `/link-meetup` and `/whois` are private commands ([`CommandSpec::private`]): when
//! Tavern is slow, even the deferral Discord shows meanwhile is private, so a one-time
//! link or who is whom never reaches the channel.

mod admin;
mod everyone;
mod hosts;

use std::future::Future;
use std::sync::Arc;

use base::Clock;
use chrono::{DateTime, Utc};
use discord::{
    ChannelId, CommandSpec, Discord, GuildId, Handler, HandlerError, Invocation, Response,
    RestError, RoleId, UserId,
};
use feature::Feature;

use crate::config::{CampaignsConfig, DiscordSettings};
use crate::domain::{EventSeriesId, MeetupUserId};
use crate::jobs::Syncer;
use crate::repo::{Repo, RepoError};
use crate::standing;
use crate::topic::{GatewayVoice, VoiceOccupancy};

/// Why a command did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The user may not, or asked for something the rules refuse; shown as is.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("Discord refused the change: {0}")]
    Discord(#[from] RestError),
}

impl CommandError {
    pub(crate) fn refused(message: impl Into<String>) -> CommandError {
        CommandError::Refused(message.into())
    }

    /// This error as the handler's (private) answer.
    pub fn into_handler_error(self) -> HandlerError {
        match self {
            CommandError::Refused(message) => HandlerError::user(message),
            CommandError::Repo(error) => error.handler_error(),
            CommandError::Discord(RestError::Status { status: 403, .. }) => HandlerError::user(
                "Discord did not let me do that: I lack a permission there. An admin can check \
                 my role's permissions.",
            ),
            CommandError::Discord(error) => HandlerError::internal(error),
        }
    }
}

pub(crate) type CommandResult = Result<Response, CommandError>;

/// What every command handler works with. Cheap to clone.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("guild", &self.inner.settings.guild)
            .field("sync", &self.inner.sync)
            .finish_non_exhaustive()
    }
}

struct Inner {
    repo: Repo,
    discord: Discord,
    settings: DiscordSettings,
    clock: Arc<dyn Clock>,
    /// Tavern's public URL without its trailing `/`, for links.
    public_url: String,
    /// The campaigns' sync, run by `/sync` (`None` without Meetup groups).
    sync: Option<Syncer>,
    /// Who is in the topic voice channel, for `/topic`.
    occupancy: Arc<dyn VoiceOccupancy>,
    /// Tavern's own account, asked of Discord once ([`Commands::require_person`]).
    own_user: tokio::sync::OnceCell<UserId>,
}

impl Commands {
    /// The commands' shared state. `sync` is the job `/sync` runs.
    pub fn new(
        ctx: &feature::Context,
        settings: DiscordSettings,
        sync: Option<Syncer>,
    ) -> Commands {
        Commands {
            inner: Arc::new(Inner {
                repo: Repo::new(ctx.redis.clone()),
                discord: ctx.discord.clone(),
                settings,
                clock: ctx.clock.clone(),
                public_url: ctx.public_url.as_str().trim_end_matches('/').to_owned(),
                sync,
                occupancy: Arc::new(GatewayVoice::new(Repo::new(ctx.redis.clone()))),
                own_user: tokio::sync::OnceCell::new(),
            }),
        }
    }

    pub(crate) fn repo(&self) -> &Repo {
        &self.inner.repo
    }
    pub(crate) fn discord(&self) -> &Discord {
        &self.inner.discord
    }
    pub(crate) fn settings(&self) -> &DiscordSettings {
        &self.inner.settings
    }
    pub(crate) fn guild(&self) -> GuildId {
        self.inner.settings.guild
    }
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }
    pub(crate) fn syncer(&self) -> Option<&Syncer> {
        self.inner.sync.as_ref()
    }
    pub(crate) fn occupancy(&self) -> &dyn VoiceOccupancy {
        self.inner.occupancy.as_ref()
    }
    /// `{public url}{path}`; `path` starts with `/`.
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{path}", self.inner.public_url)
    }

    /// Refuses an interaction outside the community's guild.
    pub(crate) fn require_guild(
        &self,
        inv: &Invocation,
        command: &str,
    ) -> Result<(), CommandError> {
        if inv.guild_id == Some(self.guild()) {
            Ok(())
        } else {
            Err(CommandError::refused(format!(
                "`/{command}` works only in the community's server."
            )))
        }
    }

    /// The roles `user` holds in the community's guild (none when not a member).
    pub(crate) async fn roles_of(&self, user: UserId) -> Result<Vec<RoleId>, CommandError> {
        Ok(standing::roles_of(self.discord(), self.settings(), user).await?)
    }

    /// Whether `user` holds the admin role (nobody does when none is configured).
    pub(crate) async fn is_admin(&self, user: UserId) -> Result<bool, CommandError> {
        let Some(admin) = self.settings().admin_role else {
            return Ok(false);
        };
        Ok(self.roles_of(user).await?.contains(&admin))
    }

    /// Refuses whoever is not an admin.
    pub(crate) async fn require_admin(
        &self,
        inv: &Invocation,
        command: &str,
    ) -> Result<(), CommandError> {
        self.require_guild(inv, command)?;
        if self.is_admin(inv.actor.id).await? {
            return Ok(());
        }
        Err(CommandError::refused(match self.settings().admin_role {
            Some(role) => format!("`/{command}` is for admins: members with the <@&{role}> role."),
            None => format!("`/{command}` is for admins, and no admin role is configured."),
        }))
    }

    /// Refuses a bot where a person is meant (`/link`, `/players add`, `/hosts add`):
    /// a bot has no Meetup account, does not play and does not host, and linked or
    /// given a game's role it would be welcomed as a player. Any bot the command's
    /// options name (Discord resolves them, [`discord::Options::is_bot`]), and Tavern's
    /// own account however it is named. `only` says what only a person can be, e.g. "be
    /// linked to a Meetup account".
    pub(crate) async fn require_person(
        &self,
        inv: &Invocation,
        user: UserId,
        only: &str,
    ) -> Result<(), CommandError> {
        let own = self
            .inner
            .own_user
            .get_or_try_init(|| self.discord().current_user_id())
            .await?;
        if user == *own {
            return Err(CommandError::refused(format!(
                "<@{user}> is Tavern itself, a bot, not a person: only a person can {only}. \
                 Nothing was changed."
            )));
        }
        if inv.options().is_bot(user) {
            return Err(CommandError::refused(format!(
                "<@{user}> is a bot, not a person: only a person can {only}. Nothing was \
                 changed."
            )));
        }
        Ok(())
    }

    /// The game channel the command was used in; refused anywhere else.
    pub(crate) async fn game_channel(
        &self,
        inv: &Invocation,
        command: &str,
    ) -> Result<GameChannel, CommandError> {
        self.require_guild(inv, command)?;
        let channel = inv.channel_id;
        let Some(series) = self.repo().channel_series(channel).await? else {
            return Err(CommandError::refused(format!(
                "`/{command}` works only in a game channel."
            )));
        };
        let (guest, host) = self.repo().channel_roles(channel).await?;
        Ok(GameChannel {
            channel,
            series,
            guest,
            host,
        })
    }

    /// The game channel the command was used in, if the user is one of its hosts (or
    /// an admin: [`crate::standing`]); refused otherwise.
    pub(crate) async fn require_host(
        &self,
        inv: &Invocation,
        command: &str,
    ) -> Result<GameChannel, CommandError> {
        let game = self.game_channel(inv, command).await?;
        let roles = self.roles_of(inv.actor.id).await?;
        let standing = standing::standing(
            self.repo(),
            self.settings().admin_role,
            game.channel,
            &game.series,
            inv.actor.id,
            &roles,
        )
        .await?;
        if standing.runs_the_game() {
            return Ok(game);
        }
        Err(CommandError::refused(format!(
            "`/{command}` is for the hosts of this game (and admins)."
        )))
    }

    /// The Meetup hosts of every event of a series.
    pub(crate) async fn series_hosts(
        &self,
        series: &EventSeriesId,
    ) -> Result<Vec<MeetupUserId>, CommandError> {
        Ok(standing::series_hosts(self.repo(), series).await?)
    }

    /// Gives or takes a role, with "not a member" as a refusal in words.
    pub(crate) async fn set_role(
        &self,
        user: UserId,
        role: RoleId,
        give: bool,
    ) -> Result<(), CommandError> {
        let result = if give {
            self.discord().add_role(self.guild(), user, role).await
        } else {
            self.discord().remove_role(self.guild(), user, role).await
        };
        match result {
            Ok(()) => Ok(()),
            Err(RestError::Status { status: 404, .. }) => Err(CommandError::refused(format!(
                "<@{user}> is not a member of the server."
            ))),
            Err(error) => Err(error.into()),
        }
    }
}

/// A game channel and what belongs to it.
#[derive(Debug, Clone)]
pub(crate) struct GameChannel {
    pub channel: ChannelId,
    pub series: EventSeriesId,
    pub guest: Option<RoleId>,
    pub host: Option<RoleId>,
}

/// A handler that runs `run` with the commands' state.
fn handler<F, Fut>(commands: &Commands, run: F) -> Arc<dyn Handler>
where
    F: Fn(Commands, Invocation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CommandResult> + Send + 'static,
{
    feature::reply::handler(commands, run, CommandError::into_handler_error)
}

/// Every command, in the order they are registered.
pub fn specs() -> Vec<CommandSpec> {
    let mut specs = everyone::specs();
    specs.extend(hosts::specs());
    specs.extend(admin::specs());
    specs
}

/// Adds every campaigns command to `feature`. `/sync` runs the campaigns' whole sync
/// ([`Syncer`]: Meetup → Redis → Discord) built from `config`, at once, under the
/// sync guard that keeps one sync at a time; there is none without Meetup groups.
pub fn add(
    feature: Feature,
    ctx: &feature::Context,
    config: &CampaignsConfig,
    settings: DiscordSettings,
) -> Feature {
    let sync = config.has_groups().then(|| {
        Syncer::new(
            Repo::new(ctx.redis.clone()),
            config.clone(),
            ctx.clock.clone(),
            Some(ctx.discord.clone()),
        )
    });
    let commands = Commands::new(ctx, settings, sync);
    let mut feature = feature;
    for (spec, run) in everyone::handlers(&commands)
        .into_iter()
        .chain(hosts::handlers(&commands))
        .chain(admin::handlers(&commands))
    {
        feature = feature.command(spec, run);
    }
    feature
}

/// `<t:…:f>`: a time every reader sees in their own time zone.
pub(crate) fn when(t: DateTime<Utc>) -> String {
    format!("<t:{}:f>", t.timestamp())
}
