//! Raw clients for the Socket.IO and ActionCable dialects (frames as bytes on the wire, no
//! client library), and the public inbox API's contacts, for tests that send what no stock
//! client would.

use crate::common::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// What a raw socket reads next: a text frame, or the end of the connection.
#[derive(Debug)]
pub enum Read {
    Text(String),
    Closed(Option<u16>),
}

async fn read_text(ws: &mut RawWs, skip: impl Fn(&str) -> Option<&'static str>) -> Read {
    loop {
        let message = match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within the wait")
        {
            None | Some(Err(_)) => return Read::Closed(None),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) => {
                if let Some(answer) = skip(text.as_str()) {
                    let _ = ws.send(Message::Text(answer.into())).await;
                    continue;
                }
                if text.as_str().contains(r#""type":"ping""#) {
                    continue;
                }
                return Read::Text(text.to_string());
            }
            Message::Close(frame) => return Read::Closed(frame.map(|frame| frame.code.into())),
            _ => {}
        }
    }
}

/// A Socket.IO client speaking Engine.IO 4 over a WebSocket at `/socket`.
pub struct SocketIo {
    pub ws: RawWs,
}

impl SocketIo {
    /// Past the Engine.IO open packet, not yet connected to the namespace.
    pub async fn open(server: &TestServer) -> SocketIo {
        let url = format!("ws://{}/socket/?EIO=4&transport=websocket", server.base);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut socket = SocketIo { ws };
        match socket.read().await {
            Read::Text(open) => assert!(open.starts_with('0'), "{open}"),
            other => panic!("no open packet: {other:?}"),
        }
        socket
    }

    /// Opened and connected to the namespace with `auth`; the replay read.
    pub async fn connect(server: &TestServer, auth: Value) -> SocketIo {
        let mut socket = SocketIo::open(server).await;
        socket.send(&format!("40{auth}")).await;
        let connected = socket.text().await;
        assert!(connected.starts_with("40{\"sid\""), "{connected}");
        socket.event("message-replay").await;
        socket
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn emit(&mut self, event: &str, payload: Value) {
        self.send(&format!("42{}", json!([event, payload]))).await;
    }

    /// The next packet, answering Engine.IO pings.
    pub async fn read(&mut self) -> Read {
        read_text(&mut self.ws, |text| (text == "2").then_some("3")).await
    }

    pub async fn text(&mut self) -> String {
        match self.read().await {
            Read::Text(text) => text,
            Read::Closed(code) => panic!("closed ({code:?})"),
        }
    }

    /// The payload of the next event named `name`.
    pub async fn event(&mut self, name: &str) -> Value {
        loop {
            let text = self.text().await;
            if let Some(body) = text.strip_prefix("42") {
                let packet: Value = serde_json::from_str(body).unwrap();
                if packet[0] == name {
                    return packet[1].clone();
                }
            }
        }
    }

    /// Waits for the connection to end.
    pub async fn ended(&mut self) {
        while let Read::Text(_) = self.read().await {}
    }
}

/// An ActionCable client at `/cable` (`actioncable-v1-json`), past its welcome.
pub struct Cable {
    pub ws: RawWs,
}

impl Cable {
    pub async fn connect(server: &TestServer) -> Cable {
        let mut request = format!("ws://{}/cable", server.base)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "actioncable-v1-json".parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut cable = Cable { ws };
        assert_eq!(cable.frame().await["type"], "welcome");
        cable
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn command(&mut self, command: &str, identifier: &Value, data: Option<Value>) {
        let mut frame = json!({"command": command, "identifier": identifier.to_string()});
        if let Some(data) = data {
            frame["data"] = json!(data.to_string());
        }
        self.send(&frame.to_string()).await;
    }

    /// Subscribes and returns the answer's type (`confirm_subscription` or
    /// `reject_subscription`).
    pub async fn subscribe(&mut self, identifier: &Value) -> String {
        self.command("subscribe", identifier, None).await;
        loop {
            let frame = self.frame().await;
            if let Some(kind) = frame["type"].as_str() {
                if kind.ends_with("_subscription") {
                    return kind.to_string();
                }
            }
        }
    }

    /// The next frame that is not a ping.
    pub async fn read(&mut self) -> Read {
        read_text(&mut self.ws, |_| None).await
    }

    pub async fn frame(&mut self) -> Value {
        match self.read().await {
            Read::Text(text) => serde_json::from_str(&text).unwrap(),
            Read::Closed(code) => panic!("closed ({code:?})"),
        }
    }

    /// The next broadcast whose `message.event` is `event`, as its `message.data`.
    pub async fn event(&mut self, event: &str) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["message"]["event"] == event {
                return frame["message"]["data"].clone();
            }
        }
    }

    /// Reads until nothing arrives for `quiet`; returns what did.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(quiet, self.ws.next()).await
        {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
            if frame["type"] != "ping" {
                frames.push(frame);
            }
        }
        frames
    }
}

/// A contact of the demo inbox made through the public API, with a conversation.
pub struct Contact {
    pub pubsub_token: String,
    pub conversation_id: i64,
    pub base: String,
}

impl Contact {
    pub async fn create(server: &TestServer) -> Contact {
        let inbox = server.demo["inboxIdentifier"].as_str().unwrap();
        let base = format!("/public/api/v1/inboxes/{inbox}/contacts");
        let (status, contact) = server.post(&base, "", json!({"name": "Grace"})).await;
        assert_eq!(status, 200, "{contact}");
        let source_id = contact["source_id"].as_str().unwrap().to_string();
        let (status, conversation) = server
            .post(&format!("{base}/{source_id}/conversations"), "", json!({}))
            .await;
        assert_eq!(status, 200, "{conversation}");
        Contact {
            pubsub_token: contact["pubsub_token"].as_str().unwrap().to_string(),
            conversation_id: conversation["id"].as_i64().unwrap(),
            base: format!("{base}/{source_id}"),
        }
    }

    pub fn messages_path(&self) -> String {
        format!(
            "{}/conversations/{}/messages",
            self.base, self.conversation_id
        )
    }

    pub fn identifier(&self) -> Value {
        json!({"channel": "RoomChannel", "pubsub_token": self.pubsub_token})
    }
}
