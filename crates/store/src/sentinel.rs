//! Redis behind Sentinel: a `redis+sentinel://` URL names the Sentinels and the master's
//! name; the connection asks them where the master is and asks again when it moves.
//!
//! Why a connection of our own rather than a `ConnectionManager`: a manager reconnects to
//! the address it was given, and after a failover that address is a dead server or a
//! demoted replica. Here every connection to a master knows whether its socket is still
//! open (we drive it ourselves), so a command never goes to a connection already known to
//! be dead: it waits for Sentinel to name the master (with backoff, within
//! [`FAILOVER_WAIT`]) and goes there.
//!
//! A planned failover (or a partition) leaves the old master running, and it accepts
//! writes until Sentinel reconfigures it as a replica. So once a master is found, a task
//! listens to the Sentinels' `+switch-master` announcements and lets go of the old master
//! as soon as one names ours; the next command asks Sentinel again.
//!
//! What is re-sent and what is not: a write the old master refused (`READONLY`: it is a
//! replica now) did not run, so it is re-sent to the new master. A command in flight when
//! the connection broke may or may not have run, so its error is returned (the caller's
//! retry decides); the next command goes to the master Sentinel names.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::time::Instant;

use crate::StoreError;

/// The scheme of a Sentinel URL.
pub const SCHEME: &str = "redis+sentinel://";
/// Sentinel's port when a host names none.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;
/// How long a command waits for Sentinel to name a reachable master before it fails with
/// a transient error (a failover in progress, every Sentinel unreachable).
pub const FAILOVER_WAIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A parsed `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]`.
///
/// The user and password (percent-encoded in the URL) are those of the Redis servers
/// (master and replicas); the Sentinels themselves are asked without credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    sentinels: Vec<(String, u16)>,
    master: String,
    db: i64,
    username: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

fn bad(reason: impl Into<String>) -> StoreError {
    StoreError::BadUrl {
        what: "redis+sentinel",
        reason: reason.into(),
    }
}

fn percent_decode(part: &str, what: &str) -> Result<String, StoreError> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("the {what} has a broken %-escape")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("the {what} is not UTF-8 once decoded")))
}

fn parse_host(entry: &str) -> Result<(String, u16), StoreError> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err(bad("an empty Sentinel address in the host list"));
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        // [v6-address]:port
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(format!("`{entry}` opens `[` without closing it")))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(bad(format!("`{entry}` is not host:port"))),
            },
        }
    } else {
        match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad(format!("`{entry}` is not a Sentinel host[:port]")));
    }
    let port = match port {
        None => DEFAULT_SENTINEL_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(format!("`{p}` in `{entry}` is not a port number")))?,
    };
    Ok((host.to_owned(), port))
}

