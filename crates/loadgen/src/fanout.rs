//! `fanout`: one conversation watched by K connections while messages are published at a set
//! rate; deliveries per second and send-to-receive latency. Run against Switchboard (a separate
//! server process: an agent's chat socket publishes, K visitor tabs of one session receive) and,
//! in the same run, against the bare baseline (`baseline.rs`) with the same clients.

use crate::baselines::{comparison, socketio_connect, BaselineProcess, Socket};
use crate::progress::{self, counter};
use crate::server_process::{cpu_seconds, ServerProcess, UNLIMITED};
use crate::{ms, percentile};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub struct FanoutOptions {
    pub receivers: usize,
    pub rate: u64,
    pub seconds: u64,
}

/// Runs the measurement: `publish` sends one frame carrying a timestamp; each receiver finds
/// the timestamp in what it reads with `extract`.
async fn measure(
    label: &str,
    options: &FanoutOptions,
    server_pid: u32,
    receivers: Vec<Socket>,
    publisher: Socket,
    frame_for: impl Fn(u64, u64) -> String,
    extract: fn(&str) -> Option<u64>,
) -> Value {
    let epoch = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let total = options.rate * options.seconds;
    let (published, delivered) = (counter(), counter());
    let _progress = progress::start(
        format!("fanout · {label} · {} messages/s", options.rate),
        &[("delivered", &delivered), ("published", &published)],
    );
    let mut tasks = Vec::new();
    for mut receiver in receivers {
        let (latencies, delivered) = (latencies.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(total as usize);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while (mine.len() as u64) < total {
                let next = tokio::time::timeout_at(deadline, receiver.next()).await;
                let Ok(Some(Ok(Message::Text(text)))) = next else {
                    if matches!(next, Err(_) | Ok(None) | Ok(Some(Err(_)))) {
                        break;
                    }
                    continue;
                };
                if let Some(sent_ns) = extract(text.as_str()) {
                    let now_ns = epoch.elapsed().as_nanos() as u64;
                    mine.push(Duration::from_nanos(now_ns.saturating_sub(sent_ns)));
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    // The publisher reads what it is sent (Switchboard acknowledges every message and echoes it
    // to its sender), or its server would stop reading from a peer that never reads.
    let (mut publisher, mut answers) = publisher.split();
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = answers.next().await {} });
    // Publish at the set rate: a batch each millisecond.
    let cpu_before = cpu_seconds(server_pid);
    let client_cpu_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * options.rate as f64) as u64).min(total);
        while sent < due {
            let frame = frame_for(sent, epoch.elapsed().as_nanos() as u64);
            publisher.send(Message::Text(frame.into())).await.unwrap();
            sent += 1;
            published.fetch_add(1, Ordering::Relaxed);
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    reader.abort();
    let elapsed = started.elapsed();
    let server_cpu = cpu_seconds(server_pid) - cpu_before;
    let client_cpu = cpu_seconds(std::process::id()) - client_cpu_before;
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    json!({
        "serverCpuSeconds": server_cpu,
        "serverCpuMicrosPerDelivery": server_cpu * 1e6 / latencies.len().max(1) as f64,
        "clientCpuSeconds": client_cpu,
        "seconds": elapsed.as_secs_f64(),
        "receivers": options.receivers,
        "offeredPerSecond": options.rate * options.receivers as u64,
        "delivered": latencies.len(),
        "expected": total * options.receivers as u64,
        "deliveredPerSecond": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50Ms": ms(percentile(&latencies, 0.5)),
        "p99Ms": ms(percentile(&latencies, 0.99)),
        "maxMs": ms(percentile(&latencies, 1.0)),
    })
}

async fn switchboard(options: &FanoutOptions) -> Value {
    let server = ServerProcess::start(&format!("outbound_queue = 65536\n{UNLIMITED}")).await;
    let (base, demo) = (server.base.clone(), server.demo.clone());
    let http = reqwest::Client::new();
    let session = crate::start_session(
        &http,
        &base,
        demo["publishableKey"].as_str().unwrap(),
        "demo",
    )
    .await;
    let url = crate::session_url(&base, &session);
    let mut receivers = Vec::new();
    for _ in 0..options.receivers {
        receivers.push(crate::ws_connect(&url).await.unwrap().0);
    }
    let ticket = crate::ticket(&http, &base, demo["agent"]["accessToken"].as_str().unwrap()).await;
    let conversation_id = session["conversationId"].as_i64().unwrap();
    let publisher = crate::ws_connect(format!(
        "ws://{base}/ws/chat/{conversation_id}?ticket={}",
        ticket
    ))
    .await
    .unwrap()
    .0;
    measure(
        Server::Switchboard.name(),
        options,
        server.pid(),
        receivers,
        publisher,
        |n, now_ns| json!({"type": "message", "payload": {"content": format!("t{now_ns}"), "clientMessageId": format!("f{n}")}}).to_string(),
        |text| {
            let start = text.find("\"text\":\"t")? + 9;
            let end = start + text[start..].find('"')?;
            text[start..end].parse().ok()
        },
    )
    .await
}

async fn baseline(options: &FanoutOptions) -> Value {
    let (server, port) = BaselineProcess::start_bare().await;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut receivers = Vec::new();
    for _ in 0..options.receivers {
        receivers.push(crate::ws_connect(&url).await.unwrap().0);
    }
    let publisher = crate::ws_connect(&url).await.unwrap().0;
    measure(
        Server::Bare.name(),
        options,
        server.pid(),
        receivers,
        publisher,
        |_, now_ns| format!("t{now_ns}"),
        |text| text.strip_prefix('t')?.parse().ok(),
    )
    .await
}

async fn node_socketio(options: &FanoutOptions) -> Result<Value, String> {
    let (server, port) = BaselineProcess::start_node().await?;
    let mut receivers = Vec::new();
    for _ in 0..options.receivers {
        receivers.push(socketio_connect(port, "room").await?);
    }
    let publisher = socketio_connect(port, "room").await?;
    Ok(measure(
        Server::Node.name(),
        options,
        server.pid(),
        receivers,
        publisher,
        |_, now_ns| format!("42[\"message\",\"t{now_ns}\"]"),
        |text| {
            let start = text.find("\"t")? + 2;
            let end = start + text[start..].find('"')?;
            text[start..end].parse().ok()
        },
    )
    .await)
}

/// The three servers a scenario measures, one after another with the same clients.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Switchboard,
    Bare,
    Node,
}

