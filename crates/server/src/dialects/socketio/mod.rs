//! The Socket.IO dialect (`spec/socketio.md`): Socket.IO v4 at `/socket`, WebSocket and HTTP
//! long-polling, served by `socketioxide`. A thin adapter: the handshake's `auth` becomes a
//! principal (the engine decides), client events become core commands, and each joined
//! conversation's feed is pumped out as Socket.IO events rendered once per event.

pub mod events;

use crate::dialects::native::frames::{describe_engine_error, ErrorCode};
use crate::dialects::SOCKETIO_SLOT;
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_core::session::SessionRefusal;
use switchboard_core::{
    Command, ContactId, ConversationId, DomainError, EventKind, Principal, Seq, Topic,
};
use switchboard_engine::{
    ConnectionGuard, Delivery, Engine, EngineError, FeedItem, Outcome, Received,
};
use tokio::task::AbortHandle;

/// The most conversations one connection may follow at once (each is a feed and a task).
const MAX_JOINED: usize = 100;

/// Settings of the endpoint.
pub struct SocketIoSettings {
    /// The largest HTTP long-polling body and WebSocket message accepted.
    pub max_payload_bytes: u64,
    /// How many packets may wait to be written to one connection before it counts as slow.
    pub outbound_queue: usize,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// How long a client may take to connect to the namespace (to authenticate).
    pub connect_timeout: Duration,
}

/// The tower layer serving `/socket`; requests to other paths pass through.
pub fn layer(engine: Arc<Engine>, settings: SocketIoSettings) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .req_path("/socket")
        .ping_interval(settings.ping_interval)
        .ping_timeout(settings.ping_timeout)
        .connect_timeout(settings.connect_timeout)
        .max_payload(settings.max_payload_bytes)
        // The same bound for WebSocket messages (engineioxide's own default is 64 MiB).
        .ws_max_message_size(settings.max_payload_bytes as usize)
        .ws_max_frame_size(settings.max_payload_bytes as usize)
        .max_buffer_size(settings.outbound_queue)
        .build_layer();
    let on_connect_engine = engine.clone();
    let authenticate_engine = engine.clone();
    io.ns(
        "/",
        (move |socket: SocketRef| {
            let engine = on_connect_engine.clone();
            async move { on_connect(engine, socket).await }
        })
        .with(move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let engine = authenticate_engine.clone();
            async move { authenticate(engine, socket, auth.ok()).await }
        }),
    );
    // A graceful shutdown tells every Socket.IO client to go away, as the native sockets do.
    let mut shutdown = engine.shutdown_signal();
    tokio::spawn(async move {
        if shutdown.wait_for(|stopping| *stopping).await.is_ok() {
            let _ = io.disconnect().await;
        }
    });
    layer
}

/// One client connection: who it is and the conversations it joined.
struct Connection {
    engine: Arc<Engine>,
    principal: Principal,
    /// The handshake's `conversationId` and `lastSeq`, joined as soon as it connects.
    first_join: Option<(ConversationId, Option<Seq>)>,
    joined: Mutex<HashMap<ConversationId, Joined>>,
    /// Live while connected: presence, and the count a graceful shutdown waits for.
    guards: Mutex<
        Option<(
            ConnectionGuard,
            Option<switchboard_engine::presence::PresenceGuard>,
        )>,
    >,
    presence_pump: Mutex<Option<AbortHandle>>,
}

struct Joined {
    pump: AbortHandle,
    /// The conversation's contact, whose connection status staff are shown.
    contact_id: Option<ContactId>,
}

impl Connection {
    fn close(&self) {
        for (_, joined) in self.joined.lock().expect("joins poisoned").drain() {
            joined.pump.abort();
        }
        if let Some(pump) = self.presence_pump.lock().expect("pump poisoned").take() {
            pump.abort();
        }
        self.guards.lock().expect("guards poisoned").take();
    }
}

