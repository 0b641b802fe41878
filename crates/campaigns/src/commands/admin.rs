//! The admins' commands: `/snooze`, `/manage-channel`, `/link`, `/unlink`, `/whois`
//! and `/sync`. The `meetup-id` options of `/link` and `/whois` autocomplete from the
//! Meetup members Tavern knows (for admins only).

use std::sync::Arc;

use discord::{Choice, CommandSpec, Handler, Invocation, OptionSpec, Reply, Response};

use super::{CommandError, CommandResult, Commands, handler, when};
use crate::domain::{MeetupUserId, SnoozeDays};
use crate::repo::{LinkOutcome, RepoError};
use crate::sync::SyncError;

pub const SNOOZE: &str = "snooze";
pub const MANAGE_CHANNEL: &str = "manage-channel";
pub const LINK: &str = "link";
pub const UNLINK: &str = "unlink";
pub const WHOIS: &str = "whois";
pub const SYNC: &str = "sync";

pub(super) fn specs() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new(
            SNOOZE,
            "Pause this game channel's expiration reminders (admins only)",
        )
        .option(
            OptionSpec::integer(
                "days",
                "For how many days: 0 clears the snooze, at most 180",
            )
            .required()
            .range(0, i64::from(SnoozeDays::MAX)),
        ),
        CommandSpec::new(
            MANAGE_CHANNEL,
            "Let a Meetup event's [channel <id>] take this channel over for its game, or not (admins only)",
        )
        .option(OptionSpec::boolean(
            "managed",
            "Managed (the default) or not any more",
        )),
        CommandSpec::new(
            LINK,
            "Link a member to a Meetup account by hand (admins only)",
        )
        .option(OptionSpec::user("user", "The Discord member").required())
        .option(
            OptionSpec::string("meetup-id", "Their Meetup member id")
                .required()
                .autocomplete(),
        )
        // It asks Meetup first: the wait, too, stays between the admin and Tavern.
        .private(),
        CommandSpec::new(UNLINK, "Unlink a member's Meetup account (admins only)")
            .option(OptionSpec::user("user", "The Discord member").required()),
        CommandSpec::new(
            WHOIS,
            "Whose Meetup account is whose: give a member or a Meetup id (admins only)",
        )
        .option(OptionSpec::user("user", "A Discord member"))
        .option(OptionSpec::string("meetup-id", "A Meetup member id").autocomplete())
        // Who is whom stays between the admin and Tavern, even when Discord is slow.
        .private(),
        CommandSpec::new(SYNC, "Sync Meetup events now (admins only)"),
    ]
    .into_iter()
    // Admins are a role of the community's server.
    .map(CommandSpec::guild_only)
    .collect()
}

pub(super) fn handlers(c: &Commands) -> Vec<(CommandSpec, Arc<dyn Handler>)> {
    // In the order of `specs`.
    let run = [
        handler(c, snooze),
        handler(c, manage_channel),
        handler(c, link),
        handler(c, unlink),
        handler(c, whois),
        handler(c, sync),
    ];
    specs().into_iter().zip(run).collect()
}

fn meetup_id(inv: &Invocation) -> Result<Option<MeetupUserId>, CommandError> {
    inv.options()
        .str("meetup-id")
        .map(|raw| {
            MeetupUserId::parse(raw.trim())
                .map_err(|e| CommandError::refused(format!("That is not a Meetup member id: {e}.")))
        })
        .transpose()
}

/// `/snooze days`: no reminders in this game channel for that many days.
async fn snooze(c: Commands, inv: Invocation) -> CommandResult {
    c.require_admin(&inv, SNOOZE).await?;
    let game = c.game_channel(&inv, SNOOZE).await?;
    let days = inv.options().int("days").unwrap_or(-1);
    let days = SnoozeDays::new(days).map_err(|e| CommandError::refused(e.to_string()))?;
    let until = days.until(c.now());
    c.repo().set_snooze(game.channel, until).await?;
    tracing::info!(channel = %game.channel, days = days.days(), by = %inv.actor.id, "reminders snoozed");
    let text = match until {
        Some(until) => format!("Expiration reminders are snoozed until {}.", when(until)),
        None => "The snooze is cleared: expiration reminders are back.".to_owned(),
    };
    Ok(Response::Message(Reply::text(text)))
}

