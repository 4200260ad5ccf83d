//! Runs the presence conformance suite on the in-memory directory (two handles, two nodes).

use std::sync::Arc;
use switchboard_bus::presence_conformance::{PresenceFixture, WINDOW};
use switchboard_bus::{presence_conformance_tests, InMemoryPresence};

async fn in_memory() -> PresenceFixture {
    let a = InMemoryPresence::cluster("node-a", WINDOW);
    let b = a.node("node-b");
    PresenceFixture {
        node_a: Arc::new(a),
        node_b: Arc::new(b),
        guard: Box::new(()),
    }
}

presence_conformance_tests!(in_memory());
