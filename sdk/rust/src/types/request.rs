//! One HTTP request to the channel's endpoints (or one websocket frame the host delivers as a request) and
//! the channel's answer. Apart from the agent-side types: these are the platform's side of the channel.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Path of the synthetic request that carries one websocket frame (see [`Request::is_websocket_frame`]).
pub const WEBSOCKET_PATH: &str = "/__websocket";
/// `x-airlock-source` header value of a websocket frame request.
pub const WEBSOCKET_SOURCE: &str = "websocket";

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
