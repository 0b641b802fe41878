//! The sandbox console: a web page where a person plays with Tavern without Discord.
//!
//! It talks to the in-process fake Discord (discord-sim) as a user would talk to
//! Discord: pick a channel, read its messages, type a slash command as one of the demo
//! users, press the buttons and pick from the menus on messages, and read what the bot
//! sent that user alone (their direct messages with it, such as a roll for their GM).
//! The bot on the other side is the production bot, unchanged.
//!
//! The page is rendered on the server inside the site's layout ([`crate::page`]); so
//! are the messages (the `view` module: mentions as names, Discord's markdown,
//! attachments, embeds), and the console's script ([`SCRIPT`]) only fetches fragments,
//! sends what the person does and shows the answer. The routes:
//! - `GET /sandbox?channel=&user=&message=`: the console (session-aware: it shows who is
//!   signed in), with `message` scrolled to and marked;
//! - `GET /sandbox/channels/{guild}/{channel}/{message}`: where the sandbox's links to
//!   messages lead (`discord::Discord::message_url`, as Discord's client opens
//!   `discord.com/channels/…`; `@me` for the guild of a direct message): redirected to
//!   the console at that message (acting as the person a direct message is to);
//! - `GET /sandbox/api/channels/{channel}?user=`: that channel's messages, as HTML (a
//!   direct message channel only for the person it is with);
//! - `GET /sandbox/api/sidebar?channel=&user=`: the channels, the user's direct
//!   messages and the commands, as HTML;
//! - `GET /sandbox/attachments/{channel}/{attachment}/{filename}`: an attachment's bytes;
//! - `POST /sandbox/api/{command,click,select}` (JSON): act as a user.
//!
//! Every route is declared with [`crate::access`] ([`console`] gives them with their
//! manifest): the reads are [`Access::Public`], the actions [`Access::Sandbox`]: open
//! to anyone, since the console plays the demo users, but never a cross-site write.
//! The page sets the console's CSRF cookie and carries the same token in `data-csrf`,
//! which the script sends as `X-CSRF-Token` (see [`crate::session::ConsoleToken`]).
//!
//! With a [`DemoMeetingLink`] ([`routes_with`]) the console also links to the
//! sandbox's demo meeting (`/meet/{code}`), asked for each time the page is drawn, so a
//! meeting that ended is replaced by a new one.

mod command_line;
mod view;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use discord_sim::{Channel, ChannelKind, Demo, Sim, Snowflake};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

pub use command_line::{Directory, parse_command_line, usage};

use crate::access::{Access, Routes};
use crate::page::{Asset, NavLink, Page, Problem};
use crate::session::{ConsoleToken, SessionConfig, Sessions};

/// The console's script: polling, sending commands, clicks and picks.
pub static SCRIPT: Asset = Asset::new(
    "sandbox.js",
    "text/javascript; charset=utf-8",
    include_bytes!("../../assets/sandbox.js"),
);

/// The console's entry in the site's navigation.
pub const NAV: NavLink = NavLink::new(
    "Sandbox",
    "/sandbox",
    "A pretend Discord server with the bot in it: try every command without a bot token.",
);

/// Where the sandbox's demo meetings are, or `None` while there are none (the stores
/// are not up yet, or they could not be made). Asked each time the console is drawn.
pub type DemoMeetingLink =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<DemoMeetings>> + Send>> + Send + Sync>;

/// The paths (such as `/meet/ABC-DEFG-HJK`) of the sandbox's demo meetings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoMeetings {
    /// The end-to-end encrypted meeting anyone joins as a guest.
    pub meeting: String,
    /// A meeting the demo player hosts and may record, when it could be made.
    pub recordable: Option<String>,
}

#[derive(Clone)]
struct Console {
    sim: Sim,
    demo: Demo,
    meeting: Option<DemoMeetingLink>,
    /// For the console's CSRF cookie.
    sessions: SessionConfig,
}

/// How long an action waits for the bot's first answer before returning anyway.
const ANSWER_WAIT: Duration = Duration::from_millis(3500);

/// The console's routes, under `/sandbox` (the page knows who is signed in) and its
/// script under `/assets/`, as a router (see [`console`] for them declared).
pub fn routes(sim: Sim, demo: Demo, sessions: &Sessions) -> Router {
    routes_with(sim, demo, sessions, None)
}

