//! Webhook bots: a signed POST to the bot's URL; its JSON reply becomes the agent_response; a
//! failing bot gives the visitor a clear error after bounded retries.

use crate::common::*;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Calls {
    count: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
    signatures_valid: Mutex<Vec<bool>>,
}

async fn fake_bot(fail: bool, secret: &'static str) -> (String, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/bot",
        post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                seen.count.fetch_add(1, Ordering::SeqCst);
                let timestamp: i64 = headers["x-switchboard-timestamp"].to_str().unwrap().parse().unwrap();
                let signature = headers["x-switchboard-signature"].to_str().unwrap().to_string();
                let expected = switchboard_engine::webhook_signature(secret, timestamp, &body);
                seen.signatures_valid.lock().unwrap().push(signature == expected);
                seen.bodies.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                if fail {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "down".to_string());
                }
                (
                    StatusCode::OK,
                    json!({
                        "text": "From the webhook",
                        "iframeCommands": [{"action": "scroll", "selector": "#pricing"},
                                           {"action": "wait", "selector": "#x", "timeoutMs": 500}],
                        "suggestions": ["More"],
                        "leadForm": {"fields": ["email"], "cta": {"text": "Go", "url": "https://example.com"}}
                    })
                    .to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/bot"), calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_bot_answers_through_its_signed_endpoint() {
    let server = TestServer::start().await;
    let (url, calls) = fake_bot(false, "s3cret").await;
    let (status, body) = server
        .post(
            "/api/v1/bots",
            &server.api_key(),
            json!({"name": "hooked", "kind": "webhook", "url": url, "secret": "s3cret"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["secret"], "s3cret");
    let session = server.create_session_for("hooked").await;
    let mut ws = server.connect_session(&session).await;
    ws.say("anything", Some("w-1")).await;
    let turn = ws.bot_turn().await;
    assert_eq!(turn[0]["type"], "agent_response");
    let reply = &turn[0]["payload"];
    assert_eq!(reply["text"], "From the webhook");
    assert_eq!(reply["agentId"], "hooked");
    assert_eq!(
        reply["iframeCommands"],
        json!([{"action": "scroll", "selector": "#pricing"},
               {"action": "wait", "selector": "#x", "timeoutMs": 500}])
    );
    assert_eq!(turn[1]["type"], "lead_form");
    assert_eq!(calls.count.load(Ordering::SeqCst), 1);
    assert_eq!(*calls.signatures_valid.lock().unwrap(), vec![true]);
    let sent = calls.bodies.lock().unwrap()[0].clone();
    assert_eq!(sent["message"]["content"], "anything");
    assert_eq!(sent["message"]["clientMessageId"], "w-1");
    assert_eq!(sent["conversationId"], session.conversation_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_then_reported_to_the_visitor() {
    let server = TestServer::start().await;
    let (url, calls) = fake_bot(true, "k").await;
    let (status, _) = server
        .post(
            "/api/v1/bots",
            &server.api_key(),
            json!({"name": "broken", "kind": "webhook", "url": url, "secret": "k", "maxRetries": 2}),
        )
        .await;
    assert_eq!(status, 201);
    let session = server.create_session_for("broken").await;
    let mut ws = server.connect_session(&session).await;
    ws.say("hello", None).await;
    let turn = ws.bot_turn().await;
    assert_eq!(turn.len(), 1);
    assert_eq!(turn[0]["type"], "error");
    assert_eq!(turn[0]["payload"]["code"], "AGENT_UNAVAILABLE");
    assert_eq!(
        calls.count.load(Ordering::SeqCst),
        3,
        "one attempt and two retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_are_created_only_with_the_api_key_and_valid_settings() {
    let server = TestServer::start().await;
    let (status, _) = server
        .post(
            "/api/v1/bots",
            &server.publishable_key(),
            json!({"name": "x", "kind": "scripted"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .post(
            "/api/v1/bots",
            &server.api_key(),
            json!({"name": "x", "kind": "psychic"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    let (status, _) = server
        .post(
            "/api/v1/bots",
            &server.api_key(),
            json!({"name": "x", "kind": "webhook", "url": "ftp://nope"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = server
        .post(
            "/api/v1/bots",
            &server.api_key(),
            json!({"name": "demo", "kind": "scripted"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("CONFLICT"))
    );
}
