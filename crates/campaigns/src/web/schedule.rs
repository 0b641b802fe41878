//! The schedule-next-session form of a game channel (`/campaigns/schedule/{channel}`).
//!
//! Only a host of the channel's series or an admin gets it, by the same rule as the
//! host commands ([`crate::standing`]: the host role, or a linked Meetup host not
//! removed with `/hosts remove`; the admin role). Anyone else gets a 403 page saying
//! so; a channel that is not a game channel is a 404.
//!
//! The form shows the next session's title and asks for its date and time, in the
//! time zone of the series' latest event (as Meetup gives it). Sending it, with the
//! session's CSRF token, clones that latest event on Meetup with the organiser's token:
//! the title becomes "Session N+1", N the highest session number among the series'
//! sessions whatever their dates ([`next_session_title`]), the description carries
//! the series shortcode `[campaign <series>]` instead of the one it had
//! ([`next_session_description`]), and hosts, duration, RSVP limit and online-ness are
//! copied. Then the channel's snooze is cleared and the new session is announced in
//! the channel. The sync picks the event up like any other. The new session must
//! start after the latest one (the one it copies): numbered after it, it cannot come
//! before it, so an earlier date is refused with the latest session's date.
//!
//! A session the form created counts at once: it is kept among the series' created
//! sessions (`schema::created_sessions`, a day) until the sync stores it, so the form
//! shown right after offers the session after it, and sending it copies the newest
//! session, the one just made (one Meetup no longer has is left out).
//!
//! One session is created once: a start time at which the series already has a
//! tracked event is refused (409), and the first sending of the form claims the
//! session (Tavern's own key `schema::scheduled_session`, for a day) before asking
//! Meetup, so sending it again (a double click, a reload) creates nothing and shows
//! the first one's link. A creation Meetup refused gives the claim back; one whose
//! outcome is unknown (a timeout, a lost connection, a 5xx: Meetup may have created
//! it) keeps it for an hour ([`UNKNOWN_KEPT_SECONDS`]) and tells the host to check
//! Meetup before trying again.
//!
//! Meetup is asked with the organiser's token; a token Meetup refuses (expired) is
//! refreshed once and the request made again, as the sync does, so the host is sent
//! to an organiser only when Meetup refuses the authorisation itself.
//!
//! The date and time are read in the Meetup group's time zone (`Group.timezone`, an IANA
//! name), so a session across a daylight-saving change from the latest one keeps its
//! local time; a time the clocks skip that day is refused, and one they pass twice is
//! the first of the two. A group without a time zone Tavern knows is read in the fixed
//! UTC offset of the latest session's start. The form names the zone it reads in.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset as _,
    TimeDelta, TimeZone as _, Utc,
};
use discord::model::{ChannelId, UserId};
use feature::access::Caller;
use maud::html;
use meetup::{EventDraft, EventId, EventType, MeetupError};
use web::page::{Page, Problem, quoted};

use super::{WebState, meetup_problem, storage_problem};
use crate::domain::{EventSeriesId, MeetupEventId};
use crate::repo::{MeetupEvent, ScheduleClaim, UNKNOWN_KEPT_SECONDS};
use crate::standing;

/// What the form is about: the channel, its series and the event to clone.
struct Target {
    channel: ChannelId,
    series: EventSeriesId,
    latest: meetup::Event,
    /// The next session's number: one more than the highest "Session N" among the
    /// series' tracked events and the sessions the form created that the sync has not
    /// stored yet, whatever their dates; without any, one more than how many they are.
    number: u64,
    /// The start times of the series' tracked events.
    starts: Vec<DateTime<Utc>>,
    /// The start times of the sessions the form created that the sync has not stored
    /// yet (and Meetup still has).
    created: Vec<DateTime<Utc>>,
    /// When the latest session (the one copied) starts, as Tavern knows it: the next
    /// session must come after it.
    latest_start: DateTime<Utc>,
}

/// Where a title's last "Session N" is: the end of "Session" plus its spaces, the end
/// of the number, and the number.
fn session_part(title: &str) -> Option<(usize, usize, u64)> {
    let at = title.to_ascii_lowercase().rfind("session")? + "session".len();
    let after = &title[at..];
    let spaces = after.len() - after.trim_start().len();
    let digits: String = after
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let n = digits.parse::<u64>().ok()?;
    Some((at + spaces, at + spaces + digits.len(), n))
}

