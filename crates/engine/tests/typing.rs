//! Typing indicators turn themselves off when not refreshed (paused time, no sleeping).

use std::sync::Arc;
use std::time::Duration;
use switchboard_bus::InProcessBus;
use switchboard_core::*;
use switchboard_engine::{Engine, EngineConfig};
use switchboard_store::{Durability, SqliteStore};

async fn next_kind(subscription: &mut switchboard_engine::Subscription) -> EventKind {
    subscription
        .deliveries
        .recv()
        .await
        .unwrap()
        .event()
        .kind
        .clone()
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
    let mut watching =
        engine
            .hub()
            .subscribe(agent, vec![Topic::Conversation(conversation_id)], 16);
    tokio::time::pause();
    let typing = |is_typing| Command::SetTyping {
        private: false,
        conversation_id,
        is_typing,
    };
    let visitor = Actor::Contact(started.session.contact_id);

    engine.execute(&join.principal, typing(true)).await.unwrap();
    assert!(
        matches!(next_kind(&mut watching).await, EventKind::TypingOn { actor, .. } if actor == visitor)
    );
    // A refresh after 20 s restarts the clock.
    tokio::time::sleep(Duration::from_secs(20)).await;
    engine.execute(&join.principal, typing(true)).await.unwrap();
    assert!(matches!(
        next_kind(&mut watching).await,
        EventKind::TypingOn { .. }
    ));
    let refreshed = tokio::time::Instant::now();
    assert!(
        matches!(next_kind(&mut watching).await, EventKind::TypingOff { actor, .. } if actor == visitor)
    );
    let waited = refreshed.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );

    // Turned off by the visitor, it is not turned off a second time by the timer.
    engine.execute(&join.principal, typing(true)).await.unwrap();
    next_kind(&mut watching).await;
    engine
        .execute(&join.principal, typing(false))
        .await
        .unwrap();
    assert!(matches!(
        next_kind(&mut watching).await,
        EventKind::TypingOff { .. }
    ));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        watching.deliveries.try_recv().is_err(),
        "no second typing off"
    );
}
