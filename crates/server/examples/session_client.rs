//! A small WebSocket client for the demo-session walkthrough: connects to a session, sends each
//! line of standard input (plain text as a `visitor_message`, a line starting with `{` as a raw
//! frame), and prints every frame the server sends.
//!
//! `printf 'Show me the dashboard\n' | cargo run --release --example session_client -- SID TOKEN`

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(session_id), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: session_client SESSION_ID TOKEN [BASE, default 127.0.0.1:8080]");
        std::process::exit(2);
    };
    let base = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let url = format!("ws://{base}/ws/session/{session_id}?token={token}");
    let (socket, _) = match tokio_tungstenite::connect_async(&url).await {
        Ok(connected) => connected,
        Err(error) => {
            eprintln!("cannot connect to {url}: {error}");
            std::process::exit(1);
        }
    };
    let (mut sink, mut stream) = socket.split();
    let printer = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => println!("← {text}"),
                Message::Close(frame) => {
                    println!("← close {frame:?}");
                    break;
                }
                _ => {}
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut n = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        n += 1;
        let frame = if line.starts_with('{') {
            line.to_string()
        } else {
            serde_json::json!({"type": "visitor_message",
                               "payload": {"text": line, "clientMessageId": format!("cli-{n}")}})
            .to_string()
        };
        println!("→ {frame}");
        if sink.send(Message::Text(frame.into())).await.is_err() {
            break;
        }
        // Give the bot time to answer before the next line, so the transcript reads in order.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = sink.send(Message::Close(None)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), printer).await;
}
