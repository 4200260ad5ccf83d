//! The camelCase JSON shapes of records, shared by the REST API and the native managed sockets
//! (`spec/rest.md`): one place spells each record.

use crate::time_format::{iso8601, Iso8601};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};
use switchboard_core::event::BotFailure;
use switchboard_core::*;

fn message_type(message_type: MessageType) -> &'static str {
    match message_type {
        MessageType::Incoming => "incoming",
        MessageType::Outgoing => "outgoing",
        MessageType::Activity => "activity",
        MessageType::Template => "template",
    }
}

pub fn iframe_command(command: &IframeCommand) -> Value {
    match command {
        IframeCommand::Navigate { url } => json!({"action": "navigate", "url": url}),
        IframeCommand::Click { selector } => json!({"action": "click", "selector": selector}),
        IframeCommand::Type { selector, text } => {
            json!({"action": "type", "selector": selector, "text": text})
        }
        IframeCommand::Highlight { selector } => {
            json!({"action": "highlight", "selector": selector})
        }
        IframeCommand::Scroll { selector } => json!({"action": "scroll", "selector": selector}),
        IframeCommand::Wait {
            selector,
            timeout_ms,
        } => match timeout_ms {
            Some(ms) => json!({"action": "wait", "selector": selector, "timeoutMs": ms}),
            None => json!({"action": "wait", "selector": selector}),
        },
        IframeCommand::Select { selector, value } => {
            json!({"action": "select", "selector": selector, "value": value})
        }
    }
}

/// A message's JSON, as the REST API and every managed frame spell it.
pub fn message(message: &Message) -> Value {
    serde_json::to_value(MessageJson(message)).expect("a message serialises")
}

/// A message written straight from the record, without building a [`Value`] first: it is
/// rendered for every delivery, so this is the hot path of the managed sockets. Keys come in
/// the sorted order a [`Value`] object prints in, so both forms print the same text.
pub struct MessageJson<'a>(pub &'a Message);

impl Serialize for MessageJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.0;
        let mut map = serializer.serialize_map(Some(13))?;
        map.serialize_entry("clientMessageId", &message.client_message_id)?;
        map.serialize_entry("content", &message.content)?;
        if message.attributes.is_empty() {
            map.serialize_entry("contentAttributes", &serde_json::Map::new())?;
        } else {
            map.serialize_entry("contentAttributes", &content_attributes(message))?;
        }
        map.serialize_entry("contentType", message.content_type.as_str())?;
        map.serialize_entry("conversationId", &message.conversation_id.0)?;
        map.serialize_entry("createdAt", &Iso8601(message.created_at))?;
        map.serialize_entry("id", &message.id.0)?;
        map.serialize_entry("messageType", message_type(message.message_type))?;
        map.serialize_entry("private", &message.private)?;
        map.serialize_entry("sender", &SenderJson(&message.sender))?;
        map.serialize_entry("seq", &message.seq)?;
        map.serialize_entry("status", message.status.as_str())?;
        map.serialize_entry("updatedAt", &Iso8601(message.updated_at))?;
        map.end()
    }
}

struct SenderJson<'a>(&'a Sender);

impl Serialize for SenderJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Sender::Bot { id, name } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("id", &id.0)?;
                map.serialize_entry("name", name)?;
                map.serialize_entry("type", "bot")?;
                map.end()
            }
            other => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("id", &other.id_number())?;
                map.serialize_entry("type", other.kind_str())?;
                map.end()
            }
        }
    }
}

