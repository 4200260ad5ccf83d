//! Authorisation and audiences: who may see a conversation, and which events reach whom.
//!
//! These rules are the only place such decisions are made; adapters and the engine's hub ask
//! here and never decide by themselves.

use crate::event::{Actor, Event, EventKind};
use crate::ids::{AgentId, InboxId};
use crate::principal::Principal;
use crate::records::{AgentRole, ConversationScope};

/// Which inboxes agents belong to. The engine answers from memory; the core only asks.
pub trait InboxAccess {
    fn is_member(&self, agent_id: AgentId, inbox_id: InboxId) -> bool;
}

/// No agent belongs to any inbox (administrators still see everything).
pub struct NoMemberships;

impl InboxAccess for NoMemberships {
    fn is_member(&self, _: AgentId, _: InboxId) -> bool {
        false
    }
}

/// Whether `principal` may see conversations of `inbox_id` in its account at all.
fn sees_inbox(principal: &Principal, inbox_id: InboxId, access: &dyn InboxAccess) -> bool {
    match principal {
        Principal::Integration { .. } => true,
        Principal::Agent { role, agent_id, .. } => {
            *role == AgentRole::Administrator || access.is_member(*agent_id, inbox_id)
        }
        _ => false,
    }
}

/// Whether `principal` may read and act in the conversation.
pub fn can_view_conversation(
    principal: &Principal,
    conversation: &ConversationScope,
    access: &dyn InboxAccess,
) -> bool {
    if principal.account_id() != conversation.account_id {
        return false;
    }
    match principal {
        Principal::Integration { .. } | Principal::Agent { .. } => {
            sees_inbox(principal, conversation.inbox_id, access)
        }
        Principal::Publishable { .. } => false,
        Principal::Contact { contact_id, .. } => *contact_id == conversation.contact_id,
        Principal::SessionVisitor {
            conversation_id, ..
        } => *conversation_id == conversation.conversation_id,
    }
}

/// Whether an event delivered on a topic the viewer subscribed to may actually reach it.
///
/// Subscriptions are authorised when made; this second check covers what differs per event:
/// agents see only their inboxes, private notes never reach a visitor, typing is never echoed
/// to the typer, and nothing ever crosses accounts.
/// Whether `viewer` may see `contact`'s connection status: staff see every contact's, a
/// contact only its own (never another visitor's).
pub fn may_see_contact_presence(viewer: &Principal, contact: crate::ids::ContactId) -> bool {
    match viewer.contact_id() {
        Some(own) => own == contact,
        None => !viewer.is_visitor(),
    }
}

