//! Conversions between Tavern's [`crate::model`] and Discord's wire types (twilight-model).
//!
//! Commands and components are built as Discord-shaped JSON and deserialised into the
//! twilight types: the JSON shape is what Discord documents, so this keeps the mapping
//! readable and lets twilight validate it.

use serde_json::{Value, json};
use twilight_model::application::command::{
    Command, CommandOptionChoice, CommandOptionChoiceValue,
};
use twilight_model::application::interaction::application_command::{
    CommandDataOption, CommandOptionValue,
};
use twilight_model::application::interaction::{Interaction, InteractionData, InteractionType};
use twilight_model::channel::message::Component as WireComponent;
use twilight_model::channel::message::{AllowedMentions, MessageFlags};
use twilight_model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};

use crate::model::*;

fn option_kind_code(kind: OptionKind) -> u8 {
    match kind {
        OptionKind::SubCommand => 1,
        OptionKind::String => 3,
        OptionKind::Integer => 4,
        OptionKind::Boolean => 5,
        OptionKind::User => 6,
        OptionKind::Channel => 7,
        OptionKind::Number => 10,
    }
}

fn option_json(option: &OptionSpec) -> Value {
    let mut value = json!({
        "type": option_kind_code(option.kind),
        "name": option.name,
        "description": option.description,
    });
    if option.kind != OptionKind::SubCommand {
        value["required"] = json!(option.required);
    }
    if !option.choices.is_empty() {
        value["choices"] = option
            .choices
            .iter()
            .map(|(name, v)| json!({"name": name, "value": v}))
            .collect();
    }
    if !option.options.is_empty() {
        value["options"] = option.options.iter().map(option_json).collect();
    }
    if let Some(min) = option.min_value {
        value["min_value"] = json!(min);
    }
    if let Some(max) = option.max_value {
        value["max_value"] = json!(max);
    }
    if option.autocomplete {
        value["autocomplete"] = json!(true);
    }
    value
}

/// Discord's interaction context types: a server, and a direct message with the bot.
const CONTEXT_GUILD: u8 = 0;
const CONTEXT_BOT_DM: u8 = 1;

/// The Discord JSON of a command, as sent in a bulk overwrite: installed to servers
/// (integration type 0), offered in servers and, unless it is guild-only, in a direct
/// message with the bot.
pub(crate) fn command_json(spec: &CommandSpec) -> Value {
    let contexts: &[u8] = if spec.guild_only {
        &[CONTEXT_GUILD]
    } else {
        &[CONTEXT_GUILD, CONTEXT_BOT_DM]
    };
    json!({
        "type": 1,
        "name": spec.name,
        "description": spec.description,
        "default_member_permissions": null,
        "options": spec.options.iter().map(option_json).collect::<Vec<_>>(),
        "integration_types": [0],
        "contexts": contexts,
        "version": "1",
    })
}

pub(crate) fn command(spec: &CommandSpec) -> Result<Command, serde_json::Error> {
    serde_json::from_value(command_json(spec))
}

fn button_style_code(style: ButtonStyle) -> u8 {
    match style {
        ButtonStyle::Primary => 1,
        ButtonStyle::Secondary => 2,
        ButtonStyle::Success => 3,
        ButtonStyle::Danger => 4,
    }
}

fn component_json(component: &Component) -> Value {
    match component {
        Component::Button {
            custom_id,
            label,
            style,
            disabled,
        } => json!({
            "type": 2,
            "custom_id": custom_id,
            "label": label,
            "style": button_style_code(*style),
            "disabled": disabled,
        }),
        Component::Select {
            custom_id,
            placeholder,
            options,
        } => json!({
            "type": 3,
            "custom_id": custom_id,
            "placeholder": placeholder,
            "options": options.iter().map(|o| {
                let mut v = json!({"label": o.label, "value": o.value, "default": false});
                if let Some(d) = &o.description { v["description"] = json!(d); }
                v
            }).collect::<Vec<_>>(),
            "min_values": 1,
            "max_values": 1,
            "disabled": false,
        }),
    }
}

