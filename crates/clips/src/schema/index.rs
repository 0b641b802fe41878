//! Tavern's addition to the seed: the clip index, table `clips`, one row per video
//! attachment found in a channel (the seed's tables say which channels are read and how
//! far; this table holds what was found there). Its migration and every statement that
//! writes or reads it for ingestion live here; the library's queries are in
//! [`super::library`].
//!
//! - **One row per attachment, ever**: the primary key is Discord's attachment id, and
//!   every insert is `ON CONFLICT (attachment_id) DO NOTHING` (or an update of the same
//!   row), so no scan, rescan or gateway event can index one twice.
//! - A clip belongs to its channel and its guild: deleting either (the bot left, the
//!   channel was deleted) deletes its clips (`ON DELETE CASCADE`).
//! - `posted_at` is the message's time; the library pages by `(posted_at,
//!   attachment_id)` descending, which the two `*_posted` indexes serve.
//! - Search by file name and message text is a case-insensitive substring match served
//!   by a trigram index (`pg_trgm`, created in `public` like `pgcrypto`, for the same
//!   reason: an extension exists once per database).
//! - `url_expires_at` is when Discord's signed CDN URL stops working (its `ex`
//!   parameter); a page refreshes URLs that expired or are about to.

/// Version 2: the clip index.
pub const V2_CLIP_INDEX: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

CREATE TABLE clips (
    attachment_id  text PRIMARY KEY,
    message_id     text NOT NULL,
    channel_id     text NOT NULL REFERENCES bot_channels (channel_id) ON DELETE CASCADE,
    guild_id       text NOT NULL REFERENCES bot_guilds (guild_id) ON DELETE CASCADE,
    author_id      text NOT NULL,
    author_name    text NOT NULL DEFAULT '',
    posted_at      timestamptz NOT NULL,
    filename       text NOT NULL,
    content_type   text,
    size_bytes     bigint NOT NULL,
    width          integer,
    height         integer,
    duration_secs  double precision,
    url            text NOT NULL,
    proxy_url      text,
    url_expires_at timestamptz,
    message_text   text NOT NULL DEFAULT '',
    indexed_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_clips_message ON clips (channel_id, message_id);
CREATE INDEX idx_clips_guild_posted ON clips (guild_id, posted_at DESC, attachment_id DESC);
CREATE INDEX idx_clips_channel_posted ON clips (channel_id, posted_at DESC, attachment_id DESC);
CREATE INDEX idx_clips_author_posted ON clips (guild_id, author_id, posted_at DESC, attachment_id DESC);
CREATE INDEX idx_clips_search ON clips
    USING gin ((lower(filename || ' ' || message_text)) public.gin_trgm_ops);
"#;

// Clip arrays: every statement that indexes clips takes them as its first fifteen
// parameters, parallel arrays in this order: `$1` attachment ids, `$2` message ids, `$3`
// author ids, `$4` author names, `$5` posted at, `$6` file names, `$7` MIME types, `$8`
// sizes, `$9` widths, `$10` heights, `$11` durations, `$12` URLs, `$13` proxy URLs,
// `$14` URL expiries, `$15` message texts. Each statement's own parameters follow from
// `$16`. The channel and guild come from the statement's `channel` CTE.

/// The CTE `found` that inserts the clip arrays (`$1`..`$15`) into the channel of the
/// statement's `channel` CTE (none when it has no row), one row back per new clip.
macro_rules! insert_found_clips {
    () => {
        "found AS (
    INSERT INTO clips.clips (attachment_id, message_id, channel_id, guild_id, author_id,
        author_name, posted_at, filename, content_type, size_bytes, width, height,
        duration_secs, url, proxy_url, url_expires_at, message_text)
    SELECT t.attachment_id, t.message_id, channel.channel_id, channel.guild_id, t.author_id,
        t.author_name, t.posted_at, t.filename, t.content_type, t.size_bytes, t.width,
        t.height, t.duration_secs, t.url, t.proxy_url, t.url_expires_at, t.message_text
    FROM channel, UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
        $5::timestamptz[], $6::text[], $7::text[], $8::int8[], $9::int4[], $10::int4[],
        $11::float8[], $12::text[], $13::text[], $14::timestamptz[], $15::text[])
        AS t(attachment_id, message_id, author_id, author_name, posted_at, filename,
             content_type, size_bytes, width, height, duration_secs, url, proxy_url,
             url_expires_at, message_text)
    ON CONFLICT (attachment_id) DO NOTHING
    RETURNING 1
)"
    };
}

