//! Presence: who is online, from live connections counted across every node by the
//! [`PresenceDirectory`] and agents' own availability, and the receipts that follow delivery.
//! Transitions are pushed as `presence.update` and `account.status_updated`. A dead connection
//! is closed by its heartbeat deadline and its guard's drop counts it out; a dead node's
//! connections are forgotten by the directory within its window, and whichever node's sweep
//! finds them gone announces them offline — no ghost presence.

use crate::engine::Engine;
use crate::hub::Delivery;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use switchboard_bus::{PresenceChange, Present};
use switchboard_core::presence::{account_online, agent_presence, contact_presence};
use switchboard_core::*;
use switchboard_store::CursorOwner;

/// Held by a live connection; dropping it counts the connection out.
pub struct PresenceGuard {
    engine: Arc<Engine>,
    who: Present,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let engine = self.engine.clone();
        let who = self.who;
        tokio::spawn(async move { engine.count_presence(who, -1).await });
    }
}

/// One principal's live connections before and after something happened.
struct Transition {
    who: Present,
    before: u64,
    after: u64,
}

impl Engine {
    /// Counts a live connection of `principal` in; keep the guard for as long as it lives.
    pub async fn connected(&self, principal: &Principal) -> Option<PresenceGuard> {
        let who = match principal {
            Principal::Agent {
                account_id,
                agent_id,
                ..
            } => Present::Agent {
                account_id: *account_id,
                agent_id: *agent_id,
            },
            Principal::Contact {
                account_id,
                contact_id,
            } => Present::Contact {
                account_id: *account_id,
                contact_id: *contact_id,
                inbox_id: None,
            },
            Principal::SessionVisitor {
                account_id,
                contact_id,
                conversation_id,
                ..
            } => Present::Contact {
                account_id: *account_id,
                contact_id: *contact_id,
                inbox_id: self.scope(*conversation_id).await.ok().map(|s| s.inbox_id),
            },
            _ => return None,
        };
        self.count_presence(who, 1).await;
        Some(PresenceGuard {
            engine: self.arc(),
            who,
        })
    }

    async fn count_presence(&self, who: Present, delta: i64) {
        match self.presence_directory().change(who, delta).await {
            Ok(PresenceChange {
                before,
                after,
                agents_present,
            }) => {
                let transition = Transition { who, before, after };
                self.announce(vec![transition], Some(agents_present)).await;
            }
            Err(error) => tracing::warn!(%error, "could not count a connection's presence"),
        }
    }

    /// Keeps this node alive in the directory; announces who went with forgotten nodes and who
    /// came back with this one.
    pub(crate) async fn sweep_presence(&self) {
        match self.presence_directory().sweep().await {
            Ok(swept) => {
                let gone = swept.gone.into_iter().map(|who| Transition {
                    who,
                    before: 1,
                    after: 0,
                });
                let back = swept.back.into_iter().map(|who| Transition {
                    who,
                    before: 0,
                    after: 1,
                });
                self.announce(gone.chain(back).collect(), None).await;
            }
            Err(error) => tracing::warn!(%error, "could not sweep the presence directory"),
        }
    }

    /// Takes this node's connections out of the directory at once (a clean shutdown).
    pub async fn leave_presence(&self) {
        match self.presence_directory().leave().await {
            Ok(gone) => {
                let gone = gone.into_iter().map(|who| Transition {
                    who,
                    before: 1,
                    after: 0,
                });
                self.announce(gone.collect(), None).await;
            }
            Err(error) => tracing::warn!(%error, "could not leave the presence directory"),
        }
    }

