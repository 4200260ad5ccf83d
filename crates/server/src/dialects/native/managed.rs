//! The ticketed managed sockets (`spec/native.md`, seed 003): `/ws/chat/:threadId` streams one
//! conversation, `/ws/notifications` an agent's account and notifications. Frames are
//! `{type, payload}` with each event's canonical name as `type`.

use super::frames::{
    decode_managed_frame, engine_error_frame, error_frame, pong_frame, ErrorCode, ManagedFrame,
};
use super::session::{
    close_with, heartbeat_missed, next_message, run_commands, send_noted, CloseCode,
    MAX_FRAMES_PER_TURN,
};
use crate::dialects::NATIVE_MANAGED_SLOT;
use crate::json;
use crate::rest::AppState;
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_core::{ConversationId, DomainError, Principal, Seq};
use switchboard_engine::feed::{drain_ready, next_deliveries};
use switchboard_engine::{
    every_event, Delivery, Engine, EngineError, Feed, FeedItem, Subscription, TicketRefusal,
};
use tokio::time::{sleep_until, Instant};

fn render(delivery: &Delivery) -> Utf8Bytes {
    delivery
        .rendered(NATIVE_MANAGED_SLOT, |event| {
            Utf8Bytes::from(json::event_frame_text(event))
        })
        .as_ref()
        .clone()
}

/// Sends the deliveries in this dialect's rendering, in one write, and notes them written
/// (cursor, receipts); false when the socket failed.
async fn send_rendered(
    socket: &mut WebSocket,
    engine: &Engine,
    principal: &Principal,
    deliveries: &[Delivery],
) -> bool {
    let frames = deliveries.iter().map(render).collect();
    send_noted(socket, engine, principal, deliveries, frames)
        .await
        .is_ok()
}

async fn close(socket: &mut WebSocket, code: CloseCode, reason: &str) {
    let _ = close_with(socket, code, reason).await;
}

async fn refuse(socket: &mut WebSocket, code: ErrorCode, message: &str, close_code: CloseCode) {
    let _ = socket
        .send(WsMessage::Text(error_frame(code, message)))
        .await;
    close(socket, close_code, message).await;
}

fn configure(upgrade: WebSocketUpgrade, state: &AppState) -> WebSocketUpgrade {
    let max_frame = state.settings.max_frame_bytes;
    upgrade
        .read_buffer_size(1024)
        // Frames fed in one turn go out in one write; flush ends every turn.
        .write_buffer_size(64 * 1024)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
}

/// Why a socket is turned away, told to it once the upgrade completes.
struct Refusal {
    code: ErrorCode,
    message: &'static str,
    close: CloseCode,
}

impl Refusal {
    fn new(code: ErrorCode, message: &'static str, close: CloseCode) -> Self {
        Self {
            code,
            message,
            close,
        }
    }

    async fn tell(self, socket: &mut WebSocket) {
        refuse(socket, self.code, self.message, self.close).await;
    }
}

/// Redeems the socket's ticket before the upgrade, so that everything a socket subscribes to
/// is in place by the time its client sees `101`.
async fn admit(engine: &Engine, query: &HashMap<String, String>) -> Result<Principal, Refusal> {
    engine
        .redeem_ticket(query.get("ticket").map(String::as_str))
        .await
        .map_err(ticket_refusal)
}

fn ticket_refusal(refusal: TicketRefusal) -> Refusal {
    match refusal {
        TicketRefusal::Missing => Refusal::new(
            ErrorCode::AuthRequired,
            "No ticket provided",
            CloseCode::AuthenticationFailed,
        ),
        TicketRefusal::Invalid => Refusal::new(
            ErrorCode::InvalidTicket,
            "Ticket is invalid, used or expired",
            CloseCode::AuthenticationFailed,
        ),
        TicketRefusal::Unavailable => Refusal::new(
            ErrorCode::ServerError,
            "the server could not check the ticket; retry with a new one",
            CloseCode::TryAgainLater,
        ),
    }
}

/// Admits a chat socket: its principal, conversation and live feed (caught up from `lastSeq`).
async fn admit_chat(
    engine: &Engine,
    thread_id: &str,
    query: &HashMap<String, String>,
) -> Result<(Principal, ConversationId, Feed), Refusal> {
    let principal = admit(engine, query).await?;
    let not_found = || {
        Refusal::new(
            ErrorCode::NotFound,
            "Thread not found",
            CloseCode::SessionNotFound,
        )
    };
    let conversation_id = thread_id
        .parse::<i64>()
        .map(ConversationId)
        .map_err(|_| not_found())?;
    let last_seq = query.get("lastSeq").and_then(|seq| seq.parse::<Seq>().ok());
    match engine
        .open_feed(&principal, conversation_id, last_seq, every_event)
        .await
    {
        Ok(feed) => Ok((principal, conversation_id, feed)),
        Err(EngineError::Domain(DomainError::NotFound)) => Err(not_found()),
        Err(error) => {
            tracing::error!(%error, "could not open a chat feed");
            Err(Refusal::new(
                ErrorCode::ServerError,
                "please reconnect",
                CloseCode::TryAgainLater,
            ))
        }
    }
}

