//! The storage port: the [`Store`] trait every backend implements, its SQLite implementation
//! (the embedded default), its PostgreSQL implementation (several nodes), and the
//! [`conformance`] suite every backend must pass; and [`PostgresPresence`], the bus crate's
//! presence directory kept in the same PostgreSQL, for clusters without Redis.
//!
//! Architecture invariants:
//! - A write returns only after its transaction has committed: the engine acknowledges nothing
//!   that a crash could lose.
//! - `seq` is allocated inside the write transaction, per conversation, 1, 2, 3, ... with no gap;
//!   a failed write rolls its allocation back.
//! - A repeated `client_message_id` from the same sender in the same conversation returns the
//!   stored message and writes nothing.
//! - Only this crate knows SQL.

pub mod conformance;
mod postgres;
mod postgres_presence;
mod sqlite;
pub mod testing;

pub use postgres::PostgresStore;
pub use postgres_presence::PostgresPresence;
pub use sqlite::{Durability, SqliteStore};

use async_trait::async_trait;
use switchboard_core::bot::BotKind;
use switchboard_core::*;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (e.g. a bot name already taken in the account).
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    /// The record a write refers to does not exist.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new agent, with its credentials already hashed by the caller.
#[derive(Clone, Debug)]
pub struct NewAgent {
    pub account_id: AccountId,
    pub name: String,
    pub email: String,
    pub role: AgentRole,
    pub access_token_hash: String,
    pub pubsub_token: String,
}

/// A contact created through an inbox's widget API, with its place in that inbox.
#[derive(Clone, Debug)]
pub struct NewContactInbox {
    pub account_id: AccountId,
    pub inbox_id: InboxId,
    pub source_id: String,
    /// Kept as given (the widget reads it back) and, hashed, as the contact's credential.
    pub pubsub_token: String,
    pub pubsub_token_hash: String,
    pub details: ContactDetails,
    pub now: UnixMillis,
}

/// A new demo session: the store creates its contact, conversation and session together.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: SessionId,
    pub account_id: AccountId,
    pub inbox_id: InboxId,
    pub bot_id: BotId,
    pub visitor: ContactDetails,
    /// The hash of the contact's pubsub token (its long-lived credential).
    pub contact_token_hash: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// The result of appending a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub message: Message,
    /// False when the `client_message_id` was seen before and `message` is the original.
    pub created: bool,
    /// The conversation's assignee as the append ran (a human who took the conversation over
    /// silences its bot), so no second read is needed to know it.
    pub assignee_id: Option<AgentId>,
}

impl Appended {
    /// `message` newly stored as `id` with `seq`, in a conversation assigned to `assignee_id`.
    pub(crate) fn new_message(
        message: NewMessage,
        id: MessageId,
        seq: Seq,
        assignee_id: Option<AgentId>,
    ) -> Appended {
        Appended {
            assignee_id,
            message: Message {
                id,
                account_id: message.account_id,
                conversation_id: message.conversation_id,
                seq,
                sender: message.sender,
                message_type: message.message_type,
                content_type: message.content_type,
                content: message.content,
                attributes: message.attributes,
                private: message.private,
                status: MessageStatus::Sent,
                client_message_id: message.client_message_id,
                created_at: message.created_at,
                updated_at: message.created_at,
            },
            created: true,
        }
    }
}

/// A message's attributes as both backends store them: JSON, or nothing when there are none.
pub(crate) fn attributes_json(attributes: &MessageAttributes) -> StoreResult<Option<String>> {
    if attributes.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(attributes)
        .map(Some)
        .map_err(|error| StoreError::Backend(Box::new(error)))
}

/// What finds the message a repeated `client_message_id` first created. Both backends append
/// without looking first: the unique index over these columns refuses a repeat, the attempt
/// is undone, and the original is read with this key.
pub(crate) struct RepeatKey {
    pub conversation_id: ConversationId,
    pub sender_kind: &'static str,
    pub sender_id: i64,
    pub client_message_id: String,
}

