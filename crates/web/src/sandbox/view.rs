//! What the console shows, as HTML: the guild's channels, the commands, and a channel's
//! messages the way a Discord client shows them (names for mentions, markdown,
//! attachments, embeds, buttons and menus).

use discord_sim::{Channel, ChannelKind, ComponentSummary, Message, Sim, Snowflake};
use maud::{Markup, html};
use serde_json::Value;

use super::command_line::usage;
use crate::markdown::{self, Names};

/// Mentions resolved against the sim's guild, as a member of it would see them.
pub(super) struct SimNames<'a> {
    pub sim: &'a Sim,
    pub guild: Snowflake,
}

impl SimNames<'_> {
    /// The name a user is shown by in the guild: nickname, global name, username.
    pub fn display(&self, id: Snowflake) -> Option<String> {
        let user = self.sim.user(id)?;
        let nick = self.sim.member(self.guild, id).and_then(|m| m.nick);
        Some(nick.or(user.global_name).unwrap_or(user.name))
    }
}

impl Names for SimNames<'_> {
    fn user(&self, id: u64) -> Option<String> {
        self.display(Snowflake::new(id))
    }

    fn role(&self, id: u64) -> Option<String> {
        self.sim
            .roles(self.guild)
            .into_iter()
            .find(|r| r.id.get() == id)
            .map(|r| r.name)
    }

    fn channel(&self, id: u64) -> Option<String> {
        self.sim.channel(Snowflake::new(id)).map(|c| c.name)
    }
}

/// Channels a person can open in the console: text-like ones and voice channels
/// (whose text chat Discord shows too).
pub(super) fn listed(kind: ChannelKind) -> bool {
    matches!(
        kind,
        ChannelKind::Text | ChannelKind::Announcement | ChannelKind::Voice | ChannelKind::Stage
    )
}

fn is_voice(kind: ChannelKind) -> bool {
    matches!(kind, ChannelKind::Voice | ChannelKind::Stage)
}

/// How a channel is marked before its name in a sentence: `#`, `@` for direct
/// messages, and for a voice channel the speaker icon (drawn, not an emoji: see
/// `sigil_icon`) with "voice channel" for screen readers.
pub(super) fn sigil(channel: &Channel) -> Markup {
    if is_voice(channel.kind) {
        html! { (sigil_icon(channel)) span.visually-hidden { "voice channel " } }
    } else {
        sigil_icon(channel)
    }
}

/// What a channel is called: its name, or for direct messages the bot's (whom they
/// are with, as Discord names a DM by the other person).
pub(super) fn title(sim: &Sim, names: &SimNames<'_>, channel: &Channel) -> String {
    if channel.kind == ChannelKind::Dm {
        names
            .display(sim.bot_user_id())
            .unwrap_or_else(|| "the bot".to_owned())
    } else {
        channel.name.clone()
    }
}

/// The channel's mark as drawn in the list and the welcome: a speaker icon (not an
/// emoji, which not every system can draw) for voice channels, `@` for direct messages.
fn sigil_icon(channel: &Channel) -> Markup {
    if channel.kind == ChannelKind::Dm {
        html! { "@" }
    } else if is_voice(channel.kind) {
        html! {
            svg.icon viewBox="0 0 24 24" aria-hidden="true" {
                path d="M3 9v6h4l5 5V4L7 9H3zm13.5 3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4zM14 3.2v2.1a7 7 0 0 1 0 13.4v2.1a9 9 0 0 0 0-17.6z" {}
            }
        }
    } else {
        html! { "#" }
    }
}

