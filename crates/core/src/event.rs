//! Canonical events (`spec/model.md`) and the topics they are published on. Each dialect renders
//! events in its own spelling; the names here are the canonical ones.

use crate::ids::*;
use crate::records::{
    Availability, Contact, Conversation, ConversationScope, Message, Notification,
    TranscriptSegment,
};
use serde::{Deserialize, Serialize};

/// Who did something that others see (typing, reading).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    Contact(ContactId),
    Agent(AgentId),
    Bot { id: BotId, name: String },
}

/// Why a bot could not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BotFailure {
    /// The bot the conversation is bound to no longer exists.
    ConfigurationMissing,
    /// The bot was called and failed (timeout, error status, unreadable reply).
    Unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub account_id: AccountId,
    /// The inbox of the event's conversation; `None` for events about no conversation.
    pub inbox_id: Option<InboxId>,
    /// The contact of the event's conversation, when it is about one: contacts are sent only
    /// their own conversations' events.
    #[serde(default)]
    pub contact_id: Option<ContactId>,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    MessageCreated(Message),
    MessageUpdated(Message),
    ConversationCreated(Conversation),
    ConversationStatusChanged(Conversation),
    AssigneeChanged(Conversation),
    TeamChanged(Conversation),
    TypingOn {
        conversation_id: ConversationId,
        actor: Actor,
        private: bool,
    },
    TypingOff {
        conversation_id: ConversationId,
        actor: Actor,
    },
    ConversationRead {
        conversation_id: ConversationId,
        reader: Actor,
        seq: Seq,
    },
    /// A human agent joined a conversation (its first assignment or reply there).
    AgentJoined {
        conversation_id: ConversationId,
        agent_id: AgentId,
        agent_name: String,
    },
    /// The human agent a conversation was assigned to no longer has it.
    AgentLeft {
        conversation_id: ConversationId,
        agent_id: AgentId,
        agent_name: String,
    },
    SessionEnded {
        session_id: SessionId,
        conversation_id: ConversationId,
    },
    /// A bot failed to answer a visitor; the visitor is told instead of left in silence.
    BotFailed {
        conversation_id: ConversationId,
        bot_name: String,
        failure: BotFailure,
    },
    NotificationCreated(Notification),
    ContactCreated(Contact),
    ContactUpdated(Contact),
    /// Presence changed for these agents and contacts of the account.
    PresenceUpdate {
        agents: Vec<(AgentId, Availability)>,
        contacts: Vec<(ContactId, Availability)>,
    },
    /// The account went online (an agent is online) or offline (none is).
    AccountStatusUpdated {
        online: bool,
    },
    /// A segment was added to a transcript.
    TranscriptUpdated(TranscriptSegment),
    /// An agent joined or left an inbox: every node updates the memberships it routes by.
    InboxMembershipChanged {
        agent_id: AgentId,
        inbox_id: InboxId,
        member: bool,
    },
}

/// Where an event is published; connections subscribe to topics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// One conversation's stream.
    Conversation(ConversationId),
    /// Everything in an account that its agents may see.
    Account(AccountId),
    /// Everything in one contact's conversations (what a contact's subscription follows).
    Contact(ContactId),
    /// One agent's own notifications.
    Agent(AgentId),
    /// One transcript's segments as they arrive.
    Transcript(TranscriptId),
}

impl Event {
    /// An event in the conversation described by `scope`.
    pub fn in_conversation(scope: &ConversationScope, kind: EventKind) -> Event {
        Event {
            account_id: scope.account_id,
            inbox_id: Some(scope.inbox_id),
            contact_id: Some(scope.contact_id),
            kind,
        }
    }

    /// The canonical event name of `model.md`.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            EventKind::MessageCreated(_) => "message.created",
            EventKind::MessageUpdated(_) => "message.updated",
            EventKind::ConversationCreated(_) => "conversation.created",
            EventKind::ConversationStatusChanged(_) => "conversation.status_changed",
            EventKind::AssigneeChanged(_) => "assignee.changed",
            EventKind::TeamChanged(_) => "team.changed",
            EventKind::TypingOn { .. } => "conversation.typing_on",
            EventKind::TypingOff { .. } => "conversation.typing_off",
            EventKind::ConversationRead { .. } => "conversation.read",
            EventKind::AgentJoined { .. } => "agent.joined",
            EventKind::AgentLeft { .. } => "agent.left",
            EventKind::SessionEnded { .. } => "session.ended",
            EventKind::BotFailed { .. } => "agent.failed",
            EventKind::NotificationCreated(_) => "notification.created",
            EventKind::ContactCreated(_) => "contact.created",
            EventKind::ContactUpdated(_) => "contact.updated",
            EventKind::PresenceUpdate { .. } => "presence.update",
            EventKind::AccountStatusUpdated { .. } => "account.status_updated",
            EventKind::TranscriptUpdated(_) => "transcript.updated",
            EventKind::InboxMembershipChanged { .. } => "inbox.membership_changed",
        }
    }

    /// The conversation the event belongs to, if any.
    pub fn conversation_id(&self) -> Option<ConversationId> {
        match &self.kind {
            EventKind::MessageCreated(message) | EventKind::MessageUpdated(message) => {
                Some(message.conversation_id)
            }
            EventKind::ConversationCreated(conversation)
            | EventKind::ConversationStatusChanged(conversation)
            | EventKind::AssigneeChanged(conversation)
            | EventKind::TeamChanged(conversation) => Some(conversation.id),
            EventKind::TypingOn {
                conversation_id, ..
            }
            | EventKind::TypingOff {
                conversation_id, ..
            }
            | EventKind::ConversationRead {
                conversation_id, ..
            }
            | EventKind::AgentJoined {
                conversation_id, ..
            }
            | EventKind::AgentLeft {
                conversation_id, ..
            }
            | EventKind::SessionEnded {
                conversation_id, ..
            }
            | EventKind::BotFailed {
                conversation_id, ..
            } => Some(*conversation_id),
            EventKind::NotificationCreated(_)
            | EventKind::ContactCreated(_)
            | EventKind::ContactUpdated(_)
            | EventKind::PresenceUpdate { .. }
            | EventKind::AccountStatusUpdated { .. }
            | EventKind::TranscriptUpdated(_)
            | EventKind::InboxMembershipChanged { .. } => None,
        }
    }

    /// The topics this event is published on: a conversation's events go to the conversation
    /// and to the account (for agents watching all they may see); a notification to its agent.
    pub fn topics(&self) -> Vec<Topic> {
        match (&self.kind, self.conversation_id()) {
            (EventKind::NotificationCreated(notification), _) => {
                vec![Topic::Agent(notification.agent_id)]
            }
            (EventKind::TranscriptUpdated(segment), _) => {
                vec![Topic::Transcript(segment.transcript_id)]
            }
            (_, Some(conversation_id)) => {
                let mut topics = vec![
                    Topic::Conversation(conversation_id),
                    Topic::Account(self.account_id),
                ];
                topics.extend(self.contact_id.map(Topic::Contact));
                topics
            }
            (_, None) => vec![Topic::Account(self.account_id)],
        }
    }
}
