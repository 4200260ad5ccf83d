//! Authorisation and audiences: who may see a conversation, and which events reach whom.
//!
//! These rules are the only place such decisions are made; adapters and the engine's hub ask
//! here and never decide by themselves.

use crate::event::{Actor, Event, EventKind};
use crate::principal::Principal;
use crate::records::{AgentRole, Conversation};

/// Whether `principal` may read and act in `conversation`.
pub fn can_view_conversation(principal: &Principal, conversation: &Conversation) -> bool {
    if principal.account_id() != conversation.account_id {
        return false;
    }
    match principal {
        Principal::Integration { .. } => true,
        Principal::Publishable { .. } => false,
        // Inbox membership arrives with the agent side; until then an agent sees its account.
        Principal::Agent { role, .. } => {
            matches!(role, AgentRole::Administrator | AgentRole::Agent)
        }
        Principal::Contact { contact_id, .. } => *contact_id == conversation.contact_id,
        Principal::SessionVisitor {
            conversation_id, ..
        } => *conversation_id == conversation.id,
    }
}

/// Whether an event delivered on a topic the viewer subscribed to may actually reach it.
///
/// Subscriptions are authorised when made; this second check covers what differs per event:
/// private notes never reach a visitor, typing is never echoed to the typer, and nothing ever
/// crosses accounts.
pub fn may_receive(viewer: &Principal, event: &Event) -> bool {
    if viewer.account_id() != event.account_id {
        return false;
    }
    if let Principal::SessionVisitor {
        conversation_id, ..
    } = viewer
    {
        if *conversation_id != event.conversation_id() {
            return false;
        }
    }
    let viewer_actor = match viewer {
        Principal::Agent { agent_id, .. } => Some(Actor::Agent(*agent_id)),
        _ => viewer.contact_id().map(Actor::Contact),
    };
    match &event.kind {
        EventKind::MessageCreated(message) | EventKind::MessageUpdated(message) => {
            !(message.private && viewer.is_visitor())
        }
        EventKind::TypingOn { actor, private, .. } => {
            !(*private && viewer.is_visitor()) && viewer_actor.as_ref() != Some(actor)
        }
        EventKind::TypingOff { actor, .. } => viewer_actor.as_ref() != Some(actor),
        EventKind::ConversationRead { reader, .. } => viewer_actor.as_ref() != Some(reader),
        EventKind::SessionEnded { .. } | EventKind::BotFailed { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::records::*;

    fn conversation() -> Conversation {
        Conversation {
            id: ConversationId(7),
            account_id: AccountId(1),
            inbox_id: InboxId(1),
            contact_id: ContactId(3),
            assignee_id: None,
            status: ConversationStatus::Open,
            last_seq: 0,
            contact_last_read_seq: 0,
            agent_last_read_seq: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn message(private: bool) -> Message {
        Message {
            id: MessageId(1),
            account_id: AccountId(1),
            conversation_id: ConversationId(7),
            seq: 1,
            sender: Sender::Agent(AgentId(2)),
            message_type: MessageType::Outgoing,
            content_type: ContentType::Text,
            content: "hi".into(),
            attributes: MessageAttributes::default(),
            private,
            status: MessageStatus::Sent,
            client_message_id: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn visitor() -> Principal {
        Principal::SessionVisitor {
            account_id: AccountId(1),
            session_id: SessionId("s".into()),
            contact_id: ContactId(3),
            conversation_id: ConversationId(7),
            bot_id: BotId(1),
        }
    }

    #[test]
    fn visitors_see_only_their_conversation_and_never_other_accounts() {
        assert!(can_view_conversation(&visitor(), &conversation()));
        let other = Conversation {
            id: ConversationId(8),
            ..conversation()
        };
        assert!(!can_view_conversation(&visitor(), &other));
        let foreign = Conversation {
            account_id: AccountId(2),
            ..conversation()
        };
        assert!(!can_view_conversation(&visitor(), &foreign));
        let publishable = Principal::Publishable {
            account_id: AccountId(1),
        };
        assert!(!can_view_conversation(&publishable, &conversation()));
    }

    #[test]
    fn private_notes_never_reach_a_visitor() {
        let note = Event {
            account_id: AccountId(1),
            kind: EventKind::MessageCreated(message(true)),
        };
        assert!(!may_receive(&visitor(), &note));
        let agent = Principal::Agent {
            account_id: AccountId(1),
            agent_id: AgentId(9),
            role: AgentRole::Agent,
        };
        assert!(may_receive(&agent, &note));
        let public = Event {
            account_id: AccountId(1),
            kind: EventKind::MessageCreated(message(false)),
        };
        assert!(may_receive(&visitor(), &public));
    }

    #[test]
    fn typing_is_not_echoed_to_the_typer() {
        let typing = Event {
            account_id: AccountId(1),
            kind: EventKind::TypingOn {
                conversation_id: ConversationId(7),
                actor: Actor::Contact(ContactId(3)),
                private: false,
            },
        };
        assert!(!may_receive(&visitor(), &typing));
        let bot_typing = Event {
            account_id: AccountId(1),
            kind: EventKind::TypingOn {
                conversation_id: ConversationId(7),
                actor: Actor::Bot {
                    id: BotId(1),
                    name: "demo".into(),
                },
                private: false,
            },
        };
        assert!(may_receive(&visitor(), &bot_typing));
    }

    #[test]
    fn events_never_cross_accounts() {
        let foreign = Event {
            account_id: AccountId(2),
            kind: EventKind::MessageCreated(message(false)),
        };
        assert!(!may_receive(&visitor(), &foreign));
    }
}
