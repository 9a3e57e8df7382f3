//! The channel's host-managed websocket (capabilities file `websocket` block). The host connects,
//! authenticates (building the identify frame itself, so the channel never holds the token), heartbeats
//! and reconnects; each inbound text frame reaches the channel as a request for which
//! [`Request::is_websocket_frame`](crate::Request::is_websocket_frame) is true.
//!
//! ```no_run
//! use airlock_channel::{websocket, Request, Response};
//!
//! fn on_http_request(req: &Request) -> Response {
//!     if req.is_websocket_frame() {
//!         let _ = websocket::send_json(&serde_json::json!({"type": "ack"}));
//!         return Response::ok(); // ignored by the host for frames
//!     }
//!     Response::not_found()
//! }
//! ```

use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;

pub use crate::types::{WEBSOCKET_PATH, WEBSOCKET_SOURCE};

/// Send one text frame. Errors (`"websocket: ..."`) when no socket is open or the frame is refused.
pub fn send_text(payload: &str) -> Result<()> {
    sys::websocket_send_text(payload).map_err(|e| Error::new(format!("websocket: {e}")))
}

/// Send `value` as one JSON text frame.
pub fn send_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    send_text(&serde_json::to_string(value)?)
}
