//! Discord's message Markdown, for text a user wrote that must show as written.

/// `text` as Discord shows it literally: Markdown (`**`, `_`, `~`, `` ` ``, `|`, `>`,
/// `#`, `[links]`, `:emoji:`) and mentions (`<@…>`, `@everyone`) escaped with a
/// backslash, which Discord hides. For names, notes and labels shown outside a code
/// span.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// [`escape`], appended to `out`.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '<' | '>' | '@' | '#' | '[' | ']' | ':'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_mentions_links_and_emoji_are_escaped_and_the_rest_kept() {
        assert_eq!(escape("<@123>"), "\\<\\@123\\>");
        assert_eq!(escape("@everyone"), "\\@everyone");
        assert_eq!(
            escape("**Bold** _it_ ~~x~~ `c` ||s||"),
            "\\*\\*Bold\\*\\* \\_it\\_ \\~\\~x\\~\\~ \\`c\\` \\|\\|s\\|\\|"
        );
        assert_eq!(
            escape("> # [a](b) :smile: \\"),
            "\\> \\# \\[a\\](b) \\:smile\\: \\\\"
        );
        assert_eq!(
            escape("Vex the Grey, 3rd (fire)"),
            "Vex the Grey, 3rd (fire)"
        );
        let mut out = String::from("**");
        escape_into(&mut out, "a*b");
        assert_eq!(out, "**a\\*b");
    }
}
