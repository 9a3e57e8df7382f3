//! An in-memory host for unit tests of channel logic on the build machine (`cargo test`, any non-wasm32
//! target). Not compiled into components.
//!
//! Install a [`MockHost`] on the test's thread, call your channel's callbacks directly, then look at what
//! they did. Unlike the real host, the mock applies workspace writes and emits at once (the real host
//! applies them only when the callback succeeds), performs no capability checks, and answers HTTP with the
//! answers you queue, then the handler you give it (`502` "no handler" otherwise).
//!
//! ```
//! use airlock_channel::testing::MockHost;
//! use airlock_channel::{emit, workspace};
//!
//! let host = MockHost::install();
//! workspace::write("state/n", "1").unwrap();
//! emit::Message::new("u1", "hi").emit();
//! assert_eq!(host.workspace_get("state/n").as_deref(), Some("1"));
//! assert_eq!(host.emitted()[0].content, "hi");
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use crate::emit::Message;
use crate::log::Level;
use crate::sys::RawResponse;

/// One outbound HTTP request seen by the mock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    /// Method as sent.
    pub method: String,
    /// URL as sent (placeholders not filled in).
    pub url: String,
    /// Headers by the name the guest used.
    pub headers: BTreeMap<String, String>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
    /// Timeout, if any.
    pub timeout_ms: Option<u32>,
}

impl HttpCall {
    /// The body parsed as JSON (`Null` when absent or not JSON).
    pub fn json(&self) -> serde_json::Value {
        self.body.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(serde_json::Value::Null)
    }
}

/// What an HTTP handler returns: `Ok((status, headers, body))` or `Err(message)` (a host refusal).
pub type HttpResult = Result<(u16, BTreeMap<String, String>, Vec<u8>), String>;
type Handler = Box<dyn Fn(&HttpCall) -> HttpResult>;

#[derive(Default)]
struct State {
    now: u64,
    logs: Vec<(Level, String)>,
    workspace: BTreeMap<String, String>,
    secrets: BTreeSet<String>,
    http_calls: Vec<HttpCall>,
    http_queue: VecDeque<HttpResult>,
    emitted: Vec<Message>,
    attachments: BTreeMap<String, Vec<u8>>,
    websocket_open: bool,
    websocket_sent: Vec<String>,
    pairing_requests: BTreeMap<(String, String), (String, String)>,
    pairing_approved: BTreeMap<(String, String), String>,
}

/// The in-memory host. Cheap to create; one per test.
pub struct MockHost {
    state: RefCell<State>,
    handler: RefCell<Option<Handler>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<MockHost>>> = const { RefCell::new(None) };
}

/// Run `f` with the mock installed on this thread; panics with a hint when none is installed.
pub(crate) fn with_host<R>(f: impl FnOnce(&MockHost) -> R) -> R {
    let host = CURRENT.with(|c| c.borrow().clone());
    match host {
        Some(h) => f(&h),
        None => panic!(
            "airlock_channel host functions only work inside a component; \
             in tests call airlock_channel::testing::MockHost::install() first"
        ),
    }
}

