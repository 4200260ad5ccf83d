//! The snake_case object shapes of seed 004's product, shared by the ActionCable dialect and
//! the public inbox API: integer ids, unix seconds where the document says unix-timestamp,
//! ISO-8601 where it says datetime, `meta.sender`/`meta.assignee` in conversations, `sender`
//! in messages.

use crate::time_format::iso8601;
use serde_json::{json, Value};
use switchboard_core::{
    Agent, Contact, ContactInbox, Conversation, Message, MessageType, Notification, Sender,
    UnixMillis,
};
use switchboard_engine::ConversationView;

fn unix_seconds(ms: UnixMillis) -> i64 {
    ms.div_euclid(1000)
}

pub fn contact(contact: &Contact) -> Value {
    let details = &contact.details;
    json!({
        "additional_attributes": {},
        "custom_attributes": {},
        "email": details.email,
        "id": contact.id.0,
        "identifier": details.identifier,
        "name": details.name.clone().unwrap_or_default(),
        "phone_number": details.phone_number,
        "thumbnail": "",
    })
}

/// An agent ("user" in the document).
pub fn user(agent: &Agent) -> Value {
    json!({
        "id": agent.id.0,
        "name": agent.name,
        "available_name": agent.name,
        "avatar_url": "",
        "availability_status": agent.availability.as_str(),
        "thumbnail": "",
    })
}

fn with_type(mut object: Value, kind: &str) -> Value {
    object["type"] = json!(kind);
    object
}

pub fn contact_inbox(contact_inbox: &ContactInbox) -> Value {
    json!({
        "id": contact_inbox.id,
        "contact_id": contact_inbox.contact_id.0,
        "inbox_id": contact_inbox.inbox_id.0,
        "source_id": contact_inbox.source_id,
        "created_at": iso8601(contact_inbox.created_at),
        "updated_at": iso8601(contact_inbox.updated_at),
        "hmac_verified": false,
    })
}

pub fn conversation(view: &ConversationView) -> Value {
    let conversation = &view.conversation;
    // Read positions are kept as seqs; a side that has read anything was last seen at the
    // conversation's last change at the latest.
    let seen = |read_seq: i64| {
        if read_seq > 0 {
            unix_seconds(conversation.updated_at)
        } else {
            0
        }
    };
    json!({
        "additional_attributes": {},
        "can_reply": true,
        "channel": "Channel::WebWidget",
        "id": conversation.id.0,
        "inbox_id": conversation.inbox_id.0,
        "contact_inbox": view.contact_inbox.as_ref().map(contact_inbox),
        "messages": [],
        "meta": {
            "sender": view.contact.as_ref().map(|c| with_type(contact(c), "contact")),
            "assignee": view.assignee.as_ref().map(|a| with_type(user(a), "user")),
        },
        "status": conversation.status.as_str(),
        "unread_count": conversation.unread_by_agents,
        "agent_last_seen_at": seen(conversation.agent_last_read_seq),
        "contact_last_seen_at": seen(conversation.contact_last_read_seq),
        "timestamp": unix_seconds(conversation.updated_at),
        "created_at": unix_seconds(conversation.created_at),
        "account_id": conversation.account_id.0,
    })
}

/// A conversation shown without looking anything up (its contact and assignee by id only).
pub fn bare_conversation(conversation: &Conversation) -> Value {
    let mut value = self::conversation(&ConversationView {
        conversation: conversation.clone(),
        contact: None,
        assignee: None,
        contact_inbox: None,
    });
    value["meta"]["sender"] = json!({"id": conversation.contact_id.0, "type": "contact"});
    if let Some(id) = conversation.assignee_id {
        value["meta"]["assignee"] = json!({"id": id.0, "type": "user"});
    }
    value
}

