//! The two baselines run beside Switchboard in the same run: the bare tokio broadcast server
//! (`baseline.rs`, this binary's `baseline-server`) and the Node.js Socket.IO server
//! (`bench/node-socketio`), each as its own process, and a minimal Socket.IO client for the
//! latter.

use futures_util::{SinkExt, StreamExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A baseline server process, stopped when dropped.
pub struct BaselineProcess(Child);

impl BaselineProcess {
    /// The bare baseline on a free port.
    pub async fn start_bare() -> (BaselineProcess, u16) {
        let port = free_port();
        let binary = std::env::current_exe()
            .expect("the load generator knows where it is")
            .with_file_name("switchboard-loadgen");
        let child = Command::new(binary)
            .args(["baseline-server", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the load generator runs itself");
        let process = BaselineProcess(child);
        wait_for_port(port).await;
        (process, port)
    }

    /// The Node.js Socket.IO baseline on a free port, its npm packages installed on first use.
    pub async fn start_node() -> Result<(BaselineProcess, u16), String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/node-socketio");
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
        let log = std::fs::File::create(std::env::temp_dir().join("switchboard-node-baseline.log"))
            .map_err(|error| error.to_string())?;
        let child = Command::new("node")
            .arg("server.js")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|error| format!("node: {error}"))?;
        let process = BaselineProcess(child);
        wait_for_port(port).await;
        Ok((process, port))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for BaselineProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// Connects a minimal Socket.IO v4 client (Engine.IO 4, WebSocket transport, default
/// namespace) to `room`: open packet, namespace connect, and its acknowledgement.
pub async fn socketio_connect(port: u16, room: &str) -> Result<Socket, String> {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&room={room}");
    let (mut socket, _) = crate::ws_connect(url)
        .await
        .map_err(|error| error.to_string())?;
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let text = text.as_str();
        if text.starts_with("40") {
            return Ok(socket);
        }
        if text.starts_with('0') {
            socket
                .send(Message::Text("40".into()))
                .await
                .map_err(|error| error.to_string())?;
        }
    }
    Err("the Socket.IO handshake did not complete".into())
}

/// A scenario's three results side by side, with Switchboard's throughput (`throughput_key`)
/// as a ratio of each baseline's.
pub fn comparison(
    scenario: &str,
    throughput_key: &str,
    cpu_key: &str,
    ours: serde_json::Value,
    bare: serde_json::Value,
    node: Result<serde_json::Value, String>,
) -> serde_json::Value {
    let node = node.unwrap_or_else(|error| serde_json::json!({ "error": error }));
    let throughput = |value: &serde_json::Value| value[throughput_key].as_f64().unwrap_or(0.0);
    // How many times the server CPU a baseline spends per unit of work that Switchboard does:
    // above 1, Switchboard is the cheaper one.
    let cpu_ratio =
        |baseline: &serde_json::Value| match (baseline[cpu_key].as_f64(), ours[cpu_key].as_f64()) {
            (Some(theirs), Some(mine)) if mine > 0.0 => serde_json::json!(theirs / mine),
            _ => serde_json::Value::Null,
        };
    serde_json::json!({
        "scenario": scenario,
        "ratioToBare": throughput(&ours) / throughput(&bare).max(1.0),
        "ratioToNode": throughput(&ours) / throughput(&node).max(1.0),
        "cpuPerUnitBareOverOurs": cpu_ratio(&bare),
        "cpuPerUnitNodeOverOurs": cpu_ratio(&node),
        "switchboard": ours,
        "bareBaseline": bare,
        "nodeSocketIo": node,
    })
}
