//! Outbound HTTP through the host. Only URLs on the capabilities file's `http.allowlist` are allowed
//! (HTTPS, unless the operator configured an override); `{SECRET_NAME}` placeholders in the URL and
//! headers are filled in by the host for secrets the channel may use (and, for a secret a credential binds
//! to hosts, only towards those hosts); in the body only the names listed with
//! [`Request::body_secrets`]; private addresses are refused;
//! responses above `max_response_bytes` and requests over the rate limit fail. Host refusals and transport
//! failures are [`Error`]s starting with `"http: "`; an HTTP error status is a normal [`Response`].
//!
//! ```no_run
//! use airlock_channel::http;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Ack { ok: bool }
//!
//! # fn main() -> airlock_channel::Result<()> {
//! let ack: Ack = http::post("https://slack.com/api/chat.postMessage")
//!     .header("Authorization", "Bearer {SLACK_BOT_TOKEN}")
//!     .json(&serde_json::json!({"channel": "C1", "text": "hi"}))
//!     .timeout_ms(10_000)
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//! assert!(ack.ok);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sys;
use crate::types::string_map;

/// The request header naming the body placeholders the host fills in (see [`Request::body_secrets`]).
pub const BODY_SECRETS_HEADER: &str = "X-Airlock-Body-Secrets";

/// Most bytes of a body quoted in [`Response::error_for_status`]'s error.
const ERROR_BODY_PREVIEW: usize = 200;

/// An outbound request being built; [`send`](Request::send) performs it.
#[derive(Clone, Debug)]
#[must_use = "a request does nothing until .send() is called"]
pub struct Request {
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
    body: Option<Vec<u8>>,
    timeout_ms: Option<u32>,
    error: Option<String>,
}

/// A `GET` request.
pub fn get(url: &str) -> Request {
    Request::new("GET", url)
}

/// A `POST` request.
pub fn post(url: &str) -> Request {
    Request::new("POST", url)
}

/// A `PUT` request.
pub fn put(url: &str) -> Request {
    Request::new("PUT", url)
}

/// A `PATCH` request.
pub fn patch(url: &str) -> Request {
    Request::new("PATCH", url)
}

/// A `DELETE` request.
pub fn delete(url: &str) -> Request {
    Request::new("DELETE", url)
}

impl Request {
    /// A request with this method (upper-cased) and URL, no headers, no body, the host's default timeout.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: BTreeMap::new(),
            body: None,
            timeout_ms: None,
            error: None,
        }
    }

    /// Set a header (a later value for the same name replaces the earlier one). The value may contain
    /// `{SECRET_NAME}` placeholders for the host to fill in.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_string(), value.to_string());
        self
    }

    /// Ask the host to fill these `{NAME}` placeholders in the body (sent as the `X-Airlock-Body-Secrets`
    /// header, which the host removes). Bodies are opt-in because they often carry user text: a reply
    /// quoting "{SOME_TOKEN}" must never have a secret put into it. Names are `UPPER_SNAKE` without braces,
    /// at most 8; the host escapes each value for the body's `Content-Type` (JSON string, form, or raw).
    ///
    /// ```no_run
    /// # fn main() -> airlock_channel::Result<()> {
    /// let token = airlock_channel::http::post("https://open.feishu.cn/open-apis/auth/v3/tenant_access_token/internal")
    ///     .header("Content-Type", "application/json")
    ///     .body(r#"{"app_id":"{FEISHU_APP_ID}","app_secret":"{FEISHU_APP_SECRET}"}"#)
    ///     .body_secrets(&["FEISHU_APP_ID", "FEISHU_APP_SECRET"])
    ///     .send()?;
    /// # let _ = token; Ok(()) }
    /// ```
    pub fn body_secrets(self, names: &[&str]) -> Self {
        let list = names.join(", ");
        self.header(BODY_SECRETS_HEADER, &list)
    }

    /// Set a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Set a JSON body and `Content-Type: application/json`. A serialization failure is reported by
    /// [`send`](Request::send).
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => {
                self.body = Some(body);
                self.headers.insert("Content-Type".into(), "application/json".into());
            }
            Err(e) => self.error = Some(format!("http: request body: {e}")),
        }
        self
    }

    /// Set an `application/x-www-form-urlencoded` body from name/value pairs.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k.as_ref()), form_encode(v.as_ref())))
            .collect::<Vec<_>>()
            .join("&");
        self.body = Some(body.into_bytes());
        self.headers.insert("Content-Type".into(), "application/x-www-form-urlencoded".into());
        self
    }

    /// Time limit for the whole exchange, in milliseconds (the host caps it).
    pub fn timeout_ms(mut self, millis: u32) -> Self {
        self.timeout_ms = Some(millis);
        self
    }

    /// Perform the request through the host. Errors (`"http: ..."`) when the host refuses it (not on the
    /// allow-list, rate limited, response too large) or the transport fails; any HTTP status is `Ok`.
    pub fn send(self) -> Result<Response> {
        if let Some(e) = self.error {
            return Err(Error::new(e));
        }
        let headers_json = serde_json::to_string(&self.headers)?;
        let raw = sys::http_request(&self.method, &self.url, &headers_json, self.body.as_deref(), self.timeout_ms)
            .map_err(|e| Error::new(format!("http: {} {}: {e}", self.method, redact_query(&self.url))))?;
        Ok(Response { status: raw.status, headers: string_map(&raw.headers_json, true), body: raw.body })
    }
}

