//! A Rust client for Switchboard's native dialect (`spec/native.md`): the visitor's demo
//! session socket ([`SessionClient`]) and the agent's ticketed conversation socket
//! ([`ChatClient`]). Both reconnect by themselves with exponential backoff and jitter, resume
//! after the last message they received on every reconnect, and keep unsent messages in an
//! outbox with their `clientMessageId` until the server acknowledges them — so nothing is lost
//! and nothing is stored or shown twice across drops, restarts and crashes.
//!
//! API boundary: this crate speaks the wire protocol only; it depends on no server crate.
//!
//! ```no_run
//! # async fn demo() {
//! use switchboard_client::{SessionClient, SessionConfig, SessionEvent};
//! let (client, mut events) = SessionClient::connect(SessionConfig::new(
//!     "127.0.0.1:8080", "sess_...", "eyJ...",
//! ));
//! client.send_text("Show me the dashboard");
//! while let Some(event) = events.recv().await {
//!     if let SessionEvent::AgentResponse(reply) = event {
//!         println!("{}: {}", reply.agent_id, reply.text);
//!     }
//! }
//! # }
//! ```

mod backoff;
mod chat;
mod connection;
mod session;

pub use backoff::Backoff;
pub use chat::{ChatClient, ChatConfig, ChatEvent};
pub use connection::ManagedSocket;
pub use session::{AgentResponse, SessionClient, SessionConfig, SessionEvent};
