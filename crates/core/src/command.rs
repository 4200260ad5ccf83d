//! Commands: what a principal asks the engine to do, decoded from any dialect's frames.

use crate::ids::*;
use crate::limits::Bucket;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    SendMessage {
        conversation_id: ConversationId,
        content: String,
        client_message_id: Option<String>,
        private: bool,
    },
    SetTyping {
        conversation_id: ConversationId,
        is_typing: bool,
        /// An agent typing a private note: visitors never see it.
        private: bool,
    },
    /// Assigns the conversation to an agent, or unassigns it with `None`.
    Assign {
        conversation_id: ConversationId,
        assignee_id: Option<AgentId>,
    },
    SetStatus {
        conversation_id: ConversationId,
        status: crate::records::ConversationStatus,
    },
    SetTeam {
        conversation_id: ConversationId,
        team_id: Option<TeamId>,
    },
    MarkRead {
        conversation_id: ConversationId,
        seq: Seq,
    },
    RecordIframeEvent {
        conversation_id: ConversationId,
        event: String,
        selector: Option<String>,
        url: Option<String>,
    },
}

impl Command {
    /// The rate-limit buckets this command draws from, besides the all-events bucket.
    pub fn bucket(&self) -> Option<Bucket> {
        match self {
            Command::SendMessage { .. } => Some(Bucket::Messages),
            Command::SetTyping { .. } => Some(Bucket::Typing),
            Command::MarkRead { .. }
            | Command::RecordIframeEvent { .. }
            | Command::Assign { .. }
            | Command::SetStatus { .. }
            | Command::SetTeam { .. } => None,
        }
    }

    pub fn conversation_id(&self) -> ConversationId {
        match self {
            Command::SendMessage {
                conversation_id, ..
            }
            | Command::SetTyping {
                conversation_id, ..
            }
            | Command::MarkRead {
                conversation_id, ..
            }
            | Command::RecordIframeEvent {
                conversation_id, ..
            }
            | Command::Assign {
                conversation_id, ..
            }
            | Command::SetStatus {
                conversation_id, ..
            }
            | Command::SetTeam {
                conversation_id, ..
            } => *conversation_id,
        }
    }
}