/// The console's side panel: the channels, grouped under their categories, `viewer`'s
/// direct messages with the bot, and the commands offered in the open channel (in
/// direct messages, those registered for them too, as Discord offers them).
pub(super) fn sidebar(sim: &Sim, guild: Snowflake, active: Snowflake, viewer: Snowflake) -> Markup {
    let names = SimNames { sim, guild };
    let dm = sim.dm_channel_of(viewer).and_then(|id| sim.channel(id));
    let channels = sim.channels(guild);
    let categories: Vec<&Channel> = channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Category)
        .collect();
    let in_group = |parent: Option<Snowflake>| -> Vec<&Channel> {
        channels
            .iter()
            .filter(|c| listed(c.kind) && c.parent_id == parent)
            .collect()
    };
    let mut groups: Vec<(Option<&str>, Vec<&Channel>)> = vec![(None, in_group(None))];
    for category in categories {
        groups.push((Some(&category.name), in_group(Some(category.id))));
    }
    let in_dm = dm.as_ref().is_some_and(|dm| dm.id == active);
    let commands: Vec<_> = sim
        .registered_commands()
        .into_iter()
        .filter(|c| {
            if in_dm {
                c.offered_in_dms()
            } else {
                c.offered_in_guilds()
            }
        })
        .collect();
    html! {
        nav #channels aria-label="Channels" {
            @for (title, members) in &groups {
                @if !members.is_empty() {
                    @if let Some(title) = title { h2.category { (title) } }
                    ul {
                        @for channel in members {
                            li {
                                button.channel.voice[is_voice(channel.kind)].active[channel.id == active]
                                    type="button" data-id=(channel.id.get())
                                    aria-current=[(channel.id == active).then_some("true")]
                                    title=[is_voice(channel.kind).then_some("Voice channel")] {
                                    span.sigil aria-hidden="true" { (sigil_icon(channel)) }
                                    span.name { (channel.name) }
                                    @if is_voice(channel.kind) { span.visually-hidden { " (voice)" } }
                                }
                            }
                        }
                    }
                }
            }
            h2.category { "Direct messages" }
            @if let Some(dm) = &dm {
                ul {
                    li {
                        button.channel.dm.active[dm.id == active] type="button"
                            data-id=(dm.id.get()) data-dm
                            aria-current=[(dm.id == active).then_some("true")] {
                            span.sigil aria-hidden="true" { (sigil_icon(dm)) }
                            span.name { (title(sim, &names, dm)) }
                            span.visually-hidden { " (direct messages)" }
                        }
                    }
                }
            } @else {
                p.muted.dm-none {
                    "None yet for " (names.display(viewer).unwrap_or_default())
                    ": what the bot sends them alone shows here (a roll for their GM, for one)."
                }
            }
        }
        div #commands {
            h2 { @if in_dm { "Commands in direct messages" } @else { "Commands" } }
            @if commands.is_empty() {
                p.muted { "None registered yet." }
            }
            ul {
                @for command in &commands {
                    li {
                        code { (usage(&command.name, &command.options)) }
                        @if !command.description.is_empty() {
                            span.muted { " — " (command.description) }
                        }
                    }
                }
            }
        }
    }
}

/// A channel's messages as `viewer` sees them (their own ephemeral ones included),
/// after the welcome that opens every channel.
pub(super) fn channel(sim: &Sim, guild: Snowflake, channel: &Channel, viewer: Snowflake) -> Markup {
    let names = SimNames { sim, guild };
    let messages: Vec<Message> = sim
        .messages(channel.id)
        .into_iter()
        .filter(|m| m.visible_to.is_none_or(|v| v == viewer))
        .collect();
    let (sigil, title) = (sigil(channel), title(sim, &names, channel));
    html! {
        div.welcome {
            div.welcome-sigil aria-hidden="true" { (sigil_icon(channel)) }
            @if channel.kind == ChannelKind::Dm {
                h2 { (title) }
                p {
                    "This is the beginning of " (names.display(viewer).unwrap_or_default())
                    "'s direct messages with " strong { (title) } "."
                }
            } @else {
                h2 { "Welcome to " (sigil) (title) "!" }
                p {
                    "This is the beginning of " (sigil) (title) "."
                    @if let Some(topic) = channel.topic.as_deref().filter(|t| !t.is_empty()) {
                        " " (topic)
                    }
                }
            }
        }
        @for message in &messages {
            (self::message(sim, &names, message))
        }
    }
}

