//! The Socket.IO dialect: the stock npm `socket.io-client` running seed 000's code against the
//! real server (`tests/socketio/seed000.test.mjs`), and the exact frames on the wire.

use crate::common::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_socket_io_client_runs_the_documents_code() {
    let server = TestServer::start().await;
    crate::common::run_node_suite(
        &server,
        "socketio",
        "seed000.test.mjs",
        &["socket.io-client", "ws"],
    )
    .await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw Engine.IO 4 WebSocket connection to `/socket`, past its open packet.
async fn raw_socket(server: &TestServer) -> (Ws, Value) {
    let url = format!("ws://{}/socket/?EIO=4&transport=websocket", server.base);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = next_text(&mut ws).await;
    let handshake: Value = serde_json::from_str(open.strip_prefix('0').expect("open packet"))
        .expect("the open packet carries JSON");
    (ws, handshake)
}

/// The next text frame, skipping Engine.IO pings (answered).
async fn next_text(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) if text.as_str() == "2" => {
                ws.send(Message::Text("3".into())).await.unwrap();
            }
            Message::Text(text) => return text.to_string(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// The next `42` event packet named `event`, as its payload.
async fn next_event(ws: &mut Ws, event: &str) -> Value {
    loop {
        let text = next_text(ws).await;
        if let Some(body) = text.strip_prefix("42") {
            let packet: Value = serde_json::from_str(body).unwrap();
            if packet[0] == event {
                return packet[1].clone();
            }
        }
    }
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

#[tokio::test]
async fn the_handshake_names_its_timings_and_refuses_bad_tokens_with_connect_error() {
    let server = TestServer::start().await;
    let (mut ws, handshake) = raw_socket(&server).await;
    assert_eq!(handshake["pingInterval"], 25_000);
    assert_eq!(handshake["pingTimeout"], 20_000);
    assert!(handshake["sid"].is_string());
    send(&mut ws, r#"40{"token":"nope"}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"44{"message":"Token is invalid or expired"}"#
    );
    send(&mut ws, "40").await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"44{"message":"No token provided"}"#
    );
    let session = server.create_session().await;
    send(
        &mut ws,
        &format!(
            "40{}",
            json!({"token": session.token, "conversationId": "conv_x"})
        ),
    )
    .await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"44{"message":"conversationId is missing or not a conversation id"}"#
    );
}

#[tokio::test]
async fn events_are_encoded_exactly_as_documented() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let conversation_id = session.conversation_id;
    let (mut visitor, _) = raw_socket(&server).await;
    send(
        &mut visitor,
        &format!(
            "40{}",
            json!({"token": session.token, "conversationId": conversation_id})
        ),
    )
    .await;
    let connected = next_text(&mut visitor).await;
    assert!(connected.starts_with(r#"40{"sid":""#), "{connected}");
    assert_eq!(next_text(&mut visitor).await, r#"42["message-replay",[]]"#);

    // The agent, on Socket.IO too, watching the same conversation.
    let (mut agent, _) = raw_socket(&server).await;
    let agent_token = server.demo["agent"]["accessToken"].as_str().unwrap();
    send(
        &mut agent,
        &format!(
            "40{}",
            json!({"token": agent_token, "conversationId": conversation_id})
        ),
    )
    .await;
    // On joining, staff get the replay and the contact's connection status, in either order.
    let (mut replayed, mut presence) = (false, Value::Null);
    while !replayed || presence.is_null() {
        let text = next_text(&mut agent).await;
        let Some(body) = text.strip_prefix("42") else {
            continue;
        };
        let packet: Value = serde_json::from_str(body).unwrap();
        match packet[0].as_str() {
            Some("message-replay") => replayed = true,
            Some("presence") => presence = packet[1].clone(),
            _ => {}
        }
    }
    assert_eq!(presence["status"], "online");

    send(
        &mut visitor,
        &format!(r#"42["typing-start",{{"conversationId":"{conversation_id}"}}]"#),
    )
    .await;
    let contact = presence["userId"].as_str().unwrap().to_string();
    loop {
        let text = next_text(&mut agent).await;
        if text.contains("\"typing\"") {
            assert_eq!(
                text,
                format!(
                    r#"42["typing",{{"conversationId":{conversation_id},"isTyping":true,"userId":"{contact}"}}]"#
                )
            );
            break;
        }
    }

    // send-message with an acknowledgement id: the ack packet carries the stored message.
    send(
        &mut visitor,
        &format!(
            r#"427["send-message",{{"conversationId":{conversation_id},"content":"hi","clientMessageId":"m1"}}]"#
        ),
    )
    .await;
    let ack = loop {
        let text = next_text(&mut visitor).await;
        if let Some(body) = text.strip_prefix("437") {
            break serde_json::from_str::<Value>(body).unwrap();
        }
    };
    assert_eq!(ack[0]["content"], "hi");
    assert_eq!(ack[0]["clientMessageId"], "m1");
    assert_eq!(ack[0]["seq"], 1);

    // A payload that is not an object: an error event and a refused acknowledgement.
    send(&mut visitor, r#"428["send-message","hi"]"#).await;
    let error = next_event(&mut visitor, "error").await;
    assert_eq!(
        error,
        json!({"code": "INVALID_JSON", "message": "conversationId is missing or not a conversation id"})
    );
}

#[tokio::test]
async fn a_malformed_packet_closes_only_its_own_connection() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let auth = json!({"token": session.token, "conversationId": session.conversation_id});
    let (mut healthy, _) = raw_socket(&server).await;
    send(&mut healthy, &format!("40{auth}")).await;
    next_event(&mut healthy, "message-replay").await;

    let (mut broken, _) = raw_socket(&server).await;
    send(&mut broken, &format!("40{auth}")).await;
    next_event(&mut broken, "message-replay").await;
    send(&mut broken, r#"42["send-message",{"#).await;
    send(&mut broken, "99 not a packet").await;

    // The healthy connection still works, and the server still answers.
    send(
        &mut healthy,
        &format!(
            r#"421["send-message",{{"conversationId":{},"content":"still here"}}]"#,
            session.conversation_id
        ),
    )
    .await;
    loop {
        let text = next_text(&mut healthy).await;
        if text.starts_with("431") {
            assert!(text.contains("still here"));
            break;
        }
    }
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}
