//! [`with_causes`]: an error's message with the causes it does not already say.

/// `error`'s message followed by those of its causes (its `source` chain), joined with
/// `: `; a cause whose text the message so far already holds is left out, and so is an
/// empty one.
///
/// Client libraries disagree on where the why goes: reqwest says only `error sending
/// request` and keeps `tcp connect error: Connection refused` in its causes, while sqlx
/// and redis put the cause in their own message and name it as the source too. This
/// says each cause once either way, so an error type whose message uses it can name no
/// `source` of its own.
///
/// ```
/// #[derive(Debug)]
/// struct Outer(std::io::Error);
/// impl std::fmt::Display for Outer {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("error sending request")
///     }
/// }
/// impl std::error::Error for Outer {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
/// assert_eq!(
///     base::with_causes(&Outer(refused)),
///     "error sending request: Connection refused"
/// );
/// ```
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::with_causes;

    /// An error saying `text`, caused by `cause`.
    #[derive(Debug)]
    struct Said {
        text: &'static str,
        cause: Option<Box<Said>>,
    }

    impl std::fmt::Display for Said {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.text)
        }
    }

    impl std::error::Error for Said {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.cause
                .as_deref()
                .map(|c| c as &(dyn std::error::Error + 'static))
        }
    }

    fn said(text: &'static str, cause: Option<Said>) -> Said {
        Said {
            text,
            cause: cause.map(Box::new),
        }
    }

    #[test]
    fn each_cause_is_said_once_and_empty_ones_not_at_all() {
        let refused = said("Connection refused", None);
        let connect = said("tcp connect error", Some(refused));
        let outer = said("error sending request", Some(connect));
        assert_eq!(
            with_causes(&outer),
            "error sending request: tcp connect error: Connection refused"
        );
        // A message that already says its cause (sqlx, redis).
        let inner = said("Connection refused", None);
        let outer = said("io error: Connection refused", Some(inner));
        assert_eq!(with_causes(&outer), "io error: Connection refused");
        let empty = said("", None);
        let outer = said("failed", Some(empty));
        assert_eq!(with_causes(&outer), "failed");
    }
}