impl Server {
    pub const ALL: [Server; 3] = [Server::Switchboard, Server::Bare, Server::Node];

    /// The key of this server's figures in a scenario's JSON.
    pub fn key(self) -> &'static str {
        match self {
            Server::Switchboard => "switchboard",
            Server::Bare => "bareBaseline",
            Server::Node => "nodeSocketIo",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Server::Switchboard => "switchboard",
            Server::Bare => "bare baseline",
            Server::Node => "node socket.io",
        }
    }
}

/// One fan-out measurement on one server (its own process, started and stopped here).
pub async fn run_on(server: Server, options: &FanoutOptions) -> Result<Value, String> {
    match server {
        Server::Switchboard => Ok(switchboard(options).await),
        Server::Bare => Ok(baseline(options).await),
        Server::Node => node_socketio(options).await,
    }
}

pub async fn run(options: FanoutOptions) -> Value {
    eprintln!(
        "fanout on switchboard: {} receivers, {} messages/s, {} s …",
        options.receivers, options.rate, options.seconds
    );
    let ours = switchboard(&options).await;
    eprintln!("fanout on the bare baseline …");
    let bare = baseline(&options).await;
    eprintln!("fanout on the Node.js Socket.IO baseline …");
    let node = node_socketio(&options).await;
    comparison(
        "fanout",
        "deliveredPerSecond",
        "serverCpuMicrosPerDelivery",
        ours,
        bare,
        node,
    )
}

/// The rates (messages published per second) a sweep tries by default: fine steps where the Node
/// server saturates with 1,000 receivers, coarse ones up to where Switchboard does.
pub const SWEEP_RATES: [u64; 15] = [
    25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1000, 1200, 1400, 1600, 2000,
];

pub struct SweepOptions {
    pub receivers: usize,
    /// Messages published per second, in rising order; each server is measured at each until
    /// it saturates.
    pub rates: Vec<u64>,
    pub seconds: u64,
    /// The latency bound of the "sustained" figure.
    pub p99_bound_ms: f64,
}

