//! Discord handlers of the table tools: `/roll` (aliases, roll ids, GM and blind
//! rolls), `/odds` (with its chart), `/roll-check`, `/alias`, `/saved` and `/gm`.
//! [`crate::commands`] lists them; the rules live in [`crate::alias`],
//! [`crate::history`], [`crate::gm`] and [`crate::chart`].

use std::sync::Arc;

use discord::{CommandSpec, Handler, Invocation, OptionSpec, Reply, Response};

use crate::RollsError;
use crate::alias::{AliasAction, AliasOp, SavedAction, SavedOp, Scope};
use crate::chart::ChartedOddsOp;
use crate::commands::{CUT_NOTE, CUT_ROLL_NOTE, Ctx, caller, fit, wrap};
use crate::gm::{self, GmOp};
use crate::history::{RecordedRollOp, RollCheckOp, RollMode};

/// The `mode` option of `/roll`.
pub fn mode_option() -> OptionSpec {
    OptionSpec::string(
        "mode",
        "public (default), gm: you and the GM see it, blind: only the GM sees it",
    )
    .choice("public", "public")
    .choice("gm", "gm")
    .choice("blind", "blind")
}

/// `/roll-check`, `/alias`, `/saved` and `/gm`.
pub fn commands(ctx: &Ctx) -> Vec<(CommandSpec, Arc<dyn Handler>)> {
    let name = || OptionSpec::string("name", "The name").required();
    let server =
        || OptionSpec::boolean("server", "This server's aliases (Manage Server to change)");
    vec![
        (
            CommandSpec::new("roll-check", "Look up a roll by its id and replay it")
                .option(OptionSpec::string("id", "The roll id shown under the roll").required()),
            wrap(ctx, roll_check),
        ),
        (
            CommandSpec::new("alias", "Names for dice expressions, with {} placeholders")
                .option(
                    OptionSpec::subcommand("add", "Add or replace an alias")
                        .option(name())
                        .option(
                            OptionSpec::string(
                                "expression",
                                "e.g. 1d20+7, or 1d20+{} >= {} for /roll hit 5 15",
                            )
                            .required(),
                        )
                        .option(server()),
                )
                .option(
                    OptionSpec::subcommand("remove", "Remove an alias")
                        .option(name())
                        .option(server()),
                )
                .option(OptionSpec::subcommand("list", "List aliases").option(server())),
            wrap(ctx, alias),
        ),
        (
            CommandSpec::new("saved", "Your saved rolls")
                .option(
                    OptionSpec::subcommand("add", "Save a roll under a name")
                        .option(name())
                        .option(OptionSpec::string("expression", "A dice expression").required()),
                )
                .option(OptionSpec::subcommand("remove", "Remove a saved roll").option(name()))
                .option(OptionSpec::subcommand("list", "List your saved rolls"))
                .option(
                    OptionSpec::subcommand("use", "Roll a saved roll")
                        .option(name())
                        .option(mode_option()),
                ),
            wrap(ctx, saved),
        ),
        (
            CommandSpec::new("gm", "This channel's GM, who receives GM and blind rolls")
                .guild_only()
                .option(OptionSpec::subcommand("set", "Become this channel's GM"))
                .option(OptionSpec::subcommand(
                    "clear",
                    "This channel has no GM any more",
                ))
                .option(OptionSpec::subcommand("show", "Who is this channel's GM"))
                .option(
                    OptionSpec::subcommand(
                        "role",
                        "The server's GM role (Manage Server); leave it out to clear it",
                    )
                    .option(OptionSpec::string("role", "The role, e.g. @GM")),
                ),
            wrap(ctx, gm_command),
        ),
    ]
}

/// `/roll expression [private] [mode]`.
pub async fn roll(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let options = inv.options();
    let input = options.str("expression").unwrap_or_default().to_owned();
    let mode = RollMode::parse(options.str("mode").unwrap_or_default())?;
    roll_input(&ctx, &inv, input, mode).await
}

/// The mode a roll is made in: `mode`, or [`RollMode::Private`] when a public roll
/// was asked for with `private:true`.
fn effective_mode(inv: &Invocation, mode: RollMode) -> RollMode {
    if mode == RollMode::Public && inv.wants_private() {
        RollMode::Private
    } else {
        mode
    }
}