impl MockHost {
    /// A fresh mock (clock at 1 700 000 000 000 ms, no secrets, empty workspace, websocket closed),
    /// installed for the current thread, replacing any previous one.
    pub fn install() -> Rc<MockHost> {
        let host = Rc::new(MockHost {
            state: RefCell::new(State { now: 1_700_000_000_000, ..State::default() }),
            handler: RefCell::new(None),
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(host.clone()));
        host
    }

    /// Answer outbound HTTP with `handler` (called once per request, after it is recorded).
    pub fn on_http(&self, handler: impl Fn(&HttpCall) -> HttpResult + 'static) {
        *self.handler.borrow_mut() = Some(Box::new(handler));
    }

    /// Answer the next outbound request with `status` and `body` (no headers). Queued answers are used
    /// in order, before the [`on_http`](MockHost::on_http) handler, which answers once the queue is empty.
    pub fn queue_http(&self, status: u16, body: &str) {
        self.state.borrow_mut().http_queue.push_back(Ok((status, BTreeMap::new(), body.as_bytes().to_vec())));
    }

    /// Answer the next outbound request (after those already queued) with a host refusal or transport
    /// error: `http::Request::send` fails with `message`.
    pub fn queue_http_error(&self, message: &str) {
        self.state.borrow_mut().http_queue.push_back(Err(message.to_string()));
    }

    /// Set the wall clock (milliseconds since the Unix epoch).
    pub fn set_now(&self, millis: u64) {
        self.state.borrow_mut().now = millis;
    }

    /// Make `secrets::exists(name)` true.
    pub fn add_secret(&self, name: &str) {
        self.state.borrow_mut().secrets.insert(name.to_string());
    }

    /// Pre-fill a workspace path.
    pub fn workspace_set(&self, path: &str, content: &str) {
        self.state.borrow_mut().workspace.insert(path.to_string(), content.to_string());
    }

    /// Current content of a workspace path.
    pub fn workspace_get(&self, path: &str) -> Option<String> {
        self.state.borrow().workspace.get(path).cloned()
    }

    /// Open or close the fake websocket (closed: `websocket::send_text` fails like the host's).
    pub fn set_websocket_open(&self, open: bool) {
        self.state.borrow_mut().websocket_open = open;
    }

    /// Approve a pairing: `pairing::resolve` gives `owner` and `pairing::allow_from` lists the id.
    pub fn approve_pairing(&self, channel: &str, external_id: &str, owner: &str) {
        let mut s = self.state.borrow_mut();
        s.pairing_requests.remove(&(channel.to_string(), external_id.to_string()));
        s.pairing_approved.insert((channel.to_string(), external_id.to_string()), owner.to_string());
    }

    /// Log lines so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// Outbound HTTP requests so far.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.state.borrow().http_calls.clone()
    }

    /// Outbound HTTP requests so far, forgetting them (the next call starts a fresh list).
    pub fn take_http_calls(&self) -> Vec<HttpCall> {
        std::mem::take(&mut self.state.borrow_mut().http_calls)
    }

    /// Messages emitted so far.
    pub fn emitted(&self) -> Vec<Message> {
        self.state.borrow().emitted.clone()
    }

    /// Attachment bytes stored so far, by id.
    pub fn attachment_data(&self) -> BTreeMap<String, Vec<u8>> {
        self.state.borrow().attachments.clone()
    }

    /// Websocket frames sent so far.
    pub fn websocket_sent(&self) -> Vec<String> {
        self.state.borrow().websocket_sent.clone()
    }

    /// Pending pairing requests: `(channel, external id, meta JSON, code)`.
    pub fn pairing_requests(&self) -> Vec<(String, String, String, String)> {
        self.state
            .borrow()
            .pairing_requests
            .iter()
            .map(|((c, id), (meta, code))| (c.clone(), id.clone(), meta.clone(), code.clone()))
            .collect()
    }

    // ---------------------------------------------------------------- the host functions

    pub(crate) fn log(&self, level: Level, message: &str) {
        self.state.borrow_mut().logs.push((level, message.to_string()));
    }

    pub(crate) fn now_millis(&self) -> u64 {
        self.state.borrow().now
    }

    pub(crate) fn workspace_read(&self, path: &str) -> Option<String> {
        self.workspace_get(path)
    }