/// `GET /ws/chat/:threadId?ticket=...[&lastSeq=N]`.
pub async fn chat_socket(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let engine = state.engine.clone();
    let admitted = admit_chat(&engine, &thread_id, &query).await;
    configure(upgrade, &state).on_upgrade(move |mut socket| async move {
        let _tracked = engine.track_connection();
        let (principal, conversation_id, mut feed) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => return refusal.tell(&mut socket).await,
        };
        let _present = engine.connected(&principal).await;
        if let Ok(deliveries) = feed.catch_up().await {
            if !send_rendered(&mut socket, &engine, &principal, &deliveries).await {
                return;
            }
        }
        // A message read ahead while batching, handled on the next turn.
        let mut stashed: Option<Option<Result<WsMessage, axum::Error>>> = None;
        let mut shutdown = engine.shutdown_signal();
        let heartbeat_timeout = engine.config().heartbeat_timeout;
        // Armed once, moved only when it fires (`heartbeat_missed`).
        let mut last_frame_at = Instant::now();
        let heartbeat = sleep_until(last_frame_at + heartbeat_timeout);
        tokio::pin!(heartbeat);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    // Drain what is already queued, then tell the client to reconnect.
                    let queued = feed.drain().await;
                    if !send_rendered(&mut socket, &engine, &principal, &queued).await {
                        return;
                    }
                    return close(&mut socket, CloseCode::GoingAway, "server shutting down").await;
                }
                _ = heartbeat_missed(heartbeat.as_mut(), last_frame_at, heartbeat_timeout) => {                    return close(&mut socket, CloseCode::HeartbeatTimeout, "heartbeat missed").await;
                }
                item = feed.next() => match item {
                    FeedItem::Deliveries(deliveries) => {
                        if !send_rendered(&mut socket, &engine, &principal, &deliveries).await {
                            return;
                        }
                    }
                    FeedItem::Evicted(_) => {
                        return close(&mut socket, CloseCode::TryAgainLater, "too slow: reconnect and resume").await;
                    }
                },
                incoming = next_message(&mut stashed, &mut socket) => {
                    let text = match incoming {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Binary(_))) => {
                            last_frame_at = Instant::now();
                            let _ = socket.send(WsMessage::Text(error_frame(ErrorCode::InvalidJson, "binary frames are not accepted"))).await;
                            continue;
                        }
                        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {
                            last_frame_at = Instant::now();
                            continue;
                        }
                        _ => return,
                    };
                    last_frame_at = Instant::now();
                    // Frames that have already arrived are handled together, so a busy
                    // publisher's messages share one commit.
                    let mut texts = vec![text];
                    while texts.len() < MAX_FRAMES_PER_TURN {
                        match socket.next().now_or_never() {
                            Some(Some(Ok(WsMessage::Text(more)))) => texts.push(more),
                            Some(other) => {
                                stashed = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    let mut frames = Box::pin(handle_chat_frames(&engine, &principal, conversation_id, &mut feed, texts)).await;
                    // What the commands published (the echo of a sent message, most often) is
                    // already queued: it leaves in the same write as the acknowledgements.
                    let ready = feed.drain().await;
                    frames.extend(ready.iter().map(render));
                    if send_noted(&mut socket, &engine, &principal, &ready, frames).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Handles a chat socket's frames in order; runs of commands go to the engine together.
async fn handle_chat_frames(
    engine: &Engine,
    principal: &Principal,
    conversation_id: ConversationId,
    feed: &mut switchboard_engine::Feed,
    texts: Vec<Utf8Bytes>,
) -> Vec<Utf8Bytes> {
    let mut replies = Vec::new();
    let mut commands = Vec::new();
    for text in texts {
        match decode_managed_frame(text.as_str()) {
            Ok(ManagedFrame::Command(command)) => {
                commands.push(command.into_command(conversation_id))
            }
            Ok(ManagedFrame::Heartbeat) => {
                run_commands(
                    engine,
                    principal,
                    &mut commands,
                    &mut replies,
                    engine_error_frame,
                )
                .await;
                replies.push(pong_frame(engine.clock().now_ms()));
            }
            Ok(ManagedFrame::Resume { last_seq }) => {
                run_commands(
                    engine,
                    principal,
                    &mut commands,
                    &mut replies,
                    engine_error_frame,
                )
                .await;
                match feed.replay_after(last_seq).await {
                    Ok(deliveries) => {
                        engine.note_written(principal, &deliveries);
                        replies.extend(deliveries.iter().map(render));
                    }
                    Err(error) => replies.push(engine_error_frame(error)),
                }
            }
            Err(error) => {
                run_commands(
                    engine,
                    principal,
                    &mut commands,
                    &mut replies,
                    engine_error_frame,
                )
                .await;
                replies.push(error_frame(error.code, &error.message));
            }
        }
    }
    run_commands(
        engine,
        principal,
        &mut commands,
        &mut replies,
        engine_error_frame,
    )
    .await;
    replies
}

/// `GET /ws/transcript/:workspaceId/:transcriptId?ticket=...`: a transcript's segments, live,
/// as `transcript.updated` frames.
pub async fn transcript_socket(
    State(state): State<AppState>,
    Path((workspace_id, transcript_id)): Path<(i64, i64)>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let engine: Arc<Engine> = state.engine.clone();
    let admitted = admit_transcript(&engine, workspace_id, transcript_id, &query).await;
    configure(upgrade, &state).on_upgrade(move |mut socket| async move {
        let _tracked = engine.track_connection();
        match admitted {
            Ok((principal, subscription)) => {
                serve_subscription(socket, &engine, &principal, subscription).await;
            }
            Err(refusal) => refusal.tell(&mut socket).await,
        }
    })
}

async fn admit_transcript(
    engine: &Engine,
    workspace_id: i64,
    transcript_id: i64,
    query: &HashMap<String, String>,
) -> Result<(Principal, Subscription), Refusal> {
    let principal = admit(engine, query).await?;
    let opened = engine
        .open_transcript_feed(
            &principal,
            switchboard_core::AccountId(workspace_id),
            switchboard_core::TranscriptId(transcript_id),
        )
        .await;
    match opened {
        Ok(subscription) => Ok((principal, subscription)),
        Err(EngineError::Domain(DomainError::NotFound | DomainError::Forbidden)) => {
            Err(Refusal::new(
                ErrorCode::NotFound,
                "Transcript not found",
                CloseCode::SessionNotFound,
            ))
        }
        Err(error) => {
            tracing::error!(%error, "could not open a transcript feed");
            Err(Refusal::new(
                ErrorCode::ServerError,
                "please reconnect",
                CloseCode::TryAgainLater,
            ))
        }
    }
}

/// `GET /ws/notifications?ticket=...`: an agent's notifications and the account's events.
pub async fn notifications_socket(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let engine: Arc<Engine> = state.engine.clone();
    let admitted = admit(&engine, &query).await.and_then(|principal| {
        match engine.open_account_feed(&principal) {
            Ok(subscription) => Ok((principal, subscription)),
            Err(_) => Err(Refusal::new(
                ErrorCode::Forbidden,
                "notifications are for agents and the API key",
                CloseCode::AuthenticationFailed,
            )),
        }
    });
    configure(upgrade, &state).on_upgrade(move |mut socket| async move {
        let _tracked = engine.track_connection();
        let (principal, subscription) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => return refusal.tell(&mut socket).await,
        };
        let _present = engine.connected(&principal).await;
        serve_subscription(socket, &engine, &principal, subscription).await;
    })
}

/// Streams a subscription's events to a socket as `{type, payload}` frames until it closes:
/// heartbeats answered, shutdown and slow consumers closed as everywhere.
async fn serve_subscription(
    mut socket: WebSocket,
    engine: &Engine,
    principal: &Principal,
    mut subscription: Subscription,
) {
    let mut shutdown = engine.shutdown_signal();
    let heartbeat_timeout = engine.config().heartbeat_timeout;
    // Armed once, moved only when it fires (`heartbeat_missed`).
    let mut last_frame_at = Instant::now();
    let heartbeat = sleep_until(last_frame_at + heartbeat_timeout);
    tokio::pin!(heartbeat);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                let queued = drain_ready(&mut subscription);
                if !send_rendered(&mut socket, engine, principal, &queued).await {
                    return;
                }
                return close(&mut socket, CloseCode::GoingAway, "server shutting down").await;
            }
            _ = heartbeat_missed(heartbeat.as_mut(), last_frame_at, heartbeat_timeout) => {                return close(&mut socket, CloseCode::HeartbeatTimeout, "heartbeat missed").await;
            }
            item = next_deliveries(&mut subscription) => match item {
                FeedItem::Deliveries(deliveries) => {
                    if !send_rendered(&mut socket, engine, principal, &deliveries).await {
                        return;
                    }
                }
                FeedItem::Evicted(_) => {
                    return close(&mut socket, CloseCode::TryAgainLater, "too slow: reconnect").await;
                }
            },
            incoming = socket.next() => {
                let reply = match incoming {
                    Some(Ok(WsMessage::Text(text))) => match decode_managed_frame(text.as_str()) {
                        Ok(ManagedFrame::Heartbeat) => Some(pong_frame(engine.clock().now_ms())),
                        Ok(_) => Some(error_frame(ErrorCode::UnknownType, "this socket accepts only heartbeat")),
                        Err(error) => Some(error_frame(error.code, &error.message)),
                    },
                    Some(Ok(WsMessage::Binary(_))) => Some(error_frame(ErrorCode::InvalidJson, "binary frames are not accepted")),
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => None,
                    _ => return,
                };
                last_frame_at = Instant::now();
                if let Some(reply) = reply {
                    if socket.send(WsMessage::Text(reply)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
