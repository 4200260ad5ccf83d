//! Bad input in the Socket.IO and ActionCable dialects, sent while a bystander stays connected:
//! each class of bad input gets its documented answer (or closes only its own connection where
//! the protocol says so), the bystander never drops, the server stays healthy, and the stored
//! data is exactly what the good input made, verbatim.

use crate::common::*;
use crate::wire::{Cable, Contact, Read, SocketIo};
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::Duration;
use switchboard_core::{ConversationId, Sender};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// Text that must come back exactly as sent: markup, SQL, quotes, control characters, emoji.
const VERBATIM: &str =
    "<script>alert('x')</script> '; DROP TABLE messages; -- \"quoted\" \\ back\u{0}slash \u{7} 👋🏽 e\u{301}";

/// What a visitor (not the bot or an agent) stored in `conversation`.
async fn visitor_texts(server: &TestServer, conversation: i64) -> Vec<String> {
    server
        .engine()
        .store()
        .messages_after(ConversationId(conversation), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|message| matches!(message.sender, Sender::Contact(_)))
        .map(|message| message.content)
        .collect()
}

/// A WebSocket text frame whose payload is not UTF-8.
fn invalid_utf8_text() -> Message {
    Message::Frame(Frame::message(
        vec![0x34, 0x32, 0xff, 0xfe, 0xc0],
        OpCode::Data(Data::Text),
        true,
    ))
}

/// Sends `send-message` asking for an acknowledgement; returns the acknowledged message.
async fn acknowledged(socket: &mut SocketIo, payload: Value) -> Value {
    socket
        .send(&format!("429{}", json!(["send-message", payload])))
        .await;
    loop {
        let text = socket.text().await;
        if let Some(body) = text.strip_prefix("439") {
            let args: Value = serde_json::from_str(body).unwrap();
            return args[0].clone();
        }
    }
}

