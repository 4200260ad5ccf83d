//! What the Socket.IO dialect says (`spec/socketio.md`): core events rendered as Socket.IO
//! events, and the payloads clients send, read leniently (ids as numbers or strings).

use crate::json;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use switchboard_core::{
    Actor, Availability, Command, ContactId, ConversationId, Event, EventKind, Seq,
};

/// An event ready to emit: its name and its payload, serialised once for every recipient.
pub type Rendered = Option<(&'static str, Box<RawValue>)>;

fn raw(value: Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a JSON value is valid JSON")
}

/// Who acted, as the `userId` clients see: `agent:<id>`, `contact:<id>`, or a bot's name.
pub fn user_id(actor: &Actor) -> String {
    match actor {
        Actor::Agent(id) => format!("agent:{id}"),
        Actor::Contact(id) => format!("contact:{id}"),
        Actor::Bot { name, .. } => name.clone(),
    }
}

/// The kinds of event a Socket.IO connection is sent on a conversation it joined. Presence
/// reaches staff through their account instead (see the adapter).
pub fn shows(kind: &EventKind) -> bool {
    match kind {
        EventKind::MessageCreated(_)
        | EventKind::MessageUpdated(_)
        | EventKind::TypingOn { .. }
        | EventKind::TypingOff { .. }
        | EventKind::ConversationRead { .. }
        | EventKind::AgentJoined { .. }
        | EventKind::AgentLeft { .. }
        | EventKind::BotFailed { .. } => true,
        EventKind::AssigneeChanged(_)
        | EventKind::ConversationCreated(_)
        | EventKind::ConversationStatusChanged(_)
        | EventKind::TeamChanged(_)
        | EventKind::SessionEnded { .. }
        | EventKind::NotificationCreated(_)
        | EventKind::ContactCreated(_)
        | EventKind::ContactUpdated(_)
        | EventKind::PresenceUpdate { .. }
        | EventKind::AccountStatusUpdated { .. }
        | EventKind::TranscriptUpdated(_)
        | EventKind::InboxMembershipChanged { .. } => false,
    }
}

/// Renders a conversation event; kinds this dialect does not show render to nothing.
pub fn render(event: &Event) -> Rendered {
    let (name, payload) = match &event.kind {
        EventKind::MessageCreated(message) | EventKind::MessageUpdated(message) => {
            ("message", json::message(message))
        }
        EventKind::TypingOn {
            conversation_id,
            actor,
            ..
        } => ("typing", typing(*conversation_id, actor, true)),
        EventKind::TypingOff {
            conversation_id,
            actor,
        } => ("typing", typing(*conversation_id, actor, false)),
        EventKind::ConversationRead {
            conversation_id,
            reader,
            seq,
        } => (
            "read",
            json!({"conversationId": conversation_id.0, "userId": user_id(reader), "seq": seq}),
        ),
        EventKind::AgentJoined {
            conversation_id,
            agent_name,
            ..
        } => ("agent-joined", agent_change(*conversation_id, agent_name)),
        EventKind::AgentLeft {
            conversation_id,
            agent_name,
            ..
        } => ("agent-left", agent_change(*conversation_id, agent_name)),
        EventKind::BotFailed {
            conversation_id, ..
        } => (
            "error",
            json!({
                "code": "AGENT_UNAVAILABLE",
                "message": "the agent could not answer; please try again",
                "conversationId": conversation_id.0,
            }),
        ),
        _ => return None,
    };
    Some((name, raw(payload)))
}

fn typing(conversation_id: ConversationId, actor: &Actor, is_typing: bool) -> Value {
    json!({"conversationId": conversation_id.0, "isTyping": is_typing, "userId": user_id(actor)})
}

fn agent_change(conversation_id: ConversationId, agent_name: &str) -> Value {
    json!({"conversationId": conversation_id.0, "agentName": agent_name})
}

/// The payload of `presence`: a conversation's contact's connection status.
pub fn presence(
    conversation_id: ConversationId,
    contact_id: ContactId,
    status: Availability,
) -> Value {
    json!({
        "conversationId": conversation_id.0,
        "userId": format!("contact:{contact_id}"),
        "status": status.as_str(),
    })
}

/// The client events the server handles; any other is answered `UNKNOWN_TYPE`.
pub const CLIENT_EVENTS: [&str; 5] = [
    "join-conversation",
    "typing-start",
    "typing-stop",
    "send-message",
    "mark-read",
];

/// What a client event asks for.
#[derive(Debug, PartialEq)]
pub enum ClientEvent {
    Join {
        conversation_id: ConversationId,
        last_seq: Option<Seq>,
    },
    Command(Command),
}

/// Reads client event `name` with `payload` (`Value::Null` when it had none or it was not
/// JSON), or says what is wrong with it.
pub fn client_event(name: &str, payload: &Value) -> Result<ClientEvent, &'static str> {
    let conversation_id = conversation_id(payload)?;
    let command = match name {
        "join-conversation" => {
            return Ok(ClientEvent::Join {
                conversation_id,
                last_seq: seq_field(payload, "lastSeq"),
            })
        }
        "typing-start" | "typing-stop" => Command::SetTyping {
            conversation_id,
            is_typing: name == "typing-start",
            private: false,
        },
        "send-message" => {
            let (content, client_message_id) = message_fields(payload)?;
            Command::SendMessage {
                conversation_id,
                content,
                client_message_id,
                private: false,
            }
        }
        "mark-read" => Command::MarkRead {
            conversation_id,
            seq: seq_field(payload, "seq").ok_or("seq is missing or not a sequence number")?,
        },
        _ => return Err("unknown event"),
    };
    Ok(ClientEvent::Command(command))
}