/// Who wrote a message, as `sender_type`/`sender_id` and the `sender` object: the contact or
/// agent when known (`contact`, `agent`), otherwise its id and type alone.
pub fn message(
    message: &Message,
    inbox_id: i64,
    contact: Option<&Contact>,
    agent: Option<&Agent>,
) -> Value {
    let (sender_type, sender_id, sender) = match &message.sender {
        Sender::Contact(id) => (
            "Contact",
            Some(id.0),
            match contact.filter(|c| c.id == *id) {
                Some(contact) => with_type(self::contact(contact), "contact"),
                None => json!({"id": id.0, "type": "contact"}),
            },
        ),
        Sender::Agent(id) => (
            "User",
            Some(id.0),
            match agent.filter(|a| a.id == *id) {
                Some(agent) => with_type(user(agent), "user"),
                None => json!({"id": id.0, "type": "user"}),
            },
        ),
        Sender::Bot { id, name } => (
            "AgentBot",
            Some(id.0),
            json!({"id": id.0, "name": name, "type": "agent_bot"}),
        ),
        Sender::Integration(_) | Sender::System => ("System", None, Value::Null),
    };
    json!({
        "id": message.id.0,
        "content": message.content,
        "account_id": message.account_id.0,
        "inbox_id": inbox_id,
        "conversation_id": message.conversation_id.0,
        "message_type": message_type(message.message_type),
        "created_at": unix_seconds(message.created_at),
        "updated_at": iso8601(message.updated_at),
        "private": message.private,
        "status": message.status.as_str(),
        "source_id": Value::Null,
        "content_type": message.content_type.as_str(),
        "content_attributes": {},
        "sender_type": sender_type,
        "sender_id": sender_id,
        "external_source_ids": {},
        "attachments": message.attributes.attachment.iter().map(|attachment| json!({
            "file_type": attachment.content_type,
            "file_name": attachment.file_name,
            "file_size": attachment.size,
            "data_url": crate::json::attachment_url(message.conversation_id, attachment),
        })).collect::<Vec<_>>(),
        "sender": sender,
        "echo_id": message.client_message_id,
    })
}

fn message_type(kind: MessageType) -> i64 {
    kind as i64
}