pub fn may_receive(viewer: &Principal, event: &Event, access: &dyn InboxAccess) -> bool {
    if viewer.account_id() != event.account_id {
        return false;
    }
    let foreign_conversation = match viewer {
        Principal::SessionVisitor {
            conversation_id, ..
        } => Some(*conversation_id) != event.conversation_id(),
        // A contact sees its own conversations' events, and no other conversation's. Every
        // published conversation event names its contact (`Event::in_conversation`); a
        // replayed one names none, as it goes to one connection already authorised.
        Principal::Contact { contact_id, .. } => event
            .contact_id
            .is_some_and(|contact| contact != *contact_id),
        _ => false,
    };
    if foreign_conversation {
        return false;
    }
    if let (Some(inbox_id), Principal::Agent { .. }) = (event.inbox_id, viewer) {
        if !sees_inbox(viewer, inbox_id, access) {
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
        // The reader's other tabs follow its read position too.
        EventKind::ConversationRead { .. } => true,
        EventKind::NotificationCreated(notification) => {
            matches!(viewer, Principal::Agent { agent_id, .. } if *agent_id == notification.agent_id)
        }
        // Assignment, routing and who is online are the agents' business.
        EventKind::AssigneeChanged(_)
        | EventKind::TeamChanged(_)
        | EventKind::ContactCreated(_)
        | EventKind::ContactUpdated(_)
        | EventKind::TranscriptUpdated(_)
        | EventKind::InboxMembershipChanged { .. } => !viewer.is_visitor(),
        // Contacts see who of the staff is online; a dialect shows them no other contact.
        EventKind::PresenceUpdate { .. } => true,
        EventKind::ConversationCreated(_)
        | EventKind::ConversationStatusChanged(_)
        | EventKind::AgentJoined { .. }
        | EventKind::AgentLeft { .. }
        | EventKind::SessionEnded { .. }
        | EventKind::BotFailed { .. }
        | EventKind::AccountStatusUpdated { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::records::*;

    struct Members(Vec<(i64, i64)>);

    impl InboxAccess for Members {
        fn is_member(&self, agent_id: AgentId, inbox_id: InboxId) -> bool {
            self.0.contains(&(agent_id.0, inbox_id.0))
        }
    }

    fn scope() -> ConversationScope {
        ConversationScope {
            conversation_id: ConversationId(7),
            account_id: AccountId(1),
            inbox_id: InboxId(1),
            contact_id: ContactId(3),
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

    fn agent(id: i64, role: AgentRole) -> Principal {
        Principal::Agent {
            account_id: AccountId(1),
            agent_id: AgentId(id),
            role,
        }
    }

    fn event(kind: EventKind) -> Event {
        Event::in_conversation(&scope(), kind)
    }

    #[test]
    fn visitors_see_only_their_conversation_and_never_other_accounts() {
        let none = NoMemberships;
        assert!(can_view_conversation(&visitor(), &scope(), &none));
        let other = ConversationScope {
            conversation_id: ConversationId(8),
            contact_id: ContactId(4),
            ..scope()
        };
        assert!(!can_view_conversation(&visitor(), &other, &none));
        let foreign = ConversationScope {
            account_id: AccountId(2),
            ..scope()
        };
        assert!(!can_view_conversation(&visitor(), &foreign, &none));
        let publishable = Principal::Publishable {
            account_id: AccountId(1),
        };
        assert!(!can_view_conversation(&publishable, &scope(), &none));
    }

    #[test]
    fn agents_see_their_inboxes_and_administrators_all() {
        let members = Members(vec![(5, 1)]);
        assert!(can_view_conversation(
            &agent(5, AgentRole::Agent),
            &scope(),
            &members
        ));
        assert!(!can_view_conversation(
            &agent(6, AgentRole::Agent),
            &scope(),
            &members
        ));
        assert!(can_view_conversation(
            &agent(6, AgentRole::Administrator),
            &scope(),
            &members
        ));
        let public = event(EventKind::MessageCreated(message(false)));
        assert!(may_receive(&agent(5, AgentRole::Agent), &public, &members));
        assert!(!may_receive(&agent(6, AgentRole::Agent), &public, &members));
        assert!(may_receive(
            &agent(6, AgentRole::Administrator),
            &public,
            &members
        ));
    }

    #[test]
    fn private_notes_never_reach_a_visitor() {
        let note = event(EventKind::MessageCreated(message(true)));
        assert!(!may_receive(&visitor(), &note, &NoMemberships));
        assert!(may_receive(
            &agent(9, AgentRole::Administrator),
            &note,
            &NoMemberships
        ));
        let public = event(EventKind::MessageCreated(message(false)));
        assert!(may_receive(&visitor(), &public, &NoMemberships));
    }

    #[test]
    fn typing_is_not_echoed_to_the_typer() {
        let typing = event(EventKind::TypingOn {
            conversation_id: ConversationId(7),
            actor: Actor::Contact(ContactId(3)),
            private: false,
        });
        assert!(!may_receive(&visitor(), &typing, &NoMemberships));
        let bot_typing = event(EventKind::TypingOn {
            conversation_id: ConversationId(7),
            actor: Actor::Bot {
                id: BotId(1),
                name: "demo".into(),
            },
            private: false,
        });
        assert!(may_receive(&visitor(), &bot_typing, &NoMemberships));
        let private_typing = event(EventKind::TypingOn {
            conversation_id: ConversationId(7),
            actor: Actor::Agent(AgentId(2)),
            private: true,
        });
        assert!(!may_receive(&visitor(), &private_typing, &NoMemberships));
    }

    #[test]
    fn contacts_see_only_their_own_conversations() {
        let own = event(EventKind::MessageCreated(message(false)));
        let contact = |id| Principal::Contact {
            account_id: AccountId(1),
            contact_id: ContactId(id),
        };
        let mine = own
            .contact_id
            .expect("a conversation event names its contact");
        assert!(may_receive(&contact(mine.0), &own, &NoMemberships));
        assert!(!may_receive(&contact(mine.0 + 1), &own, &NoMemberships));
        assert_eq!(
            own.topics().last(),
            Some(&crate::Topic::Contact(mine)),
            "published on the contact's topic too"
        );
    }

    #[test]
    fn contacts_see_only_their_own_presence() {
        let contact = Principal::Contact {
            account_id: AccountId(1),
            contact_id: ContactId(3),
        };
        assert!(may_see_contact_presence(&contact, ContactId(3)));
        assert!(!may_see_contact_presence(&contact, ContactId(4)));
        assert!(may_see_contact_presence(
            &agent(1, AgentRole::Agent),
            ContactId(4)
        ));
    }

    #[test]
    fn events_never_cross_accounts() {
        let foreign = Event {
            account_id: AccountId(2),
            inbox_id: Some(InboxId(1)),
            contact_id: None,
            kind: EventKind::MessageCreated(message(false)),
        };
        assert!(!may_receive(&visitor(), &foreign, &NoMemberships));
        assert!(!may_receive(
            &agent(1, AgentRole::Administrator),
            &foreign,
            &NoMemberships
        ));
    }
}
