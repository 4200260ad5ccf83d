//! A connection that stops reading is cut off once its queue is full; the others keep going.

use crate::common::*;

use serde_json::json;
use switchboard_core::limits::RateRules;
use tokio::net::TcpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_disconnected_and_others_get_everything() {
    let server = TestServer::start_with(|settings| {
        settings.engine.rate_rules = RateRules::UNLIMITED;
        settings.engine.outbound_queue = 16;
    })
    .await;
    // A bot whose every reply is 16 KiB, so buffers fill quickly.
    let (status, body) = server
        .post(
            "/api/v1/bots",
            &server.api_key(),
            json!({"name": "chatty", "kind": "scripted",
                   "rules": {"intents": [], "fallback": {"text": "z".repeat(16 * 1024)}}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let session = server.create_session_for("chatty").await;

    // The stalled tab has a tiny receive buffer and never reads.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(server.server.as_ref().unwrap().local_addr)
        .await
        .unwrap();
    let url = format!(
        "ws://{}/ws/session/{}?token={}",
        server.base, session.id, session.token
    );
    let (stalled, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let mut stalled = Ws { stream: stalled };

    let mut reader = server.connect_session(&session).await;
    let rounds = 400;
    for n in 0..rounds {
        reader.say(&format!("message {n}"), None).await;
        let turn = reader.bot_turn().await;
        assert_eq!(turn.len(), 1);
    }
    // The reader got every reply; the stalled tab was evicted.
    assert_eq!(server.engine().hub().n_subscriptions(), 1);
    // Reading now, the stalled tab finds what was buffered and then the close 1013.
    let mut seen = Vec::new();
    loop {
        match stalled.recv().await {
            Received::Frame(frame) if frame["type"] == "agent_response" => {
                seen.push(frame["payload"]["seq"].as_i64().unwrap());
            }
            Received::Frame(_) => continue,
            Received::Closed { code, .. } => {
                assert_eq!(code, 1013);
                break;
            }
            Received::Ended => panic!("no close frame"),
        }
    }
    // It resumes after the last reply it read and gets exactly the rest.
    let last = seen.last().copied().unwrap_or(0);
    let mut resumed = server
        .connect(&format!(
            "/ws/session/{}?token={}&lastSeq={last}",
            session.id, session.token
        ))
        .await;
    while seen.len() < rounds {
        let reply = resumed.next_of("agent_response").await;
        seen.push(reply["seq"].as_i64().unwrap());
    }
    let expected: Vec<i64> = (1..=rounds as i64).map(|n| n * 2).collect();
    assert_eq!(seen, expected, "nothing lost, nothing twice");
}
