//! The web library's statements over the clip index ([`super::index`]): pages of clips
//! with filters and search, the authors of a guild, the refreshed CDN URLs, the purges of
//! the danger zone, the guild page's clip counts and latest runs per channel (one
//! statement each, whatever the number of channels), and which of a user's guilds
//! Tavern is in. Also the Redis keys Tavern adds for the web and the scans
//! ([`USER_GUILDS_KEY_PREFIX`], [`VISIBLE_CHANNELS_KEY_PREFIX`], [`BOT_SIGHT_KEY_PREFIX`]).
//!
//! # Paging that stays fast
//! A page is `ORDER BY posted_at DESC, attachment_id DESC LIMIT n+1` after the cursor
//! `(posted_at, attachment_id) < (t, a)`: a keyset, never `OFFSET`, so page 500 costs
//! what page 1 costs. The filters pick the index that serves the order directly:
//! the guild alone `idx_clips_guild_posted`, a channel `idx_clips_channel_posted`, an
//! author `idx_clips_author_posted` (each led by the equality columns, then the order's
//! columns, so the scan stops after n+1 rows); a date range is a bound on `posted_at`
//! inside the same index. Search is `lower(filename || ' ' || message_text) LIKE
//! '%..%'`, the expression of the trigram index `idx_clips_search`, so PostgreSQL can
//! take the rows matching the words from that index when they are few, or walk the
//! ordered index and filter when they are many. No page counts its results (a count of
//! a large guild is what would not stay fast).
//!
//! The statement is assembled from fixed parts for the filters present
//! (`library_page`); every value is a bound parameter.

use chrono::{DateTime, Utc};

/// Redis key prefix of the channels a member may see in a guild, cached by the web
/// pages: `tavern:clips:visible_channels:{guild id}:{discord user id}`, a JSON array
/// of channel ids (the stored channels whose clips, names and scans the member may
/// see, decided by [`crate::domain::visible_channels`]), for
/// [`VISIBLE_CHANNELS_TTL_SECS`]. Tavern's addition (the seed has no Redis keys):
/// without it every page view would ask Discord for the guild's channels and the
/// member's roles. Only members who do not manage the guild have one.
pub const VISIBLE_CHANNELS_KEY_PREFIX: &str = "tavern:clips:visible_channels:";
/// How long a cached set of visible channels is used (seconds): a changed role or
/// overwrite shows within this time.
pub const VISIBLE_CHANNELS_TTL_SECS: u64 = 60;

/// The key of the channels `user` may see in `guild`.
pub fn visible_channels_key(guild: crate::domain::GuildId, user: crate::domain::UserId) -> String {
    format!("{VISIBLE_CHANNELS_KEY_PREFIX}{guild}:{user}")
}

/// Redis key prefix of what Tavern itself may do in a guild's channels, cached for the
/// managers' guild page and the scans: `tavern:clips:bot_sight:{guild id}`, a JSON
/// array of `[channel id, permission bits]`, the bot's permissions in each channel
/// Discord lists (its roles' and `@everyone`'s guild permissions through the channel's
/// overwrites), for [`BOT_SIGHT_TTL_SECS`]. Tavern's addition (the seed has no Redis
/// keys): without it every page view and every scan run would ask Discord five
/// questions (who the bot is, the guild's owner, its roles, the bot's roles, the
/// channels). Only a "may read" is taken from it for a scan; anything else is asked
/// again ([`crate::scan::Scanner::bot_lacks`]).
pub const BOT_SIGHT_KEY_PREFIX: &str = "tavern:clips:bot_sight:";
/// How long Tavern's cached permissions in a guild are used (seconds): a changed role
/// shows on the guild page within this time, or at once after a manager's action.
pub const BOT_SIGHT_TTL_SECS: u64 = 60;

/// The key of Tavern's cached permissions in `guild`'s channels.
pub fn bot_sight_key(guild: crate::domain::GuildId) -> String {
    format!("{BOT_SIGHT_KEY_PREFIX}{guild}")
}

