//! Typing indicators turn themselves off when not refreshed (paused time, no sleeping).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use switchboard_bus::InProcessBus;
use switchboard_core::*;
use switchboard_engine::{Delivery, Engine, EngineConfig, Received};
use switchboard_store::{Durability, SqliteStore};

/// An agent's subscription, read one event at a time.
struct Watching {
    subscription: switchboard_engine::Subscription,
    queued: VecDeque<Delivery>,
}

impl Watching {
    async fn next_kind(&mut self) -> EventKind {
        if self.queued.is_empty() {
            match self.subscription.recv().await {
                Received::Deliveries(deliveries) => self.queued.extend(deliveries),
                Received::Evicted(eviction) => panic!("evicted: {eviction:?}"),
            }
        }
        self.queued.pop_front().unwrap().event().kind.clone()
    }

    fn nothing_more(&mut self) -> bool {
        self.queued.is_empty() && self.subscription.try_recv().is_none()
    }
}

#[tokio::test]
async fn a_typing_indicator_not_refreshed_for_30_seconds_is_turned_off() {
    let directory = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(directory.path().join("t.db"), Durability::Normal).unwrap());
    let engine = Engine::start(
        store,
        Arc::new(InProcessBus::new()),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let demo = engine.create_demo_workspace().await.unwrap();
    let key = Principal::Publishable {
        account_id: demo.account.account.id,
    };
    let started = engine
        .start_session(&key, "demo", ContactDetails::default())
        .await
        .unwrap();
    let join = engine
        .join_session(&started.session.id.0, Some(&started.token))
        .await
        .unwrap();
    let conversation_id = started.session.conversation_id;
    // An agent of the account watches the conversation.
    let agent = Principal::Agent {
        account_id: demo.account.account.id,
        agent_id: demo.agent.id,
        role: AgentRole::Administrator,
    };
    let mut watching = Watching {
        subscription: engine
            .hub()
            .subscribe(agent, vec![Topic::Conversation(conversation_id)], 16),
        queued: VecDeque::new(),
    };
    tokio::time::pause();
    let typing = |is_typing| Command::SetTyping {
        private: false,
        conversation_id,
        is_typing,
    };
    let visitor = Actor::Contact(started.session.contact_id);

    engine.execute(&join.principal, typing(true)).await.unwrap();
    assert!(
        matches!(watching.next_kind().await, EventKind::TypingOn { actor, .. } if actor == visitor)
    );
    // A refresh after 20 s restarts the clock.
    tokio::time::sleep(Duration::from_secs(20)).await;
    engine.execute(&join.principal, typing(true)).await.unwrap();
    assert!(matches!(
        watching.next_kind().await,
        EventKind::TypingOn { .. }
    ));
    let refreshed = tokio::time::Instant::now();
    assert!(
        matches!(watching.next_kind().await, EventKind::TypingOff { actor, .. } if actor == visitor)
    );
    let waited = refreshed.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );

    // Turned off by the visitor, it is not turned off a second time by the timer.
    engine.execute(&join.principal, typing(true)).await.unwrap();
    watching.next_kind().await;
    engine
        .execute(&join.principal, typing(false))
        .await
        .unwrap();
    assert!(matches!(
        watching.next_kind().await,
        EventKind::TypingOff { .. }
    ));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(watching.nothing_more(), "no second typing off");
}
