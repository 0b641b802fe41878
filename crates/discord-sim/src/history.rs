//! Message lists as bytes, fast: `GET /channels/{id}/messages` is what a history scan
//! calls hundreds of times a second, so its JSON is written straight from the stored
//! messages instead of going through a `serde_json::Value` tree per message.
//!
//! Only plain messages (no mentions, reply or interaction metadata: what a channel's
//! history mostly is) take the direct path; the rest are rendered by
//! `State::message_json`, the one definition of the message shape. A test checks
//! both paths give the same JSON.

use serde::Serialize;
use serde_json::Value;

use crate::Snowflake;
use crate::model::{Attachment, Message, User, message_flags};
use crate::state::State;

#[derive(Serialize)]
struct UserWire<'a> {
    id: Snowflake,
    username: &'a str,
    discriminator: &'static str,
    global_name: Option<&'a str>,
    avatar: Option<()>,
    avatar_decoration_data: Option<()>,
    banner: Option<()>,
    accent_color: Option<()>,
    bot: bool,
    system: bool,
    public_flags: u8,
    primary_guild: Option<()>,
}

impl<'a> UserWire<'a> {
    fn new(user: &'a User) -> Self {
        Self {
            id: user.id,
            username: &user.name,
            discriminator: "0",
            global_name: user.global_name.as_deref(),
            avatar: None,
            avatar_decoration_data: None,
            banner: None,
            accent_color: None,
            bot: user.bot,
            system: false,
            public_flags: 0,
            primary_guild: None,
        }
    }
}

#[derive(Serialize)]
struct AttachmentWire<'a> {
    id: Snowflake,
    filename: &'a str,
    size: u64,
    url: String,
    proxy_url: String,
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_secs: Option<f64>,
}

#[derive(Serialize)]
struct MessageWire<'a> {
    id: Snowflake,
    channel_id: Snowflake,
    author: UserWire<'a>,
    content: &'a str,
    timestamp: &'a str,
    edited_timestamp: Option<&'a str>,
    tts: bool,
    mention_everyone: bool,
    mentions: [(); 0],
    mention_roles: &'a [Snowflake],
    attachments: Vec<AttachmentWire<'a>>,
    embeds: &'a [Value],
    components: &'a [Value],
    pinned: bool,
    #[serde(rename = "type")]
    kind: u8,
    flags: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_id: Option<Snowflake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    application_id: Option<Snowflake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

impl State {
    /// A JSON array of `messages` as the REST API renders them.
    pub fn message_list_json(&self, messages: &[&Message]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + messages.len() * 640);
        out.push(b'[');
        for (index, message) in messages.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let written = match self.plain(message) {
                Some(wire) => serde_json::to_writer(&mut out, &wire),
                None => serde_json::to_writer(&mut out, &self.message_json(message, false)),
            };
            if let Err(error) = written {
                tracing::error!(%error, "could not render a message");
            }
        }
        out.push(b']');
        out
    }

    /// The direct rendering of a plain message, `None` for the others.
    fn plain<'a>(&'a self, m: &'a Message) -> Option<MessageWire<'a>> {
        if !m.mentions.is_empty()
            || m.message_reference.is_some()
            || m.interaction_metadata.is_some()
        {
            return None;
        }
        let author = self.users.get(&m.author_id)?;
        let embeds: &[Value] = if m.flags & message_flags::SUPPRESS_EMBEDS != 0 {
            &[]
        } else {
            &m.embeds
        };
        Some(MessageWire {
            id: m.id,
            channel_id: m.channel_id,
            author: UserWire::new(author),
            content: &m.content,
            timestamp: &m.timestamp,
            edited_timestamp: m.edited_timestamp.as_deref(),
            tts: m.tts,
            mention_everyone: m.mention_everyone,
            mentions: [],
            mention_roles: &m.mention_roles,
            attachments: m
                .attachments
                .iter()
                .map(|a| self.attachment_wire(m.channel_id, a))
                .collect(),
            embeds,
            components: &m.components,
            pinned: m.pinned,
            kind: m.kind,
            flags: m.flags,
            webhook_id: m.webhook_id,
            application_id: m.application_id,
            nonce: m.nonce.as_deref(),
        })
    }

    fn attachment_wire<'a>(&self, channel: Snowflake, a: &'a Attachment) -> AttachmentWire<'a> {
        AttachmentWire {
            id: a.id,
            filename: &a.filename,
            size: a.size,
            url: self.cdn.sign(&a.url, channel, a.id),
            proxy_url: self.cdn.sign(&a.proxy_url, channel, a.id),
            content_type: a.content_type.as_deref(),
            description: a.description.as_deref(),
            width: a.width,
            height: a.height,
            duration_secs: a.duration_secs,
        }
    }
}
