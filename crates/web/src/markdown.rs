//! Discord's message text as HTML: its markdown and its mentions, the way a Discord
//! client shows them.
//!
//! What is understood:
//! - blocks: code blocks (```` ```lang ... ``` ````), headings (`# `, `## `, `### `),
//!   subtext (`-# `), block quotes (`> ` per line, `>>> ` for the rest of the
//!   message) and lists (`- `, `* `, `1. `);
//! - inline: `**bold**`, `*italic*` / `_italic_`, `__underline__`, `~~strike~~`,
//!   `||spoiler||`, `` `code` `` / ``` ``code`` ```, `[masked](https://links)`, bare
//!   `https://` links, and `\` escapes;
//! - mentions: `<@user>` / `<@!user>`, `<@&role>`, `<#channel>` become `@name`,
//!   `@role` and `#channel` (through [`Names`]); `</command:id>`, `<t:unix:style>`
//!   timestamps, custom emoji `<:name:id>`, `@everyone` and `@here`.
//!
//! Everything from the message is escaped: the only markup in the output is the
//! markup written here, and links only ever point at `http://` or `https://`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use maud::{Markup, PreEscaped};

/// What a message's mentions name. Unknown ids render as Discord shows them
/// (`@unknown-user`, `@deleted-role`, `#unknown-channel`).
pub trait Names {
    /// The name a member is shown by (nickname, global name or username).
    fn user(&self, id: u64) -> Option<String>;
    fn role(&self, id: u64) -> Option<String>;
    fn channel(&self, id: u64) -> Option<String>;
    /// "Now", for relative timestamps (`<t:...:R>`).
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// [`Names`] that knows nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNames;

impl Names for NoNames {
    fn user(&self, _: u64) -> Option<String> {
        None
    }
    fn role(&self, _: u64) -> Option<String> {
        None
    }
    fn channel(&self, _: u64) -> Option<String> {
        None
    }
}

/// Nesting deeper than this (`||**__~~...`) is shown as plain text: a message cannot
/// make the renderer recurse without bound.
const MAX_DEPTH: usize = 12;

/// `text` (a message's content, an embed's description) as HTML.
pub fn render(text: &str, names: &dyn Names) -> Markup {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let segments = code_blocks(text);
    let count = segments.len();
    for (index, segment) in segments.into_iter().enumerate() {
        match segment {
            Segment::Code { lang, body } => {
                out.push_str("<pre class=\"codeblock\"><code");
                if let Some(lang) = lang {
                    out.push_str(" data-lang=\"");
                    escape_into(&mut out, lang);
                    out.push('"');
                }
                out.push('>');
                escape_into(&mut out, body);
                out.push_str("</code></pre>");
            }
            Segment::Text(text) => {
                // The line break next to a code block belongs to the block.
                let mut text = text;
                if index > 0 {
                    text = text.strip_prefix('\n').unwrap_or(text);
                }
                if index + 1 < count {
                    text = text.strip_suffix('\n').unwrap_or(text);
                }
                blocks(text, names, true, &mut out);
            }
        }
    }
    PreEscaped(out)
}

/// Escapes text for HTML content and attribute values.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

enum Segment<'a> {
    Text(&'a str),
    Code {
        lang: Option<&'a str>,
        body: &'a str,
    },
}

/// Splits out the ```` ``` ```` code blocks: their content is shown as it is.
fn code_blocks(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let Some(close) = after.find("```") else {
            break;
        };
        let inner = &after[..close];
        if inner.trim().is_empty() {
            // "``````" is not a block; leave it as text.
            out.push(Segment::Text(&rest[..open + 3 + close + 3]));
            rest = &after[close + 3..];
            continue;
        }
        out.push(Segment::Text(&rest[..open]));
        let (lang, body) = match inner.split_once('\n') {
            Some((first, body))
                if !first.is_empty()
                    && first
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-_#.".contains(&b)) =>
            {
                (Some(first), body)
            }
            _ => (None, inner.strip_prefix('\n').unwrap_or(inner)),
        };
        let body = body.strip_suffix('\n').unwrap_or(body);
        out.push(Segment::Code { lang, body });
        rest = &after[close + 3..];
    }
    out.push(Segment::Text(rest));
    out.retain(|s| !matches!(s, Segment::Text("")));
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Nothing,
    Inline,
    Block,
}

