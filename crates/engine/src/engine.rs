//! The engine proper: credentials in, commands executed, events out.

use crate::bots;
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::credentials::{generate_secret, hash_secret, SessionTokens};
use crate::error::EngineError;
use crate::feed::Feed;
use crate::hub::Hub;
use crate::limiter::Limiter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use switchboard_bus::Bus;
use switchboard_core::policy::can_view_conversation;
use switchboard_core::session::{check_session_connect, SessionRefusal};
use switchboard_core::*;
use switchboard_store::{NewSession, ReadSide, Store};
use tokio::sync::{watch, Notify};

const SIGNING_SECRET_SETTING: &str = "session_signing_secret";

/// A new account and its keys, shown once.
#[derive(Clone, Debug)]
pub struct AccountCreated {
    pub account: Account,
    pub api_key: String,
    pub publishable_key: String,
}

/// A started demo session and the token its visitor connects with.
#[derive(Clone, Debug)]
pub struct SessionStarted {
    pub session: Session,
    pub token: String,
}

/// A socket admitted to a demo session.
#[derive(Clone, Debug)]
pub struct SessionJoin {
    pub principal: Principal,
    pub session: Session,
}

/// What a command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A message was stored (or, when `created` is false, was already stored under the same
    /// client message id).
    Message {
        message: Box<Message>,
        created: bool,
    },
    Done,
}

pub struct Engine {
    me: Weak<Engine>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    hub: Arc<Hub>,
    config: EngineConfig,
    clock: Clock,
    tokens: SessionTokens,
    limiter: Limiter,
    pub(crate) http: reqwest::Client,
    shutdown: watch::Sender<bool>,
    open_connections: AtomicUsize,
    connections_changed: Notify,
    /// Live typing indicators and the generation of their latest refresh; a timer turns an
    /// indicator off when no refresh came within `typing_timeout`. A std lock: never held
    /// across an await.
    typing: Mutex<HashMap<(ConversationId, Actor), u64>>,
    typing_generation: AtomicU64,
}

/// Counts a live connection for as long as it is held.
pub struct ConnectionGuard {
    engine: Arc<Engine>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.engine.open_connections.fetch_sub(1, Ordering::SeqCst);
        self.engine.connections_changed.notify_waiters();
    }
}

