//! The Redis presence directory against this machine's Redis: the conformance suite (each test
//! under its own key prefix), and an unreachable Redis refused with a reason.

use std::sync::Arc;
use std::time::Duration;
use switchboard_bus::presence_conformance::{PresenceFixture, WINDOW};
use switchboard_bus::testing::{free_port, unique_prefix};
use switchboard_bus::{presence_conformance_tests, RedisPresence};

async fn redis() -> PresenceFixture {
    let url = format!("redis://127.0.0.1:6379/?prefix={}", unique_prefix());
    let a = RedisPresence::connect(&url, "node-a", WINDOW)
        .await
        .unwrap_or_else(|error| panic!("Redis at {url} must be reachable: {error}"));
    let b = RedisPresence::connect(&url, "node-b", WINDOW)
        .await
        .unwrap();
    PresenceFixture {
        node_a: Arc::new(a),
        node_b: Arc::new(b),
        guard: Box::new(()),
    }
}

presence_conformance_tests!(redis());

#[tokio::test]
async fn an_unreachable_redis_is_refused_with_a_reason() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let refused = RedisPresence::connect(&url, "lonely", Duration::from_secs(5)).await;
    let reason = refused.err().expect("nothing listens there").to_string();
    assert!(reason.contains("unreachable"), "{reason}");
}
