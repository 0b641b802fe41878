//! The meetings browser client: `GET /meet/{code}`, a page in Tavern's layout, and the
//! script and stylesheet it loads (compiled into the binary, served under
//! `/assets/meetings/`).
//!
//! The page is a name field and a "Join" button, then the call: a grid of tiles (the
//! participant's own camera, then one per other participant with their name), the
//! microphone and camera buttons, a device picker and "Leave". Everything after the
//! first paint is the script's (`assets/meet/meet.js`, plain JavaScript, no build
//! step):
//!
//! - it asks for a guest's grant (`POST /api/v1/meetings/{meeting}/guest-token`, by code), opens
//!   the controller's WebTransport session (pinning `certificate_hash` with
//!   `serverCertificateHashes` when there is one) and speaks the signalling of
//!   [`crate::controller::proto`] with a small hand-written protobuf codec: the
//!   `JoinRequest`, a `Heartbeat` every 10 s, `SetMute` from the buttons, `Leave`;
//! - every participant of the `JoinResponse` and of each `ParticipantJoined` becomes a
//!   tile (`data-participant` = the participant's id, `data-frames-decoded` = video
//!   frames decoded so far), removed on `ParticipantLeft`; `MuteChanged` shows on it;
//! - with a media grant in the `JoinResponse` (field 7) it captures the camera and the
//!   microphone, encodes them with WebCodecs (VP8 as two simulcast layers, full and
//!   quarter size; Opus) and sends each frame on its own unidirectional stream to the
//!   media handler, and decodes what the handler forwards (a stream per publisher's
//!   track and group of frames, read all at once) into the other participants'
//!   tiles (the media wire contract v1), each tile asking for the small layer while it
//!   is under 320 px wide (`data-layer` shows the one it receives), highlighting the
//!   loudest as the active speaker. A media session that fails to open (or is not
//!   open within 3 s, doubled after each failure in a row), or is lost during the
//!   call, is made again with a new media
//!   grant asked of the controller (`RequestMediaGrant`), at once and then after 1, 2,
//!   4 and 8 s (`data-media-retries` on `#meet` counts them); the tiles' counts go on.
//!   In a meeting with `enable_e2e_encryption` every
//!   frame is encrypted before it leaves the page (AES-GCM under sender keys the
//!   participants exchange through the controller) and the page shows a safety code;
//! - the invitation under the title (`#invite-link`, the meeting's link, made absolute
//!   from the page's address) gets a "Copy link" button where the clipboard can be
//!   written (`data-copied` on it: `1` once copied, `0` when the browser refused);
//! - a refusal (the meeting admits signed-in users only, has ended, is full, has no
//!   controller, ...) is said on the page, in words;
//! - leaving shows "You left the meeting. Join again"; a meeting its host ends during
//!   the call says so instead (`#ended`, `data-ended` on `#meet`), with no "Join again"
//!   and no join form; a join refused because the meeting has ended shows no join
//!   form either;
//! - a meeting that moved (`meeting_moved`, also when its controller stops) is joined
//!   again with a new grant, waiting up to about a minute for a controller; a
//!   connection lost (the network, or the controller closing it) is joined again at
//!   once, up to 3 times in 5 minutes (`data-rejoins` on `#meet`).
//!
//! A signed-in visitor's page carries `data-grant-url` (`/meet/{code}/grant`): the
//! script may ask that route for a grant named by the visitor's account (the session
//! cookie, the layout's `<meta name="csrf-token">` as `X-CSRF-Token`), which also
//! admits them to meetings with `require_auth`. Their name field is read-only (the
//! account's name; a `?name=` is not used), and every page labels its own tile with
//! the grant's `display_name`, the name the others see.
//!
//! A signed-in visitor's page also carries `data-recording-url`
//! (`/meet/{code}/recording`, [`super::recordings`]): when the visitor hosts a meeting
//! with `allow_recording`, the script shows a Record / Stop button (posting there and to
//! `.../stop` with the CSRF token); where recording is not offered it says why. The
//! host's page lists the meeting's recordings, the ready ones with their download links,
//! before joining, in the call and once the meeting has ended. In an
//! end-to-end encrypted meeting every visitor's page says why it is not recorded.
//! Every visitor's page, guests' too, carries `data-recording-now-url`
//! (`/meet/{code}/recording/now`): the script asks it at once and every
//! 10 s and, while a recording runs, says "This meeting is being recorded." (before
//! joining as well as in the call), so nobody is recorded without being told.
//!
//! `/meet/{code}?name=NAME&autojoin=1` joins at once with the default devices (kiosks,
//! bookmarks, links between Tavern's own pages), but only when the browser says the
//! visit was not started by another site (`Sec-Fetch-Site: same-origin` or `none`):
//! followed from anywhere else (a chat message, another site), the page waits for the
//! visitor's Join, so a link cannot put someone's camera and account into a meeting
//! without a click. A browser that sends no `Sec-Fetch-Site` waits too.
//! The page reads the meeting its code names: a code that cannot be a meeting code, or
//! that names no meeting, is a 404 page saying so; an ended meeting's page (410) says
//! it has ended, with no invitation and no join form, and its host's recordings
//! (`data-ended` on `#meet`; the script lists them as above).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use web::page::{Asset, Page, Problem};

