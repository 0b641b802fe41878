//! The meetings browser client at `/meet/{code}` in headless Chromium, against a whole
//! Tavern (sandbox mode, its in-process meeting controller): guests join by link with
//! `?name=...&autojoin=1`, see each other's tiles, see one leave; refusals are said on
//! the page. In an end-to-end encrypted meeting the pages agree keys among themselves
//! and show the same safety code; the media handler forwards ciphertext only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use testkit::browser::Browser;

/// How long a page may take to join, or to show what another page did.
const LIMIT: Duration = Duration::from_secs(45);

/// The page's own participant id, once it has joined (empty before).
const SELF_ID: &str = "return document.getElementById('meet').dataset.participant || ''";

/// The remote tiles as `id=name` lines, sorted.
const TILES: &str = "return Array.from(document.querySelectorAll('.tile.remote'))\
     .map(t => t.dataset.participant + '=' + t.querySelector('.name').textContent)\
     .sort().join('\\n')";

/// The remote tiles' `data-frames-decoded`, one a line.
const FRAMES: &str = "return Array.from(document.querySelectorAll('.tile.remote'))\
     .map(t => t.dataset.framesDecoded).join('\\n')";

/// The remote tiles' `data-audio-decoded`, one a line.
const AUDIO: &str = "return Array.from(document.querySelectorAll('.tile.remote'))\
     .map(t => t.dataset.audioDecoded).join('\\n')";

/// The page's safety code (empty until every key in the call is known).
const SAFETY_CODE: &str = "return document.getElementById('meet').dataset.safetyCode || ''";

/// The error the page shows (empty when none).
const ERROR: &str =
    "const e = document.getElementById('error'); return e.hidden ? '' : e.textContent";

/// The page's text.
const PAGE_TEXT: &str = "return document.body.innerText";

/// `none` when the page has no join form or invitation, else what it has.
const NO_JOIN_FORM: &str = "return ['join-form', 'invite-link'] \
     .filter((id) => document.getElementById(id)).join(',') || 'none'";

/// A browser of its own that opens meeting `code`'s link (on the site at `base`) as
/// `name` and joins by itself: it and the page's participant id.
async fn join_by_link(base: &str, code: &str, name: &str) -> (Browser, String) {
    let browser = Browser::start().await;
    browser
        .open(&format!("{base}/meet/{code}?name={name}&autojoin=1"))
        .await;
    let id = browser
        .text_when(&format!("{name} joins"), LIMIT, SELF_ID, |id| {
            !id.is_empty()
        })
        .await;
    (browser, id)
}

/// A host who starts a meeting "Behind the door" with a waiting room from the lobby and
/// is in it: the host's browser, the meeting's code and the host's participant id.
async fn host_behind_a_waiting_room(app: &common::TestApp) -> (Browser, String, String) {
    let (host, code) = host_starts_from_the_lobby(
        app,
        "Behind the door",
        "f.querySelector('[name=waiting_room_enabled]').checked = true;",
    )
    .await;
    let id = host
        .text_when("the host joins at once", LIMIT, SELF_ID, |id| {
            !id.is_empty()
        })
        .await;
    (host, code, id)
}

/// A signed-in host starts a meeting named `name` on the lobby's form (end-to-end
/// encryption off; `more` sets other fields of `f`, the form) and presses Join on its
/// page: the host's browser and the meeting's code.
async fn host_starts_from_the_lobby(
    app: &common::TestApp,
    name: &str,
    more: &str,
) -> (Browser, String) {
    let host = Browser::start().await;
    host.open(&app.url("/login/discord?next=/meet")).await;
    host.text_when(
        "the lobby's start form",
        LIMIT,
        "return document.getElementById('start') ? 'ready' : ''",
        |s| s == "ready",
    )
    .await;
    host.script(&format!(
        "const f = document.getElementById('start');\
         f.querySelector('[name=display_name]').value = {name};\
         f.querySelector('[name=enable_e2e_encryption]').checked = false;\
         {more} f.submit(); return ''",
        name = Value::from(name),
    ))
    .await;
    let path = host
        .text_when(
            "the new meeting's page",
            LIMIT,
            "return document.getElementById('meet') ? location.pathname : ''",
            |p| p.starts_with("/meet/") && p.len() > "/meet/".len(),
        )
        .await;
    let code = path.trim_start_matches("/meet/").to_owned();
    let join = host.find("#join").await;
    host.click(&join).await;
    (host, code)
}

/// Registers an account and creates a meeting with `settings`: its code, and the
/// host's access token.
async fn create_meeting(app: &common::TestApp, settings: Value) -> (String, String) {
    let registered: Value = app
        .http
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({
            "email": format!("host-{}@example.org", rand_suffix()),
            "password": "a long and private passphrase",
            "display_name": "Host",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("registered: {registered}"))
        .to_owned();
    let created = app
        .http
        .post(app.url("/api/v1/meetings"))
        .bearer_auth(&token)
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let meeting: Value = created.json().await.unwrap();
    (meeting["meeting_code"].as_str().unwrap().to_owned(), token)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The expected remote tiles of a page: every other (id, name), as [`TILES`] lists them.
fn others(people: &[(String, &str)], me: usize) -> String {
    let mut lines: Vec<String> = people
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, (id, name))| format!("{id}={name}"))
        .collect();
    lines.sort();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_guests_join_by_link_see_each_other_and_see_one_leave() {
    let app = common::spawn_app().await;
    let (code, _) = create_meeting(
        &app,
        json!({ "display_name": "Friday table", "max_participants": 8 }),
    )
    .await;
    let names = NAMES;

    // Each joins by link in a browser of their own, one after the other.
    let mut people: Vec<(String, &str)> = Vec::new();
    let mut browsers = Vec::new();
    for name in names {
        let (browser, id) = join_by_link(&app.url(""), &code, name).await;
        assert_eq!(
            browser.script(ERROR).await,
            "",
            "{name} joins without an error"
        );
        people.push((id, name));
        browsers.push(browser);
    }
    let title = browsers[0]
        .script("return document.getElementById('meeting-title').textContent")
        .await;
    assert!(
        title.as_str().unwrap_or_default().contains("Friday table"),
        "{title}"
    );
    // The invitation is the meeting's whole link, and its button copies it.
    let link = browsers[0]
        .script("return document.getElementById('invite-link').textContent")
        .await;
    assert_eq!(link, app.url(&format!("/meet/{code}")).as_str());
    let copy = browsers[0].find("#copy-link").await;
    browsers[0].click(&copy).await;
    browsers[0]
        .text_when(
            "the link is copied",
            LIMIT,
            "return document.getElementById('copy-link').dataset.copied || ''",
            |copied| copied == "1",
        )
        .await;

    // Every page shows the other two, by id and name: those there before (the
    // JoinResponse) and those who came after (ParticipantJoined).
    for (i, browser) in browsers.iter().enumerate() {
        let expected = others(&people, i);
        browser
            .text_when(
                &format!("{} sees the other two", names[i]),
                LIMIT,
                TILES,
                |tiles| tiles == expected,
            )
            .await;
        // No media handler serves these pages' media: nothing was decoded.
        assert_eq!(browser.script(FRAMES).await, "0\n0");
    }

    // The meeting is end-to-end encrypted (the default): every page says so and, once
    // the keys are agreed through the controller, shows the same safety code.
    for browser in &browsers {
        let shown = browser
            .script(
                "return (document.getElementById('meet').dataset.e2e || '') + ':' + \
                 document.querySelector('#e2e .e2e-badge').textContent",
            )
            .await;
        assert_eq!(shown.as_str(), Some("1:End-to-end encrypted"));
    }
    let three = same_safety_code(&browsers.iter().collect::<Vec<_>>()).await;

    // Ada mutes her microphone: the others' tiles for her say so.
    let mute = browsers[0].find("#mute-audio").await;
    browsers[0].click(&mute).await;
    let ada = &people[0].0;
    for (i, browser) in browsers.iter().enumerate().skip(1) {
        browser
            .text_when(
                &format!("{} sees Ada muted", names[i]),
                LIMIT,
                &format!(
                    "const t = document.querySelector('.tile.remote[data-participant=\"{ada}\"]'); \
                     return t && !t.querySelector('.mic-off').hidden ? t.dataset.audioMuted : ''"
                ),
                |muted| muted == "true",
            )
            .await;
    }

    // Cyra leaves; the others' tiles for her go, and her page says she left.
    let leave = browsers[2].find("#leave").await;
    browsers[2].click(&leave).await;
    browsers[2]
        .text_when(
            "Cyra's page says she left",
            LIMIT,
            "return document.getElementById('left').hidden ? '' : 'left'",
            |left| left == "left",
        )
        .await;
    assert_eq!(browsers[2].script(ERROR).await, "");
    assert_eq!(
        browsers[2].script(END_SHOWN).await,
        "|left",
        "she left; the meeting did not end"
    );
    let remaining = &people[..2];
    for (i, browser) in browsers[..2].iter().enumerate() {
        let expected = others(remaining, i);
        browser
            .text_when(
                &format!("{} no longer sees Cyra", names[i]),
                LIMIT,
                TILES,
                |tiles| tiles == expected,
            )
            .await;
    }
    // The two left agree on a new safety code, over their two keys only.
    let two = same_safety_code(&[&browsers[0], &browsers[1]]).await;
    assert_ne!(two, three);
    for browser in browsers {
        browser.quit().await;
    }
}

/// What the page says of the end of its meeting: `#ended`'s text while it shows, then
/// `|left` while "You left the meeting" shows, then `|join` while the join form shows.
const END_SHOWN: &str = "const shown = (id) => !document.getElementById(id).hidden; \
     return (shown('ended') ? document.getElementById('ended').textContent : '') \
       + (shown('left') ? '|left' : '') + (shown('join-form') ? '|join' : '')";

/// For each tile, scrolled to the middle of the screen: whether what shows at its
/// centre is the tile (not something over it); in how many columns the tiles are; for
/// each tile, whether its caption lies `over` its picture (the video, or the initial
/// shown while the camera is off) or `under` it; whether the Mute button shows; how far
/// the page scrolls sideways; and the controls' `position`.
const UNCOVERED: &str = "const shown = (el) => { el.scrollIntoView({ block: 'center' }); \
     const r = el.getBoundingClientRect(); \
     const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); \
     return Boolean(at && el.contains(at)); }; \
     const all = Array.from(document.querySelectorAll('.tile')); \
     const tiles = all.map(shown); \
     const columns = new Set(all.map((t) => Math.round(t.getBoundingClientRect().left))).size; \
     const captions = all.map((t) => { \
       const picture = Array.from(t.querySelectorAll('video, canvas, .placeholder')) \
         .find((p) => p.getClientRects().length > 0); \
       if (!picture) return 'no picture'; \
       const caption = t.querySelector('figcaption').getBoundingClientRect(); \
       return caption.top >= picture.getBoundingClientRect().bottom - 0.5 ? 'under' : 'over'; }); \
     return { tiles, columns, captions, mute: shown(document.getElementById('mute-audio')), \
              sideways: document.documentElement.scrollWidth - document.documentElement.clientWidth, \
              controls: getComputedStyle(document.querySelector('.controls')).position };";

/// [`UNCOVERED`] on `browser` once it shows `other`'s tile.
async fn uncovered_seeing(browser: &Browser, other: &str) -> Value {
    let tile = format!("={other}");
    browser
        .text_when(&format!("{other}'s tile shows"), LIMIT, TILES, |tiles| {
            tiles.contains(&tile)
        })
        .await;
    browser.script(UNCOVERED).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_at_twice_the_text_size_the_tiles_fill_the_width_and_the_controls_cover_none() {
    let app = common::spawn_app().await;
    let (code, _) = create_meeting(&app, json!({ "display_name": "Large print" })).await;
    let (first, ada) = join_by_link(&app.url(""), &code, "Ada").await;
    // The reader's text at 32 px, twice the default, in an iPhone 14's window.
    let phone = Browser::start_with_text_size(32).await;
    phone.window_size(390, 844).await;
    phone
        .open(&app.url(&format!("/meet/{code}?name=Bea&autojoin=1")))
        .await;
    // The captions, lines of large text here, go under the pictures, not over them.
    assert_eq!(
        uncovered_seeing(&phone, "Ada").await,
        json!({"tiles": [true, true], "columns": 1, "captions": ["under", "under"], "mute": true, "sideways": 0, "controls": "static"}),
        "at twice the text size the tiles are one under the other and the controls follow them"
    );
    // At the default size they stay at the bottom of the screen, over nothing, and the
    // names are written over the pictures.
    assert_eq!(
        uncovered_seeing(&first, "Bea").await,
        json!({"tiles": [true, true], "columns": 2, "captions": ["over", "over"], "mute": true, "sideways": 0, "controls": "sticky"}),
        "at the default size the controls stay at hand"
    );
    // Ada turns her camera off: on the phone her initial takes the picture's place, as
    // large as the picture was, and her caption stays under it.
    let picture = |id: &str| {
        format!(
            "const t = document.querySelector('.tile.remote[data-participant=\"{id}\"]'); \
             const p = Array.from(t.querySelectorAll('canvas, .placeholder')) \
               .find((p) => p.getClientRects().length > 0); \
             const r = p.getBoundingClientRect(); \
             return p.className + ' ' + Math.round(r.width) + 'x' + Math.round(r.height)"
        )
    };
    let shown = |value: Value| value.as_str().unwrap_or_default().to_owned();
    let before = shown(phone.script(&picture(&ada)).await);
    let camera = first.find("#mute-video").await;
    first.click(&camera).await;
    sees_muted(&phone, &ada, "video", true).await;
    let after = shown(phone.script(&picture(&ada)).await);
    assert!(before.starts_with(" "), "the canvas first: {before}");
    assert_eq!(
        after,
        format!("placeholder{before}"),
        "the initial is shown as large as the picture was"
    );
    assert_eq!(
        uncovered_seeing(&phone, "Ada").await["captions"],
        json!(["under", "under"])
    );
    phone.quit().await;
    first.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_whose_host_ends_the_meeting_is_told_so_and_offered_no_join_again() {
    let app = common::spawn_app().await;
    let (code, host) = create_meeting(&app, json!({ "display_name": "One shot" })).await;
    let (browser, _) = join_by_link(&app.url(""), &code, "Gil").await;
    assert_eq!(browser.script(END_SHOWN).await, "", "in the call");

    let end = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{code}/end")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 200);
    let said = browser
        .text_when("the end is said", LIMIT, END_SHOWN, |s| !s.is_empty())
        .await;
    assert_eq!(said, "The host ended this meeting. Back to the meetings");
    assert_eq!(browser.script(ERROR).await, "", "not an error");
    assert_eq!(
        browser
            .script("return document.getElementById('meet').dataset.ended || ''")
            .await,
        "1"
    );
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_why_a_guest_cannot_join() {
    let app = common::spawn_app().await;
    let (members_only, _) = create_meeting(
        &app,
        json!({ "display_name": "Members only", "require_auth": true }),
    )
    .await;
    let browser = Browser::start().await;

    // A meeting for signed-in users only.
    browser
        .open(&app.url(&format!("/meet/{members_only}?name=Guest&autojoin=1")))
        .await;
    assert_eq!(browser.status().await, 200);
    let error = browser
        .text_when("the refusal is shown", LIMIT, ERROR, |e| !e.is_empty())
        .await;
    assert!(error.contains("signed-in users only"), "{error}");
    assert_eq!(browser.script(SELF_ID).await, "");

    // An ended meeting.
    let (ended, host) = create_meeting(&app, json!({ "display_name": "Last week" })).await;
    let end = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{ended}/end")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 200);
    // The page says so at once (410), with no invitation and no form to join with.
    browser
        .open(&app.url(&format!("/meet/{ended}?name=Late&autojoin=1")))
        .await;
    assert_eq!(browser.status().await, 410);
    let text = browser.script(PAGE_TEXT).await.to_string();
    assert!(text.contains("This meeting has ended."), "{text}");
    assert_eq!(browser.script(NO_JOIN_FORM).await, "none", "{text}");
    assert_eq!(browser.script(SELF_ID).await, "");

    // A full meeting: its one place is taken by a program; the controller refuses.
    told_the_meeting_is_full(&app, &browser).await;

    // A code that names no meeting, typed by hand: a page saying so, with 404 and no
    // form to join with.
    browser.open(&app.url("/meet/zzz-zzzz-zzz")).await;
    assert_eq!(browser.status().await, 404);
    let text = browser.script(PAGE_TEXT).await.to_string();
    assert!(text.contains("No meeting has this code"), "{text}");
    assert_eq!(browser.script(NO_JOIN_FORM).await, "none", "{text}");

    // Something that cannot be a code is a page saying so, with 404.
    browser.open(&app.url("/meet/not-a-code!")).await;
    assert_eq!(browser.status().await, 404);
    let text = browser.script("return document.body.innerText").await;
    assert!(
        text.as_str()
            .unwrap_or_default()
            .contains("is not a meeting code"),
        "{text}"
    );
    browser.quit().await;
}

/// A page slow to read what the controller says still learns why its join was refused:
/// the controller waits for the page to close the connection, having read it. Closed
/// from the controller's side at once, the connection took the unread refusal with it
/// (a browser drops what it has not read), and the page could only say that the meeting
/// server closed the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_slow_to_read_its_refusal_still_reads_it() {
    let app = common::spawn_app().await;
    let browser = Browser::start().await;
    before_the_page(&browser, LATE_READER).await;
    told_the_meeting_is_full(&app, &browser).await;
    assert_eq!(
        browser.script(LATE_STREAMS).await,
        "1",
        "the page's signalling stream was read late"
    );
    browser.quit().await;
}

/// `browser` joins, by link, a meeting whose one place a program holds: the page says
/// that the meeting is full, and is not in it.
async fn told_the_meeting_is_full(app: &common::TestApp, browser: &Browser) {
    let (full, _) = create_meeting(
        app,
        json!({ "display_name": "Duel", "max_participants": 1 }),
    )
    .await;
    let (duelist, _) = guest_over_api(app, &full, "Duelist").await;
    browser
        .open(&app.url(&format!("/meet/{full}?name=Second&autojoin=1")))
        .await;
    let error = browser
        .text_when("the full meeting is explained", LIMIT, ERROR, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(error, "The meeting is full.");
    assert_eq!(browser.script(SELF_ID).await, "");
    duelist.leave().await.unwrap();
}

/// Has `browser` run `source` in every page it opens from now on, before the page's
/// own scripts.
async fn before_the_page(browser: &Browser, source: &str) {
    browser
        .call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": "Page.addScriptToEvaluateOnNewDocument",
                   "params": {"source": source}}),
        )
        .await;
}

/// Installed before any page script: the page reads the first of what the meeting
/// server sends on a bidirectional stream only once the connection has closed, or
/// after half a second (a page busy elsewhere); the controller waits 2 s for a close.
const LATE_READER: &str = r"(() => {
  const create = WebTransport.prototype.createBidirectionalStream;
  window.lateStreams = 0;
  WebTransport.prototype.createBidirectionalStream = async function (...args) {
    const stream = await create.apply(this, args);
    window.lateStreams += 1;
    const late = Promise.race([
      this.closed.then(() => {}, () => {}),
      new Promise((resolve) => { setTimeout(resolve, 500); }),
    ]);
    const reader = stream.readable.getReader();
    const readable = new ReadableStream({
      async pull(controller) {
        await late;
        try {
          const { value, done } = await reader.read();
          if (done) controller.close(); else controller.enqueue(value);
        } catch (e) {
          controller.error(e);
        }
      },
    });
    return { readable, writable: stream.writable };
  };
})();";