/// A response from [`Request::send`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// Body (secrets the host injected are redacted from it).
    pub body: Vec<u8>,
}

impl Response {
    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        Ok(core::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::new(format!("http: response body (status {}): {e}", self.status)))
    }

    /// `Ok(self)` for a 2xx status, else an error `"http: status 404: <start of the body>"`.
    pub fn error_for_status(self) -> Result<Self> {
        if self.is_success() {
            return Ok(self);
        }
        let preview = String::from_utf8_lossy(&self.body);
        let preview = crate::log::truncate(preview.trim(), ERROR_BODY_PREVIEW);
        Err(Error::new(format!("http: status {}: {preview}", self.status)))
    }
}

/// The URL without its query string (queries may carry tokens; keep them out of error text).
fn redact_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;

    #[test]
    fn builds_and_sends_through_the_host() {
        let host = MockHost::install();
        host.on_http(|call| {
            assert_eq!(call.headers["Content-Type"], "application/json");
            let mut headers = BTreeMap::new();
            headers.insert("x-id".to_string(), "7".to_string());
            Ok((201, headers, br#"{"ok":true}"#.to_vec()))
        });
        let resp = post("https://api.example.com/x").json(&serde_json::json!({"a": 1})).timeout_ms(5).send().unwrap();
        assert_eq!(resp.status, 201);
        assert_eq!(resp.header("X-Id"), Some("7"));
        assert_eq!(resp.json::<serde_json::Value>().unwrap()["ok"], true);
        let calls = host.http_calls();
        assert_eq!(calls[0].method, "POST");
        assert_eq!(calls[0].timeout_ms, Some(5));
        assert_eq!(calls[0].json()["a"], 1);
    }

    #[test]
    fn refusals_and_error_statuses() {
        let host = MockHost::install();
        host.on_http(|call| {
            if call.url.contains("denied") {
                Err("url not on the allow-list".into())
            } else {
                Ok((404, BTreeMap::new(), b"  no such chat  ".to_vec()))
            }
        });
        let err = get("https://denied.example.com/p?token=abc").send().unwrap_err().to_string();
        assert_eq!(err, "http: GET https://denied.example.com/p: url not on the allow-list");
        let err = get("https://ok.example.com/").send().unwrap().error_for_status().unwrap_err();
        assert_eq!(err.to_string(), "http: status 404: no such chat");
    }

    #[test]
    fn body_secrets_header() {
        let host = MockHost::install();
        let _ = post("https://x.example/").body("{A}{B}").body_secrets(&["A", "B"]).send();
        assert_eq!(host.http_calls()[0].headers[BODY_SECRETS_HEADER], "A, B");
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b&c=é"), "a+b%26c%3D%C3%A9");
        let host = MockHost::install();
        let _ = post("https://x.example/").form(&[("k", "v w")]).send();
        assert_eq!(host.http_calls()[0].body.as_deref(), Some(&b"k=v+w"[..]));
    }
}
