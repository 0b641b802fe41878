//! The meetings page, `/meet`: where a person joins a meeting by its code, and a
//! signed-in member starts one and finds the meetings they started.
//!
//! | route | who | answer |
//! |---|---|---|
//! | `GET /meet` | anyone | the page: "Join a meeting" (a code), and for a signed-in visitor "Start a meeting", "Your meetings" (those they created that have not ended, newest first) and "Recent meetings with recordings" (those they created that ended with a ready recording, the last ended first, each linking to its page, where the recordings are); signed out, a link to log in |
//! | `GET /meet?code=CODE` | anyone | 303 to `/meet/{CODE}` (the code as people type it: any case, with or without hyphens); the page again with the reason beside the field when it is no code (400), names no meeting (404) or one that has ended (410) |
//! | `POST /meet` (form: `display_name`, and the checkboxes `enable_e2e_encryption`, `require_auth`, `allow_recording`, `waiting_room_enabled`) | a signed-in web session, with the form's CSRF field | 303 to the new meeting's `/meet/{code}`; the form again with the reason (400); 429 with `Retry-After` past the creation limit |
//! | `POST /meet/{code}/end` | a signed-in web session, with the form's CSRF field: the meeting's creator | ends the meeting (as the API's `POST /api/v1/meetings/{id}/end` does, its audit row naming them), then 303 back to `/meet`; 403 for anyone else; 404 for no such meeting |
//!
//! A meeting started here is the API's (`POST /api/v1/meetings`, [`super::meetings`]):
//! the same checks, the same per-user limit, its controller assigned at once, created
//! by the meetings account of the session's Discord user (made and linked the first
//! time, as the page's join grant does). A checkbox left unticked is `false`, as a form
//! says it; the form starts with the API's defaults ticked (end-to-end encryption on).
//! Reading the page never makes an account.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use web::page::{Page, Problem, see_other};

use super::meetings::display_name;
use super::{ApiError, WebState};
use crate::MeetingsError;
use crate::domain::{MeetingCode, MeetingStatus};
use crate::repo::{Meeting, MeetingSettings, NewMeeting};

/// The page's path (`GET`, and `POST` to start a meeting).
pub const LOBBY_PATH: &str = "/meet";
/// `POST`: the creator ends one of their meetings from the page.
pub const END_FROM_LOBBY_PATH: &str = "/meet/{code}/end";

/// How many of their meetings a signed-in visitor sees.
const YOUR_MEETINGS: u16 = 20;
/// How many of their ended meetings with recordings a signed-in visitor sees.
const RECORDED_MEETINGS: u16 = 10;

/// The query of `GET /meet`.
#[derive(Debug, Default, Deserialize)]
pub struct LobbyQuery {
    /// A meeting code to go to.
    #[serde(default)]
    pub code: Option<String>,
}

/// The form of `POST /meet` (the CSRF field is checked before the handler runs). Every
/// field may be missing: a missing name is said as such, a missing checkbox is unticked.
#[derive(Debug, Default, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub enable_e2e_encryption: Option<String>,
    #[serde(default)]
    pub require_auth: Option<String>,
    #[serde(default)]
    pub allow_recording: Option<String>,
    #[serde(default)]
    pub waiting_room_enabled: Option<String>,
}

impl StartForm {
    /// The form as it first shows: the API's defaults, and a name made of `who`'s.
    fn first(who: &str) -> StartForm {
        let defaults = MeetingSettings::default();
        let tick = |on: bool| on.then(|| "on".to_owned());
        StartForm {
            display_name: format!("{who}'s meeting"),
            enable_e2e_encryption: tick(defaults.enable_e2e_encryption),
            require_auth: tick(defaults.require_auth),
            allow_recording: tick(defaults.allow_recording),
            waiting_room_enabled: tick(defaults.waiting_room_enabled),
        }
    }

    /// The settings the ticks say, the rest the API's defaults.
    fn settings(&self) -> MeetingSettings {
        MeetingSettings {
            enable_e2e_encryption: self.enable_e2e_encryption.is_some(),
            require_auth: self.require_auth.is_some(),
            allow_recording: self.allow_recording.is_some(),
            waiting_room_enabled: self.waiting_room_enabled.is_some(),
            ..MeetingSettings::default()
        }
    }
}

