//! From Discord's messages to the index's rows: which attachments of a message are clips
//! (the channel's [`ClipMatcher`]), and one page of history digested into a
//! [`Page`] plus the window left to read. Pure: the scan engine and the gateway handler
//! both use it.

use chrono::{DateTime, Utc};
use discord::model::{Actor, Attachment as DiscordAttachment, HistoryMessage};

use crate::domain::{
    Attachment, ClipMatcher, MessageId, ScanWindow, StoredText, cdn_url_expiry, snowflake_time,
};
use crate::repo::{NewClip, Page, Progress};

/// A message's time from its Unix milliseconds, or its snowflake's when that is absent
/// or out of range.
pub(crate) fn message_time(id: MessageId, timestamp_ms: Option<i64>) -> DateTime<Utc> {
    timestamp_ms
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(|| snowflake_time(id))
}

/// The clips among a message's attachments, in a channel whose NSFW flag is
/// `channel_is_nsfw` (none at all in an NSFW channel the settings do not scan).
///
/// This is where a Discord message becomes what the archive stores: its text, file
/// names and author's name become [`StoredText`] (NULs dropped) before the matcher
/// sees them, so what is matched is what is kept.
pub(crate) fn clips_of(
    matcher: &ClipMatcher,
    channel_is_nsfw: bool,
    message: MessageId,
    author: &Actor,
    posted_at: DateTime<Utc>,
    content: &str,
    attachments: &[DiscordAttachment],
) -> Vec<NewClip> {
    if !matcher.scans_channel(channel_is_nsfw) {
        return Vec::new();
    }
    attachments
        .iter()
        .filter_map(|a| {
            let filename = StoredText::new(a.filename.as_str());
            let content_type = a.content_type.as_deref().map(StoredText::new);
            let is_clip = matcher.matches(&Attachment {
                filename: filename.as_str(),
                content_type: content_type.as_ref().map(StoredText::as_str),
            });
            is_clip.then(|| NewClip {
                attachment_id: a.id,
                message_id: message,
                author_id: author.id,
                author_name: StoredText::new(author.name.as_str()),
                posted_at,
                filename,
                content_type,
                size_bytes: a.size,
                width: a.width,
                height: a.height,
                duration_secs: a.duration_secs,
                url: StoredText::new(a.url.as_str()),
                proxy_url: Some(a.proxy_url.as_str())
                    .filter(|u| !u.is_empty())
                    .map(StoredText::new),
                url_expires_at: cdn_url_expiry(&a.url),
                message_text: StoredText::new(content),
            })
        })
        .collect()
}