/// A run a server did not keep up with: it delivered less than 90% of the offered rate, or
/// not every message before the receivers gave up. Higher rates only show it falling further
/// behind, so the sweep stops there.
fn saturated(row: &Value) -> bool {
    let delivered = row["delivered"].as_u64().unwrap_or(0);
    let expected = row["expected"].as_u64().unwrap_or(u64::MAX);
    let achieved = row["deliveredPerSecond"].as_f64().unwrap_or(0.0);
    let offered = row["offeredPerSecond"].as_f64().unwrap_or(f64::MAX);
    delivered < expected || achieved < 0.9 * offered
}

/// The peak of a server's sweep, and its best run that delivered everything within the
/// latency bound: `{"peak": row, "sustained": row}` (either null when no run qualifies).
fn best_of(rows: &[Value], p99_bound_ms: f64) -> Value {
    let achieved = |row: &&Value| row["deliveredPerSecond"].as_f64().unwrap_or(0.0);
    let by_achieved = |a: &&Value, b: &&Value| achieved(a).total_cmp(&achieved(b));
    let peak = rows.iter().max_by(by_achieved);
    let sustained = rows
        .iter()
        .filter(|row| {
            row["delivered"] == row["expected"]
                && row["p99Ms"].as_f64().unwrap_or(f64::MAX) <= p99_bound_ms
        })
        .max_by(by_achieved);
    json!({"peak": peak, "sustained": sustained})
}

/// Fan-out at rising rates on each server until it saturates: where each one peaks, and the
/// most it sustains with every message delivered and p99 within the bound. The comparison the
/// targets ask for ("deliveries per second at equal or better p99") is between those.
pub async fn sweep(options: SweepOptions) -> Value {
    let mut result = json!({
        "scenario": "fanout-sweep",
        "receivers": options.receivers,
        "seconds": options.seconds,
        "p99BoundMs": options.p99_bound_ms,
    });
    for server in Server::ALL {
        let mut rows = Vec::new();
        let mut error = None;
        for &rate in &options.rates {
            eprintln!(
                "fanout sweep on {}: {} receivers, {rate} messages/s …",
                server.name(),
                options.receivers
            );
            let run = FanoutOptions {
                receivers: options.receivers,
                rate,
                seconds: options.seconds,
            };
            match run_on(server, &run).await {
                Ok(row) => {
                    let stop = saturated(&row);
                    rows.push(row);
                    if stop {
                        break;
                    }
                }
                Err(message) => {
                    error = Some(message);
                    break;
                }
            }
        }
        let best = best_of(&rows, options.p99_bound_ms);
        result[server.key()] = json!({
            "runs": rows,
            "peak": best["peak"],
            "sustained": best["sustained"],
            "error": error,
        });
    }
    let figure = |result: &Value, server: Server, which: &str| {
        result[server.key()][which]["deliveredPerSecond"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let ratio = |ours: f64, theirs: f64| match theirs > 0.0 {
        true => json!(ours / theirs),
        false => Value::Null,
    };
    for which in ["peak", "sustained"] {
        let ours = figure(&result, Server::Switchboard, which);
        let (bare, node) = (
            figure(&result, Server::Bare, which),
            figure(&result, Server::Node, which),
        );
        result[format!("{which}RatioToBare")] = ratio(ours, bare);
        result[format!("{which}RatioToNode")] = ratio(ours, node);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(offered: u64, achieved: u64, delivered: u64, expected: u64, p99: f64) -> Value {
        json!({
            "offeredPerSecond": offered,
            "deliveredPerSecond": achieved as f64,
            "delivered": delivered,
            "expected": expected,
            "p99Ms": p99,
        })
    }

    #[test]
    fn a_run_that_falls_behind_or_loses_messages_is_saturated() {
        assert!(!saturated(&row(100_000, 99_000, 500, 500, 5.0)));
        assert!(saturated(&row(100_000, 80_000, 500, 500, 5.0)));
        assert!(saturated(&row(100_000, 99_000, 499, 500, 5.0)));
    }

    #[test]
    fn the_sustained_figure_keeps_to_the_bound_and_the_peak_does_not() {
        let rows = vec![
            row(100_000, 100_000, 10, 10, 8.0),
            row(200_000, 199_000, 10, 10, 150.0),
            row(400_000, 380_000, 10, 10, 900.0),
            row(600_000, 300_000, 9, 10, 5_000.0),
        ];
        let best = best_of(&rows, 200.0);
        assert_eq!(best["peak"]["offeredPerSecond"], 400_000);
        assert_eq!(best["sustained"]["offeredPerSecond"], 200_000);
        assert!(best_of(&rows[3..], 200.0)["sustained"].is_null());
    }
}