/// The payload of `rate-limit-exceeded`.
pub fn rate_limited(retry_after_ms: u64) -> Value {
    json!({"type": "rate-limit-exceeded", "retryAfter": retry_after_ms})
}

/// The payload of `error` (and of a refused acknowledgement, under `error`).
pub fn error(code: &str, message: &str, conversation_id: Option<ConversationId>) -> Value {
    match conversation_id {
        Some(id) => json!({"code": code, "message": message, "conversationId": id.0}),
        None => json!({"code": code, "message": message}),
    }
}

/// A payload field read as a conversation id: a number, or a string of digits.
pub fn conversation_id(payload: &Value) -> Result<ConversationId, &'static str> {
    id_field(payload, "conversationId")
        .map(ConversationId)
        .ok_or("conversationId is missing or not a conversation id")
}

/// An optional sequence number field (`lastSeq`, `seq`): a number or a string of digits.
pub fn seq_field(payload: &Value, field: &str) -> Option<Seq> {
    id_field(payload, field)
}

fn id_field(payload: &Value, field: &str) -> Option<i64> {
    match payload.get(field)? {
        Value::Number(number) => number.as_i64().filter(|id| *id >= 0),
        Value::String(text) => text.trim().parse().ok().filter(|id: &i64| *id >= 0),
        _ => None,
    }
}

/// A `send-message` payload: its text and optional client message id.
pub fn message_fields(payload: &Value) -> Result<(String, Option<String>), &'static str> {
    let content = payload
        .get("content")
        .and_then(Value::as_str)
        .ok_or("content is missing or not a string")?;
    let client_message_id = match payload.get("clientMessageId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err("clientMessageId must be a string"),
    };
    Ok((content.to_string(), client_message_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::{AccountId, AgentId, InboxId};

    fn event(kind: EventKind) -> Event {
        Event {
            account_id: AccountId(1),
            inbox_id: Some(InboxId(1)),
            contact_id: None,
            kind,
        }
    }

    fn rendered(kind: EventKind) -> (&'static str, String) {
        let (name, payload) = render(&event(kind)).expect("rendered");
        (name, payload.get().to_string())
    }

    #[test]
    fn typing_is_rendered_with_who_is_typing() {
        let (name, payload) = rendered(EventKind::TypingOn {
            conversation_id: ConversationId(7),
            actor: Actor::Contact(ContactId(3)),
            private: false,
        });
        assert_eq!(name, "typing");
        assert_eq!(
            payload,
            r#"{"conversationId":7,"isTyping":true,"userId":"contact:3"}"#
        );
        let (_, payload) = rendered(EventKind::TypingOff {
            conversation_id: ConversationId(7),
            actor: Actor::Agent(AgentId(2)),
        });
        assert_eq!(
            payload,
            r#"{"conversationId":7,"isTyping":false,"userId":"agent:2"}"#
        );
    }

    #[test]
    fn agent_joined_and_read_receipts_have_the_documented_shapes() {
        let (name, payload) = rendered(EventKind::AgentJoined {
            conversation_id: ConversationId(7),
            agent_id: AgentId(2),
            agent_name: "Grace".into(),
        });
        assert_eq!(name, "agent-joined");
        assert_eq!(payload, r#"{"agentName":"Grace","conversationId":7}"#);
        let (name, payload) = rendered(EventKind::AgentLeft {
            conversation_id: ConversationId(7),
            agent_id: AgentId(2),
            agent_name: "Grace".into(),
        });
        assert_eq!(name, "agent-left");
        assert_eq!(payload, r#"{"agentName":"Grace","conversationId":7}"#);
        let (name, payload) = rendered(EventKind::ConversationRead {
            conversation_id: ConversationId(7),
            reader: Actor::Contact(ContactId(3)),
            seq: 12,
        });
        assert_eq!(name, "read");
        assert_eq!(
            payload,
            r#"{"conversationId":7,"seq":12,"userId":"contact:3"}"#
        );
    }

    #[test]
    fn rate_limits_and_presence_have_the_documented_shapes() {
        assert_eq!(
            rate_limited(5000).to_string(),
            r#"{"retryAfter":5000,"type":"rate-limit-exceeded"}"#
        );
        assert_eq!(
            presence(ConversationId(7), ContactId(3), Availability::Online).to_string(),
            r#"{"conversationId":7,"status":"online","userId":"contact:3"}"#
        );
    }

    #[test]
    fn agent_side_events_are_not_shown() {
        assert!(!shows(&EventKind::AccountStatusUpdated { online: true }));
        assert!(render(&event(EventKind::AccountStatusUpdated { online: true })).is_none());
    }

    #[test]
    fn ids_are_read_as_numbers_or_digit_strings_and_nothing_else() {
        assert_eq!(
            conversation_id(&json!({"conversationId": 5})),
            Ok(ConversationId(5))
        );
        assert_eq!(
            conversation_id(&json!({"conversationId": "5"})),
            Ok(ConversationId(5))
        );
        for bad in [
            json!({}),
            json!({"conversationId": "conv_x"}),
            json!({"conversationId": -1}),
            json!({"conversationId": 1.5}),
            json!({"conversationId": null}),
            json!("5"),
        ] {
            assert!(conversation_id(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_payloads_need_text_content() {
        assert_eq!(
            message_fields(&json!({"content": "hi", "clientMessageId": "c1"})),
            Ok(("hi".to_string(), Some("c1".to_string())))
        );
        assert!(message_fields(&json!({"content": 5})).is_err());
        assert!(message_fields(&json!({"content": "hi", "clientMessageId": 5})).is_err());
    }
}