/// `/manage-channel [managed]`: adds this channel to `managed_discord_channels` or
/// takes it out. A managed channel may be taken over by a game (`[channel <id>]`) and
/// is never deleted with it, so one a game is using stays managed until the game ends.
/// A channel Tavern created for a game, text or voice, is never marked: marked, it
/// would outlive its game, and it could not be unmarked while the game runs. Only a
/// text channel is marked: a game's channel carries its announcements, welcomes and
/// topic, and the sync takes over nothing else (a game whose `[channel]` names a voice
/// channel would be skipped), so what is marked is what is kept when its game ends.
/// Unmarking works on any channel.
async fn manage_channel(c: Commands, inv: Invocation) -> CommandResult {
    c.require_admin(&inv, MANAGE_CHANNEL).await?;
    let managed = inv.options().bool("managed").unwrap_or(true);
    let is_managed = c.repo().is_managed_channel(inv.channel_id).await?;
    let in_a_game = c.repo().channel_series(inv.channel_id).await?.is_some();
    if managed && in_a_game && !is_managed {
        return Err(CommandError::refused(format!(
            "<#{}> is a game's channel that Tavern created: Tavern already manages it and \
             deletes it when the game ends, so it cannot be marked with `/{MANAGE_CHANNEL}`.",
            inv.channel_id
        )));
    }
    if managed {
        if c.repo()
            .voice_channel_series(inv.channel_id)
            .await?
            .is_some()
        {
            return Err(CommandError::refused(format!(
                "<#{}> is a game's voice channel that Tavern created: Tavern already manages \
                 it and deletes it when the game ends, so it cannot be marked with \
                 `/{MANAGE_CHANNEL}`.",
                inv.channel_id
            )));
        }
        text_channel(&c, inv.channel_id, is_managed).await?;
    }
    if !managed && is_managed && in_a_game {
        return Err(CommandError::refused(format!(
            "<#{}> stays managed while the game that took it over runs: unmarked, it would \
             be deleted when the game ends. Once the game has ended, try again.",
            inv.channel_id
        )));
    }
    c.repo()
        .set_managed_channel(inv.channel_id, managed)
        .await?;
    tracing::info!(channel = %inv.channel_id, managed, by = %inv.actor.id, "managed channel changed");
    let text = if managed {
        format!(
            "<#{0}> is now managed by the bot: a Meetup event whose description says \
             `[channel {0}]` makes it that game's channel (its own permissions, topic and \
             category stay; it is kept when the game ends).",
            inv.channel_id
        )
    } else {
        format!(
            "<#{0}> is no longer managed by the bot: a Meetup event's `[channel {0}]` is \
             ignored.",
            inv.channel_id
        )
    };
    Ok(Response::Message(Reply::private(text)))
}

/// Refuses to mark `channel` unless Discord says it is a text channel: a Meetup
/// event's `[channel <id>]` makes the channel its game's text channel, and the sync
/// takes over no other kind. `marked`: it is in `managed_discord_channels` already
/// (from before this was checked), so the refusal says how to unmark it.
async fn text_channel(
    c: &Commands,
    channel: discord::ChannelId,
    marked: bool,
) -> Result<(), CommandError> {
    use discord::model::ChannelType;
    let kind = match c.discord().channel(channel).await? {
        Some(info) => info.kind,
        None => {
            return Err(CommandError::refused(format!(
                "Discord says channel {channel} does not exist, so it cannot be marked."
            )));
        }
    };
    if kind == ChannelType::Text {
        return Ok(());
    }
    let what = match kind {
        ChannelType::Voice => "a voice channel",
        ChannelType::Stage => "a stage channel",
        ChannelType::Announcement => "an announcement channel",
        ChannelType::Forum => "a forum",
        ChannelType::Media => "a media channel",
        ChannelType::Thread => "a thread",
        ChannelType::Category => "a category",
        ChannelType::Text | ChannelType::Other(_) => "not a text channel",
    };
    let unmark = if marked {
        format!(" It was marked before; `/{MANAGE_CHANNEL} managed:false` unmarks it.")
    } else {
        String::new()
    };
    Err(CommandError::refused(format!(
        "<#{channel}> is {what}. A Meetup event's `[channel {channel}]` makes a channel its \
         game's text channel (announcements, welcomes, the next session in its topic), and \
         only a text channel can be that, so only a text channel can be marked with \
         `/{MANAGE_CHANNEL}`.{unmark}"
    )))
}

/// Most suggestions Discord shows.
const MAX_CHOICES: usize = 25;