/// The session number in a title ("Curse of Strahd - Session 3": 3), if it has one.
pub fn session_number(title: &str) -> Option<u64> {
    session_part(title).map(|(_, _, n)| n)
}

/// The next session's title, numbered `number`: "Session N" in the latest title
/// becomes "Session {number}"; a title without a session number gets
/// " - Session {number}". At most 80 characters (Meetup's limit), cut before the
/// session part if need be.
pub fn next_session_title(latest: &str, number: u64) -> String {
    if let Some((start, end, _)) = session_part(latest) {
        let title = format!("{}{number}{}", &latest[..start], &latest[end..]);
        return cut(&title, 80);
    }
    let suffix = format!(" - Session {number}");
    let keep = 80usize.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", cut(latest.trim_end(), keep))
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The next session's description: the latest one without its series shortcode
/// (`[new adventure]`, `[new campaign]`, `[campaign <id>]`) and without `[channel <id>]`
/// (which only a new series may carry), starting with `[campaign <series>]`, so the
/// sync files it under the same series. Other text and shortcodes (`[online]`,
/// `[role <id>]`) stay.
pub fn next_session_description(latest: &str, series: &EventSeriesId) -> String {
    let mut kept = String::with_capacity(latest.len());
    let mut rest = latest;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        kept.push_str(&rest[..open]);
        if !is_series_or_channel(inner) {
            kept.push_str(&rest[open..=open + close]);
        }
        rest = &rest[open + close + 1..];
    }
    kept.push_str(rest);
    let kept = kept.trim();
    if kept.is_empty() {
        format!("[campaign {series}]")
    } else {
        format!("[campaign {series}] {kept}")
    }
}

fn is_series_or_channel(inner: &str) -> bool {
    let words: Vec<&str> = inner.split_whitespace().collect();
    let compact = words.concat().to_ascii_lowercase();
    if compact == "newadventure" || compact == "newcampaign" {
        return true;
    }
    matches!(
        words.as_slice(),
        [keyword, _] if keyword.eq_ignore_ascii_case("campaign") || keyword.eq_ignore_ascii_case("channel")
    )
}

/// Whether `user` may schedule for `channel`'s series: a host or an admin
/// ([`crate::standing`]). Without the Discord settings nobody holds a role, so only
/// the Meetup hosts may.
async fn allowed(
    state: &WebState,
    user: UserId,
    channel: ChannelId,
    series: &EventSeriesId,
) -> Result<bool, Problem> {
    let (roles, admin_role) = match state.config.discord.as_ref() {
        Some(settings) => match standing::roles_of(&state.discord, settings, user).await {
            Ok(roles) => (roles, settings.admin_role),
            Err(error) => {
                tracing::warn!(%error, %series, "could not ask Discord for a member's roles");
                return Err(Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "Discord did not answer",
                    "Tavern could not ask Discord whether you host this game; try again in a \
                     moment.",
                ));
            }
        },
        None => (Vec::new(), None),
    };
    let standing = standing::standing(&state.repo, admin_role, channel, series, user, &roles)
        .await
        .map_err(|e| storage_problem(&e))?;
    Ok(standing.runs_the_game())
}

fn forbidden() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "Not a host of this game",
        "Only a host of this game's series (with a Meetup account linked through \
         /link-meetup) or an admin may schedule its next session.",
    )
}

