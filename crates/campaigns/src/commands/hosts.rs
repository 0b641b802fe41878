//! The hosts' commands, in their own game channel: `/players add|remove|list`,
//! `/hosts add|remove`, `/end-adventure` and `/schedule-session`.
//!
//! Adding someone by hand forgets an earlier manual removal (and, for a player, that
//! the sync gave them the guest role, so the sync never takes a role a host gave);
//! removing someone records it (`removed_users` / `removed_hosts`), so the sync does not
//! undo it. Adding someone who already holds the role, or removing someone who neither
//! holds it nor has it from Meetup, is answered privately and changes nothing; a host
//! is not removed as a player (the host role keeps them in). Tavern's own account is
//! not added as a player or a host ([`Commands::require_person`]).

use std::fmt::Write as _;
use std::sync::Arc;

use discord::{CommandSpec, Handler, Invocation, OptionSpec, Reply, Response, UserId};

use super::{CommandError, CommandResult, Commands, GameChannel, handler, when};
use crate::domain::EndAdventureError;
use crate::lifecycle::{alert_organisers, players_notified, refresh_expiration};
use crate::repo::{Removal, RepoError};

pub const PLAYERS: &str = "players";
pub const HOSTS: &str = "hosts";
pub const END_ADVENTURE: &str = "end-adventure";
pub const SCHEDULE_SESSION: &str = "schedule-session";

fn user_sub(name: &str, description: &str) -> OptionSpec {
    OptionSpec::subcommand(name, description).option(OptionSpec::user("user", "Who").required())
}

pub(super) fn specs() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new(PLAYERS, "The players of this game (hosts only)")
            .option(user_sub("add", "Give someone access to this game"))
            .option(user_sub(
                "remove",
                "Take someone's access to this game, even if they RSVP on Meetup",
            ))
            .option(OptionSpec::subcommand(
                "list",
                "Who RSVP'd, who hosts, who was removed",
            )),
        CommandSpec::new(HOSTS, "The hosts of this game (hosts only)")
            .option(user_sub("add", "Make someone a host of this game"))
            .option(user_sub(
                "remove",
                "Take someone's host role, even if they host on Meetup",
            )),
        CommandSpec::new(
            END_ADVENTURE,
            "End this game once its last session has begun; channels are deleted 8 hours later (hosts only)",
        ),
        CommandSpec::new(
            SCHEDULE_SESSION,
            "Schedule the next session of this game on Meetup (hosts only)",
        ),
    ]
    .into_iter()
    // A game channel is in the community's server.
    .map(CommandSpec::guild_only)
    .collect()
}

pub(super) fn handlers(c: &Commands) -> Vec<(CommandSpec, Arc<dyn Handler>)> {
    // In the order of `specs`.
    let run = [
        handler(c, players),
        handler(c, hosts),
        handler(c, end_adventure),
        handler(c, schedule_session),
    ];
    specs().into_iter().zip(run).collect()
}

/// The `user` option of an `add` / `remove` subcommand.
fn target(inv: &Invocation) -> Result<UserId, CommandError> {
    inv.options()
        .user("user")
        .ok_or_else(|| CommandError::refused("Say whom: the `user` option is missing."))
}

