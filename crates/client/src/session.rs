//! The visitor's demo-session client: one background task owns the socket, reconnects it,
//! resumes after the newest reply it received, re-sends the outbox, and reports typed events.

use crate::backoff::Backoff;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

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

enum ClientCommand {
    Send {
        client_message_id: String,
        text: String,
    },
    Frame(Value),
    DropConnection,
    Close,
}

/// State shared between the handle and its task.
#[derive(Default)]
struct Shared {
    /// Messages not yet acknowledged, in send order.
    outbox: VecDeque<(String, String)>,
    /// The newest reply seq received: resumes start after it.
    last_seq: i64,
    /// Replies the server sent again (at or below `last_seq`) and the client dropped.
    duplicates_dropped: u64,
}

/// A handle on a managed session socket; cheap to clone.
#[derive(Clone)]
pub struct SessionClient {
    commands: mpsc::UnboundedSender<ClientCommand>,
    shared: Arc<Mutex<Shared>>,
    next_id: Arc<AtomicU64>,
    id_prefix: Arc<str>,
}

impl SessionClient {
    /// Starts the client; it connects in the background and reports on the returned channel.
    pub fn connect(
        config: SessionConfig,
    ) -> (SessionClient, mpsc::UnboundedReceiver<SessionEvent>) {
        let (commands, commands_in) = mpsc::unbounded_channel();
        let (events, events_out) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut random = [0u8; 6];
        let _ = getrandom::fill(&mut random);
        let prefix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        tokio::spawn(run(config, commands_in, events, shared.clone()));
        (
            SessionClient {
                commands,
                shared,
                next_id: Arc::new(AtomicU64::new(1)),
                id_prefix: prefix.into(),
            },
            events_out,
        )
    }

    /// Queues a message; it is sent now if connected, else on reconnect, until acknowledged.
    /// Returns its client message id.
    pub fn send_text(&self, text: &str) -> String {
        let id = format!(
            "rc-{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        self.send_text_with_id(text, &id);
        id
    }

    /// Queues a message under a client message id of the caller's choosing.
    pub fn send_text_with_id(&self, text: &str, client_message_id: &str) {
        self.shared
            .lock()
            .expect("client state poisoned")
            .outbox
            .push_back((client_message_id.to_string(), text.to_string()));
        let _ = self.commands.send(ClientCommand::Send {
            client_message_id: client_message_id.to_string(),
            text: text.to_string(),
        });
    }

    pub fn typing(&self, is_typing: bool) {
        let _ = self.commands.send(ClientCommand::Frame(
            json!({"type": "typing", "payload": {"isTyping": is_typing}}),
        ));
    }

    pub fn read(&self, seq: i64) {
        let _ = self.commands.send(ClientCommand::Frame(
            json!({"type": "read", "payload": {"seq": seq}}),
        ));
    }

    /// Cuts the current connection as a network failure would; the client reconnects.
    pub fn drop_connection(&self) {
        let _ = self.commands.send(ClientCommand::DropConnection);
    }

    /// Closes for good.
    pub fn close(&self) {
        let _ = self.commands.send(ClientCommand::Close);
    }

    /// Messages not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.shared
            .lock()
            .expect("client state poisoned")
            .outbox
            .len()
    }

    /// The newest reply seq received.
    pub fn last_seq(&self) -> i64 {
        self.shared.lock().expect("client state poisoned").last_seq
    }

    /// Replies the server sent more than once, which the client dropped (should stay 0).
    pub fn duplicates_dropped(&self) -> u64 {
        self.shared
            .lock()
            .expect("client state poisoned")
            .duplicates_dropped
    }
}

/// Close codes after which reconnecting cannot help.
fn is_final(code: u16) -> bool {
    matches!(code, 1000 | 4001 | 4004)
}

enum ConnectionEnd {
    Reconnect { code: Option<u16>, reason: String },
    Final { code: Option<u16>, reason: String },
}

async fn run(
    config: SessionConfig,
    mut commands: mpsc::UnboundedReceiver<ClientCommand>,
    events: mpsc::UnboundedSender<SessionEvent>,
    shared: Arc<Mutex<Shared>>,
) {
    let mut acked: HashSet<String> = HashSet::new();
    let mut attempt: u32 = 0;
    loop {
        let last_seq = shared.lock().expect("client state poisoned").last_seq;
        // Always say where we are, 0 included: the server's cursor records what it wrote, and
        // a write can be lost with the connection before we read it.
        let url = format!(
            "ws://{}/ws/session/{}?token={}&lastSeq={last_seq}",
            config.host, config.session_id, config.token
        );
        match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => {
                attempt = 0;
                let _ = events.send(SessionEvent::Connected);
                let end = serve(&config, socket, &mut commands, &events, &shared, &mut acked).await;
                match end {
                    ConnectionEnd::Final { code, reason } => {
                        let _ = events.send(SessionEvent::Closed { code, reason });
                        return;
                    }
                    ConnectionEnd::Reconnect { code, reason } => {
                        let _ = events.send(SessionEvent::Disconnected { code, reason });
                    }
                }
            }
            Err(error) => {
                tracing::debug!(%error, "session connect failed");
            }
        }
        attempt += 1;
        if config.backoff.gives_up_after(attempt) {
            let _ = events.send(SessionEvent::Closed {
                code: None,
                reason: "gave up reconnecting".into(),
            });
            return;
        }
        let delay = config.backoff.delay(attempt);
        let _ = events.send(SessionEvent::Reconnecting { attempt, delay });
        let wake = tokio::time::Instant::now() + delay;
        // While waiting, sends go to the outbox (already there) and a close is honoured.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                command = commands.recv() => match command {
                    None | Some(ClientCommand::Close) => {
                        let _ = events.send(SessionEvent::Closed { code: None, reason: "closed by the client".into() });
                        return;
                    }
                    Some(_) => continue,
                },
            }
        }
    }
}

