//! The store conformance suite: one set of checks every [`Store`] backend must pass.
//!
//! A backend's test file calls [`conformance_tests!`](crate::conformance_tests) with an async
//! expression that builds a fresh, empty [`Fixture`]; each check becomes its own test. A
//! backend whose server is missing makes these tests fail, never skip.

use crate::*;
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use switchboard_core::bot::BotReply;

/// A fresh, empty store and whatever must live as long as it (a temporary directory, a
/// database to drop).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub guard: Box<dyn Any + Send>,
}

/// Generates one `#[tokio::test]` per conformance check for the backend built by `$make`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            seq_starts_at_one_without_gaps,
            seq_is_gapless_under_concurrent_writers,
            repeated_client_message_id_returns_the_original,
            failed_append_leaves_no_trace,
            messages_after_pages_in_seq_order,
            sessions_start_and_end,
            keys_resolve_to_their_account_and_kind,
            bots_are_unique_per_account_and_can_be_deleted,
            read_positions_only_move_forward,
            settings_keep_the_first_value,
            message_attributes_round_trip,
            iframe_events_are_kept,
            agents_are_found_by_token_and_rotated,
            account_keys_rotate_at_once,
            inbox_memberships_and_teams,
            conversations_are_listed_filtered_and_updated,
            notifications_belong_to_one_agent,
            receipts_move_forward_and_unread_counts_follow,
            delivery_cursors_only_move_forward,
            batched_appends_keep_order_and_fail_alone,
            a_batch_spanning_conversations_appends_each_in_order,
            appends_report_the_assignee,
            widget_contacts_and_their_conversations,
            transcripts_keep_their_segments_in_order,
            single_use_tokens_are_taken_once_and_expire,
            uploads_move_on_one_stage_at_a_time_and_expire,
        );
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let fixture: $crate::conformance::Fixture = $make.await;
            $crate::conformance::$check(&fixture.store).await;
        }
    )*};
}

const NOW: UnixMillis = 1_700_000_000_000;

/// An account with an inbox, a scripted bot and one demo session.
pub struct World {
    pub account: Account,
    pub inbox: Inbox,
    pub bot: Bot,
    pub session: Session,
    pub contact_token_hash: String,
}

static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

pub async fn world(store: &Arc<dyn Store>) -> World {
    let account = store
        .create_account("Acme", &unique("api"), &unique("pub"), NOW)
        .await
        .unwrap();
    let bot = store
        .create_bot(account.id, "demo", &BotKind::Scripted(Box::default()))
        .await
        .unwrap();
    let inbox = store
        .create_inbox(account.id, "Website", &unique("inbox"), Some(bot.id))
        .await
        .unwrap();
    let contact_token_hash = unique("contact");
    let session = store
        .start_session(NewSession {
            id: SessionId(unique("sess")),
            account_id: account.id,
            inbox_id: inbox.id,
            bot_id: bot.id,
            visitor: ContactDetails {
                name: Some("Ada".into()),
                ..ContactDetails::default()
            },
            contact_token_hash: contact_token_hash.clone(),
            created_at: NOW,
            expires_at: NOW + 60_000,
        })
        .await
        .unwrap();
    World {
        account,
        inbox,
        bot,
        session,
        contact_token_hash,
    }
}

pub fn visitor_text(world: &World, text: &str, client_message_id: Option<&str>) -> NewMessage {
    NewMessage {
        account_id: world.account.id,
        conversation_id: world.session.conversation_id,
        sender: Sender::Contact(world.session.contact_id),
        message_type: MessageType::Incoming,
        content_type: ContentType::Text,
        content: text.to_string(),
        attributes: MessageAttributes::default(),
        private: false,
        client_message_id: client_message_id.map(str::to_string),
        created_at: NOW,
    }
}

pub async fn seq_starts_at_one_without_gaps(store: &Arc<dyn Store>) {
    let world = world(store).await;
    for expected in 1..=5 {
        let appended = store
            .append_message(visitor_text(&world, &format!("m{expected}"), None))
            .await
            .unwrap();
        assert!(appended.created);
        assert_eq!(appended.message.seq, expected);
    }
    let conversation = store
        .conversation(world.session.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.last_seq, 5);
}

pub async fn seq_is_gapless_under_concurrent_writers(store: &Arc<dyn Store>) {
    let world = Arc::new(world(store).await);
    let (writers, per_writer) = (8, 40);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (store, world) = (store.clone(), world.clone());
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..per_writer {
                let message = visitor_text(&world, &format!("w{writer} n{n}"), None);
                seqs.push(store.append_message(message).await.unwrap().message.seq);
            }
            seqs
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        let seqs = task.await.unwrap();
        assert!(
            seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "one writer's seqs grow"
        );
        all.extend(seqs);
    }
    let expected: BTreeSet<i64> = (1..=(writers * per_writer) as i64).collect();
    assert_eq!(all, expected);
    let stored = store
        .messages_after(world.session.conversation_id, 0, 10_000)
        .await
        .unwrap();
    let stored_seqs: Vec<i64> = stored.iter().map(|message| message.seq).collect();
    assert_eq!(stored_seqs, expected.into_iter().collect::<Vec<_>>());
}

