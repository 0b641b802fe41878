//! `user_{id}`: a user's characters and saved rolls.

use chrono::{DateTime, Utc};
use store::{StorageError, Writes, updated_time};

use super::{Repo, Versioned, to_json};
use crate::domain::{UserDoc, UserId};
use crate::schema;

impl Repo {
    /// The user's document (an empty one if the user has none yet).
    pub async fn user(&self, user: UserId) -> Result<Versioned<UserDoc>, StorageError> {
        self.get_json(&schema::user_key(user)).await
    }
}

/// Adds `SET user_{id}` and its timestamp to `writes`.
pub fn put_user(
    writes: &mut Writes,
    user: UserId,
    doc: &UserDoc,
    at: DateTime<Utc>,
) -> Result<(), StorageError> {
    let key = schema::user_key(user);
    let json = to_json(&key, doc)?;
    updated_time::set_with_time(writes, &key, json, at);
    Ok(())
}
