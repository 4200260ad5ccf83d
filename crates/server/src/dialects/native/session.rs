//! The demo-session socket, `GET /ws/session/:id?token=...`: connect checks, then one loop
//! that reads visitor frames, writes the conversation's events, and enforces heartbeats,
//! session expiry, slow-consumer eviction and shutdown.

use super::frames::*;
use crate::dialects::NATIVE_SESSION_SLOT;
use crate::rest::AppState;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::session::SessionRefusal;
use switchboard_core::{Command, DomainError, EventKind, Seq};
use switchboard_engine::{Delivery, Engine, EngineError, FeedItem, Outcome, SessionJoin};
use tokio::time::{sleep_until, Instant};

/// The close codes of `spec/native.md`, and this server's additions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// The session ended.
    Normal = 1000,
    /// The server is shutting down; reconnect elsewhere or later.
    GoingAway = 1001,
    /// A frame larger than the server accepts.
    TooLarge = 1009,
    /// This connection fell too far behind; reconnect and resume.
    TryAgainLater = 1013,
    /// Missing, invalid or expired credentials (and an expired session).
    AuthenticationFailed = 4001,
    /// Extension: no frame (not even a heartbeat) arrived within the heartbeat timeout.
    HeartbeatTimeout = 4002,
    SessionNotFound = 4004,
}

fn refusal_error(refusal: SessionRefusal) -> (ErrorCode, &'static str, CloseCode) {
    match refusal {
        SessionRefusal::AuthRequired => (
            ErrorCode::AuthRequired,
            "No token provided",
            CloseCode::AuthenticationFailed,
        ),
        SessionRefusal::InvalidToken => (
            ErrorCode::InvalidToken,
            "Token is invalid or expired",
            CloseCode::AuthenticationFailed,
        ),
        SessionRefusal::SessionNotFound => (
            ErrorCode::SessionNotFound,
            "Session does not exist",
            CloseCode::SessionNotFound,
        ),
        SessionRefusal::SessionExpired => (
            ErrorCode::SessionExpired,
            "Session expired",
            CloseCode::AuthenticationFailed,
        ),
    }
}

/// The upgrade handler. Refusals are sent over the socket (an `error` frame, then the close),
/// as browsers cannot read an HTTP refusal of a WebSocket.
pub async fn session_socket(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let max_frame = state.settings.max_frame_bytes;
    let upgrade = upgrade
        .read_buffer_size(1024)
        // Frames fed in one turn go out in one write; flush ends every turn.
        .write_buffer_size(64 * 1024)
        // Frames up to four times our limit are read whole so the visitor gets a clear
        // MESSAGE_TOO_LARGE; beyond that the library refuses them while reading.
        .max_message_size(max_frame * 4)
        .max_frame_size(max_frame * 4);
    let engine = state.engine.clone();
    // Only what the connection needs is kept: the query's map is gone before the socket opens.
    let token = query.get("token").cloned();
    let last_seq = query.get("lastSeq").and_then(|seq| seq.parse::<Seq>().ok());
    drop(query);
    upgrade.on_upgrade(move |mut socket| async move {
        let _tracked = engine.track_connection();
        // Boxed, and the token dropped with it: neither is kept for the connection's life.
        let joined = Box::pin(engine.join_session(&session_id, token.as_deref())).await;
        drop(token);
        match joined {
            Ok(join) => {
                drop(session_id);
                serve_session_socket(socket, engine, join, last_seq, max_frame).await
            }
            Err(refusal) => {
                let (code, message, close) = refusal_error(refusal);
                tracing::info!(session = %session_id, code = code.as_str(), "session socket refused");
                let _ = socket.send(WsMessage::Text(error_frame(code, message))).await;
                let _ = close_with(&mut socket, close, message).await;
            }
        }
    })
}

