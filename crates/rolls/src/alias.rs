//! Aliases and saved rolls.
//!
//! An **alias** is a name for a piece of an expression: `attack` -> `1d20+7`. A user's
//! own aliases live in their `user_{id}` document (`aliases`); a server's in
//! `alias_guild_{guild_id}` ([`crate::schema`]), changed only by members with Manage
//! Server. A user's alias shadows the server's alias of the same name.
//!
//! # How an alias is used
//! Any word of a `/roll` expression (or of `GET /api/rolls/roll`) that names an alias is
//! replaced by its template, as written (no brackets added, so a template may carry a
//! comparison, flags or a repeat): `attack + 2` -> `1d20+7 + 2`. A word is a run of
//! letters, digits and `_` that starts with a letter; a word directly followed by `(` (a
//! function call) is never replaced. Names are matched ignoring case. Only words where
//! the dice read an operand are replaced: an annotation (`1d6[hit]`) and a roll's
//! trailing comment (`2d6+3 to hit`, `1d20 ! hit`, up to the next `;`) stay as
//! written, so an alias `hit` leaves `/roll 2d6+3 to hit` alone.
//!
//! # Arguments
//! A template may have placeholders: `{}` (filled in order) or `{1}` … `{9}` (by
//! position, may repeat); one template uses one kind, not both. Its arguments are the
//! words written after the alias's name, separated by spaces, up to the next `;`: with
//! `hit` -> `1d20+{} >= {}`, `hit 5 15` -> `1d20+5 >= 15`. An alias takes as many
//! arguments as its placeholders need (the highest `{n}`, or the number of `{}`); what
//! follows them stays as written. A missing argument is an error that says how many
//! the alias takes and shows how to pass them. Arguments are text, put in as written
//! (one that names an alias is expanded in the next round).
//!
//! # Bounds
//! At most [`MAX_USER_ALIASES`] aliases per user and [`MAX_GUILD_ALIASES`] per server;
//! names up to [`MAX_NAME_LEN`] characters, templates up to [`MAX_TEMPLATE_LEN`].
//! Templates may use other aliases; expansion repeats at most [`MAX_DEPTH`] times
//! (an alias that uses itself is refused then, naming it) and its result must stay
//! within the dice crate's input limit.
//!
//! # Saved rolls
//! `saved_rolls` of the user document (the seed's "saved rolls") are whole expressions
//! rolled by name with `/saved use name`: `/saved add|remove|list|use`. At most
//! [`MAX_SAVED_ROLLS`]; each is checked when saved (it must parse, after the user's
//! and the server's aliases). So is an alias, its placeholders filled with `1`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use discord::model::GuildId;
use serde::Serialize;
use store::{Writes, updated_time};

use crate::RollsError;
use crate::domain::{Refusal, UserId};
use crate::ops::{Env, Operation, Plan};
use crate::repo::put_user;
use crate::schema;

/// Most aliases of one user.
pub const MAX_USER_ALIASES: usize = 50;
/// Most aliases of one server.
pub const MAX_GUILD_ALIASES: usize = 100;
/// Most saved rolls of one user.
pub const MAX_SAVED_ROLLS: usize = 25;
/// Longest alias or saved-roll name.
pub const MAX_NAME_LEN: usize = 32;
/// Longest template or saved expression.
pub const MAX_TEMPLATE_LEN: usize = 200;
/// Most rounds of expansion (aliases used by aliases).
pub const MAX_DEPTH: usize = 5;
/// Highest placeholder number.
pub const MAX_ARGS: usize = 9;

/// Aliases by (lower-case) name.
pub type AliasBook = BTreeMap<String, String>;

fn refuse<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::new(message))
}

/// Checks a name: a letter, then letters, digits or `_`, at most [`MAX_NAME_LEN`]; not
/// something the dice already read (`d20`, `dF`). Returns it in lower case.
pub fn clean_name(name: &str) -> Result<String, Refusal> {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return refuse("A name is needed.");
    }
    if name.chars().count() > MAX_NAME_LEN {
        return refuse(format!("Names are at most {MAX_NAME_LEN} characters."));
    }
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return refuse(format!(
            "`{name}` cannot be a name: use a letter, then letters, digits or `_`."
        ));
    }
    if dice::parse(&name).is_ok() {
        return refuse(format!(
            "`{name}` is already a dice expression, so it cannot be a name."
        ));
    }
    Ok(name)
}