/// [`routes`], the console also linking to the demo meeting `meeting` names.
pub fn routes_with(
    sim: Sim,
    demo: Demo,
    sessions: &Sessions,
    meeting: Option<DemoMeetingLink>,
) -> Router {
    console(sim, demo, sessions, meeting).into_parts().0
}

/// The console's routes declared with who may call them, for the site's manifest.
pub fn console(
    sim: Sim,
    demo: Demo,
    sessions: &Sessions,
    meeting: Option<DemoMeetingLink>,
) -> Routes {
    let console = Console {
        sim,
        demo,
        meeting,
        sessions: sessions.config().clone(),
    };
    Routes::new(sessions)
        .get("/sandbox", Access::Public, console_page)
        .get(
            "/sandbox/channels/{guild}/{channel}/{message}",
            Access::Public,
            message_link,
        )
        .get(
            "/sandbox/api/channels/{channel}",
            Access::Public,
            channel_fragment,
        )
        .get("/sandbox/api/sidebar", Access::Public, sidebar_fragment)
        .get(
            "/sandbox/attachments/{channel}/{attachment}/{filename}",
            Access::Public,
            attachment,
        )
        .post("/sandbox/api/command", Access::Sandbox, command)
        .post("/sandbox/api/click", Access::Sandbox, click)
        .post("/sandbox/api/select", Access::Sandbox, select)
        .with_state(console)
        .assets(&[&SCRIPT])
}

fn bad_request(message: impl Into<String>) -> Response {
    crate::access::Denied::bad_request(message).into_response()
}

/// A malformed id in a request: answered 400 with what was wrong.
struct BadId(String);

impl IntoResponse for BadId {
    fn into_response(self) -> Response {
        bad_request(self.0)
    }
}

fn parse_id(raw: &str, what: &str) -> Result<Snowflake, BadId> {
    raw.trim()
        .parse::<u64>()
        .map(Snowflake::new)
        .map_err(|_| BadId(format!("`{}` is not a {what} id", crate::page::quoted(raw))))
}

impl Console {
    /// The people the console can act as: the demo guild's members who are not bots.
    fn people(&self) -> Vec<(Snowflake, String)> {
        let names = view::SimNames {
            sim: &self.sim,
            guild: self.demo.guild,
        };
        let mut people: Vec<(Snowflake, String)> = [
            self.demo.demo_player,
            self.demo.alice,
            self.demo.bob,
            self.demo.carol,
        ]
        .into_iter()
        .filter_map(|id| Some((id, names.display(id)?)))
        .collect();
        for member in self.sim.members(self.demo.guild) {
            let human = self.sim.user(member.user_id).is_some_and(|u| !u.bot);
            if human
                && !people.iter().any(|(id, _)| *id == member.user_id)
                && let Some(name) = names.display(member.user_id)
            {
                people.push((member.user_id, name));
            }
        }
        people
    }

    /// A channel the console opens: one the demo guild lists, or a person's direct
    /// messages with the bot.
    fn channel(&self, id: Snowflake) -> Option<Channel> {
        self.sim.channel(id).filter(|c| {
            (c.guild_id == Some(self.demo.guild) && view::listed(c.kind))
                || self.dm_with(c).is_some()
        })
    }

    /// The person whose direct messages with the bot `channel` is, if it is one.
    fn dm_with(&self, channel: &Channel) -> Option<Snowflake> {
        if channel.kind != ChannelKind::Dm {
            return None;
        }
        let people = self.people();
        channel
            .recipients
            .iter()
            .copied()
            .find(|r| people.iter().any(|(p, _)| p == r))
    }

    /// `user` when the console can act as them, else the demo player.
    fn person(&self, user: Option<Snowflake>) -> Snowflake {
        user.filter(|u| self.people().iter().any(|(p, _)| p == u))
            .unwrap_or(self.demo.demo_player)
    }

    fn directory(&self) -> Directory {
        let guild = self.demo.guild;
        let mut users = Vec::new();
        for member in self.sim.members(guild) {
            let Some(user) = self.sim.user(member.user_id) else {
                continue;
            };
            let id = user.id.get();
            for name in [Some(user.name), user.global_name, member.nick]
                .into_iter()
                .flatten()
            {
                users.push((name.to_lowercase(), id));
            }
        }
        Directory {
            users,
            roles: self
                .sim
                .roles(guild)
                .into_iter()
                .map(|r| (r.name.to_lowercase(), r.id.get()))
                .collect(),
            channels: self
                .sim
                .channels(guild)
                .into_iter()
                .map(|c| (c.name.to_lowercase(), c.id.get()))
                .collect(),
        }
    }
}