/// The channel, its series, the permission check and the latest event, from Meetup.
async fn target(state: &WebState, caller: &Caller, raw: &str) -> Result<Target, Problem> {
    let not_game = || {
        Problem::not_found(format!(
            "`{}` is not a game channel Tavern manages: open this form from the link in \
             the game's channel.",
            quoted(raw)
        ))
    };
    let channel: ChannelId = discord::model::parse_id("channel id", raw).map_err(|_| not_game())?;
    let Some(user) = caller.user().map(|u| u.id) else {
        return Err(forbidden());
    };
    let series = state
        .repo
        .channel_series(channel)
        .await
        .map_err(|e| storage_problem(&e))?
        .ok_or_else(not_game)?;
    let events = state
        .repo
        .series_events(&series)
        .await
        .map_err(|e| storage_problem(&e))?;
    if !allowed(state, user, channel, &series).await? {
        tracing::info!(%channel, %user, "schedule form refused: not a host or admin");
        return Err(forbidden());
    }
    let mut tracked: Vec<MeetupEvent> = Vec::with_capacity(events.len());
    for id in &events {
        if let Some(event) = state
            .repo
            .event(id)
            .await
            .map_err(|e| storage_problem(&e))?
        {
            tracked.push(event);
        }
    }
    let starts = tracked.iter().map(|e| e.time).collect();
    // A session this form created counts at once, before the sync stores it: the next
    // one is numbered after it and copies it when it is the newest. Its title is read
    // from Meetup; one deleted there before the sync saw it does not count.
    let created = state
        .repo
        .created_sessions(&series)
        .await
        .map_err(|e| storage_problem(&e))?;
    let mut pending: Vec<(DateTime<Utc>, meetup::Event)> = Vec::new();
    for (id, start) in created {
        if events.contains(&id) {
            continue;
        }
        if let Some(event) = meetup_event(state, id.as_str()).await? {
            pending.push((start, event));
        }
    }
    let count = u64::try_from(events.len() + pending.len()).unwrap_or(u64::MAX);
    let number = tracked
        .iter()
        .map(|e| e.name.as_str())
        .chain(pending.iter().map(|(_, e)| e.title.as_str()))
        .filter_map(session_number)
        .max()
        .unwrap_or(count)
        .saturating_add(1);
    let created: Vec<DateTime<Utc>> = pending.iter().map(|(start, _)| *start).collect();
    let newest_tracked = tracked.iter().max_by_key(|e| e.time);
    let newest_pending = pending
        .into_iter()
        .max_by_key(|(start, _)| *start)
        .filter(|(start, _)| newest_tracked.is_none_or(|e| *start > e.time));
    let (event, latest_start) = if let Some((start, event)) = newest_pending {
        (event, start)
    } else {
        let Some(latest) = newest_tracked else {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "No session to copy",
                "This game has no session on Meetup any more, so there is nothing to copy. \
                 Create the next one on Meetup with the series shortcode instead.",
            ));
        };
        match meetup_event(state, latest.id.as_str()).await? {
            Some(event) => (event, latest.time),
            None => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "The latest session is gone",
                    format!(
                        "Meetup no longer has the latest session ({}), so there is nothing \
                         to copy.",
                        latest.name
                    ),
                ));
            }
        }
    };
    Ok(Target {
        channel,
        series,
        latest: event,
        number,
        starts,
        created,
        latest_start,
    })
}

/// A Meetup event as Meetup has it now, read with the organiser's token (`None`: Meetup
/// no longer has it).
async fn meetup_event(state: &WebState, raw: &str) -> Result<Option<meetup::Event>, Problem> {
    let id = EventId::parse(raw).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            format!("The stored event id cannot be sent to Meetup: {e}"),
        )
    })?;
    let event = organiser_call(state, |token| {
        let id = &id;
        async move { state.meetup.event(&token, id).await }
    })
    .await?;
    event.map_err(|e| organiser_problem("Reading the latest session", &e))
}

/// Makes `call` to Meetup with the organiser's access token. A token Meetup refuses is
/// refreshed once, as the sync does ([`crate::sync`]'s "Token": stored only if still
/// current, a refused refresh recorded for the organiser page), and the call made
/// again with the new one. `Err` is a problem with the token itself (none stored, the
/// refresh failed); `Ok` holds Meetup's answer to the call.
async fn organiser_call<T, F, Fut>(
    state: &WebState,
    mut call: F,
) -> Result<Result<T, MeetupError>, Problem>
where
    F: FnMut(meetup::AccessToken) -> Fut,
    Fut: std::future::Future<Output = Result<T, MeetupError>>,
{
    let stored = organiser_tokens(state).await?;
    match call(stored.tokens.access.clone()).await {
        Err(error) if error.is_unauthorized() => {
            tracing::info!(%error, "Meetup refused the organiser token; refreshing it");
        }
        answer => return Ok(authorisation_worked(state, answer).await),
    }
    let now = state.clock.now();
    let access = crate::sync::refresh(
        &state.repo,
        &state.meetup,
        &state.config,
        &stored.tokens,
        now,
    )
    .await
    .map_err(|e| refresh_problem(&e))?;
    let answer = call(access.clone()).await;
    if matches!(&answer, Err(e) if e.is_unauthorized())
        && let Err(error) = crate::sync::note_refused_again(&state.repo, &access, now).await
    {
        tracing::warn!(%error, "could not record that Meetup refused the organiser's authorisation");
    }
    Ok(authorisation_worked(state, answer).await)
}

