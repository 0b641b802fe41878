//! Campaigns: Meetup events become per-series Discord channels, roles and voice
//! channels; Discord users link their Meetup accounts; game channels expire, are
//! reminded and are deleted. The data lives in Redis exactly as the seed
//! `hyperion-redis-schema.md` lays it out; the behaviour follows
//! `reference/campaigns.md`.
//!
//! The crate holds the keys, the rules and the repositories, the consistency check, the
//! sync (Meetup → Redis, then Redis → Discord) with its job, and the Discord commands,
//! web flows and lifecycle job built on them.
//!
//! # Built from the kit
//! [`feature()`] is the one entry point the binary calls:
//! `campaigns::feature(&ctx, config.meetup.clone())` with the shared
//! [`feature::Context`] and an optional [`CampaignsConfig`]. It hands back the check
//! ([`feature::Check`] named `campaigns`) and, with at least one Meetup group, the
//! sync job ([`jobs::SYNC_JOB`], a [`feature::Job`] that also runs right after
//! start-up). Ids are made with [`base::key_id!`] (the linking and transient browser
//! ids as redacted `secret` ids), tokens are [`base::Secret`]s, Discord ids are
//! `discord::model`'s, storage failures are [`store::StorageError`]s inside
//! [`RepoError`], and [`RepoError::handler_error`] is the one mapping of the
//! campaigns' errors to a Discord reply (the storage part through
//! [`feature::reply`]).
//!
//! # Rooms
//! - [`domain`]: typed ids ([`MeetupEventId`], [`EventSeriesId`], [`MeetupUserId`],
//!   the one-time [`LinkingId`] and [`TransientUserId`]; Discord ids are
//!   `discord::model`'s) and pure rules: the shortcode parser ([`parse_shortcodes`]),
//!   series types, the channel lifecycle ([`ChannelLifecycle`], [`end_adventure`],
//!   [`SnoozeDays`]) and the user-topic voice channel's name ([`VoiceChannelTopic`]).
//!   No I/O, and nothing from the other rooms.
//! - [`schema`]: every key of the seed, in one place, named as in the seed: functions
//!   taking [`domain`]'s typed ids for the per-id keys, constants for the fixed keys
//!   and hash fields, each documented with its Redis type and inverse. No other module
//!   spells a key. It depends on [`domain`], never the reverse.
//! - [`repo`]: [`Repo`], the repositories over [`schema`], one file per aggregate
//!   (links, linking ids and CSRF tokens, organiser tokens, events, series, channels
//!   and roles, lifecycle, removals, orphans, managed channels). Every change to more
//!   than one key is one atomic step (see the module docs).
//! - [`check`]: the consistency check run by `tavern check`: every broken inverse
//!   relation of the seed; with a bot token, game channels Discord no longer has or
//!   Tavern may not see, or that Tavern is not in the server.
//! - [`sync`]: the Meetup sync, step 1 (Meetup → Redis): [`sync::plan`] decides
//!   without I/O what to store, delete and skip; [`sync_once`] gathers, plans and
//!   writes through [`Repo`], refreshing the organiser token once if Meetup refuses
//!   it.
//! - [`discord_sync`]: the sync, step 2 (Redis → Discord): [`discord_sync::plan_series`]
//!   decides without I/O what a series needs (create, edit, grant, revoke, announce,
//!   or nothing); [`sync_discord`] reads Redis ([`Repo::discord_view`], pipelined) and
//!   the guild, deletes orphans, applies the plans (undoing creations whose
//!   registration is refused) and keeps the free-spots message up to date.
//! - [`jobs`]: [`jobs::sync_job`] runs [`jobs::sync_all`] (step 1, then step 2 with
//!   Discord settings) every 15 minutes ([`CampaignsConfig::sync_every`]) and at
//!   start-up, one run at a time across replicas (the job's Redis lock, and the sync
//!   guard every whole sync takes and renews while it runs).
//! - [`config`]: [`CampaignsConfig`], the OAuth2 app, Meetup endpoints, group urlnames,
//!   the sync's horizon and period.
//! - [`web`]: the web flows on Tavern's sessions and pages: the organiser's Meetup
//!   authorisation with the token refresh job ([`web::organiser::token_refresh`]),
//!   linking a Meetup account with the one-time id ([`web::linking`]), and the
//!   schedule-next-session form of a game channel ([`web::schedule`]).
//! - [`commands`]: the slash commands (everybody, the hosts of a game in its channel,
//!   admins), each refusing privately whoever may not use it.
//! - [`lifecycle`]: the locked [`lifecycle::lifecycle_job`], every 15 minutes: expiration,
//!   reminders, deletion of ended games, alerts to the organisers.
//! - [`topic`]: `/topic` and the periodic reset of the user-topic voice channel.
//!
//! # Choices where the seed is silent or contradicts itself
//! - **`discord_roles: set of 64`** is read as a set of u64, like every other id set.
//! - **`event_series:{}:type` and `event_series:{}:is_online`** stay separate string
//!   keys, as written (the seed muses they belong in a hash; its names win). `is_online`
//!   is stored as `"true"`; absent or anything else is false. A sync only ever sets it
//!   (a later session without `[online]` keeps the voice channel).
//! - **`orphaned_discord_roles`** is the seed's name (the original code wrote
//!   `orphaned_roles`; the seed wins).
//! - **TTLs** come from the behaviour doc, as the seed gives none: a linking id lives one
//!   day until opened (the original set none, so unused ids piled up forever), 10 minutes
//!   once opened (`GETEX`), and is consumed by `GETDEL`; `csrf:{}` lives one hour and is
//!   also taken with `GETDEL` (one callback per token). Every other key is permanent.
//! - **Times** are RFC 3339 strings (`DateTime::to_rfc3339`), as the seed says for an
//!   event's `time` and the token refresh time; every time key uses the same format.
//! - **Linking a user already linked elsewhere is refused**, on either side, with the
//!   other party named in the error. Silently moving a link would hand one person's game
//!   access to another; the old link is removed on purpose first. Linking the same pair
//!   again succeeds and rewrites all four keys (repairing a missing set membership).
//!   Unlinking removes both 1:1 keys, both set memberships and the Meetup user's own
//!   OAuth2 tokens (given for that link); a side that points at somebody else is left
//!   alone (it belongs to another link).
//! - **An event keeps its series**: an upsert naming another series than the stored one
//!   is refused (the original skipped such events too).
//! - **Deleting an event** removes its hash, hosts, RSVPs and series relation in both
//!   directions. Its series goes with it only when that was its last event and the
//!   series has no text or voice channel; a series with a channel stays, so the channel
//!   expires "now" and goes through the reminders and deletion like any other
//!   ([`Repo::remove_series`] then removes every key of the series).
//! - **Registering a channel, voice channel or roles** is refused when the series is no
//!   longer tracked, already has another channel, or the channel / role belongs to
//!   someone else: the caller that just created the Discord object lost a race and
//!   deletes it again (or records it as an orphan).
//! - **Expiration** is the time of the series' last event; reminders start 1 day
//!   (adventure) or 3 days (campaign) after it and repeat every 2 or 4 days (the job
//!   runs every quarter hour, so each comes within 15 minutes of its time).
//!   A reminder from before the current expiration does not count. (The original
//!   stored the expiration with the 1 or 3 days already added; we store the last
//!   event's time, as the behaviour doc says, and add the delay when reminding, so the
//!   reminders fall at the same moments.) A changed
//!   expiration clears the deletion time of the text channel and of the series' voice
//!   channel in the same step. `end adventure` is decided inside the transaction on the
//!   stored expiration, is refused twice, and sets the deletion time of the text and
//!   voice channel (the voice channel's own key; the original wrote the voice
//!   channel's deletion time under the text channel's id).
//! - **Which writes check the channel**: `set_expiration` and `end_adventure` refuse a
//!   channel that is not a game channel (they would otherwise create lifecycle keys
//!   for nothing). The single-key writes (snooze, reminder time, manual removals,
//!   orphans, managed channels) are plain writes; the commands check the channel first.
//! - **A series without a stored type** counts as an adventure; a series with more than
//!   one event is a campaign ([`SeriesType::after_sync`]).
//! - **Shortcodes** are case-insensitive and whitespace-tolerant. A keyword followed by
//!   more than one word is prose, not a shortcode; a keyword with a missing or malformed
//!   id is an error naming the shortcode and its byte offset. `[channel]` is read only
//!   with `[new adventure]` / `[new campaign]`. `[role]` and `[channel]` are not
//!   trusted: `[channel]` takes over only a managed channel (`/manage-channel`), which
//!   the lifecycle then keeps when the game ends, and `[role]` never hands out the
//!   admin or organiser role, `@everyone` or a game's own roles ([`discord_sync`]'s
//!   "Shortcodes").
//! - **The Discord sync** (step 2) counts a session until 12 hours after its start
//!   ([`domain::SESSION_GRACE`]: the seed keeps no end), so players keep the channel
//!   while they play, makes a game channel private, names channels and
//!   roles after the next session's title once, places channels in the first
//!   configured category with room (50 channels), revokes the guest role only from
//!   those it gave it to, never revokes the host role, and makes no Discord request
//!   for a series whose state did not change; every rule is in [`discord_sync`]'s
//!   docs. Its additions to the seed are Tavern's own keys, in [`schema`]:
//!   `tavern:campaigns:free_spots_message` (the free-spots message, edited in
//!   place), `tavern:campaigns:synced_guests:{channel}` (who got the guest role from
//!   an RSVP), `tavern:campaigns:refused_shortcodes` (refused shortcodes the
//!   organisers were told about), `tavern:campaigns:unannounced:{channel}`
//!   (newcomers whose announcement is owed) and `tavern:campaigns:welcomed:{channel}`
//!   (who was welcomed, so a player who unlinks and links again is not welcomed
//!   twice). `[channel]`, `[role]` and Meetup's RSVP limit are
//!   not stored (the seed has no key for them): step 1 hands them to step 2
//!   ([`SyncReport::extras`]), so step 2 runs only after a step 1 that ran. Listing
//!   the guild's members needs the bot's Server Members intent.
//! - **The Meetup sync** names a series after the event that started it, deletes only
//!   events of the groups Meetup answered for whose stored time lies in the window it
//!   asked about, keeps skipped events as stored, adds the players an RSVP list names
//!   but removes nobody when Meetup lists fewer than it counts (the report names the
//!   event), removes more than half of a session's RSVPs only when the next run
//!   confirms it (Tavern's key `tavern:campaigns:pending_rsvp_removals`), and
//!   refreshes a refused organiser token once; every rule is in [`sync`]'s docs.
//! - **Who is a host** of a game: a member holding its host role, or a member linked
//!   to a Meetup host of one of the series' events; admins may use the host commands
//!   too. Admins are the holders of `campaigns_admin_role`; without one configured,
//!   nobody is (the admin commands say so). The interaction carries no roles, so a
//!   command that needs them asks Discord for the member.
//! - **`/players`** works on the guest role: `add` gives it, forgets a manual
//!   removal and that the sync gave it (one step, so the sync does not take it
//!   back), `remove` records the removal (`removed_users`) and takes the role;
//!   `/hosts` the same with the host role and `removed_hosts`. `/players list` is
//!   private: RSVPs, Meetup hosts and manual removals from Redis, and who holds the
//!   player role without an RSVP or hosting on Meetup (added by hand) from the
//!   guild's member list (Discord has no list of a role's members: one request per
//!   1,000 members, with the Server Members intent the sync needs anyway; without
//!   it, the reply says the members with the role are the ones added by hand).
//! - **Mentions**: refusals and look-ups are private; a public answer notifies only
//!   the person it adds, a reminder only the game's host role, `/end-adventure` and
//!   the schedule form's announcement of a new session only the game's player
//!   (guest) role ([`lifecycle::players_notified`]), an alert nobody.
//! - **The lifecycle job** (every 15 minutes, so `/end-adventure`'s deletion time
//!   holds to the quarter hour, and once at start-up; a reminder is due only its
//!   interval after the last, however often the job runs) keeps each channel's
//!   expiration at its series' last event; a series without events keeps the
//!   expiration it has (setting "now" at every run would move it each time, and a moved
//!   expiration clears a scheduled deletion). A deletion removes the text and voice
//!   channel and both roles on Discord first (a 404 counts as done; other failures go
//!   to the `orphaned_*` sets; a managed channel a series took over with `[channel]`
//!   is kept, not deleted, and loses only the bot's overwrite), then every key of the series in one step, and tells
//!   the organisers. `/end-adventure` also alerts them. A game channel an admin
//!   closed to Tavern (Discord's 403) is no failure of the run: a reminder Discord
//!   refuses is a skipped line each run and one alert (the sync's record,
//!   `tavern:campaigns:closed_channels`), and a deletion it refuses is held whole
//!   (nothing deleted, nothing forgotten, tried again each run) with one alert that
//!   an admin must delete the channel or give Tavern Manage Channels back
//!   (`tavern:campaigns:undeletable_channels`); see [`lifecycle`].
//! - **`/sync`** runs the whole sync at once and answers what it did in a sentence
//!   or two ([`jobs::FullReport::summary`]: channels set up, roles given or taken,
//!   welcomes, sessions gone from Meetup; that nothing needed changing only when
//!   nothing failed or was left alone, else that it changed nothing; then what
//!   failed or was left alone and where to look), without the job's lock but under the
//!   sync guard (Tavern's key `tavern:campaigns:sync:running`) that every whole sync
//!   takes, the scheduled job's and `tavern campaigns sync --once` too: while another
//!   sync runs, `/sync` says so and does nothing. A running sync renews the guard
//!   (it expires after 10 minutes unrenewed, should its process die); one that finds
//!   it lost logs it and stops its Discord writes ([`jobs`]). Before any organiser
//!   authorised Tavern, `/sync` says so and links the organiser page
//!   (`/campaigns/organiser`); the scheduled job waits quietly.
//! - **`/link`** (an admin's link by hand) asks Meetup first whether the member id is a
//!   member of one of the configured groups (Meetup's API looks members up only
//!   within a group, [`sync::find_member`]); an id Meetup does not know, or a Meetup
//!   that cannot be asked (down, no organiser authorisation), is refused and no link
//!   is stored. The fake Meetup answers an unknown id as Meetup does: no member.
//! - **`/link-meetup`** is refused for a user already linked (unlink first), matching
//!   the repository's refusal to move a link silently.
//! - **The topic voice channel** is reset by a periodic check (every minute, locked):
//!   who is connected comes from the gateway's voice states ([`topic::VoiceTracker`]
//!   keeps them in Tavern's key `tavern:campaigns:topic_voice_channel:connected`, so
//!   the replica holding the job lock knows, whichever runs the guild's shard); in use
//!   while anyone is connected, reset once it has been empty for two minutes (the
//!   tracker records when it emptied in `tavern:campaigns:topic_voice_channel:empty_since`,
//!   under the controllable clock; a join removes it) and the topic is two minutes old.
//!   Should Redis not
//!   answer, a custom topic counts as in use for an hour after it was set. `/topic` is
//!   refused within 5
//!   minutes of the last one (Discord allows two renames per 10 minutes; one is kept
//!   for the reset).
//! - **One Meetup callback for both web flows** (`/campaigns/meetup/callback`, the one
//!   redirect URI an OAuth client registers). The flow cookie says which flow it is
//!   (a transient browser id, plus the linking id when linking); the OAuth `state` is
//!   the CSRF token stored under `csrf:{transient id}`. It is compared in constant
//!   time and only then taken (a compare-and-delete on the value read, so one token
//!   answers one callback); a forged `state` writes nothing, not even the genuine
//!   token's deletion.
//! - **Who counts as an organiser**: the organiser, co-organisers and assistant
//!   organisers of a group (they see every RSVP and may create events); an event
//!   organiser or a member is refused. Any signed-in Tavern user may start the
//!   authorisation: Meetup's answer about the groups is the gate.
//! - **The organiser token's refresh** is a job that looks every 10 minutes (and at
//!   start-up) at `meetup_access_token_refresh_time`; due, it refreshes and stores the
//!   new pair with the next time 2 days on, or a quarter of an hour before the new
//!   access token expires when Meetup's `expires_in` says that is sooner (Meetup's
//!   access tokens last an hour), only if the spent refresh token is still
//!   the stored one (a newer authorisation wins); failed, the next try is 1 hour on
//!   (for that pair only). The job, the sync and the schedule form refresh under one
//!   lock (Tavern's key `tavern:campaigns:meetup_token_refresh_lock`): the job skips a
//!   run while someone else refreshes, the others wait for it and use the pair it
//!   stored. When Meetup refuses the authorisation itself (the refresh grant refused
//!   with `invalid_grant`, by this job or the sync, or a freshly refreshed token
//!   refused again), it is recorded in Tavern's key
//!   `tavern:campaigns:meetup_authorisation_refused`: the organiser page says "Meetup
//!   refused Tavern's authorisation on \<date\>: authorise again", the organisers are
//!   told once in the alerts channel (by one replica, under
//!   `tavern:campaigns:meetup_refusal_alert_lock`; a send Discord refused is tried
//!   again at the next run), and the refused pair is not refreshed again. An organiser
//!   authorising again, or a Meetup call with the token that works, clears it. Meetup
//!   refusing Tavern's own client (`invalid_client`) is logged as an error naming the
//!   `meetup_client_id` / `meetup_client_secret` settings, not recorded or alerted; a
//!   429 or other answer from the token endpoint is a failure retried later.
//! - **Linking keeps no user tokens**: only who the Meetup account is matters, so
//!   `meetup_user:{}:oauth2_tokens` is not written by the web flow. Opening the linking
//!   page starts the id's 10 minutes (the button only checks it again).
//! - **Scheduling the next session** is for a signed-in user whose linked Meetup
//!   account hosts one of the series' events, or who holds the admin role (Discord is
//!   asked at each request). It copies the series' latest event as Meetup has it
//!   (hosts, duration, seats, online), as "Session N+1" (N the highest number after
//!   "Session" in the titles of the series' sessions, tracked or just created, whatever
//!   their dates; else the number of those sessions), with `[campaign
//!   <series>]` replacing the series shortcode and without `[channel]`; the date and
//!   time are read in the Meetup group's time zone, that day's offset (a time the clocks
//!   skip is refused), else in the latest event's offset. The event is created published,
//!   without an RSVP of the organiser, and sent once (no retry after a server error,
//!   which could create it twice); the next sync stores it like any other. A session
//!   is created once: a start at which the series already has an event is refused,
//!   and the form sent twice creates one event (Tavern's key
//!   `tavern:campaigns:scheduled_session:{series}:{start}`, kept a day, claims it
//!   first; a creation Meetup gave no clear answer to, a timeout or a 5xx, keeps the
//!   claim for an hour and tells the host to check Meetup before trying again). A
//!   session the form created counts at once, before the sync stores it (Tavern's
//!   key `tavern:campaigns:created_sessions:{series}`, kept a day): the form then
//!   offers the session after it and copies it ([`web::schedule`]).
//!
//! # Redis Cluster
//! The seed's key names carry no hash tags, so the keys of one relation (say
//! `meetup_user:1:discord_user` and `discord_user:2:meetup_user`) land in different
//! slots, and a multi-key transaction over them is refused by a cluster (`CROSSSLOT`).
//! The names are the spec and stay; the consequence is that the campaigns need a single
//! Redis server (or a cluster with one shard). Moving to a cluster would need a key
//! migration to hash-tagged names, decided in the seed first.