impl RepeatKey {
    /// The key of `message`, if it carries a `client_message_id`.
    pub(crate) fn of(message: &NewMessage) -> Option<RepeatKey> {
        message
            .client_message_id
            .clone()
            .map(|client_message_id| RepeatKey {
                conversation_id: message.conversation_id,
                sender_kind: message.sender.kind_str(),
                sender_id: message.sender.id_number(),
                client_message_id,
            })
    }
}

/// An upload in flight: who began it, which conversation its file goes to, until when it may
/// be used, and how far it got. Kept in the store so that an upload begun on one node can be
/// sent and finished on any other.
#[derive(Clone, Debug, PartialEq)]
pub struct UploadRecord {
    pub owner: Principal,
    pub conversation_id: ConversationId,
    pub expires_at: UnixMillis,
    pub stage: UploadStage,
}

/// How far an upload got: its file not yet sent, being received, received and kept, or
/// finished into a message (kept until it expires, so that it is not begun again).
#[derive(Clone, Debug, PartialEq)]
pub enum UploadStage {
    Waiting,
    Receiving,
    Received(Attachment),
    Finished,
}

impl UploadStage {
    /// The stage's name as both backends store it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            UploadStage::Waiting => "waiting",
            UploadStage::Receiving => "receiving",
            UploadStage::Received(_) => "received",
            UploadStage::Finished => "finished",
        }
    }

    /// The received file's attachment as both backends store it (JSON), at that stage only.
    pub(crate) fn attachment_json(&self) -> Option<String> {
        match self {
            UploadStage::Received(attachment) => {
                Some(serde_json::to_string(attachment).expect("an attachment serialises"))
            }
            _ => None,
        }
    }
}

/// An upload read back: owner, conversation_id, stage, attachment, expires_at.
pub(crate) type UploadRow = (String, i64, String, Option<String>, i64);

/// An upload's columns as both backends store them: the owner and the attachment as JSON.
pub(crate) struct UploadColumns {
    pub owner: String,
    pub conversation_id: i64,
    pub stage: &'static str,
    pub attachment: Option<String>,
    pub expires_at: UnixMillis,
}

impl UploadColumns {
    pub(crate) fn of(upload: &UploadRecord) -> UploadColumns {
        UploadColumns {
            owner: serde_json::to_string(&upload.owner).expect("a principal serialises"),
            conversation_id: upload.conversation_id.0,
            stage: upload.stage.name(),
            attachment: upload.stage.attachment_json(),
            expires_at: upload.expires_at,
        }
    }

    /// The record back from its columns, read as one row in this order.
    pub(crate) fn record(
        (owner, conversation_id, stage, attachment, expires_at): UploadRow,
    ) -> StoreResult<UploadRecord> {
        let attachment = attachment.as_deref();
        let corrupt = |what: String| StoreError::Backend(what.into());
        let owner = serde_json::from_str(&owner)
            .map_err(|error| corrupt(format!("an upload's owner is not a principal: {error}")))?;
        let stage = match (stage.as_str(), attachment) {
            ("waiting", _) => UploadStage::Waiting,
            ("receiving", _) => UploadStage::Receiving,
            ("finished", _) => UploadStage::Finished,
            ("received", Some(attachment)) => {
                UploadStage::Received(serde_json::from_str(attachment).map_err(|error| {
                    corrupt(format!("an upload's attachment is not valid: {error}"))
                })?)
            }
            (other, _) => return Err(corrupt(format!("an upload's stage is {other:?}"))),
        };
        Ok(UploadRecord {
            owner,
            conversation_id: ConversationId(conversation_id),
            expires_at,
            stage,
        })
    }
}

/// Whose read position to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadSide {
    Contact,
    Agent,
}

impl ReadSide {
    /// Which messages count as unread for this side.
    pub fn unread_rule(self) -> UnreadRule {
        match self {
            ReadSide::Contact => UnreadRule::BY_CONTACT,
            ReadSide::Agent => UnreadRule::BY_AGENTS,
        }
    }
}

/// `rule` as an SQL condition on a `messages` row, which both backends read alike.
pub(crate) fn unread_condition(rule: UnreadRule) -> String {
    let types: Vec<String> = rule
        .types
        .iter()
        .map(|message_type| (*message_type as i64).to_string())
        .collect();
    let mut condition = format!("message_type IN ({})", types.join(", "));
    if rule.public_only {
        condition.push_str(" AND NOT private");
    }
    condition
}

