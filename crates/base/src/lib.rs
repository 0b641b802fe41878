//! The leaf of Tavern's kit: the few types every crate shares, below the Discord, Meetup
//! and storage layers, so that each exists once.
//!
//! - [`Secret`]: the one redacting wrapper for tokens, client secrets, session ids,
//!   linking ids and intent states. `Debug` prints `[redacted]`; there is no `Display`;
//!   only [`Secret::expose`] gives the value, at the one place that sends or stores it.
//! - [`key_id!`]: the one macro for ids that become parts of Redis keys (or rows):
//!   a newtype with a private field, `parse` that refuses anything that could blur a
//!   key's structure, `Display`, `FromStr`, serde as a string, and on request a random
//!   constructor or a redacting `Debug` (for ids that are bearer secrets). Discord
//!   snowflakes are not made here: they are `discord::model` ids.
//! - [`Clock`]: what "now" is, so tests can move time ([`ManualClock`]).
//! - [`RecentLimit`]: at most so many of something in any span of time, in memory.
//! - [`FailureStreak`]: a repeated failure (an outage) told once when it begins and
//!   once when it ends.
//! - [`with_causes`]: an error's message with each of its causes said once.

mod causes;
mod clock;
pub mod id;
mod limit;
mod secret;
mod streak;

pub use causes::with_causes;
pub use clock::{Clock, ManualClock, SystemClock};
pub use id::InvalidId;
pub use limit::RecentLimit;
pub use secret::Secret;
pub use streak::FailureStreak;

#[doc(hidden)]
pub mod __private {
    //! What the [`key_id!`](crate::key_id) expansion names; not an API.
    pub use rand;
    pub use serde;
    pub use uuid;
}