/// How many bidirectional streams the page opened under [`LATE_READER`].
const LATE_STREAMS: &str = "return String(window.lateStreams)";

/// A fixed meetings key, so Tavern and the controller of the test sign and check alike.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Installed before any page script: `getUserMedia` answers a synthetic camera (a
/// canvas changing colour 25 times a second) and microphone (a 440 Hz tone written
/// as `AudioData`), since the
/// browser helper does not start Chromium with its fake capture devices.
const SYNTHETIC_DEVICES: &str = r"(() => {
  if (!navigator.mediaDevices) return;
  const fake = async (constraints) => {
    const tracks = [];
    if (constraints && constraints.video) {
      const canvas = document.createElement('canvas');
      canvas.width = 320; canvas.height = 180;
      const g = canvas.getContext('2d');
      let n = 0;
      setInterval(() => {
        n++;
        g.fillStyle = `hsl(${(n * 7) % 360} 70% 50%)`;
        g.fillRect(0, 0, 320, 180);
        g.fillStyle = '#fff';
        g.fillText(String(n), 10, 20);
      }, 40);
      tracks.push(...canvas.captureStream(25).getVideoTracks());
    }
    if (constraints && constraints.audio) {
      const tone = new MediaStreamTrackGenerator({ kind: 'audio' });
      const writer = tone.writable.getWriter();
      let at = 0;
      setInterval(() => {
        const data = new Float32Array(960);
        for (let i = 0; i < 960; i++) data[i] = 0.2 * Math.sin((2 * Math.PI * 440 * (at + i)) / 48000);
        writer.write(new AudioData({ format: 'f32-planar', sampleRate: 48000, numberOfFrames: 960,
          numberOfChannels: 1, timestamp: (at * 1e6) / 48000, data }));
        at += 960;
      }, 20);
      tracks.push(tone);
    }
    return new MediaStream(tracks);
  };
  Object.defineProperty(navigator.mediaDevices, 'getUserMedia', { value: fake });
})();";

/// Waits until every page shows one safety code (15 digits in groups of five); it.
async fn same_safety_code(browsers: &[&Browser]) -> String {
    testkit::eventually_within(LIMIT, "the pages show one safety code", || async {
        let mut codes = Vec::new();
        for browser in browsers {
            let code = browser.script(SAFETY_CODE).await;
            codes.push(code.as_str().unwrap_or_default().to_owned());
        }
        let first = codes[0].clone();
        let well_formed = first.len() == 17
            && first
                .split(' ')
                .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()));
        (well_formed && codes.iter().all(|c| *c == first)).then_some(first)
    })
    .await
}

/// A Tavern whose meetings have a media handler (see [`media_world`]), with what a
/// test needs to connect to that handler itself.
struct MediaWorld {
    app: common::TestApp,
    stop: tokio_util::sync::CancellationToken,
    repo: meetings::Repo,
    /// The handler's `https://host:port`.
    endpoint: String,
    certificate_hash: String,
    /// The handler alone: stops it (`stop` does too).
    handler_stop: tokio_util::sync::CancellationToken,
    handler: tokio::task::JoinHandle<Result<(), meetings::media::MediaError>>,
}

/// Media handler `id` in this process over `repo`, with a heartbeat every
/// `heartbeat_every`, serving until `stop`: it, bound, and its task.
async fn start_media_handler(
    repo: &meetings::Repo,
    id: &str,
    heartbeat_every: Duration,
    stop: &tokio_util::sync::CancellationToken,
) -> (
    meetings::controller::MediaHandlerAddress,
    meetings::media::Load,
    tokio::task::JoinHandle<Result<(), meetings::media::MediaError>>,
) {
    use meetings::media::{HandlerConfig, MediaHandler};
    let handler_id = meetings::domain::HandlerId::parse(id).unwrap();
    let handler = MediaHandler::bind(
        repo.clone(),
        HandlerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            heartbeat_every,
            ..HandlerConfig::new(handler_id.clone())
        },
    )
    .await
    .expect("the media handler starts");
    let address = meetings::controller::MediaHandlerAddress {
        handler_id: handler_id.clone(),
        endpoint: handler.endpoint(),
        certificate_hash: Some(handler.certificate_hash().to_owned()),
    };
    let load = handler.load();
    let task = tokio::spawn(handler.run(stop.clone()));
    testkit::eventually("the media handler registers", || {
        let (repo, id) = (repo.clone(), handler_id.clone());
        async move { repo.media_handler(&id).await.ok() }
    })
    .await;
    (address, load, task)
}

impl MediaWorld {
    /// A client of the server's own in `meeting` (by id), as the recorder is (a
    /// `recorder` token, an id nobody else knows of), connected to the media handler:
    /// it receives every frame the handler forwards in that meeting.
    async fn eavesdropper(&self, meeting: &str) -> meetings::media::client::MediaClient {
        let meeting = meetings::domain::MeetingId::parse(meeting).unwrap();
        let token = self
            .repo
            .issue_service_token(
                meeting,
                meetings::domain::ParticipantId::random(),
                meetings::domain::ServiceConnection::Recorder,
            )
            .await
            .unwrap();
        meetings::media::client::MediaClient::connect(
            &format!("{}/media/{meeting}", self.endpoint),
            token.expose(),
            Some(&self.certificate_hash),
        )
        .await
        .unwrap()
    }
}

