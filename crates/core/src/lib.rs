//! The Switchboard domain core: records, principals, commands, events, audiences and the rules
//! that decide them.
//!
//! Architecture invariant: this crate does no I/O. It knows nothing of sockets, HTTP, SQL,
//! Redis or any JSON wire format; it is pure functions and plain data, so every rule here can be
//! tested without a runtime. Timestamps come in as arguments (`now`), never from a clock.

pub mod bot;
pub mod command;
pub mod delivery;
pub mod error;
pub mod event;
pub mod ids;
pub mod limits;
pub mod message;
pub mod policy;
pub mod presence;
pub mod principal;
pub mod records;
pub mod session;

pub use command::Command;
pub use error::DomainError;
pub use event::{Actor, Event, EventKind, Topic};
pub use ids::*;
pub use principal::Principal;
pub use records::*;

/// Milliseconds since the Unix epoch. The core never reads a clock; callers pass `now`.
pub type UnixMillis = i64;