/// The extras a bot or an upload attached to a message (rare, so built as a [`Value`]).
fn content_attributes(message: &Message) -> Value {
    let attributes = &message.attributes;
    let mut content_attributes = json!({});
    if let Some(speech) = &attributes.speech {
        content_attributes["speech"] = json!(speech);
    }
    if !attributes.iframe_commands.is_empty() {
        content_attributes["iframeCommands"] = attributes
            .iframe_commands
            .iter()
            .map(iframe_command)
            .collect();
    }
    if !attributes.suggestions.is_empty() {
        content_attributes["suggestions"] = json!(attributes.suggestions);
    }
    if let Some(form) = &attributes.lead_form {
        content_attributes["leadForm"] =
            json!({"fields": form.fields, "cta": {"text": form.cta_text, "url": form.cta_url}});
    }
    if let Some(attachment) = &attributes.attachment {
        content_attributes["attachment"] = self::attachment(message.conversation_id, attachment);
    }
    content_attributes
}

pub fn conversation(conversation: &Conversation) -> Value {
    json!({
        "id": conversation.id.0,
        "accountId": conversation.account_id.0,
        "inboxId": conversation.inbox_id.0,
        "contactId": conversation.contact_id.0,
        "assigneeId": conversation.assignee_id.map(|id| id.0),
        "teamId": conversation.team_id.map(|id| id.0),
        "status": conversation.status.as_str(),
        "lastSeq": conversation.last_seq,
        "contactLastReadSeq": conversation.contact_last_read_seq,
        "agentLastReadSeq": conversation.agent_last_read_seq,
        "unreadByAgents": conversation.unread_by_agents,
        "unreadByContact": conversation.unread_by_contact,
        "createdAt": iso8601(conversation.created_at),
        "updatedAt": iso8601(conversation.updated_at),
    })
}

pub fn agent(agent: &Agent) -> Value {
    json!({
        "id": agent.id.0,
        "accountId": agent.account_id.0,
        "name": agent.name,
        "email": agent.email,
        "role": agent.role.as_str(),
        "availability": agent.availability.as_str(),
        "createdAt": iso8601(agent.created_at),
    })
}

pub fn inbox(inbox: &Inbox, member_ids: Option<&[AgentId]>) -> Value {
    let mut value = json!({
        "id": inbox.id.0,
        "accountId": inbox.account_id.0,
        "name": inbox.name,
        "identifier": inbox.identifier,
        "botId": inbox.bot_id.map(|id| id.0),
    });
    if let Some(members) = member_ids {
        value["memberIds"] = members.iter().map(|id| id.0).collect();
    }
    value
}

pub fn contact(contact: &Contact) -> Value {
    json!({
        "id": contact.id.0,
        "accountId": contact.account_id.0,
        "name": contact.details.name,
        "email": contact.details.email,
        "phoneNumber": contact.details.phone_number,
        "identifier": contact.details.identifier,
        "createdAt": iso8601(contact.created_at),
    })
}

pub fn team(team: &Team) -> Value {
    json!({"id": team.id.0, "accountId": team.account_id.0, "name": team.name})
}

pub fn bot(bot: &Bot) -> Value {
    json!({"id": bot.id.0, "accountId": bot.account_id.0, "name": bot.name, "kind": bot.kind.kind_str()})
}

pub fn notification(notification: &Notification) -> Value {
    json!({
        "id": notification.id.0,
        "notificationType": notification.kind.as_str(),
        "agentId": notification.agent_id.0,
        "conversationId": notification.conversation_id.0,
        "readAt": notification.read_at.map(iso8601),
        "createdAt": iso8601(notification.created_at),
    })
}

fn actor(actor: &Actor) -> Value {
    match actor {
        Actor::Contact(id) => json!({"type": "contact", "id": id.0}),
        Actor::Agent(id) => json!({"type": "user", "id": id.0}),
        Actor::Bot { id, name } => json!({"type": "bot", "id": id.0, "name": name}),
    }
}

