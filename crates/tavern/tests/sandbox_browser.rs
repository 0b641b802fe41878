//! The sandbox console in headless Chromium, driven through ChromeDriver (WebDriver).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use discord_sim::ChannelKind;
use testkit::browser::Browser;

const MESSAGES: &str = "return document.getElementById('messages').innerText";

/// Waits until the open channel's messages read `needle` (`what` names the wait); the
/// messages' text.
async fn messages_shown(driver: &Browser, what: &str, needle: &str) -> String {
    driver
        .text_when(what, Duration::from_secs(15), MESSAGES, |text| {
            text.contains(needle)
        })
        .await
}

/// Waits until the console's status line (its HTML: code spans as `<code>`) reads
/// `needle`.
async fn status_shown(driver: &Browser, what: &str, needle: &str) {
    driver
        .text_when(
            what,
            Duration::from_secs(10),
            "return document.getElementById('status').innerHTML",
            |status| status.contains(needle),
        )
        .await;
}

/// Sends `text` from the console's composer as whoever it acts as.
async fn send_command(driver: &Browser, text: &str) {
    let input = driver.find("#command").await;
    driver.type_into(&input, text).await;
    let send = driver.find("#send").await;
    driver.click(&send).await;
}

/// Acts as `user` from now on (the "Acting as" menu).
async fn act_as(driver: &Browser, user: impl std::fmt::Display) {
    driver
        .script(&format!(
            "const s = document.getElementById('user'); s.value = '{user}'; \
             s.dispatchEvent(new Event('change')); return s.value;"
        ))
        .await;
}

/// Opens channel `id` from the sidebar and waits until its messages read `needle`;
/// their text.
async fn open_channel(driver: &Browser, id: impl std::fmt::Display, needle: &str) -> String {
    let button = driver
        .find(&format!("button.channel[data-id=\"{id}\"]"))
        .await;
    driver.click(&button).await;
    messages_shown(driver, &format!("channel {id} shows {needle:?}"), needle).await
}

#[tokio::test]
async fn a_person_types_ping_in_the_sandbox_console_and_sees_the_reply() {
    let app = common::spawn_app().await;
    let driver = Browser::start().await;

    driver.open(&app.url("/sandbox")).await;
    // The console lists the demo guild's channels once it has loaded.
    driver.find("button.channel.active").await;
    send_command(&driver, "/ping").await;

    let text = messages_shown(&driver, "the reply to /ping is shown", "Pong").await;
    assert!(
        text.contains("Gateway:") && text.contains("REST:"),
        "{text}"
    );
    assert!(
        text.contains("BOT"),
        "the reply is shown as the bot's: {text}"
    );

    // A mistake is explained on the page, not swallowed.
    send_command(&driver, "/nope").await;
    status_shown(
        &driver,
        "the status shows the error",
        "unknown command <code>/nope</code>",
    )
    .await;
    driver.quit().await;
}

#[tokio::test]
async fn the_console_shows_what_discord_would() {
    let app = common::spawn_app().await;
    let (sim, demo) = (app.sim(), app.demo());
    sim.post_user_message(
        demo.general,
        demo.alice,
        &format!(
            "<@{}>, ||the innkeeper did it|| in <#{}>",
            demo.bob, demo.dice
        ),
        vec![],
    )
    .expect("alice posts");
    let quiet = sim
        .create_channel(demo.guild, "quiet", ChannelKind::Text)
        .expect("a new channel");
    let driver = Browser::start().await;

    driver.open(&app.url("/sandbox")).await;
    // Voice channels are listed, marked as voice.
    driver.find("button.channel.voice").await;
    let voice = driver
        .script(
            "return Array.from(document.querySelectorAll('button.channel.voice'))\
             .map(b => b.textContent).join('|')",
        )
        .await;
    assert!(
        voice.as_str().unwrap_or_default().contains("Table"),
        "{voice}"
    );

    // Mentions show as names, and the spoiler stays hidden until clicked.
    let text = open_channel(&driver, demo.general, "the innkeeper did it").await;
    assert!(text.contains("@bob"), "{text}");
    assert!(text.contains("#dice"), "{text}");
    assert!(!text.contains("<@"), "{text}");
    let spoiler = driver.find("#messages .spoiler").await;
    let class = driver
        .script("return document.querySelector('#messages .spoiler').className")
        .await;
    assert_eq!(class, "spoiler");
    driver.click(&spoiler).await;
    let class = driver
        .script("return document.querySelector('#messages .spoiler').className")
        .await;
    assert_eq!(class, "spoiler revealed");

    // An empty channel opens with its welcome.
    driver
        .open(&app.url(&format!("/sandbox?channel={quiet}")))
        .await;
    let text = messages_shown(
        &driver,
        "#quiet's welcome is shown",
        "This is the beginning of #quiet",
    )
    .await;
    assert!(text.contains("Welcome to #quiet!"), "{text}");
    let messages = driver
        .script("return document.querySelectorAll('#messages .message').length")
        .await;
    assert_eq!(messages, 0);
    driver.quit().await;
}

