//! The records of the domain (see `spec/model.md`): accounts, agents, bots, inboxes, contacts,
//! conversations, messages and demo sessions.

use crate::bot::BotKind;
use crate::ids::*;
use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// A tenant. Its keys are stored only as hashes, so the record never carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: UnixMillis,
}

/// Which of an account's two keys a bearer presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountKeyKind {
    /// The secret API key: full administration and integration rights.
    Api,
    /// The publishable key: safe to embed in a web page; may only start demo sessions.
    Publishable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum AgentRole {
    Agent,
    Administrator,
}

impl AgentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentRole::Agent => "agent",
            AgentRole::Administrator => "administrator",
        }
    }

    pub fn parse(text: &str) -> Option<AgentRole> {
        match text {
            "agent" => Some(AgentRole::Agent),
            "administrator" => Some(AgentRole::Administrator),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    Online,
    Busy,
    Offline,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Busy => "busy",
            Availability::Offline => "offline",
        }
    }

    pub fn parse(text: &str) -> Option<Availability> {
        match text {
            "online" => Some(Availability::Online),
            "busy" => Some(Availability::Busy),
            "offline" => Some(Availability::Offline),
            _ => None,
        }
    }
}

/// A human in the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub account_id: AccountId,
    pub name: String,
    pub email: String,
    pub role: AgentRole,
    pub availability: Availability,
    pub created_at: UnixMillis,
}

/// A bot agent: answers visitors automatically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bot {
    pub id: BotId,
    pub account_id: AccountId,
    /// The name sessions refer to it by (`agentId` in the native dialect), unique per account.
    pub name: String,
    pub kind: BotKind,
}

/// One website widget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    pub id: InboxId,
    pub account_id: AccountId,
    pub name: String,
    /// The public identifier a widget is configured with.
    pub identifier: String,
    pub bot_id: Option<BotId>,
}

/// A visitor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactDetails {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub identifier: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: ContactId,
    pub account_id: AccountId,
    pub details: ContactDetails,
    pub created_at: UnixMillis,
}

/// A contact as a widget of one inbox knows it: its `source_id` there and the pubsub token
/// its widget subscribes with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactInbox {
    pub id: i64,
    pub contact_id: ContactId,
    pub inbox_id: InboxId,
    pub source_id: String,
    pub pubsub_token: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationStatus {
    Open,
    Pending,
    Snoozed,
    Resolved,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Pending => "pending",
            ConversationStatus::Snoozed => "snoozed",
            ConversationStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<ConversationStatus> {
        match text {
            "open" => Some(ConversationStatus::Open),
            "pending" => Some(ConversationStatus::Pending),
            "snoozed" => Some(ConversationStatus::Snoozed),
            "resolved" => Some(ConversationStatus::Resolved),
            _ => None,
        }
    }
}

/// The facts about a conversation that never change after it is created: enough to decide who
/// may see it and where its events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConversationScope {
    pub conversation_id: ConversationId,
    pub account_id: AccountId,
    pub inbox_id: InboxId,
    pub contact_id: ContactId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub account_id: AccountId,
    pub inbox_id: InboxId,
    pub contact_id: ContactId,
    pub assignee_id: Option<AgentId>,
    pub team_id: Option<TeamId>,
    pub status: ConversationStatus,
    /// The seq of the newest message; 0 while there is none.
    pub last_seq: Seq,
    /// The highest seq the contact has marked read.
    pub contact_last_read_seq: Seq,
    /// The highest seq an agent has marked read.
    pub agent_last_read_seq: Seq,
    /// The visitor's messages after the agents' read position.
    pub unread_by_agents: i64,
    /// Public agent and bot messages after the visitor's read position.
    pub unread_by_contact: i64,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl Conversation {
    pub fn scope(&self) -> ConversationScope {
        ConversationScope {
            conversation_id: self.id,
            account_id: self.account_id,
            inbox_id: self.inbox_id,
            contact_id: self.contact_id,
        }
    }
}

/// A team of agents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: TeamId,
    pub account_id: AccountId,
    pub name: String,
}

/// A transcript of an account: segments appended as speech is recognised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    pub id: TranscriptId,
    pub account_id: AccountId,
    pub title: String,
    pub created_at: UnixMillis,
}

