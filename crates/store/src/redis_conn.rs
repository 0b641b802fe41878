use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::lua::{CONDITIONAL, Condition, Conditional};
use crate::sentinel::{DedicatedSentinel, SentinelConn, SentinelUrl, is_readonly};
use crate::{Attempt, StoreError, Writes};

/// What [`Redis::apply_or_read`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded {
    /// The guard held the expected value; every write was applied.
    Applied,
    /// The guard held something else (`None`: the key is absent); nothing was written.
    Changed(Option<Vec<u8>>),
}

/// How long one Redis command may take before it fails with a timeout instead of hanging
/// a Discord interaction.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis connection: a self-healing single-server connection, a cluster connection or
/// a connection to the master behind Sentinel.
///
/// All are multiplexed, so clones share one socket (per node) and can be used from many
/// tasks at once. Never run `WATCH` on it: use [`Redis::watch`], which takes a dedicated
/// connection.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// The master Sentinel names, followed across failovers.
    Sentinel(SentinelConn),
    /// A connection owned by one `WATCH` transaction at a time (see [`Redis::watch`]).
    Dedicated(MultiplexedConnection),
    /// A cluster connection owned by one `WATCH` transaction at a time.
    DedicatedCluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisConn::Single(_) => f.write_str("RedisConn::Single"),
            RedisConn::Cluster(_) => f.write_str("RedisConn::Cluster"),
            RedisConn::Sentinel(c) => write!(f, "RedisConn::{c:?}"),
            RedisConn::Dedicated(_) => f.write_str("RedisConn::Dedicated"),
            RedisConn::DedicatedCluster(_) => f.write_str("RedisConn::DedicatedCluster"),
        }
    }
}

/// Round trips to Redis made by this process so far (see [`round_trips`]).
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

/// How many round trips to Redis this process has made so far: one per command sent on
/// its own and one per pipeline or transaction, whatever it holds. Benchmarks read it
/// before and after a piece of work; it costs one relaxed atomic add per round trip.
pub fn round_trips() -> u64 {
    ROUND_TRIPS.load(Ordering::Relaxed)
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
            RedisConn::Sentinel(c) => c.req_packed_command(cmd),
            RedisConn::Dedicated(c) => c.req_packed_command(cmd),
            RedisConn::DedicatedCluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Dedicated(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::DedicatedCluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
            RedisConn::Sentinel(c) => c.get_db(),
            RedisConn::Dedicated(c) => c.get_db(),
            RedisConn::DedicatedCluster(c) => c.get_db(),
        }
    }
}

/// Where dedicated (non-shared) connections for `WATCH` transactions come from.
///
/// `WATCH` state belongs to a connection: on the shared multiplexed one, a second
/// transaction's `EXEC` would clear the first one's watch (a lost update), and a plain
/// `MULTI`/`EXEC` from elsewhere in the process would be aborted by a watched key it never
/// asked about. So each transaction borrows a connection of its own, returned to a small
/// idle pool afterwards.
enum Dedicated {
    Single {
        client: redis::Client,
        idle: Mutex<Vec<MultiplexedConnection>>,
    },
    /// A cluster connection of its own per transaction (it routes the transaction by its
    /// first key; the caller keeps every key of one transaction in one hash slot).
    Cluster {
        client: Box<ClusterClient>,
        idle: Mutex<Vec<ClusterConnection>>,
        /// The first seed node, for subscriptions (a cluster delivers every publication
        /// to every node).
        first: redis::Client,
    },
    /// A connection of its own to the master Sentinel names now.
    Sentinel {
        conn: SentinelConn,
        idle: Mutex<Vec<DedicatedSentinel>>,
    },
}

/// A dedicated connection borrowed by one `WATCH` transaction.
enum Lease {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
    Sentinel(DedicatedSentinel),
}

impl Lease {
    fn conn(&self) -> RedisConn {
        match self {
            Lease::Single(c) => RedisConn::Dedicated(c.clone()),
            Lease::Cluster(c) => RedisConn::DedicatedCluster(c.clone()),
            Lease::Sentinel(d) => RedisConn::Dedicated(d.conn.clone()),
        }
    }
}

/// An error after which a transaction's connection is not used again, though nothing was
/// written: a refused write on a demoted master, or a broken connection.
fn needs_new_connection(error: &RedisError) -> bool {
    is_readonly(error)
        || error.is_unrecoverable_error()
        || error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
}

