//! The embedded SQLite store: WAL mode, migrations, one writer thread that batches concurrent
//! writes into group commits, and a small pool of reader connections.
//!
//! Why a dedicated writer thread and not a pool: SQLite allows one writer at a time anyway, and
//! a single thread that drains every queued write into one transaction turns N fsyncs into one,
//! which is what lets durable-before-acknowledged run at tens of thousands of messages a second.
//! Each write runs inside its own SAVEPOINT so one failing write never takes its batch down.
//!
//! Not every write needs the disk before it returns: delivery receipts and delivery cursors are
//! bookkeeping the server can lose in a crash (the messages they describe are replayed and
//! receipted again; see [`Commit::Lazy`]). A batch of only such writes commits without an
//! fsync; the next synced commit's fsync covers it, as the WAL is written in order.

use crate::*;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// How hard a commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: nothing acknowledged is lost even if the machine loses power.
    Full,
    /// fsync at checkpoints only: survives a crash of the process, not of the machine.
    Normal,
}

/// The most writes folded into one transaction.
const MAX_BATCH: usize = 1024;
/// How many writes may wait for the writer before senders are made to wait.
const WRITE_QUEUE: usize = 8192;

type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// One write waiting for the writer thread.
struct WriteJob {
    commit: Commit,
    run: Box<dyn FnOnce(&Connection) -> Completion + Send>,
}

/// What a write needs of the commit it joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Commit {
    /// Answered only once the commit is as durable as [`Durability`] says (fsync under
    /// `Full`), and run in its own savepoint so a failure undoes it alone. Everything a client
    /// is acknowledged for is written so.
    Synced,
    /// Bookkeeping that may be lost if the machine fails before the next synced commit:
    /// delivery receipts and cursors, which only ever move forward and are written again
    /// when the messages they describe are replayed. Runs without a savepoint of its own
    /// (such a write is idempotent, so one that stops half-way does no harm), and a batch of
    /// nothing else commits without an fsync.
    Lazy,
}

pub struct SqliteStore {
    writer: mpsc::Sender<WriteJob>,
    readers: Arc<ReaderPool>,
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(error))
}

fn from_sqlite(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &error {
        if code.code == rusqlite::ErrorCode::ConstraintViolation {
            return StoreError::Conflict { what: "record" };
        }
    }
    backend(error)
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    publishable_key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    availability TEXT NOT NULL,
    access_token_hash TEXT NOT NULL UNIQUE,
    pubsub_token TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    UNIQUE (account_id, email)
);
CREATE TABLE bots (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    UNIQUE (account_id, name)
);
CREATE TABLE inboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    identifier TEXT NOT NULL UNIQUE,
    bot_id INTEGER
);
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name TEXT, email TEXT, phone_number TEXT, identifier TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    inbox_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    assignee_id INTEGER,
    status TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    contact_last_read_seq INTEGER NOT NULL DEFAULT 0,
    agent_last_read_seq INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    sender_kind TEXT NOT NULL,
    sender_id INTEGER NOT NULL,
    sender_name TEXT,
    message_type INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    content TEXT NOT NULL,
    attributes TEXT,
    private INTEGER NOT NULL,
    status TEXT NOT NULL,
    client_message_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client_id
    ON messages (conversation_id, sender_kind, sender_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL,
    bot_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE TABLE iframe_events (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    conversation_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    selector TEXT,
    url TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX iframe_events_session ON iframe_events (session_id);
"#,
    r#"
ALTER TABLE conversations ADD COLUMN team_id INTEGER;
CREATE INDEX conversations_account ON conversations (account_id, status, id);
CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    UNIQUE (account_id, name)
);
CREATE TABLE inbox_members (
    inbox_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    PRIMARY KEY (inbox_id, agent_id)
);
CREATE TABLE conversation_participants (
    conversation_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, agent_id)
);
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    conversation_id INTEGER NOT NULL,
    read_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX notifications_agent ON notifications (agent_id, id);
"#,
    r#"
ALTER TABLE contacts ADD COLUMN pubsub_token_hash TEXT;
CREATE UNIQUE INDEX contacts_pubsub_token ON contacts (pubsub_token_hash)
    WHERE pubsub_token_hash IS NOT NULL;
"#,
    r#"
ALTER TABLE conversations ADD COLUMN unread_by_agents INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN unread_by_contact INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET
    unread_by_agents = (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = conversations.id
        AND m.seq > conversations.agent_last_read_seq AND m.message_type = 0),
    unread_by_contact = (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = conversations.id
        AND m.seq > conversations.contact_last_read_seq AND m.message_type IN (1, 3)
        AND m.private = 0);
"#,
    r#"
CREATE TABLE delivery_cursors (
    owner_kind TEXT NOT NULL,
    owner_id INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (owner_kind, owner_id, conversation_id)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE contact_inboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    inbox_id INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    pubsub_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (inbox_id, source_id)
);
CREATE INDEX contact_inboxes_contact ON contact_inboxes (contact_id, inbox_id);
CREATE INDEX conversations_contact ON conversations (contact_id, inbox_id, id);
"#,
    r#"
CREATE TABLE transcripts (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE transcript_segments (
    id INTEGER PRIMARY KEY,
    transcript_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    speaker TEXT NOT NULL,
    text TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (transcript_id, seq)
);
"#,
    r#"
CREATE TABLE single_use_tokens (
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    payload TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, token_hash)
) WITHOUT ROWID;
CREATE INDEX single_use_tokens_expiry ON single_use_tokens (expires_at);
"#,
    r#"
CREATE TABLE uploads (
    token_hash TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    conversation_id INTEGER NOT NULL,
    stage TEXT NOT NULL,
    attachment TEXT,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_expiry ON uploads (expires_at);
"#,
];

/// How the commit of `batch` syncs: as configured if any write in it needs that, else without
/// an fsync of its own.
fn commit_durability(configured: Durability, batch: &[WriteJob]) -> Durability {
    if batch.iter().any(|job| job.commit == Commit::Synced) {
        configured
    } else {
        Durability::Normal
    }
}

fn synchronous_setting(durability: Durability) -> &'static str {
    match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    }
}

/// The writer's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

fn open_connection(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", synchronous_setting(durability))?;
    // The hot pages (a conversation's row, the messages' index tails) are rewritten by nearly
    // every commit; checkpointing every 8,000 pages (32 MiB of WAL) instead of SQLite's 1,000
    // copies each of them back to the database far less often.
    connection.pragma_update(None, "wal_autocheckpoint", 8000)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let mut connection = open_connection(&path, durability).map_err(backend)?;
        connection
            .pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
            .map_err(backend)?;
        migrate(&mut connection).map_err(backend)?;
        let (writer, jobs) = mpsc::channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writer(connection, durability, jobs))
            .map_err(backend)?;
        Ok(SqliteStore {
            writer,
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Runs `work` inside the next group commit and returns its result once that commit is
    /// durable.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.write_as(Commit::Synced, work).await
    }

    /// Runs `work` inside the next group commit as `commit` says, and returns its result after
    /// the commit.
    async fn write_as<T: Send + 'static>(
        &self,
        commit: Commit,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        let job = WriteJob {
            commit,
            run: Box::new(move |connection| {
                let result = match commit {
                    Commit::Synced => in_savepoint(connection, &JOB, work),
                    Commit::Lazy => work(connection),
                };
                Box::new(move |committed: StoreResult<()>| {
                    let _ = reply.send(committed.and(result));
                })
            }),
        };
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `work` on a reader connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = match readers.idle.lock().expect("reader pool poisoned").pop() {
                Some(connection) => connection,
                // Readers never write, so their durability setting does not matter.
                None => open_connection(&readers.path, Durability::Normal).map_err(backend)?,
            };
            let result = work(&connection).map_err(from_sqlite);
            let mut idle = readers.idle.lock().expect("reader pool poisoned");
            if idle.len() < 8 {
                idle.push(connection);
            }
            result
        })
        .await
        .map_err(backend)?
    }
}

