//! The Switchboard server: configuration, the axum router (REST and WebSocket upgrades), the
//! wire dialects, and startup and graceful shutdown. The `switchboard` binary is `main.rs`.
//!
//! Architecture invariants:
//! - Only this crate knows axum and HTTP.
//! - Dialects (`dialects::*`) translate frames to core commands and events to frames; they
//!   call the engine and never the store or the bus.

pub mod client_ip;
pub mod config;
pub mod dialects;
pub mod fuzzing;
pub mod json;
pub mod rest;
pub mod server;
pub mod snake;
pub mod time_format;
pub mod web;

pub use config::Settings;
pub use server::{start, RunningServer, StartError};
