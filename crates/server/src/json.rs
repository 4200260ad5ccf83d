//! The camelCase JSON shapes of records, shared by the REST API and the native managed sockets
//! (`spec/rest.md`): one place spells each record.

use crate::time_format::iso8601;
use serde_json::{json, Value};
use switchboard_core::event::BotFailure;
use switchboard_core::*;

pub fn sender(sender: &Sender) -> Value {
    match sender {
        Sender::Bot { id, name } => json!({"type": "bot", "id": id.0, "name": name}),
        other => json!({"type": other.kind_str(), "id": other.id_number()}),
    }
}

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

pub fn message(message: &Message) -> Value {
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
    json!({
        "id": message.id.0,
        "conversationId": message.conversation_id.0,
        "seq": message.seq,
        "sender": sender(&message.sender),
        "messageType": message_type(message.message_type),
        "contentType": message.content_type.as_str(),
        "content": message.content,
        "contentAttributes": content_attributes,
        "private": message.private,
        "status": message.status.as_str(),
        "clientMessageId": message.client_message_id,
        "createdAt": iso8601(message.created_at),
        "updatedAt": iso8601(message.updated_at),
    })
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

/// An event as a `{type, payload}` frame of the managed sockets, `type` being its canonical
/// name.
pub fn event_frame(event: &Event) -> Value {
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
