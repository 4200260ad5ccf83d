//! Several nodes as real processes on one PostgreSQL database and one Redis bus: a visitor on
//! one node and an agent on another hear each other; a node killed with SIGKILL loses nothing
//! (its visitor resumes on the other node with exactly what it missed); presence is the same
//! from every node and a dead node's principals turn offline within the window; three nodes
//! restarted one at a time under traffic lose nothing.

use crate::common::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchboard_bus::testing::{free_port, unique_prefix};
use switchboard_store::testing::TempDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_switchboard");

/// How long a silent node's connections still count in these tests.
const PRESENCE_WINDOW_MS: u64 = 1_500;

/// One `switchboard serve` process.
pub struct Node {
    child: Option<Child>,
    command: Vec<String>,
    pub server: TestServer,
}

impl Node {
    /// Starts a node and waits until it is ready; the first node of a cluster creates the demo
    /// workspace, the others find it in the shared store (and read `demo.json` from `demo_dir`).
    pub async fn start(
        id: &str,
        database_url: &str,
        bus_url: &str,
        data_dir: &std::path::Path,
        first: bool,
    ) -> Node {
        let port = free_port();
        let mut command: Vec<String> = [
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--node-id",
            id,
            "--database-url",
            database_url,
            "--bus-url",
            bus_url,
            "--presence-window-ms",
            &PRESENCE_WINDOW_MS.to_string(),
            "--data-dir",
        ]
        .map(String::from)
        .to_vec();
        command.push(data_dir.join(id).display().to_string());
        // The nodes share one uploads directory, as a deployment shares a network volume.
        command.push("--uploads-dir".into());
        command.push(data_dir.join("uploads").display().to_string());
        if !first {
            command.push("--no-demo".into());
        }
        let demo_path = data_dir
            .join(if first { id } else { "a" })
            .join("demo.json");
        let base = format!("127.0.0.1:{port}");
        let child = spawn_ready(&command, &base, id).await;
        let demo: Value =
            serde_json::from_str(&std::fs::read_to_string(demo_path).unwrap()).unwrap();
        Node {
            child: Some(child),
            command,
            server: TestServer::remote(base, demo),
        }
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as an orchestrator stops a node: it drains and exits by itself.
    pub async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            let exited = tokio::task::spawn_blocking(move || child.wait().unwrap())
                .await
                .unwrap();
            assert!(
                exited.success(),
                "a node stopped by SIGTERM exits cleanly: {exited}"
            );
        }
    }

    /// Starts the node again with the same settings and address.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the node first");
        let id = self.command[4].clone();
        self.child = Some(spawn_ready(&self.command, &self.server.base, &id).await);
    }
}

