//! The agent side: administration, the dashboard REST API, takeover of a demo session, private
//! notes, isolation between inboxes and accounts, and key rotation.

use crate::common::*;
use serde_json::{json, Value};

impl TestServer {
    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates an agent with the API key; returns its JSON (with `accessToken`).
    pub async fn create_agent(&self, email: &str, role: &str) -> Value {
        let (status, agent) = self
            .post(
                "/api/v1/agents",
                &self.api_key(),
                json!({"name": email.split('@').next().unwrap(), "email": email, "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{agent}");
        agent
    }

    pub fn inbox_id(&self) -> i64 {
        self.demo["inboxId"].as_i64().unwrap()
    }

    pub async fn add_member(&self, inbox_id: i64, agent_id: i64) {
        let (status, body) = self
            .post(
                &format!("/api/v1/inboxes/{inbox_id}/members"),
                &self.api_key(),
                json!({"agentIds": [agent_id]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

fn token(agent: &Value) -> String {
    agent["accessToken"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_takes_over_a_demo_session_from_the_bot() {
    let server = TestServer::start().await;
    let agent = server.create_agent("grace@example.com", "agent").await;
    let agent_id = agent["id"].as_i64().unwrap();
    server.add_member(server.inbox_id(), agent_id).await;
    let grace = token(&agent);

    let session = server.create_session().await;
    let mut visitor = server.connect_session(&session).await;
    visitor.say("hi", None).await;
    visitor.bot_turn().await;

    // The agent finds the conversation among the unassigned ones.
    let (status, list) = server
        .get(
            "/api/v1/conversations?status=open&assignee=unassigned",
            &grace,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let conversation = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == session.conversation_id)
        .expect("the session's conversation is listed");
    assert_eq!(conversation["assigneeId"], Value::Null);
    let (_, messages) = server
        .get(
            &format!(
                "/api/v1/conversations/{}/messages?afterSeq=0",
                session.conversation_id
            ),
            &grace,
        )
        .await;
    let seqs: Vec<i64> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(messages[0]["sender"]["type"], "contact");
    assert_eq!(messages[1]["sender"]["type"], "bot");

    // The visitor sees the human type and reply.
    let base = format!("/api/v1/conversations/{}", session.conversation_id);
    let (status, _) = server
        .post(&format!("{base}/typing"), &grace, json!({"isTyping": true}))
        .await;
    assert_eq!(status, 200);
    let typing = visitor.expect("typing_indicator").await;
    assert_eq!(
        typing,
        json!({"agentId": format!("agent:{agent_id}"), "isTyping": true})
    );
    let (status, reply) = server
        .post(
            &format!("{base}/messages"),
            &grace,
            json!({"content": "Hello, I'm Grace. How can I help?", "clientMessageId": "g-1"}),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["seq"], 3);
    assert_eq!(reply["sender"], json!({"type": "user", "id": agent_id}));
    let response = visitor.expect("agent_response").await;
    assert_eq!(response["text"], "Hello, I'm Grace. How can I help?");
    assert_eq!(response["agentId"], format!("agent:{agent_id}"));
    assert_eq!(response["seq"], 3);
    assert_eq!(response["iframeCommands"], json!([]));
    assert_eq!(response["suggestions"], json!([]));
    server
        .post(
            &format!("{base}/typing"),
            &grace,
            json!({"isTyping": false}),
        )
        .await;
    assert_eq!(visitor.expect("typing_indicator").await["isTyping"], false);

    // A retry of the reply returns the original.
    let (status, again) = server
        .post(
            &format!("{base}/messages"),
            &grace,
            json!({"content": "Hello, I'm Grace. How can I help?", "clientMessageId": "g-1"}),
        )
        .await;
    assert_eq!((status, again["id"].clone()), (200, reply["id"].clone()));

    // The reply assigned the conversation to Grace, and the bot is silent from now on.
    let (_, conversation) = server.get(&base, &grace).await;
    assert_eq!(conversation["assigneeId"], agent_id);
    visitor.say("Show me the dashboard", None).await;
    visitor.send("heartbeat", json!({})).await;
    assert_eq!(
        visitor.frame().await["type"],
        "pong",
        "no bot turn after the takeover"
    );
    let (_, messages) = server
        .get(&format!("{base}/messages?afterSeq=3"), &grace)
        .await;
    assert_eq!(
        messages.as_array().unwrap().len(),
        1,
        "only the visitor's message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_notes_never_reach_the_visitor() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    let mut visitor = server.connect_session(&session).await;
    let base = format!("/api/v1/conversations/{}", session.conversation_id);
    let (status, note) = server
        .post(
            &format!("{base}/messages"),
            &admin,
            json!({"content": "VIP customer, be nice", "private": true}),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["private"], true);
    server
        .post(
            &format!("{base}/typing"),
            &admin,
            json!({"isTyping": true, "isPrivate": true}),
        )
        .await;
    // A private note does not take the conversation over either.
    let (_, conversation) = server.get(&base, &admin).await;
    assert_eq!(conversation["assigneeId"], Value::Null);
    visitor.say("hi", None).await;
    let turn = visitor.bot_turn().await;
    assert_eq!(
        turn[0]["payload"]["seq"], 3,
        "the bot still answers; the note was seq 1"
    );
    visitor.send("resume", json!({"lastSeq": 0})).await;
    let replayed = visitor.expect("agent_response").await;
    assert_eq!(
        replayed["seq"], 3,
        "the note is not replayed to the visitor"
    );
    visitor.send("heartbeat", json!({})).await;
    visitor.expect("pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_see_only_their_inboxes_and_accounts_are_isolated() {
    let server = TestServer::start().await;
    let outsider = server.create_agent("out@example.com", "agent").await;
    let outsider_token = token(&outsider);
    let session = server.create_session().await;
    let path = format!("/api/v1/conversations/{}", session.conversation_id);

    // Not a member of the inbox: the conversation does not exist for this agent.
    let (status, body) = server.get(&path, &outsider_token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (_, list) = server.get("/api/v1/conversations", &outsider_token).await;
    assert_eq!(list, json!([]));
    let (status, _) = server
        .post(
            &format!("{path}/messages"),
            &outsider_token,
            json!({"content": "sneaky"}),
        )
        .await;
    assert_eq!(status, 404);

    // Made a member, it appears at once; removed, it disappears at once.
    let outsider_id = outsider["id"].as_i64().unwrap();
    server.add_member(server.inbox_id(), outsider_id).await;
    assert_eq!(server.get(&path, &outsider_token).await.0, 200);
    let response = reqwest::Client::new()
        .delete(server.url(&format!(
            "/api/v1/inboxes/{}/members/{outsider_id}",
            server.inbox_id()
        )))
        .bearer_auth(server.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.get(&path, &outsider_token).await.0, 404);

    // Another account's credentials see nothing of this one.
    let other = server.engine().create_account("Other").await.unwrap();
    assert_eq!(server.get(&path, &other.api_key).await.0, 404);
    let (status, _) = server
        .post(
            &format!("/api/v1/inboxes/{}/members", server.inbox_id()),
            &other.api_key,
            json!({"agentIds": [outsider_id]}),
        )
        .await;
    assert_eq!(status, 404);
    // No or a wrong credential is 401; an agent cannot administer; publishable keys cannot read.
    let response = reqwest::Client::new()
        .get(server.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.get(&path, "sb_agent_wrong").await.0, 401);
    let (status, _) = server
        .post(
            "/api/v1/agents",
            &outsider_token,
            json!({"name": "x", "email": "x@example.com"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(server.get(&path, &server.publishable_key()).await.0, 404);
    // The administrator sees every inbox.
    let admin = server.demo["agent"]["accessToken"].as_str().unwrap();
    assert_eq!(server.get(&path, admin).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_and_tokens_stop_working_at_once() {
    let server = TestServer::start().await;
    let old_api = server.api_key();
    let (status, rotated) = server
        .post(
            "/api/v1/account/rotate_key",
            &old_api,
            json!({"kind": "api"}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_api = rotated["apiKey"].as_str().unwrap().to_string();
    assert_eq!(server.get("/api/v1/agents", &old_api).await.0, 401);
    assert_eq!(server.get("/api/v1/agents", &new_api).await.0, 200);

    let agent_id = server.demo["agent"]["id"].as_i64().unwrap();
    let old_token = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, tokens) = server
        .post(
            &format!("/api/v1/agents/{agent_id}/rotate_token"),
            &new_api,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(server.get("/api/v1/profile", &old_token).await.0, 401);
    let (status, profile) = server
        .get("/api/v1/profile", tokens["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(profile["id"], agent_id);
    let (status, _) = server
        .post(
            "/api/v1/account/rotate_key",
            &new_api,
            json!({"kind": "secret"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_status_team_read_and_availability() {
    let server = TestServer::start().await;
    let admin = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = server.create_agent("ada@example.com", "agent").await;
    let agent_id = agent["id"].as_i64().unwrap();
    let session = server.create_session().await;
    let base = format!("/api/v1/conversations/{}", session.conversation_id);

    // An agent outside the inbox cannot be assigned.
    let (status, body) = server
        .post(
            &format!("{base}/assignments"),
            &admin,
            json!({"assigneeId": agent_id}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    server.add_member(server.inbox_id(), agent_id).await;
    let (status, conversation) = server
        .post(
            &format!("{base}/assignments"),
            &admin,
            json!({"assigneeId": agent_id}),
        )
        .await;
    assert_eq!(status, 200, "{conversation}");
    assert_eq!(conversation["assigneeId"], agent_id);
    // The assignee is notified.
    let (_, notifications) = server.get("/api/v1/notifications", &token(&agent)).await;
    assert_eq!(notifications["unreadCount"], 1);
    let notification = &notifications["notifications"][0];
    assert_eq!(notification["notificationType"], "conversation_assignment");
    assert_eq!(notification["conversationId"], session.conversation_id);
    let (status, read) = server
        .post(
            &format!("/api/v1/notifications/{}/read", notification["id"]),
            &token(&agent),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(read["readAt"].as_str().is_some());
    // Someone else's notification does not exist for the administrator.
    let (status, _) = server
        .post(
            &format!("/api/v1/notifications/{}/read", notification["id"]),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 404);

    let (status, conversation) = server
        .post(
            &format!("{base}/status"),
            &admin,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(
        (status, conversation["status"].as_str()),
        (200, Some("resolved"))
    );
    let (status, _) = server
        .post(
            &format!("{base}/status"),
            &admin,
            json!({"status": "closed"}),
        )
        .await;
    assert_eq!(status, 400);
    let (_, team) = server
        .post(
            "/api/v1/teams",
            &server.api_key(),
            json!({"name": "Billing"}),
        )
        .await;
    let (status, conversation) = server
        .post(
            &format!("{base}/team"),
            &admin,
            json!({"teamId": team["id"]}),
        )
        .await;
    assert_eq!(
        (status, conversation["teamId"].clone()),
        (200, team["id"].clone())
    );

    let mut visitor = server.connect_session(&session).await;
    visitor.say("hello", None).await;
    let (status, conversation) = server
        .post(&format!("{base}/read"), &admin, json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(conversation["agentLastReadSeq"], 1);

    let (status, me) = server
        .post_method(
            "PATCH",
            "/api/v1/profile",
            &token(&agent),
            json!({"availability": "busy"}),
        )
        .await;
    assert_eq!((status, me["availability"].as_str()), (200, Some("busy")));
    let (status, _) = server
        .post_method(
            "PATCH",
            "/api/v1/profile",
            &token(&agent),
            json!({"availability": "asleep"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .post_method(
            "PATCH",
            "/api/v1/profile",
            &server.api_key(),
            json!({"availability": "online"}),
        )
        .await;
    assert_eq!(status, 403);
}