/// Whether `url` is one [`Redis::connect`] can use (its scheme, host, port, database
/// number and options, each node of a cluster's list, a Sentinel URL's parts), without
/// connecting: for configuration checks, which name the setting. A database number
/// the server does not have is found only when it answers.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    if url.trim_start().starts_with(crate::sentinel::SCHEME) {
        return SentinelUrl::parse(url).map(drop);
    }
    for node in url.split(',') {
        let node = node.trim().replacen("redis+cluster://", "redis://", 1);
        // A cluster's later nodes may be written `host:port`, as the first one's scheme.
        if node.contains("://") {
            single_client(&node)?;
        } else {
            single_client(&format!("redis://{node}"))?;
        }
    }
    Ok(())
}

fn single_client(url: &str) -> Result<redis::Client, StoreError> {
    redis::Client::open(url).map_err(|e| StoreError::BadUrl {
        what: "redis",
        reason: e.to_string(),
    })
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2))
}

/// Messages published on one channel ([`Redis::subscribe`]). Redis delivers them at
/// most once: what is published while the connection is down is lost, so a subscriber
/// takes the end of its subscription ([`Subscription::next`] answering `None`) as
/// "something may have been missed".
pub struct Subscription {
    messages: redis::aio::PubSubStream,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next message's payload; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        use futures_util::StreamExt as _;
        self.messages
            .next()
            .await
            .map(|message| message.get_payload_bytes().to_vec())
    }
}

/// The shared Redis handle every feature receives. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    conn: RedisConn,
    dedicated: Arc<Dedicated>,
    url_for_logs: Arc<str>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.url_for_logs)
            .finish()
    }
}

