//! Runs the bus conformance suite on the in-process bus.

use std::sync::Arc;
use switchboard_bus::conformance::Fixture;
use switchboard_bus::{bus_conformance_tests, InProcessBus};

async fn in_process() -> Fixture {
    let bus = InProcessBus::new();
    Fixture {
        node_a: Arc::new(bus.clone()),
        node_b: Arc::new(bus),
        guard: Box::new(()),
    }
}

bus_conformance_tests!(in_process());
