//! The visitor's demo-session client (`/ws/session/:id`, seed 002).

use crate::backoff::Backoff;
use crate::connection::{Dialect, Incoming, Lifecycle, ManagedSocket};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// `host:port` of the server.
    pub host: String,
    pub session_id: String,
    pub token: String,
    pub backoff: Backoff,
    pub heartbeat_every: Duration,
}

impl SessionConfig {
    pub fn new(host: &str, session_id: &str, token: &str) -> SessionConfig {
        SessionConfig {
            host: host.to_string(),
            session_id: session_id.to_string(),
            token: token.to_string(),
            backoff: Backoff::default(),
            heartbeat_every: Duration::from_secs(30),
        }
    }
}

/// A reply shown to the visitor (from a bot or a human agent).
#[derive(Clone, Debug, PartialEq)]
pub struct AgentResponse {
    pub seq: i64,
    pub text: String,
    pub speech: Option<String>,
    pub agent_id: String,
    pub iframe_commands: Vec<Value>,
    pub suggestions: Vec<String>,
}

/// What the client reports, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    Connected,
    Disconnected {
        code: Option<u16>,
        reason: String,
    },
    Reconnecting {
        attempt: u32,
        delay: Duration,
    },
    /// The server stored a message of ours. Reported once per client message id.
    Acked {
        client_message_id: String,
        id: i64,
        seq: i64,
    },
    /// A reply, each exactly once and in seq order across reconnects.
    AgentResponse(AgentResponse),
    Typing {
        agent_id: String,
        is_typing: bool,
    },
    LeadForm(Value),
    Error {
        code: String,
        message: String,
    },
    /// The session is over (ended, expired, refused) or the client was closed: no more
    /// reconnects.
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

struct SessionDialect {
    config: SessionConfig,
}

impl Dialect for SessionDialect {
    type Event = SessionEvent;

    async fn url(&self, last_seq: i64) -> Result<String, String> {
        Ok(format!(
            "ws://{}/ws/session/{}?token={}&lastSeq={last_seq}",
            self.config.host, self.config.session_id, self.config.token
        ))
    }

    fn message_frame(&self, client_message_id: &str, text: &str) -> Value {
        json!({"type": "visitor_message", "payload": {"text": text, "clientMessageId": client_message_id}})
    }

    fn classify(&self, frame: &Value) -> Incoming<SessionEvent> {
        let payload = &frame["payload"];
        let text = |field: &str| payload[field].as_str().unwrap_or_default().to_string();
        match frame["type"].as_str().unwrap_or_default() {
            "ack" => Incoming::ack(payload),
            "agent_response" => match payload["seq"].as_i64() {
                Some(seq) => Incoming::Message {
                    seq,
                    event: SessionEvent::AgentResponse(AgentResponse {
                        seq,
                        text: text("text"),
                        speech: payload["speech"].as_str().map(str::to_string),
                        agent_id: text("agentId"),
                        iframe_commands: payload["iframeCommands"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default(),
                        suggestions: payload["suggestions"]
                            .as_array()
                            .map(|list| {
                                list.iter()
                                    .filter_map(|s| s.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    }),
                },
                None => Incoming::Ignore,
            },
            "typing_indicator" => Incoming::Other(SessionEvent::Typing {
                agent_id: text("agentId"),
                is_typing: payload["isTyping"].as_bool().unwrap_or(false),
            }),
            "lead_form" => Incoming::Other(SessionEvent::LeadForm(payload.clone())),
            "error" => Incoming::Other(SessionEvent::Error {
                code: text("code"),
                message: text("message"),
            }),
            _ => Incoming::Ignore,
        }
    }

    fn lifecycle(&self, lifecycle: Lifecycle) -> SessionEvent {
        match lifecycle {
            Lifecycle::Connected => SessionEvent::Connected,
            Lifecycle::Disconnected { code, reason } => SessionEvent::Disconnected { code, reason },
            Lifecycle::Reconnecting { attempt, delay } => {
                SessionEvent::Reconnecting { attempt, delay }
            }
            Lifecycle::Closed { code, reason } => SessionEvent::Closed { code, reason },
        }
    }

    fn acked(&self, client_message_id: String, id: i64, seq: i64) -> SessionEvent {
        SessionEvent::Acked {
            client_message_id,
            id,
            seq,
        }
    }
}

/// A handle on a managed demo-session socket; cheap to clone.
#[derive(Clone)]
pub struct SessionClient {
    socket: ManagedSocket,
}

impl SessionClient {
    /// Starts the client; it connects in the background and reports on the returned channel.
    pub fn connect(
        config: SessionConfig,
    ) -> (SessionClient, mpsc::UnboundedReceiver<SessionEvent>) {
        let (backoff, heartbeat_every) = (config.backoff, config.heartbeat_every);
        let (socket, events) =
            ManagedSocket::start(SessionDialect { config }, backoff, heartbeat_every);
        (SessionClient { socket }, events)
    }

    pub fn typing(&self, is_typing: bool) {
        self.socket
            .frame(json!({"type": "typing", "payload": {"isTyping": is_typing}}));
    }
}

impl std::ops::Deref for SessionClient {
    type Target = ManagedSocket;

    fn deref(&self) -> &ManagedSocket {
        &self.socket
    }
}
