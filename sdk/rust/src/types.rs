//! Plain Rust types for the values the host passes to callbacks and the values callbacks return.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Path of the synthetic request that carries one websocket frame (see [`Request::is_websocket_frame`]).
pub const WEBSOCKET_PATH: &str = "/__websocket";
/// `x-airlock-source` header value of a websocket frame request.
pub const WEBSOCKET_SOURCE: &str = "websocket";

// --------------------------------------------------------------------------------------------- config

/// The `config` object of the channel's capabilities file, given to [`Channel::on_start`](crate::Channel::on_start).
///
/// Only `on_start` sees it: every callback runs in a fresh instance, so keep what later callbacks need in
/// the [`workspace`](crate::workspace).
///
/// ```
/// use airlock_channel::Config;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct MyConfig { reply_url: String, #[serde(default)] verbose: bool }
///
/// let config = Config::from_json(r#"{"reply_url": "https://example.com/hook", "dm_policy": "open"}"#).unwrap();
/// assert_eq!(config.str("dm_policy"), Some("open"));
/// let typed: MyConfig = config.parse().unwrap();
/// assert_eq!(typed.reply_url, "https://example.com/hook");
/// assert!(!typed.verbose);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    values: serde_json::Map<String, Value>,
}

impl Config {
    /// Parse the host's `config-json`; empty text is an empty object. Errors if it is not a JSON object.
    pub fn from_json(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        match serde_json::from_str::<Value>(text)? {
            Value::Object(values) => Ok(Config { values }),
            other => Err(Error::new(format!("config is not a JSON object but {}", json_kind(&other)))),
        }
    }

    /// The raw value of `key`, if present (JSON `null` counts as present).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// `key` as a string; `None` when absent or not a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(Value::as_str)
    }

    /// `key` as a bool, or `default` when absent or `null`. Errors when it is another type.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(Error::new(format!("config {key} must be true or false, not {}", json_kind(other)))),
        }
    }

    /// The whole object deserialized into `T` (use `#[serde(default)]` for optional keys).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(Value::Object(self.values.clone())).map_err(|e| Error::new(format!("config: {e}")))
    }

    /// The whole object.
    pub fn as_map(&self) -> &serde_json::Map<String, Value> {
        &self.values
    }
}

/// One HTTP endpoint the channel serves (must also be listed in the capabilities file's `allowed_paths`).
///
/// ```
/// use airlock_channel::Endpoint;
/// let ep = Endpoint::post("/webhook/mine").require_secret(true);
/// assert_eq!(ep.methods, vec!["POST".to_string()]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Absolute path, e.g. `/webhook/slack`. Must start with `/`.
    pub path: String,
    /// Upper-case methods, e.g. `["POST"]`.
    pub methods: Vec<String>,
    /// When true the host rejects requests it could not verify (webhook secret or signature) before the
    /// guest runs.
    pub require_secret: bool,
}

impl Endpoint {
    /// An endpoint for these methods (upper-cased), no secret required.
    pub fn new<M: AsRef<str>>(path: impl Into<String>, methods: &[M]) -> Self {
        Endpoint {
            path: path.into(),
            methods: methods.iter().map(|m| m.as_ref().to_ascii_uppercase()).collect(),
            require_secret: false,
        }
    }

    /// A `POST` endpoint.
    pub fn post(path: impl Into<String>) -> Self {
        Endpoint::new(path, &["POST"])
    }

    /// Set whether the host must have verified the request (see the capabilities file's `webhook` block).
    pub fn require_secret(mut self, required: bool) -> Self {
        self.require_secret = required;
        self
    }
}

/// Polling: the host calls [`Channel::on_poll`](crate::Channel::on_poll) every `interval_ms` milliseconds
/// (raised to the capabilities file's `min_poll_interval_ms`; polling also needs `allow_polling: true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poll {
    /// Milliseconds between ticks.
    pub interval_ms: u32,
    /// False registers the schedule without running it.
    pub enabled: bool,
}

impl Poll {
    /// Poll every `interval_ms` milliseconds.
    pub fn every_ms(interval_ms: u32) -> Self {
        Poll { interval_ms, enabled: true }
    }
}

/// What [`Channel::on_start`](crate::Channel::on_start) returns: the name shown to operators, the HTTP
/// endpoints, and the optional polling schedule.
///
/// ```
/// use airlock_channel::{ChannelConfig, Endpoint, Poll};
/// let cfg = ChannelConfig::new("My channel")
///     .endpoint(Endpoint::post("/webhook/mine").require_secret(true))
///     .poll(Poll::every_ms(60_000));
/// assert_eq!(cfg.endpoints.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Human-readable name.
    pub display_name: String,
    /// Endpoints to register (each path must be in the capabilities file's `allowed_paths`).
    pub endpoints: Vec<Endpoint>,
    /// Polling schedule, if any.
    pub poll: Option<Poll>,
}

