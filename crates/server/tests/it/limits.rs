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

/// A raw HTTP request from `local` (a loopback address of the test's choosing); the answer's
/// status line and body.
async fn request_from(server: &TestServer, local: &str, request: &str) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(server.base.parse().unwrap()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&answer[..read]).to_string()
}

/// A WebSocket upgrade to the health-free `/cable`, optionally saying who it forwards for.
fn upgrade(forwarded_for: Option<&str>) -> String {
    let forwarded = forwarded_for
        .map(|client| format!("X-Forwarded-For: {client}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /cable HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: actioncable-v1-json\r\n{forwarded}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_limits_count_direct_peers_and_the_clients_of_trusted_proxies() {
    let server = TestServer::start_with(|settings| {
        settings.max_connections_per_ip = Some(2);
        // 127.0.0.1 is the proxy; 127.0.0.2 and 127.0.0.3 are clients talking directly.
        settings.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;

    // Direct clients: two connections each, the third refused with 429 and a reason.
    let mut held = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        held.push(socket.connect(server.base.parse().unwrap()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = request_from(
        &server,
        "127.0.0.2",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.contains("TOO_MANY_CONNECTIONS"), "{refused}");
    // Another address is not affected.
    let other = request_from(
        &server,
        "127.0.0.3",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    // Closing one gives its place back.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = request_from(
        &server,
        "127.0.0.2",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");

    // Through the proxy, WebSockets count for the client the proxy names.
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(server.base.parse().unwrap()).await.unwrap();
        stream
            .write_all(upgrade(Some("198.51.100.7")).as_bytes())
            .await
            .unwrap();
        let mut answer = vec![0u8; 1024];
        let read = stream.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]).to_string();
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        sockets.push(stream);
    }
    let third = request_from(&server, "127.0.0.1", &upgrade(Some("198.51.100.7"))).await;
    assert!(third.starts_with("HTTP/1.1 429"), "{third}");
    assert!(third.contains("TOO_MANY_CONNECTIONS"), "{third}");
    // A spoofed hop before the proxy's own entry changes nothing.
    let spoofed = request_from(
        &server,
        "127.0.0.1",
        &upgrade(Some("1.2.3.4, 198.51.100.7")),
    )
    .await;
    assert!(spoofed.starts_with("HTTP/1.1 429"), "{spoofed}");
    // Another client behind the same proxy is served.
    let neighbour = request_from(&server, "127.0.0.1", &upgrade(Some("198.51.100.8"))).await;
    assert!(neighbour.starts_with("HTTP/1.1 101"), "{neighbour}");
    // Plain requests through the proxy are not counted.
    let health = request_from(
        &server,
        "127.0.0.1",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // A socket that closes gives its place back.
    drop(sockets.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = request_from(&server, "127.0.0.1", &upgrade(Some("198.51.100.7"))).await;
    assert!(back.starts_with("HTTP/1.1 101"), "{back}");
}
