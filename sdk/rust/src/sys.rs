//! The one place that calls the WIT host functions. Inside a component (wasm32) every function goes to the
//! generated bindings; on any other target (unit tests of channel logic with `cargo test`) it goes to the
//! [`testing::MockHost`](crate::testing::MockHost) installed on the current thread.

use crate::emit::Message;
use crate::log::Level;

/// A host HTTP response before decoding: status, headers as a JSON object text, body.
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers_json: String,
    pub body: Vec<u8>,
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::RawResponse;
    use crate::bindings::airlock::channel::channel_host as wit;
    use crate::emit::Message;
    use crate::log::Level;

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit::LogLevel::Trace,
            Level::Debug => wit::LogLevel::Debug,
            Level::Info => wit::LogLevel::Info,
            Level::Warn => wit::LogLevel::Warn,
            Level::Error => wit::LogLevel::Error,
        };
        wit::log(level, message)
    }

    pub fn now_millis() -> u64 {
        wit::now_millis()
    }

    pub fn workspace_read(path: &str) -> Option<String> {
        wit::workspace_read(path)
    }

    pub fn workspace_write(path: &str, content: &str) -> Result<(), String> {
        wit::workspace_write(path, content)
    }

    pub fn http_request(
        method: &str,
        url: &str,
        headers_json: &str,
        body: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> Result<RawResponse, String> {
        wit::http_request(method, url, headers_json, body, timeout_ms).map(|r| RawResponse {
            status: r.status,
            headers_json: r.headers_json,
            body: r.body,
        })
    }

    pub fn secret_exists(name: &str) -> bool {
        wit::secret_exists(name)
    }

    pub fn store_attachment_data(id: &str, data: &[u8]) -> Result<(), String> {
        wit::store_attachment_data(id, data)
    }

    pub fn emit_message(msg: &Message) {
        let attachments = msg
            .attachments
            .iter()
            .map(|a| wit::InboundAttachment {
                id: a.id.clone(),
                mime_type: a.mime_type.clone(),
                filename: a.filename.clone(),
                size_bytes: a.size_bytes,
                source_url: a.source_url.clone(),
                storage_key: a.storage_key.clone(),
                extracted_text: a.extracted_text.clone(),
                extras_json: a.extras.to_string(),
            })
            .collect();
        wit::emit_message(&wit::EmittedMessage {
            user_id: msg.user_id.clone(),
            user_name: msg.user_name.clone(),
            content: msg.content.clone(),
            thread_id: msg.thread_id.clone(),
            metadata_json: msg.metadata.to_string(),
            attachments,
        })
    }

    pub fn websocket_send_text(payload: &str) -> Result<(), String> {
        wit::websocket_send_text(payload)
    }

    pub fn pairing_upsert_request(channel: &str, id: &str, meta_json: &str) -> Result<(String, bool), String> {
        wit::pairing_upsert_request(channel, id, meta_json).map(|r| (r.code, r.created))
    }

    pub fn pairing_resolve_identity(channel: &str, external_id: &str) -> Result<Option<String>, String> {
        wit::pairing_resolve_identity(channel, external_id)
    }

    pub fn pairing_read_allow_from(channel: &str) -> Result<Vec<String>, String> {
        wit::pairing_read_allow_from(channel)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::RawResponse;
    use crate::emit::Message;
    use crate::log::Level;
    use crate::testing::with_host;

    pub fn log(level: Level, message: &str) {
        with_host(|h| h.log(level, message))
    }

    pub fn now_millis() -> u64 {
        with_host(|h| h.now_millis())
    }

    pub fn workspace_read(path: &str) -> Option<String> {
        with_host(|h| h.workspace_read(path))
    }

    pub fn workspace_write(path: &str, content: &str) -> Result<(), String> {
        with_host(|h| h.workspace_write(path, content))
    }

    pub fn http_request(
        method: &str,
        url: &str,
        headers_json: &str,
        body: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> Result<RawResponse, String> {
        with_host(|h| h.http_request(method, url, headers_json, body, timeout_ms))
    }

    pub fn secret_exists(name: &str) -> bool {
        with_host(|h| h.secret_exists(name))
    }

    pub fn store_attachment_data(id: &str, data: &[u8]) -> Result<(), String> {
        with_host(|h| h.store_attachment_data(id, data))
    }

    pub fn emit_message(msg: &Message) {
        with_host(|h| h.emit_message(msg))
    }

    pub fn websocket_send_text(payload: &str) -> Result<(), String> {
        with_host(|h| h.websocket_send_text(payload))
    }

    pub fn pairing_upsert_request(channel: &str, id: &str, meta_json: &str) -> Result<(String, bool), String> {
        with_host(|h| h.pairing_upsert_request(channel, id, meta_json))
    }

    pub fn pairing_resolve_identity(channel: &str, external_id: &str) -> Result<Option<String>, String> {
        with_host(|h| h.pairing_resolve_identity(channel, external_id))
    }

    pub fn pairing_read_allow_from(channel: &str) -> Result<Vec<String>, String> {
        with_host(|h| h.pairing_read_allow_from(channel))
    }
}

pub(crate) use imp::*;

// Keep the shared signatures checked on both targets.
#[allow(dead_code)]
fn _signatures() {
    let _: fn(Level, &str) = log;
    let _: fn(&Message) = emit_message;
}