pub(crate) fn components(reply: &Reply) -> Result<Vec<WireComponent>, serde_json::Error> {
    reply
        .rows
        .iter()
        .map(|row| {
            serde_json::from_value(json!({
                "type": 1,
                "components": row.0.iter().map(component_json).collect::<Vec<_>>(),
            }))
        })
        .collect()
}

/// The `allowed_mentions` of a reply: parse nothing from the content, ping only the
/// users and roles the reply names. Always sent: without it Discord pings every
/// mention in the content, `@everyone` included.
pub(crate) fn allowed_mentions(reply: &Reply) -> AllowedMentions {
    AllowedMentions {
        parse: Vec::new(),
        replied_user: false,
        roles: reply.mentions.roles.clone(),
        users: reply.mentions.users.clone(),
    }
}

fn flags(ephemeral: bool) -> Option<MessageFlags> {
    ephemeral.then_some(MessageFlags::EPHEMERAL)
}

/// The callback body answering an interaction with `response`.
pub(crate) fn interaction_response(
    response: &Response,
) -> Result<InteractionResponse, serde_json::Error> {
    let (kind, reply) = match response {
        Response::Message(reply) => (InteractionResponseType::ChannelMessageWithSource, reply),
        Response::Update(reply) => (InteractionResponseType::UpdateMessage, reply),
        Response::Choices(choices) => {
            return Ok(InteractionResponse {
                kind: InteractionResponseType::ApplicationCommandAutocompleteResult,
                data: Some(InteractionResponseData {
                    choices: Some(
                        choices
                            .iter()
                            .take(25)
                            .map(|c| CommandOptionChoice {
                                name: c.name.chars().take(100).collect(),
                                name_localizations: None,
                                value: CommandOptionChoiceValue::String(
                                    c.value.chars().take(100).collect(),
                                ),
                            })
                            .collect(),
                    ),
                    ..InteractionResponseData::default()
                }),
            });
        }
    };
    Ok(InteractionResponse {
        kind,
        data: Some(InteractionResponseData {
            content: Some(reply.content.clone()),
            components: Some(components(reply)?),
            flags: flags(reply.ephemeral),
            allowed_mentions: Some(allowed_mentions(reply)),
            attachments: (!reply.uploads.is_empty()).then(|| uploads(reply)),
            ..InteractionResponseData::default()
        }),
    })
}

/// The reply's uploads as twilight attachments (ids are their positions), sent as a
/// multipart request.
pub(crate) fn uploads(reply: &Reply) -> Vec<twilight_model::http::attachment::Attachment> {
    reply
        .uploads
        .iter()
        .zip(0u64..)
        .map(|(upload, id)| {
            let mut attachment = twilight_model::http::attachment::Attachment::from_bytes(
                upload.filename.clone(),
                upload.bytes.clone(),
                id,
            );
            attachment.description = upload.description.clone();
            attachment
        })
        .collect()
}

/// The "thinking..." (or deferred update) callback sent when a handler is slow.
pub(crate) fn deferral(is_component: bool, ephemeral: bool) -> InteractionResponse {
    if is_component {
        InteractionResponse {
            kind: InteractionResponseType::DeferredUpdateMessage,
            data: None,
        }
    } else {
        InteractionResponse {
            kind: InteractionResponseType::DeferredChannelMessageWithSource,
            data: Some(InteractionResponseData {
                flags: flags(ephemeral),
                ..InteractionResponseData::default()
            }),
        }
    }
}

