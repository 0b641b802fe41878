//! The organiser's authorisation: someone who organises every configured Meetup group
//! lets Tavern read Meetup (and create the sessions the hosts schedule) as them.
//!
//! 1. `GET /campaigns/organiser` (signed-in users) says whether an organiser has
//!    authorised Tavern, when the token is next refreshed, and offers the button.
//! 2. `POST /campaigns/organiser` (with the session's CSRF token) leaves for Meetup
//!    (see [`super`]: `csrf:{}`, the flow cookie, `state`).
//! 3. The callback, once its CSRF check passed, asks Meetup for the token owner's role
//!    in every configured group. Unless they organise each of them (organiser,
//!    co-organiser or assistant organiser: [`meetup::GroupRole::organises`]), the page
//!    names the groups they do not organise and nothing is stored (403). Otherwise the
//!    tokens go to `meetup_access_token` / `meetup_refresh_token` with the next
//!    refresh a quarter of an hour before the access token expires, two days later at
//!    most (`meetup_access_token_refresh_time`, [`next_token_refresh`]), in one step.
//!
//! [`token_refresh`] is the job that keeps the token alive: every
//! [`CHECK_EVERY`] it refreshes the token when its refresh time has come, and
//! after a failure tries again [`RETRY_AFTER`] later.
//!
//! When Meetup refuses the authorisation itself (the refresh grant is refused with
//! `invalid_grant`, here or in the sync, or a freshly refreshed token is refused
//! again), only an organiser can help: the refusal is recorded (Tavern's own key
//! `schema::AUTHORISATION_REFUSED`),
//! the page says "Meetup refused Tavern's authorisation on \<date\>: authorise again",
//! and the organisers are told once in the alerts channel ([`alert_refusal`]; one
//! replica sends it, and an alert Discord refused is sent again at the next run).
//! While the stored pair is the refused one, nothing refreshes it (the job, the sync
//! and the schedule form), so the refusal keeps its date and costs no refresh token.
//! An organiser authorising again, or a Meetup call with the token that works, clears
//! it; a refresh does not. Meetup refusing Tavern's own client (`invalid_client`: the
//! `meetup_client_id` / `meetup_client_secret` settings are wrong) is logged as an
//! error naming those settings, and neither recorded nor alerted.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base::Clock;
use chrono::{DateTime, TimeDelta, Utc};
use feature::Job;
use maud::html;
use meetup::{ClientId, ClientSecret, MeetupClient, MeetupError};
use web::page::{Page, Problem};

use discord::{Discord, Reply};

use super::{WebState, leave_for_meetup, meetup_problem, storage_problem};
use crate::config::DiscordSettings;
use crate::repo::{Repo, RepoError, Tokens};
pub use crate::sync::next_token_refresh;

/// How long an organiser token is used before it is refreshed (the original's 2 days),
/// unless its access token expires sooner ([`next_token_refresh`]).
pub const REFRESH_EVERY: TimeDelta = crate::sync::TOKEN_REFRESH_INTERVAL;
/// How soon a failed refresh is tried again.
pub const RETRY_AFTER: TimeDelta = TimeDelta::hours(1);
/// How often the refresh job looks at the refresh time. Short next to both delays, so
/// a refresh is at most this late.
pub const CHECK_EVERY: Duration = Duration::from_secs(10 * 60);
/// The refresh job's name (and lock).
pub const REFRESH_JOB: &str = "campaigns-meetup-token-refresh";