/// Redis key prefix of a user's Discord guild list, cached by the web pages:
/// `tavern:clips:user_guilds:{discord user id}`, a JSON array of the user's guilds (id,
/// name, owner, permission bits), for [`USER_GUILDS_TTL_SECS`]. Tavern's addition (the
/// seed has no Redis keys): without it every page view would ask Discord for the list,
/// and Discord limits that route per user.
pub const USER_GUILDS_KEY_PREFIX: &str = "tavern:clips:user_guilds:";
/// How long a cached guild list is used (seconds).
pub const USER_GUILDS_TTL_SECS: u64 = 60;

/// The key of `user`'s cached guild list.
pub fn user_guilds_key(user: crate::domain::UserId) -> String {
    format!("{USER_GUILDS_KEY_PREFIX}{user}")
}

/// One clip as the library shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LibraryClipRow {
    pub attachment_id: String,
    pub message_id: String,
    pub channel_id: String,
    pub guild_id: String,
    pub author_id: String,
    pub author_name: String,
    pub posted_at: DateTime<Utc>,
    pub filename: String,
    pub content_type: Option<String>,
    pub size_bytes: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub duration_secs: Option<f64>,
    pub url: String,
    pub url_expires_at: Option<DateTime<Utc>>,
    pub message_text: String,
}

/// Which filters a library page has, in the order their parameters are bound after
/// `$1` (the guild): channel, author, from, to, search pattern, cursor (two), the
/// channels a member may see, and last the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LibraryShape {
    pub channel: bool,
    pub author: bool,
    pub from: bool,
    pub to: bool,
    pub search: bool,
    pub cursor: bool,
    /// Only clips of a list of channels (those a member may see).
    pub channels: bool,
}

const LIBRARY_COLUMNS: &str = "\
SELECT attachment_id, message_id, channel_id, guild_id, author_id, author_name, posted_at,
       filename, content_type, size_bytes, width, height, duration_secs, url, url_expires_at,
       message_text
FROM clips.clips
WHERE guild_id = $1";

/// A page of a guild's clips, newest first, for the filters of `shape` (see the module
/// docs). Parameters: `$1` guild_id, then for each filter present, in this order:
/// channel_id, author_id, from (inclusive), to (exclusive), the `LIKE` pattern (lowered
/// here; `%`, `_` and `\` in the words escaped with `\`), the cursor's posted_at and
/// attachment_id, the channel ids a member may see (text[]); last the limit.
pub(crate) fn library_page(shape: LibraryShape) -> String {
    let mut sql = String::from(LIBRARY_COLUMNS);
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if shape.channel {
        sql.push_str(&format!("\n  AND channel_id = ${}", next()));
    }
    if shape.author {
        sql.push_str(&format!("\n  AND author_id = ${}", next()));
    }
    if shape.from {
        sql.push_str(&format!("\n  AND posted_at >= ${}", next()));
    }
    if shape.to {
        sql.push_str(&format!("\n  AND posted_at < ${}", next()));
    }
    if shape.search {
        sql.push_str(&format!(
            "\n  AND lower(filename || ' ' || message_text) LIKE lower(${})",
            next()
        ));
    }
    if shape.cursor {
        let (t, a) = (next(), next());
        sql.push_str(&format!(
            "\n  AND (posted_at, attachment_id) < (${t}, ${a})"
        ));
    }
    if shape.channels {
        sql.push_str(&format!("\n  AND channel_id = ANY(${}::text[])", next()));
    }
    sql.push_str(&format!(
        "\nORDER BY posted_at DESC, attachment_id DESC\nLIMIT ${}",
        next()
    ));
    sql
}

/// `$1` guild_id, `$2` attachment_id: one clip of a guild, for its page (the primary
/// key finds it).
pub(crate) fn library_clip() -> String {
    format!("{LIBRARY_COLUMNS}\n  AND attachment_id = $2")
}

/// [`library_page`] under `EXPLAIN`, for the test (and the operator) that checks which
/// index serves a page.
pub(crate) fn explain_library_page(shape: LibraryShape) -> String {
    format!("EXPLAIN {}", library_page(shape))
}