use super::WebState;
use crate::MeetingsError;
use crate::domain::{MeetingCode, MeetingStatus};

/// The page's path.
pub const MEET_PATH: &str = "/meet/{code}";
/// The signed-in visitor's grant ([`super::meetings::SESSION_GRANT_PATH`]), which the
/// page names in `data-grant-url` when the visitor is signed in.
const MEET_GRANT_PATH_TEMPLATE: &str = super::meetings::SESSION_GRANT_PATH;
/// The client's script, served at `/assets/meetings/meet.js` by the kit's
/// [`web::access::Routes::assets`].
pub static MEET_SCRIPT: Asset = Asset::new(
    "meetings/meet.js",
    "text/javascript; charset=utf-8",
    include_bytes!("../../assets/meet/meet.js"),
);

/// The query of `/meet/{code}`.
#[derive(Debug, Deserialize)]
pub struct MeetQuery {
    /// The name to join under (the field is filled with it).
    #[serde(default)]
    pub name: Option<String>,
    /// `1` (or `true`): join at once, with the default devices.
    #[serde(default)]
    pub autojoin: Option<String>,
}

impl MeetQuery {
    fn autojoin(&self) -> bool {
        matches!(self.autojoin.as_deref(), Some("1" | "true" | "yes"))
    }
}

/// `GET /meet/{code}`: the meeting client.
pub(super) async fn meet(
    State(state): State<WebState>,
    page: Page,
    Path(code): Path<String>,
    Query(query): Query<MeetQuery>,
    headers: HeaderMap,
) -> Response {
    let Ok(code) = MeetingCode::parse(&code) else {
        return page.problem(
            Problem::not_found(format!(
                "“{}” is not a meeting code: a code looks like ABC-DEFG-HJK.",
                web::page::quoted(&code)
            ))
            .link("Back to the start", "/"),
        );
    };
    let meeting = match state.repo.meeting_by_code(&code).await {
        Ok(meeting) if meeting.status == MeetingStatus::Ended => {
            let recording = page
                .user()
                .map(|_| super::recordings::PAGE_RECORDING_PATH.replace("{code}", code.as_str()));
            let main = ended(code.as_str(), &meeting.display_name, recording.as_deref());
            let page = page.script(&MEET_SCRIPT).class("meet-page");
            let title = format!("{} (ended)", meeting.display_name);
            return (StatusCode::GONE, page.render(&title, main)).into_response();
        }
        Ok(meeting) => meeting,
        Err(MeetingsError::Storage(store::StorageError::NotFound { .. })) => {
            return page.problem(
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "No meeting has this code",
                    format!(
                        "No meeting has the code {code}: check the link or the code with whoever shared it."
                    ),
                )
                .link("Back to the meetings", super::lobby::LOBBY_PATH),
            );
        }
        Err(error) => {
            tracing::error!(%error, %code, "could not look a meeting code up");
            return page.problem(
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Meetings are unavailable",
                    "Meetings cannot be looked up right now; try again in a moment.",
                )
                .link("Back to the meetings", super::lobby::LOBBY_PATH),
            );
        }
    };
    // A signed-in visitor joins under their account's name, whatever the link says.
    let name = page
        .user()
        .map(|u| web::page::display_name(u).to_owned())
        .or_else(|| query.name.clone())
        .unwrap_or_default();
    let autojoin = query.autojoin() && !name.trim().is_empty() && not_from_another_site(&headers);
    if query.autojoin() && !autojoin {
        tracing::debug!("autojoin asked by a link from elsewhere: the page waits for Join");
    }
    let grant = page
        .user()
        .map(|_| MEET_GRANT_PATH_TEMPLATE.replace("{code}", code.as_str()));
    let main = body(
        code.as_str(),
        &meeting.display_name,
        &name,
        autojoin,
        grant.as_deref(),
    );
    let page = page.script(&MEET_SCRIPT).class("meet-page");
    (StatusCode::OK, page.render(&meeting.display_name, main)).into_response()
}

/// Whether the browser says this navigation was not started by another site: typed,
/// bookmarked or opened from a Tavern page (`Sec-Fetch-Site` `none` or `same-origin`).
fn not_from_another_site(headers: &HeaderMap) -> bool {
    matches!(
        headers
            .get("sec-fetch-site")
            .and_then(|value| value.to_str().ok()),
        Some("none" | "same-origin")
    )
}

/// An ended meeting's `main`: its name and code, that it has ended, and for a signed-in
/// visitor the recordings control's URL, through which the script lists the host's
/// recordings (nobody else's page lists any). No invitation, no join form, no call.
fn ended(code: &str, name: &str, recording: Option<&str>) -> Markup {
    html! {
        section #meet data-code=(code) data-ended="1" data-recording-url=[recording] {
            h1 #meeting-title { (name) " " span.code { (code) } }
            p #ended { "This meeting has ended. " a href=(super::lobby::LOBBY_PATH) { "Back to the meetings" } }
        }
    }
}

