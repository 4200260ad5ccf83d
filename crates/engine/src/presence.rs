//! Presence: who is online, from live connections and agents' own availability, and the
//! receipts that follow delivery. Transitions are pushed as `presence.update` and
//! `account.status_updated`; a dead connection is closed by its heartbeat deadline, and its
//! guard's drop turns the principal offline, so the window is bounded by the heartbeat timeout.
//!
//! One node only: counts live in this process (cluster mode keeps them in Redis with expiry).

use crate::engine::Engine;
use crate::hub::Delivery;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use switchboard_core::presence::{account_online, agent_presence, contact_presence};
use switchboard_core::*;
use switchboard_store::CursorOwner;

#[derive(Default)]
pub struct PresenceState {
    agents: HashMap<AgentId, AgentEntry>,
    contacts: HashMap<ContactId, (AccountId, usize)>,
    online_agents: HashMap<AccountId, usize>,
}

struct AgentEntry {
    connections: usize,
    availability: Availability,
}

impl AgentEntry {
    fn presence(&self) -> Availability {
        agent_presence(self.connections, self.availability)
    }
}

/// Who a live connection makes present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PresenceKey {
    Agent(AccountId, AgentId),
    /// A contact, with the inbox of its conversation when it is known (a demo session), so
    /// only agents of that inbox hear of it.
    Contact(AccountId, ContactId, Option<InboxId>),
}

/// Held by a live connection; dropping it counts the connection out.
pub struct PresenceGuard {
    engine: Arc<Engine>,
    key: PresenceKey,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let engine = self.engine.clone();
        let key = self.key;
        let changes = engine.presence_change(key, -1, None);
        if !changes.is_empty() {
            tokio::spawn(async move { engine.publish_presence(key, changes).await });
        }
    }
}

impl Engine {
    /// Counts a live connection of `principal` in; keep the guard for as long as it lives.
    pub async fn connected(&self, principal: &Principal) -> Option<PresenceGuard> {
        let key = match principal {
            Principal::Agent {
                account_id,
                agent_id,
                ..
            } => PresenceKey::Agent(*account_id, *agent_id),
            Principal::Contact {
                account_id,
                contact_id,
            } => PresenceKey::Contact(*account_id, *contact_id, None),
            Principal::SessionVisitor {
                account_id,
                contact_id,
                conversation_id,
                ..
            } => {
                let inbox_id = self.scope(*conversation_id).await.ok().map(|s| s.inbox_id);
                PresenceKey::Contact(*account_id, *contact_id, inbox_id)
            }
            _ => return None,
        };
        let availability = match key {
            PresenceKey::Agent(account_id, agent_id) => {
                let known = self
                    .presence
                    .lock()
                    .expect("presence poisoned")
                    .agents
                    .contains_key(&agent_id);
                if known {
                    None
                } else {
                    match self.store().agent(account_id, agent_id).await {
                        Ok(Some(agent)) => Some(agent.availability),
                        Ok(None) => return None,
                        Err(error) => {
                            tracing::warn!(%error, "could not load an agent's availability");
                            Some(Availability::Online)
                        }
                    }
                }
            }
            PresenceKey::Contact(..) => None,
        };
        let changes = self.presence_change(key, 1, availability);
        self.publish_presence(key, changes).await;
        Some(PresenceGuard {
            engine: self.arc(),
            key,
        })
    }

    /// An agent's presence now (offline when it has no live connection).
    pub fn agent_presence(&self, agent_id: AgentId) -> Availability {
        self.presence
            .lock()
            .expect("presence poisoned")
            .agents
            .get(&agent_id)
            .map_or(Availability::Offline, AgentEntry::presence)
    }

    /// A contact's presence now.
    pub fn contact_presence(&self, contact_id: ContactId) -> Availability {
        let connections = self
            .presence
            .lock()
            .expect("presence poisoned")
            .contacts
            .get(&contact_id)
            .map_or(0, |(_, n)| *n);
        contact_presence(connections)
    }

    /// Whether the account is online (an agent is online).
    pub fn account_is_online(&self, account_id: AccountId) -> bool {
        let state = self.presence.lock().expect("presence poisoned");
        account_online(state.online_agents.get(&account_id).copied().unwrap_or(0))
    }

