//! `chat`: many conversations, each a visitor and an agent exchanging messages at a set pace;
//! end-to-end latency (send → the other party receives it) and messages per second. Run against
//! Switchboard (a separate server process; durable commit included) and, in the same run and
//! with the same clients, against the bare baseline (one room per conversation) and the Node.js
//! Socket.IO baseline (one Socket.IO room per conversation), neither of which stores anything.

use crate::baselines::{comparison, socketio_connect, BaselineProcess, Socket};
use crate::server_process::{cpu_seconds, ServerProcess, UNLIMITED};
use crate::sweep::Server;
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
    /// Switchboard stores in a temporary PostgreSQL database instead of its embedded SQLite.
    pub postgres: bool,
}

/// How one server's clients speak: the frame each side sends for a marker, and the text that
/// shows the other side has received it.
struct Wire {
    visitor_frame: fn(&str) -> String,
    agent_frame: fn(&str) -> String,
    agent_sees: fn(&str) -> String,
    visitor_sees: fn(&str) -> String,
}

const SWITCHBOARD: Wire = Wire {
    visitor_frame: |marker| {
        json!({"type": "visitor_message", "payload": {"text": marker, "clientMessageId": marker}})
            .to_string()
    },
    agent_frame: |marker| {
        json!({"type": "message", "payload": {"content": marker, "clientMessageId": marker}})
            .to_string()
    },
    agent_sees: |marker| format!("\"content\":\"{marker}\""),
    visitor_sees: |marker| format!("\"text\":\"{marker}\""),
};

const BARE: Wire = Wire {
    visitor_frame: |marker| marker.to_string(),
    agent_frame: |marker| marker.to_string(),
    agent_sees: |marker| marker.to_string(),
    visitor_sees: |marker| marker.to_string(),
};

const SOCKET_IO: Wire = Wire {
    visitor_frame: |marker| format!("42[\"message\",\"{marker}\"]"),
    agent_frame: |marker| format!("42[\"message\",\"{marker}\"]"),
    agent_sees: |marker| format!("\"{marker}\""),
    visitor_sees: |marker| format!("\"{marker}\""),
};

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