/// The page's `main`: the meeting's name and code, the join form (`name`: the
/// visitor's) and the (hidden until joined) call, a maud template like every page of
/// the kit (interpolated values are escaped by it). Its styles are the site's one
/// stylesheet's `.meet-page` rules (the page's class).
fn body(code: &str, meeting_name: &str, name: &str, autojoin: bool, grant: Option<&str>) -> Markup {
    // The host's Record / Stop control (see `super::recordings`).
    let recording = grant.map(|_| super::recordings::PAGE_RECORDING_PATH.replace("{code}", code));
    let recording_now = super::recordings::PAGE_RECORDING_NOW_PATH.replace("{code}", code);
    html! {
        section #meet data-code=(code) data-autojoin=[autojoin.then_some("1")]
            data-grant-url=[grant] data-recording-url=[recording]
            data-recording-now-url=(recording_now) {
            h1 #meeting-title { (meeting_name) " " span.code { (code) } }
            @let link = MEET_PATH.replace("{code}", code);
            p.invite {
                "Invite others with the code or this link: "
                a #invite-link href=(link) { (link) }
                " " button #copy-link type="button" hidden { "Copy link" }
            }
            p #status role="status" aria-live="polite" {}
            p #error .meet-error role="alert" hidden {}
            form #join-form {
                label for="name" { "Your name" }
                @if grant.is_some() {
                    // Signed in: the server names the participant by the account.
                    input #name name="name" type="text" maxlength="255" required readonly
                        value=(name) aria-describedby="name-hint";
                    small #name-hint .muted { "You join under your account's name." }
                } @else {
                    input #name name="name" type="text" maxlength="255" required
                        autocomplete="nickname" value=(name) placeholder="How the others see you";
                }
                button #join type="submit" { "Join" }
            }
            div #call hidden {
                // Where the focus goes once the page has joined (the form is gone): a
                // visible heading, so a keyboard user sees where the focus went.
                h2 #call-title tabindex="-1" { "In the call" }
                // The host hears who arrives in the waiting room here, once each (the
                // list itself is not read out again on every change).
                p #waiting-news .visually-hidden role="status" aria-live="polite" {}
                div #tiles .tiles {}
                div .controls {
                    button #mute-audio type="button" data-state="on" { "Mute microphone" }
                    button #mute-video type="button" data-state="on" { "Turn camera off" }
                    details .devices {
                        summary { "Devices" }
                        label for="camera" { "Camera" } " " select #camera {}
                        label for="microphone" { "Microphone" } " " select #microphone {}
                    }
                    button #leave .danger type="button" { "Leave" }
                }
                p #media-status .media-status {}
            }
            p #left hidden { "You left the meeting. " a href="" { "Join again" } }
            p #ended hidden {
                span #ended-text { "This meeting has ended." } " "
                a href=(super::lobby::LOBBY_PATH) { "Back to the meetings" }
            }
            noscript { p { "The meeting needs JavaScript." } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_text_cannot_break_out_of_the_markup() {
        let page = body(
            "ABC-DEFG-HJK",
            "<b>Friday</b> & co",
            "\"><script>x</script>",
            true,
            None,
        )
        .into_string();
        assert!(!page.contains("<script>x"), "{page}");
        // The meeting's name and code head the page before anyone joins.
        assert!(
            page.contains(
                "<h1 id=\"meeting-title\">&lt;b&gt;Friday&lt;/b&gt; &amp; co <span class=\"code\">ABC-DEFG-HJK</span></h1>"
            ),
            "{page}"
        );
        assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(page.contains("data-autojoin=\"1\""));
        // The invitation: the page's own link (the script makes it absolute and shows
        // the copy button where the clipboard can be written).
        assert!(
            page.contains("<a id=\"invite-link\" href=\"/meet/ABC-DEFG-HJK\">"),
            "{page}"
        );
        assert!(
            page.contains("<button id=\"copy-link\" type=\"button\" hidden>"),
            "{page}"
        );
        assert!(!page.contains("data-grant-url"));
        assert!(page.contains(" data-recording-now-url=\"/meet/ABC-DEFG-HJK/recording/now\""));
        let signed_in = body(
            "ABC-DEFG-HJK",
            "Friday",
            "Alice",
            false,
            Some("/meet/ABC-DEFG-HJK/grant"),
        )
        .into_string();
        assert!(signed_in.contains(" data-grant-url=\"/meet/ABC-DEFG-HJK/grant\""));
        assert!(signed_in.contains(" data-recording-url=\"/meet/ABC-DEFG-HJK/recording\""));
        assert!(
            !body("ABC-DEFG-HJK", "Friday", "Alice", false, None)
                .into_string()
                .contains("data-recording-url")
        );
    }
}
