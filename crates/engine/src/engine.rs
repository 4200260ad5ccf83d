//! The engine proper: credentials in, commands executed, events out.

use crate::access::{KnownParticipants, Memberships, ScopeCache};
use crate::bots;
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::credentials::{generate_secret, hash_secret, SessionTokens};
use crate::error::EngineError;
use crate::feed::Feed;
use crate::hub::{Hub, Interest};
use crate::limiter::Limiter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use switchboard_bus::{Bus, InMemoryPresence, PresenceDirectory};
use switchboard_core::policy::{can_view_conversation, may_receive};
use switchboard_core::session::{check_session_connect, SessionRefusal};
use switchboard_core::*;
use switchboard_store::{ConversationChange, NewSession, ReadSide, Store};
use tokio::sync::{watch, Notify};

const SIGNING_SECRET_SETTING: &str = "session_signing_secret";

/// How often delivery cursors are written: a crash re-sends at most this much of the newest
/// history to clients that do not say their last seq (never loses any).
const CURSOR_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The most delivery cursors one store write saves; a flush of more makes several writes in
/// turn, so messages committed meanwhile wait for one batch at most.
pub(crate) const CURSORS_PER_WRITE: usize = 256;
/// Every this many cursor flushes, the rate limiter forgets principals that went quiet.
const LIMITER_SWEEP_ROUNDS: u64 = 60;

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
    /// The visitor's (contact's) long-lived pubsub token: for tickets and the contact's REST.
    pub contact_pubsub_token: String,
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
    pub(crate) memberships: Arc<Memberships>,
    scopes: ScopeCache,
    participants: KnownParticipants,
    presence: Arc<dyn PresenceDirectory>,
    pub(crate) cursors: crate::presence::CursorShards,
    pub(crate) receipts: crate::presence::PendingReceipts,
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
        let presence = Arc::new(InMemoryPresence::single());
        Engine::start_with_presence(store, bus, presence, config).await
    }

    /// Starts an engine whose live connections are counted in `presence`, shared with other
    /// nodes (Redis) or not.
    pub async fn start_with_presence(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn PresenceDirectory>,
        config: EngineConfig,
    ) -> Result<Arc<Engine>, EngineError> {
        let secret = store
            .put_setting_if_absent(SIGNING_SECRET_SETTING, &generate_secret(""))
            .await?;
        let memberships = Arc::new(Memberships::load(store.memberships().await?));
        let hub = Hub::new(memberships.clone());
        let receiving_hub = hub.clone();
        let receiving_memberships = memberships.clone();
        bus.subscribe(Arc::new(move |event: Arc<Event>| {
            if let EventKind::InboxMembershipChanged {
                agent_id,
                inbox_id,
                member,
            } = event.kind
            {
                receiving_memberships.set(agent_id, inbox_id, member);
            }
            receiving_hub.deliver(event)
        }));
        let http = reqwest::Client::builder()
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                EngineError::Store(switchboard_store::StoreError::Backend(Box::new(error)))
            })?;
        let (shutdown, _) = watch::channel(false);
        let engine = Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            store,
            bus,
            hub,
            limiter: Limiter::new(config.rate_rules, &config.account_rate_rules),
            config,
            clock: Clock::system(),
            tokens: SessionTokens::new(&secret),
            http,
            shutdown,
            open_connections: AtomicUsize::new(0),
            connections_changed: Notify::new(),
            typing: Mutex::new(HashMap::new()),
            typing_generation: AtomicU64::new(0),
            memberships,
            scopes: ScopeCache::default(),
            participants: KnownParticipants::default(),
            presence,
            cursors: Default::default(),
            receipts: Default::default(),
        });
        let flushing = Arc::downgrade(&engine);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CURSOR_FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for round in 1u64.. {
                tick.tick().await;
                let Some(engine) = flushing.upgrade() else {
                    return;
                };
                engine.flush_cursors().await;
                if round % LIMITER_SWEEP_ROUNDS == 0 {
                    engine.limiter.forget_idle();
                }
            }
        });
        // Keeps this node alive in the presence directory and announces dead nodes' principals.
        let sweeping = Arc::downgrade(&engine);
        let every = engine.presence.window() / 3;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = sweeping.upgrade() else {
                    return;
                };
                engine.sweep_presence().await;
            }
        });
        Ok(engine)
    }

    pub(crate) fn arc(&self) -> Arc<Engine> {
        self.me
            .upgrade()
            .expect("the engine is alive while it is used")
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The rate limiter (tests move its clock forward; metrics read its size).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
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

    /// The directory of live connections shared by the nodes.
    pub fn presence_directory(&self) -> &Arc<dyn PresenceDirectory> {
        &self.presence
    }

    /// Succeeds when the store, the bus and the presence directory answer.
    pub async fn ready(&self) -> Result<(), EngineError> {
        self.store.ping().await?;
        self.bus.ping().await?;
        self.presence.ping().await?;
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

    /// The principal any bearer credential stands for: an account key (API or publishable),
    /// an agent's access token, or a contact's pubsub token.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Principal, EngineError> {
        let bearer = bearer
            .filter(|key| !key.is_empty())
            .ok_or(EngineError::Unauthenticated)?;
        let hash = hash_secret(bearer);
        if let Some((account, kind)) = self.store.account_by_key_hash(&hash).await? {
            return Ok(match kind {
                AccountKeyKind::Api => Principal::Integration {
                    account_id: account.id,
                },
                AccountKeyKind::Publishable => Principal::Publishable {
                    account_id: account.id,
                },
            });
        }
        if let Some(agent) = self.store.agent_by_access_token_hash(&hash).await? {
            return Ok(Principal::Agent {
                account_id: agent.account_id,
                agent_id: agent.id,
                role: agent.role,
            });
        }
        let contact = self
            .store
            .contact_by_token_hash(&hash)
            .await?
            .ok_or(EngineError::Unauthenticated)?;
        Ok(Principal::Contact {
            account_id: contact.account_id,
            contact_id: contact.id,
        })
    }

    /// The principal a realtime socket's token stands for: a demo session's token, an agent's
    /// access token, a contact's pubsub token or the account's API key. A publishable key
    /// opens no socket (it only starts sessions); a refusal says which check failed.
    pub async fn authenticate_socket(
        &self,
        token: Option<&str>,
    ) -> Result<Principal, SessionRefusal> {
        let token = token
            .filter(|token| !token.is_empty())
            .ok_or(SessionRefusal::AuthRequired)?;
        if let switchboard_core::session::PresentedToken::Verified(claims) =
            self.tokens.verify(Some(token))
        {
            return Ok(self
                .join_session(&claims.session_id.0, Some(token))
                .await?
                .principal);
        }
        match self.authenticate(Some(token)).await {
            Ok(Principal::Publishable { .. }) | Err(EngineError::Unauthenticated) => {
                Err(SessionRefusal::InvalidToken)
            }
            Ok(principal) => Ok(principal),
            Err(error) => {
                tracing::error!(%error, "could not check a socket's token");
                Err(SessionRefusal::InvalidToken)
            }
        }
    }

    /// The principal an ActionCable `RoomChannel` subscription stands for: with `account_id`
    /// and `user_id`, the agent whose pubsub token it is (both must match); without them, the
    /// contact whose pubsub token it is.
    pub async fn authenticate_pubsub(
        &self,
        pubsub_token: &str,
        account_id: Option<AccountId>,
        user_id: Option<AgentId>,
    ) -> Result<Principal, EngineError> {
        if pubsub_token.is_empty() {
            return Err(EngineError::Unauthenticated);
        }
        match (account_id, user_id) {
            (Some(account_id), Some(user_id)) => {
                let agent = self
                    .store
                    .agent_by_pubsub_token(pubsub_token)
                    .await?
                    .filter(|agent| agent.account_id == account_id && agent.id == user_id)
                    .ok_or(EngineError::Unauthenticated)?;
                Ok(Principal::Agent {
                    account_id: agent.account_id,
                    agent_id: agent.id,
                    role: agent.role,
                })
            }
            (None, None) => {
                let contact = self
                    .store
                    .contact_by_token_hash(&hash_secret(pubsub_token))
                    .await?
                    .ok_or(EngineError::Unauthenticated)?;
                Ok(Principal::Contact {
                    account_id: contact.account_id,
                    contact_id: contact.id,
                })
            }
            _ => Err(EngineError::Unauthenticated),
        }
    }

    /// What `principal` was not delivered while away, from its delivery cursors: in each
    /// conversation where it is behind, the messages after its cursor that it may see, in
    /// conversation and then seq order.
    pub async fn missed_messages(
        &self,
        principal: &Principal,
    ) -> Result<Vec<Message>, EngineError> {
        let Some(owner) = crate::presence::cursor_owner(principal) else {
            return Ok(Vec::new());
        };
        let mut behind: std::collections::BTreeMap<ConversationId, Seq> = self
            .store
            .cursors_behind(owner)
            .await?
            .into_iter()
            .collect();
        // Cursors still in memory are newer than the store's, and may not be stored yet.
        let in_memory = self
            .cursors
            .shard(owner)
            .lock()
            .expect("cursors poisoned")
            .of_owner(owner);
        for (conversation_id, latest) in in_memory {
            let seq = behind.entry(conversation_id).or_insert(latest);
            *seq = (*seq).max(latest);
        }
        let mut missed = Vec::new();
        let page = self.config.replay_page;
        for (conversation_id, mut after) in behind {
            loop {
                let messages = match self
                    .page_after(principal, conversation_id, after, page)
                    .await
                {
                    Ok(messages) => messages,
                    // No longer visible (moved inbox, left it): nothing to replay there.
                    Err(EngineError::Domain(DomainError::NotFound | DomainError::Forbidden)) => {
                        break
                    }
                    Err(error) => return Err(error),
                };
                let Some(last) = messages.last() else { break };
                after = last.seq;
                let full = messages.len() as u32 >= page;
                missed.extend(messages.into_iter().filter(|message| {
                    let event = crate::feed::message_event(message.clone());
                    may_receive(principal, &event, &*self.memberships)
                }));
                if !full {
                    break;
                }
            }
        }
        Ok(missed)
    }

    /// Counts one event of `principal` that is not a command (joining a conversation, say)
    /// against its all-events rate limit.
    pub fn count_event(&self, principal: &Principal) -> Result<(), EngineError> {
        Ok(self.limiter.check(principal, None)?)
    }

    /// Counts one request of `principal` that runs no command (a read, an administrative
    /// change) where the core says ([`limits::request_bucket`]): the API key's against its
    /// all-events limit, an agent's against its requests limit; a no-op for the rest.
    pub fn count_request(&self, principal: &Principal) -> Result<(), EngineError> {
        match limits::request_bucket(principal) {
            Some(bucket) => Ok(self.limiter.check(principal, Some(bucket))?),
            None => Ok(()),
        }
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
        let contact_pubsub_token = generate_secret("sb_contact_");
        let session = self
            .store
            .start_session(NewSession {
                contact_token_hash: hash_secret(&contact_pubsub_token),
                id: SessionId(generate_secret("sess_")),
                account_id,
                inbox_id: inbox.id,
                bot_id: bot.id,
                visitor: visitor.clone(),
                created_at: now,
                expires_at: now + self.config.session_ttl.as_millis() as i64,
            })
            .await?;
        let token = self.tokens.issue(&session, &self.clock);
        if let Some(conversation) = self.store.conversation(session.conversation_id).await? {
            self.scopes.put(conversation.scope());
            let scope = conversation.scope();
            let contact = Contact {
                id: session.contact_id,
                account_id,
                details: visitor,
                created_at: now,
            };
            self.publish(Event::in_conversation(
                &scope,
                EventKind::ContactCreated(contact),
            ))
            .await?;
            self.publish(Event::in_conversation(
                &scope,
                EventKind::ConversationCreated(conversation),
            ))
            .await?;
        }
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
        Ok(SessionStarted {
            session,
            token,
            contact_pubsub_token,
        })
    }

    /// Ends a demo session; its sockets close normally.
    /// The `iframe_event`s a session's visitor reported, oldest first: analytics for the
    /// account's back end (the API key) and its agents.
    pub async fn iframe_events(
        &self,
        principal: &Principal,
        session_id: &SessionId,
    ) -> Result<Vec<IframeEvent>, EngineError> {
        if !matches!(
            principal,
            Principal::Integration { .. } | Principal::Agent { .. }
        ) {
            return Err(DomainError::Forbidden.into());
        }
        self.store
            .session(session_id)
            .await?
            .filter(|session| session.account_id == principal.account_id())
            .ok_or(DomainError::NotFound)?;
        Ok(self.store.iframe_events(session_id).await?)
    }

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
        let scope = self.scope(ended.conversation_id).await?;
        self.publish(Event::in_conversation(
            &scope,
            EventKind::SessionEnded {
                session_id: ended.id.clone(),
                conversation_id: ended.conversation_id,
            },
        ))
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

    // ----- conversations ------------------------------------------------------------------

    /// The unchanging scope of a conversation, from memory when possible.
    pub(crate) async fn scope(
        &self,
        conversation_id: ConversationId,
    ) -> Result<ConversationScope, EngineError> {
        if let Some(scope) = self.scopes.get(conversation_id) {
            return Ok(scope);
        }
        let conversation = self
            .store
            .conversation(conversation_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let scope = conversation.scope();
        self.scopes.put(scope);
        Ok(scope)
    }

    /// Checks that `principal` may see the conversation, answering "not found" otherwise (never
    /// revealing that another account's conversation exists).
    pub(crate) async fn authorise(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
    ) -> Result<ConversationScope, EngineError> {
        if let Principal::SessionVisitor {
            conversation_id: own,
            ..
        } = principal
        {
            if *own != conversation_id {
                return Err(DomainError::NotFound.into());
            }
        }
        let scope = self.scope(conversation_id).await?;
        if can_view_conversation(principal, &scope, &*self.memberships) {
            Ok(scope)
        } else {
            Err(DomainError::NotFound.into())
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
    /// or, when the client does not say, at the newest message. Only events of the kinds
    /// `interest` accepts are queued for it; it must accept message events, which the feed's
    /// cursor needs every one of.
    pub async fn open_feed(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
        last_seq: Option<Seq>,
        interest: Interest,
    ) -> Result<Feed, EngineError> {
        self.authorise(principal, conversation_id).await?;
        let subscription = self.hub.subscribe_only(
            principal.clone(),
            vec![Topic::Conversation(conversation_id)],
            self.config.outbound_queue,
            interest,
        );
        let newest = self
            .store
            .conversation(conversation_id)
            .await?
            .ok_or(DomainError::NotFound)?
            .last_seq;
        // Where this connection starts: the client's own word wins; otherwise the principal's
        // delivery cursor (what it was last sent, on any connection); otherwise a visitor gets
        // its whole conversation and staff start at the newest message.
        let replay_from = match last_seq {
            Some(seq) => Some(seq.clamp(0, newest)),
            None => match self.cursor(principal, conversation_id).await? {
                Some(seq) => Some(seq.clamp(0, newest)),
                None if principal.is_visitor() => Some(0),
                None => None,
            },
        };
        Ok(Feed::new(
            self.arc(),
            principal.clone(),
            conversation_id,
            subscription,
            replay_from.unwrap_or(newest),
            replay_from.filter(|seq| *seq < newest),
        ))
    }

    /// The principal's delivery cursor in a conversation: in memory, else as last flushed.
    async fn cursor(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
    ) -> Result<Option<Seq>, EngineError> {
        let Some(owner) = crate::presence::cursor_owner(principal) else {
            return Ok(None);
        };
        let in_memory = self
            .cursors
            .shard(owner)
            .lock()
            .expect("cursors poisoned")
            .get(owner, conversation_id);
        let stored = self.store.cursor(owner, conversation_id).await?;
        Ok(in_memory.max(stored))
    }

    /// Writes the delivery cursors that moved since the last flush, a bounded batch per write
    /// and one write after another: the store has one writer, and one write of every active
    /// connection's cursor would hold every message behind it for as long as it takes.
    pub async fn flush_cursors(&self) {
        let dirty: Vec<_> = self
            .cursors
            .shards()
            .iter()
            .flat_map(|shard| shard.lock().expect("cursors poisoned").take_dirty())
            .collect();
        for batch in dirty.chunks(CURSORS_PER_WRITE) {
            if let Err(error) = self.store.save_cursors(batch.to_vec()).await {
                tracing::warn!(%error, "could not save delivery cursors; will retry");
                for &(owner, conversation_id, seq) in batch {
                    self.cursors
                        .shard(owner)
                        .lock()
                        .expect("cursors poisoned")
                        .retry(owner, conversation_id, seq);
                }
            }
        }
    }

    pub(crate) async fn publish(&self, event: Event) -> Result<(), EngineError> {
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
        if !matches!(command, Command::SendMessage { .. }) {
            self.limiter.check(principal, command.bucket())?;
        }
        let conversation_id = command.conversation_id();
        match command {
            Command::SendMessage { .. } => self
                .send_messages(principal, vec![command])
                .await
                .pop()
                .expect("one result per command"),
            Command::SetTyping {
                is_typing, private, ..
            } => {
                if private && principal.is_visitor() {
                    return Err(DomainError::Forbidden.into());
                }
                let scope = self.authorise(principal, conversation_id).await?;
                let actor = match principal {
                    Principal::Agent { agent_id, .. } => Actor::Agent(*agent_id),
                    _ => Actor::Contact(principal.contact_id().ok_or(DomainError::Forbidden)?),
                };
                let kind = if is_typing {
                    self.arm_typing_timer(scope, actor.clone());
                    EventKind::TypingOn {
                        conversation_id,
                        actor,
                        private,
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
                self.publish(Event::in_conversation(&scope, kind)).await?;
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
                let scope = self.authorise(principal, conversation_id).await?;
                let (side, reader) = match principal {
                    Principal::Agent { agent_id, .. } => (ReadSide::Agent, Actor::Agent(*agent_id)),
                    Principal::Integration { .. } => {
                        return Err(DomainError::Forbidden.into());
                    }
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
                // The other party's messages up to there are now read.
                let read = self
                    .store
                    .mark_messages_read(conversation_id, read_seq, side, self.clock.now_ms())
                    .await?;
                for message in read {
                    self.publish_message_updated(message).await;
                }
                self.publish(Event::in_conversation(
                    &scope,
                    EventKind::ConversationRead {
                        conversation_id,
                        reader,
                        seq: read_seq,
                    },
                ))
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
            Command::Assign { assignee_id, .. } => {
                let scope = self.authorise_staff(principal, conversation_id).await?;
                if let Some(assignee_id) = assignee_id {
                    let assignee = self
                        .store
                        .agent(scope.account_id, assignee_id)
                        .await?
                        .ok_or(DomainError::InvalidField {
                            field: "assigneeId",
                            reason: "is not an agent of this account",
                        })?;
                    let as_principal = Principal::Agent {
                        account_id: assignee.account_id,
                        agent_id: assignee.id,
                        role: assignee.role,
                    };
                    if !can_view_conversation(&as_principal, &scope, &*self.memberships) {
                        return Err(DomainError::InvalidField {
                            field: "assigneeId",
                            reason: "is not a member of the conversation's inbox",
                        }
                        .into());
                    }
                }
                self.assign(&scope, assignee_id, principal).await?;
                Ok(Outcome::Done)
            }
            Command::SetStatus { status, .. } => {
                let scope = self.authorise_staff(principal, conversation_id).await?;
                let (conversation, changed) = self
                    .store
                    .update_conversation(
                        conversation_id,
                        ConversationChange::Status(status),
                        self.clock.now_ms(),
                    )
                    .await?;
                if changed {
                    self.publish(Event::in_conversation(
                        &scope,
                        EventKind::ConversationStatusChanged(conversation),
                    ))
                    .await?;
                }
                Ok(Outcome::Done)
            }
            Command::SetTeam { team_id, .. } => {
                let scope = self.authorise_staff(principal, conversation_id).await?;
                if let Some(team_id) = team_id {
                    let teams = self.store.teams(scope.account_id).await?;
                    if !teams.iter().any(|team| team.id == team_id) {
                        return Err(DomainError::InvalidField {
                            field: "teamId",
                            reason: "is not a team of this account",
                        }
                        .into());
                    }
                }
                let (conversation, changed) = self
                    .store
                    .update_conversation(
                        conversation_id,
                        ConversationChange::Team(team_id),
                        self.clock.now_ms(),
                    )
                    .await?;
                if changed {
                    self.publish(Event::in_conversation(
                        &scope,
                        EventKind::TeamChanged(conversation),
                    ))
                    .await?;
                }
                Ok(Outcome::Done)
            }
        }
    }

    /// Executes several commands of one principal in order. Consecutive messages are stored in
    /// one commit (a busy connection pipelines instead of waiting a commit per message); the
    /// results come back one per command, in order.
    pub async fn execute_many(
        &self,
        principal: &Principal,
        commands: Vec<Command>,
    ) -> Vec<Result<Outcome, EngineError>> {
        let mut results = Vec::with_capacity(commands.len());
        let mut messages = Vec::new();
        for command in commands {
            if matches!(command, Command::SendMessage { .. }) {
                messages.push(command);
                continue;
            }
            if !messages.is_empty() {
                results.extend(
                    self.send_messages(principal, std::mem::take(&mut messages))
                        .await,
                );
            }
            results.push(self.execute(principal, command).await);
        }
        if !messages.is_empty() {
            results.extend(self.send_messages(principal, messages).await);
        }
        results
    }

    /// Stores messages of `principal` in order in one commit, then publishes each new one and
    /// what follows it (a bot's answer, an agent's takeover). One result per command.
    async fn send_messages(
        &self,
        principal: &Principal,
        commands: Vec<Command>,
    ) -> Vec<Result<Outcome, EngineError>> {
        let mut results: Vec<Option<Result<Outcome, EngineError>>> =
            Vec::with_capacity(commands.len());
        let mut accepted: Vec<(usize, ConversationScope, bool)> = Vec::new();
        let mut batch = Vec::new();
        for (index, command) in commands.into_iter().enumerate() {
            let Command::SendMessage {
                conversation_id,
                content,
                client_message_id,
                private,
            } = command
            else {
                results.push(Some(Err(DomainError::Forbidden.into())));
                continue;
            };
            let prepared = self
                .prepare_message(
                    principal,
                    conversation_id,
                    content,
                    client_message_id,
                    private,
                )
                .await;
            match prepared {
                Ok((scope, message)) => {
                    results.push(None);
                    accepted.push((index, scope, private));
                    batch.push(message);
                }
                Err(error) => results.push(Some(Err(error))),
            }
        }
        if !batch.is_empty() {
            match self.store.append_messages(batch).await {
                Ok(appended) => {
                    for ((index, scope, private), appended) in accepted.into_iter().zip(appended) {
                        let outcome = match appended {
                            Ok(appended) => {
                                self.after_append(principal, &scope, private, appended)
                                    .await
                            }
                            Err(error) => Err(error.into()),
                        };
                        results[index] = Some(outcome);
                    }
                }
                Err(error) => {
                    // The commit itself failed: none of the batch is stored.
                    tracing::error!(%error, "a batch of messages could not be stored");
                    let reason = error.to_string();
                    for (index, _, _) in accepted {
                        let error = switchboard_store::StoreError::Backend(reason.clone().into());
                        results[index] = Some(Err(EngineError::Store(error)));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| result.expect("every command has a result"))
            .collect()
    }

    /// Stores a file message carrying `attachment` (already on disk) and publishes it, as any
    /// message: rate limit, authorisation, receipts and bots alike.
    pub async fn send_attachment(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
        attachment: Attachment,
        client_message_id: Option<String>,
    ) -> Result<Message, EngineError> {
        let (scope, mut message) = self
            .prepare_message(
                principal,
                conversation_id,
                attachment.file_name.clone(),
                client_message_id,
                false,
            )
            .await?;
        message.content_type = ContentType::File;
        message.attributes.attachment = Some(attachment);
        let appended = self.store.append_message(message).await?;
        match self
            .after_append(principal, &scope, false, appended)
            .await?
        {
            Outcome::Message { message, .. } => Ok(*message),
            Outcome::Done => Err(DomainError::NotFound.into()),
        }
    }

    /// Rate limit, validation and authorisation of one message; the message to store.
    async fn prepare_message(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
        content: String,
        client_message_id: Option<String>,
        private: bool,
    ) -> Result<(ConversationScope, NewMessage), EngineError> {
        self.limiter
            .check(principal, Some(limits::Bucket::Messages))?;
        message::validate_text(&content, self.config.max_message_bytes)?;
        if let Some(id) = &client_message_id {
            message::validate_client_message_id(id)?;
        }
        if private && principal.is_visitor() {
            return Err(DomainError::Forbidden.into());
        }
        let scope = self.authorise(principal, conversation_id).await?;
        let sender = principal.sender().ok_or(DomainError::Forbidden)?;
        let message_type = if principal.is_visitor() {
            MessageType::Incoming
        } else {
            MessageType::Outgoing
        };
        Ok((
            scope,
            NewMessage {
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
            },
        ))
    }

    /// Publishes a newly stored message and sets off what follows it.
    async fn after_append(
        &self,
        principal: &Principal,
        scope: &ConversationScope,
        private: bool,
        appended: switchboard_store::Appended,
    ) -> Result<Outcome, EngineError> {
        if appended.created {
            self.publish(Event::in_conversation(
                scope,
                EventKind::MessageCreated(appended.message.clone()),
            ))
            .await?;
            match principal {
                Principal::SessionVisitor { bot_id, .. } => {
                    bots::answer_in_background(
                        self.arc(),
                        *bot_id,
                        appended.message.clone(),
                        appended.assignee_id,
                    );
                }
                Principal::Contact { .. } => {
                    bots::answer_for_inbox_in_background(
                        self.arc(),
                        *scope,
                        appended.message.clone(),
                        appended.assignee_id,
                    );
                }
                Principal::Agent { agent_id, .. } if !private => {
                    self.agent_replied(scope, *agent_id, appended.assignee_id)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(Outcome::Message {
            message: Box::new(appended.message),
            created: appended.created,
        })
    }

    /// Authorises an agent or the integration (not a visitor) on a conversation.
    async fn authorise_staff(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
    ) -> Result<ConversationScope, EngineError> {
        if !matches!(
            principal,
            Principal::Agent { .. } | Principal::Integration { .. }
        ) {
            return Err(DomainError::Forbidden.into());
        }
        self.authorise(principal, conversation_id).await
    }

    /// Sets the assignee and publishes what follows: `assignee.changed`, `agent.joined` the
    /// first time an agent takes part, and a notification to the new assignee.
    async fn assign(
        &self,
        scope: &ConversationScope,
        assignee_id: Option<AgentId>,
        by: &Principal,
    ) -> Result<(), EngineError> {
        let before = self
            .store
            .conversation(scope.conversation_id)
            .await?
            .and_then(|conversation| conversation.assignee_id);
        let (conversation, changed) = self
            .store
            .update_conversation(
                scope.conversation_id,
                ConversationChange::Assignee(assignee_id),
                self.clock.now_ms(),
            )
            .await?;
        if !changed {
            return Ok(());
        }
        self.publish(Event::in_conversation(
            scope,
            EventKind::AssigneeChanged(conversation),
        ))
        .await?;
        if let Some(left) = before.filter(|previous| Some(*previous) != assignee_id) {
            let agent_name = self.agent_name(scope.account_id, left).await?;
            self.publish(Event::in_conversation(
                scope,
                EventKind::AgentLeft {
                    conversation_id: scope.conversation_id,
                    agent_id: left,
                    agent_name,
                },
            ))
            .await?;
        }
        if let Some(assignee_id) = assignee_id {
            self.agent_took_part(scope, assignee_id).await?;
            let by_assignee =
                matches!(by, Principal::Agent { agent_id, .. } if *agent_id == assignee_id);
            if !by_assignee {
                let notification = self
                    .store
                    .create_notification(
                        scope.account_id,
                        assignee_id,
                        NotificationKind::ConversationAssignment,
                        scope.conversation_id,
                        self.clock.now_ms(),
                    )
                    .await?;
                self.publish(Event {
                    account_id: scope.account_id,
                    inbox_id: Some(scope.inbox_id),
                    contact_id: None,
                    kind: EventKind::NotificationCreated(notification),
                })
                .await?;
            }
        }
        Ok(())
    }

    /// An agent's display name (empty for one deleted since).
    async fn agent_name(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
    ) -> Result<String, EngineError> {
        Ok(self
            .store
            .agent(account_id, agent_id)
            .await?
            .map(|agent| agent.name)
            .unwrap_or_default())
    }

    /// Publishes `agent.joined` the first time an agent takes part in a conversation.
    async fn agent_took_part(
        &self,
        scope: &ConversationScope,
        agent_id: AgentId,
    ) -> Result<(), EngineError> {
        if self.participants.contains(scope.conversation_id, agent_id) {
            return Ok(());
        }
        let first_time = self
            .store
            .add_participant(scope.conversation_id, agent_id)
            .await?;
        self.participants.put(scope.conversation_id, agent_id);
        if first_time {
            let agent_name = self.agent_name(scope.account_id, agent_id).await?;
            self.publish(Event::in_conversation(
                scope,
                EventKind::AgentJoined {
                    conversation_id: scope.conversation_id,
                    agent_id,
                    agent_name,
                },
            ))
            .await?;
        }
        Ok(())
    }

    /// A human's public reply: an unassigned conversation is taken over by that agent (which
    /// silences its bot); otherwise the agent joins it. `assignee_id` is the conversation's
    /// assignee as the reply's own commit saw it.
    async fn agent_replied(
        &self,
        scope: &ConversationScope,
        agent_id: AgentId,
        assignee_id: Option<AgentId>,
    ) -> Result<(), EngineError> {
        if assignee_id.is_none() {
            let by = Principal::Agent {
                account_id: scope.account_id,
                agent_id,
                role: AgentRole::Agent,
            };
            self.assign(scope, Some(agent_id), &by).await
        } else {
            self.agent_took_part(scope, agent_id).await
        }
    }

    /// Turns `actor`'s typing indicator off after `typing_timeout` unless it is refreshed or
    /// turned off before then.
    fn arm_typing_timer(&self, scope: ConversationScope, actor: Actor) {
        let conversation_id = scope.conversation_id;
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
                let event = Event::in_conversation(
                    &scope,
                    EventKind::TypingOff {
                        conversation_id,
                        actor,
                    },
                );
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
            let scope = self.scope(*conversation_id).await?;
            self.publish(Event::in_conversation(
                &scope,
                EventKind::MessageCreated(appended.message.clone()),
            ))
            .await?;
        }
        Ok(appended.message)
    }

    pub(crate) async fn publish_bot_event(&self, conversation_id: ConversationId, kind: EventKind) {
        let published = match self.scope(conversation_id).await {
            Ok(scope) => self.publish(Event::in_conversation(&scope, kind)).await,
            Err(error) => Err(error),
        };
        if let Err(error) = published {
            tracing::warn!(%error, "could not publish a bot event");
        }
    }
}
