//! The hub: which connections listen to which topics, and the fan-out of each event to them.
//!
//! Each event becomes one [`Delivery`] shared by every recipient; dialects render it through
//! the delivery's cache, so an event is serialised once per dialect however many connections
//! receive it. Every connection has a bounded queue: when a queue is full the connection is cut
//! off (it can resume later), and no one else waits for it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use switchboard_core::policy::may_receive;
use switchboard_core::{Event, Principal, Topic};
use tokio::sync::{mpsc, watch};

/// How many dialect renderings one delivery can cache.
pub const RENDER_SLOTS: usize = 8;

/// One event on its way to its recipients, with its renderings cached per dialect.
#[derive(Clone)]
pub struct Delivery(Arc<DeliveryInner>);

struct DeliveryInner {
    event: Arc<Event>,
    renders: [OnceLock<Arc<dyn Any + Send + Sync>>; RENDER_SLOTS],
}

impl Delivery {
    pub fn new(event: Arc<Event>) -> Delivery {
        Delivery(Arc::new(DeliveryInner {
            event,
            renders: Default::default(),
        }))
    }

    pub fn event(&self) -> &Event {
        &self.0.event
    }

    /// The rendering in `slot`, made by `render` the first time any recipient asks.
    ///
    /// Each dialect owns a slot and always stores the same type there.
    pub fn rendered<T: Any + Send + Sync>(
        &self,
        slot: usize,
        render: impl FnOnce(&Event) -> T,
    ) -> Arc<T> {
        let cached = self.0.renders[slot].get_or_init(|| Arc::new(render(&self.0.event)));
        // Each dialect owns its slot and always stores one type there, so a mismatch is a
        // programming error.
        cached
            .clone()
            .downcast::<T>()
            .expect("a render slot holds one dialect's type")
    }
}

/// Why the hub cut a connection off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Its outbound queue was full.
    SlowConsumer,
}

struct Subscriber {
    id: u64,
    principal: Principal,
    queue: mpsc::Sender<Delivery>,
    evict: watch::Sender<Option<Eviction>>,
}

/// A connection's place in the hub. Dropping it unsubscribes.
pub struct Subscription {
    pub deliveries: mpsc::Receiver<Delivery>,
    pub evicted: watch::Receiver<Option<Eviction>>,
    hub: Arc<Hub>,
    id: u64,
    topic: Topic,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(&self.topic, self.id);
    }
}

#[derive(Default)]
pub struct Hub {
    // A std lock: held only while enqueuing without waiting, never across an await.
    topics: RwLock<HashMap<Topic, Vec<Subscriber>>>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Subscribes a connection of `principal` to `topic`, with a queue of `capacity` events.
    /// The caller has authorised the subscription.
    pub fn subscribe(
        self: &Arc<Self>,
        principal: Principal,
        topic: Topic,
        capacity: usize,
    ) -> Subscription {
        let (queue, deliveries) = mpsc::channel(capacity.max(1));
        let (evict, evicted) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.topics
            .write()
            .expect("hub poisoned")
            .entry(topic.clone())
            .or_default()
            .push(Subscriber {
                id,
                principal,
                queue,
                evict,
            });
        Subscription {
            deliveries,
            evicted,
            hub: self.clone(),
            id,
            topic,
        }
    }

    fn remove(&self, topic: &Topic, id: u64) {
        let mut topics = self.topics.write().expect("hub poisoned");
        if let Some(subscribers) = topics.get_mut(topic) {
            subscribers.retain(|subscriber| subscriber.id != id);
            if subscribers.is_empty() {
                topics.remove(topic);
            }
        }
    }

    /// How many connections are subscribed, over all topics.
    pub fn n_subscriptions(&self) -> usize {
        self.topics
            .read()
            .expect("hub poisoned")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Fans `event` out to every subscriber of its topics that may receive it. Never waits.
    pub fn deliver(&self, event: Arc<Event>) {
        let delivery = Delivery::new(event);
        let mut evicted = Vec::new();
        {
            let topics = self.topics.read().expect("hub poisoned");
            for topic in delivery.event().topics() {
                let Some(subscribers) = topics.get(&topic) else {
                    continue;
                };
                for subscriber in subscribers {
                    if !may_receive(&subscriber.principal, delivery.event()) {
                        continue;
                    }
                    match subscriber.queue.try_send(delivery.clone()) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            let _ = subscriber.evict.send(Some(Eviction::SlowConsumer));
                            evicted.push((topic.clone(), subscriber.id));
                        }
                        // The connection is closing; its guard will unsubscribe it.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
            }
        }
        for (topic, id) in evicted {
            tracing::info!(
                subscriber = id,
                "slow consumer disconnected: outbound queue full"
            );
            self.remove(&topic, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::*;

    fn visitor(conversation: i64) -> Principal {
        Principal::SessionVisitor {
            account_id: AccountId(1),
            session_id: SessionId("s".into()),
            contact_id: ContactId(conversation),
            conversation_id: ConversationId(conversation),
            bot_id: BotId(1),
        }
    }

    fn bot_typing(conversation: i64) -> Arc<Event> {
        Arc::new(Event {
            account_id: AccountId(1),
            kind: EventKind::TypingOn {
                conversation_id: ConversationId(conversation),
                actor: Actor::Bot {
                    id: BotId(1),
                    name: "demo".into(),
                },
                private: false,
            },
        })
    }

    #[tokio::test]
    async fn one_rendering_is_shared_by_every_recipient() {
        let hub = Hub::new();
        let topic = Topic::Conversation(ConversationId(1));
        let mut first = hub.subscribe(visitor(1), topic.clone(), 8);
        let mut second = hub.subscribe(visitor(1), topic, 8);
        hub.deliver(bot_typing(1));
        let a = first.deliveries.recv().await.unwrap();
        let b = second.deliveries.recv().await.unwrap();
        let renders = std::sync::atomic::AtomicUsize::new(0);
        let render = |_: &Event| {
            renders.fetch_add(1, Ordering::SeqCst);
            String::from("frame")
        };
        let ra = a.rendered(0, render);
        let rb = b.rendered(0, render);
        assert!(Arc::ptr_eq(&ra, &rb));
        assert_eq!(renders.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_full_queue_evicts_only_that_subscriber() {
        let hub = Hub::new();
        let topic = Topic::Conversation(ConversationId(1));
        let mut reader = hub.subscribe(visitor(1), topic.clone(), 4);
        let stalled = hub.subscribe(visitor(1), topic, 4);
        let mut received = 0;
        for _ in 0..20 {
            hub.deliver(bot_typing(1));
            while reader.deliveries.try_recv().is_ok() {
                received += 1;
            }
        }
        assert_eq!(received, 20, "the reading subscriber got everything");
        assert_eq!(*stalled.evicted.borrow(), Some(Eviction::SlowConsumer));
        assert_eq!(hub.n_subscriptions(), 1);
        drop(reader);
        assert_eq!(hub.n_subscriptions(), 0);
    }

    #[tokio::test]
    async fn events_reach_only_their_topic() {
        let hub = Hub::new();
        let mut one = hub.subscribe(visitor(1), Topic::Conversation(ConversationId(1)), 4);
        let mut two = hub.subscribe(visitor(2), Topic::Conversation(ConversationId(2)), 4);
        hub.deliver(bot_typing(2));
        assert!(one.deliveries.try_recv().is_err());
        assert!(two.deliveries.try_recv().is_ok());
    }
}
