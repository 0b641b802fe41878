//! Media streams (`stream:{stream_id}`) and subscriptions
//! (`participant:{participant_id}:subscriptions`).
//!
//! A session's `streams` field is a JSON array (the seed's shape), which Redis cannot
//! edit by itself: publishing and ending read it here, change it, and write it back only
//! if it is still what was read ([`Condition::hash_field`]), retried by
//! [`store::optimistic()`] when somebody else changed it meanwhile.

use serde_json::Value;
use store::{Attempt, Condition, Conditional, StorageError, Writes};

use super::{MeetingsError, Repo, hset_all, ttl_secs};
use crate::domain::{MeetingId, ParticipantId, StreamId, StreamType};
use crate::schema::{self, participant_fields, stream_fields};

/// A stream being published (`stream:{stream_id}`).
#[derive(Debug, Clone)]
pub struct NewStream {
    pub stream_id: StreamId,
    pub meeting_id: MeetingId,
    pub participant_id: ParticipantId,
    pub stream_type: StreamType,
    /// e.g. `VP9`, `Opus`.
    pub codec: String,
    /// Bits per second.
    pub max_bitrate: u64,
}

/// The stream ids of a session's `streams` field.
fn stream_ids(key: &str, raw: &str) -> Result<Vec<Value>, StorageError> {
    serde_json::from_str(raw).map_err(|e| StorageError::corrupt(format!("`streams` of {key}"), e))
}

fn encode(key: &str, ids: &[Value]) -> Result<String, StorageError> {
    serde_json::to_string(ids).map_err(|e| StorageError::corrupt(format!("`streams` of {key}"), e))
}

impl Repo {
    /// A participant publishes a stream: `stream:{stream_id}` (no TTL while live) and the
    /// id in the session's `streams` (once), in one step. `false` (nothing written)
    /// when the publisher's session has expired.
    ///
    /// Published again (its participant's media session reconnected), the stream is live
    /// again (its TTL of an ended stream removed) and keeps its `subscribers` and
    /// `created_at`: the viewers it had are counted as they were.
    pub async fn publish_stream(&self, stream: &NewStream) -> Result<bool, MeetingsError> {
        use stream_fields as f;
        let session = schema::participant_key(stream.participant_id);
        let stream_key = schema::stream_key(stream.stream_id);
        let fields: [(&str, String); 6] = [
            (f::STREAM_ID, stream.stream_id.to_string()),
            (f::PARTICIPANT_ID, stream.participant_id.to_string()),
            (f::MEETING_ID, stream.meeting_id.to_string()),
            (f::STREAM_TYPE, stream.stream_type.as_str().to_owned()),
            (f::CODEC, stream.codec.clone()),
            (f::MAX_BITRATE, stream.max_bitrate.to_string()),
        ];
        let first: [(&str, String); 2] = [
            (f::SUBSCRIBERS, 0.to_string()),
            (f::CREATED_AT, self.now_secs().to_string()),
        ];
        let (session, stream_key, fields, first) = (&session, &stream_key, &fields, &first);
        let id = Value::String(stream.stream_id.to_string());
        let id = &id;
        store::optimistic(session, |_| async move {
            let current = self.session_streams(session).await?;
            let mut ids = match &current {
                Some(raw) => stream_ids(session, raw)?,
                None => Vec::new(),
            };
            if !ids.contains(id) {
                ids.push(id.clone());
            }
            let mut writes = Writes::new();
            writes.hset(session, participant_fields::STREAMS, encode(session, &ids)?);
            hset_all(&mut writes, stream_key, fields);
            for (field, value) in first {
                writes
                    .command("HSETNX")
                    .arg(stream_key)
                    .arg(*field)
                    .arg(value);
            }
            writes.persist(stream_key);
            let guard = [
                Condition::exists(session),
                Condition::hash_field(session, participant_fields::STREAMS, current),
            ];
            Ok::<_, MeetingsError>(match self.redis.apply_when(&guard, &writes).await? {
                Conditional::Applied(_) => Attempt::Done(true),
                Conditional::Refused(0) => Attempt::Done(false),
                Conditional::Refused(_) => Attempt::Retry,
            })
        })
        .await
    }