/// Flattens `options` into `out`; the name of the focused option (autocomplete), if
/// any, whose text so far becomes a string value.
fn flatten_options(options: &[CommandDataOption], out: &mut Options) -> Option<String> {
    let mut focused = None;
    for option in options {
        let value = match &option.value {
            CommandOptionValue::SubCommand(inner) | CommandOptionValue::SubCommandGroup(inner) => {
                out.subcommand.push(option.name.clone());
                focused = focused.or(flatten_options(inner, out));
                continue;
            }
            CommandOptionValue::Focused(text, _) => {
                focused = Some(option.name.clone());
                OptionValue::String(text.clone())
            }
            CommandOptionValue::String(s) => OptionValue::String(s.clone()),
            CommandOptionValue::Integer(i) => OptionValue::Integer(*i),
            CommandOptionValue::Number(n) => OptionValue::Number(*n),
            CommandOptionValue::Boolean(b) => OptionValue::Boolean(*b),
            CommandOptionValue::User(u) => OptionValue::User(*u),
            CommandOptionValue::Channel(c) => OptionValue::Channel(*c),
            _ => continue,
        };
        out.values.insert(option.name.clone(), value);
    }
    focused
}

/// Tavern's view of an interaction; `None` for kinds Tavern does not handle (ping,
/// autocomplete, modals) or one without a channel or user.
pub(crate) fn invocation(interaction: &Interaction) -> Option<Invocation> {
    let user = interaction
        .member
        .as_ref()
        .and_then(|m| m.user.as_ref())
        .or(interaction.user.as_ref())?;
    let actor = actor(user);
    let channel_id = interaction.channel.as_ref().map(|c| c.id)?;
    let action = match interaction.data.as_ref()? {
        InteractionData::ApplicationCommand(data)
            if interaction.kind == InteractionType::ApplicationCommandAutocomplete =>
        {
            let mut options = Options::default();
            let focused = flatten_options(&data.options, &mut options)?;
            Action::Autocomplete {
                name: data.name.clone(),
                options,
                focused,
            }
        }
        InteractionData::ApplicationCommand(data) => {
            let mut options = Options::default();
            flatten_options(&data.options, &mut options);
            if let Some(resolved) = &data.resolved {
                options.bots = resolved
                    .users
                    .values()
                    .filter(|user| user.bot)
                    .map(|user| user.id)
                    .collect();
            }
            Action::Command {
                name: data.name.clone(),
                options,
            }
        }
        InteractionData::MessageComponent(data) => Action::Component {
            custom_id: data.custom_id.clone(),
            values: data.values.clone(),
            message_id: interaction.message.as_ref()?.id,
        },
        _ => return None,
    };
    Some(Invocation {
        id: interaction.id,
        action,
        actor,
        guild_id: interaction.guild_id,
        channel_id,
        member_permissions: interaction
            .member
            .as_ref()
            .and_then(|m| m.permissions)
            .map(|p| p.bits()),
    })
}

fn attachments(list: &[twilight_model::channel::Attachment]) -> Vec<Attachment> {
    list.iter()
        .map(|a| Attachment {
            id: a.id.get(),
            filename: a.filename.clone(),
            url: a.url.clone(),
            proxy_url: a.proxy_url.clone(),
            size: a.size,
            content_type: a.content_type.clone(),
            width: a.width.and_then(|w| u32::try_from(w).ok()),
            height: a.height.and_then(|h| u32::try_from(h).ok()),
            duration_secs: a.duration_secs,
        })
        .collect()
}

pub(crate) fn actor(user: &twilight_model::user::User) -> Actor {
    Actor {
        id: user.id,
        name: user
            .global_name
            .clone()
            .unwrap_or_else(|| user.name.clone()),
    }
}

pub(crate) fn channel_type(kind: twilight_model::channel::ChannelType) -> ChannelType {
    use twilight_model::channel::ChannelType as W;
    match kind {
        W::GuildText => ChannelType::Text,
        W::GuildVoice => ChannelType::Voice,
        W::GuildCategory => ChannelType::Category,
        W::GuildAnnouncement => ChannelType::Announcement,
        W::GuildStageVoice => ChannelType::Stage,
        W::GuildForum => ChannelType::Forum,
        W::GuildMedia => ChannelType::Media,
        W::AnnouncementThread | W::PublicThread | W::PrivateThread => ChannelType::Thread,
        other => ChannelType::Other(u8::from(other)),
    }
}

