//! The binary as a user runs it: `account create`, and `serve` stopped by SIGTERM.

use crate::common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_switchboard");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_create_prints_keys_that_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args([
            "account",
            "create",
            "--name",
            "Acme",
            "--json",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let api_key = created["apiKey"].as_str().unwrap().to_string();
    assert!(created["accountId"].as_i64().is_some());
    assert!(created["publishableKey"]
        .as_str()
        .unwrap()
        .starts_with("sb_pub_"));

    let mut settings = test_settings(&dir);
    settings.demo = false;
    let server = switchboard_server::start(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", server.local_addr.port());
    // The key authenticates: the account has no bot named demo, which is the answer.
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/session"))
        .bearer_auth(&api_key)
        .json(&json!({"agentId": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PDP_NOT_FOUND");
    assert!(
        !dir.path().join("demo.json").exists(),
        "an existing store gets no demo"
    );
    server.shutdown().await;

    let refused = Command::new(BINARY)
        .args([
            "account",
            "create",
            "--name",
            "X",
            "--database-url",
            "mysql://nowhere/db",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unsupported database URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_create_works_on_postgres_and_a_server_there_accepts_the_key() {
    let database = switchboard_store::testing::TempDatabase::create().await;
    let output = Command::new(BINARY)
        .args(["account", "create", "--name", "Acme", "--json"])
        .args(["--database-url", &database.url])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&dir);
    settings.database_url = Some(database.url.clone());
    let server = switchboard_server::start(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", server.local_addr.port());
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/inboxes"))
        .bearer_auth(created["apiKey"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_demo_json_and_sigterm_closes_sockets_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let child = Command::new(BINARY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--node-id",
            "edge-7",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SWITCHBOARD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(format!("http://{base}/healthz")).await {
            ready = response.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the server did not come up");
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json")).unwrap())
            .unwrap();
    for field in [
        "accountId",
        "apiKey",
        "publishableKey",
        "inboxId",
        "inboxIdentifier",
    ] {
        assert!(!demo[field].is_null(), "demo.json lacks {field}");
    }
    assert_eq!(demo["botAgentId"], "demo");
    assert!(demo["agent"]["accessToken"].as_str().is_some());
    assert!(demo["agent"]["pubsubToken"].as_str().is_some());

    let response = reqwest::Client::new()
        .post(format!("http://{base}/api/v1/session"))
        .bearer_auth(demo["publishableKey"].as_str().unwrap())
        .json(&json!({"agentId": "demo"}))
        .send()
        .await
        .unwrap();
    let session: Value = response.json().await.unwrap();
    let mut ws = Ws::connect(&format!(
        "ws://{base}/ws/session/{}?token={}",
        session["sessionId"].as_str().unwrap(),
        session["token"].as_str().unwrap()
    ))
    .await;
    ws.say("hi", None).await;
    ws.bot_turn().await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ws.closed().await, 1001);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    // Every log line (the rest is the start-up banner for people) is JSON naming the node.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logs: Vec<Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("{line}")))
        .collect();
    assert!(logs.len() >= 2, "{stderr}");
    for line in logs {
        assert_eq!(line["node"], "edge-7", "{line}");
    }
}

#[test]
fn serve_refuses_a_postgres_pool_of_no_connections() {
    let output = Command::new(BINARY)
        .args(["serve", "--database-pool-size", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("--database-pool-size"), "{said}");
}
