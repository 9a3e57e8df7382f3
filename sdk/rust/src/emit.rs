//! Messages for the agent. Emitted messages are queued and delivered after the callback succeeds; at
//! most 100 per callback and 64 KB of content each (`max_message_size`), and the capabilities file's
//! `emit_rate_limit` applies. Put what [`Channel::on_respond`](crate::Channel::on_respond) will need to
//! answer (chat id, reply URL, message id) into the metadata: the reply carries it back.
//!
//! ```no_run
//! use airlock_channel::emit::Message;
//! use serde_json::json;
//!
//! Message::new("U123", "hello agent")
//!     .user_name("Ada")
//!     .thread_id("1700000000.000100")
//!     .metadata(json!({"channel": "C1", "ts": "1700000000.000100"}))
//!     .emit();
//! ```

use serde_json::Value;

use crate::error::{Error, Result};
use crate::sys;

/// A message for the agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The sender's id on the platform.
    pub user_id: String,
    /// The sender's display name.
    pub user_name: Option<String>,
    /// Text.
    pub content: String,
    /// Conversation thread, if the platform has threads.
    pub thread_id: Option<String>,
    /// Anything [`Channel::on_respond`](crate::Channel::on_respond) needs later (a JSON object).
    pub metadata: Value,
    /// Files that came with the message.
    pub attachments: Vec<InboundAttachment>,
}

impl Message {
    /// A message with no name, thread, metadata or attachments.
    pub fn new(user_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            user_id: user_id.into(),
            user_name: None,
            content: content.into(),
            thread_id: None,
            metadata: Value::Object(serde_json::Map::new()),
            attachments: Vec::new(),
        }
    }

    /// Set the sender's display name.
    pub fn user_name(mut self, name: impl Into<String>) -> Self {
        self.user_name = Some(name.into());
        self
    }

    /// Set the thread id.
    pub fn thread_id(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// Set the metadata (should be a JSON object).
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Add an attachment (its bytes, if any, go first through [`store_attachment_data`]).
    pub fn attachment(mut self, attachment: InboundAttachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Queue the message. The host drops (and logs) messages over its limits; it never fails the callback
    /// for that.
    pub fn emit(self) {
        emit(&self)
    }
}

/// Queue `message` for the agent (see [`Message::emit`]).
pub fn emit(message: &Message) {
    sys::emit_message(message)
}

/// A file that came with an inbound message.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundAttachment {
    /// Id unique within the message (also the key for [`store_attachment_data`]).
    pub id: String,
    /// MIME type.
    pub mime_type: String,
    /// File name.
    pub filename: Option<String>,
    /// Size in bytes, if known.
    pub size_bytes: Option<u64>,
    /// Where the platform serves it.
    pub source_url: Option<String>,
    /// Host storage key, if stored.
    pub storage_key: Option<String>,
    /// Text extracted from it (e.g. a transcript).
    pub extracted_text: Option<String>,
    /// Platform-specific extras (a JSON object).
    pub extras: Value,
}

impl InboundAttachment {
    /// An attachment with only an id and a MIME type.
    pub fn new(id: impl Into<String>, mime_type: impl Into<String>) -> Self {
        InboundAttachment {
            id: id.into(),
            mime_type: mime_type.into(),
            filename: None,
            size_bytes: None,
            source_url: None,
            storage_key: None,
            extracted_text: None,
            extras: Value::Object(serde_json::Map::new()),
        }
    }
}

/// Hand the host the bytes of an attachment emitted later in the same callback. 20 MB each, 50 MB per
/// callback; errors start with `"attachment: "`.
pub fn store_attachment_data(attachment_id: &str, data: &[u8]) -> Result<()> {
    sys::store_attachment_data(attachment_id, data).map_err(|e| Error::new(format!("attachment: {e}")))
}
