//! Helpers shared by the integration tests: a raw gateway client and an
//! authenticated REST client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use discord_sim::{Sim, SimConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

/// Every intent the sim filters on.
pub const ALL_INTENTS: u64 = discord_sim::intents::GUILDS
    | discord_sim::intents::GUILD_MEMBERS
    | discord_sim::intents::GUILD_MESSAGES
    | discord_sim::intents::DIRECT_MESSAGES
    | discord_sim::intents::MESSAGE_CONTENT;

pub fn start() -> Sim {
    start_with(SimConfig::default())
}

pub fn start_with(config: SimConfig) -> Sim {
    Sim::start(config).expect("sim starts")
}

/// A gateway client speaking raw JSON frames, recording every frame it receives.
pub struct RawGateway {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Text of every frame received, in order.
    pub frames: Vec<String>,
}

impl RawGateway {
    pub async fn connect(sim: &Sim) -> Self {
        let url = format!("{}/?v=10&encoding=json", sim.gateway_url());
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("gateway connects");
        Self {
            ws,
            frames: Vec::new(),
        }
    }

    /// The next text frame as JSON, or `None` if the connection closed. Close frames
    /// come back as `{"close": code}`.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a gateway frame within 5 s");
            match message {
                Some(Ok(Message::Text(text))) => {
                    self.frames.push(text.to_string());
                    return Some(serde_json::from_str(&text).expect("frame is JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(json!({"close": frame.map(|f| u16::from(f.code))}));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn next_frame(&mut self) -> Value {
        self.next().await.expect("connection open")
    }

    /// Waits for no frame for `quiet`; returns what arrived otherwise.
    pub async fn try_next(&mut self, quiet: Duration) -> Option<Value> {
        match tokio::time::timeout(quiet, self.ws.next()).await {
            Err(_) => None,
            Ok(Some(Ok(Message::Text(text)))) => {
                self.frames.push(text.to_string());
                Some(serde_json::from_str(&text).expect("frame is JSON"))
            }
            Ok(other) => Some(json!({"other": format!("{other:?}")})),
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("send frame");
    }

    /// Skips frames until a dispatch of type `t`; returns the whole frame.
    pub async fn dispatch(&mut self, t: &str) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame["op"] == 0 && frame["t"] == t {
                return frame;
            }
        }
    }

    /// HELLO + IDENTIFY; returns the READY frame.
    pub async fn identify(&mut self, sim: &Sim, intents: u64, shard: [u32; 2]) -> Value {
        let hello = self.next_frame().await;
        assert_eq!(hello["op"], 10, "first frame is HELLO");
        self.send(json!({
            "op": 2,
            "d": {
                "token": sim.token(),
                "intents": intents,
                "shard": shard,
                "properties": {"os": "linux", "browser": "test", "device": "test"},
            }
        }))
        .await;
        self.dispatch("READY").await
    }

    /// Sends a close frame with `code` (as a shard that stops does).
    pub async fn close(&mut self, code: u16) {
        self.ws
            .send(Message::Close(Some(
                tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: code.into(),
                    reason: "closing".into(),
                },
            )))
            .await
            .expect("send close frame");
    }

    /// Closes the TCP connection without a close frame.
    pub fn abandon(self) {
        drop(self.ws);
    }
}

/// A reqwest client that sends `Authorization: Bot <token>`.
pub struct Rest {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Rest {
    pub fn new(sim: &Sim) -> Self {
        Self {
            client: http(),
            base: sim.api_url(),
            token: sim.token().to_owned(),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bot {}", self.token))
    }

    /// Sends and returns status and JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body read");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, body).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// Registers a `/roll expression:<string>` guild command and a global `/game`
/// command with subcommands.
pub async fn register_commands(rest: &Rest, sim: &Sim, guild: discord_sim::Snowflake) {
    let (status, body) = rest
        .put(
            &format!("/applications/{}/guilds/{guild}/commands", sim.application_id()),
            Some(json!([{
                "name": "roll",
                "description": "Roll dice",
                "type": 1,
                "options": [
                    {"name": "expression", "description": "Dice expression", "type": 3, "required": true},
                    {"name": "private", "description": "Only you see it", "type": 5}
                ]
            }])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = rest
        .put(
            &format!("/applications/{}/commands", sim.application_id()),
            Some(json!([{
                "name": "game",
                "description": "Drinking game",
                "options": [
                    {"name": "start", "description": "Start a game", "type": 1, "options": [
                        {"name": "rounds", "description": "How many rounds", "type": 4, "required": false},
                        {"name": "with", "description": "Invite someone", "type": 6}
                    ]},
                    {"name": "stop", "description": "Stop the game", "type": 1}
                ]
            }])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A plain HTTP client. The workspace build compiles reqwest's TLS without a default
/// provider (for object storage elsewhere), so one is installed first.
/// Alice runs `/roll 1d20` in the demo guild's #dice.
pub fn alice_rolls(sim: &Sim, demo: &discord_sim::Demo) -> discord_sim::Interaction {
    sim.run_command(
        demo.alice,
        demo.dice,
        "roll",
        serde_json::json!([{"name": "expression", "value": "1d20"}]),
    )
    .expect("the command runs")
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `GET url` with [`http`].
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// Deserializes a gateway frame with twilight-model, the library the bot uses, with
/// a readable failure.
pub fn twilight_event(frame: &Value) -> twilight_model::gateway::event::GatewayEvent {
    use serde::de::DeserializeSeed;
    let text = frame.to_string();
    let deserializer = twilight_model::gateway::event::GatewayEventDeserializer::from_json(&text)
        .unwrap_or_else(|| panic!("frame lacks op/t: {text}"));
    let mut json = serde_json::Deserializer::from_str(&text);
    deserializer
        .deserialize(&mut json)
        .unwrap_or_else(|error| panic!("frame does not deserialize with twilight: {error}\n{text}"))
}

/// Deserializes a REST body into a twilight type, with a readable failure.
pub fn twilight<T: serde::de::DeserializeOwned>(what: &str, value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|error| {
        panic!("{what} does not deserialize with twilight-model: {error}\n{value:#}")
    })
}

/// The URL without its query (signatures differ between two renderings).
pub fn unsigned(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