/// Forgets a recorded refusal when Meetup answered `answer` with the organiser's token.
async fn authorisation_worked<T>(
    state: &WebState,
    answer: Result<T, MeetupError>,
) -> Result<T, MeetupError> {
    if answer.is_ok()
        && let Err(error) = state.repo.authorisation_works().await
    {
        tracing::warn!(%error, "could not clear Meetup's recorded refusal of the organiser's authorisation");
    }
    answer
}

/// A refresh of the organiser token that failed, in words.
fn refresh_problem(error: &crate::sync::SyncError) -> Problem {
    use crate::sync::SyncError;
    match error {
        SyncError::Repo(e) => storage_problem(e),
        SyncError::Refresh(e) => meetup_problem("Refreshing the organiser's Meetup token", e),
        SyncError::RefreshBusy => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The organiser's token is being renewed",
            "Tavern is renewing the organiser's Meetup token and it is taking longer than \
             usual. Nothing was created; try again in a minute.",
        ),
        SyncError::ClientRejected(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Tavern's Meetup settings are wrong",
            "Meetup refused Tavern's own client id or secret while renewing the \
             organiser's token. An admin should check the meetup_client_id and \
             meetup_client_secret settings; authorising again would not help.",
        ),
        _ => Problem::new(
            StatusCode::BAD_GATEWAY,
            "Meetup refused the organiser's token",
            "Meetup no longer accepts the organiser's authorisation, and refused to renew \
             it. An organiser should authorise Tavern again.",
        )
        .link("Organiser page", super::ORGANISER_PATH),
    }
}

async fn organiser_tokens(state: &WebState) -> Result<crate::repo::OrganizerTokens, Problem> {
    match state.repo.organizer_tokens().await {
        Ok(Some(tokens)) => Ok(tokens),
        Ok(None) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Meetup is not connected",
            "No organiser has authorised Tavern on Meetup yet, so it cannot create events. \
             An organiser can do so on the organiser page.",
        )
        .link("Organiser page", super::ORGANISER_PATH)),
        Err(e) => Err(storage_problem(&e)),
    }
}

fn organiser_problem(what: &str, error: &MeetupError) -> Problem {
    if error.is_unauthorized() {
        return Problem::new(
            StatusCode::BAD_GATEWAY,
            "Meetup refused the organiser's token",
            format!(
                "{what} failed: Meetup no longer accepts the organiser's authorisation. An \
                 organiser should authorise Tavern again."
            ),
        )
        .link("Organiser page", super::ORGANISER_PATH);
    }
    meetup_problem(what, error)
}

/// The time zone the form reads a date and time in (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    /// The Meetup group's.
    Named(chrono_tz::Tz),
    /// The latest session's start's offset (UTC when Meetup gave no start).
    Fixed(FixedOffset),
}

impl Zone {
    /// The zone of `event`'s group, else the offset of its start.
    fn of(event: &meetup::Event) -> Zone {
        if let Some(name) = event.group_timezone.as_deref() {
            match name.parse::<chrono_tz::Tz>() {
                Ok(tz) => return Zone::Named(tz),
                Err(_) => tracing::warn!(
                    timezone = %quoted(name),
                    "Meetup names a time zone Tavern does not know; the schedule form reads the latest session's offset"
                ),
            }
        }
        Zone::Fixed(
            event
                .starts_at
                .map(|t| *t.offset())
                .unwrap_or_else(|| Utc.fix()),
        )
    }

    /// How the form names it: `Europe/Zurich`, or `UTC+01:00`.
    fn label(self) -> String {
        match self {
            Zone::Named(tz) => tz.name().to_owned(),
            Zone::Fixed(offset) => format!("UTC{offset}"),
        }
    }

    /// `at` as a clock in this zone shows it, with that day's offset.
    fn at(self, at: DateTime<Utc>) -> DateTime<FixedOffset> {
        match self {
            Zone::Named(tz) => at.with_timezone(&tz).fixed_offset(),
            Zone::Fixed(offset) => at.with_timezone(&offset),
        }
    }

    /// The instants a clock in this zone shows `local` at: none when the clocks skip
    /// it, two when they pass it twice.
    fn local(self, local: NaiveDateTime) -> LocalResult<DateTime<FixedOffset>> {
        match self {
            Zone::Named(tz) => tz.from_local_datetime(&local).map(|t| t.fixed_offset()),
            Zone::Fixed(offset) => offset.from_local_datetime(&local),
        }
    }
}

