//! Limits that keep the server's doors open: slow clients that never finish their headers are
//! cut off, and connections past the cap are told so.

use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_half_open_connections_do_not_keep_a_normal_client_waiting() {
    let server = TestServer::start_with(|settings| {
        settings.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    // 300 clients that start a request and never finish its headers.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&server.base).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // A normal client is served meanwhile (the bound only keeps a broken server from
    // hanging the test).
    let health = tokio::time::timeout(
        Duration::from_secs(30),
        reqwest::get(server.url("/healthz")),
    )
    .await
    .expect("served while the slow clients wait")
    .unwrap();
    assert_eq!(health.status(), 200);
    // The slow ones are cut off once their time is up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut closed = 0;
    for stream in &mut slow {
        let mut buffer = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1, // EOF, an error answer, or a reset
            Err(_) => {}
        }
    }
    assert_eq!(closed, slow.len(), "every half-open connection was cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_with_a_clear_answer() {
    let server = TestServer::start_with(|settings| settings.max_connections = 4).await;
    let session = server.create_session().await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(server.connect_session(&session).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut stream = TcpStream::connect(&server.base).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("AT_CAPACITY"), "{answer}");
    // Room again once a socket closes.
    drop(sockets.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}
