//! Heartbeat and session-expiry deadlines, under paused time (no sleeping).

use crate::common::*;
use serde_json::json;
use std::time::Duration;

/// Starts a server and a session in real time, then pauses the clock.
async fn paused_session(session_ttl: Duration) -> (TestServer, Session) {
    let server = TestServer::start_with(|settings| {
        settings.engine.session_ttl = session_ttl;
        settings.engine.heartbeat_timeout = Duration::from_secs(90);
    })
    .await;
    let session = server.create_session().await;
    tokio::time::pause();
    (server, session)
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_heartbeat_timeout() {
    let (server, session) = paused_session(Duration::from_secs(3600)).await;
    let mut ws = server.connect_session(&session).await;
    let started = tokio::time::Instant::now();
    match ws.recv_untimed().await {
        Received::Closed { code, .. } => assert_eq!(code, 4002),
        other => panic!("expected the heartbeat close, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(90) && waited < Duration::from_secs(95),
        "{waited:?}"
    );
}

#[tokio::test]
async fn heartbeats_keep_a_socket_open() {
    let (server, session) = paused_session(Duration::from_secs(3600)).await;
    let mut ws = server.connect_session(&session).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        ws.send("heartbeat", json!({})).await;
        match ws.recv_untimed().await {
            Received::Frame(frame) => assert_eq!(frame["type"], "pong"),
            other => panic!("the socket closed after heartbeats: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_session_that_times_out_closes_its_socket_and_its_token_stops_working() {
    let (server, session) = paused_session(Duration::from_secs(120)).await;
    let mut ws = server.connect_session(&session).await;
    // Keep the socket alive past the session's end.
    let mut refused = None;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        ws.send("heartbeat", json!({})).await;
        match ws.recv_untimed().await {
            Received::Frame(frame) if frame["type"] == "pong" => continue,
            Received::Frame(frame) => {
                refused = Some(frame);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let error = refused.expect("the session expired while the socket was open");
    assert_eq!(error["type"], "error");
    assert_eq!(error["payload"]["code"], "SESSION_EXPIRED");
    match ws.recv_untimed().await {
        Received::Closed { code, .. } => assert_eq!(code, 4001),
        other => panic!("expected close 4001, got {other:?}"),
    }
    // Its token has expired with it.
    let mut again = server.connect_session(&session).await;
    let error = match again.recv_untimed().await {
        Received::Frame(frame) => frame,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(error["payload"]["code"], "INVALID_TOKEN");
}
