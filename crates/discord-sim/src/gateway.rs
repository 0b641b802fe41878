//! The gateway: a WebSocket speaking Discord's JSON protocol (v10, uncompressed).
//!
//! A *session* (created by IDENTIFY) outlives the *connection* it was created on: every
//! dispatch is numbered and kept in the session's replay buffer whether or not a
//! connection is attached, so a client that lost its socket can RESUME and receive
//! what it missed. That is the behaviour our bot's reconnect logic must be tested
//! against, so it is modelled faithfully; timing-related closes (missed heartbeats,
//! session expiry) are not.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Snowflake;
use crate::state::{Shared, State};

/// Gateway intent bits the sim filters on.
pub mod intents {
    pub const GUILDS: u64 = 1 << 0;
    pub const GUILD_MEMBERS: u64 = 1 << 1;
    pub const GUILD_VOICE_STATES: u64 = 1 << 7;
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
}

/// Gateway close codes the sim uses.
mod close {
    pub const UNKNOWN_OPCODE: u16 = 4001;
    pub const DECODE_ERROR: u16 = 4002;
    pub const NOT_AUTHENTICATED: u16 = 4003;
    pub const AUTHENTICATION_FAILED: u16 = 4004;
    pub const ALREADY_AUTHENTICATED: u16 = 4005;
    pub const INVALID_SEQ: u16 = 4007;
    pub const INVALID_SHARD: u16 = 4010;
    pub const INVALID_INTENTS: u16 = 4013;

    /// The reason Discord sends with a close code.
    pub fn reason(code: u16) -> &'static str {
        match code {
            4000 => "Unknown error.",
            UNKNOWN_OPCODE => "Unknown opcode.",
            DECODE_ERROR => "Error while decoding payload.",
            NOT_AUTHENTICATED => "Not authenticated.",
            AUTHENTICATION_FAILED => "Authentication failed.",
            ALREADY_AUTHENTICATED => "Already authenticated.",
            INVALID_SEQ => "Invalid seq.",
            4008 => "Rate limited.",
            4009 => "Session timed out.",
            INVALID_SHARD => "Invalid shard.",
            4011 => "Sharding required.",
            4012 => "Invalid API version.",
            INVALID_INTENTS => "Invalid intent(s).",
            4014 => "Disallowed intent(s).",
            _ => "",
        }
    }
}

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Send a text frame.
    Frame(Utf8Bytes),
    /// Send a close frame with this code, then end the connection.
    Close(u16, &'static str),
    /// Drop the TCP connection without a close frame (a 1006 for the client).
    Abort,
}

#[derive(Debug)]
struct Connection {
    tx: mpsc::UnboundedSender<Outbound>,
    /// The session identified or resumed on this connection.
    session: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub id: String,
    pub shard: [u32; 2],
    pub intents: u64,
    pub seq: u64,
    /// `(seq, frame)` of the latest dispatches, oldest first.
    buffer: VecDeque<(u64, Utf8Bytes)>,
    /// The connection currently attached, if any.
    conn: Option<u64>,
}

impl Session {
    fn wants(&self, guild: Option<Snowflake>, intent: u64) -> bool {
        if intent != 0 && self.intents & intent == 0 {
            return false;
        }
        let [id, count] = self.shard;
        match guild {
            Some(guild) => guild.shard(count) == id,
            // DMs and guild-less events go to shard 0, as on Discord.
            None => id == 0,
        }
    }
}

/// Gateway part of the sim state.
#[derive(Debug)]
pub(crate) struct GatewayState {
    pub accepting: bool,
    sessions: HashMap<String, Session>,
    connections: HashMap<u64, Connection>,
    /// Gateway WebSockets opened since the sim started.
    opened: usize,
    buffer_capacity: usize,
    /// Guilds the bot is not a member of (made with `Sim::create_user_guild` and not
    /// yet joined through the OAuth2 bot-install flow). Discord sends a bot nothing
    /// about a guild it is not in, so dispatches for these are dropped.
    pub bot_absent: HashSet<Snowflake>,
}