/// What the page shows besides the layout.
struct Lobby<'a> {
    /// The code as typed, and why it leads nowhere.
    code: Option<(&'a str, String)>,
    /// `None` signed out.
    start: Option<(&'a StartForm, Option<String>)>,
    mine: &'a [Meeting],
    /// The meetings could not be read (said, not fatal).
    mine_unread: bool,
    /// Their ended meetings with a ready recording (none listed when unread: the
    /// failure is logged, and "Your meetings" says the lists could not be read).
    recorded: &'a [Meeting],
    login: String,
}

/// `GET /meet`: the page, or on to the meeting whose code was typed.
pub(super) async fn page(
    State(state): State<WebState>,
    page: Page,
    Query(query): Query<LobbyQuery>,
) -> Response {
    let typed = query.code.as_deref().map(str::trim).unwrap_or_default();
    let mut code_problem = None;
    if !typed.is_empty() {
        match go_to(&state, typed).await {
            Ok(code) => return see_other(&super::page::MEET_PATH.replace("{code}", code.as_str())),
            Err(problem) => code_problem = Some(problem),
        }
    }
    let status = code_problem
        .as_ref()
        .map_or(StatusCode::OK, |(status, _)| *status);
    let first = page
        .user()
        .map(|user| StartForm::first(web::page::display_name(user)));
    let code = code_problem.map(|(_, reason)| (typed, reason));
    render(
        &state,
        &page,
        status,
        code,
        first.as_ref().map(|f| (f, None)),
    )
    .await
}

/// The canonical code of a joinable meeting `typed` names, or the status and the
/// sentence that say why not.
async fn go_to(state: &WebState, typed: &str) -> Result<MeetingCode, (StatusCode, String)> {
    let code = MeetingCode::parse(typed).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "“{}” is not a meeting code: {}. A code looks like ABC-DEFG-HJK.",
                web::page::quoted(typed),
                e.reason
            ),
        )
    })?;
    match state.repo.meeting_by_code(&code).await {
        Ok(meeting) if meeting.status == MeetingStatus::Ended => Err((
            StatusCode::GONE,
            format!("The meeting {code} (“{}”) has ended.", meeting.display_name),
        )),
        Ok(_) => Ok(code),
        Err(MeetingsError::Storage(store::StorageError::NotFound { .. })) => Err((
            StatusCode::NOT_FOUND,
            format!("No meeting has the code {code}: check it with whoever shared it."),
        )),
        Err(error) => {
            tracing::error!(%error, %code, "could not look a meeting code up");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "Meetings cannot be looked up right now; try again in a moment.".to_owned(),
            ))
        }
    }
}

/// `POST /meet`: start a meeting, then go to its page.
pub(super) async fn start(
    State(state): State<WebState>,
    caller: web::access::Caller,
    page: Page,
    Form(form): Form<StartForm>,
) -> Response {
    let Some(user) = caller.user() else {
        // The kit's guard lets no anonymous request through to here.
        return render(&state, &page, StatusCode::UNAUTHORIZED, None, None).await;
    };
    let name = match display_name("display_name", &form.display_name) {
        Ok(name) => name,
        Err(error) => return refuse(&state, &page, &form, error).await,
    };
    let account = match state.session_account(user).await {
        Ok(account) => account,
        Err(error) => return refuse(&state, &page, &form, error).await,
    };
    let new = NewMeeting {
        display_name: name,
        created_by: Some(account),
        settings: form.settings(),
        scheduled_start_time: None,
    };
    match state.create(account, &new).await {
        Ok(meeting) => {
            tracing::info!(
                meeting = %meeting.meeting_id,
                code = %meeting.meeting_code,
                user = %account,
                "meeting started from the meetings page"
            );
            see_other(&super::page::MEET_PATH.replace("{code}", meeting.meeting_code.as_str()))
        }
        Err(error) => refuse(&state, &page, &form, error).await,
    }
}

