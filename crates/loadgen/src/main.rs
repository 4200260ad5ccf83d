//! `switchboard-loadgen`: benchmarks that print figures (a table and JSON); they never assert.
//!
//! `ack` measures durable acknowledgement: first the store alone (concurrent appends through
//! SQLite group commit), then end to end over WebSocket (visitor_message → ack, with the
//! message committed before the ack), against an in-process server on loopback.

mod baseline;
mod baselines;
mod chat;
mod churn;
mod fanout;
mod flaky;
mod idle;
mod plot;
mod progress;
mod report;
mod server_process;
mod sweep;

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_core::limits::RateRules;
use switchboard_core::*;
use switchboard_store::{Durability, SqliteStore, Store};
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[derive(Parser)]
#[command(name = "switchboard-loadgen", about = "Switchboard benchmarks")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Durable messages per second and visitor_message → ack latency.
    Ack {
        /// Concurrent sessions (one WebSocket each).
        #[arg(long, default_value_t = 200)]
        sessions: usize,
        /// Messages each session sends, one at a time (send, wait for the ack).
        #[arg(long, default_value_t = 100)]
        messages: usize,
        /// Concurrent writers in the store-only phase.
        #[arg(long, default_value_t = 256)]
        writers: usize,
        /// Messages in the store-only phase.
        #[arg(long, default_value_t = 50_000)]
        store_messages: usize,
        /// `full` (fsync every commit) or `normal`.
        #[arg(long, default_value = "full")]
        durability: String,
    },
    /// One conversation watched by K connections, messages published at a set rate; against
    /// Switchboard and the bare baseline in the same run.
    Fanout {
        #[arg(long, default_value_t = 100)]
        receivers: usize,
        /// Messages published per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Measure each server at every rate of `--rates` (rising) until it saturates, and
        /// compare their peaks and what each sustains within `--p99-bound-ms`.
        #[arg(long)]
        sweep: bool,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "25,50,75,100,150,200,300,400,600,800,1000,1200,1400,1600,2000"
        )]
        rates: Vec<u64>,
        #[arg(long, default_value_t = 200.0)]
        p99_bound_ms: f64,
    },
    /// Many conversations, each a visitor and an agent exchanging messages; end-to-end latency
    /// including the durable commit.
    Chat {
        #[arg(long, default_value_t = 1000)]
        conversations: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Each side of each conversation sends a message this often.
        #[arg(long, default_value_t = 1000)]
        period_ms: u64,
        /// Run Switchboard on a temporary PostgreSQL database (`SWITCHBOARD_TEST_POSTGRES`, else
        /// the local server) instead of its embedded SQLite.
        #[arg(long)]
        postgres: bool,
        /// Measure each server at every pace of `--periods-ms` (falling) until it cannot keep
        /// it, and compare their peaks and what each sustains within `--p99-bound-ms`.
        #[arg(long)]
        sweep: bool,
        #[arg(long, value_delimiter = ',', default_values_t = chat::SWEEP_PERIODS_MS)]
        periods_ms: Vec<u64>,
        #[arg(long, default_value_t = 5.0)]
        p99_bound_ms: f64,
    },
    /// Connections opened and closed at a set rate while messages flow to steady watchers.
    Churn {
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Messages published per second to the watchers.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// Connections opened (and closed 200 ms later) per second.
        #[arg(long, default_value_t = 200)]
        churn_per_second: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Sweeps fan-out, chat and idle memory and writes the figures (JSON) and plots (SVG).
    Report {
        #[arg(long, default_value = "docs/bench")]
        out: std::path::PathBuf,
        /// Draw the plots again from the figures already in `<out>/report.json`; measure nothing.
        #[arg(long)]
        replot: bool,
    },
    /// The bare tokio broadcast server used as a baseline (run by `fanout`).
    BaselineServer {
        #[arg(long)]
        listen: String,
    },
    /// N idle, authenticated, subscribed sockets on a separate server process: server memory
    /// per connection.
    Idle {
        /// Connections in all (one node), or per node (several).
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Server processes sharing one PostgreSQL database and one Redis (bus and presence),
        /// each held its connections by a client process of its own.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// With several nodes, the bus: `redis` (presence in Redis too) or `nats` (presence in
        /// PostgreSQL).
        #[arg(long, value_enum, default_value_t = idle::ClusterBus::Redis)]
        bus: idle::ClusterBus,
    },
    /// A client process of `idle --nodes N` (started by it).
    #[command(hide = true)]
    IdleWorker {
        #[arg(long)]
        base: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        block: usize,
    },
    /// Visitors chat while their connections are force-closed every few seconds; checks
    /// every conversation against the store for lost and duplicated messages.
    Flaky {
        #[arg(long, default_value_t = 1000)]
        visitors: usize,
        /// How long the visitors chat.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Each visitor sends a message this often.
        #[arg(long, default_value_t = 2000)]
        message_every_ms: u64,
        /// Each visitor's connection is cut this often.
        #[arg(long, default_value_t = 3000)]
        drop_every_ms: u64,
        /// Run the server on a temporary PostgreSQL database (`SWITCHBOARD_TEST_POSTGRES`, else
        /// the local server) instead of its embedded SQLite.
        #[arg(long)]
        postgres: bool,
    },
}

