//! Fault injection, small and bounded: many visitors with the Rust client chat while their
//! connections are cut at random and the server is SIGKILLed and restarted mid-run. Per
//! conversation: no acknowledged message lost, none stored twice, no gap, and every reply
//! reaches its visitor exactly once, in order.

use crate::crash::{all_messages, spawn_server};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_client::{
    Backoff, ChatClient, ChatConfig, ChatEvent, SessionClient, SessionConfig, SessionEvent,
};

struct Visitor {
    client: SessionClient,
    conversation_id: i64,
    acked: Arc<Mutex<BTreeMap<String, (i64, i64)>>>,
    replies: Arc<Mutex<Vec<i64>>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_and_a_crash_lose_nothing_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::crash::free_port();
    let mut server = spawn_server(dir.path(), port).await;
    let host = format!("127.0.0.1:{port}");
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json")).unwrap())
            .unwrap();
    let api_key = demo["apiKey"].as_str().unwrap().to_string();

    let (n_visitors, n_messages) = (12, 25);
    let mut visitors = Vec::new();
    for _ in 0..n_visitors {
        let session: Value = reqwest::Client::new()
            .post(format!("http://{host}/api/v1/session"))
            .bearer_auth(&api_key)
            .json(&json!({"agentId": "demo"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut config = SessionConfig::new(
            &host,
            session["sessionId"].as_str().unwrap(),
            session["token"].as_str().unwrap(),
        );
        config.backoff = Backoff {
            base: Duration::from_millis(30),
            max: Duration::from_millis(500),
            max_attempts: 0,
        };
        let (client, mut events) = SessionClient::connect(config);
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let replies = Arc::new(Mutex::new(Vec::new()));
        let (acked_in, replies_in) = (acked.clone(), replies.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    SessionEvent::Acked {
                        client_message_id,
                        id,
                        seq,
                    } => {
                        let previous = acked_in
                            .lock()
                            .unwrap()
                            .insert(client_message_id.clone(), (id, seq));
                        assert!(previous.is_none(), "{client_message_id} acknowledged twice");
                    }
                    SessionEvent::AgentResponse(reply) => {
                        replies_in.lock().unwrap().push(reply.seq)
                    }
                    _ => {}
                }
            }
        });
        visitors.push(Visitor {
            client,
            conversation_id: session["conversationId"].as_i64().unwrap(),
            acked,
            replies,
        });
    }

    // An agent's dashboard follows the first three conversations through the same faults.
    let admin = demo["agent"]["accessToken"].as_str().unwrap().to_string();
    let mut watchers = Vec::new();
    for visitor in visitors.iter().take(3) {
        let mut config = ChatConfig::new(&host, &admin, visitor.conversation_id);
        config.backoff = Backoff {
            base: Duration::from_millis(30),
            max: Duration::from_millis(500),
            max_attempts: 0,
        };
        let (chat, mut events) = ChatClient::connect(config);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_in = seen.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let ChatEvent::Message { seq, .. } = event {
                    seen_in.lock().unwrap().push(seq);
                }
            }
        });
        watchers.push((chat, visitor.conversation_id, seen));
    }

    // Traffic: every visitor sends its messages at a steady pace.
    let mut senders = Vec::new();
    for (index, visitor) in visitors.iter().enumerate() {
        let client = visitor.client.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..n_messages {
                client.send_text_with_id(
                    &format!("visitor {index} message {n}"),
                    &format!("v{index}-{n}"),
                );
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    // Chaos: cut random connections while the traffic flows, and kill the server once.
    let clients: Vec<SessionClient> = visitors.iter().map(|v| v.client.clone()).collect();
    let chats: Vec<ChatClient> = watchers.iter().map(|(chat, _, _)| chat.clone()).collect();
    let chaos = tokio::spawn(async move {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..40 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            clients[(state % clients.len() as u64) as usize].drop_connection();
            if round % 4 == 0 {
                chats[(state % chats.len() as u64) as usize].drop_connection();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(450)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut server = spawn_server(dir.path(), port).await;
    for sender in senders {
        sender.await.unwrap();
    }
    chaos.await.unwrap();

    // Everything is acknowledged in the end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while visitors.iter().any(|v| v.client.pending() > 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages still unacknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for visitor in &visitors {
        // Wait for the bot to finish and the replies to arrive.
        let mut stored = Vec::new();
        let mut outgoing: Vec<i64> = Vec::new();
        for _ in 0..200 {
            stored = all_messages(&host, &api_key, visitor.conversation_id).await;
            outgoing = stored
                .iter()
                .filter(|m| m["sender"]["type"] == "bot")
                .map(|m| m["seq"].as_i64().unwrap())
                .collect();
            if *visitor.replies.lock().unwrap() == outgoing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seqs: Vec<i64> = stored.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gapless");
        let mine: Vec<(String, (i64, i64))> = stored
            .iter()
            .filter(|m| m["sender"]["type"] == "contact")
            .map(|m| {
                (
                    m["clientMessageId"].as_str().unwrap().to_string(),
                    (m["id"].as_i64().unwrap(), m["seq"].as_i64().unwrap()),
                )
            })
            .collect();
        let unique: HashSet<&String> = mine.iter().map(|(id, _)| id).collect();
        assert_eq!(mine.len(), n_messages, "each message stored once");
        assert_eq!(unique.len(), n_messages);
        let stored_by_id: BTreeMap<String, (i64, i64)> = mine.into_iter().collect();
        assert_eq!(
            *visitor.acked.lock().unwrap(),
            stored_by_id,
            "acks match the store"
        );
        assert_eq!(
            *visitor.replies.lock().unwrap(),
            outgoing,
            "every reply exactly once, in order"
        );
    }
    // The dashboard saw every message of its conversations exactly once, in order.
    for (chat, conversation_id, seen) in &watchers {
        let mut stored = 0;
        for _ in 0..200 {
            stored = all_messages(&host, &api_key, *conversation_id).await.len() as i64;
            if seen.lock().unwrap().len() as i64 == stored {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(*seen.lock().unwrap(), (1..=stored).collect::<Vec<_>>());
        assert_eq!(chat.duplicates_dropped(), 0);
    }
    server.kill();
}
