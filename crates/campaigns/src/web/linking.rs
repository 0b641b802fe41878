//! Linking a Discord user's Meetup account: the page behind the one-time link of
//! `/link-meetup` (`/link-meetup/{linking id}`), the start of the round trip to Meetup,
//! and its end (called by the shared callback).
//!
//! 1. `GET /link-meetup/{id}` opens the id (it now lives 10 more minutes, `GETEX`) and
//!    shows whom it links, with a button to Meetup: the Discord account by the name it
//!    had when `/link-meetup` made the link (Tavern's own key
//!    `schema::linking_name`), else by its id. The link is a bearer link (whoever
//!    holds it may use it, signed in or not), so a visitor signed in as another
//!    Discord account is not refused but warned plainly, before the button, that the
//!    link is someone else's and what continuing would do; a visitor signed out is
//!    told to continue only if they asked for the link themselves (a display name is
//!    anyone's to copy). An unknown, expired or
//!    used id is a 404 page saying to ask for a new link.
//! 2. `GET /link-meetup/{id}/start` checks the id again and leaves for Meetup (see
//!    [`super`]: CSRF token under `csrf:{}`, the flow cookie with the transient and the
//!    linking id).
//! 3. The callback, once its CSRF check passed and Meetup said who signed in, consumes
//!    the linking id (`GETDEL`: one link per id) and links the two accounts in one
//!    transaction ([`crate::Repo::link`]). A Meetup or Discord account linked to somebody else
//!    is refused in words (409), as the repository decides: the accounts by their names
//!    where Tavern knows them (the Meetup name from the sign-in or the sync, the Discord
//!    name from `/link-meetup`; the other Discord member only as "another Discord
//!    member", a page cannot mention one), and what the visitor can do about it.
//!
//! The user's own Meetup tokens are not kept: linking needs only who they are.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use web::page::{Page, Problem};

use super::{WebState, leave_for_meetup, storage_problem};
use crate::domain::{LinkingId, MeetupUserId};
use crate::repo::{LinkOutcome, RepoError};

fn unknown_link() -> Problem {
    Problem::not_found(
        "This link is unknown, has expired or was already used. Links from /link-meetup \
         work once, for a day (ten minutes once opened). Type /link-meetup in Discord for \
         a new one.",
    )
}

/// `GET /link-meetup/{linking id}`.
pub(crate) async fn page(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    page: Page,
) -> Response {
    let Ok(id) = LinkingId::parse(&raw) else {
        return page.problem(unknown_link());
    };
    let discord = match state.repo.open_linking_id(&id).await {
        Ok(Some(user)) => user,
        Ok(None) => return page.problem(unknown_link()),
        Err(e) => return page.problem(storage_problem(&e)),
    };
    let linked = match state.repo.meetup_user_of(discord).await {
        Ok(linked) => linked,
        Err(e) => return page.problem(storage_problem(&e)),
    };
    let viewer = page.user().map(|u| (u.id, display_name(u)));
    // The name Discord showed when the link was asked for, else the signed-in
    // user's own when the link is theirs; the id only when Tavern knows no name.
    let name = match state.repo.linking_name(discord).await {
        Ok(name) => name,
        Err(error) => {
            tracing::warn!(%error, user = %discord, "could not read the name of a linking link's Discord account");
            None
        }
    }
    .or_else(|| {
        viewer
            .as_ref()
            .filter(|(id, _)| *id == discord)
            .map(|(_, name)| name.clone())
    });
    let someone_else = viewer.as_ref().filter(|(id, _)| *id != discord);
    let start = format!("/link-meetup/{}/start", id.expose());
    page.render(
        "Link your Meetup account",
        html! {
            section.content {
                h1 { "Link your Meetup account" }
                @if let Some((_, you)) = someone_else {
                    div.problem role="alert" {
                        p {
                            strong {
                                @match &name {
                                    Some(name) => { "This link was made for " (name) "'s Discord account; " }
                                    None => { "This link was made for another Discord account (id " (discord.to_string()) "); " }
                                }
                                "you are signed in as " (you) "."
                            }
                        }
                        p {
                            "If you continue, the Meetup account you sign in with is linked to "
                            "that Discord account, not yours. To link your own, type "
                            "/link-meetup in Discord yourself."
                        }
                    }
                }
                p {
                    "This links the Discord account "
                    @match &name {
                        Some(name) => strong { (name) },
                        None => { "with id " strong { (discord.to_string()) } },
                    }
                    " to the Meetup account you sign in with next. Once linked, Tavern gives "
                    "that Discord account access to the game channels of the Meetup events "
                    "the Meetup account RSVPs to."
                }
                @if viewer.is_none() {
                    // A display name is anyone's to copy: whoever opens a link signed
                    // out is told whose link to trust.
                    p.muted {
                        "Continue only if you asked for this link yourself by typing "
                        "/link-meetup in Discord: whoever holds it links the Meetup account "
                        "you sign in with to the Discord account that asked for it."
                    }
                }
                @if let Some(meetup) = linked {
                    p.muted {
                        "This Discord account is already linked to Meetup member "
                        strong { (meetup.to_string()) } ". Linking it again to the same "
                        "member changes nothing; to link another one, use /unlink-meetup first."
                    }
                }
                p { a.button href=(start) { "Continue to Meetup" } }
                p.muted { "The link works for ten minutes from now." }
            }
        },
    )
    .into_response()
}

