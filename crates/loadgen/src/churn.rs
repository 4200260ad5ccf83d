//! `churn`: connections opened and closed at a set rate while messages flow to steady watchers;
//! prints the steady watchers' latency during the churn and how long opening a socket took.

use crate::server_process::{ServerProcess, UNLIMITED};
use crate::{ms, percentile};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct ChurnOptions {
    pub watchers: usize,
    pub rate: u64,
    pub churn_per_second: u64,
    pub seconds: u64,
}

pub async fn run(options: ChurnOptions) -> Value {
    let server = ServerProcess::start(UNLIMITED).await;
    let (base, demo) = (server.base.clone(), server.demo.clone());
    let http = reqwest::Client::new();
    let key = demo["publishableKey"].as_str().unwrap();
    let new_session = || crate::start_session(&http, &base, key, "demo");
    // Steady watchers: tabs of one session that an agent writes into.
    let session = new_session().await;
    let url = crate::session_url(&base, &session);
    let epoch = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let total = options.rate * options.seconds;
    let delivered = crate::progress::counter();
    let mut watchers = Vec::new();
    for _ in 0..options.watchers {
        let (mut socket, _) = crate::ws_connect(&url).await.unwrap();
        let (latencies, delivered) = (latencies.clone(), delivered.clone());
        watchers.push(tokio::spawn(async move {
            let mut seen = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(options.seconds + 30);
            while seen < total {
                let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await
                else {
                    break;
                };
                let Message::Text(text) = message else {
                    continue;
                };
                let text = text.as_str();
                let Some(start) = text.find("\"text\":\"t").map(|i| i + 9) else {
                    continue;
                };
                let Some(end) = text[start..].find('"').map(|i| start + i) else {
                    continue;
                };
                if let Ok(sent_ns) = text[start..end].parse::<u64>() {
                    let now_ns = epoch.elapsed().as_nanos() as u64;
                    latencies
                        .lock()
                        .unwrap()
                        .push(Duration::from_nanos(now_ns.saturating_sub(sent_ns)));
                    delivered.fetch_add(1, Ordering::Relaxed);
                    seen += 1;
                }
            }
        }));
    }
    // Sessions for the churning connections, made before the clock starts.
    let mut churn_sessions = Vec::new();
    for _ in 0..64 {
        churn_sessions.push(new_session().await);
    }
    let ticket = crate::ticket(&http, &base, demo["agent"]["accessToken"].as_str().unwrap()).await;
    let (publisher, _) = crate::ws_connect(format!(
        "ws://{base}/ws/chat/{}?ticket={}",
        session["conversationId"], ticket
    ))
    .await
    .unwrap();
    // The publisher reads its acknowledgements and echoes, or the server stops reading from it.
    let (mut publisher, mut answers) = publisher.split();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = answers.next().await {} });

    // Churn: open a socket, hold it a moment, close it — `churn_per_second` times a second.
    let opened = crate::progress::counter();
    let failed = crate::progress::counter();
    let _progress = crate::progress::start(
        "churn",
        &[
            ("delivered to watchers", &delivered),
            ("sockets opened", &opened),
            ("failed", &failed),
        ],
    );
    let connect_times = Arc::new(Mutex::new(Vec::new()));
    let churn = {
        let (opened, failed, connect_times) =
            (opened.clone(), failed.clone(), connect_times.clone());
        let base = base.clone();
        let run_for = Duration::from_secs(options.seconds);
        let every = Duration::from_secs_f64(1.0 / options.churn_per_second.max(1) as f64);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(every);
            let mut n = 0usize;
            while started.elapsed() < run_for {
                tick.tick().await;
                let session = &churn_sessions[n % churn_sessions.len()];
                n += 1;
                let url = format!(
                    "ws://{base}/ws/session/{}?token={}&lastSeq=0",
                    session["sessionId"].as_str().unwrap(),
                    session["token"].as_str().unwrap()
                );
                let (opened, failed, connect_times) =
                    (opened.clone(), failed.clone(), connect_times.clone());
                tokio::spawn(async move {
                    let begun = Instant::now();
                    match crate::ws_connect(&url).await {
                        Ok((mut socket, _)) => {
                            connect_times.lock().unwrap().push(begun.elapsed());
                            opened.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let _ = socket.close(None).await;
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        })
    };
    // Traffic to the steady watchers.
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * options.rate as f64) as u64).min(total);
        while sent < due {
            let frame = json!({"type": "message", "payload": {"content": format!("t{}", epoch.elapsed().as_nanos()), "clientMessageId": format!("c{sent}")}});
            publisher
                .send(Message::Text(frame.to_string().into()))
                .await
                .unwrap();
            sent += 1;
        }
    }
    let _ = churn.await;
    for watcher in watchers {
        let _ = watcher.await;
    }
    reader.abort();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let mut connects = connect_times.lock().unwrap().clone();
    connects.sort();
    json!({
        "scenario": "churn",
        "watchers": options.watchers,
        "messagesPerSecond": options.rate,
        "churnPerSecond": options.churn_per_second,
        "opened": opened.load(Ordering::Relaxed),
        "failed": failed.load(Ordering::Relaxed),
        "connectP50Ms": ms(percentile(&connects, 0.5)),
        "connectP99Ms": ms(percentile(&connects, 0.99)),
        "delivered": latencies.len(),
        "expected": total * options.watchers as u64,
        "deliveryP50Ms": ms(percentile(&latencies, 0.5)),
        "deliveryP99Ms": ms(percentile(&latencies, 0.99)),
    })
}