async fn spawn_ready(command: &[String], base: &str, id: &str) -> Child {
    let mut child = Command::new(BINARY)
        .args(command)
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if let Ok(response) = reqwest::get(format!("http://{base}/readyz")).await {
            if response.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("node {id} did not become ready");
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a cluster of test nodes shares: a fresh database, a bus prefix, a data directory.
struct Shared {
    database: TempDatabase,
    bus: String,
    dir: tempfile::TempDir,
}

impl Shared {
    /// PostgreSQL and Redis (the bus, and presence with it).
    async fn new() -> Shared {
        Shared::with_bus(format!(
            "redis://127.0.0.1:6379/?prefix={}",
            unique_prefix()
        ))
        .await
    }

    /// PostgreSQL and NATS (the bus; presence then in PostgreSQL).
    async fn on_nats() -> Shared {
        Shared::with_bus(format!("nats://127.0.0.1:4222?prefix={}", unique_prefix())).await
    }

    async fn with_bus(bus: String) -> Shared {
        Shared {
            database: TempDatabase::create().await,
            bus,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    async fn node(&self, id: &str, first: bool) -> Node {
        Node::start(id, &self.database.url, &self.bus, self.dir.path(), first).await
    }
}

/// Nodes `a` (which created the demo workspace) and `b`, and what they share.
async fn two_nodes() -> (Shared, Node, Node) {
    two_nodes_on(Shared::new().await).await
}

async fn two_nodes_on(shared: Shared) -> (Shared, Node, Node) {
    let a = shared.node("a", true).await;
    let b = shared.node("b", false).await;
    (shared, a, b)
}

/// Reads frames until one whose text contains `needle`.
async fn until_text(ws: &mut Ws, needle: &str) -> Value {
    loop {
        let frame = ws.frame().await;
        if frame.to_string().contains(needle) {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_and_an_agent_on_two_nodes_and_a_node_killed_without_loss() {
    let (_shared, mut a, b) = two_nodes().await;
    let agent = a.server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();

    // The visitor starts on node a; the agent watches the conversation from node b.
    let session = a.server.create_session().await;
    let mut visitor = a.server.connect_session(&session).await;
    let mut agent_socket = b.server.connect_chat(&agent, session.conversation_id).await;
    visitor.say("hello from node a", Some("v-1")).await;
    until_text(&mut agent_socket, "hello from node a").await;

    // The agent answers on node b (taking the conversation over from the bot).
    agent_socket
        .send(
            "message",
            json!({"content": "hello from node b", "clientMessageId": "a-1"}),
        )
        .await;
    let answer = until_text(&mut visitor, "hello from node b").await;
    let seen_seq = answer["payload"]["seq"].as_i64().unwrap();

    // Typing crosses nodes too.
    visitor.send("typing", json!({"isTyping": true})).await;
    loop {
        let frame = agent_socket.frame().await;
        if frame["type"] == "conversation.typing_on" && frame["payload"]["user"]["type"] != "bot" {
            break;
        }
    }

    // Node a dies while the agent keeps writing on node b.
    a.kill();
    for n in 1..=5 {
        agent_socket
            .send(
                "message",
                json!({"content": format!("missed {n}"), "clientMessageId": format!("m-{n}")}),
            )
            .await;
        until_text(&mut agent_socket, &format!("missed {n}")).await;
    }
    // The visitor reconnects to node b, stating what it has: it gets exactly what it missed.
    let mut resumed = b
        .server
        .connect(&format!(
            "/ws/session/{}?token={}&lastSeq={seen_seq}",
            session.id, session.token
        ))
        .await;
    let mut missed = Vec::new();
    while missed.len() < 5 {
        let frame = resumed.frame().await;
        let text = frame["payload"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if text.starts_with("missed") || text.starts_with("hello") {
            missed.push(text);
        }
    }
    assert_eq!(
        missed,
        (1..=5).map(|n| format!("missed {n}")).collect::<Vec<_>>()
    );
}

/// Reads a managed socket until a `presence.update` says `contact` is `status`.
async fn contact_status(ws: &mut Ws, contact: &str, status: &str) {
    loop {
        let frame = ws.frame().await;
        if frame["type"] == "presence.update" && frame["payload"]["contacts"][contact] == status {
            return;
        }
    }
}

async fn account_status(node: &Node) -> String {
    let response = reqwest::get(node.server.url(&format!(
        "/public/api/v1/inboxes/{}",
        node.server.demo["inboxIdentifier"].as_str().unwrap()
    )))
    .await
    .unwrap();
    let body: Value = response.json().await.unwrap();
    body["account_status"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_the_same_from_every_node_and_a_dead_nodes_principals_go_offline() {
    presence_across_two_nodes(two_nodes().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_without_redis_presence_is_kept_in_postgres_and_shared() {
    presence_across_two_nodes(two_nodes_on(Shared::on_nats().await).await).await;
}

async fn presence_across_two_nodes((_shared, mut a, b): (Shared, Node, Node)) {
    let agent = a.server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        account_status(&a).await,
        "offline",
        "no agent is connected yet"
    );

    // The agent connects to node b; node a sees the account online.
    let ticket = b.server.ticket(&agent).await;
    let mut notifications = b
        .server
        .connect(&format!("/ws/notifications?ticket={ticket}"))
        .await;
    // Its first frame is its own presence: the connection is counted.
    let first = notifications.frame().await;
    assert_eq!(first["type"], "presence.update", "{first}");
    assert_eq!(account_status(&a).await, "online");

    // A visitor connects to node a; the agent on node b sees it come online.
    let session = a.server.create_session().await;
    let mut visitor = a.server.connect_session(&session).await;
    visitor.say("hi", None).await;
    let (status, conversation) = b
        .server
        .get(
            &format!("/api/v1/conversations/{}", session.conversation_id),
            &agent,
        )
        .await;
    assert_eq!(status, 200, "{conversation}");
    let contact = conversation["contactId"].to_string();
    contact_status(&mut notifications, &contact, "online").await;

    // Node a dies without a word: within the window, node b announces the visitor offline.
    let killed_at = std::time::Instant::now();
    a.kill();
    contact_status(&mut notifications, &contact, "offline").await;
    let took = killed_at.elapsed();
    eprintln!("a dead node's visitor was offline after {took:?} (window {PRESENCE_WINDOW_MS} ms)");
    assert!(
        took < Duration::from_millis(PRESENCE_WINDOW_MS * 4),
        "offline after {took:?}, window {PRESENCE_WINDOW_MS} ms"
    );
    // The agent, whose node lives, is still online.
    let (status, agents) = b.server.get("/api/v1/agents", &b.server.api_key()).await;
    assert_eq!(status, 200, "{agents}");
    assert_eq!(agents[0]["presence"], "online", "{agents}");
}

/// Sends `bytes` as an upload's file (multipart, field `file`) to `node`.
async fn send_file(node: &Node, token: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "switchboard-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = reqwest::Client::new()
        .post(node.server.url(&format!("/api/v1/uploads/{token}/file")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_begun_on_one_node_is_sent_and_finished_on_others() {
    let (_shared, a, b) = two_nodes().await;
    let session = a.server.create_session().await;
    let mut visitor = a.server.connect_session(&session).await;
    let agent = a.server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let uploads = "/api/v1/uploads";

    // Begun on node a, the file sent to node b.
    let (status, begun) = a
        .server
        .post(
            uploads,
            &agent,
            json!({"conversationId": session.conversation_id}),
        )
        .await;
    assert_eq!(status, 201, "{begun}");
    let token = begun["token"].as_str().unwrap().to_string();
    let (status, received) = send_file(&b, &token, "notes.txt", b"kept once").await;
    assert_eq!(status, 201, "{received}");
    // The URL was used on node b: node a knows.
    let (status, again) = send_file(&a, &token, "notes.txt", b"twice?").await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "UPLOAD_USED", "{again}");

    // Finished on both nodes at once: one message, and both answer with it.
    let finish = format!("{uploads}/{token}/finish");
    let (on_a, on_b) = tokio::join!(
        a.server.post(&finish, &agent, json!({})),
        b.server.post(&finish, &agent, json!({}))
    );
    assert_eq!((on_a.0, on_b.0), (201, 201), "{} / {}", on_a.1, on_b.1);
    assert_eq!(on_a.1["id"], on_b.1["id"]);
    let frame = until_text(&mut visitor, "notes.txt").await;
    assert_eq!(frame["payload"]["seq"], on_a.1["seq"], "{frame}");
    let (status, stored) = b
        .server
        .get(
            &format!("/api/v1/conversations/{}/messages", session.conversation_id),
            &agent,
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    let files = stored
        .to_string()
        .matches("\"content\":\"notes.txt\"")
        .count();
    assert_eq!(files, 1, "stored once: {stored}");
    // Afterwards the token is known to no node.
    let (status, late) = b.server.post(&finish, &agent, json!({})).await;
    assert_eq!(status, 404, "{late}");

    // The file is downloaded from the node that did not receive it.
    let url = on_a.1["contentAttributes"]["attachment"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", on_a.1))
        .to_string();
    let response = reqwest::Client::new()
        .get(a.server.url(&url))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"kept once");
}

/// A visitor that follows its conversation across node restarts: whenever its node goes away
/// it reconnects to another live one, stating the last seq it has.
async fn follow(
    nodes: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
    demo: Value,
    session: Session,
    expected: usize,
) -> (Vec<String>, usize) {
    let mut texts: Vec<String> = Vec::new();
    let mut last_seq = 0;
    let mut reconnects = 0;
    while texts.len() < expected {
        let base = loop {
            let up = nodes
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, up)| *up)
                .map(|(base, _)| base.clone())
                .nth(reconnects % 2);
            if let Some(base) = up {
                break base;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        reconnects += 1;
        let server = TestServer::remote(base, demo.clone());
        let url = format!(
            "ws://{}/ws/session/{}?token={}&lastSeq={last_seq}",
            server.base, session.id, session.token
        );
        let Ok((stream, _)) = tokio_tungstenite::connect_async(&url).await else {
            continue;
        };
        let mut ws = Ws { stream };
        while let Received::Frame(frame) = ws.recv().await {
            let Some(seq) = frame["payload"]["seq"].as_i64() else {
                continue;
            };
            // Resuming from `lastSeq` replays only what came after it.
            assert!(seq > last_seq, "seq {seq} arrived again after {last_seq}");
            last_seq = seq;
            if let Some(text) = frame["payload"]["text"].as_str() {
                if text.starts_with("traffic ") {
                    texts.push(text.to_string());
                }
            }
            if texts.len() == expected {
                break;
            }
        }
    }
    (texts, reconnects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_three_nodes_under_traffic_loses_nothing() {
    const MESSAGES: usize = 90;
    let shared = Shared::new().await;
    let mut nodes = vec![shared.node("a", true).await];
    for id in ["b", "c"] {
        nodes.push(shared.node(id, false).await);
    }
    let demo = nodes[0].server.demo.clone();
    let agent = demo["agent"]["accessToken"].as_str().unwrap().to_string();
    let up = std::sync::Arc::new(std::sync::Mutex::new(
        nodes
            .iter()
            .map(|node| (node.server.base.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let session = nodes[0].server.create_session().await;
    let conversation = session.conversation_id;
    let visitor = tokio::spawn(follow(up.clone(), demo.clone(), session, MESSAGES));

    // The agent writes steadily through whichever nodes are up, retrying a refused request on
    // another node with the same client message id.
    let writer_nodes = up.clone();
    let writer_demo = demo.clone();
    let writer = tokio::spawn(async move {
        for n in 0..MESSAGES {
            let mut attempt = 0;
            loop {
                let base = {
                    let nodes = writer_nodes.lock().unwrap();
                    let live: Vec<String> = nodes
                        .iter()
                        .filter(|(_, up)| *up)
                        .map(|(base, _)| base.clone())
                        .collect();
                    live[(n + attempt) % live.len()].clone()
                };
                let server = TestServer::remote(base, writer_demo.clone());
                let sent = reqwest::Client::new()
                    .post(server.url(&format!("/api/v1/conversations/{conversation}/messages")))
                    .bearer_auth(&agent)
                    .json(&json!({"content": format!("traffic {n}"), "clientMessageId": format!("t-{n}")}))
                    .send()
                    .await;
                if matches!(&sent, Ok(response) if response.status().is_success()) {
                    break;
                }
                attempt += 1;
                assert!(attempt < 200, "message {n} could not be sent: {sent:?}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });

    // One node at a time: taken out of rotation, SIGTERMed, started again, put back.
    for (index, node) in nodes.iter_mut().enumerate() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        up.lock().unwrap()[index].1 = false;
        node.terminate().await;
        node.restart().await;
        up.lock().unwrap()[index].1 = true;
    }
    writer.await.unwrap();
    let (received, connections) = tokio::time::timeout(Duration::from_secs(60), visitor)
        .await
        .expect("the visitor received every message")
        .unwrap();
    assert!(
        connections >= 2,
        "the visitor's node went away under it at least once"
    );
    let expected: Vec<String> = (0..MESSAGES).map(|n| format!("traffic {n}")).collect();
    assert_eq!(received, expected, "every message once, in order");

    // And the store has each exactly once.
    let (status, messages) = nodes[1]
        .server
        .get(
            &format!("/api/v1/conversations/{conversation}/messages?limit=500"),
            demo["agent"]["accessToken"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    let stored: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|message| message["content"].as_str())
        .filter(|text| text.starts_with("traffic "))
        .collect();
    assert_eq!(stored, expected);
}