/// How many arguments `template` takes; refuses malformed or mixed placeholders.
pub fn arity(template: &str) -> Result<usize, Refusal> {
    let (mut sequential, mut highest) = (0usize, 0usize);
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        let after = rest.get(open..).unwrap_or_default();
        if after.starts_with('}') {
            return refuse(format!("`{template}` has a `}}` without its `{{`."));
        }
        let Some(close) = after.find('}') else {
            return refuse(format!("`{template}` has a `{{` without its `}}`."));
        };
        let inside = after.get(1..close).unwrap_or_default();
        if inside.is_empty() {
            sequential += 1;
        } else {
            match inside.parse::<usize>() {
                Ok(n) if (1..=MAX_ARGS).contains(&n) && !inside.starts_with('+') => {
                    highest = highest.max(n);
                }
                _ => {
                    return refuse(format!(
                        "`{{{inside}}}` is not a placeholder: use `{{}}` or `{{1}}` to `{{{MAX_ARGS}}}`."
                    ));
                }
            }
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if sequential > 0 && highest > 0 {
        return refuse(format!(
            "`{template}` mixes `{{}}` and numbered placeholders; use one kind."
        ));
    }
    if sequential > MAX_ARGS {
        return refuse(format!("A template takes at most {MAX_ARGS} arguments."));
    }
    Ok(sequential.max(highest))
}

/// Checks a template: not empty, at most [`MAX_TEMPLATE_LEN`], one line, placeholders
/// well formed.
pub fn clean_template(template: &str) -> Result<String, Refusal> {
    let template = template.trim();
    if template.is_empty() {
        return refuse("The alias needs an expression.");
    }
    if template.chars().count() > MAX_TEMPLATE_LEN {
        return refuse(format!(
            "Expressions here are at most {MAX_TEMPLATE_LEN} characters."
        ));
    }
    if template.chars().any(char::is_control) {
        return refuse("Expressions cannot contain control characters or line breaks.");
    }
    arity(template)?;
    Ok(template.to_owned())
}

/// Refuses a template that does not roll, as `/saved add` refuses a saved roll: its
/// placeholders filled with `1` and the aliases it uses expanded (`user`'s, then
/// `guild`'s), it must parse as a dice expression.
fn check_rolls(template: &str, user: &AliasBook, guild: &AliasBook) -> Result<(), RollsError> {
    let template = clean_template(template)?;
    let args = vec!["1"; arity(&template)?];
    let expanded = expand(&fill(&template, &args), user, guild)?;
    dice::parse(&expanded.expression).map_err(|e| RollsError::dice(&expanded.expression, &e))?;
    Ok(())
}

/// `template` with its placeholders filled from `args` (which has enough of them).
fn fill(template: &str, args: &[&str]) -> String {
    let mut out = String::with_capacity(template.len());
    let (mut rest, mut next) = (template, 0usize);
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open..).unwrap_or_default();
        let close = after.find('}').unwrap_or(after.len().saturating_sub(1));
        let inside = after.get(1..close).unwrap_or_default();
        let index = if inside.is_empty() {
            next += 1;
            next
        } else {
            inside.parse().unwrap_or(0)
        };
        out.push_str(
            index
                .checked_sub(1)
                .and_then(|i| args.get(i))
                .unwrap_or(&""),
        );
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// The result of expanding an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub expression: String,
    /// The aliases used, in order of first use.
    pub used: Vec<String>,
}