/// `GET /campaigns/schedule/{channel}`.
pub(crate) async fn form(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    caller: Caller,
    page: Page,
) -> Response {
    let target = match target(&state, &caller, &raw).await {
        Ok(target) => target,
        Err(problem) => return page.problem(problem),
    };
    let title = next_session_title(&target.latest.title, target.number);
    let zone = Zone::of(&target.latest);
    // A week after the latest session at the same time of day on the zone's clock.
    let suggested = target.latest.starts_at.map_or_else(
        || zone.at(state.clock.now()).naive_local(),
        |t| zone.at(t.to_utc()).naive_local(),
    ) + TimeDelta::days(7);
    let action = format!("/campaigns/schedule/{}", target.channel);
    let csrf = page.csrf_field();
    page.render(
        "Schedule the next session",
        html! {
            section.content {
                h1 { "Schedule the next session" }
                p {
                    "This creates " strong { (title) } " on Meetup, a copy of "
                    em { (target.latest.title) } " with the same hosts, description and "
                    "seats, announces it in the game's channel and stops the channel's "
                    "expiry reminders."
                }
                form method="post" action=(action) {
                    (csrf)
                    p {
                        label for="date" { "Date" } br;
                        input #date type="date" name="date" required
                            value=(suggested.format("%Y-%m-%d").to_string());
                    }
                    p {
                        label for="time" { "Time (" (zone.label()) ")" } br;
                        input #time type="time" name="time" required
                            value=(suggested.format("%H:%M").to_string());
                    }
                    p { button type="submit" { "Create the session on Meetup" } }
                }
            }
        },
    )
    .into_response()
}

/// The form's fields (the CSRF token is checked before the handler runs).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ScheduleForm {
    date: String,
    time: String,
}

/// How far ahead the form schedules a session at most: a later date is a typo (the
/// year), refused before Meetup is asked.
const MAX_DAYS_AHEAD: i64 = 2 * 365;