impl SentinelUrl {
    /// Parses a `redis+sentinel://` URL; the error says which part is wrong.
    pub fn parse(url: &str) -> Result<SentinelUrl, StoreError> {
        let url = url.trim();
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(format!("it must start with {SCHEME}")))?;
        if rest.contains(['?', '#']) {
            return Err(bad(
                "query parameters and fragments are not understood; write \
                 redis+sentinel://host:port,host:port/master-name[/db]",
            ));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let user = Some(percent_decode(user, "user name")?).filter(|u| !u.is_empty());
                let password = password
                    .map(|p| percent_decode(p, "password"))
                    .transpose()?
                    .filter(|p| !p.is_empty());
                (user, password)
            }
        };
        if hosts.trim().is_empty() {
            return Err(bad(
                "no Sentinel address: write redis+sentinel://host:port[,host:port...]/master-name",
            ));
        }
        let sentinels = hosts
            .split(',')
            .map(parse_host)
            .collect::<Result<Vec<_>, _>>()?;
        let mut segments = path.split('/');
        let master = segments.next().unwrap_or_default();
        if master.is_empty() {
            return Err(bad(
                "no master name after the Sentinel addresses: write .../<master-name>[/<db>]",
            ));
        }
        let master = percent_decode(master, "master name")?;
        if master.chars().any(char::is_whitespace) {
            return Err(bad(format!("the master name `{master}` contains spaces")));
        }
        let db = match segments.next() {
            None | Some("") => 0,
            Some(db) => db.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                bad(format!(
                    "`{db}` after the master name is not a database number"
                ))
            })?,
        };
        if let Some(extra) = segments.find(|s| !s.is_empty()) {
            return Err(bad(format!(
                "`{extra}`: nothing may follow .../<master-name>/<db>"
            )));
        }
        Ok(SentinelUrl {
            sentinels,
            master,
            db,
            username,
            password,
        })
    }

    /// The Sentinels' addresses, in the order given.
    pub fn sentinels(&self) -> &[(String, u16)] {
        &self.sentinels
    }

    /// The name Sentinel monitors the master under.
    pub fn master_name(&self) -> &str {
        &self.master
    }

    /// The database number on the master.
    pub fn db(&self) -> i64 {
        self.db
    }

    fn node_info(&self) -> RedisConnectionInfo {
        let mut info = RedisConnectionInfo::default().set_db(self.db);
        if let Some(user) = &self.username {
            info = info.set_username(user);
        }
        if let Some(password) = &self.password {
            info = info.set_password(password);
        }
        info
    }

    fn client(&self) -> Result<SentinelClient, StoreError> {
        let sentinels = self
            .sentinels
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port).into_connection_info())
            .collect::<RedisResult<Vec<_>>>()?;
        let node =
            SentinelNodeConnectionInfo::default().set_redis_connection_info(self.node_info());
        Ok(SentinelClient::build(
            sentinels,
            self.master.clone(),
            Some(node),
            SentinelServerType::Master,
        )?)
    }
}

/// True when Redis refused a write because the server is a replica (a master demoted by a
/// failover), in a single reply, a pipeline or an aborted transaction.
pub(crate) fn is_readonly(error: &RedisError) -> bool {
    if error.code() == Some("READONLY") {
        return true;
    }
    if let Some(errors) = error.clone().into_server_errors()
        && errors.iter().any(|(_, e)| e.code() == "READONLY")
    {
        return true;
    }
    // A script's error carries the refused command's words.
    error.to_string().contains("READONLY")
}

/// A reply that is Redis refusing a write because it is a replica. (A connection hands
/// back server errors as values; `query_async` turns them into errors later.)
fn refused(value: &Value) -> bool {
    match value {
        Value::ServerError(e) => {
            e.code() == "READONLY" || e.details().is_some_and(|d| d.contains("READONLY"))
        }
        Value::Array(items) => items.iter().any(refused),
        _ => false,
    }
}

/// An error after which the connection it came from must not be used again.
fn breaks_connection(error: &RedisError) -> bool {
    error.is_unrecoverable_error()
        || error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
}

/// One open connection to the server Sentinel named master.
#[derive(Clone)]
struct Master {
    conn: MultiplexedConnection,
    /// Cleared by the connection's driver task when the socket closes.
    open: Arc<AtomicBool>,
    generation: u64,
    addr: ConnectionAddr,
}

impl Master {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }
}

struct Shared {
    url: SentinelUrl,
    /// Locked while asking Sentinel, so concurrent commands ask once.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<Master>>,
    /// Counts the master connections opened, so a stale one is never forgotten in place
    /// of a newer one.
    generation: AtomicU64,
    /// Set once the `+switch-master` listener runs.
    listening: AtomicBool,
    /// Dropped with the handle, which ends the listener.
    _alive: tokio::sync::watch::Sender<()>,
    stopped: tokio::sync::watch::Receiver<()>,
}

/// The Sentinels' announcement of a completed failover:
/// `<master-name> <old-ip> <old-port> <new-ip> <new-port>`.
const SWITCH_MASTER: &str = "+switch-master";