#[derive(Deserialize)]
struct ConsoleQuery {
    channel: Option<String>,
    user: Option<String>,
    /// A message of the channel to scroll to and mark (a link to it was followed).
    message: Option<String>,
}

/// A link to a message, as the sandbox's `Discord::message_url` makes them: the
/// console at that message, acting as the person a direct message is to. One to
/// another guild, or to a direct message the sandbox has not got, says that the console
/// cannot show it.
async fn message_link(
    State(console): State<Console>,
    page: Page,
    Path((guild, channel, message)): Path<(String, String, String)>,
) -> Response {
    let problem = |title: &str, sentence: String| {
        page.problem(
            Problem::new(StatusCode::NOT_FOUND, title, sentence)
                .link("Open the console", "/sandbox"),
        )
    };
    let guild = if guild == "@me" {
        None
    } else {
        match parse_id(&guild, "guild") {
            Ok(g) => Some(g),
            Err(r) => return r.into_response(),
        }
    };
    let (channel, message) = match (parse_id(&channel, "channel"), parse_id(&message, "message")) {
        (Ok(c), Ok(m)) => (c, m),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let Some(guild) = guild else {
        let with = console
            .sim
            .channel(channel)
            .and_then(|c| console.dm_with(&c));
        let Some(person) = with else {
            return problem(
                "No such direct message",
                format!(
                    "This links to direct messages ({channel}) that none of the sandbox's people has with the bot."
                ),
            );
        };
        return axum::response::Redirect::to(&format!(
            "/sandbox?channel={channel}&user={person}&message={message}"
        ))
        .into_response();
    };
    if guild != console.demo.guild {
        return problem(
            "Another server",
            format!(
                "This links to server {guild}; the sandbox's console shows its own guild only."
            ),
        );
    }
    axum::response::Redirect::to(&format!("/sandbox?channel={channel}&message={message}"))
        .into_response()
}

async fn console_page(
    State(console): State<Console>,
    page: Page,
    headers: HeaderMap,
    Query(query): Query<ConsoleQuery>,
) -> Response {
    let token = ConsoleToken::of(&headers, &console.sessions);
    let problem = |title: &str, sentence: String| {
        page.problem(
            Problem::new(StatusCode::BAD_REQUEST, title, sentence)
                .link("Open the console", "/sandbox"),
        )
    };
    let channel = match query.channel.as_deref().map(|c| parse_id(c, "channel")) {
        None => console.demo.dice,
        Some(Ok(id)) => id,
        Some(Err(BadId(why))) => return problem("No such channel", why),
    };
    let linked = match query.message.as_deref().map(|m| parse_id(m, "message")) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(BadId(why))) => return problem("No such message", why),
    };
    let Some(channel) = console.channel(channel) else {
        return problem(
            "No such channel",
            format!("The sandbox's guild has no channel {channel}: it may have been deleted."),
        );
    };
    let people = console.people();
    // Act as the person a direct message is with; else as asked, else as the
    // signed-in person when they are one of the guild's members.
    let signed_in = page
        .user()
        .map(|u| Snowflake::new(u.id.get()))
        .filter(|id| people.iter().any(|(p, _)| p == id));
    let viewer = console
        .dm_with(&channel)
        .or_else(|| {
            query
                .user
                .as_deref()
                .and_then(|u| u.parse::<u64>().ok())
                .map(Snowflake::new)
                .filter(|id| people.iter().any(|(p, _)| p == id))
        })
        .or(signed_in)
        .unwrap_or(console.demo.demo_player);
    let names = view::SimNames {
        sim: &console.sim,
        guild: console.demo.guild,
    };
    let guild = console
        .sim
        .guild(console.demo.guild)
        .map(|g| g.name)
        .unwrap_or_default();
    // The linked message, when it is still there for this viewer to see.
    let shown = linked.filter(|id| {
        console
            .sim
            .messages(channel.id)
            .iter()
            .any(|m| m.id == *id && m.visible_to.is_none_or(|v| v == viewer))
    });
    let commands = console.sim.registered_commands();
    let meeting = match &console.meeting {
        Some(link) => link().await,
        None => None,
    };
    let main = html! {
        div.console-app data-console data-channel=(channel.id.get()) data-csrf=(token.expose())
            data-home=(console.demo.dice.get()) data-dm[channel.kind == ChannelKind::Dm]
            data-message=[shown.map(|m| m.get())] {
            div.console-bar {
                h1 { "Sandbox " span.guild #guild { (guild) } }
                label {
                    "Acting as "
                    select #user {
                        @for (id, name) in &people {
                            option value=(id.get()) selected[*id == viewer] { (name) }
                        }
                    }
                }
                p.hint.about { "A local fake Discord: type a slash command below, press the buttons on messages." }
                @if linked.is_some() && shown.is_none() {
                    p.hint #linked-gone {
                        "The linked message is no longer in " (view::sigil(&channel))
                        (view::title(&console.sim, &names, &channel)) "."
                    }
                }
                @if let Some(meetings) = &meeting {
                    p.hint #demo-meeting {
                        a href=(meetings.meeting) target="_blank" data-demo-meeting { "Open the demo meeting" }
                        " in two tabs to see yourself twice."
                    }
                    @if let Some(recordable) = &meetings.recordable {
                        p.hint #demo-recordable-meeting {
                            a href=(recordable) target="_blank" data-demo-recordable-meeting { "Host a meeting you can record" }
                            " (its host is the demo player: Log in signs you in as them)."
                        }
                    }
                }
            }
            div.console-body {
                aside.console-side #sidebar {
                    (view::sidebar(&console.sim, console.demo.guild, channel.id, viewer))
                }
                section.console-chat aria-label="Messages" {
                    div #messages aria-live="polite" {
                        (view::channel(&console.sim, console.demo.guild, &channel, viewer))
                    }
                    div #status role="status" {}
                    form #composer autocomplete="off" {
                        input #command list="command-list" placeholder="/roll 2d6 + 3"
                            aria-label="Slash command" enterkeyhint="send";
                        datalist #command-list {
                            // Those Discord offers in servers only are left out in
                            // direct messages (the script turns them off there).
                            @for command in &commands {
                                option value=(format!("/{}", command.name))
                                    data-guild-only[!command.offered_in_dms()]
                                    disabled[channel.kind == ChannelKind::Dm && !command.offered_in_dms()] {
                                    (command.description)
                                }
                            }
                        }
                        button #send type="submit" { "Send" }
                    }
                }
            }
        }
    };
    let mut response = page
        .script(&SCRIPT)
        .class("console")
        .render("Sandbox", main)
        .into_response();
    // The page carries its token and the browser its cookie, renewed with each draw.
    response
        .headers_mut()
        .append(header::SET_COOKIE, token.cookie(&console.sessions));
    response
}

