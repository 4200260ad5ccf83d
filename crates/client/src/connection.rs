//! The managed connection shared by every socket kind: one background task owns the socket,
//! reconnects with backoff, states its `lastSeq` on every connect, re-sends the outbox under
//! the original client message ids, drops duplicates by seq, and reports typed events. What
//! differs between socket kinds (URL, frame spellings, events) is a [`Dialect`].

use crate::backoff::Backoff;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The lifecycle every managed socket reports, whatever its dialect.
#[derive(Clone, Debug, PartialEq)]
pub enum Lifecycle {
    Connected,
    Disconnected {
        code: Option<u16>,
        reason: String,
    },
    Reconnecting {
        attempt: u32,
        delay: Duration,
    },
    /// No more reconnects: the socket was closed by the client, or refused for good.
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

/// What a frame means to the managed connection.
pub(crate) enum Incoming<E> {
    /// Our message `client_message_id` is stored.
    Ack {
        client_message_id: String,
        id: i64,
        seq: i64,
    },
    /// A conversation message at `seq`: delivered to the caller once, in order.
    Message {
        seq: i64,
        event: E,
    },
    /// Anything else worth reporting.
    Other(E),
    Ignore,
}

impl<E> Incoming<E> {
    /// An `ack` frame's payload (`{clientMessageId, id, seq}`), as both socket kinds spell it.
    pub(crate) fn ack(payload: &Value) -> Incoming<E> {
        match (
            payload["clientMessageId"].as_str(),
            payload["id"].as_i64(),
            payload["seq"].as_i64(),
        ) {
            (Some(client_message_id), Some(id), Some(seq)) => Incoming::Ack {
                client_message_id: client_message_id.to_string(),
                id,
                seq,
            },
            _ => Incoming::Ignore,
        }
    }
}

/// How one kind of socket is spelled.
pub(crate) trait Dialect: Send + Sync + 'static {
    type Event: Send + 'static;
    /// The URL to connect to, resuming after `last_seq` (may fetch a ticket first).
    fn url(&self, last_seq: i64) -> impl Future<Output = Result<String, String>> + Send;
    fn message_frame(&self, client_message_id: &str, text: &str) -> Value;
    fn classify(&self, frame: &Value) -> Incoming<Self::Event>;
    fn lifecycle(&self, lifecycle: Lifecycle) -> Self::Event;
    fn acked(&self, client_message_id: String, id: i64, seq: i64) -> Self::Event;
}

pub(crate) enum ClientCommand {
    Send {
        client_message_id: String,
        text: String,
    },
    Frame(Value),
    DropConnection,
    Close,
}

#[derive(Default)]
pub(crate) struct Shared {
    /// Messages not yet acknowledged, in send order.
    outbox: VecDeque<(String, String)>,
    /// The newest message seq received: reconnects resume after it.
    last_seq: i64,
    /// Messages the server sent again (at or below `last_seq`), dropped here.
    duplicates_dropped: u64,
}

/// What every managed socket offers its caller, whatever its kind (`SessionClient` and
/// `ChatClient` dereference to it); cheap to clone.
#[derive(Clone)]
pub struct ManagedSocket {
    commands: mpsc::UnboundedSender<ClientCommand>,
    shared: Arc<Mutex<Shared>>,
    next_id: Arc<AtomicU64>,
    id_prefix: Arc<str>,
}