impl GatewayState {
    pub fn new(buffer_capacity: usize) -> Self {
        Self {
            accepting: true,
            sessions: HashMap::new(),
            connections: HashMap::new(),
            opened: 0,
            buffer_capacity: buffer_capacity.max(1),
            bot_absent: HashSet::new(),
        }
    }

    /// Sends a dispatch to every session that should see it (right shard, intent
    /// granted). `intent == 0` means "always" (INTERACTION_CREATE). The payload is
    /// serialised once; only the envelope differs per session.
    /// Whether any session would receive a dispatch for `guild` under `intent` (so a
    /// caller can skip building a payload nobody gets).
    pub fn wanted(&self, guild: Option<Snowflake>, intent: u64) -> bool {
        if guild.is_some_and(|g| self.bot_absent.contains(&g)) {
            return false;
        }
        self.sessions.values().any(|s| s.wants(guild, intent))
    }

    pub fn dispatch(
        &mut self,
        event: &'static str,
        guild: Option<Snowflake>,
        intent: u64,
        data: &Value,
    ) {
        if !self.wanted(guild, intent) {
            tracing::trace!(event, "no gateway session wants this dispatch");
            return;
        }
        let data = match serde_json::to_string(data) {
            Ok(data) => data,
            Err(error) => {
                tracing::error!(%error, event, "could not serialise dispatch");
                return;
            }
        };
        let ids: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.wants(guild, intent))
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            self.push(&id, event, &data);
        }
    }

    /// Numbers a dispatch for one session, buffers it and sends it if connected.
    fn push(&mut self, session: &str, event: &str, data: &str) {
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        s.seq += 1;
        let frame = Utf8Bytes::from(format!(
            r#"{{"op":0,"t":"{event}","s":{},"d":{data}}}"#,
            s.seq
        ));
        if s.buffer.len() >= self.buffer_capacity {
            s.buffer.pop_front();
        }
        s.buffer.push_back((s.seq, frame.clone()));
        if let Some(conn) = s.conn.and_then(|c| self.connections.get(&c)) {
            // A closed receiver means the connection task is ending; the frame stays
            // in the buffer for RESUME.
            let _ = conn.tx.send(Outbound::Frame(frame));
        }
    }

    /// Closes every connection abruptly; sessions stay for RESUME.
    pub fn drop_connections(&mut self) -> usize {
        for session in self.sessions.values_mut() {
            session.conn = None;
        }
        let count = self.connections.len();
        for (_, conn) in self.connections.drain() {
            let _ = conn.tx.send(Outbound::Abort);
        }
        count
    }

    /// Closes the connections of the sessions of `shard` (every connection when
    /// `None`, identified or not) with a close frame carrying `code`. Sessions stay,
    /// so a client allowed to reconnect may RESUME. Returns how many were closed.
    pub fn close_connections(&mut self, shard: Option<u32>, code: u16) -> usize {
        let closing: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, c)| match shard {
                None => true,
                Some(shard) => c
                    .session
                    .as_ref()
                    .and_then(|s| self.sessions.get(s))
                    .is_some_and(|s| s.shard[0] == shard),
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &closing {
            if let Some(conn) = self.connections.remove(id) {
                if let Some(session) = conn.session.and_then(|s| self.sessions.get_mut(&s))
                    && session.conn == Some(*id)
                {
                    session.conn = None;
                }
                let _ = conn.tx.send(Outbound::Close(code, close::reason(code)));
            }
        }
        closing.len()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    pub fn opened_count(&self) -> usize {
        self.opened
    }

    fn detach(&mut self, conn: u64) {
        if let Some(connection) = self.connections.remove(&conn)
            && let Some(session) = connection.session.and_then(|s| self.sessions.get_mut(&s))
            && session.conn == Some(conn)
        {
            session.conn = None;
        }
    }

    fn send(&self, conn: u64, out: Outbound) {
        if let Some(c) = self.connections.get(&conn) {
            let _ = c.tx.send(out);
        }
    }
}

