//! `idle`: N authenticated, subscribed demo-session sockets held open against a separate server
//! process; prints the server's resident memory growth per connection, read from `/proc`.
//! Client sockets are spread over several loopback source addresses (127.0.0.2, ...), each of
//! which offers about 28,000 ports.

use crate::server_process::ServerProcess;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

pub async fn run(connections: usize) -> Value {
    let server = ServerProcess::start("").await;
    let (base, demo) = (server.base.clone(), server.demo.clone());
    let http = reqwest::Client::new();
    let key = demo["publishableKey"].as_str().unwrap().to_string();

    // Sessions first (HTTP), so the memory measured is the sockets'.
    let mut sessions = Vec::with_capacity(connections);
    for _ in 0..connections {
        let session = crate::start_session(&http, &base, &key, "demo").await;
        sessions.push(session);
    }
    drop(http);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(server.pid());
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(connections);
    for (index, session) in sessions.iter().enumerate() {
        // 4,000 per source address, so back-to-back runs do not run out of ports while the
        // last run's sockets sit in TIME_WAIT.
        let source = format!("127.0.0.{}:0", 2 + index / 4_000);
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(source.parse().unwrap()).unwrap();
        let stream = socket.connect(base.parse().unwrap()).await.unwrap();
        let url = crate::session_url(&base, session);
        let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        sockets.push(ws);
        if (index + 1) % 2_000 == 0 {
            eprintln!("  … {} connections open", index + 1);
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    // Let the server settle (sessions joined, feeds open, presence published).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(server.pid());
    let per_connection = (after.saturating_sub(before)) as f64 / connections as f64;
    drop(sockets);
    drop(server);
    json!({
        "scenario": "idle",
        "connections": connections,
        "serverRssBeforeKiB": before,
        "serverRssAfterKiB": after,
        "kibPerConnection": per_connection,
        "connectSeconds": connect_seconds,
    })
}
