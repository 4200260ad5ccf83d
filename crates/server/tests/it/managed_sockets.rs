//! Tickets and the managed sockets: `/ws/chat/:threadId` and `/ws/notifications`.

use crate::common::*;
use serde_json::json;
use switchboard_core::limits::RateRules;

impl TestServer {
    pub async fn ticket(&self, key: &str) -> String {
        let (status, body) = self.post("/api/v1/ws/ticket", key, json!({})).await;
        assert_eq!(status, 201, "{body}");
        assert!(body["expiresAt"].as_str().is_some());
        body["ticket"].as_str().unwrap().to_string()
    }

    pub async fn connect_chat(&self, key: &str, conversation_id: i64) -> Ws {
        let ticket = self.ticket(key).await;
        self.connect(&format!("/ws/chat/{conversation_id}?ticket={ticket}"))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_a_conversation_live_and_writes_into_it() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    let mut visitor = server.connect_session(&session).await;
    let mut chat = server.connect_chat(&admin, session.conversation_id).await;

    visitor.send("typing", json!({"isTyping": true})).await;
    let typing = chat.frame().await;
    assert_eq!(typing["type"], "conversation.typing_on");
    assert_eq!(typing["payload"]["user"]["type"], "contact");
    visitor.say("hi", None).await;
    let created = chat.next_of("message.created").await;
    assert_eq!(
        (created["seq"].clone(), created["messageType"].clone()),
        (json!(1), json!("incoming"))
    );
    let reply = chat.next_of("message.created").await;
    assert_eq!(reply["sender"]["type"], "bot");
    assert_eq!(
        reply["contentAttributes"]["suggestions"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    visitor.bot_turn().await;

    // The agent writes over the socket and gets an ack; the visitor gets the reply.
    chat.send(
        "message",
        json!({"content": "A human here", "clientMessageId": "h-1"}),
    )
    .await;
    let ack = chat.next_of("ack").await;
    assert_eq!(ack["seq"], 3);
    assert_eq!(
        visitor.expect("agent_response").await["text"],
        "A human here"
    );
    assert_eq!(
        chat.next_of("assignee.changed").await["assigneeId"],
        server.demo["agent"]["id"]
    );
    let joined = chat.next_of("agent.joined").await;
    assert_eq!(joined["agentName"], "Demo Admin");

    // Status changes and reads reach the socket.
    server
        .post(
            &format!("/api/v1/conversations/{}/status", session.conversation_id),
            &admin,
            json!({"status": "pending"}),
        )
        .await;
    assert_eq!(
        chat.next_of("conversation.status_changed").await["status"],
        "pending"
    );
    visitor.send("read", json!({"seq": 3})).await;
    let read = chat.next_of("conversation.read").await;
    assert_eq!(
        (read["seq"].clone(), read["reader"]["type"].clone()),
        (json!(3), json!("contact"))
    );

    // Resume replays the whole conversation once, in order.
    chat.send("resume", json!({"lastSeq": 0})).await;
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        seqs.push(
            chat.next_of("message.created").await["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    chat.send("heartbeat", json!({})).await;
    assert!(chat.next_of("pong").await["ts"].as_i64().is_some());
    chat.send_text("nonsense").await;
    assert_eq!(chat.next_of("error").await["code"], "INVALID_JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_single_use_and_required() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    let ticket = server.ticket(&admin).await;
    let path = format!("/ws/chat/{}?ticket={ticket}", session.conversation_id);
    let mut first = server.connect(&path).await;
    first.send("heartbeat", json!({})).await;
    assert_eq!(first.frame().await["type"], "pong");
    let mut reused = server.connect(&path).await;
    reused.expect_refusal("INVALID_TICKET", 4001).await;
    let mut missing = server
        .connect(&format!("/ws/chat/{}", session.conversation_id))
        .await;
    missing.expect_refusal("AUTH_REQUIRED", 4001).await;
    let mut forged = server
        .connect(&format!(
            "/ws/chat/{}?ticket=tkt_forged",
            session.conversation_id
        ))
        .await;
    forged.expect_refusal("INVALID_TICKET", 4001).await;
    // A publishable key gets no ticket; no credential gets no ticket.
    let (status, _) = server
        .post("/api/v1/ws/ticket", &server.publishable_key(), json!({}))
        .await;
    assert_eq!(status, 403);
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/ws/ticket"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A thread the ticket's agent may not see is refused like a missing one.
    let outsider = server.create_agent("o@example.com", "agent").await;
    let ticket = server
        .ticket(outsider["accessToken"].as_str().unwrap())
        .await;
    let mut hidden = server
        .connect(&format!(
            "/ws/chat/{}?ticket={ticket}",
            session.conversation_id
        ))
        .await;
    hidden.expect_refusal("NOT_FOUND", 4004).await;
}

#[tokio::test]
async fn an_expired_ticket_is_refused() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    let ticket = server.ticket(&admin).await;
    tokio::time::pause();
    tokio::time::sleep(std::time::Duration::from_secs(31)).await;
    let mut late = server
        .connect(&format!(
            "/ws/chat/{}?ticket={ticket}",
            session.conversation_id
        ))
        .await;
    match late.recv_untimed().await {
        Received::Frame(frame) => assert_eq!(frame["payload"]["code"], "INVALID_TICKET"),
        other => panic!("unexpected {other:?}"),
    }
    match late.recv_untimed().await {
        Received::Closed { code, .. } => assert_eq!(code, 4001),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_their_agent_and_conversations_their_inbox_members() {
    let server = TestServer::start().await;
    let member = server.create_agent("m@example.com", "agent").await;
    let member_id = member["id"].as_i64().unwrap();
    server.add_member(server.inbox_id(), member_id).await;
    let outsider = server.create_agent("x@example.com", "agent").await;
    let mut member_feed = server
        .connect(&format!(
            "/ws/notifications?ticket={}",
            server.ticket(member["accessToken"].as_str().unwrap()).await
        ))
        .await;
    let mut outsider_feed = server
        .connect(&format!(
            "/ws/notifications?ticket={}",
            server
                .ticket(outsider["accessToken"].as_str().unwrap())
                .await
        ))
        .await;
    // Give both sockets time to subscribe before the events.
    for feed in [&mut member_feed, &mut outsider_feed] {
        feed.send("heartbeat", json!({})).await;
        feed.next_of("pong").await;
    }
    let session = server.create_session().await;
    let contact = member_feed.next_of("contact.created").await;
    assert_eq!(contact["name"], "Ada");
    let created = member_feed.next_of("conversation.created").await;
    assert_eq!(created["id"], session.conversation_id);
    assert_eq!(created["contactId"], contact["id"]);
    server
        .post(
            &format!(
                "/api/v1/conversations/{}/assignments",
                session.conversation_id
            ),
            &server.api_key(),
            json!({"assigneeId": member_id}),
        )
        .await;
    let notification = member_feed.next_of("notification.created").await;
    assert_eq!(notification["notificationType"], "conversation_assignment");
    assert_eq!(notification["agentId"], member_id);
    // The outsider saw none of it (agents' presence is account-wide, the rest is not).
    outsider_feed.send("heartbeat", json!({})).await;
    loop {
        let frame = outsider_feed.frame().await;
        if frame["type"] == "pong" {
            break;
        }
        assert_eq!(frame["type"], "presence.update", "{frame}");
        assert_eq!(frame["payload"]["contacts"], json!({}), "{frame}");
    }
    outsider_feed.send("resume", json!({"lastSeq": 0})).await;
    assert_eq!(
        outsider_feed.frame().await["payload"]["code"],
        "UNKNOWN_TYPE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_visitor_and_agent_sends_give_one_gapless_order_to_everyone() {
    let server =
        TestServer::start_with(|settings| settings.engine.rate_rules = RateRules::UNLIMITED).await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    // Assign first so the bot stays silent and only the two parties write.
    server
        .post(
            &format!(
                "/api/v1/conversations/{}/assignments",
                session.conversation_id
            ),
            &admin,
            json!({"assigneeId": server.demo["agent"]["id"]}),
        )
        .await;
    let mut watcher_a = server.connect_chat(&admin, session.conversation_id).await;
    let mut watcher_b = server
        .connect_chat(&server.api_key(), session.conversation_id)
        .await;
    let mut visitor = server.connect_session(&session).await;
    let rounds = 40;
    let agent_task = {
        let url = server.url(&format!(
            "/api/v1/conversations/{}/messages",
            session.conversation_id
        ));
        let admin = admin.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..rounds {
                // A small pseudo-random pause so the two writers interleave differently.
                tokio::time::sleep(std::time::Duration::from_micros((n * 7919 % 13) * 100)).await;
                let response = client
                    .post(&url)
                    .bearer_auth(&admin)
                    .json(&json!({"content": format!("agent {n}"), "clientMessageId": format!("a-{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        })
    };
    for n in 0..rounds {
        visitor
            .send(
                "visitor_message",
                json!({"text": format!("visitor {n}"), "clientMessageId": format!("v-{n}")}),
            )
            .await;
        if n % 3 == 0 {
            tokio::task::yield_now().await;
        }
    }
    agent_task.await.unwrap();
    let total = (rounds * 2) as usize;
    let mut orders = Vec::new();
    for watcher in [&mut watcher_a, &mut watcher_b] {
        let mut seen: Vec<(i64, String)> = Vec::new();
        while seen.len() < total {
            let message = watcher.next_of("message.created").await;
            seen.push((
                message["seq"].as_i64().unwrap(),
                message["content"].as_str().unwrap().to_string(),
            ));
        }
        let seqs: Vec<i64> = seen.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            seqs,
            (1..=total as i64).collect::<Vec<_>>(),
            "gapless and in order"
        );
        orders.push(seen);
    }
    assert_eq!(orders[0], orders[1], "every subscriber sees the same order");
    // The visitor saw every agent message, in the same relative order.
    let agent_order: Vec<String> = orders[0]
        .iter()
        .filter(|(_, content)| content.starts_with("agent"))
        .map(|(_, content)| content.clone())
        .collect();
    let mut visitor_saw = Vec::new();
    while visitor_saw.len() < rounds as usize {
        let frame = visitor.frame().await;
        if frame["type"] == "agent_response" {
            visitor_saw.push(frame["payload"]["text"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(visitor_saw, agent_order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ticket_or_with_another_accounts_nothing_opens() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let mut refused = server.connect("/ws/notifications").await;
    refused.expect_refusal("AUTH_REQUIRED", 4001).await;
    let mut refused = server.connect("/ws/notifications?ticket=tkt_nope").await;
    refused.expect_refusal("INVALID_TICKET", 4001).await;
    let other = server.engine().create_account("Other").await.unwrap();
    let ticket = server.ticket(&other.api_key).await;
    let mut ws = server
        .connect(&format!(
            "/ws/chat/{}?ticket={ticket}",
            session.conversation_id
        ))
        .await;
    ws.expect_refusal("NOT_FOUND", 4004).await;
    let mut ws = server.connect("/ws/chat/not-a-number?ticket=x").await;
    ws.expect_refusal("INVALID_TICKET", 4001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_ticket_opens_only_its_own_conversation() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, created) = server
        .post(
            "/api/v1/session",
            &server.publishable_key(),
            json!({"agentId": "demo"}),
        )
        .await;
    assert_eq!(status, 201);
    let contact_token = created["pubsubToken"].as_str().unwrap().to_string();
    let own = created["conversationId"].as_i64().unwrap();
    let other = server.create_session().await;

    // Over REST: its own conversation, without private notes; nothing else.
    let base = format!("/api/v1/conversations/{own}");
    server
        .post(
            &format!("{base}/messages"),
            &admin,
            json!({"content": "internal", "private": true}),
        )
        .await;
    let (status, messages) = server
        .get(&format!("{base}/messages"), &contact_token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(messages, json!([]), "the private note is not shown");
    assert_eq!(
        server
            .get(
                &format!("/api/v1/conversations/{}", other.conversation_id),
                &contact_token
            )
            .await
            .0,
        404
    );
    assert_eq!(
        server.get("/api/v1/conversations", &contact_token).await.0,
        403
    );
    assert_eq!(server.get("/api/v1/agents", &contact_token).await.0, 403);

    // Over a ticketed socket: its own conversation streams; the inbox's bot answers it.
    let mut chat = server.connect_chat(&contact_token, own).await;
    chat.send(
        "message",
        json!({"content": "hello", "clientMessageId": "k-1"}),
    )
    .await;
    assert_eq!(chat.next_of("ack").await["clientMessageId"], "k-1");
    let mine = chat.next_of("message.created").await;
    assert_eq!(
        (mine["seq"].clone(), mine["private"].clone()),
        (json!(2), json!(false))
    );
    let reply = chat.next_of("message.created").await;
    assert_eq!(reply["sender"]["type"], "bot");
    // A private note never reaches it live either.
    server
        .post(
            &format!("{base}/messages"),
            &admin,
            json!({"content": "secret", "private": true}),
        )
        .await;
    chat.send("heartbeat", json!({})).await;
    loop {
        let frame = chat.frame().await;
        assert_ne!(frame["payload"]["content"], "secret", "{frame}");
        if frame["type"] == "pong" {
            break;
        }
    }
    let ticket = server.ticket(&contact_token).await;
    let mut elsewhere = server
        .connect(&format!(
            "/ws/chat/{}?ticket={ticket}",
            other.conversation_id
        ))
        .await;
    elsewhere.expect_refusal("NOT_FOUND", 4004).await;
    let ticket = server.ticket(&contact_token).await;
    let mut notifications = server
        .connect(&format!("/ws/notifications?ticket={ticket}"))
        .await;
    notifications.expect_refusal("FORBIDDEN", 4001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_updates_are_announced_to_agents() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, created) = server
        .post(
            "/api/v1/session",
            &server.publishable_key(),
            json!({"agentId": "demo"}),
        )
        .await;
    let contact_token = created["pubsubToken"].as_str().unwrap().to_string();
    let (_, conversation) = server
        .get(
            &format!("/api/v1/conversations/{}", created["conversationId"]),
            &admin,
        )
        .await;
    let contact_id = conversation["contactId"].as_i64().unwrap();
    let mut feed = server
        .connect(&format!(
            "/ws/notifications?ticket={}",
            server.ticket(&admin).await
        ))
        .await;
    feed.send("heartbeat", json!({})).await;
    feed.next_of("pong").await;

    let path = format!("/api/v1/contacts/{contact_id}");
    let (status, contact) = server
        .post_method("PATCH", &path, &admin, json!({"email": "ada@example.com"}))
        .await;
    assert_eq!(status, 200, "{contact}");
    assert_eq!(contact["email"], "ada@example.com");
    let announced = feed.next_of("contact.updated").await;
    assert_eq!(announced["id"], contact_id);
    assert_eq!(announced["email"], "ada@example.com");

    // The contact may read and change itself; nobody from elsewhere may.
    let (status, own) = server.get(&path, &contact_token).await;
    assert_eq!(
        (status, own["email"].clone()),
        (200, json!("ada@example.com"))
    );
    let (status, _) = server
        .post_method("PATCH", &path, &contact_token, json!({"name": "Ada"}))
        .await;
    assert_eq!(status, 200);
    let other = server.create_session().await;
    let (_, other_conversation) = server
        .get(
            &format!("/api/v1/conversations/{}", other.conversation_id),
            &admin,
        )
        .await;
    let other_path = format!("/api/v1/contacts/{}", other_conversation["contactId"]);
    assert_eq!(server.get(&other_path, &contact_token).await.0, 404);
    let stranger = server.engine().create_account("Other").await.unwrap();
    assert_eq!(server.get(&path, &stranger.api_key).await.0, 404);
    let (status, body) = server
        .post_method("PATCH", &path, &admin, json!({"shoeSize": 42}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
}
