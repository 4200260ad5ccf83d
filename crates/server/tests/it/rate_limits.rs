//! Rate limits in every dialect and REST, with the limiter's clock stepped by the test instead
//! of waited for: the eleventh message in a minute is refused in the dialect's own form and not
//! stored, the allowance is one per principal across its connections and dialects, the
//! `retryAfter` is the wait that works, and the limit recovers.

use crate::common::*;
use crate::wire::{Cable, Contact, SocketIo};
use serde_json::{json, Value};
use std::time::Duration;
use switchboard_core::ConversationId;

async fn stored_texts(server: &TestServer, conversation: i64) -> Vec<String> {
    server
        .engine()
        .store()
        .messages_after(ConversationId(conversation), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|message| message.content)
        .collect()
}

/// The `Retry-After` header of a refused request, in seconds.
fn retry_after_seconds(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn step(server: &TestServer, ms: u64) {
    server.engine().limiter().advance(Duration::from_millis(ms));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitors_allowance_is_shared_by_its_native_and_socket_io_connections() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let conversation = session.conversation_id;
    let mut native = server.connect_session(&session).await;
    let mut socketio = SocketIo::connect(
        &server,
        json!({"token": session.token, "conversationId": conversation}),
    )
    .await;

    // Five messages on each connection: ten in all, the whole allowance.
    for n in 0..5 {
        native.say(&format!("native {n}"), None).await;
        native.bot_turn().await;
    }
    for n in 0..5 {
        socketio
            .send(&format!(
                r#"42{n}["send-message",{{"conversationId":{conversation},"content":"socket {n}"}}]"#
            ))
            .await;
        loop {
            let text = socketio.text().await;
            if text.starts_with(&format!("43{n}")) {
                assert!(text.contains(&format!("socket {n}")), "{text}");
                break;
            }
        }
    }

    // The eleventh, on Socket.IO: rate-limit-exceeded with the wait in milliseconds.
    socketio
        .emit(
            "send-message",
            json!({"conversationId": conversation, "content": "eleventh"}),
        )
        .await;
    let limited = socketio.event("rate-limit-exceeded").await;
    let retry_after = limited["retryAfter"].as_u64().unwrap();
    assert!((1..=6_000).contains(&retry_after), "{limited}");

    // The twelfth, on the native socket, is refused too: one allowance for the principal.
    native
        .send("visitor_message", json!({"text": "twelfth"}))
        .await;
    let error = native.next_of("error").await;
    assert_eq!(error["code"], "RATE_LIMITED");
    let retry_after = error["retryAfter"].as_u64().unwrap();
    assert!((1..=6_000).contains(&retry_after), "{error}");

    // Neither was stored.
    let texts = stored_texts(&server, conversation).await;
    assert!(!texts
        .iter()
        .any(|text| text == "eleventh" || text == "twelfth"));
    // (The bot's replies to the Socket.IO messages may still be on their way, so only the
    // visitor's own are counted.)
    let mut visitors: Vec<&str> = texts
        .iter()
        .map(String::as_str)
        .filter(|text| text.starts_with("native ") || text.starts_with("socket "))
        .collect();
    visitors.sort_unstable();
    let expected: Vec<String> = (0..5)
        .map(|n| format!("native {n}"))
        .chain((0..5).map(|n| format!("socket {n}")))
        .collect();
    assert_eq!(visitors, expected, "exactly the ten allowed: {texts:?}");

    // Before the wait is over it is still refused (the margin covers the real time this test
    // takes); once it is over, accepted.
    step(&server, retry_after.saturating_sub(1_000));
    native
        .send("visitor_message", json!({"text": "too early"}))
        .await;
    assert_eq!(native.next_of("error").await["code"], "RATE_LIMITED");
    step(&server, 1_000);
    native
        .send("visitor_message", json!({"text": "on time"}))
        .await;
    let ack = native.next_of("ack").await;
    assert!(ack["seq"].as_i64().unwrap() > 0, "{ack}");
    assert!(stored_texts(&server, conversation)
        .await
        .contains(&"on time".to_string()));
    assert!(!stored_texts(&server, conversation)
        .await
        .contains(&"too early".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_messages_over_rest_and_typing_over_cable_share_its_limits() {
    let server = TestServer::start().await;
    let contact = Contact::create(&server).await;
    let mut cable = Cable::connect(&server).await;
    assert_eq!(
        cable.subscribe(&contact.identifier()).await,
        "confirm_subscription"
    );

    for n in 0..10 {
        let (status, body) = server
            .post(
                &contact.messages_path(),
                "",
                json!({"content": format!("rest {n}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let response = reqwest::Client::new()
        .post(server.url(&contact.messages_path()))
        .json(&json!({"content": "eleventh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let header = retry_after_seconds(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    let retry_after = body["error"]["retryAfter"].as_u64().unwrap();
    assert!((1..=6_000).contains(&retry_after), "{body}");
    assert_eq!(
        header,
        retry_after.div_ceil(1000),
        "whole seconds, rounded up"
    );

    // Typing over cable: three a second, then an error event carrying retryAfter.
    let typing = json!({"action": "typing_on", "conversation_id": contact.conversation_id});
    for _ in 0..3 {
        cable
            .command("message", &contact.identifier(), Some(typing.clone()))
            .await;
    }
    assert!(
        cable
            .drain(Duration::from_millis(300))
            .await
            .iter()
            .all(|frame| frame["message"]["event"] != "error"),
        "three typing events a second are allowed"
    );
    cable
        .command("message", &contact.identifier(), Some(typing.clone()))
        .await;
    let error = cable.event("error").await;
    assert_eq!(error["code"], "RATE_LIMITED");
    let typing_wait = error["retryAfter"].as_u64().unwrap();
    assert!((1..=1_000).contains(&typing_wait), "{error}");
    step(&server, typing_wait);
    cable
        .command("message", &contact.identifier(), Some(typing))
        .await;
    assert!(cable
        .drain(Duration::from_millis(300))
        .await
        .iter()
        .all(|frame| frame["message"]["event"] != "error"));

    // The message limit recovers after its wait.
    step(&server, retry_after);
    let (status, body) = server
        .post(&contact.messages_path(), "", json!({"content": "on time"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let texts = stored_texts(&server, contact.conversation_id).await;
    assert!(!texts.contains(&"eleventh".to_string()));
    assert!(texts.contains(&"on time".to_string()));
}

/// A server whose account 1 (the demo workspace) lets its API key make `per_minute` requests a
/// minute; every other rule keeps its default.
async fn key_limited_to(per_minute: u32) -> TestServer {
    TestServer::start_with(|settings| {
        let mut rules = settings.engine.rate_rules;
        rules.integration.all = Some(switchboard_core::limits::Rate::per_minute(per_minute));
        settings
            .engine
            .account_rate_rules
            .insert(switchboard_core::AccountId(1), rules);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_can_have_limits_of_its_own() {
    let server = key_limited_to(3).await;
    assert_eq!(server.demo["accountId"], 1);
    let session = server.create_session().await;
    let path = format!("/api/v1/conversations/{}/messages", session.conversation_id);
    for n in 0..3 {
        let (status, body) = server
            .post(
                &path,
                &server.api_key(),
                json!({"content": format!("api {n}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = server
        .post(&path, &server.api_key(), json!({"content": "fourth"}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // Agents of the same account keep the role's defaults.
    let agent = server.demo["agent"]["accessToken"].as_str().unwrap();
    for n in 0..5 {
        let (status, body) = server
            .post(&path, agent, json!({"content": format!("agent {n}")}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert!(!stored_texts(&server, session.conversation_id)
        .await
        .contains(&"fourth".to_string()));
}

#[test]
fn account_limits_are_read_from_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.toml");
    std::fs::write(
        &path,
        r#"
max_connections_per_ip = 50
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]

[account_rate_limits.7.visitor]
messages = { count = 30, period_ms = 60000 }
all = { count = 100, period_ms = 60000 }
"#,
    )
    .unwrap();
    let mut settings = switchboard_server::Settings::new(dir.path());
    settings.apply_file(&path).unwrap();
    let rules = settings.engine.account_rate_rules[&switchboard_core::AccountId(7)];
    assert_eq!(
        rules.visitor.messages,
        Some(switchboard_core::limits::Rate::per_minute(30))
    );
    assert_eq!(rules.visitor.typing, None, "a key left out is unlimited");
    assert_eq!(
        rules.agent,
        switchboard_core::limits::RateRules::default().agent,
        "a role left out keeps its defaults"
    );
    assert_eq!(settings.max_connections_per_ip, Some(50));
    assert_eq!(settings.trusted_proxies.len(), 2);

    for (bad, says) in [
        ("[account_rate_limits.seven.visitor]\n", "not an account id"),
        ("trusted_proxies = [\"10.0.0.0/40\"]\n", "not an address"),
        (
            "[account_rate_limits.7.visitor]\nmessages = { count = 1, every = 5 }\n",
            "unknown field",
        ),
    ] {
        std::fs::write(&path, bad).unwrap();
        let error = switchboard_server::Settings::new(dir.path())
            .apply_file(&path)
            .unwrap_err()
            .to_string();
        assert!(error.contains(says), "{bad} → {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_key_request_counts_once_reads_included() {
    let server = key_limited_to(4).await;
    let session = server.create_session().await;
    let key = server.api_key();
    let messages = format!("/api/v1/conversations/{}/messages", session.conversation_id);
    // A message (counted once, by the engine, not again for the request) and three reads.
    let (status, body) = server
        .post(&messages, &key, json!({"content": "one"}))
        .await;
    assert_eq!(status, 201, "{body}");
    for path in [messages.as_str(), "/api/v1/conversations", "/api/v1/bots"] {
        let (status, body) = server.get(path, &key).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // The fifth request of the minute, a read, is refused and says when to come back.
    let response = reqwest::Client::new()
        .get(server.url(&messages))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after = retry_after_seconds(&response);
    assert!(retry_after >= 1, "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // So is a write, and nothing is stored for it.
    let (status, _) = server
        .post(&messages, &key, json!({"content": "over"}))
        .await;
    assert_eq!(status, 429);
    // The account's agents are not held back by its key's limit.
    let agent = server.demo["agent"]["accessToken"].as_str().unwrap();
    let (status, listed) = server.get(&messages, agent).await;
    assert_eq!(status, 200, "{listed}");
    let contents = stored_texts(&server, session.conversation_id).await;
    assert!(
        contents.iter().any(|text| text == "one") && !contents.iter().any(|text| text == "over"),
        "{contents:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_reads_are_limited_apart_from_its_events() {
    let server = TestServer::start_with(|settings| {
        settings.engine.rate_rules.agent.requests =
            Some(switchboard_core::limits::Rate::per_minute(3));
    })
    .await;
    let session = server.create_session().await;
    let agent = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let messages = format!("/api/v1/conversations/{}/messages", session.conversation_id);
    for path in [
        messages.as_str(),
        "/api/v1/conversations",
        messages.as_str(),
    ] {
        let (status, body) = server.get(path, &agent).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // The fourth read of the minute is refused and says when to come back.
    let response = reqwest::Client::new()
        .get(server.url("/api/v1/conversations"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(retry_after_seconds(&response) >= 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // The agent's events have an allowance of their own: a message still goes.
    let (status, body) = server
        .post(&messages, &agent, json!({"content": "still heard"}))
        .await;
    assert_eq!(status, 201, "{body}");
    // Another agent's reads are not held back, and a minute later this one's are let through.
    let (status, other) = server
        .post(
            "/api/v1/agents",
            &server.api_key(),
            json!({"name": "Grace", "email": "grace@example.com", "role": "agent"}),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let other_token = other["accessToken"].as_str().unwrap();
    let (status, body) = server.get("/api/v1/conversations", other_token).await;
    assert_eq!(status, 200, "{body}");
    step(&server, 60_000);
    let (status, body) = server.get("/api/v1/conversations", &agent).await;
    assert_eq!(status, 200, "{body}");
}
