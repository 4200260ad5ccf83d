//! The native JSON dialect (`spec/native.md`): `{type, payload}` frames both ways. This slice
//! serves live demo sessions (`/ws/session/:id`).

mod frames;
mod session;

pub use frames::{decode_client_frame, render_for_visitor, ClientFrame, ErrorCode, FrameError};
pub use session::{serve_session_socket, session_socket, CloseCode};
