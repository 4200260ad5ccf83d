//! The hub: which connections listen to which topics, and the fan-out of each event to them.
//!
//! Each event becomes one [`Delivery`] shared by every recipient; dialects render it through
//! the delivery's cache, so an event is serialised once per dialect however many connections
//! receive it. Every connection has a bounded queue: when a queue is full the connection is cut
//! off (it can resume later), and no one else waits for it.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use switchboard_core::policy::{may_receive, InboxAccess};
use switchboard_core::{Event, Principal, Topic};
use tokio::sync::Notify;

/// How many dialect renderings one delivery can cache.
pub const RENDER_SLOTS: usize = 8;

/// One event on its way to its recipients, with its renderings cached per dialect.
#[derive(Clone)]
pub struct Delivery(Arc<DeliveryInner>);

struct DeliveryInner {
    event: Arc<Event>,
    renders: [OnceLock<Arc<dyn Any + Send + Sync>>; RENDER_SLOTS],
    /// Set by the first recipient that turns the message's receipt to `delivered`, so the
    /// others need no lock to know it is done.
    receipt_claimed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Delivery").field(&self.0.event).finish()
    }
}

impl Delivery {
    pub fn new(event: Arc<Event>) -> Delivery {
        Delivery(Arc::new(DeliveryInner {
            event,
            renders: Default::default(),
            receipt_claimed: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    pub fn event(&self) -> &Event {
        &self.0.event
    }

    /// True for the first caller only: who marks this delivery's message delivered.
    pub fn claim_receipt(&self) -> bool {
        !self.0.receipt_claimed.swap(true, Ordering::AcqRel)
    }

    /// The rendering in `slot` if a recipient has made it already.
    pub fn cached<T: Any + Send + Sync>(&self, slot: usize) -> Option<Arc<T>> {
        self.0.renders[slot].get().map(|cached| {
            cached
                .clone()
                .downcast::<T>()
                .expect("a render slot holds one dialect's type")
        })
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
    interest: Interest,
    queue: Arc<Queue>,
}

/// Which kinds of event a connection's dialect shows at all. Events it would render to
/// nothing are not queued for it, so they cost it no wake-up.
pub type Interest = fn(&switchboard_core::EventKind) -> bool;

/// The interest of a connection that is sent every kind of event.
pub fn every_event(_: &switchboard_core::EventKind) -> bool {
    true
}

/// One connection's bounded queue of deliveries. A plain list behind a lock and a wake-up
/// rather than a channel: an idle connection's queue holds no buffer at all, which is most of
/// what a channel would cost it, and the reader takes everything queued in one go.
struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
    capacity: usize,
}

#[derive(Default)]
struct QueueState {
    deliveries: VecDeque<Delivery>,
    evicted: Option<Eviction>,
}

impl Queue {
    /// Enqueues without waiting; a full queue evicts its reader instead (returns false).
    fn offer(&self, delivery: &Delivery) -> bool {
        let mut state = self.state.lock().expect("queue poisoned");
        if state.evicted.is_some() {
            return true;
        }
        if state.deliveries.len() >= self.capacity {
            state.evicted = Some(Eviction::SlowConsumer);
            state.deliveries = VecDeque::new();
            drop(state);
            self.ready.notify_one();
            return false;
        }
        state.deliveries.push_back(delivery.clone());
        drop(state);
        self.ready.notify_one();
        true
    }
}

/// What a subscription yields when it is woken.
#[derive(Debug)]
pub enum Received {
    /// Everything that was queued, oldest first.
    Deliveries(Vec<Delivery>),
    /// The hub cut the connection off.
    Evicted(Eviction),
}

/// A connection's place in the hub. Dropping it unsubscribes.
pub struct Subscription {
    queue: Arc<Queue>,
    hub: Arc<Hub>,
    id: u64,
    topics: Vec<Topic>,
}

impl Subscription {
    /// Waits until something is queued and takes all of it, or learns of an eviction (which
    /// comes first: an evicted connection sends nothing more).
    pub async fn recv(&mut self) -> Received {
        loop {
            if let Some(received) = self.try_recv() {
                return received;
            }
            // A wake-up sent between the check and here is kept as a permit, so none is lost.
            self.queue.ready.notified().await;
        }
    }

    /// What [`Subscription::recv`] would return now, without waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        let mut state = self.queue.state.lock().expect("queue poisoned");
        if let Some(eviction) = state.evicted {
            return Some(Received::Evicted(eviction));
        }
        if state.deliveries.is_empty() {
            return None;
        }
        Some(Received::Deliveries(state.deliveries.drain(..).collect()))
    }

    /// Whether the hub has cut this connection off.
    pub fn evicted(&self) -> Option<Eviction> {
        self.queue.state.lock().expect("queue poisoned").evicted
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        for topic in &self.topics {
            self.hub.remove(topic, self.id);
        }
    }
}

pub struct Hub {
    // A std lock: held only while enqueuing without waiting, never across an await.
    topics: RwLock<HashMap<Topic, Vec<Subscriber>>>,
    next_id: AtomicU64,
    access: Arc<dyn InboxAccess + Send + Sync>,
}

impl Hub {
    /// A hub deciding inbox visibility with `access`.
    pub fn new(access: Arc<dyn InboxAccess + Send + Sync>) -> Arc<Hub> {
        Arc::new(Hub {
            topics: RwLock::default(),
            next_id: AtomicU64::new(0),
            access,
        })
    }

    /// Subscribes a connection of `principal` to `topics`, with one queue of `capacity`
    /// events. An event on several of the topics is delivered once. The caller has
    /// authorised the subscription.
    pub fn subscribe(
        self: &Arc<Self>,
        principal: Principal,
        topics: Vec<Topic>,
        capacity: usize,
    ) -> Subscription {
        self.subscribe_only(principal, topics, capacity, every_event)
    }

    /// Like [`Hub::subscribe`], for the events of the kinds `interest` accepts.
    pub fn subscribe_only(
        self: &Arc<Self>,
        principal: Principal,
        topics: Vec<Topic>,
        capacity: usize,
        interest: Interest,
    ) -> Subscription {
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            ready: Notify::new(),
            capacity: capacity.max(1),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = self.topics.write().expect("hub poisoned");
            for topic in &topics {
                map.entry(topic.clone()).or_default().push(Subscriber {
                    id,
                    principal: principal.clone(),
                    interest,
                    queue: queue.clone(),
                });
            }
        }
        Subscription {
            queue,
            hub: self.clone(),
            id,
            topics,
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

    /// How many (connection, topic) subscriptions there are.
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
        let event_topics = delivery.event().topics();
        // Subscribers reached through an earlier topic of this event, so none gets it twice.
        let mut reached: Vec<u64> = Vec::new();
        {
            let topics = self.topics.read().expect("hub poisoned");
            for (index, topic) in event_topics.iter().enumerate() {
                let Some(subscribers) = topics.get(topic) else {
                    continue;
                };
                for subscriber in subscribers {
                    if event_topics.len() > 1 {
                        if reached.contains(&subscriber.id) {
                            continue;
                        }
                        if index + 1 < event_topics.len() {
                            reached.push(subscriber.id);
                        }
                    }
                    if !(subscriber.interest)(&delivery.event().kind)
                        || !may_receive(&subscriber.principal, delivery.event(), &*self.access)
                    {
                        continue;
                    }
                    if !subscriber.queue.offer(&delivery) {
                        evicted.push(subscriber.id);
                    }
                }
            }
        }
        if !evicted.is_empty() {
            let mut topics = self.topics.write().expect("hub poisoned");
            for id in evicted {
                tracing::info!(
                    subscriber = id,
                    "slow consumer disconnected: outbound queue full"
                );
                topics.retain(|_, subscribers| {
                    subscribers.retain(|subscriber| subscriber.id != id);
                    !subscribers.is_empty()
                });
            }
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

    /// The one delivery received.
    fn only(received: Received) -> Delivery {
        match received {
            Received::Deliveries(mut deliveries) if deliveries.len() == 1 => deliveries.remove(0),
            other => panic!("expected one delivery, got {other:?}"),
        }
    }

    fn hub() -> Arc<Hub> {
        Hub::new(Arc::new(switchboard_core::policy::NoMemberships))
    }

    fn bot_typing(conversation: i64) -> Arc<Event> {
        Arc::new(Event {
            account_id: AccountId(1),
            inbox_id: Some(InboxId(1)),
            contact_id: None,
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
        let hub = hub();
        let topic = Topic::Conversation(ConversationId(1));
        let mut first = hub.subscribe(visitor(1), vec![topic.clone()], 8);
        let mut second = hub.subscribe(visitor(1), vec![topic], 8);
        hub.deliver(bot_typing(1));
        let a = only(first.recv().await);
        let b = only(second.recv().await);
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
        let hub = hub();
        let topic = Topic::Conversation(ConversationId(1));
        let mut reader = hub.subscribe(visitor(1), vec![topic.clone()], 4);
        let stalled = hub.subscribe(visitor(1), vec![topic], 4);
        let mut received = 0;
        for _ in 0..20 {
            hub.deliver(bot_typing(1));
            if let Some(Received::Deliveries(deliveries)) = reader.try_recv() {
                received += deliveries.len();
            }
        }
        assert_eq!(received, 20, "the reading subscriber got everything");
        assert_eq!(stalled.evicted(), Some(Eviction::SlowConsumer));
        assert_eq!(hub.n_subscriptions(), 1);
        drop(reader);
        assert_eq!(hub.n_subscriptions(), 0);
    }

    #[tokio::test]
    async fn an_event_on_two_subscribed_topics_arrives_once() {
        let hub = hub();
        let admin = Principal::Agent {
            account_id: AccountId(1),
            agent_id: AgentId(1),
            role: AgentRole::Administrator,
        };
        let mut both = hub.subscribe(
            admin,
            vec![
                Topic::Conversation(ConversationId(1)),
                Topic::Account(AccountId(1)),
            ],
            4,
        );
        hub.deliver(bot_typing(1));
        only(both.try_recv().expect("delivered"));
        assert!(both.try_recv().is_none());
        drop(both);
        assert_eq!(hub.n_subscriptions(), 0);
    }

    #[tokio::test]
    async fn events_outside_a_subscriber_s_interest_are_not_queued_for_it() {
        let hub = hub();
        let topic = Topic::Conversation(ConversationId(1));
        let mut everything = hub.subscribe(visitor(1), vec![topic.clone()], 4);
        let mut messages_only = hub.subscribe_only(visitor(1), vec![topic], 4, |kind| {
            matches!(kind, EventKind::MessageCreated(_))
        });
        hub.deliver(bot_typing(1));
        only(everything.try_recv().expect("delivered"));
        assert!(messages_only.try_recv().is_none());
    }

    #[tokio::test]
    async fn events_reach_only_their_topic() {
        let hub = hub();
        let mut one = hub.subscribe(visitor(1), vec![Topic::Conversation(ConversationId(1))], 4);
        let mut two = hub.subscribe(visitor(2), vec![Topic::Conversation(ConversationId(2))], 4);
        hub.deliver(bot_typing(2));
        assert!(one.try_recv().is_none());
        only(two.try_recv().expect("delivered"));
    }
}