impl Engine {
    /// Starts an engine on `store` and `bus`: loads (or creates) the token signing secret and
    /// joins the hub to the bus.
    pub async fn start(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        config: EngineConfig,
    ) -> Result<Arc<Engine>, EngineError> {
        let secret = store
            .put_setting_if_absent(SIGNING_SECRET_SETTING, &generate_secret(""))
            .await?;
        let hub = Hub::new();
        let receiving_hub = hub.clone();
        bus.subscribe(Arc::new(move |event: Arc<Event>| {
            receiving_hub.deliver(event)
        }));
        let http = reqwest::Client::builder()
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                EngineError::Store(switchboard_store::StoreError::Backend(Box::new(error)))
            })?;
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            store,
            bus,
            hub,
            limiter: Limiter::new(config.rate_rules),
            config,
            clock: Clock::system(),
            tokens: SessionTokens::new(&secret),
            http,
            shutdown,
            open_connections: AtomicUsize::new(0),
            connections_changed: Notify::new(),
            typing: Mutex::new(HashMap::new()),
            typing_generation: AtomicU64::new(0),
        }))
    }

    fn arc(&self) -> Arc<Engine> {
        self.me
            .upgrade()
            .expect("the engine is alive while it is used")
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Succeeds when the store and the bus answer.
    pub async fn ready(&self) -> Result<(), EngineError> {
        self.store.ping().await?;
        self.bus.ping().await?;
        Ok(())
    }

    // ----- lifecycle -------------------------------------------------------------------

    /// A receiver that turns true when the server is shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every connection to go away (they close with 1001).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Registers a live connection; the count falls when the guard is dropped.
    pub fn track_connection(&self) -> ConnectionGuard {
        self.open_connections.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard { engine: self.arc() }
    }

    pub fn n_open_connections(&self) -> usize {
        self.open_connections.load(Ordering::SeqCst)
    }

    /// Waits until every connection has closed, or `limit` has passed.
    pub async fn connections_drained(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.connections_changed.notified();
            if self.n_open_connections() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.n_open_connections() == 0;
            }
        }
    }

    // ----- accounts and credentials ------------------------------------------------------

    pub async fn create_account(&self, name: &str) -> Result<AccountCreated, EngineError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(DomainError::InvalidField {
                field: "name",
                reason: "must not be empty",
            }
            .into());
        }
        let api_key = generate_secret("sb_api_");
        let publishable_key = generate_secret("sb_pub_");
        let account = self
            .store
            .create_account(
                name,
                &hash_secret(&api_key),
                &hash_secret(&publishable_key),
                self.clock.now_ms(),
            )
            .await?;
        Ok(AccountCreated {
            account,
            api_key,
            publishable_key,
        })
    }

    /// The principal an account key (API or publishable) stands for.
    pub async fn authenticate_key(&self, bearer: Option<&str>) -> Result<Principal, EngineError> {
        let bearer = bearer
            .filter(|key| !key.is_empty())
            .ok_or(EngineError::Unauthenticated)?;
        let (account, kind) = self
            .store
            .account_by_key_hash(&hash_secret(bearer))
            .await?
            .ok_or(EngineError::Unauthenticated)?;
        Ok(match kind {
            AccountKeyKind::Api => Principal::Integration {
                account_id: account.id,
            },
            AccountKeyKind::Publishable => Principal::Publishable {
                account_id: account.id,
            },
        })
    }

    // ----- demo sessions -----------------------------------------------------------------

    /// Starts a demo session with the bot named `agent_name`: creates its contact and
    /// conversation and signs its token.
    pub async fn start_session(
        &self,
        principal: &Principal,
        agent_name: &str,
        visitor: ContactDetails,
    ) -> Result<SessionStarted, EngineError> {
        let account_id = match principal {
            Principal::Integration { account_id } | Principal::Publishable { account_id } => {
                *account_id
            }
            _ => return Err(DomainError::Forbidden.into()),
        };
        let bot = self
            .store
            .bot_by_name(account_id, agent_name)
            .await?
            .ok_or_else(|| EngineError::AgentNotFound {
                name: agent_name.to_string(),
            })?;
        let inboxes = self.store.inboxes(account_id).await?;
        let inbox = inboxes
            .iter()
            .find(|inbox| inbox.bot_id == Some(bot.id))
            .or(inboxes.first())
            .ok_or(DomainError::NotFound)?;
        let now = self.clock.now_ms();
        let session = self
            .store
            .start_session(NewSession {
                id: SessionId(generate_secret("sess_")),
                account_id,
                inbox_id: inbox.id,
                bot_id: bot.id,
                visitor,
                created_at: now,
                expires_at: now + self.config.session_ttl.as_millis() as i64,
            })
            .await?;
        let token = self.tokens.issue(&session, &self.clock);
        if let switchboard_core::bot::BotKind::Scripted(rules) = &bot.kind {
            if let Some(greeting) = rules.greeting.clone() {
                let engine = self.arc();
                let session = session.clone();
                // The greeting is the conversation's first message, stored before the visitor
                // can connect, so a client that resumes from 0 sees it.
                engine
                    .store_bot_reply(
                        &session.conversation_id,
                        account_id,
                        &bot,
                        greeting,
                        "greeting".into(),
                    )
                    .await?;
            }
        }
        Ok(SessionStarted { session, token })
    }

    /// Ends a demo session; its sockets close normally.
    pub async fn end_session(
        &self,
        principal: &Principal,
        session_id: &SessionId,
    ) -> Result<Session, EngineError> {
        let session = self
            .store
            .session(session_id)
            .await?
            .filter(|session| session.account_id == principal.account_id())
            .ok_or(DomainError::NotFound)?;
        if !matches!(
            principal,
            Principal::Integration { .. } | Principal::Publishable { .. }
        ) {
            return Err(DomainError::Forbidden.into());
        }
        let ended = self
            .store
            .end_session(&session.id, self.clock.now_ms())
            .await?
            .ok_or(DomainError::NotFound)?;
        self.publish(Event {
            account_id: ended.account_id,
            kind: EventKind::SessionEnded {
                session_id: ended.id.clone(),
                conversation_id: ended.conversation_id,
            },
        })
        .await?;
        Ok(ended)
    }

    /// Runs the connect checks of a session socket in their contractual order.
    pub async fn join_session(
        &self,
        session_id: &str,
        token: Option<&str>,
    ) -> Result<SessionJoin, SessionRefusal> {
        let presented = self.tokens.verify(token);
        let requested = SessionId(session_id.to_string());
        let needs_lookup = matches!(
            presented,
            switchboard_core::session::PresentedToken::Verified(_)
        );
        let session = if needs_lookup {
            match self.store.session(&requested).await {
                Ok(session) => session,
                Err(error) => {
                    tracing::error!(%error, "session lookup failed");
                    None
                }
            }
        } else {
            None
        };
        check_session_connect(
            &presented,
            &requested,
            session.as_ref(),
            self.clock.now_ms(),
        )?;
        let session = session.ok_or(SessionRefusal::SessionNotFound)?;
        Ok(SessionJoin {
            principal: Principal::SessionVisitor {
                account_id: session.account_id,
                session_id: session.id.clone(),
                contact_id: session.contact_id,
                conversation_id: session.conversation_id,
                bot_id: session.bot_id,
            },
            session,
        })
    }

    /// Whether a session is still usable now (not ended, not expired).
    pub async fn session_is_live(&self, session_id: &SessionId) -> bool {
        matches!(self.store.session(session_id).await, Ok(Some(session)) if !session.is_over(self.clock.now_ms()))
    }

    // ----- conversations ------------------------------------------------------------------

    async fn visible_conversation(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
    ) -> Result<Conversation, EngineError> {
        self.store
            .conversation(conversation_id)
            .await?
            .filter(|conversation| can_view_conversation(principal, conversation))
            .ok_or_else(|| DomainError::NotFound.into())
    }

    /// Authorises `principal` on the conversation without a store read when the principal
    /// itself proves it (a session visitor is bound to one conversation).
    async fn authorise(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
    ) -> Result<(), EngineError> {
        match principal {
            Principal::SessionVisitor {
                conversation_id: own,
                ..
            } if *own == conversation_id => Ok(()),
            Principal::SessionVisitor { .. } | Principal::Publishable { .. } => {
                Err(DomainError::NotFound.into())
            }
            _ => self
                .visible_conversation(principal, conversation_id)
                .await
                .map(|_| ()),
        }
    }

    /// Stored messages after `after_seq`, at most `limit`, for a principal allowed to read the
    /// conversation. Private notes are included: callers filter with the audience rules.
    pub(crate) async fn page_after(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
        after_seq: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, EngineError> {
        self.authorise(principal, conversation_id).await?;
        Ok(self
            .store
            .messages_after(conversation_id, after_seq, limit)
            .await?)
    }

    /// Opens a conversation feed for a connection: subscribes first, so nothing published
    /// from now on is missed, and sets the cursor at `last_seq` (what the client already has)
    /// or, when the client does not say, at the newest message.
    pub async fn open_feed(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
        last_seq: Option<Seq>,
    ) -> Result<Feed, EngineError> {
        self.authorise(principal, conversation_id).await?;
        let subscription = self.hub.subscribe(
            principal.clone(),
            Topic::Conversation(conversation_id),
            self.config.outbound_queue,
        );
        let newest = self
            .store
            .conversation(conversation_id)
            .await?
            .ok_or(DomainError::NotFound)?
            .last_seq;
        let start = last_seq.map_or(newest, |seq| seq.clamp(0, newest));
        Ok(Feed::new(
            self.arc(),
            principal.clone(),
            conversation_id,
            subscription,
            start,
        ))
    }

    async fn publish(&self, event: Event) -> Result<(), EngineError> {
        self.bus.publish(Arc::new(event)).await?;
        Ok(())
    }

    /// Executes one command of `principal`: rate limits, validation, authorisation, storage,
    /// then the events.
    pub async fn execute(
        &self,
        principal: &Principal,
        command: Command,
    ) -> Result<Outcome, EngineError> {
        self.limiter.check(principal, command.bucket())?;
        let conversation_id = command.conversation_id();
        match command {
            Command::SendMessage {
                content,
                client_message_id,
                private,
                ..
            } => {
                message::validate_text(&content, self.config.max_message_bytes)?;
                if let Some(id) = &client_message_id {
                    message::validate_client_message_id(id)?;
                }
                if private && principal.is_visitor() {
                    return Err(DomainError::Forbidden.into());
                }
                self.authorise(principal, conversation_id).await?;
                let sender = principal.sender().ok_or(DomainError::Forbidden)?;
                let message_type = if principal.is_visitor() {
                    MessageType::Incoming
                } else {
                    MessageType::Outgoing
                };
                let appended = self
                    .store
                    .append_message(NewMessage {
                        account_id: principal.account_id(),
                        conversation_id,
                        sender,
                        message_type,
                        content_type: ContentType::Text,
                        content,
                        attributes: MessageAttributes::default(),
                        private,
                        client_message_id,
                        created_at: self.clock.now_ms(),
                    })
                    .await?;
                if appended.created {
                    self.publish(Event {
                        account_id: principal.account_id(),
                        kind: EventKind::MessageCreated(appended.message.clone()),
                    })
                    .await?;
                    if let Principal::SessionVisitor { bot_id, .. } = principal {
                        bots::answer_in_background(self.arc(), *bot_id, appended.message.clone());
                    }
                }
                Ok(Outcome::Message {
                    message: Box::new(appended.message),
                    created: appended.created,
                })
            }
            Command::SetTyping { is_typing, .. } => {
                self.authorise(principal, conversation_id).await?;
                let actor = match principal {
                    Principal::Agent { agent_id, .. } => Actor::Agent(*agent_id),
                    _ => Actor::Contact(principal.contact_id().ok_or(DomainError::Forbidden)?),
                };
                let kind = if is_typing {
                    self.arm_typing_timer(conversation_id, actor.clone(), principal.account_id());
                    EventKind::TypingOn {
                        conversation_id,
                        actor,
                        private: false,
                    }
                } else {
                    self.typing
                        .lock()
                        .expect("typing poisoned")
                        .remove(&(conversation_id, actor.clone()));
                    EventKind::TypingOff {
                        conversation_id,
                        actor,
                    }
                };
                self.publish(Event {
                    account_id: principal.account_id(),
                    kind,
                })
                .await?;
                Ok(Outcome::Done)
            }
            Command::MarkRead { seq, .. } => {
                if seq < 0 {
                    return Err(DomainError::InvalidField {
                        field: "seq",
                        reason: "must not be negative",
                    }
                    .into());
                }
                self.authorise(principal, conversation_id).await?;
                let (side, reader) = match principal {
                    Principal::Agent { agent_id, .. } => (ReadSide::Agent, Actor::Agent(*agent_id)),
                    _ => (
                        ReadSide::Contact,
                        Actor::Contact(principal.contact_id().ok_or(DomainError::Forbidden)?),
                    ),
                };
                let conversation = self.store.mark_read(conversation_id, side, seq).await?;
                let read_seq = match side {
                    ReadSide::Contact => conversation.contact_last_read_seq,
                    ReadSide::Agent => conversation.agent_last_read_seq,
                };
                self.publish(Event {
                    account_id: principal.account_id(),
                    kind: EventKind::ConversationRead {
                        conversation_id,
                        reader,
                        seq: read_seq,
                    },
                })
                .await?;
                Ok(Outcome::Done)
            }
            Command::RecordIframeEvent {
                event,
                selector,
                url,
                ..
            } => {
                let Principal::SessionVisitor { session_id, .. } = principal else {
                    return Err(DomainError::Forbidden.into());
                };
                self.authorise(principal, conversation_id).await?;
                if event.trim().is_empty() {
                    return Err(DomainError::InvalidField {
                        field: "event",
                        reason: "must not be empty",
                    }
                    .into());
                }
                self.store
                    .record_iframe_event(IframeEvent {
                        account_id: principal.account_id(),
                        session_id: session_id.clone(),
                        conversation_id,
                        event,
                        selector,
                        url,
                        created_at: self.clock.now_ms(),
                    })
                    .await?;
                Ok(Outcome::Done)
            }
        }
    }

    /// Turns `actor`'s typing indicator off after `typing_timeout` unless it is refreshed or
    /// turned off before then.
    fn arm_typing_timer(
        &self,
        conversation_id: ConversationId,
        actor: Actor,
        account_id: AccountId,
    ) {
        let generation = self.typing_generation.fetch_add(1, Ordering::Relaxed);
        let key = (conversation_id, actor);
        self.typing
            .lock()
            .expect("typing poisoned")
            .insert(key.clone(), generation);
        let engine = self.arc();
        let timeout = self.config.typing_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let expired = {
                let mut typing = engine.typing.lock().expect("typing poisoned");
                if typing.get(&key) == Some(&generation) {
                    typing.remove(&key);
                    true
                } else {
                    false
                }
            };
            if expired {
                let (conversation_id, actor) = key;
                let event = Event {
                    account_id,
                    kind: EventKind::TypingOff {
                        conversation_id,
                        actor,
                    },
                };
                if let Err(error) = engine.publish(event).await {
                    tracing::warn!(%error, "could not publish a typing timeout");
                }
            }
        });
    }

    // ----- bots ----------------------------------------------------------------------------

    /// Stores a bot's reply (idempotently, keyed by what it answers) and publishes it.
    pub(crate) async fn store_bot_reply(
        &self,
        conversation_id: &ConversationId,
        account_id: AccountId,
        bot: &Bot,
        reply: switchboard_core::bot::BotReply,
        answers: String,
    ) -> Result<Message, EngineError> {
        let appended = self
            .store
            .append_message(NewMessage {
                account_id,
                conversation_id: *conversation_id,
                sender: Sender::Bot {
                    id: bot.id,
                    name: bot.name.clone(),
                },
                message_type: MessageType::Outgoing,
                content_type: if reply.lead_form.is_some() {
                    ContentType::Form
                } else {
                    ContentType::Text
                },
                attributes: reply.attributes(),
                content: reply.text,
                private: false,
                client_message_id: Some(format!("bot:{answers}")),
                created_at: self.clock.now_ms(),
            })
            .await?;
        if appended.created {
            self.publish(Event {
                account_id,
                kind: EventKind::MessageCreated(appended.message.clone()),
            })
            .await?;
        }
        Ok(appended.message)
    }

    pub(crate) async fn publish_bot_event(&self, account_id: AccountId, kind: EventKind) {
        if let Err(error) = self.publish(Event { account_id, kind }).await {
            tracing::warn!(%error, "could not publish a bot event");
        }
    }
}
