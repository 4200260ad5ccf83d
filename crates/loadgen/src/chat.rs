//! `chat`: many conversations, each a visitor and an agent exchanging messages at a set pace
//! against a separate server process; end-to-end latency (send → the other party receives it,
//! durable commit included) and messages per second.

use crate::server_process::{ServerProcess, UNLIMITED};
use crate::{ms, percentile};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct ChatOptions {
    pub conversations: usize,
    pub seconds: u64,
    /// Each side of each conversation sends a message this often.
    pub period_ms: u64,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until a text frame containing `marker` arrives; false if the socket ends first.
async fn read_until(socket: &mut Socket, marker: &str) -> bool {
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message {
            if text.as_str().contains(marker) {
                return true;
            }
        }
    }
    false
}

pub async fn run(options: ChatOptions) -> Value {
    let server = ServerProcess::start(UNLIMITED).await;
    let (base, demo) = (server.base.clone(), server.demo.clone());
    let http = reqwest::Client::new();
    let agent_token = demo["agent"]["accessToken"].as_str().unwrap().to_string();
    let agent_id = demo["agent"]["id"].clone();
    eprintln!("chat: opening {} conversations …", options.conversations);
    let mut pairs = Vec::new();
    for _ in 0..options.conversations {
        let session = crate::start_session(
            &http,
            &base,
            demo["publishableKey"].as_str().unwrap(),
            "demo",
        )
        .await;
        let conversation_id = session["conversationId"].as_i64().unwrap();
        // The agent takes the conversation, so the bot stays out of it.
        http.post(format!(
            "http://{base}/api/v1/conversations/{conversation_id}/assignments"
        ))
        .bearer_auth(&agent_token)
        .json(&json!({"assigneeId": agent_id}))
        .send()
        .await
        .unwrap();
        let ticket = crate::ticket(&http, &base, &agent_token).await;
        let visitor = crate::ws_connect(crate::session_url(&base, &session))
            .await
            .unwrap()
            .0;
        let agent = crate::ws_connect(format!(
            "ws://{base}/ws/chat/{conversation_id}?ticket={}",
            ticket
        ))
        .await
        .unwrap()
        .0;
        pairs.push((visitor, agent));
    }
    eprintln!("chat: exchanging for {} s …", options.seconds);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let run_for = Duration::from_secs(options.seconds);
    let period = Duration::from_millis(options.period_ms);
    let mut tasks = Vec::new();
    for (index, (mut visitor, mut agent)) in pairs.into_iter().enumerate() {
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            // Spread the conversations over the period.
            let offset = period.mul_f64((index as f64 * 0.618_034) % 1.0);
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(period);
            let mut mine = Vec::new();
            let mut n = 0u64;
            while started.elapsed() < run_for {
                tick.tick().await;
                let marker = format!("v{index}-{n}");
                let frame = json!({"type": "visitor_message", "payload": {"text": marker, "clientMessageId": marker}});
                let sent = Instant::now();
                if visitor.send(Message::Text(frame.to_string().into())).await.is_err()
                    || !read_until(&mut agent, &format!("\"content\":\"{marker}\"")).await
                {
                    break;
                }
                mine.push(sent.elapsed());
                let marker = format!("a{index}-{n}");
                let frame = json!({"type": "message", "payload": {"content": marker, "clientMessageId": marker}});
                let sent = Instant::now();
                if agent.send(Message::Text(frame.to_string().into())).await.is_err()
                    || !read_until(&mut visitor, &format!("\"text\":\"{marker}\"")).await
                {
                    break;
                }
                mine.push(sent.elapsed());
                n += 1;
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    json!({
        "scenario": "chat",
        "conversations": options.conversations,
        "periodMs": options.period_ms,
        "messages": latencies.len(),
        "messagesPerSecond": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50Ms": ms(percentile(&latencies, 0.5)),
        "p99Ms": ms(percentile(&latencies, 0.99)),
        "maxMs": ms(percentile(&latencies, 1.0)),
    })
}