/// Every conversation exchanges for `seconds`: each period the visitor sends and waits until
/// the agent has it, then the agent replies and waits until the visitor has it.
async fn exchange(
    label: &str,
    options: &ChatOptions,
    server_pid: u32,
    pairs: Vec<(Socket, Socket)>,
    wire: &'static Wire,
) -> Value {
    eprintln!(
        "  … {} conversations open, exchanging for {} s",
        pairs.len(),
        options.seconds
    );
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let exchanged = crate::progress::counter();
    let _progress = crate::progress::start(
        format!("chat · {label}"),
        &[("messages received", &exchanged)],
    );
    let cpu_before = cpu_seconds(server_pid);
    let clients_cpu_before = cpu_seconds(std::process::id());
    let machine_before = crate::server_process::machine_ticks();
    let started = Instant::now();
    let run_for = Duration::from_secs(options.seconds);
    let period = Duration::from_millis(options.period_ms);
    let mut tasks = Vec::new();
    for (index, (mut visitor, mut agent)) in pairs.into_iter().enumerate() {
        let (latencies, exchanged) = (latencies.clone(), exchanged.clone());
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
                let sent = Instant::now();
                if visitor
                    .send(Message::Text((wire.visitor_frame)(&marker).into()))
                    .await
                    .is_err()
                    || !read_until(&mut agent, &(wire.agent_sees)(&marker)).await
                {
                    break;
                }
                mine.push(sent.elapsed());
                exchanged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let marker = format!("a{index}-{n}");
                let sent = Instant::now();
                if agent
                    .send(Message::Text((wire.agent_frame)(&marker).into()))
                    .await
                    .is_err()
                    || !read_until(&mut visitor, &(wire.visitor_sees)(&marker)).await
                {
                    break;
                }
                mine.push(sent.elapsed());
                exchanged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                n += 1;
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let server_cpu = cpu_seconds(server_pid) - cpu_before;
    let clients_cpu = cpu_seconds(std::process::id()) - clients_cpu_before;
    let machine = crate::server_process::machine_ticks().since(machine_before);
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let per_message = |cpu: f64| cpu * 1e6 / latencies.len().max(1) as f64;
    json!({
        "conversations": options.conversations,
        "periodMs": options.period_ms,
        "offeredPerSecond": 2.0 * options.conversations as f64 * 1000.0 / options.period_ms as f64,
        "messages": latencies.len(),
        "messagesPerSecond": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50Ms": ms(percentile(&latencies, 0.5)),
        "p99Ms": ms(percentile(&latencies, 0.99)),
        "maxMs": ms(percentile(&latencies, 1.0)),
        "serverCpuMicrosPerMessage": per_message(server_cpu),
        "clientCpuMicrosPerMessage": per_message(clients_cpu),
        "clientBoundMessagesPerSecond": client_bound(per_message(clients_cpu), crate::cores()),
        "machineBusyPercent": machine.busy_percent(),
    })
}

/// The most messages a second `cores` could carry if the server cost nothing and the clients
/// kept costing `client_cpu_micros` of CPU per message, as they did in the run: the load
/// generator shares the machine with the server, so no server can beat this on it.
fn client_bound(client_cpu_micros: f64, cores: usize) -> Option<f64> {
    (client_cpu_micros > 0.0).then(|| cores as f64 * 1e6 / client_cpu_micros)
}

async fn switchboard(options: &ChatOptions) -> Value {
    // Dropped after the server (declared first), so the database outlives its user.
    let database = match options.postgres {
        true => Some(switchboard_store::testing::TempDatabase::create().await),
        false => None,
    };
    let args = match &database {
        Some(database) => vec!["--database-url".to_string(), database.url.clone()],
        None => Vec::new(),
    };
    let server = ServerProcess::start_node(UNLIMITED, &args, None).await;
    let (base, demo) = (server.base.clone(), server.demo.clone());
    let http = reqwest::Client::new();
    let agent_token = demo["agent"]["accessToken"].as_str().unwrap().to_string();
    let agent_id = demo["agent"]["id"].clone();
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
    exchange(
        Server::Switchboard.name(),
        options,
        server.pid(),
        pairs,
        &SWITCHBOARD,
    )
    .await
}

async fn bare(options: &ChatOptions) -> Value {
    let (server, port) = BaselineProcess::start_bare().await;
    let mut pairs = Vec::new();
    for index in 0..options.conversations {
        let url = format!("ws://127.0.0.1:{port}/conversation/{index}");
        let visitor = crate::ws_connect(&url).await.unwrap().0;
        let agent = crate::ws_connect(&url).await.unwrap().0;
        pairs.push((visitor, agent));
    }
    exchange(Server::Bare.name(), options, server.pid(), pairs, &BARE).await
}

async fn node_socketio(options: &ChatOptions) -> Result<Value, String> {
    let (server, port) = BaselineProcess::start_node().await?;
    let mut pairs = Vec::new();
    for index in 0..options.conversations {
        let room = format!("conversation-{index}");
        let visitor = socketio_connect(port, &room).await?;
        let agent = socketio_connect(port, &room).await?;
        pairs.push((visitor, agent));
    }
    Ok(exchange(
        Server::Node.name(),
        options,
        server.pid(),
        pairs,
        &SOCKET_IO,
    )
    .await)
}

/// One chat measurement on one server (its own process, started and stopped here).
async fn run_on(server: Server, options: &ChatOptions) -> Result<Value, String> {
    match server {
        Server::Switchboard => Ok(switchboard(options).await),
        Server::Bare => Ok(bare(options).await),
        Server::Node => node_socketio(options).await,
    }
}

/// The paces (each side of each conversation sends every this many ms) a sweep tries by
/// default, from a message a second to the closed loop's limit.
pub const SWEEP_PERIODS_MS: [u64; 7] = [1000, 500, 250, 100, 50, 30, 20];

pub struct ChatSweepOptions {
    pub conversations: usize,
    pub seconds: u64,
    /// Falling periods, i.e. rising load.
    pub periods_ms: Vec<u64>,
    pub p99_bound_ms: f64,
    pub postgres: bool,
}

/// Chat at a faster pace on each server until it cannot keep it (see `sweep.rs`).
pub async fn sweep(options: ChatSweepOptions) -> Value {
    let (conversations, seconds, postgres) =
        (options.conversations, options.seconds, options.postgres);
    crate::sweep::run(
        "chat",
        json!({"conversations": conversations, "seconds": seconds}),
        &options.periods_ms,
        "ms between a side's messages",
        "messagesPerSecond",
        options.p99_bound_ms,
        |server, period_ms| async move {
            let run = ChatOptions {
                conversations,
                seconds,
                period_ms,
                postgres,
            };
            run_on(server, &run).await
        },
    )
    .await
}

pub async fn run(options: ChatOptions) -> Value {
    eprintln!(
        "chat on switchboard ({}): {} conversations, a message each way every {} ms, {} s …",
        if options.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        options.conversations,
        options.period_ms,
        options.seconds
    );
    let ours = switchboard(&options).await;
    eprintln!("chat on the bare baseline …");
    let bare = bare(&options).await;
    eprintln!("chat on the Node.js Socket.IO baseline …");
    let node = node_socketio(&options).await;
    comparison(
        "chat",
        "messagesPerSecond",
        "serverCpuMicrosPerMessage",
        ours,
        bare,
        node,
    )
}

#[cfg(test)]
mod tests {
    use super::client_bound;

    #[test]
    fn the_client_bound_is_the_cores_over_what_the_clients_spend_per_message() {
        // 25 µs a message: 40,000 a second on a core, 80,000 on two.
        assert_eq!(client_bound(25.0, 1), Some(40_000.0));
        assert_eq!(client_bound(25.0, 2), Some(80_000.0));
        // Nothing measured (no message, or a clock too coarse to see the clients): no bound.
        assert_eq!(client_bound(0.0, 2), None);
    }
}
