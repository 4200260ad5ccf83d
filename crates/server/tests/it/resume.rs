//! Resuming after a drop: exactly what was missed, in order, then live, with no duplicate.

use crate::common::*;
use serde_json::{json, Value};
use switchboard_core::limits::RateRules;

fn seq_of(frame: &Value) -> i64 {
    frame["payload"]["seq"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_exactly_what_was_missed_then_goes_live() {
    let server =
        TestServer::start_with(|settings| settings.engine.rate_rules = RateRules::UNLIMITED).await;
    let session = server.create_session().await;

    // The first tab sees seq 1 (its message) and 2 (the reply), then drops.
    let mut first = server.connect_session(&session).await;
    first.say("hi", None).await;
    let turn = first.bot_turn().await;
    assert_eq!(seq_of(&turn[0]), 2);
    drop(first);

    // While it is away, another tab of the same visitor chats on: seq 3..=8.
    let mut other = server.connect_session(&session).await;
    for text in ["dashboard", "contacts", "what is this?"] {
        other.say(text, None).await;
        other.bot_turn().await;
    }
    drop(other);

    // The first tab comes back and resumes after seq 2: it gets the replies 4, 6 and 8, in
    // order, each once.
    let mut back = server.connect_session(&session).await;
    back.send("resume", json!({"lastSeq": 2})).await;
    let replayed: Vec<i64> = vec![
        seq_of(&back.frame().await),
        seq_of(&back.frame().await),
        seq_of(&back.frame().await),
    ];
    assert_eq!(replayed, vec![4, 6, 8]);
    // Then live, continuing at 9 and 10, with nothing repeated in between.
    let ack = back.say("pricing", None).await;
    assert_eq!(ack["seq"], 9);
    let turn = back.bot_turn().await;
    assert_eq!(seq_of(&turn[0]), 10);
    assert_eq!(turn[1]["type"], "lead_form");

    // Resuming again from the top sends the whole history once more (the client asked).
    back.send("resume", json!({"lastSeq": 0})).await;
    let mut seqs = Vec::new();
    for _ in 0..6 {
        let frame = back.frame().await;
        if frame["type"] == "agent_response" {
            seqs.push(seq_of(&frame));
        } else {
            assert_eq!(frame["type"], "lead_form", "{frame}");
        }
    }
    assert_eq!(seqs, vec![2, 4, 6, 8, 10]);
    // Resuming at the newest seq sends nothing.
    back.send("resume", json!({"lastSeq": 10})).await;
    back.send("heartbeat", json!({})).await;
    back.expect("pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_seq_on_the_url_replays_before_anything_live() {
    let server =
        TestServer::start_with(|settings| settings.engine.rate_rules = RateRules::UNLIMITED).await;
    let session = server.create_session().await;
    let mut ws = server.connect_session(&session).await;
    for text in ["hi", "dashboard"] {
        ws.say(text, None).await;
        ws.bot_turn().await;
    }
    drop(ws);
    let mut back = server
        .connect(&format!(
            "/ws/session/{}?token={}&lastSeq=1",
            session.id, session.token
        ))
        .await;
    let first = back.expect("agent_response").await;
    assert_eq!(first["seq"], 2);
    let second = back.expect("agent_response").await;
    assert_eq!(second["seq"], 4);
    let ack = back.say("contacts", None).await;
    assert_eq!(ack["seq"], 5);
    let turn = back.bot_turn().await;
    assert_eq!(seq_of(&turn[0]), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_tab_sees_every_reply_once_while_another_resumes() {
    let server =
        TestServer::start_with(|settings| settings.engine.rate_rules = RateRules::UNLIMITED).await;
    let session = server.create_session().await;
    let mut watcher = server.connect_session(&session).await;
    let mut talker = server.connect_session(&session).await;
    for n in 0..20 {
        talker
            .send("visitor_message", json!({"text": format!("question {n}")}))
            .await;
        if n == 10 {
            talker.send("resume", json!({"lastSeq": 0})).await;
        }
    }
    // Bot replies race the visitor's next messages, so the seqs of replies are not known in
    // advance: the watcher must see exactly the stored replies, each once, in seq order.
    let conversation_id = switchboard_core::ConversationId(session.conversation_id);
    let mut stored_replies = Vec::new();
    for _ in 0..200 {
        let stored = server
            .engine()
            .store()
            .messages_after(conversation_id, 0, 1000)
            .await
            .unwrap();
        stored_replies = stored
            .iter()
            .filter(|message| message.message_type == switchboard_core::MessageType::Outgoing)
            .map(|message| message.seq)
            .collect::<Vec<_>>();
        if stored_replies.len() == 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stored_replies.len(), 20);
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let frame = watcher.frame().await;
        if frame["type"] == "agent_response" {
            seen.push(seq_of(&frame));
        }
    }
    assert_eq!(seen, stored_replies, "every reply once, in seq order");
    // Nothing more arrives: a heartbeat's pong is the next frame apart from typing.
    watcher.send("heartbeat", json!({})).await;
    loop {
        let frame = watcher.frame().await;
        assert_ne!(frame["type"], "agent_response", "a duplicate: {frame}");
        if frame["type"] == "pong" {
            break;
        }
    }
}
