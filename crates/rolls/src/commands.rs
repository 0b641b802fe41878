//! Discord handlers: parse options, run an operation through the controller, render
//! its model. The initiative tracker is a message per channel that is edited in
//! place; its id lives in `init_{channel}`.

use std::sync::Arc;

use discord::{
    Action, ButtonStyle, CommandSpec, Component, Discord, Handler, Invocation, OptionSpec, Reply,
    Response,
};

use crate::RollsError;
use crate::domain::{self, Authenticated, ChannelId, UserId};
use crate::ops::{
    CharacterOp, CharactersModel, Controller, HelpOp, InitOp, StatsOp, TrackerModel, TurnAt,
};

mod initiative;

/// The component prefix (`rolls:...`).
pub const PREFIX: &str = "rolls";
const JOIN: &str = "rolls:init:join";
/// `rolls:init:next:{round}:{turn}`: the position the tracker was shown at, so a
/// press after the turn moved (a double press, two players at once) does not move
/// it again. A button posted before it carried one (`rolls:init:next` alone) moves
/// the turn from wherever it is.
const NEXT: &str = "rolls:init:next";
/// `rolls:active:{owner}:{name}`.
const ACTIVE: &str = "rolls:active";

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub controller: Controller,
    pub discord: Discord,
    /// Who may change a tracker over REST (members of the channel's guild).
    pub membership: crate::membership::Membership,
    /// Every feature's commands, for `/help`.
    pub catalogue: feature::Catalogue,
}

fn user_of(inv: &Invocation) -> UserId {
    inv.actor.id
}

/// The one who acted: Discord authenticated them.
pub(crate) fn caller(inv: &Invocation) -> Authenticated {
    Authenticated::by_discord(inv)
}

/// Said under a reply that was cut to fit Discord.
pub const CUT_NOTE: &str =
    "✂️ *Cut to fit Discord's 2,000 characters; the REST API under `/api/rolls/` answers in full.*";
/// Said under a roll that was cut: its dice cannot be fetched again, but a shorter
/// form or the REST API can show a whole roll.
pub const CUT_ROLL_NOTE: &str = "✂️ *Cut to fit Discord's 2,000 characters. Put `s` before the roll for totals only; the REST API (`GET /api/rolls/roll`) answers with every die.*";

/// `text` cut to one Discord message, with `note` when it was cut.
pub fn fit(text: &str, note: &str) -> String {
    domain::fit_message(text, domain::DISCORD_MESSAGE_MAX, note)
}

/// A public reply that fits in one message.
fn public(text: &str) -> Reply {
    Reply::text(fit(text, CUT_NOTE))
}

/// A private reply that fits in one message.
fn private(text: &str) -> Reply {
    Reply::private(fit(text, CUT_NOTE))
}

fn channel_of(inv: &Invocation) -> ChannelId {
    inv.channel_id
}

/// A handler running `f` with the handlers' context, its refusals answered the one way
/// ([`RollsError::into_handler_error`]), built by the kit like every feature's.
pub(crate) fn wrap<F, Fut>(ctx: &Ctx, f: F) -> Arc<dyn Handler>
where
    F: Fn(Ctx, Invocation) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response, RollsError>> + Send + 'static,
{
    feature::reply::handler(ctx, f, RollsError::into_handler_error)
}

