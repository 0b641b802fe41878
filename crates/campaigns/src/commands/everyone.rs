//! The commands everybody may use: `/link-meetup`, `/unlink-meetup` and `/topic`.

use std::sync::Arc;

use discord::{CommandSpec, Handler, Invocation, OptionSpec, Reply, Response};

use super::{CommandError, CommandResult, Commands, handler};
use crate::repo::LINKING_ID_TTL_SECS;

pub const LINK_MEETUP: &str = "link-meetup";
pub const UNLINK_MEETUP: &str = "unlink-meetup";
pub const TOPIC: &str = "topic";

pub(super) fn specs() -> Vec<CommandSpec> {
    vec![
        // The one-time link must never be shown publicly, even when Tavern is slow.
        CommandSpec::new(
            LINK_MEETUP,
            "Link your Meetup account, so your RSVPs open your games' channels",
        )
        .private(),
        CommandSpec::new(UNLINK_MEETUP, "Unlink your Meetup account"),
        CommandSpec::new(
            TOPIC,
            "Rename the topic voice channel to what you want to talk about",
        )
        .option(OptionSpec::string("topic", "The new name: 2 to 100 characters").required())
        // The topic channel is a voice channel of the community's server.
        .guild_only(),
    ]
}

pub(super) fn handlers(c: &Commands) -> Vec<(CommandSpec, Arc<dyn Handler>)> {
    // In the order of `specs`.
    let run = [
        handler(c, link_meetup),
        handler(c, unlink_meetup),
        handler(c, crate::topic::topic_command),
    ];
    specs().into_iter().zip(run).collect()
}

/// `/link-meetup`: a private one-time link to the linking page.
async fn link_meetup(c: Commands, inv: Invocation) -> CommandResult {
    let user = inv.actor.id;
    if let Some(meetup) = c.repo().meetup_user_of(user).await? {
        return Err(CommandError::refused(format!(
            "Your Discord account is already linked to Meetup member {meetup}. Use \
             `/{UNLINK_MEETUP}` first to link another Meetup account."
        )));
    }
    let id = c
        .repo()
        .create_named_linking_id(user, &inv.actor.name)
        .await?;
    let url = c.link(&format!("/link-meetup/{}", id.expose()));
    let hours = LINKING_ID_TTL_SECS / 3600;
    Ok(Response::Message(Reply::private(format!(
        "Open this link to link your Meetup account (it works once, for {hours} hours, and \
         only for you; do not share it):\n{url}"
    ))))
}

/// `/unlink-meetup`: removes the caller's link.
async fn unlink_meetup(c: Commands, inv: Invocation) -> CommandResult {
    let text = match c.repo().unlink_discord_user(inv.actor.id).await? {
        Some(meetup) => format!(
            "Your Discord account is no longer linked to Meetup member {meetup}. The roles \
             you have stay until a host or the sync changes them."
        ),
        None => "Your Discord account was not linked to a Meetup account.".to_owned(),
    };
    Ok(Response::Message(Reply::private(text)))
}