/// Refuses a public roll whose last word names a way to roll out of sight (`4d6kh3
/// private`): it would be the roll's label, and the roll public.
fn refuse_mode_as_label(input: &str) -> Result<(), RollsError> {
    let last = input.split_whitespace().last().unwrap_or_default();
    let option = match last.to_ascii_lowercase().as_str() {
        "private" => "set the `private` option instead (`private:True`)",
        "gm" => "set the `mode` option instead (`mode:gm`)",
        "blind" => "set the `mode` option instead (`mode:blind`)",
        _ => return Ok(()),
    };
    Err(RollsError::refused(format!(
        "`{last}` at the end of the expression would be this roll's label, and the roll public: \
         nothing was rolled. To roll out of everyone else's sight, {option}."
    )))
}

/// Rolls `input` for the invocation's user in `mode`, and delivers it.
async fn roll_input(
    ctx: &Ctx,
    inv: &Invocation,
    input: String,
    mode: RollMode,
) -> Result<Response, RollsError> {
    let (user, channel) = (inv.actor.id, inv.channel_id);
    let mode = effective_mode(inv, mode);
    if mode == RollMode::Public {
        refuse_mode_as_label(&input)?;
    }
    let gms = match mode {
        RollMode::Public | RollMode::Private => Vec::new(),
        RollMode::Gm | RollMode::Blind => {
            gm::recipients(ctx.controller.repo(), &ctx.discord, channel, inv.guild_id).await?
        }
    };
    let op = RecordedRollOp {
        input,
        user,
        guild: inv.guild_id,
        channel: Some(channel),
        mode,
        gm: gms.clone(),
    };
    let model = ctx.controller.run(caller(inv), &op).await?;
    let text = model.render();
    if matches!(model.mode, RollMode::Public | RollMode::Private) {
        let reply = if model.mode == RollMode::Private {
            Reply::private(fit(&text, CUT_ROLL_NOTE))
        } else {
            Reply::text(fit(&format!("<@{user}> {text}"), CUT_ROLL_NOTE))
        };
        return Ok(Response::Message(reply));
    }

    let kind = if mode == RollMode::Gm { "GM" } else { "blind" };
    let for_gm = fit(
        &format!("🎲 <@{user}> made a {kind} roll in <#{channel}>:\n{text}"),
        CUT_ROLL_NOTE,
    );
    let mut delivered = 0usize;
    for gm in &gms {
        if mode == RollMode::Gm && *gm == user {
            delivered += 1; // the roller is the GM and sees it below
            continue;
        }
        match ctx.discord.dm(*gm, &Reply::text(for_gm.clone())).await {
            Ok(_) => delivered += 1,
            Err(error) => {
                tracing::warn!(%error, gm = %gm, roll = %model.id, "could not send a GM roll to the GM");
            }
        }
    }
    let notice = Reply::text(format!(
        "🎲 <@{user}> made a {kind} roll; the GM has it (roll id `{}`).",
        model.id
    ));
    if let Err(error) = ctx.discord.send(channel, &notice).await {
        tracing::warn!(%error, %channel, "could not say in the channel that a GM roll happened");
    }
    let mut answer = match mode {
        RollMode::Blind => format!(
            "Rolled `{}`, sent to the GM (roll id `{}`).",
            model.input, model.id
        ),
        _ => format!("{text}\n*Sent to the GM.*"),
    };
    if delivered == 0 {
        answer.push_str(&format!(
            "\n⚠️ The GM could not be sent a direct message (their DMs may be closed); they can read it with `/roll-check {}`.",
            model.id
        ));
    }
    Ok(Response::Message(Reply::private(fit(
        &answer,
        CUT_ROLL_NOTE,
    ))))
}

/// `/odds expression`: the odds in words and, for an exact distribution, the chart.
pub async fn odds(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let expression = inv
        .options()
        .str("expression")
        .unwrap_or_default()
        .to_owned();
    let model = ctx
        .controller
        .run(caller(&inv), &ChartedOddsOp { expression })
        .await?;
    let markdown = &model.odds.markdown;
    Ok(Response::Message(match model.chart {
        Ok(chart) => Reply::text(fit(markdown, CUT_NOTE)).upload(
            "odds.png",
            chart.png,
            Some(chart.description),
        ),
        Err(why) => Reply::text(fit(&format!("{markdown}\n-# No chart: {why}."), CUT_NOTE)),
    }))
}

