//! Runs the store conformance suite on the embedded SQLite store.

use std::sync::Arc;
use switchboard_store::conformance::Fixture;
use switchboard_store::{conformance_tests, Durability, SqliteStore};

async fn fresh_sqlite() -> Fixture {
    let directory = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(directory.path().join("switchboard.db"), Durability::Full).unwrap();
    Fixture {
        store: Arc::new(store),
        guard: Box::new(directory),
    }
}

conformance_tests!(fresh_sqlite());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("switchboard.db");
    let (conversation_id, message) = {
        let store: Arc<dyn switchboard_store::Store> =
            Arc::new(SqliteStore::open(&path, Durability::Full).unwrap());
        let world = switchboard_store::conformance::world(&store).await;
        let appended = store
            .append_message(switchboard_store::conformance::visitor_text(
                &world, "kept", None,
            ))
            .await
            .unwrap();
        (world.session.conversation_id, appended.message)
    };
    let reopened = SqliteStore::open(&path, Durability::Full).unwrap();
    use switchboard_store::Store;
    let stored = reopened
        .messages_after(conversation_id, 0, 10)
        .await
        .unwrap();
    assert_eq!(stored, vec![message]);
}