/// The slash commands with their handlers.
pub fn commands(ctx: &Ctx) -> Vec<(CommandSpec, Arc<dyn Handler>)> {
    let expression =
        || OptionSpec::string("expression", "A dice expression, e.g. 4d6kh3").required();
    vec![
        (
            CommandSpec::new("roll", "Roll dice")
                .option(expression())
                .option(OptionSpec::boolean(
                    "private",
                    "Show the result only to you",
                ))
                .option(crate::tools::mode_option()),
            wrap(ctx, roll),
        ),
        (
            CommandSpec::new("odds", "The odds of a dice expression").option(expression()),
            wrap(ctx, odds),
        ),
        (initiative::spec(), wrap(ctx, init)),
        (
            CommandSpec::new("character", "Your characters")
                .option(
                    OptionSpec::subcommand("add", "Add or update a character")
                        .option(OptionSpec::string("name", "Name").required())
                        .option(
                            OptionSpec::integer(
                                "initiative-modifier",
                                "Added to your initiative roll",
                            )
                            .range(-100, 100),
                        )
                        .option(OptionSpec::string(
                            "initiative",
                            "Or an initiative expression, e.g. 1d20+3 or 2d20kh1+3 (advantage)",
                        )),
                )
                .option(
                    OptionSpec::subcommand("import", "Import characters from Feyre").option(
                        OptionSpec::string(
                            "data",
                            "Feyre's user JSON, or `Vex +3, Vax 1d20+4` (or your /character list)",
                        )
                        .required(),
                    ),
                )
                .option(
                    OptionSpec::subcommand("remove", "Remove a character")
                        .option(OptionSpec::string("name", "Name").required()),
                )
                .option(OptionSpec::subcommand(
                    "list",
                    "List your characters and pick the active one",
                )),
            wrap(ctx, character),
        ),
        (
            CommandSpec::new("stats", "Command usage")
                .option(OptionSpec::boolean("all", "Also list unused commands")),
            wrap(ctx, stats),
        ),
        (
            CommandSpec::new("help", "How to use every command")
                .option(OptionSpec::string("command", "A command name")),
            wrap(ctx, help),
        ),
    ]
    .into_iter()
    .chain(crate::tools::commands(ctx))
    .collect()
}

/// The component handler for the `rolls` prefix.
pub fn components(ctx: &Ctx) -> Arc<dyn Handler> {
    let ctx = ctx.clone();
    Arc::new(move |inv: Invocation| {
        let ctx = ctx.clone();
        async move {
            component(ctx, inv)
                .await
                .map_err(RollsError::into_handler_error)
        }
    })
}

async fn roll(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    crate::tools::roll(ctx, inv).await
}

async fn odds(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    crate::tools::odds(ctx, inv).await
}

async fn stats(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let all = inv.options().bool("all").unwrap_or(false);
    let model = ctx.controller.run(caller(&inv), &StatsOp { all }).await?;
    Ok(Response::Message(public(&model.render())))
}

async fn help(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let command = inv.options().str("command").map(str::to_owned);
    let model = ctx
        .controller
        .run(
            caller(&inv),
            &HelpOp {
                command,
                place: if inv.guild_id.is_some() {
                    domain::HelpPlace::Server
                } else {
                    domain::HelpPlace::DirectMessage
                },
                catalogue: ctx.catalogue.clone(),
            },
        )
        .await?;
    Ok(Response::Message(private(&model.text)))
}

fn characters_reply(model: &CharactersModel) -> Reply {
    let mut text = model.markdown.clone();
    if !model.message.is_empty() {
        text = format!("{}\n{text}", model.message);
    }
    let mut reply = public(&text);
    let buttons: Vec<Component> = model
        .characters
        .keys()
        .map(|name| {
            let style = if model.active.as_deref() == Some(name.as_str()) {
                ButtonStyle::Success
            } else {
                ButtonStyle::Secondary
            };
            Component::button(format!("{ACTIVE}:{}:{name}", model.user), name, style)
        })
        .collect();
    for chunk in buttons.chunks(5) {
        reply = reply.row(chunk.to_vec());
    }
    reply
}

async fn character(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let options = inv.options();
    let user = user_of(&inv);
    let name = options.str("name").unwrap_or_default().to_owned();
    let op = match options.sub() {
        Some("add") => CharacterOp::Add {
            user,
            name,
            initiative_modifier: options.int("initiative-modifier").unwrap_or(0),
            initiative: options.str("initiative").map(str::to_owned),
        },
        Some("import") => CharacterOp::Import {
            user,
            data: options.str("data").unwrap_or_default().to_owned(),
        },
        Some("remove") => CharacterOp::Remove { user, name },
        _ => CharacterOp::List { user },
    };
    let model = ctx.controller.run(caller(&inv), &op).await?;
    Ok(Response::Message(match op {
        CharacterOp::List { .. } => characters_reply(&model),
        _ => private(&model.message),
    }))
}