fn parse_start(form: &ScheduleForm, zone: Zone) -> Result<DateTime<FixedOffset>, Problem> {
    let bad = |sentence: String| Problem::new(StatusCode::BAD_REQUEST, "Check the date", sentence);
    let date = NaiveDate::parse_from_str(form.date.trim(), "%Y-%m-%d").map_err(|_| {
        bad(format!(
            "`{}` is not a date; write it as YYYY-MM-DD.",
            quoted(&form.date)
        ))
    })?;
    let time = NaiveTime::parse_from_str(form.time.trim(), "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(form.time.trim(), "%H:%M:%S"))
        .map_err(|_| {
            bad(format!(
                "`{}` is not a time of day; write it as HH:MM.",
                quoted(&form.time)
            ))
        })?;
    match zone.local(NaiveDateTime::new(date, time)) {
        LocalResult::Single(t) => Ok(t),
        // The first of the two (the earlier instant).
        LocalResult::Ambiguous(first, _) => Ok(first),
        LocalResult::None => Err(bad(format!(
            "{} on {} does not exist in {}: the clocks skip it that day. Pick another time.",
            time.format("%H:%M"),
            date.format("%-d %B %Y"),
            zone.label()
        ))),
    }
}

/// `POST /campaigns/schedule/{channel}`.
pub(crate) async fn submit(
    State(state): State<WebState>,
    Path(raw): Path<String>,
    caller: Caller,
    page: Page,
    Form(form): Form<ScheduleForm>,
) -> Response {
    let target = match target(&state, &caller, &raw).await {
        Ok(target) => target,
        Err(problem) => return page.problem(problem),
    };
    // A date the form cannot take sends its visitor back to the form.
    let back = |problem: Problem| {
        page.problem(problem.link(
            "Back to the form",
            format!("/campaigns/schedule/{}", target.channel),
        ))
    };
    // Read once: a zone Tavern does not know is warned of once a request.
    let zone = Zone::of(&target.latest);
    let starts_at = match parse_start(&form, zone) {
        Ok(t) => t,
        Err(problem) => return back(problem),
    };
    if starts_at <= state.clock.now() {
        return back(Problem::new(
            StatusCode::BAD_REQUEST,
            "Check the date",
            "The next session must start in the future.",
        ));
    }
    if starts_at.to_utc() > state.clock.now() + TimeDelta::days(MAX_DAYS_AHEAD) {
        return back(Problem::new(
            StatusCode::BAD_REQUEST,
            "Check the date",
            format!(
                "The next session must start within {} years; check the year.",
                MAX_DAYS_AHEAD / 365
            ),
        ));
    }
    let Some(group) = target.latest.group.clone() else {
        return page.problem(Problem::new(
            StatusCode::BAD_GATEWAY,
            "Meetup did not answer as expected",
            "Meetup did not say which group the latest session belongs to.",
        ));
    };
    if target.starts.contains(&starts_at.to_utc()) {
        return page.problem(Problem::new(
            StatusCode::CONFLICT,
            "Already on Meetup",
            format!(
                "This game already has a session at {} (UTC{}); pick another date or time.",
                starts_at.format("%A %-d %B %Y, %H:%M"),
                starts_at.offset()
            ),
        ));
    }
    // The same start as a session the form just made goes on to the claim, which
    // answers a second sending with the first one's link.
    let start = starts_at.to_utc();
    if start <= target.latest_start && !target.created.contains(&start) {
        return page.problem(not_after_latest(&target, zone));
    }
    let title = next_session_title(&target.latest.title, target.number);
    let draft = EventDraft {
        group,
        title: title.clone(),
        description: next_session_description(&target.latest.description, &target.series),
        starts_at,
        duration: target.latest.duration,
        hosts: target
            .latest
            .hosts
            .iter()
            .filter_map(|h| h.member.as_ref().map(|m| m.id.clone()))
            .collect(),
        online: target.latest.event_type == EventType::Online,
        max_tickets: target.latest.max_tickets,
    };
    // One Meetup event per session however often the form is sent (a double click, a
    // reload): the first request claims it, the others are shown its link.
    let when = starts_at.format("%A %-d %B %Y, %H:%M").to_string();
    match state
        .repo
        .claim_scheduled_session(&target.series, start)
        .await
    {
        Ok(ScheduleClaim::Claimed) => {}
        Ok(ScheduleClaim::Created(url)) => return already_scheduled(page, &when, Some(&url)),
        Ok(ScheduleClaim::Creating) => return already_scheduled(page, &when, None),
        Ok(ScheduleClaim::Unknown) => return page.problem(unknown_outcome(&when, None)),
        Err(e) => return page.problem(storage_problem(&e)),
    }
    // A refused token was not acted on (401), so the creation is sent again after a
    // refresh; nothing else is retried.
    let created = organiser_call(&state, |token| {
        let (state, draft) = (&state, &draft);
        async move { state.meetup.create_event(&token, draft).await }
    })
    .await;
    let created = match created {
        Ok(Ok(event)) => event,
        Err(problem) => {
            if let Err(r) = state
                .repo
                .release_scheduled_session(&target.series, start)
                .await
            {
                tracing::warn!(error = %r, series = %target.series, "could not give back the claim on a session Meetup did not create");
            }
            return page.problem(problem);
        }
        Ok(Err(e)) if e.may_have_been_processed() => {
            // Meetup may have created it: keep the claim so a second click does not
            // make it twice, and send the host to Meetup to look.
            tracing::warn!(error = %e, series = %target.series, %start, "no clear answer from Meetup to creating a session; holding the session");
            if let Err(r) = state
                .repo
                .scheduled_session_unknown(&target.series, start)
                .await
            {
                tracing::warn!(error = %r, series = %target.series, "could not record that Meetup's answer to a session was unclear");
            }
            return page.problem(unknown_outcome(&when, Some(&e)));
        }
        Ok(Err(e)) => {
            if let Err(r) = state
                .repo
                .release_scheduled_session(&target.series, start)
                .await
            {
                tracing::warn!(error = %r, series = %target.series, "could not give back the claim on a session Meetup did not create");
            }
            return page.problem(organiser_problem("Creating the session on Meetup", &e));
        }
    };
    // Meetup's ids are the seed's event ids; one it sends that is not is not counted.
    let event_id = match MeetupEventId::parse(created.id.as_str()) {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(error = %e, event = %created.id, "Meetup gave the created session an id Tavern cannot store");
            None
        }
    };
    if let Err(e) = state
        .repo
        .scheduled_session_created(&target.series, start, event_id.as_ref(), &created.url)
        .await
    {
        tracing::warn!(error = %e, series = %target.series, "could not record the created session's link");
    }
    tracing::info!(
        channel = %target.channel,
        series = %target.series,
        event = %created.id,
        "scheduled the next session on Meetup"
    );
    let mut notes: Vec<&str> = Vec::new();
    if let Err(e) = state.repo.set_snooze(target.channel, None).await {
        tracing::warn!(error = %e, channel = %target.channel, "could not clear the snooze");
        notes.push("The channel's snooze could not be cleared; an admin can do it with /snooze 0.");
    }
    // The players get a notification: the game's guest role is mentioned, nobody else.
    let guest = match state.repo.channel_roles(target.channel).await {
        Ok((guest, _)) => guest,
        Err(e) => {
            tracing::warn!(error = %e, channel = %target.channel, "could not read the game's player role; announcing the session without pinging it");
            None
        }
    };
    let announcement = crate::lifecycle::players_notified(
        format!(
            "📅 The next session is scheduled: **{title}**, {when} (UTC{offset}). RSVP on Meetup to keep your seat: {url}",
            offset = starts_at.offset(),
            url = created.url
        ),
        guest,
    );
    if let Err(e) = state.discord.send(target.channel, &announcement).await {
        tracing::warn!(error = %e, channel = %target.channel, "could not announce the new session");
        notes.push("The announcement in the channel failed; please tell your players yourself.");
    }
    page.render(
        "Session scheduled",
        html! {
            section.content {
                h1 { "Scheduled" }
                p {
                    strong { (title) } " is on Meetup for " (when) ": "
                    a href=(created.url) { (created.url) }
                }
                p { "It was announced in the game's channel; players see it after the next sync." }
                @for note in &notes { p.muted { (note) } }
            }
        },
    )
    .into_response()
}

