//! Roll ids: every roll, in Discord and over REST, is recorded so a disputed roll can
//! be looked up and replayed: `/roll`, `/saved use` and `GET /api/rolls/roll`
//! ([`RecordedRollOp`]), and the combat tracker's initiative, damage, healing and
//! concentration saves ([`RollLog`], its ids on the reply's last line). Initiative
//! rerolled at the top of a round is not recorded (one per combatant each round).
//!
//! A roll gets a random 64-bit seed and is rolled with the dice crate's seeded
//! generator (`dice::Rng::seeded`); it gets a short id, 8 characters of Crockford's
//! base32 (`0-9`, `A-Z` without `I L O U`; 40 random bits), shown with the result.
//! `roll_{id}` ([`crate::schema::roll_key`]) holds a [`RollRecord`] (what was typed,
//! the expression after aliases, the seed, the time, the user, the mode and the
//! result) for 30 days ([`crate::schema::ROLL_TTL_SECS`]). The result is kept to at
//! most [`MAX_RECORDED_RESULT`] characters ([`recorded_result`]): the seed replays the
//! whole of it, and a record stays a few kilobytes however many dice were rolled, so
//! 30 days of rolls cannot fill Redis. `/roll-check ID` and `GET
//! /api/rolls/rolls/{id}` show it and roll the expression again with its seed, saying
//! whether the replay gives the same result (it does while the dice crate rolls the
//! same way). `/roll-check` shows what was typed in code spans its backticks cannot
//! end and a result the replay matches as `/roll` showed it (labels escaped, dropped
//! dice struck through); one it does not match, as recorded, escaped.
//!
//! A GM or blind roll ([`RollMode`]) is recorded with who may see its result (the
//! roller of a GM roll, and the GM); anyone else checking its id sees who rolled and
//! when, not what. A private roll (`/roll … private:true`, or an expression with
//! the `p` flag) is recorded the same way with `"mode": "private"`: its roller alone
//! sees its result, and a check of it is answered to them only. The seed says nothing
//! of `roll_{id}` (an addition), so the mode is one more value of the record's
//! existing `mode` field, not a field of its own.

use chrono::{DateTime, SecondsFormat, Utc};
use discord::model::GuildId;
use serde::{Deserialize, Serialize};
use store::Writes;

use crate::RollsError;
use crate::alias::{self, AliasBook};
use crate::domain::{ChannelId, UserId, code_span, escape};
use crate::ops::{Env, Operation, Plan, RollModel};
use crate::schema;

/// Crockford's base32 alphabet.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Length of a roll id.
pub const ID_LEN: usize = 8;
/// Most characters of a roll's rendered result kept in its record (as much as one
/// Discord message); a longer one is cut and ends with [`RESULT_CUT_NOTE`].
pub const MAX_RECORDED_RESULT: usize = 2000;
/// How a cut recorded result ends.
pub const RESULT_CUT_NOTE: &str = "… (cut: the seed replays the whole result)";

/// `text` (a rendered result) as a record keeps it: whole up to
/// [`MAX_RECORDED_RESULT`] characters, otherwise its beginning and [`RESULT_CUT_NOTE`],
/// [`MAX_RECORDED_RESULT`] characters in all.
pub fn recorded_result(text: &str) -> String {
    if text.chars().count() <= MAX_RECORDED_RESULT {
        return text.to_owned();
    }
    let keep = MAX_RECORDED_RESULT - RESULT_CUT_NOTE.chars().count();
    text.chars()
        .take(keep)
        .chain(RESULT_CUT_NOTE.chars())
        .collect()
}

/// A new random roll id.
pub fn new_id(rng: &mut dice::Rng) -> String {
    let bits = rng.next_u64();
    (0..ID_LEN)
        .map(|i| {
            let index = (bits >> (5 * i)) & 31;
            ALPHABET.get(index as usize).map_or('0', |b| char::from(*b))
        })
        .collect()
}

/// A roll id as typed (any case, `O` read as `0`, `I`/`L` as `1`, a leading `#` or
/// spaces ignored), in its stored form; `None` if it is not one.
pub fn parse_id(text: &str) -> Option<String> {
    let text = text.trim().trim_start_matches('#');
    if text.chars().count() != ID_LEN {
        return None;
    }
    text.chars()
        .map(|c| match c.to_ascii_uppercase() {
            'O' => Some('0'),
            'I' | 'L' => Some('1'),
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => Some(c),
            _ => None,
        })
        .collect()
}

