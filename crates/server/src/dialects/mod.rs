//! The wire dialects. Each translates its frames into core commands and renders core events
//! into its frames, and holds no domain rule. Each owns one render slot of the hub's cache.

pub mod cable;
pub mod native;
pub mod socketio;

/// The hub render slot of the native session dialect.
pub const NATIVE_SESSION_SLOT: usize = 0;

/// The hub render slot of the native managed sockets (canonical `{type, payload}` frames).
pub const NATIVE_MANAGED_SLOT: usize = 1;

/// The hub render slot of the Socket.IO dialect.
pub const SOCKETIO_SLOT: usize = 2;

/// The hub render slot of the ActionCable dialect.
pub const CABLE_SLOT: usize = 3;
