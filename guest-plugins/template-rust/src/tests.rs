//! The callbacks against the SDK's in-memory host (`cargo test -p template-rust-channel`).

use std::collections::BTreeMap;

use airlock_channel::testing::MockHost;
use airlock_channel::{AgentResponse, Channel, Config, Request};
use serde_json::{json, Value};

use super::*;

fn start(config: Value) -> std::rc::Rc<MockHost> {
    let host = MockHost::install();
    let cfg = TemplateChannel::on_start(Config::from_json(&config.to_string()).unwrap()).unwrap();
    assert_eq!(cfg.endpoints[0].path, WEBHOOK_PATH);
    assert!(cfg.endpoints[0].require_secret);
    host
}

fn post(body: Value) -> (u16, Value) {
    let req = Request::new("POST", WEBHOOK_PATH).with_body(body.to_string()).with_secret_validated(true);
    let resp = TemplateChannel::on_http_request(&req);
    (resp.status, serde_json::from_slice(&resp.body).unwrap_or(Value::Null))
}

const URL: &str = "https://hooks.example.com/airlock/reply";

#[test]
fn open_policy_emits_with_metadata() {
    let host = start(json!({"reply_url": URL, "dm_policy": "open"}));
    let (status, body) = post(json!({"user": "u1", "name": "Ada", "text": "hi", "thread": "t", "id": "m1"}));
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    let sent = host.emitted();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].user_id.as_str(), sent[0].content.as_str()), ("u1", "hi"));
    assert_eq!(sent[0].user_name.as_deref(), Some("Ada"));
    assert_eq!(sent[0].thread_id.as_deref(), Some("t"));
    assert_eq!(sent[0].metadata, json!({"user": "u1", "message_id": "m1", "thread": "t"}));
}

#[test]
fn redelivery_is_not_emitted_twice() {
    let host = start(json!({"reply_url": URL, "dm_policy": "open"}));
    assert_eq!(post(json!({"user": "u1", "text": "hi", "id": "m1"})).1["status"], "accepted");
    assert_eq!(post(json!({"user": "u1", "text": "hi", "id": "m1"})).1["status"], "duplicate");
    assert_eq!(post(json!({"user": "u1", "text": "hi"})).1["status"], "accepted");
    assert_eq!(host.emitted().len(), 2);
    // Every id the payload allows is short enough to be remembered.
    let longest = "i".repeat(inbound::MAX_FIELD_BYTES);
    assert!(inbound::MAX_FIELD_BYTES <= airlock_channel::workspace::RecentIds::MAX_ID_BYTES);
    assert_eq!(post(json!({"user": "u1", "text": "hi", "id": longest})).1["status"], "accepted");
    assert_eq!(post(json!({"user": "u1", "text": "hi", "id": longest})).1["status"], "duplicate");
    // A broken entry is a host failure (503), not a silent reset of the filter.
    host.workspace_set(SEEN_PATH, "{broken");
    assert_eq!(post(json!({"user": "u1", "text": "hi", "id": "m2"})).0, 503);
}

#[test]
fn pairing_code_once_then_approval_admits() {
    let host = start(json!({"reply_url": URL}));
    let (status, body) = post(json!({"user": "u2", "text": "let me in"}));
    assert_eq!(status, 202);
    let code = body["code"].as_str().unwrap().to_string();
    let (_, again) = post(json!({"user": "u2", "text": "again"}));
    assert_eq!(again, json!({"status": "pairing"}), "the code is only shown when created");
    assert!(host.emitted().is_empty());
    assert_eq!(host.pairing_requests()[0].3, code);
    host.approve_pairing(CHANNEL, "u2", "owner");
    assert_eq!(post(json!({"user": "u2", "text": "now?"})).0, 200);
    assert_eq!(host.emitted().len(), 1);
}

#[test]
fn allowlist_and_disabled_policies() {
    let host = start(json!({"reply_url": URL, "dm_policy": "allowlist", "allow_from": ["ada", 7]}));
    assert_eq!(post(json!({"user": "ada", "text": "a"})).0, 200);
    assert_eq!(post(json!({"user": 7, "text": "b"})).0, 200);
    assert_eq!(post(json!({"user": "z", "name": "ada", "text": "c"})).0, 403);
    assert_eq!(host.emitted().len(), 2);
    // As at the host: `disabled` refuses every direct message, the owner's and `*` notwithstanding.
    let host = start(json!({"reply_url": URL, "dm_policy": "disabled", "owner_id": "boss", "allow_from": ["*"]}));
    assert_eq!(post(json!({"user": "z", "text": "c"})).0, 403);
    assert_eq!(post(json!({"user": "boss", "text": "d"})).0, 403);
    assert!(host.emitted().is_empty());
    let host = start(json!({"reply_url": URL, "dm_policy": "allowlist", "allow_from": ["*"]}));
    assert_eq!(post(json!({"user": "z", "text": "e"})).0, 200);
    assert_eq!(host.emitted().len(), 1);
}

#[test]
fn bad_requests() {
    let host = start(json!({"reply_url": URL, "dm_policy": "open"}));
    assert_eq!(post(json!({"user": "u"})).0, 400);
    let get = TemplateChannel::on_http_request(&Request::new("GET", WEBHOOK_PATH).with_secret_validated(true));
    assert_eq!(get.status, 405);
    let unverified = Request::new("POST", WEBHOOK_PATH).with_body(r#"{"user":"u","text":"x"}"#);
    assert_eq!(TemplateChannel::on_http_request(&unverified).status, 401);
    assert_eq!(TemplateChannel::on_http_request(&Request::new("POST", "/other")).status, 404);
    assert!(host.emitted().is_empty());
}

#[test]
fn reply_posts_to_the_configured_url() {
    let host = start(json!({"reply_url": URL, "dm_policy": "open"}));
    host.on_http(|_| Ok((200, BTreeMap::new(), b"{}".to_vec())));
    let reply =
        AgentResponse::new("r1", "hello").with_metadata(json!({"user": "u1", "message_id": "m1", "thread": "t"}));
    TemplateChannel::on_respond(&reply).unwrap();
    let calls = host.http_calls();
    assert_eq!((calls[0].method.as_str(), calls[0].url.as_str()), ("POST", URL));
    assert_eq!(calls[0].timeout_ms, Some(REPLY_TIMEOUT_MS));
    assert_eq!(
        calls[0].json(),
        json!({"user": "u1", "text": "hello", "thread": "t", "in_reply_to": "m1", "message_id": "r1"})
    );
}

#[test]
fn reply_failures_are_errors() {
    let host = start(json!({"reply_url": URL, "dm_policy": "open"}));
    host.on_http(|_| Ok((500, BTreeMap::new(), b"boom".to_vec())));
    let reply = AgentResponse::new("r1", "x").with_metadata(json!({"user": "u1"}));
    assert_eq!(TemplateChannel::on_respond(&reply).unwrap_err().to_string(), "reply: http: status 500: boom");
    let no_user = AgentResponse::new("r2", "x");
    assert!(TemplateChannel::on_respond(&no_user).unwrap_err().to_string().contains("no user"));
    host.on_http(|_| Err("url not on the allow-list".into()));
    assert!(TemplateChannel::on_broadcast("u1", &reply).unwrap_err().to_string().contains("allow-list"));
}

#[test]
fn not_started_answers_503() {
    MockHost::install();
    assert_eq!(post(json!({"user": "u", "text": "x"})).0, 503);
}