/// A page of a running scan (whole run or one part), written by [`RECORD_PAGE`] and
/// [`RECORD_PART_PAGE`] alike: the statement's parameters after the clip arrays. `$16`
/// run id, `$17` messages read in this page (inside the window), `$18` of which matched,
/// `$19` the newest message id of the page (may be null), `$20` the newest message time
/// of the page (may be null); each statement's own from `$21`.
///
/// `run_page!("…")` is a page's statement whose CTE `run` is the running run after the
/// page (its update given: it must `RETURNING` `run_columns!` and write nothing unless
/// the run is `running`), then the channel's `message_count` / `last_message_id` /
/// `last_scanned_at` / `last_activity_at` and the page's clips. One statement, so one
/// transaction: all move together or not at all, and a run no longer running gets no row
/// back. `last_message_id` only moves forward (snowflakes compared as numbers);
/// `last_activity_at` only moves later.
macro_rules! run_page {
    ($run:literal) => {
        concat!(
            $run,
            "
    RETURNING ",
            run_columns!(),
            "
), channel AS (
    UPDATE clips.bot_channels c
    SET message_count = c.message_count + $17,
        last_scanned_at = now(),
        last_message_id = CASE
            WHEN $19::text IS NOT NULL
                 AND (c.last_message_id IS NULL OR c.last_message_id::numeric < $19::numeric)
            THEN $19::text
            ELSE c.last_message_id END,
        last_activity_at = GREATEST(c.last_activity_at, $20::timestamptz)
    FROM run WHERE c.channel_id = run.channel_id
    RETURNING c.channel_id, c.guild_id
), ",
            insert_found_clips!(),
            "
SELECT run.* FROM run"
        )
    };
}

/// Run first in a history page's transaction: its commit returns without waiting for
/// the write-ahead log to reach the disk (see `Repo::record_page` for why that is safe
/// for pages, and only for them).
pub(crate) const PAGE_COMMIT: &str = "SET LOCAL synchronous_commit TO off";

/// The clip arrays (`$1`..`$15`), the page (`$16`..`$20`, see `run_page!`), then `$21`
/// / `$22` the window still to read (after, before). A process killed between pages
/// loses no clip and counts no message twice: the run resumes from the window of the last
/// page written. Nothing is written unless the run is still `running`, so a canceled
/// run's worker sees its next page refused (no row back) and stops. With no clips and no
/// newest time it records progress alone.
pub(crate) const RECORD_PAGE: &str = run_page!(
    "WITH run AS (
    UPDATE clips.bot_channel_scan_runs
    SET messages_scanned = messages_scanned + $17,
        messages_matched = messages_matched + $18,
        after_message_id = $21,
        before_message_id = $22
    WHERE id = $16::uuid AND status = 'running'"
);

/// The clip arrays (`$1`..`$15`), then `$16` channel_id, `$17` message id, `$18` the
/// message's time. A message seen live: only in a channel being read (one indexed
/// look-up by primary key; elsewhere nothing is written), its clips are indexed and the
/// channel's `message_count`, `last_message_id` (forward only) and `last_activity_at`
/// move, in one statement. Returns whether the channel is read and how many clips were
/// new.
pub(crate) const INDEX_LIVE_MESSAGE: &str = concat!(
    "WITH channel AS (
    UPDATE clips.bot_channels c
    SET message_count = c.message_count + 1,
        last_message_id = CASE
            WHEN c.last_message_id IS NULL OR c.last_message_id::numeric < $17::numeric
            THEN $17::text
            ELSE c.last_message_id END,
        last_activity_at = GREATEST(c.last_activity_at, $18::timestamptz)
    WHERE c.channel_id = $16 AND c.is_reading
    RETURNING c.channel_id, c.guild_id
), ",
    insert_found_clips!(),
    "
SELECT (SELECT count(*) FROM channel) > 0 AS reading, (SELECT count(*) FROM found) AS added"
);

