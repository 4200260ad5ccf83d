//! Canonical events (`spec/model.md`) and the topics they are published on. Each dialect renders
//! events in its own spelling; the names here are the canonical ones.

use crate::ids::*;
use crate::records::Message;
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
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    MessageCreated(Message),
    MessageUpdated(Message),
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
}

/// Where an event is published; connections subscribe to topics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Conversation(ConversationId),
    Account(AccountId),
}

impl Event {
    /// The canonical event name of `model.md`.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            EventKind::MessageCreated(_) => "message.created",
            EventKind::MessageUpdated(_) => "message.updated",
            EventKind::TypingOn { .. } => "conversation.typing_on",
            EventKind::TypingOff { .. } => "conversation.typing_off",
            EventKind::ConversationRead { .. } => "conversation.read",
            EventKind::SessionEnded { .. } => "session.ended",
            EventKind::BotFailed { .. } => "agent.failed",
        }
    }

    /// The conversation the event belongs to.
    pub fn conversation_id(&self) -> ConversationId {
        match &self.kind {
            EventKind::MessageCreated(message) | EventKind::MessageUpdated(message) => {
                message.conversation_id
            }
            EventKind::TypingOn {
                conversation_id, ..
            }
            | EventKind::TypingOff {
                conversation_id, ..
            }
            | EventKind::ConversationRead {
                conversation_id, ..
            }
            | EventKind::SessionEnded {
                conversation_id, ..
            }
            | EventKind::BotFailed {
                conversation_id, ..
            } => *conversation_id,
        }
    }

    /// The topics this event is published on: its conversation's, and the account's for the
    /// agents who watch every conversation they may see.
    pub fn topics(&self) -> [Topic; 2] {
        [
            Topic::Conversation(self.conversation_id()),
            Topic::Account(self.account_id),
        ]
    }

    /// The seq of the message this event carries, if it carries one.
    pub fn message_seq(&self) -> Option<Seq> {
        match &self.kind {
            EventKind::MessageCreated(message) => Some(message.seq),
            _ => None,
        }
    }
}