impl ManagedSocket {
    pub(crate) fn start<D: Dialect>(
        dialect: D,
        backoff: Backoff,
        heartbeat_every: Duration,
    ) -> (ManagedSocket, mpsc::UnboundedReceiver<D::Event>) {
        let (commands, commands_in) = mpsc::unbounded_channel();
        let (events, events_out) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut random = [0u8; 6];
        let _ = getrandom::fill(&mut random);
        let prefix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        tokio::spawn(run(
            dialect,
            backoff,
            heartbeat_every,
            commands_in,
            events,
            shared.clone(),
        ));
        (
            ManagedSocket {
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

    pub(crate) fn frame(&self, frame: Value) {
        let _ = self.commands.send(ClientCommand::Frame(frame));
    }

    /// Marks the conversation read up to `seq`.
    pub fn read(&self, seq: i64) {
        self.frame(json!({"type": "read", "payload": {"seq": seq}}));
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

    /// The newest message seq received.
    pub fn last_seq(&self) -> i64 {
        self.shared.lock().expect("client state poisoned").last_seq
    }

    /// Messages the server sent more than once, which the client dropped (should stay 0).
    pub fn duplicates_dropped(&self) -> u64 {
        self.shared
            .lock()
            .expect("client state poisoned")
            .duplicates_dropped
    }
}

/// Close codes after which reconnecting cannot help: ended, authentication failed, not found.
fn is_final(code: u16) -> bool {
    matches!(code, 1000 | 4001 | 4004)
}

enum ConnectionEnd {
    Reconnect { code: Option<u16>, reason: String },
    Final { code: Option<u16>, reason: String },
}

async fn run<D: Dialect>(
    dialect: D,
    backoff: Backoff,
    heartbeat_every: Duration,
    mut commands: mpsc::UnboundedReceiver<ClientCommand>,
    events: mpsc::UnboundedSender<D::Event>,
    shared: Arc<Mutex<Shared>>,
) {
    let mut acked: HashSet<String> = HashSet::new();
    let mut attempt: u32 = 0;
    loop {
        let last_seq = shared.lock().expect("client state poisoned").last_seq;
        // Always say where we are, 0 included: a server's delivery cursor records what it
        // wrote, and a write can be lost with the connection before we read it.
        match dialect.url(last_seq).await {
            Ok(url) => match tokio_tungstenite::connect_async(&url).await {
                Ok((socket, _)) => {
                    attempt = 0;
                    let _ = events.send(dialect.lifecycle(Lifecycle::Connected));
                    let end = serve(
                        &dialect,
                        heartbeat_every,
                        socket,
                        &mut commands,
                        &events,
                        &shared,
                        &mut acked,
                    )
                    .await;
                    match end {
                        ConnectionEnd::Final { code, reason } => {
                            let _ =
                                events.send(dialect.lifecycle(Lifecycle::Closed { code, reason }));
                            return;
                        }
                        ConnectionEnd::Reconnect { code, reason } => {
                            let _ = events
                                .send(dialect.lifecycle(Lifecycle::Disconnected { code, reason }));
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "connect failed"),
            },
            Err(error) => tracing::debug!(%error, "could not prepare the connection"),
        }
        attempt += 1;
        if backoff.gives_up_after(attempt) {
            let _ = events.send(dialect.lifecycle(Lifecycle::Closed {
                code: None,
                reason: "gave up reconnecting".into(),
            }));
            return;
        }
        let delay = backoff.delay(attempt);
        let _ = events.send(dialect.lifecycle(Lifecycle::Reconnecting { attempt, delay }));
        let wake = tokio::time::Instant::now() + delay;
        // While waiting, sends wait in the outbox (they are there already); a close is honoured.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                command = commands.recv() => match command {
                    None | Some(ClientCommand::Close) => {
                        let closed = Lifecycle::Closed { code: None, reason: "closed by the client".into() };
                        let _ = events.send(dialect.lifecycle(closed));
                        return;
                    }
                    Some(_) => continue,
                },
            }
        }
    }
}

async fn serve<D: Dialect, S>(
    dialect: &D,
    heartbeat_every: Duration,
    socket: S,
    commands: &mut mpsc::UnboundedReceiver<ClientCommand>,
    events: &mpsc::UnboundedSender<D::Event>,
    shared: &Arc<Mutex<Shared>>,
    acked: &mut HashSet<String>,
) -> ConnectionEnd
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let (mut sink, mut stream) = socket.split();
    let send_failed = || ConnectionEnd::Reconnect {
        code: None,
        reason: "send failed".into(),
    };
    // Everything not yet acknowledged goes again, in order, under its original id.
    let outbox: Vec<(String, String)> = shared
        .lock()
        .expect("client state poisoned")
        .outbox
        .iter()
        .cloned()
        .collect();
    for (client_message_id, text) in outbox {
        let frame = dialect.message_frame(&client_message_id, &text);
        if sink
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            return send_failed();
        }
    }
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let frame = json!({"type": "heartbeat", "payload": {}});
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return send_failed();
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
                        dialect.message_frame(&client_message_id, &text)
                    }
                    Some(ClientCommand::Frame(frame)) => frame,
                };
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return send_failed();
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
                let event = match dialect.classify(&frame) {
                    Incoming::Ack { client_message_id, id, seq } => {
                        shared
                            .lock()
                            .expect("client state poisoned")
                            .outbox
                            .retain(|(pending, _)| *pending != client_message_id);
                        if !acked.insert(client_message_id.clone()) {
                            continue;
                        }
                        dialect.acked(client_message_id, id, seq)
                    }
                    Incoming::Message { seq, event } => {
                        let mut state = shared.lock().expect("client state poisoned");
                        if seq <= state.last_seq {
                            state.duplicates_dropped += 1;
                            continue;
                        }
                        state.last_seq = seq;
                        event
                    }
                    Incoming::Other(event) => event,
                    Incoming::Ignore => continue,
                };
                let _ = events.send(event);
            }
        }
    }
}