/// The handshake check: the `auth` payload's `token` must stand for a principal. A refusal
/// reaches the client as `connect_error` carrying this message.
async fn authenticate(
    engine: Arc<Engine>,
    socket: SocketRef,
    auth: Option<Value>,
) -> Result<(), String> {
    let auth = auth.unwrap_or(Value::Null);
    let token = auth.get("token").and_then(Value::as_str);
    let principal = engine
        .authenticate_socket(token)
        .await
        .map_err(|refusal| refusal_message(refusal).to_string())?;
    let first_join = match auth.get("conversationId") {
        None | Some(Value::Null) => None,
        Some(_) => Some((
            events::conversation_id(&auth).map_err(str::to_string)?,
            events::seq_field(&auth, "lastSeq"),
        )),
    };
    socket.extensions.insert(Arc::new(Connection {
        engine,
        principal,
        first_join,
        joined: Mutex::default(),
        guards: Mutex::default(),
        presence_pump: Mutex::default(),
    }));
    Ok(())
}

fn refusal_message(refusal: SessionRefusal) -> &'static str {
    match refusal {
        SessionRefusal::AuthRequired => "No token provided",
        SessionRefusal::InvalidToken => "Token is invalid or expired",
        SessionRefusal::SessionNotFound => "Session does not exist",
        SessionRefusal::SessionExpired => "Session expired",
    }
}

async fn on_connect(engine: Arc<Engine>, socket: SocketRef) {
    let Some(connection) = socket.extensions.get::<Arc<Connection>>() else {
        // The middleware admits no socket without one.
        let _ = socket.disconnect();
        return;
    };
    let tracked = engine.track_connection();
    let present = engine.connected(&connection.principal).await;
    *connection.guards.lock().expect("guards poisoned") = Some((tracked, present));
    if matches!(
        connection.principal,
        Principal::Agent { .. } | Principal::Integration { .. }
    ) {
        start_presence_pump(&connection, &socket);
    }
    let on_disconnect = connection.clone();
    socket.on_disconnect(move |socket: SocketRef| {
        let connection = on_disconnect.clone();
        async move {
            connection.close();
            socket.extensions.remove::<Arc<Connection>>();
        }
    });
    for name in events::CLIENT_EVENTS {
        on_event(&socket, &connection, name);
    }
    // An event we do not know still counts against the sender's limits, and is answered.
    let fallback = connection.clone();
    socket.on_fallback(
        move |socket: SocketRef, Event(event): Event, ack: AckSender| {
            let connection = fallback.clone();
            async move {
                if let Err(error) = connection.engine.count_event(&connection.principal) {
                    return refuse(&socket, error, None, Some(ack));
                }
                let reason = format!("unknown event {:?}", truncated(&event));
                let payload = events::error(ErrorCode::UnknownType.as_str(), &reason, None);
                let _ = socket.emit("error", &payload);
                let _ = ack.send(&serde_json::json!({ "error": payload }));
            }
        },
    );
    if let Some((conversation_id, last_seq)) = connection.first_join {
        if let Err(error) = join(&connection, &socket, conversation_id, last_seq).await {
            refuse(&socket, error, Some(conversation_id), None);
        }
    }
}

/// Registers client event `name`. Every event names a conversation; a payload that does not
/// make a valid event (or is not JSON at all) is refused with an `error` event and a refused
/// ack (`events::client_event` is the whole decoding).
fn on_event(socket: &SocketRef, connection: &Arc<Connection>, name: &'static str) {
    let connection = connection.clone();
    socket.on(
        name,
        move |socket: SocketRef, TryData(payload): TryData<Value>, ack: AckSender| {
            let connection = connection.clone();
            async move {
                let payload = payload.unwrap_or(Value::Null);
                match events::client_event(name, &payload) {
                    Ok(events::ClientEvent::Join {
                        conversation_id,
                        last_seq,
                    }) => {
                        join_conversation(&connection, &socket, conversation_id, last_seq, ack)
                            .await
                    }
                    Ok(events::ClientEvent::Command(command)) => {
                        let conversation_id = command.conversation_id();
                        run(&connection, &socket, command, conversation_id, ack).await
                    }
                    Err(reason) => invalid(&socket, reason, ack),
                }
            }
        },
    );
}