/// Replaces the aliases in `input` (the user's first, then the server's), round after
/// round, until none is left; see the module docs for the rules.
pub fn expand(input: &str, user: &AliasBook, guild: &AliasBook) -> Result<Expansion, Refusal> {
    let lookup = |word: &str| {
        let key = word.to_lowercase();
        user.get(&key)
            .or_else(|| guild.get(&key))
            .map(|t| (key, t.as_str()))
    };
    let mut text = input.to_owned();
    let mut used: Vec<String> = Vec::new();
    for _ in 0..MAX_DEPTH {
        let (next, replaced) = expand_once(&text, &lookup, &mut used)?;
        if !replaced {
            return Ok(Expansion {
                expression: text,
                used,
            });
        }
        if next.len() > dice::limits::MAX_INPUT_LEN {
            return refuse(format!(
                "With its aliases filled in the expression is {} bytes, over the limit of {}.",
                next.len(),
                dice::limits::MAX_INPUT_LEN
            ));
        }
        text = next;
    }
    // Still aliases left after the last round: they nest too deep (or loop).
    let (_, replaced) = expand_once(&text, &lookup, &mut used)?;
    if replaced {
        let names = used
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return refuse(format!(
            "Aliases here use aliases more than {MAX_DEPTH} levels deep (does one use itself?): {names}."
        ));
    }
    Ok(Expansion {
        expression: text,
        used,
    })
}

/// One round: every alias word of `text` replaced.
fn expand_once<'b>(
    text: &str,
    lookup: &impl Fn(&str) -> Option<(String, &'b str)>,
    used: &mut Vec<String>,
) -> Result<(String, bool), Refusal> {
    let mut out = String::with_capacity(text.len());
    let mut replaced = false;
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_alphanumeric() || *c == '_' || *c == '[')
            .map_or(rest.len(), |(i, _)| i);
        out.push_str(rest.get(..start).unwrap_or_default());
        rest = rest.get(start..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        // An annotation (`1d6[fire]`) is display text: copied as written.
        if rest.starts_with('[') {
            let end = rest.find(']').map_or(rest.len(), |i| i + 1);
            out.push_str(rest.get(..end).unwrap_or_default());
            rest = rest.get(end..).unwrap_or_default();
            continue;
        }
        let end = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map_or(rest.len(), |(i, _)| i);
        let word = rest.get(..end).unwrap_or_default();
        let after = rest.get(end..).unwrap_or_default();
        let candidate =
            word.starts_with(|c: char| c.is_ascii_alphabetic()) && !after.starts_with('(');
        let Some((name, template)) = candidate.then(|| lookup(word)).flatten() else {
            out.push_str(word);
            rest = after;
            continue;
        };
        if in_comment(&out) {
            // The rest of this roll is its comment (`2d6+3 to hit`): as written.
            let end = rest.find(';').unwrap_or(rest.len());
            out.push_str(rest.get(..end).unwrap_or_default());
            rest = rest.get(end..).unwrap_or_default();
            continue;
        }
        let wanted = arity(template)?;
        let (args, remaining) = take_args(after, wanted);
        if args.len() < wanted {
            let placeholders = (1..=wanted)
                .map(|i| format!("{{{i}}}"))
                .collect::<Vec<_>>()
                .join(" ");
            let example = (1..=wanted)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            return refuse(format!(
                "The alias `{name}` (`{template}`) takes {wanted} argument{}, and got {}. Write them after its name, separated by spaces: `{name} {example}` fills {placeholders}.",
                if wanted == 1 { "" } else { "s" },
                args.len()
            ));
        }
        out.push_str(&fill(template, &args));
        if !used.contains(&name) {
            used.push(name);
        }
        replaced = true;
        rest = remaining;
    }
    Ok((out, replaced))
}

/// Whether a word written right after `before` starts the comment of its roll, where
/// the dice read free text (`2d6+3 to hit`, `1d20 ! hit`), rather than an operand.
/// Asked of the dice parser: `before` with a number in the word's place reads with
/// a comment on its last roll. When `before` does not read at all (an unclosed
/// bracket, say) the word counts as an operand.
fn in_comment(before: &str) -> bool {
    let probe = format!("{before}0");
    dice::parse(&probe).is_ok_and(|program| program.comments().last().flatten().is_some())
}