/// A savepoint's three statements, spelled once: they run for every write.
struct Savepoint {
    open: &'static str,
    undo: &'static str,
    release: &'static str,
}

/// The savepoint every ordinary write job runs in.
const JOB: Savepoint = Savepoint {
    open: "SAVEPOINT job",
    undo: "ROLLBACK TO job",
    release: "RELEASE job",
};

/// The savepoint of each message in a batch of appends, nested in its job's.
const MESSAGE: Savepoint = Savepoint {
    open: "SAVEPOINT message",
    undo: "ROLLBACK TO message",
    release: "RELEASE message",
};

/// Runs `work` inside `savepoint`: kept if it succeeds, undone (and only it) if it fails.
/// The statements are prepared once and cached.
fn in_savepoint<T>(
    connection: &Connection,
    savepoint: &Savepoint,
    work: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let run = |sql: &str| -> StoreResult<()> {
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(|_| ())
            .map_err(from_sqlite)
    };
    run(savepoint.open)?;
    let result = work(connection);
    if result.is_err() {
        run(savepoint.undo)?;
    }
    run(savepoint.release)?;
    result
}

/// The writer thread: takes every queued write, runs them in one transaction, commits once, and
/// only then answers each caller.
fn run_writer(connection: Connection, durability: Durability, mut jobs: mpsc::Receiver<WriteJob>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    let mut synced_now = durability;
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // The setting only changes between batches of different needs.
        let wanted = commit_durability(durability, &batch);
        if wanted != synced_now {
            match connection.pragma_update(None, "synchronous", synchronous_setting(wanted)) {
                Ok(()) => synced_now = wanted,
                Err(error) => tracing::error!(%error, "cannot change how commits sync"),
            }
        }
        let begun = connection.execute_batch("BEGIN IMMEDIATE");
        if let Err(error) = begun {
            tracing::error!(%error, "cannot begin a write transaction");
            for job in batch.drain(..) {
                // The job never ran; its completion reports the failure.
                drop(job);
            }
            continue;
        }
        for job in batch.drain(..) {
            completions.push((job.run)(&connection));
        }
        let committed = connection.execute_batch("COMMIT");
        let outcome = match committed {
            Ok(()) => Ok(()),
            Err(error) => {
                tracing::error!(%error, "group commit failed");
                let _ = connection.execute_batch("ROLLBACK");
                Err(error.to_string())
            }
        };
        for completion in completions.drain(..) {
            completion(match &outcome {
                Ok(()) => Ok(()),
                Err(message) => Err(StoreError::Backend(message.clone().into())),
            });
        }
    }
    tracing::debug!("sqlite writer stopped");
}

fn bad_column(column: &str, value: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unexpected {column} {value:?}").into(),
    )
}

fn agent_from_row(row: &Row) -> rusqlite::Result<Agent> {
    let role: String = row.get("role")?;
    let availability: String = row.get("availability")?;
    Ok(Agent {
        id: AgentId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        name: row.get("name")?,
        email: row.get("email")?,
        role: AgentRole::parse(&role).ok_or_else(|| bad_column("role", role))?,
        availability: Availability::parse(&availability)
            .ok_or_else(|| bad_column("availability", availability))?,
        created_at: row.get("created_at")?,
    })
}

fn notification_from_row(row: &Row) -> rusqlite::Result<Notification> {
    let kind: String = row.get("kind")?;
    Ok(Notification {
        id: NotificationId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        agent_id: AgentId(row.get("agent_id")?),
        kind: NotificationKind::parse(&kind).ok_or_else(|| bad_column("kind", kind))?,
        conversation_id: ConversationId(row.get("conversation_id")?),
        read_at: row.get("read_at")?,
        created_at: row.get("created_at")?,
    })
}

fn contact_from_row(row: &Row) -> rusqlite::Result<Contact> {
    Ok(Contact {
        id: ContactId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        details: ContactDetails {
            name: row.get("name")?,
            email: row.get("email")?,
            phone_number: row.get("phone_number")?,
            identifier: row.get("identifier")?,
        },
        created_at: row.get("created_at")?,
    })
}

fn bot_from_row(row: &Row) -> rusqlite::Result<Bot> {
    let config: String = row.get("config")?;
    let kind: BotKind = serde_json::from_str(&config).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(error))
    })?;
    Ok(Bot {
        id: BotId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        name: row.get("name")?,
        kind,
    })
}

