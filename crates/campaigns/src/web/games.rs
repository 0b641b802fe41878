//! `GET /campaigns` (signed-in users): the community's games as the sync knows them, for
//! players as much as for organisers.
//!
//! Each tracked series is a card: the name of its next session (else of its last one,
//! linking to that event on Meetup), whether it is a campaign or a one-shot and whether
//! it plays online, when the next session is (UTC) and how many said yes to it. A
//! visitor whose Discord account is linked to Meetup sees which games they host or play
//! in, and a host gets the link to schedule the next session; a visitor not linked is
//! told how to link. Games with a session to come are first, soonest first; the others
//! follow, the most recent first. The page reads Redis only (the Discord step's view,
//! [`crate::Repo::discord_view`]): it makes no Meetup or Discord call. A series the view could
//! not read is left out, as the sync leaves it (`tavern check` names its key).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use web::page::Page;

use super::{ORGANISER_PATH, WebState, storage_problem};
use crate::domain::{MeetupUserId, SeriesType};
use crate::repo::{DiscordView, EventState, SeriesState};

/// The page's path.
pub const CAMPAIGNS_PATH: &str = "/campaigns";

/// The visitor's part in a game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Host,
    Player,
}

/// One game as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Game<'a> {
    pub series: &'a SeriesState,
    /// The first session at or after now.
    pub next: Option<&'a EventState>,
    /// The latest session before now.
    pub last: Option<&'a EventState>,
    pub part: Option<Part>,
}

impl Game<'_> {
    /// The session the card is named after: the next, else the last.
    pub fn shown(&self) -> Option<&EventState> {
        self.next.or(self.last)
    }
}

/// The games of `view` at `now`, in the page's order, with `me`'s part in each.
pub fn games<'a>(
    view: &'a DiscordView,
    now: DateTime<Utc>,
    me: Option<MeetupUserId>,
) -> Vec<Game<'a>> {
    let mut games: Vec<Game<'a>> = view
        .series
        .iter()
        .filter(|s| !s.events.is_empty())
        .map(|series| {
            // Events are oldest first.
            let next = series.events.iter().find(|e| e.time >= now);
            let last = series.events.iter().rev().find(|e| e.time < now);
            let part = me.and_then(|me| {
                let events = || next.into_iter().chain(last);
                if events().any(|e| e.hosts.contains(&me)) {
                    Some(Part::Host)
                } else if events().any(|e| e.users.contains(&me)) {
                    Some(Part::Player)
                } else {
                    None
                }
            });
            Game {
                series,
                next,
                last,
                part,
            }
        })
        .collect();
    // Every game has a session (series without one were left out): the next, else the
    // last. Ties (the same time) go by series id, so the order is stable.
    games.sort_by_key(|g| {
        let series: &'a SeriesState = g.series;
        match (g.next, g.last) {
            (Some(next), _) => (false, next.time.timestamp(), &series.id),
            (None, last) => (
                true,
                last.map_or(0, |l| l.time.timestamp().saturating_neg()),
                &series.id,
            ),
        }
    });
    games
}

/// `GET /campaigns`.
pub(crate) async fn page(State(state): State<WebState>, page: Page) -> Response {
    let view = match state.repo.discord_view().await {
        Ok(view) => view,
        Err(e) => return page.problem(storage_problem(&e)),
    };
    let me = match page.user() {
        Some(user) => match state.repo.meetup_user_of(user.id).await {
            Ok(me) => Linked::Known(me),
            Err(error) => {
                tracing::warn!(%error, "could not read a visitor's Meetup link");
                Linked::Unread
            }
        },
        None => Linked::Unread,
    };
    let games = games(&view, state.clock.now(), me.user());
    page.render("Campaigns", body(&games, &me)).into_response()
}

/// What is known of the visitor's Meetup link.
enum Linked {
    Known(Option<MeetupUserId>),
    Unread,
}

impl Linked {
    fn user(&self) -> Option<MeetupUserId> {
        match self {
            Linked::Known(me) => *me,
            Linked::Unread => None,
        }
    }
}

fn when(time: DateTime<Utc>) -> String {
    time.format("%A %-d %B %Y, %H:%M UTC").to_string()
}

fn kind(series: &SeriesState) -> &'static str {
    match series.series_type {
        Some(SeriesType::Adventure) => "One-shot",
        Some(SeriesType::Campaign) | None => "Campaign",
    }
}