async fn healthy(server: &TestServer) {
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_socket_io_input_is_answered_and_harms_nobody() {
    let server = TestServer::start_with(|settings| {
        settings.engine.max_message_bytes = 1000;
        settings.max_frame_bytes = 4096; // Socket.IO packets up to 16 KiB
    })
    .await;
    let mine = server.create_session().await;
    let theirs = server.create_session().await;
    let mut bystander = SocketIo::connect(
        &server,
        json!({"token": theirs.token, "conversationId": theirs.conversation_id}),
    )
    .await;
    let auth = json!({"token": mine.token, "conversationId": mine.conversation_id});
    let mut socket = SocketIo::connect(&server, auth.clone()).await;
    let own = mine.conversation_id;

    // Answered with an `error` event; the connection stays.
    let answered: Vec<(&str, String, &str)> = vec![
        (
            "payload not an object",
            r#"42["send-message","hi"]"#.into(),
            "INVALID_JSON",
        ),
        ("no payload", r#"42["send-message"]"#.into(), "INVALID_JSON"),
        (
            "conversationId of the wrong type",
            r#"42["send-message",{"conversationId":true,"content":"x"}]"#.into(),
            "INVALID_JSON",
        ),
        (
            "content of the wrong type",
            format!(r#"42["send-message",{{"conversationId":{own},"content":5}}]"#),
            "INVALID_JSON",
        ),
        (
            "empty content",
            format!(r#"42["send-message",{{"conversationId":{own},"content":"  "}}]"#),
            "EMPTY_MESSAGE",
        ),
        (
            "oversized content",
            format!(
                r#"42["send-message",{{"conversationId":{own},"content":"{}"}}]"#,
                "x".repeat(1001)
            ),
            "MESSAGE_TOO_LARGE",
        ),
        (
            "unknown event",
            r#"42["explode",{"conversationId":1}]"#.into(),
            "UNKNOWN_TYPE",
        ),
        (
            "another visitor's conversation",
            format!(
                r#"42["send-message",{{"conversationId":{},"content":"x"}}]"#,
                theirs.conversation_id
            ),
            "NOT_FOUND",
        ),
        (
            "a conversation that does not exist",
            r#"42["join-conversation",{"conversationId":987654}]"#.into(),
            "NOT_FOUND",
        ),
        (
            "typing with isTyping of the wrong type",
            r#"42["typing-start",{"conversationId":"nope"}]"#.into(),
            "INVALID_JSON",
        ),
    ];
    for (case, packet, code) in &answered {
        socket.send(packet).await;
        let error = socket.event("error").await;
        assert_eq!(error["code"], *code, "{case}: {error}");
        assert!(!error["message"].as_str().unwrap().is_empty(), "{case}");
    }
    // Still connected: a good message is acknowledged with what was stored.
    assert_eq!(
        acknowledged(
            &mut socket,
            json!({"conversationId": own, "content": VERBATIM})
        )
        .await["content"],
        VERBATIM
    );

    // Bad credentials: connect_error, and no socket.
    let mut forged_token = mine.token.clone();
    forged_token.pop();
    forged_token.push(if mine.token.ends_with('A') { 'B' } else { 'A' });
    for (case, auth, says) in [
        (
            "forged",
            json!({"token": forged_token}),
            "Token is invalid or expired",
        ),
        (
            "garbage",
            json!({"token": "x.y.z"}),
            "Token is invalid or expired",
        ),
        ("missing", json!({}), "No token provided"),
        ("wrong type", json!({"token": 42}), "No token provided"),
    ] {
        let mut refused = SocketIo::open(&server).await;
        refused.send(&format!("40{auth}")).await;
        let answer = refused.text().await;
        let body: Value = serde_json::from_str(answer.strip_prefix("44").unwrap_or("null"))
            .unwrap_or(Value::Null);
        assert_eq!(body["message"], says, "{case}: {answer}");
    }

    // Broken packets and frames close only their own connection.
    let mut oversized = format!(r#"42["send-message",{{"conversationId":{own},"content":""#);
    oversized.push_str(&"y".repeat(20_000));
    oversized.push_str(r#""}]"#);
    let closing: Vec<(&str, Message)> = vec![
        (
            "truncated JSON",
            Message::Text(r#"42["send-message",{"#.into()),
        ),
        ("not a packet", Message::Text("99 not a packet".into())),
        ("invalid UTF-8", invalid_utf8_text()),
        ("larger than maxPayload", Message::Text(oversized.into())),
        // Socket.IO sends binary frames only as attachments announced by a binary packet; an
        // unannounced one is a parse error that ends its connection, as in the reference server.
        (
            "unannounced binary frame",
            Message::Binary(vec![0xff, 0x00, 0x13].into()),
        ),
    ];
    for (case, frame) in closing {
        let mut broken = SocketIo::connect(&server, auth.clone()).await;
        broken.ws.send(frame).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), broken.ended())
            .await
            .unwrap_or_else(|_| panic!("{case}: the broken connection should close"));
    }
    // The first socket lived through all of it: a typing event after the broken connections is
    // relayed, and an Engine.IO ping from the client is ignored or answered.
    socket
        .emit("typing-start", json!({"conversationId": own}))
        .await;
    socket.send("2").await;
    assert_eq!(
        acknowledged(
            &mut socket,
            json!({"conversationId": own, "content": "after"})
        )
        .await["content"],
        "after"
    );
    healthy(&server).await;

    // The bystander never dropped and still talks.
    let message = acknowledged(
        &mut bystander,
        json!({"conversationId": theirs.conversation_id, "content": "still here"}),
    )
    .await;
    assert_eq!(message["content"], "still here");

    // Exactly the good messages were stored, verbatim.
    assert_eq!(
        visitor_texts(&server, own).await,
        vec![VERBATIM.to_string(), "after".to_string()]
    );
    assert_eq!(
        visitor_texts(&server, theirs.conversation_id).await,
        vec!["still here".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cable_input_is_answered_and_harms_nobody() {
    let server = TestServer::start_with(|settings| settings.max_frame_bytes = 4096).await;
    let mine = Contact::create(&server).await;
    let theirs = Contact::create(&server).await;
    let mut bystander = Cable::connect(&server).await;
    assert_eq!(
        bystander.subscribe(&theirs.identifier()).await,
        "confirm_subscription"
    );
    let mut cable = Cable::connect(&server).await;

    // Refused subscriptions.
    let agent = &server.demo["agent"];
    for (case, identifier) in [
        (
            "unknown channel",
            json!({"channel": "AdminChannel", "pubsub_token": mine.pubsub_token}),
        ),
        (
            "forged token",
            json!({"channel": "RoomChannel", "pubsub_token": "sb_contact_forged"}),
        ),
        ("no token", json!({"channel": "RoomChannel"})),
        (
            "token of the wrong type",
            json!({"channel": "RoomChannel", "pubsub_token": 7}),
        ),
        (
            "agent token with another agent's id",
            json!({"channel": "RoomChannel", "pubsub_token": agent["pubsubToken"],
                   "account_id": server.demo["accountId"], "user_id": 999}),
        ),
        (
            "agent token in another account",
            json!({"channel": "RoomChannel", "pubsub_token": agent["pubsubToken"],
                   "account_id": 999, "user_id": agent["id"]}),
        ),
    ] {
        assert_eq!(
            cable.subscribe(&identifier).await,
            "reject_subscription",
            "{case}"
        );
    }
    // An identifier that is not JSON is rejected as it was written.
    cable
        .send(r#"{"command":"subscribe","identifier":"not json"}"#)
        .await;
    let rejected = cable.frame().await;
    assert_eq!(rejected["type"], "reject_subscription");
    assert_eq!(rejected["identifier"], "not json");

    // Ignored (the protocol says so): garbage, unknown commands, messages for subscriptions the
    // connection does not hold, data that is not JSON, unknown actions, binary frames.
    assert_eq!(
        cable.subscribe(&mine.identifier()).await,
        "confirm_subscription"
    );
    let identifier = mine.identifier().to_string();
    for garbage in [
        "not json".to_string(),
        "[1,2]".into(),
        "{}".into(),
        r#"{"command":"subscribe"}"#.into(),
        json!({"command": "dance", "identifier": identifier}).to_string(),
        json!({"command": "message", "identifier": theirs.identifier().to_string(),
               "data": json!({"action": "typing_on", "conversation_id": theirs.conversation_id}).to_string()})
        .to_string(),
        json!({"command": "message", "identifier": identifier, "data": "{not json"}).to_string(),
        json!({"command": "message", "identifier": identifier, "data": json!({"action": "explode"}).to_string()}).to_string(),
        json!({"command": "message", "identifier": identifier, "data": json!({"action": 5}).to_string()}).to_string(),
    ] {
        cable.send(&garbage).await;
    }
    cable
        .ws
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    // Answered with an error event: acting on another contact's conversation.
    cable
        .command(
            "message",
            &mine.identifier(),
            Some(json!({"action": "typing_on", "conversation_id": theirs.conversation_id})),
        )
        .await;
    let error = cable.event("error").await;
    assert_eq!(error["code"], "NOT_FOUND", "{error}");
    // The connection still answers.
    cable
        .command(
            "message",
            &mine.identifier(),
            Some(json!({"action": "update_presence"})),
        )
        .await;
    cable.event("presence.update").await;
    // The bystander saw none of it: no typing in its conversation.
    let seen = bystander.drain(Duration::from_millis(300)).await;
    assert!(
        seen.iter()
            .all(|frame| frame["message"]["event"] != "conversation.typing_on"),
        "{seen:?}"
    );

    // Broken frames close only their own connection: invalid UTF-8 and an oversized frame.
    for (case, frame) in [
        ("invalid UTF-8", invalid_utf8_text()),
        ("oversized", Message::Text("z".repeat(5000).into())),
    ] {
        let mut broken = Cable::connect(&server).await;
        broken.ws.send(frame).await.unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Read::Closed(code) = broken.read().await {
                    return code;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{case}: the broken connection should close"));
        if case == "oversized" {
            assert_eq!(closed, Some(1009), "{case}");
        }
    }
    healthy(&server).await;

    // Verbatim text through the public API, and the bystander still hears its conversation.
    let (status, body) = server
        .post(&mine.messages_path(), "", json!({"content": VERBATIM}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"], VERBATIM);
    let (status, _) = server
        .post(
            &theirs.messages_path(),
            "",
            json!({"content": "still here"}),
        )
        .await;
    assert_eq!(status, 200);
    let heard = bystander.event("message.created").await;
    assert_eq!(heard["content"], "still here");
    assert_eq!(
        visitor_texts(&server, mine.conversation_id).await,
        vec![VERBATIM.to_string()]
    );
    assert_eq!(
        visitor_texts(&server, theirs.conversation_id).await,
        vec!["still here".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_authenticate_are_closed_in_time() {
    let server =
        TestServer::start_with(|settings| settings.auth_timeout = Duration::from_millis(500)).await;
    // Socket.IO: open, but never connect to the namespace.
    let mut idle_socketio = SocketIo::open(&server).await;
    // Cable: welcomed, but never subscribed.
    let mut idle_cable = Cable::connect(&server).await;
    // One that subscribes in time stays.
    let contact = Contact::create(&server).await;
    let mut subscribed = Cable::connect(&server).await;
    assert_eq!(
        subscribed.subscribe(&contact.identifier()).await,
        "confirm_subscription"
    );

    tokio::time::timeout(Duration::from_secs(10), idle_socketio.ended())
        .await
        .expect("the Socket.IO client is closed");
    let told = tokio::time::timeout(Duration::from_secs(10), idle_cable.frame())
        .await
        .expect("the cable client is told");
    assert_eq!(
        told,
        json!({"type": "disconnect", "reason": "unauthorized", "reconnect": false})
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    subscribed
        .command(
            "message",
            &contact.identifier(),
            Some(json!({"action": "update_presence"})),
        )
        .await;
    subscribed.event("presence.update").await;
}
