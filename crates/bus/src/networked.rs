//! What the networked buses (Redis, NATS) share: the envelope an event travels in, the local
//! handler list, and the publisher queue.
//!
//! A node delivers its own events to its own handlers at once, in publish order, and hands
//! them to a queue drained by one task into the server; events that come back from the server
//! carrying this node's id are skipped. So a node sees its own events without a round trip,
//! every other node sees them in publish order (one connection, one writer), and a server that
//! is down costs remote delivery only — the store is the source of truth and feeds fill gaps
//! from it.

use crate::{BusError, BusHandler};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use switchboard_core::Event;
use tokio::sync::mpsc;

/// Events waiting to be written to the server; past this the bus drops (and logs) rather than
/// grow without bound while the server is away.
pub(crate) const PUBLISH_QUEUE: usize = 65_536;

/// The most events written in one batch.
pub(crate) const PUBLISH_BATCH: usize = 256;

#[derive(Serialize)]
struct OutgoingEnvelope<'a> {
    /// The publishing node.
    n: u64,
    e: &'a Event,
}

#[derive(Deserialize)]
struct IncomingEnvelope {
    n: u64,
    e: Event,
}

/// This node, and the handlers it delivers to.
pub(crate) struct Local {
    pub node: u64,
    handlers: RwLock<Vec<Arc<dyn BusHandler>>>,
    /// Whether the subscription to the server is up (for `ping`).
    pub subscribed: AtomicBool,
}

impl Local {
    pub fn new() -> Arc<Local> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the system's random source");
        Arc::new(Local {
            node: u64::from_le_bytes(bytes),
            handlers: RwLock::new(Vec::new()),
            subscribed: AtomicBool::new(false),
        })
    }

    pub fn subscribe(&self, handler: Arc<dyn BusHandler>) {
        self.handlers
            .write()
            .expect("bus handlers poisoned")
            .push(handler);
    }

    pub fn deliver(&self, event: &Arc<Event>) {
        let handlers = self.handlers.read().expect("bus handlers poisoned").clone();
        for handler in handlers {
            handler.deliver(event.clone());
        }
    }

    pub fn encode(&self, event: &Event) -> Vec<u8> {
        serde_json::to_vec(&OutgoingEnvelope {
            n: self.node,
            e: event,
        })
        .expect("events serialise")
    }

    /// Delivers an event received from the server, unless this node sent it.
    pub fn receive(&self, payload: &[u8]) {
        match serde_json::from_slice::<IncomingEnvelope>(payload) {
            Ok(envelope) if envelope.n == self.node => {}
            Ok(envelope) => self.deliver(&Arc::new(envelope.e)),
            Err(error) => tracing::warn!(%error, "ignored a bus message that is not an event"),
        }
    }

    pub fn set_subscribed(&self, up: bool) {
        let was = self.subscribed.swap(up, Ordering::SeqCst);
        if was != up {
            if up {
                tracing::info!("bus subscription up");
            } else {
                tracing::warn!("bus subscription lost; reconnecting");
            }
        }
    }

    pub fn check_subscribed(&self) -> Result<(), BusError> {
        if self.subscribed.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(BusError::Unreachable("not subscribed".into()))
        }
    }
}

/// The publishing side of a networked bus: local delivery, then the queue to the server.
pub(crate) struct Outbox {
    pub local: Arc<Local>,
    queue: mpsc::Sender<Vec<u8>>,
}

impl Outbox {
    pub fn new(local: Arc<Local>) -> (Outbox, mpsc::Receiver<Vec<u8>>) {
        let (queue, pending) = mpsc::channel(PUBLISH_QUEUE);
        (Outbox { local, queue }, pending)
    }

    pub fn publish(&self, event: Arc<Event>) -> Result<(), BusError> {
        self.local.deliver(&event);
        let payload = self.local.encode(&event);
        self.queue.try_send(payload).map_err(|error| {
            tracing::warn!("bus publish queue full or closed; other nodes miss an event");
            BusError::Unreachable(Box::new(error))
        })
    }
}

/// Takes what is queued, up to a batch, waiting for the first.
pub(crate) async fn next_batch(pending: &mut mpsc::Receiver<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    let first = pending.recv().await?;
    let mut batch = vec![first];
    while batch.len() < PUBLISH_BATCH {
        match pending.try_recv() {
            Ok(payload) => batch.push(payload),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Wait before the next reconnection attempt: doubling from 50 ms to 2 s.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis((50u64 << attempt.min(6)).min(2_000))
}