fn heading(line: &str) -> Option<(u8, &str)> {
    for (level, prefix) in [(3, "### "), (2, "## "), (1, "# ")] {
        if let Some(rest) = line.strip_prefix(prefix)
            && !rest.trim().is_empty()
        {
            return Some((level, rest));
        }
    }
    None
}

/// A list item: `- x`, `* x` or `12. x` (leading spaces allowed).
fn list_item(line: &str) -> Option<(bool, &str)> {
    let line = line.trim_start_matches(' ');
    if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
        return Some((false, rest));
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=9).contains(&digits) {
        return line[digits..].strip_prefix(". ").map(|rest| (true, rest));
    }
    None
}

fn is_quote(line: &str) -> bool {
    line == ">" || line.starts_with("> ")
}

fn blocks(text: &str, names: &dyn Names, quotes: bool, out: &mut String) {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut last = Last::Nothing;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if quotes && (line == ">>>" || line.starts_with(">>> ")) {
            let mut rest = vec![line[3..].strip_prefix(' ').unwrap_or(&line[3..])];
            rest.extend_from_slice(&lines[i + 1..]);
            out.push_str("<blockquote>");
            blocks(&rest.join("\n"), names, false, out);
            out.push_str("</blockquote>");
            return;
        }
        if quotes && is_quote(line) {
            let mut quoted = Vec::new();
            while i < lines.len() && is_quote(lines[i]) {
                quoted.push(lines[i].get(2..).unwrap_or(""));
                i += 1;
            }
            out.push_str("<blockquote>");
            blocks(&quoted.join("\n"), names, false, out);
            out.push_str("</blockquote>");
            last = Last::Block;
            continue;
        }
        if let Some((level, rest)) = heading(line) {
            let _ = write!(out, "<h{level} class=\"md-heading\">");
            inline(rest, names, 0, out);
            let _ = write!(out, "</h{level}>");
            last = Last::Block;
        } else if let Some(rest) = line.strip_prefix("-# ") {
            out.push_str("<div class=\"subtext\">");
            inline(rest, names, 0, out);
            out.push_str("</div>");
            last = Last::Block;
        } else if let Some((ordered, _)) = list_item(line) {
            let tag = if ordered { "ol" } else { "ul" };
            let _ = write!(out, "<{tag}>");
            while let Some((kind, item)) = lines.get(i).and_then(|l| list_item(l)) {
                if kind != ordered {
                    break;
                }
                out.push_str("<li>");
                inline(item, names, 0, out);
                out.push_str("</li>");
                i += 1;
            }
            let _ = write!(out, "</{tag}>");
            last = Last::Block;
            continue;
        } else {
            if last == Last::Inline {
                out.push_str("<br>");
            }
            inline(line, names, 0, out);
            last = Last::Inline;
        }
        i += 1;
    }
}

/// Where the closing `delim` of a span opened just before `from` is: not right at
/// `from` (spans are not empty), `\`-escapes skipped; when the closing run is longer
/// (`***`), the span ends at the run's end so the inner text keeps its own marker.
fn closing(s: &str, from: usize, delim: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mark = delim.as_bytes()[0];
    let mut j = from;
    while j < bytes.len() {
        if bytes[j] == b'\\' {
            j += 2;
            continue;
        }
        // Compared as bytes: `j` may sit inside a character (the delimiters are ASCII,
        // so a match never does).
        if j > from && bytes[j..].starts_with(delim.as_bytes()) {
            let mut end = j;
            while bytes.get(end + delim.len()) == Some(&mark) {
                end += 1;
            }
            return Some(end);
        }
        j += 1;
    }
    None
}

/// The closing single `*` or `_` of an italic span opened just before `from`.
fn closing_single(s: &str, from: usize, mark: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut j = from;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b if b == mark && bytes.get(j + 1) == Some(&mark) => j += 2,
            b if b == mark => {
                let before = s[..j].chars().next_back();
                let after = s[j + 1..].chars().next();
                let word_end = mark != b'_' || !after.is_some_and(char::is_alphanumeric);
                if j > from && before.is_some_and(|c| !c.is_whitespace()) && word_end {
                    return Some(j);
                }
                j += 1;
            }
            _ => j += 1,
        }
    }
    None
}

