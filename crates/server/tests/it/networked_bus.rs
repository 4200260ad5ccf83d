//! A server on a networked bus: two servers on one Redis or NATS bus see each other's events
//! (sharing one SQLite file here only because that is the store this arrangement has; several
//! nodes in production share PostgreSQL); readiness follows the bus; every node has an id in its
//! metrics.

use crate::common::*;
use serde_json::json;
use std::time::Duration;
use switchboard_bus::testing::{unique_prefix, PrivateServer};

/// Two servers on one data directory (one SQLite store) and one bus.
async fn two_nodes(bus_url: &str) -> (TestServer, TestServer) {
    let a = TestServer::start_with(|settings| {
        settings.bus_url = Some(bus_url.to_string());
        settings.node_id = "node-a".into();
    })
    .await;
    let bus = bus_url.to_string();
    let b = TestServer::start_in(a._dir.clone(), move |settings| {
        settings.bus_url = Some(bus);
        settings.node_id = "node-b".into();
    })
    .await;
    (a, b)
}

async fn a_visitor_on_one_node_hears_an_agent_on_the_other(bus_url: &str) {
    let (a, b) = two_nodes(bus_url).await;
    let session = a.create_session().await;
    let mut visitor = a.connect_session(&session).await;
    // The agent writes through node b's REST API.
    let agent = a.demo["agent"]["accessToken"].as_str().unwrap().to_string();
    let (status, body) = b
        .post(
            &format!("/api/v1/conversations/{}/messages", session.conversation_id),
            &agent,
            json!({"content": "from node b"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    loop {
        let frame = visitor.frame().await;
        if frame["payload"]["text"] == "from node b" {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_redis_carry_each_others_events() {
    a_visitor_on_one_node_hears_an_agent_on_the_other(&format!(
        "redis://127.0.0.1:6379/?prefix={}",
        unique_prefix()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_nats_carry_each_others_events() {
    a_visitor_on_one_node_hears_an_agent_on_the_other(&format!(
        "nats://127.0.0.1:4222?prefix={}",
        unique_prefix()
    ))
    .await;
}

async fn ready_status(server: &TestServer) -> u16 {
    reqwest::get(server.url("/readyz"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_bus_is_away_and_returns_with_it() {
    let mut redis = PrivateServer::redis().await;
    let server = TestServer::start_with(|settings| {
        settings.bus_url = Some(format!("redis://127.0.0.1:{}", redis.port));
        settings.node_id = "ready-node".into();
    })
    .await;
    assert_eq!(ready_status(&server).await, 200);
    redis.kill();
    let mut down = false;
    for _ in 0..200 {
        if ready_status(&server).await == 503 {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(down, "/readyz fails while Redis is down");
    // Health is about the process, not its dependencies.
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_ready{node=\"ready-node\"} 0"),
        "{metrics}"
    );
    redis.restart().await;
    let mut up = false;
    for _ in 0..400 {
        if ready_status(&server).await == 200 {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "/readyz recovers with Redis");
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_ready{node=\"ready-node\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("switchboard_open_connections{node=\"ready-node\"} 0"));
}

#[tokio::test]
async fn an_unreachable_or_unknown_bus_stops_the_start_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let port = switchboard_bus::testing::free_port();
    for (url, says) in [
        (format!("redis://127.0.0.1:{port}"), "cannot reach the bus"),
        (format!("nats://127.0.0.1:{port}"), "cannot reach the bus"),
        ("kafka://somewhere".to_string(), "unsupported bus URL"),
    ] {
        let mut settings = test_settings(&dir);
        settings.bus_url = Some(url.clone());
        let error = match switchboard_server::start(settings).await {
            Ok(_) => panic!("{url} should not start"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(says), "{url}: {error}");
    }
}

/// Polls `check` until it holds, for at most ten seconds.
async fn within_ten_seconds<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within ten seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_membership_changed_on_one_node_takes_effect_on_the_other() {
    let (a, b) = two_nodes(&format!(
        "redis://127.0.0.1:6379/?prefix={}",
        unique_prefix()
    ))
    .await;
    let agent = a.create_agent("ada@example.com", "agent").await;
    let agent_id = agent["id"].as_i64().unwrap();
    let token = agent["accessToken"].as_str().unwrap().to_string();
    let session = a.create_session().await;
    let path = format!("/api/v1/conversations/{}", session.conversation_id);
    assert_eq!(b.get(&path, &token).await.0, 404, "not a member yet");

    // Added on node a, node b lets the agent in.
    a.add_member(a.inbox_id(), agent_id).await;
    within_ten_seconds("the membership reaching node b", || async {
        b.get(&path, &token).await.0 == 200
    })
    .await;

    // Removed on node a, node b shuts the agent out.
    let response = reqwest::Client::new()
        .delete(a.url(&format!(
            "/api/v1/inboxes/{}/members/{agent_id}",
            a.inbox_id()
        )))
        .bearer_auth(a.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    within_ten_seconds("the removal reaching node b", || async {
        b.get(&path, &token).await.0 == 404
    })
    .await;
}
