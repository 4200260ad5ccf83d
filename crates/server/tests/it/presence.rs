//! Presence and receipts: who is online, pushed on every transition, and message status moving
//! sent → delivered → read.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

async fn notifications(server: &TestServer, token: &str) -> Ws {
    let ticket = server.ticket(token).await;
    server
        .connect(&format!("/ws/notifications?ticket={ticket}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_connections_and_availability_and_is_pushed() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let admin_id = server.demo["agent"]["id"].as_i64().unwrap();
    let (_, account) = server.get("/api/v1/account", &server.api_key()).await;
    assert_eq!(account["status"], "offline", "no agent is connected yet");

    let mut watcher = notifications(&server, &admin).await;
    let me = watcher.next_of("presence.update").await;
    assert_eq!(me["users"][admin_id.to_string()], "online");
    assert_eq!(
        watcher.next_of("account.status_updated").await["status"],
        "online"
    );
    assert_eq!(
        server.get("/api/v1/account", &server.api_key()).await.1["status"],
        "online"
    );

    let agent = server.create_agent("p@example.com", "agent").await;
    let agent_id = agent["id"].as_i64().unwrap().to_string();
    let token = agent["accessToken"].as_str().unwrap().to_string();
    let agent_socket = notifications(&server, &token).await;
    assert_eq!(
        watcher.next_of("presence.update").await["users"][&agent_id],
        "online"
    );
    let (_, agents) = server.get("/api/v1/agents", &server.api_key()).await;
    let listed = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent["id"])
        .unwrap()
        .clone();
    assert_eq!(listed["presence"], "online");

    // Busy is pushed; going offline by choice while connected is too.
    server
        .post_method(
            "PATCH",
            "/api/v1/profile",
            &token,
            json!({"availability": "busy"}),
        )
        .await;
    assert_eq!(
        watcher.next_of("presence.update").await["users"][&agent_id],
        "busy"
    );
    server
        .post_method(
            "PATCH",
            "/api/v1/profile",
            &token,
            json!({"availability": "online"}),
        )
        .await;
    assert_eq!(
        watcher.next_of("presence.update").await["users"][&agent_id],
        "online"
    );
    drop(agent_socket);
    assert_eq!(
        watcher.next_of("presence.update").await["users"][&agent_id],
        "offline"
    );

    // Visitors' presence reaches the agents of their inbox.
    let session = server.create_session().await;
    let visitor = server.connect_session(&session).await;
    let update = watcher.next_of("presence.update").await;
    let contacts = update["contacts"].as_object().unwrap();
    assert_eq!(contacts.values().next().unwrap(), "online");
    drop(visitor);
    let update = watcher.next_of("presence.update").await;
    assert_eq!(
        update["contacts"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap(),
        "offline"
    );

    // The last online agent leaving takes the account offline.
    drop(watcher);
    for _ in 0..100 {
        if server.get("/api/v1/account", &server.api_key()).await.1["status"] == "offline" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the account stayed online with no agent connected");
}

#[tokio::test]
async fn a_silent_agent_turns_offline_within_the_heartbeat_timeout() {
    let server = TestServer::start_with(|settings| {
        settings.engine.heartbeat_timeout = Duration::from_secs(45);
    })
    .await;
    let agent_id = switchboard_core::AgentId(server.demo["agent"]["id"].as_i64().unwrap());
    let account_id = switchboard_core::AccountId(server.demo["accountId"].as_i64().unwrap());
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let ticket = server.ticket(&admin).await;
    tokio::time::pause();
    let mut socket = server
        .connect(&format!("/ws/notifications?ticket={ticket}"))
        .await;
    // The first frame is its own presence: the connection counted.
    assert!(matches!(socket.recv_untimed().await, Received::Frame(_)));
    assert_eq!(
        server
            .engine()
            .agent_presence(account_id, agent_id)
            .await
            .as_str(),
        "online"
    );
    let started = tokio::time::Instant::now();
    loop {
        match socket.recv_untimed().await {
            Received::Frame(_) => continue,
            Received::Closed { code, .. } => {
                assert_eq!(code, 4002);
                break;
            }
            Received::Ended => break,
        }
    }
    assert!(started.elapsed() <= Duration::from_secs(46));
    for _ in 0..100 {
        if server
            .engine()
            .agent_presence(account_id, agent_id)
            .await
            .as_str()
            == "offline"
        {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the agent stayed online after its connection died");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_move_from_sent_to_delivered_to_read() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    let base = format!("/api/v1/conversations/{}", session.conversation_id);
    // Take the conversation so the bot stays out of it.
    server
        .post(
            &format!("{base}/assignments"),
            &admin,
            json!({"assigneeId": server.demo["agent"]["id"]}),
        )
        .await;
    let mut visitor = server.connect_session(&session).await;
    visitor.say("hello?", None).await;
    let (_, conversation) = server.get(&base, &admin).await;
    assert_eq!(conversation["unreadByAgents"], 1);
    let (_, messages) = server.get(&format!("{base}/messages"), &admin).await;
    assert_eq!(
        messages[0]["status"], "sent",
        "no agent connection has had it yet"
    );

    // An agent's socket receives it: delivered.
    let mut chat = server.connect_chat(&admin, session.conversation_id).await;
    chat.send("resume", json!({"lastSeq": 0})).await;
    let updated = chat.next_of("message.updated").await;
    assert_eq!(
        (updated["seq"].clone(), updated["status"].clone()),
        (json!(1), json!("delivered"))
    );
    // The update carries the message as it is now stored, field for field.
    let (_, messages) = server.get(&format!("{base}/messages"), &admin).await;
    assert_eq!(messages[0]["status"], "delivered");
    for (field, value) in messages[0].as_object().unwrap() {
        assert_eq!(&updated[field], value, "{field} of the update");
    }
    // The agent reads: read.
    server
        .post(&format!("{base}/read"), &admin, json!({"seq": 1}))
        .await;
    let updated = chat.next_of("message.updated").await;
    assert_eq!(
        (updated["seq"].clone(), updated["status"].clone()),
        (json!(1), json!("read"))
    );
    let (_, conversation) = server.get(&base, &admin).await;
    assert_eq!(conversation["unreadByAgents"], 0);

    // The agent's reply reaches the visitor's socket: delivered; the visitor reads it: read.
    let (_, reply) = server
        .post(
            &format!("{base}/messages"),
            &admin,
            json!({"content": "Hi! How can I help?"}),
        )
        .await;
    assert_eq!(visitor.expect("agent_response").await["seq"], reply["seq"]);
    let updated = chat.next_of("message.updated").await;
    assert_eq!(
        (updated["id"].clone(), updated["status"].clone()),
        (reply["id"].clone(), json!("delivered"))
    );
    let (_, conversation) = server.get(&base, &admin).await;
    assert_eq!(conversation["unreadByContact"], 1);
    visitor.send("read", json!({"seq": reply["seq"]})).await;
    let updated = chat.next_of("message.updated").await;
    assert_eq!(
        (updated["id"].clone(), updated["status"].clone()),
        (reply["id"].clone(), json!("read"))
    );
    let (_, conversation) = server.get(&base, &admin).await;
    assert_eq!(conversation["unreadByContact"], 0);
}
