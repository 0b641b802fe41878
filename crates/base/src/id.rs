//! Ids that become parts of Redis keys or rows, made by one macro: [`key_id!`](crate::key_id).
//!
//! A key is a structure (`meetup_user:{id}:discord_user`): an id that could contain the
//! `:` separator, a `{` hash tag, a `*` or `?` of a `SCAN` pattern, white space or
//! nothing at all would blur it. Every string id is therefore parsed against a
//! [`Charset`] and a length bound once, where it enters (a command option, a URL, a
//! stored value), and is an opaque value after that.
//!
//! ```
//! base::key_id! {
//!     /// A game, minted by Tavern.
//!     pub struct GameId(String) {
//!         what: "game id", chars: base::id::LOWER_ALNUM, max: 32, random: 16,
//!     }
//! }
//! base::key_id! {
//!     /// A one-time linking id: a bearer secret, so `Debug` is redacted.
//!     pub secret struct LinkingId(String) {
//!         what: "linking id", chars: base::id::ALNUM, max: 64, random: 32,
//!     }
//! }
//! base::key_id! {
//!     /// A Meetup member: a positive number.
//!     pub struct MemberId(u64) { what: "member id" }
//! }
//! base::key_id! {
//!     /// A meeting: a UUID.
//!     pub struct MeetingId(Uuid) { what: "meeting id" }
//! }
//!
//! let game = GameId::parse("a1b2").unwrap();
//! assert_eq!(game.to_string(), "a1b2");
//! assert!(GameId::parse("a:b").is_err());
//! let link = LinkingId::random();
//! assert_eq!(format!("{link:?}"), "LinkingId([redacted])");
//! assert_eq!(MemberId::parse("42").unwrap().get(), 42);
//! assert!(MemberId::parse("+42").is_err());
//! assert!(MeetingId::parse(&MeetingId::random().to_string()).is_ok());
//! ```

/// Why a value could not be read as an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}: {reason}")]
pub struct InvalidId {
    /// What was expected, e.g. "Meetup event id".
    pub what: &'static str,
    /// The offending value, cut to 64 characters (it may come from anyone).
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl InvalidId {
    pub fn new(what: &'static str, value: &str, reason: impl Into<String>) -> InvalidId {
        InvalidId {
            what,
            value: value.chars().take(64).collect(),
            reason: reason.into(),
        }
    }
}

/// The bytes a string id may contain.
#[derive(Debug, Clone, Copy)]
pub struct Charset {
    allows: fn(u8) -> bool,
    /// In words, for the error ("ASCII letters and digits").
    describe: &'static str,
    /// What random ids are drawn from.
    alphabet: &'static [u8],
}

const ALNUM_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const LOWER_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// ASCII letters and digits.
pub const ALNUM: Charset = Charset {
    allows: |b| b.is_ascii_alphanumeric(),
    describe: "ASCII letters and digits",
    alphabet: ALNUM_ALPHABET,
};

/// Lower-case ASCII letters and digits (fits in a component's `custom_id` next to `:`).
pub const LOWER_ALNUM: Charset = Charset {
    allows: |b| b.is_ascii_digit() || b.is_ascii_lowercase(),
    describe: "lower-case ASCII letters and digits",
    alphabet: LOWER_ALPHABET,
};

/// Lower-case hexadecimal digits (tokens drawn as random bytes, hashes).
pub const HEX: Charset = Charset {
    allows: |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
    describe: "lower-case hexadecimal digits",
    alphabet: b"0123456789abcdef",
};

/// Names: ASCII letters, digits, `.`, `_` and `-` (controller ids, regions).
pub const NAME: Charset = Charset {
    allows: |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'),
    describe: "ASCII letters, digits, '.', '_' and '-'",
    alphabet: ALNUM_ALPHABET,
};

/// URL-safe tokens: ASCII letters, digits, `-` and `_` (base64url without padding).
pub const URL_SAFE: Charset = Charset {
    allows: |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'),
    describe: "ASCII letters, digits, '-' and '_'",
    alphabet: ALNUM_ALPHABET,
};

/// Key parts the seed itself writes with `:` inside: printable ASCII other than spaces,
/// `{` and `}` (a rate-limit endpoint `api:meetings:create`, an identifier `user:123` in
/// `ratelimit:{endpoint}:{identifier}:{window}`). Only for a part whose key is read back
/// whole, never split at its `:`; every other id uses a set without `:`.
pub const SEGMENTED: Charset = Charset {
    allows: |b| b.is_ascii_graphic() && b != b'{' && b != b'}',
    describe: "printable ASCII other than spaces, '{' and '}'",
    alphabet: ALNUM_ALPHABET,
};

impl Charset {
    /// Checks `value`: not empty, at most `max` bytes, only this set's bytes.
    pub fn check(&self, what: &'static str, value: &str, max: usize) -> Result<(), InvalidId> {
        if value.is_empty() {
            return Err(InvalidId::new(what, value, "it is empty"));
        }
        if value.len() > max {
            return Err(InvalidId::new(
                what,
                value,
                format!("it is longer than {max} characters"),
            ));
        }
        if !value.bytes().all(self.allows) {
            return Err(InvalidId::new(
                what,
                value,
                format!("only {} are allowed", self.describe),
            ));
        }
        Ok(())
    }