const TRIGGERS: &[u8] = b"\\`|*_~[<@h";

fn inline(s: &str, names: &dyn Names, depth: usize, out: &mut String) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        if TRIGGERS.contains(&bytes[i])
            && let Some(consumed) = token(s, i, names, depth, plain, out)
        {
            plain = i + consumed;
            i = plain;
        } else {
            i += 1;
        }
    }
    escape_into(out, &s[plain..]);
}

/// Renders the token starting at `i`, if one does, after flushing the plain text
/// `s[plain..i]`; returns how many bytes it took.
fn token(
    s: &str,
    i: usize,
    names: &dyn Names,
    depth: usize,
    plain: usize,
    out: &mut String,
) -> Option<usize> {
    let rest = &s[i..];
    let bytes = s.as_bytes();
    let flush = |out: &mut String| escape_into(out, &s[plain..i]);
    let previous = s[..i].chars().next_back();
    let at_word_start = !previous.is_some_and(char::is_alphanumeric);

    // `\*`: the character itself.
    if let Some(escaped) = rest.strip_prefix('\\') {
        let next = escaped.chars().next()?;
        if !next.is_ascii_punctuation() {
            return None;
        }
        flush(out);
        escape_into(out, &rest[1..2]);
        return Some(2);
    }
    // Inline code: `x` or ``x``; nothing inside is formatted.
    if rest.starts_with('`') {
        let run = rest.bytes().take_while(|&b| b == b'`').count().min(2);
        let fence = &rest[..run];
        let close = rest[run..].find(fence)?;
        let mut code = &rest[run..run + close];
        if code.is_empty() {
            return None;
        }
        if run == 2 && code.len() > 2 && code.starts_with(' ') && code.ends_with(' ') {
            code = &code[1..code.len() - 1];
        }
        flush(out);
        out.push_str("<code>");
        escape_into(out, code);
        out.push_str("</code>");
        return Some(run + close + run);
    }
    if depth < MAX_DEPTH {
        for (delim, open, close) in [
            (
                "||",
                "<span class=\"spoiler\" tabindex=\"0\" role=\"button\" aria-label=\"Spoiler\">",
                "</span>",
            ),
            ("**", "<strong>", "</strong>"),
            ("__", "<u>", "</u>"),
            ("~~", "<s>", "</s>"),
        ] {
            if rest.starts_with(delim) {
                let end = closing(s, i + 2, delim)?;
                flush(out);
                out.push_str(open);
                inline(&s[i + 2..end], names, depth + 1, out);
                out.push_str(close);
                return Some(end + 2 - i);
            }
        }
        for mark in [b'*', b'_'] {
            if bytes[i] == mark {
                let opens = rest[1..].chars().next().is_some_and(|c| !c.is_whitespace());
                if !opens || (mark == b'_' && !at_word_start) {
                    return None;
                }
                let end = closing_single(s, i + 1, mark)?;
                flush(out);
                out.push_str("<em>");
                inline(&s[i + 1..end], names, depth + 1, out);
                out.push_str("</em>");
                return Some(end + 1 - i);
            }
        }
        // [text](https://...)
        if rest.starts_with('[') {
            let middle = rest.find("](")?;
            let label = &rest[1..middle];
            let after = &rest[middle + 2..];
            let close = after.find(')')?;
            let url = &after[..close];
            if label.trim().is_empty() || !is_web_url(url) {
                return None;
            }
            flush(out);
            link_open(out, url);
            inline(label, names, depth + 1, out);
            out.push_str("</a>");
            return Some(middle + 2 + close + 1);
        }
    }
    if rest.starts_with('<') {
        let close = rest.find('>')?;
        let inner = &rest[1..close];
        let rendered = angle(inner, names)?;
        flush(out);
        out.push_str(&rendered);
        return Some(close + 1);
    }
    if rest.starts_with('@') && at_word_start {
        for word in ["@everyone", "@here"] {
            if rest.starts_with(word)
                && !rest[word.len()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric)
            {
                flush(out);
                let _ = write!(out, "<span class=\"mention\">{word}</span>");
                return Some(word.len());
            }
        }
        return None;
    }
    if (rest.starts_with("https://") || rest.starts_with("http://")) && at_word_start {
        let mut end = rest
            .find(|c: char| c.is_whitespace() || c == '<' || c == '>')
            .unwrap_or(rest.len());
        while end > 0 {
            let last = rest[..end].chars().next_back()?;
            let unbalanced = last == ')' && !rest[..end].contains('(');
            if ".,:;!?'\"".contains(last) || unbalanced {
                end -= last.len_utf8();
            } else {
                break;
            }
        }
        let url = &rest[..end];
        if !is_web_url(url) {
            return None;
        }
        flush(out);
        link_open(out, url);
        escape_into(out, url);
        out.push_str("</a>");
        return Some(end);
    }
    None
}