/// The page again with `form` as sent and `error`'s reason beside it, with its status
/// (and `Retry-After`).
async fn refuse(state: &WebState, page: &Page, form: &StartForm, error: ApiError) -> Response {
    let mut response = render(
        state,
        page,
        error.status,
        None,
        Some((form, Some(sentence(&error.message)))),
    )
    .await;
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `POST /meet/{code}/end`: the creator ends their meeting, then back to the page.
pub(super) async fn end(
    State(state): State<WebState>,
    caller: web::access::Caller,
    page: Page,
    Path(code): Path<String>,
) -> Response {
    let Some(user) = caller.user() else {
        // The kit's guard lets no anonymous request through to here.
        return render(&state, &page, StatusCode::UNAUTHORIZED, None, None).await;
    };
    match end_as(&state, user, &code).await {
        Ok(()) => see_other(LOBBY_PATH),
        Err(error) => {
            let title = if error.status.is_server_error() {
                "Something went wrong"
            } else {
                "The meeting was not ended"
            };
            page.problem(
                Problem::new(error.status, title, sentence(&error.message))
                    .link("Back to the meetings", LOBBY_PATH),
            )
        }
    }
}

/// Ends the meeting `code` names for `user`, who must have created it (ending an ended
/// meeting changes nothing).
async fn end_as(
    state: &WebState,
    user: &web::session::SessionUser,
    code: &str,
) -> Result<(), ApiError> {
    let (meeting, account) = super::hosted_by(&state.repo, user, code).await?;
    if meeting.status != MeetingStatus::Ended {
        state
            .repo
            .end_meeting_by(meeting.meeting_id, account)
            .await?;
        tracing::info!(meeting = %meeting.meeting_id, user = %account, "meeting ended from the meetings page");
    }
    Ok(())
}

/// An API sentence ("display_name: must not be empty") as the page says it.
fn sentence(message: &str) -> String {
    let message = message.strip_prefix("display_name: ").unwrap_or(message);
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => {
            let mut s: String = first.to_uppercase().collect();
            s.push_str(chars.as_str());
            if !s.ends_with('.') {
                s.push('.');
            }
            s
        }
        None => String::new(),
    }
}

/// The page with `status`: the join form (with `code`'s reason), and for a signed-in
/// visitor the start form (`start`, with its reason) and their meetings.
async fn render(
    state: &WebState,
    page: &Page,
    status: StatusCode,
    code: Option<(&str, String)>,
    start: Option<(&StartForm, Option<String>)>,
) -> Response {
    let mut mine = Vec::new();
    let mut recorded = Vec::new();
    let mut mine_unread = false;
    if let Some(user) = page.user() {
        let provider_user = user.id.to_string();
        match state
            .repo
            .open_meetings_of_provider_user(crate::auth::DISCORD, &provider_user, YOUR_MEETINGS)
            .await
        {
            Ok(meetings) => mine = meetings,
            Err(error) => {
                tracing::warn!(%error, "could not read a visitor's meetings");
                mine_unread = true;
            }
        }
        match state
            .repo
            .ended_recorded_meetings_of_provider_user(
                crate::auth::DISCORD,
                &provider_user,
                RECORDED_MEETINGS,
            )
            .await
        {
            Ok(meetings) => recorded = meetings,
            Err(error) => {
                tracing::warn!(%error, "could not read a visitor's recorded meetings");
                mine_unread = true;
            }
        }
    }
    let lobby = Lobby {
        code,
        start: if page.user().is_some() { start } else { None },
        mine: &mine,
        mine_unread,
        recorded: &recorded,
        login: page.login_link(),
    };
    (
        status,
        page.render("Meetings", body(&lobby, &page.csrf_field())),
    )
        .into_response()
}

fn checkbox(name: &str, ticked: bool, label: &str, hint: &str) -> Markup {
    html! {
        label.check {
            input type="checkbox" name=(name) checked[ticked];
            span { (label) br; small.muted { (hint) } }
        }
    }
}

fn status_word(status: MeetingStatus) -> &'static str {
    match status {
        MeetingStatus::Scheduled => "not started",
        MeetingStatus::Active => "in progress",
        MeetingStatus::Ended => "ended",
    }
}