async fn serve<S>(
    config: &SessionConfig,
    socket: S,
    commands: &mut mpsc::UnboundedReceiver<ClientCommand>,
    events: &mpsc::UnboundedSender<SessionEvent>,
    shared: &Arc<Mutex<Shared>>,
    acked: &mut HashSet<String>,
) -> ConnectionEnd
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let (mut sink, mut stream) = socket.split();
    // Everything not yet acknowledged goes again, in order, under its original id.
    let outbox: Vec<(String, String)> = shared
        .lock()
        .expect("client state poisoned")
        .outbox
        .iter()
        .cloned()
        .collect();
    for (client_message_id, text) in outbox {
        let frame = json!({"type": "visitor_message", "payload": {"text": text, "clientMessageId": client_message_id}});
        if sink
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            return ConnectionEnd::Reconnect {
                code: None,
                reason: "send failed".into(),
            };
        }
    }
    let mut heartbeat = tokio::time::interval(config.heartbeat_every);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let frame = json!({"type": "heartbeat", "payload": {}});
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return ConnectionEnd::Reconnect { code: None, reason: "send failed".into() };
                }
            }
            command = commands.recv() => {
                let frame = match command {
                    None | Some(ClientCommand::Close) => {
                        let _ = sink.send(Message::Close(None)).await;
                        return ConnectionEnd::Final { code: Some(1000), reason: "closed by the client".into() };
                    }
                    Some(ClientCommand::DropConnection) => {
                        return ConnectionEnd::Reconnect { code: None, reason: "dropped".into() };
                    }
                    Some(ClientCommand::Send { client_message_id, text }) => {
                        json!({"type": "visitor_message", "payload": {"text": text, "clientMessageId": client_message_id}})
                    }
                    Some(ClientCommand::Frame(frame)) => frame,
                };
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return ConnectionEnd::Reconnect { code: None, reason: "send failed".into() };
                }
            }
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|frame| (Some(u16::from(frame.code)), frame.reason.to_string()))
                            .unwrap_or((None, String::new()));
                        return match code {
                            Some(code) if is_final(code) => ConnectionEnd::Final { code: Some(code), reason },
                            _ => ConnectionEnd::Reconnect { code, reason },
                        };
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return ConnectionEnd::Reconnect { code: None, reason: error.to_string() },
                    None => return ConnectionEnd::Reconnect { code: None, reason: "connection lost".into() },
                };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if let Some(event) = handle_frame(&frame, shared, acked) {
                    let _ = events.send(event);
                }
            }
        }
    }
}

fn handle_frame(
    frame: &Value,
    shared: &Arc<Mutex<Shared>>,
    acked: &mut HashSet<String>,
) -> Option<SessionEvent> {
    let payload = &frame["payload"];
    let text = |field: &str| payload[field].as_str().unwrap_or_default().to_string();
    match frame["type"].as_str()? {
        "ack" => {
            let client_message_id = payload["clientMessageId"].as_str()?.to_string();
            shared
                .lock()
                .expect("client state poisoned")
                .outbox
                .retain(|(id, _)| *id != client_message_id);
            if !acked.insert(client_message_id.clone()) {
                return None;
            }
            Some(SessionEvent::Acked {
                client_message_id,
                id: payload["id"].as_i64()?,
                seq: payload["seq"].as_i64()?,
            })
        }
        "agent_response" => {
            let seq = payload["seq"].as_i64()?;
            {
                let mut state = shared.lock().expect("client state poisoned");
                if seq <= state.last_seq {
                    state.duplicates_dropped += 1;
                    return None;
                }
                state.last_seq = seq;
            }
            Some(SessionEvent::AgentResponse(AgentResponse {
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
            }))
        }
        "typing_indicator" => Some(SessionEvent::Typing {
            agent_id: text("agentId"),
            is_typing: payload["isTyping"].as_bool().unwrap_or(false),
        }),
        "lead_form" => Some(SessionEvent::LeadForm(payload.clone())),
        "error" => Some(SessionEvent::Error {
            code: text("code"),
            message: text("message"),
        }),
        _ => None,
    }
}