pub(super) async fn close_with<S>(
    socket: &mut S,
    code: CloseCode,
    reason: &str,
) -> Result<(), axum::Error>
where
    S: Sink<WsMessage, Error = axum::Error> + Unpin,
{
    let frame = CloseFrame {
        code: code as u16,
        reason: Utf8Bytes::from(reason),
    };
    // A peer that stopped reading must not hold the task: the close gets a bounded time.
    // Boxed: it runs once, at the end, so idle connections do not carry its timer.
    match Box::pin(tokio::time::timeout(
        Duration::from_secs(2),
        socket.send(WsMessage::Close(Some(frame))),
    ))
    .await
    {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// How the loop ends.
enum Ending {
    Close(CloseCode, &'static str),
    /// The peer closed or the transport failed: nothing more to send.
    Gone,
}

/// Serves an admitted session socket until it closes. Generic over the socket so it can be
/// driven by channels in tests as well as by a real WebSocket.
pub async fn serve_session_socket<S>(
    mut socket: S,
    engine: Arc<Engine>,
    join: SessionJoin,
    last_seq: Option<Seq>,
    max_frame_bytes: usize,
) where
    S: Stream<Item = Result<WsMessage, axum::Error>> + Sink<WsMessage, Error = axum::Error> + Unpin,
{
    let SessionJoin { principal, session } = join;
    let conversation_id = session.conversation_id;
    let _present = Box::pin(engine.connected(&principal)).await;
    let mut feed = match Box::pin(engine.open_feed(
        &principal,
        conversation_id,
        last_seq,
        session_shows,
    ))
    .await
    {
        Ok(feed) => feed,
        Err(error) => {
            tracing::error!(%error, "could not open a session feed");
            let _ = socket
                .send(WsMessage::Text(error_frame(
                    ErrorCode::ServerError,
                    "please reconnect",
                )))
                .await;
            let _ = close_with(&mut socket, CloseCode::TryAgainLater, "try again later").await;
            return;
        }
    };
    // What this visitor missed: after its `lastSeq`, or else after what it was last sent.
    match Box::pin(feed.catch_up()).await {
        Ok(deliveries) => {
            if send_deliveries(&mut socket, &engine, &principal, &deliveries)
                .await
                .is_err()
            {
                return;
            }
        }
        Err(error) => tracing::warn!(%error, "replay at connect failed"),
    }
    let stopping = stopping(engine.shutdown_signal());
    tokio::pin!(stopping);
    let session_deadline = engine.clock().instant_at(session.expires_at);
    let heartbeat_timeout = engine.config().heartbeat_timeout;
    // Timers are armed once and moved only when they fire: re-arming one per frame would cost
    // a timer-wheel update for every message sent or received.
    let mut last_frame_at = Instant::now();
    let heartbeat = sleep_until(last_frame_at + heartbeat_timeout);
    tokio::pin!(heartbeat);
    let session_expiry = sleep_until(session_deadline);
    tokio::pin!(session_expiry);
    tracing::debug!(session = %session.id, "session socket open");

    // A message read ahead while batching, handled on the next turn.
    let mut stashed: Option<Option<Result<WsMessage, axum::Error>>> = None;
    let ending = loop {
        tokio::select! {
            biased;
            _ = &mut stopping => {
                // Drain what is already queued, then tell the client to reconnect.
                let queued = Box::pin(feed.drain()).await;
                let _ = send_deliveries(&mut socket, &engine, &principal, &queued).await;
                break Ending::Close(CloseCode::GoingAway, "server shutting down");
            }
            _ = &mut session_expiry => {
                let _ = socket
                    .send(WsMessage::Text(error_frame(ErrorCode::SessionExpired, "Session expired")))
                    .await;
                break Ending::Close(CloseCode::AuthenticationFailed, "Session expired");
            }
            _ = heartbeat_missed(heartbeat.as_mut(), last_frame_at, heartbeat_timeout) => {
                break Ending::Close(CloseCode::HeartbeatTimeout, "heartbeat missed");
            }
            item = feed.next() => match item {
                FeedItem::Deliveries(deliveries) => {
                    let ended = deliveries
                        .iter()
                        .any(|delivery| matches!(delivery.event().kind, EventKind::SessionEnded { .. }));
                    if send_deliveries(&mut socket, &engine, &principal, &deliveries).await.is_err() {
                        break Ending::Gone;
                    }
                    if ended {
                        break Ending::Close(CloseCode::Normal, "session ended");
                    }
                }
                FeedItem::Evicted(_) => {
                    break Ending::Close(CloseCode::TryAgainLater, "too slow: reconnect and resume");
                }
            },
            incoming = next_message(&mut stashed, &mut socket) => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        let text = error.to_string();
                        if text.contains("Space limit exceeded") || text.contains("too long") {
                            break Ending::Close(CloseCode::TooLarge, "frame too large");
                        }
                        tracing::debug!(%error, "session socket read failed");
                        break Ending::Gone;
                    }
                    None => break Ending::Gone,
                };
                last_frame_at = Instant::now();
                let text = match message {
                    WsMessage::Text(text) => text,
                    WsMessage::Binary(_) => {
                        let reply = error_frame(ErrorCode::InvalidJson, "binary frames are not accepted; send JSON text");
                        if socket.send(WsMessage::Text(reply)).await.is_err() {
                            break Ending::Gone;
                        }
                        continue;
                    }
                    WsMessage::Close(_) => break Ending::Gone,
                    WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                };
                if text.len() > max_frame_bytes {
                    let _ = socket
                        .send(WsMessage::Text(error_frame(ErrorCode::MessageTooLarge, "frame too large")))
                        .await;
                    break Ending::Close(CloseCode::TooLarge, "frame too large");
                }
                // Frames that have already arrived are handled together, so a busy client's
                // messages share one commit; anything but text waits for the next turn.
                let mut texts = vec![text];
                while texts.len() < MAX_FRAMES_PER_TURN {
                    match socket.next().now_or_never() {
                        Some(Some(Ok(WsMessage::Text(more)))) if more.len() <= max_frame_bytes => texts.push(more),
                        Some(other) => {
                            stashed = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                // Boxed: handling is deep (engine, store) and brief, so it is allocated while it
                // runs instead of widening every idle connection's state.
                let replies = Box::pin(handle_frames(&engine, &principal, conversation_id, &mut feed, texts)).await;
                if send_all(&mut socket, replies).await.is_err() {
                    break Ending::Gone;
                }
            }
        }
    };
    if let Ending::Close(code, reason) = ending {
        tracing::debug!(session = %session.id, code = code as u16, reason, "closing session socket");
        let _ = close_with(&mut socket, code, reason).await;
    }
}

/// Completes once `timeout` has passed with no frame since `last_frame_at`. The timer is armed
/// once and moved only when it fires: re-arming it for every frame would cost a timer-wheel
/// update per message sent or received.
pub(super) async fn heartbeat_missed(
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    last_frame_at: Instant,
    timeout: Duration,
) {
    loop {
        timer.as_mut().await;
        let due = last_frame_at + timeout;
        if due <= Instant::now() {
            return;
        }
        timer.as_mut().reset(due);
    }
}

/// Completes when the server starts shutting down.
async fn stopping(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        // The engine is gone: that is a shutdown too.
    }
}

/// Sends `frames` in one write (fed, then flushed once).
async fn send_all<S>(socket: &mut S, frames: Vec<Utf8Bytes>) -> Result<(), axum::Error>
where
    S: Sink<WsMessage, Error = axum::Error> + Unpin,
{
    if frames.is_empty() {
        return Ok(());
    }
    for frame in frames {
        socket.feed(WsMessage::Text(frame)).await?;
    }
    socket.flush().await
}

/// Sends deliveries as visitor frames, noted written (cursor, receipts) as they go out.
async fn send_deliveries<S>(
    socket: &mut S,
    engine: &Engine,
    principal: &switchboard_core::Principal,
    deliveries: &[Delivery],
) -> Result<(), axum::Error>
where
    S: Sink<WsMessage, Error = axum::Error> + Unpin,
{
    // Rendered once per event for all visitors; each frame shares the same bytes.
    let mut frames = Vec::new();
    for delivery in deliveries {
        frames.extend(
            delivery
                .rendered(NATIVE_SESSION_SLOT, render_for_visitor)
                .iter()
                .cloned(),
        );
    }
    send_noted(socket, engine, principal, deliveries, frames).await
}

/// Sends `frames` in one write, `deliveries` (what they carry) noted written just before it
/// and the note taken back if the write fails (see `Engine::note_written`).
pub(super) async fn send_noted<S>(
    socket: &mut S,
    engine: &Engine,
    principal: &switchboard_core::Principal,
    deliveries: &[Delivery],
    frames: Vec<Utf8Bytes>,
) -> Result<(), axum::Error>
where
    S: Sink<WsMessage, Error = axum::Error> + Unpin,
{
    let moves = engine.note_written(principal, deliveries);
    let written = send_all(socket, frames).await;
    if written.is_err() {
        engine.write_failed(moves);
    }
    written
}

/// A session visitor's conversation is the session itself: not finding it means the session
/// is gone.
fn session_error_frame(error: EngineError) -> Utf8Bytes {
    match error {
        EngineError::Domain(DomainError::NotFound) => {
            error_frame(ErrorCode::SessionExpired, "Session expired")
        }
        other => engine_error_frame(other),
    }
}

/// The most frames handled in one turn of a connection's loop.
pub(super) const MAX_FRAMES_PER_TURN: usize = 64;

/// The stashed message if there is one, else the socket's next.
pub(super) async fn next_message<S>(
    stashed: &mut Option<Option<Result<WsMessage, axum::Error>>>,
    socket: &mut S,
) -> Option<Result<WsMessage, axum::Error>>
where
    S: Stream<Item = Result<WsMessage, axum::Error>> + Unpin,
{
    match stashed.take() {
        Some(message) => message,
        None => socket.next().await,
    }
}

/// What one visitor frame asks for.
enum Action {
    Reply(Vec<Utf8Bytes>),
    Resume(Seq),
    Command(Command),
}

fn action_of(
    engine: &Engine,
    conversation_id: switchboard_core::ConversationId,
    text: &str,
) -> Action {
    let frame = match decode_client_frame(text) {
        Ok(frame) => frame,
        Err(error) => return Action::Reply(vec![error_frame(error.code, &error.message)]),
    };
    Action::Command(match frame {
        ClientFrame::Heartbeat => return Action::Reply(vec![pong_frame(engine.clock().now_ms())]),
        ClientFrame::Resume { last_seq } => return Action::Resume(last_seq),
        ClientFrame::VisitorMessage {
            text,
            client_message_id,
        } => Command::SendMessage {
            conversation_id,
            content: text,
            client_message_id,
            private: false,
        },
        ClientFrame::IframeEvent {
            event,
            selector,
            url,
        } => Command::RecordIframeEvent {
            conversation_id,
            event,
            selector,
            url,
        },
        ClientFrame::Typing { is_typing } => Command::SetTyping {
            conversation_id,
            is_typing,
            private: false,
        },
        ClientFrame::Read { seq } => Command::MarkRead {
            conversation_id,
            seq,
        },
    })
}

/// Handles visitor frames in order and returns the frames to answer with, in the same order.
/// Runs of commands go to the engine together (messages share one commit).
async fn handle_frames(
    engine: &Engine,
    principal: &switchboard_core::Principal,
    conversation_id: switchboard_core::ConversationId,
    feed: &mut switchboard_engine::Feed,
    texts: Vec<Utf8Bytes>,
) -> Vec<Utf8Bytes> {
    let mut replies = Vec::new();
    let mut commands = Vec::new();
    for text in texts {
        match action_of(engine, conversation_id, text.as_str()) {
            Action::Command(command) => commands.push(command),
            Action::Reply(frames) => {
                run_commands(
                    engine,
                    principal,
                    &mut commands,
                    &mut replies,
                    session_error_frame,
                )
                .await;
                replies.extend(frames);
            }
            Action::Resume(last_seq) => {
                run_commands(
                    engine,
                    principal,
                    &mut commands,
                    &mut replies,
                    session_error_frame,
                )
                .await;
                match feed.replay_after(last_seq).await {
                    Ok(deliveries) => {
                        engine.note_written(principal, &deliveries);
                        for delivery in &deliveries {
                            let frames = delivery.rendered(NATIVE_SESSION_SLOT, render_for_visitor);
                            replies.extend(frames.iter().cloned());
                        }
                    }
                    Err(error) => replies.push(session_error_frame(error)),
                }
            }
        }
    }
    run_commands(
        engine,
        principal,
        &mut commands,
        &mut replies,
        session_error_frame,
    )
    .await;
    replies
}

/// Runs the gathered commands together and appends their answers (an `ack` per stored
/// message, an error frame made by `refusal_frame` per refusal), in order.
pub(super) async fn run_commands(
    engine: &Engine,
    principal: &switchboard_core::Principal,
    commands: &mut Vec<Command>,
    replies: &mut Vec<Utf8Bytes>,
    refusal_frame: fn(EngineError) -> Utf8Bytes,
) {
    if commands.is_empty() {
        return;
    }
    for result in engine
        .execute_many(principal, std::mem::take(commands))
        .await
    {
        match result {
            Ok(Outcome::Message { message, .. }) => replies.push(ack_frame(&message)),
            Ok(Outcome::Done) => {}
            Err(error) => replies.push(refusal_frame(error)),
        }
    }
}