impl ChannelConfig {
    /// A configuration with no endpoints and no polling.
    pub fn new(display_name: impl Into<String>) -> Self {
        ChannelConfig { display_name: display_name.into(), endpoints: Vec::new(), poll: None }
    }

    /// Add an endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Set the polling schedule.
    pub fn poll(mut self, poll: Poll) -> Self {
        self.poll = Some(poll);
        self
    }

    /// Checks done before the value goes back to the host: every path starts with `/`, every endpoint
    /// has at least one method and every method is an HTTP token.
    pub fn validate(&self) -> Result<()> {
        for ep in &self.endpoints {
            if !ep.path.starts_with('/') {
                return Err(Error::new(format!("endpoint path {:?} must start with '/'", ep.path)));
            }
            if ep.methods.is_empty() {
                return Err(Error::new(format!("endpoint {} has no methods", ep.path)));
            }
            if let Some(bad) = ep.methods.iter().find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic())) {
                return Err(Error::new(format!("endpoint {} has a bad method {bad:?}", ep.path)));
            }
        }
        Ok(())
    }
}

// --------------------------------------------------------------------------------------------- requests

/// An HTTP request to one of the channel's endpoints (or a websocket frame, see
/// [`is_websocket_frame`](Request::is_websocket_frame)).
///
/// Header names are lower-case. The body is at most the host's inbound limit (1 MB by default).
///
/// ```
/// use airlock_channel::Request;
/// let req = Request::new("POST", "/webhook/mine")
///     .with_header("Content-Type", "application/json")
///     .with_body(br#"{"text": "hi"}"#.to_vec());
/// assert_eq!(req.header("content-type"), Some("application/json"));
/// let v: serde_json::Value = req.json().unwrap();
/// assert_eq!(v["text"], "hi");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Upper-case method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Headers by lower-case name (repeated headers joined with `", "`).
    pub headers: BTreeMap<String, String>,
    /// Query parameters (repeated ones joined with `", "`).
    pub query: BTreeMap<String, String>,
    /// Raw body.
    pub body: Vec<u8>,
    /// True when the host verified the request (webhook secret header or platform signature), and for
    /// websocket frames.
    pub secret_validated: bool,
}

impl Request {
    /// A request with no headers, query or body (for tests and tools).
    pub fn new(method: &str, path: impl Into<String>) -> Self {
        Request { method: method.to_ascii_uppercase(), path: path.into(), ..Request::default() }
    }

    /// Add a header (the name is lower-cased).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    /// Add a query parameter.
    pub fn with_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.insert(name.into(), value.into());
        self
    }

    /// Set the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Set `secret_validated`.
    pub fn with_secret_validated(mut self, validated: bool) -> Self {
        self.secret_validated = validated;
        self
    }

    /// The header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.headers.get(name) {
            Some(v) => Some(v.as_str()),
            None => self.headers.get(&name.to_ascii_lowercase()).map(String::as_str),
        }
    }

    /// A query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        Ok(core::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// True for a websocket frame delivered by the host: `POST /__websocket` with
    /// `x-airlock-source: websocket`, verified by the host. The body is the frame's text (for Discord's
    /// gateway: the whole dispatch frame `{"op":0,"t":...,"s":...,"d":...}`). The response to such a
    /// request is ignored; answer on the socket with [`websocket::send_text`](crate::websocket::send_text).
    /// Frames of one channel arrive in order, one callback at a time.
    pub fn is_websocket_frame(&self) -> bool {
        self.secret_validated
            && self.method == "POST"
            && self.path == WEBSOCKET_PATH
            && self.header("x-airlock-source") == Some(WEBSOCKET_SOURCE)
    }

    /// `Ok(())` when the host verified the request, else an error (answer it with
    /// [`Response::unauthorized`]). Endpoints registered with `require_secret(true)` never see unverified
    /// requests; this is for endpoints that accept both.
    pub fn ensure_secret_validated(&self) -> Result<()> {
        if self.secret_validated {
            Ok(())
        } else {
            Err(Error::new(format!("{} {} was not verified by the host", self.method, self.path)))
        }
    }
}

/// The answer to a [`Request`].
///
/// ```
/// use airlock_channel::Response;
/// let r = Response::json(200, &serde_json::json!({"ok": true}));
/// assert_eq!(r.headers["content-type"], "application/json");
/// assert_eq!(r.body, br#"{"ok":true}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Self {
        Response { status, headers: BTreeMap::new(), body: Vec::new() }
    }

    /// `200` with an empty body.
    pub fn ok() -> Self {
        Response::new(200)
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::new(status).with_header("content-type", "text/plain; charset=utf-8").with_body(text.into())
    }

    /// An `application/json` response. A value that cannot be serialized (a map with non-string keys)
    /// gives a 500 with `{"error":"internal error"}`.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status).with_header("content-type", "application/json").with_body(body),
            Err(e) => {
                crate::log::error(&format!("response body could not be serialized: {e}"));
                Response::internal_error()
            }
        }
    }

    /// `400` with `{"error": message}`.
    pub fn bad_request(message: &str) -> Self {
        Response::json(400, &serde_json::json!({ "error": message }))
    }

    /// `401` with `{"error":"unauthorized"}` (no detail, on purpose).
    pub fn unauthorized() -> Self {
        Response::json(401, &serde_json::json!({ "error": "unauthorized" }))
    }

    /// `404` with `{"error":"not found"}`.
    pub fn not_found() -> Self {
        Response::json(404, &serde_json::json!({ "error": "not found" }))
    }

    /// `500` with `{"error":"internal error"}`.
    pub fn internal_error() -> Self {
        Response::new(500).with_header("content-type", "application/json").with_body(INTERNAL_ERROR_BODY.to_vec())
    }

    /// Set a header (the name is lower-cased).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    /// Set the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// The body of [`Response::internal_error`].