/// `HH:MM` of an ISO 8601 timestamp (UTC), or nothing.
fn clock(timestamp: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(timestamp)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

fn message(sim: &Sim, names: &SimNames<'_>, m: &Message) -> Markup {
    let author = sim.user(m.author_id);
    let bot = author.as_ref().is_some_and(|u| u.bot);
    let name = names
        .display(m.author_id)
        .unwrap_or_else(|| "unknown-user".into());
    let used = m
        .interaction_metadata
        .as_ref()
        .filter(|meta| meta.kind == 2)
        .and_then(|meta| Some((names.display(meta.user_id)?, meta.name.clone()?)));
    html! {
        article.message.private[m.visible_to.is_some()] data-id=(m.id.get()) {
            @if let Some((who, command)) = &used {
                div.used { span.mention { "@" (who) } " used " span.mention.command { "/" (command) } }
            }
            div.message-head {
                span.author { (name) @if bot { span.tag { "BOT" } } }
                time.meta datetime=(m.timestamp) { (clock(&m.timestamp)) }
                @if m.visible_to.is_some() { span.meta { "Only you can see this" } }
                @if m.edited_timestamp.is_some() { span.meta { "(edited)" } }
            }
            @if m.is_loading() && m.content.is_empty() {
                div.content.thinking { (name) " is thinking…" }
            } @else if !m.content.is_empty() {
                div.content { (markdown::render(&m.content, names)) }
            }
            @for embed in &m.embeds {
                (self::embed(embed, names))
            }
            @if !m.attachments.is_empty() {
                div.attachments {
                    @for attachment in &m.attachments {
                        (self::attachment(sim, m.channel_id, attachment))
                    }
                }
            }
            (components(sim, names, m))
        }
    }
}

/// A path segment: letters, digits, `-`, `_` and `.` as they are, the rest escaped.
fn path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// "1.5 MB".
fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KB", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MB", b / 1_048_576.0),
        _ => format!("{:.1} GB", b / 1_073_741_824.0),
    }
}

/// What kind of preview an attachment gets, by its type or its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    Image,
    Video,
    Audio,
    File,
}

pub(super) fn media(content_type: Option<&str>, filename: &str) -> Media {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match content_type.unwrap_or_default() {
        t if t.starts_with("image/") => Media::Image,
        t if t.starts_with("video/") => Media::Video,
        t if t.starts_with("audio/") => Media::Audio,
        _ => match extension.as_str() {
            "png" | "jpg" | "jpeg" | "gif" | "webp" | "avif" => Media::Image,
            "mp4" | "webm" | "mov" => Media::Video,
            "mp3" | "ogg" | "wav" | "flac" | "m4a" => Media::Audio,
            _ => Media::File,
        },
    }
}

fn attachment(sim: &Sim, channel: Snowflake, a: &discord_sim::Attachment) -> Markup {
    let url = format!(
        "/sandbox/attachments/{}/{}/{}",
        channel.get(),
        a.id.get(),
        path_segment(&a.filename)
    );
    // Without bytes (a test faking a large video) there is nothing to preview.
    let kind = if sim.attachment_data(a.id).is_some() {
        media(a.content_type.as_deref(), &a.filename)
    } else {
        Media::File
    };
    let alt = a.description.clone().unwrap_or_else(|| a.filename.clone());
    html! {
        @match kind {
            Media::Image => {
                a.attachment.image href=(url) target="_blank" rel="noopener" {
                    img src=(url) alt=(alt) loading="lazy"
                        width=[a.width] height=[a.height];
                }
            }
            Media::Video => {
                video.attachment controls preload="metadata" src=(url) {}
            }
            Media::Audio => {
                div.attachment.file {
                    span { (a.filename) }
                    audio controls preload="metadata" src=(url) {}
                }
            }
            Media::File => {
                div.attachment.file {
                    svg.icon viewBox="0 0 24 24" aria-hidden="true" {
                        path d="M6 2h8l6 6v12a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1.5V9h5.5z" {}
                    }
                    a href=(url) download=(a.filename) { (a.filename) }
                    span.muted { " " (size(a.size)) }
                }
            }
        }
    }
}