pub(crate) fn channel_info(channel: &twilight_model::channel::Channel) -> ChannelInfo {
    ChannelInfo {
        id: channel.id,
        guild_id: channel.guild_id,
        name: channel.name.clone().unwrap_or_default(),
        kind: channel_type(channel.kind),
        nsfw: channel.nsfw.unwrap_or(false),
        parent_id: channel.parent_id,
    }
}

pub(crate) fn guild_info(guild: &twilight_model::guild::PartialGuild) -> GuildInfo {
    GuildInfo {
        id: guild.id,
        name: guild.name.clone(),
        icon: guild.icon.map(|i| i.to_string()),
        owner_id: Some(guild.owner_id),
    }
}

pub(crate) fn history_message(message: &twilight_model::channel::Message) -> HistoryMessage {
    HistoryMessage {
        id: message.id,
        author: actor(&message.author),
        author_is_bot: message.author.bot,
        content: message.content.clone(),
        attachments: attachments(&message.attachments),
        timestamp_ms: message.timestamp.as_micros() / 1000,
    }
}

/// Tavern's view of a gateway event, for the kinds features subscribe to.
pub(crate) fn event(event: &twilight_gateway::Event) -> Option<Event> {
    use twilight_gateway::Event as E;
    Some(match event {
        E::MessageCreate(m) => Event::MessageCreate {
            guild_id: m.guild_id,
            channel_id: m.channel_id,
            message_id: m.id,
            author: actor(&m.author),
            author_is_bot: m.author.bot,
            content: m.content.clone(),
            attachments: attachments(&m.attachments),
            timestamp_ms: m.timestamp.as_micros() / 1000,
        },
        E::MessageUpdate(m) => Event::MessageUpdate {
            guild_id: m.guild_id,
            channel_id: m.channel_id,
            message_id: m.id,
            author: Some(actor(&m.author)),
            content: Some(m.content.clone()),
            attachments: attachments(&m.attachments),
            timestamp_ms: Some(m.timestamp.as_micros() / 1000),
        },
        E::MessageDelete(m) => Event::MessageDelete {
            guild_id: m.guild_id,
            channel_id: m.channel_id,
            message_id: m.id,
        },
        E::MessageDeleteBulk(m) => Event::MessageDeleteBulk {
            guild_id: m.guild_id,
            channel_id: m.channel_id,
            message_ids: m.ids.clone(),
        },
        E::GuildCreate(g) => match g.as_ref() {
            twilight_model::gateway::payload::incoming::GuildCreate::Available(g) => {
                Event::GuildAvailable {
                    guild_id: g.id,
                    name: g.name.clone(),
                    voice: g
                        .voice_states
                        .iter()
                        .map(|v| VoiceState {
                            user: v.user_id,
                            channel_id: v.channel_id,
                        })
                        .collect(),
                    icon: g.icon.map(|i| i.to_string()),
                    owner_id: Some(g.owner_id),
                    channels: g
                        .channels
                        .iter()
                        .map(|c| {
                            let mut info = channel_info(c);
                            // GUILD_CREATE's channels leave out their guild id.
                            info.guild_id = Some(g.id);
                            info
                        })
                        .collect(),
                }
            }
            _ => return None,
        },
        E::GuildUpdate(g) => Event::GuildUpdate(guild_info(g)),
        E::GuildDelete(g) => Event::GuildRemoved {
            guild_id: g.id,
            unavailable: g.unavailable.unwrap_or(false),
        },
        E::ChannelCreate(c) => Event::ChannelCreate(channel_info(c)),
        E::ChannelUpdate(c) => Event::ChannelUpdate(channel_info(c)),
        E::ChannelDelete(c) => Event::ChannelDelete(channel_info(c)),
        E::VoiceStateUpdate(v) => Event::VoiceStateUpdate {
            guild_id: v.guild_id?,
            state: VoiceState {
                user: v.user_id,
                channel_id: v.channel_id,
            },
        },
        E::MemberAdd(m) => Event::MemberAdd {
            guild_id: m.guild_id,
            user: actor(&m.user),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_with_subcommands_and_choices_is_valid_wire_json() {
        let spec = CommandSpec::new("init", "Initiative tracker")
            .option(
                OptionSpec::subcommand("join", "Join the order")
                    .option(OptionSpec::integer("roll", "Your roll").range(-10, 100)),
            )
            .option(
                OptionSpec::subcommand("mode", "Mode").option(
                    OptionSpec::string("kind", "Kind")
                        .required()
                        .choice("Fast", "fast"),
                ),
            );
        let cmd = command(&spec).expect("valid command");
        assert_eq!(cmd.name, "init");
        assert_eq!(cmd.options.len(), 2);
        let back = serde_json::to_value(&cmd).expect("serialise");
        assert_eq!(back["options"][0]["options"][0]["min_value"], json!(-10));
        assert_eq!(
            back["options"][1]["options"][0]["choices"][0]["value"],
            json!("fast")
        );
    }

    #[test]
    fn a_guild_only_command_is_offered_in_servers_alone_and_others_in_the_bot_s_dms_too() {
        use twilight_model::application::interaction::InteractionContextType as Context;
        use twilight_model::oauth::ApplicationIntegrationType as Install;
        let roll = command(&CommandSpec::new("roll", "Roll dice")).expect("valid command");
        assert_eq!(roll.contexts, Some(vec![Context::Guild, Context::BotDm]));
        assert_eq!(roll.integration_types, Some(vec![Install::GuildInstall]));
        let gm = command(&CommandSpec::new("gm", "This channel's GM").guild_only())
            .expect("valid command");
        assert_eq!(gm.contexts, Some(vec![Context::Guild]));
        assert_eq!(gm.integration_types, Some(vec![Install::GuildInstall]));
    }

    #[test]
    fn uploads_become_attachments_of_the_response() {
        let plain =
            interaction_response(&Response::Message(Reply::text("no files"))).expect("response");
        let json = serde_json::to_value(&plain).expect("json");
        assert!(json["data"].get("attachments").is_none(), "{json}");
        let reply = Reply::text("chart")
            .upload("a.png", vec![1, 2, 3], Some("alt".into()))
            .upload("b.txt", vec![4], None);
        let response = interaction_response(&Response::Message(reply)).expect("response");
        let json = serde_json::to_value(&response).expect("json");
        assert_eq!(
            json["data"]["attachments"],
            json!([{"description": "alt", "filename": "a.png", "id": 0}, {"filename": "b.txt", "id": 1}])
        );
        let files = response
            .data
            .and_then(|d| d.attachments)
            .expect("attachments");
        assert_eq!(
            files[0].file,
            vec![1, 2, 3],
            "the bytes go in the file part"
        );
    }

    #[test]
    fn replies_ping_nobody_unless_they_name_whom() {
        let quiet = Reply::text("<@1> rolled 20 @everyone");
        let json = serde_json::to_value(allowed_mentions(&quiet)).expect("json");
        assert_eq!(
            json,
            json!({"parse": []}),
            "an empty parse list, never absent"
        );
        let response = interaction_response(&Response::Message(quiet)).expect("response");
        let data = serde_json::to_value(&response).expect("json");
        assert_eq!(data["data"]["allowed_mentions"], json!({"parse": []}));

        let turn = Reply::text("<@7>, your turn")
            .ping(Id::new(7))
            .ping(Id::new(7));
        let json = serde_json::to_value(allowed_mentions(&turn)).expect("json");
        assert_eq!(json, json!({"parse": [], "users": ["7"]}));
    }

    #[test]
    fn replies_become_action_rows_of_buttons_and_selects() {
        let reply = Reply::text("pick")
            .row(vec![Component::button(
                "x:join",
                "Join",
                ButtonStyle::Primary,
            )])
            .row(vec![Component::Select {
                custom_id: "x:assign".into(),
                placeholder: "Who drinks?".into(),
                options: vec![SelectOption {
                    label: "alice".into(),
                    value: "1".into(),
                    description: None,
                }],
            }]);
        let rows = components(&reply).expect("components");
        let json = serde_json::to_value(&rows).expect("json");
        assert_eq!(json[0]["components"][0]["custom_id"], json!("x:join"));
        assert_eq!(
            json[1]["components"][0]["options"][0]["label"],
            json!("alice")
        );
    }

    fn gateway_event(kind: &str, data: Value) -> Option<Event> {
        use serde::de::DeserializeSeed;
        let payload = json!({"op": 0, "s": 1, "t": kind, "d": data}).to_string();
        let mut de = serde_json::Deserializer::from_str(&payload);
        let seed = twilight_model::gateway::event::GatewayEventDeserializer::from_json(&payload)
            .expect("a dispatch");
        let event = seed.deserialize(&mut de).expect("twilight reads it");
        match event {
            twilight_model::gateway::event::GatewayEvent::Dispatch(_, e) => {
                event_of(&twilight_gateway::Event::from(e))
            }
            _ => None,
        }
    }

    fn event_of(event: &twilight_gateway::Event) -> Option<Event> {
        super::event(event)
    }

    #[test]
    fn bulk_deletes_guild_removals_and_channel_changes_reach_features() {
        assert_eq!(
            gateway_event(
                "MESSAGE_DELETE_BULK",
                json!({"ids": ["10", "11"], "channel_id": "5", "guild_id": "1"})
            ),
            Some(Event::MessageDeleteBulk {
                guild_id: Some(GuildId::new(1)),
                channel_id: ChannelId::new(5),
                message_ids: vec![MessageId::new(10), MessageId::new(11)],
            })
        );
        assert_eq!(
            gateway_event("GUILD_DELETE", json!({"id": "1"})),
            Some(Event::GuildRemoved {
                guild_id: GuildId::new(1),
                unavailable: false,
            })
        );
        assert_eq!(
            gateway_event("GUILD_DELETE", json!({"id": "1", "unavailable": true})),
            Some(Event::GuildRemoved {
                guild_id: GuildId::new(1),
                unavailable: true,
            })
        );
        let channel = json!({
            "id": "5", "guild_id": "1", "type": 0, "name": "clips", "nsfw": true,
            "parent_id": "4", "position": 1, "permission_overwrites": []
        });
        assert_eq!(
            gateway_event("CHANNEL_UPDATE", channel),
            Some(Event::ChannelUpdate(ChannelInfo {
                id: ChannelId::new(5),
                guild_id: Some(GuildId::new(1)),
                name: "clips".into(),
                kind: ChannelType::Text,
                nsfw: true,
                parent_id: Some(ChannelId::new(4)),
            }))
        );
    }

    #[test]
    fn manage_server_or_administrator_may_manage_the_guild() {
        let mut invocation = Invocation {
            id: InteractionId::new(1),
            action: Action::Command {
                name: "clips".into(),
                options: Options::default(),
            },
            actor: Actor {
                id: UserId::new(2),
                name: "x".into(),
            },
            guild_id: Some(GuildId::new(3)),
            channel_id: ChannelId::new(4),
            member_permissions: None,
        };
        assert!(!invocation.can_manage_guild());
        invocation.member_permissions = Some(permissions::SEND_MESSAGES);
        assert!(!invocation.can_manage_guild());
        invocation.member_permissions = Some(permissions::MANAGE_GUILD);
        assert!(invocation.can_manage_guild());
        invocation.member_permissions = Some(permissions::ADMINISTRATOR);
        assert!(invocation.can_manage_guild());
    }
}