pub(crate) fn tracker_reply(model: &TrackerModel) -> Reply {
    let at = TurnAt::of(&model.tracker);
    let next = format!("{NEXT}:{}:{}", at.round, at.turn);
    public(&model.markdown).row(vec![
        Component::button(JOIN, "Join", ButtonStyle::Primary),
        Component::button(next, "Next", ButtonStyle::Secondary),
    ])
}

/// What a Next button's id says: `None` when it is not one; `Some(None)` for one
/// posted before buttons carried their position.
fn next_button(custom_id: &str) -> Option<Option<TurnAt>> {
    let rest = custom_id.strip_prefix(NEXT)?;
    if rest.is_empty() {
        return Some(None);
    }
    let (round, turn) = rest.strip_prefix(':')?.split_once(':')?;
    Some(Some(TurnAt {
        round: round.parse().ok()?,
        turn: turn.parse().ok()?,
    }))
}

/// Shows the tracker: edits its message in place, or posts a new one (and records its
/// id) when there is none, it was deleted, or `repost` asks for it at the bottom.
async fn show_tracker(ctx: &Ctx, model: &TrackerModel, repost: bool) -> Result<(), RollsError> {
    let reply = tracker_reply(model);
    let channel = model.channel;
    let existing = model.tracker.message_id.filter(|_| !repost);
    if let Some(message) = existing {
        match ctx.discord.edit(channel, message, &reply).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, channel = %model.channel, "tracker message not editable; posting a new one");
            }
        }
    }
    let message = ctx.discord.send(channel, &reply).await?;
    ctx.controller.set_tracker_message(channel, message).await?;
    // The message it replaces keeps its text and loses its buttons: only the
    // tracker's current message acts.
    if let Some(old) = model
        .tracker
        .message_id
        .filter(|old| repost && *old != message)
    {
        let retired = public(&retired_tracker(&model.markdown));
        if let Err(error) = ctx.discord.edit(channel, old, &retired).await {
            tracing::warn!(%error, %channel, "could not take the buttons off the old tracker message");
        }
    }
    Ok(())
}

/// Said under a tracker message that was reposted.
const MOVED_NOTE: &str = "*This tracker moved: the latest one is below.*";

/// A reposted tracker's old message: its text with [`MOVED_NOTE`] under it, the text
/// cut to leave the note room so the edit (which takes its buttons off) always fits
/// one Discord message and the note is never the part cut.
fn retired_tracker(markdown: &str) -> String {
    let room = domain::DISCORD_MESSAGE_MAX - MOVED_NOTE.chars().count() - 1;
    let text = domain::fit_message(markdown, room, CUT_NOTE);
    format!("{text}\n{MOVED_NOTE}")
}

/// A turn change's answer: it notifies whose turn it is (their mention, and only
/// theirs, in `allowed_mentions`).
fn turn_reply(model: &TrackerModel) -> Reply {
    model
        .ping
        .iter()
        .fold(public(&model.message), |reply, user| reply.ping(*user))
}

async fn init(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let op = initiative::op(&inv)?;
    let model = ctx.controller.run(caller(&inv), &op).await?;
    if initiative::is_view(&op) {
        return Ok(Response::Message(private(&model.message)));
    }
    let repost = matches!(op, InitOp::Get { .. });
    show_tracker(&ctx, &model, repost).await?;
    Ok(Response::Message(if repost {
        Reply::private("The initiative tracker is posted below.")
    } else if model.private {
        private(&model.message)
    } else {
        turn_reply(&model)
    }))
}

