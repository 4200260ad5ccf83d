//! The Rust client against a real server: the agent's chat client writes through drops with
//! its outbox, and the visitor's session client sees each reply once.

use crate::common::*;
use std::time::Duration;
use switchboard_client::{
    ChatClient, ChatConfig, ChatEvent, SessionClient, SessionConfig, SessionEvent,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_and_a_visitor_talk_through_drops() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    let (visitor, mut visitor_events) = SessionClient::connect(SessionConfig::new(
        &server.base,
        &session.id,
        &session.token,
    ));
    let (agent, mut agent_events) = ChatClient::connect(ChatConfig::new(
        &server.base,
        &admin,
        session.conversation_id,
    ));

    // Queued before either is connected, sent on connect, acknowledged once.
    let sent = agent.send_text("Hello from a human");
    agent.drop_connection();
    let mut acked = 0;
    let mut seen_by_agent = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked == 0 || seen_by_agent.is_empty() {
        let event = tokio::time::timeout_at(deadline, agent_events.recv())
            .await
            .unwrap()
            .unwrap();
        match event {
            ChatEvent::Acked {
                client_message_id,
                seq,
                ..
            } => {
                assert_eq!(client_message_id, sent);
                assert_eq!(seq, 1);
                acked += 1;
            }
            ChatEvent::Message { seq, message } => {
                seen_by_agent.push(seq);
                assert_eq!(message["content"], "Hello from a human");
            }
            _ => {}
        }
    }
    loop {
        let event = tokio::time::timeout_at(deadline, visitor_events.recv())
            .await
            .unwrap()
            .unwrap();
        if let SessionEvent::AgentResponse(reply) = event {
            assert_eq!(reply.seq, 1);
            assert_eq!(reply.text, "Hello from a human");
            break;
        }
    }
    // The visitor answers through a drop; the agent sees it once.
    visitor.drop_connection();
    let id = visitor.send_text("Hi human");
    loop {
        let event = tokio::time::timeout_at(deadline, agent_events.recv())
            .await
            .unwrap()
            .unwrap();
        if let ChatEvent::Message { seq, message } = event {
            assert_eq!(seq, 2);
            assert_eq!(message["clientMessageId"], id.as_str());
            break;
        }
    }
    // The visitor's own acknowledgement may trail what the agent saw: wait for it.
    loop {
        let event = tokio::time::timeout_at(deadline, visitor_events.recv())
            .await
            .unwrap()
            .unwrap();
        if let SessionEvent::Acked {
            client_message_id, ..
        } = event
        {
            assert_eq!(client_message_id, id);
            break;
        }
    }
    assert_eq!(visitor.pending() + agent.pending(), 0);
    // The session ends: the visitor's client stops for good.
    server.end_session(&session).await;
    loop {
        let event = tokio::time::timeout_at(deadline, visitor_events.recv())
            .await
            .unwrap()
            .unwrap();
        if let SessionEvent::Closed { code, .. } = event {
            assert_eq!(code, Some(1000));
            break;
        }
    }
    agent.close();
}