    /// Publishes what `transitions` change: a contact's or agent's presence, and an account's
    /// status when its last online agent went or its first came. `present` is the agents
    /// present after the transitions when the directory said so with them.
    async fn announce(&self, transitions: Vec<Transition>, present: Option<Vec<(AgentId, u64)>>) {
        let mut agents: BTreeMap<AccountId, Vec<(AgentId, u64, u64)>> = BTreeMap::new();
        for Transition { who, before, after } in transitions {
            if (before > 0) == (after > 0) {
                continue;
            }
            match who {
                Present::Contact {
                    account_id,
                    contact_id,
                    inbox_id,
                } => {
                    let kind = EventKind::PresenceUpdate {
                        agents: Vec::new(),
                        contacts: vec![(contact_id, contact_presence(after as usize))],
                    };
                    self.publish_presence(account_id, inbox_id, vec![kind])
                        .await;
                }
                Present::Agent {
                    account_id,
                    agent_id,
                } => agents
                    .entry(account_id)
                    .or_default()
                    .push((agent_id, before, after)),
            }
        }
        for (account_id, changed) in agents {
            let present = match &present {
                Some(present) => present.clone(),
                None => match self.presence_directory().agents_present(account_id).await {
                    Ok(present) => present,
                    Err(error) => {
                        tracing::warn!(%error, "could not read the agents present");
                        continue;
                    }
                },
            };
            let availability = self.availabilities(account_id).await;
            let shown = |agent_id: AgentId, connections: u64| {
                let chosen = availability
                    .get(&agent_id)
                    .copied()
                    .unwrap_or(Availability::Online);
                agent_presence(connections as usize, chosen)
            };
            let online_after = present
                .iter()
                .filter(|(agent_id, n)| shown(*agent_id, *n) == Availability::Online)
                .count();
            let mut online_before = online_after as i64;
            let mut kinds = Vec::new();
            for (agent_id, before, after) in changed {
                let (was, is) = (shown(agent_id, before), shown(agent_id, after));
                if was == is {
                    continue;
                }
                kinds.push(EventKind::PresenceUpdate {
                    agents: vec![(agent_id, is)],
                    contacts: Vec::new(),
                });
                online_before += i64::from(was == Availability::Online);
                online_before -= i64::from(is == Availability::Online);
            }
            if account_online(online_before.max(0) as usize) != account_online(online_after) {
                kinds.push(EventKind::AccountStatusUpdated {
                    online: account_online(online_after),
                });
            }
            self.publish_presence(account_id, None, kinds).await;
        }
    }

