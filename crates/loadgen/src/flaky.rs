//! `flaky`: visitors chat through the Rust client while their connections are force-closed
//! every few seconds; afterwards every conversation is checked against the store. Prints
//! messages sent, acknowledged, stored (none twice, none missing), replies delivered, lost and
//! duplicated, reconnects, and how long reconnecting and catching up took. On SQLite, or with
//! `--postgres` on a temporary PostgreSQL database.

use crate::{ms, percentile};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_client::{Backoff, SessionClient, SessionConfig, SessionEvent};
use switchboard_core::limits::RateRules;

pub struct FlakyOptions {
    pub visitors: usize,
    pub seconds: u64,
    pub message_every_ms: u64,
    pub drop_every_ms: u64,
    /// Store in a temporary PostgreSQL database instead of SQLite.
    pub postgres: bool,
}

#[derive(Default)]
struct Totals {
    acked: crate::progress::Counter,
    replies: crate::progress::Counter,
    reconnects: crate::progress::Counter,
}

/// The text of a visitor's `n`th message: distinct per visitor, so the store can be checked
/// for each one.
fn message_text(n: u64) -> String {
    format!("message {n}")
}

pub async fn run(options: FlakyOptions) -> Value {
    // Dropped after the server (declared first), so the database outlives its user.
    let database = match options.postgres {
        true => Some(switchboard_store::testing::TempDatabase::create().await),
        false => None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = switchboard_server::Settings::new(dir.path());
    settings.database_url = database.as_ref().map(|database| database.url.clone());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.engine.rate_rules = RateRules::UNLIMITED;
    let server = switchboard_server::start(settings).await.unwrap();
    let host = format!("127.0.0.1:{}", server.local_addr.port());
    let demo = server.demo.clone().unwrap();
    let http = reqwest::Client::new();
    let totals = Arc::new(Totals::default());
    // (time of a disconnect, time connected again, time of the first reply after it)
    let reconnect_latencies = Arc::new(Mutex::new(Vec::new()));
    let catch_up_latencies = Arc::new(Mutex::new(Vec::new()));
    let mut visitors = Vec::new();
    for _ in 0..options.visitors {
        let session =
            crate::start_session(&http, &host, &demo.account.publishable_key, "demo").await;
        let mut config = SessionConfig::new(
            &host,
            session["sessionId"].as_str().unwrap(),
            session["token"].as_str().unwrap(),
        );
        config.backoff = Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
            max_attempts: 0,
        };
        let (client, mut events) = SessionClient::connect(config);
        let replies = Arc::new(Mutex::new(Vec::new()));
        let (totals, replies_in) = (totals.clone(), replies.clone());
        let (reconnects, catch_ups) = (reconnect_latencies.clone(), catch_up_latencies.clone());
        tokio::spawn(async move {
            let mut dropped_at: Option<Instant> = None;
            let mut connected_at: Option<Instant> = None;
            while let Some(event) = events.recv().await {
                match event {
                    SessionEvent::Disconnected { .. } => {
                        dropped_at = Some(Instant::now());
                        totals.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    SessionEvent::Connected => {
                        if let Some(dropped) = dropped_at.take() {
                            reconnects.lock().unwrap().push(dropped.elapsed());
                            connected_at = Some(Instant::now());
                        }
                    }
                    SessionEvent::Acked { .. } => {
                        totals.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    SessionEvent::AgentResponse(reply) => {
                        totals.replies.fetch_add(1, Ordering::Relaxed);
                        replies_in.lock().unwrap().push(reply.seq);
                        if let Some(connected) = connected_at.take() {
                            catch_ups.lock().unwrap().push(connected.elapsed());
                        }
                    }
                    _ => {}
                }
            }
        });
        visitors.push((client, session["conversationId"].as_i64().unwrap(), replies));
    }
    eprintln!(
        "  {} visitors connected; chatting for {} s …",
        options.visitors, options.seconds
    );

    let started = Instant::now();
    let run_for = Duration::from_secs(options.seconds);
    let sent = crate::progress::counter();
    let _progress = crate::progress::start(
        "flaky",
        &[
            ("sent", &sent),
            ("acknowledged", &totals.acked),
            ("replies", &totals.replies),
            ("reconnects", &totals.reconnects),
        ],
    );
    let mut tasks = Vec::new();
    for (index, (client, _, _)) in visitors.iter().enumerate() {
        let (client, sent) = (client.clone(), sent.clone());
        let (message_every, drop_every) = (options.message_every_ms, options.drop_every_ms);
        tasks.push(tokio::spawn(async move {
            // Spread the visitors over the interval, and their drops over theirs.
            let offset = (index as u64 * 7919) % message_every.max(1);
            tokio::time::sleep(Duration::from_millis(offset)).await;
            let mut next_drop = Instant::now()
                + Duration::from_millis(
                    drop_every / 2 + (index as u64 * 104_729) % drop_every.max(1),
                );
            let mut n = 0;
            while started.elapsed() < run_for {
                client.send_text(&message_text(n));
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
                if Instant::now() >= next_drop {
                    client.drop_connection();
                    next_drop = Instant::now() + Duration::from_millis(drop_every);
                }
                tokio::time::sleep(Duration::from_millis(message_every)).await;
            }
            n
        }));
    }
    let mut sent_by_visitor = Vec::with_capacity(tasks.len());
    for task in tasks {
        sent_by_visitor.push(task.await.unwrap());
    }
    // Let the outboxes drain and the last replies arrive (bounded).
    let settle = Instant::now();
    while visitors.iter().any(|(client, _, _)| client.pending() > 0)
        && settle.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Compare every conversation with the store.
    let (mut stored_replies, mut lost, mut duplicated, mut unacknowledged) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut stored, mut stored_twice, mut not_stored) = (0u64, 0u64, 0u64);
    for ((client, conversation_id, replies), sent) in visitors.iter().zip(sent_by_visitor) {
        unacknowledged += client.pending() as u64;
        duplicated += client.duplicates_dropped();
        let messages = server
            .engine
            .store()
            .messages_after(
                switchboard_core::ConversationId(*conversation_id),
                0,
                1_000_000,
            )
            .await
            .unwrap();
        let outgoing: Vec<i64> = messages
            .iter()
            .filter(|m| m.message_type == switchboard_core::MessageType::Outgoing)
            .map(|m| m.seq)
            .collect();
        stored_replies += outgoing.len() as u64;
        // Each visitor's messages have distinct texts: a text stored twice is a resend stored
        // again, a text sent and not stored is a message lost.
        let incoming: Vec<&str> = messages
            .iter()
            .filter(|m| m.message_type == switchboard_core::MessageType::Incoming)
            .map(|m| m.content.as_str())
            .collect();
        let distinct: std::collections::HashSet<&str> = incoming.iter().copied().collect();
        stored += incoming.len() as u64;
        stored_twice += (incoming.len() - distinct.len()) as u64;
        not_stored += (0..sent)
            .filter(|&n| !distinct.contains(message_text(n).as_str()))
            .count() as u64;
        let received = replies.lock().unwrap().clone();
        lost += outgoing
            .iter()
            .filter(|seq| !received.contains(seq))
            .count() as u64;
        client.close();
    }
    let mut reconnects = reconnect_latencies.lock().unwrap().clone();
    reconnects.sort();
    let mut catch_ups = catch_up_latencies.lock().unwrap().clone();
    catch_ups.sort();
    server.shutdown().await;
    json!({
        "scenario": "flaky",
        "visitors": options.visitors,
        "seconds": options.seconds,
        "sent": sent.load(Ordering::Relaxed),
        "acknowledged": totals.acked.load(Ordering::Relaxed),
        "unacknowledged": unacknowledged,
        "store": if options.postgres { "postgres" } else { "sqlite" },
        "messagesStored": stored,
        "messagesStoredTwice": stored_twice,
        "messagesNotStored": not_stored,
        "repliesStored": stored_replies,
        "repliesDelivered": totals.replies.load(Ordering::Relaxed),
        "repliesLost": lost,
        "duplicatesReceived": duplicated,
        "reconnects": totals.reconnects.load(Ordering::Relaxed),
        "reconnectMedianMs": ms(percentile(&reconnects, 0.5)),
        "reconnectP99Ms": ms(percentile(&reconnects, 0.99)),
        "firstReplyAfterReconnectMedianMs": ms(percentile(&catch_ups, 0.5)),
        "firstReplyAfterReconnectP99Ms": ms(percentile(&catch_ups, 0.99)),
    })
}