/// The three of `NAMES`, each in a browser with synthetic devices, joined to `code` in
/// turn, once each page shows the other two: the browsers, and each one's participant
/// id with its name.
async fn three_with_devices(
    app: &common::TestApp,
    code: &str,
) -> (Vec<Browser>, Vec<(String, &'static str)>) {
    let mut people: Vec<(String, &str)> = Vec::new();
    let mut browsers = Vec::new();
    for name in NAMES {
        let (browser, id) = join_with_devices(app, code, name).await;
        people.push((id, name));
        browsers.push(browser);
    }
    for (i, browser) in browsers.iter().enumerate() {
        let expected = others(&people, i);
        browser
            .text_when(
                &format!("{} sees the other two", NAMES[i]),
                LIMIT,
                TILES,
                |tiles| tiles == expected,
            )
            .await;
    }
    (browsers, people)
}

/// The names of the three-person meetings.
const NAMES: [&str; 3] = ["Ada", "Brom", "Cyra"];

/// A browser with synthetic devices, joined to `code` by link as `name`: it and the
/// page's participant id.
async fn join_with_devices(app: &common::TestApp, code: &str, name: &str) -> (Browser, String) {
    let browser = Browser::start().await;
    before_the_page(&browser, SYNTHETIC_DEVICES).await;
    // The controller may still be registering: join again until it takes the join.
    let id = testkit::eventually_within(LIMIT, &format!("{name} joins"), || {
        let (browser, url) = (
            &browser,
            app.url(&format!("/meet/{code}?name={name}&autojoin=1")),
        );
        async move {
            browser.open(&url).await;
            let id = browser
                .text_when(
                    "the join settles",
                    LIMIT,
                    "const m = document.getElementById('meet'); \
                     return m.dataset.participant ? 'in:' + m.dataset.participant \
                          : (m.dataset.error ? 'error:' + m.dataset.error : '')",
                    |state| !state.is_empty(),
                )
                .await;
            id.strip_prefix("in:").map(str::to_owned)
        }
    })
    .await;
    (browser, id)
}

/// Waits until every page decodes video from both others (each remote tile's count
/// above what `floor` gives for it); the counts.
async fn decoding(browsers: &[&Browser], what: &str, floor: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let mut all = Vec::new();
    for (i, browser) in browsers.iter().enumerate() {
        let frames = browser
            .text_when(what, Duration::from_secs(60), FRAMES, |frames| {
                let counts: Vec<u64> = frames.lines().filter_map(|c| c.parse().ok()).collect();
                counts.len() == browsers.len() - 1
                    && counts.iter().enumerate().all(|(t, &c)| {
                        c > floor.get(i).and_then(|f| f.get(t)).copied().unwrap_or(0)
                    })
            })
            .await;
        all.push(frames.lines().filter_map(|c| c.parse().ok()).collect());
    }
    all
}

/// Tavern with `meeting_controller = "separate"` and the fixed key, ready; the
/// context and meetings settings a controller in this process is made with.
async fn separate_world() -> (common::TestApp, feature::Context, meetings::MeetingsConfig) {
    discord::install_crypto_provider();
    let redis = store::harness::TestRedis::start().await;
    let postgres = store::harness::TestPostgres::start().await;
    let config = common::config(&[
        ("TAVERN_REDIS_URL", redis.url()),
        ("TAVERN_DATABASE_URL", postgres.url()),
        ("TAVERN_MEETINGS_SECRET_KEY", KEY.to_owned()),
        ("TAVERN_MEETING_CONTROLLER", "separate".to_owned()),
    ]);
    let settings = tavern::app::meetings_config(&config);
    let running = tavern::start(config.clone()).await.expect("tavern starts");
    let app = common::TestApp {
        running,
        redis,
        postgres,
        http: reqwest::Client::new(),
    };
    app.wait_ready().await;

    let ctx = tavern::app::context(
        store::Redis::connect(&app.redis.url()).await.unwrap(),
        store::Postgres::connect(&app.postgres.url()).await.unwrap(),
        discord::Discord::without_token(),
        tavern::app::public_url(&config, app.running.http_addr).unwrap(),
    );
    (app, ctx, settings)
}

/// The controller the registry assigned the meeting with `code` to.
async fn assigned_controller(pool: &store::Postgres, code: &str) -> String {
    sqlx::query_scalar("SELECT assigned_controller_id FROM meet.meetings WHERE meeting_code = $1")
        .bind(code)
        .fetch_one(pool.pool())
        .await
        .unwrap()
}

/// A meeting controller `id` in this process over `ctx` (its settings changed by
/// `adjust`), serving until `stop`, once it has registered.
async fn start_controller(
    ctx: &feature::Context,
    settings: &meetings::MeetingsConfig,
    id: &str,
    adjust: impl FnOnce(&mut meetings::controller::ControllerConfig),
    stop: &tokio_util::sync::CancellationToken,
) -> meetings::domain::ControllerId {
    let id = meetings::domain::ControllerId::parse(id).unwrap();
    let mut config = meetings::controller::ControllerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..meetings::controller::ControllerConfig::new(id.clone())
    };
    adjust(&mut config);
    let repo = meetings::Repo::from_context(ctx);
    let controller = meetings::controller::MeetingController::bind(
        repo.clone(),
        meetings::auth(ctx, settings),
        config,
    )
    .await
    .expect("the meeting controller starts");
    tokio::spawn(controller.run(stop.clone()));
    testkit::eventually("the controller registers", || {
        let (repo, id) = (repo.clone(), id.clone());
        async move { repo.controller(&id).await.ok() }
    })
    .await;
    id
}