/// `GET /campaigns/organiser`.
pub(crate) async fn page(State(state): State<WebState>, page: Page) -> Response {
    let tokens = match state.repo.organizer_tokens().await {
        Ok(tokens) => tokens,
        Err(e) => return page.problem(storage_problem(&e)),
    };
    let refused = match state.repo.authorisation_refused().await {
        Ok(refused) => refused,
        Err(e) => return page.problem(storage_problem(&e)),
    };
    let groups: Vec<String> = state.config.groups.iter().map(|g| g.to_string()).collect();
    let csrf = page.csrf_field();
    page.render(
        "Meetup organiser",
        html! {
            section.content {
                h1 { "Authorise Tavern on Meetup" }
                p {
                    "Tavern reads the events and RSVPs of the Meetup groups it syncs, and "
                    "creates the sessions hosts schedule, as one organiser. That organiser "
                    "must organise every one of these groups: "
                    @for (i, group) in groups.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (group) }
                    }
                    "."
                }
                @match (&tokens, refused) {
                    (Some(_), Some(at)) => {
                        p.problem role="alert" {
                            strong {
                                "Meetup refused Tavern's authorisation on "
                                (at.format("%Y-%m-%d %H:%M UTC").to_string())
                                ": authorise again."
                            }
                            " Until an organiser does, the Meetup sync stops and hosts "
                            "cannot schedule sessions."
                        }
                    }
                    (Some(tokens), None) => {
                        p {
                            "An organiser has authorised Tavern."
                            @if let Some(next) = tokens.next_refresh {
                                " The token is next refreshed on "
                                (next.format("%Y-%m-%d %H:%M UTC").to_string()) "."
                            }
                        }
                    }
                    (None, _) => {
                        p.muted { "Nobody has authorised Tavern yet: the Meetup sync waits." }
                    }
                }
                form method="post" action=(super::ORGANISER_PATH) {
                    (csrf)
                    button type="submit" { "Authorise with my Meetup account" }
                }
            }
        },
    )
    .into_response()
}

/// `POST /campaigns/organiser`.
pub(crate) async fn start(State(state): State<WebState>, page: Page) -> Response {
    match leave_for_meetup(&state, None).await {
        Ok(response) => response,
        Err(e) => page.problem(storage_problem(&e)),
    }
}

/// The end of the organiser's round trip (after the callback's checks).
pub(crate) async fn finish(
    state: &WebState,
    page: &Page,
    tokens: meetup::Tokens,
    member: meetup::Member,
) -> Response {
    let name = member.name.clone().unwrap_or_else(|| member.id.to_string());
    let mut not_organised: Vec<String> = Vec::new();
    for group in &state.config.groups {
        match state.meetup.group_role(&tokens.access_token, group).await {
            Ok(Some(role)) if role.organises() => {}
            Ok(Some(role)) => {
                not_organised.push(format!("{group} ({name} {} there)", role_in_words(&role)));
            }
            Ok(None) => not_organised.push(format!("{group} ({name} is not a member)")),
            Err(MeetupError::GroupNotFound(_)) => {
                not_organised.push(format!("{group} (Meetup has no such group)"));
            }
            Err(e) => {
                return page.problem(meetup_problem(
                    &format!("Asking Meetup for your role in {group} failed"),
                    &e,
                ));
            }
        }
    }
    if !not_organised.is_empty() {
        tracing::info!(
            member = %member.id,
            groups = not_organised.len(),
            "organiser authorisation refused: not an organiser of every group"
        );
        return page.problem(Problem::new(
            StatusCode::FORBIDDEN,
            "Not an organiser of every group",
            format!(
                "This page is for the organisers; you signed in to Meetup as {name}, who is \
                 not an organiser of every group Tavern syncs: {}. Nothing was stored. An \
                 organiser, co-organiser or assistant organiser of all of them must \
                 authorise Tavern.",
                not_organised.join(", ")
            ),
        ));
    }
    let next = next_token_refresh(state.clock.now(), tokens.expires_in);
    let stored = Tokens {
        access: tokens.access_token,
        refresh: tokens.refresh_token,
    };
    if let Err(e) = state.repo.set_organizer_tokens(&stored, next).await {
        return page.problem(storage_problem(&e));
    }
    tracing::info!(member = %member.id, "a Meetup organiser authorised Tavern");
    page.render(
        "Tavern authorised",
        html! {
            section.content {
                h1 { "Tavern is authorised" }
                p {
                    "Tavern now reads Meetup as " strong { (name) } ", who organises every "
                    "group it syncs. The token is refreshed before it expires, next on "
                    (next.format("%Y-%m-%d %H:%M UTC").to_string()) "."
                }
            }
        },
    )
    .into_response()
}

