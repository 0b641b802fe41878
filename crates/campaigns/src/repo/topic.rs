//! Claiming the user-topic voice channel (`user_topic_voice_channel_topic_time`):
//! `/topic` records its time only if nobody set a topic since it read the stored one
//! (compare-and-set), so two people renaming at once cannot both pass the rate limit.
//! And who is connected to the channel (Tavern's own key
//! [`schema::TOPIC_VOICE_CONNECTED`]), kept from the gateway's voice states, with
//! since when it has been empty ([`schema::TOPIC_VOICE_EMPTY_SINCE`]).
//!
//! **Empty since.** A join adds the user and removes the time in one step. A leave
//! removes the user, then records the time only if the set is empty and no time is
//! recorded (one conditional step): a join in between makes the condition fail, so a
//! recorded time always belongs to the current empty spell.

use chrono::{DateTime, Utc};
use discord::UserId;
use store::{Condition, Conditional, Writes};

use super::{Repo, RepoError, rfc3339, time};
use crate::schema;

/// The topic time as `/topic` read it: raw (to compare against) and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicClaim {
    raw: Option<String>,
    /// When a topic was last set.
    pub set_at: Option<DateTime<Utc>>,
}

impl Repo {
    /// Reads the topic time for a later [`Repo::claim_topic`].
    pub async fn read_topic_claim(&self) -> Result<TopicClaim, RepoError> {
        let key = schema::USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME;
        let raw = self.read(key).await?;
        let set_at = time(key, raw.clone())?;
        Ok(TopicClaim { raw, set_at })
    }

    /// Records `at` as the topic time if it still is what `claim` read; `false` when
    /// somebody set a topic meanwhile (nothing is written then).
    pub async fn claim_topic(
        &self,
        claim: &TopicClaim,
        at: DateTime<Utc>,
    ) -> Result<bool, RepoError> {
        let key = schema::USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME;
        let mut writes = Writes::new();
        writes.set(key, rfc3339(at));
        Ok(self
            .redis
            .apply_if(key, claim.raw.as_deref().map(str::as_bytes), &writes)
            .await?)
    }

    /// Gives a claim back (the rename it was for failed): the topic time returns to
    /// what `claim` read, if it still is `at`.
    pub async fn release_topic(
        &self,
        claim: &TopicClaim,
        at: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let key = schema::USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME;
        let mut writes = Writes::new();
        match &claim.raw {
            Some(raw) => writes.set(key, raw.as_str()),
            None => writes.del(key),
        };
        let ours = rfc3339(at);
        self.redis
            .apply_if(key, Some(ours.as_bytes()), &writes)
            .await?;
        Ok(())
    }

    /// Forgets everything kept about the topic voice channel (when a topic was set, who
    /// is connected, since when it is empty), in one step: for a channel that is not
    /// the one these were kept for (the sandbox's fake Discord is new at every start).
    pub async fn forget_topic(&self) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        writes.del(schema::USER_TOPIC_VOICE_CHANNEL_TOPIC_TIME);
        writes.del(schema::TOPIC_VOICE_CONNECTED);
        writes.del(schema::TOPIC_VOICE_EMPTY_SINCE);
        self.apply(&writes).await
    }

    /// Records that `user` is connected to the topic voice channel (`true`) or not, at
    /// `now`: a join forgets since when the channel was empty, a leave that empties it
    /// records `now` (see the module docs).
    pub async fn set_topic_voice(
        &self,
        user: UserId,
        connected: bool,
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let key = schema::TOPIC_VOICE_CONNECTED;
        let mut writes = Writes::new();
        if connected {
            writes.sadd(key, user.get());
            writes.del(schema::TOPIC_VOICE_EMPTY_SINCE);
            return self.apply(&writes).await;
        }
        writes.srem(key, user.get());
        self.apply(&writes).await?;
        self.mark_topic_voice_empty(now).await.map(|_| ())
    }

    /// Replaces who is connected to the topic voice channel (the gateway's list when
    /// the guild becomes available), in one step; an empty list records `now` as the
    /// start of the empty spell unless one is recorded already.
    pub async fn reset_topic_voice(
        &self,
        users: &[UserId],
        now: DateTime<Utc>,
    ) -> Result<(), RepoError> {
        let key = schema::TOPIC_VOICE_CONNECTED;
        let mut writes = Writes::new();
        writes.del(key);
        for user in users {
            writes.sadd(key, user.get());
        }
        if !users.is_empty() {
            writes.del(schema::TOPIC_VOICE_EMPTY_SINCE);
        }
        self.apply(&writes).await?;
        if users.is_empty() {
            self.mark_topic_voice_empty(now).await?;
        }
        Ok(())
    }

    /// Records `now` as the time the topic voice channel became empty, if nobody is
    /// connected and no time is recorded yet, in one conditional step. Returns whether
    /// it wrote.
    pub async fn mark_topic_voice_empty(&self, now: DateTime<Utc>) -> Result<bool, RepoError> {
        let mut writes = Writes::new();
        writes.set(schema::TOPIC_VOICE_EMPTY_SINCE, rfc3339(now));
        let conditions = [
            Condition::FewerThan {
                key: schema::TOPIC_VOICE_CONNECTED.to_owned(),
                limit: 1,
            },
            Condition::Absent(schema::TOPIC_VOICE_EMPTY_SINCE.to_owned()),
        ];
        Ok(matches!(
            self.redis.apply_when(&conditions, &writes).await?,
            Conditional::Applied(_)
        ))
    }

    /// Since when the topic voice channel has been empty, if recorded.
    pub async fn topic_voice_empty_since(&self) -> Result<Option<DateTime<Utc>>, RepoError> {
        let key = schema::TOPIC_VOICE_EMPTY_SINCE;
        time(key, self.read(key).await?)
    }

    /// How many are connected to the topic voice channel.
    pub async fn topic_voice_count(&self) -> Result<usize, RepoError> {
        let users: Vec<UserId> = self.snowflake_set(schema::TOPIC_VOICE_CONNECTED).await?;
        Ok(users.len())
    }
}