fn contact_inbox_from_row(row: &Row) -> rusqlite::Result<ContactInbox> {
    Ok(ContactInbox {
        id: row.get("id")?,
        contact_id: ContactId(row.get("contact_id")?),
        inbox_id: InboxId(row.get("inbox_id")?),
        source_id: row.get("source_id")?,
        pubsub_token: row.get("pubsub_token")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn inbox_from_row(row: &Row) -> rusqlite::Result<Inbox> {
    Ok(Inbox {
        id: InboxId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        name: row.get("name")?,
        identifier: row.get("identifier")?,
        bot_id: row.get::<_, Option<i64>>("bot_id")?.map(BotId),
    })
}

fn session_from_row(row: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        id: SessionId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        bot_id: BotId(row.get("bot_id")?),
        contact_id: ContactId(row.get("contact_id")?),
        conversation_id: ConversationId(row.get("conversation_id")?),
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        ended_at: row.get("ended_at")?,
    })
}

fn conversation_from_row(row: &Row) -> rusqlite::Result<Conversation> {
    let status: String = row.get("status")?;
    Ok(Conversation {
        id: ConversationId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        inbox_id: InboxId(row.get("inbox_id")?),
        contact_id: ContactId(row.get("contact_id")?),
        assignee_id: row.get::<_, Option<i64>>("assignee_id")?.map(AgentId),
        team_id: row.get::<_, Option<i64>>("team_id")?.map(TeamId),
        status: ConversationStatus::parse(&status).ok_or_else(|| bad_column("status", status))?,
        last_seq: row.get("last_seq")?,
        contact_last_read_seq: row.get("contact_last_read_seq")?,
        agent_last_read_seq: row.get("agent_last_read_seq")?,
        unread_by_agents: row.get("unread_by_agents")?,
        unread_by_contact: row.get("unread_by_contact")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn message_from_row(row: &Row) -> rusqlite::Result<Message> {
    let sender_kind: String = row.get("sender_kind")?;
    let sender_id: i64 = row.get("sender_id")?;
    let sender = match sender_kind.as_str() {
        "contact" => Sender::Contact(ContactId(sender_id)),
        "user" => Sender::Agent(AgentId(sender_id)),
        "bot" => Sender::Bot {
            id: BotId(sender_id),
            name: row
                .get::<_, Option<String>>("sender_name")?
                .unwrap_or_default(),
        },
        "integration" => Sender::Integration(AccountId(sender_id)),
        "system" => Sender::System,
        _ => return Err(bad_column("sender_kind", sender_kind)),
    };
    let message_type: i64 = row.get("message_type")?;
    let content_type: String = row.get("content_type")?;
    let status: String = row.get("status")?;
    let attributes: Option<String> = row.get("attributes")?;
    let attributes = match attributes {
        Some(json) => serde_json::from_str(&json).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })?,
        None => MessageAttributes::default(),
    };
    Ok(Message {
        id: MessageId(row.get("id")?),
        account_id: AccountId(row.get("account_id")?),
        conversation_id: ConversationId(row.get("conversation_id")?),
        seq: row.get("seq")?,
        sender,
        message_type: MessageType::from_number(message_type)
            .ok_or_else(|| bad_column("message_type", message_type.to_string()))?,
        content_type: ContentType::parse(&content_type)
            .ok_or_else(|| bad_column("content_type", content_type))?,
        content: row.get("content")?,
        attributes,
        private: row.get("private")?,
        status: MessageStatus::parse(&status).ok_or_else(|| bad_column("status", status))?,
        client_message_id: row.get("client_message_id")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// Counts what is unread for `side` after a seq. Kept as counters on the conversation (raised
/// on append, recounted on read) so reading a conversation costs no scan.
fn unread_count_sql(side: ReadSide) -> String {
    format!(
        "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND seq > ?2 AND {}",
        unread_condition(side.unread_rule())
    )
}

fn cursor_owner(owner: CursorOwner) -> (&'static str, i64) {
    match owner {
        CursorOwner::Contact(id) => ("contact", id.0),
        CursorOwner::Agent(id) => ("agent", id.0),
    }
}

fn conversation_by_id(
    connection: &Connection,
    conversation_id: ConversationId,
) -> rusqlite::Result<Option<Conversation>> {
    connection
        .prepare_cached("SELECT * FROM conversations WHERE id = ?1")?
        .query_row([conversation_id.0], conversation_from_row)
        .optional()
}

fn session_by_id(connection: &Connection, id: &SessionId) -> rusqlite::Result<Option<Session>> {
    connection
        .prepare_cached("SELECT * FROM sessions WHERE id = ?1")?
        .query_row([&id.0], session_from_row)
        .optional()
}

/// The message a repeated `client_message_id` first created, and the conversation's assignee.
fn original(connection: &Connection, key: &RepeatKey) -> rusqlite::Result<Appended> {
    let message = connection
        .prepare_cached(
            "SELECT * FROM messages WHERE conversation_id = ?1 AND sender_kind = ?2 \
             AND sender_id = ?3 AND client_message_id = ?4",
        )?
        .query_row(
            params![
                key.conversation_id.0,
                key.sender_kind,
                key.sender_id,
                key.client_message_id
            ],
            message_from_row,
        )?;
    let assignee_id = connection
        .prepare_cached("SELECT assignee_id FROM conversations WHERE id = ?1")?
        .query_row(params![key.conversation_id.0], |row| {
            row.get::<_, Option<i64>>(0)
        })?;
    Ok(Appended {
        message,
        created: false,
        assignee_id: assignee_id.map(AgentId),
    })
}

/// Appends `message` in a savepoint of its own, answering a repeated `client_message_id` with
/// the original.
fn append(connection: &Connection, message: NewMessage) -> StoreResult<Appended> {
    let key = RepeatKey::of(&message);
    let appended = in_savepoint(connection, &MESSAGE, |connection| {
        try_append(connection, message)
    });
    match (appended, key) {
        (Err(StoreError::Conflict { .. }), Some(key)) => {
            original(connection, &key).map_err(from_sqlite)
        }
        (appended, _) => appended,
    }
}

/// Bumps the conversation's seq and inserts the message with it. A repeated
/// `client_message_id` breaks the unique index and fails with [`StoreError::Conflict`]; the
/// caller then rolls back the savepoint this ran in (the bump with it).
fn try_append(connection: &Connection, message: NewMessage) -> StoreResult<Appended> {
    let sender_kind = message.sender.kind_str();
    let sender_id = message.sender.id_number();
    let updated: Option<(i64, Option<i64>)> = connection
        .prepare_cached(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = ?3, \
             unread_by_agents = unread_by_agents + ?4, \
             unread_by_contact = unread_by_contact + ?5 \
             WHERE id = ?1 AND account_id = ?2 RETURNING last_seq, assignee_id",
        )
        .and_then(|mut statement| {
            statement
                .query_row(
                    params![
                        message.conversation_id.0,
                        message.account_id.0,
                        message.created_at,
                        i64::from(message.unread_by_agents()),
                        i64::from(message.unread_by_contact())
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
        })
        .map_err(from_sqlite)?;
    let Some((seq, assignee_id)) = updated else {
        return Err(StoreError::NotFound {
            what: "conversation",
        });
    };
    let attributes = attributes_json(&message.attributes)?;
    connection
        .prepare_cached(
            "INSERT INTO messages (account_id, conversation_id, seq, sender_kind, sender_id, \
             sender_name, message_type, content_type, content, attributes, private, status, \
             client_message_id, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'sent', ?12, ?13, ?13)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                message.account_id.0,
                message.conversation_id.0,
                seq,
                sender_kind,
                sender_id,
                message.sender.bot_name(),
                message.message_type as i64,
                message.content_type.as_str(),
                message.content,
                attributes,
                message.private,
                message.client_message_id,
                message.created_at,
            ])
        })
        .map_err(from_sqlite)?;
    let id = MessageId(connection.last_insert_rowid());
    Ok(Appended::new_message(
        message,
        id,
        seq,
        assignee_id.map(AgentId),
    ))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|connection| connection.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_string();
        self.read(move |connection| {
            connection
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
        })
        .await
    }

    async fn put_setting_if_absent(&self, key: &str, value: &str) -> StoreResult<String> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![key, value],
                )
                .map_err(from_sqlite)?;
            connection
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .map_err(from_sqlite)
        })
        .await
    }

    async fn count_accounts(&self) -> StoreResult<u64> {
        self.read(|connection| {
            connection.query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))
        })
        .await
    }

    async fn create_account(
        &self,
        name: &str,
        api_key_hash: &str,
        publishable_key_hash: &str,
        now: UnixMillis,
    ) -> StoreResult<Account> {
        let (name, api, publishable) = (
            name.to_string(),
            api_key_hash.to_string(),
            publishable_key_hash.to_string(),
        );
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO accounts (name, api_key_hash, publishable_key_hash, created_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![name, api, publishable, now],
                )
                .map_err(from_sqlite)?;
            Ok(Account {
                id: AccountId(connection.last_insert_rowid()),
                name,
                created_at: now,
            })
        })
        .await
    }

    async fn account_by_key_hash(
        &self,
        key_hash: &str,
    ) -> StoreResult<Option<(Account, AccountKeyKind)>> {
        let key_hash = key_hash.to_string();
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT id, name, created_at, api_key_hash = ?1 FROM accounts \
                     WHERE api_key_hash = ?1 OR publishable_key_hash = ?1",
                )?
                .query_row([key_hash], |row| {
                    let is_api: bool = row.get(3)?;
                    Ok((
                        Account {
                            id: AccountId(row.get(0)?),
                            name: row.get(1)?,
                            created_at: row.get(2)?,
                        },
                        if is_api {
                            AccountKeyKind::Api
                        } else {
                            AccountKeyKind::Publishable
                        },
                    ))
                })
                .optional()
        })
        .await
    }

    async fn create_agent(&self, agent: NewAgent, now: UnixMillis) -> StoreResult<Agent> {
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO agents (account_id, name, email, role, availability, \
                     access_token_hash, pubsub_token, created_at) \
                     VALUES (?1, ?2, ?3, ?4, 'online', ?5, ?6, ?7)",
                    params![
                        agent.account_id.0,
                        agent.name,
                        agent.email,
                        agent.role.as_str(),
                        agent.access_token_hash,
                        agent.pubsub_token,
                        now
                    ],
                )
                .map_err(|error| match from_sqlite(error) {
                    StoreError::Conflict { .. } => StoreError::Conflict {
                        what: "an agent with this email",
                    },
                    other => other,
                })?;
            Ok(Agent {
                id: AgentId(connection.last_insert_rowid()),
                account_id: agent.account_id,
                name: agent.name,
                email: agent.email,
                role: agent.role,
                // An agent is available unless it says otherwise; it is *present* only
                // while connected.
                availability: Availability::Online,
                created_at: now,
            })
        })
        .await
    }

    async fn create_bot(
        &self,
        account_id: AccountId,
        name: &str,
        kind: &BotKind,
    ) -> StoreResult<Bot> {
        let name = name.to_string();
        let kind = kind.clone();
        let config = serde_json::to_string(&kind).map_err(backend)?;
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO bots (account_id, name, kind, config) VALUES (?1, ?2, ?3, ?4)",
                    params![account_id.0, name, kind.kind_str(), config],
                )
                .map_err(|error| match from_sqlite(error) {
                    StoreError::Conflict { .. } => StoreError::Conflict {
                        what: "a bot with this name",
                    },
                    other => other,
                })?;
            Ok(Bot {
                id: BotId(connection.last_insert_rowid()),
                account_id,
                name,
                kind,
            })
        })
        .await
    }

    async fn bot(&self, account_id: AccountId, bot_id: BotId) -> StoreResult<Option<Bot>> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM bots WHERE id = ?1 AND account_id = ?2")?
                .query_row([bot_id.0, account_id.0], bot_from_row)
                .optional()
        })
        .await
    }

    async fn bot_by_name(&self, account_id: AccountId, name: &str) -> StoreResult<Option<Bot>> {
        let name = name.to_string();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM bots WHERE account_id = ?1 AND name = ?2")?
                .query_row(params![account_id.0, name], bot_from_row)
                .optional()
        })
        .await
    }

    async fn delete_bot(&self, account_id: AccountId, bot_id: BotId) -> StoreResult<bool> {
        self.write(move |connection| {
            let deleted = connection
                .execute(
                    "DELETE FROM bots WHERE id = ?1 AND account_id = ?2",
                    [bot_id.0, account_id.0],
                )
                .map_err(from_sqlite)?;
            connection
                .execute(
                    "UPDATE inboxes SET bot_id = NULL WHERE bot_id = ?1 AND account_id = ?2",
                    [bot_id.0, account_id.0],
                )
                .map_err(from_sqlite)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn create_inbox(
        &self,
        account_id: AccountId,
        name: &str,
        identifier: &str,
        bot_id: Option<BotId>,
    ) -> StoreResult<Inbox> {
        let (name, identifier) = (name.to_string(), identifier.to_string());
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO inboxes (account_id, name, identifier, bot_id) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![account_id.0, name, identifier, bot_id.map(|id| id.0)],
                )
                .map_err(from_sqlite)?;
            Ok(Inbox {
                id: InboxId(connection.last_insert_rowid()),
                account_id,
                name,
                identifier,
                bot_id,
            })
        })
        .await
    }

    async fn inboxes(&self, account_id: AccountId) -> StoreResult<Vec<Inbox>> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM inboxes WHERE account_id = ?1 ORDER BY id")?
                .query_map([account_id.0], inbox_from_row)?
                .collect()
        })
        .await
    }

    async fn start_session(&self, session: NewSession) -> StoreResult<Session> {
        self.write(move |connection| {
            let inbox_ok: bool = connection
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM inboxes WHERE id = ?1 AND account_id = ?2)",
                    [session.inbox_id.0, session.account_id.0],
                    |row| row.get(0),
                )
                .map_err(from_sqlite)?;
            if !inbox_ok {
                return Err(StoreError::NotFound { what: "inbox" });
            }
            let visitor = &session.visitor;
            connection
                .execute(
                    "INSERT INTO contacts (account_id, name, email, phone_number, identifier, \
                     created_at, pubsub_token_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        session.account_id.0,
                        visitor.name,
                        visitor.email,
                        visitor.phone_number,
                        visitor.identifier,
                        session.created_at,
                        session.contact_token_hash
                    ],
                )
                .map_err(from_sqlite)?;
            let contact_id = ContactId(connection.last_insert_rowid());
            connection
                .execute(
                    "INSERT INTO conversations (account_id, inbox_id, contact_id, status, \
                     created_at, updated_at) VALUES (?1, ?2, ?3, 'open', ?4, ?4)",
                    params![
                        session.account_id.0,
                        session.inbox_id.0,
                        contact_id.0,
                        session.created_at
                    ],
                )
                .map_err(from_sqlite)?;
            let conversation_id = ConversationId(connection.last_insert_rowid());
            connection
                .execute(
                    "INSERT INTO sessions (id, account_id, bot_id, contact_id, conversation_id, \
                     created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        session.id.0,
                        session.account_id.0,
                        session.bot_id.0,
                        contact_id.0,
                        conversation_id.0,
                        session.created_at,
                        session.expires_at
                    ],
                )
                .map_err(from_sqlite)?;
            Ok(Session {
                id: session.id,
                account_id: session.account_id,
                bot_id: session.bot_id,
                contact_id,
                conversation_id,
                created_at: session.created_at,
                expires_at: session.expires_at,
                ended_at: None,
            })
        })
        .await
    }

    async fn inbox_by_identifier(&self, identifier: &str) -> StoreResult<Option<Inbox>> {
        let identifier = identifier.to_string();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM inboxes WHERE identifier = ?1")?
                .query_row([identifier], inbox_from_row)
                .optional()
        })
        .await
    }

    async fn create_contact_inbox(
        &self,
        contact: NewContactInbox,
    ) -> StoreResult<(Contact, ContactInbox)> {
        self.write(move |connection| {
            let taken: bool = connection
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM contact_inboxes WHERE inbox_id = ?1 \
                     AND source_id = ?2)",
                    params![contact.inbox_id.0, contact.source_id],
                    |row| row.get(0),
                )
                .map_err(from_sqlite)?;
            if taken {
                return Err(StoreError::Conflict {
                    what: "contact source_id",
                });
            }
            let details = &contact.details;
            connection
                .execute(
                    "INSERT INTO contacts (account_id, name, email, phone_number, identifier, \
                     created_at, pubsub_token_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        contact.account_id.0,
                        details.name,
                        details.email,
                        details.phone_number,
                        details.identifier,
                        contact.now,
                        contact.pubsub_token_hash
                    ],
                )
                .map_err(from_sqlite)?;
            let contact_id = ContactId(connection.last_insert_rowid());
            connection
                .execute(
                    "INSERT INTO contact_inboxes (account_id, contact_id, inbox_id, source_id, \
                     pubsub_token, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![
                        contact.account_id.0,
                        contact_id.0,
                        contact.inbox_id.0,
                        contact.source_id,
                        contact.pubsub_token,
                        contact.now
                    ],
                )
                .map_err(from_sqlite)?;
            let contact_inbox = ContactInbox {
                id: connection.last_insert_rowid(),
                contact_id,
                inbox_id: contact.inbox_id,
                source_id: contact.source_id,
                pubsub_token: contact.pubsub_token,
                created_at: contact.now,
                updated_at: contact.now,
            };
            Ok((
                Contact {
                    id: contact_id,
                    account_id: contact.account_id,
                    details: contact.details,
                    created_at: contact.now,
                },
                contact_inbox,
            ))
        })
        .await
    }

    async fn contact_inbox(
        &self,
        inbox_id: InboxId,
        source_id: &str,
    ) -> StoreResult<Option<(Contact, ContactInbox)>> {
        let source_id = source_id.to_string();
        self.read(move |connection| {
            let found = connection
                .prepare_cached(
                    "SELECT * FROM contact_inboxes WHERE inbox_id = ?1 AND source_id = ?2",
                )?
                .query_row(params![inbox_id.0, source_id], contact_inbox_from_row)
                .optional()?;
            let Some(contact_inbox) = found else {
                return Ok(None);
            };
            let contact = connection
                .prepare_cached("SELECT * FROM contacts WHERE id = ?1")?
                .query_row([contact_inbox.contact_id.0], contact_from_row)?;
            Ok(Some((contact, contact_inbox)))
        })
        .await
    }

    async fn contact_inbox_of(
        &self,
        inbox_id: InboxId,
        contact_id: ContactId,
    ) -> StoreResult<Option<ContactInbox>> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT * FROM contact_inboxes WHERE inbox_id = ?1 AND contact_id = ?2 \
                     ORDER BY id LIMIT 1",
                )?
                .query_row(params![inbox_id.0, contact_id.0], contact_inbox_from_row)
                .optional()
        })
        .await
    }

    async fn create_conversation(
        &self,
        account_id: AccountId,
        inbox_id: InboxId,
        contact_id: ContactId,
        now: UnixMillis,
    ) -> StoreResult<Conversation> {
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO conversations (account_id, inbox_id, contact_id, status, \
                     created_at, updated_at) VALUES (?1, ?2, ?3, 'open', ?4, ?4)",
                    params![account_id.0, inbox_id.0, contact_id.0, now],
                )
                .map_err(from_sqlite)?;
            let id = connection.last_insert_rowid();
            connection
                .prepare_cached("SELECT * FROM conversations WHERE id = ?1")
                .and_then(|mut statement| statement.query_row([id], conversation_from_row))
                .map_err(from_sqlite)
        })
        .await
    }

    async fn contact_conversations(
        &self,
        inbox_id: InboxId,
        contact_id: ContactId,
    ) -> StoreResult<Vec<Conversation>> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT * FROM conversations WHERE contact_id = ?1 AND inbox_id = ?2 ORDER BY id",
                )?
                .query_map(params![contact_id.0, inbox_id.0], conversation_from_row)?
                .collect()
        })
        .await
    }

    async fn agent_by_pubsub_token(&self, token: &str) -> StoreResult<Option<Agent>> {
        let token = token.to_string();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM agents WHERE pubsub_token = ?1")?
                .query_row([token], agent_from_row)
                .optional()
        })
        .await
    }

    async fn session(&self, session_id: &SessionId) -> StoreResult<Option<Session>> {
        let session_id = session_id.clone();
        self.read(move |connection| session_by_id(connection, &session_id))
            .await
    }

    async fn end_session(
        &self,
        session_id: &SessionId,
        now: UnixMillis,
    ) -> StoreResult<Option<Session>> {
        let session_id = session_id.clone();
        self.write(move |connection| {
            connection
                .execute(
                    "UPDATE sessions SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL",
                    params![session_id.0, now],
                )
                .map_err(from_sqlite)?;
            session_by_id(connection, &session_id).map_err(from_sqlite)
        })
        .await
    }

    async fn conversation(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        self.read(move |connection| conversation_by_id(connection, conversation_id))
            .await
    }

    async fn append_message(&self, message: NewMessage) -> StoreResult<Appended> {
        // The job's own savepoint undoes a failed attempt; a repeat is answered after the
        // commit, from a reader (the original is committed by then).
        let key = RepeatKey::of(&message);
        let appended = self
            .write(move |connection| try_append(connection, message))
            .await;
        match (appended, key) {
            (Err(StoreError::Conflict { .. }), Some(key)) => {
                self.read(move |connection| original(connection, &key))
                    .await
            }
            (appended, _) => appended,
        }
    }

    async fn append_messages(
        &self,
        messages: Vec<NewMessage>,
    ) -> StoreResult<Vec<StoreResult<Appended>>> {
        if messages.len() == 1 {
            let message = messages.into_iter().next().expect("one message");
            return Ok(vec![self.append_message(message).await]);
        }
        self.write(move |connection| {
            // Each in its own savepoint, nested in the job's: one failure rolls back only
            // itself (and its seq).
            Ok(messages
                .into_iter()
                .map(|message| append(connection, message))
                .collect())
        })
        .await
    }

    async fn messages_after(
        &self,
        conversation_id: ConversationId,
        after_seq: Seq,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT * FROM messages WHERE conversation_id = ?1 AND seq > ?2 \
                     ORDER BY seq LIMIT ?3",
                )?
                .query_map(
                    params![conversation_id.0, after_seq, limit],
                    message_from_row,
                )?
                .collect()
        })
        .await
    }

    async fn mark_read(
        &self,
        conversation_id: ConversationId,
        side: ReadSide,
        seq: Seq,
    ) -> StoreResult<Conversation> {
        self.write(move |connection| {
            let sql = match side {
                ReadSide::Contact => {
                    "UPDATE conversations SET contact_last_read_seq = \
                     MAX(contact_last_read_seq, MIN(?2, last_seq)) WHERE id = ?1"
                }
                ReadSide::Agent => {
                    "UPDATE conversations SET agent_last_read_seq = \
                     MAX(agent_last_read_seq, MIN(?2, last_seq)) WHERE id = ?1"
                }
            };
            connection
                .execute(sql, params![conversation_id.0, seq])
                .map_err(from_sqlite)?;
            let read = conversation_by_id(connection, conversation_id)
                .map_err(from_sqlite)?
                .ok_or(StoreError::NotFound {
                    what: "conversation",
                })?;
            let (read_seq, update_sql) = match side {
                ReadSide::Contact => (
                    read.contact_last_read_seq,
                    "UPDATE conversations SET unread_by_contact = ?2 WHERE id = ?1",
                ),
                ReadSide::Agent => (
                    read.agent_last_read_seq,
                    "UPDATE conversations SET unread_by_agents = ?2 WHERE id = ?1",
                ),
            };
            let unread: i64 = connection
                .prepare_cached(&unread_count_sql(side))
                .and_then(|mut statement| {
                    statement.query_row(params![conversation_id.0, read_seq], |row| row.get(0))
                })
                .map_err(from_sqlite)?;
            connection
                .execute(update_sql, params![conversation_id.0, unread])
                .map_err(from_sqlite)?;
            conversation_by_id(connection, conversation_id)
                .map_err(from_sqlite)?
                .ok_or(StoreError::NotFound {
                    what: "conversation",
                })
        })
        .await
    }

    async fn record_iframe_event(&self, event: IframeEvent) -> StoreResult<()> {
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO iframe_events (account_id, session_id, conversation_id, event, \
                     selector, url, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        event.account_id.0,
                        event.session_id.0,
                        event.conversation_id.0,
                        event.event,
                        event.selector,
                        event.url,
                        event.created_at
                    ])
                })
                .map_err(from_sqlite)?;
            Ok(())
        })
        .await
    }

    async fn put_token(
        &self,
        kind: &str,
        token_hash: &str,
        payload: &str,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let (kind, token_hash, payload) = (
            kind.to_string(),
            token_hash.to_string(),
            payload.to_string(),
        );
        self.write(move |connection| {
            connection
                .prepare_cached("DELETE FROM single_use_tokens WHERE expires_at <= ?1")
                .and_then(|mut statement| statement.execute([now]))
                .map_err(from_sqlite)?;
            connection
                .prepare_cached(
                    "INSERT INTO single_use_tokens (kind, token_hash, payload, expires_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut statement| {
                    statement.execute(params![kind, token_hash, payload, expires_at])
                })
                .map_err(from_sqlite)?;
            Ok(())
        })
        .await
    }

    async fn take_token(
        &self,
        kind: &str,
        token_hash: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<String>> {
        let (kind, token_hash) = (kind.to_string(), token_hash.to_string());
        self.write(move |connection| {
            let taken: Option<(String, UnixMillis)> = connection
                .prepare_cached(
                    "DELETE FROM single_use_tokens WHERE kind = ?1 AND token_hash = ?2 \
                     RETURNING payload, expires_at",
                )
                .and_then(|mut statement| {
                    statement
                        .query_row(params![kind, token_hash], |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })
                        .optional()
                })
                .map_err(from_sqlite)?;
            Ok(taken
                .filter(|(_, expires_at)| *expires_at > now)
                .map(|(payload, _)| payload))
        })
        .await
    }

    async fn put_upload(
        &self,
        token_hash: &str,
        upload: &UploadRecord,
        now: UnixMillis,
    ) -> StoreResult<()> {
        let (token_hash, columns) = (token_hash.to_string(), UploadColumns::of(upload));
        self.write(move |connection| {
            connection
                .prepare_cached("DELETE FROM uploads WHERE expires_at <= ?1")
                .and_then(|mut statement| statement.execute([now]))
                .map_err(from_sqlite)?;
            connection
                .prepare_cached(
                    "INSERT INTO uploads \
                     (token_hash, owner, conversation_id, stage, attachment, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        token_hash,
                        columns.owner,
                        columns.conversation_id,
                        columns.stage,
                        columns.attachment,
                        columns.expires_at
                    ])
                })
                .map_err(from_sqlite)?;
            Ok(())
        })
        .await
    }

    async fn upload(&self, token_hash: &str) -> StoreResult<Option<UploadRecord>> {
        let token_hash = token_hash.to_string();
        let row: Option<UploadRow> = self
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT owner, conversation_id, stage, attachment, expires_at \
                         FROM uploads WHERE token_hash = ?1",
                    )?
                    .query_row([token_hash], |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    })
                    .optional()
            })
            .await?;
        row.map(UploadColumns::record).transpose()
    }

    async fn advance_upload(
        &self,
        token_hash: &str,
        from: &UploadStage,
        to: &UploadStage,
        expires_at: UnixMillis,
    ) -> StoreResult<bool> {
        let (token_hash, from, stage, attachment) = (
            token_hash.to_string(),
            from.name(),
            to.name(),
            to.attachment_json(),
        );
        self.write(move |connection| {
            let changed = connection
                .prepare_cached(
                    "UPDATE uploads SET stage = ?3, attachment = ?4, expires_at = ?5 \
                     WHERE token_hash = ?1 AND stage = ?2",
                )
                .and_then(|mut statement| {
                    statement.execute(params![token_hash, from, stage, attachment, expires_at])
                })
                .map_err(from_sqlite)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn agent_by_access_token_hash(&self, token_hash: &str) -> StoreResult<Option<Agent>> {
        let token_hash = token_hash.to_string();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM agents WHERE access_token_hash = ?1")?
                .query_row([token_hash], agent_from_row)
                .optional()
        })
        .await
    }

    async fn agent(&self, account_id: AccountId, agent_id: AgentId) -> StoreResult<Option<Agent>> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM agents WHERE id = ?1 AND account_id = ?2")?
                .query_row([agent_id.0, account_id.0], agent_from_row)
                .optional()
        })
        .await
    }

    async fn agents(&self, account_id: AccountId) -> StoreResult<Vec<Agent>> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM agents WHERE account_id = ?1 ORDER BY id")?
                .query_map([account_id.0], agent_from_row)?
                .collect()
        })
        .await
    }

    async fn set_availability(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        availability: Availability,
    ) -> StoreResult<Agent> {
        self.write(move |connection| {
            connection
                .execute(
                    "UPDATE agents SET availability = ?3 WHERE id = ?1 AND account_id = ?2",
                    params![agent_id.0, account_id.0, availability.as_str()],
                )
                .map_err(from_sqlite)?;
            connection
                .prepare_cached("SELECT * FROM agents WHERE id = ?1 AND account_id = ?2")
                .and_then(|mut statement| {
                    statement
                        .query_row([agent_id.0, account_id.0], agent_from_row)
                        .optional()
                })
                .map_err(from_sqlite)?
                .ok_or(StoreError::NotFound { what: "agent" })
        })
        .await
    }

    async fn rotate_agent_token(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        access_token_hash: &str,
        pubsub_token: &str,
    ) -> StoreResult<bool> {
        let (access, pubsub) = (access_token_hash.to_string(), pubsub_token.to_string());
        self.write(move |connection| {
            let changed = connection
                .execute(
                    "UPDATE agents SET access_token_hash = ?3, pubsub_token = ?4 \
                     WHERE id = ?1 AND account_id = ?2",
                    params![agent_id.0, account_id.0, access, pubsub],
                )
                .map_err(from_sqlite)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn rotate_account_key(
        &self,
        account_id: AccountId,
        kind: AccountKeyKind,
        key_hash: &str,
    ) -> StoreResult<()> {
        let key_hash = key_hash.to_string();
        self.write(move |connection| {
            let sql = match kind {
                AccountKeyKind::Api => "UPDATE accounts SET api_key_hash = ?2 WHERE id = ?1",
                AccountKeyKind::Publishable => {
                    "UPDATE accounts SET publishable_key_hash = ?2 WHERE id = ?1"
                }
            };
            let changed = connection
                .execute(sql, params![account_id.0, key_hash])
                .map_err(from_sqlite)?;
            if changed == 0 {
                return Err(StoreError::NotFound { what: "account" });
            }
            Ok(())
        })
        .await
    }

    async fn bots(&self, account_id: AccountId) -> StoreResult<Vec<Bot>> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM bots WHERE account_id = ?1 ORDER BY id")?
                .query_map([account_id.0], bot_from_row)?
                .collect()
        })
        .await
    }

    async fn inbox(&self, account_id: AccountId, inbox_id: InboxId) -> StoreResult<Option<Inbox>> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM inboxes WHERE id = ?1 AND account_id = ?2")?
                .query_row([inbox_id.0, account_id.0], inbox_from_row)
                .optional()
        })
        .await
    }

    async fn set_inbox_member(
        &self,
        account_id: AccountId,
        inbox_id: InboxId,
        agent_id: AgentId,
        member: bool,
    ) -> StoreResult<()> {
        self.write(move |connection| {
            let both_exist: bool = connection
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM inboxes WHERE id = ?1 AND account_id = ?3) \
                     AND EXISTS (SELECT 1 FROM agents WHERE id = ?2 AND account_id = ?3)",
                    [inbox_id.0, agent_id.0, account_id.0],
                    |row| row.get(0),
                )
                .map_err(from_sqlite)?;
            if !both_exist {
                return Err(StoreError::NotFound {
                    what: "inbox or agent",
                });
            }
            let sql = if member {
                "INSERT INTO inbox_members (inbox_id, agent_id, account_id) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM inbox_members WHERE inbox_id = ?1 AND agent_id = ?2 AND account_id = ?3"
            };
            connection
                .execute(sql, [inbox_id.0, agent_id.0, account_id.0])
                .map_err(from_sqlite)?;
            Ok(())
        })
        .await
    }

    async fn memberships(&self) -> StoreResult<Vec<(AgentId, InboxId)>> {
        self.read(|connection| {
            connection
                .prepare_cached("SELECT agent_id, inbox_id FROM inbox_members")?
                .query_map([], |row| Ok((AgentId(row.get(0)?), InboxId(row.get(1)?))))?
                .collect()
        })
        .await
    }

    async fn create_team(&self, account_id: AccountId, name: &str) -> StoreResult<Team> {
        let name = name.to_string();
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO teams (account_id, name) VALUES (?1, ?2)",
                    params![account_id.0, name],
                )
                .map_err(|error| match from_sqlite(error) {
                    StoreError::Conflict { .. } => StoreError::Conflict {
                        what: "a team with this name",
                    },
                    other => other,
                })?;
            Ok(Team {
                id: TeamId(connection.last_insert_rowid()),
                account_id,
                name,
            })
        })
        .await
    }

    async fn teams(&self, account_id: AccountId) -> StoreResult<Vec<Team>> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT id, account_id, name FROM teams WHERE account_id = ?1 ORDER BY id",
                )?
                .query_map([account_id.0], |row| {
                    Ok(Team {
                        id: TeamId(row.get(0)?),
                        account_id: AccountId(row.get(1)?),
                        name: row.get(2)?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn conversations(&self, filter: ConversationFilter) -> StoreResult<Vec<Conversation>> {
        self.read(move |connection| {
            let mut sql = String::from("SELECT * FROM conversations WHERE account_id = ?1");
            let mut values: Vec<rusqlite::types::Value> = vec![filter.account_id.0.into()];
            if let Some(status) = filter.status {
                values.push(status.as_str().to_string().into());
                sql.push_str(&format!(" AND status = ?{}", values.len()));
            }
            match filter.assignee {
                AssigneeFilter::All => {}
                AssigneeFilter::Unassigned => sql.push_str(" AND assignee_id IS NULL"),
                AssigneeFilter::Agent(agent_id) => {
                    values.push(agent_id.0.into());
                    sql.push_str(&format!(" AND assignee_id = ?{}", values.len()));
                }
            }
            if let Some(inboxes) = &filter.inbox_ids {
                if inboxes.is_empty() {
                    return Ok(Vec::new());
                }
                let list: Vec<String> = inboxes.iter().map(|id| id.0.to_string()).collect();
                sql.push_str(&format!(" AND inbox_id IN ({})", list.join(",")));
            }
            values.push(filter.before_id.map_or(i64::MAX, |id| id.0).into());
            sql.push_str(&format!(" AND id < ?{}", values.len()));
            values.push(i64::from(filter.limit).into());
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
            connection
                .prepare(&sql)?
                .query_map(rusqlite::params_from_iter(values), conversation_from_row)?
                .collect()
        })
        .await
    }

    async fn update_conversation(
        &self,
        conversation_id: ConversationId,
        change: ConversationChange,
        now: UnixMillis,
    ) -> StoreResult<(Conversation, bool)> {
        self.write(move |connection| {
            let before = conversation_by_id(connection, conversation_id)
                .map_err(from_sqlite)?
                .ok_or(StoreError::NotFound {
                    what: "conversation",
                })?;
            let (sql, value): (&str, rusqlite::types::Value) = match change {
                ConversationChange::Assignee(assignee) => (
                    "UPDATE conversations SET assignee_id = ?2, updated_at = ?3 WHERE id = ?1",
                    assignee.map(|id| id.0).into(),
                ),
                ConversationChange::Team(team) => (
                    "UPDATE conversations SET team_id = ?2, updated_at = ?3 WHERE id = ?1",
                    team.map(|id| id.0).into(),
                ),
                ConversationChange::Status(status) => (
                    "UPDATE conversations SET status = ?2, updated_at = ?3 WHERE id = ?1",
                    status.as_str().to_string().into(),
                ),
            };
            let changed = match change {
                ConversationChange::Assignee(assignee) => before.assignee_id != assignee,
                ConversationChange::Team(team) => before.team_id != team,
                ConversationChange::Status(status) => before.status != status,
            };
            if !changed {
                return Ok((before, false));
            }
            connection
                .execute(sql, params![conversation_id.0, value, now])
                .map_err(from_sqlite)?;
            let after = conversation_by_id(connection, conversation_id)
                .map_err(from_sqlite)?
                .ok_or(StoreError::NotFound {
                    what: "conversation",
                })?;
            Ok((after, true))
        })
        .await
    }

    async fn add_participant(
        &self,
        conversation_id: ConversationId,
        agent_id: AgentId,
    ) -> StoreResult<bool> {
        self.write(move |connection| {
            let added = connection
                .execute(
                    "INSERT INTO conversation_participants (conversation_id, agent_id) \
                     VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    [conversation_id.0, agent_id.0],
                )
                .map_err(from_sqlite)?;
            Ok(added > 0)
        })
        .await
    }

    async fn create_notification(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        kind: NotificationKind,
        conversation_id: ConversationId,
        now: UnixMillis,
    ) -> StoreResult<Notification> {
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO notifications (account_id, agent_id, kind, conversation_id, \
                     created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        account_id.0,
                        agent_id.0,
                        kind.as_str(),
                        conversation_id.0,
                        now
                    ],
                )
                .map_err(from_sqlite)?;
            Ok(Notification {
                id: NotificationId(connection.last_insert_rowid()),
                account_id,
                agent_id,
                kind,
                conversation_id,
                read_at: None,
                created_at: now,
            })
        })
        .await
    }

    async fn notifications(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT * FROM notifications WHERE account_id = ?1 AND agent_id = ?2 \
                     ORDER BY id DESC LIMIT ?3",
                )?
                .query_map(
                    params![account_id.0, agent_id.0, limit],
                    notification_from_row,
                )?
                .collect()
        })
        .await
    }

    async fn mark_notification_read(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
        notification_id: NotificationId,
        now: UnixMillis,
    ) -> StoreResult<Option<Notification>> {
        self.write(move |connection| {
            connection
                .execute(
                    "UPDATE notifications SET read_at = COALESCE(read_at, ?4) \
                     WHERE id = ?1 AND account_id = ?2 AND agent_id = ?3",
                    params![notification_id.0, account_id.0, agent_id.0, now],
                )
                .map_err(from_sqlite)?;
            connection
                .prepare_cached(
                    "SELECT * FROM notifications WHERE id = ?1 AND account_id = ?2 AND agent_id = ?3",
                )
                .and_then(|mut statement| {
                    statement
                        .query_row(
                            [notification_id.0, account_id.0, agent_id.0],
                            notification_from_row,
                        )
                        .optional()
                })
                .map_err(from_sqlite)
        })
        .await
    }

    async fn mark_delivered(
        &self,
        message_ids: Vec<MessageId>,
        now: UnixMillis,
    ) -> StoreResult<Vec<MessageId>> {
        self.write_as(Commit::Lazy, move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "UPDATE messages SET status = 'delivered', updated_at = ?2 \
                     WHERE id = ?1 AND status = 'sent'",
                )
                .map_err(from_sqlite)?;
            let mut changed = Vec::new();
            for message_id in message_ids {
                if statement
                    .execute(params![message_id.0, now])
                    .map_err(from_sqlite)?
                    > 0
                {
                    changed.push(message_id);
                }
            }
            Ok(changed)
        })
        .await
    }

    async fn mark_messages_read(
        &self,
        conversation_id: ConversationId,
        up_to_seq: Seq,
        reader: ReadSide,
        now: UnixMillis,
    ) -> StoreResult<Vec<Message>> {
        self.write(move |connection| {
            let sql = format!(
                "UPDATE messages SET status = 'read', updated_at = ?3 \
                 WHERE conversation_id = ?1 AND seq <= ?2 AND status != 'read' AND {} \
                 RETURNING *",
                unread_condition(reader.unread_rule())
            );
            let mut messages: Vec<Message> = connection
                .prepare_cached(&sql)
                .and_then(|mut statement| {
                    statement
                        .query_map(params![conversation_id.0, up_to_seq, now], message_from_row)?
                        .collect()
                })
                .map_err(from_sqlite)?;
            messages.sort_by_key(|message| message.seq);
            Ok(messages)
        })
        .await
    }

    async fn save_cursors(
        &self,
        cursors: Vec<(CursorOwner, ConversationId, Seq)>,
    ) -> StoreResult<()> {
        if cursors.is_empty() {
            return Ok(());
        }
        self.write_as(Commit::Lazy, move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "INSERT INTO delivery_cursors (owner_kind, owner_id, conversation_id, seq) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (owner_kind, owner_id, conversation_id) \
                     DO UPDATE SET seq = MAX(seq, excluded.seq)",
                )
                .map_err(from_sqlite)?;
            for (owner, conversation_id, seq) in cursors {
                let (kind, id) = cursor_owner(owner);
                statement
                    .execute(params![kind, id, conversation_id.0, seq])
                    .map_err(from_sqlite)?;
            }
            Ok(())
        })
        .await
    }

    async fn cursors_behind(&self, owner: CursorOwner) -> StoreResult<Vec<(ConversationId, Seq)>> {
        let (kind, id) = cursor_owner(owner);
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT d.conversation_id, d.seq FROM delivery_cursors d \
                     JOIN conversations c ON c.id = d.conversation_id \
                     WHERE d.owner_kind = ?1 AND d.owner_id = ?2 AND c.last_seq > d.seq \
                     ORDER BY d.conversation_id",
                )?
                .query_map(params![kind, id], |row| {
                    Ok((ConversationId(row.get(0)?), row.get(1)?))
                })?
                .collect()
        })
        .await
    }

    async fn create_transcript(
        &self,
        account_id: AccountId,
        title: &str,
        now: UnixMillis,
    ) -> StoreResult<Transcript> {
        let title = title.to_string();
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO transcripts (account_id, title, created_at) VALUES (?1, ?2, ?3)",
                    params![account_id.0, title, now],
                )
                .map_err(from_sqlite)?;
            Ok(Transcript {
                id: TranscriptId(connection.last_insert_rowid()),
                account_id,
                title,
                created_at: now,
            })
        })
        .await
    }

    async fn transcript(
        &self,
        account_id: AccountId,
        transcript_id: TranscriptId,
    ) -> StoreResult<Option<Transcript>> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM transcripts WHERE id = ?1 AND account_id = ?2")?
                .query_row(params![transcript_id.0, account_id.0], |row| {
                    Ok(Transcript {
                        id: TranscriptId(row.get("id")?),
                        account_id: AccountId(row.get("account_id")?),
                        title: row.get("title")?,
                        created_at: row.get("created_at")?,
                    })
                })
                .optional()
        })
        .await
    }

    async fn append_segment(
        &self,
        transcript_id: TranscriptId,
        speaker: &str,
        text: &str,
        start_ms: i64,
        end_ms: i64,
        now: UnixMillis,
    ) -> StoreResult<TranscriptSegment> {
        let (speaker, text) = (speaker.to_string(), text.to_string());
        self.write(move |connection| {
            let seq: Option<i64> = connection
                .prepare_cached(
                    "UPDATE transcripts SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
                )
                .and_then(|mut statement| {
                    statement
                        .query_row([transcript_id.0], |row| row.get(0))
                        .optional()
                })
                .map_err(from_sqlite)?;
            let seq = seq.ok_or(StoreError::NotFound { what: "transcript" })?;
            connection
                .prepare_cached(
                    "INSERT INTO transcript_segments (transcript_id, seq, speaker, text, start_ms, \
                     end_ms, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        transcript_id.0,
                        seq,
                        speaker,
                        text,
                        start_ms,
                        end_ms,
                        now
                    ])
                })
                .map_err(from_sqlite)?;
            Ok(TranscriptSegment {
                id: connection.last_insert_rowid(),
                transcript_id,
                seq,
                speaker,
                text,
                start_ms,
                end_ms,
                created_at: now,
            })
        })
        .await
    }

    async fn segments(&self, transcript_id: TranscriptId) -> StoreResult<Vec<TranscriptSegment>> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT * FROM transcript_segments WHERE transcript_id = ?1 ORDER BY seq",
                )?
                .query_map([transcript_id.0], |row| {
                    Ok(TranscriptSegment {
                        id: row.get("id")?,
                        transcript_id: TranscriptId(row.get("transcript_id")?),
                        seq: row.get("seq")?,
                        speaker: row.get("speaker")?,
                        text: row.get("text")?,
                        start_ms: row.get("start_ms")?,
                        end_ms: row.get("end_ms")?,
                        created_at: row.get("created_at")?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn cursor(
        &self,
        owner: CursorOwner,
        conversation_id: ConversationId,
    ) -> StoreResult<Option<Seq>> {
        let (kind, id) = cursor_owner(owner);
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT seq FROM delivery_cursors WHERE owner_kind = ?1 AND owner_id = ?2 \
                     AND conversation_id = ?3",
                )?
                .query_row(params![kind, id, conversation_id.0], |row| row.get(0))
                .optional()
        })
        .await
    }

    async fn contact(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
    ) -> StoreResult<Option<Contact>> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM contacts WHERE id = ?1 AND account_id = ?2")?
                .query_row([contact_id.0, account_id.0], contact_from_row)
                .optional()
        })
        .await
    }

    async fn update_contact(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
        details: ContactDetails,
    ) -> StoreResult<Option<Contact>> {
        self.write(move |connection| {
            connection
                .execute(
                    "UPDATE contacts SET name = ?3, email = ?4, phone_number = ?5, identifier = ?6 \
                     WHERE id = ?1 AND account_id = ?2",
                    params![
                        contact_id.0,
                        account_id.0,
                        details.name,
                        details.email,
                        details.phone_number,
                        details.identifier
                    ],
                )
                .map_err(from_sqlite)?;
            connection
                .prepare_cached("SELECT * FROM contacts WHERE id = ?1 AND account_id = ?2")
                .and_then(|mut statement| {
                    statement
                        .query_row([contact_id.0, account_id.0], contact_from_row)
                        .optional()
                })
                .map_err(from_sqlite)
        })
        .await
    }

    async fn contact_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Contact>> {
        let token_hash = token_hash.to_string();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM contacts WHERE pubsub_token_hash = ?1")?
                .query_row([token_hash], contact_from_row)
                .optional()
        })
        .await
    }

    async fn iframe_events(&self, session_id: &SessionId) -> StoreResult<Vec<IframeEvent>> {
        let session_id = session_id.clone();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT * FROM iframe_events WHERE session_id = ?1 ORDER BY id")?
                .query_map([&session_id.0], |row| {
                    Ok(IframeEvent {
                        account_id: AccountId(row.get("account_id")?),
                        session_id: SessionId(row.get("session_id")?),
                        conversation_id: ConversationId(row.get("conversation_id")?),
                        event: row.get("event")?,
                        selector: row.get("selector")?,
                        url: row.get("url")?,
                        created_at: row.get("created_at")?,
                    })
                })?
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `synchronous` setting a write of `commit` runs under.
    async fn sync_seen(store: &SqliteStore, commit: Commit) -> i64 {
        store
            .write_as(commit, |connection| {
                connection
                    .query_row("PRAGMA synchronous", [], |row| row.get(0))
                    .map_err(from_sqlite)
            })
            .await
            .unwrap()
    }

    const NORMAL: i64 = 1;
    const FULL: i64 = 2;

    #[tokio::test]
    async fn lazy_writes_alone_commit_without_an_fsync_and_synced_ones_always_with_one() {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path().join("db"), Durability::Full).unwrap();
        assert_eq!(sync_seen(&store, Commit::Synced).await, FULL);
        assert_eq!(sync_seen(&store, Commit::Lazy).await, NORMAL);
        assert_eq!(sync_seen(&store, Commit::Lazy).await, NORMAL);
        assert_eq!(sync_seen(&store, Commit::Synced).await, FULL, "set back");

        let normal = SqliteStore::open(directory.path().join("db2"), Durability::Normal).unwrap();
        assert_eq!(sync_seen(&normal, Commit::Synced).await, NORMAL);
        assert_eq!(sync_seen(&normal, Commit::Lazy).await, NORMAL);
    }

    #[test]
    fn a_batch_with_any_synced_write_commits_as_configured() {
        let job = |commit| WriteJob {
            commit,
            run: Box::new(|_: &Connection| -> Completion { Box::new(|_| {}) }),
        };
        let mixed = [job(Commit::Lazy), job(Commit::Synced), job(Commit::Lazy)];
        assert_eq!(
            commit_durability(Durability::Full, &mixed),
            Durability::Full
        );
        let lazy = [job(Commit::Lazy), job(Commit::Lazy)];
        assert_eq!(
            commit_durability(Durability::Full, &lazy),
            Durability::Normal
        );
        assert_eq!(
            commit_durability(Durability::Normal, &mixed),
            Durability::Normal
        );
    }
}
