//! The bare baseline: a tokio + tungstenite WebSocket server with no authentication, storage or
//! protocol, which forwards every text frame to every other connection through a broadcast
//! channel. It is the practical ceiling for fan-out on this machine, run as its own process.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub async fn serve(listen: &str) {
    let listener = TcpListener::bind(listen).await.expect("the baseline binds");
    let (sender, _) = broadcast::channel::<(u64, Message)>(65_536);
    let mut next_id = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        next_id += 1;
        let id = next_id;
        let sender = sender.clone();
        let mut receiver = sender.subscribe();
        tokio::spawn(async move {
            let mut config = WebSocketConfig::default();
            config.read_buffer_size = 4096;
            config.write_buffer_size = 0;
            let Ok(socket) =
                tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
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
                    outgoing = receiver.recv() => match outgoing {
                        Ok((from, message)) if from != id => {
                            if sink.send(message).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
    }
}