/// One page of history read from `window`: what to record, and the window left after
/// it (`None` when the scan is complete). Messages the request returned outside the
/// window (a forward page running past its upper bound) are not counted.
pub(crate) fn digest(
    window: ScanWindow,
    messages: &[HistoryMessage],
    matcher: &ClipMatcher,
    channel_is_nsfw: bool,
) -> (Page, Option<ScanWindow>) {
    let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    let next = window.after_page(&ids);
    let mut scanned = 0u32;
    let mut matched = 0u32;
    let mut newest: Option<MessageId> = None;
    let mut newest_at: Option<DateTime<Utc>> = None;
    let mut clips = Vec::new();
    for message in messages.iter().filter(|m| window.contains(m.id)) {
        scanned += 1;
        let at = message_time(message.id, Some(message.timestamp_ms));
        newest = newest.max(Some(message.id));
        newest_at = newest_at.max(Some(at));
        let found = clips_of(
            matcher,
            channel_is_nsfw,
            message.id,
            &message.author,
            at,
            &message.content,
            &message.attachments,
        );
        if !found.is_empty() {
            matched += 1;
            clips.extend(found);
        }
    }
    let page = Page {
        progress: Progress {
            scanned,
            matched,
            remaining: next.unwrap_or(window),
            newest,
        },
        newest_at,
        clips,
    };
    (page, next)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use discord::model::UserId;

    use super::*;
    use crate::domain::{PAGE_SIZE, Settings};

    fn attachment(id: u64, name: &str, mime: Option<&str>) -> DiscordAttachment {
        DiscordAttachment {
            id,
            filename: name.to_owned(),
            url: format!("https://cdn.example/{id}/{name}?ex=6841f3c0&is=1&hm=2"),
            proxy_url: String::new(),
            size: 1000,
            content_type: mime.map(str::to_owned),
            width: Some(1280),
            height: Some(720),
            duration_secs: None,
        }
    }

    fn message(id: u64, attachments: Vec<DiscordAttachment>) -> HistoryMessage {
        HistoryMessage {
            id: MessageId::new(id),
            author: Actor {
                id: UserId::new(7),
                name: "alice".to_owned(),
            },
            author_is_bot: false,
            content: format!("message {id}"),
            attachments,
            timestamp_ms: 1_750_000_000_000 + i64::try_from(id).unwrap(),
        }
    }

    #[test]
    fn a_page_counts_messages_and_messages_with_clips_and_keeps_every_clip() {
        let matcher = ClipMatcher::from_settings(&Settings::empty()).unwrap();
        let messages = vec![
            message(
                5,
                vec![
                    attachment(51, "a.mp4", Some("video/mp4")),
                    attachment(52, "b.webm", None),
                ],
            ),
            message(4, vec![attachment(41, "x.png", Some("image/png"))]),
            message(3, vec![]),
            message(2, vec![attachment(21, "c.MOV", Some("video/quicktime"))]),
        ];
        let (page, next) = digest(ScanWindow::deep(None), &messages, &matcher, false);
        assert_eq!(next, None, "a short page ends the scan");
        assert_eq!(page.progress.scanned, 4);
        assert_eq!(page.progress.matched, 2);
        assert_eq!(page.progress.newest, Some(MessageId::new(5)));
        let ids: Vec<u64> = page.clips.iter().map(|c| c.attachment_id).collect();
        assert_eq!(ids, [51, 52, 21]);
        let first = &page.clips[0];
        assert_eq!(first.message_text, "message 5");
        assert_eq!(first.width, Some(1280));
        assert_eq!(first.proxy_url, None);
        assert_eq!(
            first.url_expires_at,
            DateTime::from_timestamp(0x6841_f3c0, 0)
        );
        assert_eq!(
            first.posted_at,
            DateTime::from_timestamp_millis(1_750_000_000_005).unwrap()
        );
    }

    #[test]
    fn a_message_holding_nul_becomes_a_clip_without_it() {
        let matcher = ClipMatcher::from_settings(&Settings::empty()).unwrap();
        let author = Actor {
            id: UserId::new(7),
            name: "al\0ice".to_owned(),
        };
        let found = clips_of(
            &matcher,
            false,
            MessageId::new(5),
            &author,
            DateTime::UNIX_EPOCH,
            "g\0g",
            &[attachment(51, "ace\0.mp4", Some("video/mp4\0"))],
        );
        assert_eq!(found.len(), 1, "the NUL does not hide the clip");
        let clip = &found[0];
        assert_eq!(clip.author_name, "alice");
        assert_eq!(clip.message_text, "gg");
        assert_eq!(clip.filename, "ace.mp4");
        assert_eq!(clip.content_type.as_ref().unwrap(), "video/mp4");
        assert!(!clip.url.as_str().contains('\0'), "{}", clip.url);
    }

    #[test]
    fn an_nsfw_channel_not_allowed_yields_messages_but_no_clips() {
        let matcher = ClipMatcher::from_settings(&Settings::empty()).unwrap();
        let messages = vec![message(9, vec![attachment(91, "a.mp4", None)])];
        let (page, _) = digest(ScanWindow::deep(None), &messages, &matcher, true);
        assert_eq!((page.progress.scanned, page.progress.matched), (1, 0));
        assert!(page.clips.is_empty());
    }

    #[test]
    fn a_full_forward_page_moves_the_window_and_skips_what_lies_past_it() {
        let matcher = ClipMatcher::from_settings(&Settings::empty()).unwrap();
        let window =
            ScanWindow::between(Some(MessageId::new(100)), Some(MessageId::new(150))).unwrap();
        let messages: Vec<HistoryMessage> = (101..101 + PAGE_SIZE as u64)
            .rev()
            .map(|id| message(id, vec![attachment(id * 10, "a.mp4", None)]))
            .collect();
        let (page, next) = digest(window, &messages, &matcher, false);
        assert_eq!(next, None, "the page reached the upper bound");
        assert_eq!(page.progress.scanned, 49);
        assert_eq!(page.progress.matched, 49);
        assert_eq!(page.progress.newest, Some(MessageId::new(149)));
    }
}
