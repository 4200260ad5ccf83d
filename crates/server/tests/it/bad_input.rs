//! A battery of bad REST input, sent while a bystander visitor stays connected: every request
//! gets its documented error, the bystander never drops, the server stays healthy, and the
//! stored data is exactly what the good requests made.

use crate::common::*;
use serde_json::{json, Value};

/// Sends raw bytes as a request body with a content type; returns the status and JSON body.
async fn raw(
    server: &TestServer,
    method: &str,
    path: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method.parse().unwrap(), server.url(path))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rest_input_is_answered_and_harms_nobody() {
    let server = TestServer::start().await;
    let agent = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let session = server.create_session().await;
    let mut bystander = server.connect_session(&session).await;
    let conversation = session.conversation_id;
    let messages = format!("/api/v1/conversations/{conversation}/messages");

    // One good message, the only one that may be stored by this test's agent.
    let (status, _) = server
        .post(
            &messages,
            &agent,
            json!({"content": "the one good message"}),
        )
        .await;
    assert_eq!(status, 201);

    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "not JSON",
            b"{not json".to_vec(),
            "application/json",
            400,
            "INVALID_JSON",
        ),
        (
            "wrong type",
            br#"{"content": 5}"#.to_vec(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "unknown field",
            br#"{"content": "x", "admin": true}"#.to_vec(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "missing field",
            b"{}".to_vec(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "empty text",
            br#"{"content": ""}"#.to_vec(),
            "application/json",
            400,
            "EMPTY_MESSAGE",
        ),
        (
            "whitespace text",
            br#"{"content": "   "}"#.to_vec(),
            "application/json",
            400,
            "EMPTY_MESSAGE",
        ),
        (
            "invalid UTF-8",
            b"{\"content\": \"\xff\xfe\"}".to_vec(),
            "application/json",
            400,
            "INVALID_JSON",
        ),
        (
            "deep nesting",
            deep.into_bytes(),
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (
            "not JSON content type",
            br#"{"content": "x"}"#.to_vec(),
            "text/plain",
            415,
            "INVALID_REQUEST",
        ),
        (
            "oversized text",
            serde_json::to_vec(&json!({"content": "x".repeat(17 * 1024)})).unwrap(),
            "application/json",
            413,
            "MESSAGE_TOO_LARGE",
        ),
        (
            "oversized body",
            vec![b' '; 2 * 1024 * 1024],
            "application/json",
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (name, body, content_type, status, code) in cases {
        let (got, answer) = raw(&server, "POST", &messages, &agent, content_type, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{name}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }

    // Credentials: missing, forged, and another account's conversation.
    let (status, answer) = raw(
        &server,
        "POST",
        &messages,
        "",
        "application/json",
        br#"{"content":"x"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = raw(
        &server,
        "POST",
        &messages,
        "sb_agent_forged",
        "application/json",
        br#"{"content":"x"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    let (_, other) = server
        .post(
            "/api/v1/session",
            &server.publishable_key(),
            json!({"agentId": "demo"}),
        )
        .await;
    let other_pubsub = other["pubsubToken"].as_str().unwrap();
    let (status, _) = server
        .post(
            &messages,
            other_pubsub,
            json!({"content": "not my conversation"}),
        )
        .await;
    assert_eq!(status, 404, "another visitor's conversation is not found");
    let (status, _) = server
        .post(
            "/api/v1/conversations/999999999/messages",
            &agent,
            json!({"content": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .post(
            "/api/v1/conversations/not-a-number/messages",
            &agent,
            json!({"content": "x"}),
        )
        .await;
    assert_eq!(status, 400);

    // Text is stored verbatim: markup and odd characters are neither run nor cut.
    let verbatim = "<script>alert(1)</script> '; DROP TABLE messages; -- \u{1F600} \u{202E}";
    let (status, stored) = server
        .post(&messages, &agent, json!({"content": verbatim}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(stored["content"], verbatim);

    // The bystander is still connected and hears the next message; the server is healthy.
    let (status, _) = server
        .post(&messages, &agent, json!({"content": "still here?"}))
        .await;
    assert_eq!(status, 201);
    loop {
        let frame = bystander.frame().await;
        if frame["payload"]["text"] == "still here?" {
            break;
        }
    }
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );

    // Exactly the good messages were stored.
    let listed = reqwest::Client::new()
        .get(server.url(&format!("{messages}?afterSeq=0&limit=100")))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let from_agent: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"]["type"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        from_agent,
        ["the one good message", verbatim, "still here?"]
    );
}