/// The clip arrays (`$1`..`$15`: the clips among the message's attachments), then `$16`
/// channel_id, `$17` message id, `$18` the message's text after the edit (null: not
/// given, kept), `$19` the ids of every attachment the message holds now (text[]). An
/// edited message: its clips whose attachment is gone are deleted, the ones still there
/// get the new text, new clips are indexed (only in a channel being read); one
/// statement. Returns how many were removed and added.
pub(crate) const REPLACE_MESSAGE_CLIPS: &str = concat!(
    "WITH channel AS (
    SELECT c.channel_id, c.guild_id FROM clips.bot_channels c
    WHERE c.channel_id = $16 AND c.is_reading
), gone AS (
    DELETE FROM clips.clips
    WHERE channel_id = $16 AND message_id = $17 AND attachment_id <> ALL ($19::text[])
    RETURNING 1
), kept AS (
    UPDATE clips.clips SET message_text = COALESCE($18, message_text)
    WHERE channel_id = $16 AND message_id = $17 AND attachment_id = ANY ($19::text[])
    RETURNING 1
), ",
    insert_found_clips!(),
    "
SELECT (SELECT count(*) FROM gone) AS removed, (SELECT count(*) FROM found) AS added"
);

/// `$1` channel_id, `$2` message id: a deleted message's clips.
pub(crate) const DELETE_MESSAGE_CLIPS: &str =
    "DELETE FROM clips.clips WHERE channel_id = $1 AND message_id = $2";

/// `$1` channel_id, `$2` message ids (text[]): a bulk delete's clips, one statement.
pub(crate) const DELETE_MESSAGES_CLIPS: &str =
    "DELETE FROM clips.clips WHERE channel_id = $1 AND message_id = ANY ($2::text[])";

/// `$1` channel_id: how many clips the channel holds (served by `idx_clips_message`).
pub(crate) const COUNT_CHANNEL_CLIPS: &str =
    "SELECT count(*) FROM clips.clips WHERE channel_id = $1";

/// `$1` channel_id, `$2` message id: the attachment ids indexed for the message.
pub(crate) const SELECT_MESSAGE_CLIP_IDS: &str = "\
SELECT attachment_id FROM clips.clips WHERE channel_id = $1 AND message_id = $2
ORDER BY attachment_id::numeric";

// ---------------------------------------------------------------------------------------
// Scan coordination

/// `$1` channel_id. Serialises the requests for one channel's scans for the rest of the
/// transaction (a transaction-level advisory lock, keyed by a 64-bit hash of a name of
/// its own), so two requests cannot both see "no unfinished run" and queue two.
pub(crate) const LOCK_CHANNEL_REQUESTS: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('clips.scan-request:' || $1, 0))";

/// `$1` channel_id. Takes the channel's scan lock for the session if it is free: a
/// session-level advisory lock, held by the connection running the channel's scan for
/// the whole run. It vanishes with that connection, so a killed worker's lock is gone
/// the moment its connection closes. Returns whether it was taken.
pub(crate) const TRY_LOCK_CHANNEL_SCAN: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('clips.scan:' || $1, 0))";

/// `$1` channel_id. Releases [`TRY_LOCK_CHANNEL_SCAN`]'s lock.
pub(crate) const UNLOCK_CHANNEL_SCAN: &str =
    "SELECT pg_advisory_unlock(hashtextextended('clips.scan:' || $1, 0))";

/// `$1` channel_id: the channel's newest run that is queued or running, if any.
pub(crate) const SELECT_UNFINISHED_RUN: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM clips.bot_channel_scan_runs
WHERE channel_id = $1 AND status IN ('queued', 'running')
ORDER BY created_at DESC LIMIT 1"
);

/// `$1` channel_id: what choosing a scan's window needs (`domain::ScanStart`), read
/// under the channel's request lock ([`LOCK_CHANNEL_REQUESTS`]): its `last_message_id`,
/// whether it is read (a manager's scan needs it), and whether a scan that read its history down to the start succeeded since its index
/// was last purged. Such a run has no `after_message_id` (a deep scan, or a catch-up of
/// a channel without a position: its pages move only its upper bound); a purge deletes
/// the channel's runs with its clips, so any such run left is newer than the purge. No
/// row for an unknown channel.
pub(crate) const SELECT_SCAN_START: &str = "\
SELECT c.last_message_id, c.is_reading,
       EXISTS (SELECT 1 FROM clips.bot_channel_scan_runs r
               WHERE r.channel_id = c.channel_id AND r.status = 'succeeded'
                 AND r.after_message_id IS NULL) AS history_read