pub(crate) const INTERNAL_ERROR_BODY: &[u8] = br#"{"error":"internal error"}"#;

// --------------------------------------------------------------------------------------------- agent side

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

// --------------------------------------------------------------------------------------------- helpers

/// `"an object"`, `"a string"`, ... for error messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parse a metadata JSON text: empty is `{}`; anything but an object is an error.
pub(crate) fn metadata_object(text: &str, what: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(Error::new(format!("{what} is {} instead of an object", json_kind(&other)))),
        Err(e) => Err(Error::new(format!("{what} is not JSON: {e}"))),
    }
}

/// Lenient `{name: value}` parse of headers/query JSON: arrays are joined with `", "`, numbers and bools
/// become text, `null` becomes empty; an array of `[name, value]` pairs is accepted too; anything
/// unparseable is an empty map (the host always sends an object; this only guards against surprises).
pub(crate) fn string_map(text: &str, lower_keys: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let value = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(_) => return out,
    };
    let pairs: Vec<(String, Value)> = match value {
        Value::Object(map) => map.into_iter().collect(),
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let v = pair.pop()?;
                    let k = pair.pop()?;
                    Some((k.as_str()?.to_string(), v))
                }
                _ => None,
            })
            .collect(),
        _ => return out,
    };
    for (k, v) in pairs {
        let key = if lower_keys { k.to_ascii_lowercase() } else { k };
        let text = match v {
            Value::Array(parts) => parts.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
            other => scalar_text(&other),
        };
        match out.get_mut(&key) {
            Some(existing) => {
                let existing: &mut String = existing;
                existing.push_str(", ");
                existing.push_str(&text);
            }
            None => {
                out.insert(key, text);
            }
        }
    }
    out
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_map_joins_and_lowercases() {
        let m = string_map(r#"{"X-A": ["1", 2], "b": null, "C": true}"#, true);
        assert_eq!(m["x-a"], "1, 2");
        assert_eq!(m["b"], "");
        assert_eq!(m["c"], "true");
        let pairs = string_map(r#"[["k", "v"], ["K", "w"], ["bad"]]"#, true);
        assert_eq!(pairs["k"], "v, w");
        assert!(string_map("not json", true).is_empty());
        assert!(string_map("[1, 2]", false).is_empty());
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert_eq!(metadata_object("", "m").unwrap(), serde_json::json!({}));
        assert!(metadata_object("[1]", "m").unwrap_err().to_string().contains("an array"));
        assert!(metadata_object("{", "m").is_err());
    }

    #[test]
    fn websocket_frame_needs_every_mark() {
        let frame = Request::new("POST", WEBSOCKET_PATH)
            .with_header("x-airlock-source", "websocket")
            .with_secret_validated(true);
        assert!(frame.is_websocket_frame());
        assert!(!frame.clone().with_secret_validated(false).is_websocket_frame());
        assert!(!frame.clone().with_header("x-airlock-source", "http").is_websocket_frame());
        let mut other_path = frame.clone();
        other_path.path = "/webhook/x".into();
        assert!(!other_path.is_websocket_frame());
    }

    #[test]
    fn channel_config_validation() {
        assert!(ChannelConfig::new("x").endpoint(Endpoint::post("/a")).validate().is_ok());
        assert!(ChannelConfig::new("x").endpoint(Endpoint::post("a")).validate().is_err());
        assert!(ChannelConfig::new("x").endpoint(Endpoint::new::<&str>("/a", &[])).validate().is_err());
        assert!(ChannelConfig::new("x").endpoint(Endpoint::new("/a", &["GE T"])).validate().is_err());
    }

    #[test]
    fn config_accessors() {
        let c = Config::from_json(r#"{"a": "x", "b": true, "n": null, "k": 3}"#).unwrap();
        assert_eq!(c.str("a"), Some("x"));
        assert!(c.bool_or("b", false).unwrap());
        assert!(c.bool_or("n", true).unwrap());
        assert!(c.bool_or("missing", true).unwrap());
        assert!(c.bool_or("k", true).is_err());
        assert!(Config::from_json("[]").is_err());
        assert_eq!(Config::from_json("  ").unwrap(), Config::default());
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
