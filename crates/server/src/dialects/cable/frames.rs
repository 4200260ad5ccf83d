//! ActionCable frames (`spec/cable.md`): reading client commands and `RoomChannel`
//! identifiers, and writing the server's frames. Events are rendered once per event into
//! their `data` (the identifier differs per subscription and is added per frame).

use crate::snake;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use switchboard_core::{AccountId, Actor, Agent, AgentId, Contact, Event, EventKind};
use switchboard_engine::ConversationView;

/// A client command.
#[derive(Debug, PartialEq)]
pub struct ClientCommand {
    pub command: String,
    /// The identifier exactly as sent: a JSON document inside a string.
    pub identifier: String,
    pub data: Option<String>,
}

/// Reads a client frame; `None` for anything that is not a command object.
pub fn decode_command(text: &str) -> Option<ClientCommand> {
    let value: Value = serde_json::from_str(text).ok()?;
    Some(ClientCommand {
        command: value.get("command")?.as_str()?.to_string(),
        identifier: value.get("identifier")?.as_str()?.to_string(),
        data: value
            .get("data")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// A `RoomChannel` identifier: a pubsub token, and an agent's account and user ids.
#[derive(Debug, PartialEq)]
pub struct RoomIdentifier {
    pub pubsub_token: String,
    pub account_id: Option<AccountId>,
    pub user_id: Option<AgentId>,
}

/// Why a subscription's identifier cannot be used.
pub fn room_identifier(identifier: &str) -> Result<RoomIdentifier, &'static str> {
    let value: Value = serde_json::from_str(identifier).map_err(|_| "identifier is not JSON")?;
    if value.get("channel").and_then(Value::as_str) != Some("RoomChannel") {
        return Err("only RoomChannel is served");
    }
    let pubsub_token = value
        .get("pubsub_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or("pubsub_token is missing")?
        .to_string();
    Ok(RoomIdentifier {
        pubsub_token,
        account_id: integer(value.get("account_id"))?.map(AccountId),
        user_id: integer(value.get("user_id"))?.map(AgentId),
    })
}

/// An optional id given as a number or a string of digits (the document shows both).
fn integer(value: Option<&Value>) -> Result<Option<i64>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number.as_i64().map(Some).ok_or("ids are integers"),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| "ids are integers"),
        Some(_) => Err("ids are integers"),
    }
}

/// A `message` command's action and its fields.
pub fn action(data: Option<&str>) -> Option<(String, Value)> {
    let value: Value = serde_json::from_str(data?).ok()?;
    let action = value.get("action")?.as_str()?.to_string();
    Some((action, value))
}

pub fn welcome() -> String {
    r#"{"type":"welcome"}"#.to_string()
}