/// Suggestions for a `meetup-id` being typed: Meetup members whose id starts with
/// what was typed, `linked` ones first when `linked_first` (for `/whois`), else the
/// unlinked ones (`/link`: who RSVP'd or hosts and has no Discord account linked yet).
/// Only admins get any (the ids are members' data).
async fn meetup_id_choices(
    c: &Commands,
    inv: &Invocation,
    typed: &str,
    linked_first: bool,
) -> CommandResult {
    if !c.is_admin(inv.actor.id).await? {
        return Ok(Response::Choices(Vec::new()));
    }
    let directory = c.repo().meetup_directory().await?;
    let typed = typed.trim();
    let label = |user: &MeetupUserId, linked: bool| {
        let what = if linked { "linked" } else { "not linked" };
        Choice::new(format!("{user} ({what})"), user.to_string())
    };
    let (first, second) = if linked_first {
        (&directory.linked, &directory.unlinked)
    } else {
        (&directory.unlinked, &directory.linked)
    };
    let choices = first
        .iter()
        .map(|u| label(u, linked_first))
        .chain(second.iter().map(|u| label(u, !linked_first)))
        .filter(|choice| choice.value.starts_with(typed))
        .take(MAX_CHOICES)
        .collect();
    Ok(Response::Choices(choices))
}

/// `/link user meetup-id`: links only a Meetup member id Meetup has (a member of one
/// of the configured groups, [`known_to_meetup`]); what Tavern refuses by itself (either
/// side linked elsewhere) is said first, without asking Meetup.
async fn link(c: Commands, inv: Invocation) -> CommandResult {
    if let Some((_, typed)) = inv.autocompleting() {
        return meetup_id_choices(&c, &inv, typed, false).await;
    }
    c.require_admin(&inv, LINK).await?;
    let user = inv
        .options()
        .user("user")
        .ok_or_else(|| CommandError::refused("Say whom: the `user` option is missing."))?;
    let meetup = meetup_id(&inv)?.ok_or_else(|| {
        CommandError::refused("Say which Meetup account: the `meetup-id` option is missing.")
    })?;
    c.require_person(&inv, user, "be linked to a Meetup account")
        .await?;
    let conflict = |e: RepoError| match e {
        RepoError::MeetupUserLinkedElsewhere { meetup, discord } => CommandError::refused(format!(
            "Meetup member {meetup} is already linked to <@{discord}>. To link it to <@{user}>, \
             `/{UNLINK}` <@{discord}> first."
        )),
        RepoError::DiscordUserLinkedElsewhere { discord, meetup } => {
            CommandError::refused(format!(
                "<@{discord}> is already linked to Meetup member {meetup}. To link another \
                 Meetup account, `/{UNLINK}` <@{discord}> first."
            ))
        }
        other => other.into(),
    };
    // What Tavern itself refuses is said without asking Meetup (the link checks it
    // again, in one step with the writes).
    let holder = c.repo().discord_user_of(meetup).await?;
    if let Some(discord) = holder.filter(|d| *d != user) {
        return Err(conflict(RepoError::MeetupUserLinkedElsewhere {
            meetup,
            discord,
        }));
    }
    if let Some(other) = c
        .repo()
        .meetup_user_of(user)
        .await?
        .filter(|m| *m != meetup)
    {
        return Err(conflict(RepoError::DiscordUserLinkedElsewhere {
            discord: user,
            meetup: other,
        }));
    }
    if holder != Some(user) {
        known_to_meetup(&c, meetup).await?;
    }
    let outcome = c.repo().link(meetup, user, None).await.map_err(conflict)?;
    let text = match outcome {
        LinkOutcome::Linked => format!("<@{user}> is now linked to Meetup member {meetup}."),
        LinkOutcome::AlreadyLinked => {
            format!("<@{user}> was already linked to Meetup member {meetup}.")
        }
    };
    Ok(Response::Message(Reply::private(text)))
}

