//! Server-side delivery cursors: a client that reconnects without saying its last seq gets
//! exactly what it missed; an explicit `lastSeq` wins; cursors survive a restart.

use crate::common::*;
use serde_json::json;

async fn agent_says(server: &TestServer, conversation_id: i64, text: &str) -> i64 {
    let admin = server.demo["agent"]["accessToken"].as_str().unwrap();
    let (status, message) = server
        .post(
            &format!("/api/v1/conversations/{conversation_id}/messages"),
            admin,
            json!({"content": text}),
        )
        .await;
    assert_eq!(status, 201, "{message}");
    message["seq"].as_i64().unwrap()
}

/// Reads `n` agent responses and returns their (seq, text).
async fn responses(ws: &mut Ws, n: usize) -> Vec<(i64, String)> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let payload = ws.next_of("agent_response").await;
        seen.push((
            payload["seq"].as_i64().unwrap(),
            payload["text"].as_str().unwrap().to_string(),
        ));
    }
    seen
}

async fn nothing_more(ws: &mut Ws) {
    ws.send("heartbeat", json!({})).await;
    let frame = ws.frame().await;
    assert_eq!(frame["type"], "pong", "unexpected {frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_that_says_nothing_gets_exactly_what_it_missed() {
    let mut server = TestServer::start().await;
    let session = server.create_session().await;
    // Said before the visitor ever connected: its first connection gets it.
    agent_says(&server, session.conversation_id, "welcome").await;
    let mut visitor = server.connect_session(&session).await;
    assert_eq!(
        responses(&mut visitor, 1).await,
        vec![(1, "welcome".to_string())]
    );
    nothing_more(&mut visitor).await;
    drop(visitor);

    // Missed while away.
    agent_says(&server, session.conversation_id, "are you there?").await;
    agent_says(&server, session.conversation_id, "I'll wait").await;
    let mut back = server.connect_session(&session).await;
    assert_eq!(
        responses(&mut back, 2).await,
        vec![
            (2, "are you there?".to_string()),
            (3, "I'll wait".to_string())
        ]
    );
    nothing_more(&mut back).await;
    drop(back);

    // The cursor survives a restart (flushed on shutdown).
    agent_says(&server, session.conversation_id, "still here").await;
    server.restart().await;
    let mut after_restart = server.connect_session(&session).await;
    assert_eq!(
        responses(&mut after_restart, 1).await,
        vec![(4, "still here".to_string())]
    );
    nothing_more(&mut after_restart).await;

    // An explicit lastSeq wins over the cursor.
    let mut explicit = server
        .connect(&format!(
            "/ws/session/{}?token={}&lastSeq=2",
            session.id, session.token
        ))
        .await;
    let seqs: Vec<i64> = responses(&mut explicit, 2)
        .await
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    nothing_more(&mut explicit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_chat_socket_resumes_from_its_cursor() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    let mut visitor = server.connect_session(&session).await;
    let mut chat = server.connect_chat(&admin, session.conversation_id).await;
    visitor.say("first", None).await;
    assert_eq!(chat.next_of("message.created").await["seq"], 1);
    visitor.bot_turn().await;
    assert_eq!(chat.next_of("message.created").await["seq"], 2);
    drop(chat);
    visitor.say("while the agent was away", None).await;
    visitor.bot_turn().await;
    let mut back = server.connect_chat(&admin, session.conversation_id).await;
    assert_eq!(back.next_of("message.created").await["seq"], 3);
    assert_eq!(back.next_of("message.created").await["seq"], 4);
}
