//! The realtime engine: executes commands through the core, the store and the bus; holds the
//! hub that fans events out to connections; issues and checks credentials; runs bots.
//!
//! Architecture invariants:
//! - The flow is one way: command → core rules → store (durable) → bus → hub → connections.
//!   Nothing is published before the store has committed it.
//! - The engine knows no wire format of a dialect: dialects render events themselves, once per
//!   event, through the hub's shared render cache.
//! - The store and the bus are used only through their traits.

mod access;
mod admin;
mod bots;
mod clock;
pub mod config;
pub mod conversations;
mod credentials;
pub mod demo;
mod engine;
pub mod error;
pub mod feed;
pub mod hub;
pub mod limiter;
pub mod presence;
pub mod tickets;
pub mod transcripts;
pub mod uploads;
pub mod widget;

pub use admin::{AgentCreated, NewWebhook};
pub use bots::webhook_signature;
pub use clock::Clock;
pub use config::EngineConfig;
pub use conversations::AssigneeQuery;
pub use credentials::{generate_secret, hash_secret};
pub use engine::{AccountCreated, Engine, SessionJoin, SessionStarted};
pub use engine::{ConnectionGuard, Outcome};
pub use error::EngineError;
pub use feed::Feed;
pub use feed::FeedItem;
pub use hub::{every_event, Delivery, Eviction, Hub, Interest, Received, Subscription};
pub use tickets::TicketRefusal;
pub use transcripts::NewSegment;
pub use uploads::UploadRefusal;
pub use widget::{ConversationView, WidgetContact};
