//! A Rust client for Switchboard's native dialect (`spec/native.md`), visitor side: a demo
//! session socket that reconnects by itself with exponential backoff and jitter, resumes after
//! the last message it received on every reconnect, and keeps unsent messages in an outbox
//! with their `clientMessageId` until the server acknowledges them — so nothing is lost and
//! nothing is stored or shown twice across drops, restarts and crashes.
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
mod session;

pub use backoff::Backoff;
pub use session::{AgentResponse, SessionClient, SessionConfig, SessionEvent};
