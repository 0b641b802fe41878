//! Scopes: what a token or an API key may do (`meetings:create`, `meetings:read`, ...).

use std::collections::BTreeSet;
use std::fmt;

/// One scope of the meetings API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Create meetings.
    MeetingsCreate,
    /// Read meetings (and get a join grant).
    MeetingsRead,
    /// Join meetings.
    MeetingsJoin,
    /// Change or end meetings one created.
    MeetingsManage,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::MeetingsCreate,
        Scope::MeetingsRead,
        Scope::MeetingsJoin,
        Scope::MeetingsManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MeetingsCreate => "meetings:create",
            Scope::MeetingsRead => "meetings:read",
            Scope::MeetingsJoin => "meetings:join",
            Scope::MeetingsManage => "meetings:manage",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Every scope: what a user's own access token holds.
    pub fn all() -> Scopes {
        Scopes(Scope::ALL.into_iter().collect())
    }

    /// Reads a list given by a person: every entry must be a known scope, and there
    /// must be at least one. The error names the unknown ones and the known ones.
    pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut scopes = BTreeSet::new();
        let mut unknown = Vec::new();
        for item in items {
            match Scope::parse(item.trim()) {
                Some(scope) => {
                    scopes.insert(scope);
                }
                None => unknown.push(format!("`{}`", item.trim())),
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "unknown scope {}; the scopes are {}",
                unknown.join(", "),
                Scope::ALL.map(Scope::as_str).join(", ")
            ));
        }
        if scopes.is_empty() {
            return Err("give at least one scope".to_owned());
        }
        Ok(Scopes(scopes))
    }

    /// Reads stored or signed scopes, keeping the known ones (a scope retired since is
    /// simply no longer held).
    pub fn lenient<'a>(items: impl IntoIterator<Item = &'a str>) -> Scopes {
        Scopes(items.into_iter().filter_map(Scope::parse).collect())
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// As stored in `api_keys.scopes` and returned in JSON.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }

    /// As a JWT's `scope` claim: space-separated.
    pub fn to_claim(&self) -> String {
        self.to_vec().join(" ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn scope_lists_name_what_is_unknown() {
        let scopes = Scopes::parse_list(["meetings:read", "meetings:create"]).unwrap();
        assert_eq!(scopes.to_claim(), "meetings:create meetings:read");
        let err = Scopes::parse_list(["meetings:read", "meetings:rread"]).unwrap_err();
        assert!(
            err.contains("`meetings:rread`") && err.contains("meetings:join"),
            "{err}"
        );
        assert!(Scopes::parse_list([]).is_err());
        assert_eq!(
            Scopes::lenient("meetings:read gone:away".split(' ')).to_vec(),
            ["meetings:read"]
        );
    }
}
