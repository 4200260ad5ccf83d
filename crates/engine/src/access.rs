//! What the engine keeps in memory to decide access without a store read on the hot path:
//! inbox memberships, the never-changing scope (account, inbox, contact) of conversations, and
//! which agents are already recorded as a conversation's participants.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use switchboard_core::policy::InboxAccess;
use switchboard_core::{AgentId, ConversationId, ConversationScope, InboxId};

/// Inbox memberships of every agent, loaded at start and updated by administration.
///
/// Each node keeps its own copy; a change is published as `InboxMembershipChanged` and
/// applied by every node on receipt.
#[derive(Default)]
pub struct Memberships {
    // A std lock: read on every fan-out, written only by administration; never held across an
    // await.
    members: RwLock<HashSet<(AgentId, InboxId)>>,
}

impl Memberships {
    pub fn load(pairs: impl IntoIterator<Item = (AgentId, InboxId)>) -> Memberships {
        Memberships {
            members: RwLock::new(pairs.into_iter().collect()),
        }
    }

    pub fn set(&self, agent_id: AgentId, inbox_id: InboxId, member: bool) {
        let mut members = self.members.write().expect("memberships poisoned");
        if member {
            members.insert((agent_id, inbox_id));
        } else {
            members.remove(&(agent_id, inbox_id));
        }
    }

    pub fn inboxes_of(&self, agent_id: AgentId) -> Vec<InboxId> {
        let members = self.members.read().expect("memberships poisoned");
        let mut inboxes: Vec<InboxId> = members
            .iter()
            .filter(|(agent, _)| *agent == agent_id)
            .map(|(_, inbox)| *inbox)
            .collect();
        inboxes.sort();
        inboxes
    }
}

impl InboxAccess for Memberships {
    fn is_member(&self, agent_id: AgentId, inbox_id: InboxId) -> bool {
        self.members
            .read()
            .expect("memberships poisoned")
            .contains(&(agent_id, inbox_id))
    }
}

/// Conversation scopes by id. Scopes never change, so entries never go stale; the cache is
/// emptied when it grows past its bound.
#[derive(Default)]
pub struct ScopeCache {
    scopes: RwLock<HashMap<ConversationId, ConversationScope>>,
}

const MAX_CACHED_SCOPES: usize = 200_000;

impl ScopeCache {
    pub fn get(&self, conversation_id: ConversationId) -> Option<ConversationScope> {
        self.scopes
            .read()
            .expect("scope cache poisoned")
            .get(&conversation_id)
            .copied()
    }

    pub fn put(&self, scope: ConversationScope) {
        let mut scopes = self.scopes.write().expect("scope cache poisoned");
        if scopes.len() >= MAX_CACHED_SCOPES {
            scopes.clear();
        }
        scopes.insert(scope.conversation_id, scope);
    }
}

/// Pairs of a conversation and an agent known to be recorded as participants. Participants are
/// never removed, so an entry never goes stale; a miss only means asking the store, which
/// stays the truth (another node may have recorded the pair). Emptied past its bound.
#[derive(Default)]
pub struct KnownParticipants {
    pairs: RwLock<HashSet<(ConversationId, AgentId)>>,
}

const MAX_KNOWN_PARTICIPANTS: usize = 200_000;

impl KnownParticipants {
    pub fn contains(&self, conversation_id: ConversationId, agent_id: AgentId) -> bool {
        self.pairs
            .read()
            .expect("participant cache poisoned")
            .contains(&(conversation_id, agent_id))
    }

    pub fn put(&self, conversation_id: ConversationId, agent_id: AgentId) {
        let mut pairs = self.pairs.write().expect("participant cache poisoned");
        if pairs.len() >= MAX_KNOWN_PARTICIPANTS {
            pairs.clear();
        }
        pairs.insert((conversation_id, agent_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_participants_are_remembered_per_conversation_and_agent() {
        let known = KnownParticipants::default();
        assert!(!known.contains(ConversationId(1), AgentId(7)));
        known.put(ConversationId(1), AgentId(7));
        assert!(known.contains(ConversationId(1), AgentId(7)));
        assert!(!known.contains(ConversationId(2), AgentId(7)));
        assert!(!known.contains(ConversationId(1), AgentId(8)));
    }
}