/// Up to `n` space-separated words at the start of `text`, stopping at `;`; and the
/// text after the last one taken.
fn take_args(text: &str, n: usize) -> (Vec<&str>, &str) {
    let mut args = Vec::new();
    let mut rest = text;
    while args.len() < n {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            break;
        }
        let end = trimmed
            .find(|c: char| c.is_whitespace() || c == ';')
            .unwrap_or(trimmed.len());
        args.push(trimmed.get(..end).unwrap_or_default());
        rest = trimmed.get(end..).unwrap_or_default();
    }
    if args.is_empty() {
        (args, text)
    } else {
        (args, rest)
    }
}

/// Whose aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User(UserId),
    /// A server's; the caller checked Manage Server before a change.
    Guild(GuildId),
}

/// What to do with aliases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasAction {
    List,
    Add { name: String, template: String },
    Remove { name: String },
}

/// `/alias add|remove|list [server]`.
#[derive(Debug, Clone)]
pub struct AliasOp {
    pub scope: Scope,
    pub action: AliasAction,
    /// The server whose aliases a new user alias may use (where it was added).
    pub guild: Option<GuildId>,
}

/// Aliases after a change (or as they are).
#[derive(Debug, Clone, Serialize)]
pub struct AliasesModel {
    /// `user` or `server`.
    pub scope: &'static str,
    pub aliases: AliasBook,
    pub max: usize,
    /// What changed, in a sentence (empty for `list`).
    pub message: String,
    pub markdown: String,
}

fn render_book(title: &str, book: &AliasBook, empty: &str) -> String {
    if book.is_empty() {
        return format!("**{title}**\n{empty}");
    }
    let mut out = format!("**{title}**\n");
    for (name, template) in book {
        out.push_str(&format!("`{name}` → `{template}`\n"));
    }
    out.trim_end().to_owned()
}

/// Applies `action` to `book` (at most `max` entries); the sentence saying what changed.
fn change(
    book: &mut AliasBook,
    action: &AliasAction,
    max: usize,
    what: &str,
) -> Result<String, Refusal> {
    match action {
        AliasAction::List => Ok(String::new()),
        AliasAction::Add { name, template } => {
            let name = clean_name(name)?;
            let template = clean_template(template)?;
            if !book.contains_key(&name) && book.len() >= max {
                return refuse(format!(
                    "There are already {max} {what}, the most allowed; remove one first."
                ));
            }
            let message = format!("Saved `{name}` → `{template}`.");
            book.insert(name, template);
            Ok(message)
        }
        AliasAction::Remove { name } => {
            let key = name.trim().to_lowercase();
            if book.remove(&key).is_none() {
                return Err(Refusal::missing(format!(
                    "There is no `{key}` among the {what}."
                )));
            }
            Ok(format!("Removed `{key}`."))
        }
    }
}

impl Operation for AliasOp {
    type Model = AliasesModel;
    const COMMAND: &'static str = "alias";

    async fn plan(
        &self,
        env: Env<'_>,
        at: DateTime<Utc>,
    ) -> Result<Plan<AliasesModel>, RollsError> {
        match self.scope {
            Scope::User(user) => {
                let read = env.repo.user(user).await?;
                let mut doc = read.value;
                if let AliasAction::Add { template, .. } = &self.action {
                    let server = match self.guild {
                        Some(guild) => env.repo.guild_aliases(guild).await?.value,
                        None => AliasBook::new(),
                    };
                    check_rolls(template, &doc.aliases, &server)?;
                }
                let message = change(
                    &mut doc.aliases,
                    &self.action,
                    MAX_USER_ALIASES,
                    "aliases of yours",
                )?;
                let model = AliasesModel {
                    scope: "user",
                    markdown: render_book(
                        "Your aliases",
                        &doc.aliases,
                        "None yet: `/alias add name expression`.",
                    ),
                    aliases: doc.aliases.clone(),
                    max: MAX_USER_ALIASES,
                    message,
                };
                if self.action == AliasAction::List {
                    return Ok(Plan::read_only(model));
                }
                let mut writes = Writes::new();
                put_user(&mut writes, user, &doc, at)?;
                Ok(Plan {
                    guard: Some((schema::user_key(user), read.raw)),
                    writes,
                    model,
                })
            }
            Scope::Guild(guild) => {
                let read = env.repo.guild_aliases(guild).await?;
                let mut book = read.value;
                if let AliasAction::Add { template, .. } = &self.action {
                    check_rolls(template, &AliasBook::new(), &book)?;
                }
                let message = change(&mut book, &self.action, MAX_GUILD_ALIASES, "server aliases")?;
                let model = AliasesModel {
                    scope: "server",
                    markdown: render_book(
                        "Server aliases",
                        &book,
                        "None yet: `/alias add name expression server:True`.",
                    ),
                    aliases: book.clone(),
                    max: MAX_GUILD_ALIASES,
                    message,
                };
                if self.action == AliasAction::List {
                    return Ok(Plan::read_only(model));
                }
                let key = schema::guild_alias_key(guild);
                let json = serde_json::to_string(&book).map_err(|e| {
                    store::StorageError::corrupt(&key, format!("cannot be written as JSON: {e}"))
                })?;
                let mut writes = Writes::new();
                updated_time::set_with_time(&mut writes, &key, json, at);
                Ok(Plan {
                    guard: Some((key, read.raw)),
                    writes,
                    model,
                })
            }
        }
    }
}