fn card(game: &Game<'_>) -> Markup {
    let series = game.series;
    let schedule = match (game.part, series.channel) {
        (Some(Part::Host), Some(channel)) => Some(format!("/campaigns/schedule/{channel}")),
        _ => None,
    };
    html! {
        li.game data-series=(series.id.to_string()) {
            @if let Some(shown) = game.shown() {
                h2 { a href=(shown.link) { (shown.name) } }
            }
            p.tags {
                span.badge { (kind(series)) }
                @if series.is_online { " " span.badge { "Online" } }
                @match game.part {
                    Some(Part::Host) => { " " span.badge.ok data-part="host" { "You host" } }
                    Some(Part::Player) => { " " span.badge.ok data-part="player" { "You play" } }
                    None => {}
                }
            }
            @if let Some(next) = game.next {
                p.when {
                    "Next session: " strong { (when(next.time)) }
                    " · " (next.users.len()) @if next.users.len() == 1 { " player" } @else { " players" }
                }
            } @else if let Some(last) = game.last {
                p.when.muted { "No session scheduled; the last was on " (when(last.time)) "." }
            }
            @if let Some(schedule) = schedule {
                p { a href=(schedule) { "Schedule the next session" } }
            }
        }
    }
}

fn body(games: &[Game<'_>], me: &Linked) -> Markup {
    html! {
        section.campaigns {
            h1 { "Campaigns" }
            p.lead {
                "The community's games, as Meetup lists them. Each has its channel on "
                "Discord: say yes on Meetup to take a seat, and the next sync gives you "
                "the game's role."
            }
            @match me {
                Linked::Known(Some(_)) => {
                    p.muted { "Your Discord account is linked to Meetup: your games are marked." }
                }
                Linked::Known(None) => {
                    p.notice {
                        "Your Discord account is not linked to Meetup yet. Type "
                        code { "/link-meetup" } " in the server and open the link it "
                        "answers: then the games you join here get you their roles."
                    }
                }
                Linked::Unread => {}
            }
            @if games.is_empty() {
                p.muted { "No games yet: they appear after the next Meetup sync." }
            } @else {
                ul.game-list {
                    @for game in games { (card(game)) }
                }
            }
            p.muted {
                "Organisers: "
                a href=(ORGANISER_PATH) { "authorise Tavern on Meetup" }
                "."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;

    use chrono::TimeDelta;

    use super::*;
    use crate::domain::{EventSeriesId, MeetupEventId};

    fn event(id: &str, at: DateTime<Utc>, hosts: &[&str], users: &[&str]) -> EventState {
        let set = |ids: &[&str]| -> BTreeSet<MeetupUserId> {
            ids.iter()
                .map(|i| MeetupUserId::parse(i).unwrap())
                .collect()
        };
        EventState {
            id: MeetupEventId::parse(id).unwrap(),
            name: format!("event {id}"),
            time: at,
            link: format!("https://www.meetup.com/g/events/{id}/"),
            users: set(users),
            hosts: set(hosts),
        }
    }

    fn series(id: &str, events: Vec<EventState>) -> SeriesState {
        SeriesState::bare(
            EventSeriesId::started_by(&MeetupEventId::parse(id).unwrap()),
            events,
        )
    }

    #[test]
    fn games_to_come_are_first_soonest_first_then_the_most_recent_past_ones() {
        let now = testkit::epoch();
        let day = TimeDelta::days(1);
        let view = DiscordView {
            series: vec![
                series("1", vec![event("11", now - day * 9, &[], &[])]),
                series(
                    "2",
                    vec![
                        event("21", now - day, &[], &[]),
                        event("22", now + day * 5, &[], &[]),
                    ],
                ),
                series("3", vec![event("31", now - day * 2, &[], &[])]),
                series("4", vec![event("41", now + day, &[], &[])]),
                series("5", vec![]),
            ],
            ..DiscordView::default()
        };
        let order: Vec<String> = games(&view, now, None)
            .iter()
            .map(|g| g.shown().unwrap().id.to_string())
            .collect();
        assert_eq!(order, ["41", "22", "31", "11"]);
        let second = &games(&view, now, None)[1];
        assert_eq!(second.last.unwrap().id.to_string(), "21");
    }

    #[test]
    fn the_visitor_hosts_or_plays_in_the_next_or_the_last_session() {
        let now = testkit::epoch();
        let day = TimeDelta::days(1);
        let view = DiscordView {
            series: vec![
                series("1", vec![event("11", now + day, &["7"], &["8"])]),
                series("2", vec![event("21", now - day, &["9"], &["7"])]),
                series("3", vec![event("31", now + day * 2, &["9"], &["8"])]),
            ],
            ..DiscordView::default()
        };
        let me = MeetupUserId::parse("7").ok();
        let parts: Vec<Option<Part>> = games(&view, now, me).iter().map(|g| g.part).collect();
        assert_eq!(parts, [Some(Part::Host), None, Some(Part::Player)]);
        let nobody: Vec<Option<Part>> = games(&view, now, None).iter().map(|g| g.part).collect();
        assert_eq!(nobody, [None, None, None]);
    }
}