/// A Meetup role that does not organise the group, in words a member understands
/// ("is a member"), for the refusal; never Meetup's wire name.
fn role_in_words(role: &meetup::GroupRole) -> String {
    use meetup::GroupRole;
    match role {
        GroupRole::Organizer => "is the organiser".to_owned(),
        GroupRole::Coorganizer => "is a co-organiser".to_owned(),
        GroupRole::AssistantOrganizer => "is an assistant organiser".to_owned(),
        GroupRole::EventOrganizer => {
            "is an event organiser, who may manage events but not the group".to_owned()
        }
        GroupRole::Member => "is a member, not an organiser,".to_owned(),
        GroupRole::Other(other) => {
            format!("has a role Tavern does not know (Meetup calls it `{other}`)")
        }
    }
}

/// What one run of the refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// No organiser has authorised Tavern.
    NoToken,
    /// Not yet: the next refresh is at this time.
    NotDue(DateTime<Utc>),
    /// Refreshed and stored; the next refresh is at this time.
    Refreshed(DateTime<Utc>),
    /// Refreshed, but somebody stored newer tokens meanwhile (another refresh, or an
    /// organiser authorising again); theirs were kept.
    Superseded,
    /// Not tried: Meetup refused the stored pair (at this time) and only an organiser
    /// authorising again helps ([`Repo::refusal_stands`]).
    Refused(DateTime<Utc>),
    /// Not tried: somebody else (the sync, the schedule form, another replica) is
    /// refreshing the token right now ([`Repo::try_lock_token_refresh`]).
    Busy,
}

/// Why a refresh failed (it is tried again [`RETRY_AFTER`] later).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("refreshing the Meetup organiser token failed (next try at {retry_at}): {error}")]
    Meetup {
        error: MeetupError,
        retry_at: DateTime<Utc>,
    },
    #[error(transparent)]
    Storage(#[from] RepoError),
}

/// Refreshes the organiser token if its refresh time has come (a token without a
/// refresh time is refreshed at once). On success the new pair replaces the one the
/// refresh spent (only if it is still stored) with the next refresh [`REFRESH_EVERY`]
/// later, or sooner when the new access token expires sooner ([`next_token_refresh`]);
/// on failure the next try is [`RETRY_AFTER`] later (for that pair only). It runs
/// under the refresh lock, and does nothing while somebody else holds it
/// ([`RefreshOutcome::Busy`]). A pair Meetup refused is not
/// refreshed ([`RefreshOutcome::Refused`]) until an organiser authorises again or a
/// Meetup call with it works.
pub async fn refresh_if_due(
    repo: &Repo,
    client: &MeetupClient,
    client_id: &ClientId,
    client_secret: &ClientSecret,
    now: DateTime<Utc>,
) -> Result<RefreshOutcome, RefreshError> {
    let Some(lock) = repo.try_lock_token_refresh().await? else {
        return Ok(RefreshOutcome::Busy);
    };
    let outcome = refresh_locked(repo, client, client_id, client_secret, now).await;
    if let Err(error) = repo.unlock_token_refresh(lock).await {
        tracing::warn!(%error, "could not give the token refresh lock back; it expires by itself");
    }
    outcome
}

async fn refresh_locked(
    repo: &Repo,
    client: &MeetupClient,
    client_id: &ClientId,
    client_secret: &ClientSecret,
    now: DateTime<Utc>,
) -> Result<RefreshOutcome, RefreshError> {
    let Some(stored) = repo.organizer_tokens().await? else {
        return Ok(RefreshOutcome::NoToken);
    };
    if let Some(next) = stored.next_refresh.filter(|next| *next > now) {
        return Ok(RefreshOutcome::NotDue(next));
    }
    if let Some(since) = repo.refusal_stands().await? {
        return Ok(RefreshOutcome::Refused(since));
    }
    match client
        .refresh(client_id, client_secret, &stored.tokens.refresh)
        .await
    {
        Ok(fresh) => {
            let next = next_token_refresh(now, fresh.expires_in);
            let tokens = Tokens {
                access: fresh.access_token,
                refresh: fresh.refresh_token,
            };
            if repo
                .replace_organizer_tokens(&stored.tokens.refresh, &tokens, next)
                .await?
            {
                tracing::info!(next = %next.to_rfc3339(), "refreshed the Meetup organiser token");
                Ok(RefreshOutcome::Refreshed(next))
            } else {
                Ok(RefreshOutcome::Superseded)
            }
        }
        Err(error) => {
            let retry_at = now + RETRY_AFTER;
            // Only for the pair it tried: a pair stored meanwhile keeps its time.
            repo.set_next_token_refresh_for(&stored.tokens.refresh, retry_at)
                .await?;
            if error.is_refused_grant() {
                repo.note_refresh_grant_refused(&stored.tokens.refresh, now)
                    .await?;
            } else if error.is_client_rejected() {
                crate::sync::log_client_rejected(&error);
            }
            Err(RefreshError::Meetup { error, retry_at })
        }
    }
}

