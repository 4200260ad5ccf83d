//! The ActionCable dialect (`spec/cable.md`): `/cable`, `actioncable-v1-json`, `RoomChannel`
//! subscriptions by pubsub token. A thin adapter: the engine says who a token is and what it
//! may see; each subscription pumps its hub subscription out as `{identifier, message}`
//! frames, after replaying what its principal missed while away.

pub mod frames;

use crate::dialects::native::frames::describe_engine_error;
use crate::dialects::CABLE_SLOT;
use crate::rest::AppState;
use crate::snake;
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use frames::{EventContext, Rendered};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::policy::may_see_contact_presence;
use switchboard_core::{
    Actor, Command, ConversationId, DomainError, Event, EventKind, Principal, Sender, Seq, Topic,
};
use switchboard_engine::presence::PresenceGuard;
use switchboard_engine::{Delivery, Engine, EngineError, Received};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const PROTOCOL: &str = "actioncable-v1-json";
const PING_EVERY: Duration = Duration::from_secs(3);
/// The most subscriptions one connection may hold (each is a hub subscription and a task).
const MAX_SUBSCRIPTIONS: usize = 16;

pub async fn cable_socket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let engine = state.engine.clone();
    let max_frame = state.settings.max_frame_bytes;
    let auth_timeout = state.settings.auth_timeout;
    // Frames up to four times the limit are read so that the close can say why; larger ones
    // fail while being read.
    upgrade
        .protocols([PROTOCOL])
        .max_message_size(max_frame * 4)
        .max_frame_size(max_frame * 4)
        .on_upgrade(move |socket| serve(socket, engine, auth_timeout, max_frame))
}

/// What a subscription's pump sends the connection.
enum Outgoing {
    Frame(String),
    /// The subscriber fell too far behind: the connection closes and the client resubscribes.
    TooSlow,
}

struct Subscription {
    principal: Principal,
    pump: JoinHandle<()>,
    _present: Option<PresenceGuard>,
}

/// Serves one connection. One that has no confirmed subscription `auth_timeout` after it opened
/// is told `unauthorized` (without reconnecting) and closed: it cannot hold a socket for nothing.
async fn serve(socket: WebSocket, engine: Arc<Engine>, auth_timeout: Duration, max_frame: usize) {
    let _tracked = engine.track_connection();
    let (mut sink, mut stream) = socket.split();
    let queue = engine.config().outbound_queue.max(16);
    let (outgoing, mut pending) = mpsc::channel::<Outgoing>(queue);
    let mut subscriptions: HashMap<String, Subscription> = HashMap::new();
    let stopping = stopping(engine.shutdown_signal());
    tokio::pin!(stopping);
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let identify_by = tokio::time::sleep(auth_timeout);
    tokio::pin!(identify_by);
    let mut identified = false;
    if sink.send(text(frames::welcome())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = &mut identify_by, if !identified => {
                tracing::info!("cable connection closed: no subscription in time");
                let _ = sink.send(text(frames::disconnect("unauthorized", false))).await;
                break;
            }
            _ = &mut stopping => {
                let _ = sink.send(text(frames::disconnect("server_restart", true))).await;
                break;
            }
            _ = pings.tick() => {
                let now = engine.clock().now_ms().div_euclid(1000);
                if sink.send(text(frames::ping(now))).await.is_err() {
                    break;
                }
            }
            out = pending.recv() => match out {
                Some(Outgoing::Frame(frame)) => {
                    if sink.send(text(frame)).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::TooSlow) | None => {
                    let _ = sink.send(text(frames::disconnect("too_slow", true))).await;
                    break;
                }
            },
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(text))) if text.len() <= max_frame => text,
                    Some(Ok(WsMessage::Text(_))) => {
                        let _ = sink.send(too_large()).await;
                        break;
                    }
                    Some(Ok(WsMessage::Binary(_) | WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "cable socket read failed");
                        if error.to_string().contains("too long") {
                            let _ = sink.send(too_large()).await;
                        }
                        break;
                    }
                    _ => break,
                };
                let Some(command) = frames::decode_command(text.as_str()) else {
                    tracing::info!(frame = %truncated(text.as_str()), "ignored a cable frame that is not a command");
                    continue;
                };
                let reply = handle(&engine, &mut subscriptions, &outgoing, command).await;
                identified |= !subscriptions.is_empty();
                if let Some(reply) = reply {
                    if sink.send(self::text(reply)).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    for (_, subscription) in subscriptions {
        subscription.pump.abort();
    }
    let _ = sink.close().await;
}

