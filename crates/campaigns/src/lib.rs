//! Campaigns: Meetup events become per-series Discord channels, roles and voice
//! channels; Discord users link their Meetup accounts; game channels expire, are
//! reminded and are deleted. The data lives in Redis exactly as the seed
//! `hyperion-redis-schema.md` lays it out; the behaviour follows
//! `reference/campaigns.md`.
//!
//! This crate is the feature's foundation: the keys, the rules and the repositories,
//! the consistency check, and the first step of the sync (Meetup → Redis) with its
//! job. The Discord commands, the web flows (organiser OAuth2, user linking), the
//! second step of the sync (Redis → Discord) and the lifecycle job build on it and are
//! still to come.
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
//!   relation of the seed.
//! - [`sync`]: the Meetup sync, step 1 (Meetup → Redis): [`sync::plan`] decides
//!   without I/O what to store, delete and skip; [`sync_once`] gathers, plans and
//!   writes through [`Repo`], refreshing the organiser token once if Meetup refuses
//!   it.
//! - [`jobs`]: [`jobs::meetup_sync`] runs [`sync_once`] every 15 minutes
//!   ([`CampaignsConfig::sync_every`]) and at start-up.
//! - [`config`]: [`CampaignsConfig`], the OAuth2 app, Meetup endpoints, group urlnames,
//!   the sync's horizon and period.
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
//!   (adventure) or 3 days (campaign) after it and repeat every 2 or 4 days less two
//!   hours (the daily job drifts; the slack keeps a reminder from slipping a whole day).
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
//!   id is an error naming the shortcode and its byte offset. `[role]` applies to any
//!   event, tracked or not; `[channel]` only with `[new adventure]` / `[new campaign]`.
//! - **The Meetup sync** names a series after the event that started it, deletes only
//!   events of the groups Meetup answered for whose stored time lies in the window it
//!   asked about, keeps skipped events as stored, and refreshes a refused organiser
//!   token once; every rule is in [`sync`]'s docs.
//!
//! # Redis Cluster
//! The seed's key names carry no hash tags, so the keys of one relation (say
//! `meetup_user:1:discord_user` and `discord_user:2:meetup_user`) land in different
//! slots, and a multi-key transaction over them is refused by a cluster (`CROSSSLOT`).
//! The names are the spec and stay; the consequence is that the campaigns need a single
//! Redis server (or a cluster with one shard). Moving to a cluster would need a key
//! migration to hash-tagged names, decided in the seed first.

pub mod check;
pub mod config;
pub mod domain;
pub mod jobs;
pub mod repo;
pub mod schema;
pub mod sync;

pub use config::CampaignsConfig;
pub use domain::{
    ChannelLifecycle, EndAdventureError, EventSeriesId, EventShortcodes, LinkingId, MeetupEventId,
    MeetupUserId, SeriesShortcode, SeriesType, ShortcodeError, SnoozeDays, SnoozeError, TopicError,
    TransientUserId, VoiceChannelTopic, end_adventure, parse_shortcodes,
};
pub use repo::{Repo, RepoError};
pub use sync::{SyncError, SyncReport, sync_once};

/// The campaigns as a [`feature::Feature`]: the consistency check of their data and,
/// given a [`CampaignsConfig`] with at least one group, the Meetup sync job
/// ([`jobs::SYNC_JOB`], every [`CampaignsConfig::sync_every`] and once right after
/// start-up). Without a config (or without groups) there is nothing to sync, and
/// Tavern runs without the job rather than failing every 15 minutes.
pub fn feature(ctx: &feature::Context, config: Option<CampaignsConfig>) -> feature::Feature {
    let mut feature =
        feature::Feature::new("campaigns").check(check::campaigns_check(ctx.redis.clone()));
    match config {
        Some(config) if config.has_groups() => {
            feature = feature.job(jobs::meetup_sync(
                Repo::new(ctx.redis.clone()),
                config,
                ctx.clock.clone(),
            ));
        }
        Some(_) => tracing::info!("no Meetup group configured: the Meetup sync is off"),
        None => {}
    }
    feature
}
