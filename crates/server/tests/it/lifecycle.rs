//! The seed's whole session lifecycle over a real socket.

use crate::common::*;
use serde_json::json;
use switchboard_core::SessionId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_connect_chat_drive_the_iframe_capture_a_lead_and_end() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    assert!(session.conversation_id > 0);
    let mut ws = server.connect_session(&session).await;

    // A message is acknowledged once stored, then the bot types, answers and stops typing.
    let ack = ws.say("Show me the dashboard", Some("c-1")).await;
    assert_eq!(ack["clientMessageId"], "c-1");
    assert_eq!(ack["seq"], 1);
    assert!(ack["id"].as_i64().is_some());
    let typing = ws.expect("typing_indicator").await;
    assert_eq!(typing, json!({"agentId": "demo", "isTyping": true}));
    let reply = ws.expect("agent_response").await;
    assert_eq!(reply["agentId"], "demo");
    assert_eq!(reply["seq"], 2);
    assert!(reply["text"].as_str().unwrap().contains("dashboard"));
    assert!(reply["speech"].as_str().is_some());
    let commands = reply["iframeCommands"].as_array().unwrap();
    assert_eq!(commands[0]["action"], "navigate");
    assert!(commands
        .iter()
        .any(|command| command["action"] == "highlight"
            && command["selector"] == "[data-testid='pipeline-chart']"));
    assert!(!reply["suggestions"].as_array().unwrap().is_empty());
    let typing = ws.expect("typing_indicator").await;
    assert_eq!(typing, json!({"agentId": "demo", "isTyping": false}));

    // The page reports what it did; the server keeps it for analytics and says nothing.
    ws.send(
        "iframe_event",
        json!({"event": "click", "selector": "#btn", "url": "/dashboard"}),
    )
    .await;
    // Heartbeats are answered with the server's time.
    ws.send("heartbeat", json!({})).await;
    let pong = ws.expect("pong").await;
    assert!(pong["ts"].as_i64().unwrap() > 1_700_000_000_000);
    let events = server
        .engine()
        .store()
        .iframe_events(&SessionId(session.id.clone()))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "click");
    assert_eq!(events[0].selector.as_deref(), Some("#btn"));
    assert_eq!(events[0].url.as_deref(), Some("/dashboard"));
    // The account reads them back over REST; nobody else does.
    let path = format!("/api/v1/session/{}/iframe_events", session.id);
    let (status, listed) = server.get(&path, &server.api_key()).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed[0]["selector"], "#btn");
    assert_eq!(listed[0]["url"], "/dashboard");
    let admin = server.demo["agent"]["accessToken"].as_str().unwrap();
    assert_eq!(server.get(&path, admin).await.0, 200);
    assert_eq!(server.get(&path, &server.publishable_key()).await.0, 403);
    let other = server.engine().create_account("Other").await.unwrap();
    assert_eq!(server.get(&path, &other.api_key).await.0, 404);
    assert_eq!(
        server
            .get("/api/v1/session/sess_nope/iframe_events", &server.api_key())
            .await
            .0,
        404
    );

    // Pricing brings the lead form, after the reply.
    ws.say("Tell me about pricing", None).await;
    let turn = ws.bot_turn().await;
    assert_eq!(turn[0]["type"], "agent_response");
    assert_eq!(turn[0]["payload"]["seq"], 4);
    assert_eq!(turn[1]["type"], "lead_form");
    assert_eq!(turn[1]["payload"]["fields"], json!(["email", "company"]));
    assert_eq!(turn[1]["payload"]["cta"]["text"], "Start Free Trial");

    // Something the bot has no rule for gets the fallback, never silence.
    ws.say("qwertyuiop", None).await;
    let turn = ws.bot_turn().await;
    assert_eq!(turn.len(), 1);
    assert!(turn[0]["payload"]["text"]
        .as_str()
        .unwrap()
        .contains("not sure"));

    // Typing and read receipts from the visitor are accepted silently.
    ws.send("typing", json!({"isTyping": true})).await;
    ws.send("read", json!({"seq": 6})).await;
    ws.send("heartbeat", json!({})).await;
    ws.expect("pong").await;
    let conversation = server
        .engine()
        .store()
        .conversation(switchboard_core::ConversationId(session.conversation_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.contact_last_read_seq, 6);

    // Ending the session closes its socket normally, and it cannot be joined again.
    let (status, body) = server.end_session(&session).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessionId"], session.id);
    assert_eq!(ws.closed().await, 1000);
    let mut again = server.connect_session(&session).await;
    again.expect_refusal("SESSION_EXPIRED", 4001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_client_message_id_is_stored_once_and_answered_once() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let mut ws = server.connect_session(&session).await;
    let first = ws.say("hello", Some("same")).await;
    ws.bot_turn().await;
    let again = ws.say("hello", Some("same")).await;
    assert_eq!(first, again, "the retry is acknowledged with the original");
    // No second bot turn: the next frame answers the heartbeat.
    ws.send("heartbeat", json!({})).await;
    ws.expect("pong").await;
    let messages = server
        .engine()
        .store()
        .messages_after(
            switchboard_core::ConversationId(session.conversation_id),
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(messages.len(), 2, "the visitor's message and one reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_of_one_session_both_see_the_bot() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let mut first = server.connect_session(&session).await;
    let mut second = server.connect_session(&session).await;
    first.say("hi", None).await;
    let on_first = first.bot_turn().await;
    let on_second = second.bot_turn().await;
    assert_eq!(on_first, on_second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_creation_is_refused_clearly() {
    let server = TestServer::start().await;
    let key = server.publishable_key();
    let (status, body) = server
        .post(
            "/api/v1/session",
            "sb_pub_wrong",
            json!({"agentId": "demo"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let (status, body) = server
        .post("/api/v1/session", &key, json!({"agentId": "nobody"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("PDP_NOT_FOUND"))
    );
    let (status, body) = server.post("/api/v1/session", &key, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    let (status, body) = server
        .post("/api/v1/session", &key, json!({"agentId": 5}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/session"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_JSON");
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/session"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"agentId\":\"{}\"}}",
            "x".repeat(2 * 1024 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // The API key may start sessions too; no credential may not.
    let (status, _) = server
        .post(
            "/api/v1/session",
            &server.api_key(),
            json!({"agentId": "demo"}),
        )
        .await;
    assert_eq!(status, 201);
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/session"))
        .json(&json!({"agentId": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Ending an unknown session, or one of another account, is a 404.
    let (status, body) = server
        .post("/api/v1/session/sess_unknown/end", &key, json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let other = server.engine().create_account("Other").await.unwrap();
    let session = server.create_session().await;
    let (status, _) = server
        .post(
            &format!("/api/v1/session/{}/end", session.id),
            &other.publishable_key,
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let server = TestServer::start().await;
    let health: serde_json::Value = reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_frames_is_answered_in_order() {
    let server = TestServer::start_with(|settings| {
        settings.engine.rate_rules = switchboard_core::limits::RateRules::UNLIMITED;
    })
    .await;
    let (status, _) = server
        .post(
            "/api/v1/bots",
            &server.api_key(),
            json!({"name": "quiet", "kind": "scripted"}),
        )
        .await;
    assert_eq!(status, 201);
    let session = server.create_session_for("quiet").await;
    let mut ws = server.connect_session(&session).await;
    // Sent back to back, so they arrive together and messages share commits.
    let mut expected = Vec::new();
    for n in 0..40 {
        match n {
            10 => {
                ws.send("heartbeat", json!({})).await;
                expected.push("pong".to_string());
            }
            20 => {
                ws.send_text("{broken").await;
                expected.push("error".to_string());
            }
            30 => {
                ws.send("visitor_message", json!({"text": ""})).await;
                expected.push("error".to_string());
            }
            _ => {
                ws.send(
                    "visitor_message",
                    json!({"text": format!("m{n}"), "clientMessageId": format!("b{n}")}),
                )
                .await;
                expected.push(format!("ack b{n}"));
            }
        }
    }
    let mut seen = Vec::new();
    let mut last_seq = 0;
    while seen.len() < expected.len() {
        let frame = ws.frame().await;
        let kind = frame["type"].as_str().unwrap().to_string();
        if kind == "ack" {
            let seq = frame["payload"]["seq"].as_i64().unwrap();
            assert_eq!(seq, last_seq + 1, "seqs follow the order sent");
            last_seq = seq;
            seen.push(format!(
                "ack {}",
                frame["payload"]["clientMessageId"].as_str().unwrap()
            ));
        } else {
            seen.push(kind);
        }
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_stopping_server_turns_new_requests_away_but_still_answers_health_checks() {
    let server = TestServer::start().await;
    server.engine().begin_shutdown();
    let (status, body) = server
        .post(
            "/api/v1/session",
            &server.publishable_key(),
            serde_json::json!({"agentId": "demo"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "SHUTTING_DOWN");
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}