pub fn ping(unix_seconds: i64) -> String {
    format!(r#"{{"type":"ping","message":{unix_seconds}}}"#)
}

pub fn confirm(identifier: &str) -> String {
    json!({"identifier": identifier, "type": "confirm_subscription"}).to_string()
}

pub fn reject(identifier: &str) -> String {
    json!({"identifier": identifier, "type": "reject_subscription"}).to_string()
}

pub fn disconnect(reason: &str, reconnect: bool) -> String {
    json!({"type": "disconnect", "reason": reason, "reconnect": reconnect}).to_string()
}

/// An event for one subscription: the identifier echoed, the event's name and its data.
pub fn event(identifier: &str, name: &str, data: &RawValue) -> String {
    let identifier = serde_json::to_string(identifier).expect("a string serialises");
    let name = serde_json::to_string(name).expect("a string serialises");
    format!(
        r#"{{"identifier":{identifier},"message":{{"event":{name},"data":{}}}}}"#,
        data.get()
    )
}

/// The kinds of event a cable subscription is sent (`cable.md`'s table).
pub fn shows(kind: &EventKind) -> bool {
    match kind {
        EventKind::MessageCreated(_)
        | EventKind::MessageUpdated(_)
        | EventKind::ConversationCreated(_)
        | EventKind::ConversationStatusChanged(_)
        | EventKind::AssigneeChanged(_)
        | EventKind::TeamChanged(_)
        | EventKind::TypingOn { .. }
        | EventKind::TypingOff { .. }
        | EventKind::ConversationRead { .. }
        | EventKind::NotificationCreated(_)
        | EventKind::ContactCreated(_)
        | EventKind::ContactUpdated(_)
        | EventKind::PresenceUpdate { .. }
        | EventKind::AccountStatusUpdated { .. } => true,
        EventKind::AgentJoined { .. }
        | EventKind::AgentLeft { .. }
        | EventKind::SessionEnded { .. }
        | EventKind::BotFailed { .. }
        | EventKind::TranscriptUpdated(_)
        | EventKind::InboxMembershipChanged { .. } => false,
    }
}

/// What rendering an event needs besides the event: its conversation and the people in it.
#[derive(Default)]
pub struct EventContext {
    pub conversation: Option<ConversationView>,
    /// The message's sender or the typing actor, when an agent.
    pub agent: Option<Agent>,
    /// The message's sender or the typing actor, when a contact.
    pub contact: Option<Contact>,
}

/// An event's name and data, shared by every subscription that receives it. Presence and
/// notifications depend on the subscriber and are rendered per subscription instead.
pub type Rendered = Option<(&'static str, Box<RawValue>)>;

pub fn render(event: &Event, context: &EventContext) -> Rendered {
    let conversation = || match &context.conversation {
        Some(view) => snake::conversation(view),
        None => match &event.kind {
            EventKind::ConversationCreated(c)
            | EventKind::ConversationStatusChanged(c)
            | EventKind::AssigneeChanged(c)
            | EventKind::TeamChanged(c) => snake::bare_conversation(c),
            _ => json!({"id": event.conversation_id().map(|id| id.0)}),
        },
    };
    let with_account = |mut value: Value| {
        value["account_id"] = json!(event.account_id.0);
        value
    };
    let data = match &event.kind {
        EventKind::MessageCreated(message) | EventKind::MessageUpdated(message) => {
            let inbox_id = context
                .conversation
                .as_ref()
                .map(|view| view.conversation.inbox_id.0)
                .or(event.inbox_id.map(|id| id.0))
                .unwrap_or_default();
            snake::message(
                message,
                inbox_id,
                context.contact.as_ref(),
                context.agent.as_ref(),
            )
        }
        EventKind::ConversationCreated(_)
        | EventKind::ConversationStatusChanged(_)
        | EventKind::AssigneeChanged(_)
        | EventKind::TeamChanged(_)
        | EventKind::ConversationRead { .. } => conversation(),
        EventKind::TypingOn { actor, private, .. } => json!({
            "conversation": conversation(),
            "user": user(actor, context),
            "is_private": private,
            "account_id": event.account_id.0,
        }),
        EventKind::TypingOff { actor, .. } => json!({
            "conversation": conversation(),
            "user": user(actor, context),
            "account_id": event.account_id.0,
        }),
        EventKind::ContactCreated(contact) | EventKind::ContactUpdated(contact) => {
            with_account(snake::contact(contact))
        }
        // An extension: widgets learn whether any agent is online.
        EventKind::AccountStatusUpdated { online } => json!({
            "account_id": event.account_id.0,
            "status": if *online { "online" } else { "offline" },
        }),
        _ => return None,
    };
    let data = RawValue::from_string(data.to_string()).expect("a JSON value is valid JSON");
    Some((event.name(), data))
}

fn user(actor: &Actor, context: &EventContext) -> Value {
    match actor {
        Actor::Agent(id) => match context.agent.as_ref().filter(|agent| agent.id == *id) {
            Some(agent) => {
                let mut value = snake::user(agent);
                value["type"] = json!("user");
                value
            }
            None => json!({"id": id.0, "type": "user"}),
        },
        Actor::Contact(id) => match context.contact.as_ref().filter(|c| c.id == *id) {
            Some(contact) => {
                let mut value = snake::contact(contact);
                value["type"] = json!("contact");
                value
            }
            None => json!({"id": id.0, "type": "contact"}),
        },
        Actor::Bot { id, name } => json!({"id": id.0, "name": name, "type": "agent_bot"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_read_as_the_document_writes_them() {
        let agent =
            r#"{"channel":"RoomChannel","pubsub_token":"tok","account_id": 3,"user_id":7 }"#;
        assert_eq!(
            room_identifier(agent),
            Ok(RoomIdentifier {
                pubsub_token: "tok".into(),
                account_id: Some(AccountId(3)),
                user_id: Some(AgentId(7)),
            })
        );
        let contact = r#"{"channel":"RoomChannel","pubsub_token":"tok"}"#;
        assert_eq!(room_identifier(contact).unwrap().account_id, None);
        let strings =
            r#"{"channel":"RoomChannel","pubsub_token":"tok","account_id":"3","user_id":"7"}"#;
        assert_eq!(room_identifier(strings).unwrap().user_id, Some(AgentId(7)));
        assert!(room_identifier(r#"{"channel":"Other","pubsub_token":"t"}"#).is_err());
        assert!(room_identifier(r#"{"channel":"RoomChannel"}"#).is_err());
        assert!(room_identifier("not json").is_err());
        assert!(
            room_identifier(r#"{"channel":"RoomChannel","pubsub_token":"t","user_id":[1]}"#)
                .is_err()
        );
    }

    #[test]
    fn frames_echo_the_identifier_string_exactly() {
        let identifier = r#"{"channel":"RoomChannel","pubsub_token":"tok","account_id": 3}"#;
        let confirmed: Value = serde_json::from_str(&confirm(identifier)).unwrap();
        assert_eq!(confirmed["identifier"], identifier);
        assert_eq!(confirmed["type"], "confirm_subscription");
        let data = RawValue::from_string(r#"{"id":1}"#.into()).unwrap();
        let frame: Value =
            serde_json::from_str(&event(identifier, "message.created", &data)).unwrap();
        assert_eq!(
            frame,
            json!({"identifier": identifier, "message": {"event": "message.created", "data": {"id": 1}}})
        );
        assert_eq!(
            ping(1_700_000_000),
            r#"{"type":"ping","message":1700000000}"#
        );
        assert_eq!(welcome(), r#"{"type":"welcome"}"#);
    }

    fn sample_event(kind: EventKind) -> Event {
        Event {
            account_id: AccountId(1),
            inbox_id: Some(switchboard_core::InboxId(2)),
            contact_id: Some(switchboard_core::ContactId(3)),
            kind,
        }
    }

    fn sample_contact() -> Contact {
        Contact {
            id: switchboard_core::ContactId(3),
            account_id: AccountId(1),
            details: switchboard_core::ContactDetails {
                name: Some("Lin".into()),
                ..Default::default()
            },
            created_at: 0,
        }
    }

    fn data(rendered: Rendered) -> (&'static str, Value) {
        let (name, data) = rendered.expect("rendered");
        (name, serde_json::from_str(data.get()).unwrap())
    }

    #[test]
    fn typing_has_the_documented_fields() {
        let context = EventContext {
            contact: Some(sample_contact()),
            ..EventContext::default()
        };
        let (name, value) = data(render(
            &sample_event(EventKind::TypingOn {
                conversation_id: switchboard_core::ConversationId(5),
                actor: Actor::Contact(switchboard_core::ContactId(3)),
                private: false,
            }),
            &context,
        ));
        assert_eq!(name, "conversation.typing_on");
        assert_eq!(
            value,
            json!({
                "conversation": {"id": 5},
                "user": {
                    "additional_attributes": {}, "custom_attributes": {}, "email": null,
                    "id": 3, "identifier": null, "name": "Lin", "phone_number": null,
                    "thumbnail": "", "type": "contact"
                },
                "is_private": false,
                "account_id": 1
            })
        );
        let (name, value) = data(render(
            &sample_event(EventKind::TypingOff {
                conversation_id: switchboard_core::ConversationId(5),
                actor: Actor::Agent(AgentId(4)),
            }),
            &EventContext::default(),
        ));
        assert_eq!(name, "conversation.typing_off");
        assert_eq!(
            value,
            json!({"conversation": {"id": 5}, "user": {"id": 4, "type": "user"}, "account_id": 1})
        );
    }

    #[test]
    fn contacts_carry_the_account_and_agent_side_events_are_not_shown() {
        let (name, value) = data(render(
            &sample_event(EventKind::ContactUpdated(sample_contact())),
            &EventContext::default(),
        ));
        assert_eq!(name, "contact.updated");
        assert_eq!(
            value,
            json!({
                "additional_attributes": {}, "custom_attributes": {}, "email": null, "id": 3,
                "identifier": null, "name": "Lin", "phone_number": null, "thumbnail": "",
                "account_id": 1
            })
        );
        assert!(!shows(&EventKind::AgentJoined {
            conversation_id: switchboard_core::ConversationId(5),
            agent_id: AgentId(4),
            agent_name: "Grace".into(),
        }));
        let (name, value) = data(render(
            &sample_event(EventKind::AccountStatusUpdated { online: false }),
            &EventContext::default(),
        ));
        assert_eq!(name, "account.status_updated");
        assert_eq!(value, json!({"account_id": 1, "status": "offline"}));
    }

    #[test]
    fn commands_that_are_not_commands_are_not_read() {
        assert!(decode_command("garbage").is_none());
        assert!(decode_command(r#"{"command":"subscribe"}"#).is_none());
        assert!(decode_command(r#"{"command":1,"identifier":"x"}"#).is_none());
        let command = decode_command(
            r#"{"command":"message","identifier":"{}","data":"{\"action\":\"update_presence\"}"}"#,
        )
        .unwrap();
        assert_eq!(
            action(command.data.as_deref()).map(|(name, _)| name),
            Some("update_presence".to_string())
        );
    }
}