async fn join_conversation(
    connection: &Arc<Connection>,
    socket: &SocketRef,
    conversation_id: ConversationId,
    last_seq: Option<Seq>,
    ack: AckSender,
) {
    if let Err(error) = connection.engine.count_event(&connection.principal) {
        return refuse(socket, error, Some(conversation_id), Some(ack));
    }
    match join(connection, socket, conversation_id, last_seq).await {
        Ok(()) => {
            let _ = ack.send(&serde_json::json!({"ok": true}));
        }
        Err(error) => refuse(socket, error, Some(conversation_id), Some(ack)),
    }
}

/// Executes a command; the acknowledgement (when asked for) gets the stored message or
/// `{ok: true}`, or the refusal under `error`.
async fn run(
    connection: &Connection,
    socket: &SocketRef,
    command: Command,
    conversation_id: ConversationId,
    ack: AckSender,
) {
    match connection
        .engine
        .execute(&connection.principal, command)
        .await
    {
        Ok(Outcome::Message { message, .. }) => {
            let _ = ack.send(&crate::json::message(&message));
        }
        Ok(Outcome::Done) => {
            let _ = ack.send(&serde_json::json!({"ok": true}));
        }
        Err(error) => refuse(socket, error, Some(conversation_id), Some(ack)),
    }
}