    /// Each agent's chosen availability (online when it cannot be read).
    async fn availabilities(&self, account_id: AccountId) -> HashMap<AgentId, Availability> {
        match self.store().agents(account_id).await {
            Ok(agents) => agents
                .into_iter()
                .map(|agent| (agent.id, agent.availability))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "could not load agents' availability");
                HashMap::new()
            }
        }
    }

    /// An agent's presence now, on whichever node its connections are (offline when it has
    /// none).
    pub async fn agent_presence(&self, account_id: AccountId, agent_id: AgentId) -> Availability {
        let connections = match self.presence_directory().agents_present(account_id).await {
            Ok(present) => present
                .into_iter()
                .find(|(id, _)| *id == agent_id)
                .map_or(0, |(_, n)| n),
            Err(error) => {
                tracing::warn!(%error, "could not read the agents present");
                0
            }
        };
        if connections == 0 {
            return Availability::Offline;
        }
        let chosen = match self.store().agent(account_id, agent_id).await {
            Ok(Some(agent)) => agent.availability,
            _ => Availability::Online,
        };
        agent_presence(connections as usize, chosen)
    }

    /// A contact's presence now, on whichever node its connections are.
    pub async fn contact_presence(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
    ) -> Availability {
        let connections = self
            .presence_directory()
            .contact_connections(account_id, contact_id)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "could not read a contact's connections");
                0
            });
        contact_presence(connections as usize)
    }

    /// Whether the account is online (an agent of it is online on some node).
    pub async fn account_is_online(&self, account_id: AccountId) -> bool {
        let present = match self.presence_directory().agents_present(account_id).await {
            Ok(present) if !present.is_empty() => present,
            Ok(_) => return false,
            Err(error) => {
                tracing::warn!(%error, "could not read the agents present");
                return false;
            }
        };
        let availability = self.availabilities(account_id).await;
        let online = present
            .iter()
            .filter(|(agent_id, n)| {
                let chosen = availability
                    .get(agent_id)
                    .copied()
                    .unwrap_or(Availability::Online);
                agent_presence(*n as usize, chosen) == Availability::Online
            })
            .count();
        account_online(online)
    }

    /// Publishes an agent's new availability (`before` is what it chose until now).
    pub(crate) async fn availability_changed(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        before: Availability,
        after: Availability,
    ) {
        let present = match self.presence_directory().agents_present(account_id).await {
            Ok(present) => present,
            Err(error) => {
                tracing::warn!(%error, "could not read the agents present");
                return;
            }
        };
        let connections = present
            .iter()
            .find(|(id, _)| *id == agent_id)
            .map_or(0, |(_, n)| *n) as usize;
        let (was, is) = (
            agent_presence(connections, before),
            agent_presence(connections, after),
        );
        if was == is {
            return;
        }
        let availability = self.availabilities(account_id).await;
        let online_after = present
            .iter()
            .filter(|(id, n)| {
                let chosen = if *id == agent_id {
                    after
                } else {
                    availability
                        .get(id)
                        .copied()
                        .unwrap_or(Availability::Online)
                };
                agent_presence(*n as usize, chosen) == Availability::Online
            })
            .count();
        let online_before = (online_after as i64 + i64::from(was == Availability::Online)
            - i64::from(is == Availability::Online))
        .max(0) as usize;
        let mut kinds = vec![EventKind::PresenceUpdate {
            agents: vec![(agent_id, is)],
            contacts: Vec::new(),
        }];
        if account_online(online_before) != account_online(online_after) {
            kinds.push(EventKind::AccountStatusUpdated {
                online: account_online(online_after),
            });
        }
        self.publish_presence(account_id, None, kinds).await;
    }

    async fn publish_presence(
        &self,
        account_id: AccountId,
        inbox_id: Option<InboxId>,
        kinds: Vec<EventKind>,
    ) {
        for kind in kinds {
            let event = Event {
                account_id,
                inbox_id,
                contact_id: None,
                kind,
            };
            if let Err(error) = self.publish(event).await {
                tracing::warn!(%error, "could not publish a presence change");
            }
        }
    }

    /// Notes that `deliveries` are written to a live connection of `principal`: its delivery
    /// cursor moves (in memory; flushed in batches), and a message reaching the other party for
    /// the first time becomes `delivered`.
    ///
    /// Call it just before the write, not after: a client can have the frames and open another
    /// connection before the writing task runs again, and that connection must find the cursor
    /// already past them or it is sent them twice. If the write fails, [`Engine::write_failed`]
    /// moves the cursors back (a receipt, once claimed, stays: the message is replayed to the
    /// party's next connection anyway).
    pub fn note_written(&self, principal: &Principal, deliveries: &[Delivery]) -> CursorMoves {
        let mut moves = CursorMoves::default();
        if let Some(owner) = cursor_owner(principal) {
            let mut cursors = self.cursors.shard(owner).lock().expect("cursors poisoned");
            for delivery in deliveries {
                if let EventKind::MessageCreated(message) = &delivery.event().kind {
                    if let Some(before) =
                        cursors.advance(owner, message.conversation_id, message.seq)
                    {
                        moves
                            .moved
                            .push((owner, message.conversation_id, before, message.seq));
                    }
                }
            }
        }
        self.claim_receipts(principal, deliveries);
        moves
    }

    /// The write noted by [`Engine::note_written`] failed: each cursor it moved goes back,
    /// unless another connection has moved it on since.
    pub fn write_failed(&self, moves: CursorMoves) {
        for (owner, conversation_id, before, after) in moves.moved {
            self.cursors
                .shard(owner)
                .lock()
                .expect("cursors poisoned")
                .rewind(owner, conversation_id, before, after);
        }
    }

    /// Messages reaching the other party for the first time become `delivered`.
    fn claim_receipts(&self, principal: &Principal, deliveries: &[Delivery]) {
        let receiver_is_agent = matches!(principal, Principal::Agent { .. });
        let receiver_is_visitor = principal.is_visitor();
        if !receiver_is_agent && !receiver_is_visitor {
            return;
        }
        let mut newly_delivered = Vec::new();
        for delivery in deliveries {
            let EventKind::MessageCreated(message) = &delivery.event().kind else {
                continue;
            };
            let from_visitor = message.message_type == MessageType::Incoming;
            let to_other_party = (receiver_is_agent && from_visitor)
                || (receiver_is_visitor && !from_visitor && !message.private);
            // The first writer to the other party claims the receipt; the rest skip it
            // without a lock.
            if to_other_party && message.status == MessageStatus::Sent && delivery.claim_receipt() {
                newly_delivered.push(message.clone());
            }
        }
        if !newly_delivered.is_empty() {
            self.queue_receipts(newly_delivered);
        }
    }

    /// Queues `messages` to be marked delivered, and starts the task that writes them unless
    /// one is running.
    fn queue_receipts(&self, messages: Vec<Message>) {
        if self.receipts.add(messages) {
            let engine = self.arc();
            tokio::spawn(async move { engine.write_receipts().await });
        }
    }

    /// Drains the pending receipts until none are left: waits [`RECEIPTS_GATHER`] for more to
    /// come, then writes every one waiting (at most [`MAX_RECEIPTS_PER_WRITE`] a write), and
    /// again.
    async fn write_receipts(&self) {
        let mut more_waiting = false;
        loop {
            if !more_waiting {
                tokio::time::sleep(RECEIPTS_GATHER).await;
            }
            let Some(messages) = self.receipts.take() else {
                return;
            };
            more_waiting = messages.len() == MAX_RECEIPTS_PER_WRITE;
            self.mark_delivered(messages).await;
        }
    }

    /// Writes the receipts waiting now, without waiting for more: as a node stops.
    pub async fn write_pending_receipts(&self) {
        while let Some(messages) = self.receipts.take() {
            self.mark_delivered(messages).await;
        }
    }

    /// Marks `messages` delivered in one write, then publishes each that changed (from the
    /// copy in hand: the store is not read back).
    async fn mark_delivered(&self, messages: Vec<Message>) {
        let now = self.clock().now_ms();
        let ids = messages.iter().map(|message| message.id).collect();
        match self.store().mark_delivered(ids, now).await {
            Ok(changed) => {
                // The changed ids come in the order asked: a walk along both finds them.
                let mut changed = changed.into_iter().peekable();
                for mut message in messages {
                    if changed.next_if_eq(&message.id).is_some() {
                        message.status = MessageStatus::Delivered;
                        message.updated_at = now;
                        self.publish_message_updated(message).await;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not mark messages delivered"),
        }
    }

    pub(crate) async fn publish_message_updated(&self, message: Message) {
        let published = match self.scope(message.conversation_id).await {
            Ok(scope) => {
                self.publish(Event::in_conversation(
                    &scope,
                    EventKind::MessageUpdated(message),
                ))
                .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = published {
            tracing::warn!(%error, "could not publish a message update");
        }
    }
}

/// The cursors one [`Engine::note_written`] moved: owner, conversation, before and after.
#[derive(Debug, Default)]
pub struct CursorMoves {
    moved: Vec<(CursorOwner, ConversationId, Option<Seq>, Seq)>,
}

/// Messages whose first delivery to the other party was written and that wait to be marked
/// delivered. One task at a time drains them, so under load many receipts share one write
/// (and one commit) instead of one write each.
pub(crate) struct PendingReceipts<T = Message> {
    // A std lock, never held across an await: the messages waiting, and whether a task drains
    // them. A deque, since under load thousands wait and each write takes the oldest few
    // hundred: taking them from a Vec moved all the others forward every time.
    state: Mutex<(VecDeque<T>, bool)>,
}

impl<T> Default for PendingReceipts<T> {
    fn default() -> Self {
        PendingReceipts {
            state: Mutex::new((VecDeque::new(), false)),
        }
    }
}

impl<T> PendingReceipts<T> {
    /// Queues `messages`; true when the caller must start the draining task.
    fn add(&self, messages: Vec<T>) -> bool {
        let mut state = self.state.lock().expect("receipts poisoned");
        state.0.extend(messages);
        !std::mem::replace(&mut state.1, true)
    }

    /// The oldest waiting, at most [`MAX_RECEIPTS_PER_WRITE`] (one write stays short for the
    /// writes queued behind it), or `None` (and the draining task ends) when none are.
    fn take(&self) -> Option<Vec<T>> {
        let mut state = self.state.lock().expect("receipts poisoned");
        if state.0.is_empty() {
            state.1 = false;
            None
        } else {
            // The queue keeps its capacity for the receipts that come next.
            let count = state.0.len().min(MAX_RECEIPTS_PER_WRITE);
            Some(state.0.drain(..count).collect())
        }
    }
}

const MAX_RECEIPTS_PER_WRITE: usize = 512;

/// How long receipts gather before they are written together. Each write is a statement and a
/// commit, which on PostgreSQL costs more than the rows it changes: under load one write now
/// carries dozens of receipts instead of one or two, and a "delivered" mark this much later is
/// not something a person sees.
const RECEIPTS_GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// Whose cursor a principal's deliveries move.
pub(crate) fn cursor_owner(principal: &Principal) -> Option<CursorOwner> {
    match principal {
        Principal::Agent { agent_id, .. } => Some(CursorOwner::Agent(*agent_id)),
        Principal::Contact { contact_id, .. } | Principal::SessionVisitor { contact_id, .. } => {
            Some(CursorOwner::Contact(*contact_id))
        }
        Principal::Integration { .. } | Principal::Publishable { .. } => None,
    }
}

/// Delivery cursors in memory, sharded by owner so that connections on different threads
/// rarely wait for each other.
pub struct CursorShards {
    shards: [Mutex<Cursors>; 16],
}

impl Default for CursorShards {
    fn default() -> Self {
        CursorShards {
            shards: std::array::from_fn(|_| Mutex::new(Cursors::default())),
        }
    }
}

impl CursorShards {
    pub(crate) fn shard(&self, owner: CursorOwner) -> &Mutex<Cursors> {
        let index = match owner {
            CursorOwner::Contact(id) => id.0,
            CursorOwner::Agent(id) => id.0.wrapping_mul(31).wrapping_add(7),
        };
        &self.shards[index.rem_euclid(self.shards.len() as i64) as usize]
    }

    pub(crate) fn shards(&self) -> &[Mutex<Cursors>] {
        &self.shards
    }
}

/// Delivery cursors in memory: the newest seq written to each owner in each conversation, and
/// which of them the store has not seen yet.
#[derive(Default)]
pub struct Cursors {
    latest: HashMap<(CursorOwner, ConversationId), Seq>,
    dirty: HashSet<(CursorOwner, ConversationId)>,
}

impl Cursors {
    /// Moves a cursor forward to `seq`; when it moved, what it was before (`None`: no cursor).
    fn advance(
        &mut self,
        owner: CursorOwner,
        conversation_id: ConversationId,
        seq: Seq,
    ) -> Option<Option<Seq>> {
        let key = (owner, conversation_id);
        let before = self.latest.get(&key).copied();
        if before.is_some_and(|latest| latest >= seq) {
            return None;
        }
        self.latest.insert(key, seq);
        self.dirty.insert(key);
        Some(before)
    }

    /// Puts a cursor back from `after` to `before`, unless it has moved on from `after`.
    fn rewind(
        &mut self,
        owner: CursorOwner,
        conversation_id: ConversationId,
        before: Option<Seq>,
        after: Seq,
    ) {
        let key = (owner, conversation_id);
        if self.latest.get(&key) != Some(&after) {
            return;
        }
        match before {
            Some(seq) => {
                self.latest.insert(key, seq);
            }
            None => {
                self.latest.remove(&key);
            }
        }
    }

    pub(crate) fn get(&self, owner: CursorOwner, conversation_id: ConversationId) -> Option<Seq> {
        self.latest.get(&(owner, conversation_id)).copied()
    }

    /// Every cursor of one owner kept in memory.
    pub(crate) fn of_owner(&self, owner: CursorOwner) -> Vec<(ConversationId, Seq)> {
        self.latest
            .iter()
            .filter(|((o, _), _)| *o == owner)
            .map(|((_, conversation_id), seq)| (*conversation_id, *seq))
            .collect()
    }

    /// Marks a cursor dirty again after a failed write.
    pub(crate) fn retry(&mut self, owner: CursorOwner, conversation_id: ConversationId, seq: Seq) {
        self.latest.entry((owner, conversation_id)).or_insert(seq);
        self.dirty.insert((owner, conversation_id));
    }

    /// The cursors to write, leaving none dirty.
    pub(crate) fn take_dirty(&mut self) -> Vec<(CursorOwner, ConversationId, Seq)> {
        let dirty: Vec<_> = self.dirty.drain().collect();
        dirty
            .into_iter()
            .filter_map(|key| self.latest.get(&key).map(|seq| (key.0, key.1, *seq)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine on a SQLite store of its own (the directory lives as long as the first).
    async fn engine_on_sqlite() -> (
        tempfile::TempDir,
        Arc<dyn switchboard_store::Store>,
        Arc<Engine>,
    ) {
        let directory = tempfile::tempdir().unwrap();
        let store: Arc<dyn switchboard_store::Store> = Arc::new(
            switchboard_store::SqliteStore::open(
                directory.path().join("t.db"),
                switchboard_store::Durability::Normal,
            )
            .unwrap(),
        );
        let engine = Engine::start(
            store.clone(),
            Arc::new(switchboard_bus::InProcessBus::new()),
            crate::EngineConfig::default(),
        )
        .await
        .unwrap();
        (directory, store, engine)
    }

    #[tokio::test]
    async fn a_flush_of_more_cursors_than_one_write_takes_saves_every_one() {
        let (_directory, store, engine) = engine_on_sqlite().await;
        let count = crate::engine::CURSORS_PER_WRITE * 2 + 7;
        let owners: Vec<CursorOwner> = (1..=count as i64)
            .map(|n| CursorOwner::Contact(ContactId(n)))
            .collect();
        for (n, owner) in owners.iter().enumerate() {
            let mut shard = engine.cursors.shard(*owner).lock().unwrap();
            shard.advance(*owner, ConversationId(1), n as Seq + 1);
        }
        engine.flush_cursors().await;
        for (n, owner) in owners.iter().enumerate() {
            let stored = store.cursor(*owner, ConversationId(1)).await.unwrap();
            assert_eq!(stored, Some(n as Seq + 1), "cursor {n} of {count}");
        }
    }

    /// [`engine_on_sqlite`] with a conversation to send in.
    async fn engine_with_world() -> (
        tempfile::TempDir,
        Arc<dyn switchboard_store::Store>,
        Arc<Engine>,
        switchboard_store::conformance::World,
    ) {
        let (directory, store, engine) = engine_on_sqlite().await;
        let world = switchboard_store::conformance::world(&store).await;
        (directory, store, engine, world)
    }

    async fn stored_message(
        store: &Arc<dyn switchboard_store::Store>,
        world: &switchboard_store::conformance::World,
        text: &str,
    ) -> Message {
        let message = switchboard_store::conformance::visitor_text(world, text, None);
        store.append_message(message).await.unwrap().message
    }

    /// The stored status and update time of each message of the world's conversation.
    async fn statuses(
        store: &Arc<dyn switchboard_store::Store>,
        world: &switchboard_store::conformance::World,
    ) -> Vec<(MessageStatus, UnixMillis)> {
        store
            .messages_after(world.session.conversation_id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|message| (message.status, message.updated_at))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn receipts_queued_within_the_gathering_time_are_written_together() {
        let (_directory, store, engine, world) = engine_with_world().await;
        let first = stored_message(&store, &world, "one").await;
        let second = stored_message(&store, &world, "two").await;
        let third = stored_message(&store, &world, "three").await;
        let started = engine.clock().now_ms();

        engine.queue_receipts(vec![first]);
        // Time stands still while the test waits, except to wake the earliest sleeper.
        tokio::time::sleep(RECEIPTS_GATHER / 2).await;
        engine.queue_receipts(vec![second, third]);
        let mut waited = 0;
        while statuses(&store, &world).await[2].0 != MessageStatus::Delivered {
            waited += 1;
            assert!(waited < 1000, "the receipts were never written");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }

        let written = statuses(&store, &world).await;
        let at = written[0].1;
        assert!(
            at >= started + RECEIPTS_GATHER.as_millis() as UnixMillis,
            "the first receipt waited for the others"
        );
        assert_eq!(
            written,
            vec![(MessageStatus::Delivered, at); 3],
            "one write marked all three"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_node_writes_the_receipts_still_gathering() {
        let (_directory, store, engine, world) = engine_with_world().await;
        let message = stored_message(&store, &world, "one").await;

        engine.queue_receipts(vec![message]);
        engine.write_pending_receipts().await;

        assert_eq!(
            statuses(&store, &world).await[0].0,
            MessageStatus::Delivered,
            "written without waiting out the gathering time"
        );
    }

    #[test]
    fn one_task_drains_the_receipts_and_the_next_add_starts_another() {
        let receipts = PendingReceipts::<MessageId>::default();
        assert!(
            receipts.add(vec![MessageId(1)]),
            "the first add starts a task"
        );
        assert!(
            !receipts.add(vec![MessageId(2), MessageId(3)]),
            "one is running"
        );
        assert_eq!(
            receipts.take(),
            Some(vec![MessageId(1), MessageId(2), MessageId(3)])
        );
        assert!(
            !receipts.add(vec![MessageId(4)]),
            "still running until it finds none"
        );
        assert_eq!(receipts.take(), Some(vec![MessageId(4)]));
        assert_eq!(receipts.take(), None, "the task ends");
        assert!(
            receipts.add(vec![MessageId(5)]),
            "so the next add starts one"
        );
        receipts.add((6..1000).map(MessageId).collect());
        let first = receipts.take().unwrap();
        assert_eq!(first.len(), MAX_RECEIPTS_PER_WRITE);
        assert_eq!(first[0], MessageId(5), "oldest first");
        let rest = receipts.take().unwrap();
        assert_eq!(rest.len(), 995 - MAX_RECEIPTS_PER_WRITE);
        assert_eq!(
            rest[0],
            MessageId(5 + MAX_RECEIPTS_PER_WRITE as i64),
            "the rest in order"
        );
        assert_eq!(receipts.take(), None);
    }

    #[test]
    fn a_failed_write_puts_the_cursor_back_unless_it_moved_on() {
        let owner = CursorOwner::Contact(ContactId(3));
        let conversation = ConversationId(9);
        let mut cursors = Cursors::default();
        assert_eq!(cursors.advance(owner, conversation, 4), Some(None));
        assert_eq!(cursors.advance(owner, conversation, 4), None, "not forward");
        assert_eq!(cursors.advance(owner, conversation, 6), Some(Some(4)));
        cursors.rewind(owner, conversation, Some(4), 6);
        assert_eq!(cursors.get(owner, conversation), Some(4));
        // A first write that fails leaves no cursor at all (staff then start at the newest).
        cursors.rewind(owner, conversation, None, 4);
        assert_eq!(cursors.get(owner, conversation), None);
        // Another connection moved it on: the failed write's rewind leaves it.
        cursors.advance(owner, conversation, 5);
        cursors.advance(owner, conversation, 8);
        cursors.rewind(owner, conversation, Some(0), 5);
        assert_eq!(cursors.get(owner, conversation), Some(8));
        assert_eq!(cursors.take_dirty(), vec![(owner, conversation, 8)]);
    }
}