impl Redis {
    /// Connects to `url`. A plain `redis://host:port/db` URL is one server; several URLs
    /// separated by commas (or one URL with the scheme `redis+cluster://`) are the seed
    /// nodes of a Redis Cluster;
    /// `redis+sentinel://host:port[,host:port...]/<master-name>[/<db>]` is the master
    /// that these Sentinels name, found again through them after a failover.
    ///
    /// Fails fast when the server is unreachable so the caller can report it and retry
    /// with backoff; once connected, the connection reconnects by itself.
    pub async fn connect(url: &str) -> Result<Redis, StoreError> {
        let redacted: Arc<str> = crate::redact_url(url).into();
        if url.trim_start().starts_with(crate::sentinel::SCHEME) {
            let redis = Self::sentinel(url, redacted)?;
            redis.ping().await?;
            return Ok(redis);
        }
        let is_cluster = url.contains(',') || url.starts_with("redis+cluster://");
        if is_cluster {
            let nodes: Vec<String> = url
                .split(',')
                .map(|u| u.trim().replacen("redis+cluster://", "redis://", 1))
                .collect();
            let first = single_client(nodes.first().map_or(url, String::as_str))?;
            let client = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .build()?;
            let conn = client.get_async_connection().await?;
            return Ok(Redis {
                conn: RedisConn::Cluster(conn),
                dedicated: Arc::new(Dedicated::Cluster {
                    client: Box::new(client),
                    idle: Mutex::new(Vec::new()),
                    first,
                }),
                url_for_logs: redacted,
            });
        }
        let client = single_client(url)?;
        let manager = tokio::time::timeout(
            CONNECT_TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), manager_config()),
        )
        .await
        .map_err(|_| StoreError::Timeout(CONNECT_TIMEOUT * 2))??;
        Ok(Redis {
            conn: RedisConn::Single(manager),
            dedicated: Arc::new(Dedicated::Single {
                client,
                idle: Mutex::new(Vec::new()),
            }),
            url_for_logs: redacted,
        })
    }

    /// A handle over the master behind Sentinel; nothing is contacted yet.
    fn sentinel(url: &str, redacted: Arc<str>) -> Result<Redis, StoreError> {
        let conn = SentinelConn::new(SentinelUrl::parse(url)?)?;
        Ok(Redis {
            conn: RedisConn::Sentinel(conn.clone()),
            dedicated: Arc::new(Dedicated::Sentinel {
                conn,
                idle: Mutex::new(Vec::new()),
            }),
            url_for_logs: redacted,
        })
    }

    /// A handle that connects on first use, for commands that may never touch Redis
    /// (`tavern migrate` builds every feature but only needs PostgreSQL). A single
    /// server or Sentinel's master: for a cluster URL it names the first node.
    pub fn lazy(url: &str) -> Result<Redis, StoreError> {
        if url.trim_start().starts_with(crate::sentinel::SCHEME) {
            return Self::sentinel(url, crate::redact_url(url).into());
        }
        let first =
            url.split(',')
                .next()
                .unwrap_or(url)
                .trim()
                .replacen("redis+cluster://", "redis://", 1);
        let client = single_client(&first)?;
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config())?;
        Ok(Redis {
            conn: RedisConn::Single(manager),
            dedicated: Arc::new(Dedicated::Single {
                client,
                idle: Mutex::new(Vec::new()),
            }),
            url_for_logs: crate::redact_url(url).into(),
        })
    }

    /// Subscribes to `channel` over a connection of its own: the server's; a
    /// cluster's first seed node (a cluster delivers every publication to every node);
    /// the master Sentinel names now (its replicas receive publications too, so a
    /// failover does not end the subscription unless the old master goes away).
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, StoreError> {
        let client = match &*self.dedicated {
            Dedicated::Single { client, .. } => client.clone(),
            Dedicated::Cluster { first, .. } => first.clone(),
            Dedicated::Sentinel { conn, .. } => conn.master_client().await?,
        };
        let mut pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Timeout(CONNECT_TIMEOUT))??;
        tokio::time::timeout(RESPONSE_TIMEOUT, pubsub.subscribe(channel))
            .await
            .map_err(|_| StoreError::Timeout(RESPONSE_TIMEOUT))??;
        Ok(Subscription {
            messages: pubsub.into_on_message(),
        })
    }

    /// A clone of the shared multiplexed connection.
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Runs `cmd`, and once more when the connection turned out to be dropped: a
    /// connection nothing used while Redis restarted learns that its socket is dead only
    /// from the next command, which fails while the connection is made again. For
    /// commands that may run twice (a read, a `SET`, a `DEL`), so that the first visitor
    /// after an outage is served rather than refused.
    pub async fn query_retrying<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, redis::RedisError> {
        self.retrying(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// [`Redis::query_retrying`] for a pipeline (or anything run on a connection).
    pub async fn retrying<T, F, Fut>(&self, run: F) -> Result<T, redis::RedisError>
    where
        F: Fn(RedisConn) -> Fut,
        Fut: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        match run(self.conn()).await {
            Err(error) if error.is_connection_dropped() || error.is_io_error() => {
                tracing::debug!(%error, "the Redis connection was dropped; trying once more");
                run(self.conn()).await
            }
            answer => answer,
        }
    }

    /// The URL with any password removed, for logs.
    pub fn redacted_url(&self) -> &str {
        &self.url_for_logs
    }

    /// `PING`, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Every key matching `pattern`, sorted, via `SCAN` (never `KEYS`, which blocks the
    /// server). On a cluster this sees the node the connection routes `SCAN` to.
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Applies `writes` atomically in one round trip (`MULTI` ... `EXEC`).
    pub async fn apply(&self, writes: &Writes) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut pipe = writes.to_pipeline();
        pipe.atomic();
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Applies `writes` atomically only if the string at `guard` still holds `expected`
    /// (`None`: the key must not exist). One round trip (a Lua script).
    ///
    /// This is optimistic concurrency for the common shape "read one document, decide,
    /// write it back with its indexes": read `guard`, compute, `apply_if`; on `false`
    /// somebody else won the race, so read again and retry.
    pub async fn apply_if(
        &self,
        guard: &str,
        expected: Option<&[u8]>,
        writes: &Writes,
    ) -> Result<bool, StoreError> {
        Ok(matches!(
            self.apply_or_read(guard, expected, writes).await?,
            Guarded::Applied
        ))
    }

    /// [`Redis::apply_if`] that, when `guard` no longer holds `expected`, hands back what
    /// it holds instead, in the same round trip: a caller that guessed the current value
    /// (from a cache, say) retries with the truth without reading it first.
    pub async fn apply_or_read(
        &self,
        guard: &str,
        expected: Option<&[u8]>,
        writes: &Writes,
    ) -> Result<Guarded, StoreError> {
        let mut invocation = crate::lua::COMPARE_AND_SET.key(guard);
        // ARGV[1] = "1" if a value is expected, "0" for "absent"; ARGV[2] = expected bytes.
        match expected {
            Some(bytes) => invocation.arg("1").arg(bytes),
            None => invocation.arg("0").arg(""),
        };
        writes.append_script_args(&mut invocation);
        let mut conn = self.conn();
        let reply: Value = invocation.invoke_async(&mut conn).await?;
        match reply {
            Value::Int(1) => Ok(Guarded::Applied),
            Value::Array(items) => match items.as_slice() {
                [Value::Int(0)] | [Value::Int(0), Value::Nil] => Ok(Guarded::Changed(None)),
                [Value::Int(0), Value::BulkString(current)] => {
                    Ok(Guarded::Changed(Some(current.clone())))
                }
                other => Err(StoreError::UnexpectedReply(format!("{other:?}"))),
            },
            other => Err(StoreError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// Applies `writes` atomically only if every condition holds, in one round trip
    /// (see [`crate::lua`]). Returns the replies of the batch's commands, or which
    /// condition failed (nothing written then).
    ///
    /// For steps that decide on the server: "join unless the meeting is full"
    /// ([`Condition::FewerThan`]), "count down only a member still in the set"
    /// ([`Condition::Member`]), "refresh only a session that still exists"
    /// ([`Condition::Exists`]), "write back a hash field only if unchanged"
    /// ([`Condition::HashField`]).
    pub async fn apply_when(
        &self,
        conditions: &[Condition],
        writes: &Writes,
    ) -> Result<Conditional, StoreError> {
        let mut invocation = CONDITIONAL.prepare_invoke();
        for condition in conditions {
            invocation.key(condition.key());
        }
        invocation.arg(conditions.len());
        for condition in conditions {
            condition.append_args(&mut invocation);
        }
        writes.append_script_args(&mut invocation);
        let mut conn = self.conn();
        let reply: Value = invocation.invoke_async(&mut conn).await?;
        let unexpected = |reply: &Value| StoreError::UnexpectedReply(format!("{reply:?}"));
        match &reply {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(1), Value::Array(replies)] => Ok(Conditional::Applied(replies.clone())),
                // Lua turns an empty table into an empty array (no commands ran).
                [Value::Int(1)] => Ok(Conditional::Applied(Vec::new())),
                [Value::Int(0), Value::Int(c)] if *c >= 1 => {
                    Ok(Conditional::Refused((*c - 1) as usize))
                }
                _ => Err(unexpected(&reply)),
            },
            _ => Err(unexpected(&reply)),
        }
    }

    /// Runs a classic `WATCH`/`MULTI`/`EXEC` transaction over `keys` on a dedicated
    /// connection, retrying while a watched key changes under it.
    ///
    /// `body` reads what it needs through the connection it is given and returns the
    /// writes to commit plus a value; it may run several times, so it must not have side
    /// effects outside Redis.
    ///
    /// The retries are [`crate::optimistic()`]'s, the kit's one loop (its cap,
    /// [`crate::optimistic::MAX_ATTEMPTS`], and its jitter): an `EXEC` that answers nil
    /// (a watched key changed) is one lost race. When they run out the error is
    /// [`StoreError::Contention`].
    ///
    /// When the connection breaks before `EXEC` is sent, or the server refuses the
    /// transaction because it is a replica now (a failover behind Sentinel), nothing was
    /// written: the transaction starts again on a fresh connection (to the new master),
    /// as one more attempt. A connection lost while `EXEC` is in flight is an error: the
    /// transaction may or may not have been applied.
    pub async fn watch<T, F, Fut>(&self, keys: &[String], body: F) -> Result<T, StoreError>
    where
        F: FnMut(RedisConn) -> Fut,
        Fut: std::future::Future<Output = Result<(Writes, T), StoreError>>,
    {
        // The dedicated connection between attempts; taken by an attempt, put back when
        // it is still good.
        let held: std::sync::Mutex<Option<Lease>> = std::sync::Mutex::new(None);
        let body = std::sync::Mutex::new(body);
        let what = keys.join(", ");
        let result = crate::optimistic(&what, |_| {
            let (held, body) = (&held, &body);
            async move {
                let taken = held.lock().ok().and_then(|mut h| h.take());
                let lease = match taken {
                    Some(lease) => lease,
                    None => self.lease().await?,
                };
                let keep = |lease: Lease| {
                    if let Ok(mut h) = held.lock() {
                        *h = Some(lease);
                    }
                };
                let mut conn = lease.conn();
                if let Err(error) = redis::cmd("WATCH").arg(keys).exec_async(&mut conn).await {
                    keep(self.replace_lease(lease, error).await?);
                    return Ok(Attempt::Retry);
                }
                let run = match body.lock() {
                    Ok(mut body) => (*body)(conn.clone()),
                    Err(_) => {
                        return Err(WatchStop::Store(StoreError::UnexpectedReply(
                            "a transaction body panicked".to_owned(),
                        )));
                    }
                };
                let (writes, value) = match run.await {
                    Ok(v) => v,
                    Err(StoreError::Redis(error)) if needs_new_connection(&error) => {
                        keep(self.replace_lease(lease, error).await?);
                        return Ok(Attempt::Retry);
                    }
                    Err(e) => {
                        let _ = redis::cmd("UNWATCH").exec_async(&mut conn).await;
                        keep(lease);
                        return Err(WatchStop::Store(e));
                    }
                };
                let mut pipe = writes.to_pipeline();
                pipe.atomic();
                match pipe.query_async::<Option<Value>>(&mut conn).await {
                    Ok(Some(_)) => {
                        keep(lease);
                        Ok(Attempt::Done(value))
                    }
                    Ok(None) => {
                        keep(lease);
                        Ok(Attempt::Retry)
                    }
                    // Refused by a replica: nothing ran.
                    Err(error) if is_readonly(&error) => {
                        keep(self.replace_lease(lease, error).await?);
                        Ok(Attempt::Retry)
                    }
                    Err(error) => Err(WatchStop::Store(error.into())),
                }
            }
        })
        .await;
        if let Some(lease) = held.lock().ok().and_then(|mut h| h.take()) {
            self.give_back(lease);
        }
        match result {
            Ok(value) => Ok(value),
            Err(WatchStop::Store(error)) => Err(error),
            Err(WatchStop::GaveUp) => Err(StoreError::Contention {
                keys: keys.to_vec(),
                attempts: crate::optimistic::MAX_ATTEMPTS,
            }),
        }
    }

    /// A dedicated connection: an idle one still good, or a new one.
    async fn lease(&self) -> Result<Lease, StoreError> {
        match self.dedicated.as_ref() {
            Dedicated::Single { client, idle } => {
                let pooled = idle.lock().ok().and_then(|mut v| v.pop());
                Ok(Lease::Single(match pooled {
                    Some(c) => c,
                    None => client.get_multiplexed_async_connection().await?,
                }))
            }
            Dedicated::Cluster { client, idle, .. } => {
                let pooled = idle.lock().ok().and_then(|mut v| v.pop());
                Ok(Lease::Cluster(match pooled {
                    Some(c) => c,
                    None => client.get_async_connection().await?,
                }))
            }
            Dedicated::Sentinel { conn, idle } => {
                loop {
                    let pooled = idle.lock().ok().and_then(|mut v| v.pop());
                    match pooled {
                        // One to a master that has since been replaced is dropped.
                        Some(d) if conn.still_current(&d) => return Ok(Lease::Sentinel(d)),
                        Some(_) => continue,
                        None => return Ok(Lease::Sentinel(conn.dedicated().await?)),
                    }
                }
            }
        }
    }

    /// Drops `lease` after `error` and takes a fresh connection, when nothing was written
    /// and a fresh connection may succeed; otherwise hands back the error.
    async fn replace_lease(&self, lease: Lease, error: RedisError) -> Result<Lease, StoreError> {
        if !needs_new_connection(&error) {
            return Err(error.into());
        }
        if let (Lease::Sentinel(d), Dedicated::Sentinel { conn, .. }) =
            (&lease, self.dedicated.as_ref())
        {
            conn.saw_error(d, &error);
        }
        tracing::debug!(%error, "transaction connection unusable; taking a fresh one");
        drop(lease);
        self.lease().await
    }

    /// Returns a connection whose transaction finished (committed, or unwatched) to the
    /// idle pool.
    fn give_back(&self, lease: Lease) {
        match (lease, self.dedicated.as_ref()) {
            (Lease::Single(c), Dedicated::Single { idle, .. }) => {
                if let Ok(mut idle) = idle.lock() {
                    idle.push(c);
                }
            }
            (Lease::Cluster(c), Dedicated::Cluster { idle, .. }) => {
                if let Ok(mut idle) = idle.lock() {
                    idle.push(c);
                }
            }
            (Lease::Sentinel(d), Dedicated::Sentinel { conn, idle }) => {
                if conn.still_current(&d)
                    && let Ok(mut idle) = idle.lock()
                {
                    idle.push(d);
                }
            }
            _ => {}
        }
    }
}

/// Why [`Redis::watch`]'s loop stopped short of a result: the store failed, or
/// [`crate::optimistic()`] ran out of attempts (the only [`StorageError`] it makes).
enum WatchStop {
    Store(StoreError),
    GaveUp,
}

impl From<StoreError> for WatchStop {
    fn from(error: StoreError) -> WatchStop {
        WatchStop::Store(error)
    }
}

impl From<crate::StorageError> for WatchStop {
    fn from(_: crate::StorageError) -> WatchStop {
        WatchStop::GaveUp
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn a_malformed_url_is_refused_without_connecting() {
        for good in [
            "redis://127.0.0.1:6379/3",
            "redis://a:1,redis://b:2",
            "redis+cluster://a:1",
            "redis+cluster://:pw@h1:7000,h2:7001/",
            "redis+sentinel://s1:26379/mymaster/0",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "redis://127.0.0.1:6379/abc",
            "redis://127.0.0.1:6379/0?protocol=resp9",
            "redis://a:1,redis://b:x",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