/// Per-process counter for connection ids (only used as map keys).
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Serves one upgraded gateway WebSocket until it closes, is dropped by a test, or
/// the sim shuts down.
pub(crate) async fn serve_connection(shared: Arc<Shared>, socket: WebSocket) {
    let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hello = format!(
        r#"{{"op":10,"s":null,"t":null,"d":{{"heartbeat_interval":{}}}}}"#,
        shared.ctx.config.heartbeat_interval.as_millis()
    );
    let _ = tx.send(Outbound::Frame(Utf8Bytes::from(hello)));
    {
        let mut state = shared.lock();
        state.gateway.opened += 1;
        state
            .gateway
            .connections
            .insert(conn, Connection { tx, session: None });
    }
    tracing::debug!(conn, "gateway connection opened");

    let mut shutdown = shared.shutdown.subscribe();
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            out = rx.recv() => match out {
                Some(Outbound::Frame(frame)) => {
                    if sink.feed(WsMessage::Text(frame)).await.is_err() {
                        break;
                    }
                    // Batch whatever else is queued into one flush: under load this
                    // turns many small writes into one.
                    let mut stop = false;
                    while let Ok(next) = rx.try_recv() {
                        match next {
                            Outbound::Frame(frame) => {
                                if sink.feed(WsMessage::Text(frame)).await.is_err() {
                                    stop = true;
                                    break;
                                }
                            }
                            Outbound::Close(code, reason) => {
                                let _ = sink.flush().await;
                                send_close(&mut sink, code, reason).await;
                                stop = true;
                                break;
                            }
                            Outbound::Abort => {
                                stop = true;
                                break;
                            }
                        }
                    }
                    if stop || sink.flush().await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    send_close(&mut sink, code, reason).await;
                    break;
                }
                Some(Outbound::Abort) | None => break,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => handle_frame(&shared, conn, text.as_str()),
                Some(Ok(WsMessage::Binary(_))) => {
                    shared.lock().gateway.send(conn, Outbound::Close(close::DECODE_ERROR, "Error while decoding payload."));
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                // The client closes: the WebSocket layer has queued the close frame
                // that answers it; it goes out before the socket does, as Discord's
                // does, so the client sees the close handshake complete.
                Some(Ok(WsMessage::Close(_))) => {
                    let _ = sink.flush().await;
                    break;
                }
                Some(Err(_)) | None => break,
            },
        }
    }
    shared.lock().gateway.detach(conn);
    tracing::debug!(conn, "gateway connection closed");
}

