//! The NATS bus against real NATS servers: the conformance suite on this machine's NATS
//! (each test on its own subject prefix), and losing and regaining a private NATS server.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_bus::conformance::Fixture;
use switchboard_bus::testing::{unique_prefix, PrivateServer};
use switchboard_bus::{bus_conformance_tests, Bus, NatsBus};
use switchboard_core::*;

const NATS: &str = "nats://127.0.0.1:4222";

async fn two_nodes(url: &str) -> (Arc<dyn Bus>, Arc<dyn Bus>) {
    let a = NatsBus::connect(url)
        .await
        .unwrap_or_else(|error| panic!("NATS at {url} must be reachable: {error}"));
    let b = NatsBus::connect(url).await.unwrap();
    (Arc::new(a), Arc::new(b))
}

async fn nats() -> Fixture {
    let url = format!("{NATS}?prefix={}", unique_prefix());
    let (node_a, node_b) = two_nodes(&url).await;
    Fixture {
        node_a,
        node_b,
        guard: Box::new(()),
    }
}

bus_conformance_tests!(nats());

fn typing(n: i64) -> Arc<Event> {
    Arc::new(Event {
        account_id: AccountId(1),
        inbox_id: None,
        contact_id: None,
        kind: EventKind::TypingOn {
            conversation_id: ConversationId(n),
            actor: Actor::Contact(ContactId(1)),
            private: false,
        },
    })
}

/// Events a node receives, by conversation id.
fn recorder(bus: &Arc<dyn Bus>) -> Arc<Mutex<Vec<i64>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    bus.subscribe(Arc::new(move |event: Arc<Event>| {
        if let Some(id) = event.conversation_id() {
            sink.lock().unwrap().push(id.0);
        }
    }));
    seen
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn an_unreachable_nats_is_an_error_at_start() {
    let port = switchboard_bus::testing::free_port();
    assert!(NatsBus::connect(&format!("nats://127.0.0.1:{port}"))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_nats_reconnects_and_carries_events_again() {
    let mut server = PrivateServer::nats().await;
    let url = format!(
        "nats://127.0.0.1:{}?prefix={}",
        server.port,
        unique_prefix()
    );
    let (a, b) = two_nodes(&url).await;
    let on_b = recorder(&b);
    a.ping().await.unwrap();
    b.ping().await.unwrap();
    a.publish(typing(1)).await.unwrap();
    until("the first event crossed", || {
        on_b.lock().unwrap().contains(&1)
    })
    .await;

    server.kill();
    // Readiness says so while NATS is away.
    let mut down = false;
    for _ in 0..200 {
        if b.ping().await.is_err() {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(down, "ping fails while NATS is down");
    // Local delivery goes on without NATS.
    let on_a = recorder(&a);
    let _ = a.publish(typing(2)).await;
    assert!(on_a.lock().unwrap().contains(&2));

    server.restart().await;
    for _ in 0..400 {
        if a.ping().await.is_ok() && b.ping().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    b.ping().await.expect("node b resubscribed");
    a.ping().await.expect("node a reconnected");
    a.publish(typing(3)).await.unwrap();
    until("events cross again", || on_b.lock().unwrap().contains(&3)).await;
}
