//! The Meetup sync, step 1 of the behaviour doc ("Meetup → Redis"): each configured
//! group's upcoming events become tracked events and series in Redis, with their hosts
//! and, for each series' next event, the players who RSVP'd yes. Step 2 (Redis →
//! Discord: channels, roles, announcements, [`crate::discord_sync`]) reads what this
//! step stores.
//!
//! # One run ([`sync_once`])
//! 1. Read the organiser's token ([`Repo::organizer_tokens`]). None stored:
//!    the run ends with [`SyncError::NoOrganizerToken`] ("no organiser token: an
//!    organiser must authorise Tavern"), logged once, nothing written.
//! 2. **Gather** (reads only): for each group, every `ACTIVE` event starting in the
//!    window `[now, now + horizon)` ([`MeetupClient::group_events`], all pages); what
//!    Redis tracks ([`Repo::sync_view`]); the [`plan`]; then the YES RSVPs of
//!    each series' next event ([`MeetupClient::event_rsvps`]).
//! 3. **Apply**: each planned event is one [`Repo::upsert_event`] transaction
//!    (hash, hosts, RSVPs, both directions of the series relation, `meetup_events`,
//!    `event_series`, the series' type and online flag), then each planned deletion is
//!    one [`Repo::delete_event`] transaction. Upserts come first, so a series
//!    never looks empty halfway through a run. Last, the deletions held back for the
//!    next run are recorded ([`Repo::set_pending_deletions`]; "Mass deletions" below),
//!    and so are the RSVP removals held back ([`Repo::set_pending_rsvp_removals`];
//!    "Short RSVP lists" below).
//!    The names Meetup gave the hosts and players listed are kept too (Tavern's own
//!    `schema::meetup_name`, for `/players list`).
//! 4. One `info` line with the counts ([`SyncReport`]).
//!
//! # Choices
//! - **Series ids** are the id of the event that started the series
//!   ([`EventSeriesId::started_by`]): deterministic, nothing to store to map them.
//! - **`[campaign <eventId>]`** joins the series of that event, looked up in this
//!   order: the event in this very answer (following chains `[campaign B]` →
//!   `[campaign A]` → `[new campaign]`, refusing cycles); the event's stored series
//!   (an earlier session, now in the past, is still tracked as history); a tracked
//!   series named by that id (the first session was cancelled, the series lives on).
//!   Otherwise the event is skipped with a warning naming it and the id it names.
//! - **Skipped, never fatal**: a malformed shortcode, an unknown `[campaign]` target,
//!   a missing start time or an event now claiming another series than the one stored
//!   (the repository refuses moving an event) skips that event with a `warn` naming it. A
//!   skipped event keeps whatever Redis has for it: an organiser fixing a typo must not
//!   cost the players their channel.
//! - **Which events a sync deletes**: exactly the tracked events whose stored group is
//!   one of the groups Meetup answered for in this run, whose stored time lies in this
//!   run's window `[now, now + horizon)`, and that Meetup's answer no longer holds as a
//!   tracked event (cancelled, deleted, moved out of the window, or its series
//!   shortcode was removed). Events in the past stay (history, until the lifecycle
//!   removes their series); events beyond the horizon stay (Meetup was not asked about
//!   them); events of a group whose request failed stay (an error is not an answer);
//!   skipped events stay (see above). A deletion removes the event's hash, hosts,
//!   RSVPs and series relation; its series goes too only when it was the last event
//!   and the series has no channel (the repository's rule).
//! - **Mass deletions**: a run that would delete more than half of the tracked events
//!   it asked Meetup about (stored in a group Meetup answered for, with a time in the
//!   window) deletes only those the previous run already found gone, logs a warning
//!   with the counts and the ids, and records the rest ([`SyncReport::held`], Tavern's
//!   own key `schema::PENDING_DELETIONS`); the next run deletes those it still finds
//!   gone and forgets the ones Meetup lists again. A Meetup answer that suddenly
//!   lacks most events (an outage, a permissions change, a bug on either side) thus
//!   costs nothing unless it is confirmed 15 minutes later, and a real mass
//!   cancellation only waits one run. Counting against the events asked about, not
//!   against every tracked event, keeps past sessions (history) from diluting the
//!   count. Up to half go at once.
//! - **Series type**: the type the starting event declares (`[new adventure]` /
//!   `[new campaign]`) when it is in this answer, else the stored type, then
//!   [`SeriesType::after_sync`] over the series' events after this run (stored history
//!   included): more than one event makes a campaign.
//! - **Online**: `[online]` marks the series online (never unmarked by a sync, the
//!   repository's rule). The event hash's `is_online` is `"true"` when the description says
//!   `[online]` or Meetup's `eventType` is `ONLINE` or `HYBRID` (the old `isOnline`
//!   field is gone), `"false"` for `PHYSICAL`, absent for a type Meetup added since.
//! - **The next event** of a series is its earliest event in this answer; only its YES
//!   RSVPs are fetched (that is who gets into the channel next). Other events' stored
//!   RSVP sets are left as they are. A failed RSVP request leaves the stored set too.
//!   A session that has started is no longer in the answer, so during a session the
//!   next one's RSVPs are fetched; the running session's stored RSVPs stay, and step 2
//!   counts them until the session is over ([`crate::domain::SESSION_GRACE`]).
//! - **Short RSVP lists**: an RSVP list with fewer entries than Meetup's `totalCount`
//!   for it (paging that stopped early, a private group hiding members from the
//!   organiser, a count that includes entries Meetup never lists) still names
//!   players who said yes: they are added to the stored set, nobody is removed from
//!   it (removals held back stay held), the event is listed in
//!   [`SyncReport::incomplete_rsvps`] with a warning, and its free seats are left
//!   unknown. A
//!   complete list that drops more than half of an event's stored YES RSVPs removes
//!   only those the previous run already found gone; the others are kept, logged
//!   with a warning and recorded ([`SyncReport::held_rsvps`], Tavern's own key
//!   `schema::PENDING_RSVP_REMOVALS`), and the next run removes those it still does
//!   not find. Players thus keep the game's guest role through one odd answer, and
//!   are not welcomed again when the next good answer lists them. Up to half go at
//!   once (one of two, not one of one).
//! - **Hosts and RSVPs** are Meetup member ids; a host Meetup hides (no member) or an
//!   id that is not a positive integer is left out with a `warn`.
//! - **Token**: a [`MeetupError::Unauthorized`] anywhere in the gather refreshes the
//!   token once with the stored refresh token, stores the new pair atomically (only if
//!   nobody replaced it meanwhile: [`Repo::replace_organizer_tokens`]), with
//!   the next refresh [`TOKEN_REFRESH_INTERVAL`] later (or shortly before the new
//!   access token expires, if sooner: [`next_token_refresh`]), and gathers again. Refused
//!   again: [`SyncError::StillUnauthorized`]. A refused refresh grant is
//!   [`SyncError::RefreshRefused`] (`invalid_grant`: an organiser must authorise
//!   again), Tavern's own client refused (`invalid_client`) is
//!   [`SyncError::ClientRejected`] (an error naming the settings to check, nothing
//!   recorded or alerted), a refresh that could not be made (network, 5xx, 429, another
//!   OAuth error) is [`SyncError::Refresh`] (the next run retries); in each case,
//!   if another party stored a new access token meanwhile, that one is
//!   used instead. A refused refresh and a refresh whose token is refused again are
//!   recorded ([`Repo::note_authorisation_refused`], Tavern's own key
//!   `schema::AUTHORISATION_REFUSED`) for the organiser page and a single alert to
//!   the organisers ([`crate::jobs`]). While the record says the stored pair is the
//!   refused one ([`Repo::refusal_stands`]), a refused token is not refreshed again:
//!   the run ends with [`SyncError::StillRefused`], spending no refresh token and
//!   keeping the refusal's date and its one alert. Only an organiser authorising again
//!   or a gather Meetup answered clears the record. Nothing else is written before the
//!   gather succeeded. Every refresh (the job's, the sync's, the schedule form's, on
//!   any replica) holds the refresh lock (Tavern's own key
//!   `schema::TOKEN_REFRESH_LOCK`); the sync and the form wait for it up to
//!   [`REFRESH_LOCK_WAIT`] ([`SyncError::RefreshBusy`] after that), then read the
//!   stored pair again and use it if somebody stored another meanwhile, so a refresh
//!   token another refresh spent is never sent and never taken for a refusal.
//! - **A failed group** (not found, 5xx after retries, ...) is logged and reported in
//!   [`SyncReport::failed_groups`]; the other groups are synced. The job then fails
//!   with [`SyncError::GroupsFailed`] so the runner logs it as an error.
//! - `[channel]` and `[role]` shortcodes, the RSVP limit and the seats the RSVPs
//!   read in this run take (guests included) are not stored (the seed has
//!   no key for them); the run hands them to step 2 in [`SyncReport::extras`], for
//!   tracked events only: an event without a series shortcode is not synced at all,
//!   so a `[role]` on it does nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use base::InvalidId;
use chrono::{DateTime, TimeDelta, Utc};
use meetup::{AccessToken, EventType, EventWindow, GroupUrlname, MeetupClient, MeetupError};

