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

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a session socket for each of `sessions`, from loopback source addresses
/// `127.BLOCK.0.2` on, 4,000 per address so back-to-back runs do not run out of ports while the
/// last run's sockets sit in TIME_WAIT.
async fn open_sockets(base: &str, sessions: &[Value], block: usize, label: &str) -> Vec<Socket> {
    let mut sockets = Vec::with_capacity(sessions.len());
    let open = crate::progress::counter();
    let _progress = crate::progress::start(
        format!("idle · {label}{} sockets", sessions.len()),
        &[("open", &open)],
    );
    for (index, session) in sessions.iter().enumerate() {
        let source = format!("127.{block}.0.{}:0", 2 + index / 4_000);
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(source.parse().unwrap()).unwrap();
        let stream = socket.connect(base.parse().unwrap()).await.unwrap();
        let url = crate::session_url(base, session);
        let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        sockets.push(ws);
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    sockets
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
    let sockets = open_sockets(&base, &sessions, 0, "").await;
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

/// Redis's `used_memory` in bytes, asked over a plain socket (`INFO memory`).
async fn redis_used_memory() -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .ok()?;
    stream.write_all(b"INFO memory\r\n").await.ok()?;
    let mut reply = vec![0u8; 16 * 1024];
    let mut read = 0;
    // A bulk reply: read until the used_memory line has arrived.
    while read < reply.len() {
        let n = stream.read(&mut reply[read..]).await.ok()?;
        if n == 0 {
            break;
        }
        read += n;
        if String::from_utf8_lossy(&reply[..read]).contains("used_memory_human") {
            break;
        }
    }
    String::from_utf8_lossy(&reply[..read])
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|bytes| bytes.trim().parse().ok())
}

/// A client process of the cluster run: holds `count` sockets to one node (one process may
/// hold only about 19,900 sockets here, so each node gets its own).
struct Worker {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Worker {
    fn spawn(base: &str, key: &str, count: usize, block: usize) -> Worker {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["idle-worker", "--base", base, "--key", key])
            .args(["--count", &count.to_string(), "--block", &block.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        Worker {
            child,
            lines: std::io::BufRead::lines(std::io::BufReader::new(stdout)),
        }
    }

    /// Blocks until the worker says a line starting with `word`; the line.
    fn until(&mut self, word: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if line.starts_with(word) {
                return line;
            }
        }
        panic!("an idle worker ended before saying {word:?}");
    }

    fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// What the nodes of `idle --nodes N` carry events and count presence with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterBus {
    /// Redis pub/sub, and presence in Redis.
    Redis,
    /// NATS, and presence in the store's PostgreSQL.
    Nats,
}

/// `idle --nodes N`: N server processes on one PostgreSQL database and one Redis or NATS (bus;
/// presence in Redis, or in PostgreSQL with NATS), each held `per_node` idle sockets by a
/// client process of its own; the memory of every node and of Redis, per connection.
pub async fn run_cluster(nodes: usize, per_node: usize, via: ClusterBus) -> Value {
    let database = switchboard_store::testing::TempDatabase::create().await;
    let prefix = format!("sb_bench_{}", std::process::id());
    let bus = match via {
        ClusterBus::Redis => format!("redis://127.0.0.1:6379/?prefix={prefix}"),
        ClusterBus::Nats => format!("nats://127.0.0.1:4222?prefix={prefix}"),
    };
    let args = |id: usize| -> Vec<String> {
        let mut args: Vec<String> = [
            "--database-url",
            &database.url,
            "--bus-url",
            &bus,
            "--node-id",
            &format!("node-{id}"),
        ]
        .map(String::from)
        .to_vec();
        if id > 0 {
            args.push("--no-demo".into());
        }
        args
    };
    // Sockets sit idle for as long as the others take to open: no heartbeat deadline then.
    let settings = "heartbeat_timeout_secs = 3600\n";
    let first = ServerProcess::start_node(settings, &args(0), None).await;
    let demo = first.demo.clone();
    let mut servers = vec![first];
    for id in 1..nodes {
        servers.push(ServerProcess::start_node(settings, &args(id), Some(demo.clone())).await);
    }
    let key = demo["publishableKey"].as_str().unwrap().to_string();
    eprintln!("  {nodes} nodes up; each client process starts {per_node} sessions");

    let redis_before = redis_used_memory().await;
    let mut workers: Vec<Worker> = servers
        .iter()
        .enumerate()
        .map(|(block, server)| Worker::spawn(&server.base, &key, per_node, block))
        .collect();
    let workers_ready = tokio::task::spawn_blocking(move || {
        for worker in &mut workers {
            worker.until("ready");
        }
        workers
    });
    let mut workers = workers_ready.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<u64> = servers.iter().map(|server| rss_kib(server.pid())).collect();
    let started = Instant::now();
    for worker in &mut workers {
        worker.say("go");
    }
    let workers = tokio::task::spawn_blocking(move || {
        for worker in &mut workers {
            worker.until("open");
        }
        workers
    })
    .await
    .unwrap();
    let connect_seconds = started.elapsed().as_secs_f64();
    // Let the nodes settle (feeds open, presence counted and published).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<u64> = servers.iter().map(|server| rss_kib(server.pid())).collect();
    let mut open_per_node = Vec::new();
    for server in &servers {
        let metrics = match reqwest::get(format!("http://{}/metrics", server.base)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let open = metrics
            .lines()
            .find(|line| line.starts_with("switchboard_open_connections"))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        open_per_node.push(open.map_or(Value::Null, Value::from));
    }
    let redis_after = redis_used_memory().await;
    for worker in workers {
        worker.finish();
    }
    drop(servers);
    let connections = nodes * per_node;
    let grown: u64 = after
        .iter()
        .zip(&before)
        .map(|(after, before)| after.saturating_sub(*before))
        .sum();
    let redis_bytes_per_connection = match (redis_before, redis_after) {
        (Some(before), Some(after)) if via == ClusterBus::Redis => {
            Value::from(after.saturating_sub(before) as f64 / connections as f64)
        }
        _ => Value::Null,
    };
    json!({
        "scenario": "idle",
        "bus": format!("{via:?}").to_lowercase(),
        "nodes": nodes,
        "connections": connections,
        "connectionsPerNode": per_node,
        "openPerNode": open_per_node,
        "serverRssBeforeKiB": before,
        "serverRssAfterKiB": after,
        "kibPerConnection": grown as f64 / connections as f64,
        "redisBytesPerConnection": redis_bytes_per_connection,
        "connectSeconds": connect_seconds,
    })
}

/// The client process of `run_cluster`: starts `count` sessions on `base`, says `ready`, waits
/// for `go`, opens a socket for each from loopback addresses of its own block, says `open`, and
/// holds them until its standard input closes.
pub async fn worker(base: String, key: String, count: usize, block: usize) {
    use std::io::BufRead;
    let http = reqwest::Client::new();
    let mut sessions = Vec::with_capacity(count);
    for index in 0..count {
        sessions.push(crate::start_session(&http, &base, &key, "demo").await);
        if (index + 1) % 5_000 == 0 {
            eprintln!("  … node {block}: {} sessions", index + 1);
        }
    }
    drop(http);
    println!("ready");
    let mut stdin = std::io::stdin().lock().lines();
    while let Some(Ok(line)) = stdin.next() {
        if line == "go" {
            break;
        }
    }
    let sockets = open_sockets(&base, &sessions, 10 + block, &format!("node {block}: ")).await;
    println!("open {}", sockets.len());
    // Held until the coordinator closes our standard input.
    for line in stdin.by_ref() {
        if line.is_err() {
            break;
        }
    }
    drop(sockets);
}
