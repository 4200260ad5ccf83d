//! The in-process bus: one node, handlers called synchronously on publish.

use crate::{Bus, BusError, BusHandler};
use async_trait::async_trait;
use std::sync::{Arc, RwLock};
use switchboard_core::Event;

/// Delivers each published event to every handler of this process, synchronously and in order.
#[derive(Clone, Default)]
pub struct InProcessBus {
    // A std lock: it is held only to clone the handler list, never across an await.
    handlers: Arc<RwLock<Vec<Arc<dyn BusHandler>>>>,
}

impl InProcessBus {
    pub fn new() -> InProcessBus {
        InProcessBus::default()
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, event: Arc<Event>) -> Result<(), BusError> {
        let handlers = self.handlers.read().expect("bus handlers poisoned").clone();
        for handler in handlers {
            handler.deliver(event.clone());
        }
        Ok(())
    }

    fn subscribe(&self, handler: Arc<dyn BusHandler>) {
        self.handlers
            .write()
            .expect("bus handlers poisoned")
            .push(handler);
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}