    /// `len` random bytes of this set's alphabet, from the thread's CSPRNG (several ids
    /// are bearer secrets, so they must not be guessable).
    pub fn random(&self, len: usize) -> String {
        use rand::Rng as _;
        let mut rng = rand::rng();
        (0..len)
            .map(|_| char::from(self.alphabet[rng.random_range(0..self.alphabet.len())]))
            .collect()
    }
}

/// Checks that `value` has at least `min` bytes (after [`Charset::check`]).
pub fn check_min(what: &'static str, value: &str, min: usize) -> Result<(), InvalidId> {
    if value.len() < min {
        return Err(InvalidId::new(
            what,
            value,
            format!("it is shorter than {min} characters"),
        ));
    }
    Ok(())
}

/// Reads a positive decimal number: digits only (no sign, no space: two spellings of
/// one id would name two keys), not zero, within 64 bits.
pub fn parse_positive(what: &'static str, value: &str) -> Result<u64, InvalidId> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidId::new(what, value, "it is not a decimal number"));
    }
    match value.parse::<u64>() {
        Ok(0) => Err(InvalidId::new(what, value, "it must not be zero")),
        Ok(n) => Ok(n),
        Err(_) => Err(InvalidId::new(what, value, "it does not fit in 64 bits")),
    }
}

/// Reads a UUID in any of its usual spellings.
pub fn parse_uuid(what: &'static str, value: &str) -> Result<uuid::Uuid, InvalidId> {
    uuid::Uuid::parse_str(value).map_err(|_| InvalidId::new(what, value, "it is not a UUID"))
}

/// Accepts a number or a decimal string (JSON readers in JavaScript lose precision on
/// large numbers, so ids are written as strings but old documents may hold numbers).
#[doc(hidden)]
#[derive(Debug)]
pub struct PositiveVisitor(pub &'static str);

impl serde::de::Visitor<'_> for PositiveVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a {} (a positive number)", self.0)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        if v == 0 {
            Err(E::custom(InvalidId::new(
                self.0,
                "0",
                "it must not be zero",
            )))
        } else {
            Ok(v)
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(InvalidId::new(self.0, &v.to_string(), "it is negative")))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        parse_positive(self.0, v).map_err(E::custom)
    }
}