/// Opens a client WebSocket with small buffers: the library's default 128 KiB read buffer,
/// zeroed per connection, would spend the shared CPU on the load generator rather than on the
/// server under test.
pub(crate) async fn ws_connect<R>(
    request: R,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
>
where
    R: tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
{
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.read_buffer_size = 4096;
    config.write_buffer_size = 0;
    tokio_tungstenite::connect_async_with_config(request, Some(config), false).await
}

/// Starts a demo session with bot `agent`, authorised by `key`; the server's answer.
pub(crate) async fn start_session(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    agent: &str,
) -> Value {
    http.post(format!("http://{base}/api/v1/session"))
        .bearer_auth(key)
        .json(&json!({"agentId": agent}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The socket URL of a session answer.
pub(crate) fn session_url(base: &str, session: &Value) -> String {
    format!(
        "ws://{base}/ws/session/{}?token={}",
        session["sessionId"].as_str().unwrap(),
        session["token"].as_str().unwrap()
    )
}

/// A WebSocket ticket for `token`.
pub(crate) async fn ticket(http: &reqwest::Client, base: &str, token: &str) -> String {
    let answer: Value = http
        .post(format!("http://{base}/api/v1/ws/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["ticket"].as_str().unwrap().to_string()
}

pub(crate) fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

/// The cores this machine gives its processes (the server's and the load generator's alike).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn store_phase(durability: Durability, writers: usize, total: usize) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("bench.db"), durability).unwrap());
    let world = switchboard_store::conformance::world(&store).await;
    let world = Arc::new(world);
    let per_writer = total.div_ceil(writers);
    let appended = progress::counter();
    let _progress = progress::start("ack · store", &[("appended", &appended)]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (store, world, appended) = (store.clone(), world.clone(), appended.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for n in 0..per_writer {
                let message = switchboard_store::conformance::visitor_text(
                    &world,
                    &format!("writer {writer} message {n}"),
                    Some(&format!("{writer}-{n}")),
                );
                let sent = Instant::now();
                store.append_message(message).await.unwrap();
                latencies.push(sent.elapsed());
                appended.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    json!({
        "phase": "store",
        "messages": latencies.len(),
        "writers": writers,
        "seconds": elapsed.as_secs_f64(),
        "messagesPerSecond": latencies.len() as f64 / elapsed.as_secs_f64(),
        "commitMedianMs": ms(percentile(&latencies, 0.5)),
        "commitP99Ms": ms(percentile(&latencies, 0.99)),
        "commitMaxMs": ms(percentile(&latencies, 1.0)),
    })
}

async fn socket_phase(durability: Durability, sessions: usize, messages: usize) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = switchboard_server::Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.durability = durability;
    settings.engine.rate_rules = RateRules::UNLIMITED;
    let server = switchboard_server::start(settings).await.unwrap();
    let base = format!("127.0.0.1:{}", server.local_addr.port());
    let demo = server.demo.clone().unwrap();
    // A bot that never answers: this measures the visitor's path to a durable ack.
    let silent = server
        .engine
        .create_bot(
            &Principal::Integration {
                account_id: demo.account.account.id,
            },
            "silent",
            bot::BotKind::Scripted(Box::default()),
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut sockets = Vec::new();
    for _ in 0..sessions {
        let session =
            crate::start_session(&http, &base, &demo.account.publishable_key, &silent.name).await;
        let url = session_url(&base, &session);
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        sockets.push(socket);
    }
    let acknowledged = progress::counter();
    let _progress = progress::start("ack · websocket", &[("acknowledged", &acknowledged)]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, mut socket) in sockets.into_iter().enumerate() {
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(messages);
            for n in 0..messages {
                let frame = json!({"type": "visitor_message",
                    "payload": {"text": format!("session {index} message {n}"),
                                "clientMessageId": format!("{index}-{n}")}});
                let sent = Instant::now();
                socket
                    .send(WsMessage::Text(frame.to_string().into()))
                    .await
                    .unwrap();
                loop {
                    match socket.next().await {
                        Some(Ok(WsMessage::Text(text))) if text.as_str().contains("\"ack\"") => {
                            break
                        }
                        Some(Ok(_)) => continue,
                        other => panic!("the socket failed: {other:?}"),
                    }
                }
                latencies.push(sent.elapsed());
                acknowledged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    server.shutdown().await;
    json!({
        "phase": "websocket",
        "messages": latencies.len(),
        "sessions": sessions,
        "seconds": elapsed.as_secs_f64(),
        "messagesPerSecond": latencies.len() as f64 / elapsed.as_secs_f64(),
        "ackMedianMs": ms(percentile(&latencies, 0.5)),
        "ackP99Ms": ms(percentile(&latencies, 0.99)),
        "ackMaxMs": ms(percentile(&latencies, 1.0)),
    })
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::BaselineServer { listen } => baseline::serve(&listen).await,
        Scenario::Report { out, replot } => {
            if replot {
                if let Err(message) = report::replot(&out) {
                    eprintln!("{message}");
                    std::process::exit(1);
                }
            } else {
                report::run(&out).await;
                println!("wrote {}", out.join("report.json").display());
            }
            for plot in report::PLOTS {
                println!("wrote {}", out.join(plot).display());
            }
        }
        Scenario::Churn {
            watchers,
            rate,
            churn_per_second,
            seconds,
        } => {
            let result = churn::run(churn::ChurnOptions {
                watchers,
                rate,
                churn_per_second,
                seconds,
            })
            .await;
            println!("| metric | value |");
            println!("| --- | --- |");
            for (key, value) in result.as_object().unwrap() {
                println!("| {key} | {value} |");
            }
            println!("{result}");
        }
        Scenario::Chat {
            conversations,
            seconds,
            postgres,
            sweep: true,
            periods_ms,
            p99_bound_ms,
            ..
        } => {
            let result = chat::sweep(chat::ChatSweepOptions {
                conversations,
                seconds,
                periods_ms,
                p99_bound_ms,
                postgres,
            })
            .await;
            print_sweep(&result, "message", "serverCpuMicrosPerMessage");
            println!("{result}");
        }
        Scenario::Chat {
            conversations,
            seconds,
            period_ms,
            postgres,
            ..
        } => {
            let result = chat::run(chat::ChatOptions {
                conversations,
                seconds,
                period_ms,
                postgres,
            })
            .await;
            print_comparison(
                &result,
                &[
                    ("conversations", "conversations", 0),
                    ("messages", "messages", 0),
                    ("messages/s", "messagesPerSecond", 0),
                    ("p50 ms", "p50Ms", 2),
                    ("p99 ms", "p99Ms", 2),
                    ("max ms", "maxMs", 2),
                    ("server CPU µs per message", "serverCpuMicrosPerMessage", 2),
                    (
                        "clients' CPU µs per message",
                        "clientCpuMicrosPerMessage",
                        2,
                    ),
                    ("cores busy %", "machineBusyPercent", 0),
                ],
            );
            print_client_bounds(&result);
            println!("{result}");
        }
        Scenario::Fanout {
            receivers,
            seconds,
            sweep: true,
            rates,
            p99_bound_ms,
            ..
        } => {
            let result = fanout::sweep(fanout::SweepOptions {
                receivers,
                rates,
                seconds,
                p99_bound_ms,
            })
            .await;
            print_sweep(&result, "delivery", "serverCpuMicrosPerDelivery");
            println!("{result}");
        }
        Scenario::Fanout {
            receivers,
            rate,
            seconds,
            ..
        } => {
            let result = fanout::run(fanout::FanoutOptions {
                receivers,
                rate,
                seconds,
            })
            .await;
            print_comparison(
                &result,
                &[
                    ("receivers", "receivers", 0),
                    ("offered deliveries/s", "offeredPerSecond", 0),
                    ("achieved", "deliveredPerSecond", 0),
                    ("p50 ms", "p50Ms", 2),
                    ("p99 ms", "p99Ms", 2),
                    ("max ms", "maxMs", 2),
                    (
                        "server CPU µs per delivery",
                        "serverCpuMicrosPerDelivery",
                        2,
                    ),
                ],
            );
            println!("{result}");
        }
        Scenario::Idle {
            connections,
            nodes: 1,
            ..
        } => {
            let result = idle::run(connections).await;
            println!("| connections | server RSS before | after | KiB per connection |");
            println!("| --- | --- | --- | --- |");
            println!(
                "| {} | {} KiB | {} KiB | {:.1} |",
                result["connections"],
                result["serverRssBeforeKiB"],
                result["serverRssAfterKiB"],
                result["kibPerConnection"].as_f64().unwrap()
            );
            println!("{result}");
        }
        Scenario::Idle {
            connections,
            nodes,
            bus,
        } => {
            let result = idle::run_cluster(nodes, connections, bus).await;
            println!("| node | connections open | server RSS before | after |");
            println!("| --- | --- | --- | --- |");
            for node in 0..nodes {
                println!(
                    "| node-{node} | {} | {} KiB | {} KiB |",
                    result["openPerNode"][node],
                    result["serverRssBeforeKiB"][node],
                    result["serverRssAfterKiB"][node]
                );
            }
            println!(
                "\n{} connections on {nodes} nodes ({bus:?} bus): {:.1} KiB of server memory per \
                 connection, {} bytes of Redis per connection, opened in {:.1} s",
                result["connections"],
                result["kibPerConnection"].as_f64().unwrap(),
                result["redisBytesPerConnection"]
                    .as_f64()
                    .map_or("?".to_string(), |bytes| format!("{bytes:.0}")),
                result["connectSeconds"].as_f64().unwrap()
            );
            println!("{result}");
        }
        Scenario::IdleWorker {
            base,
            key,
            count,
            block,
        } => idle::worker(base, key, count, block).await,
        Scenario::Flaky {
            visitors,
            seconds,
            message_every_ms,
            drop_every_ms,
            postgres,
        } => {
            let result = flaky::run(flaky::FlakyOptions {
                visitors,
                seconds,
                message_every_ms,
                drop_every_ms,
                postgres,
            })
            .await;
            println!("| metric | value |");
            println!("| --- | --- |");
            for (key, value) in result.as_object().unwrap() {
                println!("| {key} | {value} |");
            }
            println!("{result}");
        }
        Scenario::Ack {
            sessions,
            messages,
            writers,
            store_messages,
            durability,
        } => {
            let durability = match durability.as_str() {
                "normal" => Durability::Normal,
                _ => Durability::Full,
            };
            eprintln!("store phase: {store_messages} messages from {writers} writers …");
            let store = store_phase(durability, writers, store_messages).await;
            eprintln!("websocket phase: {sessions} sessions × {messages} messages …");
            let socket = socket_phase(durability, sessions, messages).await;
            println!("| phase | messages | msg/s | median ms | p99 ms | max ms |");
            println!("| --- | --- | --- | --- | --- | --- |");
            println!(
                "| store (group commit, {:?}) | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
                durability,
                store["messages"],
                store["messagesPerSecond"].as_f64().unwrap(),
                store["commitMedianMs"].as_f64().unwrap(),
                store["commitP99Ms"].as_f64().unwrap(),
                store["commitMaxMs"].as_f64().unwrap()
            );
            println!(
                "| visitor_message → ack over WebSocket | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
                socket["messages"],
                socket["messagesPerSecond"].as_f64().unwrap(),
                socket["ackMedianMs"].as_f64().unwrap(),
                socket["ackP99Ms"].as_f64().unwrap(),
                socket["ackMaxMs"].as_f64().unwrap()
            );
            println!("{}", json!({"scenario": "ack", "results": [store, socket]}));
        }
    }
}

/// Prints a scenario's three servers as a table (one row each; `columns` are header, JSON key
/// and decimals) and the throughput ratios.
/// A fan-out sweep as a table of every run, then each server's peak and sustained figures and
/// Switchboard's ratios to the baselines. `unit` names what the scenario counts ("delivery",
/// "message"); `cpu_key` is its server-CPU column.
fn print_sweep(result: &serde_json::Value, unit: &str, cpu_key: &str) {
    let number = |value: &serde_json::Value, decimals: usize| {
        format!("{:.*}", decimals, value.as_f64().unwrap_or(f64::NAN))
    };
    let throughput_key = result["throughputKey"].as_str().unwrap_or_default();
    let units = match unit {
        "delivery" => "deliveries",
        _ => "messages",
    };
    println!("| server | offered {units}/s | achieved | p50 ms | p99 ms | max ms | server CPU µs per {unit} |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for server in sweep::Server::ALL {
        let figures = &result[server.key()];
        if let Some(error) = figures["error"].as_str() {
            println!("| {} | not measured: {error} |", server.name());
        }
        for run in figures["runs"].as_array().into_iter().flatten() {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                server.name(),
                number(&run["offeredPerSecond"], 0),
                number(&run[throughput_key], 0),
                number(&run["p50Ms"], 2),
                number(&run["p99Ms"], 2),
                number(&run["maxMs"], 2),
                number(&run[cpu_key], 2),
            );
        }
    }
    let bound = number(&result["p99BoundMs"], 0);
    for server in sweep::Server::ALL {
        let figures = &result[server.key()];
        let describe = |row: &serde_json::Value| match row.is_null() {
            true => "none".to_string(),
            false => format!(
                "{} {units}/s (p99 {} ms)",
                number(&row[throughput_key], 0),
                number(&row["p99Ms"], 1)
            ),
        };
        println!(
            "{}: peak {}; sustained with p99 <= {bound} ms {}",
            server.name(),
            describe(&figures["peak"]),
            describe(&figures["sustained"])
        );
    }
    println!(
        "switchboard / bare: peak {}, sustained {}; switchboard / node: peak {}, sustained {}",
        number(&result["peakRatioToBare"], 2),
        number(&result["sustainedRatioToBare"], 2),
        number(&result["peakRatioToNode"], 2),
        number(&result["sustainedRatioToNode"], 2),
    );
}

/// What the load generator's own share of the machine leaves: per server, the messages a second
/// its clients could carry on these cores with a server that cost nothing.
fn print_client_bounds(result: &serde_json::Value) {
    let bounds: Vec<String> = sweep::Server::ALL
        .iter()
        .filter_map(|server| {
            let bound = result[server.key()]["clientBoundMessagesPerSecond"].as_f64()?;
            Some(format!("{} {bound:.0}", server.name()))
        })
        .collect();
    println!(
        "messages/s the clients could carry on {} cores, at what they spent per message here, \
         with a server that cost nothing: {}",
        cores(),
        bounds.join(", ")
    );
}

fn print_comparison(result: &serde_json::Value, columns: &[(&str, &str, usize)]) {
    let headers: Vec<&str> = columns.iter().map(|(header, _, _)| *header).collect();
    println!("| server | {} |", headers.join(" | "));
    println!("|{}", " --- |".repeat(columns.len() + 1));
    for server in sweep::Server::ALL {
        let (name, row) = (server.name(), &result[server.key()]);
        if let Some(error) = row["error"].as_str() {
            println!("| {name} | not measured: {error} |");
            continue;
        }
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, key, decimals)| {
                format!("{:.*}", *decimals, row[*key].as_f64().unwrap_or(f64::NAN))
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    println!(
        "throughput ratios: switchboard / bare {:.2}, switchboard / node {:.2}",
        result["ratioToBare"].as_f64().unwrap_or(0.0),
        result["ratioToNode"].as_f64().unwrap_or(0.0)
    );
    println!(
        "server CPU per unit of work: bare / switchboard {:.2}, node / switchboard {:.2}",
        result["cpuPerUnitBareOverOurs"]
            .as_f64()
            .unwrap_or(f64::NAN),
        result["cpuPerUnitNodeOverOurs"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
}
