//! An upload's token is kept in the store: two engines sharing one store (two nodes) take its
//! steps in any order of nodes, once each, within its time.

use std::sync::Arc;
use switchboard_bus::InProcessBus;
use switchboard_core::*;
use switchboard_engine::uploads::UPLOAD_TTL_MS;
use switchboard_engine::{hash_secret, Engine, EngineConfig, EngineError, UploadRefusal};
use switchboard_store::{Durability, SqliteStore, Store, UploadRecord, UploadStage};

struct Nodes {
    a: Arc<Engine>,
    b: Arc<Engine>,
    store: Arc<dyn Store>,
    agent: Principal,
    other_agent: Principal,
    conversation_id: ConversationId,
    _directory: tempfile::TempDir,
}

async fn two_nodes() -> Nodes {
    let directory = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(directory.path().join("t.db"), Durability::Normal).unwrap());
    let start = || {
        Engine::start(
            store.clone(),
            Arc::new(InProcessBus::new()),
            EngineConfig::default(),
        )
    };
    let a = start().await.unwrap();
    let b = start().await.unwrap();
    let demo = a.create_demo_workspace().await.unwrap();
    let account_id = demo.account.account.id;
    let started = a
        .start_session(
            &Principal::Publishable { account_id },
            "demo",
            ContactDetails::default(),
        )
        .await
        .unwrap();
    let agent = Principal::Agent {
        account_id,
        agent_id: demo.agent.id,
        role: AgentRole::Administrator,
    };
    let other = a
        .create_agent(
            &agent,
            "Grace",
            "grace@example.com",
            AgentRole::Administrator,
        )
        .await
        .unwrap();
    Nodes {
        a,
        b,
        store,
        agent,
        other_agent: Principal::Agent {
            account_id,
            agent_id: other.agent.id,
            role: AgentRole::Administrator,
        },
        conversation_id: started.session.conversation_id,
        _directory: directory,
    }
}

fn refusal(result: Result<impl std::fmt::Debug, EngineError>) -> UploadRefusal {
    match result {
        Err(EngineError::Upload(refusal)) => refusal,
        other => panic!("expected an upload refusal, got {other:?}"),
    }
}

fn attachment(name: &str) -> Attachment {
    Attachment {
        file_id: "00ff".into(),
        file_name: name.into(),
        content_type: "text/plain".into(),
        size: 5,
    }
}

#[tokio::test]
async fn each_step_may_reach_another_node_and_is_taken_once() {
    let nodes = two_nodes().await;
    let token = nodes
        .a
        .begin_upload(&nodes.agent, nodes.conversation_id)
        .await
        .unwrap();

    // Not finished before a file is received, on either node.
    assert_eq!(
        refusal(nodes.b.finish_upload(&nodes.agent, &token).await),
        UploadRefusal::NotReceived
    );
    // Node b takes the URL's one use; node a then finds it used.
    assert_eq!(
        nodes.b.claim_upload(&token).await.unwrap(),
        nodes.conversation_id
    );
    assert_eq!(
        refusal(nodes.a.claim_upload(&token).await),
        UploadRefusal::Used
    );
    // The file was refused: the URL may be used again, once.
    nodes.b.upload_received(&token, None).await.unwrap();
    nodes.a.claim_upload(&token).await.unwrap();
    nodes
        .a
        .upload_received(&token, Some(attachment("notes.txt")))
        .await
        .unwrap();
    assert_eq!(
        refusal(nodes.b.claim_upload(&token).await),
        UploadRefusal::Used
    );

    // Only the principal that began it finishes it, on any node.
    assert_eq!(
        refusal(nodes.b.finish_upload(&nodes.other_agent, &token).await),
        UploadRefusal::NotFound
    );
    let message = nodes.b.finish_upload(&nodes.agent, &token).await.unwrap();
    assert_eq!(message.attributes.attachment, Some(attachment("notes.txt")));
    assert_eq!(message.client_message_id.as_deref(), Some(token.as_str()));
    // Finished: known to neither node.
    assert_eq!(
        refusal(nodes.a.finish_upload(&nodes.agent, &token).await),
        UploadRefusal::NotFound
    );
    assert_eq!(
        refusal(nodes.a.claim_upload(&token).await),
        UploadRefusal::NotFound
    );
    assert_eq!(
        refusal(nodes.a.claim_upload("up_never_issued").await),
        UploadRefusal::NotFound
    );
}

/// Wall time now, as the engine's clock reads it (give or take rounding: a few ms).
fn wall_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as UnixMillis
}

/// The upload as stored under `token`.
async fn stored(store: &Arc<dyn Store>, token: &str) -> UploadRecord {
    store.upload(&hash_secret(token)).await.unwrap().unwrap()
}

/// Asserts that `upload` expires ten minutes after a moment between `since` and now.
fn expires_ten_minutes_after(upload: &UploadRecord, since: UnixMillis) {
    let window = since - 5 + UPLOAD_TTL_MS..=wall_ms() + UPLOAD_TTL_MS;
    assert!(window.contains(&upload.expires_at), "{upload:?}");
}

/// Moves the stored upload's expiry to `expires_at`, as if time had passed.
async fn expire_at(store: &Arc<dyn Store>, token: &str, expires_at: UnixMillis) {
    let hash = hash_secret(token);
    let upload = stored(store, token).await;
    assert!(store
        .advance_upload(&hash, &upload.stage, &upload.stage, expires_at)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_url_expires_after_ten_minutes_and_a_received_file_has_ten_more() {
    let nodes = two_nodes().await;
    let begun_at = wall_ms();
    let token = nodes
        .a
        .begin_upload(&nodes.agent, nodes.conversation_id)
        .await
        .unwrap();
    let begun = stored(&nodes.store, &token).await;
    expires_ten_minutes_after(&begun, begun_at);
    assert_eq!(begun.owner, nodes.agent);
    assert_eq!(begun.stage, UploadStage::Waiting);

    // Unused when its ten minutes are up: expired, on every node.
    expire_at(&nodes.store, &token, wall_ms() - 10).await;
    assert_eq!(
        refusal(nodes.b.claim_upload(&token).await),
        UploadRefusal::Expired
    );

    // A file received with a second to spare has ten minutes from its arrival to be finished.
    let token = nodes
        .a
        .begin_upload(&nodes.agent, nodes.conversation_id)
        .await
        .unwrap();
    expire_at(&nodes.store, &token, wall_ms() + 1_000).await;
    nodes.b.claim_upload(&token).await.unwrap();
    let received_at = wall_ms();
    nodes
        .b
        .upload_received(&token, Some(attachment("late.txt")))
        .await
        .unwrap();
    let received = stored(&nodes.store, &token).await;
    expires_ten_minutes_after(&received, received_at);
    assert_eq!(
        received.stage,
        UploadStage::Received(attachment("late.txt"))
    );
    // Left unfinished for those ten minutes: gone.
    expire_at(&nodes.store, &token, wall_ms() - 10).await;
    assert_eq!(
        refusal(nodes.a.finish_upload(&nodes.agent, &token).await),
        UploadRefusal::NotFound
    );
}