pub async fn repeated_client_message_id_returns_the_original(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let first = store
        .append_message(visitor_text(&world, "hello", Some("c-1")))
        .await
        .unwrap();
    let again = store
        .append_message(visitor_text(&world, "hello (retry)", Some("c-1")))
        .await
        .unwrap();
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(again.message, first.message);
    // The same id from another sender is another message.
    let mut from_bot = visitor_text(&world, "bot says", Some("c-1"));
    from_bot.sender = Sender::Bot {
        id: world.bot.id,
        name: world.bot.name.clone(),
    };
    from_bot.message_type = MessageType::Outgoing;
    let bot_message = store.append_message(from_bot).await.unwrap();
    assert!(bot_message.created);
    assert_eq!(bot_message.message.seq, 2);
    // Concurrent retries of one id create exactly one message.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        let message = visitor_text(&world, "burst", Some("c-2"));
        tasks.push(tokio::spawn(async move {
            store.append_message(message).await.unwrap()
        }));
    }
    let mut created = 0;
    let mut ids = BTreeSet::new();
    for task in tasks {
        let appended = task.await.unwrap();
        created += usize::from(appended.created);
        ids.insert(appended.message.id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    let all = store
        .messages_after(world.session.conversation_id, 0, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
}

pub async fn failed_append_leaves_no_trace(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let mut lost = visitor_text(&world, "nowhere", None);
    lost.conversation_id = ConversationId(i64::MAX - 1);
    assert!(matches!(
        store.append_message(lost).await,
        Err(StoreError::NotFound { .. })
    ));
    // A message addressed with another account's id is refused too.
    let mut foreign = visitor_text(&world, "foreign", None);
    foreign.account_id = AccountId(world.account.id.0 + 1_000_000);
    assert!(store.append_message(foreign).await.is_err());
    let appended = store
        .append_message(visitor_text(&world, "real", None))
        .await
        .unwrap();
    assert_eq!(appended.message.seq, 1);
}

pub async fn messages_after_pages_in_seq_order(store: &Arc<dyn Store>) {
    let world = world(store).await;
    for n in 1..=10 {
        store
            .append_message(visitor_text(&world, &format!("m{n}"), None))
            .await
            .unwrap();
    }
    let conversation_id = world.session.conversation_id;
    let page = store.messages_after(conversation_id, 3, 4).await.unwrap();
    let seqs: Vec<i64> = page.iter().map(|message| message.seq).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7]);
    assert_eq!(page[0].content, "m4");
    assert!(store
        .messages_after(conversation_id, 10, 5)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .messages_after(ConversationId(i64::MAX - 1), 0, 5)
        .await
        .unwrap()
        .is_empty());
}

