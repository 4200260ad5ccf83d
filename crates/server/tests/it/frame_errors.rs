//! Every malformed frame gets its documented error, and the connection stays open unless the
//! spec says it closes.

use crate::common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn still_open(ws: &mut Ws) {
    ws.send("heartbeat", json!({})).await;
    ws.expect("pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_answered_and_the_socket_stays_open() {
    let server = TestServer::start_with(|settings| {
        settings.engine.max_message_bytes = 1000;
    })
    .await;
    let session = server.create_session().await;
    let mut ws = server.connect_session(&session).await;
    // A bystander: another visitor, connected throughout.
    let other_session = server.create_session().await;
    let mut bystander = server.connect_session(&other_session).await;

    let cases: &[(&str, &str)] = &[
        ("this is not json", "INVALID_JSON"),
        ("[]", "INVALID_JSON"),
        ("{\"payload\":{}}", "INVALID_JSON"),
        (
            "{\"type\":\"visitor_message\",\"payload\":\"text\"}",
            "INVALID_JSON",
        ),
        (
            "{\"type\":\"visitor_message\",\"payload\":{\"text\":42}}",
            "INVALID_JSON",
        ),
        ("{\"type\":\"explode\",\"payload\":{}}", "UNKNOWN_TYPE"),
        (
            "{\"type\":\"visitor_message\",\"payload\":{\"text\":\"\"}}",
            "EMPTY_MESSAGE",
        ),
        (
            "{\"type\":\"visitor_message\",\"payload\":{\"text\":\"   \"}}",
            "EMPTY_MESSAGE",
        ),
        (
            "{\"type\":\"visitor_message\",\"payload\":{}}",
            "EMPTY_MESSAGE",
        ),
        (
            "{\"type\":\"typing\",\"payload\":{\"isTyping\":\"yes\"}}",
            "INVALID_JSON",
        ),
        ("{\"type\":\"resume\",\"payload\":{}}", "INVALID_JSON"),
    ];
    for (frame, code) in cases {
        ws.send_text(frame).await;
        let error = ws.expect("error").await;
        assert_eq!(error["code"], *code, "{frame} → {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let long = "x".repeat(1001);
    ws.send("visitor_message", json!({"text": long})).await;
    assert_eq!(ws.expect("error").await["code"], "MESSAGE_TOO_LARGE");
    let long_id = "i".repeat(200);
    ws.send(
        "visitor_message",
        json!({"text": "hi", "clientMessageId": long_id}),
    )
    .await;
    assert_eq!(ws.expect("error").await["code"], "INVALID_JSON");
    ws.stream
        .send(Message::Binary(vec![0xff, 0x00, 0x13].into()))
        .await
        .unwrap();
    assert_eq!(ws.expect("error").await["code"], "INVALID_JSON");
    // Invalid UTF-8 in a text frame closes only this socket (1007, or a dropped connection).
    let mut broken = server.connect_session(&session).await;
    broken
        .stream
        .send(Message::Frame(
            tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
                vec![0x7b, 0xff, 0xfe],
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
                ),
                true,
            ),
        ))
        .await
        .unwrap();
    match broken.recv().await {
        Received::Closed { code, .. } => assert_eq!(code, 1007),
        Received::Ended => {}
        Received::Frame(frame) => panic!("unexpected {frame}"),
    }
    still_open(&mut ws).await;
    still_open(&mut bystander).await;
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    // Nothing of that was stored.
    let stored = server
        .engine()
        .store()
        .messages_after(
            switchboard_core::ConversationId(session.conversation_id),
            0,
            10,
        )
        .await
        .unwrap();
    assert!(stored.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009() {
    let server = TestServer::start_with(|settings| settings.max_frame_bytes = 4096).await;
    let session = server.create_session().await;
    let mut ws = server.connect_session(&session).await;
    let huge = format!(
        "{{\"type\":\"visitor_message\",\"payload\":{{\"text\":\"{}\"}}}}",
        "y".repeat(5000)
    );
    ws.send_text(&huge).await;
    assert_eq!(ws.expect("error").await["code"], "MESSAGE_TOO_LARGE");
    assert_eq!(ws.closed().await, 1009);
    // Far beyond even the reader's limit, the socket is closed as well.
    let mut ws = server.connect_session(&session).await;
    let _ = ws
        .stream
        .send(Message::Text("z".repeat(100_000).into()))
        .await;
    match ws.recv().await {
        Received::Closed { code, .. } => assert_eq!(code, 1009),
        Received::Ended => {}
        Received::Frame(frame) => panic!("unexpected {frame}"),
    }
    // Others are unaffected.
    let mut other = server.connect_session(&session).await;
    still_open(&mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_message_in_a_minute_is_rate_limited_and_not_stored() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let mut ws = server.connect_session(&session).await;
    for n in 0..10 {
        ws.say(&format!("message {n}"), None).await;
        ws.bot_turn().await;
    }
    ws.send("visitor_message", json!({"text": "one too many"}))
        .await;
    let error = ws.expect("error").await;
    assert_eq!(error["code"], "RATE_LIMITED");
    let retry_after = error["retryAfter"].as_u64().unwrap();
    assert!(retry_after > 0 && retry_after <= 60_000, "{retry_after}");
    still_open(&mut ws).await;
    let stored = server
        .engine()
        .store()
        .messages_after(
            switchboard_core::ConversationId(session.conversation_id),
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        20,
        "ten messages and ten replies; the eleventh dropped"
    );
    assert!(stored
        .iter()
        .all(|message| message.content != "one too many"));
}