async fn roll_check(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let id = inv.options().str("id").unwrap_or_default().to_owned();
    let op = RollCheckOp {
        id,
        viewer: inv.actor.id,
    };
    let model = ctx.controller.run(caller(&inv), &op).await?;
    let text = fit(&model.markdown, CUT_NOTE);
    Ok(Response::Message(
        if model.hidden || model.record.mode != RollMode::Public {
            Reply::private(text)
        } else {
            Reply::text(text)
        },
    ))
}

fn reply_with(model: &crate::alias::AliasesModel) -> Reply {
    let text = if model.message.is_empty() {
        model.markdown.clone()
    } else {
        format!("{}\n{}", model.message, model.markdown)
    };
    Reply::private(fit(&text, CUT_NOTE))
}

async fn alias(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let options = inv.options();
    let name = options.str("name").unwrap_or_default().to_owned();
    let action = match options.sub() {
        Some("add") => AliasAction::Add {
            name,
            template: options.str("expression").unwrap_or_default().to_owned(),
        },
        Some("remove") => AliasAction::Remove { name },
        _ => AliasAction::List,
    };
    let scope = if options.bool("server").unwrap_or(false) {
        let Some(guild) = inv.guild_id else {
            return Err(RollsError::refused(
                "Server aliases belong to a server; this is a direct message.",
            ));
        };
        if action != AliasAction::List && !inv.can_manage_guild() {
            return Err(RollsError::refused(
                "Only members with Manage Server can change this server's aliases; `/alias add` without `server` makes one of your own.",
            ));
        }
        Scope::Guild(guild)
    } else {
        Scope::User(inv.actor.id)
    };
    let model = ctx
        .controller
        .run(
            caller(&inv),
            &AliasOp {
                scope,
                action,
                guild: inv.guild_id,
            },
        )
        .await?;
    Ok(Response::Message(reply_with(&model)))
}

async fn saved(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let options = inv.options();
    let user = inv.actor.id;
    let name = options.str("name").unwrap_or_default().to_owned();
    let action = match options.sub() {
        Some("use") => {
            let doc = ctx.controller.repo().user(user).await?.value;
            let key = name.trim().to_lowercase();
            let Some(expression) = doc.saved_rolls.get(&key).cloned() else {
                return Err(RollsError::refused(format!(
                    "You have no saved roll `{key}`; `/saved list` shows yours."
                )));
            };
            let mode = RollMode::parse(options.str("mode").unwrap_or_default())?;
            return roll_input(&ctx, &inv, expression, mode).await;
        }
        Some("add") => SavedAction::Add {
            name,
            expression: options.str("expression").unwrap_or_default().to_owned(),
        },
        Some("remove") => SavedAction::Remove { name },
        _ => SavedAction::List,
    };
    let op = SavedOp {
        user,
        guild: inv.guild_id,
        action,
    };
    let model = ctx.controller.run(caller(&inv), &op).await?;
    Ok(Response::Message(reply_with(&model)))
}

async fn gm_command(ctx: Ctx, inv: Invocation) -> Result<Response, RollsError> {
    let options = inv.options();
    let (channel, user) = (inv.channel_id, inv.actor.id);
    let can_manage = inv.can_manage_guild();
    // A GM runs the table of a server's channel; in a direct message there is nobody
    // to roll for them.
    if inv.guild_id.is_none() {
        return Err(RollsError::refused(
            "`/gm` works only in a server: a GM is chosen for one of its channels.",
        ));
    }
    let op = match options.sub() {
        Some("set") => GmOp::Set {
            channel,
            user,
            can_manage,
        },
        Some("clear") => GmOp::Clear {
            channel,
            user,
            can_manage,
        },
        Some("role") => {
            let Some(guild) = inv.guild_id else {
                return Err(RollsError::refused("A GM role belongs to a server."));
            };
            if !can_manage {
                return Err(RollsError::refused(
                    "Only members with Manage Server can set the server's GM role.",
                ));
            }
            let role = options.str("role").map(gm::parse_role).transpose()?;
            GmOp::Role { guild, role }
        }
        _ => GmOp::Show {
            channel,
            guild: inv.guild_id,
        },
    };
    let model = ctx.controller.run(caller(&inv), &op).await?;
    Ok(Response::Message(Reply::text(fit(
        &model.message,
        CUT_NOTE,
    ))))
}