async fn send_close<S>(sink: &mut S, code: u16, reason: &'static str)
where
    S: futures_util::Sink<WsMessage> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = sink.send(WsMessage::Close(Some(frame))).await;
    // Give the peer a moment to read the close frame before the socket goes away.
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[derive(Deserialize)]
struct Payload {
    op: u8,
    #[serde(default)]
    d: Value,
}

#[derive(Deserialize)]
struct Identify {
    token: String,
    intents: Option<u64>,
    shard: Option<[u32; 2]>,
}

#[derive(Deserialize)]
struct Resume {
    token: String,
    session_id: String,
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct RequestMembers {
    guild_id: Snowflake,
    #[serde(default)]
    user_ids: Option<Value>,
    #[serde(default)]
    nonce: Option<String>,
}

fn handle_frame(shared: &Shared, conn: u64, text: &str) {
    let mut state = shared.lock();
    // A connection dropped by the sim may still deliver a frame it had read; it
    // must not create or attach a session.
    if !state.gateway.connections.contains_key(&conn) {
        return;
    }
    let Ok(payload) = serde_json::from_str::<Payload>(text) else {
        state.gateway.send(
            conn,
            Outbound::Close(close::DECODE_ERROR, "Error while decoding payload."),
        );
        return;
    };
    let identified = state
        .gateway
        .connections
        .get(&conn)
        .is_some_and(|c| c.session.is_some());
    match payload.op {
        1 => {
            state.gateway.send(
                conn,
                Outbound::Frame(Utf8Bytes::from_static(
                    r#"{"op":11,"s":null,"t":null,"d":null}"#,
                )),
            );
        }
        2 if identified => state.gateway.send(
            conn,
            Outbound::Close(close::ALREADY_AUTHENTICATED, "Already authenticated."),
        ),
        2 => match serde_json::from_value::<Identify>(payload.d) {
            Ok(identify) => self::identify(shared, &mut state, conn, identify),
            Err(_) => state.gateway.send(
                conn,
                Outbound::Close(close::DECODE_ERROR, "Error while decoding payload."),
            ),
        },
        6 if identified => state.gateway.send(
            conn,
            Outbound::Close(close::ALREADY_AUTHENTICATED, "Already authenticated."),
        ),
        6 => match serde_json::from_value::<Resume>(payload.d) {
            Ok(resume) => self::resume(shared, &mut state, conn, resume),
            Err(_) => state.gateway.send(
                conn,
                Outbound::Close(close::DECODE_ERROR, "Error while decoding payload."),
            ),
        },
        3 | 4 | 8 | 31 if !identified => state.gateway.send(
            conn,
            Outbound::Close(close::NOT_AUTHENTICATED, "Not authenticated."),
        ),
        // Presence, voice state and soundboard requests are accepted and ignored.
        3 | 4 | 31 => {}
        8 => {
            if let Ok(request) = serde_json::from_value::<RequestMembers>(payload.d) {
                request_members(&mut state, conn, request);
            }
        }
        _ => state.gateway.send(
            conn,
            Outbound::Close(close::UNKNOWN_OPCODE, "Unknown opcode."),
        ),
    }
}

fn token_matches(shared: &Shared, token: &str) -> bool {
    let token = token.strip_prefix("Bot ").unwrap_or(token);
    token == shared.ctx.config.token
}

fn identify(shared: &Shared, state: &mut State, conn: u64, identify: Identify) {
    if !token_matches(shared, &identify.token) {
        state.gateway.send(
            conn,
            Outbound::Close(close::AUTHENTICATION_FAILED, "Authentication failed."),
        );
        return;
    }
    let Some(intents) = identify.intents else {
        state.gateway.send(
            conn,
            Outbound::Close(close::INVALID_INTENTS, "Invalid intent(s)."),
        );
        return;
    };
    let shard = identify.shard.unwrap_or([0, 1]);
    if shard[1] == 0 || shard[0] >= shard[1] {
        state.gateway.send(
            conn,
            Outbound::Close(close::INVALID_SHARD, "Invalid shard."),
        );
        return;
    }
    // A new IDENTIFY for a shard replaces that shard's detached sessions: a client
    // only re-identifies once it has given up on resuming them.
    state
        .gateway
        .sessions
        .retain(|_, s| s.shard != shard || s.conn.is_some());

    let session_id = format!(
        "{:016x}{:016x}",
        shared.ids.next().get() ^ shared.ctx.secret,
        crate::state::random_u64()
    );
    state.gateway.sessions.insert(
        session_id.clone(),
        Session {
            id: session_id.clone(),
            shard,
            intents,
            seq: 0,
            buffer: VecDeque::new(),
            conn: Some(conn),
        },
    );
    if let Some(c) = state.gateway.connections.get_mut(&conn) {
        c.session = Some(session_id.clone());
    }
    tracing::debug!(conn, session = %session_id, ?shard, intents, "gateway session identified");

    let guilds: Vec<Snowflake> = state
        .guilds
        .keys()
        .copied()
        .filter(|g| g.shard(shard[1]) == shard[0] && !state.gateway.bot_absent.contains(g))
        .collect();
    let ready = json!({
        "v": 10,
        "user": state.current_user_json(&shared.ctx),
        "guilds": guilds.iter().map(|g| json!({"id": g, "unavailable": true})).collect::<Vec<_>>(),
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": shared.ctx.gateway_url(),
        "shard": shard,
        "application": {"id": shared.ctx.app_id, "flags": 0},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": ["local"],
        "user_settings": {},
    });
    push_json(state, &session_id, "READY", &ready);
    if intents & intents::GUILDS != 0 {
        for guild in guilds {
            let payload = state.guild_create_json(guild);
            push_json(state, &session_id, "GUILD_CREATE", &payload);
        }
    }
}

fn push_json(state: &mut State, session: &str, event: &str, data: &Value) {
    match serde_json::to_string(data) {
        Ok(data) => state.gateway.push(session, event, &data),
        Err(error) => tracing::error!(%error, event, "could not serialise dispatch"),
    }
}

fn resume(shared: &Shared, state: &mut State, conn: u64, resume: Resume) {
    if !token_matches(shared, &resume.token) {
        state.gateway.send(
            conn,
            Outbound::Close(close::AUTHENTICATION_FAILED, "Authentication failed."),
        );
        return;
    }
    let invalid = Outbound::Frame(Utf8Bytes::from_static(
        r#"{"op":9,"s":null,"t":null,"d":false}"#,
    ));
    let gateway = &mut state.gateway;
    let Some(session) = gateway.sessions.get_mut(&resume.session_id) else {
        tracing::debug!(conn, session = %resume.session_id, "resume of unknown session");
        gateway.send(conn, invalid);
        return;
    };
    let seq = resume.seq.unwrap_or(0);
    if seq > session.seq {
        gateway.send(conn, Outbound::Close(close::INVALID_SEQ, "Invalid seq."));
        return;
    }
    // Events the buffer no longer holds cannot be replayed: the session is lost.
    let oldest = session.buffer.front().map_or(session.seq + 1, |(s, _)| *s);
    if oldest > seq + 1 {
        gateway.sessions.remove(&resume.session_id);
        gateway.send(conn, invalid);
        return;
    }
    let previous = session.conn.replace(conn);
    let replay: Vec<Utf8Bytes> = session
        .buffer
        .iter()
        .filter(|(s, _)| *s > seq)
        .map(|(_, frame)| frame.clone())
        .collect();
    let session_id = session.id.clone();
    if let Some(previous) = previous.filter(|p| *p != conn) {
        gateway.send(previous, Outbound::Abort);
        if let Some(old) = gateway.connections.get_mut(&previous) {
            old.session = None;
        }
    }
    if let Some(c) = gateway.connections.get_mut(&conn) {
        c.session = Some(session_id.clone());
    }
    tracing::debug!(conn, session = %session_id, from = seq, replayed = replay.len(), "gateway session resumed");
    for frame in replay {
        gateway.send(conn, Outbound::Frame(frame));
    }
    gateway.push(&session_id, "RESUMED", "{}");
}

fn request_members(state: &mut State, conn: u64, request: RequestMembers) {
    let Some(guild) = state.guilds.get(&request.guild_id) else {
        return;
    };
    let wanted: Option<Vec<Snowflake>> = match request.user_ids {
        Some(Value::Array(ids)) => Some(
            ids.into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
        ),
        Some(single @ (Value::String(_) | Value::Number(_))) => {
            serde_json::from_value(single).ok().map(|id| vec![id])
        }
        _ => None,
    };
    let user_ids: Vec<Snowflake> = guild.members.keys().copied().collect();
    let (found, not_found): (Vec<Snowflake>, Vec<Snowflake>) = match &wanted {
        Some(wanted) => wanted.iter().partition(|id| user_ids.contains(id)),
        None => (user_ids, Vec::new()),
    };
    let members: Vec<Value> = found
        .iter()
        .filter_map(|u| state.member_json(request.guild_id, *u, true).ok())
        .collect();
    let mut payload = json!({
        "guild_id": request.guild_id,
        "members": members,
        "chunk_index": 0,
        "chunk_count": 1,
        "not_found": not_found,
    });
    if let Some(nonce) = request.nonce {
        crate::state::insert(&mut payload, "nonce", json!(nonce));
    }
    let session = state
        .gateway
        .connections
        .get(&conn)
        .and_then(|c| c.session.clone());
    if let Some(session) = session {
        push_json(state, &session, "GUILD_MEMBERS_CHUNK", &payload);
    }
}
