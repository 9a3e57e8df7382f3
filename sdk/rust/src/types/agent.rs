//! What the agent sends the channel: replies ([`AgentResponse`] with [`Attachment`]s), progress
//! ([`StatusUpdate`]), and world 0.2.0's edits ([`MessageEdit`]) and reactions ([`Reaction`]). Apart from the
//! request types: these are the agent's side of the channel.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// A file attached to an agent response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// File name.
    pub filename: String,
    /// MIME type.
    pub mime_type: String,
    /// Content.
    pub data: Vec<u8>,
}

/// The agent's reply, given to [`Channel::on_respond`](crate::Channel::on_respond) and
/// [`Channel::on_broadcast`](crate::Channel::on_broadcast).
///
/// `metadata` is the metadata of the message being answered, exactly as the channel emitted it (use it
/// to find the chat, thread or reply URL).
///
/// ```
/// use airlock_channel::AgentResponse;
/// let r = AgentResponse::new("m1", "hello").with_metadata(serde_json::json!({"chat_id": "42", "n": 7}));
/// assert_eq!(r.metadata_str("chat_id"), Some("42"));
/// assert_eq!(r.metadata_str("n"), None);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AgentResponse {
    /// Host-assigned id of this response.
    pub message_id: String,
    /// Text of the reply.
    pub content: String,
    /// Thread of the original message, if it had one.
    pub thread_id: Option<String>,
    /// Metadata of the original message (a JSON object, `{}` when none).
    pub metadata: Value,
    /// Files to send along.
    pub attachments: Vec<Attachment>,
}

impl AgentResponse {
    /// A response with no thread, empty metadata and no attachments (for tests).
    pub fn new(message_id: impl Into<String>, content: impl Into<String>) -> Self {
        AgentResponse {
            message_id: message_id.into(),
            content: content.into(),
            thread_id: None,
            metadata: Value::Object(serde_json::Map::new()),
            attachments: Vec::new(),
        }
    }

    /// Set the metadata.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Set the thread id.
    pub fn with_thread_id(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// A string entry of the metadata object (`None` if absent or not a string).
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    /// The metadata deserialized into `T`.
    pub fn metadata_as<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.metadata).map_err(|e| Error::new(format!("response metadata: {e}")))
    }
}

/// Kind of a [`StatusUpdate`] (the WIT `status-type` enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Status {
    Thinking,
    Done,
    Interrupted,
    ToolStarted,
    ToolCompleted,
    ToolResult,
    ApprovalNeeded,
    Status,
    JobStarted,
    AuthRequired,
    AuthCompleted,
}

impl Status {
    /// The WIT name, e.g. `"tool-started"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Thinking => "thinking",
            Status::Done => "done",
            Status::Interrupted => "interrupted",
            Status::ToolStarted => "tool-started",
            Status::ToolCompleted => "tool-completed",
            Status::ToolResult => "tool-result",
            Status::ApprovalNeeded => "approval-needed",
            Status::Status => "status",
            Status::JobStarted => "job-started",
            Status::AuthRequired => "auth-required",
            Status::AuthCompleted => "auth-completed",
        }
    }
}

/// Progress of the agent (typing indicators and the like), given to
/// [`Channel::on_status`](crate::Channel::on_status). Handling must be idempotent.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    /// What happened.
    pub status: Status,
    /// Human-readable detail.
    pub message: String,
    /// Metadata of the message being worked on (a JSON object, `{}` when none).
    pub metadata: Value,
}

impl StatusUpdate {
    /// A string entry of the metadata object.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// World 0.2.0: replace the text of a message the channel sent ([`Channel::on_edit`](crate::Channel::on_edit)).
///
/// ```
/// use airlock_channel::MessageEdit;
/// let e = MessageEdit::new("42", "hello, world").with_metadata(serde_json::json!({"chat_id": "7"}));
/// assert_eq!(e.metadata_str("chat_id"), Some("7"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MessageEdit {
    /// The id [`Channel::on_send`](crate::Channel::on_send) returned for the message.
    pub platform_message_id: String,
    /// The whole new text (not a diff).
    pub content: String,
    /// Thread of the original message, if it had one.
    pub thread_id: Option<String>,
    /// Metadata of the inbound message the reply answered (a JSON object, `{}` when none).
    pub metadata: Value,
}

impl MessageEdit {
    /// An edit with no thread and empty metadata (for tests).
    pub fn new(platform_message_id: impl Into<String>, content: impl Into<String>) -> Self {
        MessageEdit {
            platform_message_id: platform_message_id.into(),
            content: content.into(),
            thread_id: None,
            metadata: Value::Object(serde_json::Map::new()),
        }
    }

    /// Set the metadata.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// A string entry of the metadata object (`None` if absent or not a string).
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// World 0.2.0: add or remove a reaction on a message ([`Channel::on_react`](crate::Channel::on_react)).
#[derive(Clone, Debug, PartialEq)]
pub struct Reaction {
    /// The platform's id of the message.
    pub platform_message_id: String,
    /// A Unicode emoji (map it to the platform's name where needed).
    pub emoji: String,
    /// `false` adds the reaction, `true` removes it.
    pub remove: bool,
    /// Metadata of the inbound message concerned (a JSON object, `{}` when none).
    pub metadata: Value,
}

impl Reaction {
    /// A string entry of the metadata object (`None` if absent or not a string).
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}