/// What to call a signed-in user: the display name, else the username.
fn display_name(user: &web::session::SessionUser) -> String {
    user.global_name
        .clone()
        .unwrap_or_else(|| user.username.clone())
}

/// `GET /link-meetup/{linking id}/start`.
pub(crate) async fn start(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    page: Page,
) -> Response {
    let Ok(id) = LinkingId::parse(&raw) else {
        return page.problem(unknown_link());
    };
    match state.repo.open_linking_id(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return page.problem(unknown_link()),
        Err(e) => return page.problem(storage_problem(&e)),
    }
    match leave_for_meetup(&state, Some(id)).await {
        Ok(response) => response,
        Err(e) => page.problem(storage_problem(&e)),
    }
}

/// The Meetup account the visitor signed in with: its name, else its id.
fn signed_in_meetup(member: &meetup::Member, id: &MeetupUserId) -> String {
    match member
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        Some(name) => name.to_owned(),
        None => format!("Meetup member {id}"),
    }
}

/// The Meetup account is linked to another Discord member. Who that is stays unsaid:
/// a web page cannot mention a Discord member, and their id would mean nothing to the
/// reader; the advice is what the reader can do.
fn meetup_account_taken(member: &meetup::Member, id: &MeetupUserId) -> Problem {
    let account = signed_in_meetup(member, id);
    Problem::new(
        StatusCode::CONFLICT,
        "Already linked to another member",
        format!(
            "The Meetup account you signed in with ({account}) is already linked to another \
             Discord member, so nothing was changed. If that Discord account is yours too, \
             sign in to Discord with it and type /unlink-meetup, then type /link-meetup with \
             the account you want linked for a new link. If it is not yours, ask an admin of \
             the community's Discord server to unlink it with /unlink."
        ),
    )
}

/// The Discord account that asked for the link is linked to another Meetup account
/// (`other`), named as Meetup named it to the sync, else by its id.
async fn discord_account_taken(
    state: &WebState,
    discord: discord::model::UserId,
    member: &meetup::Member,
    signed_in: &MeetupUserId,
    other: MeetupUserId,
) -> Problem {
    let account = match state.repo.linking_name(discord).await {
        Ok(Some(name)) => format!("The Discord account {name}"),
        Ok(None) => "The Discord account that asked for this link".to_owned(),
        Err(error) => {
            tracing::warn!(%error, user = %discord, "could not read the name of a linking link's Discord account");
            "The Discord account that asked for this link".to_owned()
        }
    };
    let other = match state.repo.meetup_names(&[other]).await {
        Ok(names) => match names.get(&other) {
            Some(name) => format!("{name} (Meetup member {other})"),
            None => format!("Meetup member {other}"),
        },
        Err(error) => {
            tracing::warn!(%error, "could not read a Meetup member's name for the linking page");
            format!("Meetup member {other}")
        }
    };
    let signed_in = signed_in_meetup(member, signed_in);
    Problem::new(
        StatusCode::CONFLICT,
        "Already linked to another Meetup account",
        format!(
            "{account} is already linked to another Meetup account, {other}, so the one you \
             signed in with ({signed_in}) was not linked and nothing was changed. To link it \
             instead, type /unlink-meetup in Discord with that account, then /link-meetup \
             for a new link."
        ),
    )
}

/// The end of the linking round trip (after the callback's checks).
pub(crate) async fn finish(
    state: &WebState,
    page: &Page,
    id: LinkingId,
    member: meetup::Member,
) -> Response {
    let meetup_user = match MeetupUserId::parse(member.id.as_str()) {
        Ok(m) => m,
        Err(e) => {
            return page.problem(Problem::new(
                StatusCode::BAD_GATEWAY,
                "Meetup did not answer as expected",
                format!("Meetup named your account with an id Tavern cannot use: {e}."),
            ));
        }
    };
    let discord = match state.repo.consume_linking_id(&id).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return page.problem(Problem::new(
                StatusCode::GONE,
                "This link has expired",
                "The link expired while you were on Meetup (ten minutes) or was used in \
                 another tab. Nothing was linked. Type /link-meetup in Discord for a new one.",
            ));
        }
        Err(e) => return page.problem(storage_problem(&e)),
    };
    let name = member.name.clone().unwrap_or_else(|| member.id.to_string());
    match state.repo.link(meetup_user, discord, None).await {
        Ok(outcome) => page
            .render(
                "Meetup account linked",
                html! {
                    section.content {
                        h1 { "Linked" }
                        p {
                            "Your Discord account is now linked to the Meetup account "
                            strong { (name) } "."
                            @if outcome == LinkOutcome::AlreadyLinked { " (It already was.)" }
                        }
                        p {
                            "Game channels of the events you RSVP to on Meetup appear in "
                            "Discord after the next sync (every 15 minutes). You can close "
                            "this page."
                        }
                    }
                },
            )
            .into_response(),
        Err(RepoError::MeetupUserLinkedElsewhere { .. }) => {
            page.problem(meetup_account_taken(&member, &meetup_user))
        }
        Err(RepoError::DiscordUserLinkedElsewhere { meetup, .. }) => {
            page.problem(discord_account_taken(state, discord, &member, &meetup_user, meetup).await)
        }
        Err(e) => page.problem(storage_problem(&e)),
    }
}