/// A payload that cannot be read: an `error` event (and a refused acknowledgement).
/// At most 64 bytes of a client's text, for messages that quote it.
fn truncated(text: &str) -> &str {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn invalid(socket: &SocketRef, reason: &str, ack: AckSender) {
    let payload = events::error(ErrorCode::InvalidJson.as_str(), reason, None);
    let _ = socket.emit("error", &payload);
    let _ = ack.send(&serde_json::json!({ "error": payload }));
}

/// Tells the client why an event was refused: `rate-limit-exceeded` for a rate limit, an
/// `error` event otherwise; the acknowledgement, when there is one, carries the same error.
fn refuse(
    socket: &SocketRef,
    error: EngineError,
    conversation_id: Option<ConversationId>,
    ack: Option<AckSender>,
) {
    let payload = match error {
        EngineError::Domain(DomainError::RateLimited { retry_after_ms }) => {
            let _ = socket.emit("rate-limit-exceeded", &events::rate_limited(retry_after_ms));
            events::error(
                ErrorCode::RateLimited.as_str(),
                "rate limit exceeded",
                conversation_id,
            )
        }
        other => {
            let (code, message) = describe_engine_error(other);
            let payload = events::error(code.as_str(), &message, conversation_id);
            let _ = socket.emit("error", &payload);
            payload
        }
    };
    if let Some(ack) = ack {
        let _ = ack.send(&serde_json::json!({ "error": payload }));
    }
}

/// Joins a conversation: authorised by the engine when the feed opens; then what this
/// principal has not been delivered goes out as `message-replay`, and live events follow.
async fn join(
    connection: &Arc<Connection>,
    socket: &SocketRef,
    conversation_id: ConversationId,
    last_seq: Option<Seq>,
) -> Result<(), EngineError> {
    if connection
        .joined
        .lock()
        .expect("joins poisoned")
        .contains_key(&conversation_id)
    {
        return Ok(());
    }
    if connection.joined.lock().expect("joins poisoned").len() >= MAX_JOINED {
        return Err(DomainError::InvalidField {
            field: "conversationId",
            reason: "too many conversations joined on one connection (at most 100)",
        }
        .into());
    }
    let engine = &connection.engine;
    let feed = engine
        .open_feed(
            &connection.principal,
            conversation_id,
            last_seq,
            events::shows,
        )
        .await?;
    let staff = matches!(
        connection.principal,
        Principal::Agent { .. } | Principal::Integration { .. }
    );
    let contact_id = if staff {
        let conversation = engine
            .get_conversation(&connection.principal, conversation_id)
            .await?;
        Some(conversation.contact_id)
    } else {
        None
    };
    let pump = tokio::spawn(pump(
        connection.clone(),
        socket.clone(),
        conversation_id,
        feed,
    ));
    {
        let mut joined = connection.joined.lock().expect("joins poisoned");
        if joined.contains_key(&conversation_id) {
            // Joined twice at once: the first stays.
            pump.abort();
            return Ok(());
        }
        joined.insert(
            conversation_id,
            Joined {
                pump: pump.abort_handle(),
                contact_id,
            },
        );
    }
    if let Some(contact_id) = contact_id {
        let status = engine
            .contact_presence(connection.principal.account_id(), contact_id)
            .await;
        let _ = socket.emit(
            "presence",
            &events::presence(conversation_id, contact_id, status),
        );
    }
    Ok(())
}

/// Sends a joined conversation's events to the client until it leaves: first the replay,
/// then live events. A client too slow to keep up is disconnected; it rejoins and resumes.
async fn pump(
    connection: Arc<Connection>,
    socket: SocketRef,
    conversation_id: ConversationId,
    mut feed: switchboard_engine::Feed,
) {
    let engine = connection.engine.clone();
    let replay = match feed.catch_up().await {
        Ok(deliveries) => deliveries,
        Err(error) => {
            tracing::warn!(%error, conversation = %conversation_id, "replay failed");
            Vec::new()
        }
    };
    let messages: Vec<Value> = replay
        .iter()
        .filter_map(|delivery| match &delivery.event().kind {
            EventKind::MessageCreated(message) => Some(crate::json::message(message)),
            _ => None,
        })
        .collect();
    // One argument holding the array, as `socket.on("message-replay", (messages) => ...)`
    // expects (a bare array would be spread into several arguments).
    // Noted before the transport can send them (see `Engine::note_written`).
    let moves = engine.note_written(&connection.principal, &replay);
    if socket.emit("message-replay", &(messages,)).is_err() {
        engine.write_failed(moves);
        return;
    }
    loop {
        match feed.next().await {
            FeedItem::Deliveries(deliveries) => {
                let moves = engine.note_written(&connection.principal, &deliveries);
                for delivery in &deliveries {
                    if !emit_delivery(&socket, delivery) {
                        engine.write_failed(moves);
                        tracing::info!(conversation = %conversation_id, "Socket.IO client too slow; disconnecting");
                        let _ = socket.clone().disconnect();
                        return;
                    }
                }
            }
            FeedItem::Evicted(_) => {
                let _ = socket.clone().disconnect();
                return;
            }
        }
    }
}

/// Emits one delivery; false when the client's buffer is full.
fn emit_delivery(socket: &SocketRef, delivery: &Delivery) -> bool {
    let rendered = delivery.rendered(SOCKETIO_SLOT, events::render);
    match rendered.as_ref() {
        Some((name, payload)) => socket.emit(*name, &**payload).is_ok(),
        None => true,
    }
}

/// Staff see the connection status of the contacts of the conversations they joined: presence
/// changes arrive on their account's topic and are told per joined conversation.
fn start_presence_pump(connection: &Arc<Connection>, socket: &SocketRef) {
    let engine = &connection.engine;
    let account_id = connection.principal.account_id();
    let mut subscription = engine.hub().subscribe_only(
        connection.principal.clone(),
        vec![Topic::Account(account_id)],
        engine.config().outbound_queue,
        |kind| matches!(kind, EventKind::PresenceUpdate { .. }),
    );
    let weak = Arc::downgrade(connection);
    let socket = socket.clone();
    let task = tokio::spawn(async move {
        loop {
            let deliveries = match subscription.recv().await {
                Received::Deliveries(deliveries) => deliveries,
                Received::Evicted(_) => return,
            };
            let Some(connection) = weak.upgrade() else {
                return;
            };
            for delivery in deliveries {
                let EventKind::PresenceUpdate { contacts, .. } = &delivery.event().kind else {
                    continue;
                };
                let joined: Vec<(ConversationId, ContactId)> = connection
                    .joined
                    .lock()
                    .expect("joins poisoned")
                    .iter()
                    .filter_map(|(id, joined)| joined.contact_id.map(|contact| (*id, contact)))
                    .collect();
                for (contact_id, status) in contacts {
                    for (conversation_id, _) in joined.iter().filter(|(_, c)| c == contact_id) {
                        let payload = events::presence(*conversation_id, *contact_id, *status);
                        let _ = socket.emit("presence", &payload);
                    }
                }
            }
        }
    });
    *connection.presence_pump.lock().expect("pump poisoned") = Some(task.abort_handle());
}
