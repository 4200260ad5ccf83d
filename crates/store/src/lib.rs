//! The storage port: the [`Store`] trait every backend implements, its SQLite implementation
//! (the embedded default), and the [`conformance`] suite every backend must pass.
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
mod sqlite;

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

/// A new demo session: the store creates its contact, conversation and session together.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: SessionId,
    pub account_id: AccountId,
    pub inbox_id: InboxId,
    pub bot_id: BotId,
    pub visitor: ContactDetails,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// The result of appending a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub message: Message,
    /// False when the `client_message_id` was seen before and `message` is the original.
    pub created: bool,
}

/// Whose read position to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadSide {
    Contact,
    Agent,
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

    async fn record_iframe_event(&self, event: IframeEvent) -> StoreResult<()>;
    async fn iframe_events(&self, session_id: &SessionId) -> StoreResult<Vec<IframeEvent>>;
}
