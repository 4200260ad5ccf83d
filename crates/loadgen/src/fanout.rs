//! `fanout`: one conversation watched by K connections while messages are published at a set
//! rate; deliveries per second and send-to-receive latency. Run against Switchboard (a separate
//! server process: an agent's chat socket publishes, K visitor tabs of one session receive) and,
//! in the same run, against the bare baseline (`baseline.rs`) with the same clients.

use crate::baselines::{comparison, socketio_connect, BaselineProcess, Socket};
use crate::progress::{self, counter};
use crate::server_process::{cpu_seconds, ServerProcess, UNLIMITED};
use crate::sweep::Server;
use crate::{ms, percentile};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct FanoutOptions {
    pub receivers: usize,
    pub rate: u64,
    pub seconds: u64,
}

/// Runs the measurement: `publish` sends one frame carrying a timestamp; each receiver finds
/// the timestamp in what it reads with `extract`.
async fn measure(
    label: &str,
    options: &FanoutOptions,
    server_pid: u32,
    receivers: Vec<Socket>,
    publisher: Socket,
    frame_for: impl Fn(u64, u64) -> String,
    extract: fn(&str) -> Option<u64>,
) -> Value {
    let epoch = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let total = options.rate * options.seconds;
    let (published, delivered) = (counter(), counter());
    let _progress = progress::start(
        format!("fanout · {label} · {} messages/s", options.rate),
        &[("delivered", &delivered), ("published", &published)],
    );
    let mut tasks = Vec::new();
    for mut receiver in receivers {
        let (latencies, delivered) = (latencies.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(total as usize);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while (mine.len() as u64) < total {
                let next = tokio::time::timeout_at(deadline, receiver.next()).await;
                let Ok(Some(Ok(Message::Text(text)))) = next else {
                    if matches!(next, Err(_) | Ok(None) | Ok(Some(Err(_)))) {
                        break;
                    }
                    continue;
                };
                if let Some(sent_ns) = extract(text.as_str()) {
                    let now_ns = epoch.elapsed().as_nanos() as u64;
                    mine.push(Duration::from_nanos(now_ns.saturating_sub(sent_ns)));
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    // The publisher reads what it is sent (Switchboard acknowledges every message and echoes it
    // to its sender), or its server would stop reading from a peer that never reads.
    let (mut publisher, mut answers) = publisher.split();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = answers.next().await {} });
    // Publish at the set rate: a batch each millisecond.
    let cpu_before = cpu_seconds(server_pid);
    let client_cpu_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * options.rate as f64) as u64).min(total);
        while sent < due {
            let frame = frame_for(sent, epoch.elapsed().as_nanos() as u64);
            publisher.send(Message::Text(frame.into())).await.unwrap();
            sent += 1;
            published.fetch_add(1, Ordering::Relaxed);
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    reader.abort();
    let elapsed = started.elapsed();
    let server_cpu = cpu_seconds(server_pid) - cpu_before;
    let client_cpu = cpu_seconds(std::process::id()) - client_cpu_before;
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    json!({
        "serverCpuSeconds": server_cpu,
        "serverCpuMicrosPerDelivery": server_cpu * 1e6 / latencies.len().max(1) as f64,
        "clientCpuSeconds": client_cpu,
        "seconds": elapsed.as_secs_f64(),
        "receivers": options.receivers,
        "offeredPerSecond": options.rate * options.receivers as u64,
        "delivered": latencies.len(),
        "expected": total * options.receivers as u64,
        "deliveredPerSecond": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50Ms": ms(percentile(&latencies, 0.5)),
        "p99Ms": ms(percentile(&latencies, 0.99)),
        "maxMs": ms(percentile(&latencies, 1.0)),
    })
}

async fn switchboard(options: &FanoutOptions) -> Value {
    let server = ServerProcess::start(&format!("outbound_queue = 65536\n{UNLIMITED}")).await;
    let (base, demo) = (server.base.clone(), server.demo.clone());
    let http = reqwest::Client::new();
    let session = crate::start_session(
        &http,
        &base,
        demo["publishableKey"].as_str().unwrap(),
        "demo",
    )
    .await;
    let url = crate::session_url(&base, &session);
    let mut receivers = Vec::new();
    for _ in 0..options.receivers {
        receivers.push(crate::ws_connect(&url).await.unwrap().0);
    }
    let ticket = crate::ticket(&http, &base, demo["agent"]["accessToken"].as_str().unwrap()).await;
    let conversation_id = session["conversationId"].as_i64().unwrap();
    let publisher = crate::ws_connect(format!(
        "ws://{base}/ws/chat/{conversation_id}?ticket={}",
        ticket
    ))
    .await
    .unwrap()
    .0;
    measure(
        Server::Switchboard.name(),
        options,
        server.pid(),
        receivers,
        publisher,
        |n, now_ns| json!({"type": "message", "payload": {"content": format!("t{now_ns}"), "clientMessageId": format!("f{n}")}}).to_string(),
        |text| {
            let start = text.find("\"text\":\"t")? + 9;
            let end = start + text[start..].find('"')?;
            text[start..end].parse().ok()
        },
    )
    .await
}

async fn baseline(options: &FanoutOptions) -> Value {
    let (server, port) = BaselineProcess::start_bare().await;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut receivers = Vec::new();
    for _ in 0..options.receivers {
        receivers.push(crate::ws_connect(&url).await.unwrap().0);
    }
    let publisher = crate::ws_connect(&url).await.unwrap().0;
    measure(
        Server::Bare.name(),
        options,
        server.pid(),
        receivers,
        publisher,
        |_, now_ns| format!("t{now_ns}"),
        |text| text.strip_prefix('t')?.parse().ok(),
    )
    .await
}

async fn node_socketio(options: &FanoutOptions) -> Result<Value, String> {
    let (server, port) = BaselineProcess::start_node().await?;
    let mut receivers = Vec::new();
    for _ in 0..options.receivers {
        receivers.push(socketio_connect(port, "room").await?);
    }
    let publisher = socketio_connect(port, "room").await?;
    Ok(measure(
        Server::Node.name(),
        options,
        server.pid(),
        receivers,
        publisher,
        |_, now_ns| format!("42[\"message\",\"t{now_ns}\"]"),
        |text| {
            let start = text.find("\"t")? + 2;
            let end = start + text[start..].find('"')?;
            text[start..end].parse().ok()
        },
    )
    .await)
}

/// One fan-out measurement on one server (its own process, started and stopped here).
pub async fn run_on(server: Server, options: &FanoutOptions) -> Result<Value, String> {
    match server {
        Server::Switchboard => Ok(switchboard(options).await),
        Server::Bare => Ok(baseline(options).await),
        Server::Node => node_socketio(options).await,
    }
}

pub async fn run(options: FanoutOptions) -> Value {
    eprintln!(
        "fanout on switchboard: {} receivers, {} messages/s, {} s …",
        options.receivers, options.rate, options.seconds
    );
    let ours = switchboard(&options).await;
    eprintln!("fanout on the bare baseline …");
    let bare = baseline(&options).await;
    eprintln!("fanout on the Node.js Socket.IO baseline …");
    let node = node_socketio(&options).await;
    comparison(
        "fanout",
        "deliveredPerSecond",
        "serverCpuMicrosPerDelivery",
        ours,
        bare,
        node,
    )
}

/// The rates (messages published per second) a sweep tries by default: fine steps where the Node
/// server saturates with 1,000 receivers, coarse ones up to where Switchboard does.
pub const SWEEP_RATES: [u64; 15] = [
    25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1000, 1200, 1400, 1600, 2000,
];

pub struct SweepOptions {
    pub receivers: usize,
    /// Messages published per second, in rising order; each server is measured at each until
    /// it saturates.
    pub rates: Vec<u64>,
    pub seconds: u64,
    /// The latency bound of the "sustained" figure.
    pub p99_bound_ms: f64,
}

/// Fan-out at rising rates on each server until it saturates (see `sweep.rs`).
pub async fn sweep(options: SweepOptions) -> Value {
    let (receivers, seconds) = (options.receivers, options.seconds);
    crate::sweep::run(
        "fanout",
        json!({"receivers": receivers, "seconds": seconds}),
        &options.rates,
        "messages/s",
        "deliveredPerSecond",
        options.p99_bound_ms,
        |server, rate| async move {
            let run = FanoutOptions {
                receivers,
                rate,
                seconds,
            };
            run_on(server, &run).await
        },
    )
    .await
}