/// An event's `{type, payload}` frame as text; messages, the frames sent most, are written
/// without building a [`Value`].
pub fn event_frame_text(event: &Event) -> String {
    match &event.kind {
        EventKind::MessageCreated(message) | EventKind::MessageUpdated(message) => {
            let mut text = Vec::with_capacity(512);
            let mut serializer = serde_json::Serializer::new(&mut text);
            let mut frame = serializer
                .serialize_map(Some(2))
                .expect("writing to memory");
            frame
                .serialize_entry("payload", &MessageJson(message))
                .expect("a message serialises");
            frame
                .serialize_entry("type", event.name())
                .expect("writing to memory");
            SerializeMap::end(frame).expect("writing to memory");
            String::from_utf8(text).expect("serde_json writes UTF-8")
        }
        _ => event_frame(event).to_string(),
    }
}

/// An event as a `{type, payload}` frame of the managed sockets, `type` being its canonical
/// name (what [`event_frame_text`] prints for the events it does not write directly).
fn event_frame(event: &Event) -> Value {
    let payload = match &event.kind {
        EventKind::MessageCreated(m) | EventKind::MessageUpdated(m) => message(m),
        EventKind::ConversationCreated(c)
        | EventKind::ConversationStatusChanged(c)
        | EventKind::AssigneeChanged(c)
        | EventKind::TeamChanged(c) => conversation(c),
        EventKind::TypingOn {
            conversation_id,
            actor: who,
            private,
        } => json!({"conversationId": conversation_id.0, "user": actor(who), "isPrivate": private}),
        EventKind::TypingOff {
            conversation_id,
            actor: who,
        } => json!({"conversationId": conversation_id.0, "user": actor(who)}),
        EventKind::ConversationRead {
            conversation_id,
            reader,
            seq,
        } => json!({"conversationId": conversation_id.0, "reader": actor(reader), "seq": seq}),
        EventKind::AgentJoined {
            conversation_id,
            agent_id,
            agent_name,
        }
        | EventKind::AgentLeft {
            conversation_id,
            agent_id,
            agent_name,
        } => {
            json!({"conversationId": conversation_id.0, "agentId": agent_id.0, "agentName": agent_name})
        }
        EventKind::SessionEnded {
            session_id,
            conversation_id,
        } => json!({"sessionId": session_id.0, "conversationId": conversation_id.0}),
        EventKind::BotFailed {
            conversation_id,
            bot_name,
            failure,
        } => json!({
            "conversationId": conversation_id.0,
            "agentId": bot_name,
            "reason": match failure {
                BotFailure::ConfigurationMissing => "configuration_missing",
                BotFailure::Unavailable => "unavailable",
            },
        }),
        EventKind::NotificationCreated(n) => notification(n),
        EventKind::ContactCreated(c) | EventKind::ContactUpdated(c) => contact(c),
        EventKind::PresenceUpdate { agents, contacts } => {
            let users = status_map(agents.iter().map(|(id, status)| (id.0, *status)));
            let contacts = status_map(contacts.iter().map(|(id, status)| (id.0, *status)));
            json!({"accountId": event.account_id.0, "users": users, "contacts": contacts})
        }
        EventKind::AccountStatusUpdated { online } => {
            json!({"accountId": event.account_id.0, "status": if *online { "online" } else { "offline" }})
        }
        EventKind::TranscriptUpdated(segment) => json!({
            "transcriptId": segment.transcript_id.0,
            "segment": transcript_segment(segment),
        }),
        EventKind::InboxMembershipChanged {
            agent_id,
            inbox_id,
            member,
        } => json!({"agentId": agent_id.0, "inboxId": inbox_id.0, "member": member}),
    };
    json!({"type": event.name(), "payload": payload})
}

/// Presence as `{"<id>": "<status>"}`, the shape every dialect's presence event uses.
pub fn status_map(
    entries: impl IntoIterator<Item = (i64, switchboard_core::Availability)>,
) -> serde_json::Map<String, Value> {
    entries
        .into_iter()
        .map(|(id, status)| (id.to_string(), json!(status.as_str())))
        .collect()
}