    pub(crate) fn workspace_write(&self, path: &str, content: &str) -> Result<(), String> {
        if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(format!("invalid workspace path {path:?}"));
        }
        self.workspace_set(path, content);
        Ok(())
    }

    pub(crate) fn http_request(
        &self,
        method: &str,
        url: &str,
        headers_json: &str,
        body: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> Result<RawResponse, String> {
        let headers: BTreeMap<String, String> =
            serde_json::from_str(headers_json).map_err(|e| format!("headers-json is not a string map: {e}"))?;
        let call = HttpCall {
            method: method.to_string(),
            url: url.to_string(),
            headers,
            body: body.map(<[u8]>::to_vec),
            timeout_ms,
        };
        let queued = {
            let mut s = self.state.borrow_mut();
            s.http_calls.push(call.clone());
            s.http_queue.pop_front()
        };
        let result = match (queued, &*self.handler.borrow()) {
            (Some(answer), _) => answer,
            (None, Some(handler)) => handler(&call),
            (None, None) => Ok((502, BTreeMap::new(), b"no handler".to_vec())),
        };
        result.map(|(status, headers, body)| RawResponse {
            status,
            headers_json: serde_json::to_string(&headers).unwrap_or_else(|_| "{}".into()),
            body,
        })
    }

    pub(crate) fn secret_exists(&self, name: &str) -> bool {
        self.state.borrow().secrets.contains(name)
    }

    pub(crate) fn store_attachment_data(&self, id: &str, data: &[u8]) -> Result<(), String> {
        self.state.borrow_mut().attachments.insert(id.to_string(), data.to_vec());
        Ok(())
    }

    pub(crate) fn emit_message(&self, msg: &Message) {
        self.state.borrow_mut().emitted.push(msg.clone());
    }

    pub(crate) fn websocket_send_text(&self, payload: &str) -> Result<(), String> {
        let mut s = self.state.borrow_mut();
        if !s.websocket_open {
            return Err("no websocket is open for this channel".into());
        }
        s.websocket_sent.push(payload.to_string());
        Ok(())
    }

    pub(crate) fn pairing_upsert_request(
        &self,
        channel: &str,
        id: &str,
        meta_json: &str,
    ) -> Result<(String, bool), String> {
        let mut s = self.state.borrow_mut();
        let key = (channel.to_string(), id.to_string());
        if let Some((_, code)) = s.pairing_requests.get(&key) {
            return Ok((code.clone(), false));
        }
        let code = format!("CODE{:04}", s.pairing_requests.len() + 1);
        s.pairing_requests.insert(key, (meta_json.to_string(), code.clone()));
        Ok((code, true))
    }

    pub(crate) fn pairing_resolve_identity(&self, channel: &str, external_id: &str) -> Result<Option<String>, String> {
        Ok(self.state.borrow().pairing_approved.get(&(channel.to_string(), external_id.to_string())).cloned())
    }

    pub(crate) fn pairing_read_allow_from(&self, channel: &str) -> Result<Vec<String>, String> {
        Ok(self
            .state
            .borrow()
            .pairing_approved
            .keys()
            .filter(|(c, _)| c == channel)
            .map(|(_, id)| id.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;

    #[test]
    fn queued_answers_come_first_then_the_handler() {
        let host = MockHost::install();
        host.on_http(|_| Ok((200, BTreeMap::new(), b"handler".to_vec())));
        host.queue_http(429, "slow down");
        host.queue_http_error("not on the allow-list");
        let first = http::post("https://a.example/1").send().unwrap();
        assert_eq!((first.status, first.body.as_slice()), (429, &b"slow down"[..]));
        let second = http::post("https://a.example/2").send().unwrap_err().to_string();
        assert!(second.ends_with("not on the allow-list"), "{second}");
        assert_eq!(http::get("https://a.example/3").send().unwrap().body, b"handler");
        let urls: Vec<String> = host.take_http_calls().into_iter().map(|c| c.url).collect();
        assert_eq!(urls, ["https://a.example/1", "https://a.example/2", "https://a.example/3"]);
        assert!(host.http_calls().is_empty());
    }

    #[test]
    fn without_a_handler_the_answer_is_502() {
        let _host = MockHost::install();
        assert_eq!(http::get("https://a.example/").send().unwrap().status, 502);
    }
}