#[derive(Deserialize)]
struct AsUser {
    user: Option<String>,
}

/// A fragment of HTML for the console's script.
fn fragment(markup: Markup) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        markup,
    )
        .into_response()
}

async fn channel_fragment(
    State(console): State<Console>,
    Path(channel): Path<String>,
    Query(query): Query<AsUser>,
) -> Response {
    let channel = match parse_id(&channel, "channel") {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let viewer = match query
        .user
        .as_deref()
        .map(|u| parse_id(u, "user"))
        .transpose()
    {
        Ok(v) => v.unwrap_or(console.demo.demo_player),
        Err(r) => return r.into_response(),
    };
    let Some(channel) = console
        .channel(channel)
        .filter(|c| console.dm_with(c).is_none_or(|with| with == viewer))
    else {
        return crate::access::Denied::new(
            StatusCode::NOT_FOUND,
            "no such channel, or direct messages of another person",
        )
        .into_response();
    };
    fragment(view::channel(
        &console.sim,
        console.demo.guild,
        &channel,
        viewer,
    ))
}

#[derive(Deserialize)]
struct SidebarQuery {
    channel: Option<String>,
    user: Option<String>,
}

async fn sidebar_fragment(
    State(console): State<Console>,
    Query(query): Query<SidebarQuery>,
) -> Response {
    let active = match query.channel.as_deref().map(|c| parse_id(c, "channel")) {
        None => console.demo.dice,
        Some(Ok(id)) => id,
        Some(Err(r)) => return r.into_response(),
    };
    let viewer = match query.user.as_deref().map(|u| parse_id(u, "user")) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(r)) => return r.into_response(),
    };
    fragment(view::sidebar(
        &console.sim,
        console.demo.guild,
        active,
        console.person(viewer),
    ))
}