/// Where and how to tell the organisers that Meetup refused Tavern's authorisation.
#[derive(Debug, Clone)]
pub struct RefusalAlerts {
    pub discord: Discord,
    pub settings: DiscordSettings,
    /// The organiser page's address, named in the alert.
    pub organiser_page: String,
}

/// The alert's words.
pub fn refusal_alert(at: DateTime<Utc>, organiser_page: &str) -> String {
    format!(
        "Meetup refused Tavern's authorisation on {}: the Meetup sync has stopped until an \
         organiser of the Meetup group authorises Tavern again at {organiser_page}",
        at.format("%Y-%m-%d %H:%M UTC")
    )
}

/// Tells the organisers in the alerts channel that Meetup refused Tavern's
/// authorisation, once per recorded refusal ([`Repo::claim_refusal_alert`]): one
/// replica sends it, and it counts as sent only once Discord took it, so a failed send
/// is tried again at the next run. Nothing when none is recorded, they were told
/// already, or no alerts channel is configured. Failures are logged.
pub async fn alert_refusal(repo: &Repo, alerts: &RefusalAlerts) {
    let claim = match repo.claim_refusal_alert().await {
        Ok(Some(claim)) => claim,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "could not check whether the organisers were told Meetup refused Tavern's authorisation");
            return;
        }
    };
    let at = claim.at;
    tracing::warn!(refused_at = %at.to_rfc3339(), "Meetup refused Tavern's authorisation; telling the organisers");
    let told = match alerts.settings.alerts_channel {
        None => true,
        Some(channel) => {
            let text = refusal_alert(at, &alerts.organiser_page);
            match alerts.discord.send(channel, &Reply::text(&text)).await {
                Ok(_) => true,
                Err(error) => {
                    tracing::warn!(%channel, %error, "could not tell the organisers that Meetup refused Tavern's authorisation; trying again at the next run");
                    false
                }
            }
        }
    };
    if let Err(error) = repo.finish_refusal_alert(claim, told).await {
        tracing::warn!(%error, "could not record that the organisers were told Meetup refused Tavern's authorisation");
    }
}

/// The refresh as a [`Job`]: every [`CHECK_EVERY`], and right after start-up (a token
/// whose time came while Tavern was down is refreshed at once). The clock decides
/// what "now" is, so tests move time with a `ManualClock`.
///
/// A refresh Meetup refuses is recorded ([`refresh_if_due`]) and, with `alerts`, the
/// organisers are told once ([`alert_refusal`]).
pub fn token_refresh(
    repo: Repo,
    client: MeetupClient,
    client_id: ClientId,
    client_secret: ClientSecret,
    clock: Arc<dyn Clock>,
    alerts: Option<RefusalAlerts>,
) -> Job {
    let shared = Arc::new((repo, client, client_id, client_secret, clock, alerts));
    Job::every(REFRESH_JOB, CHECK_EVERY, move || {
        let shared = Arc::clone(&shared);
        async move {
            let (repo, client, id, secret, clock, alerts) = &*shared;
            let outcome = refresh_if_due(repo, client, id, secret, clock.now()).await;
            let refused = match &outcome {
                Err(RefreshError::Meetup { error, .. }) => error.is_refused_grant(),
                Ok(RefreshOutcome::Refused(_)) => true,
                _ => false,
            };
            if let (true, Some(alerts)) = (refused, alerts) {
                alert_refusal(repo, alerts).await;
            }
            outcome.map(|_| ())
        }
    })
    .at_startup()
}