    /// A stream ends: its hash is kept one more hour (the seed's TTL after end) and it
    /// leaves the publisher's `streams`. `false` for an unknown stream.
    pub async fn end_stream(
        &self,
        stream: StreamId,
        publisher: ParticipantId,
    ) -> Result<bool, MeetingsError> {
        let session = schema::participant_key(publisher);
        let stream_key = schema::stream_key(stream);
        let gone = Value::String(stream.to_string());
        let (session, stream_key, gone) = (&session, &stream_key, &gone);
        store::optimistic(stream_key, |_| async move {
            let current = self.session_streams(session).await?;
            let mut writes = Writes::new();
            writes.expire(stream_key, ttl_secs(schema::STREAM_TTL_AFTER_END));
            if let Some(raw) = &current {
                let kept: Vec<Value> = stream_ids(session, raw)?
                    .into_iter()
                    .filter(|id| id != gone)
                    .collect();
                writes.hset(
                    session,
                    participant_fields::STREAMS,
                    encode(session, &kept)?,
                );
            }
            let guard = [
                Condition::exists(stream_key),
                Condition::hash_field(session, participant_fields::STREAMS, current),
            ];
            Ok::<_, MeetingsError>(match self.redis.apply_when(&guard, &writes).await? {
                Conditional::Applied(_) => Attempt::Done(true),
                Conditional::Refused(0) => Attempt::Done(false),
                Conditional::Refused(_) => Attempt::Retry,
            })
        })
        .await
    }

    /// The `streams` field of a session, `None` when the field (or the session) is absent.
    async fn session_streams(&self, session: &str) -> Result<Option<String>, MeetingsError> {
        let mut conn = self.redis.conn();
        Ok(redis::cmd("HGET")
            .arg(session)
            .arg(participant_fields::STREAMS)
            .query_async(&mut conn)
            .await?)
    }

    /// Subscribes a participant to a stream; returns the stream's subscriber count, or
    /// `None` for an unknown stream or a subscriber whose session is gone (nothing
    /// written: a set recreated after its participant left would count a subscriber
    /// nobody will ever count down). Subscribing twice counts once (and refreshes the
    /// subscriptions set's TTL).
    pub async fn subscribe(
        &self,
        participant: ParticipantId,
        stream: StreamId,
    ) -> Result<Option<i64>, MeetingsError> {
        let subscriptions = schema::participant_subscriptions_key(participant);
        let session = schema::participant_key(participant);
        let stream_key = schema::stream_key(stream);
        let member = stream.to_string();
        let ttl = ttl_secs(schema::SUBSCRIPTIONS_TTL);
        let mut new = Writes::new();
        new.sadd(&subscriptions, &member)
            .expire(&subscriptions, ttl)
            .hincrby(&stream_key, stream_fields::SUBSCRIBERS, 1);
        let added = self
            .redis
            .apply_when(
                &[
                    Condition::exists(&stream_key),
                    Condition::exists(&session),
                    Condition::not_member(&subscriptions, &member),
                ],
                &new,
            )
            .await?;
        match added {
            Conditional::Refused(0 | 1) => Ok(None),
            Conditional::Refused(_) => {
                let mut again = Writes::new();
                again.expire(&subscriptions, ttl);
                self.subscribers(&stream_key, again).await
            }
            applied => Ok(Some(subscribers_reply(&stream_key, applied.int(2))?)),
        }
    }

    /// Undoes [`Repo::subscribe`]; unsubscribing twice counts once.
    pub async fn unsubscribe(
        &self,
        participant: ParticipantId,
        stream: StreamId,
    ) -> Result<Option<i64>, MeetingsError> {
        let subscriptions = schema::participant_subscriptions_key(participant);
        let stream_key = schema::stream_key(stream);
        let member = stream.to_string();
        let mut gone = Writes::new();
        gone.srem(&subscriptions, &member)
            .hincrby(&stream_key, stream_fields::SUBSCRIBERS, -1);
        let removed = self
            .redis
            .apply_when(
                &[
                    Condition::exists(&stream_key),
                    Condition::member(&subscriptions, &member),
                ],
                &gone,
            )
            .await?;
        match removed {
            Conditional::Refused(0) => Ok(None),
            Conditional::Refused(_) => self.subscribers(&stream_key, Writes::new()).await,
            applied => Ok(Some(subscribers_reply(&stream_key, applied.int(1))?)),
        }
    }