/// An attachment's bytes. Only images, video and audio are shown as what they are;
/// anything else is a download, and nothing served here may run a script on this site.
async fn attachment(
    State(console): State<Console>,
    Path((channel, attachment, _filename)): Path<(String, String, String)>,
) -> Response {
    let (channel, attachment) = match (
        parse_id(&channel, "channel"),
        parse_id(&attachment, "attachment"),
    ) {
        (Ok(c), Ok(a)) => (c, a),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let found = console
        .sim
        .messages(channel)
        .into_iter()
        .flat_map(|m| m.attachments)
        .find(|a| a.id == attachment);
    let (Some(found), Some(data)) = (found, console.sim.attachment_data(attachment)) else {
        return crate::access::Denied::new(
            StatusCode::NOT_FOUND,
            "no such attachment, or it has no content",
        )
        .into_response();
    };
    let shown = view::media(found.content_type.as_deref(), &found.filename) != view::Media::File;
    let content_type = found
        .content_type
        .filter(|_| shown)
        .and_then(|t| HeaderValue::from_str(&t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            ),
        ],
        data.to_vec(),
    )
        .into_response();
    if !shown {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    response
}

#[derive(Deserialize)]
struct CommandBody {
    channel: String,
    user: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct ClickBody {
    channel: String,
    user: Option<String>,
    message: String,
    custom_id: String,
    #[serde(default)]
    values: Vec<String>,
}

fn actor(console: &Console, user: Option<&str>) -> Result<Snowflake, BadId> {
    match user {
        Some(u) => parse_id(u, "user"),
        None => Ok(console.demo.demo_player),
    }
}

async fn answered(interaction: discord_sim::Interaction) -> Response {
    match interaction.response(ANSWER_WAIT).await {
        Ok(reply) if reply.callback_type == 9 => Json(json!({
            "ok": false,
            "callback_type": reply.callback_type,
            "error": "the bot answered with a form (a modal), which the sandbox console cannot show",
        }))
        .into_response(),
        Ok(reply) => {
            Json(json!({ "ok": true, "callback_type": reply.callback_type })).into_response()
        }
        Err(e) => {
            Json(json!({ "ok": false, "error": format!("the bot has not answered yet: {e}") }))
                .into_response()
        }
    }
}

async fn command(State(console): State<Console>, Json(body): Json<CommandBody>) -> Response {
    let (channel, user) = match (
        parse_id(&body.channel, "channel"),
        actor(&console, body.user.as_deref()),
    ) {
        (Ok(c), Ok(u)) => (c, u),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let commands: Vec<(String, Vec<Value>)> = console
        .sim
        .registered_commands()
        .into_iter()
        .map(|c| (c.name, c.options))
        .collect();
    let (name, options) = match parse_command_line(&body.text, &commands, &console.directory()) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    match console.sim.run_command(user, channel, &name, options) {
        Ok(interaction) => answered(interaction).await,
        Err(e) => bad_request(e.to_string()),
    }
}

async fn click(State(console): State<Console>, Json(body): Json<ClickBody>) -> Response {
    component(console, body, false).await
}

async fn select(State(console): State<Console>, Json(body): Json<ClickBody>) -> Response {
    component(console, body, true).await
}

async fn component(console: Console, body: ClickBody, is_select: bool) -> Response {
    let ids = (
        parse_id(&body.channel, "channel"),
        parse_id(&body.message, "message"),
        actor(&console, body.user.as_deref()),
    );
    let (channel, message, user) = match ids {
        (Ok(c), Ok(m), Ok(u)) => (c, m, u),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r.into_response(),
    };
    let result = if is_select {
        console
            .sim
            .select(user, channel, message, &body.custom_id, body.values)
    } else {
        console
            .sim
            .click_button(user, channel, message, &body.custom_id)
    };
    match result {
        Ok(interaction) => answered(interaction).await,
        Err(e) => bad_request(e.to_string()),
    }
}