/// Refuses a Meetup member id Meetup does not know (asked of the configured groups,
/// [`crate::jobs::Syncer::find_member`]), or when Meetup cannot be asked or did not
/// answer: `/link` stores only a link to a member Meetup has.
async fn known_to_meetup(c: &Commands, meetup: MeetupUserId) -> Result<(), CommandError> {
    let Some(syncer) = c.syncer() else {
        return Err(CommandError::refused(format!(
            "No Meetup group is configured, so Tavern cannot check Meetup member {meetup} \
             with Meetup. Nothing was linked."
        )));
    };
    let groups = syncer
        .groups()
        .iter()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>();
    let groups = format!(
        "{} ({})",
        if groups.len() == 1 { "group" } else { "groups" },
        groups.join(", ")
    );
    match syncer.find_member(meetup).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(CommandError::refused(format!(
            "Meetup has no member {meetup} in the community's Meetup {groups}. Check \
             the id: it is the number in the address of their Meetup profile. Nothing was \
             linked."
        ))),
        Err(SyncError::Repo(e)) => Err(e.into()),
        Err(SyncError::NoOrganizerToken) => Err(CommandError::refused(format!(
            "Tavern cannot check Meetup member {meetup} with Meetup before an organiser \
             authorises it: {}. Nothing was linked.",
            c.link(crate::web::ORGANISER_PATH)
        ))),
        Err(e) if e.needs_authorisation() => Err(CommandError::refused(format!(
            "Meetup no longer accepts the organiser's authorisation, so Tavern cannot check \
             Meetup member {meetup}; an organiser can authorise Tavern again: {}. Nothing \
             was linked.",
            c.link(crate::web::ORGANISER_PATH)
        ))),
        Err(SyncError::GroupsFailed(failures)) => {
            let why = failures
                .first()
                .map(|f| f.error.clone())
                .unwrap_or_default();
            tracing::warn!(%meetup, %why, "could not check a Meetup member id for /link");
            Err(CommandError::refused(format!(
                "Meetup could not be reached to check member {meetup} ({why}). Nothing was \
                 linked; try again in a moment."
            )))
        }
        Err(e) => {
            tracing::warn!(%meetup, error = %e, "could not check a Meetup member id for /link");
            Err(CommandError::refused(format!(
                "Tavern could not check Meetup member {meetup} with Meetup: {e}. Nothing was \
                 linked."
            )))
        }
    }
}

/// `/unlink user`.
async fn unlink(c: Commands, inv: Invocation) -> CommandResult {
    c.require_admin(&inv, UNLINK).await?;
    let user = inv
        .options()
        .user("user")
        .ok_or_else(|| CommandError::refused("Say whom: the `user` option is missing."))?;
    let text = match c.repo().unlink_discord_user(user).await? {
        Some(meetup) => format!("<@{user}> is no longer linked to Meetup member {meetup}."),
        None => format!("<@{user}> was not linked to a Meetup account."),
    };
    Ok(Response::Message(Reply::private(text)))
}

/// `/whois user` or `/whois meetup-id`.
async fn whois(c: Commands, inv: Invocation) -> CommandResult {
    if let Some((_, typed)) = inv.autocompleting() {
        return meetup_id_choices(&c, &inv, typed, true).await;
    }
    c.require_admin(&inv, WHOIS).await?;
    let user = inv.options().user("user");
    let meetup = meetup_id(&inv)?;
    let text = match (user, meetup) {
        (Some(user), None) => match c.repo().meetup_user_of(user).await? {
            Some(meetup) => format!("<@{user}> is Meetup member {meetup} ({}).", profile(meetup)),
            None => format!("<@{user}> has not linked a Meetup account."),
        },
        (None, Some(meetup)) => match c.repo().discord_user_of(meetup).await? {
            Some(user) => format!("Meetup member {meetup} ({}) is <@{user}>.", profile(meetup)),
            None => format!("Meetup member {meetup} is not linked to a Discord account."),
        },
        _ => {
            return Err(CommandError::refused(
                "Give exactly one of `user` or `meetup-id`.",
            ));
        }
    };
    Ok(Response::Message(Reply::private(text)))
}

fn profile(meetup: MeetupUserId) -> String {
    format!("{}{meetup}/", crate::config::MEETUP_PROFILE_BASE)
}

/// `/sync`: runs the campaigns' sync now and says what it did
/// ([`crate::jobs::FullReport::summary`]).
async fn sync(c: Commands, inv: Invocation) -> CommandResult {
    c.require_admin(&inv, SYNC).await?;
    let Some(syncer) = c.syncer() else {
        return Err(CommandError::refused(
            "No Meetup group is configured, so there is nothing to sync.",
        ));
    };
    tracing::info!(by = %inv.actor.id, "sync asked for by hand");
    match syncer.run_report().await {
        Ok(report) => Ok(Response::Message(Reply::private(report.summary()))),
        Err(crate::jobs::FullSyncError::Meetup(crate::SyncError::NoOrganizerToken)) => {
            Ok(Response::Message(Reply::private(format!(
                "No organiser has authorised Tavern with Meetup yet, so there is nothing to \
                 sync. An organiser of the Meetup group can do it here: {}",
                c.link(crate::web::ORGANISER_PATH)
            ))))
        }
        Err(crate::jobs::FullSyncError::Busy) => Ok(Response::Message(Reply::private(
            "A sync is running right now (the schedule's, or another admin's); its changes \
             show in a moment.",
        ))),
        Err(error) => {
            tracing::error!(%error, "sync asked for by hand failed");
            Ok(Response::Message(Reply::private(format!(
                "The sync failed: {error}"
            ))))
        }
    }
}