    /// Applies `writes` and reads the stream's subscriber count in one step, while the
    /// stream exists (`None` otherwise). A missing count reads as 0.
    async fn subscribers(
        &self,
        stream_key: &str,
        mut writes: Writes,
    ) -> Result<Option<i64>, MeetingsError> {
        writes
            .command("HGET")
            .arg(stream_key)
            .arg(stream_fields::SUBSCRIBERS);
        let read = writes.len() - 1;
        match self
            .redis
            .apply_when(&[Condition::exists(stream_key)], &writes)
            .await?
        {
            Conditional::Applied(replies) => {
                let count = match replies.get(read) {
                    Some(reply) => redis::from_redis_value_ref::<Option<i64>>(reply)
                        .map_err(|e| StorageError::corrupt(stream_key, e))?,
                    None => None,
                };
                Ok(Some(count.unwrap_or(0)))
            }
            Conditional::Refused(_) => Ok(None),
        }
    }
}

impl Repo {
    /// The follow-up of departures whose session hash had already expired (their
    /// `streams` could not be read): every live stream (no TTL) whose publisher's
    /// session is gone gets the 1-hour TTL of an ended stream, each in one step guarded
    /// by the session still being absent and the stream still existing. A stream is only
    /// published while its session exists (and a session id is never reused), so a live
    /// stream without one is always an orphan. Safe to repeat; the presence job runs it.
    /// Returns how many streams it ended.
    pub async fn expire_orphan_streams(&self) -> Result<usize, MeetingsError> {
        let keys = self.redis.scan(schema::STREAM_PATTERN).await?;
        let streams: Vec<(String, StreamId)> = keys
            .into_iter()
            .filter_map(|key| schema::stream_of_key(&key).map(|id| (key, id)))
            .collect();
        if streams.is_empty() {
            return Ok(0);
        }
        let mut conn = self.redis.conn();
        let mut pipe = redis::pipe();
        for (key, _) in &streams {
            pipe.cmd("TTL")
                .arg(key)
                .cmd("HGET")
                .arg(key)
                .arg(stream_fields::PARTICIPANT_ID);
        }
        let read: Vec<(i64, Option<String>)> = pipe.query_async(&mut conn).await?;
        // TTL -1: the key exists without a TTL (a live stream).
        let live: Vec<(String, StreamId, ParticipantId)> = streams
            .into_iter()
            .zip(read)
            .filter_map(|((key, stream), (ttl, publisher))| {
                let publisher = ParticipantId::parse(&publisher?).ok()?;
                (ttl == -1).then_some((key, stream, publisher))
            })
            .collect();
        if live.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for (_, _, publisher) in &live {
            pipe.cmd("EXISTS").arg(schema::participant_key(*publisher));
        }
        let sessions: Vec<i64> = pipe.query_async(&mut conn).await?;
        let mut ended = 0;
        for ((key, stream, publisher), session) in live.into_iter().zip(sessions) {
            if session == 1 {
                continue;
            }
            let mut writes = Writes::new();
            writes.expire(&key, ttl_secs(schema::STREAM_TTL_AFTER_END));
            let guard = [
                Condition::absent(schema::participant_key(publisher)),
                Condition::exists(&key),
            ];
            if self.redis.apply_when(&guard, &writes).await?.applied() {
                tracing::info!(%stream, %publisher, "stream of a session that expired ended");
                ended += 1;
            }
        }
        Ok(ended)
    }
}

fn subscribers_reply(stream_key: &str, count: Option<i64>) -> Result<i64, StorageError> {
    count.ok_or_else(|| StorageError::corrupt(stream_key, "`subscribers` is not an integer"))
}