/// `$1` guild_id, `$2` at most this many. The distinct authors of a guild's clips, each
/// with the latest name seen, by name. A skip scan over `idx_clips_author_posted`: one
/// index probe per author, not a pass over every clip.
pub(crate) const SELECT_GUILD_AUTHORS: &str = "\
WITH RECURSIVE authors AS (
    (SELECT author_id FROM clips.clips WHERE guild_id = $1 ORDER BY author_id LIMIT 1)
    UNION ALL
    SELECT (SELECT c.author_id FROM clips.clips c
            WHERE c.guild_id = $1 AND c.author_id > a.author_id
            ORDER BY c.author_id LIMIT 1)
    FROM authors a WHERE a.author_id IS NOT NULL
)
SELECT a.author_id,
       (SELECT c.author_name FROM clips.clips c
        WHERE c.guild_id = $1 AND c.author_id = a.author_id
        ORDER BY c.posted_at DESC, c.attachment_id DESC LIMIT 1) AS author_name
FROM (SELECT author_id FROM authors WHERE author_id IS NOT NULL LIMIT $2) a
ORDER BY 2, 1";

/// `$1` guild_id, `$2` at most this many, `$3` channel ids (text[]).
/// [`SELECT_GUILD_AUTHORS`] over the clips of those channels only (the channels a
/// member may see): the same skip scan, each probe the next author with a clip there.
pub(crate) const SELECT_GUILD_AUTHORS_IN_CHANNELS: &str = "\
WITH RECURSIVE authors AS (
    (SELECT author_id FROM clips.clips
     WHERE guild_id = $1 AND channel_id = ANY($3::text[])
     ORDER BY author_id LIMIT 1)
    UNION ALL
    SELECT (SELECT c.author_id FROM clips.clips c
            WHERE c.guild_id = $1 AND c.author_id > a.author_id
              AND c.channel_id = ANY($3::text[])
            ORDER BY c.author_id LIMIT 1)
    FROM authors a WHERE a.author_id IS NOT NULL
)
SELECT a.author_id,
       (SELECT c.author_name FROM clips.clips c
        WHERE c.guild_id = $1 AND c.author_id = a.author_id
          AND c.channel_id = ANY($3::text[])
        ORDER BY c.posted_at DESC, c.attachment_id DESC LIMIT 1) AS author_name
FROM (SELECT author_id FROM authors WHERE author_id IS NOT NULL LIMIT $2) a
ORDER BY 2, 1";

/// `$1` attachment ids, `$2` their new URLs, `$3` when those expire (arrays of the same
/// length). Stores the CDN URLs a page refreshed, in one statement.
pub(crate) const UPDATE_CLIP_URLS: &str = "\
UPDATE clips.clips c
SET url = v.url, url_expires_at = v.expires_at
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS v(attachment_id, url, expires_at)
WHERE c.attachment_id = v.attachment_id";

/// The purge of the clips, the scan positions and the scan runs of the channels whose
/// `$column` (`channel_id` or `guild_id`, both columns of `clips` and `bot_channels`) is
/// `$1`, unless one of those channels has an unfinished (queued or running) scan run: then
/// nothing is written and the statement names that run's channel and status. The
/// guard and the writes are one statement (one snapshot); run after
/// [`LOCK_PURGED_CHANNELS`] in the same transaction, no run can be requested in
/// between either.
macro_rules! purge_index {
    ($column:literal) => {
        concat!(
            "WITH scope AS (
    SELECT channel_id FROM clips.bot_channels WHERE ",
            $column,
            " = $1
), unfinished AS (
    SELECT r.channel_id, r.status::text AS status
    FROM clips.bot_channel_scan_runs r JOIN scope USING (channel_id)
    WHERE r.status IN ('queued', 'running')
    ORDER BY r.created_at DESC
    LIMIT 1
), gone AS (
    DELETE FROM clips.clips WHERE ",
            $column,
            " = $1 AND NOT EXISTS (SELECT 1 FROM unfinished) RETURNING 1
), reset AS (
    UPDATE clips.bot_channels
    SET last_message_id = NULL, message_count = 0, last_scanned_at = NULL
    WHERE ",
            $column,
            " = $1 AND NOT EXISTS (SELECT 1 FROM unfinished)
    RETURNING 1
), forgotten AS (
    DELETE FROM clips.bot_channel_scan_runs r USING scope
    WHERE r.channel_id = scope.channel_id AND NOT EXISTS (SELECT 1 FROM unfinished)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS clips,
       (SELECT count(*) FROM scope) AS channels,
       (SELECT channel_id FROM unfinished) AS unfinished_channel,
       (SELECT status FROM unfinished) AS unfinished_status"
        )
    };
}

