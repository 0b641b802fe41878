//! The Meetup members' display names the sync saw in RSVP lists and among hosts
//! (Tavern's own keys, [`schema::meetup_name`]): the seed keeps only member ids, and a
//! member who has not linked a Discord account is better named than numbered.

use std::collections::HashMap;

use store::Writes;

use super::{Repo, RepoError};
use crate::domain::MeetupUserId;
use crate::schema;

/// The most of a Meetup name kept.
pub const MEETUP_NAME_CHARS: usize = 100;

impl Repo {
    /// Keeps each member's name for [`schema::MEETUP_NAME_TTL_SECS`] (from now: a name
    /// seen again is kept longer), in one step. Blank names are left out.
    pub async fn remember_meetup_names(
        &self,
        names: &[(MeetupUserId, String)],
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        let mut any = false;
        for (user, name) in names {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let name: String = name.chars().take(MEETUP_NAME_CHARS).collect();
            writes.set_ex(
                &schema::meetup_name(*user),
                name,
                schema::MEETUP_NAME_TTL_SECS,
            );
            any = true;
        }
        if !any {
            return Ok(());
        }
        self.apply(&writes).await
    }

    /// The names kept for `users` (those without one are left out).
    pub async fn meetup_names(
        &self,
        users: &[MeetupUserId],
    ) -> Result<HashMap<MeetupUserId, String>, RepoError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<String> = users.iter().map(|u| schema::meetup_name(*u)).collect();
        let names: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(users
            .iter()
            .zip(names)
            .filter_map(|(user, name)| name.map(|n| (*user, n)))
            .collect())
    }
}
