//! The Meetup members Tavern knows, for the admins' autocomplete: the linked ones
//! (`meetup_users`) and everyone who RSVP'd to or hosts a tracked event.

use std::collections::BTreeSet;

use super::{Repo, RepoError, corrupt};
use crate::domain::MeetupUserId;
use crate::schema;

/// Meetup members, split by whether a Discord user is linked to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeetupDirectory {
    pub linked: BTreeSet<MeetupUserId>,
    /// RSVP'd to or host a tracked event, and not linked.
    pub unlinked: BTreeSet<MeetupUserId>,
}

impl Repo {
    /// Who Tavern knows on Meetup: three round trips whatever the number of events.
    pub async fn meetup_directory(&self) -> Result<MeetupDirectory, RepoError> {
        let linked: BTreeSet<MeetupUserId> = self
            .meetup_user_set(schema::MEETUP_USERS)
            .await?
            .into_iter()
            .collect();
        let events = self.tracked_events().await?;
        let mut unlinked = BTreeSet::new();
        if !events.is_empty() {
            let keys: Vec<String> = events
                .iter()
                .flat_map(|e| {
                    [
                        schema::meetup_event_meetup_users(e),
                        schema::meetup_event_meetup_hosts(e),
                    ]
                })
                .collect();
            let members: Vec<String> = redis::cmd("SUNION")
                .arg(&keys)
                .query_async(&mut self.redis.conn())
                .await?;
            for raw in members {
                let user = MeetupUserId::parse(&raw)
                    .map_err(|e| corrupt("the tracked events' RSVPs and hosts", &raw, e))?;
                if !linked.contains(&user) {
                    unlinked.insert(user);
                }
            }
        }
        Ok(MeetupDirectory { linked, unlinked })
    }
}