FROM clips.bot_channels c WHERE c.channel_id = $1";

/// `$1` limit: runs waiting for a worker, oldest first: queued ones, and running ones
/// whose channel's scan lock ([`TRY_LOCK_CHANNEL_SCAN`]) nobody holds (abandoned by a
/// dead worker). A bigint advisory lock shows in `pg_locks` as its high 32 bits in
/// `classid` and its low 32 bits in `objid`, with `objsubid` 1. The worker still takes
/// the lock before running (a run may be taken between this read and then).
pub(crate) const SELECT_PENDING_RUNS: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM clips.bot_channel_scan_runs r
WHERE r.status = 'queued'
   OR (r.status = 'running' AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_locks l
        WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
          AND l.database = (SELECT oid FROM pg_catalog.pg_database
                            WHERE datname = current_database())
          AND ((l.classid::int8 << 32) | l.objid::int8)
              = hashtextextended('clips.scan:' || r.channel_id, 0)))
ORDER BY r.created_at LIMIT $1"
);

// ---------------------------------------------------------------------------------------
// Parts of a deep scan

/// Version 3: the parts of a deep scan, Tavern's second addition.
///
/// A deep scan of a long channel splits the history still to read into parts by
/// snowflake (that is, by time) and reads them concurrently. The seed's run row has
/// room for one window only, so each part's window lives here: `(after_message_id,
/// before_message_id)` exclusive, read forward, `after_message_id` moving with every
/// page (written in the same statement as the page, like the run's own window), `done`
/// once the part is read. A run with parts is complete when all are done; a resumed run
/// continues its unfinished parts. The parts go with their run (`ON DELETE CASCADE`).
pub const V3_SCAN_PARTS: &str = r#"
CREATE TABLE scan_run_parts (
    run_id            uuid NOT NULL REFERENCES bot_channel_scan_runs (id) ON DELETE CASCADE,
    part              integer NOT NULL,
    after_message_id  text NOT NULL,
    before_message_id text NOT NULL,
    done              boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, part)
);
"#;

/// `$1` run id, `$2` part numbers (int4[]), `$3` their lower bounds, `$4` their upper
/// bounds (text[]): a run's parts, all at once.
pub(crate) const INSERT_RUN_PARTS: &str = "\
INSERT INTO clips.scan_run_parts (run_id, part, after_message_id, before_message_id)
SELECT $1::uuid, t.part, t.after_id, t.before_id
FROM UNNEST($2::int4[], $3::text[], $4::text[]) AS t(part, after_id, before_id)
ON CONFLICT (run_id, part) DO NOTHING";

/// `$1` run id: its parts, in order.
pub(crate) const SELECT_RUN_PARTS: &str = "\
SELECT part, after_message_id, before_message_id, done
FROM clips.scan_run_parts WHERE run_id = $1::uuid ORDER BY part";

/// The clip arrays (`$1`..`$15`), the page (`$16`..`$20`, see `run_page!`), then
/// `$21` the part, `$22` its new lower bound, `$23` whether it is done: one page of one
/// part of a running scan, the part's window in the same statement. Nothing is written
/// unless the run is still `running`.
pub(crate) const RECORD_PART_PAGE: &str = run_page!(
    "WITH part AS (
    UPDATE clips.scan_run_parts p
    SET after_message_id = $22, done = $23
    FROM clips.bot_channel_scan_runs r
    WHERE p.run_id = $16::uuid AND p.part = $21 AND r.id = p.run_id AND r.status = 'running'
    RETURNING p.run_id
), run AS (
    UPDATE clips.bot_channel_scan_runs
    SET messages_scanned = messages_scanned + $17,
        messages_matched = messages_matched + $18
    WHERE id = (SELECT run_id FROM part) AND status = 'running'"
);
