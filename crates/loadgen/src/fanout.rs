//! `fanout`: one conversation watched by K connections while messages are published at a set
//! rate; deliveries per second and send-to-receive latency. Run against Switchboard (a separate
//! server process: an agent's chat socket publishes, K visitor tabs of one session receive) and,
//! in the same run, against the bare baseline (`baseline.rs`) with the same clients.

use crate::server_process::{ServerProcess, UNLIMITED};
use crate::{ms, percentile};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct FanoutOptions {
    pub receivers: usize,
    pub rate: u64,
    pub seconds: u64,
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .expect("the load generator knows where it is")
        .with_file_name(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16) {
    for _ in 0..1200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {port}");
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the measurement: `publish` sends one frame carrying a timestamp; each receiver finds
/// the timestamp in what it reads with `extract`.
async fn measure(
    options: &FanoutOptions,
    receivers: Vec<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    mut publisher: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    frame_for: impl Fn(u64, u64) -> String,
    extract: fn(&str) -> Option<u64>,
) -> Value {
    let epoch = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let total = options.rate * options.seconds;
    let mut tasks = Vec::new();
    for mut receiver in receivers {
        let latencies = latencies.clone();
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
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    // Publish at the set rate: a batch each millisecond.
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
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    json!({
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
        options,
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
    let port = free_port();
    let _server = Server(
        Command::new(sibling("switchboard-loadgen"))
            .args(["baseline-server", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port).await;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut receivers = Vec::new();
    for _ in 0..options.receivers {
        receivers.push(crate::ws_connect(&url).await.unwrap().0);
    }
    let publisher = crate::ws_connect(&url).await.unwrap().0;
    measure(
        options,
        receivers,
        publisher,
        |_, now_ns| format!("t{now_ns}"),
        |text| text.strip_prefix('t')?.parse().ok(),
    )
    .await
}

/// The Socket.IO baseline's directory (`bench/node-socketio`), found from the workspace.
fn node_baseline_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/node-socketio")
}

/// Connects a minimal Socket.IO v4 client (Engine.IO 4, WebSocket transport, default
/// namespace): open packet, namespace connect, and its acknowledgement.
async fn socketio_connect(port: u16) -> Result<Socket, String> {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let (mut socket, _) = crate::ws_connect(url)
        .await
        .map_err(|error| error.to_string())?;
    let mut connected = false;
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let text = text.as_str();
        if text.starts_with('0') {
            socket
                .send(Message::Text("40".into()))
                .await
                .map_err(|error| error.to_string())?;
        } else if text.starts_with("40") {
            connected = true;
            break;
        }
    }
    if connected {
        Ok(socket)
    } else {
        Err("the Socket.IO handshake did not complete".into())
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn node_socketio(options: &FanoutOptions) -> Result<Value, String> {
    let dir = node_baseline_dir();
    if !dir.join("node_modules/socket.io").exists() {
        let installed = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .map_err(|error| format!("npm: {error}"))?;
        if !installed.success() {
            return Err("npm install failed".into());
        }
    }
    let port = free_port();
    let _server = Server(
        Command::new("node")
            .arg("server.js")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(std::env::temp_dir().join("switchboard-node-baseline.log"))
                    .map_err(|error| error.to_string())?,
            )
            .spawn()
            .map_err(|error| format!("node: {error}"))?,
    );
    wait_for_port(port).await;
    let mut receivers = Vec::new();
    for _ in 0..options.receivers {
        receivers.push(socketio_connect(port).await?);
    }
    let publisher = socketio_connect(port).await?;
    Ok(measure(
        options,
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

pub async fn run(options: FanoutOptions) -> Value {
    eprintln!(
        "fanout on switchboard: {} receivers, {} messages/s, {} s …",
        options.receivers, options.rate, options.seconds
    );
    let ours = switchboard(&options).await;
    eprintln!("fanout on the bare baseline …");
    let bare = baseline(&options).await;
    eprintln!("fanout on the Node.js Socket.IO baseline …");
    let node = match node_socketio(&options).await {
        Ok(result) => result,
        Err(error) => json!({"error": error}),
    };
    let throughput = |value: &Value| value["deliveredPerSecond"].as_f64().unwrap_or(0.0);
    json!({
        "scenario": "fanout",
        "switchboard": ours,
        "bareBaseline": bare,
        "nodeSocketIo": node,
        "ratioToBare": throughput(&ours) / throughput(&bare).max(1.0),
        "ratioToNode": throughput(&ours) / throughput(&node).max(1.0),
    })
}