fn is_web(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

fn web_url(value: &Value) -> Option<&str> {
    value.as_str().filter(|u| is_web(u))
}

fn embed(e: &Value, names: &dyn Names) -> Markup {
    let text = |key: &str| e[key].as_str().filter(|s| !s.is_empty());
    let color = e["color"]
        .as_u64()
        .map(|c| format!("border-left-color: #{:06x}", c & 0x00ff_ffff));
    let fields = e["fields"].as_array().cloned().unwrap_or_default();
    html! {
        div.embed style=[color] {
            @if let Some(author) = e["author"]["name"].as_str() {
                div.embed-author { (author) }
            }
            @if let Some(title) = text("title") {
                div.embed-title {
                    @if let Some(url) = web_url(&e["url"]) {
                        a href=(url) target="_blank" rel="noopener noreferrer" { (title) }
                    } @else {
                        (markdown::render(title, names))
                    }
                }
            }
            @if let Some(description) = text("description") {
                div.embed-description { (markdown::render(description, names)) }
            }
            @if !fields.is_empty() {
                div.embed-fields {
                    @for field in &fields {
                        div.embed-field.inline[field["inline"].as_bool() == Some(true)] {
                            div.embed-field-name {
                                (markdown::render(field["name"].as_str().unwrap_or_default(), names))
                            }
                            div.embed-field-value {
                                (markdown::render(field["value"].as_str().unwrap_or_default(), names))
                            }
                        }
                    }
                }
            }
            @if let Some(image) = web_url(&e["image"]["url"]).or(web_url(&e["thumbnail"]["url"])) {
                img.embed-image src=(image) alt="" loading="lazy";
            }
            @if let Some(footer) = e["footer"]["text"].as_str() {
                div.embed-footer { (footer) }
            }
        }
    }
}

/// Options of a select menu: its own, or the guild's members, roles or channels for
/// the auto-populated kinds.
fn select_options(sim: &Sim, names: &SimNames<'_>, c: &ComponentSummary) -> Vec<(String, String)> {
    let members = || {
        sim.members(names.guild)
            .into_iter()
            .filter_map(|m| Some((names.display(m.user_id)?, m.user_id.get().to_string())))
            .collect::<Vec<_>>()
    };
    let roles = || {
        sim.roles(names.guild)
            .into_iter()
            .map(|r| (format!("@{}", r.name), r.id.get().to_string()))
            .collect::<Vec<_>>()
    };
    match c.kind {
        5 => members(),
        6 => roles(),
        7 => members().into_iter().chain(roles()).collect(),
        8 => sim
            .channels(names.guild)
            .into_iter()
            .filter(|ch| listed(ch.kind))
            .map(|ch| (format!("#{}", ch.name), ch.id.get().to_string()))
            .collect(),
        _ => c.options.clone(),
    }
}

fn components(sim: &Sim, names: &SimNames<'_>, m: &Message) -> Markup {
    let all = ComponentSummary::flatten(&m.components);
    if all.is_empty() {
        return html! {};
    }
    let id = m.id.get();
    html! {
        div.row {
            @for c in &all {
                @match (c.kind, &c.custom_id) {
                    (2, Some(custom)) => {
                        button class=(format!("s{}", c.style.unwrap_or(2))) type="button" data-message=(id)
                            data-custom=(custom) disabled[c.disabled] {
                            (c.label.as_deref().unwrap_or_default())
                        }
                    }
                    (2, None) => {
                        @if let Some(url) = c.url.as_deref().filter(|u| is_web(u)) {
                            a.button.s2 href=(url) target="_blank" rel="noopener noreferrer" {
                                (c.label.as_deref().unwrap_or_default()) " ↗"
                            }
                        }
                    }
                    (3 | 5..=8, Some(custom)) => {
                        select data-message=(id) data-custom=(custom) disabled[c.disabled]
                            aria-label=(c.placeholder.as_deref().unwrap_or("Choose")) {
                            option value="" { (c.placeholder.as_deref().unwrap_or("Choose…")) }
                            @for (label, value) in select_options(sim, names, c) {
                                option value=(value) { (label) }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_preview_by_type_or_name() {
        assert_eq!(media(Some("image/png"), "x.bin"), Media::Image);
        assert_eq!(media(None, "map.JPG"), Media::Image);
        assert_eq!(media(Some("video/mp4"), "clip"), Media::Video);
        assert_eq!(media(None, "theme.ogg"), Media::Audio);
        assert_eq!(media(Some("text/html"), "page.html"), Media::File);
        assert_eq!(media(None, "notes"), Media::File);
    }

    #[test]
    fn sizes_and_paths() {
        assert_eq!(size(12), "12 B");
        assert_eq!(size(1536), "1.5 KB");
        assert_eq!(size(3 * 1_048_576), "3.0 MB");
        assert_eq!(path_segment("my map (1).png"), "my%20map%20%281%29.png");
        assert_eq!(clock("2025-06-15T16:53:20.000000+00:00"), "16:53");
        assert_eq!(clock("nonsense"), "");
    }
}