use crate::config::CampaignsConfig;
use crate::domain::{
    EventSeriesId, MeetupEventId, MeetupUserId, SeriesShortcode, SeriesType, ShortcodeError,
    parse_shortcodes,
};
use crate::repo::{EventUpsert, MeetupEvent, Repo, RepoError, SyncView, Tokens};

/// When the organiser token is next due for a refresh after the sync refreshed it: the
/// behaviour doc refreshes every 2 days (sooner when the access token expires sooner:
/// [`next_token_refresh`]).
pub const TOKEN_REFRESH_INTERVAL: TimeDelta = TimeDelta::days(2);

/// How long before its access token expires an organiser token is refreshed: more than
/// the refresh job's look every 10 minutes, so the job is in time.
pub const REFRESH_AHEAD: TimeDelta = TimeDelta::minutes(15);

/// When a token pair obtained at `now`, whose access token Meetup says lasts
/// `expires_in`, is next refreshed: [`TOKEN_REFRESH_INTERVAL`] later, or
/// [`REFRESH_AHEAD`] (at most half its life) before the access token expires when that
/// is sooner (Meetup's access tokens last an hour). An `expires_in` of zero says
/// nothing: the interval.
pub fn next_token_refresh(now: DateTime<Utc>, expires_in: std::time::Duration) -> DateTime<Utc> {
    let every = now
        .checked_add_signed(TOKEN_REFRESH_INTERVAL)
        .unwrap_or(now);
    let Ok(life) = TimeDelta::from_std(expires_in) else {
        return every;
    };
    if life <= TimeDelta::zero() {
        return every;
    }
    let ahead = REFRESH_AHEAD.min(life / 2);
    now.checked_add_signed(life - ahead)
        .map_or(every, |before_expiry| before_expiry.min(every))
}

/// Why a sync did not run (or not completely).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no Meetup group is configured: nothing to sync")]
    NoGroups,
    #[error("no organiser token: an organiser must authorise Tavern")]
    NoOrganizerToken,
    /// Meetup refused the refresh grant itself (`invalid_grant`, ...): only a new
    /// authorisation helps.
    #[error(
        "Meetup refused the organiser token and refused to refresh it ({0}): an organiser \
         must authorise Tavern again"
    )]
    RefreshRefused(#[source] MeetupError),
    /// Somebody else was refreshing the organiser token for longer than
    /// [`REFRESH_LOCK_WAIT`]: nothing was refreshed, the next run tries again.
    #[error(
        "Meetup refused the organiser token and another refresh of it is still under way: \
         the next run tries again"
    )]
    RefreshBusy,
    /// Meetup refused Tavern's own OAuth client (`invalid_client`): the
    /// `meetup_client_id` / `meetup_client_secret` settings are wrong. Authorising
    /// again would not help; an admin must fix the settings.
    #[error(
        "Meetup refused Tavern's own OAuth client when refreshing the organiser token \
         ({0}): check the meetup_client_id and meetup_client_secret settings"
    )]
    ClientRejected(#[source] MeetupError),
    /// The refresh could not be done (Meetup unreachable, 5xx, 429, ...): the next run
    /// tries again.
    #[error("Meetup refused the organiser token and refreshing it failed: {0}")]
    Refresh(#[source] MeetupError),
    #[error(
        "Meetup refused the organiser token even after a refresh ({0}): an organiser must \
         authorise Tavern again"
    )]
    StillUnauthorized(#[source] MeetupError),
    /// Meetup refused the stored token pair before and nothing stored another since:
    /// it is not refreshed again (that would spend a refresh token on a known answer).
    #[error(
        "Meetup refused the organiser token, as it refused Tavern's authorisation on {}: \
         an organiser must authorise Tavern again",
        .0.format("%Y-%m-%d %H:%M UTC")
    )]
    StillRefused(DateTime<Utc>),
    #[error("could not build the Meetup client: {0}")]
    Client(#[source] MeetupError),
    #[error("the Meetup sync could not read {}", list_failures(.0))]
    GroupsFailed(Vec<GroupFailure>),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl SyncError {
    /// Meetup refused Tavern's authorisation: only an organiser authorising Tavern
    /// again helps (recorded for the organiser page, see "Token" in the module docs).
    pub fn needs_authorisation(&self) -> bool {
        matches!(
            self,
            SyncError::RefreshRefused(_)
                | SyncError::StillUnauthorized(_)
                | SyncError::StillRefused(_)
        )
    }
}

fn list_failures(failures: &[GroupFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A group whose events could not be read in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFailure {
    pub group: GroupUrlname,
    /// The error, as text (the [`MeetupError`] itself is not `Clone`).
    pub error: String,
}

impl fmt::Display for GroupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group `{}`: {}", self.group, self.error)
    }
}

/// What one run did, also logged as one `info` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Groups Meetup answered for.
    pub groups: usize,
    /// Groups it did not; their events were left alone.
    pub failed_groups: Vec<GroupFailure>,
    /// Distinct events in Meetup's answers.
    pub seen: usize,
    /// Events without a series shortcode.
    pub untracked: usize,
    /// Events skipped with a warning.
    pub skipped: usize,
    /// Events stored (created or updated).
    pub stored: usize,
    /// Events whose YES RSVPs were fetched and stored (each series' next event).
    pub rsvps_fetched: usize,
    /// Events deleted.
    pub deleted: usize,
    /// Series that went with their last event.
    pub series_removed: usize,
    /// Deletions held back for the next run to confirm (see "Mass deletions" in the
    /// module docs).
    pub held: usize,
    /// YES RSVPs Meetup no longer listed but kept for the next run to confirm (see
    /// "Short RSVP lists" in the module docs).
    pub held_rsvps: usize,
    /// Events whose YES RSVP list Meetup answered with fewer entries than it counts
    /// (see "Short RSVP lists" in the module docs): the players listed were added,
    /// nobody was removed.
    pub incomplete_rsvps: Vec<MeetupEventId>,
    /// The organiser token was refreshed during the run.
    pub token_refreshed: bool,
    /// What Meetup's answer said about each tracked event that Redis does not keep
    /// (the seed has no key for it): `[channel]` and `[role]` shortcodes and the RSVP
    /// limit, for step 2 ([`crate::discord_sync`]).
    pub extras: BTreeMap<MeetupEventId, EventExtras>,
}

/// What a Meetup event says beyond what step 1 stores (see [`SyncReport::extras`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventExtras {
    /// `[channel <id>]`: the series takes over this channel instead of getting a new one.
    pub channel: Option<discord::model::ChannelId>,
    /// `[role <id>]`: roles for everyone who RSVP'd yes.
    pub roles: Vec<discord::model::RoleId>,
    /// Meetup's RSVP limit (`maxTickets`), for the free-spots message.
    pub max_tickets: Option<u32>,
    /// Seats the YES RSVPs take, guests included (each RSVP is its member plus the
    /// guests they bring), when this run read the event's RSVPs (each series' next
    /// event); `None` when they were not read, so its free seats are unknown.
    pub seats_taken: Option<u32>,
}