/// `$1` channel_id or guild_id, `$2` which (`'channel_id'` or `'guild_id'`). Takes, for
/// the purge's transaction, the request lock of every channel it covers (the lock
/// [`crate::schema::index::LOCK_CHANNEL_REQUESTS`] takes to queue a run), in channel
/// order: no scan can be queued for those channels until the purge commits.
pub(crate) const LOCK_PURGED_CHANNELS: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('clips.scan-request:' || channel_id, 0))
FROM (
    SELECT channel_id FROM clips.bot_channels
    WHERE CASE WHEN $2 = 'guild_id' THEN guild_id ELSE channel_id END = $1
    ORDER BY channel_id
) AS scope";

/// `$1` channel_id. The danger zone's "purge this channel's index": deletes the
/// channel's clips, resets its scan position (`last_message_id`, `message_count`,
/// `last_scanned_at`) and deletes its (finished) scan runs, in one statement. The runs
/// go because they describe the index just deleted: the scans that read the history
/// are what lets a quick scan continue from `last_message_id`
/// ([`crate::schema::index::SELECT_SCAN_START`]), so without them the next scan reads
/// the whole history again.
/// Returns how many clips went, how many channels it covers (0: no such channel), and
/// the unfinished run's channel and status that refused it (then nothing was written).
pub(crate) const PURGE_CHANNEL_INDEX: &str = purge_index!("channel_id");

/// `$1` guild_id. [`PURGE_CHANNEL_INDEX`] for every channel of a guild at once.
pub(crate) const PURGE_GUILD_INDEX: &str = purge_index!("guild_id");

/// `$1` guild_id: how many clips each channel of the guild holds (channels without
/// clips have no row), for the guild page: one pass over the guild's entries of
/// `idx_clips_guild_posted`, not a count per channel.
pub(crate) const COUNT_GUILD_CLIPS_BY_CHANNEL: &str = "\
SELECT channel_id, count(*) AS clips FROM clips.clips WHERE guild_id = $1 GROUP BY channel_id";

/// `$1` guild_id: the latest scan run of each channel of the guild (channels never
/// scanned have no row), for the guild page: one statement, each channel's newest run
/// read from `idx_bot_scan_runs_channel`.
pub(crate) const SELECT_LATEST_RUNS_OF_GUILD: &str = concat!(
    "SELECT DISTINCT ON (channel_id) ",
    run_columns!(),
    " FROM clips.bot_channel_scan_runs
WHERE channel_id IN (SELECT channel_id FROM clips.bot_channels WHERE guild_id = $1)
ORDER BY channel_id, created_at DESC"
);

/// `$1` guild ids (text[]): those Tavern is in (`bot_guilds`).
pub(crate) const SELECT_KNOWN_GUILDS: &str =
    "SELECT guild_id FROM clips.bot_guilds WHERE guild_id = ANY($1::text[])";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_statement_numbers_its_parameters_in_order() {
        let all = library_page(LibraryShape {
            channel: true,
            author: true,
            from: true,
            to: true,
            search: true,
            cursor: true,
            channels: true,
        });
        for (i, part) in [
            "channel_id = $2",
            "author_id = $3",
            "posted_at >= $4",
            "posted_at < $5",
            "LIKE lower($6)",
            "< ($7, $8)",
            "channel_id = ANY($9::text[])",
            "LIMIT $10",
        ]
        .iter()
        .enumerate()
        {
            assert!(all.contains(part), "{i}: {part} in {all}");
        }
        let bare = library_page(LibraryShape::default());
        assert!(bare.ends_with("LIMIT $2"), "{bare}");
        assert!(!bare.contains("OFFSET"), "{bare}");
        let search = library_page(LibraryShape {
            search: true,
            cursor: true,
            ..LibraryShape::default()
        });
        assert!(search.contains("LIKE lower($2)"), "{search}");
        assert!(search.contains("< ($3, $4)"), "{search}");
        assert!(search.ends_with("LIMIT $5"), "{search}");
    }
}
