//! The agent's (or a back end's) conversation client: `/ws/chat/:threadId` with a fresh ticket
//! from `POST /api/v1/ws/ticket` on every connect (seed 003's managed sockets).

use crate::backoff::Backoff;
use crate::connection::{Dialect, Incoming, Lifecycle, ManagedSocket};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// `host:port` of the server (plain HTTP and WebSocket).
    pub host: String,
    /// An agent's access token, or the account's API key.
    pub token: String,
    pub conversation_id: i64,
    pub backoff: Backoff,
    pub heartbeat_every: Duration,
}

impl ChatConfig {
    pub fn new(host: &str, token: &str, conversation_id: i64) -> ChatConfig {
        ChatConfig {
            host: host.to_string(),
            token: token.to_string(),
            conversation_id,
            backoff: Backoff::default(),
            heartbeat_every: Duration::from_secs(30),
        }
    }
}

/// What the chat client reports, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatEvent {
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
    /// `message.created`: each message of the conversation exactly once, in seq order.
    Message {
        seq: i64,
        message: Value,
    },
    /// Any other event, by its canonical name (`message.updated`, `conversation.typing_on`,
    /// `assignee.changed`, ...).
    Event {
        name: String,
        payload: Value,
    },
    Error {
        code: String,
        message: String,
    },
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

struct ChatDialect {
    config: ChatConfig,
    http: reqwest::Client,
}

impl Dialect for ChatDialect {
    type Event = ChatEvent;

    async fn url(&self, last_seq: i64) -> Result<String, String> {
        let response = self
            .http
            .post(format!("http://{}/api/v1/ws/ticket", self.config.host))
            .bearer_auth(&self.config.token)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if !response.status().is_success() {
            return Err(format!("ticket refused: {}", response.status()));
        }
        let body: Value = response.json().await.map_err(|error| error.to_string())?;
        let ticket = body["ticket"].as_str().ok_or("no ticket in the answer")?;
        Ok(format!(
            "ws://{}/ws/chat/{}?ticket={ticket}&lastSeq={last_seq}",
            self.config.host, self.config.conversation_id
        ))
    }

    fn message_frame(&self, client_message_id: &str, text: &str) -> Value {
        json!({"type": "message", "payload": {"content": text, "clientMessageId": client_message_id}})
    }

    fn classify(&self, frame: &Value) -> Incoming<ChatEvent> {
        let payload = &frame["payload"];
        match frame["type"].as_str().unwrap_or_default() {
            "ack" => Incoming::ack(payload),
            "message.created" => match payload["seq"].as_i64() {
                Some(seq) => Incoming::Message {
                    seq,
                    event: ChatEvent::Message {
                        seq,
                        message: payload.clone(),
                    },
                },
                None => Incoming::Ignore,
            },
            "error" => Incoming::Other(ChatEvent::Error {
                code: payload["code"].as_str().unwrap_or_default().to_string(),
                message: payload["message"].as_str().unwrap_or_default().to_string(),
            }),
            "pong" => Incoming::Ignore,
            name => Incoming::Other(ChatEvent::Event {
                name: name.to_string(),
                payload: payload.clone(),
            }),
        }
    }

    fn lifecycle(&self, lifecycle: Lifecycle) -> ChatEvent {
        match lifecycle {
            Lifecycle::Connected => ChatEvent::Connected,
            Lifecycle::Disconnected { code, reason } => ChatEvent::Disconnected { code, reason },
            Lifecycle::Reconnecting { attempt, delay } => {
                ChatEvent::Reconnecting { attempt, delay }
            }
            Lifecycle::Closed { code, reason } => ChatEvent::Closed { code, reason },
        }
    }

    fn acked(&self, client_message_id: String, id: i64, seq: i64) -> ChatEvent {
        ChatEvent::Acked {
            client_message_id,
            id,
            seq,
        }
    }
}

/// A handle on a managed conversation socket; cheap to clone.
#[derive(Clone)]
pub struct ChatClient {
    socket: ManagedSocket,
}

impl ChatClient {
    /// Starts the client; it fetches a ticket, connects in the background and reports on the
    /// returned channel.
    pub fn connect(config: ChatConfig) -> (ChatClient, mpsc::UnboundedReceiver<ChatEvent>) {
        let (backoff, heartbeat_every) = (config.backoff, config.heartbeat_every);
        let dialect = ChatDialect {
            config,
            http: reqwest::Client::new(),
        };
        let (socket, events) = ManagedSocket::start(dialect, backoff, heartbeat_every);
        (ChatClient { socket }, events)
    }

    pub fn typing(&self, is_typing: bool, private: bool) {
        self.socket.frame(
            json!({"type": "typing", "payload": {"isTyping": is_typing, "isPrivate": private}}),
        );
    }
}

impl std::ops::Deref for ChatClient {
    type Target = ManagedSocket;

    fn deref(&self) -> &ManagedSocket {
        &self.socket
    }
}