    /// Records an agent's new availability and publishes what changed.
    pub(crate) async fn availability_changed(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        availability: Availability,
    ) {
        let key = PresenceKey::Agent(account_id, agent_id);
        let changes = self.presence_change(key, 0, Some(availability));
        self.publish_presence(key, changes).await;
    }

    /// Applies a change in connections (`delta`) and/or availability; returns the events the
    /// transition calls for.
    fn presence_change(
        &self,
        key: PresenceKey,
        delta: i64,
        availability: Option<Availability>,
    ) -> Vec<EventKind> {
        let mut state = self.presence.lock().expect("presence poisoned");
        let mut events = Vec::new();
        match key {
            PresenceKey::Agent(account_id, agent_id) => {
                let entry = state.agents.entry(agent_id).or_insert(AgentEntry {
                    connections: 0,
                    availability: availability.unwrap_or(Availability::Online),
                });
                let before = entry.presence();
                entry.connections = (entry.connections as i64 + delta).max(0) as usize;
                if let Some(availability) = availability {
                    entry.availability = availability;
                }
                let after = entry.presence();
                if before != after {
                    events.push(EventKind::PresenceUpdate {
                        agents: vec![(agent_id, after)],
                        contacts: Vec::new(),
                    });
                    let was_online = before == Availability::Online;
                    let is_online = after == Availability::Online;
                    if was_online != is_online {
                        let count = state.online_agents.entry(account_id).or_insert(0);
                        let before_account = account_online(*count);
                        if is_online {
                            *count += 1;
                        } else {
                            *count = count.saturating_sub(1);
                        }
                        let after_account = account_online(*count);
                        if before_account != after_account {
                            events.push(EventKind::AccountStatusUpdated {
                                online: after_account,
                            });
                        }
                    }
                }
            }
            PresenceKey::Contact(account_id, contact_id, _) => {
                let entry = state.contacts.entry(contact_id).or_insert((account_id, 0));
                let before = contact_presence(entry.1);
                entry.1 = (entry.1 as i64 + delta).max(0) as usize;
                let after = contact_presence(entry.1);
                if entry.1 == 0 {
                    state.contacts.remove(&contact_id);
                }
                if before != after {
                    events.push(EventKind::PresenceUpdate {
                        agents: Vec::new(),
                        contacts: vec![(contact_id, after)],
                    });
                }
            }
        }
        events
    }

    async fn publish_presence(&self, key: PresenceKey, changes: Vec<EventKind>) {
        let (account_id, inbox_id) = match key {
            PresenceKey::Agent(account_id, _) => (account_id, None),
            PresenceKey::Contact(account_id, _, inbox_id) => (account_id, inbox_id),
        };
        for kind in changes {
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

    /// Notes that `deliveries` were written to a live connection of `principal`: its delivery
    /// cursor moves (in memory; flushed in batches), and a message reaching the other party for
    /// the first time becomes `delivered`.
    pub fn note_written(&self, principal: &Principal, deliveries: &[Delivery]) {
        if let Some(owner) = cursor_owner(principal) {
            let mut cursors = self.cursors.shard(owner).lock().expect("cursors poisoned");
            for delivery in deliveries {
                if let EventKind::MessageCreated(message) = &delivery.event().kind {
                    cursors.advance(owner, message.conversation_id, message.seq);
                }
            }
        }
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
        if newly_delivered.is_empty() {
            return;
        }
        let engine = self.arc();
        tokio::spawn(async move {
            for message in newly_delivered {
                match engine
                    .store()
                    .mark_delivered(message.id, engine.clock().now_ms())
                    .await
                {
                    Ok(Some(updated)) => engine.publish_message_updated(updated).await,
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "could not mark a message delivered"),
                }
            }
        });
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

/// The engine's presence state, behind a std lock held only for map updates.
pub type SharedPresence = Mutex<PresenceState>;

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
    fn advance(&mut self, owner: CursorOwner, conversation_id: ConversationId, seq: Seq) {
        let key = (owner, conversation_id);
        let latest = self.latest.entry(key).or_insert(0);
        if seq > *latest {
            *latest = seq;
            self.dirty.insert(key);
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
