//! `init_{channel_id}`: a channel's initiative tracker.

use chrono::{DateTime, Utc};
use store::{StorageError, Writes, updated_time};

use super::{Repo, Versioned, to_json};
use crate::domain::{ChannelId, Tracker};
use crate::schema;

impl Repo {
    /// The channel's tracker (an empty one if the channel has none yet).
    pub async fn tracker(&self, channel: ChannelId) -> Result<Versioned<Tracker>, StorageError> {
        self.get_json(&schema::init_key(channel)).await
    }
}

/// Adds `SET init_{channel}` and its timestamp to `writes`.
pub fn put_tracker(
    writes: &mut Writes,
    channel: ChannelId,
    tracker: &Tracker,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    let key = schema::init_key(channel);
    let json = to_json(&key, tracker)?;
    updated_time::set_with_time(writes, &key, json, at);
    Ok(())
}