pub fn transcript_segment(segment: &switchboard_core::TranscriptSegment) -> Value {
    json!({
        "id": segment.id,
        "seq": segment.seq,
        "speaker": segment.speaker,
        "text": segment.text,
        "startMs": segment.start_ms,
        "endMs": segment.end_ms,
        "createdAt": iso8601(segment.created_at),
    })
}

pub fn transcript(
    transcript: &switchboard_core::Transcript,
    segments: &[switchboard_core::TranscriptSegment],
) -> Value {
    json!({
        "id": transcript.id.0,
        "workspaceId": transcript.account_id.0,
        "title": transcript.title,
        "createdAt": iso8601(transcript.created_at),
        "segments": segments.iter().map(transcript_segment).collect::<Vec<_>>(),
    })
}

/// Where a conversation's party downloads an attachment (with its bearer credential).
pub fn attachment_url(
    conversation_id: switchboard_core::ConversationId,
    attachment: &switchboard_core::Attachment,
) -> String {
    format!(
        "/api/v1/conversations/{}/attachments/{}",
        conversation_id.0, attachment.file_id
    )
}

pub fn attachment(
    conversation_id: switchboard_core::ConversationId,
    attachment: &switchboard_core::Attachment,
) -> Value {
    json!({
        "fileName": attachment.file_name,
        "contentType": attachment.content_type,
        "size": attachment.size,
        "url": attachment_url(conversation_id, attachment),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sender: Sender, attributes: MessageAttributes) -> Message {
        Message {
            id: MessageId(41),
            account_id: AccountId(1),
            conversation_id: ConversationId(7),
            seq: 3,
            sender,
            message_type: MessageType::Outgoing,
            content_type: ContentType::Text,
            content: "Quotes \" and \\ and ünïcode ✓ stay verbatim\n".into(),
            attributes,
            private: false,
            status: MessageStatus::Delivered,
            client_message_id: Some("c-1".into()),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_123,
        }
    }

    #[test]
    fn message_frames_written_directly_print_what_the_value_form_prints() {
        let scope = ConversationScope {
            conversation_id: ConversationId(7),
            account_id: AccountId(1),
            inbox_id: InboxId(2),
            contact_id: ContactId(5),
        };
        let rich = MessageAttributes {
            speech: Some("spoken".into()),
            iframe_commands: vec![IframeCommand::Click {
                selector: "#buy".into(),
            }],
            suggestions: vec!["yes".into(), "no".into()],
            lead_form: None,
            attachment: Some(Attachment {
                file_id: "f1".into(),
                file_name: "a.png".into(),
                content_type: "image/png".into(),
                size: 12,
            }),
        };
        let messages = [
            sample(Sender::Agent(AgentId(9)), MessageAttributes::default()),
            sample(
                Sender::Bot {
                    id: BotId(3),
                    name: "demo".into(),
                },
                rich,
            ),
            Message {
                client_message_id: None,
                message_type: MessageType::Incoming,
                ..sample(Sender::Contact(ContactId(5)), MessageAttributes::default())
            },
        ];
        for message in messages {
            for kind in [
                EventKind::MessageCreated(message.clone()),
                EventKind::MessageUpdated(message.clone()),
            ] {
                let event = Event::in_conversation(&scope, kind);
                assert_eq!(event_frame_text(&event), event_frame(&event).to_string());
            }
        }
    }

    #[test]
    fn a_message_has_the_documented_fields() {
        let printed = super::message(&sample(Sender::Agent(AgentId(9)), Default::default()));
        assert_eq!(
            printed,
            json!({
                "id": 41, "conversationId": 7, "seq": 3,
                "sender": {"type": "user", "id": 9},
                "messageType": "outgoing", "contentType": "text",
                "content": "Quotes \" and \\ and ünïcode ✓ stay verbatim\n",
                "contentAttributes": {}, "private": false, "status": "delivered",
                "clientMessageId": "c-1",
                "createdAt": iso8601(1_700_000_000_000),
                "updatedAt": iso8601(1_700_000_000_123),
            })
        );
    }
}
