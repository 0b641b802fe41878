//! Deterministic time and dice for tests and benchmarks of the drinking game.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{Clock, DiceSource, RandomDice};
use crate::schema::{Die, PlayerId};

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(start))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += chrono::TimeDelta::from_std(by).unwrap_or(chrono::TimeDelta::MAX);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|e| *e.into_inner())
    }
}

/// Dice scripted per player: each player's rolls come from their own queue, so the
/// result does not depend on the order in which racing presses are handled. A player
/// whose queue is empty rolls `fallback` (or fair dice when it is `None`).
#[derive(Debug, Default)]
pub struct ScriptedDice {
    queues: Mutex<HashMap<PlayerId, VecDeque<Die>>>,
    fallback: Option<Die>,
}

impl ScriptedDice {
    pub fn new(fallback: Option<Die>) -> ScriptedDice {
        ScriptedDice {
            queues: Mutex::new(HashMap::new()),
            fallback,
        }
    }

    /// Queues `rolls` (values 1 to 6; others are ignored) for `player`.
    pub fn script(&self, player: PlayerId, rolls: &[u8]) {
        if let Ok(mut queues) = self.queues.lock() {
            queues
                .entry(player)
                .or_default()
                .extend(rolls.iter().filter_map(|v| Die::new(*v).ok()));
        }
    }
}

impl DiceSource for ScriptedDice {
    fn d6(&self, player: PlayerId) -> Die {
        let scripted = self
            .queues
            .lock()
            .ok()
            .and_then(|mut q| q.get_mut(&player).and_then(VecDeque::pop_front));
        scripted
            .or(self.fallback)
            .unwrap_or_else(|| RandomDice.d6(player))
    }
}