/// The [`EventExtras`] of every event in Meetup's answers whose shortcodes read.
fn extras_of(answers: &[GroupEvents]) -> BTreeMap<MeetupEventId, EventExtras> {
    let mut out = BTreeMap::new();
    for event in answers.iter().flat_map(|g| &g.events) {
        let (Ok(id), Ok(codes)) = (
            MeetupEventId::parse(event.id.as_str()),
            parse_shortcodes(&event.description),
        ) else {
            continue;
        };
        if codes.series.is_none() {
            continue;
        }
        out.insert(
            id,
            EventExtras {
                channel: codes.channel,
                roles: codes.roles,
                max_tickets: event.max_tickets.filter(|n| *n > 0),
                seats_taken: None,
            },
        );
    }
    out
}

/// The window of one run: events starting in `[start, end)`, as Meetup's filter reads
/// it (`afterDateTime` inclusive, `beforeDateTime` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl SyncWindow {
    /// `[now, now + horizon)`; a horizon too large for chrono ends at its last day.
    pub fn new(now: DateTime<Utc>, horizon: TimeDelta) -> SyncWindow {
        SyncWindow {
            start: now,
            end: now
                .checked_add_signed(horizon)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    fn meetup(&self) -> EventWindow {
        EventWindow::between(self.start.fixed_offset(), self.end.fixed_offset())
    }
}

/// One group's events as Meetup returned them.
#[derive(Debug, Clone)]
pub struct GroupEvents {
    pub group: GroupUrlname,
    pub events: Vec<meetup::Event>,
}

/// Why an event was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("malformed shortcode: {0}")]
    Shortcode(#[source] ShortcodeError),
    #[error("unusable event id: {0}")]
    Id(#[source] InvalidId),
    #[error("Meetup gives it no start time")]
    NoStartTime,
    #[error("`[campaign {0}]`: Tavern tracks no event or series {0}")]
    UnknownEvent(MeetupEventId),
    #[error("its `[campaign ...]` shortcodes go round in a circle through event {0}")]
    Cycle(MeetupEventId),
    #[error("it belongs to series {current}, but its shortcodes now say series {requested}")]
    OtherSeries {
        current: EventSeriesId,
        requested: EventSeriesId,
    },
}

/// An event the sync skipped, with what to tell the organisers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    /// Meetup's id, as Meetup wrote it.
    pub event: String,
    pub title: String,
    pub group: GroupUrlname,
    pub reason: SkipReason,
}

/// A host left out of an event's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedHost {
    pub event: MeetupEventId,
    /// Why (a hidden member or an id that is not a positive integer).
    pub reason: String,
}

/// What a run will write, decided without I/O by [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Events to store, oldest first. `rsvps` is `None`: the run fills it in for
    /// [`SyncPlan::next_events`] once it has fetched them.
    pub upserts: Vec<EventUpsert>,
    /// Each series' next event, whose YES RSVPs are fetched.
    pub next_events: Vec<MeetupEventId>,
    /// Tracked events Meetup no longer reports (see the module docs for which), to
    /// delete in this run.
    pub deletions: Vec<MeetupEventId>,
    /// Tracked events Meetup no longer reports whose deletion waits for the next run to
    /// confirm it: this run would otherwise delete more than half of [`SyncPlan::asked`]
    /// (see "Mass deletions" in the module docs). The run records them in place of the
    /// previous run's.
    pub held: Vec<MeetupEventId>,
    /// Tracked events this run asked Meetup about: of a group Meetup answered for,
    /// stored with a time inside the window. Only these can be deleted.
    pub asked: usize,
    pub skipped: Vec<SkippedEvent>,
    pub dropped_hosts: Vec<DroppedHost>,
    /// Distinct events in the answers.
    pub seen: usize,
    /// Events without a series shortcode.
    pub untracked: usize,
}

/// An event with a series shortcode and a start time, before its series is known.
struct Candidate<'a> {
    id: MeetupEventId,
    event: &'a meetup::Event,
    group: &'a GroupUrlname,
    time: DateTime<Utc>,
    online: bool,
}