/// The ids of the messages the console shows, in order.
const SHOWN_IDS: &str = "return Array.from(document.querySelectorAll('#messages article.message'))\
     .map(m => m.dataset.id).join(',')";

#[tokio::test]
async fn the_console_updates_the_channel_message_by_message() {
    let app = common::spawn_app().await;
    let (sim, demo) = (app.sim(), app.demo());
    let first = sim
        .post_user_message(demo.general, demo.alice, "the first message", vec![])
        .expect("alice posts");
    let second = sim
        .post_user_message(demo.general, demo.bob, "the second message", vec![])
        .expect("bob posts");
    let third = sim
        .post_user_message(demo.general, demo.carol, "the third message", vec![])
        .expect("carol posts");
    let driver = Browser::start().await;

    driver
        .open(&app.url(&format!("/sandbox?channel={}", demo.general)))
        .await;
    messages_shown(
        &driver,
        "#general's messages are shown",
        "the third message",
    )
    .await;
    // Every element added to or removed from the list from now on, by message id.
    let watching = driver
        .script(&format!(
            "window.firstShown = document.querySelector('#messages article[data-id=\"{first}\"]'); \
             window.added = []; window.removed = []; \
             new MutationObserver(records => records.forEach(r => {{ \
               r.addedNodes.forEach(n => window.added.push(n.dataset ? n.dataset.id : '?')); \
               r.removedNodes.forEach(n => window.removed.push(n.dataset ? n.dataset.id : '?')); \
             }})).observe(document.getElementById('messages'), {{ childList: true }}); \
             return window.firstShown !== null;"
        ))
        .await;
    assert_eq!(watching, true);

    // A new message, an edit and a deletion.
    let fourth = sim
        .post_user_message(demo.general, demo.alice, "the fourth message", vec![])
        .expect("alice posts again");
    sim.edit_user_message(demo.general, second, "the second message, edited")
        .expect("bob edits");
    sim.delete_user_message(demo.general, third)
        .expect("carol deletes");
    driver
        .text_when(
            "the new, edited and deleted messages are shown so",
            Duration::from_secs(10),
            MESSAGES,
            |text| {
                text.contains("the fourth message")
                    && text.contains("the second message, edited")
                    && !text.contains("the third message")
            },
        )
        .await;

    assert_eq!(
        driver.script(SHOWN_IDS).await,
        serde_json::json!(
            sim.messages(demo.general)
                .iter()
                .map(|m| m.id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        "the list is the channel's, in order"
    );
    let kept = driver
        .script(&format!(
            "return window.firstShown.isConnected && window.firstShown === \
             document.querySelector('#messages article[data-id=\"{first}\"]');"
        ))
        .await;
    assert_eq!(kept, true, "the unchanged message keeps its element");
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let ids = |value: serde_json::Value| {
        sorted(
            value
                .as_str()
                .unwrap()
                .split(',')
                .map(str::to_owned)
                .collect(),
        )
    };
    let added = ids(driver.script("return window.added.join(',');").await);
    let removed = ids(driver.script("return window.removed.join(',');").await);
    assert_eq!(
        added,
        sorted(vec![second.to_string(), fourth.to_string()]),
        "only the new and the edited message are drawn"
    );
    assert_eq!(
        removed,
        sorted(vec![second.to_string(), third.to_string()]),
        "only the edited message's old version and the deleted one go"
    );
    let last = driver
        .script("return document.querySelector('#messages').lastElementChild.dataset.id")
        .await;
    assert_eq!(
        last,
        serde_json::json!(fourth.to_string()),
        "appended at the end"
    );
    driver.quit().await;
}

#[tokio::test]
async fn a_button_pressed_with_the_keyboard_keeps_the_focus_when_its_message_is_edited() {
    let app = common::spawn_app().await;
    let demo = app.demo();
    let driver = Browser::start().await;

    driver
        .open(&app.url(&format!("/sandbox?channel={}", demo.dice)))
        .await;
    send_command(&driver, "/init add goblin").await;
    const JOIN: &str = "Array.from(document.querySelectorAll('#messages button[data-custom]'))\
                        .find(b => b.textContent === 'Join')";
    let tracker = driver
        .text_when(
            "the tracker is shown with its Join button",
            Duration::from_secs(15),
            &format!("const b = {JOIN}; return b ? b.closest('article').dataset.id : '';"),
            |id| !id.is_empty(),
        )
        .await;
    driver
        .script(&format!(
            "window.trackerShown = document.querySelector('#messages article[data-id=\"{tracker}\"]');"
        ))
        .await;

    // Join, with the keyboard: Enter on the focused button.
    let join = driver
        .find(&format!(
            "#messages article[data-id=\"{tracker}\"] button[data-custom]"
        ))
        .await;
    let has_focus = driver
        .script(&format!(
            "const b = {JOIN}; b.focus(); return document.activeElement === b;"
        ))
        .await;
    assert_eq!(has_focus, true, "the Join button has the focus");
    driver.type_into(&join, "\u{E007}").await;
    driver
        .text_when(
            "the tracker is edited",
            Duration::from_secs(15),
            &format!(
                "const m = document.querySelector('#messages article[data-id=\"{tracker}\"]'); \
                 return m && m !== window.trackerShown ? 'edited' : '';"
            ),
            |edited| edited == "edited",
        )
        .await;

    let focused = driver
        .script(
            "const f = document.activeElement; \
             return f.tagName + ' ' + (f.tagName === 'BUTTON' ? f.textContent : '') + ' in ' + \
             (f.closest('article') ? f.closest('article').dataset.id : 'no message');",
        )
        .await;
    assert_eq!(
        focused,
        serde_json::json!(format!("BUTTON Join in {tracker}")),
        "the focus is on the edited tracker's Join button"
    );
    driver.quit().await;
}

#[tokio::test]
async fn the_open_channel_is_marked_current_for_screen_readers() {
    let app = common::spawn_app().await;
    let demo = app.demo();
    let driver = Browser::start().await;
    const CURRENT: &str = "return Array.from(document.querySelectorAll('button.channel'))\
                           .filter(b => b.getAttribute('aria-current') === 'true')\
                           .map(b => b.dataset.id).join(',')";

    driver.open(&app.url("/sandbox")).await;
    driver.find("button.channel.active").await;
    assert_eq!(
        driver.script(CURRENT).await,
        serde_json::json!(demo.dice.to_string()),
        "the console opens on #dice, marked as the current channel"
    );

    let general = driver
        .find(&format!("button.channel[data-id=\"{}\"]", demo.general))
        .await;
    driver.click(&general).await;
    assert_eq!(
        driver.script(CURRENT).await,
        serde_json::json!(demo.general.to_string()),
        "switching marks the new channel, and only it"
    );
    driver.quit().await;
}

/// Gives channel `id`'s button the focus.
async fn focus_channel(driver: &Browser, id: impl std::fmt::Display) {
    let focused = driver
        .script(&format!(
            "const b = document.querySelector('button.channel[data-id=\"{id}\"]'); b.focus(); \
             return document.activeElement === b;"
        ))
        .await;
    assert_eq!(focused, true, "channel {id}'s button has the focus");
}

/// Waits until the channel list, redrawn every 15 s, lists channel `id` (or, not
/// `listed`, no longer lists it); then the id of the channel whose button has the
/// focus, or the tag of whatever has it.
async fn focus_once_redrawn(driver: &Browser, id: impl std::fmt::Display, listed: bool) -> String {
    let want = if listed { "listed" } else { "gone" };
    driver
        .text_when(
            &format!("the list shows channel {id} {want}"),
            Duration::from_secs(40),
            &format!(
                "return document.querySelector('button.channel[data-id=\"{id}\"]') ? 'listed' : 'gone'"
            ),
            |state| state == want,
        )
        .await;
    let focus = driver
        .script(
            "const f = document.activeElement; \
             return f.matches('button.channel') ? f.dataset.id : f.tagName;",
        )
        .await;
    focus.as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_focused_channel_keeps_the_focus_when_the_channel_list_is_redrawn() {
    let app = common::spawn_app().await;
    let (sim, demo) = (app.sim(), app.demo());
    let driver = Browser::start().await;

    driver.open(&app.url("/sandbox")).await;
    driver.find("button.channel.active").await;
    driver
        .find(&format!("button.channel[data-id=\"{}\"]", demo.general))
        .await;
    focus_channel(&driver, demo.general).await;

    // A new channel: the list is redrawn with it (the console asks every 15 s).
    let tables = sim
        .create_channel(demo.guild, "tables", ChannelKind::Text)
        .expect("a new channel");
    assert_eq!(
        focus_once_redrawn(&driver, tables, true).await,
        demo.general.to_string(),
        "the focus is on #general's button again"
    );

    // The focused channel is deleted: the focus goes to the open channel's button, not
    // to the page.
    focus_channel(&driver, tables).await;
    sim.delete_channel(tables).expect("#tables is deleted");
    assert_eq!(
        focus_once_redrawn(&driver, tables, false).await,
        demo.dice.to_string(),
        "the focus is on the open channel's button (#dice)"
    );
    driver.quit().await;
}

#[tokio::test]
async fn a_link_to_a_message_opens_the_console_at_it_and_keeps_it_in_view() {
    let app = common::spawn_app().await;
    let (sim, demo) = (app.sim(), app.demo());
    let clips = sim
        .channel_by_name(demo.guild, "clips")
        .expect("the demo guild has #clips")
        .id;
    // The oldest of a few hundred messages: far above where the list opens.
    let oldest = sim.messages(clips)[0].id;
    // Where the sandbox's links to messages lead (`sandbox_clips` follows one from the
    // clip library).
    let link = app.url(&format!(
        "/sandbox/channels/{}/{clips}/{oldest}",
        demo.guild
    ));
    let driver = Browser::start().await;
    driver.open(&link).await;
    let linked = format!("#messages article.message[data-id=\"{oldest}\"]");
    // Focused, marked and in view (its top inside the list's box); the list's bottom is
    // not.
    let state = format!(
        "const el = document.querySelector('{linked}'); const m = document.getElementById('messages'); \
         const box = m.getBoundingClientRect(); const r = el.getBoundingClientRect(); \
         return {{ focused: document.activeElement === el, marked: el.classList.contains('linked'), \
                   inView: r.top >= box.top - 1 && r.top < box.bottom, \
                   atBottom: m.scrollHeight - m.scrollTop - m.clientHeight < 60 }};"
    );
    let shown = driver.script(&state).await;
    assert_eq!(
        shown,
        serde_json::json!({"focused": true, "marked": true, "inView": true, "atBottom": false}),
        "the linked message is focused, marked and in view"
    );
    let at = driver.script("return location.search").await;
    assert_eq!(
        at,
        serde_json::json!(format!("?channel={clips}&message={oldest}")),
        "redirected to the console at the message"
    );

    // A new message arrives: the list is drawn again, and stays at the linked message.
    sim.post_user_message(clips, demo.alice, "a message after the link", vec![])
        .expect("alice posts");
    messages_shown(
        &driver,
        "the new message is shown",
        "a message after the link",
    )
    .await;
    let kept = driver.script(&state).await;
    assert_eq!(
        kept["inView"], true,
        "the linked message stays in view: {kept}"
    );
    assert_eq!(kept["atBottom"], false, "{kept}");

    // The linked message is edited: drawn again, it keeps its mark and the focus.
    sim.edit_user_message(clips, oldest, "edited after the link")
        .expect("the message is edited");
    messages_shown(&driver, "the edit is shown", "edited after the link").await;
    let edited = driver.script(&state).await;
    assert_eq!(
        edited,
        serde_json::json!({"focused": true, "marked": true, "inView": true, "atBottom": false}),
        "the edited linked message is still focused, marked and in view"
    );
    driver.quit().await;
}

#[tokio::test]
async fn a_roll_for_the_gm_is_read_in_the_gm_s_direct_messages_in_the_console() {
    let app = common::spawn_app().await;
    let (sim, demo) = (app.sim(), app.demo());
    let driver = Browser::start().await;
    driver.open(&app.url("/sandbox")).await;
    // Nobody has direct messages with the bot yet: the sidebar says where they will be.
    driver.find(".dm-none").await;
    let says = driver
        .script("return document.querySelector('.dm-none').textContent")
        .await;
    assert!(
        says.as_str().unwrap().contains("None yet"),
        "the sidebar says there are none yet: {says}"
    );

    // The demo player becomes #dice's GM; Alice rolls for the GM.
    send_command(&driver, "/gm set").await;
    messages_shown(&driver, "the GM is set", "is now this channel's GM").await;
    act_as(&driver, demo.alice).await;
    send_command(&driver, "/roll 1d20+3 mode:gm").await;
    messages_shown(
        &driver,
        "the channel is told of the roll",
        "made a GM roll;",
    )
    .await;
    let dm = sim
        .dm_channel_of(demo.demo_player)
        .expect("the bot opened the GM's direct messages");
    assert_eq!(
        sim.dm_channel_of(demo.alice),
        None,
        "the roller got no direct message"
    );
    // Alice's sidebar lists no direct messages of hers.
    assert_eq!(
        driver
            .script("return document.querySelectorAll('button.channel[data-dm]').length")
            .await,
        0
    );

    // Back as the demo player, their direct messages are listed; opened, they show the
    // roll, and the address names them and the person they are with.
    act_as(&driver, demo.demo_player).await;
    driver
        .find(&format!("button.channel[data-dm][data-id=\"{dm}\"]"))
        .await;
    let text = open_channel(&driver, dm, "made a GM roll in").await;
    assert!(text.contains("@alice made a GM roll in #dice"), "{text}");
    assert!(text.contains("1d20"), "{text}");
    assert!(text.contains("direct messages with"), "the welcome: {text}");
    assert_eq!(
        driver.script("return location.search").await,
        serde_json::json!(format!("?channel={dm}&user={}", demo.demo_player))
    );
    let current = driver
        .script("return document.querySelector('button.channel[aria-current]').dataset.id")
        .await;
    assert_eq!(current, serde_json::json!(dm.to_string()));

    // In direct messages the commands Tavern registers for servers only (`/gm`, `/clips`,
    // the campaigns' hosts' and admins' commands) are neither suggested nor listed, and
    // one typed anyway is not offered there, as in Discord.
    const OFFERED: &str = "return { suggested: Array.from(document.querySelectorAll(\
         '#command-list option:not([disabled])')).map(o => o.value), \
         listed: document.getElementById('commands').innerText }";
    let offered = driver
        .text_when(
            "the sidebar lists the commands offered in direct messages",
            Duration::from_secs(15),
            "return document.getElementById('commands').innerText",
            |listed| listed.contains("Commands in direct messages"),
        )
        .await;
    assert!(offered.contains("/roll"), "{offered}");
    let commands = driver.script(OFFERED).await;
    let suggested: Vec<&str> = commands["suggested"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let listed = commands["listed"].as_str().unwrap();
    for servers_only in ["/gm", "/clips", "/players", "/sync", "/topic"] {
        assert!(
            !suggested.contains(&servers_only),
            "{servers_only}: {suggested:?}"
        );
        assert!(
            !listed
                .lines()
                .any(|l| l == servers_only || l.starts_with(&format!("{servers_only} "))),
            "{servers_only}: {listed}"
        );
    }
    for everywhere in ["/roll", "/odds", "/init", "/link-meetup", "/ronnied"] {
        assert!(
            suggested.contains(&everywhere),
            "{everywhere}: {suggested:?}"
        );
    }
    send_command(&driver, "/gm set").await;
    status_shown(
        &driver,
        "the status says /gm is not offered in direct messages",
        "<code>/gm</code> is not offered in direct messages: the bot offers it in servers only",
    )
    .await;

    // Acting as Alice, whose they are not: the console opens her first channel.
    act_as(&driver, demo.alice).await;
    driver
        .text_when(
            "the console leaves the demo player's direct messages",
            Duration::from_secs(15),
            "return location.search",
            |search| search == format!("?channel={}&user={}", demo.dice, demo.alice),
        )
        .await;
    let text = messages_shown(&driver, "#dice is shown again", "Welcome to #dice!").await;
    assert!(!text.contains("made a GM roll in"), "{text}");
    // In a server's channel every command is suggested again.
    let suggested = driver.script(OFFERED).await["suggested"].clone();
    assert!(
        suggested
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("/gm")),
        "{suggested}"
    );
    // Nor are they hers to read by asking for them.
    let http = reqwest::Client::new();
    let asked = http
        .get(app.url(&format!("/sandbox/api/channels/{dm}?user={}", demo.alice)))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 404);

    // A link to the direct message (Discord's `@me` in place of a guild) opens the
    // console at it, acting as the person they are with.
    let message = sim.messages(dm)[0].id;
    driver
        .open(&app.url(&format!("/sandbox/channels/@me/{dm}/{message}")))
        .await;
    driver
        .find(&format!(
            "#messages article.message.linked[data-id=\"{message}\"]"
        ))
        .await;
    assert_eq!(
        driver
            .script("return document.getElementById('user').value")
            .await,
        serde_json::json!(demo.demo_player.to_string())
    );
    // On a phone, where the channels are a strip scrolling sideways after the guild's,
    // the open direct messages are in view in it (to the pixel: the strip's last
    // button may end a fraction past it).
    driver.window_size(390, 844).await;
    driver
        .open(&app.url(&format!("/sandbox?channel={dm}")))
        .await;
    let strip = driver
        .script(
            "const side = document.getElementById('sidebar').getBoundingClientRect(); \
             const b = document.querySelector('button.channel.active').getBoundingClientRect(); \
             return { strip: document.getElementById('sidebar').scrollWidth > side.width, \
                      inView: b.left >= side.left - 1 && b.right <= side.right + 1 };",
        )
        .await;
    assert_eq!(
        strip,
        serde_json::json!({"strip": true, "inView": true}),
        "the open direct messages are in view in the phone's channel strip"
    );
    driver.quit().await;
}

#[tokio::test]
async fn on_a_phone_the_signed_in_header_shows_every_page_in_reach() {
    let app = common::spawn_app().await;
    let cookie = app.log_in(&common::no_redirects()).await;
    let (name, value) = cookie.split_once('=').unwrap();
    let driver = Browser::start().await;
    // An iPhone 14's window, 390 x 844 CSS pixels.
    driver.window_size(390, 844).await;
    driver.open(&app.url("/")).await;
    driver.add_cookie(name, value).await;
    driver.open(&app.url("/sandbox")).await;
    driver.find("form.logout").await;

    let nav = driver
        .script(
            "const ul = document.querySelector('.site-nav ul'); \
             const links = Array.from(ul.querySelectorAll('a')); \
             return { overflow: ul.scrollWidth - ul.clientWidth, \
                      outside: links.filter(a => { const r = a.getBoundingClientRect(); \
                        return r.left < 0 || r.right > window.innerWidth; }).map(a => a.textContent), \
                      short: links.filter(a => a.getBoundingClientRect().height < 44).map(a => a.textContent), \
                      count: links.length };",
        )
        .await;
    assert!(nav["count"].as_u64().unwrap() >= 4, "{nav}");
    assert_eq!(nav["overflow"], 0, "the navigation does not scroll: {nav}");
    assert_eq!(nav["outside"], serde_json::json!([]), "{nav}");
    assert_eq!(
        nav["short"],
        serde_json::json!([]),
        "every link is 44 px tall: {nav}"
    );
    driver.quit().await;
}

#[tokio::test]
async fn at_twice_the_text_size_on_a_phone_pages_fit_its_width_and_the_console_fills_the_screen() {
    let app = common::spawn_app().await;
    // The reader's text at 32 px, twice the default, in an iPhone 14's window.
    let driver = Browser::start_with_text_size(32).await;
    driver.window_size(390, 844).await;
    driver.open(&app.url("/sandbox")).await;
    driver.find("#command").await;

    // The page follows the reader's text size, and opens scrolled past the site's
    // header to the console, whose messages and composer fill the screen.
    let console = "const m = document.getElementById('messages').getBoundingClientRect(); \
         const c = document.getElementById('command').getBoundingClientRect(); \
         return { text: getComputedStyle(document.body).fontSize, scrolled: window.scrollY > 0, \
                  composerInView: c.top >= 0 && c.bottom <= window.innerHeight, \
                  messagesInView: m.top >= 0 && m.bottom <= window.innerHeight, \
                  messagesShare: Math.round(100 * m.height / window.innerHeight) };";
    let shown = driver.script(console).await;
    assert_eq!(shown["text"], "32px", "{shown}");
    assert_eq!(shown["scrolled"], true, "{shown}");
    assert_eq!(shown["composerInView"], true, "{shown}");
    assert_eq!(shown["messagesInView"], true, "{shown}");
    assert!(
        shown["messagesShare"].as_u64().unwrap() >= 40,
        "the messages take at least 40% of the screen: {shown}"
    );
    // The site's navigation is up the page.
    let nav = driver
        .script(
            "window.scrollTo(0, 0); \
             const a = document.querySelector('.site-nav a').getBoundingClientRect(); \
             return a.top >= 0 && a.bottom <= window.innerHeight;",
        )
        .await;
    assert_eq!(
        nav, true,
        "the navigation is in view at the top of the page"
    );
    // The header keeps to half the screen at most (it took four fifths): the name
    // beside the logo and "with Discord" after "Log in" go, still the links' names,
    // and links and buttons share rows, every link in sight and 44 px tall.
    let header = driver
        .script(
            "window.scrollTo(0, 0); \
             const h = document.querySelector('.site-header').getBoundingClientRect(); \
             const ul = document.querySelector('.site-nav ul'); \
             const links = Array.from(ul.querySelectorAll('a')); \
             return { share: Math.round(100 * h.height / window.innerHeight), \
                      brand: document.querySelector('a.brand').textContent.trim(), \
                      login: document.querySelector('.account a.button').textContent, \
                      overflow: ul.scrollWidth - ul.clientWidth, \
                      outside: links.filter(a => { const r = a.getBoundingClientRect(); \
                        return r.left < 0 || r.right > window.innerWidth; }).length, \
                      short: links.filter(a => a.getBoundingClientRect().height < 44).length };",
        )
        .await;
    assert!(
        header["share"].as_u64().unwrap() <= 50,
        "the header's share of the screen: {header}"
    );
    assert_eq!(
        (
            &header["brand"],
            &header["login"],
            &header["overflow"],
            &header["outside"],
            &header["short"]
        ),
        (
            &serde_json::json!("Tavern"),
            &serde_json::json!("Log in with Discord"),
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{header}"
    );

    // No page is wider than the phone: the sandbox's (its channel strip scrolls on its
    // own), the home page, the features' pages, and a meeting's.
    let meeting = driver
        .script("return document.querySelector('a[href^=\"/meet/\"]').getAttribute('href')")
        .await;
    let meeting = meeting.as_str().expect("the sandbox links a demo meeting");
    let sideways =
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;";
    // The headings a word of which would not fit unbroken.
    let broken_headings = "return Array.from(document.querySelectorAll('main h1, main h2')) \
         .filter(h => { h.style.overflowWrap = 'normal'; const over = h.scrollWidth > h.clientWidth; \
                        h.style.overflowWrap = ''; return over; }) \
         .map(h => h.textContent);";
    for page in ["/sandbox", "/", "/campaigns", "/clips", "/meet", meeting] {
        driver.open(&app.url(page)).await;
        driver.find("main").await;
        assert_eq!(
            driver.script(sideways).await,
            0,
            "{page} does not scroll sideways at twice the text size"
        );
        assert_eq!(
            driver.script(broken_headings).await,
            serde_json::json!([]),
            "every word of {page}'s headings fits the phone's width whole"
        );
    }
    driver.quit().await;
}
