//! Fuzzes the shortcode parser of Meetup event descriptions
//! (`campaigns::parse_shortcodes`), which reads text any organiser writes.
//!
//! Properties, besides "never panics":
//! - A parsed set round-trips: written back as canonical shortcodes
//!   (`[new campaign] [channel 1] [online] [role 2]`) it parses to the same
//!   set.
//! - A parsed set keeps the rules: no role twice, a `[channel]` only with a
//!   new series.
//! - An error names where: its byte offset is the `[` of the very shortcode
//!   it quotes.
//! - Text without brackets before a description changes nothing but the
//!   offsets.

#![no_main]

use campaigns::{EventShortcodes, SeriesShortcode, ShortcodeError, parse_shortcodes};
use libfuzzer_sys::fuzz_target;

/// The canonical text of a parsed set.
fn render(codes: &EventShortcodes) -> String {
    let mut out = Vec::new();
    match &codes.series {
        Some(SeriesShortcode::NewAdventure) => out.push("[new adventure]".to_owned()),
        Some(SeriesShortcode::NewCampaign) => out.push("[new campaign]".to_owned()),
        Some(SeriesShortcode::Join(event)) => out.push(format!("[campaign {event}]")),
        None => {}
    }
    if let Some(channel) = codes.channel {
        out.push(format!("[channel {channel}]"));
    }
    if codes.online {
        out.push("[online]".to_owned());
    }
    for role in &codes.roles {
        out.push(format!("[role {role}]"));
    }
    out.join(" ")
}

/// The offset and quoted shortcode of an error.
fn located(error: &ShortcodeError) -> (usize, &str) {
    match error {
        ShortcodeError::MalformedId { shortcode, at, .. }
        | ShortcodeError::Conflict { shortcode, at, .. }
        | ShortcodeError::ChannelWithoutNewSeries { shortcode, at } => (*at, shortcode),
    }
}

fn shifted(error: &ShortcodeError, by: usize) -> ShortcodeError {
    let mut e = error.clone();
    match &mut e {
        ShortcodeError::MalformedId { at, .. }
        | ShortcodeError::Conflict { at, .. }
        | ShortcodeError::ChannelWithoutNewSeries { at, .. } => *at += by,
    }
    e
}

const PREFIX: &str = "Session zero, bring dice: ";

fuzz_target!(|data: &[u8]| {
    let description = String::from_utf8_lossy(data);
    let parsed = parse_shortcodes(&description);
    match &parsed {
        Ok(codes) => {
            let text = render(codes);
            assert_eq!(
                parse_shortcodes(&text).as_ref(),
                Ok(codes),
                "{description:?} -> {text:?} does not round-trip"
            );
            for (i, role) in codes.roles.iter().enumerate() {
                assert!(!codes.roles[..i].contains(role), "role {role} twice");
            }
            if codes.channel.is_some() {
                assert!(
                    codes
                        .series
                        .as_ref()
                        .is_some_and(|s| s.new_series_type().is_some()),
                    "a channel without a new series from {description:?}"
                );
            }
        }
        Err(error) => {
            let (at, shortcode) = located(error);
            assert!(shortcode.starts_with('[') && shortcode.ends_with(']'));
            assert!(
                description
                    .get(at..)
                    .is_some_and(|rest| rest.starts_with(shortcode)),
                "error {error:?} does not point at its shortcode in {description:?}"
            );
            assert!(!error.to_string().is_empty());
        }
    }
    let longer = format!("{PREFIX}{description}");
    let expected = parsed.map_err(|e| shifted(&e, PREFIX.len()));
    assert_eq!(
        parse_shortcodes(&longer),
        expected,
        "a plain prefix changed {description:?}"
    );
});