fn body(lobby: &Lobby<'_>, csrf: &Markup) -> Markup {
    let (typed, code_error) = match &lobby.code {
        Some((typed, reason)) => (*typed, Some(reason.as_str())),
        None => ("", None),
    };
    html! {
        section.meet-lobby {
            h1 { "Meetings" }
            p.lead {
                "Video meetings in the browser: camera, microphone and the others' tiles, "
                "nothing to install. A meeting is end-to-end encrypted unless its host "
                "says otherwise."
            }
            h2 { "Join a meeting" }
            form #join-by-code method="get" action=(LOBBY_PATH) {
                label for="code" { "Meeting code" }
                div.field-row {
                    input #code name="code" type="text" required value=(typed)
                        placeholder="ABC-DEFG-HJK" autocomplete="off" autocapitalize="characters"
                        spellcheck="false" maxlength="40"
                        aria-invalid=[code_error.map(|_| "true")]
                        aria-describedby=[code_error.map(|_| "code-error")];
                    button type="submit" { "Join" }
                }
                @if let Some(reason) = code_error {
                    p #code-error .form-error role="alert" { (reason) }
                }
            }
            h2 { "Start a meeting" }
            @if let Some((form, reason)) = &lobby.start {
                form #start method="post" action=(LOBBY_PATH) {
                    (csrf.clone())
                    label for="display_name" { "Name" }
                    input #display_name name="display_name" type="text" required maxlength="255"
                        value=(form.display_name)
                        aria-invalid=[reason.as_ref().map(|_| "true")]
                        aria-describedby=[reason.as_ref().map(|_| "start-error")];
                    (checkbox("enable_e2e_encryption", form.enable_e2e_encryption.is_some(),
                        "End-to-end encrypted",
                        "Frames are encrypted in each browser; the server forwards what it cannot read. Such a meeting is not recorded."))
                    (checkbox("require_auth", form.require_auth.is_some(),
                        "Signed-in members only",
                        "Nobody joins as a guest with just the code."))
                    (checkbox("allow_recording", form.allow_recording.is_some(),
                        "Allow recording",
                        "You may record from the meeting's page (not when it is end-to-end encrypted)."))
                    (checkbox("waiting_room_enabled", form.waiting_room_enabled.is_some(),
                        "Waiting room",
                        "Everybody else waits until you let them in from the meeting's page."))
                    @if let Some(reason) = reason {
                        p #start-error .form-error role="alert" { (reason) }
                    }
                    button.primary type="submit" { "Start the meeting" }
                }
                h2 { "Your meetings" }
                @if lobby.mine_unread {
                    p.muted { "Your meetings cannot be listed right now." }
                } @else if lobby.mine.is_empty() {
                    p.muted { "None open: the meetings you start show here until they end." }
                } @else {
                    ul.my-meetings {
                        @for meeting in lobby.mine {
                            @let code = meeting.meeting_code.as_str();
                            li data-meeting-code=(code) {
                                a href=(super::page::MEET_PATH.replace("{code}", code)) {
                                    (meeting.display_name)
                                }
                                " "
                                span.code { (code) }
                                " "
                                span.badge { (status_word(meeting.status)) }
                                form.end method="post"
                                    action=(END_FROM_LOBBY_PATH.replace("{code}", code)) {
                                    (csrf.clone())
                                    button type="submit" {
                                        @if meeting.status == MeetingStatus::Active {
                                            "End it for everyone"
                                        } @else { "End it" }
                                    }
                                }
                            }
                        }
                    }
                }
                @if !lobby.recorded.is_empty() {
                    h2 { "Recent meetings with recordings" }
                    ul.recorded-meetings {
                        @for meeting in lobby.recorded {
                            @let code = meeting.meeting_code.as_str();
                            li data-meeting-code=(code) {
                                a href=(super::page::MEET_PATH.replace("{code}", code)) {
                                    (meeting.display_name)
                                }
                                " "
                                span.code { (code) }
                                @if let Some(ended) = meeting.ended_at {
                                    " "
                                    span.muted { "ended " (ended.format("%Y-%m-%d %H:%M UTC")) }
                                }
                            }
                        }
                    }
                }
            } @else {
                p {
                    a href=(lobby.login) { "Log in with Discord" }
                    " to start a meeting. Anyone with a meeting's code can join it."
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn an_api_sentence_reads_as_a_page_s() {
        assert_eq!(
            sentence("display_name: must not be empty"),
            "Must not be empty."
        );
        assert_eq!(
            sentence("too many meetings created; try again in 12 s"),
            "Too many meetings created; try again in 12 s."
        );
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn unticked_boxes_are_false_and_the_first_form_ticks_the_api_s_defaults() {
        let first = StartForm::first("Ada");
        assert_eq!(first.display_name, "Ada's meeting");
        assert_eq!(first.settings(), MeetingSettings::default());
        let none = StartForm::default();
        let settings = none.settings();
        assert!(!settings.enable_e2e_encryption);
        assert!(!settings.require_auth);
        assert!(!settings.allow_recording);
        assert_eq!(
            settings.max_participants,
            MeetingSettings::default().max_participants
        );
    }
}