async fn players(c: Commands, inv: Invocation) -> CommandResult {
    let game = c.require_host(&inv, PLAYERS).await?;
    let options = inv.options();
    match options.sub() {
        Some("add") => {
            let user = target(&inv)?;
            c.require_person(&inv, user, "play in a game").await?;
            let role = guest_role(&game)?;
            if c.roles_of(user).await?.contains(&role) {
                return Ok(private(format!("<@{user}> already plays in this game.")));
            }
            // Redis first: a role given while the sync still counts it as its own
            // would be taken by the next sync.
            c.repo().add_player_by_hand(game.channel, user).await?;
            c.set_role(user, role, true).await?;
            tracing::info!(channel = %game.channel, %user, by = %inv.actor.id, "player added by hand");
            Ok(Response::Message(
                Reply::text(format!(
                    "<@{user}> joins this game (added by <@{}>).",
                    inv.actor.id
                ))
                .ping(user),
            ))
        }
        Some("remove") => {
            let user = target(&inv)?;
            let role = guest_role(&game)?;
            let roles = c.roles_of(user).await?;
            if game.host.is_some_and(|host| roles.contains(&host)) {
                return Ok(private(format!(
                    "<@{user}> hosts this game, so they stay in it through the host role: \
                     remove them as host with `/{HOSTS} remove` first."
                )));
            }
            let rsvp = rsvpd(&c, &game, user).await?;
            if !roles.contains(&role) && !rsvp {
                return Ok(private(format!("<@{user}> does not play in this game.")));
            }
            c.repo()
                .mark_removed(game.channel, Removal::User, user)
                .await?;
            c.set_role(user, role, false).await?;
            tracing::info!(channel = %game.channel, %user, by = %inv.actor.id, "player removed by hand");
            // What the removal keeps from the sync depends on why they played.
            let text = if rsvp {
                format!(
                    "<@{user}> was removed from this game; they RSVP'd on Meetup, but the \
                     sync will not add them back."
                )
            } else {
                format!(
                    "<@{user}> was removed from this game. They have no RSVP on Meetup; \
                     should they RSVP later, the sync will not add them."
                )
            };
            Ok(Response::Message(Reply::text(text)))
        }
        Some("list") => list(&c, &game).await,
        _ => Err(CommandError::refused(
            "Use `/players add`, `/players remove` or `/players list`.",
        )),
    }
}

async fn hosts(c: Commands, inv: Invocation) -> CommandResult {
    let game = c.require_host(&inv, HOSTS).await?;
    let Some(role) = game.host else {
        return Err(CommandError::refused(
            "This game has no host role yet; the next sync makes it.",
        ));
    };
    let options = inv.options();
    match options.sub() {
        Some("add") => {
            let user = target(&inv)?;
            c.require_person(&inv, user, "host a game").await?;
            if c.roles_of(user).await?.contains(&role) {
                return Ok(private(format!("<@{user}> already hosts this game.")));
            }
            c.set_role(user, role, true).await?;
            c.repo()
                .unmark_removed(game.channel, Removal::Host, user)
                .await?;
            tracing::info!(channel = %game.channel, %user, by = %inv.actor.id, "host added by hand");
            Ok(Response::Message(
                Reply::text(format!(
                    "<@{user}> is now a host of this game (added by <@{}>).",
                    inv.actor.id
                ))
                .ping(user),
            ))
        }
        Some("remove") => {
            let user = target(&inv)?;
            let on_meetup = meetup_host(&c, &game, user).await?;
            if !c.roles_of(user).await?.contains(&role) && !on_meetup {
                return Ok(private(format!("<@{user}> is not a host of this game.")));
            }
            c.repo()
                .mark_removed(game.channel, Removal::Host, user)
                .await?;
            c.set_role(user, role, false).await?;
            tracing::info!(channel = %game.channel, %user, by = %inv.actor.id, "host removed by hand");
            // What the removal keeps from the sync depends on why they hosted.
            let text = if on_meetup {
                format!(
                    "<@{user}> is no longer a host of this game; they host it on Meetup, but \
                     the sync will not make them a host again."
                )
            } else {
                format!(
                    "<@{user}> is no longer a host of this game. They do not host it on \
                     Meetup; should they host a session there later, the sync will not make \
                     them a host."
                )
            };
            Ok(Response::Message(Reply::text(text)))
        }
        _ => Err(CommandError::refused(
            "Use `/hosts add` or `/hosts remove`.",
        )),
    }
}

/// A private answer that changes nothing and posts nothing in the channel.
fn private(text: String) -> Response {
    Response::Message(Reply::private(text))
}