/// Decides what a run writes: which events to store in which series (with the series'
/// type), whose RSVPs to fetch, which events to delete and which to skip. `groups`
/// holds only the groups Meetup answered for; `view` is what Redis tracks; `window` is
/// the window the events were fetched for. See the module docs for every rule.
pub fn plan(groups: &[GroupEvents], view: &SyncView, window: SyncWindow) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // Returned events that must not be deleted: tracked ones and skipped ones.
    let mut keep: BTreeSet<MeetupEventId> = BTreeSet::new();
    let mut shortcodes: HashMap<MeetupEventId, SeriesShortcode> = HashMap::new();
    let mut candidates: Vec<Candidate<'_>> = Vec::new();

    for group in groups {
        for event in &group.events {
            if !seen.insert(event.id.as_str().to_owned()) {
                continue;
            }
            plan.seen += 1;
            let skip = |reason| SkippedEvent {
                event: event.id.as_str().to_owned(),
                title: event.title.clone(),
                group: group.group.clone(),
                reason,
            };
            let id = match MeetupEventId::parse(event.id.as_str()) {
                Ok(id) => id,
                Err(e) => {
                    plan.skipped.push(skip(SkipReason::Id(e)));
                    continue;
                }
            };
            let codes = match parse_shortcodes(&event.description) {
                Ok(codes) => codes,
                Err(e) => {
                    keep.insert(id);
                    plan.skipped.push(skip(SkipReason::Shortcode(e)));
                    continue;
                }
            };
            let Some(series) = codes.series else {
                plan.untracked += 1;
                continue;
            };
            keep.insert(id.clone());
            shortcodes.insert(id.clone(), series);
            let Some(starts) = event.starts_at else {
                plan.skipped.push(skip(SkipReason::NoStartTime));
                continue;
            };
            candidates.push(Candidate {
                id,
                event,
                group: &group.group,
                time: starts.with_timezone(&Utc),
                online: codes.online,
            });
        }
    }

    // Deletions: see the module docs.
    let answered: BTreeSet<&str> = groups.iter().map(|g| g.group.as_str()).collect();
    let asked: Vec<&MeetupEventId> = view
        .events
        .iter()
        .filter(|(_, tracked)| {
            answered.contains(tracked.urlname.as_str()) && window.contains(tracked.time)
        })
        .map(|(id, _)| id)
        .collect();
    let gone: Vec<MeetupEventId> = asked
        .iter()
        .filter(|id| !keep.contains(**id))
        .map(|id| (*id).clone())
        .collect();
    plan.asked = asked.len();
    (plan.deletions, plan.held) = hold_mass_deletions(gone, plan.asked, &view.pending_deletions);
    let deleted: BTreeSet<&MeetupEventId> = plan.deletions.iter().collect();

    // Series of each candidate.
    let mut accepted: Vec<(Candidate<'_>, EventSeriesId)> = Vec::new();
    for candidate in candidates {
        let resolved =
            resolve_series(&candidate.id, &shortcodes, view).and_then(|series| {
                match view
                    .events
                    .get(&candidate.id)
                    .and_then(|e| e.series.as_ref())
                {
                    Some(current) if *current != series => Err(SkipReason::OtherSeries {
                        current: current.clone(),
                        requested: series,
                    }),
                    _ => Ok(series),
                }
            });
        match resolved {
            Ok(series) => accepted.push((candidate, series)),
            Err(reason) => plan.skipped.push(SkippedEvent {
                event: candidate.id.as_str().to_owned(),
                title: candidate.event.title.clone(),
                group: candidate.group.clone(),
                reason,
            }),
        }
    }
    accepted.sort_by(|(a, _), (b, _)| (a.time, &a.id).cmp(&(b.time, &b.id)));

    // Each touched series: its events after this run, its declared type, its next event.
    let mut members: BTreeMap<EventSeriesId, BTreeSet<MeetupEventId>> = BTreeMap::new();
    let mut declared: BTreeMap<EventSeriesId, SeriesType> = BTreeMap::new();
    let mut next: BTreeMap<EventSeriesId, MeetupEventId> = BTreeMap::new();
    for (candidate, series) in &accepted {
        let events = members.entry(series.clone()).or_insert_with(|| {
            view.series
                .get(series)
                .map(|s| {
                    s.events
                        .iter()
                        .filter(|e| !deleted.contains(e))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        });
        events.insert(candidate.id.clone());
        if let Some(series_type) = shortcodes
            .get(&candidate.id)
            .and_then(SeriesShortcode::new_series_type)
        {
            declared.insert(series.clone(), series_type);
        }
        // `accepted` is oldest first, so the first event seen is the next one.
        next.entry(series.clone())
            .or_insert_with(|| candidate.id.clone());
    }
    let types: BTreeMap<&EventSeriesId, SeriesType> = members
        .iter()
        .map(|(series, events)| {
            let base = declared
                .get(series)
                .copied()
                .or_else(|| view.series.get(series).and_then(|s| s.series_type));
            (series, SeriesType::after_sync(base, events.len()))
        })
        .collect();

    for (candidate, series) in &accepted {
        let mut hosts: Vec<MeetupUserId> = Vec::new();
        for host in &candidate.event.hosts {
            let parsed = match &host.member {
                None => Err(format!(
                    "Meetup hides the member of host {:?}",
                    host.name.as_deref().unwrap_or("(no name)")
                )),
                Some(member) => {
                    MeetupUserId::parse(member.id.as_str()).map_err(|e| format!("host {e}"))
                }
            };
            match parsed {
                Ok(user) if !hosts.contains(&user) => hosts.push(user),
                Ok(_) => {}
                Err(reason) => plan.dropped_hosts.push(DroppedHost {
                    event: candidate.id.clone(),
                    reason,
                }),
            }
        }
        hosts.sort();
        let is_online = match candidate.event.event_type {
            _ if candidate.online => Some(true),
            EventType::Online | EventType::Hybrid => Some(true),
            EventType::Physical => Some(false),
            EventType::Other(_) => None,
        };
        plan.upserts.push(EventUpsert {
            event: MeetupEvent {
                id: candidate.id.clone(),
                name: candidate.event.title.clone(),
                time: candidate.time,
                link: candidate.event.url.clone(),
                urlname: candidate.group.as_str().to_owned(),
                is_online,
            },
            series: series.clone(),
            series_type: types.get(series).copied(),
            series_online: candidate.online,
            hosts,
            rsvps: None,
        });
    }
    plan.next_events = next.into_values().collect();
    plan.next_events.sort();
    plan
}

/// Splits the tracked events a run found gone into those it deletes and those it holds
/// back: when they are more than half of the `asked` tracked events, only the ones the
/// previous run already held (`pending`) are deleted; the others wait for the next run.
/// Otherwise all go. See "Mass deletions" in the module docs.
pub fn hold_mass_deletions<T: Ord>(
    gone: Vec<T>,
    asked: usize,
    pending: &BTreeSet<T>,
) -> (Vec<T>, Vec<T>) {
    if gone.len().saturating_mul(2) <= asked {
        return (gone, Vec::new());
    }
    gone.into_iter().partition(|id| pending.contains(id))
}

/// The YES RSVPs to store for an event whose RSVPs Meetup just listed (`fetched`),
/// given the `stored` ones and the removals the previous run held back (`pending`):
/// removals of more than half of the stored RSVPs wait for the next run, except those
/// the previous run already held ([`hold_mass_deletions`]). Returns the set to store,
/// sorted, and the removals held back now. See "Short RSVP lists" in the module docs.
pub fn hold_mass_rsvp_removals(
    stored: &BTreeSet<MeetupUserId>,
    fetched: Vec<MeetupUserId>,
    pending: &BTreeSet<MeetupUserId>,
) -> (Vec<MeetupUserId>, Vec<MeetupUserId>) {
    let listed: BTreeSet<MeetupUserId> = fetched.into_iter().collect();
    let gone: Vec<MeetupUserId> = stored.difference(&listed).copied().collect();
    let (_, held) = hold_mass_deletions(gone, stored.len(), pending);
    let keep: BTreeSet<MeetupUserId> = listed.into_iter().chain(held.iter().copied()).collect();
    (keep.into_iter().collect(), held)
}

/// The series `event` belongs to: see "`[campaign <eventId>]`" in the module docs.
fn resolve_series(
    event: &MeetupEventId,
    shortcodes: &HashMap<MeetupEventId, SeriesShortcode>,
    view: &SyncView,
) -> Result<EventSeriesId, SkipReason> {
    let mut current = event.clone();
    let mut visited: BTreeSet<MeetupEventId> = BTreeSet::new();
    loop {
        if !visited.insert(current.clone()) {
            return Err(SkipReason::Cycle(current));
        }
        match shortcodes.get(&current) {
            Some(SeriesShortcode::NewAdventure | SeriesShortcode::NewCampaign) => {
                return Ok(EventSeriesId::started_by(&current));
            }
            Some(SeriesShortcode::Join(target)) => current = target.clone(),
            None => {
                if let Some(series) = view.events.get(&current).and_then(|e| e.series.clone()) {
                    return Ok(series);
                }
                let named = EventSeriesId::started_by(&current);
                if view.series.contains_key(&named) {
                    return Ok(named);
                }
                return Err(SkipReason::UnknownEvent(current));
            }
        }
    }
}

/// Everything a run read, before it writes.
struct Gathered {
    plan: SyncPlan,
    extras: BTreeMap<MeetupEventId, EventExtras>,
    rsvps: HashMap<MeetupEventId, Vec<MeetupUserId>>,
    /// RSVP removals held back for the next run (see "Short RSVP lists").
    held_rsvps: Vec<(MeetupEventId, MeetupUserId)>,
    incomplete_rsvps: Vec<MeetupEventId>,
    /// The names Meetup gave the members listed (hosts of stored events, players).
    names: Vec<(MeetupUserId, String)>,
    groups: usize,
    failed_groups: Vec<GroupFailure>,
}

/// Why a gather stopped: the token (refresh and try again) or Redis.
enum GatherError {
    Unauthorized(MeetupError),
    Repo(RepoError),
}

impl From<RepoError> for GatherError {
    fn from(e: RepoError) -> GatherError {
        GatherError::Repo(e)
    }
}

/// Runs the sync once (the job every [`CampaignsConfig::sync_every`], and the admin
/// "sync now" command). `now` is the start of the window. See the module docs.
pub async fn sync_once(
    repo: &Repo,
    client: &MeetupClient,
    config: &CampaignsConfig,
    now: DateTime<Utc>,
) -> Result<SyncReport, SyncError> {
    if !config.has_groups() {
        return Err(SyncError::NoGroups);
    }
    let Some(stored) = repo.organizer_tokens().await? else {
        tracing::warn!("Meetup sync skipped: {}", SyncError::NoOrganizerToken);
        return Err(SyncError::NoOrganizerToken);
    };
    let window = SyncWindow::new(now, config.horizon);
    let access = stored.tokens.access.clone();
    let mut token_refreshed = false;
    let gathered = match gather(repo, client, config, &access, window).await {
        Ok(gathered) => gathered,
        Err(GatherError::Repo(e)) => return Err(e.into()),
        Err(GatherError::Unauthorized(error)) => {
            tracing::info!(%error, "Meetup refused the organiser token; refreshing it");
            let access = refresh(repo, client, config, &stored.tokens, now).await?;
            token_refreshed = true;
            match gather(repo, client, config, &access, window).await {
                Ok(gathered) => gathered,
                Err(GatherError::Repo(e)) => return Err(e.into()),
                Err(GatherError::Unauthorized(e)) => {
                    note_refused_again(repo, &access, now).await?;
                    return Err(SyncError::StillUnauthorized(e));
                }
            }
        }
    };
    if gathered.groups > 0 {
        // Meetup answered with the organiser's token: whatever it refused before, the
        // authorisation works now.
        repo.authorisation_works().await?;
    }
    let mut report = apply(repo, gathered).await?;
    report.token_refreshed = token_refreshed;
    tracing::info!(
        groups = report.groups,
        failed_groups = report.failed_groups.len(),
        seen = report.seen,
        untracked = report.untracked,
        skipped = report.skipped,
        stored = report.stored,
        rsvps_fetched = report.rsvps_fetched,
        deleted = report.deleted,
        series_removed = report.series_removed,
        held = report.held,
        held_rsvps = report.held_rsvps,
        incomplete_rsvps = report.incomplete_rsvps.len(),
        token_refreshed = report.token_refreshed,
        "Meetup sync done"
    );
    Ok(report)
}

/// Every read of a run: Meetup's events, Redis' view, the plan, the next events' RSVPs.
async fn gather(
    repo: &Repo,
    client: &MeetupClient,
    config: &CampaignsConfig,
    access: &AccessToken,
    window: SyncWindow,
) -> Result<Gathered, GatherError> {
    let mut answers = Vec::with_capacity(config.groups.len());
    let mut failed_groups = Vec::new();
    for group in &config.groups {
        match client.group_events(access, group, &window.meetup()).await {
            Ok(events) => answers.push(GroupEvents {
                group: group.clone(),
                events,
            }),
            Err(e) if e.is_unauthorized() => return Err(GatherError::Unauthorized(e)),
            Err(e) => {
                tracing::warn!(%group, error = %e, "could not read the group's Meetup events; leaving its events as they are");
                failed_groups.push(GroupFailure {
                    group: group.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    let view = repo.sync_view().await?;
    for what in &view.unreadable {
        tracing::warn!(%what, "unreadable campaign data left out of the Meetup sync (see `tavern check`)");
    }
    let plan = plan(&answers, &view, window);
    // The names Meetup gives the hosts of tracked events and the players it lists, for
    // `/players list` to name members who have not linked a Discord account.
    let mut names: Vec<(MeetupUserId, String)> = host_names(&answers, &plan);
    let mut fetched: BTreeMap<MeetupEventId, (Vec<MeetupUserId>, bool)> = BTreeMap::new();
    let mut incomplete_rsvps = Vec::new();
    let mut extras = extras_of(&answers);
    for event in &plan.next_events {
        let meetup_id = match meetup::EventId::parse(event.as_str()) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(%event, error = %e, "cannot ask Meetup for this event's RSVPs");
                continue;
            }
        };
        match client.event_rsvp_list(access, &meetup_id).await {
            Ok(list) => {
                let complete = list.is_complete();
                if !complete {
                    tracing::warn!(
                        %event,
                        listed = list.received,
                        counted = list.total.unwrap_or_default(),
                        "Meetup listed fewer of the event's YES RSVPs than it counts; adding \
                         the players it lists and removing nobody"
                    );
                    incomplete_rsvps.push(event.clone());
                }
                let answer = list.rsvps;
                // The seats of a part of the list are not the event's.
                if let (true, Some(extra)) = (complete, extras.get_mut(event)) {
                    let seats = answer
                        .iter()
                        .map(|r| r.guests.saturating_add(1))
                        .fold(0u32, u32::saturating_add);
                    extra.seats_taken = Some(seats);
                }
                let mut users: Vec<MeetupUserId> = Vec::with_capacity(answer.len());
                for rsvp in answer {
                    match MeetupUserId::parse(rsvp.member.id.as_str()) {
                        Ok(user) if !users.contains(&user) => {
                            if let Some(name) = rsvp.member.name {
                                names.push((user, name));
                            }
                            users.push(user);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(%event, error = %e, "left an RSVP out: its member id is not usable");
                        }
                    }
                }
                fetched.insert(event.clone(), (users, complete));
            }
            Err(e) if e.is_unauthorized() => return Err(GatherError::Unauthorized(e)),
            Err(e) => {
                tracing::warn!(%event, error = %e, "could not read the event's RSVPs; keeping the stored ones");
            }
        }
    }
    let fetched_events: Vec<MeetupEventId> = fetched.keys().cloned().collect();
    let mut stored = repo.stored_rsvps(&fetched_events).await?;
    let mut rsvps = HashMap::new();
    let mut held_rsvps = Vec::new();
    let none = BTreeSet::new();
    for (event, (users, complete)) in fetched {
        let stored = stored.remove(&event).unwrap_or_default();
        let pending = view.pending_rsvp_removals.get(&event).unwrap_or(&none);
        if !complete {
            // Who is listed said yes; who is not may only be hidden: add, remove nobody,
            // and keep the removals held back for a complete list to decide.
            let listed: BTreeSet<MeetupUserId> = users.into_iter().collect();
            held_rsvps.extend(
                pending
                    .iter()
                    .filter(|u| !listed.contains(u) && stored.contains(u))
                    .map(|u| (event.clone(), *u)),
            );
            rsvps.insert(event, stored.union(&listed).copied().collect());
            continue;
        }
        let (keep, held) = hold_mass_rsvp_removals(&stored, users, pending);
        if !held.is_empty() {
            let users = held
                .iter()
                .map(|u| u.get().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            tracing::warn!(
                %event,
                held = held.len(),
                stored = stored.len(),
                %users,
                "Meetup no longer lists {} of the event's {} stored YES RSVPs; keeping them \
                 until the next run finds them gone too",
                held.len(),
                stored.len(),
            );
        }
        held_rsvps.extend(held.into_iter().map(|u| (event.clone(), u)));
        rsvps.insert(event, keep);
    }
    Ok(Gathered {
        plan,
        extras,
        rsvps,
        held_rsvps,
        incomplete_rsvps,
        names,
        groups: answers.len(),
        failed_groups,
    })
}

/// The names of the hosts of the events `plan` stores, as Meetup gives them (the
/// member's name, else the host's display name).
fn host_names(answers: &[GroupEvents], plan: &SyncPlan) -> Vec<(MeetupUserId, String)> {
    let stored: BTreeSet<&str> = plan.upserts.iter().map(|u| u.event.id.as_str()).collect();
    answers
        .iter()
        .flat_map(|g| g.events.iter())
        .filter(|e| stored.contains(e.id.as_str()))
        .flat_map(|e| e.hosts.iter())
        .filter_map(|host| {
            let member = host.member.as_ref()?;
            let user = MeetupUserId::parse(member.id.as_str()).ok()?;
            let name = member.name.clone().or_else(|| host.name.clone())?;
            Some((user, name))
        })
        .collect()
}

/// Records that Meetup refused `access`, a token just refreshed, against the pair it
/// came with, unless a newer pair was stored meanwhile (see "Token" in the module docs).
pub(crate) async fn note_refused_again(
    repo: &Repo,
    access: &AccessToken,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    if let Some(current) = repo.organizer_tokens().await?
        && current.tokens.access == *access
    {
        repo.note_authorisation_refused(&current.tokens.refresh, now)
            .await?;
    }
    Ok(())
}

/// How long the sync and the schedule form wait for somebody else's refresh of the
/// organiser token (the refresh lock) before giving up for now.
pub const REFRESH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// How often they look whether the lock is free.
const REFRESH_LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Refreshes the organiser token once and stores the new pair. Returns the access
/// token to use. The sync's one refresh after a refused token, also used by the
/// schedule form ([`crate::web::schedule`]).
///
/// It runs under the refresh lock ([`Repo::try_lock_token_refresh`], waiting up to
/// [`REFRESH_LOCK_WAIT`] for whoever holds it), and once it has the lock it reads the
/// stored pair again: when somebody stored another pair meanwhile (their refresh spent
/// the refresh token `tokens` holds), that one is used and nothing is refreshed.
pub(crate) async fn refresh(
    repo: &Repo,
    client: &MeetupClient,
    config: &CampaignsConfig,
    tokens: &Tokens,
    now: DateTime<Utc>,
) -> Result<AccessToken, SyncError> {
    let deadline = tokio::time::Instant::now() + REFRESH_LOCK_WAIT;
    let lock = loop {
        if let Some(lock) = repo.try_lock_token_refresh().await? {
            break lock;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SyncError::RefreshBusy);
        }
        tokio::time::sleep(REFRESH_LOCK_POLL).await;
    };
    let refreshed = refresh_locked(repo, client, config, tokens, now).await;
    if let Err(error) = repo.unlock_token_refresh(lock).await {
        tracing::warn!(%error, "could not give the token refresh lock back; it expires by itself");
    }
    refreshed
}

async fn refresh_locked(
    repo: &Repo,
    client: &MeetupClient,
    config: &CampaignsConfig,
    tokens: &Tokens,
    now: DateTime<Utc>,
) -> Result<AccessToken, SyncError> {
    match repo.organizer_tokens().await? {
        Some(stored) if stored.tokens.access != tokens.access => {
            tracing::info!("another organiser token was stored meanwhile; using it");
            return Ok(stored.tokens.access);
        }
        Some(_) => {}
        None => return Err(SyncError::NoOrganizerToken),
    }
    if let Some(since) = repo.refusal_stands().await? {
        tracing::info!(
            refused_at = %since.to_rfc3339(),
            "not refreshing the organiser token: Meetup refused this one already"
        );
        return Err(SyncError::StillRefused(since));
    }
    match client
        .refresh(&config.client_id, &config.client_secret, &tokens.refresh)
        .await
    {
        Ok(fresh) => {
            let pair = Tokens {
                access: fresh.access_token.clone(),
                refresh: fresh.refresh_token,
            };
            let next = next_token_refresh(now, fresh.expires_in);
            if repo
                .replace_organizer_tokens(&tokens.refresh, &pair, next)
                .await?
            {
                tracing::info!(next_refresh = %next, "organiser token refreshed and stored");
            } else {
                tracing::info!(
                    "organiser token refreshed, but a newer one was stored meanwhile; keeping that one"
                );
            }
            Ok(fresh.access_token)
        }
        Err(error) => {
            // Someone else (another replica, the refresh job, an organiser authorising
            // again) may have rotated the tokens under us: use theirs.
            match repo.organizer_tokens().await? {
                Some(now_stored) if now_stored.tokens.access != tokens.access => {
                    tracing::info!(%error, "refresh refused, but another token was stored meanwhile; using it");
                    Ok(now_stored.tokens.access)
                }
                _ if error.is_refused_grant() => {
                    repo.note_refresh_grant_refused(&tokens.refresh, now)
                        .await?;
                    Err(SyncError::RefreshRefused(error))
                }
                _ if error.is_client_rejected() => {
                    log_client_rejected(&error);
                    Err(SyncError::ClientRejected(error))
                }
                _ => Err(SyncError::Refresh(error)),
            }
        }
    }
}

/// `member` as Meetup knows them: a member of one of the configured groups, asked of
/// each group in turn ([`MeetupClient::group_member`]; Meetup's API has no look-up of
/// a member by id outside a group) with the organiser's token, refreshed once when
/// Meetup refuses it, as the sync does ("Token" in the module docs). `Ok(None)`:
/// every group answered and none has that member. A group Meetup could not answer
/// for (an outage, a group it no longer has) makes it [`SyncError::GroupsFailed`]
/// unless another group has the member: no answer is not a "no".
///
/// It stores nothing about the member, the games or Discord. It writes only the
/// organiser's authorisation, as the sync would: the refreshed token pair, a refresh
/// Meetup refused or a fresh token it refused again (recorded for the organiser
/// page and the organisers' alert), and the clearing of a recorded refusal once Meetup
/// answers with the token ([`Repo::authorisation_works`]).
pub async fn find_member(
    repo: &Repo,
    client: &MeetupClient,
    config: &CampaignsConfig,
    member: MeetupUserId,
    now: DateTime<Utc>,
) -> Result<Option<meetup::Member>, SyncError> {
    if !config.has_groups() {
        return Err(SyncError::NoGroups);
    }
    let Some(stored) = repo.organizer_tokens().await? else {
        return Err(SyncError::NoOrganizerToken);
    };
    let Ok(id) = meetup::MemberId::parse(&member.to_string()) else {
        return Ok(None);
    };
    let found = match ask_groups(client, config, &stored.tokens.access, &id).await {
        Err(Asked::Unauthorized(error)) => {
            tracing::info!(%error, "Meetup refused the organiser token; refreshing it");
            let access = refresh(repo, client, config, &stored.tokens, now).await?;
            match ask_groups(client, config, &access, &id).await {
                Err(Asked::Unauthorized(e)) => {
                    note_refused_again(repo, &access, now).await?;
                    return Err(SyncError::StillUnauthorized(e));
                }
                other => other,
            }
        }
        other => other,
    };
    match found {
        Ok(found) => {
            // Meetup answered with the organiser's token: the authorisation works.
            if let Err(error) = repo.authorisation_works().await {
                tracing::warn!(%error, "could not clear Meetup's recorded refusal of the organiser's authorisation");
            }
            Ok(found)
        }
        Err(Asked::Unauthorized(e)) => Err(SyncError::StillUnauthorized(e)),
        Err(Asked::Failed(failures)) => Err(SyncError::GroupsFailed(failures)),
    }
}

/// Why [`ask_groups`] has no answer.
enum Asked {
    Unauthorized(MeetupError),
    Failed(Vec<GroupFailure>),
}

async fn ask_groups(
    client: &MeetupClient,
    config: &CampaignsConfig,
    access: &AccessToken,
    member: &meetup::MemberId,
) -> Result<Option<meetup::Member>, Asked> {
    let mut failures = Vec::new();
    for group in &config.groups {
        match client.group_member(access, group, member).await {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => {}
            Err(e) if e.is_unauthorized() => return Err(Asked::Unauthorized(e)),
            Err(e) => {
                tracing::warn!(%group, %member, error = %e, "could not ask Meetup about a member of the group");
                failures.push(GroupFailure {
                    group: group.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    if failures.is_empty() {
        Ok(None)
    } else {
        Err(Asked::Failed(failures))
    }
}

/// Logs a refresh Meetup refused because Tavern's own client id or secret is wrong:
/// a configuration error for an admin, not a refused authorisation (nothing is
/// recorded, no organiser is asked to authorise again).
pub(crate) fn log_client_rejected(error: &MeetupError) {
    tracing::error!(
        %error,
        "Meetup refused Tavern's own OAuth client: check the meetup_client_id and \
         meetup_client_secret settings (TAVERN_MEETUP_CLIENT_ID, TAVERN_MEETUP_CLIENT_SECRET)"
    );
}

/// The writes of a run, each one repository transaction.
async fn apply(repo: &Repo, gathered: Gathered) -> Result<SyncReport, SyncError> {
    let Gathered {
        plan,
        extras,
        mut rsvps,
        held_rsvps,
        incomplete_rsvps,
        names,
        groups,
        failed_groups,
    } = gathered;
    // Only for `/players list`: a failure is told and the run goes on.
    if let Err(error) = repo.remember_meetup_names(&names).await {
        tracing::warn!(%error, "could not keep the Meetup members' names; /players list shows their ids");
    }
    let mut report = SyncReport {
        groups,
        failed_groups,
        incomplete_rsvps,
        seen: plan.seen,
        untracked: plan.untracked,
        skipped: plan.skipped.len(),
        extras,
        ..SyncReport::default()
    };
    for skipped in &plan.skipped {
        tracing::warn!(
            event = %skipped.event,
            title = %skipped.title,
            group = %skipped.group,
            reason = %skipped.reason,
            "skipped a Meetup event"
        );
    }
    for dropped in &plan.dropped_hosts {
        tracing::warn!(event = %dropped.event, reason = %dropped.reason, "left a host out");
    }
    for mut upsert in plan.upserts {
        upsert.rsvps = rsvps.remove(&upsert.event.id);
        let fetched = upsert.rsvps.is_some();
        match repo.upsert_event(&upsert).await {
            Ok(()) => {
                report.stored += 1;
                if fetched {
                    report.rsvps_fetched += 1;
                }
            }
            // A concurrent change moved the event meanwhile; the repository refused it.
            Err(e @ RepoError::EventInOtherSeries { .. }) => {
                tracing::warn!(event = %upsert.event.id, title = %upsert.event.name, reason = %e, "skipped a Meetup event");
                report.skipped += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !plan.held.is_empty() {
        let events = plan
            .held
            .iter()
            .map(MeetupEventId::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(
            held = plan.held.len(),
            asked = plan.asked,
            %events,
            "Meetup no longer lists {} of the {} tracked events it was asked about; not \
             deleting them until the next run finds them gone too",
            plan.held.len(),
            plan.asked,
        );
    }
    for event in &plan.deletions {
        let deletion = repo.delete_event(event).await?;
        report.deleted += 1;
        if deletion.series_removed {
            report.series_removed += 1;
        }
    }
    repo.set_pending_deletions(&plan.held).await?;
    report.held = plan.held.len();
    repo.set_pending_rsvp_removals(&held_rsvps).await?;
    report.held_rsvps = held_rsvps.len();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::repo::{TrackedEvent, TrackedSeries};
    use meetup::{EventHost, EventId, EventStatus, Member, MemberId};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window() -> SyncWindow {
        SyncWindow::new(t("2026-01-01T00:00:00Z"), TimeDelta::days(60))
    }

    fn group() -> GroupUrlname {
        GroupUrlname::parse("dragons").unwrap()
    }

    fn ev(id: &str, day: u32, description: &str, hosts: &[&str]) -> meetup::Event {
        meetup::Event {
            id: EventId::parse(id).unwrap(),
            title: format!("Event {id}"),
            description: description.into(),
            url: format!("https://www.meetup.com/dragons/events/{id}/"),
            starts_at: Some(t(&format!("2026-01-{day:02}T18:00:00Z")).fixed_offset()),
            ends_at: None,
            duration: None,
            status: EventStatus::Active,
            event_type: EventType::Physical,
            max_tickets: None,
            group: Some(group()),
            group_timezone: None,
            hosts: hosts
                .iter()
                .map(|h| EventHost {
                    member: Some(Member {
                        id: MemberId::parse(h).unwrap(),
                        name: None,
                    }),
                    name: None,
                })
                .collect(),
        }
    }

    fn answer(events: Vec<meetup::Event>) -> Vec<GroupEvents> {
        vec![GroupEvents {
            group: group(),
            events,
        }]
    }

    fn eid(s: &str) -> MeetupEventId {
        MeetupEventId::parse(s).unwrap()
    }

    fn sid(s: &str) -> EventSeriesId {
        EventSeriesId::parse(s).unwrap()
    }

    fn series_of(plan: &SyncPlan) -> Vec<(String, String, Option<SeriesType>)> {
        plan.upserts
            .iter()
            .map(|u| (u.event.id.to_string(), u.series.to_string(), u.series_type))
            .collect()
    }

    #[test]
    fn new_series_are_named_after_their_first_event_and_joins_follow_chains() {
        let plan = plan(
            &answer(vec![
                ev("3", 9, "[campaign 2]", &["7"]),
                ev("1", 3, "[new adventure]", &["7", "8", "7"]),
                ev("2", 5, "[campaign 1]", &[]),
                ev("4", 4, "[NEW CAMPAIGN] [online]", &[]),
            ]),
            &SyncView::default(),
            window(),
        );
        assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
        assert_eq!(
            series_of(&plan),
            vec![
                ("1".into(), "1".into(), Some(SeriesType::Campaign)),
                ("4".into(), "4".into(), Some(SeriesType::Campaign)),
                ("2".into(), "1".into(), Some(SeriesType::Campaign)),
                ("3".into(), "1".into(), Some(SeriesType::Campaign)),
            ],
            "oldest first; an adventure with three sessions is a campaign"
        );
        assert_eq!(plan.next_events, vec![eid("1"), eid("4")]);
        assert_eq!(
            plan.upserts[0].hosts,
            vec![MeetupUserId::new(7).unwrap(), MeetupUserId::new(8).unwrap()]
        );
        let online = &plan.upserts[1];
        assert!(online.series_online);
        assert_eq!(online.event.is_online, Some(true));
        assert_eq!(plan.upserts[0].event.is_online, Some(false));
        assert!(plan.upserts.iter().all(|u| u.rsvps.is_none()));
    }

    #[test]
    fn cycles_unknown_targets_and_malformed_shortcodes_are_skipped() {
        let mut hidden = ev("6", 6, "[new adventure]", &[]);
        hidden.hosts.push(EventHost {
            member: None,
            name: Some("Ghost".into()),
        });
        let mut no_time = ev("7", 7, "[new adventure]", &[]);
        no_time.starts_at = None;
        let plan = plan(
            &answer(vec![
                ev("1", 3, "[campaign 2]", &[]),
                ev("2", 4, "[campaign 1]", &[]),
                ev("3", 5, "[campaign 99]", &[]),
                ev("4", 5, "[campaign 4-4]", &[]),
                ev("5", 5, "no shortcode at all", &[]),
                hidden,
                no_time,
            ]),
            &SyncView::default(),
            window(),
        );
        let reasons: Vec<(String, String)> = plan
            .skipped
            .iter()
            .map(|s| (s.event.clone(), s.reason.to_string()))
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:#?}");
        assert!(matches!(plan.skipped[0].reason, SkipReason::Shortcode(_)));
        assert_eq!(plan.skipped[1].reason, SkipReason::NoStartTime);
        assert_eq!(plan.skipped[2].reason, SkipReason::Cycle(eid("1")));
        assert_eq!(plan.skipped[3].reason, SkipReason::Cycle(eid("2")));
        assert_eq!(plan.skipped[4].reason, SkipReason::UnknownEvent(eid("99")));
        assert!(reasons[4].1.contains("99"), "{reasons:?}");
        assert_eq!(plan.untracked, 1);
        assert_eq!(plan.seen, 7);
        assert_eq!(
            series_of(&plan),
            vec![("6".into(), "6".into(), Some(SeriesType::Adventure))]
        );
        assert_eq!(plan.dropped_hosts.len(), 1);
        assert!(plan.dropped_hosts[0].reason.contains("Ghost"));
    }

    fn tracked(urlname: &str, time: &str, series: &str) -> TrackedEvent {
        TrackedEvent {
            urlname: urlname.into(),
            time: t(time),
            series: Some(sid(series)),
        }
    }

    #[test]
    fn deletes_only_unreported_events_of_answered_groups_inside_the_window() {
        let mut view = SyncView::default();
        for (id, urlname, time) in [
            ("10", "dragons", "2025-12-31T23:59:59Z"), // past: history
            ("11", "dragons", "2026-01-01T00:00:00Z"), // window start: asked about
            ("12", "dragons", "2026-03-02T00:00:00Z"), // window end (exclusive)
            ("13", "goblins", "2026-01-10T00:00:00Z"), // group not answered
            ("14", "dragons", "2026-01-10T00:00:00Z"), // still reported, malformed now
            ("15", "dragons", "2026-01-10T00:00:00Z"), // reported, shortcode removed
            ("16", "dragons", "2026-01-10T00:00:00Z"), // still reported and tracked
        ] {
            view.events.insert(eid(id), tracked(urlname, time, id));
        }
        let plan = plan(
            &answer(vec![
                ev("14", 10, "[campaign ?]", &[]),
                ev("15", 10, "plain", &[]),
                ev("16", 10, "[new adventure]", &[]),
            ]),
            &view,
            window(),
        );
        assert_eq!(plan.deletions, vec![eid("11"), eid("15")]);
    }

    #[test]
    fn joins_fall_back_to_stored_events_and_series_and_types_count_history() {
        let mut view = SyncView::default();
        view.events
            .insert(eid("50"), tracked("dragons", "2025-12-01T18:00:00Z", "50"));
        view.series.insert(
            sid("50"),
            TrackedSeries {
                series_type: Some(SeriesType::Adventure),
                events: [eid("50")].into(),
            },
        );
        // A series whose first event is gone.
        view.series.insert(
            sid("60"),
            TrackedSeries {
                series_type: Some(SeriesType::Campaign),
                events: BTreeSet::new(),
            },
        );
        // An event stored in another series than its shortcode now says.
        view.events
            .insert(eid("70"), tracked("dragons", "2026-01-20T18:00:00Z", "60"));
        let plan = plan(
            &answer(vec![
                ev("51", 5, "[campaign 50]", &[]),
                ev("61", 6, "[campaign 60]", &[]),
                ev("70", 20, "[new adventure]", &[]),
            ]),
            &view,
            window(),
        );
        assert_eq!(
            series_of(&plan),
            vec![
                ("51".into(), "50".into(), Some(SeriesType::Campaign)),
                ("61".into(), "60".into(), Some(SeriesType::Campaign)),
            ]
        );
        assert_eq!(
            plan.skipped[0].reason,
            SkipReason::OtherSeries {
                current: sid("60"),
                requested: sid("70"),
            }
        );
        assert_eq!(plan.deletions, Vec::<MeetupEventId>::new());
    }

    #[test]
    fn the_declared_type_wins_over_the_stored_one_for_a_single_event() {
        let mut view = SyncView::default();
        view.events
            .insert(eid("1"), tracked("dragons", "2026-01-03T18:00:00Z", "1"));
        view.series.insert(
            sid("1"),
            TrackedSeries {
                series_type: Some(SeriesType::Campaign),
                events: [eid("1"), eid("2")].into(),
            },
        );
        view.events
            .insert(eid("2"), tracked("dragons", "2026-01-05T18:00:00Z", "1"));
        // Session 2 was cancelled: one event left, declared an adventure.
        let plan = plan(
            &answer(vec![ev("1", 3, "[new adventure]", &[])]),
            &view,
            window(),
        );
        assert_eq!(plan.deletions, vec![eid("2")]);
        assert_eq!(
            series_of(&plan),
            vec![("1".into(), "1".into(), Some(SeriesType::Adventure))]
        );
    }

    #[test]
    fn the_token_is_refreshed_before_its_access_token_expires() {
        let now = t("2026-01-01T12:00:00Z");
        let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
        // Meetup's hour: refreshed a quarter of an hour before it ends.
        assert_eq!(next_token_refresh(now, hours(1)), t("2026-01-01T12:45:00Z"));
        // Long-lived tokens: every two days.
        assert_eq!(
            next_token_refresh(now, hours(24 * 30)),
            t("2026-01-03T12:00:00Z")
        );
        // Unknown lifetime, and a very short one (half of it).
        assert_eq!(
            next_token_refresh(now, std::time::Duration::ZERO),
            t("2026-01-03T12:00:00Z")
        );
        assert_eq!(
            next_token_refresh(now, std::time::Duration::from_secs(600)),
            t("2026-01-01T12:05:00Z")
        );
    }

    #[test]
    fn most_of_an_events_rsvps_gone_wait_for_a_second_run() {
        let u = |n: u64| MeetupUserId::new(n).unwrap();
        let stored: BTreeSet<MeetupUserId> = [u(1), u(2), u(3), u(4)].into();
        let none = BTreeSet::new();
        // Half go at once; a new player is added.
        assert_eq!(
            hold_mass_rsvp_removals(&stored, vec![u(3), u(4), u(5)], &none),
            (vec![u(3), u(4), u(5)], vec![])
        );
        // Three of four gone: all kept and held, unless the last run held them too.
        assert_eq!(
            hold_mass_rsvp_removals(&stored, vec![u(4)], &none),
            (vec![u(1), u(2), u(3), u(4)], vec![u(1), u(2), u(3)])
        );
        let pending: BTreeSet<MeetupUserId> = [u(1), u(2), u(9)].into();
        assert_eq!(
            hold_mass_rsvp_removals(&stored, vec![u(4)], &pending),
            (vec![u(3), u(4)], vec![u(3)])
        );
        // The only RSVP gone waits too; nothing stored, nothing to hold.
        let one: BTreeSet<MeetupUserId> = [u(1)].into();
        assert_eq!(
            hold_mass_rsvp_removals(&one, vec![], &none),
            (vec![u(1)], vec![u(1)])
        );
        assert_eq!(
            hold_mass_rsvp_removals(&BTreeSet::new(), vec![u(2)], &none),
            (vec![u(2)], vec![])
        );
    }

    #[test]
    fn more_than_half_gone_waits_for_a_second_run_to_confirm() {
        let mut view = SyncView::default();
        for (id, day) in [("1", 3), ("2", 4), ("3", 5), ("4", 6)] {
            view.events.insert(
                eid(id),
                tracked("dragons", &format!("2026-01-{day:02}T18:00:00Z"), id),
            );
        }
        // History outside the window does not dilute the count.
        for id in ["90", "91", "92", "93", "94"] {
            view.events
                .insert(eid(id), tracked("dragons", "2025-12-01T18:00:00Z", id));
        }
        let only_one = answer(vec![ev("4", 6, "[new adventure]", &[])]);

        let first = plan(&only_one, &view, window());
        assert_eq!(first.asked, 4);
        assert_eq!(first.deletions, Vec::<MeetupEventId>::new());
        assert_eq!(first.held, vec![eid("1"), eid("2"), eid("3")]);

        // The next run confirms what it still finds gone; a newly gone event waits.
        view.pending_deletions = [eid("1"), eid("2"), eid("9")].into();
        let second = plan(&only_one, &view, window());
        assert_eq!(second.deletions, vec![eid("1"), eid("2")]);
        assert_eq!(second.held, vec![eid("3")]);

        // Half or fewer go at once, whatever is pending.
        let half = answer(vec![
            ev("3", 5, "[new adventure]", &[]),
            ev("4", 6, "[new adventure]", &[]),
        ]);
        let third = plan(&half, &view, window());
        assert_eq!(third.deletions, vec![eid("1"), eid("2")]);
        assert!(third.held.is_empty());
    }

    #[test]
    fn hold_mass_deletions_splits_on_more_than_half() {
        let pending: BTreeSet<MeetupEventId> = [eid("a")].into();
        assert_eq!(
            hold_mass_deletions(vec![eid("a")], 2, &pending),
            (vec![eid("a")], vec![])
        );
        assert_eq!(
            hold_mass_deletions(vec![eid("a"), eid("b")], 3, &pending),
            (vec![eid("a")], vec![eid("b")])
        );
        assert_eq!(
            hold_mass_deletions(vec![eid("b")], 1, &BTreeSet::new()),
            (vec![], vec![eid("b")])
        );
        assert_eq!(hold_mass_deletions(vec![], 0, &pending), (vec![], vec![]));
    }

    #[test]
    fn a_role_shortcode_counts_only_on_a_tracked_event() {
        let extras = extras_of(&answer(vec![
            ev("1", 5, "Board games [role 5]", &[]),
            ev("2", 6, "[new adventure] [role 6]", &[]),
        ]));
        assert_eq!(extras.keys().collect::<Vec<_>>(), vec![&eid("2")]);
        assert_eq!(
            extras[&eid("2")].roles,
            vec![discord::model::RoleId::new(6)]
        );
    }

    #[test]
    fn a_horizon_beyond_chrono_saturates() {
        let w = SyncWindow::new(t("2026-01-01T00:00:00Z"), TimeDelta::MAX);
        assert!(w.contains(t("9999-01-01T00:00:00Z")));
        assert!(!w.contains(t("2025-12-31T00:00:00Z")));
    }
}
