//! The presence directory kept in PostgreSQL, against this machine's PostgreSQL: the bus
//! crate's presence conformance suite (each test in a database of its own), and an unreachable
//! server refused with a reason.

use std::sync::Arc;
use std::time::Duration;
use switchboard_bus::presence_conformance::{PresenceFixture, WINDOW};
use switchboard_bus::presence_conformance_tests;
use switchboard_bus::testing::free_port;
use switchboard_store::testing::TempDatabase;
use switchboard_store::PostgresPresence;

async fn postgres() -> PresenceFixture {
    let database = TempDatabase::create().await;
    let a = PostgresPresence::connect(&database.url, "node-a", WINDOW)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL must be reachable: {error}"));
    let b = PostgresPresence::connect(&database.url, "node-b", WINDOW)
        .await
        .unwrap();
    PresenceFixture {
        node_a: Arc::new(a),
        node_b: Arc::new(b),
        guard: Box::new(database),
    }
}

presence_conformance_tests!(postgres());

#[tokio::test]
async fn an_unreachable_server_is_refused_with_a_reason() {
    let url = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let refused = PostgresPresence::connect(&url, "lonely", Duration::from_secs(5)).await;
    let reason = refused.err().expect("nothing listens there").to_string();
    assert!(reason.contains("unreachable"), "{reason}");
}