/// One piece of a transcript: who spoke, what, and when within the recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub id: i64,
    pub transcript_id: TranscriptId,
    /// The segment's place in its transcript, from 1.
    pub seq: Seq,
    pub speaker: String,
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub created_at: UnixMillis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationKind {
    /// The conversation was assigned to the agent.
    ConversationAssignment,
    /// A new conversation began in one of the agent's inboxes.
    ConversationCreation,
    /// A visitor wrote in a conversation assigned to the agent.
    AssignedConversationNewMessage,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::ConversationAssignment => "conversation_assignment",
            NotificationKind::ConversationCreation => "conversation_creation",
            NotificationKind::AssignedConversationNewMessage => "assigned_conversation_new_message",
        }
    }

    pub fn parse(text: &str) -> Option<NotificationKind> {
        match text {
            "conversation_assignment" => Some(NotificationKind::ConversationAssignment),
            "conversation_creation" => Some(NotificationKind::ConversationCreation),
            "assigned_conversation_new_message" => {
                Some(NotificationKind::AssignedConversationNewMessage)
            }
            _ => None,
        }
    }
}

/// A notification to one agent, about a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: NotificationId,
    pub account_id: AccountId,
    pub agent_id: AgentId,
    pub kind: NotificationKind,
    pub conversation_id: ConversationId,
    pub read_at: Option<UnixMillis>,
    pub created_at: UnixMillis,
}

/// Who wrote a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sender {
    Contact(ContactId),
    Agent(AgentId),
    Bot {
        id: BotId,
        name: String,
    },
    /// The account's integration (a back end using the API key).
    Integration(AccountId),
    System,
}