pub mod check;
pub mod commands;
pub mod config;
pub mod discord_sync;
pub mod domain;
pub mod jobs;
pub mod lifecycle;
pub mod repo;
pub mod schema;
pub mod standing;
pub mod sync;
pub mod topic;
pub mod web;

pub use config::CampaignsConfig;
pub use discord_sync::{DiscordReport, DiscordSyncError, DiscordTally, StopSignal, sync_discord};
pub use domain::{
    ChannelLifecycle, EndAdventureError, EventSeriesId, EventShortcodes, LinkingId, MeetupEventId,
    MeetupUserId, SeriesShortcode, SeriesType, ShortcodeError, SnoozeDays, SnoozeError, TopicError,
    TransientUserId, VoiceChannelTopic, end_adventure, parse_shortcodes,
};
pub use repo::{Repo, RepoError};
pub use sync::{EventExtras, SyncError, SyncReport, sync_once};

/// The campaigns as a [`feature::Feature`]: the consistency check of their data and,
/// given a [`CampaignsConfig`] with at least one group, the Meetup sync job
/// ([`jobs::SYNC_JOB`], every [`CampaignsConfig::sync_every`] and once right after
/// start-up). Without a config (or without groups) there is nothing to sync, and
/// Tavern runs without the job rather than failing every 15 minutes. With
/// [`CampaignsConfig::discord`] it also hands back the slash commands
/// ([`commands`]), the [`lifecycle::lifecycle_job`] and, with a topic voice
/// channel, the [`topic::reset_job`].
pub fn feature(ctx: &feature::Context, config: Option<CampaignsConfig>) -> feature::Feature {
    let config = config.map(|config| config.at_site(&ctx.public_url));
    let mut feature = feature::Feature::new("campaigns").check(check::campaigns_check_with(
        ctx.redis.clone(),
        ctx.discord.clone(),
        config
            .as_ref()
            .and_then(|c| c.discord.as_ref())
            .map(|s| s.guild),
    ));
    // The Discord side: the commands, the lifecycle and the topic channel's reset.
    if let Some((config, settings)) = config
        .as_ref()
        .and_then(|c| c.discord.clone().map(|s| (c, s)))
    {
        let repo = Repo::new(ctx.redis.clone());
        feature = commands::add(feature, ctx, config, settings.clone())
            .bot_permissions(discord_sync::BOT_PERMISSIONS);
        if let Some(job) = topic::reset_job(
            repo.clone(),
            ctx.discord.clone(),
            &settings,
            std::sync::Arc::new(topic::GatewayVoice::new(repo.clone())),
            ctx.clock.clone(),
        ) {
            feature = feature.job(job);
        }
        if let Some(tracker) = topic::VoiceTracker::new(repo.clone(), &settings, ctx.clock.clone())
        {
            feature = feature.events(std::sync::Arc::new(tracker));
        }
        feature = feature.job(lifecycle::lifecycle_job(
            repo,
            ctx.discord.clone(),
            settings,
            ctx.clock.clone(),
        ));
    }
    match config {
        Some(config) if config.has_groups() => {
            let web_config = config.clone();
            feature = feature.job(jobs::sync_job(
                Repo::new(ctx.redis.clone()),
                config,
                ctx.clock.clone(),
                ctx.discord.clone(),
            ));
            // The web flows and the organiser token's refresh job, after the sync job.
            feature = web::add(feature, ctx, &web_config);
        }
        Some(_) => tracing::info!("no Meetup group configured: the Meetup sync is off"),
        None => {}
    }
    feature
}
