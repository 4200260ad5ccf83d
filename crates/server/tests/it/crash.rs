//! SIGKILL at an arbitrary moment loses no acknowledged message and corrupts nothing: the real
//! binary is killed mid-stream, restarted on the same data, and every acknowledged message is
//! there, with gapless seqs and no duplicate.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_switchboard");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process that is killed when dropped, so a failing test leaves none behind.
pub struct ServerProcess(Child);

impl ServerProcess {
    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn spawn_server(dir: &Path, port: u16) -> ServerProcess {
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        "[rate_limits.visitor]\n[rate_limits.agent]\n[rate_limits.integration]\n",
    )
    .unwrap();
    let mut child = Command::new(BINARY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok()
        {
            return ServerProcess(child);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not come up");
}

/// Every stored message of the conversation, paging by seq.
pub async fn all_messages(base: &str, api_key: &str, conversation_id: i64) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let after = all.last().map_or(0, |m| m["seq"].as_i64().unwrap());
        let page: Vec<Value> = reqwest::Client::new()
            .get(format!(
                "http://{base}/api/v1/conversations/{conversation_id}/messages?afterSeq={after}&limit=500"
            ))
            .bearer_auth(api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = spawn_server(dir.path(), port).await;
    let base = format!("127.0.0.1:{port}");
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json")).unwrap())
            .unwrap();
    let api_key = demo["apiKey"].as_str().unwrap().to_string();
    let session: Value = reqwest::Client::new()
        .post(format!("http://{base}/api/v1/session"))
        .bearer_auth(&api_key)
        .json(&json!({"agentId": "demo"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "ws://{base}/ws/session/{}?token={}",
        session["sessionId"].as_str().unwrap(),
        session["token"].as_str().unwrap()
    );
    let conversation_id = session["conversationId"].as_i64().unwrap();

    // Send without waiting, as fast as the socket takes them; kill the server once some
    // acknowledgements are in, while others are still in flight.
    let mut ws = Ws::connect(&url).await;
    let total = 400;
    for n in 0..total {
        ws.send(
            "visitor_message",
            json!({"text": format!("m{n}"), "clientMessageId": format!("c{n}")}),
        )
        .await;
    }
    let mut acked: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    while acked.len() < 50 {
        let frame = ws.frame().await;
        if frame["type"] == "ack" {
            let ack = &frame["payload"];
            acked.insert(
                ack["clientMessageId"].as_str().unwrap().to_string(),
                (ack["id"].as_i64().unwrap(), ack["seq"].as_i64().unwrap()),
            );
        }
    }
    server.kill(); // SIGKILL
                   // Whatever acks made it out before the socket died count too.
    loop {
        match tokio::time::timeout(Duration::from_secs(2), ws.recv_untimed()).await {
            Ok(Received::Frame(frame)) if frame["type"] == "ack" => {
                let ack = &frame["payload"];
                acked.insert(
                    ack["clientMessageId"].as_str().unwrap().to_string(),
                    (ack["id"].as_i64().unwrap(), ack["seq"].as_i64().unwrap()),
                );
            }
            Ok(Received::Frame(_)) => continue,
            _ => break,
        }
    }

    // Restart on the same data: every acknowledged message is there as acknowledged.
    let mut server = spawn_server(dir.path(), port).await;
    let stored = all_messages(&base, &api_key, conversation_id).await;
    let by_client_id: BTreeMap<String, (i64, i64)> = stored
        .iter()
        .filter(|m| m["sender"]["type"] == "contact")
        .map(|m| {
            (
                m["clientMessageId"].as_str().unwrap().to_string(),
                (m["id"].as_i64().unwrap(), m["seq"].as_i64().unwrap()),
            )
        })
        .collect();
    for (client_id, stored_as) in &acked {
        assert_eq!(
            by_client_id.get(client_id),
            Some(stored_as),
            "acknowledged {client_id} lost"
        );
    }
    let seqs: Vec<i64> = stored.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "gapless seqs"
    );

    // The client's outbox re-sends everything without an ack: nothing is stored twice.
    let mut ws = Ws::connect(&url).await;
    for n in 0..total {
        let client_id = format!("c{n}");
        if !acked.contains_key(&client_id) {
            ws.send(
                "visitor_message",
                json!({"text": format!("m{n}"), "clientMessageId": client_id}),
            )
            .await;
        }
    }
    let mut acks = 0;
    while acks < total - acked.len() {
        if ws.frame().await["type"] == "ack" {
            acks += 1;
        }
    }
    let stored = all_messages(&base, &api_key, conversation_id).await;
    let visitor_ids: Vec<&str> = stored
        .iter()
        .filter(|m| m["sender"]["type"] == "contact")
        .map(|m| m["clientMessageId"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = visitor_ids.iter().copied().collect();
    assert_eq!(visitor_ids.len(), total, "every message once");
    assert_eq!(unique.len(), total);
    let seqs: Vec<i64> = stored.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    server.kill();
}