impl Sender {
    /// The sender's kind as stored and as spelled in `model.md`.
    pub fn kind_str(&self) -> &'static str {
        match self {
            Sender::Contact(_) => "contact",
            Sender::Agent(_) => "user",
            Sender::Bot { .. } => "bot",
            Sender::Integration(_) => "integration",
            Sender::System => "system",
        }
    }

    /// A bot sender's name (the only sender whose name travels with the message).
    pub fn bot_name(&self) -> Option<&str> {
        match self {
            Sender::Bot { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The sender's numeric id (0 for the system).
    pub fn id_number(&self) -> i64 {
        match self {
            Sender::Contact(id) => id.0,
            Sender::Agent(id) => id.0,
            Sender::Bot { id, .. } => id.0,
            Sender::Integration(id) => id.0,
            Sender::System => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageType {
    Incoming = 0,
    Outgoing = 1,
    Activity = 2,
    Template = 3,
}

impl MessageType {
    pub fn from_number(number: i64) -> Option<MessageType> {
        match number {
            0 => Some(MessageType::Incoming),
            1 => Some(MessageType::Outgoing),
            2 => Some(MessageType::Activity),
            3 => Some(MessageType::Template),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentType {
    Text,
    File,
    InputSelect,
    Cards,
    Form,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Text => "text",
            ContentType::File => "file",
            ContentType::InputSelect => "input_select",
            ContentType::Cards => "cards",
            ContentType::Form => "form",
        }
    }

    pub fn parse(text: &str) -> Option<ContentType> {
        match text {
            "text" => Some(ContentType::Text),
            "file" => Some(ContentType::File),
            "input_select" => Some(ContentType::InputSelect),
            "cards" => Some(ContentType::Cards),
            "form" => Some(ContentType::Form),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<MessageStatus> {
        match text {
            "sent" => Some(MessageStatus::Sent),
            "delivered" => Some(MessageStatus::Delivered),
            "read" => Some(MessageStatus::Read),
            "failed" => Some(MessageStatus::Failed),
            _ => None,
        }
    }
}

/// What a bot (or a rich message) carries beyond its text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iframe_commands: Vec<IframeCommand>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_form: Option<LeadForm>,
    /// The file a file message carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
}

/// A file sent in a conversation: stored by the server, fetched by the conversation's parties.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Attachment {
    /// The stored file's id (random; names it on disk and in its download path).
    pub file_id: String,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
}

impl MessageAttributes {
    pub fn is_empty(&self) -> bool {
        self == &MessageAttributes::default()
    }
}

/// One step a bot asks the demo page's iframe to perform. Tagged by `action` so rule files
/// read naturally (`{"action": "navigate", "url": "/dashboard"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum IframeCommand {
    Navigate {
        url: String,
    },
    Click {
        selector: String,
    },
    Type {
        selector: String,
        text: String,
    },
    Highlight {
        selector: String,
    },
    Scroll {
        selector: String,
    },
    Wait {
        selector: String,
        // Rule files say `timeout_ms`; webhook replies use the wire's `timeoutMs`.
        #[serde(default, alias = "timeoutMs")]
        timeout_ms: Option<u64>,
    },
    Select {
        selector: String,
        value: String,
    },
}

/// A lead capture form a bot asks the widget to show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadForm {
    pub fields: Vec<String>,
    pub cta_text: String,
    pub cta_url: String,
}

/// A stored message. `seq` starts at 1 in each conversation and grows by exactly 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub account_id: AccountId,
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub sender: Sender,
    pub message_type: MessageType,
    pub content_type: ContentType,
    pub content: String,
    pub attributes: MessageAttributes,
    pub private: bool,
    pub status: MessageStatus,
    pub client_message_id: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A message before the store has given it an id and a seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub account_id: AccountId,
    pub conversation_id: ConversationId,
    pub sender: Sender,
    pub message_type: MessageType,
    pub content_type: ContentType,
    pub content: String,
    pub attributes: MessageAttributes,
    pub private: bool,
    pub client_message_id: Option<String>,
    pub created_at: UnixMillis,
}

/// Which messages count as unread for one side of a conversation. The stores keep unread
/// counters and mark messages read by these rules, querying by their parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreadRule {
    pub types: &'static [MessageType],
    /// Only messages that are not private notes.
    pub public_only: bool,
}

impl UnreadRule {
    /// For the conversation's agents: the visitor's messages.
    pub const BY_AGENTS: UnreadRule = UnreadRule {
        types: &[MessageType::Incoming],
        public_only: false,
    };
    /// For the contact: public messages from the agents' side (an agent's or a bot's reply,
    /// or a template).
    pub const BY_CONTACT: UnreadRule = UnreadRule {
        types: &[MessageType::Outgoing, MessageType::Template],
        public_only: true,
    };

    pub fn counts(&self, message_type: MessageType, private: bool) -> bool {
        self.types.contains(&message_type) && !(self.public_only && private)
    }
}

impl NewMessage {
    /// Whether the message counts as unread for the conversation's agents.
    pub fn unread_by_agents(&self) -> bool {
        UnreadRule::BY_AGENTS.counts(self.message_type, self.private)
    }

    /// Whether the message counts as unread for the contact.
    pub fn unread_by_contact(&self) -> bool {
        UnreadRule::BY_CONTACT.counts(self.message_type, self.private)
    }
}

/// A live demo session: a visitor talking with a bot in one conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub account_id: AccountId,
    pub bot_id: BotId,
    pub contact_id: ContactId,
    pub conversation_id: ConversationId,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub ended_at: Option<UnixMillis>,
}

impl Session {
    /// Whether the session can no longer be used: ended, or past its expiry.
    pub fn is_over(&self, now: UnixMillis) -> bool {
        self.ended_at.is_some() || now >= self.expires_at
    }
}

/// An event reported by the demo page's iframe, kept for analytics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IframeEvent {
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub conversation_id: ConversationId,
    pub event: String,
    pub selector: Option<String>,
    pub url: Option<String>,
    pub created_at: UnixMillis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_rules_name_each_sides_messages() {
        use MessageType::*;
        let rows = [
            // (type, private) → unread for agents, for the contact
            ((Incoming, false), (true, false)),
            ((Outgoing, false), (false, true)),
            ((Outgoing, true), (false, false)),
            ((Template, false), (false, true)),
            ((Template, true), (false, false)),
            ((Activity, false), (false, false)),
        ];
        for ((message_type, private), expected) in rows {
            assert_eq!(
                (
                    UnreadRule::BY_AGENTS.counts(message_type, private),
                    UnreadRule::BY_CONTACT.counts(message_type, private)
                ),
                expected,
                "{message_type:?}, private {private}"
            );
        }
    }
}