/// Tavern with `meeting_controller = "separate"`, and in this process a media handler
/// and a meeting controller granting it (the pieces `tavern serve` will assemble).
async fn media_world() -> MediaWorld {
    use meetings::controller::{MediaDirectory, MediaHandlers};
    use meetings::domain::Liveness;

    let (app, ctx, settings) = separate_world().await;
    let repo = meetings::Repo::from_context(&ctx);
    let stop = tokio_util::sync::CancellationToken::new();
    let handler_stop = stop.child_token();
    let (address, _, handler) = start_media_handler(
        &repo,
        "mh-browser-test",
        Duration::from_secs(10),
        &handler_stop,
    )
    .await;
    let (endpoint, certificate_hash) = (
        address.endpoint.clone(),
        address.certificate_hash.clone().unwrap_or_default(),
    );

    start_controller(
        &ctx,
        &settings,
        "mc-media",
        |config| {
            config.media = Some(MediaHandlers {
                directory: MediaDirectory::new(vec![address]),
                liveness: Liveness::default(),
            });
        },
        &stop,
    )
    .await;
    MediaWorld {
        app,
        stop,
        repo,
        endpoint,
        certificate_hash,
        handler_stop,
        handler,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_media_handler_each_guest_decodes_the_others_video() {
    let world = media_world().await;
    let (app, stop) = (&world.app, &world.stop);
    // Not end-to-end encrypted: frames travel as encoded.
    let (code, _) = create_meeting(
        app,
        json!({ "display_name": "Video table", "enable_e2e_encryption": false }),
    )
    .await;
    let names = NAMES;
    let (browsers, people) = three_with_devices(app, &code).await;
    // Every page decodes both others' video: each tile's count rises above zero.
    for (i, browser) in browsers.iter().enumerate() {
        browser
            .text_when(
                &format!("{} decodes the others' video", names[i]),
                Duration::from_secs(60),
                FRAMES,
                |frames| {
                    let counts: Vec<u64> = frames.lines().filter_map(|c| c.parse().ok()).collect();
                    counts.len() == 2 && counts.iter().all(|&c| c > 0)
                },
            )
            .await;
    }

    // And their audio.
    for (i, browser) in browsers.iter().enumerate() {
        browser
            .text_when(
                &format!("{} decodes the others' audio", names[i]),
                Duration::from_secs(60),
                AUDIO,
                |frames| {
                    let counts: Vec<u64> = frames.lines().filter_map(|c| c.parse().ok()).collect();
                    counts.len() == 2 && counts.iter().all(|&c| c > 0)
                },
            )
            .await;
    }

    // Brom leaves; the others' tiles for him go.
    let leave = browsers[1].find("#leave").await;
    browsers[1].click(&leave).await;
    let remaining = [people[0].clone(), people[2].clone()];
    for (i, browser) in [&browsers[0], &browsers[2]].into_iter().enumerate() {
        let expected = others(&remaining, i);
        browser
            .text_when("Brom's tile goes", LIMIT, TILES, |tiles| tiles == expected)
            .await;
    }
    for browser in browsers {
        browser.quit().await;
    }
    stop.cancel();
}

/// What an eavesdropper on the media handler saw of one publisher's video.
#[derive(Default)]
struct Seen {
    /// The SFrame key id of its latest frame.
    key_id: Option<u32>,
    /// The key id of its latest key frame, and that frame's ciphertext where a VP8
    /// key frame has its start code and size (bytes 3..10 after the 12-byte SFrame
    /// header), the same plaintext in every key frame of the call.
    key_frame: Option<(u32, Vec<u8>)>,
}

/// Reads frames from `spy` until `done` accepts what was seen of each publisher in
/// `who`, checking every frame on the way: end-to-end encrypted, with an SFrame-style
/// header, and no VP8 key frame in the clear.
async fn watch(
    spy: &mut meetings::media::client::MediaClient,
    who: &[String],
    what: &str,
    done: impl Fn(&std::collections::HashMap<String, Seen>) -> bool,
) -> std::collections::HashMap<String, Seen> {
    use meetings::media::proto::{FLAG_E2E, FLAG_KEY};
    const VP8_START: [u8; 3] = [0x9d, 0x01, 0x2a];
    let mut seen: std::collections::HashMap<String, Seen> = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(&seen) {
        let frame = tokio::time::timeout_at(deadline, spy.next_frame())
            .await
            .unwrap_or_else(|_| panic!("{what}: not seen in time"))
            .expect("the handler session stays open")
            .expect("a well-formed frame");
        assert_ne!(frame.header.flags & FLAG_E2E, 0, "a frame in the clear");
        let payload = &frame.payload;
        assert!(payload.len() > 12 + 16, "an SFrame header and a tag");
        let publisher = frame.publisher.to_string();
        if frame.header.track != 1 || !who.contains(&publisher) {
            continue;
        }
        let entry = seen.entry(publisher).or_default();
        let key_id = u32::from_be_bytes(payload[..4].try_into().unwrap());
        entry.key_id = Some(key_id);
        if frame.header.flags & FLAG_KEY != 0 {
            assert_ne!(payload[3..6], VP8_START, "a VP8 key frame in the clear");
            assert_ne!(payload[15..18], VP8_START, "a VP8 key frame in the clear");
            entry.key_frame = Some((key_id, payload[15..22].to_vec()));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_an_encrypted_meeting_the_handler_forwards_ciphertext_and_keys_change_when_one_leaves() {
    let world = media_world().await;
    let app = &world.app;
    let (code, _) = create_meeting(
        app,
        json!({ "display_name": "Sealed table", "enable_e2e_encryption": true }),
    )
    .await;
    let (browsers, people) = three_with_devices(app, &code).await;
    for browser in &browsers {
        let shown = browser
            .script("return document.querySelector('#e2e .e2e-badge').textContent")
            .await;
        assert_eq!(shown.as_str(), Some("End-to-end encrypted"));
        // Its padlock is drawn (a mask over the badge's colour), not an emoji that a
        // system without an emoji font shows as an empty box.
        let padlock = browser
            .script(
                "const s = getComputedStyle(document.querySelector('#e2e .e2e-badge'), '::before'); \
                 return { content: s.content, drawn: s.maskImage.startsWith('url(\"data:image/svg+xml'), \
                          width: parseFloat(s.width) };",
            )
            .await;
        assert_eq!(padlock["content"], "\"\"", "{padlock}");
        assert_eq!(padlock["drawn"], true, "{padlock}");
        assert!(padlock["width"].as_f64().unwrap() > 8.0, "{padlock}");
    }

    // Every page decrypts and decodes both others' video and audio, and all show one
    // safety code.
    let all: Vec<&Browser> = browsers.iter().collect();
    decoding(&all, "each page decodes the others' video", &[]).await;
    for browser in &browsers {
        browser
            .text_when(
                "each page decodes the others' audio",
                Duration::from_secs(60),
                AUDIO,
                |frames| {
                    let counts: Vec<u64> = frames.lines().filter_map(|c| c.parse().ok()).collect();
                    counts.len() == 2 && counts.iter().all(|&c| c > 0)
                },
            )
            .await;
    }
    let three = same_safety_code(&all).await;

    // What the handler forwards: encrypted frames only, no VP8 in the clear.
    let meeting = browsers[0]
        .script("return document.getElementById('meet').dataset.meeting")
        .await;
    let mut spy = world
        .eavesdropper(meeting.as_str().unwrap_or_default())
        .await;
    let ids: Vec<String> = people.iter().map(|(id, _)| id.clone()).collect();
    let before = watch(&mut spy, &ids, "a key frame of each publisher", |seen| {
        seen.len() == 3 && seen.values().all(|s| s.key_frame.is_some())
    })
    .await;

    // Brom leaves: Ada and Cyra each make a new sender key, and the handler sees their
    // frames under it; the same plaintext (a key frame's start code and size) is
    // another ciphertext under the new key.
    let leave = browsers[1].find("#leave").await;
    browsers[1].click(&leave).await;
    let remaining = [people[0].clone(), people[2].clone()];
    let (ada, cyra) = (&browsers[0], &browsers[2]);
    for (i, browser) in [ada, cyra].into_iter().enumerate() {
        let expected = others(&remaining, i);
        browser
            .text_when("Brom's tile goes", LIMIT, TILES, |tiles| tiles == expected)
            .await;
    }
    let stayed = vec![people[0].0.clone(), people[2].0.clone()];
    let old_key = |id: &String| before[id].key_id.unwrap();
    let after = watch(&mut spy, &stayed, "new keys after the leave", |seen| {
        stayed.iter().all(|id| {
            seen.get(id).is_some_and(|s| {
                s.key_id != Some(old_key(id))
                    && s.key_frame.as_ref().is_some_and(|(k, _)| *k != old_key(id))
            })
        })
    })
    .await;
    for id in &stayed {
        let (old, new) = (&before[id].key_frame, &after[id].key_frame);
        assert_ne!(old.as_ref().map(|k| &k.1), new.as_ref().map(|k| &k.1));
    }

    // The two still decode each other (the counts rise from here), and agree on a new
    // safety code.
    let now = decoding(&[ada, cyra], "the two left decode each other", &[]).await;
    let floor: Vec<Vec<u64>> = now
        .iter()
        .map(|counts| counts.iter().map(|c| c + 10).collect())
        .collect();
    decoding(
        &[ada, cyra],
        "the two left go on decoding each other",
        &floor,
    )
    .await;
    let two = same_safety_code(&[ada, cyra]).await;
    assert_ne!(two, three);

    spy.close();
    for browser in browsers {
        browser.quit().await;
    }
    world.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_visitor_joins_a_members_only_meeting_under_their_account() {
    let app = common::spawn_app().await;
    let (code, _) = create_meeting(
        &app,
        json!({ "display_name": "Members only", "require_auth": true }),
    )
    .await;
    let browser = Browser::start().await;
    // The sandbox's fake Discord signs the demo player in and sends the browser back.
    browser
        .open(&app.url(&format!("/login/discord?next=/meet/{code}")))
        .await;
    browser
        .text_when(
            "the page knows its visitor is signed in",
            LIMIT,
            "return document.getElementById('meet') ? (document.getElementById('meet').dataset.grantUrl || '') : ''",
            |url| url.ends_with("/grant"),
        )
        .await;
    // A page whose CSRF token went stale (signed in again in another tab) is told to
    // reload, not that the meeting refuses guests.
    browser
        .script("document.querySelector('meta[name=\"csrf-token\"]').content = 'stale'; return ''")
        .await;
    let join = browser.find("#join").await;
    browser.click(&join).await;
    let error = browser
        .text_when("the stale sign-in is said", LIMIT, ERROR, |e| !e.is_empty())
        .await;
    assert!(error.contains("Reload the page"), "{error}");
    assert!(!error.contains("signed-in users only"), "{error}");
    // The name field is the account's, not to be edited; even a value forced into it
    // changes nothing: the own tile shows the name the others see.
    browser
        .open(&app.url(&format!("/meet/{code}?name=Impostor")))
        .await;
    assert_eq!(
        browser
            .script("return document.getElementById('name').readOnly")
            .await,
        true,
        "a signed-in visitor's name is their account's"
    );
    assert_ne!(
        browser
            .script("return document.getElementById('name').value")
            .await,
        "Impostor",
        "a link does not rename the account"
    );
    browser
        .script("document.getElementById('name').value = 'Impostor Alice'; return ''")
        .await;
    let join = browser.find("#join").await;
    browser.click(&join).await;
    let id = browser
        .text_when("the member joins", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;
    assert_eq!(browser.script(ERROR).await, "", "joined without an error");

    // The participant is the member's account, under its name, not a guest.
    let pool = sqlx::PgPool::connect(&app.postgres.url()).await.unwrap();
    let (user, name): (Option<String>, String) = sqlx::query_as(
        "SELECT user_id::text, display_name FROM meet.meeting_participants WHERE participant_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let user = user.expect("joined as the account, not as a guest");
    let (provider_user,): (String,) = sqlx::query_as(
        "SELECT provider_user_id FROM meet.oauth_providers WHERE user_id = $1::uuid AND provider = 'discord'",
    )
    .bind(&user)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        provider_user,
        app.demo().demo_player.to_string(),
        "the account is the demo player's"
    );
    let (account_name,): (String,) =
        sqlx::query_as("SELECT display_name FROM meet.users WHERE user_id = $1::uuid")
            .bind(&user)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name, account_name, "named by the account");
    assert_eq!(
        browser
            .script("return document.querySelector('.tile.self .name').textContent")
            .await,
        format!("{account_name} (you)"),
        "the own tile shows the name the others see"
    );
    browser.quit().await;
}

/// Waits until `browser` shows participant `id`'s remote tile with its camera
/// (`kind` `video`) or microphone (`audio`) marked muted or not (`muted`).
async fn sees_muted(browser: &Browser, id: &str, kind: &str, muted: bool) {
    let field = if kind == "video" {
        "videoMuted"
    } else {
        "audioMuted"
    };
    browser
        .text_when(
            &format!("{id}'s {kind} shown muted: {muted}"),
            LIMIT,
            &format!(
                "const t = document.querySelector('.tile.remote[data-participant=\"{id}\"]'); \
                 return t ? t.dataset.{field} : ''"
            ),
            |shown| shown == muted.to_string(),
        )
        .await;
}

/// Ends the page's own `kind` (`video` or `audio`) track as a device that stops does
/// (unplugged, taken by another app: the browser ends it and says so with `ended`);
/// the camera and microphone buttons' labels and the page's media status, as
/// `camera|microphone|status`.
async fn device_stops(browser: &Browser, kind: &str) -> Value {
    let tracks = if kind == "video" {
        "getVideoTracks"
    } else {
        "getAudioTracks"
    };
    browser
        .script(&format!(
            "const t = document.querySelector('.tile.self video').srcObject.{tracks}()[0]; \
             t.stop(); t.dispatchEvent(new Event('ended')); \
             return document.getElementById('mute-video').textContent + '|' \
               + document.getElementById('mute-audio').textContent + '|' \
               + document.getElementById('media-status').textContent;"
        ))
        .await
}

/// The page's own camera: its track's state and whether its own tile shows the camera
/// off, as `state|off`.
const OWN_CAMERA: &str = "const v = document.querySelector('.tile.self video'); \
     const t = v && v.srcObject ? v.srcObject.getVideoTracks()[0] : null; \
     return (t ? t.readyState : 'none') + '|' + document.querySelector('.tile.self').dataset.videoMuted;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_in_a_call_is_turned_off_for_everyone_and_asked_for_again_when_turned_on()
 {
    let app = common::spawn_app().await;
    let (code, _) = create_meeting(&app, json!({ "display_name": "Unplugged" })).await;
    let (cy, cy_id) = join_with_devices(&app, &code, "Cy").await;
    let (di, _) = join_by_link(&app.url(""), &code, "Di").await;
    sees_muted(&di, &cy_id, "video", false).await;
    assert_eq!(cy.script(OWN_CAMERA).await, "live|false");

    // The camera stops: Cy's page turns it off, says why, and Di sees it off.
    assert_eq!(
        device_stops(&cy, "video").await,
        "Turn camera on|Mute microphone|Your camera stopped (unplugged, or taken by another \
         app): turn it on to try again, or pick another under Devices."
    );
    assert_eq!(cy.script(OWN_CAMERA).await, "ended|true");
    sees_muted(&di, &cy_id, "video", true).await;

    // Turned on again, the camera is asked for again: a new track, and everyone sees it.
    let button = cy.find("#mute-video").await;
    cy.click(&button).await;
    cy.text_when("Cy's camera is live again", LIMIT, OWN_CAMERA, |own| {
        own == "live|false"
    })
    .await;
    sees_muted(&di, &cy_id, "video", false).await;

    // The microphone alike: it stops, it is muted for everyone, and the page says so.
    assert_eq!(
        device_stops(&cy, "audio").await,
        "Turn camera off|Unmute microphone|Your microphone stopped (unplugged, or taken by \
         another app): unmute it to try again, or pick another under Devices."
    );
    sees_muted(&di, &cy_id, "audio", true).await;
    cy.quit().await;
    di.quit().await;
}

/// On a page, the tile of participant `id`: its `data-layer`, the width of the video
/// drawn in it and its `data-frames-decoded`, as `layer/width/frames`.
fn tile_state(id: &str) -> String {
    format!(
        "const t = document.querySelector('.tile.remote[data-participant=\"{id}\"]'); \
         return t ? (t.dataset.layer || '') + '/' + t.querySelector('canvas').width + '/' \
                    + t.dataset.framesDecoded : ''"
    )
}

/// Shows the tile of participant `id` `px` CSS pixels wide.
fn tile_width(id: &str, px: u32) -> String {
    format!(
        "document.querySelector('.tile.remote[data-participant=\"{id}\"]').style.width = \
         '{px}px'; return ''"
    )
}

/// Waits until `browser`'s tile of `id` receives `layer`, drawn `width` pixels wide,
/// with more than `above` frames decoded; its frames decoded.
async fn tile_on_layer(browser: &Browser, id: &str, layer: &str, width: &str, above: u64) -> u64 {
    let state = browser
        .text_when(
            &format!("the tile receives layer {layer}"),
            Duration::from_secs(60),
            &tile_state(id),
            |state| {
                let parts: Vec<&str> = state.split('/').collect();
                parts.len() == 3
                    && parts[0] == layer
                    && parts[1] == width
                    && parts[2].parse::<u64>().is_ok_and(|f| f > above)
            },
        )
        .await;
    state.rsplit('/').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tile_receives_the_small_layer_and_a_large_one_the_large_in_an_encrypted_call() {
    let world = media_world().await;
    let app = &world.app;
    let (code, _) = create_meeting(
        app,
        json!({ "display_name": "Layered table", "enable_e2e_encryption": true }),
    )
    .await;
    let (ada, _) = join_with_devices(app, &code, "Ada").await;
    let (brom, brom_id) = join_with_devices(app, &code, "Brom").await;

    // Brom's camera (320x180) is sent as two layers: 160x90 (layer 0) and 320x180.
    // Shown small on Ada's page, his tile receives and decodes layer 0 only ...
    ada.script(&tile_width(&brom_id, 200)).await;
    let frames = tile_on_layer(&ada, &brom_id, "0", "160", 0).await;
    let frames = tile_on_layer(&ada, &brom_id, "0", "160", frames + 10).await;
    // ... and shown large, layer 1 (changed at its key frame), decoding on.
    ada.script(&tile_width(&brom_id, 480)).await;
    let frames = tile_on_layer(&ada, &brom_id, "1", "320", frames).await;
    tile_on_layer(&ada, &brom_id, "1", "320", frames + 10).await;

    ada.quit().await;
    brom.quit().await;
    world.stop.cancel();
}

/// Waits until the page in as participant `first` is in again under a new id, with no
/// error: the new id.
async fn in_again(browser: &Browser, first: &str) -> String {
    let again = browser
        .text_when("the page joins again", LIMIT, SELF_ID, |id| {
            !id.is_empty() && id != first
        })
        .await;
    assert_eq!(
        browser.script(ERROR).await,
        "",
        "joined again without an error"
    );
    again
}

/// [`in_again`], in meeting `code`: the first session left with `connection_lost`, the
/// second is open.
async fn joined_again(browser: &Browser, pool: &store::Postgres, code: &str, first: &str) {
    let second = in_again(browser, first).await;
    let rows = common::participant_rows(pool.pool(), code, 2).await;
    assert_eq!(
        rows,
        vec![
            (first.to_owned(), Some("connection_lost".to_owned())),
            (second, None)
        ]
    );
}

/// Tavern with `meeting_controller = "separate"` and, in this process, two meeting
/// controllers: the registry moves a meeting from one to the other while a page is in
/// it (as it does once the first one's heartbeats have stopped for a while), and the
/// page joins it again there by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_meeting_moves_to_another_controller_joins_it_there() {
    let (app, ctx, settings) = separate_world().await;
    let stop = tokio_util::sync::CancellationToken::new();
    for id in ["mc-first", "mc-second"] {
        start_controller(&ctx, &settings, id, |_| {}, &stop).await;
    }
    let (code, _) = create_meeting(&app, json!({ "display_name": "Moving table" })).await;
    let pool = app.postgres.connect().await;

    let (browser, first) = join_by_link(&app.url(""), &code, "Fay").await;
    let assigned = assigned_controller(&pool, &code).await;
    let other = if assigned == "mc-first" {
        "mc-second"
    } else {
        "mc-first"
    };
    sqlx::query("UPDATE meet.meetings SET assigned_controller_id = $2 WHERE meeting_code = $1")
        .bind(&code)
        .bind(other)
        .execute(pool.pool())
        .await
        .unwrap();

    joined_again(&browser, &pool, &code, &first).await;
    // Told that the meeting moved, the page joined again by itself: no lost connection.
    assert_eq!(browser.script(REJOINS).await, "");
    browser.quit().await;
    stop.cancel();
}

/// The page's automatic rejoins after lost connections (`data-rejoins`; empty: none).
const REJOINS: &str = "return document.getElementById('meet').dataset.rejoins || ''";

/// A guest in the call when the host requires sign-in is told why it is out at once,
/// and does not try to join again as if its connection were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_in_the_call_when_the_host_requires_sign_in_is_told_why_it_is_out() {
    let app = common::spawn_app().await;
    let (code, host) = create_meeting(&app, json!({ "display_name": "Open table" })).await;
    let mut inside = host_over_api(&app, &host, &code).await;
    let (browser, guest) = join_by_link(&app.url(""), &code, "Gil").await;

    let (status, changed) =
        patch_settings(&app, &host, &code, json!({ "require_auth": true })).await;
    assert_eq!(status, 200, "{changed}");
    let error = browser
        .text_when("the guest is told why", LIMIT, ERROR, |e| !e.is_empty())
        .await;
    assert_eq!(
        error,
        "This meeting admits signed-in users only, so it cannot be joined as a guest."
    );
    assert_eq!(browser.script(REJOINS).await, "");
    assert_eq!(
        browser
            .script("return String(document.getElementById('call').hidden)")
            .await,
        "true"
    );
    // The host sees the guest go, removed.
    use meetings::controller::proto::server_message::Payload as S;
    let left = tokio::time::timeout(LIMIT, async {
        loop {
            match inside.next().await.unwrap().and_then(|m| m.payload) {
                Some(S::ParticipantLeft(left)) => break left,
                Some(_) => {}
                None => panic!("the host's session closed"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        (left.participant_id.as_str(), left.reason.as_str()),
        (guest.as_str(), "kicked")
    );
    browser.quit().await;
}

/// A connection the meeting server closes while the page sets it up (README, "Known
/// problems") is made again by the page, with a new grant: twice in a row, the third
/// connection joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_connections_are_closed_while_they_are_set_up_joins_on_the_third() {
    page_joins_with_a_new_grant_after_failed_connections(false, 2).await;
}

/// A connection whose session the meeting server never answers (as one that lost part
/// of the set-up: README, "Known problems") is given up by the page after
/// `FIRST_TRY_WAIT_MS` and made once more with a new grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_connection_hangs_while_it_is_set_up_joins_with_a_new_grant() {
    page_joins_with_a_new_grant_after_failed_connections(true, 1).await;
}

/// The first `failed` grants name a stand-in controller that reads each session
/// request and drops it unanswered or (`hold`) holds it unanswered, and hands the
/// meeting to the real controller when the last of them arrives; the page joins the
/// real one with no error shown, after `failed` new grants.
async fn page_joins_with_a_new_grant_after_failed_connections(hold: bool, failed: usize) {
    use meetings::domain::{ControllerId, HealthStatus, Region};
    use meetings::repo::{ControllerHeartbeat, ControllerRegistration};

    let (app, ctx, settings) = separate_world().await;
    let repo = meetings::Repo::from_context(&ctx);
    let stop = tokio_util::sync::CancellationToken::new();
    // The real controller takes no new meeting (degraded) but keeps one it is given,
    // and reports nothing more during the test to undo that.
    let real = start_controller(
        &ctx,
        &settings,
        "mc-real",
        |config| config.heartbeat_every = Duration::from_secs(3600),
        &stop,
    )
    .await;
    repo.heartbeat_controller(&ControllerHeartbeat {
        controller_id: real.clone(),
        current_meetings: 0,
        current_participants: 0,
        health: HealthStatus::Degraded,
    })
    .await
    .unwrap();

    // The stand-in, the only controller taking new meetings.
    let testkit::wt::StandIn {
        endpoint: stand_in,
        port,
        certificate_hash: hash,
    } = testkit::wt::StandIn::start();
    repo.register_controller(&ControllerRegistration {
        controller_id: ControllerId::parse("mc-stand-in").unwrap(),
        region: Region::local(),
        endpoint: format!("https://127.0.0.1:{port}"),
        max_meetings: 100,
        max_participants: 100,
        version: None,
        certificate_hash: Some(hash),
    })
    .await
    .unwrap();
    let pool = app.postgres.connect().await;
    let handing = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for taken in 1..=failed {
                let incoming = stand_in.accept().await;
                // The meeting is handed over as soon as the last connection arrives, so
                // that the page's next grant names the real controller however long
                // this try takes.
                if taken == failed {
                    sqlx::query(
                        "UPDATE meet.meetings SET assigned_controller_id = 'mc-real' \
                         WHERE assigned_controller_id = 'mc-stand-in'",
                    )
                    .execute(pool.pool())
                    .await
                    .unwrap();
                }
                // The session request, read (an error if the page gave up before), then
                // held unanswered or dropped unanswered.
                let request = incoming.await;
                if hold {
                    held.push(request);
                }
            }
            (stand_in, held)
        })
    };
    let (code, _) = create_meeting(&app, json!({ "display_name": "Shaky table" })).await;

    let (browser, id) = join_by_link(&app.url(""), &code, "Gus").await;

    assert_eq!(browser.script(ERROR).await, "", "joined without an error");
    assert_eq!(
        browser
            .script("return document.getElementById('meet').dataset.connectRetries || ''")
            .await,
        failed.to_string()
    );
    let (stand_in, held) = tokio::time::timeout(LIMIT, handing)
        .await
        .expect("the stand-in saw the first session request")
        .unwrap();
    let assigned = assigned_controller(&pool, &code).await;
    assert_eq!(assigned, "mc-real");
    assert!(!id.is_empty());
    drop((stand_in, held));
    browser.quit().await;
    stop.cancel();
}

/// The page's `data-media-retries`: the new media grants it used (empty before any).
const MEDIA_RETRIES: &str = "return document.getElementById('meet').dataset.mediaRetries || ''";

/// A page whose media handler stops during the call (it reports `draining` and closes
/// its sessions) asks the controller for a new media grant, which names another
/// handler, and the call's video goes on there: each page decodes the other's again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_media_handler_stops_reconnects_its_media_to_another() {
    let MediaWorld {
        app,
        stop,
        repo,
        handler_stop,
        handler,
        ..
    } = media_world().await;
    let (code, _) = create_meeting(
        &app,
        json!({ "display_name": "Sturdy table", "enable_e2e_encryption": false }),
    )
    .await;
    let mut browsers = Vec::new();
    let mut people: Vec<(String, &str)> = Vec::new();
    for name in ["Ada", "Brom"] {
        let (browser, id) = join_with_devices(&app, &code, name).await;
        people.push((id, name));
        browsers.push(browser);
    }
    for (i, browser) in browsers.iter().enumerate() {
        let expected = others(&people, i);
        browser
            .text_when("each sees the other", LIMIT, TILES, |tiles| {
                tiles == expected
            })
            .await;
    }
    let pages: Vec<&Browser> = browsers.iter().collect();
    decoding(&pages, "video through the first handler", &[]).await;
    for browser in &pages {
        assert_eq!(browser.script(MEDIA_RETRIES).await, "");
    }

    // A second handler starts, then the first stops.
    let (_, second, second_task) =
        start_media_handler(&repo, "mh-second", Duration::from_secs(10), &stop).await;
    handler_stop.cancel();
    tokio::time::timeout(LIMIT, handler)
        .await
        .expect("the first handler stops in time")
        .unwrap()
        .unwrap();
    // What each page had decoded once the first handler was gone: from now on frames
    // come through the second or not at all.
    let mut floor = Vec::new();
    for browser in &pages {
        let counts: Vec<u64> = browser
            .script(FRAMES)
            .await
            .as_str()
            .unwrap_or_default()
            .lines()
            .filter_map(|c| c.parse().ok())
            .collect();
        floor.push(counts);
    }
    decoding(&pages, "video again, through the second handler", &floor).await;
    testkit::eventually("both pages are on the second handler", || {
        let second = second.clone();
        async move { (second.participants() == 2).then_some(()) }
    })
    .await;
    for browser in &pages {
        let retries: u32 = browser
            .script(MEDIA_RETRIES)
            .await
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        assert!(retries >= 1, "{retries}");
        assert_eq!(browser.script(ERROR).await, "", "no error on the page");
    }
    for browser in browsers {
        browser.quit().await;
    }
    stop.cancel();
    let _ = tokio::time::timeout(LIMIT, second_task).await;
}

/// A page whose media connection hangs while it is set up (README, "Known problems")
/// gives it up after 3 s and opens another with a new media grant from the controller,
/// which names a handler that serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_media_connection_hangs_while_it_is_set_up_opens_one_with_a_new_grant() {
    use meetings::controller::{MediaDirectory, MediaHandlers};
    use meetings::domain::{HandlerId, HealthStatus, Liveness, Region};
    use meetings::repo::{HandlerHeartbeat, HandlerRegistration};

    let (app, ctx, settings) = separate_world().await;
    let repo = meetings::Repo::from_context(&ctx);
    let stop = tokio_util::sync::CancellationToken::new();
    let beat = |handler_id: &HandlerId, health| HandlerHeartbeat {
        handler_id: handler_id.clone(),
        current_streams: 0,
        current_bitrate_mbps: 0,
        health,
    };
    // The real handler takes no new meeting (draining), and reports nothing more during
    // the test to undo that.
    let (real, load, _) =
        start_media_handler(&repo, "mh-real", Duration::from_secs(3600), &stop).await;
    repo.heartbeat_handler(&beat(&real.handler_id, HealthStatus::Draining))
        .await
        .unwrap();
    // The stand-in, the only handler taking new meetings.
    let testkit::wt::StandIn {
        endpoint: stand_in,
        port,
        certificate_hash: hash,
    } = testkit::wt::StandIn::start();
    let stand_in_id = HandlerId::parse("mh-stand-in").unwrap();
    repo.register_handler(&HandlerRegistration {
        handler_id: stand_in_id.clone(),
        region: Region::local(),
        endpoint: format!("https://127.0.0.1:{port}"),
        max_streams: 100,
        max_bitrate_mbps: 100,
        supports_transcoding: false,
        supports_mixing: false,
        supported_codecs: vec!["VP8".to_owned(), "Opus".to_owned()],
        certificate_hash: Some(hash),
    })
    .await
    .unwrap();
    start_controller(
        &ctx,
        &settings,
        "mc-media",
        |config| {
            config.media = Some(MediaHandlers {
                directory: MediaDirectory::new(vec![real.clone()]),
                liveness: Liveness::default(),
            });
        },
        &stop,
    )
    .await;
    let handing = {
        let (repo, stand_in_beat, real_beat) = (
            repo.clone(),
            beat(&stand_in_id, HealthStatus::Draining),
            beat(&real.handler_id, HealthStatus::Healthy),
        );
        tokio::spawn(async move {
            // As soon as the connection arrives the stand-in stops taking sessions and
            // the real handler takes meetings again, so that the page's new grant names
            // the real one however long its first try takes.
            let incoming = stand_in.accept().await;
            repo.heartbeat_handler(&stand_in_beat).await.unwrap();
            repo.heartbeat_handler(&real_beat).await.unwrap();
            // The session request, read, then held unanswered.
            let request = incoming.await;
            (stand_in, request)
        })
    };
    let (code, _) = create_meeting(
        &app,
        json!({ "display_name": "Shaky media", "enable_e2e_encryption": false }),
    )
    .await;

    let (browser, _) = join_by_link(&app.url(""), &code, "Gus").await;
    testkit::eventually_within(
        LIMIT,
        "the page's media session opens on the real handler",
        || {
            let load = load.clone();
            async move { (load.participants() == 1).then_some(()) }
        },
    )
    .await;
    assert_eq!(browser.script(MEDIA_RETRIES).await, "1");
    assert_eq!(browser.script(ERROR).await, "", "no error on the page");
    let (stand_in, held) = tokio::time::timeout(LIMIT, handing)
        .await
        .expect("the stand-in saw the first session request")
        .unwrap();
    assert!(
        held.is_ok(),
        "the page's first session request reached the stand-in"
    );
    drop((stand_in, held));
    browser.quit().await;
    stop.cancel();
}

/// A page whose meeting controller stops (a restart) is told its meeting moved, waits
/// while no controller can take it, and joins again on the controller that starts
/// next; the meeting does not end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_controller_restarts_joins_again_on_the_next_one() {
    let (app, ctx, settings) = separate_world().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let first_stop = stop.child_token();
    start_controller(&ctx, &settings, "mc-before", |_| {}, &first_stop).await;
    let (code, _) = create_meeting(&app, json!({ "display_name": "Restarting table" })).await;
    let pool = app.postgres.connect().await;
    let (browser, first) = join_by_link(&app.url(""), &code, "Fay").await;

    first_stop.cancel();
    browser
        .text_when(
            "the page waits for a meeting server",
            LIMIT,
            "return document.getElementById('status').textContent",
            |status| status.contains("Waiting for a meeting server"),
        )
        .await;
    start_controller(&ctx, &settings, "mc-after", |_| {}, &stop).await;
    joined_again(&browser, &pool, &code, &first).await;
    assert_eq!(assigned_controller(&pool, &code).await, "mc-after");
    let status: String =
        sqlx::query_scalar("SELECT status FROM meet.meetings WHERE meeting_code = $1")
            .bind(&code)
            .fetch_one(pool.pool())
            .await
            .unwrap();
    assert_eq!(status, "active");
    browser.quit().await;
    stop.cancel();
}

/// A page whose connection is lost (here: the presence job removed its participant, so
/// the controller closed the session) joins again by itself, with no error, and the
/// other participant sees it come back; at most 3 times in 5 minutes, then it says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_connection_is_lost_joins_again_by_itself_three_times_at_most() {
    const REJOINS: &str = "return document.getElementById('meet').dataset.rejoins || ''";
    let (app, ctx, settings) = separate_world().await;
    let stop = tokio_util::sync::CancellationToken::new();
    start_controller(&ctx, &settings, "mc-only", |_| {}, &stop).await;
    let (code, _) = create_meeting(&app, json!({ "display_name": "Flaky table" })).await;
    let pool = app.postgres.connect().await;
    // Gus stays, so that the meeting does not end when Fay is removed.
    let (gus, _) = join_by_link(&app.url(""), &code, "Gus").await;
    let (browser, mut fay) = join_by_link(&app.url(""), &code, "Fay").await;
    assert_eq!(browser.script(REJOINS).await, "");
    let repo = meetings::Repo::from_context(&ctx);
    let meeting: String =
        sqlx::query_scalar("SELECT meeting_id::text FROM meet.meetings WHERE meeting_code = $1")
            .bind(&code)
            .fetch_one(pool.pool())
            .await
            .unwrap();
    let meeting = meetings::domain::MeetingId::parse(&meeting).unwrap();
    // As if her heartbeats had stopped: the presence job removes her.
    let remove = |id: String| {
        let repo = repo.clone();
        async move {
            let participant = meetings::domain::ParticipantId::parse(&id).unwrap();
            common::removed_for_silence(&repo, meeting, participant).await;
        }
    };

    for rejoin in 1..=3 {
        remove(fay.clone()).await;
        let again = in_again(&browser, &fay).await;
        assert_eq!(browser.script(REJOINS).await, rejoin.to_string());
        gus.text_when("Gus sees Fay back", LIMIT, TILES, |tiles| {
            tiles == format!("{again}=Fay")
        })
        .await;
        fay = again;
    }
    let rows = common::participant_rows(pool.pool(), &code, 5).await;
    let reasons: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.as_deref()).collect();
    assert_eq!(
        reasons,
        [
            None,
            Some("connection_lost"),
            Some("connection_lost"),
            Some("connection_lost"),
            None
        ]
    );

    // A fourth loss within the 5 minutes: the page says the connection closed and
    // offers to join again rather than join by itself.
    remove(fay.clone()).await;
    let said = browser
        .text_when("the page says the connection closed", LIMIT, ERROR, |e| {
            !e.is_empty()
        })
        .await;
    assert!(said.contains("closed the connection"), "{said}");
    assert_eq!(browser.script(REJOINS).await, "3");
    browser.quit().await;
    gus.quit().await;
    stop.cancel();
}