/// Who sees a roll's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollMode {
    /// Everyone in the channel.
    #[default]
    Public,
    /// The roller and the GM; the channel sees that a roll happened.
    Gm,
    /// The GM only; the roller and the channel see that a roll happened.
    Blind,
    /// The roller only (`/roll … private:true` or the `p` flag).
    Private,
}

impl RollMode {
    /// `public`, `gm` or `blind`.
    pub fn parse(text: &str) -> Result<RollMode, RollsError> {
        match text.trim().to_lowercase().as_str() {
            "" | "public" => Ok(RollMode::Public),
            "gm" => Ok(RollMode::Gm),
            "blind" => Ok(RollMode::Blind),
            "private" => Ok(RollMode::Private),
            other => Err(RollsError::refused(format!(
                "`{other}` is not a roll mode: use `public`, `gm`, `blind` or `private`."
            ))),
        }
    }
}

/// What `roll_{id}` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollRecord {
    pub id: String,
    /// What the user typed.
    pub input: String,
    /// What was rolled: `input` with its aliases filled in.
    pub expression: String,
    /// The seed of `dice::Rng::seeded`, as a decimal string (64 bits do not fit a
    /// JavaScript number).
    #[serde(with = "seed_string")]
    pub seed: u64,
    /// When it was rolled (RFC 3339, UTC).
    pub time: String,
    pub user: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelId>,
    #[serde(default)]
    pub mode: RollMode,
    /// The total, as the roll's JSON gives it (a number).
    pub total: serde_json::Value,
    /// The rendered result, plain text, cut to [`MAX_RECORDED_RESULT`] characters
    /// ([`recorded_result`]).
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<bool>,
    /// Who may see the result of a GM or blind roll besides the roller (the GM);
    /// empty for a public or private roll.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gm: Vec<UserId>,
}

