//! The Redis bus: every node publishes on one Redis pub/sub channel and subscribes to it.
//!
//! `redis://HOST:PORT[/DB][?prefix=NAME]` — the channel is `NAME:events` (`switchboard` by
//! default), so several deployments (or test runs) can share one Redis. The subscription is
//! re-established whenever the connection drops; events published meanwhile by other nodes are
//! not replayed by Redis (pub/sub is at-most-once) — conversation feeds recover them from the
//! store by seq.

use crate::networked::{backoff, next_batch, Local, Outbox};
use crate::{Bus, BusError, BusHandler};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::sync::Arc;
use switchboard_core::Event;
use tokio::task::AbortHandle;

/// How long `ping` waits for the server.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct RedisBus {
    outbox: Outbox,
    publisher: redis::aio::ConnectionManager,
    tasks: Vec<AbortHandle>,
}

/// Splits our own `prefix` parameter off a bus URL; the rest goes to the client library.
pub(crate) fn split_prefix(url: &str) -> (String, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), "switchboard".to_string());
    };
    let mut prefix = "switchboard".to_string();
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("prefix=") {
            Some(value) if !value.is_empty() => {
                prefix = value.to_string();
                false
            }
            _ => !pair.is_empty(),
        })
        .collect();
    if rest.is_empty() {
        (base.to_string(), prefix)
    } else {
        (format!("{base}?{}", rest.join("&")), prefix)
    }
}

fn unreachable(error: redis::RedisError) -> BusError {
    BusError::Unreachable(Box::new(error))
}

impl RedisBus {
    /// Connects, subscribes, and returns once this node receives what others publish.
    pub async fn connect(url: &str) -> Result<RedisBus, BusError> {
        let (url, prefix) = split_prefix(url);
        let client = redis::Client::open(url.as_str()).map_err(unreachable)?;
        let channel = format!("{prefix}:events");
        let local = Local::new();
        let mut pubsub = client.get_async_pubsub().await.map_err(unreachable)?;
        pubsub.subscribe(&channel).await.map_err(unreachable)?;
        local.set_subscribed(true);
        let subscriber = tokio::spawn(subscribe_forever(
            client.clone(),
            channel.clone(),
            local.clone(),
            pubsub,
        ));
        let publisher = client.get_connection_manager().await.map_err(unreachable)?;
        let (outbox, mut pending) = Outbox::new(local);
        let mut connection = publisher.clone();
        let writer = tokio::spawn(async move {
            while let Some(batch) = next_batch(&mut pending).await {
                let mut pipeline = redis::pipe();
                for payload in &batch {
                    pipeline.publish(&channel, payload).ignore();
                }
                if let Err(error) = pipeline.query_async::<()>(&mut connection).await {
                    tracing::warn!(%error, lost = batch.len(), "could not publish to Redis");
                }
            }
        });
        Ok(RedisBus {
            outbox,
            publisher,
            tasks: vec![subscriber.abort_handle(), writer.abort_handle()],
        })
    }
}

/// Reads the subscription; when it ends (the connection dropped), subscribes again.
async fn subscribe_forever(
    client: redis::Client,
    channel: String,
    local: Arc<Local>,
    first: redis::aio::PubSub,
) {
    let mut pubsub = Some(first);
    let mut attempt = 0;
    loop {
        if let Some(connected) = pubsub.take() {
            attempt = 0;
            local.set_subscribed(true);
            let mut messages = connected.into_on_message();
            while let Some(message) = messages.next().await {
                local.receive(message.get_payload_bytes());
            }
            local.set_subscribed(false);
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
        match client.get_async_pubsub().await {
            Ok(mut connected) => match connected.subscribe(&channel).await {
                Ok(()) => pubsub = Some(connected),
                Err(error) => tracing::debug!(%error, "Redis subscribe failed"),
            },
            Err(error) => tracing::debug!(%error, "Redis reconnect failed"),
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, event: Arc<Event>) -> Result<(), BusError> {
        self.outbox.publish(event)
    }

    fn subscribe(&self, handler: Arc<dyn BusHandler>) {
        self.outbox.local.subscribe(handler);
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.outbox.local.check_subscribed()?;
        let mut connection = self.publisher.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(answer) => answer.map(drop).map_err(unreachable),
            Err(_) => Err(BusError::Unreachable("Redis did not answer a ping".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_prefix;

    #[test]
    fn the_prefix_is_ours_and_the_rest_is_the_clients() {
        assert_eq!(
            split_prefix("redis://127.0.0.1:6379"),
            ("redis://127.0.0.1:6379".into(), "switchboard".into())
        );
        assert_eq!(
            split_prefix("redis://h/2?prefix=run7"),
            ("redis://h/2".into(), "run7".into())
        );
        assert_eq!(
            split_prefix("redis://h/?protocol=resp3&prefix=a&x=1"),
            ("redis://h/?protocol=resp3&x=1".into(), "a".into())
        );
    }
}