/// Declares an id type; see the [module docs](crate::id) for the forms.
#[macro_export]
macro_rules! key_id {
    // A string id, shown in logs.
    (
        $(#[$doc:meta])*
        $vis:vis struct $name:ident(String) {
            what: $what:literal, chars: $chars:expr, max: $max:literal
            $(, min: $min:literal)? $(, random: $len:literal)? $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(String);

        #[allow(dead_code)]
        impl $name {
            /// What this id is, in words (for errors).
            pub const WHAT: &'static str = $what;

            /// Reads an id, refusing anything that could blur a key's structure.
            pub fn parse(value: &str) -> Result<$name, $crate::InvalidId> {
                $chars.check($what, value, $max)?;
                $( $crate::id::check_min($what, value, $min)?; )?
                Ok($name(value.to_owned()))
            }

            $(
            /// A fresh random id.
            pub fn random() -> $name {
                $name($chars.random($len))
            }
            )?

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::InvalidId;
            fn from_str(s: &str) -> Result<$name, $crate::InvalidId> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::InvalidId;
            fn try_from(s: String) -> Result<$name, $crate::InvalidId> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<$name, D::Error> {
                let raw = <String as $crate::__private::serde::Deserialize>::deserialize(deserializer)?;
                $name::parse(&raw).map_err(<D::Error as $crate::__private::serde::de::Error>::custom)
            }
        }
    };

    // A string id that is a bearer secret: `Debug` redacted, no `Display`, no serde.
    (
        $(#[$doc:meta])*
        $vis:vis secret struct $name:ident(String) {
            what: $what:literal, chars: $chars:expr, max: $max:literal
            $(, min: $min:literal)? $(, random: $len:literal)? $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        $vis struct $name($crate::Secret<String>);

        #[allow(dead_code)]
        impl $name {
            /// What this id is, in words (for errors).
            pub const WHAT: &'static str = $what;

            /// Reads an id, refusing anything that could blur a key's structure. The
            /// error shows no part of the value.
            pub fn parse(value: &str) -> Result<$name, $crate::InvalidId> {
                $chars
                    .check($what, value, $max)
                    $( .and_then(|()| $crate::id::check_min($what, value, $min)) )?
                    .map_err(|e| $crate::InvalidId::new($what, "[redacted]", e.reason))?;
                Ok($name($crate::Secret::new(value.to_owned())))
            }

            $(
            /// A fresh random id.
            pub fn random() -> $name {
                $name($crate::Secret::new($chars.random($len)))
            }
            )?

            /// The id, for the key or link that carries it. Never log it.
            pub fn expose(&self) -> &str {
                self.0.expose_str()
            }

            /// True when `presented` is this id (constant time).
            pub fn matches(&self, presented: &str) -> bool {
                self.0.matches(presented)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}([redacted])", stringify!($name))
            }
        }
    };

    // A positive number, written in decimal.
    (
        $(#[$doc:meta])*
        $vis:vis struct $name:ident(u64) { what: $what:literal $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(u64);

        #[allow(dead_code)]
        impl $name {
            /// What this id is, in words (for errors).
            pub const WHAT: &'static str = $what;

            /// Zero is refused: it usually means a default value slipped through.
            pub fn new(value: u64) -> Result<$name, $crate::InvalidId> {
                if value == 0 {
                    Err($crate::InvalidId::new($what, "0", "it must not be zero"))
                } else {
                    Ok($name(value))
                }
            }

            /// Reads the decimal form (digits only).
            pub fn parse(value: &str) -> Result<$name, $crate::InvalidId> {
                $crate::id::parse_positive($what, value).map($name)
            }

            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::InvalidId;
            fn from_str(s: &str) -> Result<$name, $crate::InvalidId> {
                $name::parse(s)
            }
        }

        /// Written as a decimal string (JavaScript readers lose precision on numbers).
        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }

        /// Read from a decimal string or a number.
        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<$name, D::Error> {
                deserializer
                    .deserialize_any($crate::id::PositiveVisitor($what))
                    .map($name)
            }
        }
    };

    // A UUID, written hyphenated in lower case (as PostgreSQL prints it).
    (
        $(#[$doc:meta])*
        $vis:vis struct $name:ident(Uuid) { what: $what:literal $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name($crate::__private::uuid::Uuid);

        #[allow(dead_code)]
        impl $name {
            /// What this id is, in words (for errors).
            pub const WHAT: &'static str = $what;

            /// A fresh random (v4) id.
            pub fn random() -> $name {
                $name($crate::__private::uuid::Uuid::new_v4())
            }

            pub fn from_uuid(id: $crate::__private::uuid::Uuid) -> $name {
                $name(id)
            }

            pub fn as_uuid(&self) -> $crate::__private::uuid::Uuid {
                self.0
            }

            pub fn parse(value: &str) -> Result<$name, $crate::InvalidId> {
                $crate::id::parse_uuid($what, value).map($name)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::InvalidId;
            fn from_str(s: &str) -> Result<$name, $crate::InvalidId> {
                $name::parse(s)
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<$name, D::Error> {
                let raw = <String as $crate::__private::serde::Deserialize>::deserialize(deserializer)?;
                $name::parse(&raw).map_err(<D::Error as $crate::__private::serde::de::Error>::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::key_id! {
        /// Test id.
        pub struct Word(String) { what: "word", chars: crate::id::LOWER_ALNUM, max: 8, random: 8 }
    }
    crate::key_id! {
        /// Test secret id.
        pub secret struct Ticket(String) { what: "ticket", chars: crate::id::ALNUM, max: 64, min: 16, random: 32 }
    }
    crate::key_id! {
        /// Test hex id with a minimum.
        pub struct Hash(String) { what: "hash", chars: crate::id::HEX, max: 8, min: 4 }
    }
    crate::key_id! {
        /// Test number id.
        pub struct Member(u64) { what: "member" }
    }
    crate::key_id! {
        /// Test uuid id.
        pub struct Meeting(Uuid) { what: "meeting" }
    }

    #[test]
    fn string_ids_refuse_what_would_blur_a_key() {
        assert_eq!(Word::parse("abc1").expect("ok").as_str(), "abc1");
        for bad in ["", "a:b", "a b", "ABC", "a*", "{a}", "abcdefghi"] {
            let error = Word::parse(bad).expect_err(bad);
            assert_eq!(error.what, "word");
        }
        let error = Word::parse("a:b").expect_err("colon");
        assert_eq!(
            error.to_string(),
            "`a:b` is not a valid word: only lower-case ASCII letters and digits are allowed"
        );
        let random = Word::random();
        assert_eq!(random.as_str().len(), 8);
        assert!(Word::parse(random.as_str()).is_ok());
        assert_ne!(Word::random(), Word::random());
    }

    #[test]
    fn string_ids_round_trip_through_serde_and_refuse_bad_input() {
        let id = Word::parse("x1").expect("ok");
        let json = serde_json::to_string(&id).expect("ser");
        assert_eq!(json, "\"x1\"");
        assert_eq!(serde_json::from_str::<Word>(&json).expect("de"), id);
        assert!(serde_json::from_str::<Word>("\"X:1\"").is_err());
    }

    #[test]
    fn secret_ids_never_show_their_value() {
        let ticket = Ticket::random();
        assert_eq!(ticket.expose().len(), 32);
        assert_eq!(format!("{ticket:?}"), "Ticket([redacted])");
        assert!(ticket.matches(ticket.expose()));
        let error = Ticket::parse("bad:value").expect_err("colon");
        assert!(!error.to_string().contains("bad:value"), "{error}");
        let error = Ticket::parse("short").expect_err("too short");
        assert_eq!(error.reason, "it is shorter than 16 characters");
        assert!(!error.to_string().contains("short`"), "{error}");
    }

    #[test]
    fn a_minimum_length_and_the_hex_charset_hold() {
        assert!(Hash::parse("0a1b").is_ok());
        assert!(Hash::parse("0a1").is_err());
        assert!(Hash::parse("0A1B").is_err());
        assert!(Hash::parse("0a1b2c3d4").is_err());
    }

    crate::key_id! {
        /// Test id with `:` inside.
        pub struct Part(String) { what: "key part", chars: crate::id::SEGMENTED, max: 16 }
    }

    #[test]
    fn segmented_ids_keep_their_colons_and_refuse_spaces_and_braces() {
        assert_eq!(
            Part::parse("api:meetings:x").expect("ok").as_str(),
            "api:meetings:x"
        );
        assert_eq!(Part::parse("user:123").expect("ok").to_string(), "user:123");
        for bad in [
            "",
            "a b",
            "{a}",
            "a}",
            "caf\u{e9}",
            "a\tb",
            "abcdefghijklmnopq",
        ] {
            let error = Part::parse(bad).expect_err(bad);
            assert_eq!(error.what, "key part");
        }
        let error = Part::parse("user {1}").expect_err("brace");
        assert_eq!(
            error.to_string(),
            "`user {1}` is not a valid key part: only printable ASCII other than spaces, '{' and '}' are allowed"
        );
    }

    #[test]
    fn number_ids_take_plain_positive_decimals_only() {
        assert_eq!(Member::parse("42").expect("ok").get(), 42);
        for bad in ["", "0", "+1", "-1", " 1", "1.0", "99999999999999999999"] {
            assert!(Member::parse(bad).is_err(), "{bad}");
        }
        assert!(Member::new(0).is_err());
        let json = serde_json::to_string(&Member::new(7).expect("ok")).expect("ser");
        assert_eq!(json, "\"7\"");
        assert_eq!(serde_json::from_str::<Member>("7").expect("num").get(), 7);
        assert_eq!(
            serde_json::from_str::<Member>("\"7\"").expect("str").get(),
            7
        );
        assert!(serde_json::from_str::<Member>("0").is_err());
        assert!(serde_json::from_str::<Member>("-3").is_err());
    }

    #[test]
    fn uuid_ids_print_hyphenated_lower_case() {
        let id = Meeting::parse("6F9619FF-8B86-D011-B42D-00C04FC964FF").expect("ok");
        assert_eq!(id.to_string(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert!(Meeting::parse("nope").is_err());
        let json = serde_json::to_string(&id).expect("ser");
        assert_eq!(serde_json::from_str::<Meeting>(&json).expect("de"), id);
    }
}
