//! The pub/sub port: the [`Bus`] trait that carries events between nodes, its in-process
//! implementation (the single-node default), the Redis and NATS buses for several nodes, and
//! the [`conformance`] suite every bus passes; and the [`presence`] port, the directory of live
//! connections shared by the nodes (in memory, or Redis with expiry; the store crate keeps one
//! in PostgreSQL), with its own [`presence_conformance`] suite.
//!
//! Architecture invariants:
//! - The bus is a notifier, not a source of truth: an event it drops can be recovered from the
//!   store by seq, so a bus may be at-most-once. Order is kept per publisher.
//! - Handlers are called without blocking and must not block: the engine's hub only enqueues.

pub mod conformance;
mod in_process;
mod nats_bus;
mod networked;
pub mod presence;
pub mod presence_conformance;
mod redis_bus;
mod redis_presence;
pub mod testing;

pub use in_process::InProcessBus;
pub use nats_bus::NatsBus;
pub use presence::{InMemoryPresence, PresenceChange, PresenceDirectory, Present, Swept};
pub use redis_bus::RedisBus;
pub use redis_presence::RedisPresence;

use async_trait::async_trait;
use std::sync::Arc;
use switchboard_core::Event;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus's server cannot be reached.
    #[error("the bus is unreachable: {0}")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Receives every event published on the bus, from any node.
pub trait BusHandler: Send + Sync + 'static {
    /// Called once per event, in publish order per publisher. Must not block.
    fn deliver(&self, event: Arc<Event>);
}

impl<F: Fn(Arc<Event>) + Send + Sync + 'static> BusHandler for F {
    fn deliver(&self, event: Arc<Event>) {
        self(event)
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes `event` to every node's handlers, this node's included.
    async fn publish(&self, event: Arc<Event>) -> Result<(), BusError>;
    /// Registers a handler for every event published from now on.
    fn subscribe(&self, handler: Arc<dyn BusHandler>);
    /// Succeeds when the bus can carry events.
    async fn ping(&self) -> Result<(), BusError>;
}
