//! The native JSON dialect (`spec/native.md`): `{type, payload}` frames both ways — live demo
//! sessions (`/ws/session/:id`) and the ticketed managed sockets (`/ws/chat/:threadId`,
//! `/ws/notifications`).

pub mod frames;
mod managed;
mod session;

pub use frames::{
    decode_client_frame, decode_managed_frame, render_for_visitor, ClientFrame, ErrorCode,
    FrameError, ManagedFrame,
};
pub use managed::{chat_socket, notifications_socket, transcript_socket};
pub use session::{serve_session_socket, session_socket, CloseCode};
