//! Shared helpers: a server on a temporary data directory, sessions, and a WebSocket client
//! that reads JSON frames and close codes.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use switchboard_server::{RunningServer, Settings};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct TestServer {
    pub server: Option<RunningServer>,
    /// Kept so the data directory lives as long as the server (a second server on the same
    /// directory holds a handle of the first's).
    pub _dir: std::sync::Arc<TempDir>,
    pub demo: Value,
    pub base: String,
    pub settings: Settings,
}

/// Settings for tests: an ephemeral port, and the given data directory.
pub fn test_settings(dir: &TempDir) -> Settings {
    let mut settings = Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.shutdown_grace = Duration::from_secs(5);
    settings
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
        TestServer::start_in(std::sync::Arc::new(tempfile::tempdir().unwrap()), adjust).await
    }

    /// A server on `dir`, which may already hold another server's store (and its demo.json).
    pub async fn start_in(
        dir: std::sync::Arc<TempDir>,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let mut settings = test_settings(&dir);
        adjust(&mut settings);
        let server = switchboard_server::start(settings.clone()).await.unwrap();
        let demo: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json")).unwrap())
                .unwrap();
        let base = format!("127.0.0.1:{}", server.local_addr.port());
        TestServer {
            server: Some(server),
            _dir: dir,
            demo,
            base,
            settings,
        }
    }

    /// A server running as another process at `base` (`HOST:PORT`), with its `demo.json`.
    pub fn remote(base: String, demo: Value) -> TestServer {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let settings = test_settings(&dir);
        TestServer {
            server: None,
            _dir: dir,
            demo,
            base,
            settings,
        }
    }

    pub fn engine(&self) -> &std::sync::Arc<switchboard_engine::Engine> {
        &self.server.as_ref().unwrap().engine
    }

    /// Stops the server gracefully and starts it again on the same data directory.
    pub async fn restart(&mut self) {
        self.server.take().unwrap().shutdown().await;
        let server = switchboard_server::start(self.settings.clone())
            .await
            .unwrap();
        self.base = format!("127.0.0.1:{}", server.local_addr.port());
        self.server = Some(server);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.base, path)
    }

    pub fn publishable_key(&self) -> String {
        self.demo["publishableKey"].as_str().unwrap().to_string()
    }

    pub fn api_key(&self) -> String {
        self.demo["apiKey"].as_str().unwrap().to_string()
    }

    /// POSTs JSON with a bearer key; returns the status and the JSON body.
    pub async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        let client = reqwest::Client::new();
        let response = client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends JSON with any method and a bearer key; returns the status and the JSON body.
    pub async fn post_method(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Value,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let response = client
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn create_session_for(&self, agent_id: &str) -> Session {
        let (status, body) = self
            .post(
                "/api/v1/session",
                &self.publishable_key(),
                json!({"agentId": agent_id, "visitor": {"name": "Ada"}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        Session {
            id: body["sessionId"].as_str().unwrap().to_string(),
            token: body["token"].as_str().unwrap().to_string(),
            conversation_id: body["conversationId"].as_i64().unwrap(),
        }
    }

    pub async fn create_session(&self) -> Session {
        self.create_session_for("demo").await
    }

    pub async fn end_session(&self, session: &Session) -> (u16, Value) {
        self.post(
            &format!("/api/v1/session/{}/end", session.id),
            &self.publishable_key(),
            json!({}),
        )
        .await
    }

    pub async fn connect(&self, path_and_query: &str) -> Ws {
        Ws::connect(&format!("ws://{}{}", self.base, path_and_query)).await
    }

    pub async fn connect_session(&self, session: &Session) -> Ws {
        self.connect(&format!(
            "/ws/session/{}?token={}",
            session.id, session.token
        ))
        .await
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub token: String,
    pub conversation_id: i64,
}

/// What a client reads next.
#[derive(Debug, PartialEq)]
pub enum Received {
    Frame(Value),
    Closed {
        code: u16,
        reason: String,
    },
    /// The connection ended without a close frame.
    Ended,
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How long a test waits for a frame before failing (real time; paused-time tests use
/// `recv_untimed`).
const WAIT: Duration = Duration::from_secs(20);

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Ws { stream }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.stream
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn send(&mut self, kind: &str, payload: Value) {
        self.send_json(json!({"type": kind, "payload": payload}))
            .await;
    }

    pub async fn recv_untimed(&mut self) -> Received {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Received::Frame(serde_json::from_str(text.as_str()).unwrap())
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(frame) => Received::Closed {
                            code: u16::from(frame.code),
                            reason: frame.reason.to_string(),
                        },
                        None => Received::Closed {
                            code: u16::from(CloseCode::Status),
                            reason: String::new(),
                        },
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Received::Ended,
            }
        }
    }

    pub async fn recv(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.recv_untimed())
            .await
            .expect("no frame arrived in time")
    }

    /// The next frame, which must be a JSON frame.
    pub async fn frame(&mut self) -> Value {
        match self.recv().await {
            Received::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame, which must be of type `kind`; returns its payload.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.frame().await;
        assert_eq!(frame["type"], kind, "unexpected frame {frame}");
        frame["payload"].clone()
    }

    /// Skips frames until one of type `kind`; returns its payload.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["type"] == kind {
                return frame["payload"].clone();
            }
        }
    }

    /// Reads until the close frame and returns its code (frames before it are skipped).
    pub async fn closed(&mut self) -> u16 {
        loop {
            match self.recv().await {
                Received::Frame(_) => continue,
                Received::Closed { code, .. } => return code,
                Received::Ended => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// Expects an error frame with `code`, then a close with `close_code`.
    pub async fn expect_refusal(&mut self, code: &str, close_code: u16) {
        let error = self.expect("error").await;
        assert_eq!(error["code"], code, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        match self.recv().await {
            Received::Closed { code, .. } => assert_eq!(code, close_code),
            other => panic!("expected close {close_code}, got {other:?}"),
        }
    }

    /// Sends a visitor message and returns the ack payload.
    pub async fn say(&mut self, text: &str, client_message_id: Option<&str>) -> Value {
        let mut payload = json!({"text": text});
        if let Some(id) = client_message_id {
            payload["clientMessageId"] = json!(id);
        }
        self.send("visitor_message", payload).await;
        self.expect("ack").await
    }

    /// Reads a bot turn: typing on, the frames of the reply, typing off. Returns the frames
    /// between the two typing indicators.
    pub async fn bot_turn(&mut self) -> Vec<Value> {
        let typing = self.expect("typing_indicator").await;
        assert_eq!(typing["isTyping"], true, "{typing}");
        let mut frames = Vec::new();
        loop {
            let frame = self.frame().await;
            if frame["type"] == "typing_indicator" {
                assert_eq!(frame["payload"]["isTyping"], false, "{frame}");
                return frames;
            }
            frames.push(frame);
        }
    }
}

/// Installs the pinned npm packages of `dir` (its lockfile) unless `packages` are there.
pub fn npm_ci_if_missing(dir: &std::path::Path, packages: &[&str]) {
    if packages
        .iter()
        .all(|package| dir.join("node_modules").join(package).exists())
    {
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("npm runs (Node.js and npm are part of the test setup)");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs `node --test` on `files` in `dir` with `env`; fails with the suite's output.
pub async fn run_node_tests(dir: std::path::PathBuf, files: &[&str], env: Vec<(String, String)>) {
    let mut args = vec!["--test".to_string(), "--test-concurrency=1".to_string()];
    args.extend(files.iter().map(|file| file.to_string()));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(&args)
            .current_dir(dir)
            .envs(env)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("# fail 0"),
        "the Node.js tests failed:\n{stdout}\n{stderr}"
    );
}

/// Runs a `node --test` suite in `tests/<dir>` against `server` (its address and demo
/// workspace in `SWITCHBOARD_BASE` and `SWITCHBOARD_DEMO`), installing its npm packages first
/// when they are missing.
pub async fn run_node_suite(server: &TestServer, dir: &str, file: &str, packages: &[&str]) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    npm_ci_if_missing(&dir, packages);
    let env = vec![
        (
            "SWITCHBOARD_BASE".to_string(),
            format!("http://{}", server.base),
        ),
        ("SWITCHBOARD_DEMO".to_string(), server.demo.to_string()),
    ];
    run_node_tests(dir, &[file], env).await;
}