/// What to do with saved rolls (`use` is a roll: [`crate::history::RecordedRollOp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavedAction {
    List,
    Add { name: String, expression: String },
    Remove { name: String },
}

/// `/saved add|remove|list`.
#[derive(Debug, Clone)]
pub struct SavedOp {
    pub user: UserId,
    /// The server whose aliases a new saved roll may use.
    pub guild: Option<GuildId>,
    pub action: SavedAction,
}

impl Operation for SavedOp {
    type Model = AliasesModel;
    const COMMAND: &'static str = "saved";

    async fn plan(
        &self,
        env: Env<'_>,
        at: DateTime<Utc>,
    ) -> Result<Plan<AliasesModel>, RollsError> {
        let read = env.repo.user(self.user).await?;
        let mut doc = read.value;
        let action = match &self.action {
            SavedAction::List => AliasAction::List,
            SavedAction::Add { name, expression } => {
                let guild = match self.guild {
                    Some(guild) => env.repo.guild_aliases(guild).await?.value,
                    None => AliasBook::new(),
                };
                let expression = clean_template(expression)?;
                if arity(&expression)? > 0 {
                    return Err(RollsError::refused(
                        "A saved roll is a whole expression: placeholders belong in `/alias`.",
                    ));
                }
                let expanded = expand(&expression, &doc.aliases, &guild)?;
                dice::parse(&expanded.expression)
                    .map_err(|e| RollsError::dice(&expanded.expression, &e))?;
                AliasAction::Add {
                    name: name.clone(),
                    template: expression,
                }
            }
            SavedAction::Remove { name } => AliasAction::Remove { name: name.clone() },
        };
        let message = change(
            &mut doc.saved_rolls,
            &action,
            MAX_SAVED_ROLLS,
            "saved rolls of yours",
        )?;
        let model = AliasesModel {
            scope: "saved",
            markdown: render_book(
                "Your saved rolls",
                &doc.saved_rolls,
                "None yet: `/saved add name expression`.",
            ),
            aliases: doc.saved_rolls.clone(),
            max: MAX_SAVED_ROLLS,
            message,
        };
        if action == AliasAction::List {
            return Ok(Plan::read_only(model));
        }
        let mut writes = Writes::new();
        put_user(&mut writes, self.user, &doc, at)?;
        Ok(Plan {
            guard: Some((schema::user_key(self.user), read.raw)),
            writes,
            model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(entries: &[(&str, &str)]) -> AliasBook {
        entries
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn names_are_words_that_are_not_dice() {
        assert_eq!(clean_name(" Attack ").unwrap(), "attack");
        assert!(clean_name("d20").is_err());
        assert!(clean_name("2hit").is_err());
        assert!(clean_name("hit-me").is_err());
        assert!(clean_name("").is_err());
        assert!(clean_name(&"a".repeat(33)).is_err());
    }

    #[test]
    fn placeholders_are_counted_and_checked() {
        assert_eq!(arity("1d20+7").unwrap(), 0);
        assert_eq!(arity("1d20+{} >= {}").unwrap(), 2);
        assert_eq!(arity("{2}d6+{1}+{1}").unwrap(), 2);
        assert!(arity("{} {1}").is_err());
        assert!(arity("{x}").is_err());
        assert!(arity("{10}").is_err());
        assert!(arity("1d20 {").is_err());
        assert!(arity("1d20 }").is_err());
    }

    #[test]
    fn aliases_expand_with_arguments_and_user_ones_win() {
        let user = book(&[("attack", "1d20+7"), ("hit", "1d20+{} >= {}")]);
        let guild = book(&[("attack", "1d20+1"), ("dmg", "{2}d6+{1}")]);
        let e = expand("attack + 2", &user, &guild).unwrap();
        assert_eq!(e.expression, "1d20+7 + 2");
        assert_eq!(
            expand("ATTACK", &book(&[]), &guild).unwrap().expression,
            "1d20+1"
        );
        assert_eq!(
            expand("hit 5 15", &user, &guild).unwrap().expression,
            "1d20+5 >= 15"
        );
        assert_eq!(
            expand("dmg 3 2; attack", &user, &guild).unwrap().expression,
            "2d6+3; 1d20+7"
        );
        assert_eq!(
            expand("4d6kh3 + floor(2)", &user, &guild)
                .unwrap()
                .expression,
            "4d6kh3 + floor(2)"
        );
        let missing = expand("hit 5", &user, &guild).unwrap_err().into_message();
        assert!(
            missing.contains("takes 2 arguments, and got 1"),
            "{missing}"
        );
        assert!(missing.contains("`hit 1 2`"), "{missing}");
        let missing = expand("dmg; 1d4", &user, &guild)
            .unwrap_err()
            .into_message();
        assert!(missing.contains("got 0"), "{missing}");
    }

    /// Only words where the dice read an operand are aliases: a roll's comment and
    /// annotations stay as written.
    #[test]
    fn comments_and_annotations_are_not_expanded() {
        let user = book(&[("hit", "1d20+{} >= {}"), ("fire", "1d6")]);
        let none = book(&[]);
        let same = |input: &str| {
            let e = expand(input, &user, &none).expect(input);
            assert_eq!(e.expression, input);
            assert!(e.used.is_empty(), "{input}: {:?}", e.used);
        };
        same("2d6+3 to hit");
        same("1d20 ! hit");
        same("1d20 # hit me");
        same("2d6[hit] + 1d4[fire]");
        same("1d20+5 fire damage");
        // Operands still expand, before a comment and in the next roll.
        assert_eq!(
            expand("fire + 2 fire damage; hit 5 15 to hit", &user, &none)
                .unwrap()
                .expression,
            "1d6 + 2 fire damage; 1d20+5 >= 15 to hit"
        );
        assert_eq!(
            expand("1d8 + fire[fire]", &user, &none).unwrap().expression,
            "1d8 + 1d6[fire]"
        );
        assert_eq!(
            expand("2d6 + (fire)", &user, &none).unwrap().expression,
            "2d6 + (1d6)"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = book(&[("a", "b+1"), ("b", "c+1"), ("c", "1d4")]);
        assert_eq!(
            expand("a", &nested, &book(&[])).unwrap().expression,
            "1d4+1+1"
        );
        let looped = book(&[("a", "b"), ("b", "a")]);
        let error = expand("a", &looped, &book(&[])).unwrap_err().into_message();
        assert!(error.contains("more than 5 levels"), "{error}");
        let bomb = book(&[("x", "x x x x")]);
        assert!(expand("x", &bomb, &book(&[])).is_err());
    }

    #[test]
    fn books_are_capped() {
        let mut b = AliasBook::new();
        for i in 0..3 {
            let add = AliasAction::Add {
                name: format!("a{i}"),
                template: "1d4".into(),
            };
            change(&mut b, &add, 2, "aliases")
                .map(|_| ())
                .unwrap_or_else(|e| {
                    assert_eq!(i, 2, "{e}");
                });
        }
        assert_eq!(b.len(), 2);
        let replace = AliasAction::Add {
            name: "a0".into(),
            template: "1d6".into(),
        };
        assert!(
            change(&mut b, &replace, 2, "aliases").is_ok(),
            "replacing fits"
        );
    }
}
