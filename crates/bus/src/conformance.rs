//! The bus conformance suite: one set of checks every [`Bus`] passes. A backend's tests call
//! [`bus_conformance_tests!`](crate::bus_conformance_tests) with an async expression building a
//! [`Fixture`] of two nodes joined to the same bus.

use crate::{Bus, BusHandler};
use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_core::*;
use tokio::sync::mpsc;

/// Two nodes on one bus (for the in-process bus, two handles of one bus), and whatever must
/// outlive them.
pub struct Fixture {
    pub node_a: Arc<dyn Bus>,
    pub node_b: Arc<dyn Bus>,
    pub guard: Box<dyn Any + Send>,
}

#[macro_export]
macro_rules! bus_conformance_tests {
    ($make:expr) => {
        $crate::bus_conformance_tests!(@each $make;
            every_node_receives_every_event_in_order,
            concurrent_publishers_lose_nothing,
            several_handlers_on_one_node_all_receive,
            a_nodes_own_events_arrive_once,
            events_arrive_whole,
            ping_succeeds,
        );
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let fixture: $crate::conformance::Fixture = $make.await;
            $crate::conformance::$check(&fixture).await;
        }
    )*};
}

/// A unique account id per run, so runs sharing a bus server never see each other's events.
fn fresh_account() -> AccountId {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    AccountId((nanos % (i64::MAX as u128)) as i64)
}

fn typing(account_id: AccountId, n: i64) -> Arc<Event> {
    Arc::new(Event {
        account_id,
        inbox_id: None,
        contact_id: None,
        kind: EventKind::TypingOn {
            conversation_id: ConversationId(n),
            actor: Actor::Contact(ContactId(1)),
            private: false,
        },
    })
}

fn collector(account_id: AccountId) -> (Arc<dyn BusHandler>, mpsc::UnboundedReceiver<i64>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let sender = Mutex::new(sender);
    let handler = move |event: Arc<Event>| {
        if event.account_id == account_id {
            let _ = sender
                .lock()
                .unwrap()
                .send(event.conversation_id().map_or(0, |id| id.0));
        }
    };
    (Arc::new(handler), receiver)
}

async fn receive(receiver: &mut mpsc::UnboundedReceiver<i64>, count: usize) -> Vec<i64> {
    let mut received = Vec::new();
    while received.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .expect("an event was not delivered within 10 s")
            .expect("the bus closed");
        received.push(next);
    }
    received
}

async fn settle(fixture: &Fixture) {
    // Subscriptions on a networked bus take effect asynchronously; a ping round trip on each
    // node orders them before the first publish.
    fixture.node_a.ping().await.unwrap();
    fixture.node_b.ping().await.unwrap();
}

pub async fn every_node_receives_every_event_in_order(fixture: &Fixture) {
    let account = fresh_account();
    let (handler_a, mut on_a) = collector(account);
    let (handler_b, mut on_b) = collector(account);
    fixture.node_a.subscribe(handler_a);
    fixture.node_b.subscribe(handler_b);
    settle(fixture).await;
    for n in 1..=200 {
        fixture.node_a.publish(typing(account, n)).await.unwrap();
    }
    let expected: Vec<i64> = (1..=200).collect();
    assert_eq!(receive(&mut on_a, 200).await, expected);
    assert_eq!(receive(&mut on_b, 200).await, expected);
}

pub async fn concurrent_publishers_lose_nothing(fixture: &Fixture) {
    let account = fresh_account();
    let (handler, mut received) = collector(account);
    fixture.node_b.subscribe(handler);
    settle(fixture).await;
    let mut tasks = Vec::new();
    for publisher in 0..4i64 {
        let node = if publisher % 2 == 0 {
            fixture.node_a.clone()
        } else {
            fixture.node_b.clone()
        };
        tasks.push(tokio::spawn(async move {
            for n in 0..100 {
                node.publish(typing(account, publisher * 1000 + n))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = receive(&mut received, 400).await;
    for publisher in 0..4i64 {
        let mine: Vec<i64> = all
            .iter()
            .copied()
            .filter(|n| n / 1000 == publisher)
            .collect();
        let expected: Vec<i64> = (0..100).map(|n| publisher * 1000 + n).collect();
        assert_eq!(mine, expected, "publisher {publisher}'s events in order");
    }
}

pub async fn several_handlers_on_one_node_all_receive(fixture: &Fixture) {
    let account = fresh_account();
    let (first, mut on_first) = collector(account);
    let (second, mut on_second) = collector(account);
    fixture.node_a.subscribe(first);
    fixture.node_a.subscribe(second);
    settle(fixture).await;
    fixture.node_b.publish(typing(account, 7)).await.unwrap();
    assert_eq!(receive(&mut on_first, 1).await, vec![7]);
    assert_eq!(receive(&mut on_second, 1).await, vec![7]);
}

pub async fn a_nodes_own_events_arrive_once(fixture: &Fixture) {
    let account = fresh_account();
    let (handler, mut received) = collector(account);
    fixture.node_a.subscribe(handler);
    settle(fixture).await;
    for n in 1..=50 {
        fixture.node_a.publish(typing(account, n)).await.unwrap();
    }
    assert_eq!(
        receive(&mut received, 50).await,
        (1..=50).collect::<Vec<_>>()
    );
    // Nothing comes back a second time (a networked bus hears its own publications too).
    fixture.node_b.publish(typing(account, 99)).await.unwrap();
    assert_eq!(receive(&mut received, 1).await, vec![99]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(received.try_recv().is_err(), "an event arrived twice");
}

pub async fn events_arrive_whole(fixture: &Fixture) {
    let account = fresh_account();
    let (sender, mut received) = mpsc::unbounded_channel::<Arc<Event>>();
    let sender = Mutex::new(sender);
    fixture.node_b.subscribe(Arc::new(move |event: Arc<Event>| {
        if event.account_id == account {
            let _ = sender.lock().unwrap().send(event);
        }
    }));
    settle(fixture).await;
    let message = Message {
        id: MessageId(41),
        account_id: account,
        conversation_id: ConversationId(7),
        seq: 3,
        sender: Sender::Bot {
            id: BotId(2),
            name: "Ünïcode \"bot\" 👋".into(),
        },
        message_type: MessageType::Outgoing,
        content_type: ContentType::Text,
        content: "line one\nline two \u{0} <b>as is</b>".into(),
        attributes: MessageAttributes::default(),
        private: false,
        status: MessageStatus::Sent,
        client_message_id: Some("c-1".into()),
        created_at: 1_700_000_000_123,
        updated_at: 1_700_000_000_456,
    };
    let event = Arc::new(Event {
        account_id: account,
        inbox_id: Some(InboxId(5)),
        contact_id: Some(ContactId(9)),
        kind: EventKind::MessageCreated(message),
    });
    fixture.node_a.publish(event.clone()).await.unwrap();
    let arrived = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("delivered within 10 s")
        .unwrap();
    assert_eq!(*arrived, *event);
}

pub async fn ping_succeeds(fixture: &Fixture) {
    fixture.node_a.ping().await.unwrap();
    fixture.node_b.ping().await.unwrap();
}