/// The refusal of a start at or before the latest session's: the form numbers the
/// session it makes after the latest one, so it must come after it too.
fn not_after_latest(target: &Target, zone: Zone) -> Problem {
    let latest = zone.at(target.latest_start);
    let name = match session_number(&target.latest.title) {
        Some(n) => format!("Session {n}"),
        None => format!("The latest session ({})", target.latest.title),
    };
    Problem::new(
        StatusCode::BAD_REQUEST,
        "Check the date",
        format!(
            "{name} is on {} at {} (UTC{}); the next session must come after it.",
            latest.format("%A %-d %B %Y"),
            latest.format("%H:%M"),
            latest.offset()
        ),
    )
    .link(
        "Back to the form",
        format!("/campaigns/schedule/{}", target.channel),
    )
}

/// The answer when Meetup may or may not have created the session (`error`: this
/// request's own failure; `None`: an earlier request's).
fn unknown_outcome(when: &str, error: Option<&MeetupError>) -> Problem {
    let minutes = UNKNOWN_KEPT_SECONDS / 60;
    let what = match error {
        Some(e) => format!("Meetup gave no clear answer to creating the session for {when} ({e})"),
        None => format!("An earlier try at the session for {when} got no clear answer from Meetup"),
    };
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "Check Meetup before trying again",
        format!(
            "{what}, so it may exist on Meetup already. Look at the group's events on \
             Meetup before trying again: Tavern will not create this session for the next \
             {minutes} minutes, and once the sync has seen a session at that time it \
             refuses to make another."
        ),
    )
}

