//! The host services the channel logic uses, as a trait.
//!
//! The component implements it over the Airlock SDK (`lib.rs`); unit tests implement it with a recording fake
//! (`testing.rs`), so every rule of the channel runs natively under `cargo test` without a host.

use serde_json::Value;

/// An HTTP answer as the host returns it (after its allow-list, credential injection and size limits).
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A message for the agent (the WIT `emitted-message` without attachments).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub user_id: String,
    pub user_name: Option<String>,
    pub content: String,
    pub thread_id: Option<String>,
    pub metadata: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

pub trait Env {
    /// POST `body` with the given content type; `Err` is the host's refusal or a transport error (safe to log:
    /// the host never puts secrets in it).
    fn post(&mut self, url: &str, content_type: &str, body: &[u8], timeout_ms: u32) -> Result<HttpReply, String>;
    fn read(&mut self, path: &str) -> Option<String>;
    fn write(&mut self, path: &str, content: &str) -> Result<(), String>;
    fn emit(&mut self, msg: Outgoing);
    /// Create (or find) a pending pairing request; `(code, created)`.
    fn pairing_upsert(&mut self, id: &str, meta: &Value) -> Result<(String, bool), String>;
    /// True if `id` was paired by the operator (`airlock pairing approve`) or is in the store's allow-list.
    fn pairing_allowed(&mut self, id: &str) -> bool;
    fn log(&mut self, level: Level, message: &str);
}