pub fn notification(notification: &Notification, conversation: Option<&Value>) -> Value {
    json!({
        "id": notification.id.0,
        "notification_type": notification.kind.as_str(),
        "primary_actor_type": "Conversation",
        "primary_actor_id": notification.conversation_id.0,
        "primary_actor": conversation.cloned().unwrap_or_else(|| json!({"id": notification.conversation_id.0})),
        "read_at": notification.read_at.map(unix_seconds),
        "secondary_actor": Value::Null,
        "user": {"id": notification.agent_id.0},
        "account_id": notification.account_id.0,
        "push_message_title": format!("A conversation (#{}) has been assigned to you", notification.conversation_id.0),
        "created_at": unix_seconds(notification.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::*;

    fn sample_conversation() -> Conversation {
        Conversation {
            id: ConversationId(5),
            account_id: AccountId(1),
            inbox_id: InboxId(2),
            contact_id: ContactId(3),
            assignee_id: Some(AgentId(4)),
            team_id: None,
            status: ConversationStatus::Open,
            last_seq: 2,
            contact_last_read_seq: 1,
            agent_last_read_seq: 0,
            unread_by_agents: 1,
            unread_by_contact: 0,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_060_500,
        }
    }

    fn sample_contact() -> Contact {
        Contact {
            id: ContactId(3),
            account_id: AccountId(1),
            details: ContactDetails {
                name: Some("Lin".into()),
                email: Some("lin@example.com".into()),
                phone_number: None,
                identifier: None,
            },
            created_at: 1_700_000_000_000,
        }
    }

    fn sample_agent() -> Agent {
        Agent {
            id: AgentId(4),
            account_id: AccountId(1),
            name: "Grace".into(),
            email: "grace@example.com".into(),
            role: AgentRole::Agent,
            availability: Availability::Online,
            created_at: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_conversation_has_the_documented_fields_and_types() {
        let view = ConversationView {
            conversation: sample_conversation(),
            contact: Some(sample_contact()),
            assignee: Some(sample_agent()),
            contact_inbox: Some(ContactInbox {
                id: 9,
                contact_id: ContactId(3),
                inbox_id: InboxId(2),
                source_id: "src-1".into(),
                pubsub_token: "secret".into(),
                created_at: 1_700_000_000_000,
                updated_at: 1_700_000_000_000,
            }),
        };
        assert_eq!(
            conversation(&view),
            json!({
                "additional_attributes": {},
                "can_reply": true,
                "channel": "Channel::WebWidget",
                "id": 5,
                "inbox_id": 2,
                "contact_inbox": {
                    "id": 9, "contact_id": 3, "inbox_id": 2, "source_id": "src-1",
                    "created_at": "2023-11-14T22:13:20.000Z",
                    "updated_at": "2023-11-14T22:13:20.000Z",
                    "hmac_verified": false
                },
                "messages": [],
                "meta": {
                    "sender": {
                        "additional_attributes": {}, "custom_attributes": {},
                        "email": "lin@example.com", "id": 3, "identifier": null, "name": "Lin",
                        "phone_number": null, "thumbnail": "", "type": "contact"
                    },
                    "assignee": {
                        "id": 4, "name": "Grace", "available_name": "Grace", "avatar_url": "",
                        "availability_status": "online", "thumbnail": "", "type": "user"
                    }
                },
                "status": "open",
                "unread_count": 1,
                "agent_last_seen_at": 0,
                "contact_last_seen_at": 1_700_000_060,
                "timestamp": 1_700_000_060,
                "created_at": 1_700_000_000,
                "account_id": 1
            })
        );
        // The pubsub token is the widget's secret: never in a conversation.
        assert!(!conversation(&view).to_string().contains("secret"));
    }

    #[test]
    fn a_notification_has_the_documented_fields() {
        let notification = Notification {
            id: NotificationId(8),
            account_id: AccountId(1),
            agent_id: AgentId(4),
            kind: NotificationKind::ConversationAssignment,
            conversation_id: ConversationId(5),
            read_at: None,
            created_at: 1_700_000_000_000,
        };
        let value = super::notification(&notification, None);
        assert_eq!(
            value,
            json!({
                "id": 8,
                "notification_type": "conversation_assignment",
                "primary_actor_type": "Conversation",
                "primary_actor_id": 5,
                "primary_actor": {"id": 5},
                "read_at": null,
                "secondary_actor": null,
                "user": {"id": 4},
                "account_id": 1,
                "push_message_title": "A conversation (#5) has been assigned to you",
                "created_at": 1_700_000_000
            })
        );
    }

    #[test]
    fn a_message_has_an_integer_type_unix_created_at_and_its_sender() {
        let message = Message {
            id: MessageId(11),
            account_id: AccountId(1),
            conversation_id: ConversationId(5),
            seq: 2,
            sender: Sender::Contact(ContactId(3)),
            message_type: MessageType::Incoming,
            content_type: ContentType::Text,
            content: "hello".into(),
            attributes: MessageAttributes::default(),
            private: false,
            status: MessageStatus::Sent,
            client_message_id: Some("echo-1".into()),
            created_at: 1_700_000_001_999,
            updated_at: 1_700_000_001_999,
        };
        let value = super::message(&message, 2, Some(&sample_contact()), None);
        assert_eq!(value["message_type"], 0);
        assert_eq!(value["created_at"], 1_700_000_001);
        assert_eq!(value["updated_at"], "2023-11-14T22:13:21.999Z");
        assert_eq!(value["sender_type"], "Contact");
        assert_eq!(value["sender_id"], 3);
        assert_eq!(value["sender"]["type"], "contact");
        assert_eq!(value["sender"]["name"], "Lin");
        assert_eq!(value["echo_id"], "echo-1");
        assert_eq!(value["inbox_id"], 2);
        assert_eq!(value["account_id"], 1);
        let bare = bare_conversation(&sample_conversation());
        assert_eq!(bare["meta"]["sender"], json!({"id": 3, "type": "contact"}));
        assert_eq!(bare["meta"]["assignee"], json!({"id": 4, "type": "user"}));
    }
}
