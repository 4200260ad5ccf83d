//! A connection's feed of one conversation: the live stream from the hub joined with replay
//! from the store, so that the connection is sent every message exactly once and in seq order.
//!
//! The feed subscribes before it reads the store, so nothing published during a replay is
//! missed; its [`SeqCursor`] drops what the replay already sent and fills from the store any
//! gap the live stream shows (a bus event reordered or lost).

use crate::engine::Engine;
use crate::hub::{Delivery, Eviction, Received, Subscription};
use crate::EngineError;
use std::sync::Arc;
use switchboard_core::delivery::{Admission, SeqCursor};
use switchboard_core::policy::may_receive;
use switchboard_core::{ConversationId, Event, EventKind, Principal, Seq};

pub struct Feed {
    engine: Arc<Engine>,
    principal: Principal,
    conversation_id: ConversationId,
    subscription: Subscription,
    cursor: SeqCursor,
    /// Where a replay is owed from, decided when the feed opened.
    pending_replay: Option<Seq>,
    /// Taken from the subscription, not yet admitted; and admitted, not yet handed out. Kept
    /// here, not in `next`'s future, so that `next` is cancel-safe: a connection's loop drops
    /// it whenever another branch of its `select!` wins (a frame from the client), possibly
    /// while a gap fill waits for the store, and nothing taken may be lost with it.
    queued: std::collections::VecDeque<Delivery>,
    ready: Vec<Delivery>,
}

/// What the feed yields next.
pub enum FeedItem {
    /// Deliveries to send, in order.
    Deliveries(Vec<Delivery>),
    /// The hub cut the connection off.
    Evicted(Eviction),
}

impl Feed {
    pub(crate) fn new(
        engine: Arc<Engine>,
        principal: Principal,
        conversation_id: ConversationId,
        subscription: Subscription,
        last_sent: Seq,
        pending_replay: Option<Seq>,
    ) -> Feed {
        Feed {
            engine,
            principal,
            conversation_id,
            subscription,
            cursor: SeqCursor::new(last_sent),
            pending_replay,
            queued: std::collections::VecDeque::new(),
            ready: Vec::new(),
        }
    }

    /// What the connection missed since its starting point (its `lastSeq`, or its principal's
    /// delivery cursor), to send before anything live; empty when nothing is owed.
    pub async fn catch_up(&mut self) -> Result<Vec<Delivery>, EngineError> {
        match self.pending_replay.take() {
            Some(after_seq) => self.replay_after(after_seq).await,
            None => Ok(Vec::new()),
        }
    }

    /// The highest seq this connection has been sent.
    pub fn last_sent(&self) -> Seq {
        self.cursor.last_sent()
    }

    /// Everything stored after `after_seq` that this connection has not been sent, in seq
    /// order; afterwards the live stream continues from there without a duplicate.
    pub async fn replay_after(&mut self, after_seq: Seq) -> Result<Vec<Delivery>, EngineError> {
        let mut deliveries = Vec::new();
        let mut after = after_seq;
        let page_size = self.engine.config().replay_page;
        loop {
            let page = self
                .engine
                .page_after(&self.principal, self.conversation_id, after, page_size)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full_page = page.len() as u32 >= page_size;
            self.push_visible(page, &mut deliveries);
            if !full_page {
                break;
            }
        }
        Ok(deliveries)
    }

    /// Waits for the next events and returns them ready to send (gaps filled, duplicates
    /// dropped). Cancel-safe: dropped before it returns, it loses nothing, and the next call
    /// carries on where it stopped.
    pub async fn next(&mut self) -> FeedItem {
        loop {
            if self.queued.is_empty() && self.ready.is_empty() {
                match self.subscription.recv().await {
                    Received::Deliveries(queued) => self.queued.extend(queued),
                    Received::Evicted(eviction) => return FeedItem::Evicted(eviction),
                }
            }
            self.admit_queued().await;
            if !self.ready.is_empty() {
                return FeedItem::Deliveries(std::mem::take(&mut self.ready));
            }
        }
    }

    /// Admits the queued deliveries in order into `ready`: duplicates dropped, gaps filled from
    /// the store. Each delivery leaves the queue only once its admission is recorded, with no
    /// wait in between, so a cancelled call leaves the queue and cursor consistent.
    async fn admit_queued(&mut self) {
        while let Some(delivery) = self.queued.front().cloned() {
            match self.admit(delivery).await {
                Ok(deliveries) => self.ready.extend(deliveries),
                Err(error) => tracing::warn!(%error, "could not fill a gap in a conversation feed"),
            }
            self.queued.pop_front();
        }
    }

    /// Moves the cursor over `messages` and keeps those this principal may see (a visitor's
    /// cursor passes private notes without being sent them).
    fn push_visible(
        &mut self,
        messages: impl IntoIterator<Item = switchboard_core::Message>,
        deliveries: &mut Vec<Delivery>,
    ) {
        for message in messages {
            self.cursor.sent(message.seq);
            let event = message_event(message);
            if may_receive(
                &self.principal,
                &event,
                &switchboard_core::policy::NoMemberships,
            ) {
                deliveries.push(Delivery::new(event));
            }
        }
    }

    /// Whatever is already queued for this connection, ready to send, without waiting: what a
    /// graceful shutdown flushes before it says goodbye.
    pub async fn drain(&mut self) -> Vec<Delivery> {
        if let Some(Received::Deliveries(queued)) = self.subscription.try_recv() {
            self.queued.extend(queued);
        }
        self.admit_queued().await;
        std::mem::take(&mut self.ready)
    }

    async fn admit(&mut self, delivery: Delivery) -> Result<Vec<Delivery>, EngineError> {
        let seq = match &delivery.event().kind {
            EventKind::MessageCreated(message) => message.seq,
            _ => return Ok(vec![delivery]),
        };
        match self.cursor.admit(seq) {
            Admission::Duplicate => Ok(Vec::new()),
            Admission::Next => {
                self.cursor.sent(seq);
                Ok(vec![delivery])
            }
            Admission::Gap { after, before } => {
                let mut deliveries = Vec::new();
                // Boxed: a rare store read, kept out of every idle connection's waiting state.
                let missing = Box::pin(self.engine.page_after(
                    &self.principal,
                    self.conversation_id,
                    after,
                    (before - after - 1) as u32,
                ))
                .await?;
                let missing = missing.into_iter().filter(|message| message.seq < before);
                self.push_visible(missing, &mut deliveries);
                self.cursor.sent(seq);
                deliveries.push(delivery);
                Ok(deliveries)
            }
        }
    }
}

/// The event a stored message is replayed as. Replayed events go to one connection whose
/// subscription was authorised, so they carry no inbox.
pub fn message_event(message: switchboard_core::Message) -> Arc<Event> {
    Arc::new(Event {
        account_id: message.account_id,
        inbox_id: None,
        contact_id: None,
        kind: EventKind::MessageCreated(message),
    })
}

/// Whatever is already queued on a subscription that needs no cursor, without waiting.
pub fn drain_ready(subscription: &mut Subscription) -> Vec<Delivery> {
    match subscription.try_recv() {
        Some(Received::Deliveries(queued)) => queued,
        _ => Vec::new(),
    }
}

/// Waits for the next deliveries of a subscription that needs no cursor (an account feed).
pub async fn next_deliveries(subscription: &mut Subscription) -> FeedItem {
    match subscription.recv().await {
        Received::Deliveries(queued) => FeedItem::Deliveries(queued),
        Received::Evicted(eviction) => FeedItem::Evicted(eviction),
    }
}