/// Whose conversations to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssigneeFilter {
    All,
    Unassigned,
    Agent(AgentId),
}

/// Which conversations to list: newest first, before `before_id` when paging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationFilter {
    pub account_id: AccountId,
    pub status: Option<ConversationStatus>,
    pub assignee: AssigneeFilter,
    /// Only these inboxes (`None`: every inbox).
    pub inbox_ids: Option<Vec<InboxId>>,
    pub before_id: Option<ConversationId>,
    pub limit: u32,
}

/// One change to a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationChange {
    Assignee(Option<AgentId>),
    Team(Option<TeamId>),
    Status(ConversationStatus),
}

/// Whose delivery cursor: the principal a connection served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CursorOwner {
    Contact(ContactId),
    Agent(AgentId),
}

/// Durable storage of every record. Implementations must pass [`conformance`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store can be read.
    async fn ping(&self) -> StoreResult<()>;

    /// A server-wide setting (e.g. the token signing secret).
    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    /// Stores `value` under `key` unless a value is there; returns the value that is stored, so
    /// several nodes starting at once agree on one.
    async fn put_setting_if_absent(&self, key: &str, value: &str) -> StoreResult<String>;

    async fn count_accounts(&self) -> StoreResult<u64>;
    async fn create_account(
        &self,
        name: &str,
        api_key_hash: &str,
        publishable_key_hash: &str,
        now: UnixMillis,
    ) -> StoreResult<Account>;
    async fn account_by_key_hash(
        &self,
        key_hash: &str,
    ) -> StoreResult<Option<(Account, AccountKeyKind)>>;

    async fn create_agent(&self, agent: NewAgent, now: UnixMillis) -> StoreResult<Agent>;

    async fn create_bot(
        &self,
        account_id: AccountId,
        name: &str,
        kind: &BotKind,
    ) -> StoreResult<Bot>;
    async fn bot(&self, account_id: AccountId, bot_id: BotId) -> StoreResult<Option<Bot>>;
    async fn bot_by_name(&self, account_id: AccountId, name: &str) -> StoreResult<Option<Bot>>;
    /// Removes a bot; sessions bound to it then answer that their agent is missing.
    async fn delete_bot(&self, account_id: AccountId, bot_id: BotId) -> StoreResult<bool>;

    async fn create_inbox(
        &self,
        account_id: AccountId,
        name: &str,
        identifier: &str,
        bot_id: Option<BotId>,
    ) -> StoreResult<Inbox>;
    async fn inboxes(&self, account_id: AccountId) -> StoreResult<Vec<Inbox>>;

    /// Creates the session's contact, conversation and the session in one transaction.
    async fn start_session(&self, session: NewSession) -> StoreResult<Session>;
    async fn session(&self, session_id: &SessionId) -> StoreResult<Option<Session>>;
    /// Marks a session ended (keeping the first end time); `None` if there is no such session.
    async fn end_session(
        &self,
        session_id: &SessionId,
        now: UnixMillis,
    ) -> StoreResult<Option<Session>>;

    async fn conversation(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Conversation>>;

    /// Appends a message: allocates the next seq, or returns the original for a repeated
    /// `client_message_id`. Returns after the commit.
    async fn append_message(&self, message: NewMessage) -> StoreResult<Appended>;
    /// Appends several messages in order in one commit; each succeeds or fails alone. Lets one
    /// busy connection pipeline its writes instead of waiting a commit per message.
    async fn append_messages(
        &self,
        messages: Vec<NewMessage>,
    ) -> StoreResult<Vec<StoreResult<Appended>>>;
    /// Messages with seq greater than `after_seq`, in seq order, at most `limit`.
    async fn messages_after(
        &self,
        conversation_id: ConversationId,
        after_seq: Seq,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;

    /// Moves one side's read position forward to `seq` (never backward).
    async fn mark_read(
        &self,
        conversation_id: ConversationId,
        side: ReadSide,
        seq: Seq,
    ) -> StoreResult<Conversation>;

    async fn agent_by_access_token_hash(&self, token_hash: &str) -> StoreResult<Option<Agent>>;
    async fn agent(&self, account_id: AccountId, agent_id: AgentId) -> StoreResult<Option<Agent>>;
    async fn agents(&self, account_id: AccountId) -> StoreResult<Vec<Agent>>;
    async fn set_availability(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        availability: Availability,
    ) -> StoreResult<Agent>;
    /// Replaces an agent's access token (by hash) and pubsub token; the old ones stop working.
    async fn rotate_agent_token(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        access_token_hash: &str,
        pubsub_token: &str,
    ) -> StoreResult<bool>;
    /// Replaces one of an account's keys (by hash); the old key stops working at once.
    async fn rotate_account_key(
        &self,
        account_id: AccountId,
        kind: AccountKeyKind,
        key_hash: &str,
    ) -> StoreResult<()>;

    async fn bots(&self, account_id: AccountId) -> StoreResult<Vec<Bot>>;
    async fn inbox(&self, account_id: AccountId, inbox_id: InboxId) -> StoreResult<Option<Inbox>>;
    /// Adds (`member`) or removes an agent from an inbox; both must be in the account.
    async fn set_inbox_member(
        &self,
        account_id: AccountId,
        inbox_id: InboxId,
        agent_id: AgentId,
        member: bool,
    ) -> StoreResult<()>;
    /// Every inbox membership of every account (loaded once by the engine).
    async fn memberships(&self) -> StoreResult<Vec<(AgentId, InboxId)>>;
    async fn create_team(&self, account_id: AccountId, name: &str) -> StoreResult<Team>;
    async fn teams(&self, account_id: AccountId) -> StoreResult<Vec<Team>>;

    async fn conversations(&self, filter: ConversationFilter) -> StoreResult<Vec<Conversation>>;
    /// Applies `change`; returns the conversation after it and whether anything changed.
    async fn update_conversation(
        &self,
        conversation_id: ConversationId,
        change: ConversationChange,
        now: UnixMillis,
    ) -> StoreResult<(Conversation, bool)>;
    /// Records that an agent took part in a conversation; true the first time.
    async fn add_participant(
        &self,
        conversation_id: ConversationId,
        agent_id: AgentId,
    ) -> StoreResult<bool>;

    async fn create_notification(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        kind: NotificationKind,
        conversation_id: ConversationId,
        now: UnixMillis,
    ) -> StoreResult<Notification>;
    /// An agent's notifications, newest first.
    async fn notifications(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        limit: u32,
    ) -> StoreResult<Vec<Notification>>;
    async fn mark_notification_read(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        notification_id: NotificationId,
        now: UnixMillis,
    ) -> StoreResult<Option<Notification>>;

    /// Marks delivered (`updated_at` = `now`) those of `message_ids` that are still only sent,
    /// in one write; returns the ids it changed, in the order of `message_ids` (the caller
    /// holds the messages, so they are not read back). The write may return before it is on
    /// disk (nobody is acknowledged for a receipt); a later durable write covers it.
    async fn mark_delivered(
        &self,
        message_ids: Vec<MessageId>,
        now: UnixMillis,
    ) -> StoreResult<Vec<MessageId>>;
    /// Marks read, for `reader`, every message up to `up_to_seq` that counts as unread for it
    /// (`ReadSide::unread_rule`) and is not read yet; returns those it changed.
    async fn mark_messages_read(
        &self,
        conversation_id: ConversationId,
        up_to_seq: Seq,
        reader: ReadSide,
        now: UnixMillis,
    ) -> StoreResult<Vec<Message>>;

    /// Raises delivery cursors (never lowers them): the highest seq delivered to an owner in a
    /// conversation. Written in batches, not per delivered frame, and like receipts it may
    /// return before it is on disk.
    async fn save_cursors(
        &self,
        cursors: Vec<(CursorOwner, ConversationId, Seq)>,
    ) -> StoreResult<()>;
    async fn cursor(
        &self,
        owner: CursorOwner,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Seq>>;

    async fn contact(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
    ) -> StoreResult<Option<Contact>>;
    /// Replaces a contact's details; `None` when there is no such contact in the account.
    async fn update_contact(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
        details: ContactDetails,
    ) -> StoreResult<Option<Contact>>;
    /// The contact whose pubsub token hashes to `token_hash`.
    async fn contact_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Contact>>;

    /// The inbox a widget is configured with.
    async fn inbox_by_identifier(&self, identifier: &str) -> StoreResult<Option<Inbox>>;
    /// Creates a contact and its place in an inbox (`source_id` unique per inbox).
    async fn create_contact_inbox(
        &self,
        contact: NewContactInbox,
    ) -> StoreResult<(Contact, ContactInbox)>;
    /// A contact by its `source_id` in an inbox.
    async fn contact_inbox(
        &self,
        inbox_id: InboxId,
        source_id: &str,
    ) -> StoreResult<Option<(Contact, ContactInbox)>>;
    /// A contact's place in an inbox, by the contact.
    async fn contact_inbox_of(
        &self,
        inbox_id: InboxId,
        contact_id: ContactId,
    ) -> StoreResult<Option<ContactInbox>>;
    /// Opens a new conversation of a contact in an inbox.
    async fn create_conversation(
        &self,
        account_id: AccountId,
        inbox_id: InboxId,
        contact_id: ContactId,
        now: UnixMillis,
    ) -> StoreResult<Conversation>;
    /// A contact's conversations in an inbox, oldest first.
    async fn contact_conversations(
        &self,
        inbox_id: InboxId,
        contact_id: ContactId,
    ) -> StoreResult<Vec<Conversation>>;
    /// The agent whose pubsub token this is.
    async fn agent_by_pubsub_token(&self, token: &str) -> StoreResult<Option<Agent>>;
    /// Every delivery cursor of one owner, with the conversation's newest seq, for the
    /// conversations where the owner is behind.
    async fn cursors_behind(&self, owner: CursorOwner) -> StoreResult<Vec<(ConversationId, Seq)>>;

    async fn create_transcript(
        &self,
        account_id: AccountId,
        title: &str,
        now: UnixMillis,
    ) -> StoreResult<Transcript>;
    async fn transcript(
        &self,
        account_id: AccountId,
        transcript_id: TranscriptId,
    ) -> StoreResult<Option<Transcript>>;
    /// Appends a segment, numbered after the transcript's last (from 1, without gaps).
    async fn append_segment(
        &self,
        transcript_id: TranscriptId,
        speaker: &str,
        text: &str,
        start_ms: i64,
        end_ms: i64,
        now: UnixMillis,
    ) -> StoreResult<TranscriptSegment>;
    /// A transcript's segments in order.
    async fn segments(&self, transcript_id: TranscriptId) -> StoreResult<Vec<TranscriptSegment>>;

    async fn record_iframe_event(&self, event: IframeEvent) -> StoreResult<()>;

    /// Keeps a single-use token (a WebSocket ticket, say) until `expires_at`, so that any node
    /// can redeem it; `kind` keeps different uses apart. Tokens expired by `now` are dropped.
    async fn put_token(
        &self,
        kind: &str,
        token_hash: &str,
        payload: &str,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> StoreResult<()>;

    /// Takes a token once: its payload if it exists and has not expired by `now`. It is gone
    /// afterwards either way, so two nodes redeeming it at once get it once.
    async fn take_token(
        &self,
        kind: &str,
        token_hash: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<String>>;
    async fn iframe_events(&self, session_id: &SessionId) -> StoreResult<Vec<IframeEvent>>;

    /// Keeps a new upload under `token_hash`; uploads expired by `now` are dropped.
    async fn put_upload(
        &self,
        token_hash: &str,
        upload: &UploadRecord,
        now: UnixMillis,
    ) -> StoreResult<()>;

    /// The upload kept under `token_hash`, expired or not, until it is dropped.
    async fn upload(&self, token_hash: &str) -> StoreResult<Option<UploadRecord>>;

    /// Moves the upload under `token_hash` to stage `to`, valid until `expires_at`, if it is
    /// still at the stage `from` names (an attachment is not compared); whether it was. Of two
    /// nodes moving one upload on from the same stage at once, one does.
    async fn advance_upload(
        &self,
        token_hash: &str,
        from: &UploadStage,
        to: &UploadStage,
        expires_at: UnixMillis,
    ) -> StoreResult<bool>;
}