/// The answer to a form sent again for a session already scheduled (or being
/// scheduled by the first sending): nothing more is created.
fn already_scheduled(page: Page, when: &str, url: Option<&str>) -> Response {
    page.render(
        "Session already scheduled",
        html! {
            section.content {
                h1 { "Scheduled" }
                @match url {
                    Some(url) => p {
                        "This session was already scheduled for " (when) ": "
                        a href=(url) { (url) }
                    },
                    None => p {
                        "This session is already scheduled for " (when)
                        " (it is being created on Meetup right now); nothing more was created."
                    },
                }
            }
        },
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_session_number_is_set_or_added() {
        assert_eq!(
            next_session_title("Curse of Strahd - Session 3", 4),
            "Curse of Strahd - Session 4"
        );
        assert_eq!(
            next_session_title("Session 9: the crypt", 10),
            "Session 10: the crypt"
        );
        assert_eq!(
            next_session_title("The Sunless Citadel", 2),
            "The Sunless Citadel - Session 2"
        );
        assert_eq!(
            next_session_title("A session to remember", 3),
            "A session to remember - Session 3"
        );
        let long = "x".repeat(90);
        let title = next_session_title(&long, 2);
        assert_eq!(title.chars().count(), 80);
        assert!(title.ends_with(" - Session 2"));
        assert_eq!(session_number("Curse of Strahd - Session 12"), Some(12));
        assert_eq!(session_number("Session 9: the crypt"), Some(9));
        assert_eq!(session_number("A session to remember"), None);
    }

    #[test]
    fn the_description_carries_the_series_shortcode() {
        let series = EventSeriesId::parse("12345").unwrap();
        assert_eq!(
            next_session_description("[new campaign] [online] Dark times.", &series),
            "[campaign 12345] [online] Dark times."
        );
        assert_eq!(
            next_session_description("[ New Adventure ][channel 42] x [role 7]", &series),
            "[campaign 12345] x [role 7]"
        );
        assert_eq!(
            next_session_description("[campaign 999] [campaign setting: Eberron]", &series),
            "[campaign 12345] [campaign setting: Eberron]"
        );
        assert_eq!(next_session_description("", &series), "[campaign 12345]");
        let parsed = crate::parse_shortcodes(&next_session_description(
            "[new adventure] [online]",
            &series,
        ))
        .unwrap();
        assert_eq!(
            parsed.series,
            Some(crate::SeriesShortcode::Join(
                MeetupEventId::parse("12345").unwrap()
            ))
        );
        assert!(parsed.online);
    }

    #[test]
    fn the_form_reads_date_and_time_in_the_series_offset() {
        let offset = Zone::Fixed(FixedOffset::east_opt(3600).unwrap());
        let form = ScheduleForm {
            date: "2026-03-01".into(),
            time: "19:30".into(),
        };
        let t = parse_start(&form, offset).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T19:30:00+01:00");
        let bad = ScheduleForm {
            date: "1 March".into(),
            time: "19:30".into(),
        };
        assert!(
            parse_start(&bad, offset)
                .unwrap_err()
                .sentence
                .contains("YYYY-MM-DD")
        );
    }

    fn at(date: &str, time: &str) -> ScheduleForm {
        ScheduleForm {
            date: date.into(),
            time: time.into(),
        }
    }

    #[test]
    fn the_group_s_zone_keeps_the_local_time_across_a_clock_change_and_refuses_a_skipped_one() {
        let zurich = Zone::Named(chrono_tz::Europe::Zurich);
        assert_eq!(zurich.label(), "Europe/Zurich");
        // 19:30 is 19:30 on both sides of the change of 29 March 2026.
        let winter = parse_start(&at("2026-03-26", "19:30"), zurich).unwrap();
        let summer = parse_start(&at("2026-04-02", "19:30"), zurich).unwrap();
        assert_eq!(winter.to_rfc3339(), "2026-03-26T19:30:00+01:00");
        assert_eq!(summer.to_rfc3339(), "2026-04-02T19:30:00+02:00");
        // 02:30 never shows on that day's clocks.
        let skipped = parse_start(&at("2026-03-29", "02:30"), zurich).unwrap_err();
        assert!(
            skipped
                .sentence
                .contains("02:30 on 29 March 2026 does not exist in Europe/Zurich"),
            "{}",
            skipped.sentence
        );
        // 02:30 shows twice on 25 October 2026: the first of the two.
        let twice = parse_start(&at("2026-10-25", "02:30"), zurich).unwrap();
        assert_eq!(twice.to_rfc3339(), "2026-10-25T02:30:00+02:00");
    }

    #[test]
    fn a_group_without_a_known_zone_is_read_in_the_latest_session_s_offset() {
        let mut event = meetup::Event {
            id: EventId::parse("1").unwrap(),
            title: "Session 1".into(),
            description: String::new(),
            url: String::new(),
            starts_at: Some(DateTime::parse_from_rfc3339("2026-01-08T19:00:00+01:00").unwrap()),
            ends_at: None,
            duration: None,
            status: meetup::EventStatus::Active,
            event_type: EventType::Physical,
            max_tickets: None,
            group: None,
            group_timezone: None,
            hosts: Vec::new(),
        };
        let plus_one = Zone::Fixed(FixedOffset::east_opt(3600).unwrap());
        assert_eq!(Zone::of(&event), plus_one);
        assert_eq!(plus_one.label(), "UTC+01:00");
        event.group_timezone = Some("Mars/Olympus_Mons".into());
        assert_eq!(Zone::of(&event), plus_one);
        event.group_timezone = Some("America/New_York".into());
        assert_eq!(Zone::of(&event), Zone::Named(chrono_tz::America::New_York));
    }
}