async fn stopping(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// The close for a frame over the size limit (1009, message too big).
fn too_large() -> WsMessage {
    WsMessage::Close(Some(axum::extract::ws::CloseFrame {
        code: 1009,
        reason: Utf8Bytes::from_static("frame too large"),
    }))
}

fn text(frame: String) -> WsMessage {
    WsMessage::Text(Utf8Bytes::from(frame))
}

fn truncated(text: &str) -> &str {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Handles one command; returns the frame to answer with, if any.
async fn handle(
    engine: &Arc<Engine>,
    subscriptions: &mut HashMap<String, Subscription>,
    outgoing: &mpsc::Sender<Outgoing>,
    command: frames::ClientCommand,
) -> Option<String> {
    let identifier = command.identifier;
    match command.command.as_str() {
        "subscribe" => {
            if subscriptions.contains_key(&identifier) {
                return Some(frames::confirm(&identifier));
            }
            if subscriptions.len() >= MAX_SUBSCRIPTIONS {
                tracing::info!("cable subscription rejected: too many on one connection");
                return Some(frames::reject(&identifier));
            }
            let room = match frames::room_identifier(&identifier) {
                Ok(room) => room,
                Err(reason) => {
                    tracing::info!(reason, "cable subscription rejected");
                    return Some(frames::reject(&identifier));
                }
            };
            let principal = match engine
                .authenticate_pubsub(&room.pubsub_token, room.account_id, room.user_id)
                .await
            {
                Ok(principal) => principal,
                Err(error) => {
                    tracing::info!(%error, "cable subscription rejected");
                    return Some(frames::reject(&identifier));
                }
            };
            // Subscribed before it is confirmed, so nothing published after the client hears
            // `confirm_subscription` is missed; confirmed before anything else is sent for it,
            // so the client's `connected` comes before its `received`.
            let Some(hub_subscription) = subscribe(engine, &principal) else {
                return Some(frames::reject(&identifier));
            };
            let confirm = frames::confirm(&identifier);
            if outgoing.send(Outgoing::Frame(confirm)).await.is_err() {
                return None;
            }
            let present = engine.connected(&principal).await;
            let pump = tokio::spawn(pump(
                engine.clone(),
                principal.clone(),
                identifier.clone(),
                hub_subscription,
                outgoing.clone(),
            ));
            subscriptions.insert(
                identifier,
                Subscription {
                    principal,
                    pump,
                    _present: present,
                },
            );
            None
        }
        "unsubscribe" => {
            if let Some(subscription) = subscriptions.remove(&identifier) {
                subscription.pump.abort();
            }
            None
        }
        "message" => {
            let subscription = subscriptions.get(&identifier)?;
            let (action, fields) = frames::action(command.data.as_deref())?;
            act(
                engine,
                &subscription.principal,
                &identifier,
                &action,
                &fields,
            )
            .await
        }
        other => {
            tracing::info!(command = other, "ignored an unknown cable command");
            None
        }
    }
}

/// A `message` command's action: `update_presence` is answered with the principal's own
/// `presence.update`; `typing_on`, `typing_off` and `read` become commands.
async fn act(
    engine: &Engine,
    principal: &Principal,
    identifier: &str,
    action: &str,
    fields: &Value,
) -> Option<String> {
    let conversation_id = fields
        .get("conversation_id")
        .and_then(|id| id.as_i64().or_else(|| id.as_str()?.parse().ok()))
        .map(ConversationId);
    let command = match (action, conversation_id) {
        ("update_presence", _) => {
            let data = own_presence(engine, principal).await;
            return Some(frames::event(identifier, "presence.update", &raw(data)));
        }
        ("typing_on" | "typing_off", Some(conversation_id)) => Command::SetTyping {
            conversation_id,
            is_typing: action == "typing_on",
            private: fields
                .get("is_private")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        ("read", Some(conversation_id)) => Command::MarkRead {
            conversation_id,
            seq: fields
                .get("seq")
                .and_then(Value::as_i64)
                .unwrap_or(Seq::MAX),
        },
        _ => {
            tracing::info!(action, "ignored a cable action");
            return None;
        }
    };
    match engine.execute(principal, command).await {
        Ok(_) => None,
        Err(error) => {
            let retry_after = match &error {
                EngineError::Domain(DomainError::RateLimited { retry_after_ms }) => {
                    Some(*retry_after_ms)
                }
                _ => None,
            };
            let (code, message) = describe_engine_error(error);
            let mut data = json!({"code": code.as_str(), "message": message});
            if let Some(retry_after) = retry_after {
                // model.md: every dialect's rate-limit answer carries retryAfter (ms).
                data["retryAfter"] = json!(retry_after);
            }
            Some(frames::event(identifier, "error", &raw(data)))
        }
    }
}

fn raw(value: Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a JSON value is valid JSON")
}

/// The principal's own status, as `presence.update` data.
async fn own_presence(engine: &Engine, principal: &Principal) -> Value {
    let account_id = principal.account_id();
    let (users, contacts) = match principal {
        Principal::Agent { agent_id, .. } => (
            json!({ agent_id.0.to_string(): engine.agent_presence(account_id, *agent_id).await.as_str() }),
            json!({}),
        ),
        Principal::Contact { contact_id, .. } => (
            json!({}),
            json!({ contact_id.0.to_string(): engine.contact_presence(account_id, *contact_id).await.as_str() }),
        ),
        _ => (json!({}), json!({})),
    };
    json!({"account_id": principal.account_id().0, "users": users, "contacts": contacts})
}

/// A subscription's place in the hub: an agent follows its account and its own
/// notifications; a contact its own conversations and the account's presence (the policy shows
/// it nothing else of the account).
fn subscribe(engine: &Engine, principal: &Principal) -> Option<switchboard_engine::Subscription> {
    let topics = match principal {
        Principal::Agent {
            account_id,
            agent_id,
            ..
        } => vec![Topic::Account(*account_id), Topic::Agent(*agent_id)],
        Principal::Contact {
            account_id,
            contact_id,
        } => vec![Topic::Contact(*contact_id), Topic::Account(*account_id)],
        _ => return None,
    };
    Some(engine.hub().subscribe_only(
        principal.clone(),
        topics,
        engine.config().outbound_queue,
        frames::shows,
    ))
}

/// One subscription, already in the hub: replays what the principal missed (as
/// `message.created`, in order), then sends live events, each message once.
async fn pump(
    engine: Arc<Engine>,
    principal: Principal,
    identifier: String,
    mut subscription: switchboard_engine::Subscription,
    outgoing: mpsc::Sender<Outgoing>,
) {
    // The newest message seq sent per conversation: replay and live never send one twice.
    let mut sent: HashMap<ConversationId, Seq> = HashMap::new();
    match engine.missed_messages(&principal).await {
        Ok(missed) => {
            let mut contexts: HashMap<
                ConversationId,
                Option<switchboard_engine::ConversationView>,
            > = HashMap::new();
            for message in missed {
                let conversation_id = message.conversation_id;
                let view = match contexts.get(&conversation_id) {
                    Some(view) => view.clone(),
                    None => {
                        let view = engine
                            .conversation_view_of(conversation_id)
                            .await
                            .ok()
                            .flatten();
                        contexts.insert(conversation_id, view.clone());
                        view
                    }
                };
                let event = switchboard_engine::feed::message_event(message.clone());
                let mut context = sender_context(&engine, &event).await;
                context.conversation = view;
                let delivery = Delivery::new(event);
                sent.insert(conversation_id, message.seq);
                let moves = engine.note_written(&principal, std::slice::from_ref(&delivery));
                if let Some((name, data)) = frames::render(delivery.event(), &context) {
                    let frame = frames::event(&identifier, name, &data);
                    if outgoing.send(Outgoing::Frame(frame)).await.is_err() {
                        engine.write_failed(moves);
                        return;
                    }
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cable replay failed"),
    }
    loop {
        let deliveries = match subscription.recv().await {
            Received::Deliveries(deliveries) => deliveries,
            Received::Evicted(_) => {
                let _ = outgoing.try_send(Outgoing::TooSlow);
                return;
            }
        };
        let mut written = Vec::with_capacity(deliveries.len());
        let mut frames = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            if let EventKind::MessageCreated(message) = &delivery.event().kind {
                let newest = sent.entry(message.conversation_id).or_insert(0);
                if message.seq <= *newest {
                    continue;
                }
                *newest = message.seq;
            }
            let Some(frame) = frame_for(&engine, &principal, &identifier, &delivery).await else {
                continue;
            };
            written.push(delivery);
            frames.push(frame);
        }
        // Noted before the socket's writer can send them (see `Engine::note_written`).
        let moves = engine.note_written(&principal, &written);
        for frame in frames {
            match outgoing.try_send(Outgoing::Frame(frame)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    engine.write_failed(moves);
                    let _ = outgoing.send(Outgoing::TooSlow).await;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    engine.write_failed(moves);
                    return;
                }
            }
        }
    }
}

/// The frame one delivery becomes for this subscription, if any.
async fn frame_for(
    engine: &Engine,
    principal: &Principal,
    identifier: &str,
    delivery: &Delivery,
) -> Option<String> {
    let event = delivery.event();
    match &event.kind {
        EventKind::PresenceUpdate { agents, contacts } => {
            let users = crate::json::status_map(agents.iter().map(|(id, status)| (id.0, *status)));
            // Contacts are shown no other contact.
            let contacts = crate::json::status_map(
                contacts
                    .iter()
                    .filter(|(id, _)| may_see_contact_presence(principal, *id))
                    .map(|(id, status)| (id.0, *status)),
            );
            if users.is_empty() && contacts.is_empty() {
                return None;
            }
            let data =
                json!({"account_id": event.account_id.0, "users": users, "contacts": contacts});
            Some(frames::event(identifier, "presence.update", &raw(data)))
        }
        EventKind::NotificationCreated(notification) => {
            let listed = engine
                .list_notifications(principal, 100)
                .await
                .unwrap_or_default();
            let unread = listed.iter().filter(|n| n.read_at.is_none()).count();
            let conversation = engine
                .conversation_view_of(notification.conversation_id)
                .await
                .ok()
                .flatten()
                .map(|view| snake::conversation(&view));
            let data = json!({
                "notification": snake::notification(notification, conversation.as_ref()),
                "unread_count": unread,
                "count": listed.len(),
                "account_id": event.account_id.0,
            });
            Some(frames::event(
                identifier,
                "notification.created",
                &raw(data),
            ))
        }
        _ => {
            let rendered: Arc<Rendered> = match delivery.cached::<Rendered>(CABLE_SLOT) {
                Some(rendered) => rendered,
                None => {
                    let context = context(engine, event).await;
                    delivery.rendered(CABLE_SLOT, |event| frames::render(event, &context))
                }
            };
            let (name, data) = rendered.as_ref().as_ref()?;
            Some(frames::event(identifier, name, data))
        }
    }
}

/// Looks up what an event is rendered with: its conversation and the person acting.
async fn context(engine: &Engine, event: &Event) -> EventContext {
    let mut context = sender_context(engine, event).await;
    if let Some(conversation_id) = event.conversation_id() {
        context.conversation = engine
            .conversation_view_of(conversation_id)
            .await
            .ok()
            .flatten();
    }
    context
}

async fn sender_context(engine: &Engine, event: &Event) -> EventContext {
    let account_id = event.account_id;
    let mut context = EventContext::default();
    let actor = match &event.kind {
        EventKind::MessageCreated(message) | EventKind::MessageUpdated(message) => {
            match &message.sender {
                Sender::Agent(id) => Some(Actor::Agent(*id)),
                Sender::Contact(id) => Some(Actor::Contact(*id)),
                _ => None,
            }
        }
        EventKind::TypingOn { actor, .. } | EventKind::TypingOff { actor, .. } => {
            Some(actor.clone())
        }
        _ => None,
    };
    match actor {
        Some(Actor::Agent(id)) => {
            context.agent = engine.agent_card(account_id, id).await.ok().flatten();
        }
        Some(Actor::Contact(id)) => {
            context.contact = engine.contact_card(account_id, id).await.ok().flatten();
        }
        _ => {}
    }
    context
}