/// An `http(s)://` URL with something after the scheme and no spaces or controls.
fn is_web_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty())
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>')
}

fn link_open(out: &mut String, url: &str) {
    out.push_str("<a href=\"");
    escape_into(out, url);
    out.push_str("\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">");
}

fn snowflake(raw: &str) -> Option<u64> {
    (!raw.is_empty() && raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse().ok())
        .flatten()
}

fn mention(class: &str, text: &str) -> String {
    let mut out = format!("<span class=\"{class}\">");
    escape_into(&mut out, text);
    out.push_str("</span>");
    out
}

/// What `<...>` holds: a mention, a command, a timestamp, an emoji or a link.
fn angle(inner: &str, names: &dyn Names) -> Option<String> {
    if let Some(id) = inner.strip_prefix("@&") {
        let name = names.role(snowflake(id)?);
        return Some(mention(
            "mention",
            &format!("@{}", name.as_deref().unwrap_or("deleted-role")),
        ));
    }
    if let Some(id) = inner.strip_prefix('@') {
        let id = snowflake(id.strip_prefix('!').unwrap_or(id))?;
        let name = names.user(id);
        return Some(mention(
            "mention",
            &format!("@{}", name.as_deref().unwrap_or("unknown-user")),
        ));
    }
    if let Some(id) = inner.strip_prefix('#') {
        let name = names.channel(snowflake(id)?);
        return Some(mention(
            "mention",
            &format!("#{}", name.as_deref().unwrap_or("unknown-channel")),
        ));
    }
    if let Some(command) = inner.strip_prefix('/') {
        let (name, id) = command.rsplit_once(':')?;
        snowflake(id)?;
        if name.is_empty() || name.len() > 100 {
            return None;
        }
        return Some(mention("mention command", &format!("/{name}")));
    }
    if let Some(stamp) = inner.strip_prefix("t:") {
        let (seconds, style) = match stamp.split_once(':') {
            Some((seconds, style)) => (seconds, style),
            None => (stamp, "f"),
        };
        return timestamp(seconds.parse().ok()?, style, names.now());
    }
    let emoji = inner.strip_prefix("a:").or_else(|| inner.strip_prefix(':'));
    if let Some(emoji) = emoji {
        let (name, id) = emoji.split_once(':')?;
        snowflake(id)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        return Some(mention("emoji", &format!(":{name}:")));
    }
    if is_web_url(inner) {
        let mut out = String::new();
        link_open(&mut out, inner);
        escape_into(&mut out, inner);
        out.push_str("</a>");
        return Some(out);
    }
    None
}

/// `<t:seconds:style>` in UTC: the server does not know the reader's time zone.
fn timestamp(seconds: i64, style: &str, now: DateTime<Utc>) -> Option<String> {
    let at = DateTime::<Utc>::from_timestamp(seconds, 0)?;
    let text = match style {
        "t" => at.format("%H:%M").to_string(),
        "T" => at.format("%H:%M:%S").to_string(),
        "d" => at.format("%d/%m/%Y").to_string(),
        "D" => at.format("%-d %B %Y").to_string(),
        "f" => at.format("%-d %B %Y %H:%M").to_string(),
        "F" => at.format("%A, %-d %B %Y %H:%M").to_string(),
        "R" => relative(at, now),
        _ => return None,
    };
    let mut out = format!(
        "<time class=\"timestamp\" datetime=\"{}\" title=\"{} UTC\">",
        at.format("%Y-%m-%dT%H:%M:%SZ"),
        at.format("%A, %-d %B %Y %H:%M")
    );
    escape_into(&mut out, &text);
    out.push_str("</time>");
    Some(out)
}

fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds();
    let distance = seconds.unsigned_abs();
    let (amount, unit) = match distance {
        0..60 => (distance, "second"),
        60..3600 => (distance / 60, "minute"),
        3600..86_400 => (distance / 3600, "hour"),
        86_400..2_592_000 => (distance / 86_400, "day"),
        2_592_000..31_536_000 => (distance / 2_592_000, "month"),
        _ => (distance / 31_536_000, "year"),
    };
    let plural = if amount == 1 { "" } else { "s" };
    if seconds >= 0 {
        format!("in {amount} {unit}{plural}")
    } else {
        format!("{amount} {unit}{plural} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Demo;

    impl Names for Demo {
        fn user(&self, id: u64) -> Option<String> {
            match id {
                1 => Some("alice".into()),
                2 => Some("<b>bob</b>".into()),
                _ => None,
            }
        }
        fn role(&self, id: u64) -> Option<String> {
            (id == 10).then(|| "Game Master".into())
        }
        fn channel(&self, id: u64) -> Option<String> {
            (id == 20).then(|| "dice".into())
        }
        fn now(&self) -> DateTime<Utc> {
            DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default()
        }
    }

    fn html(text: &str) -> String {
        render(text, &Demo).into_string()
    }

    #[test]
    fn mentions_become_names() {
        assert_eq!(
            html("hi <@1> and <@!2>"),
            "hi <span class=\"mention\">@alice</span> and \
             <span class=\"mention\">@&lt;b&gt;bob&lt;/b&gt;</span>"
        );
        assert_eq!(
            html("<@&10> in <#20>"),
            "<span class=\"mention\">@Game Master</span> in <span class=\"mention\">#dice</span>"
        );
        assert_eq!(
            html("<@3> <@&4> <#5>"),
            "<span class=\"mention\">@unknown-user</span> \
             <span class=\"mention\">@deleted-role</span> \
             <span class=\"mention\">#unknown-channel</span>"
        );
        assert_eq!(
            html("@everyone look: </roll:123> <:dice:99>"),
            "<span class=\"mention\">@everyone</span> look: \
             <span class=\"mention command\">/roll</span> <span class=\"emoji\">:dice:</span>"
        );
        assert_eq!(html("mail@everyone.example"), "mail@everyone.example");
        assert_eq!(html("<@abc> <@>"), "&lt;@abc&gt; &lt;@&gt;");
    }

    #[test]
    fn inline_formatting() {
        assert_eq!(
            html("**b** *i* _i_ __u__ ~~s~~"),
            "<strong>b</strong> <em>i</em> <em>i</em> <u>u</u> <s>s</s>"
        );
        assert_eq!(html("***both***"), "<strong><em>both</em></strong>");
        assert_eq!(html("*a **b** c*"), "<em>a <strong>b</strong> c</em>");
        assert_eq!(
            html("||twist **ending**||"),
            "<span class=\"spoiler\" tabindex=\"0\" role=\"button\" aria-label=\"Spoiler\">\
             twist <strong>ending</strong></span>"
        );
        assert_eq!(html("snake_case_name"), "snake_case_name");
        assert_eq!(html("2 * 3 * 4"), "2 * 3 * 4");
        assert_eq!(html("**not closed"), "**not closed");
        assert_eq!(html("\\*literal\\*"), "*literal*");
        assert_eq!(html("a || b"), "a || b");
    }

    #[test]
    fn text_beyond_ascii_inside_and_around_spans() {
        assert_eq!(html("**Zoë** joined"), "<strong>Zoë</strong> joined");
        assert_eq!(html("__Łódź__ ~~né~~"), "<u>Łódź</u> <s>né</s>");
        assert_eq!(
            html("||🐉 dragon||"),
            "<span class=\"spoiler\" tabindex=\"0\" role=\"button\" aria-label=\"Spoiler\">\
             🐉 dragon</span>"
        );
        assert_eq!(html("*Zoë* _Zoë_"), "<em>Zoë</em> <em>Zoë</em>");
        assert_eq!(html("**Zoë and 🎲 unclosed"), "**Zoë and 🎲 unclosed");
        assert_eq!(html("**a \\é b**"), "<strong>a \\é b</strong>");
    }

    #[test]
    fn code_is_shown_as_written() {
        assert_eq!(
            html("run `**x** <y>` now"),
            "run <code>**x** &lt;y&gt;</code> now"
        );
        assert_eq!(html("``a ` b``"), "<code>a ` b</code>");
        assert_eq!(
            html("before\n```rust\nfn main() { *x* }\n```\nafter"),
            "before<pre class=\"codeblock\"><code data-lang=\"rust\">fn main() { *x* }</code></pre>after"
        );
        assert_eq!(
            html("```<@1>```"),
            "<pre class=\"codeblock\"><code>&lt;@1&gt;</code></pre>"
        );
    }

    #[test]
    fn blocks() {
        assert_eq!(
            html("# Title\n-# small print\ntext"),
            "<h1 class=\"md-heading\">Title</h1><div class=\"subtext\">small print</div>text"
        );
        assert_eq!(
            html("> one\n> **two**\nthree"),
            "<blockquote>one<br><strong>two</strong></blockquote>three"
        );
        assert_eq!(
            html("intro\n>>> all\nof this"),
            "intro<blockquote>all<br>of this</blockquote>"
        );
        assert_eq!(
            html("- a\n- b\n1. c"),
            "<ul><li>a</li><li>b</li></ul><ol><li>c</li></ol>"
        );
        assert_eq!(html("a\n\nb"), "a<br><br>b");
        assert_eq!(html("#hashtag"), "#hashtag");
    }

    #[test]
    fn links_only_to_the_web() {
        assert_eq!(
            html("see https://example.com/a_b_c."),
            "see <a href=\"https://example.com/a_b_c\" rel=\"noopener noreferrer nofollow\" \
             target=\"_blank\">https://example.com/a_b_c</a>."
        );
        assert_eq!(
            html("[the **docs**](https://example.com/?a=1&b=\"2\")"),
            "[the <strong>docs</strong>](https://example.com/?a=1&amp;b=&quot;2&quot;)"
        );
        assert_eq!(
            html("[docs](https://example.com/?a=1&b=2)"),
            "<a href=\"https://example.com/?a=1&amp;b=2\" rel=\"noopener noreferrer nofollow\" \
             target=\"_blank\">docs</a>"
        );
        assert_eq!(html("[x](javascript:alert(1))"), "[x](javascript:alert(1))");
    }

    #[test]
    fn nothing_from_the_message_becomes_markup() {
        let evil = "<script>alert('x')</script> <img src=x onerror=alert(1)> \"q\" & ||<i>||";
        let out = html(evil);
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(!out.contains("<i>"), "{out}");
        assert!(
            out.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{out}"
        );
        assert!(out.contains("&quot;q&quot; &amp;"), "{out}");
        let names = html("<@2>");
        assert!(names.contains("&lt;b&gt;bob"), "{names}");
        let lang = html("```\"><script>\nx\n```");
        assert!(!lang.contains("<script>"), "{lang}");
        let deep = "||".repeat(2000);
        assert!(!html(&deep).is_empty());
        let nested = format!("{}x{}", "**".repeat(200), "**".repeat(200));
        assert!(html(&nested).contains('x'));
    }

    #[test]
    fn timestamps_in_utc() {
        assert_eq!(
            html("<t:1750003600:R>"),
            "<time class=\"timestamp\" datetime=\"2025-06-15T16:06:40Z\" \
             title=\"Sunday, 15 June 2025 16:06 UTC\">in 1 hour</time>"
        );
        assert!(html("<t:1750000000:D>").contains(">15 June 2025</time>"));
        assert_eq!(html("<t:1:Q>"), "&lt;t:1:Q&gt;");
    }
}
