//! Principals: who is acting. Every command and every subscription is checked against one.

use crate::ids::*;
use crate::records::{AgentRole, Sender};

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Principal {
    /// A back end holding the account's API key.
    Integration { account_id: AccountId },
    /// A web page holding the account's publishable key: it may only start sessions.
    Publishable { account_id: AccountId },
    /// A human agent.
    Agent {
        account_id: AccountId,
        agent_id: AgentId,
        role: AgentRole,
    },
    /// A visitor known by its contact pubsub token.
    Contact {
        account_id: AccountId,
        contact_id: ContactId,
    },
    /// A visitor holding a demo session token: confined to that session's conversation.
    SessionVisitor {
        account_id: AccountId,
        session_id: SessionId,
        contact_id: ContactId,
        conversation_id: ConversationId,
        /// The bot the session talks with.
        bot_id: BotId,
    },
}

impl Principal {
    pub fn account_id(&self) -> AccountId {
        match self {
            Principal::Integration { account_id }
            | Principal::Publishable { account_id }
            | Principal::Agent { account_id, .. }
            | Principal::Contact { account_id, .. }
            | Principal::SessionVisitor { account_id, .. } => *account_id,
        }
    }

    /// Whether this principal is a visitor (contact or demo-session visitor).
    pub fn is_visitor(&self) -> bool {
        matches!(
            self,
            Principal::Contact { .. } | Principal::SessionVisitor { .. }
        )
    }

    /// The contact this principal is, if it is a visitor.
    pub fn contact_id(&self) -> Option<ContactId> {
        match self {
            Principal::Contact { contact_id, .. }
            | Principal::SessionVisitor { contact_id, .. } => Some(*contact_id),
            _ => None,
        }
    }

    /// The sender a message written by this principal carries, if it may write messages.
    pub fn sender(&self) -> Option<Sender> {
        match self {
            Principal::Integration { account_id } => Some(Sender::Integration(*account_id)),
            Principal::Publishable { .. } => None,
            Principal::Agent { agent_id, .. } => Some(Sender::Agent(*agent_id)),
            Principal::Contact { contact_id, .. }
            | Principal::SessionVisitor { contact_id, .. } => Some(Sender::Contact(*contact_id)),
        }
    }
}