/// The names in the host's waiting list, comma-separated.
const WAITING: &str = "return Array.from(document.querySelectorAll('#waiting-list .visitor-name'))\
     .map(n => n.textContent).join(',')";

/// The page's status line while it waits for the host (empty otherwise).
const WAITING_STATUS: &str = "const m = document.getElementById('meet');\
     return m && m.dataset.waiting ? document.getElementById('status').textContent : ''";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_lets_one_visitor_in_from_the_waiting_room_and_turns_another_away() {
    let app = common::spawn_app().await;
    // The host signs in and starts a meeting with a waiting room from the lobby.
    let (host, code, host_id) = host_behind_a_waiting_room(&app).await;

    // Vera waits, told so, and the host sees her with Admit and Deny.
    let vera = Browser::start().await;
    vera.open(&app.url(&format!("/meet/{code}?name=Vera&autojoin=1")))
        .await;
    let waiting = vera
        .text_when("Vera waits", LIMIT, WAITING_STATUS, |s| !s.is_empty())
        .await;
    assert!(
        waiting.contains("Waiting for the host to let you in"),
        "{waiting}"
    );
    host.text_when("the host sees Vera waiting", LIMIT, WAITING, |s| {
        s == "Vera"
    })
    .await;
    assert_eq!(host.script(TILES).await, "", "nobody else is in yet");
    host.script("document.querySelector('#waiting-list button.admit').click(); return ''")
        .await;
    let vera_id = vera
        .text_when("Vera is let in", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;
    host.text_when("the host sees Vera's tile", LIMIT, TILES, |t| {
        t == format!("{vera_id}=Vera")
    })
    .await;
    vera.text_when("Vera sees the host", LIMIT, TILES, |t| {
        t.starts_with(&format!("{host_id}="))
    })
    .await;
    host.text_when("nobody waits", LIMIT, WAITING, str::is_empty)
        .await;

    // Dan is turned away, and told so.
    let dan = Browser::start().await;
    dan.open(&app.url(&format!("/meet/{code}?name=Dan&autojoin=1")))
        .await;
    host.text_when("the host sees Dan waiting", LIMIT, WAITING, |s| s == "Dan")
        .await;
    host.script("document.querySelector('#waiting-list button.deny').click(); return ''")
        .await;
    let error = dan
        .text_when("Dan is told", LIMIT, ERROR, |e| !e.is_empty())
        .await;
    assert_eq!(error, "The host did not let you in.");
    assert_eq!(dan.script(SELF_ID).await, "");
    assert_eq!(host.script(TILES).await, format!("{vera_id}=Vera"));
}

/// What the host's page says in its live regions besides its status, error and
/// recording lines, `|`-separated (empty when nothing).
const ANNOUNCED: &str = "return Array.from(document.querySelectorAll(\
     '#meet [aria-live], #meet [role=status], #meet [role=alert], #meet [role=log]'))\
     .filter(e => !['status', 'error', 'recording-status'].includes(e.id))\
     .map(e => e.textContent).filter(Boolean).join('|')";

/// A visitor that asks to join meeting `code` as guest `name` over the API and waits
/// for the host (the wait runs on until the task is aborted).
async fn waits_over_api(
    app: &common::TestApp,
    code: &str,
    name: &str,
) -> tokio::task::JoinHandle<()> {
    let grant = guest_grant(app, code, name).await;
    tokio::spawn(async move {
        let _ = join_with(&grant).await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_hears_each_arrival_in_the_waiting_room_once() {
    let app = common::spawn_app().await;
    let (host, code, _) = host_behind_a_waiting_room(&app).await;
    assert_eq!(host.script(ANNOUNCED).await, "", "nobody waits yet");

    let ana = waits_over_api(&app, &code, "Ana").await;
    host.text_when("Ana's arrival is said", LIMIT, ANNOUNCED, |s| !s.is_empty())
        .await;
    assert_eq!(host.script(ANNOUNCED).await, "Ana is waiting to join.");
    // The list itself is no live region: it would be read out whole on each change.
    assert_eq!(
        host.script(
            "return document.getElementById('waiting-list').closest('[aria-live], [role=status], [role=alert], [role=log]') ? 'live' : 'quiet'"
        )
        .await,
        "quiet"
    );

    let bo = waits_over_api(&app, &code, "Bo").await;
    host.text_when("Bo waits too", LIMIT, WAITING, |s| s == "Ana,Bo")
        .await;
    assert_eq!(
        host.script(ANNOUNCED).await,
        "Bo is waiting to join (2 waiting)."
    );
    ana.abort();
    bo.abort();
    host.quit().await;
}

/// Where the page's keyboard focus is: `body`, else the focused element's id, else its
/// accessible name (`aria-label`), else its tag.
const FOCUS: &str = "const a = document.activeElement; \
     return !a || a === document.body ? 'body' \
     : (a.id || a.getAttribute('aria-label') || a.tagName)";

/// Whether the focused element is drawn where it can be seen: `seen`, else its size.
const FOCUS_SEEN: &str = "const r = document.activeElement.getBoundingClientRect(); \
     return r.width > 8 && r.height > 8 ? 'seen' : (r.width + 'x' + r.height)";

/// The WebDriver key Enter.
const ENTER: &str = "\u{E007}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_focus_follows_the_host_into_the_call_and_down_the_waiting_list() {
    let app = common::spawn_app().await;
    // The host presses Join: the form goes, and the focus moves into the call.
    let (host, code, _) = host_behind_a_waiting_room(&app).await;
    assert_eq!(host.script(FOCUS).await, "call-title");
    // The heading is on screen, so the focus ring around it is seen.
    assert_eq!(host.script(FOCUS_SEEN).await, "seen");

    let ana = waits_over_api(&app, &code, "Ana").await;
    host.text_when("Ana waits", LIMIT, WAITING, |s| s == "Ana")
        .await;
    let bo = waits_over_api(&app, &code, "Bo").await;
    host.text_when("Bo waits too", LIMIT, WAITING, |s| s == "Ana,Bo")
        .await;

    // Enter on Ana's Admit: the focus goes on to Bo's Admit once Ana is gone from the list.
    let admit = host.find("#waiting-list li:first-child button.admit").await;
    host.type_into(&admit, ENTER).await;
    host.text_when("Ana is let in", LIMIT, WAITING, |s| s == "Bo")
        .await;
    host.text_when("the focus is on Bo's Admit", LIMIT, FOCUS, |f| {
        f == "Admit Bo"
    })
    .await;

    // Enter on Bo's Deny, the last one waiting: the focus goes to the call's heading.
    let deny = host.find("#waiting-list li:first-child button.deny").await;
    host.type_into(&deny, ENTER).await;
    host.text_when("nobody waits", LIMIT, WAITING, str::is_empty)
        .await;
    host.text_when("the focus is on the call", LIMIT, FOCUS, |f| {
        f == "call-title"
    })
    .await;
    assert_eq!(host.script(FOCUS_SEEN).await, "seen");
    ana.abort();
    bo.abort();
    host.quit().await;
}

/// A program joined as the host of meeting `code` (`GET /api/v1/meetings/{code}` with
/// the host's `token` makes its grant), at the controller the grant names.
async fn host_over_api(
    app: &common::TestApp,
    token: &str,
    code: &str,
) -> meetings::controller::client::Client {
    let got: Value = app
        .http
        .get(app.url(&format!("/api/v1/meetings/{code}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    join_with(&got["join_grant"]).await.0
}

/// A program that connects with `grant` (a join grant's JSON) and joins: its client and
/// participant id.
async fn join_with(grant: &Value) -> (meetings::controller::client::Client, String) {
    let mut client = meetings::controller::client::Client::connect(
        grant["webtransport_url"].as_str().unwrap(),
        grant["wt_token"].as_str().unwrap(),
        grant["certificate_hash"].as_str(),
    )
    .await
    .unwrap();
    let joined = client.join(grant["token"].as_str().unwrap()).await.unwrap();
    (client, joined.participant_id)
}

/// Reads `host`'s messages until a waiting list naming `name`: that visitor's id.
async fn sees_waiting(host: &mut meetings::controller::client::Client, name: &str) -> String {
    use meetings::controller::proto::server_message::Payload as S;
    loop {
        let message = tokio::time::timeout(LIMIT, host.next())
            .await
            .unwrap_or_else(|_| panic!("the host sees {name} waiting in time"))
            .unwrap()
            .unwrap_or_else(|| panic!("the host's session ended before {name} waited"));
        if let Some(S::WaitingRoom(room)) = message.payload
            && let Some(visitor) = room.waiting.iter().find(|v| v.display_name == name)
        {
            return visitor.participant_id.clone();
        }
    }
}

/// In a meeting with a waiting room that moves to another controller, the page the
/// host let in joins it again there without waiting, and the page still waiting joins
/// again and waits there (instead of showing an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_meeting_takes_back_those_let_in_and_its_visitors_wait_there() {
    use meetings::controller::proto::{Admission, client_message::Payload as C};
    let (app, ctx, settings) = separate_world().await;
    let stop = tokio_util::sync::CancellationToken::new();
    for id in ["mc-first", "mc-second"] {
        start_controller(&ctx, &settings, id, |_| {}, &stop).await;
    }
    let (code, token) = create_meeting(
        &app,
        json!({ "display_name": "Behind the door", "waiting_room_enabled": true }),
    )
    .await;
    let pool = app.postgres.connect().await;
    let mut host = host_over_api(&app, &token, &code).await;

    // Vera waits and is let in; Walt waits.
    let vera = Browser::start().await;
    vera.open(&app.url(&format!("/meet/{code}?name=Vera&autojoin=1")))
        .await;
    vera.text_when("Vera waits", LIMIT, WAITING_STATUS, |s| !s.is_empty())
        .await;
    let waiting = sees_waiting(&mut host, "Vera").await;
    host.send(C::Admission(Admission {
        participant_id: waiting,
        admit: true,
    }))
    .await
    .unwrap();
    let first = vera
        .text_when("Vera is let in", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;
    let walt = Browser::start().await;
    walt.open(&app.url(&format!("/meet/{code}?name=Walt&autojoin=1")))
        .await;
    walt.text_when("Walt waits", LIMIT, WAITING_STATUS, |s| !s.is_empty())
        .await;
    sees_waiting(&mut host, "Walt").await;

    // The registry moves the meeting; nobody lets anybody in again.
    let assigned = assigned_controller(&pool, &code).await;
    let other = if assigned == "mc-first" {
        "mc-second"
    } else {
        "mc-first"
    };
    sqlx::query("UPDATE meet.meetings SET assigned_controller_id = $2 WHERE meeting_code = $1")
        .bind(&code)
        .bind(other)
        .execute(pool.pool())
        .await
        .unwrap();
    in_again(&vera, &first).await;

    // Walt waits at the new controller, where the host, joining there, sees him.
    let mut host = host_over_api(&app, &token, &code).await;
    sees_waiting(&mut host, "Walt").await;
    assert_eq!(assigned_controller(&pool, &code).await, other);
    assert_eq!(walt.script(ERROR).await, "", "Walt is shown no error");
    assert_eq!(walt.script(SELF_ID).await, "", "Walt is not let in");
    vera.quit().await;
    walt.quit().await;
    stop.cancel();
}

/// A guest token for `name` to meeting `code`, as the API grants it.
async fn guest_grant(app: &common::TestApp, code: &str, name: &str) -> Value {
    app.http
        .post(app.url(&format!("/api/v1/meetings/{code}/guest-token")))
        .json(&json!({ "display_name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A program joined as guest `name` to meeting `code` over the API.
async fn guest_over_api(
    app: &common::TestApp,
    code: &str,
    name: &str,
) -> (meetings::controller::client::Client, String) {
    let grant = guest_grant(app, code, name).await;
    join_with(&grant).await
}

/// In an end-to-end encrypted meeting, a page whose hello to a participant that does
/// not keep up was dropped (the controller says `recipient_busy`, naming it) says hello
/// to it again, so that it gets the page's key once it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_hello_was_dropped_for_a_busy_participant_says_it_again() {
    use meetings::controller::proto::{
        KeyExchange, MAX_KEY_EXCHANGE, RECIPIENT_BUSY, client_message::Payload as C,
        server_message::Payload as S,
    };
    const HELLOS_AGAIN: &str = "return document.getElementById('meet').dataset.hellosAgain || ''";
    let (app, ctx, settings) = separate_world().await;
    let stop = tokio_util::sync::CancellationToken::new();
    start_controller(
        &ctx,
        &settings,
        "mc-only",
        |config| config.session_queue = 16,
        &stop,
    )
    .await;
    let (code, _) = create_meeting(
        &app,
        json!({ "display_name": "Whispers", "enable_e2e_encryption": true }),
    )
    .await;

    // Alice reads nothing while Mallory sends her far more key exchanges than she can
    // take, until the controller drops them.
    let (mut alice, alice_id) = guest_over_api(&app, &code, "Alice").await;
    let (mut mallory, _) = guest_over_api(&app, &code, "Mallory").await;
    for _ in 0..2_000 {
        mallory
            .send(C::E2eKey(KeyExchange {
                participant_id: alice_id.clone(),
                payload: vec![7; MAX_KEY_EXCHANGE],
            }))
            .await
            .unwrap();
    }
    loop {
        let message = tokio::time::timeout(LIMIT, mallory.next())
            .await
            .expect("Mallory is told in time")
            .unwrap()
            .expect("Mallory's session goes on");
        if let Some(S::Error(e)) = message.payload
            && e.code == RECIPIENT_BUSY
        {
            break;
        }
    }

    // Fay's page joins: its hello to Alice is dropped, and it says it again.
    let (fay, fay_id) = join_by_link(&app.url(""), &code, "Fay").await;
    fay.text_when("Fay says hello again", LIMIT, HELLOS_AGAIN, |n| {
        !n.is_empty()
    })
    .await;

    // Alice reads again, and Fay's hello reaches her.
    loop {
        let message = tokio::time::timeout(LIMIT, alice.next())
            .await
            .expect("Fay's hello reaches Alice in time")
            .unwrap()
            .expect("Alice's session goes on");
        if let Some(S::E2eKey(k)) = message.payload
            && k.participant_id == fay_id
            && k.payload.first() == Some(&1)
        {
            break;
        }
    }
    fay.quit().await;
    stop.cancel();
}

/// A UDP relay on 127.0.0.1 to `target`, one socket towards it per client address, as
/// a network path between a browser and a meeting controller. Dropped, it closes every
/// socket: the path is gone, and the client's next packets are refused.
struct Relay {
    port: u16,
    /// How many client addresses it has relayed.
    clients: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        use std::collections::HashMap;
        use std::sync::Arc;
        use tokio::net::UdpSocket;

        let listen = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let port = listen.local_addr().unwrap().port();
        let clients = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = clients.clone();
        let task = tokio::spawn(async move {
            let mut upstreams: HashMap<std::net::SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut back = tokio::task::JoinSet::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((n, client)) = listen.recv_from(&mut buf).await else {
                    continue;
                };
                let upstream = match upstreams.get(&client) {
                    Some(upstream) => upstream.clone(),
                    None => {
                        let upstream = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                        upstream.connect(target).await.unwrap();
                        let (from, to) = (upstream.clone(), listen.clone());
                        back.spawn(async move {
                            let mut buf = vec![0u8; 65_536];
                            while let Ok(n) = from.recv(&mut buf).await {
                                let _ = to.send_to(&buf[..n], client).await;
                            }
                        });
                        upstreams.insert(client, upstream.clone());
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        upstream
                    }
                };
                let _ = upstream.send(&buf[..n]).await;
            }
        });
        Relay {
            port,
            clients,
            task,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers controller `id` as reached at `endpoint` (its certificate unchanged), as
/// the join grants made from now on name it.
async fn reached_at(repo: &meetings::Repo, id: &meetings::domain::ControllerId, endpoint: String) {
    let registered = repo.controller(id).await.unwrap();
    repo.register_controller(&meetings::repo::ControllerRegistration {
        controller_id: id.clone(),
        region: registered.region,
        endpoint,
        max_meetings: 100,
        max_participants: 100,
        version: None,
        certificate_hash: registered.certificate_hash,
    })
    .await
    .unwrap();
}

/// A page waiting for the host whose connection is lost (the network path to the
/// meeting controller goes away) joins anew with a new grant by itself and waits again,
/// listed once to the host, and the host lets it in: no error, nothing more to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_whose_connection_is_lost_while_waiting_waits_again_and_is_let_in() {
    use meetings::controller::proto::{
        Admission, Heartbeat, client_message::Payload as C, server_message::Payload as S,
    };
    let (app, ctx, settings) = separate_world().await;
    let repo = meetings::Repo::from_context(&ctx);
    let stop = tokio_util::sync::CancellationToken::new();
    let id = start_controller(&ctx, &settings, "mc-relayed", |_| {}, &stop).await;
    let direct = repo.controller(&id).await.unwrap().endpoint;
    // Grants name the relay (registered before Tavern first reads the registry); the
    // host's program goes round it.
    let port: u16 = direct.rsplit(':').next().unwrap().parse().unwrap();
    let relay = Relay::start(([127, 0, 0, 1], port).into()).await;
    reached_at(&repo, &id, format!("https://127.0.0.1:{}", relay.port)).await;
    let (code, token) = create_meeting(
        &app,
        json!({ "display_name": "Behind the door", "waiting_room_enabled": true }),
    )
    .await;
    let mut grant: Value = app
        .http
        .get(app.url(&format!("/api/v1/meetings/{code}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grant = &mut grant["join_grant"];
    let url = grant["webtransport_url"].as_str().unwrap().to_owned();
    let (_, path) = url.split_once("/meetings/").unwrap();
    grant["webtransport_url"] = json!(format!("{direct}/meetings/{path}"));
    let (mut host, _) = join_with(grant).await;

    let vera = Browser::start().await;
    vera.open(&app.url(&format!("/meet/{code}?name=Vera&autojoin=1")))
        .await;
    vera.text_when("Vera waits", LIMIT, WAITING_STATUS, |s| !s.is_empty())
        .await;
    let first = sees_waiting(&mut host, "Vera").await;
    assert_eq!(
        relay.clients.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "Vera's page is connected through the relay"
    );

    // The path goes away; the controller is reached directly from now on.
    reached_at(&repo, &id, direct).await;
    drop(relay);
    // The host's program says it is still here meanwhile, as a page does.
    {
        let waits_again = vera.text_when(
            "Vera waits again",
            2 * LIMIT,
            "const m = document.getElementById('meet');\
             return m && m.dataset.waiting ? (m.dataset.rejoins || '') : ''",
            |rejoins| rejoins == "1",
        );
        tokio::pin!(waits_again);
        let mut beat = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = &mut waits_again => break,
                _ = beat.tick() => host.send(C::Heartbeat(Heartbeat {})).await.unwrap(),
            }
        }
    }
    assert_eq!(vera.script(ERROR).await, "", "Vera is shown no error");

    // The host sees her once, under her new connection's id, and lets her in.
    let again = loop {
        let message = tokio::time::timeout(LIMIT, host.next())
            .await
            .expect("the host sees Vera waiting again in time")
            .unwrap()
            .expect("the host's session goes on");
        if let Some(S::WaitingRoom(room)) = message.payload
            && let Some(visitor) = room
                .waiting
                .iter()
                .find(|v| v.display_name == "Vera" && v.participant_id != first)
        {
            let names: Vec<&str> = room
                .waiting
                .iter()
                .map(|v| v.display_name.as_str())
                .collect();
            assert_eq!(names, ["Vera"], "listed once");
            break visitor.participant_id.clone();
        }
    };
    host.send(C::Admission(Admission {
        participant_id: again.clone(),
        admit: true,
    }))
    .await
    .unwrap();
    let joined = vera
        .text_when("Vera is let in", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;
    assert_eq!(joined, again);
    assert_eq!(vera.script(ERROR).await, "", "Vera is shown no error");
    vera.quit().await;
    stop.cancel();
}

/// A page waiting for the host heartbeats as it does in the call: it outlasts the
/// presence timeout from its first connection, while a visitor that sends nothing after
/// it asked to join (a dead connection) is taken off the host's list, and the host told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_page_heartbeats_and_stays_listed_while_a_silent_visitor_is_dropped() {
    use meetings::controller::proto::{
        Heartbeat, JoinRequest, client_message::Payload as C, server_message::Payload as S,
    };
    let (app, ctx, settings) = separate_world().await;
    let stop = tokio_util::sync::CancellationToken::new();
    // A presence timeout two and a half of the page's heartbeat periods (10 s), so a
    // busy machine delaying one heartbeat by seconds does not drop the page.
    start_controller(
        &ctx,
        &settings,
        "mc-presence",
        |config| config.presence_timeout = Duration::from_secs(25),
        &stop,
    )
    .await;
    let (code, token) = create_meeting(
        &app,
        json!({ "display_name": "Behind the door", "waiting_room_enabled": true }),
    )
    .await;
    let mut host = host_over_api(&app, &token, &code).await;

    let vera = Browser::start().await;
    vera.open(&app.url(&format!("/meet/{code}?name=Vera&autojoin=1")))
        .await;
    vera.text_when("Vera waits", LIMIT, WAITING_STATUS, |s| !s.is_empty())
        .await;
    let vera_id = sees_waiting(&mut host, "Vera").await;

    // Silas asks to join after her, from a program that sends nothing more.
    let grant: Value = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{code}/guest-token")))
        .json(&json!({ "display_name": "Silas" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut silas = meetings::controller::client::Client::connect(
        grant["webtransport_url"].as_str().unwrap(),
        grant["wt_token"].as_str().unwrap(),
        grant["certificate_hash"].as_str(),
    )
    .await
    .unwrap();
    silas
        .send(C::JoinRequest(JoinRequest {
            token: grant["token"].as_str().unwrap().to_owned(),
            client_version: "test".into(),
            admission: String::new(),
        }))
        .await
        .unwrap();
    sees_waiting(&mut host, "Silas").await;

    // The host (heartbeating) is told Silas is gone; Vera, who waited longer, still
    // waits from her first connection.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut beat = tokio::time::interval(Duration::from_secs(5));
    let list = loop {
        tokio::select! {
            _ = beat.tick() => host.send(C::Heartbeat(Heartbeat {})).await.unwrap(),
            message = tokio::time::timeout_at(deadline, host.next()) => {
                let message = message
                    .expect("the host is told Silas is gone in time")
                    .unwrap()
                    .expect("the host's session goes on");
                if let Some(S::WaitingRoom(room)) = message.payload
                    && !room.waiting.iter().any(|v| v.display_name == "Silas")
                {
                    break room
                        .waiting
                        .into_iter()
                        .map(|v| (v.participant_id, v.display_name))
                        .collect::<Vec<_>>();
                }
            }
        }
    };
    assert_eq!(list, [(vera_id, "Vera".to_owned())]);
    assert_eq!(vera.script(ERROR).await, "", "Vera is shown no error");
    assert_eq!(
        vera.script("return document.getElementById('meet').dataset.rejoins || ''")
            .await,
        "",
        "Vera's page never had to join again"
    );
    vera.quit().await;
    stop.cancel();
}

/// The page's participant id once it has joined, else `error: ...` once it shows an
/// error (empty before either).
const JOINED_OR_ERROR: &str = "const e = document.getElementById('error'); \
     return document.getElementById('meet').dataset.participant \
       || (e.hidden ? '' : 'error: ' + e.textContent)";

/// The meeting's status as its creator reads it over the API.
async fn meeting_status(app: &common::TestApp, token: &str, code: &str) -> String {
    let got: Value = app
        .http
        .get(app.url(&format!("/api/v1/meetings/{code}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    got["status"]
        .as_str()
        .unwrap_or_else(|| panic!("a status in {got}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_the_page_as_the_last_one_in_finds_the_meeting_still_going() {
    let app = common::spawn_app().await;
    let (code, host) = create_meeting(&app, json!({ "display_name": "Reloaded" })).await;
    let (browser, first) = join_by_link(&app.url(""), &code, "Gil").await;

    // The same link again, as a reload does (the page goes, its connection with it).
    browser
        .open(&format!("{}/meet/{code}?name=Gil&autojoin=1", app.url("")))
        .await;
    let again = browser
        .text_when("Gil's reloaded page joins", LIMIT, JOINED_OR_ERROR, |s| {
            !s.is_empty() && s != first
        })
        .await;
    assert!(!again.starts_with("error"), "{again}");
    assert_eq!(browser.script(END_SHOWN).await, "", "in the call");
    assert_eq!(meeting_status(&app, &host, &code).await, "active");
    browser.quit().await;
}

/// The last one in who presses Leave is told the meeting ended with them. The page
/// reads the controller's stream to its end before it closes the connection, and the
/// controller waits for that close: closed from the controller's side at once, the
/// connection took the unread `MeetingEnded` with it about one time in two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_as_the_last_one_in_says_the_meeting_ended_and_offers_no_join_again() {
    let app = common::spawn_app().await;
    let (code, host) = create_meeting(&app, json!({ "display_name": "Last out" })).await;
    let (browser, _) = join_by_link(&app.url(""), &code, "Gil").await;

    let leave = browser.find("#leave").await;
    browser.click(&leave).await;
    let said = browser
        .text_when("the end is said", LIMIT, END_SHOWN, |s| !s.is_empty())
        .await;
    assert_eq!(
        said,
        "You left; the meeting ended because nobody was left in it. Back to the meetings"
    );
    assert_eq!(browser.script(ERROR).await, "", "not an error");
    assert_eq!(meeting_status(&app, &host, &code).await, "ended");
    browser.quit().await;
}

/// `PATCH /api/v1/meetings/{code}/settings` with `body` by the creator: the status and
/// the answer.
async fn patch_settings(
    app: &common::TestApp,
    token: &str,
    code: &str,
    body: Value,
) -> (u16, Value) {
    let answer = app
        .http
        .patch(app.url(&format!("/api/v1/meetings/{code}/settings")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_encryption_cannot_be_changed_under_the_people_in_the_meeting() {
    let app = common::spawn_app().await;
    let (code, host) = create_meeting(
        &app,
        json!({ "display_name": "Sealed", "enable_e2e_encryption": false }),
    )
    .await;
    let inside = host_over_api(&app, &host, &code).await;

    let (status, refused) = patch_settings(
        &app,
        &host,
        &code,
        json!({ "display_name": "Renamed", "enable_e2e_encryption": true }),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("meeting_in_progress")),
        "{refused}"
    );
    assert_eq!(
        refused["error"],
        "end-to-end encryption can only be changed while nobody is in the meeting"
    );
    let meeting: Value = app
        .http
        .get(app.url(&format!("/api/v1/meetings/{code}")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meeting["display_name"], "Sealed",
        "nothing changed: {meeting}"
    );
    assert_eq!(meeting["enable_e2e_encryption"], false, "{meeting}");
    // Other settings still change while people are in.
    let (status, renamed) =
        patch_settings(&app, &host, &code, json!({ "display_name": "Renamed" })).await;
    assert_eq!(
        (status, renamed["display_name"].as_str()),
        (200, Some("Renamed"))
    );
    drop(inside);
}

/// The page's recording note (empty when none).
const RECORDING_NOTE: &str = "const n = document.getElementById('recording-status'); \
     return n ? n.textContent : ''";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_said_the_meeting_was_recorded_stops_saying_so_when_it_ends() {
    let app = common::spawn_app().await;
    let (code, host) = create_meeting(
        &app,
        json!({ "display_name": "On tape", "allow_recording": true, "enable_e2e_encryption": false }),
    )
    .await;
    // A recording runs (as the host's Record starts one).
    let pool = sqlx::PgPool::connect(&app.postgres.url()).await.unwrap();
    sqlx::query(
        "INSERT INTO meet.recordings (meeting_id, started_at, storage_path, storage_bucket) \
         SELECT meeting_id, NOW(), 'tape', 'bucket' FROM meet.meetings WHERE meeting_code = $1",
    )
    .bind(&code)
    .execute(&pool)
    .await
    .unwrap();
    let (browser, _) = join_by_link(&app.url(""), &code, "Gil").await;
    browser
        .text_when("the recording is said", LIMIT, RECORDING_NOTE, |n| {
            n == "This meeting is being recorded."
        })
        .await;

    let end = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{code}/end")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 200);
    browser
        .text_when("the end is said", LIMIT, END_SHOWN, |s| !s.is_empty())
        .await;
    assert_eq!(browser.script(RECORDING_NOTE).await, "");
    assert_eq!(
        browser
            .script("return document.getElementById('meet').dataset.recording || ''")
            .await,
        "0"
    );
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_meetings_page_says_it_ended_once() {
    let app = common::spawn_app().await;
    let (code, host) = create_meeting(&app, json!({ "display_name": "Over" })).await;
    let end = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{code}/end")))
        .bearer_auth(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 200);
    let browser = Browser::start().await;
    // Signed in (the sandbox's fake Discord), the page reads its recording panel too.
    browser
        .open(&app.url(&format!("/login/discord?next=/meet/{code}")))
        .await;
    browser
        .text_when(
            "the recording panel is read",
            LIMIT,
            "const m = document.getElementById('meet'); \
             return m && (m.dataset.recordingPanel \
               || document.getElementById('recording-status').textContent) || ''",
            |s| !s.is_empty(),
        )
        .await;
    let text = browser.script(PAGE_TEXT).await;
    let text = text.as_str().unwrap();
    assert_eq!(text.matches("This meeting has ended.").count(), 1, "{text}");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_too_long_is_said_in_words() {
    let app = common::spawn_app().await;
    let (code, _) = create_meeting(&app, json!({ "display_name": "Long names" })).await;
    let browser = Browser::start().await;
    let name = "n".repeat(300);
    browser
        .open(&app.url(&format!("/meet/{code}?name={name}&autojoin=1")))
        .await;
    let error = browser
        .text_when("the refusal is said", LIMIT, ERROR, |e| !e.is_empty())
        .await;
    assert_eq!(error, "Your name is too long: at most 255 characters.");
    browser.quit().await;
}

/// The name field's `aria-invalid`, then the text of what its `aria-describedby`
/// names, `|`-separated.
const NAME_FIELD: &str = "const n = document.getElementById('name'); \
     const described = (n.getAttribute('aria-describedby') || '').split(/\\s+/) \
     .filter(Boolean).map((id) => document.getElementById(id)) \
     .filter((e) => e && !e.hidden).map((e) => e.textContent); \
     return [n.getAttribute('aria-invalid') || ''].concat(described).join('|')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_name_refused_is_said_as_the_forms_field_and_marks_it() {
    let app = common::spawn_app().await;
    let (code, _) = create_meeting(&app, json!({ "display_name": "Names" })).await;
    let browser = Browser::start().await;
    browser
        .open(&app.url(&format!("/meet/{code}?name=Bad%E2%80%AEname&autojoin=1")))
        .await;
    let error = browser
        .text_when("the refusal is said", LIMIT, ERROR, |e| !e.is_empty())
        .await;
    let said = "Your name: U+202E (a text direction override) is not allowed.";
    assert_eq!(error, said);
    assert_eq!(browser.script(NAME_FIELD).await, format!("true|{said}"));
    assert_eq!(browser.script(FOCUS).await, "name");

    // A name that can be shown joins, and the field is no longer marked.
    browser
        .script("document.getElementById('name').value = 'Good name'; return ''")
        .await;
    let join = browser.find("#join").await;
    browser.click(&join).await;
    browser
        .text_when("the guest joins", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;
    assert_eq!(browser.script(NAME_FIELD).await, "");
    browser.quit().await;
}

/// The call's toggles as `id=label`, with ` pressed=...` where one has `aria-pressed`,
/// `|`-separated.
const TOGGLES: &str = "return ['mute-audio', 'mute-video', 'record'].map((id) => { \
     const b = document.getElementById(id); if (!b) return id + ' missing'; \
     return id + '=' + b.textContent \
     + (b.hasAttribute('aria-pressed') ? ' pressed=' + b.getAttribute('aria-pressed') : ''); \
     }).join('|')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mute_and_record_buttons_say_what_they_do_and_are_not_also_pressed() {
    let app = common::spawn_app().await;
    let (host, _) = host_starts_from_the_lobby(
        &app,
        "Toggles",
        "f.querySelector('[name=allow_recording]').checked = true;",
    )
    .await;
    host.text_when("the host joins", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;
    host.text_when("Record is offered", LIMIT, TOGGLES, |t| {
        !t.contains("missing")
    })
    .await;
    assert_eq!(
        host.script(TOGGLES).await,
        "mute-audio=Mute microphone|mute-video=Turn camera off|record=Record"
    );
    let microphone = host.find("#mute-audio").await;
    host.click(&microphone).await;
    let camera = host.find("#mute-video").await;
    host.click(&camera).await;
    assert_eq!(
        host.script(TOGGLES).await,
        "mute-audio=Unmute microphone|mute-video=Turn camera on|record=Record"
    );
    host.quit().await;
}

/// What the tile of participant `id` shows: `placeholder:TEXT` while its camera-off
/// placeholder shows (and the picture does not), `picture` while the picture shows.
fn tile_shows(id: &str) -> String {
    format!(
        "const t = document.querySelector('.tile[data-participant=\"{id}\"]'); \
         if (!t) return ''; \
         const p = t.querySelector('.placeholder'); \
         const v = t.querySelector('video, canvas'); \
         if (p && !p.hidden && v.hidden) return 'placeholder:' + p.textContent; \
         return !v.hidden && (!p || p.hidden) ? 'picture' : 'both'"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_turned_off_shows_the_persons_initial_instead_of_a_frozen_frame() {
    let app = common::spawn_app().await;
    let (code, _) = create_meeting(&app, json!({ "display_name": "Cameras" })).await;
    let (ada, ada_id) = join_by_link(&app.url(""), &code, "ada").await;
    let (bob, _) = join_by_link(&app.url(""), &code, "Bob").await;
    bob.text_when("Bob sees Ada's picture", LIMIT, &tile_shows(&ada_id), |s| {
        s == "picture"
    })
    .await;

    let camera = ada.find("#mute-video").await;
    ada.click(&camera).await;
    bob.text_when("Bob sees Ada's initial", LIMIT, &tile_shows(&ada_id), |s| {
        s == "placeholder:A"
    })
    .await;
    assert_eq!(ada.script(&tile_shows(&ada_id)).await, "placeholder:A");

    ada.click(&camera).await;
    bob.text_when(
        "Bob sees Ada's picture again",
        LIMIT,
        &tile_shows(&ada_id),
        |s| s == "picture",
    )
    .await;
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_without_a_key_is_marked_and_the_safety_code_is_shown_without_it() {
    let app = common::spawn_app().await;
    let (code, host) = create_meeting(
        &app,
        json!({ "display_name": "Sealed", "enable_e2e_encryption": true }),
    )
    .await;
    let (ada, _) = join_by_link(&app.url(""), &code, "Ada").await;
    let (bob, _) = join_by_link(&app.url(""), &code, "Bob").await;
    let two = same_safety_code(&[&ada, &bob]).await;
    // A program (as the command line joins) says no key.
    let program = host_over_api(&app, &host, &code).await;

    let mark = "return Array.from(document.querySelectorAll('.tile.remote[data-no-key] .no-key')) \
         .filter((m) => !m.hidden).map((m) => m.textContent).join('\\n')";
    for browser in [&ada, &bob] {
        browser
            .text_when("the keyless participant is marked", LIMIT, mark, |m| {
                m == "no encryption key: cannot see or hear this call"
            })
            .await;
    }
    let shown = same_safety_code(&[&ada, &bob]).await;
    assert_eq!(shown, two, "the code over the two with keys");
    drop(program);
    ada.quit().await;
    bob.quit().await;
}

/// The keyless participant's tile: `shown` when its name shows in full beside or above
/// the no-key mark, else the widths of the name (shown / needed) and of the tile.
const KEYLESS_NAME: &str = "const t = document.querySelector('.tile.remote[data-no-key]'); \
     if (!t) return 'no tile'; \
     const n = t.querySelector('.name'); \
     const mark = t.querySelector('.no-key'); \
     if (!mark || mark.hidden) return 'no mark'; \
     const r = n.getBoundingClientRect(), f = t.getBoundingClientRect(); \
     return n.scrollWidth <= n.clientWidth && r.right <= f.right ? 'shown' \
     : `name ${n.clientWidth} of ${n.scrollWidth} px in a tile of ${f.width} px`";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_participants_name_is_not_cut_short_by_the_no_key_mark() {
    let app = common::spawn_app().await;
    let (code, _) = create_meeting(
        &app,
        json!({ "display_name": "Sealed", "enable_e2e_encryption": true }),
    )
    .await;
    let (ada, _) = join_by_link(&app.url(""), &code, "Ada").await;
    // A program (as the command line joins) has no key.
    let program = guest_over_api(&app, &code, "Alexandra Quist").await;
    for width in [390, 1280] {
        ada.window_size(width, 844).await;
        ada.text_when(
            &format!("the name shows in full at {width} px"),
            LIMIT,
            KEYLESS_NAME,
            |s| s == "shown",
        )
        .await;
    }
    drop(program);
    ada.quit().await;
}

/// The controls in `scope` (buttons, selects, summaries, text fields) shown less than
/// 44 CSS pixels tall, as `what=height` lines (empty when none).
fn short_targets(scope: &str) -> String {
    format!(
        "return Array.from(document.querySelectorAll( \
         '{scope} button, {scope} select, {scope} summary, {scope} input[type=text]')) \
         .filter((e) => e.getClientRects().length > 0) \
         .map((e) => [e.id || e.textContent.trim(), e.getBoundingClientRect().height]) \
         .filter(([, h]) => h < 44).map(([w, h]) => `${{w}}=${{h}}`).join('\\n')"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_every_control_of_the_meeting_pages_is_a_finger_tall() {
    let app = common::spawn_app().await;
    let (host, code) = host_starts_from_the_lobby(&app, "Tap tap", "").await;
    host.window_size(390, 844).await;
    host.text_when("the host joins", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;
    host.find("#copy-link").await;
    host.script("document.querySelector('.devices').open = true; return ''")
        .await;
    assert_eq!(host.script(&short_targets("#meet")).await, "");

    // The meetings page lists the host's meeting with its "End it".
    host.open(&app.url("/meet")).await;
    host.find(".meet-lobby form.end button").await;
    assert_eq!(host.script(&short_targets(".meet-lobby")).await, "");

    // The meeting's page before joining: its name field and Join.
    host.open(&app.url(&format!("/meet/{code}"))).await;
    host.find("#join-form #join").await;
    assert_eq!(host.script(&short_targets("#meet")).await, "");
    host.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_let_in_who_reloads_keeps_their_name_and_joins_without_waiting_again() {
    use meetings::controller::proto::{Admission, client_message::Payload as C};
    let app = common::spawn_app().await;
    let (code, token) = create_meeting(
        &app,
        json!({ "display_name": "Behind the door", "waiting_room_enabled": true }),
    )
    .await;
    let mut host = host_over_api(&app, &token, &code).await;
    let vic = Browser::start().await;
    vic.open(&app.url(&format!("/meet/{code}?name=Vic&autojoin=1")))
        .await;
    let waiting = sees_waiting(&mut host, "Vic").await;
    host.send(C::Admission(Admission {
        participant_id: waiting,
        admit: true,
    }))
    .await
    .unwrap();
    let first = vic
        .text_when("Vic is let in", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;

    // A reload, without the name in the link: the name is kept, and the host's
    // decision too (nobody lets Vic in again).
    vic.open(&app.url(&format!("/meet/{code}"))).await;
    assert_eq!(
        vic.script("return document.getElementById('name').value")
            .await,
        "Vic"
    );
    let join = vic.find("#join").await;
    vic.click(&join).await;
    let again = vic
        .text_when("Vic joins again", LIMIT, JOINED_OR_ERROR, |s| {
            !s.is_empty() && s != first
        })
        .await;
    assert!(!again.starts_with("error"), "{again}");
    vic.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creator_ends_the_meeting_for_everyone_from_its_page() {
    let app = common::spawn_app().await;
    let (host, code) = host_starts_from_the_lobby(&app, "Short one", "").await;
    host.text_when("the host joins", LIMIT, SELF_ID, |id| !id.is_empty())
        .await;
    let (guest, _) = join_by_link(&app.url(""), &code, "Gil").await;

    let end = host.find("#end-for-everyone").await;
    host.click(&end).await;
    let said = host
        .text_when("the host is told", LIMIT, END_SHOWN, |s| !s.is_empty())
        .await;
    assert_eq!(said, "You ended this meeting. Back to the meetings");
    let said = guest
        .text_when("the guest is told", LIMIT, END_SHOWN, |s| !s.is_empty())
        .await;
    assert_eq!(said, "The host ended this meeting. Back to the meetings");
    host.quit().await;
    guest.quit().await;
}