mod seed_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(seed: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&seed.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Seed {
            Text(String),
            Number(u64),
        }
        match Seed::deserialize(d)? {
            Seed::Number(n) => Ok(n),
            Seed::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl RollRecord {
    /// Whether `viewer` may see the result.
    pub fn visible_to(&self, viewer: UserId) -> bool {
        match self.mode {
            RollMode::Public => true,
            RollMode::Gm => viewer == self.user || self.gm.contains(&viewer),
            RollMode::Blind => self.gm.contains(&viewer),
            RollMode::Private => viewer == self.user,
        }
    }
}

/// `/roll`, `/saved use`, `GET /api/rolls/roll`: aliases filled in, rolled with a
/// fresh seed, recorded under a new id.
#[derive(Debug, Clone)]
pub struct RecordedRollOp {
    /// As typed.
    pub input: String,
    pub user: UserId,
    /// Whose server aliases apply.
    pub guild: Option<GuildId>,
    pub channel: Option<ChannelId>,
    pub mode: RollMode,
    /// Who receives a GM or blind roll.
    pub gm: Vec<UserId>,
}

/// A recorded roll: its id and seed, what was typed, and the roll.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRoll {
    pub id: String,
    #[serde(with = "seed_string")]
    pub seed: u64,
    pub input: String,
    /// Aliases used, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    pub mode: RollMode,
    #[serde(flatten)]
    pub roll: RollModel,
}

impl RecordedRoll {
    /// The Discord text: the roll, with what the aliases became and the id.
    pub fn render(&self) -> String {
        let mut text = self.roll.render();
        if !self.aliases.is_empty() {
            text = format!(
                "{} → {}\n{text}",
                code_span(&self.input),
                code_span(&self.roll.expression)
            );
        }
        format!("{text}\n-# roll id `{}`", self.id)
    }
}

/// `roll_{id}` set to `record` for [`schema::ROLL_TTL_SECS`].
fn put_record(writes: &mut Writes, record: &RollRecord) -> Result<(), RollsError> {
    let key = schema::roll_key(&record.id);
    let json = serde_json::to_string(record).map_err(|e| {
        store::StorageError::corrupt(&key, format!("cannot be written as JSON: {e}"))
    })?;
    writes.set_ex(&key, json, schema::ROLL_TTL_SECS);
    Ok(())
}

/// The rolls an operation makes besides `/roll` (the combat tracker's initiative,
/// damage, healing and concentration saves), each under an id of its own, recorded
/// with the operation's commit ([`RollLog::write_into`]), so they are checked and
/// replayed like any roll. Made afresh for each attempt of the operation.
#[derive(Debug)]
pub struct RollLog {
    user: UserId,
    channel: Option<ChannelId>,
    time: String,
    records: std::sync::Mutex<Vec<RollRecord>>,
}

impl RollLog {
    /// Rolls by `user` in `channel` at `at`.
    pub fn new(user: UserId, channel: Option<ChannelId>, at: DateTime<Utc>) -> RollLog {
        RollLog {
            user,
            channel,
            time: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            records: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Rolls `expression` on the dice pool with a fresh seed and records it (a
    /// public roll, typed as it is rolled, whatever the expression's flags: the
    /// tracker shows its rolls to the channel).
    pub async fn roll(
        &self,
        pool: &crate::pool::DicePool,
        expression: &str,
    ) -> Result<RollModel, RollsError> {
        let (roll, ..) = self
            .record(
                pool,
                expression,
                expression,
                RollMode::Public,
                Vec::new(),
                false,
            )
            .await?;
        Ok(roll)
    }

    /// Rolls `expression` (what `input` became) on the dice pool with a fresh seed and
    /// records it in `mode`, its result visible to `gm` too: the roll, its id, seed and
    /// the mode it was recorded in. A public roll whose expression asks for a private
    /// reply (the `p` flag) is recorded as [`RollMode::Private`].
    pub async fn roll_as(
        &self,
        pool: &crate::pool::DicePool,
        input: &str,
        expression: &str,
        mode: RollMode,
        gm: Vec<UserId>,
    ) -> Result<(RollModel, String, u64, RollMode), RollsError> {
        self.record(pool, input, expression, mode, gm, true).await
    }

    /// Rolls and records `expression`; in [`RollMode::Private`] instead of public when
    /// `flags` are followed and the expression asks for a private reply.
    async fn record(
        &self,
        pool: &crate::pool::DicePool,
        input: &str,
        expression: &str,
        mode: RollMode,
        gm: Vec<UserId>,
        flags: bool,
    ) -> Result<(RollModel, String, u64, RollMode), RollsError> {
        let mut fresh = dice::Rng::from_random_state();
        let seed = fresh.next_u64();
        let id = new_id(&mut fresh);
        let owned = expression.to_owned();
        let roll = pool
            .roll(move || {
                let outcome = dice::roll(&owned, &mut dice::Rng::seeded(seed))
                    .map_err(|e| RollsError::dice(&owned, &e))?;
                Ok::<_, RollsError>(RollModel::new(&owned, outcome))
            })
            .await??;
        let mode = if flags && mode == RollMode::Public && roll.private {
            RollMode::Private
        } else {
            mode
        };
        let record = RollRecord {
            id: id.clone(),
            input: input.to_owned(),
            expression: expression.to_owned(),
            seed,
            time: self.time.clone(),
            user: self.user,
            channel: self.channel,
            mode,
            total: total_json(roll.total),
            result: recorded_result(&roll.text),
            check: roll.check,
            gm,
        };
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
        Ok((roll, id, seed, mode))
    }

    /// The ids of the rolls so far, in order.
    pub fn ids(&self) -> Vec<String> {
        self.records
            .lock()
            .map(|r| r.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default()
    }

    /// `message` with a last line naming the ids of the rolls, if any.
    pub fn noted(&self, message: String) -> String {
        let ids = self.ids();
        if ids.is_empty() {
            return message;
        }
        let ids = ids
            .iter()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let label = if ids.contains(',') {
            "roll ids"
        } else {
            "roll id"
        };
        format!("{message}\n-# {label} {ids}")
    }

    /// A `roll_{id}` write for each roll.
    pub fn write_into(&self, writes: &mut Writes) -> Result<(), RollsError> {
        let records = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        records.iter().try_for_each(|r| put_record(writes, r))
    }
}

fn total_json(total: dice::Num) -> serde_json::Value {
    serde_json::to_value(total).unwrap_or(serde_json::Value::Null)
}

/// The aliases that apply to `user` (and the server's, if any).
async fn books(
    env: Env<'_>,
    user: UserId,
    guild: Option<GuildId>,
) -> Result<(AliasBook, AliasBook), RollsError> {
    let mine = env.repo.user(user).await?.value.aliases;
    let server = match guild {
        Some(guild) => env.repo.guild_aliases(guild).await?.value,
        None => AliasBook::new(),
    };
    Ok((mine, server))
}

impl Operation for RecordedRollOp {
    type Model = RecordedRoll;
    const COMMAND: &'static str = "roll";

    async fn plan(
        &self,
        env: Env<'_>,
        at: DateTime<Utc>,
    ) -> Result<Plan<RecordedRoll>, RollsError> {
        let (mine, server) = books(env, self.user, self.guild).await?;
        let expansion = alias::expand(&self.input, &mine, &server)?;
        let log = RollLog::new(self.user, self.channel, at);
        let gm = match self.mode {
            RollMode::Public | RollMode::Private => Vec::new(),
            RollMode::Gm | RollMode::Blind => self.gm.clone(),
        };
        let (roll, id, seed, mode) = log
            .roll_as(env.dice, &self.input, &expansion.expression, self.mode, gm)
            .await?;
        let mut writes = Writes::new();
        log.write_into(&mut writes)?;
        Ok(Plan {
            guard: None,
            writes,
            model: RecordedRoll {
                id,
                seed,
                input: self.input.clone(),
                aliases: expansion.used,
                mode,
                roll,
            },
        })
    }
}

/// `/roll-check ID`, `GET /api/rolls/rolls/{id}`.
#[derive(Debug, Clone)]
pub struct RollCheckOp {
    /// As typed.
    pub id: String,
    /// Who asks (a GM, blind or private roll's result is shown only to those who saw
    /// it).
    pub viewer: UserId,
}

/// A recorded roll looked up: the record (without its result when hidden from the
/// viewer) and whether rolling its expression with its seed again gives the same.
#[derive(Debug, Clone, Serialize)]
pub struct RollCheckModel {
    #[serde(flatten)]
    pub record: RollRecord,
    /// The result is hidden from the viewer (a GM, blind or private roll of someone
    /// else).
    pub hidden: bool,
    /// The replay's result equals the recorded one (`None` when hidden).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_matches: Option<bool>,
    pub markdown: String,
}

impl Operation for RollCheckOp {
    type Model = RollCheckModel;
    const COMMAND: &'static str = "roll-check";

    async fn plan(
        &self,
        env: Env<'_>,
        _: DateTime<Utc>,
    ) -> Result<Plan<RollCheckModel>, RollsError> {
        let Some(id) = parse_id(&self.id) else {
            return Err(RollsError::refused(format!(
                "`{}` is not a roll id: roll ids are {ID_LEN} letters and digits, as shown under a roll.",
                self.id.trim()
            )));
        };
        let Some(mut record) = env.repo.roll_record(&id).await? else {
            return Err(RollsError::NotFound(format!(
                "No roll `{id}` in the last 30 days (rolls are kept that long)."
            )));
        };
        let hidden = !record.visible_to(self.viewer);
        let mut shown = String::new();
        let replay_matches = if hidden {
            None
        } else {
            let (expression, seed) = (record.expression.clone(), record.seed);
            let replay = env
                .dice
                .roll(move || {
                    dice::roll(&expression, &mut dice::Rng::seeded(seed))
                        .map(|o| {
                            let model = RollModel::new(&expression, o);
                            (total_json(model.total), model.text.clone(), model.render())
                        })
                        .ok()
                })
                .await?;
            // A record made before results were cut holds the whole text.
            let matches = replay.as_ref().is_some_and(|(total, text, _)| {
                *total == record.total
                    && (record.result == recorded_result(text) || record.result == *text)
            });
            // The same roll is shown as `/roll` showed it (its Markdown, the labels
            // escaped, dropped dice struck through); a different one, only as recorded.
            shown = match replay {
                Some((_, _, markdown)) if matches => markdown,
                _ => escape(&record.result),
            };
            Some(matches)
        };
        let mode = match record.mode {
            RollMode::Public => "",
            RollMode::Gm => " (GM roll)",
            RollMode::Blind => " (blind roll)",
            RollMode::Private => " (private roll)",
        };
        let mut markdown = format!(
            "**Roll `{}`**{mode} by <@{}> at {}\n",
            record.id, record.user, record.time
        );
        if hidden {
            markdown.push_str(if record.mode == RollMode::Private {
                "Its result is only for whoever rolled it."
            } else {
                "Its result is only for the GM."
            });
            record.input = String::new();
            record.expression = String::new();
            record.result = String::new();
            record.total = serde_json::Value::Null;
            record.check = None;
            record.seed = 0;
        } else {
            if record.input != record.expression {
                markdown.push_str(&format!("Typed: {}\n", code_span(&record.input)));
            }
            markdown.push_str(&format!(
                "Expression: {}\nSeed: `{}`\nResult: {shown}\n",
                code_span(&record.expression),
                record.seed
            ));
            markdown.push_str(if replay_matches == Some(true) {
                "Replayed with its seed: the same result."
            } else {
                "Replayed with its seed: a different result (the dice have changed since)."
            });
        }
        Ok(Plan::read_only(RollCheckModel {
            record,
            hidden,
            replay_matches,
            markdown,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_base32_and_read_loosely() {
        let mut rng = dice::Rng::seeded(7);
        let id = new_id(&mut rng);
        assert_eq!(id.len(), ID_LEN);
        assert!(id.bytes().all(|b| ALPHABET.contains(&b)), "{id}");
        assert_eq!(parse_id(&id.to_lowercase()), Some(id.clone()));
        assert_eq!(parse_id(&format!(" #{id} ")), Some(id));
        assert_eq!(parse_id("oooollll"), Some("00001111".to_owned()));
        assert_eq!(parse_id("ABCDEFGU"), None, "U is not in the alphabet");
        assert_eq!(parse_id("ABC"), None);
        assert_ne!(new_id(&mut rng), new_id(&mut rng), "each draw is new");
    }

    /// A roll too long for one message loses its middle rolls, never its total, its
    /// critical or fumble line or its roll id (without which `/roll-check` cannot
    /// find it).
    #[test]
    fn a_long_roll_keeps_its_total_and_roll_id_when_cut() {
        let expression = "100 1d20+5";
        let (seed, outcome) = (0..10_000)
            .map(|seed| {
                (
                    seed,
                    dice::roll(expression, &mut dice::Rng::seeded(seed)).unwrap(),
                )
            })
            .find(|(_, o)| o.is_critical())
            .expect("a seed with a critical");
        let whole = RecordedRoll {
            id: "ABCDEFGH".into(),
            seed,
            input: expression.into(),
            aliases: Vec::new(),
            mode: RollMode::Public,
            roll: RollModel::new(expression, outcome),
        }
        .render();
        assert!(whole.chars().count() > crate::domain::DISCORD_MESSAGE_MAX);
        let tail: Vec<&str> = whole.lines().rev().take(3).collect();
        let cut = crate::domain::fit_message(&whole, crate::domain::DISCORD_MESSAGE_MAX, "*(cut)*");
        assert!(cut.chars().count() <= crate::domain::DISCORD_MESSAGE_MAX);
        assert!(cut.contains("*(cut)*"), "{cut}");
        for line in tail {
            assert!(cut.contains(line), "{line:?} kept in {cut}");
        }
        assert!(cut.ends_with("-# roll id `ABCDEFGH`"), "{cut}");
        assert!(cut.contains("**Critical!**"), "{cut}");
        assert!(cut.contains("Total"), "{cut}");
    }

    #[test]
    fn what_aliases_became_is_shown_as_typed_backticks_and_all() {
        let expression = "1d20+5";
        let outcome = dice::roll(expression, &mut dice::Rng::seeded(7)).unwrap();
        let shown = RecordedRoll {
            id: "ABCDEFGH".into(),
            seed: 7,
            input: "hit `x`".into(),
            aliases: vec!["hit".into()],
            mode: RollMode::Public,
            roll: RollModel::new(expression, outcome),
        }
        .render();
        assert!(shown.starts_with("`` hit `x` `` → `1d20+5`\n"), "{shown}");
    }

    #[test]
    fn a_seed_replays_the_same_roll() {
        let seed = dice::Rng::from_random_state().next_u64();
        let a = dice::roll("4d6kh3 + 1d20", &mut dice::Rng::seeded(seed)).unwrap();
        let b = dice::roll("4d6kh3 + 1d20", &mut dice::Rng::seeded(seed)).unwrap();
        assert_eq!(a.render_plain(), b.render_plain());
    }

    #[test]
    fn hidden_rolls_are_seen_by_the_gm_only() {
        let record = |mode| RollRecord {
            id: "ABCDEFGH".into(),
            input: "1d20".into(),
            expression: "1d20".into(),
            seed: u64::MAX,
            time: "2026-01-01T00:00:00.000Z".into(),
            user: UserId::new(1),
            channel: None,
            mode,
            total: 1.into(),
            result: "1".into(),
            check: None,
            gm: vec![UserId::new(9)],
        };
        let (roller, gm, other) = (UserId::new(1), UserId::new(9), UserId::new(5));
        assert!(record(RollMode::Public).visible_to(other));
        assert!(record(RollMode::Gm).visible_to(roller) && record(RollMode::Gm).visible_to(gm));
        assert!(!record(RollMode::Gm).visible_to(other));
        assert!(
            !record(RollMode::Blind).visible_to(roller) && record(RollMode::Blind).visible_to(gm)
        );
        let json = serde_json::to_value(record(RollMode::Blind)).unwrap();
        assert_eq!(json["seed"], u64::MAX.to_string());
        assert_eq!(json["mode"], "blind");
        let back: RollRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.seed, u64::MAX);
    }
}