/// Listens to `+switch-master` on the Sentinels (one at a time, the next when one goes
/// away) and forgets the master connection when our master moved. Ends when the handle
/// is dropped.
async fn listen_for_switches(
    shared: std::sync::Weak<Shared>,
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    let Some((sentinels, name)) = shared
        .upgrade()
        .map(|s| (s.url.sentinels.clone(), s.url.master.clone()))
    else {
        return;
    };
    let mut pause = FIRST_BACKOFF;
    let mut subscribed_before = false;
    loop {
        for (host, port) in &sentinels {
            let subscription = async {
                let client = redis::Client::open(ConnectionAddr::Tcp(host.clone(), *port))?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(SWITCH_MASTER).await?;
                Ok::<_, RedisError>(pubsub)
            };
            let pubsub = tokio::select! {
                _ = stopped.changed() => return,
                p = tokio::time::timeout(CONNECT_TIMEOUT, subscription) => p,
            };
            let Ok(Ok(pubsub)) = pubsub else {
                continue;
            };
            pause = FIRST_BACKOFF;
            if subscribed_before {
                // A switch may have gone by while nobody listened.
                if let Some(shared) = shared.upgrade() {
                    shared.forget_any();
                }
            }
            subscribed_before = true;
            let mut messages = pubsub.into_on_message();
            loop {
                let message = tokio::select! {
                    _ = stopped.changed() => return,
                    m = messages.next() => m,
                };
                let Some(message) = message else {
                    break;
                };
                let payload: String = message.get_payload().unwrap_or_default();
                if payload.split_whitespace().next() == Some(name.as_str()) {
                    let Some(shared) = shared.upgrade() else {
                        return;
                    };
                    tracing::info!(master = %name, switch = %payload, "Sentinel announced a new master");
                    shared.forget_any();
                }
            }
            tracing::debug!(master = %name, sentinel = %host, "lost the Sentinel subscription; trying the next Sentinel");
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

impl Shared {
    fn forget_any(&self) {
        if let Ok(mut current) = self.current.lock() {
            *current = None;
        }
    }
}

/// A self-healing connection to the master behind Sentinel, shared by clones (one
/// multiplexed socket), like the single-server `ConnectionManager`.
#[derive(Clone)]
pub struct SentinelConn {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SentinelConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelConn")
            .field("master", &self.shared.url.master)
            .finish()
    }
}

/// Opens a multiplexed connection to `addr` whose driver we run, so we know when it
/// closes.
async fn open(
    addr: &ConnectionAddr,
    info: &RedisConnectionInfo,
) -> RedisResult<(MultiplexedConnection, Arc<AtomicBool>)> {
    let ConnectionAddr::Tcp(host, port) = addr else {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "Sentinel named a master address that is not plain TCP",
        )));
    };
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), *port)),
    )
    .await
    .map_err(|_| RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    stream.set_nodelay(true)?;
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    let (conn, driver) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        MultiplexedConnection::new_with_config(info, stream, config),
    )
    .await
    .map_err(|_| RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    let open = Arc::new(AtomicBool::new(true));
    let flag = open.clone();
    tokio::spawn(async move {
        driver.await;
        flag.store(false, Ordering::Release);
    });
    Ok((conn, open))
}

impl SentinelConn {
    /// A connection that asks Sentinel on first use (nothing is contacted yet).
    pub(crate) fn new(url: SentinelUrl) -> Result<SentinelConn, StoreError> {
        let client = url.client()?;
        let (alive, stopped) = tokio::sync::watch::channel(());
        Ok(SentinelConn {
            shared: Arc::new(Shared {
                url,
                sentinel: tokio::sync::Mutex::new(client),
                current: Mutex::new(None),
                generation: AtomicU64::new(0),
                listening: AtomicBool::new(false),
                _alive: alive,
                stopped,
            }),
        })
    }

    /// The database number commands run against.
    pub fn db(&self) -> i64 {
        self.shared.url.db
    }

    /// `host:port` of the master this connection talks to now, if it has found one.
    pub fn master_addr(&self) -> Option<String> {
        self.current().map(|m| m.addr.to_string())
    }

    fn current(&self) -> Option<Master> {
        self.shared
            .current
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(Master::is_open)
    }

    /// Forgets the master connection of `generation` (no newer one is dropped).
    fn forget(&self, generation: u64) {
        if let Ok(mut current) = self.shared.current.lock()
            && current.as_ref().is_some_and(|m| m.generation == generation)
        {
            *current = None;
        }
    }