async fn component(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let Action::Component {
        custom_id,
        message_id,
        ..
    } = &inv.action
    else {
        return Err(RollsError::refused("Not a button."));
    };
    let user = user_of(&inv);
    let channel = channel_of(&inv);
    let next = next_button(custom_id);
    if custom_id == JOIN || next.is_some() {
        let pressed = *message_id;
        // Only the tracker's current message acts; an older one (reposted with
        // `/init get`) answers where the tracker is now, changing nothing.
        let current = ctx
            .controller
            .repo()
            .tracker(channel)
            .await?
            .value
            .message_id;
        if let Some(current) = current.filter(|current| *current != pressed) {
            let link = match inv.guild_id {
                Some(guild) => format!(
                    "the latest one: {}",
                    ctx.discord.message_url(Some(guild), channel, current)
                ),
                None => "the latest one below".to_owned(),
            };
            return Ok(Response::Message(Reply::private(format!(
                "This tracker moved; its buttons no longer act. Use {link} (or `/init get` to post it again at the bottom)."
            ))));
        }
        let op = match next {
            Some(expected) => InitOp::Next { channel, expected },
            None => InitOp::Join {
                channel,
                user,
                character: None,
                roll: None,
                display_name: inv.actor.name.clone(),
                // A second press says so rather than rolling again.
                once: true,
            },
        };
        let model = ctx.controller.run(caller(&inv), &op).await?;
        if next.is_some() && !model.ping.is_empty() {
            // The button answers by editing the tracker; the turn is announced
            // beside it so the one whose turn it is gets notified.
            if let Err(error) = ctx.discord.send(channel, &turn_reply(&model)).await {
                tracing::warn!(%error, %channel, "could not announce the turn");
            }
        }
        if next.is_none() {
            // The roll is shown beside the tracker, as `/init join` shows it.
            if let Err(error) = ctx.discord.send(channel, &public(&model.message)).await {
                tracing::warn!(%error, %channel, "could not show a Join button's roll");
            }
        }
        if model.tracker.message_id.is_none() {
            // A tracker that never recorded its message takes the one pressed.
            ctx.controller.set_tracker_message(channel, pressed).await?;
        }
        // A press from a position the turn has left changes nothing: the tracker is
        // shown as it is now, with a Next button for there.
        return Ok(Response::Update(tracker_reply(&model)));
    }
    // rolls:active:{owner}:{name}; the name may itself contain ':'.
    let rest = custom_id
        .strip_prefix(ACTIVE)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(|| RollsError::refused("This button is no longer supported."))?;
    let (owner, name) = rest
        .split_once(':')
        .ok_or_else(|| RollsError::refused("This button is no longer supported."))?;
    if owner != user.to_string() {
        return Err(RollsError::refused(
            "These are someone else's characters; use `/character list` for yours.",
        ));
    }
    let model = ctx
        .controller
        .run(
            caller(&inv),
            &CharacterOp::Activate {
                user,
                name: name.to_owned(),
            },
        )
        .await?;
    Ok(Response::Update(characters_reply(&model)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracker that fills a whole message keeps the "moved" note when it is
    /// retired: the text is cut to make room, and the edit fits Discord's limit
    /// without being cut again.
    #[test]
    fn a_full_trackers_retired_message_fits_with_its_moved_note() {
        let line = "• ` 15` Goblin (<@107624977066381312>) — HP 7/7 · AC 15\n";
        let mut markdown = String::from("**Initiative** — round 3\n");
        while markdown.chars().count() + line.chars().count() <= domain::DISCORD_MESSAGE_MAX {
            markdown.push_str(line);
        }
        let fill = domain::DISCORD_MESSAGE_MAX - markdown.chars().count();
        markdown.push_str(&"W".repeat(fill));
        assert_eq!(markdown.chars().count(), domain::DISCORD_MESSAGE_MAX);

        let retired = retired_tracker(&markdown);
        assert!(
            retired.chars().count() <= domain::DISCORD_MESSAGE_MAX,
            "{} characters",
            retired.chars().count()
        );
        assert!(retired.ends_with(&format!("\n{MOVED_NOTE}")), "{retired}");
        assert!(
            retired.starts_with("**Initiative** — round 3\n"),
            "{retired}"
        );
        assert!(retired.contains(CUT_NOTE), "says it was cut: {retired}");
        assert_eq!(fit(&retired, CUT_NOTE), retired, "not cut a second time");
    }

    /// A short tracker is retired whole, the note under it.
    #[test]
    fn a_short_trackers_retired_message_is_whole() {
        let markdown = "**Initiative** — round 1\n▶ ` 15` Goblin (<@1>)";
        assert_eq!(
            retired_tracker(markdown),
            format!("{markdown}\n{MOVED_NOTE}")
        );
    }
}