/// Whether `user`'s linked Meetup account RSVP'd to one of the game's events and no
/// host removed them: the sync gives them the player role, so removing them counts.
async fn rsvpd(c: &Commands, game: &GameChannel, user: UserId) -> Result<bool, CommandError> {
    let repo = c.repo();
    let Some(meetup) = repo.meetup_user_of(user).await? else {
        return Ok(false);
    };
    if repo
        .removed(game.channel, Removal::User)
        .await?
        .contains(&user)
    {
        return Ok(false);
    }
    for event in repo.series_events(&game.series).await? {
        if repo.event_users(&event).await?.contains(&meetup) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `user`'s linked Meetup account hosts one of the game's events and no host
/// removed them: they run the game without the host role ([`crate::standing`]).
async fn meetup_host(c: &Commands, game: &GameChannel, user: UserId) -> Result<bool, CommandError> {
    let repo = c.repo();
    let Some(meetup) = repo.meetup_user_of(user).await? else {
        return Ok(false);
    };
    Ok(c.series_hosts(&game.series).await?.contains(&meetup)
        && !repo
            .removed(game.channel, Removal::Host)
            .await?
            .contains(&user))
}

fn guest_role(game: &GameChannel) -> Result<discord::RoleId, CommandError> {
    game.guest.ok_or_else(|| {
        CommandError::refused("This game has no player role yet; the next sync makes it.")
    })
}

/// `/players list`: a private summary from what the sync stored (RSVPs, hosts, the
/// names Meetup gave), the members holding the player or host role Tavern did not give
/// (added by hand: the guild's member list, one Discord request per 1,000 members,
/// which the sync reads too) and the manual removals. Someone removed is listed only
/// as removed. It mentions people without notifying them.
async fn list(c: &Commands, game: &GameChannel) -> CommandResult {
    let repo = c.repo();
    let mut rsvps = Vec::new();
    for event in repo.series_events(&game.series).await? {
        for user in repo.event_users(&event).await? {
            if !rsvps.contains(&user) {
                rsvps.push(user);
            }
        }
    }
    let meetup_hosts = c.series_hosts(&game.series).await?;
    let removed_players = repo.removed(game.channel, Removal::User).await?;
    let removed_hosts = repo.removed(game.channel, Removal::Host).await?;
    let everyone: Vec<_> = rsvps.iter().chain(&meetup_hosts).copied().collect();
    let names = repo.meetup_names(&everyone).await?;
    let unlinked = |meetup: crate::domain::MeetupUserId| match names.get(&meetup) {
        Some(name) => format!("{name} (Meetup member {meetup}, not linked)"),
        None => format!("Meetup member {meetup} (not linked)"),
    };
    let members = match (game.guest, game.host) {
        (None, None) => None,
        _ => Some(c.discord().guild_members(c.guild()).await.inspect_err(|e| {
            tracing::warn!(error = %e, channel = %game.channel, "could not list the guild's members for /players list");
        })),
    };
    // Without the member list, those holding a role by hand are named by their role,
    // and a last line says why.
    let holders = |role: discord::RoleId| -> Result<Vec<UserId>, String> {
        match &members {
            Some(Ok(members)) => Ok(members
                .iter()
                .filter(|m| m.roles.contains(&role))
                .map(|m| m.user)
                .collect()),
            Some(Err(_)) => Err(format!("the members with the <@&{role}> role")),
            None => Ok(Vec::new()),
        }
    };
    let joined = |names: Vec<String>| {
        if names.is_empty() {
            "nobody".to_owned()
        } else {
            names.join(", ")
        }
    };
    let mut text = String::new();

    // Players: who RSVP'd yes, then who holds the role without an RSVP.
    let mut named: Vec<UserId> = Vec::new();
    let mut players = Vec::new();
    for meetup in &rsvps {
        match repo.discord_user_of(*meetup).await? {
            Some(user) => {
                named.push(user);
                if !removed_players.contains(&user) {
                    players.push(format!("<@{user}>"));
                }
            }
            None => players.push(unlinked(*meetup)),
        }
    }
    let _ = writeln!(text, "**Players (RSVP'd yes)**: {}", joined(players));

    // Hosts: the Meetup hosts not removed, then who holds the role otherwise.
    let mut hosts = Vec::new();
    let mut meetup_linked: Vec<UserId> = Vec::new();
    for meetup in &meetup_hosts {
        match repo.discord_user_of(*meetup).await? {
            Some(user) => {
                named.push(user);
                meetup_linked.push(user);
                if !removed_hosts.contains(&user) {
                    hosts.push(format!("<@{user}> (on Meetup)"));
                }
            }
            None => hosts.push(unlinked(*meetup)),
        }
    }
    if let Some(guest) = game.guest {
        let by_hand = match holders(guest) {
            Ok(users) => joined(
                users
                    .into_iter()
                    .filter(|u| !named.contains(u))
                    .map(|u| format!("<@{u}>"))
                    .collect(),
            ),
            Err(unlisted) => unlisted,
        };
        let _ = writeln!(
            text,
            "**Added by hand** (the player role without an RSVP): {by_hand}"
        );
    }
    if let Some(host) = game.host {
        match holders(host) {
            Ok(users) => hosts.extend(
                users
                    .into_iter()
                    .filter(|u| !meetup_linked.contains(u))
                    .map(|u| format!("<@{u}> (added by hand)")),
            ),
            Err(unlisted) => hosts.push(format!("and {unlisted} (added by hand)")),
        }
    }
    let _ = writeln!(text, "**Hosts**: {}", joined(hosts));
    for (title, removed) in [
        ("Removed as players", &removed_players),
        ("Removed as hosts", &removed_hosts),
    ] {
        if !removed.is_empty() {
            let names: Vec<String> = removed.iter().map(|u| format!("<@{u}>")).collect();
            let _ = writeln!(text, "**{title}**: {}", names.join(", "));
        }
    }
    if let Some(Err(error)) = &members {
        let why = if error.is_missing_permission() {
            "Discord would not list this server's members to Tavern: turning on the Server \
             Members intent of Tavern's bot in the Discord Developer Portal lets it name them."
        } else {
            "Discord would not list this server's members just now; try again shortly to see \
             them by name."
        };
        let _ = writeln!(text, "_{why}_");
    }
    Ok(Response::Message(Reply::private(text.trim_end())))
}

/// `/end-adventure`: schedules the deletion of the channels 8 hours from now.
async fn end_adventure(c: Commands, inv: Invocation) -> CommandResult {
    let game = c.require_host(&inv, END_ADVENTURE).await?;
    let now = c.now();
    refresh_expiration(c.repo(), game.channel, &game.series, now).await?;
    let at = c
        .repo()
        .end_adventure(game.channel, now)
        .await
        .map_err(end_adventure_refusal)?;
    let voice = c.repo().series_voice_channel(&game.series).await?;
    let what = if voice.is_some() {
        "This channel and its voice channel"
    } else {
        "This channel"
    };
    alert_organisers(
        c.discord(),
        c.settings(),
        &format!(
            "<@{}> ended the game in <#{}>; its channels will be deleted at {}.",
            inv.actor.id,
            game.channel,
            when(at)
        ),
    )
    .await;
    Ok(Response::Message(players_notified(
        format!(
            "This game is over. {what} will be deleted at {} (<t:{}:R>): save what you want \
             to keep. Thanks for playing!",
            when(at),
            at.timestamp()
        ),
        game.guest,
    )))
}

/// `/end-adventure`'s refusals in words, with the times as Discord shows them.
fn end_adventure_refusal(error: RepoError) -> CommandError {
    let RepoError::EndAdventure(refusal) = error else {
        return error.into();
    };
    CommandError::refused(match refusal {
        EndAdventureError::NotExpired { expiration } => format!(
            "This game's last session is on <t:{0}:F> (<t:{0}:R>). `/{END_ADVENTURE}` works \
             once it has started.",
            expiration.timestamp()
        ),
        EndAdventureError::NoExpiration => format!(
            "This game has no end time yet: the next sync sets it. Try `/{END_ADVENTURE}` \
             again after it."
        ),
        EndAdventureError::AlreadyScheduled { deletion } => format!(
            "This game has already ended: its channels are already scheduled for deletion \
             on {} (<t:{}:R>).",
            when(deletion),
            deletion.timestamp()
        ),
    })
}

/// `/schedule-session`: a private link to the form that schedules the next session.
async fn schedule_session(c: Commands, inv: Invocation) -> CommandResult {
    let game = c.require_host(&inv, SCHEDULE_SESSION).await?;
    let url = c.link(&format!("/campaigns/schedule/{}", game.channel));
    Ok(Response::Message(Reply::private(format!(
        "Schedule the next session here:\n{url}"
    ))))
}