    /// The open master connection, asking Sentinel (with backoff) until `deadline` when
    /// there is none.
    async fn master(&self, deadline: Instant) -> RedisResult<Master> {
        if let Some(master) = self.current() {
            return Ok(master);
        }
        let mut pause = FIRST_BACKOFF;
        loop {
            let attempt = tokio::time::timeout_at(deadline, async {
                let mut sentinel = self.shared.sentinel.lock().await;
                // Somebody else may have found it while we waited for the lock.
                if let Some(master) = self.current() {
                    return Ok(master);
                }
                let (addr, conn, open) = self.ask(&mut sentinel).await?;
                let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
                let master = Master {
                    conn,
                    open,
                    generation,
                    addr,
                };
                if let Ok(mut current) = self.shared.current.lock() {
                    *current = Some(master.clone());
                }
                if !self.shared.listening.swap(true, Ordering::AcqRel) {
                    tokio::spawn(listen_for_switches(
                        Arc::downgrade(&self.shared),
                        self.shared.stopped.clone(),
                    ));
                }
                Ok::<_, RedisError>(master)
            })
            .await;
            let error = match attempt {
                Ok(Ok(master)) => return Ok(master),
                Ok(Err(error)) => error,
                Err(_elapsed) => RedisError::from((
                    ErrorKind::MasterNameNotFoundBySentinel,
                    "no reachable master named by Sentinel in time",
                    self.shared.url.master.clone(),
                )),
            };
            if Instant::now() + pause >= deadline {
                tracing::debug!(master = %self.shared.url.master, %error, "Sentinel named no reachable master in time");
                return Err(error);
            }
            tracing::debug!(master = %self.shared.url.master, %error, "asking Sentinel again for the master");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// Asks Sentinel for the master and opens a connection to it.
    async fn ask(
        &self,
        sentinel: &mut SentinelClient,
    ) -> RedisResult<(ConnectionAddr, MultiplexedConnection, Arc<AtomicBool>)> {
        let client = sentinel.async_get_client().await?;
        let info = client.get_connection_info();
        let addr = info.addr().clone();
        let (conn, open) = open(&addr, info.redis_settings()).await?;
        tracing::info!(master = %self.shared.url.master, %addr, "connected to the Redis master named by Sentinel");
        Ok((addr, conn, open))
    }

    /// A new connection of its own to the current master (for `WATCH`), with the
    /// generation it belongs to.
    pub(crate) async fn dedicated(&self) -> RedisResult<DedicatedSentinel> {
        let deadline = Instant::now() + FAILOVER_WAIT;
        let mut pause = FIRST_BACKOFF;
        loop {
            let master = self.master(deadline).await?;
            match open(&master.addr, &self.shared.url.node_info()).await {
                Ok((conn, open)) => {
                    return Ok(DedicatedSentinel {
                        conn,
                        open,
                        generation: master.generation,
                    });
                }
                // The master went away since it was found: ask again.
                Err(error) if breaks_connection(&error) && Instant::now() + pause < deadline => {
                    self.forget(master.generation);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// A client for the master Sentinel names now (for a subscription, which needs a
    /// connection of its own).
    pub(crate) async fn master_client(&self) -> RedisResult<redis::Client> {
        let master = self.master(Instant::now() + FAILOVER_WAIT).await?;
        let info = master
            .addr
            .clone()
            .into_connection_info()?
            .set_redis_settings(self.shared.url.node_info());
        redis::Client::open(info)
    }

    /// Whether a pooled dedicated connection may still be used.
    pub(crate) fn still_current(&self, dedicated: &DedicatedSentinel) -> bool {
        dedicated.open.load(Ordering::Acquire)
            && self
                .current()
                .is_some_and(|m| m.generation == dedicated.generation)
    }

    /// Called when a dedicated connection met `error`: a refused write or a broken
    /// connection means the master moved (or may have), so the next use asks Sentinel.
    pub(crate) fn saw_error(&self, dedicated: &DedicatedSentinel, error: &RedisError) {
        if is_readonly(error) || breaks_connection(error) {
            self.forget(dedicated.generation);
        }
    }

    /// Runs one request against the master, following it across a failover. `refused`
    /// tells a reply that is a replica's refusal.
    async fn run<'a, T, F, Fut>(&'a self, mut request: F, refused: fn(&T) -> bool) -> RedisResult<T>
    where
        F: FnMut(MultiplexedConnection) -> Fut + Send + 'a,
        Fut: std::future::Future<Output = RedisResult<T>> + Send + 'a,
    {
        let deadline = Instant::now() + FAILOVER_WAIT;
        let mut pause = FIRST_BACKOFF;
        loop {
            let master = self.master(deadline).await?;
            // A refusal is kept to be handed back if time runs out.
            let refusal = match request(master.conn.clone()).await {
                Ok(value) if refused(&value) => Ok(value),
                Ok(value) => return Ok(value),
                Err(error) if is_readonly(&error) => Err(error),
                Err(error) => {
                    if breaks_connection(&error) {
                        self.forget(master.generation);
                    }
                    return Err(error);
                }
            };
            // The server we wrote to is a replica now: nothing ran; find the new master
            // and send it there.
            self.forget(master.generation);
            if Instant::now() + pause >= deadline {
                return refusal;
            }
            tracing::info!(master = %self.shared.url.master, addr = %master.addr, "the Redis master became a replica; asking Sentinel for the new one");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }
}

/// A connection of one `WATCH` transaction to the master behind Sentinel.
#[derive(Clone)]
pub(crate) struct DedicatedSentinel {
    pub(crate) conn: MultiplexedConnection,
    open: Arc<AtomicBool>,
    generation: u64,
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.run(
            move |mut conn| async move { conn.req_packed_command(cmd).await },
            refused,
        ))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.run(
            move |mut conn| async move { conn.req_packed_commands(pipeline, offset, count).await },
            |values: &Vec<Value>| values.iter().any(refused),
        ))
    }

    fn get_db(&self) -> i64 {
        self.shared.url.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_the_sentinels_the_master_and_the_db() {
        let url = SentinelUrl::parse("redis+sentinel://s1:26380,s2,[::1]:26381/mymaster/3")
            .expect("parses");
        assert_eq!(
            url.sentinels(),
            &[
                ("s1".to_owned(), 26380),
                ("s2".to_owned(), DEFAULT_SENTINEL_PORT),
                ("::1".to_owned(), 26381)
            ]
        );
        assert_eq!(url.master_name(), "mymaster");
        assert_eq!(url.db(), 3);
        let plain = SentinelUrl::parse("redis+sentinel://127.0.0.1:26379/tavern").expect("parses");
        assert_eq!(plain.db(), 0);
        let trailing = SentinelUrl::parse("redis+sentinel://h:1/tavern/").expect("parses");
        assert_eq!(trailing.db(), 0);
    }

    #[test]
    fn credentials_are_decoded_and_hidden_in_debug() {
        let url = SentinelUrl::parse("redis+sentinel://app:p%40ss@h1,h2/tavern").expect("parses");
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        let shown = format!("{url:?}");
        assert!(!shown.contains("p@ss"), "{shown}");
        let only_password = SentinelUrl::parse("redis+sentinel://:pw@h1/tavern").expect("parses");
        assert_eq!(only_password.username, None);
        assert_eq!(only_password.password.as_deref(), Some("pw"));
    }

    #[test]
    fn a_bad_sentinel_url_says_what_is_wrong() {
        let cases = [
            ("redis://h:1/tavern", "must start with redis+sentinel://"),
            ("redis+sentinel:///tavern", "no Sentinel address"),
            ("redis+sentinel://h1:26379", "no master name"),
            ("redis+sentinel://h1:26379/", "no master name"),
            (
                "redis+sentinel://h1:x/tavern",
                "`x` in `h1:x` is not a port number",
            ),
            ("redis+sentinel://h1:0/tavern", "is not a port number"),
            ("redis+sentinel://h1,,h2/tavern", "empty Sentinel address"),
            (
                "redis+sentinel://h1/tavern/x",
                "`x` after the master name is not a database number",
            ),
            ("redis+sentinel://h1/tavern/-1", "is not a database number"),
            ("redis+sentinel://h1/tavern/0/more", "nothing may follow"),
            ("redis+sentinel://h1/tavern?db=1", "query parameters"),
            ("redis+sentinel://[::1/tavern", "opens `[`"),
            ("redis+sentinel://:p%zz@h1/tavern", "broken %-escape"),
        ];
        for (url, expected) in cases {
            let error = SentinelUrl::parse(url).expect_err(url).to_string();
            assert!(error.contains(expected), "{url}: {error}");
            assert!(
                error.starts_with("invalid redis+sentinel url"),
                "{url}: {error}"
            );
        }
    }

    /// Points `conn` at the server on `port` as if Sentinel had named it master (as a
    /// stale answer during a failover would).
    #[cfg(feature = "harness")]
    async fn pretend_master(conn: &SentinelConn, port: u16) {
        let addr = ConnectionAddr::Tcp("127.0.0.1".into(), port);
        let (c, open_flag) = open(&addr, &conn.shared.url.node_info())
            .await
            .expect("connect to the replica");
        let generation = conn.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *conn.shared.current.lock().expect("lock") = Some(Master {
            conn: c,
            open: open_flag,
            generation,
            addr,
        });
    }

    #[cfg(feature = "harness")]
    #[tokio::test]
    async fn a_write_a_replica_refuses_is_sent_to_the_master_sentinel_names() {
        use redis::AsyncCommands;
        let servers = crate::harness::TestSentinel::start().await;
        let master = servers.master_port().await.expect("a master");
        let replica = servers
            .server_ports()
            .into_iter()
            .find(|p| *p != master)
            .expect("a replica");
        let mut conn =
            SentinelConn::new(SentinelUrl::parse(&servers.url()).expect("url")).expect("conn");

        // A single command.
        pretend_master(&conn, replica).await;
        let _: () = conn.set("k", "v").await.expect("re-sent to the master");
        assert_eq!(conn.master_addr(), Some(format!("127.0.0.1:{master}")));

        // A MULTI/EXEC batch (the replica aborts it with READONLY inside EXECABORT).
        pretend_master(&conn, replica).await;
        let mut pipe = redis::pipe();
        pipe.atomic().set("a", "1").incr("n", 1);
        let _: () = pipe.query_async(&mut conn).await.expect("batch re-sent");
        assert_eq!(conn.master_addr(), Some(format!("127.0.0.1:{master}")));

        // A script that writes (the compare-and-set of `apply_if`). The master ran it
        // before, as an old master would have, so its script cache has it.
        let mut invocation = crate::lua::COMPARE_AND_SET.key("guard-0");
        invocation.arg("0").arg("");
        crate::Writes::new().append_script_args(&mut invocation);
        let applied: i64 = invocation.invoke_async(&mut conn).await.expect("script");
        assert_eq!(applied, 1);
        pretend_master(&conn, replica).await;
        let mut writes = crate::Writes::new();
        writes.incr("n");
        let mut invocation = crate::lua::COMPARE_AND_SET.key("guard");
        invocation.arg("0").arg("");
        writes.append_script_args(&mut invocation);
        let applied: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .expect("script re-sent");
        assert_eq!(applied, 1);
        let n: i64 = conn.get("n").await.expect("get");
        assert_eq!(n, 2);

        let client = redis::Client::open(format!("redis://127.0.0.1:{master}/")).expect("url");
        let mut direct = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let (k, a): (String, String) = redis::pipe()
            .get("k")
            .get("a")
            .query_async(&mut direct)
            .await
            .expect("read back");
        assert_eq!((k.as_str(), a.as_str()), ("v", "1"));
    }

    #[test]
    fn readonly_is_recognised_in_replies_and_transactions() {
        let readonly =
            redis::make_extension_error("READONLY".into(), Some("You can't write".into()));
        assert!(is_readonly(&readonly));
        let other = redis::make_extension_error("ERR".into(), Some("wrong".into()));
        assert!(!is_readonly(&other));
        let as_value = |e: RedisError| {
            let errors = e.into_server_errors().expect("a server error");
            Value::ServerError(errors[0].1.clone())
        };
        assert!(refused(&as_value(readonly.clone())));
        assert!(refused(&Value::Array(vec![
            Value::Okay,
            as_value(readonly)
        ])));
        assert!(!refused(&as_value(other)));
        assert!(!refused(&Value::Okay));
    }
}