pub async fn sessions_start_and_end(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let session = store.session(&world.session.id).await.unwrap().unwrap();
    assert_eq!(session, world.session);
    assert!(store
        .contact_by_token_hash("nobody")
        .await
        .unwrap()
        .is_none());
    let contact = store
        .contact_by_token_hash(&world.contact_token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.id, session.contact_id);
    assert_eq!(contact.details.name.as_deref(), Some("Ada"));
    let updated = store
        .update_contact(
            world.account.id,
            contact.id,
            ContactDetails {
                name: Some("Ada L.".into()),
                email: Some("ada@example.com".into()),
                ..ContactDetails::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.details.email.as_deref(), Some("ada@example.com"));
    assert_eq!(
        store.contact(world.account.id, contact.id).await.unwrap(),
        Some(updated)
    );
    let elsewhere = AccountId(world.account.id.0 + 1_000_000);
    assert!(store
        .contact(elsewhere, contact.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .update_contact(elsewhere, contact.id, ContactDetails::default())
        .await
        .unwrap()
        .is_none());
    assert!(session.ended_at.is_none());
    let conversation = store
        .conversation(session.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.contact_id, session.contact_id);
    assert_eq!(conversation.inbox_id, world.inbox.id);
    assert_eq!(conversation.status, ConversationStatus::Open);
    assert_eq!(conversation.last_seq, 0);
    let ended = store
        .end_session(&session.id, NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.ended_at, Some(NOW + 5));
    let again = store
        .end_session(&session.id, NOW + 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.ended_at, Some(NOW + 5), "the first end time is kept");
    let unknown = SessionId(unique("nope"));
    assert!(store.session(&unknown).await.unwrap().is_none());
    assert!(store.end_session(&unknown, NOW).await.unwrap().is_none());
}

pub async fn keys_resolve_to_their_account_and_kind(store: &Arc<dyn Store>) {
    let (api, publishable) = (unique("api"), unique("pub"));
    let account = store
        .create_account("Keys", &api, &publishable, NOW)
        .await
        .unwrap();
    let (found, kind) = store.account_by_key_hash(&api).await.unwrap().unwrap();
    assert_eq!((found.id, kind), (account.id, AccountKeyKind::Api));
    let (found, kind) = store
        .account_by_key_hash(&publishable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, kind), (account.id, AccountKeyKind::Publishable));
    assert!(store
        .account_by_key_hash("unknown")
        .await
        .unwrap()
        .is_none());
    assert!(store.count_accounts().await.unwrap() >= 1);
    let agent = store
        .create_agent(
            NewAgent {
                account_id: account.id,
                name: "Grace".into(),
                email: "grace@example.com".into(),
                role: AgentRole::Administrator,
                access_token_hash: unique("access"),
                pubsub_token: unique("pubsub"),
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(agent.role, AgentRole::Administrator);
    let duplicate = store
        .create_agent(
            NewAgent {
                account_id: account.id,
                name: "Grace again".into(),
                email: "grace@example.com".into(),
                role: AgentRole::Agent,
                access_token_hash: unique("access"),
                pubsub_token: unique("pubsub"),
            },
            NOW,
        )
        .await;
    assert!(matches!(duplicate, Err(StoreError::Conflict { .. })));
}

pub async fn bots_are_unique_per_account_and_can_be_deleted(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let taken = store
        .create_bot(world.account.id, "demo", &BotKind::Scripted(Box::default()))
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict { .. })));
    let found = store
        .bot_by_name(world.account.id, "demo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, world.bot);
    let other_account = store
        .create_account("Other", &unique("api"), &unique("pub"), NOW)
        .await
        .unwrap();
    assert!(store
        .bot(other_account.id, world.bot.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .delete_bot(world.account.id, world.bot.id)
        .await
        .unwrap());
    assert!(store
        .bot(world.account.id, world.bot.id)
        .await
        .unwrap()
        .is_none());
    let inboxes = store.inboxes(world.account.id).await.unwrap();
    assert_eq!(inboxes[0].bot_id, None);
}

pub async fn read_positions_only_move_forward(store: &Arc<dyn Store>) {
    let world = world(store).await;
    for n in 1..=4 {
        store
            .append_message(visitor_text(&world, &format!("m{n}"), None))
            .await
            .unwrap();
    }
    let conversation_id = world.session.conversation_id;
    let read = store
        .mark_read(conversation_id, ReadSide::Contact, 3)
        .await
        .unwrap();
    assert_eq!(read.contact_last_read_seq, 3);
    let read = store
        .mark_read(conversation_id, ReadSide::Contact, 1)
        .await
        .unwrap();
    assert_eq!(read.contact_last_read_seq, 3, "never backward");
    let read = store
        .mark_read(conversation_id, ReadSide::Contact, 99)
        .await
        .unwrap();
    assert_eq!(
        read.contact_last_read_seq, 4,
        "clamped to the newest message"
    );
    assert_eq!(read.agent_last_read_seq, 0);
    let read = store
        .mark_read(conversation_id, ReadSide::Agent, 2)
        .await
        .unwrap();
    assert_eq!(read.agent_last_read_seq, 2);
}

pub async fn settings_keep_the_first_value(store: &Arc<dyn Store>) {
    let key = unique("setting");
    assert!(store.setting(&key).await.unwrap().is_none());
    assert_eq!(store.put_setting_if_absent(&key, "a").await.unwrap(), "a");
    assert_eq!(store.put_setting_if_absent(&key, "b").await.unwrap(), "a");
    assert_eq!(store.setting(&key).await.unwrap().as_deref(), Some("a"));
}

pub async fn message_attributes_round_trip(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let reply = BotReply {
        text: "Here is the dashboard".into(),
        speech: None,
        iframe_commands: vec![
            IframeCommand::Navigate {
                url: "/dashboard".into(),
            },
            IframeCommand::Wait {
                selector: "#chart".into(),
                timeout_ms: Some(2_000),
            },
        ],
        suggestions: vec!["Pricing".into()],
        lead_form: Some(LeadForm {
            fields: vec!["email".into()],
            cta_text: "Start".into(),
            cta_url: "https://example.com".into(),
        }),
    };
    let message = NewMessage {
        sender: Sender::Bot {
            id: world.bot.id,
            name: "demo".into(),
        },
        message_type: MessageType::Outgoing,
        attributes: reply.attributes(),
        ..visitor_text(&world, &reply.text, None)
    };
    let appended = store.append_message(message).await.unwrap();
    let stored = store
        .messages_after(world.session.conversation_id, 0, 10)
        .await
        .unwrap();
    assert_eq!(stored, vec![appended.message]);
    assert_eq!(stored[0].attributes.iframe_commands.len(), 2);
    assert_eq!(
        stored[0].sender,
        Sender::Bot {
            id: world.bot.id,
            name: "demo".into()
        }
    );
}

pub async fn iframe_events_are_kept(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let event = IframeEvent {
        account_id: world.account.id,
        session_id: world.session.id.clone(),
        conversation_id: world.session.conversation_id,
        event: "click".into(),
        selector: Some("#btn".into()),
        url: Some("/dashboard".into()),
        created_at: NOW,
    };
    store.record_iframe_event(event.clone()).await.unwrap();
    assert_eq!(
        store.iframe_events(&world.session.id).await.unwrap(),
        vec![event]
    );
}

fn new_agent(account_id: AccountId, email: &str, role: AgentRole) -> (NewAgent, String) {
    let token = unique("access");
    (
        NewAgent {
            account_id,
            name: email.to_string(),
            email: email.to_string(),
            role,
            access_token_hash: token.clone(),
            pubsub_token: unique("pubsub"),
        },
        token,
    )
}

pub async fn agents_are_found_by_token_and_rotated(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let (agent, token) = new_agent(world.account.id, "a@example.com", AgentRole::Agent);
    let agent = store.create_agent(agent, NOW).await.unwrap();
    let found = store
        .agent_by_access_token_hash(&token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, agent);
    assert_eq!(
        store.agents(world.account.id).await.unwrap(),
        vec![agent.clone()]
    );
    let busy = store
        .set_availability(world.account.id, agent.id, Availability::Busy)
        .await
        .unwrap();
    assert_eq!(busy.availability, Availability::Busy);
    let other = store
        .create_account("Other", &unique("api"), &unique("pub"), NOW)
        .await
        .unwrap();
    assert!(store.agent(other.id, agent.id).await.unwrap().is_none());
    assert!(matches!(
        store
            .set_availability(other.id, agent.id, Availability::Online)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let new_token = unique("access");
    assert!(store
        .rotate_agent_token(world.account.id, agent.id, &new_token, &unique("pubsub"))
        .await
        .unwrap());
    assert!(store
        .agent_by_access_token_hash(&token)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .agent_by_access_token_hash(&new_token)
        .await
        .unwrap()
        .is_some());
    assert!(!store
        .rotate_agent_token(other.id, agent.id, &unique("x"), &unique("y"))
        .await
        .unwrap());
}

pub async fn account_keys_rotate_at_once(store: &Arc<dyn Store>) {
    let (api, publishable) = (unique("api"), unique("pub"));
    let account = store
        .create_account("Rotating", &api, &publishable, NOW)
        .await
        .unwrap();
    let new_api = unique("api");
    store
        .rotate_account_key(account.id, AccountKeyKind::Api, &new_api)
        .await
        .unwrap();
    assert!(store.account_by_key_hash(&api).await.unwrap().is_none());
    assert_eq!(
        store
            .account_by_key_hash(&new_api)
            .await
            .unwrap()
            .unwrap()
            .1,
        AccountKeyKind::Api
    );
    assert!(store
        .account_by_key_hash(&publishable)
        .await
        .unwrap()
        .is_some());
}

pub async fn inbox_memberships_and_teams(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let (agent, _) = new_agent(world.account.id, "m@example.com", AgentRole::Agent);
    let agent = store.create_agent(agent, NOW).await.unwrap();
    store
        .set_inbox_member(world.account.id, world.inbox.id, agent.id, true)
        .await
        .unwrap();
    store
        .set_inbox_member(world.account.id, world.inbox.id, agent.id, true)
        .await
        .unwrap();
    let memberships = store.memberships().await.unwrap();
    assert_eq!(
        memberships
            .iter()
            .filter(|(member, _)| *member == agent.id)
            .count(),
        1
    );
    let other = store
        .create_account("Other", &unique("api"), &unique("pub"), NOW)
        .await
        .unwrap();
    assert!(store
        .set_inbox_member(other.id, world.inbox.id, agent.id, true)
        .await
        .is_err());
    store
        .set_inbox_member(world.account.id, world.inbox.id, agent.id, false)
        .await
        .unwrap();
    assert!(!store
        .memberships()
        .await
        .unwrap()
        .contains(&(agent.id, world.inbox.id)));
    assert_eq!(
        store.inbox(world.account.id, world.inbox.id).await.unwrap(),
        Some(world.inbox.clone())
    );
    assert!(store
        .inbox(other.id, world.inbox.id)
        .await
        .unwrap()
        .is_none());
    let team = store.create_team(world.account.id, "Sales").await.unwrap();
    assert!(matches!(
        store.create_team(world.account.id, "Sales").await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.teams(world.account.id).await.unwrap(), vec![team]);
    assert!(store.teams(other.id).await.unwrap().is_empty());
}

pub async fn conversations_are_listed_filtered_and_updated(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let second = store
        .start_session(NewSession {
            id: SessionId(unique("sess")),
            account_id: world.account.id,
            inbox_id: world.inbox.id,
            bot_id: world.bot.id,
            visitor: ContactDetails::default(),
            contact_token_hash: unique("contact"),
            created_at: NOW,
            expires_at: NOW + 1,
        })
        .await
        .unwrap();
    let (agent, _) = new_agent(world.account.id, "c@example.com", AgentRole::Agent);
    let agent = store.create_agent(agent, NOW).await.unwrap();
    let filter = |assignee| ConversationFilter {
        account_id: world.account.id,
        status: None,
        assignee,
        inbox_ids: None,
        before_id: None,
        limit: 50,
    };
    let all = store
        .conversations(filter(AssigneeFilter::All))
        .await
        .unwrap();
    let ids: Vec<ConversationId> = all.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        vec![second.conversation_id, world.session.conversation_id]
    );
    let (assigned, changed) = store
        .update_conversation(
            world.session.conversation_id,
            ConversationChange::Assignee(Some(agent.id)),
            NOW + 1,
        )
        .await
        .unwrap();
    assert!(changed);
    assert_eq!(assigned.assignee_id, Some(agent.id));
    let (_, changed) = store
        .update_conversation(
            world.session.conversation_id,
            ConversationChange::Assignee(Some(agent.id)),
            NOW + 2,
        )
        .await
        .unwrap();
    assert!(!changed, "assigning again changes nothing");
    let mine = store
        .conversations(filter(AssigneeFilter::Agent(agent.id)))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    let unassigned = store
        .conversations(filter(AssigneeFilter::Unassigned))
        .await
        .unwrap();
    assert_eq!(unassigned[0].id, second.conversation_id);
    let (resolved, _) = store
        .update_conversation(
            second.conversation_id,
            ConversationChange::Status(ConversationStatus::Resolved),
            NOW + 3,
        )
        .await
        .unwrap();
    assert_eq!(resolved.status, ConversationStatus::Resolved);
    let open = store
        .conversations(ConversationFilter {
            status: Some(ConversationStatus::Open),
            ..filter(AssigneeFilter::All)
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    let paged = store
        .conversations(ConversationFilter {
            before_id: Some(second.conversation_id),
            ..filter(AssigneeFilter::All)
        })
        .await
        .unwrap();
    assert_eq!(paged.len(), 1);
    let none = store
        .conversations(ConversationFilter {
            inbox_ids: Some(Vec::new()),
            ..filter(AssigneeFilter::All)
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let team = store
        .create_team(world.account.id, "Support")
        .await
        .unwrap();
    let (teamed, _) = store
        .update_conversation(
            second.conversation_id,
            ConversationChange::Team(Some(team.id)),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(teamed.team_id, Some(team.id));
    assert!(store
        .add_participant(second.conversation_id, agent.id)
        .await
        .unwrap());
    assert!(!store
        .add_participant(second.conversation_id, agent.id)
        .await
        .unwrap());
    assert!(matches!(
        store
            .update_conversation(
                ConversationId(i64::MAX - 1),
                ConversationChange::Team(None),
                NOW
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn notifications_belong_to_one_agent(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let (agent, _) = new_agent(world.account.id, "n@example.com", AgentRole::Agent);
    let agent = store.create_agent(agent, NOW).await.unwrap();
    let (other, _) = new_agent(world.account.id, "o@example.com", AgentRole::Agent);
    let other = store.create_agent(other, NOW).await.unwrap();
    let notification = store
        .create_notification(
            world.account.id,
            agent.id,
            NotificationKind::ConversationAssignment,
            world.session.conversation_id,
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .notifications(world.account.id, agent.id, 10)
            .await
            .unwrap(),
        vec![notification.clone()]
    );
    assert!(store
        .notifications(world.account.id, other.id, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .mark_notification_read(world.account.id, other.id, notification.id, NOW + 1)
        .await
        .unwrap()
        .is_none());
    let read = store
        .mark_notification_read(world.account.id, agent.id, notification.id, NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.read_at, Some(NOW + 5));
    let again = store
        .mark_notification_read(world.account.id, agent.id, notification.id, NOW + 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.read_at, Some(NOW + 5));
}

pub async fn receipts_move_forward_and_unread_counts_follow(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let conversation_id = world.session.conversation_id;
    let from_visitor = store
        .append_message(visitor_text(&world, "question", None))
        .await
        .unwrap()
        .message;
    let reply = |text: &str, private: bool| NewMessage {
        sender: Sender::Bot {
            id: world.bot.id,
            name: "demo".into(),
        },
        message_type: MessageType::Outgoing,
        private,
        ..visitor_text(&world, text, None)
    };
    let answer = store
        .append_message(reply("answer", false))
        .await
        .unwrap()
        .message;
    store.append_message(reply("note", true)).await.unwrap();
    let conversation = store.conversation(conversation_id).await.unwrap().unwrap();
    assert_eq!(
        (
            conversation.unread_by_agents,
            conversation.unread_by_contact
        ),
        (1, 1),
        "private notes are nobody's unread"
    );

    // The stored message with `id`, read back.
    let stored = |id: MessageId| async move {
        store
            .messages_after(conversation_id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|message| message.id == id)
            .expect("the message is stored")
    };
    let delivered = store
        .mark_delivered(vec![answer.id], NOW + 1)
        .await
        .unwrap();
    assert_eq!(delivered, vec![answer.id]);
    let answer_now = stored(answer.id).await;
    assert_eq!(answer_now.status, MessageStatus::Delivered);
    assert_eq!(answer_now.updated_at, NOW + 1);
    // A batch: only the messages still `sent` change (the answer is delivered already, the
    // id that does not exist is skipped), and they come back in the order asked.
    let later = store
        .append_message(reply("later", false))
        .await
        .unwrap()
        .message;
    let delivered = store
        .mark_delivered(
            vec![later.id, answer.id, MessageId(987_654_321), from_visitor.id],
            NOW + 2,
        )
        .await
        .unwrap();
    assert_eq!(delivered, vec![later.id, from_visitor.id]);
    for id in [later.id, from_visitor.id] {
        let message = stored(id).await;
        assert_eq!(
            (message.status, message.updated_at),
            (MessageStatus::Delivered, NOW + 2)
        );
    }
    assert_eq!(
        stored(answer.id).await.updated_at,
        NOW + 1,
        "a delivered message is left alone"
    );
    assert!(store
        .mark_delivered(vec![answer.id, later.id], NOW + 3)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .mark_delivered(Vec::new(), NOW + 3)
        .await
        .unwrap()
        .is_empty());
    let read = store
        .mark_messages_read(conversation_id, 3, ReadSide::Contact, NOW + 3)
        .await
        .unwrap();
    assert_eq!(
        read.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![answer.id]
    );
    assert_eq!(read[0].status, MessageStatus::Read);
    assert!(
        store
            .mark_delivered(vec![answer.id], NOW + 4)
            .await
            .unwrap()
            .is_empty(),
        "read stays read"
    );
    assert!(store
        .mark_messages_read(conversation_id, 3, ReadSide::Contact, NOW + 5)
        .await
        .unwrap()
        .is_empty());
    let read = store
        .mark_messages_read(conversation_id, 1, ReadSide::Agent, NOW + 6)
        .await
        .unwrap();
    assert_eq!(read[0].id, from_visitor.id);
    store
        .mark_read(conversation_id, ReadSide::Contact, later.seq)
        .await
        .unwrap();
    let conversation = store
        .mark_read(conversation_id, ReadSide::Agent, 1)
        .await
        .unwrap();
    assert_eq!(
        (
            conversation.unread_by_agents,
            conversation.unread_by_contact
        ),
        (0, 0)
    );
}

pub async fn delivery_cursors_only_move_forward(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let conversation_id = world.session.conversation_id;
    let visitor = CursorOwner::Contact(world.session.contact_id);
    let agent = CursorOwner::Agent(AgentId(world.account.id.0 * 1000 + 7));
    assert_eq!(store.cursor(visitor, conversation_id).await.unwrap(), None);
    store
        .save_cursors(vec![
            (visitor, conversation_id, 5),
            (agent, conversation_id, 2),
        ])
        .await
        .unwrap();
    store
        .save_cursors(vec![
            (visitor, conversation_id, 3),
            (agent, conversation_id, 9),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.cursor(visitor, conversation_id).await.unwrap(),
        Some(5)
    );
    assert_eq!(store.cursor(agent, conversation_id).await.unwrap(), Some(9));
    store.save_cursors(Vec::new()).await.unwrap();
    // Behind: cursors below the conversation's newest message, and only those.
    for n in 0..7 {
        store
            .append_message(visitor_text(&world, &format!("m{n}"), None))
            .await
            .unwrap();
    }
    assert_eq!(
        store.cursors_behind(visitor).await.unwrap(),
        vec![(conversation_id, 5)]
    );
    assert!(store.cursors_behind(agent).await.unwrap().is_empty());
}

pub async fn batched_appends_keep_order_and_fail_alone(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let mut lost = visitor_text(&world, "nowhere", None);
    lost.conversation_id = ConversationId(i64::MAX - 1);
    let results = store
        .append_messages(vec![
            visitor_text(&world, "one", Some("b-1")),
            lost,
            visitor_text(&world, "two", None),
            visitor_text(&world, "one again", Some("b-1")),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    let first = results[0].as_ref().unwrap();
    assert!(first.created);
    assert_eq!(first.message.seq, 1);
    assert!(matches!(results[1], Err(StoreError::NotFound { .. })));
    assert_eq!(results[2].as_ref().unwrap().message.seq, 2);
    let repeat = results[3].as_ref().unwrap();
    assert!(!repeat.created);
    assert_eq!(repeat.message.id, first.message.id);
    // A batch of one (the usual case, which may take a shorter path) repeats the same way and
    // takes no seq.
    let alone = store
        .append_messages(vec![visitor_text(&world, "one yet again", Some("b-1"))])
        .await
        .unwrap();
    let alone = alone[0].as_ref().unwrap();
    assert!(!alone.created);
    assert_eq!(alone.message.id, first.message.id);
    let next = store
        .append_messages(vec![visitor_text(&world, "three", None)])
        .await
        .unwrap();
    assert_eq!(next[0].as_ref().unwrap().message.seq, 3);
    let stored = store
        .messages_after(world.session.conversation_id, 0, 10)
        .await
        .unwrap();
    let contents: Vec<&str> = stored.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, vec!["one", "two", "three"]);
}

pub async fn a_batch_spanning_conversations_appends_each_in_order(store: &Arc<dyn Store>) {
    let (first, second) = (world(store).await, world(store).await);
    let mut lost = visitor_text(&first, "nowhere", None);
    lost.conversation_id = ConversationId(i64::MAX - 1);
    let reply = NewMessage {
        sender: Sender::Bot {
            id: first.bot.id,
            name: "demo".into(),
        },
        message_type: MessageType::Outgoing,
        attributes: BotReply {
            text: "Pricing is on the next page".into(),
            speech: None,
            iframe_commands: Vec::new(),
            suggestions: vec!["Plans".into()],
            lead_form: None,
        }
        .attributes(),
        ..visitor_text(&first, "Pricing is on the next page", None)
    };
    let results = store
        .append_messages(vec![
            visitor_text(&first, "a1", None),
            visitor_text(&second, "b1", None),
            lost,
            reply.clone(),
            visitor_text(&second, "b2", Some("b-2")),
        ])
        .await
        .unwrap();
    let seqs: Vec<Option<Seq>> = results
        .iter()
        .map(|result| result.as_ref().ok().map(|appended| appended.message.seq))
        .collect();
    assert_eq!(seqs, vec![Some(1), Some(1), None, Some(2), Some(2)]);
    assert!(matches!(results[2], Err(StoreError::NotFound { .. })));
    assert!(results
        .iter()
        .flatten()
        .all(|appended| appended.created && appended.message.status == MessageStatus::Sent));

    let stored = |world: &World| {
        let store = store.clone();
        let conversation_id = world.session.conversation_id;
        async move { store.messages_after(conversation_id, 0, 10).await.unwrap() }
    };
    let in_first = stored(&first).await;
    assert_eq!(in_first[0].content, "a1");
    assert_eq!(in_first[1].sender, reply.sender);
    assert_eq!(in_first[1].attributes, reply.attributes);
    assert_eq!(in_first[1], results[3].as_ref().unwrap().message);
    let in_second: Vec<String> = stored(&second)
        .await
        .into_iter()
        .map(|message| message.content)
        .collect();
    assert_eq!(in_second, vec!["b1", "b2"]);

    // Each conversation counts its own unread messages.
    let conversation = |world: &World| {
        let store = store.clone();
        let conversation_id = world.session.conversation_id;
        async move { store.conversation(conversation_id).await.unwrap().unwrap() }
    };
    let (one, two) = (conversation(&first).await, conversation(&second).await);
    assert_eq!((one.unread_by_agents, one.unread_by_contact), (1, 1));
    assert_eq!((two.unread_by_agents, two.unread_by_contact), (2, 0));
    // The client message id was stored with its message: a repeat finds it.
    let again = store
        .append_message(visitor_text(&second, "b2 again", Some("b-2")))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.message.id, results[4].as_ref().unwrap().message.id);
}

pub async fn appends_report_the_assignee(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let first = store
        .append_message(visitor_text(&world, "hello", Some("c1")))
        .await
        .unwrap();
    assert_eq!(first.assignee_id, None);
    let (agent, _) = new_agent(world.account.id, &unique("agent"), AgentRole::Agent);
    let agent = store.create_agent(agent, NOW).await.unwrap();
    store
        .update_conversation(
            world.session.conversation_id,
            ConversationChange::Assignee(Some(agent.id)),
            NOW,
        )
        .await
        .unwrap();
    let second = store
        .append_message(visitor_text(&world, "anyone?", Some("c2")))
        .await
        .unwrap();
    assert_eq!(second.assignee_id, Some(agent.id));
    // A repeated message reports the assignee as of now too.
    let repeated = store
        .append_message(visitor_text(&world, "hello", Some("c1")))
        .await
        .unwrap();
    assert!(!repeated.created);
    assert_eq!(repeated.assignee_id, Some(agent.id));
}

pub async fn widget_contacts_and_their_conversations(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let inbox = store
        .inbox_by_identifier(&world.inbox.identifier)
        .await
        .unwrap()
        .expect("found by identifier");
    assert_eq!(inbox.id, world.inbox.id);
    assert!(store.inbox_by_identifier("nope").await.unwrap().is_none());
    let token = unique("pubsub");
    let new = NewContactInbox {
        account_id: world.account.id,
        inbox_id: inbox.id,
        source_id: unique("source"),
        pubsub_token: token.clone(),
        pubsub_token_hash: unique("hash"),
        details: ContactDetails {
            name: Some("Lin".into()),
            ..ContactDetails::default()
        },
        now: NOW,
    };
    let (contact, contact_inbox) = store.create_contact_inbox(new.clone()).await.unwrap();
    assert_eq!(contact.details.name.as_deref(), Some("Lin"));
    assert_eq!(contact_inbox.pubsub_token, token);
    assert!(
        matches!(
            store.create_contact_inbox(new.clone()).await,
            Err(StoreError::Conflict { .. })
        ),
        "a source_id is unique in its inbox"
    );
    let (found, found_inbox) = store
        .contact_inbox(inbox.id, &new.source_id)
        .await
        .unwrap()
        .expect("found by source_id");
    assert_eq!((found.id, found_inbox.id), (contact.id, contact_inbox.id));
    assert_eq!(
        store.contact_inbox_of(inbox.id, contact.id).await.unwrap(),
        Some(contact_inbox)
    );
    assert!(store
        .contact_by_token_hash(&new.pubsub_token_hash)
        .await
        .unwrap()
        .is_some());
    let first = store
        .create_conversation(world.account.id, inbox.id, contact.id, NOW)
        .await
        .unwrap();
    let second = store
        .create_conversation(world.account.id, inbox.id, contact.id, NOW + 1)
        .await
        .unwrap();
    assert_eq!(first.last_seq, 0);
    assert_eq!(first.contact_id, contact.id);
    let listed = store
        .contact_conversations(inbox.id, contact.id)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    let (agent, _) = new_agent(world.account.id, &unique("agent"), AgentRole::Agent);
    let pubsub = agent.pubsub_token.clone();
    let agent = store.create_agent(agent, NOW).await.unwrap();
    assert_eq!(
        store
            .agent_by_pubsub_token(&pubsub)
            .await
            .unwrap()
            .map(|a| a.id),
        Some(agent.id)
    );
    assert!(store.agent_by_pubsub_token("nope").await.unwrap().is_none());
}

pub async fn transcripts_keep_their_segments_in_order(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let transcript = store
        .create_transcript(world.account.id, "Call with Ada", NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .transcript(world.account.id, transcript.id)
            .await
            .unwrap(),
        Some(transcript.clone())
    );
    let other_account = AccountId(world.account.id.0 + 1_000_000);
    assert_eq!(
        store
            .transcript(other_account, transcript.id)
            .await
            .unwrap(),
        None
    );
    for (n, text) in ["hello", "hi there"].iter().enumerate() {
        let segment = store
            .append_segment(
                transcript.id,
                "agent",
                text,
                n as i64 * 1000,
                n as i64 * 1000 + 900,
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(segment.seq, n as i64 + 1);
    }
    let segments = store.segments(transcript.id).await.unwrap();
    assert_eq!(
        segments
            .iter()
            .map(|s| (s.seq, s.text.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "hello"), (2, "hi there")]
    );
    assert!(matches!(
        store
            .append_segment(TranscriptId(i64::MAX), "x", "y", 0, 1, NOW)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn single_use_tokens_are_taken_once_and_expire(store: &Arc<dyn Store>) {
    store
        .put_token("ticket", "hash-1", "{\"who\":1}", NOW + 30_000, NOW)
        .await
        .unwrap();
    store
        .put_token("ticket", "hash-2", "second", NOW + 30_000, NOW)
        .await
        .unwrap();
    // Another kind does not see it.
    assert_eq!(
        store.take_token("upload", "hash-1", NOW).await.unwrap(),
        None
    );
    // Twice at once: exactly one gets it.
    let (first, second) = tokio::join!(
        store.take_token("ticket", "hash-1", NOW + 1),
        store.take_token("ticket", "hash-1", NOW + 1)
    );
    let taken: Vec<String> = [first.unwrap(), second.unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(taken, vec!["{\"who\":1}".to_string()]);
    // An expired one is not given, and is gone.
    assert_eq!(
        store
            .take_token("ticket", "hash-2", NOW + 30_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.take_token("ticket", "hash-2", NOW).await.unwrap(),
        None
    );
    // Putting a new token clears the expired ones.
    store
        .put_token("ticket", "hash-3", "third", NOW + 40_000, NOW)
        .await
        .unwrap();
    store
        .put_token("ticket", "hash-4", "fourth", NOW + 90_000, NOW + 50_000)
        .await
        .unwrap();
    assert_eq!(
        store.take_token("ticket", "hash-3", NOW).await.unwrap(),
        None,
        "swept as expired when hash-4 was put"
    );
    assert_eq!(
        store
            .take_token("ticket", "hash-4", NOW + 60_000)
            .await
            .unwrap(),
        Some("fourth".to_string())
    );
}

pub async fn uploads_move_on_one_stage_at_a_time_and_expire(store: &Arc<dyn Store>) {
    let world = world(store).await;
    let owner = Principal::Contact {
        account_id: world.account.id,
        contact_id: world.session.contact_id,
    };
    let waiting = UploadRecord {
        owner: owner.clone(),
        conversation_id: world.session.conversation_id,
        expires_at: NOW + 600_000,
        stage: UploadStage::Waiting,
    };
    store.put_upload("up-1", &waiting, NOW).await.unwrap();
    assert_eq!(store.upload("up-1").await.unwrap(), Some(waiting.clone()));
    assert_eq!(store.upload("up-unknown").await.unwrap(), None);
    // The same token twice is refused.
    assert!(store.put_upload("up-1", &waiting, NOW).await.is_err());

    // Two claims at once: one moves it on.
    let (waiting_stage, receiving) = (UploadStage::Waiting, UploadStage::Receiving);
    let until = waiting.expires_at;
    let (first, second) = tokio::join!(
        store.advance_upload("up-1", &waiting_stage, &receiving, until),
        store.advance_upload("up-1", &waiting_stage, &receiving, until)
    );
    assert_eq!(
        [first.unwrap(), second.unwrap()]
            .iter()
            .filter(|won| **won)
            .count(),
        1
    );
    // Not from a stage it is not at.
    assert!(!store
        .advance_upload("up-1", &waiting_stage, &waiting_stage, until)
        .await
        .unwrap());
    assert!(!store
        .advance_upload("up-unknown", &waiting_stage, &receiving, until)
        .await
        .unwrap());

    // Received: the attachment is kept, and the expiry moves with it.
    let attachment = Attachment {
        file_id: "0af1".into(),
        file_name: "plan \"v2\".pdf".into(),
        content_type: "application/pdf".into(),
        size: 12_345,
    };
    let received = UploadRecord {
        expires_at: NOW + 900_000,
        stage: UploadStage::Received(attachment),
        ..waiting.clone()
    };
    assert!(store
        .advance_upload("up-1", &receiving, &received.stage, received.expires_at)
        .await
        .unwrap());
    assert_eq!(store.upload("up-1").await.unwrap(), Some(received.clone()));

    // A new upload drops the ones expired by its time, and only those.
    let later = UploadRecord {
        expires_at: NOW + 2_000_000,
        ..waiting.clone()
    };
    store.put_upload("up-2", &waiting, NOW).await.unwrap();
    store
        .put_upload("up-3", &later, NOW + 800_000)
        .await
        .unwrap();
    assert_eq!(
        store.upload("up-2").await.unwrap(),
        None,
        "expired, dropped"
    );
    assert_eq!(store.upload("up-1").await.unwrap(), Some(received));
    assert_eq!(store.upload("up-3").await.unwrap(), Some(later));
}
