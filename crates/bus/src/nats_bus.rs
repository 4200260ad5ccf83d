//! The NATS bus: every node publishes on one subject and subscribes to it.
//!
//! `nats://HOST:PORT[?prefix=NAME]` — the subject is `NAME.events` (`switchboard` by default).
//! The client library reconnects and resubscribes by itself; like Redis pub/sub, core NATS
//! does not replay what was published while a node was away — feeds recover it from the store.

use crate::networked::{next_batch, Local, Outbox};
use crate::redis_bus::split_prefix;
use crate::{Bus, BusError, BusHandler};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::sync::Arc;
use switchboard_core::Event;
use tokio::task::AbortHandle;

/// How long `ping` waits for the server.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct NatsBus {
    outbox: Outbox,
    client: async_nats::Client,
    tasks: Vec<AbortHandle>,
}

fn unreachable(error: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Unreachable(Box::new(error))
}

impl NatsBus {
    /// Connects, subscribes, and returns once this node receives what others publish.
    pub async fn connect(url: &str) -> Result<NatsBus, BusError> {
        let (url, prefix) = split_prefix(url);
        let local = Local::new();
        let events = local.clone();
        let client = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                let local = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => local.set_subscribed(true),
                        async_nats::Event::Disconnected => local.set_subscribed(false),
                        other => tracing::info!(event = %other, "NATS"),
                    }
                }
            })
            .connect(url.as_str())
            .await
            .map_err(unreachable)?;
        let subject = format!("{prefix}.events");
        let mut subscription = client
            .subscribe(subject.clone())
            .await
            .map_err(unreachable)?;
        // The server has the subscription once it answers a flush.
        client.flush().await.map_err(unreachable)?;
        local.set_subscribed(true);
        let receiving = local.clone();
        let reader = tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                receiving.receive(&message.payload);
            }
        });
        let (outbox, mut pending) = Outbox::new(local);
        let publisher = client.clone();
        let writer = tokio::spawn(async move {
            while let Some(batch) = next_batch(&mut pending).await {
                for payload in batch {
                    if let Err(error) = publisher
                        .publish(subject.clone(), bytes::Bytes::from(payload))
                        .await
                    {
                        tracing::warn!(%error, "could not publish to NATS");
                    }
                }
            }
        });
        Ok(NatsBus {
            outbox,
            client,
            tasks: vec![reader.abort_handle(), writer.abort_handle()],
        })
    }
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, event: Arc<Event>) -> Result<(), BusError> {
        self.outbox.publish(event)
    }

    fn subscribe(&self, handler: Arc<dyn BusHandler>) {
        self.outbox.local.subscribe(handler);
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.outbox.local.check_subscribed()?;
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(BusError::Unreachable("NATS is disconnected".into()));
        }
        // A flush waits for the server's answer; while reconnecting that may be never.
        match tokio::time::timeout(PING_TIMEOUT, self.client.flush()).await {
            Ok(result) => result.map_err(unreachable),
            Err(_) => Err(BusError::Unreachable("NATS did not answer a flush".into())),
        }
    }
}
