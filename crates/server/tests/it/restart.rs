//! Acknowledged messages survive a restart of the server on the same data directory; open
//! sockets are told the server is going away.

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_sessions_survive_a_restart() {
    let mut server = TestServer::start().await;
    let session = server.create_session().await;
    let mut ws = server.connect_session(&session).await;
    let mut acked = Vec::new();
    for text in ["hi", "dashboard", "pricing"] {
        acked.push(ws.say(text, Some(text)).await);
        ws.bot_turn().await;
    }
    server.restart().await;
    assert_eq!(
        ws.closed().await,
        1001,
        "sockets are told the server is going away"
    );

    // The same token still works (the signing secret is stored), and everything is there.
    let mut back = server.connect_session(&session).await;
    back.send("resume", json!({"lastSeq": 0})).await;
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let frame = back.frame().await;
        if frame["type"] == "agent_response" {
            seqs.push(frame["payload"]["seq"].as_i64().unwrap());
        }
    }
    assert_eq!(seqs, vec![2, 4, 6]);
    back.expect("lead_form").await;
    // A retry of an acknowledged message after the restart returns the original.
    let again = back.say("dashboard", Some("dashboard")).await;
    assert_eq!(again, acked[1]);
    // And new messages continue the sequence.
    let next = back.say("contacts", None).await;
    assert_eq!(next["seq"], 7);
    // The demo workspace was not created twice.
    assert_eq!(server.engine().store().count_accounts().await.unwrap(), 1);
}
