//! Several nodes as real processes on one PostgreSQL database and one Redis bus: a visitor on
//! one node and an agent on another hear each other; a node killed with SIGKILL loses nothing
//! (its visitor resumes on the other node with exactly what it missed).

use crate::common::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchboard_bus::testing::{free_port, unique_prefix};
use switchboard_store::testing::TempDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_switchboard");

/// One `switchboard serve` process.
pub struct Node {
    child: Option<Child>,
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
        let mut command = Command::new(BINARY);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--node-id", id, "--database-url", database_url])
            .args(["--bus-url", bus_url])
            .arg("--data-dir")
            .arg(data_dir.join(id))
            .env("SWITCHBOARD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !first {
            command.arg("--no-demo");
        }
        let child = command.spawn().unwrap();
        let base = format!("127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..400 {
            if let Ok(response) = reqwest::get(format!("http://{base}/readyz")).await {
                if response.status() == 200 {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(ready, "node {id} did not become ready");
        let demo_path = data_dir
            .join(if first { id } else { "a" })
            .join("demo.json");
        let demo: Value =
            serde_json::from_str(&std::fs::read_to_string(demo_path).unwrap()).unwrap();
        Node {
            child: Some(child),
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
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
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
    let database = TempDatabase::create().await;
    let bus = format!("redis://127.0.0.1:6379/?prefix={}", unique_prefix());
    let dir = tempfile::tempdir().unwrap();
    let mut a = Node::start("a", &database.url, &bus, dir.path(), true).await;
    let b = Node::start("b", &database.url, &bus, dir.path(), false).await;
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
