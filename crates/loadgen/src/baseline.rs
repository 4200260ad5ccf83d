//! The bare baseline: a tokio + tungstenite WebSocket server with no authentication, storage or
//! protocol, which forwards every text frame to every other connection in the same room (the
//! request's path) through a broadcast channel, writing whatever is queued for a connection in
//! one system call. It is the practical ceiling for fan-out and chat on this machine, run as its
//! own process.

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

type Room = broadcast::Sender<(u64, Message)>;

pub async fn serve(listen: &str) {
    let listener = TcpListener::bind(listen).await.expect("the baseline binds");
    let rooms: Arc<Mutex<HashMap<String, Room>>> = Arc::default();
    let mut next_id = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        next_id += 1;
        let id = next_id;
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let mut config = WebSocketConfig::default();
            config.read_buffer_size = 4096;
            config.write_buffer_size = 0;
            let mut path = String::new();
            // The callback's shape (its large error type included) is tungstenite's.
            #[allow(clippy::result_large_err)]
            let remember_path = |request: &Request, response: Response| {
                path = request.uri().path().to_string();
                Ok(response)
            };
            let Ok(socket) = tokio_tungstenite::accept_hdr_async_with_config(
                stream,
                remember_path,
                Some(config),
            )
            .await
            else {
                return;
            };
            let sender = rooms
                .lock()
                .unwrap()
                .entry(path.clone())
                .or_insert_with(|| {
                    // The fan-out room ("/") is one busy room; chat rooms hold two sockets.
                    broadcast::channel(if path == "/" { 65_536 } else { 1_024 }).0
                })
                .clone();
            let mut receiver = sender.subscribe();
            let (mut sink, mut stream) = socket.split();
            loop {
                tokio::select! {
                    incoming = stream.next() => match incoming {
                        Some(Ok(message @ Message::Text(_))) => {
                            let _ = sender.send((id, message));
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    outgoing = receiver.recv() => {
                        let first = match outgoing {
                            Ok((from, message)) => (from != id).then_some(message),
                            Err(broadcast::error::RecvError::Lagged(_)) => None,
                            Err(broadcast::error::RecvError::Closed) => return,
                        };
                        // Everything already queued goes out in one write, as any server
                        // tuned for fan-out does.
                        let more = std::iter::from_fn(|| loop {
                            match receiver.try_recv() {
                                Ok((from, message)) if from != id => return Some(message),
                                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                                Err(_) => return None,
                            }
                        });
                        let mut written = false;
                        for message in first.into_iter().chain(more) {
                            if sink.feed(message).await.is_err() {
                                return;
                            }
                            written = true;
                        }
                        if written && sink.flush().await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
