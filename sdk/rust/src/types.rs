//! Plain Rust types for the values the host passes to callbacks and the values callbacks return, one
//! sub-module a side: [`config`] (activation), [`request`] (the platform's requests and the answers),
//! [`agent`] (replies, status, edits, reactions), and [`wire`] (parsing the host's JSON texts). The crate root
//! re-exports the public types (`airlock_channel::Request`, ...); this module is private.

mod agent;
mod config;
mod request;
mod wire;

pub use agent::{AgentResponse, Attachment, MessageEdit, Reaction, Status, StatusUpdate};
pub use config::{ChannelConfig, Config, Endpoint, Poll};
pub(crate) use request::INTERNAL_ERROR_BODY;
pub use request::{Request, Response, WEBSOCKET_PATH, WEBSOCKET_SOURCE};
pub(crate) use wire::{metadata_object, string_map};
